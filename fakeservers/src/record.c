/*
 * record.c - what a fake server saw: connections, events and messages,
 * stored per record level, and their JSON Lines form.
 *
 * Every stored string is a private copy, so the public getters can hand out
 * pointers that survive the growth of the arrays (only the arrays move, the
 * strings do not).
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "fake_internal.h"

void fake__record_init(fake__record *r, detour_fake_record_level level) {
  memset(r, 0, sizeof *r);
  r->level = level;
}

static void free_message(detour_fake_message *m) {
  for (size_t i = 0; i < m->nrcpts; i++)
    free((char *)m->rcpts[i]);
  free((void *)m->rcpts);
  free((char *)m->from);
  free((char *)m->body);
}

void fake__record_clear(fake__record *r) {
  for (size_t i = 0; i < r->nevents; i++)
    free((char *)r->events[i].ev.data);
  for (size_t i = 0; i < r->nmsgs; i++)
    free_message(&r->msgs[i].m);
  free(r->conns);
  free(r->events);
  free(r->msgs);
  fake__record_init(r, r->level);
}

/* Make room for one more element of size sz in *v. */
static bool grow(void **v, size_t *cap, size_t n, size_t sz) {
  if (n < *cap)
    return true;
  size_t nc = *cap ? *cap * 2 : 64;
  void *p = realloc(*v, nc * sz);
  if (!p)
    return false;
  *v = p;
  *cap = nc;
  return true;
}

long fake__record_conn(fake__record *r, const detour_fake_conn *c) {
  if (r->level == DETOUR_FAKE_RECORD_OFF ||
      !grow((void **)&r->conns, &r->conns_cap, r->nconns, sizeof *c))
    return -1;
  r->conns[r->nconns] = *c;
  return (long)r->nconns++;
}

detour_fake_conn *fake__record_conn_at(fake__record *r, long index) {
  return index >= 0 && (size_t)index < r->nconns ? &r->conns[index] : NULL;
}

long fake__record_event(fake__record *r, const detour_fake_event *ev) {
  if (r->level != DETOUR_FAKE_RECORD_FULL ||
      !grow((void **)&r->events, &r->events_cap, r->nevents,
            sizeof(fake__event)))
    return -1;
  fake__event *e = &r->events[r->nevents];
  e->ev = *ev;
  e->ev.msg = NULL;
  e->msg_index = ev->msg ? ev->msg->index : 0;
  e->ev.data = fake__memdup(ev->data ? ev->data : "", ev->len);
  if (!e->ev.data)
    return -1;
  return (long)r->nevents++;
}

long fake__record_message(fake__record *r, const detour_fake_message *m) {
  if (r->level == DETOUR_FAKE_RECORD_OFF ||
      !grow((void **)&r->msgs, &r->msgs_cap, r->nmsgs, sizeof(fake__message)))
    return -1;
  detour_fake_message *d = &r->msgs[r->nmsgs].m;
  *d = *m;
  d->from = fake__strdup(m->from ? m->from : "");
  d->body = fake__memdup(m->body ? m->body : "", m->body_len);
  const char **rc = calloc(m->nrcpts ? m->nrcpts : 1, sizeof *rc);
  d->rcpts = rc;
  bool ok = d->from && d->body && rc;
  for (size_t i = 0; ok && i < m->nrcpts; i++)
    ok = (rc[i] = fake__strdup(m->rcpts[i])) != NULL;
  if (!ok) {
    free_message(d);
    return -1;
  }
  return (long)r->nmsgs++;
}

/* ------------------------------------------------------------------------ */
/* JSON                                                                      */

/* A JSON string of arbitrary bytes: each byte becomes one code point, so
 * the exact bytes come back by reading the string as Latin-1. */
static void json_bytes(FILE *f, const char *p, size_t len) {
  fputc('"', f);
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)p[i];
    switch (c) {
    case '"':
      fputs("\\\"", f);
      break;
    case '\\':
      fputs("\\\\", f);
      break;
    case '\n':
      fputs("\\n", f);
      break;
    case '\r':
      fputs("\\r", f);
      break;
    case '\t':
      fputs("\\t", f);
      break;
    default:
      if (c < 0x20 || c >= 0x7f)
        fprintf(f, "\\u%04x", c);
      else
        fputc(c, f);
    }
  }
  fputc('"', f);
}

static void json_str(FILE *f, const char *s) {
  json_bytes(f, s ? s : "", s ? strlen(s) : 0);
}

static void json_time(FILE *f, detour_ms t, uint64_t mono) {
  char iso[40];
  if (detour_format_time(t, iso, sizeof iso) < 0)
    iso[0] = '\0';
  fprintf(f, "\"time\":\"%s\",\"ms\":%" PRId64 ",\"mono_ns\":%" PRIu64, iso,
          (int64_t)t, mono);
}

static void json_message(FILE *f, const detour_fake_message *m) {
  fprintf(f, ",\"index\":%zu,\"from\":", m->index);
  json_str(f, m->from);
  fputs(",\"rcpts\":[", f);
  for (size_t i = 0; i < m->nrcpts; i++) {
    if (i)
      fputc(',', f);
    json_str(f, m->rcpts[i]);
  }
  fprintf(f, "],\"size\":%zu,\"complete\":%s,\"truncated\":%s,\"code\":%d",
          m->body_len, m->complete ? "true" : "false",
          m->truncated ? "true" : "false", m->code);
  fputs(",\"body\":", f);
  json_bytes(f, m->body, m->body_len);
}

int detour_fake_event_write_json(const detour_fake_event *ev,
                                 const char *server, FILE *f) {
  fputs("{", f);
  json_time(f, ev->time, ev->mono);
  fputs(",\"server\":", f);
  json_str(f, server);
  fprintf(f, ",\"conn\":%u,\"event\":\"%s\"", ev->conn,
          detour_fake_event_name(ev->type));
  if (ev->type == DETOUR_FAKE_EV_COMMAND || ev->type == DETOUR_FAKE_EV_REPLY ||
      ev->type == DETOUR_FAKE_EV_ACTION)
    fprintf(f, ",\"stage\":\"%s\"", detour_fake_stage_name(ev->stage));
  if (ev->type == DETOUR_FAKE_EV_REPLY)
    fprintf(f, ",\"code\":%d", ev->code);
  if (ev->type == DETOUR_FAKE_EV_CLOSE)
    fprintf(f, ",\"by\":\"%s\"", detour_fake_closer_name(ev->closed_by));
  if (ev->type == DETOUR_FAKE_EV_MESSAGE && ev->msg)
    json_message(f, ev->msg);
  else if (ev->data) {
    fputs(",\"data\":", f);
    json_bytes(f, ev->data, ev->len);
  }
  fputs("}\n", f);
  return ferror(f) ? DETOUR_EIO : 0;
}

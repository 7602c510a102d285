/*
 * record.c - what a fake server saw: connections, events and messages,
 * stored per record level, and their JSON Lines form.
 *
 * Every stored string is a private copy, so the public getters can hand out
 * pointers that survive the growth of the arrays (only the arrays move, the
 * strings do not).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fake_internal.h"

void detour__fake_record_init(detour__fake_record *r,
                              detour_fake_record_level level,
                              const detour_fake_mem *mem,
                              const detour_fake_limits *lim) {
  memset(r, 0, sizeof *r);
  r->level = level;
  r->keep = true;
  r->mem = mem;
  r->max_items = lim->max_record_events;
  r->max_bytes = lim->max_record_bytes;
}

static void free_message(const detour_fake_mem *mem, detour_fake_message *m) {
  for (size_t i = 0; i < m->nrcpts; i++)
    detour__fake_free(mem, (char *)m->rcpts[i]);
  detour__fake_free(mem, (void *)m->rcpts);
  detour__fake_free(mem, (char *)m->from);
  detour__fake_free(mem, (char *)m->body);
}

void detour__fake_record_clear(detour__fake_record *r) {
  for (size_t i = 0; i < r->nevents; i++)
    detour__fake_free(r->mem, (char *)r->events[i].ev.data);
  for (size_t i = 0; i < r->nmsgs; i++)
    free_message(r->mem, &r->msgs[i].m);
  detour__fake_free(r->mem, r->conns);
  detour__fake_free(r->mem, r->events);
  detour__fake_free(r->mem, r->msgs);
  detour_fake_limits lim = {.max_record_events = r->max_items,
                            .max_record_bytes = r->max_bytes};
  bool keep = r->keep;
  detour__fake_record_init(r, r->level, r->mem, &lim);
  r->keep = keep;
}

/* Room for one more item of `bytes` bytes of data under the limits; a
 * refusal is counted (and said once, by the caller's LIMIT event). */
static bool within_limits(detour__fake_record *r, size_t n, size_t bytes) {
  if (n < r->max_items && bytes <= r->max_bytes - r->bytes)
    return true;
  r->not_kept++;
  return false;
}

bool detour__fake_record_limit_hit(detour__fake_record *r) {
  if (r->not_kept == 0 || r->limit_noted)
    return false;
  r->limit_noted = true;
  return true;
}

/* Make room for one more element of size sz in *v. */
static bool grow(const detour_fake_mem *mem, void **v, size_t *cap, size_t n,
                 size_t sz) {
  if (n < *cap)
    return true;
  size_t nc = *cap ? *cap * 2 : 64;
  void *p = detour__fake_realloc(mem, *v, nc * sz);
  if (!p)
    return false;
  *v = p;
  *cap = nc;
  return true;
}

long detour__fake_record_conn(detour__fake_record *r,
                              const detour_fake_conn *c) {
  if (!r->keep || r->level == DETOUR_FAKE_RECORD_OFF ||
      !within_limits(r, r->nconns, 0))
    return -1;
  if (!grow(r->mem, (void **)&r->conns, &r->conns_cap, r->nconns, sizeof *c))
    return FAKE_REC_NOMEM;
  r->conns[r->nconns] = *c;
  return (long)r->nconns++;
}

detour_fake_conn *detour__fake_record_conn_at(detour__fake_record *r,
                                              long index) {
  return index >= 0 && (size_t)index < r->nconns ? &r->conns[index] : NULL;
}

long detour__fake_record_event(detour__fake_record *r,
                               const detour_fake_event *ev) {
  /* A LIMIT event about the record itself is kept past the limit, once. */
  bool about_record = ev->type == DETOUR_FAKE_EV_LIMIT && ev->conn == 0;
  if (!r->keep || r->level != DETOUR_FAKE_RECORD_FULL ||
      (!about_record && !within_limits(r, r->nevents, ev->len)))
    return -1;
  if (!grow(r->mem, (void **)&r->events, &r->events_cap, r->nevents,
            sizeof(detour__fake_event)))
    return FAKE_REC_NOMEM;
  detour__fake_event *e = &r->events[r->nevents];
  e->ev = *ev;
  e->ev.msg = NULL;
  e->msg_index = ev->msg ? ev->msg->index : 0;
  e->ev.data = detour__fake_memdup(r->mem, ev->data ? ev->data : "", ev->len);
  if (!e->ev.data)
    return FAKE_REC_NOMEM;
  r->bytes += ev->len;
  return (long)r->nevents++;
}

long detour__fake_record_message(detour__fake_record *r,
                                 const detour_fake_message *m) {
  if (!r->keep || r->level == DETOUR_FAKE_RECORD_OFF ||
      !within_limits(r, r->nmsgs, m->body_len))
    return -1;
  if (!grow(r->mem, (void **)&r->msgs, &r->msgs_cap, r->nmsgs,
            sizeof(detour__fake_message)))
    return FAKE_REC_NOMEM;
  detour_fake_message *d = &r->msgs[r->nmsgs].m;
  *d = *m;
  d->body_file = NULL;
  d->rcpts = NULL;
  d->nrcpts = 0;
  d->from = detour__fake_strdup(r->mem, m->from ? m->from : "");
  d->body = detour__fake_memdup(r->mem, m->body ? m->body : "", m->body_len);
  const char **rc =
      detour__fake_calloc(r->mem, m->nrcpts ? m->nrcpts : 1, sizeof *rc);
  d->rcpts = rc;
  bool ok = d->from && d->body && rc;
  for (size_t i = 0; ok && i < m->nrcpts; i++, d->nrcpts++)
    ok = (rc[i] = detour__fake_strdup(r->mem, m->rcpts[i])) != NULL;
  if (!ok) {
    free_message(r->mem, d);
    return FAKE_REC_NOMEM;
  }
  r->bytes += m->body_len;
  return (long)r->nmsgs++;
}

/* ------------------------------------------------------------------------ */
/* JSON                                                                      */

/* A JSON string of arbitrary bytes: each byte becomes one code point, so
 * the exact bytes come back by reading the string as Latin-1. */
static void json_chars(FILE *f, const char *p, size_t len) {
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
}

static void json_bytes(FILE *f, const char *p, size_t len) {
  fputc('"', f);
  json_chars(f, p, len);
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

static void json_message(FILE *f, const detour_fake_message *m,
                         const char *body_path) {
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
  if (body_path) {
    fputs(",\"body_file\":", f);
    json_str(f, body_path);
    return;
  }
  if (m->body || !m->body_file) {
    fputs(",\"body\":", f);
    json_bytes(f, m->body ? m->body : "", m->body ? m->body_len : 0);
    return;
  }
  /* A spooled body, streamed in blocks: one JSON string all the same. */
  char block[16384];
  size_t left = m->body_len;
  fputs(",\"body\":\"", f);
  rewind(m->body_file);
  while (left > 0) {
    size_t n = fread(block, 1, left < sizeof block ? left : sizeof block,
                     m->body_file);
    if (n == 0)
      break;
    json_chars(f, block, n);
    left -= n;
  }
  fputc('"', f);
}

/* An event as JSON; a message's body by name (body_path) instead of
 * inline when body_path is set. */
static int event_json(const detour_fake_event *ev, const char *server, FILE *f,
                      const char *body_path) {
  fputs("{", f);
  json_time(f, ev->time, ev->mono);
  fputs(",\"server\":", f);
  json_str(f, server);
  fprintf(f, ",\"conn\":%u,\"event\":\"%s\"", ev->conn,
          detour_fake_event_name(ev->type));
  if (ev->type == DETOUR_FAKE_EV_COMMAND || ev->type == DETOUR_FAKE_EV_REPLY ||
      ev->type == DETOUR_FAKE_EV_ACTION || ev->type == DETOUR_FAKE_EV_LIMIT ||
      ev->type == DETOUR_FAKE_EV_FINDING)
    fprintf(f, ",\"stage\":\"%s\"", detour_fake_stage_name(ev->stage));
  if (ev->type == DETOUR_FAKE_EV_REPLY)
    fprintf(f, ",\"code\":%d", ev->code);
  if (ev->type == DETOUR_FAKE_EV_CLOSE)
    fprintf(f, ",\"by\":\"%s\"", detour_fake_closer_name(ev->closed_by));
  if (ev->type == DETOUR_FAKE_EV_MESSAGE && ev->msg)
    json_message(f, ev->msg, body_path);
  else if (ev->data) {
    fputs(",\"data\":", f);
    json_bytes(f, ev->data, ev->len);
  }
  fputs("}\n", f);
  return ferror(f) ? DETOUR_EIO : 0;
}

int detour_fake_event_write_json(const detour_fake_event *ev,
                                 const char *server, FILE *f) {
  return event_json(ev, server, f, NULL);
}

/* ------------------------------------------------------------------------ */
/* A record file written as events happen                                    */

struct detour_fake_sink {
  int fd;
  char *dir; /* PATH.bodies, made when a first long body comes */
  bool dir_made;
  unsigned long bodies;
  bool failed;
};

detour_fake_sink *detour_fake_sink_open(const char *path) {
  const detour_fake_mem *mem = detour__fake_mem_global();
  detour_fake_sink *k = detour__fake_calloc(mem, 1, sizeof *k);
  size_t n = strlen(path);
  if (!k || !(k->dir = detour__fake_malloc(mem, n + sizeof ".bodies"))) {
    detour__fake_free(mem, k);
    errno = ENOMEM;
    return NULL;
  }
  memcpy(k->dir, path, n);
  memcpy(k->dir + n, ".bodies", sizeof ".bodies");
  k->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (k->fd < 0) {
    int e = errno;
    detour__fake_free(mem, k->dir);
    detour__fake_free(mem, k);
    errno = e;
    return NULL;
  }
  return k;
}

static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return DETOUR_EIO;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* A long body into a file of its own (PATH.bodies/NAME); its path in
 * out. */
static int write_body_file(detour_fake_sink *k, const detour_fake_message *m,
                           const char *server, char *out, size_t outlen) {
  char safe[64];
  size_t i = 0;
  for (; server[i] && i + 1 < sizeof safe; i++) {
    char c = server[i];
    safe[i] = isalnum((unsigned char)c) || c == '-' || c == '_' ? c : '_';
  }
  safe[i] = '\0';
  if (!k->dir_made && mkdir(k->dir, 0755) != 0 && errno != EEXIST)
    return DETOUR_EIO;
  k->dir_made = true;
  snprintf(out, outlen, "%s/%s-%u-%lu.eml", k->dir, safe, m->conn, ++k->bodies);
  int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return DETOUR_EIO;
  int rc = 0;
  if (m->body) {
    rc = write_all(fd, m->body, m->body_len);
  } else if (m->body_file) {
    char block[65536];
    size_t left = m->body_len;
    rewind(m->body_file);
    while (rc == 0 && left > 0) {
      size_t n = fread(block, 1, left < sizeof block ? left : sizeof block,
                       m->body_file);
      if (n == 0)
        rc = DETOUR_EIO;
      else
        rc = write_all(fd, block, n);
      left -= n;
    }
  }
  if (close(fd) != 0)
    rc = DETOUR_EIO;
  return rc;
}

int detour_fake_sink_write(detour_fake_sink *k, const detour_fake_event *ev,
                           const char *server) {
  char path[4096], *buf = NULL;
  size_t len = 0;
  const char *body_path = NULL;
  int rc = 0, body_rc = 0;
  if (ev->type == DETOUR_FAKE_EV_MESSAGE && ev->msg &&
      ev->msg->body_len > DETOUR_FAKE_SINK_INLINE) {
    body_rc =
        write_body_file(k, ev->msg, server ? server : "", path, sizeof path);
    body_path = path;
  }
  /* The whole line first, then one write: never half a line on disk. */
  FILE *m = open_memstream(&buf, &len);
  if (!m)
    rc = DETOUR_EIO;
  else if (event_json(ev, server, m, body_path) != 0)
    rc = DETOUR_EIO;
  if (m && fclose(m) != 0)
    rc = DETOUR_EIO;
  if (rc == 0)
    rc = write_all(k->fd, buf, len);
  free(buf); /* open_memstream's, from libc */
  rc = rc ? rc : body_rc;
  if (rc)
    k->failed = true;
  return rc;
}

int detour_fake_sink_close(detour_fake_sink *k) {
  if (!k)
    return 0;
  int rc = k->failed ? DETOUR_EIO : 0;
  if (close(k->fd) != 0)
    rc = DETOUR_EIO;
  detour__fake_free(detour__fake_mem_global(), k->dir);
  detour__fake_free(detour__fake_mem_global(), k);
  return rc;
}

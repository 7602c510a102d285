/*
 * load_messages.c - the `messages:` section of a scenario file: who sends
 * what to whom, and when. A generated body (`body_bytes:`) is charged to
 * the file's allocation budget before it is made: a 15 KB file once asked
 * for 256 bodies of 16 MiB.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "load_internal.h"

static detour__scn_message *cur_msg(ld *l) {
  return &l->s->msgs[l->s->nmsgs - 1];
}

static int on_msg_from(ld *l, yaml_node_t *v, const char *path) {
  return detour__scn_want_str(l, v, path, &cur_msg(l)->from);
}

static int on_msg_to(ld *l, yaml_node_t *v, const char *path) {
  detour__scn_message *m = cur_msg(l);
  if (m->to)
    return detour__scn_ld_fail(l, v, path, "given twice");
  return detour__scn_want_strings(l, v, path, &m->to, &m->nto);
}

static int on_msg_body(ld *l, yaml_node_t *v, const char *path) {
  detour__scn_message *m = cur_msg(l);
  const char *b = detour__scn_want_scalar(l, v, path, "the message text");
  if (!b)
    return DETOUR_EPARSE;
  free(m->body);
  m->body_len = v->data.scalar.length;
  m->body = detour__scn_memdup(b, m->body_len);
  return m->body ? 0 : DETOUR_ENOMEM;
}

static int on_msg_override(ld *l, yaml_node_t *v, const char *path) {
  const char *o = detour__scn_want_scalar(l, v, path, "allow, deny or none");
  if (!o)
    return DETOUR_EPARSE;
  if (!strcmp(o, "allow"))
    cur_msg(l)->override = DETOUR_OVERRIDE_ALLOW;
  else if (!strcmp(o, "deny"))
    cur_msg(l)->override = DETOUR_OVERRIDE_DENY;
  else if (!strcmp(o, "none"))
    cur_msg(l)->override = DETOUR_OVERRIDE_NONE;
  else
    return detour__scn_ld_fail(l, v, path,
                               "expected allow, deny or none, got '%s'", o);
  return 0;
}

static int on_msg_at(ld *l, yaml_node_t *v, const char *path) {
  return detour__scn_want_offset(l, v, path, &cur_msg(l)->at);
}

/* A body of N bytes ("Subject" line, then 78-byte lines of letters): a
 * message big enough to be mid-DATA for a while on a slow or long link. */
static int on_msg_body_bytes(ld *l, yaml_node_t *v, const char *path) {
  long n = 0;
  if (detour__scn_want_long(l, v, path, 32, 16L << 20, &n) < 0)
    return DETOUR_EPARSE;
  /* 16 MiB each, up to 256 messages: without the budget a 15 KB file
   * could make the runner allocate 4 GiB. */
  int rc = detour_yaml_charge(&l->y, v, path, (size_t)n + 1);
  if (rc < 0)
    return rc;
  detour__scn_message *m = cur_msg(l);
  char *b = malloc((size_t)n + 1);
  if (!b)
    return DETOUR_ENOMEM;
  const char head[] = "Subject: detour scenario\n\n";
  memcpy(b, head, sizeof head - 1);
  for (long i = (long)sizeof head - 1; i < n; i++)
    b[i] = (i + 1) % 78 == 0 || i == n - 1 ? '\n' : (char)('a' + i % 26);
  b[n] = '\0';
  free(m->body);
  m->body = b;
  m->body_len = (size_t)n;
  return 0;
}

static const key_entry msg_keys[] = {
    {"from", on_msg_from}, {"to", on_msg_to},
    {"body", on_msg_body}, {"override", on_msg_override},
    {"at", on_msg_at},     {"body_bytes", on_msg_body_bytes},
};

static const char default_body[] = "Subject: detour scenario\n\nhello\n";

int detour__scn_on_messages(ld *l, yaml_node_t *v, const char *path) {
  if (detour__scn_want_seq(l, v, path) < 0)
    return DETOUR_EPARSE;
  size_t i = 0;
  for (yaml_node_item_t *it = v->data.sequence.items.start;
       it < v->data.sequence.items.top; it++, i++) {
    char sub[64];
    snprintf(sub, sizeof sub, "messages[%zu]", i);
    yaml_node_t *item = detour__scn_ld_node(l, *it);
    if (l->s->nmsgs >= SCN_MAX_MESSAGES)
      return detour__scn_ld_fail(l, item, sub, "at most %d messages",
                                 SCN_MAX_MESSAGES);
    l->s->nmsgs++;
    int rc = WALK(l, item, sub, msg_keys);
    if (rc < 0)
      return rc;
    detour__scn_message *m = cur_msg(l);
    if (!m->from || !m->to || m->nto == 0)
      return detour__scn_ld_fail(l, item, sub,
                                 "a message needs 'from' and 'to'");
    if (!m->body) {
      m->body_len = sizeof default_body - 1;
      if (!(m->body = detour__scn_memdup(default_body, m->body_len)))
        return DETOUR_ENOMEM;
    }
  }
  return 0;
}

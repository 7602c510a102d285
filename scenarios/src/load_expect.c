/*
 * load_expect.c - the `expect:` section of a scenario file: outcome per
 * message and recipient, the exact log rows, warnings, what each fake
 * server saw, latency. Unknown keys are errors: a typo in an expectation
 * must not make a scenario pass by checking nothing.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "load_internal.h"

static detour__scn_expect *X(ld *l) { return &l->s->expect; }

static int outcome_from(const char *s, int *out) {
  for (int i = 0; i <= DETOUR_RCPT_DEFERRED; i++)
    if (!strcmp(s, detour_rcpt_outcome_name((detour_rcpt_outcome)i))) {
      *out = i;
      return 0;
    }
  return DETOUR_EPARSE;
}

static int want_outcome(ld *l, yaml_node_t *v, const char *path, int *out) {
  const char *s =
      detour__scn_want_scalar(l, v, path, "delivered, aborted or deferred");
  if (!s)
    return DETOUR_EPARSE;
  if (outcome_from(s, out) < 0)
    return detour__scn_ld_fail(l, v, path,
                               "expected delivered, aborted or deferred, got "
                               "'%s'",
                               s);
  return 0;
}

static int on_x_status(ld *l, yaml_node_t *v, const char *path) {
  detour__scn_expect *x = X(l);
  if (v->type == YAML_SCALAR_NODE) {
    int st = 0;
    if (want_outcome(l, v, path, &st) < 0)
      return DETOUR_EPARSE;
    for (size_t i = 0; i < SCN_MAX_MESSAGES; i++)
      x->status[i] = st;
    x->nstatus = SCN_MAX_MESSAGES; /* trimmed to the messages at the end */
    return 0;
  }
  if (detour__scn_want_seq(l, v, path) < 0)
    return DETOUR_EPARSE;
  x->nstatus = 0;
  for (yaml_node_item_t *it = v->data.sequence.items.start;
       it < v->data.sequence.items.top; it++) {
    if (x->nstatus >= SCN_MAX_MESSAGES)
      return detour__scn_ld_fail(l, v, path, "too many entries");
    if (want_outcome(l, detour__scn_ld_node(l, *it), path,
                     &x->status[x->nstatus++]) < 0)
      return DETOUR_EPARSE;
  }
  return 0;
}

static int on_x_exit(ld *l, yaml_node_t *v, const char *path) {
  long e = 0;
  if (detour__scn_want_long(l, v, path, 0, 255, &e) < 0)
    return DETOUR_EPARSE;
  X(l)->exit_code = (int)e;
  return 0;
}

/* recipients: { addr: delivered } or { addr: { outcome, server, message } } */
static int read_rcpt_expect(ld *l, const char *addr, yaml_node_t *v,
                            const char *path) {
  detour__scn_expect *x = X(l);
  size_t cap = x->nrcpts; /* grown one at a time: few entries */
  if (detour__scn_grow(&x->rcpts, &cap, x->nrcpts, sizeof *x->rcpts) < 0)
    return DETOUR_ENOMEM;
  detour__scn_rcpt_expect *r = &x->rcpts[x->nrcpts++];
  memset(r, 0, sizeof *r);
  r->message = -1;
  r->outcome = -1;
  if (!(r->recipient = strdup(addr)))
    return DETOUR_ENOMEM;
  if (v->type == YAML_SCALAR_NODE)
    return want_outcome(l, v, path, &r->outcome);
  if (detour__scn_want_map(l, v, path) < 0)
    return DETOUR_EPARSE;
  for (yaml_node_pair_t *p = v->data.mapping.pairs.start;
       p < v->data.mapping.pairs.top; p++) {
    const char *k = detour__scn_ld_text(detour__scn_ld_node(l, p->key));
    yaml_node_t *val = detour__scn_ld_node(l, p->value);
    char sub[300];
    snprintf(sub, sizeof sub, "%s.%s", path, k ? k : "?");
    long m = 0;
    int rc, idx;
    if (k && !strcmp(k, "outcome")) {
      rc = want_outcome(l, val, sub, &r->outcome);
    } else if (k && !strcmp(k, "server")) {
      const char *sv =
          detour__scn_want_scalar(l, val, sub, "a server name or none");
      rc = !sv                  ? DETOUR_EPARSE
           : strcmp(sv, "none") ? detour__scn_want_server(l, val, sub, &idx)
                                : 0;
      if (rc == 0 && !(r->server = strdup(sv)))
        rc = DETOUR_ENOMEM;
    } else if (k && !strcmp(k, "message")) {
      rc = detour__scn_want_long(l, val, sub, 0, SCN_MAX_MESSAGES - 1, &m);
      r->message = (int)m;
    } else {
      rc = detour__scn_ld_fail(
          l, detour__scn_ld_node(l, p->key), sub,
          "unknown key (expected one of: outcome, server, message)");
    }
    if (rc < 0)
      return rc;
  }
  return 0;
}

static int on_x_recipients(ld *l, yaml_node_t *v, const char *path) {
  return detour__scn_for_each_entry(l, v, path, "an address", read_rcpt_expect);
}

/* --- log rows --- */

static detour__scn_row_expect *cur_row(ld *l) {
  return &X(l)->log[X(l)->nlog - 1];
}

static int on_row_t(ld *l, yaml_node_t *v, const char *path) {
  cur_row(l)->has_t = true;
  return detour__scn_want_offset(l, v, path, &cur_row(l)->t);
}
static int on_row_recipient(ld *l, yaml_node_t *v, const char *path) {
  return detour__scn_want_str(l, v, path, &cur_row(l)->recipient);
}
static int on_row_server(ld *l, yaml_node_t *v, const char *path) {
  return detour__scn_want_str(l, v, path, &cur_row(l)->server);
}
static int on_row_result(ld *l, yaml_node_t *v, const char *path) {
  return detour__scn_want_str(l, v, path, &cur_row(l)->result);
}
static int on_row_detail(ld *l, yaml_node_t *v, const char *path) {
  return detour__scn_want_str(l, v, path, &cur_row(l)->detail);
}
static int on_row_class(ld *l, yaml_node_t *v, const char *path) {
  const char *s = detour__scn_want_scalar(l, v, path, "a class");
  detour_class c;
  if (!s)
    return DETOUR_EPARSE;
  if (detour_class_from_name(s, &c) < 0)
    return detour__scn_ld_fail(l, v, path,
                               "expected CONNECT, TRANSIENT, SWITCH, ABORT or "
                               "NONE, got '%s'",
                               s);
  cur_row(l)->cls = (int)c;
  return 0;
}
static int on_row_attempt(ld *l, yaml_node_t *v, const char *path) {
  long a = 0;
  int rc = detour__scn_want_long(l, v, path, 1, 1000000, &a);
  cur_row(l)->attempt = (int)a;
  return rc;
}
static int on_row_message(ld *l, yaml_node_t *v, const char *path) {
  long a = 0;
  int rc = detour__scn_want_long(l, v, path, 0, SCN_MAX_MESSAGES - 1, &a);
  cur_row(l)->message = (int)a;
  return rc;
}
static int on_row_kind(ld *l, yaml_node_t *v, const char *path) {
  const char *s = detour__scn_want_scalar(l, v, path, "a row kind");
  if (!s)
    return DETOUR_EPARSE;
  for (int k = 0; k < DETOUR_LOG_KIND_COUNT; k++)
    if (!strcmp(s, detour_log_kind_name((detour_log_kind)k))) {
      cur_row(l)->kind = k;
      return 0;
    }
  return detour__scn_ld_fail(
      l, v, path,
      "expected connect, smtp, warning, breaker, race, tls or auth, "
      "got '%s'",
      s);
}

static const key_entry row_keys[] = {
    {"t", on_row_t},           {"recipient", on_row_recipient},
    {"server", on_row_server}, {"result", on_row_result},
    {"class", on_row_class},   {"attempt", on_row_attempt},
    {"kind", on_row_kind},     {"message", on_row_message},
    {"detail", on_row_detail},
};

static int on_x_log(ld *l, yaml_node_t *v, const char *path) {
  detour__scn_expect *x = X(l);
  if (detour__scn_want_seq(l, v, path) < 0)
    return DETOUR_EPARSE;
  x->has_log = true;
  size_t cap = 0, i = 0;
  for (yaml_node_item_t *it = v->data.sequence.items.start;
       it < v->data.sequence.items.top; it++, i++) {
    yaml_node_t *item = detour__scn_ld_node(l, *it);
    char sub[64];
    snprintf(sub, sizeof sub, "%s[%zu]", path, i);
    if (detour__scn_grow(&x->log, &cap, x->nlog, sizeof *x->log) < 0)
      return DETOUR_ENOMEM;
    detour__scn_row_expect *r = &x->log[x->nlog++];
    r->cls = r->attempt = r->kind = r->message = -1;
    r->line = (int)item->start_mark.line + 1;
    r->col = (int)item->start_mark.column + 1;
    int rc = WALK(l, item, sub, row_keys);
    if (rc < 0)
      return rc;
  }
  return 0;
}

static int on_x_warnings(ld *l, yaml_node_t *v, const char *path) {
  X(l)->has_warnings = true;
  if (v->type == YAML_SEQUENCE_NODE &&
      v->data.sequence.items.start == v->data.sequence.items.top)
    return 0; /* [] : no warning at all */
  return detour__scn_want_strings(l, v, path, &X(l)->warnings,
                                  &X(l)->nwarnings);
}

/* Per-server mappings: { a: ..., b: ... } */
typedef int (*per_server_fn)(ld *l, detour__scn_server_expect *se,
                             yaml_node_t *v, const char *path);

static int per_server(ld *l, yaml_node_t *v, const char *path,
                      per_server_fn fn) {
  if (detour__scn_want_map(l, v, path) < 0)
    return DETOUR_EPARSE;
  for (yaml_node_pair_t *p = v->data.mapping.pairs.start;
       p < v->data.mapping.pairs.top; p++) {
    int idx;
    const char *k = detour__scn_ld_text(detour__scn_ld_node(l, p->key));
    char sub[300];
    snprintf(sub, sizeof sub, "%s.%s", path, k ? k : "?");
    if (detour__scn_want_server(l, detour__scn_ld_node(l, p->key), sub, &idx) <
        0)
      return DETOUR_EPARSE;
    int rc = fn(l, &X(l)->servers[idx], detour__scn_ld_node(l, p->value), sub);
    if (rc < 0)
      return rc;
  }
  return 0;
}

static int conns_fn(ld *l, detour__scn_server_expect *se, yaml_node_t *v,
                    const char *path) {
  return detour__scn_want_long(l, v, path, 0, 1000000, &se->connections);
}

static int times_fn(ld *l, detour__scn_server_expect *se, yaml_node_t *v,
                    const char *path) {
  if (detour__scn_want_seq(l, v, path) < 0)
    return DETOUR_EPARSE;
  se->has_connect_times = true;
  size_t cap = 0;
  for (yaml_node_item_t *it = v->data.sequence.items.start;
       it < v->data.sequence.items.top; it++) {
    if (detour__scn_grow(&se->connect_times, &cap, se->nconnect_times,
                         sizeof *se->connect_times) < 0)
      return DETOUR_ENOMEM;
    if (detour__scn_want_offset(l, detour__scn_ld_node(l, *it), path,
                                &se->connect_times[se->nconnect_times++]) < 0)
      return DETOUR_EPARSE;
  }
  return 0;
}

static int commands_fn(ld *l, detour__scn_server_expect *se, yaml_node_t *v,
                       const char *path) {
  se->has_commands = true;
  if (v->type == YAML_SEQUENCE_NODE &&
      v->data.sequence.items.start == v->data.sequence.items.top)
    return 0;
  return detour__scn_want_strings(l, v, path, &se->commands, &se->ncommands);
}

static int read_received(ld *l, detour__scn_received_expect *r, yaml_node_t *v,
                         const char *path) {
  r->complete = r->code = -1;
  if (detour__scn_want_map(l, v, path) < 0)
    return DETOUR_EPARSE;
  for (yaml_node_pair_t *p = v->data.mapping.pairs.start;
       p < v->data.mapping.pairs.top; p++) {
    const char *k = detour__scn_ld_text(detour__scn_ld_node(l, p->key));
    yaml_node_t *val = detour__scn_ld_node(l, p->value);
    char sub[300];
    snprintf(sub, sizeof sub, "%s.%s", path, k ? k : "?");
    int rc;
    long code;
    bool b = false;
    if (k && !strcmp(k, "from")) {
      rc = detour__scn_want_str(l, val, sub, &r->from);
    } else if (k && !strcmp(k, "to")) {
      r->has_to = true;
      rc = detour__scn_want_strings(l, val, sub, &r->to, &r->nto);
    } else if (k && !strcmp(k, "body")) {
      rc = detour__scn_want_str(l, val, sub, &r->body);
      r->body_len = val->type == YAML_SCALAR_NODE ? val->data.scalar.length : 0;
      if (rc == 0) { /* keep NULs and exact length */
        free(r->body);
        r->body = detour__scn_memdup(val->data.scalar.value, r->body_len);
        rc = r->body ? 0 : DETOUR_ENOMEM;
      }
    } else if (k && !strcmp(k, "complete")) {
      rc = detour__scn_want_bool(l, val, sub, &b);
      r->complete = b;
    } else if (k && !strcmp(k, "code")) {
      rc = detour__scn_want_long(l, val, sub, 0, 599, &code);
      r->code = (int)code;
    } else {
      rc = detour__scn_ld_fail(l, detour__scn_ld_node(l, p->key), sub,
                               "unknown key (expected one of: "
                               "from, to, body, complete, code)");
    }
    if (rc < 0)
      return rc;
  }
  return 0;
}

static int received_fn(ld *l, detour__scn_server_expect *se, yaml_node_t *v,
                       const char *path) {
  if (detour__scn_want_seq(l, v, path) < 0)
    return DETOUR_EPARSE;
  se->has_received = true;
  size_t n =
      (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
  se->received = calloc(n ? n : 1, sizeof *se->received);
  if (!se->received)
    return DETOUR_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    char sub[320];
    snprintf(sub, sizeof sub, "%s[%zu]", path, i);
    se->nreceived++;
    int rc = read_received(
        l, &se->received[i],
        detour__scn_ld_node(l, v->data.sequence.items.start[i]), sub);
    if (rc < 0)
      return rc;
  }
  return 0;
}

static int on_x_connections(ld *l, yaml_node_t *v, const char *path) {
  return per_server(l, v, path, conns_fn);
}
static int on_x_connect_times(ld *l, yaml_node_t *v, const char *path) {
  return per_server(l, v, path, times_fn);
}
static int on_x_received(ld *l, yaml_node_t *v, const char *path) {
  return per_server(l, v, path, received_fn);
}
static int on_x_commands(ld *l, yaml_node_t *v, const char *path) {
  return per_server(l, v, path, commands_fn);
}

static int on_lat_max(ld *l, yaml_node_t *v, const char *path) {
  return detour__scn_want_offset(l, v, path, &X(l)->latency_max);
}
static int on_lat_min(ld *l, yaml_node_t *v, const char *path) {
  return detour__scn_want_offset(l, v, path, &X(l)->latency_min);
}
static const key_entry latency_keys[] = {{"max", on_lat_max},
                                         {"min", on_lat_min}};
static int on_x_latency(ld *l, yaml_node_t *v, const char *path) {
  return WALK(l, v, path, latency_keys);
}
static int on_x_tolerance(ld *l, yaml_node_t *v, const char *path) {
  return detour__scn_want_offset(l, v, path, &X(l)->tolerance);
}

static const key_entry expect_keys[] = {
    {"status", on_x_status},
    {"exit", on_x_exit},
    {"recipients", on_x_recipients},
    {"log", on_x_log},
    {"warnings", on_x_warnings},
    {"connections", on_x_connections},
    {"connect_times", on_x_connect_times},
    {"received", on_x_received},
    {"commands", on_x_commands},
    {"latency", on_x_latency},
    {"tolerance", on_x_tolerance},
};

int detour__scn_on_expect(ld *l, yaml_node_t *v, const char *path) {
  return WALK(l, v, path, expect_keys);
}

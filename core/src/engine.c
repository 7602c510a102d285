/*
 * engine.c - the failover engine: messages, server choice and retries.
 *
 * A pure state machine (STYLE.md "sans-I/O"): events in, actions out, the
 * time an argument of every entry point. No clock, socket, sleep or print
 * here; tests/check_engine_pure.sh keeps it that way.
 *
 * The rules it applies (docs/rules.md has them in full):
 *  R2  an attempt is a TCP connect (a log row when it fails) and then an
 *      SMTP transaction (a log row per recipient).
 *  R3  the classification table turns each failure into a class.
 *  R4  detour (any server but priority 1) is allowed per message by the
 *      permission table or the per-send override.
 *  R5  CONNECT and SWITCH move to the next allowed server at once;
 *      TRANSIENT waits the retry interval and reconnects to the same one.
 *  R6  without detour (or without a next server) the priority-1 server is
 *      retried every interval; each server has max_attempts attempts per
 *      message, reconnects included.
 *  R7  a server that reaches its limit is warned about once ("configuration
 *      error") and skipped from then on; when every allowed server has
 *      failed in a round, wait the interval and start again at priority 1;
 *      when all are exhausted the message is deferred.
 *  R10 each recipient has its own outcome; one that was delivered is never
 *      sent again.
 *  R12 optional circuit breaker (skip a server that just failed with
 *      CONNECT/SWITCH for a hold-down time) and connection racing (start
 *      the next server's connect when the current one has not completed
 *      within race_delay; the first to complete wins).
 *
 * Out of memory. Every allocation goes through the caller's detour_mem.
 * When one fails inside an event, the engine stops for good rather than
 * go on with an action missing (a lost CLOSE leaks a socket, a lost DONE
 * hangs the caller): it queues nothing more, and detour_engine_next_action
 * hands out, after what was already queued, an ERROR action, a CLOSE for
 * every connection still open and, for every unfinished message, the
 * outcome of each recipient not yet reported and its DONE. Those actions
 * need no allocation: they point into state the engine already holds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine_internal.h"

/* ------------------------------------------------------------------------ */
/* Actions                                                                   */

static void engine_fail(detour_engine *e, int err) {
  if (!e->failed)
    e->failed = err;
}

/* Queue an action. After a failure nothing more is queued: the actions of
 * the failure sweep take over (see the top of the file). */
bool detour__engine_push(detour_engine *e, const detour_action *a) {
  if (e->failed)
    return false;
  if (detour__queue_push(&e->queue, a))
    return true;
  engine_fail(e, DETOUR_ENOMEM);
  return false;
}

/* Every event starts here: what the last pop handed out is released, and
 * a failed engine takes no more events. */
static bool engine_enter(detour_engine *e) {
  detour__queue_release_popped(&e->queue);
  return !e->failed;
}

void detour__engine_send(detour_engine *e, unsigned conn, const char *data,
                         size_t len) {
  detour_action a = {.type = DETOUR_ACT_SEND, .conn = conn};
  a.u.send.data = data;
  a.u.send.len = len;
  detour__engine_push(e, &a);
}

static void push_warn(detour_engine *e, const char *text) {
  detour_action a = {.type = DETOUR_ACT_WARN};
  a.u.warn.text = text;
  detour__engine_push(e, &a);
}

void detour__engine_log(detour_engine *e, detour_ms now, detour_log_kind kind,
                        const engine_rcpt *r, size_t server,
                        const char *address, const char *result,
                        detour_class cls, const char *detail) {
  detour_action a = {.type = DETOUR_ACT_LOG};
  detour_log_row *row = &a.u.log;
  row->time = now;
  row->kind = kind;
  row->message = e->active->index;
  row->recipient = r->addr;
  row->server = e->labels[server];
  row->address = address ? address : "";
  row->priority = e->cfg.servers[server].priority;
  row->attempt = e->round.attempts[server];
  row->result = result;
  row->cls = cls;
  row->detail = detail ? detail : "";
  detour__engine_push(e, &a);
}

/* One row per recipient still to be delivered. */
static void log_pending(detour_engine *e, detour_ms now, detour_log_kind k,
                        size_t server, const char *result, detour_class cls,
                        const char *detail) {
  engine_message *m = e->active;
  for (size_t i = 0; i < m->nrcpts; i++)
    if (m->rcpts[i].state == RCPT_PENDING)
      detour__engine_log(e, now, k, &m->rcpts[i], server, "", result, cls,
                         detail);
}

void detour__engine_rcpt_final(detour_engine *e, size_t index,
                               detour_rcpt_outcome outcome) {
  engine_message *m = e->active;
  for (size_t i = 0; i < m->nrcpts; i++) {
    engine_rcpt *r = &m->rcpts[i];
    bool dup = r->state == RCPT_DUPLICATE && r->dup_of == index;
    if (i != index && !dup)
      continue;
    detour_action a = {.type = DETOUR_ACT_RCPT_RESULT};
    a.u.rcpt.message = m->index;
    a.u.rcpt.index = i;
    a.u.rcpt.recipient = r->addr;
    a.u.rcpt.outcome = outcome;
    int server = m->rcpts[index].server;
    a.u.rcpt.server = server < 0 ? -1 : (int)e->configured[server];
    a.u.rcpt.detail = m->rcpts[index].detail;
    r->reported = detour__engine_push(e, &a);
  }
}

/* ------------------------------------------------------------------------ */
/* Connections                                                               */

static engine_conn *find_conn(detour_engine *e, unsigned id) {
  for (size_t i = 0; i < ENGINE_MAX_CONNS; i++)
    if (e->conns[i].role != CONN_FREE && e->conns[i].id == id)
      return &e->conns[i];
  return NULL;
}

/* Every connection gets exactly one CLOSE, whatever ended it (after a
 * failure, from the sweep). */
void detour__engine_close_conn(detour_engine *e, engine_conn *c) {
  detour_action a = {.type = DETOUR_ACT_CLOSE, .conn = c->id};
  if (!detour__engine_push(e, &a))
    return;
  c->role = CONN_FREE;
  c->deadline = DETOUR_NO_DEADLINE;
}

static engine_conn *alloc_conn(detour_engine *e) {
  for (size_t i = 0; i < ENGINE_MAX_CONNS; i++)
    if (e->conns[i].role == CONN_FREE)
      return &e->conns[i];
  /* Full of connections waiting for a QUIT reply: drop the oldest. */
  engine_conn *oldest = NULL;
  for (size_t i = 0; i < ENGINE_MAX_CONNS; i++)
    if (e->conns[i].role == CONN_QUITTING &&
        (!oldest || e->conns[i].id < oldest->id))
      oldest = &e->conns[i];
  if (!oldest)
    return NULL;
  detour__engine_close_conn(e, oldest);
  return oldest;
}

static size_t connecting_count(const detour_engine *e) {
  size_t n = 0;
  for (size_t i = 0; i < ENGINE_MAX_CONNS; i++)
    n += e->conns[i].role == CONN_CONNECTING;
  return n;
}

/* ------------------------------------------------------------------------ */
/* Server choice (R4-R7, R12)                                                */

static bool server_allowed(const detour_engine *e, size_t i) {
  return i == 0 || e->round.detour_allowed;
}

static bool server_usable(const detour_engine *e, size_t i) {
  return server_allowed(e, i) && !e->round.exhausted[i];
}

/* The first usable server at or after `from`, or nservers. */
static size_t usable_from(const detour_engine *e, size_t from) {
  while (from < e->cfg.nservers && !server_usable(e, from))
    from++;
  return from;
}

static bool held_down(const detour_engine *e, size_t i, detour_ms now) {
  return e->cfg.breaker_hold > 0 && e->hold_until[i] > now;
}

static void breaker_trip(detour_engine *e, size_t server, detour_ms now) {
  if (e->cfg.breaker_hold > 0)
    e->hold_until[server] = now + e->cfg.breaker_hold;
}

/* R12 breaker: pass over servers held down when a later usable server is
 * not; if every candidate is held down, use the first (mail never stops). */
static size_t skip_held(detour_engine *e, size_t i, detour_ms now) {
  size_t j = i;
  while (j < e->cfg.nservers && held_down(e, j, now))
    j = usable_from(e, j + 1);
  if (j >= e->cfg.nservers)
    return i;
  for (size_t k = i; k < j; k = usable_from(e, k + 1)) {
    char why[128];
    snprintf(why, sizeof why, "held down until t=%lld ms after a failure",
             (long long)e->hold_until[k]);
    log_pending(e, now, DETOUR_LOG_BREAKER, k, "skipped (breaker)",
                DETOUR_CLASS_NONE, why);
  }
  return j;
}

static void start_connect(detour_engine *e, size_t server, detour_ms now) {
  engine_conn *c = alloc_conn(e);
  if (!c) /* cannot happen with ENGINE_MAX_CONNS > racing + quitting */
    engine_fail(e, DETOUR_ENOMEM);
  if (!c || e->failed)
    return;
  e->round.attempts[server]++;
  c->id = ++e->next_conn_id;
  c->role = CONN_CONNECTING;
  c->server = server;
  c->deadline = now + e->cfg.timeouts.connect;
  detour_action a = {.type = DETOUR_ACT_CONNECT, .conn = c->id};
  a.u.connect.server = e->configured[server];
  a.u.connect.host = e->cfg.servers[server].host;
  a.u.connect.port = e->cfg.servers[server].port;
  if (!detour__engine_push(e, &a))
    c->role = CONN_FREE; /* never announced: nothing to close */
}

/* The next server after `after` that a race could start, or nservers. */
static size_t race_candidate(const detour_engine *e, size_t after) {
  return usable_from(e, after + 1);
}

static void start_attempt(detour_engine *e, size_t server, detour_ms now) {
  engine_round *rd = &e->round;
  server = skip_held(e, server, now);
  rd->waiting = false;
  rd->current = server;
  rd->race_at = DETOUR_NO_DEADLINE;
  if (e->cfg.race_delay > 0 && race_candidate(e, server) < e->cfg.nservers)
    rd->race_at = now + e->cfg.race_delay;
  start_connect(e, server, now);
}

static void wait_then(detour_engine *e, size_t server, detour_ms now) {
  engine_round *rd = &e->round;
  rd->waiting = true;
  rd->wait_server = server;
  rd->wait_until = now + e->cfg.retry_interval;
  rd->race_at = DETOUR_NO_DEADLINE;
}

static void finish_message(detour_engine *e, detour_ms now);

/* R7: the limit was reached: warn once, skip the server from now on. */
static void exhaust(detour_engine *e, size_t server, detour_ms now) {
  engine_round *rd = &e->round;
  if (rd->exhausted[server])
    return;
  rd->exhausted[server] = true;
  char text[512];
  snprintf(text, sizeof text,
           "configuration error: server %s (priority %d) failed %u "
           "attempts for message %zu; its address is likely wrong",
           e->labels[server], e->cfg.servers[server].priority,
           rd->attempts[server], e->active->index);
  log_pending(e, now, DETOUR_LOG_WARNING, server, "configuration error",
              DETOUR_CLASS_NONE, text);
  push_warn(e, text);
}

/* Decide what follows a failed attempt at `server` with class cls. */
static void after_failure(detour_engine *e, size_t server, detour_class cls,
                          detour_ms now) {
  engine_round *rd = &e->round;
  if (rd->attempts[server] >= e->cfg.max_attempts)
    exhaust(e, server, now);
  if (cls == DETOUR_CLASS_TRANSIENT && !rd->exhausted[server]) {
    wait_then(e, server, now); /* R3: same server after the interval */
    return;
  }
  size_t next = usable_from(e, server + 1);
  if (next < e->cfg.nservers) {
    start_attempt(e, next, now); /* R5: at once */
    return;
  }
  size_t first = usable_from(e, 0);
  if (first >= e->cfg.nservers) {
    finish_message(e, now); /* R7: every allowed server exhausted */
    return;
  }
  wait_then(e, first, now); /* R6/R7: next round after the interval */
}

static bool any_pending(const engine_message *m) {
  for (size_t i = 0; i < m->nrcpts; i++)
    if (m->rcpts[i].state == RCPT_PENDING)
      return true;
  return false;
}

/* The class that decides for the recipients left after a session: a
 * SWITCH (or CONNECT) of any of them moves everyone on; else TRANSIENT. */
static detour_class leftover_class(const engine_message *m) {
  detour_class cls = DETOUR_CLASS_TRANSIENT;
  for (size_t i = 0; i < m->nrcpts; i++) {
    const engine_rcpt *r = &m->rcpts[i];
    if (r->state == RCPT_PENDING && (r->last_class == DETOUR_CLASS_SWITCH ||
                                     r->last_class == DETOUR_CLASS_CONNECT))
      cls = DETOUR_CLASS_SWITCH;
  }
  return cls;
}

/* The session is over; pick what comes next (R5-R7). */
static void session_over(detour_engine *e, detour_ms now) {
  engine_message *m = e->active;
  if (!any_pending(m)) {
    finish_message(e, now);
    return;
  }
  after_failure(e, e->session.server, leftover_class(m), now);
}

/* R3/R13: a failure whose rule asks for it (authentication, TLS) warns
 * once per server and message, naming the server and the reason. */
static void warn_config(detour_engine *e, size_t server, const char *reason,
                        const char *detail) {
  if (e->round.auth_warned[server])
    return;
  e->round.auth_warned[server] = true;
  char text[512];
  snprintf(text, sizeof text,
           "configuration error: server %s refused us: %s (%s); check its "
           "TLS and authentication settings",
           e->labels[server], reason, detail);
  push_warn(e, text);
}

/* Act on what a session event led to: the warning, the breaker (R12),
 * then, when the session ended, the next step. */
static void act_on(detour_engine *e, detour_ms now, const session_outcome *o) {
  size_t server = e->session.server;
  if (o->warn)
    warn_config(e, server, o->warn_reason, o->warn_detail);
  if (o->trip_breaker)
    breaker_trip(e, server, now);
  if (o->worked)
    e->hold_until[server] = 0;
  if (o->give_up)
    finish_message(e, now); /* the body cannot be read: no retry helps */
  else if (o->over)
    session_over(e, now);
}

/* ------------------------------------------------------------------------ */
/* Messages                                                                  */

static void free_message(detour_engine *e, engine_message *m) {
  const detour_mem *mem = &e->mem;
  detour__mem_free(mem, m->from);
  for (size_t i = 0; m->rcpts && i < m->nrcpts; i++)
    detour__mem_free(mem, m->rcpts[i].addr);
  detour__mem_free(mem, m->rcpts);
  detour__mem_free(mem, m->body);
  memset(m, 0, sizeof *m);
}

static void begin_message(detour_engine *e, detour_ms now) {
  engine_message *m = &e->messages[0];
  e->active = m;
  memset(&e->round, 0, sizeof e->round);
  e->round.race_at = DETOUR_NO_DEADLINE;
  const char **addrs = detour__mem_alloc(&e->mem, m->nrcpts * sizeof *addrs);
  if (!addrs) {
    engine_fail(e, DETOUR_ENOMEM);
    return;
  }
  size_t n = 0;
  for (size_t i = 0; i < m->nrcpts; i++)
    if (m->rcpts[i].state != RCPT_DUPLICATE)
      addrs[n++] = m->rcpts[i].addr;
  e->round.detour_allowed =
      detour_policy_allows(e->cfg.policy, m->from, addrs, n, m->override);
  detour__mem_free(&e->mem, addrs);
  start_attempt(e, 0, now);
}

static void finish_message(detour_engine *e, detour_ms now) {
  engine_message *m = e->active;
  bool deferred = false, aborted = false;
  for (size_t i = 0; i < m->nrcpts; i++) {
    engine_rcpt *r = &m->rcpts[i];
    if (r->state == RCPT_PENDING || r->state == RCPT_IN_TXN) {
      r->state = RCPT_DEFERRED;
      detour__engine_rcpt_final(e, i, DETOUR_RCPT_DEFERRED);
    }
    deferred |= r->state == RCPT_DEFERRED;
    aborted |= r->state == RCPT_ABORTED;
  }
  detour_action a = {.type = DETOUR_ACT_DONE};
  a.u.done.message = m->index;
  a.u.done.status = deferred  ? DETOUR_DONE_DEFERRED
                    : aborted ? DETOUR_DONE_ABORTED
                              : DETOUR_DONE_DELIVERED;
  if (!detour__engine_push(e, &a))
    return; /* the failure sweep reports this message */
  free_message(e, m);
  memmove(&e->messages[0], &e->messages[1],
          (e->nmessages - 1) * sizeof *e->messages);
  e->nmessages--;
  e->active = NULL;
  e->round.waiting = false;
  e->round.race_at = DETOUR_NO_DEADLINE;
  if (e->nmessages > 0)
    begin_message(e, now);
}

/* Copy the recipients; a repeated address (case-insensitive) shares the
 * first one's fate and is sent only once (R10). */
static int copy_rcpts(detour_engine *e, engine_message *m,
                      const detour_message *in) {
  m->rcpts = detour__mem_calloc(&e->mem, in->nrcpts, sizeof *m->rcpts);
  if (!m->rcpts)
    return DETOUR_ENOMEM;
  m->nrcpts = in->nrcpts;
  for (size_t i = 0; i < in->nrcpts; i++) {
    engine_rcpt *r = &m->rcpts[i];
    r->server = -1;
    r->addr = detour__mem_strdup(&e->mem, in->rcpts[i]);
    if (!r->addr)
      return DETOUR_ENOMEM;
    for (size_t j = 0; j < i; j++)
      if (m->rcpts[j].state != RCPT_DUPLICATE &&
          strcasecmp(m->rcpts[j].addr, r->addr) == 0) {
        r->state = RCPT_DUPLICATE;
        r->dup_of = j;
        break;
      }
  }
  return 0;
}

static bool address_ok(const char *a) {
  /* The address goes between <> on one command line. */
  size_t n = a ? strlen(a) : 0;
  if (n > 900)
    return false;
  return a && strpbrk(a, "<>\r\n") == NULL;
}

static int check_message(const detour_message *m) {
  if (!m || !m->from || !address_ok(m->from) || m->nrcpts == 0 ||
      m->nrcpts > DETOUR_MAX_RECIPIENTS || !m->rcpts ||
      (!m->source && !m->body && m->body_len) ||
      (m->source && !m->source->read_at))
    return DETOUR_EINVAL;
  for (size_t i = 0; i < m->nrcpts; i++)
    if (!address_ok(m->rcpts[i]) || !m->rcpts[i][0])
      return DETOUR_EINVAL;
  return 0;
}

/* The body: the caller's source, or a copy of the bytes given. */
static int copy_body(detour_engine *e, engine_message *m,
                     const detour_message *in) {
  if (in->source) {
    m->has_source = true;
    m->source = *in->source;
    return 0;
  }
  m->body_len = in->body_len;
  m->body = detour__mem_alloc(&e->mem, in->body_len);
  if (!m->body)
    return DETOUR_ENOMEM;
  if (in->body_len)
    memcpy(m->body, in->body, in->body_len);
  return 0;
}

static int copy_message(detour_engine *e, engine_message *m,
                        const detour_message *in, size_t index) {
  memset(m, 0, sizeof *m);
  m->index = index;
  m->override = in->override;
  m->from = detour__mem_strdup(&e->mem, in->from);
  int rc = m->from ? copy_body(e, m, in) : DETOUR_ENOMEM;
  if (rc == 0)
    rc = copy_rcpts(e, m, in);
  if (rc == 0)
    rc = detour__body_measure(e, m); /* SIZE= and BODY=8BITMIME need it first */
  if (rc < 0)
    free_message(e, m);
  return rc;
}

/* ------------------------------------------------------------------------ */
/* Public API                                                                */

/* Try servers in priority order; remember where each was configured. */
static void sort_servers(detour_engine *e) {
  detour_config *c = &e->cfg;
  detour_config_priority_order(c, e->configured);
  detour_server sorted[DETOUR_MAX_SERVERS];
  for (size_t k = 0; k < c->nservers; k++) {
    sorted[k] = c->servers[e->configured[k]];
    e->sorted[e->configured[k]] = k;
  }
  memcpy(c->servers, sorted, c->nservers * sizeof *sorted);
}

static void make_labels(detour_engine *e) {
  for (size_t i = 0; i < e->cfg.nservers; i++) {
    const detour_server *s = &e->cfg.servers[i];
    bool v6 = strchr(s->host, ':') != NULL;
    snprintf(e->labels[i], sizeof e->labels[i], v6 ? "[%s]:%u" : "%s:%u",
             s->host, (unsigned)s->port);
  }
}

#define BLOCK_MIN 16 /* room for a body byte pair and the final ".\r\n" */

static bool config_ok(const detour_config *cfg) {
  if (!cfg || cfg->nservers == 0 || cfg->nservers > DETOUR_MAX_SERVERS ||
      cfg->max_attempts == 0 || cfg->retry_interval < 0 ||
      (cfg->block_size != 0 && cfg->block_size < BLOCK_MIN))
    return false;
  if (cfg->mem && (!cfg->mem->malloc || !cfg->mem->realloc ||
                   !cfg->mem->calloc || !cfg->mem->free))
    return false;
  for (size_t i = 0; i < cfg->nservers; i++)
    if (!cfg->servers[i].host[0] || cfg->servers[i].port == 0)
      return false;
  return true;
}

static void *libc_malloc(size_t size, void *user) {
  (void)user;
  return malloc(size);
}
static void *libc_realloc(void *p, size_t size, void *user) {
  (void)user;
  return realloc(p, size);
}
static void *libc_calloc(size_t n, size_t size, void *user) {
  (void)user;
  return calloc(n, size);
}
static void libc_free(void *p, void *user) {
  (void)user;
  free(p);
}
static const detour_mem libc_mem = {libc_malloc, libc_realloc, libc_calloc,
                                    libc_free, NULL};

/* The buffers that live as long as the engine. */
static int alloc_buffers(detour_engine *e, const detour_config *cfg) {
  const detour_mem *mem = &e->mem;
  e->cfg = *cfg;
  e->cfg.mem = NULL; /* e->mem is the copy in use */
  if (e->cfg.block_size == 0)
    e->cfg.block_size = 64 * 1024;
  e->raw_cap = e->cfg.block_size / 2;
  e->session.expect =
      detour__mem_calloc(mem, ENGINE_MAX_EXPECT, sizeof *e->session.expect);
  e->block = detour__mem_alloc(mem, e->cfg.block_size);
  e->raw = detour__mem_alloc(mem, e->raw_cap);
  if (!cfg->classify)
    e->own_classify = detour_classify_new_default();
  if (!e->session.expect || !e->block || !e->raw ||
      (!cfg->classify && !e->own_classify))
    return DETOUR_ENOMEM;
  return 0;
}

detour_engine *detour_engine_new(const detour_config *cfg, int *err) {
  int dummy;
  err = err ? err : &dummy;
  if (!config_ok(cfg)) {
    *err = DETOUR_EINVAL;
    return NULL;
  }
  const detour_mem *mem = cfg->mem ? cfg->mem : &libc_mem;
  detour_engine *e = detour__mem_calloc(mem, 1, sizeof *e);
  if (!e) {
    *err = DETOUR_ENOMEM;
    return NULL;
  }
  e->mem = *mem;
  detour__queue_init(&e->queue, &e->mem);
  if (alloc_buffers(e, cfg) < 0) {
    detour_engine_free(e);
    *err = DETOUR_ENOMEM;
    return NULL;
  }
  e->round.race_at = DETOUR_NO_DEADLINE;
  sort_servers(e);
  make_labels(e);
  *err = 0;
  return e;
}

void detour_engine_free(detour_engine *e) {
  if (!e)
    return;
  for (size_t i = 0; i < e->cfg.nservers; i++) { /* R13: no secret left */
    volatile char *p = e->cfg.servers[i].auth_password;
    for (size_t k = 0; k < sizeof e->cfg.servers[i].auth_password; k++)
      p[k] = 0;
  }
  const detour_mem mem = e->mem;
  for (size_t i = 0; i < e->nmessages; i++)
    free_message(e, &e->messages[i]);
  detour__mem_free(&mem, e->messages);
  detour__mem_free(&mem, e->session.expect);
  detour__mem_free(&mem, e->block);
  detour__mem_free(&mem, e->raw);
  detour_classify_free(e->own_classify);
  detour__queue_free(&e->queue);
  detour__mem_free(&mem, e);
}

const detour_server *detour_engine_server(const detour_engine *e, size_t i) {
  if (!e || i >= e->cfg.nservers)
    return NULL;
  return &e->cfg.servers[e->sorted[i]];
}

const char *detour_engine_server_label(const detour_engine *e, size_t i) {
  if (!e || i >= e->cfg.nservers)
    return NULL;
  return e->labels[e->sorted[i]];
}

int detour_engine_submit(detour_engine *e, const detour_message *m,
                         detour_ms now) {
  detour__queue_release_popped(&e->queue);
  if (e->failed)
    return e->failed;
  int rc = check_message(m);
  if (rc < 0)
    return rc;
  if (e->nmessages == e->cap_messages) {
    size_t cap = e->cap_messages ? e->cap_messages * 2 : 4;
    engine_message *grown =
        detour__mem_realloc(&e->mem, e->messages, cap * sizeof *grown);
    if (!grown)
      return DETOUR_ENOMEM;
    e->messages = grown;
    e->cap_messages = cap;
    if (e->active)
      e->active = &e->messages[0];
  }
  size_t index = e->next_index;
  rc = copy_message(e, &e->messages[e->nmessages], m, index);
  if (rc < 0)
    return rc;
  e->nmessages++;
  e->next_index++;
  if (!e->active)
    begin_message(e, now);
  return (int)index;
}

/* ------------------------------------------------------------------------ */
/* After a failure: the sweep (see the top of the file)                      */

static detour_rcpt_outcome final_outcome(const engine_message *m,
                                         const engine_rcpt *r) {
  if (r->state == RCPT_DUPLICATE)
    r = &m->rcpts[r->dup_of];
  if (r->state == RCPT_DELIVERED)
    return DETOUR_RCPT_DELIVERED;
  if (r->state == RCPT_ABORTED)
    return DETOUR_RCPT_ABORTED;
  return DETOUR_RCPT_DEFERRED;
}

/* The next outcome of message m not yet handed out: a recipient's, then
 * the DONE. Returns false when m is finished. */
static bool sweep_message(detour_engine *e, engine_message *m,
                          detour_action *out) {
  bool deferred = false, aborted = false;
  for (size_t i = 0; i < m->nrcpts; i++) {
    engine_rcpt *r = &m->rcpts[i];
    detour_rcpt_outcome o = final_outcome(m, r);
    deferred |= o == DETOUR_RCPT_DEFERRED;
    aborted |= o == DETOUR_RCPT_ABORTED;
    if (r->reported)
      continue;
    r->reported = true;
    const engine_rcpt *fate =
        r->state == RCPT_DUPLICATE ? &m->rcpts[r->dup_of] : r;
    out->type = DETOUR_ACT_RCPT_RESULT;
    out->u.rcpt.message = m->index;
    out->u.rcpt.index = i;
    out->u.rcpt.recipient = r->addr;
    out->u.rcpt.outcome = o;
    out->u.rcpt.server =
        fate->server < 0 ? -1 : (int)e->configured[fate->server];
    out->u.rcpt.detail =
        o == DETOUR_RCPT_DEFERRED ? "engine out of memory" : fate->detail;
    return true;
  }
  out->type = DETOUR_ACT_DONE;
  out->u.done.message = m->index;
  out->u.done.status = deferred  ? DETOUR_DONE_DEFERRED
                       : aborted ? DETOUR_DONE_ABORTED
                                 : DETOUR_DONE_DELIVERED;
  return false;
}

/* One action of the sweep, from state the engine holds (nothing is
 * allocated or freed until detour_engine_free). */
static int sweep_next(detour_engine *e, detour_action *out) {
  memset(out, 0, sizeof *out);
  if (!e->error_reported) {
    e->error_reported = true;
    out->type = DETOUR_ACT_ERROR;
    out->u.error.code = e->failed;
    out->u.error.text = "out of memory: the engine stopped; every connection "
                        "is closed and every unfinished message deferred";
    return 1;
  }
  for (size_t i = 0; i < ENGINE_MAX_CONNS; i++)
    if (e->conns[i].role != CONN_FREE) {
      e->conns[i].role = CONN_FREE;
      out->type = DETOUR_ACT_CLOSE;
      out->conn = e->conns[i].id;
      return 1;
    }
  if (e->swept < e->nmessages) {
    if (!sweep_message(e, &e->messages[e->swept], out))
      e->swept++;
    return 1;
  }
  return 0;
}

int detour_engine_next_action(detour_engine *e, detour_action *out) {
  if (detour__queue_pop(&e->queue, out))
    return 1;
  return e->failed ? sweep_next(e, out) : 0;
}

static detour_ms earliest(detour_ms a, detour_ms b) {
  if (a == DETOUR_NO_DEADLINE)
    return b;
  if (b == DETOUR_NO_DEADLINE)
    return a;
  return a < b ? a : b;
}

detour_ms detour_engine_next_deadline(const detour_engine *e) {
  detour_ms d = DETOUR_NO_DEADLINE;
  if (e->failed)
    return d;
  for (size_t i = 0; i < ENGINE_MAX_CONNS; i++)
    if (e->conns[i].role != CONN_FREE)
      d = earliest(d, e->conns[i].deadline);
  if (e->active && e->round.waiting)
    d = earliest(d, e->round.wait_until);
  if (e->active)
    d = earliest(d, e->round.race_at);
  return d;
}

const char *detour_engine_session_state(const detour_engine *e,
                                        const char **from) {
  if (from)
    *from = detour__session_state_name(e->session.from);
  return detour__session_state_name(e->session.state);
}

bool detour_engine_idle(const detour_engine *e) {
  if (e->failed && e->error_reported && e->swept == e->nmessages &&
      detour__queue_empty(&e->queue)) {
    for (size_t i = 0; i < ENGINE_MAX_CONNS; i++)
      if (e->conns[i].role != CONN_FREE)
        return false;
    return true;
  }
  if (e->nmessages > 0 || !detour__queue_empty(&e->queue))
    return false;
  for (size_t i = 0; i < ENGINE_MAX_CONNS; i++)
    if (e->conns[i].role != CONN_FREE)
      return false;
  return true;
}

/* A connect of the current race failed (or timed out). */
static void connect_failed(detour_engine *e, engine_conn *c, detour_ms now,
                           detour_condition cond, const char *detail) {
  size_t server = c->server;
  detour__engine_close_conn(e, c);
  detour_failure f = {.stage = DETOUR_STAGE_CONNECT, .cond = cond};
  const detour_classify *t =
      e->cfg.classify ? e->cfg.classify : e->own_classify;
  detour_class cls = detour_classify_failure(t, &f, NULL);
  if (cls == DETOUR_CLASS_NONE || cls == DETOUR_CLASS_ABORT)
    cls = DETOUR_CLASS_CONNECT; /* nothing a recipient did: never abort */
  char why[300];
  snprintf(why, sizeof why, "%s%s%s", detour_condition_name(cond),
           detail && *detail ? ": " : "", detail ? detail : "");
  log_pending(e, now, DETOUR_LOG_CONNECT, server, "TCP error", cls, why);
  if (cls == DETOUR_CLASS_CONNECT || cls == DETOUR_CLASS_SWITCH)
    breaker_trip(e, server, now);
  if (connecting_count(e) > 0) {
    /* R12: a racing connect is still under way; its result decides.
     * Count this server's attempt as done for the round. */
    if (e->round.attempts[server] >= e->cfg.max_attempts)
      exhaust(e, server, now);
    return;
  }
  size_t last = server > e->round.current ? server : e->round.current;
  after_failure(e, last, cls, now);
}

void detour_engine_on_connected(detour_engine *e, unsigned conn, detour_ms now,
                                const char *address) {
  if (!engine_enter(e))
    return;
  engine_conn *c = find_conn(e, conn);
  if (!c || c->role != CONN_CONNECTING || !e->active)
    return;
  /* R12: the first connection to complete wins; close the others. */
  for (size_t i = 0; i < ENGINE_MAX_CONNS; i++) {
    engine_conn *o = &e->conns[i];
    if (o == c || o->role != CONN_CONNECTING)
      continue;
    log_pending(e, now, DETOUR_LOG_RACE, o->server, "race lost",
                DETOUR_CLASS_NONE, e->labels[c->server]);
    detour__engine_close_conn(e, o);
  }
  e->round.race_at = DETOUR_NO_DEADLINE;
  e->round.current = c->server;
  session_outcome o = detour__session_begin(e, c, now, address);
  act_on(e, now, &o);
}

void detour_engine_on_connect_failed(detour_engine *e, unsigned conn,
                                     detour_ms now, detour_condition cond,
                                     const char *detail) {
  if (!engine_enter(e))
    return;
  engine_conn *c = find_conn(e, conn);
  if (!c || c->role != CONN_CONNECTING || !e->active)
    return;
  connect_failed(e, c, now, cond, detail);
}

static bool is_session_conn(const detour_engine *e, const engine_conn *c) {
  return c && c->role == CONN_SESSION && e->session.conn == c;
}

void detour_engine_on_data(detour_engine *e, unsigned conn, detour_ms now,
                           const char *buf, size_t len) {
  if (!engine_enter(e))
    return;
  engine_conn *c = find_conn(e, conn);
  if (!c)
    return;
  if (c->role == CONN_QUITTING) {
    /* Anything after QUIT ends it; we do not wait for more. */
    detour__engine_close_conn(e, c);
    return;
  }
  if (is_session_conn(e, c)) {
    session_outcome o = detour__session_on_data(e, now, buf, len);
    act_on(e, now, &o);
  }
}

void detour_engine_on_sent(detour_engine *e, unsigned conn, detour_ms now) {
  if (!engine_enter(e))
    return;
  engine_conn *c = find_conn(e, conn);
  if (is_session_conn(e, c)) {
    session_outcome o = detour__session_on_sent(e, now);
    act_on(e, now, &o);
  }
}

void detour_engine_on_closed(detour_engine *e, unsigned conn, detour_ms now,
                             const char *detail) {
  if (!engine_enter(e))
    return;
  engine_conn *c = find_conn(e, conn);
  if (!c)
    return;
  if (c->role == CONN_CONNECTING) {
    connect_failed(e, c, now, DETOUR_COND_CONNECT_REFUSED, detail);
    return;
  }
  if (is_session_conn(e, c)) {
    session_outcome o = detour__session_on_closed(e, now, detail);
    act_on(e, now, &o);
    return;
  }
  detour__engine_close_conn(e, c);
}

void detour_engine_on_tls_up(detour_engine *e, unsigned conn, detour_ms now,
                             const char *version, const char *cipher) {
  detour__queue_release_popped(&e->queue);
  engine_conn *c = find_conn(e, conn);
  if (is_session_conn(e, c)) {
    session_outcome o = detour__session_on_tls_up(e, now, version, cipher);
    act_on(e, now, &o);
  }
}

void detour_engine_on_tls_failed(detour_engine *e, unsigned conn, detour_ms now,
                                 detour_tls_failure why, const char *detail) {
  detour__queue_release_popped(&e->queue);
  engine_conn *c = find_conn(e, conn);
  if (is_session_conn(e, c)) {
    session_outcome o = detour__session_on_tls_failed(e, now, why, detail);
    act_on(e, now, &o);
  }
}

/* R12 racing: the current connect is slow; start the next server's. */
static void start_race(detour_engine *e, detour_ms now) {
  engine_round *rd = &e->round;
  rd->race_at = DETOUR_NO_DEADLINE;
  if (connecting_count(e) == 0)
    return;
  size_t highest = 0;
  for (size_t i = 0; i < ENGINE_MAX_CONNS; i++)
    if (e->conns[i].role == CONN_CONNECTING && e->conns[i].server > highest)
      highest = e->conns[i].server;
  size_t next = race_candidate(e, highest);
  if (next >= e->cfg.nservers)
    return;
  char why[300];
  snprintf(why, sizeof why, "%.200s has not connected in %lld ms",
           e->labels[highest], (long long)e->cfg.race_delay);
  rd->current = next;
  start_connect(e, next, now);
  /* after the connect, so the row carries the attempt it started */
  log_pending(e, now, DETOUR_LOG_RACE, next, "race started", DETOUR_CLASS_NONE,
              why);
  if (race_candidate(e, next) < e->cfg.nservers)
    rd->race_at = now + e->cfg.race_delay;
}

static void expire_conn(detour_engine *e, engine_conn *c, detour_ms now) {
  switch (c->role) {
  case CONN_CONNECTING:
    connect_failed(e, c, now, DETOUR_COND_CONNECT_TIMEOUT, "no answer");
    break;
  case CONN_SESSION:
    if (e->session.conn == c) {
      session_outcome o = detour__session_on_timeout(e, now);
      act_on(e, now, &o);
    } else
      detour__engine_close_conn(e, c);
    break;
  case CONN_QUITTING:
    detour__engine_close_conn(e, c);
    break;
  case CONN_FREE:
    break;
  }
}

/* A deadline fires when now >= deadline (and not 1 ms before). */
void detour_engine_on_timer(detour_engine *e, detour_ms now) {
  if (!engine_enter(e))
    return;
  for (size_t i = 0; i < ENGINE_MAX_CONNS; i++) {
    engine_conn *c = &e->conns[i];
    if (c->role != CONN_FREE && c->deadline != DETOUR_NO_DEADLINE &&
        c->deadline <= now)
      expire_conn(e, c, now);
  }
  if (!e->active)
    return;
  if (e->round.race_at != DETOUR_NO_DEADLINE && e->round.race_at <= now)
    start_race(e, now);
  if (e->round.waiting && e->round.wait_until <= now)
    start_attempt(e, e->round.wait_server, now);
}

/*
 * test_engine_oom.c - allocation failure in the engine: every allocation
 * goes through a detour_mem that fails the Nth call, for every N of a few
 * representative runs (a plain delivery with a duplicate recipient, a
 * failover over a refused primary with two messages, a retry schedule,
 * a body read from a caller's source in blocks).
 *
 * Whatever N, the engine must not crash, must not hang (the run is a
 * bounded loop), must not leak (the allocator counts live blocks; ASan
 * and LSan check the rest), must close every connection it opened
 * exactly once, and must finish every message it accepted with exactly
 * one DONE. A failure inside an event shows as an ERROR action after
 * which the engine opens and sends nothing.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "detour/detour.h"

#define T0 ((detour_ms)1000000000)
#define MAX_CONNS 64
#define MAX_EVENTS 256
#define MAX_STEPS 20000

/* ------------------------------------------------------------------------ */
/* An allocator that fails its Nth call                                      */

typedef struct {
  unsigned long calls;   /* allocation calls so far */
  unsigned long fail_at; /* the call that fails (0: none) */
  long live;             /* blocks allocated and not freed */
  bool failed;           /* the planned failure happened */
} counting_mem;

static bool give(counting_mem *m) {
  if (++m->calls == m->fail_at) {
    m->failed = true;
    return false;
  }
  return true;
}

static void *c_malloc(size_t size, void *user) {
  counting_mem *m = user;
  void *p = give(m) ? malloc(size) : NULL;
  m->live += p != NULL;
  return p;
}

static void *c_calloc(size_t n, size_t size, void *user) {
  counting_mem *m = user;
  void *p = give(m) ? calloc(n, size) : NULL;
  m->live += p != NULL;
  return p;
}

static void *c_realloc(void *old, size_t size, void *user) {
  counting_mem *m = user;
  void *p = give(m) ? realloc(old, size) : NULL;
  if (p && !old)
    m->live++;
  return p;
}

static void c_free(void *p, void *user) {
  counting_mem *m = user;
  if (p)
    m->live--;
  free(p);
}

/* ------------------------------------------------------------------------ */
/* A world of scripted servers around the engine                             */

typedef enum {
  SRV_ACCEPT,   /* accepts every message */
  SRV_REFUSE,   /* the TCP connect is refused */
  SRV_RCPT_451, /* 451 to RCPT in its first two sessions, then accepts */
} server_kind;

typedef enum { EV_CONNECTED, EV_REFUSED, EV_DATA, EV_SENT } event_kind;

typedef struct {
  event_kind kind;
  unsigned conn;
  char data[64];
} event;

typedef struct {
  detour_engine *e;
  server_kind kinds[DETOUR_MAX_SERVERS];
  unsigned sessions[DETOUR_MAX_SERVERS];
  /* per connection: 0 unknown, 1 open, 2 closed */
  int conn_state[MAX_CONNS];
  size_t conn_server[MAX_CONNS];
  bool in_body[MAX_CONNS];
  event events[MAX_EVENTS];
  size_t nevents;
  detour_ms now;
  int dones[8];
  bool saw_error;
  bool acted_after_error;
  size_t delivered;
} world;

static void post(world *w, event_kind kind, unsigned conn, const char *data) {
  cr_assert_lt(w->nevents, MAX_EVENTS, "event queue overflow");
  event *ev = &w->events[w->nevents++];
  ev->kind = kind;
  ev->conn = conn;
  snprintf(ev->data, sizeof ev->data, "%s", data ? data : "");
}

static bool ends_with(const char *p, size_t len, const char *tail) {
  size_t n = strlen(tail);
  return len >= n && memcmp(p + len - n, tail, n) == 0;
}

/* What the server on conn answers to one SEND. */
static void answer(world *w, unsigned conn, const char *p, size_t len) {
  post(w, EV_SENT, conn, NULL);
  size_t srv = w->conn_server[conn];
  if (w->in_body[conn]) {
    if (ends_with(p, len, "\r\n.\r\n") ||
        (len == 3 && !memcmp(p, ".\r\n", 3))) {
      w->in_body[conn] = false;
      post(w, EV_DATA, conn, "250 2.0.0 queued\r\n");
    }
    return;
  }
  if (!strncmp(p, "EHLO", 4))
    post(w, EV_DATA, conn, "250 fake\r\n");
  else if (!strncmp(p, "MAIL", 4))
    post(w, EV_DATA, conn, "250 2.1.0 ok\r\n");
  else if (!strncmp(p, "RCPT", 4))
    post(w, EV_DATA, conn,
         w->kinds[srv] == SRV_RCPT_451 && w->sessions[srv] <= 2
             ? "451 4.3.0 busy\r\n"
             : "250 2.1.5 ok\r\n");
  else if (!strncmp(p, "DATA", 4)) {
    w->in_body[conn] = true;
    post(w, EV_DATA, conn, "354 go ahead\r\n");
  } else if (!strncmp(p, "QUIT", 4))
    post(w, EV_DATA, conn, "221 bye\r\n");
}

static void act(world *w, const detour_action *a) {
  if (w->saw_error &&
      (a->type == DETOUR_ACT_CONNECT || a->type == DETOUR_ACT_SEND))
    w->acted_after_error = true;
  switch (a->type) {
  case DETOUR_ACT_CONNECT:
    cr_assert_lt(a->conn, MAX_CONNS);
    cr_assert_eq(w->conn_state[a->conn], 0, "connection id reused");
    w->conn_state[a->conn] = 1;
    w->conn_server[a->conn] = a->u.connect.server;
    if (w->kinds[a->u.connect.server] == SRV_REFUSE) {
      post(w, EV_REFUSED, a->conn, NULL);
    } else {
      w->sessions[a->u.connect.server]++;
      post(w, EV_CONNECTED, a->conn, NULL);
      post(w, EV_DATA, a->conn, "220 fake ESMTP\r\n");
    }
    break;
  case DETOUR_ACT_SEND:
    cr_assert_eq(w->conn_state[a->conn], 1, "SEND on a closed connection");
    answer(w, a->conn, a->u.send.data, a->u.send.len);
    break;
  case DETOUR_ACT_CLOSE:
    cr_assert_eq(w->conn_state[a->conn], 1, "CLOSE of #%u twice or unknown",
                 a->conn);
    w->conn_state[a->conn] = 2;
    break;
  case DETOUR_ACT_RCPT_RESULT:
    w->delivered += a->u.rcpt.outcome == DETOUR_RCPT_DELIVERED;
    break;
  case DETOUR_ACT_DONE:
    cr_assert_lt(a->u.done.message, 8);
    w->dones[a->u.done.message]++;
    break;
  case DETOUR_ACT_ERROR:
    cr_assert_eq(a->u.error.code, DETOUR_ENOMEM);
    cr_assert(!w->saw_error, "one ERROR");
    w->saw_error = true;
    break;
  case DETOUR_ACT_LOG:
  case DETOUR_ACT_WARN:
    break;
  case DETOUR_ACT_TLS_START:
    cr_assert_fail("TLS_START without TLS configured");
    break;
  }
}

static void drain(world *w) {
  detour_action a;
  while (detour_engine_next_action(w->e, &a))
    act(w, &a);
}

/* Deliver one event, events of closed connections are dropped as a
 * driver would. */
static void deliver(world *w, const event *ev) {
  if (w->conn_state[ev->conn] != 1)
    return;
  switch (ev->kind) {
  case EV_CONNECTED:
    detour_engine_on_connected(w->e, ev->conn, w->now, "127.0.0.1:25");
    break;
  case EV_REFUSED:
    w->conn_state[ev->conn] = 2; /* the driver closed it already */
    detour_engine_on_connect_failed(w->e, ev->conn, w->now,
                                    DETOUR_COND_CONNECT_REFUSED, "refused");
    w->conn_state[ev->conn] = 1; /* the engine still owes its CLOSE */
    break;
  case EV_DATA:
    detour_engine_on_data(w->e, ev->conn, w->now, ev->data, strlen(ev->data));
    break;
  case EV_SENT:
    detour_engine_on_sent(w->e, ev->conn, w->now);
    break;
  }
}

/* Run until the engine is idle; false when it did not get there within
 * MAX_STEPS events and timers (a hang). */
static bool run_world(world *w) {
  for (int step = 0; step < MAX_STEPS; step++) {
    drain(w);
    if (w->nevents > 0) {
      event ev = w->events[0];
      memmove(&w->events[0], &w->events[1],
              (w->nevents - 1) * sizeof *w->events);
      w->nevents--;
      deliver(w, &ev);
      continue;
    }
    if (detour_engine_idle(w->e))
      return true;
    detour_ms d = detour_engine_next_deadline(w->e);
    if (d == DETOUR_NO_DEADLINE)
      return false; /* not idle and nothing will ever happen: a hang */
    w->now = d > w->now ? d : w->now;
    detour_engine_on_timer(w->e, w->now);
  }
  return false;
}

/* ------------------------------------------------------------------------ */
/* The runs                                                                  */

typedef enum { RUN_PLAIN, RUN_FAILOVER, RUN_RETRY, RUN_SOURCE } run_kind;

static const char body[] = "Subject: oom\n\nline one\nline two\n";

static int64_t source_read_at(void *arg, uint64_t off, char *buf, size_t len) {
  (void)arg;
  size_t total = sizeof body - 1;
  if (off >= total)
    return 0;
  size_t n = total - (size_t)off < len ? total - (size_t)off : len;
  memcpy(buf, body + off, n);
  return (int64_t)n;
}

typedef struct {
  unsigned long calls; /* allocations the run made */
  bool failed;         /* the planned failure happened */
  bool engine_failed;  /* an ERROR action came */
  size_t delivered;
} run_result;

static void set_up(run_kind kind, detour_config *cfg, world *w) {
  detour_config_init(cfg);
  cfg->block_size = 16; /* a body of several blocks */
  cfg->retry_interval = 1000;
  cfg->max_attempts = 5;
  detour_config_add_server(cfg, "127.0.0.1", 2525, 1);
  detour_config_add_server(cfg, "127.0.0.2", 2525, 2);
  w->kinds[0] = kind == RUN_FAILOVER ? SRV_REFUSE
                : kind == RUN_RETRY  ? SRV_RCPT_451
                                     : SRV_ACCEPT;
  w->kinds[1] = SRV_ACCEPT;
}

static void submit_all(run_kind kind, world *w, int *index, size_t *n) {
  static const char *const two[] = {"a@y.test", "A@y.test", "b@y.test"};
  detour_body_source src = {source_read_at, NULL};
  detour_message m = {.from = "s@x.test",
                      .rcpts = two,
                      .nrcpts = 3,
                      .body = body,
                      .body_len = sizeof body - 1};
  if (kind == RUN_SOURCE)
    m.source = &src;
  if (kind == RUN_RETRY)
    m.override = DETOUR_OVERRIDE_DENY; /* retries of the primary only */
  *n = kind == RUN_FAILOVER ? 2 : 1;
  for (size_t i = 0; i < *n; i++) {
    index[i] = detour_engine_submit(w->e, &m, w->now);
    cr_assert(index[i] >= 0 || index[i] == DETOUR_ENOMEM, "submit: %d",
              index[i]);
    drain(w);
  }
}

static run_result run_once(run_kind kind, unsigned long fail_at) {
  counting_mem cm = {.fail_at = fail_at};
  detour_mem mem = {c_malloc, c_realloc, c_calloc, c_free, &cm};
  detour_config cfg;
  world *w = calloc(1, sizeof *w);
  cr_assert_not_null(w);
  set_up(kind, &cfg, w);
  cfg.mem = &mem;
  w->now = T0;
  int err = 0;
  w->e = detour_engine_new(&cfg, &err);
  run_result res = {0};
  if (w->e) {
    int index[2];
    size_t n;
    submit_all(kind, w, index, &n);
    cr_assert(run_world(w), "N=%lu: the run did not end (hang)", fail_at);
    for (size_t i = 0; i < n; i++)
      if (index[i] >= 0)
        cr_assert_eq(w->dones[index[i]], 1, "N=%lu: message %d got %d DONE",
                     fail_at, index[i], w->dones[index[i]]);
    for (unsigned c = 0; c < MAX_CONNS; c++)
      cr_assert_neq(w->conn_state[c], 1, "N=%lu: connection #%u never closed",
                    fail_at, c);
    cr_assert(!w->acted_after_error, "N=%lu: CONNECT/SEND after ERROR",
              fail_at);
    res.engine_failed = w->saw_error;
    res.delivered = w->delivered;
    detour_engine_free(w->e);
  } else {
    cr_assert_eq(err, DETOUR_ENOMEM, "N=%lu: engine_new: %d", fail_at, err);
  }
  cr_assert_eq(cm.live, 0, "N=%lu: %ld blocks leaked", fail_at, cm.live);
  res.calls = cm.calls;
  res.failed = cm.failed;
  free(w);
  return res;
}

/* Fail every allocation of the run in turn, then check the clean run. */
static void fail_every_allocation(run_kind kind, size_t want_delivered) {
  run_result clean = run_once(kind, 0);
  cr_assert(!clean.engine_failed);
  cr_assert_eq(clean.delivered, want_delivered, "clean run delivered %zu",
               clean.delivered);
  cr_assert_gt(clean.calls, 5, "the run allocates through the allocator");
  unsigned long errors = 0;
  for (unsigned long n = 1; n <= clean.calls; n++) {
    run_result r = run_once(kind, n);
    cr_assert(r.failed, "N=%lu: the run no longer reaches that allocation", n);
    errors += r.engine_failed;
  }
  cr_assert_gt(errors, 0, "some failures happen inside events (ERROR)");
  cr_log_info("%lu allocations failed in turn, %lu inside events", clean.calls,
              errors);
}

Test(engine_oom, plain_delivery_survives_every_failed_allocation) {
  fail_every_allocation(RUN_PLAIN, 3);
}

Test(engine_oom, failover_survives_every_failed_allocation) {
  fail_every_allocation(RUN_FAILOVER, 6);
}

Test(engine_oom, retry_schedule_survives_every_failed_allocation) {
  fail_every_allocation(RUN_RETRY, 3);
}

Test(engine_oom, body_source_survives_every_failed_allocation) {
  fail_every_allocation(RUN_SOURCE, 3);
}

/* After a failure the engine refuses new work with the error. */
Test(engine_oom, failed_engine_refuses_submit) {
  counting_mem cm = {0};
  detour_mem mem = {c_malloc, c_realloc, c_calloc, c_free, &cm};
  detour_config cfg;
  detour_config_init(&cfg);
  detour_config_add_server(&cfg, "127.0.0.1", 2525, 1);
  cfg.mem = &mem;
  detour_engine *e = detour_engine_new(&cfg, NULL);
  cr_assert_not_null(e);
  static const char *const one[] = {"r@y.test"};
  detour_message m = {.from = "s@x.test", .rcpts = one, .nrcpts = 1};
  cr_assert_eq(detour_engine_submit(e, &m, T0), 0);
  detour_action a;
  cr_assert_eq(detour_engine_next_action(e, &a), 1); /* CONNECT #1 */
  cm.fail_at = cm.calls + 1; /* the next allocation: the log row's */
  detour_engine_on_connect_failed(e, 1, T0, DETOUR_COND_CONNECT_REFUSED, "");
  const char *want[] = {"error", "close", "rcpt_result", "done"};
  for (size_t i = 0; i < 4; i++) {
    cr_assert_eq(detour_engine_next_action(e, &a), 1);
    cr_assert_str_eq(detour_action_type_name(a.type), want[i]);
  }
  cr_assert_eq(a.u.done.status, DETOUR_DONE_DEFERRED);
  cr_assert_eq(detour_engine_next_action(e, &a), 0);
  cr_assert(detour_engine_idle(e));
  cr_assert_eq(detour_engine_next_deadline(e), DETOUR_NO_DEADLINE);
  cr_assert_eq(detour_engine_submit(e, &m, T0), DETOUR_ENOMEM);
  detour_engine_free(e);
  cr_assert_eq(cm.live, 0);
}

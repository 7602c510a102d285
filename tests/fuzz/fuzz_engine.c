/*
 * fuzz_engine.c - libFuzzer target for the engine's event input.
 *
 * The input is a script of events (connects that succeed or fail, reply
 * bytes, writes done, peer closes, timers, time passing) played against an
 * engine with three servers. Besides the sanitizers, it checks the
 * engine's promises: every CLOSE names a connection it opened and did not
 * close before, no event is needed after a CLOSE, and once the script ends
 * the engine always finishes (every message gets DONE) when the servers
 * keep failing, within a bounded number of steps: no hang, no lost mail.
 * With bit 2 of the first byte set, one allocation of the engine fails
 * (which one follows from the input's length): the same promises hold
 * through the out-of-memory sweep, and nothing is queued after ERROR.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "detour/detour.h"

#define MAX_CONNS 4096

/* An allocator that fails its fail_at-th call (0: none). */
static unsigned long mem_calls, mem_fail_at;

static void *f_malloc(size_t n, void *u) {
  (void)u;
  return ++mem_calls == mem_fail_at ? NULL : malloc(n);
}
static void *f_calloc(size_t n, size_t size, void *u) {
  (void)u;
  return ++mem_calls == mem_fail_at ? NULL : calloc(n, size);
}
static void *f_realloc(void *p, size_t n, void *u) {
  (void)u;
  return ++mem_calls == mem_fail_at ? NULL : realloc(p, n);
}
static void f_free(void *p, void *u) {
  (void)u;
  free(p);
}
static const detour_mem failing_mem = {f_malloc, f_realloc, f_calloc, f_free,
                                       NULL};

typedef struct {
  detour_engine *e;
  bool failed; /* an ERROR action came */
  detour_ms now;
  unsigned last_conn;
  unsigned char state[MAX_CONNS]; /* 0 unknown, 1 open, 2 closed */
  size_t submitted, done;
} world;

static void check(int ok, const char *what) {
  if (!ok) {
    fprintf(stderr, "engine promise broken: %s\n", what);
    abort();
  }
}

static void drain(world *w) {
  detour_action a;
  while (detour_engine_next_action(w->e, &a) == 1) {
    switch (a.type) {
    case DETOUR_ACT_CONNECT:
      check(!w->failed, "CONNECT after ERROR");
      check(a.conn > 0 && a.conn < MAX_CONNS, "connection id in range");
      check(w->state[a.conn] == 0, "connection id reused");
      w->state[a.conn] = 1;
      w->last_conn = a.conn;
      break;
    case DETOUR_ACT_CLOSE:
      check(a.conn < MAX_CONNS && w->state[a.conn] == 1,
            "CLOSE of a connection that is not open");
      w->state[a.conn] = 2;
      break;
    case DETOUR_ACT_SEND:
      check(a.conn < MAX_CONNS && w->state[a.conn] == 1,
            "SEND on a connection that is not open");
      check(a.u.send.len > 0, "empty SEND");
      check(!w->failed, "SEND after ERROR");
      break;
    case DETOUR_ACT_DONE:
      w->done++;
      break;
    case DETOUR_ACT_TLS_START:
      check(a.conn < MAX_CONNS && w->state[a.conn] == 1,
            "TLS_START on a connection that is not open");
      check(a.u.tls.server_name && a.u.tls.server_name[0], "no server name");
      break;
    case DETOUR_ACT_ERROR:
      check(!w->failed && a.u.error.code == DETOUR_ENOMEM, "one ERROR");
      w->failed = true;
      break;
    default:
      break;
    }
  }
}

static const uint8_t *take(const uint8_t **p, const uint8_t *end, size_t n) {
  if ((size_t)(end - *p) < n)
    return NULL;
  const uint8_t *at = *p;
  *p += n;
  return at;
}

static void fire_timer(world *w) {
  detour_ms d = detour_engine_next_deadline(w->e);
  if (d == DETOUR_NO_DEADLINE)
    return;
  if (d > w->now)
    w->now = d;
  detour_engine_on_timer(w->e, w->now);
}

/* One event of the script; false when the input ran out. */
static int step(world *w, const uint8_t **p, const uint8_t *end) {
  const uint8_t *op = take(p, end, 1), *arg;
  if (!op)
    return 0;
  unsigned c = w->last_conn;
  switch (*op % 10) {
  case 0:
    detour_engine_on_connected(w->e, c, w->now, "127.0.0.1:25");
    break;
  case 1:
    if ((arg = take(p, end, 1)))
      detour_engine_on_connect_failed(w->e, c, w->now,
                                      (detour_condition)(*arg % 9), "x");
    break;
  case 2:
    if ((arg = take(p, end, 1))) {
      size_t n = *arg;
      const uint8_t *bytes = take(p, end, n);
      if (bytes)
        detour_engine_on_data(w->e, c, w->now, (const char *)bytes, n);
    }
    break;
  case 3:
    detour_engine_on_sent(w->e, c, w->now);
    break;
  case 4:
    detour_engine_on_closed(w->e, c, w->now, "reset");
    break;
  case 5:
    fire_timer(w);
    break;
  case 6:
    if ((arg = take(p, end, 1)))
      w->now += (detour_ms)*arg * 100;
    break;
  case 7:
    /* a well-formed reply, so deep states are reached often */
    if ((arg = take(p, end, 1))) {
      static const char *const replies[] = {
          "220 hi\r\n",
          "250 ok\r\n",
          "354 go\r\n",
          "421 bye\r\n",
          "450 busy\r\n",
          "452 4.3.1 full\r\n",
          "550 5.1.1 no\r\n",
          "250-x\r\n250 PIPELINING\r\n",
          "555 5.5.4 no\r\n",
          "221 bye\r\n",
          "250-x\r\n250-STARTTLS\r\n250 AUTH PLAIN LOGIN\r\n",
          "250-x\r\n250 AUTH=LOGIN\r\n",
          "220 go\r\n250 injected\r\n",
          "334 VXNlcm5hbWU6\r\n",
          "235 ok\r\n",
          "535 5.7.8 no\r\n",
          "454 4.7.0 later\r\n"};
      const char *r = replies[*arg % 17];
      detour_engine_on_data(w->e, c, w->now, r, strlen(r));
    }
    break;
  case 8: /* R13: the driver's verdicts */
    detour_engine_on_tls_up(w->e, c, w->now, "TLSv1.3", "X");
    break;
  case 9:
    if ((arg = take(p, end, 1)))
      detour_engine_on_tls_failed(w->e, c, w->now,
                                  (detour_tls_failure)(*arg % 11), "x");
    break;
  }
  drain(w);
  return 1;
}

/* After the script: every server fails from now on. The engine must
 * finish every message within a bounded number of steps (R7). */
static void must_finish(world *w) {
  for (int i = 0; i < 100000 && w->done < w->submitted; i++) {
    unsigned c = w->last_conn;
    if (c && w->state[c] == 1)
      detour_engine_on_closed(w->e, c, w->now, "gone");
    else
      fire_timer(w);
    drain(w);
  }
  check(w->done == w->submitted, "a message never finished");
  for (int i = 0; i < 1000 && !detour_engine_idle(w->e); i++) {
    fire_timer(w);
    drain(w);
  }
  check(detour_engine_idle(w->e), "engine not idle after every DONE");
}

static detour_engine *make_engine(uint8_t flags, size_t size) {
  detour_config cfg;
  detour_config_init(&cfg);
  detour_config_add_server(&cfg, "127.0.0.1", 25, 1);
  detour_config_add_server(&cfg, "127.0.0.2", 25, 2);
  detour_config_add_server(&cfg, "127.0.0.3", 25, 3);
  cfg.max_attempts = 1 + flags % 3;
  cfg.retry_interval = 1000;
  cfg.timeouts = (detour_timeouts){500,  600,  700,  800,  900, 1000,
                                   1100, 1200, 1300, 1400, 1500};
  cfg.pipelining = flags & 8;
  cfg.breaker_hold = (flags & 16) ? 5000 : 0;
  cfg.race_delay = (flags & 32) ? 300 : 0;
  if (flags & 4) { /* R13: STARTTLS + AUTH, implicit TLS */
    cfg.servers[0].tls = DETOUR_TLS_MODE_STARTTLS;
    strcpy(cfg.servers[0].auth_user, "u");
    strcpy(cfg.servers[0].auth_password, "pw");
    cfg.servers[1].tls = DETOUR_TLS_MODE_IMPLICIT;
  }
  cfg.block_size = 16 + flags % 7; /* bodies in several blocks */
  mem_calls = 0;
  mem_fail_at = (flags & 64) ? 1 + size % 97 : 0;
  cfg.mem = &failing_mem;
  return detour_engine_new(&cfg, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  static world w;
  memset(&w, 0, sizeof w);
  w.now = 1000000;
  w.e = make_engine(data[0], size);
  if (!w.e)
    return 0;
  static const char *const rcpts[] = {"a@y.test", "b@y.test", "A@y.test"};
  detour_message m = {.from = "s@x.test",
                      .rcpts = rcpts,
                      .nrcpts = 1 + data[0] % 3,
                      .body = ".\nx\n",
                      .body_len = 4,
                      .override = (detour_override)((data[0] >> 6) % 3)};
  for (int k = 0; k < 2; k++)
    if (detour_engine_submit(w.e, &m, w.now) >= 0)
      w.submitted++;
  drain(&w);
  const uint8_t *p = data + 1, *end = data + size;
  for (int i = 0; i < 4096 && step(&w, &p, end); i++)
    ;
  must_finish(&w);
  detour_engine_free(w.e);
  return 0;
}

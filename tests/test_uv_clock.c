/*
 * test_uv_clock.c - the clock of the libuv side: virtual timer order, ties,
 * re-arming, stopping, freeing from a callback, detour_clock_advance, the
 * virtual-time runner over a real loopback TCP echo (time must not move
 * while bytes are in flight), and the real clock.
 */
#include <criterion/criterion.h>
#include <string.h>
#include <time.h>

#include "detour/detour_uv.h"

#define T0 ((detour_ms)1000000000000) /* a virtual epoch: 2001-09-09 */

static uv_loop_t loop;

static void setup(void) { cr_assert_eq(uv_loop_init(&loop), 0); }

/* Runs the pending close callbacks and checks the loop closes clean. */
static void teardown(void) {
  for (int i = 0; i < 10 && uv_loop_alive(&loop); i++)
    uv_run(&loop, UV_RUN_NOWAIT);
  cr_assert_eq(uv_loop_close(&loop), 0, "loop left with open handles");
}

TestSuite(uv_clock, .init = setup, .fini = teardown, .timeout = 30);

/* A record of fired timers: which one (its arg) and when. */
typedef struct {
  detour_clock *clock;
  int who[16];
  detour_ms when[16];
  int n;
} fire_log;

static fire_log flog;

static void record(detour_timer *t, void *arg) {
  (void)t;
  cr_assert_lt(flog.n, 16);
  flog.who[flog.n] = (int)(intptr_t)arg;
  flog.when[flog.n] = detour_clock_now(flog.clock);
  flog.n++;
}

static detour_clock *virtual_clock(void) {
  memset(&flog, 0, sizeof flog);
  flog.clock = detour_clock_new_virtual(&loop, T0);
  cr_assert_not_null(flog.clock);
  return flog.clock;
}

Test(uv_clock, virtual_basics) {
  detour_clock *c = virtual_clock();
  cr_assert(detour_clock_is_virtual(c));
  cr_assert_eq(detour_clock_loop(c), &loop);
  cr_assert_eq(detour_clock_now(c), T0);
  cr_assert_eq(detour_clock_next_deadline(c), DETOUR_NO_DEADLINE);
  cr_assert_eq(detour_clock_advance(c), 0, "nothing armed: nothing fires");
  cr_assert_eq(detour_clock_now(c), T0, "and time does not move");
  detour_clock_free(c);
}

Test(uv_clock, virtual_fires_in_deadline_order) {
  detour_clock *c = virtual_clock();
  detour_timer *t[3];
  detour_ms at[3] = {T0 + 300, T0 + 100, T0 + 200};
  for (int i = 0; i < 3; i++) {
    t[i] = detour_timer_new(c, record, (void *)(intptr_t)i);
    detour_timer_start(t[i], at[i]);
    cr_assert(detour_timer_active(t[i]));
  }
  cr_assert_eq(detour_clock_next_deadline(c), T0 + 100);
  int expect[3] = {1, 2, 0};
  for (int i = 0; i < 3; i++) {
    cr_assert_eq(detour_clock_advance(c), 1);
    cr_assert_eq(flog.who[i], expect[i]);
    cr_assert_eq(flog.when[i], at[expect[i]]);
    cr_assert_eq(detour_clock_now(c), at[expect[i]]);
    cr_assert_not(detour_timer_active(t[expect[i]]), "one-shot");
  }
  cr_assert_eq(detour_clock_advance(c), 0);
  cr_assert_eq(detour_clock_now(c), T0 + 300);
  for (int i = 0; i < 3; i++)
    detour_timer_free(t[i]);
  detour_clock_free(c);
}

Test(uv_clock, virtual_ties_fire_in_arming_order) {
  detour_clock *c = virtual_clock();
  enum { N = 8 };
  detour_timer *t[N];
  /* Armed in a scrambled order, all due at the same instant. */
  int order[N] = {5, 2, 7, 0, 3, 6, 1, 4};
  for (int i = 0; i < N; i++)
    t[i] = detour_timer_new(c, record, (void *)(intptr_t)i);
  for (int i = 0; i < N; i++)
    detour_timer_start(t[order[i]], T0 + 50);
  /* One earlier and one later timer around the tie. */
  detour_timer *early = detour_timer_new(c, record, (void *)(intptr_t)100);
  detour_timer *late = detour_timer_new(c, record, (void *)(intptr_t)200);
  detour_timer_start(late, T0 + 51);
  detour_timer_start(early, T0 + 49);
  cr_assert_eq(detour_clock_advance(c), 1);
  cr_assert_eq(flog.who[0], 100);
  cr_assert_eq(detour_clock_advance(c), N, "every tied timer in one step");
  for (int i = 0; i < N; i++) {
    cr_assert_eq(flog.who[1 + i], order[i]);
    cr_assert_eq(flog.when[1 + i], T0 + 50);
  }
  cr_assert_eq(detour_clock_advance(c), 1);
  cr_assert_eq(flog.who[N + 1], 200);
  for (int i = 0; i < N; i++)
    detour_timer_free(t[i]);
  detour_timer_free(early);
  detour_timer_free(late);
  detour_clock_free(c);
}

Test(uv_clock, virtual_rearm_moves_the_deadline) {
  detour_clock *c = virtual_clock();
  detour_timer *a = detour_timer_new(c, record, (void *)(intptr_t)1);
  detour_timer *b = detour_timer_new(c, record, (void *)(intptr_t)2);
  detour_timer_start(a, T0 + 100);
  detour_timer_start(b, T0 + 100);
  detour_timer_start(a, T0 + 100); /* re-arm: now after b in the tie */
  detour_timer_start(b, T0 + 500); /* later */
  detour_timer_start(b, T0 + 40);  /* and earlier again */
  cr_assert_eq(detour_clock_next_deadline(c), T0 + 40);
  cr_assert_eq(detour_clock_advance(c), 1);
  cr_assert_eq(flog.who[0], 2);
  cr_assert_eq(flog.when[0], T0 + 40);
  cr_assert_eq(detour_clock_advance(c), 1);
  cr_assert_eq(flog.who[1], 1);
  cr_assert_eq(flog.when[1], T0 + 100);
  cr_assert_eq(detour_clock_advance(c), 0, "each fired exactly once");
  detour_timer_free(a);
  detour_timer_free(b);
  detour_clock_free(c);
}

Test(uv_clock, virtual_past_deadline_means_now) {
  detour_clock *c = virtual_clock();
  detour_timer *a = detour_timer_new(c, record, NULL);
  detour_timer_start(a, T0 - 5000);
  cr_assert_eq(detour_clock_next_deadline(c), T0);
  cr_assert_eq(detour_clock_advance(c), 1);
  cr_assert_eq(flog.when[0], T0, "time never goes back");
  detour_timer_free(a);
  detour_clock_free(c);
}

Test(uv_clock, virtual_stop) {
  detour_clock *c = virtual_clock();
  detour_timer *a = detour_timer_new(c, record, (void *)(intptr_t)1);
  detour_timer *b = detour_timer_new(c, record, (void *)(intptr_t)2);
  detour_timer_start(a, T0 + 10);
  detour_timer_start(b, T0 + 20);
  detour_timer_stop(a);
  detour_timer_stop(a); /* twice is fine */
  cr_assert_not(detour_timer_active(a));
  cr_assert(detour_timer_active(b));
  cr_assert_eq(detour_clock_next_deadline(c), T0 + 20);
  cr_assert_eq(detour_clock_advance(c), 1);
  cr_assert_eq(flog.who[0], 2);
  detour_timer_free(a);
  detour_timer_free(b);
  detour_clock_free(c);
}

/* Callbacks that free or re-arm timers while an advance is firing. */
static detour_timer *victim;

static void free_self(detour_timer *t, void *arg) {
  record(t, arg);
  detour_timer_free(t);
}

static void free_victim(detour_timer *t, void *arg) {
  record(t, arg);
  detour_timer_free(victim);
  victim = NULL;
}

Test(uv_clock, virtual_free_in_callback) {
  detour_clock *c = virtual_clock();
  detour_timer *self = detour_timer_new(c, free_self, (void *)(intptr_t)1);
  detour_timer *killer = detour_timer_new(c, free_victim, (void *)(intptr_t)2);
  victim = detour_timer_new(c, record, (void *)(intptr_t)3);
  detour_timer_start(self, T0 + 10);
  detour_timer_start(killer, T0 + 10);
  detour_timer_start(victim, T0 + 10); /* due too, but freed before */
  cr_assert_eq(detour_clock_advance(c), 2);
  cr_assert_eq(flog.n, 2);
  cr_assert_eq(flog.who[0], 1);
  cr_assert_eq(flog.who[1], 2);
  cr_assert_eq(detour_clock_next_deadline(c), DETOUR_NO_DEADLINE);
  detour_timer_free(killer);
  detour_clock_free(c); /* no timer left: ASan sees any leak */
}

static int rearms_left;

static void rearm_now(detour_timer *t, void *arg) {
  record(t, arg);
  if (rearms_left-- > 0)
    detour_timer_start(t, detour_clock_now(flog.clock));
}

Test(uv_clock, virtual_rearm_for_now_waits_for_next_advance) {
  detour_clock *c = virtual_clock();
  detour_timer *a = detour_timer_new(c, rearm_now, (void *)(intptr_t)1);
  rearms_left = 2;
  detour_timer_start(a, T0 + 7);
  cr_assert_eq(detour_clock_advance(c), 1, "a re-arm for now does not spin");
  cr_assert_eq(detour_clock_advance(c), 1);
  cr_assert_eq(detour_clock_advance(c), 1);
  cr_assert_eq(detour_clock_advance(c), 0);
  cr_assert_eq(flog.n, 3);
  for (int i = 0; i < 3; i++)
    cr_assert_eq(flog.when[i], T0 + 7);
  detour_timer_free(a);
  detour_clock_free(c);
}

Test(uv_clock, virtual_many_timers_random_order) {
  /* The heap against a sort: 200 deadlines from a fixed LCG. */
  detour_clock *c = virtual_clock();
  enum { N = 200 };
  detour_timer *t[N];
  uint32_t x = 12345;
  for (int i = 0; i < N; i++) {
    x = x * 1103515245u + 12345u;
    t[i] = detour_timer_new(c, free_self, NULL);
    detour_timer_start(t[i], T0 + (x >> 16) % 50);
  }
  detour_ms last = T0;
  int fired = 0;
  flog.n = 0;
  while (detour_clock_next_deadline(c) != DETOUR_NO_DEADLINE) {
    detour_ms d = detour_clock_next_deadline(c);
    cr_assert_geq(d, last);
    last = d;
    fired += detour_clock_advance(c);
    flog.n = 0; /* the log only holds 16 */
  }
  cr_assert_eq(fired, N);
  detour_clock_free(c);
}

/* ------------------------------------------------------------------------ */
/* Real clock                                                                */

static void free_self_and_count(detour_timer *t, void *arg) {
  int *count = arg;
  (*count)++;
  detour_timer_free(t);
}

Test(uv_clock, real_clock_sanity) {
  detour_clock *c = detour_clock_new_real(&loop);
  cr_assert_not_null(c);
  cr_assert_not(detour_clock_is_virtual(c));
  detour_ms wall = (detour_ms)time(NULL) * 1000;
  detour_ms now = detour_clock_now(c);
  cr_assert(now > wall - 2000 && now < wall + 2000, "now %lld vs %lld",
            (long long)now, (long long)wall);
  cr_assert_eq(detour_clock_next_deadline(c), DETOUR_NO_DEADLINE);
  cr_assert_eq(detour_clock_advance(c), 0);
  cr_assert_eq(detour_clock_run_virtual(c, NULL, NULL, 10), DETOUR_EINVAL);

  /* A 30 ms timer that frees itself; a stopped one never fires. */
  int fired = 0, never = 0;
  detour_timer *t = detour_timer_new(c, free_self_and_count, &fired);
  detour_timer *s = detour_timer_new(c, free_self_and_count, &never);
  detour_timer_start(t, now + 30);
  detour_timer_start(s, now + 10);
  cr_assert(detour_timer_active(t));
  detour_timer_stop(s);
  cr_assert_not(detour_timer_active(s));
  uv_run(&loop, UV_RUN_DEFAULT); /* bounded: only t is active */
  cr_assert_eq(fired, 1);
  cr_assert_eq(never, 0);
  detour_ms later = detour_clock_now(c);
  cr_assert_geq(later - now, 30);
  cr_assert_lt(later - now, 5000);
  detour_timer_free(s);
  detour_clock_free(c);
}

/* ------------------------------------------------------------------------ */
/* The virtual-time runner                                                   */

static void count_and_rearm(detour_timer *t, void *arg) {
  int *left = arg;
  record(t, NULL);
  if (--*left > 0)
    detour_timer_start(t, detour_clock_now(flog.clock) + 3 * 60 * 1000);
}

static bool count_done(void *arg) { return *(int *)arg == 0; }

Test(uv_clock, run_virtual_runs_a_long_schedule_fast) {
  detour_clock *c = virtual_clock();
  int left = 10;
  detour_timer *t = detour_timer_new(c, count_and_rearm, &left);
  detour_timer_start(t, T0 + 3 * 60 * 1000);
  uint64_t start = uv_hrtime();
  cr_assert_eq(detour_clock_run_virtual(c, count_done, &left, 10000), 0);
  cr_assert_lt(uv_hrtime() - start, 2000000000u, "30 min in under 2 s");
  cr_assert_eq(flog.n, 10);
  for (int i = 0; i < 10; i++)
    cr_assert_eq(flog.when[i], T0 + (i + 1) * 3 * 60 * 1000);
  detour_timer_free(t);
  detour_clock_free(c);
}

static bool never_done(void *arg) {
  (void)arg;
  return false;
}

Test(uv_clock, run_virtual_nothing_left) {
  detour_clock *c = virtual_clock();
  detour_timer *t = detour_timer_new(c, record, NULL);
  detour_timer_start(t, T0 + 1000);
  cr_assert_eq(detour_clock_run_virtual(c, never_done, NULL, 5000),
               DETOUR_ENOT_FOUND);
  cr_assert_eq(flog.n, 1);
  cr_assert_eq(detour_clock_now(c), T0 + 1000);
  detour_timer_start(t, T0 + 2000);
  cr_assert_eq(detour_clock_run_virtual(c, NULL, NULL, 5000), 0,
               "without done(): 0 once nothing is left");
  cr_assert_eq(flog.n, 2);
  detour_timer_free(t);
  detour_clock_free(c);
}

Test(uv_clock, run_virtual_hold_stops_time_until_the_limit) {
  detour_clock *c = virtual_clock();
  detour_timer *t = detour_timer_new(c, record, NULL);
  detour_timer_start(t, T0 + 1000);
  detour_clock_hold(c);
  uint64_t start = uv_hrtime();
  cr_assert_eq(detour_clock_run_virtual(c, never_done, NULL, 50), DETOUR_EIO);
  uint64_t took = uv_hrtime() - start;
  cr_assert_geq(took, 50000000u);
  cr_assert_lt(took, 2000000000u);
  cr_assert_eq(flog.n, 0, "time did not move while held");
  cr_assert_eq(detour_clock_now(c), T0);
  detour_clock_release(c);
  cr_assert_eq(detour_clock_run_virtual(c, NULL, NULL, 5000), 0);
  cr_assert_eq(flog.n, 1);
  detour_timer_free(t);
  detour_clock_free(c);
}

/* A loopback ping-pong in the same loop, all at virtual T0: the client
 * sends "ping", the server echoes at once, ROUNDS times in a row; the last
 * echo the server holds for a virtual 5 s. A decoy timer at T0 + 1 ms
 * fires early (and the test fails) if virtual time advances while any of
 * those bytes are in flight: the chain is far longer than the few quiet
 * steps the runner needs, so each step must really see the traffic. */
#define ROUNDS 40

typedef struct {
  detour_clock *clock;
  uv_tcp_t listener, server_conn, client;
  uv_connect_t connect_req;
  uv_write_t client_write, server_write;
  detour_timer *echo_timer, *decoy;
  char buf[64];
  detour_ms connected_at, last_rx_at, decoy_at, client_rx_at;
  int server_rounds, client_rounds, rounds_at_decoy;
  int closed;
} echo_test;

static echo_test et;

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)h, (void)hint;
  *buf = uv_buf_init(et.buf, sizeof et.buf);
}

static void on_closed(uv_handle_t *h) {
  (void)h;
  et.closed++;
}

static void on_written(uv_write_t *req, int status) {
  (void)req;
  cr_assert_eq(status, 0);
}

static void send_ping(uv_write_t *req, uv_tcp_t *tcp) {
  uv_buf_t b = uv_buf_init("ping", 4);
  cr_assert_eq(uv_write(req, (uv_stream_t *)tcp, &b, 1, on_written), 0);
}

static void echo_now(detour_timer *t, void *arg) {
  (void)arg;
  send_ping(&et.server_write, &et.server_conn);
  detour_timer_free(t);
  et.echo_timer = NULL;
}

static void decoy_fired(detour_timer *t, void *arg) {
  (void)t, (void)arg;
  et.decoy_at = detour_clock_now(et.clock);
  et.rounds_at_decoy = et.server_rounds;
}

/* Each read is one whole "ping": the peer never sends the next one before
 * the answer to the last. */
static void on_server_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  (void)s, (void)buf;
  if (n <= 0)
    return;
  cr_assert_eq(n, 4);
  et.server_rounds++;
  et.last_rx_at = detour_clock_now(et.clock);
  if (et.server_rounds < ROUNDS)
    send_ping(&et.server_write, &et.server_conn);
  else
    detour_timer_start(et.echo_timer, et.last_rx_at + 5000);
}

static void on_connection(uv_stream_t *l, int status) {
  cr_assert_eq(status, 0);
  uv_tcp_init(l->loop, &et.server_conn);
  cr_assert_eq(uv_accept(l, (uv_stream_t *)&et.server_conn), 0);
  uv_read_start((uv_stream_t *)&et.server_conn, on_alloc, on_server_read);
}

static void on_client_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  (void)s;
  if (n <= 0)
    return;
  cr_assert_eq(n, 4);
  cr_assert(memcmp(buf->base, "ping", 4) == 0);
  if (++et.client_rounds < ROUNDS) {
    send_ping(&et.client_write, &et.client);
    return;
  }
  et.client_rx_at = detour_clock_now(et.clock);
  uv_close((uv_handle_t *)&et.client, on_closed);
  uv_close((uv_handle_t *)&et.server_conn, on_closed);
  uv_close((uv_handle_t *)&et.listener, on_closed);
}

static void on_connect(uv_connect_t *req, int status) {
  cr_assert_eq(status, 0);
  et.connected_at = detour_clock_now(et.clock);
  send_ping(&et.client_write, &et.client);
  uv_read_start(req->handle, on_alloc, on_client_read);
}

static bool echo_done(void *arg) {
  (void)arg;
  return et.closed == 3;
}

static void start_echo(detour_clock *c) {
  memset(&et, 0, sizeof et);
  et.clock = c;
  struct sockaddr_in addr;
  uv_ip4_addr("127.0.0.1", 0, &addr);
  uv_tcp_init(&loop, &et.listener);
  cr_assert_eq(uv_tcp_bind(&et.listener, (struct sockaddr *)&addr, 0), 0);
  cr_assert_eq(uv_listen((uv_stream_t *)&et.listener, 8, on_connection), 0);
  int len = sizeof addr;
  uv_tcp_getsockname(&et.listener, (struct sockaddr *)&addr, &len);
  uv_tcp_init(&loop, &et.client);
  cr_assert_eq(uv_tcp_connect(&et.connect_req, &et.client,
                              (struct sockaddr *)&addr, on_connect),
               0);
  et.echo_timer = detour_timer_new(c, echo_now, NULL);
  et.decoy = detour_timer_new(c, decoy_fired, NULL);
}

Test(uv_clock, run_virtual_waits_for_bytes_in_flight) {
  detour_clock *c = virtual_clock();
  for (int round = 0; round < 3; round++) { /* the same every run */
    detour_ms start = detour_clock_now(c);
    start_echo(c);
    detour_timer_start(et.decoy, start + 1);
    cr_assert_eq(detour_clock_run_virtual(c, echo_done, NULL, 10000), 0);
    cr_assert_eq(et.connected_at, start);
    cr_assert_eq(et.rounds_at_decoy, ROUNDS, "time moved with bytes in flight");
    cr_assert_eq(et.last_rx_at, start);
    cr_assert_eq(et.decoy_at, start + 1);
    cr_assert_eq(et.client_rx_at, start + 5000);
    cr_assert_eq(detour_clock_now(c), start + 5000);
    cr_assert_null(et.echo_timer);
    detour_timer_free(et.decoy);
    for (int i = 0; i < 10 && uv_loop_alive(&loop); i++)
      uv_run(&loop, UV_RUN_NOWAIT);
  }
  detour_clock_free(c);
}

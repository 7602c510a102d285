/*
 * test_fake_nomem.c - allocation failure in libdetour-fake: a server
 * whose allocator (detour_fake_mem) fails the Nth allocation, for every N
 * a representative session makes (greeting .. QUIT with a message), must
 * not crash, leak or hang: the session it hit ends (reset, recorded as
 * closed_by NOMEM), and the server then serves the next client normally.
 * The allocator counts live blocks, so a leak fails the test even without
 * LeakSanitizer (the CI's sanitizer build checks again).
 */
#include <stdatomic.h>

#include "test_fake_util.h"

typedef struct {
  atomic_long calls;   /* allocations attempted */
  atomic_long live;    /* blocks allocated and not freed */
  atomic_long fail_at; /* fail this allocation (1-based); 0: none */
  atomic_bool failed;  /* it happened */
} counter;

static void *count_alloc(counter *c, void *p, size_t n, bool zero) {
  long k = atomic_fetch_add(&c->calls, 1) + 1;
  if (k == atomic_load(&c->fail_at)) {
    atomic_store(&c->failed, true);
    return NULL;
  }
  void *q = p ? realloc(p, n) : zero ? calloc(1, n) : malloc(n);
  if (q && !p)
    atomic_fetch_add(&c->live, 1);
  return q;
}

static void *m_malloc(size_t n, void *u) {
  return count_alloc(u, NULL, n, false);
}
static void *m_calloc(size_t n, size_t sz, void *u) {
  return count_alloc(u, NULL, n * sz, true);
}
static void *m_realloc(void *p, size_t n, void *u) {
  return count_alloc(u, p, n, false);
}
static void m_free(void *p, void *u) {
  counter *c = u;
  if (p)
    atomic_fetch_sub(&c->live, 1);
  free(p);
}

/* ft_start for one server with an allocator of its own. NULL server when
 * server_new itself ran out of memory. */
static void start_with(ft_env *e, counter *c, const char *yaml) {
  char err[512] = "";
  size_t n = 0;
  memset(e, 0, sizeof *e);
  signal(SIGPIPE, SIG_IGN);
  cr_assert_eq(uv_loop_init(&e->loop), 0);
  e->clock = detour_clock_new_real(&e->loop);
  detour_fake_script **v = detour_fake_load_string(
      yaml, strlen(yaml), "nomem.yaml", &n, err, sizeof err);
  cr_assert_not_null(v, "%s", err);
  detour_fake_mem mem = {c, m_malloc, m_calloc, m_realloc, m_free};
  int rc = 0;
  e->srv[0] = detour_fake_server_new_mem(e->clock, v[0], NULL, 0, &mem, &rc);
  detour_fake_scripts_free(v, n);
  if (!e->srv[0]) {
    cr_assert_eq(rc, DETOUR_ENOMEM);
    return;
  }
  e->nsrv = 1;
  cr_assert_eq(detour_fake_server_start(e->srv[0], err, sizeof err), 0, "%s",
               err);
  ft_launch(e);
}

/* Send a line (if any) and wait for the reply: true when one came, false
 * when the server ended the session (EOF or RST). Never a timeout: that
 * would be a hang. */
static bool step(int fd, const char *send_line, const char *what, long n) {
  char buf[4096];
  if (send_line)
    send(fd, send_line, strlen(send_line), MSG_NOSIGNAL);
  ssize_t r = ft_read_reply(fd, buf, sizeof buf, 3000);
  cr_assert_neq(r, -ETIMEDOUT, "allocation %ld failed: no answer to %s", n,
                what);
  return r > 0;
}

/* The representative session, tolerant of being cut anywhere. */
static void session(const detour_fake_server *srv, long n) {
  int fd = ft_connect(srv);
  /* The server may reset a session it has no memory for before the
   * connect is seen to complete (SO_ERROR is then ECONNRESET); it must
   * never stop listening (ECONNREFUSED) or leave us waiting. */
  if (fd == -ECONNRESET)
    return;
  cr_assert_geq(fd, 0, "allocation %ld failed: connect: %s", n, strerror(-fd));
  static const char *const lines[] = {
      NULL,
      "EHLO client.test\r\n",
      "MAIL FROM:<a@x.test>\r\n",
      "RCPT TO:<b@x.test>\r\n",
      "RCPT TO:<c@x.test>\r\n",
      "DATA\r\n",
      "Subject: nomem\r\n\r\n..dot\r\nbody\r\n.\r\n",
      "QUIT\r\n"};
  for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
    if (!step(fd, lines[i], lines[i] ? lines[i] : "(greeting)", n))
      break;
  ft_wait_close(fd, 3000);
  close(fd);
}

static const char *script = "name: nomem\nrecord: full\n";

/* One run failing allocation n (0: none); returns the allocations the
 * first session made. */
static long run_failing(long n) {
  counter c;
  atomic_init(&c.calls, 0);
  atomic_init(&c.live, 0);
  atomic_init(&c.fail_at, n);
  atomic_init(&c.failed, false);
  ft_env e;
  start_with(&e, &c, script);
  if (!e.srv[0]) {
    cr_assert_eq(atomic_load(&c.live), 0, "allocation %ld: no leak", n);
    detour_clock_free(e.clock);
    uv_run(&e.loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&e.loop), 0);
    return 0;
  }
  session(e.srv[0], n);
  usleep(20000); /* the server finishes closing the first session */
  long first = atomic_load(&c.calls);
  /* The server is still whole: a later client gets the full service. */
  double ms = ft_normal_session_ms(e.srv[0]);
  cr_assert_lt(ms, 1000.0, "allocation %ld: later client in %.0f ms", n, ms);
  ft_join(&e);
  detour_fake_stats st;
  detour_fake_server_stats(e.srv[0], &st);
  if (atomic_load(&c.failed)) {
    cr_assert_geq(st.nomem, 1, "allocation %ld failed: counted", n);
  } else {
    cr_assert_eq(st.nomem, 0);
  }
  cr_assert_geq(st.messages, 1, "the later client's message");
  ft_finish(&e);
  cr_assert_eq(atomic_load(&c.live), 0, "allocation %ld: %ld blocks leaked", n,
               atomic_load(&c.live));
  return first;
}

Test(fake_nomem, every_allocation_of_a_session_may_fail, .timeout = 600) {
  long total = run_failing(0);
  cr_assert_gt(total, 10, "the session allocates (%ld)", total);
  for (long n = 1; n <= total; n++)
    run_failing(n);
  cr_log_info("failed each of %ld allocations in turn", total);
}

/* The session that met the failure is recorded as ended for lack of
 * memory (the record has room again once the failing call is past). */
Test(fake_nomem, the_session_is_recorded_as_nomem) {
  counter c;
  atomic_init(&c.calls, 0);
  atomic_init(&c.live, 0);
  atomic_init(&c.fail_at, 0);
  atomic_init(&c.failed, false);
  ft_env e;
  start_with(&e, &c, script);
  int fd = ft_connect(e.srv[0]);
  FT_EXPECT(fd, NULL, "220");
  FT_EXPECT(fd, "MAIL FROM:<a@x.test>", "250");
  /* The copy of the RCPT address is the next allocation after the
   * command's line and its record event: fail the first of those. */
  atomic_store(&c.fail_at, atomic_load(&c.calls) + 1);
  ft_send(fd, "RCPT TO:<b@x.test>\r\n");
  char buf[256];
  cr_assert_leq(ft_read_reply(fd, buf, sizeof buf, 3000), 0, "reset");
  close(fd);
  usleep(20000);
  ft_join(&e);
  detour_fake_conn conn;
  cr_assert_eq(detour_fake_server_conn(e.srv[0], 0, &conn), 0);
  cr_assert_eq(conn.closed_by, DETOUR_FAKE_BY_NOMEM, "closed by %s",
               detour_fake_closer_name(conn.closed_by));
  ft_finish(&e);
  cr_assert_eq(atomic_load(&c.live), 0);
}

/* Script calls with the process-wide allocator failing the Nth
 * allocation: each call fails cleanly (DETOUR_ENOMEM or NULL) and nothing
 * leaks. */
static long script_calls(counter *c) {
  detour_fake_script *s = detour_fake_script_new("calls");
  if (s) {
    static const char *const kw[] = {"PIPELINING", "SIZE 10"};
    detour_fake_rule r = {.stage = DETOUR_FAKE_RCPT,
                          .address = "bad@*",
                          .code = 550,
                          .enhanced = "5.1.1",
                          .text = "no such user"};
    int rc[] = {detour_fake_script_add_fault(s, "disk_full", NULL),
                detour_fake_script_add_fault(s, "overlong_line", NULL),
                detour_fake_script_add_rule(s, &r),
                detour_fake_script_set_hostname(s, "mx.calls.test"),
                detour_fake_script_set_ehlo_keywords(s, kw, 2)};
    for (size_t i = 0; i < sizeof rc / sizeof rc[0]; i++)
      cr_assert(rc[i] == 0 || rc[i] == DETOUR_ENOMEM, "call %zu: %d", i, rc[i]);
    detour_fake_script *copy = detour_fake_script_clone(s);
    detour_fake_script_free(copy);
    detour_fake_script_free(s);
  }
  return atomic_load(&c->calls);
}

Test(fake_nomem, script_calls_fail_cleanly) {
  static counter c;
  detour_fake_mem mem = {&c, m_malloc, m_calloc, m_realloc, m_free};
  detour_fake_set_mem(&mem);
  atomic_init(&c.fail_at, 0);
  long total = script_calls(&c);
  cr_assert_gt(total, 10);
  for (long n = 1; n <= total; n++) {
    atomic_store(&c.calls, 0);
    atomic_store(&c.live, 0);
    atomic_store(&c.fail_at, n);
    script_calls(&c);
    cr_assert_eq(atomic_load(&c.live), 0, "allocation %ld: %ld leaked", n,
                 atomic_load(&c.live));
  }
  detour_fake_set_mem(NULL);
}

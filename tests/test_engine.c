/*
 * test_engine.c - the sans-I/O engine, driven event by event with a fake
 * clock. Each test asserts the exact action sequence SPEC asks for: which
 * server is contacted when, the log rows (R8), the recipient outcomes, and
 * both sides of every deadline (at the deadline it fires, 1 ms before it
 * does not).
 */
#include "engine_harness.h"

#define A "127.0.0.1:2525"
#define B "127.0.0.2:2525"
#define C "127.0.0.3:2525"
#define MIN (60 * 1000)
#define BODY "Subject: t\n\nhello\n"
#define WIRE_BODY "Subject: t\\r\\n\\r\\nhello\\r\\n.\\r\\n"

static detour_config cfg;
static detour_engine *eng;
static detour_policy *pol;
static detour_classify *table;

static void setup_servers(int n) {
  detour_config_init(&cfg);
  const char *hosts[] = {"127.0.0.1", "127.0.0.2", "127.0.0.3"};
  for (int i = 0; i < n; i++)
    cr_assert_eq(detour_config_add_server(&cfg, hosts[i], 2525, i + 1), 0);
}

static void start(void) {
  int err = 1;
  eng = detour_engine_new(&cfg, &err);
  cr_assert_not_null(eng, "engine_new: %d", err);
  cr_assert_eq(err, 0);
}

static void teardown(void) {
  detour_engine_free(eng);
  detour_policy_free(pol);
  detour_classify_free(table);
  eng = NULL;
  pol = NULL;
  table = NULL;
}

static int submit_to(const char *const *rcpts, size_t n, detour_override ov,
                     detour_ms t) {
  detour_message m = {.from = "s@x.test",
                      .rcpts = rcpts,
                      .nrcpts = n,
                      .body = BODY,
                      .body_len = strlen(BODY),
                      .override = ov};
  return detour_engine_submit(eng, &m, t);
}

static int submit1(detour_ms t) {
  static const char *const one[] = {"r@y.test"};
  return submit_to(one, 1, DETOUR_OVERRIDE_NONE, t);
}

/* Greeting, EHLO, MAIL: leaves the engine waiting for RCPT's reply. */
static void up_to_rcpt(unsigned c, detour_ms t, const char *addr) {
  detour_engine_on_connected(eng, c, t, addr);
  EXPECT_NONE(eng);
  reply(eng, c, t, "220 fake ESMTP\r\n");
  char want[100];
  snprintf(want, sizeof want, "send #%u EHLO localhost\\r\\n", c);
  EXPECT(eng, want);
  reply(eng, c, t, "250 fake\r\n");
  snprintf(want, sizeof want, "send #%u MAIL FROM:<s@x.test>\\r\\n", c);
  EXPECT(eng, want);
  reply(eng, c, t, "250 2.1.0 ok\r\n");
  snprintf(want, sizeof want, "send #%u RCPT TO:<r@y.test>\\r\\n", c);
  EXPECT(eng, want);
}

/* Continue after RCPT: accepted, DATA, body; waits for the final reply. */
static void rcpt_to_body(unsigned c, detour_ms t) {
  char want[100];
  reply(eng, c, t, "250 2.1.5 ok\r\n");
  snprintf(want, sizeof want, "send #%u DATA\\r\\n", c);
  EXPECT(eng, want);
  reply(eng, c, t, "354 go ahead\r\n");
  snprintf(want, sizeof want, "send #%u " WIRE_BODY, c);
  EXPECT(eng, want);
  detour_engine_on_sent(eng, c, t);
}

TestSuite(engine, .fini = teardown);

/* ---------------------------------------------------------------- R2, R8 */

Test(engine, success_on_primary_writes_one_smtp_ok_row) {
  setup_servers(2);
  start();
  cr_assert_eq(submit1(T0), 0);
  EXPECT(eng, "connect #1 127.0.0.1:2525");
  up_to_rcpt(1, T0 + 10, A);
  rcpt_to_body(1, T0 + 20);
  reply(eng, 1, T0 + 30, "250 2.0.0 queued as X\r\n");
  EXPECT(eng, "log +30 smtp r@y.test " A " SMTP OK NONE a1",
         "rcpt r@y.test delivered s0", "send #1 QUIT\\r\\n", "done delivered");
  cr_assert(!detour_engine_idle(eng), "QUIT reply still awaited");
  reply(eng, 1, T0 + 31, "221 bye\r\n");
  EXPECT(eng, "close #1");
  cr_assert(detour_engine_idle(eng));
  cr_assert_eq(detour_engine_next_deadline(eng), DETOUR_NO_DEADLINE);
}

/* Fig. 6: the primary refuses, the backup is contacted at once. */
Test(engine, fig6_tcp_error_then_smtp_ok_on_backup_without_waiting) {
  setup_servers(2);
  start();
  submit1(T0);
  EXPECT(eng, "connect #1 127.0.0.1:2525");
  detour_engine_on_connect_failed(eng, 1, T0 + 20000,
                                  DETOUR_COND_CONNECT_REFUSED, "refused");
  EXPECT(eng, "close #1",
         "log +20000 connect r@y.test " A " TCP error CONNECT a1",
         "connect #2 127.0.0.2:2525");
  up_to_rcpt(2, T0 + 20000, B);
  rcpt_to_body(2, T0 + 20000);
  reply(eng, 2, T0 + 20000, "250 ok\r\n");
  EXPECT(eng, "log +20000 smtp r@y.test " B " SMTP OK NONE a1",
         "rcpt r@y.test delivered s1", "send #2 QUIT\\r\\n", "done delivered");
}

/* ------------------------------------------------------- R3 CONNECT class */

static void connect_class_switches_at_once(detour_condition cond) {
  setup_servers(2);
  start();
  submit1(T0);
  EXPECT(eng, "connect #1 127.0.0.1:2525");
  detour_engine_on_connect_failed(eng, 1, T0 + 1, cond, "x");
  EXPECT(eng, "close #1", "log +1 connect r@y.test " A " TCP error CONNECT a1",
         "connect #2 127.0.0.2:2525");
}

Test(engine, refused_is_connect_class) {
  connect_class_switches_at_once(DETOUR_COND_CONNECT_REFUSED);
}
Test(engine, unreachable_is_connect_class) {
  connect_class_switches_at_once(DETOUR_COND_UNREACHABLE);
}
Test(engine, dns_failure_is_connect_class) {
  connect_class_switches_at_once(DETOUR_COND_DNS);
}

Test(engine, connect_timeout_fires_at_deadline_not_before) {
  setup_servers(2);
  cfg.timeouts.connect = 30000;
  start();
  submit1(T0);
  EXPECT(eng, "connect #1 127.0.0.1:2525");
  cr_assert_eq(detour_engine_next_deadline(eng), T0 + 30000);
  detour_engine_on_timer(eng, T0 + 29999);
  EXPECT_NONE(eng);
  detour_engine_on_timer(eng, T0 + 30000);
  EXPECT(eng, "close #1",
         "log +30000 connect r@y.test " A " TCP error CONNECT a1",
         "connect #2 127.0.0.2:2525");
}

/* ----------------------------------------------------- R3 TRANSIENT class */

/* After a TRANSIENT failure at +t, nothing happens until the interval has
 * passed; then the same server is contacted again (attempt 2). */
static void expect_same_server_after_interval(detour_ms t, unsigned next) {
  cr_assert_eq(detour_engine_next_deadline(eng), t + 3 * MIN);
  detour_engine_on_timer(eng, t + 3 * MIN - 1);
  EXPECT_NONE(eng);
  detour_engine_on_timer(eng, t + 3 * MIN);
  char want[64];
  snprintf(want, sizeof want, "connect #%u 127.0.0.1:2525", next);
  EXPECT(eng, want);
}

Test(engine, greeting_timeout_is_transient_both_sides_of_deadline) {
  setup_servers(2);
  start();
  submit1(T0);
  EXPECT(eng, "connect #1 127.0.0.1:2525");
  detour_engine_on_connected(eng, 1, T0, A);
  cr_assert_eq(detour_engine_next_deadline(eng), T0 + 5 * MIN);
  detour_engine_on_timer(eng, T0 + 5 * MIN - 1);
  EXPECT_NONE(eng);
  detour_engine_on_timer(eng, T0 + 5 * MIN);
  EXPECT(eng, "log +300000 smtp r@y.test " A " SMTP timeout TRANSIENT a1",
         "close #1");
  expect_same_server_after_interval(T0 + 5 * MIN, 2);
}

Test(engine, connection_dropped_mid_session_is_transient) {
  setup_servers(2);
  start();
  submit1(T0);
  EXPECT(eng, "connect #1 127.0.0.1:2525");
  up_to_rcpt(1, T0, A);
  detour_engine_on_closed(eng, 1, T0 + 7, "connection reset by peer");
  EXPECT(eng, "log +7 smtp r@y.test " A " SMTP connection closed TRANSIENT a1",
         "close #1");
  expect_same_server_after_interval(T0 + 7, 2);
}

Test(engine, drop_mid_data_is_transient_and_retry_succeeds) {
  setup_servers(2);
  start();
  submit1(T0);
  EXPECT(eng, "connect #1 127.0.0.1:2525");
  up_to_rcpt(1, T0, A);
  rcpt_to_body(1, T0);
  detour_engine_on_closed(eng, 1, T0 + 3, "closed by server");
  EXPECT(eng, "log +3 smtp r@y.test " A " SMTP connection closed TRANSIENT a1",
         "close #1");
  expect_same_server_after_interval(T0 + 3, 2);
  detour_ms t = T0 + 3 + 3 * MIN;
  up_to_rcpt(2, t, A);
  rcpt_to_body(2, t);
  reply(eng, 2, t, "250 ok\r\n");
  EXPECT(eng, "log +180003 smtp r@y.test " A " SMTP OK NONE a2",
         "rcpt r@y.test delivered s0", "send #2 QUIT\\r\\n", "done delivered");
}

Test(engine, malformed_reply_is_transient) {
  setup_servers(2);
  start();
  submit1(T0);
  EXPECT(eng, "connect #1 127.0.0.1:2525");
  detour_engine_on_connected(eng, 1, T0, A);
  reply(eng, 1, T0 + 1, "2x0 what\r\n");
  EXPECT(eng, "log +1 smtp r@y.test " A " SMTP malformed reply TRANSIENT a1",
         "close #1");
  expect_same_server_after_interval(T0 + 1, 2);
}

Test(engine, reply_before_command_is_malformed) {
  setup_servers(2);
  start();
  submit1(T0);
  EXPECT(eng, "connect #1 127.0.0.1:2525");
  detour_engine_on_connected(eng, 1, T0, A);
  reply(eng, 1, T0 + 1, "220 hi\r\n250 early\r\n");
  EXPECT(eng, "send #1 EHLO localhost\\r\\n",
         "log +1 smtp r@y.test " A " SMTP malformed reply TRANSIENT a1",
         "close #1");
}

static void transient_reply_at_rcpt(const char *text, const char *result) {
  setup_servers(2);
  start();
  submit1(T0);
  EXPECT(eng, "connect #1 127.0.0.1:2525");
  up_to_rcpt(1, T0, A);
  reply(eng, 1, T0 + 2, text);
  char row[200];
  snprintf(row, sizeof row, "log +2 smtp r@y.test " A " %s TRANSIENT a1",
           result);
  EXPECT(eng, row, "send #1 QUIT\\r\\n");
  expect_same_server_after_interval(T0 + 2, 2);
}

Test(engine, rcpt_450_is_transient) {
  transient_reply_at_rcpt("450 4.2.1 mailbox busy\r\n",
                          "SMTP 450 4.2.1 mailbox busy");
}
Test(engine, rcpt_451_is_transient) {
  transient_reply_at_rcpt("451 4.4.1 try later\r\n",
                          "SMTP 451 4.4.1 try later");
}

Test(engine, mail_451_and_eod_451_are_transient) {
  setup_servers(2);
  start();
  submit1(T0);
  EXPECT(eng, "connect #1 127.0.0.1:2525");
  detour_engine_on_connected(eng, 1, T0, A);
  reply(eng, 1, T0, "220 x\r\n");
  reply(eng, 1, T0, "250 x\r\n");
  EXPECT(eng, "send #1 EHLO localhost\\r\\n",
         "send #1 MAIL FROM:<s@x.test>\\r\\n");
  reply(eng, 1, T0 + 1, "451 4.3.0 local error\r\n");
  EXPECT(eng,
         "log +1 smtp r@y.test " A " SMTP 451 4.3.0 local error "
         "TRANSIENT a1",
         "send #1 QUIT\\r\\n");
  expect_same_server_after_interval(T0 + 1, 2);
  detour_ms t = T0 + 1 + 3 * MIN;
  up_to_rcpt(2, t, A);
  rcpt_to_body(2, t);
  reply(eng, 2, t, "451 4.3.0 queue write failed\r\n");
  EXPECT(eng,
         "log +180001 smtp r@y.test " A " SMTP 451 4.3.0 queue write "
         "failed TRANSIENT a2",
         "send #2 QUIT\\r\\n");
}

/* -------------------------------------------------------- R3 SWITCH class */

static void switch_at_once_after(const char *row_result) {
  char row[200];
  snprintf(row, sizeof row, "log +5 smtp r@y.test " A " %s SWITCH a1",
           row_result);
  action_lines got;
  drain(eng, &got);
  bool found_row = false, found_connect = false;
  for (size_t i = 0; i < got.n; i++) {
    found_row |= strcmp(got.line[i], row) == 0;
    found_connect |= strcmp(got.line[i], "connect #2 127.0.0.2:2525") == 0;
    cr_assert(strncmp(got.line[i], "connect #2", 10) != 0 || found_row,
              "switched before logging");
  }
  if (!found_row || !found_connect)
    dump_lines(&got);
  cr_assert(found_row, "no row \"%s\"", row);
  cr_assert(found_connect, "no immediate connect to the backup");
}

Test(engine, greeting_421_switches_at_once) {
  setup_servers(2);
  start();
  submit1(T0);
  EXPECT(eng, "connect #1 127.0.0.1:2525");
  detour_engine_on_connected(eng, 1, T0, A);
  reply(eng, 1, T0 + 5, "421 4.3.2 shutting down\r\n");
  EXPECT(eng,
         "log +5 smtp r@y.test " A " SMTP 421 4.3.2 shutting down "
         "SWITCH a1",
         "close #1", "connect #2 127.0.0.2:2525");
}

Test(engine, greeting_554_switches_at_once) {
  setup_servers(2);
  start();
  submit1(T0);
  EXPECT(eng, "connect #1 127.0.0.1:2525");
  detour_engine_on_connected(eng, 1, T0, A);
  reply(eng, 1, T0 + 5, "554 no service\r\n");
  switch_at_once_after("SMTP 554 no service");
}

Test(engine, disk_full_at_rcpt_switches_at_once) {
  setup_servers(2);
  start();
  submit1(T0);
  EXPECT(eng, "connect #1 127.0.0.1:2525");
  up_to_rcpt(1, T0, A);
  reply(eng, 1, T0 + 5, "452 4.3.1 insufficient system storage\r\n");
  EXPECT(eng,
         "log +5 smtp r@y.test " A " SMTP 452 4.3.1 insufficient system "
         "storage SWITCH a1",
         "send #1 QUIT\\r\\n", "connect #2 127.0.0.2:2525");
}

Test(engine, disk_full_at_end_of_data_switches) {
  setup_servers(2);
  start();
  submit1(T0);
  EXPECT(eng, "connect #1 127.0.0.1:2525");
  up_to_rcpt(1, T0, A);
  rcpt_to_body(1, T0);
  reply(eng, 1, T0 + 5, "552 5.3.1 mail system full\r\n");
  switch_at_once_after("SMTP 552 5.3.1 mail system full");
}

Test(engine, unsupported_parameter_at_mail_switches) {
  setup_servers(2);
  start();
  submit1(T0);
  EXPECT(eng, "connect #1 127.0.0.1:2525");
  detour_engine_on_connected(eng, 1, T0, A);
  reply(eng, 1, T0, "220 x\r\n");
  reply(eng, 1, T0, "250-x\r\n250 SIZE 1000000\r\n");
  EXPECT(eng, "send #1 EHLO localhost\\r\\n",
         "send #1 MAIL FROM:<s@x.test> SIZE=21\\r\\n");
  reply(eng, 1, T0 + 5, "555 5.5.4 SIZE not supported\r\n");
  switch_at_once_after("SMTP 555 5.5.4 SIZE not supported");
}

Test(engine, auth_required_switches_with_configuration_warning) {
  setup_servers(2);
  start();
  submit1(T0);
  EXPECT(eng, "connect #1 127.0.0.1:2525");
  detour_engine_on_connected(eng, 1, T0, A);
  reply(eng, 1, T0, "220 x\r\n");
  reply(eng, 1, T0, "250 x\r\n");
  drain(eng, &(action_lines){0});
  reply(eng, 1, T0 + 9, "530 5.7.0 authentication required\r\n");
  EXPECT(eng,
         "log +9 smtp r@y.test " A " SMTP 530 5.7.0 authentication "
         "required SWITCH a1",
         "send #1 QUIT\\r\\n",
         "warn configuration error: server " A
         " refused us: authentication required (mail: 530 5.7.0 "
         "authentication required); check its TLS and authentication "
         "settings",
         "connect #2 127.0.0.2:2525");
}

Test(engine, ehlo_refused_falls_back_to_helo) {
  setup_servers(1);
  start();
  submit1(T0);
  EXPECT(eng, "connect #1 127.0.0.1:2525");
  detour_engine_on_connected(eng, 1, T0, A);
  reply(eng, 1, T0, "220 old\r\n");
  EXPECT(eng, "send #1 EHLO localhost\\r\\n");
  reply(eng, 1, T0, "502 5.5.2 command not recognized\r\n");
  EXPECT(eng, "send #1 HELO localhost\\r\\n");
  reply(eng, 1, T0, "250 old\r\n");
  EXPECT(eng, "send #1 MAIL FROM:<s@x.test>\\r\\n");
}

/* --------------------------------------------------------- R3 ABORT class */

Test(engine, bad_recipient_aborts_with_one_connection_and_no_retry) {
  setup_servers(2);
  start();
  submit1(T0);
  EXPECT(eng, "connect #1 127.0.0.1:2525");
  up_to_rcpt(1, T0, A);
  reply(eng, 1, T0 + 4, "550 5.1.1 no such user\r\n");
  EXPECT(eng,
         "log +4 smtp r@y.test " A " SMTP 550 5.1.1 no such user "
         "ABORT a1",
         "rcpt r@y.test aborted s-1", "send #1 QUIT\\r\\n", "done aborted");
  reply(eng, 1, T0 + 5, "221 bye\r\n");
  EXPECT(eng, "close #1");
  cr_assert(detour_engine_idle(eng));
  cr_assert_eq(detour_engine_next_deadline(eng), DETOUR_NO_DEADLINE);
}

Test(engine, content_refused_after_final_dot_aborts) {
  setup_servers(2);
  start();
  submit1(T0);
  EXPECT(eng, "connect #1 127.0.0.1:2525");
  up_to_rcpt(1, T0, A);
  rcpt_to_body(1, T0);
  reply(eng, 1, T0 + 4, "554 5.6.0 content rejected\r\n");
  EXPECT(eng,
         "log +4 smtp r@y.test " A " SMTP 554 5.6.0 content rejected "
         "ABORT a1",
         "rcpt r@y.test aborted s-1", "send #1 QUIT\\r\\n", "done aborted");
}

Test(engine, bad_sender_aborts_every_recipient) {
  setup_servers(2);
  start();
  static const char *const two[] = {"a@y.test", "b@y.test"};
  submit_to(two, 2, DETOUR_OVERRIDE_NONE, T0);
  EXPECT(eng, "connect #1 127.0.0.1:2525");
  detour_engine_on_connected(eng, 1, T0, A);
  reply(eng, 1, T0, "220 x\r\n");
  reply(eng, 1, T0, "250 x\r\n");
  drain(eng, &(action_lines){0});
  reply(eng, 1, T0 + 1, "553 5.1.8 bad sender domain\r\n");
  EXPECT(eng,
         "log +1 smtp a@y.test " A " SMTP 553 5.1.8 bad sender domain "
         "ABORT a1",
         "rcpt a@y.test aborted s-1",
         "log +1 smtp b@y.test " A " SMTP 553 5.1.8 bad sender domain "
         "ABORT a1",
         "rcpt b@y.test aborted s-1", "send #1 QUIT\\r\\n", "done aborted");
}

Test(engine, relay_denied_at_mail_switches) {
  setup_servers(2);
  start();
  submit1(T0);
  EXPECT(eng, "connect #1 127.0.0.1:2525");
  detour_engine_on_connected(eng, 1, T0, A);
  reply(eng, 1, T0, "220 x\r\n");
  reply(eng, 1, T0, "250 x\r\n");
  drain(eng, &(action_lines){0});
  reply(eng, 1, T0 + 5, "550 5.7.1 relaying denied\r\n");
  switch_at_once_after("SMTP 550 5.7.1 relaying denied");
}

/* ------------------------------------------------------------ R4, R6, R7 */

Test(engine, detour_denied_retries_primary_every_interval_then_defers) {
  setup_servers(2);
  cfg.max_attempts = 3;
  start();
  static const char *const one[] = {"r@y.test"};
  submit_to(one, 1, DETOUR_OVERRIDE_DENY, T0);
  EXPECT(eng, "connect #1 127.0.0.1:2525");
  for (unsigned k = 1; k <= 3; k++) {
    detour_ms t = T0 + (detour_ms)(k - 1) * 3 * MIN;
    detour_engine_on_connect_failed(eng, k, t, DETOUR_COND_CONNECT_REFUSED, "");
    char row[200];
    snprintf(row, sizeof row,
             "log +%lld connect r@y.test " A " TCP error CONNECT a%u",
             (long long)(t - T0), k);
    if (k < 3) {
      EXPECT(eng, "close *", row);
      detour_engine_on_timer(eng, t + 3 * MIN - 1);
      EXPECT_NONE(eng);
      detour_engine_on_timer(eng, t + 3 * MIN);
      char want[64];
      snprintf(want, sizeof want, "connect #%u 127.0.0.1:2525", k + 1);
      EXPECT(eng, want);
    } else {
      EXPECT(eng, "close #3", row,
             "log +360000 warning r@y.test " A " configuration error NONE a3",
             "warn configuration error: server " A " (priority 1) failed 3 "
             "attempts for message 0; its address is likely wrong",
             "rcpt r@y.test deferred s-1", "done deferred");
    }
  }
  cr_assert(detour_engine_idle(eng));
}

Test(engine, every_server_exhausted_in_rounds) {
  setup_servers(2);
  cfg.max_attempts = 2;
  start();
  submit1(T0);
  EXPECT(eng, "connect #1 127.0.0.1:2525");
  detour_engine_on_connect_failed(eng, 1, T0, DETOUR_COND_CONNECT_REFUSED, "");
  EXPECT(eng, "close #1", "log +0 connect r@y.test " A " TCP error CONNECT a1",
         "connect #2 127.0.0.2:2525");
  detour_engine_on_connect_failed(eng, 2, T0, DETOUR_COND_CONNECT_REFUSED, "");
  /* end of round 1: wait the interval, start again at priority 1 */
  EXPECT(eng, "close #2", "log +0 connect r@y.test " B " TCP error CONNECT a1");
  cr_assert_eq(detour_engine_next_deadline(eng), T0 + 3 * MIN);
  detour_engine_on_timer(eng, T0 + 3 * MIN);
  EXPECT(eng, "connect #3 127.0.0.1:2525");
  detour_engine_on_connect_failed(eng, 3, T0 + 3 * MIN,
                                  DETOUR_COND_CONNECT_REFUSED, "");
  EXPECT(eng, "close #3",
         "log +180000 connect r@y.test " A " TCP error CONNECT a2",
         "log +180000 warning r@y.test " A " configuration error NONE a2",
         "warn configuration error: server " A "*",
         "connect #4 127.0.0.2:2525");
  detour_engine_on_connect_failed(eng, 4, T0 + 3 * MIN,
                                  DETOUR_COND_CONNECT_REFUSED, "");
  EXPECT(eng, "close #4",
         "log +180000 connect r@y.test " B " TCP error CONNECT a2",
         "log +180000 warning r@y.test " B " configuration error NONE a2",
         "warn configuration error: server " B "*",
         "rcpt r@y.test deferred s-1", "done deferred");
}

Test(engine, transient_limit_then_next_server_at_once) {
  setup_servers(2);
  cfg.max_attempts = 2;
  start();
  submit1(T0);
  EXPECT(eng, "connect #1 127.0.0.1:2525");
  detour_engine_on_connected(eng, 1, T0, A);
  reply(eng, 1, T0, "220 x\r\n");
  EXPECT(eng, "send #1 EHLO localhost\\r\\n");
  detour_engine_on_closed(eng, 1, T0 + 1, "reset");
  drain(eng, &(action_lines){0});
  detour_engine_on_timer(eng, T0 + 1 + 3 * MIN);
  EXPECT(eng, "connect #2 127.0.0.1:2525");
  detour_engine_on_connected(eng, 2, T0 + 3 * MIN + 1, A);
  detour_engine_on_closed(eng, 2, T0 + 3 * MIN + 2, "reset");
  EXPECT(eng,
         "log +180002 smtp r@y.test " A " SMTP connection closed TRANSIENT a2",
         "close #2",
         "log +180002 warning r@y.test " A " configuration error NONE a2",
         "warn *", "connect #3 127.0.0.2:2525");
}

static void policy_case(detour_rule rule, bool sender_allow, int rcpt_allow,
                        bool want_detour) {
  setup_servers(2);
  pol = detour_policy_new();
  detour_policy_set_rule(pol, rule);
  detour_policy_set_default(pol, false);
  detour_policy_add_sender(pol, "s@x.test", sender_allow);
  if (rcpt_allow >= 0)
    detour_policy_add_recipient(pol, "*@y.test", rcpt_allow);
  cfg.policy = pol;
  start();
  submit1(T0);
  EXPECT(eng, "connect #1 127.0.0.1:2525");
  detour_engine_on_connect_failed(eng, 1, T0, DETOUR_COND_CONNECT_REFUSED, "");
  if (want_detour)
    EXPECT(eng, "close #1", "log *", "connect #2 127.0.0.2:2525");
  else
    EXPECT(eng, "close #1", "log *");
}

Test(engine, rule_any_sender_allowed) {
  policy_case(DETOUR_RULE_ANY, true, 0, true);
}
Test(engine, rule_any_recipient_allowed) {
  policy_case(DETOUR_RULE_ANY, false, 1, true);
}
Test(engine, rule_any_both_denied) {
  policy_case(DETOUR_RULE_ANY, false, 0, false);
}
Test(engine, rule_sender_ignores_recipient) {
  policy_case(DETOUR_RULE_SENDER, false, 1, false);
}
Test(engine, rule_recipient_ignores_sender) {
  policy_case(DETOUR_RULE_RECIPIENT, true, 0, false);
}
Test(engine, rule_all_needs_both) {
  policy_case(DETOUR_RULE_ALL, true, 0, false);
}
Test(engine, rule_all_both_allowed) {
  policy_case(DETOUR_RULE_ALL, true, 1, true);
}
Test(engine, unlisted_address_takes_default) {
  policy_case(DETOUR_RULE_RECIPIENT, false, -1, false);
}

Test(engine, per_send_override_allows_despite_table) {
  setup_servers(2);
  pol = detour_policy_new();
  detour_policy_set_default(pol, false);
  cfg.policy = pol;
  start();
  static const char *const one[] = {"r@y.test"};
  submit_to(one, 1, DETOUR_OVERRIDE_ALLOW, T0);
  EXPECT(eng, "connect #1 127.0.0.1:2525");
  detour_engine_on_connect_failed(eng, 1, T0, DETOUR_COND_CONNECT_REFUSED, "");
  EXPECT(eng, "close #1", "log *", "connect #2 127.0.0.2:2525");
}

/* R5: a TRANSIENT failure on the backup reconnects to the backup. */
Test(engine, transient_on_backup_reconnects_to_backup) {
  setup_servers(2);
  start();
  submit1(T0);
  EXPECT(eng, "connect #1 127.0.0.1:2525");
  detour_engine_on_connect_failed(eng, 1, T0, DETOUR_COND_CONNECT_REFUSED, "");
  drain(eng, &(action_lines){0});
  detour_engine_on_connected(eng, 2, T0, B);
  detour_engine_on_closed(eng, 2, T0 + 1, "reset");
  EXPECT(eng, "log +1 smtp r@y.test " B " SMTP connection closed TRANSIENT a1",
         "close #2");
  detour_engine_on_timer(eng, T0 + 1 + 3 * MIN);
  EXPECT(eng, "connect #3 127.0.0.2:2525");
}

/* ---------------------------------------------------------------- R10 */

Test(engine, mixed_recipients_each_get_their_outcome_without_duplicates) {
  setup_servers(2);
  start();
  static const char *const three[] = {"bad@y.test", "full@y.test", "ok@y.test"};
  submit_to(three, 3, DETOUR_OVERRIDE_NONE, T0);
  EXPECT(eng, "connect #1 127.0.0.1:2525");
  detour_engine_on_connected(eng, 1, T0, A);
  reply(eng, 1, T0, "220 x\r\n");
  reply(eng, 1, T0, "250 x\r\n");
  reply(eng, 1, T0, "250 ok\r\n");
  EXPECT(eng, "send #1 EHLO localhost\\r\\n",
         "send #1 MAIL FROM:<s@x.test>\\r\\n",
         "send #1 RCPT TO:<bad@y.test>\\r\\n");
  reply(eng, 1, T0 + 1, "550 5.1.1 unknown\r\n");
  EXPECT(eng, "log +1 smtp bad@y.test " A " SMTP 550 5.1.1 unknown ABORT a1",
         "rcpt bad@y.test aborted s-1", "send #1 RCPT TO:<full@y.test>\\r\\n");
  reply(eng, 1, T0 + 2, "452 4.3.1 disk full\r\n");
  EXPECT(eng,
         "log +2 smtp full@y.test " A " SMTP 452 4.3.1 disk full SWITCH a1",
         "send #1 RCPT TO:<ok@y.test>\\r\\n");
  reply(eng, 1, T0 + 3, "250 ok\r\n");
  EXPECT(eng, "send #1 DATA\\r\\n");
  reply(eng, 1, T0 + 3, "354 go\r\n");
  drain(eng, &(action_lines){0});
  reply(eng, 1, T0 + 4, "250 ok\r\n");
  EXPECT(eng, "log +4 smtp ok@y.test " A " SMTP OK NONE a1",
         "rcpt ok@y.test delivered s0", "send #1 QUIT\\r\\n",
         "connect #2 127.0.0.2:2525");
  /* Only the recipient still pending goes to the backup. */
  detour_engine_on_connected(eng, 2, T0 + 5, B);
  reply(eng, 2, T0 + 5, "220 x\r\n");
  reply(eng, 2, T0 + 5, "250 x\r\n");
  reply(eng, 2, T0 + 5, "250 ok\r\n");
  EXPECT(eng, "send #2 EHLO localhost\\r\\n",
         "send #2 MAIL FROM:<s@x.test>\\r\\n",
         "send #2 RCPT TO:<full@y.test>\\r\\n");
  reply(eng, 2, T0 + 5, "250 ok\r\n");
  reply(eng, 2, T0 + 5, "354 go\r\n");
  drain(eng, &(action_lines){0});
  reply(eng, 2, T0 + 6, "250 ok\r\n");
  EXPECT(eng, "log +6 smtp full@y.test " B " SMTP OK NONE a1",
         "rcpt full@y.test delivered s1", "send #2 QUIT\\r\\n", "done aborted");
}

Test(engine, repeated_recipient_is_sent_once) {
  setup_servers(1);
  start();
  static const char *const two[] = {"r@y.test", "R@Y.test"};
  submit_to(two, 2, DETOUR_OVERRIDE_NONE, T0);
  EXPECT(eng, "connect #1 127.0.0.1:2525");
  up_to_rcpt(1, T0, A);
  rcpt_to_body(1, T0);
  reply(eng, 1, T0, "250 ok\r\n");
  EXPECT(eng, "log +0 smtp r@y.test " A " SMTP OK NONE a1",
         "rcpt r@y.test delivered s0", "rcpt R@Y.test delivered s0",
         "send #1 QUIT\\r\\n", "done delivered");
}

/* ------------------------------------------------------------ R11 timeouts */

Test(engine, each_stage_uses_its_own_timeout) {
  setup_servers(1);
  cfg.timeouts = (detour_timeouts){.connect = 11,
                                   .greeting = 22,
                                   .ehlo = 33,
                                   .mail = 44,
                                   .rcpt = 55,
                                   .data_start = 66,
                                   .data_block = 77,
                                   .final_dot = 88,
                                   .quit = 99};
  start();
  submit1(T0);
  drain(eng, &(action_lines){0});
  cr_assert_eq(detour_engine_next_deadline(eng), T0 + 11);
  detour_engine_on_connected(eng, 1, T0, A);
  cr_assert_eq(detour_engine_next_deadline(eng), T0 + 22);
  reply(eng, 1, T0 + 1, "220 x\r\n");
  cr_assert_eq(detour_engine_next_deadline(eng), T0 + 1 + 33);
  reply(eng, 1, T0 + 2, "250 x\r\n");
  cr_assert_eq(detour_engine_next_deadline(eng), T0 + 2 + 44);
  reply(eng, 1, T0 + 3, "250 x\r\n");
  cr_assert_eq(detour_engine_next_deadline(eng), T0 + 3 + 55);
  reply(eng, 1, T0 + 4, "250 x\r\n");
  cr_assert_eq(detour_engine_next_deadline(eng), T0 + 4 + 66);
  reply(eng, 1, T0 + 5, "354 x\r\n");
  cr_assert_eq(detour_engine_next_deadline(eng), T0 + 5 + 77);
  detour_engine_on_sent(eng, 1, T0 + 6); /* EHLO..DATA and the body */
  detour_engine_on_sent(eng, 1, T0 + 6);
  detour_engine_on_sent(eng, 1, T0 + 6);
  detour_engine_on_sent(eng, 1, T0 + 6);
  cr_assert_eq(detour_engine_next_deadline(eng), T0 + 5 + 77,
               "body not yet written");
  detour_engine_on_sent(eng, 1, T0 + 6);
  cr_assert_eq(detour_engine_next_deadline(eng), T0 + 6 + 88);
  reply(eng, 1, T0 + 7, "250 x\r\n");
  cr_assert_eq(detour_engine_next_deadline(eng), T0 + 7 + 99);
  drain(eng, &(action_lines){0});
  detour_engine_on_timer(eng, T0 + 7 + 98);
  EXPECT_NONE(eng);
  detour_engine_on_timer(eng, T0 + 7 + 99);
  EXPECT(eng, "close #1");
  cr_assert(detour_engine_idle(eng));
}

Test(engine, stalled_quit_does_not_delay_the_next_message) {
  setup_servers(1);
  start();
  submit1(T0);
  submit1(T0);
  EXPECT(eng, "connect #1 127.0.0.1:2525");
  up_to_rcpt(1, T0, A);
  rcpt_to_body(1, T0);
  reply(eng, 1, T0 + 1, "250 ok\r\n");
  EXPECT(eng, "log *", "rcpt *", "send #1 QUIT\\r\\n", "done delivered",
         "connect #2 127.0.0.1:2525");
}

/* ------------------------------------------------------------ codec */

Test(engine, body_is_dot_stuffed_and_crlf_normalised) {
  setup_servers(1);
  start();
  const char body[] = ".\n..x\r\n.y\rlast";
  static const char *const one[] = {"r@y.test"};
  detour_message m = {.from = "s@x.test",
                      .rcpts = one,
                      .nrcpts = 1,
                      .body = body,
                      .body_len = sizeof body - 1};
  detour_engine_submit(eng, &m, T0);
  drain(eng, &(action_lines){0});
  up_to_rcpt(1, T0, A);
  reply(eng, 1, T0, "250 ok\r\n");
  reply(eng, 1, T0, "354 go\r\n");
  EXPECT(eng, "send #1 DATA\\r\\n",
         "send #1 ..\\r\\n...x\\r\\n..y\\r\\nlast\\r\\n.\\r\\n");
}

Test(engine, eight_bit_body_uses_8bitmime_when_offered) {
  setup_servers(1);
  start();
  const char body[] = "caf\xc3\xa9\n";
  static const char *const one[] = {"r@y.test"};
  detour_message m = {.from = "s@x.test",
                      .rcpts = one,
                      .nrcpts = 1,
                      .body = body,
                      .body_len = sizeof body - 1};
  detour_engine_submit(eng, &m, T0);
  drain(eng, &(action_lines){0});
  detour_engine_on_connected(eng, 1, T0, A);
  reply(eng, 1, T0, "220 x\r\n");
  reply(eng, 1, T0, "250-x\r\n250-8BITMIME\r\n250 SIZE\r\n");
  EXPECT(eng, "send #1 EHLO localhost\\r\\n",
         "send #1 MAIL FROM:<s@x.test> SIZE=7 BODY=8BITMIME\\r\\n");
}

Test(engine, pipelining_sends_one_group_and_handles_replies_in_order) {
  setup_servers(2);
  cfg.pipelining = true;
  start();
  static const char *const two[] = {"a@y.test", "b@y.test"};
  submit_to(two, 2, DETOUR_OVERRIDE_NONE, T0);
  drain(eng, &(action_lines){0});
  detour_engine_on_connected(eng, 1, T0, A);
  reply(eng, 1, T0, "220 x\r\n");
  reply(eng, 1, T0, "250-x\r\n250 PIPELINING\r\n");
  EXPECT(eng, "send #1 EHLO localhost\\r\\n",
         "send #1 MAIL FROM:<s@x.test>\\r\\n",
         "send #1 RCPT TO:<a@y.test>\\r\\n", "send #1 RCPT TO:<b@y.test>\\r\\n",
         "send #1 DATA\\r\\n");
  reply(eng, 1, T0 + 1, "250 ok\r\n550 5.1.1 no a\r\n250 ok\r\n354 go\r\n");
  EXPECT(eng, "log +1 smtp a@y.test " A " SMTP 550 5.1.1 no a ABORT a1",
         "rcpt a@y.test aborted s-1", "send #1 " WIRE_BODY);
  reply(eng, 1, T0 + 2, "250 ok\r\n");
  EXPECT(eng, "log +2 smtp b@y.test " A " SMTP OK NONE a1",
         "rcpt b@y.test delivered s0", "send #1 QUIT\\r\\n", "done aborted");
}

/* ------------------------------------------------------------ R12 */

Test(engine, breaker_sends_next_message_to_backup_until_hold_expires) {
  setup_servers(2);
  cfg.breaker_hold = 60000;
  start();
  submit1(T0);
  EXPECT(eng, "connect #1 127.0.0.1:2525");
  detour_engine_on_connect_failed(eng, 1, T0, DETOUR_COND_CONNECT_REFUSED, "");
  drain(eng, &(action_lines){0});
  up_to_rcpt(2, T0, B);
  rcpt_to_body(2, T0);
  reply(eng, 2, T0, "250 ok\r\n");
  drain(eng, &(action_lines){0});
  submit1(T0 + 59999);
  EXPECT(eng, "log +59999 breaker r@y.test " A " skipped (breaker) NONE a0",
         "connect #3 127.0.0.2:2525");
  up_to_rcpt(3, T0 + 59999, B);
  rcpt_to_body(3, T0 + 59999);
  reply(eng, 3, T0 + 59999, "250 ok\r\n");
  drain(eng, &(action_lines){0});
  submit1(T0 + 60000);
  EXPECT(eng, "connect #4 127.0.0.1:2525");
}

Test(engine, racing_starts_backup_connect_and_first_to_complete_wins) {
  setup_servers(2);
  cfg.race_delay = 250;
  start();
  submit1(T0);
  EXPECT(eng, "connect #1 127.0.0.1:2525");
  cr_assert_eq(detour_engine_next_deadline(eng), T0 + 250);
  detour_engine_on_timer(eng, T0 + 249);
  EXPECT_NONE(eng);
  detour_engine_on_timer(eng, T0 + 250);
  EXPECT(eng, "connect #2 127.0.0.2:2525",
         "log +250 race r@y.test " B " race started NONE a1");
  detour_engine_on_connected(eng, 2, T0 + 260, B);
  EXPECT(eng, "log +260 race r@y.test " A " race lost NONE a1", "close #1");
  /* late events for the loser are ignored */
  detour_engine_on_connected(eng, 1, T0 + 270, A);
  EXPECT_NONE(eng);
  reply(eng, 2, T0 + 270, "220 x\r\n");
  EXPECT(eng, "send #2 EHLO localhost\\r\\n");
}

/* ------------------------------------------------------------ API */

Test(engine, rejects_bad_config_and_bad_messages) {
  detour_config_init(&cfg);
  int err = 0;
  cr_assert_null(detour_engine_new(&cfg, &err));
  cr_assert_eq(err, DETOUR_EINVAL);
  setup_servers(1);
  cfg.max_attempts = 0;
  cr_assert_null(detour_engine_new(&cfg, &err));
  setup_servers(1);
  start();
  static const char *const evil[] = {"a@b>\r\nRSET"};
  detour_message m = {.from = "s@x", .rcpts = evil, .nrcpts = 1};
  cr_assert_eq(detour_engine_submit(eng, &m, T0), DETOUR_EINVAL);
  m.nrcpts = 0;
  cr_assert_eq(detour_engine_submit(eng, &m, T0), DETOUR_EINVAL);
  EXPECT_NONE(eng);
}

Test(engine, servers_are_sorted_by_priority) {
  detour_config_init(&cfg);
  detour_config_add_server(&cfg, "127.0.0.2", 2525, 2);
  detour_config_add_server(&cfg, "127.0.0.1", 2525, 1);
  start();
  submit1(T0);
  EXPECT(eng, "connect #1 127.0.0.1:2525");
}

/* Actions name a server by its configured index, not its rank in the
 * priority order: the caller decodes it without sorting anything. */
Test(engine, actions_name_servers_by_configured_index) {
  detour_config_init(&cfg);
  detour_config_add_server(&cfg, "::1", 2526, 3);       /* configured 0 */
  detour_config_add_server(&cfg, "127.0.0.2", 2525, 2); /* configured 1 */
  detour_config_add_server(&cfg, "127.0.0.1", 2525, 1); /* configured 2 */
  start();
  cr_assert_str_eq(detour_engine_server_label(eng, 0), "[::1]:2526");
  cr_assert_str_eq(detour_engine_server_label(eng, 1), B);
  cr_assert_str_eq(detour_engine_server_label(eng, 2), A);
  cr_assert_null(detour_engine_server_label(eng, 3));
  cr_assert_eq(detour_engine_server(eng, 0)->priority, 3);
  cr_assert_str_eq(detour_engine_server(eng, 2)->host, "127.0.0.1");
  cr_assert_null(detour_engine_server(eng, 3));
  submit1(T0);
  detour_action a;
  cr_assert_eq(detour_engine_next_action(eng, &a), 1);
  cr_assert_eq(a.type, DETOUR_ACT_CONNECT);
  cr_assert_eq(a.u.connect.server, 2, "priority 1 is configured index 2");
  up_to_rcpt(1, T0, A);
  rcpt_to_body(1, T0);
  reply(eng, 1, T0, "250 ok\r\n");
  EXPECT(eng, "log +0 smtp r@y.test " A " SMTP OK NONE a1",
         "rcpt r@y.test delivered s2", "send #1 QUIT\\r\\n", "done delivered");
  size_t order[3];
  detour_config_priority_order(&cfg, order);
  cr_assert(order[0] == 2 && order[1] == 1 && order[2] == 0);
}

/* ------------------------------------------------- R11 per-block data timeout
 */

/* With 16-byte blocks, BODY goes out as two blocks. */
#define BLOCK1 "Subject: t\\r\\n\\r\\nh"
#define BLOCK2 "ello\\r\\n.\\r\\n"

/* Up to the first body block at t, every command reported written. */
static void up_to_first_block(detour_ms t) {
  submit1(t);
  EXPECT(eng, "connect #1 127.0.0.1:2525");
  up_to_rcpt(1, t, A);
  reply(eng, 1, t, "250 2.1.5 ok\r\n");
  EXPECT(eng, "send #1 DATA\\r\\n");
  for (int i = 0; i < 4; i++) /* EHLO, MAIL, RCPT, DATA */
    detour_engine_on_sent(eng, 1, t);
  reply(eng, 1, t, "354 go ahead\r\n");
  EXPECT(eng, "send #1 " BLOCK1);
}

/* RFC 5321 4.5.3.2: the data-block timeout bounds each block, not the
 * body: a body that takes longer than data_block in all but never stalls
 * a block that long is delivered. */
Test(engine, data_block_timeout_is_per_block) {
  setup_servers(1);
  cfg.block_size = 16;
  cfg.timeouts.data_block = 1000;
  cfg.timeouts.final_dot = 5000;
  start();
  up_to_first_block(T0);
  cr_assert_eq(detour_engine_next_deadline(eng), T0 + 1000);
  detour_engine_on_timer(eng, T0 + 999);
  EXPECT_NONE(eng);
  detour_engine_on_sent(eng, 1, T0 + 900); /* block 1 written */
  EXPECT(eng, "send #1 " BLOCK2);
  cr_assert_eq(detour_engine_next_deadline(eng), T0 + 900 + 1000,
               "block 2 has a data-block timeout of its own");
  detour_engine_on_timer(eng, T0 + 1899);
  EXPECT_NONE(eng);
  detour_engine_on_sent(eng, 1, T0 + 1800); /* block 2 (with ".") written */
  EXPECT_NONE(eng);
  cr_assert_eq(detour_engine_next_deadline(eng), T0 + 1800 + 5000,
               "then the final-dot timeout");
  reply(eng, 1, T0 + 1900, "250 2.0.0 queued\r\n");
  EXPECT(eng, "log +1900 smtp r@y.test " A " SMTP OK NONE a1",
         "rcpt r@y.test delivered s0", "send #1 QUIT\\r\\n", "done delivered");
}

/* A block that is not written within data_block ends the attempt, at the
 * deadline and not 1 ms before: for the first block and a later one. */
Test(engine, data_block_timeout_fires_on_a_stalled_block) {
  setup_servers(1);
  cfg.block_size = 16;
  cfg.timeouts.data_block = 1000;
  start();
  up_to_first_block(T0);
  detour_engine_on_sent(eng, 1, T0 + 700);
  EXPECT(eng, "send #1 " BLOCK2);
  detour_engine_on_timer(eng, T0 + 1699);
  EXPECT_NONE(eng);
  detour_engine_on_timer(eng, T0 + 1700);
  EXPECT(eng, "log +1700 smtp r@y.test " A " SMTP timeout TRANSIENT a1",
         "close #1");
}

Test(engine, data_block_timeout_fires_on_the_first_block) {
  setup_servers(1);
  cfg.block_size = 16;
  cfg.timeouts.data_block = 1000;
  start();
  up_to_first_block(T0);
  detour_engine_on_timer(eng, T0 + 999);
  EXPECT_NONE(eng);
  detour_engine_on_timer(eng, T0 + 1000);
  EXPECT(eng, "log +1000 smtp r@y.test " A " SMTP timeout TRANSIENT a1",
         "close #1");
}

/* ------------------------------------------------------------ body sources */

typedef struct {
  const char *text;
  size_t len;
  uint64_t fail_at; /* a read starting at or after this fails */
  unsigned reads;
} test_source;

static int64_t test_read_at(void *arg, uint64_t off, char *buf, size_t len) {
  test_source *s = arg;
  s->reads++;
  if (off >= s->fail_at)
    return DETOUR_EIO;
  if (off >= s->len)
    return 0;
  size_t n = s->len - (size_t)off < len ? s->len - (size_t)off : len;
  memcpy(buf, s->text + off, n);
  return (int64_t)n;
}

static int submit_source(test_source *ts, detour_ms t) {
  static const char *const one[] = {"r@y.test"};
  detour_body_source src = {test_read_at, ts};
  detour_message m = {
      .from = "s@x.test", .rcpts = one, .nrcpts = 1, .source = &src};
  return detour_engine_submit(eng, &m, t);
}

/* The caller's body is read in blocks, from the start on every attempt,
 * and goes out exactly as a copied body would. */
Test(engine, body_source_is_read_again_on_every_attempt) {
  setup_servers(1);
  cfg.block_size = 16;
  start();
  test_source ts = {BODY, strlen(BODY), UINT64_MAX, 0};
  cr_assert_eq(submit_source(&ts, T0), 0);
  EXPECT(eng, "connect #1 127.0.0.1:2525");
  for (unsigned c = 1; c <= 2; c++) {
    detour_ms t = T0 + (c - 1) * 3 * MIN;
    if (c == 2)
      EXPECT(eng, "connect #2 127.0.0.1:2525");
    up_to_rcpt(c, t, A);
    reply(eng, c, t, "250 ok\r\n");
    drain(eng, &(action_lines){0});
    for (int i = 0; i < 4; i++)
      detour_engine_on_sent(eng, c, t);
    reply(eng, c, t, "354 go\r\n");
    char want[80];
    snprintf(want, sizeof want, "send #%u " BLOCK1, c);
    EXPECT(eng, want);
    detour_engine_on_sent(eng, c, t);
    snprintf(want, sizeof want, "send #%u " BLOCK2, c);
    EXPECT(eng, want);
    detour_engine_on_sent(eng, c, t);
    if (c == 1) {
      reply(eng, c, t, "451 4.3.0 try later\r\n");
      EXPECT(eng, "log *", "send #1 QUIT\\r\\n");
      detour_engine_on_timer(eng, t + 3 * MIN);
    }
  }
  reply(eng, 2, T0 + 3 * MIN, "250 ok\r\n");
  EXPECT(eng, "log *", "rcpt r@y.test delivered s0", "send #2 QUIT\\r\\n",
         "done delivered");
}

/* A source that fails mid-body: the connection is dropped without the
 * final "." (the server discards the partial body), and the message is
 * deferred at once: every attempt would read the same body. */
Test(engine, body_source_error_mid_body_defers_without_final_dot) {
  setup_servers(2);
  cfg.block_size = 16;
  start();
  test_source ts = {BODY, strlen(BODY), UINT64_MAX, 0};
  cr_assert_eq(submit_source(&ts, T0), 0);
  ts.fail_at = 13; /* measured whole at submit; fails after block 1 */
  EXPECT(eng, "connect #1 127.0.0.1:2525");
  up_to_rcpt(1, T0, A);
  reply(eng, 1, T0, "250 ok\r\n");
  drain(eng, &(action_lines){0});
  for (int i = 0; i < 4; i++)
    detour_engine_on_sent(eng, 1, T0);
  reply(eng, 1, T0, "354 go\r\n");
  EXPECT(eng, "send #1 " BLOCK1);
  detour_engine_on_sent(eng, 1, T0 + 5);
  EXPECT(eng, "log +5 smtp r@y.test " A " local error TRANSIENT a1", "close #1",
         "rcpt r@y.test deferred s-1", "done deferred");
  cr_assert(detour_engine_idle(eng));
}

Test(engine, body_source_error_at_submit_is_returned) {
  setup_servers(1);
  start();
  test_source ts = {BODY, strlen(BODY), 0, 0};
  cr_assert_eq(submit_source(&ts, T0), DETOUR_EIO);
  EXPECT_NONE(eng);
  cr_assert(detour_engine_idle(eng));
}

/* The encoder gives the same bytes however the body is cut into pieces
 * and however small the output room: CRLF split between pieces, a dot at
 * the start of a piece, bare CR and LF. */
Test(engine, dot_encoder_is_the_same_for_any_split) {
  const char body[] = ".a\r\n.\r\r\n..\n\rb\r";
  const char want[] = "..a\r\n..\r\n\r\n...\r\n\r\nb\r\n.\r\n";
  size_t blen = sizeof body - 1;
  for (size_t piece = 1; piece <= blen; piece++)
    for (size_t room = 2; room <= 8; room++) {
      detour_dot_encoder enc;
      detour_dot_encoder_init(&enc);
      char out[64];
      size_t o = 0, i = 0;
      while (i < blen) {
        size_t n = blen - i < piece ? blen - i : piece;
        size_t wrote = 0;
        i += detour_dot_encode(&enc, body + i, n, out + o, room, &wrote);
        o += wrote;
      }
      o += detour_dot_encode_end(&enc, out + o);
      cr_assert_eq(o, sizeof want - 1, "piece %zu room %zu: %zu bytes", piece,
                   room, o);
      cr_assert(memcmp(out, want, o) == 0, "piece %zu room %zu", piece, room);
      cr_assert_eq(enc.wire_len, o);
    }
}

/* The body sent is the one measured at submission (SIZE= announced it): a
 * source that ends early is a read error, one that grew is cut at the
 * measured length. */
Test(engine, body_source_that_shrank_is_a_read_error) {
  setup_servers(1);
  cfg.block_size = 16;
  start();
  test_source ts = {BODY, strlen(BODY), UINT64_MAX, 0};
  cr_assert_eq(submit_source(&ts, T0), 0);
  EXPECT(eng, "connect #1 127.0.0.1:2525");
  up_to_rcpt(1, T0, A);
  reply(eng, 1, T0, "250 ok\r\n");
  drain(eng, &(action_lines){0});
  for (int i = 0; i < 4; i++)
    detour_engine_on_sent(eng, 1, T0);
  reply(eng, 1, T0, "354 go\r\n");
  EXPECT(eng, "send #1 " BLOCK1);
  ts.len = 14; /* and now shorter than measured: ends inside block 2 */
  detour_engine_on_sent(eng, 1, T0);
  EXPECT(eng, "log +0 smtp r@y.test " A " local error TRANSIENT a1", "close #1",
         "rcpt r@y.test deferred s-1", "done deferred");
}

Test(engine, body_source_that_grew_is_cut_at_the_measured_length) {
  setup_servers(1);
  cfg.block_size = 16;
  start();
  test_source ts = {BODY, strlen(BODY), UINT64_MAX, 0};
  cr_assert_eq(submit_source(&ts, T0), 0);
  ts.text = BODY "grown\n";
  ts.len = strlen(ts.text);
  EXPECT(eng, "connect #1 127.0.0.1:2525");
  up_to_rcpt(1, T0, A);
  reply(eng, 1, T0, "250 ok\r\n");
  drain(eng, &(action_lines){0});
  for (int i = 0; i < 4; i++)
    detour_engine_on_sent(eng, 1, T0);
  reply(eng, 1, T0, "354 go\r\n");
  EXPECT(eng, "send #1 " BLOCK1);
  detour_engine_on_sent(eng, 1, T0);
  EXPECT(eng, "send #1 " BLOCK2);
}

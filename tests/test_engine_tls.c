/*
 * test_engine_tls.c - SPEC R13 in the sans-I/O engine: STARTTLS, implicit
 * TLS, AUTH PLAIN and LOGIN, and every TLS / AUTH failure class, as
 * scripts of events and the exact actions they must give. Deadlines are
 * checked on both sides (1 ms before: nothing; at the deadline: fires).
 *
 * The server "127.0.0.1" is the primary with TLS and AUTH configured; the
 * backup "127.0.0.2" is plain, so a SWITCH shows as "connect #2 ...".
 */
#include "engine_harness.h"

#define A "127.0.0.1:2525"
#define B "127.0.0.2:2525"
#define MIN (60 * 1000)
#define PASSWORD "s3cret"
#define PLAIN_BLOB "AHUAczNjcmV0" /* base64("\0u\0s3cret") */
#define USER_B64 "dQ=="           /* base64("u") */
#define PASSWORD_B64 "czNjcmV0"   /* base64("s3cret") */
#define CAPS_TLS_AUTH "250-fake\r\n250-STARTTLS\r\n250 AUTH PLAIN LOGIN\r\n"
#define WIRE_BODY "Subject: t\\r\\n\\r\\nhello\\r\\n.\\r\\n"

static detour_config cfg;
static detour_engine *eng;

static void setup(detour_tls_mode mode, const char *user) {
  detour_config_init(&cfg);
  cr_assert_eq(detour_config_add_server(&cfg, "127.0.0.1", 2525, 1), 0);
  detour_server *s = &cfg.servers[0];
  s->tls = mode;
  strcpy(s->ca_file, "/ca.pem");
  if (user) {
    strcpy(s->auth_user, user);
    strcpy(s->auth_password, PASSWORD);
  }
  cr_assert_eq(detour_config_add_server(&cfg, "127.0.0.2", 2525, 2), 0);
}

static void start(void) {
  int err = 1;
  eng = detour_engine_new(&cfg, &err);
  cr_assert_not_null(eng, "engine_new: %d", err);
  static const char *const one[] = {"r@y.test"};
  detour_message m = {.from = "s@x.test",
                      .rcpts = one,
                      .nrcpts = 1,
                      .body = "Subject: t\n\nhello\n",
                      .body_len = 18};
  cr_assert_eq(detour_engine_submit(eng, &m, T0), 0);
  EXPECT(eng, "connect #1 127.0.0.1:2525");
}

static void teardown(void) {
  detour_engine_free(eng);
  eng = NULL;
}

TestSuite(engine_tls, .fini = teardown);

/* Connected, greeted, EHLO answered with caps: STARTTLS expected next. */
static void up_to_starttls(detour_ms t, const char *caps) {
  detour_engine_on_connected(eng, 1, t, A);
  reply(eng, 1, t, "220 fake ESMTP\r\n");
  EXPECT(eng, "send #1 EHLO localhost\\r\\n");
  reply(eng, 1, t, caps);
}

/* The session's last move must be from -> to. */
static void expect_move(const char *from, const char *to) {
  const char *f = NULL;
  const char *st = detour_engine_session_state(eng, &f);
  cr_assert_str_eq(st, to, "state (from %s)", f);
  cr_assert_str_eq(f, from, "entered %s from %s", st, f);
}

/* ... then 220 to STARTTLS: the engine asks the driver for TLS. */
static void up_to_handshake(detour_ms t) {
  up_to_starttls(t, CAPS_TLS_AUTH);
  EXPECT(eng, "send #1 STARTTLS\\r\\n");
  expect_move("ehlo", "starttls");
  reply(eng, 1, t, "220 2.0.0 go ahead\r\n");
  EXPECT(eng, "tls #1 127.0.0.1 ca=/ca.pem");
  expect_move("starttls", "tls");
}

/* ... then TLS up: a tls row and EHLO again. */
static void tls_up(detour_ms t) {
  detour_engine_on_tls_up(eng, 1, t, "TLSv1.3", "TLS_AES_256_GCM_SHA384");
  EXPECT(eng,
         "log +* tls r@y.test " A " TLS TLSv1.3 TLS_AES_256_GCM_SHA384 NONE a1",
         "send #1 EHLO localhost\\r\\n");
}

/* The rest of a transaction after AUTH (or after EHLO without AUTH). */
static void deliver_after_mail(detour_ms t) {
  reply(eng, 1, t, "250 2.1.0 ok\r\n");
  EXPECT(eng, "send #1 RCPT TO:<r@y.test>\\r\\n");
  reply(eng, 1, t, "250 2.1.5 ok\r\n");
  EXPECT(eng, "send #1 DATA\\r\\n");
  reply(eng, 1, t, "354 go\r\n");
  EXPECT(eng, "send #1 " WIRE_BODY);
  detour_engine_on_sent(eng, 1, t);
  reply(eng, 1, t, "250 2.0.0 queued\r\n");
  EXPECT(eng, "log +* smtp r@y.test " A " SMTP OK NONE a1",
         "rcpt r@y.test delivered s0", "send #1 QUIT\\r\\n", "done delivered");
}

/* What a SWITCH with the configuration warning looks like after a failure
 * that closes the connection at once. */
static void expect_switch_closed(const char *result, const char *reason) {
  char row[300], warn[400];
  snprintf(row, sizeof row, "log +* smtp r@y.test " A " %s SWITCH a1", result);
  snprintf(warn, sizeof warn,
           "warn configuration error: server " A " refused us: %s (*", reason);
  EXPECT(eng, row, "close #1", warn, "connect #2 127.0.0.2:2525");
}

/* The same after a failure that leaves the server talking: QUIT. */
static void expect_switch_quit(const char *result, const char *reason) {
  char row[300], warn[400];
  snprintf(row, sizeof row, "log +* smtp r@y.test " A " %s SWITCH a1", result);
  snprintf(warn, sizeof warn,
           "warn configuration error: server " A " refused us: %s (*", reason);
  EXPECT(eng, row, "send #1 QUIT\\r\\n", warn, "connect #2 127.0.0.2:2525");
}

/* ------------------------------------------------------------ success */

Test(engine_tls, starttls_then_ehlo_again_then_auth_plain_then_mail) {
  setup(DETOUR_TLS_MODE_STARTTLS, "u");
  start();
  up_to_handshake(T0);
  tls_up(T0 + 5);
  expect_move("tls", "ehlo_tls");
  reply(eng, 1, T0 + 6, CAPS_TLS_AUTH);
  EXPECT(eng, "send #1 AUTH PLAIN " PLAIN_BLOB "\\r\\n");
  expect_move("ehlo_tls", "auth");
  reply(eng, 1, T0 + 7, "235 2.7.0 accepted\r\n");
  EXPECT(eng, "log +7 auth r@y.test " A " AUTH PLAIN OK NONE a1",
         "send #1 MAIL FROM:<s@x.test>\\r\\n");
  expect_move("auth", "mail");
  deliver_after_mail(T0 + 8);
  expect_move("body", "done"); /* the commands' writes were never acked */
}

Test(engine_tls, auth_login_when_plain_is_not_offered) {
  setup(DETOUR_TLS_MODE_STARTTLS, "u");
  start();
  up_to_handshake(T0);
  tls_up(T0);
  reply(eng, 1, T0, "250-fake\r\n250 AUTH=LOGIN\r\n");
  EXPECT(eng, "send #1 AUTH LOGIN\\r\\n");
  reply(eng, 1, T0, "334 VXNlcm5hbWU6\r\n");
  EXPECT(eng, "send #1 " USER_B64 "\\r\\n");
  reply(eng, 1, T0, "334 UGFzc3dvcmQ6\r\n");
  EXPECT(eng, "send #1 " PASSWORD_B64 "\\r\\n");
  reply(eng, 1, T0, "235 ok\r\n");
  EXPECT(eng, "log +0 auth r@y.test " A " AUTH LOGIN OK NONE a1",
         "send #1 MAIL FROM:<s@x.test>\\r\\n");
  deliver_after_mail(T0);
}

Test(engine_tls, implicit_tls_starts_before_the_greeting) {
  setup(DETOUR_TLS_MODE_IMPLICIT, NULL);
  start();
  detour_engine_on_connected(eng, 1, T0, A);
  EXPECT(eng, "tls #1 127.0.0.1 ca=/ca.pem");
  expect_move("none", "tls");
  detour_engine_on_tls_up(eng, 1, T0 + 3, "TLSv1.2", "ECDHE-RSA-AES128");
  expect_move("tls", "greeting");
  EXPECT(eng, "log +3 tls r@y.test " A " TLS TLSv1.2 ECDHE-RSA-AES128 NONE a1");
  cr_assert_eq(detour_engine_next_deadline(eng), T0 + 3 + 5 * MIN,
               "greeting timeout from TLS up");
  reply(eng, 1, T0 + 4, "220 fake ESMTP\r\n");
  EXPECT(eng, "send #1 EHLO localhost\\r\\n");
  reply(eng, 1, T0 + 4, "250 fake\r\n");
  EXPECT(eng, "send #1 MAIL FROM:<s@x.test>\\r\\n");
  deliver_after_mail(T0 + 5);
}

Test(engine_tls, optional_tls_without_starttls_sends_in_clear) {
  setup(DETOUR_TLS_MODE_STARTTLS, NULL);
  cfg.servers[0].tls_optional = true;
  start();
  up_to_starttls(T0, "250 fake\r\n");
  EXPECT(eng, "send #1 MAIL FROM:<s@x.test>\\r\\n");
  deliver_after_mail(T0);
}

/* ------------------------------------------------- R13: TLS failures */

Test(engine_tls, stripped_starttls_sends_neither_auth_nor_mail) {
  setup(DETOUR_TLS_MODE_STARTTLS, "u");
  start();
  up_to_starttls(T0, "250-fake\r\n250 AUTH PLAIN LOGIN\r\n");
  expect_switch_quit("SMTP STARTTLS not offered", "STARTTLS not offered");
}

Test(engine_tls, optional_tls_never_sends_auth_in_clear) {
  setup(DETOUR_TLS_MODE_STARTTLS, "u");
  cfg.servers[0].tls_optional = true;
  start();
  up_to_starttls(T0, "250-fake\r\n250 AUTH PLAIN LOGIN\r\n");
  expect_switch_quit("SMTP STARTTLS not offered", "STARTTLS not offered");
}

Test(engine_tls, required_tls_and_ehlo_refused_does_not_fall_back_to_helo) {
  setup(DETOUR_TLS_MODE_STARTTLS, NULL);
  start();
  up_to_starttls(T0, "502 5.5.2 no EHLO here\r\n");
  expect_switch_quit("SMTP STARTTLS not offered", "STARTTLS not offered");
}

Test(engine_tls, starttls_454_switches_with_warning) {
  setup(DETOUR_TLS_MODE_STARTTLS, "u");
  start();
  up_to_starttls(T0, CAPS_TLS_AUTH);
  EXPECT(eng, "send #1 STARTTLS\\r\\n");
  reply(eng, 1, T0, "454 4.7.0 TLS not available\r\n");
  expect_switch_quit("SMTP 454 4.7.0 TLS not available", "STARTTLS refused");
}

/* CVE-2011-0411: a reply injected after the 220 must never be read. */
Test(engine_tls, plaintext_after_220_is_injection_and_never_read) {
  setup(DETOUR_TLS_MODE_STARTTLS, "u");
  start();
  up_to_starttls(T0, CAPS_TLS_AUTH);
  EXPECT(eng, "send #1 STARTTLS\\r\\n");
  reply(eng, 1, T0, "220 go ahead\r\n250-injected\r\n250 AUTH PLAIN\r\n");
  expect_switch_closed("SMTP TLS error",
                       "plaintext after the 220 to STARTTLS (response "
                       "injection)");
}

Test(engine_tls, partial_injected_line_counts_too) {
  setup(DETOUR_TLS_MODE_STARTTLS, NULL);
  start();
  up_to_starttls(T0, CAPS_TLS_AUTH);
  EXPECT(eng, "send #1 STARTTLS\\r\\n");
  reply(eng, 1, T0, "220 go ahead\r\n2");
  expect_switch_closed("SMTP TLS error", "plaintext after the 220*");
}

Test(engine_tls, plaintext_during_the_handshake_is_injection) {
  setup(DETOUR_TLS_MODE_STARTTLS, NULL);
  start();
  up_to_handshake(T0);
  reply(eng, 1, T0 + 1, "250 ok\r\n");
  expect_switch_closed("SMTP TLS error", "plaintext after the 220*");
}

static void tls_failure_switches(detour_tls_failure why, const char *reason) {
  setup(DETOUR_TLS_MODE_STARTTLS, "u");
  start();
  up_to_handshake(T0);
  detour_engine_on_tls_failed(eng, 1, T0 + 2, why, "from the library");
  expect_switch_closed("SMTP TLS error", reason);
}

Test(engine_tls, certificate_expired_switches_with_reason) {
  tls_failure_switches(DETOUR_TLS_CERT_EXPIRED, "certificate expired");
}
Test(engine_tls, wrong_host_switches_with_reason) {
  tls_failure_switches(DETOUR_TLS_NAME_MISMATCH, "certificate name mismatch");
}
Test(engine_tls, unknown_ca_switches_with_reason) {
  tls_failure_switches(DETOUR_TLS_UNKNOWN_CA, "certificate from an unknown CA");
}
Test(engine_tls, self_signed_switches_with_reason) {
  tls_failure_switches(DETOUR_TLS_SELF_SIGNED, "self-signed certificate");
}
Test(engine_tls, old_tls_only_switches_with_reason) {
  tls_failure_switches(DETOUR_TLS_PROTOCOL_VERSION,
                       "no TLS version in common*");
}
Test(engine_tls, handshake_alert_switches_with_reason) {
  tls_failure_switches(DETOUR_TLS_HANDSHAKE, "TLS handshake failed");
}

Test(engine_tls, drop_during_handshake_switches) {
  setup(DETOUR_TLS_MODE_STARTTLS, NULL);
  start();
  up_to_handshake(T0);
  detour_engine_on_closed(eng, 1, T0 + 1, "connection reset by peer");
  expect_switch_closed("SMTP connection closed",
                       "connection closed during the TLS handshake");
}

Test(engine_tls, handshake_timeout_fires_at_deadline_not_before) {
  setup(DETOUR_TLS_MODE_STARTTLS, NULL);
  cfg.timeouts.tls = 7000;
  start();
  up_to_handshake(T0);
  cr_assert_eq(detour_engine_next_deadline(eng), T0 + 7000);
  detour_engine_on_timer(eng, T0 + 6999);
  EXPECT_NONE(eng);
  detour_engine_on_timer(eng, T0 + 7000);
  expect_switch_closed("SMTP timeout", "TLS handshake timed out");
}

Test(engine_tls, starttls_reply_has_the_ehlo_timeout_both_sides) {
  setup(DETOUR_TLS_MODE_STARTTLS, NULL);
  cfg.timeouts.ehlo = 4000;
  start();
  up_to_starttls(T0, CAPS_TLS_AUTH);
  EXPECT(eng, "send #1 STARTTLS\\r\\n");
  detour_engine_on_timer(eng, T0 + 3999);
  EXPECT_NONE(eng);
  detour_engine_on_timer(eng, T0 + 4000);
  /* no reply to STARTTLS is a silent server: TRANSIENT, same server */
  EXPECT(eng, "log +4000 smtp r@y.test " A " SMTP timeout TRANSIENT a1",
         "close #1");
  cr_assert_eq(detour_engine_next_deadline(eng), T0 + 4000 + 3 * MIN);
}

/* Capabilities from before TLS are forgotten (RFC 3207 4.2): AUTH offered
 * only in clear does not count. */
Test(engine_tls, capabilities_from_before_tls_are_forgotten) {
  setup(DETOUR_TLS_MODE_STARTTLS, "u");
  start();
  up_to_handshake(T0);
  tls_up(T0);
  reply(eng, 1, T0, "250 fake\r\n");
  expect_switch_quit("SMTP AUTH not offered",
                     "no AUTH mechanism we speak (PLAIN, LOGIN) offered");
}

/* Bytes that arrived in clear cannot leak into the TLS dialogue. */
Test(engine_tls, reply_reader_starts_empty_after_tls) {
  setup(DETOUR_TLS_MODE_STARTTLS, NULL);
  start();
  up_to_handshake(T0);
  tls_up(T0);
  reply(eng, 1, T0, "250 fake\r\n");
  EXPECT(eng, "send #1 MAIL FROM:<s@x.test>\\r\\n");
  deliver_after_mail(T0);
}

/* ------------------------------------------------ R13: AUTH failures */

static void auth_reply(const char *line) {
  setup(DETOUR_TLS_MODE_STARTTLS, "u");
  start();
  up_to_handshake(T0);
  tls_up(T0);
  reply(eng, 1, T0, CAPS_TLS_AUTH);
  EXPECT(eng, "send #1 AUTH PLAIN " PLAIN_BLOB "\\r\\n");
  reply(eng, 1, T0 + 1, line);
}

Test(engine_tls, auth_535_switches_authentication_failed) {
  auth_reply("535 5.7.8 bad credentials\r\n");
  expect_switch_quit("SMTP 535 5.7.8 bad credentials", "authentication failed");
}

Test(engine_tls, auth_534_switches_mechanism_too_weak) {
  auth_reply("534 5.7.9 mechanism too weak\r\n");
  expect_switch_quit("SMTP 534 5.7.9 mechanism too weak",
                     "authentication mechanism too weak");
}

Test(engine_tls, auth_454_is_transient_without_warning) {
  auth_reply("454 4.7.0 temporary authentication failure\r\n");
  EXPECT(eng,
         "log +1 smtp r@y.test " A
         " SMTP 454 4.7.0 temporary authentication failure TRANSIENT a1",
         "send #1 QUIT\\r\\n");
  detour_engine_on_timer(eng, T0 + 1 + 3 * MIN - 1);
  EXPECT_NONE(eng);
  detour_engine_on_timer(eng, T0 + 1 + 3 * MIN);
  EXPECT(eng, "connect #2 127.0.0.1:2525");
}

Test(engine_tls, mail_530_switches_authentication_required) {
  auth_reply("235 ok\r\n");
  EXPECT(eng, "log +1 auth *", "send #1 MAIL FROM:<s@x.test>\\r\\n");
  reply(eng, 1, T0 + 2, "530 5.7.0 authentication required\r\n");
  expect_switch_quit("SMTP 530 5.7.0 authentication required",
                     "authentication required");
}

Test(engine_tls, auth_timeout_both_sides_is_transient) {
  setup(DETOUR_TLS_MODE_STARTTLS, "u");
  cfg.timeouts.auth = 2000;
  start();
  up_to_handshake(T0);
  tls_up(T0);
  reply(eng, 1, T0, CAPS_TLS_AUTH);
  EXPECT(eng, "send #1 AUTH PLAIN " PLAIN_BLOB "\\r\\n");
  cr_assert_eq(detour_engine_next_deadline(eng), T0 + 2000);
  detour_engine_on_timer(eng, T0 + 1999);
  EXPECT_NONE(eng);
  detour_engine_on_timer(eng, T0 + 2000);
  EXPECT(eng, "log +2000 smtp r@y.test " A " SMTP timeout TRANSIENT a1",
         "close #1");
}

/* ------------------------------------------------ R13: the secret */

/* The password may go out only inside SEND (on the TLS connection), and
 * never in a log row, warning or recipient result, whatever happens: even
 * a server that echoes our AUTH line in its refusal does not get it into
 * the log. */
static void assert_no_secret(const char *const *replies, size_t n) {
  setup(DETOUR_TLS_MODE_STARTTLS, "u");
  start();
  up_to_handshake(T0);
  detour_engine_on_tls_up(eng, 1, T0, "TLSv1.3", "X");
  for (size_t i = 0; i < n; i++)
    reply(eng, 1, T0 + (detour_ms)i, replies[i]);
  detour_engine_on_timer(eng, T0 + 100 * MIN);
  detour_action a;
  int seen = 0;
  while (detour_engine_next_action(eng, &a) == 1) {
    char line[400];
    format_action(&a, line, sizeof line);
    seen++;
    if (a.type == DETOUR_ACT_SEND)
      continue;
    cr_assert(strstr(line, PASSWORD) == NULL, "secret in: %s", line);
    cr_assert(strstr(line, PASSWORD_B64) == NULL, "secret in: %s", line);
    cr_assert(strstr(line, PLAIN_BLOB) == NULL, "secret in: %s", line);
  }
  cr_assert_gt(seen, 3);
}

Test(engine_tls, password_in_no_log_warning_or_result) {
  const char *const plain_refused[] = {CAPS_TLS_AUTH,
                                       "535 5.7.8 " PLAIN_BLOB " refused\r\n"};
  assert_no_secret(plain_refused, 2);
}

Test(engine_tls, password_in_no_log_after_login_refused) {
  const char *const login_refused[] = {
      "250-x\r\n250 AUTH LOGIN\r\n", "334 VXNlcm5hbWU6\r\n",
      "334 UGFzc3dvcmQ6\r\n", "535 5.7.8 no\r\n"};
  assert_no_secret(login_refused, 4);
}

/* A TLS event for a connection that is not in the handshake is ignored. */
Test(engine_tls, stray_tls_events_are_ignored) {
  setup(DETOUR_TLS_MODE_NONE, NULL);
  start();
  detour_engine_on_connected(eng, 1, T0, A);
  detour_engine_on_tls_up(eng, 1, T0, "TLSv1.3", "X");
  detour_engine_on_tls_failed(eng, 1, T0, DETOUR_TLS_HANDSHAKE, "x");
  detour_engine_on_tls_up(eng, 9, T0, "TLSv1.3", "X");
  EXPECT_NONE(eng);
  reply(eng, 1, T0, "220 fake\r\n");
  EXPECT(eng, "send #1 EHLO localhost\\r\\n");
}

/*
 * test_classify.c - the SPEC R3 classification table (core/src/classify.c):
 * every default row at every stage it concerns, the enhanced-code
 * refinements, the precedence between rows, and overrides (good and bad
 * keys).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "detour/detour.h"

#define S(x) DETOUR_STAGE_##x
#define C(x) DETOUR_CLASS_##x

static detour_classify *table;

static void setup(void) {
  table = detour_classify_new_default();
  cr_assert_not_null(table);
}
static void teardown(void) { detour_classify_free(table); }

TestSuite(classify, .init = setup, .fini = teardown);

static detour_class reply_class(detour_stage st, int code, const char *enh,
                                const char *text, bool *warn) {
  detour_failure f = {
      .stage = st, .cond = DETOUR_COND_REPLY, .code = code, .text = text};
  strcpy(f.enhanced, enh);
  return detour_classify_failure(table, &f, warn);
}

static detour_class cond_class(detour_stage st, detour_condition c,
                               bool *warn) {
  detour_failure f = {.stage = st, .cond = c};
  return detour_classify_failure(table, &f, warn);
}

/* Expect class k and warning w for a reply at every stage in stages. */
static void expect_reply(const detour_stage *stages, size_t n, int code,
                         const char *enh, const char *text, detour_class k,
                         bool w) {
  for (size_t i = 0; i < n; i++) {
    bool warn = !w;
    detour_class got = reply_class(stages[i], code, enh, text, &warn);
    cr_expect_eq(got, k, "%s %d '%s' '%s': got %s, want %s",
                 detour_stage_name(stages[i]), code, enh, text ? text : "",
                 detour_class_name(got), detour_class_name(k));
    cr_expect_eq(warn, w, "%s %d '%s': warn %d", detour_stage_name(stages[i]),
                 code, enh, warn);
  }
}
#define EXPECT(stages, code, enh, text, k, w)                                  \
  expect_reply(stages, sizeof(stages) / sizeof(stages[0]), code, enh, text,    \
               C(k), w)

/* The SMTP stages (R13's starttls, tls and auth have tests of their own). */
static const detour_stage all_stages[] = {S(CONNECT), S(GREETING),    S(EHLO),
                                          S(HELO),    S(MAIL),        S(RCPT),
                                          S(DATA),    S(END_OF_DATA), S(QUIT)};
static const detour_stage session_start[] = {S(GREETING), S(EHLO), S(HELO)};
static const detour_stage transaction[] = {S(MAIL), S(RCPT), S(DATA),
                                           S(END_OF_DATA)};
static const detour_stage greeting[] = {S(GREETING)};
static const detour_stage mail[] = {S(MAIL)};
static const detour_stage rcpt[] = {S(RCPT)};
static const detour_stage eod[] = {S(END_OF_DATA)};
static const detour_stage not_greeting_rcpt_eod[] = {S(EHLO), S(HELO), S(MAIL),
                                                     S(DATA), S(QUIT)};
static const detour_stage not_rcpt_eod[] = {S(GREETING), S(EHLO), S(HELO),
                                            S(MAIL),     S(DATA), S(QUIT)};
static const detour_stage not_rcpt_greeting[] = {
    S(EHLO), S(HELO), S(MAIL), S(DATA), S(END_OF_DATA), S(QUIT)};
static const detour_stage not_mail_rcpt_eod_greeting[] = {S(EHLO), S(HELO),
                                                          S(DATA), S(QUIT)};
static const detour_stage data_quit[] = {S(DATA), S(QUIT)};

Test(classify, conditions_connect_class_no_wait) {
  detour_condition conds[] = {DETOUR_COND_CONNECT_REFUSED,
                              DETOUR_COND_UNREACHABLE,
                              DETOUR_COND_CONNECT_TIMEOUT, DETOUR_COND_DNS};
  for (size_t i = 0; i < 4; i++) {
    bool warn = true;
    cr_expect_eq(cond_class(S(CONNECT), conds[i], &warn), C(CONNECT));
    cr_expect_not(warn);
  }
}

Test(classify, conditions_transient_at_every_stage) {
  detour_condition conds[] = {DETOUR_COND_TIMEOUT, DETOUR_COND_CLOSED,
                              DETOUR_COND_MALFORMED};
  for (size_t i = 0; i < 3; i++)
    for (size_t s = 0; s < sizeof all_stages / sizeof *all_stages; s++) {
      bool warn = true;
      cr_expect_eq(cond_class(all_stages[s], conds[i], &warn), C(TRANSIENT),
                   "%s at %s", detour_condition_name(conds[i]),
                   detour_stage_name(all_stages[s]));
      cr_expect_not(warn);
    }
}

Test(classify, tls_switches_and_warns) {
  bool warn = false;
  cr_expect_eq(cond_class(S(EHLO), DETOUR_COND_TLS, &warn), C(SWITCH));
  cr_expect(warn);
}

Test(classify, warn_may_be_null) {
  cr_expect_eq(cond_class(S(EHLO), DETOUR_COND_TLS, NULL), C(SWITCH));
}

Test(classify, code_421_anywhere_switches) {
  EXPECT(all_stages, 421, "", NULL, SWITCH, false);
  EXPECT(all_stages, 421, "4.3.2", "shutting down", SWITCH, false);
  EXPECT(all_stages, 421, "4.7.0", "too many errors", SWITCH, false);
}

Test(classify, greeting_5xx_switches) {
  EXPECT(greeting, 554, "", "no SMTP service here", SWITCH, false);
  EXPECT(greeting, 554, "5.7.1", "go away", SWITCH, false);
  EXPECT(greeting, 550, "5.1.1", NULL, SWITCH, false);
  EXPECT(greeting, 521, "", NULL, SWITCH, false);
}

Test(classify, disk_full_by_enhanced_code) {
  EXPECT(all_stages, 452, "4.3.1", "", SWITCH, false);
  EXPECT(all_stages, 552, "5.3.1", "", SWITCH, false);
}

Test(classify, disk_full_by_text) {
  EXPECT(all_stages, 452, "4.2.2", "Insufficient system storage", SWITCH,
         false);
  EXPECT(all_stages, 552, "5.2.2", "insufficient STORAGE", SWITCH, false);
  /* 552 without x.3.1 nor the words is not disk full */
  EXPECT(rcpt, 552, "5.2.2", "mailbox full", ABORT, false);
  EXPECT(eod, 552, "5.3.4", "message too big", ABORT, false);
  EXPECT(mail, 552, "5.3.4", "message too big", SWITCH, false);
  /* the words in the other order are not the RFC text */
  EXPECT(rcpt, 552, "", "storage is insufficient", ABORT, false);
}

Test(classify, code_452_without_enhanced_is_storage) {
  EXPECT(all_stages, 452, "", "no room", SWITCH, false);
  /* 452 4.5.3 (too many recipients) is only a transient refusal */
  EXPECT(transaction, 452, "4.5.3", "too many recipients", TRANSIENT, false);
}

Test(classify, authentication_switches_and_warns) {
  EXPECT(not_rcpt_greeting, 530, "5.7.0", "Authentication required", SWITCH,
         true);
  EXPECT(not_rcpt_greeting, 530, "", NULL, SWITCH, true);
  EXPECT(not_rcpt_greeting, 535, "5.7.8", "bad credentials", SWITCH, true);
  EXPECT(not_rcpt_greeting, 538, "5.7.11", "encryption required", SWITCH, true);
  EXPECT(rcpt, 530, "5.7.0", NULL, SWITCH, true);
  EXPECT(rcpt, 535, "", NULL, SWITCH, true);
  EXPECT(rcpt, 538, "", NULL, SWITCH, true);
  /* any 5xx greeting is already SWITCH (the row before), with no warning */
  EXPECT(greeting, 530, "", NULL, SWITCH, false);
  EXPECT(greeting, 535, "5.7.8", NULL, SWITCH, false);
}

Test(classify, x7x_while_session_opens_switches_and_warns) {
  EXPECT(session_start, 454, "4.7.0", "TLS not available", SWITCH, true);
  EXPECT(greeting, 454, "4.7.0", NULL, SWITCH, true);
  EXPECT(data_quit, 554, "5.7.1", "policy", SWITCH, false);
  EXPECT(data_quit, 454, "4.7.0", "policy", TRANSIENT, false);
  static const detour_stage ehlo_helo[] = {S(EHLO), S(HELO)};
  EXPECT(ehlo_helo, 554, "5.7.1", "policy", SWITCH, true);
  EXPECT(ehlo_helo, 550, "5.7.1", "policy", SWITCH, true);
}

Test(classify, mail_addressing_and_policy) {
  EXPECT(mail, 550, "5.1.7", "bad sender", ABORT, false);
  EXPECT(mail, 553, "5.1.8", "bad sender domain", ABORT, false);
  EXPECT(mail, 501, "5.1.7", "bad sender syntax", ABORT, false);
  EXPECT(mail, 550, "5.7.1", "relay denied", SWITCH, false);
  EXPECT(mail, 554, "5.7.1", "policy", SWITCH, false);
  /* without an enhanced code a MAIL 550 is not known to be the address */
  EXPECT(mail, 550, "", "nope", SWITCH, false);
}

Test(classify, rcpt_addressing_and_policy) {
  EXPECT(rcpt, 550, "5.1.1", "no such user", ABORT, false);
  EXPECT(rcpt, 501, "5.1.3", "bad address syntax", ABORT, false);
  EXPECT(rcpt, 550, "5.7.1", "relaying denied", SWITCH, false);
  EXPECT(rcpt, 554, "5.7.1", "relay access denied", SWITCH, false);
  EXPECT(rcpt, 550, "", "no such user", ABORT, false);
  EXPECT(rcpt, 551, "", "user not local", ABORT, false);
  EXPECT(rcpt, 553, "", "mailbox name not allowed", ABORT, false);
  EXPECT(rcpt, 550, "5.2.1", "mailbox disabled", ABORT, false);
  EXPECT(rcpt, 553, "5.1.3", NULL, ABORT, false);
}

Test(classify, end_of_data_5xx_aborts) {
  EXPECT(eod, 554, "", "transaction failed", ABORT, false);
  EXPECT(eod, 554, "5.7.1", "spam", ABORT, false);
  EXPECT(eod, 550, "5.6.0", "content rejected", ABORT, false);
  EXPECT(eod, 500, "", NULL, ABORT, false);
  EXPECT(eod, 555, "5.5.4", NULL, ABORT, false);
  /* disk full stays SWITCH: another server has room */
  EXPECT(eod, 552, "5.3.1", "", SWITCH, false);
  EXPECT(eod, 552, "", "insufficient storage", SWITCH, false);
}

Test(classify, not_supported_switches) {
  int codes[] = {500, 501, 502, 504, 555};
  for (size_t i = 0; i < 5; i++) {
    EXPECT(not_rcpt_eod, codes[i], "", NULL, SWITCH, false);
    EXPECT(rcpt, codes[i], "", NULL, SWITCH, false);
    EXPECT(not_rcpt_eod, codes[i], "5.5.2", NULL, SWITCH, false);
  }
  EXPECT(not_rcpt_eod, 503, "5.5.1", "bad sequence", SWITCH, false);
  EXPECT(rcpt, 503, "5.5.1", "bad sequence", SWITCH, false);
  /* at RCPT, 550/551/553 come before the x.5.x row */
  EXPECT(rcpt, 550, "5.5.0", NULL, ABORT, false);
  EXPECT(rcpt, 554, "5.5.0", NULL, SWITCH, false);
}

Test(classify, busy_450_451_transient) {
  EXPECT(transaction, 450, "4.2.1", "mailbox busy", TRANSIENT, false);
  EXPECT(transaction, 450, "", NULL, TRANSIENT, false);
  EXPECT(transaction, 451, "4.4.1", "network", TRANSIENT, false);
  EXPECT(transaction, 451, "", "local error", TRANSIENT, false);
  /* elsewhere the 4xx fallback gives the same class */
  EXPECT(not_mail_rcpt_eod_greeting, 451, "", NULL, TRANSIENT, false);
}

Test(classify, fallbacks) {
  EXPECT(all_stages, 454, "", NULL, TRANSIENT, false);
  EXPECT(all_stages, 499, "4.9.9", NULL, TRANSIENT, false);
  EXPECT(rcpt, 554, "", NULL, ABORT, false);
  EXPECT(rcpt, 599, "5.9.9", NULL, ABORT, false);
  EXPECT(not_greeting_rcpt_eod, 554, "", NULL, SWITCH, false);
  EXPECT(not_greeting_rcpt_eod, 599, "", NULL, SWITCH, false);
  EXPECT(all_stages, 250, "", NULL, TRANSIENT, false);
  EXPECT(all_stages, 220, "", NULL, TRANSIENT, false);
  EXPECT(all_stages, 354, "", NULL, TRANSIENT, false);
  EXPECT(all_stages, 110, "", NULL, TRANSIENT, false);
  EXPECT(all_stages, 0, "", NULL, TRANSIENT, false);
  EXPECT(all_stages, 999, "", NULL, TRANSIENT, false);
}

Test(classify, null_table_is_defaults_and_bad_input_transient) {
  detour_failure f = {.stage = S(RCPT), .cond = DETOUR_COND_REPLY, .code = 550};
  cr_expect_eq(detour_classify_failure(NULL, &f, NULL), C(ABORT));
  bool warn = true;
  cr_expect_eq(detour_classify_failure(table, NULL, &warn), C(TRANSIENT));
  cr_expect_not(warn);
  f.cond = (detour_condition)77;
  cr_expect_eq(detour_classify_failure(table, &f, NULL), C(TRANSIENT));
  f.cond = DETOUR_COND_REPLY;
  f.stage = (detour_stage)77; /* only stage-free rows can match */
  cr_expect_eq(detour_classify_failure(table, &f, NULL), C(SWITCH));
}

Test(classify, unterminated_enhanced_is_safe) {
  detour_failure f = {.stage = S(RCPT), .cond = DETOUR_COND_REPLY, .code = 550};
  memset(f.enhanced, '5', sizeof f.enhanced);
  cr_expect_eq(detour_classify_failure(table, &f, NULL), C(ABORT));
}

/* ---- overrides ---- */

static void override_ok(const char *key, detour_class k) {
  char err[256] = "untouched";
  cr_assert_eq(detour_classify_override(table, key, k, err, sizeof err), 0,
               "key %s: %s", key, err);
  cr_assert_str_eq(err, "");
}

Test(classify, override_exact_code) {
  override_ok("550", C(TRANSIENT));
  EXPECT(rcpt, 550, "5.1.1", NULL, TRANSIENT, false);
  EXPECT(greeting, 550, "", NULL, TRANSIENT, false);
  EXPECT(rcpt, 551, "", NULL, ABORT, false);
}

Test(classify, override_code_pattern) {
  override_ok("45x", C(SWITCH));
  EXPECT(transaction, 450, "", NULL, SWITCH, false);
  EXPECT(transaction, 459, "", NULL, SWITCH, false);
  EXPECT(transaction, 460, "", NULL, TRANSIENT, false);
  override_ok("5XX", C(TRANSIENT));
  EXPECT(rcpt, 550, "5.1.1", NULL, TRANSIENT, false);
}

Test(classify, override_with_enhanced_pattern) {
  override_ok("5xx x.1.x", C(SWITCH));
  EXPECT(rcpt, 550, "5.1.1", NULL, SWITCH, false);
  EXPECT(rcpt, 553, "5.1.3", NULL, SWITCH, false);
  EXPECT(rcpt, 550, "", NULL, ABORT, false); /* needs an enhanced code */
  EXPECT(rcpt, 550, "5.2.1", NULL, ABORT, false);
  override_ok("  452   4.3.1  ", C(TRANSIENT));
  EXPECT(rcpt, 452, "4.3.1", NULL, TRANSIENT, false);
  EXPECT(rcpt, 552, "5.3.1", NULL, SWITCH, false);
  override_ok("552 *", C(TRANSIENT));
  EXPECT(rcpt, 552, "5.3.1", NULL, TRANSIENT, false);
  override_ok("554 5.*.*", C(ABORT));
  EXPECT(mail, 554, "5.7.1", NULL, ABORT, false);
}

Test(classify, override_limited_to_stage) {
  override_ok("rcpt:550", C(TRANSIENT));
  EXPECT(rcpt, 550, "5.1.1", NULL, TRANSIENT, false);
  EXPECT(mail, 550, "5.1.1", NULL, ABORT, false);
  override_ok("greeting:554", C(TRANSIENT));
  EXPECT(greeting, 554, "", NULL, TRANSIENT, false);
  EXPECT(mail, 554, "", NULL, SWITCH, false);
  override_ok("end_of_data:5xx", C(TRANSIENT));
  EXPECT(eod, 554, "", NULL, TRANSIENT, false);
  override_ok("EOD : 554 5.7.1", C(SWITCH));
  EXPECT(eod, 554, "5.7.1", NULL, SWITCH, false);
  EXPECT(eod, 554, "5.6.0", NULL, TRANSIENT, false);
}

Test(classify, override_condition) {
  override_ok("timeout", C(SWITCH));
  cr_expect_eq(cond_class(S(MAIL), DETOUR_COND_TIMEOUT, NULL), C(SWITCH));
  override_ok("rcpt:closed", C(ABORT));
  cr_expect_eq(cond_class(S(RCPT), DETOUR_COND_CLOSED, NULL), C(ABORT));
  cr_expect_eq(cond_class(S(MAIL), DETOUR_COND_CLOSED, NULL), C(TRANSIENT));
  override_ok("CONNECT_REFUSED", C(TRANSIENT));
  cr_expect_eq(cond_class(S(CONNECT), DETOUR_COND_CONNECT_REFUSED, NULL),
               C(TRANSIENT));
  bool warn = true;
  override_ok("tls", C(ABORT));
  cr_expect_eq(cond_class(S(EHLO), DETOUR_COND_TLS, &warn), C(ABORT));
  cr_expect_not(warn); /* an override carries no warning */
  override_ok("reply", C(TRANSIENT));
  EXPECT(all_stages, 421, "", NULL, TRANSIENT, false);
}

Test(classify, newest_override_wins) {
  override_ok("rcpt:550", C(TRANSIENT));
  override_ok("550", C(SWITCH));
  EXPECT(rcpt, 550, "", NULL, SWITCH, false);
  override_ok("rcpt:550", C(ABORT));
  EXPECT(rcpt, 550, "", NULL, ABORT, false);
  EXPECT(mail, 550, "", NULL, SWITCH, false);
}

/* Far more overrides than the table's first allocation, each one moving a
 * code away from its default: a table that drops or overwrites overrides
 * when it grows leaves some code at its default and fails here. */
Test(classify, many_overrides_grow) {
  char key[16];
  for (int code = 400; code < 500; code++) {
    snprintf(key, sizeof key, "rcpt:%d", code);
    override_ok(key, C(ABORT));
  }
  for (int code = 400; code < 500; code++) {
    bool warn = true;
    detour_class got = reply_class(S(RCPT), code, "", NULL, &warn);
    cr_expect_eq(got, C(ABORT), "rcpt %d: got %s after 100 overrides", code,
                 detour_class_name(got));
  }
  /* The newest override of one key wins, and it is not the default. */
  for (int i = 0; i < 101; i++)
    override_ok("greeting:421", i % 2 ? C(SWITCH) : C(TRANSIENT));
  EXPECT(greeting, 421, "", NULL, TRANSIENT, false);
}

static void override_bad(const char *key, detour_class k, const char *want) {
  char err[512] = "";
  cr_assert_eq(detour_classify_override(table, key, k, err, sizeof err),
               DETOUR_EPARSE, "key '%s' accepted", key);
  cr_assert_str_eq(err, want);
}

Test(classify, bad_keys_name_the_bad_part) {
  override_bad("foo:550", C(ABORT),
               "classification key \"foo:550\": unknown stage \"foo\" "
               "(expected connect, greeting, ehlo, helo, mail, rcpt, data, "
               "eod, quit, starttls, tls, auth)");
  override_bad("rcpt:55", C(ABORT),
               "classification key \"rcpt:55\": bad reply code \"55\" "
               "(expected 3 characters like 452, 45x, 5xx)");
  override_bad("650", C(ABORT),
               "classification key \"650\": bad reply code \"650\" "
               "(expected 3 characters like 452, 45x, 5xx)");
  override_bad("5x5a", C(ABORT),
               "classification key \"5x5a\": bad reply code \"5x5a\" "
               "(expected 3 characters like 452, 45x, 5xx)");
  override_bad("550 5.1", C(ABORT),
               "classification key \"550 5.1\": bad enhanced status code "
               "pattern \"5.1\" (expected class.subject.detail like 5.1.1, "
               "x.3.1, 5.x.x)");
  override_bad("550 3.1.1", C(ABORT),
               "classification key \"550 3.1.1\": bad enhanced status code "
               "pattern \"3.1.1\" (expected class.subject.detail like 5.1.1, "
               "x.3.1, 5.x.x)");
  override_bad("550 5.1.1 extra", C(ABORT),
               "classification key \"550 5.1.1 extra\": bad enhanced status "
               "code pattern \"5.1.1 extra\" (expected class.subject.detail "
               "like 5.1.1, x.3.1, 5.x.x)");
  override_bad("550 5.1234.1", C(ABORT),
               "classification key \"550 5.1234.1\": bad enhanced status "
               "code pattern \"5.1234.1\" (expected class.subject.detail like "
               "5.1.1, x.3.1, 5.x.x)");
  override_bad("bogus", C(ABORT),
               "classification key \"bogus\": unknown condition \"bogus\" "
               "(expected a reply code or one of reply, connect_refused, "
               "unreachable, connect_timeout, dns, timeout, closed, "
               "malformed, tls, no_starttls, no_auth)");
  override_bad("timeout 4.1.1", C(ABORT),
               "classification key \"timeout 4.1.1\": unknown condition "
               "\"timeout 4.1.1\" (expected a reply code or one of reply, "
               "connect_refused, unreachable, connect_timeout, dns, timeout, "
               "closed, malformed, tls, no_starttls, no_auth)");
  override_bad("", C(ABORT),
               "classification key \"\": missing reply code or condition "
               "(expected a reply code like 452 or a condition like "
               "timeout)");
  override_bad("rcpt:", C(ABORT),
               "classification key \"rcpt:\": missing reply code or "
               "condition (expected a reply code like 452 or a condition "
               "like timeout)");
  override_bad("550", C(NONE),
               "classification key \"550\": class must be CONNECT, "
               "TRANSIENT, SWITCH or ABORT");
  override_bad("550", (detour_class)9,
               "classification key \"550\": class must be CONNECT, "
               "TRANSIENT, SWITCH or ABORT");
  char longkey[80];
  memset(longkey, '5', sizeof longkey - 1);
  longkey[79] = '\0';
  char err[256];
  cr_assert_eq(
      detour_classify_override(table, longkey, C(ABORT), err, sizeof err),
      DETOUR_EPARSE);
  cr_assert(strstr(err, "too long (expected at most 64 characters)"));
  /* the table is unchanged by every failure above */
  EXPECT(rcpt, 550, "", NULL, ABORT, false);
}

Test(classify, bad_key_with_small_or_no_error_buffer) {
  char err[8];
  cr_assert_eq(detour_classify_override(table, "zz", C(ABORT), err, 8),
               DETOUR_EPARSE);
  cr_assert_str_eq(err, "classif");
  cr_assert_eq(detour_classify_override(table, "zz", C(ABORT), NULL, 0),
               DETOUR_EPARSE);
  cr_assert_eq(detour_classify_override(NULL, "550", C(ABORT), NULL, 0),
               DETOUR_EINVAL);
  cr_assert_eq(detour_classify_override(table, NULL, C(ABORT), NULL, 0),
               DETOUR_EINVAL);
}

Test(classify, free_null) { detour_classify_free(NULL); }

/* ------------------------------------------------------------ R13 */

static const detour_stage starttls[] = {S(STARTTLS)};
static const detour_stage auth[] = {S(AUTH)};

Test(classify, r13_tls_failures_switch_and_warn) {
  detour_condition conds[] = {DETOUR_COND_TLS, DETOUR_COND_NO_STARTTLS,
                              DETOUR_COND_NO_AUTH};
  for (size_t i = 0; i < 3; i++) {
    bool warn = false;
    cr_expect_eq(cond_class(S(TLS), conds[i], &warn), C(SWITCH), "%s",
                 detour_condition_name(conds[i]));
    cr_expect(warn, "%s warns", detour_condition_name(conds[i]));
  }
}

/* A handshake that stalls or is dropped is a handshake failure (R13), not
 * the TRANSIENT of a silent SMTP server; elsewhere it stays TRANSIENT. */
Test(classify, r13_handshake_timeout_or_drop_switches) {
  detour_condition conds[] = {DETOUR_COND_TIMEOUT, DETOUR_COND_CLOSED};
  for (size_t i = 0; i < 2; i++) {
    bool warn = false;
    cr_expect_eq(cond_class(S(TLS), conds[i], &warn), C(SWITCH));
    cr_expect(warn);
    cr_expect_eq(cond_class(S(STARTTLS), conds[i], &warn), C(TRANSIENT));
    cr_expect_eq(cond_class(S(AUTH), conds[i], &warn), C(TRANSIENT));
    cr_expect_not(warn);
  }
}

Test(classify, r13_starttls_refused_switches_and_warns) {
  EXPECT(starttls, 454, "4.7.0", "TLS not available", SWITCH, true);
  EXPECT(starttls, 454, "", NULL, SWITCH, true);
  EXPECT(starttls, 502, "5.5.1", "not implemented", SWITCH, true);
  EXPECT(starttls, 501, "", NULL, SWITCH, true);
  EXPECT(starttls, 421, "4.3.2", "bye", SWITCH, false);
}

Test(classify, r13_auth_454_is_transient_5xx_switches_and_warns) {
  EXPECT(auth, 454, "4.7.0", "temporary authentication failure", TRANSIENT,
         false);
  EXPECT(auth, 535, "5.7.8", "bad credentials", SWITCH, true);
  EXPECT(auth, 534, "5.7.9", "mechanism too weak", SWITCH, true);
  EXPECT(auth, 538, "5.7.11", "encryption required", SWITCH, true);
  EXPECT(auth, 504, "5.5.4", "unrecognised mechanism", SWITCH, true);
  EXPECT(mail, 530, "5.7.0", "authentication required", SWITCH, true);
}

Test(classify, r13_entries_are_overridable) {
  char err[256];
  cr_assert_eq(detour_classify_override(table, "auth:535", C(TRANSIENT), err,
                                        sizeof err),
               0, "%s", err);
  cr_assert_eq(
      detour_classify_override(table, "tls", C(TRANSIENT), err, sizeof err), 0,
      "%s", err);
  cr_assert_eq(detour_classify_override(table, "starttls:454", C(ABORT), err,
                                        sizeof err),
               0, "%s", err);
  cr_assert_eq(detour_classify_override(table, "no_starttls", C(TRANSIENT), err,
                                        sizeof err),
               0, "%s", err);
  cr_assert_eq(detour_classify_override(table, "tls:closed", C(TRANSIENT), err,
                                        sizeof err),
               0, "%s", err);
  bool warn = true;
  cr_expect_eq(reply_class(S(AUTH), 535, "5.7.8", "no", &warn), C(TRANSIENT));
  cr_expect_not(warn);
  cr_expect_eq(reply_class(S(MAIL), 535, "5.7.8", "no", &warn), C(SWITCH),
               "auth:535 only at AUTH");
  cr_expect_eq(cond_class(S(TLS), DETOUR_COND_TLS, &warn), C(TRANSIENT));
  cr_expect_eq(reply_class(S(STARTTLS), 454, "4.7.0", "no", &warn), C(ABORT));
  cr_expect_eq(cond_class(S(EHLO), DETOUR_COND_NO_STARTTLS, &warn),
               C(TRANSIENT));
  cr_expect_eq(cond_class(S(TLS), DETOUR_COND_CLOSED, &warn), C(TRANSIENT));
  cr_expect_eq(cond_class(S(RCPT), DETOUR_COND_CLOSED, &warn), C(TRANSIENT));
  cr_expect_eq(cond_class(S(TLS), DETOUR_COND_TIMEOUT, &warn), C(SWITCH),
               "tls:closed does not touch tls:timeout");
}

Test(classify, r13_unknown_stage_lists_the_new_ones) {
  char err[300];
  cr_assert_eq(
      detour_classify_override(table, "tlsx:535", C(SWITCH), err, sizeof err),
      DETOUR_EPARSE);
  cr_expect(strstr(err, "starttls, tls, auth") != NULL, "%s", err);
}

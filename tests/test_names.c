/*
 * test_names.c - error names and messages (core/src/errors.c), the enum
 * name tables and their inverses, and the configuration defaults
 * (core/src/names.c).
 */
#include <criterion/criterion.h>
#include <string.h>

#include "detour/detour.h"

Test(errors, every_value_has_name_and_message) {
  cr_expect_str_eq(detour_err_name(DETOUR_ENOMEM), "ENOMEM");
  cr_expect_str_eq(detour_strerror(DETOUR_ENOMEM), "out of memory");
  cr_expect_str_eq(detour_err_name(DETOUR_ELINE_TOO_LONG), "ELINE_TOO_LONG");
  cr_expect_str_eq(detour_strerror(DETOUR_ELINE_TOO_LONG),
                   "reply line longer than 512 octets");
  cr_expect_str_eq(detour_err_name(DETOUR_EIO), "EIO");
  cr_expect_str_eq(detour_strerror(DETOUR_EIO), "input/output error");
  for (int e = -1; e >= -12; e--) {
    cr_expect_str_neq(detour_err_name(e), "EUNKNOWN", "%d", e);
    cr_expect_str_neq(detour_strerror(e), "unknown error", "%d", e);
  }
}

Test(errors, unknown_values) {
  cr_expect_str_eq(detour_err_name(0), "EUNKNOWN");
  cr_expect_str_eq(detour_err_name(-13), "EUNKNOWN");
  cr_expect_str_eq(detour_err_name(5), "EUNKNOWN");
  cr_expect_str_eq(detour_strerror(0), "unknown error");
  cr_expect_str_eq(detour_strerror(-1000), "unknown error");
}

Test(names, classes_round_trip) {
  const char *want[] = {"NONE", "CONNECT", "TRANSIENT", "SWITCH", "ABORT"};
  for (int i = 0; i < DETOUR_CLASS_COUNT; i++) {
    cr_expect_str_eq(detour_class_name((detour_class)i), want[i]);
    detour_class c = (detour_class)99;
    cr_expect_eq(detour_class_from_name(want[i], &c), 0);
    cr_expect_eq(c, (detour_class)i);
  }
  detour_class c;
  cr_expect_eq(detour_class_from_name("switch", &c), 0);
  cr_expect_eq(c, DETOUR_CLASS_SWITCH);
  cr_expect_eq(detour_class_from_name("Transient", &c), 0);
  cr_expect_eq(c, DETOUR_CLASS_TRANSIENT);
  cr_expect_eq(detour_class_from_name("SWITCHX", &c), DETOUR_EPARSE);
  cr_expect_eq(detour_class_from_name("", &c), DETOUR_EPARSE);
  cr_expect_eq(detour_class_from_name(NULL, &c), DETOUR_EPARSE);
  cr_expect_eq(detour_class_from_name("ABORT", NULL), DETOUR_EPARSE);
  cr_expect_str_eq(detour_class_name((detour_class)5), "unknown");
  cr_expect_str_eq(detour_class_name((detour_class)-1), "unknown");
}

Test(names, stages_round_trip) {
  const char *want[] = {"connect", "greeting", "ehlo", "helo",
                        "mail",    "rcpt",     "data", "eod",
                        "quit",    "starttls", "tls",  "auth"};
  for (int i = 0; i < DETOUR_STAGE_COUNT; i++) {
    cr_expect_str_eq(detour_stage_name((detour_stage)i), want[i]);
    detour_stage s = (detour_stage)99;
    cr_expect_eq(detour_stage_from_name(want[i], &s), 0);
    cr_expect_eq(s, (detour_stage)i);
  }
  detour_stage s;
  cr_expect_eq(detour_stage_from_name("end_of_data", &s), 0);
  cr_expect_eq(s, DETOUR_STAGE_END_OF_DATA);
  cr_expect_eq(detour_stage_from_name("END_OF_DATA", &s), 0);
  cr_expect_eq(detour_stage_from_name("RCPT", &s), 0);
  cr_expect_eq(s, DETOUR_STAGE_RCPT);
  cr_expect_eq(detour_stage_from_name("rcpt_to", &s), DETOUR_EPARSE);
  cr_expect_eq(detour_stage_from_name(NULL, &s), DETOUR_EPARSE);
  cr_expect_str_eq(detour_stage_name((detour_stage)12), "unknown");
}

Test(names, conditions_round_trip) {
  const char *want[] = {
      "reply", "connect_refused", "unreachable", "connect_timeout",
      "dns",   "timeout",         "closed",      "malformed",
      "tls",   "no_starttls",     "no_auth"};
  for (int i = 0; i < DETOUR_COND_COUNT; i++) {
    cr_expect_str_eq(detour_condition_name((detour_condition)i), want[i]);
    detour_condition c = (detour_condition)99;
    cr_expect_eq(detour_condition_from_name(want[i], &c), 0);
    cr_expect_eq(c, (detour_condition)i);
  }
  detour_condition c;
  cr_expect_eq(detour_condition_from_name("refused", &c), DETOUR_EPARSE);
  cr_expect_str_eq(detour_condition_name((detour_condition)11), "unknown");
}

Test(names, rules_round_trip) {
  const char *want[] = {"any", "sender", "recipient", "all"};
  for (int i = 0; i <= DETOUR_RULE_ALL; i++) {
    cr_expect_str_eq(detour_rule_name((detour_rule)i), want[i]);
    detour_rule r = (detour_rule)99;
    cr_expect_eq(detour_rule_from_name(want[i], &r), 0);
    cr_expect_eq(r, (detour_rule)i);
  }
  detour_rule r;
  cr_expect_eq(detour_rule_from_name("ALL", &r), 0);
  cr_expect_eq(r, DETOUR_RULE_ALL);
  cr_expect_eq(detour_rule_from_name("either", &r), DETOUR_EPARSE);
  cr_expect_str_eq(detour_rule_name((detour_rule)4), "unknown");
}

Test(names, other_enums) {
  cr_expect_str_eq(detour_log_kind_name(DETOUR_LOG_CONNECT), "connect");
  cr_expect_str_eq(detour_log_kind_name(DETOUR_LOG_SMTP), "smtp");
  cr_expect_str_eq(detour_log_kind_name(DETOUR_LOG_WARNING), "warning");
  cr_expect_str_eq(detour_log_kind_name(DETOUR_LOG_BREAKER), "breaker");
  cr_expect_str_eq(detour_log_kind_name(DETOUR_LOG_RACE), "race");
  cr_expect_str_eq(detour_log_kind_name(DETOUR_LOG_TLS), "tls");
  cr_expect_str_eq(detour_log_kind_name(DETOUR_LOG_AUTH), "auth");
  cr_expect_str_eq(detour_log_kind_name((detour_log_kind)7), "unknown");
  cr_expect_str_eq(detour_rcpt_outcome_name(DETOUR_RCPT_DELIVERED),
                   "delivered");
  cr_expect_str_eq(detour_rcpt_outcome_name(DETOUR_RCPT_ABORTED), "aborted");
  cr_expect_str_eq(detour_rcpt_outcome_name(DETOUR_RCPT_DEFERRED), "deferred");
  cr_expect_str_eq(detour_rcpt_outcome_name((detour_rcpt_outcome)3), "unknown");
  cr_expect_str_eq(detour_done_status_name(DETOUR_DONE_DELIVERED), "delivered");
  cr_expect_str_eq(detour_done_status_name(DETOUR_DONE_ABORTED), "aborted");
  cr_expect_str_eq(detour_done_status_name(DETOUR_DONE_DEFERRED), "deferred");
  cr_expect_str_eq(detour_done_status_name((detour_done_status)3), "unknown");
  const char *acts[] = {"connect",     "send", "close", "log",      "warn",
                        "rcpt_result", "done", "error", "tls_start"};
  for (int i = 0; i <= DETOUR_ACT_TLS_START; i++)
    cr_expect_str_eq(detour_action_type_name((detour_action_type)i), acts[i]);
  cr_expect_str_eq(detour_action_type_name((detour_action_type)9), "unknown");
}

Test(names, tls_modes_and_failures) {
  const char *modes[] = {"none", "starttls", "implicit"};
  for (int i = 0; i < 3; i++) {
    cr_expect_str_eq(detour_tls_mode_name((detour_tls_mode)i), modes[i]);
    detour_tls_mode m = (detour_tls_mode)9;
    cr_expect_eq(detour_tls_mode_from_name(modes[i], &m), 0);
    cr_expect_eq(m, (detour_tls_mode)i);
  }
  detour_tls_mode m;
  cr_expect_eq(detour_tls_mode_from_name("ssl", &m), DETOUR_EPARSE);
  cr_expect_str_eq(detour_tls_failure_name(DETOUR_TLS_CERT_EXPIRED),
                   "cert_expired");
  cr_expect_str_eq(detour_tls_failure_message(DETOUR_TLS_CERT_EXPIRED),
                   "certificate expired");
  cr_expect_str_eq(detour_tls_failure_message(DETOUR_TLS_NAME_MISMATCH),
                   "certificate name mismatch");
  cr_expect_str_eq(detour_tls_failure_name((detour_tls_failure)10), "unknown");
}

Test(config, defaults) {
  detour_config c;
  memset(&c, 0xab, sizeof c);
  detour_config_init(&c);
  cr_expect_eq(c.nservers, 0);
  cr_expect_eq(c.retry_interval, 180000);
  cr_expect_eq(c.max_attempts, 10);
  cr_expect_eq(c.timeouts.connect, 30000);
  cr_expect_eq(c.timeouts.greeting, 300000);
  cr_expect_eq(c.timeouts.ehlo, 300000);
  cr_expect_eq(c.timeouts.mail, 300000);
  cr_expect_eq(c.timeouts.rcpt, 300000);
  cr_expect_eq(c.timeouts.data_start, 120000);
  cr_expect_eq(c.timeouts.data_block, 180000);
  cr_expect_eq(c.timeouts.final_dot, 600000);
  cr_expect_eq(c.timeouts.quit, 300000);
  cr_expect_eq(c.timeouts.tls, 300000);
  cr_expect_eq(c.timeouts.auth, 300000);
  cr_expect_null(c.classify);
  cr_expect_null(c.policy);
  cr_expect_str_eq(c.helo_name, "localhost");
  cr_expect_not(c.pipelining);
  cr_expect_eq(c.breaker_hold, 0);
  cr_expect_eq(c.race_delay, 0);
  detour_config_init(NULL);
}

Test(config, add_servers_and_priorities) {
  detour_config c;
  detour_config_init(&c);
  cr_assert_eq(detour_config_add_server(&c, "mx1.example.com", 25, 0), 0);
  cr_assert_eq(detour_config_add_server(&c, "192.0.2.7", 587, -3), 0);
  cr_assert_eq(detour_config_add_server(&c, "mx9", 2525, 9), 0);
  cr_assert_eq(detour_config_add_server(&c, "mx10", 25, 0), 0);
  cr_assert_eq(detour_config_add_server(&c, "mx5", 25, 5), 0);
  cr_assert_eq(detour_config_add_server(&c, "mx11", 25, 0), 0);
  cr_assert_eq(c.nservers, 6);
  cr_expect_str_eq(c.servers[0].host, "mx1.example.com");
  cr_expect_eq(c.servers[0].port, 25);
  cr_expect_eq(c.servers[0].priority, 1);
  cr_expect_str_eq(c.servers[1].host, "192.0.2.7");
  cr_expect_eq(c.servers[1].port, 587);
  cr_expect_eq(c.servers[1].priority, 2);
  cr_expect_eq(c.servers[2].priority, 9);
  cr_expect_eq(c.servers[3].priority, 10);
  cr_expect_eq(c.servers[4].priority, 5);
  cr_expect_eq(c.servers[5].priority, 11);
}

Test(config, add_server_errors) {
  detour_config c;
  detour_config_init(&c);
  cr_expect_eq(detour_config_add_server(NULL, "a", 25, 1), DETOUR_EINVAL);
  cr_expect_eq(detour_config_add_server(&c, NULL, 25, 1), DETOUR_EINVAL);
  cr_expect_eq(detour_config_add_server(&c, "", 25, 1), DETOUR_EINVAL);
  cr_expect_eq(detour_config_add_server(&c, "a", 0, 1), DETOUR_EINVAL);
  char host[257];
  memset(host, 'h', 256);
  host[256] = '\0';
  cr_expect_eq(detour_config_add_server(&c, host, 25, 1), DETOUR_EINVAL);
  host[255] = '\0'; /* 255 characters fit */
  cr_expect_eq(detour_config_add_server(&c, host, 25, 1), 0);
  cr_expect_eq(c.nservers, 1);
  for (int i = 1; i < DETOUR_MAX_SERVERS; i++)
    cr_assert_eq(detour_config_add_server(&c, "b", 25, 0), 0);
  cr_expect_eq(c.servers[DETOUR_MAX_SERVERS - 1].priority, DETOUR_MAX_SERVERS);
  cr_expect_eq(detour_config_add_server(&c, "c", 25, 0), DETOUR_ERANGE);
  cr_expect_eq(c.nservers, DETOUR_MAX_SERVERS);
}

Test(config, priority_after_int_max_is_range) {
  detour_config c;
  detour_config_init(&c);
  cr_assert_eq(detour_config_add_server(&c, "a", 25, 2147483647), 0);
  cr_expect_eq(detour_config_add_server(&c, "b", 25, 0), DETOUR_ERANGE);
  cr_expect_eq(c.nservers, 1);
}

/* detour_parse_duration (core/src/duration.c) is tested here: it belongs
 * with the configuration defaults it is used to override. */
static detour_ms dur(const char *s) {
  detour_ms v = -7;
  cr_assert_eq(detour_parse_duration(s, &v), 0, "'%s'", s);
  return v;
}

Test(duration, units) {
  cr_expect_eq(dur("500ms"), 500);
  cr_expect_eq(dur("3s"), 3000);
  cr_expect_eq(dur("3m"), 180000);
  cr_expect_eq(dur("1h"), 3600000);
  cr_expect_eq(dur("30"), 30000);
  cr_expect_eq(dur("0"), 0);
  cr_expect_eq(dur("0ms"), 0);
  cr_expect_eq(dur("007s"), 7000);
  cr_expect_eq(dur("2H"), 7200000);
  cr_expect_eq(dur("10MS"), 10);
}

/* The scenario grammar and the configuration grammar are one. */
Test(duration, fractions_and_groups) {
  cr_expect_eq(dur("1.5s"), 1500);
  cr_expect_eq(dur("1.250s"), 1250);
  cr_expect_eq(dur("0.5m"), 30000);
  cr_expect_eq(dur("1.5"), 1500);
  cr_expect_eq(dur("3m20s"), 200000);
  cr_expect_eq(dur("1h2m3.004s"), 3723004);
  cr_expect_eq(dur("1h500ms"), 3600500);
}

/* DETOUR_DURATION_MAX (30 days) is accepted, one millisecond more is
 * not, whatever the spelling; nothing wraps. */
Test(duration, limits) {
  cr_expect_eq(dur("720h"), DETOUR_DURATION_MAX);
  cr_expect_eq(dur("2592000000ms"), DETOUR_DURATION_MAX);
  cr_expect_eq(dur("719h59m59.999s"), DETOUR_DURATION_MAX - 1);
  const char *big[] = {"2592000001ms",
                       "720h1ms",
                       "721h",
                       "2592001",
                       "9223372036854775807ms",
                       "9223372036854775808ms",
                       "9223372036854776s",
                       "2562047788015216h",
                       "99999999999999999999999999h",
                       "1000000000000000000000000000000ms"};
  for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) {
    detour_ms v = 42;
    cr_expect_eq(detour_parse_duration(big[i], &v), DETOUR_ERANGE, "'%s'",
                 big[i]);
    cr_expect_eq(v, 42); /* untouched on error */
  }
}

Test(duration, garbage) {
  const char *bad[] = {"",      "-3s",     "+3s",   "3 s",  " 3s",   "3s ",
                       "1.5ms", "s",       "3x",    "3sec", "3mm",   "3d",
                       "ms",    "0x10",    "3s5",   "h1",   "3ms ",  "--1",
                       "3s3m",  "3s3s",    ".5s",   "5.s",  "1..5s", "1.0005s",
                       "3m 2s", "1h2m3s4", "3s-1s", "1e3ms"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    detour_ms v = 42;
    cr_expect_eq(detour_parse_duration(bad[i], &v), DETOUR_EPARSE, "'%s'",
                 bad[i]);
    cr_expect_eq(v, 42);
  }
  detour_ms v;
  cr_expect_eq(detour_parse_duration(NULL, &v), DETOUR_EINVAL);
  cr_expect_eq(detour_parse_duration("3s", NULL), DETOUR_EINVAL);
}

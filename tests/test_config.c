/*
 * test_config.c - the YAML configuration loader (core/src/config.c).
 *
 * A full example loads with every value checked; every error names
 * file:line:col and the key; unknown and repeated keys are refused;
 * durations, classification overrides and detour entries take effect; the
 * node entry point used by the scenario runner prefixes its keys; every
 * YAML example in docs/config.md loads.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <yaml.h>

#include "detour/detour_config.h"
#include "detour/detour_yaml.h"

/* Each test writes its configuration into a private directory. */
static char g_dir[64];
static char g_path[128];
static char g_err[1024];

static void make_dir(void) {
  snprintf(g_dir, sizeof g_dir, "/tmp/detour-test-config-XXXXXX");
  cr_assert_not_null(mkdtemp(g_dir));
  snprintf(g_path, sizeof g_path, "%s/relay.yaml", g_dir);
}

static void remove_dir(void) {
  unlink(g_path);
  rmdir(g_dir);
}

TestSuite(config, .init = make_dir, .fini = remove_dir);

static int load_text(const char *text, detour_settings *s) {
  FILE *f = fopen(g_path, "w");
  cr_assert_not_null(f);
  fputs(text, f);
  fclose(f);
  return detour_settings_load_file(s, g_path, g_err, sizeof g_err);
}

static const char full_example[] =
    "# every key, as in docs/config.md\n"
    "servers:\n"
    "  - { host: smtp1.example.net, port: 587, priority: 1 }\n"
    "  - { host: 192.0.2.20, port: 25, priority: 2 }\n"
    "  - \"[2001:db8::25]:2525\"\n"
    "retry: { interval: 3m, max_attempts: 10 }\n"
    "timeouts:\n"
    "  connect: 30s\n"
    "  greeting: 5m\n"
    "  ehlo: 4m\n"
    "  mail: 3m\n"
    "  rcpt: 2m\n"
    "  data_start: 90s\n"
    "  data_block: 3m\n"
    "  final_dot: 10m\n"
    "  quit: 500ms\n"
    "detour:\n"
    "  rule: all\n"
    "  default: deny\n"
    "  senders:    { \"boss@example.com\": allow, \"bulk@example.com\": deny "
    "}\n"
    "  recipients: { \"*@partner.example\": allow, \"noc@example.com\": deny "
    "}\n"
    "classify: { \"452\": TRANSIENT, \"rcpt:550\": SWITCH }\n"
    "helo_name: relay.example.com\n"
    "pipelining: true\n"
    "breaker: { hold: 1m }\n"
    "race: { delay: 250ms }\n"
    "log: /var/log/detour/send.jsonl\n";

Test(config, full_example_every_value) {
  detour_settings s;
  cr_assert_eq(load_text(full_example, &s), 0, "%s", g_err);
  const detour_config *c = &s.cfg;
  cr_assert_eq(c->nservers, 3);
  cr_expect_str_eq(c->servers[0].host, "smtp1.example.net");
  cr_expect_eq(c->servers[0].port, 587);
  cr_expect_eq(c->servers[0].priority, 1);
  cr_expect_str_eq(c->servers[1].host, "192.0.2.20");
  cr_expect_eq(c->servers[1].port, 25);
  cr_expect_eq(c->servers[1].priority, 2);
  cr_expect_str_eq(c->servers[2].host, "2001:db8::25");
  cr_expect_eq(c->servers[2].port, 2525);
  cr_expect_gt(c->servers[2].priority, 2, "no priority: after the others");
  cr_expect_eq(c->retry_interval, 180000);
  cr_expect_eq(c->max_attempts, 10);
  cr_expect_eq(c->timeouts.connect, 30000);
  cr_expect_eq(c->timeouts.greeting, 300000);
  cr_expect_eq(c->timeouts.ehlo, 240000);
  cr_expect_eq(c->timeouts.mail, 180000);
  cr_expect_eq(c->timeouts.rcpt, 120000);
  cr_expect_eq(c->timeouts.data_start, 90000);
  cr_expect_eq(c->timeouts.data_block, 180000);
  cr_expect_eq(c->timeouts.final_dot, 600000);
  cr_expect_eq(c->timeouts.quit, 500);
  cr_expect_str_eq(c->helo_name, "relay.example.com");
  cr_expect(c->pipelining);
  cr_expect_eq(c->breaker_hold, 60000);
  cr_expect_eq(c->race_delay, 250);
  cr_assert_not_null(s.log_path);
  cr_expect_str_eq(s.log_path, "/var/log/detour/send.jsonl");
  cr_expect_eq(c->classify, s.classify);
  cr_expect_eq(c->policy, s.policy);
  detour_settings_free(&s);
  cr_expect_null(s.log_path);
}

Test(config, defaults_when_empty) {
  detour_settings s, d;
  cr_assert_eq(load_text("# nothing\n", &s), 0, "%s", g_err);
  detour_config def;
  detour_config_init(&def);
  cr_expect_eq(s.cfg.nservers, 0);
  cr_expect_eq(s.cfg.retry_interval, def.retry_interval);
  cr_expect_eq(s.cfg.max_attempts, def.max_attempts);
  cr_expect_eq(s.cfg.timeouts.greeting, def.timeouts.greeting);
  cr_expect_null(s.log_path);
  cr_expect_not_null(s.classify);
  cr_expect_not_null(s.policy);
  detour_settings_free(&s);
  cr_assert_eq(detour_settings_init(&d), 0);
  cr_expect_str_eq(d.cfg.helo_name, def.helo_name);
  detour_settings_free(&d);
  detour_settings_free(&d); /* twice is safe */
}

Test(config, missing_file) {
  detour_settings s;
  int rc = detour_settings_load_file(&s, "/nonexistent/detour.yaml", g_err,
                                     sizeof g_err);
  cr_expect_eq(rc, DETOUR_EIO);
  cr_expect(strstr(g_err, "/nonexistent/detour.yaml:1:1: cannot open") == g_err,
            "%s", g_err);
  detour_settings_free(&s);
}

Test(config, directory_is_not_a_file) {
  detour_settings s;
  int rc = detour_settings_load_file(&s, g_dir, g_err, sizeof g_err);
  cr_expect_eq(rc, DETOUR_EIO);
  cr_expect_not_null(strstr(g_err, "cannot open"), "%s", g_err);
}

Test(config, second_document_refused) {
  detour_settings s;
  cr_expect_eq(load_text("retry: { interval: 1s }\n---\nretry: {}\n", &s),
               DETOUR_EPARSE);
  char want[256];
  snprintf(want, sizeof want, "%s:2:1: a second YAML document", g_path);
  cr_expect(strncmp(g_err, want, strlen(want)) == 0, "%s", g_err);
  cr_expect_null(s.classify);
}

/* libyaml reports bad UTF-8 with a byte offset and no mark: the message
 * must still point at the line and column of the byte, not at 1:1. */
Test(config, bad_utf8_names_line_col_and_byte) {
  detour_settings s;
  cr_expect_eq(load_text("retry: { interval: 3m }\nlog: \"ab\xff\xfe\"\n", &s),
               DETOUR_EPARSE);
  char want[256];
  snprintf(want, sizeof want, "%s:2:9: YAML syntax error: ", g_path);
  cr_expect(strncmp(g_err, want, strlen(want)) == 0, "%s", g_err);
  cr_expect_not_null(strstr(g_err, "(byte 32)"), "%s", g_err);
}

/* ------------------------------------------------------------------------ */
/* Errors: "FILE:LINE:COL: key 'K': ..." for every path.                      */

typedef struct {
  const char *yaml;
  const char *expect; /* what follows "FILE:" in the message (a prefix) */
} err_case;

static const err_case err_cases[] = {
    {"retry:\n  interval: xyz\n",
     "2:13: key 'retry.interval': expected a duration like 3m, got 'xyz'"},
    {"retry: { interval: 3m, max_attempts: 0 }\n",
     "1:38: key 'retry.max_attempts': expected a number of attempts >= 1, "
     "got '0'"},
    {"retry: { max_attempts: many }\n",
     "1:24: key 'retry.max_attempts': expected a number of attempts >= 1, "
     "got 'many'"},
    {"timeouts:\n  connect: 0\n",
     "2:12: key 'timeouts.connect': expected a duration like 3m, more than "
     "zero, got '0'"},
    {"timeouts:\n  greeting: [1, 2]\n",
     "2:13: key 'timeouts.greeting': expected a duration like 3m, more "
     "than zero, got a list"},
    {"retry: { interval: 721h }\n",
     "1:20: key 'retry.interval': expected a duration like 3m, at most 30 "
     "days (720h), got '721h'"},
    {"timeouts: { connect: 9223372036854775807ms }\n",
     "1:22: key 'timeouts.connect': expected a duration like 3m, more than "
     "zero, at most 30 days (720h)"},
    {"retry: &r { interval: 3m }\nrace: *r\n",
     "2:7: YAML aliases (*r) are not accepted"},
    {"detour: { senders: { a@x: allow, b@x: deny, a@x: deny } }\n",
     "1:45: key 'detour.senders.a@x': given twice"},
    {"servers:\n  - { host: a.example, port: 70000 }\n",
     "2:30: key 'servers[0].port': expected a port number 1..65535, got "
     "'70000'"},
    {"servers:\n  - a.example:25\n  - { port: 25 }\n",
     "3:5: key 'servers[1].host': missing"},
    {"servers:\n  - \"::1:25\"\n",
     "2:5: key 'servers[0]': expected \"host:port\" (IPv6 as \"[::1]:25\"), "
     "got '::1:25'"},
    {"servers:\n  - { host: a.example, priority: 0 }\n",
     "2:34: key 'servers[0].priority': expected a priority 1, 2, ..., got "
     "'0'"},
    {"servers: smtp.example.net\n",
     "1:10: key 'servers': expected a list of servers, got "
     "'smtp.example.net'"},
    {"servers: []\n", "1:10: key 'servers': the list is empty"},
    {"detour:\n  rule: sometimes\n",
     "2:9: key 'detour.rule': expected a rule: any, sender, recipient or "
     "all, got 'sometimes'"},
    {"detour:\n  default: maybe\n",
     "2:12: key 'detour.default': expected allow or deny, got 'maybe'"},
    {"detour:\n  senders: { \"boss@example.com\": yes }\n",
     "2:34: key 'detour.senders.boss@example.com': expected allow or deny, "
     "got 'yes'"},
    {"detour:\n  recipients: [a@example.com]\n",
     "2:15: key 'detour.recipients': expected a mapping, got a list"},
    {"classify: { \"452\": SOMETIMES }\n",
     "1:20: key 'classify.452': expected a class: CONNECT, TRANSIENT, SWITCH "
     "or ABORT, got 'SOMETIMES'"},
    {"classify:\n  \"4z2\": ABORT\n", "2:3: key 'classify.4z2': "},
    {"helo_name: \"my host\"\n",
     "1:12: key 'helo_name': expected a host name without spaces, got 'my "
     "host'"},
    {"pipelining: perhaps\n",
     "1:13: key 'pipelining': expected true or false, got 'perhaps'"},
    {"breaker: { hold: soon }\n",
     "1:18: key 'breaker.hold': expected a duration like 3m, got 'soon'"},
    {"race: { delay: -1s }\n",
     "1:16: key 'race.delay': expected a duration like 3m, got '-1s'"},
    {"log: \n", "1:5: key 'log': expected a file path, got nothing"},
    {"retyr: { interval: 3m }\n",
     "1:1: key 'retyr': unknown key (expected one of: servers, retry, "
     "timeouts, detour, classify, helo_name, pipelining, breaker, race, "
     "log)"},
    {"retry:\n  intervall: 3m\n",
     "2:3: key 'retry.intervall': unknown key (expected one of: interval, "
     "max_attempts)"},
    {"servers:\n  - { host: a.example, prio: 1 }\n",
     "2:24: key 'servers[0].prio': unknown key (expected one of: host, port, "
     "priority, tls, tls_required, ca_file, auth)"},
    {"servers:\n  - { host: a.example, tls: ssl }\n",
     "2:29: key 'servers[0].tls': expected none, starttls or implicit, got "
     "'ssl'"},
    {"servers:\n  - { host: a.example, tls_required: true }\n",
     "2:5: key 'servers[0].tls_required': needs tls: starttls or implicit"},
    {"servers:\n  - { host: a.example, tls: implicit, tls_required: no }\n",
     "2:5: key 'servers[0].tls_required': implicit TLS is always required"},
    {"servers:\n  - { host: a.example, auth: { user: u } }\n",
     "2:30: key 'servers[0].auth': missing password_file or password_env"},
    {"servers:\n  - { host: a.example, auth: { user: u, password: x } }\n",
     "2:41: key 'servers[0].auth.password': unknown key (expected one of: "
     "user, password_file, password_env)"},
    {"servers:\n  - { host: a, auth: { user: u, password_file: /nonexist } "
     "}\n",
     "2:48: key 'servers[0].auth.password_file': cannot read /nonexist: "},
    {"servers:\n  - { host: a, auth: { user: u, password_env: "
     "DETOUR_TEST_UNSET_VAR } }\n",
     "2:47: key 'servers[0].auth.password_env': environment variable "
     "DETOUR_TEST_UNSET_VAR is not set"},
    {"timeouts: { connect: 1s, conect: 2s }\n",
     "1:26: key 'timeouts.conect': unknown key"},
    {"retry: { interval: 3m }\nretry: { interval: 1m }\n",
     "2:1: key 'retry': given twice"},
    {"classify: { \"452\": SWITCH, \"452\": ABORT }\n",
     "1:28: key 'classify.452': given twice"},
    {"- servers\n", "1:1: expected a mapping of configuration keys"},
    {"retry: { interval: 3m\n", ""}, /* syntax: checked below */
};

Test(config, every_error_names_file_line_col_and_key) {
  for (size_t i = 0; i < sizeof err_cases / sizeof *err_cases; i++) {
    detour_settings s;
    int rc = load_text(err_cases[i].yaml, &s);
    cr_expect_eq(rc, DETOUR_EPARSE, "case %zu: rc %d", i, rc);
    char want[1024];
    snprintf(want, sizeof want, "%s:%s", g_path, err_cases[i].expect);
    cr_expect(strncmp(g_err, want, strlen(want)) == 0,
              "case %zu:\n got  %s\n want %s...", i, g_err, want);
    cr_expect_null(strchr(g_err, '\n'), "one line: %s", g_err);
    cr_expect_null(s.classify, "s is left empty on error");
    detour_settings_free(&s);
  }
}

Test(config, yaml_syntax_error_has_position) {
  detour_settings s;
  cr_assert_eq(load_text("retry: { interval: 3m\nlog: x\n", &s), DETOUR_EPARSE);
  char want[256];
  snprintf(want, sizeof want, "%s:", g_path);
  cr_expect(strncmp(g_err, want, strlen(want)) == 0, "%s", g_err);
  cr_expect_not_null(strstr(g_err, "YAML syntax error"), "%s", g_err);
  int line = 0, col = 0;
  cr_expect_eq(sscanf(g_err + strlen(want), "%d:%d:", &line, &col), 2, "%s",
               g_err);
  cr_expect_gt(line, 0);
  cr_expect_gt(col, 0);
}

/* ------------------------------------------------------------------------ */
/* Values                                                                    */

Test(config, durations) {
  static const struct {
    const char *text;
    detour_ms ms;
  } cases[] = {{"500ms", 500},  {"3s", 3000},  {"3m", 180000},
               {"1h", 3600000}, {"30", 30000}, {"0", 0}};
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char yaml[128];
    snprintf(yaml, sizeof yaml, "retry: { interval: %s }\n", cases[i].text);
    detour_settings s;
    cr_assert_eq(load_text(yaml, &s), 0, "%s: %s", cases[i].text, g_err);
    cr_expect_eq(s.cfg.retry_interval, cases[i].ms, "%s", cases[i].text);
    detour_settings_free(&s);
  }
}

Test(config, server_strings_and_priorities) {
  detour_settings s;
  cr_assert_eq(load_text("servers:\n"
                         "  - backup.example.net:2525\n"
                         "  - { host: \"[::1]\", port: 26, priority: 1 }\n"
                         "  - plain.example.net\n",
                         &s),
               0, "%s", g_err);
  cr_assert_eq(s.cfg.nservers, 3);
  cr_expect_str_eq(s.cfg.servers[0].host, "backup.example.net");
  cr_expect_eq(s.cfg.servers[0].port, 2525);
  cr_expect_str_eq(s.cfg.servers[1].host, "::1");
  cr_expect_eq(s.cfg.servers[1].port, 26);
  cr_expect_eq(s.cfg.servers[1].priority, 1);
  cr_expect_str_eq(s.cfg.servers[2].host, "plain.example.net");
  cr_expect_eq(s.cfg.servers[2].port, 25, "port 25 when none is given");
  detour_settings_free(&s);
}

Test(config, parse_server_address) {
  char host[64];
  uint16_t port = 0;
  cr_expect_eq(
      detour_parse_server_address("127.0.0.1:2525", host, sizeof host, &port),
      0);
  cr_expect_str_eq(host, "127.0.0.1");
  cr_expect_eq(port, 2525);
  cr_expect_eq(
      detour_parse_server_address("[::1]:25", host, sizeof host, &port), 0);
  cr_expect_str_eq(host, "::1");
  cr_expect_eq(port, 25);
  cr_expect_eq(detour_parse_server_address("[::1]", host, sizeof host, &port),
               0);
  cr_expect_eq(port, 25);
  const char *bad[] = {"",        ":25",
                       "host:",   "host:0",
                       "h:65536", "h:-1",
                       "h:+25",   "::1",
                       "[::1",    "[]:25",
                       "[::1]x",  "a b:25",
                       "h:25x",   "h:99999999999999999999"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    cr_expect_eq(detour_parse_server_address(bad[i], host, sizeof host, &port),
                 DETOUR_EPARSE, "'%s'", bad[i]);
  char tiny[4];
  cr_expect_eq(
      detour_parse_server_address("example.net:25", tiny, sizeof tiny, &port),
      DETOUR_ERANGE);
}

static detour_failure failure(detour_stage stage, int code,
                              const char *enhanced) {
  detour_failure f;
  memset(&f, 0, sizeof f);
  f.stage = stage;
  f.cond = DETOUR_COND_REPLY;
  f.code = code;
  snprintf(f.enhanced, sizeof f.enhanced, "%s", enhanced);
  f.text = "";
  return f;
}

Test(config, classify_overrides_take_effect) {
  detour_failure disk = failure(DETOUR_STAGE_RCPT, 452, "4.3.1");
  detour_failure nouser = failure(DETOUR_STAGE_RCPT, 550, "5.1.1");
  detour_settings d, s;
  cr_assert_eq(detour_settings_init(&d), 0);
  cr_expect_eq(detour_classify_failure(d.classify, &disk, NULL),
               DETOUR_CLASS_SWITCH, "SPEC default for 452 4.3.1");
  cr_expect_eq(detour_classify_failure(d.classify, &nouser, NULL),
               DETOUR_CLASS_ABORT, "SPEC default for 550 5.1.1 at RCPT");
  detour_settings_free(&d);

  cr_assert_eq(load_text("classify:\n"
                         "  \"452\": TRANSIENT\n"
                         "  \"rcpt:550\": switch\n",
                         &s),
               0, "%s", g_err);
  cr_expect_eq(detour_classify_failure(s.cfg.classify, &disk, NULL),
               DETOUR_CLASS_TRANSIENT);
  cr_expect_eq(detour_classify_failure(s.cfg.classify, &nouser, NULL),
               DETOUR_CLASS_SWITCH);
  detour_failure at_mail = failure(DETOUR_STAGE_MAIL, 550, "5.1.1");
  cr_expect_eq(detour_classify_failure(s.cfg.classify, &at_mail, NULL),
               DETOUR_CLASS_ABORT, "the rcpt: override stays at RCPT");
  detour_settings_free(&s);
}

Test(config, classify_later_key_wins) {
  detour_failure disk = failure(DETOUR_STAGE_RCPT, 452, "4.3.1");
  detour_settings s;
  cr_assert_eq(load_text("classify: { \"4xx\": ABORT, \"452\": TRANSIENT "
                         "}\n",
                         &s),
               0, "%s", g_err);
  cr_expect_eq(detour_classify_failure(s.classify, &disk, NULL),
               DETOUR_CLASS_TRANSIENT);
  detour_failure busy = failure(DETOUR_STAGE_RCPT, 450, "4.2.1");
  cr_expect_eq(detour_classify_failure(s.classify, &busy, NULL),
               DETOUR_CLASS_ABORT);
  detour_settings_free(&s);
}

Test(config, policy_entries_take_effect) {
  detour_settings s;
  cr_assert_eq(load_text("detour:\n"
                         "  rule: any\n"
                         "  default: deny\n"
                         "  senders:    { \"boss@example.com\": allow, "
                         "\"bulk@example.com\": deny }\n"
                         "  recipients: { \"*@partner.example\": allow, "
                         "\"noc@example.com\": deny }\n",
                         &s),
               0, "%s", g_err);
  const detour_policy *p = s.cfg.policy;
  cr_expect(detour_policy_sender_allowed(p, "boss@example.com"));
  cr_expect(detour_policy_sender_allowed(p, "BOSS@example.com"));
  cr_expect_not(detour_policy_sender_allowed(p, "bulk@example.com"));
  cr_expect_not(detour_policy_sender_allowed(p, "other@example.com"),
                "default deny");
  cr_expect(detour_policy_recipient_allowed(p, "ann@partner.example"));
  cr_expect_not(detour_policy_recipient_allowed(p, "noc@example.com"));
  const char *noc[] = {"noc@example.com"};
  const char *partner[] = {"noc@example.com", "ann@partner.example"};
  cr_expect(
      detour_policy_allows(p, "boss@example.com", noc, 1, DETOUR_OVERRIDE_NONE),
      "rule any: the sender is enough");
  cr_expect_not(detour_policy_allows(p, "bulk@example.com", noc, 1,
                                     DETOUR_OVERRIDE_NONE));
  cr_expect(detour_policy_allows(p, "bulk@example.com", partner, 2,
                                 DETOUR_OVERRIDE_NONE),
            "rule any: one recipient is enough");
  detour_settings_free(&s);

  cr_assert_eq(load_text("detour: { rule: all, senders: "
                         "{ \"boss@example.com\": allow } }\n",
                         &s),
               0, "%s", g_err);
  const char *anyone[] = {"x@example.org"};
  cr_expect(detour_policy_allows(s.policy, "boss@example.com", anyone, 1,
                                 DETOUR_OVERRIDE_NONE),
            "rule all, default allow: sender and recipient allowed");
  const char *denied[] = {"x@example.org"};
  detour_settings_free(&s);
  cr_assert_eq(load_text("detour: { rule: all, recipients: "
                         "{ \"x@example.org\": deny } }\n",
                         &s),
               0, "%s", g_err);
  cr_expect_not(detour_policy_allows(s.policy, "boss@example.com", denied, 1,
                                     DETOUR_OVERRIDE_NONE),
                "rule all: a denied recipient forbids");
  detour_settings_free(&s);
}

/* ------------------------------------------------------------------------ */
/* The scenario runner's entry point: a node inside a bigger document.       */

Test(config, load_node_with_prefix) {
  static const char doc_text[] = "name: failover\n"
                                 "client:\n"
                                 "  servers: [\"127.0.0.1:2525\"]\n"
                                 "  retry: { interval: later }\n";
  yaml_parser_t parser;
  yaml_document_t doc;
  cr_assert(yaml_parser_initialize(&parser));
  yaml_parser_set_input_string(&parser, (const unsigned char *)doc_text,
                               strlen(doc_text));
  cr_assert(yaml_parser_load(&parser, &doc));
  yaml_node_t *root = yaml_document_get_root_node(&doc);
  yaml_node_t *client = NULL;
  for (yaml_node_pair_t *p = root->data.mapping.pairs.start;
       p < root->data.mapping.pairs.top; p++) {
    yaml_node_t *k = yaml_document_get_node(&doc, p->key);
    if (strcmp((const char *)k->data.scalar.value, "client") == 0)
      client = yaml_document_get_node(&doc, p->value);
  }
  cr_assert_not_null(client);
  detour_settings s;
  int rc = detour_settings_load_node(&s, &doc, client, "sc.yaml", "client",
                                     g_err, sizeof g_err);
  cr_expect_eq(rc, DETOUR_EPARSE);
  cr_expect_str_eq(g_err, "sc.yaml:4:22: key 'client.retry.interval': "
                          "expected a duration like 3m, got 'later'");
  detour_settings_free(&s);
  cr_assert_eq(detour_settings_load_node(&s, &doc, NULL, "sc.yaml", "client",
                                         g_err, sizeof g_err),
               0, "a missing section gives the defaults");
  cr_expect_eq(s.cfg.nservers, 0);
  detour_settings_free(&s);
  yaml_document_delete(&doc);
  yaml_parser_delete(&parser);
}

/* docs/config.md must not show a configuration that does not load. */
/* R13: per server TLS mode, required by default, CA file, AUTH with the
 * secret from a file (first line) or the environment. */
Test(config, tls_and_auth_keys) {
  char pw[160];
  snprintf(pw, sizeof pw, "%s/pw", g_dir);
  FILE *f = fopen(pw, "w");
  cr_assert_not_null(f);
  fputs("s3cret\nsecond line ignored\n", f);
  fclose(f);
  setenv("DETOUR_TEST_PW", "from-env", 1);
  char yaml[1024];
  snprintf(yaml, sizeof yaml,
           "servers:\n"
           "  - host: mail.example.net\n"
           "    port: 587\n"
           "    tls: starttls\n"
           "    ca_file: /etc/ssl/ca.pem\n"
           "    auth: { user: relay, password_file: %s }\n"
           "  - { host: b.example.net, port: 465, tls: implicit,\n"
           "      auth: { user: u2, password_env: DETOUR_TEST_PW } }\n"
           "  - { host: c.example.net, tls: starttls, tls_required: false }\n"
           "  - c.example.net:25\n",
           pw);
  detour_settings s;
  int rc = load_text(yaml, &s);
  unlink(pw);
  cr_assert_eq(rc, 0, "%s", g_err);
  const detour_server *sv = s.cfg.servers;
  cr_expect_eq(sv[0].tls, DETOUR_TLS_MODE_STARTTLS);
  cr_expect_not(sv[0].tls_optional, "required by default");
  cr_expect_str_eq(sv[0].ca_file, "/etc/ssl/ca.pem");
  cr_expect_str_eq(sv[0].auth_user, "relay");
  cr_expect_str_eq(sv[0].auth_password, "s3cret");
  cr_expect_eq(sv[1].tls, DETOUR_TLS_MODE_IMPLICIT);
  cr_expect_str_eq(sv[1].ca_file, "", "the system store");
  cr_expect_str_eq(sv[1].auth_password, "from-env");
  cr_expect(sv[2].tls_optional);
  cr_expect_eq(sv[3].tls, DETOUR_TLS_MODE_NONE);
  cr_expect_str_eq(sv[3].auth_user, "");
  detour_settings_free(&s);
}

/* Messages about the secret name where it came from, never what it is. */
Test(config, secret_never_in_an_error) {
  char pw[160];
  snprintf(pw, sizeof pw, "%s/pw", g_dir);
  FILE *f = fopen(pw, "w");
  cr_assert_not_null(f);
  for (int i = 0; i < 40; i++)
    fputs("0123456789", f); /* longer than a password may be */
  fclose(f);
  char yaml[512];
  snprintf(yaml, sizeof yaml,
           "servers:\n  - { host: a, auth: { user: u, password_file: %s } }\n",
           pw);
  detour_settings s;
  int rc = load_text(yaml, &s);
  unlink(pw);
  cr_assert_eq(rc, DETOUR_EPARSE);
  cr_expect(strstr(g_err, "is longer than 255 bytes") != NULL, "%s", g_err);
  cr_expect(strstr(g_err, "0123456789") == NULL, "%s", g_err);
}

Test(config, docs_examples_load) {
  setenv("SMTP_PASSWORD", "example", 0); /* the AUTH example names it */
  char docs[512];
  snprintf(docs, sizeof docs, "%s/docs/config.md", DETOUR_SOURCE_DIR);
  FILE *f = fopen(docs, "r");
  if (!f)
    cr_skip_test("no %s", docs);
  char line[1024];
  FILE *out = NULL;
  int blocks = 0, start = 0, lineno = 0;
  while (fgets(line, sizeof line, f)) {
    lineno++;
    if (!out && strncmp(line, "```yaml", 7) == 0) {
      out = fopen(g_path, "w");
      cr_assert_not_null(out);
      start = lineno;
    } else if (out && strncmp(line, "```", 3) == 0) {
      fclose(out);
      out = NULL;
      detour_settings s;
      cr_expect_eq(detour_settings_load_file(&s, g_path, g_err, sizeof g_err),
                   0, "docs/config.md block at line %d: %s", start, g_err);
      detour_settings_free(&s);
      blocks++;
    } else if (out) {
      fputs(line, out);
    }
  }
  fclose(f);
  cr_expect_gt(blocks, 0, "docs/config.md has a YAML example");
}

/* ------------------------------------------------------------------------ */
/* Bounds: what one file can make the loader do.                             */

/* The longest duration is accepted, one millisecond more is not. */
Test(config, duration_maximum_both_sides) {
  detour_settings s;
  cr_assert_eq(load_text("retry: { interval: 720h }\n", &s), 0, "%s", g_err);
  cr_expect_eq(s.cfg.retry_interval, DETOUR_DURATION_MAX);
  detour_settings_free(&s);
  cr_expect_eq(load_text("retry: { interval: 2592000001ms }\n", &s),
               DETOUR_EPARSE);
  cr_expect_not_null(strstr(g_err, "at most 30 days"), "%s", g_err);
}

/* 100,000 detour senders with the repeat at the very end: found, and
 * placed (the check is a hash set; the old one compared every pair and
 * took 41 s here). */
Test(config, repeated_key_among_100k_is_found) {
  FILE *f = fopen(g_path, "w");
  cr_assert_not_null(f);
  fputs("detour:\n  senders:\n", f);
  for (int i = 0; i < 100000; i++)
    fprintf(f, "    \"u%d@x.test\": allow\n", i);
  fputs("    \"u77@x.test\": deny\n", f);
  fclose(f);
  detour_settings s;
  cr_expect_eq(detour_settings_load_file(&s, g_path, g_err, sizeof g_err),
               DETOUR_EPARSE);
  cr_expect_not_null(
      strstr(g_err, ":100003:5: key 'detour.senders.u77@x.test': given twice"),
      "%s", g_err);
}

/* A file over the limit is refused whole, never cut and half-read. */
Test(config, file_over_the_limit_is_refused) {
  FILE *f = fopen(g_path, "w");
  cr_assert_not_null(f);
  fputs("retry: { interval: 3m }\n", f);
  cr_assert_eq(ftruncate(fileno(f), (off_t)DETOUR_YAML_MAX_FILE + 1), 0);
  fclose(f);
  detour_settings s;
  cr_expect_eq(detour_settings_load_file(&s, g_path, g_err, sizeof g_err),
               DETOUR_EPARSE);
  cr_expect_not_null(strstr(g_err, "more than the 16 MiB"), "%s", g_err);
  cr_expect_null(s.classify);
}

Test(config, deep_nesting_is_refused) {
  char text[400] = "race: ";
  for (int i = 0; i < 100; i++)
    strcat(text, "[");
  strcat(text, "\n");
  detour_settings s;
  cr_expect_eq(load_text(text, &s), DETOUR_EPARSE);
  cr_expect_not_null(strstr(g_err, ":1:"), "%s", g_err);
  cr_expect_not_null(strstr(g_err, "nested deeper than 64 levels"), "%s",
                     g_err);
}

/*
 * test_scenario_load.c - the scenario loader (scenarios/src/load.c) and
 * its helpers, without any network: what a good file gives, that every
 * error names file:line:col and the key, offsets and globs, mutations, and
 * that the conformance suite covers every SPEC rule and every fault of the
 * catalogue.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "detour/fake.h"
#include "detour/scenario.h"

static detour_scenario *load(const char *yaml, char *err, size_t len) {
  detour_scenario *s = NULL;
  int rc = detour_scenario_load_string(yaml, strlen(yaml), "t.yaml", NULL, &s,
                                       err, len);
  cr_assert((rc == 0) == (s != NULL));
  return s;
}

#define GOOD                                                                   \
  "name: ok\n"                                                                 \
  "rules: [R1, R5]\n"                                                          \
  "servers:\n"                                                                 \
  "  - { name: a, fault: refuse }\n"                                           \
  "  - { name: b }\n"                                                          \
  "client:\n"                                                                  \
  "  servers: [a, b]\n"                                                        \
  "  retry: { interval: 3m }\n"                                                \
  "messages:\n"                                                                \
  "  - { from: s@x.test, to: r@y.test }\n"                                     \
  "expect:\n"                                                                  \
  "  log:\n"                                                                   \
  "    - { t: 0s, server: a, class: CONNECT }\n"

Test(scenario_load, good_file) {
  char err[512] = "";
  detour_scenario *s = load(GOOD, err, sizeof err);
  cr_assert_not_null(s, "%s", err);
  cr_assert_str_eq(detour_scenario_name(s), "ok");
  cr_assert_eq(detour_scenario_rule_count(s), 2);
  cr_assert_str_eq(detour_scenario_rule(s, 1), "R5");
  detour_scenario_free(s);
}

/* Replace the first occurrence of `from` in GOOD by `to`, then load. */
static void expect_error(const char *from, const char *to, const char *want) {
  char yaml[2048], err[512] = "";
  const char *at = strstr(GOOD, from);
  cr_assert_not_null(at, "%s not in GOOD", from);
  snprintf(yaml, sizeof yaml, "%.*s%s%s", (int)(at - GOOD), GOOD, to,
           at + strlen(from));
  detour_scenario *s = load(yaml, err, sizeof err);
  cr_assert_null(s, "loaded although %s", to);
  cr_assert(strstr(err, want) != NULL, "error '%s' lacks '%s'", err, want);
}

Test(scenario_load, errors_name_file_line_col_and_key) {
  expect_error("class: CONNECT", "clas: CONNECT",
               "t.yaml:13:27: key 'expect.log[0].clas': unknown key");
  expect_error("t: 0s", "t: soon",
               "t.yaml:13:12: key 'expect.log[0].t': expected a time");
  expect_error("class: CONNECT", "class: MAYBE", "expected CONNECT, TRANSIENT");
  expect_error("servers: [a, b]", "servers: [a, c]",
               "no fake server is named 'c'");
  expect_error("rules: [R1, R5]", "rules: [R1, R14]", "R1 .. R13");
  expect_error("retry: { interval: 3m }", "retry: { interval: xyz }",
               "t.yaml:8:22: key 'client.retry.interval'");
  expect_error("name: ok\n", "", "missing 'name'");
  expect_error("  - { name: b }\n", "  - { name: a }\n", "given twice");
  expect_error("fault: refuse", "fault: refus", "t.yaml:4:");
}

Test(scenario_load, server_names_in_expectations_must_exist) {
  char err[512] = "";
  char yaml[2048];
  snprintf(yaml, sizeof yaml, "%s  connections: { z: 1 }\n", GOOD);
  cr_assert_null(load(yaml, err, sizeof err));
  cr_assert(strstr(err, "no fake server is named 'z'"), "%s", err);
}

Test(scenario_load, yaml_syntax_error_has_position) {
  char err[512] = "";
  cr_assert_null(load("name: [x\n", err, sizeof err));
  cr_assert(strncmp(err, "t.yaml:", 7) == 0, "%s", err);
}

Test(scenario_load, offsets) {
  detour_ms t;
  cr_assert_eq(detour_scenario_parse_offset("3m20s", &t), 0);
  cr_assert_eq(t, 200000);
  cr_assert_eq(detour_scenario_parse_offset("1.5s", &t), 0);
  cr_assert_eq(t, 1500);
  cr_assert_eq(detour_scenario_parse_offset("500ms", &t), 0);
  cr_assert_eq(t, 500);
  cr_assert_eq(detour_scenario_parse_offset("30", &t), 0);
  cr_assert_eq(t, 30000);
  cr_assert_eq(detour_scenario_parse_offset("1h", &t), 0);
  cr_assert_eq(t, 3600000);
  cr_assert_lt(detour_scenario_parse_offset("3x", &t), 0);
  cr_assert_lt(detour_scenario_parse_offset("", &t), 0);
  char buf[32];
  const detour_ms cases[] = {0, 1500, 180000, 200000, 3723004};
  const char *want[] = {"0s", "1.500s", "3m", "3m20s", "1h2m3.004s"};
  for (size_t i = 0; i < 5; i++) {
    detour_scenario_format_offset(cases[i], buf, sizeof buf);
    cr_assert_str_eq(buf, want[i]);
    cr_assert_eq(detour_scenario_parse_offset(buf, &t), 0);
    cr_assert_eq(t, cases[i]);
  }
}

Test(scenario_load, glob) {
  cr_assert(detour_scenario_glob("SMTP 421*", "SMTP 421 4.3.2 bye"));
  cr_assert(detour_scenario_glob("*", ""));
  cr_assert(detour_scenario_glob("a?c", "abc"));
  cr_assert(!detour_scenario_glob("SMTP OK", "SMTP OK!"));
  cr_assert(detour_scenario_glob("*a*b*c*", "xxaxxbxxcxx"));
  cr_assert(!detour_scenario_glob("*a*b*c", "xxaxxbxxcxx"));
}

Test(scenario_load, mutations) {
  char err[256];
  cr_assert_eq(detour_scenario_check_mutation("classify:timeout=SWITCH", err,
                                              sizeof err),
               0);
  cr_assert_eq(detour_scenario_check_mutation("detour=deny", err, sizeof err),
               0);
  cr_assert_eq(
      detour_scenario_check_mutation("retry.interval=1m", err, sizeof err), 0);
  cr_assert_lt(detour_scenario_check_mutation("classify:timeout=SOMETIMES", err,
                                              sizeof err),
               0);
  cr_assert_lt(
      detour_scenario_check_mutation("detour=perhaps", err, sizeof err), 0);
  cr_assert_lt(detour_scenario_check_mutation("nonsense", err, sizeof err), 0);
}

/* ------------------------------------------------------------------------ */
/* The suite's coverage                                                      */

static char **suite_files(size_t *n) {
  const char *dir = DETOUR_SOURCE_DIR "/scenarios/conformance";
  char err[256];
  char **files = detour_suite_find(&dir, 1, n, err, sizeof err);
  cr_assert_not_null(files, "%s", err);
  return files;
}

Test(scenario_suite, every_rule_is_checked_by_a_scenario) {
  size_t n;
  char **files = suite_files(&n);
  cr_assert_geq(n, 40, "only %zu scenarios", n);
  bool seen[14] = {false};
  for (size_t i = 0; i < n; i++) {
    char err[512];
    detour_scenario *s;
    cr_assert_eq(detour_scenario_load_file(files[i], NULL, &s, err, sizeof err),
                 0, "%s", err);
    for (size_t k = 0; k < detour_scenario_rule_count(s); k++)
      seen[atoi(detour_scenario_rule(s, k) + 1)] = true;
    detour_scenario_free(s);
  }
  for (int r = 1; r <= 13; r++)
    cr_expect(seen[r], "no scenario cites R%d", r);
  detour_suite_files_free(files, n);
}

static bool file_mentions(const char *path, const char *fault) {
  FILE *f = fopen(path, "r");
  cr_assert_not_null(f);
  char line[1024];
  bool found = false;
  char a[128], b[128];
  snprintf(a, sizeof a, "fault: %s", fault);
  snprintf(b, sizeof b, "name: %s,", fault);
  while (!found && fgets(line, sizeof line, f))
    found = (strstr(line, a) &&
             !strchr("_abcdefghijklmnopqrstuvwxyz",
                     strstr(line, a)[strlen(a)] ? strstr(line, a)[strlen(a)]
                                                : ' ')) ||
            strstr(line, b);
  fclose(f);
  return found;
}

Test(scenario_suite, every_fault_of_the_catalogue_is_used) {
  size_t n;
  char **files = suite_files(&n);
  for (size_t i = 0; i < detour_fake_fault_count(); i++) {
    const char *name = detour_fake_fault_at(i)->name;
    bool used = false;
    for (size_t k = 0; !used && k < n; k++)
      used = file_mentions(files[k], name);
    cr_expect(used, "no conformance scenario uses fault '%s'", name);
  }
  detour_suite_files_free(files, n);
}

/* ------------------------------------------------------------------------ */
/* Bounds: what one scenario file may make the loader do                     */

static void write_file(const char *path, const char *head, size_t pad,
                       const char *tail) {
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f);
  fputs(head, f);
  /* pad bytes of comment lines between the keys */
  char line[81];
  memset(line, '#', 79);
  line[79] = '\n';
  line[80] = '\0';
  for (size_t i = 0; i < pad / 80; i++)
    fputs(line, f);
  fputs(tail, f);
  fclose(f);
}

/* A file the loader cannot read whole is refused, naming the file and the
 * limit: the old loader cut at 64 MiB and a failing `expect:` past the cut
 * went unread, so the scenario passed. Here the expectation past 17 MiB
 * could never hold (99 connections). */
Test(scenario_load, file_too_large_is_refused_not_cut) {
  char path[] = "/tmp/detour__scn_big_XXXXXX";
  int fd = mkstemp(path);
  cr_assert_geq(fd, 0);
  close(fd);
  write_file(path, GOOD, 17u << 20, "  connections: { a: 99 }\n");
  detour_scenario *s = NULL;
  char err[512] = "";
  int rc = detour_scenario_load_file(path, NULL, &s, err, sizeof err);
  unlink(path);
  cr_assert_lt(rc, 0, "a 17 MiB scenario loaded");
  cr_assert_null(s);
  cr_assert(strncmp(err, path, strlen(path)) == 0, "%s", err);
  cr_assert(strstr(err, "more than the 16 MiB"), "%s", err);
}

/* 5 bodies of 16 MiB from a few lines: over the 64 MiB budget of one file,
 * refused at the message that spends it, before allocating it. */
Test(scenario_load, generated_bodies_are_bounded_per_file) {
  char yaml[4096];
  snprintf(yaml, sizeof yaml, "%.*s", (int)(strstr(GOOD, "expect:") - GOOD),
           GOOD);
  for (int i = 0; i < 5; i++)
    strcat(yaml,
           "  - { from: s@x.test, to: r@y.test, body_bytes: 16777216 }\n");
  char err[512] = "";
  cr_assert_null(load(yaml, err, sizeof err));
  cr_assert(strstr(err, "t.yaml:14:49: key 'messages[4].body_bytes': this "
                        "file asks for more than the 64 MiB"),
            "%s", err);
  /* three fit */
  snprintf(yaml, sizeof yaml, "%.*s", (int)(strstr(GOOD, "expect:") - GOOD),
           GOOD);
  for (int i = 0; i < 3; i++)
    strcat(yaml,
           "  - { from: s@x.test, to: r@y.test, body_bytes: 16777216 }\n");
  detour_scenario *s = load(yaml, err, sizeof err);
  cr_assert_not_null(s, "%s", err);
  detour_scenario_free(s);
}

Test(scenario_load, aliases_are_refused_where_they_are) {
  char err[512] = "";
  cr_assert_null(load("name: &n ok\n"
                      "description: *n\n",
                      err, sizeof err));
  cr_assert(strstr(err, "t.yaml:2:14: YAML aliases (*n) are not accepted"),
            "%s", err);
}

/* libyaml gives bad UTF-8 a byte offset only: the message must still say
 * the line and column (it said 1:1). */
Test(scenario_load, bad_utf8_is_placed) {
  char err[512] = "";
  cr_assert_null(load("name: ok\nrules: [R1]\ndescription: \"caf\xe9\"\n", err,
                      sizeof err));
  cr_assert(strncmp(err, "t.yaml:3:19: YAML syntax error: ", 32) == 0, "%s",
            err);
}

/* Durations over 30 days are refused in scenario files as in config. */
Test(scenario_load, times_over_the_maximum_are_refused) {
  expect_error("t: 0s", "t: 721h",
               "key 'expect.log[0].t': expected a time like 0s, 3m, 3m20s or "
               "500ms, at most 30 days");
  expect_error("retry: { interval: 3m }", "retry: { interval: 9999999h }",
               "t.yaml:8:22: key 'client.retry.interval'");
  expect_error("- { name: b }", "- { name: b, idle_timeout: 100000h }",
               "at most 30 days");
}

/* A repeated key is found among many, in linear time, and named with its
 * whole path. */
Test(scenario_load, repeated_key_named_with_its_path) {
  expect_error("  retry: { interval: 3m }\n",
               "  retry: { interval: 3m }\n  retry: { interval: 1m }\n",
               "t.yaml:9:3: key 'client.retry': given twice");
}

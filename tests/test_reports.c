/*
 * test_reports.c - the report writers (reports/): golden files for JSON
 * and JUnit from a fixed, hand-made result set (reports/testing/fixture.c,
 * not the runner), escaping of hostile server text, the certification
 * summary, the HTML page's structure, terminal lines and file writing.
 *
 * Regenerate the golden files after an intended format change:
 *   DETOUR_UPDATE_GOLDEN=1 ctest --test-dir build -R '^test_reports$'
 * and review the diff of tests/golden/ before committing it.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "detour/reports.h"
#include "fixture.h"

#define GOLDEN DETOUR_SOURCE_DIR "/tests/golden/"

typedef int (*writer)(const detour_suite *, const detour_report_meta *, FILE *);

/* The writer's output for the fixture as a malloc'ed string. */
static char *render(writer w, const detour_suite *s,
                    const detour_report_meta *m, size_t *len) {
  char *buf = NULL;
  size_t n = 0;
  FILE *f = open_memstream(&buf, &n);
  cr_assert_not_null(f);
  cr_assert_eq(w(s, m, f), 0);
  fclose(f);
  if (len)
    *len = n;
  return buf;
}

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  char *buf = NULL;
  size_t n = 0;
  FILE *out = open_memstream(&buf, &n);
  char chunk[4096];
  size_t got;
  while ((got = fread(chunk, 1, sizeof chunk, f)) > 0)
    fwrite(chunk, 1, got, out);
  fclose(f);
  fclose(out);
  *len = n;
  return buf;
}

/* Compare byte for byte with the committed .ref, or rewrite it when
 * DETOUR_UPDATE_GOLDEN is set. On a mismatch the output is left next to
 * the build's working directory for `diff`. */
static void golden(const char *name, writer w) {
  detour_suite *s = fixture_suite(0);
  detour_report_meta m = fixture_meta();
  size_t n;
  char *got = render(w, s, &m, &n);
  char path[512];
  snprintf(path, sizeof path, GOLDEN "%s", name);
  const char *update = getenv("DETOUR_UPDATE_GOLDEN");
  if (update && *update && strcmp(update, "0") != 0) {
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot write %s", path);
    fwrite(got, 1, n, f);
    fclose(f);
  }
  size_t want_n = 0;
  char *want = read_file(path, &want_n);
  cr_assert_not_null(want, "missing %s (DETOUR_UPDATE_GOLDEN=1 writes it)",
                     path);
  if (want_n != n || memcmp(want, got, n) != 0) {
    FILE *f = fopen(name, "wb"); /* in the test's working directory */
    if (f) {
      fwrite(got, 1, n, f);
      fclose(f);
    }
    cr_assert_fail("%s differs from the golden file; output written to ./%s "
                   "(diff it; DETOUR_UPDATE_GOLDEN=1 accepts it)",
                   path, name);
  }
  free(want);
  free(got);
  fixture_suite_free(s);
}

Test(golden, json) { golden("report.json.ref", detour_report_json); }
Test(golden, junit) { golden("report.junit.xml.ref", detour_report_junit); }

/* ---- escaping ------------------------------------------------------------ */

static char *one_row_json(const char *result) {
  detour_scenario_row row = {.t = 0,
                             .kind = DETOUR_LOG_SMTP,
                             .recipient = "a@b",
                             .server = "s",
                             .attempt = 1,
                             .result = (char *)result,
                             .detail = ""};
  char *rules[] = {"R3"};
  detour_scenario_result r = {.name = "n",
                              .rules = rules,
                              .nrules = 1,
                              .rows = &row,
                              .nrows = 1,
                              .start = DETOUR_SCENARIO_EPOCH};
  detour_suite s = {.results = &r, .n = 1};
  detour_report_meta m = {.deterministic = true};
  return render(detour_report_json, &s, &m, NULL);
}

Test(escape, json_controls_quotes_and_invalid_utf8) {
  char *j = one_row_json("a\"b\\c\n\r\t\x01\x1b\x7f \xff caf\xc3\xa9 "
                         "\xe2\x80\xa8 \xed\xa0\x80 \xc0\xaf");
  cr_assert_not_null(strstr(j, "\"result\": \"a\\\"b\\\\c\\n\\r\\t\\u0001"
                               "\\u001b\\u007f \xef\xbf\xbd caf\xc3\xa9 "
                               "\\u2028 \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd "
                               "\xef\xbf\xbd\xef\xbf\xbd\""),
                     "%s", j);
  free(j);
}

Test(escape, json_truncated_utf8_at_end) {
  char *j = one_row_json("x\xe2\x80");
  cr_assert_not_null(strstr(j, "\"result\": \"x\xef\xbf\xbd\xef\xbf\xbd\""),
                     "%s", j);
  free(j);
}

static char *junit_with_failure(const char *text) {
  char *fails[] = {(char *)text};
  detour_scenario_result r = {.name = "n\x01<&>",
                              .file = "x/y.yaml",
                              .verdict = DETOUR_VERDICT_FAIL,
                              .failures = fails,
                              .nfailures = 1,
                              .start = DETOUR_SCENARIO_EPOCH};
  detour_suite s = {.results = &r, .n = 1};
  detour_report_meta m = {.deterministic = true};
  return render(detour_report_junit, &s, &m, NULL);
}

Test(escape, xml_has_no_raw_controls_or_cdata_end) {
  char *x = junit_with_failure("]]> \x1b[1m \x0b\r\n\"'<script>");
  cr_assert_null(strstr(x, "]]>"), "%s", x);
  cr_assert_null(strstr(x, "<script>"), "%s", x);
  for (const char *p = x; *p; p++) {
    unsigned char c = (unsigned char)*p;
    cr_assert(c >= 0x20 || c == '\n' || c == '\t', "raw control %02x", c);
  }
  /* ESC as the control picture U+241B, CR as a character reference. */
  cr_assert_not_null(strstr(x, "\xe2\x90\x9b[1m"), "%s", x);
  cr_assert_not_null(strstr(x, "&#13;"), "%s", x);
  cr_assert_not_null(strstr(x, "name=\"n\xe2\x90\x81&lt;&amp;&gt;\""), "%s", x);
  /* A newline in an attribute survives attribute normalisation. */
  free(x);
  x = junit_with_failure("first\nsecond");
  cr_assert_not_null(strstr(x, "message=\"first\""), "%s", x);
  cr_assert_not_null(strstr(x, ">first\nsecond\n</failure>"), "%s", x);
  free(x);
}

/* ---- certification ------------------------------------------------------- */

Test(cert, every_spec_rule_listed_with_status) {
  detour_suite *s = fixture_suite(0);
  detour_cert c;
  cr_assert_eq(detour_cert_compute(s, &c), 0);
  cr_assert_eq(c.n, 14); /* R1..R13, then RFC5321 */
  for (int i = 0; i < 13; i++) {
    char id[8];
    snprintf(id, sizeof id, "R%d", i + 1);
    cr_assert_str_eq(c.rules[i].rule, id);
    cr_assert_str_neq(c.rules[i].title, "");
  }
  cr_assert_str_eq(c.rules[13].rule, "RFC5321");
  cr_assert_eq(c.rules[0].status, DETOUR_CERT_NOT_COVERED); /* R1 */
  cr_assert_eq(c.rules[2].status, DETOUR_CERT_FAIL);        /* R3 */
  cr_assert_eq(c.rules[2].passed, 2);
  cr_assert_eq(c.rules[2].failed, 1);
  cr_assert_eq(c.rules[5].status, DETOUR_CERT_PASS);        /* R6 */
  cr_assert_eq(c.rules[8].status, DETOUR_CERT_NOT_COVERED); /* R9: skip */
  cr_assert_eq(c.rules[8].skipped, 1);
  cr_assert_eq(c.rules[10].status, DETOUR_CERT_PASS); /* R11.greeting */
  cr_assert_eq(c.rules[10].nscenarios, 1);
  cr_assert_str_eq(detour_cert_status_name(DETOUR_CERT_NOT_COVERED),
                   "not covered");
  detour_cert_free(&c);
  fixture_suite_free(s);
}

Test(cert, one_scenario_counts_once_per_rule) {
  char *rules[] = {"R3", "r3.timeout", "R30", "R1x", "R12"};
  detour_scenario_result r = {.name = "n", .rules = rules, .nrules = 5};
  detour_suite s = {.results = &r, .n = 1};
  detour_cert c;
  cr_assert_eq(detour_cert_compute(&s, &c), 0);
  cr_assert_eq(c.rules[2].nscenarios, 1);
  cr_assert_eq(c.rules[2].passed, 1);
  cr_assert_eq(c.rules[0].nscenarios, 1); /* "R1x" counts for R1 */
  cr_assert_eq(c.rules[11].status, DETOUR_CERT_PASS);
  cr_assert_eq(c.n, 14);
  cr_assert_str_eq(c.rules[13].rule, "R30"); /* not a rule of rules.md */
  detour_cert_free(&c);
}

/* ---- links to docs/rules.md --------------------------------------------- */

Test(html, every_rule_links_to_its_section_with_a_sentence) {
  detour_suite *s = fixture_suite(0);
  detour_report_meta m = fixture_meta();
  m.rules_url = "../docs/rules.md";
  char *h = render(detour_report_html, s, &m, NULL);
  for (int i = 1; i <= 13; i++) {
    char href[64];
    snprintf(href, sizeof href, "href=\"../docs/rules.md#r%d\"", i);
    cr_assert_not_null(strstr(h, href), "no link for R%d", i);
  }
  /* the rule table's sentence for R3, and the ids in a scenario's line */
  cr_assert_not_null(strstr(h, "Every failure falls into exactly one class"));
  cr_assert_not_null(strstr(h, "href=\"../docs/rules.md#r11\" title="),
                     "R11.greeting links to R11");
  /* one fixture scenario failed and one could not run: the run fails */
  cr_assert_not_null(strstr(h, "Overall: <span class=\"badge fail\">FAIL"),
                     "%s", h);
  cr_assert_null(strstr(h, "SPEC"), "the report points at docs/rules.md");
  free(h);
  fixture_suite_free(s);
}

Test(html, overall_pass_when_every_scenario_passed) {
  char *rules[] = {"R3"};
  detour_scenario_result r = {
      .name = "n", .rules = rules, .nrules = 1, .verdict = DETOUR_VERDICT_PASS};
  detour_suite s = {.results = &r, .n = 1, .passed = 1};
  detour_report_meta m = {.deterministic = true};
  char *h = render(detour_report_html, &s, &m, NULL);
  cr_assert_not_null(strstr(h, "Overall: <span class=\"badge pass\">PASS"),
                     "%s", h);
  cr_assert_not_null(strstr(h, "1 of 13 rules covered"), "%s", h);
  cr_assert_not_null(strstr(h, "href=\"docs/rules.md#r3\""), "default url");
  free(h);
}

Test(junit, rule_ids_link_to_their_sections) {
  detour_suite *s = fixture_suite(0);
  detour_report_meta m = fixture_meta();
  char *x = render(detour_report_junit, s, &m, NULL);
  cr_assert_not_null(
      strstr(x, "<property name=\"rules\" value=\"docs/rules.md\"/>"));
  cr_assert_not_null(strstr(x, "  R5 docs/rules.md#r5 When detour is allowed"),
                     "%s", x);
  free(x);
  fixture_suite_free(s);
}

/* ---- deterministic switch -------------------------------------------------
 */

Test(meta, deterministic_leaves_out_wall_times_and_addresses) {
  detour_suite *s = fixture_suite(0);
  detour_report_meta m = fixture_meta();
  char *det = render(detour_report_json, s, &m, NULL);
  cr_assert_null(strstr(det, "wall_ms"));
  cr_assert_null(strstr(det, "127.0.0.1"));
  m.deterministic = false;
  char *live = render(detour_report_json, s, &m, NULL);
  cr_assert_not_null(strstr(live, "\"wall_ms\": 12.500"));
  cr_assert_not_null(strstr(live, "\"address\": \"127.0.0.1:40001\""));
  char *junit = render(detour_report_junit, s, &m, NULL);
  cr_assert_not_null(strstr(junit, "time=\"0.013\""), "%s", junit);
  free(det);
  free(live);
  free(junit);
  fixture_suite_free(s);
}

/* ---- HTML ---------------------------------------------------------------- */

static size_t count_of(const char *hay, const char *needle) {
  size_t n = 0;
  for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
    n++;
  return n;
}

Test(html, self_contained_and_escaped) {
  detour_suite *s = fixture_suite(0);
  detour_report_meta m = fixture_meta();
  char *h = render(detour_report_html, s, &m, NULL);
  cr_assert_eq(strncmp(h, "<!DOCTYPE html>", 15), 0);
  cr_assert_not_null(strstr(h, "Content-Security-Policy"));
  cr_assert_eq(count_of(h, "<script"), 1, "only the page's own script");
  cr_assert_null(strstr(h, "<img"));
  cr_assert_null(strstr(h, "http://"));
  cr_assert_null(strstr(h, "https://"));
  cr_assert_null(strstr(h, "\x1b"));
  cr_assert_not_null(strstr(h, "r10-abort-&lt;script&gt;alert(1)"));
  cr_assert_eq(count_of(h, "<details class=\"scn"), 5);
  cr_assert_eq(count_of(h, "<svg class=\"tl\""), 3); /* 3 with servers */
  cr_assert_eq(count_of(h, "<tr class=\"nc\">"), 6); /* R1 R2 R4 R9 R12 R13 */
  cr_assert_not_null(strstr(h, "retry +3m"), "retries are labelled");
  cr_assert_not_null(strstr(h, "2002-07-01 10:15:50.000"), "Fig. 6 times");
  free(h);
  fixture_suite_free(s);
}

Test(html, large_runs_fold_passing_scenarios) {
  detour_suite *s = fixture_suite(200);
  detour_report_meta m = fixture_meta();
  size_t n;
  char *h = render(detour_report_html, s, &m, &n);
  cr_assert_eq(count_of(h, "<details class=\"scn"), 205);
  /* Open: the failing and error ones only. */
  cr_assert_eq(count_of(h, "\" open>"), s->failed, "%zu", s->failed);
  cr_assert_lt(n, 4u << 20, "the page stays small: %zu bytes", n);
  free(h);
  fixture_suite_free(s);
}

/* ---- terminal ------------------------------------------------------------ */

Test(terminal, lines_and_closing_summary) {
  detour_suite *s = fixture_suite(0);
  char *buf = NULL;
  size_t n = 0;
  FILE *f = open_memstream(&buf, &n);
  for (size_t i = 0; i < s->n; i++)
    detour_report_terminal_line(&s->results[i], f, false);
  detour_report_terminal_summary(s, f, false);
  fclose(f);
  cr_assert_not_null(strstr(buf, "PASS  r3-connect-refused-detours  "
                                 "[R3 R5 R8]\n"));
  cr_assert_not_null(strstr(buf, "\n      log row 4: server differs\n"));
  cr_assert_not_null(strstr(buf, "(reply ?\?\?)\n"), "controls made safe");
  cr_assert_null(strstr(buf, "\x1b"));
  const char *last = strstr(buf, "2 passed, 2 failed, 1 skipped\n");
  cr_assert_not_null(last);
  cr_assert_str_eq(last, "2 passed, 2 failed, 1 skipped\n");
  free(buf);

  f = open_memstream(&buf, &n);
  detour_report_terminal_summary(s, f, true);
  fclose(f);
  cr_assert_str_eq(buf,
                   "\033[31m\033[1m2 passed, 2 failed, 1 skipped\033[0m\n");
  free(buf);
  fixture_suite_free(s);
}

Test(terminal, no_skipped_part_when_none) {
  detour_scenario_result r = {.name = "n", .verdict = DETOUR_VERDICT_PASS};
  detour_suite s = {.results = &r, .n = 1};
  char *buf = NULL;
  size_t n = 0;
  FILE *f = open_memstream(&buf, &n);
  detour_report_terminal_summary(&s, f, false);
  fclose(f);
  cr_assert_str_eq(buf, "1 passed, 0 failed\n");
  free(buf);
}

Test(terminal, colour_only_on_a_terminal_without_no_color) {
  char *buf = NULL;
  size_t n = 0;
  FILE *f = open_memstream(&buf, &n);
  cr_assert_not(detour_report_use_color(f));
  fclose(f);
  free(buf);
  setenv("NO_COLOR", "1", 1);
  cr_assert_not(detour_report_use_color(stdout));
  unsetenv("NO_COLOR");
}

/* ---- files --------------------------------------------------------------- */

Test(files, stems_are_safe_file_names) {
  char b[32];
  detour_report_file_stem("r3/../x y<é>", b, sizeof b);
  cr_assert_str_eq(b, "r3_.._x_y____"); /* é is two bytes */
  detour_report_file_stem(".hidden", b, sizeof b);
  cr_assert_str_eq(b, "_hidden");
  detour_report_file_stem("", b, sizeof b);
  cr_assert_str_eq(b, "_");
  detour_report_file_stem("abcdefgh", b, 5);
  cr_assert_str_eq(b, "abcd");
}

Test(files, write_all_into_new_nested_folder) {
  char dir[] = "/tmp/detour-reports-XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  char json[256], junit[256], html[256], err[256] = "";
  snprintf(json, sizeof json, "%s/a/b/%s", dir, DETOUR_REPORT_JSON_NAME);
  snprintf(junit, sizeof junit, "%s/a/b/%s", dir, DETOUR_REPORT_JUNIT_NAME);
  snprintf(html, sizeof html, "%s/a/%s", dir, DETOUR_REPORT_HTML_NAME);
  detour_suite *s = fixture_suite(0);
  detour_report_meta m = fixture_meta();
  detour_report_paths p = {json, junit, html};
  cr_assert_eq(detour_report_write_files(s, &m, &p, err, sizeof err), 0, "%s",
               err);
  struct stat st;
  cr_assert_eq(stat(json, &st), 0);
  cr_assert_gt(st.st_size, 0);
  cr_assert_eq(stat(junit, &st), 0);
  cr_assert_eq(stat(html, &st), 0);
  char tmp[300];
  snprintf(tmp, sizeof tmp, "%s.tmp", json);
  cr_assert_neq(stat(tmp, &st), 0, "no temporary file left");
  /* A path under a regular file cannot be created: the error names it. */
  char bad[300];
  snprintf(bad, sizeof bad, "%s/x/report.json", json);
  detour_report_paths q = {bad, NULL, NULL};
  cr_assert_eq(detour_report_write_files(s, &m, &q, err, sizeof err),
               DETOUR_EIO);
  cr_assert_not_null(strstr(err, json), "%s", err);
  fixture_suite_free(s);
  remove(json);
  remove(junit);
  remove(html);
  char sub[300];
  snprintf(sub, sizeof sub, "%s/a/b", dir);
  rmdir(sub);
  snprintf(sub, sizeof sub, "%s/a", dir);
  rmdir(sub);
  rmdir(dir);
}

/* An external client's run names it everywhere, shows no exit code (the
 * client's word is no evidence), and a --mutate run says so in every
 * format. */
Test(meta, external_client_named_and_no_exit_code) {
  detour_suite *s = fixture_suite(0);
  for (size_t i = 0; i < s->n; i++) {
    s->results[i].client = strdup("pyclient");
    s->results[i].exit_code = -1;
  }
  detour_report_meta m = fixture_meta();
  m.subject = "pyclient 1.0 (external client)";
  char *h = render(detour_report_html, s, &m, NULL);
  char *j = render(detour_report_json, s, &m, NULL);
  char *x = render(detour_report_junit, s, &m, NULL);
  cr_assert_null(strstr(h, "built-in engine"));
  cr_assert_null(strstr(j, "built-in engine"));
  cr_assert_null(strstr(x, "built-in engine"));
  cr_assert_not_null(strstr(h, "pyclient 1.0 (external client)"));
  cr_assert_null(strstr(h, "exit code"), "no exit code shown");
  cr_assert_eq(count_of(j, "\"exit_code\": null"), 5);
  cr_assert_eq(count_of(j, "\"client\": \"pyclient\""), 5);
  free(h);
  free(j);
  free(x);
  fixture_suite_free(s);
}

Test(meta, mutated_run_marked_in_every_format) {
  detour_suite *s = fixture_suite(0);
  for (size_t i = 0; i < s->n; i++)
    s->results[i].mutated = true;
  detour_report_meta m = fixture_meta();
  const char *muts[] = {"classify:timeout=SWITCH"};
  m.mutations = muts;
  m.nmutations = 1;
  char *h = render(detour_report_html, s, &m, NULL);
  char *j = render(detour_report_json, s, &m, NULL);
  char *x = render(detour_report_junit, s, &m, NULL);
  cr_assert_not_null(strstr(h, "<title>MUTATED "));
  cr_assert_not_null(strstr(h, "<h1>MUTATED "));
  cr_assert_not_null(strstr(h, "classify:timeout=SWITCH"));
  cr_assert_eq(count_of(h, "<b>mutated</b>"), 5, "each scenario too");
  cr_assert_not_null(strstr(j, "\"mutated\": true,\n    \"mutations\""));
  cr_assert_eq(count_of(j, "\"mutated\": true"), 6);
  cr_assert_not_null(strstr(x, "<testsuites name=\"MUTATED "));
  cr_assert_not_null(strstr(x, "name=\"mutated\" value=\"true\""));
  free(h);
  free(j);
  free(x);
  fixture_suite_free(s);
}

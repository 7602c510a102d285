/*
 * test_scenario_check.c - the expectation checker on results made by hand
 * (no network): matching rows pass; a wrong time, a wrong server or a
 * missing row fail with a readable diff; the R10 duplicate check; the
 * real-time tolerance. Then one scenario end to end over loopback in
 * virtual time, run twice: the same rows both times.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "detour/scenario.h"

#define SCENARIO                                                               \
  "name: chk\n"                                                                \
  "rules: [R6]\n"                                                              \
  "servers: [ { name: a }, { name: b } ]\n"                                    \
  "messages: [ { from: s@x.test, to: [r@y.test] } ]\n"                         \
  "expect:\n"                                                                  \
  "  status: delivered\n"                                                      \
  "  log:\n"                                                                   \
  "    - { t: 0s, server: a, result: \"SMTP 450*\", class: TRANSIENT }\n"      \
  "    - { t: 3m, server: a, result: SMTP OK }\n"                              \
  "  connect_times: { a: [0s, 3m] }\n"

static detour_scenario *scn(bool realtime) {
  detour_scenario_options o = {.realtime = realtime};
  detour_scenario *s = NULL;
  char err[512] = "";
  int rc = detour_scenario_load_string(SCENARIO, strlen(SCENARIO), "c.yaml", &o,
                                       &s, err, sizeof err);
  cr_assert_eq(rc, 0, "%s", err);
  return s;
}

static void add_row(detour_scenario_result *r, detour_ms t, const char *srv,
                    const char *result, detour_class cls) {
  r->rows = realloc(r->rows, (r->nrows + 1) * sizeof *r->rows);
  detour_scenario_row *w = &r->rows[r->nrows++];
  memset(w, 0, sizeof *w);
  w->t = t;
  w->kind = DETOUR_LOG_SMTP;
  w->recipient = strdup("r@y.test");
  w->server = strdup(srv);
  w->result = strdup(result);
  w->detail = strdup("");
  w->cls = cls;
  w->attempt = 1;
}

/* A result as the runner would fill it for a good run. */
static void good_result(detour_scenario_result *r) {
  memset(r, 0, sizeof *r);
  r->name = strdup("chk");
  r->msgs = calloc(1, sizeof *r->msgs);
  r->nmsgs = 1;
  r->msgs[0].done = true;
  r->msgs[0].status = DETOUR_DONE_DELIVERED;
  add_row(r, 0, "a", "SMTP 450 4.2.1 busy", DETOUR_CLASS_TRANSIENT);
  add_row(r, 180000, "a", "SMTP OK", DETOUR_CLASS_NONE);
  r->servers = calloc(2, sizeof *r->servers);
  r->nservers = 2;
  r->servers[0].name = strdup("a");
  r->servers[1].name = strdup("b");
  r->servers[0].conns = calloc(2, sizeof *r->servers[0].conns);
  r->servers[0].nconns = 2;
  r->servers[0].conns[1].accept_t = 180000;
}

static bool has_failure(const detour_scenario_result *r, const char *text) {
  for (size_t i = 0; i < r->nfailures; i++)
    if (strstr(r->failures[i], text))
      return true;
  return false;
}

Test(scenario_check, matching_result_passes) {
  detour_scenario *s = scn(false);
  detour_scenario_result r;
  good_result(&r);
  detour_scenario_check(s, &r);
  cr_assert_eq(r.verdict, DETOUR_VERDICT_PASS, "%s",
               r.nfailures ? r.failures[0] : "");
  detour_scenario_result_free(&r);
  detour_scenario_free(s);
}

Test(scenario_check, wrong_time_gives_a_diff) {
  detour_scenario *s = scn(false);
  detour_scenario_result r;
  good_result(&r);
  r.rows[1].t = 181000; /* 1 s late: virtual time must be exact */
  r.servers[0].conns[1].accept_t = 181000;
  detour_scenario_check(s, &r);
  cr_assert_eq(r.verdict, DETOUR_VERDICT_FAIL);
  cr_assert(has_failure(&r, "log rows differ"));
  cr_assert(has_failure(&r, "- t=3m "), "%s", r.failures[0]);
  cr_assert(has_failure(&r, "+ t=3m1s "), "%s", r.failures[0]);
  cr_assert(has_failure(&r, "(c.yaml:9:7)"), "%s", r.failures[0]);
  cr_assert(has_failure(&r, "connection times differ"));
  detour_scenario_result_free(&r);
  detour_scenario_free(s);
}

Test(scenario_check, realtime_tolerance) {
  detour_scenario *s = scn(true); /* default tolerance 200ms */
  detour_scenario_result r;
  good_result(&r);
  r.rows[1].t = 180150;
  r.servers[0].conns[1].accept_t = 179900;
  detour_scenario_check(s, &r);
  cr_assert_eq(r.verdict, DETOUR_VERDICT_PASS);
  detour_scenario_result_free(&r);
  good_result(&r);
  r.rows[1].t = 180300;
  detour_scenario_check(s, &r);
  cr_assert_eq(r.verdict, DETOUR_VERDICT_FAIL);
  detour_scenario_result_free(&r);
  detour_scenario_free(s);
}

Test(scenario_check, wrong_server_and_extra_row) {
  detour_scenario *s = scn(false);
  detour_scenario_result r;
  good_result(&r);
  free(r.rows[1].server);
  r.rows[1].server = strdup("b");
  add_row(&r, 180000, "b", "SMTP OK", DETOUR_CLASS_NONE);
  detour_scenario_check(s, &r);
  cr_assert(has_failure(&r, "expected 2, got 3"));
  cr_assert(has_failure(&r, "+ t=3m       msg 0  r@y.test       b"));
  detour_scenario_result_free(&r);
  detour_scenario_free(s);
}

Test(scenario_check, unfinished_message_and_status) {
  detour_scenario *s = scn(false);
  detour_scenario_result r;
  good_result(&r);
  r.msgs[0].done = false;
  detour_scenario_check(s, &r);
  cr_assert(has_failure(&r, "message 0: expected status delivered, but it "
                            "never finished"));
  detour_scenario_result_free(&r);
  detour_scenario_free(s);
}

Test(scenario_check, duplicate_delivery_is_caught) {
  detour_scenario *s = scn(false);
  detour_scenario_result r;
  good_result(&r);
  for (size_t i = 0; i < 2; i++) {
    detour_scenario_server *sv = &r.servers[i];
    sv->msgs = calloc(1, sizeof *sv->msgs);
    sv->nmsgs = 1;
    sv->msgs[0].from = strdup("s@x.test");
    sv->msgs[0].rcpts = calloc(1, sizeof(char *));
    sv->msgs[0].rcpts[0] = strdup("r@y.test");
    sv->msgs[0].nrcpts = 1;
    sv->msgs[0].body = strdup("");
    sv->msgs[0].code = 250;
  }
  detour_scenario_check(s, &r);
  cr_assert(has_failure(&r, "R10: r@y.test was accepted 2 times"));
  detour_scenario_result_free(&r);
  detour_scenario_free(s);
}

/* ------------------------------------------------------------------------ */
/* End to end, over loopback                                                 */

static void run_file(const char *file, detour_scenario_result *r) {
  detour_scenario *s = NULL;
  char err[512] = "";
  cr_assert_eq(detour_scenario_load_file(file, NULL, &s, err, sizeof err), 0,
               "%s", err);
  cr_assert_eq(detour_scenario_run(s, r), 0);
  detour_scenario_free(s);
}

Test(scenario_run, fig6_twice_gives_the_same_rows, .timeout = 60) {
  const char *file = DETOUR_SOURCE_DIR
      "/scenarios/conformance/r6-ten-attempts-exact-times.yaml";
  detour_scenario_result one, two;
  run_file(file, &one);
  run_file(file, &two);
  cr_assert_eq(one.verdict, DETOUR_VERDICT_PASS, "%s",
               one.nfailures ? one.failures[0] : "");
  cr_assert_eq(one.nrows, 11);
  cr_assert_eq(one.rows[9].t, 27 * 60 * 1000); /* the 10th attempt at 27m */
  cr_assert_eq(one.start, DETOUR_SCENARIO_EPOCH);
  cr_assert_eq(one.nrows, two.nrows);
  for (size_t i = 0; i < one.nrows; i++) {
    char a[512], b[512];
    detour_scenario_format_row(&one.rows[i], a, sizeof a);
    detour_scenario_format_row(&two.rows[i], b, sizeof b);
    cr_assert_str_eq(a, b);
  }
  cr_assert_eq(one.exit_code, 75);
  detour_scenario_result_free(&one);
  detour_scenario_result_free(&two);
}

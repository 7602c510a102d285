/*
 * fixture.c - a fixed, hand-made detour_suite for the golden tests of the
 * report writers and for the demo artefacts (HTML in Chromium, JUnit in
 * xmllint). The data looks like what the runner produces but is typed in
 * here, so the golden files change only when a writer changes. Scenario 3
 * carries the hostile strings a fake server can send: markup, quotes,
 * "]]>", ESC sequences, NUL, CR, invalid UTF-8.
 */
#include "fixture.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S(x) ((x) ? strdup(x) : NULL)
#define SEC(n) ((detour_ms)(n)*1000)
#define MIN(n) (SEC(n) * 60)

/* Append one zeroed element to *arr (of *n), returning it. Aborts on out
 * of memory: this is test data. */
static void *grow(void *arrp, size_t *n, size_t size) {
  void **arr = arrp;
  char *p = realloc(*arr, (*n + 1) * size);
  if (!p)
    abort();
  *arr = p;
  memset(p + *n * size, 0, size);
  return p + (*n)++ * size;
}

static char **strv(size_t *n, const char *first, ...) {
  char **v = NULL;
  *n = 0;
  va_list ap;
  va_start(ap, first);
  for (const char *s = first; s; s = va_arg(ap, const char *))
    *(char **)grow(&v, n, sizeof *v) = S(s);
  va_end(ap);
  return v;
}

static detour_scenario_result *scenario(detour_suite *s, const char *name,
                                        const char *file, const char *desc,
                                        detour_verdict v) {
  detour_scenario_result *r = grow(&s->results, &s->n, sizeof *r);
  r->name = S(name);
  r->file = S(file);
  r->description = S(desc);
  r->verdict = v;
  r->start = DETOUR_SCENARIO_EPOCH;
  r->wall_ms = 12.5;
  return r;
}

static void row(detour_scenario_result *r, detour_ms t, detour_log_kind kind,
                size_t msg, const char *rcpt, const char *server, int prio,
                unsigned attempt, const char *result, detour_class cls,
                const char *detail) {
  detour_scenario_row *w = grow(&r->rows, &r->nrows, sizeof *w);
  *w = (detour_scenario_row){t,    kind,    msg,       S(rcpt), S(server),
                             prio, attempt, S(result), cls,     S(detail)};
}

static void rcpt(detour_scenario_result *r, size_t msg, const char *addr,
                 detour_rcpt_outcome o, const char *server, const char *detail,
                 detour_ms t) {
  detour_scenario_rcpt *x = grow(&r->rcpts, &r->nrcpts, sizeof *x);
  *x = (detour_scenario_rcpt){msg, S(addr), o, S(server), S(detail), t};
}

static void msg(detour_scenario_result *r, detour_ms submit,
                detour_done_status st, detour_ms done) {
  detour_scenario_msg *m = grow(&r->msgs, &r->nmsgs, sizeof *m);
  *m = (detour_scenario_msg){submit, true, st, done};
}

static detour_scenario_server *server(detour_scenario_result *r,
                                      const char *name, const char *addr) {
  detour_scenario_server *sv = grow(&r->servers, &r->nservers, sizeof *sv);
  sv->name = S(name);
  sv->address = S(addr);
  return sv;
}

static void conn(detour_scenario_server *sv, unsigned id, detour_ms a,
                 detour_ms c, const char *by) {
  detour_scenario_conn *x = grow(&sv->conns, &sv->nconns, sizeof *x);
  *x = (detour_scenario_conn){id, a, c, by};
}

static void cmd(detour_scenario_server *sv, unsigned c, detour_ms t,
                const char *line) {
  detour_scenario_command *x = grow(&sv->cmds, &sv->ncmds, sizeof *x);
  *x = (detour_scenario_command){c, t, S(line)};
}

static void received(detour_scenario_server *sv, unsigned c, detour_ms t,
                     const char *from, const char *to, const char *body,
                     size_t len, int code) {
  detour_scenario_received *x = grow(&sv->msgs, &sv->nmsgs, sizeof *x);
  x->conn = c;
  x->t = t;
  x->from = S(from);
  x->rcpts = strv(&x->nrcpts, to, (const char *)NULL);
  x->body = malloc(len + 1);
  if (!x->body)
    abort();
  memcpy(x->body, body, len);
  x->body[len] = '\0';
  x->body_len = len;
  x->complete = true;
  x->code = code;
}

static void session(detour_scenario_server *sv, unsigned c, detour_ms t,
                    const char *rcpt_to) {
  cmd(sv, c, t, "EHLO localhost");
  cmd(sv, c, t, "MAIL FROM:<boss@example.com>");
  cmd(sv, c, t, rcpt_to);
  cmd(sv, c, t, "DATA");
  cmd(sv, c, t, "QUIT");
}

/* ---- the fixed scenarios ------------------------------------------------- */

/* Fig. 6: the normal server cannot be reached, the backup takes it. */
static void fig6(detour_suite *s) {
  detour_scenario_result *r = scenario(
      s, "r3-connect-refused-detours", "scenarios/conformance/r3_fig6.yaml",
      "Fig. 6: the normal server refuses the connection; the first backup "
      "is tried at once and takes the message (a slow server: 20 s)",
      DETOUR_VERDICT_PASS);
  r->rules = strv(&r->nrules, "R3", "R5", "R8", (const char *)NULL);
  const char *to[] = {"abc@muratec.co.jp", "def@muratec.co.jp"};
  for (int i = 0; i < 2; i++)
    row(r, 0, DETOUR_LOG_CONNECT, 0, to[i], "primary", 1, 1, "TCP error",
        DETOUR_CLASS_CONNECT, "connect_refused");
  for (int i = 0; i < 2; i++)
    row(r, SEC(20), DETOUR_LOG_SMTP, 0, to[i], "backup", 2, 1, "SMTP OK",
        DETOUR_CLASS_NONE, "");
  for (int i = 0; i < 2; i++)
    rcpt(r, 0, to[i], DETOUR_RCPT_DELIVERED, "backup", "SMTP OK", SEC(20));
  msg(r, 0, DETOUR_DONE_DELIVERED, SEC(20));
  server(r, "primary", "127.0.0.1:40001");
  server(r, "backup", "127.0.0.1:40002");
  detour_scenario_server *b = &r->servers[1];
  conn(b, 1, 0, SEC(20), "client");
  session(b, 1, SEC(5), "RCPT TO:<abc@muratec.co.jp>");
  static const char body[] = "Subject: Fig. 6\r\n\r\nhello\r\n";
  received(b, 1, SEC(20), "boss@example.com", "abc@muratec.co.jp", body,
           sizeof body - 1, 250);
  r->end_t = SEC(20);
}

/* TRANSIENT twice, then success on the same server after two waits. */
static void transient(detour_suite *s) {
  detour_scenario_result *r = scenario(
      s, "r6-transient-retries-same-server",
      "scenarios/conformance/r6_transient.yaml",
      "no greeting, then 451 at RCPT: wait 3m and reconnect to the same "
      "server each time; detour denied",
      DETOUR_VERDICT_PASS);
  r->rules = strv(&r->nrules, "R3", "R6", "R11.greeting", "RFC5321",
                  (const char *)NULL);
  const char *to = "abc@muratec.co.jp";
  row(r, MIN(5), DETOUR_LOG_SMTP, 0, to, "primary", 1, 1, "SMTP timeout",
      DETOUR_CLASS_TRANSIENT, "greeting: no reply in 5m");
  row(r, MIN(8), DETOUR_LOG_SMTP, 0, to, "primary", 1, 2,
      "SMTP 451 4.3.0 try later", DETOUR_CLASS_TRANSIENT,
      "rcpt: 451 4.3.0 try later");
  row(r, MIN(11), DETOUR_LOG_SMTP, 0, to, "primary", 1, 3, "SMTP OK",
      DETOUR_CLASS_NONE, "");
  rcpt(r, 0, to, DETOUR_RCPT_DELIVERED, "primary", "SMTP OK", MIN(11));
  msg(r, 0, DETOUR_DONE_DELIVERED, MIN(11));
  server(r, "primary", "127.0.0.1:40011");
  server(r, "backup", "127.0.0.1:40012");
  detour_scenario_server *a = &r->servers[0]; /* grow() moves them */
  conn(a, 1, 0, MIN(5), "client");
  conn(a, 2, MIN(8), MIN(8), "client");
  cmd(a, 2, MIN(8), "EHLO localhost");
  cmd(a, 2, MIN(8), "MAIL FROM:<boss@example.com>");
  cmd(a, 2, MIN(8), "RCPT TO:<abc@muratec.co.jp>");
  cmd(a, 2, MIN(8), "QUIT");
  conn(a, 3, MIN(11), MIN(11), "client");
  session(a, 3, MIN(11), "RCPT TO:<abc@muratec.co.jp>");
  static const char body[] = "Subject: retry\r\n\r\nthird time\r\n";
  received(a, 3, MIN(11), "boss@example.com", to, body, sizeof body - 1, 250);
  r->end_t = MIN(11);
}

/* A failing scenario whose server sends everything a writer must escape. */
static void hostile(detour_suite *s) {
  detour_scenario_result *r =
      scenario(s, "r10-abort-<script>alert(1)</script>",
               "scenarios/conformance/r10_abort.yaml",
               "550 for one recipient, \"the other\" goes on & is delivered",
               DETOUR_VERDICT_FAIL);
  r->rules = strv(&r->nrules, "R3", "R10", "R7", (const char *)NULL);
  r->exit_code = 67;
  const char *bad = "x@y.test\"><img src=x onerror=alert(1)>";
  const char *evil = "SMTP 550 5.1.1 \x1b[31mno\x1b[0m such user ]]> \xff\xfe "
                     "caf\xc3\xa9 \xe2\x80\xa8 <b>&amp;</b>";
  row(r, 0, DETOUR_LOG_SMTP, 0, bad, "primary", 1, 1, evil, DETOUR_CLASS_ABORT,
      "rcpt: 550 5.1.1 multi\nline\r\nreply\ttab");
  row(r, 0, DETOUR_LOG_SMTP, 0, "ok@y.test", "primary", 1, 1,
      "SMTP 421 4.3.2 shutting down", DETOUR_CLASS_SWITCH, "eod: 421");
  row(r, 0, DETOUR_LOG_WARNING, 0, "ok@y.test", "primary", 1, 1,
      "configuration error", DETOUR_CLASS_NONE, "limit reached");
  row(r, SEC(90), DETOUR_LOG_SMTP, 0, "ok@y.test", "backup", 2, 1, "SMTP OK",
      DETOUR_CLASS_NONE, "");
  r->warnings = calloc(1, sizeof *r->warnings);
  r->nwarnings = 1;
  r->warnings[0].t = 0;
  r->warnings[0].text = S("configuration error: primary reached 1 attempt");
  rcpt(r, 0, bad, DETOUR_RCPT_ABORTED, NULL, evil, 0);
  rcpt(r, 0, "ok@y.test", DETOUR_RCPT_DELIVERED, "backup", "SMTP OK", SEC(90));
  msg(r, 0, DETOUR_DONE_ABORTED, SEC(90));
  r->failures = strv(&r->nfailures,
                     "log row 4: server differs\n"
                     "- expected: +1m30s ok@y.test backup SMTP OK\n"
                     "+ got:      +1m30s ok@y.test \"backup\" SMTP OK",
                     "server primary: expected 1 message, saw 0 "
                     "(reply \x01\x02\x7f)",
                     (const char *)NULL);
  detour_scenario_server *a = server(r, "primary", "127.0.0.1:40021");
  conn(a, 1, 0, 0, "server");
  cmd(a, 1, 0, "EHLO localhost");
  cmd(a, 1, 0, "RCPT TO:<x@y.test\"><img src=x onerror=alert(1)>>");
  cmd(a, 1, 0, "DATA\x1b]0;pwned\x07");
  detour_scenario_server *b = server(r, "backup", "127.0.0.1:40022");
  conn(b, 1, SEC(90), DETOUR_NO_DEADLINE, NULL);
  static const char body[] = "Subject: </pre><script>x()</script>\r\n\r\n"
                             "NUL:\0: ]]> \xc0\xaf\r\n";
  received(b, 1, SEC(90), "boss@example.com", "ok@y.test", body,
           sizeof body - 1, 250);
  r->end_t = SEC(90);
}

static void skipped_and_error(detour_suite *s) {
  detour_scenario_result *r = scenario(
      s, "netsim-link-fails-at-2s", "scenarios/netsim/link_fails.yaml",
      "ns-3: the primary's link fails at t = 2 s", DETOUR_VERDICT_SKIP);
  r->rules = strv(&r->nrules, "R9", (const char *)NULL);
  r->realtime = true;
  r->failures = strv(&r->nfailures, "realtime only: not run in virtual time",
                     (const char *)NULL);
  r = scenario(s, "broken", "scenarios/conformance/broken.yaml", NULL,
               DETOUR_VERDICT_ERROR);
  r->failures = strv(&r->nfailures,
                     "scenarios/conformance/broken.yaml:3:5: unknown key "
                     "\"servrs\"",
                     (const char *)NULL);
  r->exit_code = 78;
}

/* ---- synthetic scenarios (the 200-scenario page) ------------------------- */

static void synthetic(detour_suite *s, size_t i) {
  char name[64], file[96];
  snprintf(name, sizeof name, "synthetic-%03zu", i);
  snprintf(file, sizeof file, "scenarios/conformance/synthetic_%03zu.yaml", i);
  bool fail = i % 37 == 5;
  detour_scenario_result *r =
      scenario(s, name, file, "generated for the report's size check",
               fail ? DETOUR_VERDICT_FAIL : DETOUR_VERDICT_PASS);
  char rule[8];
  snprintf(rule, sizeof rule, "R%zu", i % 11 + 1); /* R12 stays uncovered */
  r->rules = strv(&r->nrules, rule, "R8", (const char *)NULL);
  if (fail)
    r->failures = strv(&r->nfailures,
                       "expected SMTP OK on backup, got "
                       "TCP error",
                       (const char *)NULL);
  detour_ms wait = SEC(60 + (detour_ms)(i % 5) * 60);
  server(r, "primary", "127.0.0.1:1");
  server(r, "backup", "127.0.0.1:2");
  detour_scenario_server *a = &r->servers[0], *b = &r->servers[1];
  row(r, 0, DETOUR_LOG_SMTP, 0, "r@y.test", "primary", 1, 1,
      "SMTP 451 4.3.0 later", DETOUR_CLASS_TRANSIENT, "mail: 451");
  conn(a, 1, 0, 0, "client");
  row(r, wait, DETOUR_LOG_SMTP, 0, "r@y.test", "primary", 1, 2,
      "SMTP 421 4.3.2 bye", DETOUR_CLASS_SWITCH, "greeting: 421");
  conn(a, 2, wait, wait, "server");
  row(r, wait, DETOUR_LOG_SMTP, 0, "r@y.test", "backup", 2, 1,
      fail ? "TCP error" : "SMTP OK",
      fail ? DETOUR_CLASS_CONNECT : DETOUR_CLASS_NONE, "");
  if (!fail)
    conn(b, 1, wait, wait, "client");
  msg(r, 0, fail ? DETOUR_DONE_DEFERRED : DETOUR_DONE_DELIVERED, wait);
  r->end_t = wait;
}

detour_suite *fixture_suite(size_t extra) {
  detour_suite *s = calloc(1, sizeof *s);
  if (!s)
    return NULL;
  fig6(s);
  transient(s);
  hostile(s);
  skipped_and_error(s);
  for (size_t i = 0; i < extra; i++)
    synthetic(s, i);
  for (size_t i = 0; i < s->n; i++) {
    detour_verdict v = s->results[i].verdict;
    s->passed += v == DETOUR_VERDICT_PASS;
    s->skipped += v == DETOUR_VERDICT_SKIP;
    s->failed += v == DETOUR_VERDICT_FAIL || v == DETOUR_VERDICT_ERROR;
  }
  s->wall_ms = 99.0;
  return s;
}

void fixture_suite_free(detour_suite *s) {
  if (!s)
    return;
  for (size_t i = 0; i < s->n; i++)
    detour_scenario_result_free(&s->results[i]);
  free(s->results);
  free(s);
}

detour_report_meta fixture_meta(void) {
  return (detour_report_meta){.title = "detour conformance (fixture)",
                              .version = "0.1.0",
                              .started = "2002-07-01T10:15:30Z",
                              .mode = "virtual",
                              .command = "detour run scenarios/conformance "
                                         "--report-dir out",
                              .subject = NULL,
                              .deterministic = true};
}

/*
 * engine_harness.h - drive the sans-I/O engine with a fake clock and turn
 * its actions into short text lines that a test compares one by one.
 *
 * Line formats (times relative to T0, in ms):
 *   connect #ID HOST:PORT
 *   send #ID TEXT            (CR and LF shown as \r \n)
 *   close #ID
 *   log +T KIND RCPT SERVER RESULT CLASS aN
 *   warn TEXT
 *   rcpt RCPT OUTCOME sN     (N: priority-order index, -1 for none)
 *   done STATUS
 *   tls #ID NAME ca=FILE     (FILE empty: the system store)
 */
#ifndef DETOUR_TESTS_ENGINE_HARNESS_H
#define DETOUR_TESTS_ENGINE_HARNESS_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "detour/detour.h"

#define T0 ((detour_ms)1000000000)
#define MAX_LINES 512

typedef struct {
  char line[MAX_LINES][400];
  size_t n;
} action_lines;

static void escape_bytes(const char *p, size_t n, char *out, size_t cap) {
  size_t o = 0;
  for (size_t i = 0; i < n && o + 3 < cap; i++) {
    if (p[i] == '\r') {
      out[o++] = '\\';
      out[o++] = 'r';
    } else if (p[i] == '\n') {
      out[o++] = '\\';
      out[o++] = 'n';
    } else {
      out[o++] = p[i];
    }
  }
  out[o] = '\0';
}

static void format_action(const detour_action *a, char *buf, size_t len) {
  char esc[360];
  switch (a->type) {
  case DETOUR_ACT_CONNECT:
    snprintf(buf, len, "connect #%u %s:%u", a->conn, a->u.connect.host,
             (unsigned)a->u.connect.port);
    break;
  case DETOUR_ACT_SEND:
    escape_bytes(a->u.send.data, a->u.send.len, esc, sizeof esc);
    snprintf(buf, len, "send #%u %s", a->conn, esc);
    break;
  case DETOUR_ACT_CLOSE:
    snprintf(buf, len, "close #%u", a->conn);
    break;
  case DETOUR_ACT_LOG:
    snprintf(buf, len, "log +%lld %s %s %s %s %s a%u",
             (long long)(a->u.log.time - T0),
             detour_log_kind_name(a->u.log.kind), a->u.log.recipient,
             a->u.log.server, a->u.log.result, detour_class_name(a->u.log.cls),
             a->u.log.attempt);
    break;
  case DETOUR_ACT_WARN:
    snprintf(buf, len, "warn %s", a->u.warn.text);
    break;
  case DETOUR_ACT_RCPT_RESULT:
    snprintf(buf, len, "rcpt %s %s s%d", a->u.rcpt.recipient,
             detour_rcpt_outcome_name(a->u.rcpt.outcome), a->u.rcpt.server);
    break;
  case DETOUR_ACT_DONE:
    snprintf(buf, len, "done %s", detour_done_status_name(a->u.done.status));
    break;
  case DETOUR_ACT_ERROR:
    snprintf(buf, len, "error %s", detour_err_name(a->u.error.code));
    break;
  case DETOUR_ACT_TLS_START:
    snprintf(buf, len, "tls #%u %s ca=%s", a->conn, a->u.tls.server_name,
             a->u.tls.ca_file);
    break;
  }
}

/* Pop every queued action into lines. */
static void drain(detour_engine *e, action_lines *out) {
  out->n = 0;
  detour_action a;
  while (detour_engine_next_action(e, &a) == 1) {
    cr_assert_lt(out->n, MAX_LINES, "too many actions");
    format_action(&a, out->line[out->n], sizeof out->line[0]);
    out->n++;
  }
}

static void dump_lines(const action_lines *got) {
  for (size_t i = 0; i < got->n; i++)
    cr_log_info("  [%zu] %s", i, got->line[i]);
}

/* The queued actions must be exactly `want` (NULL-terminated). A '*' in
 * a line of want matches any run of characters (detour_glob). */
static void expect_actions(detour_engine *e, const char *const *want) {
  action_lines got;
  drain(e, &got);
  size_t n = 0;
  while (want[n])
    n++;
  for (size_t i = 0; i < n && i < got.n; i++) {
    bool ok = strchr(want[i], '*') ? detour_glob(want[i], got.line[i], 0)
                                   : strcmp(got.line[i], want[i]) == 0;
    if (!ok)
      dump_lines(&got);
    cr_assert(ok, "action %zu: got \"%s\", want \"%s\"", i, got.line[i],
              want[i]);
  }
  if (got.n != n)
    dump_lines(&got);
  cr_assert_eq(got.n, n, "got %zu actions, want %zu", got.n, n);
}

#define EXPECT(e, ...)                                                         \
  expect_actions((e), (const char *const[]){__VA_ARGS__, NULL})
#define EXPECT_NONE(e) expect_actions((e), (const char *const[]){NULL})

static void reply(detour_engine *e, unsigned conn, detour_ms t,
                  const char *text) {
  detour_engine_on_data(e, conn, t, text, strlen(text));
}

#endif

/*
 * check.c - compares what a run did with what the scenario expects, and
 * says how they differ in words a reader can act on: the log rows as a
 * diff (expected rows marked '-', actual rows '+'), the server that took
 * each recipient, the times of connections, what each fake server saw.
 *
 * Needs no network: tests/test_scenario_check.c feeds it results by hand.
 * In virtual time every time must be exact; in real time it may differ by
 * the scenario's tolerance.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "scn_internal.h"

void detour__scn_fail(detour_scenario_result *r, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0)
    return;
  char *s = malloc((size_t)n + 1);
  if (!s)
    return;
  va_start(ap, fmt);
  vsnprintf(s, (size_t)n + 1, fmt, ap);
  va_end(ap);
  char **f = realloc(r->failures, (r->nfailures + 1) * sizeof *f);
  if (!f) {
    free(s);
    return;
  }
  r->failures = f;
  r->failures[r->nfailures++] = s;
}

static bool time_ok(const detour_scenario *s, detour_ms want, detour_ms got) {
  if (!s->realtime)
    return want == got;
  detour_ms d = want > got ? want - got : got - want;
  return d <= s->expect.tolerance;
}

static const char *off(detour_ms t, char *buf, size_t len) {
  detour_scenario_format_offset(t, buf, len);
  return buf;
}

static bool glob_or_any(const char *pattern, const char *text) {
  return !pattern || detour_scenario_glob(pattern, text ? text : "");
}

/* ------------------------------------------------------------------------ */
/* Messages, exit status, recipients                                         */

static void check_status(const detour_scenario *s, detour_scenario_result *r) {
  const detour__scn_expect *x = &s->expect;
  for (size_t i = 0; i < x->nstatus && i < r->nmsgs; i++) {
    const detour_scenario_msg *m = &r->msgs[i];
    const char *want =
        detour_done_status_name((detour_done_status)x->status[i]);
    if (!m->done)
      detour__scn_fail(
          r, "message %zu: expected status %s, but it never finished", i, want);
    else if ((int)m->status != x->status[i])
      detour__scn_fail(r, "message %zu: expected status %s, got %s", i, want,
                       detour_done_status_name(m->status));
  }
  if (x->exit_code >= 0 && x->exit_code != r->exit_code)
    detour__scn_fail(r, "exit status: expected %d, got %d", x->exit_code,
                     r->exit_code);
}

static void check_one_rcpt(detour_scenario_result *r,
                           const detour__scn_rcpt_expect *e,
                           const detour_scenario_rcpt *got) {
  const char *srv = got->server ? got->server : "none";
  if (e->outcome >= 0 && (int)got->outcome != e->outcome)
    detour__scn_fail(r, "recipient %s (message %zu): expected %s, got %s (%s)",
                     e->recipient, got->message,
                     detour_rcpt_outcome_name((detour_rcpt_outcome)e->outcome),
                     detour_rcpt_outcome_name(got->outcome), got->detail);
  if (e->server && strcmp(e->server, srv) != 0)
    detour__scn_fail(r,
                     "recipient %s (message %zu): expected server %s, got %s",
                     e->recipient, got->message, e->server, srv);
}

static void check_rcpts(const detour_scenario *s, detour_scenario_result *r) {
  for (size_t i = 0; i < s->expect.nrcpts; i++) {
    const detour__scn_rcpt_expect *e = &s->expect.rcpts[i];
    size_t seen = 0;
    for (size_t k = 0; k < r->nrcpts; k++) {
      const detour_scenario_rcpt *got = &r->rcpts[k];
      if (strcasecmp(got->recipient, e->recipient) != 0 ||
          (e->message >= 0 && got->message != (size_t)e->message))
        continue;
      seen++;
      check_one_rcpt(r, e, got);
    }
    if (!seen)
      detour__scn_fail(r, "recipient %s: no outcome was reported",
                       e->recipient);
  }
}

/* ------------------------------------------------------------------------ */
/* Log rows: a diff                                                          */

static bool row_matches(const detour_scenario *s,
                        const detour__scn_row_expect *e,
                        const detour_scenario_row *a) {
  return (!e->has_t || time_ok(s, e->t, a->t)) &&
         glob_or_any(e->recipient, a->recipient) &&
         glob_or_any(e->server, a->server) &&
         glob_or_any(e->result, a->result) &&
         glob_or_any(e->detail, a->detail) &&
         (e->cls < 0 || e->cls == (int)a->cls) &&
         (e->attempt < 0 || (unsigned)e->attempt == a->attempt) &&
         (e->kind < 0 || e->kind == (int)a->kind) &&
         (e->message < 0 || (size_t)e->message == a->message);
}

static void format_expected(const detour__scn_row_expect *e, char *buf,
                            size_t len) {
  char t[32] = "*", msg[16] = "*", att[16] = "*";
  if (e->has_t)
    detour_scenario_format_offset(e->t, t, sizeof t);
  if (e->message >= 0)
    snprintf(msg, sizeof msg, "%d", e->message);
  if (e->attempt >= 0)
    snprintf(att, sizeof att, "%d", e->attempt);
  const char *cls = e->cls < 0 ? "*" : detour_class_name((detour_class)e->cls);
  if (e->cls == DETOUR_CLASS_NONE)
    cls = "";
  snprintf(buf, len, "t=%-8s msg %s  %-14s %-4s %-34s %s%s#%s%s%s%s%s", t, msg,
           e->recipient ? e->recipient : "*", e->server ? e->server : "*",
           e->result ? e->result : "*", cls, *cls ? " " : "", att,
           e->kind >= 0 ? " " : "",
           e->kind >= 0 ? detour_log_kind_name((detour_log_kind)e->kind) : "",
           e->detail ? "  detail " : "", e->detail ? e->detail : "");
}

/* Longest common subsequence under row_matches, then a unified-style
 * listing: ' ' matched, '-' expected but missing, '+' there but not
 * expected. Rows are few (hundreds at most), so O(n*m) is fine. */
static void diff_rows(const detour_scenario *s, detour_scenario_result *r) {
  const detour__scn_expect *x = &s->expect;
  size_t n = x->nlog, m = r->nrows;
  unsigned *L = calloc((n + 1) * (m + 1), sizeof *L);
  detour__scn_buf b = {0};
  if (!L) {
    detour__scn_fail(r, "log rows differ (out of memory for the diff)");
    return;
  }
#define AT(i, j) L[(i) * (m + 1) + (j)]
  for (size_t i = n; i-- > 0;)
    for (size_t j = m; j-- > 0;)
      AT(i, j) =
          row_matches(s, &x->log[i], &r->rows[j])
              ? AT(i + 1, j + 1) + 1
              : (AT(i + 1, j) > AT(i, j + 1) ? AT(i + 1, j) : AT(i, j + 1));
  detour__scn_buf_add(&b,
                      "log rows differ: expected %zu, got %zu ('-' expected, "
                      "'+' actual):",
                      n, m);
  size_t i = 0, j = 0;
  char line[768];
  while (i < n || j < m) {
    if (i < n && j < m && row_matches(s, &x->log[i], &r->rows[j])) {
      detour_scenario_format_row(&r->rows[j], line, sizeof line);
      detour__scn_buf_add(&b, "\n    %s", line);
      i++, j++;
    } else if (i < n && (j == m || AT(i + 1, j) >= AT(i, j + 1))) {
      format_expected(&x->log[i], line, sizeof line);
      detour__scn_buf_add(&b, "\n  - %s   (%s:%d:%d)", line, s->file,
                          x->log[i].line, x->log[i].col);
      i++;
    } else {
      detour_scenario_format_row(&r->rows[j], line, sizeof line);
      detour__scn_buf_add(&b, "\n  + %s", line);
      j++;
    }
  }
#undef AT
  free(L);
  char *text = detour__scn_buf_take(&b);
  if (text)
    detour__scn_fail(r, "%s", text);
  free(text);
}

static void check_log(const detour_scenario *s, detour_scenario_result *r) {
  const detour__scn_expect *x = &s->expect;
  if (!x->has_log)
    return;
  bool same = x->nlog == r->nrows;
  for (size_t i = 0; same && i < x->nlog; i++)
    same = row_matches(s, &x->log[i], &r->rows[i]);
  if (!same)
    diff_rows(s, r);
}

static void check_warnings(const detour_scenario *s,
                           detour_scenario_result *r) {
  const detour__scn_expect *x = &s->expect;
  if (!x->has_warnings)
    return;
  bool same = x->nwarnings == r->nwarnings;
  for (size_t i = 0; same && i < x->nwarnings; i++)
    same = detour_scenario_glob(x->warnings[i], r->warnings[i].text);
  if (same)
    return;
  detour__scn_buf b = {0};
  detour__scn_buf_add(&b, "warnings differ: expected %zu, got %zu",
                      x->nwarnings, r->nwarnings);
  for (size_t i = 0; i < x->nwarnings; i++)
    detour__scn_buf_add(&b, "\n  - %s", x->warnings[i]);
  for (size_t i = 0; i < r->nwarnings; i++)
    detour__scn_buf_add(&b, "\n  + %s", r->warnings[i].text);
  char *text = detour__scn_buf_take(&b);
  if (text)
    detour__scn_fail(r, "%s", text);
  free(text);
}

/* ------------------------------------------------------------------------ */
/* What the fake servers saw                                                 */

static void check_times(const detour_scenario *s, detour_scenario_result *r,
                        const detour__scn_server_expect *e,
                        const detour_scenario_server *got) {
  bool same = e->nconnect_times == got->nconns;
  for (size_t i = 0; same && i < got->nconns; i++)
    same = time_ok(s, e->connect_times[i], got->conns[i].accept_t);
  if (same)
    return;
  detour__scn_buf b = {0};
  char t[32];
  detour__scn_buf_add(
      &b, "server %s: connection times differ\n  expected:", got->name);
  for (size_t i = 0; i < e->nconnect_times; i++)
    detour__scn_buf_add(&b, " %s", off(e->connect_times[i], t, sizeof t));
  detour__scn_buf_add(&b, "\n  actual:  ");
  for (size_t i = 0; i < got->nconns; i++)
    detour__scn_buf_add(&b, " %s", off(got->conns[i].accept_t, t, sizeof t));
  char *text = detour__scn_buf_take(&b);
  if (text)
    detour__scn_fail(r, "%s", text);
  free(text);
}

static bool rcpts_equal(const detour__scn_received_expect *e,
                        const detour_scenario_received *m) {
  if (!e->has_to)
    return true;
  if (e->nto != m->nrcpts)
    return false;
  for (size_t i = 0; i < e->nto; i++)
    if (strcasecmp(e->to[i], m->rcpts[i]) != 0)
      return false;
  return true;
}

static void describe_body(detour__scn_buf *b, const char *label, const char *p,
                          size_t n) {
  detour__scn_buf_add(b, "\n    %s \"", label);
  detour__scn_buf_add_escaped(b, p, n);
  detour__scn_buf_add(b, "\" (%zu bytes)", n);
}

static void check_received_one(detour_scenario_result *r, const char *srv,
                               size_t i, const detour__scn_received_expect *e,
                               const detour_scenario_received *m) {
  if (e->from && strcasecmp(e->from, m->from) != 0)
    detour__scn_fail(
        r, "server %s, message %zu: expected MAIL FROM <%s>, got <%s>", srv, i,
        e->from, m->from);
  if (!rcpts_equal(e, m)) {
    detour__scn_buf b = {0};
    detour__scn_buf_add(
        &b, "server %s, message %zu: recipients differ\n  expected:", srv, i);
    for (size_t k = 0; k < e->nto; k++)
      detour__scn_buf_add(&b, " %s", e->to[k]);
    detour__scn_buf_add(&b, "\n  actual:  ");
    for (size_t k = 0; k < m->nrcpts; k++)
      detour__scn_buf_add(&b, " %s", m->rcpts[k]);
    char *text = detour__scn_buf_take(&b);
    if (text)
      detour__scn_fail(r, "%s", text);
    free(text);
  }
  if (e->body && (e->body_len != m->body_len ||
                  memcmp(e->body, m->body, m->body_len) != 0)) {
    detour__scn_buf b = {0};
    size_t at = 0;
    while (at < e->body_len && at < m->body_len && e->body[at] == m->body[at])
      at++;
    detour__scn_buf_add(&b, "server %s, message %zu: body differs at byte %zu",
                        srv, i, at);
    describe_body(&b, "expected", e->body, e->body_len);
    describe_body(&b, "actual:  ", m->body, m->body_len);
    char *text = detour__scn_buf_take(&b);
    if (text)
      detour__scn_fail(r, "%s", text);
    free(text);
  }
  if (e->complete >= 0 && e->complete != (int)m->complete)
    detour__scn_fail(r, "server %s, message %zu: expected %s, got %s", srv, i,
                     e->complete ? "complete" : "cut",
                     m->complete ? "complete" : "cut");
  if (e->code >= 0 && e->code != m->code)
    detour__scn_fail(r,
                     "server %s, message %zu: expected reply %d to the final "
                     "'.', got %d",
                     srv, i, e->code, m->code);
}

static void check_commands(detour_scenario_result *r,
                           const detour__scn_server_expect *e,
                           const detour_scenario_server *got) {
  bool same = e->ncommands == got->ncmds;
  for (size_t i = 0; same && i < got->ncmds; i++)
    same = detour_scenario_glob(e->commands[i], got->cmds[i].line);
  if (same)
    return;
  detour__scn_buf b = {0};
  detour__scn_buf_add(&b, "server %s: commands differ (expected %zu, got %zu)",
                      got->name, e->ncommands, got->ncmds);
  size_t n = e->ncommands > got->ncmds ? e->ncommands : got->ncmds;
  for (size_t i = 0; i < n; i++) {
    const char *w = i < e->ncommands ? e->commands[i] : "(none)";
    const char *a = i < got->ncmds ? got->cmds[i].line : "(none)";
    bool ok = i < e->ncommands && i < got->ncmds && detour_scenario_glob(w, a);
    detour__scn_buf_add(&b, "\n  %s %-34s %s", ok ? " " : "!", w, a);
  }
  char *text = detour__scn_buf_take(&b);
  if (text)
    detour__scn_fail(r, "%s", text);
  free(text);
}

static void check_server(const detour_scenario *s, detour_scenario_result *r,
                         size_t i) {
  const detour__scn_server_expect *e = &s->expect.servers[i];
  const detour_scenario_server *got = &r->servers[i];
  if (e->connections >= 0 && (size_t)e->connections != got->nconns)
    detour__scn_fail(r, "server %s: expected %ld connection(s), got %zu",
                     got->name, e->connections, got->nconns);
  if (e->has_connect_times)
    check_times(s, r, e, got);
  if (e->has_received && e->nreceived != got->nmsgs)
    detour__scn_fail(r, "server %s: expected %zu message(s) received, got %zu",
                     got->name, e->nreceived, got->nmsgs);
  for (size_t k = 0; e->has_received && k < e->nreceived && k < got->nmsgs; k++)
    check_received_one(r, got->name, k, &e->received[k], &got->msgs[k]);
  if (e->has_commands)
    check_commands(r, e, got);
}

/* ------------------------------------------------------------------------ */
/* Latency and the invariants every scenario checks                         */

static void check_latency(const detour_scenario *s, detour_scenario_result *r) {
  const detour__scn_expect *x = &s->expect;
  if (x->latency_max < 0 && x->latency_min < 0)
    return;
  for (size_t i = 0; i < r->nmsgs; i++) {
    detour_ms last = -1; /* the latest acceptance of a recipient */
    for (size_t k = 0; k < r->nrcpts; k++)
      if (r->rcpts[k].message == i &&
          r->rcpts[k].outcome == DETOUR_RCPT_DELIVERED && r->rcpts[k].t > last)
        last = r->rcpts[k].t;
    if (last < 0) {
      detour__scn_fail(r, "latency: message %zu was not delivered", i);
      continue;
    }
    detour_ms lat = last - r->msgs[i].submit_t;
    detour_ms slack = s->realtime ? x->tolerance : 0;
    char a[32], b[32];
    if (x->latency_max >= 0 && lat > x->latency_max + slack)
      detour__scn_fail(r, "latency: message %zu took %s, more than the max %s",
                       i, off(lat, a, sizeof a),
                       off(x->latency_max, b, sizeof b));
    if (x->latency_min >= 0 && lat + slack < x->latency_min)
      detour__scn_fail(r, "latency: message %zu took %s, less than the min %s",
                       i, off(lat, a, sizeof a),
                       off(x->latency_min, b, sizeof b));
  }
}

/* R10: no recipient gets a message twice through this client. A server's
 * accepted copies of a recipient may not outnumber the scenario's messages
 * addressed to it. */
static void check_no_duplicates(const detour_scenario *s,
                                detour_scenario_result *r) {
  for (size_t m = 0; m < s->nmsgs; m++)
    for (size_t k = 0; k < s->msgs[m].nto; k++) {
      const char *a = s->msgs[m].to[k];
      size_t want = 0, got = 0;
      for (size_t j = 0; j < s->nmsgs; j++)
        for (size_t q = 0; q < s->msgs[j].nto; q++)
          want += strcasecmp(s->msgs[j].to[q], a) == 0;
      for (size_t i = 0; i < r->nservers; i++)
        for (size_t j = 0; j < r->servers[i].nmsgs; j++) {
          const detour_scenario_received *rm = &r->servers[i].msgs[j];
          if (rm->code / 100 != 2)
            continue;
          for (size_t q = 0; q < rm->nrcpts; q++)
            got += strcasecmp(rm->rcpts[q], a) == 0;
        }
      /* a repeated recipient in one message is sent once (R10) */
      if (got > want) {
        detour__scn_fail(r,
                         "R10: %s was accepted %zu times for %zu addressings "
                         "(duplicate delivery)",
                         a, got, want);
        return;
      }
    }
}

void detour__scn_check(const detour_scenario *s, detour_scenario_result *r) {
  check_status(s, r);
  check_rcpts(s, r);
  check_log(s, r);
  check_warnings(s, r);
  for (size_t i = 0; i < r->nservers && i < s->nservers; i++)
    check_server(s, r, i);
  check_latency(s, r);
  check_no_duplicates(s, r);
}

void detour_scenario_check(const detour_scenario *s,
                           detour_scenario_result *r) {
  detour__scn_check(s, r);
  if (r->verdict != DETOUR_VERDICT_ERROR)
    r->verdict = r->nfailures ? DETOUR_VERDICT_FAIL : DETOUR_VERDICT_PASS;
}

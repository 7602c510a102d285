/*
 * json.c - the JSON report: one document with the run (version, time,
 * mode), the totals, the certification summary, and per scenario its
 * rules, verdict, failures (the diff), every log row, the recipients'
 * outcomes, what each fake server saw and the timings. Indented two
 * spaces, keys in a fixed order, so a golden file diffs line by line.
 * The schema is in reports/README.md ("detour-report/1").
 */
#include "rep_internal.h"

#include <inttypes.h>
#include <string.h>

/* A streaming writer that knows where commas and line breaks go. */
typedef struct {
  FILE *f;
  int depth;
  bool first; /* nothing written yet at this depth */
} jw;

static void indent(jw *w) {
  fputc('\n', w->f);
  for (int i = 0; i < w->depth; i++)
    fputs("  ", w->f);
}

/* The separator and, inside an object, the key of the next value. */
static void next(jw *w, const char *key) {
  if (!w->first)
    fputc(',', w->f);
  w->first = false;
  indent(w);
  if (key) {
    detour__rep_json_str(w->f, key);
    fputs(": ", w->f);
  }
}

static void open_(jw *w, const char *key, char c) {
  next(w, key);
  fputc(c, w->f);
  w->depth++;
  w->first = true;
}

static void close_(jw *w, char c) {
  w->depth--;
  if (!w->first) /* empty containers stay on one line: {} [] */
    indent(w);
  fputc(c, w->f);
  w->first = false;
}

static void str(jw *w, const char *key, const char *v) {
  next(w, key);
  detour__rep_json_str(w->f, v);
}

static void strn(jw *w, const char *key, const char *v, size_t n) {
  next(w, key);
  detour__rep_json_strn(w->f, v, n);
}

static void num(jw *w, const char *key, int64_t v) {
  next(w, key);
  fprintf(w->f, "%" PRId64, v);
}

static void boolean(jw *w, const char *key, bool v) {
  next(w, key);
  fputs(v ? "true" : "false", w->f);
}

static void null(jw *w, const char *key) {
  next(w, key);
  fputs("null", w->f);
}

/* A time offset (ms from the scenario start) or null when there is none. */
static void offset(jw *w, const char *key, detour_ms t) {
  if (t == DETOUR_NO_DEADLINE)
    null(w, key);
  else
    num(w, key, t);
}

static void wall(jw *w, const char *key, double ms,
                 const detour_report_meta *m) {
  if (m && m->deterministic)
    return;
  next(w, key);
  fprintf(w->f, "%.3f", ms);
}

/* ---- the run ------------------------------------------------------------ */

static void run_part(jw *w, const detour_suite *s,
                     const detour_report_meta *m) {
  open_(w, "run", '{');
  str(w, "tool", "detour");
  str(w, "title", detour__rep_meta_title(m));
  str(w, "version", detour__rep_meta_version(m));
  str(w, "subject", detour__rep_meta_subject(m));
  boolean(w, "mutated", detour__rep_meta_mutated(m));
  if (detour__rep_meta_mutated(m)) {
    open_(w, "mutations", '[');
    for (size_t i = 0; i < m->nmutations; i++)
      str(w, NULL, m->mutations[i]);
    close_(w, ']');
  }
  str(w, "started", m ? m->started : NULL);
  str(w, "mode", m ? m->mode : NULL);
  str(w, "command", m ? m->command : NULL);
  boolean(w, "deterministic", m && m->deterministic);
  wall(w, "wall_ms", s->wall_ms, m);
  close_(w, '}');

  open_(w, "summary", '{');
  num(w, "total", (int64_t)s->n);
  num(w, "passed", (int64_t)detour__rep_count(s, DETOUR_VERDICT_PASS));
  num(w, "failed", (int64_t)detour__rep_count(s, DETOUR_VERDICT_FAIL));
  num(w, "errors", (int64_t)detour__rep_count(s, DETOUR_VERDICT_ERROR));
  num(w, "skipped", (int64_t)detour__rep_count(s, DETOUR_VERDICT_SKIP));
  close_(w, '}');
}

static void cert_part(jw *w, const detour_suite *s, const detour_cert *c,
                      const detour_report_meta *m) {
  open_(w, "certification", '[');
  for (size_t i = 0; c && i < c->n; i++) {
    const detour_cert_rule *r = &c->rules[i];
    int n = detour__rep_rule_number(r->rule);
    char url[1024];
    snprintf(url, sizeof url, "%s#r%d", detour__rep_meta_rules_url(m), n);
    open_(w, NULL, '{');
    str(w, "rule", r->rule);
    str(w, "title", r->title);
    if (n) {
      str(w, "description", detour__rep_rule_sentence(n));
      str(w, "url", url);
    }
    str(w, "status", detour_cert_status_name(r->status));
    num(w, "passed", (int64_t)r->passed);
    num(w, "failed", (int64_t)r->failed);
    num(w, "skipped", (int64_t)r->skipped);
    open_(w, "scenarios", '[');
    for (size_t j = 0; j < r->nscenarios; j++)
      str(w, NULL, s->results[r->scenarios[j]].name);
    close_(w, ']');
    close_(w, '}');
  }
  close_(w, ']');
}

/* ---- one scenario ------------------------------------------------------- */

static void rows_part(jw *w, const detour_scenario_result *r) {
  open_(w, "rows", '[');
  for (size_t i = 0; i < r->nrows; i++) {
    const detour_scenario_row *row = &r->rows[i];
    char iso[48];
    detour__rep_iso(r->start + row->t, iso, sizeof iso);
    open_(w, NULL, '{');
    num(w, "t_ms", row->t);
    str(w, "time", iso);
    str(w, "kind", detour_log_kind_name(row->kind));
    num(w, "message", (int64_t)row->message);
    str(w, "recipient", row->recipient);
    str(w, "server", row->server);
    num(w, "priority", row->priority);
    num(w, "attempt", row->attempt);
    str(w, "result", row->result);
    str(w, "class", detour_class_name(row->cls));
    str(w, "detail", row->detail);
    close_(w, '}');
  }
  close_(w, ']');
  open_(w, "warnings", '[');
  for (size_t i = 0; i < r->nwarnings; i++) {
    open_(w, NULL, '{');
    num(w, "t_ms", r->warnings[i].t);
    str(w, "text", r->warnings[i].text);
    close_(w, '}');
  }
  close_(w, ']');
}

static void outcomes_part(jw *w, const detour_scenario_result *r) {
  open_(w, "recipients", '[');
  for (size_t i = 0; i < r->nrcpts; i++) {
    const detour_scenario_rcpt *rc = &r->rcpts[i];
    open_(w, NULL, '{');
    num(w, "message", (int64_t)rc->message);
    str(w, "recipient", rc->recipient);
    str(w, "outcome", detour_rcpt_outcome_name(rc->outcome));
    str(w, "server", rc->server);
    str(w, "detail", rc->detail);
    offset(w, "t_ms", rc->t);
    close_(w, '}');
  }
  close_(w, ']');
  open_(w, "messages", '[');
  for (size_t i = 0; i < r->nmsgs; i++) {
    const detour_scenario_msg *mm = &r->msgs[i];
    open_(w, NULL, '{');
    num(w, "index", (int64_t)i);
    num(w, "submit_ms", mm->submit_t);
    boolean(w, "done", mm->done);
    if (mm->done)
      str(w, "status", detour_done_status_name(mm->status));
    else
      null(w, "status");
    offset(w, "done_ms", mm->done ? mm->done_t : DETOUR_NO_DEADLINE);
    close_(w, '}');
  }
  close_(w, ']');
}

static void server_conns(jw *w, const detour_scenario_server *sv) {
  open_(w, "connections", '[');
  for (size_t i = 0; i < sv->nconns; i++) {
    const detour_scenario_conn *c = &sv->conns[i];
    open_(w, NULL, '{');
    num(w, "id", c->id);
    num(w, "accept_ms", c->accept_t);
    offset(w, "close_ms", c->close_t);
    str(w, "closed_by", c->closed_by);
    close_(w, '}');
  }
  close_(w, ']');
  open_(w, "commands", '[');
  for (size_t i = 0; i < sv->ncmds; i++) {
    open_(w, NULL, '{');
    num(w, "conn", sv->cmds[i].conn);
    num(w, "t_ms", sv->cmds[i].t);
    str(w, "line", sv->cmds[i].line);
    close_(w, '}');
  }
  close_(w, ']');
}

static void server_msgs(jw *w, const detour_scenario_server *sv) {
  open_(w, "received", '[');
  for (size_t i = 0; i < sv->nmsgs; i++) {
    const detour_scenario_received *m = &sv->msgs[i];
    open_(w, NULL, '{');
    num(w, "conn", m->conn);
    num(w, "t_ms", m->t);
    str(w, "from", m->from);
    open_(w, "rcpts", '[');
    for (size_t j = 0; j < m->nrcpts; j++)
      str(w, NULL, m->rcpts[j]);
    close_(w, ']');
    strn(w, "body", m->body, m->body ? m->body_len : 0);
    boolean(w, "complete", m->complete);
    num(w, "code", m->code);
    close_(w, '}');
  }
  close_(w, ']');
}

static void servers_part(jw *w, const detour_scenario_result *r,
                         const detour_report_meta *m) {
  open_(w, "servers", '[');
  for (size_t i = 0; i < r->nservers; i++) {
    const detour_scenario_server *sv = &r->servers[i];
    open_(w, NULL, '{');
    str(w, "name", sv->name);
    if (!(m && m->deterministic)) /* the port differs run to run */
      str(w, "address", sv->address);
    server_conns(w, sv);
    server_msgs(w, sv);
    close_(w, '}');
  }
  close_(w, ']');
}

static void scenario(jw *w, const detour_scenario_result *r,
                     const detour_report_meta *m) {
  char iso[48];
  open_(w, NULL, '{');
  str(w, "name", r->name);
  str(w, "file", r->file);
  str(w, "description", r->description);
  open_(w, "rules", '[');
  for (size_t i = 0; i < r->nrules; i++)
    str(w, NULL, r->rules[i]);
  close_(w, ']');
  str(w, "verdict", detour_verdict_name(r->verdict));
  str(w, "client", r->client ? r->client : "builtin");
  boolean(w, "mutated", r->mutated);
  if (r->exit_code >= 0)
    num(w, "exit_code", r->exit_code);
  else
    null(w, "exit_code"); /* no exit code that means anything */
  open_(w, "failures", '[');
  for (size_t i = 0; i < r->nfailures; i++)
    str(w, NULL, r->failures[i]);
  close_(w, ']');
  open_(w, "timings", '{');
  str(w, "clock", r->realtime ? "realtime" : "virtual");
  detour__rep_iso(r->start, iso, sizeof iso);
  str(w, "start", iso);
  num(w, "end_ms", r->end_t);
  wall(w, "wall_ms", r->wall_ms, m);
  close_(w, '}');
  rows_part(w, r);
  outcomes_part(w, r);
  servers_part(w, r, m);
  close_(w, '}');
}

int detour_report_json(const detour_suite *s, const detour_report_meta *m,
                       FILE *f) {
  if (!s || !f)
    return DETOUR_EINVAL;
  detour_cert cert;
  if (detour_cert_compute(s, &cert) != 0)
    return DETOUR_ENOMEM;
  jw w = {f, 0, true};
  fputc('{', f);
  w.depth = 1;
  str(&w, "schema", "detour-report/1");
  run_part(&w, s, m);
  cert_part(&w, s, &cert, m);
  open_(&w, "scenarios", '[');
  for (size_t i = 0; i < s->n; i++)
    scenario(&w, &s->results[i], m);
  close_(&w, ']');
  close_(&w, '}');
  fputc('\n', f);
  detour_cert_free(&cert);
  return detour__rep_finish(f);
}

/*
 * names.c - names, titles and small formatters the report writers share.
 * The verdict names are repeated here (not taken from the runner) so the
 * writers and their golden tests need only scenario.h, not the runner's
 * library.
 */
#include "rep_internal.h"

#include <string.h>

const char *rep_verdict_css(detour_verdict v) {
  switch (v) {
  case DETOUR_VERDICT_PASS:
    return "pass";
  case DETOUR_VERDICT_FAIL:
    return "fail";
  case DETOUR_VERDICT_ERROR:
    return "error";
  case DETOUR_VERDICT_SKIP:
    return "skip";
  }
  return "error";
}

/* The headings of SPEC.md, R1..R13. */
static const char *const rule_titles[REP_SPEC_RULES] = {
    "Server list",
    "One attempt",
    "Failure classes",
    "Detour decision",
    "Detour",
    "No detour: retry the normal server",
    "Limit reached",
    "Send log",
    "Intent",
    "Several recipients",
    "Per-session timeouts",
    "Circuit breaker and connection racing",
    "Transport security and authentication",
};

const char *rep_rule_title(int i) {
  return i >= 1 && i <= REP_SPEC_RULES ? rule_titles[i - 1] : "";
}

void rep_iso(detour_ms t, char *buf, size_t len) {
  if (detour_format_time(t, buf, len) < 0)
    snprintf(buf, len, "?");
}

/* The same notation as the scenario files' offsets, so a report and the
 * scenario it came from read alike. */
void rep_offset(detour_ms t, char *buf, size_t len) {
  detour_scenario_format_offset(t, buf, len);
}

const char *rep_meta_title(const detour_report_meta *m) {
  return m && m->title ? m->title : "detour";
}

const char *rep_meta_version(const detour_report_meta *m) {
  return m && m->version ? m->version : DETOUR_VERSION;
}

const char *rep_meta_subject(const detour_report_meta *m) {
  return m && m->subject ? m->subject : "detour (built-in engine)";
}

void rep_row_line(const detour_scenario_result *r,
                  const detour_scenario_row *row, char *buf, size_t len) {
  detour_log_row lr = {.time = r->start + row->t,
                       .kind = row->kind,
                       .message = row->message,
                       .recipient = row->recipient,
                       .server = row->server,
                       .address = "",
                       .priority = row->priority,
                       .attempt = row->attempt,
                       .result = row->result,
                       .cls = row->cls,
                       .detail = row->detail};
  /* A cut row still says most of what happened: keep the truncated text. */
  (void)detour_log_format_table(&lr, buf, len);
}

size_t rep_count(const detour_suite *s, detour_verdict v) {
  size_t n = 0;
  for (size_t i = 0; i < s->n; i++)
    n += s->results[i].verdict == v;
  return n;
}

int rep_finish(FILE *f) {
  if (fflush(f) != 0 || ferror(f))
    return DETOUR_EIO;
  return 0;
}

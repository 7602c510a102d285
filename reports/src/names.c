/*
 * names.c - names, titles and small formatters the report writers share.
 * The verdict names are repeated here (not taken from the runner) so the
 * writers and their golden tests need only scenario.h, not the runner's
 * library.
 */
#include "rep_internal.h"

#include <ctype.h>
#include <string.h>

const char *detour__rep_verdict_css(detour_verdict v) {
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

/* The headings of docs/rules.md, R1..R13. */
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

/* The one-sentence descriptions of docs/rules.md's summary table. */
static const char *const rule_sentences[REP_SPEC_RULES] = {
    "The client holds one or more servers in priority order and sends "
    "through priority 1 unless a rule below moves it on.",
    "An attempt is a TCP connect, then, when it succeeds, one SMTP "
    "transaction; success ends the message.",
    "Every failure falls into exactly one class (CONNECT, TRANSIENT, "
    "SWITCH, ABORT), looked up in a table, and the class decides the next "
    "step.",
    "Whether a message may use a backup server is decided per message by a "
    "sender/recipient permission table or by the sender's override.",
    "When detour is allowed and a next server exists, the client connects "
    "to it at once and applies R2..R7 to it.",
    "Without detour, or with no next server, the normal server is retried "
    "every interval up to a per-server attempt limit.",
    "A server that reaches its limit is reported once as a configuration "
    "error and skipped; when every allowed server is exhausted the message "
    "fails.",
    "Every failed TCP connect and every SMTP transaction writes a log row: "
    "time, recipient, server, result.",
    "The intent: a failed server never stops mail, the normal server is "
    "preferred, an unreachable one costs no delay, and no useless traffic "
    "is sent.",
    "Each recipient has its own outcome, and no recipient receives the "
    "message twice through this client.",
    "Every wait for a server has a timeout, by default those of RFC 5321 "
    "section 4.5.3.2 and 30 s for a TCP connect.",
    "Optional, off by default: a circuit breaker that skips a server which "
    "just failed, and connection racing to the next server.",
    "TLS and AUTH are configured per server; when configured they are "
    "required, and their failures move on to another server with a "
    "warning.",
};

const char *detour__rep_rule_sentence(int i) {
  return i >= 1 && i <= REP_SPEC_RULES ? rule_sentences[i - 1] : "";
}

int detour__rep_rule_number(const char *id) {
  if (!id || (id[0] != 'R' && id[0] != 'r') || !isdigit((unsigned char)id[1]))
    return 0;
  int n = 0;
  const char *p = id + 1;
  while (isdigit((unsigned char)*p) && n < 100)
    n = n * 10 + (*p++ - '0');
  if (isdigit((unsigned char)*p))
    return 0;
  return n >= 1 && n <= REP_SPEC_RULES ? n : 0;
}

const char *detour__rep_meta_rules_url(const detour_report_meta *m) {
  return m && m->rules_url ? m->rules_url : "docs/rules.md";
}

const char *detour__rep_rule_title(int i) {
  return i >= 1 && i <= REP_SPEC_RULES ? rule_titles[i - 1] : "";
}

void detour__rep_iso(detour_ms t, char *buf, size_t len) {
  if (detour_format_time(t, buf, len) < 0)
    snprintf(buf, len, "?");
}

/* The same notation as the scenario files' offsets, so a report and the
 * scenario it came from read alike. */
void detour__rep_offset(detour_ms t, char *buf, size_t len) {
  detour_scenario_format_offset(t, buf, len);
}

const char *detour__rep_meta_title(const detour_report_meta *m) {
  return m && m->title ? m->title : "detour";
}

bool detour__rep_meta_mutated(const detour_report_meta *m) {
  return m && m->nmutations > 0;
}

const char *detour__rep_meta_version(const detour_report_meta *m) {
  return m && m->version ? m->version : DETOUR_VERSION;
}

const char *detour__rep_meta_subject(const detour_report_meta *m) {
  return m && m->subject ? m->subject : "detour (built-in engine)";
}

void detour__rep_row_line(const detour_scenario_result *r,
                          const detour_scenario_row *row, char *buf,
                          size_t len) {
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

size_t detour__rep_count(const detour_suite *s, detour_verdict v) {
  size_t n = 0;
  for (size_t i = 0; i < s->n; i++)
    n += s->results[i].verdict == v;
  return n;
}

int detour__rep_finish(FILE *f) {
  if (fflush(f) != 0 || ferror(f))
    return DETOUR_EIO;
  return 0;
}

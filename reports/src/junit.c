/*
 * junit.c - JUnit XML for CI systems: <testsuites> with one <testsuite>
 * per scenario folder ("conformance", "interop", ...), one <testcase> per
 * scenario, <failure>/<error> with the first failure line as message and
 * every failure (the diff) as text, <skipped/>, and the send-log rows in
 * <system-out> in the layout of Fig. 6. The mapping is in
 * reports/README.md. Text is escaped, never wrapped in CDATA, so a
 * server's "]]>" cannot end a section.
 */
#include "rep_internal.h"

#include <string.h>

/* The folder a scenario file sits in ("scenarios/conformance/x.yaml" ->
 * "conformance"), the suite name CI groups by; "detour" when none. */
static void group_of(const detour_scenario_result *r, char *buf, size_t len) {
  const char *file = r->file ? r->file : "";
  const char *slash = strrchr(file, '/');
  if (!slash) {
    snprintf(buf, len, "detour");
    return;
  }
  const char *start = slash;
  while (start > file && start[-1] != '/')
    start--;
  size_t n = (size_t)(slash - start);
  if (n == 0) {
    snprintf(buf, len, "detour");
    return;
  }
  snprintf(buf, len, "%.*s", (int)n, start);
}

static void attr(FILE *f, const char *name, const char *value) {
  fprintf(f, " %s=\"", name);
  detour__rep_xml(f, value ? value : "", true);
  fputc('"', f);
}

static void time_attr(FILE *f, double ms, const detour_report_meta *m) {
  if (m && m->deterministic)
    fputs(" time=\"0\"", f);
  else
    fprintf(f, " time=\"%.3f\"", ms / 1000.0);
}

/* Totals of the results in group g (or all when g is NULL). */
typedef struct {
  size_t tests, failures, errors, skipped;
  double ms;
} totals;

static totals count(const detour_suite *s, const char *g) {
  totals t = {0};
  for (size_t i = 0; i < s->n; i++) {
    const detour_scenario_result *r = &s->results[i];
    char rg[256];
    group_of(r, rg, sizeof rg);
    if (g && strcmp(rg, g) != 0)
      continue;
    t.tests++;
    t.failures += r->verdict == DETOUR_VERDICT_FAIL;
    t.errors += r->verdict == DETOUR_VERDICT_ERROR;
    t.skipped += r->verdict == DETOUR_VERDICT_SKIP;
    t.ms += r->wall_ms;
  }
  return t;
}

static void totals_attrs(FILE *f, totals t, const detour_report_meta *m) {
  fprintf(f, " tests=\"%zu\" failures=\"%zu\" errors=\"%zu\" skipped=\"%zu\"",
          t.tests, t.failures, t.errors, t.skipped);
  time_attr(f, t.ms, m);
}

static void property(FILE *f, const char *name, const char *value) {
  if (!value)
    return;
  fputs("      <property", f);
  attr(f, "name", name);
  attr(f, "value", value);
  fputs("/>\n", f);
}

static void properties(FILE *f, const detour_report_meta *m) {
  fputs("    <properties>\n", f);
  property(f, "version", detour__rep_meta_version(m));
  property(f, "subject", detour__rep_meta_subject(m));
  property(f, "mutated", detour__rep_meta_mutated(m) ? "true" : "false");
  property(f, "mode", m ? m->mode : NULL);
  property(f, "started", m ? m->started : NULL);
  property(f, "command", m ? m->command : NULL);
  property(f, "rules", detour__rep_meta_rules_url(m));
  fputs("    </properties>\n", f);
}

/* The first line of the first failure: what a CI system shows in a list. */
static void first_line(FILE *f, const detour_scenario_result *r) {
  const char *t = r->nfailures && r->failures[0] ? r->failures[0] : "";
  const char *nl = strchr(t, '\n');
  fputs(" message=\"", f);
  detour__rep_xmln(f, t, nl ? (size_t)(nl - t) : strlen(t), true);
  fputc('"', f);
}

static void verdict_elem(FILE *f, const detour_scenario_result *r) {
  const char *tag = r->verdict == DETOUR_VERDICT_FAIL    ? "failure"
                    : r->verdict == DETOUR_VERDICT_ERROR ? "error"
                    : r->verdict == DETOUR_VERDICT_SKIP  ? "skipped"
                                                         : NULL;
  if (!tag)
    return;
  fprintf(f, "      <%s", tag);
  first_line(f, r);
  if (r->verdict == DETOUR_VERDICT_SKIP) {
    fputs("/>\n", f);
    return;
  }
  attr(f, "type", detour_verdict_name(r->verdict));
  fputc('>', f);
  for (size_t i = 0; i < r->nfailures; i++) {
    detour__rep_xml(f, r->failures[i], false);
    fputc('\n', f);
  }
  fprintf(f, "</%s>\n", tag);
}

/* Each rule of docs/rules.md the scenario names, with the link to its
 * section and its sentence, so a CI page says what was checked. */
static void rule_lines(FILE *f, const detour_scenario_result *r,
                       const detour_report_meta *m) {
  for (size_t i = 0; i < r->nrules; i++) {
    int n = detour__rep_rule_number(r->rules[i]);
    if (!n)
      continue;
    fputs("  ", f);
    detour__rep_xml(f, r->rules[i], false);
    fputs(" ", f);
    detour__rep_xml(f, detour__rep_meta_rules_url(m), false);
    fprintf(f, "#r%d ", n);
    detour__rep_xml(f, detour__rep_rule_sentence(n), false);
    fputc('\n', f);
  }
}

static void system_out(FILE *f, const detour_scenario_result *r,
                       const detour_report_meta *m) {
  fputs("      <system-out>rules:", f);
  for (size_t i = 0; i < r->nrules; i++) {
    fputc(' ', f);
    detour__rep_xml(f, r->rules[i], false);
  }
  fputs("\n", f);
  rule_lines(f, r, m);
  detour__rep_xml(f, detour_log_table_header(), false);
  fputc('\n', f);
  for (size_t i = 0; i < r->nrows; i++) {
    char line[1024];
    detour__rep_row_line(r, &r->rows[i], line, sizeof line);
    detour__rep_xml(f, line, false);
    fputc('\n', f);
  }
  for (size_t i = 0; i < r->nwarnings; i++) {
    char t[32];
    detour__rep_offset(r->warnings[i].t, t, sizeof t);
    fprintf(f, "warning +%s: ", t);
    detour__rep_xml(f, r->warnings[i].text, false);
    fputc('\n', f);
  }
  fputs("</system-out>\n", f);
}

static void testcase(FILE *f, const detour_scenario_result *r, const char *g,
                     const detour_report_meta *m) {
  char cls[300];
  snprintf(cls, sizeof cls, "detour.%s", g);
  fputs("    <testcase", f);
  attr(f, "name", r->name);
  attr(f, "classname", cls);
  if (r->file)
    attr(f, "file", r->file);
  time_attr(f, r->wall_ms, m);
  fputs(">\n", f);
  verdict_elem(f, r);
  system_out(f, r, m);
  fputs("    </testcase>\n", f);
}

/* Groups in order of first appearance; each written once. */
static bool seen_before(const detour_suite *s, size_t i, const char *g) {
  for (size_t j = 0; j < i; j++) {
    char gj[256];
    group_of(&s->results[j], gj, sizeof gj);
    if (strcmp(gj, g) == 0)
      return true;
  }
  return false;
}

static void testsuite(FILE *f, const detour_suite *s, const char *g,
                      const detour_report_meta *m) {
  fputs("  <testsuite", f);
  attr(f, "name", g);
  totals_attrs(f, count(s, g), m);
  if (m && m->started)
    attr(f, "timestamp", m->started);
  fputs(">\n", f);
  properties(f, m);
  for (size_t i = 0; i < s->n; i++) {
    char gi[256];
    group_of(&s->results[i], gi, sizeof gi);
    if (strcmp(gi, g) == 0)
      testcase(f, &s->results[i], g, m);
  }
  fputs("  </testsuite>\n", f);
}

int detour_report_junit(const detour_suite *s, const detour_report_meta *m,
                        FILE *f) {
  if (!s || !f)
    return DETOUR_EINVAL;
  fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites", f);
  char name[300];
  snprintf(name, sizeof name, "%s%s", REP_MUTATED_PREFIX(m),
           detour__rep_meta_title(m));
  attr(f, "name", name);
  totals all = count(s, NULL);
  all.ms = s->wall_ms; /* scenarios may run in parallel: not the sum */
  totals_attrs(f, all, m);
  fputs(">\n", f);
  for (size_t i = 0; i < s->n; i++) {
    char g[256];
    group_of(&s->results[i], g, sizeof g);
    if (!seen_before(s, i, g))
      testsuite(f, s, g, m);
  }
  fputs("</testsuites>\n", f);
  return detour__rep_finish(f);
}

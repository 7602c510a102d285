/*
 * scorecard.c - several clients judged on one profile, side by side: a
 * client x scenario matrix grouped by SPEC rule (the first rule each
 * scenario names), PASS / FAIL / SKIP per cell with the reason on hover,
 * and the same as JSON. Differences between clients are the point, so a
 * row where the clients disagree is marked.
 */
#include "rep_internal.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* The result of scenario `name` in column c, or NULL. */
static const detour_scenario_result *cell(const detour_scorecard_column *c,
                                          const char *name) {
  for (size_t i = 0; c->suite && i < c->suite->n; i++)
    if (!strcmp(c->suite->results[i].name, name))
      return &c->suite->results[i];
  return NULL;
}

static const char *why(const detour_scenario_result *r) {
  return r && r->verdict != DETOUR_VERDICT_PASS && r->nfailures ? r->failures[0]
                                                                : "";
}

/* The rows: every scenario of the first column that has results, in file
 * order, then sorted stably by first rule number. */
typedef struct {
  const detour_scenario_result *r;
  int rule;
} row;

static int rule_num(const detour_scenario_result *r) {
  const char *id = r->nrules ? r->rules[0] : "";
  return (id[0] == 'R' || id[0] == 'r') && isdigit((unsigned char)id[1])
             ? atoi(id + 1)
             : 99;
}

static row *rows_of(const detour_scorecard_column *cols, size_t n,
                    size_t *nrows) {
  const detour_suite *s = NULL;
  for (size_t i = 0; i < n && !s; i++)
    s = cols[i].suite && cols[i].suite->n ? cols[i].suite : NULL;
  *nrows = s ? s->n : 0;
  row *v = calloc(*nrows ? *nrows : 1, sizeof *v);
  for (size_t i = 0; v && i < *nrows; i++)
    v[i] = (row){&s->results[i], rule_num(&s->results[i])};
  for (size_t i = 1; v && i < *nrows; i++) /* insertion sort: stable */
    for (size_t j = i; j > 0 && v[j - 1].rule > v[j].rule; j--) {
      row t = v[j];
      v[j] = v[j - 1];
      v[j - 1] = t;
    }
  return v;
}

static bool disagree(const detour_scorecard_column *cols, size_t n,
                     const char *name) {
  int first = -1;
  for (size_t i = 0; i < n; i++) {
    const detour_scenario_result *r = cell(&cols[i], name);
    int v = r ? (int)r->verdict : -1;
    if (v == DETOUR_VERDICT_SKIP)
      continue;
    if (first >= 0 && v != first)
      return true;
    first = v;
  }
  return false;
}

static const char css[] =
    "body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}"
    "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:"
    ".2em .5em}td.pass{background:#d3f9d8}td.fail,td.error{background:"
    "#ffc9c9}td.skip{background:#f1f3f5;color:#868e96}tr.rule th{background:"
    "#e7f5ff;text-align:left}tr.differ td:first-child{font-weight:600}"
    "small{color:#666}";

int detour_report_scorecard_html(const detour_scorecard_column *cols, size_t n,
                                 const char *pversion, const char *hash,
                                 FILE *f) {
  if (!cols || !f)
    return DETOUR_EINVAL;
  size_t nrows;
  row *rows = rows_of(cols, n, &nrows);
  if (!rows)
    return DETOUR_ENOMEM;
  fprintf(f,
          "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8"
          "\">\n<meta http-equiv=\"Content-Security-Policy\" content=\""
          "default-src 'none'; style-src 'unsafe-inline'\">\n<title>detour "
          "scorecard</title>\n<style>%s</style>\n</head>\n<body>\n<h1>"
          "Failover scorecard</h1>\n<p>Profile ",
          css);
  detour__rep_xml(f, pversion, false);
  fputs(" <small>(SHA-256 ", f);
  detour__rep_xml(f, hash, false);
  fputs(")</small>. Every verdict comes from what the fake servers saw; "
        "hover a cell for the reason. Bold rows: the clients differ.</p>\n"
        "<table>\n<tr><th>scenario</th>",
        f);
  for (size_t i = 0; i < n; i++) {
    fputs("<th>", f);
    if (cols[i].link) {
      fputs("<a href=\"", f);
      detour__rep_xml(f, cols[i].link, true);
      fputs("\">", f);
    }
    detour__rep_xml(f, cols[i].client, false);
    fputs(cols[i].link ? "</a>" : "", f);
    fputs("<br><small>", f);
    detour__rep_xml(f, cols[i].version, false);
    fputs("</small></th>", f);
  }
  fputs("</tr>\n", f);
  int last = -1;
  for (size_t k = 0; k < nrows; k++) {
    const char *name = rows[k].r->name;
    if (rows[k].rule != last) {
      last = rows[k].rule;
      fprintf(f, "<tr class=\"rule\"><th colspan=\"%zu\">", n + 1);
      if (last < 99)
        fprintf(f, "R%d %s", last,
                last <= REP_SPEC_RULES ? detour__rep_rule_title(last) : "");
      else
        fputs("other", f);
      fputs("</th></tr>\n", f);
    }
    fprintf(f, "<tr%s><td>",
            disagree(cols, n, name) ? " class=\"differ\"" : "");
    detour__rep_xml(f, name, false);
    fputs("</td>", f);
    for (size_t i = 0; i < n; i++) {
      const detour_scenario_result *r = cell(&cols[i], name);
      fprintf(f, "<td class=\"%s\" title=\"",
              r ? detour__rep_verdict_css(r->verdict) : "");
      detour__rep_xml(f, why(r), true);
      fprintf(f, "\">%s</td>", r ? detour_verdict_name(r->verdict) : "-");
    }
    fputs("</tr>\n", f);
  }
  fputs("<tr><th>passed / failed / skipped</th>", f);
  for (size_t i = 0; i < n; i++) {
    const detour_suite *s = cols[i].suite;
    fprintf(f, "<td>%zu / %zu / %zu</td>", s ? s->passed : 0, s ? s->failed : 0,
            s ? s->skipped : 0);
  }
  fputs("</tr>\n</table>\n</body>\n</html>\n", f);
  free(rows);
  return detour__rep_finish(f);
}

int detour_report_scorecard_json(const detour_scorecard_column *cols, size_t n,
                                 const char *pversion, const char *hash,
                                 FILE *f) {
  if (!cols || !f)
    return DETOUR_EINVAL;
  size_t nrows;
  row *rows = rows_of(cols, n, &nrows);
  if (!rows)
    return DETOUR_ENOMEM;
  fputs("{\n  \"profile_version\": ", f);
  detour__rep_json_str(f, pversion);
  fputs(",\n  \"profile_sha256\": ", f);
  detour__rep_json_str(f, hash);
  fputs(",\n  \"clients\": [", f);
  for (size_t i = 0; i < n; i++) {
    const detour_suite *s = cols[i].suite;
    fputs(i ? ",\n    {\"client\":" : "\n    {\"client\":", f);
    detour__rep_json_str(f, cols[i].client);
    fputs(",\"version\":", f);
    detour__rep_json_str(f, cols[i].version);
    fputs(",\"certificate\":", f);
    detour__rep_json_str(f, cols[i].link);
    fprintf(f, ",\"passed\":%zu,\"failed\":%zu,\"skipped\":%zu}",
            s ? s->passed : 0, s ? s->failed : 0, s ? s->skipped : 0);
  }
  fputs("\n  ],\n  \"scenarios\": [", f);
  for (size_t k = 0; k < nrows; k++) {
    const detour_scenario_result *r0 = rows[k].r;
    fputs(k ? ",\n    {\"name\":" : "\n    {\"name\":", f);
    detour__rep_json_str(f, r0->name);
    fputs(",\"rules\":[", f);
    for (size_t q = 0; q < r0->nrules; q++) {
      fputs(q ? "," : "", f);
      detour__rep_json_str(f, r0->rules[q]);
    }
    fprintf(f, "],\"differ\":%s,\"verdicts\":{",
            disagree(cols, n, r0->name) ? "true" : "false");
    for (size_t i = 0; i < n; i++) {
      const detour_scenario_result *r = cell(&cols[i], r0->name);
      fputs(i ? "," : "", f);
      detour__rep_json_str(f, cols[i].client);
      fputs(":{\"verdict\":", f);
      detour__rep_json_str(f, r ? detour_verdict_name(r->verdict) : NULL);
      fputs(",\"reason\":", f);
      detour__rep_json_str(f, r && r->verdict != DETOUR_VERDICT_PASS ? why(r)
                                                                     : NULL);
      fputs("}", f);
    }
    fputs("}}", f);
  }
  fputs("\n  ]\n}\n", f);
  free(rows);
  return detour__rep_finish(f);
}

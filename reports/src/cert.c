/*
 * cert.c - the certification summary: each SPEC rule with pass / fail /
 * not covered and the scenarios behind it. The rules come from each
 * result's `rules` array (the ids a scenario file names); R1..R13 are
 * always listed so a gap in coverage shows as "not covered" instead of
 * silently missing.
 */
#include "rep_internal.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *detour_cert_status_name(detour_cert_status st) {
  switch (st) {
  case DETOUR_CERT_PASS:
    return "pass";
  case DETOUR_CERT_FAIL:
    return "fail";
  case DETOUR_CERT_NOT_COVERED:
    break;
  }
  return "not covered";
}

/* The row for id, appended when new. NULL on out of memory. */
static detour_cert_rule *rule_for(detour_cert *c, const char *id) {
  int spec = detour__rep_rule_number(id);
  if (spec)
    return &c->rules[spec - 1];
  for (size_t i = REP_SPEC_RULES; i < c->n; i++)
    if (strcasecmp(c->rules[i].rule, id) == 0)
      return &c->rules[i];
  detour_cert_rule *grown = realloc(c->rules, (c->n + 1) * sizeof *grown);
  if (!grown)
    return NULL;
  c->rules = grown;
  detour_cert_rule *r = &c->rules[c->n];
  memset(r, 0, sizeof *r);
  r->title = "";
  r->rule = strdup(id);
  if (!r->rule)
    return NULL;
  c->n++;
  return r;
}

/* Record scenario idx under rule r once, even when the scenario names the
 * rule twice ("R3" and "R3.timeout"). */
static int add(detour_cert_rule *r, size_t idx, detour_verdict v) {
  if (r->nscenarios > 0 && r->scenarios[r->nscenarios - 1] == idx)
    return 0;
  size_t *grown = realloc(r->scenarios, (r->nscenarios + 1) * sizeof *grown);
  if (!grown)
    return DETOUR_ENOMEM;
  r->scenarios = grown;
  r->scenarios[r->nscenarios++] = idx;
  if (v == DETOUR_VERDICT_PASS)
    r->passed++;
  else if (v == DETOUR_VERDICT_SKIP)
    r->skipped++;
  else
    r->failed++;
  return 0;
}

static int init_spec_rules(detour_cert *c) {
  c->rules = calloc(REP_SPEC_RULES, sizeof *c->rules);
  if (!c->rules)
    return DETOUR_ENOMEM;
  c->n = REP_SPEC_RULES;
  for (int i = 0; i < REP_SPEC_RULES; i++) {
    char id[8];
    snprintf(id, sizeof id, "R%d", i + 1);
    c->rules[i].rule = strdup(id);
    c->rules[i].title = detour__rep_rule_title(i + 1);
    if (!c->rules[i].rule)
      return DETOUR_ENOMEM;
  }
  return 0;
}

int detour_cert_compute(const detour_suite *s, detour_cert *out) {
  if (!s || !out)
    return DETOUR_EINVAL;
  memset(out, 0, sizeof *out);
  int rc = init_spec_rules(out);
  for (size_t i = 0; rc == 0 && i < s->n; i++) {
    const detour_scenario_result *res = &s->results[i];
    for (size_t j = 0; rc == 0 && j < res->nrules; j++) {
      if (!res->rules[j] || !res->rules[j][0])
        continue;
      detour_cert_rule *r = rule_for(out, res->rules[j]);
      rc = r ? add(r, i, res->verdict) : DETOUR_ENOMEM;
    }
  }
  if (rc != 0) {
    detour_cert_free(out);
    return rc;
  }
  for (size_t i = 0; i < out->n; i++) {
    detour_cert_rule *r = &out->rules[i];
    r->status = r->failed   ? DETOUR_CERT_FAIL
                : r->passed ? DETOUR_CERT_PASS
                            : DETOUR_CERT_NOT_COVERED;
  }
  return 0;
}

void detour_cert_free(detour_cert *c) {
  if (!c)
    return;
  for (size_t i = 0; i < c->n; i++) {
    free(c->rules[i].rule);
    free(c->rules[i].scenarios);
  }
  free(c->rules);
  c->rules = NULL;
  c->n = 0;
}

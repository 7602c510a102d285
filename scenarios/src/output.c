/*
 * output.c - how results are shown and kept: the failure text under a
 * scenario's line on the terminal, and the files of `--out DIR`:
 *   results.jsonl  one JSON object per scenario (verdict, rules, failures,
 *                  rows, wall time) for the report writers;
 *   rows.txt       every scenario's send-log rows with their times, and
 *                  what each server received, nothing that varies between
 *                  runs: two virtual-time runs give the same bytes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "scn_internal.h"

void detour_scenario_result_print(const detour_scenario_result *r, FILE *f,
                                  bool color, bool verbose) {
  const char *dim = color ? "\033[2m" : "", *end = color ? "\033[0m" : "";
  for (size_t i = 0; i < r->nfailures; i++) {
    /* indent every line of a multi-line failure */
    fprintf(f, "      ");
    for (const char *p = r->failures[i]; *p; p++) {
      fputc(*p, f);
      if (*p == '\n')
        fprintf(f, "      ");
    }
    fputc('\n', f);
  }
  if (r->nfailures && r->file)
    fprintf(f, "      %sfile: %s%s\n", dim, r->file, end);
  if (!verbose && r->verdict == DETOUR_VERDICT_PASS)
    return;
  /* a log diff already shows every actual row */
  for (size_t i = 0; !verbose && i < r->nfailures; i++)
    if (strncmp(r->failures[i], "log rows differ", 15) == 0)
      return;
  if (r->verdict == DETOUR_VERDICT_ERROR || r->verdict == DETOUR_VERDICT_SKIP)
    return;
  fprintf(f, "      %sactual log rows:%s\n", dim, end);
  char line[768];
  for (size_t i = 0; i < r->nrows; i++) {
    detour_scenario_format_row(&r->rows[i], line, sizeof line);
    fprintf(f, "      %s  %s%s\n", dim, line, end);
  }
  for (size_t i = 0; i < r->nwarnings; i++)
    fprintf(f, "      %s  warning: %s%s\n", dim, r->warnings[i].text, end);
}

/* ------------------------------------------------------------------------ */
/* JSON                                                                      */

static void json_str(FILE *f, const char *s, size_t n) {
  fputc('"', f);
  for (size_t i = 0; s && i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\')
      fprintf(f, "\\%c", c);
    else if (c == '\n')
      fputs("\\n", f);
    else if (c == '\r')
      fputs("\\r", f);
    else if (c == '\t')
      fputs("\\t", f);
    else if (c < 0x20 || c >= 0x7f)
      fprintf(f, "\\u%04x", c); /* bytes as Latin-1 code points */
    else
      fputc(c, f);
  }
  fputc('"', f);
}

static void json_cstr(FILE *f, const char *s) {
  if (!s)
    fputs("null", f);
  else
    json_str(f, s, strlen(s));
}

static void json_row(FILE *f, const detour_scenario_row *w) {
  fprintf(f, "{\"t_ms\":%lld,\"kind\":", (long long)w->t);
  json_cstr(f, detour_log_kind_name(w->kind));
  fprintf(f, ",\"message\":%zu,\"recipient\":", w->message);
  json_cstr(f, w->recipient);
  fputs(",\"server\":", f);
  json_cstr(f, w->server);
  fprintf(f, ",\"priority\":%d,\"attempt\":%u,\"result\":", w->priority,
          w->attempt);
  json_cstr(f, w->result);
  fputs(",\"class\":", f);
  json_cstr(f, detour_class_name(w->cls));
  fputs(",\"detail\":", f);
  json_cstr(f, w->detail);
  fputc('}', f);
}

static void json_server(FILE *f, const detour_scenario_server *s) {
  fputs("{\"name\":", f);
  json_cstr(f, s->name);
  fputs(",\"connections\":[", f);
  for (size_t i = 0; i < s->nconns; i++)
    fprintf(f,
            "%s{\"id\":%u,\"accept_ms\":%lld,\"close_ms\":%lld,"
            "\"closed_by\":\"%s\"}",
            i ? "," : "", s->conns[i].id, (long long)s->conns[i].accept_t,
            (long long)s->conns[i].close_t, s->conns[i].closed_by);
  fputs("],\"messages\":[", f);
  for (size_t i = 0; i < s->nmsgs; i++) {
    const detour_scenario_received *m = &s->msgs[i];
    fprintf(f, "%s{\"conn\":%u,\"t_ms\":%lld,\"from\":", i ? "," : "", m->conn,
            (long long)m->t);
    json_cstr(f, m->from);
    fputs(",\"to\":[", f);
    for (size_t k = 0; k < m->nrcpts; k++) {
      fputs(k ? "," : "", f);
      json_cstr(f, m->rcpts[k]);
    }
    fputs("],\"body\":", f);
    json_str(f, m->body, m->body_len);
    fprintf(f, ",\"complete\":%s,\"code\":%d}", m->complete ? "true" : "false",
            m->code);
  }
  fprintf(f, "],\"commands\":%zu}", s->ncmds);
}

static void json_result(FILE *f, const detour_scenario_result *r) {
  fputs("{\"name\":", f);
  json_cstr(f, r->name);
  fputs(",\"file\":", f);
  json_cstr(f, r->file);
  fputs(",\"rules\":[", f);
  for (size_t i = 0; i < r->nrules; i++) {
    fputs(i ? "," : "", f);
    json_cstr(f, r->rules[i]);
  }
  fputs("],\"verdict\":", f);
  json_cstr(f, detour_verdict_name(r->verdict));
  fputs(",\"client\":", f);
  json_cstr(f, r->client ? r->client : "builtin");
  fprintf(f, ",\"mutated\":%s,\"realtime\":%s,\"exit\":",
          r->mutated ? "true" : "false", r->realtime ? "true" : "false");
  if (r->exit_code >= 0)
    fprintf(f, "%d", r->exit_code);
  else
    fputs("null", f);
  fprintf(f, ",\"wall_ms\":%.1f,\"end_ms\":%lld,\"failures\":[", r->wall_ms,
          (long long)r->end_t);
  for (size_t i = 0; i < r->nfailures; i++) {
    fputs(i ? "," : "", f);
    json_cstr(f, r->failures[i]);
  }
  fputs("],\"rows\":[", f);
  for (size_t i = 0; i < r->nrows; i++) {
    fputs(i ? "," : "", f);
    json_row(f, &r->rows[i]);
  }
  fputs("],\"warnings\":[", f);
  for (size_t i = 0; i < r->nwarnings; i++) {
    fputs(i ? "," : "", f);
    json_cstr(f, r->warnings[i].text);
  }
  fputs("],\"servers\":[", f);
  for (size_t i = 0; i < r->nservers; i++) {
    fputs(i ? "," : "", f);
    json_server(f, &r->servers[i]);
  }
  fputs("]}\n", f);
}

/* ------------------------------------------------------------------------ */
/* rows.txt                                                                  */

static void rows_text(FILE *f, const detour_scenario_result *r) {
  fprintf(f, "== %s  %s\n", r->name, detour_verdict_name(r->verdict));
  char line[768], when[40];
  for (size_t i = 0; i < r->nrows; i++) {
    detour_scenario_format_row(&r->rows[i], line, sizeof line);
    if (!r->realtime)
      detour_format_time(r->start + r->rows[i].t, when, sizeof when);
    else
      snprintf(when, sizeof when, "-");
    fprintf(f, "  %s  %s\n", when, line);
  }
  for (size_t i = 0; i < r->nwarnings; i++)
    fprintf(f, "  warning: %s\n", r->warnings[i].text);
  for (size_t i = 0; i < r->nrcpts; i++)
    fprintf(f, "  outcome: msg %zu %s %s via %s\n", r->rcpts[i].message,
            r->rcpts[i].recipient,
            detour_rcpt_outcome_name(r->rcpts[i].outcome),
            r->rcpts[i].server ? r->rcpts[i].server : "none");
  for (size_t i = 0; i < r->nservers; i++) {
    const detour_scenario_server *s = &r->servers[i];
    fprintf(f,
            "  server %s: %zu connection(s), %zu message(s), %zu "
            "command(s)\n",
            s->name, s->nconns, s->nmsgs, s->ncmds);
  }
}

static int mkdir_p(const char *dir) {
  char path[4096];
  snprintf(path, sizeof path, "%s", dir);
  for (char *p = path + 1; *p; p++)
    if (*p == '/') {
      *p = '\0';
      if (mkdir(path, 0777) != 0 && errno != EEXIST)
        return -1;
      *p = '/';
    }
  return mkdir(path, 0777) != 0 && errno != EEXIST ? -1 : 0;
}

static FILE *open_in(const char *dir, const char *name, char *err,
                     size_t errlen) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  if (!f)
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
  return f;
}

int detour_suite_write(const detour_suite *s, const char *dir, char *err,
                       size_t errlen) {
  if (mkdir_p(dir) < 0) {
    snprintf(err, errlen, "%s: %s", dir, strerror(errno));
    return DETOUR_EIO;
  }
  FILE *j = open_in(dir, "results.jsonl", err, errlen);
  if (!j)
    return DETOUR_EIO;
  FILE *t = open_in(dir, "rows.txt", err, errlen);
  if (!t) {
    fclose(j);
    return DETOUR_EIO;
  }
  for (size_t i = 0; i < s->n; i++) {
    json_result(j, &s->results[i]);
    rows_text(t, &s->results[i]);
  }
  fprintf(t, "%zu passed, %zu failed, %zu skipped\n", s->passed, s->failed,
          s->skipped);
  bool bad = ferror(j) || ferror(t);
  bad |= fclose(j) != 0;
  bad |= fclose(t) != 0;
  if (bad) {
    snprintf(err, errlen, "%s: write failed", dir);
    return DETOUR_EIO;
  }
  return 0;
}

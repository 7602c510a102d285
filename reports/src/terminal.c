/*
 * terminal.c - what a person at a terminal sees: one line per scenario
 * (verdict, name, rules, then each failure's first line indented), and the
 * closing line "N passed, N failed[, N skipped]" that CI log readers look
 * for. Colour only on a terminal, and never when NO_COLOR is set.
 */
#include "rep_internal.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RED "\033[31m"
#define GREEN "\033[32m"
#define YELLOW "\033[33m"
#define BOLD "\033[1m"
#define RESET "\033[0m"

bool detour_report_use_color(FILE *f) {
  const char *no = getenv("NO_COLOR"), *term = getenv("TERM");
  if (!f || (no && no[0]) || (term && strcmp(term, "dumb") == 0))
    return false;
  int fd = fileno(f);
  return fd >= 0 && isatty(fd);
}

static const char *verdict_color(detour_verdict v) {
  switch (v) {
  case DETOUR_VERDICT_PASS:
    return GREEN;
  case DETOUR_VERDICT_SKIP:
    return YELLOW;
  default:
    return RED BOLD;
  }
}

/* A server's text on a terminal: control bytes (an ESC could repaint the
 * screen) shown as '?'; everything else, UTF-8 included, as it is. */
static void put_clean(FILE *f, const char *s, size_t n) {
  for (size_t i = 0; s && i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    fputc(c < 0x20 || c == 0x7f ? '?' : c, f);
  }
}

void detour_report_terminal_line(const detour_scenario_result *r, FILE *f,
                                 bool color) {
  if (!r || !f)
    return;
  const char *v = detour_verdict_name(r->verdict);
  if (color)
    fprintf(f, "%s%-5s%s ", verdict_color(r->verdict), v, RESET);
  else
    fprintf(f, "%-5s ", v);
  put_clean(f, r->name, r->name ? strlen(r->name) : 0);
  if (r->nrules) {
    fputs("  [", f);
    for (size_t i = 0; i < r->nrules; i++) {
      if (i)
        fputc(' ', f);
      put_clean(f, r->rules[i], strlen(r->rules[i]));
    }
    fputc(']', f);
  }
  fputc('\n', f);
  for (size_t i = 0; i < r->nfailures; i++) {
    const char *t = r->failures[i] ? r->failures[i] : "";
    const char *nl = strchr(t, '\n');
    fputs("      ", f);
    put_clean(f, t, nl ? (size_t)(nl - t) : strlen(t));
    fputc('\n', f);
  }
}

void detour_report_terminal_summary(const detour_suite *s, FILE *f,
                                    bool color) {
  if (!s || !f)
    return;
  size_t passed = detour__rep_count(s, DETOUR_VERDICT_PASS);
  size_t failed = detour__rep_count(s, DETOUR_VERDICT_FAIL) +
                  detour__rep_count(s, DETOUR_VERDICT_ERROR);
  size_t skipped = detour__rep_count(s, DETOUR_VERDICT_SKIP);
  const char *c = !color ? "" : failed ? RED BOLD : GREEN;
  fprintf(f, "%s%zu passed, %zu failed", c, passed, failed);
  if (skipped)
    fprintf(f, ", %zu skipped", skipped);
  fprintf(f, "%s\n", color ? RESET : "");
}

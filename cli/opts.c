/*
 * opts.c - the option parser every `detour` command uses (opts.h).
 *
 * getopt_long would do most of it, but not the parts a user notices: one
 * wording for every error, "did you mean", --version on every command
 * without declaring it, and no silent acceptance of an abbreviation that
 * a later option could make ambiguous. So options are matched whole.
 */
#include "opts.h"

#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "detour/detour.h"
#include "detour/scenario.h"

void cli_parser_init(cli_parser *p, const char *command, const cli_opt *opts,
                     size_t nopts, int argc, char **argv) {
  memset(p, 0, sizeof *p);
  p->command = command;
  p->opts = opts;
  p->nopts = nopts;
  p->argc = argc;
  p->argv = argv;
  p->i = 1;
}

int cli_usage_error(const char *command, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "detour %s: ", command);
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\nTry 'detour %s --help'.\n", command);
  va_end(ap);
  return CLI_EXIT_USAGE;
}

int cli_print_version(void) {
  printf("detour %s\n", DETOUR_VERSION);
  return CLI_EXIT_OK;
}

/* cli_usage_error's message, for cli_next: returns CLI_ERROR. */
__attribute__((format(printf, 2, 3))) static int
parse_error(const char *command, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  cli_usage_error(command, "%s", msg);
  return CLI_ERROR;
}

/* ------------------------------------------------------------------------ */
/* Near misses                                                               */

size_t cli_edit_distance(const char *a, const char *b) {
  size_t n = strlen(a), m = strlen(b);
  if (n > 64 || m > 64) /* option and command names are short */
    return n > m ? n : m;
  size_t d[65][65];
  for (size_t i = 0; i <= n; i++)
    d[i][0] = i;
  for (size_t j = 0; j <= m; j++)
    d[0][j] = j;
  for (size_t i = 1; i <= n; i++)
    for (size_t j = 1; j <= m; j++) {
      size_t cost = a[i - 1] != b[j - 1];
      size_t best = d[i - 1][j] + 1;
      if (d[i][j - 1] + 1 < best)
        best = d[i][j - 1] + 1;
      if (d[i - 1][j - 1] + cost < best)
        best = d[i - 1][j - 1] + cost;
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
          d[i - 2][j - 2] + 1 < best)
        best = d[i - 2][j - 2] + 1;
      d[i][j] = best;
    }
  return d[n][m];
}

const char *cli_nearest(const char *word, const char *const *candidates,
                        size_t n) {
  const char *best = NULL;
  size_t best_d = (size_t)-1;
  for (size_t i = 0; i < n; i++) {
    if (!candidates[i])
      continue;
    size_t d = cli_edit_distance(word, candidates[i]);
    if (d < best_d) {
      best_d = d;
      best = candidates[i];
    }
  }
  size_t len = strlen(word);
  return best && best_d <= 2 && best_d * 2 < len ? best : NULL;
}

/* "unknown option '--tp'", with the nearest long option ("--to") when the
 * typo is a small one. */
static int unknown_long(const cli_parser *p, const char *name, size_t len) {
  char typed[128];
  snprintf(typed, sizeof typed, "%.*s", (int)len, name);
  const char *names[64 + 2];
  size_t n = 0;
  for (size_t i = 0; i < p->nopts && n < 64; i++)
    if (p->opts[i].long_name)
      names[n++] = p->opts[i].long_name;
  names[n++] = "help";
  names[n++] = "version";
  const char *near = cli_nearest(typed, names, n);
  if (near)
    return parse_error(
        p->command, "unknown option '--%s'; did you mean '--%s'?", typed, near);
  return parse_error(p->command, "unknown option '--%s'", typed);
}

/* ------------------------------------------------------------------------ */
/* Parsing                                                                   */

static const cli_opt *find_long(const cli_parser *p, const char *name,
                                size_t len) {
  for (size_t i = 0; i < p->nopts; i++) {
    const char *l = p->opts[i].long_name;
    if (l && strlen(l) == len && strncmp(l, name, len) == 0)
      return &p->opts[i];
  }
  return NULL;
}

static const cli_opt *find_short(const cli_parser *p, char c) {
  for (size_t i = 0; i < p->nopts; i++)
    if (p->opts[i].short_name == c)
      return &p->opts[i];
  return NULL;
}

/* --name, --name=value, --name value. */
static int next_long(cli_parser *p, const char *arg, const char **value) {
  const char *name = arg + 2, *eq = strchr(name, '=');
  size_t len = eq ? (size_t)(eq - name) : strlen(name);
  const cli_opt *o = find_long(p, name, len);
  if (!o && len == 4 && strncmp(name, "help", 4) == 0 && !eq)
    return CLI_HELP;
  if (!o && len == 7 && strncmp(name, "version", 7) == 0 && !eq)
    return CLI_VERSION;
  if (!o)
    return unknown_long(p, name, len);
  p->last = o;
  if (!o->value) {
    if (eq)
      return parse_error(p->command, "option '--%s' takes no value",
                         o->long_name);
    return o->id;
  }
  if (eq) {
    *value = eq + 1;
    return o->id;
  }
  if (p->i >= p->argc)
    return parse_error(p->command, "option '--%s' needs a value (%s)",
                       o->long_name, o->value);
  *value = p->argv[p->i++];
  return o->id;
}

/* One letter of "-abc": a flag (the rest stays in the cluster) or an
 * option with a value (the rest of the cluster, or the next argument). */
static int next_short(cli_parser *p, const char **value) {
  char c = *p->cluster++;
  const cli_opt *o = find_short(p, c);
  if (!o && c == 'h')
    return p->cluster = NULL, CLI_HELP;
  if (!o && c == 'V')
    return p->cluster = NULL, CLI_VERSION;
  if (!o) {
    p->cluster = NULL;
    return parse_error(p->command, "unknown option '-%c'", c);
  }
  p->last = o;
  if (!o->value) {
    if (!*p->cluster)
      p->cluster = NULL;
    return o->id;
  }
  if (*p->cluster) {
    *value = p->cluster;
    p->cluster = NULL;
    return o->id;
  }
  p->cluster = NULL;
  if (p->i >= p->argc)
    return parse_error(p->command, "option '-%c' needs a value (%s)", c,
                       o->value);
  *value = p->argv[p->i++];
  return o->id;
}

int cli_next(cli_parser *p, const char **value) {
  *value = NULL;
  if (p->cluster)
    return next_short(p, value);
  if (p->i >= p->argc)
    return CLI_END;
  const char *arg = p->argv[p->i++];
  if (p->only_args || arg[0] != '-' || arg[1] == '\0') {
    *value = arg; /* "-" alone is an argument (stdin, by convention) */
    return CLI_ARG;
  }
  if (strcmp(arg, "--") == 0) {
    p->only_args = true;
    return cli_next(p, value);
  }
  if (arg[1] == '-')
    return next_long(p, arg, value);
  p->cluster = arg + 1;
  return next_short(p, value);
}

const char *cli_opt_name(const cli_parser *p) {
  static char buf[80];
  if (!p->last)
    return "?";
  if (p->last->long_name)
    snprintf(buf, sizeof buf, "--%s", p->last->long_name);
  else
    snprintf(buf, sizeof buf, "-%c", p->last->short_name);
  return buf;
}

/* ------------------------------------------------------------------------ */
/* Exit codes                                                                */

static const char *exit_meaning(int code) {
  switch (code) {
  case CLI_EXIT_OK:
    return "success";
  case CLI_EXIT_USAGE:
    return "usage error: a bad option, argument or --listen address";
  case CLI_EXIT_DATAERR:
    return "bad input data (a message over the size limit)";
  case CLI_EXIT_NOINPUT:
    return "an input file or path does not exist";
  case CLI_EXIT_NOUSER:
    return "a recipient was refused for good and none is pending";
  case CLI_EXIT_SOFTWARE:
    return "internal error";
  case CLI_EXIT_OSERR:
    return "system error (out of memory, cannot listen)";
  case CLI_EXIT_CANTCREAT:
    return "an output file cannot be created";
  case CLI_EXIT_IOERR:
    return "read or write error";
  case CLI_EXIT_TEMPFAIL:
    return "not delivered yet (deferred or interrupted): keep the message "
           "and try later";
  case CLI_EXIT_CONFIG:
    return "bad configuration or script file (the message names "
           "file:line:col)";
  default:
    return "";
  }
}

void cli_print_exit_codes(FILE *f, const int *codes, const char *extra) {
  fprintf(f, "\nExit status:\n");
  for (size_t i = 0; codes[i] >= 0; i++)
    fprintf(f, "  %-4d %s\n", codes[i], exit_meaning(codes[i]));
  if (extra)
    fputs(extra, f);
}

/* ------------------------------------------------------------------------ */
/* Interrupts                                                                */

static volatile sig_atomic_t caught_signal;

static void on_signal(int sig) {
  caught_signal = sig;
  detour_scenario_interrupt();
}

void cli_catch_interrupts(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sa.sa_flags = SA_RESETHAND;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
}

int cli_caught_signal(void) { return caught_signal; }

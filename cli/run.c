/*
 * run.c - `detour run [PATH ...] [--filter GLOB] [-j N] [--realtime]
 * [--mutate M] [--out DIR] [--verbose]`: runs scenario files (directories
 * searched for *.yaml) against the built-in engine and scripted fake
 * servers, prints PASS/FAIL per scenario with a diff for each failure, and
 * exits 0 only when every scenario passed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "detour/scenario.h"
#include "run.h"

#define MAX_PATHS 256
#define MAX_MUTATIONS 16

typedef struct {
  const char *paths[MAX_PATHS];
  size_t npaths;
  const char *mutations[MAX_MUTATIONS];
  size_t nmutations;
  const char *filter, *out_dir;
  unsigned jobs;
  bool realtime, verbose, quiet, no_progress;
} run_opts;

static void usage(FILE *f) {
  fprintf(f,
          "Usage: detour run [PATH ...] [OPTIONS]\n"
          "\nRun scenario files (directories are searched for *.yaml;\n"
          "default: scenarios/conformance) and check every expectation.\n"
          "\nOptions:\n"
          "  -f, --filter GLOB   only scenarios whose name or file matches\n"
          "  -j, --jobs N        run N scenarios at once (default: 1)\n"
          "      --realtime      real timers; times checked with the "
          "scenario's tolerance\n"
          "      --mutate M      break the client on purpose (repeatable):\n"
          "                      classify:KEY=CLASS, detour=allow|deny,\n"
          "                      detour.rule=RULE, retry.interval=D,\n"
          "                      retry.max_attempts=N\n"
          "  -o, --out DIR       write DIR/results.jsonl and DIR/rows.txt\n"
          "  -v, --verbose       print the log rows of passing scenarios "
          "too\n"
          "  -q, --quiet         print only failures and the summary\n"
          "      --no-progress   no progress line on a terminal\n"
          "\nExit status: 0 every scenario passed, 1 one failed, 64 usage.\n");
}

static int bad(const char *fmt, const char *arg) {
  fprintf(stderr, "detour run: ");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, "\nTry 'detour run --help'.\n");
  return EX_USAGE;
}

/* The value of option argv[*i]: attached ("-j2", "--jobs=2", kept in
 * *attached by split()) or the next argument. */
static const char *attached;
static const char *value(int argc, char **argv, int *i) {
  if (attached)
    return attached;
  if (*i + 1 >= argc)
    return NULL;
  return argv[++*i];
}

/* "--jobs=2" -> "--jobs" + "2"; "-j2" -> "-j" + "2". name gets the option
 * alone. */
static const char *split(const char *a, char *name, size_t len) {
  attached = NULL;
  snprintf(name, len, "%s", a);
  char *eq = strchr(name, '=');
  if (a[0] == '-' && a[1] == '-' && eq) {
    *eq = '\0';
    attached = a + (eq - name) + 1;
  } else if (a[0] == '-' && strchr("fjo", a[1]) && a[1] && a[2]) {
    name[2] = '\0';
    attached = a + 2;
  }
  return name;
}

static int parse(int argc, char **argv, run_opts *o) {
  for (int i = 1; i < argc; i++) {
    char name[64], err[512];
    const char *a = split(argv[i], name, sizeof name), *v;
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      usage(stdout);
      return -1;
    } else if (!strcmp(a, "-f") || !strcmp(a, "--filter")) {
      if (!(o->filter = value(argc, argv, &i)))
        return bad("%s needs a glob", a);
    } else if (!strcmp(a, "-j") || !strcmp(a, "--jobs")) {
      char *end;
      long n = (v = value(argc, argv, &i)) ? strtol(v, &end, 10) : 0;
      if (!v || *end || n < 1 || n > 64)
        return bad("%s needs a number 1..64", a);
      o->jobs = (unsigned)n;
    } else if (!strcmp(a, "--realtime")) {
      o->realtime = true;
    } else if (!strcmp(a, "--mutate")) {
      if (!(v = value(argc, argv, &i)))
        return bad("%s needs a mutation", a);
      if (detour_scenario_check_mutation(v, err, sizeof err) < 0)
        return bad("%s", err);
      if (o->nmutations >= MAX_MUTATIONS)
        return bad("too many %s", a);
      o->mutations[o->nmutations++] = v;
    } else if (!strcmp(a, "-o") || !strcmp(a, "--out")) {
      if (!(o->out_dir = value(argc, argv, &i)))
        return bad("%s needs a directory", a);
    } else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
      o->verbose = true;
    } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
      o->quiet = true;
    } else if (!strcmp(a, "--no-progress")) {
      o->no_progress = true;
    } else if (a[0] == '-' && a[1]) {
      return bad("unknown option '%s'", argv[i]);
    } else if (o->npaths >= MAX_PATHS) {
      return bad("too many paths (at most 256), at '%s'", a);
    } else {
      o->paths[o->npaths++] = argv[i];
    }
  }
  if (o->npaths == 0)
    o->paths[o->npaths++] = "scenarios/conformance";
  return 0;
}

/* Colour only on a terminal, and never when NO_COLOR is set. */
static bool want_color(FILE *f) {
  const char *nc = getenv("NO_COLOR");
  return isatty(fileno(f)) && !(nc && *nc);
}

/* With --quiet, print passing lines nowhere: run quietly and print the
 * failures afterwards. */
static void print_failures(const detour_suite *s, bool color) {
  for (size_t i = 0; i < s->n; i++) {
    const detour_scenario_result *r = &s->results[i];
    if (r->verdict != DETOUR_VERDICT_FAIL && r->verdict != DETOUR_VERDICT_ERROR)
      continue;
    printf("%s %s\n", detour_verdict_name(r->verdict), r->name);
    detour_scenario_result_print(r, stdout, color, false);
  }
}

int detour_cli_run(int argc, char **argv) {
  run_opts o = {.jobs = 1};
  int rc = parse(argc, argv, &o);
  if (rc != 0)
    return rc < 0 ? 0 : rc;
  bool color = want_color(stdout);
  detour_suite_options so = {
      .paths = o.paths,
      .npaths = o.npaths,
      .filter = o.filter,
      .jobs = o.jobs,
      .scenario = {.realtime = o.realtime,
                   .mutations = o.mutations,
                   .nmutations = o.nmutations},
      .out = o.quiet ? NULL : stdout,
      .color = color,
      .progress = !o.no_progress && isatty(fileno(stderr)) ? stderr : NULL,
      .verbose = o.verbose};
  detour_suite suite;
  char err[1024] = "";
  if (detour_suite_run(&so, &suite, err, sizeof err) < 0) {
    fprintf(stderr, "detour run: %s\n", err);
    return EX_NOINPUT;
  }
  if (o.quiet)
    print_failures(&suite, color);
  int status = suite.failed ? 1 : 0;
  if (suite.n == 0) {
    fprintf(stderr, "detour run: no scenario matched\n");
    status = 1;
  }
  if (suite.skipped)
    printf("%zu passed, %zu failed, %zu skipped\n", suite.passed, suite.failed,
           suite.skipped);
  else
    printf("%zu passed, %zu failed\n", suite.passed, suite.failed);
  printf("wall time: %.2f s (%s time, %u job%s)\n", suite.wall_ms / 1000.0,
         o.realtime ? "real" : "virtual", o.jobs, o.jobs == 1 ? "" : "s");
  if (o.out_dir && detour_suite_write(&suite, o.out_dir, err, sizeof err) < 0) {
    fprintf(stderr, "detour run: %s\n", err);
    status = EX_IOERR;
  }
  detour_suite_free(&suite);
  return status;
}

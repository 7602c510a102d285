/*
 * run.c - `detour run [PATH ...] [--filter GLOB] [-j N] [--realtime]
 * [--mutate M] [--out DIR] [--json F] [--junit F] [--html F] [--pcap DIR]
 * [--report-dir DIR] [--client NAME] [--verbose]`: runs scenario files
 * (directories searched for *.yaml) against the built-in engine (or an
 * external client through its adapter: --client postfix) and scripted
 * fake servers, prints PASS/FAIL per scenario with a diff for each failure,
 * writes the reports asked for (reports/), and exits 0 only when every
 * scenario passed (77 when every scenario was skipped, so CTest's
 * SKIP_RETURN_CODE reports a skip, never a pass).
 *
 * SIGINT, SIGTERM and SIGHUP stop the run cleanly: the running scenarios
 * give up, tear down their fake servers and simulated networks
 * (namespaces, ns-3), and the command exits 128 + the signal. A second
 * signal kills at once; the next run sweeps what that leaves.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "detour/adapter.h"
#include "detour/reports.h"
#include "detour/scenario.h"
#include "opts.h"
#include "run.h"

#define MAX_PATHS 256
#define MAX_MUTATIONS 16
#define MAX_FILTERS 64
/* CTest's SKIP_RETURN_CODE (and automake's): nothing could run here. */
#define EXIT_ALL_SKIPPED 77

typedef struct {
  const char *paths[MAX_PATHS];
  size_t npaths;
  const char *mutations[MAX_MUTATIONS];
  size_t nmutations;
  const char *filters[MAX_FILTERS];
  size_t nfilters;
  const char *out_dir, *client;
  const char *json, *junit, *html, *pcap_dir, *report_dir;
  unsigned jobs;
  bool realtime, verbose, quiet, no_progress;
  char default_path[4096];
} run_opts;

/* rel ("scenarios/conformance", "docs/rules.md") where it exists: under
 * the current directory (a clone), in the installed share/detour next to
 * the binary (bin/../share/detour), or in the source tree the binary was
 * built from. Returns buf, or rel itself when none exists. */
static const char *find_data(const char *rel, char *buf, size_t len) {
  if (access(rel, F_OK) == 0)
    return rel;
  char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash) {
      *slash = '\0';
      snprintf(buf, len, "%s/../share/detour/%s", exe, rel);
      if (access(buf, F_OK) == 0)
        return buf;
    }
  }
#ifdef DETOUR_SOURCE_DIR
  snprintf(buf, len, "%s/%s", DETOUR_SOURCE_DIR, rel);
  if (access(buf, F_OK) == 0)
    return buf;
#endif
  return rel;
}

static void usage(FILE *f) {
  fprintf(f, "Usage: detour run [PATH ...] [OPTIONS]\n"
             "\nRun scenario files (directories are searched for *.yaml) and\n"
             "check every expectation. Default: the conformance suite,\n"
             "./scenarios/conformance, else the installed one\n"
             "(share/detour/scenarios/conformance next to the binary).\n"
             "\nOptions:\n"
             "  -f, --filter F      only scenarios that F selects; repeat it\n"
             "                      for more: a rule id (R4: every scenario\n"
             "                      checking R4), a glob (r3-*-switch), or a\n"
             "                      part of the name or file (timeout)\n"
             "  -j, --jobs N        run N scenarios at once (default: 1)\n"
             "      --realtime      real timers; times checked with the "
             "scenario's tolerance\n"
             "      --mutate M      break the client on purpose (repeatable):\n"
             "                      classify:KEY=CLASS, detour=allow|deny,\n"
             "                      detour.rule=RULE, retry.interval=D,\n"
             "                      retry.max_attempts=N\n"
             "      --client NAME   the client under test: builtin (default)\n"
             "                      or an external client's adapter\n"
             "                      (postfix); always real time, judged by\n"
             "                      what the fake servers saw\n"
             "  -o, --out DIR       write DIR/results.jsonl and DIR/rows.txt\n"
             "      --json FILE     the run as one JSON document\n"
             "      --junit FILE    JUnit XML for CI systems\n"
             "      --html FILE     one HTML file: summary by SPEC rule,\n"
             "                      a timeline and the send log per "
             "scenario\n"
             "      --pcap DIR      capture each scenario's packets into\n"
             "                      DIR/<scenario>.pcap (root or "
             "CAP_NET_RAW)\n"
             "      --report-dir DIR  all of the above into DIR: "
             "report.json,\n"
             "                      junit.xml, report.html, pcap/, "
             "results.jsonl,\n"
             "                      rows.txt\n"
             "  -v, --verbose       print the log rows of passing scenarios "
             "too\n"
             "  -q, --quiet         print only failures and the summary\n"
             "      --no-progress   no progress line on a terminal\n"
             "  -h, --help          this help\n"
             "      --version       the version\n"
             "\nOptions take their value as --opt VALUE or --opt=VALUE.\n");
  static const int codes[] = {0, 64, 66, 74, -1};
  cli_print_exit_codes(
      f, codes,
      "  1    a scenario failed, or could not run (ERROR)\n"
      "  78   every scenario file given is broken (each ERROR names\n"
      "       file:line:col)\n"
      "  77   every scenario was skipped (e.g. a network: scenario\n"
      "       without root or ns-3)\n"
      "  128+N  stopped by signal N (after teardown)\n");
}

enum {
  OPT_FILTER = 1,
  OPT_JOBS,
  OPT_REALTIME,
  OPT_MUTATE,
  OPT_CLIENT,
  OPT_OUT,
  OPT_JSON,
  OPT_JUNIT,
  OPT_HTML,
  OPT_PCAP,
  OPT_REPORT_DIR,
  OPT_VERBOSE,
  OPT_QUIET,
  OPT_NO_PROGRESS,
};

static const cli_opt run_options[] = {
    {OPT_FILTER, 'f', "filter", "F"},
    {OPT_JOBS, 'j', "jobs", "N"},
    {OPT_REALTIME, 0, "realtime", NULL},
    {OPT_MUTATE, 0, "mutate", "M"},
    {OPT_CLIENT, 0, "client", "NAME"},
    {OPT_OUT, 'o', "out", "DIR"},
    {OPT_JSON, 0, "json", "FILE"},
    {OPT_JUNIT, 0, "junit", "FILE"},
    {OPT_HTML, 0, "html", "FILE"},
    {OPT_PCAP, 0, "pcap", "DIR"},
    {OPT_REPORT_DIR, 0, "report-dir", "DIR"},
    {OPT_VERBOSE, 'v', "verbose", NULL},
    {OPT_QUIET, 'q', "quiet", NULL},
    {OPT_NO_PROGRESS, 0, "no-progress", NULL},
};

static int bad(const char *fmt, const char *arg) {
  return cli_usage_error("run", fmt, arg);
}

/* One option with its value (NULL for a flag). 0 or CLI_EXIT_USAGE. */
static int take_option(run_opts *o, int id, const char *name, const char *v) {
  char err[512];
  char *end;
  long n;
  switch (id) {
  case OPT_FILTER:
    if (o->nfilters >= MAX_FILTERS)
      return bad("too many %s", name);
    o->filters[o->nfilters++] = v;
    return 0;
  case OPT_JOBS:
    n = strtol(v, &end, 10);
    if (*end || end == v || n < 1 || n > 64)
      return cli_usage_error("run", "%s takes a number 1..64, not '%s'", name,
                             v);
    o->jobs = (unsigned)n;
    return 0;
  case OPT_REALTIME:
    o->realtime = true;
    return 0;
  case OPT_MUTATE:
    if (detour_scenario_check_mutation(v, err, sizeof err) < 0)
      return bad("%s", err);
    if (o->nmutations >= MAX_MUTATIONS)
      return bad("too many %s", name);
    o->mutations[o->nmutations++] = v;
    return 0;
  case OPT_CLIENT:
    if (!detour_scenario_client_exists(v) &&
        !detour_adapter_load(v, err, sizeof err))
      return bad("%s", err);
    o->client = v;
    return 0;
  case OPT_OUT:
    o->out_dir = v;
    return 0;
  case OPT_JSON:
    o->json = v;
    return 0;
  case OPT_JUNIT:
    o->junit = v;
    return 0;
  case OPT_HTML:
    o->html = v;
    return 0;
  case OPT_PCAP:
    o->pcap_dir = v;
    return 0;
  case OPT_REPORT_DIR:
    o->report_dir = v;
    return 0;
  case OPT_VERBOSE:
    o->verbose = true;
    return 0;
  case OPT_QUIET:
    o->quiet = true;
    return 0;
  case OPT_NO_PROGRESS:
    o->no_progress = true;
    return 0;
  default:
    return CLI_EXIT_USAGE;
  }
}

/* 0 to go on, -1 after --help/--version, or an exit code. */
static int parse(int argc, char **argv, run_opts *o) {
  cli_parser p;
  cli_parser_init(&p, "run", run_options,
                  sizeof run_options / sizeof *run_options, argc, argv);
  const char *v;
  int id;
  while ((id = cli_next(&p, &v)) != CLI_END) {
    if (id == CLI_HELP)
      return usage(stdout), -1;
    if (id == CLI_VERSION)
      return cli_print_version(), -1;
    if (id == CLI_ERROR)
      return CLI_EXIT_USAGE;
    if (id == CLI_ARG) {
      if (o->npaths >= MAX_PATHS)
        return bad("too many paths (at most 256), at '%s'", v);
      o->paths[o->npaths++] = v;
      continue;
    }
    int rc = take_option(o, id, cli_opt_name(&p), v);
    if (rc)
      return rc;
  }
  if (o->npaths == 0) {
    o->paths[o->npaths++] = find_data("scenarios/conformance", o->default_path,
                                      sizeof o->default_path);
    if (!o->quiet)
      printf("suite: %s\n", o->paths[0]);
  }
  return 0;
}

/* Every selected scenario skipped: say why (the first reason) and exit 77,
 * never 0 with nothing run. */
static int all_skipped(const detour_suite *s) {
  const detour_scenario_result *r = &s->results[0];
  fprintf(stderr, "detour run: nothing ran here; %s\n",
          r->nfailures ? r->failures[0] : "no reason given");
  return EXIT_ALL_SKIPPED;
}

/* "real" when every scenario that ran used real time (--realtime, or a
 * simulated network), "virtual" when none did, else "mixed". */
static const char *time_mode(const detour_suite *s, bool realtime) {
  size_t real = 0;
  for (size_t i = 0; i < s->n; i++)
    real += s->results[i].realtime;
  if (realtime || (s->n && real == s->n))
    return "real";
  return real ? "mixed" : "virtual";
}

/* After the run, like pytest's short summary: every scenario that failed
 * or could not run, once more, with its file and first failure. */
static void list_failures_again(const detour_suite *s) {
  if (s->failed == 0)
    return;
  printf("\nfailed:\n");
  for (size_t i = 0; i < s->n; i++) {
    const detour_scenario_result *r = &s->results[i];
    if (r->verdict != DETOUR_VERDICT_FAIL && r->verdict != DETOUR_VERDICT_ERROR)
      continue;
    const char *first = r->nfailures && r->failures[0] ? r->failures[0] : "";
    const char *nl = strchr(first, '\n');
    printf("  %-5s %s (%s): %.*s\n", detour_verdict_name(r->verdict), r->name,
           r->file ? r->file : "?", nl ? (int)(nl - first) : (int)strlen(first),
           first);
  }
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

/* --report-dir DIR: what an earlier run wrote there goes first, so the
 * directory holds this run's reports only (a stale pcap of a scenario that
 * no longer runs would mislead). Only our own file names are removed. */
static int clear_report_dir(const char *d) {
  static const char *const names[] = {
      DETOUR_REPORT_JSON_NAME, DETOUR_REPORT_JUNIT_NAME,
      DETOUR_REPORT_HTML_NAME, "results.jsonl", "rows.txt"};
  char path[4096];
  for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
    snprintf(path, sizeof path, "%s/%s", d, names[i]);
    if (unlink(path) != 0 && errno != ENOENT)
      return fprintf(stderr, "detour run: cannot remove %s: %s\n", path,
                     strerror(errno)),
             CLI_EXIT_CANTCREAT;
  }
  snprintf(path, sizeof path, "%s/%s", d, DETOUR_REPORT_PCAP_DIR);
  DIR *dir = opendir(path);
  struct dirent *e;
  while (dir && (e = readdir(dir)) != NULL) {
    size_t n = strlen(e->d_name);
    if (n > 5 && strcmp(e->d_name + n - 5, ".pcap") == 0) {
      char f[4096 + 256];
      snprintf(f, sizeof f, "%s/%s", path, e->d_name);
      unlink(f);
    }
  }
  if (dir)
    closedir(dir);
  return 0;
}

/* The path of target relative to the directory of file (both made
 * absolute), for a link in a report that still works when the two move
 * together. Falls back to target's absolute path. */
static void relative_to(const char *file, const char *target, char *buf,
                        size_t len) {
  char dir[4096], abs_t[4096], tmp[4096];
  snprintf(tmp, sizeof tmp, "%s", file);
  char *slash = strrchr(tmp, '/');
  if (slash)
    *slash = '\0';
  if (!realpath(slash ? tmp : ".", dir) || !realpath(target, abs_t)) {
    snprintf(buf, len, "%s", target);
    return;
  }
  /* the longest common prefix that ends at a '/' of both paths */
  size_t i = 0, common = 0;
  for (; dir[i] && dir[i] == abs_t[i]; i++)
    if (dir[i] == '/')
      common = i;
  if (dir[i] == '\0' && abs_t[i] == '/')
    common = i; /* dir itself holds target */
  size_t o = 0;
  buf[0] = '\0';
  for (const char *p = dir + common; *p; p++) /* one "../" per component */
    if (*p == '/' && o + 3 < len)
      o += (size_t)snprintf(buf + o, len - o, "../");
  snprintf(buf + o, len - o, "%s", abs_t + common + 1);
}

/* --report-dir DIR: every artefact under DIR with its default name,
 * unless named on its own. Paths are built in bufs (kept by the caller). */
static void expand_report_dir(run_opts *o, char bufs[5][4096]) {
  const char *d = o->report_dir;
  if (!d)
    return;
  const char *names[] = {DETOUR_REPORT_JSON_NAME, DETOUR_REPORT_JUNIT_NAME,
                         DETOUR_REPORT_HTML_NAME, DETOUR_REPORT_PCAP_DIR};
  const char **slots[] = {&o->json, &o->junit, &o->html, &o->pcap_dir};
  for (size_t k = 0; k < 4; k++) {
    snprintf(bufs[k], 4096, "%s/%s", d, names[k]);
    if (!*slots[k])
      *slots[k] = bufs[k];
  }
  if (!o->out_dir)
    o->out_dir = d;
}

/* pcap hooks when --pcap asked and capture is possible here; else say why
 * once and go on without (the verdicts do not depend on it). */
static detour_pcap_hooks *start_captures(const run_opts *o,
                                         detour_suite_options *so) {
  if (!o->pcap_dir)
    return NULL;
  char why[256];
  if (!detour_pcap_available(why, sizeof why)) {
    fprintf(stderr,
            "detour run: no pcap (needs root or CAP_NET_RAW): %s; going "
            "on without it\n",
            why);
    return NULL;
  }
  detour_pcap_hooks *caps = detour_pcap_hooks_new(o->pcap_dir, stderr);
  if (caps) {
    so->scenario.hooks.on_started = detour_pcap_hook_start;
    so->scenario.hooks.on_finished = detour_pcap_hook_stop;
    so->scenario.hooks.arg = caps;
  }
  return caps;
}

static void join_args(int argc, char **argv, char *buf, size_t len) {
  size_t o = (size_t)snprintf(buf, len, "detour");
  for (int i = 0; i < argc && o < len; i++)
    o += (size_t)snprintf(buf + o, len - o, " %s", argv[i]);
}

/* "postfix 3.7.11 (external client, ...)" for an external client, else
 * NULL (the reports' default: the built-in engine). */
static const char *subject_of(const char *client, char *buf, size_t len) {
  const detour_adapter *a = detour_adapter_find(client);
  if (!a)
    return NULL;
  char version[128] = "";
  if (!a->version || !a->version(a, version, sizeof version))
    snprintf(version, sizeof version, "version unknown");
  snprintf(buf, len, "%s %s (external client, judged by the fake servers)",
           a->name, version);
  return buf;
}

/* The JSON, JUnit and HTML files asked for; prints where they went. */
static int write_reports(const run_opts *o, const detour_suite *s,
                         const char *started, const char *command) {
  if (!o->json && !o->junit && !o->html)
    return 0;
  char rules_buf[4096], rules_url[4096] = "";
  const char *rules = find_data("docs/rules.md", rules_buf, sizeof rules_buf);
  if (o->html && access(rules, F_OK) == 0)
    relative_to(o->html, rules, rules_url, sizeof rules_url);
  detour_report_meta meta = {.title = "detour run",
                             .rules_url = rules_url[0] ? rules_url : NULL,
                             .version = DETOUR_VERSION,
                             .started = started,
                             .mode = o->realtime || o->client ? "realtime"
                                                              : "virtual",
                             .command = command,
                             .mutations = o->mutations,
                             .nmutations = o->nmutations};
  char subject[512];
  meta.subject = subject_of(o->client, subject, sizeof subject);
  detour_report_paths p = {o->json, o->junit, o->html};
  char err[1024] = "";
  if (detour_report_write_files(s, &meta, &p, err, sizeof err) != 0) {
    fprintf(stderr, "detour run: %s\n", err);
    return EX_IOERR;
  }
  return 0;
}

static void say_where(const run_opts *o, const detour_pcap_hooks *caps) {
  if (o->report_dir) {
    printf("reports: %s/\n", o->report_dir);
    return;
  }
  const char *what[] = {o->json, o->junit, o->html, o->out_dir,
                        caps ? o->pcap_dir : NULL};
  for (size_t k = 0; k < sizeof what / sizeof *what; k++)
    if (what[k])
      printf("reports: %s\n", what[k]);
}

static void now_iso(char *buf, size_t len) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  detour_format_time((detour_ms)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, buf,
                     len);
}

int detour_cli_run(int argc, char **argv) {
  run_opts o = {.jobs = 1};
  int rc = parse(argc, argv, &o);
  if (rc != 0)
    return rc < 0 ? 0 : rc;
  char report_paths[5][4096], started[40], command[4096];
  if (o.report_dir && (rc = clear_report_dir(o.report_dir)) != 0)
    return rc;
  expand_report_dir(&o, report_paths);
  now_iso(started, sizeof started);
  join_args(argc, argv, command, sizeof command);
  bool color = detour_report_use_color(stdout);
  cli_catch_interrupts();
  detour_suite_options so = {
      .paths = o.paths,
      .npaths = o.npaths,
      .filters = o.filters,
      .nfilters = o.nfilters,
      .jobs = o.jobs,
      .scenario = {.realtime = o.realtime,
                   .mutations = o.mutations,
                   .nmutations = o.nmutations,
                   .client = o.client},
      .out = o.quiet ? NULL : stdout,
      .color = color,
      .progress = !o.no_progress && isatty(fileno(stderr)) ? stderr : NULL,
      .verbose = o.verbose};
  detour_pcap_hooks *caps = start_captures(&o, &so);
  detour_suite suite;
  char err[1024] = "";
  if (detour_suite_run(&so, &suite, err, sizeof err) < 0) {
    fprintf(stderr, "detour run: %s\n", err);
    detour_pcap_hooks_free(caps);
    return EX_NOINPUT;
  }
  if (o.quiet)
    print_failures(&suite, color);
  else
    list_failures_again(&suite);
  int status = suite.failed ? 1 : 0;
  if (suite.n == 0 && !cli_caught_signal()) {
    fprintf(stderr, "detour run: no scenario matched\n");
    status = 1;
  } else if (suite.n > 0 && suite.skipped == suite.n) {
    status = all_skipped(&suite);
  } else if (suite.n > 0 && suite.errors == suite.n) {
    /* nothing could be checked: every file is broken, as a bad
     * configuration is in the other commands */
    status = CLI_EXIT_CONFIG;
  }
  if (o.out_dir && detour_suite_write(&suite, o.out_dir, err, sizeof err) < 0) {
    fprintf(stderr, "detour run: %s\n", err);
    status = EX_IOERR;
  }
  if (write_reports(&o, &suite, started, command) != 0)
    status = EX_IOERR;
  say_where(&o, caps);
  detour_pcap_hooks_free(caps);
  printf("wall time: %.2f s (%s time, %u job%s)\n", suite.wall_ms / 1000.0,
         time_mode(&suite, o.realtime), o.jobs, o.jobs == 1 ? "" : "s");
  char subject[512];
  if (subject_of(o.client, subject, sizeof subject))
    printf("client under test: %s\n", subject);
  if (o.nmutations)
    printf("MUTATED run: the client was broken on purpose (%zu "
           "mutation%s); no verdict here certifies anything\n",
           o.nmutations, o.nmutations == 1 ? "" : "s");
  /* The closing line CI systems read: a broken scenario file (ERROR) is
   * counted apart from a scenario whose expectations failed (FAIL). */
  printf("%zu passed, %zu failed", suite.passed, suite.failed - suite.errors);
  if (suite.errors)
    printf(", %zu error%s", suite.errors, suite.errors == 1 ? "" : "s");
  if (suite.skipped)
    printf(", %zu skipped", suite.skipped);
  printf("\n");
  detour_suite_free(&suite);
  if (cli_caught_signal()) {
    fprintf(stderr,
            "detour run: stopped by signal %d; everything torn "
            "down\n",
            (int)cli_caught_signal());
    status = 128 + cli_caught_signal();
  }
  return status;
}

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
#include "run.h"

#define MAX_PATHS 256
#define MAX_MUTATIONS 16
/* CTest's SKIP_RETURN_CODE (and automake's): nothing could run here. */
#define EXIT_ALL_SKIPPED 77

typedef struct {
  const char *paths[MAX_PATHS];
  size_t npaths;
  const char *mutations[MAX_MUTATIONS];
  size_t nmutations;
  const char *filter, *out_dir, *client;
  const char *json, *junit, *html, *pcap_dir, *report_dir;
  unsigned jobs;
  bool realtime, verbose, quiet, no_progress;
} run_opts;

static void usage(FILE *f) {
  fprintf(f, "Usage: detour run [PATH ...] [OPTIONS]\n"
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
             "\nExit status: 0 every scenario passed, 1 one failed, 77 every\n"
             "scenario was skipped (e.g. a network: scenario without root or\n"
             "ns-3), 64 usage, 128+N stopped by signal N (after teardown).\n");
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
  } else if (a[0] == '-' && a[1] != '-' && a[1] && strchr("fjo", a[1]) &&
             a[2]) {
    name[2] = '\0';
    attached = a + 2;
  }
  return name;
}

static const char **report_option(run_opts *o, const char *name) {
  if (!strcmp(name, "--json"))
    return &o->json;
  if (!strcmp(name, "--junit"))
    return &o->junit;
  if (!strcmp(name, "--html"))
    return &o->html;
  if (!strcmp(name, "--pcap"))
    return &o->pcap_dir;
  return &o->report_dir;
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
    } else if (!strcmp(a, "--client")) {
      if (!(o->client = value(argc, argv, &i)))
        return bad("%s needs a client: builtin, a name of clients/ or a "
                   "manifest's path",
                   a);
      if (!detour_scenario_client_exists(o->client) &&
          !detour_adapter_load(o->client, err, sizeof err))
        return bad("%s", err);
    } else if (!strcmp(a, "-o") || !strcmp(a, "--out")) {
      if (!(o->out_dir = value(argc, argv, &i)))
        return bad("%s needs a directory", a);
    } else if (!strcmp(a, "--json") || !strcmp(a, "--junit") ||
               !strcmp(a, "--html") || !strcmp(a, "--pcap") ||
               !strcmp(a, "--report-dir")) {
      if (!(v = value(argc, argv, &i)))
        return bad("%s needs a path", a);
      *report_option(o, a) = v;
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

static volatile sig_atomic_t caught_signal;

/* Only flags: the runner notices within one loop tick and tears down on
 * its normal path. SA_RESETHAND: a second signal kills. */
static void on_signal(int sig) {
  caught_signal = sig;
  detour_scenario_interrupt();
}

static void catch_signals(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sa.sa_flags = SA_RESETHAND;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  /* fake servers write to peers that may have gone */
  signal(SIGPIPE, SIG_IGN);
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

/* "postfix 3.7.11 (clients/postfix.yaml)" for an external client, else
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
  char subject[512];
  detour_report_meta meta = {
      .title = "detour run",
      .version = DETOUR_VERSION,
      .started = started,
      .mode = o->realtime || o->client ? "realtime" : "virtual",
      .command = command,
      .subject = subject_of(o->client, subject, sizeof subject),
      .mutations = o->mutations,
      .nmutations = o->nmutations};
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
  expand_report_dir(&o, report_paths);
  now_iso(started, sizeof started);
  join_args(argc, argv, command, sizeof command);
  bool color = detour_report_use_color(stdout);
  catch_signals();
  detour_suite_options so = {
      .paths = o.paths,
      .npaths = o.npaths,
      .filter = o.filter,
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
  int status = suite.failed ? 1 : 0;
  if (suite.n == 0 && !caught_signal) {
    fprintf(stderr, "detour run: no scenario matched\n");
    status = 1;
  } else if (suite.n > 0 && suite.skipped == suite.n) {
    status = all_skipped(&suite);
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
  /* The closing line CI systems read. */
  if (suite.skipped)
    printf("%zu passed, %zu failed, %zu skipped\n", suite.passed, suite.failed,
           suite.skipped);
  else
    printf("%zu passed, %zu failed\n", suite.passed, suite.failed);
  detour_suite_free(&suite);
  if (caught_signal) {
    fprintf(stderr,
            "detour run: stopped by signal %d; everything torn "
            "down\n",
            (int)caught_signal);
    status = 128 + caught_signal;
  }
  return status;
}

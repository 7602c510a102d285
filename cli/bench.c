/*
 * bench.c - `detour bench`: failover latency per fault kind, in real time
 * on loopback, through the real engine and libuv driver (bench/latency.c),
 * printed as a table (p50, p90, p99, max, messages/s, overhead over the
 * healthy baseline); then the throughput with the primary down against
 * the primary up; then, when Postfix can run here, Postfix's latency for
 * the refuse fault beside detour's. --json writes the same figures.
 */
#include "bench.h"

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "detour/detour.h"
#include "opts.h"

#ifdef DETOUR_HAVE_BENCH
#include "latency.h"

#define MAX_FAULTS 32
#define DEFAULT_MESSAGES 200
#define DEFAULT_TP_CONCURRENCY 8

typedef enum { PF_AUTO = 0, PF_YES, PF_NO } postfix_mode;

typedef struct {
  size_t messages, concurrency, tp_concurrency;
  const detour_bench_fault *faults[MAX_FAULTS];
  size_t nfaults;
  const char *json;
  postfix_mode postfix;
  detour_ms timeout; /* per run; 0: from the run's size (run_timeout) */
} bench_opts;

/* Everything measured, for the table and the JSON file. */
typedef struct {
  detour_bench_result res[MAX_FAULTS];
  bool ran_tp;
  detour_bench_result tp_up, tp_down;
  int pf_rc; /* detour_bench_postfix's, or -100 when not tried */
  char pf_why[256];
  detour_bench_result pf, pf_detour;
  bool failed;
} bench_out;

void detour_cli_bench_usage(void) {
  printf(
      "Usage: detour bench [--messages N] [--faults LIST] [--concurrency N]\n"
      "                    [--throughput-concurrency N] [--postfix "
      "auto|yes|no]\n"
      "                    [--timeout SECONDS] [--json FILE]\n"
      "\nFailover latency in real time on loopback: for each fault of the\n"
      "primary, N messages through the engine to a healthy backup, timed\n"
      "from submission to acceptance (the fake server's final \".\").\n"
      "\n  -n, --messages N messages per fault (default 200, at most %d)\n"
      "  --faults LIST    comma-separated, default all:",
      DETOUR_BENCH_MESSAGES_MAX);
  for (size_t i = 1; i < detour_bench_fault_count(); i++)
    printf("%s%s", i % 4 == 1 ? "\n                     " : " ",
           detour_bench_fault_at(i)->name);
  printf("\n                   (the baseline 'none' always runs)\n"
         "  -c, --concurrency N  engines in parallel, each one message at a "
         "time\n"
         "                   (default 1, at most %d)\n"
         "  --throughput-concurrency N  engines for the throughput runs\n"
         "                   (primary up / primary refusing, 10 x N "
         "messages;\n"
         "                   default %d, 0 skips)\n"
         "  --postfix MODE   Postfix side by side for 'refuse': auto (when\n"
         "                   installed and root), yes, no (default auto)\n"
         "  --timeout S      real-time limit per run (default: 30 s plus\n"
         "                   the fault's budget + 100 ms per message)\n"
         "  --json FILE      write the figures as JSON\n"
         "  -h, --help       this help\n"
         "  --version        the version\n"
         "\nOptions take their value as --opt VALUE or --opt=VALUE.\n",
         DETOUR_BENCH_CONCURRENCY_MAX, DEFAULT_TP_CONCURRENCY);
  static const int codes[] = {0, 64, 71, 73, -1};
  cli_print_exit_codes(
      stdout, codes,
      "  69   --postfix yes, and Postfix cannot run here\n"
      "  70   a run went wrong: a message lost, misrouted or timed out\n");
}

/* ------------------------------------------------------------------------ */
/* Arguments                                                                 */

static bool parse_size(const char *text, size_t lo, size_t hi, size_t *out) {
  char *end;
  unsigned long long v = strtoull(text, &end, 10);
  if (*text == '-' || *end || end == text || v < lo || v > hi)
    return false;
  *out = (size_t)v;
  return true;
}

/* The baseline first, then LIST in order (each fault once). */
static int parse_faults(const char *list, bench_opts *o) {
  o->faults[0] = detour_bench_fault_at(0);
  o->nfaults = 1;
  if (!list) {
    for (size_t i = 1; i < detour_bench_fault_count(); i++)
      o->faults[o->nfaults++] = detour_bench_fault_at(i);
    return 0;
  }
  char buf[512];
  snprintf(buf, sizeof buf, "%s", list);
  for (char *save, *t = strtok_r(buf, ",", &save); t;
       t = strtok_r(NULL, ",", &save)) {
    const detour_bench_fault *f = detour_bench_fault_find(t);
    if (!f) {
      return cli_usage_error("bench", "unknown fault '%s'", t);
    }
    bool seen = false;
    for (size_t i = 0; i < o->nfaults; i++)
      seen |= o->faults[i] == f;
    if (!seen && o->nfaults < MAX_FAULTS)
      o->faults[o->nfaults++] = f;
  }
  return 0;
}

static int parse_postfix(const char *v, postfix_mode *m) {
  static const char *const names[] = {"auto", "yes", "no"};
  for (int i = 0; i < 3; i++)
    if (strcmp(v, names[i]) == 0)
      return *m = (postfix_mode)i, 0;
  return EX_USAGE;
}

enum {
  OPT_MESSAGES = 1,
  OPT_CONCURRENCY,
  OPT_TP_CONCURRENCY,
  OPT_TIMEOUT,
  OPT_FAULTS,
  OPT_JSON,
  OPT_POSTFIX,
};

static const cli_opt bench_options[] = {
    {OPT_MESSAGES, 'n', "messages", "N"},
    {OPT_CONCURRENCY, 'c', "concurrency", "N"},
    {OPT_TP_CONCURRENCY, 0, "throughput-concurrency", "N"},
    {OPT_TIMEOUT, 0, "timeout", "SECONDS"},
    {OPT_FAULTS, 0, "faults", "LIST"},
    {OPT_JSON, 0, "json", "FILE"},
    {OPT_POSTFIX, 0, "postfix", "auto|yes|no"},
};

/* One option with its value; 0, or EX_USAGE after saying why. */
static int parse_one(int id, const char *name, const char *v, bench_opts *o,
                     const char **faults) {
  size_t n = 0;
  bool ok = true;
  switch (id) {
  case OPT_MESSAGES:
    ok = parse_size(v, 1, DETOUR_BENCH_MESSAGES_MAX, &o->messages);
    break;
  case OPT_CONCURRENCY:
    ok = parse_size(v, 1, DETOUR_BENCH_CONCURRENCY_MAX, &o->concurrency);
    break;
  case OPT_TP_CONCURRENCY:
    ok = parse_size(v, 0, DETOUR_BENCH_CONCURRENCY_MAX, &o->tp_concurrency);
    break;
  case OPT_TIMEOUT:
    ok = parse_size(v, 1, 3600, &n);
    o->timeout = (detour_ms)n * 1000;
    break;
  case OPT_FAULTS:
    *faults = v;
    break;
  case OPT_JSON:
    o->json = v;
    break;
  case OPT_POSTFIX:
    ok = parse_postfix(v, &o->postfix) == 0;
    break;
  }
  if (!ok)
    return cli_usage_error("bench", "bad value '%s' for %s", v, name);
  return 0;
}

/* Returns 0, 1 after --help/--version, or EX_USAGE. */
static int parse_args(int argc, char **argv, bench_opts *o) {
  memset(o, 0, sizeof *o);
  o->messages = DEFAULT_MESSAGES;
  o->concurrency = 1;
  o->tp_concurrency = DEFAULT_TP_CONCURRENCY;
  const char *faults = NULL, *v;
  cli_parser p;
  cli_parser_init(&p, "bench", bench_options,
                  sizeof bench_options / sizeof *bench_options, argc, argv);
  int id;
  while ((id = cli_next(&p, &v)) != CLI_END) {
    if (id == CLI_HELP)
      return detour_cli_bench_usage(), 1;
    if (id == CLI_VERSION)
      return cli_print_version(), 1;
    if (id == CLI_ERROR)
      return CLI_EXIT_USAGE;
    if (id == CLI_ARG)
      return cli_usage_error("bench", "unexpected argument '%s'", v);
    if (parse_one(id, cli_opt_name(&p), v, o, &faults) != 0)
      return CLI_EXIT_USAGE;
  }
  return parse_faults(faults, o);
}

/* ------------------------------------------------------------------------ */
/* Running                                                                   */

/* A run is good when every message went where it should. */
static bool run_ok(const detour_bench_result *r, size_t n) {
  return !r->timed_out && r->ok == n && r->wrong == 0 && r->lost == 0;
}

/* Unless --timeout says: 30 s of slack plus what each message may cost
 * (its budget and 100 ms), shared by the engines in parallel. */
static detour_ms run_timeout(const bench_opts *o, detour_ms budget, size_t n,
                             size_t conc) {
  if (o->timeout > 0)
    return o->timeout;
  return 30000 + (detour_ms)n * (budget + 100) / (detour_ms)conc;
}

static bool run_one(const detour_bench_fault *f, size_t n, size_t conc,
                    const bench_opts *o, detour_bench_result *res) {
  char err[256] = "";
  fprintf(stderr, "detour bench: %s, %zu messages, %zu at a time ...\n",
          f->name, n, conc);
  int rc = detour_bench_run(f, n, conc, run_timeout(o, f->budget, n, conc), res,
                            err, sizeof err);
  if (rc != 0)
    fprintf(stderr, "detour bench: %s: %s\n", f->name, err);
  return rc == 0 && run_ok(res, n);
}

static bool has_refuse(const bench_opts *o) {
  for (size_t i = 0; i < o->nfaults; i++)
    if (strcmp(o->faults[i]->name, "refuse") == 0)
      return true;
  return false;
}

static void run_postfix(const bench_opts *o, bench_out *out) {
  out->pf_rc = -100;
  if (o->postfix == PF_NO || !has_refuse(o))
    return;
  fprintf(stderr, "detour bench: postfix, refuse, %zu messages ...\n",
          o->messages);
  /* Postfix's first delivery starts its smtp processes: more slack. */
  out->pf_rc = detour_bench_postfix("refuse", o->messages,
                                    run_timeout(o, 400, o->messages, 1),
                                    &out->pf, out->pf_why, sizeof out->pf_why);
  if (out->pf_rc < 0 || (out->pf_rc == 0 && !run_ok(&out->pf, o->messages)))
    out->failed = true;
  if (out->pf_rc == 1 && o->postfix == PF_YES)
    out->failed = true;
  for (size_t i = 0; i < o->nfaults; i++)
    if (strcmp(o->faults[i]->name, "refuse") == 0)
      out->pf_detour = out->res[i];
}

/* Ten times the latency runs' count: at thousands of messages per second
 * a run of 200 would last a few ms and measure mostly its start. */
static size_t tp_messages(const bench_opts *o) {
  size_t n = o->messages * 10;
  return n > DETOUR_BENCH_MESSAGES_MAX ? DETOUR_BENCH_MESSAGES_MAX : n;
}

static void run_all(const bench_opts *o, bench_out *out) {
  for (size_t i = 0; i < o->nfaults; i++)
    if (!run_one(o->faults[i], o->messages, o->concurrency, o, &out->res[i]))
      out->failed = true;
  if (o->tp_concurrency > 0 && has_refuse(o)) {
    out->ran_tp = true;
    if (!run_one(detour_bench_fault_find("none"), tp_messages(o),
                 o->tp_concurrency, o, &out->tp_up) ||
        !run_one(detour_bench_fault_find("refuse"), tp_messages(o),
                 o->tp_concurrency, o, &out->tp_down))
      out->failed = true;
  }
  run_postfix(o, out);
}

/* ------------------------------------------------------------------------ */
/* Printing                                                                  */

static void print_table(const bench_opts *o, const bench_out *out) {
  printf("\nFailover latency, real time, loopback: primary 127.0.0.2 (faulty),"
         " backup 127.0.0.3\n"
         "engine: connect timeout %d ms, greeting timeout %d ms, retry "
         "interval %d ms, %d attempts per server; %zu at a time\n"
         "latency = submission -> final \".\" at the accepting server "
         "(monotonic); ms\n\n",
         DETOUR_BENCH_CONNECT_TIMEOUT, DETOUR_BENCH_GREETING_TIMEOUT,
         DETOUR_BENCH_RETRY_INTERVAL, DETOUR_BENCH_MAX_ATTEMPTS,
         o->concurrency);
  printf("%-13s %-9s %6s %6s %8s %8s %8s %8s %9s %9s\n", "fault", "class",
         "budget", "N", "p50", "p90", "p99", "max", "msg/s", "+p50");
  const detour_bench_result *base = &out->res[0];
  for (size_t i = 0; i < o->nfaults; i++) {
    const detour_bench_fault *f = o->faults[i];
    const detour_bench_result *r = &out->res[i];
    printf("%-13s %-9s %6lld %6zu %8.2f %8.2f %8.2f %8.2f %9.0f %+9.2f\n",
           f->name, detour_class_name(f->expected), (long long)f->budget, r->ok,
           r->p50, r->p90, r->p99, r->max, r->per_sec, r->p50 - base->p50);
    if (r->wrong || r->lost || r->timed_out)
      printf("  !! %s: %zu submitted, %zu to the wrong server, %zu lost%s\n",
             f->name, r->n, r->wrong, r->lost,
             r->timed_out ? ", timed out" : "");
  }
  printf("\nbudget: what the policy itself costs (timeouts, retry "
         "intervals); +p50: p50 minus the baseline's p50\n");
}

static void print_throughput(const bench_opts *o, const bench_out *out) {
  if (!out->ran_tp)
    return;
  double up = out->tp_up.per_sec, down = out->tp_down.per_sec;
  printf("\nThroughput, %zu engines in parallel, %zu messages:\n"
         "  primary up   (none):   %9.0f msg/s (p50 %.2f ms)\n"
         "  primary down (refuse): %9.0f msg/s (p50 %.2f ms), %.2f of the "
         "baseline\n",
         o->tp_concurrency, tp_messages(o), up, out->tp_up.p50, down,
         out->tp_down.p50, up > 0 ? down / up : 0.0);
}

static void print_postfix(const bench_opts *o, const bench_out *out) {
  if (out->pf_rc == -100)
    return;
  printf("\nPostfix side by side, fault refuse (relayhost = primary, "
         "smtp_fallback_relay = backup), one message at a time:\n");
  if (out->pf_rc != 0) {
    printf("  not measured: %s\n", out->pf_why);
    return;
  }
  const detour_bench_result *d = &out->pf_detour, *p = &out->pf;
  printf("  %-8s %6s %8s %8s %8s %8s %9s\n", "client", "N", "p50", "p90", "p99",
         "max", "msg/s");
  printf("  %-8s %6zu %8.2f %8.2f %8.2f %8.2f %9.0f\n", "detour", d->ok, d->p50,
         d->p90, d->p99, d->max, d->per_sec);
  printf("  %-8s %6zu %8.2f %8.2f %8.2f %8.2f %9.0f\n", "postfix", p->ok,
         p->p50, p->p90, p->p99, p->max, p->per_sec);
  if (d->p50 > 0)
    printf("  ratio postfix/detour: p50 %.1f, p99 %.1f\n", p->p50 / d->p50,
           d->p99 > 0 ? p->p99 / d->p99 : 0.0);
  if (p->wrong || p->lost || p->timed_out)
    printf("  !! postfix: %zu submitted, %zu to the wrong server, %zu lost%s\n",
           p->n, p->wrong, p->lost, p->timed_out ? ", timed out" : "");
}

/* ------------------------------------------------------------------------ */
/* JSON                                                                      */

static void json_result(FILE *f, const detour_bench_result *r) {
  fprintf(f,
          "\"n\":%zu,\"ok\":%zu,\"wrong\":%zu,\"lost\":%zu,\"timed_out\":%s,"
          "\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,"
          "\"mean_ms\":%.3f,\"per_sec\":%.1f,\"wall_s\":%.3f",
          r->n, r->ok, r->wrong, r->lost, r->timed_out ? "true" : "false",
          r->p50, r->p90, r->p99, r->max, r->mean, r->per_sec, r->wall_s);
}

static void json_faults(FILE *f, const bench_opts *o, const bench_out *out) {
  fprintf(f, "\"faults\":[");
  for (size_t i = 0; i < o->nfaults; i++) {
    const detour_bench_fault *bf = o->faults[i];
    fprintf(f,
            "%s{\"fault\":\"%s\",\"class\":\"%s\",\"budget_ms\":%lld,"
            "\"overhead_p50_ms\":%.3f,",
            i ? "," : "", bf->name, detour_class_name(bf->expected),
            (long long)bf->budget, out->res[i].p50 - out->res[0].p50);
    json_result(f, &out->res[i]);
    fputc('}', f);
  }
  fputc(']', f);
}

static void json_extras(FILE *f, const bench_opts *o, const bench_out *out) {
  if (out->ran_tp) {
    fprintf(f,
            ",\"throughput\":{\"concurrency\":%zu,\"messages\":%zu,"
            "\"up\":{",
            o->tp_concurrency, tp_messages(o));
    json_result(f, &out->tp_up);
    fprintf(f, "},\"down_refuse\":{");
    json_result(f, &out->tp_down);
    fprintf(f, "}}");
  }
  if (out->pf_rc == 0) {
    fprintf(f, ",\"postfix\":{\"fault\":\"refuse\",");
    json_result(f, &out->pf);
    fprintf(f, "}");
  } else if (out->pf_rc != -100) {
    fprintf(f, ",\"postfix\":null");
  }
}

static int write_json(const char *path, const bench_opts *o,
                      const bench_out *out) {
  FILE *f = fopen(path, "w");
  if (!f) {
    perror(path);
    return EX_CANTCREAT;
  }
  fprintf(f,
          "{\"bench\":\"failover_latency\",\"messages\":%zu,"
          "\"concurrency\":%zu,\"engine\":{\"connect_timeout_ms\":%d,"
          "\"greeting_timeout_ms\":%d,\"retry_interval_ms\":%d,"
          "\"max_attempts\":%d},",
          o->messages, o->concurrency, DETOUR_BENCH_CONNECT_TIMEOUT,
          DETOUR_BENCH_GREETING_TIMEOUT, DETOUR_BENCH_RETRY_INTERVAL,
          DETOUR_BENCH_MAX_ATTEMPTS);
  json_faults(f, o, out);
  json_extras(f, o, out);
  fprintf(f, "}\n");
  if (fclose(f) != 0) {
    perror(path);
    return EX_CANTCREAT;
  }
  return 0;
}

int detour_cli_bench(int argc, char **argv) {
  bench_opts o;
  int rc = parse_args(argc, argv, &o);
  if (rc != 0)
    return rc == 1 ? 0 : rc;
  /* Sessions write to peers that may have gone (fake.h). */
  signal(SIGPIPE, SIG_IGN);
  bench_out *out = calloc(1, sizeof *out);
  if (!out)
    return EX_OSERR;
  run_all(&o, out);
  print_table(&o, out);
  print_throughput(&o, out);
  print_postfix(&o, out);
  rc = o.json ? write_json(o.json, &o, out) : 0;
  if (rc == 0 && out->pf_rc == 1 && o.postfix == PF_YES)
    rc = EX_UNAVAILABLE;
  else if (rc == 0 && out->failed)
    rc = EX_SOFTWARE;
  free(out);
  return rc;
}

#else /* !DETOUR_HAVE_BENCH: built without the fake servers */

void detour_cli_bench_usage(void) {
  printf("detour bench: not built (needs libdetour-fake)\n");
}

int detour_cli_bench(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--version") == 0)
    return cli_print_version();
  fprintf(stderr, "detour: 'bench' is not built in this version\n");
  return EX_UNAVAILABLE;
}

#endif

/*
 * bench.c - `detour bench`: failover latency per (client, fault), in real
 * time on loopback or over a simulated network (bench/latency.c). The
 * clients are the built-in engine and any client with a manifest
 * (clients/NAME.yaml, through its adapter); each gets the same settings
 * where it can express them. Prints the expected duration, a progress
 * line per (client, fault), a table per fault with the ratio to the
 * fastest client; then the engine's throughput with the primary down
 * against the primary up. --json keeps the raw samples, --html draws
 * them, --compare checks them against a baseline (bench/report.c).
 */
#include "bench.h"

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>

#include "detour/detour.h"
#include "detour/scenario.h"
#include "opts.h"

#ifdef DETOUR_HAVE_BENCH
#include "latency.h"
#include "report.h"

#define MAX_FAULTS 32
#define MAX_CLIENTS 16
#define DEFAULT_MESSAGES 50
#define DEFAULT_TP_CONCURRENCY 8
/* An external client's message is judged after its budget twice plus
 * this, and the rest of a run is skipped when its first GIVE_UP did not
 * arrive: a client that defers every message costs seconds, not hours. */
#define CLIENT_SLACK_MS 5000
#define GIVE_UP 2

typedef struct {
  const char *name;
  const detour_adapter *a; /* NULL: the built-in engine */
} bench_client;

typedef struct {
  size_t messages, concurrency, tp_concurrency;
  const detour_bench_fault *faults[MAX_FAULTS];
  size_t nfaults;
  bench_client clients[MAX_CLIENTS];
  size_t nclients;
  char client_why[MAX_CLIENTS][256]; /* a client that cannot be loaded */
  const char *json, *html, *compare, *network, *results;
  double threshold, floor_ms;
  detour_ms timeout; /* per run; 0: from the run's size (run_timeout) */
} bench_opts;

void detour_cli_bench_usage(void) {
  printf(
      "Usage: detour bench [--client LIST] [--faults LIST] [--messages N]\n"
      "                    [--network PROFILE] [--html FILE] [--json FILE]\n"
      "                    [--compare BASELINE.json [--threshold PCT]]\n"
      "                    [--concurrency N] [--throughput-concurrency N]\n"
      "                    [--timeout SECONDS]\n"
      "\nFailover latency: for each client and each fault of the primary,\n"
      "N messages to a healthy backup, one at a time, timed from submission\n"
      "to acceptance (the fake server's final \".\").\n"
      "\n  --client LIST    comma-separated: builtin (the engine), a name of\n"
      "                   clients/ (postfix, exim, nullmailer, opensmtpd,\n"
      "                   dma, msmtp) or a manifest's path; 'all' = builtin\n"
      "                   and every manifest found (default builtin)\n"
      "  --faults LIST    comma-separated, default all:");
  for (size_t i = 1; i < detour_bench_fault_count(); i++)
    printf("%s%s", i % 4 == 1 ? "\n                     " : " ",
           detour_bench_fault_at(i)->name);
  printf(
      "\n                   (the baseline 'none' always runs)\n"
      "  -n, --messages N messages per (client, fault) (default %d, at most "
      "%d)\n"
      "  --network PROFILE  over the ns-3 simulation (root, ns-3): a name of\n"
      "                   bench/networks (lan, wan-200ms, lossy-5pct,\n"
      "                   satellite-600ms) or a profile file; without them\n"
      "                   the bench says why and runs on loopback\n"
      "  --html FILE      one self-contained page with the charts\n"
      "  --json FILE      the raw samples, machine, versions, settings\n"
      "  --compare FILE   fail (exit 1) naming the (client, fault) pairs "
      "whose\n"
      "                   p50 or p99 is worse than in FILE (a --json file) by\n"
      "                   more than the threshold, with a Mann-Whitney U test\n"
      "                   on the samples (p < 0.01)\n"
      "  --threshold PCT  for --compare (default 20%%)\n"
      "  --noise-floor MS for --compare: a p50 or p99 must also be worse by\n"
      "                   more than this (default 1 ms; 0 for sub-ms runs on\n"
      "                   a quiet machine)\n"
      "  --results FILE   with --compare: compare FILE (an earlier --json)\n"
      "                   instead of running the bench\n"
      "  -c, --concurrency N  engines in parallel in the built-in runs\n"
      "                   (default 1, at most 64)\n"
      "  --throughput-concurrency N  engines for the throughput runs of the\n"
      "                   built-in engine (primary up / refusing, 10 x N\n"
      "                   messages, loopback; default %d, at most %d, 0 "
      "skips)\n"
      "  --timeout S      real-time limit per run (default: 30 s plus each\n"
      "                   message's budget)\n"
      "  -h, --help       this help\n"
      "  --version        the version\n"
      "\nOptions take their value as --opt VALUE or --opt=VALUE.\n",
      DEFAULT_MESSAGES, DETOUR_BENCH_MESSAGES_MAX, DEFAULT_TP_CONCURRENCY,
      DETOUR_BENCH_CONCURRENCY_MAX);
  static const int codes[] = {0, 64, 66, 71, 73, -1};
  cli_print_exit_codes(
      stdout, codes,
      "  1    --compare found a regression\n"
      "  70   a run of the built-in engine went wrong: a message lost,\n"
      "       misrouted or timed out\n");
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
    if (!f)
      return cli_usage_error("bench", "unknown fault '%s'", t);
    bool seen = false;
    for (size_t i = 0; i < o->nfaults; i++)
      seen |= o->faults[i] == f;
    if (!seen && o->nfaults < MAX_FAULTS)
      o->faults[o->nfaults++] = f;
  }
  return 0;
}

static bool is_builtin(const char *n) {
  return !strcmp(n, "builtin") || !strcmp(n, "detour");
}

/* A client that cannot be loaded is kept with the reason: the bench says
 * so in its row and goes on. */
static void add_client(bench_opts *o, const char *name) {
  if (o->nclients >= MAX_CLIENTS)
    return;
  for (size_t i = 0; i < o->nclients; i++)
    if (!strcmp(o->clients[i].name, name))
      return;
  bench_client *c = &o->clients[o->nclients];
  c->name = name;
  c->a = NULL;
  o->client_why[o->nclients][0] = '\0';
  if (!is_builtin(name))
    c->a = detour_adapter_load(name, o->client_why[o->nclients],
                               sizeof o->client_why[0]);
  o->nclients++;
}

static int parse_clients(char *list, bench_opts *o) {
  if (!list) {
    add_client(o, "builtin");
    return 0;
  }
  for (char *save, *t = strtok_r(list, ",", &save); t;
       t = strtok_r(NULL, ",", &save)) {
    if (strcmp(t, "all") != 0) {
      add_client(o, t);
      continue;
    }
    add_client(o, "builtin");
    static char names[2048];
    detour_adapter_names(names, sizeof names);
    for (char *s2, *n = strtok_r(names, " ", &s2); n;
         n = strtok_r(NULL, " ", &s2))
      if (n[0] != '(')
        add_client(o, n);
  }
  return 0;
}

static bool parse_percent(const char *v, double *out) {
  char *end;
  double x = strtod(v, &end);
  if (end == v || (*end && strcmp(end, "%") != 0) || x <= 0 || x > 1000)
    return false;
  *out = x / 100;
  return true;
}

enum {
  OPT_MESSAGES = 1,
  OPT_CONCURRENCY,
  OPT_TP_CONCURRENCY,
  OPT_TIMEOUT,
  OPT_FAULTS,
  OPT_CLIENT,
  OPT_NETWORK,
  OPT_JSON,
  OPT_HTML,
  OPT_COMPARE,
  OPT_THRESHOLD,
  OPT_RESULTS,
  OPT_NOISE_FLOOR,
};

static const cli_opt bench_options[] = {
    {OPT_MESSAGES, 'n', "messages", "N"},
    {OPT_CONCURRENCY, 'c', "concurrency", "N"},
    {OPT_TP_CONCURRENCY, 0, "throughput-concurrency", "N"},
    {OPT_TIMEOUT, 0, "timeout", "SECONDS"},
    {OPT_FAULTS, 0, "faults", "LIST"},
    {OPT_CLIENT, 0, "client", "LIST"},
    {OPT_NETWORK, 0, "network", "PROFILE"},
    {OPT_JSON, 0, "json", "FILE"},
    {OPT_HTML, 0, "html", "FILE"},
    {OPT_COMPARE, 0, "compare", "FILE"},
    {OPT_THRESHOLD, 0, "threshold", "PCT"},
    {OPT_RESULTS, 0, "results", "FILE"},
    {OPT_NOISE_FLOOR, 0, "noise-floor", "MS"},
};

/* One option with its value; 0, or EX_USAGE after saying why. */
static int parse_one(int id, const char *name, const char *v, bench_opts *o,
                     const char **faults, const char **clients) {
  size_t n = 0;
  bool ok = true;
  switch (id) {
  case OPT_MESSAGES:
    ok = parse_size(v, 1, DETOUR_BENCH_MESSAGES_MAX, &o->messages);
    break;
  case OPT_CONCURRENCY:
    ok = parse_size(v, 1, 64, &o->concurrency);
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
  case OPT_CLIENT:
    *clients = v;
    break;
  case OPT_NETWORK:
    o->network = v;
    break;
  case OPT_JSON:
    o->json = v;
    break;
  case OPT_HTML:
    o->html = v;
    break;
  case OPT_COMPARE:
    o->compare = v;
    break;
  case OPT_THRESHOLD:
    ok = parse_percent(v, &o->threshold);
    break;
  case OPT_RESULTS:
    o->results = v;
    break;
  case OPT_NOISE_FLOOR: {
    char *end;
    o->floor_ms = strtod(v, &end);
    ok = end != v && !*end && o->floor_ms >= 0 && o->floor_ms < 1e7;
    break;
  }
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
  o->threshold = 0.20;
  o->floor_ms = 1.0;
  const char *faults = NULL, *clients = NULL, *v;
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
    if (parse_one(id, cli_opt_name(&p), v, o, &faults, &clients) != 0)
      return CLI_EXIT_USAGE;
  }
  static char client_list[1024];
  snprintf(client_list, sizeof client_list, "%s", clients ? clients : "");
  parse_clients(clients ? client_list : NULL, o);
  if (o->results && !o->compare)
    return cli_usage_error("bench", "--results goes with --compare");
  return parse_faults(faults, o);
}

/* ------------------------------------------------------------------------ */
/* Planning: budgets, deadlines, the expected duration                      */

/* The settings the client renders; NULL keys for the engine. */
static const char *keys_of(const bench_client *c) {
  return c->a ? (c->a->keys ? c->a->keys : "") : NULL;
}

/* What a simulated network adds to one message, at most: about ten round
 * trips for the failed attempt and the delivery, twice that for slack
 * (loss makes TCP retransmit). */
static detour_ms net_cost(const detour_bench_network *net) {
  if (!net)
    return 0;
  return 20 * (net->server_delay + net->client_delay + net->jitter) +
         (net->loss > 0 ? 5000 : 0);
}

/* What one message may cost an external client before it is judged:
 * over a network also the round trips of its attempts. */
static detour_ms msg_deadline(detour_ms budget,
                              const detour_bench_network *net) {
  return (budget > 0 ? 2 * budget : 0) + CLIENT_SLACK_MS + net_cost(net);
}

/* Rough cost of one message beyond its budget: the engine's is below a
 * millisecond, a peer's is its queue and processes. */
static double overhead_ms(const bench_client *c) { return c->a ? 60 : 1; }

/* The client's manifest renders tls.required (the key, or all of tls):
 * it runs the TLS faults; the others skip them at once. */
static bool claims_tls(const bench_client *c) {
  const char *k = keys_of(c);
  for (const char *p = k ? k : ""; *p;) {
    size_t n = strcspn(p, " ");
    if ((n == 3 && !strncmp(p, "tls", 3)) ||
        (n == 12 && !strncmp(p, "tls.required", 12)))
      return true;
    p += n + (p[n] == ' ');
  }
  return false;
}

/* Expected and worst time of one (client, fault), in ms. */
static void plan_cell(const bench_opts *o, const bench_client *c,
                      const detour_bench_fault *f,
                      const detour_bench_settings *s,
                      const detour_bench_network *net, double *expect,
                      double *worst) {
  detour_ms b = detour_bench_budget(f, s, keys_of(c), NULL, 0);
  double n = (double)o->messages;
  /* about 8 round trips a message over a network */
  double rtt = net ? (double)(net->server_delay + net->client_delay) : 0;
  if (!c->a) {
    *expect = n * ((double)b + overhead_ms(c) + 8 * rtt);
    *worst = n * ((double)b + overhead_ms(c) + (double)net_cost(net));
    return;
  }
  double start = 1500; /* the client's instance: start and stop */
  double dl = (double)msg_deadline(b, net);
  *expect = start + n * ((b > 0 ? (double)b : 0) + overhead_ms(c) + 8 * rtt);
  if (b < 0) /* unknown: probably its deadline for the first ones */
    *expect = start + GIVE_UP * dl;
  *worst = start + n * dl;
}

static void print_plan(const bench_opts *o, const detour_bench_settings *s,
                       const detour_bench_network *net) {
  double expect = 0, worst = 0;
  for (size_t c = 0; c < o->nclients; c++) {
    if (o->clients[c].a == NULL && !is_builtin(o->clients[c].name))
      continue;
    for (size_t i = 0; i < o->nfaults; i++) {
      double e, w;
      if (o->clients[c].a && o->faults[i]->tls && !claims_tls(&o->clients[c]))
        continue; /* skipped at once: no TLS in its manifest */
      plan_cell(o, &o->clients[c], o->faults[i], s, net, &e, &w);
      expect += e;
      worst += w;
    }
  }
  fprintf(stderr,
          "detour bench: %zu client%s x %zu faults x %zu messages; expected "
          "duration about %.0f s (at most %.0f s: a client that defers is "
          "judged after its deadline)\n",
          o->nclients, o->nclients == 1 ? "" : "s", o->nfaults, o->messages,
          expect / 1000 + 1, worst / 1000 + 1);
}

/* ------------------------------------------------------------------------ */
/* Running                                                                   */

/* Unless --timeout says: 30 s of slack plus what each message may cost. */
static detour_ms run_timeout(const bench_opts *o, detour_ms per_msg, size_t n,
                             size_t conc) {
  if (o->timeout > 0)
    return o->timeout;
  return 30000 + (detour_ms)n * (per_msg + 100) / (detour_ms)conc;
}

static void client_version(const bench_client *c, char *buf, size_t len) {
  buf[0] = '\0';
  if (!c->a)
    snprintf(buf, len, "detour %s", DETOUR_VERSION);
  else if (c->a->version && !c->a->version(c->a, buf, len))
    buf[0] = '\0';
}

/* One (client, fault) into cell; false when the built-in engine's run
 * went wrong. */
static bool run_cell(const bench_opts *o, const bench_client *c,
                     const detour_bench_fault *f,
                     const detour_bench_network *net, size_t idx, size_t total,
                     detour_bench_cell *cell, const detour_bench_settings *s) {
  snprintf(cell->client, sizeof cell->client, "%s",
           c->a ? c->a->name : c->name);
  cell->fault = f;
  cell->budget = detour_bench_budget(f, s, keys_of(c), cell->budget_note,
                                     sizeof cell->budget_note);
  if (c->a == NULL && !is_builtin(c->name)) {
    snprintf(cell->why, sizeof cell->why, "%s", o->client_why[c - o->clients]);
    fprintf(stderr, "[%zu/%zu] %s %s: skipped: %s\n", idx, total, c->name,
            f->name, cell->why);
    return true;
  }
  detour_bench_spec spec = {.fault = f,
                            .messages = o->messages,
                            .concurrency = c->a ? 1 : o->concurrency,
                            .client = c->a,
                            .settings = *s,
                            .network = net,
                            .msg_deadline =
                                c->a ? msg_deadline(cell->budget, net) : 0,
                            .give_up_after = c->a ? GIVE_UP : 0};
  detour_ms per = cell->budget > 0 ? cell->budget : 0;
  if (c->a)
    per = msg_deadline(cell->budget, net);
  else
    per += net_cost(net);
  spec.timeout_ms = run_timeout(o, per, o->messages, spec.concurrency);
  fprintf(stderr, "[%zu/%zu] %s %s: %zu messages ...", idx, total, cell->client,
          f->name, o->messages);
  fflush(stderr);
  char err[512] = "";
  int rc = detour_bench_run(&spec, &cell->res, err, sizeof err);
  if (rc != 0) {
    snprintf(cell->why, sizeof cell->why, "%s", err);
    fprintf(stderr, " %s: %s\n", rc == 1 ? "skipped" : "failed", err);
    return rc == 1 || c->a != NULL;
  }
  cell->measured = true;
  const detour_bench_result *r = &cell->res;
  fprintf(stderr, " p50 %.3f ms, %zu/%zu to the %s, %.1f s\n", r->p50, r->ok,
          r->n, f->fault ? "backup" : "primary", r->wall_s);
  bool good = !r->timed_out && r->ok == r->n;
  return c->a != NULL || good;
}

/* Ten times the latency runs' count, at least 1000 and 40 per engine: at
 * thousands of messages per second a small run would measure mostly its
 * start. */
static size_t tp_messages(const bench_opts *o) {
  size_t n = o->messages * 10;
  n = n < 1000 ? 1000 : n;
  n = n < 40 * o->tp_concurrency ? 40 * o->tp_concurrency : n;
  return n > DETOUR_BENCH_MESSAGES_MAX ? DETOUR_BENCH_MESSAGES_MAX : n;
}

static bool run_throughput(const bench_opts *o, detour_bench_report *rep,
                           const detour_bench_settings *s) {
  rep->ran_tp = true;
  rep->tp_concurrency = o->tp_concurrency;
  rep->tp_messages = tp_messages(o);
  bool ok = true;
  for (int down = 0; down <= 1; down++) {
    const detour_bench_fault *f =
        detour_bench_fault_find(down ? "refuse" : "none");
    detour_bench_spec spec = {.fault = f,
                              .messages = rep->tp_messages,
                              .concurrency = o->tp_concurrency,
                              .settings = *s};
    spec.timeout_ms = run_timeout(o, 0, spec.messages, spec.concurrency);
    detour_bench_result *r = down ? &rep->tp_down : &rep->tp_up;
    fprintf(stderr,
            "throughput: builtin, %zu engines, primary %s, %zu "
            "messages ...",
            o->tp_concurrency, down ? "refusing" : "up", spec.messages);
    char err[256] = "";
    int rc = detour_bench_run(&spec, r, err, sizeof err);
    fprintf(stderr, " %.0f msg/s\n", r->per_sec);
    if (rc != 0 || r->ok != r->n || r->timed_out) {
      fprintf(stderr, "detour bench: throughput: %s\n",
              err[0] ? err : "messages lost");
      ok = false;
    }
  }
  return ok;
}

static bool has_builtin(const bench_opts *o) {
  for (size_t i = 0; i < o->nclients; i++)
    if (is_builtin(o->clients[i].name))
      return true;
  return false;
}

/* ------------------------------------------------------------------------ */
/* Printing                                                                  */

static void did_text(const detour_bench_result *r, char *buf, size_t len) {
  buf[0] = '\0';
  for (int i = 0; i < DETOUR_BENCH_OUTCOMES; i++)
    if (r->count[i])
      snprintf(buf + strlen(buf), len - strlen(buf), "%s%s %zu",
               buf[0] ? ", " : "", detour_bench_outcome_name(i), r->count[i]);
  if (r->stopped_early)
    snprintf(buf + strlen(buf), len - strlen(buf), " (first %d failed)",
             GIVE_UP);
  if (r->timed_out)
    snprintf(buf + strlen(buf), len - strlen(buf), " (timed out)");
}

static double fastest(const detour_bench_report *rep, size_t fault) {
  double best = 0;
  for (size_t c = 0; c < rep->nclients; c++) {
    const detour_bench_cell *x = detour_bench_cell_of(rep, c, fault);
    if (x->measured && x->res.nsamples && (best == 0 || x->res.p50 < best))
      best = x->res.p50;
  }
  return best;
}

static void print_fault(const detour_bench_report *rep, size_t i) {
  const detour_bench_fault *f = detour_bench_cell_of(rep, 0, i)->fault;
  double best = fastest(rep, i);
  printf("\n%s: %s (%s)\n", f->name, f->what, detour_class_name(f->expected));
  printf("  %-11s %5s %9s %9s %9s %9s %8s %8s  %-24s %s\n", "client", "N",
         "p50", "p90", "p99", "max", "x fast", "budget", "did", "note");
  for (size_t c = 0; c < rep->nclients; c++) {
    const detour_bench_cell *x = detour_bench_cell_of(rep, c, i);
    if (!x->measured) {
      printf("  %-11s not measured: %s\n", x->client, x->why);
      continue;
    }
    const detour_bench_result *r = &x->res;
    char did[160], budget[32];
    did_text(r, did, sizeof did);
    if (x->budget >= 0)
      snprintf(budget, sizeof budget, "%lld", (long long)x->budget);
    else
      snprintf(budget, sizeof budget, "?");
    if (r->nsamples)
      printf("  %-11s %5zu %9.3f %9.3f %9.3f %9.3f %8.1f %8s  %-24s %s\n",
             x->client, r->nsamples, r->p50, r->p90, r->p99, r->max,
             best > 0 ? r->p50 / best : 0, budget, did, x->budget_note);
    else
      printf("  %-11s %5d %9s %9s %9s %9s %8s %8s  %-24s %s\n", x->client, 0,
             "-", "-", "-", "-", "-", budget, did, x->budget_note);
  }
}

/* The engine against the fastest peer for the faults the issue names. */
static void print_speedup(const detour_bench_report *rep) {
  for (size_t i = 0; i < rep->nfaults; i++) {
    const detour_bench_fault *f = detour_bench_cell_of(rep, 0, i)->fault;
    const detour_bench_cell *eng = NULL, *peer = NULL;
    for (size_t c = 0; c < rep->nclients; c++) {
      const detour_bench_cell *x = detour_bench_cell_of(rep, c, i);
      if (!x->measured || !x->res.nsamples)
        continue;
      if (is_builtin(x->client))
        eng = x;
      else if (!peer || x->res.p50 < peer->res.p50)
        peer = x;
    }
    if (f->fault && eng && peer && eng->res.p50 > 0)
      printf("  %-13s builtin p50 %.3f ms, fastest peer %s %.3f ms: %.1fx\n",
             f->name, eng->res.p50, peer->client, peer->res.p50,
             peer->res.p50 / eng->res.p50);
  }
}

static void print_report(const bench_opts *o, const detour_bench_report *rep) {
  const detour_timeouts *t = &rep->settings.timeouts;
  printf("\nFailover latency, real time, %s: primary (faulty), backup "
         "(healthy); latency = submission -> final \".\" at the server that "
         "took it; ms\n"
         "every client was given: connect timeout %lld ms, greeting %lld ms, "
         "other replies %lld ms, retry interval %lld ms, %u attempts per "
         "server, PIPELINING %s (where it can express them: see budget and "
         "note)\n",
         rep->network ? rep->network : "loopback", (long long)t->connect,
         (long long)t->greeting, (long long)t->mail,
         (long long)rep->settings.retry_interval, rep->settings.max_attempts,
         rep->settings.pipelining ? "on" : "off");
  if (rep->network_note[0])
    printf("network: %s\n", rep->network_note);
  for (size_t i = 0; i < rep->nfaults; i++)
    print_fault(rep, i);
  printf("\nbudget: what the settings make the policy wait (timeouts, retry "
         "intervals), ms; ?: the client cannot be told the setting. x fast: "
         "p50 over the fastest client's. did: which server took each message, "
         "or what the client did with it (bounced: gave it up; deferred: still "
         "queued after its deadline)\n");
  if (rep->nclients > 1) {
    printf("\nbuilt-in engine against the fastest peer (p50):\n");
    print_speedup(rep);
  }
  if (rep->ran_tp) {
    double up = rep->tp_up.per_sec, down = rep->tp_down.per_sec;
    printf("\nThroughput of the built-in engine, %zu engines in parallel, "
           "%zu messages:\n"
           "  primary up   (none):   %9.0f msg/s (p50 %.2f ms)\n"
           "  primary down (refuse): %9.0f msg/s (p50 %.2f ms), %.2f of the "
           "primary-up run\n",
           rep->tp_concurrency, rep->tp_messages, up, rep->tp_up.p50, down,
           rep->tp_down.p50, up > 0 ? down / up : 0.0);
  }
  (void)o;
}

/* ------------------------------------------------------------------------ */
/* Files                                                                     */

static int write_file(const char *path, const detour_bench_report *rep,
                      int (*fn)(const detour_bench_report *, FILE *)) {
  FILE *f = fopen(path, "w");
  if (!f) {
    perror(path);
    return EX_CANTCREAT;
  }
  int rc = fn(rep, f);
  if (fclose(f) != 0 || rc != 0) {
    perror(path);
    return EX_CANTCREAT;
  }
  fprintf(stderr, "detour bench: wrote %s\n", path);
  return 0;
}

#define MAX_REGRESSIONS 256

/* --compare: cur (this run's cells, or --results) against the file. */
static int compare(const bench_opts *o, const detour_bench_baseline *cur) {
  detour_bench_baseline b;
  char err[512];
  if (detour_bench_baseline_load(o->compare, &b, err, sizeof err) != 0) {
    fprintf(stderr, "detour bench: %s\n", err);
    return EX_NOINPUT;
  }
  static detour_bench_regression g[MAX_REGRESSIONS];
  size_t pairs = 0;
  size_t n = detour_bench_compare(cur, &b, o->threshold, o->floor_ms, 0.01, g,
                                  MAX_REGRESSIONS, &pairs);
  detour_bench_baseline_free(&b);
  printf("\nCompared with %s: %zu (client, fault) pair%s; a regression: "
         "p50 or p99 worse by more than %.0f%% and %.3g ms, and Mann-Whitney "
         "U p < 0.01 on the samples (p99 only with 100 samples or more a "
         "side: below that it is the maximum, one sample)\n",
         o->compare, pairs, pairs == 1 ? "" : "s", o->threshold * 100,
         o->floor_ms);
  for (size_t i = 0; i < n && i < MAX_REGRESSIONS; i++)
    printf("  REGRESSION %s %s: p50 %.3f -> %.3f ms%s, p99 %.3f -> %.3f "
           "ms%s (U test p = %.2g)\n",
           g[i].client, g[i].fault, g[i].base_p50, g[i].cur_p50,
           g[i].p50_worse ? " (worse)" : "", g[i].base_p99, g[i].cur_p99,
           g[i].p99_worse ? " (worse)" : "", g[i].p);
  if (n == 0)
    printf("  no regression\n");
  if (pairs == 0) {
    fprintf(stderr,
            "detour bench: nothing in %s matches the (client, fault) "
            "pairs compared\n",
            o->compare);
    return 1;
  }
  return n ? 1 : 0;
}

/* --compare --results FILE: two files, no run. */
static int compare_files(const bench_opts *o) {
  detour_bench_baseline cur;
  char err[512];
  if (detour_bench_baseline_load(o->results, &cur, err, sizeof err) != 0) {
    fprintf(stderr, "detour bench: %s\n", err);
    return EX_NOINPUT;
  }
  int rc = compare(o, &cur);
  detour_bench_baseline_free(&cur);
  return rc;
}

/* --compare after a run: its own cells. */
static int compare_run(const bench_opts *o, const detour_bench_report *rep) {
  detour_bench_baseline cur;
  if (detour_bench_baseline_of(rep, &cur) != 0)
    return EX_OSERR;
  int rc = compare(o, &cur);
  free(cur.cells);
  return rc;
}

static void now_iso(char *buf, size_t len) {
  time_t t = time(NULL);
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void join_args(int argc, char **argv, char *buf, size_t len) {
  size_t o = (size_t)snprintf(buf, len, "detour");
  for (int i = 0; i < argc && o < len; i++)
    o += (size_t)snprintf(buf + o, len - o, " %s", argv[i]);
}

/* --network: the profile, or loopback with the reason. */
static int choose_network(const bench_opts *o, detour_bench_report *rep,
                          detour_bench_network *net, bool *use) {
  *use = false;
  if (!o->network)
    return 0;
  char err[512];
  if (detour_bench_network_load(o->network, net, err, sizeof err) != 0) {
    fprintf(stderr, "detour bench: %s\n", err);
    return EX_NOINPUT;
  }
  char why[256];
  if (!detour_bench_network_available(why, sizeof why)) {
    snprintf(rep->network_note, sizeof rep->network_note,
             "%s asked for, but the simulation cannot run here (%s): ran on "
             "loopback",
             net->name, why);
    fprintf(stderr, "detour bench: %s\n", rep->network_note);
    return 0;
  }
  *use = true;
  rep->network = net->name;
  return 0;
}

static int run_and_report(const bench_opts *o, detour_bench_report *rep,
                          int argc, char **argv) {
  detour_bench_network net;
  bool use_net;
  int rc = choose_network(o, rep, &net, &use_net);
  if (rc != 0)
    return rc;
  static char command[4096];
  join_args(argc, argv, command, sizeof command);
  rep->command = command;
  now_iso(rep->started, sizeof rep->started);
  rep->messages = o->messages;
  detour_bench_default_settings(&rep->settings);
  print_plan(o, &rep->settings, use_net ? &net : NULL);
  bool ok = true;
  size_t total = o->nclients * o->nfaults, idx = 0;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (size_t c = 0; c < o->nclients; c++) {
    char version[128];
    client_version(&o->clients[c], version, sizeof version);
    for (size_t i = 0; i < o->nfaults; i++) {
      detour_bench_cell *cell = &rep->cells[c * o->nfaults + i];
      if (detour_scenario_interrupted()) {
        cell->fault = o->faults[i];
        snprintf(cell->client, sizeof cell->client, "%s", o->clients[c].name);
        snprintf(cell->why, sizeof cell->why, "interrupted");
        continue;
      }
      snprintf(cell->version, sizeof cell->version, "%s", version);
      ok &= run_cell(o, &o->clients[c], o->faults[i], use_net ? &net : NULL,
                     ++idx, total, cell, &rep->settings);
    }
  }
  if (o->tp_concurrency > 0 && has_builtin(o) && !use_net &&
      !detour_scenario_interrupted())
    ok &= run_throughput(o, rep, &rep->settings);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  rep->wall_s =
      (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  print_report(o, rep);
  fprintf(stderr, "detour bench: %.1f s in all\n", rep->wall_s);
  if (o->json && (rc = write_file(o->json, rep, detour_bench_write_json)))
    return rc;
  if (o->html && (rc = write_file(o->html, rep, detour_bench_write_html)))
    return rc;
  if (o->compare && (rc = compare_run(o, rep)) != 0)
    return rc;
  if (detour_scenario_interrupted())
    return 130; /* the clients are torn down; the figures so far printed */
  return ok ? 0 : EX_SOFTWARE;
}

int detour_cli_bench(int argc, char **argv) {
  bench_opts o;
  int rc = parse_args(argc, argv, &o);
  if (rc != 0)
    return rc == 1 ? 0 : rc;
  if (o.results)
    return compare_files(&o);
  /* Ctrl-C or SIGTERM: the run in progress stops, its client is torn
   * down (an external client's processes and folder), then it reports. */
  cli_catch_interrupts();
  detour_bench_report rep;
  memset(&rep, 0, sizeof rep);
  rep.nclients = o.nclients;
  rep.nfaults = o.nfaults;
  rep.ncells = o.nclients * o.nfaults;
  rep.cells = calloc(rep.ncells, sizeof *rep.cells);
  if (!rep.cells)
    return EX_OSERR;
  rc = run_and_report(&o, &rep, argc, argv);
  for (size_t i = 0; i < rep.ncells; i++)
    detour_bench_result_free(&rep.cells[i].res);
  detour_bench_result_free(&rep.tp_up);
  detour_bench_result_free(&rep.tp_down);
  free(rep.cells);
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

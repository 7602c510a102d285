/*
 * latency.c - the failover-latency bench behind `detour bench`.
 *
 * One run: a primary fake server with one fault of the catalogue, a
 * healthy backup, both on loopback, and W workers (an engine and a libuv
 * driver each, on one real clock) that submit N messages between them,
 * each worker one message at a time, each message its own submission. A
 * message's latency runs from just before detour_uv_submit() to the final
 * "." as the server that took it recorded it: both are uv_hrtime()
 * (monotonic) on the same loop, so no clock can drift between them.
 *
 * The Postfix side-by-side uses the same servers and the same timing; one
 * worker then hands the messages to a private Postfix instance instead of
 * an engine, through the scenario runner's Postfix adapter
 * (detour/adapter.h: the one place that knows how to configure, start,
 * feed and stop Postfix), with relayhost = the primary and
 * smtp_fallback_relay = the backup. The adapter's submit blocks, so it
 * runs on libuv's thread pool while the loop serves the fake servers.
 *
 * Everything is bounded: the message count, the worker count, and a
 * real-time deadline per run after which every handle is closed.
 */
#include "latency.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "detour/adapter.h"
#include "detour/detour_uv.h"
#include "detour/fake.h"

/* ------------------------------------------------------------------------ */
/* The fault kinds: those where failover is immediate or bounded.           */

#define ATTEMPTS DETOUR_BENCH_MAX_ATTEMPTS
#define RETRY DETOUR_BENCH_RETRY_INTERVAL

/* The budget is what the policy itself must cost: a CONNECT or SWITCH
 * failure moves on at once (R3, R5); a blackhole costs the connect
 * timeout; a TRANSIENT failure retries the same server after the interval
 * until the attempt limit, then moves on (R6, R7). */
static const detour_bench_fault FAULTS[] = {
    {"none", NULL, -1, DETOUR_CLASS_NONE, 0, "baseline, primary healthy"},
    {"refuse", "refuse", -1, DETOUR_CLASS_CONNECT, 0, "immediate"},
    {"greeting_421", "greeting_421", -1, DETOUR_CLASS_SWITCH, 0, "immediate"},
    {"greeting_554", "greeting_554", -1, DETOUR_CLASS_SWITCH, 0, "immediate"},
    {"disk_full", "disk_full", DETOUR_FAKE_RCPT, DETOUR_CLASS_SWITCH, 0,
     "immediate (452 at RCPT)"},
    {"unsupported", "unsupported", DETOUR_FAKE_MAIL, DETOUR_CLASS_SWITCH, 0,
     "immediate (555 at MAIL)"},
    {"blackhole", "blackhole", -1, DETOUR_CLASS_CONNECT,
     DETOUR_BENCH_CONNECT_TIMEOUT, "connect timeout"},
    {"silent", "silent", -1, DETOUR_CLASS_TRANSIENT,
     ATTEMPTS *DETOUR_BENCH_GREETING_TIMEOUT + (ATTEMPTS - 1) * RETRY,
     "2 greeting timeouts + 1 retry interval"},
    {"reset", "reset", DETOUR_FAKE_MAIL, DETOUR_CLASS_TRANSIENT,
     (ATTEMPTS - 1) * RETRY, "RST at MAIL: 1 retry interval"},
};
#define NFAULTS (sizeof FAULTS / sizeof *FAULTS)

size_t detour_bench_fault_count(void) { return NFAULTS; }

const detour_bench_fault *detour_bench_fault_at(size_t i) {
  return i < NFAULTS ? &FAULTS[i] : NULL;
}

const detour_bench_fault *detour_bench_fault_find(const char *name) {
  for (size_t i = 0; name && i < NFAULTS; i++)
    if (strcmp(FAULTS[i].name, name) == 0)
      return &FAULTS[i];
  return NULL;
}

/* ------------------------------------------------------------------------ */
/* One run                                                                   */

enum { PRIMARY = 0, BACKUP = 1, NOBODY = -1 };

typedef struct bench_run bench_run;

typedef struct {
  bench_run *run;
  detour_engine *engine; /* NULL when the worker feeds an external client */
  detour_uv *driver;
  uv_work_t work; /* the external client's submit, on the thread pool */
  int submit_rc;  /* its result, read in the loop once the work is done */
  size_t msg;     /* the message in flight, SIZE_MAX when none */
  bool done;      /* the engine (or the client) finished msg */
  detour_done_status status;
} worker;

struct bench_run {
  uv_loop_t loop;
  detour_clock *clock;
  detour_fake_server *srv[2]; /* PRIMARY, BACKUP */
  int expect;                 /* which one should take the mail */
  bool wait_accept;           /* a client: its 250 comes before the delivery */
  const detour_adapter *client; /* NULL: the workers are engines */
  void *inst;                   /* the client's instance */
  char client_err[256];         /* why the first failed submit failed */
  worker w[DETOUR_BENCH_CONCURRENCY_MAX];
  size_t nw;
  uint64_t *submit_ns, *accept_ns;
  signed char *by; /* NOBODY, PRIMARY, BACKUP */
  size_t n, next, finished;
  uv_timer_t deadline; /* also the stopper, restarted at 0 ms */
  bool loop_ok, stopping, timed_out;
};

static const char BODY[] = "Subject: detour failover bench\r\n"
                           "\r\n"
                           "One message of the failover-latency bench.\r\n";
static const char *const RCPTS[] = {"sink@backup.test"};

static void set_err(char *err, size_t errlen, const char *what,
                    const char *why) {
  if (err && errlen)
    snprintf(err, errlen, "%s: %s", what, why ? why : "failed");
}

/* The message number is in the sender: the fake servers record it. */
static bool message_number(const char *from, size_t *k) {
  unsigned long v;
  char at;
  if (sscanf(from, "bench-%lu%c", &v, &at) != 2 || at != '@')
    return false;
  *k = (size_t)v;
  return true;
}

static void submit_next(worker *w);
static void stop_now(uv_timer_t *t);

static void stop_soon(bench_run *r) {
  if (r->stopping)
    return;
  /* From the loop's top level, never from inside a driver or a server. */
  uv_timer_start(&r->deadline, stop_now, 0, 0);
}

/* A worker moves on once its message is finished: done by the engine, and
 * for Postfix also delivered (or given up by the submission). */
static void maybe_next(worker *w) {
  bench_run *r = w->run;
  if (w->msg == SIZE_MAX || !w->done)
    return;
  if (r->wait_accept && w->status == DETOUR_DONE_DELIVERED &&
      r->by[w->msg] == NOBODY)
    return;
  w->msg = SIZE_MAX;
  if (++r->finished == r->n)
    stop_soon(r);
  else
    submit_next(w);
}

static void on_message(void *arg, detour_fake_server *srv,
                       const detour_fake_event *ev) {
  bench_run *r = arg;
  size_t k;
  if (ev->type != DETOUR_FAKE_EV_MESSAGE || !ev->msg->complete ||
      !message_number(ev->msg->from, &k) || k >= r->n || r->by[k] != NOBODY)
    return;
  r->accept_ns[k] = ev->msg->mono;
  r->by[k] = srv == r->srv[PRIMARY] ? PRIMARY : BACKUP;
  for (size_t i = 0; i < r->nw; i++)
    if (r->w[i].msg == k)
      maybe_next(&r->w[i]);
}

static void on_done(void *arg, size_t message, detour_done_status status) {
  worker *w = arg;
  w->done = true;
  w->status = status;
  maybe_next(w);
}

/* On the thread pool: the client takes the message (or fails to), its
 * submission time taken just before. Only w->submit_rc, submit_ns[msg]
 * and client_err are written here; the loop reads them after
 * client_submitted, or after uv_run. */
static void client_submit(uv_work_t *req) {
  worker *w = req->data;
  bench_run *r = w->run;
  char from[64], err[sizeof r->client_err];
  snprintf(from, sizeof from, "bench-%zu@client.test", w->msg);
  detour_adapter_message m = {.from = from,
                              .rcpts = RCPTS,
                              .nrcpts = 1,
                              .body = BODY,
                              .body_len = sizeof BODY - 1};
  r->submit_ns[w->msg] = uv_hrtime();
  w->submit_rc = r->client->submit(r->inst, &m, err, sizeof err);
  if (w->submit_rc != 0 && !r->client_err[0])
    snprintf(r->client_err, sizeof r->client_err, "%s", err);
}

/* In the loop: a message the client did not take is counted as lost. */
static void client_submitted(uv_work_t *req, int status) {
  worker *w = req->data;
  w->done = true;
  w->status = status == 0 && w->submit_rc == 0 ? DETOUR_DONE_DELIVERED
                                               : DETOUR_DONE_DEFERRED;
  maybe_next(w);
}

static void submit_next(worker *w) {
  bench_run *r = w->run;
  if (r->stopping || r->next >= r->n)
    return;
  size_t k = r->next++;
  w->msg = k;
  w->done = false;
  if (r->client) {
    w->work.data = w;
    if (uv_queue_work(&r->loop, &w->work, client_submit, client_submitted) < 0)
      client_submitted(&w->work, UV_ECANCELED);
    return;
  }
  char from[64];
  snprintf(from, sizeof from, "bench-%zu@client.test", k);
  detour_message m = {.from = from,
                      .rcpts = RCPTS,
                      .nrcpts = 1,
                      .body = BODY,
                      .body_len = sizeof BODY - 1};
  r->submit_ns[k] = uv_hrtime();
  if (detour_uv_submit(w->driver, &m) < 0) { /* counted as lost */
    w->done = true;
    w->status = DETOUR_DONE_DEFERRED;
    maybe_next(w);
  }
}

/* Closing everything ends uv_run: the drivers and servers close their
 * handles, the deadline timer is the last one. */
static void stop_now(uv_timer_t *t) {
  bench_run *r = t->data;
  r->stopping = true;
  for (size_t i = 0; i < r->nw; i++)
    detour_uv_free(r->w[i].driver);
  for (int i = 0; i < 2; i++)
    detour_fake_server_free(r->srv[i]);
  uv_close((uv_handle_t *)&r->deadline, NULL);
}

static void on_deadline(uv_timer_t *t) {
  ((bench_run *)t->data)->timed_out = true;
  stop_now(t);
}

/* ------------------------------------------------------------------------ */
/* Setting up and tearing down                                               */

static int run_init(bench_run *r, size_t n, char *err, size_t errlen) {
  memset(r, 0, sizeof *r);
  r->n = n;
  r->submit_ns = calloc(n, sizeof *r->submit_ns);
  r->accept_ns = calloc(n, sizeof *r->accept_ns);
  r->by = malloc(n);
  if (!r->submit_ns || !r->accept_ns || !r->by)
    return set_err(err, errlen, "bench", "out of memory"), DETOUR_ENOMEM;
  memset(r->by, NOBODY, n);
  if (uv_loop_init(&r->loop) != 0)
    return set_err(err, errlen, "bench", "uv_loop_init"), DETOUR_EIO;
  r->loop_ok = true;
  uv_timer_init(&r->loop, &r->deadline);
  r->deadline.data = r;
  r->clock = detour_clock_new_real(&r->loop);
  if (!r->clock)
    return set_err(err, errlen, "bench", "clock"), DETOUR_ENOMEM;
  return 0;
}

/* The primary's script: the fault, or nothing for the baseline. Record
 * off: the observer sees every message and memory stays flat. */
static detour_fake_script *primary_script(const detour_bench_fault *f) {
  detour_fake_script *s = detour_fake_script_new("primary");
  if (!s)
    return NULL;
  detour_fake_script_set_record(s, DETOUR_FAKE_RECORD_OFF);
  detour_fake_fault_args a = {
      .has_stage = f->stage >= 0,
      .stage = (detour_fake_stage)(f->stage < 0 ? 0 : f->stage)};
  if (f->fault && detour_fake_script_add_fault(s, f->fault, &a) != 0) {
    detour_fake_script_free(s);
    return NULL;
  }
  return s;
}

static int start_server(bench_run *r, int which, detour_fake_script *s,
                        const char *listen, char *err, size_t errlen) {
  int e = 0;
  if (!s)
    return set_err(err, errlen, listen, "script"), DETOUR_ENOMEM;
  r->srv[which] = detour_fake_server_new(r->clock, s, listen, 0, &e);
  detour_fake_script_free(s);
  if (!r->srv[which])
    return set_err(err, errlen, listen, detour_strerror(e)), e;
  detour_fake_server_set_observer(r->srv[which], on_message, r);
  return detour_fake_server_start(r->srv[which], err, errlen);
}

/* Primary on 127.0.0.2, backup on 127.0.0.3, ephemeral ports. */
static int start_servers(bench_run *r, const detour_bench_fault *f, char *err,
                         size_t errlen) {
  int rc =
      start_server(r, PRIMARY, primary_script(f), "127.0.0.2:0", err, errlen);
  if (rc != 0)
    return rc;
  detour_fake_script *b = detour_fake_script_new("backup");
  if (b)
    detour_fake_script_set_record(b, DETOUR_FAKE_RECORD_OFF);
  return start_server(r, BACKUP, b, "127.0.0.3:0", err, errlen);
}

/* The bench's engine tuning (latency.h): short timeouts, short retry. */
static void bench_config(detour_config *c) {
  detour_config_init(c);
  c->retry_interval = DETOUR_BENCH_RETRY_INTERVAL;
  c->max_attempts = DETOUR_BENCH_MAX_ATTEMPTS;
  detour_timeouts *t = &c->timeouts;
  t->connect = DETOUR_BENCH_CONNECT_TIMEOUT;
  t->greeting = DETOUR_BENCH_GREETING_TIMEOUT;
  t->ehlo = t->mail = t->rcpt = t->data_start = t->data_block = t->final_dot =
      t->quit = DETOUR_BENCH_REPLY_TIMEOUT;
}

static int start_workers(bench_run *r, const detour_config *cfg, size_t nw,
                         char *err, size_t errlen) {
  r->nw = nw;
  for (size_t i = 0; i < nw; i++) {
    worker *w = &r->w[i];
    int e = 0;
    w->run = r;
    w->msg = SIZE_MAX;
    w->engine = detour_engine_new(cfg, &e);
    if (!w->engine)
      return set_err(err, errlen, "engine", detour_strerror(e)), e;
    detour_uv_callbacks cb = {.on_done = on_done, .arg = w};
    w->driver = detour_uv_new(r->clock, w->engine, &cb);
    if (!w->driver)
      return set_err(err, errlen, "driver", "out of memory"), DETOUR_ENOMEM;
  }
  return 0;
}

/* Run until every message finished or the deadline. */
static void run_loop(bench_run *r, detour_ms timeout_ms) {
  uv_timer_start(&r->deadline, on_deadline, (uint64_t)timeout_ms, 0);
  for (size_t i = 0; i < r->nw; i++)
    submit_next(&r->w[i]);
  uv_run(&r->loop, UV_RUN_DEFAULT);
}

/* Frees whatever run_init and the starts made, also after a failed
 * setup (the loop is then run once more to close what was opened). */
static void run_free(bench_run *r) {
  if (r->loop_ok) {
    if (!r->stopping)
      stop_now(&r->deadline);
    uv_run(&r->loop, UV_RUN_DEFAULT);
  }
  for (size_t i = 0; i < r->nw; i++)
    detour_engine_free(r->w[i].engine);
  detour_clock_free(r->clock);
  if (r->loop_ok) {
    uv_run(&r->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&r->loop) != 0)
      fprintf(stderr, "detour bench: a handle was left open\n");
  }
  free(r->submit_ns);
  free(r->accept_ns);
  free(r->by);
}

/* ------------------------------------------------------------------------ */
/* Figures                                                                   */

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Nearest rank: the smallest value with at least q of the sample at or
 * below it. */
static double percentile(const double *sorted, size_t n, double q) {
  size_t rank = (size_t)(q * (double)n + 0.999999);
  return sorted[rank == 0 ? 0 : rank - 1];
}

static void figures(const bench_run *r, detour_bench_result *out) {
  memset(out, 0, sizeof *out);
  out->n = r->next;
  out->timed_out = r->timed_out;
  double *lat = malloc((r->n ? r->n : 1) * sizeof *lat);
  uint64_t first = UINT64_MAX, last = 0;
  double sum = 0;
  for (size_t k = 0; lat && k < r->next; k++) {
    if (r->by[k] == NOBODY) {
      out->lost++;
      continue;
    }
    if (r->by[k] != r->expect) {
      out->wrong++;
      continue;
    }
    lat[out->ok] = (double)(r->accept_ns[k] - r->submit_ns[k]) / 1e6;
    sum += lat[out->ok++];
    first = r->submit_ns[k] < first ? r->submit_ns[k] : first;
    last = r->accept_ns[k] > last ? r->accept_ns[k] : last;
  }
  if (lat && out->ok) {
    qsort(lat, out->ok, sizeof *lat, cmp_double);
    out->p50 = percentile(lat, out->ok, 0.50);
    out->p90 = percentile(lat, out->ok, 0.90);
    out->p99 = percentile(lat, out->ok, 0.99);
    out->max = lat[out->ok - 1];
    out->mean = sum / (double)out->ok;
    if (last > first)
      out->per_sec = (double)out->ok / ((double)(last - first) / 1e9);
  }
  free(lat);
}

int detour_bench_run(const detour_bench_fault *f, size_t messages,
                     size_t concurrency, detour_ms timeout_ms,
                     detour_bench_result *out, char *err, size_t errlen) {
  if (!f || !out || messages == 0 || messages > DETOUR_BENCH_MESSAGES_MAX ||
      concurrency == 0 || concurrency > DETOUR_BENCH_CONCURRENCY_MAX ||
      timeout_ms <= 0)
    return set_err(err, errlen, "bench", "bad arguments"), DETOUR_EINVAL;
  bench_run r;
  int rc = run_init(&r, messages, err, errlen);
  r.expect = f->fault ? BACKUP : PRIMARY;
  if (rc == 0)
    rc = start_servers(&r, f, err, errlen);
  detour_config cfg;
  bench_config(&cfg);
  if (rc == 0) {
    detour_config_add_server(&cfg, "127.0.0.2",
                             detour_fake_server_port(r.srv[PRIMARY]), 1);
    detour_config_add_server(&cfg, "127.0.0.3",
                             detour_fake_server_port(r.srv[BACKUP]), 2);
    rc = start_workers(&r, &cfg, concurrency, err, errlen);
  }
  uint64_t t0 = uv_hrtime();
  if (rc == 0)
    run_loop(&r, timeout_ms);
  figures(&r, out);
  out->wall_s = (double)(uv_hrtime() - t0) / 1e9;
  run_free(&r);
  return rc;
}

/* ------------------------------------------------------------------------ */
/* Postfix, side by side, through the scenario runner's adapter             */

/* The client's tuning is the engine's (bench_config), which the adapter
 * rounds up to what the client understands (whole seconds for Postfix):
 * for refuse and none it never waits on one of them anyway. */
static int client_start(bench_run *r, const detour_adapter *a, char *err,
                        size_t errlen) {
  detour_config cfg;
  bench_config(&cfg);
  detour_adapter_server sv[2] = {
      {.name = "primary",
       .host = "127.0.0.2",
       .port = detour_fake_server_port(r->srv[PRIMARY]),
       .priority = 1},
      {.name = "backup",
       .host = "127.0.0.3",
       .port = detour_fake_server_port(r->srv[BACKUP]),
       .priority = 2}};
  detour_adapter_config c = {.scenario = "detour bench",
                             .servers = sv,
                             .nservers = 2,
                             .retry_interval = cfg.retry_interval,
                             .max_attempts = cfg.max_attempts,
                             .timeouts = cfg.timeouts};
  r->inst = a->prepare(a, &c, err, errlen);
  if (!r->inst)
    return DETOUR_EIO;
  r->client = a;
  r->nw = 1; /* one message at a time, each after the previous arrived */
  r->w[0] = (worker){.run = r, .msg = SIZE_MAX};
  return 0;
}

static int client_measure(const detour_adapter *a, const detour_bench_fault *f,
                          size_t messages, detour_ms timeout_ms,
                          detour_bench_result *out, char *err, size_t errlen) {
  bench_run r;
  int rc = run_init(&r, messages, err, errlen);
  r.expect = f->fault ? BACKUP : PRIMARY;
  r.wait_accept = true;
  if (rc == 0)
    rc = start_servers(&r, f, err, errlen);
  if (rc == 0)
    rc = client_start(&r, a, err, errlen);
  uint64_t t0 = uv_hrtime();
  if (rc == 0)
    run_loop(&r, timeout_ms);
  figures(&r, out);
  out->wall_s = (double)(uv_hrtime() - t0) / 1e9;
  if (r.client_err[0])
    fprintf(stderr, "detour bench: %s did not take a message: %s\n", a->name,
            r.client_err);
  /* uv_run returned: no submit is in flight any more */
  if (r.inst)
    a->teardown(r.inst);
  run_free(&r);
  return rc;
}

int detour_bench_postfix(const char *fault, size_t messages,
                         detour_ms timeout_ms, detour_bench_result *out,
                         char *err, size_t errlen) {
  if (!out)
    return set_err(err, errlen, "postfix", "bad arguments"), DETOUR_EINVAL;
  memset(out, 0, sizeof *out);
  const detour_adapter *a = detour_adapter_find("postfix");
  char why[256] = "";
  if (!a || !a->available(a, why, sizeof why))
    return set_err(err, errlen, "postfix", a ? why : "no adapter"), 1;
  const detour_bench_fault *f = detour_bench_fault_find(fault);
  if (!f || messages == 0 || messages > DETOUR_BENCH_MESSAGES_MAX ||
      timeout_ms <= 0)
    return set_err(err, errlen, "postfix", "bad arguments"), DETOUR_EINVAL;
  return client_measure(a, f, messages, timeout_ms, out, err, errlen);
}

/*
 * latency.c - the failover-latency bench behind `detour bench`.
 *
 * One run: a primary fake server with one fault of the catalogue, a
 * healthy backup, and a client that sends N messages, each its own
 * submission. The client is either the built-in engine (W workers, an
 * engine and a libuv driver each, on one real clock, each one message at
 * a time) or an external client through its adapter (detour/adapter.h:
 * one worker; the adapter's blocking submit runs on libuv's thread pool
 * while the loop serves the fake servers). A message's latency runs from
 * just before the submission to the final "." as the server that took it
 * recorded it: both are uv_hrtime() (monotonic), so no clock can drift
 * between them.
 *
 * Over a simulated network (netsim.h) each server listens inside its own
 * namespace and the loop thread enters the client's for the run, before
 * the client starts: the engine's connections leave from there, and an
 * external client's processes are spawned from there (told so by
 * detour_adapter_config.private_network, the only way its adapter takes
 * servers that are not on loopback). Its submissions run on libuv's
 * thread pool, whose threads enter the client's namespace for each call:
 * a client's own listener (Postfix's smtpd on 127.0.0.1) is the one in
 * that namespace.
 *
 * Everything is bounded: the message count, the worker count, a real-time
 * deadline per run after which every handle is closed, and for an
 * external client a deadline per message.
 */
#include "latency.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "detour/detour_uv.h"
#include "detour/fake.h"
#include "detour/scenario.h"
#ifdef DETOUR_BENCH_HAVE_NETSIM
#include "netsim.h"
#endif

/* ------------------------------------------------------------------------ */
/* The fault kinds                                                           */

static const detour_bench_fault FAULTS[] = {
    {"none", NULL, -1, DETOUR_CLASS_NONE, "baseline, primary healthy", false},
    {"refuse", "refuse", -1, DETOUR_CLASS_CONNECT, "connection refused (RST)",
     false},
    {"blackhole", "blackhole", -1, DETOUR_CLASS_CONNECT,
     "SYNs unanswered: connect timeout", false},
    {"silent", "silent", -1, DETOUR_CLASS_TRANSIENT,
     "accepts, never greets: greeting timeout", false},
    {"greeting_421", "greeting_421", -1, DETOUR_CLASS_SWITCH,
     "421 4.3.2 greeting", false},
    {"greeting_554", "greeting_554", -1, DETOUR_CLASS_SWITCH,
     "554 5.3.2 greeting", false},
    {"mail_555", "unsupported", DETOUR_FAKE_MAIL, DETOUR_CLASS_SWITCH,
     "555 5.5.4 at MAIL", false},
    {"rcpt_452", "disk_full", DETOUR_FAKE_RCPT, DETOUR_CLASS_SWITCH,
     "452 4.3.1 at RCPT", false},
    {"rcpt_450", "busy", DETOUR_FAKE_RCPT, DETOUR_CLASS_TRANSIENT,
     "450 4.2.1 at RCPT", false},
    {"eod_552", "disk_full", DETOUR_FAKE_EOD, DETOUR_CLASS_SWITCH,
     "552 5.3.1 after the final dot", false},
    {"reset", "reset", DETOUR_FAKE_MAIL, DETOUR_CLASS_TRANSIENT,
     "RST instead of the reply to MAIL", false},
    {"drop_mid_data", "drop_mid_data", -1, DETOUR_CLASS_TRANSIENT,
     "RST 64 bytes into the message", false},
    /* TLS (rule R13, docs/rules.md): the client requires STARTTLS at the
     * primary and trusts the run's CA; each of these makes TLS impossible there
     */
    {"starttls_stripped", "starttls_stripped", -1, DETOUR_CLASS_SWITCH,
     "STARTTLS not offered (stripped)", true},
    {"starttls_454", "starttls_454", -1, DETOUR_CLASS_SWITCH,
     "454 4.7.0 to STARTTLS", true},
    {"tls_alert", "tls_alert", -1, DETOUR_CLASS_SWITCH,
     "handshake_failure alert", true},
    {"tls_drop", "tls_drop", -1, DETOUR_CLASS_SWITCH,
     "half a handshake, then FIN", true},
    {"cert_expired", "cert_expired", -1, DETOUR_CLASS_SWITCH,
     "expired certificate", true},
    {"cert_self_signed", "cert_self_signed", -1, DETOUR_CLASS_SWITCH,
     "self-signed certificate", true},
    {"cert_wrong_host", "cert_wrong_host", -1, DETOUR_CLASS_SWITCH,
     "certificate for another host", true},
    {"cert_unknown_ca", "cert_unknown_ca", -1, DETOUR_CLASS_SWITCH,
     "certificate from an unknown CA", true},
    {"tls_old_only", "tls_old_only", -1, DETOUR_CLASS_SWITCH,
     "TLS 1.0/1.1 only", true},
};
#define NFAULTS (sizeof FAULTS / sizeof *FAULTS)

/* Names of earlier versions of the bench. */
static const struct {
  const char *alias, *name;
} ALIASES[] = {{"disk_full", "rcpt_452"}, {"unsupported", "mail_555"}};

size_t detour_bench_fault_count(void) { return NFAULTS; }

const detour_bench_fault *detour_bench_fault_at(size_t i) {
  return i < NFAULTS ? &FAULTS[i] : NULL;
}

const detour_bench_fault *detour_bench_fault_find(const char *name) {
  for (size_t i = 0; name && i < sizeof ALIASES / sizeof *ALIASES; i++)
    if (strcmp(ALIASES[i].alias, name) == 0)
      name = ALIASES[i].name;
  for (size_t i = 0; name && i < NFAULTS; i++)
    if (strcmp(FAULTS[i].name, name) == 0)
      return &FAULTS[i];
  return NULL;
}

void detour_bench_default_settings(detour_bench_settings *s) {
  memset(s, 0, sizeof *s);
  s->retry_interval = DETOUR_BENCH_RETRY_INTERVAL;
  s->max_attempts = DETOUR_BENCH_MAX_ATTEMPTS;
  s->pipelining = true;
  detour_timeouts *t = &s->timeouts;
  t->connect = DETOUR_BENCH_CONNECT_TIMEOUT;
  t->greeting = DETOUR_BENCH_GREETING_TIMEOUT;
  /* every one set: 0 would be a timeout at once (the TLS handshake's was,
   * before the backup spoke TLS too) */
  t->ehlo = t->mail = t->rcpt = t->data_start = t->data_block = t->final_dot =
      t->quit = t->tls = t->auth = DETOUR_BENCH_REPLY_TIMEOUT;
}

/* Does the adapter render key ("timeouts.connect")? A top-level key
 * ("timeouts") covers its sub-keys. NULL keys: the engine, everything. */
static bool renders(const char *keys, const char *key) {
  if (!keys)
    return true;
  size_t top = strcspn(key, ".");
  for (const char *p = keys; *p;) {
    size_t k = strcspn(p, " ");
    if ((k == strlen(key) && !strncmp(p, key, k)) ||
        (k == top && !strncmp(p, key, top)))
      return true;
    p += k + (p[k] == ' ');
  }
  return false;
}

/* A TLS fault for a client (its manifest's tls.* keys): the policy it
 * cannot be given is named, as a timeout it cannot be set is. A client
 * that does not check what the fault breaks takes the message on the
 * primary, which the bench then measures as it is. */
static detour_ms tls_budget(const detour_bench_fault *f, const char *keys,
                            detour_ms budget, char *note, size_t notelen) {
  const char *why = NULL;
  bool cert = !strncmp(f->name, "cert_", 5);
  bool name = !strcmp(f->name, "cert_wrong_host");
  if (!renders(keys, "tls.required"))
    why = "tls.required not settable: not configured for TLS";
  else if (cert && !renders(keys, name ? "tls.verify_name" : "tls.verify") &&
           !renders(keys, "tls.pin"))
    why = name ? "tls.verify_name not settable: no name check, so the "
                 "primary may take it"
               : "tls.verify not settable: no certificate check, so the "
                 "primary may take it";
  if (why) {
    if (note && notelen)
      snprintf(note, notelen, "%s", why);
    return -1;
  }
  if (cert && !renders(keys, name ? "tls.verify_name" : "tls.verify") && note &&
      notelen)
    snprintf(note, notelen,
             "tls.pin only: it pins the good certificate (no CA, name or "
             "date check of its own)");
  return budget;
}

/* The budget is what the policy itself must cost: a CONNECT or SWITCH
 * failure moves on at once (R3, R5); a blackhole costs the connect
 * timeout; a TRANSIENT failure retries the same server after the interval
 * until the attempt limit, then moves on (R6, R7). A client without an
 * attempt limit is counted with one attempt at the primary: what it does
 * next (the backup at once, or a retry) is what the bench measures. */
detour_ms detour_bench_budget(const detour_bench_fault *f,
                              const detour_bench_settings *s, const char *keys,
                              char *note, size_t notelen) {
  if (note && notelen)
    note[0] = '\0';
  unsigned attempts = renders(keys, "retry.max_attempts") ? s->max_attempts : 1;
  if (attempts == 0)
    attempts = 1;
  detour_ms retries = (detour_ms)(attempts - 1) * s->retry_interval;
  const char *needs = NULL;
  detour_ms budget = 0;
  if (f->expected == DETOUR_CLASS_TRANSIENT)
    budget = retries;
  if (f->fault && !strcmp(f->fault, "blackhole")) {
    needs = "timeouts.connect";
    budget = s->timeouts.connect;
  } else if (f->fault && !strcmp(f->fault, "silent")) {
    needs = "timeouts.greeting";
    budget = (detour_ms)attempts * s->timeouts.greeting + retries;
  }
  if (needs && !renders(keys, needs)) {
    if (note && notelen)
      snprintf(note, notelen, "%s not settable: the client's own", needs);
    return -1;
  }
  if (f->expected == DETOUR_CLASS_TRANSIENT && attempts == 1 && note &&
      notelen && !needs)
    snprintf(note, notelen, "no attempt limit: + its retries");
  if (f->tls && keys)
    return tls_budget(f, keys, budget, note, notelen);
  return budget;
}

static const char *const OUTCOME_NAMES[] = {"primary", "backup", "bounced",
                                            "deferred", "not sent"};

const char *detour_bench_outcome_name(detour_bench_outcome o) {
  return o < DETOUR_BENCH_OUTCOMES ? OUTCOME_NAMES[o] : "?";
}

void detour_bench_result_free(detour_bench_result *r) {
  if (!r)
    return;
  free(r->samples);
  r->samples = NULL;
  r->nsamples = 0;
}

/* ------------------------------------------------------------------------ */
/* One run                                                                   */

enum { PRIMARY = 0, BACKUP = 1 };
/* A DNS name the good certificate carries, for clients that connect by
 * address but match only names (ca.c's default names have it too). */
#define TLS_NAME "mx.fake.test"
#define PENDING ((signed char)-1)

typedef struct bench_run bench_run;

typedef struct {
  bench_run *run;
  detour_engine *engine; /* NULL when the worker feeds an external client */
  detour_uv *driver;
  uv_work_t work;    /* the external client's submit, on the thread pool */
  uv_timer_t expire; /* an external client's per-message deadline */
  int submit_rc;     /* its result, read in the loop once the work is done */
  size_t msg;        /* the message in flight, SIZE_MAX when none */
  bool done;         /* the engine (or the client's submit) finished msg */
  bool expired;      /* the message's deadline passed */
  bool timer_ok;
  detour_done_status status;
} worker;

struct bench_run {
  uv_loop_t loop;
  detour_clock *clock;
  detour_fake_server *srv[2]; /* PRIMARY, BACKUP */
  const detour_bench_spec *spec;
  const detour_adapter *client; /* NULL: the workers are engines */
  void *inst;                   /* the client's instance */
  char client_err[256];         /* why the first failed submit failed */
  worker *w;
  size_t nw;
  uint64_t *submit_ns, *accept_ns;
  signed char *out; /* detour_bench_outcome, PENDING until known */
  size_t n, limit;  /* messages asked for; to send (less after giving up) */
  size_t next, finished, failed_first; /* submitted, finished, failed */
  bool stopped_early;
  uv_timer_t deadline; /* also the stopper, restarted at 0 ms */
  uv_timer_t watch;    /* looks for an interrupt (Ctrl-C) every 100 ms */
  bool loop_ok, stopping, timed_out;
  char ca_dir[256]; /* a TLS fault: the run-local CA, "" when none */
#ifdef DETOUR_BENCH_HAVE_NETSIM
  detour_netsim *ns;
  int saved_ns; /* the loop thread's own namespace; -1: not entered */
#endif
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

/* An external client holds a message it did not deliver: still queued
 * (deferred), or gone (bounced or dropped). Asked once, at the deadline
 * or after a synchronous submit. */
static detour_bench_outcome client_verdict(bench_run *r) {
  char err[128];
  int done = r->client->wait_done(r->inst, 0, err, sizeof err);
  return done == 1 ? DETOUR_BENCH_BOUNCED : DETOUR_BENCH_DEFERRED;
}

/* The message's outcome once the client is finished with it, or PENDING
 * while it may still arrive. */
static signed char settle(worker *w) {
  bench_run *r = w->run;
  size_t k = w->msg;
  if (r->out[k] != PENDING)
    return r->out[k];
  if (!r->client) /* the engine's word: it delivers before done */
    return (signed char)(w->status == DETOUR_DONE_DEFERRED
                             ? DETOUR_BENCH_DEFERRED
                             : DETOUR_BENCH_BOUNCED);
  if (w->submit_rc != 0)
    return DETOUR_BENCH_BOUNCED; /* the client refused the submission */
  if (!w->expired)
    return PENDING;
  return (signed char)client_verdict(r);
}

/* A worker moves on once its message is finished: done by the engine (or
 * the client's submit returned), and for a client also delivered or past
 * its deadline. */
static void maybe_next(worker *w) {
  bench_run *r = w->run;
  if (w->msg == SIZE_MAX || !w->done)
    return;
  signed char o = settle(w);
  if (o == PENDING)
    return;
  r->out[w->msg] = o;
  if (w->timer_ok)
    uv_timer_stop(&w->expire);
  bool arrived = o == DETOUR_BENCH_PRIMARY || o == DETOUR_BENCH_BACKUP;
  if (!arrived && r->finished == r->failed_first)
    r->failed_first++;
  w->msg = SIZE_MAX;
  ++r->finished;
  size_t give_up = r->spec->give_up_after;
  if (give_up && r->failed_first >= give_up && r->finished == r->failed_first) {
    r->stopped_early = true;
    r->limit = r->next; /* the rest are not sent */
  }
  if (r->finished == r->next && r->next >= r->limit)
    stop_soon(r);
  else
    submit_next(w);
}

static void on_message(void *arg, detour_fake_server *srv,
                       const detour_fake_event *ev) {
  bench_run *r = arg;
  size_t k;
  /* accepted: the whole message, and a 2xx to its final dot (a 552 there
   * is the fault itself, the message refused) */
  if (ev->type != DETOUR_FAKE_EV_MESSAGE || !ev->msg->complete ||
      ev->msg->code / 100 != 2 || !message_number(ev->msg->from, &k) ||
      k >= r->n || r->out[k] != PENDING)
    return;
  r->accept_ns[k] = ev->msg->mono;
  r->out[k] = (signed char)(srv == r->srv[PRIMARY] ? DETOUR_BENCH_PRIMARY
                                                   : DETOUR_BENCH_BACKUP);
  for (size_t i = 0; i < r->nw; i++)
    if (r->w[i].msg == k)
      maybe_next(&r->w[i]);
}

static void on_done(void *arg, size_t message, detour_done_status status) {
  (void)message;
  worker *w = arg;
  w->done = true;
  w->status = status;
  maybe_next(w);
}

/* On the thread pool: the client takes the message (or fails to), its
 * submission time taken just before. Only w->submit_rc, submit_ns[msg]
 * and client_err are written here; the loop reads them after
 * client_submitted, or after uv_run. */
/* A submission runs where the client lives: a pool thread enters the
 * client's namespace for the call (and leaves after). -1: cannot. */
static int client_ns_enter(bench_run *r, int *saved) {
  *saved = -1;
#ifdef DETOUR_BENCH_HAVE_NETSIM
  if (r->ns)
    return detour_netsim_enter(r->ns, DETOUR_NETSIM_CLIENT, saved) == 0 ? 0
                                                                        : -1;
#else
  (void)r;
#endif
  return 0;
}

static void client_ns_leave(int saved) {
#ifdef DETOUR_BENCH_HAVE_NETSIM
  if (saved >= 0)
    detour_netsim_leave(saved);
#else
  (void)saved;
#endif
}

static void client_submit(uv_work_t *req) {
  worker *w = req->data;
  bench_run *r = w->run;
  char from[64], err[sizeof r->client_err];
  int saved;
  if (client_ns_enter(r, &saved) != 0) {
    w->submit_rc = -1;
    if (!r->client_err[0])
      snprintf(r->client_err, sizeof r->client_err,
               "cannot enter the client namespace");
    return;
  }
  snprintf(from, sizeof from, "bench-%zu@client.test", w->msg);
  detour_adapter_message m = {.from = from,
                              .rcpts = RCPTS,
                              .nrcpts = 1,
                              .body = BODY,
                              .body_len = sizeof BODY - 1};
  r->submit_ns[w->msg] = uv_hrtime();
  w->submit_rc = r->client->submit(r->inst, &m, err, sizeof err);
  client_ns_leave(saved);
  if (w->submit_rc != 0 && !r->client_err[0])
    snprintf(r->client_err, sizeof r->client_err, "%s", err);
}

static void client_submitted(uv_work_t *req, int status) {
  worker *w = req->data;
  w->done = true;
  if (status != 0 && w->submit_rc == 0)
    w->submit_rc = -1;
  maybe_next(w);
}

static void on_expire(uv_timer_t *t) {
  worker *w = t->data;
  w->expired = true;
  maybe_next(w);
}

static void submit_next(worker *w) {
  bench_run *r = w->run;
  if (r->stopping || r->next >= r->limit)
    return;
  size_t k = r->next++;
  w->msg = k;
  w->done = false;
  w->expired = false;
  if (r->client) {
    w->work.data = w;
    w->submit_rc = 0;
    uv_timer_start(&w->expire, on_expire, (uint64_t)r->spec->msg_deadline, 0);
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
  if (detour_uv_submit(w->driver, &m) < 0) { /* counted as not delivered */
    w->done = true;
    w->status = DETOUR_DONE_DEFERRED;
    maybe_next(w);
  }
}

/* Closing everything ends uv_run: the drivers and servers close their
 * handles, the deadline timer is the last one. */
static void stop_now(uv_timer_t *t) {
  bench_run *r = t->data;
  if (r->stopping)
    return;
  r->stopping = true;
  for (size_t i = 0; i < r->nw; i++) {
    detour_uv_free(r->w[i].driver);
    r->w[i].driver = NULL;
    if (r->w[i].timer_ok)
      uv_close((uv_handle_t *)&r->w[i].expire, NULL);
  }
  for (int i = 0; i < 2; i++) {
    detour_fake_server_free(r->srv[i]);
    r->srv[i] = NULL;
  }
  uv_close((uv_handle_t *)&r->watch, NULL);
  uv_close((uv_handle_t *)&r->deadline, NULL);
}

/* SIGINT/SIGTERM (detour_scenario_interrupt): stop like at the deadline,
 * so that an external client is torn down, not left running. */
static void on_watch(uv_timer_t *t) {
  bench_run *r = t->data;
  if (detour_scenario_interrupted() && !r->stopping) {
    r->timed_out = true;
    stop_now(&r->deadline);
  }
}

static void on_deadline(uv_timer_t *t) {
  ((bench_run *)t->data)->timed_out = true;
  stop_now(t);
}

/* ------------------------------------------------------------------------ */
/* Setting up and tearing down                                               */

static int run_init(bench_run *r, const detour_bench_spec *spec, char *err,
                    size_t errlen) {
  memset(r, 0, sizeof *r);
  size_t n = spec->messages;
  r->spec = spec;
  r->client = spec->client;
  r->n = r->limit = n;
#ifdef DETOUR_BENCH_HAVE_NETSIM
  r->saved_ns = -1;
#endif
  r->submit_ns = calloc(n, sizeof *r->submit_ns);
  r->accept_ns = calloc(n, sizeof *r->accept_ns);
  r->out = malloc(n);
  r->w = calloc(spec->client ? 1 : spec->concurrency, sizeof *r->w);
  if (!r->submit_ns || !r->accept_ns || !r->out || !r->w)
    return set_err(err, errlen, "bench", "out of memory"), DETOUR_ENOMEM;
  memset(r->out, PENDING, n);
  if (uv_loop_init(&r->loop) != 0)
    return set_err(err, errlen, "bench", "uv_loop_init"), DETOUR_EIO;
  r->loop_ok = true;
  uv_timer_init(&r->loop, &r->deadline);
  r->deadline.data = r;
  uv_timer_init(&r->loop, &r->watch);
  r->watch.data = r;
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

#ifdef DETOUR_BENCH_HAVE_NETSIM
typedef struct {
  detour_fake_server *srv;
  char *why;
  size_t whylen;
} listen_call;

/* Runs inside the server's namespace: the listening socket is made here
 * and stays in it; accepted sessions inherit it. */
static int listen_inside(void *arg) {
  listen_call *c = arg;
  return detour_fake_server_start(c->srv, c->why, c->whylen) < 0 ? -1 : 0;
}
#endif

static int listen_server(bench_run *r, int which, char *err, size_t errlen) {
#ifdef DETOUR_BENCH_HAVE_NETSIM
  if (r->ns) {
    char why[256] = "";
    listen_call c = {r->srv[which], why, sizeof why};
    if (detour_netsim_run_in(r->ns, which, listen_inside, &c) != 0)
      return set_err(err, errlen, "server", why[0] ? why : "namespace"),
             DETOUR_EIO;
    return 0;
  }
#endif
  return detour_fake_server_start(r->srv[which], err, errlen);
}

static int start_server(bench_run *r, int which, detour_fake_script *s,
                        const char *listen, char *err, size_t errlen) {
  int e = 0;
  if (!s)
    return set_err(err, errlen, listen, "script"), DETOUR_ENOMEM;
  bool net = false;
#ifdef DETOUR_BENCH_HAVE_NETSIM
  net = r->ns != NULL;
#endif
  r->srv[which] = detour_fake_server_new(
      r->clock, s, listen, net ? DETOUR_FAKE_ALLOW_PUBLIC : 0, &e);
  detour_fake_script_free(s);
  if (!r->srv[which])
    return set_err(err, errlen, listen, detour_strerror(e)), e;
  detour_fake_server_set_observer(r->srv[which], on_message, r);
  if (r->ca_dir[0] && detour_fake_server_set_tls_dir(r->srv[which], r->ca_dir))
    return set_err(err, errlen, listen, "TLS directory"), DETOUR_EIO;
  return listen_server(r, which, err, errlen);
}

/* The server addresses: 127.0.0.2 and .3 on ephemeral ports; for a
 * client whose list is one name's addresses, both on the primary's port;
 * over a network, each namespace's address on port 25. */
static void server_addr(bench_run *r, int which, char *host, size_t len,
                        char *listen, size_t llen) {
#ifdef DETOUR_BENCH_HAVE_NETSIM
  if (r->ns) {
    snprintf(host, len, "%s", detour_netsim_addr(r->ns, which));
    snprintf(listen, llen, "%s:25", host);
    return;
  }
#endif
  snprintf(host, len, "127.0.0.%d", which + 2);
  bool same = r->client && r->client->placement == DETOUR_PLACE_SAME_PORT;
  if (which == BACKUP && same)
    snprintf(listen, llen, "%s:%u", host,
             (unsigned)detour_fake_server_port(r->srv[PRIMARY]));
  else
    snprintf(listen, llen, "%s:0", host);
}

static int start_servers(bench_run *r, char *err, size_t errlen) {
  char host[64], listen[80];
  server_addr(r, PRIMARY, host, sizeof host, listen, sizeof listen);
  int rc = start_server(r, PRIMARY, primary_script(r->spec->fault), listen, err,
                        errlen);
  if (rc != 0)
    return rc;
  detour_fake_script *b = detour_fake_script_new("backup");
  if (b)
    detour_fake_script_set_record(b, DETOUR_FAKE_RECORD_OFF);
  /* a TLS fault: the backup offers STARTTLS with the good certificate,
   * as a client that requires TLS everywhere needs */
  detour_fake_tls t = {.mode = DETOUR_FAKE_TLS_STARTTLS};
  if (b && r->ca_dir[0] && detour_fake_script_set_tls(b, &t) != 0) {
    detour_fake_script_free(b);
    b = NULL;
  }
  server_addr(r, BACKUP, host, sizeof host, listen, sizeof listen);
  return start_server(r, BACKUP, b, listen, err, errlen);
}

static void engine_config(const detour_bench_settings *s, detour_config *c) {
  detour_config_init(c);
  c->retry_interval = s->retry_interval;
  c->max_attempts = s->max_attempts;
  c->timeouts = s->timeouts;
  c->pipelining = s->pipelining;
}

static int start_engines(bench_run *r, char *err, size_t errlen) {
  detour_config cfg;
  engine_config(&r->spec->settings, &cfg);
  for (int i = PRIMARY; i <= BACKUP; i++) {
    char host[64], listen[80];
    server_addr(r, i, host, sizeof host, listen, sizeof listen);
    detour_config_add_server(&cfg, host, detour_fake_server_port(r->srv[i]),
                             i + 1);
  }
  /* STARTTLS required and the run's CA, at both servers as for the
   * external clients (most can say it only for all) */
  for (int i = PRIMARY; r->ca_dir[0] && i <= BACKUP; i++) {
    cfg.servers[i].tls = DETOUR_TLS_MODE_STARTTLS;
    snprintf(cfg.servers[i].ca_file, sizeof cfg.servers[i].ca_file, "%s/ca.pem",
             r->ca_dir);
  }
  r->nw = r->spec->concurrency;
  for (size_t i = 0; i < r->nw; i++) {
    worker *w = &r->w[i];
    int e = 0;
    w->run = r;
    w->msg = SIZE_MAX;
    w->engine = detour_engine_new(&cfg, &e);
    if (!w->engine)
      return set_err(err, errlen, "engine", detour_strerror(e)), e;
    detour_uv_callbacks cb = {.on_done = on_done, .arg = w};
    w->driver = detour_uv_new(r->clock, w->engine, &cb);
    if (!w->driver)
      return set_err(err, errlen, "driver", "out of memory"), DETOUR_ENOMEM;
  }
  return 0;
}

/* The client's settings are the engine's, which the adapter rounds up to
 * what the client understands (whole seconds for most). */
static int start_client(bench_run *r, char *err, size_t errlen) {
  const detour_adapter *a = r->spec->client;
  const detour_bench_settings *s = &r->spec->settings;
  detour_adapter_server sv[2];
  for (int i = PRIMARY; i <= BACKUP; i++) {
    char listen[80];
    sv[i] = (detour_adapter_server){.name = i == PRIMARY ? "primary" : "backup",
                                    .port = detour_fake_server_port(r->srv[i]),
                                    .priority = i + 1};
    server_addr(r, i, sv[i].host, sizeof sv[i].host, listen, sizeof listen);
  }
  char ca[300], cert[300];
  snprintf(ca, sizeof ca, "%s/ca.pem", r->ca_dir);
  snprintf(cert, sizeof cert, "%s/%s.pem", r->ca_dir,
           detour_fake_cert_name(DETOUR_FAKE_CERT_GOOD));
  detour_adapter_config c = {.scenario = "detour-bench",
                             .servers = sv,
                             .nservers = 2,
                             .retry_interval = s->retry_interval,
                             .max_attempts = s->max_attempts,
                             .timeouts = s->timeouts,
                             .tls_ca_file = r->ca_dir[0] ? ca : NULL,
                             .tls_cert_file = r->ca_dir[0] ? cert : NULL,
                             .tls_name = TLS_NAME};
#ifdef DETOUR_BENCH_HAVE_NETSIM
  /* the servers are in namespaces this run made; this thread is in the
   * client's (setup entered it first) */
  c.private_network = r->ns != NULL;
#endif
  r->inst = a->prepare(a, &c, err, errlen);
  if (!r->inst)
    return DETOUR_EIO;
  r->nw = 1; /* one message at a time, each after the previous finished */
  r->w[0] = (worker){.run = r, .msg = SIZE_MAX};
  uv_timer_init(&r->loop, &r->w[0].expire);
  r->w[0].expire.data = &r->w[0];
  r->w[0].timer_ok = true;
  return 0;
}

/* Run until every message finished or the deadline. */
static void run_loop(bench_run *r, detour_ms timeout_ms) {
  uv_update_time(&r->loop);
  uv_timer_start(&r->deadline, on_deadline, (uint64_t)timeout_ms, 0);
  uv_timer_start(&r->watch, on_watch, 100, 100);
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
  for (size_t i = 0; r->w && i < r->nw; i++)
    detour_engine_free(r->w[i].engine);
  detour_clock_free(r->clock);
  if (r->loop_ok) {
    uv_run(&r->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&r->loop) != 0)
      fprintf(stderr, "detour bench: a handle was left open\n");
  }
  free(r->submit_ns);
  free(r->accept_ns);
  free(r->out);
  free(r->w);
}

/* ------------------------------------------------------------------------ */
/* Figures                                                                   */

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Nearest rank: the smallest value with at least q of the sample at or
 * below it. */
double detour_bench_percentile(const double *sorted, size_t n, double q) {
  if (n == 0)
    return 0;
  size_t rank = (size_t)ceil(q * (double)n - 1e-9);
  return sorted[rank == 0 ? 0 : (rank > n ? n : rank) - 1];
}

static void figures(const bench_run *r, detour_bench_result *out) {
  memset(out, 0, sizeof *out);
  out->n = r->n;
  out->timed_out = r->timed_out;
  out->stopped_early = r->stopped_early;
  out->msg_deadline = r->spec->msg_deadline;
  int expect =
      r->spec->fault->fault ? DETOUR_BENCH_BACKUP : DETOUR_BENCH_PRIMARY;
  out->samples = malloc((r->n ? r->n : 1) * sizeof *out->samples);
  double *sorted = malloc((r->n ? r->n : 1) * sizeof *sorted);
  uint64_t first = UINT64_MAX, last = 0;
  double sum = 0;
  for (size_t k = 0; k < r->n; k++) {
    signed char o = r->out[k];
    if (o == PENDING) /* submitted and cut by the deadline, or never */
      o = k < r->next ? DETOUR_BENCH_DEFERRED : DETOUR_BENCH_NOT_SENT;
    out->count[(int)o]++;
    if (o != expect || !out->samples || !sorted)
      continue;
    double ms = (double)(r->accept_ns[k] - r->submit_ns[k]) / 1e6;
    out->samples[out->nsamples++] = ms;
    sum += ms;
    first = r->submit_ns[k] < first ? r->submit_ns[k] : first;
    last = r->accept_ns[k] > last ? r->accept_ns[k] : last;
  }
  out->ok = out->nsamples;
  if (out->nsamples) {
    memcpy(sorted, out->samples, out->nsamples * sizeof *sorted);
    qsort(sorted, out->nsamples, sizeof *sorted, cmp_double);
    out->p50 = detour_bench_percentile(sorted, out->nsamples, 0.50);
    out->p90 = detour_bench_percentile(sorted, out->nsamples, 0.90);
    out->p99 = detour_bench_percentile(sorted, out->nsamples, 0.99);
    out->max = sorted[out->nsamples - 1];
    out->mean = sum / (double)out->nsamples;
    if (last > first)
      out->per_sec = (double)out->ok / ((double)(last - first) / 1e9);
  }
  free(sorted);
}

/* ------------------------------------------------------------------------ */
/* The network                                                               */

int detour_bench_network_available(char *why, size_t len) {
#ifdef DETOUR_BENCH_HAVE_NETSIM
  return detour_netsim_available(why, len);
#else
  snprintf(why, len, "built without the network simulation (detour_netsim)");
  return 0;
#endif
}

#ifdef DETOUR_BENCH_HAVE_NETSIM
static int net_start(bench_run *r, char *err, size_t errlen) {
  const detour_bench_network *n = r->spec->network;
  detour_netsim_spec sp = {.nservers = 2};
  sp.client.delay_ms = n->client_delay;
  sp.client.loss = n->loss;
  for (int i = 0; i < 2; i++) {
    sp.servers[i].delay_ms = n->server_delay;
    sp.servers[i].jitter_ms = n->jitter;
    sp.servers[i].rate_bps = n->rate_bps;
  }
  return detour_netsim_start(&sp, &r->ns, err, errlen);
}

static int net_enter(bench_run *r, char *err, size_t errlen) {
  /* thread pool threads keep the namespace they were made in */
  detour_uv_warm_thread_pool(&r->loop);
  if (detour_netsim_enter(r->ns, DETOUR_NETSIM_CLIENT, &r->saved_ns) != 0)
    return set_err(err, errlen, "network", "cannot enter the client namespace"),
           DETOUR_EIO;
  return 0;
}

static void net_stop(bench_run *r) {
  if (r->saved_ns >= 0)
    detour_netsim_leave(r->saved_ns);
  r->saved_ns = -1;
  if (r->ns)
    detour_netsim_stop(r->ns);
  r->ns = NULL;
}
#endif

/* The run-local CA. Its certificates name what the clients connect to:
 * localhost, TLS_NAME, ::1, 127.0.0.1 to .16 (IP SANs), the name a
 * client's servers are behind (DETOUR_PLACE_SAME_PORT), and over a
 * simulated network the servers' addresses. */
static int make_ca(bench_run *r, char *err, size_t errlen) {
  const char *hosts[24] = {"localhost", TLS_NAME, "::1"};
  char ips[16][16];
  size_t n = 3;
  for (int i = 0; i < 16; i++) {
    snprintf(ips[i], sizeof ips[i], "127.0.0.%d", i + 1);
    hosts[n++] = ips[i];
  }
  const detour_adapter *a = r->spec->client;
  if (a && a->placement == DETOUR_PLACE_SAME_PORT && a->hostname)
    hosts[n++] = a->hostname;
#ifdef DETOUR_BENCH_HAVE_NETSIM
  for (int i = PRIMARY; r->ns && i <= BACKUP; i++) /* the servers' own */
    hosts[n++] = detour_netsim_addr(r->ns, i);
#endif
  return detour_fake_ca_make(r->ca_dir, sizeof r->ca_dir, hosts, n, err,
                             errlen);
}

static int setup(bench_run *r, char *err, size_t errlen) {
  const detour_bench_spec *spec = r->spec;
  int rc = 0;
  if (spec->network) {
#ifdef DETOUR_BENCH_HAVE_NETSIM
    rc = net_start(r, err, errlen);
#else
    return set_err(err, errlen, "network", "not built"), 1;
#endif
  }
  if (rc == 0 && spec->fault->tls && make_ca(r, err, errlen) != 0)
    rc = DETOUR_EIO;
  if (rc == 0)
    rc = start_servers(r, err, errlen);
#ifdef DETOUR_BENCH_HAVE_NETSIM
  /* before the client: its processes are born in the client's namespace */
  if (rc == 0 && r->ns)
    rc = net_enter(r, err, errlen);
#endif
  if (rc == 0)
    rc = spec->client ? start_client(r, err, errlen)
                      : start_engines(r, err, errlen);
  return rc;
}

int detour_bench_run(const detour_bench_spec *spec, detour_bench_result *out,
                     char *err, size_t errlen) {
  if (!spec || !spec->fault || !out || spec->messages == 0 ||
      spec->messages > DETOUR_BENCH_MESSAGES_MAX || spec->concurrency == 0 ||
      spec->concurrency > DETOUR_BENCH_CONCURRENCY_MAX ||
      spec->timeout_ms <= 0 || (spec->client && spec->msg_deadline <= 0))
    return set_err(err, errlen, "bench", "bad arguments"), DETOUR_EINVAL;
  memset(out, 0, sizeof *out);
  char why[256] = "";
  if (spec->client && !spec->client->available(spec->client, why, sizeof why))
    return set_err(err, errlen, spec->client->name, why), 1;
  if (spec->client && spec->fault->tls &&
      !renders(spec->client->keys, "tls.required"))
    return set_err(err, errlen, spec->client->name,
                   "not configured for TLS (its manifest renders no "
                   "tls.required)"),
           1;
  if (spec->network && !detour_bench_network_available(why, sizeof why))
    return set_err(err, errlen, "network", why), 1;
  bench_run r;
  int rc = run_init(&r, spec, err, errlen);
  if (rc == 0)
    rc = setup(&r, err, errlen);
  uint64_t t0 = uv_hrtime();
  if (rc == 0)
    run_loop(&r, spec->timeout_ms);
  figures(&r, out);
  out->wall_s = (double)(uv_hrtime() - t0) / 1e9;
  if (r.client_err[0])
    fprintf(stderr, "detour bench: %s did not take a message: %s\n",
            spec->client->name, r.client_err);
  /* uv_run returned: no submit is in flight any more */
  if (r.inst)
    spec->client->teardown(r.inst);
#ifdef DETOUR_BENCH_HAVE_NETSIM
  if (r.saved_ns >= 0) {
    detour_netsim_leave(r.saved_ns);
    r.saved_ns = -1;
  }
#endif
  run_free(&r);
  if (r.ca_dir[0])
    detour_fake_ca_remove(r.ca_dir);
#ifdef DETOUR_BENCH_HAVE_NETSIM
  net_stop(&r);
#endif
  return rc < 0 ? rc : rc > 0 ? 1 : 0;
}

/*
 * latency.h - the failover-latency bench (`detour bench`): messages sent in
 * real time to a faulty primary and a healthy backup (libdetour-fake
 * servers on loopback, or across a simulated network), timed from
 * submission to acceptance by the server that took them (the final "." as
 * the fake server recorded it, uv_hrtime ns). The client is the built-in
 * engine (its libuv driver, in process) or an external client through its
 * adapter (detour/adapter.h: a client manifest, clients/NAME.yaml).
 */
#ifndef DETOUR_BENCH_LATENCY_H
#define DETOUR_BENCH_LATENCY_H

#include <stdbool.h>
#include <stddef.h>

#include "detour/adapter.h"
#include "detour/detour.h"

/* Bounds on every load loop: a run can never grow without limit. */
#define DETOUR_BENCH_MESSAGES_MAX 100000
#define DETOUR_BENCH_CONCURRENCY_MAX 256

/* The settings every client is given (those it can express): whole
 * seconds, because the peers' configurations take whole seconds, so that
 * the engine and a peer wait the same time for the same fault. */
#define DETOUR_BENCH_CONNECT_TIMEOUT 1000  /* ms: blackhole */
#define DETOUR_BENCH_GREETING_TIMEOUT 1000 /* ms: silent */
#define DETOUR_BENCH_REPLY_TIMEOUT 5000    /* ms: every other reply */
#define DETOUR_BENCH_RETRY_INTERVAL 1000   /* ms: TRANSIENT, same server */
#define DETOUR_BENCH_MAX_ATTEMPTS 2        /* per server per message */

/* One fault kind of the bench. */
typedef struct {
  const char *name;      /* as on the command line: "refuse", "rcpt_452" */
  const char *fault;     /* catalogue entry for the primary; NULL: healthy */
  int stage;             /* detour_fake_stage, or -1: the entry's default */
  detour_class expected; /* rule R3 class of the primary's failure */
  const char *what;      /* "452 4.3.1 at RCPT", for the table */
  bool tls;              /* a TLS fault: only for a client configured for TLS */
} detour_bench_fault;

size_t detour_bench_fault_count(void);
/* Entry i, NULL past the end; entry 0 is the baseline "none". Static. */
const detour_bench_fault *detour_bench_fault_at(size_t i);
/* By name, or an older alias ("disk_full" = "rcpt_452"). */
const detour_bench_fault *detour_bench_fault_find(const char *name);

/* The settings a run gives its client. */
typedef struct {
  detour_timeouts timeouts;
  detour_ms retry_interval;
  unsigned max_attempts;
  /* RFC 2920 PIPELINING when the server offers it: Postfix and Exim use
   * it by default, so the engine is given it too (it is off in a
   * detour_config by default); the other peers send one command at a
   * time and cannot be told otherwise */
  bool pipelining;
} detour_bench_settings;

void detour_bench_default_settings(detour_bench_settings *s);

/* What the configuration implies for a fault (the time the policy itself
 * must wait: timeouts and retry intervals), for a client that renders the
 * keys in `keys` (an adapter's keys; NULL: the built-in engine, which
 * renders everything). ms, or -1 when the client cannot be told the
 * setting the fault depends on; then `note` names it. */
detour_ms detour_bench_budget(const detour_bench_fault *f,
                              const detour_bench_settings *s, const char *keys,
                              char *note, size_t notelen);

/* What happened to one message. */
typedef enum {
  DETOUR_BENCH_PRIMARY = 0, /* accepted by the primary */
  DETOUR_BENCH_BACKUP,      /* accepted by the backup */
  DETOUR_BENCH_BOUNCED,     /* the client gave it up (no server took it) */
  DETOUR_BENCH_DEFERRED,    /* still held by the client at its deadline */
  DETOUR_BENCH_NOT_SENT,    /* never submitted (run stopped early) */
  DETOUR_BENCH_OUTCOMES
} detour_bench_outcome;

const char *detour_bench_outcome_name(detour_bench_outcome o);

/* The figures of one run. Latencies in ms. */
typedef struct {
  size_t n;                            /* messages asked for */
  size_t count[DETOUR_BENCH_OUTCOMES]; /* per outcome */
  size_t ok;                           /* accepted by the expected server */
  /* the latencies of the messages the expected server took, in
   * submission order (malloc'd; detour_bench_result_free) */
  double *samples;
  size_t nsamples;
  double p50, p90, p99, max, mean;
  double per_sec; /* accepted messages / (last acceptance - first
                     submission) */
  double wall_s;  /* the whole run */
  bool timed_out;
  bool stopped_early;     /* the first messages were not delivered: skipped */
  detour_ms msg_deadline; /* an external client's per-message bound */
} detour_bench_result;

void detour_bench_result_free(detour_bench_result *r);

/* Nearest-rank percentile of sorted[0..n-1] (q in 0..1). */
double detour_bench_percentile(const double *sorted, size_t n, double q);

/* A simulated network for the run: the servers' links (and the
 * client's). NULL in detour_bench_spec: loopback. */
typedef struct {
  char name[64];
  detour_ms client_delay, server_delay; /* round trip each link adds */
  detour_ms jitter;                     /* on the server links */
  double loss;                          /* per packet, on the client link */
  unsigned long long rate_bps;          /* server links; 0: unshaped */
} detour_bench_network;

/* A network profile: NAME (NAME.yaml in $DETOUR_NETWORKS, ./bench/networks
 * or the source tree's bench/networks) or a file's PATH (it has a '/' or
 * ends in .yaml). 0, or DETOUR_EPARSE / DETOUR_EIO with
 * "FILE:LINE:COL: ..." or "no network profile named ..." in err. */
int detour_bench_network_load(const char *name, detour_bench_network *out,
                              char *err, size_t errlen);
/* The profile names found, space-separated, into buf. */
void detour_bench_network_names(char *buf, size_t len);

typedef struct {
  const detour_bench_fault *fault;
  size_t messages;
  size_t concurrency;           /* engines in parallel (built-in only) */
  detour_ms timeout_ms;         /* the whole run, real time */
  const detour_adapter *client; /* NULL: the built-in engine */
  detour_bench_settings settings;
  const detour_bench_network *network; /* NULL: loopback */
  /* an external client: messages not delivered at once after this many
   * ms are judged (deferred or bounced) and the next one goes */
  detour_ms msg_deadline;
  /* stop after this many first messages all failed to arrive (0: never) */
  size_t give_up_after;
} detour_bench_spec;

/* Send spec->messages messages (each its own submission), one at a time
 * per worker, with the primary faulty as spec->fault says and a healthy
 * backup. Gives up after timeout_ms of real time (the figures then cover
 * what finished). Returns 0; 1 when the client cannot run here (not
 * installed, not root, no network simulation), with the reason in err; or
 * a negative detour_error with a reason in err. */
int detour_bench_run(const detour_bench_spec *spec, detour_bench_result *out,
                     char *err, size_t errlen);

/* Can a simulated network run here? 1, or 0 with the reason. */
int detour_bench_network_available(char *why, size_t len);

#endif /* DETOUR_BENCH_LATENCY_H */

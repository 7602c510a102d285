/*
 * latency.h - the failover-latency bench (`detour bench`): messages sent in
 * real time through the real engine and libuv driver to a faulty primary
 * and a healthy backup (libdetour-fake servers on loopback), timed from
 * submission to acceptance by the server that took them (the final "." as
 * the fake server recorded it, uv_hrtime ns). Optionally the same for
 * Postfix with relayhost / smtp_fallback_relay, driven through the
 * scenario runner's adapter.
 */
#ifndef DETOUR_BENCH_LATENCY_H
#define DETOUR_BENCH_LATENCY_H

#include <stdbool.h>
#include <stddef.h>

#include "detour/detour.h"

/* Bounds on every load loop: a run can never grow without limit. */
#define DETOUR_BENCH_MESSAGES_MAX 100000
#define DETOUR_BENCH_CONCURRENCY_MAX 64

/* The engine's tuning in the bench: short timeouts so that the bounded
 * faults (blackhole, silent, reset) cost a fraction of a second. */
#define DETOUR_BENCH_CONNECT_TIMEOUT 200  /* ms: blackhole */
#define DETOUR_BENCH_GREETING_TIMEOUT 200 /* ms: silent */
#define DETOUR_BENCH_REPLY_TIMEOUT 5000   /* ms: every other reply */
#define DETOUR_BENCH_RETRY_INTERVAL 100   /* ms: TRANSIENT, same server */
#define DETOUR_BENCH_MAX_ATTEMPTS 2       /* per server per message */

/* One fault kind of the bench. */
typedef struct {
  const char *name;      /* as on the command line: "refuse", "none" */
  const char *fault;     /* catalogue entry for the primary; NULL: healthy */
  int stage;             /* detour_fake_stage, or -1: the entry's default */
  detour_class expected; /* SPEC R3 class of the primary's failure */
  detour_ms budget;      /* latency the policy itself adds (timeouts and
                            retry intervals), 0 for an immediate switch */
  const char *budget_why;
} detour_bench_fault;

size_t detour_bench_fault_count(void);
/* Entry i, NULL past the end; entry 0 is the baseline "none". Static. */
const detour_bench_fault *detour_bench_fault_at(size_t i);
const detour_bench_fault *detour_bench_fault_find(const char *name);

/* The figures of one run. Latencies in ms. */
typedef struct {
  size_t n;     /* messages submitted */
  size_t ok;    /* accepted by the expected server */
  size_t wrong; /* accepted by the other server */
  size_t lost;  /* not accepted anywhere (deferred, timed out) */
  double p50, p90, p99, max, mean;
  double per_sec; /* accepted messages / (last acceptance - first
                     submission) */
  double wall_s;  /* the whole run */
  bool timed_out;
} detour_bench_result;

/* Send `messages` messages (each its own submission) through `concurrency`
 * engines at once, each engine one message at a time, with the primary
 * faulty as `f` says and a healthy backup. Gives up after timeout_ms of
 * real time (the figures then cover what finished). Returns 0, or a
 * negative detour_error with a reason in err. */
int detour_bench_run(const detour_bench_fault *f, size_t messages,
                     size_t concurrency, detour_ms timeout_ms,
                     detour_bench_result *out, char *err, size_t errlen);

/* Postfix, side by side, through the scenario runner's Postfix adapter
 * (detour/adapter.h): a private instance (its own temp dir, smtpd on
 * 127.0.0.1 on an ephemeral port, never port 25) with relayhost = the
 * primary and smtp_fallback_relay = the backup; messages submitted over
 * SMTP one at a time, each after the previous one arrived, timed from
 * submission to acceptance by the fake server. `fault` is "refuse" or
 * "none" (then the primary takes them). Returns 0; 1 when Postfix cannot
 * run here (not installed, not root), with the reason in err; a negative
 * detour_error on failure. The instance is stopped and its directory
 * removed in every case (DETOUR_KEEP_CLIENT=1 keeps the directory). */
int detour_bench_postfix(const char *fault, size_t messages,
                         detour_ms timeout_ms, detour_bench_result *out,
                         char *err, size_t errlen);

#endif /* DETOUR_BENCH_LATENCY_H */

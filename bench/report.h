/*
 * report.h - what one `detour bench` run measured, written as JSON (raw
 * samples, machine, versions, configuration) and as one self-contained
 * HTML page (inline SVG, no external file); and the regression check of
 * `--compare`: a run against a baseline JSON file, per (client, fault),
 * with a Mann-Whitney U test on the raw samples plus a threshold on the
 * p50 and p99.
 */
#ifndef DETOUR_BENCH_REPORT_H
#define DETOUR_BENCH_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "latency.h"

/* One (client, fault): measured, or skipped with the reason. */
typedef struct {
  char client[64];   /* "builtin", "postfix", ... */
  char version[128]; /* the client's version line, "" unknown */
  const detour_bench_fault *fault;
  bool measured;
  char why[256];    /* not measured: why (not installed, not root, ...) */
  detour_ms budget; /* -1: depends on a setting the client cannot take */
  char budget_note[128];
  detour_bench_result res;
} detour_bench_cell;

typedef struct {
  detour_bench_cell *cells; /* clients x faults, client-major */
  size_t ncells, nclients, nfaults;
  size_t messages;
  detour_bench_settings settings;
  const char *network;    /* profile name, NULL: loopback */
  char network_note[256]; /* why the network was not used, "" */
  const char *command;    /* the command line */
  char started[40];       /* ISO 8601 */
  double wall_s;
  /* throughput of the built-in engine, primary up / primary refusing */
  bool ran_tp;
  size_t tp_concurrency, tp_messages;
  detour_bench_result tp_up, tp_down;
} detour_bench_report;

/* The cell of a client and fault, or NULL. */
const detour_bench_cell *detour_bench_cell_of(const detour_bench_report *r,
                                              size_t client, size_t fault);

/* 0 or -1 (errno set). */
int detour_bench_write_json(const detour_bench_report *r, FILE *f);
int detour_bench_write_html(const detour_bench_report *r, FILE *f);

/* One (client, fault) of a baseline file. */
typedef struct {
  char client[64], fault[64];
  double *samples;
  size_t n;
} detour_bench_baseline_cell;

typedef struct {
  detour_bench_baseline_cell *cells;
  size_t ncells;
} detour_bench_baseline;

/* Read the cells of a file written by detour_bench_write_json. 0, or a
 * negative detour_error with "FILE:LINE:COL: ..." in err. */
int detour_bench_baseline_load(const char *path, detour_bench_baseline *b,
                               char *err, size_t errlen);
void detour_bench_baseline_free(detour_bench_baseline *b);

/* Mann-Whitney U, one-sided: the probability of seeing samples of b at
 * least this much larger than those of a if both came from the same
 * distribution (normal approximation with the tie correction). 1 when
 * either is empty. */
double detour_bench_mann_whitney_p(const double *a, size_t na, const double *b,
                                   size_t nb);

/* A pair that got slower. */
typedef struct {
  char client[64], fault[64];
  double base_p50, cur_p50, base_p99, cur_p99, p;
  bool p50_worse, p99_worse;
} detour_bench_regression;

/* Compare every cell of cur with the baseline's cell of the same client
 * and fault: a regression when the U test says cur's samples are larger
 * (p < alpha) and its p50 or p99 is more than threshold (0.2 = 20%) and
 * more than floor_ms above the baseline's (the floor keeps a shared
 * machine's jitter on sub-millisecond figures from failing CI). The p99
 * is judged only with 100 samples or more on both sides: below that it
 * is the maximum, a single sample. Writes at
 * most max into out; returns how many were found. *compared gets the
 * number of pairs compared. */
size_t detour_bench_compare(const detour_bench_baseline *cur,
                            const detour_bench_baseline *b, double threshold,
                            double floor_ms, double alpha,
                            detour_bench_regression *out, size_t max,
                            size_t *compared);

/* A run's measured cells as a baseline (samples borrowed from r: free
 * with free(b->cells) only). 0 or DETOUR_ENOMEM. */
int detour_bench_baseline_of(const detour_bench_report *r,
                             detour_bench_baseline *b);

#endif /* DETOUR_BENCH_REPORT_H */

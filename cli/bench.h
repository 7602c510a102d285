/*
 * bench.h - `detour bench`: the failover-latency bench (bench/latency.c)
 * in real time, per (client, fault): the built-in engine and any client
 * with a manifest, on loopback or over a simulated network; the
 * throughput when the primary is down; JSON, HTML and --compare
 * (bench/report.c).
 */
#ifndef DETOUR_CLI_BENCH_H
#define DETOUR_CLI_BENCH_H

/* argv[0] is "bench". Prints the tables on stdout, the plan and the
 * progress on stderr. Returns the process exit code: 0 done, 1 --compare
 * found a regression, 70 a run of the built-in engine lost or misrouted a
 * message or timed out, 64 usage, 66 a profile or baseline file cannot be
 * read, 73 an output file cannot be written. */
int detour_cli_bench(int argc, char **argv);

/* The `detour bench --help` text, on stdout. */
void detour_cli_bench_usage(void);

#endif /* DETOUR_CLI_BENCH_H */

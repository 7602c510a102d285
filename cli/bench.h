/*
 * bench.h - `detour bench`: the failover-latency bench (bench/latency.c)
 * in real time on loopback, per fault kind, with the throughput when the
 * primary is down and, when Postfix is installed, Postfix side by side.
 */
#ifndef DETOUR_CLI_BENCH_H
#define DETOUR_CLI_BENCH_H

/* argv[0] is "bench". Prints the tables on stdout. Returns the process
 * exit code (sysexits.h): 0 every message went where it should, 70 some
 * message was lost, went to the wrong server or a run timed out, 64
 * usage, 73 the JSON file cannot be written, 69 --postfix yes and Postfix
 * cannot run here. */
int detour_cli_bench(int argc, char **argv);

/* The `detour bench --help` text, on stdout. */
void detour_cli_bench_usage(void);

#endif /* DETOUR_CLI_BENCH_H */

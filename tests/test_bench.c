/*
 * test_bench.c - smoke test of `detour bench`: the built binary
 * (DETOUR_BIN) runs 5 messages on two immediate faults (plus the
 * baseline) in real time, and its tables must be there with sane numbers:
 * N = 5 on every row, 0 < p50 <= p90 <= p99 <= max, the server that took
 * the messages, the ratio to the fastest. Plus the JSON file with the raw
 * samples, a client that cannot run (skipped with the reason) and the
 * usage errors. Takes well under a second; every run is
 * bounded by the bench's own --timeout and by popen's child exiting.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define OUT_MAX 16384

/* Runs `detour bench ARGS`, stdout into out; returns the exit code. */
static int bench(const char *args, char *out, size_t len) {
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "%s bench %s 2>/dev/null", DETOUR_BIN, args);
  FILE *p = popen(cmd, "r");
  cr_assert_not_null(p, "popen");
  size_t n = fread(out, 1, len - 1, p);
  out[n] = '\0';
  int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The built-in engine's row under the table of `fault`; checks its
 * figures and what it did. */
static void check_row(const char *out, const char *fault, const char *cls,
                      const char *server) {
  char key[64];
  snprintf(key, sizeof key, "\n%s: ", fault);
  const char *table = strstr(out, key);
  cr_assert_not_null(table, "no table for %s in:\n%s", fault, out);
  const char *head = strchr(table + 1, '\n');
  cr_assert_not_null(head);
  cr_expect_not_null(strstr(table, cls), "%s: class %s", fault, cls);
  const char *row = strstr(head, "\n  builtin ");
  cr_assert_not_null(row, "no builtin row for %s:\n%s", fault, out);
  unsigned long n;
  double p50, p90, p99, max, ratio;
  long long budget;
  char did[32];
  unsigned long count;
  int got = sscanf(row, " builtin %lu %lf %lf %lf %lf %lf %lld %31s %lu", &n,
                   &p50, &p90, &p99, &max, &ratio, &budget, did, &count);
  cr_assert_eq(got, 9, "row for %s does not parse:\n%s", fault, out);
  cr_expect_eq(budget, 0, "%s: an immediate fault has no budget", fault);
  cr_expect_eq(n, 5, "%s: N = %lu", fault, n);
  cr_expect_str_eq(did, server, "%s: taken by %s", fault, did);
  cr_expect_eq(count, 5, "%s: %lu to the %s", fault, count, server);
  cr_expect_gt(p50, 0.0, "%s: p50 %f", fault, p50);
  cr_expect_leq(p50, p90, "%s: p50 %f > p90 %f", fault, p50, p90);
  cr_expect_leq(p90, p99, "%s: p90 %f > p99 %f", fault, p90, p99);
  cr_expect_leq(p99, max, "%s: p99 %f > max %f", fault, p99, max);
  /* Loopback, immediate switch: far below the bench's 5 s reply timeout. */
  cr_expect_lt(max, 2000.0, "%s: max %f ms", fault, max);
  cr_expect_geq(ratio, 1.0, "%s: ratio to the fastest %f", fault, ratio);
}

Test(bench, two_faults_table) {
  char json[] = "/tmp/detour-test-bench-XXXXXX";
  int fd = mkstemp(json);
  cr_assert_geq(fd, 0);
  close(fd);
  char args[256], out[OUT_MAX];
  snprintf(args, sizeof args,
           "--messages 5 --faults refuse,greeting_421,eod_552 "
           "--throughput-concurrency 0 --timeout 20 --json %s",
           json);
  int rc = bench(args, out, sizeof out);
  cr_assert_eq(rc, 0, "exit %d:\n%s", rc, out);
  check_row(out, "none", "NONE", "primary");
  check_row(out, "refuse", "CONNECT", "backup");
  check_row(out, "greeting_421", "SWITCH", "backup");
  /* the primary refuses the message after its final dot: it is not taken
   * there, though the server saw all of it */
  check_row(out, "eod_552", "SWITCH", "backup");

  FILE *f = fopen(json, "r");
  cr_assert_not_null(f);
  char buf[OUT_MAX];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  buf[n] = '\0';
  fclose(f);
  unlink(json);
  cr_expect_not_null(strstr(buf, "\"fault\": \"greeting_421\""), "%s", buf);
  cr_expect_not_null(strstr(buf, "\"ok\": 5,"), "%s", buf);
  /* the raw samples, not only the percentiles */
  const char *s = strstr(buf, "\"samples_ms\": [");
  cr_assert_not_null(s, "%s", buf);
  int commas = 0;
  for (s += 15; *s && *s != ']'; s++)
    commas += *s == ',';
  cr_expect_eq(commas, 4, "5 samples");
}

/* A client that cannot run is said so in its row, and the bench goes on. */
Test(bench, unknown_client_is_skipped_with_reason) {
  char out[OUT_MAX];
  int rc = bench("--messages 2 --faults refuse --client builtin,nosuchclient "
                 "--throughput-concurrency 0",
                 out, sizeof out);
  cr_assert_eq(rc, 0, "exit %d:\n%s", rc, out);
  cr_expect_not_null(strstr(out, "nosuchclient not measured: unknown client"),
                     "%s", out);
}

Test(bench, usage_errors) {
  char out[OUT_MAX];
  cr_expect_eq(bench("--messages 0", out, sizeof out), 64);
  cr_expect_eq(bench("--messages 100001", out, sizeof out), 64);
  cr_expect_eq(bench("--faults nosuchfault", out, sizeof out), 64);
  cr_expect_eq(bench("--concurrency 65", out, sizeof out), 64);
  cr_expect_eq(bench("--throughput-concurrency 257", out, sizeof out), 64);
  cr_expect_eq(bench("--threshold x", out, sizeof out), 64);
  cr_expect_eq(bench("--results a.json", out, sizeof out), 64);
  cr_expect_eq(bench("--network /nonexistent.yaml", out, sizeof out), 66);
  cr_expect_eq(bench("--help", out, sizeof out), 0);
  cr_expect_not_null(strstr(out, "--messages N"));
}

/* A network profile with an error is refused with FILE:LINE:COL, before
 * anything runs; the shipped profiles load. */
Test(bench, network_profile_errors_name_the_place) {
  char path[] = "/tmp/detour-test-net-XXXXXX";
  int fd = mkstemp(path);
  cr_assert_geq(fd, 0);
  const char bad[] = "name: x\nservers: { delay: 20 parsecs }\n";
  cr_assert_eq(write(fd, bad, sizeof bad - 1), (ssize_t)(sizeof bad - 1));
  close(fd);
  char cmd[512], out[OUT_MAX];
  snprintf(cmd, sizeof cmd, "%s bench --network %s --messages 1 2>&1",
           DETOUR_BIN, path);
  FILE *p = popen(cmd, "r");
  cr_assert_not_null(p);
  size_t n = fread(out, 1, sizeof out - 1, p);
  out[n] = '\0';
  int st = pclose(p);
  unlink(path);
  cr_expect_eq(WEXITSTATUS(st), 66, "%s", out);
  char where[128];
  snprintf(where, sizeof where, "%s:2:19: key 'servers.delay'", path);
  cr_expect_not_null(strstr(out, where), "%s", out);
}

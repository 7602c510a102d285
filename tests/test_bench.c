/*
 * test_bench.c - smoke test of `detour bench`: the built binary
 * (DETOUR_BIN) runs 5 messages on two immediate faults (plus the
 * baseline) in real time, and its table must be there with sane numbers:
 * N = 5 on every row, 0 < p50 <= p90 <= p99 <= max, a rate. Plus the JSON
 * file and the usage errors. Takes well under a second; every run is
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

/* The table row of `fault`; checks its figures. */
static void check_row(const char *out, const char *fault, const char *cls) {
  char key[64];
  snprintf(key, sizeof key, "\n%s ", fault);
  const char *row = strstr(out, key);
  cr_assert_not_null(row, "no row for %s in:\n%s", fault, out);
  char name[32], klass[32];
  long long budget;
  unsigned long n;
  double p50, p90, p99, max, rate;
  int got = sscanf(row + 1, "%31s %31s %lld %lu %lf %lf %lf %lf %lf", name,
                   klass, &budget, &n, &p50, &p90, &p99, &max, &rate);
  cr_assert_eq(got, 9, "row for %s does not parse:\n%s", fault, out);
  cr_expect_str_eq(klass, cls);
  cr_expect_eq(budget, 0, "%s: an immediate fault has no budget", fault);
  cr_expect_eq(n, 5, "%s: N = %lu", fault, n);
  cr_expect_gt(p50, 0.0, "%s: p50 %f", fault, p50);
  cr_expect_leq(p50, p90, "%s: p50 %f > p90 %f", fault, p50, p90);
  cr_expect_leq(p90, p99, "%s: p90 %f > p99 %f", fault, p90, p99);
  cr_expect_leq(p99, max, "%s: p99 %f > max %f", fault, p99, max);
  /* Loopback, immediate switch: far below the bench's 5 s reply timeout. */
  cr_expect_lt(max, 2000.0, "%s: max %f ms", fault, max);
  cr_expect_gt(rate, 0.0, "%s: no rate", fault);
}

Test(bench, two_faults_table) {
  char json[] = "/tmp/detour-test-bench-XXXXXX";
  int fd = mkstemp(json);
  cr_assert_geq(fd, 0);
  close(fd);
  char args[256], out[OUT_MAX];
  snprintf(args, sizeof args,
           "--messages 5 --faults refuse,greeting_421 "
           "--throughput-concurrency 0 --postfix no --timeout 20 --json %s",
           json);
  int rc = bench(args, out, sizeof out);
  cr_assert_eq(rc, 0, "exit %d:\n%s", rc, out);
  cr_assert_not_null(strstr(out, "\nfault "), "no table header:\n%s", out);
  check_row(out, "none", "NONE");
  check_row(out, "refuse", "CONNECT");
  check_row(out, "greeting_421", "SWITCH");
  cr_expect_null(strstr(out, "!!"), "a message went astray:\n%s", out);

  FILE *f = fopen(json, "r");
  cr_assert_not_null(f);
  char buf[OUT_MAX];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  buf[n] = '\0';
  fclose(f);
  unlink(json);
  cr_expect_not_null(strstr(buf, "\"fault\":\"greeting_421\""), "%s", buf);
  cr_expect_not_null(strstr(buf, "\"ok\":5,"), "%s", buf);
}

Test(bench, usage_errors) {
  char out[OUT_MAX];
  cr_expect_eq(bench("--messages 0", out, sizeof out), 64);
  cr_expect_eq(bench("--messages 100001", out, sizeof out), 64);
  cr_expect_eq(bench("--faults nosuchfault", out, sizeof out), 64);
  cr_expect_eq(bench("--concurrency 65", out, sizeof out), 64);
  cr_expect_eq(bench("--help", out, sizeof out), 0);
  cr_expect_not_null(strstr(out, "--messages N"));
}

/*
 * test_scenario_netsim.c - the scenario runner's simulated network
 * (`network:`, scenarios/src/net.c) and the capture hook:
 *   - the `network:` section loads in each documented form, and every
 *     mistake is an error naming file:line:col and the key (no network);
 *   - without netsim (here: $DETOUR_NETSIM_BIN names no program) a network
 *     scenario is a SKIP with the reason, and `detour run` exits 77;
 *   - an interrupted process runs nothing more;
 *   - the capture hook: loopback scenarios get ("lo", no namespace); a
 *     network scenario gets the client's namespace and tap, and the hook
 *     runs inside that namespace (where the tap exists), then on_finished
 *     gets the token back. Skips (cr_skip) when netsim cannot run here.
 */
#include <criterion/criterion.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "detour/scenario.h"
#include "netsim.h"

#define NET_OK                                                                 \
  "name: net\n"                                                                \
  "rules: [R3]\n"                                                              \
  "limit: 20s\n"                                                               \
  "servers:\n"                                                                 \
  "  - { name: a }\n"                                                          \
  "  - { name: b }\n"                                                          \
  "network:\n"                                                                 \
  "  links:\n"                                                                 \
  "    client: { delay: 0ms }\n"                                               \
  "    a: { delay: 20ms, jitter: 2ms, loss: 1%, rate: 10Mbps }\n"              \
  "    b: { delay: 20ms, loss: 0.01 }\n"                                       \
  "  events:\n"                                                                \
  "    - \"5s: a down\"\n"                                                     \
  "    - 6s: a up\n"                                                           \
  "    - { at: 7s, do: link b delay 30ms }\n"                                  \
  "    - { on: \"a:data\", after: 300ms, do: a down }\n"                       \
  "    - { on: \"b:connect#2\", do: client loss 0 }\n"                         \
  "messages:\n"                                                                \
  "  - { from: s@x.test, to: r@y.test }\n"                                     \
  "expect:\n"                                                                  \
  "  recipients: { r@y.test: { outcome: delivered, server: a } }\n"

static detour_scenario *load(const char *yaml, char *err, size_t len,
                             const detour_scenario_options *o) {
  detour_scenario *s = NULL;
  int rc = detour_scenario_load_string(yaml, strlen(yaml), "t.yaml", o, &s, err,
                                       len);
  cr_assert((rc == 0) == (s != NULL));
  return s;
}

Test(scenario_netsim, network_section_loads) {
  char err[512] = "";
  detour_scenario *s = load(NET_OK, err, sizeof err, NULL);
  cr_assert_not_null(s, "%s", err);
  detour_scenario_free(s);
}

/* Replace the first `from` in NET_OK by `to`; the load must fail with
 * `want` in the message. */
static void expect_error(const char *from, const char *to, const char *want) {
  char yaml[4096], err[512] = "";
  const char *at = strstr(NET_OK, from);
  cr_assert_not_null(at, "%s not in NET_OK", from);
  snprintf(yaml, sizeof yaml, "%.*s%s%s", (int)(at - NET_OK), NET_OK, to,
           at + strlen(from));
  detour_scenario *s = load(yaml, err, sizeof err, NULL);
  cr_assert_null(s, "loaded although %s", to);
  cr_assert(strstr(err, want) != NULL, "error '%s' lacks '%s'", err, want);
  cr_assert(strncmp(err, "t.yaml:", 7) == 0, "no file:line:col in '%s'", err);
}

Test(scenario_netsim, mistakes_are_named) {
  expect_error("    b: { delay: 20ms, loss", "    c: { delay: 20ms, loss",
               "no fake server is named 'c'");
  expect_error("jitter: 2ms", "jiter: 2ms", "unknown key");
  expect_error("loss: 1%", "loss: 120%", "expected a duration");
  expect_error("rate: 10Mbps", "rate: fast", "expected a duration");
  expect_error("\"5s: a down\"", "\"5s: z down\"", "no link named 'z'");
  expect_error("\"5s: a down\"", "\"5s: a sideways\"", "expected 'LINK down'");
  expect_error("\"5s: a down\"", "\"soon: a down\"", "got time 'soon'");
  expect_error("do: link b delay 30ms", "do: link b delay far",
               "expected 'LINK down'");
  expect_error("\"a:data\"", "\"a:body\"", "expected 'SERVER:WHAT'");
  expect_error("\"a:data\"", "\"q:data\"", "no fake server is named 'q'");
  expect_error("\"b:connect#2\"", "\"b:connect#0\"", "SERVER:WHAT#N");
  expect_error(
      "{ at: 7s, do:", "{ at: 7s, on: \"a:data\", do:", "expected { at: TIME");
  expect_error("limit: 20s\n", "limit: 20s\nrealtime: false\n",
               "always runs in real time");
  expect_error("  - { name: b }\n",
               "  - { name: b }\nclient:\n  servers: [a, \"mx.y.test:25\"]\n",
               "every server must be a fake server");
}

/* netsim is unavailable when $DETOUR_NETSIM_BIN names no program. */
static void no_netsim(void) {
  setenv("DETOUR_NETSIM_BIN", "/nonexistent/detour-netsim", 1);
}

Test(scenario_netsim, unavailable_is_a_skip_with_the_reason) {
  no_netsim();
  char err[512] = "";
  detour_scenario *s = load(NET_OK, err, sizeof err, NULL);
  cr_assert_not_null(s, "%s", err);
  detour_scenario_result r;
  cr_assert_eq(detour_scenario_run(s, &r), 0);
  cr_assert_eq(r.verdict, DETOUR_VERDICT_SKIP);
  cr_assert_eq(r.nfailures, 1);
  cr_assert(strstr(r.failures[0], "skipped: needs the simulated network") !=
                NULL,
            "%s", r.failures[0]);
  cr_assert(r.network);
  detour_scenario_result_free(&r);
  detour_scenario_free(s);
}

/* `detour run` on nothing but skipped scenarios: 77, never 0. */
Test(scenario_netsim, cli_exits_77_when_everything_skipped) {
  char path[] = "/tmp/detour-netsim-XXXXXX.yaml", cmd[512];
  int fd = mkstemps(path, 5);
  cr_assert(fd >= 0);
  FILE *f = fdopen(fd, "w");
  fputs(NET_OK, f);
  fclose(f);
  snprintf(cmd, sizeof cmd,
           "DETOUR_NETSIM_BIN=/nonexistent/x %s run --no-progress %s "
           ">/dev/null 2>&1",
           DETOUR_BIN, path);
  int st = system(cmd);
  unlink(path);
  cr_assert(WIFEXITED(st));
  cr_assert_eq(WEXITSTATUS(st), 77);
}

#define LOOPBACK                                                               \
  "name: lo\n"                                                                 \
  "rules: [R1]\n"                                                              \
  "servers: [ { name: a }, { name: b } ]\n"                                    \
  "messages: [ { from: s@x.test, to: r@y.test } ]\n"                           \
  "expect: { recipients: { r@y.test: { outcome: delivered, server: a } } }\n"

Test(scenario_netsim, interrupted_runs_nothing_more) {
  char err[512] = "";
  detour_scenario *s = load(LOOPBACK, err, sizeof err, NULL);
  cr_assert_not_null(s, "%s", err);
  detour_scenario_interrupt(); /* this test's own process (Criterion forks) */
  cr_assert(detour_scenario_interrupted());
  detour_scenario_result r;
  cr_assert_eq(detour_scenario_run(s, &r), 0);
  cr_assert_eq(r.verdict, DETOUR_VERDICT_SKIP);
  detour_scenario_result_free(&r);
  detour_scenario_free(s);
}

/* ------------------------------------------------------------------------ */
/* The capture hook                                                          */

typedef struct {
  int started, finished;
  char scenario[64], netns[64], device[64];
  bool had_netns;
  size_t nports;
  uint16_t ports[4];
  bool device_here; /* the device exists in the calling thread's netns */
  bool same_netns;  /* the thread is inside netns */
  void *token_back;
} hook_log;

static int token;

/* Whether the calling thread is in the named namespace: same inode. */
static bool thread_in(const char *netns) {
  char path[256];
  struct stat a, b;
  snprintf(path, sizeof path, "/var/run/netns/%s", netns);
  return stat(path, &a) == 0 && stat("/proc/thread-self/ns/net", &b) == 0 &&
         a.st_ino == b.st_ino && a.st_dev == b.st_dev;
}

static void *on_started(void *arg, const char *scenario, const uint16_t *ports,
                        size_t nports, const char *netns, const char *device) {
  hook_log *h = arg;
  h->started++;
  snprintf(h->scenario, sizeof h->scenario, "%s", scenario);
  h->had_netns = netns != NULL;
  snprintf(h->netns, sizeof h->netns, "%s", netns ? netns : "");
  snprintf(h->device, sizeof h->device, "%s", device ? device : "");
  h->nports = nports;
  for (size_t i = 0; i < nports && i < 4; i++)
    h->ports[i] = ports[i];
  h->device_here = device && if_nametoindex(device) > 0;
  h->same_netns = netns && thread_in(netns);
  return &token;
}

static void on_finished(void *arg, const char *scenario, void *tok) {
  hook_log *h = arg;
  h->finished++;
  h->token_back = tok;
  cr_assert_str_eq(scenario, h->scenario);
}

static void run_with_hooks(const char *yaml, hook_log *h, detour_verdict want) {
  detour_scenario_options o = {.hooks = {.on_started = on_started,
                                         .on_finished = on_finished,
                                         .arg = h}};
  char err[512] = "";
  detour_scenario *s = load(yaml, err, sizeof err, &o);
  cr_assert_not_null(s, "%s", err);
  detour_scenario_result r;
  cr_assert_eq(detour_scenario_run(s, &r), 0);
  cr_assert_eq(r.verdict, want, "verdict %s: %s",
               detour_verdict_name(r.verdict),
               r.nfailures ? r.failures[0] : "");
  detour_scenario_result_free(&r);
  detour_scenario_free(s);
}

Test(scenario_netsim, hook_on_loopback) {
  hook_log h = {0};
  run_with_hooks(LOOPBACK, &h, DETOUR_VERDICT_PASS);
  cr_assert_eq(h.started, 1);
  cr_assert_eq(h.finished, 1);
  cr_assert_str_eq(h.scenario, "lo");
  cr_assert(!h.had_netns);
  cr_assert_str_eq(h.device, "lo");
  cr_assert_eq(h.nports, 2);
  cr_assert(h.ports[0] > 0 && h.ports[1] > 0);
  cr_assert_eq(h.token_back, &token);
}

#define NET_RUN                                                                \
  "name: net-hook\n"                                                           \
  "rules: [R1]\n"                                                              \
  "limit: 20s\n"                                                               \
  "servers: [ { name: a }, { name: b } ]\n"                                    \
  "network: { links: { a: { delay: 20ms }, b: { delay: 20ms } } }\n"           \
  "messages: [ { from: s@x.test, to: r@y.test } ]\n"                           \
  "expect:\n"                                                                  \
  "  recipients: { r@y.test: { outcome: delivered, server: a } }\n"            \
  "  latency: { min: 140ms, max: 140ms }\n"                                    \
  "  tolerance: 50ms\n"

Test(scenario_netsim, hook_inside_the_client_namespace) {
  char why[256];
  if (!detour_netsim_available(why, sizeof why))
    cr_skip_test("netsim not available: %s", why);
  hook_log h = {0};
  run_with_hooks(NET_RUN, &h, DETOUR_VERDICT_PASS);
  cr_assert_eq(h.started, 1);
  cr_assert_eq(h.finished, 1);
  cr_assert(h.had_netns);
  cr_assert(strncmp(h.netns, "dt-", 3) == 0, "%s", h.netns);
  cr_assert(strlen(h.netns) > 2 && !strcmp(h.netns + strlen(h.netns) - 2, "-c"),
            "%s", h.netns);
  cr_assert(h.device[0] == 't' &&
                !strcmp(h.device + strlen(h.device) - 2, "-c"),
            "%s", h.device);
  cr_assert(h.same_netns, "the hook did not run inside %s", h.netns);
  cr_assert(h.device_here, "no device %s where the hook ran", h.device);
  cr_assert_eq(h.nports, 2);
  cr_assert_eq(h.ports[0], 25);
  cr_assert_eq(h.token_back, &token);
  char path[256];
  struct stat st;
  snprintf(path, sizeof path, "/var/run/netns/%s", h.netns);
  cr_assert_neq(stat(path, &st), 0, "%s is still there", path);
}

/*
 * test_manifest.c - client manifests (clients/README.md) through the
 * public adapter API: a good manifest gives an adapter with its keys,
 * placement and version; every error names file:line:col; a scenario that
 * sets a key the client cannot render is a SKIP with the reason; a run
 * through a manifest is judged by what the fake servers saw (a client that
 * swallows the message fails) and leaves no folder behind.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "detour/adapter.h"
#include "detour/scenario.h"

static char tmp[] = "/tmp/test-manifest-XXXXXX";

static void setup(void) {
  cr_assert_not_null(mkdtemp(tmp));
  setenv("TMPDIR", tmp, 1);
}

static size_t entries(const char *dir) {
  DIR *d = opendir(dir);
  size_t n = 0;
  struct dirent *e;
  while (d && (e = readdir(d)) != NULL)
    n += e->d_name[0] != '.';
  if (d)
    closedir(d);
  return n;
}

static void teardown_dir(void) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
  cr_assert_eq(system(cmd), 0);
}

TestSuite(manifest, .init = setup, .fini = teardown_dir);

/* A manifest file under tmp named name, with text; returns its path. */
static const char *write_manifest(const char *name, const char *text) {
  static char path[256];
  snprintf(path, sizeof path, "%s/%s.yaml", tmp, name);
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f);
  fputs(text, f);
  fclose(f);
  return path;
}

static void want_error(const char *name, const char *text, const char *where,
                       const char *what) {
  char err[1024] = "";
  const char *path = write_manifest(name, text);
  const detour_adapter *a = detour_adapter_load(path, err, sizeof err);
  cr_assert_null(a, "%s loaded", name);
  char want[400];
  snprintf(want, sizeof want, "%s:%s", path, where);
  cr_assert(strstr(err, want) != NULL, "error '%s' lacks '%s'", err, want);
  cr_assert(strstr(err, what) != NULL, "error '%s' lacks '%s'", err, what);
}

Test(manifest, pyclient_example_loads) {
  char err[1024] = "";
  const detour_adapter *a = detour_adapter_load(
      DETOUR_SOURCE_DIR "/clients/examples/pyclient.yaml", err, sizeof err);
  cr_assert_not_null(a, "%s", err);
  cr_assert_str_eq(a->name, "pyclient");
  cr_assert_eq(a->placement, DETOUR_PLACE_PORTS);
  cr_assert(strstr(a->keys, "retry.max_attempts") != NULL);
  cr_assert_eq(
      detour_adapter_find(DETOUR_SOURCE_DIR "/clients/examples/pyclient.yaml"),
      a, "loaded once, then kept");
  char why[256] = "", version[128] = "";
  if (a->available(a, why, sizeof why)) {
    cr_assert(a->version(a, version, sizeof version));
    cr_assert_str_eq(version, "pyclient 1.0");
  }
}

Test(manifest, builtin_is_no_adapter_and_unknown_names_say_so) {
  char err[1024] = "x";
  cr_assert_null(detour_adapter_load("builtin", err, sizeof err));
  cr_assert_str_eq(err, "");
  cr_assert_null(detour_adapter_load("no-such-client", err, sizeof err));
  cr_assert(strstr(err, "unknown client 'no-such-client'") != NULL, "%s", err);
  cr_assert_null(detour_adapter_load("../etc", err, sizeof err));
  cr_assert(strstr(err, "../etc") != NULL, "%s", err);
}

Test(manifest, errors_name_file_line_col) {
  want_error("unknown-key", "name: x\nrenders: [servers]\nbogus: 1\n",
             "3:1: key 'bogus'", "unknown key");
  want_error("unknown-var",
             "name: x\nrenders: [servers]\nsubmit: \"cat {retry_sec}\"\n",
             "3:9: key 'submit'", "unknown variable {retry_sec}");
  want_error("bad-render", "name: x\nrenders: [servers, colour]\nsubmit: cat\n",
             "2:10: key 'renders'", "'colour' is no scenario client key");
  want_error("no-submit", "name: x\nrenders: [servers]\n", "", "'submit'");
  want_error("same-port-open",
             "name: x\nrenders: [servers]\nsubmit: cat\n"
             "servers: { placement: same_port }\n",
             "", "same_port needs isolation");
  want_error("two-submits",
             "name: x\nrenders: [servers]\n"
             "submit: { command: cat, smtp: \"127.0.0.1:25\" }\n",
             "3:9: key 'submit'", "exactly one of command or smtp");
  want_error("bad-time",
             "name: x\nrenders: [servers]\nsubmit: { command: cat, "
             "timeout: soon }\n",
             "3:34: key 'submit.timeout'", "expected a time");
  want_error("syntax", "name: [x\n", "2:1", "");
}

#define SCENARIO                                                               \
  "name: t\nrules: [R5]\nlimit: 10s\n"                                         \
  "servers: [ { name: a, fault: refuse }, { name: b } ]\n"                     \
  "client:\n  servers: [a, b]\n%s"                                             \
  "messages: [ { from: s@x.test, to: [r@y.test] } ]\n"                         \
  "expect:\n  recipients: { r@y.test: { server: b } }\n"

static void run_with(const char *client, const char *client_extra,
                     detour_scenario_result *r) {
  char yaml[1024];
  snprintf(yaml, sizeof yaml, SCENARIO, client_extra);
  detour_scenario_options o = {.client = client};
  detour_scenario *s = NULL;
  char err[1024] = "";
  cr_assert_eq(detour_scenario_load_string(yaml, strlen(yaml), "t.yaml", &o, &s,
                                           err, sizeof err),
               0, "%s", err);
  cr_assert_eq(detour_scenario_run(s, r), 0);
  detour_scenario_free(s);
}

Test(manifest, a_key_the_client_cannot_render_skips_with_the_reason) {
  const char *path = write_manifest(
      "cat", "name: cat\nrenders: [servers]\nsubmit: cat >/dev/null\n");
  detour_scenario_result r;
  run_with(path, "  timeouts: { greeting: 2s }\n", &r);
  cr_assert_eq(r.verdict, DETOUR_VERDICT_SKIP);
  cr_assert(strstr(r.failures[0], "'timeouts.greeting'") != NULL, "%s",
            r.failures[0]);
  detour_scenario_result_free(&r);
}

/* The client says it took the message (exit 0) but no server saw it: the
 * verdict is the servers', so FAIL; and the instance folder is gone. */
Test(manifest, judged_by_the_servers_and_nothing_left) {
  const char *path =
      write_manifest("swallow", "name: swallow\nrenders: [servers]\n"
                                "files: { conf: \"{servers}\\n\" }\n"
                                "start: { command: sleep 600 }\n"
                                "submit: cat >/dev/null\ndone: sync\n");
  detour_scenario_result r;
  run_with(path, "", &r);
  cr_assert_eq(r.verdict, DETOUR_VERDICT_FAIL);
  cr_assert_eq(entries(tmp), 1, "only the manifest is left in %s", tmp);
  detour_scenario_result_free(&r);
}

/* Prepare cfg's servers through the manifest at path: NULL (err filled)
 * or an instance, torn down at once. */
static bool prepares(const char *path, const char *host, bool private_network,
                     char *err, size_t errlen) {
  const detour_adapter *a = detour_adapter_load(path, err, errlen);
  cr_assert_not_null(a, "%s", err);
  detour_adapter_server sv = {.name = "primary", .port = 25, .priority = 1};
  snprintf(sv.host, sizeof sv.host, "%s", host);
  detour_adapter_config c = {.scenario = "hosts",
                             .servers = &sv,
                             .nservers = 1,
                             .private_network = private_network};
  void *inst = a->prepare(a, &c, err, errlen);
  if (inst)
    a->teardown(inst);
  return inst != NULL;
}

/* Traffic only to loopback, or to an address inside namespaces the caller
 * says it created (detour bench --network): an IP literal then, never a
 * name, and without the caller's word nothing but loopback. */
Test(manifest, servers_are_loopback_unless_the_caller_made_the_network) {
  const char *path = write_manifest(
      "hosts", "name: hosts\nrenders: [servers]\n"
               "files: { conf: \"{servers}\\n\" }\nsubmit: cat >/dev/null\n");
  char err[512] = "";
  cr_assert(prepares(path, "127.0.0.2", false, err, sizeof err), "%s", err);
  cr_assert_not(prepares(path, "10.77.0.2", false, err, sizeof err));
  cr_assert(strstr(err, "server 10.77.0.2 is not a loopback address") != NULL,
            "%s", err);
  cr_assert(prepares(path, "10.77.0.2", true, err, sizeof err), "%s", err);
  cr_assert(prepares(path, "fd00::2", true, err, sizeof err), "%s", err);
  cr_assert_not(prepares(path, "relay.example", true, err, sizeof err));
  cr_assert(strstr(err, "relay.example is not a loopback address nor an IP "
                        "address") != NULL,
            "%s", err);
  cr_assert_eq(entries(tmp), 1, "only the manifest is left in %s", tmp);
}

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
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

/* ------------------------------------------------------------------------ */
/* TLS: a tls: section's variables take their `on` text in a run that asks
 * for TLS (tls_ca_file), their `off` text otherwise; {ca_file} is a copy
 * every user can read. */

#define TLS_MANIFEST                                                           \
  "name: tlsy\nrenders: [servers, tls.required, tls.verify]\n"                 \
  "servers: { format: \"{host}:{port}{opts}\", separator: \",\" }\n"           \
  "files:\n  conf: \"{servers}|{mode}|{ca_file}|{tls_name}\\n\"\n"             \
  "tls:\n  opts: \" tls ca={ca_file}\"\n"                                      \
  "  mode: { on: \"secure {host0} {tls_name}\", off: none }\n"                 \
  "submit: cat >/dev/null\nlogs: \"{dir}/conf\"\n"

/* prepare with c, the rendered conf into buf, teardown; the instance's
 * folder into dir. */
static void render(const detour_adapter *a, const detour_adapter_config *c,
                   char *buf, size_t len, char *dir, size_t dirlen) {
  char err[512] = "";
  void *inst = a->prepare(a, c, err, sizeof err);
  cr_assert_not_null(inst, "%s", err);
  const char *conf = a->logs(inst);
  snprintf(dir, dirlen, "%.*s", (int)(strrchr(conf, '/') - conf), conf);
  FILE *f = fopen(conf, "r");
  cr_assert_not_null(f, "%s", conf);
  size_t n = fread(buf, 1, len - 1, f);
  buf[n] = '\0';
  fclose(f);
  if (c->tls_ca_file) { /* the copy: same bytes, readable by all */
    char ca[600], text[64] = "";
    struct stat st;
    snprintf(ca, sizeof ca, "%s/tls/ca.pem", dir);
    cr_assert_eq(stat(ca, &st), 0, "%s", ca);
    cr_assert_eq(st.st_mode & 0777, 0644);
    f = fopen(ca, "r");
    cr_assert_not_null(f);
    cr_assert_not_null(fgets(text, sizeof text, f));
    fclose(f);
    cr_assert_str_eq(text, "THE CA\n");
  }
  a->teardown(inst);
}

Test(manifest, tls_variables_render_on_in_a_tls_run_and_off_otherwise) {
  char err[1024] = "";
  const char *path = write_manifest("tlsy", TLS_MANIFEST);
  const detour_adapter *a = detour_adapter_load(path, err, sizeof err);
  cr_assert_not_null(a, "%s", err);
  cr_assert(strstr(a->keys, "tls.required") && strstr(a->keys, "tls.verify"));
  cr_assert_null(a->hostname, "ports placement: no one name");
  char ca_src[300];
  snprintf(ca_src, sizeof ca_src, "%s/ca-src.pem", tmp);
  FILE *f = fopen(ca_src, "w");
  cr_assert_not_null(f);
  fputs("THE CA\n", f);
  fclose(f);
  detour_adapter_server sv[2] = {{.host = "127.0.0.2", .port = 2525},
                                 {.host = "127.0.0.3", .port = 2626}};
  detour_adapter_config c = {.servers = sv, .nservers = 2};
  char out[1024], dir[512], want[2048];
  render(a, &c, out, sizeof out, dir, sizeof dir);
  cr_assert_str_eq(out, "127.0.0.2:2525,127.0.0.3:2626|none||\n");
  c.tls_ca_file = ca_src;
  c.tls_name = "mx.fake.test";
  render(a, &c, out, sizeof out, dir, sizeof dir);
  snprintf(want, sizeof want,
           "127.0.0.2:2525 tls ca=%s/tls/ca.pem,127.0.0.3:2626 tls "
           "ca=%s/tls/ca.pem|secure 127.0.0.2 mx.fake.test|%s/tls/ca.pem|"
           "mx.fake.test\n",
           dir, dir, dir);
  cr_assert_str_eq(out, want);
  cr_assert_eq(entries(tmp), 2, "only the manifest and the CA are left");
  /* a CA that cannot be read fails the prepare, naming the cause */
  c.tls_ca_file = "/nonexistent/ca.pem";
  void *inst = a->prepare(a, &c, err, sizeof err);
  cr_assert_null(inst);
  cr_assert(strstr(err, "cannot copy the TLS files") != NULL, "%s", err);
}

Test(manifest, tls_errors_name_file_line_col) {
  want_error("tls-unclaimed",
             "name: x\nrenders: [servers]\nsubmit: cat\n"
             "tls: { t: on }\n",
             "4:6: key 'tls'", "needs tls.required");
  want_error("tls-claimed-unrendered",
             "name: x\nrenders: [servers, tls.required]\nsubmit: cat\n",
             "2:10: key 'renders'", "no tls: section");
  want_error("tls-bad-key",
             "name: x\nrenders: [tls]\nsubmit: cat\n"
             "tls:\n  t: { on: a, of: b }\n",
             "5:15: key 'tls.t.of'", "expected on or off");
  want_error("tls-no-on",
             "name: x\nrenders: [tls]\nsubmit: cat\n"
             "tls:\n  t: { off: b }\n",
             "5:6: key 'tls.t'", "'on' is required");
  want_error("tls-runner-name",
             "name: x\nrenders: [tls]\nsubmit: cat\n"
             "tls:\n  servers: a\n",
             "5:3: key 'tls.servers'", "{servers} is a variable of the runner");
  want_error("tls-bad-name",
             "name: x\nrenders: [tls]\nsubmit: cat\n"
             "tls:\n  Bad-Name: a\n",
             "5:3: key 'tls.Bad-Name'", "lower-case letters");
  want_error("tls-names-list",
             "name: x\nrenders: [tls]\nsubmit: cat\n"
             "tls:\n  t: \"x {servers}\"\n",
             "5:6: key 'tls.t'", "cannot name {servers}");
  want_error("tls-names-tls",
             "name: x\nrenders: [tls]\nsubmit: cat\n"
             "tls:\n  t: a\n  u: \"{t}\"\n",
             "6:6: key 'tls.u'", "unknown variable {t}");
  want_error("tls-typo",
             "name: x\nrenders: [tls]\nsubmit: cat\n"
             "tls:\n  t: \"{ca_fiel}\"\n",
             "5:6: key 'tls.t'", "unknown variable {ca_fiel}");
  want_error("tls-bad-render", "name: x\nrenders: [tls.colour]\nsubmit: cat\n",
             "2:10: key 'renders'", "'tls.colour' is no scenario client key");
  /* a tls: variable named before its section is read is known */
  char err[1024] = "";
  const char *path = write_manifest(
      "tls-late", "name: x\nrenders: [tls]\nsubmit: \"cat {t}\"\n"
                  "tls: { t: \" -v\" }\n");
  cr_assert_not_null(detour_adapter_load(path, err, sizeof err), "%s", err);
}

/* Every shipped peer claims at least tls.required, with a tls: section
 * the loader accepted; same_port peers name their one host. */
Test(manifest, shipped_peers_render_tls) {
  static const char *const peers[] = {"postfix",   "exim", "nullmailer",
                                      "opensmtpd", "dma",  "msmtp"};
  for (size_t i = 0; i < sizeof peers / sizeof *peers; i++) {
    char path[512], err[1024] = "";
    snprintf(path, sizeof path, "%s/clients/%s.yaml", DETOUR_SOURCE_DIR,
             peers[i]);
    const detour_adapter *a = detour_adapter_load(path, err, sizeof err);
    cr_assert_not_null(a, "%s", err);
    cr_assert(strstr(a->keys, "tls.required") != NULL, "%s: %s", peers[i],
              a->keys);
    bool verifies = strstr(a->keys, "tls.verify") || strstr(a->keys, "tls.pin");
    cr_assert(verifies, "%s checks no certificate: %s", peers[i], a->keys);
    if (a->placement == DETOUR_PLACE_SAME_PORT)
      cr_assert(a->hostname && *a->hostname, "%s", peers[i]);
  }
}

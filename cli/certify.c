/*
 * certify.c - `detour certify`: the whole certification job in one
 * command. Runs the certification profile (scenarios/cert) against one
 * client and writes its certificate, or against a list of clients and
 * writes one scorecard (a client x scenario matrix grouped by SPEC rule).
 *
 *   detour certify --client NAME|PATH [--report-dir DIR] [--profile DIR]
 *   detour certify --clients builtin,postfix,... [--report-dir DIR]
 *
 * For each client, DIR (default certificate-NAME, or scorecard/ with
 * --clients, each client in DIR/NAME/) gets certificate.html and
 * certificate.json (the client, its version from the manifest's `version`
 * command, the profile's version and a SHA-256 of its scenario files, the
 * verdict per SPEC rule with what each server saw, pcap links, one overall
 * line), plus the run's own reports (report.html, report.json, junit.xml,
 * results.jsonl, rows.txt, pcap/ when capture is possible here).
 *
 * Exit status: 0 every judged scenario passed, 1 one failed, 77 nothing
 * could be judged here (every scenario skipped), 64 usage, 74 I/O.
 */
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "certify.h"
#include "detour/adapter.h"
#include "detour/reports.h"
#include "detour/scenario.h"
#include "opts.h"

#define MAX_CLIENTS 16
#define EXIT_ALL_SKIPPED 77

typedef struct {
  const char *clients[MAX_CLIENTS];
  size_t nclients;
  char clients_buf[1024];
  const char *report_dir, *profile, *filter;
  bool realtime, scorecard, device;
  detour_device_options dev;
} certify_opts;

static void usage(FILE *f) {
  fprintf(f,
          "Usage: detour certify --client NAME|PATH [OPTIONS]\n"
          "       detour certify --clients NAME,NAME,... [OPTIONS]\n"
          "\nRun the certification profile against a client and write its\n"
          "certificate (HTML and JSON): the verdict per SPEC rule, judged\n"
          "only by what the fake servers saw. With --clients, every client\n"
          "in turn and one scorecard (client x scenario).\n"
          "\nOptions:\n"
          "      --client C      builtin, a manifest's name (clients/NAME"
          ".yaml)\n"
          "                      or a manifest's path\n"
          "      --clients LIST  comma-separated clients: a scorecard\n"
          "      --report-dir D  where to write (default certificate-NAME,\n"
          "                      or scorecard with --clients)\n"
          "      --profile DIR   the profile (default scenarios/cert)\n"
          "  -f, --filter GLOB   only the profile's scenarios matching GLOB\n"
          "      --realtime      the built-in engine in real time too\n"
          "                      (external clients always are)\n"
          "\nDevice mode (a client elsewhere on the LAN; the only way the\n"
          "fake servers listen off loopback):\n"
          "      --device        certify a device instead of --client\n"
          "      --listen ADDR   this host's IPv4 address to listen on\n"
          "      --peer ADDR     the device's address: a connection from any\n"
          "                      other is reset unanswered (and fails)\n"
          "      --port P        the normal server's port (default 2525);\n"
          "                      the k-th backup listens on P + k\n"
          "      --trigger CMD   a command that makes the device send one\n"
          "                      message (env DETOUR_FROM, DETOUR_TO,\n"
          "                      DETOUR_MESSAGE); without it, detour says\n"
          "                      when to send and waits\n"
          "  -h, --help          this help\n"
          "      --version       the version\n"
          "\nOptions take their value as --opt VALUE or --opt=VALUE.\n");
  static const int codes[] = {0, 64, 66, 74, -1};
  cli_print_exit_codes(f, codes,
                       "  1    a judged scenario failed (a FAIL certificate)\n"
                       "  77   nothing could be judged here (every scenario "
                       "skipped)\n"
                       "  130  interrupted (after teardown)\n");
}

static int bad(const char *fmt, const char *arg) {
  return cli_usage_error("certify", fmt, arg);
}

enum {
  OPT_CLIENT = 1,
  OPT_CLIENTS,
  OPT_REPORT_DIR,
  OPT_PROFILE,
  OPT_FILTER,
  OPT_REALTIME,
  OPT_DEVICE,
  OPT_LISTEN,
  OPT_PEER,
  OPT_PORT,
  OPT_TRIGGER,
};

static const cli_opt certify_options[] = {
    {OPT_CLIENT, 0, "client", "C"},
    {OPT_CLIENTS, 0, "clients", "LIST"},
    {OPT_REPORT_DIR, 0, "report-dir", "DIR"},
    {OPT_PROFILE, 0, "profile", "DIR"},
    {OPT_FILTER, 'f', "filter", "GLOB"},
    {OPT_REALTIME, 0, "realtime", NULL},
    {OPT_DEVICE, 0, "device", NULL},
    {OPT_LISTEN, 0, "listen", "ADDR"},
    {OPT_PEER, 0, "peer", "ADDR"},
    {OPT_PORT, 0, "port", "P"},
    {OPT_TRIGGER, 0, "trigger", "CMD"},
};

static int add_clients(certify_opts *o, const char *list) {
  snprintf(o->clients_buf, sizeof o->clients_buf, "%s", list);
  for (char *save = NULL, *t = strtok_r(o->clients_buf, ",", &save); t;
       t = strtok_r(NULL, ",", &save)) {
    if (o->nclients >= MAX_CLIENTS)
      return bad("at most 16 clients, at '%s'", t);
    o->clients[o->nclients++] = t;
  }
  return o->nclients ? 0 : bad("%s: no client named", list);
}

static int check_clients(const certify_opts *o) {
  for (size_t i = 0; i < o->nclients; i++) {
    char err[1024];
    if (!detour_scenario_client_exists(o->clients[i]) &&
        !detour_adapter_load(o->clients[i], err, sizeof err))
      return bad("%s", err);
  }
  return 0;
}

static bool ipv4(const char *a) {
  struct in_addr x;
  return a && inet_pton(AF_INET, a, &x) == 1;
}

/* --device: an explicit opt-in with both addresses; never with --client. */
static int device_opts(certify_opts *o) {
  if (o->nclients)
    return bad("%s", "--device certifies a device: no --client/--clients");
  if (!ipv4(o->dev.listen) || !ipv4(o->dev.peer))
    return bad("%s", "--device needs --listen ADDR and --peer ADDR (IPv4 "
                     "addresses)");
  if (!o->dev.port)
    o->dev.port = 2525;
  o->clients[o->nclients++] = "device";
  if (!o->profile) {
    struct stat st;
    o->profile = stat("scenarios/cert", &st) == 0 ? "scenarios/cert"
                                                  : DETOUR_PROFILE_DIR;
  }
  return 0;
}

/* One option with its value (NULL for a flag). 0 or CLI_EXIT_USAGE. */
static int take_option(certify_opts *o, int id, const char *name,
                       const char *v) {
  char *end;
  long p;
  switch (id) {
  case OPT_CLIENT:
  case OPT_CLIENTS:
    if (o->nclients)
      return bad("%s: give --client once, or --clients", name);
    o->scorecard = id == OPT_CLIENTS;
    return add_clients(o, v);
  case OPT_REPORT_DIR:
    o->report_dir = v;
    return 0;
  case OPT_PROFILE:
    o->profile = v;
    return 0;
  case OPT_FILTER:
    o->filter = v;
    return 0;
  case OPT_REALTIME:
    o->realtime = true;
    return 0;
  case OPT_DEVICE:
    o->device = true;
    return 0;
  case OPT_LISTEN:
    o->dev.listen = v;
    return 0;
  case OPT_PEER:
    o->dev.peer = v;
    return 0;
  case OPT_TRIGGER:
    o->dev.trigger = v;
    return 0;
  case OPT_PORT:
    p = strtol(v, &end, 10);
    if (*end || end == v || p < 1 || p > 65500)
      return bad("--port takes a port 1..65500, not '%s'", v);
    o->dev.port = (uint16_t)p;
    return 0;
  }
  return bad("%s", "internal: unknown option");
}

/* 0, -1 after --help or --version (exit 0), or CLI_EXIT_USAGE. */
static int parse(int argc, char **argv, certify_opts *o) {
  cli_parser p;
  cli_parser_init(&p, "certify", certify_options,
                  sizeof certify_options / sizeof *certify_options, argc, argv);
  const char *v;
  for (int id; (id = cli_next(&p, &v)) != CLI_END;) {
    if (id == CLI_HELP) {
      usage(stdout);
      return -1;
    }
    if (id == CLI_VERSION) {
      cli_print_version();
      return -1;
    }
    if (id == CLI_ERROR)
      return CLI_EXIT_USAGE;
    if (id == CLI_ARG)
      return bad("unexpected argument '%s' (the profile: --profile DIR)", v);
    int rc = take_option(o, id, cli_opt_name(&p), v);
    if (rc != 0)
      return rc;
  }
  if (o->device)
    return device_opts(o);
  if (o->dev.listen || o->dev.peer || o->dev.trigger || o->dev.port)
    return bad("%s", "--listen, --peer, --port and --trigger need --device");
  if (!o->nclients)
    return bad("%s", "which client? --client NAME|PATH or --clients LIST");
  if (!o->profile) {
    struct stat st;
    o->profile = stat("scenarios/cert", &st) == 0 ? "scenarios/cert"
                                                  : DETOUR_PROFILE_DIR;
  }
  return check_clients(o);
}

/* ------------------------------------------------------------------------ */
/* One client                                                                */

static void now_iso(char *buf, size_t len) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  detour_format_time((detour_ms)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, buf,
                     len);
}

/* The profile's version (first line of PROFILE/VERSION) and the SHA-256
 * of its scenario files. */
static int profile_id(const certify_opts *o, char *version, size_t vlen,
                      char hash[65], char *err, size_t errlen) {
  char path[4096];
  snprintf(path, sizeof path, "%s/VERSION", o->profile);
  FILE *f = fopen(path, "r");
  snprintf(version, vlen, "unversioned");
  if (f) {
    if (fgets(version, (int)vlen, f))
      version[strcspn(version, "\r\n")] = '\0';
    fclose(f);
  }
  const char *paths[] = {o->profile};
  size_t n = 0;
  char **files = detour_suite_find(paths, 1, &n, err, errlen);
  if (!files)
    return -1;
  int rc = detour_report_hash_files((const char *const *)files, n, hash);
  detour_suite_files_free(files, n);
  if (rc < 0)
    snprintf(err, errlen, "%s: cannot read a scenario file", o->profile);
  return rc;
}

typedef struct {
  const char *client; /* as asked */
  char name[128];     /* the client's own name */
  char version[256];
  const char *manifest;
  detour_suite suite;
  bool ran;
  int status;
  char overall[1024];
} client_run;

static void identify(client_run *c, const certify_opts *o) {
  if (o->device) {
    snprintf(c->name, sizeof c->name, "device-%s", o->dev.peer);
    snprintf(c->version, sizeof c->version,
             "device at %s (servers on %s from port %u)", o->dev.peer,
             o->dev.listen, (unsigned)o->dev.port);
    c->manifest = "device";
    return;
  }
  const detour_adapter *a = detour_adapter_find(c->client);
  if (!a) {
    snprintf(c->name, sizeof c->name, "builtin");
    snprintf(c->version, sizeof c->version, "detour %s (built-in engine)",
             DETOUR_VERSION);
    return;
  }
  snprintf(c->name, sizeof c->name, "%s", a->name);
  if (!a->version || !a->version(a, c->version, sizeof c->version))
    snprintf(c->version, sizeof c->version, "unknown");
  c->manifest = c->client;
}

static detour_pcap_hooks *captures(const char *dir, detour_suite_options *so) {
  char why[256], pcap_dir[4096];
  if (!detour_pcap_available(why, sizeof why))
    return NULL; /* the verdicts do not depend on it */
  snprintf(pcap_dir, sizeof pcap_dir, "%s/%s", dir, DETOUR_REPORT_PCAP_DIR);
  detour_pcap_hooks *caps = detour_pcap_hooks_new(pcap_dir, stderr);
  if (caps) {
    so->scenario.hooks.on_started = detour_pcap_hook_start;
    so->scenario.hooks.on_finished = detour_pcap_hook_stop;
    so->scenario.hooks.arg = caps;
  }
  return caps;
}

static int write_one(FILE *(*open)(const char *, const char *), const char *dir,
                     const char *name,
                     int (*w)(const detour_suite *,
                              const detour_certificate_meta *, FILE *),
                     const detour_suite *s, const detour_certificate_meta *m) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = open(path, "w");
  int rc = f ? w(s, m, f) : DETOUR_EIO;
  if (f && fclose(f) != 0)
    rc = DETOUR_EIO;
  if (rc < 0)
    fprintf(stderr, "detour certify: cannot write %s\n", path);
  return rc;
}

static int write_all(const certify_opts *o, client_run *c, const char *dir,
                     const char *started, const char *command,
                     const char *pversion, const char *hash) {
  char err[1024] = "", paths[3][4096];
  detour_report_meta meta = {.title = "detour certify",
                             .version = DETOUR_VERSION,
                             .started = started,
                             .mode = o->realtime || c->manifest ? "realtime"
                                                                : "virtual",
                             .command = command,
                             .subject = c->version};
  snprintf(paths[0], sizeof paths[0], "%s/%s", dir, DETOUR_REPORT_JSON_NAME);
  snprintf(paths[1], sizeof paths[1], "%s/%s", dir, DETOUR_REPORT_JUNIT_NAME);
  snprintf(paths[2], sizeof paths[2], "%s/%s", dir, DETOUR_REPORT_HTML_NAME);
  detour_report_paths p = {paths[0], paths[1], paths[2]};
  int rc = detour_report_write_files(&c->suite, &meta, &p, err, sizeof err);
  if (rc == 0)
    rc = detour_suite_write(&c->suite, dir, err, sizeof err);
  if (rc < 0) {
    fprintf(stderr, "detour certify: %s\n", err);
    return rc;
  }
  detour_certificate_meta cm = {.client = c->name,
                                .client_version = c->version,
                                .manifest = c->manifest,
                                .profile = o->profile,
                                .profile_version = pversion,
                                .profile_hash = hash,
                                .started = started,
                                .command = command,
                                .report_dir = dir};
  detour_certificate_overall(&c->suite, &cm, c->overall, sizeof c->overall);
  rc = write_one(fopen, dir, "certificate.json", detour_report_certificate_json,
                 &c->suite, &cm);
  if (rc == 0)
    rc = write_one(fopen, dir, "certificate.html",
                   detour_report_certificate_html, &c->suite, &cm);
  return rc;
}

static int certify_one(const certify_opts *o, client_run *c, const char *dir,
                       const char *command, const char *pversion,
                       const char *hash) {
  char started[40], err[1024] = "";
  now_iso(started, sizeof started);
  if (detour_report_mkdirs(dir, err, sizeof err) < 0) {
    fprintf(stderr, "detour certify: %s\n", err);
    return EX_IOERR;
  }
  printf("certifying %s (%s) on %s\n", c->name, c->version, o->profile);
  fflush(stdout);
  const char *paths[] = {o->profile};
  detour_suite_options so = {
      .paths = paths,
      .npaths = 1,
      .filter = o->filter,
      .jobs = 1,
      .scenario = {.realtime = o->realtime,
                   .client = o->device ? NULL : c->client,
                   .device = o->device ? &o->dev : NULL},
      .out = stdout,
      .color = detour_report_use_color(stdout),
      .progress = NULL};
  detour_pcap_hooks *caps = captures(dir, &so);
  int rc = detour_suite_run(&so, &c->suite, err, sizeof err);
  detour_pcap_hooks_free(caps);
  if (rc < 0) {
    fprintf(stderr, "detour certify: %s\n", err);
    return EX_NOINPUT;
  }
  c->ran = true;
  if (write_all(o, c, dir, started, command, pversion, hash) < 0)
    return EX_IOERR;
  printf("%s\ncertificate: %s/certificate.html\n", c->overall, dir);
  if (c->suite.failed)
    return 1;
  return c->suite.n && c->suite.skipped == c->suite.n ? EXIT_ALL_SKIPPED : 0;
}

/* --clients: DIR/scorecard.html and DIR/scorecard.json. */
static int write_scorecard(const client_run *runs, size_t n, const char *dir,
                           const char *pversion, const char *hash) {
  detour_scorecard_column cols[MAX_CLIENTS];
  char links[MAX_CLIENTS][256];
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (!runs[i].ran)
      continue;
    snprintf(links[k], sizeof links[k], "%s/certificate.html", runs[i].name);
    cols[k] = (detour_scorecard_column){runs[i].name, runs[i].version, links[k],
                                        &runs[i].suite};
    k++;
  }
  char path[4096];
  int rc = 0;
  for (int html = 0; html < 2; html++) {
    snprintf(path, sizeof path, "%s/scorecard.%s", dir, html ? "html" : "json");
    FILE *f = fopen(path, "w");
    int w = !f     ? DETOUR_EIO
            : html ? detour_report_scorecard_html(cols, k, pversion, hash, f)
                   : detour_report_scorecard_json(cols, k, pversion, hash, f);
    if (f && fclose(f) != 0)
      w = DETOUR_EIO;
    if (w < 0) {
      fprintf(stderr, "detour certify: cannot write %s\n", path);
      rc = w;
    }
  }
  printf("scorecard: %s/scorecard.html\n", dir);
  return rc;
}

static void join_args(int argc, char **argv, char *buf, size_t len) {
  size_t o = (size_t)snprintf(buf, len, "detour");
  for (int i = 0; i < argc && o < len; i++)
    o += (size_t)snprintf(buf + o, len - o, " %s", argv[i]);
}

int detour_cli_certify(int argc, char **argv) {
  certify_opts o = {0};
  int rc = parse(argc, argv, &o);
  if (rc != 0)
    return rc < 0 ? 0 : rc;
  char command[4096], pversion[128], hash[65], err[1024] = "";
  join_args(argc, argv, command, sizeof command);
  if (profile_id(&o, pversion, sizeof pversion, hash, err, sizeof err) < 0) {
    fprintf(stderr, "detour certify: %s\n", err);
    return EX_NOINPUT;
  }
  cli_catch_interrupts();
  client_run *runs = calloc(o.nclients, sizeof *runs);
  if (!runs)
    return EX_OSERR;
  int status = 0;
  for (size_t i = 0; i < o.nclients && !detour_scenario_interrupted(); i++) {
    char dir[4096];
    runs[i].client = o.clients[i];
    identify(&runs[i], &o);
    if (o.scorecard) /* by the client's own name: a path has slashes */
      snprintf(dir, sizeof dir, "%s/%s",
               o.report_dir ? o.report_dir : "scorecard", runs[i].name);
    else if (o.report_dir)
      snprintf(dir, sizeof dir, "%s", o.report_dir);
    else
      snprintf(dir, sizeof dir, "certificate-%s", runs[i].name);
    rc = certify_one(&o, &runs[i], dir, command, pversion, hash);
    if (rc != 0 && rc != EXIT_ALL_SKIPPED && (status == 0 || rc > 1))
      status = rc;
    else if (rc == EXIT_ALL_SKIPPED && (status == 0) && o.nclients == 1)
      status = rc;
  }
  if (o.scorecard && status < EX_USAGE)
    status = write_scorecard(runs, o.nclients,
                             o.report_dir ? o.report_dir : "scorecard",
                             pversion, hash) < 0
                 ? EX_IOERR
                 : status;
  for (size_t i = 0; i < o.nclients; i++)
    if (runs[i].ran)
      detour_suite_free(&runs[i].suite);
  free(runs);
  if (detour_scenario_interrupted()) {
    fprintf(stderr, "detour certify: interrupted; everything torn down\n");
    return 130;
  }
  return status;
}

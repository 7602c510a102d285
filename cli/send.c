/*
 * send.c - `detour send`: read one message from stdin and deliver it
 * through the failover engine on the libuv driver, with a real clock.
 *
 * The configuration file (docs/config.md) is applied first, then the
 * command-line options override it. The send log (SPEC R8) goes to stderr
 * as a Fig. 6 table and, with --log, to a file as JSON lines; each
 * recipient's outcome is a line on stdout. The exit code says what
 * happened (sysexits.h), so a caller that keeps the message can decide to
 * try again: nothing is reported delivered unless a server accepted it.
 */
#include "send.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include <uv.h>

#include "detour/detour.h"
#include "detour/detour_config.h"
#include "detour/detour_uv.h"
#include "spool.h"

/* What the command line asked for; strings point into argv. */
typedef struct {
  const char *config;
  const char *servers[DETOUR_MAX_SERVERS];
  size_t nservers;
  const char *from;
  const char **rcpts;
  size_t nrcpts;
  const char *retry_interval;
  const char *max_attempts;
  const char *connect_timeout;
  const char *reply_timeout;
  const char *detour;
  const char *log;
  const char *tls; /* R13: apply to every server */
  const char *ca_file;
  const char *auth_user;
  const char *auth_password_file;
} send_opts;

/* One run of the engine on a private loop. */
typedef struct {
  uv_loop_t loop;
  detour_clock *clock;
  detour_engine *engine;
  detour_uv *driver;
  uv_signal_t sigint, sigterm;
  FILE *log;
  const char *log_path;
  bool log_failed;
  bool header_done;
  bool done;
  detour_done_status status;
  int signal;
  size_t nrcpts, delivered, aborted, deferred;
} send_run;

/* ------------------------------------------------------------------------ */
/* Command line                                                              */

void detour_cli_send_usage(void) {
  printf(
      "Usage: detour send [--config FILE] [--server HOST:PORT ...]\n"
      "                   --from ADDR --to ADDR [--to ADDR ...]\n"
      "                   [--retry-interval DURATION] [--max-attempts N]\n"
      "                   [--connect-timeout DURATION]\n"
      "                   [--reply-timeout DURATION]\n"
      "                   [--detour allow|deny] [--log FILE]\n"
      "                   [--tls starttls|implicit|none] [--ca-file FILE]\n"
      "                   [--auth-user USER --auth-password-file FILE]\n"
      "                   < message\n"
      "\n"
      "Send the RFC 5322 message on stdin to every recipient through the\n"
      "first SMTP server that works, detouring to backup servers when the\n"
      "normal one fails.\n"
      "\n"
      "  -c, --config FILE           YAML configuration (docs/config.md)\n"
      "  -s, --server HOST:PORT      a server; repeat it: the order given is\n"
      "                              the priority order (replaces the\n"
      "                              configured list); IPv6 as [::1]:25\n"
      "  -f, --from ADDR             envelope sender\n"
      "  -t, --to ADDR               envelope recipient (repeatable)\n"
      "      --retry-interval D      wait before retrying a server (3m)\n"
      "      --max-attempts N        attempts per server and message (10)\n"
      "      --connect-timeout D     TCP connect timeout (30s)\n"
      "      --reply-timeout D       every SMTP reply timeout\n"
      "      --detour allow|deny     allow or forbid backup servers for this\n"
      "                              message (default: the detour table)\n"
      "      --log FILE              append the send log as JSON lines\n"
      "      --tls MODE              starttls, implicit or none, for every\n"
      "                              server; TLS is then required\n"
      "      --ca-file FILE          trust these CAs (PEM) instead of the\n"
      "                              system store\n"
      "      --auth-user USER        AUTH (PLAIN or LOGIN) as USER\n"
      "      --auth-password-file F  the password: the first line of F (never\n"
      "                              on the command line)\n"
      "  -h, --help                  this help\n"
      "  -V, --version               the version\n"
      "\n"
      "DURATION is 500ms, 3s, 3m, 1h or a number of seconds.\n"
      "\n"
      "The message is read whole before the first connection and kept\n"
      "once (in memory up to 1 MiB, beyond that in an unlinked temporary\n"
      "file under $TMPDIR): at most 64 MiB, at most 1000 recipients (--to)\n"
      "per message.\n"
      "\n"
      "Exit status: 0 delivered to every recipient; 67 a recipient was\n"
      "refused for good and none is pending; 75 not delivered after every\n"
      "allowed retry (or interrupted): keep the message and try later;\n"
      "64 usage error; 65 message over 64 MiB; 66 empty message; 74 stdin\n"
      "unreadable; 78 configuration error.\n");
}

/* "detour send: MESSAGE" and the hint; returns EX_USAGE. */
__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt,
                                                             ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "detour send: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\nTry 'detour send --help'.\n");
  va_end(ap);
  return EX_USAGE;
}

enum {
  OPT_RETRY_INTERVAL = 256,
  OPT_MAX_ATTEMPTS,
  OPT_CONNECT_TIMEOUT,
  OPT_REPLY_TIMEOUT,
  OPT_DETOUR,
  OPT_LOG,
  OPT_TLS,
  OPT_CA_FILE,
  OPT_AUTH_USER,
  OPT_AUTH_PASSWORD_FILE
};

static const struct option long_options[] = {
    {"config", required_argument, NULL, 'c'},
    {"server", required_argument, NULL, 's'},
    {"from", required_argument, NULL, 'f'},
    {"to", required_argument, NULL, 't'},
    {"retry-interval", required_argument, NULL, OPT_RETRY_INTERVAL},
    {"max-attempts", required_argument, NULL, OPT_MAX_ATTEMPTS},
    {"connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT},
    {"reply-timeout", required_argument, NULL, OPT_REPLY_TIMEOUT},
    {"detour", required_argument, NULL, OPT_DETOUR},
    {"log", required_argument, NULL, OPT_LOG},
    {"tls", required_argument, NULL, OPT_TLS},
    {"ca-file", required_argument, NULL, OPT_CA_FILE},
    {"auth-user", required_argument, NULL, OPT_AUTH_USER},
    {"auth-password-file", required_argument, NULL, OPT_AUTH_PASSWORD_FILE},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

/* Store one option. Returns 0 or EX_USAGE. */
static int take_option(send_opts *o, int c, char *arg) {
  switch (c) {
  case 'c':
    o->config = arg;
    return 0;
  case 'f':
    o->from = arg;
    return 0;
  case OPT_RETRY_INTERVAL:
    o->retry_interval = arg;
    return 0;
  case OPT_MAX_ATTEMPTS:
    o->max_attempts = arg;
    return 0;
  case OPT_CONNECT_TIMEOUT:
    o->connect_timeout = arg;
    return 0;
  case OPT_REPLY_TIMEOUT:
    o->reply_timeout = arg;
    return 0;
  case OPT_DETOUR:
    o->detour = arg;
    return 0;
  case OPT_LOG:
    o->log = arg;
    return 0;
  case OPT_TLS:
    o->tls = arg;
    return 0;
  case OPT_CA_FILE:
    o->ca_file = arg;
    return 0;
  case OPT_AUTH_USER:
    o->auth_user = arg;
    return 0;
  case OPT_AUTH_PASSWORD_FILE:
    o->auth_password_file = arg;
    return 0;
  case 's':
    if (o->nservers == DETOUR_MAX_SERVERS)
      return usage_error("too many --server options (at most %d)",
                         DETOUR_MAX_SERVERS);
    o->servers[o->nservers++] = arg;
    return 0;
  case 't':
    if (o->nrcpts == DETOUR_MAX_RECIPIENTS)
      return usage_error("too many --to options (at most %d)",
                         DETOUR_MAX_RECIPIENTS);
    o->rcpts[o->nrcpts++] = arg;
    return 0;
  default:
    return usage_error("%s", "bad option");
  }
}

/* An address goes into "MAIL FROM:<...>": nothing that could end the
 * command or the brackets may reach the wire. */
static bool address_ok(const char *a) {
  if (*a == '\0')
    return false;
  for (; *a; a++)
    if ((unsigned char)*a <= ' ' || *a == 0x7f || *a == '<' || *a == '>')
      return false;
  return true;
}

/* Check what the options alone can tell. */
static int check_opts(const send_opts *o) {
  if (!o->from)
    return usage_error("%s", "--from ADDR is required");
  if (o->nrcpts == 0)
    return usage_error("%s", "at least one --to ADDR is required");
  if (!address_ok(o->from))
    return usage_error("bad --from address '%s'", o->from);
  for (size_t i = 0; i < o->nrcpts; i++)
    if (!address_ok(o->rcpts[i]))
      return usage_error("bad --to address '%s'", o->rcpts[i]);
  if (o->nservers == 0 && !o->config)
    return usage_error("%s", "no server: give --server HOST:PORT or "
                             "--config FILE");
  if (o->detour && strcmp(o->detour, "allow") != 0 &&
      strcmp(o->detour, "deny") != 0)
    return usage_error("--detour takes allow or deny, not '%s'", o->detour);
  return 0;
}

/* Returns 0 to go on, EX_USAGE, or -1 when --help/--version answered. */
static int parse_args(send_opts *o, int argc, char **argv) {
  int c;
  optind = 1;
  opterr = 0; /* our own messages, with the usage hint */
  while ((c = getopt_long(argc, argv, ":c:s:f:t:hV", long_options, NULL)) !=
         -1) {
    if (c == 'h')
      return detour_cli_send_usage(), -1;
    if (c == 'V')
      return printf("detour %s\n", DETOUR_VERSION), -1;
    if (c == '?')
      return usage_error("unknown option '%s'", argv[optind - 1]);
    if (c == ':')
      return usage_error("option '%s' needs a value", argv[optind - 1]);
    int rc = take_option(o, c, optarg);
    if (rc)
      return rc;
  }
  if (optind < argc)
    return usage_error("unexpected argument '%s' (the message is read "
                       "from stdin)",
                       argv[optind]);
  return check_opts(o);
}

/* ------------------------------------------------------------------------ */
/* Settings: the file, then the options                                      */

static int duration_opt(const char *name, const char *text, bool zero_ok,
                        detour_ms *out) {
  detour_ms ms;
  if (detour_parse_duration(text, &ms) != 0 || ms < 0 ||
      (!zero_ok && ms == 0)) {
    fprintf(stderr,
            "detour send: %s takes a duration like 500ms, 3s or 3m, at "
            "most 720h (30 days), not '%s'\nTry 'detour send --help'.\n",
            name, text);
    return EX_USAGE;
  }
  *out = ms;
  return 0;
}

static void set_reply_timeouts(detour_timeouts *t, detour_ms ms) {
  t->greeting = t->ehlo = t->mail = t->rcpt = ms;
  t->data_start = t->data_block = t->final_dot = t->quit = ms;
  t->tls = t->auth = ms;
}

/* --server replaces the configured list; the order given is the priority
 * order. */
static int apply_servers(detour_settings *s, const send_opts *o) {
  if (o->nservers == 0)
    return 0;
  s->cfg.nservers = 0;
  for (size_t i = 0; i < o->nservers; i++) {
    char host[sizeof s->cfg.servers[0].host];
    uint16_t port;
    if (detour_parse_server_address(o->servers[i], host, sizeof host, &port) !=
        0)
      return usage_error("--server takes HOST:PORT (IPv6 as [::1]:25), "
                         "not '%s'",
                         o->servers[i]);
    if (detour_config_add_server(&s->cfg, host, port, (int)i + 1) != 0)
      return usage_error("cannot use --server '%s'", o->servers[i]);
  }
  return 0;
}

/* R13: --tls, --ca-file and --auth-* apply to every server. The password
 * is read from its file once, here; it is never an argument. */
static int apply_tls(detour_settings *s, const send_opts *o) {
  detour_tls_mode mode = DETOUR_TLS_MODE_NONE;
  if (o->tls && detour_tls_mode_from_name(o->tls, &mode) != 0)
    return usage_error("--tls takes starttls, implicit or none, not '%s'",
                       o->tls);
  if (!o->auth_user != !o->auth_password_file)
    return usage_error("%s", "--auth-user and --auth-password-file go "
                             "together");
  detour_server *first = &s->cfg.servers[0];
  if (o->ca_file && strlen(o->ca_file) >= sizeof first->ca_file)
    return usage_error("%s", "--ca-file: path too long");
  if (o->auth_user && (strlen(o->auth_user) >= sizeof first->auth_user ||
                       strpbrk(o->auth_user, "\r\n")))
    return usage_error("bad --auth-user '%s'", o->auth_user);
  char secret[sizeof first->auth_password] = "", err[600];
  if (o->auth_password_file &&
      detour_read_secret_file(o->auth_password_file, secret, sizeof secret, err,
                              sizeof err) != 0) {
    fprintf(stderr, "detour send: --auth-password-file: %s\n", err);
    return EX_CONFIG;
  }
  for (size_t i = 0; i < s->cfg.nservers; i++) {
    detour_server *sv = &s->cfg.servers[i];
    if (o->tls) {
      sv->tls = mode;
      sv->tls_optional = false;
    }
    if (o->ca_file)
      snprintf(sv->ca_file, sizeof sv->ca_file, "%s", o->ca_file);
    if (o->auth_user) {
      snprintf(sv->auth_user, sizeof sv->auth_user, "%s", o->auth_user);
      memcpy(sv->auth_password, secret, sizeof secret);
    }
  }
  volatile char *wipe = secret;
  for (size_t k = 0; k < sizeof secret; k++)
    wipe[k] = 0;
  return 0;
}

static int apply_opts(detour_settings *s, const send_opts *o) {
  int rc = apply_servers(s, o);
  if (!rc)
    rc = apply_tls(s, o);
  if (!rc && o->retry_interval)
    rc = duration_opt("--retry-interval", o->retry_interval, true,
                      &s->cfg.retry_interval);
  if (!rc && o->connect_timeout)
    rc = duration_opt("--connect-timeout", o->connect_timeout, false,
                      &s->cfg.timeouts.connect);
  if (!rc && o->reply_timeout) {
    detour_ms ms;
    rc = duration_opt("--reply-timeout", o->reply_timeout, false, &ms);
    if (!rc)
      set_reply_timeouts(&s->cfg.timeouts, ms);
  }
  if (!rc && o->max_attempts) {
    char *end;
    errno = 0;
    long n = strtol(o->max_attempts, &end, 10);
    if (errno || end == o->max_attempts || *end || n < 1 || n > 1000000)
      return usage_error("--max-attempts takes a number >= 1, not '%s'",
                         o->max_attempts);
    s->cfg.max_attempts = (unsigned)n;
  }
  return rc;
}

/* Load the file (or the defaults), then the options. Returns 0, EX_CONFIG
 * or EX_USAGE; s is initialised on 0 only. */
static int load_settings(detour_settings *s, const send_opts *o) {
  char err[1024];
  int rc = o->config ? detour_settings_load_file(s, o->config, err, sizeof err)
                     : detour_settings_init(s);
  if (rc == DETOUR_ENOMEM) {
    fprintf(stderr, "detour send: out of memory\n");
    return EX_OSERR;
  }
  if (rc) {
    fprintf(stderr, "detour send: %s\n", err);
    return EX_CONFIG;
  }
  rc = apply_opts(s, o);
  if (!rc && s->cfg.nservers == 0) {
    fprintf(stderr,
            "detour send: %s: no servers configured (key "
            "'servers', or --server HOST:PORT)\n",
            o->config);
    rc = EX_CONFIG;
  }
  if (rc)
    detour_settings_free(s);
  return rc;
}

/* ------------------------------------------------------------------------ */
/* The message                                                               */

/* Read the message from stdin into the spool (memory or an unlinked
 * temporary file). An empty or unreadable stdin is an error; a message
 * whose last line has no line end was perhaps cut short: say so. */
static int read_message(cli_spool *sp) {
  int rc = cli_spool_read(sp, 0, "detour send");
  if (rc == 0 && !sp->ends_in_newline)
    fprintf(stderr, "detour: warning: the message does not end with a line "
                    "end (cut short?); sending it as it is\n");
  return rc;
}

/* ------------------------------------------------------------------------ */
/* Engine callbacks                                                          */

static void write_json(send_run *r, const detour_log_row *row) {
  char line[4096];
  int n = detour_log_format_json(row, line, sizeof line);
  if (n < 0 || fprintf(r->log, "%s\n", line) < 0 || fflush(r->log) != 0) {
    if (!r->log_failed)
      fprintf(stderr, "detour: warning: cannot write the log %s: %s\n",
              r->log_path, n < 0 ? "row too long" : strerror(errno));
    r->log_failed = true;
  }
}

static void on_log(void *arg, const detour_log_row *row) {
  send_run *r = arg;
  char line[2048];
  if (!r->header_done) {
    fprintf(stderr, "%s\n", detour_log_table_header());
    r->header_done = true;
  }
  detour_log_format_table(row, line, sizeof line); /* truncated is fine */
  fprintf(stderr, "%s\n", line);
  if (r->log)
    write_json(r, row);
}

static void on_warn(void *arg, const char *text) {
  fprintf(stderr, "detour: warning: %s\n", text);
}

/* One line per recipient on stdout: what happened and through which
 * server. */
static void on_rcpt(void *arg, size_t message, size_t index,
                    const char *recipient, detour_rcpt_outcome outcome,
                    int server, const char *detail) {
  send_run *r = arg;
  if (outcome == DETOUR_RCPT_DELIVERED)
    r->delivered++;
  else if (outcome == DETOUR_RCPT_ABORTED)
    r->aborted++;
  else
    r->deferred++;
  printf("%s: %s", recipient, detour_rcpt_outcome_name(outcome));
  const char *via = server >= 0
                        ? detour_engine_server_label(r->engine, (size_t)server)
                        : NULL;
  if (via)
    printf(" via %s", via);
  if (detail && *detail)
    printf(" (%s)", detail);
  printf("\n");
  fflush(stdout);
}

static void on_done(void *arg, size_t message, detour_done_status status) {
  send_run *r = arg;
  r->done = true;
  r->status = status;
}

/* SIGINT / SIGTERM: close every connection; whatever was not delivered is
 * reported as not delivered (exit 75), so the caller keeps the message. A
 * second signal gets the default action. */
static void on_signal(uv_signal_t *h, int signum) {
  send_run *r = h->data;
  r->signal = signum;
  uv_signal_stop(&r->sigint);
  uv_signal_stop(&r->sigterm);
  if (r->driver && !r->done) {
    detour_uv_free(r->driver);
    r->driver = NULL;
  }
}

/* ------------------------------------------------------------------------ */
/* The run                                                                   */

static void close_cb(uv_handle_t *h) {}

/* Start the signal watchers, unreferenced: they must not keep the loop
 * running once the engine is done. */
static void watch_signals(send_run *r) {
  uv_signal_init(&r->loop, &r->sigint);
  uv_signal_init(&r->loop, &r->sigterm);
  r->sigint.data = r->sigterm.data = r;
  uv_signal_start(&r->sigint, on_signal, SIGINT);
  uv_signal_start(&r->sigterm, on_signal, SIGTERM);
  uv_unref((uv_handle_t *)&r->sigint);
  uv_unref((uv_handle_t *)&r->sigterm);
}

/* Free the driver, let its handles close, then everything else. */
static void teardown(send_run *r) {
  if (r->driver)
    detour_uv_free(r->driver);
  r->driver = NULL;
  uv_close((uv_handle_t *)&r->sigint, close_cb);
  uv_close((uv_handle_t *)&r->sigterm, close_cb);
  uv_run(&r->loop, UV_RUN_DEFAULT);
  if (r->clock)
    detour_clock_free(r->clock);
  detour_engine_free(r->engine);
  if (uv_loop_close(&r->loop) != 0)
    fprintf(stderr, "detour: warning: the event loop did not close "
                    "cleanly\n");
}

static int exit_code(const send_run *r) {
  if (r->signal && !r->done) {
    fprintf(stderr,
            "detour: interrupted by signal %d: the message was "
            "not delivered to every recipient (%zu of %zu "
            "delivered); keep it and send again\n",
            r->signal, r->delivered, r->nrcpts);
    return EX_TEMPFAIL;
  }
  if (!r->done) {
    fprintf(stderr, "detour: the driver stopped before the message was "
                    "done: not delivered\n");
    return EX_TEMPFAIL;
  }
  switch (r->status) {
  case DETOUR_DONE_DELIVERED:
    return 0;
  case DETOUR_DONE_ABORTED:
    return EX_NOUSER;
  default:
    return EX_TEMPFAIL;
  }
}

static int start_run(send_run *r, const detour_settings *s) {
  int err = 0;
  r->engine = detour_engine_new(&s->cfg, &err);
  if (!r->engine) {
    fprintf(stderr, "detour send: cannot start the engine: %s\n",
            detour_strerror(err));
    return err == DETOUR_ENOMEM ? EX_OSERR : EX_CONFIG;
  }
  r->clock = detour_clock_new_real(&r->loop);
  static const detour_uv_callbacks no_cb;
  detour_uv_callbacks cb = no_cb;
  cb.on_log = on_log, cb.on_warn = on_warn, cb.on_rcpt = on_rcpt;
  cb.on_done = on_done, cb.arg = r;
  r->driver = r->clock ? detour_uv_new(r->clock, r->engine, &cb) : NULL;
  if (!r->driver) {
    fprintf(stderr, "detour send: out of memory\n");
    return EX_OSERR;
  }
  return 0;
}

static int run(send_run *r, const detour_settings *s, const detour_message *m) {
  int rc = start_run(r, s);
  if (rc == 0) {
    int idx = detour_uv_submit(r->driver, m);
    if (idx < 0) {
      fprintf(stderr, "detour send: cannot send: %s\n", detour_strerror(idx));
      rc = idx == DETOUR_ENOMEM ? EX_OSERR : EX_USAGE;
    } else {
      uv_run(&r->loop, UV_RUN_DEFAULT);
      rc = exit_code(r);
    }
  }
  teardown(r);
  return rc;
}

static int open_log(send_run *r, const char *path) {
  if (!path)
    return 0;
  r->log = fopen(path, "a");
  r->log_path = path;
  if (!r->log) {
    fprintf(stderr, "detour send: cannot open the log %s: %s\n", path,
            strerror(errno));
    return EX_CANTCREAT;
  }
  return 0;
}

static int send_message(const detour_settings *s, const send_opts *o,
                        const detour_body_source *body) {
  send_run *r = calloc(1, sizeof *r);
  if (!r)
    return fprintf(stderr, "detour send: out of memory\n"), EX_OSERR;
  int rc = open_log(r, o->log ? o->log : s->log_path);
  if (rc == 0 && uv_loop_init(&r->loop) != 0)
    rc = EX_OSERR;
  if (rc == 0) {
    detour_message m = {.from = o->from,
                        .rcpts = o->rcpts,
                        .nrcpts = o->nrcpts,
                        .override = DETOUR_OVERRIDE_NONE,
                        .source = body};
    if (o->detour)
      m.override = strcmp(o->detour, "allow") == 0 ? DETOUR_OVERRIDE_ALLOW
                                                   : DETOUR_OVERRIDE_DENY;
    r->nrcpts = o->nrcpts;
    watch_signals(r);
    rc = run(r, s, &m);
  }
  if (r->log)
    fclose(r->log);
  free(r);
  return rc;
}

int detour_cli_send(int argc, char **argv) {
  send_opts o;
  memset(&o, 0, sizeof o);
  o.rcpts = calloc(DETOUR_MAX_RECIPIENTS, sizeof *o.rcpts);
  if (!o.rcpts)
    return fprintf(stderr, "detour send: out of memory\n"), EX_OSERR;
  detour_settings s;
  cli_spool spool = {.fd = -1};
  int rc = parse_args(&o, argc, argv);
  if (rc < 0) {
    rc = 0; /* --help or --version */
    goto done;
  }
  if (rc || (rc = load_settings(&s, &o)) != 0)
    goto done;
  /* A peer that closes while we write must not kill us with SIGPIPE: the
   * driver sees the error and the engine decides. */
  signal(SIGPIPE, SIG_IGN);
  rc = read_message(&spool);
  if (rc == 0) {
    detour_body_source body = cli_spool_source(&spool);
    rc = send_message(&s, &o, &body);
  }
  detour_settings_free(&s);
done:
  cli_spool_free(&spool);
  free(o.rcpts);
  return rc;
}

/*
 * send.c - `detour send`: read one message from stdin and deliver it
 * through the failover engine on the libuv driver, with a real clock.
 *
 * The configuration file (docs/config.md) is applied first, then the
 * command-line options override it. The send log (docs/rules.md R8) goes to
 * stderr as a Fig. 6 table and, with --log, to a file as JSON lines; each
 * recipient's outcome is a line on stdout. The exit code says what
 * happened (sysexits.h), so a caller that keeps the message can decide to
 * try again: nothing is reported delivered unless a server accepted it.
 */
#include "send.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include <uv.h>

#include "detour/detour.h"
#include "detour/detour_config.h"
#include "detour/detour_uv.h"
#include "opts.h"
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
  bool quiet, verbose;
  const char *command; /* in messages: "send" (NULL), "sendmail" */
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
  bool verbose;
  /* --quiet: the table and the outcome lines are held here and printed
   * only when the message was not delivered to everyone. */
  bool quiet;
  char *held_err, *held_out;
  size_t held_err_len, held_out_len;
  FILE *err, *out;
  int w_rcpt, w_server; /* the table's widths, from the data */
} send_run;

/* ------------------------------------------------------------------------ */
/* Command line                                                              */

void detour_cli_send_usage(void) {
  printf(
      "Usage: detour send [OPTIONS] --from ADDR [--to ADDR ...] [ADDR ...] "
      "< message\n"
      "\n"
      "Send the RFC 5322 message on stdin to every recipient through the\n"
      "first SMTP server that works, detouring to backup servers when the\n"
      "normal one fails (docs/rules.md). Recipients are the --to options\n"
      "and the arguments.\n"
      "\n"
      "Options:\n"
      "  -c, --config FILE           YAML configuration (docs/config.md)\n"
      "  -s, --server HOST[:PORT]    a server; repeat it: the order given is\n"
      "                              the priority order (replaces the\n"
      "                              configured list); IPv6 as [::1]:25\n"
      "  -f, --from ADDR             envelope sender; '<>' or '' for the\n"
      "                              null sender (bounces)\n"
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
      "  -q, --quiet                 print nothing when every recipient got\n"
      "                              the message (the log and the outcome\n"
      "                              lines only on failure)\n"
      "  -v, --verbose               the send log with every column (class,\n"
      "                              attempt, address used, full detail)\n"
      "  -h, --help                  this help\n"
      "      --version               the version\n"
      "\n"
      "Options take their value as --opt VALUE or --opt=VALUE. DURATION is\n"
      "500ms, 3s, 3m, 1h or a number of seconds. The send log goes to\n"
      "stderr as a table (the patent's Fig. 6 plus a detail; -v adds the\n"
      "class and the attempt), one "
      "line per recipient's outcome to stdout.\n"
      "\n"
      "The message is read whole before the first connection and kept\n"
      "once (in memory up to 1 MiB, beyond that in an unlinked temporary\n"
      "file under $TMPDIR): at most 64 MiB, at most 1000 recipients\n"
      "per message.\n");
  static const int codes[] = {0, 67, 75, 64, 65, 66, 71, 73, 74, 78, -1};
  cli_print_exit_codes(stdout, codes, NULL);
}

enum {
  OPT_CONFIG = 1,
  OPT_SERVER,
  OPT_FROM,
  OPT_TO,
  OPT_RETRY_INTERVAL,
  OPT_MAX_ATTEMPTS,
  OPT_CONNECT_TIMEOUT,
  OPT_REPLY_TIMEOUT,
  OPT_DETOUR,
  OPT_LOG,
  OPT_TLS,
  OPT_CA_FILE,
  OPT_AUTH_USER,
  OPT_AUTH_PASSWORD_FILE,
  OPT_QUIET,
  OPT_VERBOSE,
};

static const cli_opt send_options[] = {
    {OPT_CONFIG, 'c', "config", "FILE"},
    {OPT_SERVER, 's', "server", "HOST:PORT"},
    {OPT_FROM, 'f', "from", "ADDR"},
    {OPT_TO, 't', "to", "ADDR"},
    {OPT_RETRY_INTERVAL, 0, "retry-interval", "DURATION"},
    {OPT_MAX_ATTEMPTS, 0, "max-attempts", "N"},
    {OPT_CONNECT_TIMEOUT, 0, "connect-timeout", "DURATION"},
    {OPT_REPLY_TIMEOUT, 0, "reply-timeout", "DURATION"},
    {OPT_DETOUR, 0, "detour", "allow|deny"},
    {OPT_LOG, 0, "log", "FILE"},
    {OPT_TLS, 0, "tls", "MODE"},
    {OPT_CA_FILE, 0, "ca-file", "FILE"},
    {OPT_AUTH_USER, 0, "auth-user", "USER"},
    {OPT_AUTH_PASSWORD_FILE, 0, "auth-password-file", "FILE"},
    {OPT_QUIET, 'q', "quiet", NULL},
    {OPT_VERBOSE, 'v', "verbose", NULL},
};

static int usage_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return cli_usage_error("send", "%s", msg);
}

static int add_rcpt(send_opts *o, const char *addr) {
  if (o->nrcpts == DETOUR_MAX_RECIPIENTS)
    return usage_error("too many recipients (at most %d)",
                       DETOUR_MAX_RECIPIENTS);
  o->rcpts[o->nrcpts++] = addr;
  return 0;
}

/* Store one option. Returns 0 or EX_USAGE. */
static int take_option(send_opts *o, int id, const char *arg) {
  switch (id) {
  case OPT_CONFIG:
    o->config = arg;
    return 0;
  case OPT_FROM:
    /* "<>" is how people write the null sender (RFC 5321 4.5.5) */
    o->from = strcmp(arg, "<>") == 0 ? "" : arg;
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
  case OPT_QUIET:
    o->quiet = true;
    return 0;
  case OPT_VERBOSE:
    o->verbose = true;
    return 0;
  case OPT_SERVER:
    if (o->nservers == DETOUR_MAX_SERVERS)
      return usage_error("too many --server options (at most %d)",
                         DETOUR_MAX_SERVERS);
    o->servers[o->nservers++] = arg;
    return 0;
  case OPT_TO:
    return add_rcpt(o, arg);
  default:
    return usage_error("%s", "bad option");
  }
}

/* An address goes into "MAIL FROM:<...>": nothing that could end the
 * command or the brackets may reach the wire. Empty is the null sender,
 * for --from only. */
static bool address_ok(const char *a, bool empty_ok) {
  if (*a == '\0')
    return empty_ok;
  for (; *a; a++)
    if ((unsigned char)*a <= ' ' || *a == 0x7f || *a == '<' || *a == '>')
      return false;
  return true;
}

/* Check what the options alone can tell. */
static int check_opts(const send_opts *o) {
  if (!o->from)
    return usage_error("%s", "--from ADDR is required ('<>' for the null "
                             "sender)");
  if (o->nrcpts == 0)
    return usage_error("%s", "at least one recipient is required (--to ADDR "
                             "or an argument)");
  if (!address_ok(o->from, true))
    return usage_error("bad --from address '%s'", o->from);
  for (size_t i = 0; i < o->nrcpts; i++)
    if (!address_ok(o->rcpts[i], false))
      return usage_error("bad recipient address '%s'", o->rcpts[i]);
  if (o->nservers == 0 && !o->config)
    return usage_error("%s", "no server: give --server HOST:PORT or "
                             "--config FILE");
  if (o->detour && strcmp(o->detour, "allow") != 0 &&
      strcmp(o->detour, "deny") != 0)
    return usage_error("--detour takes allow or deny, not '%s'", o->detour);
  if (o->quiet && o->verbose)
    return usage_error("%s", "--quiet and --verbose cannot go together");
  return 0;
}

/* Returns 0 to go on, EX_USAGE, or -1 when --help/--version answered. */
static int parse_args(send_opts *o, int argc, char **argv) {
  cli_parser p;
  cli_parser_init(&p, "send", send_options,
                  sizeof send_options / sizeof *send_options, argc, argv);
  const char *v;
  int id, rc;
  while ((id = cli_next(&p, &v)) != CLI_END) {
    if (id == CLI_HELP)
      return detour_cli_send_usage(), -1;
    if (id == CLI_VERSION)
      return cli_print_version(), -1;
    if (id == CLI_ERROR)
      return CLI_EXIT_USAGE;
    rc = id == CLI_ARG ? add_rcpt(o, v) : take_option(o, id, v);
    if (rc)
      return rc;
  }
  return check_opts(o);
}

/* ------------------------------------------------------------------------ */
/* Settings: the file, then the options                                      */

static int duration_opt(const char *name, const char *text, bool zero_ok,
                        detour_ms *out) {
  detour_ms ms;
  if (detour_parse_duration(text, &ms) != 0 || ms < 0 || (!zero_ok && ms == 0))
    return usage_error("%s takes a duration like 500ms, 3s or 3m, at most "
                       "720h (30 days), not '%s'",
                       name, text);
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
    detour_ms ms = 0;
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
    fprintf(stderr, "detour %s: %s\n", o->command ? o->command : "send", err);
    return EX_CONFIG;
  }
  rc = apply_opts(s, o);
  if (!rc && s->cfg.nservers == 0) {
    fprintf(stderr,
            "detour %s: %s: no servers configured (key "
            "'servers', or --server HOST:PORT)\n",
            o->command ? o->command : "send", o->config);
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

/* ------------------------------------------------------------------------ */
/* The send log as a table for people (SPEC Fig. 6 plus a detail)           */

#define W_TIME 14   /* "11-28 15:51:39" */
#define W_RESULT 12 /* "config error" */
#define W_RCPT_MAX 28
#define W_SERVER_MAX 26
#define W_DETAIL_MIN 16
#define TABLE_WIDTH 80

/* The columns' widths from what the table will show: the recipients and
 * the servers are known before the first row. */
static void table_widths(send_run *r, const send_opts *o,
                         const detour_config *cfg) {
  r->w_rcpt = (int)strlen("recipient");
  for (size_t i = 0; i < o->nrcpts; i++)
    if ((int)strlen(o->rcpts[i]) > r->w_rcpt)
      r->w_rcpt = (int)strlen(o->rcpts[i]);
  r->w_server = (int)strlen("server");
  for (size_t i = 0; i < cfg->nservers; i++) {
    char label[300];
    int n = snprintf(label, sizeof label,
                     strchr(cfg->servers[i].host, ':') ? "[%s]:%u" : "%s:%u",
                     cfg->servers[i].host, (unsigned)cfg->servers[i].port);
    if (n > r->w_server)
      r->w_server = n;
  }
  if (r->w_rcpt > W_RCPT_MAX)
    r->w_rcpt = W_RCPT_MAX;
  if (r->w_server > W_SERVER_MAX)
    r->w_server = W_SERVER_MAX;
  /* Leave the detail its minimum within 80 columns: long addresses give
   * way first (cut with '~'), down to 12 columns each. */
  int fixed = W_TIME + 2 + 2 + 2 + W_RESULT + 2 + W_DETAIL_MIN;
  while (fixed + r->w_rcpt + r->w_server > TABLE_WIDTH &&
         (r->w_rcpt > 12 || r->w_server > 12)) {
    if (r->w_rcpt >= r->w_server && r->w_rcpt > 12)
      r->w_rcpt--;
    else
      r->w_server--;
  }
}

static int detail_width(const send_run *r) {
  int used = W_TIME + 2 + r->w_rcpt + 2 + r->w_server + 2 + W_RESULT + 2;
  return TABLE_WIDTH - used > W_DETAIL_MIN ? TABLE_WIDTH - used : W_DETAIL_MIN;
}

/* s cut to width w with "~" marking the cut, into buf. */
static const char *fit(const char *s, int w, char *buf, size_t len) {
  if ((int)strlen(s) <= w)
    return s;
  snprintf(buf, len, "%.*s~", w > 1 ? w - 1 : 0, s);
  return buf;
}

/* A condition name in words. */
static const char *condition_words(const char *cond, const char *why) {
  static const struct {
    const char *cond, *words;
  } map[] = {
      {"connect_refused", "refused"},
      {"connect_timeout", "timeout"},
      {"unreachable", "unreachable"},
      {"dns", "no such host"},
      {"timeout", "timeout"},
      {"malformed", "malformed reply"},
      {"tls", "TLS"},
  };
  if (strcmp(cond, "closed") == 0)
    return why && strstr(why, "reset") ? "reset" : "closed";
  for (size_t i = 0; i < sizeof map / sizeof *map; i++)
    if (strcmp(cond, map[i].cond) == 0)
      return map[i].words;
  return cond;
}

/* The short result: "TCP error", "SMTP OK", "SMTP 550", "SMTP error"
 * (no reply: the detail says why), "config error", "skipped", "race". */
static void short_result(const detour_log_row *row, char *buf, size_t len) {
  const char *res = row->result ? row->result : "";
  if (row->kind == DETOUR_LOG_WARNING)
    snprintf(buf, len, "config error");
  else if (row->kind == DETOUR_LOG_BREAKER)
    snprintf(buf, len, "skipped");
  else if (row->kind == DETOUR_LOG_RACE)
    snprintf(buf, len, "race");
  else if (strncmp(res, "SMTP ", 5) == 0 && res[5] >= '1' && res[5] <= '5')
    snprintf(buf, len, "SMTP %.3s", res + 5);
  else if (strncmp(res, "SMTP ", 5) == 0 && strcmp(res, "SMTP OK") != 0)
    snprintf(buf, len, "SMTP error");
  else
    snprintf(buf, len, "%s", res);
}

/* Why, in a few words: "refused", "no such host", "RCPT 5.1.1 no such
 * user", "DATA reset", "limit reached". From the row's detail, which is
 * "cond: why" for a connect and "stage: 550 5.1.1 text" or "stage: cond:
 * why" in a session. */
static void short_detail(const detour_log_row *row, char *buf, size_t len) {
  const char *d = row->detail ? row->detail : "";
  buf[0] = '\0';
  if (row->kind == DETOUR_LOG_WARNING) {
    snprintf(buf, len, "limit reached");
    return;
  }
  if (row->kind == DETOUR_LOG_BREAKER) {
    snprintf(buf, len, "held down by the breaker");
    return;
  }
  if (row->kind == DETOUR_LOG_RACE) {
    snprintf(buf, len, "%s", row->result ? row->result : "");
    return;
  }
  char head[64] = "";
  const char *colon = strchr(d, ':');
  if (!colon) {
    snprintf(buf, len, "%s", d);
    return;
  }
  snprintf(head, sizeof head, "%.*s", (int)(colon - d), d);
  const char *rest = colon + 1;
  while (*rest == ' ')
    rest++;
  if (row->kind == DETOUR_LOG_CONNECT) {
    snprintf(buf, len, "%s", condition_words(head, rest));
    return;
  }
  if (row->cls == DETOUR_CLASS_NONE) { /* success: the server's words */
    snprintf(buf, len, "%s", rest);
    return;
  }
  /* a session row: head is the stage */
  char stage[32];
  size_t i = 0;
  for (; head[i] && i < sizeof stage - 1; i++)
    stage[i] =
        (char)(head[i] >= 'a' && head[i] <= 'z' ? head[i] - 32 : head[i]);
  stage[i] = '\0';
  if (rest[0] >= '1' && rest[0] <= '5' && strlen(rest) >= 3) {
    const char *text = rest + 3; /* the code is in the result column */
    while (*text == ' ')
      text++;
    /* the enhanced code too (-v shows it): the words say more here */
    if (text[0] >= '2' && text[0] <= '5' && text[1] == '.') {
      const char *sp = strchr(text, ' ');
      text = sp ? sp + 1 : text + strlen(text);
    }
    snprintf(buf, len, "%s %s", stage, text);
    return;
  }
  char cond[32];
  const char *c2 = strchr(rest, ':');
  snprintf(cond, sizeof cond, "%.*s", c2 ? (int)(c2 - rest) : (int)strlen(rest),
           rest);
  snprintf(buf, len, "%s %s", stage, condition_words(cond, c2 ? c2 + 1 : ""));
}

/* Control characters (a multi-line reply) shown as spaces. */
static void clean(char *s) {
  for (; *s; s++)
    if ((unsigned char)*s < 0x20 || *s == 0x7f)
      *s = ' ';
}

static void table_header(send_run *r) {
  fprintf(r->err, "%-*s  %-*s  %-*s  %-*s  %s\n", W_TIME, "time (UTC)",
          r->w_rcpt, "recipient", r->w_server, "server", W_RESULT, "result",
          "detail");
}

static void table_row(send_run *r, const detour_log_row *row) {
  char when[48] = "?", res[64], det[512], b1[64], b2[64], b3[64];
  if (detour_format_time(row->time, when, sizeof when) >= 19)
    when[19] = '\0'; /* "2026-11-28T15:51:39" */
  const char *t = strlen(when) >= 19 ? when + 5 : when;
  char tbuf[32];
  snprintf(tbuf, sizeof tbuf, "%s", t);
  char *tee = strchr(tbuf, 'T');
  if (tee)
    *tee = ' ';
  short_result(row, res, sizeof res);
  short_detail(row, det, sizeof det);
  clean(det);
  char detcut[512];
  fprintf(r->err, "%-*s  %-*s  %-*s  %-*s  %s\n", W_TIME, tbuf, r->w_rcpt,
          fit(row->recipient ? row->recipient : "-", r->w_rcpt, b1, sizeof b1),
          r->w_server,
          fit(row->server ? row->server : "-", r->w_server, b2, sizeof b2),
          W_RESULT, fit(res, W_RESULT, b3, sizeof b3),
          fit(det, detail_width(r), detcut, sizeof detcut));
}

static void on_log(void *arg, const detour_log_row *row) {
  send_run *r = arg;
  if (r->verbose) {
    /* every column, the full detail: the library's table */
    char line[2048];
    if (!r->header_done)
      fprintf(r->err, "%s  detail\n", detour_log_table_header());
    detour_log_format_table(row, line, sizeof line); /* truncated is fine */
    char det[1024];
    snprintf(det, sizeof det, "%s", row->detail ? row->detail : "");
    clean(det);
    fprintf(r->err, "%s  %s\n", line, det[0] ? det : "-");
  } else {
    if (!r->header_done)
      table_header(r);
    table_row(r, row);
  }
  r->header_done = true;
  if (r->log)
    write_json(r, row);
}

static void on_warn(void *arg, const char *text) {
  send_run *r = arg;
  fprintf(r->err, "detour: warning: %s\n", text);
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
  fprintf(r->out, "%s: %s", *recipient ? recipient : "<>",
          detour_rcpt_outcome_name(outcome));
  const char *via = server >= 0
                        ? detour_engine_server_label(r->engine, (size_t)server)
                        : NULL;
  if (via)
    fprintf(r->out, " via %s", via);
  if (detail && *detail)
    fprintf(r->out, " (%s)", detail);
  fprintf(r->out, "\n");
  fflush(r->out);
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

/* The table goes to stderr and the outcome lines to stdout, or, with
 * --quiet, into memory until we know whether anything failed. */
static int open_outputs(send_run *r, const send_opts *o) {
  r->quiet = o->quiet;
  r->verbose = o->verbose;
  r->err = stderr;
  r->out = stdout;
  if (!o->quiet)
    return 0;
  r->err = open_memstream(&r->held_err, &r->held_err_len);
  r->out = open_memstream(&r->held_out, &r->held_out_len);
  if (!r->err || !r->out) {
    fprintf(stderr, "detour send: out of memory\n");
    return EX_OSERR;
  }
  return 0;
}

/* --quiet: a failure shows what was held back; a success shows nothing. */
static void close_outputs(send_run *r, bool failed) {
  if (!r->quiet)
    return;
  fclose(r->err);
  fclose(r->out);
  if (failed) {
    fwrite(r->held_err, 1, r->held_err_len, stderr);
    fwrite(r->held_out, 1, r->held_out_len, stdout);
    fflush(stdout);
  }
  free(r->held_err);
  free(r->held_out);
}

/* The body comes from a source (the spool) or, when source is NULL, from
 * memory (copied by the engine). */
static int send_message(const detour_settings *s, const send_opts *o,
                        const detour_body_source *source, const char *body,
                        size_t len) {
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
                        .body = body,
                        .body_len = len,
                        .source = source};
    if (o->detour)
      m.override = strcmp(o->detour, "allow") == 0 ? DETOUR_OVERRIDE_ALLOW
                                                   : DETOUR_OVERRIDE_DENY;
    r->nrcpts = o->nrcpts;
    table_widths(r, o, &s->cfg);
    rc = open_outputs(r, o);
    if (rc == 0) {
      watch_signals(r);
      rc = run(r, s, &m);
      close_outputs(r, rc != 0);
    }
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
    rc = send_message(&s, &o, &body, NULL, 0);
  }
  detour_settings_free(&s);
done:
  cli_spool_free(&spool);
  free(o.rcpts);
  return rc;
}

/* sendmail mode rewrites headers (-t, Bcc), so it reads the message into
 * memory: read(2), so one Ctrl-D on a terminal ends it. At most
 * SPOOL_MESSAGE_MAX bytes. */
int detour_cli_read_stdin(char **out, size_t *outlen) {
  size_t cap = 64 * 1024, len = 0;
  char *buf = malloc(cap);
  if (!buf)
    return fprintf(stderr, "detour: out of memory\n"), EX_OSERR;
  for (;;) {
    if (len == cap) {
      if (cap > SPOOL_MESSAGE_MAX) {
        free(buf);
        fprintf(stderr, "detour: the message is larger than 64 MiB: "
                        "refused, nothing was sent\n");
        return EX_DATAERR;
      }
      size_t ncap =
          cap * 2 > SPOOL_MESSAGE_MAX + 1 ? SPOOL_MESSAGE_MAX + 1 : cap * 2;
      char *nbuf = realloc(buf, ncap);
      if (!nbuf) {
        free(buf);
        return fprintf(stderr, "detour: out of memory\n"), EX_OSERR;
      }
      buf = nbuf, cap = ncap;
    }
    ssize_t n = read(STDIN_FILENO, buf + len, cap - len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      int e = errno;
      free(buf);
      fprintf(stderr, "detour: cannot read the message from stdin: %s\n",
              strerror(e));
      return EX_IOERR;
    }
    if (n == 0)
      break;
    len += (size_t)n;
  }
  *out = buf, *outlen = len;
  return 0;
}

int detour_cli_deliver(const char *config, const char *from, const char **rcpts,
                       size_t nrcpts, const char *body, size_t len,
                       bool quiet) {
  send_opts o;
  memset(&o, 0, sizeof o);
  o.config = config;
  o.from = from;
  o.rcpts = rcpts;
  o.nrcpts = nrcpts;
  o.quiet = quiet;
  o.command = "sendmail";
  detour_settings s;
  int rc = load_settings(&s, &o);
  if (rc)
    return rc;
  signal(SIGPIPE, SIG_IGN);
  rc = send_message(&s, &o, NULL, body, len);
  detour_settings_free(&s);
  return rc;
}

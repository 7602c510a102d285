/*
 * sendmail.c - `detour sendmail` (and the binary called as `sendmail`):
 * the sendmail command line that cron, PHP's mail(), git send-email and
 * many scripts use, delivered through the failover engine.
 *
 * What it takes, as Postfix's and sendmail's compatibility interface do:
 *   -t         recipients from the To, Cc and Bcc headers (added to those
 *              given as arguments); the Bcc headers are removed
 *   -i, -oi    a line with a single "." does not end the message
 *   -f ADDR    envelope sender (-r is the old name); "<>" the null sender
 *   -F NAME    the full name in a From header we add when there is none
 *   -bm        deliver (the default mode); -bi and -I do nothing (no alias
 *              database)
 *   -C FILE    configuration file
 *   -o..., -N, -B, -L, -U, -n, -m, -G, -v: accepted, ignored, as by Postfix
 * The servers come from -C, $DETOUR_CONFIG or /etc/detour.yaml. There is
 * no queue: a message not delivered after every allowed retry exits 75
 * (EX_TEMPFAIL) and the caller keeps it, as with any sendmail whose queue
 * is unavailable. Silent on success; on failure the send log and the
 * recipients' outcomes are printed.
 */
#include "sendmail.h"

#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "detour/detour.h"
#include "opts.h"
#include "send.h"

#define DEFAULT_CONFIG "/etc/detour.yaml"

typedef struct {
  bool from_headers; /* -t */
  bool ignore_dots;  /* -i, -oi */
  bool verbose;      /* -v: print the send log even on success */
  const char *from;
  const char *full_name;
  const char *config;
  const char **rcpts;
  size_t nrcpts;
} sendmail_opts;

static void usage(void) {
  printf(
      "Usage: sendmail [-t] [-i] [-f ADDR] [-F NAME] [-bm] [-C FILE]\n"
      "                [ADDR ...] < message\n"
      "       detour sendmail [same options]\n"
      "\n"
      "The sendmail command line, delivered through detour's failover\n"
      "engine (docs/rules.md). Install detour as (or link it to)\n"
      "/usr/sbin/sendmail and cron, PHP and git send-email use it.\n"
      "\nOptions:\n"
      "  -t            recipients from the To, Cc and Bcc headers too;\n"
      "                the Bcc headers are removed from the message\n"
      "  -i, -oi       a line with a single '.' does not end the message\n"
      "  -f ADDR       envelope sender ('<>' for the null sender);\n"
      "                default: your login name at this host\n"
      "  -r ADDR       the same as -f\n"
      "  -F NAME       full name for the From header added when the\n"
      "                message has none\n"
      "  -bm           deliver (the default); -bi and -I do nothing\n"
      "  -C FILE       configuration file (default: $DETOUR_CONFIG, else\n"
      "                " DEFAULT_CONFIG ")\n"
      "  -v            print the send log even on success\n"
      "  -o OPT, -N DSN, -B TYPE, -L TAG, -U, -n, -m, -G\n"
      "                accepted and ignored\n"
      "  -h, --help    this help\n"
      "      --version the version\n"
      "\n"
      "The configuration is docs/config.md's YAML: the servers in priority\n"
      "order, retry, timeouts, the detour table. A From header (with -F's\n"
      "name) and a Date header are added when missing. There is no queue:\n"
      "exit 75 means not delivered yet, and the caller keeps the message.\n");
  static const int codes[] = {0, 64, 65, 67, 71, 74, 75, 78, -1};
  cli_print_exit_codes(stdout, codes, NULL);
}

enum {
  OPT_T = 1,
  OPT_I,
  OPT_O,
  OPT_F,
  OPT_R,
  OPT_FULLNAME,
  OPT_B,
  OPT_C,
  OPT_V,
  OPT_IGNORED_VALUE,
  OPT_IGNORED_FLAG,
  OPT_INIT_ALIASES,
};

static const cli_opt sendmail_options[] = {
    {OPT_T, 't', NULL, NULL},
    {OPT_I, 'i', NULL, NULL},
    {OPT_O, 'o', NULL, "OPT"},
    {OPT_F, 'f', NULL, "ADDR"},
    {OPT_R, 'r', NULL, "ADDR"},
    {OPT_FULLNAME, 'F', NULL, "NAME"},
    {OPT_B, 'b', NULL, "MODE"},
    {OPT_C, 'C', NULL, "FILE"},
    {OPT_V, 'v', NULL, NULL},
    {OPT_IGNORED_VALUE, 'N', NULL, "DSN"},
    {OPT_IGNORED_VALUE, 'B', NULL, "TYPE"},
    {OPT_IGNORED_VALUE, 'L', NULL, "TAG"},
    {OPT_IGNORED_FLAG, 'U', NULL, NULL},
    {OPT_IGNORED_FLAG, 'n', NULL, NULL},
    {OPT_IGNORED_FLAG, 'm', NULL, NULL},
    {OPT_IGNORED_FLAG, 'G', NULL, NULL},
    {OPT_INIT_ALIASES, 'I', NULL, NULL},
};

static int add_rcpt(sendmail_opts *o, const char *a) {
  if (o->nrcpts == DETOUR_MAX_RECIPIENTS)
    return cli_usage_error("sendmail", "too many recipients (at most %d)",
                           DETOUR_MAX_RECIPIENTS);
  o->rcpts[o->nrcpts++] = a;
  return 0;
}

/* -b MODE: only delivery (m) runs; i (newaliases) has nothing to do. */
static int take_mode(const char *mode) {
  if (strcmp(mode, "m") == 0)
    return 0;
  if (strcmp(mode, "i") == 0)
    return -1;
  return cli_usage_error("sendmail",
                         "mode '-b%s' is not supported (only -bm, "
                         "and -bi which does nothing)",
                         mode);
}

/* 0 to go on, -1 when done (help, version, -bi), or an exit code. */
static int take_option(sendmail_opts *o, int id, const char *v) {
  switch (id) {
  case OPT_T:
    o->from_headers = true;
    return 0;
  case OPT_I:
    o->ignore_dots = true;
    return 0;
  case OPT_O:
    if (strcmp(v, "i") == 0)
      o->ignore_dots = true;
    return 0; /* other -oX: sendmail.cf settings, meaningless here */
  case OPT_F:
  case OPT_R:
    o->from = strcmp(v, "<>") == 0 ? "" : v;
    return 0;
  case OPT_FULLNAME:
    o->full_name = v;
    return 0;
  case OPT_B:
    return take_mode(v);
  case OPT_C:
    o->config = v;
    return 0;
  case OPT_V:
    o->verbose = true;
    return 0;
  case OPT_INIT_ALIASES:
    return -1;
  default:
    return 0; /* accepted and ignored */
  }
}

static int parse_args(sendmail_opts *o, int argc, char **argv) {
  cli_parser p;
  cli_parser_init(&p, "sendmail", sendmail_options,
                  sizeof sendmail_options / sizeof *sendmail_options, argc,
                  argv);
  const char *v;
  int id, rc;
  while ((id = cli_next(&p, &v)) != CLI_END) {
    if (id == CLI_HELP)
      return usage(), -1;
    if (id == CLI_VERSION)
      return cli_print_version(), -1;
    if (id == CLI_ERROR)
      return CLI_EXIT_USAGE;
    rc = id == CLI_ARG ? add_rcpt(o, v) : take_option(o, id, v);
    if (rc)
      return rc;
  }
  return 0;
}

/* ------------------------------------------------------------------------ */
/* The message                                                               */

/* Without -i a line holding a single "." ends the message (sendmail's
 * default): cut there. */
static size_t cut_at_dot(const char *b, size_t len) {
  for (size_t i = 0; i < len;) {
    size_t end = i;
    while (end < len && b[end] != '\n')
      end++;
    size_t n = end - i;
    if (n > 0 && b[end - 1] == '\r')
      n--;
    if (n == 1 && b[i] == '.')
      return i;
    i = end + 1;
  }
  return len;
}

/* The header ends at the first empty line; its length (up to and
 * including that line's break is not counted), or len when there is
 * none. */
static size_t header_length(const char *b, size_t len) {
  for (size_t i = 0; i < len; i++) {
    if (b[i] == '\n' && (i == 0 || b[i - 1] == '\n'))
      return i;
    if (b[i] == '\r' && i + 1 < len && b[i + 1] == '\n' &&
        (i == 0 || b[i - 1] == '\n'))
      return i;
  }
  return len;
}

/* One header field (its first line and its continuation lines) at b[i]:
 * its length. */
static size_t field_length(const char *b, size_t i, size_t hlen) {
  size_t j = i;
  for (;;) {
    while (j < hlen && b[j] != '\n')
      j++;
    if (j < hlen)
      j++; /* the '\n' */
    if (j >= hlen || (b[j] != ' ' && b[j] != '\t'))
      return j - i;
  }
}

/* Whether the field at f is "name:" (case-insensitive, spaces allowed
 * before the colon). */
static bool field_is(const char *f, size_t n, const char *name) {
  size_t k = strlen(name);
  if (n <= k || strncasecmp(f, name, k) != 0)
    return false;
  while (k < n && (f[k] == ' ' || f[k] == '\t'))
    k++;
  return k < n && f[k] == ':';
}

/* Keep an address (trimmed) from an address-list piece p[0..n). */
static int keep_address(sendmail_opts *o, const char *p, size_t n,
                        char **store) {
  while (n && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
    p++, n--;
  while (n && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\r' ||
               p[n - 1] == '\n'))
    n--;
  if (n == 0)
    return 0;
  char *a = strndup(p, n);
  if (!a)
    return CLI_EXIT_OSERR;
  *store = a;
  return add_rcpt(o, a);
}

/* The addresses of an RFC 5322 address list ("A <a@x>, b@y (Bob),
 * group: c@z;"): each mailbox's addr-spec. Quoted strings and comments
 * are skipped; an angle-addr wins over the text around it. */
static int parse_address_list(sendmail_opts *o, const char *v, size_t n,
                              char ***owned, size_t *nowned) {
  char piece[1024];
  size_t len = 0;
  bool quoted = false, angle = false, got_angle = false;
  int depth = 0;
  for (size_t i = 0; i <= n; i++) {
    char c = i < n ? v[i] : ',';
    if (quoted) {
      if (c == '\\' && i + 1 < n)
        i++;
      else if (c == '"')
        quoted = false;
      continue;
    }
    if (depth > 0) {
      depth += c == '(' ? 1 : c == ')' ? -1 : 0;
      continue;
    }
    if (c == '(') {
      depth = 1;
    } else if (c == '"' && !angle) {
      quoted = true;
    } else if (c == '<') {
      angle = got_angle = true;
      len = 0; /* the display name before it is not the address */
    } else if (c == '>') {
      angle = false;
    } else if (c == ':' && !angle) {
      len = 0; /* a group's name */
    } else if ((c == ',' || c == ';') && !angle) {
      if (len) {
        char **grown = realloc(*owned, (*nowned + 1) * sizeof *grown);
        if (!grown)
          return CLI_EXIT_OSERR;
        *owned = grown;
        grown[*nowned] = NULL;
        int rc = keep_address(o, piece, len, &grown[*nowned]);
        if (grown[*nowned])
          (*nowned)++;
        if (rc)
          return rc;
      }
      len = 0;
      got_angle = false;
    } else if (!got_angle || angle) {
      if (len < sizeof piece - 1)
        piece[len++] = c;
    }
  }
  return 0;
}

/* -t: take the recipients of To, Cc and Bcc, and drop the Bcc fields
 * from the message (in place). */
static int recipients_from_headers(sendmail_opts *o, char *b, size_t *len,
                                   char ***owned, size_t *nowned) {
  size_t hlen = header_length(b, *len);
  for (size_t i = 0; i < hlen;) {
    size_t n = field_length(b, i, hlen);
    bool bcc = field_is(b + i, n, "bcc");
    if (bcc || field_is(b + i, n, "to") || field_is(b + i, n, "cc")) {
      const char *colon = memchr(b + i, ':', n);
      size_t off = (size_t)(colon + 1 - (b + i));
      int rc = parse_address_list(o, colon + 1, n - off, owned, nowned);
      if (rc)
        return rc;
    }
    if (bcc) {
      memmove(b + i, b + i + n, *len - i - n);
      *len -= n;
      hlen -= n;
      continue;
    }
    i += n;
  }
  return 0;
}

static bool has_field(const char *b, size_t len, const char *name) {
  size_t hlen = header_length(b, len);
  for (size_t i = 0; i < hlen;) {
    size_t n = field_length(b, i, hlen);
    if (field_is(b + i, n, name))
      return true;
    i += n;
  }
  return false;
}

/* "login@host" for the default sender. */
static void default_sender(char *buf, size_t len) {
  const char *user = getenv("USER");
  struct passwd *pw = getpwuid(getuid());
  if (pw && pw->pw_name)
    user = pw->pw_name;
  char host[256] = "localhost";
  gethostname(host, sizeof host - 1);
  snprintf(buf, len, "%s@%s", user ? user : "root", host);
}

/* The message with a From and a Date field in front when it has none, as
 * sendmail adds them. Returns a malloc'ed copy, or NULL (out of memory). */
static char *complete_header(const sendmail_opts *o, const char *from,
                             const char *b, size_t len, size_t *outlen) {
  char add[1024] = "";
  size_t n = 0;
  if (!has_field(b, len, "from")) {
    if (o->full_name)
      n += (size_t)snprintf(add + n, sizeof add - n, "From: \"%s\" <%s>\n",
                            o->full_name, from);
    else
      n += (size_t)snprintf(add + n, sizeof add - n, "From: %s\n", from);
  }
  if (!has_field(b, len, "date") && n < sizeof add) {
    char date[64];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S %z", &tm);
    n += (size_t)snprintf(add + n, sizeof add - n, "Date: %s\n", date);
  }
  if (n >= sizeof add)
    n = sizeof add - 1;
  char *out = malloc(n + len + 1);
  if (!out)
    return NULL;
  memcpy(out, add, n);
  memcpy(out + n, b, len);
  out[n + len] = '\0';
  *outlen = n + len;
  return out;
}

/* ------------------------------------------------------------------------ */
/* The command                                                               */

static const char *config_path(const sendmail_opts *o) {
  if (o->config)
    return o->config;
  const char *env = getenv("DETOUR_CONFIG");
  return env && *env ? env : DEFAULT_CONFIG;
}

static int deliver(sendmail_opts *o, char *body, size_t len) {
  char sender[512];
  if (!o->from)
    default_sender(sender, sizeof sender);
  const char *from = o->from ? o->from : sender;
  size_t full_len;
  char header_from[512];
  if (*from)
    snprintf(header_from, sizeof header_from, "%s", from);
  else
    default_sender(header_from, sizeof header_from);
  char *full = complete_header(o, header_from, body, len, &full_len);
  if (!full) {
    fprintf(stderr, "detour sendmail: out of memory\n");
    return CLI_EXIT_OSERR;
  }
  int rc = detour_cli_deliver(config_path(o), from, o->rcpts, o->nrcpts, full,
                              full_len, !o->verbose);
  free(full);
  return rc;
}

int detour_cli_sendmail(int argc, char **argv) {
  sendmail_opts o;
  memset(&o, 0, sizeof o);
  char **owned = NULL, *body = NULL;
  size_t nowned = 0, len = 0;
  o.rcpts = calloc(DETOUR_MAX_RECIPIENTS, sizeof *o.rcpts);
  if (!o.rcpts)
    return fprintf(stderr, "detour sendmail: out of memory\n"), CLI_EXIT_OSERR;
  int rc = parse_args(&o, argc, argv);
  if (rc < 0) {
    rc = 0; /* help, version, -bi */
    goto done;
  }
  if (rc)
    goto done;
  const char *cfg = config_path(&o);
  if (access(cfg, R_OK) != 0) {
    fprintf(stderr,
            "detour sendmail: cannot read the configuration %s (give -C "
            "FILE or set DETOUR_CONFIG; format: docs/config.md)\n",
            cfg);
    rc = CLI_EXIT_CONFIG;
    goto done;
  }
  if ((rc = detour_cli_read_stdin(&body, &len)) != 0)
    goto done;
  if (!o.ignore_dots)
    len = cut_at_dot(body, len);
  if (o.from_headers &&
      (rc = recipients_from_headers(&o, body, &len, &owned, &nowned)) != 0)
    goto done;
  if (o.nrcpts == 0) {
    rc = cli_usage_error("sendmail", "%s",
                         o.from_headers ? "no recipient in To, Cc or Bcc, "
                                          "and none given"
                                        : "no recipient (give addresses, "
                                          "or -t to read the headers)");
    goto done;
  }
  rc = deliver(&o, body, len);
done:
  for (size_t i = 0; i < nowned; i++)
    free(owned[i]);
  free(owned);
  free(body);
  free(o.rcpts);
  return rc;
}

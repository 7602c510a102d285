/*
 * serve.c - `detour serve`: the fake SMTP servers of a script file, run
 * standalone on a real clock so that any client (a device, Postfix, swaks)
 * can be tested from outside. Without a script it is a sink that accepts
 * everything (Postfix's smtp-sink), and received messages can be kept as
 * .eml files or in a Maildir.
 *
 * It prints one line per event, streams the record as JSON Lines, and
 * stops cleanly on SIGINT/SIGTERM: servers stopped, sessions closed, the
 * record flushed, exit 0. Only --listen may put a server on a non-loopback
 * address: a script alone never opens the bench to the network.
 */
#include "serve.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "detour/detour.h"
#include "detour/detour_uv.h"
#include "detour/fake.h"
#include "opts.h"

#define MAX_LISTEN 64

typedef struct {
  const char *script;
  char listen[MAX_LISTEN][300]; /* normalised: "ip:port" */
  const char *listen_arg[MAX_LISTEN];
  size_t nlisten;
  const char *record;
  const char *maildir;
  const char *eml_dir;
  bool quiet;
  const char *tls_dir; /* the run-local test CA's directory */
  const char *tls_host[MAX_LISTEN];
  size_t ntls_host;
} serve_opts;

typedef struct {
  uv_loop_t loop;
  detour_clock *clock;
  detour_fake_server **srv;
  size_t nsrv;
  uv_signal_t sigint, sigterm;
  detour_fake_sink *record; /* one write per event: never a cut line */
  bool quiet;
  const char *maildir;
  const char *eml_dir;
  unsigned long saved; /* messages written as files, for unique names */
  bool save_failed;
} serve_run;

/* With no --script: one server that accepts everything (like Postfix's
 * smtp-sink), on 127.0.0.1:2525 unless --listen says otherwise. */
static const char sink_script[] = "name: sink\n"
                                  "listen: 127.0.0.1:2525\n";

void detour_cli_serve_usage(void) {
  printf(
      "Usage: detour serve [--script FILE] [--listen ADDR ...]\n"
      "                    [--record FILE] [--maildir DIR] [--eml-dir DIR]\n"
      "                    [--quiet] [--tls-dir DIR [--tls-host NAME ...]]\n"
      "\nRun the fake SMTP servers of FILE (fakeservers/README.md) until\n"
      "SIGINT or SIGTERM. Without --script, one server that accepts every\n"
      "message (a sink, like Postfix's smtp-sink) on 127.0.0.1:2525.\n"
      "\nOptions:\n"
      "  -s, --script FILE    server scripts (YAML)\n"
      "  -l, --listen ADDR    replace the scripts' addresses: one per server,\n"
      "                       or copies of a single server; the only way to\n"
      "                       listen on a non-loopback address. ADDR is\n"
      "                       IP:PORT, HOST:PORT, [IPv6]:PORT, :PORT or PORT\n"
      "                       (the last two on 127.0.0.1)\n"
      "  -r, --record FILE    write every event as JSON Lines as it happens\n"
      "                       (bodies over 64 KiB: FILE.bodies/)\n"
      "      --maildir DIR    write each received message into the Maildir\n"
      "                       DIR (DIR/tmp, DIR/new, DIR/cur; created)\n"
      "      --eml-dir DIR    write each received message as DIR/N.eml\n"
      "  -q, --quiet          print only the 'listening' lines\n"
      "      --tls-dir DIR    certificates for the scripts' tls: a test CA\n"
      "                       made in DIR (0700, keys 0600) unless DIR/ca.pem\n"
      "                       exists; clients trust DIR/ca.pem\n"
      "      --tls-host NAME  a name (or IP) the certificates are for; the\n"
      "                       default is localhost and 127.0.0.1-16\n"
      "  -h, --help           this help\n"
      "      --version        the version\n"
      "\nOptions take their value as --opt VALUE or --opt=VALUE. A message\n"
      "file starts with Return-Path and one Delivered-To per recipient; a\n"
      "body cut at the script's max_body gets 'X-Detour-Truncated: yes'.\n");
  static const int codes[] = {0, 64, 66, 71, 73, 74, 78, -1};
  cli_print_exit_codes(stdout, codes,
                       "  (0 also after SIGINT or SIGTERM: a clean stop)\n");
}

enum {
  OPT_SCRIPT = 1,
  OPT_LISTEN,
  OPT_RECORD,
  OPT_MAILDIR,
  OPT_EML,
  OPT_QUIET,
  OPT_TLS_DIR,
  OPT_TLS_HOST
};

static const cli_opt serve_options[] = {
    {OPT_SCRIPT, 's', "script", "FILE"}, {OPT_LISTEN, 'l', "listen", "ADDR"},
    {OPT_RECORD, 'r', "record", "FILE"}, {OPT_MAILDIR, 0, "maildir", "DIR"},
    {OPT_EML, 0, "eml-dir", "DIR"},      {OPT_QUIET, 'q', "quiet", NULL},
    {OPT_TLS_DIR, 0, "tls-dir", "DIR"},  {OPT_TLS_HOST, 0, "tls-host", "NAME"},
};

static bool all_digits(const char *s) {
  if (!*s)
    return false;
  for (; *s; s++)
    if (*s < '0' || *s > '9')
      return false;
  return true;
}

/* HOST:PORT, [IPv6]:PORT: the host into host, the port (0..65535, 0 =
 * any free port) into *port. 0 or -1. */
static int split_host_port(const char *arg, char *host, size_t hlen,
                           long *port) {
  const char *colon = strrchr(arg, ':');
  if (!colon || colon == arg || !all_digits(colon + 1) || strlen(colon + 1) > 5)
    return -1;
  *port = strtol(colon + 1, NULL, 10);
  const char *h = arg;
  size_t n = (size_t)(colon - arg);
  if (arg[0] == '[') {
    if (n < 3 || arg[n - 1] != ']')
      return -1;
    h = arg + 1, n -= 2;
  } else if (memchr(arg, ':', n)) {
    return -1; /* an IPv6 address needs its brackets */
  }
  if (n >= hlen || *port > 65535)
    return -1;
  memcpy(host, h, n);
  host[n] = '\0';
  return 0;
}

/* A listen address as the fake server wants it, "ip:port": PORT and :PORT
 * mean 127.0.0.1:PORT; a host name is looked up (localhost gives
 * 127.0.0.1). 0, or -1 when it is not an address. */
static int normalise_listen(const char *arg, char *out, size_t len) {
  char host[256];
  long port;
  const char *a = arg[0] == ':' ? arg + 1 : arg;
  if (all_digits(a)) {
    port = strtol(a, NULL, 10);
    if (port > 65535 || strlen(a) > 5)
      return -1;
    snprintf(out, len, "127.0.0.1:%ld", port);
    return 0;
  }
  if (split_host_port(arg, host, sizeof host, &port) != 0)
    return -1; /* a port is required: no default 25 for a listener */
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_socktype = SOCK_STREAM;
  if (getaddrinfo(host, NULL, &hints, &res) != 0 || !res)
    return -1;
  char ip[INET6_ADDRSTRLEN] = "";
  bool v6 = res->ai_family == AF_INET6;
  if (v6)
    inet_ntop(AF_INET6, &((struct sockaddr_in6 *)res->ai_addr)->sin6_addr, ip,
              sizeof ip);
  else
    inet_ntop(AF_INET, &((struct sockaddr_in *)res->ai_addr)->sin_addr, ip,
              sizeof ip);
  freeaddrinfo(res);
  snprintf(out, len, v6 ? "[%s]:%ld" : "%s:%ld", ip, port);
  return 0;
}

static int take_option(serve_opts *o, int id, const char *v) {
  switch (id) {
  case OPT_SCRIPT:
    o->script = v;
    return 0;
  case OPT_RECORD:
    o->record = v;
    return 0;
  case OPT_MAILDIR:
    o->maildir = v;
    return 0;
  case OPT_EML:
    o->eml_dir = v;
    return 0;
  case OPT_QUIET:
    o->quiet = true;
    return 0;
  case OPT_TLS_DIR:
    o->tls_dir = v;
    return 0;
  case OPT_TLS_HOST:
    if (o->ntls_host == MAX_LISTEN)
      return cli_usage_error("serve", "at most %d --tls-host", MAX_LISTEN);
    o->tls_host[o->ntls_host++] = v;
    return 0;
  case OPT_LISTEN:
    if (o->nlisten == MAX_LISTEN)
      return cli_usage_error("serve", "at most %d --listen", MAX_LISTEN);
    if (normalise_listen(v, o->listen[o->nlisten], sizeof o->listen[0]) != 0)
      return cli_usage_error("serve",
                             "--listen takes IP:PORT, HOST:PORT, "
                             "[IPv6]:PORT, :PORT or PORT, not '%s'",
                             v);
    o->listen_arg[o->nlisten++] = v;
    return 0;
  default:
    return CLI_EXIT_USAGE;
  }
}

/* 0 to go on, 1 after --help/--version, or an exit code. */
static int parse_args(int argc, char **argv, serve_opts *o) {
  memset(o, 0, sizeof *o);
  cli_parser p;
  cli_parser_init(&p, "serve", serve_options,
                  sizeof serve_options / sizeof *serve_options, argc, argv);
  const char *v;
  int id;
  while ((id = cli_next(&p, &v)) != CLI_END) {
    if (id == CLI_HELP)
      return detour_cli_serve_usage(), 1;
    if (id == CLI_VERSION)
      return cli_print_version(), 1;
    if (id == CLI_ERROR)
      return CLI_EXIT_USAGE;
    if (id == CLI_ARG)
      return cli_usage_error("serve", "unexpected argument '%s'", v);
    int rc = take_option(o, id, v);
    if (rc)
      return rc;
  }
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Received messages as files                                                */

static int make_dir(const char *path) {
  if (mkdir(path, 0777) == 0 || errno == EEXIST)
    return 0;
  fprintf(stderr, "detour serve: cannot create %s: %s\n", path,
          strerror(errno));
  return CLI_EXIT_CANTCREAT;
}

/* DIR, and for a Maildir DIR/tmp, DIR/new, DIR/cur. */
static int prepare_dirs(const serve_opts *o) {
  int rc = 0;
  if (o->eml_dir)
    rc = make_dir(o->eml_dir);
  if (!rc && o->maildir) {
    char sub[4096];
    rc = make_dir(o->maildir);
    const char *subs[] = {"tmp", "new", "cur"};
    for (size_t i = 0; !rc && i < 3; i++) {
      snprintf(sub, sizeof sub, "%s/%s", o->maildir, subs[i]);
      rc = make_dir(sub);
    }
  }
  return rc;
}

/* The body into f: from memory, or from the spool file of a streaming
 * server (left at 0 for whoever reads it next). Returns its last byte. */
static char copy_body(FILE *f, const detour_fake_message *m) {
  if (m->body) {
    fwrite(m->body, 1, m->body_len, f);
    return m->body_len ? m->body[m->body_len - 1] : '\0';
  }
  char buf[65536], last = '\0';
  size_t left = m->body_len;
  if (!m->body_file || fseek(m->body_file, 0, SEEK_SET) != 0)
    return last;
  while (left > 0) {
    size_t n =
        fread(buf, 1, left < sizeof buf ? left : sizeof buf, m->body_file);
    if (n == 0)
      break;
    fwrite(buf, 1, n, f);
    last = buf[n - 1];
    left -= n;
  }
  fseek(m->body_file, 0, SEEK_SET);
  return last;
}

/* The envelope as a delivery agent writes it, then the body as received. */
static int write_message(FILE *f, const detour_fake_message *m) {
  fprintf(f, "Return-Path: <%s>\r\n", m->from);
  for (size_t i = 0; i < m->nrcpts; i++)
    fprintf(f, "Delivered-To: %s\r\n", m->rcpts[i]);
  if (m->truncated)
    fprintf(f, "X-Detour-Truncated: yes\r\n");
  char last = copy_body(f, m);
  if (m->body_len && last != '\n')
    fputs("\r\n", f); /* the line end before the final "." */
  return fclose(f);
}

/* Write to tmp (Maildir: DIR/tmp), then rename into place, so a reader
 * never sees half a message. */
static void save_to(serve_run *r, const char *dir, bool maildir,
                    const detour_fake_message *m) {
  char tmp[4096], final[4096], host[128] = "localhost";
  gethostname(host, sizeof host - 1);
  unsigned long n = r->saved;
  if (maildir) {
    snprintf(tmp, sizeof tmp, "%s/tmp/%lld.P%dQ%lu.%s", dir,
             (long long)time(NULL), (int)getpid(), n, host);
    snprintf(final, sizeof final, "%s/new/%lld.P%dQ%lu.%s", dir,
             (long long)time(NULL), (int)getpid(), n, host);
  } else {
    snprintf(tmp, sizeof tmp, "%s/.%d.%lu.eml.tmp", dir, (int)getpid(), n);
    snprintf(final, sizeof final, "%s/%d-%lu.eml", dir, (int)getpid(), n);
  }
  FILE *f = fopen(tmp, "wb");
  if (!f || write_message(f, m) != 0 || rename(tmp, final) != 0) {
    if (!r->save_failed)
      fprintf(stderr, "detour serve: cannot write %s: %s\n", final,
              strerror(errno));
    r->save_failed = true;
    unlink(tmp);
  }
}

static void save_message(serve_run *r, const detour_fake_message *m) {
  if (m->code < 200 || m->code > 299)
    return; /* only what the server said it took */
  r->saved++;
  if (r->maildir)
    save_to(r, r->maildir, true, m);
  if (r->eml_dir)
    save_to(r, r->eml_dir, false, m);
}

/* 10,000 sessions need more descriptors than the usual soft limit. */
static void raise_fd_limit(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

/* ------------------------------------------------------------------------ */
/* Printing events                                                           */

/* Bytes as printable text: \r dropped, other controls as \xNN. */
static void print_bytes(const char *p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)p[i];
    if (c == '\r')
      continue;
    if (c < 0x20 || c >= 0x7f)
      printf("\\x%02x", c);
    else
      putchar(c);
  }
}

/* A reply, one "S:" line per line. */
static void print_reply(const char *head, const char *p, size_t n) {
  size_t start = 0;
  for (size_t i = 0; i <= n; i++) {
    if (i == n || p[i] == '\n') {
      if (i > start || i < n) {
        printf("%s S: ", head);
        print_bytes(p + start, i - start);
        putchar('\n');
      }
      start = i + 1;
    }
  }
}

static void print_event(detour_fake_server *srv, const detour_fake_event *ev) {
  char t[40], head[160];
  detour_format_time(ev->time, t, sizeof t);
  snprintf(head, sizeof head, "%s %s#%u", t, detour_fake_server_name(srv),
           ev->conn);
  switch (ev->type) {
  case DETOUR_FAKE_EV_COMMAND:
    printf("%s C: ", head);
    print_bytes(ev->data, ev->len);
    putchar('\n');
    break;
  case DETOUR_FAKE_EV_REPLY:
    print_reply(head, ev->data, ev->len);
    break;
  case DETOUR_FAKE_EV_MESSAGE:
    printf("%s message from=<%s> rcpts=%zu size=%zu code=%d%s\n", head,
           ev->msg->from, ev->msg->nrcpts, ev->msg->body_len, ev->msg->code,
           ev->msg->complete ? "" : " (cut)");
    break;
  case DETOUR_FAKE_EV_CLOSE:
    printf("%s close by %s\n", head, detour_fake_closer_name(ev->closed_by));
    break;
  default:
    printf("%s %s %s\n", head, detour_fake_event_name(ev->type),
           ev->data ? ev->data : "");
  }
}

static void observe(void *arg, detour_fake_server *srv,
                    const detour_fake_event *ev) {
  serve_run *r = arg;
  if (!r->quiet)
    print_event(srv, ev);
  if (r->record)
    detour_fake_sink_write(r->record, ev, detour_fake_server_name(srv));
  if (ev->type == DETOUR_FAKE_EV_MESSAGE && ev->msg)
    save_message(r, ev->msg);
}

/* ------------------------------------------------------------------------ */
/* Servers                                                                   */

/* Pair scripts with --listen addresses: none, one each, or one script
 * copied per address. Returns 0 or an exit code. */
static int make_servers(serve_run *r, detour_fake_script **v, size_t n,
                        const serve_opts *o) {
  size_t count = o->nlisten > n ? o->nlisten : n;
  if (o->nlisten && o->nlisten != n && n != 1)
    return cli_usage_error("serve",
                           "%zu --listen for %zu servers (give one per "
                           "server, or a file with one server)",
                           o->nlisten, n);
  r->srv = calloc(count, sizeof *r->srv);
  if (!r->srv)
    return CLI_EXIT_OSERR;
  for (size_t i = 0; i < count; i++) {
    const detour_fake_script *s = v[n == 1 ? 0 : i];
    const char *listen = o->nlisten ? o->listen[i] : NULL;
    int err = 0;
    /* Public addresses only when the operator typed them. */
    r->srv[i] = detour_fake_server_new(
        r->clock, s, listen, listen ? DETOUR_FAKE_ALLOW_PUBLIC : 0, &err);
    if (!r->srv[i]) {
      fprintf(stderr, "detour serve: %s: cannot serve on %s: %s%s\n",
              detour_fake_script_name(s),
              listen ? o->listen_arg[i] : detour_fake_script_listen(s),
              detour_strerror(err),
              listen ? ""
                     : " (scripts may only name loopback addresses; "
                       "use --listen for others)");
      return err == DETOUR_ENOMEM ? CLI_EXIT_OSERR
             : listen             ? CLI_EXIT_USAGE
                                  : CLI_EXIT_CONFIG;
    }
    r->nsrv = i + 1;
    detour_fake_server_set_observer(r->srv[i], observe, r);
    /* A long run keeps nothing in memory: events go to the observer
     * (stdout, --record), bodies are spooled to disk while they arrive. */
    detour_fake_server_set_streaming(r->srv[i], NULL);
    if (o->tls_dir)
      detour_fake_server_set_tls_dir(r->srv[i], o->tls_dir);
  }
  return 0;
}

static int start_servers(serve_run *r) {
  char err[256];
  for (size_t i = 0; i < r->nsrv; i++) {
    if (detour_fake_server_start(r->srv[i], err, sizeof err) != 0) {
      fprintf(stderr, "detour serve: %s: %s\n",
              detour_fake_server_name(r->srv[i]), err);
      return CLI_EXIT_OSERR; /* address in use, not ours */
    }
    printf("listening %s %s\n", detour_fake_server_name(r->srv[i]),
           detour_fake_server_address(r->srv[i]));
  }
  fflush(stdout);
  return 0;
}

static void on_signal(uv_signal_t *h, int signum) {
  serve_run *r = h->data;
  if (!r->quiet)
    printf("signal %d: stopping\n", signum);
  for (size_t i = 0; i < r->nsrv; i++)
    detour_fake_server_stop(r->srv[i]);
  uv_close((uv_handle_t *)&r->sigint, NULL);
  uv_close((uv_handle_t *)&r->sigterm, NULL);
}

/* Free everything; the loop runs the pending closes. */
static void teardown(serve_run *r) {
  for (size_t i = 0; i < r->nsrv; i++)
    detour_fake_server_free(r->srv[i]);
  uv_run(&r->loop, UV_RUN_DEFAULT);
  if (r->clock)
    detour_clock_free(r->clock);
  uv_run(&r->loop, UV_RUN_DEFAULT);
  uv_loop_close(&r->loop);
  free(r->srv);
}

static int run(serve_run *r) {
  int rc = start_servers(r);
  if (rc != 0) {
    for (size_t i = 0; i < r->nsrv; i++)
      detour_fake_server_stop(r->srv[i]);
    return rc;
  }
  uv_signal_init(&r->loop, &r->sigint);
  uv_signal_init(&r->loop, &r->sigterm);
  r->sigint.data = r->sigterm.data = r;
  uv_signal_start(&r->sigint, on_signal, SIGINT);
  uv_signal_start(&r->sigterm, on_signal, SIGTERM);
  uv_run(&r->loop, UV_RUN_DEFAULT);
  return 0;
}

/* --tls-dir: make the test CA there unless one is there already (so a
 * client configured with DIR/ca.pem keeps working across restarts). */
static int prepare_tls(const serve_opts *o) {
  char dir[4096], err[512], ca[4200];
  if (!o->tls_dir)
    return 0;
  snprintf(ca, sizeof ca, "%s/ca.pem", o->tls_dir);
  if (access(ca, R_OK) != 0) {
    snprintf(dir, sizeof dir, "%s", o->tls_dir);
    if (detour_fake_ca_make(dir, sizeof dir, o->tls_host, o->ntls_host, err,
                            sizeof err) != 0) {
      fprintf(stderr, "detour serve: %s\n", err);
      return EX_CANTCREAT;
    }
  }
  printf("tls-ca %s\n", ca);
  return 0;
}

int detour_cli_serve(int argc, char **argv) {
  serve_opts o;
  serve_run r;
  char err[512];
  size_t n = 0;
  int rc = parse_args(argc, argv, &o);
  if (rc)
    return rc == 1 ? 0 : rc;
  setvbuf(stdout, NULL, _IOLBF, 0);
  if ((rc = prepare_tls(&o)) != 0)
    return rc;
  detour_fake_script **v =
      o.script ? detour_fake_load_file(o.script, &n, err, sizeof err)
               : detour_fake_load_string(sink_script, strlen(sink_script),
                                         "sink", &n, err, sizeof err);
  if (!v) {
    fprintf(stderr, "detour serve: %s\n", err);
    return o.script && access(o.script, F_OK) != 0 ? CLI_EXIT_NOINPUT
                                                   : CLI_EXIT_CONFIG;
  }
  memset(&r, 0, sizeof r);
  r.quiet = o.quiet;
  r.maildir = o.maildir;
  r.eml_dir = o.eml_dir;
  if ((rc = prepare_dirs(&o)) != 0) {
    detour_fake_scripts_free(v, n);
    return rc;
  }
  if (o.record && !(r.record = detour_fake_sink_open(o.record))) {
    fprintf(stderr, "detour serve: cannot create %s: %s\n", o.record,
            strerror(errno));
    detour_fake_scripts_free(v, n);
    return CLI_EXIT_CANTCREAT;
  }
  signal(SIGPIPE, SIG_IGN); /* a client that vanishes is an event, not death */
  raise_fd_limit();
  uv_loop_init(&r.loop);
  r.clock = detour_clock_new_real(&r.loop);
  rc = !r.clock ? CLI_EXIT_OSERR : make_servers(&r, v, n, &o);
  if (rc == 0)
    rc = run(&r);
  detour_fake_scripts_free(v, n);
  teardown(&r);
  if (r.record && detour_fake_sink_close(r.record) != 0)
    rc = rc ? rc : CLI_EXIT_IOERR;
  fflush(stdout);
  return rc;
}

/*
 * serve.c - `detour serve`: the fake SMTP servers of a script file, run
 * standalone on a real clock so that any client (a device, Postfix, swaks)
 * can be tested from outside.
 *
 * It prints one line per event, streams the record as JSON Lines, and
 * stops cleanly on SIGINT/SIGTERM: servers stopped, sessions closed, the
 * record flushed, exit 0. Only --listen may put a server on a non-loopback
 * address: a script alone never opens the bench to the network.
 */
#include "serve.h"

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sysexits.h>
#include <unistd.h>

#include <uv.h>

#include "detour/detour.h"
#include "detour/detour_uv.h"
#include "detour/fake.h"

#define MAX_LISTEN 64

typedef struct {
  const char *script;
  const char *listen[MAX_LISTEN];
  size_t nlisten;
  const char *record;
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
} serve_run;

void detour_cli_serve_usage(void) {
  printf(
      "Usage: detour serve --script FILE [--listen ADDR:PORT ...]\n"
      "                    [--record FILE] [--quiet]\n"
      "                    [--tls-dir DIR [--tls-host NAME ...]]\n"
      "\nRun the fake SMTP servers of FILE (fakeservers/README.md) until\n"
      "SIGINT or SIGTERM.\n"
      "\n  --script FILE       server scripts (YAML)\n"
      "  --listen ADDR:PORT  replace the scripts' addresses: one per server,\n"
      "                      or copies of a single server; the only way to\n"
      "                      listen on a non-loopback address\n"
      "  --record FILE       write every event as JSON Lines as it happens\n"
      "                      (bodies over 64 KiB: FILE.bodies/)\n"
      "  --quiet             print only the 'listening' lines\n"
      "  --tls-dir DIR       certificates for the scripts' tls: a test CA\n"
      "                      made in DIR (0700, keys 0600) unless DIR/ca.pem\n"
      "                      exists; clients trust DIR/ca.pem\n"
      "  --tls-host NAME     a name (or IP) the certificates are for; the\n"
      "                      default is localhost and 127.0.0.1-16\n");
}

static int parse_args(int argc, char **argv, serve_opts *o) {
  memset(o, 0, sizeof *o);
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    bool has_value = i + 1 < argc;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      detour_cli_serve_usage();
      return 1;
    } else if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
      o->quiet = true;
    } else if (strcmp(a, "--script") == 0 && has_value) {
      o->script = argv[++i];
    } else if (strcmp(a, "--tls-dir") == 0 && has_value) {
      o->tls_dir = argv[++i];
    } else if (strcmp(a, "--tls-host") == 0 && has_value &&
               o->ntls_host < MAX_LISTEN) {
      o->tls_host[o->ntls_host++] = argv[++i];
    } else if (strcmp(a, "--record") == 0 && has_value) {
      o->record = argv[++i];
    } else if (strcmp(a, "--listen") == 0 && has_value) {
      if (o->nlisten == MAX_LISTEN) {
        fprintf(stderr, "detour serve: at most %d --listen\n", MAX_LISTEN);
        return EX_USAGE;
      }
      o->listen[o->nlisten++] = argv[++i];
    } else {
      fprintf(stderr, "detour serve: unknown or incomplete option '%s'\n", a);
      return EX_USAGE;
    }
  }
  if (!o->script) {
    fprintf(stderr, "detour serve: --script FILE is required\n"
                    "Try 'detour serve --help'.\n");
    return EX_USAGE;
  }
  return 0;
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
}

/* ------------------------------------------------------------------------ */
/* Servers                                                                   */

/* Pair scripts with --listen addresses: none, one each, or one script
 * copied per address. Returns the servers' count, or 0 after an error. */
static size_t make_servers(serve_run *r, detour_fake_script **v, size_t n,
                           const serve_opts *o) {
  size_t count = o->nlisten > n ? o->nlisten : n;
  if (o->nlisten && o->nlisten != n && n != 1) {
    fprintf(stderr,
            "detour serve: %zu --listen for %zu servers (give one per "
            "server, or a file with one server)\n",
            o->nlisten, n);
    return 0;
  }
  r->srv = calloc(count, sizeof *r->srv);
  for (size_t i = 0; r->srv && i < count; i++) {
    const detour_fake_script *s = v[n == 1 ? 0 : i];
    const char *listen = o->nlisten ? o->listen[i] : NULL;
    int err = 0;
    /* Public addresses only when the operator typed them. */
    r->srv[i] = detour_fake_server_new(
        r->clock, s, listen, listen ? DETOUR_FAKE_ALLOW_PUBLIC : 0, &err);
    if (!r->srv[i]) {
      fprintf(stderr, "detour serve: %s: cannot serve on %s: %s%s\n",
              detour_fake_script_name(s),
              listen ? listen : detour_fake_script_listen(s),
              detour_strerror(err),
              listen ? ""
                     : " (scripts may only name loopback addresses; "
                       "use --listen for others)");
      return 0;
    }
    r->nsrv = i + 1;
    detour_fake_server_set_observer(r->srv[i], observe, r);
    /* A long run keeps nothing in memory: events go to the observer
     * (stdout, --record), bodies are spooled to disk while they arrive. */
    detour_fake_server_set_streaming(r->srv[i], NULL);
    if (o->tls_dir)
      detour_fake_server_set_tls_dir(r->srv[i], o->tls_dir);
  }
  return r->srv ? count : 0;
}

static int start_servers(serve_run *r) {
  char err[256];
  for (size_t i = 0; i < r->nsrv; i++) {
    if (detour_fake_server_start(r->srv[i], err, sizeof err) != 0) {
      fprintf(stderr, "detour serve: %s: %s\n",
              detour_fake_server_name(r->srv[i]), err);
      return EX_SOFTWARE;
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
  detour_fake_script **v = detour_fake_load_file(o.script, &n, err, sizeof err);
  if (!v) {
    fprintf(stderr, "detour serve: %s\n", err);
    return EX_DATAERR;
  }
  memset(&r, 0, sizeof r);
  r.quiet = o.quiet;
  if (o.record && !(r.record = detour_fake_sink_open(o.record))) {
    perror(o.record);
    detour_fake_scripts_free(v, n);
    return EX_CANTCREAT;
  }
  signal(SIGPIPE, SIG_IGN); /* a client that vanishes is an event, not death */
  raise_fd_limit();
  uv_loop_init(&r.loop);
  r.clock = detour_clock_new_real(&r.loop);
  rc = r.clock && make_servers(&r, v, n, &o) ? run(&r) : EX_SOFTWARE;
  detour_fake_scripts_free(v, n);
  teardown(&r);
  if (r.record && detour_fake_sink_close(r.record) != 0)
    rc = rc ? rc : EX_IOERR;
  fflush(stdout);
  return rc;
}

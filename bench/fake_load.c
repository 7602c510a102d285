/*
 * fake_load.c - load bench of one fake-server process: it holds many
 * concurrent sessions while a normal client keeps being served (its
 * session latency measured), then a long soak of short sessions shows
 * whether the server's descriptors or memory grow with the sessions it
 * has served.
 *
 *   fake_load [--hold 10000] [--soak 1000000] [--concurrency 64]
 *             [--samples 10] [--check] [--timeout 900]
 *
 * The server is libdetour-fake in a child process of its own (streaming
 * mode, record off, as `detour serve` runs), on 127.0.0.1; this process
 * is the load generator (libuv). Both raise RLIMIT_NOFILE to the hard
 * limit: --hold N needs N descriptors on each side. Soak clients bind to
 * 127.0.0.2..251 in turn so that the 4-tuples of a million connections do
 * not run out. The server's descriptors (/proc/PID/fd) and RSS
 * (/proc/PID/status) are sampled before the load, at the hold, and
 * --samples times during the soak.
 *
 * --check (the CTest): exit 1 unless every session succeeded, the normal
 * client's sessions took under 1 s each, and after the soak the server's
 * descriptors are back to where they started and its RSS grew by less
 * than 4 MiB over the second half of the soak. Loopback only; bounded by
 * --timeout.
 */
#include <dirent.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <uv.h>

#include "detour/fake.h"

#define RSS_SLACK_KB 4096
#define PROBE_MAX_MS 1000.0

/* Under ASan freed blocks sit in a quarantine instead of being reused, so
 * RSS grows with every allocation and says nothing about leaks (LSan does
 * that there): the RSS criterion of --check applies to plain builds. */
#if defined(__SANITIZE_ADDRESS__)
#define RSS_CHECKED 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RSS_CHECKED 0
#endif
#endif
#ifndef RSS_CHECKED
#define RSS_CHECKED 1
#endif

typedef struct {
  long hold, soak, concurrency, samples, timeout_s;
  bool check;
} opts;

/* ------------------------------------------------------------------------ */
/* The server process                                                        */

static void raise_fd_limit(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

static uv_signal_t server_sigterm;

static void server_on_term(uv_signal_t *h, int sig) {
  detour_fake_server *srv = h->data;
  detour_fake_server_stop(srv);
  uv_close((uv_handle_t *)h, NULL);
}

/* Runs in the child: one server, its port written to `out`. */
static int server_main(int out, long max_sessions) {
  uv_loop_t loop;
  char yaml[256], err[256];
  size_t n = 0;
  signal(SIGPIPE, SIG_IGN);
  raise_fd_limit();
  uv_loop_init(&loop);
  detour_clock *clock = detour_clock_new_real(&loop);
  snprintf(yaml, sizeof yaml,
           "name: load\nrecord: off\nlimits: { max_sessions: %ld }\n",
           max_sessions);
  detour_fake_script **v = detour_fake_load_string(
      yaml, strlen(yaml), "load.yaml", &n, err, sizeof err);
  int rc = 0;
  detour_fake_server *srv =
      v ? detour_fake_server_new(clock, v[0], NULL, 0, &rc) : NULL;
  if (!srv || detour_fake_server_set_streaming(srv, NULL) != 0 ||
      detour_fake_server_start(srv, err, sizeof err) != 0) {
    fprintf(stderr, "fake_load: server: %s\n", v ? err : "bad script");
    return 1;
  }
  detour_fake_scripts_free(v, n);
  uint16_t port = detour_fake_server_port(srv);
  if (write(out, &port, sizeof port) != sizeof port)
    return 1;
  close(out);
  uv_signal_init(&loop, &server_sigterm);
  server_sigterm.data = srv;
  uv_signal_start(&server_sigterm, server_on_term, SIGTERM);
  uv_run(&loop, UV_RUN_DEFAULT);
  detour_fake_server_free(srv);
  uv_run(&loop, UV_RUN_DEFAULT);
  detour_clock_free(clock);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  return 0;
}

static long proc_fds(pid_t pid) {
  char path[64];
  long n = 0;
  snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
  DIR *d = opendir(path);
  if (!d)
    return -1;
  for (struct dirent *e; (e = readdir(d));)
    n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

static long proc_rss_kb(pid_t pid) {
  char path[64], line[256];
  long v = -1;
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f)
    return -1;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "VmRSS:", 6) == 0)
      v = strtol(line + 6, NULL, 10);
  fclose(f);
  return v;
}

/* ------------------------------------------------------------------------ */
/* The clients                                                               */

typedef enum { HOLD, SOAK, PROBE } kind;
typedef enum { GREETING, EHLO, MAIL, RCPT, DATA, BODY, QUIT, DONE } step;

typedef struct bench bench;
typedef struct {
  uv_tcp_t tcp;
  uv_connect_t conn;
  bench *b;
  kind k;
  step st;
  bool message; /* this one sends a message */
  char line[512];
  size_t len;
  uint64_t t0;
} client;

struct bench {
  uv_loop_t *loop;
  opts o;
  pid_t server;
  struct sockaddr_in target;
  uv_timer_t deadline, probe_timer;
  bool timed_out;
  /* hold */
  long held_open, held_greeted, hold_failed;
  client **held;
  bool holding;
  /* soak */
  long soak_started, soak_done, soak_failed, soak_open;
  long next_sample;
  uint64_t soak_t0;
  /* probe */
  double probe_ms_max, probe_ms_sum;
  long probes, probe_failed;
  bool probe_running;
  /* samples */
  long fds0, rss0, fds_hold, rss_hold;
  long nsamples, sample_fds[64], sample_rss[64], sample_at[64];
};

static void start_soak_client(bench *b);
static void probe_next(bench *b);

static const char BODY_TEXT[] =
    "Subject: load\r\n\r\nThe quick brown fox jumps over the lazy dog.\r\n"
    ".\r\n";

static void on_closed(uv_handle_t *h) {
  client *c = h->data;
  bench *b = c->b;
  free(c);
  (void)b;
}

static void finish(client *c, bool ok) {
  bench *b = c->b;
  if (uv_is_closing((uv_handle_t *)&c->tcp))
    return;
  uv_close((uv_handle_t *)&c->tcp, on_closed);
  switch (c->k) {
  case HOLD:
    b->held_open--;
    b->hold_failed += !ok;
    break;
  case SOAK:
    b->soak_open--;
    b->soak_done++;
    b->soak_failed += !ok;
    if (b->soak_done >= b->next_sample && b->nsamples < 64) {
      b->sample_at[b->nsamples] = b->soak_done;
      b->sample_fds[b->nsamples] = proc_fds(b->server);
      b->sample_rss[b->nsamples] = proc_rss_kb(b->server);
      b->nsamples++;
      b->next_sample += b->o.soak / b->o.samples;
    }
    if (!b->timed_out)
      while (b->soak_open < b->o.concurrency && b->soak_started < b->o.soak)
        start_soak_client(b);
    if (b->soak_done == b->o.soak || (b->timed_out && b->soak_open == 0))
      uv_stop(b->loop);
    break;
  case PROBE: {
    double ms = (double)(uv_hrtime() - c->t0) / 1e6;
    b->probe_running = false;
    if (!ok) {
      b->probe_failed++;
    } else {
      b->probes++;
      b->probe_ms_sum += ms;
      b->probe_ms_max = ms > b->probe_ms_max ? ms : b->probe_ms_max;
    }
    break;
  }
  }
}

static void on_write(uv_write_t *w, int status) { free(w); }

static void say(client *c, const char *text) {
  size_t n = strlen(text);
  uv_write_t *w = malloc(sizeof *w + n);
  if (!w) {
    finish(c, false);
    return;
  }
  memcpy(w + 1, text, n);
  uv_buf_t buf = uv_buf_init((char *)(w + 1), (unsigned)n);
  if (uv_write(w, (uv_stream_t *)&c->tcp, &buf, 1, on_write) != 0) {
    free(w);
    finish(c, false);
  }
}

/* One whole reply line arrived: the next command, or done. */
static void on_reply(client *c, int code) {
  bench *b = c->b;
  bool more = c->len > 3 && c->line[3] == '-';
  if (more)
    return;
  bool ok = (c->st == DATA && code == 354) || (c->st == QUIT && code == 221) ||
            (c->st != DATA && c->st != QUIT && code / 100 == 2);
  if (!ok) {
    finish(c, false);
    return;
  }
  switch (c->st) {
  case GREETING:
    if (c->k == HOLD) {
      b->held_greeted++;
      c->st = QUIT; /* parked until the release */
      return;
    }
    c->st = c->message ? EHLO : QUIT;
    say(c, c->message ? "EHLO load.test\r\n" : "QUIT\r\n");
    return;
  case EHLO:
    c->st = MAIL;
    say(c, "MAIL FROM:<load@x.test>\r\n");
    return;
  case MAIL:
    c->st = RCPT;
    say(c, "RCPT TO:<sink@x.test>\r\n");
    return;
  case RCPT:
    c->st = DATA;
    say(c, "DATA\r\n");
    return;
  case DATA:
    c->st = BODY;
    say(c, BODY_TEXT);
    return;
  case BODY:
    c->st = QUIT;
    say(c, "QUIT\r\n");
    return;
  case QUIT:
    c->st = DONE;
    finish(c, true);
    return;
  default:
    return;
  }
}

static void on_alloc(uv_handle_t *h, size_t s, uv_buf_t *buf) {
  static char scratch[4096];
  *buf = uv_buf_init(scratch, sizeof scratch);
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf) {
  client *c = st->data;
  if (n < 0) {
    finish(c, c->st == DONE);
    return;
  }
  for (ssize_t i = 0; i < n && !uv_is_closing((uv_handle_t *)&c->tcp); i++) {
    char ch = buf->base[i];
    if (c->len < sizeof c->line - 1)
      c->line[c->len++] = ch;
    if (ch != '\n')
      continue;
    c->line[c->len] = '\0';
    on_reply(c, atoi(c->line));
    c->len = 0;
  }
}

static void on_connect(uv_connect_t *req, int status) {
  client *c = req->data;
  if (status < 0) {
    finish(c, false);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1); /* one command per reply: no Nagle waits */
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static client *start_client(bench *b, kind k, bool message, unsigned src) {
  client *c = calloc(1, sizeof *c);
  if (!c)
    return NULL;
  c->b = b;
  c->k = k;
  c->message = message;
  c->t0 = uv_hrtime();
  c->tcp.data = c->conn.data = c;
  uv_tcp_init(b->loop, &c->tcp);
  if (src) {
    struct sockaddr_in a;
    char ip[32];
    snprintf(ip, sizeof ip, "127.0.0.%u", src);
    uv_ip4_addr(ip, 0, &a);
    uv_tcp_bind(&c->tcp, (struct sockaddr *)&a, 0);
  }
  if (uv_tcp_connect(&c->conn, &c->tcp, (struct sockaddr *)&b->target,
                     on_connect) != 0) {
    finish(c, false);
    return NULL;
  }
  return c;
}

static void start_soak_client(bench *b) {
  long i = b->soak_started++;
  b->soak_open++;
  /* a message in every tenth session, the rest greeting and QUIT */
  start_client(b, SOAK, i % 10 == 0, 2 + (unsigned)(i % 250));
}

static void probe_next(bench *b) {
  if (b->probe_running || !b->holding)
    return;
  b->probe_running = true;
  start_client(b, PROBE, true, 0);
}

static void on_probe_timer(uv_timer_t *t) { probe_next(t->data); }

static void on_deadline(uv_timer_t *t) {
  bench *b = t->data;
  b->timed_out = true;
  uv_stop(b->loop);
}

/* Run the loop until cond holds (checked every 10 ms) or the deadline. */
static bool run_until(bench *b, bool (*cond)(bench *)) {
  while (!cond(b) && !b->timed_out) {
    uv_run(b->loop, UV_RUN_NOWAIT);
    if (!cond(b))
      uv_sleep(1);
  }
  return !b->timed_out;
}

static bool all_greeted(bench *b) {
  return b->held_greeted + b->hold_failed >= b->o.hold;
}
static bool enough_probes(bench *b) {
  return b->probes + b->probe_failed >= 20 && !b->probe_running;
}
static bool held_closed(bench *b) { return b->held_open == 0; }

/* ------------------------------------------------------------------------ */

static void usage(void) {
  fprintf(stderr, "usage: fake_load [--hold N] [--soak N] [--concurrency N] "
                  "[--samples N] [--check] [--timeout S]\n");
}

static int parse(int argc, char **argv, opts *o) {
  *o = (opts){.hold = 10000,
              .soak = 1000000,
              .concurrency = 64,
              .samples = 10,
              .timeout_s = 900};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    long *dst = NULL;
    if (strcmp(a, "--check") == 0) {
      o->check = true;
      continue;
    }
    if (strcmp(a, "--hold") == 0)
      dst = &o->hold;
    else if (strcmp(a, "--soak") == 0)
      dst = &o->soak;
    else if (strcmp(a, "--concurrency") == 0)
      dst = &o->concurrency;
    else if (strcmp(a, "--samples") == 0)
      dst = &o->samples;
    else if (strcmp(a, "--timeout") == 0)
      dst = &o->timeout_s;
    if (!dst || i + 1 >= argc || (*dst = atol(argv[++i])) <= 0) {
      usage();
      return 2;
    }
  }
  if (o->samples > 60)
    o->samples = 60;
  if (o->soak < o->samples)
    o->samples = 1;
  return 0;
}

int main(int argc, char **argv) {
  bench b;
  memset(&b, 0, sizeof b);
  int rc = parse(argc, argv, &b.o);
  if (rc)
    return rc;
  signal(SIGPIPE, SIG_IGN);
  raise_fd_limit();
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  if ((long)rl.rlim_cur < b.o.hold + 100) {
    fprintf(stderr,
            "fake_load: --hold %ld needs %ld descriptors, the hard "
            "limit is %ld\n",
            b.o.hold, b.o.hold + 100, (long)rl.rlim_cur);
    return 2;
  }
  int pfd[2];
  if (pipe(pfd) != 0)
    return 1;
  b.server = fork();
  if (b.server == 0) {
    close(pfd[0]);
    _exit(server_main(pfd[1], b.o.hold + 1000));
  }
  close(pfd[1]);
  uint16_t port = 0;
  if (read(pfd[0], &port, sizeof port) != sizeof port) {
    fprintf(stderr, "fake_load: the server did not start\n");
    return 1;
  }
  close(pfd[0]);
  uv_ip4_addr("127.0.0.1", port, &b.target);
  b.loop = uv_default_loop();
  uv_timer_init(b.loop, &b.deadline);
  b.deadline.data = &b;
  uv_timer_start(&b.deadline, on_deadline, (uint64_t)b.o.timeout_s * 1000, 0);
  uv_unref((uv_handle_t *)&b.deadline);
  b.fds0 = proc_fds(b.server);
  b.rss0 = proc_rss_kb(b.server);
  printf("fake_load: server pid %d on 127.0.0.1:%u, fd limit %ld\n",
         (int)b.server, port, (long)rl.rlim_cur);
  printf("before     server fds=%ld rss_kb=%ld\n", b.fds0, b.rss0);

  /* 1. Hold N sessions; a normal client's sessions meanwhile. */
  uint64_t t0 = uv_hrtime();
  b.held = calloc((size_t)b.o.hold, sizeof *b.held);
  b.holding = true;
  for (long i = 0; i < b.o.hold; i++) {
    b.held_open++;
    b.held[i] = start_client(&b, HOLD, false, 0);
    if (i % 256 == 255)
      uv_run(b.loop, UV_RUN_NOWAIT); /* let the server keep up */
  }
  run_until(&b, all_greeted);
  double hold_s = (double)(uv_hrtime() - t0) / 1e9;
  uv_timer_init(b.loop, &b.probe_timer);
  b.probe_timer.data = &b;
  uv_timer_start(&b.probe_timer, on_probe_timer, 0, 50);
  run_until(&b, enough_probes);
  uv_timer_stop(&b.probe_timer);
  b.holding = false;
  b.fds_hold = proc_fds(b.server);
  b.rss_hold = proc_rss_kb(b.server);
  printf("hold       sessions=%ld greeted=%ld failed=%ld in %.2f s; server "
         "fds=%ld rss_kb=%ld (%.1f kB/session)\n",
         b.o.hold, b.held_greeted, b.hold_failed, hold_s, b.fds_hold,
         b.rss_hold,
         b.o.hold ? (double)(b.rss_hold - b.rss0) / (double)b.o.hold : 0.0);
  printf("probe      normal sessions=%ld failed=%ld during the hold: mean "
         "%.1f ms, max %.1f ms\n",
         b.probes, b.probe_failed, b.probes ? b.probe_ms_sum / b.probes : 0,
         b.probe_ms_max);
  for (long i = 0; i < b.o.hold; i++)
    if (b.held[i] && !uv_is_closing((uv_handle_t *)&b.held[i]->tcp))
      say(b.held[i], "QUIT\r\n");
  run_until(&b, held_closed);
  free(b.held);

  /* 2. The soak: short sessions, `concurrency` at a time. */
  b.next_sample = b.o.soak / b.o.samples;
  b.soak_t0 = uv_hrtime();
  for (long i = 0; i < b.o.concurrency && b.soak_started < b.o.soak; i++)
    start_soak_client(&b);
  uv_ref((uv_handle_t *)&b.deadline);
  uv_run(b.loop, UV_RUN_DEFAULT);
  double soak_s = (double)(uv_hrtime() - b.soak_t0) / 1e9;
  for (long i = 0; i < b.nsamples; i++)
    printf("soak       after %8ld sessions: server fds=%ld rss_kb=%ld\n",
           b.sample_at[i], b.sample_fds[i], b.sample_rss[i]);
  usleep(200000); /* the last closes reach the server */
  long fds_end = proc_fds(b.server), rss_end = proc_rss_kb(b.server);
  printf("soak       sessions=%ld failed=%ld in %.1f s (%.0f sessions/s); "
         "server at the end fds=%ld rss_kb=%ld\n",
         b.soak_done, b.soak_failed, soak_s,
         soak_s > 0 ? (double)b.soak_done / soak_s : 0, fds_end, rss_end);
  /* growth over the second half of the soak (the first half warms up the
   * allocator) */
  long mid = b.nsamples / 2, rss_max = 0;
  for (long i = mid; i < b.nsamples; i++)
    rss_max = b.sample_rss[i] > rss_max ? b.sample_rss[i] : rss_max;
  long growth = b.nsamples ? rss_max - b.sample_rss[mid] : 0;
  printf("growth     fds %+ld (end - before), rss %+ld kB (second half)\n",
         fds_end - b.fds0, growth);

  kill(b.server, SIGTERM);
  int status = 0;
  waitpid(b.server, &status, 0);
  uv_close((uv_handle_t *)&b.deadline, NULL);
  uv_close((uv_handle_t *)&b.probe_timer, NULL);
  uv_run(b.loop, UV_RUN_DEFAULT);
  if (b.timed_out) {
    fprintf(stderr, "fake_load: timed out after %ld s\n", b.o.timeout_s);
    return 1;
  }
  if (!b.o.check)
    return 0;
  bool ok = b.hold_failed == 0 && b.held_greeted == b.o.hold &&
            b.soak_failed == 0 && b.soak_done == b.o.soak &&
            b.probe_failed == 0 && b.probes > 0 &&
            b.probe_ms_max < PROBE_MAX_MS && fds_end <= b.fds0 &&
            (growth < RSS_SLACK_KB || !RSS_CHECKED);
  printf("check      %s%s\n", ok ? "ok" : "FAILED",
         RSS_CHECKED ? "" : " (RSS not checked under ASan)");
  return ok ? 0 : 1;
}

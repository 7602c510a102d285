/*
 * latency.c - the failover-latency bench behind `detour bench`.
 *
 * One run: a primary fake server with one fault of the catalogue, a
 * healthy backup, both on loopback, and W workers (an engine and a libuv
 * driver each, on one real clock) that submit N messages between them,
 * each worker one message at a time, each message its own submission. A
 * message's latency runs from just before detour_uv_submit() to the final
 * "." as the server that took it recorded it: both are uv_hrtime()
 * (monotonic) on the same loop, so no clock can drift between them.
 *
 * The Postfix side-by-side uses the same machinery: the workers then
 * submit to a private Postfix instance whose relayhost is the primary and
 * whose smtp_fallback_relay is the backup.
 *
 * Everything is bounded: the message count, the worker count, and a
 * real-time deadline per run after which every handle is closed.
 */
/* nftw() is XSI. */
#define _XOPEN_SOURCE 700

#include "latency.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <uv.h>

#include "detour/detour_uv.h"
#include "detour/fake.h"

/* ------------------------------------------------------------------------ */
/* The fault kinds: those where failover is immediate or bounded.           */

#define ATTEMPTS DETOUR_BENCH_MAX_ATTEMPTS
#define RETRY DETOUR_BENCH_RETRY_INTERVAL

/* The budget is what the policy itself must cost: a CONNECT or SWITCH
 * failure moves on at once (R3, R5); a blackhole costs the connect
 * timeout; a TRANSIENT failure retries the same server after the interval
 * until the attempt limit, then moves on (R6, R7). */
static const detour_bench_fault FAULTS[] = {
    {"none", NULL, -1, DETOUR_CLASS_NONE, 0, "baseline, primary healthy"},
    {"refuse", "refuse", -1, DETOUR_CLASS_CONNECT, 0, "immediate"},
    {"greeting_421", "greeting_421", -1, DETOUR_CLASS_SWITCH, 0, "immediate"},
    {"greeting_554", "greeting_554", -1, DETOUR_CLASS_SWITCH, 0, "immediate"},
    {"disk_full", "disk_full", DETOUR_FAKE_RCPT, DETOUR_CLASS_SWITCH, 0,
     "immediate (452 at RCPT)"},
    {"unsupported", "unsupported", DETOUR_FAKE_MAIL, DETOUR_CLASS_SWITCH, 0,
     "immediate (555 at MAIL)"},
    {"blackhole", "blackhole", -1, DETOUR_CLASS_CONNECT,
     DETOUR_BENCH_CONNECT_TIMEOUT, "connect timeout"},
    {"silent", "silent", -1, DETOUR_CLASS_TRANSIENT,
     ATTEMPTS *DETOUR_BENCH_GREETING_TIMEOUT + (ATTEMPTS - 1) * RETRY,
     "2 greeting timeouts + 1 retry interval"},
    {"reset", "reset", DETOUR_FAKE_MAIL, DETOUR_CLASS_TRANSIENT,
     (ATTEMPTS - 1) * RETRY, "RST at MAIL: 1 retry interval"},
};
#define NFAULTS (sizeof FAULTS / sizeof *FAULTS)

size_t detour_bench_fault_count(void) { return NFAULTS; }

const detour_bench_fault *detour_bench_fault_at(size_t i) {
  return i < NFAULTS ? &FAULTS[i] : NULL;
}

const detour_bench_fault *detour_bench_fault_find(const char *name) {
  for (size_t i = 0; name && i < NFAULTS; i++)
    if (strcmp(FAULTS[i].name, name) == 0)
      return &FAULTS[i];
  return NULL;
}

/* ------------------------------------------------------------------------ */
/* One run                                                                   */

enum { PRIMARY = 0, BACKUP = 1, NOBODY = -1 };

typedef struct bench_run bench_run;

typedef struct {
  bench_run *run;
  detour_engine *engine;
  detour_uv *driver;
  size_t msg; /* the message in flight, SIZE_MAX when none */
  bool done;  /* the engine finished msg */
  detour_done_status status;
} worker;

struct bench_run {
  uv_loop_t loop;
  detour_clock *clock;
  detour_fake_server *srv[2]; /* PRIMARY, BACKUP */
  int expect;                 /* which one should take the mail */
  bool wait_accept;           /* Postfix: its 250 comes before the delivery */
  worker w[DETOUR_BENCH_CONCURRENCY_MAX];
  size_t nw;
  uint64_t *submit_ns, *accept_ns;
  signed char *by; /* NOBODY, PRIMARY, BACKUP */
  size_t n, next, finished;
  uv_timer_t deadline; /* also the stopper, restarted at 0 ms */
  bool loop_ok, stopping, timed_out;
};

static const char BODY[] = "Subject: detour failover bench\r\n"
                           "\r\n"
                           "One message of the failover-latency bench.\r\n";
static const char *const RCPTS[] = {"sink@backup.test"};

static void set_err(char *err, size_t errlen, const char *what,
                    const char *why) {
  if (err && errlen)
    snprintf(err, errlen, "%s: %s", what, why ? why : "failed");
}

/* The message number is in the sender: the fake servers record it. */
static bool message_number(const char *from, size_t *k) {
  unsigned long v;
  char at;
  if (sscanf(from, "bench-%lu%c", &v, &at) != 2 || at != '@')
    return false;
  *k = (size_t)v;
  return true;
}

static void submit_next(worker *w);
static void stop_now(uv_timer_t *t);

static void stop_soon(bench_run *r) {
  if (r->stopping)
    return;
  /* From the loop's top level, never from inside a driver or a server. */
  uv_timer_start(&r->deadline, stop_now, 0, 0);
}

/* A worker moves on once its message is finished: done by the engine, and
 * for Postfix also delivered (or given up by the submission). */
static void maybe_next(worker *w) {
  bench_run *r = w->run;
  if (w->msg == SIZE_MAX || !w->done)
    return;
  if (r->wait_accept && w->status == DETOUR_DONE_DELIVERED &&
      r->by[w->msg] == NOBODY)
    return;
  w->msg = SIZE_MAX;
  if (++r->finished == r->n)
    stop_soon(r);
  else
    submit_next(w);
}

static void on_message(void *arg, detour_fake_server *srv,
                       const detour_fake_event *ev) {
  bench_run *r = arg;
  size_t k;
  if (ev->type != DETOUR_FAKE_EV_MESSAGE || !ev->msg->complete ||
      !message_number(ev->msg->from, &k) || k >= r->n || r->by[k] != NOBODY)
    return;
  r->accept_ns[k] = ev->msg->mono;
  r->by[k] = srv == r->srv[PRIMARY] ? PRIMARY : BACKUP;
  for (size_t i = 0; i < r->nw; i++)
    if (r->w[i].msg == k)
      maybe_next(&r->w[i]);
}

static void on_done(void *arg, size_t message, detour_done_status status) {
  worker *w = arg;
  w->done = true;
  w->status = status;
  maybe_next(w);
}

static void submit_next(worker *w) {
  bench_run *r = w->run;
  if (r->stopping || r->next >= r->n)
    return;
  size_t k = r->next++;
  char from[64];
  snprintf(from, sizeof from, "bench-%zu@client.test", k);
  detour_message m = {.from = from,
                      .rcpts = RCPTS,
                      .nrcpts = 1,
                      .body = BODY,
                      .body_len = sizeof BODY - 1};
  w->msg = k;
  w->done = false;
  r->submit_ns[k] = uv_hrtime();
  if (detour_uv_submit(w->driver, &m) < 0) { /* counted as lost */
    w->done = true;
    w->status = DETOUR_DONE_DEFERRED;
    maybe_next(w);
  }
}

/* Closing everything ends uv_run: the drivers and servers close their
 * handles, the deadline timer is the last one. */
static void stop_now(uv_timer_t *t) {
  bench_run *r = t->data;
  r->stopping = true;
  for (size_t i = 0; i < r->nw; i++)
    detour_uv_free(r->w[i].driver);
  for (int i = 0; i < 2; i++)
    detour_fake_server_free(r->srv[i]);
  uv_close((uv_handle_t *)&r->deadline, NULL);
}

static void on_deadline(uv_timer_t *t) {
  ((bench_run *)t->data)->timed_out = true;
  stop_now(t);
}

/* ------------------------------------------------------------------------ */
/* Setting up and tearing down                                               */

static int run_init(bench_run *r, size_t n, char *err, size_t errlen) {
  memset(r, 0, sizeof *r);
  r->n = n;
  r->submit_ns = calloc(n, sizeof *r->submit_ns);
  r->accept_ns = calloc(n, sizeof *r->accept_ns);
  r->by = malloc(n);
  if (!r->submit_ns || !r->accept_ns || !r->by)
    return set_err(err, errlen, "bench", "out of memory"), DETOUR_ENOMEM;
  memset(r->by, NOBODY, n);
  if (uv_loop_init(&r->loop) != 0)
    return set_err(err, errlen, "bench", "uv_loop_init"), DETOUR_EIO;
  r->loop_ok = true;
  uv_timer_init(&r->loop, &r->deadline);
  r->deadline.data = r;
  r->clock = detour_clock_new_real(&r->loop);
  if (!r->clock)
    return set_err(err, errlen, "bench", "clock"), DETOUR_ENOMEM;
  return 0;
}

/* The primary's script: the fault, or nothing for the baseline. Record
 * off: the observer sees every message and memory stays flat. */
static detour_fake_script *primary_script(const detour_bench_fault *f) {
  detour_fake_script *s = detour_fake_script_new("primary");
  if (!s)
    return NULL;
  detour_fake_script_set_record(s, DETOUR_FAKE_RECORD_OFF);
  detour_fake_fault_args a = {
      .has_stage = f->stage >= 0,
      .stage = (detour_fake_stage)(f->stage < 0 ? 0 : f->stage)};
  if (f->fault && detour_fake_script_add_fault(s, f->fault, &a) != 0) {
    detour_fake_script_free(s);
    return NULL;
  }
  return s;
}

static int start_server(bench_run *r, int which, detour_fake_script *s,
                        const char *listen, char *err, size_t errlen) {
  int e = 0;
  if (!s)
    return set_err(err, errlen, listen, "script"), DETOUR_ENOMEM;
  r->srv[which] = detour_fake_server_new(r->clock, s, listen, 0, &e);
  detour_fake_script_free(s);
  if (!r->srv[which])
    return set_err(err, errlen, listen, detour_strerror(e)), e;
  detour_fake_server_set_observer(r->srv[which], on_message, r);
  return detour_fake_server_start(r->srv[which], err, errlen);
}

/* Primary on 127.0.0.2, backup on 127.0.0.3, ephemeral ports. */
static int start_servers(bench_run *r, const detour_bench_fault *f, char *err,
                         size_t errlen) {
  int rc =
      start_server(r, PRIMARY, primary_script(f), "127.0.0.2:0", err, errlen);
  if (rc != 0)
    return rc;
  detour_fake_script *b = detour_fake_script_new("backup");
  if (b)
    detour_fake_script_set_record(b, DETOUR_FAKE_RECORD_OFF);
  return start_server(r, BACKUP, b, "127.0.0.3:0", err, errlen);
}

/* The bench's engine tuning (latency.h): short timeouts, short retry. */
static void bench_config(detour_config *c) {
  detour_config_init(c);
  c->retry_interval = DETOUR_BENCH_RETRY_INTERVAL;
  c->max_attempts = DETOUR_BENCH_MAX_ATTEMPTS;
  detour_timeouts *t = &c->timeouts;
  t->connect = DETOUR_BENCH_CONNECT_TIMEOUT;
  t->greeting = DETOUR_BENCH_GREETING_TIMEOUT;
  t->ehlo = t->mail = t->rcpt = t->data_start = t->data_block = t->final_dot =
      t->quit = DETOUR_BENCH_REPLY_TIMEOUT;
}

static int start_workers(bench_run *r, const detour_config *cfg, size_t nw,
                         char *err, size_t errlen) {
  r->nw = nw;
  for (size_t i = 0; i < nw; i++) {
    worker *w = &r->w[i];
    int e = 0;
    w->run = r;
    w->msg = SIZE_MAX;
    w->engine = detour_engine_new(cfg, &e);
    if (!w->engine)
      return set_err(err, errlen, "engine", detour_strerror(e)), e;
    detour_uv_callbacks cb = {.on_done = on_done, .arg = w};
    w->driver = detour_uv_new(r->clock, w->engine, &cb);
    if (!w->driver)
      return set_err(err, errlen, "driver", "out of memory"), DETOUR_ENOMEM;
  }
  return 0;
}

/* Run until every message finished or the deadline. */
static void run_loop(bench_run *r, detour_ms timeout_ms) {
  uv_timer_start(&r->deadline, on_deadline, (uint64_t)timeout_ms, 0);
  for (size_t i = 0; i < r->nw; i++)
    submit_next(&r->w[i]);
  uv_run(&r->loop, UV_RUN_DEFAULT);
}

/* Frees whatever run_init and the starts made, also after a failed
 * setup (the loop is then run once more to close what was opened). */
static void run_free(bench_run *r) {
  if (r->loop_ok) {
    if (!r->stopping)
      stop_now(&r->deadline);
    uv_run(&r->loop, UV_RUN_DEFAULT);
  }
  for (size_t i = 0; i < r->nw; i++)
    detour_engine_free(r->w[i].engine);
  detour_clock_free(r->clock);
  if (r->loop_ok) {
    uv_run(&r->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&r->loop) != 0)
      fprintf(stderr, "detour bench: a handle was left open\n");
  }
  free(r->submit_ns);
  free(r->accept_ns);
  free(r->by);
}

/* ------------------------------------------------------------------------ */
/* Figures                                                                   */

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Nearest rank: the smallest value with at least q of the sample at or
 * below it. */
static double percentile(const double *sorted, size_t n, double q) {
  size_t rank = (size_t)(q * (double)n + 0.999999);
  return sorted[rank == 0 ? 0 : rank - 1];
}

static void figures(const bench_run *r, detour_bench_result *out) {
  memset(out, 0, sizeof *out);
  out->n = r->next;
  out->timed_out = r->timed_out;
  double *lat = malloc((r->n ? r->n : 1) * sizeof *lat);
  uint64_t first = UINT64_MAX, last = 0;
  double sum = 0;
  for (size_t k = 0; lat && k < r->next; k++) {
    if (r->by[k] == NOBODY) {
      out->lost++;
      continue;
    }
    if (r->by[k] != r->expect) {
      out->wrong++;
      continue;
    }
    lat[out->ok] = (double)(r->accept_ns[k] - r->submit_ns[k]) / 1e6;
    sum += lat[out->ok++];
    first = r->submit_ns[k] < first ? r->submit_ns[k] : first;
    last = r->accept_ns[k] > last ? r->accept_ns[k] : last;
  }
  if (lat && out->ok) {
    qsort(lat, out->ok, sizeof *lat, cmp_double);
    out->p50 = percentile(lat, out->ok, 0.50);
    out->p90 = percentile(lat, out->ok, 0.90);
    out->p99 = percentile(lat, out->ok, 0.99);
    out->max = lat[out->ok - 1];
    out->mean = sum / (double)out->ok;
    if (last > first)
      out->per_sec = (double)out->ok / ((double)(last - first) / 1e9);
  }
  free(lat);
}

int detour_bench_run(const detour_bench_fault *f, size_t messages,
                     size_t concurrency, detour_ms timeout_ms,
                     detour_bench_result *out, char *err, size_t errlen) {
  if (!f || !out || messages == 0 || messages > DETOUR_BENCH_MESSAGES_MAX ||
      concurrency == 0 || concurrency > DETOUR_BENCH_CONCURRENCY_MAX ||
      timeout_ms <= 0)
    return set_err(err, errlen, "bench", "bad arguments"), DETOUR_EINVAL;
  bench_run r;
  int rc = run_init(&r, messages, err, errlen);
  r.expect = f->fault ? BACKUP : PRIMARY;
  if (rc == 0)
    rc = start_servers(&r, f, err, errlen);
  detour_config cfg;
  bench_config(&cfg);
  if (rc == 0) {
    detour_config_add_server(&cfg, "127.0.0.2",
                             detour_fake_server_port(r.srv[PRIMARY]), 1);
    detour_config_add_server(&cfg, "127.0.0.3",
                             detour_fake_server_port(r.srv[BACKUP]), 2);
    rc = start_workers(&r, &cfg, concurrency, err, errlen);
  }
  uint64_t t0 = uv_hrtime();
  if (rc == 0)
    run_loop(&r, timeout_ms);
  figures(&r, out);
  out->wall_s = (double)(uv_hrtime() - t0) / 1e9;
  run_free(&r);
  return rc;
}

/* ------------------------------------------------------------------------ */
/* Postfix, side by side                                                     */

#define POSTFIX "/usr/sbin/postfix"

/* Root is needed: master(8) starts as root and drops to mail_owner. */
static int postfix_usable(char *err, size_t errlen) {
  if (access(POSTFIX, X_OK) != 0)
    return set_err(err, errlen, POSTFIX, "not installed"), 1;
  if (geteuid() != 0)
    return set_err(err, errlen, "postfix", "needs root to start"), 1;
  if (!getpwnam("postfix"))
    return set_err(err, errlen, "postfix", "no 'postfix' user"), 1;
  return 0;
}

/* An unused loopback port for Postfix's own smtpd (bound, then freed). */
static int free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  socklen_t len = sizeof a;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int port = -1;
  if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
      getsockname(fd, (struct sockaddr *)&a, &len) == 0)
    port = ntohs(a.sin_port);
  if (fd >= 0)
    close(fd);
  return port;
}

static int write_file(const char *dir, const char *name, const char *text) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  if (!f)
    return -1;
  int rc = fputs(text, f) < 0 ? -1 : 0;
  return fclose(f) != 0 ? -1 : rc;
}

/* main.cf: everything under DIR, smtpd on 127.0.0.1 only, mail for any
 * domain through relayhost, the fallback relay when it cannot connect.
 * No chroot (the queue is in /tmp), no DNS (IP literals). */
static int postfix_main_cf(const char *dir, int primary, int backup) {
  char text[2048];
  snprintf(text, sizeof text,
           "compatibility_level = 3.6\n"
           "queue_directory = %s/spool\n"
           "data_directory = %s/data\n"
           "maillog_file = %s/maillog\n"
           "maillog_file_prefixes = %s\n"
           "mail_owner = postfix\n"
           "setgid_group = postdrop\n"
           "myhostname = postfix.bench.test\n"
           "mydestination =\n"
           "inet_interfaces = 127.0.0.1\n"
           "inet_protocols = ipv4\n"
           "mynetworks = 127.0.0.0/8\n"
           "smtpd_relay_restrictions = permit_mynetworks, reject\n"
           "relayhost = [127.0.0.2]:%d\n"
           "smtp_fallback_relay = [127.0.0.3]:%d\n"
           "smtp_dns_support_level = disabled\n"
           "smtp_tls_security_level = none\n"
           "smtpd_tls_security_level = none\n"
           "biff = no\n",
           dir, dir, dir, dir, primary, backup);
  return write_file(dir, "etc/main.cf", text);
}

/* master.cf: the services a relay needs, none chrooted; smtpd on the
 * private port, never 25. */
static int postfix_master_cf(const char *dir, int port) {
  char text[2048];
  snprintf(text, sizeof text,
           "127.0.0.1:%d inet n - n - - smtpd\n"
           "pickup unix n - n 60 1 pickup\n"
           "cleanup unix n - n - 0 cleanup\n"
           "qmgr unix n - n 300 1 qmgr\n"
           "rewrite unix - - n - - trivial-rewrite\n"
           "bounce unix - - n - 0 bounce\n"
           "defer unix - - n - 0 bounce\n"
           "trace unix - - n - 0 bounce\n"
           "verify unix - - n - 1 verify\n"
           "flush unix n - n 1000? 0 flush\n"
           "proxymap unix - - n - - proxymap\n"
           "smtp unix - - n - - smtp\n"
           "relay unix - - n - - smtp\n"
           "showq unix n - n - - showq\n"
           "error unix - - n - - error\n"
           "retry unix - - n - - error\n"
           "discard unix - - n - - discard\n"
           "anvil unix - - n - 1 anvil\n"
           "scache unix - - n - 1 scache\n"
           "postlog unix-dgram n - n - 1 postlogd\n",
           port);
  return write_file(dir, "etc/master.cf", text);
}

/* Runs `postfix -c DIR/etc VERB`, output to DIR/postfix.out. Returns its
 * exit status, -1 when it could not run. */
static int postfix_cmd(const char *dir, const char *verb) {
  char etc[512], out[512];
  snprintf(etc, sizeof etc, "%s/etc", dir);
  snprintf(out, sizeof out, "%s/postfix.out", dir);
  pid_t pid = fork();
  if (pid < 0)
    return -1;
  if (pid == 0) {
    int fd = open(out, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    execl(POSTFIX, "postfix", "-c", etc, verb, (char *)NULL);
    _exit(127);
  }
  int st;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
    ;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Bounded wait (5 s) until something accepts on 127.0.0.1:port. */
static bool wait_port(int port) {
  for (int i = 0; i < 100; i++) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0)
      close(fd);
    if (ok)
      return true;
    usleep(50000);
  }
  return false;
}

/* The master's pid, from DIR/spool/pid/master.pid; 0 when none. */
static pid_t master_pid(const char *dir) {
  char path[512];
  snprintf(path, sizeof path, "%s/spool/pid/master.pid", dir);
  FILE *f = fopen(path, "r");
  long pid = 0;
  if (f) {
    if (fscanf(f, "%ld", &pid) != 1)
      pid = 0;
    fclose(f);
  }
  return (pid_t)pid;
}

/* `postfix stop`, then a bounded wait (5 s) for the master we started to
 * exit; past that it is killed by its pid. */
static void postfix_stop(const char *dir) {
  pid_t pid = master_pid(dir);
  postfix_cmd(dir, "stop");
  for (int i = 0; pid > 0 && i < 100 && kill(pid, 0) == 0; i++)
    usleep(50000);
  if (pid > 0 && kill(pid, 0) == 0)
    kill(pid, SIGKILL);
}

static int rm_entry(const char *path, const struct stat *st, int flag,
                    struct FTW *ftw) {
  return remove(path);
}

static void remove_tree(const char *dir) {
  nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Writes the config, starts the instance and waits for its smtpd. */
static int postfix_start(const char *dir, int smtpd, bench_run *r, char *err,
                         size_t errlen) {
  char etc[512], spool[512];
  snprintf(etc, sizeof etc, "%s/etc", dir);
  snprintf(spool, sizeof spool, "%s/spool", dir);
  if (mkdir(etc, 0755) != 0 || mkdir(spool, 0755) != 0 ||
      postfix_main_cf(dir, detour_fake_server_port(r->srv[PRIMARY]),
                      detour_fake_server_port(r->srv[BACKUP])) != 0 ||
      postfix_master_cf(dir, smtpd) != 0)
    return set_err(err, errlen, dir, strerror(errno)), DETOUR_EIO;
  /* `check` makes the queue directories under spool/ with their owners.
   * Postfix reports errors to syslog (or a TTY), so maillog is where to
   * look when this fails. */
  if (postfix_cmd(dir, "check") != 0 || postfix_cmd(dir, "start") != 0)
    return set_err(err, errlen, "postfix start", "failed (see maillog)"),
           DETOUR_EIO;
  if (!wait_port(smtpd))
    return set_err(err, errlen, "postfix", "its smtpd does not answer"),
           DETOUR_EIO;
  return 0;
}

/* The submission engine talks to Postfix's smtpd only. */
static int postfix_workers(bench_run *r, int smtpd, char *err, size_t errlen) {
  detour_config cfg;
  bench_config(&cfg);
  detour_config_add_server(&cfg, "127.0.0.1", (uint16_t)smtpd, 1);
  return start_workers(r, &cfg, 1, err, errlen);
}

static int postfix_measure(const char *dir, const char *fault, size_t messages,
                           detour_ms timeout_ms, detour_bench_result *out,
                           char *err, size_t errlen) {
  const detour_bench_fault *f = detour_bench_fault_find(fault);
  bench_run r;
  int rc = run_init(&r, messages, err, errlen);
  int smtpd = free_port();
  r.expect = f && f->fault ? BACKUP : PRIMARY;
  r.wait_accept = true;
  if (rc == 0)
    rc = f ? start_servers(&r, f, err, errlen) : DETOUR_EINVAL;
  bool started = false;
  if (rc == 0 && smtpd > 0) {
    rc = postfix_start(dir, smtpd, &r, err, errlen);
    started = true;
  }
  if (rc == 0)
    rc = postfix_workers(&r, smtpd, err, errlen);
  uint64_t t0 = uv_hrtime();
  if (rc == 0)
    run_loop(&r, timeout_ms);
  figures(&r, out);
  out->wall_s = (double)(uv_hrtime() - t0) / 1e9;
  if (started)
    postfix_stop(dir);
  run_free(&r);
  return rc;
}

int detour_bench_postfix(const char *fault, size_t messages,
                         detour_ms timeout_ms, detour_bench_result *out,
                         char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  int rc = postfix_usable(err, errlen);
  if (rc != 0)
    return rc;
  if (messages == 0 || messages > DETOUR_BENCH_MESSAGES_MAX)
    return set_err(err, errlen, "postfix", "bad arguments"), DETOUR_EINVAL;
  char dir[] = "/tmp/detour-bench-postfix.XXXXXX";
  if (!mkdtemp(dir))
    return set_err(err, errlen, "mkdtemp", strerror(errno)), DETOUR_EIO;
  chmod(dir, 0755); /* the postfix user walks into spool/ */
  rc = postfix_measure(dir, fault, messages, timeout_ms, out, err, errlen);
  if (getenv("DETOUR_BENCH_KEEP")) /* to read its maillog */
    fprintf(stderr, "detour bench: postfix directory kept: %s\n", dir);
  else
    remove_tree(dir);
  return rc;
}

/*
 * test_cli_send.c - `detour send` end to end: the built binary (DETOUR_BIN)
 * against tiny SMTP servers on 127.0.0.1, each in a thread of the test.
 *
 * The three "done when" cases of the issue: a refused primary detours to
 * the backup at once and logs the two Fig. 6 rows; with --detour deny the
 * backup is never contacted and the primary is retried every interval up
 * to the limit (exit 75 with the configuration warning); a 550 5.1.1 at
 * RCPT ends the send after one connection (exit 67). Plus usage (64) and
 * configuration (78) errors, a configuration file, and SIGTERM (75).
 * Every wait is bounded.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* ------------------------------------------------------------------------ */
/* A tiny SMTP server: one thread, one connection at a time.                 */

typedef enum {
  MODE_ACCEPT,    /* accepts every message */
  MODE_GREET_421, /* "421" as greeting, then closes */
  MODE_RCPT_550,  /* "550 5.1.1" to every RCPT */
  MODE_SLOW_READ  /* accepts, reading at about 2 MB/s (a slow link) */
} server_mode;

#define MAX_CONNS 64

typedef struct {
  int lfd;
  unsigned port;
  server_mode mode;
  pthread_t thread;
  atomic_bool stop;
  pthread_mutex_t mu;
  int nconns;
  double conn_at[MAX_CONNS];
  int nmessages;
  char body[8192];
  size_t body_len;
  /* The whole body received, as lines joined with "\n" and dot-stuffing
   * undone: its length and FNV-1a hash, to check a large message arrived
   * byte-exact. */
  uint64_t body_total, body_hash;
} tiny_server;

#define FNV_OFFSET 14695981039346656037ull
#define FNV_PRIME 1099511628211ull

static uint64_t fnv1a(uint64_t h, const char *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    h = (h ^ (unsigned char)p[i]) * FNV_PRIME;
  return h;
}

static void say(int fd, const char *line) {
  size_t len = strlen(line);
  ssize_t n = write(fd, line, len);
  (void)n; /* a client that went away is not the server's problem */
}

/* The reply to one command line (no line end); NULL closes. */
static const char *reply_to(tiny_server *s, const char *line, bool *data) {
  if (strncasecmp(line, "EHLO", 4) == 0 || strncasecmp(line, "HELO", 4) == 0)
    return "250 tiny\r\n";
  if (strncasecmp(line, "MAIL", 4) == 0)
    return "250 2.1.0 ok\r\n";
  if (strncasecmp(line, "RCPT", 4) == 0)
    return s->mode == MODE_RCPT_550 ? "550 5.1.1 no such user\r\n"
                                    : "250 2.1.5 ok\r\n";
  if (strncasecmp(line, "DATA", 4) == 0)
    return *data = true, "354 go ahead\r\n";
  if (strncasecmp(line, "QUIT", 4) == 0)
    return NULL;
  if (strncasecmp(line, "RSET", 4) == 0 || strncasecmp(line, "NOOP", 4) == 0)
    return "250 ok\r\n";
  return "502 5.5.2 not implemented\r\n";
}

/* A line of the message body, or the final "." that ends it. */
static void data_line(tiny_server *s, int fd, const char *line, bool *data) {
  if (strcmp(line, ".") == 0) {
    *data = false;
    pthread_mutex_lock(&s->mu);
    s->nmessages++;
    pthread_mutex_unlock(&s->mu);
    say(fd, "250 2.0.0 queued\r\n");
    return;
  }
  pthread_mutex_lock(&s->mu);
  const char *text = line[0] == '.' ? line + 1 : line; /* RFC 5321 4.5.2 */
  s->body_hash = fnv1a(fnv1a(s->body_hash, text, strlen(text)), "\n", 1);
  s->body_total += strlen(text) + 1;
  size_t len = strlen(line);
  if (s->body_len + len + 2 < sizeof s->body) {
    memcpy(s->body + s->body_len, line, len);
    memcpy(s->body + s->body_len + len, "\n", 2);
    s->body_len += len + 1;
  }
  pthread_mutex_unlock(&s->mu);
}

/* Returns false when the session is over. */
static bool on_line(tiny_server *s, int fd, char *line, bool *data) {
  size_t len = strlen(line);
  if (len > 0 && line[len - 1] == '\r')
    line[len - 1] = '\0';
  if (*data)
    return data_line(s, fd, line, data), true;
  const char *r = reply_to(s, line, data);
  say(fd, r ? r : "221 2.0.0 bye\r\n");
  return r != NULL;
}

/* One SMTP session; every read waits at most 5 s. */
static void session(tiny_server *s, int fd) {
  if (s->mode == MODE_GREET_421) {
    say(fd, "421 4.3.2 service not available\r\n");
    return;
  }
  say(fd, "220 tiny ESMTP\r\n");
  s->body_hash = FNV_OFFSET;
  s->body_total = 0;
  char buf[4096];
  size_t len = 0;
  bool data = false;
  for (;;) {
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 5000) <= 0 || atomic_load(&s->stop))
      return;
    if (s->mode == MODE_SLOW_READ) { /* 4 KiB per 2 ms: about 2 MB/s */
      struct timespec ts = {0, 2 * 1000 * 1000};
      nanosleep(&ts, NULL);
    }
    ssize_t n = read(fd, buf + len, sizeof buf - 1 - len);
    if (n <= 0)
      return;
    len += (size_t)n;
    buf[len] = '\0';
    char *nl;
    while ((nl = strchr(buf, '\n')) != NULL) {
      *nl = '\0';
      bool more = on_line(s, fd, buf, &data);
      len -= (size_t)(nl + 1 - buf);
      memmove(buf, nl + 1, len + 1);
      if (!more)
        return;
    }
    if (len == sizeof buf - 1)
      return; /* a line longer than any test sends */
  }
}

static void *serve(void *arg) {
  tiny_server *s = arg;
  while (!atomic_load(&s->stop)) {
    struct pollfd p = {s->lfd, POLLIN, 0};
    if (poll(&p, 1, 20) <= 0)
      continue;
    int fd = accept(s->lfd, NULL, NULL);
    if (fd < 0)
      continue;
    pthread_mutex_lock(&s->mu);
    if (s->nconns < MAX_CONNS)
      s->conn_at[s->nconns] = now_ms();
    s->nconns++;
    pthread_mutex_unlock(&s->mu);
    session(s, fd);
    close(fd);
  }
  return NULL;
}

/* A socket bound to 127.0.0.1 on a free port; listening or not. */
static int bound_socket(unsigned *port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  cr_assert_geq(fd, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  socklen_t alen = sizeof a;
  cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
  *port = ntohs(a.sin_port);
  return fd;
}

static void server_start(tiny_server *s, server_mode mode) {
  memset(s, 0, sizeof *s);
  s->mode = mode;
  pthread_mutex_init(&s->mu, NULL);
  s->lfd = bound_socket(&s->port);
  if (mode == MODE_SLOW_READ) { /* a small window: the reading pace shows */
    int small = 32 * 1024;
    setsockopt(s->lfd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  }
  cr_assert_eq(listen(s->lfd, 16), 0);
  atomic_store(&s->stop, false);
  cr_assert_eq(pthread_create(&s->thread, NULL, serve, s), 0);
}

static void server_stop(tiny_server *s) {
  atomic_store(&s->stop, true);
  pthread_join(s->thread, NULL);
  close(s->lfd);
  pthread_mutex_destroy(&s->mu);
}

/* A port on which nothing listens: connects to it are refused. */
static unsigned refused_port(void) {
  unsigned port;
  int fd = bound_socket(&port);
  close(fd);
  return port;
}

/* ------------------------------------------------------------------------ */
/* Running the binary                                                        */

static char g_dir[64];

static void make_dir(void) {
  snprintf(g_dir, sizeof g_dir, "/tmp/detour-test-send-XXXXXX");
  cr_assert_not_null(mkdtemp(g_dir));
}

static void remove_dir(void) {
  static const char *const names[] = {"in", "out", "err", "log.jsonl",
                                      "relay.yaml"};
  char p[128];
  for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
    snprintf(p, sizeof p, "%s/%s", g_dir, names[i]);
    unlink(p);
  }
  rmdir(g_dir);
}

TestSuite(cli_send, .init = make_dir, .fini = remove_dir);

/* A path in the test's directory; the last 16 stay valid. */
static const char *in_dir(const char *name) {
  static char paths[16][128];
  static int next;
  char *p = paths[next++ % 16];
  snprintf(p, 128, "%s/%s", g_dir, name);
  return p;
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f, "%s", path);
  fputs(text, f);
  fclose(f);
}

/* The whole file (static buffer, NUL-terminated). */
static const char *slurp(const char *path) {
  static char buf[65536];
  buf[0] = '\0';
  FILE *f = fopen(path, "r");
  if (!f)
    return buf;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  buf[n] = '\0';
  fclose(f);
  return buf;
}

typedef struct {
  int status; /* exit code, or -1 when killed */
  double elapsed_ms;
  char out[8192];
  char err[16384];
} run_result;

static const char message[] = "From: a@example.com\n"
                              "To: abc@example.com\n"
                              "Subject: failover test\n"
                              "\n"
                              "Hello through the backup.\n";

/* When > 0, stdin is this many bytes instead of the message. */
static off_t g_stdin_size;
/* When set, stdin is these bytes (g_stdin_len of them) instead. */
static const char *g_stdin_data;
static size_t g_stdin_len;
/* When set, stdin is opened on this path instead (a directory: unreadable). */
static const char *g_stdin_path;

/* Wait for pid at most limit_ms; on the limit, SIGTERM then SIGKILL. */
static int wait_bounded(pid_t pid, double limit_ms, pid_t signal_at_pid,
                        double signal_at_ms) {
  double start = now_ms();
  int st;
  bool signalled = false;
  for (;;) {
    pid_t w = waitpid(pid, &st, WNOHANG);
    if (w == pid)
      return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    double t = now_ms() - start;
    if (signal_at_pid && !signalled && t >= signal_at_ms) {
      kill(signal_at_pid, SIGTERM);
      signalled = true;
    }
    if (t > limit_ms) {
      kill(pid, SIGKILL);
      waitpid(pid, &st, 0);
      cr_expect_fail("detour did not finish within %.0f ms", limit_ms);
      return -1;
    }
    struct timespec ts = {0, 5 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
}

/* Run DETOUR_BIN with args (NULL-terminated) and the message on stdin.
 * term_after_ms > 0 sends SIGTERM that long after the start. */
static void run_detour_ex(run_result *r, const char *const *args,
                          double term_after_ms) {
  const char *in = in_dir("in"), *out = in_dir("out"), *err = in_dir("err");
  write_file(in, message);
  if (g_stdin_size > 0) /* a sparse file of zeros that large */
    cr_assert_eq(truncate(in, g_stdin_size), 0);
  if (g_stdin_data) {
    FILE *f = fopen(in, "w");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(g_stdin_data, 1, g_stdin_len, f), g_stdin_len);
    fclose(f);
  }
  if (g_stdin_path)
    in = g_stdin_path;
  const char *argv[64] = {DETOUR_BIN};
  size_t n = 1;
  for (; args[n - 1] && n < 63; n++)
    argv[n] = args[n - 1];
  argv[n] = NULL;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, in, O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_TRUNC,
                                   0600);
  posix_spawn_file_actions_addopen(&fa, 2, err, O_WRONLY | O_CREAT | O_TRUNC,
                                   0600);
  pid_t pid;
  double start = now_ms();
  cr_assert_eq(posix_spawn(&pid, DETOUR_BIN, &fa, NULL, (char **)argv, environ),
               0);
  posix_spawn_file_actions_destroy(&fa);
  r->status =
      wait_bounded(pid, 30000, term_after_ms > 0 ? pid : 0, term_after_ms);
  r->elapsed_ms = now_ms() - start;
  snprintf(r->out, sizeof r->out, "%s", slurp(out));
  snprintf(r->err, sizeof r->err, "%s", slurp(err));
}

static void run_detour(run_result *r, const char *const *args) {
  run_detour_ex(r, args, 0);
}

static const char *server_arg(unsigned port) {
  static char bufs[4][32];
  static int next;
  char *b = bufs[next++ % 4];
  snprintf(b, 32, "127.0.0.1:%u", port);
  return b;
}

/* The lines of the JSON log, at most 16. */
static size_t log_lines(const char *path, char lines[16][2048]) {
  FILE *f = fopen(path, "r");
  size_t n = 0;
  if (!f)
    return 0;
  while (n < 16 && fgets(lines[n], 2048, f))
    n++;
  fclose(f);
  return n;
}

/* A JSON string member "key":"value" (with or without a space). */
static bool json_has(const char *line, const char *key, const char *value) {
  char a[512], b[512];
  snprintf(a, sizeof a, "\"%s\":\"%s\"", key, value);
  snprintf(b, sizeof b, "\"%s\": \"%s\"", key, value);
  return strstr(line, a) || strstr(line, b);
}

/* ------------------------------------------------------------------------ */
/* Done when (1): a refused primary, the backup at once, two log rows.       */

Test(cli_send, refused_primary_detours_at_once) {
  tiny_server p2;
  server_start(&p2, MODE_ACCEPT);
  unsigned p1 = refused_port();
  const char *s1 = server_arg(p1), *s2 = server_arg(p2.port);
  const char *log = in_dir("log.jsonl");
  const char *args[] = {"send",          "--server", s1,
                        "--server",      s2,         "--from",
                        "a@example.com", "--to",     "abc@example.com",
                        "--log",         log,        NULL};
  run_result r;
  run_detour(&r, args);
  server_stop(&p2);
  cr_assert_eq(r.status, 0, "exit %d\nstderr:\n%s", r.status, r.err);
  cr_expect_lt(r.elapsed_ms, 3000, "no wait before the backup: %.0f ms",
               r.elapsed_ms);
  cr_expect_eq(p2.nconns, 1);
  cr_expect_eq(p2.nmessages, 1);
  cr_expect_not_null(strstr(p2.body, "Hello through the backup."), "%s",
                     p2.body);
  char lines[16][2048];
  size_t n = log_lines(log, lines);
  cr_assert_eq(n, 2, "exactly two rows, got %zu:\n%s", n, slurp(log));
  cr_expect(json_has(lines[0], "result", "TCP error"), "%s", lines[0]);
  cr_expect(json_has(lines[0], "server", s1), "%s", lines[0]);
  cr_expect(json_has(lines[0], "recipient", "abc@example.com"), "%s", lines[0]);
  cr_expect(json_has(lines[1], "result", "SMTP OK"), "%s", lines[1]);
  cr_expect(json_has(lines[1], "server", s2), "%s", lines[1]);
  cr_expect(json_has(lines[1], "recipient", "abc@example.com"), "%s", lines[1]);
  cr_expect_not_null(strstr(r.err, "TCP error"), "table on stderr:\n%s", r.err);
  cr_expect_not_null(strstr(r.err, "SMTP OK"), "%s", r.err);
  cr_expect_not_null(strstr(r.out, "abc@example.com: delivered"), "%s", r.out);
  cr_expect_null(strstr(r.err, "did not close"), "%s", r.err);
}

/* ------------------------------------------------------------------------ */
/* Done when (2): --detour deny: the primary only, every interval, then 75.  */

Test(cli_send, deny_retries_primary_then_tempfails) {
  tiny_server p1, p2;
  server_start(&p1, MODE_GREET_421);
  server_start(&p2, MODE_ACCEPT);
  const char *args[] = {"send",
                        "--server",
                        server_arg(p1.port),
                        "--server",
                        server_arg(p2.port),
                        "--from",
                        "a@example.com",
                        "--to",
                        "abc@example.com",
                        "--detour",
                        "deny",
                        "--retry-interval",
                        "200ms",
                        "--max-attempts",
                        "3",
                        NULL};
  run_result r;
  run_detour(&r, args);
  server_stop(&p1);
  server_stop(&p2);
  cr_expect_eq(r.status, 75, "exit %d\nstderr:\n%s", r.status, r.err);
  cr_expect_eq(p2.nconns, 0, "the backup is never contacted");
  cr_assert_eq(p1.nconns, 3, "3 attempts at the primary, got %d", p1.nconns);
  for (int i = 1; i < 3; i++) {
    double gap = p1.conn_at[i] - p1.conn_at[i - 1];
    cr_expect(gap >= 180 && gap < 1500,
              "attempt %d came %.0f ms after the "
              "one before (interval 200 ms)",
              i + 1, gap);
  }
  cr_expect_not_null(strstr(r.err, "detour: warning: "), "%s", r.err);
  cr_expect_not_null(strstr(r.err, "configuration error"), "%s", r.err);
  cr_expect_not_null(strstr(r.out, "abc@example.com: deferred"), "%s", r.out);
}

/* ------------------------------------------------------------------------ */
/* Done when (3): 550 5.1.1 at RCPT: one connection, exit 67, no retry.      */

Test(cli_send, rcpt_550_aborts_at_once) {
  tiny_server p1, p2;
  server_start(&p1, MODE_RCPT_550);
  server_start(&p2, MODE_ACCEPT);
  const char *args[] = {"send",
                        "--server",
                        server_arg(p1.port),
                        "--server",
                        server_arg(p2.port),
                        "--from",
                        "a@example.com",
                        "--to",
                        "nobody@example.com",
                        "--retry-interval",
                        "200ms",
                        "--max-attempts",
                        "3",
                        NULL};
  run_result r;
  run_detour(&r, args);
  /* Anything still to come (a retry would be 200 ms away) is seen here. */
  struct timespec ts = {0, 400 * 1000 * 1000};
  nanosleep(&ts, NULL);
  server_stop(&p1);
  server_stop(&p2);
  cr_expect_eq(r.status, 67, "exit %d\nstderr:\n%s", r.status, r.err);
  cr_expect_eq(p1.nconns, 1, "one connection, got %d", p1.nconns);
  cr_expect_eq(p2.nconns, 0, "no detour for a recipient error");
  cr_expect_eq(p1.nmessages, 0);
  cr_expect_not_null(strstr(r.out, "nobody@example.com: aborted"), "%s", r.out);
}

/* ------------------------------------------------------------------------ */
/* Configuration file, usage and configuration errors, help, SIGTERM.        */

Test(cli_send, config_file_servers_and_log) {
  tiny_server p2;
  server_start(&p2, MODE_ACCEPT);
  unsigned p1 = refused_port();
  const char *cfg = in_dir("relay.yaml"), *log = in_dir("log.jsonl");
  char text[512];
  snprintf(text, sizeof text,
           "servers:\n"
           "  - { host: 127.0.0.1, port: %u, priority: 1 }\n"
           "  - \"127.0.0.1:%u\"\n"
           "retry: { interval: 3m, max_attempts: 2 }\n"
           "timeouts: { connect: 5s, greeting: 5s }\n"
           "log: %s\n",
           p1, p2.port, log);
  write_file(cfg, text);
  const char *args[] = {
      "send", "--config",        cfg, "--from", "a@example.com",
      "--to", "abc@example.com", NULL};
  run_result r;
  run_detour(&r, args);
  server_stop(&p2);
  cr_expect_eq(r.status, 0, "exit %d\nstderr:\n%s", r.status, r.err);
  cr_expect_eq(p2.nmessages, 1);
  char lines[16][2048];
  cr_expect_eq(log_lines(log, lines), 2, "%s", slurp(log));
}

Test(cli_send, usage_errors_exit_64) {
  static const char *const cases[][10] = {
      {"send", "--server", "127.0.0.1:1", "--to", "b@example.com", NULL},
      {"send", "--server", "127.0.0.1:1", "--from", "a@example.com", NULL},
      {"send", "--from", "a@example.com", "--to", "b@example.com", NULL},
      {"send", "--server", "127.0.0.1:99999", "--from", "a@example.com", "--to",
       "b@example.com", NULL},
      {"send", "--server", "127.0.0.1:1", "--from", "a@example.com", "--to",
       "b@example.com", "--bogus", NULL},
      {"send", "--server", "127.0.0.1:1", "--from", "a@example.com", "--to",
       "b@example.com", "--retry-interval=soon", NULL},
      {"send", "--server", "127.0.0.1:1", "--from", "a@example.com", "--to",
       "b@example.com", "--detour=maybe", NULL},
      {"send", "--server", "127.0.0.1:1", "--from", "a@example.com", "--to",
       "b@example.com", "--max-attempts=0", NULL},
      {"frobnicate", NULL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    run_result r;
    run_detour(&r, cases[i]);
    cr_expect_eq(r.status, 64, "case %zu: exit %d\n%s", i, r.status, r.err);
    cr_expect_not_null(strstr(r.err, "detour"), "case %zu: %s", i, r.err);
  }
}

Test(cli_send, config_error_exit_78_names_place) {
  const char *cfg = in_dir("relay.yaml");
  write_file(cfg, "servers: [\"127.0.0.1:1\"]\nretry:\n  interval: xyz\n");
  const char *args[] = {"send", "--config",      cfg, "--from", "a@example.com",
                        "--to", "b@example.com", NULL};
  run_result r;
  run_detour(&r, args);
  cr_expect_eq(r.status, 78, "exit %d\n%s", r.status, r.err);
  char want[256];
  snprintf(want, sizeof want, "%s:3:13: key 'retry.interval'", cfg);
  cr_expect_not_null(strstr(r.err, want), "want %s in:\n%s", want, r.err);

  write_file(cfg, "retry: { interval: 1s }\n");
  run_detour(&r, args);
  cr_expect_eq(r.status, 78, "no servers: exit %d\n%s", r.status, r.err);
  const char *missing[] = {
      "send",          "--config", "/nonexistent/relay.yaml", "--from",
      "a@example.com", "--to",     "b@example.com",           NULL};
  run_detour(&r, missing);
  cr_expect_eq(r.status, 78, "missing file: exit %d\n%s", r.status, r.err);
}

Test(cli_send, help_and_version) {
  run_result r;
  const char *help[] = {"send", "--help", NULL};
  run_detour(&r, help);
  cr_expect_eq(r.status, 0);
  cr_expect_not_null(strstr(r.out, "Usage: detour send"), "%s", r.out);
  const char *version[] = {"--version", NULL};
  run_detour(&r, version);
  cr_expect_eq(r.status, 0);
  cr_expect_not_null(strstr(r.out, "detour 0."), "%s", r.out);
  const char *top[] = {"--help", NULL};
  run_detour(&r, top);
  cr_expect_eq(r.status, 0);
  cr_expect_not_null(strstr(r.out, "send"), "%s", r.out);
  const char *none[] = {NULL};
  run_detour(&r, none);
  cr_expect_eq(r.status, 64);
}

Test(cli_send, sigterm_exits_75_not_delivered) {
  tiny_server p1;
  server_start(&p1, MODE_GREET_421);
  const char *args[] = {"send",
                        "--server",
                        server_arg(p1.port),
                        "--from",
                        "a@example.com",
                        "--to",
                        "abc@example.com",
                        "--retry-interval",
                        "10s",
                        "--max-attempts",
                        "5",
                        NULL};
  run_result r;
  run_detour_ex(&r, args, 700);
  server_stop(&p1);
  cr_expect_eq(r.status, 75, "exit %d\n%s", r.status, r.err);
  cr_expect_lt(r.elapsed_ms, 5000, "stops at once: %.0f ms", r.elapsed_ms);
  cr_expect_eq(p1.nconns, 1);
  cr_expect_not_null(strstr(r.err, "interrupted"), "%s", r.err);
  cr_expect_null(strstr(r.out, "delivered via"), "%s", r.out);
}

Test(cli_send, message_over_64_mib_is_refused) {
  tiny_server p1;
  server_start(&p1, MODE_ACCEPT);
  const char *args[] = {
      "send",          "--server", server_arg(p1.port), "--from",
      "a@example.com", "--to",     "abc@example.com",   NULL};
  g_stdin_size = (off_t)64 * 1024 * 1024 + 1;
  run_result r;
  run_detour(&r, args);
  server_stop(&p1);
  cr_expect_eq(r.status, 65, "exit %d\n%s", r.status, r.err);
  cr_expect_not_null(strstr(r.err, "larger than 64 MiB"), "%s", r.err);
  cr_expect_eq(p1.nconns, 0, "nothing is sent");
}

/* ------------------------------------------------------------------------ */
/* The body: streamed in blocks, each with the data-block timeout (R11)      */

/* A 12 MiB message to a server that reads at about 2 MB/s, with a
 * data-block timeout of 2 s: each block is written within it, the whole
 * body is not (on main before the change: a timeout, exit 75). RFC 5321
 * 4.5.3.2 bounds each block, so it is delivered, on the first attempt,
 * byte-exact (dot-stuffing undone). The margin: the kernel queues up to
 * 4 MiB and reports room again only once about a third has drained, so a
 * block may wait about 0.7 s at 2 MB/s. */
Test(cli_send, large_message_on_a_slow_link_is_delivered_byte_exact,
     .timeout = 60) {
  size_t len = 12u * 1024 * 1024;
  char *msg = malloc(len);
  cr_assert_not_null(msg);
  static const char head[] = "Subject: large\n\n";
  memcpy(msg, head, sizeof head - 1);
  for (size_t i = sizeof head - 1; i < len; i++) {
    size_t col = i % 80;
    msg[i] = col == 79                       ? '\n'
             : col == 0 && (i / 80) % 7 == 0 ? '.'
                                             : (char)('a' + i % 26);
  }
  msg[len - 1] = '\n';
  uint64_t want_hash = fnv1a(FNV_OFFSET, msg, len);
  tiny_server p1;
  server_start(&p1, MODE_SLOW_READ);
  /* data_block 2s; the final dot has its default 10 min (the kernel
   * buffers megabytes that the server drains after the last block) */
  const char *cfg = in_dir("relay.yaml");
  char text[256];
  snprintf(text, sizeof text,
           "servers: [\"127.0.0.1:%u\"]\n"
           "retry: { max_attempts: 1 }\n"
           "timeouts: { data_block: 2s }\n",
           p1.port);
  write_file(cfg, text);
  const char *args[] = {
      "send", "--config",        cfg, "--from", "a@example.com",
      "--to", "abc@example.com", NULL};
  g_stdin_data = msg;
  g_stdin_len = len;
  run_result r;
  run_detour(&r, args);
  g_stdin_data = NULL;
  server_stop(&p1);
  free(msg);
  cr_expect_eq(r.status, 0, "exit %d\n%s", r.status, r.err);
  cr_expect_gt(r.elapsed_ms, 2000, "the link was slow: %.0f ms", r.elapsed_ms);
  cr_expect_eq(p1.nconns, 1, "one attempt");
  cr_expect_eq(p1.nmessages, 1);
  cr_expect_eq(p1.body_total, len, "bytes received %llu",
               (unsigned long long)p1.body_total);
  cr_expect_eq(p1.body_hash, want_hash, "the body arrived changed");
}

/* An empty stdin is not a message: nothing is sent, exit 66 with why. */
Test(cli_send, empty_stdin_is_refused) {
  tiny_server p1;
  server_start(&p1, MODE_ACCEPT);
  const char *args[] = {
      "send",          "--server", server_arg(p1.port), "--from",
      "a@example.com", "--to",     "abc@example.com",   NULL};
  g_stdin_data = "";
  g_stdin_len = 0;
  run_result r;
  run_detour(&r, args);
  g_stdin_data = NULL;
  server_stop(&p1);
  cr_expect_eq(r.status, 66, "exit %d\n%s", r.status, r.err);
  cr_expect_not_null(strstr(r.err, "empty"), "%s", r.err);
  cr_expect_eq(p1.nconns, 0, "nothing is sent");
}

/* A stdin that cannot be read (here a directory: EISDIR) is an error,
 * not an empty message: exit 74, nothing sent. */
Test(cli_send, unreadable_stdin_is_an_error) {
  tiny_server p1;
  server_start(&p1, MODE_ACCEPT);
  const char *args[] = {
      "send",          "--server", server_arg(p1.port), "--from",
      "a@example.com", "--to",     "abc@example.com",   NULL};
  g_stdin_path = g_dir;
  run_result r;
  run_detour(&r, args);
  g_stdin_path = NULL;
  server_stop(&p1);
  cr_expect_eq(r.status, 74, "exit %d\n%s", r.status, r.err);
  cr_expect_not_null(strstr(r.err, "cannot read the message"), "%s", r.err);
  cr_expect_eq(p1.nconns, 0, "nothing is sent");
}

/* A last line without a line end is sent (with one added), with a
 * warning: the input was perhaps cut short. */
Test(cli_send, message_without_final_newline_warns) {
  tiny_server p1;
  server_start(&p1, MODE_ACCEPT);
  const char *args[] = {
      "send",          "--server", server_arg(p1.port), "--from",
      "a@example.com", "--to",     "abc@example.com",   NULL};
  static const char cut[] = "Subject: cut\n\nthe end is mis";
  g_stdin_data = cut;
  g_stdin_len = sizeof cut - 1;
  run_result r;
  run_detour(&r, args);
  g_stdin_data = NULL;
  server_stop(&p1);
  cr_expect_eq(r.status, 0, "exit %d\n%s", r.status, r.err);
  cr_expect_not_null(strstr(r.err, "cut short"), "%s", r.err);
  cr_expect_not_null(strstr(p1.body, "the end is mis\n"), "%s", p1.body);
}

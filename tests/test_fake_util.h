/*
 * test_fake_util.h - helpers of the fake-server tests: run fake servers on
 * a real clock in a thread of their own, and talk to them with plain
 * blocking sockets (every read bounded by a timeout), so a test reads like
 * the wire it checks. Header-only: each test binary is one .c file.
 */
#ifndef DETOUR_TEST_FAKE_UTIL_H
#define DETOUR_TEST_FAKE_UTIL_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <signal.h>

#include <criterion/criterion.h>

#include "detour/fake.h"

/* Not every test file uses every helper. */
#define FT_FN static __attribute__((unused))

#define FT_MAX_SERVERS 8

typedef struct {
  uv_loop_t loop;
  uv_async_t stop;
  uv_async_t query; /* ft_stats: read counters on the loop's thread */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  size_t query_srv;
  detour_fake_stats query_out;
  bool query_done;
  detour_clock *clock;
  detour_fake_server *srv[FT_MAX_SERVERS];
  size_t nsrv;
  pthread_t thread;
  bool running;
} ft_env;

FT_FN void ft__on_stop(uv_async_t *a) {
  ft_env *e = a->data;
  for (size_t i = 0; i < e->nsrv; i++)
    detour_fake_server_stop(e->srv[i]);
  uv_close((uv_handle_t *)&e->stop, NULL);
  uv_close((uv_handle_t *)&e->query, NULL);
}

FT_FN void ft__on_query(uv_async_t *a) {
  ft_env *e = a->data;
  pthread_mutex_lock(&e->mu);
  detour_fake_server_stats(e->srv[e->query_srv], &e->query_out);
  e->query_done = true;
  pthread_cond_signal(&e->cv);
  pthread_mutex_unlock(&e->mu);
}

/* The counters of server i while its loop runs (read on the loop's own
 * thread, so the test never races it). */
FT_FN void ft_stats(ft_env *e, size_t i, detour_fake_stats *out) {
  pthread_mutex_lock(&e->mu);
  e->query_srv = i;
  e->query_done = false;
  uv_async_send(&e->query);
  while (!e->query_done)
    pthread_cond_wait(&e->cv, &e->mu);
  *out = e->query_out;
  pthread_mutex_unlock(&e->mu);
}

FT_FN void *ft__thread(void *arg) {
  ft_env *e = arg;
  uv_run(&e->loop, UV_RUN_DEFAULT);
  return NULL;
}

/* Run e's loop (servers started) in a thread of its own. */
FT_FN void ft_launch(ft_env *e) {
  uv_async_init(&e->loop, &e->stop, ft__on_stop);
  uv_async_init(&e->loop, &e->query, ft__on_query);
  e->stop.data = e->query.data = e;
  pthread_mutex_init(&e->mu, NULL);
  pthread_cond_init(&e->cv, NULL);
  cr_assert_eq(pthread_create(&e->thread, NULL, ft__thread, e), 0);
  e->running = true;
}

/* Load `yaml` (one server or servers: [...]) and start every server on a
 * real clock, in a loop thread. */
FT_FN void ft_start(ft_env *e, const char *yaml) {
  char err[512] = "";
  size_t n = 0;
  memset(e, 0, sizeof *e);
  signal(SIGPIPE, SIG_IGN); /* libuv writes to peers that may be gone */
  cr_assert_eq(uv_loop_init(&e->loop), 0);
  e->clock = detour_clock_new_real(&e->loop);
  cr_assert_not_null(e->clock);
  detour_fake_script **v = detour_fake_load_string(
      yaml, strlen(yaml), "test.yaml", &n, err, sizeof err);
  cr_assert_not_null(v, "load: %s", err);
  cr_assert(n <= FT_MAX_SERVERS);
  for (size_t i = 0; i < n; i++) {
    int rc = 0;
    e->srv[i] = detour_fake_server_new(e->clock, v[i], NULL, 0, &rc);
    cr_assert_not_null(e->srv[i], "server_new: %d", rc);
    cr_assert_eq(detour_fake_server_start(e->srv[i], err, sizeof err), 0,
                 "start: %s", err);
  }
  e->nsrv = n;
  detour_fake_scripts_free(v, n);
  ft_launch(e);
}

/* Stop the servers and join the loop thread; records stay readable. */
FT_FN void ft_join(ft_env *e) {
  if (!e->running)
    return;
  uv_async_send(&e->stop);
  pthread_join(e->thread, NULL);
  e->running = false;
}

/* Free everything; the loop must close clean. */
FT_FN void ft_finish(ft_env *e) {
  ft_join(e);
  for (size_t i = 0; i < e->nsrv; i++)
    detour_fake_server_free(e->srv[i]);
  uv_run(&e->loop, UV_RUN_DEFAULT);
  detour_clock_free(e->clock);
  uv_run(&e->loop, UV_RUN_DEFAULT);
  cr_assert_eq(uv_loop_close(&e->loop), 0, "the loop closes clean");
}

FT_FN double ft_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------------------ */
/* Blocking clients                                                          */

FT_FN int ft_addr(const char *ip, uint16_t port, struct sockaddr_storage *ss,
                  socklen_t *len) {
  memset(ss, 0, sizeof *ss);
  if (strchr(ip, ':')) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    *len = sizeof *a;
    return inet_pton(AF_INET6, ip, &a->sin6_addr) == 1 ? 0 : -1;
  }
  struct sockaddr_in *a = (struct sockaddr_in *)ss;
  a->sin_family = AF_INET;
  a->sin_port = htons(port);
  *len = sizeof *a;
  return inet_pton(AF_INET, ip, &a->sin_addr) == 1 ? 0 : -1;
}

/* Connect with a timeout (ms). Returns the fd, or -errno. */
FT_FN int ft_connect_to(const char *ip, uint16_t port, int timeout_ms) {
  struct sockaddr_storage ss;
  socklen_t len;
  if (ft_addr(ip, port, &ss, &len) != 0)
    return -EINVAL;
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (fd < 0)
    return -errno;
  if (connect(fd, (struct sockaddr *)&ss, len) != 0 && errno != EINPROGRESS) {
    int e = errno;
    close(fd);
    return -e;
  }
  struct pollfd p = {.fd = fd, .events = POLLOUT};
  int soerr = 0;
  socklen_t sl = sizeof soerr;
  if (poll(&p, 1, timeout_ms) != 1) {
    close(fd);
    return -ETIMEDOUT;
  }
  getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
  if (soerr) {
    close(fd);
    return -soerr;
  }
  /* Back to blocking for sends; reads poll with a timeout first. */
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

FT_FN int ft_connect(const detour_fake_server *srv) {
  return ft_connect_to(detour_fake_server_ip(srv), detour_fake_server_port(srv),
                       2000);
}

/* Read once with a timeout: >0 bytes, 0 EOF, -ETIMEDOUT, -errno. */
FT_FN ssize_t ft_read_some(int fd, char *buf, size_t cap, int timeout_ms) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  int r = poll(&p, 1, timeout_ms);
  if (r == 0)
    return -ETIMEDOUT;
  ssize_t n = recv(fd, buf, cap, 0);
  return n < 0 ? -errno : n;
}

/* Read until a complete reply (a line "ddd " or "ddd\r\n") is in buf, EOF,
 * or the timeout. Returns the bytes read (buf NUL-terminated), or a
 * negative errno when nothing came. */
FT_FN ssize_t ft_read_reply(int fd, char *buf, size_t cap, int timeout_ms) {
  size_t len = 0;
  double end = ft_now() + timeout_ms / 1000.0;
  buf[0] = '\0';
  while (len + 1 < cap) {
    int left = (int)((end - ft_now()) * 1000);
    if (left <= 0)
      break;
    ssize_t n = ft_read_some(fd, buf + len, cap - 1 - len, left);
    if (n <= 0) {
      if (len)
        break;
      return n == 0 ? 0 : n;
    }
    len += (size_t)n;
    buf[len] = '\0';
    /* complete when the last line ends and has a space (or nothing) after
     * its code */
    if (len >= 2 && buf[len - 1] == '\n') {
      char *last = buf + len - 1;
      while (last > buf && last[-1] != '\n')
        last--;
      if (last + 3 < buf + len &&
          (last[3] == ' ' || last[3] == '\r' || last[3] == '\n'))
        break;
    }
  }
  return (ssize_t)len;
}

FT_FN void ft_send(int fd, const char *s) {
  size_t len = strlen(s), off = 0;
  while (off < len) {
    ssize_t n = send(fd, s + off, len - off, MSG_NOSIGNAL);
    if (n <= 0)
      return;
    off += (size_t)n;
  }
}

/* Send a command (CRLF added) and read the reply. */
FT_FN ssize_t ft_cmd(int fd, const char *cmd, char *buf, size_t cap) {
  char line[1024];
  snprintf(line, sizeof line, "%s\r\n", cmd);
  ft_send(fd, line);
  return ft_read_reply(fd, buf, cap, 3000);
}

/* Expect a reply starting with `prefix` to `cmd` (NULL: just read). */
#define FT_EXPECT(fd, cmd, prefix)                                             \
  do {                                                                         \
    char ft_buf_[8192];                                                        \
    ssize_t ft_n_ = (cmd)                                                      \
                        ? ft_cmd((fd), (cmd), ft_buf_, sizeof ft_buf_)         \
                        : ft_read_reply((fd), ft_buf_, sizeof ft_buf_, 3000);  \
    cr_assert(ft_n_ > 0 && strncmp(ft_buf_, (prefix), strlen(prefix)) == 0,    \
              "%s: expected '%s', got (%zd) '%s'", (cmd) ? (cmd) : "(read)",   \
              (prefix), ft_n_, ft_n_ > 0 ? ft_buf_ : "");                      \
  } while (0)

/* Wait for EOF or reset: returns 0 on EOF, -ECONNRESET, -ETIMEDOUT. */
FT_FN int ft_wait_close(int fd, int timeout_ms) {
  char buf[4096];
  double end = ft_now() + timeout_ms / 1000.0;
  for (;;) {
    int left = (int)((end - ft_now()) * 1000);
    if (left <= 0)
      return -ETIMEDOUT;
    ssize_t n = ft_read_some(fd, buf, sizeof buf, left);
    if (n <= 0)
      return (int)n;
  }
}

/* The count of events of type t (and stage st, unless st < 0). */
FT_FN size_t ft_count(const detour_fake_server *srv, detour_fake_event_type t,
                      int st) {
  size_t k = 0;
  for (size_t i = 0; i < detour_fake_server_event_count(srv); i++) {
    detour_fake_event ev;
    detour_fake_server_event(srv, i, &ev);
    if (ev.type == t && (st < 0 || (int)ev.stage == st))
      k++;
  }
  return k;
}

/* Events of type t whose data starts with `prefix`. */
FT_FN size_t ft_count_data(const detour_fake_server *srv,
                           detour_fake_event_type t, const char *prefix) {
  size_t k = 0, pl = strlen(prefix);
  for (size_t i = 0; i < detour_fake_server_event_count(srv); i++) {
    detour_fake_event ev;
    detour_fake_server_event(srv, i, &ev);
    if (ev.type == t && ev.len >= pl && memcmp(ev.data, prefix, pl) == 0)
      k++;
  }
  return k;
}

/* A field of /proc/self/status in kB (VmRSS, VmHWM), -1 if absent. */
FT_FN long ft_status_kb(const char *field) {
  char line[256];
  long v = -1;
  size_t fl = strlen(field);
  FILE *f = fopen("/proc/self/status", "r");
  if (!f)
    return -1;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, field, fl) == 0 && line[fl] == ':')
      v = strtol(line + fl + 1, NULL, 10);
  fclose(f);
  return v;
}

/* Open descriptors of this process. */
FT_FN int ft_fd_count(void) {
  char path[64];
  int n = 0;
  for (int fd = 0; fd < 65536; fd++) {
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    if (access(path, F_OK) == 0)
      n++;
  }
  return n;
}

/* A whole normal session (greeting .. QUIT with one message); returns
 * its duration in ms, asserting every reply. */
FT_FN double ft_normal_session_ms(const detour_fake_server *srv) {
  double t0 = ft_now();
  int fd = ft_connect(srv);
  cr_assert_geq(fd, 0, "normal client connects: %d", fd);
  FT_EXPECT(fd, NULL, "220");
  FT_EXPECT(fd, "EHLO normal.test", "250");
  FT_EXPECT(fd, "MAIL FROM:<n@normal.test>", "250");
  FT_EXPECT(fd, "RCPT TO:<r@normal.test>", "250");
  FT_EXPECT(fd, "DATA", "354");
  ft_send(fd, "Subject: normal\r\n\r\nhello\r\n.\r\n");
  FT_EXPECT(fd, NULL, "250");
  FT_EXPECT(fd, "QUIT", "221");
  close(fd);
  return (ft_now() - t0) * 1000.0;
}

#endif /* DETOUR_TEST_FAKE_UTIL_H */

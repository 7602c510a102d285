/*
 * test_uv_driver.c - the libuv driver (detour_uv) running the real engine
 * against tiny in-test SMTP servers on loopback: one that accepts mail,
 * one that drops every connection, one that never speaks, and a port that
 * refuses. Runs in virtual time (exact timestamps) and once in real time;
 * every test ends with the loop closing clean.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "detour/detour_uv.h"

#define T0 ((detour_ms)1000000000000)
#define MINUTES(m) ((detour_ms)(m)*60 * 1000)

static uv_loop_t loop;

static void setup(void) { cr_assert_eq(uv_loop_init(&loop), 0); }

TestSuite(uv_driver, .init = setup, .timeout = 60);

/* ------------------------------------------------------------------------ */
/* Tiny SMTP servers                                                         */

typedef enum {
  SRV_SMTP,  /* 220, then a minimal ESMTP dialogue that accepts mail */
  SRV_DROP,  /* accept, then close at once */
  SRV_SILENT /* accept, read, never answer */
} srv_kind;

typedef struct server server;

typedef struct sconn {
  uv_tcp_t tcp;
  server *srv;
  struct sconn *next;
  char line[2048];
  size_t line_len;
  bool in_data;
  bool closing;
} sconn;

struct server {
  srv_kind kind;
  uv_tcp_t listener;
  bool listening;
  uint16_t port;
  int connections;
  int messages;
  char transcript[8192]; /* every line received, "\n"-separated */
  size_t transcript_len;
  sconn *conns;
  int client_nodelay; /* TCP_NODELAY of the engine's socket: -1 not found */
};

static char rbuf[65536];

static void srv_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)h, (void)hint;
  *buf = uv_buf_init(rbuf, sizeof rbuf);
}

static void sconn_closed(uv_handle_t *h) {
  sconn *sc = h->data;
  sconn **p = &sc->srv->conns;
  while (*p != sc)
    p = &(*p)->next;
  *p = sc->next;
  free(sc);
}

static void sconn_close(sconn *sc) {
  if (sc->closing)
    return;
  sc->closing = true;
  uv_close((uv_handle_t *)&sc->tcp, sconn_closed);
}

typedef struct {
  uv_write_t req;
  sconn *sc;
  bool close_after;
  char data[];
} swrite;

static void swritten(uv_write_t *req, int status) {
  swrite *w = req->data;
  if (w->close_after && status != UV_ECANCELED)
    sconn_close(w->sc);
  free(w);
}

static void sreply(sconn *sc, const char *text, bool close_after) {
  size_t n = strlen(text);
  swrite *w = malloc(sizeof *w + n);
  memcpy(w->data, text, n);
  w->sc = sc;
  w->close_after = close_after;
  w->req.data = w;
  uv_buf_t b = uv_buf_init(w->data, (unsigned)n);
  cr_assert_eq(uv_write(&w->req, (uv_stream_t *)&sc->tcp, &b, 1, swritten), 0);
}

static void record_line(server *s, const char *line) {
  int n = snprintf(s->transcript + s->transcript_len,
                   sizeof s->transcript - s->transcript_len, "%s\n", line);
  if (n > 0 && (size_t)n < sizeof s->transcript - s->transcript_len)
    s->transcript_len += (size_t)n;
}

static bool is_cmd(const char *line, const char *cmd) {
  return strncasecmp(line, cmd, strlen(cmd)) == 0;
}

static void smtp_line(sconn *sc, const char *line) {
  server *s = sc->srv;
  record_line(s, line);
  if (sc->in_data) {
    if (strcmp(line, ".") == 0) {
      sc->in_data = false;
      s->messages++;
      sreply(sc, "250 2.0.0 queued as 42\r\n", false);
    }
    return;
  }
  if (is_cmd(line, "EHLO"))
    sreply(sc, "250-test.local\r\n250 8BITMIME\r\n", false);
  else if (is_cmd(line, "HELO") || is_cmd(line, "RSET") || is_cmd(line, "NOOP"))
    sreply(sc, "250 OK\r\n", false);
  else if (is_cmd(line, "MAIL FROM:"))
    sreply(sc, "250 2.1.0 OK\r\n", false);
  else if (is_cmd(line, "RCPT TO:"))
    sreply(sc, "250 2.1.5 OK\r\n", false);
  else if (is_cmd(line, "DATA")) {
    sc->in_data = true;
    sreply(sc, "354 go ahead\r\n", false);
  } else if (is_cmd(line, "QUIT"))
    sreply(sc, "221 2.0.0 bye\r\n", true);
  else
    sreply(sc, "500 5.5.1 what?\r\n", false);
}

static void srv_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf) {
  sconn *sc = st->data;
  if (n < 0) {
    sconn_close(sc);
    return;
  }
  if (sc->srv->kind != SRV_SMTP)
    return;
  for (ssize_t i = 0; i < n && !sc->closing; i++) {
    char ch = buf->base[i];
    if (ch == '\n') {
      if (sc->line_len > 0 && sc->line[sc->line_len - 1] == '\r')
        sc->line_len--;
      sc->line[sc->line_len] = '\0';
      sc->line_len = 0;
      smtp_line(sc, sc->line);
    } else if (sc->line_len + 1 < sizeof sc->line) {
      sc->line[sc->line_len++] = ch;
    }
  }
}

static bool same_address(const struct sockaddr_storage *a,
                         const struct sockaddr_storage *b) {
  if (a->ss_family != AF_INET || b->ss_family != AF_INET)
    return false;
  const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
  return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
}

/* The engine runs in this process: find its end of the accepted
 * connection among our descriptors (its local address is our peer) and
 * read its TCP_NODELAY. -1 when not found (not IPv4). */
static int client_nodelay(uv_tcp_t *accepted) {
  struct sockaddr_storage peer;
  int len = sizeof peer;
  if (uv_tcp_getpeername(accepted, (struct sockaddr *)&peer, &len) != 0)
    return -1;
  DIR *d = opendir("/proc/self/fd");
  if (d == NULL)
    return -1;
  int found = -1;
  for (struct dirent *de; found < 0 && (de = readdir(d)) != NULL;) {
    int fd = atoi(de->d_name);
    struct sockaddr_storage local;
    socklen_t ll = sizeof local;
    int on = 0;
    socklen_t ol = sizeof on;
    if (de->d_name[0] != '.' &&
        getsockname(fd, (struct sockaddr *)&local, &ll) == 0 &&
        same_address(&local, &peer) &&
        getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, &ol) == 0)
      found = on != 0;
  }
  closedir(d);
  return found;
}

static void srv_connection(uv_stream_t *l, int status) {
  server *s = l->data;
  cr_assert_eq(status, 0);
  sconn *sc = calloc(1, sizeof *sc);
  sc->srv = s;
  sc->tcp.data = sc;
  sc->next = s->conns;
  s->conns = sc;
  uv_tcp_init(l->loop, &sc->tcp);
  cr_assert_eq(uv_accept(l, (uv_stream_t *)&sc->tcp), 0);
  s->connections++;
  s->client_nodelay = client_nodelay(&sc->tcp);
  if (s->kind == SRV_DROP) {
    sconn_close(sc);
    return;
  }
  uv_read_start((uv_stream_t *)&sc->tcp, srv_alloc, srv_read);
  if (s->kind == SRV_SMTP)
    sreply(sc, "220 test.local ESMTP ready\r\n", false);
}

/* Binds to ip:port (port 0: any free one). Returns false when ip cannot be
 * bound (no IPv6 here). */
static bool server_start(server *s, srv_kind kind, const char *ip,
                         uint16_t port) {
  memset(s, 0, sizeof *s);
  s->kind = kind;
  struct sockaddr_storage ss;
  if (uv_ip4_addr(ip, port, (struct sockaddr_in *)&ss) != 0)
    cr_assert_eq(uv_ip6_addr(ip, port, (struct sockaddr_in6 *)&ss), 0);
  uv_tcp_init(&loop, &s->listener);
  s->listener.data = s;
  s->listening = true;
  if (uv_tcp_bind(&s->listener, (struct sockaddr *)&ss, 0) != 0 ||
      uv_listen((uv_stream_t *)&s->listener, 16, srv_connection) != 0) {
    uv_close((uv_handle_t *)&s->listener, NULL);
    s->listening = false;
    return false;
  }
  int len = sizeof ss;
  uv_tcp_getsockname(&s->listener, (struct sockaddr *)&ss, &len);
  s->port = ntohs(((struct sockaddr_in *)&ss)->sin_port); /* same offset */
  return true;
}

static void server_stop(server *s) {
  if (s->listening)
    uv_close((uv_handle_t *)&s->listener, NULL);
  s->listening = false;
  for (sconn *sc = s->conns; sc != NULL; sc = sc->next)
    sconn_close(sc);
}

/* A port on 127.0.0.1 that refuses: bound once to find it free, then
 * closed. */
static uint16_t refusing_port(void) {
  uv_tcp_t t;
  struct sockaddr_in a;
  uv_ip4_addr("127.0.0.1", 0, &a);
  uv_tcp_init(&loop, &t);
  cr_assert_eq(uv_tcp_bind(&t, (struct sockaddr *)&a, 0), 0);
  int len = sizeof a;
  uv_tcp_getsockname(&t, (struct sockaddr *)&a, &len);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(&loop, UV_RUN_NOWAIT);
  return ntohs(a.sin_port);
}

/* ------------------------------------------------------------------------ */
/* What the driver reported                                                  */

typedef struct {
  detour_ms time;
  detour_log_kind kind;
  char rcpt[64];
  char server[64];
  char address[64];
  char result[128];
  detour_class cls;
  char detail[256];
  unsigned attempt;
} row_copy;

typedef struct {
  row_copy rows[64];
  int nrows;
  int nwarn;
  struct {
    size_t message, index;
    detour_rcpt_outcome outcome;
    int server;
  } rcpts[16];
  int nrcpts;
  int ndone;
  detour_done_status status[4];
} recorder;

typedef struct {
  detour_clock *clock;
  detour_engine *engine;
  detour_uv *uv;
  recorder rec;
  int want_done; /* messages that must finish */
  bool free_on_done;
} rig;

static void on_log(void *arg, const detour_log_row *row) {
  recorder *r = &((rig *)arg)->rec;
  cr_assert_lt(r->nrows, 64);
  row_copy *c = &r->rows[r->nrows++];
  c->time = row->time;
  c->kind = row->kind;
  snprintf(c->rcpt, sizeof c->rcpt, "%s", row->recipient);
  snprintf(c->server, sizeof c->server, "%s", row->server);
  snprintf(c->address, sizeof c->address, "%s", row->address);
  snprintf(c->result, sizeof c->result, "%s", row->result);
  snprintf(c->detail, sizeof c->detail, "%s", row->detail);
  c->cls = row->cls;
  c->attempt = row->attempt;
}

static void on_warn(void *arg, const char *text) {
  ((rig *)arg)->rec.nwarn++;
  cr_assert(strstr(text, "configuration error") != NULL, "%s", text);
}

static void on_rcpt(void *arg, size_t message, size_t index,
                    const char *recipient, detour_rcpt_outcome outcome, int srv,
                    const char *detail) {
  (void)recipient, (void)detail;
  recorder *r = &((rig *)arg)->rec;
  cr_assert_lt(r->nrcpts, 16);
  r->rcpts[r->nrcpts].message = message;
  r->rcpts[r->nrcpts].index = index;
  r->rcpts[r->nrcpts].outcome = outcome;
  r->rcpts[r->nrcpts].server = srv;
  r->nrcpts++;
}

static void on_done(void *arg, size_t message, detour_done_status status) {
  (void)message;
  rig *g = arg;
  cr_assert_lt(g->rec.ndone, 4);
  g->rec.status[g->rec.ndone++] = status;
  if (g->free_on_done) {
    detour_uv_free(g->uv);
    g->uv = NULL;
  }
}

static detour_config base_config(void) {
  detour_config cfg;
  detour_config_init(&cfg);
  cfg.max_attempts = 3;
  cfg.retry_interval = MINUTES(3);
  return cfg;
}

static void rig_start(rig *g, const detour_config *cfg, bool is_virtual) {
  memset(g, 0, sizeof *g);
  int err = 0;
  g->engine = detour_engine_new(cfg, &err);
  cr_assert_not_null(g->engine, "engine: %s", detour_strerror(err));
  g->clock = is_virtual ? detour_clock_new_virtual(&loop, T0)
                        : detour_clock_new_real(&loop);
  cr_assert_not_null(g->clock);
  detour_uv_callbacks cb = {on_log, on_warn, on_rcpt, on_done, g, NULL};
  g->uv = detour_uv_new(g->clock, g->engine, &cb);
  cr_assert_not_null(g->uv);
  g->want_done = 1;
}

static const char *const two_rcpts[] = {"alice@example.org", "bob@example.org"};

static void rig_submit(rig *g) {
  detour_message m = {.from = "sender@example.com",
                      .rcpts = two_rcpts,
                      .nrcpts = 2,
                      .body = "Subject: hi\n\nhello\n.dot line\n",
                      .body_len = strlen("Subject: hi\n\nhello\n.dot line\n")};
  int idx = detour_uv_submit(g->uv, &m);
  cr_assert_geq(idx, 0, "submit: %s", detour_strerror(idx));
}

static bool rig_finished(void *arg) {
  rig *g = arg;
  return g->rec.ndone >= g->want_done && detour_uv_idle(g->uv);
}

static void rig_run(rig *g) {
  cr_assert_eq(detour_clock_run_virtual(g->clock, rig_finished, g, 20000), 0,
               "run_virtual did not finish");
}

/* Frees everything and checks the loop closes clean. */
static void rig_finish(rig *g, server *servers, int nservers) {
  detour_uv_free(g->uv);
  detour_engine_free(g->engine);
  for (int i = 0; i < nservers; i++)
    server_stop(&servers[i]);
  for (int i = 0; i < 100 && uv_loop_alive(&loop); i++)
    uv_run(&loop, UV_RUN_NOWAIT);
  detour_clock_free(g->clock);
  cr_assert_eq(uv_loop_close(&loop), 0, "loop left with open handles");
}

static void label(char *buf, size_t len, const char *ip, uint16_t port) {
  snprintf(buf, len, strchr(ip, ':') ? "[%s]:%u" : "%s:%u", ip, (unsigned)port);
}

static void assert_row(const row_copy *r, detour_ms time, detour_log_kind kind,
                       const char *rcpt, const char *label_,
                       const char *result) {
  cr_assert_eq(r->time, time, "row time %lld, want %lld", (long long)r->time,
               (long long)time);
  cr_assert_eq(r->kind, kind);
  cr_assert_str_eq(r->rcpt, rcpt);
  cr_assert_str_eq(r->server, label_);
  cr_assert_str_eq(r->result, result);
}

/* ------------------------------------------------------------------------ */
/* Tests                                                                     */

Test(uv_driver, delivers_in_virtual_time) {
  server s;
  cr_assert(server_start(&s, SRV_SMTP, "127.0.0.1", 0));
  detour_config cfg = base_config();
  detour_config_add_server(&cfg, "127.0.0.1", s.port, 1);
  rig g;
  rig_start(&g, &cfg, true);
  rig_submit(&g);
  rig_run(&g);

  char lab[64];
  label(lab, sizeof lab, "127.0.0.1", s.port);
  cr_assert_eq(g.rec.nrows, 2);
  assert_row(&g.rec.rows[0], T0, DETOUR_LOG_SMTP, two_rcpts[0], lab, "SMTP OK");
  assert_row(&g.rec.rows[1], T0, DETOUR_LOG_SMTP, two_rcpts[1], lab, "SMTP OK");
  cr_assert_str_eq(g.rec.rows[0].address, lab);
  cr_assert_eq(g.rec.rows[0].cls, DETOUR_CLASS_NONE);
  cr_assert_eq(g.rec.rows[0].attempt, 1);
  cr_assert_eq(g.rec.nrcpts, 2);
  for (int i = 0; i < 2; i++) {
    cr_assert_eq(g.rec.rcpts[i].outcome, DETOUR_RCPT_DELIVERED);
    cr_assert_eq(g.rec.rcpts[i].server, 0);
  }
  cr_assert_eq(g.rec.ndone, 1);
  cr_assert_eq(g.rec.status[0], DETOUR_DONE_DELIVERED);
  cr_assert_eq(g.rec.nwarn, 0);
  cr_assert_eq(detour_clock_now(g.clock), T0, "no time passed");
  cr_assert_eq(s.connections, 1);
  /* Nagle off: a pipelined RCPT and DATA must not wait for MAIL's ACK */
  cr_assert_eq(s.client_nodelay, 1, "the engine's socket has TCP_NODELAY");
  cr_assert_eq(s.messages, 1);
  cr_assert(strstr(s.transcript, "MAIL FROM:<sender@example.com>"));
  cr_assert(strstr(s.transcript, "RCPT TO:<bob@example.org>"));
  cr_assert(strstr(s.transcript, "Subject: hi\n\nhello\n..dot line\n.\n"),
            "body, dot-stuffed: %s", s.transcript);
  cr_assert(strstr(s.transcript, "QUIT\n"));
  rig_finish(&g, &s, 1);
}

Test(uv_driver, refused_then_backup) {
  server s;
  cr_assert(server_start(&s, SRV_SMTP, "127.0.0.1", 0));
  uint16_t refusing = refusing_port();
  detour_config cfg = base_config();
  detour_config_add_server(&cfg, "127.0.0.1", refusing, 1);
  detour_config_add_server(&cfg, "127.0.0.1", s.port, 2);
  rig g;
  rig_start(&g, &cfg, true);
  rig_submit(&g);
  rig_run(&g);

  char bad[64], good[64];
  label(bad, sizeof bad, "127.0.0.1", refusing);
  label(good, sizeof good, "127.0.0.1", s.port);
  cr_assert_eq(g.rec.nrows, 4);
  for (int i = 0; i < 2; i++) {
    const row_copy *r = &g.rec.rows[i];
    assert_row(r, T0, DETOUR_LOG_CONNECT, two_rcpts[i], bad, "TCP error");
    cr_assert_eq(r->cls, DETOUR_CLASS_CONNECT);
    cr_assert(strncmp(r->detail, "connect_refused", 15) == 0, "%s", r->detail);
  }
  for (int i = 0; i < 2; i++)
    assert_row(&g.rec.rows[2 + i], T0, DETOUR_LOG_SMTP, two_rcpts[i], good,
               "SMTP OK");
  cr_assert_eq(g.rec.rcpts[0].server, 1);
  cr_assert_eq(g.rec.status[0], DETOUR_DONE_DELIVERED);
  cr_assert_eq(s.messages, 1);
  rig_finish(&g, &s, 1);
}

Test(uv_driver, refused_retry_schedule_in_virtual_time) {
  uint16_t refusing = refusing_port();
  detour_config cfg = base_config();
  detour_config_add_server(&cfg, "127.0.0.1", refusing, 1);
  rig g;
  rig_start(&g, &cfg, true);
  rig_submit(&g);
  uint64_t start = uv_hrtime();
  rig_run(&g);
  cr_assert_lt(uv_hrtime() - start, 5000000000u, "6 min in under 5 s");

  char bad[64];
  label(bad, sizeof bad, "127.0.0.1", refusing);
  int connects = 0;
  for (int i = 0; i < g.rec.nrows; i++) {
    const row_copy *r = &g.rec.rows[i];
    if (r->kind != DETOUR_LOG_CONNECT)
      continue;
    /* attempts 1, 2, 3 at T0, +3 min, +6 min; two recipients each */
    assert_row(r, T0 + MINUTES(3) * (connects / 2), DETOUR_LOG_CONNECT,
               two_rcpts[connects % 2], bad, "TCP error");
    cr_assert_eq(r->attempt, (unsigned)(connects / 2 + 1));
    connects++;
  }
  cr_assert_eq(connects, 6);
  cr_assert_eq(g.rec.nwarn, 1);
  cr_assert_eq(g.rec.nrcpts, 2);
  cr_assert_eq(g.rec.rcpts[0].outcome, DETOUR_RCPT_DEFERRED);
  cr_assert_eq(g.rec.rcpts[1].outcome, DETOUR_RCPT_DEFERRED);
  cr_assert_eq(g.rec.status[0], DETOUR_DONE_DEFERRED);
  cr_assert_eq(detour_clock_now(g.clock), T0 + MINUTES(6));
  rig_finish(&g, NULL, 0);
}

Test(uv_driver, dropped_connection_retried_then_backup) {
  server s[2];
  cr_assert(server_start(&s[0], SRV_DROP, "127.0.0.1", 0));
  cr_assert(server_start(&s[1], SRV_SMTP, "127.0.0.1", 0));
  detour_config cfg = base_config();
  cfg.max_attempts = 2;
  detour_config_add_server(&cfg, "127.0.0.1", s[0].port, 1);
  detour_config_add_server(&cfg, "127.0.0.1", s[1].port, 2);
  rig g;
  rig_start(&g, &cfg, true);
  rig_submit(&g);
  rig_run(&g);

  char drop[64], good[64];
  label(drop, sizeof drop, "127.0.0.1", s[0].port);
  label(good, sizeof good, "127.0.0.1", s[1].port);
  /* closed at the greeting is TRANSIENT: the same server after 3 min,
   * then its limit (2) is reached and the backup takes the mail. */
  int closed = 0, ok = 0;
  for (int i = 0; i < g.rec.nrows; i++) {
    const row_copy *r = &g.rec.rows[i];
    if (r->kind == DETOUR_LOG_SMTP && strcmp(r->result, "SMTP OK") == 0) {
      assert_row(r, T0 + MINUTES(3), DETOUR_LOG_SMTP, two_rcpts[ok % 2], good,
                 "SMTP OK");
      ok++;
    } else if (r->kind == DETOUR_LOG_SMTP) {
      assert_row(r, T0 + MINUTES(3) * (closed / 2), DETOUR_LOG_SMTP,
                 two_rcpts[closed % 2], drop, "SMTP connection closed");
      cr_assert_eq(r->cls, DETOUR_CLASS_TRANSIENT);
      cr_assert(strstr(r->detail, "closed by server") ||
                    strstr(r->detail, "connection reset by peer"),
                "%s", r->detail);
      cr_assert_str_eq(r->address, drop);
      closed++;
    }
  }
  cr_assert_eq(closed, 4);
  cr_assert_eq(ok, 2);
  cr_assert_eq(g.rec.nwarn, 1);
  cr_assert_eq(g.rec.status[0], DETOUR_DONE_DELIVERED);
  cr_assert_eq(s[0].connections, 2);
  cr_assert_eq(s[1].messages, 1);
  rig_finish(&g, s, 2);
}

Test(uv_driver, silent_server_times_out_in_virtual_time) {
  server s[2];
  cr_assert(server_start(&s[0], SRV_SILENT, "127.0.0.1", 0));
  cr_assert(server_start(&s[1], SRV_SMTP, "127.0.0.1", 0));
  detour_config cfg = base_config();
  cfg.max_attempts = 1;
  detour_config_add_server(&cfg, "127.0.0.1", s[0].port, 1);
  detour_config_add_server(&cfg, "127.0.0.1", s[1].port, 2);
  rig g;
  rig_start(&g, &cfg, true);
  rig_submit(&g);
  rig_run(&g);

  char silent[64], good[64];
  label(silent, sizeof silent, "127.0.0.1", s[0].port);
  label(good, sizeof good, "127.0.0.1", s[1].port);
  const row_copy *first = &g.rec.rows[0];
  assert_row(first, T0 + cfg.timeouts.greeting, DETOUR_LOG_SMTP, two_rcpts[0],
             silent, "SMTP timeout");
  cr_assert_eq(first->cls, DETOUR_CLASS_TRANSIENT);
  const row_copy *last = &g.rec.rows[g.rec.nrows - 1];
  assert_row(last, T0 + cfg.timeouts.greeting, DETOUR_LOG_SMTP, two_rcpts[1],
             good, "SMTP OK");
  cr_assert_eq(g.rec.status[0], DETOUR_DONE_DELIVERED);
  cr_assert_eq(s[1].messages, 1);
  rig_finish(&g, s, 2);
}

Test(uv_driver, two_messages_in_order) {
  server s;
  cr_assert(server_start(&s, SRV_SMTP, "127.0.0.1", 0));
  detour_config cfg = base_config();
  detour_config_add_server(&cfg, "127.0.0.1", s.port, 1);
  rig g;
  rig_start(&g, &cfg, true);
  rig_submit(&g);
  rig_submit(&g);
  g.want_done = 2;
  rig_run(&g);
  cr_assert_eq(g.rec.ndone, 2);
  cr_assert_eq(g.rec.status[1], DETOUR_DONE_DELIVERED);
  cr_assert_eq(g.rec.nrcpts, 4);
  cr_assert_eq(g.rec.rcpts[3].message, 1);
  cr_assert_eq(s.messages, 2);
  rig_finish(&g, &s, 1);
}

Test(uv_driver, ipv6_loopback) {
  server s;
  if (!server_start(&s, SRV_SMTP, "::1", 0)) {
    for (int i = 0; i < 10 && uv_loop_alive(&loop); i++)
      uv_run(&loop, UV_RUN_NOWAIT);
    cr_assert_eq(uv_loop_close(&loop), 0);
    cr_skip_test("no IPv6 loopback here");
  }
  detour_config cfg = base_config();
  detour_config_add_server(&cfg, "::1", s.port, 1);
  rig g;
  rig_start(&g, &cfg, true);
  rig_submit(&g);
  rig_run(&g);
  char lab[64];
  label(lab, sizeof lab, "::1", s.port);
  cr_assert_eq(g.rec.nrows, 2);
  assert_row(&g.rec.rows[0], T0, DETOUR_LOG_SMTP, two_rcpts[0], lab, "SMTP OK");
  cr_assert_str_eq(g.rec.rows[0].address, lab);
  rig_finish(&g, &s, 1);
}

Test(uv_driver, host_name_is_resolved) {
  /* "localhost" goes through uv_getaddrinfo (and holds the virtual clock).
   * Listen on both loopbacks with one port when IPv6 is there, so the
   * resolver's preferred answer is served either way. */
  server s[2];
  cr_assert(server_start(&s[0], SRV_SMTP, "127.0.0.1", 0));
  bool v6 = server_start(&s[1], SRV_SMTP, "::1", s[0].port);
  detour_config cfg = base_config();
  detour_config_add_server(&cfg, "localhost", s[0].port, 1);
  rig g;
  rig_start(&g, &cfg, true);
  rig_submit(&g);
  rig_run(&g);
  cr_assert_eq(g.rec.nrows, 2);
  char lab[64], a4[64], a6[64];
  label(lab, sizeof lab, "localhost", s[0].port);
  label(a4, sizeof a4, "127.0.0.1", s[0].port);
  label(a6, sizeof a6, "::1", s[0].port);
  assert_row(&g.rec.rows[0], T0, DETOUR_LOG_SMTP, two_rcpts[0], lab, "SMTP OK");
  cr_assert(strcmp(g.rec.rows[0].address, a4) == 0 ||
                (v6 && strcmp(g.rec.rows[0].address, a6) == 0),
            "%s", g.rec.rows[0].address);
  rig_finish(&g, s, v6 ? 2 : 1);
}

/* A blackhole on loopback without privileges: a listener with backlog 0
 * whose accept queue is kept full by connects nobody accepts; further SYNs
 * are dropped, so a connect there never completes. Returns the listener;
 * fills fillers[0..3]. */
static int blackhole(uint16_t *port, int fillers[4]) {
  int l = socket(AF_INET, SOCK_STREAM, 0);
  cr_assert_geq(l, 0);
  struct sockaddr_in a;
  uv_ip4_addr("127.0.0.1", 0, &a);
  cr_assert_eq(bind(l, (struct sockaddr *)&a, sizeof a), 0);
  cr_assert_eq(listen(l, 0), 0);
  socklen_t len = sizeof a;
  getsockname(l, (struct sockaddr *)&a, &len);
  *port = ntohs(a.sin_port);
  for (int i = 0; i < 4; i++) {
    fillers[i] = socket(AF_INET, SOCK_STREAM, 0);
    fcntl(fillers[i], F_SETFL, O_NONBLOCK);
    connect(fillers[i], (struct sockaddr *)&a, sizeof a);
  }
  poll(NULL, 0, 20); /* let the handshakes that can complete do so */
  return l;
}

static void blackhole_close(int l, int fillers[4]) {
  for (int i = 0; i < 4; i++)
    close(fillers[i]);
  close(l);
}

Test(uv_driver, blackhole_connect_times_out_in_virtual_time) {
  uint16_t hole;
  int fillers[4];
  int l = blackhole(&hole, fillers);
  server s;
  cr_assert(server_start(&s, SRV_SMTP, "127.0.0.1", 0));
  detour_config cfg = base_config();
  cfg.max_attempts = 1;
  detour_config_add_server(&cfg, "127.0.0.1", hole, 1);
  detour_config_add_server(&cfg, "127.0.0.1", s.port, 2);
  rig g;
  rig_start(&g, &cfg, true);
  rig_submit(&g);
  rig_run(&g);

  char bad[64], good[64];
  label(bad, sizeof bad, "127.0.0.1", hole);
  label(good, sizeof good, "127.0.0.1", s.port);
  const row_copy *first = &g.rec.rows[0];
  assert_row(first, T0 + cfg.timeouts.connect, DETOUR_LOG_CONNECT, two_rcpts[0],
             bad, "TCP error");
  cr_assert(strncmp(first->detail, "connect_timeout", 15) == 0, "%s",
            first->detail);
  const row_copy *last = &g.rec.rows[g.rec.nrows - 1];
  assert_row(last, T0 + cfg.timeouts.connect, DETOUR_LOG_SMTP, two_rcpts[1],
             good, "SMTP OK");
  cr_assert_eq(g.rec.status[0], DETOUR_DONE_DELIVERED);
  rig_finish(&g, &s, 1); /* the cancelled connect left nothing behind */
  blackhole_close(l, fillers);
}

static bool server_saw_connection(void *arg) {
  return ((server *)arg)->connections > 0;
}

Test(uv_driver, free_mid_session) {
  server s;
  cr_assert(server_start(&s, SRV_SILENT, "127.0.0.1", 0));
  detour_config cfg = base_config();
  detour_config_add_server(&cfg, "127.0.0.1", s.port, 1);
  rig g;
  rig_start(&g, &cfg, true);
  rig_submit(&g);
  cr_assert_eq(
      detour_clock_run_virtual(g.clock, server_saw_connection, &s, 10000), 0);
  cr_assert_eq(g.rec.ndone, 0);
  cr_assert_not(detour_uv_idle(g.uv));
  rig_finish(&g, &s, 1); /* frees with the session open */
}

Test(uv_driver, free_while_resolving) {
  detour_config cfg = base_config();
  detour_config_add_server(&cfg, "localhost", 25, 1);
  rig g;
  rig_start(&g, &cfg, true);
  rig_submit(&g); /* the look-up is now on the thread pool */
  detour_uv_free(g.uv);
  g.uv = NULL;
  /* The hold was dropped: nothing is left for virtual time to wait on
   * (the thread-pool request may still finish in real time). */
  cr_assert_eq(detour_clock_run_virtual(g.clock, NULL, NULL, 10000), 0);
  cr_assert_eq(g.rec.nrows, 0, "no event after free");
  rig_finish(&g, NULL, 0);
}

Test(uv_driver, free_from_done_callback) {
  server s;
  cr_assert(server_start(&s, SRV_SMTP, "127.0.0.1", 0));
  detour_config cfg = base_config();
  detour_config_add_server(&cfg, "127.0.0.1", s.port, 1);
  rig g;
  rig_start(&g, &cfg, true);
  g.free_on_done = true;
  rig_submit(&g);
  bool done = false;
  for (int i = 0; i < 20000 && g.rec.ndone == 0; i++) {
    uv_run(&loop, UV_RUN_NOWAIT);
    poll(NULL, 0, 1);
  }
  cr_assert_eq(g.rec.ndone, 1);
  done = g.uv == NULL;
  cr_assert(done, "freed from on_done");
  rig_finish(&g, &s, 1);
}

Test(uv_driver, delivers_in_real_time) {
  server s[2];
  cr_assert(server_start(&s[1], SRV_SMTP, "127.0.0.1", 0));
  uint16_t refusing = refusing_port();
  detour_config cfg = base_config();
  detour_config_add_server(&cfg, "127.0.0.1", refusing, 1);
  detour_config_add_server(&cfg, "127.0.0.1", s[1].port, 2);
  rig g;
  rig_start(&g, &cfg, false);
  detour_ms wall = (detour_ms)time(NULL) * 1000;
  rig_submit(&g);
  uint64_t limit = uv_hrtime() + 10000000000u;
  while (!rig_finished(&g) && uv_hrtime() < limit) {
    uv_run(&loop, UV_RUN_NOWAIT);
    poll(NULL, 0, 1);
  }
  cr_assert(rig_finished(&g));
  cr_assert_eq(g.rec.nrows, 4);
  cr_assert_eq(g.rec.rows[0].kind, DETOUR_LOG_CONNECT);
  cr_assert_str_eq(g.rec.rows[3].result, "SMTP OK");
  for (int i = 0; i < 4; i++)
    cr_assert(g.rec.rows[i].time > wall - 2000 &&
                  g.rec.rows[i].time < wall + 12000,
              "row %d time %lld vs wall %lld", i, (long long)g.rec.rows[i].time,
              (long long)wall);
  cr_assert_eq(g.rec.status[0], DETOUR_DONE_DELIVERED);
  rig_finish(&g, &s[1], 1);
}

/* ------------------------------------------------------------------------ */
/* Out of memory in the engine: the driver stops clean                       */

typedef struct {
  unsigned long calls, fail_at;
  long live;
} oom_mem;

static void *oom_malloc(size_t n, void *u) {
  oom_mem *m = u;
  void *p = ++m->calls == m->fail_at ? NULL : malloc(n);
  m->live += p != NULL;
  return p;
}
static void *oom_calloc(size_t n, size_t s, void *u) {
  oom_mem *m = u;
  void *p = ++m->calls == m->fail_at ? NULL : calloc(n, s);
  m->live += p != NULL;
  return p;
}
static void *oom_realloc(void *o, size_t n, void *u) {
  oom_mem *m = u;
  void *p = ++m->calls == m->fail_at ? NULL : realloc(o, n);
  m->live += p != NULL && o == NULL;
  return p;
}
static void oom_free(void *p, void *u) {
  ((oom_mem *)u)->live -= p != NULL;
  free(p);
}

typedef struct {
  detour_uv *uv;
  int ndone, nerror;
  detour_done_status status;
} oom_rig;

static void oom_on_done(void *arg, size_t message, detour_done_status status) {
  (void)message;
  oom_rig *r = arg;
  r->ndone++;
  r->status = status;
}
static void oom_on_error(void *arg, int code, const char *text) {
  oom_rig *r = arg;
  cr_assert_eq(code, DETOUR_ENOMEM, "%s", text);
  r->nerror++;
}
static bool oom_finished(void *arg) {
  oom_rig *r = arg;
  return r->ndone >= 1 && detour_uv_idle(r->uv);
}

/* One delivery through the driver with the engine's Nth allocation after
 * the submission failing (0: none). Returns the allocations made after
 * the submission; checks the message is done, every socket closed and
 * nothing leaked. */
static unsigned long deliver_failing(unsigned long nth, int *nerror) {
  server s;
  cr_assert(server_start(&s, SRV_SMTP, "127.0.0.1", 0));
  oom_mem mem = {0};
  detour_mem dm = {oom_malloc, oom_realloc, oom_calloc, oom_free, &mem};
  detour_config cfg = base_config();
  cfg.block_size = 16; /* the body in several blocks */
  cfg.mem = &dm;
  detour_config_add_server(&cfg, "127.0.0.1", s.port, 1);
  detour_engine *e = detour_engine_new(&cfg, NULL);
  cr_assert_not_null(e);
  detour_clock *clock = detour_clock_new_virtual(&loop, T0);
  oom_rig r = {0};
  detour_uv_callbacks cb = {
      .on_done = oom_on_done, .on_error = oom_on_error, .arg = &r};
  r.uv = detour_uv_new(clock, e, &cb);
  detour_message m = {.from = "sender@example.com",
                      .rcpts = two_rcpts,
                      .nrcpts = 2,
                      .body = "Subject: hi\n\nhello\n.dot line\n",
                      .body_len = strlen("Subject: hi\n\nhello\n.dot line\n")};
  unsigned long base = mem.calls;
  /* the failure is counted from the first allocation inside submit */
  mem.fail_at = nth ? base + nth : 0;
  int idx = detour_uv_submit(r.uv, &m);
  if (idx >= 0) {
    cr_assert_eq(detour_clock_run_virtual(clock, oom_finished, &r, 20000), 0,
                 "N=%lu: the run did not finish", nth);
    cr_assert_eq(r.ndone, 1, "N=%lu: %d DONE", nth, r.ndone);
    /* Never lost, never claimed: a message the server does not have is
     * deferred, and "delivered" only when it has it. A failure after the
     * server's 250 to the final dot leaves it delivered. */
    if (r.nerror && s.messages == 0)
      cr_assert_eq(r.status, DETOUR_DONE_DEFERRED, "N=%lu: status %d", nth,
                   (int)r.status);
    if (r.status == DETOUR_DONE_DELIVERED)
      cr_assert_eq(s.messages, 1, "N=%lu: delivered, the server has %d", nth,
                   s.messages);
    cr_assert_neq(r.status, DETOUR_DONE_ABORTED, "N=%lu", nth);
  } else {
    cr_assert_eq(idx, DETOUR_ENOMEM, "N=%lu", nth);
  }
  *nerror = r.nerror;
  unsigned long used = mem.calls - base;
  detour_uv_free(r.uv);
  detour_engine_free(e);
  server_stop(&s);
  for (int i = 0; i < 100 && uv_loop_alive(&loop); i++)
    uv_run(&loop, UV_RUN_NOWAIT);
  detour_clock_free(clock);
  cr_assert_eq(uv_loop_close(&loop), 0, "N=%lu: open handles left", nth);
  cr_assert_eq(mem.live, 0, "N=%lu: %ld blocks leaked", nth, mem.live);
  cr_assert_eq(uv_loop_init(&loop), 0);
  return used;
}

Test(uv_driver, engine_out_of_memory_stops_clean) {
  int nerror = 0;
  unsigned long total = deliver_failing(0, &nerror);
  cr_assert_eq(nerror, 0);
  int errors = 0;
  for (unsigned long n = 1; n <= total; n++) {
    deliver_failing(n, &nerror);
    errors += nerror;
  }
  cr_assert_gt(errors, 0, "failures inside events reach on_error");
  uv_loop_close(&loop);
}

/*
 * uv_driver.c - detour_uv: the libuv driver of the sans-I/O engine.
 *
 * It turns engine actions into libuv work (name look-ups, TCP connects,
 * writes, closes) and libuv results into engine events, and holds no
 * policy: every deadline (the connect timeout included) belongs to the
 * engine, which the driver wakes through one detour_timer set to
 * detour_engine_next_deadline(). All time comes from the detour_clock, so
 * the same driver runs in real and in virtual time.
 *
 * The pump. After every event the driver drains the engine's actions. An
 * action's strings live only until the next call into the engine, so while
 * an action is being handled the engine is never called: a failure found
 * synchronously (uv_tcp_connect refusing an address at once) is parked on
 * its connection and delivered once the queue is empty, then the queue is
 * drained again. User callbacks may call detour_uv_submit (the outer pump
 * picks up the new actions) or detour_uv_free (the pump stops and frees).
 *
 * TLS (SPEC R13). On a TLS_START action the connection gets a TLS client
 * (uv_tls.c, OpenSSL over memory BIOs): from then on every byte read goes
 * into it, and what it decrypts goes to the engine; every SEND is
 * encrypted and written as one libuv write, so the engine still gets one
 * on_sent per SEND. Handshake records are written the same way but
 * report nothing. The handshake's end is an event (TLS up, or TLS failed
 * with the reason), delivered like any other.
 *
 * Connection lifetime. A connection ends when the engine says CLOSE, or
 * earlier when the socket fails (refused, EOF, reset, write error): then
 * the driver closes it at once and tells the engine, which answers with a
 * CLOSE of its own that finds nothing left to do. Once closing, no event
 * of that connection reaches the engine. Its memory goes when the handle's
 * close callback and any name look-up still on the thread pool are done.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "detour/detour_uv.h"
#include "uv_tls.h"

typedef enum {
  EV_NONE = 0,
  EV_CONNECT_FAILED,
  EV_CLOSED,
  EV_TLS_FAILED
} parked_event;

#define DRIVER_MAX_ADDRS 8

typedef struct conn conn;
struct conn {
  detour_uv *d;
  conn *next;
  unsigned id;
  uint16_t port;
  bool dead;        /* no event of this connection reaches the engine */
  bool tcp_open;    /* the handle's close callback has not run yet */
  bool gai_pending; /* a look-up is on the thread pool */
  bool held;        /* that look-up holds the (virtual) clock */
  uv_tcp_t tcp;
  uv_connect_t connect_req;
  uv_getaddrinfo_t gai;
  char address[64]; /* "ip:port" connected to */
  /* Every address the name resolved to, tried in order (RFC 5321 5.1):
   * a refused or unreachable one passes the turn to the next. */
  struct sockaddr_storage addrs[DRIVER_MAX_ADDRS];
  size_t naddrs, next_addr;
  /* A failure waiting to be told to the engine (see "The pump"). */
  parked_event parked;
  detour_condition parked_cond;
  detour_tls_failure parked_tls;
  char parked_detail[256];
  detour__tls *tls; /* after TLS_START */
  bool tls_up;      /* the handshake completed */
};

typedef struct {
  uv_write_t req;
  conn *c;
  bool report; /* one on_sent for the engine (a SEND, not a handshake) */
  char data[]; /* a copy: the action's bytes die at the next engine call */
} write_req;

struct detour_uv {
  detour_clock *clock;
  detour_engine *engine;
  detour_uv_callbacks cb;
  detour_timer *timer;
  detour_ms armed_for; /* the deadline the timer is set to */
  conn *conns;         /* in creation order */
  bool pumping;
  bool free_requested; /* detour_uv_free called during the pump */
  bool freeing;        /* waiting for close callbacks, then free */
  detour__tls_contexts *tls_contexts; /* made at the first TLS_START */
  char rbuf[64 * 1024];
  char plain[16 * 1024]; /* decrypted bytes, one TLS record at a time */
};

static void pump(detour_uv *d);
static void finish_free(detour_uv *d);

static detour_ms now_of(const detour_uv *d) {
  return detour_clock_now(d->clock);
}

/* ------------------------------------------------------------------------ */
/* Connection bookkeeping                                                    */

static conn *conn_find(detour_uv *d, unsigned id) {
  for (conn *c = d->conns; c != NULL; c = c->next)
    if (c->id == id)
      return c;
  return NULL;
}

static conn *conn_new(detour_uv *d, unsigned id, uint16_t port) {
  conn *c = calloc(1, sizeof *c);
  if (c == NULL)
    return NULL;
  if (uv_tcp_init(detour_clock_loop(d->clock), &c->tcp) != 0) {
    free(c);
    return NULL;
  }
  c->d = d;
  c->id = id;
  c->port = port;
  c->tcp_open = true;
  c->tcp.data = c;
  conn **tail = &d->conns;
  while (*tail != NULL)
    tail = &(*tail)->next;
  *tail = c;
  return c;
}

static void conn_maybe_free(conn *c) {
  if (c->tcp_open || c->gai_pending)
    return;
  detour_uv *d = c->d;
  conn **p = &d->conns;
  while (*p != c)
    p = &(*p)->next;
  *p = c->next;
  detour__tls_free(c->tls);
  free(c);
  if (d->freeing && d->conns == NULL)
    finish_free(d);
}

static void on_tcp_closed(uv_handle_t *h) {
  conn *c = h->data;
  c->tcp_open = false;
  conn_maybe_free(c);
}

static void drop_hold(conn *c) {
  if (!c->held)
    return;
  c->held = false;
  detour_clock_release(c->d->clock);
}

/* Stop everything of c; no event of it reaches the engine afterwards,
 * except a failure already parked. Pending connect and write requests end
 * with UV_ECANCELED before the close callback. */
static void conn_close(conn *c) {
  if (c->dead)
    return;
  c->dead = true;
  if (c->gai_pending) {
    uv_cancel((uv_req_t *)&c->gai); /* may be running: its callback cleans */
    drop_hold(c); /* now: the clock may be gone when the callback comes */
  }
  uv_close((uv_handle_t *)&c->tcp, on_tcp_closed);
}

/* The socket failed: close it and tell the engine (from the pump). */
static void conn_fail(conn *c, parked_event ev, detour_condition cond,
                      const char *detail) {
  if (c->dead || c->d->freeing)
    return;
  c->parked = ev;
  c->parked_cond = cond;
  snprintf(c->parked_detail, sizeof c->parked_detail, "%s", detail);
  conn_close(c);
  pump(c->d); /* a no-op inside the pump, which delivers it later */
}

static void tls_fail(conn *c, detour_tls_failure why, const char *detail) {
  c->parked_tls = why;
  conn_fail(c, EV_TLS_FAILED, DETOUR_COND_TLS, detail);
}

/* ------------------------------------------------------------------------ */
/* Connect                                                                   */

/* What a failed TCP connect means, as the classification table sees it. */
static detour_condition connect_condition(int status) {
  switch (status) {
  case UV_ECONNREFUSED: /* a RST answering the SYN */
    return DETOUR_COND_CONNECT_REFUSED;
  case UV_ECONNRESET:
    /* The handshake completed (the server accepted), then a RST came
     * before we saw the connect succeed: a dropped connection (SPEC R3
     * TRANSIENT), not a refusal. */
    return DETOUR_COND_CLOSED;
  case UV_ETIMEDOUT:
    return DETOUR_COND_CONNECT_TIMEOUT;
  default: /* EHOSTUNREACH, ENETUNREACH, EADDRNOTAVAIL, EAFNOSUPPORT... */
    return DETOUR_COND_UNREACHABLE;
  }
}

/* "1.2.3.4:25" or "[::1]:25". */
static void format_address(const struct sockaddr *sa, char *buf, size_t len) {
  char ip[64] = "?";
  unsigned port = 0;
  if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
    uv_ip6_name(s6, ip, sizeof ip);
    port = ntohs(s6->sin6_port);
    snprintf(buf, len, "[%s]:%u", ip, port);
    return;
  }
  const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
  uv_ip4_name(s4, ip, sizeof ip);
  port = ntohs(s4->sin_port);
  snprintf(buf, len, "%s:%u", ip, port);
}

static void on_read_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  /* One buffer per driver: libuv hands out reads one at a time. */
  (void)hint;
  conn *c = h->data;
  *buf = uv_buf_init(c->d->rbuf, sizeof c->d->rbuf);
}

static const char *read_error_detail(ssize_t nread, char *buf, size_t len) {
  if (nread == UV_EOF)
    return "closed by server";
  if (nread == UV_ECONNRESET)
    return "connection reset by peer";
  snprintf(buf, len, "read error: %s", uv_strerror((int)nread));
  return buf;
}

static void tls_received(conn *c, const char *data, size_t len);

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  conn *c = s->data;
  if (c->dead || nread == 0)
    return;
  if (nread < 0) {
    char tmp[96];
    conn_fail(c, EV_CLOSED, DETOUR_COND_CLOSED,
              read_error_detail(nread, tmp, sizeof tmp));
    return;
  }
  if (c->tls) {
    tls_received(c, buf->base, (size_t)nread);
    return;
  }
  detour_engine_on_data(c->d->engine, c->id, now_of(c->d), buf->base,
                        (size_t)nread);
  pump(c->d);
}

static void connect_to(conn *c, const struct sockaddr *sa);

/* The old handle is closed: a fresh one for the next address. */
static void on_closed_for_next(uv_handle_t *h) {
  conn *c = h->data;
  c->tcp_open = false;
  if (c->dead || c->d->freeing ||
      uv_tcp_init(detour_clock_loop(c->d->clock), &c->tcp) != 0) {
    conn_maybe_free(c);
    return;
  }
  c->tcp_open = true;
  c->tcp.data = c;
  connect_to(c, (const struct sockaddr *)&c->addrs[c->next_addr++]);
}

/* A refused or unreachable address: try the next one, if any. The engine's
 * connect deadline covers them all. */
static bool try_next_address(conn *c, int status) {
  if (c->next_addr >= c->naddrs || status == UV_ETIMEDOUT)
    return false;
  uv_close((uv_handle_t *)&c->tcp, on_closed_for_next);
  return true;
}

static void on_connect(uv_connect_t *req, int status) {
  conn *c = req->data;
  if (status == UV_ECANCELED || c->dead)
    return;
  if (status < 0 && try_next_address(c, status))
    return;
  if (status < 0) {
    conn_fail(c, EV_CONNECT_FAILED, connect_condition(status),
              uv_strerror(status));
    return;
  }
  int rc = uv_read_start((uv_stream_t *)&c->tcp, on_read_alloc, on_read);
  if (rc < 0) {
    conn_fail(c, EV_CLOSED, DETOUR_COND_CLOSED, uv_strerror(rc));
    return;
  }
  detour_engine_on_connected(c->d->engine, c->id, now_of(c->d), c->address);
  pump(c->d);
}

static void connect_to(conn *c, const struct sockaddr *sa) {
  format_address(sa, c->address, sizeof c->address);
  c->connect_req.data = c;
  /* Each command is its own write; with Nagle's algorithm a pipelined
   * RCPT and DATA (RFC 2920) would wait for the ACK of MAIL, a round trip
   * on a slow link. libuv applies the flag when it creates the socket. */
  uv_tcp_nodelay(&c->tcp, 1);
  int rc = uv_tcp_connect(&c->connect_req, &c->tcp, sa, on_connect);
  if (rc < 0)
    conn_fail(c, EV_CONNECT_FAILED, connect_condition(rc), uv_strerror(rc));
}

static void on_resolved(uv_getaddrinfo_t *req, int status,
                        struct addrinfo *res) {
  conn *c = req->data;
  c->gai_pending = false;
  drop_hold(c);
  if (!c->dead && status < 0) {
    char detail[128];
    snprintf(detail, sizeof detail, "name did not resolve: %s",
             uv_strerror(status));
    conn_fail(c, EV_CONNECT_FAILED, DETOUR_COND_DNS, detail);
  } else if (!c->dead) {
    /* Address order is the system's (RFC 6724, gai.conf), not ours. */
    for (struct addrinfo *ai = res; ai && c->naddrs < DRIVER_MAX_ADDRS;
         ai = ai->ai_next)
      if (ai->ai_addrlen <= sizeof c->addrs[0])
        memcpy(&c->addrs[c->naddrs++], ai->ai_addr, ai->ai_addrlen);
    c->next_addr = 1;
    connect_to(c, (const struct sockaddr *)&c->addrs[0]);
  }
  uv_freeaddrinfo(res);
  conn_maybe_free(c);
}

/* Numeric addresses skip the thread pool ("[::1]" is accepted too). */
static bool numeric_address(const char *host, uint16_t port,
                            struct sockaddr_storage *ss) {
  char bare[64];
  size_t n = strlen(host);
  if (n >= 2 && n < sizeof bare + 2 && host[0] == '[' && host[n - 1] == ']') {
    memcpy(bare, host + 1, n - 2);
    bare[n - 2] = '\0';
    host = bare;
  }
  memset(ss, 0, sizeof *ss);
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0)
    return true;
  return uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0;
}

static void resolve(conn *c, const char *host) {
  detour_uv *d = c->d;
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  char service[8];
  snprintf(service, sizeof service, "%u", (unsigned)c->port);
  c->gai.data = c;
  int rc = uv_getaddrinfo(detour_clock_loop(d->clock), &c->gai, on_resolved,
                          host, service, &hints);
  if (rc < 0) {
    char detail[128];
    snprintf(detail, sizeof detail, "name look-up failed: %s", uv_strerror(rc));
    conn_fail(c, EV_CONNECT_FAILED, DETOUR_COND_DNS, detail);
    return;
  }
  /* Virtual time must not run past a look-up the loop cannot see. */
  c->gai_pending = true;
  c->held = true;
  detour_clock_hold(d->clock);
}

static void act_connect(detour_uv *d, const detour_action *a) {
  /* Without memory there is no conn to report on; the engine's connect
   * deadline still ends the attempt. */
  conn *c = conn_new(d, a->conn, a->u.connect.port);
  if (c == NULL)
    return;
  struct sockaddr_storage ss;
  if (numeric_address(a->u.connect.host, a->u.connect.port, &ss))
    connect_to(c, (const struct sockaddr *)&ss);
  else
    resolve(c, a->u.connect.host);
}

/* ------------------------------------------------------------------------ */
/* Send                                                                      */

static void on_written(uv_write_t *req, int status) {
  write_req *w = req->data;
  conn *c = w->c;
  bool report = w->report;
  free(w);
  if (status == UV_ECANCELED || c->dead)
    return;
  if (status < 0) {
    char detail[96];
    snprintf(detail, sizeof detail, "write error: %s", uv_strerror(status));
    conn_fail(c, EV_CLOSED, DETOUR_COND_CLOSED, detail);
    return;
  }
  /* One on_sent per SEND action: the engine counts them. A body goes out
   * as one SEND per block, so this is also the write progress from which
   * the engine restarts the data-block timeout (R11). */
  if (!report)
    return;
  detour_engine_on_sent(c->d->engine, c->id, now_of(c->d));
  pump(c->d);
}

/* Write len bytes (a copy) on c; report says whether the engine gets an
 * on_sent for it. Returns false after failing the connection. */
static bool write_bytes(conn *c, const char *data, size_t len, bool report) {
  write_req *w = malloc(sizeof *w + len);
  if (w == NULL) {
    conn_fail(c, EV_CLOSED, DETOUR_COND_CLOSED, "out of memory");
    return false;
  }
  memcpy(w->data, data, len);
  w->c = c;
  w->report = report;
  w->req.data = w;
  uv_buf_t buf = uv_buf_init(w->data, (unsigned)len);
  int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, on_written);
  if (rc < 0) {
    free(w);
    char detail[96];
    snprintf(detail, sizeof detail, "write error: %s", uv_strerror(rc));
    conn_fail(c, EV_CLOSED, DETOUR_COND_CLOSED, detail);
    return false;
  }
  return true;
}

/* Everything the TLS object has for the peer, as one write. */
static bool tls_flush(conn *c, bool report) {
  size_t n = detour__tls_pending(c->tls);
  if (n == 0 && !report)
    return true;
  char *buf = malloc(n ? n : 1);
  if (buf == NULL) {
    conn_fail(c, EV_CLOSED, DETOUR_COND_CLOSED, "out of memory");
    return false;
  }
  n = detour__tls_take(c->tls, buf, n);
  bool ok = write_bytes(c, buf, n, report);
  free(buf);
  return ok;
}

static void act_send(detour_uv *d, const detour_action *a) {
  conn *c = conn_find(d, a->conn);
  if (c == NULL || c->dead)
    return;
  if (c->tls == NULL) {
    write_bytes(c, a->u.send.data, a->u.send.len, true);
    return;
  }
  char detail[256];
  if (!c->tls_up || detour__tls_write(c->tls, a->u.send.data, a->u.send.len,
                                      detail, sizeof detail) < 0) {
    conn_fail(c, EV_CLOSED, DETOUR_COND_CLOSED,
              c->tls_up ? detail : "write before the TLS handshake");
    return;
  }
  tls_flush(c, true);
}

/* ------------------------------------------------------------------------ */
/* TLS                                                                       */

static void act_tls_start(detour_uv *d, const detour_action *a) {
  conn *c = conn_find(d, a->conn);
  if (c == NULL || c->dead || c->tls != NULL)
    return;
  detour_tls_failure why = DETOUR_TLS_LOCAL;
  char detail[256] = "out of memory";
  if (d->tls_contexts == NULL)
    d->tls_contexts = detour__tls_contexts_new();
  if (d->tls_contexts != NULL)
    c->tls = detour__tls_new(d->tls_contexts, a->u.tls.server_name,
                             a->u.tls.ca_file, &why, detail, sizeof detail);
  if (c->tls == NULL) {
    tls_fail(c, why, detail);
    return;
  }
  if (detour__tls_handshake(c->tls, &why, detail, sizeof detail) < 0) {
    tls_fail(c, why, detail);
    return;
  }
  tls_flush(c, false); /* the ClientHello */
}

/* Decrypted bytes to the engine, until the TLS object has none. */
static void tls_deliver(conn *c) {
  detour_uv *d = c->d;
  char detail[256];
  while (!c->dead && !d->freeing) {
    ssize_t n = detour__tls_read(c->tls, d->plain, sizeof d->plain, detail,
                                 sizeof detail);
    if (n == 0)
      break;
    if (n < 0) {
      conn_fail(c, EV_CLOSED, DETOUR_COND_CLOSED, detail);
      return;
    }
    detour_engine_on_data(d->engine, c->id, now_of(d), d->plain, (size_t)n);
    pump(d);
  }
  if (!c->dead && !d->freeing)
    tls_flush(c, false); /* e.g. an answer to a key update */
}

static void tls_received(conn *c, const char *data, size_t len) {
  detour_uv *d = c->d;
  if (detour__tls_feed(c->tls, data, len) < 0) {
    conn_fail(c, EV_CLOSED, DETOUR_COND_CLOSED, "out of memory");
    return;
  }
  if (!c->tls_up) {
    detour_tls_failure why = DETOUR_TLS_HANDSHAKE;
    char detail[256];
    int rc = detour__tls_handshake(c->tls, &why, detail, sizeof detail);
    if (rc < 0) {
      tls_flush(c, false); /* the alert, so the peer learns why */
      tls_fail(c, why, detail);
      return;
    }
    if (!tls_flush(c, false) || rc == 0)
      return;
    c->tls_up = true;
    detour_engine_on_tls_up(d->engine, c->id, now_of(d),
                            detour__tls_version(c->tls),
                            detour__tls_cipher(c->tls));
    pump(d);
  }
  tls_deliver(c);
}

/* ------------------------------------------------------------------------ */
/* The pump                                                                  */

static void handle_action(detour_uv *d, const detour_action *a) {
  const detour_uv_callbacks *cb = &d->cb;
  conn *c;
  switch (a->type) {
  case DETOUR_ACT_CONNECT:
    act_connect(d, a);
    break;
  case DETOUR_ACT_SEND:
    act_send(d, a);
    break;
  case DETOUR_ACT_TLS_START:
    act_tls_start(d, a);
    break;
  case DETOUR_ACT_CLOSE:
    if ((c = conn_find(d, a->conn)) != NULL) {
      c->parked = EV_NONE; /* the engine is done with it: tell nothing */
      conn_close(c);
    }
    break;
  case DETOUR_ACT_LOG:
    if (cb->on_log)
      cb->on_log(cb->arg, &a->u.log);
    break;
  case DETOUR_ACT_WARN:
    if (cb->on_warn)
      cb->on_warn(cb->arg, a->u.warn.text);
    break;
  case DETOUR_ACT_RCPT_RESULT:
    if (cb->on_rcpt)
      cb->on_rcpt(cb->arg, a->u.rcpt.message, a->u.rcpt.index,
                  a->u.rcpt.recipient, a->u.rcpt.outcome, a->u.rcpt.server,
                  a->u.rcpt.detail);
    break;
  case DETOUR_ACT_DONE:
    if (cb->on_done)
      cb->on_done(cb->arg, a->u.done.message, a->u.done.status);
    break;
  case DETOUR_ACT_ERROR:
    if (cb->on_error)
      cb->on_error(cb->arg, a->u.error.code, a->u.error.text);
    else if (cb->on_warn)
      cb->on_warn(cb->arg, a->u.error.text);
    break;
  }
}

static conn *first_parked(detour_uv *d) {
  for (conn *c = d->conns; c != NULL; c = c->next)
    if (c->parked != EV_NONE)
      return c;
  return NULL;
}

static void deliver_parked(detour_uv *d, conn *c) {
  parked_event ev = c->parked;
  c->parked = EV_NONE;
  if (ev == EV_CONNECT_FAILED)
    detour_engine_on_connect_failed(d->engine, c->id, now_of(d), c->parked_cond,
                                    c->parked_detail);
  else if (ev == EV_TLS_FAILED)
    detour_engine_on_tls_failed(d->engine, c->id, now_of(d), c->parked_tls,
                                c->parked_detail);
  else
    detour_engine_on_closed(d->engine, c->id, now_of(d), c->parked_detail);
}

static void arm_timer(detour_uv *d) {
  detour_ms deadline = detour_engine_next_deadline(d->engine);
  if (deadline == DETOUR_NO_DEADLINE) {
    detour_timer_stop(d->timer);
    return;
  }
  /* Re-arming for the same deadline would only reorder ties. */
  if (detour_timer_active(d->timer) && d->armed_for == deadline)
    return;
  d->armed_for = deadline;
  detour_timer_start(d->timer, deadline);
}

static void pump(detour_uv *d) {
  if (d->pumping || d->freeing)
    return;
  d->pumping = true;
  for (;;) {
    detour_action a;
    while (!d->free_requested && detour_engine_next_action(d->engine, &a))
      handle_action(d, &a);
    conn *c = d->free_requested ? NULL : first_parked(d);
    if (c == NULL)
      break;
    deliver_parked(d, c);
  }
  d->pumping = false;
  if (d->free_requested) {
    detour_uv_free(d);
    return;
  }
  arm_timer(d);
}

static void on_timer(detour_timer *t, void *arg) {
  (void)t;
  detour_uv *d = arg;
  detour_engine_on_timer(d->engine, now_of(d));
  pump(d);
}

/* ------------------------------------------------------------------------ */
/* Public API                                                                */

detour_uv *detour_uv_new(detour_clock *c, detour_engine *e,
                         const detour_uv_callbacks *cb) {
  if (c == NULL || e == NULL)
    return NULL;
  detour_uv *d = calloc(1, sizeof *d);
  if (d == NULL)
    return NULL;
  d->clock = c;
  d->engine = e;
  if (cb != NULL)
    d->cb = *cb;
  d->armed_for = DETOUR_NO_DEADLINE;
  d->timer = detour_timer_new(c, on_timer, d);
  if (d->timer == NULL) {
    free(d);
    return NULL;
  }
  return d;
}

int detour_uv_submit(detour_uv *d, const detour_message *m) {
  if (d == NULL || d->freeing || d->free_requested)
    return DETOUR_EINVAL;
  int rc = detour_engine_submit(d->engine, m, now_of(d));
  pump(d);
  return rc;
}

bool detour_uv_idle(const detour_uv *d) {
  return d->conns == NULL && detour_engine_idle(d->engine);
}

static void finish_free(detour_uv *d) {
  detour__tls_contexts_free(d->tls_contexts);
  free(d);
}

void detour_uv_free(detour_uv *d) {
  if (d == NULL || d->freeing)
    return;
  if (d->pumping) { /* from a user callback: the pump ends, then frees */
    d->free_requested = true;
    return;
  }
  /* From here on neither the engine nor the clock is touched: the caller
   * may free them before the close callbacks run. */
  d->freeing = true;
  detour_timer_free(d->timer);
  d->timer = NULL;
  for (conn *c = d->conns; c != NULL; c = c->next) {
    c->parked = EV_NONE;
    conn_close(c);
  }
  if (d->conns == NULL)
    finish_free(d);
}

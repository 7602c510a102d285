/*
 * server.c - a fake server's listening side and its public face: the three
 * listener modes, start/stop/free, events, counters and record getters.
 *
 * Modes, and why each works without privileges:
 *   NORMAL     a uv_tcp listener; sessions are session.c's.
 *   REFUSE     a socket bound to the address but never listening: the
 *              kernel answers every SYN with RST, so connect() fails with
 *              ECONNREFUSED, and the port stays ours (port 0 gets a number).
 *   BLACKHOLE  a socket listening with backlog 0 whose accept queue holds
 *              one connection of our own that we never accept. Linux then
 *              finds the queue full (sk_ack_backlog > sk_max_ack_backlog)
 *              and drops every new SYN without an answer (tcp_conn_request,
 *              LINUX_MIB_LISTENOVERFLOWS), whatever tcp_syncookies says and
 *              with tcp_abort_on_overflow = 0 (the default; it only acts
 *              on the final ACK of a handshake, and none completes). The
 *              client retransmits its SYN until its own connect timeout.
 *              Checked on Linux 6.18 (tests/test_fake_faults.c,
 *              blackhole_times_out).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fake_internal.h"

detour_fake_server *detour_fake_server_new(detour_clock *c,
                                           const detour_fake_script *s,
                                           const char *listen, unsigned flags,
                                           int *err) {
  return detour_fake_server_new_mem(c, s, listen, flags, NULL, err);
}

detour_fake_server *
detour_fake_server_new_mem(detour_clock *c, const detour_fake_script *s,
                           const char *listen, unsigned flags,
                           const detour_fake_mem *mem, int *err) {
  int e = DETOUR_EINVAL;
  detour_fake_server *srv = NULL;
  if (!mem)
    mem = detour__fake_mem_global();
  if (!c || !s)
    goto fail;
  e = DETOUR_ENOMEM;
  if (!(srv = detour__fake_calloc(mem, 1, sizeof *srv)))
    goto fail;
  srv->mem = *mem;
  if (!(srv->script = detour_fake_script_clone(s)))
    goto fail;
  e = DETOUR_EINVAL;
  if (listen && detour_fake_script_set_listen(srv->script, listen) != 0)
    goto fail;
  if (detour__fake_parse_addr(srv->script->listen, &srv->want) != 0)
    goto fail;
  /* The bench only talks to loopback unless the operator asks. */
  if (!detour__fake_is_loopback((struct sockaddr *)&srv->want) &&
      !(flags & DETOUR_FAKE_ALLOW_PUBLIC))
    goto fail;
  srv->clock = c;
  srv->loop = detour_clock_loop(c);
  srv->raw_fd = srv->filler_fd = -1;
  detour__fake_record_init(&srv->rec, srv->script->record, &srv->mem,
                           &srv->script->limits);
  srv->stats.refused = srv->script->mode == DETOUR_FAKE_MODE_NORMAL ? 0 : -1;
  return srv;
fail:
  if (srv)
    detour_fake_script_free(srv->script);
  if (srv)
    detour__fake_free(mem, srv);
  if (err)
    *err = e;
  return NULL;
}

int detour_fake_server_set_streaming(detour_fake_server *srv,
                                     const char *spool_dir) {
  char *dir = NULL;
  if (srv->started)
    return DETOUR_EINVAL;
  if (spool_dir && !(dir = detour__fake_strdup(&srv->mem, spool_dir)))
    return DETOUR_ENOMEM;
  detour__fake_free(&srv->mem, srv->spool_dir);
  srv->spool_dir = dir;
  srv->streaming = true;
  detour__fake_record_clear(&srv->rec);
  srv->rec.keep = false;
  return 0;
}

bool detour__fake_emit(detour_fake_server *srv, detour_fake_event *ev) {
  ev->time = detour_clock_now(srv->clock);
  ev->mono = uv_hrtime();
  if (ev->type == DETOUR_FAKE_EV_LIMIT)
    srv->stats.limits_hit++;
  else if (ev->type == DETOUR_FAKE_EV_FINDING)
    srv->stats.findings++;
  bool ok = detour__fake_record_event(&srv->rec, ev) != FAKE_REC_NOMEM;
  if (!ok && ev->conn == 0)
    srv->stats.nomem++; /* no session to end: the item is lost, counted */
  if (srv->obs)
    srv->obs(srv->obs_arg, srv, ev);
  if (detour__fake_record_limit_hit(&srv->rec)) {
    /* Said once, and kept past the limit (record.c). */
    static const char what[] =
        "max_record_events/max_record_bytes: the record is full; later "
        "items are not kept (counters go on)";
    detour_fake_event lim;
    memset(&lim, 0, sizeof lim);
    lim.type = DETOUR_FAKE_EV_LIMIT;
    lim.data = what;
    lim.len = sizeof what - 1;
    detour__fake_emit(srv, &lim);
  }
  return ok;
}

static void emit_server_event(detour_fake_server *srv, detour_fake_event_type t,
                              const char *data) {
  detour_fake_event ev;
  memset(&ev, 0, sizeof ev);
  ev.type = t;
  ev.data = data;
  ev.len = strlen(data);
  detour__fake_emit(srv, &ev);
}

/* ------------------------------------------------------------------------ */
/* Starting                                                                  */

static socklen_t addr_len(const struct sockaddr_storage *ss) {
  return ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                   : sizeof(struct sockaddr_in);
}

/* Learn the bound address (the port when 0 was asked). */
static void note_bound(detour_fake_server *srv,
                       const struct sockaddr_storage *ss) {
  detour__fake_format_addr((const struct sockaddr *)ss, srv->address,
                           sizeof srv->address, srv->ip, sizeof srv->ip);
  srv->port = ntohs(ss->ss_family == AF_INET6
                        ? ((const struct sockaddr_in6 *)ss)->sin6_port
                        : ((const struct sockaddr_in *)ss)->sin_port);
}

static int fail_errno(detour_fake_server *srv, int e, char *err,
                      size_t errlen) {
  if (err)
    snprintf(err, errlen, "%s: %s", srv->script->listen, strerror(e));
  return DETOUR_EIO;
}

static void on_connection(uv_stream_t *l, int status) {
  detour_fake_server *srv = l->data;
  if (status < 0) {
    srv->stats.accept_errors++;
    return;
  }
  detour__fake_session_accept(srv);
}

static int start_normal(detour_fake_server *srv, char *err, size_t errlen) {
  struct sockaddr_storage ss;
  int len = sizeof ss, rc;
  uv_tcp_init(srv->loop, &srv->listener);
  srv->listener.data = srv;
  srv->listener_open = true;
  /* A long queue: the capacity bench opens 10,000 sessions at once. */
  /* TCP_NODELAY on the listener: Linux gives it to every accepted socket
   * (exact write boundaries for drips and partial lines), a setsockopt per
   * connection saved (session.c sets it itself elsewhere). */
  if ((rc = uv_tcp_bind(&srv->listener, (struct sockaddr *)&srv->want, 0)) ||
      (rc = uv_tcp_nodelay(&srv->listener, 1)) ||
      (rc = uv_listen((uv_stream_t *)&srv->listener, 4096, on_connection)) ||
      (rc = uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&ss, &len)))
    return fail_errno(srv, -rc, err, errlen);
  note_bound(srv, &ss);
  return 0;
}

/* A raw socket bound to the wanted address (REFUSE, BLACKHOLE). */
static int bind_raw(detour_fake_server *srv, bool reuse, char *err,
                    size_t errlen) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  int one = 1;
  srv->raw_fd = socket(srv->want.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (srv->raw_fd < 0)
    return fail_errno(srv, errno, err, errlen);
  /* No SO_REUSEADDR on a socket that never listens: two such sockets could
   * then share the port. */
  if (reuse)
    setsockopt(srv->raw_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(srv->raw_fd, (struct sockaddr *)&srv->want, addr_len(&srv->want)) ||
      getsockname(srv->raw_fd, (struct sockaddr *)&ss, &len))
    return fail_errno(srv, errno, err, errlen);
  note_bound(srv, &ss);
  return 0;
}

/* Fill the accept queue with one connection of ours; bounded wait (1 s),
 * though on loopback the handshake completes inside connect(). */
static int fill_queue(detour_fake_server *srv, char *err, size_t errlen) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  int fd = socket(srv->want.ss_family,
                  SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0)
    return fail_errno(srv, errno, err, errlen);
  srv->filler_fd = fd;
  getsockname(srv->raw_fd, (struct sockaddr *)&ss, &len);
  if (connect(fd, (struct sockaddr *)&ss, len) != 0 && errno != EINPROGRESS)
    return fail_errno(srv, errno, err, errlen);
  struct pollfd p = {.fd = fd, .events = POLLOUT};
  int soerr = 0;
  socklen_t sl = sizeof soerr;
  if (poll(&p, 1, 1000) != 1 ||
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr)
    return fail_errno(srv, soerr ? soerr : ETIMEDOUT, err, errlen);
  return 0;
}

int detour_fake_server_set_tls_dir(detour_fake_server *srv, const char *dir) {
  if (!srv)
    return DETOUR_EINVAL;
  char *d = dir ? detour__fake_strdup(&srv->mem, dir) : NULL;
  if (srv->started || (dir && !d)) {
    detour__fake_free(&srv->mem, d);
    return DETOUR_EINVAL;
  }
  detour__fake_free(&srv->mem, srv->tls_dir);
  srv->tls_dir = d;
  return 0;
}

int detour_fake_server_set_only_peer(detour_fake_server *srv, const char *ip) {
  struct sockaddr_storage ss;
  if (!srv || srv->started)
    return DETOUR_EINVAL;
  if (!ip) {
    srv->only_peer[0] = '\0';
    return 0;
  }
  /* the same spelling as the sessions' peers: parse, then format */
  char text[80];
  snprintf(text, sizeof text, strchr(ip, ':') ? "[%s]:1" : "%s:1", ip);
  if (detour__fake_parse_addr(text, &ss) != 0)
    return DETOUR_EINVAL;
  char addr[96];
  detour__fake_format_addr((struct sockaddr *)&ss, addr, sizeof addr,
                           srv->only_peer, sizeof srv->only_peer);
  return 0;
}

/* The TLS context, made once per server so that a bad certificate path
 * fails the start, not every connection. */
static int start_tls(detour_fake_server *srv, char *err, size_t errlen) {
  char why[512] = "";
  if (srv->script->tls.mode == DETOUR_FAKE_TLS_NONE)
    return 0;
  srv->tls_ctx =
      detour__fake_tls_ctx_new(srv->script, srv->tls_dir, srv->tls_cert,
                               sizeof srv->tls_cert, why, sizeof why);
  if (srv->tls_ctx)
    return 0;
  if (err)
    snprintf(err, errlen, "%s: %s", srv->script->listen, why);
  return DETOUR_EIO;
}

int detour_fake_server_start(detour_fake_server *srv, char *err,
                             size_t errlen) {
  int rc;
  if (!srv || srv->started)
    return DETOUR_EINVAL;
  srv->started = true;
  switch (srv->script->mode) {
  case DETOUR_FAKE_MODE_REFUSE:
    rc = bind_raw(srv, false, err, errlen);
    break;
  case DETOUR_FAKE_MODE_BLACKHOLE:
    rc = bind_raw(srv, true, err, errlen);
    if (rc == 0 && listen(srv->raw_fd, 0) != 0)
      rc = fail_errno(srv, errno, err, errlen);
    if (rc == 0)
      rc = fill_queue(srv, err, errlen);
    break;
  default:
    rc = start_tls(srv, err, errlen);
    if (rc == 0)
      rc = start_normal(srv, err, errlen);
  }
  if (rc == 0)
    emit_server_event(srv, DETOUR_FAKE_EV_LISTEN, srv->address);
  return rc;
}

/* ------------------------------------------------------------------------ */
/* Stopping and freeing                                                      */

static void on_listener_closed(uv_handle_t *h) {
  detour_fake_server *srv = h->data;
  srv->listener_open = false;
  detour__fake_server_maybe_free(srv);
}

void detour_fake_server_stop(detour_fake_server *srv) {
  if (!srv || srv->stopped)
    return;
  srv->stopped = true;
  if (srv->listener_open && !uv_is_closing((uv_handle_t *)&srv->listener))
    uv_close((uv_handle_t *)&srv->listener, on_listener_closed);
  if (srv->raw_fd >= 0)
    close(srv->raw_fd);
  if (srv->filler_fd >= 0)
    close(srv->filler_fd);
  srv->raw_fd = srv->filler_fd = -1;
  for (detour__fake_session *s = srv->sessions, *n; s; s = n) {
    n = detour__fake_session_next(s);
    detour__fake_session_stop(s);
  }
  if (srv->started)
    emit_server_event(srv, DETOUR_FAKE_EV_STOP, srv->address);
}

bool detour_fake_server_idle(const detour_fake_server *srv) {
  return !srv->listener_open && !srv->sessions && !srv->reject_busy;
}

void detour__fake_server_maybe_free(detour_fake_server *srv) {
  if (!srv->freeing || !detour_fake_server_idle(srv))
    return;
  detour__fake_record_clear(&srv->rec);
  detour_fake_script_free(srv->script);
  detour__fake_tls_ctx_free(srv->tls_ctx);
  detour__fake_free(&srv->mem, srv->tls_dir);
  detour__fake_free(&srv->mem, srv->spool_dir);
  detour_fake_mem mem = srv->mem;
  detour__fake_free(&mem, srv);
}

void detour_fake_server_free(detour_fake_server *srv) {
  if (!srv)
    return;
  srv->obs = NULL; /* the caller is done listening */
  detour_fake_server_stop(srv);
  srv->freeing = true;
  detour__fake_server_maybe_free(srv);
}

/* ------------------------------------------------------------------------ */
/* Accessors                                                                 */

void detour_fake_server_set_observer(detour_fake_server *srv,
                                     detour_fake_observer cb, void *arg) {
  srv->obs = cb;
  srv->obs_arg = arg;
}

const char *detour_fake_server_name(const detour_fake_server *srv) {
  return srv->script->name;
}
const char *detour_fake_server_address(const detour_fake_server *srv) {
  return srv->address;
}
uint16_t detour_fake_server_port(const detour_fake_server *srv) {
  return srv->port;
}
const char *detour_fake_server_ip(const detour_fake_server *srv) {
  return srv->ip;
}
detour_clock *detour_fake_server_clock(const detour_fake_server *srv) {
  return srv->clock;
}

void detour_fake_server_stats(const detour_fake_server *srv,
                              detour_fake_stats *out) {
  *out = srv->stats;
  out->not_kept = srv->rec.not_kept;
}

size_t detour_fake_server_conn_count(const detour_fake_server *srv) {
  return srv->rec.nconns;
}

int detour_fake_server_conn(const detour_fake_server *srv, size_t i,
                            detour_fake_conn *out) {
  if (i >= srv->rec.nconns)
    return DETOUR_ERANGE;
  *out = srv->rec.conns[i];
  return 0;
}

size_t detour_fake_server_event_count(const detour_fake_server *srv) {
  return srv->rec.nevents;
}

int detour_fake_server_event(const detour_fake_server *srv, size_t i,
                             detour_fake_event *out) {
  if (i >= srv->rec.nevents)
    return DETOUR_ERANGE;
  const detour__fake_event *e = &srv->rec.events[i];
  *out = e->ev;
  if (e->ev.type == DETOUR_FAKE_EV_MESSAGE && e->msg_index < srv->rec.nmsgs)
    out->msg = &srv->rec.msgs[e->msg_index].m;
  return 0;
}

size_t detour_fake_server_message_count(const detour_fake_server *srv) {
  return srv->rec.nmsgs;
}

int detour_fake_server_message(const detour_fake_server *srv, size_t i,
                               detour_fake_message *out) {
  if (i >= srv->rec.nmsgs)
    return DETOUR_ERANGE;
  *out = srv->rec.msgs[i].m;
  return 0;
}

void detour_fake_server_clear_record(detour_fake_server *srv) {
  detour__fake_record_clear(&srv->rec);
  srv->generation++;
}

/* Without the event list, synthesise accept/close/message events from
 * what SUMMARY keeps. */
/* A connection's TLS and AUTH as tls/auth events (at the accept time:
 * the summary keeps no event times). Never a password: none is kept. */
static int write_summary_tls(const detour_fake_server *srv,
                             const detour_fake_conn *c, detour_fake_event *ev,
                             FILE *f) {
  char data[DETOUR_FAKE_SASL_FIELD_MAX + 128];
  int rc = 0;
  if (c->tls_version[0]) {
    int n = snprintf(data, sizeof data, "version=%s cipher=%s", c->tls_version,
                     c->tls_cipher);
    ev->type = DETOUR_FAKE_EV_TLS;
    ev->data = data;
    ev->len = n < 0 ? 0 : strlen(data);
    rc = detour_fake_event_write_json(ev, srv->script->name, f);
  }
  if (rc == 0 && c->auth_user[0]) {
    snprintf(data, sizeof data, "mechanism=%s user=%s accepted=%s",
             c->auth_mechanism, c->auth_user, c->auth_ok ? "yes" : "no");
    ev->type = DETOUR_FAKE_EV_AUTH;
    ev->data = data;
    ev->len = strlen(data);
    rc = detour_fake_event_write_json(ev, srv->script->name, f);
  }
  return rc;
}

static int write_summary(const detour_fake_server *srv, FILE *f) {
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < srv->rec.nconns; i++) {
    const detour_fake_conn *c = &srv->rec.conns[i];
    detour_fake_event ev = {.type = DETOUR_FAKE_EV_ACCEPT,
                            .conn = c->id,
                            .time = c->accept_time,
                            .mono = c->accept_mono,
                            .data = c->peer,
                            .len = strlen(c->peer)};
    rc = detour_fake_event_write_json(&ev, srv->script->name, f);
    if (rc == 0)
      rc = write_summary_tls(srv, c, &ev, f);
    if (rc == 0 && c->closed_by != DETOUR_FAKE_BY_NONE) {
      ev.type = DETOUR_FAKE_EV_CLOSE;
      ev.time = c->close_time;
      ev.mono = c->close_mono;
      ev.closed_by = c->closed_by;
      ev.data = NULL;
      ev.len = 0;
      rc = detour_fake_event_write_json(&ev, srv->script->name, f);
    }
  }
  for (size_t i = 0; rc == 0 && i < srv->rec.nmsgs; i++) {
    const detour_fake_message *m = &srv->rec.msgs[i].m;
    detour_fake_event ev = {.type = DETOUR_FAKE_EV_MESSAGE,
                            .conn = m->conn,
                            .time = m->time,
                            .mono = m->mono,
                            .msg = m};
    rc = detour_fake_event_write_json(&ev, srv->script->name, f);
  }
  return rc;
}

int detour_fake_server_write_jsonl(const detour_fake_server *srv, FILE *f) {
  if (srv->rec.level != DETOUR_FAKE_RECORD_FULL)
    return write_summary(srv, f);
  for (size_t i = 0; i < srv->rec.nevents; i++) {
    detour_fake_event ev;
    detour_fake_server_event(srv, i, &ev);
    if (detour_fake_event_write_json(&ev, srv->script->name, f) != 0)
      return DETOUR_EIO;
  }
  return 0;
}

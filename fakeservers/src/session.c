/*
 * session.c - one SMTP session of a fake server: read commands, pick the
 * rule (script.c), wait its delay, write its reply (whole, dripped or
 * endless) or act its fault (close, reset, stall), record everything.
 *
 * A session is a small state machine:
 *   WAIT_GREETING -> COMMAND <-> BODY, and STALLED from anywhere;
 *   COMMAND <-> AUTH_CONT (the client's lines of an AUTH exchange);
 *   COMMAND -> TLS_HANDSHAKE -> COMMAND after a 220 to STARTTLS, and
 *   TLS_HANDSHAKE -> WAIT_GREETING first on an implicit-TLS server.
 * With TLS on, on_read passes the ciphertext through tls.c (memory BIOs)
 * before the bytes reach the command buffer, and sess_write encrypts:
 * everything above those two hooks sees plaintext.
 * While a step is in progress (a delay, a drip, an endless reply) the
 * session is `busy`: bytes that arrive are kept and read afterwards, one
 * command at a time, so pipelined clients get their replies in order.
 * Every wait is a detour_timer on the server's clock, so virtual time runs
 * the whole dialogue without real waiting.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cmdread.h"
#include "fake_internal.h"

#define BODY_CHUNK 65536 /* body bytes unstuffed at a time */
#define CORK_MAX 16384   /* held-back reply bytes written at once beyond */
#define ENDLESS_EVERY_MS 1000

typedef enum {
  WAIT_GREETING,
  COMMAND,
  BODY,
  STALLED,
  TLS_HANDSHAKE, /* reading the client's handshake; no commands */
  AUTH_CONT      /* a 334 challenge was sent: the next line answers it */
} sess_state;

/* A byte buffer. `p`/`len` are the live bytes; `off` bytes before `p` were
 * consumed and not moved yet, so taking one pipelined command off a large
 * input costs O(1), not a memmove of everything behind it (100k commands
 * queued during a delay would otherwise cost quadratic time). */
typedef struct {
  char *p;
  size_t len, cap, off;
  const detour_fake_mem *mem;
  bool failed; /* an append ran out of memory */
} buf;

struct detour__fake_session {
  uv_tcp_t tcp;
  detour_fake_server *srv;
  detour__fake_session *prev, *next;
  unsigned id;
  long rec_index;
  unsigned rec_generation;
  detour_fake_conn info; /* the live copy; mirrored into the record */
  detour_timer *timer;   /* delays, drips, endless lines */
  detour_timer *idle;
  sess_state state;
  bool busy, closing;
  bool pumping;         /* inside pump(): a finished step returns to its loop */
  bool paused;          /* reading stopped: max_input or max_output reached */
  unsigned limits_said; /* LIMIT events already recorded (bit per kind) */
  unsigned nth[DETOUR_FAKE_STAGE_COUNT];
  buf in;
  detour__fake_line_reader lines; /* command lines from `in` (cmdread.c) */
  detour__fake_body_reader bodyr; /* the message after DATA */
  /* the transaction */
  char *arg;    /* address of the MAIL/RCPT being answered */
  bool arg_bad; /* syntax error in it */
  bool in_tx;
  char *from;
  char **rcpts;
  size_t nrcpts, rcpts_cap;
  buf body;          /* the body kept in memory (not streaming) */
  FILE *spool;       /* streaming: the body kept on disk */
  size_t body_len;   /* bytes of the body kept */
  uint64_t body_raw; /* bytes received in BODY, before unstuffing */
  bool body_trunc;
  bool body_finding; /* a bare-LF dot was recorded for this message */
  const detour_fake_rule *body_rule;
  bool body_fired;
  /* the step in progress */
  detour_fake_stage stage;
  const detour_fake_rule *rule;
  int code;
  buf out;
  buf corked; /* whole replies held back in a pump pass (cork, uncork) */
  size_t out_off, drip_bytes;
  detour_ms drip_every;
  unsigned endless_left;
  void (*on_timer)(detour__fake_session *s);
  /* TLS and AUTH */
  detour__fake_tls *tls;       /* NULL until STARTTLS (or accept, implicit) */
  bool tls_before_greeting;    /* implicit TLS: greet once the handshake ends */
  detour_fake_sasl sasl;       /* the AUTH exchange in progress */
  bool authed;                 /* a 235 was sent in this TLS state */
  bool cred_ok;                /* the last credentials matched the table */
  bool need_ehlo;              /* after STARTTLS (RFC 3207 4.2) */
  detour_fake_rule auth_reply; /* 334 challenges, AUTH sequence errors */
};

static void pump(detour__fake_session *s);
static void sess_close(detour__fake_session *s, detour_fake_closer by);
static void sess_nomem(detour__fake_session *s);
static size_t queued(detour__fake_session *s);

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */

static bool buf_add(buf *b, const void *p, size_t n) {
  if (b->failed)
    return false;
  if (b->off > 0 && b->off >= b->len && b->off + b->len + n + 1 > b->cap) {
    /* the dead prefix is at least as large as the live bytes: moving them
     * down costs no more than the bytes consumed since the last move */
    memmove(b->p - b->off, b->p, b->len);
    b->p -= b->off;
    b->off = 0;
  }
  if (b->off + b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->off + b->len + n + 1)
      cap *= 2;
    char *q = detour__fake_realloc(b->mem, b->p ? b->p - b->off : NULL, cap);
    if (!q) {
      b->failed = true;
      return false;
    }
    b->p = q + b->off;
    b->cap = cap;
  }
  if (n)
    memcpy(b->p + b->len, p, n);
  b->len += n;
  b->p[b->len] = '\0';
  return true;
}

static void buf_consume(buf *b, size_t n) {
  if (n == 0)
    return;
  b->p += n;
  b->off += n;
  b->len -= n;
  if (b->len == 0) {
    b->p -= b->off;
    b->off = 0;
  }
  b->p[b->len] = '\0';
}

static void buf_free(buf *b) {
  const detour_fake_mem *mem = b->mem;
  detour__fake_free(mem, b->p ? b->p - b->off : NULL);
  memset(b, 0, sizeof *b);
  b->mem = mem;
}

static const detour_fake_mem *mem_of(detour__fake_session *s) {
  return &s->srv->mem;
}

static const detour_fake_limits *limits(detour__fake_session *s) {
  return &s->srv->script->limits;
}

detour__fake_session *detour__fake_session_next(detour__fake_session *s) {
  return s->next;
}

static detour_ms now(detour__fake_session *s) {
  return detour_clock_now(s->srv->clock);
}

static void emit(detour__fake_session *s, detour_fake_event_type t,
                 detour_fake_stage stage, const char *data, size_t len) {
  detour_fake_event ev;
  memset(&ev, 0, sizeof ev);
  ev.type = t;
  ev.conn = s->id;
  ev.stage = stage;
  ev.data = data;
  ev.len = len;
  if (t == DETOUR_FAKE_EV_REPLY)
    ev.code = s->code;
  if (!detour__fake_emit(s->srv, &ev))
    sess_nomem(s);
}

/* A limit reached: recorded once per session and kind (bit), data
 * "KEY: what happened". */
static void note_limit(detour__fake_session *s, unsigned bit,
                       detour_fake_stage st, const char *fmt, size_t value) {
  char what[160];
  if (s->limits_said & bit)
    return;
  s->limits_said |= bit;
  int n = snprintf(what, sizeof what, fmt, value);
  emit(s, DETOUR_FAKE_EV_LIMIT, st, what, (size_t)n);
}
enum {
  SAID_LINE = 1,
  SAID_RCPTS = 2,
  SAID_INPUT = 4,
  SAID_OUTPUT = 8,
  SAID_BODY = 16,
  SAID_SESSIONS = 32,
  SAID_SPOOL = 64
};

/* Copy the live counters into the record (unless it was cleared since). */
static void sync_record(detour__fake_session *s) {
  if (s->rec_generation != s->srv->generation)
    return;
  detour_fake_conn *c = detour__fake_record_conn_at(&s->srv->rec, s->rec_index);
  if (c)
    *c = s->info;
}

static void uncork(detour__fake_session *s);

/* A wait begins: what was held back goes out first (a delay, a drip or an
 * endless reply must not hold the replies before it). */
static void arm(detour__fake_session *s, detour_ms delay,
                void (*fn)(detour__fake_session *)) {
  uncork(s);
  if (s->closing || !s->timer)
    return;
  s->on_timer = fn;
  detour_timer_start(s->timer, now(s) + delay);
}

static void on_timer(detour_timer *t, void *arg) {
  detour__fake_session *s = arg;
  void (*fn)(detour__fake_session *) = s->on_timer;
  s->on_timer = NULL;
  if (fn && !s->closing)
    fn(s);
}

/* ------------------------------------------------------------------------ */
/* Writing                                                                   */

typedef struct {
  uv_write_t req;
  detour__fake_session *s;
  char data[];
} write_req;

static void on_write(uv_write_t *req, int status) {
  write_req *w = (write_req *)req;
  detour__fake_session *s = w->s;
  detour__fake_free(mem_of(s), w);
  if (status < 0 && status != UV_ECANCELED && !s->closing)
    sess_close(s, DETOUR_FAKE_BY_CLIENT_RESET);
  else if (!s->closing && s->paused)
    pump(s); /* the queue drained: read and answer again */
}

/* Bytes as they go on the wire (ciphertext when TLS is on). When nothing
 * is queued they go straight to the socket (uv_try_write: one write(2), no
 * request, no copy, no callback; a queued uv_write also makes libuv
 * re-arm the socket in epoll after every reply, an epoll_ctl per reply).
 * What the socket does not take at once is queued, in order. */
static void wire_write(detour__fake_session *s, const char *p, size_t n) {
  if (n == 0 || s->closing)
    return;
  uv_buf_t now = uv_buf_init((char *)p, (unsigned)n);
  s->srv->stats.writes++;
  int done = uv_try_write((uv_stream_t *)&s->tcp, &now, 1);
  if (done < 0 && done != UV_EAGAIN && done != UV_ENOSYS) {
    sess_close(s, DETOUR_FAKE_BY_CLIENT_RESET);
    return;
  }
  size_t sent = done > 0 ? (size_t)done : 0;
  s->info.bytes_out += sent;
  s->srv->stats.bytes_out += sent;
  p += sent;
  n -= sent;
  if (n == 0)
    return;
  write_req *w = detour__fake_malloc(mem_of(s), sizeof *w + n);
  if (!w) {
    sess_nomem(s);
    return;
  }
  w->s = s;
  memcpy(w->data, p, n);
  uv_buf_t b = uv_buf_init(w->data, (unsigned)n);
  s->srv->stats.writes++; /* libuv writes the rest when the socket can */
  if (uv_write(&w->req, (uv_stream_t *)&s->tcp, &b, 1, on_write) != 0) {
    detour__fake_free(mem_of(s), w);
    sess_close(s, DETOUR_FAKE_BY_CLIENT_RESET);
    return;
  }
  s->info.bytes_out += n;
  s->srv->stats.bytes_out += n;
}

/* Write what OpenSSL queued in the outgoing memory BIO, as one write. */
static void tls_flush(detour__fake_session *s) {
  size_t n = s->tls ? detour__fake_tls_pending(s->tls) : 0;
  if (n == 0 || s->closing)
    return;
  char *tmp = detour__fake_malloc(mem_of(s), n);
  if (!tmp) {
    sess_nomem(s);
    return;
  }
  n = detour__fake_tls_pull(s->tls, tmp, n);
  wire_write(s, tmp, n);
  detour__fake_free(mem_of(s), tmp);
}

/* Plaintext out: through TLS once it is up (one record per call, so a
 * drip still decides the pieces). */
static void sess_write(detour__fake_session *s, const char *p, size_t n) {
  if (n == 0 || s->closing)
    return;
  if (!s->tls) {
    wire_write(s, p, n);
    return;
  }
  if (!detour__fake_tls_write(s->tls, p, n)) {
    sess_close(s, DETOUR_FAKE_BY_SERVER_RESET);
    return;
  }
  tls_flush(s);
}

/* Replies to pipelined commands (RFC 2920) leave in one write: while
 * pump() still has whole commands to answer, a reply written whole is held
 * here; uncork() writes them all when the pass ends, before anything that
 * must follow them on the wire (a wait, a close, the TLS handshake), and
 * once CORK_MAX bytes are held. One write instead of one per reply: fewer
 * system calls and segments for a pipelining client. */
static void cork(detour__fake_session *s, const char *p, size_t n) {
  if (!buf_add(&s->corked, p, n)) {
    sess_nomem(s);
    return;
  }
  if (s->corked.len >= CORK_MAX)
    uncork(s);
}

static void uncork(detour__fake_session *s) {
  if (s->corked.len == 0)
    return;
  /* Taken off first: a write that fails closes the session, and the
   * close must not write these again (nor a TLS failure recurse). */
  buf held = s->corked;
  memset(&s->corked, 0, sizeof s->corked);
  s->corked.mem = held.mem;
  sess_write(s, held.p, held.len);
  buf_consume(&held, held.len);
  if (!s->corked.p)
    s->corked = held; /* its memory serves the next pass */
  else
    buf_free(&held);
}

/* ------------------------------------------------------------------------ */
/* Closing                                                                   */

static void on_closed(uv_handle_t *h) {
  detour__fake_session *s = h->data;
  detour_fake_server *srv = s->srv;
  detour_fake_event ev;
  s->info.close_time = now(s);
  s->info.close_mono = uv_hrtime();
  sync_record(s);
  memset(&ev, 0, sizeof ev);
  ev.type = DETOUR_FAKE_EV_CLOSE;
  ev.conn = s->id;
  ev.closed_by = s->info.closed_by;
  if (!detour__fake_emit(srv, &ev))
    srv->stats.nomem++; /* the session is gone anyway: only counted */
  if (s->prev)
    s->prev->next = s->next;
  else
    srv->sessions = s->next;
  if (s->next)
    s->next->prev = s->prev;
  srv->stats.active--;
  srv->stats.closed++;
  buf_free(&s->in);
  buf_free(&s->out);
  buf_free(&s->corked);
  buf_free(&s->body);
  detour__fake_tls_free(s->tls);
  memset(&s->sasl, 0, sizeof s->sasl); /* it may hold a password */
  if (s->spool)
    fclose(s->spool);
  for (size_t i = 0; i < s->nrcpts; i++)
    detour__fake_free(&srv->mem, s->rcpts[i]);
  detour__fake_free(&srv->mem, s->rcpts);
  detour__fake_free(&srv->mem, s->from);
  detour__fake_free(&srv->mem, s->arg);
  detour__fake_free(&srv->mem, s);
  detour__fake_server_maybe_free(srv);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  detour__fake_session *s = req->data;
  detour__fake_free(mem_of(s), req);
  uv_close((uv_handle_t *)&s->tcp, on_closed);
}

/* Close for the reason `by`: FIN after pending writes (SERVER), RST
 * (SERVER_RESET), or at once. Idempotent. */
static void sess_close(detour__fake_session *s, detour_fake_closer by) {
  if (s->closing)
    return;
  /* The replies held back go before the FIN, the RST or close_notify, as
   * they would have unheld (not when the client is gone or memory is). */
  if (by != DETOUR_FAKE_BY_CLIENT_RESET && by != DETOUR_FAKE_BY_NOMEM) {
    uncork(s);
    if (s->closing)
      return;
  } else {
    buf_consume(&s->corked, s->corked.len);
  }
  /* An orderly end of a TLS session says close_notify first (not after a
   * reset, nor without memory: flushing allocates, and its failure comes
   * back here as NOMEM). */
  if (s->tls && by != DETOUR_FAKE_BY_SERVER_RESET &&
      by != DETOUR_FAKE_BY_CLIENT_RESET && by != DETOUR_FAKE_BY_NOMEM &&
      detour__fake_tls_established(s->tls)) {
    detour__fake_tls_close_notify(s->tls);
    tls_flush(s);
    if (s->closing)
      return;
  }
  s->closing = true;
  s->busy = true;
  s->info.closed_by = by;
  detour_timer_free(s->timer);
  s->timer = NULL;
  if (s->idle)
    detour_timer_free(s->idle);
  s->idle = NULL;
  uv_read_stop((uv_stream_t *)&s->tcp);
  if ((by == DETOUR_FAKE_BY_SERVER_RESET || by == DETOUR_FAKE_BY_NOMEM) &&
      uv_tcp_close_reset(&s->tcp, on_closed) == 0)
    return;
  if (by == DETOUR_FAKE_BY_SERVER && queued(s) > 0) {
    /* Replies still queued: FIN once they are written. (With nothing
     * queued, close(2) alone sends the FIN after what the kernel holds;
     * a shutdown(2) first would be one more system call per session.)
     * Without memory for the request, close at once (pending writes are
     * dropped, but the session still ends). */
    uv_shutdown_t *req = detour__fake_malloc(mem_of(s), sizeof *req);
    if (!req)
      s->srv->stats.nomem++;
    if (req) {
      req->data = s;
      if (uv_shutdown(req, (uv_stream_t *)&s->tcp, on_shutdown) == 0)
        return;
      detour__fake_free(mem_of(s), req);
    }
  }
  uv_close((uv_handle_t *)&s->tcp, on_closed);
}

void detour__fake_session_stop(detour__fake_session *s) {
  sess_close(s, DETOUR_FAKE_BY_STOP);
}

/* Out of memory: this session ends (RST), recorded as closed_by NOMEM;
 * the server and its other sessions go on. */
static void sess_nomem(detour__fake_session *s) {
  if (s->closing)
    return;
  s->srv->stats.nomem++;
  sess_close(s, DETOUR_FAKE_BY_NOMEM);
}

static void on_idle(detour_timer *t, void *arg) {
  sess_close(arg, DETOUR_FAKE_BY_IDLE);
}

static void touch_idle(detour__fake_session *s) {
  detour_ms t = s->srv->script->idle_timeout;
  if (t > 0 && s->idle)
    detour_timer_start(s->idle, now(s) + t);
}

/* ------------------------------------------------------------------------ */
/* Building replies                                                          */

static const char *default_text(detour__fake_session *s, detour_fake_stage st,
                                char *tmp, size_t len) {
  const char *host = s->srv->script->hostname;
  switch (st) {
  case DETOUR_FAKE_GREETING:
    snprintf(tmp, len, "%s ESMTP detour-fake", host);
    return tmp;
  case DETOUR_FAKE_HELO:
    return host;
  case DETOUR_FAKE_DATA:
    return "End data with <CR><LF>.<CR><LF>";
  case DETOUR_FAKE_EOD:
    snprintf(tmp, len, "Ok: queued as FAKE%06u", ++s->srv->queue_id);
    return tmp;
  case DETOUR_FAKE_QUIT:
    return "Bye";
  case DETOUR_FAKE_UNKNOWN:
    return "Error: command not recognized";
  case DETOUR_FAKE_STARTTLS:
    return "Ready to start TLS";
  case DETOUR_FAKE_AUTH:
    return "Authentication successful";
  default:
    return "Ok";
  }
}

static const char *default_enhanced(detour_fake_stage st) {
  switch (st) {
  case DETOUR_FAKE_MAIL:
    return "2.1.0";
  case DETOUR_FAKE_RCPT:
    return "2.1.5";
  case DETOUR_FAKE_EOD:
  case DETOUR_FAKE_RSET:
  case DETOUR_FAKE_NOOP:
  case DETOUR_FAKE_QUIT:
    return "2.0.0";
  case DETOUR_FAKE_UNKNOWN:
    return "5.5.2";
  case DETOUR_FAKE_STARTTLS:
    return "2.0.0";
  case DETOUR_FAKE_AUTH:
    return "2.7.0";
  default:
    return NULL;
  }
}

static const char *generic_text(int code) {
  switch (code / 100) {
  case 2:
    return "Ok";
  case 3:
    return "Go ahead";
  case 4:
    return "Temporary failure, try again later";
  default:
    return "Permanent failure";
  }
}

/* The sequence errors a real server gives when no rule says otherwise. */
static bool sequence_error(detour__fake_session *s, int *code, const char **enh,
                           const char **text) {
  const char *e = "5.5.1";
  const detour_fake_auth *auth = &s->srv->script->auth;
  if (s->stage == DETOUR_FAKE_AUTH && !s->cred_ok) {
    *code = 535; /* RFC 4954 6 */
    e = "5.7.8";
    *text = "Authentication credentials invalid";
  } else if (s->stage == DETOUR_FAKE_MAIL && s->need_ehlo) {
    *code = 503;
    *text = "Error: send EHLO first (after STARTTLS)";
  } else if (s->stage == DETOUR_FAKE_MAIL && auth->required && !s->authed) {
    *code = 530;
    e = "5.7.0";
    *text = "Authentication required";
  } else if ((s->stage == DETOUR_FAKE_MAIL || s->stage == DETOUR_FAKE_RCPT) &&
             s->arg_bad) {
    *code = 501;
    e = "5.5.4";
    *text = "Syntax error in parameters";
  } else if (s->stage == DETOUR_FAKE_MAIL && s->in_tx) {
    *code = 503;
    *text = "Error: nested MAIL command";
  } else if (s->stage == DETOUR_FAKE_RCPT && !s->in_tx) {
    *code = 503;
    *text = "Error: need MAIL command";
  } else if (s->stage == DETOUR_FAKE_DATA && s->nrcpts == 0) {
    *code = s->in_tx ? 554 : 503;
    *text =
        s->in_tx ? "Error: no valid recipients" : "Error: need RCPT command";
  } else {
    return false;
  }
  *enh = e;
  return true;
}

/* One line "250-text" / "250 text" with optional enhanced code. */
static void add_line(buf *b, int code, bool more, const char *enh,
                     const char *text, size_t tlen, bool bare_lf) {
  char head[32];
  int n;
  if (code >= 0 && code <= 999) { /* every reply: no printf on the way */
    head[0] = (char)('0' + code / 100);
    head[1] = (char)('0' + code / 10 % 10);
    head[2] = (char)('0' + code % 10);
    head[3] = more ? '-' : ' ';
    n = 4;
  } else {
    n = snprintf(head, sizeof head, "%03d%c", code, more ? '-' : ' ');
  }
  buf_add(b, head, (size_t)n);
  if (enh && *enh) {
    buf_add(b, enh, strlen(enh));
    if (tlen)
      buf_add(b, " ", 1);
  }
  buf_add(b, text, tlen);
  buf_add(b, bare_lf ? "\n" : "\r\n", bare_lf ? 1 : 2);
}

static bool offers_starttls(const detour__fake_session *s) {
  const detour_fake_tls *t = &s->srv->script->tls;
  return t->mode == DETOUR_FAKE_TLS_STARTTLS && !t->hide_starttls && !s->tls;
}

/* AUTH is there when configured, and with after_tls only inside TLS. */
static bool offers_auth(const detour__fake_session *s) {
  const detour_fake_auth *a = &s->srv->script->auth;
  return a->mechanisms && (!a->after_tls || s->tls);
}

/* The EHLO reply: hostname, then the keywords (the script's, then
 * STARTTLS and AUTH as the session's TLS state allows). */
static void add_ehlo(detour__fake_session *s, int code, bool bare_lf,
                     bool endless) {
  const detour_fake_script *sc = s->srv->script;
  const char *kw[66];
  size_t n = 0;
  char auth[32];
  for (size_t i = 0; i < sc->n_ehlo && n < 64; i++)
    kw[n++] = sc->ehlo_kw[i];
  if (offers_starttls(s))
    kw[n++] = "STARTTLS";
  if (offers_auth(s)) {
    snprintf(auth, sizeof auth, "AUTH%s%s",
             sc->auth.mechanisms & DETOUR_FAKE_AUTH_PLAIN ? " PLAIN" : "",
             sc->auth.mechanisms & DETOUR_FAKE_AUTH_LOGIN ? " LOGIN" : "");
    kw[n++] = auth;
  }
  add_line(&s->out, code, n > 0 || endless, NULL, sc->hostname,
           strlen(sc->hostname), bare_lf);
  for (size_t i = 0; i < n; i++)
    add_line(&s->out, code, i + 1 < n || endless, NULL, kw[i], strlen(kw[i]),
             bare_lf);
}

/* Lines of text (separated by '\n') as one reply. */
static void add_text(buf *b, int code, const char *enh, const char *text,
                     bool bare_lf, bool endless) {
  const char *p = text;
  for (;;) {
    const char *nl = strchr(p, '\n');
    size_t len = nl ? (size_t)(nl - p) : strlen(p);
    add_line(b, code, nl != NULL || endless, enh, p, len, bare_lf);
    if (!nl)
      break;
    p = nl + 1;
  }
}

/* Fill s->out with the reply of the current step and s->code with its
 * code (0 when raw bytes carry none). */
static void build_reply(detour__fake_session *s) {
  const detour_fake_rule *r = s->rule;
  const detour__fake_style *style = &s->srv->script->style[s->stage];
  bool bare_lf = (r && r->bare_lf) || style->bare_lf;
  bool endless = r && r->endless;
  char tmp[128];
  s->out.len = 0;
  s->out_off = 0;
  if (r && r->raw) {
    buf_add(&s->out, r->raw, r->raw_len);
    s->code =
        (r->raw_len >= 3 && isdigit((unsigned char)r->raw[0]) &&
         isdigit((unsigned char)r->raw[1]) && isdigit((unsigned char)r->raw[2]))
            ? atoi((char[4]){r->raw[0], r->raw[1], r->raw[2], 0})
            : 0;
  } else {
    int code = r ? r->code : 0;
    const char *enh = r ? r->enhanced : NULL, *text = r ? r->text : NULL;
    if (code == 0 && !sequence_error(s, &code, &enh, &text)) {
      code = detour__fake_default_code(s->stage);
      enh = enh ? enh : default_enhanced(s->stage);
      if (!text && s->stage == DETOUR_FAKE_EHLO) {
        s->code = code;
        add_ehlo(s, code, bare_lf, endless);
        goto append;
      }
      text = text ? text : default_text(s, s->stage, tmp, sizeof tmp);
    }
    if (!text && s->stage == DETOUR_FAKE_EHLO && code / 100 == 2) {
      s->code = code;
      add_ehlo(s, code, bare_lf, endless);
      goto append;
    }
    if (!text && code == detour__fake_default_code(s->stage))
      text = default_text(s, s->stage, tmp, sizeof tmp);
    s->code = code;
    add_text(&s->out, code, enh, text ? text : generic_text(code), bare_lf,
             endless);
  }
append:
  if (r && r->append)
    buf_add(&s->out, r->append, r->append_len);
}

/* ------------------------------------------------------------------------ */
/* The transaction                                                           */

/* Forget the message body kept so far (memory or spool). */
static void body_drop(detour__fake_session *s) {
  s->body.len = 0;
  s->body_len = 0;
  if (s->spool)
    fclose(s->spool);
  s->spool = NULL;
}

static void reset_tx(detour__fake_session *s) {
  for (size_t i = 0; i < s->nrcpts; i++)
    detour__fake_free(mem_of(s), s->rcpts[i]);
  s->nrcpts = 0;
  detour__fake_free(mem_of(s), s->from);
  s->from = NULL;
  s->in_tx = false;
  body_drop(s);
  s->body_raw = 0;
  s->body_trunc = false;
  s->body_rule = NULL;
  s->body_fired = false;
}

static void add_rcpt(detour__fake_session *s) {
  if (s->nrcpts == s->rcpts_cap) {
    size_t cap = s->rcpts_cap ? s->rcpts_cap * 2 : 8;
    char **v = detour__fake_realloc(mem_of(s), s->rcpts, cap * sizeof *v);
    if (!v) {
      sess_nomem(s);
      return;
    }
    s->rcpts = v;
    s->rcpts_cap = cap;
  }
  char *a = detour__fake_strdup(mem_of(s), s->arg ? s->arg : "");
  if (!a)
    sess_nomem(s);
  else
    s->rcpts[s->nrcpts++] = a;
}

/* The message as received so far: complete at the final dot, not after an
 * after_bytes cut. */
static void record_message(detour__fake_session *s, bool complete, int code) {
  detour_fake_server *srv = s->srv;
  detour_fake_message m;
  memset(&m, 0, sizeof m);
  m.conn = s->id;
  m.index = srv->rec.nmsgs;
  m.time = now(s);
  m.mono = uv_hrtime();
  m.from = s->from ? s->from : "";
  m.rcpts = (const char *const *)s->rcpts;
  m.nrcpts = s->nrcpts;
  m.body = s->spool ? NULL : s->body.p ? s->body.p : "";
  m.body_file = s->spool;
  m.body_len = s->body_len;
  m.complete = complete;
  m.truncated = s->body_trunc;
  m.code = code;
  if (s->spool && fflush(s->spool) != 0)
    m.truncated = true;
  long kept = detour__fake_record_message(&srv->rec, &m);
  if (kept == FAKE_REC_NOMEM) {
    sess_nomem(s);
    return;
  }
  if (kept < 0)
    m.index = (size_t)-1; /* not kept: the event points nowhere */
  srv->stats.messages++;
  s->info.messages++;
  sync_record(s);
  detour_fake_event ev;
  memset(&ev, 0, sizeof ev);
  ev.type = DETOUR_FAKE_EV_MESSAGE;
  ev.conn = s->id;
  ev.msg = &m;
  if (!detour__fake_emit(srv, &ev))
    sess_nomem(s);
}

/* Streaming: the body goes to an unlinked file in the spool directory. */
static void open_spool(detour__fake_session *s) {
  const char *dir = s->srv->spool_dir;
  char path[4096];
  if (!dir)
    dir = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
  snprintf(path, sizeof path, "%s/detour-fake-body-XXXXXX", dir);
  int fd = mkstemp(path);
  if (fd >= 0) {
    unlink(path);
    if (!(s->spool = fdopen(fd, "w+")))
      close(fd);
  }
  if (!s->spool) {
    s->body_trunc = true;
    note_limit(s, SAID_SPOOL, DETOUR_FAKE_BODY,
               "spool: cannot spool the body (errno %zu); it is not kept",
               (size_t)errno);
  }
}

/* Streaming: a body that outgrows FAKE_STREAM_INLINE_BODY moves from
 * memory to the spool file, which then takes the rest. Most bodies never
 * get there, so a message costs no file (a temporary file's create and
 * unlink were most of the fake server's time under smtp-source load).
 * false when the body cannot be kept (the message is marked truncated). */
static bool spool_memory(detour__fake_session *s) {
  if (s->body_trunc)
    return false; /* the spool failed before: said once, not retried */
  open_spool(s);
  if (!s->spool)
    return false;
  if (s->body.len && fwrite(s->body.p, 1, s->body.len, s->spool) != s->body.len)
    s->body_trunc = true;
  s->body.len = 0;
  return true;
}

static void enter_body(detour__fake_session *s) {
  detour__fake_match_ctx ctx = {DETOUR_FAKE_BODY, s->id,
                                ++s->nth[DETOUR_FAKE_BODY], NULL, false};
  s->state = BODY;
  body_drop(s);
  s->body_raw = 0;
  detour__fake_body_reader_init(&s->bodyr);
  s->body_trunc = false;
  s->body_finding = false;
  s->body_fired = false;
  s->body_rule = detour__fake_script_match(s->srv->script, &ctx);
}

static void start_tls(detour__fake_session *s);

/* What a reply does to the session once it is written. */
static void apply_effects(detour__fake_session *s) {
  bool ok = s->code / 100 == 2;
  switch (s->stage) {
  case DETOUR_FAKE_GREETING:
    s->state = COMMAND;
    break;
  case DETOUR_FAKE_EHLO:
  case DETOUR_FAKE_HELO:
    if (ok)
      s->need_ehlo = false;
    /* fall through */
  case DETOUR_FAKE_RSET:
    if (ok)
      reset_tx(s);
    break;
  case DETOUR_FAKE_STARTTLS:
    if (s->code == 220)
      start_tls(s);
    break;
  case DETOUR_FAKE_AUTH:
    if (s->code == 334)
      s->state = AUTH_CONT;
    else {
      s->state = COMMAND;
      s->authed = s->authed || s->code == 235;
      if (s->code == 235 && s->info.auth_user[0]) {
        s->info.auth_ok = true;
        sync_record(s);
      }
      memset(&s->sasl, 0, sizeof s->sasl);
    }
    break;
  case DETOUR_FAKE_MAIL:
    if (ok) {
      reset_tx(s);
      s->in_tx = true;
      if (!(s->from = detour__fake_strdup(mem_of(s), s->arg ? s->arg : "")))
        sess_nomem(s);
    }
    break;
  case DETOUR_FAKE_RCPT:
    if (ok)
      add_rcpt(s);
    break;
  case DETOUR_FAKE_DATA:
    if (s->code / 100 == 3)
      enter_body(s);
    break;
  case DETOUR_FAKE_EOD:
    record_message(s, true, s->code);
    reset_tx(s);
    s->state = COMMAND;
    break;
  default:
    break;
  }
}

/* ------------------------------------------------------------------------ */
/* Steps: the rule's delay, then its action or its reply                     */

static void step_begin(detour__fake_session *s, detour_fake_stage st,
                       const detour_fake_rule *r);
static void step_fire(detour__fake_session *s);

static void step_done(detour__fake_session *s) {
  const detour_fake_rule *r = s->rule;
  detour_fake_action then = r ? r->then : DETOUR_FAKE_ACT_AUTO;
  apply_effects(s);
  if (s->closing)
    return; /* out of memory on the way */
  if (then == DETOUR_FAKE_ACT_AUTO)
    then = (s->code == 421 || s->stage == DETOUR_FAKE_QUIT)
               ? DETOUR_FAKE_ACT_CLOSE
               : DETOUR_FAKE_ACT_CONTINUE;
  switch (then) {
  case DETOUR_FAKE_ACT_CLOSE:
    sess_close(s, DETOUR_FAKE_BY_SERVER);
    return;
  case DETOUR_FAKE_ACT_RESET:
    sess_close(s, DETOUR_FAKE_BY_SERVER_RESET);
    return;
  case DETOUR_FAKE_ACT_STALL:
    uncork(s); /* the reply, then silence */
    emit(s, DETOUR_FAKE_EV_ACTION, s->stage, "stall", 5);
    s->state = STALLED;
    return;
  default:
    break;
  }
  s->busy = false;
  touch_idle(s); /* idle counts from the end of our reply */
  /* A step that finished inside pump() (a reply written at once) returns
   * to pump's loop instead of calling it again: calling it would recurse
   * once per pipelined command, and 100k commands in one write would
   * overflow the stack. */
  if (!s->pumping)
    pump(s);
}

/* Endless multi-line replies: one more continuation line per tick. */
static void endless_tick(detour__fake_session *s) {
  char line[64];
  int code = s->code ? s->code : detour__fake_default_code(s->stage);
  if (s->endless_left == 0) {
    emit(s, DETOUR_FAKE_EV_ACTION, s->stage, "stall", 5);
    s->state = STALLED; /* bounded: the reply never ends, the lines do */
    return;
  }
  s->endless_left--;
  int n = snprintf(line, sizeof line, "%03d-still going\r\n", code);
  emit(s, DETOUR_FAKE_EV_REPLY, s->stage, line, (size_t)n);
  uncork(s);
  sess_write(s, line, (size_t)n);
  arm(s, s->drip_every, endless_tick);
}

/* Write the next piece of s->out; when all is out, finish the step. */
static void drip_next(detour__fake_session *s) {
  /* Separate writes: one piece per timer tick, or all pieces at once (in a
   * loop, not by recursion, so a long reply dripped byte by byte cannot
   * grow the stack). */
  do {
    size_t left = s->out.len - s->out_off;
    size_t n = s->drip_bytes && s->drip_bytes < left ? s->drip_bytes : left;
    if (s->pumping && s->out_off == 0 && n == left) {
      cork(s, s->out.p, n); /* a whole reply, inside a pump pass */
    } else {
      uncork(s); /* a piece of a drip: its own write, after the rest */
      sess_write(s, s->out.p + s->out_off, n);
    }
    s->out_off += n;
    if (s->closing)
      return;
  } while (s->out_off < s->out.len && s->drip_every <= 0);
  if (s->out_off < s->out.len) {
    arm(s, s->drip_every, drip_next);
    return;
  }
  if (s->rule && s->rule->endless) {
    s->endless_left = DETOUR_FAKE_ENDLESS_MAX;
    arm(s, s->drip_every, endless_tick);
    return;
  }
  step_done(s);
}

static void send_reply(detour__fake_session *s) {
  const detour_fake_rule *r = s->rule;
  const detour__fake_style *style = &s->srv->script->style[s->stage];
  build_reply(s);
  if (s->out.failed) {
    sess_nomem(s);
    return;
  }
  emit(s, DETOUR_FAKE_EV_REPLY, s->stage, s->out.p ? s->out.p : "", s->out.len);
  if (s->closing)
    return;
  s->drip_bytes = r && r->drip_bytes ? r->drip_bytes : style->drip_bytes;
  s->drip_every = r && r->drip_bytes ? r->drip_every : style->drip_every;
  if (r && r->endless) {
    s->drip_bytes = 0;
    s->drip_every = r->drip_every > 0 ? r->drip_every : ENDLESS_EVERY_MS;
  }
  if (s->out.len == 0) {
    step_done(s);
    return;
  }
  drip_next(s);
}

/* The scripted fault instead of a reply. */
static void do_action(detour__fake_session *s, detour_fake_action a) {
  const char *name = detour_fake_action_name(a);
  uncork(s); /* the replies before the fault are on the wire before it */
  if (s->closing)
    return;
  emit(s, DETOUR_FAKE_EV_ACTION, s->stage, name, strlen(name));
  /* A cut at the final dot or mid-body: keep what arrived (once: the
   * close below must not record it again). */
  if (s->stage == DETOUR_FAKE_EOD || s->stage == DETOUR_FAKE_BODY) {
    s->state = COMMAND;
    record_message(s, s->stage == DETOUR_FAKE_EOD, 0);
    if (s->closing)
      return;
  }
  if (a == DETOUR_FAKE_ACT_CLOSE)
    sess_close(s, DETOUR_FAKE_BY_SERVER);
  else if (a == DETOUR_FAKE_ACT_RESET)
    sess_close(s, DETOUR_FAKE_BY_SERVER_RESET);
  else
    s->state = STALLED;
}

static void step_fire(detour__fake_session *s) {
  const detour_fake_rule *r = s->rule;
  detour_fake_action a = r ? r->action : DETOUR_FAKE_ACT_AUTO;
  if (a == DETOUR_FAKE_ACT_CLOSE || a == DETOUR_FAKE_ACT_RESET ||
      a == DETOUR_FAKE_ACT_STALL) {
    do_action(s, a);
    return;
  }
  if (s->stage == DETOUR_FAKE_BODY && !(r && (r->code || r->raw))) {
    step_done(s); /* a body rule without action or reply: only a delay */
    return;
  }
  if (s->stage == DETOUR_FAKE_CONNECT) {
    /* connect only delays (or cuts); then the greeting. */
    detour__fake_match_ctx ctx = {DETOUR_FAKE_GREETING, s->id,
                                  ++s->nth[DETOUR_FAKE_GREETING], NULL, false};
    step_begin(s, DETOUR_FAKE_GREETING,
               detour__fake_script_match(s->srv->script, &ctx));
    return;
  }
  send_reply(s);
}

static void step_begin(detour__fake_session *s, detour_fake_stage st,
                       const detour_fake_rule *r) {
  s->busy = true;
  s->stage = st;
  s->rule = r;
  s->code = 0;
  if (r && r->delay > 0)
    arm(s, r->delay, step_fire);
  else
    step_fire(s);
}

/* Pick the rule of a stage for this command and start its step. */
static void run_stage(detour__fake_session *s, detour_fake_stage st,
                      bool params) {
  detour__fake_match_ctx ctx = {st, s->id, ++s->nth[st], s->arg, params};
  step_begin(s, st, detour__fake_script_match(s->srv->script, &ctx));
}

/* ------------------------------------------------------------------------ */
/* Reading commands                                                          */

static detour_fake_stage verb_stage(const char *line, size_t len) {
  static const struct {
    const char *verb;
    detour_fake_stage stage;
  } verbs[] = {{"EHLO", DETOUR_FAKE_EHLO}, {"HELO", DETOUR_FAKE_HELO},
               {"MAIL", DETOUR_FAKE_MAIL}, {"RCPT", DETOUR_FAKE_RCPT},
               {"DATA", DETOUR_FAKE_DATA}, {"RSET", DETOUR_FAKE_RSET},
               {"NOOP", DETOUR_FAKE_NOOP}, {"QUIT", DETOUR_FAKE_QUIT},
               {"AUTH", DETOUR_FAKE_AUTH}, {"STARTTLS", DETOUR_FAKE_STARTTLS}};
  size_t vl = 0;
  while (vl < len && line[vl] != ' ')
    vl++;
  for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
    if (vl == strlen(verbs[i].verb) &&
        strncasecmp(line, verbs[i].verb, vl) == 0)
      return verbs[i].stage;
  return DETOUR_FAKE_UNKNOWN;
}

/* "FROM:<a@b> SIZE=1" -> s->arg = "a@b", *params = true. */
static void parse_path(detour__fake_session *s, const char *line,
                       const char *kw, bool *params) {
  size_t kl = strlen(kw);
  const char *p = line + 5; /* after "MAIL " / "RCPT " */
  detour__fake_free(mem_of(s), s->arg);
  s->arg = NULL;
  s->arg_bad = true;
  *params = false;
  if (strlen(line) < 5 || strncasecmp(p, kw, kl) != 0)
    return;
  p += kl;
  while (*p == ' ')
    p++;
  const char *end;
  if (*p == '<') {
    end = strchr(++p, '>');
    if (!end)
      return;
    s->arg = detour__fake_memdup(mem_of(s), p, (size_t)(end - p));
    end++;
  } else {
    end = p + strcspn(p, " ");
    if (end == p)
      return;
    s->arg = detour__fake_memdup(mem_of(s), p, (size_t)(end - p));
  }
  while (*end == ' ')
    end++;
  *params = *end != '\0';
  s->arg_bad = s->arg == NULL;
  if (!s->arg)
    sess_nomem(s);
}

/* A recipient over max_rcpts: 452 4.5.3 whatever the script says. */
static void too_many_rcpts(detour__fake_session *s) {
  static const detour_fake_rule too_many = {.stage = DETOUR_FAKE_RCPT,
                                            .code = 452,
                                            .enhanced = "4.5.3",
                                            .text = "Too many recipients"};
  note_limit(s, SAID_RCPTS, DETOUR_FAKE_RCPT,
             "max_rcpts: more than %zu recipients, answered 452 4.5.3",
             limits(s)->max_rcpts);
  if (s->closing)
    return;
  s->nth[DETOUR_FAKE_RCPT]++;
  step_begin(s, DETOUR_FAKE_RCPT, &too_many);
}

/* ------------------------------------------------------------------------ */
/* AUTH (RFC 4954): the exchange is auth.c's pure decoder; the verdict is   */
/* the AUTH stage, so a script's rule or a catalogue fault can replace it.  */

#define REDACTED "<redacted>"

/* A reply of the exchange itself (334 challenge, 5xx sequence errors): no
 * rule applies to those. */
static void auth_say(detour__fake_session *s, int code, const char *enh,
                     const char *text) {
  memset(&s->auth_reply, 0, sizeof s->auth_reply);
  s->auth_reply.stage = DETOUR_FAKE_AUTH;
  s->auth_reply.code = code;
  s->auth_reply.enhanced = enh;
  s->auth_reply.text = text;
  step_begin(s, DETOUR_FAKE_AUTH, &s->auth_reply);
}

/* Credentials complete: compare, record (never the password), then the
 * AUTH stage's rule or the default 235 / 535. */
static void auth_verdict(detour__fake_session *s) {
  const char *want = detour__fake_script_password(s->srv->script, s->sasl.user);
  char line[DETOUR_FAKE_SASL_FIELD_MAX + 96];
  s->cred_ok = want && strcmp(want, s->sasl.password) == 0;
  int n =
      snprintf(line, sizeof line, "mechanism=%s user=%s password=%s",
               s->sasl.mechanism == DETOUR_FAKE_AUTH_PLAIN ? "PLAIN" : "LOGIN",
               s->sasl.user,
               s->cred_ok ? "match"
               : want     ? "mismatch"
                          : "unknown_user");
  memset(s->sasl.password, 0, sizeof s->sasl.password);
  snprintf(s->info.auth_user, sizeof s->info.auth_user, "%s", s->sasl.user);
  snprintf(s->info.auth_mechanism, sizeof s->info.auth_mechanism, "%s",
           s->sasl.mechanism == DETOUR_FAKE_AUTH_PLAIN ? "PLAIN" : "LOGIN");
  s->info.auth_ok = false; /* until the 235 */
  sync_record(s);
  emit(s, DETOUR_FAKE_EV_AUTH, DETOUR_FAKE_AUTH, line,
       n < 0                     ? 0
       : (size_t)n < sizeof line ? (size_t)n
                                 : sizeof line - 1);
  run_stage(s, DETOUR_FAKE_AUTH, false);
}

static void auth_status(detour__fake_session *s, detour_fake_sasl_status st) {
  switch (st) {
  case DETOUR_FAKE_SASL_CHALLENGE:
    auth_say(s, 334, NULL, s->sasl.challenge);
    return;
  case DETOUR_FAKE_SASL_DONE:
    auth_verdict(s);
    return;
  case DETOUR_FAKE_SASL_CANCELLED:
    auth_say(s, 501, "5.7.0", "Authentication cancelled");
    return;
  case DETOUR_FAKE_SASL_BAD_MECH:
    auth_say(s, 504, "5.5.4", "Unrecognized authentication type");
    return;
  default:
    auth_say(s, 501, "5.5.2", "Cannot decode the response");
  }
}

/* The AUTH command on a server that offers AUTH. */
static void auth_command(detour__fake_session *s, const char *line,
                         size_t len) {
  s->cred_ok = false;
  if (!offers_auth(s))
    auth_say(s, 538, "5.7.11",
             "Encryption required for requested authentication mechanism");
  else if (s->authed)
    auth_say(s, 503, "5.5.1", "Error: already authenticated");
  else if (s->in_tx)
    auth_say(s, 503, "5.5.1", "Error: MAIL transaction in progress");
  else
    auth_status(s, detour_fake_sasl_begin(&s->sasl, line, len,
                                          s->srv->script->auth.mechanisms));
}

/* A line answering a 334 challenge: recorded redacted, never as sent. */
static void auth_line(detour__fake_session *s, const char *line, size_t len) {
  s->info.commands++;
  s->srv->stats.commands++;
  emit(s, DETOUR_FAKE_EV_COMMAND, DETOUR_FAKE_AUTH, REDACTED,
       sizeof REDACTED - 1);
  auth_status(s, detour_fake_sasl_step(&s->sasl, line, len));
}

/* "AUTH PLAIN dGVzdA..." -> "AUTH PLAIN <redacted>" into out. */
static size_t redact_auth(const char *line, size_t len, char *out, size_t cap) {
  const char *sp1 = memchr(line, ' ', len);
  const char *sp2 =
      sp1 ? memchr(sp1 + 1, ' ', len - (size_t)(sp1 + 1 - line)) : NULL;
  size_t keep = sp2 ? (size_t)(sp2 - line) : len;
  int n = snprintf(out, cap, "%.*s%s", (int)(keep < 64 ? keep : 64), line,
                   sp2 ? " " REDACTED : "");
  return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
}

/* ------------------------------------------------------------------------ */
/* STARTTLS (RFC 3207)                                                       */

/* After the 220: forget what the client sent in clear (4.2: data that
 * arrived before the handshake must not be taken as commands) and the
 * session state, then read the handshake. */
static void start_tls(detour__fake_session *s) {
  uncork(s); /* the 220 leaves in clear, before TLS is on */
  if (s->closing)
    return;
  buf_consume(&s->in, s->in.len);
  detour__fake_line_reader_init(&s->lines, s->srv->script->limits.max_line);
  reset_tx(s);
  s->authed = false;
  s->need_ehlo = true;
  s->tls = detour__fake_tls_new(s->srv->tls_ctx, mem_of(s));
  if (!s->tls) {
    sess_nomem(s);
    return;
  }
  s->state = TLS_HANDSHAKE;
}

static void handle_command(detour__fake_session *s, char *line, size_t len) {
  detour_fake_stage st = verb_stage(line, len);
  bool params = false;
  char redacted[96];
  s->info.commands++;
  s->srv->stats.commands++;
  /* STARTTLS and AUTH are commands only where the script offers them. */
  if (st == DETOUR_FAKE_STARTTLS && !offers_starttls(s))
    st = DETOUR_FAKE_UNKNOWN;
  if (st == DETOUR_FAKE_AUTH && !s->srv->script->auth.mechanisms)
    st = DETOUR_FAKE_UNKNOWN;
  if (st == DETOUR_FAKE_AUTH || (len >= 4 && strncasecmp(line, "AUTH", 4) == 0))
    emit(s, DETOUR_FAKE_EV_COMMAND, st, redacted,
         redact_auth(line, len, redacted, sizeof redacted));
  else
    emit(s, DETOUR_FAKE_EV_COMMAND, st, line, len);
  if (st == DETOUR_FAKE_AUTH) {
    detour__fake_free(mem_of(s), s->arg);
    s->arg = NULL;
    s->arg_bad = false;
    auth_command(s, line, len);
    return;
  }
  if (st == DETOUR_FAKE_MAIL)
    parse_path(s, line, "FROM:", &params);
  else if (st == DETOUR_FAKE_RCPT)
    parse_path(s, line, "TO:", &params);
  else {
    detour__fake_free(mem_of(s), s->arg);
    s->arg = NULL;
    s->arg_bad = false;
  }
  if (s->closing)
    return;
  if (st == DETOUR_FAKE_RCPT && s->in_tx && s->nrcpts >= limits(s)->max_rcpts) {
    too_many_rcpts(s);
    return;
  }
  run_stage(s, st, params);
}

/* An overlong command line: recorded (its first bytes), then answered
 * 500 5.5.6 as one command; cmdread.c discards its tail. */
static void line_too_long(detour__fake_session *s, const char *p, size_t len) {
  static const detour_fake_rule too_long = {.stage = DETOUR_FAKE_UNKNOWN,
                                            .code = 500,
                                            .enhanced = "5.5.6",
                                            .text = "Line too long"};
  char redacted[96];
  s->info.commands++;
  s->srv->stats.commands++;
  if (len >= 4 && strncasecmp(p, "AUTH", 4) == 0) /* a secret, however long */
    emit(s, DETOUR_FAKE_EV_COMMAND, DETOUR_FAKE_UNKNOWN, redacted,
         redact_auth(p, len, redacted, sizeof redacted));
  else
    emit(s, DETOUR_FAKE_EV_COMMAND, DETOUR_FAKE_UNKNOWN, p, len);
  /* Every time (not once): each is a reply the client got. */
  s->limits_said &= ~(unsigned)SAID_LINE;
  note_limit(s, SAID_LINE, DETOUR_FAKE_UNKNOWN,
             "max_line: command line over %zu bytes, answered 500 5.5.6, "
             "the rest up to its LF discarded",
             s->lines.max);
  if (s->closing)
    return;
  s->nth[DETOUR_FAKE_UNKNOWN]++;
  step_begin(s, DETOUR_FAKE_UNKNOWN, &too_long);
}

/* One command line from s->in, if a whole one is there; true when bytes
 * were consumed. */
static bool take_command(detour__fake_session *s) {
  detour__fake_line l;
  detour__fake_line_next(&s->lines, s->in.p, s->in.len, &l);
  if (l.kind == FAKE_LINE_NONE) {
    buf_consume(&s->in, l.used);
    return l.used > 0;
  }
  /* A copy, as s->in may move while the command runs; on the stack for
   * the usual short line (no allocation per command). */
  char small[512];
  char *line = small;
  if (l.len < sizeof small) {
    memcpy(small, s->in.p, l.len);
    small[l.len] = '\0';
  } else {
    line = detour__fake_memdup(mem_of(s), s->in.p, l.len);
  }
  buf_consume(&s->in, l.used);
  if (!line) {
    sess_nomem(s);
    return false;
  }
  touch_idle(s);
  if (s->state == AUTH_CONT) /* whatever its length: it is a secret */
    auth_line(s, line, l.len);
  else if (l.kind == FAKE_LINE_TOO_LONG)
    line_too_long(s, line, l.len);
  else
    handle_command(s, line, l.len);
  explicit_bzero(line, l.len); /* an AUTH line holds a password */
  if (line != small)
    detour__fake_free(mem_of(s), line);
  return true;
}

/* ------------------------------------------------------------------------ */
/* Reading the message                                                       */

/* Keep body bytes (memory, or the spool when streaming) up to max_body;
 * the rest is read and dropped, the message marked truncated. */
static void body_add(detour__fake_session *s, const char *p, size_t n) {
  size_t max = limits(s)->max_body;
  if (s->body_len + n > max) {
    if (!s->body_trunc)
      note_limit(s, SAID_BODY, DETOUR_FAKE_BODY,
                 "max_body: body over %zu bytes, the rest dropped "
                 "(message marked truncated)",
                 max);
    s->body_trunc = true;
    n = s->body_len < max ? max - s->body_len : 0;
  }
  if (n == 0 || s->closing)
    return;
  if (s->srv->streaming && !s->spool &&
      s->body_len + n > FAKE_STREAM_INLINE_BODY && !spool_memory(s))
    return;
  if (s->spool) {
    if (fwrite(p, 1, n, s->spool) == n)
      s->body_len += n;
    else
      s->body_trunc = true;
    return;
  }
  if (!buf_add(&s->body, p, n)) {
    sess_nomem(s);
    return;
  }
  s->body_len += n;
}

/* The body fault (after_bytes reached): its delay, then act or reply. */
static void body_fault(detour__fake_session *s) {
  s->body_fired = true;
  s->nth[DETOUR_FAKE_BODY]++;
  step_begin(s, DETOUR_FAKE_BODY, s->body_rule);
}

/* A client that ends its message with a bare LF around the dot (the SMTP
 * smuggling pattern): not an end of data here, and a finding once per
 * message. */
static void bare_lf_dot_finding(detour__fake_session *s) {
  static const char what[] =
      "bare LF dot: a '.' line next to a bare LF in DATA (not taken as "
      "the end of the message)";
  if (s->body_finding)
    return;
  s->body_finding = true;
  emit(s, DETOUR_FAKE_EV_FINDING, DETOUR_FAKE_BODY, what, sizeof what - 1);
}

/* Consume body bytes; returns true when it made progress. cmdread.c
 * unstuffs them and finds the end (CRLF.CRLF only). A pending after_bytes
 * fault limits how far we read. */
static bool take_body(detour__fake_session *s) {
  static _Thread_local char out[BODY_CHUNK + 2];
  const detour_fake_rule *r = s->body_fired ? NULL : s->body_rule;
  size_t limit = s->in.len;
  bool cut = false;
  if (r && s->body_raw + limit >= r->after_bytes) {
    limit = (size_t)(r->after_bytes - s->body_raw);
    cut = true;
  }
  size_t used = 0;
  while (used < limit) {
    size_t n = limit - used < BODY_CHUNK ? limit - used : BODY_CHUNK;
    detour__fake_body_chunk c;
    detour__fake_body_next(&s->bodyr, s->in.p + used, n, out, &c);
    used += c.used;
    s->body_raw += c.used;
    if (c.end || memchr(out, '\n', c.out_len))
      touch_idle(s); /* a whole line of the message */
    body_add(s, out, c.out_len);
    if (c.bare_lf_dot)
      bare_lf_dot_finding(s);
    if (s->closing)
      return false;
    if (c.end) {
      buf_consume(&s->in, used);
      run_stage(s, DETOUR_FAKE_EOD, false);
      return true;
    }
  }
  buf_consume(&s->in, used);
  if (cut) {
    body_add(s, out, detour__fake_body_flush(&s->bodyr, out));
    body_fault(s);
    return true;
  }
  return used > 0;
}

/* Reply bytes not on the wire yet: libuv's queue and those held back. */
static size_t queued(detour__fake_session *s) {
  return uv_stream_get_write_queue_size((uv_stream_t *)&s->tcp) + s->corked.len;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b);
static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b);

/* Read only while there is room: at most max_input bytes buffered and
 * max_output reply bytes queued. A client that does not read its replies,
 * or floods us while a reply is delayed, meets TCP's own back-pressure. */
static void flow(detour__fake_session *s) {
  const detour_fake_limits *l = limits(s);
  if (s->closing)
    return;
  bool in_full = s->in.len >= l->max_input,
       out_full = queued(s) >= l->max_output;
  if ((in_full || out_full) && !s->paused) {
    uv_read_stop((uv_stream_t *)&s->tcp);
    s->paused = true;
    s->srv->stats.paused++;
    if (in_full)
      note_limit(s, SAID_INPUT, s->stage,
                 "max_input: %zu bytes buffered while busy, reading paused",
                 l->max_input);
    else
      note_limit(s, SAID_OUTPUT, s->stage,
                 "max_output: %zu reply bytes queued to a client that does "
                 "not read, reading paused",
                 l->max_output);
  } else if (!in_full && !out_full && s->paused) {
    s->paused = false;
    uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read);
  }
}

/* Handle buffered input while nothing else is in progress. Each turn
 * consumes bytes, so the loop ends. Stops while the client's replies pile
 * up (on_write comes back when they drain). */
static void pump(detour__fake_session *s) {
  if (s->pumping)
    return; /* the outer call's loop goes on */
  s->pumping = true;
  while (!s->busy && !s->closing && queued(s) < limits(s)->max_output) {
    bool progress;
    if (s->state == COMMAND || s->state == AUTH_CONT)
      progress = s->in.len > 0 && take_command(s);
    else if (s->state == BODY)
      progress = (s->in.len > 0 || (s->body_rule && !s->body_fired &&
                                    s->body_rule->after_bytes == 0)) &&
                 take_body(s);
    else
      progress = false;
    if (!progress)
      break;
  }
  s->pumping = false;
  uncork(s); /* no whole command left: the replies of this pass go out */
  flow(s);
}

/* ------------------------------------------------------------------------ */
/* Accepting and reading                                                     */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b) {
  static _Thread_local char scratch[64 * 1024];
  /* One scratch buffer per thread (each runs its own loop) serves every read;
   * bytes are copied into the session before the next read can happen. */
  *b = uv_buf_init(scratch, sizeof scratch);
}

/* Plaintext into the command buffer; false when the session closed. */
static bool take_input(detour__fake_session *s, const char *p, size_t n) {
  if (!buf_add(&s->in, p, n)) {
    sess_nomem(s);
    return false;
  }
  return true;
}

/* The tls_drop fault: half of the server's first flight, then FIN. */
static void tls_drop(detour__fake_session *s) {
  size_t n = detour__fake_tls_pending(s->tls);
  char *tmp = detour__fake_malloc(mem_of(s), n ? n : 1);
  if (tmp) {
    n = detour__fake_tls_pull(s->tls, tmp, n);
    wire_write(s, tmp, n / 2);
    detour__fake_free(mem_of(s), tmp);
  }
  emit(s, DETOUR_FAKE_EV_TLS, s->stage, "dropped mid-handshake", 21);
  sess_close(s, DETOUR_FAKE_BY_SERVER);
}

/* The handshake is over: record it, then greet (implicit TLS) or wait for
 * the new EHLO (STARTTLS). */
static void tls_ready(detour__fake_session *s) {
  char desc[512];
  detour__fake_tls_describe(s->tls, s->srv->tls_cert, desc, sizeof desc);
  snprintf(s->info.tls_version, sizeof s->info.tls_version, "%s",
           detour__fake_tls_version(s->tls));
  snprintf(s->info.tls_cipher, sizeof s->info.tls_cipher, "%s",
           detour__fake_tls_cipher(s->tls));
  sync_record(s);
  emit(s, DETOUR_FAKE_EV_TLS, s->stage, desc, strlen(desc));
  if (s->tls_before_greeting) {
    s->tls_before_greeting = false;
    s->state = WAIT_GREETING;
    run_stage(s, DETOUR_FAKE_CONNECT, false);
  } else {
    s->state = COMMAND;
  }
}

/* Ciphertext in: drive the handshake, then decrypt into the command
 * buffer. Returns false when the session closed. */
static bool tls_input(detour__fake_session *s, const char *p, size_t n) {
  static _Thread_local char plain[16 * 1024];
  if (!detour__fake_tls_push(s->tls, p, n)) {
    sess_close(s, DETOUR_FAKE_BY_SERVER_RESET);
    return false;
  }
  if (s->state == TLS_HANDSHAKE) {
    int rc = detour__fake_tls_handshake(s->tls);
    if (s->srv->script->tls.handshake == DETOUR_FAKE_TLS_DROP) {
      if (rc == 0 && detour__fake_tls_pending(s->tls) == 0)
        return true; /* the ClientHello is not complete yet */
      tls_drop(s);
      return false;
    }
    tls_flush(s);
    if (rc < 0) {
      /* What failed, and what we had offered (the certificate the
       * client rejected, the SNI it asked for). */
      char why[768], desc[512];
      bool alert = s->srv->script->tls.handshake == DETOUR_FAKE_TLS_ALERT;
      detour__fake_tls_describe(s->tls, s->srv->tls_cert, desc, sizeof desc);
      int k = snprintf(why, sizeof why, "handshake failed: %s; %s",
                       alert ? "alert handshake_failure sent (tls_alert)"
                             : detour__fake_tls_error(s->tls),
                       desc);
      emit(s, DETOUR_FAKE_EV_TLS, s->stage, why,
           k < 0                    ? 0
           : (size_t)k < sizeof why ? (size_t)k
                                    : sizeof why - 1);
      sess_close(s, DETOUR_FAKE_BY_SERVER);
      return false;
    }
    if (rc == 0 || s->closing)
      return !s->closing;
    tls_ready(s);
  }
  for (;;) {
    long k = detour__fake_tls_read(s->tls, plain, sizeof plain);
    tls_flush(s); /* a read may answer (key update, ...) */
    if (s->closing)
      return false;
    if (k == 0)
      return true;
    if (k < 0) {
      sess_close(s,
                 k == -1 ? DETOUR_FAKE_BY_CLIENT : DETOUR_FAKE_BY_CLIENT_RESET);
      return false;
    }
    if (s->state != STALLED && !take_input(s, plain, (size_t)k))
      return false;
  }
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
  detour__fake_session *s = st->data;
  if (n == 0 || s->closing)
    return;
  if (n < 0) {
    sess_close(s, n == UV_EOF ? DETOUR_FAKE_BY_CLIENT
                              : DETOUR_FAKE_BY_CLIENT_RESET);
    return;
  }
  s->info.bytes_in += (uint64_t)n;
  s->srv->stats.bytes_in += (uint64_t)n;
  /* No touch_idle here: bytes trickling in (slowloris) are not progress;
   * a whole command line or message line is (take_command, take_body). */
  if (s->state == STALLED)
    return; /* read and drop: we stopped answering, not listening */
  /* Bounded by flow(): past max_input reading pauses, so at most one
   * read more than the limit is ever buffered (TLS: one read's plaintext). */
  if (s->tls) {
    if (!tls_input(s, b->base, (size_t)n))
      return;
  } else if (!buf_add(&s->in, b->base, (size_t)n)) {
    sess_nomem(s);
    return;
  }
  pump(s);
}

/* Over max_sessions: 421 4.7.0 whatever the script says, then close. */
static void too_many_sessions(detour__fake_session *s) {
  static const detour_fake_rule too_many = {
      .stage = DETOUR_FAKE_GREETING,
      .code = 421,
      .enhanced = "4.7.0",
      .text = "Too many sessions, try again later"};
  note_limit(s, SAID_SESSIONS, DETOUR_FAKE_GREETING,
             "max_sessions: more than %zu sessions open, answered 421 4.7.0",
             limits(s)->max_sessions);
  if (s->closing)
    return;
  step_begin(s, DETOUR_FAKE_GREETING, &too_many);
}

static void begin(detour__fake_session *s) {
  struct sockaddr_storage peer;
  int len = sizeof peer;
  char peer_ip[64] = "";
  detour_fake_event ev;
  s->info.id = s->id;
  s->info.accept_time = now(s);
  s->info.accept_mono = uv_hrtime();
  s->info.close_time = DETOUR_NO_DEADLINE;
  if (uv_tcp_getpeername(&s->tcp, (struct sockaddr *)&peer, &len) == 0)
    detour__fake_format_addr((struct sockaddr *)&peer, s->info.peer,
                             sizeof s->info.peer, peer_ip, sizeof peer_ip);
  s->rec_generation = s->srv->generation;
  s->rec_index = detour__fake_record_conn(&s->srv->rec, &s->info);
  if (s->rec_index == FAKE_REC_NOMEM) {
    sess_nomem(s);
    return;
  }
  memset(&ev, 0, sizeof ev);
  ev.type = DETOUR_FAKE_EV_ACCEPT;
  ev.conn = s->id;
  ev.data = s->info.peer;
  ev.len = strlen(s->info.peer);
  if (!detour__fake_emit(s->srv, &ev)) {
    sess_nomem(s);
    return;
  }
  if (s->srv->only_peer[0] && strcmp(peer_ip, s->srv->only_peer) != 0) {
    /* not the device under test: recorded, then reset unanswered */
    emit(s, DETOUR_FAKE_EV_ACTION, DETOUR_FAKE_CONNECT, "not the peer", 12);
    sess_close(s, DETOUR_FAKE_BY_SERVER_RESET);
    return;
  }
  uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read);
  touch_idle(s);
  if (s->srv->stats.active > limits(s)->max_sessions) {
    too_many_sessions(s);
  } else if (s->srv->script->tls.mode == DETOUR_FAKE_TLS_IMPLICIT) {
    /* RFC 8314: TLS from the first byte; the greeting comes after it. */
    s->tls = detour__fake_tls_new(s->srv->tls_ctx, mem_of(s));
    if (!s->tls) {
      sess_nomem(s);
      return;
    }
    s->tls_before_greeting = true;
    s->state = TLS_HANDSHAKE;
  } else {
    run_stage(s, DETOUR_FAKE_CONNECT, false);
  }
}

static void on_reject_closed(uv_handle_t *h) {
  detour_fake_server *srv = h->data;
  srv->reject_busy = false;
  if (srv->reject_pending && !srv->stopped) {
    srv->reject_pending = false;
    detour__fake_session_accept(srv); /* libuv waits for that one to be taken */
  }
  detour__fake_server_maybe_free(srv);
}

/* No memory for a session: take the connection on the server's spare
 * handle and reset it, so the listener keeps accepting (libuv stops
 * polling it while a connection waits to be accepted). */
static void reject_nomem(detour_fake_server *srv) {
  static const char what[] =
      "nomem: out of memory for a new session, connection reset";
  srv->stats.nomem++;
  if (srv->reject_busy) {
    srv->reject_pending = true; /* accepted when the spare is free */
    return;
  }
  srv->reject_busy = true;
  uv_tcp_init(srv->loop, &srv->reject);
  srv->reject.data = srv;
  if (uv_accept((uv_stream_t *)&srv->listener, (uv_stream_t *)&srv->reject) !=
          0 ||
      uv_tcp_close_reset(&srv->reject, on_reject_closed) != 0)
    uv_close((uv_handle_t *)&srv->reject, on_reject_closed);
  detour_fake_event ev;
  memset(&ev, 0, sizeof ev);
  ev.type = DETOUR_FAKE_EV_LIMIT;
  ev.data = what;
  ev.len = sizeof what - 1;
  detour__fake_emit(srv, &ev); /* best effort */
}

void detour__fake_session_accept(detour_fake_server *srv) {
  detour__fake_session *s = detour__fake_calloc(&srv->mem, 1, sizeof *s);
  if (!s) {
    reject_nomem(srv);
    return;
  }
  s->srv = srv;
  s->rec_index = -1;
  s->tcp.data = s;
  s->in.mem = s->out.mem = s->corked.mem = s->body.mem = &srv->mem;
  detour__fake_line_reader_init(&s->lines, srv->script->limits.max_line);
  uv_tcp_init(srv->loop, &s->tcp);
  if (uv_accept((uv_stream_t *)&srv->listener, (uv_stream_t *)&s->tcp) != 0) {
    srv->stats.accept_errors++;
    s->closing = true;
    /* not linked yet: link so on_closed can unlink uniformly */
  }
  s->next = srv->sessions;
  if (s->next)
    s->next->prev = s;
  srv->sessions = s;
  srv->stats.active++;
  if (s->closing) {
    s->info.closed_by = DETOUR_FAKE_BY_SERVER_RESET;
    uv_close((uv_handle_t *)&s->tcp, on_closed);
    return;
  }
  srv->stats.accepted++;
  s->id = ++srv->next_conn;
  /* Exact write boundaries matter here (partial_lines, drips). On Linux
   * the accepted socket has TCP_NODELAY from the listener (server.c). */
#ifndef __linux__
  uv_tcp_nodelay(&s->tcp, 1);
#endif
  s->timer = detour_timer_new(srv->clock, on_timer, s);
  if (srv->script->idle_timeout > 0)
    s->idle = detour_timer_new(srv->clock, on_idle, s);
  if (!s->timer || (srv->script->idle_timeout > 0 && !s->idle)) {
    sess_nomem(s);
    return;
  }
  begin(s);
}

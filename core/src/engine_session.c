/*
 * engine_session.c - one SMTP dialogue of the engine (SPEC R2, R3, R11).
 *
 * From the greeting to the reply to the final ".": EHLO (HELO when EHLO is
 * refused with 5xx), STARTTLS and EHLO again or implicit TLS from the first
 * byte, AUTH PLAIN or LOGIN (SPEC R13), MAIL with SIZE / BODY=8BITMIME
 * when offered, one RCPT
 * per pending recipient, DATA and the dot-stuffed body. Optional PIPELINING
 * sends MAIL, every RCPT and DATA as one group (RFC 2920). Replies are
 * matched in order against a queue of expected replies; a reply nobody
 * asked for is a protocol violation.
 *
 * The dialogue is a state machine with one state per thing it waits for.
 * Each state is a row of one table: its name, the timeout that guards it
 * (R11) and the stage a failure in it is classified at. The session moves
 * only through enter_state(), which checks the move against the table of
 * allowed moves, records where it came from and arms the state's deadline
 * (OpenSMTPD's mta_enter_state, Postfix's xfer_timeouts). A new state is a
 * new row, not a new special case.
 *
 * Transport security (R13). The engine never touches TLS itself: it asks
 * the driver for it with a TLS_START action (server name, CA file) and
 * waits in SESSION_TLS for "TLS up" or "TLS failed". When TLS is
 * configured it is required unless the server entry says tls_optional:
 * no STARTTLS in the EHLO reply then ends the session before AUTH or
 * MAIL, and AUTH is never sent in clear to a server with TLS configured.
 * Whatever the server sent after its 220 to STARTTLS and before the
 * handshake is never read as a reply (CVE-2011-0411): such bytes mean a
 * broken server or someone in the path, so the session ends as a TLS
 * failure; after the handshake the reply reader starts empty, earlier
 * capabilities are forgotten and EHLO is sent again (RFC 3207 4.2).
 *
 * Every failure becomes a detour_failure, the classification table gives
 * its class, and the class is recorded per recipient: a RCPT failure
 * concerns one recipient (R10), any other failure every recipient of the
 * session. The session decides nothing beyond its own dialogue: each entry
 * point returns a session_outcome (ended, breaker trip, worked, warning)
 * and engine.c decides what comes next.
 */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine_internal.h"

/* ------------------------------------------------------------------------ */
/* States                                                                    */

#define NO_TIMEOUT SIZE_MAX
#define TIMEOUT(field) offsetof(detour_timeouts, field)
#define BIT(st) (1u << SESSION_##st)

/* Per state: its name, the detour_timeouts field that guards it (R11), the
 * stage a timeout or a dropped connection in it is classified at, and the
 * states it may move to. */
typedef struct {
  const char *name;
  size_t timeout;
  detour_stage stage;
  unsigned next;
} state_row;

static const state_row states[] = {
    [SESSION_NONE] = {"none", NO_TIMEOUT, DETOUR_STAGE_CONNECT,
                      BIT(GREETING) | BIT(TLS)},
    [SESSION_GREETING] = {"greeting", TIMEOUT(greeting), DETOUR_STAGE_GREETING,
                          BIT(EHLO) | BIT(DONE)},
    [SESSION_EHLO] = {"ehlo", TIMEOUT(ehlo), DETOUR_STAGE_EHLO,
                      BIT(HELO) | BIT(STARTTLS) | BIT(AUTH) | BIT(MAIL) |
                          BIT(DONE)},
    [SESSION_HELO] = {"helo", TIMEOUT(ehlo), DETOUR_STAGE_HELO,
                      BIT(AUTH) | BIT(MAIL) | BIT(DONE)},
    [SESSION_STARTTLS] = {"starttls", TIMEOUT(ehlo), DETOUR_STAGE_STARTTLS,
                          BIT(TLS) | BIT(DONE)},
    [SESSION_TLS] = {"tls", TIMEOUT(tls), DETOUR_STAGE_TLS,
                     BIT(GREETING) | BIT(EHLO_TLS) | BIT(DONE)},
    [SESSION_EHLO_TLS] = {"ehlo_tls", TIMEOUT(ehlo), DETOUR_STAGE_EHLO,
                          BIT(AUTH) | BIT(MAIL) | BIT(DONE)},
    [SESSION_AUTH] = {"auth", TIMEOUT(auth), DETOUR_STAGE_AUTH,
                      BIT(AUTH) | BIT(MAIL) | BIT(DONE)},
    [SESSION_MAIL] = {"mail", TIMEOUT(mail), DETOUR_STAGE_MAIL,
                      BIT(RCPT) | BIT(DATA) | BIT(DONE)},
    [SESSION_RCPT] = {"rcpt", TIMEOUT(rcpt), DETOUR_STAGE_RCPT,
                      BIT(RCPT) | BIT(DATA) | BIT(DONE)},
    [SESSION_DATA] = {"data", TIMEOUT(data_start), DETOUR_STAGE_DATA,
                      BIT(BODY) | BIT(DONE)},
    [SESSION_BODY] = {"body", TIMEOUT(data_block), DETOUR_STAGE_END_OF_DATA,
                      BIT(DOT) | BIT(DONE)},
    [SESSION_DOT] = {"dot", TIMEOUT(final_dot), DETOUR_STAGE_END_OF_DATA,
                     BIT(DONE)},
    [SESSION_DONE] = {"done", NO_TIMEOUT, DETOUR_STAGE_QUIT, 0},
};
_Static_assert(sizeof states / sizeof *states == SESSION_STATE_COUNT,
               "one row per session_state");
_Static_assert(SESSION_STATE_COUNT <= 32, "moves are bits of an unsigned");

const char *detour__session_state_name(session_state st) {
  return (unsigned)st < SESSION_STATE_COUNT ? states[st].name : "unknown";
}

static detour_ms state_timeout(const detour_engine *e, session_state st) {
  const detour_timeouts *t = &e->cfg.timeouts;
  detour_ms ms;
  memcpy(&ms, (const char *)t + states[st].timeout, sizeof ms);
  return ms;
}

/* (Re)start the current state's clock: the deadline follows the oldest
 * unanswered command, so every reply restarts it. */
static void arm_deadline(detour_engine *e, detour_ms now) {
  engine_session *s = &e->session;
  if (s->conn && states[s->state].timeout != NO_TIMEOUT)
    s->conn->deadline = now + state_timeout(e, s->state);
}

static void enter_state(detour_engine *e, session_state to, detour_ms now) {
  engine_session *s = &e->session;
  assert((states[s->state].next & (1u << to)) && "move not in the table");
  s->from = s->state;
  s->state = to;
  arm_deadline(e, now);
}

/* ------------------------------------------------------------------------ */
/* Expected replies                                                          */

static void expect_push(engine_session *s, detour_stage stage, size_t rcpt) {
  size_t at = (s->expect_head + s->expect_count) % ENGINE_MAX_EXPECT;
  s->expect[at] = (engine_expect){.stage = stage, .rcpt = rcpt};
  s->expect_count++;
}

static engine_expect expect_pop(engine_session *s) {
  engine_expect x = s->expect[s->expect_head];
  s->expect_head = (s->expect_head + 1) % ENGINE_MAX_EXPECT;
  s->expect_count--;
  return x;
}

static const engine_expect *expect_head(const engine_session *s) {
  return s->expect_count ? &s->expect[s->expect_head] : NULL;
}

static void send_text(detour_engine *e, const char *text) {
  e->session.sends_outstanding++;
  detour__engine_send(e, e->session.conn->id, text, strlen(text));
}

static void send_command(detour_engine *e, detour_stage st, size_t rcpt,
                         const char *line) {
  send_text(e, line);
  expect_push(&e->session, st, rcpt);
}

/* ------------------------------------------------------------------------ */
/* Results and failures                                                      */

/* "SMTP 421 4.3.2 text" from a reply (first line of text, bounded). */
static void reply_result(const detour_reply *r, char *buf, size_t len) {
  int tlen = (int)strcspn(r->text, "\n");
  if (tlen > 160)
    tlen = 160;
  if (r->enhanced[0])
    snprintf(buf, len, "SMTP %d %s %.*s", r->code, r->enhanced, tlen, r->text);
  else
    snprintf(buf, len, "SMTP %d %.*s", r->code, tlen, r->text);
  size_t n = strlen(buf);
  while (n && buf[n - 1] == ' ')
    buf[--n] = '\0';
}

static const char *condition_result(detour_condition cond) {
  switch (cond) {
  case DETOUR_COND_TIMEOUT:
    return "SMTP timeout";
  case DETOUR_COND_CLOSED:
    return "SMTP connection closed";
  case DETOUR_COND_MALFORMED:
    return "SMTP malformed reply";
  case DETOUR_COND_TLS:
    return "SMTP TLS error";
  case DETOUR_COND_NO_STARTTLS:
    return "SMTP STARTTLS not offered";
  case DETOUR_COND_NO_AUTH:
    return "SMTP AUTH not offered";
  default:
    return "SMTP error";
  }
}

/* What went wrong, described once for the log and the classifier. */
typedef struct {
  detour_failure f;
  char result[256];
  char detail[256];
  const char *reason; /* for the configuration warning; NULL: by code */
} failure_note;

static void base64(const unsigned char *in, size_t n, char *out);

/* Replace every copy of needle in buf with "[secret]" (in place). */
static void redact_one(char *buf, size_t cap, const char *needle) {
  size_t nl = strlen(needle);
  const char *mask = "[secret]";
  char *at;
  while (nl > 0 && (at = strstr(buf, needle)) != NULL) {
    size_t tail = strlen(at + nl);
    size_t ml = strlen(mask);
    if ((size_t)(at - buf) + ml + tail + 1 > cap)
      tail = cap - (size_t)(at - buf) - ml - 1;
    memmove(at + ml, at + nl, tail);
    memcpy(at, mask, ml);
    at[ml + tail] = '\0';
  }
}

/* R13: the secret appears in no log. A server may echo our AUTH line in
 * its reply text (some do, in "500 unrecognised command: ..."), and that
 * text goes into log rows: take out the password and the base64 forms
 * we sent. */
static void redact(const detour_engine *e, char *buf, size_t cap) {
  const detour_server *srv = &e->cfg.servers[e->session.server];
  if (!srv->auth_password[0])
    return;
  size_t u = strlen(srv->auth_user), p = strlen(srv->auth_password);
  unsigned char blob[sizeof srv->auth_user + sizeof srv->auth_password + 2];
  char b64[sizeof blob * 4 / 3 + 8];
  redact_one(buf, cap, srv->auth_password);
  base64((const unsigned char *)srv->auth_password, p, b64);
  redact_one(buf, cap, b64);
  blob[0] = 0;
  memcpy(blob + 1, srv->auth_user, u);
  blob[1 + u] = 0;
  memcpy(blob + 2 + u, srv->auth_password, p);
  base64(blob, 2 + u + p, b64);
  redact_one(buf, cap, b64);
  volatile unsigned char *v = blob; /* no copy of the secret left */
  for (size_t i = 0; i < sizeof blob; i++)
    v[i] = 0;
}

static void note_reply(const detour_engine *e, failure_note *n, detour_stage st,
                       const detour_reply *r) {
  memset(n, 0, sizeof *n);
  n->f.stage = st;
  n->f.cond = DETOUR_COND_REPLY;
  n->f.code = r->code;
  memcpy(n->f.enhanced, r->enhanced, sizeof n->f.enhanced);
  n->f.text = r->text;
  reply_result(r, n->result, sizeof n->result);
  redact(e, n->result, sizeof n->result);
  snprintf(n->detail, sizeof n->detail, "%s: %s", detour_stage_name(st),
           n->result + 5);
}

static void note_condition(failure_note *n, detour_stage st,
                           detour_condition cond, const char *why) {
  memset(n, 0, sizeof *n);
  n->f.stage = st;
  n->f.cond = cond;
  snprintf(n->result, sizeof n->result, "%s", condition_result(cond));
  snprintf(n->detail, sizeof n->detail, "%s: %s%s%s", detour_stage_name(st),
           detour_condition_name(cond), why && *why ? ": " : "",
           why ? why : "");
}

/* The reason a configuration warning gives for a refusal, by reply code
 * (RFC 4954 section 6); anything else is "refused". */
static const struct {
  int code;
  const char *reason;
} refusal_reasons[] = {
    {530, "authentication required"},
    {534, "authentication mechanism too weak"},
    {535, "authentication failed"},
    {538, "encryption required for the authentication mechanism"},
};

static const char *warn_reason(const failure_note *n) {
  const detour_failure *f = &n->f;
  if (n->reason)
    return n->reason;
  if (f->stage == DETOUR_STAGE_TLS && f->cond == DETOUR_COND_TIMEOUT)
    return "TLS handshake timed out";
  if (f->stage == DETOUR_STAGE_TLS && f->cond == DETOUR_COND_CLOSED)
    return "connection closed during the TLS handshake";
  if (f->cond == DETOUR_COND_NO_STARTTLS)
    return "STARTTLS not offered";
  if (f->cond == DETOUR_COND_NO_AUTH)
    return "no AUTH mechanism we speak (PLAIN, LOGIN) offered";
  if (f->cond != DETOUR_COND_REPLY)
    return detour_condition_name(f->cond);
  if (f->stage == DETOUR_STAGE_STARTTLS)
    return "STARTTLS refused";
  for (size_t i = 0; i < sizeof refusal_reasons / sizeof *refusal_reasons; i++)
    if (refusal_reasons[i].code == f->code)
      return refusal_reasons[i].reason;
  return "refused";
}

/* The class of a failure; a rule that asks for the configuration warning
 * puts it in the outcome (the first one of the session wins). */
static detour_class classify(detour_engine *e, const failure_note *n) {
  bool warn = false;
  detour_class cls = detour_classify_failure(
      e->cfg.classify ? e->cfg.classify : e->own_classify, &n->f, &warn);
  session_outcome *o = &e->session.out;
  if (warn && !o->warn) {
    o->warn = true;
    snprintf(o->warn_reason, sizeof o->warn_reason, "%s", warn_reason(n));
    snprintf(o->warn_detail, sizeof o->warn_detail, "%s", n->detail);
  }
  if (cls == DETOUR_CLASS_NONE) /* a failure is never "no failure" */
    cls = DETOUR_CLASS_TRANSIENT;
  return cls;
}

static bool takes_part(const engine_rcpt *r) {
  return r->state == RCPT_PENDING || r->state == RCPT_IN_TXN;
}

/* Record one recipient's failure in this session: a log row, and either
 * the final ABORT or its class for the decision that follows. */
static void rcpt_failed(detour_engine *e, detour_ms now, size_t i,
                        const failure_note *n, detour_class cls) {
  engine_session *s = &e->session;
  engine_rcpt *r = &e->active->rcpts[i];
  if (r->state == RCPT_IN_TXN)
    s->accepted--;
  r->state = RCPT_PENDING;
  r->row_this_session = true;
  r->last_class = cls;
  snprintf(r->detail, sizeof r->detail, "%s", n->detail);
  detour__engine_log(e, now, DETOUR_LOG_SMTP, r, s->server, s->address,
                     n->result, cls, n->detail);
  if (cls == DETOUR_CLASS_ABORT) {
    r->state = RCPT_ABORTED;
    detour__engine_rcpt_final(e, i, DETOUR_RCPT_ABORTED);
  }
  if (cls == DETOUR_CLASS_CONNECT || cls == DETOUR_CLASS_SWITCH)
    s->out.trip_breaker = true;
}

/* Leave the session: QUIT politely when the server is still talking to
 * us, otherwise just close. What comes next is engine.c's decision. */
static void session_end(detour_engine *e, detour_ms now, bool polite) {
  engine_session *s = &e->session;
  engine_conn *c = s->conn;
  enter_state(e, SESSION_DONE, now);
  s->conn = NULL;
  s->expect_count = 0;
  if (polite) {
    detour__engine_send(e, c->id, "QUIT\r\n", 6);
    c->role = CONN_QUITTING;
    c->deadline = now + e->cfg.timeouts.quit;
  } else {
    detour__engine_close_conn(e, c);
  }
  s->out.over = true;
}

/* A failure that concerns the whole session (not one RCPT). */
static void session_fail(detour_engine *e, detour_ms now, const failure_note *n,
                         bool polite) {
  detour_class cls = classify(e, n);
  engine_message *m = e->active;
  for (size_t i = 0; i < m->nrcpts; i++) {
    engine_rcpt *r = &m->rcpts[i];
    if (!takes_part(r))
      continue;
    /* After the final ".", only the recipients in this transaction are
     * concerned; the others already have their row for this session. */
    if (r->row_this_session && r->state != RCPT_IN_TXN)
      continue;
    rcpt_failed(e, now, i, n, cls);
  }
  session_end(e, now, polite);
}

/* A failure that is not a reply, at the stage of the current state. */
static void fail_condition(detour_engine *e, detour_ms now,
                           detour_condition cond, const char *why) {
  failure_note n;
  note_condition(&n, states[e->session.state].stage, cond, why);
  /* the connection is no longer trustworthy: close without QUIT */
  session_fail(e, now, &n, false);
}

/* We end a session the server runs fine (no STARTTLS, no AUTH we can
 * use): say QUIT. */
static void fail_policy(detour_engine *e, detour_ms now, detour_condition cond,
                        const char *why) {
  failure_note n;
  note_condition(&n, states[e->session.state].stage, cond, why);
  session_fail(e, now, &n, true);
}

static void fail_tls(detour_engine *e, detour_ms now, detour_tls_failure why,
                     const char *detail) {
  failure_note n;
  char text[200];
  snprintf(text, sizeof text, "%s%s%s", detour_tls_failure_message(why),
           detail && *detail ? ": " : "", detail ? detail : "");
  note_condition(&n, DETOUR_STAGE_TLS, DETOUR_COND_TLS, text);
  n.f.text = detour_tls_failure_name(why);
  n.reason = detour_tls_failure_message(why);
  session_fail(e, now, &n, false);
}

/* A failure reply. 421 means the server is closing the channel: no QUIT. */
static void fail_reply(detour_engine *e, detour_ms now, detour_stage st,
                       const detour_reply *r) {
  failure_note n;
  note_reply(e, &n, st, r);
  session_fail(e, now, &n, r->code != 421);
}

/* ------------------------------------------------------------------------ */
/* The dialogue: one short on_<state> per awaited reply                      */

static bool is_2xx(const detour_reply *r) { return r->code / 100 == 2; }

static void forget_capabilities(engine_session *s) {
  s->cap_size = s->cap_8bitmime = s->cap_pipelining = false;
  s->cap_starttls = s->cap_auth_plain = s->cap_auth_login = false;
}

static bool word_is(const char *p, size_t n, const char *word) {
  return n == strlen(word) && strncasecmp(p, word, n) == 0;
}

/* "AUTH PLAIN LOGIN" (and the old "AUTH=PLAIN LOGIN"): the mechanisms
 * after the keyword, up to the end of the line. */
static void parse_auth_mechanisms(engine_session *s, const char *p) {
  while (*p && *p != '\n') {
    p += strspn(p, " =");
    size_t n = strcspn(p, " \n");
    if (word_is(p, n, "PLAIN"))
      s->cap_auth_plain = true;
    else if (word_is(p, n, "LOGIN"))
      s->cap_auth_login = true;
    p += n;
  }
}

static void parse_capabilities(engine_session *s, const detour_reply *r) {
  const char *p = strchr(r->text, '\n'); /* first line: the domain */
  forget_capabilities(s);
  while (p) {
    p++;
    size_t n = strcspn(p, " =\n");
    if (word_is(p, n, "SIZE"))
      s->cap_size = true;
    else if (word_is(p, n, "8BITMIME"))
      s->cap_8bitmime = true;
    else if (word_is(p, n, "PIPELINING"))
      s->cap_pipelining = true;
    else if (word_is(p, n, "STARTTLS"))
      s->cap_starttls = true;
    else if (word_is(p, n, "AUTH"))
      parse_auth_mechanisms(s, p + n);
    p = strchr(p, '\n');
  }
}

static void send_rcpt(detour_engine *e, size_t i) {
  char line[1100];
  snprintf(line, sizeof line, "RCPT TO:<%s>\r\n", e->active->rcpts[i].addr);
  send_command(e, DETOUR_STAGE_RCPT, i, line);
}

/* The next pending recipient at or after `from`, or nrcpts. */
static size_t next_pending(const engine_message *m, size_t from) {
  while (from < m->nrcpts && m->rcpts[from].state != RCPT_PENDING)
    from++;
  return from;
}

static void start_transaction(detour_engine *e, detour_ms now) {
  engine_session *s = &e->session;
  engine_message *m = e->active;
  char line[1200];
  int n = snprintf(line, sizeof line, "MAIL FROM:<%s>", m->from);
  if (s->cap_size)
    n += snprintf(line + n, sizeof line - (size_t)n, " SIZE=%llu",
                  /* RFC 1870: without the final "." */
                  (unsigned long long)(m->wire_len - 3));
  if (s->cap_8bitmime && m->eight_bit)
    n += snprintf(line + n, sizeof line - (size_t)n, " BODY=8BITMIME");
  snprintf(line + n, sizeof line - (size_t)n, "\r\n");
  s->accepted = 0;
  s->pipelined = s->cap_pipelining && e->cfg.pipelining;
  send_command(e, DETOUR_STAGE_MAIL, 0, line);
  if (s->pipelined) {
    for (size_t i = next_pending(m, 0); i < m->nrcpts;
         i = next_pending(m, i + 1))
      send_rcpt(e, i);
    send_command(e, DETOUR_STAGE_DATA, 0, "DATA\r\n");
  }
  enter_state(e, SESSION_MAIL, now);
}

static void send_ehlo(detour_engine *e, const char *verb, detour_stage st) {
  char line[300];
  snprintf(line, sizeof line, "%s %s\r\n", verb, e->cfg.helo_name);
  send_command(e, st, 0, line);
}

/* ------------------------------------------------------------------------ */
/* TLS and AUTH (R13)                                                        */

static const detour_server *server_of(const detour_engine *e) {
  return &e->cfg.servers[e->session.server];
}

static bool tls_wanted(const detour_engine *e) {
  return server_of(e)->tls != DETOUR_TLS_MODE_NONE;
}

/* Overwrite a secret; the volatile keeps the compiler from dropping it. */
static void wipe(void *p, size_t n) {
  volatile unsigned char *v = p;
  while (n--)
    *v++ = 0;
}

/* RFC 4648 base64 of n bytes into out (4 * ceil(n / 3) + 1 bytes). */
static void base64(const unsigned char *in, size_t n, char *out) {
  static const char abc[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t o = 0;
  for (size_t i = 0; i < n; i += 3) {
    unsigned v = (unsigned)in[i] << 16;
    if (i + 1 < n)
      v |= (unsigned)in[i + 1] << 8;
    if (i + 2 < n)
      v |= in[i + 2];
    out[o++] = abc[(v >> 18) & 63];
    out[o++] = abc[(v >> 12) & 63];
    out[o++] = i + 1 < n ? abc[(v >> 6) & 63] : '=';
    out[o++] = i + 2 < n ? abc[v & 63] : '=';
  }
  out[o] = '\0';
}

/* "PREFIX<base64 of in>\r\n" as one command; the copies are wiped. */
static void send_secret(detour_engine *e, const char *prefix,
                        const unsigned char *in, size_t n) {
  char line[1100];
  size_t p = strlen(prefix);
  memcpy(line, prefix, p);
  base64(in, n, line + p);
  strcat(line, "\r\n");
  send_command(e, DETOUR_STAGE_AUTH, 0, line);
  wipe(line, sizeof line);
}

/* A log row per recipient of the session (TLS up, AUTH accepted). */
static void log_step(detour_engine *e, detour_ms now, detour_log_kind kind,
                     const char *result, const char *detail) {
  engine_session *s = &e->session;
  engine_message *m = e->active;
  for (size_t i = 0; i < m->nrcpts; i++)
    if (takes_part(&m->rcpts[i]))
      detour__engine_log(e, now, kind, &m->rcpts[i], s->server, s->address,
                         result, DETOUR_CLASS_NONE, detail);
}

static void start_auth(detour_engine *e, detour_ms now) {
  engine_session *s = &e->session;
  const detour_server *srv = server_of(e);
  s->auth_login = !s->cap_auth_plain;
  s->auth_step = 0;
  if (s->auth_login) {
    send_command(e, DETOUR_STAGE_AUTH, 0, "AUTH LOGIN\r\n");
  } else { /* RFC 4616: authzid (empty) NUL authcid NUL passwd */
    unsigned char blob[sizeof srv->auth_user + sizeof srv->auth_password + 2];
    size_t u = strnlen(srv->auth_user, sizeof srv->auth_user - 1);
    size_t p = strnlen(srv->auth_password, sizeof srv->auth_password - 1);
    blob[0] = 0;
    memcpy(blob + 1, srv->auth_user, u);
    blob[1 + u] = 0;
    memcpy(blob + 2 + u, srv->auth_password, p);
    send_secret(e, "AUTH PLAIN ", blob, 2 + u + p);
    wipe(blob, sizeof blob);
  }
  enter_state(e, SESSION_AUTH, now);
}

/* After the EHLO that counts (inside TLS when TLS is used): AUTH when
 * configured, else the transaction. AUTH never goes out in clear to a
 * server that has TLS configured. */
static void authenticate_or_mail(detour_engine *e, detour_ms now) {
  engine_session *s = &e->session;
  const detour_server *srv = server_of(e);
  if (!srv->auth_user[0]) {
    start_transaction(e, now);
  } else if (tls_wanted(e) && !s->tls_up) {
    fail_policy(e, now, DETOUR_COND_NO_STARTTLS,
                "no AUTH in clear to a server with TLS configured");
  } else if (!s->cap_auth_plain && !s->cap_auth_login) {
    fail_policy(e, now, DETOUR_COND_NO_AUTH,
                "the server offers no AUTH PLAIN or LOGIN");
  } else {
    start_auth(e, now);
  }
}

/* After the first EHLO: STARTTLS when configured and offered. Without
 * it, a required TLS ends the session before anything else is sent. */
static void after_ehlo(detour_engine *e, detour_ms now) {
  engine_session *s = &e->session;
  const detour_server *srv = server_of(e);
  if (srv->tls == DETOUR_TLS_MODE_STARTTLS && !s->tls_up) {
    if (s->cap_starttls) {
      send_command(e, DETOUR_STAGE_STARTTLS, 0, "STARTTLS\r\n");
      enter_state(e, SESSION_STARTTLS, now);
      return;
    }
    if (!srv->tls_optional) {
      fail_policy(e, now, DETOUR_COND_NO_STARTTLS,
                  "TLS is required and the EHLO reply has no STARTTLS");
      return;
    }
  }
  authenticate_or_mail(e, now);
}

/* Ask the driver for TLS on this connection. */
static void start_tls(detour_engine *e) {
  engine_session *s = &e->session;
  const detour_server *srv = server_of(e);
  detour_action a = {.type = DETOUR_ACT_TLS_START, .conn = s->conn->id};
  a.u.tls.server_name = srv->host;
  a.u.tls.ca_file = srv->ca_file;
  detour__engine_push(e, &a);
  s->tls_started = true;
}

static void on_starttls(detour_engine *e, detour_ms now,
                        const detour_reply *r) {
  if (!is_2xx(r)) {
    fail_reply(e, now, DETOUR_STAGE_STARTTLS, r);
    return;
  }
  /* TLS_START goes out once this read is done and shown clean
   * (detour__session_on_data) */
  enter_state(e, SESSION_TLS, now);
}

static void on_auth(detour_engine *e, detour_ms now, const detour_reply *r) {
  engine_session *s = &e->session;
  const detour_server *srv = server_of(e);
  if (r->code == 334 && s->auth_login && s->auth_step < 2) {
    s->auth_step++;
    const char *secret =
        s->auth_step == 1 ? srv->auth_user : srv->auth_password;
    send_secret(e, "", (const unsigned char *)secret,
                strnlen(secret, sizeof srv->auth_user - 1));
    enter_state(e, SESSION_AUTH, now);
    return;
  }
  if (r->code == 334) {
    fail_condition(e, now, DETOUR_COND_MALFORMED,
                   "334 where AUTH expected 235 or a refusal");
    return;
  }
  if (!is_2xx(r)) {
    fail_reply(e, now, DETOUR_STAGE_AUTH, r);
    return;
  }
  char result[64];
  snprintf(result, sizeof result, "AUTH %s OK",
           s->auth_login ? "LOGIN" : "PLAIN");
  char detail[300];
  snprintf(detail, sizeof detail, "user %.200s", srv->auth_user);
  log_step(e, now, DETOUR_LOG_AUTH, result, detail);
  start_transaction(e, now);
}

static void on_greeting(detour_engine *e, detour_ms now,
                        const detour_reply *r) {
  if (!is_2xx(r)) {
    fail_reply(e, now, DETOUR_STAGE_GREETING, r);
    return;
  }
  send_ehlo(e, "EHLO", DETOUR_STAGE_EHLO);
  enter_state(e, SESSION_EHLO, now);
}

static void on_ehlo(detour_engine *e, detour_ms now, const detour_reply *r) {
  engine_session *s = &e->session;
  const detour_server *srv = server_of(e);
  if (is_2xx(r)) {
    parse_capabilities(s, r);
    if (s->tls_up)
      authenticate_or_mail(e, now); /* the EHLO again inside TLS */
    else
      after_ehlo(e, now);
  } else if (s->tls_up) {
    fail_reply(e, now, DETOUR_STAGE_EHLO, r);
  } else if (r->code / 100 == 5 && srv->tls == DETOUR_TLS_MODE_STARTTLS &&
             !srv->tls_optional) {
    /* a server without EHLO has no STARTTLS either */
    fail_policy(e, now, DETOUR_COND_NO_STARTTLS,
                "TLS is required and the server refused EHLO");
  } else if (r->code / 100 == 5) {
    /* an old server: RFC 5321 4.1.4 says fall back to HELO */
    send_ehlo(e, "HELO", DETOUR_STAGE_HELO);
    enter_state(e, SESSION_HELO, now);
  } else {
    fail_reply(e, now, DETOUR_STAGE_EHLO, r);
  }
}

static void on_helo(detour_engine *e, detour_ms now, const detour_reply *r) {
  if (!is_2xx(r)) {
    fail_reply(e, now, DETOUR_STAGE_HELO, r);
    return;
  }
  forget_capabilities(&e->session);
  authenticate_or_mail(e, now);
}

/* Pipelined: the state follows the oldest reply still awaited. */
static void follow_pipeline(detour_engine *e, detour_ms now) {
  const engine_expect *x = expect_head(&e->session);
  if (x && x->stage == DETOUR_STAGE_RCPT)
    enter_state(e, SESSION_RCPT, now);
  else if (x && x->stage == DETOUR_STAGE_DATA)
    enter_state(e, SESSION_DATA, now);
}

static void on_mail(detour_engine *e, detour_ms now, const detour_reply *r) {
  if (!is_2xx(r)) {
    fail_reply(e, now, DETOUR_STAGE_MAIL, r);
    return;
  }
  engine_session *s = &e->session;
  if (s->pipelined) {
    follow_pipeline(e, now);
    return;
  }
  s->rcpt_cursor = next_pending(e->active, 0);
  send_rcpt(e, s->rcpt_cursor);
  enter_state(e, SESSION_RCPT, now);
}

/* After the last RCPT reply: DATA when someone was accepted, else end the
 * session (the recipients keep the class of their RCPT failure). */
static void after_rcpts(detour_engine *e, detour_ms now) {
  engine_session *s = &e->session;
  if (s->pipelined) {
    follow_pipeline(e, now); /* DATA went with the group; its reply decides */
  } else if (s->accepted > 0) {
    send_command(e, DETOUR_STAGE_DATA, 0, "DATA\r\n");
    enter_state(e, SESSION_DATA, now);
  } else {
    session_end(e, now, true);
  }
}

static void on_rcpt(detour_engine *e, detour_ms now, size_t i,
                    const detour_reply *r) {
  engine_session *s = &e->session;
  engine_rcpt *rc = &e->active->rcpts[i];
  if (r->code == 421) {
    fail_reply(e, now, DETOUR_STAGE_RCPT, r);
    return;
  }
  if (is_2xx(r)) {
    rc->state = RCPT_IN_TXN;
    s->accepted++;
  } else {
    failure_note n;
    note_reply(e, &n, DETOUR_STAGE_RCPT, r);
    rcpt_failed(e, now, i, &n, classify(e, &n));
  }
  if (!s->pipelined) {
    s->rcpt_cursor = next_pending(e->active, s->rcpt_cursor + 1);
    if (s->rcpt_cursor < e->active->nrcpts) {
      send_rcpt(e, s->rcpt_cursor);
      enter_state(e, SESSION_RCPT, now);
      return;
    }
  } else if (expect_head(s) && expect_head(s)->stage == DETOUR_STAGE_RCPT) {
    enter_state(e, SESSION_RCPT, now); /* more replies of the group */
    return;
  }
  after_rcpts(e, now);
}

/* The body source failed: drop the connection without the final "." (the
 * server discards what it got) and give the message up, since every
 * attempt would read the same body. */
static void body_unreadable(detour_engine *e, detour_ms now, int err) {
  failure_note n;
  memset(&n, 0, sizeof n);
  snprintf(n.result, sizeof n.result, "local error");
  snprintf(n.detail, sizeof n.detail, "data: cannot read the message body: %s",
           detour_strerror(err));
  engine_message *m = e->active;
  for (size_t i = 0; i < m->nrcpts; i++)
    if (takes_part(&m->rcpts[i]))
      rcpt_failed(e, now, i, &n, DETOUR_CLASS_TRANSIENT);
  e->session.out.give_up = true;
  session_end(e, now, false);
}

/* Hand the next block of the body to the driver. Its on_sent brings the
 * one after, so each block gets the data-block timeout of its own (R11,
 * RFC 5321 4.5.3.2); once the last block (with the final ".") is written,
 * the reply to the final "." is awaited. */
static void send_body_block(detour_engine *e, detour_ms now) {
  engine_session *s = &e->session;
  int64_t n = detour__body_next_block(e, e->active, &s->body);
  if (n < 0) {
    body_unreadable(e, now, (int)n);
    return;
  }
  if (n == 0) {
    enter_state(e, SESSION_DOT, now);
    return;
  }
  s->sends_outstanding++;
  detour__engine_send(e, s->conn->id, e->block, (size_t)n);
  arm_deadline(e, now);
}

static void on_data_command(detour_engine *e, detour_ms now,
                            const detour_reply *r) {
  engine_session *s = &e->session;
  if (s->accepted == 0) {
    /* pipelined group with every RCPT refused: any DATA reply ends it; a
     * 354 would open an empty message, so drop the connection instead */
    session_end(e, now, r->code != 354 && r->code != 421);
    return;
  }
  if (r->code != 354) {
    fail_reply(e, now, DETOUR_STAGE_DATA, r);
    return;
  }
  detour__body_cursor_init(&s->body);
  expect_push(s, DETOUR_STAGE_END_OF_DATA, 0);
  enter_state(e, SESSION_BODY, now);
  send_body_block(e, now);
}

static void on_end_of_data(detour_engine *e, detour_ms now,
                           const detour_reply *r) {
  if (!is_2xx(r)) {
    fail_reply(e, now, DETOUR_STAGE_END_OF_DATA, r);
    return;
  }
  engine_session *s = &e->session;
  engine_message *m = e->active;
  for (size_t i = 0; i < m->nrcpts; i++) {
    engine_rcpt *rc = &m->rcpts[i];
    if (rc->state != RCPT_IN_TXN)
      continue;
    rc->state = RCPT_DELIVERED;
    rc->row_this_session = true;
    rc->server = (int)s->server;
    rc->last_class = DETOUR_CLASS_NONE;
    snprintf(rc->detail, sizeof rc->detail, "eod: %.200s", r->text);
    redact(e, rc->detail, sizeof rc->detail);
    detour__engine_log(e, now, DETOUR_LOG_SMTP, rc, s->server, s->address,
                       "SMTP OK", DETOUR_CLASS_NONE, rc->detail);
    detour__engine_rcpt_final(e, i, DETOUR_RCPT_DELIVERED);
  }
  s->out.worked = true; /* R12: it works again */
  session_end(e, now, true);
}

static void handle_reply(detour_engine *e, detour_ms now,
                         const detour_reply *r) {
  engine_expect x = expect_pop(&e->session);
  switch (x.stage) {
  case DETOUR_STAGE_GREETING:
    on_greeting(e, now, r);
    break;
  case DETOUR_STAGE_EHLO:
    on_ehlo(e, now, r);
    break;
  case DETOUR_STAGE_HELO:
    on_helo(e, now, r);
    break;
  case DETOUR_STAGE_MAIL:
    on_mail(e, now, r);
    break;
  case DETOUR_STAGE_RCPT:
    on_rcpt(e, now, x.rcpt, r);
    break;
  case DETOUR_STAGE_DATA:
    on_data_command(e, now, r);
    break;
  case DETOUR_STAGE_END_OF_DATA:
    on_end_of_data(e, now, r);
    break;
  case DETOUR_STAGE_STARTTLS:
    on_starttls(e, now, r);
    break;
  case DETOUR_STAGE_AUTH:
    on_auth(e, now, r);
    break;
  case DETOUR_STAGE_CONNECT:
  case DETOUR_STAGE_QUIT:
  case DETOUR_STAGE_TLS:
    break;
  }
  /* a reply that left the state as it was still restarts its clock */
  if (e->session.conn)
    arm_deadline(e, now);
}

/* ------------------------------------------------------------------------ */
/* Entry points from engine.c                                                */

static session_outcome outcome_of(engine_session *s) {
  session_outcome o = s->out;
  memset(&s->out, 0, sizeof s->out);
  return o;
}

session_outcome detour__session_begin(detour_engine *e, engine_conn *c,
                                      detour_ms now, const char *address) {
  engine_session *s = &e->session;
  engine_expect *ring = s->expect;
  memset(s, 0, sizeof *s);
  s->expect = ring;
  s->conn = c;
  s->server = c->server;
  snprintf(s->address, sizeof s->address, "%s", address ? address : "");
  detour_reply_reader_init(&s->reader);
  for (size_t i = 0; i < e->active->nrcpts; i++)
    e->active->rcpts[i].row_this_session = false;
  c->role = CONN_SESSION;
  if (server_of(e)->tls == DETOUR_TLS_MODE_IMPLICIT) {
    enter_state(e, SESSION_TLS, now); /* RFC 8314: TLS before the banner */
    start_tls(e);
  } else {
    expect_push(s, DETOUR_STAGE_GREETING, 0);
    enter_state(e, SESSION_GREETING, now);
  }
  return outcome_of(s);
}

/* While TLS is being set up, anything in clear is injected (see the top
 * of this file): fail, and never read it. */
static bool injected(detour_engine *e, detour_ms now, size_t len) {
  engine_session *s = &e->session;
  if (len == 0 && s->reader.line_len == 0 && !s->reader.in_reply)
    return false;
  char why[80];
  snprintf(why, sizeof why, "%zu bytes in clear before the handshake",
           len + s->reader.line_len);
  fail_tls(e, now, DETOUR_TLS_INJECTION, why);
  return true;
}

session_outcome detour__session_on_data(detour_engine *e, detour_ms now,
                                        const char *buf, size_t len) {
  engine_session *s = &e->session;
  while (len > 0 && s->conn && s->state != SESSION_TLS) {
    size_t used = 0;
    int rc = detour_reply_reader_feed(&s->reader, buf, len, &used);
    buf += used;
    len -= used;
    if (rc < 0) {
      fail_condition(e, now, DETOUR_COND_MALFORMED, detour_strerror(rc));
      break;
    }
    if (rc == 0)
      break;
    if (!expect_head(s)) {
      fail_condition(e, now, DETOUR_COND_MALFORMED, "reply before command");
      break;
    }
    bool last_expected = s->expect_count == 1;
    handle_reply(e, now, &s->reader.reply);
    /* Bytes after the last awaited reply came before our next command. */
    if (last_expected && len > 0 && s->conn && !s->pipelined &&
        s->state != SESSION_TLS) {
      fail_condition(e, now, DETOUR_COND_MALFORMED, "reply before command");
      break;
    }
  }
  if (s->state == SESSION_TLS && s->conn && !injected(e, now, len) &&
      !s->tls_started)
    start_tls(e);
  return outcome_of(s);
}

session_outcome detour__session_on_sent(detour_engine *e, detour_ms now) {
  engine_session *s = &e->session;
  if (s->sends_outstanding > 0)
    s->sends_outstanding--;
  if (s->state == SESSION_BODY && s->sends_outstanding == 0)
    send_body_block(e, now);
  return outcome_of(s);
}

session_outcome detour__session_on_tls_up(detour_engine *e, detour_ms now,
                                          const char *version,
                                          const char *cipher) {
  engine_session *s = &e->session;
  if (s->state != SESSION_TLS || !s->tls_started)
    return outcome_of(s);
  s->tls_up = true;
  detour_reply_reader_init(&s->reader); /* nothing from before counts */
  s->expect_count = 0;
  forget_capabilities(s);
  char result[200];
  snprintf(result, sizeof result, "TLS %.40s %.100s", version ? version : "?",
           cipher ? cipher : "?");
  char detail[300];
  snprintf(detail, sizeof detail, "certificate verified for %.250s",
           server_of(e)->host);
  log_step(e, now, DETOUR_LOG_TLS, result, detail);
  if (server_of(e)->tls == DETOUR_TLS_MODE_IMPLICIT) {
    expect_push(s, DETOUR_STAGE_GREETING, 0);
    enter_state(e, SESSION_GREETING, now);
  } else {
    send_ehlo(e, "EHLO", DETOUR_STAGE_EHLO);
    enter_state(e, SESSION_EHLO_TLS, now);
  }
  return outcome_of(s);
}

session_outcome detour__session_on_tls_failed(detour_engine *e, detour_ms now,
                                              detour_tls_failure why,
                                              const char *detail) {
  engine_session *s = &e->session;
  if (s->state == SESSION_TLS && s->tls_started)
    fail_tls(e, now, why, detail);
  return outcome_of(s);
}

session_outcome detour__session_on_closed(detour_engine *e, detour_ms now,
                                          const char *detail) {
  fail_condition(e, now, DETOUR_COND_CLOSED, detail);
  return outcome_of(&e->session);
}

session_outcome detour__session_on_timeout(detour_engine *e, detour_ms now) {
  engine_session *s = &e->session;
  char why[80];
  if (s->state == SESSION_BODY)
    snprintf(why, sizeof why, "data block not written in %lld ms",
             (long long)e->cfg.timeouts.data_block);
  else if (s->state == SESSION_TLS)
    snprintf(why, sizeof why, "handshake not done in %lld ms",
             (long long)e->cfg.timeouts.tls);
  else
    snprintf(why, sizeof why, "no reply in %lld ms",
             (long long)state_timeout(e, s->state));
  fail_condition(e, now, DETOUR_COND_TIMEOUT, why);
  return outcome_of(s);
}

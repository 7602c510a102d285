/*
 * faults.c - the fault catalogue: every failure the bench can inject, as a
 * named entry that expands into script rules (or a listener mode, or a
 * delivery style), with the wire effect and the SPEC R3 class a correct
 * client assigns. fakeservers/README.md shows the same table; the
 * integration tests walk this one.
 *
 * Entries are data: a name, a description and an expander. Expanders only
 * add rules through the public script API, so anything the catalogue does
 * a script could also say by hand.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fake_internal.h"
#include "fault_list.h"

typedef int (*expand_fn)(detour_fake_script *s, const detour_fake_fault_args *a,
                         detour_fake_stage stage);

typedef struct {
  detour_fake_fault_info info;
  unsigned stages; /* bit mask of the stages it may strike; 0 = none */
  expand_fn expand;
} fault_entry;

#define BIT(s) (1u << (s))

int detour__fake_default_code(detour_fake_stage stage) {
  static const int codes[DETOUR_FAKE_STAGE_COUNT] = {
      [DETOUR_FAKE_CONNECT] = 0,   [DETOUR_FAKE_GREETING] = 220,
      [DETOUR_FAKE_EHLO] = 250,    [DETOUR_FAKE_HELO] = 250,
      [DETOUR_FAKE_MAIL] = 250,    [DETOUR_FAKE_RCPT] = 250,
      [DETOUR_FAKE_DATA] = 354,    [DETOUR_FAKE_BODY] = 0,
      [DETOUR_FAKE_EOD] = 250,     [DETOUR_FAKE_RSET] = 250,
      [DETOUR_FAKE_NOOP] = 250,    [DETOUR_FAKE_QUIT] = 221,
      [DETOUR_FAKE_UNKNOWN] = 502, [DETOUR_FAKE_STARTTLS] = 220,
      [DETOUR_FAKE_AUTH] = 235};
  return (unsigned)stage < DETOUR_FAKE_STAGE_COUNT ? codes[stage] : 0;
}

/* A rule for stage carrying the fault's connection range. */
static detour_fake_rule fault_rule(const detour_fake_fault_args *a,
                                   detour_fake_stage stage) {
  detour_fake_rule r;
  memset(&r, 0, sizeof r);
  r.stage = stage;
  r.from_fault = true;
  r.conn_first = a->conn_first;
  r.conn_last = a->conn_last;
  return r;
}

static bool every_conn(const detour_fake_fault_args *a) {
  return a->conn_first == 0 && a->conn_last == 0;
}

/* ------------------------------------------------------------------------ */
/* Expanders                                                                 */

static int x_refuse(detour_fake_script *s, const detour_fake_fault_args *a,
                    detour_fake_stage st) {
  /* The kernel answers for us: it cannot pick connections. */
  if (!every_conn(a))
    return DETOUR_EINVAL;
  detour_fake_script_set_mode(s, DETOUR_FAKE_MODE_REFUSE);
  return 0;
}

static int x_blackhole(detour_fake_script *s, const detour_fake_fault_args *a,
                       detour_fake_stage st) {
  if (!every_conn(a))
    return DETOUR_EINVAL;
  detour_fake_script_set_mode(s, DETOUR_FAKE_MODE_BLACKHOLE);
  return 0;
}

static int add_action(detour_fake_script *s, const detour_fake_fault_args *a,
                      detour_fake_stage st, detour_fake_action act) {
  detour_fake_rule r = fault_rule(a, st);
  r.action = act;
  r.after_bytes = a->after_bytes;
  return detour_fake_script_add_rule(s, &r);
}

static int x_stall(detour_fake_script *s, const detour_fake_fault_args *a,
                   detour_fake_stage st) {
  return add_action(s, a, st, DETOUR_FAKE_ACT_STALL);
}

static int x_close(detour_fake_script *s, const detour_fake_fault_args *a,
                   detour_fake_stage st) {
  return add_action(s, a, st, DETOUR_FAKE_ACT_CLOSE);
}

static int x_reset(detour_fake_script *s, const detour_fake_fault_args *a,
                   detour_fake_stage st) {
  return add_action(s, a, st, DETOUR_FAKE_ACT_RESET);
}

static int x_drop_mid_data(detour_fake_script *s,
                           const detour_fake_fault_args *a,
                           detour_fake_stage st) {
  detour_fake_fault_args b = *a;
  if (b.after_bytes == 0)
    b.after_bytes = 64;
  return add_action(s, &b, DETOUR_FAKE_BODY, DETOUR_FAKE_ACT_RESET);
}

/* A reply at stage st: code/enhanced from the args when given. */
static int add_reply(detour_fake_script *s, const detour_fake_fault_args *a,
                     detour_fake_stage st, int code, const char *enh,
                     const char *text, int params) {
  detour_fake_rule r = fault_rule(a, st);
  r.code = a->code ? a->code : code;
  r.enhanced = a->enhanced ? a->enhanced : enh;
  r.text = text;
  r.params = params;
  return detour_fake_script_add_rule(s, &r);
}

static int x_greeting_421(detour_fake_script *s,
                          const detour_fake_fault_args *a,
                          detour_fake_stage st) {
  return add_reply(s, a, DETOUR_FAKE_GREETING, 421, "4.3.2",
                   "Service not available, closing transmission channel", 0);
}

static int x_greeting_554(detour_fake_script *s,
                          const detour_fake_fault_args *a,
                          detour_fake_stage st) {
  /* RFC 5321 3.1: after a 554 greeting the server waits for QUIT and
   * answers 503 to anything else. */
  static const detour_fake_stage others[] = {
      DETOUR_FAKE_EHLO, DETOUR_FAKE_HELO,   DETOUR_FAKE_MAIL,
      DETOUR_FAKE_RCPT, DETOUR_FAKE_DATA,   DETOUR_FAKE_RSET,
      DETOUR_FAKE_NOOP, DETOUR_FAKE_UNKNOWN};
  int rc = add_reply(s, a, DETOUR_FAKE_GREETING, 554, "5.3.2",
                     "No SMTP service here", 0);
  detour_fake_fault_args plain = *a;
  plain.code = 0;
  plain.enhanced = NULL;
  for (size_t i = 0; rc == 0 && i < sizeof others / sizeof others[0]; i++)
    rc = add_reply(s, &plain, others[i], 503, "5.5.1",
                   "Bad sequence of commands: no SMTP service", 0);
  return rc;
}

static int x_disk_full(detour_fake_script *s, const detour_fake_fault_args *a,
                       detour_fake_stage st) {
  if (st == DETOUR_FAKE_EOD)
    return add_reply(s, a, st, 552, "5.3.1", "Insufficient system storage", 0);
  return add_reply(s, a, st, 452, "4.3.1", "Insufficient system storage", 0);
}

static int x_unsupported(detour_fake_script *s, const detour_fake_fault_args *a,
                         detour_fake_stage st) {
  int code = a->code ? a->code : 555;
  return add_reply(s, a, st, code, "5.5.4",
                   code == 504 ? "Command parameter not implemented"
                               : "MAIL FROM/RCPT TO parameters not recognized",
                   1);
}

static int x_busy(detour_fake_script *s, const detour_fake_fault_args *a,
                  detour_fake_stage st) {
  if (st == DETOUR_FAKE_RCPT)
    return add_reply(s, a, st, 450, "4.2.1", "Mailbox busy, try again later",
                     0);
  return add_reply(s, a, st, 451, "4.3.0",
                   "Local error in processing, try again later", 0);
}

/* Style faults change how any reply of the stage (or of every stage) is
 * written, whichever rule chose it. */
static void set_style(detour_fake_script *s, const detour_fake_fault_args *a,
                      size_t bytes, detour_ms every, bool bare_lf) {
  for (int i = 0; i < DETOUR_FAKE_STAGE_COUNT; i++) {
    if (a->has_stage && i != (int)a->stage)
      continue;
    if (bytes) {
      s->style[i].drip_bytes = bytes;
      s->style[i].drip_every = every;
    }
    if (bare_lf)
      s->style[i].bare_lf = true;
  }
}

static int x_slow(detour_fake_script *s, const detour_fake_fault_args *a,
                  detour_fake_stage st) {
  size_t rate = a->bytes_per_sec ? a->bytes_per_sec : 10;
  if (!every_conn(a))
    return DETOUR_EINVAL;
  /* One byte per 1000/rate ms; above 1000 B/s, several bytes per ms. */
  if (rate <= 1000)
    set_style(s, a, 1, (detour_ms)(1000 / rate), false);
  else
    set_style(s, a, rate / 1000, 1, false);
  return 0;
}

static int x_partial_lines(detour_fake_script *s,
                           const detour_fake_fault_args *a,
                           detour_fake_stage st) {
  if (!every_conn(a))
    return DETOUR_EINVAL;
  /* 1 ms apart so that each piece reaches the client in its own read. */
  set_style(s, a, a->chunk ? a->chunk : 5, 1, false);
  return 0;
}

static int x_bare_lf(detour_fake_script *s, const detour_fake_fault_args *a,
                     detour_fake_stage st) {
  if (!every_conn(a))
    return DETOUR_EINVAL;
  set_style(s, a, 0, 0, true);
  return 0;
}

static int add_raw(detour_fake_script *s, const detour_fake_fault_args *a,
                   detour_fake_stage st, const char *raw, size_t len) {
  detour_fake_rule r = fault_rule(a, st);
  r.raw = raw;
  r.raw_len = len;
  return detour_fake_script_add_rule(s, &r);
}

static int x_overlong(detour_fake_script *s, const detour_fake_fault_args *a,
                      detour_fake_stage st) {
  enum { N = 2000 }; /* four times the RFC 5321 limit of 512 */
  char *buf = detour__fake_malloc(detour__fake_mem_global(), N + 8);
  if (!buf)
    return DETOUR_ENOMEM;
  int n = snprintf(buf, 8, "%d ", detour__fake_default_code(st));
  memset(buf + n, 'x', N);
  memcpy(buf + n + N, "\r\n", 2);
  int rc = add_raw(s, a, st, buf, (size_t)n + N + 2);
  detour__fake_free(detour__fake_mem_global(), buf);
  return rc;
}

static int x_endless(detour_fake_script *s, const detour_fake_fault_args *a,
                     detour_fake_stage st) {
  detour_fake_rule r = fault_rule(a, st);
  r.endless = true;
  r.drip_every = 100;
  return detour_fake_script_add_rule(s, &r);
}

static int x_garbage(detour_fake_script *s, const detour_fake_fault_args *a,
                     detour_fake_stage st) {
  static const char g[] = "XYZ this is not an SMTP reply\r\n";
  return add_raw(s, a, st, g, sizeof g - 1);
}

static int x_nul(detour_fake_script *s, const detour_fake_fault_args *a,
                 detour_fake_stage st) {
  char buf[64];
  int n = snprintf(buf, sizeof buf, "%d mx", detour__fake_default_code(st));
  static const char tail[] = "\0 ready\0\r\n"; /* NULs inside the text */
  memcpy(buf + n, tail, sizeof tail - 1);
  return add_raw(s, a, st, buf, (size_t)n + sizeof tail - 1);
}

static int x_early_reply(detour_fake_script *s, const detour_fake_fault_args *a,
                         detour_fake_stage st) {
  static const char early[] = "250 2.0.0 Ok (a reply before the command)\r\n";
  detour_fake_rule r = fault_rule(a, st);
  r.append = early;
  r.append_len = sizeof early - 1;
  return detour_fake_script_add_rule(s, &r);
}

static int x_after_quit(detour_fake_script *s, const detour_fake_fault_args *a,
                        detour_fake_stage st) {
  static const char junk[] = "250 2.0.0 unsolicited\r\nGARBAGE after QUIT\r\n";
  detour_fake_rule r = fault_rule(a, DETOUR_FAKE_QUIT);
  r.append = junk;
  r.append_len = sizeof junk - 1;
  return detour_fake_script_add_rule(s, &r);
}

/* ------------------------------------------------------------------------ */
/* TLS and AUTH (rule R13, docs/rules.md): a client that requires TLS or    */
/* holds credentials must SWITCH, with the configuration warning, on every  */
/* one of these but a 454 to AUTH, which is TRANSIENT                       */

/* Change the TLS settings; a TLS fault on a plaintext script turns
 * STARTTLS on, since the fault is meaningless without it. */
static int with_tls(detour_fake_script *s, const detour_fake_fault_args *a,
                    void (*edit)(detour_fake_tls *t)) {
  if (!every_conn(a))
    return DETOUR_EINVAL; /* the TLS context is per server */
  detour_fake_tls t = *detour_fake_script_tls(s);
  if (t.mode == DETOUR_FAKE_TLS_NONE)
    t.mode = DETOUR_FAKE_TLS_STARTTLS;
  edit(&t);
  return detour_fake_script_set_tls(s, &t);
}

static void e_hide(detour_fake_tls *t) { t->hide_starttls = true; }
static void e_alert(detour_fake_tls *t) {
  t->handshake = DETOUR_FAKE_TLS_ALERT;
}
static void e_drop(detour_fake_tls *t) { t->handshake = DETOUR_FAKE_TLS_DROP; }
static void e_expired(detour_fake_tls *t) {
  t->serve = DETOUR_FAKE_CERT_EXPIRED;
}
static void e_self(detour_fake_tls *t) {
  t->serve = DETOUR_FAKE_CERT_SELF_SIGNED;
}
static void e_host(detour_fake_tls *t) {
  t->serve = DETOUR_FAKE_CERT_WRONG_HOST;
}
static void e_unknown_ca(detour_fake_tls *t) {
  t->serve = DETOUR_FAKE_CERT_UNKNOWN_CA;
}
static void e_old(detour_fake_tls *t) {
  t->min_version = 0x0301; /* TLS 1.0 */
  t->max_version = 0x0302; /* TLS 1.1 */
}

#define TLS_FAULT(fn, edit)                                                    \
  static int fn(detour_fake_script *s, const detour_fake_fault_args *a,        \
                detour_fake_stage st) {                                        \
    return with_tls(s, a, edit);                                               \
  }
TLS_FAULT(x_starttls_stripped, e_hide)
TLS_FAULT(x_tls_alert, e_alert)
TLS_FAULT(x_tls_drop, e_drop)
TLS_FAULT(x_cert_expired, e_expired)
TLS_FAULT(x_cert_self_signed, e_self)
TLS_FAULT(x_cert_wrong_host, e_host)
TLS_FAULT(x_cert_unknown_ca, e_unknown_ca)
TLS_FAULT(x_tls_old_only, e_old)
#undef TLS_FAULT

static void ensure_starttls(detour_fake_script *s) {
  detour_fake_tls t = *detour_fake_script_tls(s);
  if (t.mode == DETOUR_FAKE_TLS_NONE) {
    t.mode = DETOUR_FAKE_TLS_STARTTLS;
    detour_fake_script_set_tls(s, &t);
  }
}

static int x_starttls_454(detour_fake_script *s,
                          const detour_fake_fault_args *a,
                          detour_fake_stage st) {
  ensure_starttls(s);
  return add_reply(s, a, DETOUR_FAKE_STARTTLS, 454, "4.7.0",
                   "TLS not available due to temporary reason", 0);
}

/* CVE-2011-0411 from the other side: a reply that only a client which
 * keeps its plaintext buffer across STARTTLS would read as the answer to
 * its first command inside TLS. One write, so one segment. */
static int x_starttls_injection(detour_fake_script *s,
                                const detour_fake_fault_args *a,
                                detour_fake_stage st) {
  static const char injected[] = "250 2.0.0 injected before the handshake\r\n";
  detour_fake_rule r = fault_rule(a, DETOUR_FAKE_STARTTLS);
  ensure_starttls(s);
  r.code = 220;
  r.enhanced = "2.0.0";
  r.text = "Ready to start TLS";
  r.append = injected;
  r.append_len = sizeof injected - 1;
  return detour_fake_script_add_rule(s, &r);
}

/* AUTH faults need AUTH offered; PLAIN and LOGIN unless the script says. */
static void ensure_auth(detour_fake_script *s, bool required) {
  detour_fake_auth au = *detour_fake_script_auth(s);
  if (!au.mechanisms)
    au.mechanisms = DETOUR_FAKE_AUTH_PLAIN | DETOUR_FAKE_AUTH_LOGIN;
  au.required = au.required || required;
  detour_fake_script_set_auth(s, &au);
}

static int x_auth_535(detour_fake_script *s, const detour_fake_fault_args *a,
                      detour_fake_stage st) {
  ensure_auth(s, false);
  return add_reply(s, a, DETOUR_FAKE_AUTH, 535, "5.7.8",
                   "Authentication credentials invalid", 0);
}

static int x_auth_454(detour_fake_script *s, const detour_fake_fault_args *a,
                      detour_fake_stage st) {
  ensure_auth(s, false);
  return add_reply(s, a, DETOUR_FAKE_AUTH, 454, "4.7.0",
                   "Temporary authentication failure", 0);
}

static int x_auth_534(detour_fake_script *s, const detour_fake_fault_args *a,
                      detour_fake_stage st) {
  ensure_auth(s, false);
  return add_reply(s, a, DETOUR_FAKE_AUTH, 534, "5.7.9",
                   "Authentication mechanism is too weak", 0);
}

/* 530 5.7.0 to MAIL from a client that did not authenticate (the
 * session's sequence check, so a client that did AUTH gets its 250). */
static int x_auth_required(detour_fake_script *s,
                           const detour_fake_fault_args *a,
                           detour_fake_stage st) {
  if (!every_conn(a))
    return DETOUR_EINVAL;
  ensure_auth(s, true);
  return 0;
}

/* ------------------------------------------------------------------------ */
/* The table                                                                 */

/* One row per entry of FAKE_FAULT_LIST (fault_list.h). */
#define CLASS_NO_CLASS (-1)
#define CLASS_OF(x) CLASS_##x
#define CLASS_CONNECT DETOUR_CLASS_CONNECT
#define CLASS_TRANSIENT DETOUR_CLASS_TRANSIENT
#define CLASS_SWITCH DETOUR_CLASS_SWITCH
#define CLASS_NONE DETOUR_CLASS_NONE
#define ROW(name, wire, expected, tolerated, note, stage, stages, expand)      \
  {{#name, wire, CLASS_OF(expected), CLASS_OF(tolerated), note,                \
    DETOUR_FAKE_##stage},                                                      \
   stages,                                                                     \
   expand},
static const fault_entry catalogue[] = {FAKE_FAULT_LIST(ROW)};
#undef ROW

size_t detour_fake_fault_count(void) {
  return sizeof catalogue / sizeof catalogue[0];
}

const detour_fake_fault_info *detour_fake_fault_at(size_t i) {
  return i < detour_fake_fault_count() ? &catalogue[i].info : NULL;
}

static const fault_entry *find(const char *name) {
  for (size_t i = 0; name && i < detour_fake_fault_count(); i++)
    if (strcasecmp(catalogue[i].info.name, name) == 0)
      return &catalogue[i];
  return NULL;
}

const detour_fake_fault_info *detour_fake_fault_find(const char *name) {
  const fault_entry *e = find(name);
  return e ? &e->info : NULL;
}

int detour_fake_script_add_fault(detour_fake_script *s, const char *name,
                                 const detour_fake_fault_args *args) {
  const fault_entry *e = find(name);
  detour_fake_fault_args none;
  if (!s)
    return DETOUR_EINVAL;
  if (!e)
    return DETOUR_ENOT_FOUND;
  if (!args) {
    memset(&none, 0, sizeof none);
    args = &none;
  }
  detour_fake_stage st = args->has_stage ? args->stage : e->info.stage;
  if (args->has_stage && !(e->stages & BIT(st)))
    return DETOUR_EINVAL;
  return e->expand(s, args, st);
}

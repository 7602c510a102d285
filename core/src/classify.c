/*
 * classify.c - the failure classification table of SPEC R3, as data.
 *
 * A failure (a stage, a condition, and for a reply its code, RFC 3463
 * enhanced status code and text) is matched against an ordered list of
 * rules; the first rule that matches gives the class. Overrides from a
 * configuration file or a scenario are put in front of the built-in rules,
 * the newest first, so each one wins over everything added before it. The
 * engine never tests a reply code itself: changing what a code means is a
 * change of this table, not of a code path.
 */
#include "detour/detour.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* One rule. A field left empty matches anything:
 *   stages    one bit per detour_stage; 0 = any stage;
 *   cond      the condition; for DETOUR_COND_REPLY the next three apply;
 *   code      "452", "5xx", "45x" ('x' = any digit); "" = any reply code;
 *   enhanced  "x.3.1", "5.1.x" ('x' = any field); "*" = any code or none;
 *             "-" = the server sent no enhanced code;
 *   text      words that must appear in the reply text in this order,
 *             case-insensitive, separated by '*' ("insufficient*storage");
 *             NULL = any text. */
typedef struct {
  uint16_t stages;
  detour_condition cond;
  char code[4];
  char enhanced[12];
  const char *text;
  detour_class cls;
  bool warn;
} rule;

_Static_assert(DETOUR_STAGE_COUNT <= 16, "stage bits must fit rule.stages");

#define AT(s) ((uint16_t)(1u << DETOUR_STAGE_##s))
#define ANY_STAGE 0
#define SESSION_START (AT(GREETING) | AT(EHLO) | AT(HELO))
#define TRANSACTION (AT(MAIL) | AT(RCPT) | AT(DATA) | AT(END_OF_DATA))

#define COND(c, k, w)                                                          \
  {                                                                            \
    .stages = ANY_STAGE, .cond = DETOUR_COND_##c, .code = "", .enhanced = "*", \
    .text = NULL, .cls = DETOUR_CLASS_##k, .warn = (w)                         \
  }
#define COND_AT(st, c, k, w)                                                   \
  {                                                                            \
    .stages = (st), .cond = DETOUR_COND_##c, .code = "", .enhanced = "*",      \
    .text = NULL, .cls = DETOUR_CLASS_##k, .warn = (w)                         \
  }
#define REPLY(st, c, e, txt, k, w)                                             \
  {                                                                            \
    .stages = (st), .cond = DETOUR_COND_REPLY, .code = c, .enhanced = e,       \
    .text = (txt), .cls = DETOUR_CLASS_##k, .warn = (w)                        \
  }

/*
 * SPEC R3, the default table. First match wins, so the order is the
 * precedence:
 *
 * 0. Transport security (R13, [0021] names encryption failures as a
 *    reason to use another server). When TLS is configured it is
 *    required: a server that does not offer STARTTLS (stripped, or never
 *    had it), a handshake that fails, stalls or is dropped, a certificate
 *    that fails the check (expired, wrong name, unknown CA, self-signed),
 *    plaintext injected after the 220 to STARTTLS, 454 ("TLS not
 *    available") and any 5xx to STARTTLS are SWITCH and warn: another
 *    server may be set up right, and this one needs the administrator.
 *    AUTH configured but no mechanism we speak offered is the same.
 *    At AUTH, 454 (4.7.0 temporary authentication failure) is TRANSIENT:
 *    the same server later; any 5xx (534 mechanism too weak, 535 bad
 *    credentials, 538, 504 mechanism unknown) is SWITCH and warns.
 * 1. What is not a reply. A connect that failed (refused, unreachable,
 *    timed out, name not resolved) is CONNECT: go to the next server at
 *    once ([0023]). Once connected, a missing reply, a dropped connection
 *    or a malformed reply is TRANSIENT: wait, then the same server
 *    ([0021]).
 * 2. The server says it cannot serve. 421 at any point, and any 5xx
 *    greeting (554 "no service"), are SWITCH.
 * 3. Disk full: 452 or 552 with x.3.1, or with "insufficient ... storage"
 *    in the text, and a 452 with no enhanced code (RFC 5321 gives 452 that
 *    meaning) are SWITCH, before anything that looks at the stage.
 * 4. Authentication: 530, 535, 538 at any stage, and any 4xx/5xx x.7.x
 *    while the session opens (greeting, EHLO, HELO), are SWITCH and warn:
 *    the server wants credentials we were not configured with. (A 5xx
 *    greeting already matched 2, so it does not warn.)
 * 5. Addresses: at MAIL and RCPT an x.1.x 5xx means the address is wrong,
 *    ABORT ([0020]); an x.7.x 5xx there is a policy or relay refusal that
 *    another server may not share, SWITCH. Without an enhanced code 550,
 *    551 and 553 at RCPT are ABORT.
 * 6. Content: any 5xx to the final "." is ABORT: the message was refused.
 * 7. Not supported: 500, 501, 502, 504, 555 and any x.5.x 5xx are SWITCH
 *    ("command parameter not supported", [0021]).
 * 8. Busy: 450 and 451 during the transaction are TRANSIENT.
 * 9. Fallbacks: another 4xx is TRANSIENT; another 5xx is ABORT at RCPT
 *    (for that recipient) and SWITCH elsewhere; a 1xx, 2xx or 3xx where
 *    the engine expected something else is treated as malformed,
 *    TRANSIENT, and so is a code outside 100..599.
 */
static const rule default_rules[] = {
    /* 0 */
    COND(TLS, SWITCH, true),
    COND(NO_STARTTLS, SWITCH, true),
    COND(NO_AUTH, SWITCH, true),
    COND_AT(AT(TLS), TIMEOUT, SWITCH, true),
    COND_AT(AT(TLS), CLOSED, SWITCH, true),
    COND_AT(AT(TLS), MALFORMED, SWITCH, true),
    REPLY(AT(STARTTLS), "454", "*", NULL, SWITCH, true),
    REPLY(AT(STARTTLS), "5xx", "*", NULL, SWITCH, true),
    REPLY(AT(AUTH), "454", "*", NULL, TRANSIENT, false),
    REPLY(AT(AUTH), "5xx", "*", NULL, SWITCH, true),
    /* 1 */
    COND(CONNECT_REFUSED, CONNECT, false),
    COND(UNREACHABLE, CONNECT, false),
    COND(CONNECT_TIMEOUT, CONNECT, false),
    COND(DNS, CONNECT, false),
    COND(TIMEOUT, TRANSIENT, false),
    COND(CLOSED, TRANSIENT, false),
    COND(MALFORMED, TRANSIENT, false),
    /* 2 */
    REPLY(ANY_STAGE, "421", "*", NULL, SWITCH, false),
    REPLY(AT(GREETING), "5xx", "*", NULL, SWITCH, false),
    /* 3 */
    REPLY(ANY_STAGE, "452", "x.3.1", NULL, SWITCH, false),
    REPLY(ANY_STAGE, "552", "x.3.1", NULL, SWITCH, false),
    REPLY(ANY_STAGE, "452", "*", "insufficient*storage", SWITCH, false),
    REPLY(ANY_STAGE, "552", "*", "insufficient*storage", SWITCH, false),
    REPLY(ANY_STAGE, "452", "-", NULL, SWITCH, false),
    /* 4 */
    REPLY(ANY_STAGE, "530", "*", NULL, SWITCH, true),
    REPLY(ANY_STAGE, "535", "*", NULL, SWITCH, true),
    REPLY(ANY_STAGE, "538", "*", NULL, SWITCH, true),
    REPLY(SESSION_START, "4xx", "x.7.x", NULL, SWITCH, true),
    REPLY(SESSION_START, "5xx", "x.7.x", NULL, SWITCH, true),
    /* 5 */
    REPLY(AT(MAIL), "5xx", "x.1.x", NULL, ABORT, false),
    REPLY(AT(MAIL), "5xx", "x.7.x", NULL, SWITCH, false),
    REPLY(AT(RCPT), "5xx", "x.1.x", NULL, ABORT, false),
    REPLY(AT(RCPT), "5xx", "x.7.x", NULL, SWITCH, false),
    REPLY(AT(RCPT), "550", "*", NULL, ABORT, false),
    REPLY(AT(RCPT), "551", "*", NULL, ABORT, false),
    REPLY(AT(RCPT), "553", "*", NULL, ABORT, false),
    /* 6 */
    REPLY(AT(END_OF_DATA), "5xx", "*", NULL, ABORT, false),
    /* 7 */
    REPLY(ANY_STAGE, "500", "*", NULL, SWITCH, false),
    REPLY(ANY_STAGE, "501", "*", NULL, SWITCH, false),
    REPLY(ANY_STAGE, "502", "*", NULL, SWITCH, false),
    REPLY(ANY_STAGE, "504", "*", NULL, SWITCH, false),
    REPLY(ANY_STAGE, "555", "*", NULL, SWITCH, false),
    REPLY(ANY_STAGE, "5xx", "x.5.x", NULL, SWITCH, false),
    /* 8 */
    REPLY(TRANSACTION, "450", "*", NULL, TRANSIENT, false),
    REPLY(TRANSACTION, "451", "*", NULL, TRANSIENT, false),
    /* 9 */
    REPLY(ANY_STAGE, "4xx", "*", NULL, TRANSIENT, false),
    REPLY(AT(RCPT), "5xx", "*", NULL, ABORT, false),
    REPLY(ANY_STAGE, "5xx", "*", NULL, SWITCH, false),
    REPLY(ANY_STAGE, "", "*", NULL, TRANSIENT, false),
};

/* Every condition has its own rule above, and the table ends with a rule
 * for any reply, so a well-formed failure always matches something. */
#define DEFAULT_RULE_COUNT (sizeof default_rules / sizeof default_rules[0])
_Static_assert(DEFAULT_RULE_COUNT == 49,
               "update the prose above when the table changes");

struct detour_classify {
  rule *overrides; /* in the order added; matched newest first */
  size_t n, cap;
};

detour_classify *detour_classify_new_default(void) {
  return calloc(1, sizeof(detour_classify));
}

void detour_classify_free(detour_classify *t) {
  if (!t)
    return;
  free(t->overrides);
  free(t);
}

/* ------------------------------------------------------------------------ */
/* Matching.                                                                 */

static bool code_matches(const char *pat, int code) {
  if (pat[0] == '\0')
    return true;
  if (code < 100 || code > 599)
    return false;
  char digits[4] = {(char)('0' + code / 100), (char)('0' + code / 10 % 10),
                    (char)('0' + code % 10), '\0'};
  for (int i = 0; i < 3; i++)
    if (pat[i] != 'x' && pat[i] != digits[i])
      return false;
  return true;
}

/* Split "a.b.c" into three fields of at most 3 characters each. */
static bool split3(const char *s, char f[3][4]) {
  for (int i = 0; i < 3; i++) {
    size_t n = strcspn(s, ".");
    if (n == 0 || n > 3)
      return false;
    memcpy(f[i], s, n);
    f[i][n] = '\0';
    s += n;
    if (i < 2 && *s++ != '.')
      return false;
  }
  return *s == '\0';
}

static bool enhanced_matches(const char *pat, const char *enh) {
  if (strcmp(pat, "*") == 0)
    return true;
  if (strcmp(pat, "-") == 0)
    return enh[0] == '\0';
  char p[3][4], e[3][4];
  if (!split3(pat, p) || !split3(enh, e))
    return false;
  for (int i = 0; i < 3; i++)
    if (strcmp(p[i], "x") != 0 && strcmp(p[i], e[i]) != 0)
      return false;
  return true;
}

/* Where needle (n bytes) first occurs in hay, ignoring case, or NULL. */
static const char *find_nocase(const char *hay, const char *needle, size_t n) {
  for (; *hay; hay++)
    if (strncasecmp(hay, needle, n) == 0)
      return hay;
  return n == 0 ? hay : NULL;
}

/* The '*'-separated words of pat appear in text, in order. */
static bool text_matches(const char *pat, const char *text) {
  if (!pat)
    return true;
  if (!text)
    return false;
  while (*pat) {
    size_t n = strcspn(pat, "*");
    const char *at = find_nocase(text, pat, n);
    if (!at)
      return false;
    text = at + n;
    pat += n;
    if (*pat == '*')
      pat++;
  }
  return true;
}

static bool rule_matches(const rule *r, const detour_failure *f) {
  if (r->stages != ANY_STAGE && ((unsigned)f->stage >= DETOUR_STAGE_COUNT ||
                                 !(r->stages & (1u << f->stage))))
    return false;
  if (r->cond != f->cond)
    return false;
  if (r->cond != DETOUR_COND_REPLY)
    return true;
  /* f->enhanced is a fixed array that a caller may not have terminated. */
  char enh[sizeof f->enhanced + 1];
  memcpy(enh, f->enhanced, sizeof f->enhanced);
  enh[sizeof f->enhanced] = '\0';
  return code_matches(r->code, f->code) && enhanced_matches(r->enhanced, enh) &&
         text_matches(r->text, f->text);
}

static const rule *find_rule(const detour_classify *t,
                             const detour_failure *f) {
  for (size_t i = t ? t->n : 0; i > 0; i--)
    if (rule_matches(&t->overrides[i - 1], f))
      return &t->overrides[i - 1];
  for (size_t i = 0; i < DEFAULT_RULE_COUNT; i++)
    if (rule_matches(&default_rules[i], f))
      return &default_rules[i];
  return NULL;
}

/* t == NULL classifies with the SPEC defaults alone. A failure no rule
 * matches (a condition value out of range) is TRANSIENT: retrying the
 * same server later is the cautious answer. */
detour_class detour_classify_failure(const detour_classify *t,
                                     const detour_failure *f, bool *warn) {
  if (warn)
    *warn = false;
  const rule *r = f ? find_rule(t, f) : NULL;
  if (!r)
    return DETOUR_CLASS_TRANSIENT;
  if (warn)
    *warn = r->warn;
  return r->cls;
}

/* ------------------------------------------------------------------------ */
/* Overrides: "[stage:](condition | code [enhanced])".                        */

#define KEY_MAX 64

/* 'classification key "KEY": WHAT "PART" (expected HINT)' in err; PART
 * and HINT may be NULL. */
static int key_error(char *err, size_t errlen, const char *key,
                     const char *what, const char *part, const char *hint) {
  if (err && errlen > 0)
    snprintf(err, errlen, "classification key \"%s\": %s%s%s%s%s%s%s", key,
             what, part ? " \"" : "", part ? part : "", part ? "\"" : "",
             hint ? " (expected " : "", hint ? hint : "", hint ? ")" : "");
  return DETOUR_EPARSE;
}

static char *trim(char *s) {
  while (*s == ' ' || *s == '\t')
    s++;
  size_t n = strlen(s);
  while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
    s[--n] = '\0';
  return s;
}

/* "452", "5xx": a first digit 1-5 or x, then digits or x. Lowercases. */
static bool parse_code(char *s, char out[4]) {
  if (strlen(s) != 3)
    return false;
  for (int i = 0; i < 3; i++) {
    char c = (char)tolower((unsigned char)s[i]);
    bool ok = c == 'x' || (i == 0 ? (c >= '1' && c <= '5') : isdigit(c));
    if (!ok)
      return false;
    out[i] = c;
  }
  out[3] = '\0';
  return true;
}

/* One enhanced-code field: 'x' or '*' (any), else 1-3 digits; the class
 * field must be 2, 4 or 5 (RFC 3463). Normalises wildcards to "x". */
static bool parse_enh_field(char *f, bool is_class) {
  if (strcmp(f, "*") == 0 || strcasecmp(f, "x") == 0) {
    strcpy(f, "x");
    return true;
  }
  for (const char *p = f; *p; p++)
    if (!isdigit((unsigned char)*p))
      return false;
  return !is_class || strcmp(f, "2") == 0 || strcmp(f, "4") == 0 ||
         strcmp(f, "5") == 0;
}

static bool parse_enhanced(const char *s, char out[12]) {
  if (strcmp(s, "*") == 0) {
    strcpy(out, "*");
    return true;
  }
  char f[3][4];
  if (!split3(s, f))
    return false;
  for (int i = 0; i < 3; i++)
    if (!parse_enh_field(f[i], i == 0))
      return false;
  snprintf(out, 12, "%s.%s.%s", f[0], f[1], f[2]);
  return true;
}

/* The reply part of a key: "452", "5xx x.1.x". */
static int parse_reply_key(char *s, rule *r, const char *key, char *err,
                           size_t errlen) {
  char *enh = s + strcspn(s, " \t");
  if (*enh)
    *enh++ = '\0';
  enh = trim(enh);
  if (!parse_code(s, r->code))
    return key_error(err, errlen, key, "bad reply code", s,
                     "3 characters like 452, 45x, 5xx");
  r->cond = DETOUR_COND_REPLY;
  if (*enh == '\0')
    return 0;
  if (!parse_enhanced(enh, r->enhanced))
    return key_error(err, errlen, key, "bad enhanced status code pattern", enh,
                     "class.subject.detail like 5.1.1, x.3.1, 5.x.x");
  return 0;
}

static int parse_key(const char *key, rule *r, char *err, size_t errlen) {
  char buf[KEY_MAX + 1];
  size_t len = strlen(key);
  if (len > KEY_MAX)
    return key_error(err, errlen, key, "too long", NULL,
                     "at most 64 characters");
  memcpy(buf, key, len + 1);
  char *s = trim(buf);
  char *colon = strchr(s, ':');
  if (colon) {
    *colon = '\0';
    char *st = trim(s);
    detour_stage stage;
    if (detour_stage_from_name(st, &stage) != 0)
      return key_error(err, errlen, key, "unknown stage", st,
                       "connect, greeting, ehlo, helo, mail, rcpt, data, "
                       "eod, quit, starttls, tls, auth");
    r->stages = (uint16_t)(1u << stage);
    s = trim(colon + 1);
  }
  if (*s == '\0')
    return key_error(err, errlen, key, "missing reply code or condition", NULL,
                     "a reply code like 452 or a condition like timeout");
  if (isdigit((unsigned char)*s) || *s == 'x' || *s == 'X')
    return parse_reply_key(s, r, key, err, errlen);
  detour_condition cond;
  if (detour_condition_from_name(s, &cond) != 0)
    return key_error(err, errlen, key, "unknown condition", s,
                     "a reply code or one of reply, connect_refused, "
                     "unreachable, connect_timeout, dns, timeout, closed, "
                     "malformed, tls, no_starttls, no_auth");
  r->cond = cond;
  return 0;
}

int detour_classify_override(detour_classify *t, const char *key,
                             detour_class cls, char *err, size_t errlen) {
  if (err && errlen > 0)
    err[0] = '\0';
  if (!t || !key)
    return DETOUR_EINVAL;
  if (cls <= DETOUR_CLASS_NONE || cls >= DETOUR_CLASS_COUNT) {
    if (err && errlen > 0)
      snprintf(err, errlen,
               "classification key \"%s\": class must be CONNECT, "
               "TRANSIENT, SWITCH or ABORT",
               key);
    return DETOUR_EPARSE;
  }
  rule r = {.stages = ANY_STAGE, .code = "", .enhanced = "*", .cls = cls};
  int rc = parse_key(key, &r, err, errlen);
  if (rc != 0)
    return rc;
  if (t->n == t->cap) {
    size_t cap = t->cap ? t->cap * 2 : 8;
    rule *grown = realloc(t->overrides, cap * sizeof *grown);
    if (!grown)
      return DETOUR_ENOMEM;
    t->overrides = grown;
    t->cap = cap;
  }
  t->overrides[t->n++] = r;
  return 0;
}

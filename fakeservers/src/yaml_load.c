/*
 * yaml_load.c - fake server scripts from YAML (libyaml document API).
 *
 * The format is fakeservers/README.md's. Every error names
 * "file:line:col" (1-based, from the node's start mark) and says what was
 * expected there, so a scenario author finds the typo without reading C.
 * The loader only calls the public script API: YAML can say nothing the C
 * API cannot.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "detour/detour_yaml.h"
#include "fake_internal.h"

/* The reader's context (document, file name, error buffer). The helpers
 * below keep this loader's short names over the reader's getters. */
typedef struct {
  detour_yaml_ctx y;
} ctx;

static int fail(ctx *c, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(ctx *c, const yaml_node_t *n, const char *fmt, ...) {
  char msg[384];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return detour_yaml_fail(&c->y, n, NULL, "%s", msg);
}

static yaml_node_t *node_at(ctx *c, int i) {
  return detour_yaml_node(&c->y, i);
}

/* The scalar's text ("" for an empty one: `text:` says no text), or NULL
 * (and an error) when n is not a scalar. */
static const char *scalar(ctx *c, yaml_node_t *n, const char *what) {
  if (n && n->type == YAML_SCALAR_NODE)
    return (const char *)n->data.scalar.value;
  detour_yaml_expected(&c->y, n, NULL, what);
  return NULL;
}

static int get_uint(ctx *c, yaml_node_t *n, const char *what,
                    unsigned long long max, unsigned long long *out) {
  long long v;
  int rc =
      detour_yaml_int(&c->y, n, NULL, 0,
                      max > LLONG_MAX ? LLONG_MAX : (long long)max, what, &v);
  if (rc == 0)
    *out = (unsigned long long)v;
  return rc;
}

static int get_bool(ctx *c, yaml_node_t *n, bool *out) {
  return detour_yaml_bool(&c->y, n, NULL, out);
}

/* The one duration grammar, at most DETOUR_DURATION_MAX: a huge
 * idle_timeout or delay is refused, not wrapped into one that fires at
 * once. */
static int get_duration(ctx *c, yaml_node_t *n, detour_ms *out) {
  return detour_yaml_duration(&c->y, n, NULL, 0,
                              "a duration like 500ms, 3s, 3m", out);
}

/* "1-2", "3", "3-" (open) or a bare number. */
static int get_range(ctx *c, yaml_node_t *n, unsigned *first, unsigned *last) {
  const char *s = scalar(c, n, "a range like 1-2, 3 or 3-");
  char *end;
  if (!s)
    return DETOUR_EPARSE;
  unsigned long a = strtoul(s, &end, 10), b = a;
  if (end == s || a == 0 || s[0] == '-')
    goto bad;
  if (*end == '-') {
    const char *q = end + 1;
    b = *q ? strtoul(q, &end, 10) : 0;
    if (*q && (end == q || b < a))
      goto bad;
    if (!*q)
      end = (char *)q;
  }
  if (*end || a > 0xffffffUL || b > 0xffffffUL)
    goto bad;
  *first = (unsigned)a;
  *last = (unsigned)b;
  return 0;
bad:
  return fail(c, n, "expected a range like 1-2, 3 or 3- (from 1), got '%s'", s);
}

/* Index of name in the NULL-terminated list, or -1. */
static int one_of(const char *name, const char *const *list) {
  for (int i = 0; list[i]; i++)
    if (strcasecmp(name, list[i]) == 0)
      return i;
  return -1;
}

static int get_choice(ctx *c, yaml_node_t *n, const char *const *list,
                      const char *expected, int *out) {
  return detour_yaml_choice(&c->y, n, NULL, list, expected, out);
}

/* ------------------------------------------------------------------------ */
/* Rules                                                                     */

/* "421 4.3.2 text" -> code, enhanced, text (pointers into tmp). */
static bool parse_short_reply(const char *s, detour_fake_rule *r, char *tmp,
                              size_t tlen) {
  if (strlen(s) < 3 || !(s[0] >= '1' && s[0] <= '9') ||
      !(s[1] >= '0' && s[1] <= '9') || !(s[2] >= '0' && s[2] <= '9') ||
      (s[3] && s[3] != ' '))
    return false;
  r->code = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
  snprintf(tmp, tlen, "%s", s[3] ? s + 4 : "");
  char *p = tmp;
  /* An enhanced code is d.d{1,3}.d{1,3} as the first word. */
  size_t w = strcspn(p, " ");
  int dots = 0;
  bool digits = w > 0;
  for (size_t i = 0; i < w; i++) {
    if (p[i] == '.')
      dots++;
    else if (p[i] < '0' || p[i] > '9')
      digits = false;
  }
  if (digits && dots == 2 && p[0] == s[0]) {
    r->enhanced = p;
    if (p[w]) {
      p[w] = '\0';
      r->text = p + w + 1;
    }
  } else if (*p) {
    r->text = p;
  }
  return true;
}

static const char *const actions[] = {"auto",  "continue", "close",
                                      "reset", "stall",    NULL};

/* A scalar rule: an action name, "normal", or a short reply. */
static int rule_from_scalar(ctx *c, yaml_node_t *n, detour_fake_rule *r,
                            char *tmp, size_t tlen) {
  const char *s = (const char *)n->data.scalar.value;
  int a = one_of(s, actions);
  if (a >= DETOUR_FAKE_ACT_CLOSE) {
    r->action = (detour_fake_action)a;
    return 0;
  }
  if (strcasecmp(s, "normal") == 0 || strcasecmp(s, "default") == 0)
    return 0;
  if (parse_short_reply(s, r, tmp, tlen))
    return 0;
  return fail(c, n,
              "expected a reply like '250 2.0.0 Ok', 'normal', or one of "
              "close, reset, stall; got '%s'",
              s);
}

/* text: a string (lines split at '\n') or a sequence of lines. */
static int get_text(ctx *c, yaml_node_t *n, char *tmp, size_t tlen,
                    const char **out) {
  if (n->type == YAML_SCALAR_NODE) {
    *out = (const char *)n->data.scalar.value;
    return 0;
  }
  if (n->type != YAML_SEQUENCE_NODE)
    return fail(c, n, "expected text: a string or a list of lines");
  size_t used = 0;
  tmp[0] = '\0';
  for (yaml_node_item_t *it = n->data.sequence.items.start;
       it < n->data.sequence.items.top; it++) {
    const char *line = scalar(c, node_at(c, *it), "a line of text");
    if (!line)
      return DETOUR_EPARSE;
    int k = snprintf(tmp + used, tlen - used, "%s%s", used ? "\n" : "", line);
    if (k < 0 || (size_t)k >= tlen - used)
      return fail(c, n, "expected at most %zu bytes of text", tlen);
    used += (size_t)k;
  }
  *out = tmp;
  return 0;
}

static int get_drip(ctx *c, yaml_node_t *n, detour_fake_rule *r) {
  if (n->type != YAML_MAPPING_NODE)
    return fail(c, n, "expected drip: { bytes: N, every: DURATION }");
  for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
       p < n->data.mapping.pairs.top; p++) {
    yaml_node_t *k = node_at(c, p->key), *v = node_at(c, p->value);
    const char *key = scalar(c, k, "a key (bytes or every)");
    unsigned long long x;
    if (!key)
      return DETOUR_EPARSE;
    if (strcmp(key, "bytes") == 0) {
      if (get_uint(c, v, "a number of bytes >= 1", 1 << 20, &x) || x == 0)
        return fail(c, v, "expected a number of bytes >= 1");
      r->drip_bytes = (size_t)x;
    } else if (strcmp(key, "every") == 0) {
      if (get_duration(c, v, &r->drip_every))
        return DETOUR_EPARSE;
    } else {
      return fail(c, k, "unknown key '%s' (expected bytes or every)", key);
    }
  }
  if (!r->drip_bytes)
    return fail(c, n, "expected drip: { bytes: N, every: DURATION }");
  return 0;
}

static const char *const rule_keys[] = {
    "reply",  "code",        "enhanced", "text",        "raw",
    "append", "delay",       "drip",     "split",       "action",
    "then",   "after_bytes", "nth",      "connections", "address",
    "params", "bare_lf",     "endless",  NULL};

enum {
  K_REPLY,
  K_CODE,
  K_ENH,
  K_TEXT,
  K_RAW,
  K_APPEND,
  K_DELAY,
  K_DRIP,
  K_SPLIT,
  K_ACTION,
  K_THEN,
  K_AFTER,
  K_NTH,
  K_CONNS,
  K_ADDRESS,
  K_PARAMS,
  K_BARE_LF,
  K_ENDLESS
};

static int rule_key(ctx *c, yaml_node_t *k, yaml_node_t *v, detour_fake_rule *r,
                    char *tmp, size_t tlen) {
  const char *key = scalar(c, k, "a rule key");
  unsigned long long x = 0;
  int i = 0, rc = 0;
  bool b = false;
  if (!key)
    return DETOUR_EPARSE;
  switch (one_of(key, rule_keys)) {
  case K_REPLY:
    if (!scalar(c, v, "a reply like '250 2.0.0 Ok'"))
      return DETOUR_EPARSE;
    if (!parse_short_reply((const char *)v->data.scalar.value, r, tmp,
                           tlen / 2))
      return fail(c, v, "expected a reply like '250 2.0.0 Ok'");
    return 0;
  case K_CODE:
    rc = get_uint(c, v, "a reply code 100..599", 599, &x);
    if (rc == 0 && x < 100)
      return fail(c, v, "expected a reply code 100..599");
    r->code = (int)x;
    return rc;
  case K_ENH:
    return (r->enhanced = scalar(c, v, "an enhanced code like 4.3.1"))
               ? 0
               : DETOUR_EPARSE;
  case K_TEXT:
    return get_text(c, v, tmp + tlen / 2, tlen / 2, &r->text);
  case K_RAW:
  case K_APPEND:
    if (!scalar(c, v, "a string of bytes (\\0, \\n, \\xNN in double quotes)"))
      return DETOUR_EPARSE;
    if (one_of(key, rule_keys) == K_RAW) {
      r->raw = (const char *)v->data.scalar.value;
      r->raw_len = v->data.scalar.length;
    } else {
      r->append = (const char *)v->data.scalar.value;
      r->append_len = v->data.scalar.length;
    }
    return 0;
  case K_DELAY:
    return get_duration(c, v, &r->delay);
  case K_DRIP:
    return get_drip(c, v, r);
  case K_SPLIT:
    rc = get_uint(c, v, "bytes per write >= 1", 1 << 20, &x);
    if (rc == 0 && x == 0)
      return fail(c, v, "expected bytes per write >= 1");
    r->drip_bytes = (size_t)x;
    r->drip_every = 1;
    return rc;
  case K_ACTION:
  case K_THEN:
    rc = get_choice(c, v, actions, "one of auto, continue, close, reset, stall",
                    &i);
    if (one_of(key, rule_keys) == K_ACTION)
      r->action = (detour_fake_action)i;
    else
      r->then = (detour_fake_action)i;
    return rc;
  case K_AFTER:
    rc = get_uint(c, v, "a number of bytes", SIZE_MAX, &x);
    r->after_bytes = (size_t)x;
    return rc;
  case K_NTH:
    return get_range(c, v, &r->nth_first, &r->nth_last);
  case K_CONNS:
    return get_range(c, v, &r->conn_first, &r->conn_last);
  case K_ADDRESS:
    return (r->address = scalar(c, v, "an address pattern")) ? 0
                                                             : DETOUR_EPARSE;
  case K_PARAMS:
    if (v->type == YAML_SCALAR_NODE &&
        strcasecmp((const char *)v->data.scalar.value, "any") == 0)
      return r->params = 0, 0;
    /* b is read only when get_bool set it (found by fuzz_fake_script:
     * "params: 3all" loaded an uninitialised bool) */
    if ((rc = get_bool(c, v, &b)) == 0)
      r->params = b ? 1 : 2;
    return rc;
  case K_BARE_LF:
    return get_bool(c, v, &r->bare_lf);
  case K_ENDLESS:
    return get_bool(c, v, &r->endless);
  default:
    return fail(c, k,
                "unknown rule key '%s' (expected reply, code, enhanced, text, "
                "raw, append, delay, drip, split, action, then, after_bytes, "
                "nth, connections, address, params, bare_lf, endless)",
                key);
  }
}

/* One rule (scalar or mapping) for stage, added to s. */
static int add_rule_node(ctx *c, detour_fake_script *s, yaml_node_t *n,
                         detour_fake_stage st, unsigned cf, unsigned cl,
                         const char *address) {
  detour_fake_rule r;
  char tmp[8192];
  int rc = 0;
  memset(&r, 0, sizeof r);
  r.stage = st;
  r.conn_first = cf;
  r.conn_last = cl;
  if (n->type == YAML_SCALAR_NODE) {
    rc = rule_from_scalar(c, n, &r, tmp, sizeof tmp / 2);
  } else if (n->type == YAML_MAPPING_NODE) {
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
         rc == 0 && p < n->data.mapping.pairs.top; p++)
      rc = rule_key(c, node_at(c, p->key), node_at(c, p->value), &r, tmp,
                    sizeof tmp);
  } else {
    return fail(c, n,
                "expected a rule: a reply like '250 Ok', an action, or "
                "a mapping");
  }
  if (rc)
    return rc;
  if (address)
    r.address = address;
  if (detour_fake_script_add_rule(s, &r) != 0)
    return fail(c, n, "expected a valid rule (ranges first <= last)");
  return 0;
}

/* A per-address mapping: every key has an '@', is "*" or "<>". */
static bool is_address_map(ctx *c, yaml_node_t *n) {
  if (n->type != YAML_MAPPING_NODE ||
      n->data.mapping.pairs.start == n->data.mapping.pairs.top)
    return false;
  for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
       p < n->data.mapping.pairs.top; p++) {
    yaml_node_t *k = node_at(c, p->key);
    if (k->type != YAML_SCALAR_NODE)
      return false;
    const char *key = (const char *)k->data.scalar.value;
    if (!strchr(key, '@') && strcmp(key, "*") != 0 && strcmp(key, "<>") != 0)
      return false;
  }
  return true;
}

/* A stage's value: one rule, a list of rules, or an address map. */
static int add_stage(ctx *c, detour_fake_script *s, yaml_node_t *n,
                     detour_fake_stage st, unsigned cf, unsigned cl) {
  if (n->type == YAML_SEQUENCE_NODE) {
    for (yaml_node_item_t *it = n->data.sequence.items.start;
         it < n->data.sequence.items.top; it++) {
      int rc = add_rule_node(c, s, node_at(c, *it), st, cf, cl, NULL);
      if (rc)
        return rc;
    }
    return 0;
  }
  if ((st == DETOUR_FAKE_MAIL || st == DETOUR_FAKE_RCPT) &&
      is_address_map(c, n)) {
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
         p < n->data.mapping.pairs.top; p++) {
      const char *addr = (const char *)node_at(c, p->key)->data.scalar.value;
      int rc = add_rule_node(c, s, node_at(c, p->value), st, cf, cl,
                             strcmp(addr, "<>") == 0 ? "" : addr);
      if (rc)
        return rc;
    }
    return 0;
  }
  return add_rule_node(c, s, n, st, cf, cl, NULL);
}

/* ------------------------------------------------------------------------ */
/* Faults                                                                    */

static int fault_unknown(ctx *c, yaml_node_t *n, const char *name) {
  char list[512];
  size_t used = 0;
  list[0] = '\0';
  for (size_t i = 0; i < detour_fake_fault_count() && used < sizeof list; i++)
    used += (size_t)snprintf(list + used, sizeof list - used, "%s%s",
                             i ? ", " : "", detour_fake_fault_at(i)->name);
  return fail(c, n, "unknown fault '%s' (expected one of: %s)", name, list);
}

static int fault_key(ctx *c, yaml_node_t *k, yaml_node_t *v,
                     detour_fake_fault_args *a, const char **name) {
  static const char *const keys[] = {"name",     "stage",       "code",
                                     "enhanced", "after_bytes", "bytes_per_sec",
                                     "chunk",    "connections", NULL};
  const char *key = scalar(c, k, "a fault key");
  unsigned long long x = 0;
  int rc = 0;
  if (!key)
    return DETOUR_EPARSE;
  switch (one_of(key, keys)) {
  case 0:
    return (*name = scalar(c, v, "a fault name")) ? 0 : DETOUR_EPARSE;
  case 1: {
    const char *st = scalar(c, v, "a stage name");
    if (!st)
      return DETOUR_EPARSE;
    a->has_stage = true;
    if (detour_fake_stage_from_name(st, &a->stage) != 0)
      return fail(c, v,
                  "expected a stage (connect, greeting, ehlo, helo, mail, "
                  "rcpt, data, body, eod, rset, noop, quit, unknown, "
                  "starttls, auth), got '%s'",
                  st);
    return 0;
  }
  case 2:
    rc = get_uint(c, v, "a reply code 100..599", 599, &x);
    a->code = (int)x;
    return rc;
  case 3:
    return (a->enhanced = scalar(c, v, "an enhanced code")) ? 0 : DETOUR_EPARSE;
  case 4:
    rc = get_uint(c, v, "a number of bytes", SIZE_MAX, &x);
    a->after_bytes = (size_t)x;
    return rc;
  case 5:
    rc = get_uint(c, v, "bytes per second >= 1", 1 << 30, &x);
    a->bytes_per_sec = (size_t)x;
    return rc;
  case 6:
    rc = get_uint(c, v, "bytes per write", 1 << 20, &x);
    a->chunk = (size_t)x;
    return rc;
  case 7:
    return get_range(c, v, &a->conn_first, &a->conn_last);
  default:
    return fail(c, k,
                "unknown fault key '%s' (expected name, stage, code, "
                "enhanced, after_bytes, bytes_per_sec, chunk, connections)",
                key);
  }
}

static int add_fault(ctx *c, detour_fake_script *s, yaml_node_t *n, unsigned cf,
                     unsigned cl) {
  detour_fake_fault_args a;
  const char *name = NULL;
  memset(&a, 0, sizeof a);
  a.conn_first = cf;
  a.conn_last = cl;
  if (n->type == YAML_SCALAR_NODE) {
    name = (const char *)n->data.scalar.value;
  } else if (n->type == YAML_MAPPING_NODE) {
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
         p < n->data.mapping.pairs.top; p++) {
      int rc =
          fault_key(c, node_at(c, p->key), node_at(c, p->value), &a, &name);
      if (rc)
        return rc;
    }
    if (!name)
      return fail(c, n, "expected a fault mapping with a name: key");
  } else {
    return fail(c, n, "expected a fault: a name or a mapping with name:");
  }
  int rc = detour_fake_script_add_fault(s, name, &a);
  if (rc == DETOUR_ENOT_FOUND)
    return fault_unknown(c, n, name);
  if (rc == DETOUR_EINVAL)
    return fail(c, n,
                "fault '%s' cannot strike at that stage or for only some "
                "connections",
                name);
  return rc ? fail(c, n, "out of memory") : 0;
}

static int add_faults(ctx *c, detour_fake_script *s, yaml_node_t *n,
                      unsigned cf, unsigned cl) {
  if (n->type != YAML_SEQUENCE_NODE)
    return add_fault(c, s, n, cf, cl);
  for (yaml_node_item_t *it = n->data.sequence.items.start;
       it < n->data.sequence.items.top; it++) {
    int rc = add_fault(c, s, node_at(c, *it), cf, cl);
    if (rc)
      return rc;
  }
  return 0;
}

/* ------------------------------------------------------------------------ */
/* TLS and AUTH: the server keys `tls:` and `auth:` (README "TLS and AUTH")  */

static yaml_node_t *lookup(ctx *c, yaml_node_t *n, const char *name);

static int get_tls_version(ctx *c, yaml_node_t *n, int *out) {
  static const char *const names[] = {"1.0", "1.1", "1.2", "1.3", NULL};
  static const int versions[] = {0x0301, 0x0302, 0x0303, 0x0304};
  int i;
  if (get_choice(c, n, names, "a TLS version: 1.0, 1.1, 1.2 or 1.3", &i))
    return DETOUR_EPARSE;
  *out = versions[i];
  return 0;
}

static const char *const tls_modes[] = {"none", "starttls", "implicit", NULL};

static int tls_key(ctx *c, yaml_node_t *k, yaml_node_t *v, detour_fake_tls *t) {
  static const char *const keys[] = {
      "mode",      "cert",        "key",         "dir",       "serve",
      "advertise", "min_version", "max_version", "handshake", NULL};
  const char *key = scalar(c, k, "a tls key");
  const char *val;
  int i = 0;
  bool b;
  if (!key)
    return DETOUR_EPARSE;
  switch (one_of(key, keys)) {
  case 0:
    if (get_choice(c, v, tls_modes, "one of none, starttls, implicit", &i))
      return DETOUR_EPARSE;
    t->mode = (detour_fake_tls_mode)i;
    return 0;
  case 1:
    return (t->cert_file = scalar(c, v, "a PEM certificate file"))
               ? 0
               : DETOUR_EPARSE;
  case 2:
    return (t->key_file = scalar(c, v, "a PEM key file")) ? 0 : DETOUR_EPARSE;
  case 3:
    return (t->dir = scalar(c, v, "a test CA directory")) ? 0 : DETOUR_EPARSE;
  case 4:
    if (!(val = scalar(c, v, "a certificate name")))
      return DETOUR_EPARSE;
    if (detour_fake_cert_from_name(val, &t->serve) != 0)
      return fail(c, v,
                  "expected a certificate: server, expired, self_signed, "
                  "wrong_host or unknown_ca; got '%s'",
                  val);
    return 0;
  case 5:
    if (get_bool(c, v, &b))
      return DETOUR_EPARSE;
    t->hide_starttls = !b;
    return 0;
  case 6:
    return get_tls_version(c, v, &t->min_version);
  case 7:
    return get_tls_version(c, v, &t->max_version);
  case 8:
    if (get_choice(c, v, (const char *const[]){"ok", "alert", "drop", NULL},
                   "one of ok, alert, drop", &i))
      return DETOUR_EPARSE;
    t->handshake = (detour_fake_tls_handshake)i;
    return 0;
  default:
    return fail(c, k,
                "unknown tls key '%s' (expected mode, cert, key, dir, serve, "
                "advertise, min_version, max_version, handshake)",
                key);
  }
}

/* tls: starttls | implicit | none, or a mapping of tls keys. */
static int get_tls(ctx *c, detour_fake_script *s, yaml_node_t *n) {
  detour_fake_tls t = *detour_fake_script_tls(s);
  int i = 0;
  if (n->type == YAML_SCALAR_NODE) {
    if (get_choice(c, n, tls_modes, "one of none, starttls, implicit", &i))
      return DETOUR_EPARSE;
    t.mode = (detour_fake_tls_mode)i;
  } else if (n->type == YAML_MAPPING_NODE) {
    if (!lookup(c, n, "mode"))
      t.mode = DETOUR_FAKE_TLS_STARTTLS;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
         p < n->data.mapping.pairs.top; p++)
      if (tls_key(c, node_at(c, p->key), node_at(c, p->value), &t))
        return DETOUR_EPARSE;
  } else {
    return fail(c, n, "expected tls: starttls, implicit, none or a mapping");
  }
  if ((t.cert_file == NULL) != (t.key_file == NULL))
    return fail(c, n, "expected both tls cert and key, or neither");
  if (t.min_version && t.max_version && t.min_version > t.max_version)
    return fail(c, n, "expected min_version <= max_version");
  return detour_fake_script_set_tls(s, &t) ? fail(c, n, "out of memory") : 0;
}

static int get_mechanisms(ctx *c, yaml_node_t *n, unsigned *out) {
  *out = 0;
  if (n->type != YAML_SEQUENCE_NODE)
    return fail(c, n, "expected a list of mechanisms: [PLAIN, LOGIN]");
  for (yaml_node_item_t *it = n->data.sequence.items.start;
       it < n->data.sequence.items.top; it++) {
    int i;
    if (get_choice(c, node_at(c, *it),
                   (const char *const[]){"PLAIN", "LOGIN", NULL},
                   "a mechanism: PLAIN or LOGIN", &i))
      return DETOUR_EPARSE;
    *out |= i == 0 ? DETOUR_FAKE_AUTH_PLAIN : DETOUR_FAKE_AUTH_LOGIN;
  }
  return *out ? 0 : fail(c, n, "expected at least one mechanism");
}

/* users: { name: password, ... }. An error never quotes a password. */
static int get_users(ctx *c, detour_fake_script *s, yaml_node_t *n) {
  if (n->type != YAML_MAPPING_NODE)
    return fail(c, n, "expected users: a mapping user: password");
  for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
       p < n->data.mapping.pairs.top; p++) {
    yaml_node_t *k = node_at(c, p->key), *v = node_at(c, p->value);
    const char *user = scalar(c, k, "a user name");
    if (!user)
      return DETOUR_EPARSE;
    if (v->type != YAML_SCALAR_NODE)
      return fail(c, v, "expected the password of '%s' (a string)", user);
    if (detour_fake_script_add_user(s, user,
                                    (const char *)v->data.scalar.value) != 0)
      return fail(c, k,
                  "expected a user name and a password of at most %d "
                  "bytes each",
                  DETOUR_FAKE_SASL_FIELD_MAX - 1);
  }
  return 0;
}

static int auth_key(ctx *c, detour_fake_script *s, yaml_node_t *k,
                    yaml_node_t *v, detour_fake_auth *a) {
  static const char *const keys[] = {"mechanisms", "offer",      "required",
                                     "users",      "users_file", NULL};
  const char *key = scalar(c, k, "an auth key"), *val;
  char why[512];
  int i = 0;
  if (!key)
    return DETOUR_EPARSE;
  switch (one_of(key, keys)) {
  case 0:
    return get_mechanisms(c, v, &a->mechanisms);
  case 1:
    if (get_choice(c, v, (const char *const[]){"always", "after_tls", NULL},
                   "one of always, after_tls", &i))
      return DETOUR_EPARSE;
    a->after_tls = i == 1;
    return 0;
  case 2:
    return get_bool(c, v, &a->required);
  case 3:
    return get_users(c, s, v);
  case 4:
    if (!(val = scalar(c, v, "a file of user:password lines")))
      return DETOUR_EPARSE;
    if (detour_fake_script_load_users(s, val, why, sizeof why) != 0)
      return fail(c, v, "%s", why);
    return 0;
  default:
    return fail(c, k,
                "unknown auth key '%s' (expected mechanisms, offer, required, "
                "users, users_file)",
                key);
  }
}

/* auth: a mapping; AUTH PLAIN and LOGIN unless mechanisms says. */
static int get_auth(ctx *c, detour_fake_script *s, yaml_node_t *n) {
  detour_fake_auth a = *detour_fake_script_auth(s);
  if (n->type != YAML_MAPPING_NODE)
    return fail(c, n,
                "expected auth: a mapping (users, mechanisms, offer, "
                "required, users_file)");
  a.mechanisms = DETOUR_FAKE_AUTH_PLAIN | DETOUR_FAKE_AUTH_LOGIN;
  for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
       p < n->data.mapping.pairs.top; p++)
    if (auth_key(c, s, node_at(c, p->key), node_at(c, p->value), &a))
      return DETOUR_EPARSE;
  detour_fake_script_set_auth(s, &a);
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Connection blocks and servers                                             */

/* A stage key or a fault key common to servers and connection blocks.
 * Returns 1 when the key is neither. */
static int common_key(ctx *c, detour_fake_script *s, const char *key,
                      yaml_node_t *v, unsigned cf, unsigned cl) {
  detour_fake_stage st;
  if (detour_fake_stage_from_name(key, &st) == 0)
    return add_stage(c, s, v, st, cf, cl);
  if (strcmp(key, "fault") == 0 || strcmp(key, "faults") == 0)
    return add_faults(c, s, v, cf, cl);
  return 1;
}

static int conn_block(ctx *c, detour_fake_script *s, yaml_node_t *n) {
  unsigned cf = 0, cl = 0;
  bool have = false;
  if (n->type != YAML_MAPPING_NODE)
    return fail(c, n, "expected a connection block: { range: 1-2, ... }");
  /* The range first, wherever it is written. */
  for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
       p < n->data.mapping.pairs.top; p++) {
    yaml_node_t *k = node_at(c, p->key), *v = node_at(c, p->value);
    const char *key = scalar(c, k, "a key");
    if (!key)
      return DETOUR_EPARSE;
    int which =
        one_of(key, (const char *const[]){"range", "only", "from", NULL});
    if (which < 0)
      continue;
    if (get_range(c, v, &cf, &cl))
      return DETOUR_EPARSE;
    if (which == 1 && cl != cf)
      return fail(c, v, "expected one connection number");
    if (which == 2)
      cl = 0;
    have = true;
  }
  if (!have)
    return fail(c, n, "expected range:, only: or from: in the block");
  for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
       p < n->data.mapping.pairs.top; p++) {
    yaml_node_t *k = node_at(c, p->key);
    const char *key = (const char *)k->data.scalar.value;
    if (one_of(key, (const char *const[]){"range", "only", "from", NULL}) >= 0)
      continue;
    int rc = common_key(c, s, key, node_at(c, p->value), cf, cl);
    if (rc == 1)
      return fail(c, k,
                  "unknown key '%s' in a connection block (expected range, "
                  "only, from, fault(s), or a stage name)",
                  key);
    if (rc)
      return rc;
  }
  return 0;
}

static int get_keywords(ctx *c, detour_fake_script *s, yaml_node_t *n) {
  const char *kw[64];
  size_t k = 0;
  if (n->type != YAML_SEQUENCE_NODE)
    return fail(c, n, "expected a list of EHLO keywords");
  for (yaml_node_item_t *it = n->data.sequence.items.start;
       it < n->data.sequence.items.top; it++) {
    if (k == 64)
      return fail(c, n, "expected at most 64 EHLO keywords");
    if (!(kw[k++] = scalar(c, node_at(c, *it), "an EHLO keyword")))
      return DETOUR_EPARSE;
  }
  return detour_fake_script_set_ehlo_keywords(s, kw, k) ? fail(c, n, "oom") : 0;
}

/* ------------------------------------------------------------------------ */
/* limits: { max_line: 4096, max_rcpts: 100, ... } (fake.h, README) */

static const char *const limit_keys[] = {
    "max_line",          "max_body",         "max_rcpts",
    "max_sessions",      "max_input",        "max_output",
    "max_record_events", "max_record_bytes", NULL};

static int limits_block(ctx *c, detour_fake_script *s, yaml_node_t *n) {
  detour_fake_limits l;
  size_t *field[] = {&l.max_line,          &l.max_body,        &l.max_rcpts,
                     &l.max_sessions,      &l.max_input,       &l.max_output,
                     &l.max_record_events, &l.max_record_bytes};
  unsigned long long x;
  int rc;
  if (n->type != YAML_MAPPING_NODE)
    return fail(c, n, "expected a mapping of limits (max_line: 4096, ...)");
  detour_fake_script_limits(s, &l);
  for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
       p < n->data.mapping.pairs.top; p++) {
    yaml_node_t *k = node_at(c, p->key), *v = node_at(c, p->value);
    const char *key = scalar(c, k, "a limit");
    if (!key)
      return DETOUR_EPARSE;
    int i = one_of(key, limit_keys);
    if (i < 0)
      return fail(c, k,
                  "unknown limit '%s' (expected one of max_line, max_body, "
                  "max_rcpts, max_sessions, max_input, max_output, "
                  "max_record_events, max_record_bytes)",
                  key);
    if ((rc = get_uint(c, v, "a positive number", SIZE_MAX, &x)))
      return rc;
    if (x == 0)
      return fail(c, v, "expected a positive number, got 0");
    *field[i] = (size_t)x;
  }
  detour_fake_script_set_limits(s, &l);
  return 0;
}

static const char *const server_keys[] = {
    "name",   "listen",       "mode",     "hostname",    "ehlo_keywords",
    "record", "idle_timeout", "max_body", "connections", "limits",
    "tls",    "auth",         NULL};

static int server_key(ctx *c, detour_fake_script *s, yaml_node_t *k,
                      yaml_node_t *v) {
  const char *key = scalar(c, k, "a key");
  const char *val;
  unsigned long long x;
  detour_ms d;
  int i = 0, rc;
  if (!key)
    return DETOUR_EPARSE;
  switch (one_of(key, server_keys)) {
  case 0:
    return 0; /* read first, by the caller */
  case 1:
    if (!(val = scalar(c, v, "an address like 127.0.0.2:2525")))
      return DETOUR_EPARSE;
    if (detour_fake_script_set_listen(s, val) != 0)
      return fail(c, v,
                  "expected an address like 127.0.0.2:2525 or [::1]:0, got "
                  "'%s'",
                  val);
    return 0;
  case 2:
    rc = get_choice(
        c, v, (const char *const[]){"normal", "refuse", "blackhole", NULL},
        "one of normal, refuse, blackhole", &i);
    detour_fake_script_set_mode(s, (detour_fake_mode)i);
    return rc;
  case 3:
    if (!(val = scalar(c, v, "a host name")))
      return DETOUR_EPARSE;
    return detour_fake_script_set_hostname(s, val);
  case 4:
    return get_keywords(c, s, v);
  case 5:
    rc = get_choice(c, v, (const char *const[]){"full", "summary", "off", NULL},
                    "one of full, summary, off", &i);
    detour_fake_script_set_record(s, (detour_fake_record_level)i);
    return rc;
  case 6:
    if ((rc = get_duration(c, v, &d)) == 0)
      detour_fake_script_set_idle_timeout(s, d);
    return rc;
  case 7:
    if ((rc = get_uint(c, v, "a number of bytes", SIZE_MAX, &x)) == 0)
      detour_fake_script_set_max_body(s, (size_t)x);
    return rc;
  case 8:
    if (v->type != YAML_SEQUENCE_NODE)
      return fail(c, v, "expected a list of connection blocks");
    for (yaml_node_item_t *it = v->data.sequence.items.start;
         it < v->data.sequence.items.top; it++)
      if ((rc = conn_block(c, s, node_at(c, *it))))
        return rc;
    return 0;
  case 9:
    return limits_block(c, s, v);
  case 10:
    return get_tls(c, s, v);
  case 11:
    /* At server level auth: is the configuration; rules for the AUTH
     * verdict go in connection blocks (auth: there is the stage). */
    return get_auth(c, s, v);
  }
  rc = common_key(c, s, key, v, 0, 0);
  if (rc == 1)
    return fail(c, k,
                "unknown key '%s' (expected name, listen, mode, hostname, "
                "ehlo_keywords, record, idle_timeout, max_body, connections, "
                "limits, tls, auth, fault(s), or a stage: connect, greeting, "
                "ehlo, helo, mail, rcpt, data, body, eod, rset, noop, quit, "
                "unknown, starttls)",
                key);
  return rc;
}

/* The value of key `name` in mapping n, or NULL. */
static yaml_node_t *lookup(ctx *c, yaml_node_t *n, const char *name) {
  return detour_yaml_map_get(&c->y, n, name);
}

detour_fake_script *detour_fake_script_from_yaml(struct yaml_document_s *doc,
                                                 struct yaml_node_s *node,
                                                 const char *file, char *err,
                                                 size_t errlen) {
  ctx c = {{doc, file ? file : "<yaml>", err, err ? errlen : 0, NULL}};
  if (!node || node->type != YAML_MAPPING_NODE) {
    fail(&c, node, "expected a server script (a mapping)");
    return NULL;
  }
  const char *name = "fake";
  yaml_node_t *nn = lookup(&c, node, "name");
  if (nn && !(name = scalar(&c, nn, "a server name")))
    return NULL;
  detour_fake_script *s = detour_fake_script_new(name);
  if (!s) {
    fail(&c, node, "out of memory");
    return NULL;
  }
  for (yaml_node_pair_t *p = node->data.mapping.pairs.start;
       p < node->data.mapping.pairs.top; p++) {
    if (server_key(&c, s, node_at(&c, p->key), node_at(&c, p->value)) != 0) {
      detour_fake_script_free(s);
      return NULL;
    }
  }
  return s;
}

void detour_fake_scripts_free(detour_fake_script **scripts, size_t n) {
  for (size_t i = 0; scripts && i < n; i++)
    detour_fake_script_free(scripts[i]);
  free(scripts);
}

/* Scripts of a parsed document: a server mapping or { servers: [...] }. */
static detour_fake_script **from_document(ctx *c, size_t *n) {
  yaml_node_t *root = yaml_document_get_root_node(c->y.doc);
  yaml_node_t *list;
  detour_fake_script **v = NULL;
  size_t count = 0;
  *n = 0;
  if (!root || root->type != YAML_MAPPING_NODE) {
    fail(c, root, "expected a server script or a mapping with servers:");
    return NULL;
  }
  if (!(list = lookup(c, root, "servers"))) {
    count = 1;
    v = calloc(1, sizeof *v);
    if (v && !(v[0] = detour_fake_script_from_yaml(c->y.doc, root, c->y.file,
                                                   c->y.err, c->y.errlen)))
      goto fail;
  } else {
    if (list->type != YAML_SEQUENCE_NODE ||
        list->data.sequence.items.start == list->data.sequence.items.top) {
      fail(c, list, "expected servers: a non-empty list of server scripts");
      return NULL;
    }
    count = (size_t)(list->data.sequence.items.top -
                     list->data.sequence.items.start);
    v = calloc(count, sizeof *v);
    for (size_t i = 0; v && i < count; i++)
      if (!(v[i] = detour_fake_script_from_yaml(
                c->y.doc, node_at(c, list->data.sequence.items.start[i]),
                c->y.file, c->y.err, c->y.errlen)))
        goto fail;
  }
  if (!v)
    fail(c, root, "out of memory");
  else
    *n = count;
  return v;
fail:
  detour_fake_scripts_free(v, count);
  return NULL;
}

/* Every file goes through the one reader: read whole or refused, no
 * aliases (an alias repeated in a list once made a 2.3 KB script cost
 * 953 MB), no repeated keys, bounded. */
static detour_fake_script **load(detour_yaml_file *f, int rc, size_t *n,
                                 char *err, size_t errlen) {
  *n = 0;
  if (rc)
    return NULL;
  ctx c = {detour_yaml_ctx_of(f, err, err ? errlen : 0)};
  detour_fake_script **v = from_document(&c, n);
  detour_yaml_file_free(f);
  return v;
}

detour_fake_script **detour_fake_load_string(const char *yaml, size_t len,
                                             const char *name, size_t *n,
                                             char *err, size_t errlen) {
  detour_yaml_file f;
  int rc = detour_yaml_load_string(&f, yaml, len, name ? name : "<string>", err,
                                   err ? errlen : 0);
  return load(&f, rc, n, err, errlen);
}

detour_fake_script **detour_fake_load_file(const char *path, size_t *n,
                                           char *err, size_t errlen) {
  detour_yaml_file f;
  int rc = detour_yaml_load_file(&f, path, err, err ? errlen : 0);
  return load(&f, rc, n, err, errlen);
}

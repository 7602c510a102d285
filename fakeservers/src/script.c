/*
 * script.c - a fake server's behaviour as data: the script object, its
 * rules, which rule applies to a command, and the name tables.
 *
 * Which rule applies (the prose the code below follows): among the rules of
 * the stage whose conditions all match (connection range, occurrence,
 * address pattern, parameters), the one with the highest precedence wins,
 * ties going to the rule added first. A connection range is worth 2 and a
 * catalogue fault 1, so "connections 1-2: greeting 421" beats a fault for
 * every connection, which beats the plain per-stage reply. No match means
 * the stage's default reply (session.c).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fake_internal.h"

/* ------------------------------------------------------------------------ */
/* Names                                                                     */

static const char *const stage_names[DETOUR_FAKE_STAGE_COUNT] = {
    "connect", "greeting", "ehlo",    "helo",     "mail",
    "rcpt",    "data",     "body",    "eod",      "rset",
    "noop",    "quit",     "unknown", "starttls", "auth"};
_Static_assert(sizeof stage_names / sizeof stage_names[0] ==
                   DETOUR_FAKE_STAGE_COUNT,
               "one name per stage");

static const char *const action_names[] = {"auto", "continue", "close", "reset",
                                           "stall"};
_Static_assert(sizeof action_names / sizeof action_names[0] ==
                   DETOUR_FAKE_ACT_STALL + 1,
               "one name per action");

static const char *const closer_names[] = {
    "open",         "client", "client_reset", "server",
    "server_reset", "stop",   "idle",         "nomem"};
_Static_assert(sizeof closer_names / sizeof closer_names[0] ==
                   DETOUR_FAKE_BY_NOMEM + 1,
               "one name per closer");

static const char *const event_names[] = {
    "listen", "accept", "command", "reply",   "action", "message",
    "close",  "stop",   "limit",   "finding", "tls",    "auth"};
_Static_assert(sizeof event_names / sizeof event_names[0] ==
                   DETOUR_FAKE_EV_AUTH + 1,
               "one name per event type");

#define NAME_OF(table, v)                                                      \
  (((unsigned)(v) < sizeof table / sizeof table[0]) ? table[(v)] : "?")

const char *detour_fake_stage_name(detour_fake_stage s) {
  return NAME_OF(stage_names, s);
}
const char *detour_fake_action_name(detour_fake_action a) {
  return NAME_OF(action_names, a);
}
const char *detour_fake_closer_name(detour_fake_closer c) {
  return NAME_OF(closer_names, c);
}
const char *detour_fake_event_name(detour_fake_event_type t) {
  return NAME_OF(event_names, t);
}

int detour_fake_stage_from_name(const char *name, detour_fake_stage *out) {
  if (!name)
    return DETOUR_EPARSE;
  if (strcasecmp(name, "end_of_data") == 0) {
    *out = DETOUR_FAKE_EOD;
    return 0;
  }
  for (int i = 0; i < DETOUR_FAKE_STAGE_COUNT; i++)
    if (strcasecmp(name, stage_names[i]) == 0) {
      *out = (detour_fake_stage)i;
      return 0;
    }
  return DETOUR_EPARSE;
}

int detour_fake_action_from_name(const char *name, detour_fake_action *out) {
  for (int i = 0; name && i <= DETOUR_FAKE_ACT_STALL; i++)
    if (strcasecmp(name, action_names[i]) == 0) {
      *out = (detour_fake_action)i;
      return 0;
    }
  return DETOUR_EPARSE;
}

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */

void *detour__fake_memdup(const detour_fake_mem *m, const void *p, size_t len) {
  char *d = detour__fake_malloc(m, len + 1);
  if (!d)
    return NULL;
  if (len)
    memcpy(d, p, len);
  d[len] = '\0';
  return d;
}

char *detour__fake_strdup(const detour_fake_mem *m, const char *s) {
  return s ? detour__fake_memdup(m, s, strlen(s)) : NULL;
}

bool detour__fake_glob(const char *p, const char *t) {
  return detour_glob(p, t, DETOUR_GLOB_NOCASE);
}

int detour__fake_parse_addr(const char *text, struct sockaddr_storage *out) {
  char host[80];
  const char *port_s = NULL;
  memset(out, 0, sizeof *out);
  if (!text || !*text)
    return DETOUR_EINVAL;
  if (text[0] == '[') {
    const char *end = strchr(text, ']');
    if (!end || (size_t)(end - text - 1) >= sizeof host)
      return DETOUR_EINVAL;
    memcpy(host, text + 1, (size_t)(end - text - 1));
    host[end - text - 1] = '\0';
    if (end[1] == ':')
      port_s = end + 2;
    else if (end[1] != '\0')
      return DETOUR_EINVAL;
  } else {
    const char *colon = strrchr(text, ':');
    size_t hl = colon ? (size_t)(colon - text) : strlen(text);
    if (colon && strchr(text, ':') != colon) /* bare IPv6, no port */
      hl = strlen(text), colon = NULL;
    if (hl >= sizeof host)
      return DETOUR_EINVAL;
    memcpy(host, text, hl);
    host[hl] = '\0';
    port_s = colon ? colon + 1 : NULL;
  }
  long port = 0;
  if (port_s) {
    char *end;
    port = strtol(port_s, &end, 10);
    if (!*port_s || *end || port < 0 || port > 65535)
      return DETOUR_EINVAL;
  }
  if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)out) == 0)
    return 0;
  if (uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)out) == 0)
    return 0;
  return DETOUR_EINVAL;
}

bool detour__fake_is_loopback(const struct sockaddr *sa) {
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
    return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
  }
  if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
    static const unsigned char lo[16] = {[15] = 1};
    return memcmp(&in6->sin6_addr, lo, 16) == 0;
  }
  return false;
}

void detour__fake_format_addr(const struct sockaddr *sa, char *buf, size_t len,
                              char *ip, size_t iplen) {
  char host[64] = "?";
  int port = 0;
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
    uv_ip4_name(in, host, sizeof host);
    port = ntohs(in->sin_port);
    snprintf(buf, len, "%s:%d", host, port);
  } else if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
    uv_ip6_name(in6, host, sizeof host);
    port = ntohs(in6->sin6_port);
    snprintf(buf, len, "[%s]:%d", host, port);
  } else {
    snprintf(buf, len, "?");
  }
  if (ip)
    snprintf(ip, iplen, "%s", host);
}

/* ------------------------------------------------------------------------ */
/* Scripts                                                                   */

/* Scripts allocate with the process-wide allocator. */
#define MEM detour__fake_mem_global()

detour_fake_script *detour_fake_script_new(const char *name) {
  detour_fake_script *s = detour__fake_calloc(MEM, 1, sizeof *s);
  if (!s)
    return NULL;
  static const char *const kw[] = {"PIPELINING", "8BITMIME",
                                   "ENHANCEDSTATUSCODES", "SIZE 52428800"};
  s->name = detour__fake_strdup(MEM, name ? name : "fake");
  s->hostname = detour__fake_strdup(MEM, FAKE_DEFAULT_HOSTNAME);
  snprintf(s->listen, sizeof s->listen, "%s", FAKE_DEFAULT_LISTEN);
  detour_fake_limits_init(&s->limits);
  if (!s->name || !s->hostname ||
      detour_fake_script_set_ehlo_keywords(s, kw, 4) != 0) {
    detour_fake_script_free(s);
    return NULL;
  }
  return s;
}

static void rule_free_strings(detour_fake_rule *r) {
  detour__fake_free(MEM, (char *)r->address);
  detour__fake_free(MEM, (char *)r->enhanced);
  detour__fake_free(MEM, (char *)r->text);
  detour__fake_free(MEM, (char *)r->raw);
  detour__fake_free(MEM, (char *)r->append);
}

static void free_keywords(detour_fake_script *s) {
  for (size_t i = 0; i < s->n_ehlo; i++)
    detour__fake_free(MEM, s->ehlo_kw[i]);
  detour__fake_free(MEM, s->ehlo_kw);
  s->ehlo_kw = NULL;
  s->n_ehlo = 0;
}

static void free_tls_strings(detour_fake_tls *t) {
  detour__fake_free(MEM, (char *)t->cert_file);
  detour__fake_free(MEM, (char *)t->key_file);
  detour__fake_free(MEM, (char *)t->dir);
  t->cert_file = t->key_file = t->dir = NULL;
}

static void free_users(detour_fake_script *s) {
  for (size_t i = 0; i < s->nusers; i++) {
    detour__fake_free(MEM, s->users[i].user);
    if (s->users[i].password) /* wipe: freed memory is reused */
      memset(s->users[i].password, 0, strlen(s->users[i].password));
    detour__fake_free(MEM, s->users[i].password);
  }
  detour__fake_free(MEM, s->users);
  s->users = NULL;
  s->nusers = s->users_cap = 0;
}

void detour_fake_script_free(detour_fake_script *s) {
  if (!s)
    return;
  free_tls_strings(&s->tls);
  free_users(s);
  for (size_t i = 0; i < s->nrules; i++)
    rule_free_strings(&s->rules[i]);
  detour__fake_free(MEM, s->rules);
  free_keywords(s);
  detour__fake_free(MEM, s->name);
  detour__fake_free(MEM, s->hostname);
  detour__fake_free(MEM, s);
}

detour_fake_script *detour_fake_script_clone(const detour_fake_script *s) {
  detour_fake_script *c = detour_fake_script_new(s->name);
  if (!c)
    return NULL;
  memcpy(c->listen, s->listen, sizeof c->listen);
  c->mode = s->mode;
  c->record = s->record;
  c->idle_timeout = s->idle_timeout;
  c->limits = s->limits;
  memcpy(c->style, s->style, sizeof c->style);
  if (detour_fake_script_set_hostname(c, s->hostname) != 0 ||
      detour_fake_script_set_ehlo_keywords(c, (const char *const *)s->ehlo_kw,
                                           s->n_ehlo) != 0)
    goto fail;
  for (size_t i = 0; i < s->nrules; i++)
    if (detour_fake_script_add_rule(c, &s->rules[i]) != 0)
      goto fail;
  c->auth = s->auth;
  if (detour_fake_script_set_tls(c, &s->tls) != 0)
    goto fail;
  for (size_t i = 0; i < s->nusers; i++)
    if (detour_fake_script_add_user(c, s->users[i].user,
                                    s->users[i].password) != 0)
      goto fail;
  return c;
fail:
  detour_fake_script_free(c);
  return NULL;
}

const char *detour_fake_script_name(const detour_fake_script *s) {
  return s->name;
}

int detour_fake_script_set_listen(detour_fake_script *s, const char *addr) {
  struct sockaddr_storage ss;
  if (!addr || strlen(addr) >= sizeof s->listen ||
      detour__fake_parse_addr(addr, &ss) != 0)
    return DETOUR_EINVAL;
  snprintf(s->listen, sizeof s->listen, "%s", addr);
  return 0;
}

const char *detour_fake_script_listen(const detour_fake_script *s) {
  return s->listen;
}

void detour_fake_script_set_mode(detour_fake_script *s, detour_fake_mode m) {
  s->mode = m;
}

detour_fake_mode detour_fake_script_mode(const detour_fake_script *s) {
  return s->mode;
}

void detour_fake_script_set_record(detour_fake_script *s,
                                   detour_fake_record_level level) {
  s->record = level;
}

int detour_fake_script_set_hostname(detour_fake_script *s, const char *h) {
  char *d = detour__fake_strdup(MEM, h);
  if (!d)
    return h ? DETOUR_ENOMEM : DETOUR_EINVAL;
  detour__fake_free(MEM, s->hostname);
  s->hostname = d;
  return 0;
}

int detour_fake_script_set_ehlo_keywords(detour_fake_script *s,
                                         const char *const *kw, size_t n) {
  char **v = n ? detour__fake_calloc(MEM, n, sizeof *v) : NULL;
  if (n && !v)
    return DETOUR_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    if (!(v[i] = detour__fake_strdup(MEM, kw[i]))) {
      while (i--)
        detour__fake_free(MEM, v[i]);
      detour__fake_free(MEM, v);
      return DETOUR_ENOMEM;
    }
  }
  free_keywords(s);
  s->ehlo_kw = v;
  s->n_ehlo = n;
  return 0;
}

void detour_fake_script_set_idle_timeout(detour_fake_script *s, detour_ms t) {
  s->idle_timeout = t > 0 ? t : 0;
}

void detour_fake_script_set_max_body(detour_fake_script *s, size_t bytes) {
  s->limits.max_body = bytes;
}

void detour_fake_limits_init(detour_fake_limits *l) {
  l->max_line = FAKE_DEFAULT_MAX_LINE;
  l->max_body = FAKE_DEFAULT_MAX_BODY;
  l->max_rcpts = FAKE_DEFAULT_MAX_RCPTS;
  l->max_sessions = FAKE_DEFAULT_MAX_SESSIONS;
  l->max_input = FAKE_DEFAULT_MAX_INPUT;
  l->max_output = FAKE_DEFAULT_MAX_OUTPUT;
  l->max_record_events = FAKE_DEFAULT_MAX_RECORD_EVENTS;
  l->max_record_bytes = FAKE_DEFAULT_MAX_RECORD_BYTES;
}

void detour_fake_script_set_limits(detour_fake_script *s,
                                   const detour_fake_limits *l) {
  detour_fake_limits d;
  detour_fake_limits_init(&d);
#define PICK(f) s->limits.f = l->f ? l->f : d.f
  PICK(max_line);
  PICK(max_body);
  PICK(max_rcpts);
  PICK(max_sessions);
  PICK(max_input);
  PICK(max_output);
  PICK(max_record_events);
  PICK(max_record_bytes);
#undef PICK
}

void detour_fake_script_limits(const detour_fake_script *s,
                               detour_fake_limits *out) {
  *out = s->limits;
}

/* Deep-copy r's strings into d. */
static int rule_copy(detour_fake_rule *d, const detour_fake_rule *r) {
  *d = *r;
  d->address = detour__fake_strdup(MEM, r->address);
  d->enhanced = detour__fake_strdup(MEM, r->enhanced);
  d->text = detour__fake_strdup(MEM, r->text);
  d->raw = r->raw ? detour__fake_memdup(MEM, r->raw, r->raw_len) : NULL;
  d->append =
      r->append ? detour__fake_memdup(MEM, r->append, r->append_len) : NULL;
  if ((r->address && !d->address) || (r->enhanced && !d->enhanced) ||
      (r->text && !d->text) || (r->raw && !d->raw) ||
      (r->append && !d->append)) {
    rule_free_strings(d);
    return DETOUR_ENOMEM;
  }
  return 0;
}

static bool rule_valid(const detour_fake_rule *r) {
  if ((unsigned)r->stage >= DETOUR_FAKE_STAGE_COUNT)
    return false;
  if (r->conn_last && r->conn_last < r->conn_first)
    return false;
  if (r->nth_last && r->nth_last < r->nth_first)
    return false;
  if (r->code && (r->code < 100 || r->code > 999))
    return false;
  if ((unsigned)r->action > DETOUR_FAKE_ACT_STALL ||
      (unsigned)r->then > DETOUR_FAKE_ACT_STALL)
    return false;
  return true;
}

int detour_fake_script_add_rule(detour_fake_script *s,
                                const detour_fake_rule *r) {
  if (!s || !r || !rule_valid(r))
    return DETOUR_EINVAL;
  if (s->nrules == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 16;
    detour_fake_rule *v = detour__fake_realloc(MEM, s->rules, cap * sizeof *v);
    if (!v)
      return DETOUR_ENOMEM;
    s->rules = v;
    s->cap = cap;
  }
  int rc = rule_copy(&s->rules[s->nrules], r);
  if (rc == 0)
    s->nrules++;
  return rc;
}

static bool in_range(unsigned v, unsigned first, unsigned last) {
  if (first == 0 && last == 0)
    return true;
  return v >= first && (last == 0 || v <= last);
}

static bool rule_matches(const detour_fake_rule *r,
                         const detour__fake_match_ctx *ctx) {
  if (r->stage != ctx->stage)
    return false;
  if (!in_range(ctx->conn, r->conn_first, r->conn_last) ||
      !in_range(ctx->nth, r->nth_first, r->nth_last))
    return false;
  /* No address (a syntax error) matches no address pattern. */
  if (r->address &&
      (!ctx->address || !detour__fake_glob(r->address, ctx->address)))
    return false;
  if (r->params == 1 && !ctx->has_params)
    return false;
  if (r->params == 2 && ctx->has_params)
    return false;
  return true;
}

static int precedence(const detour_fake_rule *r) {
  return (r->conn_first || r->conn_last ? 2 : 0) + (r->from_fault ? 1 : 0);
}

const detour_fake_rule *
detour__fake_script_match(const detour_fake_script *s,
                          const detour__fake_match_ctx *ctx) {
  const detour_fake_rule *best = NULL;
  for (size_t i = 0; i < s->nrules; i++) {
    const detour_fake_rule *r = &s->rules[i];
    if (rule_matches(r, ctx) && (!best || precedence(r) > precedence(best)))
      best = r;
  }
  return best;
}

/* ------------------------------------------------------------------------ */
/* TLS and AUTH settings                                                     */

int detour_fake_script_set_tls(detour_fake_script *s,
                               const detour_fake_tls *t) {
  if (!s || !t || (unsigned)t->mode > DETOUR_FAKE_TLS_IMPLICIT ||
      (unsigned)t->serve >= DETOUR_FAKE_CERT_COUNT ||
      (unsigned)t->handshake > DETOUR_FAKE_TLS_DROP ||
      (t->min_version && t->max_version && t->min_version > t->max_version))
    return DETOUR_EINVAL;
  /* Copy first: t may point at s->tls itself. */
  detour_fake_tls c = *t;
  c.cert_file = detour__fake_strdup(MEM, t->cert_file);
  c.key_file = detour__fake_strdup(MEM, t->key_file);
  c.dir = detour__fake_strdup(MEM, t->dir);
  if ((t->cert_file && !c.cert_file) || (t->key_file && !c.key_file) ||
      (t->dir && !c.dir)) {
    free_tls_strings(&c);
    return DETOUR_ENOMEM;
  }
  free_tls_strings(&s->tls);
  s->tls = c;
  return 0;
}

const detour_fake_tls *detour_fake_script_tls(const detour_fake_script *s) {
  return &s->tls;
}

void detour_fake_script_set_auth(detour_fake_script *s,
                                 const detour_fake_auth *a) {
  if (s && a)
    s->auth = *a;
}

const detour_fake_auth *detour_fake_script_auth(const detour_fake_script *s) {
  return &s->auth;
}

int detour_fake_script_add_user(detour_fake_script *s, const char *user,
                                const char *password) {
  if (!s || !user || !*user || !password ||
      strlen(user) >= DETOUR_FAKE_SASL_FIELD_MAX ||
      strlen(password) >= DETOUR_FAKE_SASL_FIELD_MAX)
    return DETOUR_EINVAL;
  char *pw = detour__fake_strdup(MEM, password);
  if (!pw)
    return DETOUR_ENOMEM;
  for (size_t i = 0; i < s->nusers; i++)
    if (strcmp(s->users[i].user, user) == 0) {
      memset(s->users[i].password, 0, strlen(s->users[i].password));
      detour__fake_free(MEM, s->users[i].password);
      s->users[i].password = pw;
      return 0;
    }
  if (s->nusers == s->users_cap) {
    size_t cap = s->users_cap ? s->users_cap * 2 : 4;
    detour__fake_user *v = detour__fake_realloc(MEM, s->users, cap * sizeof *v);
    if (!v) {
      detour__fake_free(MEM, pw);
      return DETOUR_ENOMEM;
    }
    s->users = v;
    s->users_cap = cap;
  }
  char *u = detour__fake_strdup(MEM, user);
  if (!u) {
    detour__fake_free(MEM, pw);
    return DETOUR_ENOMEM;
  }
  s->users[s->nusers].user = u;
  s->users[s->nusers++].password = pw;
  return 0;
}

const char *detour__fake_script_password(const detour_fake_script *s,
                                         const char *user) {
  for (size_t i = 0; i < s->nusers; i++)
    if (strcmp(s->users[i].user, user) == 0)
      return s->users[i].password;
  return NULL;
}

int detour_fake_script_load_users(detour_fake_script *s, const char *path,
                                  char *err, size_t errlen) {
  char line[2 * DETOUR_FAKE_SASL_FIELD_MAX + 4];
  unsigned lineno = 0;
  int rc = 0;
  FILE *f = fopen(path, "r");
  if (!f) {
    snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    return DETOUR_EIO;
  }
  while (rc == 0 && fgets(line, sizeof line, f)) {
    lineno++;
    size_t n = strcspn(line, "\r\n");
    bool whole = line[n] != '\0' || feof(f);
    line[n] = '\0';
    char *colon = strchr(line, ':');
    if (!whole ||
        (line[0] != '#' && line[0] != '\0' && (!colon || colon == line))) {
      /* Name the place, never the line: it may hold a password. */
      snprintf(err, errlen, "%s:%u: expected user:password", path, lineno);
      rc = DETOUR_EPARSE;
    } else if (colon && line[0] != '#') {
      *colon = '\0';
      rc = detour_fake_script_add_user(s, line, colon + 1);
      if (rc)
        snprintf(err, errlen, "%s:%u: expected user:password (%s)", path,
                 lineno, rc == DETOUR_EINVAL ? "too long" : "out of memory");
    }
    memset(line, 0, sizeof line);
  }
  fclose(f);
  return rc;
}

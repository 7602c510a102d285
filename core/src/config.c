/*
 * config.c - the YAML configuration loader (detour_config.h,
 * docs/config.md).
 *
 * The file is read by the one YAML reader (detour_yaml.h: whole or
 * refused, no aliases, no repeated keys, bounded), then walked: every
 * mapping level is a table of accepted keys and a handler per key, so the
 * accepted keys are data and an unknown key is an error that lists what was
 * expected. Each error names file:line:col and the full dotted key, because
 * a configuration error reported without a place is an afternoon lost.
 */
#include "detour/detour_config.h"
#include "detour/detour_yaml.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <yaml.h>

struct server_entry {
  char host[sizeof(((detour_server *)0)->host)];
  long long port;
  long long priority;
  bool has_host;
  detour_server tls; /* the R13 fields (tls ... auth_password) */
  bool has_tls_required, tls_required;
  bool has_auth, has_secret;
};

/* The state of one load: the reader's context (document, file name, error
 * buffer) and what is being filled. `server` is the entry of servers[]
 * being read. */
typedef struct {
  detour_yaml_ctx y;
  detour_settings *s;
  struct server_entry *server;
} loader;

/* A key of a mapping: its name (first: the reader walks tables by it), its
 * handler, and one word for the handler (a field offset for the
 * timeouts). */
typedef int (*key_fn)(loader *l, yaml_node_t *value, const char *path,
                      size_t arg);
typedef struct {
  const char *name;
  key_fn fn;
  size_t arg;
} key_entry;

/* Walk a mapping whose keys come from a fixed table: unknown keys are
 * errors (repeated keys were refused when the file was read), each known
 * key goes to its handler. */
static int walk_map(loader *l, yaml_node_t *map, const char *path,
                    const key_entry *keys, size_t nkeys) {
  detour_yaml_iter it;
  int rc = detour_yaml_iter_init(&l->y, &it, map, path, NULL, false);
  while (rc == 0 && (rc = detour_yaml_next_key(&l->y, &it, keys, sizeof *keys,
                                               nkeys)) == 1)
    rc = keys[it.index].fn(l, it.value, it.path, keys[it.index].arg);
  return rc;
}

/* Free-form mappings (address -> allow|deny, code -> class): call fn on
 * each key text. Nothing under the key ("senders:") is no entries. */
typedef int (*pair_fn)(loader *l, yaml_node_t *k, yaml_node_t *v,
                       const char *key, const char *path);

static int walk_pairs(loader *l, yaml_node_t *map, const char *path,
                      pair_fn fn) {
  detour_yaml_iter it;
  int rc = detour_yaml_iter_init(&l->y, &it, map, path, NULL, true);
  while (rc == 0 && (rc = detour_yaml_next_pair(&l->y, &it, "a key")) == 1)
    rc = fn(l, it.key, it.value, detour_yaml_text(it.key), it.path);
  return rc;
}

static int fail_nomem(loader *l) { return detour_yaml_nomem(&l->y); }

/* A decimal integer in [min, max]. */
static int want_int(loader *l, yaml_node_t *n, const char *path, long long min,
                    long long max, const char *what, long long *out) {
  return detour_yaml_int(&l->y, n, path, min, max, what, out);
}

/* A zero timeout would fire before any server could answer: zero_ok says
 * whether 0 (off) means something for this key. */
static int want_duration(loader *l, yaml_node_t *n, const char *path,
                         bool zero_ok, detour_ms *out) {
  const char *what =
      zero_ok ? "a duration like 3m" : "a duration like 3m, more than zero";
  return detour_yaml_duration(&l->y, n, path, zero_ok ? 0 : 1, what, out);
}

/* The text of a scalar, or NULL after "expected WHAT". */
static const char *want_scalar(loader *l, yaml_node_t *n, const char *path,
                               const char *what) {
  return detour_yaml_scalar(&l->y, n, path, what);
}

#define fail(l, at, path, ...) detour_yaml_fail(&(l)->y, at, path, __VA_ARGS__)

static int fail_expected(loader *l, yaml_node_t *at, const char *path,
                         const char *what) {
  return detour_yaml_expected(&l->y, at, path, what);
}

#define KEY_PATH_MAX DETOUR_YAML_PATH_MAX
#define key_path detour_yaml_path

static int want_bool(loader *l, yaml_node_t *n, const char *path, bool *out) {
  return detour_yaml_bool(&l->y, n, path, out);
}

/* "allow" / "deny": the words of the detour table. */
static int want_allow(loader *l, yaml_node_t *n, const char *path, bool *out) {
  static const char *const words[] = {"deny", "allow", NULL};
  int i = 0;
  int rc = detour_yaml_choice(&l->y, n, path, words, "allow or deny", &i);
  if (rc == 0)
    *out = i == 1;
  return rc;
}

/* ------------------------------------------------------------------------ */
/* servers                                                                   */

int detour_parse_server_address(const char *text, char *host, size_t hostlen,
                                uint16_t *port) {
  if (!text || !host || !port || hostlen == 0)
    return DETOUR_EINVAL;
  const char *h = text, *rest;
  size_t hlen;
  if (*text == '[') { /* "[v6]" or "[v6]:port" */
    const char *close = strchr(text, ']');
    if (!close || close == text + 1)
      return DETOUR_EPARSE;
    h = text + 1;
    hlen = (size_t)(close - h);
    rest = close + 1;
    if (*rest != '\0' && *rest != ':')
      return DETOUR_EPARSE;
  } else {
    const char *colon = strchr(text, ':');
    if (colon && strchr(colon + 1, ':'))
      return DETOUR_EPARSE; /* bare IPv6: "[::1]:25" is required */
    hlen = colon ? (size_t)(colon - text) : strlen(text);
    rest = text + hlen;
  }
  if (hlen == 0)
    return DETOUR_EPARSE;
  for (size_t i = 0; i < hlen; i++)
    if (h[i] <= ' ' || h[i] == 0x7f || h[i] == '[' || h[i] == ']')
      return DETOUR_EPARSE;
  long p = 25;
  if (*rest == ':') {
    char *end;
    errno = 0;
    p = strtol(rest + 1, &end, 10);
    if (errno || end == rest + 1 || *end != '\0' || rest[1] == '-' ||
        rest[1] == '+')
      return DETOUR_EPARSE;
  }
  if (p < 1 || p > 65535)
    return DETOUR_EPARSE;
  if (hlen >= hostlen)
    return DETOUR_ERANGE;
  memcpy(host, h, hlen);
  host[hlen] = '\0';
  *port = (uint16_t)p;
  return 0;
}

static int on_server_host(loader *l, yaml_node_t *v, const char *path,
                          size_t arg) {
  const char *h =
      detour_yaml_scalar(&l->y, v, path, "a host name or IP address");
  if (!h)
    return DETOUR_EPARSE;
  /* "[::1]" is accepted too: the brackets are how addresses are written
   * everywhere else. */
  size_t len = strlen(h);
  if (h[0] == '[' && len > 2 && h[len - 1] == ']')
    h++, len -= 2;
  if (len >= sizeof l->server->host)
    return detour_yaml_fail(&l->y, v, path,
                            "host name longer than %zu characters",
                            sizeof l->server->host - 1);
  for (size_t i = 0; i < len; i++)
    if (h[i] <= ' ' || h[i] == 0x7f)
      return detour_yaml_expected(&l->y, v, path, "a host name or IP address");
  memcpy(l->server->host, h, len);
  l->server->host[len] = '\0';
  l->server->has_host = true;
  return 0;
}

static int on_server_port(loader *l, yaml_node_t *v, const char *path,
                          size_t arg) {
  return want_int(l, v, path, 1, 65535, "a port number 1..65535",
                  &l->server->port);
}

static int on_server_priority(loader *l, yaml_node_t *v, const char *path,
                              size_t arg) {
  return want_int(l, v, path, 1, 1000000, "a priority 1, 2, ...",
                  &l->server->priority);
}

/* ------------------------------------------------------------------------ */
/* servers[].tls, tls_required, ca_file, auth (SPEC R13)                     */

static int on_server_tls(loader *l, yaml_node_t *v, const char *path,
                         size_t arg) {
  const char *what = "none, starttls or implicit";
  const char *t = want_scalar(l, v, path, what);
  if (!t)
    return DETOUR_EPARSE;
  if (detour_tls_mode_from_name(t, &l->server->tls.tls) != 0)
    return fail_expected(l, v, path, what);
  return 0;
}

static int on_server_tls_required(loader *l, yaml_node_t *v, const char *path,
                                  size_t arg) {
  l->server->has_tls_required = true;
  return want_bool(l, v, path, &l->server->tls_required);
}

/* A path into a fixed field: too long is an error, not a truncation. */
static int want_path(loader *l, yaml_node_t *v, const char *path, char *out,
                     size_t cap) {
  const char *t = want_scalar(l, v, path, "a file path");
  if (!t)
    return DETOUR_EPARSE;
  if (strlen(t) >= cap)
    return fail(l, v, path, "longer than %zu characters", cap - 1);
  memcpy(out, t, strlen(t) + 1);
  return 0;
}

static int on_server_ca_file(loader *l, yaml_node_t *v, const char *path,
                             size_t arg) {
  return want_path(l, v, path, l->server->tls.ca_file,
                   sizeof l->server->tls.ca_file);
}

static int on_auth_user(loader *l, yaml_node_t *v, const char *path,
                        size_t arg) {
  const char *t = want_scalar(l, v, path, "a user name");
  if (!t)
    return DETOUR_EPARSE;
  char *out = l->server->tls.auth_user;
  if (strlen(t) >= sizeof l->server->tls.auth_user)
    return fail(l, v, path, "longer than %zu characters",
                sizeof l->server->tls.auth_user - 1);
  for (const char *p = t; *p; p++)
    if ((unsigned char)*p < ' ' || *p == 0x7f)
      return fail_expected(l, v, path, "a user name without control bytes");
  memcpy(out, t, strlen(t) + 1);
  return 0;
}

static void wipe(void *p, size_t n) {
  volatile unsigned char *v = p;
  while (n--)
    *v++ = 0;
}

/* Copy the first line of secret into out. */
static int take_line(const char *secret, char *out, size_t cap) {
  size_t n = strcspn(secret, "\r\n");
  if (n == 0)
    return DETOUR_EPARSE;
  if (n >= cap)
    return DETOUR_ERANGE;
  memcpy(out, secret, n);
  out[n] = '\0';
  return 0;
}

static void secret_error(int rc, const char *from, size_t cap, char *err,
                         size_t errlen) {
  if (rc == DETOUR_EPARSE)
    snprintf(err, errlen, "%s holds an empty password", from);
  else if (rc == DETOUR_ERANGE)
    snprintf(err, errlen, "the password in %s is longer than %zu bytes", from,
             cap - 1);
}

int detour_read_secret_file(const char *path, char *out, size_t cap, char *err,
                            size_t errlen) {
  if (errlen > 0)
    err[0] = '\0';
  if (!path || !out || cap == 0)
    return DETOUR_EINVAL;
  char buf[1024];
  FILE *f = fopen(path, "r");
  if (!f) {
    if (errlen > 0)
      snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
    return DETOUR_EIO;
  }
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  buf[n] = '\0';
  fclose(f);
  int rc = take_line(buf, out, cap);
  wipe(buf, sizeof buf);
  if (rc && errlen > 0)
    secret_error(rc, path, cap, err, errlen);
  return rc;
}

/* The secret itself never sits in the configuration file: it comes from
 * a file (its first line) or an environment variable. Messages name the
 * file or variable, never what was in it. */
static int on_auth_password_file(loader *l, yaml_node_t *v, const char *path,
                                 size_t arg) {
  char file[4096], msg[512];
  int rc = want_path(l, v, path, file, sizeof file);
  if (rc)
    return rc;
  if (l->server->has_secret)
    return fail(l, v, path, "give password_file or password_env, not both");
  rc = detour_read_secret_file(file, l->server->tls.auth_password,
                               sizeof l->server->tls.auth_password, msg,
                               sizeof msg);
  if (rc)
    return fail(l, v, path, "%s", msg);
  l->server->has_secret = true;
  return 0;
}

static int on_auth_password_env(loader *l, yaml_node_t *v, const char *path,
                                size_t arg) {
  const char *name = want_scalar(l, v, path, "an environment variable name");
  if (!name)
    return DETOUR_EPARSE;
  const char *secret = getenv(name);
  if (!secret)
    return fail(l, v, path, "environment variable %s is not set", name);
  char from[300], msg[512];
  snprintf(from, sizeof from, "environment variable %s", name);
  if (l->server->has_secret)
    return fail(l, v, path, "give password_file or password_env, not both");
  int rc = take_line(secret, l->server->tls.auth_password,
                     sizeof l->server->tls.auth_password);
  if (rc) {
    secret_error(rc, from, sizeof l->server->tls.auth_password, msg,
                 sizeof msg);
    return fail(l, v, path, "%s", msg);
  }
  l->server->has_secret = true;
  return 0;
}

static const key_entry auth_keys[] = {
    {"user", on_auth_user, 0},
    {"password_file", on_auth_password_file, 0},
    {"password_env", on_auth_password_env, 0},
};

static int on_server_auth(loader *l, yaml_node_t *v, const char *path,
                          size_t arg) {
  int rc =
      walk_map(l, v, path, auth_keys, sizeof auth_keys / sizeof *auth_keys);
  if (rc)
    return rc;
  l->server->has_auth = true;
  if (!l->server->tls.auth_user[0])
    return fail(l, v, path, "missing user (auth needs user and a password)");
  if (!l->server->has_secret)
    return fail(l, v, path,
                "missing password_file or password_env (the password is "
                "never written in the configuration)");
  return 0;
}

/* tls_required defaults to true whenever TLS is configured; "false" makes
 * STARTTLS opportunistic. With tls: none it has nothing to say. */
static int check_tls(loader *l, yaml_node_t *item, const char *path,
                     struct server_entry *e) {
  if (e->has_tls_required && e->tls.tls == DETOUR_TLS_MODE_NONE) {
    char child[KEY_PATH_MAX];
    key_path(child, sizeof child, path, "tls_required");
    return fail(l, item, child, "needs tls: starttls or implicit");
  }
  if (e->has_tls_required && !e->tls_required &&
      e->tls.tls == DETOUR_TLS_MODE_IMPLICIT) {
    char child[KEY_PATH_MAX];
    key_path(child, sizeof child, path, "tls_required");
    return fail(l, item, child, "implicit TLS is always required");
  }
  e->tls.tls_optional = e->has_tls_required && !e->tls_required;
  return 0;
}

/* Copy the R13 fields into the server just added. */
static void apply_tls(detour_server *to, const struct server_entry *e) {
  to->tls = e->tls.tls;
  to->tls_optional = e->tls.tls_optional;
  memcpy(to->ca_file, e->tls.ca_file, sizeof to->ca_file);
  memcpy(to->auth_user, e->tls.auth_user, sizeof to->auth_user);
  memcpy(to->auth_password, e->tls.auth_password, sizeof to->auth_password);
}

static const key_entry server_keys[] = {
    {"host", on_server_host, 0},
    {"port", on_server_port, 0},
    {"priority", on_server_priority, 0},
    {"tls", on_server_tls, 0},
    {"tls_required", on_server_tls_required, 0},
    {"ca_file", on_server_ca_file, 0},
    {"auth", on_server_auth, 0},
};

/* One item of servers: "host:port" or {host, port, priority}. Without a
 * priority a server goes after the ones before it. */
static int read_server(loader *l, yaml_node_t *item, const char *path,
                       struct server_entry *e) {
  memset(e, 0, sizeof *e);
  e->port = 25;
  if (item->type == YAML_SCALAR_NODE && !detour_yaml_is_null(item)) {
    uint16_t port;
    const char *t = (const char *)item->data.scalar.value;
    int rc = detour_parse_server_address(t, e->host, sizeof e->host, &port);
    if (rc)
      return detour_yaml_expected(&l->y, item, path,
                                  "\"host:port\" (IPv6 as \"[::1]:25\")");
    e->port = port;
    return 0;
  }
  if (item->type != YAML_MAPPING_NODE)
    return detour_yaml_expected(
        &l->y, item, path, "\"host:port\" or a mapping {host, port, priority}");
  l->server = e;
  int rc = walk_map(l, item, path, server_keys,
                    sizeof server_keys / sizeof *server_keys);
  l->server = NULL;
  if (rc)
    return rc;
  if (!e->has_host) {
    char child[DETOUR_YAML_PATH_MAX];
    detour_yaml_path(child, sizeof child, path, "host");
    return detour_yaml_fail(&l->y, item, child,
                            "missing (every server needs a host)");
  }
  return check_tls(l, item, path, e);
}

static int on_servers(loader *l, yaml_node_t *v, const char *path, size_t arg) {
  if (v->type != YAML_SEQUENCE_NODE)
    return detour_yaml_expected(&l->y, v, path, "a list of servers");
  if (v->data.sequence.items.top == v->data.sequence.items.start)
    return detour_yaml_fail(&l->y, v, path,
                            "the list is empty (at least one server)");
  size_t i = 0;
  for (yaml_node_item_t *it = v->data.sequence.items.start;
       it < v->data.sequence.items.top; it++, i++) {
    yaml_node_t *item = detour_yaml_node(&l->y, *it);
    char child[DETOUR_YAML_PATH_MAX];
    snprintf(child, sizeof child, "%s[%zu]", path, i);
    struct server_entry e;
    int rc = read_server(l, item, child, &e);
    if (rc)
      return rc;
    rc = detour_config_add_server(&l->s->cfg, e.host, (uint16_t)e.port,
                                  (int)e.priority);
    if (rc == 0)
      apply_tls(&l->s->cfg.servers[l->s->cfg.nservers - 1], &e);
    volatile char *wipe = e.tls.auth_password;
    for (size_t k = 0; k < sizeof e.tls.auth_password; k++)
      wipe[k] = 0;
    if (rc == DETOUR_ERANGE)
      return detour_yaml_fail(&l->y, item, child,
                              "too many servers (at most %d)",
                              DETOUR_MAX_SERVERS);
    if (rc)
      return detour_yaml_fail(&l->y, item, child, "cannot add this server: %s",
                              detour_strerror(rc));
  }
  return 0;
}

/* ------------------------------------------------------------------------ */
/* retry, timeouts, breaker, race                                            */

static int on_retry_interval(loader *l, yaml_node_t *v, const char *path,
                             size_t arg) {
  return want_duration(l, v, path, true, &l->s->cfg.retry_interval);
}

static int on_retry_max(loader *l, yaml_node_t *v, const char *path,
                        size_t arg) {
  long long n = 0;
  int rc = want_int(l, v, path, 1, 1000000, "a number of attempts >= 1", &n);
  if (rc == 0)
    l->s->cfg.max_attempts = (unsigned)n;
  return rc;
}

static const key_entry retry_keys[] = {
    {"interval", on_retry_interval, 0},
    {"max_attempts", on_retry_max, 0},
};

static int on_retry(loader *l, yaml_node_t *v, const char *path, size_t arg) {
  return walk_map(l, v, path, retry_keys,
                  sizeof retry_keys / sizeof *retry_keys);
}

/* arg is the offset of the field in detour_timeouts. A zero timeout would
 * fire before any server could answer, so it is refused. */
static int on_timeout(loader *l, yaml_node_t *v, const char *path, size_t arg) {
  detour_ms *field = (detour_ms *)((char *)&l->s->cfg.timeouts + arg);
  return want_duration(l, v, path, false, field);
}

#define TIMEOUT_KEY(name)                                                      \
  { #name, on_timeout, offsetof(detour_timeouts, name) }
static const key_entry timeout_keys[] = {
    TIMEOUT_KEY(connect),    TIMEOUT_KEY(greeting),  TIMEOUT_KEY(ehlo),
    TIMEOUT_KEY(mail),       TIMEOUT_KEY(rcpt),      TIMEOUT_KEY(data_start),
    TIMEOUT_KEY(data_block), TIMEOUT_KEY(final_dot), TIMEOUT_KEY(quit),
    TIMEOUT_KEY(tls),        TIMEOUT_KEY(auth),
};
#undef TIMEOUT_KEY
_Static_assert(sizeof timeout_keys / sizeof *timeout_keys ==
                   sizeof(detour_timeouts) / sizeof(detour_ms),
               "every field of detour_timeouts has a key");

static int on_timeouts(loader *l, yaml_node_t *v, const char *path,
                       size_t arg) {
  return walk_map(l, v, path, timeout_keys,
                  sizeof timeout_keys / sizeof *timeout_keys);
}

static int on_breaker_hold(loader *l, yaml_node_t *v, const char *path,
                           size_t arg) {
  return want_duration(l, v, path, true, &l->s->cfg.breaker_hold);
}

static int on_race_delay(loader *l, yaml_node_t *v, const char *path,
                         size_t arg) {
  return want_duration(l, v, path, true, &l->s->cfg.race_delay);
}

static const key_entry breaker_keys[] = {{"hold", on_breaker_hold, 0}};
static const key_entry race_keys[] = {{"delay", on_race_delay, 0}};

static int on_breaker(loader *l, yaml_node_t *v, const char *path, size_t arg) {
  return walk_map(l, v, path, breaker_keys, 1);
}

static int on_race(loader *l, yaml_node_t *v, const char *path, size_t arg) {
  return walk_map(l, v, path, race_keys, 1);
}

/* ------------------------------------------------------------------------ */
/* detour (the R4 permission table)                                          */

static int on_detour_rule(loader *l, yaml_node_t *v, const char *path,
                          size_t arg) {
  const char *what = "a rule: any, sender, recipient or all";
  const char *t = detour_yaml_scalar(&l->y, v, path, what);
  detour_rule rule;
  if (!t)
    return DETOUR_EPARSE;
  if (detour_rule_from_name(t, &rule) != 0)
    return detour_yaml_expected(&l->y, v, path, what);
  detour_policy_set_rule(l->s->policy, rule);
  return 0;
}

static int on_detour_default(loader *l, yaml_node_t *v, const char *path,
                             size_t arg) {
  bool allow = false;
  int rc = want_allow(l, v, path, &allow);
  if (rc == 0)
    detour_policy_set_default(l->s->policy, allow);
  return rc;
}

/* One entry of detour.senders (sender) or detour.recipients. */
static int add_entry(loader *l, yaml_node_t *k, yaml_node_t *v, const char *key,
                     const char *path, bool sender) {
  bool allow = false;
  int rc = want_allow(l, v, path, &allow);
  if (rc)
    return rc;
  rc = sender ? detour_policy_add_sender(l->s->policy, key, allow)
              : detour_policy_add_recipient(l->s->policy, key, allow);
  if (rc == DETOUR_ENOMEM)
    return fail_nomem(l);
  if (rc)
    return detour_yaml_fail(&l->y, k, path,
                            "not an address or pattern like *@example.com");
  return 0;
}

static int sender_entry(loader *l, yaml_node_t *k, yaml_node_t *v,
                        const char *key, const char *path) {
  return add_entry(l, k, v, key, path, true);
}

static int recipient_entry(loader *l, yaml_node_t *k, yaml_node_t *v,
                           const char *key, const char *path) {
  return add_entry(l, k, v, key, path, false);
}

static int on_detour_senders(loader *l, yaml_node_t *v, const char *path,
                             size_t arg) {
  return walk_pairs(l, v, path, sender_entry);
}

static int on_detour_recipients(loader *l, yaml_node_t *v, const char *path,
                                size_t arg) {
  return walk_pairs(l, v, path, recipient_entry);
}

static const key_entry detour_keys[] = {
    {"rule", on_detour_rule, 0},
    {"default", on_detour_default, 0},
    {"senders", on_detour_senders, 0},
    {"recipients", on_detour_recipients, 0},
};

static int on_detour(loader *l, yaml_node_t *v, const char *path, size_t arg) {
  return walk_map(l, v, path, detour_keys,
                  sizeof detour_keys / sizeof *detour_keys);
}

/* ------------------------------------------------------------------------ */
/* classify (SPEC R3 overrides), in file order: a later key wins.            */

static int classify_entry(loader *l, yaml_node_t *k, yaml_node_t *v,
                          const char *key, const char *path) {
  const char *what = "a class: CONNECT, TRANSIENT, SWITCH or ABORT";
  const char *name = detour_yaml_scalar(&l->y, v, path, what);
  detour_class cls;
  if (!name)
    return DETOUR_EPARSE;
  if (detour_class_from_name(name, &cls) != 0)
    return detour_yaml_expected(&l->y, v, path, what);
  char msg[256] = "";
  int rc = detour_classify_override(l->s->classify, key, cls, msg, sizeof msg);
  if (rc == DETOUR_ENOMEM)
    return fail_nomem(l);
  if (rc)
    return detour_yaml_fail(&l->y, k, path, "%s",
                            *msg ? msg : detour_strerror(rc));
  return 0;
}

static int on_classify(loader *l, yaml_node_t *v, const char *path,
                       size_t arg) {
  return walk_pairs(l, v, path, classify_entry);
}

/* ------------------------------------------------------------------------ */
/* helo_name, pipelining, log                                                */

/* The name goes into "EHLO <name>\r\n": no space or control character may
 * reach the wire. */
static int on_helo_name(loader *l, yaml_node_t *v, const char *path,
                        size_t arg) {
  const char *what = "a host name without spaces";
  const char *t = detour_yaml_scalar(&l->y, v, path, what);
  if (!t)
    return DETOUR_EPARSE;
  size_t len = strlen(t);
  if (len >= sizeof l->s->cfg.helo_name)
    return detour_yaml_fail(&l->y, v, path, "longer than %zu characters",
                            sizeof l->s->cfg.helo_name - 1);
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)t[i] <= ' ' || (unsigned char)t[i] >= 0x7f)
      return detour_yaml_expected(&l->y, v, path, what);
  memcpy(l->s->cfg.helo_name, t, len + 1);
  return 0;
}

static int on_pipelining(loader *l, yaml_node_t *v, const char *path,
                         size_t arg) {
  return want_bool(l, v, path, &l->s->cfg.pipelining);
}

static int on_log(loader *l, yaml_node_t *v, const char *path, size_t arg) {
  const char *t = detour_yaml_scalar(&l->y, v, path, "a file path");
  if (!t)
    return DETOUR_EPARSE;
  char *copy = strdup(t);
  if (!copy)
    return fail_nomem(l);
  free(l->s->log_path);
  l->s->log_path = copy;
  return 0;
}

static const key_entry top_keys[] = {
    {"servers", on_servers, 0},
    {"retry", on_retry, 0},
    {"timeouts", on_timeouts, 0},
    {"detour", on_detour, 0},
    {"classify", on_classify, 0},
    {"helo_name", on_helo_name, 0},
    {"pipelining", on_pipelining, 0},
    {"breaker", on_breaker, 0},
    {"race", on_race, 0},
    {"log", on_log, 0},
};

/* ------------------------------------------------------------------------ */
/* Entry points                                                              */

int detour_settings_init(detour_settings *s) {
  if (!s)
    return DETOUR_EINVAL;
  memset(s, 0, sizeof *s);
  detour_config_init(&s->cfg);
  s->classify = detour_classify_new_default();
  s->policy = detour_policy_new();
  if (!s->classify || !s->policy) {
    detour_settings_free(s);
    return DETOUR_ENOMEM;
  }
  s->cfg.classify = s->classify;
  s->cfg.policy = s->policy;
  return 0;
}

void detour_settings_free(detour_settings *s) {
  if (!s)
    return;
  for (size_t i = 0; i < DETOUR_MAX_SERVERS; i++) { /* R13: no secret left */
    volatile char *p = s->cfg.servers[i].auth_password;
    for (size_t k = 0; k < sizeof s->cfg.servers[i].auth_password; k++)
      p[k] = 0;
  }
  detour_classify_free(s->classify);
  detour_policy_free(s->policy);
  free(s->log_path);
  memset(s, 0, sizeof *s);
}

/* A loaded file has had its aliases, repeated keys and size refused by the
 * reader; a document from elsewhere is only walked. */
int detour_settings_load_node(detour_settings *s, yaml_document_t *doc,
                              yaml_node_t *node, const char *file,
                              const char *key_prefix, char *err,
                              size_t errlen) {
  if (errlen > 0)
    err[0] = '\0';
  if (!s || !doc || !file)
    return DETOUR_EINVAL;
  loader l = {{doc, file, err, errlen, NULL}, s, NULL};
  int rc = detour_settings_init(s);
  if (rc)
    return fail_nomem(&l);
  if (!node || detour_yaml_is_null(node))
    return 0;
  const char *prefix = key_prefix ? key_prefix : "";
  if (node->type != YAML_MAPPING_NODE)
    rc = detour_yaml_expected(&l.y, node, prefix,
                              "a mapping of configuration keys (servers, "
                              "retry, ...)");
  else
    rc = walk_map(&l, node, prefix, top_keys,
                  sizeof top_keys / sizeof *top_keys);
  if (rc)
    detour_settings_free(s);
  return rc;
}

int detour_settings_load_file(detour_settings *s, const char *path, char *err,
                              size_t errlen) {
  if (errlen > 0)
    err[0] = '\0';
  if (!s || !path)
    return DETOUR_EINVAL;
  memset(s, 0, sizeof *s);
  detour_yaml_file f;
  int rc = detour_yaml_load_file(&f, path, err, errlen);
  if (rc)
    return rc == DETOUR_ERANGE ? DETOUR_EPARSE : rc;
  rc = detour_settings_load_node(s, &f.doc, detour_yaml_root(&f), path, NULL,
                                 err, errlen);
  detour_yaml_file_free(&f);
  return rc;
}

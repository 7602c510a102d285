/*
 * manifest_load.c - reads a client manifest (clients/README.md) into an
 * mf_manifest. Every key is known or an error; every template names only
 * variables the runner fills (a typo such as {retry_sec} is an error at
 * load time, with file:line:col, never an empty value at run time).
 */
#define _GNU_SOURCE /* strdup */
#include <errno.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "detour/detour_config.h"
#include "detour/scenario.h"
#include "manifest.h"

const char *const detour__scn_manifest_vars[] = {
    "dir",           "manifest_dir",  "port",
    "servers",       "server0",       "backups",
    "host0",         "port0",         "hostname",
    "server_port",   "nservers",      "retry_s",
    "retry_ms",      "max_attempts",  "connect_s",
    "connect_ms",    "greeting_s",    "greeting_ms",
    "ehlo_s",        "ehlo_ms",       "mail_s",
    "mail_ms",       "rcpt_s",        "rcpt_ms",
    "data_start_s",  "data_start_ms", "data_block_s",
    "data_block_ms", "final_dot_s",   "final_dot_ms",
    "quit_s",        "quit_ms",       "helo",
    "scenario",      "peers",         "ca_file",
    "cert_file",     "tls_name",      NULL};
const char *const detour__scn_manifest_submit_vars[] = {"from", "to", "to_list",
                                                        NULL};
const char *const detour__scn_manifest_server_vars[] = {
    "host", "port", "priority", "index", "name", NULL};

typedef struct {
  yaml_document_t *doc;
  const char *file;
  char *err;
  size_t errlen;
  mf_manifest *m;
  bool in_tls; /* checking a tls: template: its own names are not known */
  yaml_node_t *renders_at, *tls_at; /* where those keys are, for errors */
} ml;

static int fail(ml *l, const yaml_node_t *at, const char *path, const char *fmt,
                ...) __attribute__((format(printf, 4, 5)));
static int fail(ml *l, const yaml_node_t *at, const char *path, const char *fmt,
                ...) {
  char what[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  return detour_yaml_error(l->err, l->errlen, l->file, at, path, what);
}

static yaml_node_t *node(ml *l, int id) {
  return yaml_document_get_node(l->doc, id);
}

static const char *scalar(const yaml_node_t *n) {
  return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value
                                          : NULL;
}

static bool in_list(const char *const *list, const char *w, size_t n) {
  for (size_t i = 0; list && list[i]; i++)
    if (strlen(list[i]) == n && !strncmp(list[i], w, n))
      return true;
  return false;
}

/* A variable of the manifest's tls: section? */
static bool tls_var(const mf_manifest *m, const char *w, size_t n) {
  for (size_t i = 0; i < m->ntls; i++)
    if (strlen(m->tls[i].name) == n && !strncmp(m->tls[i].name, w, n))
      return true;
  return false;
}

/* Every {name} of t is a known variable ({{ and }} are literal braces). */
static int check_template(ml *l, yaml_node_t *at, const char *path,
                          const char *t, const char *const *extra) {
  for (const char *p = t; p && *p; p++) {
    if (p[0] == '{' && p[1] == '{') {
      p++;
      continue;
    }
    if (*p != '{')
      continue;
    const char *end = strchr(p, '}');
    if (!end)
      return fail(l, at, path, "'{' without '}' (write {{ for a brace)");
    size_t n = (size_t)(end - p - 1);
    static const char *const lists[] = {"servers", "server0", "backups", NULL};
    if (l->in_tls && in_list(lists, p + 1, n))
      return fail(l, at, path,
                  "a tls: text cannot name {%.*s} (the list's format may "
                  "name a tls: variable instead)",
                  (int)n, p + 1);
    if (!in_list(detour__scn_manifest_vars, p + 1, n) &&
        !in_list(extra, p + 1, n) && !(!l->in_tls && tls_var(l->m, p + 1, n)))
      return fail(l, at, path,
                  "unknown variable {%.*s} (clients/README.md lists them)",
                  (int)n, p + 1);
    p = end;
  }
  return 0;
}

static int want_str(ml *l, yaml_node_t *n, const char *path, char **out,
                    const char *const *extra) {
  const char *s = scalar(n);
  if (!s)
    return fail(l, n, path, "expected a string");
  if (check_template(l, n, path, s, extra) < 0)
    return DETOUR_EPARSE;
  free(*out);
  *out = strdup(s);
  return *out ? 0 : DETOUR_ENOMEM;
}

static int want_bool(ml *l, yaml_node_t *n, const char *path, bool *out) {
  const char *s = scalar(n);
  if (s && (!strcmp(s, "true") || !strcmp(s, "yes")))
    *out = true;
  else if (s && (!strcmp(s, "false") || !strcmp(s, "no")))
    *out = false;
  else
    return fail(l, n, path, "expected true or false");
  return 0;
}

static int want_time(ml *l, yaml_node_t *n, const char *path, detour_ms *out) {
  const char *s = scalar(n);
  if (!s || detour_scenario_parse_offset(s, out) < 0 || *out <= 0)
    return fail(l, n, path, "expected a time like 10s or 500ms, got '%s'",
                s ? s : "a collection");
  return 0;
}

static int add(mf_list *L, const char *s) {
  char **g = realloc(L->v, (L->n + 1) * sizeof *g);
  if (!g)
    return DETOUR_ENOMEM;
  L->v = g;
  return (L->v[L->n] = strdup(s)) ? (int)(++L->n, 0) : DETOUR_ENOMEM;
}

/* A string or a list of strings (templates). */
static int want_list(ml *l, yaml_node_t *n, const char *path, mf_list *out) {
  if (n->type == YAML_SCALAR_NODE)
    return check_template(l, n, path, scalar(n), NULL) < 0
               ? DETOUR_EPARSE
               : add(out, scalar(n));
  if (n->type != YAML_SEQUENCE_NODE)
    return fail(l, n, path, "expected a string or a list of strings");
  size_t i = 0;
  for (yaml_node_item_t *it = n->data.sequence.items.start;
       it < n->data.sequence.items.top; it++, i++) {
    char sub[256];
    snprintf(sub, sizeof sub, "%s[%zu]", path, i);
    yaml_node_t *e = node(l, *it);
    if (!scalar(e))
      return fail(l, e, sub, "expected a string");
    if (check_template(l, e, sub, scalar(e), NULL) < 0)
      return DETOUR_EPARSE;
    int rc = add(out, scalar(e));
    if (rc < 0)
      return rc;
  }
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Mappings walked through tables                                            */

typedef int (*key_fn)(ml *l, yaml_node_t *v, const char *path);
typedef struct {
  const char *key;
  key_fn fn;
} key_entry;

static int walk(ml *l, yaml_node_t *map, const char *path,
                const key_entry *table, size_t n) {
  if (map->type != YAML_MAPPING_NODE)
    return fail(l, map, path, "expected a mapping");
  for (yaml_node_pair_t *p = map->data.mapping.pairs.start;
       p < map->data.mapping.pairs.top; p++) {
    yaml_node_t *k = node(l, p->key);
    const char *key = scalar(k);
    char sub[256];
    snprintf(sub, sizeof sub, "%s%s%s", path, *path ? "." : "",
             key ? key : "?");
    if (!key)
      return fail(l, k, path, "keys must be plain strings");
    for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++)
      if (scalar(node(l, q->key)) && !strcmp(scalar(node(l, q->key)), key))
        return fail(l, k, sub, "given twice");
    size_t i = 0;
    while (i < n && strcmp(table[i].key, key) != 0)
      i++;
    if (i == n) {
      char list[512] = "";
      for (size_t j = 0; j < n; j++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s",
                 j ? ", " : "", table[j].key);
      return fail(l, k, sub, "unknown key (expected one of: %s)", list);
    }
    int rc = table[i].fn(l, node(l, p->value), sub);
    if (rc < 0)
      return rc;
  }
  return 0;
}
#define WALK(l, map, path, t) walk(l, map, path, t, sizeof t / sizeof t[0])

#define STR(fn, field, extra)                                                  \
  static int fn(ml *l, yaml_node_t *v, const char *path) {                     \
    return want_str(l, v, path, &l->m->field, extra);                          \
  }
#define LIST(fn, field)                                                        \
  static int fn(ml *l, yaml_node_t *v, const char *path) {                     \
    return want_list(l, v, path, &l->m->field);                                \
  }
#define TIME(fn, field)                                                        \
  static int fn(ml *l, yaml_node_t *v, const char *path) {                     \
    return want_time(l, v, path, &l->m->field);                                \
  }

STR(on_name, name, NULL)
STR(on_description, description, NULL)
STR(on_version, version_cmd, NULL)
STR(on_format, srv_format, detour__scn_manifest_server_vars)
STR(on_separator, srv_separator, NULL)
STR(on_srv_name, srv_name, NULL)
STR(on_hint, req_hint, NULL)
STR(on_start_cmd, start_cmd, NULL)
STR(on_submit_cmd, submit_cmd, detour__scn_manifest_submit_vars)
STR(on_submit_smtp, submit_smtp, NULL)
STR(on_rcpt_params, rcpt_params, NULL)
STR(on_done_cmd, done_cmd, NULL)
STR(on_stop_cmd, stop_cmd, NULL)
STR(on_logs, logs, NULL)
LIST(on_req_files, req_files)
LIST(on_req_commands, req_commands)
LIST(on_users, users)
LIST(on_groups, groups)
LIST(on_tmpfs, tmpfs)
LIST(on_binds, binds)
LIST(on_overlays, overlays)
LIST(on_dirs, dirs)
LIST(on_done_paths, done_paths)
TIME(on_start_timeout, start_timeout)
TIME(on_submit_timeout, submit_timeout)
TIME(on_poll, poll)
TIME(on_stop_timeout, stop_timeout)

/* The scenario `client:` keys a manifest may claim to render. */
static const char *const renderable[] = {"servers",
                                         "retry",
                                         "retry.interval",
                                         "retry.max_attempts",
                                         "timeouts",
                                         "timeouts.connect",
                                         "timeouts.greeting",
                                         "timeouts.ehlo",
                                         "timeouts.mail",
                                         "timeouts.rcpt",
                                         "timeouts.data_start",
                                         "timeouts.data_block",
                                         "timeouts.final_dot",
                                         "timeouts.quit",
                                         "helo_name",
                                         "detour",
                                         "classify",
                                         "breaker",
                                         "race",
                                         "tls",
                                         "tls.required",
                                         "tls.verify",
                                         "tls.verify_name",
                                         "tls.pin",
                                         NULL};

static int on_renders(ml *l, yaml_node_t *v, const char *path) {
  mf_list keys = {0};
  l->renders_at = v;
  int rc = want_list(l, v, path, &keys);
  for (size_t i = 0; rc == 0 && i < keys.n; i++) {
    if (!in_list(renderable, keys.v[i], strlen(keys.v[i])))
      rc = fail(l, v, path,
                "'%s' is no scenario client key (one of: servers, "
                "retry, retry.interval, retry.max_attempts, "
                "timeouts, timeouts.NAME, helo_name, tls, tls.required, "
                "tls.verify, tls.verify_name, tls.pin, ...)",
                keys.v[i]);
    else
      snprintf(l->m->renders + strlen(l->m->renders),
               sizeof l->m->renders - strlen(l->m->renders), "%s%s",
               i ? " " : "", keys.v[i]);
  }
  for (size_t i = 0; i < keys.n; i++)
    free(keys.v[i]);
  free(keys.v);
  return rc;
}

static int on_placement(ml *l, yaml_node_t *v, const char *path) {
  const char *s = scalar(v);
  if (s && !strcmp(s, "ports"))
    l->m->placement = DETOUR_PLACE_PORTS;
  else if (s && !strcmp(s, "same_port"))
    l->m->placement = DETOUR_PLACE_SAME_PORT;
  else
    return fail(l, v, path, "expected ports or same_port");
  return 0;
}

static int on_servers(ml *l, yaml_node_t *v, const char *path) {
  static const key_entry t[] = {{"placement", on_placement},
                                {"format", on_format},
                                {"separator", on_separator},
                                {"name", on_srv_name}};
  return WALK(l, v, path, t);
}

static int on_root(ml *l, yaml_node_t *v, const char *path) {
  return want_bool(l, v, path, &l->m->req_root);
}

static int on_requires(ml *l, yaml_node_t *v, const char *path) {
  static const key_entry t[] = {{"files", on_req_files},
                                {"commands", on_req_commands},
                                {"root", on_root},
                                {"hint", on_hint}};
  return WALK(l, v, path, t);
}

static int on_env(ml *l, yaml_node_t *v, const char *path) {
  if (v->type != YAML_MAPPING_NODE)
    return fail(l, v, path, "expected a mapping of NAME: value");
  for (yaml_node_pair_t *p = v->data.mapping.pairs.start;
       p < v->data.mapping.pairs.top; p++) {
    const char *k = scalar(node(l, p->key)), *val = scalar(node(l, p->value));
    if (!k || !*k || strchr(k, '=') || !val)
      return fail(l, node(l, p->key), path,
                  "expected NAME: value (a variable name and a string)");
    char buf[4096];
    snprintf(buf, sizeof buf, "%s=%s", k, val);
    if (check_template(l, node(l, p->value), path, val, NULL) < 0)
      return DETOUR_EPARSE;
    int rc = add(&l->m->env, buf);
    if (rc < 0)
      return rc;
  }
  return 0;
}

static int on_isolation(ml *l, yaml_node_t *v, const char *path) {
  static const key_entry t[] = {{"users", on_users},
                                {"groups", on_groups},
                                {"tmpfs", on_tmpfs},
                                {"binds", on_binds},
                                {"overlays", on_overlays}};
  l->m->isolation = true;
  if (scalar(v)) /* `isolation: true` or `false` */
    return want_bool(l, v, path, &l->m->isolation);
  int rc = WALK(l, v, path, t);
  for (size_t i = 0; rc == 0 && i < l->m->binds.n; i++)
    if (!strchr(l->m->binds.v[i], ':'))
      rc = fail(l, v, path, "binds[%zu]: expected FROM:TO, got '%s'", i,
                l->m->binds.v[i]);
  return rc;
}

static int on_files(ml *l, yaml_node_t *v, const char *path) {
  if (v->type != YAML_MAPPING_NODE)
    return fail(l, v, path, "expected a mapping of PATH: text");
  for (yaml_node_pair_t *p = v->data.mapping.pairs.start;
       p < v->data.mapping.pairs.top; p++) {
    yaml_node_t *k = node(l, p->key), *val = node(l, p->value);
    if (!scalar(k) || !scalar(val) || scalar(k)[0] == '/' ||
        strstr(scalar(k), ".."))
      return fail(l, k, path,
                  "expected PATH: text, PATH relative to {dir} without '..'");
    char sub[256];
    snprintf(sub, sizeof sub, "%s.%s", path, scalar(k));
    if (check_template(l, k, sub, scalar(k), NULL) < 0 ||
        check_template(l, val, sub, scalar(val), NULL) < 0)
      return DETOUR_EPARSE;
    mf_file *g = realloc(l->m->files, (l->m->nfiles + 1) * sizeof *g);
    if (!g)
      return DETOUR_ENOMEM;
    l->m->files = g;
    g[l->m->nfiles].path = strdup(scalar(k));
    g[l->m->nfiles].text = strdup(scalar(val));
    l->m->nfiles++;
    if (!g[l->m->nfiles - 1].path || !g[l->m->nfiles - 1].text)
      return DETOUR_ENOMEM;
  }
  return 0;
}

static int ready_kind(ml *l, yaml_node_t *v, const char *path, mf_ready k) {
  l->m->ready = k;
  return want_str(l, v, path, &l->m->ready_arg, NULL);
}
static int on_ready_port(ml *l, yaml_node_t *v, const char *path) {
  return ready_kind(l, v, path, MF_READY_PORT);
}
static int on_ready_file(ml *l, yaml_node_t *v, const char *path) {
  return ready_kind(l, v, path, MF_READY_FILE);
}
static int on_ready_cmd(ml *l, yaml_node_t *v, const char *path) {
  return ready_kind(l, v, path, MF_READY_CMD);
}

static int on_ready(ml *l, yaml_node_t *v, const char *path) {
  static const key_entry t[] = {{"port", on_ready_port},
                                {"file", on_ready_file},
                                {"command", on_ready_cmd}};
  int rc = WALK(l, v, path, t);
  if (rc == 0 && v->data.mapping.pairs.top - v->data.mapping.pairs.start != 1)
    return fail(l, v, path, "expected one of port, file or command");
  return rc;
}

static int on_start(ml *l, yaml_node_t *v, const char *path) {
  static const key_entry t[] = {{"command", on_start_cmd},
                                {"ready", on_ready},
                                {"timeout", on_start_timeout}};
  if (scalar(v))
    return on_start_cmd(l, v, path);
  return WALK(l, v, path, t);
}

static int on_submit(ml *l, yaml_node_t *v, const char *path) {
  static const key_entry t[] = {{"command", on_submit_cmd},
                                {"smtp", on_submit_smtp},
                                {"rcpt_params", on_rcpt_params},
                                {"timeout", on_submit_timeout}};
  int rc = scalar(v) ? on_submit_cmd(l, v, path) : WALK(l, v, path, t);
  if (rc == 0 && !l->m->submit_cmd == !l->m->submit_smtp)
    return fail(l, v, path, "expected exactly one of command or smtp");
  return rc;
}

static int on_sync(ml *l, yaml_node_t *v, const char *path) {
  bool sync = false;
  int rc = want_bool(l, v, path, &sync);
  if (rc == 0 && !sync)
    return fail(l, v, path,
                "sync: false says nothing; use queue_empty or "
                "command");
  l->m->done = MF_DONE_SYNC;
  return rc;
}
static int on_queue_empty(ml *l, yaml_node_t *v, const char *path) {
  l->m->done = MF_DONE_QUEUE;
  return on_done_paths(l, v, path);
}
static int on_done_command(ml *l, yaml_node_t *v, const char *path) {
  l->m->done = MF_DONE_CMD;
  return on_done_cmd(l, v, path);
}

static int on_done(ml *l, yaml_node_t *v, const char *path) {
  static const key_entry t[] = {{"sync", on_sync},
                                {"queue_empty", on_queue_empty},
                                {"command", on_done_command},
                                {"poll", on_poll}};
  const char *s = scalar(v);
  if (s && !strcmp(s, "sync")) {
    l->m->done = MF_DONE_SYNC;
    return 0;
  }
  return WALK(l, v, path, t);
}

static int on_stop(ml *l, yaml_node_t *v, const char *path) {
  static const key_entry t[] = {{"command", on_stop_cmd},
                                {"timeout", on_stop_timeout}};
  return scalar(v) ? on_stop_cmd(l, v, path) : WALK(l, v, path, t);
}

/* ------------------------------------------------------------------------ */
/* tls: the variables whose text depends on whether a run asks for TLS       */

static bool var_name_ok(const char *k) {
  if (!*k)
    return false;
  for (const char *p = k; *p; p++)
    if (!(*p == '_' || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')))
      return false;
  return true;
}

static int tls_text(ml *l, yaml_node_t *v, const char *path, char **out) {
  if (!scalar(v))
    return fail(l, v, path, "expected a string");
  l->in_tls = true;
  int rc = check_template(l, v, path, scalar(v), NULL);
  l->in_tls = false;
  if (rc < 0)
    return DETOUR_EPARSE;
  free(*out);
  *out = strdup(scalar(v));
  return *out ? 0 : DETOUR_ENOMEM;
}

/* NAME: text (TLS runs; "" otherwise) or NAME: {on: text, off: text}. */
static int tls_entry(ml *l, yaml_node_t *k, yaml_node_t *v, const char *path,
                     mf_tlsvar *t) {
  const char *name = scalar(k);
  if (!name || !var_name_ok(name))
    return fail(l, k, path,
                "a variable name of lower-case letters, digits and '_'");
  size_t n = strlen(name);
  if (in_list(detour__scn_manifest_vars, name, n) ||
      in_list(detour__scn_manifest_submit_vars, name, n) ||
      in_list(detour__scn_manifest_server_vars, name, n))
    return fail(l, k, path, "{%s} is a variable of the runner's", name);
  if (tls_var(l->m, name, n))
    return fail(l, k, path, "given twice");
  if (!(t->name = strdup(name)))
    return DETOUR_ENOMEM;
  if (v->type != YAML_MAPPING_NODE) {
    int rc = tls_text(l, v, path, &t->on);
    return rc < 0 ? rc : (t->off = strdup("")) ? 0 : DETOUR_ENOMEM;
  }
  for (yaml_node_pair_t *p = v->data.mapping.pairs.start;
       p < v->data.mapping.pairs.top; p++) {
    const char *key = scalar(node(l, p->key));
    char sub[256];
    snprintf(sub, sizeof sub, "%s.%s", path, key ? key : "?");
    char **dst = key && !strcmp(key, "on")    ? &t->on
                 : key && !strcmp(key, "off") ? &t->off
                                              : NULL;
    if (!dst)
      return fail(l, node(l, p->key), sub, "unknown key (expected on or off)");
    if (*dst)
      return fail(l, node(l, p->key), sub, "given twice");
    int rc = tls_text(l, node(l, p->value), sub, dst);
    if (rc < 0)
      return rc;
  }
  if (!t->on)
    return fail(l, v, path, "'on' is required (the text of a TLS run)");
  return t->off || (t->off = strdup("")) ? 0 : DETOUR_ENOMEM;
}

static int on_tls(ml *l, yaml_node_t *v, const char *path) {
  if (v->type != YAML_MAPPING_NODE ||
      v->data.mapping.pairs.top == v->data.mapping.pairs.start)
    return fail(l, v, path, "expected a mapping of NAME: text");
  l->tls_at = v;
  if (v->data.mapping.pairs.top - v->data.mapping.pairs.start > 24)
    return fail(l, v, path, "at most 24 variables");
  for (yaml_node_pair_t *p = v->data.mapping.pairs.start;
       p < v->data.mapping.pairs.top; p++) {
    yaml_node_t *k = node(l, p->key);
    char sub[256];
    snprintf(sub, sizeof sub, "%s.%s", path, scalar(k) ? scalar(k) : "?");
    mf_tlsvar *g = realloc(l->m->tls, (l->m->ntls + 1) * sizeof *g);
    if (!g)
      return DETOUR_ENOMEM;
    l->m->tls = g;
    mf_tlsvar *t = &g[l->m->ntls];
    *t = (mf_tlsvar){0};
    int rc = tls_entry(l, k, node(l, p->value), sub, t);
    l->m->ntls++; /* freed with the manifest, also when half made */
    if (rc < 0)
      return rc;
  }
  return 0;
}

/* Read first, so that templates anywhere may name its variables. */
static int tls_first(ml *l, yaml_node_t *root) {
  if (!root || root->type != YAML_MAPPING_NODE)
    return 0;
  for (yaml_node_pair_t *p = root->data.mapping.pairs.start;
       p < root->data.mapping.pairs.top; p++) {
    const char *key = scalar(node(l, p->key));
    if (key && !strcmp(key, "tls"))
      return on_tls(l, node(l, p->value), "tls");
  }
  return 0;
}

static int on_tls_read(ml *l, yaml_node_t *v, const char *path) {
  (void)l, (void)v, (void)path; /* tls_first read it */
  return 0;
}

/* A TLS policy is claimed and rendered together. */
static int check_tls(ml *l, yaml_node_t *root) {
  const char *r = l->m->renders;
  bool claims = false;
  for (const char *p = r; *p;) {
    size_t k = strcspn(p, " ");
    claims |= k >= 3 && !strncmp(p, "tls", 3) && (k == 3 || p[3] == '.');
    p += k + (p[k] == ' ');
  }
  bool required = false;
  for (const char *p = r; *p;) {
    size_t k = strcspn(p, " ");
    required |= (k == 3 && !strncmp(p, "tls", 3)) ||
                (k == 12 && !strncmp(p, "tls.required", 12));
    p += k + (p[k] == ' ');
  }
  if (claims && !l->m->ntls)
    return fail(l, l->renders_at ? l->renders_at : root, "renders",
                "a tls key is claimed but there is no tls: section to render "
                "it");
  if (l->m->ntls && !required)
    return fail(l, l->tls_at ? l->tls_at : root, "tls",
                "a tls: section needs tls.required (or tls) in renders");
  return 0;
}

static int read_root(ml *l, yaml_node_t *root) {
  static const key_entry t[] = {
      {"name", on_name},       {"description", on_description},
      {"version", on_version}, {"renders", on_renders},
      {"servers", on_servers}, {"requires", on_requires},
      {"env", on_env},         {"isolation", on_isolation},
      {"dirs", on_dirs},       {"files", on_files},
      {"start", on_start},     {"submit", on_submit},
      {"done", on_done},       {"stop", on_stop},
      {"logs", on_logs},       {"tls", on_tls_read}};
  if (!root)
    return fail(l, NULL, NULL, "empty manifest");
  int rc = tls_first(l, root);
  if (rc == 0)
    rc = WALK(l, root, "", t);
  if (rc < 0)
    return rc;
  const char *missing = !l->m->name                               ? "name"
                        : !l->m->renders[0]                       ? "renders"
                        : !l->m->submit_cmd && !l->m->submit_smtp ? "submit"
                                                                  : NULL;
  if (missing)
    return fail(l, root, missing, "required");
  for (const char *p = l->m->name; *p; p++)
    if (!(*p == '-' || *p == '_' || *p == '.' || (*p >= 'a' && *p <= 'z') ||
          (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')))
      return fail(l, root, "name", "letters, digits, '-', '_', '.' only");
  if ((rc = check_tls(l, root)) < 0)
    return rc;
  if (l->m->ready && !l->m->start_cmd)
    return fail(l, root, "start", "a readiness check needs a command");
  if (l->m->placement == DETOUR_PLACE_SAME_PORT && !l->m->isolation)
    return fail(l, root, "servers.placement",
                "same_port needs isolation (the name is made to resolve in "
                "a private /etc/hosts)");
  return 0;
}

static void defaults(mf_manifest *m) {
  m->start_timeout = 10000;
  m->submit_timeout = 60000;
  m->poll = 100;
  m->stop_timeout = 10000;
}

static int fill_strings(mf_manifest *m, const char *path) {
  /* absolute: commands run in {dir}, not where detour was started */
  char *abs = realpath(path, NULL);
  m->file = strdup(path);
  m->manifest_dir = abs ? strdup(dirname(abs)) : NULL;
  free(abs);
  if (!m->srv_format)
    m->srv_format = strdup("{host}:{port}");
  if (!m->srv_separator)
    m->srv_separator = strdup(",");
  if (!m->srv_name)
    m->srv_name = strdup("detour-servers.test");
  return m->file && m->manifest_dir && m->srv_format && m->srv_separator &&
                 m->srv_name
             ? 0
             : DETOUR_ENOMEM;
}

int detour__scn_manifest_load(const char *path, mf_manifest **out, char *err,
                              size_t errlen) {
  *out = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return DETOUR_EIO;
  }
  mf_manifest *m = calloc(1, sizeof *m);
  yaml_parser_t p;
  yaml_document_t doc;
  if (!m || !yaml_parser_initialize(&p)) {
    fclose(f);
    free(m);
    return DETOUR_ENOMEM;
  }
  defaults(m);
  yaml_parser_set_input_file(&p, f);
  int rc;
  if (!yaml_parser_load(&p, &doc)) {
    snprintf(err, errlen, "%s:%lu:%lu: %s", path,
             (unsigned long)p.problem_mark.line + 1,
             (unsigned long)p.problem_mark.column + 1,
             p.problem ? p.problem : "YAML syntax error");
    rc = DETOUR_EPARSE;
  } else {
    ml l = {&doc, path, err, errlen, m, false, NULL, NULL};
    rc = read_root(&l, yaml_document_get_root_node(&doc));
    yaml_document_delete(&doc);
  }
  yaml_parser_delete(&p);
  fclose(f);
  if (rc == 0)
    rc = fill_strings(m, path);
  if (rc < 0) {
    if (rc == DETOUR_ENOMEM)
      snprintf(err, errlen, "%s: out of memory", path);
    detour__scn_manifest_free(m);
    return rc;
  }
  *out = m;
  return 0;
}

static void free_list(mf_list *L) {
  for (size_t i = 0; i < L->n; i++)
    free(L->v[i]);
  free(L->v);
}

void detour__scn_manifest_free(mf_manifest *m) {
  if (!m)
    return;
  char *strs[] = {m->file,          m->manifest_dir, m->name,
                  m->description,   m->version_cmd,  m->srv_format,
                  m->srv_separator, m->srv_name,     m->req_hint,
                  m->start_cmd,     m->ready_arg,    m->submit_cmd,
                  m->submit_smtp,   m->rcpt_params,  m->done_cmd,
                  m->stop_cmd,      m->logs};
  for (size_t i = 0; i < sizeof strs / sizeof *strs; i++)
    free(strs[i]);
  mf_list *lists[] = {&m->req_files, &m->req_commands, &m->env,   &m->users,
                      &m->groups,    &m->tmpfs,        &m->binds, &m->overlays,
                      &m->dirs,      &m->done_paths};
  for (size_t i = 0; i < sizeof lists / sizeof *lists; i++)
    free_list(lists[i]);
  for (size_t i = 0; i < m->nfiles; i++) {
    free(m->files[i].path);
    free(m->files[i].text);
  }
  free(m->files);
  for (size_t i = 0; i < m->ntls; i++) {
    free(m->tls[i].name);
    free(m->tls[i].on);
    free(m->tls[i].off);
  }
  free(m->tls);
  free(m);
}

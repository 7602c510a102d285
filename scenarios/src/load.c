/*
 * load.c - scenario files (YAML, scenarios/README.md) into a
 * detour_scenario: the fake servers (their scripts go to the fake-server
 * loader), the client configuration (its `servers:` list is ours because
 * it names fake servers; every other key goes to the configuration loader),
 * the messages and the expectations.
 *
 * Every error is one line naming file:line:col (1-based) and the key, and
 * what was expected there. Unknown keys are errors: a typo in an
 * expectation must not make a scenario pass by checking nothing.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "adapter.h"
#include "scn_internal.h"

typedef struct {
  yaml_document_t *doc;
  const char *file;
  char *err;
  size_t errlen;
  detour_scenario *s;
} ld;

typedef int (*key_fn)(ld *l, yaml_node_t *v, const char *path);
typedef struct {
  const char *key;
  key_fn fn;
} key_entry;

static int fail(ld *l, const yaml_node_t *at, const char *path, const char *fmt,
                ...) __attribute__((format(printf, 4, 5)));

static int fail(ld *l, const yaml_node_t *at, const char *path, const char *fmt,
                ...) {
  char what[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  return detour_yaml_error(l->err, l->errlen, l->file, at, path, what);
}

static yaml_node_t *node(ld *l, int id) {
  return yaml_document_get_node(l->doc, id);
}

static const char *scalar(const yaml_node_t *n) {
  return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value
                                          : NULL;
}

/* The text of a scalar, or an error saying what was wanted. */
static const char *want_scalar(ld *l, yaml_node_t *n, const char *path,
                               const char *what) {
  const char *s = scalar(n);
  if (!s)
    fail(l, n, path, "expected %s, got a %s", what,
         n && n->type == YAML_MAPPING_NODE ? "mapping" : "sequence");
  return s;
}

static int want_map(ld *l, yaml_node_t *n, const char *path) {
  if (n->type != YAML_MAPPING_NODE)
    return fail(l, n, path, "expected a mapping");
  return 0;
}

static int want_seq(ld *l, yaml_node_t *n, const char *path) {
  if (n->type != YAML_SEQUENCE_NODE)
    return fail(l, n, path, "expected a list");
  return 0;
}

static int want_long(ld *l, yaml_node_t *n, const char *path, long min,
                     long max, long *out) {
  const char *s = want_scalar(l, n, path, "a number");
  if (!s)
    return DETOUR_EPARSE;
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (!*s || *end || errno || v < min || v > max)
    return fail(l, n, path, "expected a whole number %ld..%ld, got '%s'", min,
                max, s);
  *out = v;
  return 0;
}

static int want_offset(ld *l, yaml_node_t *n, const char *path,
                       detour_ms *out) {
  const char *s = want_scalar(l, n, path, "a time like 3m or 1.5s");
  if (!s)
    return DETOUR_EPARSE;
  if (detour_scenario_parse_offset(s, out) < 0)
    return fail(l, n, path,
                "expected a time like 0s, 3m, 3m20s or 500ms, "
                "got '%s'",
                s);
  return 0;
}

static int want_bool(ld *l, yaml_node_t *n, const char *path, bool *out) {
  const char *s = want_scalar(l, n, path, "true or false");
  if (!s)
    return DETOUR_EPARSE;
  if (!strcmp(s, "true") || !strcmp(s, "yes") || !strcmp(s, "on"))
    *out = true;
  else if (!strcmp(s, "false") || !strcmp(s, "no") || !strcmp(s, "off"))
    *out = false;
  else
    return fail(l, n, path, "expected true or false, got '%s'", s);
  return 0;
}

static int want_str(ld *l, yaml_node_t *n, const char *path, char **out) {
  const char *s = want_scalar(l, n, path, "a string");
  if (!s)
    return DETOUR_EPARSE;
  free(*out);
  *out = strdup(s);
  return *out ? 0 : DETOUR_ENOMEM;
}

/* A string or a list of strings, into a new array. */
static int want_strings(ld *l, yaml_node_t *n, const char *path, char ***out,
                        size_t *nout) {
  size_t cap = 0, cnt = 0;
  char **arr = NULL;
  int rc = 0;
  if (n->type == YAML_SCALAR_NODE) {
    rc = scn_grow(&arr, &cap, 0, sizeof *arr);
    if (rc == 0 && !(arr[cnt++] = strdup(scalar(n))))
      rc = DETOUR_ENOMEM;
  } else if (n->type == YAML_SEQUENCE_NODE) {
    for (yaml_node_item_t *it = n->data.sequence.items.start;
         rc == 0 && it < n->data.sequence.items.top; it++) {
      char sub[256];
      snprintf(sub, sizeof sub, "%s[%zu]", path, cnt);
      const char *s = want_scalar(l, node(l, *it), sub, "a string");
      if (!s)
        rc = DETOUR_EPARSE;
      else if ((rc = scn_grow(&arr, &cap, cnt, sizeof *arr)) == 0 &&
               !(arr[cnt++] = strdup(s)))
        rc = DETOUR_ENOMEM;
    }
  } else {
    rc = fail(l, n, path, "expected a string or a list of strings");
  }
  if (rc < 0) {
    for (size_t i = 0; i < cnt; i++)
      free(arr[i]);
    free(arr);
    return rc;
  }
  *out = arr;
  *nout = cnt;
  return 0;
}

/* Walk a mapping, dispatching each key through table; unknown keys and
 * repeated keys are errors. */
static int walk(ld *l, yaml_node_t *map, const char *path,
                const key_entry *table, size_t n) {
  if (want_map(l, map, path) < 0)
    return DETOUR_EPARSE;
  for (yaml_node_pair_t *p = map->data.mapping.pairs.start;
       p < map->data.mapping.pairs.top; p++) {
    yaml_node_t *k = node(l, p->key), *v = node(l, p->value);
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
    int rc = table[i].fn(l, v, sub);
    if (rc < 0)
      return rc;
  }
  return 0;
}

#define WALK(l, map, path, table)                                              \
  walk(l, map, path, table, sizeof table / sizeof table[0])

/* The index of fake server `name`, or -1. */
static int server_index(const detour_scenario *s, const char *name) {
  for (size_t i = 0; name && i < s->nservers; i++)
    if (strcmp(s->servers[i].name, name) == 0)
      return (int)i;
  return -1;
}

static int want_server(ld *l, yaml_node_t *n, const char *path, int *out) {
  const char *name = want_scalar(l, n, path, "a fake server's name");
  if (!name)
    return DETOUR_EPARSE;
  *out = server_index(l->s, name);
  if (*out < 0)
    return fail(l, n, path, "no fake server is named '%s'", name);
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Top-level scalars                                                         */

static int on_name(ld *l, yaml_node_t *v, const char *path) {
  return want_str(l, v, path, &l->s->name);
}

static int on_description(ld *l, yaml_node_t *v, const char *path) {
  return want_str(l, v, path, &l->s->description);
}

static int on_rules(ld *l, yaml_node_t *v, const char *path) {
  int rc = want_strings(l, v, path, &l->s->rules, &l->s->nrules);
  if (rc < 0)
    return rc;
  for (size_t i = 0; i < l->s->nrules; i++) {
    const char *r = l->s->rules[i];
    char *end;
    long k = r[0] == 'R' ? strtol(r + 1, &end, 10) : 0;
    if (k < 1 || k > 12 || *end)
      return fail(l, v, path, "expected SPEC rule ids R1 .. R12, got '%s'", r);
  }
  return 0;
}

static int on_realtime(ld *l, yaml_node_t *v, const char *path) {
  return want_bool(l, v, path, &l->s->realtime_ok);
}

static int on_limit(ld *l, yaml_node_t *v, const char *path) {
  l->s->limit_set = true;
  return want_offset(l, v, path, &l->s->limit);
}

/* ------------------------------------------------------------------------ */
/* Fake servers                                                              */

static bool map_has(ld *l, yaml_node_t *map, const char *key) {
  for (yaml_node_pair_t *p = map->data.mapping.pairs.start;
       p < map->data.mapping.pairs.top; p++)
    if (scalar(node(l, p->key)) && !strcmp(scalar(node(l, p->key)), key))
      return true;
  return false;
}

static yaml_node_t *map_get(ld *l, yaml_node_t *map, const char *key) {
  for (yaml_node_pair_t *p = map->data.mapping.pairs.start;
       p < map->data.mapping.pairs.top; p++)
    if (scalar(node(l, p->key)) && !strcmp(scalar(node(l, p->key)), key))
      return node(l, p->value);
  return NULL;
}

static bool good_name(const char *n) {
  if (!*n || strlen(n) > 32)
    return false;
  for (; *n; n++)
    if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                "0123456789_-",
                *n))
      return false;
  return true;
}

/* Each server gets its own loopback IP (127.0.0.2, .3, ...) unless the
 * script says otherwise, so log rows tell them apart by address too. */
static int read_server(ld *l, yaml_node_t *item, const char *path) {
  detour_scenario *s = l->s;
  if (want_map(l, item, path) < 0)
    return DETOUR_EPARSE;
  yaml_node_t *nn = map_get(l, item, "name");
  const char *name = nn ? want_scalar(l, nn, path, "a name") : NULL;
  if (!nn)
    return fail(l, item, path, "missing 'name' (every fake server needs one)");
  if (!name)
    return DETOUR_EPARSE;
  if (!good_name(name))
    return fail(l, nn, path,
                "a server name is 1-32 letters, digits, _ or -, "
                "got '%s'",
                name);
  if (server_index(s, name) >= 0)
    return fail(l, nn, path, "server name '%s' given twice", name);
  if (s->nservers >= SCN_MAX_SERVERS)
    return fail(l, item, path, "at most %d servers", SCN_MAX_SERVERS);
  detour_fake_script *sc =
      detour_fake_script_from_yaml(l->doc, item, l->file, l->err, l->errlen);
  if (!sc)
    return DETOUR_EPARSE;
  scn_server *sv = &s->servers[s->nservers];
  sv->script = sc;
  sv->name = strdup(name);
  s->nservers++;
  if (!sv->name)
    return DETOUR_ENOMEM;
  if (!map_has(l, item, "listen")) {
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.%zu:0", s->nservers + 1);
    if (detour_fake_script_set_listen(sc, addr) < 0)
      return DETOUR_ENOMEM;
  }
  return 0;
}

static int on_servers(ld *l, yaml_node_t *v, const char *path) {
  if (want_seq(l, v, path) < 0)
    return DETOUR_EPARSE;
  size_t i = 0;
  for (yaml_node_item_t *it = v->data.sequence.items.start;
       it < v->data.sequence.items.top; it++, i++) {
    char sub[64];
    snprintf(sub, sizeof sub, "servers[%zu]", i);
    int rc = read_server(l, node(l, *it), sub);
    if (rc < 0)
      return rc;
  }
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Messages                                                                  */

static scn_message *cur_msg(ld *l) { return &l->s->msgs[l->s->nmsgs - 1]; }

static int on_msg_from(ld *l, yaml_node_t *v, const char *path) {
  return want_str(l, v, path, &cur_msg(l)->from);
}

static int on_msg_to(ld *l, yaml_node_t *v, const char *path) {
  scn_message *m = cur_msg(l);
  if (m->to)
    return fail(l, v, path, "given twice");
  return want_strings(l, v, path, &m->to, &m->nto);
}

static int on_msg_body(ld *l, yaml_node_t *v, const char *path) {
  scn_message *m = cur_msg(l);
  const char *b = want_scalar(l, v, path, "the message text");
  if (!b)
    return DETOUR_EPARSE;
  free(m->body);
  m->body_len = v->data.scalar.length;
  m->body = scn_memdup(b, m->body_len);
  return m->body ? 0 : DETOUR_ENOMEM;
}

static int on_msg_override(ld *l, yaml_node_t *v, const char *path) {
  const char *o = want_scalar(l, v, path, "allow, deny or none");
  if (!o)
    return DETOUR_EPARSE;
  if (!strcmp(o, "allow"))
    cur_msg(l)->override = DETOUR_OVERRIDE_ALLOW;
  else if (!strcmp(o, "deny"))
    cur_msg(l)->override = DETOUR_OVERRIDE_DENY;
  else if (!strcmp(o, "none"))
    cur_msg(l)->override = DETOUR_OVERRIDE_NONE;
  else
    return fail(l, v, path, "expected allow, deny or none, got '%s'", o);
  return 0;
}

static int on_msg_at(ld *l, yaml_node_t *v, const char *path) {
  return want_offset(l, v, path, &cur_msg(l)->at);
}

/* A body of N bytes ("Subject" line, then 78-byte lines of letters): a
 * message big enough to be mid-DATA for a while on a slow or long link. */
static int on_msg_body_bytes(ld *l, yaml_node_t *v, const char *path) {
  long n = 0;
  if (want_long(l, v, path, 32, 16L << 20, &n) < 0)
    return DETOUR_EPARSE;
  scn_message *m = cur_msg(l);
  char *b = malloc((size_t)n + 1);
  if (!b)
    return DETOUR_ENOMEM;
  const char head[] = "Subject: detour scenario\n\n";
  memcpy(b, head, sizeof head - 1);
  for (long i = (long)sizeof head - 1; i < n; i++)
    b[i] = (i + 1) % 78 == 0 || i == n - 1 ? '\n' : (char)('a' + i % 26);
  b[n] = '\0';
  free(m->body);
  m->body = b;
  m->body_len = (size_t)n;
  return 0;
}

static const key_entry msg_keys[] = {
    {"from", on_msg_from}, {"to", on_msg_to},
    {"body", on_msg_body}, {"override", on_msg_override},
    {"at", on_msg_at},     {"body_bytes", on_msg_body_bytes},
};

static const char default_body[] = "Subject: detour scenario\n\nhello\n";

static int on_messages(ld *l, yaml_node_t *v, const char *path) {
  if (want_seq(l, v, path) < 0)
    return DETOUR_EPARSE;
  size_t i = 0;
  for (yaml_node_item_t *it = v->data.sequence.items.start;
       it < v->data.sequence.items.top; it++, i++) {
    char sub[64];
    snprintf(sub, sizeof sub, "messages[%zu]", i);
    yaml_node_t *item = node(l, *it);
    if (l->s->nmsgs >= SCN_MAX_MESSAGES)
      return fail(l, item, sub, "at most %d messages", SCN_MAX_MESSAGES);
    l->s->nmsgs++;
    int rc = WALK(l, item, sub, msg_keys);
    if (rc < 0)
      return rc;
    scn_message *m = cur_msg(l);
    if (!m->from || !m->to || m->nto == 0)
      return fail(l, item, sub, "a message needs 'from' and 'to'");
    if (!m->body) {
      m->body_len = sizeof default_body - 1;
      if (!(m->body = scn_memdup(default_body, m->body_len)))
        return DETOUR_ENOMEM;
    }
  }
  return 0;
}

/* ------------------------------------------------------------------------ */
/* The client: our server list, the rest to the configuration loader         */

static int read_client_server(ld *l, yaml_node_t *item, const char *path,
                              int prev_priority) {
  detour_scenario *s = l->s;
  if (s->nclient_servers >= DETOUR_MAX_SERVERS)
    return fail(l, item, path, "at most %d servers", DETOUR_MAX_SERVERS);
  scn_client_server *cs = &s->client_servers[s->nclient_servers];
  cs->fake = -1;
  cs->priority = prev_priority + 1;
  yaml_node_t *what = item;
  if (item->type == YAML_MAPPING_NODE) {
    what = map_get(l, item, "server");
    if (!what)
      what = map_get(l, item, "host");
    if (!what)
      return fail(l, item, path,
                  "missing 'server' (a fake server's name) "
                  "or 'host'");
    for (yaml_node_pair_t *p = item->data.mapping.pairs.start;
         p < item->data.mapping.pairs.top; p++) {
      const char *k = scalar(node(l, p->key));
      long v = 0;
      if (k && !strcmp(k, "priority")) {
        if (want_long(l, node(l, p->value), path, 1, 1000, &v) < 0)
          return DETOUR_EPARSE;
        cs->priority = (int)v;
      } else if (k && !strcmp(k, "port")) {
        if (want_long(l, node(l, p->value), path, 1, 65535, &v) < 0)
          return DETOUR_EPARSE;
        cs->port = (uint16_t)v;
      } else if (!k || (strcmp(k, "server") && strcmp(k, "host"))) {
        return fail(l, node(l, p->key), path,
                    "unknown key '%s' (expected server, host, port, "
                    "priority)",
                    k ? k : "?");
      }
    }
  }
  const char *name = want_scalar(l, what, path, "a fake server's name");
  if (!name)
    return DETOUR_EPARSE;
  cs->fake = server_index(s, name);
  /* A bare word is a fake server's name: a typo must not turn into a
   * DNS look-up. Literal hosts have a dot or a port. */
  if (cs->fake < 0 && what == item && !strpbrk(name, ".:"))
    return fail(l, what, path,
                "no fake server is named '%s' (a literal "
                "address needs a dot or a port)",
                name);
  if (cs->fake < 0) {
    uint16_t port = 25;
    if (detour_parse_server_address(name, cs->host, sizeof cs->host, &port) < 0)
      return fail(l, what, path,
                  "'%s' is neither a fake server nor an "
                  "address",
                  name);
    if (!cs->port)
      cs->port = port;
  }
  s->nclient_servers++;
  return 0;
}

static int read_client_servers(ld *l, yaml_node_t *v) {
  if (want_seq(l, v, "client.servers") < 0)
    return DETOUR_EPARSE;
  size_t i = 0;
  int prev = 0;
  for (yaml_node_item_t *it = v->data.sequence.items.start;
       it < v->data.sequence.items.top; it++, i++) {
    char sub[64];
    snprintf(sub, sizeof sub, "client.servers[%zu]", i);
    int rc = read_client_server(l, node(l, *it), sub, prev);
    if (rc < 0)
      return rc;
    prev = l->s->client_servers[l->s->nclient_servers - 1].priority;
  }
  return 0;
}

/* Runs last: it adds a node to the document, which may move every
 * yaml_node_t, so nobody may hold a node pointer across it. */
/* Record key for the adapter check; retry and timeouts by sub-key, as a
 * client may render the interval and not the attempt limit. */
static void add_client_key(ld *l, const char *k, yaml_node_t *v) {
  char *keys = l->s->client_keys;
  size_t cap = sizeof l->s->client_keys;
  bool split = (!strcmp(k, "retry") || !strcmp(k, "timeouts")) &&
               v->type == YAML_MAPPING_NODE;
  if (!split) {
    snprintf(keys + strlen(keys), cap - strlen(keys), "%s%s", *keys ? " " : "",
             k);
    return;
  }
  for (yaml_node_pair_t *p = v->data.mapping.pairs.start;
       p < v->data.mapping.pairs.top; p++) {
    const char *sub = scalar(node(l, p->key));
    if (sub)
      snprintf(keys + strlen(keys), cap - strlen(keys), "%s%s.%s",
               *keys ? " " : "", k, sub);
  }
}

static int read_client(ld *l, int client_id) {
  yaml_node_t *c = node(l, client_id);
  if (want_map(l, c, "client") < 0)
    return DETOUR_EPARSE;
  size_t npairs =
      (size_t)(c->data.mapping.pairs.top - c->data.mapping.pairs.start);
  yaml_node_pair_t *pairs = malloc((npairs + 1) * sizeof *pairs);
  if (!pairs)
    return DETOUR_ENOMEM;
  memcpy(pairs, c->data.mapping.pairs.start, npairs * sizeof *pairs);
  int rc = 0, servers_id = 0;
  for (size_t i = 0; i < npairs; i++) {
    const char *k = scalar(node(l, pairs[i].key));
    if (k && !strcmp(k, "servers"))
      servers_id = pairs[i].value;
    if (k) /* an external client's adapter checks what it can render */
      add_client_key(l, k, node(l, pairs[i].value));
  }
  if (servers_id)
    rc = read_client_servers(l, node(l, servers_id));
  int rest = rc < 0 ? 0
                    : yaml_document_add_mapping(l->doc, NULL,
                                                YAML_BLOCK_MAPPING_STYLE);
  if (rc == 0 && !rest)
    rc = DETOUR_ENOMEM;
  for (size_t i = 0; rc == 0 && i < npairs; i++)
    if (pairs[i].value != servers_id &&
        !yaml_document_append_mapping_pair(l->doc, rest, pairs[i].key,
                                           pairs[i].value))
      rc = DETOUR_ENOMEM;
  free(pairs);
  if (rc < 0)
    return rc;
  detour_settings_free(&l->s->settings);
  return detour_settings_load_node(&l->s->settings, l->doc, node(l, rest),
                                   l->file, "client", l->err, l->errlen);
}

/* ------------------------------------------------------------------------ */
/* Expectations                                                              */

static scn_expect *X(ld *l) { return &l->s->expect; }

static int outcome_from(const char *s, int *out) {
  for (int i = 0; i <= DETOUR_RCPT_DEFERRED; i++)
    if (!strcmp(s, detour_rcpt_outcome_name((detour_rcpt_outcome)i))) {
      *out = i;
      return 0;
    }
  return DETOUR_EPARSE;
}

static int want_outcome(ld *l, yaml_node_t *v, const char *path, int *out) {
  const char *s = want_scalar(l, v, path, "delivered, aborted or deferred");
  if (!s)
    return DETOUR_EPARSE;
  if (outcome_from(s, out) < 0)
    return fail(l, v, path,
                "expected delivered, aborted or deferred, got "
                "'%s'",
                s);
  return 0;
}

static int on_x_status(ld *l, yaml_node_t *v, const char *path) {
  scn_expect *x = X(l);
  if (v->type == YAML_SCALAR_NODE) {
    int st;
    if (want_outcome(l, v, path, &st) < 0)
      return DETOUR_EPARSE;
    for (size_t i = 0; i < SCN_MAX_MESSAGES; i++)
      x->status[i] = st;
    x->nstatus = SCN_MAX_MESSAGES; /* trimmed to the messages at the end */
    return 0;
  }
  if (want_seq(l, v, path) < 0)
    return DETOUR_EPARSE;
  x->nstatus = 0;
  for (yaml_node_item_t *it = v->data.sequence.items.start;
       it < v->data.sequence.items.top; it++) {
    if (x->nstatus >= SCN_MAX_MESSAGES)
      return fail(l, v, path, "too many entries");
    if (want_outcome(l, node(l, *it), path, &x->status[x->nstatus++]) < 0)
      return DETOUR_EPARSE;
  }
  return 0;
}

static int on_x_exit(ld *l, yaml_node_t *v, const char *path) {
  long e = 0;
  if (want_long(l, v, path, 0, 255, &e) < 0)
    return DETOUR_EPARSE;
  X(l)->exit_code = (int)e;
  return 0;
}

/* recipients: { addr: delivered } or { addr: { outcome, server, message } } */
static int read_rcpt_expect(ld *l, const char *addr, yaml_node_t *v,
                            const char *path) {
  scn_expect *x = X(l);
  size_t cap = x->nrcpts; /* grown one at a time: few entries */
  if (scn_grow(&x->rcpts, &cap, x->nrcpts, sizeof *x->rcpts) < 0)
    return DETOUR_ENOMEM;
  scn_rcpt_expect *r = &x->rcpts[x->nrcpts++];
  memset(r, 0, sizeof *r);
  r->message = -1;
  r->outcome = -1;
  if (!(r->recipient = strdup(addr)))
    return DETOUR_ENOMEM;
  if (v->type == YAML_SCALAR_NODE)
    return want_outcome(l, v, path, &r->outcome);
  if (want_map(l, v, path) < 0)
    return DETOUR_EPARSE;
  for (yaml_node_pair_t *p = v->data.mapping.pairs.start;
       p < v->data.mapping.pairs.top; p++) {
    const char *k = scalar(node(l, p->key));
    yaml_node_t *val = node(l, p->value);
    char sub[300];
    snprintf(sub, sizeof sub, "%s.%s", path, k ? k : "?");
    long m = 0;
    int rc, idx;
    if (k && !strcmp(k, "outcome")) {
      rc = want_outcome(l, val, sub, &r->outcome);
    } else if (k && !strcmp(k, "server")) {
      const char *sv = want_scalar(l, val, sub, "a server name or none");
      rc = !sv                  ? DETOUR_EPARSE
           : strcmp(sv, "none") ? want_server(l, val, sub, &idx)
                                : 0;
      if (rc == 0 && !(r->server = strdup(sv)))
        rc = DETOUR_ENOMEM;
    } else if (k && !strcmp(k, "message")) {
      rc = want_long(l, val, sub, 0, SCN_MAX_MESSAGES - 1, &m);
      r->message = (int)m;
    } else {
      rc = fail(l, node(l, p->key), sub,
                "unknown key (expected one of: outcome, server, message)");
    }
    if (rc < 0)
      return rc;
  }
  return 0;
}

/* A mapping whose keys are names (what: "an address"): fn reads each
 * value with its name and its path ("expect.recipients.a@b"). */
typedef int (*entry_reader)(ld *l, const char *key, yaml_node_t *value,
                            const char *path);
static int for_each_entry(ld *l, yaml_node_t *v, const char *path,
                          const char *what, entry_reader fn) {
  if (want_map(l, v, path) < 0)
    return DETOUR_EPARSE;
  for (yaml_node_pair_t *p = v->data.mapping.pairs.start;
       p < v->data.mapping.pairs.top; p++) {
    const char *key = want_scalar(l, node(l, p->key), path, what);
    if (!key)
      return DETOUR_EPARSE;
    char sub[300];
    snprintf(sub, sizeof sub, "%s.%s", path, key);
    int rc = fn(l, key, node(l, p->value), sub);
    if (rc < 0)
      return rc;
  }
  return 0;
}

static int on_x_recipients(ld *l, yaml_node_t *v, const char *path) {
  return for_each_entry(l, v, path, "an address", read_rcpt_expect);
}

/* --- log rows --- */

static scn_row_expect *cur_row(ld *l) { return &X(l)->log[X(l)->nlog - 1]; }

static int on_row_t(ld *l, yaml_node_t *v, const char *path) {
  cur_row(l)->has_t = true;
  return want_offset(l, v, path, &cur_row(l)->t);
}
static int on_row_recipient(ld *l, yaml_node_t *v, const char *path) {
  return want_str(l, v, path, &cur_row(l)->recipient);
}
static int on_row_server(ld *l, yaml_node_t *v, const char *path) {
  return want_str(l, v, path, &cur_row(l)->server);
}
static int on_row_result(ld *l, yaml_node_t *v, const char *path) {
  return want_str(l, v, path, &cur_row(l)->result);
}
static int on_row_detail(ld *l, yaml_node_t *v, const char *path) {
  return want_str(l, v, path, &cur_row(l)->detail);
}
static int on_row_class(ld *l, yaml_node_t *v, const char *path) {
  const char *s = want_scalar(l, v, path, "a class");
  detour_class c;
  if (!s)
    return DETOUR_EPARSE;
  if (detour_class_from_name(s, &c) < 0)
    return fail(l, v, path,
                "expected CONNECT, TRANSIENT, SWITCH, ABORT or "
                "NONE, got '%s'",
                s);
  cur_row(l)->cls = (int)c;
  return 0;
}
static int on_row_attempt(ld *l, yaml_node_t *v, const char *path) {
  long a = 0;
  int rc = want_long(l, v, path, 1, 1000000, &a);
  cur_row(l)->attempt = (int)a;
  return rc;
}
static int on_row_message(ld *l, yaml_node_t *v, const char *path) {
  long a = 0;
  int rc = want_long(l, v, path, 0, SCN_MAX_MESSAGES - 1, &a);
  cur_row(l)->message = (int)a;
  return rc;
}
static int on_row_kind(ld *l, yaml_node_t *v, const char *path) {
  const char *s = want_scalar(l, v, path, "a row kind");
  if (!s)
    return DETOUR_EPARSE;
  for (int k = 0; k <= DETOUR_LOG_RACE; k++)
    if (!strcmp(s, detour_log_kind_name((detour_log_kind)k))) {
      cur_row(l)->kind = k;
      return 0;
    }
  return fail(l, v, path,
              "expected connect, smtp, warning, breaker or race, "
              "got '%s'",
              s);
}

static const key_entry row_keys[] = {
    {"t", on_row_t},           {"recipient", on_row_recipient},
    {"server", on_row_server}, {"result", on_row_result},
    {"class", on_row_class},   {"attempt", on_row_attempt},
    {"kind", on_row_kind},     {"message", on_row_message},
    {"detail", on_row_detail},
};

static int on_x_log(ld *l, yaml_node_t *v, const char *path) {
  scn_expect *x = X(l);
  if (want_seq(l, v, path) < 0)
    return DETOUR_EPARSE;
  x->has_log = true;
  size_t cap = 0, i = 0;
  for (yaml_node_item_t *it = v->data.sequence.items.start;
       it < v->data.sequence.items.top; it++, i++) {
    yaml_node_t *item = node(l, *it);
    char sub[64];
    snprintf(sub, sizeof sub, "%s[%zu]", path, i);
    if (scn_grow(&x->log, &cap, x->nlog, sizeof *x->log) < 0)
      return DETOUR_ENOMEM;
    scn_row_expect *r = &x->log[x->nlog++];
    r->cls = r->attempt = r->kind = r->message = -1;
    r->line = (int)item->start_mark.line + 1;
    r->col = (int)item->start_mark.column + 1;
    int rc = WALK(l, item, sub, row_keys);
    if (rc < 0)
      return rc;
  }
  return 0;
}

static int on_x_warnings(ld *l, yaml_node_t *v, const char *path) {
  X(l)->has_warnings = true;
  if (v->type == YAML_SEQUENCE_NODE &&
      v->data.sequence.items.start == v->data.sequence.items.top)
    return 0; /* [] : no warning at all */
  return want_strings(l, v, path, &X(l)->warnings, &X(l)->nwarnings);
}

/* Per-server mappings: { a: ..., b: ... } */
typedef int (*per_server_fn)(ld *l, scn_server_expect *se, yaml_node_t *v,
                             const char *path);

static int per_server(ld *l, yaml_node_t *v, const char *path,
                      per_server_fn fn) {
  if (want_map(l, v, path) < 0)
    return DETOUR_EPARSE;
  for (yaml_node_pair_t *p = v->data.mapping.pairs.start;
       p < v->data.mapping.pairs.top; p++) {
    int idx;
    const char *k = scalar(node(l, p->key));
    char sub[300];
    snprintf(sub, sizeof sub, "%s.%s", path, k ? k : "?");
    if (want_server(l, node(l, p->key), sub, &idx) < 0)
      return DETOUR_EPARSE;
    int rc = fn(l, &X(l)->servers[idx], node(l, p->value), sub);
    if (rc < 0)
      return rc;
  }
  return 0;
}

static int conns_fn(ld *l, scn_server_expect *se, yaml_node_t *v,
                    const char *path) {
  return want_long(l, v, path, 0, 1000000, &se->connections);
}

static int times_fn(ld *l, scn_server_expect *se, yaml_node_t *v,
                    const char *path) {
  if (want_seq(l, v, path) < 0)
    return DETOUR_EPARSE;
  se->has_connect_times = true;
  size_t cap = 0;
  for (yaml_node_item_t *it = v->data.sequence.items.start;
       it < v->data.sequence.items.top; it++) {
    if (scn_grow(&se->connect_times, &cap, se->nconnect_times,
                 sizeof *se->connect_times) < 0)
      return DETOUR_ENOMEM;
    if (want_offset(l, node(l, *it), path,
                    &se->connect_times[se->nconnect_times++]) < 0)
      return DETOUR_EPARSE;
  }
  return 0;
}

static int commands_fn(ld *l, scn_server_expect *se, yaml_node_t *v,
                       const char *path) {
  se->has_commands = true;
  if (v->type == YAML_SEQUENCE_NODE &&
      v->data.sequence.items.start == v->data.sequence.items.top)
    return 0;
  return want_strings(l, v, path, &se->commands, &se->ncommands);
}

static int read_received(ld *l, scn_received_expect *r, yaml_node_t *v,
                         const char *path) {
  r->complete = r->code = -1;
  if (want_map(l, v, path) < 0)
    return DETOUR_EPARSE;
  for (yaml_node_pair_t *p = v->data.mapping.pairs.start;
       p < v->data.mapping.pairs.top; p++) {
    const char *k = scalar(node(l, p->key));
    yaml_node_t *val = node(l, p->value);
    char sub[300];
    snprintf(sub, sizeof sub, "%s.%s", path, k ? k : "?");
    int rc;
    long code;
    bool b = false;
    if (k && !strcmp(k, "from")) {
      rc = want_str(l, val, sub, &r->from);
    } else if (k && !strcmp(k, "to")) {
      r->has_to = true;
      rc = want_strings(l, val, sub, &r->to, &r->nto);
    } else if (k && !strcmp(k, "body")) {
      rc = want_str(l, val, sub, &r->body);
      r->body_len = val->type == YAML_SCALAR_NODE ? val->data.scalar.length : 0;
      if (rc == 0) { /* keep NULs and exact length */
        free(r->body);
        r->body = scn_memdup(val->data.scalar.value, r->body_len);
        rc = r->body ? 0 : DETOUR_ENOMEM;
      }
    } else if (k && !strcmp(k, "complete")) {
      rc = want_bool(l, val, sub, &b);
      r->complete = b;
    } else if (k && !strcmp(k, "code")) {
      rc = want_long(l, val, sub, 0, 599, &code);
      r->code = (int)code;
    } else {
      rc = fail(l, node(l, p->key), sub,
                "unknown key (expected one of: "
                "from, to, body, complete, code)");
    }
    if (rc < 0)
      return rc;
  }
  return 0;
}

static int received_fn(ld *l, scn_server_expect *se, yaml_node_t *v,
                       const char *path) {
  if (want_seq(l, v, path) < 0)
    return DETOUR_EPARSE;
  se->has_received = true;
  size_t n =
      (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
  se->received = calloc(n ? n : 1, sizeof *se->received);
  if (!se->received)
    return DETOUR_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    char sub[320];
    snprintf(sub, sizeof sub, "%s[%zu]", path, i);
    se->nreceived++;
    int rc = read_received(l, &se->received[i],
                           node(l, v->data.sequence.items.start[i]), sub);
    if (rc < 0)
      return rc;
  }
  return 0;
}

static int on_x_connections(ld *l, yaml_node_t *v, const char *path) {
  return per_server(l, v, path, conns_fn);
}
static int on_x_connect_times(ld *l, yaml_node_t *v, const char *path) {
  return per_server(l, v, path, times_fn);
}
static int on_x_received(ld *l, yaml_node_t *v, const char *path) {
  return per_server(l, v, path, received_fn);
}
static int on_x_commands(ld *l, yaml_node_t *v, const char *path) {
  return per_server(l, v, path, commands_fn);
}

static int on_lat_max(ld *l, yaml_node_t *v, const char *path) {
  return want_offset(l, v, path, &X(l)->latency_max);
}
static int on_lat_min(ld *l, yaml_node_t *v, const char *path) {
  return want_offset(l, v, path, &X(l)->latency_min);
}
static const key_entry latency_keys[] = {{"max", on_lat_max},
                                         {"min", on_lat_min}};
static int on_x_latency(ld *l, yaml_node_t *v, const char *path) {
  return WALK(l, v, path, latency_keys);
}
static int on_x_tolerance(ld *l, yaml_node_t *v, const char *path) {
  return want_offset(l, v, path, &X(l)->tolerance);
}

static const key_entry expect_keys[] = {
    {"status", on_x_status},
    {"exit", on_x_exit},
    {"recipients", on_x_recipients},
    {"log", on_x_log},
    {"warnings", on_x_warnings},
    {"connections", on_x_connections},
    {"connect_times", on_x_connect_times},
    {"received", on_x_received},
    {"commands", on_x_commands},
    {"latency", on_x_latency},
    {"tolerance", on_x_tolerance},
};

static int on_expect(ld *l, yaml_node_t *v, const char *path) {
  return WALK(l, v, path, expect_keys);
}

/* ------------------------------------------------------------------------ */
/* The simulated network (`network:`, fakeservers/netsim)                    */

/* The link of `name`: "client" or a fake server's name. */
static detour_netsim_link *net_link(ld *l, const char *name) {
  if (!strcmp(name, "client"))
    return &l->s->net.client;
  int i = server_index(l->s, name);
  return i < 0 ? NULL : &l->s->net.servers[i];
}

/* "0.05" or "5%": a probability per packet and direction. */
static int parse_loss(const char *s, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (end == s || errno)
    return DETOUR_EPARSE;
  if (*end == '%') {
    v /= 100.0;
    end++;
  }
  if (*end || !(v >= 0.0 && v <= 1.0))
    return DETOUR_EPARSE;
  *out = v;
  return 0;
}

/* One link setting by name, shared by `links:` and the events. */
static int net_setting(detour_netsim_link *k, const char *key, const char *v) {
  if (!strcmp(key, "delay"))
    return detour_scenario_parse_offset(v, &k->delay_ms);
  if (!strcmp(key, "jitter"))
    return detour_scenario_parse_offset(v, &k->jitter_ms);
  if (!strcmp(key, "loss"))
    return parse_loss(v, &k->loss);
  if (!strcmp(key, "rate"))
    return detour_netsim_parse_rate(v, &k->rate_bps);
  return DETOUR_EINVAL;
}

static int read_link(ld *l, const char *name, yaml_node_t *v,
                     const char *path) {
  detour_netsim_link *k = net_link(l, name);
  if (!k)
    return fail(l, v, path,
                "no fake server is named '%s' (links are "
                "'client' or a fake server's name)",
                name);
  if (want_map(l, v, path) < 0)
    return DETOUR_EPARSE;
  for (yaml_node_pair_t *p = v->data.mapping.pairs.start;
       p < v->data.mapping.pairs.top; p++) {
    const char *key = scalar(node(l, p->key));
    char sub[300];
    snprintf(sub, sizeof sub, "%s.%s", path, key ? key : "?");
    const char *val = want_scalar(l, node(l, p->value), sub, "a value");
    if (!val)
      return DETOUR_EPARSE;
    int rc = net_setting(k, key ? key : "", val);
    if (rc == DETOUR_EINVAL)
      return fail(l, node(l, p->key), sub,
                  "unknown key (expected one of: "
                  "delay, jitter, loss, rate)");
    if (rc < 0)
      return fail(l, node(l, p->value), sub,
                  "expected a duration (200ms), a loss (0.05 or 5%%) or a "
                  "rate (10Mbps), got '%s'",
                  val);
  }
  return 0;
}

static int on_net_links(ld *l, yaml_node_t *v, const char *path) {
  return for_each_entry(l, v, path, "a link name", read_link);
}

/* "a down", "link a up", "b delay 150ms", "client loss 5%" into the
 * program's command "link <letter> ...". The value is checked here so a
 * typo fails at load, not in the middle of a run. */
static int net_action(ld *l, yaml_node_t *at, const char *path,
                      const char *text, scn_net_event *e) {
  char w[3][64] = {"", "", ""}, extra[8] = "";
  if (!strncmp(text, "link ", 5))
    text += 5;
  int n = sscanf(text, "%63s %63s %63s %7s", w[0], w[1], w[2], extra);
  const char *hint = "expected 'LINK down', 'LINK up' or 'LINK "
                     "delay|jitter|loss|rate VALUE' (LINK: client or a fake "
                     "server's name)";
  if (n < 2 || n > 3)
    return fail(l, at, path, "%s, got '%s'", hint, text);
  int idx =
      !strcmp(w[0], "client") ? DETOUR_NETSIM_CLIENT : server_index(l->s, w[0]);
  if (idx == -1 && strcmp(w[0], "client"))
    return fail(l, at, path, "no link named '%s' (%s)", w[0], hint);
  bool updown = !strcmp(w[1], "down") || !strcmp(w[1], "up");
  detour_netsim_link scratch = {0};
  if (updown ? n != 2 : (n != 3 || net_setting(&scratch, w[1], w[2]) < 0))
    return fail(l, at, path, "%s, got '%s'", hint, text);
  const char *letter = detour_netsim_link_name(idx);
  snprintf(e->command, sizeof e->command, "link %s %s%s%s", letter, w[1],
           n == 3 ? " " : "", n == 3 ? w[2] : "");
  snprintf(e->text, sizeof e->text, "%s %s%s%s", w[0], w[1], n == 3 ? " " : "",
           n == 3 ? w[2] : "");
  return 0;
}

/* "a:data", "b:connect#2", "a:message": what a server saw. */
static int net_trigger(ld *l, yaml_node_t *at, const char *path,
                       const char *text, scn_net_event *e) {
  char name[64], what[64];
  unsigned nth = 0;
  const char *colon = strchr(text, ':');
  const char *hash = colon ? strchr(colon, '#') : NULL;
  const char *hint = "expected 'SERVER:WHAT' or 'SERVER:WHAT#N' (WHAT: "
                     "connect, message, close, or a command: ehlo, helo, "
                     "mail, rcpt, data, rset, noop, quit)";
  if (!colon || colon == text || (size_t)(colon - text) >= sizeof name)
    return fail(l, at, path, "%s, got '%s'", hint, text);
  snprintf(name, sizeof name, "%.*s", (int)(colon - text), text);
  size_t wl = hash ? (size_t)(hash - colon - 1) : strlen(colon + 1);
  if (wl == 0 || wl >= sizeof what ||
      (hash && (sscanf(hash + 1, "%u", &nth) != 1 || nth == 0)))
    return fail(l, at, path, "%s, got '%s'", hint, text);
  snprintf(what, sizeof what, "%.*s", (int)wl, colon + 1);
  if ((e->server = server_index(l->s, name)) < 0)
    return fail(l, at, path, "no fake server is named '%s'", name);
  e->nth = nth;
  if (!strcmp(what, "connect"))
    e->when = SCN_NET_ON_CONNECT;
  else if (!strcmp(what, "message"))
    e->when = SCN_NET_ON_MESSAGE;
  else if (!strcmp(what, "close"))
    e->when = SCN_NET_ON_CLOSE;
  else if (detour_fake_stage_from_name(what, &e->stage) == 0 &&
           e->stage >= DETOUR_FAKE_EHLO && e->stage != DETOUR_FAKE_BODY &&
           e->stage != DETOUR_FAKE_EOD && e->stage != DETOUR_FAKE_UNKNOWN)
    e->when = SCN_NET_ON_COMMAND;
  else
    return fail(l, at, path, "%s, got '%s'", hint, text);
  return 0;
}

/* "2s: a down" (a string, or the one-pair mapping YAML makes of it
 * unquoted). */
static int net_timed(ld *l, yaml_node_t *at, const char *path, const char *when,
                     const char *what, scn_net_event *e) {
  e->when = SCN_NET_AT;
  if (detour_scenario_parse_offset(when, &e->at) < 0)
    return fail(l, at, path,
                "expected 'TIME: LINK ACTION' like '2s: a "
                "down', got time '%s'",
                when);
  return net_action(l, at, path, what, e);
}

/* { at: 2s, do: a down } or { on: a:data, after: 300ms, do: a down } */
static int net_mapping(ld *l, yaml_node_t *v, const char *path,
                       scn_net_event *e) {
  yaml_node_t *at = map_get(l, v, "at"), *on = map_get(l, v, "on");
  yaml_node_t *after = map_get(l, v, "after"), *act = map_get(l, v, "do");
  size_t npairs =
      (size_t)(v->data.mapping.pairs.top - v->data.mapping.pairs.start);
  if (npairs == 1 && !at && !on && !act) { /* 2s: a down */
    yaml_node_pair_t *p = v->data.mapping.pairs.start;
    const char *k = scalar(node(l, p->key)), *w = scalar(node(l, p->value));
    if (k && w)
      return net_timed(l, v, path, k, w, e);
  }
  if (!act || !(at || on) || (at && on) || (after && !on) ||
      npairs != 1u + !!at + !!on + !!after)
    return fail(l, v, path,
                "expected { at: TIME, do: ACTION } or { on: "
                "SERVER:WHAT, after: TIME, do: ACTION }");
  const char *a = want_scalar(l, act, path, "an action like 'a down'");
  const char *t = want_scalar(l, at ? at : on, path, "a time or a trigger");
  if (!a || !t || (after && want_offset(l, after, path, &e->after) < 0))
    return DETOUR_EPARSE;
  if (at)
    return net_timed(l, v, path, t, a, e);
  int rc = net_trigger(l, on, path, t, e);
  return rc < 0 ? rc : net_action(l, act, path, a, e);
}

static int read_net_event(ld *l, yaml_node_t *v, const char *path,
                          scn_net_event *e) {
  e->line = (int)v->start_mark.line + 1;
  e->col = (int)v->start_mark.column + 1;
  if (v->type == YAML_MAPPING_NODE)
    return net_mapping(l, v, path, e);
  const char *s = want_scalar(l, v, path, "an event like '2s: a down'");
  const char *colon = s ? strchr(s, ':') : NULL;
  if (!s)
    return DETOUR_EPARSE;
  if (!colon)
    return fail(l, v, path,
                "expected 'TIME: LINK ACTION' like '2s: a "
                "down', got '%s'",
                s);
  char when[64];
  snprintf(when, sizeof when, "%.*s", (int)(colon - s), s);
  const char *what = colon + 1;
  while (*what == ' ')
    what++;
  return net_timed(l, v, path, when, what, e);
}

static int on_net_events(ld *l, yaml_node_t *v, const char *path) {
  if (want_seq(l, v, path) < 0)
    return DETOUR_EPARSE;
  scn_network *net = &l->s->net;
  size_t n =
      (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
  free(net->events);
  net->nevents = 0;
  net->events = calloc(n ? n : 1, sizeof *net->events);
  if (!net->events)
    return DETOUR_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    char sub[300];
    snprintf(sub, sizeof sub, "%s[%zu]", path, i);
    int rc = read_net_event(l, node(l, v->data.sequence.items.start[i]), sub,
                            &net->events[net->nevents++]);
    if (rc < 0)
      return rc;
  }
  return 0;
}

static const key_entry network_keys[] = {{"links", on_net_links},
                                         {"events", on_net_events}};

static int on_network(ld *l, yaml_node_t *v, const char *path) {
  l->s->net.enabled = true;
  if (l->s->nservers > DETOUR_NETSIM_MAX_SERVERS)
    return fail(l, v, path, "at most %d fake servers on a simulated network",
                DETOUR_NETSIM_MAX_SERVERS);
  return WALK(l, v, path, network_keys);
}

/* A simulated network runs in real time and reaches only fake servers:
 * nothing but the run's own namespaces may be contacted. */
static int check_network(ld *l, yaml_node_t *root) {
  detour_scenario *s = l->s;
  if (!s->net.enabled)
    return 0;
  if (!s->realtime_ok)
    return fail(l, root, "realtime",
                "a scenario with 'network:' always "
                "runs in real time");
  for (size_t i = 0; i < s->nclient_servers; i++)
    if (s->client_servers[i].fake < 0)
      return fail(l, root, "client.servers",
                  "with 'network:' every server must be a fake server (%s "
                  "is a literal address)",
                  s->client_servers[i].host);
  s->realtime = true;
  return 0;
}

/* ------------------------------------------------------------------------ */
/* The document                                                              */

/* `adapter: postfix`: the scenario's client is an external program
 * (adapter.h); `detour run --client` overrides it. */
static int on_adapter(ld *l, yaml_node_t *v, const char *path) {
  const char *name = want_scalar(l, v, path, "a client's adapter name");
  if (!name)
    return DETOUR_EPARSE;
  char why[512];
  if (!scn_adapter_is_builtin(name) &&
      !detour_adapter_load(name, why, sizeof why))
    return fail(l, v, path, "%s", why);
  free(l->s->adapter);
  l->s->adapter = NULL;
  if (!scn_adapter_is_builtin(name) && !(l->s->adapter = strdup(name)))
    return DETOUR_ENOMEM;
  return 0;
}

/* Read out of order by read_document (see there). */
static int on_later(ld *l, yaml_node_t *v, const char *path) { return 0; }

static const key_entry top_keys[] = {
    {"name", on_name},       {"description", on_description},
    {"rules", on_rules},     {"realtime", on_realtime},
    {"limit", on_limit},     {"servers", on_later},
    {"client", on_later},    {"messages", on_messages},
    {"expect", on_expect},   {"network", on_network},
    {"adapter", on_adapter},
};

/* servers first: the client and the expectations refer to them. */
static int read_document(ld *l, yaml_node_t *root) {
  if (!root)
    return fail(l, NULL, "", "empty scenario file");
  if (want_map(l, root, "") < 0)
    return DETOUR_EPARSE;
  yaml_node_t *servers = map_get(l, root, "servers");
  yaml_node_t *client = map_get(l, root, "client");
  int client_id = 0;
  for (yaml_node_pair_t *p = root->data.mapping.pairs.start;
       p < root->data.mapping.pairs.top; p++)
    if (node(l, p->value) == client)
      client_id = p->value;
  int rc = servers ? on_servers(l, servers, "servers") : 0;
  if (rc < 0 || (rc = WALK(l, root, "", top_keys)) < 0)
    return rc;
  if (!l->s->name)
    return fail(l, root, "", "missing 'name'");
  if (l->s->nrules == 0)
    return fail(l, root, "", "missing 'rules' (the SPEC rule ids it checks)");
  if (l->s->nservers == 0)
    return fail(l, root, "", "missing 'servers' (at least one fake server)");
  if (l->s->nmsgs == 0)
    return fail(l, root, "", "missing 'messages' (at least one)");
  return client_id ? read_client(l, client_id) : 0;
}

/* Defaults and cross-checks once the whole file is read. */
static int finish(ld *l, yaml_node_t *root) {
  detour_scenario *s = l->s;
  scn_expect *x = &s->expect;
  if (s->nclient_servers == 0) /* the fake servers, in order */
    for (size_t i = 0; i < s->nservers; i++) {
      s->client_servers[i].fake = (int)i;
      s->client_servers[i].priority = (int)i + 1;
      s->nclient_servers++;
    }
  if (x->nstatus == SCN_MAX_MESSAGES)
    x->nstatus = s->nmsgs;
  else if (x->nstatus && x->nstatus != s->nmsgs)
    return fail(l, root, "expect.status",
                "%zu entries for %zu messages (give one per message, or one "
                "word for all)",
                x->nstatus, s->nmsgs);
  for (size_t i = 0; i < x->nrcpts; i++) {
    bool found = false;
    for (size_t m = 0; m < s->nmsgs; m++)
      for (size_t k = 0; k < s->msgs[m].nto; k++)
        found |= strcasecmp(s->msgs[m].to[k], x->rcpts[i].recipient) == 0 &&
                 (x->rcpts[i].message < 0 || (size_t)x->rcpts[i].message == m);
    if (!found)
      return fail(l, root, "expect.recipients",
                  "'%s' is not a recipient of any message",
                  x->rcpts[i].recipient);
  }
  return check_network(l, root);
}

static void init_scenario(detour_scenario *s) {
  memset(s, 0, sizeof *s);
  s->realtime_ok = true;
  s->limit = (detour_ms)7 * 24 * 3600 * 1000; /* a week of virtual time */
  s->expect.exit_code = -1;
  s->expect.latency_max = s->expect.latency_min = -1;
  s->expect.tolerance = 200;
  for (size_t i = 0; i < SCN_MAX_SERVERS; i++)
    s->expect.servers[i].connections = -1;
}

/* ------------------------------------------------------------------------ */
/* Mutations (deliberate mistakes, to prove the suite notices them)          */

static int mutate_one(detour_settings *st, const char *m, char *err,
                      size_t errlen) {
  const char *eq = strrchr(m, '=');
  if (!eq || eq == m || !eq[1]) {
    snprintf(err, errlen, "mutation '%s': expected KEY=VALUE", m);
    return DETOUR_EPARSE;
  }
  char key[256];
  snprintf(key, sizeof key, "%.*s", (int)(eq - m), m);
  const char *val = eq + 1;
  if (strncmp(key, "classify:", 9) == 0) {
    detour_class cls;
    if (detour_class_from_name(val, &cls) < 0) {
      snprintf(err, errlen, "mutation '%s': unknown class '%s'", m, val);
      return DETOUR_EPARSE;
    }
    char why[256] = "";
    if (!st)
      return 0;
    if (detour_classify_override(st->classify, key + 9, cls, why, sizeof why) <
        0) {
      snprintf(err, errlen, "mutation '%s': %s", m, why);
      return DETOUR_EPARSE;
    }
    return 0;
  }
  if (!strcmp(key, "detour") &&
      (!strcmp(val, "allow") || !strcmp(val, "deny"))) {
    if (!st)
      return 0;
    detour_policy *p = detour_policy_new();
    if (!p)
      return DETOUR_ENOMEM;
    detour_policy_set_default(p, !strcmp(val, "allow"));
    detour_policy_free(st->policy);
    st->policy = p;
    st->cfg.policy = p;
    return 0;
  }
  if (!strcmp(key, "detour.rule")) {
    detour_rule r;
    if (detour_rule_from_name(val, &r) < 0) {
      snprintf(err, errlen, "mutation '%s': unknown rule '%s'", m, val);
      return DETOUR_EPARSE;
    }
    if (st)
      detour_policy_set_rule(st->policy, r);
    return 0;
  }
  detour_ms d;
  if (!strcmp(key, "retry.interval") &&
      detour_scenario_parse_offset(val, &d) == 0) {
    if (st)
      st->cfg.retry_interval = d;
    return 0;
  }
  char *end;
  long n = strtol(val, &end, 10);
  if (!strcmp(key, "retry.max_attempts") && !*end && n > 0 && n < 100000) {
    if (st)
      st->cfg.max_attempts = (unsigned)n;
    return 0;
  }
  snprintf(err, errlen,
           "mutation '%s': expected classify:KEY=CLASS, detour=allow|deny, "
           "detour.rule=RULE, retry.interval=D or retry.max_attempts=N",
           m);
  return DETOUR_EPARSE;
}

int detour_scenario_check_mutation(const char *m, char *err, size_t errlen) {
  return m ? mutate_one(NULL, m, err, errlen) : DETOUR_EINVAL;
}

int scn_apply_mutations(detour_settings *st, const detour_scenario_options *o,
                        char *err, size_t errlen) {
  for (size_t i = 0; o && i < o->nmutations; i++) {
    int rc = mutate_one(st, o->mutations[i], err, errlen);
    if (rc < 0)
      return rc;
  }
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Public API                                                                */

/* The options' client wins over the file's `adapter:`; an external
 * client always runs in real time (it has its own clock). */
static int choose_client(ld *l, const detour_scenario_options *opt) {
  detour_scenario *s = l->s;
  if (opt && opt->client) {
    char why[512];
    if (!scn_adapter_is_builtin(opt->client) &&
        !detour_adapter_load(opt->client, why, sizeof why))
      return fail(l, NULL, "", "%s", why);
    free(s->adapter);
    s->adapter =
        scn_adapter_is_builtin(opt->client) ? NULL : strdup(opt->client);
    if (!scn_adapter_is_builtin(opt->client) && !s->adapter)
      return DETOUR_ENOMEM;
  }
  if (opt && opt->device) {
    free(s->adapter);
    if (!(s->adapter = strdup("device")))
      return DETOUR_ENOMEM;
    s->device = opt->device;
  }
  if (s->adapter)
    s->realtime = true;
  return 0;
}

static int load_parsed(ld *l, const detour_scenario_options *opt) {
  int rc = read_document(l, yaml_document_get_root_node(l->doc));
  if (rc == 0)
    rc = finish(l, yaml_document_get_root_node(l->doc));
  if (rc == 0 && !l->s->settings.classify)
    rc = detour_settings_init(&l->s->settings);
  if (rc == 0)
    rc = scn_apply_mutations(&l->s->settings, opt, l->err, l->errlen);
  l->s->mutated = opt && opt->nmutations > 0;
  if (rc == 0)
    rc = choose_client(l, opt);
  if (rc == DETOUR_ENOMEM)
    snprintf(l->err, l->errlen, "%s: out of memory", l->file);
  return rc;
}

int detour_scenario_load_string(const char *yaml, size_t len, const char *name,
                                const detour_scenario_options *opt,
                                detour_scenario **out, char *err,
                                size_t errlen) {
  char dummy[8];
  if (!err || !errlen) {
    err = dummy;
    errlen = sizeof dummy;
  }
  err[0] = '\0';
  *out = NULL;
  detour_scenario *s = malloc(sizeof *s);
  if (!s)
    return DETOUR_ENOMEM;
  init_scenario(s);
  s->realtime = opt && opt->realtime;
  if (opt)
    s->hooks = opt->hooks;
  s->file = strdup(name ? name : "<string>");
  yaml_parser_t p;
  yaml_document_t doc;
  if (!s->file || !yaml_parser_initialize(&p)) {
    detour_scenario_free(s);
    return DETOUR_ENOMEM;
  }
  yaml_parser_set_input_string(&p, (const unsigned char *)yaml, len);
  int rc;
  if (!yaml_parser_load(&p, &doc)) {
    snprintf(err, errlen, "%s:%lu:%lu: %s", s->file,
             (unsigned long)p.problem_mark.line + 1,
             (unsigned long)p.problem_mark.column + 1,
             p.problem ? p.problem : "YAML syntax error");
    rc = DETOUR_EPARSE;
  } else {
    ld l = {.doc = &doc, .file = s->file, .err = err, .errlen = errlen, .s = s};
    rc = load_parsed(&l, opt);
    yaml_document_delete(&doc);
  }
  yaml_parser_delete(&p);
  if (rc < 0) {
    detour_scenario_free(s);
    return rc;
  }
  *out = s;
  return 0;
}

int detour_scenario_load_file(const char *path,
                              const detour_scenario_options *opt,
                              detour_scenario **out, char *err, size_t errlen) {
  *out = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return DETOUR_EIO;
  }
  scn_buf b = {0};
  char chunk[8192];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 && b.len < (64u << 20))
    scn_buf_addn(&b, chunk, n);
  bool bad = ferror(f) || b.oom;
  fclose(f);
  if (bad) {
    snprintf(err, errlen, "%s: cannot read", path);
    scn_buf_free(&b);
    return DETOUR_EIO;
  }
  int rc = detour_scenario_load_string(b.s ? b.s : "", b.len, path, opt, out,
                                       err, errlen);
  scn_buf_free(&b);
  return rc;
}

static void free_strings(char **a, size_t n) {
  for (size_t i = 0; i < n; i++)
    free(a[i]);
  free(a);
}

static void free_expect(scn_expect *x) {
  for (size_t i = 0; i < x->nrcpts; i++) {
    free(x->rcpts[i].recipient);
    free(x->rcpts[i].server);
  }
  free(x->rcpts);
  for (size_t i = 0; i < x->nlog; i++) {
    free(x->log[i].recipient);
    free(x->log[i].server);
    free(x->log[i].result);
    free(x->log[i].detail);
  }
  free(x->log);
  free_strings(x->warnings, x->nwarnings);
  for (size_t i = 0; i < SCN_MAX_SERVERS; i++) {
    scn_server_expect *se = &x->servers[i];
    free(se->connect_times);
    free_strings(se->commands, se->ncommands);
    for (size_t k = 0; k < se->nreceived; k++) {
      free(se->received[k].from);
      free_strings(se->received[k].to, se->received[k].nto);
      free(se->received[k].body);
    }
    free(se->received);
  }
}

void detour_scenario_free(detour_scenario *s) {
  if (!s)
    return;
  free(s->file);
  free(s->name);
  free(s->description);
  free_strings(s->rules, s->nrules);
  for (size_t i = 0; i < s->nservers; i++) {
    free(s->servers[i].name);
    detour_fake_script_free(s->servers[i].script);
  }
  detour_settings_free(&s->settings);
  for (size_t i = 0; i < s->nmsgs; i++) {
    free(s->msgs[i].from);
    free_strings(s->msgs[i].to, s->msgs[i].nto);
    free(s->msgs[i].body);
  }
  free_expect(&s->expect);
  free(s->net.events);
  free(s->adapter);
  free(s);
}

const char *detour_scenario_name(const detour_scenario *s) { return s->name; }
size_t detour_scenario_rule_count(const detour_scenario *s) {
  return s->nrules;
}
const char *detour_scenario_rule(const detour_scenario *s, size_t i) {
  return i < s->nrules ? s->rules[i] : NULL;
}

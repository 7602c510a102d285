/*
 * load_servers.c - the `servers:` and `client:` sections of a scenario
 * file. A fake server's script goes to the fake-server loader
 * (detour_fake_script_from_yaml); the client's `servers:` list is read
 * here because it names fake servers, and every other client key goes to
 * the configuration loader (detour_settings_load_node).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "load_internal.h"

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
  if (detour__scn_want_map(l, item, path) < 0)
    return DETOUR_EPARSE;
  yaml_node_t *nn = detour__scn_map_get(l, item, "name");
  const char *name = nn ? detour__scn_want_scalar(l, nn, path, "a name") : NULL;
  if (!nn)
    return detour__scn_ld_fail(l, item, path,
                               "missing 'name' (every fake server needs one)");
  if (!name)
    return DETOUR_EPARSE;
  if (!good_name(name))
    return detour__scn_ld_fail(l, nn, path,
                               "a server name is 1-32 letters, digits, _ or -, "
                               "got '%s'",
                               name);
  if (detour__scn_server_index(s, name) >= 0)
    return detour__scn_ld_fail(l, nn, path, "server name '%s' given twice",
                               name);
  if (s->nservers >= SCN_MAX_SERVERS)
    return detour__scn_ld_fail(l, item, path, "at most %d servers",
                               SCN_MAX_SERVERS);
  detour_fake_script *sc = detour_fake_script_from_yaml(
      l->y.doc, item, l->y.file, l->y.err, l->y.errlen);
  if (!sc)
    return DETOUR_EPARSE;
  detour__scn_server *sv = &s->servers[s->nservers];
  sv->script = sc;
  sv->name = strdup(name);
  s->nservers++;
  if (!sv->name)
    return DETOUR_ENOMEM;
  if (!detour__scn_map_has(l, item, "listen")) {
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.%zu:0", s->nservers + 1);
    if (detour_fake_script_set_listen(sc, addr) < 0)
      return DETOUR_ENOMEM;
  }
  return 0;
}

int detour__scn_on_servers(ld *l, yaml_node_t *v, const char *path) {
  if (detour__scn_want_seq(l, v, path) < 0)
    return DETOUR_EPARSE;
  size_t i = 0;
  for (yaml_node_item_t *it = v->data.sequence.items.start;
       it < v->data.sequence.items.top; it++, i++) {
    char sub[64];
    snprintf(sub, sizeof sub, "servers[%zu]", i);
    int rc = read_server(l, detour__scn_ld_node(l, *it), sub);
    if (rc < 0)
      return rc;
  }
  return 0;
}

/* ------------------------------------------------------------------------ */
/* The client: our server list, the rest to the configuration loader         */

/* SPEC R13 keys of a client.servers entry: tls (none | starttls |
 * implicit), tls_required (default true with TLS), auth: {user, password}
 * (a scenario is test data and names its users' passwords; the engine
 * gets them as a configuration file would give them, and the runner's
 * outputs never show them). */
static int read_client_tls(ld *l, detour__scn_client_server *cs, const char *k,
                           yaml_node_t *v, const char *path) {
  if (!strcmp(k, "tls")) {
    const char *t =
        detour__scn_want_scalar(l, v, path, "none, starttls or implicit");
    if (!t)
      return DETOUR_EPARSE;
    if (detour_tls_mode_from_name(t, &cs->tls) != 0)
      return detour__scn_ld_fail(l, v, path,
                                 "tls: expected none, starttls or implicit");
    return 0;
  }
  if (!strcmp(k, "tls_required")) {
    bool req = true;
    if (detour__scn_want_bool(l, v, path, &req) < 0)
      return DETOUR_EPARSE;
    cs->tls_optional = !req;
    return 0;
  }
  if (detour__scn_want_map(l, v, path) < 0)
    return DETOUR_EPARSE;
  yaml_node_t *user = detour__scn_map_get(l, v, "user");
  yaml_node_t *pw = detour__scn_map_get(l, v, "password");
  const char *u = user ? detour__scn_ld_text(user) : NULL;
  const char *p = pw ? detour__scn_ld_text(pw) : NULL;
  if (!u || !p || !*u || !*p || strlen(u) >= sizeof cs->auth_user ||
      strlen(p) >= sizeof cs->auth_password ||
      v->data.mapping.pairs.top - v->data.mapping.pairs.start != 2)
    return detour__scn_ld_fail(l, v, path,
                               "auth: expected { user: NAME, password: TEXT }");
  snprintf(cs->auth_user, sizeof cs->auth_user, "%s", u);
  snprintf(cs->auth_password, sizeof cs->auth_password, "%s", p);
  return 0;
}

static int read_client_server(ld *l, yaml_node_t *item, const char *path,
                              int prev_priority) {
  detour_scenario *s = l->s;
  if (s->nclient_servers >= DETOUR_MAX_SERVERS)
    return detour__scn_ld_fail(l, item, path, "at most %d servers",
                               DETOUR_MAX_SERVERS);
  detour__scn_client_server *cs = &s->client_servers[s->nclient_servers];
  cs->fake = -1;
  cs->priority = prev_priority + 1;
  yaml_node_t *what = item;
  if (item->type == YAML_MAPPING_NODE) {
    what = detour__scn_map_get(l, item, "server");
    if (!what)
      what = detour__scn_map_get(l, item, "host");
    if (!what)
      return detour__scn_ld_fail(l, item, path,
                                 "missing 'server' (a fake server's name) "
                                 "or 'host'");
    for (yaml_node_pair_t *p = item->data.mapping.pairs.start;
         p < item->data.mapping.pairs.top; p++) {
      const char *k = detour__scn_ld_text(detour__scn_ld_node(l, p->key));
      long v = 0;
      if (k && !strcmp(k, "priority")) {
        if (detour__scn_want_long(l, detour__scn_ld_node(l, p->value), path, 1,
                                  1000, &v) < 0)
          return DETOUR_EPARSE;
        cs->priority = (int)v;
      } else if (k && !strcmp(k, "port")) {
        if (detour__scn_want_long(l, detour__scn_ld_node(l, p->value), path, 1,
                                  65535, &v) < 0)
          return DETOUR_EPARSE;
        cs->port = (uint16_t)v;
      } else if (k && (!strcmp(k, "tls") || !strcmp(k, "tls_required") ||
                       !strcmp(k, "auth"))) {
        if (read_client_tls(l, cs, k, detour__scn_ld_node(l, p->value), path) <
            0)
          return DETOUR_EPARSE;
      } else if (!k || (strcmp(k, "server") && strcmp(k, "host"))) {
        return detour__scn_ld_fail(
            l, detour__scn_ld_node(l, p->key), path,
            "unknown key '%s' (expected server, host, port, "
            "priority, tls, tls_required, auth)",
            k ? k : "?");
      }
    }
  }
  const char *name =
      detour__scn_want_scalar(l, what, path, "a fake server's name");
  if (!name)
    return DETOUR_EPARSE;
  cs->fake = detour__scn_server_index(s, name);
  /* A bare word is a fake server's name: a typo must not turn into a
   * DNS look-up. Literal hosts have a dot or a port. */
  if (cs->fake < 0 && what == item && !strpbrk(name, ".:"))
    return detour__scn_ld_fail(l, what, path,
                               "no fake server is named '%s' (a literal "
                               "address needs a dot or a port)",
                               name);
  if (cs->fake < 0) {
    uint16_t port = 25;
    if (detour_parse_server_address(name, cs->host, sizeof cs->host, &port) < 0)
      return detour__scn_ld_fail(l, what, path,
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
  if (detour__scn_want_seq(l, v, "client.servers") < 0)
    return DETOUR_EPARSE;
  size_t i = 0;
  int prev = 0;
  for (yaml_node_item_t *it = v->data.sequence.items.start;
       it < v->data.sequence.items.top; it++, i++) {
    char sub[64];
    snprintf(sub, sizeof sub, "client.servers[%zu]", i);
    int rc = read_client_server(l, detour__scn_ld_node(l, *it), sub, prev);
    if (rc < 0)
      return rc;
    prev = l->s->client_servers[l->s->nclient_servers - 1].priority;
  }
  return 0;
}

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
    const char *sub = detour__scn_ld_text(detour__scn_ld_node(l, p->key));
    if (sub)
      snprintf(keys + strlen(keys), cap - strlen(keys), "%s%s.%s",
               *keys ? " " : "", k, sub);
  }
}

/* Runs last: it adds a node to the document, which may move every
 * yaml_node_t, so nobody may hold a node pointer across it. */
int detour__scn_read_client(ld *l, int client_id) {
  yaml_node_t *c = detour__scn_ld_node(l, client_id);
  if (detour__scn_want_map(l, c, "client") < 0)
    return DETOUR_EPARSE;
  size_t npairs =
      (size_t)(c->data.mapping.pairs.top - c->data.mapping.pairs.start);
  yaml_node_pair_t *pairs = malloc((npairs + 1) * sizeof *pairs);
  if (!pairs)
    return DETOUR_ENOMEM;
  memcpy(pairs, c->data.mapping.pairs.start, npairs * sizeof *pairs);
  int rc = 0, servers_id = 0;
  for (size_t i = 0; i < npairs; i++) {
    const char *k = detour__scn_ld_text(detour__scn_ld_node(l, pairs[i].key));
    if (k && !strcmp(k, "servers"))
      servers_id = pairs[i].value;
    if (k) /* an external client's adapter checks what it can render */
      add_client_key(l, k, detour__scn_ld_node(l, pairs[i].value));
  }
  if (servers_id)
    rc = read_client_servers(l, detour__scn_ld_node(l, servers_id));
  int rest = rc < 0 ? 0
                    : yaml_document_add_mapping(l->y.doc, NULL,
                                                YAML_BLOCK_MAPPING_STYLE);
  if (rc == 0 && !rest)
    rc = DETOUR_ENOMEM;
  for (size_t i = 0; rc == 0 && i < npairs; i++)
    if (pairs[i].value != servers_id &&
        !yaml_document_append_mapping_pair(l->y.doc, rest, pairs[i].key,
                                           pairs[i].value))
      rc = DETOUR_ENOMEM;
  free(pairs);
  if (rc < 0)
    return rc;
  detour_settings_free(&l->s->settings);
  return detour_settings_load_node(&l->s->settings, l->y.doc,
                                   detour__scn_ld_node(l, rest), l->y.file,
                                   "client", l->y.err, l->y.errlen);
}

/*
 * load.c - scenario files (YAML, scenarios/README.md) into a
 * detour_scenario: the document and its top-level keys, the cross-checks
 * once it is read, mutations, and the public API. Each section has its
 * file: load_servers.c (fake servers and the client), load_messages.c,
 * load_expect.c, load_network.c; load_read.c holds the typed helpers over
 * the one YAML reader (detour_yaml.h), which also reads the file: whole or
 * refused, no aliases, no repeated keys, bounded.
 *
 * Every error is one line naming file:line:col (1-based) and the key, and
 * what was expected there.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "adapter.h"
#include "load_internal.h"

/* ------------------------------------------------------------------------ */
/* Top-level scalars                                                         */

static int on_name(ld *l, yaml_node_t *v, const char *path) {
  return detour__scn_want_str(l, v, path, &l->s->name);
}

static int on_description(ld *l, yaml_node_t *v, const char *path) {
  return detour__scn_want_str(l, v, path, &l->s->description);
}

static int on_rules(ld *l, yaml_node_t *v, const char *path) {
  int rc = detour__scn_want_strings(l, v, path, &l->s->rules, &l->s->nrules);
  if (rc < 0)
    return rc;
  for (size_t i = 0; i < l->s->nrules; i++) {
    const char *r = l->s->rules[i];
    char *end;
    long k = r[0] == 'R' ? strtol(r + 1, &end, 10) : 0;
    if (k < 1 || k > 13 || *end)
      return detour__scn_ld_fail(l, v, path,
                                 "expected rule ids R1 .. R13 (docs/rules.md), "
                                 "got '%s'",
                                 r);
  }
  return 0;
}

static int on_realtime(ld *l, yaml_node_t *v, const char *path) {
  return detour__scn_want_bool(l, v, path, &l->s->realtime_ok);
}

static int on_limit(ld *l, yaml_node_t *v, const char *path) {
  l->s->limit_set = true;
  return detour__scn_want_offset(l, v, path, &l->s->limit);
}

/* ------------------------------------------------------------------------ */
/* The document                                                              */

/* `adapter: postfix`: the scenario's client is an external program
 * (adapter.h); `detour run --client` overrides it. */
static int on_adapter(ld *l, yaml_node_t *v, const char *path) {
  const char *name =
      detour__scn_want_scalar(l, v, path, "a client's adapter name");
  if (!name)
    return DETOUR_EPARSE;
  char why[512];
  if (!detour__scn_adapter_is_builtin(name) &&
      !detour_adapter_load(name, why, sizeof why))
    return detour__scn_ld_fail(l, v, path, "%s", why);
  free(l->s->adapter);
  l->s->adapter = NULL;
  if (!detour__scn_adapter_is_builtin(name) && !(l->s->adapter = strdup(name)))
    return DETOUR_ENOMEM;
  return 0;
}

/* Read out of order by read_document (see there). */
static int on_later(ld *l, yaml_node_t *v, const char *path) { return 0; }

static const key_entry top_keys[] = {
    {"name", on_name},
    {"description", on_description},
    {"rules", on_rules},
    {"realtime", on_realtime},
    {"limit", on_limit},
    {"servers", on_later},
    {"client", on_later},
    {"messages", detour__scn_on_messages},
    {"expect", detour__scn_on_expect},
    {"network", detour__scn_on_network},
    {"adapter", on_adapter},
};

/* servers first: the client and the expectations refer to them. */
static int read_document(ld *l, yaml_node_t *root) {
  if (!root)
    return detour__scn_ld_fail(l, NULL, "", "empty scenario file");
  if (detour__scn_want_map(l, root, "") < 0)
    return DETOUR_EPARSE;
  yaml_node_t *servers = detour__scn_map_get(l, root, "servers");
  yaml_node_t *client = detour__scn_map_get(l, root, "client");
  int client_id = 0;
  for (yaml_node_pair_t *p = root->data.mapping.pairs.start;
       p < root->data.mapping.pairs.top; p++)
    if (detour__scn_ld_node(l, p->value) == client)
      client_id = p->value;
  int rc = servers ? detour__scn_on_servers(l, servers, "servers") : 0;
  if (rc < 0 || (rc = WALK(l, root, "", top_keys)) < 0)
    return rc;
  if (!l->s->name)
    return detour__scn_ld_fail(l, root, "", "missing 'name'");
  if (l->s->nrules == 0)
    return detour__scn_ld_fail(l, root, "",
                               "missing 'rules' (the SPEC rule ids it checks)");
  if (l->s->nservers == 0)
    return detour__scn_ld_fail(l, root, "",
                               "missing 'servers' (at least one fake server)");
  if (l->s->nmsgs == 0)
    return detour__scn_ld_fail(l, root, "",
                               "missing 'messages' (at least one)");
  return client_id ? detour__scn_read_client(l, client_id) : 0;
}

/* Defaults and cross-checks once the whole file is read. */
static int finish(ld *l, yaml_node_t *root) {
  detour_scenario *s = l->s;
  detour__scn_expect *x = &s->expect;
  if (s->nclient_servers == 0) /* the fake servers, in order */
    for (size_t i = 0; i < s->nservers; i++) {
      s->client_servers[i].fake = (int)i;
      s->client_servers[i].priority = (int)i + 1;
      s->nclient_servers++;
    }
  if (x->nstatus == SCN_MAX_MESSAGES)
    x->nstatus = s->nmsgs;
  else if (x->nstatus && x->nstatus != s->nmsgs)
    return detour__scn_ld_fail(
        l, root, "expect.status",
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
      return detour__scn_ld_fail(l, root, "expect.recipients",
                                 "'%s' is not a recipient of any message",
                                 x->rcpts[i].recipient);
  }
  return detour__scn_check_network(l, root);
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

int detour__scn_apply_mutations(detour_settings *st,
                                const detour_scenario_options *o, char *err,
                                size_t errlen) {
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
    if (!detour__scn_adapter_is_builtin(opt->client) &&
        !detour_adapter_load(opt->client, why, sizeof why))
      return detour__scn_ld_fail(l, NULL, "", "%s", why);
    free(s->adapter);
    s->adapter = detour__scn_adapter_is_builtin(opt->client)
                     ? NULL
                     : strdup(opt->client);
    if (!detour__scn_adapter_is_builtin(opt->client) && !s->adapter)
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
  int rc = read_document(l, yaml_document_get_root_node(l->y.doc));
  if (rc == 0)
    rc = finish(l, yaml_document_get_root_node(l->y.doc));
  if (rc == 0 && !l->s->settings.classify)
    rc = detour_settings_init(&l->s->settings);
  if (rc == 0)
    rc = detour__scn_apply_mutations(&l->s->settings, opt, l->y.err,
                                     l->y.errlen);
  l->s->mutated = opt && opt->nmutations > 0;
  if (rc == 0)
    rc = choose_client(l, opt);
  if (rc == DETOUR_ENOMEM)
    snprintf(l->y.err, l->y.errlen, "%s: out of memory", l->y.file);
  return rc;
}

/* A scenario from a file the reader loaded (rc its result): every error
 * is in err, and on error nothing is kept. */
static int load_yaml(detour_yaml_file *f, int rc, const char *name,
                     const detour_scenario_options *opt, detour_scenario **out,
                     char *err, size_t errlen) {
  detour_scenario *s = rc ? NULL : malloc(sizeof *s);
  if (rc == 0 && !s)
    rc = DETOUR_ENOMEM;
  if (s) {
    init_scenario(s);
    s->realtime = opt && opt->realtime;
    if (opt)
      s->hooks = opt->hooks;
    if (!(s->file = strdup(name)))
      rc = DETOUR_ENOMEM;
  }
  if (rc == 0) {
    ld l = {detour_yaml_ctx_of(f, err, errlen), s};
    l.y.file = s->file;
    rc = load_parsed(&l, opt);
  }
  detour_yaml_file_free(f);
  if (rc == DETOUR_ENOMEM && !*err)
    snprintf(err, errlen, "%s: out of memory", name);
  if (rc < 0) {
    detour_scenario_free(s);
    return rc == DETOUR_ERANGE ? DETOUR_EPARSE : rc;
  }
  *out = s;
  return 0;
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
  name = name ? name : "<string>";
  detour_yaml_file f;
  int rc = detour_yaml_load_string(&f, yaml, len, name, err, errlen);
  return load_yaml(&f, rc, name, opt, out, err, errlen);
}

/* The reader refuses a file it cannot read whole: a scenario cut at a
 * size limit once lost the expectations past the cut, and passed. */
int detour_scenario_load_file(const char *path,
                              const detour_scenario_options *opt,
                              detour_scenario **out, char *err, size_t errlen) {
  char dummy[8];
  if (!err || !errlen) {
    err = dummy;
    errlen = sizeof dummy;
  }
  *out = NULL;
  detour_yaml_file f;
  int rc = detour_yaml_load_file(&f, path, err, errlen);
  if (rc == DETOUR_EIO) {
    detour_yaml_file_free(&f);
    return rc;
  }
  return load_yaml(&f, rc, path, opt, out, err, errlen);
}

static void free_strings(char **a, size_t n) {
  for (size_t i = 0; i < n; i++)
    free(a[i]);
  free(a);
}

static void free_expect(detour__scn_expect *x) {
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
    detour__scn_server_expect *se = &x->servers[i];
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

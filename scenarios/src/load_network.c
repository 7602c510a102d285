/*
 * load_network.c - the `network:` section of a scenario file: the links of
 * the simulated network (fakeservers/netsim) and the events that change
 * them during the run, checked here so a typo fails at load, not in the
 * middle of a real-time run.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "load_internal.h"

/* The link of `name`: "client" or a fake server's name. */
static detour_netsim_link *net_link(ld *l, const char *name) {
  if (!strcmp(name, "client"))
    return &l->s->net.client;
  int i = detour__scn_server_index(l->s, name);
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
    return detour__scn_ld_fail(l, v, path,
                               "no fake server is named '%s' (links are "
                               "'client' or a fake server's name)",
                               name);
  if (detour__scn_want_map(l, v, path) < 0)
    return DETOUR_EPARSE;
  for (yaml_node_pair_t *p = v->data.mapping.pairs.start;
       p < v->data.mapping.pairs.top; p++) {
    const char *key = detour__scn_ld_text(detour__scn_ld_node(l, p->key));
    char sub[300];
    snprintf(sub, sizeof sub, "%s.%s", path, key ? key : "?");
    const char *val = detour__scn_want_scalar(
        l, detour__scn_ld_node(l, p->value), sub, "a value");
    if (!val)
      return DETOUR_EPARSE;
    int rc = net_setting(k, key ? key : "", val);
    if (rc == DETOUR_EINVAL)
      return detour__scn_ld_fail(l, detour__scn_ld_node(l, p->key), sub,
                                 "unknown key (expected one of: "
                                 "delay, jitter, loss, rate)");
    if (rc < 0)
      return detour__scn_ld_fail(
          l, detour__scn_ld_node(l, p->value), sub,
          "expected a duration (200ms), a loss (0.05 or 5%%) or a "
          "rate (10Mbps), got '%s'",
          val);
  }
  return 0;
}

static int on_net_links(ld *l, yaml_node_t *v, const char *path) {
  return detour__scn_for_each_entry(l, v, path, "a link name", read_link);
}

/* "a down", "link a up", "b delay 150ms", "client loss 5%" into the
 * program's command "link <letter> ...". The value is checked here so a
 * typo fails at load, not in the middle of a run. */
static int net_action(ld *l, yaml_node_t *at, const char *path,
                      const char *text, detour__scn_net_event *e) {
  char w[3][64] = {"", "", ""}, extra[8] = "";
  if (!strncmp(text, "link ", 5))
    text += 5;
  int n = sscanf(text, "%63s %63s %63s %7s", w[0], w[1], w[2], extra);
  const char *hint = "expected 'LINK down', 'LINK up' or 'LINK "
                     "delay|jitter|loss|rate VALUE' (LINK: client or a fake "
                     "server's name)";
  if (n < 2 || n > 3)
    return detour__scn_ld_fail(l, at, path, "%s, got '%s'", hint, text);
  int idx = !strcmp(w[0], "client") ? DETOUR_NETSIM_CLIENT
                                    : detour__scn_server_index(l->s, w[0]);
  if (idx == -1 && strcmp(w[0], "client"))
    return detour__scn_ld_fail(l, at, path, "no link named '%s' (%s)", w[0],
                               hint);
  bool updown = !strcmp(w[1], "down") || !strcmp(w[1], "up");
  detour_netsim_link scratch = {0};
  if (updown ? n != 2 : (n != 3 || net_setting(&scratch, w[1], w[2]) < 0))
    return detour__scn_ld_fail(l, at, path, "%s, got '%s'", hint, text);
  const char *letter = detour_netsim_link_name(idx);
  snprintf(e->command, sizeof e->command, "link %s %s%s%s", letter, w[1],
           n == 3 ? " " : "", n == 3 ? w[2] : "");
  snprintf(e->text, sizeof e->text, "%s %s%s%s", w[0], w[1], n == 3 ? " " : "",
           n == 3 ? w[2] : "");
  return 0;
}

/* "a:data", "b:connect#2", "a:message": what a server saw. */
static int net_trigger(ld *l, yaml_node_t *at, const char *path,
                       const char *text, detour__scn_net_event *e) {
  char name[64], what[64];
  unsigned nth = 0;
  const char *colon = strchr(text, ':');
  const char *hash = colon ? strchr(colon, '#') : NULL;
  const char *hint = "expected 'SERVER:WHAT' or 'SERVER:WHAT#N' (WHAT: "
                     "connect, message, close, or a command: ehlo, helo, "
                     "mail, rcpt, data, rset, noop, quit)";
  if (!colon || colon == text || (size_t)(colon - text) >= sizeof name)
    return detour__scn_ld_fail(l, at, path, "%s, got '%s'", hint, text);
  snprintf(name, sizeof name, "%.*s", (int)(colon - text), text);
  size_t wl = hash ? (size_t)(hash - colon - 1) : strlen(colon + 1);
  if (wl == 0 || wl >= sizeof what ||
      (hash && (sscanf(hash + 1, "%u", &nth) != 1 || nth == 0)))
    return detour__scn_ld_fail(l, at, path, "%s, got '%s'", hint, text);
  snprintf(what, sizeof what, "%.*s", (int)wl, colon + 1);
  if ((e->server = detour__scn_server_index(l->s, name)) < 0)
    return detour__scn_ld_fail(l, at, path, "no fake server is named '%s'",
                               name);
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
    return detour__scn_ld_fail(l, at, path, "%s, got '%s'", hint, text);
  return 0;
}

/* "2s: a down" (a string, or the one-pair mapping YAML makes of it
 * unquoted). */
static int net_timed(ld *l, yaml_node_t *at, const char *path, const char *when,
                     const char *what, detour__scn_net_event *e) {
  e->when = SCN_NET_AT;
  if (detour_scenario_parse_offset(when, &e->at) < 0)
    return detour__scn_ld_fail(l, at, path,
                               "expected 'TIME: LINK ACTION' like '2s: a "
                               "down', got time '%s'",
                               when);
  return net_action(l, at, path, what, e);
}

/* { at: 2s, do: a down } or { on: a:data, after: 300ms, do: a down } */
static int net_mapping(ld *l, yaml_node_t *v, const char *path,
                       detour__scn_net_event *e) {
  yaml_node_t *at = detour__scn_map_get(l, v, "at"),
              *on = detour__scn_map_get(l, v, "on");
  yaml_node_t *after = detour__scn_map_get(l, v, "after"),
              *act = detour__scn_map_get(l, v, "do");
  size_t npairs =
      (size_t)(v->data.mapping.pairs.top - v->data.mapping.pairs.start);
  if (npairs == 1 && !at && !on && !act) { /* 2s: a down */
    yaml_node_pair_t *p = v->data.mapping.pairs.start;
    const char *k = detour__scn_ld_text(detour__scn_ld_node(l, p->key)),
               *w = detour__scn_ld_text(detour__scn_ld_node(l, p->value));
    if (k && w)
      return net_timed(l, v, path, k, w, e);
  }
  if (!act || !(at || on) || (at && on) || (after && !on) ||
      npairs != 1u + !!at + !!on + !!after)
    return detour__scn_ld_fail(l, v, path,
                               "expected { at: TIME, do: ACTION } or { on: "
                               "SERVER:WHAT, after: TIME, do: ACTION }");
  const char *a =
      detour__scn_want_scalar(l, act, path, "an action like 'a down'");
  const char *t =
      detour__scn_want_scalar(l, at ? at : on, path, "a time or a trigger");
  if (!a || !t ||
      (after && detour__scn_want_offset(l, after, path, &e->after) < 0))
    return DETOUR_EPARSE;
  if (at)
    return net_timed(l, v, path, t, a, e);
  int rc = net_trigger(l, on, path, t, e);
  return rc < 0 ? rc : net_action(l, act, path, a, e);
}

static int read_net_event(ld *l, yaml_node_t *v, const char *path,
                          detour__scn_net_event *e) {
  e->line = (int)v->start_mark.line + 1;
  e->col = (int)v->start_mark.column + 1;
  if (v->type == YAML_MAPPING_NODE)
    return net_mapping(l, v, path, e);
  const char *s =
      detour__scn_want_scalar(l, v, path, "an event like '2s: a down'");
  const char *colon = s ? strchr(s, ':') : NULL;
  if (!s)
    return DETOUR_EPARSE;
  if (!colon)
    return detour__scn_ld_fail(l, v, path,
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
  if (detour__scn_want_seq(l, v, path) < 0)
    return DETOUR_EPARSE;
  detour__scn_network *net = &l->s->net;
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
    int rc = read_net_event(
        l, detour__scn_ld_node(l, v->data.sequence.items.start[i]), sub,
        &net->events[net->nevents++]);
    if (rc < 0)
      return rc;
  }
  return 0;
}

static const key_entry network_keys[] = {{"links", on_net_links},
                                         {"events", on_net_events}};

int detour__scn_on_network(ld *l, yaml_node_t *v, const char *path) {
  l->s->net.enabled = true;
  if (l->s->nservers > DETOUR_NETSIM_MAX_SERVERS)
    return detour__scn_ld_fail(l, v, path,
                               "at most %d fake servers on a simulated network",
                               DETOUR_NETSIM_MAX_SERVERS);
  return WALK(l, v, path, network_keys);
}

/* A simulated network runs in real time and reaches only fake servers:
 * nothing but the run's own namespaces may be contacted. */
int detour__scn_check_network(ld *l, yaml_node_t *root) {
  detour_scenario *s = l->s;
  if (!s->net.enabled)
    return 0;
  if (!s->realtime_ok)
    return detour__scn_ld_fail(l, root, "realtime",
                               "a scenario with 'network:' always "
                               "runs in real time");
  for (size_t i = 0; i < s->nclient_servers; i++)
    if (s->client_servers[i].fake < 0)
      return detour__scn_ld_fail(
          l, root, "client.servers",
          "with 'network:' every server must be a fake server (%s "
          "is a literal address)",
          s->client_servers[i].host);
  s->realtime = true;
  return 0;
}

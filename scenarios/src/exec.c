/*
 * exec.c - runs one scenario: its own uv loop and detour_clock (virtual by
 * default, starting at DETOUR_SCENARIO_EPOCH), the fake servers and the
 * engine's libuv driver on that loop, the messages submitted at their
 * times; then copies what happened (log rows, outcomes, what every fake
 * server saw) into a detour_scenario_result and checks it (check.c).
 *
 * Everything a result holds is named by fake-server name and timed as an
 * offset from the start, so a virtual-time run prints the same bytes every
 * time although the ports differ.
 *
 * A scenario with `network:` runs in real time over ns-3 (net.c): the
 * servers listen in their namespaces, the loop thread sits in the client's
 * namespace for the run, and teardown always removes the network, also
 * when setup failed half-way or the run was interrupted.
 *
 * A scenario whose client is an external program (`adapter:`, `detour run
 * --client`) takes the same path with the engine left out: the adapter
 * (adapter.c) starts the client on the servers' addresses, a thread of
 * its own submits the messages, and the outcomes come from what the fake
 * servers saw.
 */
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "adapter.h"
#include "scn_internal.h"

/* Real time a virtual-time scenario may take before it is called stuck. */
#define VIRTUAL_REAL_LIMIT_MS 30000
/* Real-time runs without a `limit:` give up after this long. */
#define REALTIME_DEFAULT_LIMIT_MS 60000
/* Real time allowed to close everything at the end. */
#define SETTLE_REAL_LIMIT_MS 3000
/* An external client's thread ends at the limit; the loop waits this much
 * longer, so the thread's verdict on it comes first. */
#define EXT_JOIN_MARGIN_MS 2000

typedef struct run run;

typedef struct {
  run *r;
  size_t index;
  detour_timer *timer;
} submit_slot;

struct run {
  const detour_scenario *s;
  detour_scenario_result *res;
  uv_loop_t loop;
  detour_clock *clock;
  detour_fake_server *srv[SCN_MAX_SERVERS];
  /* The fake-server name of each configured server (NULL for a server
   * that is not one of ours), indexed as the engine names servers. */
  const char *names[DETOUR_MAX_SERVERS];
  size_t nnames;
  detour_settings st; /* copy of the scenario's, servers filled in */
  detour_engine *engine;
  detour_uv *driver;
  submit_slot slots[SCN_MAX_MESSAGES];
  size_t submitted, done;
  detour_timer *limit_timer;
  bool limit_hit;
  bool loop_inited;
  detour__scn_net *net; /* `network:` only */
  detour__scn_ext *ext; /* an external client (adapter.h), else NULL */
  void *hook_token;     /* from hooks.on_started */
  bool hook_started;
  size_t rows_cap, warn_cap, rcpt_cap;
  char failure[512]; /* a setup error */
  char ca_dir[256];  /* the run-local CA (R13), "" when none is needed */
};

static detour_ms now_off(const run *r) {
  return detour_clock_now(r->clock) - r->res->start;
}

/* The name of configured server i: its fake server's, else its label. */
static const char *name_of(const run *r, size_t i) {
  return r->names[i] ? r->names[i] : detour_engine_server_label(r->engine, i);
}

/* The fake-server name for an engine label, or the label itself. */
static const char *name_of_label(const run *r, const char *label) {
  for (size_t i = 0; i < r->nnames; i++)
    if (strcmp(detour_engine_server_label(r->engine, i), label) == 0)
      return name_of(r, i);
  return label;
}

/* Replace every label in text by its name (warnings, details). */
static char *names_in(const run *r, const char *text) {
  detour__scn_buf b = {0};
  const char *p = text ? text : "";
  while (*p) {
    size_t best = 0;
    const char *name = NULL;
    for (size_t i = 0; i < r->nnames; i++) {
      const char *label = detour_engine_server_label(r->engine, i);
      size_t n = strlen(label);
      if (n > best && strncmp(p, label, n) == 0) {
        best = n;
        name = name_of(r, i);
      }
    }
    if (name) {
      detour__scn_buf_add(&b, "%s", name);
      p += best;
    } else {
      detour__scn_buf_addn(&b, p++, 1);
    }
  }
  return detour__scn_buf_take(&b);
}

/* ------------------------------------------------------------------------ */
/* Driver callbacks                                                          */

static void on_log(void *arg, const detour_log_row *row) {
  run *r = arg;
  detour_scenario_result *res = r->res;
  if (detour__scn_grow(&res->rows, &r->rows_cap, res->nrows,
                       sizeof *res->rows) < 0)
    return;
  detour_scenario_row *o = &res->rows[res->nrows++];
  o->t = row->time - res->start;
  o->kind = row->kind;
  o->message = row->message;
  o->recipient = detour__scn_strdup(row->recipient);
  o->server = detour__scn_strdup(name_of_label(r, row->server));
  o->priority = row->priority;
  o->attempt = row->attempt;
  o->result = names_in(r, row->result);
  o->cls = row->cls;
  o->detail = names_in(r, row->detail);
}

static void on_warn(void *arg, const char *text) {
  run *r = arg;
  detour_scenario_result *res = r->res;
  if (detour__scn_grow(&res->warnings, &r->warn_cap, res->nwarnings,
                       sizeof *res->warnings) < 0)
    return;
  detour_scenario_warning *w = &res->warnings[res->nwarnings++];
  w->t = now_off(r);
  w->text = names_in(r, text);
}

static void on_rcpt(void *arg, size_t message, size_t index,
                    const char *recipient, detour_rcpt_outcome outcome,
                    int server, const char *detail) {
  run *r = arg;
  detour_scenario_result *res = r->res;
  if (detour__scn_grow(&res->rcpts, &r->rcpt_cap, res->nrcpts,
                       sizeof *res->rcpts) < 0)
    return;
  detour_scenario_rcpt *o = &res->rcpts[res->nrcpts++];
  o->message = message;
  o->recipient = detour__scn_strdup(recipient);
  o->outcome = outcome;
  /* server is the configured index (detour_engine_server_label) */
  o->server = server >= 0 && (size_t)server < r->nnames
                  ? detour__scn_strdup(name_of(r, (size_t)server))
                  : NULL;
  o->detail = names_in(r, detail);
  o->t = now_off(r);
}

static void on_done(void *arg, size_t message, detour_done_status status) {
  run *r = arg;
  if (message < r->res->nmsgs) {
    detour_scenario_msg *m = &r->res->msgs[message];
    m->done = true;
    m->status = status;
    m->done_t = now_off(r);
  }
  r->done++;
}

/* ------------------------------------------------------------------------ */
/* Setup                                                                     */

/* Over a simulated network each server listens on its namespace's address
 * (a non-loopback address, but one only the run's namespaces can reach). */
/* Device mode: the k-th server of the client's list (priority order) on
 * --listen, port + k, so the operator configures the device once; a
 * server the client does not list gets port + 16 + its index. */
static const char *device_listen(const run *r, size_t i, char *buf,
                                 size_t len) {
  const detour_scenario *s = r->s;
  unsigned pos = 16 + (unsigned)i;
  for (size_t k = 0; k < s->nclient_servers; k++)
    if (s->client_servers[k].fake == (int)i) {
      pos = 0;
      for (size_t j = 0; j < s->nclient_servers; j++)
        pos +=
            s->client_servers[j].priority < s->client_servers[k].priority ||
            (s->client_servers[j].priority == s->client_servers[k].priority &&
             j < k);
    }
  snprintf(buf, len, "%s:%u", s->device->listen,
           (unsigned)(s->device->port + pos));
  return buf;
}

/* A client whose list is one name's addresses (DETOUR_PLACE_SAME_PORT)
 * gets every server on the first one's port, each on its own loopback
 * address. NULL: the server's own listen address. */
static const char *listen_of(run *r, size_t i, char *buf, size_t len) {
  if (r->net)
    return detour__scn_net_listen(r->net, i, buf, len);
  if (r->s->device)
    return device_listen(r, i, buf, len);
  const detour_adapter *a = r->s->adapter ? detour__scn_adapter_of(r->s) : NULL;
  if (!a || a->placement != DETOUR_PLACE_SAME_PORT || i == 0)
    return NULL;
  snprintf(buf, len, "127.0.0.%zu:%u", i + 2,
           (unsigned)detour_fake_server_port(r->srv[0]));
  return buf;
}

/* SPEC R13: a run that uses TLS anywhere gets its own CA, made now and
 * removed at teardown (nothing is fetched, no key is kept). The fake
 * servers serve certificates from it; the engine trusts its ca.pem. */
static bool run_uses_tls(const detour_scenario *s) {
  for (size_t i = 0; i < s->nservers; i++)
    if (detour_fake_script_tls(s->servers[i].script)->mode !=
        DETOUR_FAKE_TLS_NONE)
      return true;
  for (size_t i = 0; i < s->nclient_servers; i++)
    if (s->client_servers[i].tls != DETOUR_TLS_MODE_NONE)
      return true;
  return false;
}

static int make_ca(run *r) {
  char err[256] = "";
  r->ca_dir[0] = '\0';
  if (detour_fake_ca_make(r->ca_dir, sizeof r->ca_dir, NULL, 0, err,
                          sizeof err) != 0) {
    snprintf(r->failure, sizeof r->failure, "run-local CA: %s", err);
    r->ca_dir[0] = '\0';
    return -1;
  }
  return 0;
}

static int start_servers(run *r) {
  const detour_scenario *s = r->s;
  if (run_uses_tls(s) && make_ca(r) < 0)
    return -1;
  for (size_t i = 0; i < s->nservers; i++) {
    int err = 0;
    char listen[64];
    r->srv[i] = detour_fake_server_new(
        r->clock, s->servers[i].script, listen_of(r, i, listen, sizeof listen),
        r->net || r->s->device ? DETOUR_FAKE_ALLOW_PUBLIC : 0, &err);
    if (!r->srv[i]) {
      snprintf(r->failure, sizeof r->failure, "fake server %s: %s",
               s->servers[i].name, detour_strerror(err));
      return -1;
    }
    if (s->device &&
        detour_fake_server_set_only_peer(r->srv[i], s->device->peer)) {
      snprintf(r->failure, sizeof r->failure, "fake server %s: bad --peer %s",
               s->servers[i].name, s->device->peer);
      return -1;
    }
    if (r->ca_dir[0] && detour_fake_server_set_tls_dir(r->srv[i], r->ca_dir)) {
      snprintf(r->failure, sizeof r->failure, "fake server %s: TLS directory",
               s->servers[i].name);
      return -1;
    }
    char why[256] = "";
    if (r->net ? detour__scn_net_start_server(r->net, i, r->srv[i], why,
                                              sizeof why)
               : detour_fake_server_start(r->srv[i], why, sizeof why)) {
      snprintf(r->failure, sizeof r->failure, "fake server %s: %s",
               s->servers[i].name, why);
      return -1;
    }
  }
  return 0;
}

/* The servers go to the client in the scenario's order, which is how the
 * engine names them in its actions (its configured index). */
static int fill_servers(run *r) {
  const detour_scenario *s = r->s;
  r->st.cfg.nservers = 0;
  for (size_t k = 0; k < s->nclient_servers; k++) {
    const detour__scn_client_server *cs = &s->client_servers[k];
    const char *host = cs->host;
    uint16_t port = cs->port;
    r->names[k] = NULL;
    if (cs->fake >= 0) {
      host = detour_fake_server_ip(r->srv[cs->fake]);
      port = detour_fake_server_port(r->srv[cs->fake]);
      r->names[k] = s->servers[cs->fake].name;
    }
    if (detour_config_add_server(&r->st.cfg, host, port, cs->priority) < 0) {
      snprintf(r->failure, sizeof r->failure, "server %s:%u refused", host,
               (unsigned)port);
      return -1;
    }
    detour_server *sv = &r->st.cfg.servers[r->st.cfg.nservers - 1];
    sv->tls = cs->tls;
    sv->tls_optional = cs->tls_optional;
    if (r->ca_dir[0])
      snprintf(sv->ca_file, sizeof sv->ca_file, "%s/ca.pem", r->ca_dir);
    memcpy(sv->auth_user, cs->auth_user, sizeof sv->auth_user);
    memcpy(sv->auth_password, cs->auth_password, sizeof sv->auth_password);
  }
  r->nnames = s->nclient_servers;
  return 0;
}

static void submit_now(run *r, size_t i) {
  const detour__scn_message *m = &r->s->msgs[i];
  detour_message dm = {.from = m->from,
                       .rcpts = (const char *const *)m->to,
                       .nrcpts = m->nto,
                       .body = m->body,
                       .body_len = m->body_len,
                       .override = m->override};
  r->res->msgs[i].submit_t = now_off(r);
  int rc = detour_uv_submit(r->driver, &dm);
  r->submitted++;
  if (rc < 0) {
    detour__scn_fail(r->res, "message %zu: submit failed: %s", i,
                     detour_strerror(rc));
    r->done++; /* nothing will come for it */
  }
}

/* Messages go to the engine in file order: one waits for the one before it
 * even when its `at` is earlier, so indexes match submission order. */
static void on_submit_timer(detour_timer *t, void *arg) {
  submit_slot *slot = arg;
  run *r = slot->r;
  while (r->submitted < r->s->nmsgs &&
         r->s->msgs[r->submitted].at <= now_off(r))
    submit_now(r, r->submitted);
}

static void on_limit(detour_timer *t, void *arg) {
  run *r = arg;
  r->limit_hit = true;
}

/* Every recipient of every message accepted by some server (2xx to the
 * final dot): how a device's run ends before its limit. */
static bool all_accepted(run *r) {
  size_t want = 0, got = 0;
  for (size_t i = 0; i < r->s->nmsgs; i++)
    want += r->s->msgs[i].nto;
  for (size_t i = 0; i < r->s->nservers; i++) {
    size_t n = detour_fake_server_message_count(r->srv[i]);
    for (size_t k = 0; k < n; k++) {
      detour_fake_message m;
      if (detour_fake_server_message(r->srv[i], k, &m) == 0 && m.complete &&
          m.code / 100 == 2)
        got += m.nrcpts;
    }
  }
  return got >= want;
}

static bool all_done(void *arg) {
  run *r = arg;
  if (r->limit_hit || detour__scn_interrupted())
    return true;
  if (r->ext)
    return detour__scn_ext_finished(r->ext) ||
           (r->s->device && all_accepted(r));
  return r->submitted == r->s->nmsgs && r->done >= r->s->nmsgs &&
         detour_uv_idle(r->driver);
}

/* The network first (the servers listen inside it), the loop thread into
 * the client's namespace last (only the engine's connects leave there). */
static int start_network(run *r) {
  r->net = detour__scn_net_start(r->s, r->failure, sizeof r->failure);
  return r->net ? 0 : -1;
}

static int enter_client(run *r) {
  /* thread pool threads keep the namespace they were made in */
  detour_uv_warm_thread_pool(&r->loop);
  return detour__scn_net_enter_client(r->net, r->failure, sizeof r->failure);
}

/* The capture hook: the servers are bound, nothing is submitted yet. */
static void hook_started(run *r) {
  const detour_scenario_hooks *h = &r->s->hooks;
  if (!h->on_started)
    return;
  uint16_t ports[SCN_MAX_SERVERS];
  size_t n = 0;
  for (size_t i = 0; i < r->s->nservers; i++)
    ports[n++] = detour_fake_server_port(r->srv[i]);
  r->hook_token =
      h->on_started(h->arg, r->s->name, ports, n,
                    r->net ? detour__scn_net_client_netns(r->net) : NULL,
                    r->net ? detour__scn_net_client_tap(r->net) : "lo");
  r->hook_started = true;
}

static void hook_finished(run *r) {
  const detour_scenario_hooks *h = &r->s->hooks;
  if (r->hook_started && h->on_finished)
    h->on_finished(h->arg, r->s->name, r->hook_token);
  r->hook_started = false;
}

/* Real time a run may take: the scenario's limit or the default. */
static detour_ms real_limit(const detour_scenario *s) {
  return s->limit_set ? s->limit : REALTIME_DEFAULT_LIMIT_MS;
}

/* The external client instead of the engine: started (slow) before t = 0
 * on the servers' addresses in priority order; its thread submits. */
static int setup_external(run *r) {
  detour_adapter_server sv[DETOUR_MAX_SERVERS];
  size_t order[DETOUR_MAX_SERVERS];
  const detour_config *cfg = &r->st.cfg;
  detour_config_priority_order(cfg, order);
  for (size_t k = 0; k < cfg->nservers; k++) {
    const detour_server *srv = &cfg->servers[order[k]];
    sv[k].name = r->names[order[k]] ? r->names[order[k]] : srv->host;
    snprintf(sv[k].host, sizeof sv[k].host, "%s", srv->host);
    sv[k].port = srv->port;
    sv[k].priority = srv->priority;
  }
  r->ext = detour__scn_ext_new(r->s, sv, cfg->nservers, r->failure,
                               sizeof r->failure);
  if (!r->ext)
    return -1;
  hook_started(r);
  uv_update_time(&r->loop);
  r->res->start = detour_clock_now(r->clock);
  return detour__scn_ext_begin(r->ext, uv_hrtime(), real_limit(r->s),
                               r->failure, sizeof r->failure);
}

/* Everything slow (network, servers, hooks) is done before t = 0, so a
 * real-time run's offsets start at the first submission. */
static int setup(run *r) {
  const detour_scenario *s = r->s;
  if (uv_loop_init(&r->loop) != 0) {
    snprintf(r->failure, sizeof r->failure, "uv_loop_init failed");
    return -1;
  }
  r->loop_inited = true;
  r->clock = s->realtime
                 ? detour_clock_new_real(&r->loop)
                 : detour_clock_new_virtual(&r->loop, DETOUR_SCENARIO_EPOCH);
  if (!r->clock)
    return -1;
  r->res->start = detour_clock_now(r->clock);
  if (s->net.enabled && start_network(r) < 0)
    return -1;
  if (start_servers(r) < 0)
    return -1;
  r->st = s->settings; /* shallow: the tables stay the scenario's */
  if (fill_servers(r) < 0)
    return -1;
  if (s->adapter)
    return setup_external(r);
  int err = 0;
  r->engine = detour_engine_new(&r->st.cfg, &err);
  if (!r->engine) {
    snprintf(r->failure, sizeof r->failure, "engine: %s", detour_strerror(err));
    return -1;
  }
  detour_uv_callbacks cb = {on_log, on_warn, on_rcpt, on_done, r, NULL};
  r->driver = detour_uv_new(r->clock, r->engine, &cb);
  if (!r->driver)
    return -1;
  if (r->net && enter_client(r) < 0)
    return -1;
  hook_started(r);
  uv_update_time(&r->loop); /* the loop's clock stood still during setup */
  r->res->start = detour_clock_now(r->clock);
  if (r->net && detour__scn_net_arm(r->net, r->clock, r->res->start) < 0) {
    snprintf(r->failure, sizeof r->failure, "%s",
             detour__scn_net_error(r->net));
    return -1;
  }
  r->limit_timer = detour_timer_new(r->clock, on_limit, r);
  if (!r->limit_timer)
    return -1;
  detour_timer_start(r->limit_timer, r->res->start + s->limit);
  for (size_t i = 0; i < s->nmsgs; i++) {
    submit_slot *slot = &r->slots[i];
    slot->r = r;
    slot->index = i;
    if (s->msgs[i].at > 0) {
      slot->timer = detour_timer_new(r->clock, on_submit_timer, slot);
      if (!slot->timer)
        return -1;
      detour_timer_start(slot->timer, r->res->start + s->msgs[i].at);
    }
  }
  on_submit_timer(NULL, &r->slots[0]);
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Running                                                                   */

static void on_real_tick(uv_timer_t *t) { (void)t; }

/* Real time: run until done, bounded by the scenario's limit. */
static int run_real(run *r) {
  uv_timer_t tick; /* wakes uv_run so done() is looked at regularly */
  uv_timer_init(&r->loop, &tick);
  uv_timer_start(&tick, on_real_tick, 20, 20);
  detour_ms limit = real_limit(r->s) + (r->ext ? EXT_JOIN_MARGIN_MS : 0);
  uint64_t end = uv_hrtime() + (uint64_t)limit * 1000000u;
  while (!all_done(r) && uv_hrtime() < end)
    uv_run(&r->loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&tick, NULL);
  uv_run(&r->loop, UV_RUN_NOWAIT);
  return all_done(r) ? 0 : DETOUR_EIO;
}

static bool servers_quiet(void *arg) {
  run *r = arg;
  for (size_t i = 0; i < r->s->nservers; i++) {
    detour_fake_stats st;
    detour_fake_server_stats(r->srv[i], &st);
    if (st.active > 0)
      return false;
  }
  return true;
}

/* After the client is done, let the servers see the last closes, so their
 * records are complete. Bounded in real time. */
static void settle(run *r) {
  if (!r->s->realtime) {
    detour_clock_run_virtual(r->clock, servers_quiet, r, SETTLE_REAL_LIMIT_MS);
    return;
  }
  uint64_t end = uv_hrtime() + (uint64_t)SETTLE_REAL_LIMIT_MS * 1000000u;
  while (!servers_quiet(r) && uv_hrtime() < end)
    uv_run(&r->loop, UV_RUN_NOWAIT);
}

static void execute(run *r) {
  int rc;
  if (r->s->realtime)
    rc = run_real(r);
  else
    rc = detour_clock_run_virtual(r->clock, all_done, r, VIRTUAL_REAL_LIMIT_MS);
  r->res->end_t = now_off(r);
  if (detour__scn_interrupted())
    detour__scn_fail(r->res,
                     "interrupted (SIGINT/SIGTERM): stopped and torn down");
  else if (r->limit_hit)
    detour__scn_fail(r->res, "not finished after the limit of the scenario "
                             "(limit: key)");
  else if (rc == DETOUR_EIO)
    detour__scn_fail(r->res, "not finished after %lld s of real time",
                     !r->s->realtime ? (long long)VIRTUAL_REAL_LIMIT_MS / 1000
                     : r->s->limit_set
                         ? (long long)(r->s->limit / 1000)
                         : (long long)REALTIME_DEFAULT_LIMIT_MS / 1000);
  else if (rc < 0)
    detour__scn_fail(r->res, "the run stopped with messages unfinished (%s)",
                     detour_strerror(rc));
  if ((r->ext || (r->driver && detour_uv_idle(r->driver))) &&
      !detour__scn_interrupted())
    settle(r);
  if (detour__scn_net_error(r->net)[0])
    detour__scn_fail(r->res, "%s", detour__scn_net_error(r->net));
}

/* ------------------------------------------------------------------------ */
/* Copying what the servers saw                                              */

static int copy_conns(detour_fake_server *srv, detour_scenario_server *o,
                      detour_ms start) {
  size_t n = detour_fake_server_conn_count(srv);
  o->conns = calloc(n ? n : 1, sizeof *o->conns);
  if (!o->conns)
    return DETOUR_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    detour_fake_conn c;
    if (detour_fake_server_conn(srv, i, &c) < 0)
      break;
    detour_scenario_conn *d = &o->conns[o->nconns++];
    d->id = c.id;
    d->accept_t = c.accept_time - start;
    d->close_t = c.close_time == DETOUR_NO_DEADLINE ? DETOUR_NO_DEADLINE
                                                    : c.close_time - start;
    d->closed_by = detour_fake_closer_name(c.closed_by);
  }
  return 0;
}

static int copy_msgs(detour_fake_server *srv, detour_scenario_server *o,
                     detour_ms start) {
  size_t n = detour_fake_server_message_count(srv);
  o->msgs = calloc(n ? n : 1, sizeof *o->msgs);
  if (!o->msgs)
    return DETOUR_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    detour_fake_message m;
    if (detour_fake_server_message(srv, i, &m) < 0)
      break;
    detour_scenario_received *d = &o->msgs[o->nmsgs++];
    d->conn = m.conn;
    d->t = m.time - start;
    d->from = detour__scn_strdup(m.from);
    d->rcpts = calloc(m.nrcpts ? m.nrcpts : 1, sizeof *d->rcpts);
    for (size_t k = 0; d->rcpts && k < m.nrcpts; k++)
      d->rcpts[d->nrcpts++] = detour__scn_strdup(m.rcpts[k]);
    d->body = detour__scn_memdup(m.body ? m.body : "", m.body ? m.body_len : 0);
    d->body_len = m.body ? m.body_len : 0;
    d->complete = m.complete;
    d->code = m.code;
    if (!d->from || !d->rcpts || !d->body)
      return DETOUR_ENOMEM;
  }
  return 0;
}

static int copy_cmds(detour_fake_server *srv, detour_scenario_server *o,
                     detour_ms start) {
  size_t n = detour_fake_server_event_count(srv), cap = 0;
  for (size_t i = 0; i < n; i++) {
    detour_fake_event ev;
    if (detour_fake_server_event(srv, i, &ev) < 0)
      break;
    if (ev.type != DETOUR_FAKE_EV_COMMAND)
      continue;
    if (detour__scn_grow(&o->cmds, &cap, o->ncmds, sizeof *o->cmds) < 0)
      return DETOUR_ENOMEM;
    detour_scenario_command *c = &o->cmds[o->ncmds++];
    c->conn = ev.conn;
    c->t = ev.time - start;
    if (!(c->line =
              detour__scn_memdup(ev.data ? ev.data : "", ev.data ? ev.len : 0)))
      return DETOUR_ENOMEM;
  }
  return 0;
}

static int copy_servers(run *r) {
  detour_scenario_result *res = r->res;
  res->servers = calloc(r->s->nservers, sizeof *res->servers);
  if (!res->servers)
    return DETOUR_ENOMEM;
  for (size_t i = 0; i < r->s->nservers && r->srv[i]; i++) {
    detour_scenario_server *o = &res->servers[res->nservers++];
    o->name = detour__scn_strdup(r->s->servers[i].name);
    o->address = detour__scn_strdup(detour_fake_server_address(r->srv[i]));
    int rc = copy_conns(r->srv[i], o, res->start);
    if (rc == 0)
      rc = copy_msgs(r->srv[i], o, res->start);
    if (rc == 0)
      rc = copy_cmds(r->srv[i], o, res->start);
    if (rc < 0)
      return rc;
  }
  return 0;
}

/* Device mode: only the device may connect; a connection from anywhere
 * else is evidence of something else on the wire, and fails the run. */
static void check_peers(run *r) {
  const char *peer = r->s->device->peer;
  size_t plen = strlen(peer);
  for (size_t i = 0; i < r->s->nservers && r->srv[i]; i++) {
    size_t n = detour_fake_server_conn_count(r->srv[i]);
    for (size_t k = 0; k < n; k++) {
      detour_fake_conn c;
      if (detour_fake_server_conn(r->srv[i], k, &c) < 0)
        continue;
      if (strncmp(c.peer, peer, plen) != 0 || c.peer[plen] != ':')
        detour__scn_fail(
            r->res,
            "server %s: a connection from %s, which is not the device "
            "(--peer %s)",
            r->s->servers[i].name, c.peer, peer);
    }
  }
}

/* What the external client's thread learnt, and the outcomes from the
 * servers' records; returns the client's log tail (for a failure). */
static char *collect_external(run *r) {
  detour__scn_ext_collect(r->ext, r->res);
  if (r->res->verdict != DETOUR_VERDICT_ERROR &&
      detour__scn_ext_outcomes(r->s, r->res) < 0)
    detour__scn_fail(r->res, "out of memory rebuilding the outcomes");
  return detour__scn_ext_log_tail(r->ext);
}

/* The `detour send` exit convention over every message. */
static int exit_code_of(const detour_scenario_result *res) {
  bool deferred = false, aborted = false;
  for (size_t i = 0; i < res->nmsgs; i++) {
    deferred |=
        !res->msgs[i].done || res->msgs[i].status == DETOUR_DONE_DEFERRED;
    aborted |= res->msgs[i].status == DETOUR_DONE_ABORTED;
  }
  return deferred ? EX_TEMPFAIL : aborted ? EX_NOUSER : 0;
}

/* ------------------------------------------------------------------------ */
/* Teardown                                                                  */

/* Every path ends here, setup failures included. The network goes last:
 * the sockets in its namespaces are closed by then. */
static void teardown(run *r) {
  hook_finished(r);
  detour__scn_ext_free(r->ext); /* the client first: it may hold connections */
  for (size_t i = 0; i < SCN_MAX_MESSAGES; i++)
    detour_timer_free(r->slots[i].timer);
  detour_timer_free(r->limit_timer);
  detour__scn_net_disarm(r->net);
  if (r->driver)
    detour_uv_free(r->driver);
  for (size_t i = 0; i < SCN_MAX_SERVERS; i++)
    if (r->srv[i])
      detour_fake_server_free(r->srv[i]);
  /* Let every close callback run; bounded, a stuck handle is reported. */
  for (int i = 0; i < 10000 && uv_loop_alive(&r->loop); i++)
    uv_run(&r->loop, UV_RUN_NOWAIT);
  detour_engine_free(r->engine);
  if (r->clock)
    detour_clock_free(r->clock);
  if (uv_loop_close(&r->loop) != 0)
    detour__scn_fail(r->res, "internal: the loop did not close clean");
  char err[512] = "";
  if (detour__scn_net_stop(r->net, err, sizeof err) < 0)
    detour__scn_fail(r->res, "%s", err);
  r->net = NULL;
  if (r->ca_dir[0])
    detour_fake_ca_remove(r->ca_dir);
  r->ca_dir[0] = '\0';
}

static int fill_header(const detour_scenario *s, detour_scenario_result *res) {
  res->name = detour__scn_strdup(s->name);
  res->file = detour__scn_strdup(s->file);
  res->description = detour__scn_strdup(s->description);
  res->rules = calloc(s->nrules ? s->nrules : 1, sizeof *res->rules);
  res->msgs = calloc(s->nmsgs ? s->nmsgs : 1, sizeof *res->msgs);
  if (!res->name || !res->file || !res->rules || !res->msgs)
    return DETOUR_ENOMEM;
  for (size_t i = 0; i < s->nrules; i++)
    if (!(res->rules[res->nrules++] = strdup(s->rules[i])))
      return DETOUR_ENOMEM;
  res->nmsgs = s->nmsgs;
  res->realtime = s->realtime;
  res->mutated = s->mutated;
  res->exit_code = -1; /* until the built-in engine ran */
  if (s->adapter) {
    const detour_adapter *a = detour__scn_adapter_of(s);
    if (!(res->client = strdup(a ? a->name : s->adapter)))
      return DETOUR_ENOMEM;
  }
  res->network = s->net.enabled;
  return 0;
}

/* Not run here: the verdict SKIP with the reason as its one "failure"
 * (what the terminal, JSON and JUnit show). */
static bool skipped(const detour_scenario *s, detour_scenario_result *out) {
  char why[512] = "";
  if (s->adapter && detour__scn_ext_skip(s, why, sizeof why))
    detour__scn_fail(out, "%s", why);
  else if (s->net.enabled && !detour_netsim_available(why, sizeof why))
    detour__scn_fail(out, "skipped: needs the simulated network: %s", why);
  else if (s->realtime && !s->realtime_ok)
    detour__scn_fail(out,
                     "skipped: realtime: false (a long schedule, virtual time "
                     "only)");
  else if (detour__scn_interrupted())
    detour__scn_fail(out, "skipped: interrupted before it started");
  else
    return false;
  out->verdict = DETOUR_VERDICT_SKIP;
  return true;
}

int detour_scenario_run(const detour_scenario *s, detour_scenario_result *out) {
  memset(out, 0, sizeof *out);
  uint64_t t0 = uv_hrtime();
  if (fill_header(s, out) < 0) {
    detour_scenario_result_free(out);
    return DETOUR_ENOMEM;
  }
  if (skipped(s, out))
    return 0;
  run *r = calloc(1, sizeof *r);
  if (!r) {
    detour_scenario_result_free(out);
    return DETOUR_ENOMEM;
  }
  r->s = s;
  r->res = out;
  if (setup(r) < 0) {
    detour__scn_fail(out, "setup: %s",
                     r->failure[0] ? r->failure : "out of memory");
    out->verdict = DETOUR_VERDICT_ERROR;
  } else {
    execute(r);
    if (copy_servers(r) < 0)
      detour__scn_fail(out, "out of memory copying the servers' records");
    else if (s->device)
      check_peers(r);
  }
  char *client_log = r->ext && out->verdict != DETOUR_VERDICT_ERROR
                         ? collect_external(r)
                         : NULL;
  /* an external client's exit status is no evidence (and there is none
   * for a client that runs as a daemon): only the engine's means much */
  out->exit_code = r->ext || s->adapter ? -1 : exit_code_of(out);
  if (r->loop_inited)
    teardown(r);
  free(r);
  if (out->verdict != DETOUR_VERDICT_ERROR) {
    detour__scn_check(s, out);
    out->verdict = out->nfailures ? DETOUR_VERDICT_FAIL : DETOUR_VERDICT_PASS;
  }
  if (client_log && out->verdict != DETOUR_VERDICT_PASS)
    detour__scn_fail(out, "%s", client_log); /* for the reader, not evidence */
  free(client_log);
  out->wall_ms = (double)(uv_hrtime() - t0) / 1e6;
  return 0;
}

int detour_scenario_result_error(detour_scenario_result *out, const char *file,
                                 const char *text) {
  memset(out, 0, sizeof *out);
  out->exit_code = -1;
  out->file = detour__scn_strdup(file);
  const char *slash = file ? strrchr(file, '/') : NULL;
  out->name = detour__scn_strdup(slash ? slash + 1 : file ? file : "?");
  out->verdict = DETOUR_VERDICT_ERROR;
  detour__scn_fail(out, "%s", text);
  return out->file && out->name ? 0 : DETOUR_ENOMEM;
}

static void free_strs(char **a, size_t n) {
  for (size_t i = 0; a && i < n; i++)
    free(a[i]);
  free(a);
}

static void free_server(detour_scenario_server *o) {
  free(o->name);
  free(o->address);
  free(o->conns);
  for (size_t k = 0; k < o->nmsgs; k++) {
    free(o->msgs[k].from);
    free_strs(o->msgs[k].rcpts, o->msgs[k].nrcpts);
    free(o->msgs[k].body);
  }
  free(o->msgs);
  for (size_t k = 0; k < o->ncmds; k++)
    free(o->cmds[k].line);
  free(o->cmds);
}

void detour_scenario_result_free(detour_scenario_result *r) {
  if (!r)
    return;
  free(r->name);
  free(r->file);
  free(r->description);
  free(r->client);
  free_strs(r->rules, r->nrules);
  free_strs(r->failures, r->nfailures);
  for (size_t i = 0; i < r->nrows; i++) {
    free(r->rows[i].recipient);
    free(r->rows[i].server);
    free(r->rows[i].result);
    free(r->rows[i].detail);
  }
  free(r->rows);
  for (size_t i = 0; i < r->nwarnings; i++)
    free(r->warnings[i].text);
  free(r->warnings);
  for (size_t i = 0; i < r->nrcpts; i++) {
    free(r->rcpts[i].recipient);
    free(r->rcpts[i].server);
    free(r->rcpts[i].detail);
  }
  free(r->rcpts);
  free(r->msgs);
  for (size_t i = 0; i < r->nservers; i++)
    free_server(&r->servers[i]);
  free(r->servers);
  memset(r, 0, sizeof *r);
}

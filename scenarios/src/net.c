/*
 * net.c - the simulated network of one scenario run (`network:`): starts
 * ns-3 between namespaces (fakeservers/netsim/netsim.h), creates each fake
 * server's listener inside its own namespace, moves the runner's loop
 * thread into the client's namespace so the engine's connects leave from
 * there, and applies the scenario's network events: at a time from the
 * start, or when a fake server saw something (a trigger), which stays
 * right however long the dialogue before it took.
 *
 * Addresses are the run's own namespace addresses (10.201.k.2, port 25);
 * nothing else is ever contacted. detour__scn_net_stop always leaves the
 * namespace and removes everything the run made, also after a failure;
 * what a crash leaves is swept by the next run (detour_netsim_start).
 */
#include <stdlib.h>
#include <string.h>

#include "scn_internal.h"

#define SMTP_PORT 25

typedef struct detour__scn_net detour__scn_net;

/* An event waiting for its time (timed events, triggers with `after`). */
typedef struct pending {
  detour__scn_net *n;
  const detour__scn_net_event *e;
  detour_timer *timer;
  struct pending *next;
} pending;

/* The observer's argument: which server spoke. */
typedef struct {
  detour__scn_net *n;
  size_t server;
} watch;

struct detour__scn_net {
  const detour_scenario *s;
  detour_netsim *ns;
  int saved; /* the namespace the loop thread came from; -1: not entered */
  detour_clock *clock;
  pending *pending;
  watch watches[SCN_MAX_SERVERS];
  unsigned *seen; /* per event: how often its trigger happened */
  char error[256];
};

/* ------------------------------------------------------------------------ */
/* Start and stop                                                            */

static void fill_spec(const detour_scenario *s, detour_netsim_spec *spec) {
  memset(spec, 0, sizeof *spec);
  spec->nservers = s->nservers;
  spec->client = s->net.client;
  for (size_t i = 0; i < s->nservers; i++)
    spec->servers[i] = s->net.servers[i];
  /* events are applied by the runner (times from the scenario's t = 0,
   * triggers), not by the program's own clock */
  spec->log_path = getenv("DETOUR_NETSIM_LOG");
}

detour__scn_net *detour__scn_net_start(const detour_scenario *s, char *err,
                                       size_t errlen) {
  detour__scn_net *n = calloc(1, sizeof *n);
  if (n)
    n->seen = calloc(s->net.nevents ? s->net.nevents : 1, sizeof *n->seen);
  if (!n || !n->seen) {
    snprintf(err, errlen, "out of memory");
    if (n)
      free(n->seen);
    free(n);
    return NULL;
  }
  n->s = s;
  n->saved = -1;
  detour_netsim_spec spec;
  fill_spec(s, &spec);
  char why[512] = "";
  if (detour_netsim_start(&spec, &n->ns, why, sizeof why) != 0) {
    snprintf(err, errlen, "network: %s", why);
    free(n->seen);
    free(n);
    return NULL;
  }
  return n;
}

int detour__scn_net_stop(detour__scn_net *n, char *err, size_t errlen) {
  if (!n)
    return 0;
  detour__scn_net_disarm(n);
  int rc = 0;
  if (n->saved >= 0 && detour_netsim_leave(n->saved) != 0) {
    snprintf(err, errlen, "network: could not leave the client namespace");
    rc = -1;
  }
  char run_id[64];
  snprintf(run_id, sizeof run_id, "%s", detour_netsim_run_id(n->ns));
  if (detour_netsim_stop(n->ns) != 0 && rc == 0) {
    char what[256] = "";
    detour_netsim_leftovers(run_id, what, sizeof what);
    snprintf(err, errlen, "network: run %s not removed completely: %s", run_id,
             what);
    rc = -1;
  }
  free(n->seen);
  free(n);
  return rc;
}

const char *detour__scn_net_client_netns(const detour__scn_net *n) {
  return detour_netsim_netns(n->ns, DETOUR_NETSIM_CLIENT);
}

const char *detour__scn_net_client_tap(const detour__scn_net *n) {
  return detour_netsim_tap(n->ns, DETOUR_NETSIM_CLIENT);
}

const char *detour__scn_net_error(const detour__scn_net *n) {
  return n ? n->error : "";
}

int detour__scn_net_enter_client(detour__scn_net *n, char *err, size_t errlen) {
  if (detour_netsim_enter(n->ns, DETOUR_NETSIM_CLIENT, &n->saved) != 0) {
    n->saved = -1;
    snprintf(err, errlen, "network: cannot enter the client namespace %s",
             detour__scn_net_client_netns(n));
    return -1;
  }
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Events                                                                    */

/* Blocks the loop for one round trip to the program (a few ms): the
 * change is in force when the command returns, before the server's reply
 * to a trigger is written. */
static void apply(detour__scn_net *n, const detour__scn_net_event *e) {
  char reply[256] = "";
  int rc = detour_netsim_command(n->ns, e->command, reply, sizeof reply);
  if (rc != 0 && !n->error[0])
    snprintf(n->error, sizeof n->error,
             "network event '%s' (%s:%d:%d) "
             "failed: %s",
             e->text, n->s->file, e->line, e->col,
             reply[0] ? reply : detour_strerror(rc));
}

static void on_pending(detour_timer *t, void *arg) {
  pending *p = arg;
  apply(p->n, p->e);
}

/* Apply e at absolute time `when` (now or later). */
static void schedule(detour__scn_net *n, const detour__scn_net_event *e,
                     detour_ms when) {
  if (when <= detour_clock_now(n->clock)) {
    apply(n, e);
    return;
  }
  pending *p = calloc(1, sizeof *p);
  if (p)
    p->timer = detour_timer_new(n->clock, on_pending, p);
  if (!p || !p->timer) {
    free(p);
    snprintf(n->error, sizeof n->error, "network: out of memory");
    return;
  }
  p->n = n;
  p->e = e;
  p->next = n->pending;
  n->pending = p;
  detour_timer_start(p->timer, when);
}

static bool matches(const detour__scn_net_event *e,
                    const detour_fake_event *ev) {
  switch (e->when) {
  case SCN_NET_ON_CONNECT:
    return ev->type == DETOUR_FAKE_EV_ACCEPT;
  case SCN_NET_ON_COMMAND:
    return ev->type == DETOUR_FAKE_EV_COMMAND && ev->stage == e->stage;
  case SCN_NET_ON_MESSAGE:
    return ev->type == DETOUR_FAKE_EV_MESSAGE;
  case SCN_NET_ON_CLOSE:
    return ev->type == DETOUR_FAKE_EV_CLOSE;
  default:
    return false;
  }
}

/* Called by the fake server for everything it sees, before it acts. */
static void on_server_event(void *arg, detour_fake_server *srv,
                            const detour_fake_event *ev) {
  watch *w = arg;
  detour__scn_net *n = w->n;
  if (!n->clock)
    return; /* before detour__scn_net_arm: nothing is submitted yet */
  for (size_t k = 0; k < n->s->net.nevents; k++) {
    const detour__scn_net_event *e = &n->s->net.events[k];
    if (e->when == SCN_NET_AT || (size_t)e->server != w->server ||
        !matches(e, ev))
      continue;
    n->seen[k]++;
    if (e->nth == 0 || n->seen[k] == e->nth)
      schedule(n, e, detour_clock_now(n->clock) + e->after);
  }
}

int detour__scn_net_arm(detour__scn_net *n, detour_clock *c, detour_ms start) {
  n->clock = c;
  for (size_t k = 0; k < n->s->net.nevents; k++) {
    const detour__scn_net_event *e = &n->s->net.events[k];
    if (e->when == SCN_NET_AT)
      schedule(n, e, start + e->at);
  }
  return n->error[0] ? -1 : 0;
}

void detour__scn_net_disarm(detour__scn_net *n) {
  if (!n)
    return;
  while (n->pending) {
    pending *p = n->pending;
    n->pending = p->next;
    detour_timer_free(p->timer);
    free(p);
  }
  n->clock = NULL;
}

/* ------------------------------------------------------------------------ */
/* Fake servers                                                              */

const char *detour__scn_net_listen(const detour__scn_net *n, size_t i,
                                   char *buf, size_t len) {
  snprintf(buf, len, "%s:%d", detour_netsim_addr(n->ns, (int)i), SMTP_PORT);
  return buf;
}

typedef struct {
  detour_fake_server *srv;
  char *why;
  size_t whylen;
} listen_call;

/* Runs inside the server's namespace: the listening socket is made here
 * and stays in it; accepted sessions inherit it. */
static int listen_inside(void *arg) {
  listen_call *c = arg;
  return detour_fake_server_start(c->srv, c->why, c->whylen) < 0 ? -1 : 0;
}

int detour__scn_net_start_server(detour__scn_net *n, size_t i,
                                 detour_fake_server *srv, char *err,
                                 size_t errlen) {
  char why[256] = "";
  listen_call c = {srv, why, sizeof why};
  n->watches[i].n = n;
  n->watches[i].server = i;
  detour_fake_server_set_observer(srv, on_server_event, &n->watches[i]);
  int rc = detour_netsim_run_in(n->ns, (int)i, listen_inside, &c);
  if (rc != 0) {
    snprintf(err, errlen, "%s", why[0] ? why : "cannot enter its namespace");
    return -1;
  }
  return 0;
}

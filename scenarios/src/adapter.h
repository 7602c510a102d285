/*
 * adapter.h - external clients (certification, DESIGN "external
 * clients"): an adapter tells the scenario runner how to configure, start,
 * feed and stop an SMTP client that is not the built-in engine (Postfix,
 * ...). The runner renders the scenario's client section into a
 * scn_adapter_config, the adapter turns that into the client's own
 * configuration, and the verdict comes only from what the fake servers
 * saw: connections, messages, which server accepted each recipient. The
 * client's word (its log, its exit status) is never evidence; its log is
 * only shown to a reader when a scenario fails.
 *
 * Every adapter call is blocking and bounded; the runner calls them from a
 * thread of their own while its loop serves the fake servers, so a client
 * that connects while a call is in progress is answered at once.
 */
#ifndef DETOUR_SCN_ADAPTER_H
#define DETOUR_SCN_ADAPTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "detour/detour.h"
#include "detour/scenario.h"

/* One server of the client's list, in priority order (index 0 = the
 * normal server, R1). host is always a loopback address of a fake server:
 * the runner never points an external client anywhere else. */
typedef struct {
  const char *name; /* the fake server's name, for messages */
  char host[64];
  uint16_t port;
  int priority;
} scn_adapter_server;

/* The scenario's client section, as far as a generic client can take it.
 * Keys the adapter does not list in `keys` make the scenario a SKIP. */
typedef struct {
  const char *scenario; /* its name, for messages and temp names */
  const scn_adapter_server *servers;
  size_t nservers;
  detour_ms retry_interval; /* R6 */
  unsigned max_attempts;    /* R6; most clients have no such limit */
  detour_timeouts timeouts; /* R11 */
  const char *helo_name;
} scn_adapter_config;

typedef struct {
  const char *from;
  const char *const *rcpts;
  size_t nrcpts;
  const char *body; /* LF or CRLF line ends, not dot-stuffed */
  size_t body_len;
} scn_adapter_message;

typedef struct {
  const char *name; /* what `--client` and `adapter:` say */
  /* Top-level keys of the scenario's `client:` section the adapter
   * renders, space-separated ("servers retry timeouts"). */
  const char *keys;
  /* Can the client run here? false with the reason (not installed, not
   * root) in why: the scenario is then a SKIP. */
  bool (*available)(char *why, size_t len);
  /* Write the client's configuration and start it. Returns an instance,
   * or NULL with err (and nothing left behind). */
  void *(*prepare)(const scn_adapter_config *c, char *err, size_t errlen);
  /* Hand the client one message; returns once the client has taken it
   * (0) or failed to (-1 with err). Bounded. */
  int (*submit)(void *inst, const scn_adapter_message *m, char *err,
                size_t errlen);
  /* Wait at most timeout ms for the client to hold no message any more
   * (delivered, bounced, or given up). 1 done, 0 not yet, -1 error. */
  int (*wait_done)(void *inst, detour_ms timeout, char *err, size_t errlen);
  /* The client's own log file, or NULL. Valid until teardown. */
  const char *(*logs)(void *inst);
  /* Stop the client and remove everything prepare made; bounded, and
   * safe after a failed submit or wait. */
  void (*teardown)(void *inst);
} scn_adapter;

/* The adapter called name, or NULL. "builtin" and "detour" are the
 * built-in engine, which needs no adapter (NULL too). */
const scn_adapter *scn_adapter_find(const char *name);
/* "postfix" (every known name, space-separated), for messages. */
const char *scn_adapter_names(void);
/* true when name means the built-in engine (NULL, "", builtin, detour). */
bool scn_adapter_is_builtin(const char *name);

/* adapter_postfix.c */
extern const scn_adapter scn_adapter_postfix;

/* ------------------------------------------------------------------------ */
/* The runner's side (adapter.c): one external-client run                   */

typedef struct scn_ext scn_ext;

/* Why s cannot run against an external client here (a SKIP), or false:
 * virtual-time only, a simulated network, literal hosts, client keys the
 * adapter cannot render, expectations that only the client's own word
 * could satisfy (status, exit, log, warnings, outcomes other than
 * delivered), or the client is not available. */
bool scn_ext_skip(const detour_scenario *s, char *why, size_t len);

/* Prepare the client for s with servers (priority order, bound
 * addresses). NULL with err. Slow (starts the client): before t = 0. */
scn_ext *scn_ext_new(const detour_scenario *s,
                     const scn_adapter_server *servers, size_t nservers,
                     char *err, size_t errlen);
/* Start the thread that submits the messages at their times (counted from
 * hr0, a uv_hrtime() reading taken at t = 0) and then waits for the
 * client, at most limit ms from t = 0. 0 or -1 with err. */
int scn_ext_begin(scn_ext *x, uint64_t hr0, detour_ms limit, char *err,
                  size_t errlen);
/* The thread is done (client finished, gave up, or failed). */
bool scn_ext_finished(const scn_ext *x);
/* Stop the thread (bounded) and fill what it learnt into r: submission
 * times, and failures for messages the client did not take or a client
 * that did not finish. */
void scn_ext_collect(scn_ext *x, detour_scenario_result *r);
/* The client's log (a tail of it) as a new string, or NULL. */
char *scn_ext_log_tail(const scn_ext *x);
/* Stops the client, removes its files, frees x. NULL is fine. */
void scn_ext_free(scn_ext *x);

/* Outcomes from what the fake servers saw: a recipient is delivered
 * (with the server's name and time) when a server answered 2xx to the
 * final "." of a message that named it; else no server took it. Fills
 * r->rcpts; r->servers must be filled. 0 or DETOUR_ENOMEM. */
int scn_ext_outcomes(const detour_scenario *s, detour_scenario_result *r);

#endif /* DETOUR_SCN_ADAPTER_H */

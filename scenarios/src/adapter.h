/*
 * adapter.h - the scenario runner's side of external clients (certification,
 * DESIGN "external clients"). The adapter interface itself is public
 * (detour/adapter.h: `detour bench` uses it too); here is what only the
 * runner needs: which names mean the built-in engine, and one
 * external-client run. The runner renders the scenario's client section
 * into a detour_adapter_config, the adapter turns that into the client's
 * own configuration, and the verdict comes only from what the fake servers
 * saw: connections, messages, which server accepted each recipient. The
 * client's log is only shown to a reader when a scenario fails.
 *
 * The runner calls submit and wait_done from a thread of their own while
 * its loop serves the fake servers.
 */
#ifndef DETOUR_SCN_ADAPTER_H
#define DETOUR_SCN_ADAPTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "detour/adapter.h"
#include "detour/detour.h"
#include "detour/scenario.h"

/* true when name means the built-in engine (NULL, "", builtin, detour). */
bool detour__scn_adapter_is_builtin(const char *name);

/* adapter_device.c: the adapter of device mode (`detour certify
 * --device`), for the options o. */
const detour_adapter *
detour__scn_device_adapter(const detour_device_options *o);
/* The adapter of s: its device, or the manifest s->adapter names. */
const detour_adapter *detour__scn_adapter_of(const detour_scenario *s);

/* adapter_smtp.c: a client that takes mail over SMTP (its own listener).
 * A connected socket with I/O timeouts, or -1. */
int detour__scn_smtp_connect(const char *host, uint16_t port);
/* Hand m over (EHLO, MAIL, RCPT TO:<r> rcpt_params, DATA); 0 or -1 with
 * err. Bounded by socket timeouts. */
int detour__scn_smtp_submit(const char *host, uint16_t port,
                            const char *rcpt_params,
                            const detour_adapter_message *m, char *err,
                            size_t errlen);

/* ------------------------------------------------------------------------ */
/* The runner's side (adapter.c): one external-client run                   */

typedef struct detour__scn_ext detour__scn_ext;

/* Why s cannot run against an external client here (a SKIP), or false:
 * virtual-time only, a simulated network, literal hosts, client keys the
 * adapter cannot render, expectations that only the client's own word
 * could satisfy (status, exit, log, warnings, outcomes other than
 * delivered), or the client is not available. */
bool detour__scn_ext_skip(const detour_scenario *s, char *why, size_t len);

/* Prepare the client for s with servers (priority order, bound
 * addresses). NULL with err. Slow (starts the client): before t = 0. */
detour__scn_ext *detour__scn_ext_new(const detour_scenario *s,
                                     const detour_adapter_server *servers,
                                     size_t nservers, char *err, size_t errlen);
/* Start the thread that submits the messages at their times (counted from
 * hr0, a uv_hrtime() reading taken at t = 0) and then waits for the
 * client, at most limit ms from t = 0. 0 or -1 with err. */
int detour__scn_ext_begin(detour__scn_ext *x, uint64_t hr0, detour_ms limit,
                          char *err, size_t errlen);
/* The thread is done (client finished, gave up, or failed). */
bool detour__scn_ext_finished(const detour__scn_ext *x);
/* Stop the thread (bounded) and fill what it learnt into r: submission
 * times, and failures for messages the client did not take or a client
 * that did not finish. */
void detour__scn_ext_collect(detour__scn_ext *x, detour_scenario_result *r);
/* The client's log (a tail of it) as a new string, or NULL. */
char *detour__scn_ext_log_tail(const detour__scn_ext *x);
/* Stops the client, removes its files, frees x. NULL is fine. */
void detour__scn_ext_free(detour__scn_ext *x);

/* Outcomes from what the fake servers saw: a recipient is delivered
 * (with the server's name and time) when a server answered 2xx to the
 * final "." of a message that named it; else no server took it. Fills
 * r->rcpts; r->servers must be filled. 0 or DETOUR_ENOMEM. */
int detour__scn_ext_outcomes(const detour_scenario *s,
                             detour_scenario_result *r);

#endif /* DETOUR_SCN_ADAPTER_H */

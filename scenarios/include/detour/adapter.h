/*
 * adapter.h - external SMTP clients behind one interface (target
 * detour::scenario): how to configure, start, feed and stop a client that
 * is not the built-in engine (Postfix, ...), each instance private to its
 * caller and pointed only at loopback servers. The scenario runner's
 * external-client mode (`detour run --client NAME`, DESIGN "external
 * clients") judges such a client by what its fake servers saw; `detour
 * bench` times one side by side with the engine. The caller's fake
 * servers are the only evidence: a client's log and exit status are for a
 * human reader, never for a verdict or a figure.
 *
 * Every call is blocking and bounded. A caller that serves the fake
 * servers from an event loop calls submit and wait_done from another
 * thread, so that a client connecting during a call is answered at once.
 * Adapters are static: nothing here is freed by the caller.
 */
#ifndef DETOUR_ADAPTER_H
#define DETOUR_ADAPTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "detour/detour.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One server of the client's list, in priority order (index 0 = the
 * normal server, R1). host must be a loopback address: an adapter refuses
 * anything else, so a client is never pointed outside the machine. */
typedef struct {
  const char *name; /* the server's name, for messages */
  char host[64];
  uint16_t port;
  int priority;
} detour_adapter_server;

/* What a generic client can be told. Its time values are rounded up to
 * what the client understands (whole seconds for Postfix). */
typedef struct {
  const char *scenario; /* the caller's run, for messages and temp names */
  const detour_adapter_server *servers;
  size_t nservers;
  detour_ms retry_interval; /* R6 */
  unsigned max_attempts;    /* R6; most clients have no such limit */
  detour_timeouts timeouts; /* R11 */
  const char *helo_name;    /* NULL: the adapter's default */
} detour_adapter_config;

typedef struct {
  const char *from;
  const char *const *rcpts;
  size_t nrcpts;
  const char *body; /* LF or CRLF line ends, not dot-stuffed */
  size_t body_len;
} detour_adapter_message;

typedef struct {
  const char *name; /* what `--client` and `adapter:` say */
  /* Top-level keys of a scenario's `client:` section the adapter
   * renders, space-separated ("servers retry timeouts"). */
  const char *keys;
  /* Can the client run here? false with the reason (not installed, not
   * root) in why. */
  bool (*available)(char *why, size_t len);
  /* Write the client's configuration and start it. Returns an instance,
   * owned by the caller until teardown, or NULL with err (and nothing
   * left behind). */
  void *(*prepare)(const detour_adapter_config *c, char *err, size_t errlen);
  /* Hand the client one message; returns once the client has taken it
   * (0) or failed to (-1 with err). Bounded. */
  int (*submit)(void *inst, const detour_adapter_message *m, char *err,
                size_t errlen);
  /* Wait at most timeout ms for the client to hold no message any more
   * (delivered, bounced, or given up). 1 done, 0 not yet, -1 error. */
  int (*wait_done)(void *inst, detour_ms timeout, char *err, size_t errlen);
  /* The client's own log file, or NULL. Valid until teardown. */
  const char *(*logs)(void *inst);
  /* Stop the client and remove everything prepare made; bounded, safe
   * after a failed submit or wait, and the end of inst. */
  void (*teardown)(void *inst);
} detour_adapter;

/* The adapter called name ("postfix"), or NULL. The built-in engine is no
 * adapter ("builtin" and "detour" give NULL too). Static; never freed. */
const detour_adapter *detour_adapter_find(const char *name);

#ifdef __cplusplus
}
#endif

#endif /* DETOUR_ADAPTER_H */

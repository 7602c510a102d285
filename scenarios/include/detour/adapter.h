/*
 * adapter.h - external SMTP clients behind one interface (target
 * detour::scenario): how to configure, start, feed and stop a client that
 * is not the built-in engine (Postfix, ...), each instance private to its
 * caller and pointed only at loopback servers (or at servers in network
 * namespaces the caller created). The scenario runner's
 * external-client mode (`detour run --client NAME`, DESIGN "external
 * clients") judges such a client by what its fake servers saw; `detour
 * bench` times one side by side with the engine. The caller's fake
 * servers are the only evidence: a client's log and exit status are for a
 * human reader, never for a verdict or a figure.
 *
 * Every call is blocking and bounded. A caller that serves the fake
 * servers from an event loop calls submit and wait_done from another
 * thread, so that a client connecting during a call is answered at once.
 *
 * Most adapters are client manifests (clients/NAME.yaml, clients/README.md)
 * loaded at run time by detour_adapter_load and kept until the process
 * ends; the C interface below is what a manifest compiles to, and stays
 * for what a manifest cannot say. Nothing here is freed by the caller.
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
 * normal server, R1). host must be a loopback address, or an IP address
 * inside a network namespace the caller created (see
 * detour_adapter_config.private_network): an adapter refuses anything
 * else, so a client is never pointed outside the machine. */
typedef struct {
  const char *name; /* the server's name, for messages */
  char host[64];
  uint16_t port;
  int priority;
} detour_adapter_server;

/* What a generic client can be told. Its time values are rounded up to
 * what the client understands (whole seconds for Postfix). */
/* How the fake servers must be placed for a client (the runner binds
 * them; the adapter only says which shape its client's list needs). */
typedef enum {
  /* each server its own loopback address and port (127.0.0.2:P1, ...) */
  DETOUR_PLACE_PORTS = 0,
  /* distinct loopback addresses on one port, behind one host name: for
   * clients whose list is one name's addresses (the adapter makes the
   * name resolve, e.g. a private /etc/hosts) */
  DETOUR_PLACE_SAME_PORT
} detour_adapter_placement;

typedef struct {
  const char *scenario; /* the caller's run, for messages and temp names */
  const detour_adapter_server *servers;
  size_t nservers;
  /* DETOUR_PLACE_SAME_PORT: the one name the servers' addresses are
   * behind (every server has the same port) */
  const char *hostname;
  detour_ms retry_interval; /* R6 */
  unsigned max_attempts;    /* R6; most clients have no such limit */
  detour_timeouts timeouts; /* R11 */
  const char *helo_name;    /* NULL: the adapter's default */
  /* TLS (`detour bench`'s TLS faults): a CA certificate (PEM) asks the
   * client for the strongest policy it can express: STARTTLS required
   * and the servers' certificates verified against this CA. NULL: the
   * client's plain configuration. */
  const char *tls_ca_file;
  /* the servers' good certificate (PEM), for clients that can only pin
   * it; a DNS name it carries, for clients that connect by address but
   * match only names. Read only with tls_ca_file. */
  const char *tls_cert_file;
  const char *tls_name;
  /* The caller created the network namespaces the servers' addresses are
   * in (a simulated network, fakeservers/netsim) and calls prepare,
   * submit, wait_done and teardown from a thread inside the client's
   * namespace: the adapter then also accepts IP literals that are not
   * loopback. false: loopback servers only. */
  bool private_network;
} detour_adapter_config;

typedef struct {
  const char *from;
  const char *const *rcpts;
  size_t nrcpts;
  const char *body; /* LF or CRLF line ends, not dot-stuffed */
  size_t body_len;
} detour_adapter_message;

typedef struct detour_adapter detour_adapter;
struct detour_adapter {
  const char *name; /* the client's name, for reports and messages */
  /* Keys of a scenario's `client:` section the adapter renders,
   * space-separated: a top-level key ("servers", "timeouts") covers its
   * sub-keys, a dotted one ("retry.interval") only itself. */
  const char *keys;
  detour_adapter_placement placement;
  /* DETOUR_PLACE_SAME_PORT: the one name the servers are behind (a
   * certificate for the servers must carry it); NULL otherwise */
  const char *hostname;
  void *data; /* the adapter's own (a loaded manifest); for self */
  /* Can the client run here? false with the reason (not installed, not
   * root) in why. */
  bool (*available)(const detour_adapter *self, char *why, size_t len);
  /* The client's version, one line, into buf; false when unknown. May be
   * NULL. */
  bool (*version)(const detour_adapter *self, char *buf, size_t len);
  /* Write the client's configuration and start it. Returns an instance,
   * owned by the caller until teardown, or NULL with err (and nothing
   * left behind). */
  void *(*prepare)(const detour_adapter *self, const detour_adapter_config *c,
                   char *err, size_t errlen);
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
};

/* The adapter for `client`: a manifest's NAME (clients/NAME.yaml, looked
 * for in $DETOUR_CLIENTS, ./clients and the source tree's clients/) or a
 * manifest's PATH (it has a '/' or ends in .yaml). Loaded once per
 * process and kept (thread-safe); NULL with "file:line:col: ..." or "no
 * client named ..." in err. The built-in engine is no adapter ("builtin"
 * and "detour" give NULL with err ""). */
const detour_adapter *detour_adapter_load(const char *client, char *err,
                                          size_t errlen);
/* detour_adapter_load without the message. */
const detour_adapter *detour_adapter_find(const char *client);
/* The client names found in the manifest folders, space-separated, into
 * buf (for messages and `--clients all`). */
void detour_adapter_names(char *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* DETOUR_ADAPTER_H */

/*
 * detour_config.h - the YAML configuration of a detour client (target
 * detour::config).
 *
 * A configuration file (docs/config.md) fills a detour_settings: the engine
 * configuration plus the classification and detour permission tables it
 * borrows, and the path of the send log. The same keys are read from a
 * `client:` section of a scenario file, so a loader also takes an already
 * parsed libyaml node.
 *
 * Every error is one line that names the file, the 1-based line and column
 * and the key, e.g.
 *   "relay.yaml:4:13: key 'retry.interval': expected a duration like 3m,
 *    got 'xyz'"
 * Unknown keys are errors: a typo must not pass silently.
 *
 * This header does not include yaml.h; callers of detour_settings_load_node
 * include it themselves (the libyaml types are only forward-declared here).
 */
#ifndef DETOUR_DETOUR_CONFIG_H
#define DETOUR_DETOUR_CONFIG_H

#include "detour/detour.h"

#ifdef __cplusplus
extern "C" {
#endif

struct yaml_document_s; /* yaml_document_t */
struct yaml_node_s;     /* yaml_node_t */

/* Everything a client needs to run. cfg.classify and cfg.policy point at
 * the two tables below, which the settings own; they stay valid (and so
 * does cfg) when the struct is copied, until detour_settings_free. */
typedef struct {
  detour_config cfg;
  detour_classify *classify; /* owned; the SPEC defaults plus overrides */
  detour_policy *policy;     /* owned; rule ANY, default allow plus entries */
  char *log_path;            /* owned; NULL when no `log:` key was given */
} detour_settings;

/* Fill s with the SPEC defaults: no servers, default tables, no log.
 * Returns 0 or DETOUR_ENOMEM (s is then empty; detour_settings_free is
 * still safe). */
int detour_settings_init(detour_settings *s);

/* Free what s owns and leave it empty. Safe on an empty or zeroed s. */
void detour_settings_free(detour_settings *s);

/* Initialise s and apply the YAML file at path (read by detour_yaml.h:
 * whole, at most 16 MiB). An empty file gives the defaults. Returns 0, or
 * DETOUR_EIO (cannot read), DETOUR_EPARSE (too large, bad YAML or a bad
 * key/value), DETOUR_ENOMEM, with a one-line message in err
 * (errlen bytes, always NUL-terminated when errlen > 0). On error s is
 * left empty (free is safe, not needed). */
int detour_settings_load_file(detour_settings *s, const char *path, char *err,
                              size_t errlen);

/* Initialise s and apply a mapping node of an already loaded libyaml
 * document (e.g. the `client:` section of a scenario). file names the
 * document in messages; key_prefix (NULL or "" for none) is put before
 * every key in messages ("client" gives 'client.retry.interval'). node ==
 * NULL gives the defaults. The document is only read; load it with the
 * one YAML reader (detour_yaml.h), which refuses aliases and repeated keys
 * before any loader walks it. Returns and err as for
 * detour_settings_load_file. */
/* Every YAML error of the project has one shape: write
 * "FILE:LINE:COL: key 'PATH': MESSAGE" (1-based, from at's start mark; 1:1
 * when at is NULL; no key part when path is NULL or empty) into err.
 * Returns DETOUR_EPARSE, so loaders can `return detour_yaml_error(...)`. */
int detour_yaml_error(char *err, size_t errlen, const char *file,
                      const struct yaml_node_s *at, const char *path,
                      const char *message);

int detour_settings_load_node(detour_settings *s, struct yaml_document_s *doc,
                              struct yaml_node_s *node, const char *file,
                              const char *key_prefix, char *err, size_t errlen);

/* Parse a server address "host:port", "host" (port 25), "[v6]:port" or
 * "[v6]" into host (hostlen bytes) and *port. A bare IPv6 address without
 * brackets is refused (the port would be ambiguous). Returns 0,
 * DETOUR_EPARSE (bad form, port not 1..65535) or DETOUR_ERANGE (host too
 * long for hostlen). */
int detour_parse_server_address(const char *text, char *host, size_t hostlen,
                                uint16_t *port);

/* Read a secret (SPEC R13): the first line of the file at path, without
 * its line end, into out (cap bytes, NUL-terminated). Returns 0,
 * DETOUR_EIO (cannot read), DETOUR_EPARSE (empty) or DETOUR_ERANGE (does
 * not fit), with a message in err that names the file and never holds
 * the secret. The buffer used for reading is wiped. */
int detour_read_secret_file(const char *path, char *out, size_t cap, char *err,
                            size_t errlen);

#ifdef __cplusplus
}
#endif

#endif /* DETOUR_DETOUR_CONFIG_H */

/*
 * load_internal.h - what the parts of the scenario loader share
 * (load.c: the document and the public API; load_servers.c: fake servers
 * and the client; load_messages.c; load_expect.c; load_network.c).
 *
 * Every part reads through the one YAML reader (detour_yaml.h) with the
 * helpers of load_read.c, so each error is "file:line:col: key 'a.b':
 * expected ..., got ..." and each file is bounded the same way.
 */
#ifndef SCN_LOAD_INTERNAL_H
#define SCN_LOAD_INTERNAL_H

#include <yaml.h>

#include "detour/detour_yaml.h"
#include "scn_internal.h"

/* One load: the reader's context (document, file, error buffer, the
 * file's allocation budget) and the scenario being filled. */
typedef struct {
  detour_yaml_ctx y;
  detour_scenario *s;
} ld;

/* A key of a fixed mapping and its handler; `key` first (the reader walks
 * tables by it). */
typedef int (*key_fn)(ld *l, yaml_node_t *v, const char *path);
typedef struct {
  const char *key;
  key_fn fn;
} key_entry;

/* load_read.c: the typed helpers. Each returns 0 (or the text) or a
 * negative error after writing the message. */
int detour__scn_ld_fail(ld *l, const yaml_node_t *at, const char *path,
                        const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
yaml_node_t *detour__scn_ld_node(ld *l, int id);
const char *detour__scn_ld_text(const yaml_node_t *n);
const char *detour__scn_want_scalar(ld *l, yaml_node_t *n, const char *path,
                                    const char *what);
int detour__scn_want_map(ld *l, yaml_node_t *n, const char *path);
int detour__scn_want_seq(ld *l, yaml_node_t *n, const char *path);
int detour__scn_want_long(ld *l, yaml_node_t *n, const char *path, long min,
                          long max, long *out);
int detour__scn_want_offset(ld *l, yaml_node_t *n, const char *path,
                            detour_ms *out);
int detour__scn_want_bool(ld *l, yaml_node_t *n, const char *path, bool *out);
int detour__scn_want_str(ld *l, yaml_node_t *n, const char *path, char **out);
int detour__scn_want_strings(ld *l, yaml_node_t *n, const char *path,
                             char ***out, size_t *nout);
int detour__scn_walk(ld *l, yaml_node_t *map, const char *path,
                     const key_entry *table, size_t n);
#define WALK(l, map, path, table)                                              \
  detour__scn_walk(l, map, path, table, sizeof table / sizeof table[0])
bool detour__scn_map_has(ld *l, yaml_node_t *map, const char *key);
yaml_node_t *detour__scn_map_get(ld *l, yaml_node_t *map, const char *key);
int detour__scn_server_index(const detour_scenario *s, const char *name);
int detour__scn_want_server(ld *l, yaml_node_t *n, const char *path, int *out);
/* A mapping whose keys are names (what: "an address"): fn reads each
 * value with its name and its path ("expect.recipients.a@b"). */
typedef int (*entry_reader)(ld *l, const char *key, yaml_node_t *value,
                            const char *path);
int detour__scn_for_each_entry(ld *l, yaml_node_t *v, const char *path,
                               const char *what, entry_reader fn);

/* The sections, each a handler of a top-level key. */
int detour__scn_on_servers(ld *l, yaml_node_t *v,
                           const char *path);      /* servers */
int detour__scn_read_client(ld *l, int client_id); /* client */
int detour__scn_on_messages(ld *l, yaml_node_t *v,
                            const char *path); /* messages */
int detour__scn_on_expect(ld *l, yaml_node_t *v, const char *path); /* expect */
int detour__scn_on_network(ld *l, yaml_node_t *v,
                           const char *path); /* network */
/* Once the file is read: a simulated network's own rules. */
int detour__scn_check_network(ld *l, yaml_node_t *root);

#endif /* SCN_LOAD_INTERNAL_H */

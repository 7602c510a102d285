/*
 * detour_yaml.h - the one YAML reader of detour (target detour::config):
 * the configuration loader, the scenario loader and the fake-server script
 * loader all read their files through it, so every file is bounded, and
 * every error is worded and placed, the same way.
 *
 * Loading (detour_yaml_load_file / _string) reads the whole file or
 * refuses it, then parses it with libyaml and refuses, each with
 * "FILE:LINE:COL: ..." (1-based):
 *   - a file larger than DETOUR_YAML_MAX_FILE (never cut and half-read),
 *   - a YAML syntax error, bad UTF-8 included, at the byte where it is,
 *   - aliases (*name): no detour file needs them, and an alias repeated
 *     in a list multiplies what a small file makes the loaders build,
 *   - more than DETOUR_YAML_MAX_NODES nodes, nesting deeper than
 *     DETOUR_YAML_MAX_DEPTH, a second document,
 *   - a key given twice in a mapping (checked with a hash, in linear
 *     time: "key 'a.b': given twice").
 * What the loaders then allocate for one file (a generated message body,
 * say) is charged against a budget of DETOUR_YAML_MAX_ALLOC bytes
 * (detour_yaml_charge).
 *
 * Reading: typed getters take a detour_yaml_ctx (the document, the file
 * name for messages, the error buffer, the budget) and a node, return 0 or
 * DETOUR_EPARSE, and on error write one line:
 *   "relay.yaml:4:13: key 'retry.interval': expected a duration like 3m,
 *    got 'xyz'"
 * Mappings with a fixed set of keys are read with detour_yaml_next_key over
 * the loader's own key table, so an unknown key is an error that lists the
 * keys expected.
 */
#ifndef DETOUR_DETOUR_YAML_H
#define DETOUR_DETOUR_YAML_H

#include <stdbool.h>
#include <stddef.h>

#include <yaml.h>

#include "detour/detour_config.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A scenario with its expected bodies is a few KB; 16 MiB leaves room
 * for generated suites and still bounds what libyaml builds from a file. */
#define DETOUR_YAML_MAX_FILE ((size_t)16 << 20)
/* Nodes of one document: a suite file has a few thousand; 500,000 nodes
 * cost libyaml about 60 MB. */
#define DETOUR_YAML_MAX_NODES 500000
/* Nesting: detour's formats are at most 6 levels deep. */
#define DETOUR_YAML_MAX_DEPTH 64
/* Bytes the loaders may allocate for what one file asks for beyond its
 * own text (e.g. `body_bytes:` messages). */
#define DETOUR_YAML_MAX_ALLOC ((size_t)64 << 20)
/* Dotted key paths in messages ("expect.servers.a.received[2].body"). */
#define DETOUR_YAML_PATH_MAX 384

/* A loaded file. */
typedef struct {
  yaml_document_t doc;
  char *file;    /* owned: the name used in messages */
  size_t budget; /* bytes the loaders may still allocate for this file */
  bool loaded;   /* doc holds a document to delete */
} detour_yaml_file;

/* Read the whole file at path and parse it (see the top of this file).
 * Returns 0, DETOUR_EIO (cannot open or read: "FILE:1:1: cannot open:
 * reason"), DETOUR_ERANGE (too large), DETOUR_EPARSE or DETOUR_ENOMEM,
 * with one line in err (errlen bytes, NUL-terminated when errlen > 0). An
 * empty file gives a document without a root. On error f is empty (free
 * is safe, not needed). */
int detour_yaml_load_file(detour_yaml_file *f, const char *path, char *err,
                          size_t errlen);
/* The same from len bytes of text; name names it in messages. */
int detour_yaml_load_string(detour_yaml_file *f, const char *text, size_t len,
                            const char *name, char *err, size_t errlen);
/* The root node, or NULL for an empty document. */
yaml_node_t *detour_yaml_root(detour_yaml_file *f);
/* Free what f owns; safe on an empty or zeroed f, twice. */
void detour_yaml_file_free(detour_yaml_file *f);

/* What every getter needs. budget NULL: nothing is charged (the caller
 * bounds its input otherwise). */
typedef struct {
  yaml_document_t *doc;
  const char *file;
  char *err;
  size_t errlen;
  size_t *budget;
} detour_yaml_ctx;

/* A context reading f, with messages into err. */
detour_yaml_ctx detour_yaml_ctx_of(detour_yaml_file *f, char *err,
                                   size_t errlen);

/* ---- Nodes -------------------------------------------------------------- */

yaml_node_t *detour_yaml_node(const detour_yaml_ctx *c, int id);
/* A plain empty scalar, "~" or "null": YAML's way of saying nothing. */
bool detour_yaml_is_null(const yaml_node_t *n);
/* The text of a scalar node, NULL for anything else. */
const char *detour_yaml_text(const yaml_node_t *n);
/* Items of a sequence or pairs of a mapping; 0 for a scalar. */
size_t detour_yaml_count(const yaml_node_t *n);
/* The value of the scalar key `key` in mapping map, or NULL. */
yaml_node_t *detour_yaml_map_get(const detour_yaml_ctx *c, yaml_node_t *map,
                                 const char *key);
/* "parent.key" (just "key" when parent is empty) and "parent[i]". */
void detour_yaml_path(char *buf, size_t len, const char *parent,
                      const char *key);
void detour_yaml_path_index(char *buf, size_t len, const char *parent,
                            size_t i);

/* ---- Errors: each writes "FILE:LINE:COL: key 'PATH': ..." (no key part
 * when path is NULL or empty; 1:1 when at is NULL) and returns
 * DETOUR_EPARSE, so a loader can `return detour_yaml_fail(...)`. ---------- */

int detour_yaml_fail(const detour_yaml_ctx *c, const yaml_node_t *at,
                     const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* "expected WHAT, got 'text'" (or got a mapping, a list, nothing). */
int detour_yaml_expected(const detour_yaml_ctx *c, const yaml_node_t *at,
                         const char *path, const char *what);
/* "FILE: out of memory"; returns DETOUR_ENOMEM. */
int detour_yaml_nomem(const detour_yaml_ctx *c);

/* ---- Typed getters ------------------------------------------------------ */

/* The text of a scalar that is not null, or NULL after "expected WHAT". */
const char *detour_yaml_scalar(const detour_yaml_ctx *c, yaml_node_t *n,
                               const char *path, const char *what);
/* A decimal integer in [min, max] (no sign for min >= 0), else "expected
 * WHAT, got ...". */
int detour_yaml_int(const detour_yaml_ctx *c, yaml_node_t *n, const char *path,
                    long long min, long long max, const char *what,
                    long long *out);
/* true/yes/on or false/no/off, any case. */
int detour_yaml_bool(const detour_yaml_ctx *c, yaml_node_t *n, const char *path,
                     bool *out);
/* A duration (detour_parse_duration) of at least min ms. Beyond
 * DETOUR_DURATION_MAX the message names the maximum. */
int detour_yaml_duration(const detour_yaml_ctx *c, yaml_node_t *n,
                         const char *path, detour_ms min, const char *what,
                         detour_ms *out);
/* One of the NULL-terminated names (any case): its index in *out. */
int detour_yaml_choice(const detour_yaml_ctx *c, yaml_node_t *n,
                       const char *path, const char *const *names,
                       const char *what, int *out);
/* Take bytes from the file's allocation budget before allocating them;
 * DETOUR_ERANGE with "... more than the 64 MiB one file may make detour
 * allocate" when it is spent. */
int detour_yaml_charge(const detour_yaml_ctx *c, const yaml_node_t *at,
                       const char *path, size_t bytes);

/* ---- Mappings with a fixed set of keys ---------------------------------- */

/* Walks the pairs of a mapping against a key table: an array of n entries
 * of `stride` bytes, each starting with its `const char *name` (so a
 * loader's own table of {name, handler} works, as does an array of
 * names). */
typedef struct {
  yaml_node_t *map;
  const char *parent;
  size_t pos;
  /* the current pair */
  yaml_node_t *key, *value;
  size_t index;                    /* of the key in the table */
  char path[DETOUR_YAML_PATH_MAX]; /* "parent.key" */
} detour_yaml_iter;

/* Start walking map; "expected WHAT" (default "a mapping") when it is
 * not one. A null node walks as an empty mapping when null_ok. */
int detour_yaml_iter_init(const detour_yaml_ctx *c, detour_yaml_iter *it,
                          yaml_node_t *map, const char *parent,
                          const char *what, bool null_ok);
/* The next pair: 1 (it->key, value, index, path set), 0 at the end, or
 * DETOUR_EPARSE for a key that is not a plain string or is not in the
 * table ("unknown key (expected one of: a, b, c)"). */
int detour_yaml_next_key(const detour_yaml_ctx *c, detour_yaml_iter *it,
                         const void *table, size_t stride, size_t n);
/* The same for mappings whose keys are free (addresses, reply codes):
 * it->index is 0; keys must be scalars. */
int detour_yaml_next_pair(const detour_yaml_ctx *c, detour_yaml_iter *it,
                          const char *key_what);

#ifdef __cplusplus
}
#endif

#endif /* DETOUR_DETOUR_YAML_H */

/*
 * load_read.c - the typed helpers every part of the scenario loader reads
 * with, over the one YAML reader (detour_yaml.h). They keep the loader's
 * own wording ("expected a whole number 1..1000, got 'x'") in the reader's
 * one shape, file:line:col: key 'a.b': ....
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "load_internal.h"

int detour__scn_ld_fail(ld *l, const yaml_node_t *at, const char *path,
                        const char *fmt, ...) {
  char what[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  return detour_yaml_fail(&l->y, at, path, "%s", what);
}

yaml_node_t *detour__scn_ld_node(ld *l, int id) {
  return detour_yaml_node(&l->y, id);
}

const char *detour__scn_ld_text(const yaml_node_t *n) {
  return detour_yaml_text(n);
}

/* The text of a scalar ("" for an empty one), or an error saying what was
 * wanted. */
const char *detour__scn_want_scalar(ld *l, yaml_node_t *n, const char *path,
                                    const char *what) {
  const char *s = detour_yaml_text(n);
  if (!s)
    detour_yaml_expected(&l->y, n, path, what);
  return s;
}

int detour__scn_want_map(ld *l, yaml_node_t *n, const char *path) {
  if (!n || n->type != YAML_MAPPING_NODE)
    return detour_yaml_expected(&l->y, n, path, "a mapping");
  return 0;
}

int detour__scn_want_seq(ld *l, yaml_node_t *n, const char *path) {
  if (!n || n->type != YAML_SEQUENCE_NODE)
    return detour_yaml_expected(&l->y, n, path, "a list");
  return 0;
}

int detour__scn_want_long(ld *l, yaml_node_t *n, const char *path, long min,
                          long max, long *out) {
  char what[80];
  snprintf(what, sizeof what, "a whole number %ld..%ld", min, max);
  long long v;
  int rc = detour_yaml_int(&l->y, n, path, min, max, what, &v);
  if (rc == 0)
    *out = (long)v;
  return rc;
}

/* Times in a scenario are durations from the start of the run: the one
 * grammar, at most DETOUR_DURATION_MAX. */
int detour__scn_want_offset(ld *l, yaml_node_t *n, const char *path,
                            detour_ms *out) {
  return detour_yaml_duration(&l->y, n, path, 0,
                              "a time like 0s, 3m, 3m20s or 500ms", out);
}

int detour__scn_want_bool(ld *l, yaml_node_t *n, const char *path, bool *out) {
  return detour_yaml_bool(&l->y, n, path, out);
}

int detour__scn_want_str(ld *l, yaml_node_t *n, const char *path, char **out) {
  const char *s = detour__scn_want_scalar(l, n, path, "a string");
  if (!s)
    return DETOUR_EPARSE;
  free(*out);
  *out = strdup(s);
  return *out ? 0 : DETOUR_ENOMEM;
}

/* A string or a list of strings, into a new array. */
int detour__scn_want_strings(ld *l, yaml_node_t *n, const char *path,
                             char ***out, size_t *nout) {
  size_t cap = 0, cnt = 0;
  char **arr = NULL;
  int rc = 0;
  if (n->type == YAML_SCALAR_NODE) {
    rc = detour__scn_grow(&arr, &cap, 0, sizeof *arr);
    if (rc == 0 && !(arr[cnt++] = strdup(detour__scn_ld_text(n))))
      rc = DETOUR_ENOMEM;
  } else if (n->type == YAML_SEQUENCE_NODE) {
    for (yaml_node_item_t *it = n->data.sequence.items.start;
         rc == 0 && it < n->data.sequence.items.top; it++) {
      char sub[256];
      snprintf(sub, sizeof sub, "%s[%zu]", path, cnt);
      const char *s = detour__scn_want_scalar(l, detour__scn_ld_node(l, *it),
                                              sub, "a string");
      if (!s)
        rc = DETOUR_EPARSE;
      else if ((rc = detour__scn_grow(&arr, &cap, cnt, sizeof *arr)) == 0 &&
               !(arr[cnt++] = strdup(s)))
        rc = DETOUR_ENOMEM;
    }
  } else {
    rc = detour__scn_ld_fail(l, n, path,
                             "expected a string or a list of strings");
  }
  if (rc < 0) {
    for (size_t i = 0; i < cnt; i++)
      free(arr[i]);
    free(arr);
    return rc;
  }
  *out = arr;
  *nout = cnt;
  return 0;
}

/* Walk a mapping, dispatching each key through table; unknown keys are
 * errors (repeated keys were refused when the file was read). */
int detour__scn_walk(ld *l, yaml_node_t *map, const char *path,
                     const key_entry *table, size_t n) {
  detour_yaml_iter it;
  int rc = detour_yaml_iter_init(&l->y, &it, map, path, NULL, false);
  while (rc == 0 &&
         (rc = detour_yaml_next_key(&l->y, &it, table, sizeof *table, n)) == 1)
    rc = table[it.index].fn(l, it.value, it.path);
  return rc;
}

int detour__scn_for_each_entry(ld *l, yaml_node_t *v, const char *path,
                               const char *what, entry_reader fn) {
  detour_yaml_iter it;
  int rc = detour_yaml_iter_init(&l->y, &it, v, path, NULL, false);
  while (rc == 0 && (rc = detour_yaml_next_pair(&l->y, &it, what)) == 1)
    rc = fn(l, detour_yaml_text(it.key), it.value, it.path);
  return rc;
}

bool detour__scn_map_has(ld *l, yaml_node_t *map, const char *key) {
  return detour_yaml_map_get(&l->y, map, key) != NULL;
}

yaml_node_t *detour__scn_map_get(ld *l, yaml_node_t *map, const char *key) {
  return detour_yaml_map_get(&l->y, map, key);
}

/* The index of fake server `name`, or -1. */
int detour__scn_server_index(const detour_scenario *s, const char *name) {
  for (size_t i = 0; name && i < s->nservers; i++)
    if (strcmp(s->servers[i].name, name) == 0)
      return (int)i;
  return -1;
}

int detour__scn_want_server(ld *l, yaml_node_t *n, const char *path, int *out) {
  const char *name =
      detour__scn_want_scalar(l, n, path, "a fake server's name");
  if (!name)
    return DETOUR_EPARSE;
  *out = detour__scn_server_index(l->s, name);
  if (*out < 0)
    return detour__scn_ld_fail(l, n, path, "no fake server is named '%s'",
                               name);
  return 0;
}

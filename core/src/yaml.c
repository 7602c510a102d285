/*
 * yaml.c - the one YAML reader (detour_yaml.h): bounded loading and typed
 * getters shared by the configuration, scenario and fake-server loaders.
 *
 * Loading is two passes over text held whole in memory. The first walks
 * libyaml's events, which cost memory only for the nesting: it finds
 * aliases, counts nodes and depth, and refuses a second document, before
 * anything is built. The second composes the document, and one linear pass
 * over its mappings refuses repeated keys (a hash set per mapping: a
 * quadratic check took 41 s on 100,000 keys).
 *
 * libyaml's marks are 0-based; every message prints them 1-based. A
 * reader error (bad UTF-8) has no mark, only a byte offset: it is turned
 * into line:col by counting in the text, so the message points at the
 * byte and not at 1:1.
 */
#include "detour/detour_yaml.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* ------------------------------------------------------------------------ */
/* Messages                                                                  */

/* Copy in to out with control characters written as \n, \r, \t or \xNN:
 * a value quoted into a message ("got 'a<CR>b'") must not break the
 * message over lines or drive a terminal. */
static void put_escaped(char *out, size_t outlen, const char *in) {
  size_t o = 0;
  for (; *in; in++) {
    unsigned char c = (unsigned char)*in;
    char esc[5] = {(char)c, 0};
    if (c == '\n' || c == '\r' || c == '\t')
      snprintf(esc, sizeof esc, "\\%c",
               c == '\n'   ? 'n'
               : c == '\r' ? 'r'
                           : 't');
    else if (c < 0x20 || c == 0x7f)
      snprintf(esc, sizeof esc, "\\x%02x", c);
    size_t k = strlen(esc);
    if (o + k + 1 > outlen)
      break;
    memcpy(out + o, esc, k);
    o += k;
  }
  out[o] = '\0';
}

int detour_yaml_error(char *err, size_t errlen, const char *file,
                      const yaml_node_t *at, const char *path,
                      const char *message) {
  if (!err || errlen == 0)
    return DETOUR_EPARSE;
  unsigned long line = at ? (unsigned long)at->start_mark.line + 1 : 1;
  unsigned long col = at ? (unsigned long)at->start_mark.column + 1 : 1;
  char raw[1024];
  if (path && *path)
    snprintf(raw, sizeof raw, "%s:%lu:%lu: key '%s': %s", file, line, col, path,
             message);
  else
    snprintf(raw, sizeof raw, "%s:%lu:%lu: %s", file, line, col, message);
  put_escaped(err, errlen, raw);
  return DETOUR_EPARSE;
}

int detour_yaml_fail(const detour_yaml_ctx *c, const yaml_node_t *at,
                     const char *path, const char *fmt, ...) {
  if (!c->err || c->errlen == 0)
    return DETOUR_EPARSE;
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return detour_yaml_error(c->err, c->errlen, c->file, at, path, msg);
}

int detour_yaml_nomem(const detour_yaml_ctx *c) {
  if (c->err && c->errlen > 0)
    snprintf(c->err, c->errlen, "%s: out of memory", c->file);
  return DETOUR_ENOMEM;
}

bool detour_yaml_is_null(const yaml_node_t *n) {
  if (!n || n->type != YAML_SCALAR_NODE ||
      n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
    return false;
  const char *v = (const char *)n->data.scalar.value;
  return *v == '\0' || strcmp(v, "~") == 0 || strcasecmp(v, "null") == 0;
}

/* What a node is, for "got ...": the scalar quoted (cut at 60), else its
 * kind. */
static const char *describe(const yaml_node_t *n, char *buf, size_t len) {
  if (!n || detour_yaml_is_null(n))
    return "nothing";
  if (n->type == YAML_MAPPING_NODE)
    return "a mapping";
  if (n->type == YAML_SEQUENCE_NODE)
    return "a list";
  snprintf(buf, len, "'%.60s%s'", (const char *)n->data.scalar.value,
           n->data.scalar.length > 60 ? "..." : "");
  return buf;
}

int detour_yaml_expected(const detour_yaml_ctx *c, const yaml_node_t *at,
                         const char *path, const char *what) {
  char buf[80];
  return detour_yaml_fail(c, at, path, "expected %s, got %s", what,
                          describe(at, buf, sizeof buf));
}

/* ------------------------------------------------------------------------ */
/* Nodes                                                                     */

yaml_node_t *detour_yaml_node(const detour_yaml_ctx *c, int id) {
  return yaml_document_get_node(c->doc, id);
}

const char *detour_yaml_text(const yaml_node_t *n) {
  return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value
                                          : NULL;
}

size_t detour_yaml_count(const yaml_node_t *n) {
  if (n && n->type == YAML_SEQUENCE_NODE)
    return (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
  if (n && n->type == YAML_MAPPING_NODE)
    return (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
  return 0;
}

yaml_node_t *detour_yaml_map_get(const detour_yaml_ctx *c, yaml_node_t *map,
                                 const char *key) {
  if (!map || map->type != YAML_MAPPING_NODE)
    return NULL;
  for (yaml_node_pair_t *p = map->data.mapping.pairs.start;
       p < map->data.mapping.pairs.top; p++) {
    const char *k = detour_yaml_text(detour_yaml_node(c, p->key));
    if (k && strcmp(k, key) == 0)
      return detour_yaml_node(c, p->value);
  }
  return NULL;
}

void detour_yaml_path(char *buf, size_t len, const char *parent,
                      const char *key) {
  if (parent && *parent)
    snprintf(buf, len, "%s.%s", parent, key);
  else
    snprintf(buf, len, "%s", key);
}

void detour_yaml_path_index(char *buf, size_t len, const char *parent,
                            size_t i) {
  snprintf(buf, len, "%s[%zu]", parent ? parent : "", i);
}

/* ------------------------------------------------------------------------ */
/* Typed getters                                                             */

const char *detour_yaml_scalar(const detour_yaml_ctx *c, yaml_node_t *n,
                               const char *path, const char *what) {
  if (!n || n->type != YAML_SCALAR_NODE || detour_yaml_is_null(n)) {
    detour_yaml_expected(c, n, path, what);
    return NULL;
  }
  return (const char *)n->data.scalar.value;
}

int detour_yaml_int(const detour_yaml_ctx *c, yaml_node_t *n, const char *path,
                    long long min, long long max, const char *what,
                    long long *out) {
  const char *v = detour_yaml_scalar(c, n, path, what);
  if (!v)
    return DETOUR_EPARSE;
  char *end;
  errno = 0;
  long long x = strtoll(v, &end, 10);
  /* strtoll skips spaces and takes "+"; a file must say exactly a number */
  bool sign_ok = v[0] == '-' ? min < 0 : v[0] != '+';
  if (errno || end == v || *end != '\0' || isspace((unsigned char)v[0]) ||
      !sign_ok || x < min || x > max)
    return detour_yaml_expected(c, n, path, what);
  *out = x;
  return 0;
}

int detour_yaml_bool(const detour_yaml_ctx *c, yaml_node_t *n, const char *path,
                     bool *out) {
  static const char *const words[] = {"false", "true", "no", "yes",
                                      "off",   "on",   NULL};
  int i = 0;
  int rc = detour_yaml_choice(c, n, path, words, "true or false", &i);
  if (rc == 0)
    *out = i % 2 == 1;
  return rc;
}

int detour_yaml_duration(const detour_yaml_ctx *c, yaml_node_t *n,
                         const char *path, detour_ms min, const char *what,
                         detour_ms *out) {
  const char *v = detour_yaml_scalar(c, n, path, what);
  if (!v)
    return DETOUR_EPARSE;
  detour_ms ms;
  int rc = detour_parse_duration(v, &ms);
  if (rc == DETOUR_ERANGE) {
    char buf[80];
    return detour_yaml_fail(c, n, path,
                            "expected %s, at most 30 days (720h), got %s", what,
                            describe(n, buf, sizeof buf));
  }
  if (rc != 0 || ms < min)
    return detour_yaml_expected(c, n, path, what);
  *out = ms;
  return 0;
}

int detour_yaml_choice(const detour_yaml_ctx *c, yaml_node_t *n,
                       const char *path, const char *const *names,
                       const char *what, int *out) {
  const char *v = detour_yaml_scalar(c, n, path, what);
  if (!v)
    return DETOUR_EPARSE;
  for (int i = 0; names[i]; i++)
    if (strcasecmp(v, names[i]) == 0) {
      *out = i;
      return 0;
    }
  return detour_yaml_expected(c, n, path, what);
}

int detour_yaml_charge(const detour_yaml_ctx *c, const yaml_node_t *at,
                       const char *path, size_t bytes) {
  if (!c->budget)
    return 0;
  if (bytes > *c->budget) {
    detour_yaml_fail(c, at, path,
                     "this file asks for more than the %zu MiB one file may "
                     "make detour allocate",
                     DETOUR_YAML_MAX_ALLOC >> 20);
    return DETOUR_ERANGE;
  }
  *c->budget -= bytes;
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Mappings                                                                  */

int detour_yaml_iter_init(const detour_yaml_ctx *c, detour_yaml_iter *it,
                          yaml_node_t *map, const char *parent,
                          const char *what, bool null_ok) {
  memset(it, 0, sizeof *it);
  it->parent = parent ? parent : "";
  if (null_ok && detour_yaml_is_null(map))
    return 0; /* it->map stays NULL: no pairs */
  if (!map || map->type != YAML_MAPPING_NODE)
    return detour_yaml_expected(c, map, it->parent, what ? what : "a mapping");
  it->map = map;
  return 0;
}

static int next(const detour_yaml_ctx *c, detour_yaml_iter *it,
                const char *key_what) {
  if (!it->map || it->pos >= detour_yaml_count(it->map))
    return 0;
  yaml_node_pair_t *p = it->map->data.mapping.pairs.start + it->pos++;
  it->key = detour_yaml_node(c, p->key);
  it->value = detour_yaml_node(c, p->value);
  const char *name = detour_yaml_scalar(c, it->key, it->parent, key_what);
  if (!name)
    return DETOUR_EPARSE;
  detour_yaml_path(it->path, sizeof it->path, it->parent, name);
  return 1;
}

int detour_yaml_next_pair(const detour_yaml_ctx *c, detour_yaml_iter *it,
                          const char *key_what) {
  it->index = 0;
  return next(c, it, key_what ? key_what : "a key");
}

static const char *name_at(const void *table, size_t stride, size_t i) {
  const char *const *name =
      (const char *const *)(const void *)((const char *)table + i * stride);
  return *name;
}

int detour_yaml_next_key(const detour_yaml_ctx *c, detour_yaml_iter *it,
                         const void *table, size_t stride, size_t n) {
  int rc = next(c, it, "a key name");
  if (rc <= 0)
    return rc;
  const char *name = detour_yaml_text(it->key);
  for (it->index = 0; it->index < n; it->index++)
    if (strcmp(name_at(table, stride, it->index), name) == 0)
      return 1;
  char list[320] = "";
  size_t used = 0;
  for (size_t i = 0; i < n && used < sizeof list; i++)
    used += (size_t)snprintf(list + used, sizeof list - used, "%s%s",
                             i ? ", " : "", name_at(table, stride, i));
  return detour_yaml_fail(c, it->key, it->path,
                          "unknown key (expected one of: %s)", list);
}

/* ------------------------------------------------------------------------ */
/* Loading: syntax errors                                                    */

typedef struct {
  const char *name;
  const unsigned char *text;
  size_t len;
  char *err;
  size_t errlen;
} source;

static int say(const source *s, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int say(const source *s, int rc, const char *fmt, ...) {
  if (s->err && s->errlen > 0) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char raw[1024];
    snprintf(raw, sizeof raw, "%s%s", s->name, msg);
    put_escaped(s->err, s->errlen, raw);
  }
  return rc;
}

/* Line and column (1-based, in characters) of a byte offset: how a reader
 * error, which has only an offset, gets a place. */
static void offset_mark(const source *s, size_t off, unsigned long *line,
                        unsigned long *col) {
  *line = 1;
  *col = 1;
  for (size_t i = 0; i < off && i < s->len; i++) {
    if (s->text[i] == '\n') {
      ++*line;
      *col = 1;
    } else if ((s->text[i] & 0xc0) != 0x80) { /* not a UTF-8 continuation */
      ++*col;
    }
  }
}

static int syntax_error(const source *s, const yaml_parser_t *p) {
  if (p->error == YAML_MEMORY_ERROR)
    return say(s, DETOUR_ENOMEM, ": out of memory");
  const char *problem = p->problem ? p->problem : "unknown problem";
  unsigned long line, col;
  if (p->error == YAML_READER_ERROR) {
    offset_mark(s, p->problem_offset, &line, &col);
    return say(s, DETOUR_EPARSE, ":%lu:%lu: YAML syntax error: %s (byte %zu)",
               line, col, problem, p->problem_offset);
  }
  line = (unsigned long)p->problem_mark.line + 1;
  col = (unsigned long)p->problem_mark.column + 1;
  return say(s, DETOUR_EPARSE, ":%lu:%lu: YAML syntax error: %s%s%s", line, col,
             problem, p->context ? " " : "", p->context ? p->context : "");
}

/* ------------------------------------------------------------------------ */
/* Loading: the event pass                                                   */

static int at(const source *s, const yaml_mark_t *m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int at(const source *s, const yaml_mark_t *m, const char *fmt, ...) {
  char msg[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return say(s, DETOUR_EPARSE, ":%lu:%lu: %s", (unsigned long)m->line + 1,
             (unsigned long)m->column + 1, msg);
}

/* Everything that can be refused before a document is built. */
static int check_events(const source *s) {
  yaml_parser_t p;
  if (!yaml_parser_initialize(&p))
    return say(s, DETOUR_ENOMEM, ": out of memory");
  yaml_parser_set_input_string(&p, s->text, s->len);
  size_t nodes = 0, documents = 0;
  int depth = 0, rc = 0;
  for (bool done = false; !done && rc == 0;) {
    yaml_event_t e;
    if (!yaml_parser_parse(&p, &e)) {
      rc = syntax_error(s, &p);
      break;
    }
    switch (e.type) {
    case YAML_STREAM_END_EVENT:
      done = true;
      break;
    case YAML_DOCUMENT_START_EVENT:
      if (++documents > 1)
        rc = at(s, &e.start_mark,
                "a second YAML document: a detour file is one document");
      break;
    case YAML_ALIAS_EVENT:
      rc = at(s, &e.start_mark,
              "YAML aliases (*%.40s) are not accepted in detour files: "
              "write the value out",
              (const char *)e.data.alias.anchor);
      break;
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT:
    case YAML_SCALAR_EVENT:
      if (e.type != YAML_SCALAR_EVENT && ++depth > DETOUR_YAML_MAX_DEPTH)
        rc = at(s, &e.start_mark, "nested deeper than %d levels",
                DETOUR_YAML_MAX_DEPTH);
      else if (++nodes > DETOUR_YAML_MAX_NODES)
        rc = at(s, &e.start_mark, "more than %d YAML nodes in one file",
                DETOUR_YAML_MAX_NODES);
      break;
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
      depth--;
      break;
    default:
      break;
    }
    yaml_event_delete(&e);
  }
  yaml_parser_delete(&p);
  return rc;
}

/* ------------------------------------------------------------------------ */
/* Loading: repeated keys                                                    */

static uint64_t hash_text(const yaml_node_t *k) {
  uint64_t h = 1469598103934665603ULL; /* FNV-1a */
  for (size_t i = 0; i < k->data.scalar.length; i++)
    h = (h ^ k->data.scalar.value[i]) * 1099511628211ULL;
  return h;
}

static bool same_text(const yaml_node_t *a, const yaml_node_t *b) {
  return a->data.scalar.length == b->data.scalar.length &&
         memcmp(a->data.scalar.value, b->data.scalar.value,
                a->data.scalar.length) == 0;
}

/* The dotted path of node id (its parents found by a scan: only on the
 * error path, and aliases are refused, so each node has one parent). */
static void path_of(yaml_document_t *doc, int id, char *buf, size_t len) {
  char tmp[DETOUR_YAML_PATH_MAX];
  buf[0] = '\0';
  for (int depth = 0; depth <= DETOUR_YAML_MAX_DEPTH; depth++) {
    int parent = 0;
    char part[DETOUR_YAML_PATH_MAX] = "";
    for (yaml_node_t *n = doc->nodes.start; !parent && n < doc->nodes.top;
         n++) {
      if (n->type == YAML_MAPPING_NODE) {
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
             p < n->data.mapping.pairs.top; p++)
          if (p->value == id || p->key == id) {
            const char *k =
                detour_yaml_text(yaml_document_get_node(doc, p->key));
            snprintf(part, sizeof part, "%s", k ? k : "?");
            parent = (int)(n - doc->nodes.start) + 1;
            break;
          }
      } else if (n->type == YAML_SEQUENCE_NODE) {
        for (yaml_node_item_t *it = n->data.sequence.items.start;
             it < n->data.sequence.items.top; it++)
          if (*it == id) {
            snprintf(part, sizeof part, "[%zu]",
                     (size_t)(it - n->data.sequence.items.start));
            parent = (int)(n - doc->nodes.start) + 1;
            break;
          }
      }
    }
    if (!parent)
      return;
    snprintf(tmp, sizeof tmp, "%s%s%s", part, *buf && *buf != '[' ? "." : "",
             buf);
    snprintf(buf, len, "%s", tmp);
    id = parent;
  }
}

/* One linear pass: every mapping's scalar keys into an open-addressing
 * table (sized for the largest mapping, cleared per mapping). */
static int check_keys(const source *s, yaml_document_t *doc) {
  size_t largest = 0;
  for (yaml_node_t *n = doc->nodes.start; n < doc->nodes.top; n++)
    if (n->type == YAML_MAPPING_NODE && detour_yaml_count(n) > largest)
      largest = detour_yaml_count(n);
  if (largest < 2)
    return 0;
  size_t cap = 4;
  while (cap < 2 * largest)
    cap *= 2;
  int *slot = malloc(cap * sizeof *slot);
  if (!slot)
    return say(s, DETOUR_ENOMEM, ": out of memory");
  int rc = 0;
  for (yaml_node_t *n = doc->nodes.start; rc == 0 && n < doc->nodes.top; n++) {
    size_t npairs = detour_yaml_count(n);
    if (n->type != YAML_MAPPING_NODE || npairs < 2)
      continue;
    size_t mask = 1;
    while (mask < 2 * npairs)
      mask *= 2;
    memset(slot, 0, mask * sizeof *slot);
    mask--;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
         p < n->data.mapping.pairs.top; p++) {
      yaml_node_t *k = yaml_document_get_node(doc, p->key);
      if (!k || k->type != YAML_SCALAR_NODE)
        continue; /* the loaders refuse non-scalar keys where they read */
      size_t i = (size_t)hash_text(k) & mask;
      for (; slot[i]; i = (i + 1) & mask)
        if (same_text(yaml_document_get_node(doc, slot[i]), k))
          break;
      if (!slot[i]) {
        slot[i] = p->key;
        continue;
      }
      char path[DETOUR_YAML_PATH_MAX];
      path_of(doc, p->key, path, sizeof path);
      rc = say(s, DETOUR_EPARSE, ":%lu:%lu: key '%s': given twice",
               (unsigned long)k->start_mark.line + 1,
               (unsigned long)k->start_mark.column + 1, path);
      break;
    }
  }
  free(slot);
  return rc;
}

/* ------------------------------------------------------------------------ */
/* Loading: entry points                                                     */

static int compose(detour_yaml_file *f, const source *s) {
  yaml_parser_t p;
  if (!yaml_parser_initialize(&p))
    return say(s, DETOUR_ENOMEM, ": out of memory");
  yaml_parser_set_input_string(&p, s->text, s->len);
  int rc = 0;
  if (!yaml_parser_load(&p, &f->doc))
    rc = syntax_error(s, &p);
  else
    f->loaded = true;
  yaml_parser_delete(&p);
  if (rc == 0)
    rc = check_keys(s, &f->doc);
  return rc;
}

int detour_yaml_load_string(detour_yaml_file *f, const char *text, size_t len,
                            const char *name, char *err, size_t errlen) {
  if (errlen > 0 && err)
    err[0] = '\0';
  if (!f)
    return DETOUR_EINVAL;
  memset(f, 0, sizeof *f);
  name = name ? name : "<string>";
  source s = {name, (const unsigned char *)(text ? text : ""), text ? len : 0,
              err, errlen};
  if (s.len > DETOUR_YAML_MAX_FILE)
    return say(&s, DETOUR_ERANGE,
               ":1:1: %zu bytes, more than the %zu MiB a detour YAML file "
               "may have",
               s.len, DETOUR_YAML_MAX_FILE >> 20);
  f->file = strdup(name);
  if (!f->file)
    return say(&s, DETOUR_ENOMEM, ": out of memory");
  f->budget = DETOUR_YAML_MAX_ALLOC;
  int rc = check_events(&s);
  if (rc == 0)
    rc = compose(f, &s);
  if (rc)
    detour_yaml_file_free(f);
  return rc;
}

/* The whole file or an error: a file is never cut (a scenario cut at a
 * limit lost its expectations and passed). */
static int read_whole(FILE *fp, const source *s, char **out, size_t *len) {
  size_t cap = 64 * 1024, n = 0;
  char *buf = malloc(cap);
  if (!buf)
    return say(s, DETOUR_ENOMEM, ": out of memory");
  for (;;) {
    if (n == cap) {
      if (cap > DETOUR_YAML_MAX_FILE) {
        free(buf);
        return say(s, DETOUR_ERANGE,
                   ":1:1: larger than the %zu MiB a detour YAML file may "
                   "have: refused, not cut",
                   DETOUR_YAML_MAX_FILE >> 20);
      }
      char *grown = realloc(buf, cap * 2);
      if (!grown) {
        free(buf);
        return say(s, DETOUR_ENOMEM, ": out of memory");
      }
      buf = grown;
      cap *= 2;
    }
    size_t got = fread(buf + n, 1, cap - n, fp);
    n += got;
    if (got == 0)
      break;
  }
  if (ferror(fp)) {
    free(buf);
    return say(s, DETOUR_EIO, ":1:1: cannot read: %s", strerror(errno));
  }
  if (n > DETOUR_YAML_MAX_FILE) {
    free(buf);
    return say(s, DETOUR_ERANGE,
               ":1:1: larger than the %zu MiB a detour YAML file may have: "
               "refused, not cut",
               DETOUR_YAML_MAX_FILE >> 20);
  }
  *out = buf;
  *len = n;
  return 0;
}

int detour_yaml_load_file(detour_yaml_file *f, const char *path, char *err,
                          size_t errlen) {
  if (errlen > 0 && err)
    err[0] = '\0';
  if (!f || !path)
    return DETOUR_EINVAL;
  memset(f, 0, sizeof *f);
  source s = {path, NULL, 0, err, errlen};
  FILE *fp = fopen(path, "rb");
  struct stat st;
  memset(&st, 0, sizeof st);
  if (fp && fstat(fileno(fp), &st) == 0 && S_ISDIR(st.st_mode)) {
    fclose(fp); /* fopen succeeds on a directory */
    fp = NULL;
    errno = EISDIR;
  }
  if (!fp)
    return say(&s, DETOUR_EIO, ":1:1: cannot open: %s", strerror(errno));
  if (S_ISREG(st.st_mode) && (uintmax_t)st.st_size > DETOUR_YAML_MAX_FILE) {
    fclose(fp);
    return say(&s, DETOUR_ERANGE,
               ":1:1: %ju bytes, more than the %zu MiB a detour YAML file "
               "may have: refused, not cut",
               (uintmax_t)st.st_size, DETOUR_YAML_MAX_FILE >> 20);
  }
  char *text = NULL;
  size_t len = 0;
  int rc = read_whole(fp, &s, &text, &len);
  fclose(fp);
  if (rc == 0)
    rc = detour_yaml_load_string(f, text, len, path, err, errlen);
  free(text);
  return rc;
}

yaml_node_t *detour_yaml_root(detour_yaml_file *f) {
  return f && f->loaded ? yaml_document_get_root_node(&f->doc) : NULL;
}

void detour_yaml_file_free(detour_yaml_file *f) {
  if (!f)
    return;
  if (f->loaded)
    yaml_document_delete(&f->doc);
  free(f->file);
  memset(f, 0, sizeof *f);
}

detour_yaml_ctx detour_yaml_ctx_of(detour_yaml_file *f, char *err,
                                   size_t errlen) {
  detour_yaml_ctx c = {&f->doc, f->file, err, errlen, &f->budget};
  return c;
}

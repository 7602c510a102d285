/*
 * engine_queue.c - a FIFO of engine actions that owns their strings.
 *
 * Each pushed action gets one allocation holding copies of everything it
 * points to; the pointers in the queued action are rewritten to point into
 * that block. Popping hands the block to the caller until the next engine
 * call, when detour__queue_release_popped() frees it.
 */
#include "engine_queue.h"

#include <string.h>

/* ------------------------------------------------------------------------ */
/* The allocator                                                             */

void *detour__mem_alloc(const detour_mem *m, size_t size) {
  return m->malloc(size ? size : 1, m->user);
}

void *detour__mem_calloc(const detour_mem *m, size_t n, size_t size) {
  return m->calloc(n ? n : 1, size ? size : 1, m->user);
}

void *detour__mem_realloc(const detour_mem *m, void *p, size_t size) {
  return m->realloc(p, size ? size : 1, m->user);
}

void detour__mem_free(const detour_mem *m, void *p) {
  if (p)
    m->free(p, m->user);
}

char *detour__mem_strdup(const detour_mem *m, const char *s) {
  size_t n = strlen(s) + 1;
  char *copy = detour__mem_alloc(m, n);
  if (copy)
    memcpy(copy, s, n);
  return copy;
}

/* ------------------------------------------------------------------------ */
/* The queue                                                                 */

void detour__queue_init(engine_queue *q, const detour_mem *mem) {
  memset(q, 0, sizeof *q);
  q->mem = mem;
}

void detour__queue_free(engine_queue *q) {
  for (size_t i = 0; i < q->count; i++)
    detour__mem_free(q->mem, q->items[(q->head + i) % q->cap].storage);
  detour__mem_free(q->mem, q->items);
  detour__mem_free(q->mem, q->popped_storage);
  q->items = NULL;
  q->popped_storage = NULL;
  q->head = q->count = q->cap = 0;
}

void detour__queue_release_popped(engine_queue *q) {
  detour__mem_free(q->mem, q->popped_storage);
  q->popped_storage = NULL;
}

bool detour__queue_empty(const engine_queue *q) { return q->count == 0; }

static bool queue_grow(engine_queue *q) {
  size_t cap = q->cap ? q->cap * 2 : 16;
  engine_queued_action *items = detour__mem_alloc(q->mem, cap * sizeof *items);
  if (!items)
    return false;
  for (size_t i = 0; i < q->count; i++)
    items[i] = q->items[(q->head + i) % q->cap];
  detour__mem_free(q->mem, q->items);
  q->items = items;
  q->cap = cap;
  q->head = 0;
  return true;
}

/* The pointers of an action that must be copied, with their lengths. */
typedef struct {
  const char **ptr[6];
  size_t len[6];
  size_t n;
} string_refs;

static void add_ref(string_refs *r, const char **p, size_t len) {
  r->ptr[r->n] = p;
  r->len[r->n] = len;
  r->n++;
}

static size_t cstr_len(const char *s) { return s ? strlen(s) + 1 : 0; }

static void collect_refs(detour_action *a, string_refs *r) {
  r->n = 0;
  switch (a->type) {
  case DETOUR_ACT_CONNECT:
    add_ref(r, &a->u.connect.host, cstr_len(a->u.connect.host));
    break;
  case DETOUR_ACT_SEND:
    add_ref(r, &a->u.send.data, a->u.send.len);
    break;
  case DETOUR_ACT_LOG:
    add_ref(r, &a->u.log.recipient, cstr_len(a->u.log.recipient));
    add_ref(r, &a->u.log.server, cstr_len(a->u.log.server));
    add_ref(r, &a->u.log.address, cstr_len(a->u.log.address));
    add_ref(r, &a->u.log.result, cstr_len(a->u.log.result));
    add_ref(r, &a->u.log.detail, cstr_len(a->u.log.detail));
    break;
  case DETOUR_ACT_WARN:
    add_ref(r, &a->u.warn.text, cstr_len(a->u.warn.text));
    break;
  case DETOUR_ACT_RCPT_RESULT:
    add_ref(r, &a->u.rcpt.recipient, cstr_len(a->u.rcpt.recipient));
    add_ref(r, &a->u.rcpt.detail, cstr_len(a->u.rcpt.detail));
    break;
  case DETOUR_ACT_ERROR:
    add_ref(r, &a->u.error.text, cstr_len(a->u.error.text));
    break;
  case DETOUR_ACT_TLS_START:
    add_ref(r, &a->u.tls.server_name, cstr_len(a->u.tls.server_name));
    add_ref(r, &a->u.tls.ca_file, cstr_len(a->u.tls.ca_file));
    break;
  case DETOUR_ACT_CLOSE:
  case DETOUR_ACT_DONE:
    break;
  }
}

/* Copy every referenced string into one block and repoint the action. */
static char *copy_strings(const detour_mem *mem, detour_action *a) {
  string_refs r;
  collect_refs(a, &r);
  size_t total = 1;
  for (size_t i = 0; i < r.n; i++)
    total += r.len[i];
  char *block = detour__mem_alloc(mem, total);
  if (!block)
    return NULL;
  size_t off = 0;
  for (size_t i = 0; i < r.n; i++) {
    if (!*r.ptr[i])
      continue;
    memcpy(block + off, *r.ptr[i], r.len[i]);
    *r.ptr[i] = block + off;
    off += r.len[i];
  }
  block[off] = '\0';
  return block;
}

bool detour__queue_push(engine_queue *q, const detour_action *a) {
  if (q->count == q->cap && !queue_grow(q))
    return false;
  engine_queued_action item = {.action = *a};
  item.storage = copy_strings(q->mem, &item.action);
  if (!item.storage)
    return false;
  q->items[(q->head + q->count) % q->cap] = item;
  q->count++;
  return true;
}

int detour__queue_pop(engine_queue *q, detour_action *out) {
  detour__queue_release_popped(q);
  if (q->count == 0)
    return 0;
  engine_queued_action *item = &q->items[q->head];
  *out = item->action;
  q->popped_storage = item->storage;
  q->head = (q->head + 1) % q->cap;
  q->count--;
  return 1;
}

/*
 * engine_queue.h - the engine's action queue (internal to libdetour).
 *
 * Actions carry strings (log rows, warnings, bytes to send). The queue owns
 * a private copy of each action's strings, so that the engine may change or
 * free its own state right after queueing; a popped action's copy lives
 * until the next call into the engine (detour.h promises that much).
 */
#ifndef DETOUR_ENGINE_QUEUE_H
#define DETOUR_ENGINE_QUEUE_H

#include "detour/detour.h"

typedef struct {
  detour_action action;
  char *storage; /* strings and bytes the action points into */
} engine_queued_action;

/* The engine's allocator (detour_mem, libc when none was given). Every
 * allocation of the engine goes through these. */
void *detour__mem_alloc(const detour_mem *m, size_t size);
void *detour__mem_calloc(const detour_mem *m, size_t n, size_t size);
void *detour__mem_realloc(const detour_mem *m, void *p, size_t size);
void detour__mem_free(const detour_mem *m, void *p);
char *detour__mem_strdup(const detour_mem *m, const char *s);

typedef struct {
  const detour_mem *mem; /* the engine's */
  engine_queued_action *items;
  size_t head, count, cap;
  char *popped_storage; /* storage of the last popped action */
} engine_queue;

void detour__queue_init(engine_queue *q, const detour_mem *mem);
void detour__queue_free(engine_queue *q);
/* Release what the last pop handed out (call at every engine entry). */
void detour__queue_release_popped(engine_queue *q);
/* Push a copy of a; every string/bytes pointer of a is copied. Returns
 * false when memory ran out (nothing was queued). */
bool detour__queue_push(engine_queue *q, const detour_action *a);
int detour__queue_pop(engine_queue *q, detour_action *out);
bool detour__queue_empty(const engine_queue *q);

#endif

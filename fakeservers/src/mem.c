/*
 * mem.c - the allocator hook of libdetour-fake (detour_fake_mem, after
 * nghttp2_mem): libc's by default, replaceable process-wide or per server
 * so a test can fail any one allocation and check what the library does.
 */
#include <stdlib.h>

#include "fake_internal.h"

static void *libc_malloc(size_t n, void *u) { return malloc(n); }
static void *libc_calloc(size_t n, size_t sz, void *u) { return calloc(n, sz); }
static void *libc_realloc(void *p, size_t n, void *u) { return realloc(p, n); }
static void libc_free(void *p, void *u) { free(p); }

static const detour_fake_mem libc_mem = {NULL, libc_malloc, libc_calloc,
                                         libc_realloc, libc_free};
static detour_fake_mem global_mem = {NULL, libc_malloc, libc_calloc,
                                     libc_realloc, libc_free};

void detour_fake_set_mem(const detour_fake_mem *mem) {
  global_mem = mem ? *mem : libc_mem;
}

const detour_fake_mem *detour__fake_mem_global(void) { return &global_mem; }

void *detour__fake_malloc(const detour_fake_mem *m, size_t n) {
  return m->malloc(n ? n : 1, m->user);
}

void *detour__fake_calloc(const detour_fake_mem *m, size_t n, size_t size) {
  return m->calloc(n ? n : 1, size ? size : 1, m->user);
}

void *detour__fake_realloc(const detour_fake_mem *m, void *p, size_t n) {
  return m->realloc(p, n ? n : 1, m->user);
}

void detour__fake_free(const detour_fake_mem *m, void *p) {
  if (p)
    m->free(p, m->user);
}

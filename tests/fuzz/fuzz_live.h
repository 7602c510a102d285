/*
 * fuzz_live.h - liveness checks shared by the fuzz targets.
 *
 * Memory: ASan's malloc and free hooks count the bytes live during one
 * input; fuzz_live_end() traps when the peak went over what the target
 * declared possible (the loaders' documented bounds), so unbounded growth
 * is a finding even when it stays under libFuzzer's -rss_limit_mb. Time:
 * every input must end; scripts/fuzz.sh and CI run with -timeout, which
 * turns a hang into a finding.
 */
#ifndef DETOUR_FUZZ_LIVE_H
#define DETOUR_FUZZ_LIVE_H

#include <sanitizer/allocator_interface.h>
#include <stddef.h>
#include <stdio.h>

static size_t fuzz_live_bytes, fuzz_live_peak, fuzz_live_start;

static void fuzz_live_malloc(const volatile void *p, size_t size) {
  (void)p;
  fuzz_live_bytes += size;
  if (fuzz_live_bytes > fuzz_live_peak)
    fuzz_live_peak = fuzz_live_bytes;
}

static void fuzz_live_free(const volatile void *p) {
  size_t size = __sanitizer_get_allocated_size((const void *)p);
  fuzz_live_bytes = size <= fuzz_live_bytes ? fuzz_live_bytes - size : 0;
}

/* Call at the start of each input. */
static void fuzz_live_begin(void) {
  static int installed;
  if (!installed) {
    __sanitizer_install_malloc_and_free_hooks(fuzz_live_malloc, fuzz_live_free);
    installed = 1;
  }
  fuzz_live_start = fuzz_live_bytes;
  fuzz_live_peak = fuzz_live_bytes;
}

/* Call at the end: traps when the input made more than limit bytes live
 * at once. (Leaks are libFuzzer's: it runs LeakSanitizer after an input
 * whose mallocs and frees do not match.) */
static void fuzz_live_end(size_t limit) {
  size_t grew = fuzz_live_peak - fuzz_live_start;
  if (grew > limit) {
    fprintf(stderr, "fuzz: one input made %zu bytes live (limit %zu)\n", grew,
            limit);
    __builtin_trap();
  }
}

#endif /* DETOUR_FUZZ_LIVE_H */

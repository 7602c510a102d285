/*
 * fuzz_check.h - what every loader's fuzz target checks of an error
 * message: one line, NUL-terminated, naming the file first, with a
 * line:col or a plain "FILE: ..." (out of memory) after it.
 */
#ifndef DETOUR_FUZZ_CHECK_H
#define DETOUR_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_CHECK(x, what)                                                    \
  do {                                                                         \
    if (!(x)) {                                                                \
      fprintf(stderr, "fuzz: broken promise: %s\n", what);                     \
      __builtin_trap();                                                        \
    }                                                                          \
  } while (0)

static inline void fuzz_check_error(const char *err, size_t errlen,
                                    const char *file) {
  FUZZ_CHECK(memchr(err, '\0', errlen) != NULL, "message NUL-terminated");
  FUZZ_CHECK(*err != '\0', "an error has a message");
  FUZZ_CHECK(strncmp(err, file, strlen(file)) == 0,
             "the message starts with the file name");
  const char *p = err + strlen(file);
  FUZZ_CHECK(*p == ':', "FILE: after the name");
  FUZZ_CHECK(strchr(err, '\n') == NULL || strlen(err) == errlen - 1,
             "one line (unless cut at the buffer's end)");
}

#endif /* DETOUR_FUZZ_CHECK_H */

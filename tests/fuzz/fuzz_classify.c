/*
 * fuzz_classify.c - libFuzzer target for the classification override keys
 * (core/src/classify.c, the `classify:` section of a configuration). The
 * input is lines "C KEY": C's low bits pick the class, KEY is the
 * override key; then a few failures are classified with the table.
 *
 * Checks: an override is accepted or refused with a message; a refused
 * key changes nothing; a plain three-digit code key, once accepted, wins
 * for that code at every stage (the newest override wins); every failure
 * gets a class in range.
 */
#include <ctype.h>
#include <stdint.h>
#include <string.h>

#include "detour/detour.h"
#include "fuzz_check.h"

static bool plain_code(const char *k) {
  return strlen(k) == 3 && k[0] >= '1' && k[0] <= '5' &&
         isdigit((unsigned char)k[1]) && isdigit((unsigned char)k[2]);
}

static detour_class classify(const detour_classify *t, detour_stage st,
                             detour_condition cond, int code) {
  detour_failure f = {.stage = st, .cond = cond, .code = code};
  bool warn = false;
  detour_class c = detour_classify_failure(t, &f, &warn);
  FUZZ_CHECK(c >= DETOUR_CLASS_NONE && c < DETOUR_CLASS_COUNT, "class range");
  return c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  detour_classify *t = detour_classify_new_default();
  if (!t)
    return 0;
  const char *p = (const char *)data, *end = p + size;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
    if (len >= 1 && len < 200) {
      char key[200];
      memcpy(key, p + 1, len - 1);
      key[len - 1] = '\0';
      detour_class cls = (detour_class)(1 + (unsigned char)p[0] % 4);
      char msg[256];
      int rc = detour_classify_override(t, key, cls, msg, sizeof msg);
      FUZZ_CHECK(rc == 0 || rc == DETOUR_EPARSE || rc == DETOUR_ENOMEM,
                 "documented return");
      if (rc == DETOUR_EPARSE)
        FUZZ_CHECK(memchr(msg, '\0', sizeof msg) && *msg, "a message");
      if (rc == 0 && plain_code(key)) {
        int code = atoi(key);
        for (int st = 0; st <= DETOUR_STAGE_QUIT; st++)
          FUZZ_CHECK(classify(t, (detour_stage)st, DETOUR_COND_REPLY, code) ==
                         cls,
                     "the newest override of a code wins");
      }
    }
    p += len + 1;
  }
  for (int c = 0; c < DETOUR_COND_COUNT; c++)
    classify(t, DETOUR_STAGE_RCPT, (detour_condition)c, 451);
  detour_classify_free(t);
  return 0;
}

/*
 * fuzz_auth.c - libFuzzer target for the server side of SMTP AUTH
 * (fakeservers/src/auth.c): the AUTH command line and the client's answers
 * to 334 challenges, base64 and SASL PLAIN/LOGIN parsing. A hostile client
 * writes all of it.
 *
 * Input: the first byte picks the mechanisms offered (its two low bits);
 * the rest is split at '\n' (a trailing '\r' kept, as a client may send
 * it): the first line is the AUTH command, each further line answers the
 * last challenge while the exchange asks for one. Every line also goes
 * through the base64 decoder alone. Besides the sanitizers, the decoded
 * fields must be NUL-terminated inside their bounds, a DONE exchange must
 * have a user and a password (PLAIN: RFC 4616 forbids empty ones), and a
 * challenge must be one of the two LOGIN prompts or the empty PLAIN one.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "detour/fake.h"

#define CHECK(x)                                                               \
  do {                                                                         \
    if (!(x))                                                                  \
      __builtin_trap();                                                        \
  } while (0)

static void check_fields(const detour_fake_sasl *x) {
  CHECK(memchr(x->authzid, '\0', sizeof x->authzid) != NULL);
  CHECK(memchr(x->user, '\0', sizeof x->user) != NULL);
  CHECK(memchr(x->password, '\0', sizeof x->password) != NULL);
}

static void check_status(const detour_fake_sasl *x,
                         detour_fake_sasl_status st) {
  check_fields(x);
  CHECK((unsigned)st <= DETOUR_FAKE_SASL_SYNTAX);
  if (st == DETOUR_FAKE_SASL_DONE) {
    CHECK(x->user[0] != '\0');
    CHECK(x->password[0] != '\0');
    CHECK(x->mechanism == DETOUR_FAKE_AUTH_PLAIN ||
          x->mechanism == DETOUR_FAKE_AUTH_LOGIN);
  }
  if (st == DETOUR_FAKE_SASL_CHALLENGE)
    CHECK(strcmp(x->challenge, "") == 0 ||
          strcmp(x->challenge, "VXNlcm5hbWU6") == 0 ||
          strcmp(x->challenge, "UGFzc3dvcmQ6") == 0);
}

static void decode_alone(const char *p, size_t n) {
  unsigned char out[64];
  long k = detour_fake_base64_decode(p, n, out, sizeof out);
  CHECK(k >= -1 && k <= (long)sizeof out);
  if (k >= 0)
    CHECK(n % 4 == 0 && (size_t)k <= n / 4 * 3);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  unsigned offered = data[0] & 3u;
  const char *p = (const char *)data + 1;
  size_t len = size - 1;
  detour_fake_sasl x;
  detour_fake_sasl_status st = DETOUR_FAKE_SASL_SYNTAX;
  bool first = true;
  while (len > 0) {
    const char *nl = memchr(p, '\n', len);
    size_t n = nl ? (size_t)(nl - p) : len;
    decode_alone(p, n);
    if (first)
      st = detour_fake_sasl_begin(&x, p, n, offered);
    else if (st == DETOUR_FAKE_SASL_CHALLENGE)
      st = detour_fake_sasl_step(&x, p, n);
    if (first || st != DETOUR_FAKE_SASL_SYNTAX)
      check_status(&x, st);
    first = false;
    if (!nl)
      break;
    len -= n + 1;
    p += n + 1;
  }
  return 0;
}

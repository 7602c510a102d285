/*
 * auth.c - the server side of SMTP AUTH (RFC 4954) as pure functions: the
 * AUTH command line and the client's answers to 334 challenges go in,
 * a status and the decoded user and password come out. No I/O, no
 * allocation, every field bounded, so a fuzzer (tests/fuzz/fuzz_auth.c)
 * can drive it and session.c only moves bytes.
 *
 * Mechanisms:
 *   PLAIN (RFC 4616)  one message, base64 of authzid NUL authcid NUL
 *                     passwd; sent with the command (initial response) or
 *                     after an empty "334 " challenge. "=" as the initial
 *                     response means an empty response (RFC 4954 4).
 *   LOGIN             (draft-murchison-sasl-login) user, then password,
 *                     each base64 after a "334 VXNlcm5hbWU6" ("Username:")
 *                     and "334 UGFzc3dvcmQ6" ("Password:") challenge; the
 *                     user may come as the initial response.
 * A "*" line cancels (RFC 4954 4: 501). Base64 is strict (RFC 4648: the
 * alphabet, padding to a multiple of 4, nothing else): a lenient decoder
 * would accept lines a real server rejects.
 */
#include <string.h>
#include <strings.h>

#include "detour/fake.h"

#define LOGIN_USER_CHALLENGE "VXNlcm5hbWU6" /* "Username:" */
#define LOGIN_PASS_CHALLENGE "UGFzc3dvcmQ6" /* "Password:" */

static int b64_value(unsigned char c) {
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (c >= '0' && c <= '9')
    return c - '0' + 52;
  if (c == '+')
    return 62;
  if (c == '/')
    return 63;
  return -1;
}

long detour_fake_base64_decode(const char *in, size_t len, unsigned char *out,
                               size_t cap) {
  size_t o = 0;
  if (!in || len % 4 != 0)
    return -1;
  for (size_t i = 0; i < len; i += 4) {
    int v[4];
    int pad = 0;
    for (int k = 0; k < 4; k++) {
      unsigned char c = (unsigned char)in[i + k];
      /* '=' only at the end: the last one or two characters. */
      if (c == '=' && i + 4 == len && k >= 2) {
        pad++;
        v[k] = 0;
        continue;
      }
      if (pad || (v[k] = b64_value(c)) < 0)
        return -1;
    }
    unsigned long w = ((unsigned long)v[0] << 18) |
                      ((unsigned long)v[1] << 12) | ((unsigned long)v[2] << 6) |
                      (unsigned long)v[3];
    size_t n = 3 - (size_t)pad;
    if (o + n > cap)
      return -1;
    for (size_t k = 0; k < n; k++)
      out[o + k] = (unsigned char)(w >> (16 - 8 * k));
    o += n;
  }
  return (long)o;
}

/* A decoded field into a NUL-terminated buffer; a NUL inside is refused
 * (it would cut the name silently). */
static bool set_field(char *dst, const unsigned char *p, size_t n) {
  if (n >= DETOUR_FAKE_SASL_FIELD_MAX || memchr(p, '\0', n))
    return false;
  memcpy(dst, p, n);
  dst[n] = '\0';
  return true;
}

static bool is_cancel(const char *line, size_t len) {
  return len == 1 && line[0] == '*';
}

/* RFC 4616: [authzid] NUL authcid NUL passwd, authcid and passwd not
 * empty. */
static detour_fake_sasl_status plain_message(detour_fake_sasl *x,
                                             const char *b64, size_t len) {
  unsigned char raw[3 * DETOUR_FAKE_SASL_FIELD_MAX + 3];
  long n = len == 1 && b64[0] == '='
               ? 0
               : detour_fake_base64_decode(b64, len, raw, sizeof raw);
  if (n < 0)
    return DETOUR_FAKE_SASL_SYNTAX;
  unsigned char *end = raw + n;
  unsigned char *nul1 = memchr(raw, '\0', (size_t)n);
  if (!nul1)
    return DETOUR_FAKE_SASL_SYNTAX;
  unsigned char *nul2 = memchr(nul1 + 1, '\0', (size_t)(end - nul1 - 1));
  if (!nul2 || nul2 == nul1 + 1 || nul2 + 1 == end)
    return DETOUR_FAKE_SASL_SYNTAX;
  bool ok = set_field(x->authzid, raw, (size_t)(nul1 - raw)) &&
            set_field(x->user, nul1 + 1, (size_t)(nul2 - nul1 - 1)) &&
            set_field(x->password, nul2 + 1, (size_t)(end - nul2 - 1));
  memset(raw, 0, sizeof raw); /* the password was in there */
  return ok ? DETOUR_FAKE_SASL_DONE : DETOUR_FAKE_SASL_SYNTAX;
}

/* One LOGIN field (user or password), base64. */
static bool login_field(char *dst, const char *b64, size_t len) {
  unsigned char raw[DETOUR_FAKE_SASL_FIELD_MAX];
  long n = detour_fake_base64_decode(b64, len, raw, sizeof raw);
  bool ok = n > 0 && set_field(dst, raw, (size_t)n);
  memset(raw, 0, sizeof raw);
  return ok;
}

static detour_fake_sasl_status challenge(detour_fake_sasl *x, const char *c) {
  x->challenge = c;
  x->step++;
  return DETOUR_FAKE_SASL_CHALLENGE;
}

detour_fake_sasl_status detour_fake_sasl_begin(detour_fake_sasl *x,
                                               const char *line, size_t len,
                                               unsigned offered) {
  memset(x, 0, sizeof *x);
  /* "AUTH" SP mechanism [SP initial-response] */
  if (len < 5 || strncasecmp(line, "AUTH ", 5) != 0)
    return DETOUR_FAKE_SASL_SYNTAX;
  const char *mech = line + 5, *end = line + len;
  const char *sp = memchr(mech, ' ', (size_t)(end - mech));
  size_t mlen = (size_t)((sp ? sp : end) - mech);
  const char *ir = sp ? sp + 1 : NULL;
  size_t irlen = sp ? (size_t)(end - ir) : 0;
  if (sp && (irlen == 0 || memchr(ir, ' ', irlen)))
    return DETOUR_FAKE_SASL_SYNTAX;
  if (mlen == 5 && strncasecmp(mech, "PLAIN", 5) == 0 &&
      (offered & DETOUR_FAKE_AUTH_PLAIN)) {
    x->mechanism = DETOUR_FAKE_AUTH_PLAIN;
    return ir ? plain_message(x, ir, irlen) : challenge(x, "");
  }
  if (mlen == 5 && strncasecmp(mech, "LOGIN", 5) == 0 &&
      (offered & DETOUR_FAKE_AUTH_LOGIN)) {
    x->mechanism = DETOUR_FAKE_AUTH_LOGIN;
    if (!ir)
      return challenge(x, LOGIN_USER_CHALLENGE);
    if (!login_field(x->user, ir, irlen))
      return DETOUR_FAKE_SASL_SYNTAX;
    x->step = 1; /* as if the user challenge had been answered */
    return challenge(x, LOGIN_PASS_CHALLENGE);
  }
  return DETOUR_FAKE_SASL_BAD_MECH;
}

detour_fake_sasl_status detour_fake_sasl_step(detour_fake_sasl *x,
                                              const char *line, size_t len) {
  if (is_cancel(line, len))
    return DETOUR_FAKE_SASL_CANCELLED;
  if (x->mechanism == DETOUR_FAKE_AUTH_PLAIN && x->step == 1)
    return plain_message(x, line, len);
  if (x->mechanism == DETOUR_FAKE_AUTH_LOGIN && x->step == 1) {
    if (!login_field(x->user, line, len))
      return DETOUR_FAKE_SASL_SYNTAX;
    return challenge(x, LOGIN_PASS_CHALLENGE);
  }
  if (x->mechanism == DETOUR_FAKE_AUTH_LOGIN && x->step == 2)
    return login_field(x->password, line, len) ? DETOUR_FAKE_SASL_DONE
                                               : DETOUR_FAKE_SASL_SYNTAX;
  return DETOUR_FAKE_SASL_SYNTAX; /* no exchange in progress */
}

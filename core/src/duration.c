/*
 * duration.c - the one duration grammar of detour: configuration files,
 * scenario files, fake-server scripts and command-line options all read
 * durations here (docs/config.md).
 *
 *   duration := number                 a bare number is seconds ("30")
 *             | group group ...        units in decreasing order, each once
 *   group    := digits [ "." digits ] unit
 *   unit     := "h" | "m" | "s" | "ms" (any case)
 *
 * "500ms", "3s", "1.5s", "3m20s", "1h2m3.004s". No sign, no space, no
 * other unit: a typo is a syntax error, never another duration. The value
 * must be a whole number of milliseconds ("1.0005s" is refused rather than
 * rounded) and at most DETOUR_DURATION_MAX (30 days, detour.h says why).
 */
#include "detour/detour.h"

#include <ctype.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

typedef struct {
  const char *suffix;
  detour_ms ms;
} unit;

/* Longest suffix first, so "ms" is not read as "m" then "s". The order of
 * the rest is the order groups must come in. */
static const unit units[] = {
    {"ms", 1}, {"h", 3600 * 1000}, {"m", 60 * 1000}, {"s", 1000}};
#define NUNITS (sizeof units / sizeof units[0])

/* The rank of a unit in the required order h > m > s > ms. */
static int rank(detour_ms ms) {
  return ms == 3600 * 1000 ? 0 : ms == 60 * 1000 ? 1 : ms == 1000 ? 2 : 3;
}

/* Digits of at most 12 figures (more cannot be a duration we accept, and
 * the cap keeps every product below INT64_MAX). Advances *pp. */
static int read_digits(const char **pp, int64_t *value, int64_t *scale,
                       bool *too_big) {
  const char *p = *pp;
  int64_t v = 0, s = 1;
  if (!isdigit((unsigned char)*p))
    return DETOUR_EPARSE;
  for (; isdigit((unsigned char)*p); p++) {
    if (s >= 1000000000000LL) {
      *too_big = true; /* keep reading: the syntax decides first */
      continue;
    }
    v = v * 10 + (*p - '0');
    s *= 10;
  }
  *value = v;
  *scale = s;
  *pp = p;
  return 0;
}

/* One group "digits[.digits]unit" (unit may be empty only for a bare
 * number, which the caller checks). */
static int read_group(const char **pp, detour_ms *out, detour_ms *unit_ms,
                      bool *too_big) {
  const char *p = *pp;
  int64_t whole, frac = 0, fscale = 1, wscale;
  if (read_digits(&p, &whole, &wscale, too_big) < 0)
    return DETOUR_EPARSE;
  if (*p == '.') {
    p++;
    if (read_digits(&p, &frac, &fscale, too_big) < 0)
      return DETOUR_EPARSE;
  }
  detour_ms u = 1000; /* bare number: seconds */
  size_t ulen = 0;
  for (size_t i = 0; i < NUNITS; i++) {
    size_t n = strlen(units[i].suffix);
    if (strncasecmp(p, units[i].suffix, n) == 0) {
      u = units[i].ms;
      ulen = n;
      break;
    }
  }
  if (ulen == 0 && *p != '\0')
    return DETOUR_EPARSE;
  /* frac / fscale of a unit must be whole milliseconds. */
  if ((frac * u) % fscale != 0)
    return DETOUR_EPARSE;
  *out = whole * u + frac * u / fscale;
  *unit_ms = ulen ? u : 0;
  *pp = p + ulen;
  return 0;
}

int detour_parse_duration(const char *text, detour_ms *out) {
  if (!text || !out)
    return DETOUR_EINVAL;
  const char *p = text;
  detour_ms total = 0;
  int last_rank = -1;
  bool too_big = false;
  do {
    detour_ms g, u;
    if (read_group(&p, &g, &u, &too_big) < 0)
      return DETOUR_EPARSE;
    if (u == 0 && (last_rank >= 0 || *p != '\0'))
      return DETOUR_EPARSE; /* a bare number stands alone */
    if (u != 0) {
      if (rank(u) <= last_rank)
        return DETOUR_EPARSE; /* "3s3m", "3s3s" */
      last_rank = rank(u);
    }
    if (!too_big) { /* total <= MAX and g < 10^12 * 3.6e6: no overflow */
      total += g;
      too_big = total > DETOUR_DURATION_MAX;
    }
  } while (*p);
  if (too_big)
    return DETOUR_ERANGE;
  *out = total;
  return 0;
}

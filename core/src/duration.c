/*
 * duration.c - durations as written in configuration and scenario files.
 *
 * "500ms", "3s", "3m", "1h", or a bare number of seconds ("30"). Only
 * unsigned decimal integers: a sign, a fraction, a space or an unknown unit
 * is a syntax error, so a typo never silently becomes another duration.
 * Units are case-insensitive. The result must fit detour_ms.
 */
#include "detour/detour.h"

#include <stdint.h>
#include <strings.h>

typedef struct {
  const char *suffix;
  detour_ms ms;
} unit;

/* "" is the bare number: seconds, as the header promises. */
static const unit units[] = {
    {"ms", 1}, {"s", 1000}, {"m", 60 * 1000}, {"h", 3600 * 1000}, {"", 1000},
};

int detour_parse_duration(const char *text, detour_ms *out) {
  if (!text || !out)
    return DETOUR_EINVAL;
  const char *p = text;
  if (*p < '0' || *p > '9')
    return DETOUR_EPARSE;
  detour_ms n = 0;
  bool overflow = false;
  for (; *p >= '0' && *p <= '9'; p++) {
    int d = *p - '0';
    if (n > (INT64_MAX - d) / 10)
      overflow = true;
    else
      n = n * 10 + d;
  }
  for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
    if (strcasecmp(p, units[i].suffix) != 0)
      continue;
    if (overflow || n > INT64_MAX / units[i].ms)
      return DETOUR_ERANGE;
    *out = n * units[i].ms;
    return 0;
  }
  return DETOUR_EPARSE;
}

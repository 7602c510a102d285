/*
 * util.c - small helpers of the scenario runner: strings, a growable
 * buffer, globs, and the time offsets scenarios are written in ("3m20s").
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scn_internal.h"

char *detour__scn_strdup(const char *s) { return s ? strdup(s) : NULL; }

char *detour__scn_memdup(const void *p, size_t len) {
  char *d = malloc(len + 1);
  if (!d)
    return NULL;
  if (len)
    memcpy(d, p, len);
  d[len] = '\0';
  return d;
}

char *detour__scn_printf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0)
    return NULL;
  char *s = malloc((size_t)n + 1);
  if (!s)
    return NULL;
  va_start(ap, fmt);
  vsnprintf(s, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return s;
}

static bool buf_reserve(detour__scn_buf *b, size_t more) {
  if (b->oom)
    return false;
  if (b->len + more + 1 <= b->cap)
    return true;
  size_t cap = b->cap ? b->cap : 128;
  while (cap < b->len + more + 1)
    cap *= 2;
  char *s = realloc(b->s, cap);
  if (!s) {
    b->oom = true;
    return false;
  }
  b->s = s;
  b->cap = cap;
  return true;
}

void detour__scn_buf_addn(detour__scn_buf *b, const char *p, size_t n) {
  if (!buf_reserve(b, n))
    return;
  memcpy(b->s + b->len, p, n);
  b->len += n;
  b->s[b->len] = '\0';
}

void detour__scn_buf_add(detour__scn_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0 || !buf_reserve(b, (size_t)n))
    return;
  va_start(ap, fmt);
  vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

void detour__scn_buf_add_escaped(detour__scn_buf *b, const char *p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)p[i];
    switch (c) {
    case '\r':
      detour__scn_buf_addn(b, "\\r", 2);
      break;
    case '\n':
      detour__scn_buf_addn(b, "\\n", 2);
      break;
    case '\t':
      detour__scn_buf_addn(b, "\\t", 2);
      break;
    case '"':
      detour__scn_buf_addn(b, "\\\"", 2);
      break;
    case '\\':
      detour__scn_buf_addn(b, "\\\\", 2);
      break;
    default:
      if (c < 0x20 || c >= 0x7f)
        detour__scn_buf_add(b, "\\x%02x", c);
      else
        detour__scn_buf_addn(b, (const char *)&c, 1);
    }
  }
}

char *detour__scn_buf_take(detour__scn_buf *b) {
  if (b->oom) {
    detour__scn_buf_free(b);
    return NULL;
  }
  char *s = b->s ? b->s : strdup("");
  b->s = NULL;
  b->len = b->cap = 0;
  return s;
}

void detour__scn_buf_free(detour__scn_buf *b) {
  free(b->s);
  memset(b, 0, sizeof *b);
}

int detour__scn_grow(void *arr, size_t *cap, size_t n, size_t sz) {
  void **p = arr;
  if (n < *cap)
    return 0;
  size_t c = *cap ? *cap * 2 : 8;
  while (c <= n)
    c *= 2;
  void *g = realloc(*p, c * sz);
  if (!g)
    return DETOUR_ENOMEM;
  memset((char *)g + *cap * sz, 0, (c - *cap) * sz);
  *p = g;
  *cap = c;
  return 0;
}

bool detour_scenario_glob(const char *pattern, const char *text) {
  return detour_glob(pattern, text, DETOUR_GLOB_QMARK);
}

const char *detour_verdict_name(detour_verdict v) {
  switch (v) {
  case DETOUR_VERDICT_PASS:
    return "PASS";
  case DETOUR_VERDICT_FAIL:
    return "FAIL";
  case DETOUR_VERDICT_ERROR:
    return "ERROR";
  case DETOUR_VERDICT_SKIP:
    return "SKIP";
  }
  return "?";
}

void detour_scenario_format_offset(detour_ms t, char *buf, size_t len) {
  const char *sign = t < 0 ? "-" : "";
  uint64_t v = (uint64_t)(t < 0 ? -t : t);
  uint64_t h = v / 3600000, m = v / 60000 % 60, s = v / 1000 % 60,
           ms = v % 1000;
  char hp[32] = "", mp[32] = "", sp[32] = "";
  if (h)
    snprintf(hp, sizeof hp, "%lluh", (unsigned long long)h);
  if (m)
    snprintf(mp, sizeof mp, "%llum", (unsigned long long)m);
  if (ms)
    snprintf(sp, sizeof sp, "%llu.%03llus", (unsigned long long)s,
             (unsigned long long)ms);
  else if (s || (!h && !m))
    snprintf(sp, sizeof sp, "%llus", (unsigned long long)s);
  snprintf(buf, len, "%s%s%s%s", sign, hp, mp, sp);
}

/* Scenario times are durations from the start of the run: the one
 * duration grammar (core/src/duration.c), so a file cannot write a time
 * its client configuration would refuse. */
int detour_scenario_parse_offset(const char *text, detour_ms *out) {
  return detour_parse_duration(text, out);
}

void detour_scenario_format_row(const detour_scenario_row *r, char *buf,
                                size_t len) {
  char t[32];
  detour_scenario_format_offset(r->t, t, sizeof t);
  const char *kind = r->kind == DETOUR_LOG_SMTP || r->kind == DETOUR_LOG_CONNECT
                         ? ""
                         : detour_log_kind_name(r->kind);
  snprintf(buf, len, "t=%-8s msg %zu  %-14s %-4s %-34s %s%s#%u%s%s", t,
           r->message, r->recipient, r->server, r->result,
           r->cls == DETOUR_CLASS_NONE ? "" : detour_class_name(r->cls),
           r->cls == DETOUR_CLASS_NONE ? "" : " ", r->attempt, *kind ? " " : "",
           kind);
}

/*
 * sendlog.c - the send log of SPEC R8 (Fig. 6): every TCP connect and every
 * SMTP transaction is one row, written here as a line of a fixed-width
 * table (for people) or as one JSON object (JSON Lines, for programs).
 *
 * Pure formatting into caller buffers: no clock, no I/O. Both writers keep
 * the output NUL-terminated and report DETOUR_ERANGE when it was cut. The
 * table shows the address actually used next to the configured server when
 * they differ ("mx.example.com:25 (192.0.2.1:25)"), so the log says
 * through which machine each message went even behind a name.
 */
#include "detour/detour.h"

#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* An output buffer that truncates, stays NUL-terminated and remembers
 * whether anything was lost. */
typedef struct {
  char *buf;
  size_t len; /* >= 1 */
  size_t pos;
  bool full;
} out;

static void put(out *o, const char *s, size_t n) {
  if (o->full)
    return;
  size_t room = o->len - 1 - o->pos;
  if (n > room) {
    n = room;
    o->full = true;
  }
  memcpy(o->buf + o->pos, s, n);
  o->pos += n;
  o->buf[o->pos] = '\0';
}

static void put_str(out *o, const char *s) { put(o, s, strlen(s)); }

/* Numbers only: everything it formats fits in 64 bytes. */
static void putf(out *o, const char *fmt, ...) {
  char tmp[64];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n > 0)
    put(o, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static int finish(const out *o) {
  return o->full || o->pos > INT_MAX ? DETOUR_ERANGE : (int)o->pos;
}

/* ------------------------------------------------------------------------ */
/* Time.                                                                     */

/* t (ms since the epoch, may be negative) as UTC calendar time plus ms. */
static bool split_time(detour_ms t, struct tm *tm, int *ms) {
  detour_ms secs = t / 1000, rem = t % 1000;
  if (rem < 0) {
    rem += 1000;
    secs -= 1;
  }
  time_t tt = (time_t)secs;
  if ((detour_ms)tt != secs || !gmtime_r(&tt, tm))
    return false;
  *ms = (int)rem;
  return true;
}

/* "YYYY-MM-DD<sep>HH:MM:SS.mmm" followed by zulu ("Z" or ""). */
static int format_time(detour_ms t, char sep, const char *zulu, char *buf,
                       size_t len) {
  struct tm tm;
  int ms;
  if (!buf || len == 0)
    return DETOUR_ERANGE;
  buf[0] = '\0';
  if (!split_time(t, &tm, &ms))
    return DETOUR_ERANGE;
  int n = snprintf(buf, len, "%04d-%02d-%02d%c%02d:%02d:%02d.%03d%s",
                   tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, sep,
                   tm.tm_hour, tm.tm_min, tm.tm_sec, ms, zulu);
  if (n < 0 || (size_t)n >= len) {
    buf[0] = '\0'; /* a cut date would be a wrong date */
    return DETOUR_ERANGE;
  }
  return n;
}

int detour_format_time(detour_ms t, char *buf, size_t len) {
  return format_time(t, 'T', "Z", buf, len);
}

/* ------------------------------------------------------------------------ */
/* The table (Fig. 6 plus class and attempt).                                */

#define W_TIME 23
#define W_RCPT 30
#define W_SERVER 34
#define W_RESULT 34
#define W_CLASS 9
#define GAP "  "

/* Must line up with the widths above; test_sendlog checks it does. */
static const char table_header[] =
    "date-time (UTC)        " GAP "recipient                     " GAP
    "server                            " GAP
    "result                            " GAP "class    " GAP "attempt";
_Static_assert(sizeof table_header - 1 ==
                   W_TIME + W_RCPT + W_SERVER + W_RESULT + W_CLASS + 5 * 2 + 7,
               "header widths must match the row widths");

const char *detour_log_table_header(void) { return table_header; }

/* s with control characters (a multi-line reply's '\n') shown as spaces:
 * a row is one line. */
static void put_clean(out *o, const char *s) {
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    char ch = c < 0x20 || c == 0x7f ? ' ' : (char)c;
    put(o, &ch, 1);
  }
}

static const char *or_dash(const char *s) { return s && *s ? s : "-"; }

/* Spaces after a column that began at start, up to width, then the gap. */
static void pad(out *o, size_t start, size_t width) {
  for (size_t n = o->pos - start; n < width; n++)
    put(o, " ", 1);
  put_str(o, GAP);
}

static void put_server(out *o, const detour_log_row *row) {
  put_clean(o, or_dash(row->server));
  if (row->address && row->address[0] &&
      (!row->server || strcmp(row->address, row->server) != 0)) {
    put_str(o, " (");
    put_clean(o, row->address);
    put_str(o, ")");
  }
}

int detour_log_format_table(const detour_log_row *row, char *buf, size_t len) {
  if (!buf || len == 0)
    return DETOUR_ERANGE;
  buf[0] = '\0';
  if (!row)
    return DETOUR_EINVAL;
  out o = {buf, len, 0, false};
  char when[48];
  size_t start = o.pos;
  if (format_time(row->time, ' ', "", when, sizeof when) < 0)
    strcpy(when, "?");
  put_str(&o, when);
  pad(&o, start, W_TIME);
  start = o.pos;
  put_clean(&o, or_dash(row->recipient));
  pad(&o, start, W_RCPT);
  start = o.pos;
  put_server(&o, row);
  pad(&o, start, W_SERVER);
  start = o.pos;
  put_clean(&o, or_dash(row->result));
  pad(&o, start, W_RESULT);
  start = o.pos;
  put_str(&o,
          row->cls == DETOUR_CLASS_NONE ? "-" : detour_class_name(row->cls));
  pad(&o, start, W_CLASS);
  if (row->attempt > 0)
    putf(&o, "%u", row->attempt);
  else
    put_str(&o, "-");
  return finish(&o);
}

/* ------------------------------------------------------------------------ */
/* JSON (RFC 8259).                                                          */

static bool cont(unsigned char c) { return (c & 0xc0) == 0x80; }

/* The length of the well-formed UTF-8 sequence at s (RFC 3629), or 0. */
static size_t utf8_len(const unsigned char *s) {
  unsigned char c = s[0];
  if (c < 0x80)
    return 1;
  if (c >= 0xc2 && c <= 0xdf)
    return cont(s[1]) ? 2 : 0;
  if (c >= 0xe0 && c <= 0xef) {
    unsigned char lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
    return s[1] >= lo && s[1] <= hi && cont(s[2]) ? 3 : 0;
  }
  if (c >= 0xf0 && c <= 0xf4) {
    unsigned char lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
    return s[1] >= lo && s[1] <= hi && cont(s[2]) && cont(s[3]) ? 4 : 0;
  }
  return 0;
}

/* A JSON string. Server text is not trusted to be UTF-8: a byte that does
 * not start a well-formed sequence becomes U+FFFD, so the record always
 * parses. NULL is written as "". */
static void put_json_string(out *o, const char *s) {
  static const char hex[] = "0123456789abcdef";
  put_str(o, "\"");
  const unsigned char *p = (const unsigned char *)(s ? s : "");
  while (*p) {
    unsigned char c = *p;
    size_t n = utf8_len(p);
    if (c == '"' || c == '\\') {
      char esc[2] = {'\\', (char)c};
      put(o, esc, 2);
    } else if (c == '\n') {
      put_str(o, "\\n");
    } else if (c == '\r') {
      put_str(o, "\\r");
    } else if (c == '\t') {
      put_str(o, "\\t");
    } else if (c == '\b') {
      put_str(o, "\\b");
    } else if (c == '\f') {
      put_str(o, "\\f");
    } else if (c < 0x20) {
      char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
      put(o, esc, 6);
    } else if (n == 0) {
      put_str(o, "\\ufffd");
      n = 1;
    } else {
      put(o, (const char *)p, n);
    }
    p += n ? n : 1;
  }
  put_str(o, "\"");
}

static void put_key(out *o, const char *key, bool first) {
  if (!first)
    put_str(o, ",");
  put_json_string(o, key);
  put_str(o, ":");
}

int detour_log_format_json(const detour_log_row *row, char *buf, size_t len) {
  if (!buf || len == 0)
    return DETOUR_ERANGE;
  buf[0] = '\0';
  if (!row)
    return DETOUR_EINVAL;
  out o = {buf, len, 0, false};
  char when[48];
  if (detour_format_time(row->time, when, sizeof when) < 0)
    when[0] = '\0';
  put_str(&o, "{");
  put_key(&o, "time", true);
  put_json_string(&o, when);
  put_key(&o, "t_ms", false);
  putf(&o, "%" PRId64, (int64_t)row->time);
  put_key(&o, "kind", false);
  put_json_string(&o, detour_log_kind_name(row->kind));
  put_key(&o, "message", false);
  putf(&o, "%zu", row->message);
  put_key(&o, "recipient", false);
  put_json_string(&o, row->recipient);
  put_key(&o, "server", false);
  put_json_string(&o, row->server);
  put_key(&o, "address", false);
  put_json_string(&o, row->address);
  put_key(&o, "priority", false);
  putf(&o, "%d", row->priority);
  put_key(&o, "attempt", false);
  putf(&o, "%u", row->attempt);
  put_key(&o, "result", false);
  put_json_string(&o, row->result);
  put_key(&o, "class", false);
  put_json_string(&o, detour_class_name(row->cls));
  put_key(&o, "detail", false);
  put_json_string(&o, row->detail);
  put_str(&o, "}");
  return finish(&o);
}

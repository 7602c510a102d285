/*
 * fuzz_fake_commands.c - libFuzzer target for the fake server's reader of
 * what a client under test sends (fakeservers/src/cmdread.c): command
 * lines, pipelined groups, DATA with dot-stuffing, garbage.
 *
 * A miniature session drives the reader as session.c does: command lines
 * until a "DATA" line, then the message until its end, then commands
 * again. The first input byte picks the chunk size (1..256) the rest is
 * fed in, the second the line limit (1..256, so overlong lines are
 * common). Checks, besides the sanitizers':
 *   - every call consumes at most what it was given, every line respects
 *     the limit, and the bytes kept between calls stay bounded;
 *   - the outcome (every line, every body byte, every end and finding)
 *     does not depend on how the bytes were split: the chunked run and a
 *     run with the whole input at once hash the same.
 * A violation traps.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "cmdread.h"

#define CHECK(x)                                                               \
  do {                                                                         \
    if (!(x))                                                                  \
      __builtin_trap();                                                        \
  } while (0)

#define KEEP_MAX 4096

typedef struct {
  uint64_t hash; /* FNV-1a over everything the reader reported */
  size_t lines, too_long, messages, findings;
} outcome;

static void mix(outcome *o, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++)
    o->hash = (o->hash ^ b[i]) * 1099511628211ull;
}

static void mix_tag(outcome *o, char tag) { mix(o, &tag, 1); }

typedef struct {
  detour__fake_line_reader lines;
  detour__fake_body_reader body;
  int in_body;
  char keep[KEEP_MAX + 512]; /* command bytes not consumed yet */
  size_t nkeep;
  char out[KEEP_MAX + 2];
} session;

/* Command mode: consume whole lines from keep[]. */
static void commands(session *s, outcome *o) {
  for (;;) {
    detour__fake_line l;
    detour__fake_line_next(&s->lines, s->keep, s->nkeep, &l);
    CHECK(l.used <= s->nkeep);
    if (l.kind == FAKE_LINE_OK) {
      CHECK(l.len <= s->lines.max && l.used >= l.len + 1);
      CHECK(s->keep[l.used - 1] == '\n');
      CHECK(l.nul == (memchr(s->keep, 0, l.len) != NULL));
      mix_tag(o, 'L');
      mix(o, s->keep, l.len);
      o->lines++;
    } else if (l.kind == FAKE_LINE_TOO_LONG) {
      CHECK(l.len == s->lines.max);
      mix_tag(o, 'T');
      mix(o, s->keep, l.len);
      o->too_long++;
    }
    bool data = l.kind == FAKE_LINE_OK && l.len == 4 &&
                strncasecmp(s->keep, "DATA", 4) == 0;
    memmove(s->keep, s->keep + l.used, s->nkeep - l.used);
    s->nkeep -= l.used;
    if (data) {
      s->in_body = 1;
      detour__fake_body_reader_init(&s->body);
      return;
    }
    if (l.used == 0)
      return;
  }
}

/* Body mode: returns the bytes of p consumed (all, unless the end came). */
static size_t body(session *s, const char *p, size_t n, outcome *o) {
  size_t done = 0;
  while (done < n) {
    size_t k = n - done < KEEP_MAX ? n - done : KEEP_MAX;
    detour__fake_body_chunk c;
    uint64_t dots = s->body.bare_lf_dots;
    detour__fake_body_next(&s->body, p + done, k, s->out, &c);
    CHECK(c.used <= k && c.out_len <= c.used + 2);
    CHECK(c.end || c.used == k);
    CHECK(c.bare_lf_dot == (s->body.bare_lf_dots > dots));
    /* no tag per call: the calls differ between the two runs */
    mix(o, s->out, c.out_len);
    o->findings += s->body.bare_lf_dots - dots;
    done += c.used;
    if (c.end) {
      mix_tag(o, 'E');
      o->messages++;
      s->in_body = 0;
      break;
    }
  }
  return done;
}

static void run(const char *p, size_t n, size_t chunk, size_t max, outcome *o) {
  static session s;
  memset(o, 0, sizeof *o);
  o->hash = 1469598103934665603ull;
  detour__fake_line_reader_init(&s.lines, max);
  s.in_body = 0;
  s.nkeep = 0;
  while (n > 0) {
    size_t k = n < chunk ? n : chunk;
    /* Bytes go to the body reader directly, or through keep[] to the
     * line reader, which must leave at most max + 1 of them there. */
    size_t used = 0;
    while (used < k) {
      if (s.in_body) {
        used += body(&s, p + used, k - used, o);
        continue;
      }
      size_t take = k - used;
      if (take > sizeof s.keep - s.nkeep)
        take = sizeof s.keep - s.nkeep;
      memcpy(s.keep + s.nkeep, p + used, take);
      s.nkeep += take;
      used += take;
      /* What followed DATA in the same read is the message, and what
       * followed its end is commands again. */
      for (;;) {
        commands(&s, o);
        if (!s.in_body || !s.nkeep)
          break;
        char tmp[sizeof s.keep];
        size_t left = s.nkeep;
        memcpy(tmp, s.keep, left);
        s.nkeep = 0;
        size_t b = body(&s, tmp, left, o);
        if (b == left)
          break;
        memcpy(s.keep, tmp + b, left - b);
        s.nkeep = left - b;
      }
      CHECK(s.in_body || s.nkeep <= max + 1);
    }
    p += k;
    n -= k;
  }
  if (s.in_body) { /* a message cut by the end of the input */
    char held[2];
    size_t k = detour__fake_body_flush(&s.body, held);
    CHECK(k <= 2 && detour__fake_body_flush(&s.body, held) == 0);
    mix(o, held, k);
  }
  mix(o, &s.in_body, sizeof s.in_body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2 || size > 1 << 20)
    return 0;
  size_t chunk = (size_t)data[0] + 1, max = (size_t)data[1] + 1;
  const char *p = (const char *)data + 2;
  size_t n = size - 2;
  outcome a, b;
  run(p, n, chunk, max, &a);
  run(p, n, n ? n : 1, max, &b);
  CHECK(a.hash == b.hash && a.lines == b.lines && a.too_long == b.too_long &&
        a.messages == b.messages && a.findings == b.findings);
  return 0;
}

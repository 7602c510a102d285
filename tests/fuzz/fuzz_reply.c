/*
 * fuzz_reply.c - libFuzzer target for the SMTP reply reader
 * (core/src/reply.c), the code that reads what a possibly hostile server
 * sends.
 *
 * The first input byte picks the chunk size the rest is fed in (1..256),
 * so the same bytes are also tried split at every boundary. Besides the
 * sanitizers' checks, every reply and every line the parser returns must
 * respect the bounds the header promises; a violation traps.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "detour/detour.h"

#define CHECK(x)                                                               \
  do {                                                                         \
    if (!(x))                                                                  \
      __builtin_trap();                                                        \
  } while (0)

static void check_reply(const detour_reply *r) {
  CHECK(r->code >= 100 && r->code <= 599);
  CHECK(r->nlines >= 1 && r->nlines <= DETOUR_REPLY_LINES_MAX);
  CHECK(memchr(r->text, '\0', sizeof r->text) != NULL);
  CHECK(memchr(r->enhanced, '\0', sizeof r->enhanced) != NULL);
  if (r->enhanced[0])
    CHECK(r->enhanced[0] - '0' == r->code / 100);
}

/* Every line of the input, through the one-line parser as well. */
static void parse_lines(const char *p, size_t len) {
  while (len > 0) {
    const char *nl = memchr(p, '\n', len);
    size_t n = nl ? (size_t)(nl - p) : len;
    detour_reply_line l;
    if (detour_parse_reply_line(p, n, &l) == 0) {
      CHECK(l.code >= 100 && l.code <= 599);
      CHECK(l.text >= p && l.text + l.text_len <= p + n);
    }
    if (!nl)
      break;
    len -= n + 1;
    p += n + 1;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  size_t chunk = (size_t)data[0] + 1;
  const char *p = (const char *)data + 1;
  size_t left = size - 1;
  parse_lines(p, left);
  detour_reply_reader r;
  detour_reply_reader_init(&r);
  while (left > 0) {
    size_t n = left < chunk ? left : chunk, used = 0;
    int rc = detour_reply_reader_feed(&r, p, n, &used);
    CHECK(used <= n);
    if (rc < 0) {
      CHECK(r.error == rc);
      CHECK(detour_reply_reader_feed(&r, p, n, &used) == rc && used == 0);
      break;
    }
    if (rc == 1)
      check_reply(&r.reply);
    else
      CHECK(used == n);
    CHECK(r.line_len <= DETOUR_REPLY_LINE_MAX);
    p += used;
    left -= used;
  }
  return 0;
}

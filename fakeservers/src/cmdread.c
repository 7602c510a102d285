/*
 * cmdread.c - command lines and message bodies as a client sends them
 * (cmdread.h says what is accepted). Byte by byte where it matters, with
 * no buffering of its own: what is not consumed stays with the caller.
 */
#include "cmdread.h"

#include <string.h>

void detour__fake_line_reader_init(detour__fake_line_reader *r, size_t max) {
  r->max = max;
  r->discarding = false;
}

void detour__fake_line_next(detour__fake_line_reader *r, const char *in,
                            size_t n, detour__fake_line *out) {
  memset(out, 0, sizeof *out);
  const char *lf = n ? memchr(in, '\n', n) : NULL;
  if (r->discarding) {
    /* The tail of an overlong line: drop it through its LF. */
    out->used = lf ? (size_t)(lf - in) + 1 : n;
    r->discarding = lf == NULL;
    return;
  }
  if (!lf) {
    /* max bytes and a CR may still end well; one more cannot. */
    if (n > r->max + 1) {
      out->kind = FAKE_LINE_TOO_LONG;
      out->len = r->max;
      out->used = n;
      r->discarding = true;
    }
    return;
  }
  size_t len = (size_t)(lf - in);
  out->used = len + 1;
  out->bare_lf = len == 0 || in[len - 1] != '\r';
  /* One CR only: with more, where the line is cut would depend on how the
   * bytes were split into reads. */
  if (!out->bare_lf)
    len--;
  if (len > r->max) {
    out->kind = FAKE_LINE_TOO_LONG;
    out->len = r->max;
    return;
  }
  out->kind = FAKE_LINE_OK;
  out->len = len;
  out->nul = len && memchr(in, '\0', len) != NULL;
}

/* ------------------------------------------------------------------------ */
/* The message                                                               */

enum {
  AT_BOL = 0, /* at the start of a line */
  AT_DOT,     /* "." at the start of a line, held */
  AT_DOT_CR,  /* ".\r" at the start of a line, held */
  IN_LINE,    /* inside a line */
  IN_LINE_CR  /* inside a line, after a CR */
};

void detour__fake_body_reader_init(detour__fake_body_reader *r) {
  memset(r, 0, sizeof *r);
  r->state = AT_BOL;
  r->prev_crlf = true; /* the DATA command's line end */
}

/* One byte inside a line (not a held dot). */
static size_t in_line(detour__fake_body_reader *r, char c, char *out) {
  out[0] = c;
  if (c == '\n') {
    r->prev_crlf = r->state == IN_LINE_CR;
    r->state = AT_BOL;
  } else {
    r->state = c == '\r' ? IN_LINE_CR : IN_LINE;
  }
  return 1;
}

void detour__fake_body_next(detour__fake_body_reader *r, const char *in,
                            size_t n, char *out, detour__fake_body_chunk *res) {
  size_t o = 0, i = 0;
  memset(res, 0, sizeof res[0]);
  while (i < n) {
    char c = in[i++];
    switch (r->state) {
    case AT_BOL:
      if (c == '.') {
        r->state = AT_DOT;
        break;
      }
      r->state = IN_LINE;
      o += in_line(r, c, out + o);
      break;
    case AT_DOT:
      if (c == '\r') {
        r->state = AT_DOT_CR;
      } else if (c == '\n') {
        /* "." LF: a smuggling pattern, kept as sent */
        out[o++] = '.';
        out[o++] = '\n';
        r->prev_crlf = false;
        r->state = AT_BOL;
        r->bare_lf_dots++;
        res->bare_lf_dot = true;
      } else {
        r->state = IN_LINE; /* a stuffed dot: dropped */
        o += in_line(r, c, out + o);
      }
      break;
    case AT_DOT_CR:
      if (c == '\n' && r->prev_crlf) {
        r->state = AT_BOL;
        res->end = true;
        res->used = i;
        res->out_len = o;
        return;
      }
      if (c == '\n') {
        /* LF "." CRLF: not an end either */
        memcpy(out + o, ".\r\n", 3);
        o += 3;
        r->prev_crlf = true;
        r->state = AT_BOL;
        r->bare_lf_dots++;
        res->bare_lf_dot = true;
        break;
      }
      out[o++] = '\r'; /* a stuffed dot before a CR inside the line */
      r->state = IN_LINE_CR;
      o += in_line(r, c, out + o);
      break;
    default:
      o += in_line(r, c, out + o);
    }
  }
  res->used = i;
  res->out_len = o;
}

size_t detour__fake_body_flush(detour__fake_body_reader *r, char *out) {
  size_t o = 0;
  if (r->state == AT_DOT || r->state == AT_DOT_CR)
    out[o++] = '.';
  if (r->state == AT_DOT_CR)
    out[o++] = '\r';
  r->state = o == 2 ? IN_LINE_CR : o ? IN_LINE : r->state;
  return o;
}

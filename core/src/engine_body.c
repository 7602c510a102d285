/*
 * engine_body.c - the message body on the wire, in blocks (RFC 5321 4.5.2,
 * 4.5.3.2; SPEC R11).
 *
 * The body is never held in its wire form: an incremental encoder turns
 * the body as given (LF or CRLF line ends) into CRLF lines with
 * dot-stuffing as it goes, one block of cfg.block_size bytes at a time.
 * The session sends a block, waits until the driver reports it written
 * (on_sent), then sends the next, so each block has the data-block
 * timeout and memory does not grow with the message: the engine holds the
 * body once (its copy, or none when the caller gives a body source) plus
 * one block. Every attempt encodes the body from the start again.
 *
 * Pure: the body source's read callback is the caller's; nothing here
 * opens, reads or allocates by itself (the buffers are the engine's).
 */
#include <string.h>

#include "engine_internal.h"

/* ------------------------------------------------------------------------ */
/* The encoder (public, pure)                                                */

void detour_dot_encoder_init(detour_dot_encoder *enc) {
  memset(enc, 0, sizeof *enc);
  enc->line_start = true;
}

size_t detour_dot_encode(detour_dot_encoder *enc, const char *in, size_t in_len,
                         char *out, size_t out_cap, size_t *out_len) {
  size_t i = 0, o = 0;
  for (; i < in_len; i++) {
    unsigned char ch = (unsigned char)in[i];
    if (ch == '\n' && enc->after_cr) {
      enc->after_cr = false; /* the LF of a CRLF already written */
      continue;
    }
    char piece[2];
    size_t n = 0;
    bool eol = ch == '\r' || ch == '\n';
    if (eol) {
      piece[n++] = '\r'; /* CRLF, bare LF and bare CR all become CRLF */
      piece[n++] = '\n';
    } else {
      if (enc->line_start && ch == '.')
        piece[n++] = '.'; /* transparency: a leading dot is doubled */
      piece[n++] = (char)ch;
    }
    if (out) {
      if (out_cap - o < n)
        break;
      memcpy(out + o, piece, n);
    }
    o += n;
    enc->wire_len += n;
    enc->after_cr = ch == '\r';
    enc->line_start = eol;
    if (ch >= 0x80)
      enc->eight_bit = true;
  }
  if (out_len)
    *out_len = o;
  return i;
}

size_t detour_dot_encode_end(detour_dot_encoder *enc, char *out) {
  size_t n = 0;
  char end[DETOUR_DOT_END_MAX];
  if (!enc->line_start) {
    end[n++] = '\r';
    end[n++] = '\n';
  }
  memcpy(end + n, ".\r\n", 3);
  n += 3;
  if (out)
    memcpy(out, end, n);
  enc->wire_len += n;
  enc->line_start = true;
  enc->after_cr = false;
  return n;
}

/* ------------------------------------------------------------------------ */
/* Reading the body                                                          */

/* Up to len bytes of m's body from off: from the engine's copy, or from
 * the caller's source. */
static int64_t body_read(const engine_message *m, uint64_t off, char *buf,
                         size_t len) {
  if (!m->has_source) {
    if (off >= m->body_len)
      return 0;
    size_t n =
        m->body_len - (size_t)off < len ? m->body_len - (size_t)off : len;
    memcpy(buf, m->body + off, n);
    return (int64_t)n;
  }
  int64_t n = m->source.read_at(m->source.arg, off, buf, len);
  if (n > (int64_t)len)
    return DETOUR_EIO; /* a source that claims more than it was asked */
  return n;
}

int detour__body_measure(detour_engine *e, engine_message *m) {
  detour_dot_encoder enc;
  detour_dot_encoder_init(&enc);
  uint64_t off = 0;
  for (;;) {
    int64_t n = body_read(m, off, e->raw, e->raw_cap);
    if (n < 0)
      return (int)n;
    if (n == 0)
      break;
    detour_dot_encode(&enc, e->raw, (size_t)n, NULL, 0, NULL);
    off += (uint64_t)n;
  }
  detour_dot_encode_end(&enc, NULL);
  m->raw_len = off;
  m->wire_len = enc.wire_len;
  m->eight_bit = enc.eight_bit;
  return 0;
}

void detour__body_cursor_init(engine_body_cursor *c) {
  memset(c, 0, sizeof *c);
  detour_dot_encoder_init(&c->enc);
}

/* Fill e->block with the next block: as much of the body as fits (a raw
 * byte is at most 2 wire bytes, so reading half the room always fits),
 * and the final ".\r\n" once the body is exhausted and it fits. The body
 * sent is the one measured at submission (SIZE= announced its length): a
 * source that now ends early is an error, one that grew is cut there. */
int64_t detour__body_next_block(detour_engine *e, const engine_message *m,
                                engine_body_cursor *c) {
  size_t cap = e->cfg.block_size, o = 0;
  while (!c->done) {
    size_t room = cap - o;
    size_t want = room / 2 < e->raw_cap ? room / 2 : e->raw_cap;
    if (want > m->raw_len - c->off)
      want = (size_t)(m->raw_len - c->off);
    int64_t n = want ? body_read(m, c->off, e->raw, want) : 0;
    if (n < 0)
      return n;
    if (n == 0 && c->off < m->raw_len)
      return want ? DETOUR_EIO : (int64_t)o; /* ended early / no room */
    if (n == 0) {
      if (room < DETOUR_DOT_END_MAX)
        break; /* the end goes in the next block */
      o += detour_dot_encode_end(&c->enc, e->block + o);
      c->done = true;
      break;
    }
    size_t wrote = 0;
    c->off += detour_dot_encode(&c->enc, e->raw, (size_t)n, e->block + o, room,
                                &wrote);
    o += wrote;
  }
  return (int64_t)o;
}

/*
 * cmdread.h - what a client under test sends a fake server, read without
 * sockets: command lines and the message after DATA. Pure (no I/O, no
 * allocation) and bounded (each call does O(n) work on the n bytes it is
 * given and keeps O(1) state), so session.c reads the wire through it and
 * tests/fuzz/fuzz_fake_commands.c fuzzes it alone.
 *
 * Command lines end at LF (a CR right before it is not part of the
 * line; a bare LF is accepted and flagged). A line longer than the
 * limit is reported once as TOO_LONG and the rest of it, up to the next
 * LF, is discarded, so its tail never runs as a command of its own.
 *
 * The message ends only at CRLF "." CRLF (RFC 5321 4.1.1.4), the very
 * start of the message counting as after a CRLF. A "." line with a bare
 * LF on either side (LF "." LF, CRLF "." LF, LF "." CRLF: the SMTP
 * smuggling patterns) does not end it: it is kept in the body as sent and
 * flagged, so the session can record it as a finding. Other lines that
 * start with "." lose that dot (dot-unstuffing).
 */
#ifndef DETOUR_FAKE_CMDREAD_H
#define DETOUR_FAKE_CMDREAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------------ */
/* Command lines                                                             */

typedef enum {
  FAKE_LINE_NONE = 0, /* no whole line yet; `used` may still be > 0 (the
                         discarded tail of an overlong line) */
  FAKE_LINE_OK,       /* a command line */
  FAKE_LINE_TOO_LONG  /* a line over the limit: its first `max` bytes
                         are in[0..len); the rest is being discarded */
} detour__fake_line_kind;

typedef struct {
  size_t max;      /* longest line accepted, without its line end */
  bool discarding; /* inside the tail of an overlong line */
} detour__fake_line_reader;

typedef struct {
  detour__fake_line_kind kind;
  size_t used;  /* bytes of the input consumed */
  size_t len;   /* OK, TOO_LONG: bytes of the line at in[0], no line end */
  bool bare_lf; /* OK: ended by LF without CR */
  bool nul;     /* OK: holds a NUL byte */
} detour__fake_line;

void detour__fake_line_reader_init(detour__fake_line_reader *r, size_t max);
/* Read at most one line from in[0..n). The caller drops `used` bytes and
 * calls again while `used` > 0. Never consumes a partial line of at most
 * `max` + 1 bytes, so a caller that keeps what is not consumed buffers at
 * most max + 1 bytes plus one read. */
void detour__fake_line_next(detour__fake_line_reader *r, const char *in,
                            size_t n, detour__fake_line *out);

/* ------------------------------------------------------------------------ */
/* The message after DATA                                                    */

typedef struct {
  int state;             /* where in a line we are (cmdread.c) */
  bool prev_crlf;        /* the previous line ended with CRLF */
  uint64_t bare_lf_dots; /* "." lines next to a bare LF, so far */
} detour__fake_body_reader;

typedef struct {
  size_t used;      /* input bytes consumed (with the final ".\r\n") */
  size_t out_len;   /* body bytes written to out */
  bool end;         /* the final CRLF "." CRLF was read */
  bool bare_lf_dot; /* a "." line next to a bare LF came in this call */
} detour__fake_body_chunk;

/* At the start of a message (right after the 354 reply). */
void detour__fake_body_reader_init(detour__fake_body_reader *r);
/* Read body bytes from in[0..n) into out (room for n + 2 bytes: a held
 * "." or ".\r" from the previous call may come out now), unstuffed, line
 * ends as sent. Stops right after the end of the message. */
void detour__fake_body_next(detour__fake_body_reader *r, const char *in,
                            size_t n, char *out, detour__fake_body_chunk *res);
/* The bytes held back (a "." or ".\r" at the start of a line, waiting to
 * see what follows), written to out (room for 2); for a message cut before
 * its end. Returns their count and forgets them. */
size_t detour__fake_body_flush(detour__fake_body_reader *r, char *out);

#endif /* DETOUR_FAKE_CMDREAD_H */

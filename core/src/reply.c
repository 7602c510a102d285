/*
 * reply.c - the SMTP reply parser (RFC 5321 section 4.2), pure and bounded.
 *
 * detour_parse_reply_line() turns one line into a code, a continuation flag,
 * an optional RFC 3463 enhanced status code and the text (the OpenSMTPD
 * parse_smtp_response() shape). detour_reply_reader gathers bytes into
 * lines and lines into complete replies; multi-line accumulation lives only
 * there. Memory is bounded: a line is at most DETOUR_REPLY_LINE_MAX octets
 * with its CRLF, a reply at most DETOUR_REPLY_LINES_MAX lines, the text at
 * most DETOUR_REPLY_TEXT_MAX - 1 characters (longer text is cut, not an
 * error: the code is what matters). Nothing a peer sends can abort.
 */
#include "detour/detour.h"

#include <string.h>

/* The limit counts the CRLF, so the line content may have 510 octets. A
 * bare LF line is held to the same content limit: the server meant CRLF. */
#define LINE_CONTENT_MAX (DETOUR_REPLY_LINE_MAX - 2)

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* Digits at s[0..max), at least one; returns how many, 0 when none. */
static size_t digit_run(const char *s, size_t len, size_t max) {
  size_t n = 0;
  while (n < len && n < max && is_digit(s[n]))
    n++;
  return n;
}

/* An RFC 3463 code "class.subject.detail" at the start of text, followed
 * by a space or the end: class is 2, 4 or 5 and must equal the reply
 * code's first digit (a "250 5.1.1" is not believed), subject and detail
 * have 1 to 3 digits. Returns its length, 0 when there is none. */
static size_t enhanced_len(const char *s, size_t len, int code) {
  if (len < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5'))
    return 0;
  if (s[0] - '0' != code / 100 || s[1] != '.')
    return 0;
  size_t i = 2;
  size_t n = digit_run(s + i, len - i, 3);
  if (n == 0 || i + n >= len || s[i + n] != '.')
    return 0;
  i += n + 1;
  n = digit_run(s + i, len - i, 3);
  if (n == 0)
    return 0;
  i += n;
  if (i < len && s[i] != ' ')
    return 0;
  return i;
}

int detour_parse_reply_line(const char *line, size_t len,
                            detour_reply_line *out) {
  if (!out || (!line && len > 0))
    return DETOUR_EINVAL;
  memset(out, 0, sizeof *out);
  if (len > LINE_CONTENT_MAX)
    return DETOUR_ELINE_TOO_LONG;
  if (len > 0 && memchr(line, '\0', len))
    return DETOUR_ENUL_BYTE;
  if (len < 3 || line[0] < '1' || line[0] > '5' || !is_digit(line[1]) ||
      !is_digit(line[2]))
    return DETOUR_EBAD_CODE;
  out->code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
  out->last = true;
  out->text = line + len;
  if (len == 3)
    return 0;
  if (line[3] != ' ' && line[3] != '-')
    return DETOUR_EPROTO;
  out->last = line[3] == ' ';
  const char *text = line + 4;
  size_t text_len = len - 4;
  size_t elen = enhanced_len(text, text_len, out->code);
  if (elen > 0) {
    memcpy(out->enhanced, text, elen);
    out->enhanced[elen] = '\0';
    text += elen;
    text_len -= elen;
    while (text_len > 0 && *text == ' ') {
      text++;
      text_len--;
    }
  }
  out->text = text;
  out->text_len = text_len;
  return 0;
}

void detour_reply_reader_init(detour_reply_reader *r) {
  if (r)
    memset(r, 0, sizeof *r);
}

static int fail(detour_reply_reader *r, int err) {
  r->error = err;
  return err;
}

/* Append one line's text; lines are joined with '\n' and the whole is cut
 * at DETOUR_REPLY_TEXT_MAX - 1 characters so that it stays a C string. */
static void append_text(detour_reply *reply, const detour_reply_line *l) {
  size_t have = strlen(reply->text);
  size_t room = sizeof reply->text - 1 - have;
  char *p = reply->text + have;
  if (reply->nlines > 1 && room > 0) {
    *p++ = '\n';
    room--;
  }
  size_t n = l->text_len < room ? l->text_len : room;
  memcpy(p, l->text, n);
  p[n] = '\0';
}

/* A whole line arrived (line end removed). Returns 1 when it completed a
 * reply, 0 when more lines are expected, or an error. */
static int take_line(detour_reply_reader *r, const char *line, size_t len) {
  detour_reply_line l;
  int rc = detour_parse_reply_line(line, len, &l);
  if (rc < 0)
    return rc;
  if (!r->in_reply) {
    memset(&r->reply, 0, sizeof r->reply);
    r->reply.code = l.code;
    memcpy(r->reply.enhanced, l.enhanced, sizeof l.enhanced);
    r->in_reply = true;
  } else if (l.code != r->reply.code) {
    return DETOUR_ECODE_MISMATCH;
  }
  if (r->reply.nlines >= DETOUR_REPLY_LINES_MAX)
    return DETOUR_ETOO_MANY_LINES;
  r->reply.nlines++;
  append_text(&r->reply, &l);
  if (!l.last)
    return 0;
  r->in_reply = false;
  return 1;
}

/* The line buffer holds the content plus a possible CR before the LF; one
 * more octet than that cannot become a valid line. */
_Static_assert(sizeof((detour_reply_reader *)0)->line > LINE_CONTENT_MAX + 1,
               "the line buffer must hold a maximal line and its CR");

int detour_reply_reader_feed(detour_reply_reader *r, const char *buf,
                             size_t len, size_t *used) {
  size_t dummy;
  if (!used)
    used = &dummy;
  *used = 0;
  if (!r || (!buf && len > 0))
    return DETOUR_EINVAL;
  if (r->error)
    return r->error;
  for (size_t i = 0; i < len; i++) {
    char c = buf[i];
    *used = i + 1;
    if (c == '\n') {
      size_t n = r->line_len;
      if (n > 0 && r->line[n - 1] == '\r')
        n--;
      r->line_len = 0;
      int rc = take_line(r, r->line, n);
      if (rc != 0)
        return rc < 0 ? fail(r, rc) : rc;
      continue;
    }
    if (c == '\0')
      return fail(r, DETOUR_ENUL_BYTE);
    if (r->line_len >= LINE_CONTENT_MAX + 1)
      return fail(r, DETOUR_ELINE_TOO_LONG);
    r->line[r->line_len++] = c;
  }
  return 0;
}

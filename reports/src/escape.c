/*
 * escape.c - escaping for the report formats. Fake servers send whatever a
 * scenario tells them (and a real server under test may send anything), so
 * every string is decoded as UTF-8 here and written back in a form the
 * target format can carry: JSON keeps the exact characters (as escapes),
 * XML and HTML show what they cannot carry as visible stand-ins.
 */
#include "rep_internal.h"

#include <string.h>

static bool cont(unsigned char c) { return (c & 0xc0) == 0x80; }

/* The sequence length announced by a lead byte and the range its second
 * byte must fall in (RFC 3629 section 4), or 0 for a byte that cannot
 * start a sequence. */
static size_t lead(unsigned char c, unsigned char *lo, unsigned char *hi) {
  *lo = 0x80;
  *hi = 0xbf;
  if (c >= 0xc2 && c <= 0xdf)
    return 2;
  if (c >= 0xe0 && c <= 0xef) {
    *lo = c == 0xe0 ? 0xa0 : 0x80;
    *hi = c == 0xed ? 0x9f : 0xbf; /* no surrogates */
    return 3;
  }
  if (c >= 0xf0 && c <= 0xf4) {
    *lo = c == 0xf0 ? 0x90 : 0x80;
    *hi = c == 0xf4 ? 0x8f : 0xbf; /* nothing above U+10FFFF */
    return 4;
  }
  return 0;
}

size_t detour__rep_utf8_next(const unsigned char *s, size_t n, uint32_t *cp) {
  if (s[0] < 0x80) {
    *cp = s[0];
    return 1;
  }
  unsigned char lo, hi;
  size_t len = lead(s[0], &lo, &hi);
  if (len == 0 || len > n || s[1] < lo || s[1] > hi)
    goto bad;
  for (size_t i = 2; i < len; i++)
    if (!cont(s[i]))
      goto bad;
  uint32_t v = s[0] & (0xff >> (len + 1));
  for (size_t i = 1; i < len; i++)
    v = (v << 6) | (s[i] & 0x3f);
  *cp = v;
  return len;
bad:
  *cp = 0xfffd;
  return 1;
}

void detour__rep_put_utf8(FILE *f, uint32_t cp) {
  if (cp < 0x80) {
    fputc((int)cp, f);
  } else if (cp < 0x800) {
    fputc((int)(0xc0 | (cp >> 6)), f);
    fputc((int)(0x80 | (cp & 0x3f)), f);
  } else if (cp < 0x10000) {
    fputc((int)(0xe0 | (cp >> 12)), f);
    fputc((int)(0x80 | ((cp >> 6) & 0x3f)), f);
    fputc((int)(0x80 | (cp & 0x3f)), f);
  } else {
    fputc((int)(0xf0 | (cp >> 18)), f);
    fputc((int)(0x80 | ((cp >> 12) & 0x3f)), f);
    fputc((int)(0x80 | ((cp >> 6) & 0x3f)), f);
    fputc((int)(0x80 | (cp & 0x3f)), f);
  }
}

/* ---- JSON --------------------------------------------------------------- */

static void json_cp(FILE *f, uint32_t cp) {
  switch (cp) {
  case '"':
    fputs("\\\"", f);
    return;
  case '\\':
    fputs("\\\\", f);
    return;
  case '\n':
    fputs("\\n", f);
    return;
  case '\r':
    fputs("\\r", f);
    return;
  case '\t':
    fputs("\\t", f);
    return;
  default:
    break;
  }
  /* U+2028/U+2029 are legal JSON but end a line in JavaScript source. */
  if (cp < 0x20 || cp == 0x7f || cp == 0x2028 || cp == 0x2029)
    fprintf(f, "\\u%04x", (unsigned)cp);
  else
    detour__rep_put_utf8(f, cp);
}

void detour__rep_json_strn(FILE *f, const char *s, size_t n) {
  if (!s) {
    fputs("null", f);
    return;
  }
  const unsigned char *p = (const unsigned char *)s;
  fputc('"', f);
  while (n > 0) {
    uint32_t cp;
    size_t used = detour__rep_utf8_next(p, n, &cp);
    json_cp(f, cp);
    p += used;
    n -= used;
  }
  fputc('"', f);
}

void detour__rep_json_str(FILE *f, const char *s) {
  detour__rep_json_strn(f, s, s ? strlen(s) : 0);
}

/* ---- XML / HTML --------------------------------------------------------- */

static void xml_cp(FILE *f, uint32_t cp, bool attr) {
  switch (cp) {
  case '&':
    fputs("&amp;", f);
    return;
  case '<':
    fputs("&lt;", f);
    return;
  case '>':
    fputs("&gt;", f);
    return;
  case '"':
    fputs("&quot;", f);
    return;
  case '\'':
    fputs("&#39;", f);
    return;
  case '\r': /* a parser turns a literal CR (LF) into LF */
    fputs("&#13;", f);
    return;
  case '\t':
  case '\n':
    if (attr)
      fprintf(f, "&#%u;", (unsigned)cp);
    else
      fputc((int)cp, f);
    return;
  default:
    break;
  }
  if (cp < 0x20)
    detour__rep_put_utf8(f, 0x2400 +
                                cp); /* the control picture, e.g. U+241B ESC */
  else if (cp == 0x7f)
    detour__rep_put_utf8(f, 0x2421);
  else if (cp == 0xfffe || cp == 0xffff)
    detour__rep_put_utf8(f, 0xfffd);
  else
    detour__rep_put_utf8(f, cp);
}

void detour__rep_xmln(FILE *f, const char *s, size_t n, bool attr) {
  if (!s)
    return;
  const unsigned char *p = (const unsigned char *)s;
  while (n > 0) {
    uint32_t cp;
    size_t used = detour__rep_utf8_next(p, n, &cp);
    xml_cp(f, cp, attr);
    p += used;
    n -= used;
  }
}

void detour__rep_xml(FILE *f, const char *s, bool attr) {
  detour__rep_xmln(f, s, s ? strlen(s) : 0, attr);
}

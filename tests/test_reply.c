/*
 * test_reply.c - the SMTP reply parser (core/src/reply.c): single lines,
 * multi-line replies, byte-by-byte feeding, every error, the 512-octet
 * boundary and text truncation.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "detour/detour.h"

static detour_reply_line parse_ok(const char *s) {
  detour_reply_line l;
  cr_assert_eq(detour_parse_reply_line(s, strlen(s), &l), 0, "line: %s", s);
  return l;
}

static int parse_err(const char *s, size_t len) {
  detour_reply_line l;
  return detour_parse_reply_line(s, len, &l);
}

/* Feed s in one call; expect a complete reply consuming all of it. */
static void feed_all(detour_reply_reader *r, const char *s) {
  size_t used = 99;
  cr_assert_eq(detour_reply_reader_feed(r, s, strlen(s), &used), 1);
  cr_assert_eq(used, strlen(s));
}

/* A string of n copies of c (caller frees). */
static char *repeat(char c, size_t n) {
  char *s = malloc(n + 1);
  memset(s, c, n);
  s[n] = '\0';
  return s;
}

Test(reply_line, last_line_with_text) {
  detour_reply_line l = parse_ok("250 OK");
  cr_assert_eq(l.code, 250);
  cr_assert(l.last);
  cr_assert_str_eq(l.enhanced, "");
  cr_assert_eq(l.text_len, 2);
  cr_assert_eq(memcmp(l.text, "OK", 2), 0);
}

Test(reply_line, continuation_line) {
  detour_reply_line l = parse_ok("250-PIPELINING");
  cr_assert_eq(l.code, 250);
  cr_assert_not(l.last);
  cr_assert_eq(l.text_len, 10);
  cr_assert_eq(memcmp(l.text, "PIPELINING", 10), 0);
}

Test(reply_line, bare_code_is_last_with_empty_text) {
  detour_reply_line l = parse_ok("250");
  cr_assert_eq(l.code, 250);
  cr_assert(l.last);
  cr_assert_eq(l.text_len, 0);
  l = parse_ok("354 ");
  cr_assert_eq(l.code, 354);
  cr_assert(l.last);
  cr_assert_eq(l.text_len, 0);
}

Test(reply_line, enhanced_code_is_split_off) {
  detour_reply_line l = parse_ok("550 5.1.1 User unknown");
  cr_assert_eq(l.code, 550);
  cr_assert_str_eq(l.enhanced, "5.1.1");
  cr_assert_eq(l.text_len, strlen("User unknown"));
  cr_assert_eq(memcmp(l.text, "User unknown", l.text_len), 0);
}

Test(reply_line, enhanced_code_three_digit_fields_and_alone) {
  detour_reply_line l = parse_ok("452 4.123.456   spaces");
  cr_assert_str_eq(l.enhanced, "4.123.456");
  cr_assert_eq(l.text_len, 6);
  cr_assert_eq(memcmp(l.text, "spaces", 6), 0);
  l = parse_ok("250 2.0.0");
  cr_assert_str_eq(l.enhanced, "2.0.0");
  cr_assert_eq(l.text_len, 0);
  l = parse_ok("250-2.1.0 Sender ok");
  cr_assert_str_eq(l.enhanced, "2.1.0");
  cr_assert_not(l.last);
}

Test(reply_line, enhanced_code_not_recognised) {
  /* class digit must match the reply code's first digit */
  cr_assert_str_eq(parse_ok("250 5.1.1 odd").enhanced, "");
  /* class 3 does not exist */
  cr_assert_str_eq(parse_ok("354 3.0.0 go").enhanced, "");
  /* a field of four digits */
  cr_assert_str_eq(parse_ok("550 5.1234.1 x").enhanced, "");
  cr_assert_str_eq(parse_ok("550 5.1.1234 x").enhanced, "");
  /* missing field, empty field, not followed by a space */
  cr_assert_str_eq(parse_ok("550 5.1 x").enhanced, "");
  cr_assert_str_eq(parse_ok("550 5..1 x").enhanced, "");
  cr_assert_str_eq(parse_ok("550 5.1.1x").enhanced, "");
  cr_assert_str_eq(parse_ok("550 5.1.").enhanced, "");
  detour_reply_line l = parse_ok("550 5.1.1x");
  cr_assert_eq(l.text_len, 6);
  cr_assert_eq(memcmp(l.text, "5.1.1x", 6), 0);
  /* 1xx replies have no enhanced class */
  cr_assert_str_eq(parse_ok("150 1.0.0 x").enhanced, "");
}

Test(reply_line, bad_codes) {
  cr_assert_eq(parse_err("", 0), DETOUR_EBAD_CODE);
  cr_assert_eq(parse_err("25", 2), DETOUR_EBAD_CODE);
  cr_assert_eq(parse_err("abc OK", 6), DETOUR_EBAD_CODE);
  cr_assert_eq(parse_err("2x0 OK", 6), DETOUR_EBAD_CODE);
  cr_assert_eq(parse_err("600 OK", 6), DETOUR_EBAD_CODE);
  cr_assert_eq(parse_err("099 OK", 6), DETOUR_EBAD_CODE);
  cr_assert_eq(parse_err(" 250 OK", 7), DETOUR_EBAD_CODE);
  cr_assert_eq(parse_ok("100 x").code, 100);
  cr_assert_eq(parse_ok("599 x").code, 599);
}

Test(reply_line, bad_separator_is_proto) {
  cr_assert_eq(parse_err("250OK", 5), DETOUR_EPROTO);
  cr_assert_eq(parse_err("2500 OK", 7), DETOUR_EPROTO);
  cr_assert_eq(parse_err("250\tOK", 6), DETOUR_EPROTO);
}

Test(reply_line, nul_byte) {
  cr_assert_eq(parse_err("250 O\0K", 7), DETOUR_ENUL_BYTE);
  cr_assert_eq(parse_err("2\00050 OK", 7), DETOUR_ENUL_BYTE);
}

Test(reply_line, length_limit_is_510_without_crlf) {
  char *s = repeat('a', 510);
  memcpy(s, "250 ", 4);
  detour_reply_line l;
  cr_assert_eq(detour_parse_reply_line(s, 510, &l), 0);
  cr_assert_eq(l.text_len, 506);
  free(s);
  s = repeat('a', 511);
  memcpy(s, "250 ", 4);
  cr_assert_eq(detour_parse_reply_line(s, 511, &l), DETOUR_ELINE_TOO_LONG);
  free(s);
}

Test(reply_line, bad_arguments) {
  detour_reply_line l;
  cr_assert_eq(detour_parse_reply_line(NULL, 3, &l), DETOUR_EINVAL);
  cr_assert_eq(detour_parse_reply_line("250", 3, NULL), DETOUR_EINVAL);
}

Test(reply_reader, single_line) {
  detour_reply_reader r;
  detour_reply_reader_init(&r);
  feed_all(&r, "220 mx.example.com ESMTP ready\r\n");
  cr_assert_eq(r.reply.code, 220);
  cr_assert_eq(r.reply.nlines, 1);
  cr_assert_str_eq(r.reply.text, "mx.example.com ESMTP ready");
  cr_assert_str_eq(r.reply.enhanced, "");
}

Test(reply_reader, multi_line_joined_with_newline) {
  detour_reply_reader r;
  detour_reply_reader_init(&r);
  feed_all(&r, "250-mx.example.com\r\n250-PIPELINING\r\n250-SIZE 1000\r\n"
               "250 ENHANCEDSTATUSCODES\r\n");
  cr_assert_eq(r.reply.code, 250);
  cr_assert_eq(r.reply.nlines, 4);
  cr_assert_str_eq(
      r.reply.text,
      "mx.example.com\nPIPELINING\nSIZE 1000\nENHANCEDSTATUSCODES");
}

Test(reply_reader, enhanced_code_of_first_line) {
  detour_reply_reader r;
  detour_reply_reader_init(&r);
  feed_all(&r, "550-5.1.1 No such user\r\n550 5.1.2 here\r\n");
  cr_assert_eq(r.reply.code, 550);
  cr_assert_str_eq(r.reply.enhanced, "5.1.1");
  cr_assert_str_eq(r.reply.text, "No such user\nhere");
}

Test(reply_reader, byte_by_byte) {
  const char *s = "250-first\r\n250-second\r\n250 third\r\n";
  size_t n = strlen(s);
  detour_reply_reader r;
  detour_reply_reader_init(&r);
  for (size_t i = 0; i < n; i++) {
    size_t used = 0;
    int rc = detour_reply_reader_feed(&r, s + i, 1, &used);
    cr_assert_eq(used, 1);
    cr_assert_eq(rc, i == n - 1 ? 1 : 0, "byte %zu", i);
  }
  cr_assert_eq(r.reply.code, 250);
  cr_assert_eq(r.reply.nlines, 3);
  cr_assert_str_eq(r.reply.text, "first\nsecond\nthird");
}

Test(reply_reader, two_replies_in_one_buffer) {
  const char *s = "250 2.1.0 sender ok\r\n550 5.1.1 no user\r\n354 go";
  detour_reply_reader r;
  detour_reply_reader_init(&r);
  size_t used = 0, off = 0;
  cr_assert_eq(detour_reply_reader_feed(&r, s, strlen(s), &used), 1);
  cr_assert_eq(used, strlen("250 2.1.0 sender ok\r\n"));
  cr_assert_eq(r.reply.code, 250);
  cr_assert_str_eq(r.reply.enhanced, "2.1.0");
  cr_assert_str_eq(r.reply.text, "sender ok");
  off += used;
  cr_assert_eq(detour_reply_reader_feed(&r, s + off, strlen(s) - off, &used),
               1);
  cr_assert_eq(r.reply.code, 550);
  cr_assert_eq(r.reply.nlines, 1);
  cr_assert_str_eq(r.reply.enhanced, "5.1.1");
  cr_assert_str_eq(r.reply.text, "no user");
  off += used;
  /* an incomplete line: everything consumed, nothing complete */
  cr_assert_eq(detour_reply_reader_feed(&r, s + off, strlen(s) - off, &used),
               0);
  cr_assert_eq(used, 6);
  cr_assert_eq(detour_reply_reader_feed(&r, "\r\n", 2, &used), 1);
  cr_assert_eq(r.reply.code, 354);
  cr_assert_str_eq(r.reply.text, "go");
}

Test(reply_reader, bare_lf_accepted) {
  detour_reply_reader r;
  detour_reply_reader_init(&r);
  feed_all(&r, "250-a\n250 b\n");
  cr_assert_eq(r.reply.nlines, 2);
  cr_assert_str_eq(r.reply.text, "a\nb");
}

Test(reply_reader, cr_split_from_lf) {
  detour_reply_reader r;
  detour_reply_reader_init(&r);
  size_t used;
  cr_assert_eq(detour_reply_reader_feed(&r, "221 bye\r", 8, &used), 0);
  cr_assert_eq(detour_reply_reader_feed(&r, "\n", 1, &used), 1);
  cr_assert_str_eq(r.reply.text, "bye");
}

Test(reply_reader, empty_feed) {
  detour_reply_reader r;
  detour_reply_reader_init(&r);
  size_t used = 7;
  cr_assert_eq(detour_reply_reader_feed(&r, NULL, 0, &used), 0);
  cr_assert_eq(used, 0);
  cr_assert_eq(detour_reply_reader_feed(&r, "", 0, NULL), 0);
}

Test(reply_reader, line_of_512_octets_ok_513_too_long) {
  /* 510 octets of content + CRLF = 512 */
  char *s = repeat('a', 512);
  memcpy(s, "250 ", 4);
  s[510] = '\r';
  s[511] = '\n';
  detour_reply_reader r;
  detour_reply_reader_init(&r);
  size_t used;
  cr_assert_eq(detour_reply_reader_feed(&r, s, 512, &used), 1);
  cr_assert_eq(used, 512);
  cr_assert_eq(strlen(r.reply.text), 506);
  free(s);

  s = repeat('a', 513);
  memcpy(s, "250 ", 4);
  s[511] = '\r';
  s[512] = '\n';
  detour_reply_reader_init(&r);
  cr_assert_eq(detour_reply_reader_feed(&r, s, 513, &used),
               DETOUR_ELINE_TOO_LONG);
  free(s);
}

Test(reply_reader, too_long_bare_lf_line) {
  char *s = repeat('a', 512);
  memcpy(s, "250 ", 4);
  s[511] = '\n';
  detour_reply_reader r;
  detour_reply_reader_init(&r);
  cr_assert_eq(detour_reply_reader_feed(&r, s, 512, NULL),
               DETOUR_ELINE_TOO_LONG);
  free(s);
}

Test(reply_reader, endless_line_fails_without_line_end) {
  /* no line end ever: the reader must fail, not buffer forever */
  char *s = repeat('a', 4000);
  memcpy(s, "250 ", 4);
  detour_reply_reader r;
  detour_reply_reader_init(&r);
  size_t used;
  cr_assert_eq(detour_reply_reader_feed(&r, s, 4000, &used),
               DETOUR_ELINE_TOO_LONG);
  cr_assert_eq(used, 512);
  free(s);
}

Test(reply_reader, code_mismatch) {
  detour_reply_reader r;
  detour_reply_reader_init(&r);
  size_t used;
  cr_assert_eq(detour_reply_reader_feed(&r, "250-a\r\n251 b\r\n", 14, &used),
               DETOUR_ECODE_MISMATCH);
  cr_assert_eq(r.error, DETOUR_ECODE_MISMATCH);
}

Test(reply_reader, bad_code_and_proto_and_nul) {
  detour_reply_reader r;
  detour_reply_reader_init(&r);
  cr_assert_eq(detour_reply_reader_feed(&r, "hello\r\n", 7, NULL),
               DETOUR_EBAD_CODE);
  detour_reply_reader_init(&r);
  cr_assert_eq(detour_reply_reader_feed(&r, "\r\n", 2, NULL), DETOUR_EBAD_CODE);
  detour_reply_reader_init(&r);
  cr_assert_eq(detour_reply_reader_feed(&r, "250_x\r\n", 7, NULL),
               DETOUR_EPROTO);
  detour_reply_reader_init(&r);
  size_t used;
  cr_assert_eq(detour_reply_reader_feed(&r, "25\0000 x\r\n", 8, &used),
               DETOUR_ENUL_BYTE);
  cr_assert_eq(used, 3);
}

Test(reply_reader, errors_are_sticky) {
  detour_reply_reader r;
  detour_reply_reader_init(&r);
  cr_assert_eq(detour_reply_reader_feed(&r, "xyz\r\n", 5, NULL),
               DETOUR_EBAD_CODE);
  size_t used = 5;
  cr_assert_eq(detour_reply_reader_feed(&r, "250 ok\r\n", 8, &used),
               DETOUR_EBAD_CODE);
  cr_assert_eq(used, 0);
  detour_reply_reader_init(&r);
  feed_all(&r, "250 ok\r\n");
}

static char *many_lines(size_t n) {
  char *s = malloc(n * 8 + 1), *p = s;
  for (size_t i = 0; i < n; i++) {
    memcpy(p, i == n - 1 ? "250 xx\r\n" : "250-xx\r\n", 8);
    p += 8;
  }
  *p = '\0';
  return s;
}

Test(reply_reader, hundred_lines_ok_hundred_and_one_fail) {
  detour_reply_reader r;
  detour_reply_reader_init(&r);
  char *s = many_lines(100);
  feed_all(&r, s);
  cr_assert_eq(r.reply.nlines, 100);
  cr_assert_eq(strlen(r.reply.text), 100 * 3 - 1);
  free(s);
  s = many_lines(101);
  detour_reply_reader_init(&r);
  size_t used;
  cr_assert_eq(detour_reply_reader_feed(&r, s, strlen(s), &used),
               DETOUR_ETOO_MANY_LINES);
  cr_assert_eq(used, 101 * 8);
  free(s);
}

Test(reply_reader, text_truncated_without_error) {
  /* 10 lines of 500 text octets: 5009 characters, kept 4095 */
  detour_reply_reader r;
  detour_reply_reader_init(&r);
  char line[512];
  for (int i = 0; i < 10; i++) {
    memset(line, 'a' + i, sizeof line);
    memcpy(line, i == 9 ? "250 " : "250-", 4);
    line[504] = '\r';
    line[505] = '\n';
    size_t used;
    int rc = detour_reply_reader_feed(&r, line, 506, &used);
    cr_assert_eq(rc, i == 9 ? 1 : 0);
    cr_assert_eq(used, 506);
  }
  cr_assert_eq(r.reply.nlines, 10);
  cr_assert_eq(strlen(r.reply.text), DETOUR_REPLY_TEXT_MAX - 1);
  cr_assert_eq(r.reply.text[500], '\n');
  cr_assert_eq(r.reply.text[501], 'b');
  /* 8 lines of 500 plus 8 newlines = 4008; then 87 of line 9 */
  cr_assert_eq(r.reply.text[4008], 'i');
  cr_assert_eq(r.reply.text[DETOUR_REPLY_TEXT_MAX - 2], 'i');
  /* the next reply starts clean */
  feed_all(&r, "250 ok\r\n");
  cr_assert_str_eq(r.reply.text, "ok");
  cr_assert_eq(r.reply.nlines, 1);
}

Test(reply_reader, bad_arguments) {
  detour_reply_reader r;
  detour_reply_reader_init(&r);
  cr_assert_eq(detour_reply_reader_feed(NULL, "x", 1, NULL), DETOUR_EINVAL);
  cr_assert_eq(detour_reply_reader_feed(&r, NULL, 1, NULL), DETOUR_EINVAL);
  detour_reply_reader_init(NULL);
}

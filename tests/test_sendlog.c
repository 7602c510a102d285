/*
 * test_sendlog.c - the send log writers (core/src/sendlog.c): time format,
 * the Fig. 6 table row and its header, JSON records and their escaping,
 * and truncation.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "detour/detour.h"

#define T0 1025518530000LL /* 2002-07-01 10:15:30 UTC, Fig. 6's first row */

static detour_log_row fig6_row(void) {
  return (detour_log_row){.time = T0,
                          .kind = DETOUR_LOG_CONNECT,
                          .message = 0,
                          .recipient = "abc@muratec.co.jp",
                          .server = "200.0.100.1:25",
                          .address = "200.0.100.1:25",
                          .priority = 1,
                          .attempt = 1,
                          .result = "TCP error",
                          .cls = DETOUR_CLASS_CONNECT,
                          .detail = "connect_refused"};
}

Test(time, iso_utc_with_ms) {
  char buf[64];
  cr_assert_eq(detour_format_time(T0, buf, sizeof buf), 24);
  cr_assert_str_eq(buf, "2002-07-01T10:15:30.000Z");
  cr_assert_eq(detour_format_time(T0 + 20123, buf, sizeof buf), 24);
  cr_assert_str_eq(buf, "2002-07-01T10:15:50.123Z");
  cr_assert_eq(detour_format_time(0, buf, sizeof buf), 24);
  cr_assert_str_eq(buf, "1970-01-01T00:00:00.000Z");
  cr_assert_eq(detour_format_time(-1, buf, sizeof buf), 24);
  cr_assert_str_eq(buf, "1969-12-31T23:59:59.999Z");
}

Test(time, buffer_sizes) {
  char buf[25];
  cr_assert_eq(detour_format_time(T0, buf, 25), 24);
  cr_assert_eq(detour_format_time(T0, buf, 24), DETOUR_ERANGE);
  cr_assert_eq(detour_format_time(T0, buf, 0), DETOUR_ERANGE);
  cr_assert_eq(detour_format_time(T0, NULL, 10), DETOUR_ERANGE);
  cr_assert_eq(detour_format_time(INT64_MAX, buf, 25), DETOUR_ERANGE);
  cr_assert_str_eq(buf, "");
}

Test(table, fig6_rows) {
  char buf[256];
  detour_log_row r = fig6_row();
  int n = detour_log_format_table(&r, buf, sizeof buf);
  const char *want1 = "2002-07-01 10:15:30.000  abc@muratec.co.jp             "
                      "  200.0.100.1:25                      TCP error       "
                      "                    CONNECT    1";
  cr_assert_str_eq(buf, want1);
  cr_assert_eq(n, (int)strlen(want1));

  r.time = T0 + 20000;
  r.kind = DETOUR_LOG_SMTP;
  r.server = "backup.example.net:25";
  r.address = "200.0.230.1:25";
  r.priority = 2;
  r.result = "SMTP OK";
  r.cls = DETOUR_CLASS_NONE;
  n = detour_log_format_table(&r, buf, sizeof buf);
  const char *want2 = "2002-07-01 10:15:50.000  abc@muratec.co.jp             "
                      "  backup.example.net:25 (200.0.230.1:25)  SMTP OK     "
                      "                        -          1";
  cr_assert_str_eq(buf, want2);
  cr_assert_eq(n, (int)strlen(want2));
}

Test(table, header_lines_up_with_rows) {
  const char *h = detour_log_table_header();
  cr_assert_str_eq(h, "date-time (UTC)          recipient                 "
                      "      server                              result     "
                      "                         class      attempt");
  char buf[256];
  detour_log_row r = fig6_row();
  r.recipient = "r";
  r.server = "s";
  r.address = "";
  r.result = "x";
  detour_log_format_table(&r, buf, sizeof buf);
  /* every header column starts where the row's column starts */
  const char *cols[] = {"recipient", "server", "result", "class", "attempt"};
  const char *vals[] = {"r ", "s ", "x ", "CONNECT", "1"};
  for (int i = 0; i < 5; i++) {
    size_t at = (size_t)(strstr(h, cols[i]) - h);
    cr_assert_eq(strncmp(buf + at, vals[i], strlen(vals[i])), 0,
                 "column %s at %zu: '%s'", cols[i], at, buf + at);
    cr_assert_eq(buf[at - 1], ' ');
  }
  cr_assert_eq(strlen(buf), strlen(h) - strlen("attempt") + 1);
}

Test(table, missing_fields_and_control_characters) {
  char buf[256];
  detour_log_row r = {.time = T0,
                      .kind = DETOUR_LOG_WARNING,
                      .result = "SMTP 550\nsecond\tline",
                      .attempt = 0};
  int n = detour_log_format_table(&r, buf, sizeof buf);
  cr_assert_gt(n, 0);
  cr_assert_str_eq(buf, "2002-07-01 10:15:30.000  -                         "
                        "      -                                   SMTP 550 "
                        "second line                -          -");
  cr_assert_null(strchr(buf, '\n'));
}

Test(table, long_fields_push_columns_right) {
  char buf[512];
  detour_log_row r = fig6_row();
  r.recipient = "a-very-long-recipient-address@a-long-domain.example.com";
  int n = detour_log_format_table(&r, buf, sizeof buf);
  cr_assert_gt(n, 0);
  cr_assert(strstr(buf, "example.com  200.0.100.1:25 "));
}

Test(table, truncation) {
  char buf[30];
  detour_log_row r = fig6_row();
  cr_assert_eq(detour_log_format_table(&r, buf, sizeof buf), DETOUR_ERANGE);
  cr_assert_eq(strlen(buf), 29);
  cr_assert_str_eq(buf, "2002-07-01 10:15:30.000  abc@");
  cr_assert_eq(detour_log_format_table(&r, buf, 0), DETOUR_ERANGE);
  cr_assert_eq(detour_log_format_table(NULL, buf, sizeof buf), DETOUR_EINVAL);
  cr_assert_eq(detour_log_format_table(&r, NULL, 5), DETOUR_ERANGE);
}

Test(json, full_record) {
  char buf[1024];
  detour_log_row r = fig6_row();
  r.address = "200.0.100.2:25";
  int n = detour_log_format_json(&r, buf, sizeof buf);
  const char *want =
      "{\"time\":\"2002-07-01T10:15:30.000Z\",\"t_ms\":1025518530000,"
      "\"kind\":\"connect\",\"message\":0,\"recipient\":\"abc@muratec.co.jp\","
      "\"server\":\"200.0.100.1:25\",\"address\":\"200.0.100.2:25\","
      "\"priority\":1,\"attempt\":1,\"result\":\"TCP error\","
      "\"class\":\"CONNECT\",\"detail\":\"connect_refused\"}";
  cr_assert_str_eq(buf, want);
  cr_assert_eq(n, (int)strlen(want));
}

Test(json, null_strings_and_success) {
  char buf[1024];
  detour_log_row r = {.time = 1500,
                      .kind = DETOUR_LOG_SMTP,
                      .message = 7,
                      .priority = 3,
                      .attempt = 12,
                      .result = "SMTP OK",
                      .cls = DETOUR_CLASS_NONE};
  detour_log_format_json(&r, buf, sizeof buf);
  cr_assert_str_eq(
      buf, "{\"time\":\"1970-01-01T00:00:01.500Z\",\"t_ms\":1500,"
           "\"kind\":\"smtp\",\"message\":7,\"recipient\":\"\",\"server\":"
           "\"\",\"address\":\"\",\"priority\":3,\"attempt\":12,\"result\":"
           "\"SMTP OK\",\"class\":\"NONE\",\"detail\":\"\"}");
}

/* The JSON-escaped form of one detail string. */
static const char *escaped_detail(const char *detail, char *buf, size_t len) {
  detour_log_row r = {.time = 0, .detail = detail};
  cr_assert_gt(detour_log_format_json(&r, buf, len), 0);
  const char *p = strstr(buf, "\"detail\":");
  cr_assert_not_null(p);
  p += strlen("\"detail\":");
  buf[strlen(buf) - 1] = '\0'; /* drop the closing brace */
  return p;
}

Test(json, escaping) {
  char buf[1024];
  cr_assert_str_eq(escaped_detail("say \"hi\" \\ now", buf, sizeof buf),
                   "\"say \\\"hi\\\" \\\\ now\"");
  cr_assert_str_eq(escaped_detail("a\nb\rc\td\be\ff", buf, sizeof buf),
                   "\"a\\nb\\rc\\td\\be\\ff\"");
  cr_assert_str_eq(escaped_detail("\x01\x1f\x7f/", buf, sizeof buf),
                   "\"\\u0001\\u001f\x7f/\"");
  /* valid UTF-8 passes through: e-acute, euro sign, U+1F600 */
  cr_assert_str_eq(
      escaped_detail("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", buf, sizeof buf),
      "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"");
  /* invalid bytes become U+FFFD: lone continuation, overlong, surrogate,
   * truncated sequence, beyond U+10FFFF */
  cr_assert_str_eq(escaped_detail("\x80", buf, sizeof buf), "\"\\ufffd\"");
  cr_assert_str_eq(escaped_detail("\xc0\xaf", buf, sizeof buf),
                   "\"\\ufffd\\ufffd\"");
  cr_assert_str_eq(escaped_detail("\xed\xa0\x80", buf, sizeof buf),
                   "\"\\ufffd\\ufffd\\ufffd\"");
  cr_assert_str_eq(escaped_detail("\xe2\x82", buf, sizeof buf),
                   "\"\\ufffd\\ufffd\"");
  cr_assert_str_eq(escaped_detail("\xf4\x90\x80\x80x", buf, sizeof buf),
                   "\"\\ufffd\\ufffd\\ufffd\\ufffdx\"");
}

Test(json, every_control_character_escaped) {
  char in[32], buf[1024];
  for (int c = 1; c < 32; c++)
    in[c - 1] = (char)c;
  in[31] = '\0';
  const char *s = escaped_detail(in, buf, sizeof buf);
  for (const char *p = s; *p; p++)
    cr_assert_geq((unsigned char)*p, 0x20);
  cr_assert_str_eq(s, "\"\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007"
                      "\\b\\t\\n\\u000b\\f\\r\\u000e\\u000f\\u0010\\u0011"
                      "\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018"
                      "\\u0019\\u001a\\u001b\\u001c\\u001d\\u001e\\u001f\"");
}

Test(json, does_not_fit) {
  char full[1024], buf[1024];
  detour_log_row r = fig6_row();
  int n = detour_log_format_json(&r, full, sizeof full);
  cr_assert_gt(n, 0);
  cr_assert_eq(detour_log_format_json(&r, buf, (size_t)n + 1), n);
  cr_assert_eq(detour_log_format_json(&r, buf, (size_t)n), DETOUR_ERANGE);
  cr_assert_eq(strlen(buf), (size_t)n - 1);
  cr_assert_eq(strncmp(buf, full, (size_t)n - 1), 0);
  cr_assert_eq(detour_log_format_json(&r, buf, 1), DETOUR_ERANGE);
  cr_assert_str_eq(buf, "");
  cr_assert_eq(detour_log_format_json(&r, buf, 0), DETOUR_ERANGE);
  cr_assert_eq(detour_log_format_json(NULL, buf, 10), DETOUR_EINVAL);
}

/*
 * test_fake_faults.c - the wire effect of every entry of the fault
 * catalogue, seen by a plain socket client, and what the server recorded.
 * The engine's view of the same faults is tests/test_fake_engine.c.
 */
#include "test_fake_util.h"

/* Walk a fresh session up to (not including) the command of `stage`. */
static void walk_to(int fd, detour_fake_stage stage) {
  if (stage <= DETOUR_FAKE_GREETING)
    return;
  FT_EXPECT(fd, NULL, "220");
  if (stage <= DETOUR_FAKE_EHLO)
    return;
  FT_EXPECT(fd, "EHLO client.test", "250");
  if (stage <= DETOUR_FAKE_MAIL)
    return;
  FT_EXPECT(fd, "MAIL FROM:<a@x.test>", "250");
  if (stage <= DETOUR_FAKE_RCPT)
    return;
  FT_EXPECT(fd, "RCPT TO:<b@x.test>", "250");
  if (stage <= DETOUR_FAKE_DATA)
    return;
  FT_EXPECT(fd, "DATA", "354");
}

static const detour_fake_conn *conn0(const ft_env *e, detour_fake_conn *c) {
  cr_assert_eq(detour_fake_server_conn(e->srv[0], 0, c), 0);
  return c;
}

/* A client that connects and must get nothing within ms. */
static void expect_silence(int fd, int ms) {
  char buf[256];
  ssize_t n = ft_read_some(fd, buf, sizeof buf, ms);
  cr_assert_eq(n, -ETIMEDOUT, "expected silence, got %zd", n);
}

Test(fault, refuse_gives_econnrefused) {
  ft_env e;
  ft_start(&e, "faults: [refuse]\n");
  cr_assert_neq(detour_fake_server_port(e.srv[0]), 0, "port still bound");
  int fd = ft_connect(e.srv[0]);
  cr_assert_eq(fd, -ECONNREFUSED);
  detour_fake_stats st;
  detour_fake_server_stats(e.srv[0], &st);
  cr_assert_eq(st.refused, -1, "not observable");
  ft_finish(&e);
}

Test(fault, blackhole_times_out) {
  ft_env e;
  ft_start(&e, "listen: 127.0.0.5:0\nfaults: [blackhole]\n");
  for (int i = 0; i < 2; i++) {
    double t0 = ft_now();
    int fd = ft_connect_to("127.0.0.5", detour_fake_server_port(e.srv[0]), 700);
    cr_assert_eq(fd, -ETIMEDOUT, "SYN unanswered, got %d", fd);
    cr_assert_geq(ft_now() - t0, 0.6);
  }
  ft_finish(&e);
}

Test(fault, silent_accepts_never_greets) {
  ft_env e;
  ft_start(&e, "faults: [silent]\n");
  int fd = ft_connect(e.srv[0]);
  cr_assert_geq(fd, 0);
  expect_silence(fd, 400);
  ft_send(fd, "EHLO x\r\n");
  expect_silence(fd, 200);
  close(fd);
  ft_join(&e);
  detour_fake_conn c;
  cr_assert_eq(conn0(&e, &c)->closed_by, DETOUR_FAKE_BY_CLIENT);
  cr_assert_eq(ft_count(e.srv[0], DETOUR_FAKE_EV_REPLY, -1), 0);
  ft_finish(&e);
}

Test(fault, stall_after_stage) {
  ft_env e;
  ft_start(&e, "faults: [{ name: stall_after, stage: rcpt }]\n");
  int fd = ft_connect(e.srv[0]);
  walk_to(fd, DETOUR_FAKE_RCPT);
  ft_send(fd, "RCPT TO:<b@x.test>\r\n");
  expect_silence(fd, 400);
  ft_send(fd, "NOOP\r\n");
  expect_silence(fd, 200);
  close(fd);
  ft_join(&e);
  cr_assert_eq(ft_count(e.srv[0], DETOUR_FAKE_EV_ACTION, DETOUR_FAKE_RCPT), 1);
  ft_finish(&e);
}

Test(fault, close_at_connect_and_at_rcpt) {
  ft_env e;
  ft_start(&e, "connections:\n"
               "  - { only: 1, fault: close }\n"
               "  - { from: 2, fault: { name: close, stage: rcpt } }\n");
  int fd = ft_connect(e.srv[0]);
  cr_assert_eq(ft_wait_close(fd, 2000), 0, "FIN, no greeting");
  close(fd);
  fd = ft_connect(e.srv[0]);
  walk_to(fd, DETOUR_FAKE_RCPT);
  ft_send(fd, "RCPT TO:<b@x.test>\r\n");
  cr_assert_eq(ft_wait_close(fd, 2000), 0, "FIN instead of the RCPT reply");
  close(fd);
  ft_join(&e);
  detour_fake_conn c;
  cr_assert_eq(conn0(&e, &c)->closed_by, DETOUR_FAKE_BY_SERVER);
  detour_fake_server_conn(e.srv[0], 1, &c);
  cr_assert_eq(c.closed_by, DETOUR_FAKE_BY_SERVER);
  ft_finish(&e);
}

Test(fault, reset_at_connect_and_at_greeting) {
  ft_env e;
  ft_start(&e, "connections:\n"
               "  - { only: 1, fault: reset }\n"
               "  - { from: 2, fault: { name: reset, stage: mail } }\n");
  /* The RST can beat our connect() to its end: then connect reports it. */
  int fd = ft_connect(e.srv[0]);
  if (fd >= 0) {
    cr_assert_eq(ft_wait_close(fd, 2000), -ECONNRESET);
    close(fd);
  } else {
    cr_assert_eq(fd, -ECONNRESET, "connect: %s", strerror(-fd));
  }
  fd = ft_connect(e.srv[0]);
  cr_assert_geq(fd, 0);
  walk_to(fd, DETOUR_FAKE_MAIL);
  ft_send(fd, "MAIL FROM:<a@x.test>\r\n");
  cr_assert_eq(ft_wait_close(fd, 2000), -ECONNRESET);
  close(fd);
  ft_join(&e);
  detour_fake_conn c;
  cr_assert_eq(conn0(&e, &c)->closed_by, DETOUR_FAKE_BY_SERVER_RESET);
  ft_finish(&e);
}

Test(fault, drop_mid_data_after_n_bytes) {
  ft_env e;
  ft_start(&e, "faults: [{ name: reset, stage: body, after_bytes: 100 }]\n");
  int fd = ft_connect(e.srv[0]);
  walk_to(fd, DETOUR_FAKE_BODY);
  char body[300];
  for (int i = 0; i < 10; i++)
    memcpy(body + i * 30, "0123456789012345678901234567\r\n", 30);
  body[299] = '\0';
  ft_send(fd, body);
  cr_assert_eq(ft_wait_close(fd, 2000), -ECONNRESET);
  close(fd);
  ft_join(&e);
  detour_fake_message m;
  cr_assert_eq(detour_fake_server_message(e.srv[0], 0, &m), 0);
  cr_assert_not(m.complete);
  cr_assert_eq(m.body_len, 100, "cut after exactly 100 bytes");
  cr_assert_eq(memcmp(m.body, body, 100), 0);
  ft_finish(&e);
}

Test(fault, drop_mid_data_default) {
  ft_env e;
  ft_start(&e, "faults: [drop_mid_data]\n");
  int fd = ft_connect(e.srv[0]);
  walk_to(fd, DETOUR_FAKE_BODY);
  ft_send(fd, "short line\r\n");
  expect_silence(fd, 200); /* 12 bytes < 64: still reading */
  char big[128];
  memset(big, 'y', sizeof big - 1);
  big[127] = '\0';
  ft_send(fd, big);
  cr_assert_eq(ft_wait_close(fd, 2000), -ECONNRESET);
  close(fd);
  ft_finish(&e);
}

Test(fault, greeting_421_then_close) {
  ft_env e;
  ft_start(&e, "faults: [greeting_421]\n");
  int fd = ft_connect(e.srv[0]);
  FT_EXPECT(fd, NULL, "421 4.3.2 ");
  cr_assert_eq(ft_wait_close(fd, 2000), 0);
  close(fd);
  ft_finish(&e);
}

Test(fault, greeting_554_waits_for_quit) {
  ft_env e;
  ft_start(&e, "faults: [greeting_554]\n");
  int fd = ft_connect(e.srv[0]);
  FT_EXPECT(fd, NULL, "554 5.3.2 ");
  FT_EXPECT(fd, "EHLO x", "503 5.5.1");
  FT_EXPECT(fd, "MAIL FROM:<a@b>", "503 5.5.1");
  FT_EXPECT(fd, "QUIT", "221");
  cr_assert_eq(ft_wait_close(fd, 2000), 0);
  close(fd);
  ft_finish(&e);
}

Test(fault, disk_full_at_rcpt_and_eod) {
  ft_env e;
  ft_start(&e, "connections:\n"
               "  - { only: 1, fault: disk_full }\n"
               "  - { from: 2, fault: { name: disk_full, stage: eod } }\n");
  int fd = ft_connect(e.srv[0]);
  walk_to(fd, DETOUR_FAKE_RCPT);
  FT_EXPECT(fd, "RCPT TO:<b@x.test>", "452 4.3.1 ");
  close(fd);
  fd = ft_connect(e.srv[0]);
  walk_to(fd, DETOUR_FAKE_BODY);
  ft_send(fd, "x\r\n.\r\n");
  FT_EXPECT(fd, NULL, "552 5.3.1 ");
  close(fd);
  ft_join(&e);
  detour_fake_message m;
  cr_assert_eq(detour_fake_server_message(e.srv[0], 0, &m), 0);
  cr_assert_eq(m.code, 552);
  ft_finish(&e);
}

Test(fault, unsupported_mail_parameters) {
  ft_env e;
  ft_start(&e, "connections:\n"
               "  - { only: 1, fault: unsupported }\n"
               "  - { from: 2, fault: { name: unsupported, code: 504 } }\n");
  int fd = ft_connect(e.srv[0]);
  walk_to(fd, DETOUR_FAKE_MAIL);
  FT_EXPECT(fd, "MAIL FROM:<a@x.test> BODY=8BITMIME", "555 5.5.4 ");
  FT_EXPECT(fd, "MAIL FROM:<a@x.test>", "250 ");
  close(fd);
  fd = ft_connect(e.srv[0]);
  walk_to(fd, DETOUR_FAKE_MAIL);
  FT_EXPECT(fd, "MAIL FROM:<a@x.test> SIZE=10", "504 5.5.4 ");
  close(fd);
  ft_finish(&e);
}

Test(fault, busy_450_451) {
  ft_env e;
  ft_start(&e, "connections:\n"
               "  - { only: 1, fault: busy }\n"
               "  - { from: 2, fault: { name: busy, stage: mail } }\n");
  int fd = ft_connect(e.srv[0]);
  walk_to(fd, DETOUR_FAKE_RCPT);
  FT_EXPECT(fd, "RCPT TO:<b@x.test>", "450 4.2.1 ");
  close(fd);
  fd = ft_connect(e.srv[0]);
  walk_to(fd, DETOUR_FAKE_MAIL);
  FT_EXPECT(fd, "MAIL FROM:<a@x.test>", "451 4.3.0 ");
  close(fd);
  ft_finish(&e);
}

/* Read a whole greeting counting the reads it took. */
static int read_counting(int fd, char *buf, size_t cap, double *secs) {
  size_t len = 0;
  int reads = 0;
  double t0 = ft_now();
  while (len + 1 < cap && !(len >= 2 && buf[len - 1] == '\n')) {
    ssize_t n = ft_read_some(fd, buf + len, cap - 1 - len, 3000);
    if (n <= 0)
      break;
    len += (size_t)n;
    buf[len] = '\0';
    reads++;
  }
  *secs = ft_now() - t0;
  return reads;
}

Test(fault, slow_drips_bytes) {
  ft_env e;
  ft_start(&e, "hostname: h\nfaults: [{ name: slow, bytes_per_sec: 100 }]\n");
  int fd = ft_connect(e.srv[0]);
  char buf[256] = "";
  double secs;
  int reads = read_counting(fd, buf, sizeof buf, &secs);
  cr_assert_str_eq(buf, "220 h ESMTP detour-fake\r\n");
  cr_assert_geq(secs, 0.18, "25 bytes at 100 B/s: ~0.25 s, took %f", secs);
  cr_assert_geq(reads, 5, "arrived in pieces (%d reads)", reads);
  close(fd);
  ft_finish(&e);
}

Test(fault, partial_lines_split_writes) {
  ft_env e;
  ft_start(&e, "hostname: h\nfaults: [{ name: partial_lines, chunk: 3 }]\n");
  int fd = ft_connect(e.srv[0]);
  char buf[256] = "";
  double secs;
  int reads = read_counting(fd, buf, sizeof buf, &secs);
  cr_assert_str_eq(buf, "220 h ESMTP detour-fake\r\n");
  cr_assert_geq(reads, 3, "split over many writes (%d reads)", reads);
  close(fd);
  ft_finish(&e);
}

Test(fault, bare_lf_line_ends) {
  ft_env e;
  ft_start(&e, "faults: [bare_lf]\n");
  int fd = ft_connect(e.srv[0]);
  char buf[512];
  cr_assert_gt(ft_read_reply(fd, buf, sizeof buf, 2000), 0);
  cr_assert(strchr(buf, '\n') && !strchr(buf, '\r'), "'%s'", buf);
  cr_assert_gt(ft_cmd(fd, "EHLO x", buf, sizeof buf), 0);
  cr_assert(strncmp(buf, "250-", 4) == 0 && !strchr(buf, '\r'));
  close(fd);
  ft_finish(&e);
}

Test(fault, overlong_reply_line) {
  ft_env e;
  ft_start(&e, "faults: [overlong_line]\n");
  int fd = ft_connect(e.srv[0]);
  char buf[4096];
  ssize_t n = ft_read_reply(fd, buf, sizeof buf, 2000);
  cr_assert_eq(n, 2006, "one line of 2006 octets, got %zd", n);
  cr_assert(strncmp(buf, "220 xxx", 7) == 0);
  close(fd);
  ft_finish(&e);
}

Test(fault, endless_multiline_never_ends) {
  ft_env e;
  ft_start(&e, "faults: [endless_multiline]\n");
  int fd = ft_connect(e.srv[0]);
  char buf[8192];
  size_t len = 0;
  double end = ft_now() + 0.8;
  while (ft_now() < end && len + 1 < sizeof buf) {
    ssize_t n = ft_read_some(fd, buf + len, sizeof buf - 1 - len, 200);
    if (n > 0)
      len += (size_t)n;
  }
  buf[len] = '\0';
  int lines = 0;
  for (char *p = buf; (p = strstr(p, "220-")); p += 4)
    lines++;
  cr_assert_geq(lines, 5, "%d continuation lines", lines);
  cr_assert_null(strstr(buf, "220 "), "no last line ever");
  close(fd);
  ft_finish(&e);
}

Test(fault, garbage_and_nul_bytes) {
  ft_env e;
  ft_start(&e, "connections:\n"
               "  - { only: 1, fault: garbage_code }\n"
               "  - { from: 2, fault: nul_bytes }\n");
  int fd = ft_connect(e.srv[0]);
  FT_EXPECT(fd, NULL, "XYZ ");
  close(fd);
  fd = ft_connect(e.srv[0]);
  char buf[256];
  ssize_t n = ft_read_reply(fd, buf, sizeof buf, 2000);
  cr_assert_gt(n, 0);
  cr_assert(memchr(buf, '\0', (size_t)n) != NULL, "a NUL on the wire");
  cr_assert(strncmp(buf, "220 mx", 6) == 0);
  close(fd);
  ft_finish(&e);
}

Test(fault, early_reply_before_the_command) {
  ft_env e;
  ft_start(&e, "faults: [early_reply]\n");
  int fd = ft_connect(e.srv[0]);
  char buf[1024];
  size_t len = 0;
  double end = ft_now() + 1;
  while (ft_now() < end && !strstr(buf, "(a reply before")) {
    ssize_t n = ft_read_some(fd, buf + len, sizeof buf - 1 - len, 300);
    if (n <= 0)
      break;
    len += (size_t)n;
    buf[len] = '\0';
  }
  cr_assert(strstr(buf, "220 ") && strstr(buf, "\r\n250 2.0.0 Ok (a reply "),
            "'%s'", buf);
  close(fd);
  ft_finish(&e);
}

Test(fault, data_after_quit) {
  ft_env e;
  ft_start(&e, "faults: [data_after_quit]\n");
  int fd = ft_connect(e.srv[0]);
  walk_to(fd, DETOUR_FAKE_EHLO);
  char buf[1024];
  ft_send(fd, "QUIT\r\n");
  size_t len = 0;
  for (;;) {
    ssize_t n = ft_read_some(fd, buf + len, sizeof buf - 1 - len, 2000);
    if (n <= 0)
      break;
    len += (size_t)n;
  }
  buf[len] = '\0';
  cr_assert(strncmp(buf, "221 ", 4) == 0 && strstr(buf, "GARBAGE after QUIT"),
            "'%s'", buf);
  close(fd);
  ft_finish(&e);
}

/* Every entry is documented, loads with its defaults, and has a test
 * above (by name) and a row in the README table. */
Test(fault, catalogue_is_complete) {
  FILE *f = fopen(DETOUR_SOURCE_DIR "/fakeservers/README.md", "r");
  static char readme[65536];
  size_t n = f ? fread(readme, 1, sizeof readme - 1, f) : 0;
  if (f)
    fclose(f);
  readme[n] = '\0';
  cr_assert_gt(detour_fake_fault_count(), 20);
  for (size_t i = 0; i < detour_fake_fault_count(); i++) {
    const detour_fake_fault_info *fi = detour_fake_fault_at(i);
    detour_fake_script *s = detour_fake_script_new("t");
    cr_assert_eq(detour_fake_script_add_fault(s, fi->name, NULL), 0, "%s",
                 fi->name);
    detour_fake_script_free(s);
    cr_assert(fi->wire && *fi->wire);
    char row[64];
    snprintf(row, sizeof row, "| `%s` |", fi->name);
    cr_assert(strstr(readme, row), "README row for %s", fi->name);
  }
  cr_assert_null(detour_fake_fault_at(detour_fake_fault_count()));
}

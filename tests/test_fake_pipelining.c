/*
 * test_fake_pipelining.c - the replies to pipelined commands (RFC 2920)
 * leave the fake server in one write: a client that sends MAIL, RCPT and
 * DATA together gets the three replies in one segment, counted by the
 * server's `writes` and seen in one recv. Holding replies back must not
 * reorder or delay what the script says: a delayed reply, a drip and a
 * close still come after the replies before them, at their time.
 */
#include "test_fake_util.h"

/* A session greeted and past EHLO. */
static int ehlo_session(ft_env *e) {
  int fd = ft_connect(e->srv[0]);
  cr_assert_geq(fd, 0);
  FT_EXPECT(fd, NULL, "220 ");
  FT_EXPECT(fd, "EHLO client.test", "250");
  return fd;
}

/* Read until `want` (a substring) is in buf, EOF or the timeout. */
static size_t read_until(int fd, char *buf, size_t cap, const char *want,
                         int timeout_ms) {
  size_t len = 0;
  double end = ft_now() + timeout_ms / 1000.0;
  buf[0] = '\0';
  while (!strstr(buf, want) && len + 1 < cap) {
    int left = (int)((end - ft_now()) * 1000);
    if (left <= 0)
      break;
    ssize_t n = ft_read_some(fd, buf + len, cap - 1 - len, left);
    if (n <= 0)
      break;
    len += (size_t)n;
    buf[len] = '\0';
  }
  return len;
}

#define MAIL_RCPT_DATA "MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n"
#define THREE_REPLIES                                                          \
  "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"

Test(fake_pipelining, three_replies_in_one_write) {
  ft_env e;
  detour_fake_stats st0, st1;
  char buf[4096];
  ft_start(&e, "name: plain\nrecord: summary\n");
  int fd = ehlo_session(&e);
  ft_stats(&e, 0, &st0);
  ft_send(fd, MAIL_RCPT_DATA);
  /* One write on loopback is one segment: the first recv has them all. */
  ssize_t n = ft_read_some(fd, buf, sizeof buf - 1, 3000);
  cr_assert_gt(n, 0);
  buf[n] = '\0';
  cr_assert_str_eq(buf, THREE_REPLIES);
  ft_stats(&e, 0, &st1);
  cr_assert_eq(st1.writes - st0.writes, 1, "one write for three replies: %llu",
               (unsigned long long)(st1.writes - st0.writes));
  /* The message still arrives, and each command was taken on its own. */
  ft_send(fd, "Subject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n");
  n = (ssize_t)read_until(fd, buf, sizeof buf, "221 ", 3000);
  cr_assert(strstr(buf, "250 2.0.0") && strstr(buf, "221 "), "%s", buf);
  cr_assert_eq(ft_wait_close(fd, 3000), 0, "FIN after the 221");
  close(fd);
  ft_join(&e);
  cr_assert_eq(detour_fake_server_message_count(e.srv[0]), 1);
  detour_fake_server_stats(e.srv[0], &st1);
  cr_assert_eq(st1.commands, 5); /* EHLO MAIL RCPT DATA QUIT */
  ft_finish(&e);
}

/* A delay on RCPT: MAIL's reply goes out before the delay, not with the
 * replies held behind it. */
Test(fake_pipelining, a_delay_does_not_hold_the_replies_before_it) {
  ft_env e;
  char buf[4096];
  ft_start(&e, "name: slow\nrecord: summary\nrcpt: { delay: 1500ms }\n");
  int fd = ehlo_session(&e);
  double t0 = ft_now();
  ft_send(fd, MAIL_RCPT_DATA);
  ssize_t n = ft_read_some(fd, buf, sizeof buf - 1, 1000);
  cr_assert_gt(n, 0, "MAIL's reply before RCPT's delay ends");
  buf[n] = '\0';
  cr_assert_str_eq(buf, "250 2.1.0 Ok\r\n");
  cr_assert_lt(ft_now() - t0, 1.0);
  read_until(fd, buf, sizeof buf, "354 ", 5000);
  cr_assert_str_eq(buf,
                   "250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n");
  cr_assert_geq(ft_now() - t0, 1.4, "RCPT's reply after its delay");
  close(fd);
  ft_finish(&e);
}

/* A dripped reply after a pipelined NOOP: the NOOP's reply first, then the
 * drip in its own pieces, one write each. */
Test(fake_pipelining, a_drip_keeps_its_pieces) {
  ft_env e;
  detour_fake_stats st0, st1;
  char buf[4096];
  ft_start(&e, "name: drip\nrecord: summary\n"
               "mail: { reply: 250 ok, drip: { bytes: 4, every: 0ms } }\n");
  int fd = ehlo_session(&e);
  ft_stats(&e, 0, &st0);
  ft_send(fd, "NOOP\r\nMAIL FROM:<a@x.test>\r\n");
  read_until(fd, buf, sizeof buf, "250 ok\r\n", 3000);
  cr_assert_str_eq(buf, "250 2.0.0 Ok\r\n250 ok\r\n");
  ft_stats(&e, 0, &st1);
  /* "250 ok\r\n" is 8 bytes: 2 pieces, after the NOOP's write. */
  cr_assert_eq(st1.writes - st0.writes, 3, "writes: %llu",
               (unsigned long long)(st1.writes - st0.writes));
  close(fd);
  ft_finish(&e);
}

/* QUIT pipelined behind NOOPs: every reply, then the FIN. */
Test(fake_pipelining, replies_before_the_close) {
  ft_env e;
  char buf[4096];
  ft_start(&e, "name: plain\nrecord: summary\n");
  int fd = ehlo_session(&e);
  ft_send(fd, "NOOP\r\nNOOP\r\nQUIT\r\n");
  read_until(fd, buf, sizeof buf, "221 ", 3000);
  cr_assert_str_eq(buf, "250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n221 2.0.0 Bye\r\n");
  cr_assert_eq(ft_wait_close(fd, 3000), 0, "FIN after the 221");
  close(fd);
  ft_finish(&e);
}

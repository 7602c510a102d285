/*
 * test_fake_server.c - libdetour-fake: scripted replies on the wire,
 * sequencing, the recording, the YAML loader and its errors, the loopback
 * rule, and virtual time. Clients are plain blocking sockets
 * (test_fake_util.h); the servers run in a loop thread on a real clock,
 * except in the virtual-time test, which keeps everything on one loop.
 */
#include "test_fake_util.h"

static const char *script_default = "name: plain\nlisten: 127.0.0.1:0\n";

Test(fake_server, whole_session_is_recorded) {
  ft_env e;
  ft_start(&e, script_default);
  int fd = ft_connect(e.srv[0]);
  cr_assert_geq(fd, 0);
  FT_EXPECT(fd, NULL, "220 mx.fake.test ESMTP");
  FT_EXPECT(fd, "EHLO client.test", "250-mx.fake.test\r\n250-PIPELINING");
  FT_EXPECT(fd, "MAIL FROM:<a@b.test> SIZE=100", "250 2.1.0");
  FT_EXPECT(fd, "RCPT TO:<c@d.test>", "250 2.1.5");
  FT_EXPECT(fd, "RCPT TO:<e@f.test>", "250 2.1.5");
  FT_EXPECT(fd, "DATA", "354 ");
  /* dot-stuffed line, a bare LF line, a line that is only "..". */
  ft_send(fd, "Subject: t\r\n\r\n..leading dot\r\nbare\nx\r\n..\r\n.\r\n");
  FT_EXPECT(fd, NULL, "250 2.0.0 Ok: queued as");
  FT_EXPECT(fd, "QUIT", "221 2.0.0");
  cr_assert_eq(ft_wait_close(fd, 2000), 0, "FIN after 221");
  close(fd);
  ft_join(&e);

  detour_fake_server *s = e.srv[0];
  cr_assert_eq(detour_fake_server_message_count(s), 1);
  detour_fake_message m;
  detour_fake_server_message(s, 0, &m);
  cr_assert_str_eq(m.from, "a@b.test");
  cr_assert_eq(m.nrcpts, 2);
  cr_assert_str_eq(m.rcpts[1], "e@f.test");
  const char body[] = "Subject: t\r\n\r\n.leading dot\r\nbare\nx\r\n.\r\n";
  cr_assert_eq(m.body_len, sizeof body - 1);
  cr_assert_eq(memcmp(m.body, body, m.body_len), 0, "body '%s'", m.body);
  cr_assert(m.complete);
  cr_assert_eq(m.code, 250);
  cr_assert_eq(detour_fake_server_conn_count(s), 1);
  detour_fake_conn c;
  detour_fake_server_conn(s, 0, &c);
  cr_assert_eq(c.id, 1);
  cr_assert_eq(c.closed_by, DETOUR_FAKE_BY_SERVER);
  cr_assert_geq(c.close_time, c.accept_time);
  cr_assert_eq(c.commands, 6);
  cr_assert_eq(ft_count(s, DETOUR_FAKE_EV_COMMAND, -1), 6);
  cr_assert_eq(ft_count(s, DETOUR_FAKE_EV_REPLY, -1), 8);
  cr_assert_eq(ft_count(s, DETOUR_FAKE_EV_MESSAGE, -1), 1);
  detour_fake_stats st;
  detour_fake_server_stats(s, &st);
  cr_assert_eq(st.accepted, 1);
  cr_assert_eq(st.messages, 1);
  cr_assert_eq(st.active, 0);
  ft_finish(&e);
}

Test(fake_server, connections_are_sequenced) {
  ft_env e;
  ft_start(&e, "name: seq\n"
               "connections:\n"
               "  - { range: 1-2, greeting: 421 4.3.2 busy }\n"
               "  - { from: 3, greeting: normal }\n");
  for (int i = 1; i <= 3; i++) {
    int fd = ft_connect(e.srv[0]);
    cr_assert_geq(fd, 0);
    if (i <= 2) {
      FT_EXPECT(fd, NULL, "421 4.3.2 busy\r\n");
      cr_assert_eq(ft_wait_close(fd, 2000), 0, "421 closes");
    } else {
      FT_EXPECT(fd, NULL, "220 ");
      FT_EXPECT(fd, "QUIT", "221");
    }
    close(fd);
  }
  ft_finish(&e);
}

Test(fake_server, nth_and_per_recipient_replies) {
  ft_env e;
  ft_start(&e, "name: rcpt\n"
               "rcpt:\n"
               "  - { nth: 2, reply: 452 4.5.3 too many recipients }\n"
               "  - { address: 'bad@x.test', reply: 550 5.1.1 no such user }\n"
               "mail:\n"
               "  '<>': 550 5.7.1 no bounces\n"
               "  '*': 250 2.1.0 sender ok\n");
  int fd = ft_connect(e.srv[0]);
  FT_EXPECT(fd, NULL, "220");
  FT_EXPECT(fd, "HELO c", "250 mx.fake.test");
  FT_EXPECT(fd, "MAIL FROM:<>", "550 5.7.1 no bounces");
  FT_EXPECT(fd, "MAIL FROM:<s@x.test>", "250 2.1.0 sender ok");
  FT_EXPECT(fd, "RCPT TO:<BAD@x.test>", "550 5.1.1 no such user");
  FT_EXPECT(fd, "RCPT TO:<good@x.test>", "452 4.5.3 too many");
  FT_EXPECT(fd, "RCPT TO:<good@x.test>", "250 2.1.5");
  FT_EXPECT(fd, "RSET", "250 2.0.0");
  FT_EXPECT(fd, "NOOP", "250 2.0.0");
  FT_EXPECT(fd, "VRFY x", "502 5.5.2");
  FT_EXPECT(fd, "DATA", "503 5.5.1");
  FT_EXPECT(fd, "RCPT TO:<a@b>", "503 5.5.1");
  FT_EXPECT(fd, "MAIL FROM:", "501 5.5.4");
  close(fd);
  ft_finish(&e);
}

Test(fake_server, multiline_text_delay_and_raw) {
  ft_env e;
  ft_start(&e, "name: ml\n"
               "hostname: mx1.test\n"
               "ehlo_keywords: [SIZE 1000, 8BITMIME]\n"
               "greeting: { code: 220, text: [first, second, third], delay: "
               "300ms }\n"
               "noop: { raw: \"250 raw\\n\" }\n"
               "quit: { reply: 221 bye, then: continue }\n");
  int fd = ft_connect(e.srv[0]);
  double t0 = ft_now();
  FT_EXPECT(fd, NULL, "220-first\r\n220-second\r\n220 third\r\n");
  cr_assert_geq(ft_now() - t0, 0.25, "greeting delayed 300 ms");
  FT_EXPECT(fd, "EHLO c", "250-mx1.test\r\n250-SIZE 1000\r\n250 8BITMIME\r\n");
  FT_EXPECT(fd, "NOOP", "250 raw\n");
  FT_EXPECT(fd, "QUIT", "221 bye");
  FT_EXPECT(fd, "QUIT", "221 bye"); /* then: continue keeps it open */
  close(fd);
  ft_finish(&e);
}

Test(fake_server, pipelined_commands_answered_in_order) {
  ft_env e;
  ft_start(&e, "name: pipe\nmail: { reply: 250 ok, delay: 100ms }\n");
  int fd = ft_connect(e.srv[0]);
  FT_EXPECT(fd, NULL, "220");
  ft_send(fd, "EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n");
  char buf[4096] = "";
  size_t len = 0;
  double end = ft_now() + 3;
  while (ft_now() < end && !strstr(buf, "354 ")) {
    ssize_t n = ft_read_some(fd, buf + len, sizeof buf - 1 - len, 500);
    if (n <= 0)
      break;
    len += (size_t)n;
    buf[len] = '\0';
  }
  char *m = strstr(buf, "250 ok"), *r = strstr(buf, "250 2.1.5"),
       *d = strstr(buf, "354 ");
  cr_assert(m && r && d && m < r && r < d, "order: %s", buf);
  close(fd);
  ft_finish(&e);
}

Test(fake_server, servers_on_several_loopback_addresses) {
  ft_env e;
  ft_start(&e, "servers:\n"
               "  - { name: a, listen: '127.0.0.2:0', greeting: 220 a }\n"
               "  - { name: b, listen: '127.0.0.3:0', greeting: 220 b }\n");
  cr_assert_str_eq(detour_fake_server_ip(e.srv[0]), "127.0.0.2");
  cr_assert_str_eq(detour_fake_server_ip(e.srv[1]), "127.0.0.3");
  cr_assert_neq(detour_fake_server_port(e.srv[0]), 0);
  int fa = ft_connect(e.srv[0]), fb = ft_connect(e.srv[1]);
  FT_EXPECT(fa, NULL, "220 a");
  FT_EXPECT(fb, NULL, "220 b");
  close(fa);
  close(fb);
  ft_finish(&e);
}

Test(fake_server, ipv6_loopback) {
  ft_env e;
  int probe = socket(AF_INET6, SOCK_STREAM, 0);
  struct sockaddr_in6 a = {.sin6_family = AF_INET6,
                           .sin6_addr = IN6ADDR_LOOPBACK_INIT};
  if (probe < 0 || bind(probe, (struct sockaddr *)&a, sizeof a) != 0) {
    if (probe >= 0)
      close(probe);
    cr_skip_test("no ::1 here");
  }
  close(probe);
  ft_start(&e, "name: v6\nlisten: '[::1]:0'\n");
  cr_assert_str_eq(detour_fake_server_ip(e.srv[0]), "::1");
  int fd = ft_connect(e.srv[0]);
  FT_EXPECT(fd, NULL, "220");
  close(fd);
  ft_finish(&e);
}

Test(fake_server, only_loopback_unless_asked) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  detour_clock *c = detour_clock_new_real(&loop);
  detour_fake_script *s = detour_fake_script_new("pub");
  int err = 0;
  cr_assert_eq(detour_fake_script_set_listen(s, "0.0.0.0:0"), 0);
  cr_assert_null(detour_fake_server_new(c, s, NULL, 0, &err));
  cr_assert_eq(err, DETOUR_EINVAL);
  cr_assert_null(detour_fake_server_new(c, s, "[::]:0", 0, &err));
  detour_fake_server *srv =
      detour_fake_server_new(c, s, NULL, DETOUR_FAKE_ALLOW_PUBLIC, &err);
  cr_assert_not_null(srv, "allowed when asked");
  detour_fake_server_free(srv);
  srv = detour_fake_server_new(c, s, "127.9.9.9:0", 0, &err);
  cr_assert_not_null(srv, "any 127/8 address is loopback");
  detour_fake_server_free(srv);
  detour_fake_script_free(s);
  uv_run(&loop, UV_RUN_DEFAULT);
  detour_clock_free(c);
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_assert_eq(uv_loop_close(&loop), 0);
}

Test(fake_server, record_as_json_lines) {
  ft_env e;
  ft_start(&e, script_default);
  int fd = ft_connect(e.srv[0]);
  FT_EXPECT(fd, NULL, "220");
  FT_EXPECT(fd, "HELO c", "250");
  FT_EXPECT(fd, "MAIL FROM:<a@b>", "250");
  FT_EXPECT(fd, "RCPT TO:<c@d>", "250");
  FT_EXPECT(fd, "DATA", "354");
  ft_send(fd, "caf\xc3\xa9 \"q\"\r\n.\r\n");
  FT_EXPECT(fd, NULL, "250");
  close(fd);
  ft_join(&e);
  char *out = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&out, &len);
  cr_assert_eq(detour_fake_server_write_jsonl(e.srv[0], f), 0);
  fclose(f);
  cr_assert(strstr(out, "\"event\":\"listen\""));
  cr_assert(strstr(out, "\"event\":\"accept\""));
  cr_assert(strstr(out, "\"event\":\"command\",\"stage\":\"mail\","
                        "\"data\":\"MAIL FROM:<a@b>\""),
            "%s", out);
  cr_assert(strstr(out, "\"from\":\"a@b\",\"rcpts\":[\"c@d\"]"));
  cr_assert(strstr(out, "\"body\":\"caf\\u00c3\\u00a9 \\\"q\\\"\\r\\n\""), "%s",
            out);
  cr_assert(strstr(out, "\"event\":\"close\""));
  for (char *p = out; *p; p++) /* one object per line */
    if (*p == '\n')
      cr_assert(p[1] == '\0' || p[1] == '{');
  free(out);
  ft_finish(&e);
}

/* ------------------------------------------------------------------------ */
/* YAML errors name file:line:col and what was expected                      */

static void expect_error(const char *yaml, const char *where,
                         const char *what) {
  char err[512] = "";
  size_t n = 99;
  detour_fake_script **v = detour_fake_load_string(yaml, strlen(yaml), "s.yaml",
                                                   &n, err, sizeof err);
  cr_assert_null(v, "should fail: %s", yaml);
  cr_assert_eq(n, 0);
  cr_assert(strncmp(err, where, strlen(where)) == 0, "where: got '%s'", err);
  cr_assert(strstr(err, what), "what '%s': got '%s'", what, err);
}

Test(fake_yaml, errors_name_file_line_col) {
  expect_error("name: x\ngreting: 220\n",
               "s.yaml:2:1:", "unknown key 'greting'");
  expect_error("name: x\ngreeting: hello\n",
               "s.yaml:2:11:", "expected a reply like '250 2.0.0 Ok'");
  expect_error("name: x\nmail: { delay: soon }\n",
               "s.yaml:2:16:", "expected a duration");
  expect_error("faults: [disk_ful]\n", "s.yaml:1:10:",
               "unknown fault 'disk_ful' (expected one of: refuse");
  expect_error("connections:\n  - { rang: 1-2 }\n",
               "s.yaml:2:5:", "expected range:, only: or from:");
  expect_error("connections:\n  - { range: 2-1 }\n",
               "s.yaml:2:14:", "expected a range");
  expect_error("listen: somewhere\n", "s.yaml:1:9:", "expected an address");
  expect_error("mode: closed\n",
               "s.yaml:1:7:", "expected one of normal, refuse, blackhole");
  expect_error("greeting: [\n", "s.yaml:2:1:", "");
  expect_error("- a\n- b\n", "s.yaml:1:1:",
               "expected a server script or a mapping with servers:");
  expect_error("servers: []\n", "s.yaml:1:10:", "non-empty list");
  expect_error("rcpt: { nth: x, reply: 250 }\n",
               "s.yaml:1:14:", "expected a range");
  expect_error("faults: [{ name: disk_full, stage: greeting }]\n",
               "s.yaml:1:10:", "cannot strike at that stage");
}

Test(fake_yaml, file_loader_and_full_example) {
  char path[] = "/tmp/fake_yaml_XXXXXX";
  int fd = mkstemp(path);
  const char *y =
      "servers:\n"
      "  - name: primary\n"
      "    listen: 127.0.0.2:0\n"
      "    faults: [{ name: disk_full, stage: eod, connections: 1 }]\n"
      "    rcpt: { 'bad@x': 550 5.1.1 no such user, '*': 250 }\n"
      "  - name: backup\n"
      "    mode: refuse\n"
      "    record: summary\n"
      "    idle_timeout: 5m\n";
  cr_assert_eq(write(fd, y, strlen(y)), (ssize_t)strlen(y));
  close(fd);
  char err[256] = "";
  size_t n = 0;
  detour_fake_script **v = detour_fake_load_file(path, &n, err, sizeof err);
  unlink(path);
  cr_assert_not_null(v, "%s", err);
  cr_assert_eq(n, 2);
  cr_assert_str_eq(detour_fake_script_name(v[0]), "primary");
  cr_assert_str_eq(detour_fake_script_listen(v[0]), "127.0.0.2:0");
  cr_assert_eq(detour_fake_script_mode(v[1]), DETOUR_FAKE_MODE_REFUSE);
  detour_fake_scripts_free(v, n);
  cr_assert_null(
      detour_fake_load_file("/nonexistent.yaml", &n, err, sizeof err));
  cr_assert(strstr(err, "/nonexistent.yaml:1:1: cannot open"), "%s", err);
}

/* ------------------------------------------------------------------------ */
/* Virtual time: a 3-minute greeting delay takes no real time                */

typedef struct {
  uv_tcp_t tcp;
  uv_connect_t req;
  char buf[512];
  size_t len;
  bool done;
} vclient;

static void v_alloc(uv_handle_t *h, size_t s, uv_buf_t *b) {
  vclient *c = h->data;
  *b = uv_buf_init(c->buf + c->len, (unsigned)(sizeof c->buf - 1 - c->len));
}

static void v_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
  vclient *c = st->data;
  if (n > 0) {
    c->len += (size_t)n;
    c->buf[c->len] = '\0';
    if (strstr(c->buf, "\r\n"))
      c->done = true;
  } else if (n < 0) {
    c->done = true;
  }
}

static void v_connected(uv_connect_t *req, int status) {
  vclient *c = req->data;
  cr_assert_eq(status, 0);
  uv_read_start((uv_stream_t *)&c->tcp, v_alloc, v_read);
}

static bool v_done(void *arg) { return ((vclient *)arg)->done; }

Test(fake_server, virtual_time_delay_costs_nothing) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  const detour_ms start = 1000000000000LL;
  detour_clock *clk = detour_clock_new_virtual(&loop, start);
  detour_fake_script *s = detour_fake_script_new("slowgreet");
  detour_fake_rule r = {.stage = DETOUR_FAKE_GREETING, .delay = 180000};
  cr_assert_eq(detour_fake_script_add_rule(s, &r), 0);
  int err;
  char msg[128];
  detour_fake_server *srv = detour_fake_server_new(clk, s, NULL, 0, &err);
  cr_assert_eq(detour_fake_server_start(srv, msg, sizeof msg), 0, "%s", msg);
  vclient c = {.len = 0};
  uv_tcp_init(&loop, &c.tcp);
  c.tcp.data = c.req.data = &c;
  struct sockaddr_in a;
  uv_ip4_addr("127.0.0.1", detour_fake_server_port(srv), &a);
  uv_tcp_connect(&c.req, &c.tcp, (struct sockaddr *)&a, v_connected);
  double t0 = ft_now();
  cr_assert_eq(detour_clock_run_virtual(clk, v_done, &c, 10000), 0);
  cr_assert_lt(ft_now() - t0, 2.0, "no real 3 minutes");
  cr_assert(strncmp(c.buf, "220 ", 4) == 0, "%s", c.buf);
  cr_assert_eq(detour_clock_now(clk), start + 180000);
  detour_fake_conn ci;
  detour_fake_server_conn(srv, 0, &ci);
  cr_assert_eq(ci.accept_time, start);
  detour_fake_event ev;
  for (size_t i = 0; i < detour_fake_server_event_count(srv); i++) {
    detour_fake_server_event(srv, i, &ev);
    if (ev.type == DETOUR_FAKE_EV_REPLY)
      cr_assert_eq(ev.time, start + 180000, "reply stamped in virtual time");
  }
  uv_close((uv_handle_t *)&c.tcp, NULL);
  detour_fake_server_free(srv);
  detour_fake_script_free(s);
  uv_run(&loop, UV_RUN_DEFAULT);
  detour_clock_free(clk);
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_assert_eq(uv_loop_close(&loop), 0);
}

/* The full example of fakeservers/README.md loads as written. */
Test(fake_yaml, readme_example_loads) {
  FILE *f = fopen(DETOUR_SOURCE_DIR "/fakeservers/README.md", "r");
  cr_assert_not_null(f);
  static char text[65536];
  size_t n = fread(text, 1, sizeof text - 1, f);
  fclose(f);
  text[n] = '\0';
  char *start = strstr(text, "```yaml\n");
  cr_assert_not_null(start);
  start += 8;
  char *end = strstr(start, "```");
  cr_assert_not_null(end);
  char err[512] = "";
  size_t count = 0;
  detour_fake_script **v = detour_fake_load_string(
      start, (size_t)(end - start), "README.md", &count, err, sizeof err);
  cr_assert_not_null(v, "%s", err);
  cr_assert_eq(count, 2);
  cr_assert_eq(detour_fake_script_mode(v[1]), DETOUR_FAKE_MODE_REFUSE);
  detour_fake_scripts_free(v, count);
}

/* A connection from `src` (a loopback address of ours) to the server. */
static int connect_from(const char *src, const detour_fake_server *srv) {
  struct sockaddr_storage from, to;
  socklen_t flen, tlen;
  cr_assert_eq(ft_addr(src, 0, &from, &flen), 0);
  cr_assert_eq(ft_addr(detour_fake_server_ip(srv), detour_fake_server_port(srv),
                       &to, &tlen),
               0);
  int fd = socket(from.ss_family, SOCK_STREAM, 0);
  cr_assert_geq(fd, 0);
  cr_assert_eq(bind(fd, (struct sockaddr *)&from, flen), 0);
  cr_assert_eq(connect(fd, (struct sockaddr *)&to, tlen), 0);
  return fd;
}

/* Device mode's --peer: only the device is served; anyone else is reset
 * before any reply, and the record shows who it was. */
Test(fake_server, only_the_peer_is_served) {
  ft_env e;
  char err[256];
  int rc = 0;
  memset(&e, 0, sizeof e);
  signal(SIGPIPE, SIG_IGN);
  cr_assert_eq(uv_loop_init(&e.loop), 0);
  e.clock = detour_clock_new_real(&e.loop);
  size_t n = 0;
  detour_fake_script **v = detour_fake_load_string(
      script_default, strlen(script_default), "t.yaml", &n, err, sizeof err);
  cr_assert_not_null(v, "%s", err);
  e.srv[0] = detour_fake_server_new(e.clock, v[0], NULL, 0, &rc);
  detour_fake_scripts_free(v, n);
  cr_assert_not_null(e.srv[0]);
  cr_assert_eq(detour_fake_server_set_only_peer(e.srv[0], "no-such-ip"),
               DETOUR_EINVAL);
  cr_assert_eq(detour_fake_server_set_only_peer(e.srv[0], "127.0.0.7"), 0);
  cr_assert_eq(detour_fake_server_start(e.srv[0], err, sizeof err), 0, "%s",
               err);
  e.nsrv = 1;
  ft_launch(&e);

  int other = connect_from("127.0.0.1", e.srv[0]);
  char buf[64];
  cr_assert_leq(ft_read_some(other, buf, sizeof buf, 2000), 0,
                "no reply to a stranger");
  close(other);
  int device = connect_from("127.0.0.7", e.srv[0]);
  FT_EXPECT(device, NULL, "220 ");
  FT_EXPECT(device, "QUIT", "221");
  close(device);
  ft_join(&e);

  detour_fake_conn c;
  cr_assert_eq(detour_fake_server_conn_count(e.srv[0]), 2);
  detour_fake_server_conn(e.srv[0], 0, &c);
  cr_assert(strncmp(c.peer, "127.0.0.1:", 10) == 0, "%s", c.peer);
  cr_assert_eq(c.closed_by, DETOUR_FAKE_BY_SERVER_RESET);
  cr_assert_eq(c.commands, 0);
  detour_fake_server_conn(e.srv[0], 1, &c);
  cr_assert(strncmp(c.peer, "127.0.0.7:", 10) == 0, "%s", c.peer);
  cr_assert_eq(ft_count(e.srv[0], DETOUR_FAKE_EV_ACTION, -1), 1);
  ft_finish(&e);
}

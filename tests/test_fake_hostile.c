/*
 * test_fake_hostile.c - the fake servers against clients that abuse them:
 * deep pipelining, floods of empty lines, commands queued during a delay.
 * A buggy device does all of these; the server must answer every command
 * in order, stay up, and keep serving the next client. Then the limits
 * (fakeservers/README.md, "Limits and hostile clients").
 */
#include <stdatomic.h>

#include "test_fake_util.h"

typedef struct {
  int fd;
  char *data;
  size_t len;
  atomic_size_t sent; /* progress, read by the test thread */
} ft_sender;

static void *send_all(void *arg) {
  ft_sender *s = arg;
  size_t off = 0;
  while (off < s->len) {
    ssize_t n = send(s->fd, s->data + off, s->len - off, MSG_NOSIGNAL);
    if (n <= 0)
      break;
    off += (size_t)n;
    atomic_store(&s->sent, off);
  }
  return NULL;
}

/* Repeat `line` n times into one buffer (the caller frees it). */
static char *repeat(const char *line, size_t n, size_t *len) {
  size_t l = strlen(line);
  char *p = malloc(l * n + 1);
  cr_assert_not_null(p);
  for (size_t i = 0; i < n; i++)
    memcpy(p + i * l, line, l);
  p[l * n] = '\0';
  *len = l * n;
  return p;
}

/* Read until `want` lines starting with `code` came, EOF, or 20 s. */
static size_t count_replies(int fd, const char *code, size_t want) {
  static char buf[1 << 16];
  size_t seen = 0, carry = 0, cl = strlen(code);
  double end = ft_now() + 20.0;
  while (seen < want && ft_now() < end) {
    ssize_t n = ft_read_some(fd, buf + carry, sizeof buf - carry - 1, 2000);
    if (n <= 0)
      break;
    size_t len = carry + (size_t)n, start = 0;
    for (size_t i = 0; i < len; i++) {
      if (buf[i] != '\n')
        continue;
      if (i - start >= cl && memcmp(buf + start, code, cl) == 0)
        seen++;
      start = i + 1;
    }
    carry = len - start;
    memmove(buf, buf + start, carry);
  }
  return seen;
}

/* The session still works after the abuse, and a new client is served. */
static void still_serves(ft_env *e, int fd) {
  FT_EXPECT(fd, "NOOP", "250");
  int fd2 = ft_connect(e->srv[0]);
  cr_assert_geq(fd2, 0);
  FT_EXPECT(fd2, NULL, "220");
  FT_EXPECT(fd2, "QUIT", "221");
  close(fd2);
}

static void pipeline(ft_env *e, const char *line, size_t n, const char *code) {
  int fd = ft_connect(e->srv[0]);
  cr_assert_geq(fd, 0);
  FT_EXPECT(fd, NULL, "220");
  ft_sender snd = {.fd = fd};
  snd.data = repeat(line, n, &snd.len);
  pthread_t t;
  cr_assert_eq(pthread_create(&t, NULL, send_all, &snd), 0);
  size_t got = count_replies(fd, code, n);
  pthread_join(t, NULL);
  free(snd.data);
  cr_assert_eq(got, n, "every pipelined command answered: %zu of %zu", got, n);
  still_serves(e, fd);
  close(fd);
}

/* 100,000 NOOPs in one stream: each answered, in order, with no recursion
 * per command (this overflowed the stack, most easily under ASan). */
Test(fake_hostile, deep_pipelining_is_answered) {
  ft_env e;
  ft_start(&e, "name: plain\nrecord: summary\n");
  pipeline(&e, "NOOP\r\n", 100000, "250");
  ft_finish(&e);
}

/* 50,000 empty lines in one write: each is an unknown command. */
Test(fake_hostile, flood_of_empty_lines) {
  ft_env e;
  ft_start(&e, "name: plain\nrecord: summary\n");
  pipeline(&e, "\r\n", 50000, "502");
  ft_finish(&e);
}

/* Nearly 1 MiB of NOOPs queued while a scripted delay holds the session:
 * when the delay ends they are answered one by one. */
Test(fake_hostile, commands_queued_during_a_delay) {
  ft_env e;
  ft_start(&e, "name: slow\nrecord: summary\nehlo: { delay: 300ms }\n");
  int fd = ft_connect(e.srv[0]);
  cr_assert_geq(fd, 0);
  FT_EXPECT(fd, NULL, "220");
  size_t n = 170000, len;
  char *noops = repeat("NOOP\r\n", n, &len);
  char *all = malloc(len + 16);
  cr_assert_not_null(all);
  memcpy(all, "EHLO c\r\n", 8);
  memcpy(all + 8, noops, len + 1);
  free(noops);
  ft_sender snd = {.fd = fd, .data = all, .len = len + 8};
  pthread_t t;
  cr_assert_eq(pthread_create(&t, NULL, send_all, &snd), 0);
  size_t got = count_replies(fd, "250 ", n + 1);
  pthread_join(t, NULL);
  free(all);
  cr_assert_eq(got, n + 1, "EHLO and every NOOP answered: %zu", got);
  still_serves(&e, fd);
  close(fd);
  ft_finish(&e);
}

/* ------------------------------------------------------------------------ */
/* Limits and hostile clients (fakeservers/README.md, "Limits and hostile   */
/* clients"): each abuse is survived, a normal client is served promptly   */
/* meanwhile, and the limit it hit is recorded.                             */

/* A normal session during the abuse, at most (a whole session is seven
 * round trips; the machine running the tests may be loaded). */
#define PROMPT_MS 2000.0

/* ASan keeps freed blocks in quarantine (256 MB) instead of reusing them,
 * so RSS says nothing there; the bytes read and the pauses still do. */
#if defined(__SANITIZE_ADDRESS__)
#define RSS_MEANINGFUL 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RSS_MEANINGFUL 0
#endif
#endif
#ifndef RSS_MEANINGFUL
#define RSS_MEANINGFUL 1
#endif

static void send_n(int fd, const char *p, size_t n) {
  ft_sender snd = {.fd = fd, .data = (char *)p, .len = n};
  send_all(&snd);
}

/* Read until a line starting with `last` came (or 5 s); the text read. */
static size_t read_until(int fd, const char *last, char *buf, size_t cap) {
  size_t len = 0, ll = strlen(last);
  double end = ft_now() + 5.0;
  buf[0] = '\0';
  while (len + 1 < cap && ft_now() < end) {
    ssize_t n = ft_read_some(fd, buf + len, cap - 1 - len, 500);
    if (n == -ETIMEDOUT)
      continue;
    if (n <= 0)
      break;
    len += (size_t)n;
    buf[len] = '\0';
    const char *line = buf;
    for (const char *nl; (nl = strchr(line, '\n')); line = nl + 1)
      if (strncmp(line, last, ll) == 0)
        return len;
  }
  return len;
}

/* Send the bytes from a thread; stop it by shutting the socket down. */
typedef struct {
  ft_sender snd;
  pthread_t t;
} bg_sender;

static void bg_start(bg_sender *b, int fd, char *data, size_t len) {
  b->snd.fd = fd;
  b->snd.data = data;
  b->snd.len = len;
  atomic_init(&b->snd.sent, 0);
  cr_assert_eq(pthread_create(&b->t, NULL, send_all, &b->snd), 0);
}

/* Wait until the server paused reading and read nothing more for 300 ms
 * (at most 30 s); returns what the sender got through. */
static size_t wait_paused(ft_env *e, bg_sender *b) {
  uint64_t last = UINT64_MAX;
  for (double end = ft_now() + 30.0; ft_now() < end; usleep(300000)) {
    detour_fake_stats st;
    ft_stats(e, 0, &st);
    if (st.paused > 0 && st.bytes_in == last)
      break;
    last = st.bytes_in;
  }
  return atomic_load(&b->snd.sent);
}

static void bg_stop(bg_sender *b) {
  shutdown(b->snd.fd, SHUT_RDWR); /* wakes a blocked send() */
  pthread_join(b->t, NULL);
}

/* A 10 MB line without CRLF: one 500 5.5.6, its tail discarded (not run
 * as commands 4096 bytes at a time), the next command answered. */
Test(fake_hostile, ten_mb_line_without_crlf) {
  ft_env e;
  ft_start(&e, "name: plain\n");
  int fd = ft_connect(e.srv[0]);
  cr_assert_geq(fd, 0);
  FT_EXPECT(fd, NULL, "220");
  size_t len = (size_t)10 << 20;
  char *big = malloc(len);
  cr_assert_not_null(big);
  memset(big, 'A', len);
  bg_sender b;
  bg_start(&b, fd, big, len);
  double ms = ft_normal_session_ms(e.srv[0]);
  cr_assert_lt(ms, PROMPT_MS, "a normal client during the flood: %.0f ms", ms);
  pthread_join(b.t, NULL);
  ft_send(fd, "QUIT\r\nNOOP\r\n"); /* QUIT ends the long line: discarded */
  char buf[8192];
  read_until(fd, "250", buf, sizeof buf);
  cr_assert_str_eq(buf, "500 5.5.6 Line too long\r\n250 2.0.0 Ok\r\n");
  still_serves(&e, fd);
  close(fd);
  free(big);
  ft_join(&e);
  cr_assert_eq(ft_count_data(e.srv[0], DETOUR_FAKE_EV_LIMIT, "max_line:"), 1);
  detour_fake_stats st;
  detour_fake_server_stats(e.srv[0], &st);
  cr_assert_geq(st.bytes_in, len, "the whole line was read (and dropped)");
  ft_finish(&e);
}

/* The tail of an overlong line that arrives in a later read is discarded,
 * not run as a command (a "QUIT" there would have closed the session). */
Test(fake_hostile, overlong_tail_is_not_a_command) {
  ft_env e;
  ft_start(&e, "name: plain\nlimits: { max_line: 100 }\n");
  int fd = ft_connect(e.srv[0]);
  cr_assert_geq(fd, 0);
  FT_EXPECT(fd, NULL, "220");
  char head[5000];
  memset(head, 'x', sizeof head);
  send_n(fd, head, sizeof head);
  usleep(200000);
  ft_send(fd, "QUIT\r\nNOOP\r\n");
  char buf[8192];
  read_until(fd, "250", buf, sizeof buf);
  cr_assert_str_eq(buf, "500 5.5.6 Line too long\r\n250 2.0.0 Ok\r\n");
  /* a line of exactly max_line bytes is a command */
  char line[120];
  memset(line, 'y', 100);
  memcpy(line + 100, "\r\n", 3);
  ft_send(fd, line);
  read_until(fd, "5", buf, sizeof buf);
  cr_assert(strncmp(buf, "502 5.5.2", 9) == 0, "got '%s'", buf);
  close(fd);
  ft_finish(&e);
}

/* NUL bytes and bare LF in commands: answered, recorded as sent. */
Test(fake_hostile, nul_and_bare_lf_in_commands) {
  ft_env e;
  ft_start(&e, "name: plain\n");
  int fd = ft_connect(e.srv[0]);
  cr_assert_geq(fd, 0);
  FT_EXPECT(fd, NULL, "220");
  char buf[4096];
  send_n(fd, "NO\0OP\r\n", 7);
  read_until(fd, "502", buf, sizeof buf);
  cr_assert(strncmp(buf, "502", 3) == 0, "NUL inside the verb: '%s'", buf);
  ft_send(fd, "NOOP\n");
  read_until(fd, "250", buf, sizeof buf);
  cr_assert(strncmp(buf, "250", 3) == 0, "bare LF: '%s'", buf);
  send_n(fd, "MAIL FROM:<a\0b@x.test>\r\n\0\0\0\r\n", 29);
  read_until(fd, "502", buf, sizeof buf);
  /* the address ends at the NUL: a syntax error, then an unknown command */
  cr_assert(strncmp(buf, "501 5.5.4", 9) == 0 && strstr(buf, "\r\n502"),
            "MAIL with a NUL, then a line of NULs: '%s'", buf);
  still_serves(&e, fd);
  close(fd);
  ft_join(&e);
  bool seen = false;
  for (size_t i = 0; i < detour_fake_server_event_count(e.srv[0]); i++) {
    detour_fake_event ev;
    detour_fake_server_event(e.srv[0], i, &ev);
    if (ev.type == DETOUR_FAKE_EV_COMMAND && ev.len == 5 &&
        memcmp(ev.data, "NO\0OP", 5) == 0)
      seen = true;
  }
  cr_assert(seen, "the command is recorded with its NUL");
  ft_finish(&e);
}

/* Slowloris: one byte per 100 ms never makes a whole line, so the idle
 * timeout (1 s) still closes the session; a normal client is served. */
Test(fake_hostile, slowloris_meets_the_idle_timeout) {
  ft_env e;
  ft_start(&e, "name: plain\nidle_timeout: 1s\n");
  int fd = ft_connect(e.srv[0]);
  cr_assert_geq(fd, 0);
  FT_EXPECT(fd, NULL, "220");
  double t0 = ft_now(), closed = -1;
  for (int i = 0; i < 40 && closed < 0; i++) {
    send(fd, i < 5 ? &"NOOP "[i] : "x", 1, MSG_NOSIGNAL);
    if (i == 5)
      cr_assert_lt(ft_normal_session_ms(e.srv[0]), PROMPT_MS);
    char c;
    if (ft_read_some(fd, &c, 1, 100) != -ETIMEDOUT)
      closed = ft_now() - t0;
  }
  cr_assert(closed > 0.9 && closed < 2.0,
            "closed by the idle timeout after %.2f s (-1: never in 4 s)",
            closed);
  close(fd);
  ft_join(&e);
  detour_fake_conn c;
  cr_assert_eq(detour_fake_server_conn(e.srv[0], 0, &c), 0);
  cr_assert_eq(c.closed_by, DETOUR_FAKE_BY_IDLE);
  ft_finish(&e);
}

/* Thousands of connect + RST: every session is closed (no descriptor
 * left behind) and normal clients are served throughout. */
Test(fake_hostile, connect_and_reset_storm) {
  ft_env e;
  ft_start(&e, "name: plain\nrecord: off\n");
  int base = ft_fd_count();
  enum { STORM = 3000 };
  struct linger lin = {1, 0};
  double worst = 0;
  for (int i = 0; i < STORM; i++) {
    int fd = ft_connect(e.srv[0]);
    cr_assert_geq(fd, 0, "connect %d: %d", i, fd);
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lin, sizeof lin);
    close(fd); /* RST */
    if (i % 500 == 499) {
      double ms = ft_normal_session_ms(e.srv[0]);
      worst = ms > worst ? ms : worst;
    }
  }
  cr_assert_lt(worst, PROMPT_MS, "normal sessions during the storm: %.0f ms",
               worst);
  int now = ft_fd_count();
  for (int i = 0; i < 50 && now > base; i++) {
    usleep(100000);
    now = ft_fd_count();
  }
  cr_assert_leq(now, base, "descriptors back to %d (now %d)", base, now);
  ft_join(&e);
  detour_fake_stats st;
  detour_fake_server_stats(e.srv[0], &st);
  cr_assert_geq(st.accepted + st.accept_errors, STORM, "%llu accepted",
                (unsigned long long)st.accepted);
  ft_finish(&e);
}

/* DATA that never ends: at most max_body kept (the limit recorded once),
 * everything read, and the idle timeout ends the session. */
Test(fake_hostile, data_without_end) {
  ft_env e;
  ft_start(&e, "name: plain\nidle_timeout: 1s\nmax_body: 65536\n");
  int fd = ft_connect(e.srv[0]);
  cr_assert_geq(fd, 0);
  FT_EXPECT(fd, NULL, "220");
  FT_EXPECT(fd, "MAIL FROM:<a@x.test>", "250");
  FT_EXPECT(fd, "RCPT TO:<b@x.test>", "250");
  FT_EXPECT(fd, "DATA", "354");
  size_t len;
  char *lines = repeat("a line of a message that never ends\r\n", 30000, &len);
  send_n(fd, lines, len);
  free(lines);
  cr_assert_lt(ft_normal_session_ms(e.srv[0]), PROMPT_MS);
  cr_assert_neq(ft_wait_close(fd, 3000), -ETIMEDOUT, "closed when idle");
  close(fd);
  ft_join(&e);
  detour_fake_server *s = e.srv[0];
  cr_assert_eq(ft_count_data(s, DETOUR_FAKE_EV_LIMIT, "max_body:"), 1);
  detour_fake_conn c;
  detour_fake_server_conn(s, 0, &c);
  cr_assert_eq(c.closed_by, DETOUR_FAKE_BY_IDLE);
  cr_assert_geq(c.bytes_in, len, "the whole body was read (and dropped)");
  ft_finish(&e);
}

/* A client that pipelines without ever reading replies: past max_output
 * queued, the server stops reading, so neither what it read nor its
 * memory grows with what the client sends. */
Test(fake_hostile, client_that_never_reads) {
  ft_env e;
  size_t len;
  char *noops = repeat("NOOP\r\n", ((size_t)64 << 20) / 6, &len);
  ft_start(&e, "name: plain\nrecord: summary\n");
  long rss0 = ft_status_kb("VmRSS");
  int fd = ft_connect(e.srv[0]);
  cr_assert_geq(fd, 0);
  FT_EXPECT(fd, NULL, "220");
  int small = 4096; /* keep the kernel's share small */
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  bg_sender b;
  bg_start(&b, fd, noops, len);
  size_t sent = wait_paused(&e, &b);
  cr_assert_lt(sent, len, "the client is held back (sent %zu)", sent);
  double ms = ft_normal_session_ms(e.srv[0]);
  long rss1 = ft_status_kb("VmRSS");
  bg_stop(&b);
  close(fd);
  free(noops);
  cr_assert_lt(ms, PROMPT_MS, "a normal client meanwhile: %.0f ms", ms);
  if (RSS_MEANINGFUL)
    cr_assert_lt(rss1 - rss0, 48 * 1024, "RSS grew %ld kB", rss1 - rss0);
  ft_join(&e);
  detour_fake_stats st;
  detour_fake_server_stats(e.srv[0], &st);
  cr_assert_geq(st.paused, 1, "reading paused");
  cr_assert_geq(st.limits_hit, 1, "max_output recorded");
  cr_assert_lt(st.bytes_in, (uint64_t)16 << 20, "read only %llu of %zu bytes",
               (unsigned long long)st.bytes_in, len);
  ft_finish(&e);
}

/* After the final dot, while the reply is delayed, a flood is not buffered
 * beyond max_input (the cap used to be skipped in that state). */
Test(fake_hostile, input_capped_after_the_final_dot) {
  ft_env e;
  size_t len = (size_t)32 << 20;
  char *junk = malloc(len);
  cr_assert_not_null(junk);
  memset(junk, 'j', len);
  ft_start(&e, "name: plain\nrecord: summary\neod: { delay: 30s }\n");
  long rss0 = ft_status_kb("VmRSS");
  int fd = ft_connect(e.srv[0]);
  cr_assert_geq(fd, 0);
  FT_EXPECT(fd, NULL, "220");
  FT_EXPECT(fd, "MAIL FROM:<a@x.test>", "250");
  FT_EXPECT(fd, "RCPT TO:<b@x.test>", "250");
  FT_EXPECT(fd, "DATA", "354");
  ft_send(fd, "Subject: x\r\n\r\nbody\r\n.\r\n");
  bg_sender b;
  bg_start(&b, fd, junk, len);
  size_t sent = wait_paused(&e, &b);
  cr_assert_lt(sent, len, "the client is held back (sent %zu)", sent);
  long rss1 = ft_status_kb("VmRSS");
  bg_stop(&b);
  close(fd);
  free(junk);
  if (RSS_MEANINGFUL)
    cr_assert_lt(rss1 - rss0, 16 * 1024, "RSS grew %ld kB", rss1 - rss0);
  ft_join(&e);
  detour_fake_stats st;
  detour_fake_server_stats(e.srv[0], &st);
  cr_assert_lt(st.bytes_in, (uint64_t)4 << 20, "read %llu bytes of %zu",
               (unsigned long long)st.bytes_in, len);
  cr_assert_geq(st.paused, 1);
  ft_finish(&e);
}

/* More recipients than max_rcpts: 452 4.5.3, recorded; the message keeps
 * the accepted ones. */
Test(fake_hostile, too_many_recipients) {
  ft_env e;
  ft_start(&e, "name: plain\nlimits: { max_rcpts: 3 }\n");
  int fd = ft_connect(e.srv[0]);
  cr_assert_geq(fd, 0);
  FT_EXPECT(fd, NULL, "220");
  FT_EXPECT(fd, "MAIL FROM:<a@x.test>", "250");
  for (int i = 0; i < 3; i++)
    FT_EXPECT(fd, "RCPT TO:<b@x.test>", "250");
  FT_EXPECT(fd, "RCPT TO:<c@x.test>", "452 4.5.3 Too many recipients");
  FT_EXPECT(fd, "DATA", "354");
  ft_send(fd, "hi\r\n.\r\n");
  FT_EXPECT(fd, NULL, "250");
  close(fd);
  ft_join(&e);
  detour_fake_message m;
  cr_assert_eq(detour_fake_server_message(e.srv[0], 0, &m), 0);
  cr_assert_eq(m.nrcpts, 3);
  cr_assert_eq(ft_count_data(e.srv[0], DETOUR_FAKE_EV_LIMIT, "max_rcpts:"), 1);
  ft_finish(&e);
}

/* A body over max_body is cut there and marked truncated, in the record
 * and its JSON. */
Test(fake_hostile, body_over_max_body_is_marked_truncated) {
  ft_env e;
  ft_start(&e, "name: plain\nmax_body: 10\n");
  int fd = ft_connect(e.srv[0]);
  cr_assert_geq(fd, 0);
  FT_EXPECT(fd, NULL, "220");
  FT_EXPECT(fd, "MAIL FROM:<a@x.test>", "250");
  FT_EXPECT(fd, "RCPT TO:<b@x.test>", "250");
  FT_EXPECT(fd, "DATA", "354");
  ft_send(fd, "0123456789abcdef\r\n.\r\n");
  FT_EXPECT(fd, NULL, "250");
  close(fd);
  ft_join(&e);
  detour_fake_message m;
  cr_assert_eq(detour_fake_server_message(e.srv[0], 0, &m), 0);
  cr_assert(m.complete && m.truncated);
  cr_assert_eq(m.body_len, 10);
  cr_assert_str_eq(m.body, "0123456789");
  char *json = NULL;
  size_t jl = 0;
  FILE *f = open_memstream(&json, &jl);
  detour_fake_server_write_jsonl(e.srv[0], f);
  fclose(f);
  cr_assert(strstr(json, "\"truncated\":true"), "%s", json);
  cr_assert(strstr(json, "\"event\":\"limit\""), "%s", json);
  free(json);
  ft_finish(&e);
}

/* Over max_sessions: 421 4.7.0 and close; the others go on. */
Test(fake_hostile, too_many_sessions) {
  ft_env e;
  ft_start(&e, "name: plain\nlimits: { max_sessions: 2 }\n");
  int a = ft_connect(e.srv[0]), b = ft_connect(e.srv[0]);
  FT_EXPECT(a, NULL, "220");
  FT_EXPECT(b, NULL, "220");
  int c = ft_connect(e.srv[0]);
  FT_EXPECT(c, NULL, "421 4.7.0");
  cr_assert_eq(ft_wait_close(c, 2000), 0, "closed after the 421");
  close(c);
  FT_EXPECT(a, "NOOP", "250");
  close(a);
  close(b);
  usleep(100000);
  int d = ft_connect(e.srv[0]);
  FT_EXPECT(d, NULL, "220");
  close(d);
  ft_join(&e);
  cr_assert_eq(ft_count_data(e.srv[0], DETOUR_FAKE_EV_LIMIT, "max_sessions:"),
               1);
  ft_finish(&e);
}

/* The SMTP smuggling pattern: LF.LF does not end the message (only
 * CRLF.CRLF does); the client is recorded with a finding. */
Test(fake_hostile, bare_lf_dot_is_not_the_end) {
  ft_env e;
  ft_start(&e, "name: plain\n");
  int fd = ft_connect(e.srv[0]);
  cr_assert_geq(fd, 0);
  FT_EXPECT(fd, NULL, "220");
  FT_EXPECT(fd, "MAIL FROM:<a@x.test>", "250");
  FT_EXPECT(fd, "RCPT TO:<b@x.test>", "250");
  FT_EXPECT(fd, "DATA", "354");
  ft_send(fd, "body\n.\nMAIL FROM:<evil@x.test>\r\n");
  char buf[256];
  cr_assert_eq(ft_read_some(fd, buf, sizeof buf, 500), -ETIMEDOUT,
               "no reply: LF.LF is not the end of data");
  ft_send(fd, "body\r\n.\nmore\r\n.\r\n");
  FT_EXPECT(fd, NULL, "250");
  close(fd);
  ft_join(&e);
  detour_fake_message m;
  cr_assert_eq(detour_fake_server_message(e.srv[0], 0, &m), 0);
  cr_assert_str_eq(m.body,
                   "body\n.\nMAIL FROM:<evil@x.test>\r\nbody\r\n.\nmore\r\n");
  cr_assert_eq(ft_count_data(e.srv[0], DETOUR_FAKE_EV_FINDING, "bare LF dot"),
               1, "one finding per message");
  detour_fake_stats st;
  detour_fake_server_stats(e.srv[0], &st);
  cr_assert_eq(st.findings, 1);
  ft_finish(&e);
}

/* max_record_events: the record stops growing, says so once, and the
 * counters go on. */
Test(fake_hostile, record_limit) {
  ft_env e;
  ft_start(&e, "name: plain\nlimits: { max_record_events: 20 }\n");
  int fd = ft_connect(e.srv[0]);
  cr_assert_geq(fd, 0);
  FT_EXPECT(fd, NULL, "220");
  for (int i = 0; i < 30; i++)
    FT_EXPECT(fd, "NOOP", "250");
  close(fd);
  ft_join(&e);
  detour_fake_server *s = e.srv[0];
  cr_assert_eq(detour_fake_server_event_count(s), 21, "20 and the LIMIT");
  cr_assert_eq(ft_count_data(s, DETOUR_FAKE_EV_LIMIT, "max_record_events"), 1);
  detour_fake_stats st;
  detour_fake_server_stats(s, &st);
  cr_assert_eq(st.commands, 30);
  cr_assert_gt(st.not_kept, 0);
  ft_finish(&e);
}

/* The limits from YAML: each key, defaults for the rest, and errors that
 * name where. */
Test(fake_hostile, limits_from_yaml) {
  static const char ok[] = "name: l\nmax_body: 77\nlimits: { max_line: 100, "
                           "max_rcpts: 3, max_output: 4096 }\n";
  char err[256] = "";
  size_t n = 0;
  detour_fake_script **v =
      detour_fake_load_string(ok, strlen(ok), "l.yaml", &n, err, sizeof err);
  cr_assert_not_null(v, "%s", err);
  detour_fake_limits l, d;
  detour_fake_script_limits(v[0], &l);
  detour_fake_limits_init(&d);
  cr_assert_eq(l.max_line, 100);
  cr_assert_eq(l.max_rcpts, 3);
  cr_assert_eq(l.max_output, 4096);
  cr_assert_eq(l.max_body, 77, "the top-level max_body is kept");
  cr_assert_eq(l.max_sessions, d.max_sessions);
  cr_assert_eq(l.max_input, d.max_input);
  cr_assert_eq(d.max_line, 4096);
  cr_assert_eq(d.max_rcpts, 1000);
  detour_fake_scripts_free(v, n);
  static const struct {
    const char *yaml, *want;
  } bad[] = {
      {"name: l\nlimits: { max_lines: 5 }\n", "l.yaml:2:11: unknown limit"},
      {"name: l\nlimits: { max_line: 0 }\n",
       "l.yaml:2:21: expected a positive"},
      {"name: l\nlimits: { max_line: -1 }\n", "l.yaml:2:21: expected"},
      {"name: l\nlimits: 5\n", "l.yaml:2:9: expected a mapping of limits"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    err[0] = '\0';
    v = detour_fake_load_string(bad[i].yaml, strlen(bad[i].yaml), "l.yaml", &n,
                                err, sizeof err);
    cr_assert_null(v, "%s loads", bad[i].yaml);
    cr_assert(strncmp(err, bad[i].want, strlen(bad[i].want)) == 0,
              "%s: got '%s', want '%s...'", bad[i].yaml, err, bad[i].want);
  }
}

/*
 * test_fake_hostile.c - the fake servers against clients that abuse them:
 * deep pipelining, floods of empty lines, commands queued during a delay.
 * A buggy device does all of these; the server must answer every command
 * in order, stay up, and keep serving the next client.
 */
#include "test_fake_util.h"

typedef struct {
  int fd;
  char *data;
  size_t len;
} ft_sender;

static void *send_all(void *arg) {
  ft_sender *s = arg;
  size_t off = 0;
  while (off < s->len) {
    ssize_t n = send(s->fd, s->data + off, s->len - off, MSG_NOSIGNAL);
    if (n <= 0)
      break;
    off += (size_t)n;
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

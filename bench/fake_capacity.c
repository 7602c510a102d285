/*
 * fake_capacity.c - load generator for the fake-server capacity bench: many
 * concurrent SMTP sessions against one address (a `detour serve` or
 * Postfix's smtp-sink), reporting sessions/s and messages/s, or holding N
 * sessions open at once to show the server can.
 *
 *   fake_capacity --target 127.0.0.1:2525 [--sessions 20000]
 *                 [--concurrency 200] [--messages 0] [--hold 0]
 *                 [--timeout 120]
 *
 * A session: connect, greeting, EHLO, then --messages times MAIL, RCPT,
 * DATA, a small body, ".", then QUIT, answered one command at a time (no
 * pipelining, like smtp-source without -P). --hold N opens N sessions,
 * waits until every one is greeted, reports, then QUITs them all. Output is
 * one line of key=value pairs. Loopback only; everything is bounded by
 * --timeout.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <uv.h>

typedef enum { GREETING, EHLO, MAIL, RCPT, DATA, BODY, QUIT, DONE } step;

typedef struct {
  struct sockaddr_storage target;
  long sessions, concurrency, messages, hold, timeout_s;
} opts;

typedef struct session {
  uv_tcp_t tcp;
  uv_connect_t conn;
  struct bench *b;
  step st;
  long msgs_left;
  char line[1024];
  size_t len;
  bool failed, parked;
} session;

typedef struct bench {
  uv_loop_t *loop;
  opts o;
  long started, finished, failed, messages, greeted, open;
  uint64_t t0;
  uv_timer_t deadline;
  session **parked; /* --hold: greeted sessions waiting for QUIT */
  long nparked;
  bool released, timed_out;
} bench;

static const char BODY_TEXT[] =
    "Subject: capacity\r\n\r\nThe quick brown fox jumps over the lazy dog.\r\n"
    ".\r\n";

static void start_session(bench *b);

static void on_closed(uv_handle_t *h) {
  session *s = h->data;
  bench *b = s->b;
  b->open--;
  b->finished++;
  if (s->failed)
    b->failed++;
  free(s);
  if (!b->o.hold && b->started < b->o.sessions && !b->timed_out)
    start_session(b);
  if (b->open == 0 && (b->started >= b->o.sessions || b->timed_out) &&
      !uv_is_closing((uv_handle_t *)&b->deadline))
    uv_close((uv_handle_t *)&b->deadline, NULL);
}

static void end_session(session *s, bool failed) {
  if (uv_is_closing((uv_handle_t *)&s->tcp))
    return;
  s->failed = failed;
  uv_close((uv_handle_t *)&s->tcp, on_closed);
}

static void on_written(uv_write_t *w, int status) { free(w); }

static void say(session *s, const char *text) {
  size_t n = strlen(text);
  uv_write_t *w = malloc(sizeof *w + n);
  memcpy((char *)(w + 1), text, n);
  uv_buf_t buf = uv_buf_init((char *)(w + 1), (unsigned)n);
  if (uv_write(w, (uv_stream_t *)&s->tcp, &buf, 1, on_written) != 0) {
    free(w);
    end_session(s, true);
  }
}

static void release_all(bench *b) {
  b->released = true;
  for (long i = 0; i < b->nparked; i++) {
    b->parked[i]->st = QUIT;
    say(b->parked[i], "QUIT\r\n");
  }
  b->nparked = 0;
}

/* The next command after a complete reply with code `code`. */
static void on_reply(session *s, int code) {
  bench *b = s->b;
  bool ok = code / 100 == 2 || (s->st == DATA && code == 354);
  if (!ok && s->st != QUIT) {
    end_session(s, true);
    return;
  }
  switch (s->st) {
  case GREETING:
    b->greeted++;
    if (b->o.hold && !b->released) {
      b->parked[b->nparked++] = s;
      if (b->greeted == b->o.hold) {
        double secs = (double)(uv_hrtime() - b->t0) / 1e9;
        printf("held=%ld open_at_once=%ld secs_to_open=%.3f\n", b->greeted,
               b->open, secs);
        fflush(stdout);
        release_all(b);
      }
      return;
    }
    s->st = EHLO;
    say(s, "EHLO bench.test\r\n");
    break;
  case EHLO:
  case BODY:
    if (s->st == BODY)
      b->messages++;
    if (s->msgs_left-- > 0) {
      s->st = MAIL;
      say(s, "MAIL FROM:<bench@client.test>\r\n");
    } else {
      s->st = QUIT;
      say(s, "QUIT\r\n");
    }
    break;
  case MAIL:
    s->st = RCPT;
    say(s, "RCPT TO:<sink@server.test>\r\n");
    break;
  case RCPT:
    s->st = DATA;
    say(s, "DATA\r\n");
    break;
  case DATA:
    s->st = BODY;
    say(s, BODY_TEXT);
    break;
  case QUIT:
  case DONE:
    s->st = DONE;
    end_session(s, false);
    break;
  }
}

/* Split into lines; a line "ddd " (or just "ddd") ends a reply. */
static void on_bytes(session *s, const char *p, size_t n) {
  for (size_t i = 0; i < n && !uv_is_closing((uv_handle_t *)&s->tcp); i++) {
    if (s->len < sizeof s->line - 1)
      s->line[s->len++] = p[i];
    if (p[i] != '\n')
      continue;
    s->line[s->len] = '\0';
    bool last = s->len >= 4 && (s->line[3] == ' ' || s->line[3] == '\r');
    int code = atoi(s->line);
    s->len = 0;
    if (last)
      on_reply(s, code);
  }
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  static char scratch[16384];
  *buf = uv_buf_init(scratch, sizeof scratch);
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf) {
  session *s = st->data;
  if (n > 0)
    on_bytes(s, buf->base, (size_t)n);
  else if (n < 0)
    end_session(s, s->st != DONE);
}

static void on_connect(uv_connect_t *c, int status) {
  session *s = c->data;
  if (status < 0) {
    end_session(s, true);
    return;
  }
  uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read);
}

static void start_session(bench *b) {
  session *s = calloc(1, sizeof *s);
  s->b = b;
  s->msgs_left = b->o.messages;
  s->tcp.data = s->conn.data = s;
  uv_tcp_init(b->loop, &s->tcp);
  b->started++;
  b->open++;
  if (uv_tcp_connect(&s->conn, &s->tcp, (struct sockaddr *)&b->o.target,
                     on_connect) != 0)
    end_session(s, true);
}

/* Past the deadline every session is cut: nothing may hang the bench. */
static void cut(uv_handle_t *h, void *arg) {
  bench *b = arg;
  if (uv_is_closing(h))
    return;
  if (h == (uv_handle_t *)&b->deadline)
    uv_close(h, NULL);
  else
    end_session(h->data, true);
}

static void on_deadline(uv_timer_t *t) {
  bench *b = t->data;
  b->timed_out = true;
  fprintf(stderr, "fake_capacity: timeout, stopping\n");
  uv_walk(b->loop, cut, b);
}

static int parse(int argc, char **argv, opts *o) {
  const char *target = NULL;
  *o = (opts){.sessions = 20000, .concurrency = 200, .timeout_s = 120};
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *k = argv[i], *v = argv[i + 1];
    if (strcmp(k, "--target") == 0)
      target = v;
    else if (strcmp(k, "--sessions") == 0)
      o->sessions = atol(v);
    else if (strcmp(k, "--concurrency") == 0)
      o->concurrency = atol(v);
    else if (strcmp(k, "--messages") == 0)
      o->messages = atol(v);
    else if (strcmp(k, "--hold") == 0)
      o->hold = atol(v);
    else if (strcmp(k, "--timeout") == 0)
      o->timeout_s = atol(v);
    else
      return -1;
  }
  char host[64];
  const char *colon = target ? strrchr(target, ':') : NULL;
  if (!colon || (size_t)(colon - target) >= sizeof host)
    return -1;
  memcpy(host, target, (size_t)(colon - target));
  host[colon - target] = '\0';
  if (uv_ip4_addr(host, atoi(colon + 1), (struct sockaddr_in *)&o->target))
    return -1;
  /* The bench only loads loopback. */
  if ((ntohl(((struct sockaddr_in *)&o->target)->sin_addr.s_addr) >> 24) != 127)
    return -1;
  return o->sessions > 0 && o->concurrency > 0 && o->timeout_s > 0 ? 0 : -1;
}

int main(int argc, char **argv) {
  bench b;
  memset(&b, 0, sizeof b);
  if (parse(argc, argv, &b.o) != 0) {
    fprintf(stderr, "usage: fake_capacity --target 127.x.x.x:PORT "
                    "[--sessions N] [--concurrency C] [--messages M] "
                    "[--hold N] [--timeout S]\n");
    return 64;
  }
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  b.loop = uv_default_loop();
  if (b.o.hold) {
    b.o.sessions = b.o.hold;
    b.o.concurrency = b.o.hold;
    b.parked = calloc((size_t)b.o.hold, sizeof *b.parked);
  }
  uv_timer_init(b.loop, &b.deadline);
  b.deadline.data = &b;
  uv_timer_start(&b.deadline, on_deadline, (uint64_t)b.o.timeout_s * 1000, 0);
  b.t0 = uv_hrtime();
  for (long i = 0; i < b.o.concurrency && i < b.o.sessions; i++)
    start_session(&b);
  uv_run(b.loop, UV_RUN_DEFAULT);
  double secs = (double)(uv_hrtime() - b.t0) / 1e9;
  long ok = b.finished - b.failed;
  printf("sessions=%ld ok=%ld failed=%ld messages=%ld secs=%.3f "
         "sessions_per_s=%.0f messages_per_s=%.0f\n",
         b.finished, ok, b.failed, b.messages, secs, ok / secs,
         b.messages / secs);
  free(b.parked);
  uv_loop_close(b.loop);
  return b.failed || b.timed_out ? 1 : 0;
}

/*
 * engine-example.c - using libdetour's engine directly, without the libuv
 * driver: a complete program that a library user can start from. CTest
 * builds and runs it (test `docs_engine_example`), so it stays true.
 *
 * The engine is sans-I/O: you hand it events (connected, bytes received,
 * bytes written, a timer) with the current time, and it hands back
 * actions (connect, send, close, log row, recipient outcome, done). Here a
 * scripted "network" answers the engine: the primary server refuses the
 * connection, the backup accepts the message.
 *
 * Servers are named by their index in the list you configured (the order
 * of cfg.servers), whatever their priority: detour_engine_server() and
 * detour_engine_server_label() turn that index back into the server.
 *
 * The body comes from a detour_body_source: the engine reads it in blocks
 * (cfg.block_size) as it sends, and again from the start on a retry, so
 * the message never has to be in memory; a file read with pread() would
 * do the same.
 */
#include <stdio.h>
#include <string.h>

#include "detour/detour.h"

static const char message[] = "From: me@example.com\n"
                              "To: you@example.net\n"
                              "Subject: hello\n"
                              "\n"
                              ". a line that starts with a dot\n";

static int64_t read_message(void *arg, uint64_t off, char *buf, size_t len) {
  (void)arg;
  size_t size = sizeof message - 1;
  if (off >= size)
    return 0;
  size_t n = size - (size_t)off < len ? size - (size_t)off : len;
  memcpy(buf, message + off, n);
  return (int64_t)n;
}

/* What our pretend server answers to what the engine sends. */
static const char *server_reply(const char *data, size_t len) {
  if (len >= 4 && memcmp(data, "EHLO", 4) == 0)
    return "250 backup.example.net\r\n";
  if (len >= 4 && memcmp(data, "MAIL", 4) == 0)
    return "250 2.1.0 ok\r\n";
  if (len >= 4 && memcmp(data, "RCPT", 4) == 0)
    return "250 2.1.5 ok\r\n";
  if (len >= 4 && memcmp(data, "DATA", 4) == 0)
    return "354 go ahead\r\n";
  if (len >= 4 && memcmp(data, "QUIT", 4) == 0)
    return "221 bye\r\n";
  if (len >= 3 && memcmp(data + len - 3, ".\r\n", 3) == 0)
    return "250 2.0.0 queued\r\n"; /* the block with the final "." */
  return NULL;                     /* a body block: nothing to say yet */
}

int main(void) {
  detour_config cfg;
  detour_config_init(&cfg);
  /* Configured index 0 is the backup, 1 the primary: priority decides
   * the order of trying, the index names the server in actions. */
  detour_config_add_server(&cfg, "192.0.2.20", 25, 2);
  detour_config_add_server(&cfg, "192.0.2.10", 25, 1);

  int err = 0;
  detour_engine *e = detour_engine_new(&cfg, &err);
  if (!e) {
    fprintf(stderr, "engine: %s\n", detour_strerror(err));
    return 1;
  }
  const char *rcpts[] = {"you@example.net"};
  detour_body_source body = {read_message, NULL};
  detour_message m = {
      .from = "me@example.com", .rcpts = rcpts, .nrcpts = 1, .source = &body};
  detour_ms now = 1000000; /* any clock in ms; the engine never reads one */
  if (detour_engine_submit(e, &m, now) < 0)
    return 1;

  int delivered_via = -2;
  bool done = false;
  for (int steps = 0; !done && steps < 100; steps++) {
    detour_action a;
    if (!detour_engine_next_action(e, &a))
      break; /* a real driver would wait for I/O or the next deadline */
    /* An action's pointers live until the next call into the engine:
     * copy what you need before answering. */
    char reply[128] = "";
    switch (a.type) {
    case DETOUR_ACT_CONNECT:
      printf("connect #%u to %s (configured index %zu)\n", a.conn,
             detour_engine_server_label(e, a.u.connect.server),
             a.u.connect.server);
      if (a.u.connect.server == 1) { /* the primary: refused */
        detour_engine_on_connect_failed(e, a.conn, now,
                                        DETOUR_COND_CONNECT_REFUSED, "");
      } else {
        detour_engine_on_connected(e, a.conn, now, "192.0.2.20:25");
        detour_engine_on_data(e, a.conn, now, "220 backup ESMTP\r\n", 18);
      }
      break;
    case DETOUR_ACT_SEND: {
      const char *r = server_reply(a.u.send.data, a.u.send.len);
      if (r)
        snprintf(reply, sizeof reply, "%s", r);
      unsigned conn = a.conn;
      detour_engine_on_sent(e, conn, now); /* all of it was written */
      if (reply[0])
        detour_engine_on_data(e, conn, now, reply, strlen(reply));
      break;
    }
    case DETOUR_ACT_LOG: {
      char line[512];
      detour_log_format_table(&a.u.log, line, sizeof line);
      printf("log  %s\n", line);
      break;
    }
    case DETOUR_ACT_RCPT_RESULT:
      delivered_via = a.u.rcpt.server;
      printf("%s: %s via %s\n", a.u.rcpt.recipient,
             detour_rcpt_outcome_name(a.u.rcpt.outcome),
             a.u.rcpt.server >= 0
                 ? detour_engine_server_label(e, (size_t)a.u.rcpt.server)
                 : "nowhere");
      break;
    case DETOUR_ACT_DONE:
      printf("message %zu: %s\n", a.u.done.message,
             detour_done_status_name(a.u.done.status));
      done = true;
      break;
    case DETOUR_ACT_CLOSE:
    case DETOUR_ACT_WARN:
    case DETOUR_ACT_ERROR:
    case DETOUR_ACT_TLS_START: /* only for servers with TLS configured */
      break;
    }
  }
  detour_engine_free(e);
  /* The backup, configured index 0, took the message. */
  return done && delivered_via == 0 ? 0 : 1;
}

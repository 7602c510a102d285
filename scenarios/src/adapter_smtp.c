/*
 * adapter_smtp.c - hands one message to a client that takes mail over SMTP
 * (a manifest's `submit: { smtp: ADDR }`, e.g. Postfix's own smtpd on a
 * private port): connect, EHLO, MAIL, RCPT per recipient (with optional
 * parameters such as NOTIFY=NEVER), DATA, the dot-stuffed body, QUIT.
 * Blocking and bounded (socket timeouts). TCP_NODELAY and whole writes:
 * a command written while the previous segment waits for a delayed ACK
 * would wait too (tens of ms per command), and that time counts in
 * `detour bench`'s latency.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "adapter.h"

#define SMTP_IO_LIMIT_S 10

int detour__scn_smtp_connect(const char *host, uint16_t port) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
  if (inet_pton(AF_INET, host, &a.sin_addr) != 1)
    return -1;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct timeval tv = {SMTP_IO_LIMIT_S, 0};
  int one = 1;
  if (fd < 0)
    return -1;
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* One SMTP reply (multi-line: up to the "DDD " line); its code or -1. */
static int read_reply(int fd, char *line, size_t len) {
  size_t n = 0;
  for (;;) {
    char ch;
    if (recv(fd, &ch, 1, 0) != 1)
      return -1;
    if (ch != '\n') {
      if (n + 1 < len)
        line[n++] = ch;
      continue;
    }
    line[n] = '\0';
    if (n >= 4 && line[3] == ' ')
      return atoi(line);
    if (n < 4 || line[3] != '-')
      return -1;
    n = 0;
  }
}

static bool send_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
    if (k <= 0)
      return false;
    p += k;
    n -= (size_t)k;
  }
  return true;
}

/* Send a command (NULL: none, read the greeting) and want a reply of
 * class want (2 or 3). */
static bool command(int fd, const char *who, const char *cmd, int want,
                    char *err, size_t errlen) {
  char line[1300]; /* a command (up to 1200) and CRLF, then the reply */
  int n = cmd ? snprintf(line, sizeof line, "%s\r\n", cmd) : 0;
  if (cmd &&
      (n < 0 || (size_t)n >= sizeof line || !send_all(fd, line, (size_t)n))) {
    snprintf(err, errlen, "%s: cannot send '%s'", who, cmd);
    return false;
  }
  int code = read_reply(fd, line, sizeof line);
  if (code / 100 == want)
    return true;
  snprintf(err, errlen, "%s refused '%s': %s", who, cmd ? cmd : "(greeting)",
           code < 0 ? "no reply" : line);
  return false;
}

/* The body with CRLF line ends, dot-stuffed, then the final ".", sent in
 * chunks of up to sizeof buf (room for the 3 bytes one input byte may
 * become, and for the final 5). */
static bool send_body(int fd, const detour_adapter_message *m) {
  char buf[4096];
  size_t n = 0;
  bool bol = true;
  for (size_t i = 0; i < m->body_len; i++) {
    char ch = m->body[i];
    if (n + 3 > sizeof buf) {
      if (!send_all(fd, buf, n))
        return false;
      n = 0;
    }
    if (bol && ch == '.')
      buf[n++] = '.';
    if (ch == '\n' && (i == 0 || m->body[i - 1] != '\r'))
      buf[n++] = '\r';
    buf[n++] = ch;
    bol = ch == '\n';
  }
  if (n + 5 > sizeof buf) {
    if (!send_all(fd, buf, n))
      return false;
    n = 0;
  }
  memcpy(buf + n, bol ? ".\r\n" : "\r\n.\r\n", bol ? 3 : 5);
  return send_all(fd, buf, n + (bol ? 3 : 5));
}

int detour__scn_smtp_submit(const char *host, uint16_t port,
                            const char *rcpt_params,
                            const detour_adapter_message *m, char *err,
                            size_t errlen) {
  char who[96];
  snprintf(who, sizeof who, "the client's SMTP listener %s:%u", host,
           (unsigned)port);
  int fd = detour__scn_smtp_connect(host, port);
  if (fd < 0) {
    snprintf(err, errlen, "cannot connect to %s", who);
    return -1;
  }
  char cmd[1200];
  bool ok = command(fd, who, NULL, 2, err, errlen) &&
            command(fd, who, "EHLO detour-bench.test", 2, err, errlen);
  snprintf(cmd, sizeof cmd, "MAIL FROM:<%s>", m->from);
  ok = ok && command(fd, who, cmd, 2, err, errlen);
  for (size_t i = 0; ok && i < m->nrcpts; i++) {
    snprintf(cmd, sizeof cmd, "RCPT TO:<%s>%s%s", m->rcpts[i],
             rcpt_params && *rcpt_params ? " " : "",
             rcpt_params ? rcpt_params : "");
    ok = command(fd, who, cmd, 2, err, errlen);
  }
  ok = ok && command(fd, who, "DATA", 3, err, errlen);
  if (ok && !send_body(fd, m)) {
    snprintf(err, errlen, "%s: cannot send the message", who);
    ok = false;
  }
  ok = ok && command(fd, who, NULL, 2, err, errlen);
  if (ok) /* the message is queued already */
    command(fd, who, "QUIT", 2, err, errlen);
  close(fd);
  return ok ? 0 : -1;
}

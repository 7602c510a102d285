/*
 * loopback.c - a two-server SMTP exchange on 127.0.0.1 for the pcap tests:
 * the primary greets with 421 (service not available, SWITCH), the client
 * moves to the backup, which accepts the message. Plain blocking sockets
 * and one thread per server, so the capture code is tested without the
 * scenario runner; 5 s socket timeouts keep every step bounded.
 */
#include "fixture.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static int listen_one(uint16_t *port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    return -1;
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 4) != 0 ||
      getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
    close(fd);
    return -1;
  }
  *port = ntohs(a.sin_port);
  return fd;
}

int fixture_net_open(fixture_net *n, char *err, size_t errlen) {
  n->lfd[0] = n->lfd[1] = -1;
  for (int i = 0; i < 2; i++)
    if ((n->lfd[i] = listen_one(&n->port[i])) < 0) {
      snprintf(err, errlen, "listen on 127.0.0.1: %s", strerror(errno));
      fixture_net_close(n);
      return -1;
    }
  return 0;
}

void fixture_net_close(fixture_net *n) {
  for (int i = 0; i < 2; i++)
    if (n->lfd[i] >= 0) {
      close(n->lfd[i]);
      n->lfd[i] = -1;
    }
}

static void timeouts(int fd) {
  struct timeval tv = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

static bool put(int fd, const char *s) {
  size_t n = strlen(s);
  return send(fd, s, n, MSG_NOSIGNAL) == (ssize_t)n;
}

/* One line (CRLF stripped) into buf; false on EOF, error or timeout. */
static bool get_line(int fd, char *buf, size_t len) {
  size_t o = 0;
  for (;;) {
    char c;
    if (recv(fd, &c, 1, 0) != 1)
      return false;
    if (c == '\n')
      break;
    if (c != '\r' && o + 1 < len)
      buf[o++] = c;
  }
  buf[o] = '\0';
  return true;
}

/* ---- servers ------------------------------------------------------------- */

static const char *reply_to(const char *line, bool *data, bool *quit) {
  if (strncmp(line, "EHLO", 4) == 0 || strncmp(line, "HELO", 4) == 0)
    return "250 backup.test\r\n";
  if (strncmp(line, "MAIL", 4) == 0)
    return "250 2.1.0 sender ok\r\n";
  if (strncmp(line, "RCPT", 4) == 0)
    return "250 2.1.5 recipient ok\r\n";
  if (strcmp(line, "DATA") == 0) {
    *data = true;
    return "354 end with <CRLF>.<CRLF>\r\n";
  }
  if (strcmp(line, "QUIT") == 0) {
    *quit = true;
    return "221 2.0.0 bye\r\n";
  }
  return "502 5.5.2 not implemented\r\n";
}

static void backup_session(int fd) {
  char line[1024];
  if (!put(fd, "220 backup.test ESMTP fixture\r\n"))
    return;
  bool data = false, quit = false;
  while (!quit && get_line(fd, line, sizeof line)) {
    if (data) {
      if (strcmp(line, ".") == 0) {
        data = false;
        put(fd, "250 2.0.0 queued as FIXTURE1\r\n");
      }
      continue;
    }
    if (!put(fd, reply_to(line, &data, &quit)))
      return;
  }
}

typedef struct {
  int lfd;
  bool primary;
} server_arg;

static void *serve(void *p) {
  server_arg *a = p;
  int fd = accept(a->lfd, NULL, NULL);
  if (fd < 0)
    return NULL;
  timeouts(fd);
  if (a->primary)
    put(fd, "421 4.3.2 primary.test service not available\r\n");
  else
    backup_session(fd);
  close(fd);
  return NULL;
}

/* ---- client -------------------------------------------------------------- */

static int dial(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    return -1;
  timeouts(fd);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons(port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* Send cmd (unless NULL), read one reply, check its first digit. */
static bool step(int fd, const char *cmd, char want) {
  char line[1024];
  if (cmd && !put(fd, cmd))
    return false;
  return get_line(fd, line, sizeof line) && line[0] == want;
}

static bool transaction(int fd) {
  return step(fd, NULL, '2') && step(fd, "EHLO client.test\r\n", '2') &&
         step(fd, "MAIL FROM:<boss@example.com>\r\n", '2') &&
         step(fd, "RCPT TO:<abc@muratec.co.jp>\r\n", '2') &&
         step(fd, "DATA\r\n", '3') &&
         step(fd, "Subject: pcap fixture\r\n\r\nthrough the backup\r\n.\r\n",
              '2') &&
         step(fd, "QUIT\r\n", '2');
}

static int client(const fixture_net *n, char *err, size_t errlen) {
  int fd = dial(n->port[0]);
  if (fd < 0 || step(fd, NULL, '2')) { /* the primary must refuse: 421 */
    snprintf(err, errlen, "primary on %u did not answer 421", n->port[0]);
    if (fd >= 0)
      close(fd);
    return -1;
  }
  close(fd);
  fd = dial(n->port[1]);
  bool ok = fd >= 0 && transaction(fd);
  if (fd >= 0)
    close(fd);
  if (!ok)
    snprintf(err, errlen, "backup on %u did not accept", n->port[1]);
  return ok ? 0 : -1;
}

int fixture_net_run(fixture_net *n, char *err, size_t errlen) {
  pthread_t th[2];
  server_arg args[2] = {{n->lfd[0], true}, {n->lfd[1], false}};
  for (int i = 0; i < 2; i++)
    if (pthread_create(&th[i], NULL, serve, &args[i]) != 0) {
      snprintf(err, errlen, "pthread_create failed");
      if (i == 1) { /* unblock the first server's accept, then join it */
        int fd = dial(n->port[0]);
        if (fd >= 0)
          close(fd);
        pthread_join(th[0], NULL);
      }
      return -1;
    }
  int rc = client(n, err, errlen);
  /* A server still waiting in accept (client gave up early) gets a
   * connection so its thread ends. */
  for (int i = 0; rc != 0 && i < 2; i++) {
    int fd = dial(n->port[i]);
    if (fd >= 0)
      close(fd);
  }
  for (int i = 0; i < 2; i++)
    pthread_join(th[i], NULL);
  return rc;
}

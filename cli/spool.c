/*
 * spool.c - keep the message of `detour send` once, for every attempt.
 *
 * The whole message is read before the first connection: SIZE= needs its
 * length, BODY=8BITMIME a look at every byte, and an empty or unreadable
 * input must be refused before anything reaches a server. A small message
 * stays in memory; past SPOOL_MEMORY_MAX it moves to a temporary file that
 * is unlinked at once (nothing is left behind, whatever ends the process).
 * The engine then reads the body in blocks (detour_body_source), so peak
 * memory is a few blocks whatever the message size.
 */
#include "spool.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#define READ_CHUNK (64 * 1024)

static int fail(cli_spool *s, const char *who, int code, const char *fmt,
                const char *arg) {
  fprintf(stderr, "%s: ", who);
  fprintf(stderr, fmt, arg);
  fprintf(stderr, "\n");
  cli_spool_free(s);
  return code;
}

/* Write all of buf to fd (a regular file: short writes only on error). */
static int write_all(int fd, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, buf, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return -1;
    buf += n;
    len -= (size_t)n;
  }
  return 0;
}

/* The message outgrew memory: move it to an unlinked temporary file. */
static int move_to_file(cli_spool *s, const char *who) {
  const char *dir = getenv("TMPDIR");
  char path[4096];
  snprintf(path, sizeof path, "%s/detour-send-XXXXXX",
           dir && *dir ? dir : "/tmp");
  s->fd = mkstemp(path);
  if (s->fd < 0)
    return fail(s, who, EX_CANTCREAT,
                "cannot make a temporary file for a large message (%s); "
                "set TMPDIR",
                strerror(errno));
  unlink(path);
  if (write_all(s->fd, s->mem, (size_t)s->size) < 0)
    return fail(s, who, EX_IOERR, "cannot write the temporary file: %s",
                strerror(errno));
  free(s->mem);
  s->mem = NULL;
  s->cap = 0;
  return 0;
}

/* Keep n more bytes. */
static int append(cli_spool *s, const char *buf, size_t n, const char *who) {
  if (s->fd < 0 && s->size + n > SPOOL_MEMORY_MAX) {
    int rc = move_to_file(s, who);
    if (rc)
      return rc;
  }
  if (s->fd >= 0) {
    if (write_all(s->fd, buf, n) < 0)
      return fail(s, who, EX_IOERR, "cannot write the temporary file: %s",
                  strerror(errno));
  } else {
    if (s->size + n > s->cap) {
      size_t cap = s->cap ? s->cap : READ_CHUNK;
      while (cap < s->size + n)
        cap *= 2;
      char *grown = realloc(s->mem, cap);
      if (!grown)
        return fail(s, who, EX_OSERR, "%s", "out of memory");
      s->mem = grown;
      s->cap = cap;
    }
    memcpy(s->mem + s->size, buf, n);
  }
  s->size += n;
  s->ends_in_newline = buf[n - 1] == '\n';
  return 0;
}

int cli_spool_read(cli_spool *s, int fd, const char *who) {
  memset(s, 0, sizeof *s);
  s->fd = -1;
  char *buf = malloc(READ_CHUNK);
  if (!buf)
    return fail(s, who, EX_OSERR, "%s", "out of memory");
  int rc = 0;
  for (;;) {
    /* read(2), not stdio: the first end of file ends the message, so on a
     * terminal one Ctrl-D at the start of a line is enough */
    ssize_t n = read(fd, buf, READ_CHUNK);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      rc = fail(s, who, EX_IOERR,
                "cannot read the message from stdin: %s; nothing was sent",
                strerror(errno));
      break;
    }
    if (n == 0)
      break;
    if (s->size + (uint64_t)n > SPOOL_MESSAGE_MAX) {
      rc = fail(s, who, EX_DATAERR, "%s",
                "the message is larger than 64 MiB: refused, nothing was "
                "sent");
      break;
    }
    if ((rc = append(s, buf, (size_t)n, who)) != 0)
      break;
  }
  free(buf);
  if (rc == 0 && s->size == 0)
    rc = fail(s, who, EX_NOINPUT, "%s",
              "the message on stdin is empty: nothing was sent");
  return rc;
}

static int64_t spool_read_at(void *arg, uint64_t off, char *buf, size_t len) {
  cli_spool *s = arg;
  if (off >= s->size)
    return 0;
  if (len > s->size - off)
    len = (size_t)(s->size - off);
  if (s->fd < 0) {
    memcpy(buf, s->mem + off, len);
    return (int64_t)len;
  }
  for (;;) {
    ssize_t n = pread(s->fd, buf, len, (off_t)off);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) /* the file shrank or failed under us */
      return DETOUR_EIO;
    return (int64_t)n;
  }
}

detour_body_source cli_spool_source(cli_spool *s) {
  detour_body_source src = {spool_read_at, s};
  return src;
}

void cli_spool_free(cli_spool *s) {
  free(s->mem);
  s->mem = NULL;
  if (s->fd >= 0)
    close(s->fd);
  s->fd = -1;
  s->size = 0;
}

/*
 * spool.h - the one copy of a message that `detour send` keeps for every
 * attempt: in memory while small, in an unlinked temporary file beyond
 * SPOOL_MEMORY_MAX, so memory stays bounded whatever the message size.
 * The engine reads it in blocks through a detour_body_source.
 */
#ifndef DETOUR_CLI_SPOOL_H
#define DETOUR_CLI_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "detour/detour.h"

/* Bodies up to this size stay in memory; larger ones go to a file. */
#define SPOOL_MEMORY_MAX ((size_t)1024 * 1024)
/* The largest message accepted (one byte more is refused, nothing sent). */
#define SPOOL_MESSAGE_MAX ((uint64_t)64 * 1024 * 1024)

typedef struct {
  char *mem; /* the body while it is in memory */
  size_t cap;
  int fd;        /* the unlinked temporary file, or -1 */
  uint64_t size; /* bytes held */
  bool ends_in_newline;
} cli_spool;

/* Read fd to its end into s. Returns 0, or an exit code (sysexits.h)
 * after printing why on stderr, prefixed with who: EX_NOINPUT for an empty
 * input, EX_DATAERR for one over SPOOL_MESSAGE_MAX, EX_IOERR for a read
 * error (the message is not sent), EX_CANTCREAT when no temporary file
 * can be made (TMPDIR), EX_OSERR out of memory. s is freed on error. */
int cli_spool_read(cli_spool *s, int fd, const char *who);

/* A source for the engine reading s (which must outlive the send). */
detour_body_source cli_spool_source(cli_spool *s);

void cli_spool_free(cli_spool *s);

#endif /* DETOUR_CLI_SPOOL_H */

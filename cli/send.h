/*
 * send.h - `detour send`: deliver one message from stdin through the
 * failover engine (docs/rules.md) on the libuv driver.
 */
#ifndef DETOUR_CLI_SEND_H
#define DETOUR_CLI_SEND_H

#include <stdbool.h>
#include <stddef.h>

/* argv[0] is "send". Returns the process exit code (sysexits.h): 0
 * delivered to every recipient, 67 some recipient refused for good and
 * none deferred, 75 not delivered (deferred or interrupted), 64 usage, 78
 * configuration, 65 message too large, 74 I/O error on stdin, 73 log file
 * not writable. */
int detour_cli_send(int argc, char **argv);

/* The `detour send --help` text, on stdout. */
void detour_cli_send_usage(void);

/* Read stdin whole (at most 64 MiB) into a malloc'ed *body. 0, or the
 * exit code after printing why. */
int detour_cli_read_stdin(char **body, size_t *len);

/* Deliver body to rcpts as `detour send --config config --from from`
 * would (config NULL: none; "" from: the null sender), with --quiet when
 * asked. Returns the same exit codes as detour_cli_send. */
int detour_cli_deliver(const char *config, const char *from, const char **rcpts,
                       size_t nrcpts, const char *body, size_t len, bool quiet);

#endif /* DETOUR_CLI_SEND_H */

/*
 * send.h - `detour send`: deliver one message from stdin through the
 * failover engine (SPEC R1-R12) on the libuv driver.
 */
#ifndef DETOUR_CLI_SEND_H
#define DETOUR_CLI_SEND_H

/* argv[0] is "send". Returns the process exit code (sysexits.h): 0
 * delivered to every recipient, 67 some recipient refused for good and
 * none deferred, 75 not delivered (deferred or interrupted), 64 usage, 78
 * configuration, 65 message too large, 74 I/O error on stdin, 73 log file
 * not writable. */
int detour_cli_send(int argc, char **argv);

/* The `detour send --help` text, on stdout. */
void detour_cli_send_usage(void);

#endif /* DETOUR_CLI_SEND_H */

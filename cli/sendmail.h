/*
 * sendmail.h - `detour sendmail`, and the binary called as `sendmail`: the
 * command line that cron, PHP's mail() and git send-email use, delivered
 * through the failover engine.
 */
#ifndef DETOUR_CLI_SENDMAIL_H
#define DETOUR_CLI_SENDMAIL_H

/* argv[0] is "sendmail" (either way it was called). Returns the exit code:
 * sendmail's sysexits.h codes (0, 64, 65, 67, 75, 78, ...). */
int detour_cli_sendmail(int argc, char **argv);

#endif /* DETOUR_CLI_SENDMAIL_H */

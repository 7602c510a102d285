/*
 * serve.h - `detour serve`: run scripted fake SMTP servers (libdetour-fake)
 * standalone, to test any SMTP client from outside.
 */
#ifndef DETOUR_CLI_SERVE_H
#define DETOUR_CLI_SERVE_H

/* argv[0] is "serve". Runs until SIGINT or SIGTERM. Returns the process
 * exit code (sysexits.h): 0 after a clean stop, 64 usage, 65 a bad script
 * (file:line:col on stderr), 70 the servers could not start (address in
 * use, ...), 73 the record file cannot be written. */
int detour_cli_serve(int argc, char **argv);

/* The `detour serve --help` text, on stdout. */
void detour_cli_serve_usage(void);

#endif /* DETOUR_CLI_SERVE_H */

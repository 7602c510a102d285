/*
 * certify.h - `detour certify`: certificates and scorecards of SMTP
 * clients (cli/certify.c).
 */
#ifndef DETOUR_CLI_CERTIFY_H
#define DETOUR_CLI_CERTIFY_H

/* argv[0] is "certify". Returns the exit status (0, 1, 77, EX_*). */
int detour_cli_certify(int argc, char **argv);

#endif /* DETOUR_CLI_CERTIFY_H */

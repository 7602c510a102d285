/*
 * opts.h - the one option parser of the `detour` command.
 *
 * Every subcommand (send, serve, run, bench, sendmail, certify) declares
 * its options as a table and reads them with cli_next(), so they all share
 * one set of conventions:
 *   --opt=value and --opt value; -o value, -ovalue; flags cluster (-qv);
 *   -h/--help and --version on every command; "--" ends the options;
 *   one wording for a bad option, then "Try 'detour CMD --help'." (exit
 *   64), with "did you mean '--to'?" when a known option is a near miss.
 * Exit codes shared by every command are below; a command's --help lists
 * the ones it uses (cli_print_exit_codes).
 */
#ifndef DETOUR_CLI_OPTS_H
#define DETOUR_CLI_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* Exit codes (sysexits.h values), the same cause the same code in every
 * command. */
#define CLI_EXIT_OK 0
#define CLI_EXIT_USAGE 64     /* bad option or argument, bad --listen */
#define CLI_EXIT_DATAERR 65   /* bad input data (a message too large) */
#define CLI_EXIT_NOINPUT 66   /* a named input file or path is missing */
#define CLI_EXIT_NOUSER 67    /* a recipient was refused for good */
#define CLI_EXIT_SOFTWARE 70  /* internal error */
#define CLI_EXIT_OSERR 71     /* out of memory, cannot listen, system error */
#define CLI_EXIT_CANTCREAT 73 /* an output file cannot be created */
#define CLI_EXIT_IOERR 74     /* read or write error */
#define CLI_EXIT_TEMPFAIL 75  /* not delivered yet: keep it, try later */
#define CLI_EXIT_CONFIG 78    /* bad configuration or script file */

/* One option. A long name is written without its dashes. */
typedef struct {
  int id;                /* > 0, returned by cli_next() */
  char short_name;       /* 0: none */
  const char *long_name; /* NULL: none */
  const char *value;     /* the value's name in --help ("FILE"); NULL: flag */
} cli_opt;

/* What cli_next() returns besides an option's id. */
enum {
  CLI_END = 0,      /* no more arguments */
  CLI_ARG = -1,     /* a positional argument, in *value */
  CLI_ERROR = -2,   /* an error was printed; exit CLI_EXIT_USAGE */
  CLI_HELP = -3,    /* -h or --help */
  CLI_VERSION = -4, /* --version */
};

typedef struct {
  const char *command; /* "send": names the command in messages */
  const cli_opt *opts;
  size_t nopts;
  int argc;
  char **argv; /* argv[0] is the command's name */
  /* private */
  int i;
  const char *cluster; /* the rest of a "-qv" cluster */
  bool only_args;      /* after "--" */
  const cli_opt *last; /* the option cli_next() returned last */
} cli_parser;

/* A parser over argv[1..argc-1]. */
void cli_parser_init(cli_parser *p, const char *command, const cli_opt *opts,
                     size_t nopts, int argc, char **argv);

/* The next option (its id, with *value set for an option that takes one),
 * a positional argument (CLI_ARG), CLI_HELP, CLI_VERSION, CLI_END, or
 * CLI_ERROR after printing the error. */
int cli_next(cli_parser *p, const char **value);

/* The name the user typed for the last option ("--jobs" or "-j"), for a
 * message about its value. */
const char *cli_opt_name(const cli_parser *p);

/* "detour CMD: MESSAGE" and "Try 'detour CMD --help'." on stderr; returns
 * CLI_EXIT_USAGE. */
__attribute__((format(printf, 2, 3))) int cli_usage_error(const char *command,
                                                          const char *fmt, ...);

/* "detour VERSION" on stdout; returns CLI_EXIT_OK. */
int cli_print_version(void);

/* The "Exit status:" section of a --help: each code of codes (ended by
 * -1) with its meaning, for the codes above; extra lines (NULL: none) are
 * printed after them as they are. */
void cli_print_exit_codes(FILE *f, const int *codes, const char *extra);

/* Edit distance (optimal string alignment: insertions, deletions,
 * substitutions, adjacent transpositions) between a and b. */
size_t cli_edit_distance(const char *a, const char *b);

/* The candidate nearest to word when it is close enough to be a typo
 * (distance at most 2, and less than half of word's length), else NULL. */
const char *cli_nearest(const char *word, const char *const *candidates,
                        size_t n);

/* SIGINT, SIGTERM and SIGHUP stop a running suite or bench: the handler
 * only records the signal and calls detour_scenario_interrupt(); the run
 * notices within one loop tick and tears its clients down on its normal
 * path. SA_RESETHAND: a second signal kills. SIGPIPE is ignored (fake
 * servers write to peers that may have gone). */
void cli_catch_interrupts(void);
/* The signal caught since cli_catch_interrupts, 0 when none. */
int cli_caught_signal(void);

#endif /* DETOUR_CLI_OPTS_H */

/*
 * main.c - the `detour` command: dispatches to its subcommands (send,
 * serve, run, bench, sendmail), answers the global --help, --version and
 * `help COMMAND`, and runs as sendmail when called by that name.
 */
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "bench.h"
#include "detour/detour.h"
#include "opts.h"
#include "send.h"
#include "sendmail.h"

/* `serve` needs the fake servers library and its command file; without
 * either the command says it is not built. */
#if defined(DETOUR_HAVE_FAKE) && defined(__has_include)
#if __has_include("serve.h")
#include "serve.h"
#define DETOUR_CLI_SERVE 1
#endif
#endif

static int not_built(int argc, char **argv);

#ifdef DETOUR_CLI_SERVE
static int serve(int argc, char **argv) { return detour_cli_serve(argc, argv); }
#else
#define serve not_built
#endif

/* `run` needs the scenario runner (scenarios/, cli/run.c). */
#ifdef DETOUR_HAVE_SCENARIO
#include "certify.h"
#include "run.h"
#define run_scenarios detour_cli_run
#define certify detour_cli_certify
#else
#define run_scenarios not_built
#define certify not_built
#endif

typedef struct {
  const char *name;
  int (*run)(int argc, char **argv);
  const char *summary;
} command;

/* serve and run are left out of a build without the fake servers or the
 * scenario runner; they then say so instead of failing obscurely. */
static const command commands[] = {
    {"send", detour_cli_send, "send one message from stdin, with failover"},
    {"serve", serve, "run scripted fake SMTP servers"},
    {"run", run_scenarios, "run scenario files"},
    {"certify", certify, "certify an SMTP client: certificate, scorecard"},
    {"bench", detour_cli_bench, "failover latency per fault, real time"},
    {"sendmail", detour_cli_sendmail,
     "the sendmail command line (cron, PHP, git send-email)"},
};
#define NCOMMANDS (sizeof commands / sizeof *commands)

__attribute__((unused)) static int not_built(int argc, char **argv) {
  fprintf(stderr, "detour: '%s' is not built in this version\n", argv[0]);
  return EX_UNAVAILABLE;
}

static void usage(FILE *out) {
  fprintf(out, "Usage: detour COMMAND [OPTIONS]\n"
               "       detour help COMMAND\n"
               "       detour --help | --version\n"
               "\nSMTP client with failover to backup servers, and the bench "
               "that\nproves it (the rules: docs/rules.md).\n"
               "\nCommands:\n");
  for (size_t i = 0; i < NCOMMANDS; i++)
    fprintf(out, "  %-9s %s\n", commands[i].name, commands[i].summary);
  fprintf(out, "\n'detour COMMAND --help' (or 'detour help COMMAND') "
               "describes a command.\n"
               "Every command takes -h/--help and --version, and options as\n"
               "--opt VALUE or --opt=VALUE.\n");
  static const int codes[] = {0, 64, -1};
  cli_print_exit_codes(out, codes,
                       "  (each command's --help lists the others it uses)\n");
}

static const command *find(const char *name) {
  for (size_t i = 0; i < NCOMMANDS; i++)
    if (strcmp(commands[i].name, name) == 0)
      return &commands[i];
  return NULL;
}

/* "unknown command 'sned'; did you mean 'send'?" */
static int unknown_command(const char *name) {
  const char *names[NCOMMANDS + 1];
  for (size_t i = 0; i < NCOMMANDS; i++)
    names[i] = commands[i].name;
  names[NCOMMANDS] = "help";
  const char *near = cli_nearest(name, names, NCOMMANDS + 1);
  if (near)
    fprintf(stderr, "detour: unknown command '%s'; did you mean '%s'?\n", name,
            near);
  else
    fprintf(stderr, "detour: unknown command '%s'\n", name);
  fprintf(stderr, "Try 'detour --help'.\n");
  return CLI_EXIT_USAGE;
}

/* `detour help [COMMAND]`: the command's --help. */
static int help(int argc, char **argv) {
  if (argc < 3) {
    usage(stdout);
    return 0;
  }
  const command *cmd = find(argv[2]);
  if (!cmd)
    return unknown_command(argv[2]);
  char *args[] = {argv[2], "--help", NULL};
  return cmd->run(2, args);
}

/* The last part of a path: "/usr/sbin/sendmail" -> "sendmail". */
static const char *base_name(const char *path) {
  const char *slash = strrchr(path, '/');
  return slash ? slash + 1 : path;
}

int main(int argc, char **argv) {
  /* Installed as (or linked to) sendmail: the sendmail command line. */
  if (argc > 0 && strcmp(base_name(argv[0]), "sendmail") == 0)
    return detour_cli_sendmail(argc, argv);
  if (argc < 2) {
    usage(stderr);
    return CLI_EXIT_USAGE;
  }
  const char *arg = argv[1];
  if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
    usage(stdout);
    return 0;
  }
  if (strcmp(arg, "--version") == 0 || strcmp(arg, "-V") == 0)
    return cli_print_version();
  if (strcmp(arg, "help") == 0)
    return help(argc, argv);
  const command *cmd = find(arg);
  if (!cmd && arg[0] == '-') {
    fprintf(stderr, "detour: unknown option '%s'\nTry 'detour --help'.\n", arg);
    return CLI_EXIT_USAGE;
  }
  if (!cmd)
    return unknown_command(arg);
  return cmd->run(argc - 1, argv + 1);
}

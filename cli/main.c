/*
 * main.c - the `detour` command: dispatches to its subcommands (send,
 * serve, run) and answers the global --help and --version.
 */
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "bench.h"
#include "detour/detour.h"
#include "send.h"

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
};
#define NCOMMANDS (sizeof commands / sizeof *commands)

__attribute__((unused)) static int not_built(int argc, char **argv) {
  fprintf(stderr, "detour: '%s' is not built in this version\n", argv[0]);
  return EX_UNAVAILABLE;
}

static void usage(FILE *out) {
  fprintf(out, "Usage: detour COMMAND [OPTIONS]\n"
               "       detour --help | --version\n"
               "\nSMTP client with failover to backup servers.\n"
               "\nCommands:\n");
  for (size_t i = 0; i < NCOMMANDS; i++)
    fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
  fprintf(out, "\n'detour COMMAND --help' describes a command.\n");
}

static const command *find(const char *name) {
  for (size_t i = 0; i < NCOMMANDS; i++)
    if (strcmp(commands[i].name, name) == 0)
      return &commands[i];
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return EX_USAGE;
  }
  const char *arg = argv[1];
  if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
    usage(stdout);
    return 0;
  }
  if (strcmp(arg, "--version") == 0 || strcmp(arg, "-V") == 0) {
    printf("detour %s\n", DETOUR_VERSION);
    return 0;
  }
  if (strcmp(arg, "help") == 0 && argc > 2 && find(argv[2])) {
    char *help[] = {argv[2], "--help", NULL};
    return find(argv[2])->run(2, help);
  }
  const command *cmd = find(arg);
  if (!cmd) {
    fprintf(stderr, "detour: unknown command '%s'\n", arg);
    fprintf(stderr, "Try 'detour --help'.\n");
    return EX_USAGE;
  }
  return cmd->run(argc - 1, argv + 1);
}

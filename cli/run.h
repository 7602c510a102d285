/*
 * run.h - `detour run`: the scenario runner's command (cli/run.c).
 */
#ifndef DETOUR_CLI_RUN_H
#define DETOUR_CLI_RUN_H

/* argv[0] is "run". Returns the exit status: 0 when every scenario passed,
 * 1 when one failed, EX_USAGE / EX_IOERR otherwise. */
int detour_cli_run(int argc, char **argv);

#endif /* DETOUR_CLI_RUN_H */

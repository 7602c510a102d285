/*
 * scenario.h - the scenario runner (target detour::scenario): load scenario
 * files (YAML, scenarios/README.md), run each against the built-in engine
 * and scripted fake servers in virtual (or real) time, check the
 * expectations, and keep the results in plain structs that report writers
 * (reports/) and the `detour run` command consume.
 *
 * Ownership: every object returned by a _load or _run function belongs to
 * the caller and is freed with the matching _free. Strings in results are
 * owned by the result. Results never hold ports or wall-clock dates in the
 * fields that a virtual-time run compares, so two runs give the same bytes.
 */
#ifndef DETOUR_SCENARIO_H
#define DETOUR_SCENARIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "detour/detour.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The virtual epoch: 2002-07-01T10:15:30Z, the first row of SPEC Fig. 6. */
#define DETOUR_SCENARIO_EPOCH ((detour_ms)1025518530000)

/* ------------------------------------------------------------------------ */
/* Loading                                                                   */

typedef struct detour_scenario detour_scenario;

/* Hooks around each run, for evidence such as a pcap (reports/). Every
 * member may be NULL; the hooks may be called from several runner threads
 * at once (-j N), one scenario per thread.
 *
 * on_started: called once the fake servers are bound and before the first
 * message is submitted (so a capture started here sees every packet of the
 * dialogue). ports: the fake servers' bound ports (for a capture filter).
 * For a loopback scenario netns is NULL and device "lo". For a scenario
 * with `network:` (ns-3) netns is the client's namespace ("dt-<run>-c")
 * and device its tap ("t<run>-c"), and the calling thread is already
 * inside that namespace: a pcap handle created in the call (pcap_create on
 * `device`, pcap_activate) belongs to that namespace, as does any thread
 * it starts. Returns a token for on_finished (may be NULL).
 *
 * on_finished: called after the run (messages done or given up, before
 * the namespaces are deleted), on the same thread, with the token; not
 * called when on_started was not. */
typedef struct {
  void *(*on_started)(void *arg, const char *scenario, const uint16_t *ports,
                      size_t nports, const char *netns, const char *device);
  void (*on_finished)(void *arg, const char *scenario, void *token);
  void *arg;
} detour_scenario_hooks;

/* Device mode (`detour certify --device`): the client is a device
 * elsewhere on a LAN, which an operator configures once and triggers per
 * message. The fake servers listen on `listen` (the only way a fake
 * server listens off loopback): the normal server on `port`, the k-th
 * server of the client's list (priority order) on port + k; only `peer`
 * may connect (a connection from anywhere else fails the scenario). The
 * device's queue cannot be seen: a run ends when every recipient was
 * accepted, or at the scenario's limit. */
typedef struct {
  const char *listen; /* an IPv4 address of this host */
  const char *peer;   /* the device's address */
  uint16_t port;      /* the normal server's port */
  /* per message: a shell command that makes the device send it (env
   * DETOUR_FROM, DETOUR_TO space-separated, DETOUR_MESSAGE a file with
   * the message); NULL: print what the operator must trigger */
  const char *trigger;
  FILE *say; /* where instructions go (stdout when NULL) */
} detour_device_options;

typedef struct {
  bool realtime; /* real timers; timing expectations use the tolerance */
  /* Deliberate mistakes applied on top of every client configuration, to
   * prove that the suite notices a wrong engine. Forms:
   *   "classify:KEY=CLASS"   e.g. "classify:timeout=SWITCH"
   *   "detour=allow|deny"    replace the detour table by one default
   *   "detour.rule=any|sender|recipient|all"
   *   "retry.interval=DURATION"  "retry.max_attempts=N"
   */
  const char *const *mutations;
  size_t nmutations;
  detour_scenario_hooks hooks; /* copied into each loaded scenario */
  /* The client under test: NULL (or "builtin") the built-in engine, else
   * an external client's adapter ("postfix"), which overrides a
   * scenario's own `adapter:` key. External clients always run in real
   * time and are judged only by what the fake servers saw. */
  const char *client;
  /* Device mode (client "device"); NULL otherwise. Must outlive the run. */
  const detour_device_options *device;
} detour_scenario_options;

/* true when name is a client `--client` accepts: "builtin" (or NULL) or
 * an external client's adapter ("postfix"). */
bool detour_scenario_client_exists(const char *name);

/* Check one mutation string. 0 or DETOUR_EPARSE with a message in err. */
int detour_scenario_check_mutation(const char *m, char *err, size_t errlen);

/* Load a scenario file. Returns 0 and *out, or DETOUR_EIO / DETOUR_EPARSE
 * / DETOUR_ENOMEM with "file:line:col: ..." in err (errlen bytes). opt may
 * be NULL (virtual time, no mutation). */
int detour_scenario_load_file(const char *path,
                              const detour_scenario_options *opt,
                              detour_scenario **out, char *err, size_t errlen);
/* The same from a string; `name` stands for the file in messages. */
int detour_scenario_load_string(const char *yaml, size_t len, const char *name,
                                const detour_scenario_options *opt,
                                detour_scenario **out, char *err,
                                size_t errlen);
void detour_scenario_free(detour_scenario *s);

const char *detour_scenario_name(const detour_scenario *s);
size_t detour_scenario_rule_count(const detour_scenario *s);
const char *detour_scenario_rule(const detour_scenario *s, size_t i);

/* ------------------------------------------------------------------------ */
/* Results                                                                   */

typedef enum {
  DETOUR_VERDICT_PASS = 0,
  DETOUR_VERDICT_FAIL,  /* an expectation did not hold */
  DETOUR_VERDICT_ERROR, /* the scenario could not be loaded or run */
  DETOUR_VERDICT_SKIP   /* not run here: realtime: false under --realtime,
                           or `network:` without root, tun, ip or ns-3;
                           failures[0] says why */
} detour_verdict;
/* "PASS", "FAIL", "ERROR", "SKIP". Static. */
const char *detour_verdict_name(detour_verdict v);

/* A send-log row (R8) as the runner saw it. Times are offsets from the
 * scenario start; servers are fake-server names. */
typedef struct {
  detour_ms t;
  detour_log_kind kind;
  size_t message;
  char *recipient;
  char *server;
  int priority;
  unsigned attempt;
  char *result;
  detour_class cls;
  char *detail;
} detour_scenario_row;

typedef struct {
  detour_ms t;
  char *text; /* addresses replaced by server names */
} detour_scenario_warning;

typedef struct {
  size_t message;
  char *recipient;
  detour_rcpt_outcome outcome;
  char *server; /* name, or NULL when none */
  char *detail;
  detour_ms t;
} detour_scenario_rcpt;

typedef struct {
  detour_ms submit_t;
  bool done;
  detour_done_status status;
  detour_ms done_t;
} detour_scenario_msg;

typedef struct {
  unsigned id;
  detour_ms accept_t, close_t; /* close_t DETOUR_NO_DEADLINE: still open */
  const char *closed_by;       /* static */
} detour_scenario_conn;

typedef struct {
  unsigned conn;
  detour_ms t;
  char *from;
  char **rcpts;
  size_t nrcpts;
  char *body; /* exact bytes, NUL added */
  size_t body_len;
  bool complete;
  int code; /* reply to the final "." */
} detour_scenario_received;

typedef struct {
  unsigned conn;
  detour_ms t;
  char *line;
} detour_scenario_command;

/* What one fake server saw. */
typedef struct {
  char *name;
  char *address; /* bound "ip:port" (differs run to run) */
  detour_scenario_conn *conns;
  size_t nconns;
  detour_scenario_received *msgs;
  size_t nmsgs;
  detour_scenario_command *cmds;
  size_t ncmds;
} detour_scenario_server;

typedef struct {
  char *name, *file, *description;
  char **rules;
  size_t nrules;
  detour_verdict verdict;
  char **failures; /* human-readable, possibly multi-line */
  size_t nfailures;
  detour_scenario_row *rows;
  size_t nrows;
  detour_scenario_warning *warnings;
  size_t nwarnings;
  detour_scenario_rcpt *rcpts;
  size_t nrcpts;
  detour_scenario_msg *msgs;
  size_t nmsgs;
  detour_scenario_server *servers;
  size_t nservers;
  /* the `detour send` convention (0, 67, 75) for the built-in engine;
   * -1 where no exit code means anything (an external client, which is
   * judged by the servers alone, or a scenario that did not run) */
  int exit_code;
  /* the client under test: NULL the built-in engine, else the external
   * client's name (its manifest's `name`) */
  char *client;
  bool mutated; /* run with --mutate: a deliberately broken client */
  bool realtime;
  detour_ms start; /* absolute time of t = 0 */
  detour_ms end_t; /* offset when the run ended */
  double wall_ms;  /* real time the run took */
  bool network;    /* ran over the simulated network (`network:`) */
} detour_scenario_result;

/* Ask every scenario running in this process to stop now: the run gives
 * up as if its limit was reached (verdict ERROR, "interrupted"), tears
 * everything down (fake servers, the ns-3 network and its namespaces) and
 * a suite starts no further scenario. Async-signal-safe: meant for a
 * SIGINT/SIGTERM handler. */
void detour_scenario_interrupt(void);
/* True once detour_scenario_interrupt was called. */
bool detour_scenario_interrupted(void);

/* Run s and check its expectations. Fills *out (zeroed first) and returns
 * 0 whatever the verdict; a negative error only when out could not be
 * filled at all (DETOUR_ENOMEM). */
int detour_scenario_run(const detour_scenario *s, detour_scenario_result *out);
/* Check a filled result against s's expectations: appends failures and
 * sets the verdict (PASS or FAIL). detour_scenario_run calls it; a test
 * can call it on a result made by hand, without any network. */
void detour_scenario_check(const detour_scenario *s, detour_scenario_result *r);
/* A result for a file that did not load: verdict ERROR, one failure. */
int detour_scenario_result_error(detour_scenario_result *out, const char *file,
                                 const char *text);
void detour_scenario_result_free(detour_scenario_result *r);

/* "0s", "20s", "3m", "3m20s", "1.250s", "1h2m". Writes at most len bytes. */
void detour_scenario_format_offset(detour_ms t, char *buf, size_t len);
/* Parse "500ms", "3s", "1.5s", "3m20s", "1h", "0" (a bare number is
 * seconds): detour_parse_duration. 0, DETOUR_EPARSE or DETOUR_ERANGE (more
 * than DETOUR_DURATION_MAX). */
int detour_scenario_parse_offset(const char *text, detour_ms *out);
/* One row as a fixed-format line, no newline ("+3m  r@y.test  a  TCP error
 * CONNECT #2"). */
void detour_scenario_format_row(const detour_scenario_row *r, char *buf,
                                size_t len);

/* ------------------------------------------------------------------------ */
/* Suites                                                                    */

typedef struct {
  const char *const *paths; /* files or directories (searched for *.yaml) */
  size_t npaths;
  const char *filter; /* glob on the scenario name or file; NULL all */
  /* More filters, any of which selects a scenario (with filter, when both
   * are given): a rule id ("R4": every scenario that names R4 or R4.x), a
   * glob when it holds '*', '?' or '[', else a substring of the scenario's
   * name or file. */
  const char *const *filters;
  size_t nfilters;
  unsigned jobs; /* scenarios run at once (0 or 1: one) */
  detour_scenario_options scenario;
  FILE *out;      /* one line per scenario; NULL = quiet */
  bool color;     /* ANSI colours in out */
  FILE *progress; /* a progress line (a terminal); NULL = none */
  bool verbose;   /* print the log rows of passing scenarios too */
} detour_suite_options;

typedef struct {
  detour_scenario_result *results; /* in file order */
  size_t n;
  size_t passed, failed, skipped; /* failed counts ERROR too */
  size_t errors; /* of failed: ERROR, a scenario that could not run */
  double wall_ms;
} detour_suite;

/* The scenario files under paths: files as given, directories searched
 * recursively for *.yaml, each sorted by name. Returns a malloc'ed array
 * of malloc'ed paths (*n of them), or NULL with a message in err (a path
 * that does not exist). */
char **detour_suite_find(const char *const *paths, size_t npaths, size_t *n,
                         char *err, size_t errlen);
void detour_suite_files_free(char **files, size_t n);

/* Run every scenario (files that match the filter), in parallel when
 * jobs > 1, printing as results arrive but in file order. Returns 0, or
 * DETOUR_EINVAL / DETOUR_ENOMEM with a message in err. */
int detour_suite_run(const detour_suite_options *o, detour_suite *out,
                     char *err, size_t errlen);
void detour_suite_free(detour_suite *s);

/* Write dir/results.jsonl (one object per scenario, wall times included)
 * and dir/rows.txt (every scenario's log rows with times; byte-identical
 * across virtual-time runs). Creates dir. 0 or DETOUR_EIO. */
int detour_suite_write(const detour_suite *s, const char *dir, char *err,
                       size_t errlen);

/* Print one result's failures (and, if verbose, its rows) to f. */
void detour_scenario_result_print(const detour_scenario_result *r, FILE *f,
                                  bool color, bool verbose);

/* Glob with '*' and '?' (case-sensitive). */
bool detour_scenario_glob(const char *pattern, const char *text);

#ifdef __cplusplus
}
#endif

#endif /* DETOUR_SCENARIO_H */

/*
 * detour__scn_internal.h - what the sources of the scenario runner share: the
 * loaded scenario (servers, client, messages, expectations) and small
 * helpers. Names here are detour__scn_.
 */
#ifndef DETOUR_SCN_INTERNAL_H
#define DETOUR_SCN_INTERNAL_H

#include "detour/detour_config.h"
#include "detour/fake.h"
#include "detour/scenario.h"
#include "netsim.h"

#define SCN_MAX_SERVERS 32
#define SCN_MAX_MESSAGES 256

/* A fake server of the scenario. */
typedef struct {
  char *name;
  detour_fake_script *script;
} detour__scn_server;

/* One entry of the client's server list: a fake server (fake >= 0) or a
 * literal address (a name that does not resolve, a closed port). */
typedef struct {
  int fake; /* index in servers, or -1 */
  char host[256];
  uint16_t port;
  int priority;
  /* SPEC R13: how the client meets this server. The CA file is the run's
   * (a run-local CA, made when any server or client entry uses TLS). */
  detour_tls_mode tls;
  bool tls_optional;
  char auth_user[256];
  char auth_password[256]; /* test data: scenarios hold their users */
} detour__scn_client_server;

typedef struct {
  char *from;
  char **to;
  size_t nto;
  char *body;
  size_t body_len;
  detour_override override;
  detour_ms at;
} detour__scn_message;

/* An expected log row: a field left unset is not compared. */
typedef struct {
  int line, col;
  bool has_t;
  detour_ms t;
  char *recipient, *server, *result, *detail; /* globs; NULL = any */
  int cls;                                    /* -1 = any */
  int attempt;                                /* -1 = any */
  int kind;                                   /* -1 = any */
  int message;                                /* -1 = any */
} detour__scn_row_expect;

typedef struct {
  char *recipient;
  int message;  /* -1 = every message that has the recipient */
  int outcome;  /* -1 = any */
  char *server; /* NULL = not checked; "none" = no server */
} detour__scn_rcpt_expect;

typedef struct {
  char *from;
  char **to;
  size_t nto;
  bool has_to;
  char *body;
  size_t body_len;
  int complete; /* -1 any */
  int code;     /* -1 any */
} detour__scn_received_expect;

/* Per-server expectations (by server index). */
typedef struct {
  long connections; /* -1 = not checked */
  detour_ms *connect_times;
  size_t nconnect_times;
  bool has_connect_times;
  detour__scn_received_expect *received;
  size_t nreceived;
  bool has_received;
  char **commands;
  size_t ncommands;
  bool has_commands;
} detour__scn_server_expect;

typedef struct {
  int exit_code;                /* -1 = not checked */
  int status[SCN_MAX_MESSAGES]; /* detour_done_status or -1 */
  size_t nstatus;
  detour__scn_rcpt_expect *rcpts;
  size_t nrcpts;
  detour__scn_row_expect *log;
  size_t nlog;
  bool has_log;
  char **warnings;
  size_t nwarnings;
  bool has_warnings;
  detour__scn_server_expect servers[SCN_MAX_SERVERS];
  detour_ms latency_max, latency_min; /* -1 = not checked */
  detour_ms tolerance;                /* realtime only */
} detour__scn_expect;

/* A change of the simulated network (`network.events`): at a time, or when
 * a fake server sees something (a trigger), possibly `after` a delay. */
typedef enum {
  SCN_NET_AT = 0,     /* at a time from the start */
  SCN_NET_ON_CONNECT, /* the server accepted a connection */
  SCN_NET_ON_COMMAND, /* the server received a command of `stage` */
  SCN_NET_ON_MESSAGE, /* the server received a whole message */
  SCN_NET_ON_CLOSE    /* a connection of the server closed */
} detour__scn_net_when;

typedef struct {
  int line, col;
  detour__scn_net_when when;
  detour_ms at;            /* SCN_NET_AT */
  int server;              /* triggers: the server's index */
  detour_fake_stage stage; /* SCN_NET_ON_COMMAND */
  unsigned nth;            /* triggers: only the nth occurrence; 0 = each */
  detour_ms after;         /* triggers: wait this long first */
  char command[96];        /* for detour_netsim_command: "link a down" */
  char text[96];           /* as written: "a down" (for messages) */
} detour__scn_net_event;

/* The `network:` section: the scenario runs over ns-3 (fakeservers/netsim)
 * in real time, client and servers each in a namespace of its own. */
typedef struct {
  bool enabled;
  detour_netsim_link client;
  detour_netsim_link servers[SCN_MAX_SERVERS]; /* by server index */
  detour__scn_net_event *events;
  size_t nevents;
} detour__scn_network;

struct detour_scenario {
  char *file, *name, *description;
  char **rules;
  size_t nrules;
  bool realtime_ok; /* `realtime: false` skips it under --realtime */
  bool realtime;    /* this run's mode */
  detour_ms limit;  /* time after which the run gives up */
  bool limit_set;   /* else realtime runs get REALTIME_DEFAULT_LIMIT */
  detour__scn_server servers[SCN_MAX_SERVERS];
  size_t nservers;
  detour__scn_client_server client_servers[DETOUR_MAX_SERVERS];
  size_t nclient_servers;
  detour_settings settings; /* the client config without servers */
  detour__scn_message msgs[SCN_MAX_MESSAGES];
  size_t nmsgs;
  detour__scn_expect expect;
  detour__scn_network net;
  detour_scenario_hooks hooks; /* from the options */
  /* The client: NULL the built-in engine, else an adapter's name
   * (adapter.h) from `adapter:` or the options (which win). */
  char *adapter;
  const detour_device_options *device; /* device mode, else NULL */
  char client_keys[512]; /* the `client:` section's keys (retry.* and
                            timeouts.* by sub-key) */
  bool mutated;          /* --mutate applied on top of the client section */
};

/* util.c */
char *detour__scn_strdup(const char *s); /* NULL stays NULL; aborts never */
char *detour__scn_memdup(const void *p, size_t len); /* NUL added */
/* printf into a new string; NULL on OOM. */
char *detour__scn_printf(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/* A growable string. */
typedef struct {
  char *s;
  size_t len, cap;
  bool oom;
} detour__scn_buf;
void detour__scn_buf_add(detour__scn_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void detour__scn_buf_addn(detour__scn_buf *b, const char *p, size_t n);
/* The bytes with C escapes for control characters and quotes. */
void detour__scn_buf_add_escaped(detour__scn_buf *b, const char *p, size_t n);
char *detour__scn_buf_take(detour__scn_buf *b); /* "" when empty; NULL on OOM */
void detour__scn_buf_free(detour__scn_buf *b);

/* Grow *arr (element size sz) so index n fits. 0 or DETOUR_ENOMEM. */
int detour__scn_grow(void *arr, size_t *cap, size_t n, size_t sz);

/* check.c: compare the run's record with the expectations; appends
 * failures to r. */
void detour__scn_check(const detour_scenario *s, detour_scenario_result *r);
/* Add one failure (printf); never fails visibly (OOM drops the text). */
void detour__scn_fail(detour_scenario_result *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* net.c: the simulated network of one run (namespaces, ns-3, events). */
typedef struct detour__scn_net detour__scn_net;
/* Starts the network of s (detour_netsim_start); NULL with the reason in
 * err when it cannot. */
detour__scn_net *detour__scn_net_start(const detour_scenario *s, char *err,
                                       size_t errlen);
/* The fake server `i` inside its namespace, listening on its namespace
 * address, port 25; observed for the triggers. 0 or -1 with err. */
int detour__scn_net_start_server(detour__scn_net *n, size_t i,
                                 detour_fake_server *srv, char *err,
                                 size_t errlen);
/* The listen address of server i ("10.201.k.2:25"). */
const char *detour__scn_net_listen(const detour__scn_net *n, size_t i,
                                   char *buf, size_t len);
/* Moves the calling thread into the client namespace (until
 * detour__scn_net_stop). 0 or -1 with err. */
int detour__scn_net_enter_client(detour__scn_net *n, char *err, size_t errlen);
/* Arms the timed events against clock c, start = the scenario's t = 0. */
int detour__scn_net_arm(detour__scn_net *n, detour_clock *c, detour_ms start);
/* The client's namespace and tap (for the capture hook). */
const char *detour__scn_net_client_netns(const detour__scn_net *n);
const char *detour__scn_net_client_tap(const detour__scn_net *n);
/* Frees the event timers (before the clock goes). */
void detour__scn_net_disarm(detour__scn_net *n);
/* A failed live command, or "" (reported as a failure of the scenario). */
const char *detour__scn_net_error(const detour__scn_net *n);
/* Leaves the client namespace, stops ns-3, deletes the namespaces, frees
 * n. 0, or -1 with what was left in err. */
int detour__scn_net_stop(detour__scn_net *n, char *err, size_t errlen);

/* The process-wide interrupt flag (SIGINT/SIGTERM, detour_scenario_interrupt).
 */
bool detour__scn_interrupted(void);

/* load.c: apply the mutations to loaded settings. */
int detour__scn_apply_mutations(detour_settings *st,
                                const detour_scenario_options *o, char *err,
                                size_t errlen);

#endif /* DETOUR_SCN_INTERNAL_H */

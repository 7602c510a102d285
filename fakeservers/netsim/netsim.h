/* netsim.h - run the client and the fake servers over an ns-3 network.
 *
 * detour_netsim_start() gives the client and each fake server its own Linux
 * network namespace, with a tap device joined by detour-netsim (the ns-3
 * program, fakeservers/netsim/detour-netsim.cc) to a simulated star: one
 * link per endpoint, with delay, jitter, loss and rate, that timed events
 * or live commands can change or cut. Everything runs in real time.
 *
 * Sockets stay in the namespace they were created in, and one process may
 * own sockets in several: create a fake server's listener with the calling
 * thread inside that server's namespace (detour_netsim_run_in), and run the
 * engine's loop thread inside the client namespace (detour_netsim_enter),
 * connecting to detour_netsim_addr(ns, i).
 *
 * Names: run id "<owner pid>x<seq>"; namespaces "dt-<run id>-c" (client)
 * and "dt-<run id>-<i>" (server i = link "a" + i); one tap in each. A run
 * whose owner pid is dead is stale: detour_netsim_sweep() (or
 * scripts/netsim-sweep.sh) kills its program and deletes its namespaces.
 *
 * Linux only; needs root, /dev/net/tun, the `ip` command and the built
 * program. A handle is not thread-safe: one thread at a time. */
#ifndef DETOUR_NETSIM_H
#define DETOUR_NETSIM_H

#include <stddef.h>
#include <stdint.h>

#include <detour/detour.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DETOUR_NETSIM_MAX_SERVERS 16
/* The endpoint number of the client; servers are 0 .. nservers-1. */
#define DETOUR_NETSIM_CLIENT (-1)

typedef struct detour_netsim detour_netsim;

/* One endpoint's link to the simulated core router. */
typedef struct {
  detour_ms delay_ms;  /* round-trip time the link adds (half each way) */
  detour_ms jitter_ms; /* peak to peak, per packet and direction; FIFO */
  double loss;         /* drop probability per packet and direction, 0..1 */
  uint64_t rate_bps;   /* bits per second; 0: 1 Gbit/s (no shaping) */
} detour_netsim_link;

typedef struct {
  size_t nservers;           /* 1 .. DETOUR_NETSIM_MAX_SERVERS */
  detour_netsim_link client; /* the client's link, usually all zero */
  detour_netsim_link servers[DETOUR_NETSIM_MAX_SERVERS];
  /* Timed events, "TIME:LINK:ACTION": "2s:a:down", "20s:a:up",
   * "5s:b:delay=200ms", "1s:client:loss=0.05". LINK is "client" or a
   * server's letter; times count from the return of detour_netsim_start.
   * At most 64. */
  const char *const *events;
  size_t nevents;
  const char *program;        /* NULL: $DETOUR_NETSIM_BIN, else the built one */
  const char *log_path;       /* the program's stderr, appended; NULL: none */
  detour_ms ready_timeout_ms; /* 0: 10 s */
} detour_netsim_spec;

/* 1 when netsim can run here, else 0 with the reason in why (len bytes):
 * not root, no /dev/net/tun, no `ip`, or the program was not built. */
int detour_netsim_available(char *why, size_t len);

/* Sweeps stale runs, creates the namespaces, taps, addresses and routes,
 * starts the program and waits (bounded) for it to say `ready`. On success
 * *out owns all of it until detour_netsim_stop. Returns 0, or DETOUR_EINVAL
 * (bad spec), DETOUR_ENOMEM, DETOUR_EIO (a step failed; everything already
 * made is removed), with a message in err (errlen bytes). */
int detour_netsim_start(const detour_netsim_spec *spec, detour_netsim **out,
                        char *err, size_t errlen);

/* Run id, namespace, tap name, IPv4 address (dotted) and link name
 * ("client", "a", "b", ...) of an endpoint (DETOUR_NETSIM_CLIENT or a server
 * number). Static strings owned by ns; NULL when out of range. */
const char *detour_netsim_run_id(const detour_netsim *ns);
const char *detour_netsim_netns(const detour_netsim *ns, int endpoint);
const char *detour_netsim_tap(const detour_netsim *ns, int endpoint);
const char *detour_netsim_addr(const detour_netsim *ns, int endpoint);
const char *detour_netsim_link_name(int endpoint);
/* The program's pid (for evidence and tests). */
long detour_netsim_pid(const detour_netsim *ns);

/* Moves the calling thread into an endpoint's namespace. *saved receives a
 * descriptor of the namespace it was in, for detour_netsim_leave. Returns 0,
 * DETOUR_EINVAL (no such endpoint) or DETOUR_EIO. */
int detour_netsim_enter(const detour_netsim *ns, int endpoint, int *saved);
/* Moves the calling thread back and closes saved. 0 or DETOUR_EIO. */
int detour_netsim_leave(int saved);
/* Calls fn(arg) with the calling thread inside the endpoint's namespace and
 * returns its result; DETOUR_EINVAL / DETOUR_EIO if it could not get there
 * (fn not called) or back (the thread is then in an unknown namespace). */
int detour_netsim_run_in(const detour_netsim *ns, int endpoint,
                         int (*fn)(void *arg), void *arg);

/* Sends a live command ("link a down", "link a up", "link b delay 150ms",
 * "link a loss 0.05", "link a rate 1Mbps", "link a jitter 5ms", "status")
 * and waits (bounded) until the simulation applied it. The program's reply
 * line goes to reply (may be NULL). Returns 0, DETOUR_EINVAL (rejected) or
 * DETOUR_EIO (program gone or silent). */
int detour_netsim_command(detour_netsim *ns, const char *line, char *reply,
                          size_t replylen);

/* Stops the program (quit, then SIGKILL after a bounded wait), deletes
 * every namespace and tap of the run and frees ns (NULL is fine). Returns
 * 0, or DETOUR_EIO when something of the run could not be removed. */
int detour_netsim_stop(detour_netsim *ns);

/* Removes the runs whose owner process is dead: kills their programs and
 * deletes their namespaces. Lists what it removed in report (may be NULL).
 * Returns the number of runs removed (>= 0) or DETOUR_EIO. */
int detour_netsim_sweep(char *report, size_t len);

/* Counts what is left of a run (run_id NULL: of every run): namespaces,
 * root-namespace links named after it and live programs. Lists them in
 * what (may be NULL). For tests and the suite's final check. */
int detour_netsim_leftovers(const char *run_id, char *what, size_t len);

/* "10Mbps", "512kbps", "1.5Gbit" -> bits per second, for scenario files.
 * 0, or DETOUR_EPARSE / DETOUR_ERANGE (below 1 kbit/s, above 100 Gbit/s). */
int detour_netsim_parse_rate(const char *text, uint64_t *bps);

#ifdef __cplusplus
}
#endif

#endif /* DETOUR_NETSIM_H */

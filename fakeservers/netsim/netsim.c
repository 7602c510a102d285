/* netsim.c - namespaces, taps and the ns-3 program behind netsim.h.
 *
 * Builds each endpoint's namespace with the `ip` command (no shell: argv
 * vectors through posix_spawn), starts detour-netsim with one --link per
 * endpoint, talks to it over its stdin/stdout, and removes everything of a
 * run again: at stop, or later from a sweep when the owner died (the run id
 * in every name starts with the owner's pid; the program carries the run id
 * on its command line, so /proc finds it). Every wait has a deadline. */
#define _GNU_SOURCE /* setns, pipe2, posix_spawn_file_actions_addclosefrom_np  \
                     */

#include "netsim.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#ifndef DETOUR_NETSIM_PROGRAM
#define DETOUR_NETSIM_PROGRAM ""
#endif

#define NETNS_DIR "/var/run/netns" /* where `ip netns` keeps its names */
#define NSLOTS (DETOUR_NETSIM_MAX_SERVERS + 1) /* slot 0: client */
#define IP_TIMEOUT_MS 5000
#define REPLY_TIMEOUT_MS 3000
#define QUIT_TIMEOUT_MS 3000
#define KILL_TIMEOUT_MS 2000
#define DEFAULT_READY_MS 10000
#define MAX_RUNS 256 /* stale runs handled per sweep */
#define MAX_EVENTS 64

struct detour_netsim {
  char run_id[24];
  size_t nslots;
  char netns[NSLOTS][48];
  char tap[NSLOTS][IF_NAMESIZE];
  char addr[NSLOTS][16];
  pid_t pid;
  int to_fd, from_fd;
  char buf[2048]; /* the program's stdout, up to the next newline */
  size_t buflen;
};

static atomic_uint run_seq;

/* ------------------------------------------------------------- helpers */

static void set_err(char *err, size_t len, const char *fmt, ...) {
  if (!err || len == 0)
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, len, fmt, ap);
  va_end(ap);
}

/* Appends to a report buffer, silently truncating. */
static void append(char *buf, size_t len, const char *fmt, ...) {
  if (!buf || len == 0)
    return;
  size_t used = strlen(buf);
  if (used + 1 >= len)
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf + used, len - used, fmt, ap);
  va_end(ap);
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* slot 0 is the client, slot i+1 server i. -1 when out of range. */
static int slot_of(const detour_netsim *ns, int endpoint) {
  if (!ns || endpoint < DETOUR_NETSIM_CLIENT ||
      (size_t)(endpoint + 1) >= ns->nslots)
    return -1;
  return endpoint + 1;
}

static const char *ip_path(void) {
  static const char *const candidates[] = {"/usr/sbin/ip", "/sbin/ip",
                                           "/usr/bin/ip", "/bin/ip"};
  for (size_t i = 0; i < sizeof candidates / sizeof *candidates; i++)
    if (access(candidates[i], X_OK) == 0)
      return candidates[i];
  return NULL;
}

static const char *program_path(const detour_netsim_spec *spec) {
  if (spec && spec->program)
    return spec->program;
  const char *env = getenv("DETOUR_NETSIM_BIN");
  return env && *env ? env : DETOUR_NETSIM_PROGRAM;
}

/* Waits for a child of ours to exit, up to ms. 1 when reaped. */
static int reap_within(pid_t pid, long ms, int *status) {
  int64_t deadline = now_ms() + ms;
  for (;;) {
    pid_t r = waitpid(pid, status, WNOHANG);
    if (r == pid || (r < 0 && errno == ECHILD))
      return 1;
    if (now_ms() >= deadline)
      return 0;
    sleep_ms(5);
  }
}

/* Runs argv[0] with stdout discarded and the first line of stderr kept in
 * err, bounded. 0, or DETOUR_EIO. */
static int run_cmd(char *const argv[], char *err, size_t errlen) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0)
    return set_err(err, errlen, "pipe: %s", strerror(errno)), DETOUR_EIO;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
  posix_spawn_file_actions_addclosefrom_np(&fa, 3);
  pid_t pid;
  int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  close(fds[1]);
  if (rc != 0) {
    close(fds[0]);
    return set_err(err, errlen, "%s: %s", argv[0], strerror(rc)), DETOUR_EIO;
  }
  char msg[256] = "";
  size_t got = 0;
  int64_t deadline = now_ms() + IP_TIMEOUT_MS;
  struct pollfd p = {fds[0], POLLIN, 0};
  while (got + 1 < sizeof msg && now_ms() < deadline &&
         poll(&p, 1, (int)(deadline - now_ms())) > 0) {
    ssize_t n = read(fds[0], msg + got, sizeof msg - 1 - got);
    if (n <= 0)
      break;
    got += (size_t)n;
  }
  msg[got] = '\0';
  msg[strcspn(msg, "\n")] = '\0';
  close(fds[0]);
  int status = 0;
  if (!reap_within(pid, deadline - now_ms() > 0 ? deadline - now_ms() : 1,
                   &status)) {
    kill(pid, SIGKILL);
    reap_within(pid, KILL_TIMEOUT_MS, &status);
    return set_err(err, errlen, "%s timed out", argv[0]), DETOUR_EIO;
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
    return 0;
  set_err(err, errlen, "%s %s %s %s: %s", argv[0], argv[1],
          argv[2] ? argv[2] : "", argv[2] && argv[3] ? argv[3] : "",
          msg[0] ? msg : "failed");
  return DETOUR_EIO;
}

/* `ip ARGS...` (NULL-terminated). */
static int ip(char *err, size_t errlen, ...) {
  const char *argv[16] = {ip_path()};
  size_t n = 1;
  va_list ap;
  va_start(ap, errlen);
  const char *a;
  while ((a = va_arg(ap, const char *)) != NULL && n + 1 < 16)
    argv[n++] = a;
  va_end(ap);
  argv[n] = NULL;
  if (!argv[0])
    return set_err(err, errlen, "no ip command"), DETOUR_EIO;
  return run_cmd((char *const *)argv, err, errlen);
}

/* ------------------------------------------------- processes and names */

/* "<pid>x<seq>" -> pid, or -1 when run_id is not one of ours. */
static long owner_of(const char *run_id) {
  char *end;
  if (!isdigit((unsigned char)run_id[0]))
    return -1;
  long pid = strtol(run_id, &end, 10);
  if (*end != 'x' || !isdigit((unsigned char)end[1]))
    return -1;
  for (end++; *end; end++)
    if (!isdigit((unsigned char)*end))
      return -1;
  return pid;
}

/* State letter from /proc/PID/stat ('Z' zombie), 0 when gone. */
static char proc_state(long pid) {
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%ld/stat", pid);
  FILE *f = fopen(path, "re");
  if (!f)
    return 0;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  char *paren = strrchr(buf, ')'); /* the name may hold spaces */
  return paren && paren[1] == ' ' ? paren[2] : 0;
}

/* A zombie has released everything, so it counts as dead. */
static int alive(long pid) {
  char st = proc_state(pid);
  return st != 0 && st != 'Z';
}

/* If /proc/PID is a detour-netsim, copies its --run-id to run_id. */
static int program_run_id(long pid, char *run_id, size_t len) {
  char path[64], buf[4096];
  snprintf(path, sizeof path, "/proc/%ld/cmdline", pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return 0;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0)
    return 0;
  buf[n] = '\0';
  const char *base = strrchr(buf, '/');
  if (strcmp(base ? base + 1 : buf, "detour-netsim") != 0)
    return 0;
  for (const char *a = buf; a < buf + n; a += strlen(a) + 1)
    if (strcmp(a, "--run-id") == 0 && a + strlen(a) + 1 < buf + n) {
      snprintf(run_id, len, "%s", a + strlen(a) + 1);
      return 1;
    }
  return 0;
}

typedef void (*program_fn)(long pid, const char *run_id, void *ctx);

/* Calls fn for every live detour-netsim process that has a run id. */
static void each_program(program_fn fn, void *ctx) {
  DIR *d = opendir("/proc");
  if (!d)
    return;
  struct dirent *e;
  char run_id[64];
  while ((e = readdir(d)) != NULL) {
    long pid = strtol(e->d_name, NULL, 10);
    if (pid > 0 && program_run_id(pid, run_id, sizeof run_id) && alive(pid))
      fn(pid, run_id, ctx);
  }
  closedir(d);
}

/* "dt-<run id>-<x>" -> run id, or 0 when the name is not ours. */
static int netns_run_id(const char *name, char *run_id, size_t len) {
  const char *dash = strrchr(name, '-');
  if (strncmp(name, "dt-", 3) != 0 || !dash || dash <= name + 3)
    return 0;
  snprintf(run_id, len, "%.*s", (int)(dash - name - 3), name + 3);
  return owner_of(run_id) > 0;
}

/* ------------------------------------------------------------- cleanup */

struct kill_ctx {
  const char *run_id;
  long pids[64];
  size_t n;
};

static void collect_program(long pid, const char *run_id, void *ctx) {
  struct kill_ctx *k = ctx;
  if (strcmp(run_id, k->run_id) == 0 && k->n < 64)
    k->pids[k->n++] = pid;
}

/* SIGKILLs the run's programs and waits until they are gone (reaping our
 * own children), so that no tap fd keeps a namespace alive. Returns the
 * number still alive. */
static int kill_programs(const char *run_id) {
  struct kill_ctx k = {run_id, {0}, 0};
  each_program(collect_program, &k);
  int left = 0;
  for (size_t i = 0; i < k.n; i++) {
    kill((pid_t)k.pids[i], SIGKILL);
    int64_t deadline = now_ms() + KILL_TIMEOUT_MS;
    while (alive(k.pids[i]) && now_ms() < deadline) {
      waitpid((pid_t)k.pids[i], NULL, WNOHANG);
      sleep_ms(5);
    }
    waitpid((pid_t)k.pids[i], NULL, WNOHANG);
    left += alive(k.pids[i]);
  }
  return left;
}

/* Deletes every namespace "dt-<run id>-*". Returns the number of failures. */
static int delete_namespaces(const char *run_id, char *err, size_t errlen) {
  char prefix[64], names[NSLOTS * 4][NAME_MAX + 1];
  size_t n = 0;
  snprintf(prefix, sizeof prefix, "dt-%s-", run_id);
  DIR *d = opendir(NETNS_DIR);
  if (!d)
    return 0; /* no namespace at all */
  struct dirent *e;
  while ((e = readdir(d)) != NULL && n < sizeof names / sizeof *names)
    if (strncmp(e->d_name, prefix, strlen(prefix)) == 0)
      snprintf(names[n++], sizeof names[0], "%s", e->d_name);
  closedir(d);
  int failed = 0;
  for (size_t i = 0; i < n; i++)
    failed += ip(err, errlen, "netns", "del", names[i], (char *)NULL) != 0;
  return failed;
}

static int cleanup_run(const char *run_id, char *err, size_t errlen) {
  int left = kill_programs(run_id);
  if (left)
    set_err(err, errlen, "%d detour-netsim of run %s survived SIGKILL", left,
            run_id);
  return left + delete_namespaces(run_id, err, errlen);
}

/* ---------------------------------------------------------------- sweep */

struct run_set {
  char ids[MAX_RUNS][24];
  size_t n;
};

static void add_run(struct run_set *s, const char *run_id) {
  for (size_t i = 0; i < s->n; i++)
    if (strcmp(s->ids[i], run_id) == 0)
      return;
  if (s->n < MAX_RUNS && strlen(run_id) < sizeof s->ids[0])
    snprintf(s->ids[s->n++], sizeof s->ids[0], "%s", run_id);
}

static void add_program_run(long pid, const char *run_id, void *ctx) {
  (void)pid;
  if (owner_of(run_id) > 0)
    add_run(ctx, run_id);
}

/* Every run id that has a namespace or a live program. */
static void known_runs(struct run_set *s) {
  s->n = 0;
  DIR *d = opendir(NETNS_DIR);
  if (d) {
    struct dirent *e;
    char run_id[NAME_MAX + 1];
    while ((e = readdir(d)) != NULL)
      if (netns_run_id(e->d_name, run_id, sizeof run_id))
        add_run(s, run_id);
    closedir(d);
  }
  each_program(add_program_run, s);
}

int detour_netsim_sweep(char *report, size_t len) {
  static struct run_set runs; /* large; sweeps are rare */
  static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
  if (report && len)
    report[0] = '\0';
  pthread_mutex_lock(&lock);
  known_runs(&runs);
  int removed = 0, failed = 0;
  for (size_t i = 0; i < runs.n; i++) {
    if (alive(owner_of(runs.ids[i])))
      continue;
    char err[256] = "";
    if (cleanup_run(runs.ids[i], err, sizeof err) == 0) {
      append(report, len, "%sremoved stale run %s", removed ? "; " : "",
             runs.ids[i]);
      removed++;
    } else {
      append(report, len, "%scould not remove run %s: %s",
             removed + failed ? "; " : "", runs.ids[i], err);
      failed++;
    }
  }
  pthread_mutex_unlock(&lock);
  return failed ? DETOUR_EIO : removed;
}

/* ------------------------------------------------------------ leftovers */

struct left_ctx {
  const char *run_id;
  int count;
  char *what;
  size_t len;
};

static void count_program(long pid, const char *run_id, void *ctx) {
  struct left_ctx *c = ctx;
  if (c->run_id ? strcmp(run_id, c->run_id) == 0 : owner_of(run_id) > 0) {
    c->count++;
    append(c->what, c->len, "process %ld (run %s); ", pid, run_id);
  }
}

/* A tap name "t<run id>-<x>" in the calling thread's namespace. */
static int is_run_tap(const char *name, const char *run_id) {
  char id[IF_NAMESIZE];
  const char *dash = strrchr(name, '-');
  if (name[0] != 't' || !dash)
    return 0;
  snprintf(id, sizeof id, "%.*s", (int)(dash - name - 1), name + 1);
  return run_id ? strcmp(id, run_id) == 0 : owner_of(id) > 0;
}

static void count_links(struct left_ctx *c) {
  struct if_nameindex *ifs = if_nameindex();
  if (!ifs)
    return;
  for (struct if_nameindex *i = ifs; i->if_name; i++)
    if (is_run_tap(i->if_name, c->run_id)) {
      c->count++;
      append(c->what, c->len, "link %s; ", i->if_name);
    }
  if_freenameindex(ifs);
}

static void count_namespaces(struct left_ctx *c) {
  DIR *d = opendir(NETNS_DIR);
  if (!d)
    return;
  struct dirent *e;
  char id[NAME_MAX + 1];
  while ((e = readdir(d)) != NULL)
    if (netns_run_id(e->d_name, id, sizeof id) &&
        (!c->run_id || strcmp(id, c->run_id) == 0)) {
      c->count++;
      append(c->what, c->len, "netns %s; ", e->d_name);
    }
  closedir(d);
}

int detour_netsim_leftovers(const char *run_id, char *what, size_t len) {
  struct left_ctx c = {run_id, 0, what, len};
  if (what && len)
    what[0] = '\0';
  count_namespaces(&c);
  count_links(&c);
  each_program(count_program, &c);
  return c.count;
}

/* ---------------------------------------------------------- availability */

static int check_available(const char *prog, char *why, size_t len) {
  if (geteuid() != 0)
    return set_err(why, len, "not root (namespaces and taps need it)"), 0;
  int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
  if (fd < 0)
    return set_err(why, len, "cannot open /dev/net/tun: %s", strerror(errno)),
           0;
  close(fd);
  if (!ip_path())
    return set_err(why, len, "no ip command (iproute2)"), 0;
  if (!*prog)
    return set_err(why, len,
                   "detour-netsim not built (ns-3 not found at "
                   "configure time, or DETOUR_WITH_NS3=OFF)"),
           0;
  if (access(prog, X_OK) != 0)
    return set_err(why, len, "%s: %s", prog, strerror(errno)), 0;
  return set_err(why, len, "available"), 1;
}

int detour_netsim_available(char *why, size_t len) {
  return check_available(program_path(NULL), why, len);
}

/* ------------------------------------------------------------ endpoints */

/* Names and addresses of every slot. The run id is at most 7 digits, 'x'
 * and 3 digits, so a tap name fits IFNAMSIZ; checked all the same. */
static int name_slots(detour_netsim *ns) {
  for (size_t k = 0; k < ns->nslots; k++) {
    char tag[24];
    int a = k == 0 ? snprintf(tag, sizeof tag, "c")
                   : snprintf(tag, sizeof tag, "%zu", k - 1);
    int b = snprintf(ns->netns[k], sizeof ns->netns[k], "dt-%s-%s", ns->run_id,
                     tag);
    int c = snprintf(ns->tap[k], sizeof ns->tap[k], "t%s-%s", ns->run_id, tag);
    int d = snprintf(ns->addr[k], sizeof ns->addr[k], "10.201.%zu.2", k);
    if (a < 0 || b < 0 || (size_t)b >= sizeof ns->netns[k] || c < 0 ||
        (size_t)c >= sizeof ns->tap[k] || d < 0 ||
        (size_t)d >= sizeof ns->addr[k])
      return DETOUR_ERANGE;
  }
  return 0;
}

/* Namespace, loopback, tap with the endpoint's address, default route via
 * the simulated edge router (10.201.k.1, inside ns-3). */
static int setup_slot(detour_netsim *ns, size_t k, char *err, size_t errlen) {
  const char *n = ns->netns[k], *tap = ns->tap[k];
  char cidr[24], gw[16];
  snprintf(cidr, sizeof cidr, "%s/24", ns->addr[k]);
  snprintf(gw, sizeof gw, "10.201.%zu.1", k);
  if (ip(err, errlen, "netns", "add", n, (char *)NULL) ||
      ip(err, errlen, "-n", n, "link", "set", "lo", "up", (char *)NULL) ||
      ip(err, errlen, "-n", n, "tuntap", "add", "dev", tap, "mode", "tap",
         (char *)NULL) ||
      ip(err, errlen, "-n", n, "addr", "add", cidr, "dev", tap, (char *)NULL) ||
      ip(err, errlen, "-n", n, "link", "set", tap, "up", (char *)NULL) ||
      ip(err, errlen, "-n", n, "route", "add", "default", "via", gw,
         (char *)NULL))
    return DETOUR_EIO;
  return 0;
}

static int check_link(const detour_netsim_link *l, const char *who, char *err,
                      size_t errlen) {
  if (l->delay_ms < 0 || l->jitter_ms < 0 || l->delay_ms > 3600000 ||
      l->jitter_ms > 3600000 || !(l->loss >= 0 && l->loss <= 1) ||
      (l->rate_bps && (l->rate_bps < 1000 || l->rate_bps > 100000000000ULL)))
    return set_err(err, errlen,
                   "link %s: delay/jitter 0..1h, loss 0..1, "
                   "rate 0 or 1 kbit/s..100 Gbit/s",
                   who),
           DETOUR_EINVAL;
  return 0;
}

static int check_spec(const detour_netsim_spec *spec, char *err,
                      size_t errlen) {
  if (!spec || spec->nservers < 1 || spec->nservers > DETOUR_NETSIM_MAX_SERVERS)
    return set_err(err, errlen, "1 to %d servers", DETOUR_NETSIM_MAX_SERVERS),
           DETOUR_EINVAL;
  if (check_link(&spec->client, "client", err, errlen))
    return DETOUR_EINVAL;
  for (size_t i = 0; i < spec->nservers; i++)
    if (check_link(&spec->servers[i], detour_netsim_link_name((int)i), err,
                   errlen))
      return DETOUR_EINVAL;
  if (spec->nevents > MAX_EVENTS)
    return set_err(err, errlen, "at most %d events", MAX_EVENTS), DETOUR_EINVAL;
  for (size_t i = 0; i < spec->nevents; i++)
    if (!spec->events || !spec->events[i] || !spec->events[i][0])
      return set_err(err, errlen, "event %zu is empty", i), DETOUR_EINVAL;
  return 0;
}

/* ------------------------------------------------------------- program */

/* "--link" argument of slot k. */
static void link_arg(const detour_netsim *ns, const detour_netsim_spec *spec,
                     size_t k, char *out, size_t len) {
  const detour_netsim_link *l = k == 0 ? &spec->client : &spec->servers[k - 1];
  int n =
      snprintf(out, len,
               "%s,ns=%s,tap=%s,addr=10.201.%zu.1/24,delay=%lldms,"
               "jitter=%lldms,loss=%.9g",
               detour_netsim_link_name((int)k - 1), ns->netns[k], ns->tap[k], k,
               (long long)l->delay_ms, (long long)l->jitter_ms, l->loss);
  if (l->rate_bps && n > 0 && (size_t)n < len)
    snprintf(out + n, len - (size_t)n, ",rate=%llubps",
             (unsigned long long)l->rate_bps);
}

static int spawn_program(detour_netsim *ns, const detour_netsim_spec *spec,
                         const char *prog, char *err, size_t errlen) {
  enum { MAXARGS = 4 + 2 * NSLOTS + 2 * MAX_EVENTS };
  static char links[NSLOTS][256]; /* guarded: one start at a time */
  const char *argv[MAXARGS];
  size_t n = 0;
  argv[n++] = prog;
  argv[n++] = "--run-id";
  argv[n++] = ns->run_id;
  for (size_t k = 0; k < ns->nslots; k++) {
    link_arg(ns, spec, k, links[k], sizeof links[k]);
    argv[n++] = "--link";
    argv[n++] = links[k];
  }
  for (size_t i = 0; i < spec->nevents; i++) {
    argv[n++] = "--event";
    argv[n++] = spec->events[i];
  }
  argv[n] = NULL;

  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) != 0)
    return set_err(err, errlen, "pipe: %s", strerror(errno)), DETOUR_EIO;
  if (pipe2(out, O_CLOEXEC) != 0) {
    close(in[0]), close(in[1]);
    return set_err(err, errlen, "pipe: %s", strerror(errno)), DETOUR_EIO;
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_addopen(
      &fa, 2, spec->log_path ? spec->log_path : "/dev/null",
      O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_addclosefrom_np(&fa, 3);
  /* Own process group: a Ctrl-C at the terminal reaches the owner, whose
   * stop (or a later sweep) ends the program in order. Default signals. */
  posix_spawnattr_t at;
  posix_spawnattr_init(&at);
  sigset_t none, defs;
  sigemptyset(&none);
  sigemptyset(&defs);
  sigaddset(&defs, SIGPIPE);
  sigaddset(&defs, SIGTERM);
  sigaddset(&defs, SIGINT);
  sigaddset(&defs, SIGHUP);
  posix_spawnattr_setsigmask(&at, &none);
  posix_spawnattr_setsigdefault(&at, &defs);
  posix_spawnattr_setpgroup(&at, 0);
  posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                    POSIX_SPAWN_SETSIGDEF);
  int rc = posix_spawn(&ns->pid, prog, &fa, &at, (char *const *)argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  close(in[0]);
  close(out[1]);
  if (rc != 0) {
    ns->pid = 0;
    close(in[1]), close(out[0]);
    return set_err(err, errlen, "%s: %s", prog, strerror(rc)), DETOUR_EIO;
  }
  ns->to_fd = in[1];
  ns->from_fd = out[0];
  return 0;
}

/* Next line of the program's stdout, by the deadline. 0 or DETOUR_EIO
 * (EOF, error or timeout). */
static int read_line(detour_netsim *ns, int64_t deadline, char *line,
                     size_t len) {
  for (;;) {
    char *nl = memchr(ns->buf, '\n', ns->buflen);
    if (nl) {
      size_t n = (size_t)(nl - ns->buf);
      snprintf(line, len, "%.*s", (int)n, ns->buf);
      memmove(ns->buf, nl + 1, ns->buflen - n - 1);
      ns->buflen -= n + 1;
      return 0;
    }
    if (ns->buflen == sizeof ns->buf) /* an endless line: drop it */
      ns->buflen = 0;
    int64_t left = deadline - now_ms();
    struct pollfd p = {ns->from_fd, POLLIN, 0};
    if (left <= 0 || poll(&p, 1, (int)left) <= 0)
      return DETOUR_EIO;
    ssize_t got =
        read(ns->from_fd, ns->buf + ns->buflen, sizeof ns->buf - ns->buflen);
    if (got <= 0)
      return DETOUR_EIO;
    ns->buflen += (size_t)got;
  }
}

static int wait_ready(detour_netsim *ns, detour_ms timeout, char *err,
                      size_t errlen) {
  int64_t deadline = now_ms() + (timeout > 0 ? timeout : DEFAULT_READY_MS);
  char line[512];
  while (read_line(ns, deadline, line, sizeof line) == 0) {
    if (strcmp(line, "ready") == 0)
      return 0;
    if (strncmp(line, "error ", 6) == 0)
      return set_err(err, errlen, "detour-netsim: %s", line + 6), DETOUR_EIO;
  }
  int status = 0;
  if (reap_within(ns->pid, 0, &status)) {
    ns->pid = 0;
    return set_err(err, errlen,
                   "detour-netsim exited (status %d) before "
                   "ready; see its log",
                   status),
           DETOUR_EIO;
  }
  return set_err(err, errlen, "detour-netsim not ready after %lld ms",
                 (long long)(timeout > 0 ? timeout : DEFAULT_READY_MS)),
         DETOUR_EIO;
}

/* write() with SIGPIPE held back in this thread: a dead program must be an
 * error here, not the end of the owner. */
static int write_all(int fd, const char *s, size_t n) {
  sigset_t pipe_set, old;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
  int rc = 0;
  while (n > 0) {
    ssize_t w = write(fd, s, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0) {
      rc = DETOUR_EIO;
      if (errno == EPIPE) {
        struct timespec zero = {0, 0};
        sigtimedwait(&pipe_set, NULL, &zero);
      }
      break;
    }
    s += w, n -= (size_t)w;
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return rc;
}

/* ---------------------------------------------------------------- public */

const char *detour_netsim_link_name(int endpoint) {
  static const char *const names[DETOUR_NETSIM_MAX_SERVERS] = {
      "a", "b", "c", "d", "e", "f", "g", "h",
      "i", "j", "k", "l", "m", "n", "o", "p"};
  if (endpoint == DETOUR_NETSIM_CLIENT)
    return "client";
  if (endpoint < 0 || endpoint >= DETOUR_NETSIM_MAX_SERVERS)
    return NULL;
  return names[endpoint];
}

const char *detour_netsim_run_id(const detour_netsim *ns) {
  return ns ? ns->run_id : NULL;
}

const char *detour_netsim_netns(const detour_netsim *ns, int endpoint) {
  int k = slot_of(ns, endpoint);
  return k < 0 ? NULL : ns->netns[k];
}

const char *detour_netsim_tap(const detour_netsim *ns, int endpoint) {
  int k = slot_of(ns, endpoint);
  return k < 0 ? NULL : ns->tap[k];
}

const char *detour_netsim_addr(const detour_netsim *ns, int endpoint) {
  int k = slot_of(ns, endpoint);
  return k < 0 ? NULL : ns->addr[k];
}

long detour_netsim_pid(const detour_netsim *ns) {
  return ns ? (long)ns->pid : -1;
}

int detour_netsim_start(const detour_netsim_spec *spec, detour_netsim **out,
                        char *err, size_t errlen) {
  static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
  char why[256];
  if (!out || check_spec(spec, err, errlen))
    return DETOUR_EINVAL;
  *out = NULL;
  if (!check_available(program_path(spec), why, sizeof why))
    return set_err(err, errlen, "netsim not available: %s", why), DETOUR_EIO;
  detour_netsim_sweep(NULL, 0); /* stale runs of dead owners */
  detour_netsim *ns = calloc(1, sizeof *ns);
  if (!ns)
    return set_err(err, errlen, "out of memory"), DETOUR_ENOMEM;
  ns->to_fd = ns->from_fd = -1;
  ns->nslots = spec->nservers + 1;
  snprintf(ns->run_id, sizeof ns->run_id, "%ldx%u", (long)getpid(),
           atomic_fetch_add(&run_seq, 1) % 1000);
  if (name_slots(ns) != 0) {
    free(ns);
    return set_err(err, errlen, "run id too long"), DETOUR_ERANGE;
  }
  /* A namespace with our run id can only be left by a dead process that
   * had our pid: not ours, remove it. */
  cleanup_run(ns->run_id, NULL, 0);
  int rc = 0;
  for (size_t k = 0; k < ns->nslots && rc == 0; k++)
    rc = setup_slot(ns, k, err, errlen);
  pthread_mutex_lock(&lock);
  if (rc == 0)
    rc = spawn_program(ns, spec, program_path(spec), err, errlen);
  pthread_mutex_unlock(&lock);
  if (rc == 0)
    rc = wait_ready(ns, spec->ready_timeout_ms, err, errlen);
  if (rc != 0) {
    detour_netsim_stop(ns);
    return rc;
  }
  *out = ns;
  return 0;
}

int detour_netsim_command(detour_netsim *ns, const char *line, char *reply,
                          size_t replylen) {
  if (!ns || !line || strchr(line, '\n') || ns->to_fd < 0)
    return DETOUR_EINVAL;
  char buf[512];
  snprintf(buf, sizeof buf, "%s\n", line);
  if (write_all(ns->to_fd, buf, strlen(buf)) != 0)
    return set_err(reply, replylen, "detour-netsim is gone"), DETOUR_EIO;
  int64_t deadline = now_ms() + REPLY_TIMEOUT_MS;
  while (read_line(ns, deadline, buf, sizeof buf) == 0) {
    if (strncmp(buf, "ok", 2) == 0 || strncmp(buf, "error", 5) == 0) {
      set_err(reply, replylen, "%s", buf);
      return buf[0] == 'o' ? 0 : DETOUR_EINVAL;
    }
  }
  set_err(reply, replylen, "no reply from detour-netsim");
  return DETOUR_EIO;
}

/* quit, close its stdin, wait; SIGKILL when it lingers. */
static void end_program(detour_netsim *ns) {
  int status;
  if (ns->to_fd >= 0) {
    write_all(ns->to_fd, "quit\n", 5);
    close(ns->to_fd);
    ns->to_fd = -1;
  }
  if (ns->pid > 0 && !reap_within(ns->pid, QUIT_TIMEOUT_MS, &status)) {
    kill(ns->pid, SIGKILL);
    reap_within(ns->pid, KILL_TIMEOUT_MS, &status);
  }
  ns->pid = 0;
  if (ns->from_fd >= 0)
    close(ns->from_fd);
  ns->from_fd = -1;
}

int detour_netsim_stop(detour_netsim *ns) {
  if (!ns)
    return 0;
  end_program(ns);
  int failed = cleanup_run(ns->run_id, NULL, 0);
  failed += detour_netsim_leftovers(ns->run_id, NULL, 0);
  free(ns);
  return failed ? DETOUR_EIO : 0;
}

int detour_netsim_enter(const detour_netsim *ns, int endpoint, int *saved) {
  char path[128];
  int k = slot_of(ns, endpoint);
  if (k < 0 || !saved)
    return DETOUR_EINVAL;
  snprintf(path, sizeof path, NETNS_DIR "/%s", ns->netns[k]);
  /* thread-self: this thread may already be elsewhere than the process. */
  int here = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  int there = open(path, O_RDONLY | O_CLOEXEC);
  int rc = here >= 0 && there >= 0 && setns(there, CLONE_NEWNET) == 0
               ? 0
               : DETOUR_EIO;
  if (there >= 0)
    close(there);
  if (rc != 0 && here >= 0)
    close(here);
  *saved = rc == 0 ? here : -1;
  return rc;
}

int detour_netsim_leave(int saved) {
  if (saved < 0)
    return DETOUR_EINVAL;
  int rc = setns(saved, CLONE_NEWNET) == 0 ? 0 : DETOUR_EIO;
  close(saved);
  return rc;
}

int detour_netsim_run_in(const detour_netsim *ns, int endpoint,
                         int (*fn)(void *arg), void *arg) {
  int saved;
  if (!fn)
    return DETOUR_EINVAL;
  int rc = detour_netsim_enter(ns, endpoint, &saved);
  if (rc != 0)
    return rc;
  int result = fn(arg);
  return detour_netsim_leave(saved) == 0 ? result : DETOUR_EIO;
}

int detour_netsim_parse_rate(const char *text, uint64_t *bps) {
  char *end;
  if (!text || !bps || !isdigit((unsigned char)text[0]))
    return DETOUR_EPARSE;
  double v = strtod(text, &end), mult = 1;
  if (*end && strchr("kKmMgG", *end)) {
    char c = (char)tolower((unsigned char)*end++);
    mult = c == 'k' ? 1e3 : c == 'm' ? 1e6 : 1e9;
  }
  if (strcmp(end, "bps") != 0 && strcmp(end, "bit") != 0)
    return DETOUR_EPARSE;
  v *= mult;
  if (!isfinite(v) || v < 1e3 || v > 1e11)
    return DETOUR_ERANGE;
  *bps = (uint64_t)v;
  return 0;
}

/*
 * test_netsim.c - the ns-3 network between namespaces (fakeservers/netsim):
 * a TCP echo across simulated links must take the configured round trip
 * (ns-3 adds 1-2 ms); a link cut live or by a timed event is a black hole
 * (connects time out) until it comes back; stop and the sweep of a killed
 * run leave no namespace, tap or process behind.
 *
 * Needs root, /dev/net/tun, `ip` and the built detour-netsim: otherwise the
 * whole binary exits 77 (CTest: skipped) and says why. Every wait is
 * bounded; a failing test still stops its run in the fixture's fini, and
 * anything a crash leaves is swept by the next start.
 *
 * DETOUR_NETSIM_TABLE=1 prints the delay table of fakeservers/netsim/README.md.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "netsim.h"

#define ECHO_PORT 7007
#define ECHOES 15

static detour_netsim *g_ns;
static pid_t g_child;

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ------------------------------------------------------------------------ */
/* Echo servers: one thread per listener, each wait bounded by a stop flag */

typedef struct {
  int listen_fd;
  atomic_int stop;
  pthread_t thread;
  int running;
} echo_server;

static echo_server g_echo[DETOUR_NETSIM_MAX_SERVERS];

/* Waits up to ms for fd to be readable, waking every 100 ms to look at the
 * stop flag. 1 readable, 0 not (timeout or stop). */
static int wait_readable(int fd, int ms, atomic_int *stop) {
  for (int waited = 0; waited < ms && !atomic_load(stop); waited += 100) {
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 100) > 0)
      return 1;
  }
  return 0;
}

static void serve_one(int fd, atomic_int *stop) {
  char buf[256];
  while (wait_readable(fd, 10000, stop)) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0 || write(fd, buf, (size_t)n) != n)
      break;
  }
  close(fd);
}

static void *echo_main(void *arg) {
  echo_server *e = arg;
  while (wait_readable(e->listen_fd, 30000, &e->stop)) {
    int fd = accept(e->listen_fd, NULL, NULL);
    if (fd >= 0)
      serve_one(fd, &e->stop);
  }
  return NULL;
}

/* Runs inside the server's namespace: the listener belongs to it. */
static int make_listener(void *arg) {
  (void)arg;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons(ECHO_PORT),
                           .sin_addr.s_addr = htonl(INADDR_ANY)};
  if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
      bind(fd, (struct sockaddr *)&sa, sizeof sa) || listen(fd, 8)) {
    if (fd >= 0)
      close(fd);
    return -errno;
  }
  return fd;
}

static void start_echo(int server) {
  echo_server *e = &g_echo[server];
  e->listen_fd = detour_netsim_run_in(g_ns, server, make_listener, NULL);
  cr_assert_geq(e->listen_fd, 0, "listener in server %d: %d", server,
                e->listen_fd);
  atomic_store(&e->stop, 0);
  cr_assert_eq(pthread_create(&e->thread, NULL, echo_main, e), 0);
  e->running = 1;
}

static void stop_echoes(void) {
  for (int i = 0; i < DETOUR_NETSIM_MAX_SERVERS; i++) {
    echo_server *e = &g_echo[i];
    if (!e->running)
      continue;
    atomic_store(&e->stop, 1);
    pthread_join(e->thread, NULL); /* bounded: every wait checks stop */
    close(e->listen_fd);
    e->running = 0;
  }
}

/* ------------------------------------------------------------------------ */
/* Client side                                                               */

static int make_client_socket(void *arg) {
  (void)arg;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  return fd < 0 ? -errno : fd;
}

/* Connects from the client namespace to server's echo port within ms.
 * Returns the fd, or -ETIMEDOUT / -errno. */
static int connect_to(int server, int ms) {
  int fd = detour_netsim_run_in(g_ns, DETOUR_NETSIM_CLIENT, make_client_socket,
                                NULL);
  if (fd < 0)
    return fd;
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(ECHO_PORT)};
  inet_pton(AF_INET, detour_netsim_addr(g_ns, server), &sa.sin_addr);
  fcntl(fd, F_SETFL, O_NONBLOCK);
  int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
  if (rc != 0 && errno == EINPROGRESS) {
    struct pollfd p = {fd, POLLOUT, 0};
    int soerr = 0;
    socklen_t len = sizeof soerr;
    if (poll(&p, 1, ms) != 1)
      rc = -ETIMEDOUT;
    else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) || soerr)
      rc = -(soerr ? soerr : errno);
    else
      rc = 0;
  } else if (rc != 0) {
    rc = -errno;
  }
  if (rc != 0) {
    close(fd);
    return rc;
  }
  fcntl(fd, F_SETFL, 0);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

/* One byte there and back; the round trip in ms, or -1 (2 s bound). */
static double echo_once(int fd) {
  char c = 'x';
  double t0 = now_ms();
  struct pollfd p = {fd, POLLIN, 0};
  if (write(fd, &c, 1) != 1 || poll(&p, 1, 2000) != 1 || read(fd, &c, 1) != 1)
    return -1;
  return now_ms() - t0;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Median RTT of ECHOES echoes after two warm-ups (ARP, slow start). */
static double median_rtt(int server, double *min, double *max) {
  int fd = connect_to(server, 5000);
  cr_assert_geq(fd, 0, "connect to server %d: %s", server, strerror(-fd));
  double rtt[ECHOES];
  for (int i = 0; i < 2; i++)
    cr_assert_geq(echo_once(fd), 0, "warm-up echo");
  for (int i = 0; i < ECHOES; i++) {
    rtt[i] = echo_once(fd);
    cr_assert_geq(rtt[i], 0, "echo %d to server %d", i, server);
  }
  close(fd);
  qsort(rtt, ECHOES, sizeof *rtt, cmp_double);
  *min = rtt[0];
  *max = rtt[ECHOES - 1];
  return rtt[ECHOES / 2];
}

/* ------------------------------------------------------------------------ */
/* Runs                                                                      */

static void start_run(detour_netsim_spec *spec) {
  char err[512];
  spec->log_path = getenv("DETOUR_NETSIM_LOG");
  double t0 = now_ms();
  int rc = detour_netsim_start(spec, &g_ns, err, sizeof err);
  cr_assert_eq(rc, 0, "start: %s", err);
  cr_log_info("run %s, detour-netsim pid %ld, %zu servers, ready in %.0f ms",
              detour_netsim_run_id(g_ns), detour_netsim_pid(g_ns),
              spec->nservers, now_ms() - t0);
}

/* Stops the run and checks that nothing of it is left. */
static void stop_run(void) {
  char run_id[32], what[1024];
  stop_echoes();
  if (!g_ns)
    return;
  snprintf(run_id, sizeof run_id, "%s", detour_netsim_run_id(g_ns));
  double t0 = now_ms();
  int rc = detour_netsim_stop(g_ns);
  cr_log_info("run %s stopped in %.0f ms", run_id, now_ms() - t0);
  g_ns = NULL;
  int left = detour_netsim_leftovers(run_id, what, sizeof what);
  cr_expect_eq(rc, 0, "stop of run %s", run_id);
  cr_expect_eq(left, 0, "left of run %s: %s", run_id, what);
}

static void reap_all(void) {
  if (g_child > 0) {
    kill(g_child, SIGKILL);
    waitpid(g_child, NULL, 0);
    g_child = 0;
  }
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
}

static void fini(void) {
  stop_run();
  reap_all();
}

TestSuite(netsim, .fini = fini, .timeout = 90);

Test(netsim, rtt_matches_configured_delay) {
  detour_netsim_spec spec = {.nservers = 2};
  spec.servers[0].delay_ms = 20;
  spec.servers[1].delay_ms = 100;
  start_run(&spec);
  for (int i = 0; i < 2; i++) {
    start_echo(i);
    double lo, hi, want = (double)spec.servers[i].delay_ms;
    double med = median_rtt(i, &lo, &hi);
    cr_log_info("link %s delay %.0f ms: median RTT %.2f ms (min %.2f, max "
                "%.2f, %d echoes)",
                detour_netsim_link_name(i), want, med, lo, hi, ECHOES);
    /* Never faster than the wire; ns-3 and the kernels add 1-2 ms, more
     * on a loaded 2-core CI machine. */
    cr_expect_geq(med, want - 0.5, "median %.2f < %.0f", med, want);
    cr_expect_leq(med, want * 1.1 + 5, "median %.2f >> %.0f", med, want);
  }
}

Test(netsim, live_link_down_is_a_black_hole_until_up) {
  detour_netsim_spec spec = {.nservers = 2};
  spec.servers[0].delay_ms = 10;
  start_run(&spec);
  start_echo(0);
  int est = connect_to(0, 5000);
  cr_assert_geq(est, 0, "connect before the cut: %s", strerror(-est));
  cr_assert_geq(echo_once(est), 0, "echo before the cut");

  char reply[256];
  cr_assert_eq(detour_netsim_command(g_ns, "link a down", reply, sizeof reply),
               0, "%s", reply);
  /* The established connection stalls: its byte is not echoed. */
  char c = 'y';
  struct pollfd p = {est, POLLIN, 0};
  cr_assert_eq(write(est, &c, 1), 1);
  double t_sent = now_ms();
  cr_expect_eq(poll(&p, 1, 1000), 0, "an echo crossed a down link");
  double t0 = now_ms();
  int fd = connect_to(0, 1500);
  cr_expect_eq(fd, -ETIMEDOUT, "connect through a down link: %d", fd);
  cr_expect_geq(now_ms() - t0, 1400, "the timeout came early: no black hole");
  if (fd >= 0)
    close(fd);

  cr_assert_eq(detour_netsim_command(g_ns, "link a up", reply, sizeof reply), 0,
               "%s", reply);
  double t_up = now_ms();
  /* ...and resumes by retransmission once the link is back. */
  cr_expect_eq(poll(&p, 1, 5000), 1, "the stalled echo never came back");
  cr_expect_eq(read(est, &c, 1), 1);
  cr_log_info("stalled echo: back %.0f ms after up (sent %.0f ms before up)",
              now_ms() - t_up, t_up - t_sent);
  close(est);
  t0 = now_ms();
  fd = connect_to(0, 5000);
  cr_log_info("connect after up: %.1f ms", now_ms() - t0);
  cr_expect_geq(fd, 0, "connect after up: %s", strerror(-fd));
  if (fd >= 0)
    cr_expect_geq(echo_once(fd), 0, "echo after up");
  if (fd >= 0)
    close(fd);

  /* Bad commands are refused, not fatal; status still answers. */
  cr_expect_eq(detour_netsim_command(g_ns, "link z down", reply, sizeof reply),
               DETOUR_EINVAL);
  cr_expect_eq(
      detour_netsim_command(g_ns, "link a delay fast", reply, sizeof reply),
      DETOUR_EINVAL);
  cr_expect_eq(detour_netsim_command(g_ns, "status", reply, sizeof reply), 0);
  cr_log_info("status:%s", reply + 2);
}

Test(netsim, timed_events_cut_and_restore_the_link) {
  static const char *const events[] = {"800ms:a:down", "2500ms:a:up"};
  detour_netsim_spec spec = {.nservers = 1, .events = events, .nevents = 2};
  spec.servers[0].delay_ms = 10;
  start_run(&spec);
  double t0 = now_ms();
  start_echo(0);
  int fd = connect_to(0, 600);
  cr_assert_geq(fd, 0, "connect before the event: %s", strerror(-fd));
  close(fd);

  while (now_ms() - t0 < 1000)
    usleep(10000);
  fd = connect_to(0, 1000);
  cr_expect_eq(fd, -ETIMEDOUT, "connect at t=1.0-2.0 s: %d", fd);
  if (fd >= 0)
    close(fd);

  while (now_ms() - t0 < 2700)
    usleep(10000);
  fd = connect_to(0, 5000);
  cr_expect_geq(fd, 0, "connect after the up event: %s", strerror(-fd));
  if (fd >= 0)
    close(fd);
}

Test(netsim, bad_spec_is_refused_and_leaves_nothing) {
  char err[256], what[512];
  static const char *const events[] = {"2s:zz:down"};
  detour_netsim_spec spec = {.nservers = 1, .events = events, .nevents = 1};
  detour_netsim *ns = NULL;
  int before = detour_netsim_leftovers(NULL, NULL, 0);
  cr_expect_eq(detour_netsim_start(&spec, &ns, err, sizeof err), DETOUR_EIO);
  cr_expect_null(ns);
  cr_log_info("refused: %s", err);
  cr_expect(strstr(err, "zz") != NULL, "the error names the link: %s", err);
  cr_expect_leq(detour_netsim_leftovers(NULL, what, sizeof what), before,
                "left: %s", what);
  spec.nservers = 0;
  cr_expect_eq(detour_netsim_start(&spec, &ns, err, sizeof err), DETOUR_EINVAL);
}

/* A child owns a run and is SIGKILLed: nothing stops the run in order, so
 * the sweep must remove it (its program, its namespaces and taps). */
Test(netsim, killed_run_is_swept) {
  int fds[2];
  cr_assert_eq(pipe(fds), 0);
  /* Orphans (the child's detour-netsim) come back to us to be reaped. */
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  g_child = fork();
  cr_assert_geq(g_child, 0);
  if (g_child == 0) {
    detour_netsim_spec spec = {.nservers = 2};
    detour_netsim *ns;
    char err[256];
    close(fds[0]);
    if (detour_netsim_start(&spec, &ns, err, sizeof err) != 0)
      snprintf(err, sizeof err, "!start failed");
    else
      snprintf(err, sizeof err, "%s", detour_netsim_run_id(ns));
    if (write(fds[1], err, strlen(err) + 1) < 0)
      _exit(1);
    sleep(60); /* killed long before */
    _exit(0);
  }
  close(fds[1]);
  char run_id[256] = "";
  struct pollfd p = {fds[0], POLLIN, 0};
  cr_assert_eq(poll(&p, 1, 20000), 1, "the child did not start a run");
  cr_assert_gt(read(fds[0], run_id, sizeof run_id - 1), 0);
  close(fds[0]);
  cr_assert_neq(run_id[0], '!', "child: %s", run_id);

  char what[1024], report[1024];
  cr_expect_geq(detour_netsim_leftovers(run_id, what, sizeof what), 3,
                "a live run has 3 namespaces and a program: %s", what);
  detour_netsim_sweep(report, sizeof report);
  cr_expect(strstr(report, run_id) == NULL,
            "a live owner's run must survive the sweep: %s", report);
  cr_expect_geq(detour_netsim_leftovers(run_id, NULL, 0), 3);

  kill(g_child, SIGKILL);
  waitpid(g_child, NULL, 0);
  g_child = 0;
  int swept = detour_netsim_sweep(report, sizeof report);
  cr_log_info("sweep: %d (%s)", swept, report);
  cr_expect_geq(swept, 1, "sweep: %s", report);
  reap_all();
  cr_expect_eq(detour_netsim_leftovers(run_id, what, sizeof what), 0,
               "left of run %s: %s", run_id, what);
}

/* The README's table: several delays, a jittered and a slow link in one
 * topology. Each link must show what it was given: a median round trip
 * within the configured delay (+- the jitter; ns-3 adds 1-2 ms, more on a
 * loaded machine), and a jittered link a spread of at least half its
 * jitter, so a simulator that dropped a link's delay or jitter fails
 * here. DETOUR_NETSIM_TABLE=1 also prints the table. */
Test(netsim, delay_table) {
  static const detour_ms delays[] = {0, 2, 20, 100, 400, 100, 100};
  static const detour_ms jitters[] = {0, 0, 0, 0, 0, 20, 0};
  static const uint64_t rates[] = {0, 0, 0, 0, 0, 0, 1000000};
  enum { N = sizeof delays / sizeof *delays };
  bool print = getenv("DETOUR_NETSIM_TABLE") != NULL;
  detour_netsim_spec spec = {.nservers = N};
  for (int i = 0; i < N; i++) {
    spec.servers[i].delay_ms = delays[i];
    spec.servers[i].jitter_ms = jitters[i];
    spec.servers[i].rate_bps = rates[i];
  }
  start_run(&spec);
  if (print)
    printf("| link | delay | jitter | rate | median RTT | min | max |\n"
           "|---|---:|---:|---:|---:|---:|---:|\n");
  for (int i = 0; i < N; i++) {
    double lo, hi;
    start_echo(i);
    double med = median_rtt(i, &lo, &hi);
    double want = (double)delays[i], jitter = (double)jitters[i];
    if (print)
      printf("| %s | %lld ms | %lld ms | %s | %.2f ms | %.2f ms | %.2f ms |\n",
             detour_netsim_link_name(i), (long long)delays[i],
             (long long)jitters[i], rates[i] ? "1 Mbit/s" : "1 Gbit/s", med, lo,
             hi);
    fflush(stdout);
    cr_expect_geq(med, want - jitter - 0.5, "link %s: median %.2f < %.0f ms",
                  detour_netsim_link_name(i), med, want);
    cr_expect_leq(med, want * 1.1 + jitter + 5,
                  "link %s: median %.2f >> %.0f ms", detour_netsim_link_name(i),
                  med, want);
    if (jitter > 0)
      cr_expect_geq(hi - lo, jitter / 2,
                    "link %s: spread %.2f ms for a jitter of %.0f ms",
                    detour_netsim_link_name(i), hi - lo, jitter);
  }
}

/* The whole binary skips (77) with a reason when netsim cannot run here. */
int main(int argc, char *argv[]) {
  char why[256];
  if (!detour_netsim_available(why, sizeof why)) {
    printf("test_netsim: SKIP: %s\n", why);
    return 77;
  }
  struct criterion_test_set *tests = criterion_initialize();
  int result = 0;
  if (criterion_handle_args(argc, argv, true))
    result = !criterion_run_all_tests(tests);
  criterion_finalize(tests);
  return result;
}

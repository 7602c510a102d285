/*
 * adapter_postfix.c - the reference adapter (detour/adapter.h) for Postfix:
 * a private instance per scenario run or bench run, never the system's.
 *
 * prepare: a temp dir with etc/ (main.cf, master.cf), queue/ (its own
 * queue_directory) and data/ (data_directory); `postfix -c DIR/etc start`.
 * The instance listens only on 127.0.0.1 at a free port (its smtpd is how
 * messages are submitted: `sendmail -C` would go through the set-gid
 * postdrop, which refuses a config directory that the system's main.cf
 * does not list). relayhost is the scenario's first server,
 * smtp_fallback_relay the others in priority order (R1); the retry
 * interval becomes minimal/maximal_backoff_time and queue_run_delay (R6),
 * the timeouts smtp_*_timeout (R11). Bounces are switched off per
 * recipient (NOTIFY=NEVER) so that a refused recipient does not make
 * Postfix send a bounce to a fake server, which would look like mail.
 *
 * wait_done: the queue holds no message file (delivered, or bounced
 * without notice). teardown: `postfix stop`, wait for the master to go
 * (SIGKILL after a bound), remove the temp dir, also after any failure.
 */
#define _GNU_SOURCE /* mkdtemp, nftw */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "adapter.h"

/* Bounds of every wait, in ms. `postfix start` runs its checks first. */
#define START_LIMIT_MS 30000
#define STOP_LIMIT_MS 10000
#define PORT_LIMIT_MS 10000
#define MASTER_GONE_MS 5000
#define SMTP_IO_LIMIT_S 10
#define POLL_MS 20

typedef struct {
  char dir[256];     /* the temp dir; everything is under it */
  char etc[300];     /* config_directory */
  char queue[300];   /* queue_directory */
  char maillog[300]; /* maillog_file */
  char out[300];     /* output of the postfix commands */
  char postfix[256]; /* the postfix command */
  uint16_t port;     /* its smtpd, on 127.0.0.1 */
  bool started;
} pf;

static const char *const pf_paths[] = {"/usr/sbin/postfix",
                                       "/usr/local/sbin/postfix"};

static bool find_postfix(char *out, size_t len) {
  for (size_t i = 0; i < sizeof pf_paths / sizeof *pf_paths; i++)
    if (access(pf_paths[i], X_OK) == 0) {
      snprintf(out, len, "%s", pf_paths[i]);
      return true;
    }
  return false;
}

static bool pf_available(char *why, size_t len) {
  char path[256];
  if (!find_postfix(path, sizeof path))
    snprintf(why, len, "postfix is not installed (Debian package postfix)");
  else if (geteuid() != 0)
    snprintf(why, len,
             "needs root (a private Postfix instance starts as "
             "root and drops to the postfix user)");
  else if (!getpwnam("postfix") || !getgrnam("postdrop"))
    snprintf(why, len, "the postfix user or postdrop group is missing");
  else
    return true;
  return false;
}

/* ------------------------------------------------------------------------ */
/* Processes and files                                                       */

static long ms_since(const struct timespec *t0) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

static void nap_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* Run `postfix -c etc VERB`, output appended to p->out; its exit status,
 * or -1 when it could not run or took longer than limit_ms (killed). */
static int postfix_cmd(const pf *p, const char *verb, long limit_ms) {
  pid_t pid = fork();
  if (pid < 0)
    return -1;
  if (pid == 0) { /* only async-signal-safe calls until exec */
    int fd = open(p->out, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
    execl(p->postfix, "postfix", "-c", p->etc, verb, (char *)NULL);
    _exit(127);
  }
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  int st;
  while (waitpid(pid, &st, WNOHANG) == 0) {
    if (ms_since(&t0) > limit_ms) {
      kill(pid, SIGKILL);
      waitpid(pid, &st, 0);
      return -1;
    }
    nap_ms(POLL_MS);
  }
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The master's pid from queue/pid/master.pid, or 0. */
static pid_t master_pid(const pf *p) {
  char path[400];
  snprintf(path, sizeof path, "%s/pid/master.pid", p->queue);
  FILE *f = fopen(path, "r");
  long pid = 0;
  if (f) {
    if (fscanf(f, "%ld", &pid) != 1)
      pid = 0;
    fclose(f);
  }
  return (pid_t)pid;
}

/* Gone, or a zombie nobody reaps (a container's PID 1 may not). */
static bool process_alive(pid_t pid) {
  char path[64], stat[256] = "";
  if (pid <= 0 || kill(pid, 0) != 0)
    return false;
  snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
  FILE *f = fopen(path, "r");
  if (!f)
    return false;
  size_t n = fread(stat, 1, sizeof stat - 1, f);
  fclose(f);
  stat[n] = '\0';
  const char *paren = strrchr(stat, ')');
  return !(paren && paren[1] == ' ' && paren[2] == 'Z');
}

static int rm_one(const char *path, const struct stat *sb, int type,
                  struct FTW *ftw) {
  (void)sb;
  (void)type;
  (void)ftw;
  remove(path);
  return 0;
}

static void remove_tree(const char *dir) {
  if (dir[0])
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A port on 127.0.0.1 that nothing uses now (the kernel's choice). */
static uint16_t free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  socklen_t len = sizeof a;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  uint16_t port = 0;
  if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
      getsockname(fd, (struct sockaddr *)&a, &len) == 0)
    port = ntohs(a.sin_port);
  if (fd >= 0)
    close(fd);
  return port;
}

/* A connected socket to the instance's smtpd with I/O timeouts, or -1.
 * TCP_NODELAY: a command written while the previous segment waits for a
 * delayed ACK would otherwise wait too (tens of ms per command), and that
 * time counts in `detour bench`'s latency. Each command and each body
 * chunk is one send, so no tiny segments follow. */
static int connect_smtpd(const pf *p) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(p->port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  struct timeval tv = {SMTP_IO_LIMIT_S, 0};
  int one = 1;
  if (fd < 0)
    return -1;
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* ------------------------------------------------------------------------ */
/* Configuration                                                             */

/* Postfix time values are whole seconds here; never 0 (a 0 means no
 * waiting at all, or is refused). */
static long secs(detour_ms ms) {
  return ms <= 1000 ? 1 : (long)((ms + 999) / 1000);
}

static void destination(const detour_adapter_server *s, char *buf, size_t len) {
  bool v6 = strchr(s->host, ':') != NULL;
  snprintf(buf, len, "[%s%s]:%u", v6 ? "ipv6:" : "", s->host,
           (unsigned)s->port);
}

static bool loopback(const char *host) {
  return !strncmp(host, "127.", 4) || !strcmp(host, "::1");
}

static void write_relays(FILE *f, const detour_adapter_config *c) {
  char d[128];
  destination(&c->servers[0], d, sizeof d);
  fprintf(f, "relayhost = %s\nsmtp_fallback_relay =", d);
  for (size_t i = 1; i < c->nservers; i++) {
    destination(&c->servers[i], d, sizeof d);
    fprintf(f, "%s %s", i > 1 ? "," : "", d);
  }
  /* every listed server may be tried in one delivery (R7 rounds) */
  size_t n = c->nservers > 5 ? c->nservers : 5;
  fprintf(f, "\nsmtp_mx_session_limit = %zu\nsmtp_mx_address_limit = %zu\n", n,
          n);
}

static void write_times(FILE *f, const detour_adapter_config *c) {
  const detour_timeouts *t = &c->timeouts;
  long retry = secs(c->retry_interval);
  /* retries come every interval: the backoff neither grows nor waits for a
   * slower queue scan */
  fprintf(f,
          "minimal_backoff_time = %lds\nmaximal_backoff_time = %lds\n"
          "queue_run_delay = %lds\n",
          retry, retry, retry);
  /* Postfix has one timeout for the greeting and the EHLO reply */
  detour_ms helo = t->greeting > t->ehlo ? t->greeting : t->ehlo;
  fprintf(f,
          "smtp_connect_timeout = %lds\nsmtp_helo_timeout = %lds\n"
          "smtp_mail_timeout = %lds\nsmtp_rcpt_timeout = %lds\n"
          "smtp_data_init_timeout = %lds\nsmtp_data_xfer_timeout = %lds\n"
          "smtp_data_done_timeout = %lds\nsmtp_quit_timeout = %lds\n",
          secs(t->connect), secs(helo), secs(t->mail), secs(t->rcpt),
          secs(t->data_start), secs(t->data_block), secs(t->final_dot),
          secs(t->quit));
}

/* Everything not from the scenario keeps the instance private and quiet:
 * loopback only, no local delivery, no DNS, no TLS, its own log file. */
static int write_main_cf(const pf *p, const detour_adapter_config *c) {
  char path[400];
  snprintf(path, sizeof path, "%s/main.cf", p->etc);
  FILE *f = fopen(path, "w");
  if (!f)
    return -1;
  fprintf(f,
          "# detour: private instance for %s (generated; removed at teardown)\n"
          "compatibility_level = 3.6\nqueue_directory = %s\n"
          "data_directory = %s/data\nmail_owner = postfix\n"
          "myhostname = detour-client.test\nmydomain = detour-client.test\n"
          "mydestination =\nlocal_recipient_maps =\nalias_maps =\n"
          "alias_database =\ninet_interfaces = loopback-only\n"
          "inet_protocols = all\nmynetworks = 127.0.0.0/8, [::1]/128\n"
          "smtpd_relay_restrictions = permit_mynetworks, reject\n"
          "smtp_helo_name = %s\nsmtp_tls_security_level = none\n"
          "smtp_dns_support_level = disabled\nsmtputf8_enable = no\n"
          "smtp_connection_cache_on_demand = no\n"
          "biff = no\nmaillog_file = %s\nmaillog_file_prefixes = %s\n",
          c->scenario ? c->scenario : "?", p->queue, p->dir,
          c->helo_name && *c->helo_name ? c->helo_name : "localhost",
          p->maillog, p->dir);
  write_relays(f, c);
  write_times(f, c);
  return fclose(f) == 0 ? 0 : -1;
}

/* Only what a relay needs; no chroot (the private queue dir has none of
 * the files a chroot needs), smtpd on 127.0.0.1 only. */
static int write_master_cf(const pf *p) {
  char path[400];
  snprintf(path, sizeof path, "%s/master.cf", p->etc);
  FILE *f = fopen(path, "w");
  if (!f)
    return -1;
  fprintf(f,
          "127.0.0.1:%u inet n - n - - smtpd\n"
          "pickup unix n - n 60 1 pickup\ncleanup unix n - n - 0 cleanup\n"
          "qmgr unix n - n 300 1 qmgr\n"
          "rewrite unix - - n - - trivial-rewrite\n"
          "bounce unix - - n - 0 bounce\ndefer unix - - n - 0 bounce\n"
          "trace unix - - n - 0 bounce\nverify unix - - n - 1 verify\n"
          "flush unix n - n 1000? 0 flush\n"
          "proxymap unix - - n - - proxymap\nsmtp unix - - n - - smtp\n"
          "relay unix - - n - - smtp\nerror unix - - n - - error\n"
          "retry unix - - n - - error\ndiscard unix - - n - - discard\n"
          "showq unix n - n - - showq\nanvil unix - - n - 1 anvil\n"
          "scache unix - - n - 1 scache\n"
          "postlog unix-dgram n - n - 1 postlogd\n",
          (unsigned)p->port);
  return fclose(f) == 0 ? 0 : -1;
}

/* The tree: DIR 0755 (the postfix user walks into queue/), data/ owned
 * by postfix (its lock and caches). */
static int make_dirs(pf *p) {
  const char *tmp = getenv("TMPDIR");
  snprintf(p->dir, sizeof p->dir, "%s/detour-postfix-XXXXXX",
           tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(p->dir)) {
    p->dir[0] = '\0';
    return -1;
  }
  snprintf(p->etc, sizeof p->etc, "%s/etc", p->dir);
  snprintf(p->queue, sizeof p->queue, "%s/queue", p->dir);
  snprintf(p->maillog, sizeof p->maillog, "%s/maillog", p->dir);
  snprintf(p->out, sizeof p->out, "%s/postfix.out", p->dir);
  char data[300];
  snprintf(data, sizeof data, "%s/data", p->dir);
  const struct passwd *pw = getpwnam("postfix");
  if (chmod(p->dir, 0755) != 0 || mkdir(p->etc, 0755) != 0 ||
      mkdir(p->queue, 0755) != 0 || mkdir(data, 0700) != 0 || !pw ||
      chown(data, pw->pw_uid, pw->pw_gid) != 0)
    return -1;
  return 0;
}

/* ------------------------------------------------------------------------ */
/* The adapter                                                               */

static void pf_teardown(void *inst);

/* Wait until the smtpd port answers (the master binds it at start). */
static bool smtpd_ready(const pf *p) {
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  while (ms_since(&t0) < PORT_LIMIT_MS) {
    int fd = connect_smtpd(p);
    if (fd >= 0) {
      close(fd);
      return true;
    }
    nap_ms(POLL_MS);
  }
  return false;
}

/* ": " and the first line of what the postfix command said, or "". */
static const char *first_line(const char *path, char *buf, size_t len) {
  FILE *f = path[0] ? fopen(path, "r") : NULL;
  char line[160] = "";
  if (f) {
    if (!fgets(line, sizeof line, f))
      line[0] = '\0';
    fclose(f);
  }
  line[strcspn(line, "\n")] = '\0';
  snprintf(buf, len, "%s%s", line[0] ? ": " : "", line);
  return buf;
}

static const char *check_config(const detour_adapter_config *c) {
  if (c->nservers == 0)
    return "no servers";
  for (size_t i = 0; i < c->nservers; i++)
    if (!loopback(c->servers[i].host))
      return "a server is not a loopback address";
  return NULL;
}

/* Marked started first: a start that half-worked is stopped too. */
static int start(pf *p) {
  p->started = true;
  return postfix_cmd(p, "start", START_LIMIT_MS);
}

static void *pf_prepare(const detour_adapter_config *c, char *err,
                        size_t errlen) {
  const char *bad = check_config(c);
  if (bad) {
    snprintf(err, errlen, "postfix: %s", bad);
    return NULL;
  }
  pf *p = calloc(1, sizeof *p);
  if (!p) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  const char *what = NULL;
  if (!find_postfix(p->postfix, sizeof p->postfix))
    what = "postfix not found";
  else if (make_dirs(p) < 0)
    what = "cannot make the instance's directories";
  else if (!(p->port = free_port()))
    what = "no free loopback port for its smtpd";
  else if (write_main_cf(p, c) < 0 || write_master_cf(p) < 0)
    what = "cannot write main.cf / master.cf";
  else if (start(p) != 0)
    what = "`postfix start` failed";
  else if (!smtpd_ready(p))
    what = "its smtpd did not answer";
  if (!what)
    return p;
  char said[200];
  snprintf(err, errlen, "postfix (%s): %s%s", p->dir[0] ? p->dir : "no dir",
           what, first_line(p->out, said, sizeof said));
  pf_teardown(p);
  return NULL;
}

/* One SMTP reply (multi-line: up to the "DDD " line); its code or -1. */
static int read_reply(int fd, char *line, size_t len) {
  size_t n = 0;
  for (;;) {
    char ch;
    if (recv(fd, &ch, 1, 0) != 1)
      return -1;
    if (ch != '\n') {
      if (n + 1 < len)
        line[n++] = ch;
      continue;
    }
    line[n] = '\0';
    if (n >= 4 && line[3] == ' ')
      return atoi(line);
    if (n < 4 || line[3] != '-')
      return -1;
    n = 0;
  }
}

static bool send_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
    if (k <= 0)
      return false;
    p += k;
    n -= (size_t)k;
  }
  return true;
}

/* Send a command and want a reply of class want (2 or 3). */
static bool command(int fd, const char *cmd, int want, char *err,
                    size_t errlen) {
  char line[1300]; /* a command (up to 1200) and CRLF, then the reply */
  int n = cmd ? snprintf(line, sizeof line, "%s\r\n", cmd) : 0;
  if (cmd &&
      (n < 0 || (size_t)n >= sizeof line || !send_all(fd, line, (size_t)n))) {
    snprintf(err, errlen, "postfix smtpd: cannot send '%s'", cmd);
    return false;
  }
  int code = read_reply(fd, line, sizeof line);
  if (code / 100 == want)
    return true;
  snprintf(err, errlen, "postfix smtpd refused '%s': %s",
           cmd ? cmd : "(greeting)", code < 0 ? "no reply" : line);
  return false;
}

/* The body with CRLF line ends, dot-stuffed, then the final ".", sent in
 * chunks of up to sizeof buf (room for the 3 bytes one input byte may
 * become, and for the final 5). */
static bool send_body(int fd, const detour_adapter_message *m) {
  char buf[4096];
  size_t n = 0;
  bool bol = true;
  for (size_t i = 0; i < m->body_len; i++) {
    char ch = m->body[i];
    if (n + 3 > sizeof buf) {
      if (!send_all(fd, buf, n))
        return false;
      n = 0;
    }
    if (bol && ch == '.')
      buf[n++] = '.';
    if (ch == '\n' && (i == 0 || m->body[i - 1] != '\r'))
      buf[n++] = '\r';
    buf[n++] = ch;
    bol = ch == '\n';
  }
  if (n + 5 > sizeof buf) {
    if (!send_all(fd, buf, n))
      return false;
    n = 0;
  }
  memcpy(buf + n, bol ? ".\r\n" : "\r\n.\r\n", bol ? 3 : 5);
  return send_all(fd, buf, n + (bol ? 3 : 5));
}

/* NOTIFY=NEVER: no bounce to the sender, which Postfix would relay to the
 * fake servers as a message of its own. */
static int pf_submit(void *inst, const detour_adapter_message *m, char *err,
                     size_t errlen) {
  pf *p = inst;
  int fd = connect_smtpd(p);
  if (fd < 0) {
    snprintf(err, errlen, "cannot connect to postfix smtpd 127.0.0.1:%u",
             (unsigned)p->port);
    return -1;
  }
  char cmd[1200];
  bool ok = command(fd, NULL, 2, err, errlen) &&
            command(fd, "EHLO detour-bench.test", 2, err, errlen);
  snprintf(cmd, sizeof cmd, "MAIL FROM:<%s>", m->from);
  ok = ok && command(fd, cmd, 2, err, errlen);
  for (size_t i = 0; ok && i < m->nrcpts; i++) {
    snprintf(cmd, sizeof cmd, "RCPT TO:<%s> NOTIFY=NEVER", m->rcpts[i]);
    ok = command(fd, cmd, 2, err, errlen);
  }
  ok = ok && command(fd, "DATA", 3, err, errlen);
  if (ok && !send_body(fd, m)) {
    snprintf(err, errlen, "postfix smtpd: cannot send the message");
    ok = false;
  }
  ok = ok && command(fd, NULL, 2, err, errlen);
  if (ok)
    command(fd, "QUIT", 2, err, errlen); /* the message is queued already */
  close(fd);
  return ok ? 0 : -1;
}

/* Message files in dir and one level of hashed subdirs (deferred/A/...). */
static size_t count_files(const char *dir, int depth) {
  DIR *d = opendir(dir);
  size_t n = 0;
  if (!d)
    return 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.')
      continue;
    char path[600];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    if (lstat(path, &st) != 0)
      continue;
    if (S_ISREG(st.st_mode))
      n++;
    else if (S_ISDIR(st.st_mode) && depth < 2)
      n += count_files(path, depth + 1);
  }
  closedir(d);
  return n;
}

static bool queue_empty(const pf *p) {
  static const char *const qs[] = {"maildrop", "incoming", "active", "deferred",
                                   "hold"};
  size_t n = 0;
  for (size_t i = 0; i < sizeof qs / sizeof *qs; i++) {
    char path[400];
    snprintf(path, sizeof path, "%s/%s", p->queue, qs[i]);
    n += count_files(path, 0);
  }
  return n == 0;
}

static int pf_wait_done(void *inst, detour_ms timeout, char *err,
                        size_t errlen) {
  pf *p = inst;
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (;;) {
    if (queue_empty(p))
      return 1;
    if (!process_alive(master_pid(p))) {
      snprintf(err, errlen, "the postfix master is gone (see %s)", p->maillog);
      return -1;
    }
    if (ms_since(&t0) >= timeout)
      return 0;
    nap_ms(POLL_MS);
  }
}

static const char *pf_logs(void *inst) { return ((pf *)inst)->maillog; }

/* Stop, wait for the master (SIGKILL after MASTER_GONE_MS: it is ours),
 * remove everything. DETOUR_KEEP_CLIENT=1 keeps the dir for a post-mortem. */
static void pf_teardown(void *inst) {
  pf *p = inst;
  if (!p)
    return;
  pid_t master = master_pid(p);
  if (p->started)
    postfix_cmd(p, "stop", STOP_LIMIT_MS);
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  while (process_alive(master) && ms_since(&t0) < MASTER_GONE_MS)
    nap_ms(POLL_MS);
  if (process_alive(master))
    kill(master, SIGKILL);
  const char *keep = getenv("DETOUR_KEEP_CLIENT");
  if (keep && !strcmp(keep, "1"))
    fprintf(stderr, "detour: kept the postfix instance in %s\n", p->dir);
  else
    remove_tree(p->dir);
  free(p);
}

const detour_adapter scn_adapter_postfix = {
    .name = "postfix",
    .keys = "servers retry timeouts helo_name",
    .available = pf_available,
    .prepare = pf_prepare,
    .submit = pf_submit,
    .wait_done = pf_wait_done,
    .logs = pf_logs,
    .teardown = pf_teardown,
};

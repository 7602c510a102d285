/*
 * adapter_manifest.c - the adapter (detour/adapter.h) of a client manifest
 * (clients/README.md): what a vendor writes instead of C.
 *
 * prepare: a temp dir ({dir}, $TMPDIR/detour-NAME-XXXXXX), the manifest's
 * dirs and files rendered from the scenario (servers, retry interval,
 * timeouts), then, with `isolation`, a holder process in a new PID and
 * mount namespace (`unshare --pid --fork --mount --kill-child`) that
 * applies the private users, tmpfs, binds, overlays and /etc/hosts and
 * then sleeps; every command of the client runs inside it through
 * `nsenter`. The namespace is why nothing can be left behind: killing its
 * first process kills every process in it, and its mounts vanish with
 * it, so the host's compiled-in paths (/etc/exim4, /var/spool/...) are
 * covered without being touched. Without isolation the start command's
 * process group is what teardown kills.
 *
 * start runs in the background with a readiness check; submit runs a
 * command with the message on stdin (or speaks SMTP to the client's own
 * listener, adapter_smtp.c); done is synchronous (submit returned), a
 * queue folder holding no file, or a command that exits 0. Every wait is
 * bounded and gives up on an interrupt (interrupt.c).
 */
#define _GNU_SOURCE /* mkdtemp, nftw, environ */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "adapter.h"
#include "manifest.h"
#include "scn_internal.h"

extern char **environ;

#define MAX_VARS 80 /* the runner's 39 and a manifest's tls: (at most 24) */
#define VERSION_LIMIT_MS 5000
#define READY_CMD_LIMIT_MS 5000
#define HOLDER_LIMIT_MS 5000
#define TERM_GRACE_MS 2000

typedef struct {
  const mf_manifest *m;
  char dir[256];
  const char *names[MAX_VARS];
  char *vals[MAX_VARS];
  size_t nvars;
  char **envp;
  char out[300]; /* the commands' output */
  char *logs;
  pid_t start_pid, holder, ns_pid;
  bool start_exited;
  int start_status;
  unsigned nmsgs;
} mi;

/* ------------------------------------------------------------------------ */
/* Time and processes                                                        */

static long now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void nap_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* A program of the system by absolute path (the child execs without a
 * PATH search), or NULL. */
static const char *system_tool(const char *name, char *buf, size_t len) {
  static const char *const dirs[] = {"/usr/bin", "/bin", "/usr/sbin", "/sbin"};
  for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
    snprintf(buf, len, "%s/%s", dirs[i], name);
    if (access(buf, X_OK) == 0)
      return buf;
  }
  return NULL;
}

static bool in_path(const char *cmd) {
  if (strchr(cmd, '/'))
    return access(cmd, X_OK) == 0;
  const char *path = getenv("PATH");
  char buf[1024];
  for (const char *p = path ? path : "/usr/bin:/bin"; *p;) {
    size_t k = strcspn(p, ":");
    snprintf(buf, sizeof buf, "%.*s/%s", (int)k, p, cmd);
    if (access(buf, X_OK) == 0)
      return true;
    p += k + (p[k] == ':');
  }
  return false;
}

/* Wait for pid at most limit_ms (or until an interrupt); then SIGKILL its
 * process group. The exit status (0..255), or -1 when killed or failed. */
static int wait_bounded(pid_t pid, long limit_ms) {
  long t0 = now_ms();
  int st = 0, step = 2;
  for (;;) {
    pid_t w = waitpid(pid, &st, WNOHANG);
    if (w == pid)
      return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    if (w < 0)
      return -1;
    if (now_ms() - t0 > limit_ms || detour__scn_interrupted()) {
      kill(-pid, SIGKILL);
      waitpid(pid, &st, 0);
      return -1;
    }
    nap_ms(step);
    step = step < 20 ? step * 2 : 20;
  }
}

/* fork + exec `sh -c cmd` (inside the namespace when isolated), in a
 * process group of its own, stdin from in_path (or /dev/null), stdout
 * and stderr appended to out_path. Only async-signal-safe calls between
 * fork and exec: everything is prepared before. */
static pid_t spawn(const mi *x, const char *cmd, const char *in_path,
                   const char *out_path) {
  char nsenter[64], pid[24], wd[300];
  snprintf(pid, sizeof pid, "%ld", (long)x->ns_pid);
  /* entering a mount namespace moves to its root: back to {dir} */
  snprintf(wd, sizeof wd, "--wd=%s", x->dir);
  const char *argv_iso[] = {nsenter, "-t",      pid,  "-p", "-m", wd,
                            "--",    "/bin/sh", "-c", cmd,  NULL};
  const char *argv_sh[] = {"/bin/sh", "-c", cmd, NULL};
  const char *const *argv = argv_sh;
  if (x->ns_pid > 0) {
    if (!system_tool("nsenter", nsenter, sizeof nsenter))
      return -1;
    argv = argv_iso;
  }
  int in = open(in_path ? in_path : "/dev/null", O_RDONLY | O_CLOEXEC);
  int out = open(out_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  pid_t p = in >= 0 && out >= 0 ? fork() : -1;
  if (p == 0) {
    setpgid(0, 0);
    dup2(in, 0);
    dup2(out, 1);
    dup2(out, 2);
    if (chdir(x->dir) != 0)
      _exit(126);
    execve(argv[0], (char *const *)argv, x->envp ? x->envp : environ);
    _exit(127);
  }
  if (p > 0)
    setpgid(p, p); /* also here: no race with a kill(-p) right after */
  if (in >= 0)
    close(in);
  if (out >= 0)
    close(out);
  return p;
}

static int run_cmd(const mi *x, const char *cmd, const char *in_path,
                   const char *out_path, long limit_ms) {
  pid_t p = spawn(x, cmd, in_path, out_path ? out_path : x->out);
  return p < 0 ? -1 : wait_bounded(p, limit_ms);
}

/* ------------------------------------------------------------------------ */
/* Templates                                                                 */

static int set_var(mi *x, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int set_var(mi *x, const char *name, const char *fmt, ...) {
  if (x->nvars >= MAX_VARS)
    return -1;
  va_list ap;
  va_start(ap, fmt);
  char buf[4096];
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  x->names[x->nvars] = name;
  x->vals[x->nvars] = strdup(buf);
  return x->vals[x->nvars++] ? 0 : -1;
}

static const char *lookup(const char *const *names, char *const *vals, size_t n,
                          const char *key, size_t klen) {
  for (size_t i = 0; i < n; i++)
    if (strlen(names[i]) == klen && !strncmp(names[i], key, klen))
      return vals[i];
  return NULL;
}

/* t with every {var} replaced: first from (enames, evals), then x's.
 * Unknown names cannot happen (checked at load); they stay as written. */
static char *expand(const mi *x, const char *t, const char *const *enames,
                    char *const *evals, size_t ne) {
  detour__scn_buf b = {0};
  for (const char *p = t ? t : ""; *p; p++) {
    if ((p[0] == '{' && p[1] == '{') || (p[0] == '}' && p[1] == '}')) {
      detour__scn_buf_addn(&b, p++, 1);
      continue;
    }
    const char *end = *p == '{' ? strchr(p, '}') : NULL;
    const char *v = NULL;
    if (end) {
      size_t k = (size_t)(end - p - 1);
      v = lookup(enames, evals, ne, p + 1, k);
      if (!v)
        v = lookup(x->names, x->vals, x->nvars, p + 1, k);
    }
    if (v) {
      detour__scn_buf_add(&b, "%s", v);
      p = end;
    } else {
      detour__scn_buf_addn(&b, p, 1);
    }
  }
  return detour__scn_buf_take(&b);
}

static char *expand0(const mi *x, const char *t) {
  return expand(x, t, NULL, NULL, 0);
}

/* One server in the manifest's format. */
static char *server_text(const mi *x, const detour_adapter_server *s,
                         const char *host, size_t index) {
  const char *names[] = {"host", "port", "priority", "index", "name"};
  char port[8], prio[16], idx[16];
  snprintf(port, sizeof port, "%u", (unsigned)s->port);
  snprintf(prio, sizeof prio, "%d", s->priority);
  snprintf(idx, sizeof idx, "%zu", index);
  char *vals[] = {(char *)host, port, prio, idx,
                  (char *)(s->name ? s->name : host)};
  return expand(x, x->m->srv_format, names, vals, 5);
}

/* {servers}, {server0}, {backups}: the list in priority order, or with
 * same_port the one name. */
static int server_vars(mi *x, const detour_adapter_config *c) {
  const mf_manifest *m = x->m;
  bool same = m->placement == DETOUR_PLACE_SAME_PORT;
  detour__scn_buf all = {0}, backups = {0};
  char *first = NULL;
  size_t n = same ? 1 : c->nservers;
  for (size_t i = 0; i < n; i++) {
    char *one = server_text(x, &c->servers[i],
                            same ? m->srv_name : c->servers[i].host, i);
    if (!one)
      break;
    detour__scn_buf_add(&all, "%s%s", i ? m->srv_separator : "", one);
    if (i > 0)
      detour__scn_buf_add(&backups, "%s%s", i > 1 ? m->srv_separator : "", one);
    if (i == 0)
      first = one;
    else
      free(one);
  }
  char *a = detour__scn_buf_take(&all), *b = detour__scn_buf_take(&backups);
  int rc = a && b && first ? 0 : -1;
  rc |= set_var(x, "servers", "%s", a ? a : "");
  rc |= set_var(x, "server0", "%s", first ? first : "");
  rc |= set_var(x, "backups", "%s", b ? b : "");
  free(a);
  free(b);
  free(first);
  return rc;
}

/* The servers' variables other than the list (a tls: text may name
 * them; the list's format may name a tls: variable). */
static int server_scalars(mi *x, const detour_adapter_config *c) {
  const mf_manifest *m = x->m;
  bool same = m->placement == DETOUR_PLACE_SAME_PORT;
  int rc = set_var(x, "host0", "%s", same ? m->srv_name : c->servers[0].host);
  rc |= set_var(x, "port0", "%u", (unsigned)c->servers[0].port);
  rc |= set_var(x, "hostname", "%s", m->srv_name);
  rc |= set_var(x, "server_port", "%u", (unsigned)c->servers[0].port);
  rc |= set_var(x, "nservers", "%zu", c->nservers);
  return rc;
}

/* Whole seconds, rounded up, never 0 (0 often means "no limit"). */
static long secs(detour_ms ms) {
  return ms <= 1000 ? 1 : (long)((ms + 999) / 1000);
}

static int time_vars(mi *x, const detour_adapter_config *c) {
  const detour_timeouts *t = &c->timeouts;
  struct {
    const char *s, *ms;
    detour_ms v;
  } tt[] = {{"connect_s", "connect_ms", t->connect},
            {"greeting_s", "greeting_ms", t->greeting},
            {"ehlo_s", "ehlo_ms", t->ehlo},
            {"mail_s", "mail_ms", t->mail},
            {"rcpt_s", "rcpt_ms", t->rcpt},
            {"data_start_s", "data_start_ms", t->data_start},
            {"data_block_s", "data_block_ms", t->data_block},
            {"final_dot_s", "final_dot_ms", t->final_dot},
            {"quit_s", "quit_ms", t->quit},
            {"retry_s", "retry_ms", c->retry_interval}};
  int rc = 0;
  for (size_t i = 0; i < sizeof tt / sizeof *tt; i++) {
    rc |= set_var(x, tt[i].s, "%ld", secs(tt[i].v));
    rc |= set_var(x, tt[i].ms, "%lld", (long long)tt[i].v);
  }
  rc |= set_var(x, "max_attempts", "%u", c->max_attempts);
  return rc;
}

/* A port on 127.0.0.1 that nothing uses now (the kernel's choice). */
static unsigned free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  socklen_t len = sizeof a;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  unsigned port = 0;
  if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
      getsockname(fd, (struct sockaddr *)&a, &len) == 0)
    port = ntohs(a.sin_port);
  if (fd >= 0)
    close(fd);
  return port;
}

/* {peers}: where scripts/setup.sh unpacked the peers' packages. */
static int peers_var(mi *x) {
  const char *env = getenv("DETOUR_PEERS");
  if (env && *env)
    return set_var(x, "peers", "%s", env);
  return set_var(x, "peers", "%s/../build/peers", x->m->manifest_dir);
}

static int write_file(const char *path, const char *text, size_t len);

/* A copy of a file every user may read (a client drops privileges before
 * it reads its CA; the original is the bench's, 0600). */
static int copy_file(const char *from, const char *to) {
  FILE *in = fopen(from, "rb");
  if (!in)
    return -1;
  char buf[65536];
  size_t n = fread(buf, 1, sizeof buf, in);
  bool whole = feof(in) && !ferror(in);
  fclose(in);
  if (!whole || write_file(to, buf, n) < 0)
    return -1;
  return chmod(to, 0644);
}

/* {ca_file}, {cert_file}, {tls_name}, then the manifest's tls: variables,
 * each its `on` text when the run asks for TLS, else its `off` text. */
static int tls_vars(mi *x, const detour_adapter_config *c) {
  bool on = c->tls_ca_file && *c->tls_ca_file;
  char ca[300] = "", cert[300] = "", tls_dir[300];
  if (on) {
    snprintf(tls_dir, sizeof tls_dir, "%s/tls", x->dir);
    snprintf(ca, sizeof ca, "%s/ca.pem", tls_dir);
    if (mkdir(tls_dir, 0755) != 0 || copy_file(c->tls_ca_file, ca) < 0)
      return -1;
    if (c->tls_cert_file && *c->tls_cert_file) {
      snprintf(cert, sizeof cert, "%s/cert.pem", tls_dir);
      if (copy_file(c->tls_cert_file, cert) < 0)
        return -1;
    }
  }
  int rc = set_var(x, "ca_file", "%s", ca);
  rc |= set_var(x, "cert_file", "%s", cert);
  rc |= set_var(x, "tls_name", "%s",
                on && c->tls_name && *c->tls_name ? c->tls_name : "");
  for (size_t i = 0; rc == 0 && i < x->m->ntls; i++) {
    const mf_tlsvar *t = &x->m->tls[i];
    char *text = expand0(x, on ? t->on : t->off);
    rc |= text ? set_var(x, t->name, "%s", text) : -1;
    free(text);
  }
  return rc;
}

static int make_vars(mi *x, const detour_adapter_config *c) {
  int rc = set_var(x, "dir", "%s", x->dir);
  rc |= set_var(x, "manifest_dir", "%s", x->m->manifest_dir);
  rc |= peers_var(x);
  rc |= set_var(x, "port", "%u", free_port());
  rc |= set_var(x, "helo", "%s",
                c->helo_name && *c->helo_name ? c->helo_name : "localhost");
  rc |= set_var(x, "scenario", "%s", c->scenario ? c->scenario : "detour");
  rc |= server_scalars(x, c);
  rc |= time_vars(x, c);
  rc |= rc == 0 ? tls_vars(x, c) : 0;
  return rc == 0 ? server_vars(x, c) : rc;
}

/* The environment of every command: ours, the manifest's env, and
 * DETOUR_CLIENT_DIR. Built before any fork. */
static int make_env(mi *x) {
  size_t n = 0;
  while (environ[n])
    n++;
  x->envp = calloc(n + x->m->env.n + 2, sizeof *x->envp);
  if (!x->envp)
    return -1;
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    x->envp[k++] = strdup(environ[i]);
  for (size_t i = 0; i < x->m->env.n; i++)
    x->envp[k++] = expand0(x, x->m->env.v[i]);
  x->envp[k++] = detour__scn_printf("DETOUR_CLIENT_DIR=%s", x->dir);
  for (size_t i = 0; i < k; i++)
    if (!x->envp[i])
      return -1;
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Files                                                                     */

static int mkdirs(const char *path) {
  char buf[1024];
  snprintf(buf, sizeof buf, "%s", path);
  for (char *p = buf + 1; *p; p++)
    if (*p == '/') {
      *p = '\0';
      if (mkdir(buf, 0755) != 0 && errno != EEXIST)
        return -1;
      *p = '/';
    }
  return mkdir(buf, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

static int write_file(const char *path, const char *text, size_t len) {
  FILE *f = fopen(path, "wb");
  if (!f)
    return -1;
  size_t n = fwrite(text, 1, len, f);
  return fclose(f) == 0 && n == len ? 0 : -1;
}

static const char *make_tree(mi *x) {
  static char why[600];
  const mf_manifest *m = x->m;
  for (size_t i = 0; i < m->dirs.n; i++) {
    char *rel = expand0(x, m->dirs.v[i]), path[1024];
    snprintf(path, sizeof path, "%s/%s", x->dir, rel ? rel : "");
    free(rel);
    if (mkdirs(path) < 0)
      return snprintf(why, sizeof why, "cannot make %s", path), why;
  }
  for (size_t i = 0; i < m->nfiles; i++) {
    char *rel = expand0(x, m->files[i].path), path[1024];
    char *text = expand0(x, m->files[i].text);
    snprintf(path, sizeof path, "%s/%s", x->dir, rel ? rel : "");
    char *slash = strrchr(path, '/');
    *slash = '\0';
    int rc = mkdirs(path);
    *slash = '/';
    if (rc == 0 && text)
      rc = write_file(path, text, strlen(text));
    free(rel);
    free(text);
    if (rc < 0)
      return snprintf(why, sizeof why, "cannot write %s", path), why;
  }
  return NULL;
}

static int rm_one(const char *path, const struct stat *sb, int type,
                  struct FTW *ftw) {
  (void)sb;
  (void)type;
  (void)ftw;
  remove(path);
  return 0;
}

/* Regular files under dir (any depth): a queue that holds nothing. */
static size_t count_files(const char *dir, int depth) {
  DIR *d = depth < 6 ? opendir(dir) : NULL;
  size_t n = 0;
  struct dirent *e;
  while (d && (e = readdir(d)) != NULL) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
      continue;
    char path[1024];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    if (lstat(path, &st) != 0)
      continue;
    if (S_ISREG(st.st_mode))
      n++;
    else if (S_ISDIR(st.st_mode))
      n += count_files(path, depth + 1);
  }
  if (d)
    closedir(d);
  return n;
}

/* ------------------------------------------------------------------------ */
/* Isolation: a PID + mount namespace held by a sleeping first process       */

static void sh_quote(detour__scn_buf *b, const char *s) {
  detour__scn_buf_add(b, "'");
  for (; *s; s++)
    if (*s == '\'')
      detour__scn_buf_add(b, "'\\''");
    else
      detour__scn_buf_addn(b, s, 1);
  detour__scn_buf_add(b, "'");
}

/* Lines appended to a private copy of /etc/FILE, bound over it. */
static void add_lines(detour__scn_buf *b, const mi *x, const char *file,
                      const mf_list *lines, const char *extra) {
  if (!lines->n && !extra)
    return;
  detour__scn_buf_add(b, "cp /etc/%s %s/.iso/%s\n", file, x->dir, file);
  for (size_t i = 0; i < lines->n; i++) {
    char *l = expand0(x, lines->v[i]);
    detour__scn_buf_add(b, "printf '%%s\\n' ");
    sh_quote(b, l ? l : "");
    detour__scn_buf_add(b, " >>%s/.iso/%s\n", x->dir, file);
    free(l);
  }
  if (extra) {
    detour__scn_buf_add(b, "printf '%%s' ");
    sh_quote(b, extra);
    detour__scn_buf_add(b, " >>%s/.iso/%s\n", x->dir, file);
  }
  detour__scn_buf_add(b, "mount --bind %s/.iso/%s /etc/%s\n", x->dir, file,
                      file);
}

/* Over a simulated network no name server is reachable from the client's
 * namespace: a lookup (OpenSMTPD resolves the peer of every session before
 * its greeting) would wait for its timeout on an address that exists
 * nowhere there. A private resolv.conf naming the namespace's own loopback
 * makes every lookup fail at once (a symlinked one is left alone). */
static void no_name_server(detour__scn_buf *b, const mi *x) {
  detour__scn_buf_add(b,
                      "printf 'nameserver 127.0.0.1\\n' >%s/.iso/resolv.conf\n"
                      "[ -L /etc/resolv.conf ] || mount --bind "
                      "%s/.iso/resolv.conf /etc/resolv.conf\n",
                      x->dir, x->dir);
}

/* The shell script the namespace's first process runs, then sleeps. */
static char *iso_script(const mi *x, const char *hosts, bool private_network) {
  const mf_manifest *m = x->m;
  detour__scn_buf b = {0};
  detour__scn_buf_add(&b, "set -e\nmkdir -p %s/.iso\n", x->dir);
  /* overlays first: a bind or a private /etc/hosts goes on top of them */
  /* PATH, or PATH:UPPER (a folder under {dir} whose files show on top) */
  for (size_t i = 0; i < m->overlays.n; i++) {
    char *p = expand0(x, m->overlays.v[i]);
    char *upper = p ? strchr(p, ':') : NULL, dflt[400];
    if (upper)
      *upper++ = '\0';
    snprintf(dflt, sizeof dflt, "%s/.iso/ov%zu/u", x->dir, i);
    detour__scn_buf_add(&b, "mkdir -p %s/.iso/ov%zu/w %s\n", x->dir, i,
                        upper ? upper : dflt);
    detour__scn_buf_add(
        &b,
        "mount -t overlay overlay -o lowerdir=%s,upperdir=%s,workdir="
        "%s/.iso/ov%zu/w %s\n",
        p ? p : "/nonexistent", upper ? upper : dflt, x->dir, i,
        p ? p : "/nonexistent");
    free(p);
  }
  add_lines(&b, x, "passwd", &m->users, NULL);
  add_lines(&b, x, "group", &m->groups, NULL);
  mf_list none = {0};
  add_lines(&b, x, "hosts", &none, hosts);
  if (private_network)
    no_name_server(&b, x);
  for (size_t i = 0; i < m->tmpfs.n; i++) {
    char *p = expand0(x, m->tmpfs.v[i]);
    detour__scn_buf_add(&b, "mount -t tmpfs -o mode=0755 tmpfs %s\n",
                        p ? p : "/nonexistent");
    free(p);
  }
  for (size_t i = 0; i < m->binds.n; i++) {
    char *p = expand0(x, m->binds.v[i]);
    char *colon = p ? strchr(p, ':') : NULL;
    if (colon) {
      *colon = '\0';
      detour__scn_buf_add(&b, "mount --bind %s %s\n", p, colon + 1);
    }
    free(p);
  }
  detour__scn_buf_add(&b, "touch %s/.iso/ready\nexec sleep 2147483647\n",
                      x->dir);
  return detour__scn_buf_take(&b);
}

/* The namespace's first process: the only child of the unshare process. */
static pid_t ns_first(pid_t holder) {
  char path[96];
  snprintf(path, sizeof path, "/proc/%ld/task/%ld/children", (long)holder,
           (long)holder);
  FILE *f = fopen(path, "r");
  long pid = 0;
  if (f) {
    if (fscanf(f, "%ld", &pid) != 1)
      pid = 0;
    fclose(f);
  }
  return (pid_t)pid;
}

static const char *start_isolation(mi *x, const detour_adapter_config *c) {
  static char why[600];
  detour__scn_buf hosts = {0};
  if (x->m->placement == DETOUR_PLACE_SAME_PORT)
    for (size_t i = 0; i < c->nservers; i++)
      detour__scn_buf_add(&hosts, "%s %s\n", c->servers[i].host,
                          x->m->srv_name);
  char *h = detour__scn_buf_take(&hosts);
  char *script = iso_script(x, h && *h ? h : NULL, c->private_network);
  free(h);
  char unshare[64], ready[400];
  if (!script || !system_tool("unshare", unshare, sizeof unshare)) {
    free(script);
    return "isolation needs unshare (util-linux)";
  }
  mi shell = *x; /* run the script outside any namespace */
  shell.ns_pid = 0;
  detour__scn_buf cmd = {0};
  detour__scn_buf_add(&cmd,
                      "exec %s --pid --fork --mount --propagation private "
                      "--kill-child --mount-proc /bin/sh -c ",
                      unshare);
  sh_quote(&cmd, script);
  free(script);
  char *line = detour__scn_buf_take(&cmd);
  x->holder = line ? spawn(&shell, line, NULL, x->out) : -1;
  free(line);
  snprintf(ready, sizeof ready, "%s/.iso/ready", x->dir);
  long t0 = now_ms();
  while (x->holder > 0 && access(ready, F_OK) != 0 &&
         now_ms() - t0 < HOLDER_LIMIT_MS &&
         waitpid(x->holder, NULL, WNOHANG) == 0)
    nap_ms(5);
  x->ns_pid = access(ready, F_OK) == 0 ? ns_first(x->holder) : 0;
  if (x->ns_pid > 0)
    return NULL;
  snprintf(why, sizeof why,
           "the private namespace did not come up (see %s: a tmpfs, bind or "
           "overlay target that does not exist?)",
           x->out);
  return why;
}

/* ------------------------------------------------------------------------ */
/* The adapter                                                               */

static const mf_manifest *M(const detour_adapter *self) { return self->data; }

static bool mf_available(const detour_adapter *self, char *why, size_t len) {
  const mf_manifest *m = M(self);
  const char *hint = m->req_hint ? m->req_hint : "";
  mi x = {.m = m};
  set_var(&x, "manifest_dir", "%s", m->manifest_dir);
  peers_var(&x);
  bool ok = true;
  for (size_t i = 0; ok && i < m->req_files.n; i++) {
    char *f = expand0(&x, m->req_files.v[i]);
    if (!f || access(f, F_OK) != 0) {
      snprintf(why, len, "%s is missing%s%s", f ? f : "?", *hint ? "; " : "",
               hint);
      ok = false;
    }
    free(f);
  }
  for (size_t i = 0; ok && i < m->req_commands.n; i++)
    if (!in_path(m->req_commands.v[i])) {
      snprintf(why, len, "command %s not found%s%s", m->req_commands.v[i],
               *hint ? "; " : "", hint);
      ok = false;
    }
  char tool[64];
  if (ok && (m->req_root || m->isolation) && geteuid() != 0) {
    snprintf(why, len, "needs root (%s)",
             m->isolation ? "a private PID and mount namespace"
                          : "requires.root");
    ok = false;
  } else if (ok && m->isolation &&
             (!system_tool("unshare", tool, sizeof tool) ||
              !system_tool("nsenter", tool, sizeof tool))) {
    snprintf(why, len, "isolation needs unshare and nsenter (util-linux)");
    ok = false;
  }
  for (size_t i = 0; i < x.nvars; i++)
    free(x.vals[i]);
  return ok;
}

static bool mf_version(const detour_adapter *self, char *buf, size_t len) {
  const mf_manifest *m = M(self);
  if (!m->version_cmd || !len)
    return false;
  mi x = {.m = m};
  char tmpl[300];
  const char *tmp = getenv("TMPDIR");
  snprintf(x.dir, sizeof x.dir, "%s", tmp && *tmp ? tmp : "/tmp");
  snprintf(tmpl, sizeof tmpl, "%s/detour-version-XXXXXX", x.dir);
  int fd = mkstemp(tmpl);
  if (fd < 0)
    return false;
  close(fd);
  set_var(&x, "manifest_dir", "%s", m->manifest_dir);
  peers_var(&x);
  char *cmd = expand0(&x, m->version_cmd);
  int rc = cmd ? run_cmd(&x, cmd, NULL, tmpl, VERSION_LIMIT_MS) : -1;
  free(cmd);
  for (size_t i = 0; i < x.nvars; i++)
    free(x.vals[i]);
  buf[0] = '\0';
  FILE *f = fopen(tmpl, "r");
  if (f) {
    if (!fgets(buf, (int)len, f))
      buf[0] = '\0';
    fclose(f);
  }
  unlink(tmpl);
  buf[strcspn(buf, "\r\n")] = '\0';
  return rc == 0 && buf[0];
}

static void mf_teardown(void *inst);

static bool ready_now(const mi *x, const char *arg) {
  switch (x->m->ready) {
  case MF_READY_PORT: {
    int fd = detour__scn_smtp_connect("127.0.0.1", (uint16_t)atoi(arg));
    if (fd >= 0)
      close(fd);
    return fd >= 0;
  }
  case MF_READY_FILE:
    return access(arg, F_OK) == 0;
  case MF_READY_CMD:
    return run_cmd(x, arg, NULL, NULL, READY_CMD_LIMIT_MS) == 0;
  case MF_READY_NONE:
    break;
  }
  return true;
}

/* The start command exited (a daemon forks and exits 0; a failure says
 * so with its status). */
static void reap_start(mi *x) {
  int st;
  if (x->start_pid > 0 && !x->start_exited &&
      waitpid(x->start_pid, &st, WNOHANG) == x->start_pid) {
    x->start_exited = true;
    x->start_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }
}

static const char *start_client(mi *x) {
  static char why[600];
  char *cmd = expand0(x, x->m->start_cmd);
  char *arg = expand0(x, x->m->ready_arg);
  x->start_pid = cmd ? spawn(x, cmd, NULL, x->out) : -1;
  free(cmd);
  const char *bad = x->start_pid < 0 ? "the start command could not run" : NULL;
  long t0 = now_ms();
  while (!bad && !ready_now(x, arg ? arg : "")) {
    reap_start(x);
    if (x->start_exited && x->start_status != 0)
      bad = "the start command failed";
    else if (now_ms() - t0 > x->m->start_timeout || detour__scn_interrupted())
      bad = "not ready by start.timeout";
    else
      nap_ms(10);
  }
  free(arg);
  if (!bad)
    return NULL;
  reap_start(x);
  snprintf(why, sizeof why, "%s (exit %d; its output: %s)", bad,
           x->start_exited ? x->start_status : -1, x->out);
  return why;
}

/* Traffic goes only to loopback, or, when the caller says it created the
 * network namespaces the servers are in, to an IP literal there (never a
 * name: a name could resolve to anywhere). */
static bool server_allowed(const detour_adapter_config *c, const char *host) {
  if (!strncmp(host, "127.", 4) || !strcmp(host, "::1"))
    return true;
  unsigned char a[sizeof(struct in6_addr)];
  return c->private_network && (inet_pton(AF_INET, host, a) == 1 ||
                                inet_pton(AF_INET6, host, a) == 1);
}

static void *mf_prepare(const detour_adapter *self,
                        const detour_adapter_config *c, char *err,
                        size_t errlen) {
  const mf_manifest *m = M(self);
  for (size_t i = 0; i < c->nservers; i++)
    if (!server_allowed(c, c->servers[i].host)) {
      snprintf(err, errlen, "%s: server %s is not a loopback address%s",
               m->name, c->servers[i].host,
               c->private_network ? " nor an IP address" : "");
      return NULL;
    }
  if (!c->nservers) {
    snprintf(err, errlen, "%s: no servers", m->name);
    return NULL;
  }
  mi *x = calloc(1, sizeof *x);
  if (!x) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  x->m = m;
  const char *tmp = getenv("TMPDIR");
  snprintf(x->dir, sizeof x->dir, "%s/detour-%s-XXXXXX",
           tmp && *tmp ? tmp : "/tmp", m->name);
  const char *what = NULL;
  if (!mkdtemp(x->dir)) {
    x->dir[0] = '\0';
    what = "cannot make the instance's folder";
  } else if (chmod(x->dir, 0755) != 0 || make_vars(x, c) < 0 ||
             make_env(x) < 0) {
    what = c->tls_ca_file ? "out of memory, or cannot copy the TLS files"
                          : "out of memory";
  }
  snprintf(x->out, sizeof x->out, "%s/client.out", x->dir);
  x->logs = m->logs ? expand0(x, m->logs) : strdup(x->out);
  if (!what)
    what = make_tree(x);
  if (!what && m->isolation)
    what = start_isolation(x, c);
  if (!what && m->start_cmd)
    what = start_client(x);
  if (!what)
    return x;
  snprintf(err, errlen, "%s (%s): %s", m->name, x->dir[0] ? x->dir : "no dir",
           what);
  if (getenv("DETOUR_KEEP_CLIENT") == NULL) {
    /* show the first line the client said, as the folder goes away */
    FILE *f = fopen(x->out, "r");
    char line[200];
    if (f && fgets(line, sizeof line, f)) {
      line[strcspn(line, "\n")] = '\0';
      snprintf(err + strlen(err), errlen - strlen(err), ": %s", line);
    }
    if (f)
      fclose(f);
  }
  mf_teardown(x);
  return NULL;
}

static int mf_submit(void *inst, const detour_adapter_message *msg, char *err,
                     size_t errlen) {
  mi *x = inst;
  const mf_manifest *m = x->m;
  if (m->submit_smtp) {
    char *at = expand0(x, m->submit_smtp),
         *colon = at ? strrchr(at, ':') : NULL;
    int rc = -1;
    if (colon) {
      *colon = '\0';
      rc = detour__scn_smtp_submit(at, (uint16_t)atoi(colon + 1),
                                   m->rcpt_params, msg, err, errlen);
    } else {
      snprintf(err, errlen, "%s: submit.smtp is not HOST:PORT", m->name);
    }
    free(at);
    return rc;
  }
  /* the message on stdin, LF line ends (what sendmail-like commands take) */
  char in[400];
  snprintf(in, sizeof in, "%s/message-%u", x->dir, x->nmsgs++);
  detour__scn_buf body = {0}, to = {0}, list = {0};
  for (size_t i = 0; i < msg->body_len; i++)
    if (msg->body[i] != '\r' || i + 1 >= msg->body_len ||
        msg->body[i + 1] != '\n')
      detour__scn_buf_addn(&body, &msg->body[i], 1);
  for (size_t i = 0; i < msg->nrcpts; i++) {
    detour__scn_buf_add(&to, "%s", i ? " " : "");
    sh_quote(&to, msg->rcpts[i]);
    detour__scn_buf_add(&list, "%s%s", i ? "," : "", msg->rcpts[i]);
  }
  detour__scn_buf from = {0};
  sh_quote(&from, msg->from);
  const char *names[] = {"from", "to", "to_list"};
  char *vals[] = {detour__scn_buf_take(&from), detour__scn_buf_take(&to),
                  detour__scn_buf_take(&list)};
  char *cmd = vals[0] && vals[1] && vals[2]
                  ? expand(x, m->submit_cmd, names, vals, 3)
                  : NULL;
  char *b = detour__scn_buf_take(&body);
  int rc = -1;
  if (!cmd || !b || write_file(in, b, strlen(b)) < 0)
    snprintf(err, errlen, "%s: cannot write %s", m->name, in);
  else if ((rc = run_cmd(x, cmd, in, NULL, m->submit_timeout)) != 0)
    snprintf(err, errlen, "%s: the submit command %s (see %s)", m->name,
             rc < 0 ? "was killed at submit.timeout" : "failed", x->logs);
  for (size_t i = 0; i < 3; i++)
    free(vals[i]);
  free(cmd);
  free(b);
  return rc == 0 ? 0 : -1;
}

static int done_now(const mi *x) {
  const mf_manifest *m = x->m;
  if (m->done == MF_DONE_SYNC)
    return 1;
  if (m->done == MF_DONE_CMD) {
    char *cmd = expand0(x, m->done_cmd);
    int rc = cmd ? run_cmd(x, cmd, NULL, NULL, READY_CMD_LIMIT_MS) : -1;
    free(cmd);
    return rc == 0;
  }
  size_t n = 0;
  for (size_t i = 0; i < m->done_paths.n; i++) {
    char *p = expand0(x, m->done_paths.v[i]);
    n += p ? count_files(p, 0) : 1;
    free(p);
  }
  return n == 0;
}

static int mf_wait_done(void *inst, detour_ms timeout, char *err,
                        size_t errlen) {
  mi *x = inst;
  long t0 = now_ms();
  for (;;) {
    if (done_now(x))
      return 1;
    reap_start(x);
    if (x->start_exited && x->start_status != 0) {
      snprintf(err, errlen, "%s: the start command exited with status %d",
               x->m->name, x->start_status);
      return -1;
    }
    if (now_ms() - t0 >= timeout || detour__scn_interrupted())
      return 0;
    nap_ms(x->m->poll);
  }
}

static const char *mf_logs(void *inst) { return ((mi *)inst)->logs; }

/* SIGTERM to the group, SIGKILL after the grace: it is ours. */
static void end_group(pid_t pid) {
  if (pid <= 0)
    return;
  kill(-pid, SIGTERM);
  long t0 = now_ms();
  while (waitpid(pid, NULL, WNOHANG) == 0 && now_ms() - t0 < TERM_GRACE_MS)
    nap_ms(10);
  kill(-pid, SIGKILL);
  waitpid(pid, NULL, WNOHANG);
}

static void mf_teardown(void *inst) {
  mi *x = inst;
  if (!x)
    return;
  if (x->m->stop_cmd && (x->start_pid > 0 || x->ns_pid > 0)) {
    char *cmd = expand0(x, x->m->stop_cmd);
    if (cmd)
      run_cmd(x, cmd, NULL, NULL, x->m->stop_timeout);
    free(cmd);
  }
  reap_start(x);
  if (!x->start_exited)
    end_group(x->start_pid);
  if (x->ns_pid > 0) /* the namespace's first process: all of it goes */
    kill(x->ns_pid, SIGKILL);
  if (x->holder > 0) {
    kill(x->holder, SIGKILL);
    waitpid(x->holder, NULL, 0);
  }
  const char *keep = getenv("DETOUR_KEEP_CLIENT");
  if (keep && !strcmp(keep, "1"))
    fprintf(stderr, "detour: kept the %s instance in %s\n", x->m->name, x->dir);
  else if (x->dir[0])
    nftw(x->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
  for (size_t i = 0; i < x->nvars; i++)
    free(x->vals[i]);
  for (size_t i = 0; x->envp && x->envp[i]; i++)
    free(x->envp[i]);
  free(x->envp);
  free(x->logs);
  free(x);
}

detour_adapter *detour__scn_manifest_adapter(mf_manifest *m) {
  detour_adapter *a = calloc(1, sizeof *a);
  if (!a)
    return NULL;
  a->name = m->name;
  a->keys = m->renders;
  a->placement = m->placement;
  a->hostname = m->placement == DETOUR_PLACE_SAME_PORT ? m->srv_name : NULL;
  a->data = m;
  a->available = mf_available;
  a->version = mf_version;
  a->prepare = mf_prepare;
  a->submit = mf_submit;
  a->wait_done = mf_wait_done;
  a->logs = mf_logs;
  a->teardown = mf_teardown;
  return a;
}

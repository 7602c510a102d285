/*
 * test_fake_spool.c - a streaming fake server (`detour serve`) keeps a
 * body in the session's memory up to 16 KiB and opens a spool file only
 * for a longer one: a small message costs no file (creating and unlinking
 * one per message was most of the server's time under smtp-source load,
 * bench/README.md), and a body that crosses the threshold arrives whole,
 * memory part first. Seen from outside: the serve process's open files
 * while a body is half sent, and the bodies in its --record.
 */
#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "test_fake_util.h"

typedef struct {
  pid_t pid;
  FILE *out;
  uint16_t port;
  char dir[64], record[128];
} serve_proc;

static void serve_start(serve_proc *p) {
  char script[128];
  int pipefd[2];
  signal(SIGPIPE, SIG_IGN);
  snprintf(p->dir, sizeof p->dir, "/tmp/detour-spool-XXXXXX");
  cr_assert_not_null(mkdtemp(p->dir));
  snprintf(script, sizeof script, "%s/s.yaml", p->dir);
  snprintf(p->record, sizeof p->record, "%s/rec.jsonl", p->dir);
  FILE *f = fopen(script, "w");
  fputs("name: s\nrecord: summary\nlisten: 127.0.0.1:0\n", f);
  fclose(f);
  cr_assert_eq(pipe(pipefd), 0);
  p->pid = fork();
  cr_assert_geq(p->pid, 0);
  if (p->pid == 0) {
    dup2(pipefd[1], 1);
    close(pipefd[0]);
    setenv("TMPDIR", p->dir, 1); /* where bodies are spooled */
    execl(DETOUR_BIN, "detour", "serve", "--script", script, "--record",
          p->record, "--quiet", (char *)NULL);
    _exit(127);
  }
  close(pipefd[1]);
  p->out = fdopen(pipefd[0], "r");
  char line[256];
  cr_assert_not_null(fgets(line, sizeof line, p->out), "serve started");
  char *colon = strrchr(line, ':');
  cr_assert(strncmp(line, "listening ", 10) == 0 && colon, "%s", line);
  p->port = (uint16_t)atoi(colon + 1);
}

static void serve_stop(serve_proc *p) {
  kill(p->pid, SIGTERM);
  int status;
  waitpid(p->pid, &status, 0);
  cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  fclose(p->out);
  char cmd[160];
  snprintf(cmd, sizeof cmd, "rm -rf %s", p->dir);
  cr_expect_eq(system(cmd), 0);
}

/* Open files of the serve process that are spool files (unlinked files
 * under its TMPDIR). Read after a NOOP's reply: the server has taken all
 * it was sent before. */
static int spool_fds(const serve_proc *p) {
  char fddir[64], link[96], target[512];
  snprintf(fddir, sizeof fddir, "/proc/%d/fd", (int)p->pid);
  DIR *d = opendir(fddir);
  cr_assert_not_null(d);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    snprintf(link, sizeof link, "%s/%s", fddir, e->d_name);
    ssize_t k = readlink(link, target, sizeof target - 1);
    if (k <= 0)
      continue;
    target[k] = '\0';
    if (strstr(target, "detour-fake-body-"))
      n++;
  }
  closedir(d);
  return n;
}

static void send_all(int fd, const char *p, size_t len) {
  size_t off = 0;
  while (off < len) {
    ssize_t n = send(fd, p + off, len - off, MSG_NOSIGNAL);
    cr_assert_gt(n, 0);
    off += (size_t)n;
  }
}

/* A body of len bytes in 80-byte lines of one letter each, CRLF. */
static char *make_body(size_t len, char letter) {
  char *b = malloc(len + 1);
  cr_assert_not_null(b);
  for (size_t i = 0; i < len; i++)
    b[i] = i % 80 == 78 ? '\r' : i % 80 == 79 ? '\n' : letter;
  b[len] = '\0';
  return b;
}

/* Starts a message and sends its first `first` bytes, then a pause the
 * server sees through a NOOP-free probe: the bytes are in once the count
 * of spool files is read after a short wait. Then the rest and the dot. */
static size_t spool_files_midway(serve_proc *p, int fd, const char *body,
                                 size_t len, size_t first) {
  FT_EXPECT(fd, "MAIL FROM:<a@x.test>", "250");
  FT_EXPECT(fd, "RCPT TO:<b@x.test>", "250");
  FT_EXPECT(fd, "DATA", "354");
  send_all(fd, body, first);
  usleep(300 * 1000); /* the server reads what is there */
  int n = spool_fds(p);
  send_all(fd, body + first, len - first);
  ft_send(fd, ".\r\n");
  char buf[512];
  cr_assert_gt(ft_read_reply(fd, buf, sizeof buf, 20000), 0);
  cr_assert(strncmp(buf, "250", 3) == 0, "%s", buf);
  return (size_t)n;
}

/* The record has a message event with exactly this body (JSON: CR and
 * LF escaped) and size. */
static bool record_has_body(const char *path, const char *body, size_t len) {
  char *want = malloc(2 * len + 64);
  cr_assert_not_null(want);
  size_t k = (size_t)sprintf(want, "\"body\":\"");
  for (size_t i = 0; i < len; i++) {
    if (body[i] == '\r' || body[i] == '\n') {
      want[k++] = '\\';
      want[k++] = body[i] == '\r' ? 'r' : 'n';
    } else {
      want[k++] = body[i];
    }
  }
  want[k++] = '"';
  want[k] = '\0';
  char size[64];
  snprintf(size, sizeof size, "\"size\":%zu,", len);
  FILE *f = fopen(path, "r");
  cr_assert_not_null(f);
  static char line[1 << 20];
  bool found = false;
  while (!found && fgets(line, sizeof line, f))
    found = strstr(line, "\"event\":\"message\"") && strstr(line, size) &&
            strstr(line, want);
  fclose(f);
  free(want);
  return found;
}

Test(fake_spool, small_body_opens_no_file_long_one_spools_whole,
     .timeout = 60) {
  serve_proc p;
  serve_start(&p);
  int fd = ft_connect_to("127.0.0.1", p.port, 2000);
  cr_assert_geq(fd, 0);
  FT_EXPECT(fd, NULL, "220");
  FT_EXPECT(fd, "EHLO t", "250");

  /* 8 KiB, half sent: in memory, no spool file */
  size_t small = 8000;
  char *a = make_body(small, 'a');
  cr_expect_eq(spool_files_midway(&p, fd, a, small, 4000), 0,
               "a spool file for a 4 KB partial body");

  /* 40 KB, 30 KB sent: beyond 16 KiB, one spool file */
  size_t big = 40000;
  char *b = make_body(big, 'b');
  cr_expect_eq(spool_files_midway(&p, fd, b, big, 30000), 1,
               "no spool file for a 30 KB partial body");
  FT_EXPECT(fd, "QUIT", "221");
  close(fd);
  usleep(200 * 1000);
  cr_expect_eq(spool_fds(&p), 0, "a spool file left open");

  /* both bodies whole in the record (the long one: memory part, then the
   * spool; inline in the record up to 64 KiB) */
  cr_expect(record_has_body(p.record, a, small), "small body not recorded");
  cr_expect(record_has_body(p.record, b, big), "long body not recorded");
  free(a);
  free(b);
  serve_stop(&p);
}

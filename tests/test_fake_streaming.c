/*
 * test_fake_streaming.c - `detour serve` in long runs: its memory does not
 * grow with the messages it receives (bodies are spooled to disk, nothing
 * is kept for the life of the process), and its --record is written as
 * events happen, one whole line per event, so a SIGKILL loses nothing
 * already reported and never leaves a cut line.
 */
#include <sys/stat.h>
#include <sys/wait.h>

#include "test_fake_util.h"

typedef struct {
  pid_t pid;
  FILE *out; /* its stdout */
  uint16_t port;
  char dir[64], record[128];
} serve_proc;

static void serve_start(serve_proc *p, const char *yaml) {
  char script[128];
  int pipefd[2];
  signal(SIGPIPE, SIG_IGN);
  snprintf(p->dir, sizeof p->dir, "/tmp/detour-stream-XXXXXX");
  cr_assert_not_null(mkdtemp(p->dir));
  snprintf(script, sizeof script, "%s/s.yaml", p->dir);
  snprintf(p->record, sizeof p->record, "%s/rec.jsonl", p->dir);
  FILE *f = fopen(script, "w");
  fputs(yaml, f);
  fclose(f);
  cr_assert_eq(pipe(pipefd), 0);
  p->pid = fork();
  cr_assert_geq(p->pid, 0);
  if (p->pid == 0) {
    dup2(pipefd[1], 1);
    close(pipefd[0]);
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

static long proc_kb(pid_t pid, const char *field) {
  char path[64], line[256];
  long v = -1;
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f)
    return -1;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, field, strlen(field)) == 0)
      v = strtol(line + strlen(field) + 1, NULL, 10);
  fclose(f);
  return v;
}

static void send_message(int fd, const char *body, size_t len) {
  FT_EXPECT(fd, "MAIL FROM:<a@x.test>", "250");
  FT_EXPECT(fd, "RCPT TO:<b@x.test>", "250");
  FT_EXPECT(fd, "DATA", "354");
  size_t off = 0;
  while (off < len) {
    ssize_t n = send(fd, body + off, len - off, MSG_NOSIGNAL);
    cr_assert_gt(n, 0);
    off += (size_t)n;
  }
  ft_send(fd, ".\r\n");
  char buf[512];
  cr_assert_gt(ft_read_reply(fd, buf, sizeof buf, 20000), 0);
  cr_assert(strncmp(buf, "250", 3) == 0, "%s", buf);
}

/* The lines of the record file; every one must be whole. */
static size_t count_lines(const char *path, const char *needle,
                          bool *all_whole) {
  FILE *f = fopen(path, "r");
  cr_assert_not_null(f);
  static char line[1 << 20];
  size_t k = 0;
  *all_whole = true;
  while (fgets(line, sizeof line, f)) {
    size_t n = strlen(line);
    if (n < 2 || line[n - 1] != '\n' || line[n - 2] != '}' || line[0] != '{')
      *all_whole = false;
    if (strstr(line, needle))
      k++;
  }
  fclose(f);
  return k;
}

/* Eight 20 MiB messages: the process's peak memory stays far below one
 * message's worth per message (it held every body, up to max_body each,
 * for its whole life: 166 MB here), and each body is in the record's
 * body file, cut at max_body and marked truncated. */
Test(fake_streaming, serve_memory_does_not_grow_with_messages, .timeout = 240) {
  serve_proc p;
  serve_start(&p, "name: s\nlisten: 127.0.0.1:0\n");
  size_t len = (size_t)20 << 20, line = 80;
  char *body = malloc(len);
  cr_assert_not_null(body);
  for (size_t i = 0; i < len; i++)
    body[i] = i % line == line - 2 ? '\r' : i % line == line - 1 ? '\n' : 'b';
  int fd = ft_connect_to("127.0.0.1", p.port, 2000);
  cr_assert_geq(fd, 0);
  FT_EXPECT(fd, NULL, "220");
  for (int i = 0; i < 8; i++)
    send_message(fd, body, len);
  long hwm = proc_kb(p.pid, "VmHWM");
  FT_EXPECT(fd, "QUIT", "221");
  close(fd);
  free(body);
  kill(p.pid, SIGTERM);
  int status;
  waitpid(p.pid, &status, 0);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  cr_log_info("detour serve peak RSS after 8 x 20 MiB: %ld kB", hwm);
  cr_assert_lt(hwm, 48 * 1024, "peak RSS %ld kB", hwm);
  bool whole;
  cr_assert_eq(count_lines(p.record, "\"event\":\"message\"", &whole), 8);
  cr_assert(whole);
  cr_assert_eq(count_lines(p.record, "\"truncated\":true", &whole), 8);
  cr_assert_eq(count_lines(p.record, "\"body_file\":", &whole), 8);
  char path[256];
  struct stat st;
  snprintf(path, sizeof path, "%s.bodies/s-1-8.eml", p.record);
  cr_assert_eq(stat(path, &st), 0, "%s", path);
  cr_assert_eq(st.st_size, 16 << 20, "max_body bytes kept");
  fclose(p.out);
  char cmd[256];
  snprintf(cmd, sizeof cmd, "rm -rf %s", p.dir);
  cr_assert_eq(system(cmd), 0);
}

/* SIGKILL right after a message was answered: its event is in the record
 * (written before the reply went out is not promised, but by the time the
 * client has the 250 and the close), and no line is cut. */
Test(fake_streaming, record_survives_sigkill) {
  serve_proc p;
  serve_start(&p, "name: s\nlisten: 127.0.0.1:0\n");
  int fd = ft_connect_to("127.0.0.1", p.port, 2000);
  cr_assert_geq(fd, 0);
  FT_EXPECT(fd, NULL, "220");
  send_message(fd, "Subject: before the kill\r\n\r\nhi\r\n", 32);
  FT_EXPECT(fd, "NOOP", "250"); /* the message event is written by now */
  kill(p.pid, SIGKILL);
  int status;
  waitpid(p.pid, &status, 0);
  close(fd);
  bool whole;
  size_t n = count_lines(p.record, "before the kill", &whole);
  cr_assert_eq(n, 1, "the message event reached the file");
  cr_assert(whole, "no cut line");
  cr_assert_eq(count_lines(p.record, "\"stage\":\"noop\"", &whole), 2,
               "the NOOP command and reply too");
  fclose(p.out);
  char cmd[256];
  snprintf(cmd, sizeof cmd, "rm -rf %s", p.dir);
  cr_assert_eq(system(cmd), 0);
}

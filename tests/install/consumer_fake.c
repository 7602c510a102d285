/*
 * consumer_fake.c - a program outside the tree that links the installed
 * fake servers through pkg-config (tests/install/check-install.sh builds
 * it with `pkg-config --cflags --libs detour-fake`): one fake server on
 * loopback, a client that reads its greeting, then a clean stop.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include <detour/detour_uv.h>
#include <detour/fake.h>

static const char script[] = "name: consumer\n"
                             "listen: 127.0.0.1:0\n"
                             "greeting: 220 consumer.test hello\n";

int main(void) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  detour_clock *clock = detour_clock_new_real(&loop);
  size_t n = 0;
  char err[256];
  detour_fake_script **v = detour_fake_load_string(
      script, strlen(script), "inline", &n, err, sizeof err);
  if (!clock || !v || n != 1)
    return fprintf(stderr, "load: %s\n", err), 1;
  int e = 0;
  detour_fake_server *srv = detour_fake_server_new(clock, v[0], NULL, 0, &e);
  if (!srv || detour_fake_server_start(srv, err, sizeof err) != 0)
    return fprintf(stderr, "start: %s\n", err), 1;
  const char *addr = detour_fake_server_address(srv);
  int port = atoi(strrchr(addr, ':') + 1);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
    return perror("connect"), 1;
  char buf[256] = "";
  for (int i = 0; i < 200 && !strchr(buf, '\n'); i++) {
    uv_run(&loop, UV_RUN_NOWAIT); /* the server accepts and greets */
    ssize_t r =
        recv(fd, buf + strlen(buf), sizeof buf - strlen(buf) - 1, MSG_DONTWAIT);
    (void)r;
    usleep(10000);
  }
  close(fd);
  printf("greeting: %s", buf);
  detour_fake_server_stop(srv);
  detour_fake_server_free(srv);
  detour_fake_scripts_free(v, n);
  uv_run(&loop, UV_RUN_DEFAULT);
  detour_clock_free(clock);
  uv_run(&loop, UV_RUN_DEFAULT);
  return strncmp(buf, "220 consumer.test hello", 23) == 0 &&
                 uv_loop_close(&loop) == 0
             ? 0
             : 1;
}

/*
 * adapter_device.c - the client "device" (`detour certify --device`): an
 * SMTP client that runs elsewhere (a printer, a scanner on the LAN),
 * which detour can neither configure nor start. prepare tells the
 * operator, once per process, what to configure (the server list in
 * priority order on --listen, the retry interval, the timeouts); submit
 * runs the --trigger command that makes the device send (or tells the
 * operator to); the device's queue cannot be seen, so the runner ends a
 * scenario when every recipient was accepted, or at its limit. The
 * verdict, as for every external client, is what the servers saw.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "adapter.h"
#include "scn_internal.h"

typedef struct {
  const detour_device_options *o;
  char dir[256];
  unsigned nmsgs;
} dev;

static pthread_mutex_t said_lock = PTHREAD_MUTEX_INITIALIZER;
static bool said;

static FILE *out(const detour_device_options *o) {
  return o && o->say ? o->say : stdout;
}

static bool dev_available(const detour_adapter *self, char *why, size_t len) {
  (void)self;
  (void)why;
  (void)len;
  return true;
}

/* Once per process: the configuration the whole profile expects. */
static void instructions(const detour_device_options *o,
                         const detour_adapter_config *c) {
  pthread_mutex_lock(&said_lock);
  if (!said) {
    FILE *f = out(o);
    fprintf(f, "device mode: configure the device at %s once:\n", o->peer);
    for (unsigned k = 0; k < 3; k++)
      fprintf(f, "  SMTP server %u%s: %s port %u\n", k + 1,
              k == 0 ? " (normal)" : " (backup)", o->listen,
              (unsigned)(o->port + k));
    fprintf(f,
            "  retry interval: %lld s; connect timeout: %lld s; no TLS, no "
            "AUTH\n",
            (long long)(c->retry_interval / 1000),
            (long long)(c->timeouts.connect / 1000));
    fprintf(f, "%s\n",
            o->trigger ? "each message is triggered by the --trigger command"
                       : "then send each message when asked below");
    fflush(f);
    said = true;
  }
  pthread_mutex_unlock(&said_lock);
}

static void *dev_prepare(const detour_adapter *self,
                         const detour_adapter_config *c, char *err,
                         size_t errlen) {
  const detour_device_options *o = self->data;
  if (!o || !o->listen || !o->peer) {
    snprintf(err, errlen, "device mode needs --listen and --peer");
    return NULL;
  }
  dev *d = calloc(1, sizeof *d);
  if (!d) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  d->o = o;
  const char *tmp = getenv("TMPDIR");
  snprintf(d->dir, sizeof d->dir, "%s/detour-device-XXXXXX",
           tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(d->dir)) {
    snprintf(err, errlen, "cannot make %s", d->dir);
    free(d);
    return NULL;
  }
  instructions(o, c);
  return d;
}

static int dev_submit(void *inst, const detour_adapter_message *m, char *err,
                      size_t errlen) {
  dev *d = inst;
  const detour_device_options *o = d->o;
  detour__scn_buf to = {0};
  for (size_t i = 0; i < m->nrcpts; i++)
    detour__scn_buf_add(&to, "%s%s", i ? " " : "", m->rcpts[i]);
  char *rcpts = detour__scn_buf_take(&to);
  if (!o->trigger) {
    fprintf(out(o), "now: make the device send one message from %s to %s\n",
            m->from, rcpts ? rcpts : "?");
    fflush(out(o));
    free(rcpts);
    return 0;
  }
  char path[400];
  snprintf(path, sizeof path, "%s/message-%u", d->dir, d->nmsgs++);
  FILE *f = fopen(path, "wb");
  bool ok = f && fwrite(m->body, 1, m->body_len, f) == m->body_len;
  if (f && fclose(f) != 0)
    ok = false;
  int st = -1;
  pid_t p = ok && rcpts ? fork() : -1;
  if (p == 0) {
    setenv("DETOUR_FROM", m->from, 1);
    setenv("DETOUR_TO", rcpts, 1);
    setenv("DETOUR_MESSAGE", path, 1);
    execl("/bin/sh", "sh", "-c", o->trigger, (char *)NULL);
    _exit(127);
  }
  if (p > 0)
    waitpid(p, &st, 0);
  free(rcpts);
  if (p > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0)
    return 0;
  snprintf(err, errlen, "the --trigger command failed (status %d)",
           p > 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1);
  return -1;
}

/* The device's queue cannot be seen: never "done" by its word. */
static int dev_wait_done(void *inst, detour_ms timeout, char *err,
                         size_t errlen) {
  (void)inst;
  (void)err;
  (void)errlen;
  usleep((useconds_t)(timeout > 0 ? timeout : 1) * 1000);
  return 0;
}

static const char *dev_logs(void *inst) {
  (void)inst;
  return NULL;
}

static void dev_teardown(void *inst) {
  dev *d = inst;
  if (!d)
    return;
  for (unsigned i = 0; i < d->nmsgs; i++) {
    char path[400];
    snprintf(path, sizeof path, "%s/message-%u", d->dir, i);
    unlink(path);
  }
  rmdir(d->dir);
  free(d);
}

static bool dev_version(const detour_adapter *self, char *buf, size_t len) {
  const detour_device_options *o = self->data;
  snprintf(buf, len, "device at %s", o && o->peer ? o->peer : "?");
  return true;
}

/* One per options; the runner keeps the options alive for the run. */
const detour_adapter *
detour__scn_device_adapter(const detour_device_options *o) {
  static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
  static detour_adapter a;
  pthread_mutex_lock(&lock);
  a = (detour_adapter){.name = "device",
                       .keys = "servers retry.interval timeouts helo_name",
                       .placement = DETOUR_PLACE_PORTS,
                       .data = (void *)o,
                       .available = dev_available,
                       .version = dev_version,
                       .prepare = dev_prepare,
                       .submit = dev_submit,
                       .wait_done = dev_wait_done,
                       .logs = dev_logs,
                       .teardown = dev_teardown};
  pthread_mutex_unlock(&lock);
  return &a;
}

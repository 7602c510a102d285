/*
 * pcap_hooks.c - the glue between the scenario runner's capture hook and
 * pcap.c: a capture per scenario, keyed by the token the start hook
 * returns (so two scenarios with the same name, run at once, do not mix),
 * and counts for the run's closing line. The runner may call the hooks
 * from several threads; the counts are behind a mutex.
 */
#include "rep_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct detour_pcap_hooks {
  char *dir;
  FILE *errors;
  pthread_mutex_t lock;
  size_t written, failed;
};

detour_pcap_hooks *detour_pcap_hooks_new(const char *dir, FILE *errors) {
  if (!dir)
    return NULL;
  detour_pcap_hooks *h = calloc(1, sizeof *h);
  if (!h)
    return NULL;
  h->dir = strdup(dir);
  if (!h->dir) {
    free(h);
    return NULL;
  }
  h->errors = errors;
  pthread_mutex_init(&h->lock, NULL);
  return h;
}

void *detour_pcap_hook_start(void *hooks, const char *scenario,
                             const uint16_t *ports, size_t n, const char *netns,
                             const char *device) {
  (void)netns; /* the runner calls us from inside it already */
  detour_pcap_hooks *h = hooks;
  if (!h)
    return NULL;
  detour_pcap *c = NULL;
  char err[512] = "";
  int rc = detour_pcap_start(h->dir, scenario, device, ports, n, &c, err,
                             sizeof err);
  pthread_mutex_lock(&h->lock);
  if (rc != 0) {
    h->failed++;
    if (h->errors)
      fprintf(h->errors, "pcap: %s: %s\n", scenario ? scenario : "?",
              err[0] ? err : detour_strerror(rc));
  }
  pthread_mutex_unlock(&h->lock);
  return c;
}

void detour_pcap_hook_stop(void *hooks, const char *scenario, void *token) {
  (void)scenario;
  detour_pcap_hooks *h = hooks;
  if (!h || !token)
    return;
  char path[4200];
  snprintf(path, sizeof path, "%s", detour_pcap_path(token));
  unsigned dropped = 0;
  detour_pcap_stop(token, &dropped);
  pthread_mutex_lock(&h->lock);
  h->written++;
  if (dropped && h->errors)
    fprintf(h->errors, "pcap: %s: the kernel dropped %u packet(s)\n", path,
            dropped);
  pthread_mutex_unlock(&h->lock);
}

void detour_pcap_hooks_count(detour_pcap_hooks *h, size_t *written,
                             size_t *failed) {
  pthread_mutex_lock(&h->lock);
  if (written)
    *written = h->written;
  if (failed)
    *failed = h->failed;
  pthread_mutex_unlock(&h->lock);
}

void detour_pcap_hooks_free(detour_pcap_hooks *h) {
  if (!h)
    return;
  pthread_mutex_destroy(&h->lock);
  free(h->dir);
  free(h);
}

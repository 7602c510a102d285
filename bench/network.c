/*
 * network.c - network profiles of `detour bench --network` (bench/networks/
 * NAME.yaml, or a user's file): the links of the simulated network
 * (fakeservers/netsim) between the client and the two servers.
 *
 *   name: wan-200ms
 *   description: a branch office 200 ms away
 *   client:  { delay: 0ms, loss: 0% }
 *   servers: { delay: 200ms, jitter: 0ms, rate: 1Gbit }
 *
 * delay is the round trip a link adds (netsim's meaning); loss is per
 * packet and direction ("5%" or 0.05); rate is a bit rate ("10Mbps").
 * Read with the project's one YAML reader, so an error names
 * FILE:LINE:COL.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "detour/detour_yaml.h"
#include "latency.h"

#ifdef DETOUR_BENCH_HAVE_NETSIM
#include "netsim.h"
#endif

static int read_loss(const detour_yaml_ctx *c, yaml_node_t *v, const char *path,
                     double *out) {
  const char *t = detour_yaml_scalar(c, v, path, "a loss like 5% or 0.05");
  if (!t)
    return DETOUR_EPARSE;
  char *end;
  double x = strtod(t, &end);
  if (end != t && *end == '%' && end[1] == '\0')
    x /= 100;
  else if (end == t || *end)
    return detour_yaml_expected(c, v, path, "a loss like 5% or 0.05");
  if (x < 0 || x > 1)
    return detour_yaml_fail(c, v, path, "a loss is between 0%% and 100%%");
  *out = x;
  return 0;
}

static int read_rate(const detour_yaml_ctx *c, yaml_node_t *v, const char *path,
                     unsigned long long *out) {
  const char *t = detour_yaml_scalar(c, v, path, "a rate like 10Mbps");
  if (!t)
    return DETOUR_EPARSE;
#ifdef DETOUR_BENCH_HAVE_NETSIM
  uint64_t bps;
  if (detour_netsim_parse_rate(t, &bps) != 0)
    return detour_yaml_expected(c, v, path, "a rate like 10Mbps or 1Gbit");
  *out = bps;
  return 0;
#else
  (void)out;
  return detour_yaml_fail(c, v, path, "rates need the network simulation");
#endif
}

enum { K_DELAY, K_JITTER, K_LOSS, K_RATE };
static const char *const LINK_KEYS[] = {"delay", "jitter", "loss", "rate"};

/* One link mapping; `server` says whether jitter and rate are allowed
 * (the client link takes delay and loss). */
static int read_link(const detour_yaml_ctx *c, yaml_node_t *map,
                     const char *parent, bool server, detour_bench_network *n) {
  detour_yaml_iter it;
  int rc = detour_yaml_iter_init(c, &it, map, parent, NULL, true);
  while (rc == 0 && (rc = detour_yaml_next_key(c, &it, LINK_KEYS,
                                               sizeof *LINK_KEYS, 4)) == 1) {
    switch (it.index) {
    case K_DELAY:
      rc = detour_yaml_duration(c, it.value, it.path, 0, "a delay like 200ms",
                                server ? &n->server_delay : &n->client_delay);
      break;
    case K_JITTER:
      rc = server ? detour_yaml_duration(c, it.value, it.path, 0,
                                         "a jitter like 5ms", &n->jitter)
                  : detour_yaml_fail(c, it.key, it.path,
                                     "jitter is set on the servers' links");
      break;
    case K_LOSS:
      rc = server ? detour_yaml_fail(c, it.key, it.path,
                                     "loss is set on the client's link (it "
                                     "covers every path)")
                  : read_loss(c, it.value, it.path, &n->loss);
      break;
    case K_RATE:
      rc = server ? read_rate(c, it.value, it.path, &n->rate_bps)
                  : detour_yaml_fail(c, it.key, it.path,
                                     "rate is set on the servers' links");
      break;
    }
  }
  return rc;
}

enum { T_NAME, T_DESCRIPTION, T_CLIENT, T_SERVERS };
static const char *const TOP_KEYS[] = {"name", "description", "client",
                                       "servers"};

static int read_profile(detour_yaml_file *f, detour_bench_network *n, char *err,
                        size_t errlen) {
  detour_yaml_ctx c = detour_yaml_ctx_of(f, err, errlen);
  yaml_node_t *root = detour_yaml_root(f);
  if (!root)
    return detour_yaml_fail(&c, NULL, NULL, "empty network profile");
  detour_yaml_iter it;
  int rc = detour_yaml_iter_init(&c, &it, root, "", "a network profile", false);
  while (rc == 0 && (rc = detour_yaml_next_key(&c, &it, TOP_KEYS,
                                               sizeof *TOP_KEYS, 4)) == 1) {
    const char *t;
    switch (it.index) {
    case T_NAME:
      if (!(t = detour_yaml_scalar(&c, it.value, it.path, "a name")))
        return DETOUR_EPARSE;
      snprintf(n->name, sizeof n->name, "%s", t);
      rc = 0;
      break;
    case T_DESCRIPTION:
      rc = 0;
      break;
    case T_CLIENT:
      rc = read_link(&c, it.value, it.path, false, n);
      break;
    case T_SERVERS:
      rc = read_link(&c, it.value, it.path, true, n);
      break;
    }
  }
  return rc;
}

static size_t profile_dirs(const char *dirs[3]) {
  size_t n = 0;
  const char *env = getenv("DETOUR_NETWORKS");
  if (env && *env)
    dirs[n++] = env;
  dirs[n++] = "bench/networks";
#ifdef DETOUR_BENCH_NETWORKS_DIR
  dirs[n++] = DETOUR_BENCH_NETWORKS_DIR;
#endif
  return n;
}

void detour_bench_network_names(char *buf, size_t len) {
  const char *dirs[3];
  size_t nd = profile_dirs(dirs);
  buf[0] = '\0';
  for (size_t i = 0; i < nd; i++) {
    DIR *d = opendir(dirs[i]);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
      size_t k = strlen(e->d_name);
      if (k <= 5 || strcmp(e->d_name + k - 5, ".yaml"))
        continue;
      char name[256];
      snprintf(name, sizeof name, "%.*s", (int)(k - 5), e->d_name);
      char padded[300];
      snprintf(padded, sizeof padded, " %s ", name);
      char have[1100];
      snprintf(have, sizeof have, " %s ", buf);
      if (!strstr(have, padded))
        snprintf(buf + strlen(buf), len - strlen(buf), "%s%s", *buf ? " " : "",
                 name);
    }
    if (d)
      closedir(d);
  }
}

static bool profile_path(const char *name, char *path, size_t len, char *err,
                         size_t errlen) {
  size_t k = strlen(name);
  if (strchr(name, '/') || (k > 5 && !strcmp(name + k - 5, ".yaml"))) {
    snprintf(path, len, "%s", name);
    return true;
  }
  const char *dirs[3];
  size_t nd = profile_dirs(dirs);
  for (size_t i = 0; i < nd; i++) {
    snprintf(path, len, "%s/%s.yaml", dirs[i], name);
    if (access(path, R_OK) == 0)
      return true;
  }
  char known[512];
  detour_bench_network_names(known, sizeof known);
  snprintf(err, errlen,
           "no network profile named '%s' (expected a file's path or one "
           "of: %s)",
           name, known[0] ? known : "none found");
  return false;
}

int detour_bench_network_load(const char *name, detour_bench_network *out,
                              char *err, size_t errlen) {
  char path[1024];
  memset(out, 0, sizeof *out);
  if (!profile_path(name, path, sizeof path, err, errlen))
    return DETOUR_EIO;
  detour_yaml_file f;
  int rc = detour_yaml_load_file(&f, path, err, errlen);
  if (rc == 0)
    rc = read_profile(&f, out, err, errlen);
  detour_yaml_file_free(&f);
  if (rc == 0 && !out->name[0])
    snprintf(out->name, sizeof out->name, "%s", name);
  return rc;
}

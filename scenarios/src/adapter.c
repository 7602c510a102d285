/*
 * adapter.c - the adapter registry (detour/adapter.h) and the runner's
 * side of external clients (adapter.h): which adapters exist, which
 * scenarios an external client can be judged by (the rest are a SKIP with
 * the reason), one thread per run that drives the adapter (submit each
 * message at its time, then wait for the client to finish, bounded by the
 * scenario's limit), and the recipients' outcomes rebuilt from what the
 * fake servers saw, so that `recipients:` and `latency:` expectations
 * judge an external client by evidence, never by its word. Adapters are
 * client manifests (clients/README.md), loaded on first use.
 */
#define _GNU_SOURCE /* strndup */
#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "adapter.h"
#include "manifest.h"
#include "scn_internal.h"

/* Each wait_done call is this short, so a stop request is seen soon. */
#define WAIT_SLICE_MS 200
/* A submission loop sleeps this long between looks at the stop flag. */
#define SLEEP_SLICE_MS 50
/* The part of the client's log a failure shows. */
#define LOG_TAIL_BYTES 3000

/* ------------------------------------------------------------------------ */
/* The registry: manifests loaded at run time, kept until the process ends  */

#define MAX_LOADED 64

typedef struct {
  char *client; /* as asked: a name or a path */
  detour_adapter *a;
} loaded;

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static loaded registry[MAX_LOADED];
static size_t nregistry;

bool detour__scn_adapter_is_builtin(const char *name) {
  return !name || !*name || !strcmp(name, "builtin") || !strcmp(name, "detour");
}

static bool is_path(const char *client) {
  size_t n = strlen(client);
  return strchr(client, '/') || (n > 5 && !strcmp(client + n - 5, ".yaml"));
}

/* The folders manifests are looked for in, in order. */
static size_t manifest_dirs(const char *dirs[3]) {
  size_t n = 0;
  const char *env = getenv("DETOUR_CLIENTS");
  if (env && *env)
    dirs[n++] = env;
  dirs[n++] = "clients";
#ifdef DETOUR_CLIENTS_DIR
  dirs[n++] = DETOUR_CLIENTS_DIR;
#endif
  return n;
}

/* The manifest file for client, or false with why. */
static bool manifest_path(const char *client, char *path, size_t len, char *err,
                          size_t errlen) {
  if (is_path(client)) {
    snprintf(path, len, "%s", client);
    return true;
  }
  for (const char *p = client; *p; p++)
    if (!(*p == '-' || *p == '_' || (*p >= 'a' && *p <= 'z') ||
          (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9'))) {
      snprintf(err, errlen,
               "'%s' is no client name (letters, digits, '-', "
               "'_') nor a manifest path",
               client);
      return false;
    }
  const char *dirs[3];
  size_t n = manifest_dirs(dirs);
  for (size_t i = 0; i < n; i++) {
    snprintf(path, len, "%s/%s.yaml", dirs[i], client);
    if (access(path, R_OK) == 0)
      return true;
  }
  char known[1024];
  detour_adapter_names(known, sizeof known);
  snprintf(err, errlen,
           "unknown client '%s' (expected builtin, a manifest "
           "path, or one of: %s)",
           client, known);
  return false;
}

const detour_adapter *detour_adapter_load(const char *client, char *err,
                                          size_t errlen) {
  char dummy[8];
  if (!err || !errlen) {
    err = dummy;
    errlen = sizeof dummy;
  }
  err[0] = '\0';
  if (detour__scn_adapter_is_builtin(client))
    return NULL;
  pthread_mutex_lock(&registry_lock);
  detour_adapter *found = NULL;
  for (size_t i = 0; i < nregistry && !found; i++)
    if (!strcmp(registry[i].client, client))
      found = registry[i].a;
  char path[1024];
  mf_manifest *m = NULL;
  if (!found && nregistry < MAX_LOADED &&
      manifest_path(client, path, sizeof path, err, errlen) &&
      detour__scn_manifest_load(path, &m, err, errlen) == 0) {
    found = detour__scn_manifest_adapter(m);
    char *key = strdup(client);
    if (found && key) {
      registry[nregistry++] = (loaded){key, found};
    } else {
      snprintf(err, errlen, "out of memory");
      free(key);
      free(found);
      detour__scn_manifest_free(m);
      found = NULL;
    }
  }
  pthread_mutex_unlock(&registry_lock);
  return found;
}

const detour_adapter *detour_adapter_find(const char *client) {
  return detour_adapter_load(client, NULL, 0);
}

const detour_adapter *detour__scn_adapter_of(const detour_scenario *s) {
  if (s->device)
    return detour__scn_device_adapter(s->device);
  return detour_adapter_find(s->adapter);
}

bool detour_scenario_client_exists(const char *name) {
  return detour__scn_adapter_is_builtin(name) ||
         detour_adapter_find(name) != NULL;
}

static int by_name(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void detour_adapter_names(char *buf, size_t len) {
  const char *dirs[3];
  size_t nd = manifest_dirs(dirs);
  char *names[128];
  size_t n = 0;
  for (size_t i = 0; i < nd; i++) {
    DIR *d = opendir(dirs[i]);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL && n < 128) {
      size_t k = strlen(e->d_name);
      if (k <= 5 || strcmp(e->d_name + k - 5, ".yaml"))
        continue;
      bool dup = false;
      for (size_t j = 0; j < n && !dup; j++)
        dup = strlen(names[j]) == k - 5 && !strncmp(names[j], e->d_name, k - 5);
      if (!dup && (names[n] = strndup(e->d_name, k - 5)))
        n++;
    }
    if (d)
      closedir(d);
  }
  qsort(names, n, sizeof *names, by_name);
  buf[0] = '\0';
  for (size_t i = 0; i < n; i++) {
    snprintf(buf + strlen(buf), len - strlen(buf), "%s%s", i ? " " : "",
             names[i]);
    free(names[i]);
  }
  if (!n)
    snprintf(buf, len, "(no manifest found in ./clients)");
}

/* ------------------------------------------------------------------------ */
/* What an external client can be judged by                                 */

/* Is word one of the space-separated words of list? */
static bool has_word(const char *list, const char *word, size_t n) {
  for (const char *p = list; *p;) {
    size_t k = strcspn(p, " ");
    if (k == n && !strncmp(p, word, n))
      return true;
    p += k + (p[k] == ' ');
  }
  return false;
}

/* Client keys the adapter cannot render would silently change what is
 * tested (a detour table Postfix has no notion of), so they skip. */
static bool keys_ok(const detour_scenario *s, const detour_adapter *a,
                    char *why, size_t len) {
  for (const char *p = s->client_keys; *p;) {
    size_t k = strcspn(p, " ");
    size_t top = strcspn(p, ". ");
    if (!has_word(a->keys, p, k) && !has_word(a->keys, p, top)) {
      snprintf(why, len,
               "skipped: client key '%.*s' has no equivalent in the %s "
               "adapter (it renders: %s)",
               (int)k, p, a->name, a->keys);
      return false;
    }
    p += k + (p[k] == ' ');
  }
  /* R13 settings per server: an adapter renders them when it lists
   * "tls" among its keys; otherwise the client would meet a TLS server
   * in clear, which tests something else. */
  for (size_t i = 0; i < s->nclient_servers; i++) {
    const detour__scn_client_server *cs = &s->client_servers[i];
    if ((cs->tls != DETOUR_TLS_MODE_NONE || cs->auth_user[0]) &&
        !has_word(a->keys, "tls", 3)) {
      snprintf(why, len,
               "skipped: client.servers has TLS/AUTH settings (R13), which "
               "the %s adapter does not render (it renders: %s)",
               a->name, a->keys);
      return false;
    }
  }
  return true;
}

/* Only the built-in engine reports a status, an exit code, send-log rows,
 * warnings or why a recipient failed; an external client's word is no
 * evidence, so scenarios that expect those are not for it. */
static bool expectations_ok(const detour_scenario *s, char *why, size_t len) {
  const detour__scn_expect *x = &s->expect;
  const char *what = x->nstatus          ? "status"
                     : x->exit_code >= 0 ? "exit"
                     : x->has_log        ? "log"
                     : x->has_warnings   ? "warnings"
                                         : NULL;
  for (size_t i = 0; !what && i < x->nrcpts; i++)
    if (x->rcpts[i].outcome >= 0 &&
        x->rcpts[i].outcome != DETOUR_RCPT_DELIVERED)
      what = "recipients.outcome other than delivered";
  if (!what)
    return true;
  snprintf(why, len,
           "skipped: expects '%s', which only the built-in engine reports "
           "(an external client is judged by the fake servers alone)",
           what);
  return false;
}

static bool setup_ok(const detour_scenario *s, char *why, size_t len) {
  if (!s->realtime_ok)
    snprintf(why, len,
             "skipped: realtime: false (a long schedule, virtual "
             "time only); an external client runs in real time");
  else if (s->net.enabled)
    snprintf(why, len,
             "skipped: a network: scenario runs only the built-in "
             "engine");
  else
    for (size_t i = 0; i < s->nclient_servers; i++)
      if (s->client_servers[i].fake < 0) {
        snprintf(why, len,
                 "skipped: client.servers has the literal address %s; an "
                 "external client is pointed only at the run's fake servers",
                 s->client_servers[i].host);
        return false;
      }
  for (size_t i = 0; !*why && i < s->nmsgs; i++)
    if (s->msgs[i].override != DETOUR_OVERRIDE_NONE)
      snprintf(why, len,
               "skipped: message %zu has a per-send override (R4), "
               "which an external client has no way to take",
               i);
  return !*why;
}

bool detour__scn_ext_skip(const detour_scenario *s, char *why, size_t len) {
  const detour_adapter *a = detour__scn_adapter_of(s);
  char reason[256] = "";
  why[0] = '\0';
  if (!a) {
    snprintf(why, len, "skipped: no adapter named '%s'", s->adapter);
    return true;
  }
  if (!setup_ok(s, why, len) || !keys_ok(s, a, why, len) ||
      !expectations_ok(s, why, len))
    return true;
  if (!a->available(a, reason, sizeof reason)) {
    snprintf(why, len, "skipped: %s cannot run here: %s", a->name, reason);
    return true;
  }
  return false;
}

/* ------------------------------------------------------------------------ */
/* The adapter's thread                                                      */

struct detour__scn_ext {
  const detour_scenario *s;
  const detour_adapter *a;
  void *inst;
  pthread_t thread;
  bool started;
  atomic_bool stop, finished;
  uint64_t hr0;
  detour_ms limit;
  detour_ms submit_t[SCN_MAX_MESSAGES];
  size_t nsubmitted;
  int done; /* 1 the client holds nothing, 0 not by the limit, -1 error */
  char err[512];
};

detour__scn_ext *detour__scn_ext_new(const detour_scenario *s,
                                     const detour_adapter_server *servers,
                                     size_t nservers, char *err,
                                     size_t errlen) {
  detour__scn_ext *x = calloc(1, sizeof *x);
  if (!x) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  x->s = s;
  x->a = detour__scn_adapter_of(s);
  detour_adapter_config c = {.scenario = s->name,
                             .servers = servers,
                             .nservers = nservers,
                             .hostname = NULL,
                             .retry_interval = s->settings.cfg.retry_interval,
                             .max_attempts = s->settings.cfg.max_attempts,
                             .timeouts = s->settings.cfg.timeouts,
                             .helo_name = s->settings.cfg.helo_name};
  x->inst = x->a ? x->a->prepare(x->a, &c, err, errlen) : NULL;
  if (!x->inst) {
    free(x);
    return NULL;
  }
  return x;
}

static detour_ms elapsed(const detour__scn_ext *x) {
  return (detour_ms)((uv_hrtime() - x->hr0) / 1000000u);
}

static bool stopping(const detour__scn_ext *x) {
  return atomic_load(&x->stop) || detour__scn_interrupted();
}

/* Sleep until offset `at` from t = 0; false when told to stop first. */
static bool sleep_until(const detour__scn_ext *x, detour_ms at) {
  while (!stopping(x) && elapsed(x) < at) {
    detour_ms left = at - elapsed(x);
    detour_ms step = left < SLEEP_SLICE_MS ? left : SLEEP_SLICE_MS;
    struct timespec ts = {0, (long)step * 1000000L};
    nanosleep(&ts, NULL);
  }
  return !stopping(x);
}

static int submit_all(detour__scn_ext *x) {
  for (size_t i = 0; i < x->s->nmsgs; i++) {
    const detour__scn_message *m = &x->s->msgs[i];
    if (!sleep_until(x, m->at))
      return 0;
    detour_adapter_message am = {m->from, (const char *const *)m->to, m->nto,
                                 m->body, m->body_len};
    x->submit_t[i] = elapsed(x);
    if (x->a->submit(x->inst, &am, x->err, sizeof x->err) < 0)
      return -1;
    x->nsubmitted++;
  }
  return 0;
}

static void *ext_main(void *arg) {
  detour__scn_ext *x = arg;
  int rc = submit_all(x);
  while (rc == 0 && !stopping(x) && x->nsubmitted == x->s->nmsgs &&
         elapsed(x) < x->limit) {
    detour_ms left = x->limit - elapsed(x);
    rc = x->a->wait_done(x->inst, left < WAIT_SLICE_MS ? left : WAIT_SLICE_MS,
                         x->err, sizeof x->err);
  }
  x->done = rc;
  atomic_store(&x->finished, true);
  return NULL;
}

int detour__scn_ext_begin(detour__scn_ext *x, uint64_t hr0, detour_ms limit,
                          char *err, size_t errlen) {
  x->hr0 = hr0;
  x->limit = limit;
  if (pthread_create(&x->thread, NULL, ext_main, x) != 0) {
    snprintf(err, errlen, "cannot start the adapter's thread");
    return -1;
  }
  x->started = true;
  return 0;
}

bool detour__scn_ext_finished(const detour__scn_ext *x) {
  return atomic_load(&((detour__scn_ext *)x)->finished);
}

/* Joining is bounded: every adapter call is, and the thread looks at the
 * stop flag between calls. */
static void stop_thread(detour__scn_ext *x) {
  if (!x->started)
    return;
  atomic_store(&x->stop, true);
  pthread_join(x->thread, NULL);
  x->started = false;
}

void detour__scn_ext_collect(detour__scn_ext *x, detour_scenario_result *r) {
  stop_thread(x);
  for (size_t i = 0; i < x->nsubmitted && i < r->nmsgs; i++)
    r->msgs[i].submit_t = x->submit_t[i];
  if (x->done < 0)
    detour__scn_fail(r, "client %s: %s", x->a->name, x->err);
  else if (x->nsubmitted < x->s->nmsgs)
    detour__scn_fail(r, "client %s: only %zu of %zu messages were submitted",
                     x->a->name, x->nsubmitted, x->s->nmsgs);
  else if (x->done == 0 && !detour__scn_interrupted() && !x->s->device)
    detour__scn_fail(r,
                     "client %s still held a message at the end of the run "
                     "(limit: key): neither delivered nor given up",
                     x->a->name);
}

char *detour__scn_ext_log_tail(const detour__scn_ext *x) {
  const char *path = x && x->a->logs ? x->a->logs(x->inst) : NULL;
  FILE *f = path ? fopen(path, "rb") : NULL;
  if (!f)
    return NULL;
  char buf[LOG_TAIL_BYTES + 1];
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fseek(f, size > LOG_TAIL_BYTES ? size - LOG_TAIL_BYTES : 0, SEEK_SET);
  size_t n = fread(buf, 1, LOG_TAIL_BYTES, f);
  fclose(f);
  buf[n] = '\0';
  /* start at a whole line when the tail was cut */
  char *start =
      size > LOG_TAIL_BYTES && strchr(buf, '\n') ? strchr(buf, '\n') + 1 : buf;
  return detour__scn_printf("client log %s (last lines):\n%s", path, start);
}

void detour__scn_ext_free(detour__scn_ext *x) {
  if (!x)
    return;
  stop_thread(x);
  x->a->teardown(x->inst);
  free(x);
}

/* ------------------------------------------------------------------------ */
/* Outcomes from the fake servers' records                                   */

typedef struct {
  size_t server, msg, rcpt;
} accepted;

/* Every recipient a server accepted with the whole message (2xx to the
 * final "."), the earliest first within each server. */
static accepted *accepted_list(const detour_scenario_result *r, size_t *n) {
  size_t cap = 0;
  accepted *v = NULL;
  *n = 0;
  for (size_t i = 0; i < r->nservers; i++)
    for (size_t j = 0; j < r->servers[i].nmsgs; j++) {
      const detour_scenario_received *m = &r->servers[i].msgs[j];
      if (!m->complete || m->code / 100 != 2)
        continue;
      for (size_t q = 0; q < m->nrcpts; q++) {
        if (detour__scn_grow(&v, &cap, *n, sizeof *v) < 0) {
          free(v);
          return NULL;
        }
        v[(*n)++] = (accepted){i, j, q};
      }
    }
  return v ? v : calloc(1, sizeof *v);
}

/* The earliest unclaimed acceptance of addr, or -1. */
static long claim(const detour_scenario_result *r, const accepted *v, size_t n,
                  bool *taken, const char *addr) {
  long best = -1;
  for (size_t k = 0; k < n; k++) {
    const detour_scenario_received *m = &r->servers[v[k].server].msgs[v[k].msg];
    if (taken[k] || strcasecmp(m->rcpts[v[k].rcpt], addr) != 0)
      continue;
    if (best < 0 || m->t < r->servers[v[best].server].msgs[v[best].msg].t)
      best = (long)k;
  }
  if (best >= 0)
    taken[best] = true;
  return best;
}

int detour__scn_ext_outcomes(const detour_scenario *s,
                             detour_scenario_result *r) {
  size_t n = 0, cap = 0;
  accepted *v = accepted_list(r, &n);
  bool *taken = calloc(n ? n : 1, sizeof *taken);
  if (!v || !taken) {
    free(v);
    free(taken);
    return DETOUR_ENOMEM;
  }
  for (size_t m = 0; m < s->nmsgs; m++)
    for (size_t k = 0; k < s->msgs[m].nto; k++) {
      if (detour__scn_grow(&r->rcpts, &cap, r->nrcpts, sizeof *r->rcpts) < 0)
        break;
      detour_scenario_rcpt *o = &r->rcpts[r->nrcpts++];
      memset(o, 0, sizeof *o);
      long c = claim(r, v, n, taken, s->msgs[m].to[k]);
      o->message = m;
      o->recipient = detour__scn_strdup(s->msgs[m].to[k]);
      o->outcome = c >= 0 ? DETOUR_RCPT_DELIVERED : DETOUR_RCPT_DEFERRED;
      o->server =
          c >= 0 ? detour__scn_strdup(r->servers[v[c].server].name) : NULL;
      o->t = c >= 0 ? r->servers[v[c].server].msgs[v[c].msg].t : 0;
      o->detail = detour__scn_strdup(c >= 0 ? "accepted by a fake server"
                                            : "no fake server accepted it");
    }
  free(v);
  free(taken);
  return 0;
}

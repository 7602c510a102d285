/*
 * suite.c - runs many scenarios: finds the files (directories searched
 * for *.yaml, sorted so the order is the same everywhere), filters them by
 * name, runs them on N threads (each scenario has its own loop and clock,
 * so they share nothing), and prints one line per scenario in file order
 * as soon as every earlier one is done, plus a progress line on a
 * terminal. Writes the results files for `--out DIR`.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <uv.h>

#include "scn_internal.h"

/* ------------------------------------------------------------------------ */
/* Finding files                                                             */

typedef struct {
  char **v;
  size_t n, cap;
} strvec;

static int vec_add(strvec *v, char *s) {
  if (!s || detour__scn_grow(&v->v, &v->cap, v->n, sizeof *v->v) < 0) {
    free(s);
    return DETOUR_ENOMEM;
  }
  v->v[v->n++] = s;
  return 0;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "x.yaml", not a hidden ".x.yaml" (editors' swap and backup files). */
static bool is_yaml(const char *path) {
  const char *slash = strrchr(path, '/');
  const char *name = slash ? slash + 1 : path;
  size_t n = strlen(name);
  return n > 5 && strcmp(name + n - 5, ".yaml") == 0 && name[0] != '.';
}

/* Depth-limited so a symlink loop cannot run away. */
static int find_in_dir(const char *dir, strvec *out, int depth) {
  if (depth > 16)
    return 0;
  DIR *d = opendir(dir);
  if (!d)
    return DETOUR_EIO;
  strvec here = {0};
  int rc = 0;
  struct dirent *e;
  while (rc == 0 && (e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.')
      continue;
    rc = vec_add(&here, detour__scn_printf("%s/%s", dir, e->d_name));
  }
  closedir(d);
  if (here.n)
    qsort(here.v, here.n, sizeof *here.v, cmp_str);
  for (size_t i = 0; i < here.n; i++) {
    struct stat st;
    char *p = here.v[i];
    here.v[i] = NULL;
    if (rc == 0 && stat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
      rc = find_in_dir(p, out, depth + 1);
      free(p);
    } else if (rc == 0 && is_yaml(p)) {
      rc = vec_add(out, p);
    } else {
      free(p);
    }
  }
  free(here.v);
  return rc;
}

char **detour_suite_find(const char *const *paths, size_t npaths, size_t *n,
                         char *err, size_t errlen) {
  strvec out = {0};
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < npaths; i++) {
    struct stat st;
    if (stat(paths[i], &st) != 0) {
      snprintf(err, errlen, "%s: %s", paths[i], strerror(errno));
      rc = DETOUR_EIO;
    } else if (S_ISDIR(st.st_mode)) {
      rc = find_in_dir(paths[i], &out, 0);
      if (rc < 0)
        snprintf(err, errlen, "%s: cannot read the directory", paths[i]);
    } else {
      rc = vec_add(&out, strdup(paths[i]));
    }
  }
  if (rc < 0) {
    if (rc == DETOUR_ENOMEM)
      snprintf(err, errlen, "out of memory");
    detour_suite_files_free(out.v, out.n);
    return NULL;
  }
  *n = out.n;
  return out.v ? out.v : calloc(1, sizeof(char *));
}

void detour_suite_files_free(char **files, size_t n) {
  for (size_t i = 0; files && i < n; i++)
    free(files[i]);
  free(files);
}

/* ------------------------------------------------------------------------ */
/* Running, in parallel                                                      */

typedef struct {
  const detour_suite_options *o;
  char **files;
  size_t nfiles;
  detour_suite *suite;
  bool *finished;
  pthread_mutex_t mu;
  size_t next;    /* next file to start */
  size_t printed; /* results printed so far */
  size_t ndone;
  uint64_t t0;
  char running[128]; /* the scenario started last, for the progress line */
} pool;

static const char *basename_of(const char *p) {
  const char *s = strrchr(p, '/');
  return s ? s + 1 : p;
}

/* "R4", "r12": a rule id of docs/rules.md's form. */
static bool is_rule_id(const char *f) {
  if ((f[0] != 'R' && f[0] != 'r') || !isdigit((unsigned char)f[1]))
    return false;
  for (f++; *f; f++)
    if (!isdigit((unsigned char)*f))
      return false;
  return true;
}

/* Whether a scenario naming rule id r counts for filter f ("R4" takes
 * "R4" and "R4.timeout", not "R40"). */
static bool rule_matches(const char *f, const char *r) {
  size_t n = strlen(f);
  return strncasecmp(f, r, n) == 0 && !isdigit((unsigned char)r[n]);
}

/* One --filter against a scenario (s NULL: a file that did not load, known
 * by its path only). */
static bool filter_matches(const char *f, const char *file,
                           const detour_scenario *s) {
  if (is_rule_id(f)) {
    size_t n = s ? detour_scenario_rule_count(s) : 0;
    for (size_t i = 0; i < n; i++)
      if (rule_matches(f, detour_scenario_rule(s, i)))
        return true;
    return false;
  }
  const char *name = s ? detour_scenario_name(s) : NULL;
  if (strpbrk(f, "*?["))
    return (name && detour_scenario_glob(f, name)) ||
           detour_scenario_glob(f, basename_of(file)) ||
           detour_scenario_glob(f, file);
  return (name && strstr(name, f)) || strstr(file, f);
}

/* The old filter (a glob) and any of the new ones must match. */
static bool wanted(const detour_suite_options *o, const char *file,
                   const detour_scenario *s) {
  if (o->filter &&
      !((s && detour_scenario_glob(o->filter, detour_scenario_name(s))) ||
        detour_scenario_glob(o->filter, basename_of(file)) ||
        detour_scenario_glob(o->filter, file)))
    return false;
  if (o->nfilters == 0)
    return true;
  for (size_t i = 0; i < o->nfilters; i++)
    if (filter_matches(o->filters[i], file, s))
      return true;
  return false;
}

static void print_progress(pool *p);

/* The progress line names the scenario that starts now. */
static void show_running(pool *p, size_t i) {
  pthread_mutex_lock(&p->mu);
  snprintf(p->running, sizeof p->running, "%s", basename_of(p->files[i]));
  print_progress(p);
  pthread_mutex_unlock(&p->mu);
}

/* Load and run file i into results[i]. Returns false when it was filtered
 * out (results[i] is then a SKIP with no name printed). */
static bool run_one(pool *p, size_t i, detour_scenario_result *res) {
  char err[1024] = "";
  detour_scenario *s = NULL;
  int rc = detour_scenario_load_file(p->files[i], &p->o->scenario, &s, err,
                                     sizeof err);
  if (rc < 0) {
    /* A broken file is reported (ERROR) unless a filter leaves it out by
     * its path; a rule filter cannot know its rules, so it is kept. */
    bool rule_filter = false;
    for (size_t k = 0; k < p->o->nfilters; k++)
      rule_filter |= is_rule_id(p->o->filters[k]);
    if (!rule_filter && !wanted(p->o, p->files[i], NULL))
      return false;
    detour_scenario_result_error(res, p->files[i], err);
    return true;
  }
  if (!wanted(p->o, p->files[i], s)) {
    detour_scenario_free(s);
    return false;
  }
  show_running(p, i);
  if (detour_scenario_run(s, res) < 0)
    detour_scenario_result_error(res, p->files[i], "out of memory");
  detour_scenario_free(s);
  return true;
}

static void print_line(const detour_suite_options *o,
                       const detour_scenario_result *r) {
  if (!o->out)
    return;
  const char *col = "", *end = "";
  if (o->color) {
    end = "\033[0m";
    col = r->verdict == DETOUR_VERDICT_PASS   ? "\033[32m"
          : r->verdict == DETOUR_VERDICT_SKIP ? "\033[33m"
                                              : "\033[1;31m";
  }
  char rules[128] = "";
  for (size_t i = 0; i < r->nrules; i++)
    snprintf(rules + strlen(rules), sizeof rules - strlen(rules), "%s%s",
             i ? "," : "", r->rules[i]);
  fprintf(o->out, "%s%-5s%s %-44s [%s] %.0f ms\n", col,
          detour_verdict_name(r->verdict), end, r->name ? r->name : "?", rules,
          r->wall_ms);
  detour_scenario_result_print(r, o->out, o->color, o->verbose);
}

static void print_progress(pool *p) {
  FILE *f = p->o->progress;
  if (!f)
    return;
  double s = (double)(uv_hrtime() - p->t0) / 1e9;
  fprintf(f, "\r\033[K[%zu/%zu] %zu failed  %.1f s  %s", p->ndone, p->nfiles,
          p->suite->failed, s, p->running);
  fflush(f);
}

/* Print every finished result that has no unfinished one before it. Called
 * with the lock held, so lines never interleave. */
static void flush_in_order(pool *p) {
  bool any = false;
  while (p->printed < p->nfiles && p->finished[p->printed]) {
    detour_scenario_result *r = &p->suite->results[p->printed++];
    if (!r->name)
      continue; /* filtered out */
    if (!any && p->o->progress)
      fprintf(p->o->progress, "\r\033[K");
    any = true;
    print_line(p->o, r);
  }
  if (p->o->out)
    fflush(p->o->out);
}

static void count(detour_suite *s, const detour_scenario_result *r) {
  if (!r->name)
    return;
  if (r->verdict == DETOUR_VERDICT_PASS)
    s->passed++;
  else if (r->verdict == DETOUR_VERDICT_SKIP)
    s->skipped++;
  else
    s->failed++;
  if (r->verdict == DETOUR_VERDICT_ERROR)
    s->errors++;
}

static void *worker(void *arg) {
  pool *p = arg;
  for (;;) {
    pthread_mutex_lock(&p->mu);
    /* after an interrupt no scenario starts: what ran is reported */
    size_t i = p->next < p->nfiles && !detour__scn_interrupted() ? p->next++
                                                                 : p->nfiles;
    pthread_mutex_unlock(&p->mu);
    if (i >= p->nfiles)
      return NULL;
    detour_scenario_result res;
    memset(&res, 0, sizeof res);
    bool ran = run_one(p, i, &res);
    pthread_mutex_lock(&p->mu);
    if (ran)
      p->suite->results[i] = res;
    count(p->suite, &p->suite->results[i]);
    p->finished[i] = true;
    p->ndone++;
    flush_in_order(p);
    print_progress(p);
    pthread_mutex_unlock(&p->mu);
  }
}

/* Drop the filtered-out slots so results[] holds only what ran. */
static void compact(detour_suite *s) {
  size_t k = 0;
  for (size_t i = 0; i < s->n; i++)
    if (s->results[i].name)
      s->results[k++] = s->results[i];
  s->n = k;
}

int detour_suite_run(const detour_suite_options *o, detour_suite *out,
                     char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  size_t nfiles = 0;
  char **files = detour_suite_find(o->paths, o->npaths, &nfiles, err, errlen);
  if (!files)
    return DETOUR_EINVAL;
  pool p = {.o = o,
            .files = files,
            .nfiles = nfiles,
            .suite = out,
            .t0 = uv_hrtime()};
  out->results = calloc(nfiles ? nfiles : 1, sizeof *out->results);
  p.finished = calloc(nfiles ? nfiles : 1, sizeof *p.finished);
  if (!out->results || !p.finished) {
    free(p.finished);
    detour_suite_files_free(files, nfiles);
    snprintf(err, errlen, "out of memory");
    return DETOUR_ENOMEM;
  }
  out->n = nfiles;
  pthread_mutex_init(&p.mu, NULL);
  unsigned jobs = o->jobs ? o->jobs : 1;
  if (jobs > 64)
    jobs = 64;
  pthread_t th[64];
  unsigned started = 0;
  for (unsigned j = 1; j < jobs && j < nfiles; j++)
    if (pthread_create(&th[started], NULL, worker, &p) == 0)
      started++;
  worker(&p); /* this thread works too */
  for (unsigned j = 0; j < started; j++)
    pthread_join(th[j], NULL);
  pthread_mutex_destroy(&p.mu);
  if (o->progress) {
    fprintf(o->progress, "\r\033[K");
    fflush(o->progress);
  }
  free(p.finished);
  detour_suite_files_free(files, nfiles);
  compact(out);
  out->wall_ms = (double)(uv_hrtime() - p.t0) / 1e6;
  return 0;
}

void detour_suite_free(detour_suite *s) {
  for (size_t i = 0; s && i < s->n; i++)
    detour_scenario_result_free(&s->results[i]);
  if (s) {
    free(s->results);
    memset(s, 0, sizeof *s);
  }
}

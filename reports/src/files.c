/*
 * files.c - writing the artefacts to files: `--json FILE --junit FILE
 * --html FILE`, or all of them with default names under `--report-dir`.
 * Each file is written to "<path>.tmp" and renamed, so a reader (a CI
 * step, a browser reloading) never sees half a report.
 */
#include "rep_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int detour_report_mkdirs(const char *dir, char *err, size_t errlen) {
  if (!dir || !dir[0])
    return 0;
  char *p = strdup(dir);
  if (!p)
    return DETOUR_ENOMEM;
  int rc = 0;
  for (char *q = p + 1;; q++) {
    bool end = *q == '\0';
    if (*q != '/' && !end)
      continue;
    *q = '\0';
    if (mkdir(p, 0777) != 0 && errno != EEXIST) {
      snprintf(err, errlen, "%s: %s", p, strerror(errno));
      rc = DETOUR_EIO;
      break;
    }
    if (end)
      break;
    *q = '/';
  }
  free(p);
  return rc;
}

/* mkdir -p of path's directory part. */
static int parent_dirs(const char *path, char *err, size_t errlen) {
  const char *slash = strrchr(path, '/');
  if (!slash || slash == path)
    return 0;
  char dir[4096];
  snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
  return detour_report_mkdirs(dir, err, errlen);
}

typedef int (*writer)(const detour_suite *, const detour_report_meta *, FILE *);

static int write_one(const detour_suite *s, const detour_report_meta *m,
                     const char *path, writer w, char *err, size_t errlen) {
  if (!path)
    return 0;
  if (parent_dirs(path, err, errlen) != 0)
    return DETOUR_EIO;
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if (!f) {
    snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
    return DETOUR_EIO;
  }
  int rc = w(s, m, f);
  if (fclose(f) != 0 && rc == 0)
    rc = DETOUR_EIO;
  if (rc != 0) {
    snprintf(err, errlen, "%s: %s", tmp, detour_strerror(rc));
    remove(tmp);
    return rc;
  }
  if (rename(tmp, path) != 0) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    remove(tmp);
    return DETOUR_EIO;
  }
  return 0;
}

int detour_report_write_files(const detour_suite *s,
                              const detour_report_meta *m,
                              const detour_report_paths *p, char *err,
                              size_t errlen) {
  if (!s || !p)
    return DETOUR_EINVAL;
  char e[3][512] = {"", "", ""};
  int r1 = write_one(s, m, p->json, detour_report_json, e[0], sizeof e[0]);
  int r2 = write_one(s, m, p->junit, detour_report_junit, e[1], sizeof e[1]);
  int r3 = write_one(s, m, p->html, detour_report_html, e[2], sizeof e[2]);
  for (int i = 0; i < 3; i++)
    if (e[i][0]) {
      snprintf(err, errlen, "%s", e[i]);
      break;
    }
  return r1 ? r1 : r2 ? r2 : r3;
}

void detour_report_file_stem(const char *name, char *buf, size_t len) {
  if (!buf || len == 0)
    return;
  size_t o = 0;
  for (const char *p = name ? name : ""; *p && o + 1 < len; p++) {
    unsigned char c = (unsigned char)*p;
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '-' || c == '_' ||
              (c == '.' && o > 0);
    buf[o++] = ok ? (char)c : '_';
  }
  if (o == 0 && len > 1)
    buf[o++] = '_';
  buf[o] = '\0';
}

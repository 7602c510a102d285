/*
 * manifest.h - a client manifest (clients/NAME.yaml, clients/README.md)
 * as loaded: what manifest_load.c reads and adapter_manifest.c runs.
 * Every string that may hold {variables} is kept as written (a template)
 * and was checked at load time to name only known variables.
 */
#ifndef DETOUR_SCN_MANIFEST_H
#define DETOUR_SCN_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>

#include "detour/adapter.h"

typedef struct {
  char **v;
  size_t n;
} mf_list;

typedef struct {
  char *path; /* under {dir}, a template */
  char *text; /* a template */
} mf_file;

/* A variable of the manifest's `tls:` section: its text in a run that
 * asks for TLS (detour_adapter_config.tls_ca_file), else its plain text. */
typedef struct {
  char *name;
  char *on, *off; /* templates; off may be "" */
} mf_tlsvar;

typedef enum {
  MF_READY_NONE = 0,
  MF_READY_PORT,
  MF_READY_FILE,
  MF_READY_CMD
} mf_ready;
typedef enum { MF_DONE_SYNC = 0, MF_DONE_QUEUE, MF_DONE_CMD } mf_done;

typedef struct {
  char *file;         /* the manifest's path */
  char *manifest_dir; /* its folder ({manifest_dir}) */
  char *name, *description;
  char *version_cmd; /* NULL: unknown */
  char renders[512]; /* client keys, space-separated */
  detour_adapter_placement placement;
  char *srv_format, *srv_separator, *srv_name;
  mf_list req_files, req_commands;
  bool req_root;
  char *req_hint;
  mf_list env; /* "KEY=VALUE" templates */
  bool isolation;
  mf_list users, groups, tmpfs, binds, overlays;
  mf_list dirs;
  mf_file *files;
  size_t nfiles;
  char *start_cmd;
  mf_ready ready;
  char *ready_arg;
  detour_ms start_timeout;
  char *submit_cmd, *submit_smtp, *rcpt_params;
  detour_ms submit_timeout;
  mf_done done;
  mf_list done_paths;
  char *done_cmd;
  detour_ms poll;
  char *stop_cmd;
  detour_ms stop_timeout;
  char *logs;
  mf_tlsvar *tls;
  size_t ntls;
} mf_manifest;

/* Load and check a manifest. 0 and *out, or DETOUR_EIO / DETOUR_EPARSE /
 * DETOUR_ENOMEM with "file:line:col: key 'k': ..." in err. */
int detour__scn_manifest_load(const char *path, mf_manifest **out, char *err,
                              size_t errlen);
void detour__scn_manifest_free(mf_manifest *m);

/* The variables a template may name, NULL-terminated (for checks and the
 * README): every template, and those only `submit.command` has. */
extern const char *const detour__scn_manifest_vars[];
extern const char *const detour__scn_manifest_submit_vars[];
extern const char *const detour__scn_manifest_server_vars[];

/* adapter_manifest.c: the adapter of a loaded manifest (owns m). */
detour_adapter *detour__scn_manifest_adapter(mf_manifest *m);

#endif /* DETOUR_SCN_MANIFEST_H */

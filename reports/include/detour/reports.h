/*
 * reports.h - the report writers (target detour::reports): what a run of
 * the scenario runner (detour_suite, scenario.h) looks like to a CI system
 * (JUnit XML), a browser (one self-contained HTML file with a timeline per
 * scenario), a program (one JSON document), Wireshark (a pcap per
 * scenario) and a person at a terminal (one line per scenario). The
 * certification summary groups the verdicts by rule, R1..R13 of
 * docs/rules.md.
 *
 * The writers read the suite and never change it. Every string that came
 * from a fake server or a scenario file is treated as hostile: escaped for
 * the output format, control bytes and invalid UTF-8 made visible and
 * harmless. Formats are described in reports/README.md.
 */
#ifndef DETOUR_REPORTS_H
#define DETOUR_REPORTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "detour/detour.h"
#include "detour/scenario.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What the run was. Every field may be NULL (omitted, or a default). */
typedef struct {
  const char *title;   /* HTML title, JUnit <testsuites name>; "detour" */
  const char *version; /* of the tool; DETOUR_VERSION when NULL */
  const char *started; /* when the run started, ISO 8601 (caller's clock) */
  const char *mode;    /* "virtual" or "realtime" */
  const char *command; /* the command line, for the record */
  const char *subject; /* the client under test; "detour (built-in engine)" */
  /* --mutate: the client was broken on purpose; every writer says so (a
   * title prefix, a banner, a JSON field, a JUnit property) */
  const char *const *mutations;
  size_t nmutations;
  /* Where docs/rules.md is for a reader of the report (a path relative to
   * the report, or a URL); each rule id links to its section, this plus
   * "#r3". "docs/rules.md" when NULL. */
  const char *rules_url;
  /* Leave out everything that changes from run to run even in virtual
   * time: wall-clock durations (JSON: omitted; JUnit: time="0") and the
   * fake servers' bound addresses. Golden tests set it. */
  bool deterministic;
} detour_report_meta;

/* Each writer returns 0, or DETOUR_EINVAL (NULL argument) / DETOUR_EIO
 * (the stream reported an error). */
int detour_report_json(const detour_suite *s, const detour_report_meta *m,
                       FILE *f);
int detour_report_junit(const detour_suite *s, const detour_report_meta *m,
                        FILE *f);
int detour_report_html(const detour_suite *s, const detour_report_meta *m,
                       FILE *f);

/* ------------------------------------------------------------------------ */
/* Certification summary: rule -> pass / fail / not covered.                 */

typedef enum {
  DETOUR_CERT_NOT_COVERED = 0, /* no scenario naming it ran (skips only) */
  DETOUR_CERT_PASS,            /* every scenario naming it passed */
  DETOUR_CERT_FAIL             /* at least one failed or could not run */
} detour_cert_status;

/* "not covered", "pass", "fail". Static. */
const char *detour_cert_status_name(detour_cert_status st);

typedef struct {
  char *rule;        /* "R1" .. "R13", then other ids the scenarios name */
  const char *title; /* the heading in docs/rules.md, "" for other ids */
  detour_cert_status status;
  size_t passed, failed, skipped; /* scenarios naming it, by verdict */
  size_t *scenarios; /* indexes into the suite's results, file order */
  size_t nscenarios;
} detour_cert_rule;

typedef struct {
  detour_cert_rule *rules; /* R1..R13 always, in order, then the others */
  size_t n;
} detour_cert;

/* Group s's results by the rules each names. A rule id counts for R<n>
 * when it is "R<n>" or "R<n>" followed by a non-digit ("R3.timeout", case
 * ignored); anything else is listed as its own id after R13. Fills *out;
 * 0 or DETOUR_ENOMEM / DETOUR_EINVAL. Free with detour_cert_free. */
int detour_cert_compute(const detour_suite *s, detour_cert *out);
void detour_cert_free(detour_cert *c);

/* ------------------------------------------------------------------------ */
/* Certificate of one client (`detour certify`).                             */

typedef struct {
  const char *client;          /* the client's name ("postfix") */
  const char *client_version;  /* from its manifest's `version` command */
  const char *manifest;        /* the manifest's path; NULL built-in */
  const char *profile;         /* the profile's folder */
  const char *profile_version; /* scenarios/cert/VERSION */
  const char *profile_hash;    /* detour_report_hash_files of its files */
  const char *started, *command;
  const char *report_dir; /* where pcap/ is, for links; NULL: none */
  bool mutated;
} detour_certificate_meta;

/* SHA-256 over the files in the given order (each its base name, a NUL,
 * then its bytes), as 64 hex digits. 0 or DETOUR_EIO. */
int detour_report_hash_files(const char *const *files, size_t n, char hex[65]);
/* The one overall line: "PASS: postfix 3.7.11 on profile 2: 40 passed, 0
 * failed, 8 skipped (...) of 48 scenarios"; FAIL when anything failed. */
void detour_certificate_overall(const detour_suite *s,
                                const detour_certificate_meta *m, char *buf,
                                size_t len);
/* The certificate: per SPEC rule, its status and the scenarios behind it
 * with their evidence. 0 or DETOUR_EINVAL / DETOUR_ENOMEM / DETOUR_EIO. */
int detour_report_certificate_json(const detour_suite *s,
                                   const detour_certificate_meta *m, FILE *f);
int detour_report_certificate_html(const detour_suite *s,
                                   const detour_certificate_meta *m, FILE *f);

/* A scorecard: several clients on one profile (`detour certify
 * --clients`). Each column is one client's run of the same profile. */
typedef struct {
  const char *client;  /* its name */
  const char *version; /* its version line */
  const char *link; /* its certificate, relative ("postfix/certificate.html") */
  const detour_suite *suite;
} detour_scorecard_column;

/* One matrix: a row per scenario, grouped by the first SPEC rule it
 * names, a column per client, PASS / FAIL / SKIP with the reason on
 * hover (HTML) or as a field (JSON). Scenarios are matched by name; a
 * client that lacks one shows "-". 0 or DETOUR_EINVAL / DETOUR_EIO. */
int detour_report_scorecard_html(const detour_scorecard_column *cols, size_t n,
                                 const char *profile_version,
                                 const char *profile_hash, FILE *f);
int detour_report_scorecard_json(const detour_scorecard_column *cols, size_t n,
                                 const char *profile_version,
                                 const char *profile_hash, FILE *f);

/* ------------------------------------------------------------------------ */
/* Terminal.                                                                 */

/* Whether to colour output on f: f is a terminal, NO_COLOR is unset or
 * empty (no-color.org) and TERM is not "dumb". */
bool detour_report_use_color(FILE *f);
/* "PASS  name  [R3 R5]" plus the failures' first lines; one line per
 * scenario (and an indented line per failure). */
void detour_report_terminal_line(const detour_scenario_result *r, FILE *f,
                                 bool color);
/* "N passed, N failed" plus ", N skipped" when any were skipped: the
 * closing line CI reads (failed counts ERROR too). */
void detour_report_terminal_summary(const detour_suite *s, FILE *f, bool color);

/* ------------------------------------------------------------------------ */
/* Files.                                                                    */

/* Paths of the artefacts to write; NULL skips one. */
typedef struct {
  const char *json;
  const char *junit;
  const char *html;
} detour_report_paths;

/* The default names inside DIR (`--report-dir`). */
#define DETOUR_REPORT_JSON_NAME "report.json"
#define DETOUR_REPORT_JUNIT_NAME "junit.xml"
#define DETOUR_REPORT_HTML_NAME "report.html"
#define DETOUR_REPORT_PCAP_DIR "pcap"

/* Write each artefact named in p (creating missing parent directories).
 * Returns 0, or DETOUR_EIO with "path: reason" in err. Writes the others
 * even when one fails. */
int detour_report_write_files(const detour_suite *s,
                              const detour_report_meta *m,
                              const detour_report_paths *p, char *err,
                              size_t errlen);

/* mkdir -p. 0 or DETOUR_EIO with the reason in err. */
int detour_report_mkdirs(const char *dir, char *err, size_t errlen);

/* A scenario name made safe as a file name ("[A-Za-z0-9._-]", others
 * '_', never empty, never starting with '.'), at most len-1 bytes. */
void detour_report_file_stem(const char *name, char *buf, size_t len);

/* ------------------------------------------------------------------------ */
/* pcap: capture a scenario's loopback traffic with libpcap.                 */

typedef struct detour_pcap detour_pcap;

/* Whether live capture on "lo" works here (root or CAP_NET_RAW). false
 * with the reason in why ("socket: Operation not permitted"). */
bool detour_pcap_available(char *why, size_t whylen);

/* Start capturing TCP packets to or from any of ports[0..n) on device
 * (NULL: "lo"; a netsim scenario's tap, from a thread inside its network
 * namespace, so the evidence shows the simulated delays) into
 * DIR/<stem>.pcap (stem: detour_report_file_stem(scenario)), on a thread
 * of its own; returns when the capture is live, so traffic sent afterwards
 * is in the file. DIR is created. 0 and *out, or DETOUR_EIO /
 * DETOUR_ENOMEM / DETOUR_EINVAL with the reason in err. Packets carry
 * real timestamps, also in a virtual-time run. */
int detour_pcap_start(const char *dir, const char *scenario, const char *device,
                      const uint16_t *ports, size_t n, detour_pcap **out,
                      char *err, size_t errlen);

/* Stop: take the packets already seen, close the file, free c. Returns
 * within about 200 ms, with the number of packets written (>= 0) and, in
 * *dropped (may be NULL), the packets the kernel could not queue (a
 * capture with drops is incomplete). NULL is allowed (returns 0). */
long detour_pcap_stop(detour_pcap *c, unsigned *dropped);

/* The file a capture writes (owned by c). */
const char *detour_pcap_path(const detour_pcap *c);

/* Ready-made callbacks for the scenario runner's capture hook: one
 * capture per scenario, started when its fake servers are bound and
 * stopped when it ends; safe to call from several runner threads. */
typedef struct detour_pcap_hooks detour_pcap_hooks;

/* Captures go to dir (created on first use); a capture that cannot start
 * is reported on errors (NULL: quiet) and the scenario runs without it.
 * NULL on out of memory. */
detour_pcap_hooks *detour_pcap_hooks_new(const char *dir, FILE *errors);
/* The hook pair, of the types of detour_scenario_hooks (arg = the
 * detour_pcap_hooks). start captures on device ("lo", or the client's tap
 * of a netsim scenario, called from inside netns) and returns the token
 * that stop takes (a detour_pcap, or NULL when the capture failed). */
void *detour_pcap_hook_start(void *hooks, const char *scenario,
                             const uint16_t *ports, size_t n, const char *netns,
                             const char *device);
void detour_pcap_hook_stop(void *hooks, const char *scenario, void *token);
/* Captures written and captures that failed so far. */
void detour_pcap_hooks_count(detour_pcap_hooks *h, size_t *written,
                             size_t *failed);
void detour_pcap_hooks_free(detour_pcap_hooks *h);

#ifdef __cplusplus
}
#endif

#endif /* DETOUR_REPORTS_H */

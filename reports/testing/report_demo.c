/*
 * report_demo.c - writes the report artefacts from the fixture suite, for
 * the checks that need a real consumer: xmllint (JUnit), headless Chromium
 * (HTML) and tshark (pcap). Test-only.
 *
 *   report_demo OUTDIR [--scenarios N] [--live]
 *     OUTDIR/report.json, junit.xml, report.html from the fixture plus N
 *     synthetic scenarios (default 0); --live: wall times and addresses in
 *     (not deterministic).
 *   report_demo --pcap DIR
 *     captures the loopback exchange of fixture_net into
 *     DIR/pcap-fixture.pcap and prints "pcap=PATH primary=PORT
 *     backup=PORT packets=N"; exit 77 when capture is not allowed here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"

static int reports(const char *dir, size_t extra, bool live) {
  detour_suite *s = fixture_suite(extra);
  if (!s)
    return 1;
  detour_report_meta m = fixture_meta();
  m.deterministic = !live;
  char json[4096], junit[4096], html[4096], err[600] = "";
  snprintf(json, sizeof json, "%s/%s", dir, DETOUR_REPORT_JSON_NAME);
  snprintf(junit, sizeof junit, "%s/%s", dir, DETOUR_REPORT_JUNIT_NAME);
  snprintf(html, sizeof html, "%s/%s", dir, DETOUR_REPORT_HTML_NAME);
  detour_report_paths p = {json, junit, html};
  int rc = detour_report_write_files(s, &m, &p, err, sizeof err);
  fixture_suite_free(s);
  if (rc != 0) {
    fprintf(stderr, "report_demo: %s\n", err);
    return 1;
  }
  printf("reports written to %s\n", dir);
  return 0;
}

static int capture(const char *dir) {
  char err[512] = "";
  if (!detour_pcap_available(err, sizeof err)) {
    printf("pcap not available (needs root or CAP_NET_RAW): %s\n", err);
    return 77;
  }
  fixture_net n;
  if (fixture_net_open(&n, err, sizeof err) != 0) {
    fprintf(stderr, "report_demo: %s\n", err);
    return 1;
  }
  detour_pcap *c = NULL;
  int rc = detour_pcap_start(dir, "pcap-fixture", NULL, n.port, 2, &c, err,
                             sizeof err);
  if (rc == 0)
    rc = fixture_net_run(&n, err, sizeof err);
  char path[4200] = "";
  if (c)
    snprintf(path, sizeof path, "%s", detour_pcap_path(c));
  unsigned dropped = 0;
  long packets = detour_pcap_stop(c, &dropped);
  fixture_net_close(&n);
  if (rc == 0 && dropped) {
    snprintf(err, sizeof err, "the kernel dropped %u packets", dropped);
    rc = -1;
  }
  if (rc != 0) {
    fprintf(stderr, "report_demo: %s\n", err);
    return 1;
  }
  printf("pcap=%s primary=%u backup=%u packets=%ld\n", path, n.port[0],
         n.port[1], packets);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--pcap") == 0)
    return capture(argv[2]);
  if (argc < 2 || argv[1][0] == '-') {
    fprintf(stderr, "usage: report_demo OUTDIR [--scenarios N] [--live]\n"
                    "       report_demo --pcap DIR\n");
    return 64;
  }
  size_t extra = 0;
  bool live = false;
  for (int i = 2; i < argc; i++) {
    if (strcmp(argv[i], "--scenarios") == 0 && i + 1 < argc)
      extra = (size_t)strtoul(argv[++i], NULL, 10);
    else if (strcmp(argv[i], "--live") == 0)
      live = true;
  }
  return reports(argv[1], extra, live);
}

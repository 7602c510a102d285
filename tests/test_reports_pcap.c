/*
 * test_reports_pcap.c - pcap capture (reports/src/pcap.c): a capture
 * started on the two ports of a loopback SMTP exchange
 * (reports/testing/loopback.c) holds the client's commands and the backup
 * server's acceptance, read back with libpcap; traffic on other ports is
 * filtered out; stopping is bounded. Live capture needs root or
 * CAP_NET_RAW: without it each test is skipped with the reason.
 */
#include <criterion/criterion.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "detour/reports.h"
#include "fixture.h"

static void need_capture(void) {
  char why[512];
  if (!detour_pcap_available(why, sizeof why))
    cr_skip_test("live capture not allowed here (root or CAP_NET_RAW "
                 "needed): %s",
                 why);
}

/* Every TCP payload in the file, concatenated with '\n' between packets,
 * and the packet count. */
static char *payloads(const char *path, long *packets) {
  char ebuf[PCAP_ERRBUF_SIZE];
  pcap_t *p = pcap_open_offline(path, ebuf);
  cr_assert_not_null(p, "%s: %s", path, ebuf);
  cr_assert_eq(pcap_datalink(p), DLT_EN10MB, "lo is Ethernet-framed");
  char *buf = NULL;
  size_t n = 0;
  FILE *out = open_memstream(&buf, &n);
  struct pcap_pkthdr *h;
  const u_char *d;
  *packets = 0;
  while (pcap_next_ex(p, &h, &d) == 1) {
    (*packets)++;
    /* Ethernet 14, IPv4 header length from IHL, TCP data offset. */
    if (h->caplen < 14 + 20 + 20 || d[12] != 0x08 || d[13] != 0x00)
      continue;
    size_t ip = (size_t)(d[14] & 0x0f) * 4;
    size_t tcp = (size_t)(d[14 + ip + 12] >> 4) * 4;
    size_t off = 14 + ip + tcp;
    if (off < h->caplen) {
      fwrite(d + off, 1, h->caplen - off, out);
      fputc('\n', out);
    }
  }
  fclose(out);
  pcap_close(p);
  return buf;
}

/* The directory is empty again by the end of each test (its capture file
 * is unlinked): remove it and free the name. */
static void drop_dir(char *dir) {
  rmdir(dir);
  free(dir);
}

static char *tmpdir(void) {
  char *dir = strdup("/tmp/detour-pcap-XXXXXX");
  cr_assert_not_null(mkdtemp(dir));
  return dir;
}

Test(pcap, capture_holds_the_smtp_dialogue) {
  need_capture();
  char err[512] = "", *dir = tmpdir();
  fixture_net n;
  cr_assert_eq(fixture_net_open(&n, err, sizeof err), 0, "%s", err);
  detour_pcap *c;
  cr_assert_eq(detour_pcap_start(dir, "r3/detour x", NULL, n.port, 2, &c, err,
                                 sizeof err),
               0, "%s", err);
  char path[4200];
  snprintf(path, sizeof path, "%s", detour_pcap_path(c));
  cr_assert(strstr(path, "/r3_detour_x.pcap"), "%s", path);
  cr_assert_eq(fixture_net_run(&n, err, sizeof err), 0, "%s", err);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  unsigned dropped = 1;
  long written = detour_pcap_stop(c, &dropped);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
  cr_assert_lt(ms, 1000.0, "stop took %.0f ms", ms);
  cr_assert_eq(dropped, 0, "the ring must hold a whole session");
  fixture_net_close(&n);

  long packets;
  char *text = payloads(path, &packets);
  cr_assert_eq(packets, written);
  cr_assert_gt(packets, 10);
  cr_assert_not_null(strstr(text, "421 4.3.2 primary.test"), "%s", text);
  cr_assert_not_null(strstr(text, "MAIL FROM:<boss@example.com>"), "%s", text);
  cr_assert_not_null(strstr(text, "RCPT TO:<abc@muratec.co.jp>"));
  cr_assert_not_null(strstr(text, "250 2.0.0 queued as FIXTURE1"),
                     "%ld packets:\n%s", packets, text);
  cr_assert_not_null(strstr(text, "221 2.0.0 bye"), "the last reply too");
  free(text);
  unlink(path);
  rmdir(dir);
  drop_dir(dir);
}

Test(pcap, other_ports_are_filtered_out) {
  need_capture();
  char err[512] = "", *dir = tmpdir();
  fixture_net n;
  cr_assert_eq(fixture_net_open(&n, err, sizeof err), 0, "%s", err);
  detour_pcap *c;
  uint16_t unrelated = 9; /* discard: nothing of ours */
  cr_assert_eq(
      detour_pcap_start(dir, "none", NULL, &unrelated, 1, &c, err, sizeof err),
      0, "%s", err);
  char path[4200];
  snprintf(path, sizeof path, "%s", detour_pcap_path(c));
  cr_assert_eq(fixture_net_run(&n, err, sizeof err), 0, "%s", err);
  cr_assert_eq(detour_pcap_stop(c, NULL), 0);
  fixture_net_close(&n);
  long packets;
  char *text = payloads(path, &packets); /* still a valid, empty file */
  cr_assert_eq(packets, 0);
  free(text);
  unlink(path);
  rmdir(dir);
  drop_dir(dir);
}

Test(pcap, idle_capture_stops_quickly_and_bad_dir_fails) {
  need_capture();
  char err[512] = "", *dir = tmpdir();
  detour_pcap *c;
  uint16_t port = 1;
  cr_assert_eq(
      detour_pcap_start(dir, "idle", NULL, &port, 1, &c, err, sizeof err), 0,
      "%s", err);
  char path[4200];
  snprintf(path, sizeof path, "%s", detour_pcap_path(c));
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  cr_assert_eq(detour_pcap_stop(c, NULL), 0);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
  cr_assert_lt(ms, 500.0, "stop took %.0f ms", ms);
  unlink(path);
  cr_assert_eq(detour_pcap_start("/proc/no/such/dir", "x", NULL, &port, 1, &c,
                                 err, sizeof err),
               DETOUR_EIO);
  cr_assert_neq(err[0], '\0');
  cr_assert_eq(detour_pcap_stop(NULL, NULL), 0);
  rmdir(dir);
  drop_dir(dir);
}

Test(pcap, runner_hooks_capture_per_scenario_and_count) {
  need_capture();
  char err[512] = "", *dir = tmpdir();
  char *log = NULL;
  size_t loglen = 0;
  FILE *errors = open_memstream(&log, &loglen);
  detour_pcap_hooks *h = detour_pcap_hooks_new(dir, errors);
  cr_assert_not_null(h);
  fixture_net n;
  cr_assert_eq(fixture_net_open(&n, err, sizeof err), 0, "%s", err);
  void *token = detour_pcap_hook_start(h, "hooked", n.port, 2, NULL, "lo");
  cr_assert_not_null(token);
  cr_assert_eq(fixture_net_run(&n, err, sizeof err), 0, "%s", err);
  detour_pcap_hook_stop(h, "hooked", token);
  fixture_net_close(&n);

  detour_pcap_hooks *bad = detour_pcap_hooks_new("/proc/no/such", errors);
  cr_assert_null(detour_pcap_hook_start(bad, "x", n.port, 2, NULL, "lo"));
  detour_pcap_hook_stop(bad, "x", NULL); /* what the runner does with NULL */
  size_t written, failed;
  detour_pcap_hooks_count(h, &written, &failed);
  cr_assert_eq(written, 1);
  cr_assert_eq(failed, 0);
  detour_pcap_hooks_count(bad, &written, &failed);
  cr_assert_eq(written, 0);
  cr_assert_eq(failed, 1);
  fclose(errors);
  cr_assert_not_null(strstr(log, "pcap: x: "), "%s", log);
  free(log);
  detour_pcap_hooks_free(h);
  detour_pcap_hooks_free(bad);

  char path[4200];
  snprintf(path, sizeof path, "%s/hooked.pcap", dir);
  long packets;
  char *text = payloads(path, &packets);
  cr_assert_not_null(strstr(text, "250 2.0.0 queued as FIXTURE1"),
                     "%ld packets:\n%s", packets, text);
  free(text);
  unlink(path);
  rmdir(dir);
  drop_dir(dir);
}

/*
 * fixture.h - test-only helpers for the report writers: a fixed result set
 * built by hand (so golden files do not depend on the scenario runner),
 * optionally padded with synthetic scenarios for the 200-scenario HTML
 * check, and a two-server loopback SMTP exchange to capture with pcap.
 */
#ifndef DETOUR_REPORTS_FIXTURE_H
#define DETOUR_REPORTS_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "detour/reports.h"

/* Number of hand-made scenarios at the start of every fixture suite. */
#define FIXTURE_FIXED 5

/* The fixed scenarios (one passing detour in the layout of Fig. 6, a
 * retried TRANSIENT, a failing one full of hostile server text, a skipped
 * and an error), then `extra` synthetic ones. NULL on out of memory. */
detour_suite *fixture_suite(size_t extra);
void fixture_suite_free(detour_suite *s);

/* Fixed version, time and mode; deterministic. */
detour_report_meta fixture_meta(void);

/* Two SMTP servers on 127.0.0.1: the primary answers the greeting with
 * 421 (SWITCH), the backup accepts the message. */
typedef struct {
  int lfd[2];
  uint16_t port[2]; /* [0] primary, [1] backup */
} fixture_net;

/* Bind and listen (ports chosen by the kernel). 0 or -1 with err. */
int fixture_net_open(fixture_net *n, char *err, size_t errlen);
/* Run one client through both servers (each accepts one connection), with
 * 5 s socket timeouts. 0 when the backup accepted, -1 with err. */
int fixture_net_run(fixture_net *n, char *err, size_t errlen);
void fixture_net_close(fixture_net *n);

#endif /* DETOUR_REPORTS_FIXTURE_H */

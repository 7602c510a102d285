/*
 * pcap.c - capture one scenario's traffic with libpcap: on "lo", filtered
 * to the TCP ports of that scenario's fake servers, into DIR/<name>.pcap,
 * so Wireshark or tshark shows the SMTP dialogue the verdict was drawn
 * from. A thread per capture runs pcap_dispatch in immediate mode and
 * flushes after every packet, so a file is complete up to the last packet
 * even if the run is killed. Timestamps are the kernel's: in a
 * virtual-time run the packets are real and so are their times.
 *
 * Live capture needs root or CAP_NET_RAW; detour_pcap_available() tells
 * the caller once, and the run goes on without captures.
 */
#include "rep_internal.h"

#include <pcap/pcap.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_DEVICE "lo"
#define POLL_MS 100      /* a stop request is seen within this time */
#define DRAIN_ROUNDS 256 /* bounded, in case traffic never stops */
/* The kernel ring holds buffer / (snaplen + header) frames: libpcap's
 * 2 MB default is ~30 full-size loopback frames, which a busy machine
 * overruns within one SMTP session (measured: 26 of 58 dropped). */
#define SNAPLEN 65535
#define BUFFER_BYTES (32 * 1024 * 1024)

struct detour_pcap {
  pcap_t *p;
  pcap_dumper_t *d;
  pthread_t thread;
  atomic_bool stop;
  long packets;
  char path[4096];
};

/* pcap_compile was not thread-safe in every libpcap; scenarios may start
 * captures from several threads at once. */
static pthread_mutex_t compile_lock = PTHREAD_MUTEX_INITIALIZER;

/* An activated handle on device, or NULL with the reason in err. The
 * handle belongs to the network namespace of the calling thread. */
static pcap_t *open_device(const char *device, char *err, size_t errlen) {
  char ebuf[PCAP_ERRBUF_SIZE] = "";
  pcap_t *p = pcap_create(device, ebuf);
  if (!p) {
    snprintf(err, errlen, "%s", ebuf);
    return NULL;
  }
  pcap_set_snaplen(p, SNAPLEN); /* loopback segments are up to 64 KB */
  pcap_set_buffer_size(p, BUFFER_BYTES);
  pcap_set_immediate_mode(p, 1); /* each packet as it comes: no batching */
  pcap_set_timeout(p, POLL_MS);
  int rc = pcap_activate(p);
  if (rc < 0) {
    snprintf(err, errlen, "%s: %s", device,
             rc == PCAP_ERROR ? pcap_geterr(p) : pcap_statustostr(rc));
    pcap_close(p);
    return NULL;
  }
  return p;
}

bool detour_pcap_available(char *why, size_t whylen) {
  char err[PCAP_ERRBUF_SIZE + 64] = "";
  pcap_t *p = open_device(DEFAULT_DEVICE, err, sizeof err);
  if (!p) {
    if (why && whylen)
      snprintf(why, whylen, "%s", err);
    return false;
  }
  pcap_close(p);
  return true;
}

/* "tcp and (port A or port B ...)"; port 0 matches nothing we send. */
static char *filter_for(const uint16_t *ports, size_t n) {
  size_t cap = 32 + n * 16;
  char *s = malloc(cap);
  if (!s)
    return NULL;
  size_t o = (size_t)snprintf(s, cap, "tcp and (");
  for (size_t i = 0; i < n; i++)
    o += (size_t)snprintf(s + o, cap - o, "%sport %u", i ? " or " : "",
                          (unsigned)ports[i]);
  snprintf(s + o, cap - o, "%s)", n ? "" : "port 0");
  return s;
}

static int set_filter(pcap_t *p, const uint16_t *ports, size_t n, char *err,
                      size_t errlen) {
  char *text = filter_for(ports, n);
  if (!text)
    return DETOUR_ENOMEM;
  struct bpf_program prog;
  pthread_mutex_lock(&compile_lock);
  int rc = pcap_compile(p, &prog, text, 1, PCAP_NETMASK_UNKNOWN);
  pthread_mutex_unlock(&compile_lock);
  if (rc == 0) {
    rc = pcap_setfilter(p, &prog);
    pcap_freecode(&prog);
  }
  if (rc != 0)
    snprintf(err, errlen, "filter \"%s\": %s", text, pcap_geterr(p));
  free(text);
  return rc == 0 ? 0 : DETOUR_EIO;
}

static void on_packet(u_char *user, const struct pcap_pkthdr *h,
                      const u_char *bytes) {
  detour_pcap *c = (detour_pcap *)(void *)user;
  pcap_dump((u_char *)(void *)c->d, h, bytes);
  pcap_dump_flush(c->d);
  c->packets++;
}

static void *run(void *arg) {
  detour_pcap *c = arg;
  while (!atomic_load(&c->stop))
    if (pcap_dispatch(c->p, -1, on_packet, (u_char *)(void *)c) == PCAP_ERROR)
      break;
  /* Keep what is already in the ring: the last replies and the FINs.
   * The stopper's pcap_breakloop may land here, after the loop above has
   * already ended: that call returns PCAP_ERROR_BREAK (clearing the
   * request) without reading, so it must not end the drain. */
  char ebuf[PCAP_ERRBUF_SIZE];
  if (pcap_setnonblock(c->p, 1, ebuf) == 0)
    for (int i = 0; i < DRAIN_ROUNDS; i++) {
      int got = pcap_dispatch(c->p, -1, on_packet, (u_char *)(void *)c);
      if (got != PCAP_ERROR_BREAK && got <= 0)
        break;
    }
  return NULL;
}

static void destroy(detour_pcap *c) {
  if (c->d)
    pcap_dump_close(c->d);
  if (c->p)
    pcap_close(c->p);
  free(c);
}

/* DIR/<stem>.pcap, DIR created. */
static int make_path(detour_pcap *c, const char *dir, const char *scenario,
                     char *err, size_t errlen) {
  if (detour_report_mkdirs(dir, err, errlen) != 0)
    return DETOUR_EIO;
  char stem[200];
  detour_report_file_stem(scenario, stem, sizeof stem);
  int n = snprintf(c->path, sizeof c->path, "%s/%s.pcap", dir, stem);
  if (n < 0 || (size_t)n >= sizeof c->path) {
    snprintf(err, errlen, "%s: path too long", dir);
    return DETOUR_EINVAL;
  }
  return 0;
}

int detour_pcap_start(const char *dir, const char *scenario, const char *device,
                      const uint16_t *ports, size_t n, detour_pcap **out,
                      char *err, size_t errlen) {
  if (!dir || !out || (n && !ports))
    return DETOUR_EINVAL;
  *out = NULL;
  detour_pcap *c = calloc(1, sizeof *c);
  if (!c)
    return DETOUR_ENOMEM;
  atomic_init(&c->stop, false);
  int rc = make_path(c, dir, scenario, err, errlen);
  if (rc == 0 &&
      !(c->p = open_device(device ? device : DEFAULT_DEVICE, err, errlen)))
    rc = DETOUR_EIO;
  if (rc == 0)
    rc = set_filter(c->p, ports, n, err, errlen);
  if (rc == 0 && !(c->d = pcap_dump_open(c->p, c->path))) {
    snprintf(err, errlen, "%s", pcap_geterr(c->p));
    rc = DETOUR_EIO;
  }
  if (rc == 0 && pthread_create(&c->thread, NULL, run, c) != 0) {
    snprintf(err, errlen, "cannot start the capture thread");
    rc = DETOUR_EIO;
  }
  if (rc != 0) {
    destroy(c);
    return rc;
  }
  *out = c;
  return 0;
}

long detour_pcap_stop(detour_pcap *c, unsigned *dropped) {
  if (dropped)
    *dropped = 0;
  if (!c)
    return 0;
  atomic_store(&c->stop, true);
  pcap_breakloop(c->p); /* wakes a waiting poll (libpcap >= 1.10) */
  pthread_join(c->thread, NULL);
  long n = c->packets;
  struct pcap_stat st;
  if (dropped)
    *dropped = pcap_stats(c->p, &st) == 0 ? st.ps_drop : 0;
  destroy(c);
  return n;
}

const char *detour_pcap_path(const detour_pcap *c) {
  return c ? c->path : NULL;
}

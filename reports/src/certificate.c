/*
 * certificate.c - the certificate of one client (`detour certify`): which
 * client and version, which profile (its version and a SHA-256 over its
 * scenario files, so a certificate names exactly what it was judged on),
 * the verdict per SPEC rule with the evidence behind each scenario (what
 * every fake server saw: connections, messages; a pcap link when one was
 * captured), and one overall line. JSON for programs, HTML for people.
 * The evidence is only the servers' record: a client's own word (log, exit
 * status) is never part of a certificate.
 */
#include "rep_internal.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- SHA-256 (FIPS 180-4), for the profile's hash ------------------------ */

typedef struct {
  uint32_t h[8];
  uint64_t len;
  unsigned char buf[64];
  size_t n;
} sha256;

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
    0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
    0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
    0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha_block(sha256 *c, const unsigned char *p) {
  uint32_t w[64], v[8];
  for (int i = 0; i < 16; i++)
    w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
           (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
  for (int i = 16; i < 64; i++) {
    uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  memcpy(v, c->h, sizeof v);
  for (int i = 0; i < 64; i++) {
    uint32_t t1 = v[7] + (ROR(v[4], 6) ^ ROR(v[4], 11) ^ ROR(v[4], 25)) +
                  ((v[4] & v[5]) ^ (~v[4] & v[6])) + K[i] + w[i];
    uint32_t t2 = (ROR(v[0], 2) ^ ROR(v[0], 13) ^ ROR(v[0], 22)) +
                  ((v[0] & v[1]) ^ (v[0] & v[2]) ^ (v[1] & v[2]));
    memmove(v + 1, v, 7 * sizeof *v);
    v[4] += t1;
    v[0] = t1 + t2;
  }
  for (int i = 0; i < 8; i++)
    c->h[i] += v[i];
}

static void sha_init(sha256 *c) {
  static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372,
                                 0xa54ff53a, 0x510e527f, 0x9b05688c,
                                 0x1f83d9ab, 0x5be0cd19};
  memset(c, 0, sizeof *c);
  memcpy(c->h, h0, sizeof h0);
}

static void sha_add(sha256 *c, const void *data, size_t n) {
  const unsigned char *p = data;
  c->len += n;
  while (n--) {
    c->buf[c->n++] = *p++;
    if (c->n == 64) {
      sha_block(c, c->buf);
      c->n = 0;
    }
  }
}

static void sha_hex(sha256 *c, char out[65]) {
  uint64_t bits = c->len * 8;
  unsigned char pad = 0x80, zero = 0, be[8];
  sha_add(c, &pad, 1);
  while (c->n != 56)
    sha_add(c, &zero, 1);
  for (int i = 0; i < 8; i++)
    be[i] = (unsigned char)(bits >> (56 - 8 * i));
  sha_add(c, be, 8);
  for (int i = 0; i < 8; i++)
    snprintf(out + 8 * i, 9, "%08x", c->h[i]);
}

int detour_report_hash_files(const char *const *files, size_t n, char hex[65]) {
  sha256 c;
  sha_init(&c);
  for (size_t i = 0; i < n; i++) {
    /* the file's base name and bytes: moving the folder keeps the hash */
    const char *slash = strrchr(files[i], '/');
    const char *base = slash ? slash + 1 : files[i];
    sha_add(&c, base, strlen(base) + 1);
    FILE *f = fopen(files[i], "rb");
    if (!f)
      return DETOUR_EIO;
    unsigned char buf[8192];
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, f)) > 0)
      sha_add(&c, buf, k);
    bool bad = ferror(f);
    fclose(f);
    if (bad)
      return DETOUR_EIO;
  }
  sha_hex(&c, hex);
  return 0;
}

/* ---- the verdict -------------------------------------------------------- */

/* PASS when nothing failed and something passed; FAIL when anything
 * failed or could not run; else NOT JUDGED (every scenario skipped). */
static const char *overall(const detour_suite *s) {
  if (detour__rep_count(s, DETOUR_VERDICT_FAIL) ||
      detour__rep_count(s, DETOUR_VERDICT_ERROR))
    return "FAIL";
  return detour__rep_count(s, DETOUR_VERDICT_PASS) ? "PASS" : "NOT JUDGED";
}

void detour_certificate_overall(const detour_suite *s,
                                const detour_certificate_meta *m, char *buf,
                                size_t len) {
  size_t fail = detour__rep_count(s, DETOUR_VERDICT_FAIL) +
                detour__rep_count(s, DETOUR_VERDICT_ERROR);
  snprintf(buf, len,
           "%s%s: %s (%s) on profile %s: %zu passed, %zu failed, %zu skipped "
           "(settings the client cannot express) of %zu scenarios",
           m->mutated ? "MUTATED " : "", overall(s),
           m->client ? m->client : "?",
           m->client_version ? m->client_version : "(version unknown)",
           m->profile_version ? m->profile_version : "?",
           detour__rep_count(s, DETOUR_VERDICT_PASS), fail,
           detour__rep_count(s, DETOUR_VERDICT_SKIP), s->n);
}

/* The pcap of r under the report dir, relative to it, when one exists. */
static bool pcap_of(const detour_certificate_meta *m,
                    const detour_scenario_result *r, char *rel, size_t len) {
  if (!m->report_dir)
    return false;
  char stem[200], path[4096];
  struct stat st;
  detour_report_file_stem(r->name, stem, sizeof stem);
  snprintf(rel, len, "%s/%s.pcap", DETOUR_REPORT_PCAP_DIR, stem);
  snprintf(path, sizeof path, "%s/%s", m->report_dir, rel);
  return stat(path, &st) == 0 && st.st_size > 24; /* more than a header */
}

static const char *reason(const detour_scenario_result *r) {
  return r->nfailures && r->failures[0] ? r->failures[0] : "";
}

/* ---- JSON ---------------------------------------------------------------- */

static void jkey(FILE *f, const char *k) {
  detour__rep_json_str(f, k);
  fputc(':', f);
}

static void json_server(FILE *f, const detour_scenario_server *sv) {
  fputs("{", f);
  jkey(f, "server");
  detour__rep_json_str(f, sv->name);
  fputs(",\"connections_ms\":[", f);
  for (size_t i = 0; i < sv->nconns; i++)
    fprintf(f, "%s%lld", i ? "," : "", (long long)sv->conns[i].accept_t);
  fputs("],\"messages\":[", f);
  for (size_t i = 0; i < sv->nmsgs; i++) {
    const detour_scenario_received *m = &sv->msgs[i];
    fprintf(f, "%s{\"t_ms\":%lld,\"from\":", i ? "," : "", (long long)m->t);
    detour__rep_json_str(f, m->from);
    fputs(",\"to\":[", f);
    for (size_t k = 0; k < m->nrcpts; k++) {
      fputs(k ? "," : "", f);
      detour__rep_json_str(f, m->rcpts[k]);
    }
    fprintf(f, "],\"complete\":%s,\"code\":%d}", m->complete ? "true" : "false",
            m->code);
  }
  fputs("]}", f);
}

static void json_scenario(FILE *f, const detour_scenario_result *r,
                          const detour_certificate_meta *m) {
  char pcap[300];
  fputs("{", f);
  jkey(f, "name");
  detour__rep_json_str(f, r->name);
  fputc(',', f);
  jkey(f, "verdict");
  detour__rep_json_str(f, detour_verdict_name(r->verdict));
  fputc(',', f);
  jkey(f, "reason");
  detour__rep_json_str(f, r->verdict == DETOUR_VERDICT_PASS ? NULL : reason(r));
  fputc(',', f);
  jkey(f, "pcap");
  detour__rep_json_str(f, pcap_of(m, r, pcap, sizeof pcap) ? pcap : NULL);
  fputs(",\"evidence\":[", f);
  for (size_t i = 0; i < r->nservers; i++) {
    fputs(i ? "," : "", f);
    json_server(f, &r->servers[i]);
  }
  fputs("]}", f);
}

static void json_meta(FILE *f, const detour_suite *s,
                      const detour_certificate_meta *m) {
  char line[1024];
  detour_certificate_overall(s, m, line, sizeof line);
  const char *keys[] = {"client",         "client_version",  "manifest",
                        "profile",        "profile_version", "profile_sha256",
                        "detour_version", "started",         "command"};
  const char *vals[] = {m->client,      m->client_version,  m->manifest,
                        m->profile,     m->profile_version, m->profile_hash,
                        DETOUR_VERSION, m->started,         m->command};
  fputs("{\n  \"certificate\": {", f);
  for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
    fputs(i ? ",\n    " : "\n    ", f);
    jkey(f, keys[i]);
    detour__rep_json_str(f, vals[i]);
  }
  fprintf(f,
          ",\n    \"mutated\":%s,\n    \"verdict\":\"%s\",\n    "
          "\"scenarios\":%zu,\n    \"passed\":%zu,\n    \"failed\":%zu,\n    "
          "\"skipped\":%zu,\n    \"overall\":",
          m->mutated ? "true" : "false", overall(s), s->n,
          detour__rep_count(s, DETOUR_VERDICT_PASS),
          detour__rep_count(s, DETOUR_VERDICT_FAIL) +
              detour__rep_count(s, DETOUR_VERDICT_ERROR),
          detour__rep_count(s, DETOUR_VERDICT_SKIP));
  detour__rep_json_str(f, line);
  fputs("\n  },\n", f);
}

int detour_report_certificate_json(const detour_suite *s,
                                   const detour_certificate_meta *m, FILE *f) {
  if (!s || !m || !f)
    return DETOUR_EINVAL;
  detour_cert c;
  if (detour_cert_compute(s, &c) < 0)
    return DETOUR_ENOMEM;
  json_meta(f, s, m);
  fputs("  \"rules\": [", f);
  for (size_t i = 0; i < c.n; i++) {
    const detour_cert_rule *r = &c.rules[i];
    fprintf(f, "%s\n    {\"rule\":", i ? "," : "");
    detour__rep_json_str(f, r->rule);
    fputs(",\"title\":", f);
    detour__rep_json_str(f, r->title);
    fprintf(f,
            ",\"status\":\"%s\",\"passed\":%zu,\"failed\":%zu,"
            "\"skipped\":%zu,\"scenarios\":[",
            detour_cert_status_name(r->status), r->passed, r->failed,
            r->skipped);
    for (size_t k = 0; k < r->nscenarios; k++) {
      fputs(k ? ",\n      " : "\n      ", f);
      json_scenario(f, &s->results[r->scenarios[k]], m);
    }
    fputs("]}", f);
  }
  fputs("\n  ]\n}\n", f);
  detour_cert_free(&c);
  return detour__rep_finish(f);
}

/* ---- HTML ---------------------------------------------------------------- */

static const char css[] =
    "body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}"
    "h1{font-size:1.5em}table{border-collapse:collapse;margin:.5em 0}"
    "td,th{border:1px solid #ccc;padding:.2em .5em;vertical-align:top;"
    "text-align:left}.pass{color:#2b8a3e}.fail,.error{color:#c92a2a}"
    ".skip,.nc{color:#868e96}p.overall{font-size:1.2em;font-weight:600;"
    "padding:.5em;border:2px solid #888}p.overall.PASS{border-color:#2b8a3e}"
    "p.overall.FAIL{border-color:#c92a2a}small{color:#666}";

static void html_evidence(FILE *f, const detour_scenario_result *r) {
  for (size_t i = 0; i < r->nservers; i++) {
    const detour_scenario_server *sv = &r->servers[i];
    fputs("<div>server <b>", f);
    detour__rep_xml(f, sv->name, false);
    fprintf(f, "</b>: %zu connection%s", sv->nconns,
            sv->nconns == 1 ? "" : "s");
    for (size_t k = 0; k < sv->nconns; k++) {
      char t[32];
      detour__rep_offset(sv->conns[k].accept_t, t, sizeof t);
      fprintf(f, "%s%s", k ? ", " : " at ", t);
    }
    for (size_t k = 0; k < sv->nmsgs; k++) {
      const detour_scenario_received *m = &sv->msgs[k];
      char t[32];
      detour__rep_offset(m->t, t, sizeof t);
      fprintf(f, "; message at %s from ", t);
      detour__rep_xml(f, m->from, false);
      fputs(" to ", f);
      for (size_t q = 0; q < m->nrcpts; q++) {
        fputs(q ? ", " : "", f);
        detour__rep_xml(f, m->rcpts[q], false);
      }
      fprintf(f, " (%s, reply %d)", m->complete ? "complete" : "cut", m->code);
    }
    fputs("</div>", f);
  }
}

static void html_rule(FILE *f, const detour_suite *s, const detour_cert_rule *r,
                      const detour_certificate_meta *m) {
  const char *st = detour_cert_status_name(r->status);
  fputs("<h2>", f);
  detour__rep_xml(f, r->rule, false);
  fputs(" ", f);
  detour__rep_xml(f, r->title, false);
  fprintf(f, ": <span class=\"%s\">%s</span></h2>\n",
          r->status == DETOUR_CERT_PASS   ? "pass"
          : r->status == DETOUR_CERT_FAIL ? "fail"
                                          : "nc",
          st);
  if (!r->nscenarios) {
    fputs("<p><small>no scenario of the profile judges this rule</small></p>\n",
          f);
    return;
  }
  fputs("<table><tr><th>scenario</th><th>verdict</th><th>what the servers "
        "saw</th><th>pcap</th></tr>\n",
        f);
  for (size_t k = 0; k < r->nscenarios; k++) {
    const detour_scenario_result *res = &s->results[r->scenarios[k]];
    const char *v = detour__rep_verdict_css(res->verdict);
    char pcap[300];
    fputs("<tr><td>", f);
    detour__rep_xml(f, res->name, false);
    fprintf(f, "</td><td class=\"%s\" title=\"", v);
    detour__rep_xml(f, reason(res), true);
    fprintf(f, "\">%s", detour_verdict_name(res->verdict));
    if (res->verdict != DETOUR_VERDICT_PASS) {
      fputs("<br><small>", f);
      detour__rep_xml_trunc(f, reason(res), 200);
      fputs("</small>", f);
    }
    fputs("</td><td>", f);
    html_evidence(f, res);
    fputs("</td><td>", f);
    if (pcap_of(m, res, pcap, sizeof pcap)) {
      fputs("<a href=\"", f);
      detour__rep_xml(f, pcap, true);
      fputs("\">pcap</a>", f);
    }
    fputs("</td></tr>\n", f);
  }
  fputs("</table>\n", f);
}

static void html_item(FILE *f, const char *k, const char *v) {
  fprintf(f, "<tr><th>%s</th><td>", k);
  detour__rep_xml(f, v ? v : "-", false);
  fputs("</td></tr>\n", f);
}

int detour_report_certificate_html(const detour_suite *s,
                                   const detour_certificate_meta *m, FILE *f) {
  if (!s || !m || !f)
    return DETOUR_EINVAL;
  detour_cert c;
  if (detour_cert_compute(s, &c) < 0)
    return DETOUR_ENOMEM;
  char line[1024];
  detour_certificate_overall(s, m, line, sizeof line);
  fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">"
        "\n<meta http-equiv=\"Content-Security-Policy\" content=\""
        "default-src 'none'; style-src 'unsafe-inline'\">\n<title>",
        f);
  fputs(m->mutated ? "MUTATED " : "", f);
  fputs("detour certificate: ", f);
  detour__rep_xml(f, m->client, false);
  fprintf(f,
          "</title>\n<style>%s</style>\n</head>\n<body>\n<h1>%s"
          "Certificate of failover behaviour: ",
          css, m->mutated ? "MUTATED " : "");
  detour__rep_xml(f, m->client, false);
  fprintf(f, "</h1>\n<p class=\"overall %s\">", overall(s));
  detour__rep_xml(f, line, false);
  fputs("</p>\n<table>\n", f);
  html_item(f, "client", m->client);
  html_item(f, "client version", m->client_version);
  html_item(f, "manifest", m->manifest);
  html_item(f, "profile", m->profile);
  html_item(f, "profile version", m->profile_version);
  html_item(f, "profile SHA-256 (scenario files)", m->profile_hash);
  html_item(f, "detour", DETOUR_VERSION);
  html_item(f, "started", m->started);
  html_item(f, "command", m->command);
  fputs("</table>\n<p><small>Every verdict comes from what the fake servers "
        "saw (connections, messages, replies), never from the client's own "
        "log or exit status. A SKIP names a setting the client cannot "
        "express. The full run: <a href=\"report.html\">report.html</a>."
        "</small></p>\n",
        f);
  for (size_t i = 0; i < c.n; i++)
    html_rule(f, s, &c.rules[i], m);
  fputs("</body>\n</html>\n", f);
  detour_cert_free(&c);
  return detour__rep_finish(f);
}

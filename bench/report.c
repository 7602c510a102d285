/*
 * report.c - `detour bench`'s JSON file, HTML page and regression check
 * (report.h).
 *
 * The HTML page is one file: inline CSS, inline SVG, a few lines of
 * inline script that only mark the page as ready, nothing fetched. Per
 * fault, a box plot of each client's latencies on a log axis (whiskers
 * min and max, box p25..p75, bar p50, tick p99), then a table with every
 * number, the ratio of each p50 to the fastest client's; and the
 * throughput with the primary down, as bars.
 */
#include "report.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "detour/detour_yaml.h"

const detour_bench_cell *detour_bench_cell_of(const detour_bench_report *r,
                                              size_t client, size_t fault) {
  if (client >= r->nclients || fault >= r->nfaults)
    return NULL;
  return &r->cells[client * r->nfaults + fault];
}

/* ------------------------------------------------------------------------ */
/* JSON                                                                      */

/* A JSON string: quotes, backslashes and control characters escaped. */
static void json_str(FILE *f, const char *s) {
  fputc('"', f);
  for (; s && *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\')
      fprintf(f, "\\%c", c);
    else if (c < 0x20)
      fprintf(f, "\\u%04x", c);
    else
      fputc(c, f);
  }
  fputc('"', f);
}

static void cpu_model(char *buf, size_t len) {
  snprintf(buf, len, "unknown");
  FILE *f = fopen("/proc/cpuinfo", "r");
  char line[512];
  while (f && fgets(line, sizeof line, f))
    if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
      char *v = strchr(line, ':') + 1;
      v += strspn(v, " \t");
      v[strcspn(v, "\n")] = '\0';
      snprintf(buf, len, "%s", v);
      break;
    }
  if (f)
    fclose(f);
}

static void json_machine(FILE *f) {
  struct utsname u;
  char cpu[256], host[256] = "";
  cpu_model(cpu, sizeof cpu);
  gethostname(host, sizeof host - 1);
  if (uname(&u) != 0)
    memset(&u, 0, sizeof u);
  fprintf(f, "\"machine\": {\"host\": ");
  json_str(f, host);
  fprintf(f, ", \"os\": ");
  json_str(f, u.sysname);
  fprintf(f, ", \"kernel\": ");
  json_str(f, u.release);
  fprintf(f, ", \"arch\": ");
  json_str(f, u.machine);
  fprintf(f, ", \"cpus\": %ld, \"cpu\": ", sysconf(_SC_NPROCESSORS_ONLN));
  json_str(f, cpu);
  fprintf(f, "}");
}

static void json_settings(FILE *f, const detour_bench_settings *s) {
  const detour_timeouts *t = &s->timeouts;
  fprintf(f,
          "\"settings\": {\"retry_interval_ms\": %lld, \"max_attempts\": %u, "
          "\"pipelining\": %s, "
          "\"timeouts_ms\": {\"connect\": %lld, \"greeting\": %lld, "
          "\"ehlo\": %lld, \"mail\": %lld, \"rcpt\": %lld, "
          "\"data_start\": %lld, \"data_block\": %lld, \"final_dot\": %lld, "
          "\"quit\": %lld}}",
          (long long)s->retry_interval, s->max_attempts,
          s->pipelining ? "true" : "false", (long long)t->connect,
          (long long)t->greeting, (long long)t->ehlo, (long long)t->mail,
          (long long)t->rcpt, (long long)t->data_start,
          (long long)t->data_block, (long long)t->final_dot,
          (long long)t->quit);
}

static void json_result(FILE *f, const detour_bench_result *r, bool samples) {
  fprintf(f,
          "\"n\": %zu, \"ok\": %zu, \"outcomes\": {\"primary\": %zu, "
          "\"backup\": %zu, \"bounced\": %zu, \"deferred\": %zu, "
          "\"not_sent\": %zu}, \"timed_out\": %s, \"stopped_early\": %s, "
          "\"p50_ms\": %.4f, \"p90_ms\": %.4f, \"p99_ms\": %.4f, "
          "\"max_ms\": %.4f, \"mean_ms\": %.4f, \"per_sec\": %.1f, "
          "\"wall_s\": %.3f",
          r->n, r->ok, r->count[DETOUR_BENCH_PRIMARY],
          r->count[DETOUR_BENCH_BACKUP], r->count[DETOUR_BENCH_BOUNCED],
          r->count[DETOUR_BENCH_DEFERRED], r->count[DETOUR_BENCH_NOT_SENT],
          r->timed_out ? "true" : "false", r->stopped_early ? "true" : "false",
          r->p50, r->p90, r->p99, r->max, r->mean, r->per_sec, r->wall_s);
  if (!samples)
    return;
  fprintf(f, ", \"samples_ms\": [");
  for (size_t i = 0; i < r->nsamples; i++)
    fprintf(f, "%s%.4f", i ? ", " : "", r->samples[i]);
  fprintf(f, "]");
}

static void json_cell(FILE *f, const detour_bench_cell *c) {
  fprintf(f, "{\"client\": ");
  json_str(f, c->client);
  fprintf(f, ", \"version\": ");
  json_str(f, c->version);
  fprintf(f, ", \"fault\": ");
  json_str(f, c->fault->name);
  fprintf(f, ", \"what\": ");
  json_str(f, c->fault->what);
  fprintf(f, ", \"class\": ");
  json_str(f, detour_class_name(c->fault->expected));
  fprintf(f, ", \"measured\": %s", c->measured ? "true" : "false");
  if (!c->measured) {
    fprintf(f, ", \"why\": ");
    json_str(f, c->why);
    fprintf(f, "}");
    return;
  }
  if (c->budget >= 0)
    fprintf(f, ", \"budget_ms\": %lld", (long long)c->budget);
  else
    fprintf(f, ", \"budget_ms\": null");
  fprintf(f, ", \"budget_note\": ");
  json_str(f, c->budget_note);
  fprintf(f, ", \"msg_deadline_ms\": %lld, ", (long long)c->res.msg_deadline);
  json_result(f, &c->res, true);
  fprintf(f, "}");
}

int detour_bench_write_json(const detour_bench_report *r, FILE *f) {
  fprintf(f, "{\"bench\": \"failover_latency\", \"format\": 2, "
             "\"detour_version\": ");
  json_str(f, DETOUR_VERSION);
  fprintf(f, ", \"started\": ");
  json_str(f, r->started);
  fprintf(f, ", \"command\": ");
  json_str(f, r->command);
  fprintf(f, ", \"wall_s\": %.3f, ", r->wall_s);
  json_machine(f);
  fprintf(f, ", \"network\": ");
  if (r->network)
    json_str(f, r->network);
  else
    fprintf(f, "\"loopback\"");
  fprintf(f, ", \"network_note\": ");
  json_str(f, r->network_note);
  fprintf(f, ", \"messages\": %zu, ", r->messages);
  json_settings(f, &r->settings);
  fprintf(f, ",\n\"results\": [\n");
  for (size_t i = 0; i < r->ncells; i++) {
    if (i)
      fprintf(f, ",\n");
    json_cell(f, &r->cells[i]);
  }
  fprintf(f, "]");
  if (r->ran_tp) {
    fprintf(f,
            ",\n\"throughput\": {\"client\": \"builtin\", \"concurrency\": "
            "%zu, \"messages\": %zu, \"up\": {",
            r->tp_concurrency, r->tp_messages);
    json_result(f, &r->tp_up, false);
    fprintf(f, "}, \"down_refuse\": {");
    json_result(f, &r->tp_down, false);
    fprintf(f, "}, \"ratio\": %.4f}",
            r->tp_up.per_sec > 0 ? r->tp_down.per_sec / r->tp_up.per_sec : 0);
  }
  fprintf(f, "}\n");
  return ferror(f) ? -1 : 0;
}

/* ------------------------------------------------------------------------ */
/* HTML                                                                      */

static void html_str(FILE *f, const char *s) {
  for (; s && *s; s++) {
    switch (*s) {
    case '<':
      fputs("&lt;", f);
      break;
    case '>':
      fputs("&gt;", f);
      break;
    case '&':
      fputs("&amp;", f);
      break;
    case '"':
      fputs("&quot;", f);
      break;
    default:
      fputc(*s, f);
    }
  }
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static const char *const COLORS[] = {"#1f77b4", "#d62728", "#2ca02c",
                                     "#9467bd", "#ff7f0e", "#8c564b",
                                     "#e377c2", "#17becf"};
#define NCOLORS (sizeof COLORS / sizeof *COLORS)

#define CHART_W 760
#define LABEL_W 110
#define ROW_H 34

/* The log axis of one chart: decades covering every sample. */
typedef struct {
  double lo, hi; /* log10 bounds */
} axis;

static double x_of(const axis *a, double ms) {
  double v = log10(ms > 1e-4 ? ms : 1e-4);
  return LABEL_W + (v - a->lo) / (a->hi - a->lo) * (CHART_W - LABEL_W - 20);
}

static axis axis_for(const detour_bench_report *r, size_t fault) {
  double lo = INFINITY, hi = -INFINITY;
  for (size_t c = 0; c < r->nclients; c++) {
    const detour_bench_cell *cell = detour_bench_cell_of(r, c, fault);
    for (size_t i = 0; cell->measured && i < cell->res.nsamples; i++) {
      double v = cell->res.samples[i] > 1e-4 ? cell->res.samples[i] : 1e-4;
      lo = fmin(lo, v);
      hi = fmax(hi, v);
    }
  }
  if (!isfinite(lo))
    lo = 0.01, hi = 1000;
  axis a = {floor(log10(lo)), ceil(log10(hi))};
  if (a.hi <= a.lo)
    a.hi = a.lo + 1;
  return a;
}

static void fmt_ms(char *buf, size_t len, double ms) {
  if (ms >= 1000)
    snprintf(buf, len, "%g s", ms / 1000);
  else
    snprintf(buf, len, "%g ms", ms);
}

static void svg_axis(FILE *f, const axis *a, int y) {
  fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" class=\"ax\"/>\n",
          LABEL_W, y, CHART_W - 20, y);
  for (int d = (int)a->lo; d <= (int)a->hi; d++) {
    char t[32];
    fmt_ms(t, sizeof t, pow(10, d));
    double x = x_of(a, pow(10, d));
    fprintf(f,
            "<line x1=\"%.1f\" y1=\"10\" x2=\"%.1f\" y2=\"%d\" class=\"grid\"/>"
            "<text x=\"%.1f\" y=\"%d\" class=\"tick\">%s</text>\n",
            x, x, y, x, y + 14, t);
  }
}

/* One client's box: whiskers min..max, box p25..p75, p50 bar, p99 tick. */
static void svg_box(FILE *f, const axis *a, const detour_bench_cell *c,
                    size_t idx, int y) {
  const char *color = COLORS[idx % NCOLORS];
  fprintf(f, "<g class=\"series\" data-client=\"");
  html_str(f, c->client);
  fprintf(f, "\"><text x=\"4\" y=\"%d\" class=\"lbl\">", y + 4);
  html_str(f, c->client);
  fprintf(f, "</text>");
  if (!c->measured || c->res.nsamples == 0) {
    fprintf(f, "<text x=\"%d\" y=\"%d\" class=\"na\">", LABEL_W + 4, y + 4);
    html_str(f, c->measured ? "no message reached the backup" : c->why);
    fprintf(f, "</text></g>\n");
    return;
  }
  size_t n = c->res.nsamples;
  double *s = malloc(n * sizeof *s);
  if (!s) {
    fprintf(f, "</g>\n");
    return;
  }
  memcpy(s, c->res.samples, n * sizeof *s);
  qsort(s, n, sizeof *s, cmp_double);
  double p25 = detour_bench_percentile(s, n, 0.25);
  double p75 = detour_bench_percentile(s, n, 0.75);
  double x0 = x_of(a, s[0]), x1 = x_of(a, s[n - 1]);
  double b0 = x_of(a, p25), b1 = x_of(a, p75);
  double m = x_of(a, c->res.p50), p99 = x_of(a, c->res.p99);
  fprintf(f,
          "<title>%s: N %zu, min %.3f, p25 %.3f, p50 %.3f, p75 %.3f, p99 "
          "%.3f, max %.3f ms</title>"
          "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"%s\"/>"
          "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"16\" "
          "fill=\"%s\" fill-opacity=\"0.35\" stroke=\"%s\"/>"
          "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"%s\" "
          "stroke-width=\"3\"/>"
          "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"%s\" "
          "stroke-dasharray=\"2,2\"/></g>\n",
          c->client, n, s[0], p25, c->res.p50, p75, c->res.p99, s[n - 1], x0, y,
          x1, y, color, b0, y - 8, b1 - b0 > 1 ? b1 - b0 : 1, color, color, m,
          y - 10, m, y + 10, color, p99, y - 6, p99, y + 6, color);
  free(s);
}

static void html_chart(FILE *f, const detour_bench_report *r, size_t fault) {
  axis a = axis_for(r, fault);
  int h = (int)r->nclients * ROW_H + 40;
  const detour_bench_fault *bf = detour_bench_cell_of(r, 0, fault)->fault;
  fprintf(f,
          "<svg class=\"chart\" data-fault=\"%s\" width=\"%d\" height=\"%d\" "
          "viewBox=\"0 0 %d %d\" xmlns=\"http://www.w3.org/2000/svg\" "
          "role=\"img\" aria-label=\"latency of each client, %s\">\n",
          bf->name, CHART_W, h, CHART_W, h, bf->name);
  svg_axis(f, &a, h - 24);
  for (size_t c = 0; c < r->nclients; c++)
    svg_box(f, &a, detour_bench_cell_of(r, c, fault), c, 20 + (int)c * ROW_H);
  fprintf(f, "</svg>\n");
}

/* The fastest measured p50 of a fault, 0 when none. */
static double fastest_p50(const detour_bench_report *r, size_t fault) {
  double best = 0;
  for (size_t c = 0; c < r->nclients; c++) {
    const detour_bench_cell *cell = detour_bench_cell_of(r, c, fault);
    if (cell->measured && cell->res.nsamples &&
        (best == 0 || cell->res.p50 < best))
      best = cell->res.p50;
  }
  return best;
}

static void outcome_text(const detour_bench_result *res, char *buf,
                         size_t len) {
  buf[0] = '\0';
  for (int o = 0; o < DETOUR_BENCH_OUTCOMES; o++)
    if (res->count[o])
      snprintf(buf + strlen(buf), len - strlen(buf), "%s%s %zu",
               buf[0] ? ", " : "", detour_bench_outcome_name(o), res->count[o]);
  if (res->stopped_early)
    snprintf(buf + strlen(buf), len - strlen(buf),
             " (stopped: the first were not delivered)");
  if (res->timed_out)
    snprintf(buf + strlen(buf), len - strlen(buf), " (run timed out)");
}

static void html_table(FILE *f, const detour_bench_report *r, size_t fault) {
  double best = fastest_p50(r, fault);
  fprintf(f,
          "<table class=\"nums\" data-fault=\"%s\"><tr><th>client</th>"
          "<th>N</th><th>p50</th><th>p90</th><th>p99</th><th>max</th>"
          "<th>&times; fastest p50</th><th>msg/s</th><th>what it did</th>"
          "<th>budget</th></tr>\n",
          detour_bench_cell_of(r, 0, fault)->fault->name);
  for (size_t c = 0; c < r->nclients; c++) {
    const detour_bench_cell *cell = detour_bench_cell_of(r, c, fault);
    fprintf(f, "<tr><td>");
    html_str(f, cell->client);
    if (!cell->measured) {
      fprintf(f, "</td><td colspan=\"9\" class=\"na\">not measured: ");
      html_str(f, cell->why);
      fprintf(f, "</td></tr>\n");
      continue;
    }
    const detour_bench_result *res = &cell->res;
    char did[256], budget[64];
    outcome_text(res, did, sizeof did);
    if (cell->budget >= 0)
      snprintf(budget, sizeof budget, "%lld ms", (long long)cell->budget);
    else
      snprintf(budget, sizeof budget, "?");
    if (res->nsamples)
      fprintf(f,
              "</td><td>%zu</td><td>%.3f</td><td>%.3f</td><td>%.3f</td>"
              "<td>%.3f</td><td>%.1f</td><td>%.0f</td><td>",
              res->nsamples, res->p50, res->p90, res->p99, res->max,
              best > 0 ? res->p50 / best : 0, res->per_sec);
    else
      fprintf(f, "</td><td>0</td><td colspan=\"6\">-</td><td>");
    html_str(f, did);
    fprintf(f, "</td><td>%s", budget);
    if (cell->budget_note[0]) {
      fprintf(f, " <small>(");
      html_str(f, cell->budget_note);
      fprintf(f, ")</small>");
    }
    fprintf(f, "</td></tr>\n");
  }
  fprintf(f, "</table>\n");
}

/* Messages per second with the primary refusing: each client's refuse
 * run (one message at a time), and the engine's parallel runs. */
static void html_throughput(FILE *f, const detour_bench_report *r) {
  size_t refuse = SIZE_MAX;
  for (size_t i = 0; i < r->nfaults; i++)
    if (!strcmp(detour_bench_cell_of(r, 0, i)->fault->name, "refuse"))
      refuse = i;
  if (refuse == SIZE_MAX && !r->ran_tp)
    return;
  typedef struct {
    char label[128];
    double v;
  } bar;
  bar bars[64];
  size_t nb = 0;
  double top = 0;
  for (size_t c = 0; refuse != SIZE_MAX && c < r->nclients && nb < 62; c++) {
    const detour_bench_cell *cell = detour_bench_cell_of(r, c, refuse);
    if (!cell->measured)
      continue;
    snprintf(bars[nb].label, sizeof bars[nb].label, "%s, 1 at a time",
             cell->client);
    bars[nb++].v = cell->res.per_sec;
  }
  if (r->ran_tp) {
    snprintf(bars[nb].label, sizeof bars[nb].label,
             "builtin, %zu engines, primary up", r->tp_concurrency);
    bars[nb++].v = r->tp_up.per_sec;
    snprintf(bars[nb].label, sizeof bars[nb].label,
             "builtin, %zu engines, primary down", r->tp_concurrency);
    bars[nb++].v = r->tp_down.per_sec;
  }
  for (size_t i = 0; i < nb; i++)
    top = fmax(top, bars[i].v);
  double lo = 0, hi = ceil(log10(top > 1 ? top : 10));
  int w = 240, h = (int)nb * 24 + 30;
  fprintf(f,
          "<h2 id=\"throughput\">Throughput with the primary down</h2>\n"
          "<svg class=\"tp\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
          "xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" "
          "aria-label=\"messages per second\">\n",
          CHART_W, h, CHART_W, h);
  for (size_t i = 0; i < nb; i++) {
    double v = bars[i].v > 1 ? log10(bars[i].v) : 0;
    double len = (v - lo) / (hi - lo) * (CHART_W - w - 80);
    fprintf(f, "<text x=\"4\" y=\"%zu\" class=\"lbl\">", 18 + i * 24);
    html_str(f, bars[i].label);
    fprintf(f,
            "</text><rect x=\"%d\" y=\"%zu\" width=\"%.1f\" height=\"16\" "
            "fill=\"%s\"/><text x=\"%.1f\" y=\"%zu\" class=\"tick\" "
            "text-anchor=\"start\">%.0f msg/s</text>\n",
            w, 6 + i * 24, len > 1 ? len : 1, COLORS[i % NCOLORS], w + len + 4,
            18 + i * 24, bars[i].v);
  }
  fprintf(f,
          "<text x=\"%d\" y=\"%d\" class=\"tick\" text-anchor=\"start\">"
          "log scale, 1 to 10^%.0f msg/s</text></svg>\n",
          w, h - 4, hi);
  if (r->ran_tp)
    fprintf(f,
            "<p>The engine, %zu in parallel, %zu messages: %.0f msg/s with "
            "the primary up, %.0f with it refusing (%.2f of the "
            "baseline).</p>\n",
            r->tp_concurrency, r->tp_messages, r->tp_up.per_sec,
            r->tp_down.per_sec,
            r->tp_up.per_sec > 0 ? r->tp_down.per_sec / r->tp_up.per_sec : 0);
}

static const char CSS[] =
    "body{font-family:sans-serif;margin:1.5em;color:#222;max-width:70em}"
    "table{border-collapse:collapse;margin:.5em 0 1.5em}"
    "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right;"
    "font-size:90%}td:first-child{text-align:left}"
    ".na{color:#888;text-align:left}.ax{stroke:#444}.grid{stroke:#eee}"
    ".tick{font-size:11px;text-anchor:middle;fill:#444}"
    ".lbl{font-size:12px;fill:#222}.na{font-size:12px}"
    "svg{display:block;margin:.3em 0}code{background:#f4f4f4}";

static void html_head(FILE *f, const detour_bench_report *r) {
  fprintf(f,
          "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
          "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src "
          "'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
          "img-src data:\">"
          "<title>detour bench: failover latency</title><style>%s</style>"
          "</head>\n<body>\n<h1>Failover latency</h1>\n<p>",
          CSS);
  fprintf(f, "Network: <b>");
  html_str(f, r->network ? r->network : "loopback");
  fprintf(f, "</b>");
  if (r->network_note[0]) {
    fprintf(f, " (");
    html_str(f, r->network_note);
    fprintf(f, ")");
  }
  const detour_timeouts *t = &r->settings.timeouts;
  fprintf(f,
          ". Up to %zu messages per (client, fault), one at a time. Every "
          "client was given: connect timeout %lld ms, greeting %lld ms, "
          "other replies %lld ms, retry interval %lld ms, %u attempts per "
          "server, PIPELINING %s (where it can express them; the budget "
          "column says where not). Latency: submission to the final "
          "&quot;.&quot; at the server that took the message, in ms, log "
          "scale. Started ",
          r->messages, (long long)t->connect, (long long)t->greeting,
          (long long)t->mail, (long long)r->settings.retry_interval,
          r->settings.max_attempts, r->settings.pipelining ? "on" : "off");
  html_str(f, r->started);
  fprintf(f, ", %.1f s.</p>\n<p><code>", r->wall_s);
  html_str(f, r->command);
  fprintf(f, "</code></p>\n<p>Clients:");
  for (size_t c = 0; c < r->nclients; c++) {
    const detour_bench_cell *cell = detour_bench_cell_of(r, c, 0);
    fprintf(f, " <b style=\"color:%s\">", COLORS[c % NCOLORS]);
    html_str(f, cell->client);
    fprintf(f, "</b>");
    if (cell->version[0]) {
      fprintf(f, " (");
      html_str(f, cell->version);
      fprintf(f, ")");
    }
    fprintf(f, "%s", c + 1 < r->nclients ? "," : ".");
  }
  fprintf(f, " Box: p25 to p75, thick bar p50, dashed tick p99, whiskers "
             "min and max.</p>\n");
}

int detour_bench_write_html(const detour_bench_report *r, FILE *f) {
  html_head(f, r);
  for (size_t i = 0; i < r->nfaults; i++) {
    const detour_bench_fault *bf = detour_bench_cell_of(r, 0, i)->fault;
    fprintf(f, "<section class=\"fault\" id=\"f-%s\"><h2>%s: ", bf->name,
            bf->name);
    html_str(f, bf->what);
    fprintf(f, " <small>(%s)</small></h2>\n", detour_class_name(bf->expected));
    html_chart(f, r, i);
    html_table(f, r, i);
    fprintf(f, "</section>\n");
  }
  html_throughput(f, r);
  /* The only script: marks the page as drawn, for the browser test. */
  fprintf(f, "<script>document.body.setAttribute('data-charts', "
             "String(document.querySelectorAll('svg.chart').length));"
             "document.body.setAttribute('data-ready', '1');</script>\n"
             "</body></html>\n");
  return ferror(f) ? -1 : 0;
}

/* ------------------------------------------------------------------------ */
/* Baseline files                                                            */

static int read_samples(const detour_yaml_ctx *c, yaml_node_t *seq,
                        const char *path, detour_bench_baseline_cell *cell) {
  if (!seq || seq->type != YAML_SEQUENCE_NODE)
    return detour_yaml_expected(c, seq, path, "a list of samples");
  size_t n = detour_yaml_count(seq);
  cell->samples = malloc((n ? n : 1) * sizeof *cell->samples);
  if (!cell->samples)
    return detour_yaml_nomem(c);
  for (yaml_node_item_t *it = seq->data.sequence.items.start;
       it < seq->data.sequence.items.top; it++) {
    yaml_node_t *v = detour_yaml_node(c, *it);
    const char *t = detour_yaml_text(v);
    char *end;
    double x = t ? strtod(t, &end) : 0;
    if (!t || end == t || *end || !(x >= 0))
      return detour_yaml_expected(c, v, path, "a latency in ms");
    cell->samples[cell->n++] = x;
  }
  return 0;
}

static int read_cell(const detour_yaml_ctx *c, yaml_node_t *m, const char *path,
                     detour_bench_baseline_cell *cell) {
  if (!m || m->type != YAML_MAPPING_NODE)
    return detour_yaml_expected(c, m, path, "a result");
  yaml_node_t *cl = detour_yaml_map_get(c, m, "client");
  yaml_node_t *fa = detour_yaml_map_get(c, m, "fault");
  const char *ct = detour_yaml_text(cl), *ft = detour_yaml_text(fa);
  if (!ct || !ft)
    return detour_yaml_fail(c, m, path, "a result needs client and fault");
  snprintf(cell->client, sizeof cell->client, "%s", ct);
  snprintf(cell->fault, sizeof cell->fault, "%s", ft);
  yaml_node_t *s = detour_yaml_map_get(c, m, "samples_ms");
  return s ? read_samples(c, s, path, cell) : 0; /* not measured: none */
}

int detour_bench_baseline_load(const char *path, detour_bench_baseline *b,
                               char *err, size_t errlen) {
  memset(b, 0, sizeof *b);
  detour_yaml_file f;
  int rc = detour_yaml_load_file(&f, path, err, errlen);
  if (rc != 0)
    return rc;
  detour_yaml_ctx c = detour_yaml_ctx_of(&f, err, errlen);
  yaml_node_t *root = detour_yaml_root(&f);
  yaml_node_t *res = root && root->type == YAML_MAPPING_NODE
                         ? detour_yaml_map_get(&c, root, "results")
                         : NULL;
  if (!res || res->type != YAML_SEQUENCE_NODE) {
    rc = detour_yaml_fail(&c, root, NULL,
                          "not a detour bench JSON file (no \"results\" list)");
  } else {
    size_t n = detour_yaml_count(res);
    b->cells = calloc(n ? n : 1, sizeof *b->cells);
    if (!b->cells)
      rc = detour_yaml_nomem(&c);
    size_t i = 0;
    for (yaml_node_item_t *it = res->data.sequence.items.start;
         rc == 0 && it < res->data.sequence.items.top; it++, i++) {
      char p[64];
      snprintf(p, sizeof p, "results[%zu]", i);
      rc = read_cell(&c, detour_yaml_node(&c, *it), p, &b->cells[i]);
      b->ncells = i + 1;
    }
  }
  detour_yaml_file_free(&f);
  if (rc != 0)
    detour_bench_baseline_free(b);
  return rc;
}

void detour_bench_baseline_free(detour_bench_baseline *b) {
  for (size_t i = 0; b && i < b->ncells; i++)
    free(b->cells[i].samples);
  if (b) {
    free(b->cells);
    b->cells = NULL;
    b->ncells = 0;
  }
}

/* ------------------------------------------------------------------------ */
/* The regression check                                                      */

typedef struct {
  double v;
  int from_b;
} tagged;

static int cmp_tagged(const void *x, const void *y) {
  return cmp_double(&((const tagged *)x)->v, &((const tagged *)y)->v);
}

/* U of b over a with mid-ranks for ties; z from the normal approximation
 * with the tie correction, then the upper tail. */
double detour_bench_mann_whitney_p(const double *a, size_t na, const double *b,
                                   size_t nb) {
  if (!na || !nb)
    return 1;
  size_t n = na + nb;
  tagged *t = malloc(n * sizeof *t);
  if (!t)
    return 1;
  for (size_t i = 0; i < na; i++)
    t[i] = (tagged){a[i], 0};
  for (size_t i = 0; i < nb; i++)
    t[na + i] = (tagged){b[i], 1};
  qsort(t, n, sizeof *t, cmp_tagged);
  double rank_b = 0, ties = 0;
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j < n && t[j].v == t[i].v)
      j++;
    double mid = (double)(i + 1 + j) / 2.0; /* ranks i+1 .. j */
    double k = (double)(j - i);
    ties += k * k * k - k;
    for (size_t m = i; m < j; m++)
      if (t[m].from_b)
        rank_b += mid;
    i = j;
  }
  free(t);
  double u = rank_b - (double)nb * (double)(nb + 1) / 2.0;
  double mean = (double)na * (double)nb / 2.0;
  double var = (double)na * (double)nb / 12.0 *
               ((double)(n + 1) - ties / ((double)n * (double)(n - 1)));
  if (var <= 0)
    return u > mean ? 0 : 1;
  double z = (u - mean - 0.5) / sqrt(var); /* continuity correction */
  return 0.5 * erfc(z / sqrt(2.0));
}

static double median_of(const double *s, size_t n, double q) {
  double *c = malloc((n ? n : 1) * sizeof *c);
  if (!c || !n) {
    free(c);
    return 0;
  }
  memcpy(c, s, n * sizeof *c);
  qsort(c, n, sizeof *c, cmp_double);
  double v = detour_bench_percentile(c, n, q);
  free(c);
  return v;
}

int detour_bench_baseline_of(const detour_bench_report *r,
                             detour_bench_baseline *b) {
  b->ncells = 0;
  b->cells = calloc(r->ncells ? r->ncells : 1, sizeof *b->cells);
  if (!b->cells)
    return DETOUR_ENOMEM;
  for (size_t i = 0; i < r->ncells; i++) {
    const detour_bench_cell *c = &r->cells[i];
    if (!c->measured || !c->res.nsamples)
      continue;
    detour_bench_baseline_cell *d = &b->cells[b->ncells++];
    snprintf(d->client, sizeof d->client, "%s", c->client);
    snprintf(d->fault, sizeof d->fault, "%s", c->fault->name);
    d->samples = c->res.samples;
    d->n = c->res.nsamples;
  }
  return 0;
}

size_t detour_bench_compare(const detour_bench_baseline *cur,
                            const detour_bench_baseline *b, double threshold,
                            double floor_ms, double alpha,
                            detour_bench_regression *out, size_t max,
                            size_t *compared) {
  size_t found = 0, pairs = 0;
  for (size_t i = 0; i < cur->ncells; i++) {
    const detour_bench_baseline_cell *c = &cur->cells[i];
    if (!c->n)
      continue;
    for (size_t j = 0; j < b->ncells; j++) {
      const detour_bench_baseline_cell *bc = &b->cells[j];
      if (strcmp(bc->client, c->client) || strcmp(bc->fault, c->fault) ||
          !bc->n)
        continue;
      pairs++;
      double bp50 = median_of(bc->samples, bc->n, 0.5);
      double bp99 = median_of(bc->samples, bc->n, 0.99);
      double cp50 = median_of(c->samples, c->n, 0.5);
      double cp99 = median_of(c->samples, c->n, 0.99);
      double p =
          detour_bench_mann_whitney_p(bc->samples, bc->n, c->samples, c->n);
      bool p50w = cp50 > bp50 * (1 + threshold) && cp50 - bp50 > floor_ms;
      /* below 100 samples the p99 is the maximum: one sample, noise */
      bool p99w = c->n >= 100 && bc->n >= 100 &&
                  cp99 > bp99 * (1 + threshold) && cp99 - bp99 > floor_ms;
      if (p < alpha && (p50w || p99w)) {
        if (found < max) {
          detour_bench_regression *g = &out[found];
          snprintf(g->client, sizeof g->client, "%s", c->client);
          snprintf(g->fault, sizeof g->fault, "%s", c->fault);
          g->base_p50 = bp50;
          g->cur_p50 = cp50;
          g->base_p99 = bp99;
          g->cur_p99 = cp99;
          g->p = p;
          g->p50_worse = p50w;
          g->p99_worse = p99w;
        }
        found++;
      }
      break;
    }
  }
  if (compared)
    *compared = pairs;
  return found;
}

/*
 * timeline.c - one scenario's timeline as inline SVG for the HTML report.
 *
 * Servers are lanes (top to bottom in the order the scenario declares
 * them), time runs left to right from the scenario start. What the fake
 * servers recorded gives the connections (bars from accept to close);
 * what the client logged gives the results (marks at the row's time), and
 * a bar takes the colour of the worst result logged on that lane while it
 * was open, so one glance shows which attempt failed how. Retries of the
 * same server for the same message are joined by a dashed line labelled
 * with the wait, because the waits are what R3/R6/R7 are about. In virtual
 * time an SMTP exchange takes 0 ms, so every mark has a minimum width.
 * Each mark carries a <title>, the browser's tooltip, with the details.
 */
#include "rep_internal.h"

#include <string.h>

#define W 1000.0   /* viewBox width; the SVG scales to the page */
#define GUTTER 140 /* lane labels */
#define RIGHT 24   /* room for the last axis label */
#define TOP 22     /* message submit / done labels */
#define LANE 30    /* lane height */
#define AXIS 30    /* axis and its labels */
#define MIN_MARK 4 /* px: a 0 ms exchange stays visible */
#define MAX_LANES 64

typedef struct {
  const char *name[MAX_LANES];
  size_t n;
  detour_ms span; /* ms shown, > 0 */
} layout;

static double x_of(const layout *l, detour_ms t) {
  if (t < 0)
    t = 0;
  if (t > l->span)
    t = l->span;
  return GUTTER + (W - GUTTER - RIGHT) * (double)t / (double)l->span;
}

static double lane_y(size_t lane) { return TOP + (double)lane * LANE; }

static int lane_of(const layout *l, const char *name) {
  for (size_t i = 0; name && i < l->n; i++)
    if (strcmp(l->name[i], name) == 0)
      return (int)i;
  return -1;
}

static void add_lane(layout *l, const char *name) {
  if (name && name[0] && lane_of(l, name) < 0 && l->n < MAX_LANES)
    l->name[l->n++] = name;
}

static detour_ms max_ms(detour_ms a, detour_ms b) { return a > b ? a : b; }

/* The last moment anything happened, with a margin so the last mark is
 * not on the edge. */
static detour_ms span_of(const detour_scenario_result *r) {
  detour_ms t = r->end_t;
  for (size_t i = 0; i < r->nrows; i++)
    t = max_ms(t, r->rows[i].t);
  for (size_t i = 0; i < r->nservers; i++)
    for (size_t j = 0; j < r->servers[i].nconns; j++) {
      const detour_scenario_conn *c = &r->servers[i].conns[j];
      t = max_ms(t, max_ms(c->accept_t, c->close_t));
    }
  for (size_t i = 0; i < r->nmsgs; i++)
    t = max_ms(t, r->msgs[i].done ? r->msgs[i].done_t : r->msgs[i].submit_t);
  return t <= 0 ? 1000 : t + t / 25 + 1;
}

static void make_layout(layout *l, const detour_scenario_result *r) {
  memset(l, 0, sizeof *l);
  for (size_t i = 0; i < r->nservers; i++)
    add_lane(l, r->servers[i].name);
  for (size_t i = 0; i < r->nrows; i++) /* servers no fake stood behind */
    add_lane(l, r->rows[i].server);
  l->span = span_of(r);
}

/* ---- colours ------------------------------------------------------------- */

/* Worse results win a bar's colour: ABORT > SWITCH > TRANSIENT > CONNECT
 * > OK. */
static int severity(detour_class c) {
  static const int sev[DETOUR_CLASS_COUNT] = {1, 2, 3, 4, 5};
  return (int)c >= 0 && (int)c < DETOUR_CLASS_COUNT ? sev[c] : 0;
}

static const char *class_css(detour_class c) {
  switch (c) {
  case DETOUR_CLASS_NONE:
    return "k-ok";
  case DETOUR_CLASS_CONNECT:
    return "k-connect";
  case DETOUR_CLASS_TRANSIENT:
    return "k-transient";
  case DETOUR_CLASS_SWITCH:
    return "k-switch";
  case DETOUR_CLASS_ABORT:
    return "k-abort";
  }
  return "k-none";
}

/* ---- pieces -------------------------------------------------------------- */

void detour__rep_xml_trunc(FILE *f, const char *s, size_t max) {
  if (!s)
    return;
  const unsigned char *p = (const unsigned char *)s;
  size_t n = strlen(s), pos = 0, cps = 0;
  while (pos < n && cps < max) {
    uint32_t cp;
    pos += detour__rep_utf8_next(p + pos, n - pos, &cp);
    cps++;
  }
  detour__rep_xmln(f, s, pos, false);
  if (pos < n)
    fputs("\xe2\x80\xa6", f);
}

static void lanes(FILE *f, const layout *l, const detour_scenario_result *r) {
  for (size_t i = 0; i < l->n; i++) {
    double y = lane_y(i);
    fprintf(f,
            "<rect class=\"lane%s\" x=\"0\" y=\"%.1f\" width=\"%.0f\" "
            "height=\"%d\"/>",
            i % 2 ? " odd" : "", y, W, LANE);
    fprintf(f, "<text class=\"ln\" x=\"6\" y=\"%.1f\"><title>", y + 19);
    detour__rep_xml(f, l->name[i], false);
    fputs("</title>", f);
    detour__rep_xml_trunc(f, l->name[i], 20);
    fputs("</text>", f);
  }
  (void)r;
}

/* A step for about 8 ticks, from a list of round durations. */
static detour_ms tick_step(detour_ms span) {
  static const detour_ms steps[] = {
      1,       2,       5,        10,       20,       50,      100,
      200,     500,     1000,     2000,     5000,     10000,   15000,
      30000,   60000,   120000,   300000,   600000,   900000,  1800000,
      3600000, 7200000, 10800000, 21600000, 43200000, 86400000};
  detour_ms want = span / 8;
  for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++)
    if (steps[i] >= want)
      return steps[i];
  return want;
}

static void axis(FILE *f, const layout *l) {
  double y = lane_y(l->n);
  fprintf(f,
          "<line class=\"ax\" x1=\"%d\" y1=\"%.1f\" x2=\"%.0f\" "
          "y2=\"%.1f\"/>",
          GUTTER, y, W - RIGHT, y);
  detour_ms step = tick_step(l->span);
  for (detour_ms t = 0; t <= l->span; t += step) {
    double x = x_of(l, t);
    char lab[32];
    detour__rep_offset(t, lab, sizeof lab);
    fprintf(f,
            "<line class=\"grid\" x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" "
            "y2=\"%.1f\"/>",
            x, TOP, x, y + 4);
    fprintf(f, "<text class=\"tk\" x=\"%.1f\" y=\"%.1f\">%s</text>", x, y + 17,
            lab);
  }
  fprintf(f, "<text class=\"tk u\" x=\"%d\" y=\"%.1f\">time from start</text>",
          6, y + 17);
}

/* Submit and done of each message: vertical lines across every lane. */
static void messages(FILE *f, const layout *l,
                     const detour_scenario_result *r) {
  double bottom = lane_y(l->n);
  for (size_t i = 0; i < r->nmsgs; i++) {
    const detour_scenario_msg *m = &r->msgs[i];
    double x = x_of(l, m->submit_t);
    fprintf(f,
            "<line class=\"msg\" x1=\"%.1f\" y1=\"12\" x2=\"%.1f\" "
            "y2=\"%.1f\"/>",
            x, x, bottom);
    fprintf(f, "<text class=\"ml\" x=\"%.1f\" y=\"10\">m%zu</text>", x + 2, i);
    if (!m->done)
      continue;
    const char *st = detour_done_status_name(m->status);
    x = x_of(l, m->done_t);
    fprintf(f,
            "<line class=\"done %s\" x1=\"%.1f\" y1=\"12\" x2=\"%.1f\" "
            "y2=\"%.1f\"/>",
            st, x, x, bottom);
    fprintf(f, "<text class=\"ml end %s\" x=\"%.1f\" y=\"10\">m%zu %s</text>",
            st, x - 2, i, st);
  }
}

/* The worst class logged on lane during [from, to]; -1 when none. */
static int worst_in(const layout *l, const detour_scenario_result *r, int lane,
                    detour_ms from, detour_ms to) {
  int worst = -1;
  for (size_t i = 0; i < r->nrows; i++) {
    const detour_scenario_row *row = &r->rows[i];
    if (row->kind != DETOUR_LOG_SMTP || row->t < from || row->t > to ||
        lane_of(l, row->server) != lane)
      continue;
    if (worst < 0 || severity(row->cls) > severity((detour_class)worst))
      worst = (int)row->cls;
  }
  return worst;
}

static void conn_bar(FILE *f, const layout *l, const detour_scenario_result *r,
                     int lane, const detour_scenario_conn *c) {
  detour_ms end = c->close_t == DETOUR_NO_DEADLINE ? l->span : c->close_t;
  double x1 = x_of(l, c->accept_t), x2 = x_of(l, end);
  double w = x2 - x1 < MIN_MARK ? MIN_MARK : x2 - x1;
  int worst = worst_in(l, r, lane, c->accept_t, end);
  char a[32], b[32];
  detour__rep_offset(c->accept_t, a, sizeof a);
  detour__rep_offset(end, b, sizeof b);
  fprintf(f,
          "<rect class=\"conn %s\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
          "height=\"14\" rx=\"2\"><title>connection #%u: +%s .. +%s",
          worst < 0 ? "k-none" : class_css((detour_class)worst), x1,
          lane_y((size_t)lane) + 8, w, c->id, a,
          c->close_t == DETOUR_NO_DEADLINE ? "(still open)" : b);
  if (c->closed_by) {
    fputs(", closed by ", f);
    detour__rep_xml(f, c->closed_by, false);
  }
  fputs("</title></rect>", f);
}

static void conns(FILE *f, const layout *l, const detour_scenario_result *r) {
  for (size_t i = 0; i < r->nservers; i++) {
    int lane = lane_of(l, r->servers[i].name);
    if (lane < 0)
      continue;
    for (size_t j = 0; j < r->servers[i].nconns; j++)
      conn_bar(f, l, r, lane, &r->servers[i].conns[j]);
  }
}

/* The mark of one row: a tick for an SMTP result, a cross for a failed
 * connect, a triangle for a warning, a padlock for TLS up and a key-like
 * ring for AUTH accepted (R13), a diamond for R12 events. */
static void mark_shape(FILE *f, const detour_scenario_row *row, double x,
                       double y) {
  const char *k = class_css(row->cls);
  switch (row->kind) {
  case DETOUR_LOG_CONNECT:
    fprintf(f, "<path class=\"x %s\" d=\"M%.1f %.1fl8 8m0 -8l-8 8\"/>", k,
            x - 4, y + 11);
    break;
  case DETOUR_LOG_SMTP:
    fprintf(f,
            "<rect class=\"tick %s\" x=\"%.1f\" y=\"%.1f\" width=\"3\" "
            "height=\"22\"/>",
            k, x - 1.5, y + 4);
    break;
  case DETOUR_LOG_WARNING:
    fprintf(f, "<path class=\"warn\" d=\"M%.1f %.1fl5 9h-10z\"/>", x, y + 1);
    break;
  case DETOUR_LOG_TLS: /* a padlock: shackle over a body */
    fprintf(f,
            "<path class=\"tls\" d=\"M%.1f %.1fv-3a3 3 0 0 1 6 0v3\"/>"
            "<rect class=\"tls-body\" x=\"%.1f\" y=\"%.1f\" width=\"9\" "
            "height=\"7\"/>",
            x - 3, y + 18, x - 4.5, y + 18);
    break;
  case DETOUR_LOG_AUTH: /* a key: ring and bit */
    fprintf(f,
            "<circle class=\"auth\" cx=\"%.1f\" cy=\"%.1f\" r=\"3\"/>"
            "<path class=\"auth\" d=\"M%.1f %.1fh6v3\"/>",
            x - 3, y + 20, x, y + 20);
    break;
  default:
    fprintf(f, "<path class=\"r12\" d=\"M%.1f %.1fl5 5l-5 5l-5 -5z\"/>", x,
            y + 10);
    break;
  }
}

/* Rows at the same time, lane and result (one per recipient) share one
 * mark whose tooltip names them all. Returns the index after the group. */
static size_t row_group(const layout *l, const detour_scenario_result *r,
                        size_t i) {
  const detour_scenario_row *a = &r->rows[i];
  size_t j = i + 1;
  while (j < r->nrows) {
    const detour_scenario_row *b = &r->rows[j];
    if (b->t != a->t || b->kind != a->kind || b->cls != a->cls ||
        lane_of(l, b->server) != lane_of(l, a->server) ||
        strcmp(b->result ? b->result : "", a->result ? a->result : "") != 0)
      break;
    j++;
  }
  return j;
}

static void mark_title(FILE *f, const detour_scenario_result *r, size_t from,
                       size_t to) {
  const detour_scenario_row *a = &r->rows[from];
  char t[32];
  detour__rep_offset(a->t, t, sizeof t);
  fprintf(f, "<title>+%s  %s  ", t, detour_log_kind_name(a->kind));
  detour__rep_xml(f, a->result, false);
  if (a->cls != DETOUR_CLASS_NONE)
    fprintf(f, "  (%s)", detour_class_name(a->cls));
  fprintf(f, "  attempt %u", a->attempt);
  if (a->detail && a->detail[0]) {
    fputs("\n", f);
    detour__rep_xml(f, a->detail, false);
  }
  for (size_t i = from; i < to; i++) {
    fprintf(f, "\nm%zu ", r->rows[i].message);
    detour__rep_xml(f, r->rows[i].recipient, false);
  }
  fputs("</title>", f);
}

/* In virtual time several results share one instant (a refusal, then a
 * SWITCH, then a warning, all at +0s): each later mark on the same lane
 * moves right by MARK_STEP px so none hides another. */
#define MARK_STEP 7

static void marks(FILE *f, const layout *l, const detour_scenario_result *r) {
  double last[MAX_LANES];
  for (size_t i = 0; i < MAX_LANES; i++)
    last[i] = -100;
  for (size_t i = 0; i < r->nrows;) {
    size_t next = row_group(l, r, i);
    const detour_scenario_row *row = &r->rows[i];
    int lane = lane_of(l, row->server);
    if (lane >= 0) {
      double x = x_of(l, row->t);
      if (x < last[lane] + MARK_STEP)
        x = last[lane] + MARK_STEP;
      last[lane] = x;
      fputs("<g>", f);
      mark_shape(f, row, x, lane_y((size_t)lane));
      mark_title(f, r, i, next);
      fputs("</g>", f);
    }
    i = next;
  }
}

/* The previous attempt row of the same message on the same lane, when
 * row is the attempt right after it (a retry of that server). */
static const detour_scenario_row *
retried(const layout *l, const detour_scenario_result *r, size_t i) {
  const detour_scenario_row *row = &r->rows[i];
  if (row->attempt < 2 ||
      (row->kind != DETOUR_LOG_CONNECT && row->kind != DETOUR_LOG_SMTP))
    return NULL;
  for (size_t j = i; j-- > 0;) {
    const detour_scenario_row *p = &r->rows[j];
    if (p->message == row->message && p->attempt + 1 == row->attempt &&
        (p->kind == DETOUR_LOG_CONNECT || p->kind == DETOUR_LOG_SMTP) &&
        lane_of(l, p->server) == lane_of(l, row->server))
      return p;
  }
  return NULL;
}

/* The first row of each (message, attempt, lane) starts a retry line. */
static bool first_of_attempt(const layout *l, const detour_scenario_result *r,
                             size_t i) {
  const detour_scenario_row *row = &r->rows[i];
  for (size_t j = 0; j < i; j++) {
    const detour_scenario_row *p = &r->rows[j];
    if (p->message == row->message && p->attempt == row->attempt &&
        lane_of(l, p->server) == lane_of(l, row->server))
      return false;
  }
  return true;
}

static void retries(FILE *f, const layout *l, const detour_scenario_result *r) {
  for (size_t i = 0; i < r->nrows; i++) {
    const detour_scenario_row *p = retried(l, r, i);
    if (!p || !first_of_attempt(l, r, i))
      continue;
    const detour_scenario_row *row = &r->rows[i];
    double y = lane_y((size_t)lane_of(l, row->server)) + 27;
    double x1 = x_of(l, p->t), x2 = x_of(l, row->t);
    char gap[32];
    detour__rep_offset(row->t - p->t, gap, sizeof gap);
    fprintf(f,
            "<line class=\"retry\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" "
            "y2=\"%.1f\"><title>retry %u after %s</title></line>",
            x1, y, x2, y, row->attempt, gap);
    if (x2 - x1 > 60)
      fprintf(f, "<text class=\"rl\" x=\"%.1f\" y=\"%.1f\">retry +%s</text>",
              (x1 + x2) / 2, y - 2, gap);
  }
}

void detour__rep_timeline_svg(FILE *f, const detour_scenario_result *r) {
  layout l;
  make_layout(&l, r);
  if (l.n == 0) {
    fputs("<p class=\"dim\">No server took part: no timeline.</p>\n", f);
    return;
  }
  double h = lane_y(l.n) + AXIS;
  fprintf(f,
          "<svg class=\"tl\" viewBox=\"0 0 %.0f %.0f\" width=\"%.0f\" "
          "height=\"%.0f\" role=\"img\" aria-label=\"timeline\">",
          W, h, W, h);
  lanes(f, &l, r);
  axis(f, &l);
  messages(f, &l, r);
  conns(f, &l, r);
  retries(f, &l, r);
  marks(f, &l, r);
  fputs("</svg>\n", f);
}

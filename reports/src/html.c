/*
 * html.c - the HTML report: one self-contained file (inline CSS, inline
 * SVG, a few lines of inline script, a Content-Security-Policy that
 * forbids every fetch), opening with the totals and the certification
 * summary by rule (docs/rules.md), then one collapsible section per scenario
 * with its failures, its timeline, the send log in the layout of Fig. 6, the
 * recipients' outcomes and what each fake server saw. Passing scenarios
 * start collapsed and a filter narrows the list, so a 200-scenario run
 * stays readable. The layout is in reports/README.md.
 */
#include "rep_internal.h"

#include <string.h>

/* Bodies can be large; the JSON report keeps them whole. */
#define BODY_SHOWN 2000
/* Runs this small open every scenario; larger ones only the failures. */
#define OPEN_ALL_UP_TO 12
/* Passing scenarios listed under a rule before they fold away. */
#define CERT_LINKS_SHOWN 8

static const char css[] =
    "body{font:14px/1.4 system-ui,sans-serif;margin:0 auto;max-width:1200px;"
    "padding:0 16px 40px;color:#212529}"
    "h1{font-size:22px;margin:18px 0 4px}h2{font-size:18px;margin:22px 0 8px}"
    ".meta,.dim{color:#6c757d}.meta span{margin-right:14px}"
    ".totals{font-size:18px;margin:10px 0}"
    ".badge{display:inline-block;padding:1px 8px;border-radius:10px;"
    "font-weight:600;font-size:12px;color:#fff;background:#868e96;"
    "min-width:38px;text-align:center;white-space:nowrap}"
    ".totals .badge{font-size:15px;padding:3px 12px}"
    ".badge.pass{background:#2b8a3e}.badge.fail,.badge.error{background:#"
    "c92a2a}"
    ".badge.skip,.badge.nc{background:#adb5bd}"
    "table{border-collapse:collapse;margin:6px 0}"
    "th,td{border-bottom:1px solid #dee2e6;padding:3px 8px;text-align:left;"
    "vertical-align:top}th{background:#f1f3f5}"
    "table.cert td:nth-child(1){font-weight:600}"
    "table.cert tr.fail td{background:#fff5f5}"
    "table.cert tr.nc td{color:#868e96}"
    "a.fail{color:#c92a2a;font-weight:600}a{color:#1c7ed6}"
    ".controls{position:sticky;top:0;background:#fff;padding:8px 0;"
    "border-bottom:1px solid #dee2e6;z-index:1}"
    ".controls input[type=search]{width:280px;padding:3px 6px}"
    ".controls label{margin-left:10px}.controls button{margin-left:8px}"
    "details.scn{border:1px solid #dee2e6;border-radius:4px;margin:4px 0}"
    "details.scn.fail,details.scn.error{border-color:#ffa8a8}"
    "details.scn>summary{cursor:pointer;padding:4px 8px;list-style-position:"
    "inside}"
    "details.scn>summary .rules{margin-left:8px;color:#495057;font-size:12px}"
    "details.scn>summary .dim{margin-left:8px;font-size:12px}"
    ".body{padding:4px 12px 12px}"
    "pre{background:#f8f9fa;padding:6px 8px;overflow-x:auto;margin:4px 0;"
    "font-size:12px;white-space:pre-wrap;word-break:break-all}"
    "pre.failure{background:#fff5f5;border-left:3px solid #c92a2a}"
    "p.banner{background:#fff5f5;border:2px solid #c92a2a;padding:.5em}"
    "table.log{font:12px ui-monospace,monospace}"
    "table.log td:nth-child(-n+2){white-space:nowrap}"
    "table.log td.r{font-weight:600}"
    "tr.k-ok td.r{color:#2b8a3e}tr.k-connect td.r{color:#d9480f}"
    "tr.k-transient td.r{color:#e67700}tr.k-switch td.r{color:#6741d9}"
    "tr.k-abort td.r{color:#c92a2a}"
    "svg.tl{width:100%;height:auto;max-width:1000px;display:block;"
    "margin:6px 0;font:11px system-ui,sans-serif}"
    ".lane{fill:#f8f9fa}.lane.odd{fill:#eef1f4}.ln{fill:#212529;"
    "font-weight:600;font-size:12px}"
    ".ax{stroke:#495057}.grid{stroke:#ced4da;stroke-dasharray:2 3}"
    ".tk{fill:#495057;text-anchor:middle}.tk.u{text-anchor:start}"
    ".msg{stroke:#1c7ed6;stroke-dasharray:4 3}.ml{fill:#1c7ed6}"
    ".ml.end{text-anchor:end}.done{stroke-width:2}"
    ".done.delivered{stroke:#2b8a3e}.ml.delivered{fill:#2b8a3e}"
    ".done.aborted,.done.deferred{stroke:#c92a2a}"
    ".ml.aborted,.ml.deferred{fill:#c92a2a}"
    ".conn{stroke-width:1;opacity:.85}"
    ".conn.k-none{fill:#dee2e6;stroke:#868e96}"
    ".conn.k-ok{fill:#b2f2bb;stroke:#2b8a3e}"
    ".conn.k-connect{fill:#ffd8a8;stroke:#d9480f}"
    ".conn.k-transient{fill:#ffec99;stroke:#e67700}"
    ".conn.k-switch{fill:#d0bfff;stroke:#6741d9}"
    ".conn.k-abort{fill:#ffc9c9;stroke:#c92a2a}"
    ".tick.k-ok{fill:#2b8a3e}.tick.k-connect{fill:#d9480f}"
    ".tick.k-transient{fill:#e67700}.tick.k-switch{fill:#6741d9}"
    ".tick.k-abort{fill:#c92a2a}"
    ".x{stroke-width:2.5;fill:none}.x.k-connect,.x.k-none,.x.k-ok{stroke:"
    "#d9480f}.x.k-transient{stroke:#e67700}.x.k-switch{stroke:#6741d9}"
    ".x.k-abort{stroke:#c92a2a}"
    ".warn{fill:#f08c00}.r12{fill:#495057}"
    ".tls{fill:none;stroke:#1971c2;stroke-width:1.5}.tls-body{fill:#1971c2}"
    ".auth{fill:none;stroke:#0c8599;stroke-width:1.5}"
    ".retry{stroke:#495057;stroke-dasharray:5 3;stroke-width:1.2}"
    ".rl{fill:#495057;text-anchor:middle;font-size:10px}"
    ".legend{font-size:12px;color:#495057}.legend i{display:inline-block;"
    "width:12px;height:10px;margin:0 4px 0 12px;border:1px solid #868e96}"
    ".legend i.k-ok{background:#b2f2bb}.legend i.k-connect{background:#ffd8a8}"
    ".legend i.k-transient{background:#ffec99}"
    ".legend i.k-switch{background:#d0bfff}.legend i.k-abort{background:"
    "#ffc9c9}.legend i.k-none{background:#dee2e6}";

/* Filter, show/hide by verdict, expand/collapse, open the section a link
 * points at. Sets data-ready on <body> so a test can see that it ran. */
static const char script[] =
    "(function(){\n"
    "var items=[].slice.call(document.querySelectorAll('details.scn'));\n"
    "var q=document.getElementById('q'),cnt=document.getElementById('count');\n"
    "items.forEach(function(d){d._s=(d.getAttribute('data-search')||'')"
    ".toLowerCase();});\n"
    "function shown(){var r=document.querySelector('input[name=show]:checked');"
    "return r?r.value:'all';}\n"
    "function apply(){var t=q.value.toLowerCase(),v=shown(),n=0;\n"
    " items.forEach(function(d){var k=d.getAttribute('data-verdict');\n"
    "  var ok=(v==='all'||k===v||(v==='fail'&&k==='error'))&&"
    "(!t||d._s.indexOf(t)>=0);\n"
    "  d.hidden=!ok;if(ok)n++;});\n"
    " cnt.textContent=n+' of '+items.length+' scenarios shown';}\n"
    "q.addEventListener('input',apply);\n"
    "[].forEach.call(document.querySelectorAll('input[name=show]'),"
    "function(r){r.addEventListener('change',apply);});\n"
    "function all(open){items.forEach(function(d){if(!d.hidden)d.open=open;});}"
    "\n"
    "document.getElementById('expand').addEventListener('click',"
    "function(){all(true);});\n"
    "document.getElementById('collapse').addEventListener('click',"
    "function(){all(false);});\n"
    "function openHash(){var id=decodeURIComponent(location.hash.slice(1));\n"
    " var d=id&&document.getElementById(id);\n"
    " if(d&&d.tagName==='DETAILS'){d.hidden=false;d.open=true;"
    "d.scrollIntoView();}}\n"
    "window.addEventListener('hashchange',openHash);\n"
    "apply();openHash();\n"
    "document.body.setAttribute('data-ready','1');\n"
    "})();\n";

/* ---- head and totals ------------------------------------------------------
 */

static void head(FILE *f, const detour_report_meta *m) {
  fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">"
        "\n<meta http-equiv=\"Content-Security-Policy\" content=\""
        "default-src 'none'; style-src 'unsafe-inline'; "
        "script-src 'unsafe-inline'; img-src data:\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, "
        "initial-scale=1\">\n<title>",
        f);
  fputs(REP_MUTATED_PREFIX(m), f);
  detour__rep_xml(f, detour__rep_meta_title(m), false);
  fputs(" - detour report</title>\n<style>", f);
  fputs(css, f);
  fputs("</style>\n</head>\n", f);
}

static void meta_item(FILE *f, const char *label, const char *value) {
  if (!value)
    return;
  fprintf(f, "<span>%s: <b>", label);
  detour__rep_xml(f, value, false);
  fputs("</b></span>", f);
}

static void totals(FILE *f, const detour_suite *s) {
  size_t fail = detour__rep_count(s, DETOUR_VERDICT_FAIL) +
                detour__rep_count(s, DETOUR_VERDICT_ERROR);
  fprintf(f,
          "<p class=\"totals\"><span class=\"badge pass\">%zu passed</span> "
          "<span class=\"badge %s\">%zu failed</span>",
          detour__rep_count(s, DETOUR_VERDICT_PASS), fail ? "fail" : "nc",
          fail);
  size_t skip = detour__rep_count(s, DETOUR_VERDICT_SKIP);
  if (skip)
    fprintf(f, " <span class=\"badge skip\">%zu skipped</span>", skip);
  fprintf(f, " <span class=\"dim\">of %zu scenarios</span></p>\n", s->n);
}

static void header(FILE *f, const detour_suite *s,
                   const detour_report_meta *m) {
  fputs("<header>\n<h1>", f);
  fputs(REP_MUTATED_PREFIX(m), f);
  detour__rep_xml(f, detour__rep_meta_title(m), false);
  fputs("</h1>\n", f);
  if (detour__rep_meta_mutated(m)) {
    fputs("<p class=\"banner fail\"><b>Mutated run</b>: the client was "
          "broken on purpose (",
          f);
    for (size_t i = 0; i < m->nmutations; i++) {
      fputs(i ? ", " : "", f);
      detour__rep_xml(f, m->mutations[i], false);
    }
    fputs("); these verdicts prove the suite notices a wrong client, they "
          "are no certificate.</p>\n",
          f);
  }
  fputs("<p class=\"meta\">", f);
  meta_item(f, "client under test", detour__rep_meta_subject(m));
  meta_item(f, "version", detour__rep_meta_version(m));
  meta_item(f, "mode", m ? m->mode : NULL);
  meta_item(f, "started", m ? m->started : NULL);
  meta_item(f, "command", m ? m->command : NULL);
  fputs("</p>\n", f);
  totals(f, s);
  fputs("</header>\n", f);
}

/* ---- certification ---------------------------------------------------------
 */

static void scenario_link(FILE *f, const detour_suite *s, size_t idx) {
  const detour_scenario_result *r = &s->results[idx];
  fprintf(f, "<a href=\"#s-%zu\" class=\"%s\">", idx,
          detour__rep_verdict_css(r->verdict));
  detour__rep_xml(f, r->name, false);
  fputs("</a> ", f);
}

/* Failing scenarios first and always visible; the passing ones fold away
 * behind a count when there are many. */
static void cert_links(FILE *f, const detour_suite *s,
                       const detour_cert_rule *r) {
  for (size_t i = 0; i < r->nscenarios; i++) {
    detour_verdict v = s->results[r->scenarios[i]].verdict;
    if (v == DETOUR_VERDICT_FAIL || v == DETOUR_VERDICT_ERROR)
      scenario_link(f, s, r->scenarios[i]);
  }
  size_t others = r->nscenarios - r->failed;
  bool fold = others > CERT_LINKS_SHOWN;
  if (fold)
    fprintf(f, "<details><summary>%zu more</summary>", others);
  for (size_t i = 0; i < r->nscenarios; i++) {
    detour_verdict v = s->results[r->scenarios[i]].verdict;
    if (v == DETOUR_VERDICT_PASS || v == DETOUR_VERDICT_SKIP)
      scenario_link(f, s, r->scenarios[i]);
  }
  if (fold)
    fputs("</details>", f);
}

/* A rule id as a link to its section of docs/rules.md (with its sentence
 * as the tooltip); other ids as text. */
static void rule_link(FILE *f, const char *id, const detour_report_meta *m) {
  int n = detour__rep_rule_number(id);
  if (!n) {
    detour__rep_xml(f, id, false);
    return;
  }
  fputs("<a class=\"rule\" href=\"", f);
  detour__rep_xml(f, detour__rep_meta_rules_url(m), true);
  fprintf(f, "#r%d\" title=\"", n);
  detour__rep_xml(f, detour__rep_rule_sentence(n), true);
  fputs("\">", f);
  detour__rep_xml(f, id, false);
  fputs("</a>", f);
}

static void cert_row(FILE *f, const detour_suite *s, const detour_cert_rule *r,
                     const detour_report_meta *m) {
  const char *css_class = r->status == DETOUR_CERT_PASS   ? "pass"
                          : r->status == DETOUR_CERT_FAIL ? "fail"
                                                          : "nc";
  fprintf(f, "<tr class=\"%s\"><td>", css_class);
  rule_link(f, r->rule, m);
  fputs("</td><td>", f);
  detour__rep_xml(f, r->title, false);
  int n = detour__rep_rule_number(r->rule);
  if (n) {
    fputs("<div class=\"dim\">", f);
    detour__rep_xml(f, detour__rep_rule_sentence(n), false);
    fputs("</div>", f);
  }
  fprintf(f, "</td><td><span class=\"badge %s\">%s</span></td>", css_class,
          detour_cert_status_name(r->status));
  fprintf(f, "<td>%zu</td><td>%zu</td><td>%zu</td><td>", r->passed, r->failed,
          r->skipped);
  cert_links(f, s, r);
  fputs("</td></tr>\n", f);
}

/* One line for the whole run: FAIL when a scenario failed or could not
 * run, else PASS; then how many rules failed and how many no scenario
 * covered. */
static void overall_verdict(FILE *f, const detour_suite *s,
                            const detour_cert *c, const detour_report_meta *m) {
  size_t failed = 0, uncovered = 0;
  for (size_t i = 0; i < c->n; i++) {
    failed += c->rules[i].status == DETOUR_CERT_FAIL;
    uncovered +=
        i < REP_SPEC_RULES && c->rules[i].status == DETOUR_CERT_NOT_COVERED;
  }
  bool fail = detour__rep_count(s, DETOUR_VERDICT_FAIL) > 0 ||
              detour__rep_count(s, DETOUR_VERDICT_ERROR) > 0 || failed > 0;
  fprintf(f,
          "<p class=\"verdict\">Overall: <span class=\"badge %s\">%s</span> ",
          fail ? "fail" : "pass", fail ? "FAIL" : "PASS");
  if (failed) {
    fprintf(f, "%zu rule%s failed:", failed, failed == 1 ? "" : "s");
    for (size_t i = 0; i < c->n; i++)
      if (c->rules[i].status == DETOUR_CERT_FAIL) {
        fputc(' ', f);
        rule_link(f, c->rules[i].rule, m);
      }
    fputs("; ", f);
  } else if (fail) {
    fputs("a scenario failed or could not run; ", f);
  } else {
    fputs("every scenario that ran passed; ", f);
  }
  fprintf(f, "%zu of %d rules covered", (size_t)REP_SPEC_RULES - uncovered,
          REP_SPEC_RULES);
  if (uncovered) {
    fputs(" (not covered:", f);
    for (size_t i = 0; i < REP_SPEC_RULES && i < c->n; i++)
      if (c->rules[i].status == DETOUR_CERT_NOT_COVERED) {
        fputc(' ', f);
        rule_link(f, c->rules[i].rule, m);
      }
    fputc(')', f);
  }
  fputs(". Rules: <a href=\"", f);
  detour__rep_xml(f, detour__rep_meta_rules_url(m), true);
  fputs("\">docs/rules.md</a>.</p>\n", f);
}

static void cert_section(FILE *f, const detour_suite *s, const detour_cert *c,
                         const detour_report_meta *m) {
  fputs("<section id=\"certification\">\n<h2>Certification by rule</h2>\n", f);
  overall_verdict(f, s, c, m);
  fputs("<table class=\"cert\"><thead><tr><th>rule</th><th>title</th>"
        "<th>result</th><th>passed</th><th>failed</th><th>skipped</th>"
        "<th>scenarios</th></tr></thead>\n<tbody>\n",
        f);
  for (size_t i = 0; i < c->n; i++)
    cert_row(f, s, &c->rules[i], m);
  fputs("</tbody></table>\n</section>\n", f);
}

/* ---- one scenario -----------------------------------------------------------
 */

static void failures(FILE *f, const detour_scenario_result *r) {
  for (size_t i = 0; i < r->nfailures; i++) {
    fputs("<pre class=\"failure\">", f);
    detour__rep_xml(f, r->failures[i], false);
    fputs("</pre>\n", f);
  }
}

static void legend(FILE *f) {
  fputs("<div class=\"legend\">bar = connection, tick = SMTP result, "
        "&#x2715; = TCP connect failed, dashed = retry of the same server, "
        "padlock = TLS up, key = AUTH accepted"
        "<i class=\"k-ok\"></i>OK<i class=\"k-connect\"></i>CONNECT"
        "<i class=\"k-transient\"></i>TRANSIENT<i class=\"k-switch\"></i>SWITCH"
        "<i class=\"k-abort\"></i>ABORT<i class=\"k-none\"></i>no result"
        "</div>\n",
        f);
}

static const char *row_css(const detour_scenario_row *row) {
  static const char *const k[DETOUR_CLASS_COUNT] = {
      "k-ok", "k-connect", "k-transient", "k-switch", "k-abort"};
  return (int)row->cls >= 0 && (int)row->cls < DETOUR_CLASS_COUNT ? k[row->cls]
                                                                  : "";
}

static void td(FILE *f, const char *s) {
  fputs("<td>", f);
  detour__rep_xml(f, s && s[0] ? s : "-", false);
  fputs("</td>", f);
}

/* Fig. 6: date-time, recipient, SMTP server, result; then the class, the
 * attempt and why, which the patent's table leaves to the reader. */
static void log_table(FILE *f, const detour_scenario_result *r) {
  if (r->nrows == 0) {
    fputs("<p class=\"dim\">No log rows.</p>\n", f);
    return;
  }
  fputs("<table class=\"log\"><thead><tr><th>date-time (UTC)</th>"
        "<th>t</th><th>recipient</th><th>SMTP server</th><th>result</th>"
        "<th>class</th><th>attempt</th><th>detail</th></tr></thead><tbody>\n",
        f);
  for (size_t i = 0; i < r->nrows; i++) {
    const detour_scenario_row *row = &r->rows[i];
    char iso[48], t[32];
    detour__rep_iso(r->start + row->t, iso, sizeof iso);
    detour__rep_offset(row->t, t, sizeof t);
    if (strlen(iso) == 24) { /* "2002-07-01 10:15:30.000", as Fig. 6 reads */
      iso[10] = ' ';
      iso[23] = '\0';
    }
    fprintf(f, "<tr class=\"%s\"><td>%s</td><td>+%s</td>", row_css(row), iso,
            t);
    td(f, row->recipient);
    td(f, row->server);
    fputs("<td class=\"r\">", f);
    detour__rep_xml(f, row->result, false);
    fputs("</td>", f);
    td(f, row->cls == DETOUR_CLASS_NONE ? NULL : detour_class_name(row->cls));
    fprintf(f, "<td>%u</td>", row->attempt);
    td(f, row->detail);
    fputs("</tr>\n", f);
  }
  fputs("</tbody></table>\n", f);
}

static void warnings(FILE *f, const detour_scenario_result *r) {
  for (size_t i = 0; i < r->nwarnings; i++) {
    char t[32];
    detour__rep_offset(r->warnings[i].t, t, sizeof t);
    fprintf(f, "<p><span class=\"badge fail\">warning</span> +%s ", t);
    detour__rep_xml(f, r->warnings[i].text, false);
    fputs("</p>\n", f);
  }
}

static void recipients(FILE *f, const detour_scenario_result *r) {
  if (r->nrcpts == 0)
    return;
  fputs("<table><thead><tr><th>message</th><th>recipient</th><th>outcome</th>"
        "<th>server</th><th>detail</th></tr></thead><tbody>\n",
        f);
  for (size_t i = 0; i < r->nrcpts; i++) {
    const detour_scenario_rcpt *rc = &r->rcpts[i];
    fprintf(f, "<tr><td>m%zu</td>", rc->message);
    td(f, rc->recipient);
    td(f, detour_rcpt_outcome_name(rc->outcome));
    td(f, rc->server);
    td(f, rc->detail);
    fputs("</tr>\n", f);
  }
  fputs("</tbody></table>\n", f);
}

/* ---- what each server saw -------------------------------------------------
 */

static void server_commands(FILE *f, const detour_scenario_server *sv) {
  if (sv->ncmds == 0)
    return;
  fputs("<pre>", f);
  for (size_t i = 0; i < sv->ncmds; i++) {
    char t[32];
    detour__rep_offset(sv->cmds[i].t, t, sizeof t);
    fprintf(f, "+%-8s #%u  ", t, sv->cmds[i].conn);
    detour__rep_xml(f, sv->cmds[i].line, false);
    fputc('\n', f);
  }
  fputs("</pre>\n", f);
}

static void server_received(FILE *f, const detour_scenario_received *m) {
  char t[32];
  detour__rep_offset(m->t, t, sizeof t);
  fprintf(f, "<p>message on #%u at +%s, %s, reply %d: from ", m->conn, t,
          m->complete ? "complete" : "incomplete", m->code);
  detour__rep_xml(f, m->from, false);
  fputs(" to", f);
  for (size_t i = 0; i < m->nrcpts; i++) {
    fputc(' ', f);
    detour__rep_xml(f, m->rcpts[i], false);
  }
  fputs("</p><pre>", f);
  size_t n = m->body ? m->body_len : 0;
  detour__rep_xmln(f, m->body, n > BODY_SHOWN ? BODY_SHOWN : n, false);
  if (n > BODY_SHOWN)
    fprintf(f, "\n[... %zu bytes in all]", n);
  fputs("</pre>\n", f);
}

static void server_seen(FILE *f, const detour_scenario_server *sv,
                        const detour_report_meta *m) {
  fputs("<h4>", f);
  detour__rep_xml(f, sv->name, false);
  if (sv->address && !(m && m->deterministic)) {
    fputs(" <span class=\"dim\">", f);
    detour__rep_xml(f, sv->address, false);
    fputs("</span>", f);
  }
  fprintf(f, "</h4>\n<p>%zu connection(s)", sv->nconns);
  for (size_t i = 0; i < sv->nconns; i++) {
    const detour_scenario_conn *c = &sv->conns[i];
    char a[32], b[32];
    detour__rep_offset(c->accept_t, a, sizeof a);
    detour__rep_offset(c->close_t, b, sizeof b);
    fprintf(f, "; #%u +%s .. %s%s", c->id, a,
            c->close_t == DETOUR_NO_DEADLINE ? "" : "+",
            c->close_t == DETOUR_NO_DEADLINE ? "open" : b);
    if (c->closed_by) {
      fputs(" by ", f);
      detour__rep_xml(f, c->closed_by, false);
    }
  }
  fputs("</p>\n", f);
  server_commands(f, sv);
  for (size_t i = 0; i < sv->nmsgs; i++)
    server_received(f, &sv->msgs[i]);
}

static void servers(FILE *f, const detour_scenario_result *r,
                    const detour_report_meta *m) {
  if (r->nservers == 0)
    return;
  fputs("<details><summary>What each server saw</summary>\n", f);
  for (size_t i = 0; i < r->nservers; i++)
    server_seen(f, &r->servers[i], m);
  fputs("</details>\n", f);
}

static void summary_line(FILE *f, const detour_scenario_result *r,
                         const detour_report_meta *m) {
  char end[32];
  detour__rep_offset(r->end_t, end, sizeof end);
  fprintf(f, "<summary><span class=\"badge %s\">%s</span> <b>",
          detour__rep_verdict_css(r->verdict), detour_verdict_name(r->verdict));
  detour__rep_xml(f, r->name, false);
  fputs("</b><span class=\"rules\">", f);
  for (size_t i = 0; i < r->nrules; i++) {
    fputc(' ', f);
    rule_link(f, r->rules[i], m);
  }
  fprintf(f, "</span><span class=\"dim\">%zu rows, ends at +%s", r->nrows, end);
  if (r->nfailures)
    fprintf(f, ", %zu failure(s)", r->nfailures);
  fputs("</span></summary>\n", f);
}

/* What the filter box matches: name, rules, file and description. */
static void search_attr(FILE *f, const detour_scenario_result *r) {
  fputs(" data-search=\"", f);
  detour__rep_xml(f, r->name, true);
  for (size_t i = 0; i < r->nrules; i++) {
    fputc(' ', f);
    detour__rep_xml(f, r->rules[i], true);
  }
  fputc(' ', f);
  detour__rep_xml(f, r->file, true);
  fputc(' ', f);
  detour__rep_xml(f, r->description, true);
  fputc('"', f);
}

/* Open: every failing scenario, and everything in a small run. */
static void scenario(FILE *f, const detour_scenario_result *r, size_t idx,
                     bool open, const detour_report_meta *m) {
  const char *v = detour__rep_verdict_css(r->verdict);
  fprintf(f, "<details class=\"scn %s\" id=\"s-%zu\" data-verdict=\"%s\"", v,
          idx, v);
  search_attr(f, r);
  fputs(open ? " open>\n" : ">\n", f);
  summary_line(f, r, m);
  fputs("<div class=\"body\">\n<p class=\"dim\">", f);
  detour__rep_xml(f, r->description, false);
  if (r->file) {
    fputs(r->description ? " &middot; " : "", f);
    detour__rep_xml(f, r->file, false);
  }
  fprintf(f, " &middot; %s time", r->realtime ? "real" : "virtual");
  if (r->client) {
    fputs(" &middot; client ", f);
    detour__rep_xml(f, r->client, false);
  }
  if (r->exit_code >= 0)
    fprintf(f, " &middot; exit code %d", r->exit_code);
  if (r->mutated)
    fputs(" &middot; <b>mutated</b>", f);
  fputs("</p>\n", f);
  failures(f, r);
  detour__rep_timeline_svg(f, r);
  legend(f);
  warnings(f, r);
  log_table(f, r);
  recipients(f, r);
  servers(f, r, m);
  fputs("</div>\n</details>\n", f);
}

static void controls(FILE *f) {
  fputs("<div class=\"controls\"><input id=\"q\" type=\"search\" "
        "placeholder=\"filter: name, rule, file, text\" "
        "aria-label=\"filter\">"
        "<label><input type=\"radio\" name=\"show\" value=\"all\" checked> "
        "all</label>"
        "<label><input type=\"radio\" name=\"show\" value=\"fail\"> "
        "failed</label>"
        "<label><input type=\"radio\" name=\"show\" value=\"pass\"> "
        "passed</label>"
        "<label><input type=\"radio\" name=\"show\" value=\"skip\"> "
        "skipped</label>"
        "<button id=\"expand\" type=\"button\">expand all</button>"
        "<button id=\"collapse\" type=\"button\">collapse all</button>"
        " <span id=\"count\" class=\"dim\"></span></div>\n",
        f);
}

int detour_report_html(const detour_suite *s, const detour_report_meta *m,
                       FILE *f) {
  if (!s || !f)
    return DETOUR_EINVAL;
  detour_cert cert;
  if (detour_cert_compute(s, &cert) != 0)
    return DETOUR_ENOMEM;
  head(f, m);
  fputs("<body>\n", f);
  header(f, s, m);
  cert_section(f, s, &cert, m);
  fputs("<section id=\"scenarios\">\n<h2>Scenarios</h2>\n", f);
  controls(f);
  for (size_t i = 0; i < s->n; i++) {
    detour_verdict v = s->results[i].verdict;
    bool open = s->n <= OPEN_ALL_UP_TO || v == DETOUR_VERDICT_FAIL ||
                v == DETOUR_VERDICT_ERROR;
    scenario(f, &s->results[i], i, open, m);
  }
  fputs("</section>\n<footer class=\"dim\"><p>detour ", f);
  detour__rep_xml(f, detour__rep_meta_version(m), false);
  fputs(" &middot; rules R1..R13: <a href=\"", f);
  detour__rep_xml(f, detour__rep_meta_rules_url(m), true);
  fputs("\">docs/rules.md</a></p></footer>\n<script>", f);
  fputs(script, f);
  fputs("</script>\n</body>\n</html>\n", f);
  detour_cert_free(&cert);
  return detour__rep_finish(f);
}

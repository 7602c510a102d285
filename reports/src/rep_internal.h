/*
 * detour__rep_internal.h - helpers shared by the report writers: escaping for
 * JSON, XML and HTML (every string from a server or a scenario file is
 * hostile), names, time formatting and small lookups over a result.
 * Not installed; names start with detour__rep_.
 */
#ifndef DETOUR_REP_INTERNAL_H
#define DETOUR_REP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "detour/reports.h"

/* ---- escape.c ---------------------------------------------------------- */

/* Decode one code point at s (n > 0 bytes). Returns the bytes it used
 * (>= 1); an ill-formed sequence (RFC 3629: overlong, surrogate, > U+10FFFF,
 * truncated) gives U+FFFD for its first byte. */
size_t detour__rep_utf8_next(const unsigned char *s, size_t n, uint32_t *cp);
void detour__rep_put_utf8(FILE *f, uint32_t cp);

/* A JSON string with its quotes (RFC 8259); NULL writes null. Controls
 * as \uXXXX, U+2028/U+2029 escaped, ill-formed bytes as U+FFFD. */
void detour__rep_json_str(FILE *f, const char *s);
void detour__rep_json_strn(FILE *f, const char *s, size_t n);

/* Text for XML 1.0 or HTML, safe both in element content and in quoted
 * attribute values: & < > " ' escaped; C0 controls other than TAB, LF, CR
 * (which XML 1.0 cannot carry at all) and DEL shown as the Unicode control
 * pictures (U+2400 + c, U+2421); ill-formed bytes and U+FFFE/U+FFFF as
 * U+FFFD. In attributes (attr) TAB, LF and CR become character references
 * so they survive attribute normalisation; CR always does. NULL writes
 * nothing. */
void detour__rep_xml(FILE *f, const char *s, bool attr);
void detour__rep_xmln(FILE *f, const char *s, size_t n, bool attr);

/* ---- names.c ----------------------------------------------------------- */

const char *detour__rep_verdict_css(detour_verdict v); /* "pass" ... */
/* The rules of docs/rules.md: R1 .. R<REP_SPEC_RULES>. */
#define REP_SPEC_RULES 13
/* The heading of rule R<i> in docs/rules.md, "" when i is not a rule. */
const char *detour__rep_rule_title(int i);
/* The one-sentence description of rule R<i>, "" when i is not a rule. */
const char *detour__rep_rule_sentence(int i);
/* 1..REP_SPEC_RULES when id names a rule ("R3", "r3", "R3.timeout"),
 * else 0. */
int detour__rep_rule_number(const char *id);
/* Where docs/rules.md is (meta->rules_url or "docs/rules.md"); a rule's
 * section is that plus "#r<n>". */
const char *detour__rep_meta_rules_url(const detour_report_meta *m);

/* "2002-07-01T10:15:30.000Z" for an absolute time; "?" when impossible. */
void detour__rep_iso(detour_ms t, char *buf, size_t len);
/* A scenario offset: "0s", "20s", "3m", "3m20s", "1.250s", "1h2m". */
void detour__rep_offset(detour_ms t, char *buf, size_t len);

/* The meta's fields with their defaults. */
const char *detour__rep_meta_title(const detour_report_meta *m);
/* A --mutate run: the client was broken on purpose. */
bool detour__rep_meta_mutated(const detour_report_meta *m);
/* "MUTATED " before every title of a mutated run, else "". */
#define REP_MUTATED_PREFIX(m) (detour__rep_meta_mutated(m) ? "MUTATED " : "")
const char *detour__rep_meta_version(const detour_report_meta *m);
const char *detour__rep_meta_subject(const detour_report_meta *m);

/* One row as a line of the Fig. 6 table (detour_log_format_table: absolute
 * date-time, recipient, server, result, class, attempt), no newline. */
void detour__rep_row_line(const detour_scenario_result *r,
                          const detour_scenario_row *row, char *buf,
                          size_t len);

/* How many of the suite's results have verdict v. */
size_t detour__rep_count(const detour_suite *s, detour_verdict v);

/* ---- timeline.c -------------------------------------------------------- */

/* The timeline of one scenario as an inline SVG element (no xmlns, for
 * an HTML document): one lane per server, each connection a bar coloured
 * by the result the client logged for it, each log row a mark, retries
 * of the same server joined by a dashed "retry +3m" line, message submit
 * and done lines, a labelled time axis. */
void detour__rep_timeline_svg(FILE *f, const detour_scenario_result *r);
/* Write at most max code points of s (escaped for XML), then "…" when
 * it was longer. */
void detour__rep_xml_trunc(FILE *f, const char *s, size_t max);

/* 0 or DETOUR_EIO from the stream's error flag. */
int detour__rep_finish(FILE *f);

#endif /* DETOUR_REP_INTERNAL_H */

/*
 * names.c - the names of every public enum, and the configuration defaults.
 *
 * Each enum has one table of names indexed by its value, with a
 * _Static_assert on the table's size, so that adding a value without a
 * name fails the build. The *_from_name inverses search the same tables
 * (case-insensitive), so a name printed in a log row can always be read
 * back from a configuration or scenario file.
 *
 * detour_config_init() is where the SPEC's numbers live: retry interval and
 * attempt limit from R6 (the patent's example: 3 min, 10 attempts) and the
 * per-state timeouts of R11 (RFC 5321 section 4.5.3.2; connect 30 s).
 */
#include "detour/detour.h"

#include <limits.h>
#include <string.h>
#include <strings.h>

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

/* The name of value v in table t, or "unknown" outside it. */
static const char *name_of(const char *const *t, size_t n, int v) {
  if (v < 0 || (size_t)v >= n)
    return "unknown";
  return t[v];
}

/* The index of name in t (case-insensitive), or -1. */
static int index_of(const char *const *t, size_t n, const char *name) {
  if (!name)
    return -1;
  for (size_t i = 0; i < n; i++)
    if (strcasecmp(t[i], name) == 0)
      return (int)i;
  return -1;
}

static const char *const class_names[] = {"NONE", "CONNECT", "TRANSIENT",
                                          "SWITCH", "ABORT"};
_Static_assert(COUNT_OF(class_names) == DETOUR_CLASS_COUNT,
               "one name per detour_class");

static const char *const stage_names[] = {
    "connect", "greeting", "ehlo", "helo",     "mail", "rcpt",
    "data",    "eod",      "quit", "starttls", "tls",  "auth"};
_Static_assert(COUNT_OF(stage_names) == DETOUR_STAGE_COUNT,
               "one name per detour_stage");

static const char *const condition_names[] = {
    "reply", "connect_refused", "unreachable", "connect_timeout",
    "dns",   "timeout",         "closed",      "malformed",
    "tls",   "no_starttls",     "no_auth"};
_Static_assert(COUNT_OF(condition_names) == DETOUR_COND_COUNT,
               "one name per detour_condition");

static const char *const tls_mode_names[] = {"none", "starttls", "implicit"};
_Static_assert(COUNT_OF(tls_mode_names) == DETOUR_TLS_MODE_IMPLICIT + 1,
               "one name per detour_tls_mode");

#define TLS_NAME_(name, str, msg) str,
#define TLS_MSG_(name, str, msg) msg,
static const char *const tls_failure_names[] = {
    DETOUR_TLS_FAILURE_MAP(TLS_NAME_)};
static const char *const tls_failure_messages[] = {
    DETOUR_TLS_FAILURE_MAP(TLS_MSG_)};
#undef TLS_NAME_
#undef TLS_MSG_
_Static_assert(COUNT_OF(tls_failure_names) == DETOUR_TLS_FAILURE_COUNT,
               "DETOUR_TLS_FAILURE_COUNT matches the map");

static const char *const rule_names[] = {"any", "sender", "recipient", "all"};
_Static_assert(COUNT_OF(rule_names) == DETOUR_RULE_ALL + 1,
               "one name per detour_rule");

static const char *const log_kind_names[] = {
    "connect", "smtp", "warning", "breaker", "race", "tls", "auth"};
_Static_assert(COUNT_OF(log_kind_names) == DETOUR_LOG_KIND_COUNT,
               "one name per detour_log_kind");

static const char *const rcpt_outcome_names[] = {"delivered", "aborted",
                                                 "deferred"};
_Static_assert(COUNT_OF(rcpt_outcome_names) == DETOUR_RCPT_DEFERRED + 1,
               "one name per detour_rcpt_outcome");

static const char *const done_status_names[] = {"delivered", "aborted",
                                                "deferred"};
_Static_assert(COUNT_OF(done_status_names) == DETOUR_DONE_DEFERRED + 1,
               "one name per detour_done_status");

static const char *const action_type_names[] = {
    "connect",     "send", "close", "log",      "warn",
    "rcpt_result", "done", "error", "tls_start"};
_Static_assert(COUNT_OF(action_type_names) == DETOUR_ACT_TLS_START + 1,
               "one name per detour_action_type");

const char *detour_class_name(detour_class cls) {
  return name_of(class_names, COUNT_OF(class_names), (int)cls);
}

int detour_class_from_name(const char *name, detour_class *out) {
  int i = index_of(class_names, COUNT_OF(class_names), name);
  if (i < 0 || !out)
    return DETOUR_EPARSE;
  *out = (detour_class)i;
  return 0;
}

const char *detour_stage_name(detour_stage stage) {
  return name_of(stage_names, COUNT_OF(stage_names), (int)stage);
}

int detour_stage_from_name(const char *name, detour_stage *out) {
  int i = index_of(stage_names, COUNT_OF(stage_names), name);
  /* "eod" is short in log rows; configuration files may spell it out. */
  if (i < 0 && name && strcasecmp(name, "end_of_data") == 0)
    i = DETOUR_STAGE_END_OF_DATA;
  if (i < 0 || !out)
    return DETOUR_EPARSE;
  *out = (detour_stage)i;
  return 0;
}

const char *detour_condition_name(detour_condition cond) {
  return name_of(condition_names, COUNT_OF(condition_names), (int)cond);
}

int detour_condition_from_name(const char *name, detour_condition *out) {
  int i = index_of(condition_names, COUNT_OF(condition_names), name);
  if (i < 0 || !out)
    return DETOUR_EPARSE;
  *out = (detour_condition)i;
  return 0;
}

const char *detour_tls_mode_name(detour_tls_mode m) {
  return name_of(tls_mode_names, COUNT_OF(tls_mode_names), (int)m);
}

int detour_tls_mode_from_name(const char *name, detour_tls_mode *out) {
  int i = index_of(tls_mode_names, COUNT_OF(tls_mode_names), name);
  if (i < 0 || !out)
    return DETOUR_EPARSE;
  *out = (detour_tls_mode)i;
  return 0;
}

const char *detour_tls_failure_name(detour_tls_failure f) {
  return name_of(tls_failure_names, COUNT_OF(tls_failure_names), (int)f);
}

const char *detour_tls_failure_message(detour_tls_failure f) {
  return name_of(tls_failure_messages, COUNT_OF(tls_failure_messages), (int)f);
}

const char *detour_rule_name(detour_rule rule) {
  return name_of(rule_names, COUNT_OF(rule_names), (int)rule);
}

int detour_rule_from_name(const char *name, detour_rule *out) {
  int i = index_of(rule_names, COUNT_OF(rule_names), name);
  if (i < 0 || !out)
    return DETOUR_EPARSE;
  *out = (detour_rule)i;
  return 0;
}

const char *detour_log_kind_name(detour_log_kind kind) {
  return name_of(log_kind_names, COUNT_OF(log_kind_names), (int)kind);
}

const char *detour_rcpt_outcome_name(detour_rcpt_outcome o) {
  return name_of(rcpt_outcome_names, COUNT_OF(rcpt_outcome_names), (int)o);
}

const char *detour_done_status_name(detour_done_status s) {
  return name_of(done_status_names, COUNT_OF(done_status_names), (int)s);
}

const char *detour_action_type_name(detour_action_type t) {
  return name_of(action_type_names, COUNT_OF(action_type_names), (int)t);
}

/* ------------------------------------------------------------------------ */
/* Configuration defaults (R6, R11).                                         */

#define SECONDS(n) ((detour_ms)(n)*1000)
#define MINUTES(n) (SECONDS(n) * 60)

void detour_config_init(detour_config *c) {
  if (!c)
    return;
  memset(c, 0, sizeof *c);
  c->retry_interval = MINUTES(3);
  c->max_attempts = 10;
  c->timeouts.connect = SECONDS(30);
  c->timeouts.greeting = MINUTES(5);
  c->timeouts.ehlo = MINUTES(5);
  c->timeouts.mail = MINUTES(5);
  c->timeouts.rcpt = MINUTES(5);
  c->timeouts.data_start = MINUTES(2);
  c->timeouts.data_block = MINUTES(3);
  c->timeouts.final_dot = MINUTES(10);
  c->timeouts.quit = MINUTES(5);
  c->timeouts.tls = MINUTES(5); /* Postfix smtp_starttls_timeout */
  c->timeouts.auth = MINUTES(5);
  c->block_size = 64 * 1024;
  strcpy(c->helo_name, "localhost");
}

/* The highest priority in the list, 0 when it is empty. */
static int last_priority(const detour_config *c) {
  int last = 0;
  for (size_t i = 0; i < c->nservers; i++)
    if (c->servers[i].priority > last)
      last = c->servers[i].priority;
  return last;
}

int detour_config_add_server(detour_config *c, const char *host, uint16_t port,
                             int priority) {
  if (!c || !host || host[0] == '\0' || port == 0)
    return DETOUR_EINVAL;
  size_t hlen = strlen(host);
  if (hlen >= sizeof c->servers[0].host)
    return DETOUR_EINVAL;
  if (c->nservers >= DETOUR_MAX_SERVERS)
    return DETOUR_ERANGE;
  int last = last_priority(c);
  if (priority <= 0 && last == INT_MAX)
    return DETOUR_ERANGE;
  detour_server *s = &c->servers[c->nservers];
  memset(s, 0, sizeof *s); /* no TLS, no AUTH until the caller says so */
  memcpy(s->host, host, hlen + 1);
  s->port = port;
  s->priority = priority > 0 ? priority : last + 1;
  c->nservers++;
  return 0;
}

/* Stable insertion sort of indices: equal priorities keep the order in
 * which they were configured (R1). */
void detour_config_priority_order(const detour_config *c, size_t *order) {
  for (size_t i = 0; i < c->nservers; i++) {
    size_t j = i;
    for (; j > 0 && c->servers[order[j - 1]].priority > c->servers[i].priority;
         j--)
      order[j] = order[j - 1];
    order[j] = i;
  }
}

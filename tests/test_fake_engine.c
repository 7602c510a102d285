/*
 * test_fake_engine.c - the real engine (detour_engine on the libuv driver)
 * against every entry of the fault catalogue, in virtual time: the class
 * the engine assigned to the primary's failure (SPEC R3) must be the one
 * the catalogue names, the message must end where it should, and the fake
 * servers' records must show it. Then the hostile-server matrix: hostile
 * replies and cuts at every stage; the engine must neither crash (the
 * build runs under ASan+UBSan) nor run past its timeouts.
 */
#include "test_fake_util.h"
#include <strings.h>

/* The catalogue's X-macro list (FAKE_FAULT_LIST). */
#include "../fakeservers/src/fault_list.h"

typedef struct {
  uv_loop_t loop;
  detour_clock *clock;
  detour_fake_server *primary, *backup;
  char primary_name[64];
  detour_engine *engine;
  detour_uv *driver;
  bool done;
  detour_done_status status;
  int first_class; /* the primary's first failure, -1: none logged */
  char first_detail[256];
  int delivered_server; /* priority-order index, -1 none */
  size_t rows;
  char ca_dir[256];  /* run-local CA for the TLS and AUTH entries */
  char warning[512]; /* the first configuration warning */
} run_env;

static void on_log(void *arg, const detour_log_row *row) {
  run_env *r = arg;
  r->rows++;
  if (r->first_class < 0 && row->server &&
      strcmp(row->server, r->primary_name) == 0 &&
      (row->kind == DETOUR_LOG_CONNECT || row->kind == DETOUR_LOG_SMTP)) {
    r->first_class = (int)row->cls;
    snprintf(r->first_detail, sizeof r->first_detail, "%s / %s",
             row->result ? row->result : "", row->detail ? row->detail : "");
  }
}

static void on_warn(void *arg, const char *text) {
  run_env *r = arg;
  if (!r->warning[0])
    snprintf(r->warning, sizeof r->warning, "%s", text);
}

static void on_rcpt(void *arg, size_t message, size_t index,
                    const char *recipient, detour_rcpt_outcome outcome,
                    int server, const char *detail) {
  run_env *r = arg;
  if (outcome == DETOUR_RCPT_DELIVERED)
    r->delivered_server = server;
}

static void on_done(void *arg, size_t message, detour_done_status status) {
  run_env *r = arg;
  r->done = true;
  r->status = status;
}

static bool is_done(void *arg) { return ((run_env *)arg)->done; }

static detour_fake_server *fake(run_env *r, detour_fake_script *s,
                                const char *listen) {
  int err = 0;
  char msg[256];
  detour_fake_server *srv =
      detour_fake_server_new(r->clock, s, listen, 0, &err);
  cr_assert_not_null(srv, "server_new %d", err);
  if (r->ca_dir[0])
    cr_assert_eq(detour_fake_server_set_tls_dir(srv, r->ca_dir), 0);
  cr_assert_eq(detour_fake_server_start(srv, msg, sizeof msg), 0, "%s", msg);
  return srv;
}

static const detour_ms T0 = 1700000000000LL;

/* Longer than drop_mid_data's 64 bytes; one line starts with a dot. */
#define BODY                                                                   \
  "Subject: t\r\n\r\n.dot line\r\n"                                            \
  "0123456789012345678901234567890123456789\r\n"                               \
  "0123456789012345678901234567890123456789\r\n"

/* How the engine meets the primary (SPEC R13): a TLS entry asks for
 * STARTTLS required with the run's CA; an AUTH entry for credentials (the
 * fake's user table is empty, so only the entry decides); auth_required is
 * the client without credentials. */
static void client_side(detour_server *sv, const char *fault,
                        const char *ca_dir) {
  bool tls = strncmp(fault, "starttls_", 9) == 0 ||
             strncmp(fault, "tls_", 4) == 0 || strncmp(fault, "cert_", 5) == 0;
  if (tls) {
    sv->tls = DETOUR_TLS_MODE_STARTTLS;
    snprintf(sv->ca_file, sizeof sv->ca_file, "%s/ca.pem", ca_dir);
  }
  if (strncmp(fault, "auth_", 5) == 0 && strcmp(fault, "auth_required") != 0) {
    strcpy(sv->auth_user, "u");
    strcpy(sv->auth_password, "pw");
  }
}

/* Primary with `fault` (at `stage` unless < 0), healthy backup; one
 * message; run in virtual time. */
static void run_fault(run_env *r, const char *fault, int stage) {
  memset(r, 0, sizeof *r);
  if (strncmp(fault, "starttls_", 9) == 0 || strncmp(fault, "tls_", 4) == 0 ||
      strncmp(fault, "cert_", 5) == 0 || strncmp(fault, "auth_", 5) == 0) {
    char err[256];
    cr_assert_eq(detour_fake_ca_make(r->ca_dir, sizeof r->ca_dir, NULL, 0, err,
                                     sizeof err),
                 0, "%s", err);
  }
  r->first_class = -1;
  r->delivered_server = -1;
  signal(SIGPIPE, SIG_IGN);
  cr_assert_eq(uv_loop_init(&r->loop), 0);
  r->clock = detour_clock_new_virtual(&r->loop, T0);
  detour_fake_script *ps = detour_fake_script_new("primary");
  detour_fake_fault_args a = {.has_stage = stage >= 0,
                              .stage =
                                  (detour_fake_stage)(stage < 0 ? 0 : stage)};
  cr_assert_eq(detour_fake_script_add_fault(ps, fault, &a), 0, "%s", fault);
  detour_fake_script *bs = detour_fake_script_new("backup");
  r->primary = fake(r, ps, "127.0.0.2:0");
  r->backup = fake(r, bs, "127.0.0.3:0");
  detour_fake_script_free(ps);
  detour_fake_script_free(bs);
  snprintf(r->primary_name, sizeof r->primary_name, "127.0.0.2:%u",
           detour_fake_server_port(r->primary));

  detour_config cfg;
  detour_config_init(&cfg);
  cfg.max_attempts = 2;
  detour_config_add_server(&cfg, "127.0.0.2",
                           detour_fake_server_port(r->primary), 1);
  detour_config_add_server(&cfg, "127.0.0.3",
                           detour_fake_server_port(r->backup), 2);
  client_side(&cfg.servers[0], fault, r->ca_dir);
  int err = 0;
  r->engine = detour_engine_new(&cfg, &err);
  cr_assert_not_null(r->engine, "engine %d", err);
  detour_uv_callbacks cb = {.on_log = on_log,
                            .on_warn = on_warn,
                            .on_rcpt = on_rcpt,
                            .on_done = on_done,
                            .arg = r};
  r->driver = detour_uv_new(r->clock, r->engine, &cb);
  cr_assert_not_null(r->driver);
  static const char *rcpts[] = {"rcpt@x.test"};
  static const char body[] = BODY;
  detour_message m = {.from = "from@x.test",
                      .rcpts = rcpts,
                      .nrcpts = 1,
                      .body = body,
                      .body_len = sizeof body - 1};
  cr_assert_geq(detour_uv_submit(r->driver, &m), 0);
  int rc = detour_clock_run_virtual(r->clock, is_done, r, 60000);
  cr_assert_eq(rc, 0, "%s: finished (rc %d) at +%lld ms virtual", fault, rc,
               (long long)(detour_clock_now(r->clock) - T0));
  /* Bound: 2 attempts x (10 min final-dot timeout + 3 min interval), plus
   * the backup: well under an hour of virtual time. */
  cr_assert_lt(detour_clock_now(r->clock) - T0, 3600000,
               "%s: no run past the timeouts", fault);
}

static void run_free(run_env *r) {
  detour_uv_free(r->driver);
  detour_fake_server_free(r->primary);
  detour_fake_server_free(r->backup);
  for (int i = 0; i < 100 && uv_run(&r->loop, UV_RUN_NOWAIT); i++)
    uv_sleep(1);
  detour_engine_free(r->engine);
  detour_clock_free(r->clock);
  uv_run(&r->loop, UV_RUN_DEFAULT);
  cr_assert_eq(uv_loop_close(&r->loop), 0, "the loop closes clean");
  if (r->ca_dir[0])
    detour_fake_ca_remove(r->ca_dir);
}

static size_t complete_messages(const detour_fake_server *s) {
  size_t k = 0;
  for (size_t i = 0; i < detour_fake_server_message_count(s); i++) {
    detour_fake_message m;
    detour_fake_server_message(s, i, &m);
    k += m.complete && m.code / 100 == 2;
  }
  return k;
}

/* ------------------------------------------------------------------------ */
/* Each catalogue entry at its default stage                                 */

static void check_entry(const char *name) {
  const detour_fake_fault_info *fi = detour_fake_fault_find(name);
  cr_assert_not_null(fi);
  run_env r;
  run_fault(&r, name, -1);
  int expected = (int)fi->expected;
  int got = r.first_class < 0 ? DETOUR_CLASS_NONE : r.first_class;
  cr_assert(got == expected || got == fi->tolerated,
            "%s: engine class %s, catalogue says %s (%s)", name,
            detour_class_name((detour_class)got),
            detour_class_name((detour_class)expected), r.first_detail);
  cr_assert_eq(r.status, DETOUR_DONE_DELIVERED, "%s delivered", name);
  size_t np = detour_fake_server_conn_count(r.primary);
  if (fi->expected == DETOUR_CLASS_CONNECT)
    cr_assert_eq(np, 0, "%s: the primary never saw a connection", name);
  else
    cr_assert_geq(np, 1, "%s: the primary saw the connection", name);
  if (got == DETOUR_CLASS_NONE) {
    cr_assert_eq(r.delivered_server, 0, "%s: on the primary", name);
    cr_assert_eq(complete_messages(r.primary), 1);
    detour_fake_message m;
    detour_fake_server_message(r.primary, 0, &m);
    cr_assert_str_eq(m.body, BODY, "the exact body, dot-unstuffed once");
  } else {
    cr_assert_eq(r.delivered_server, 1, "%s: on the backup", name);
    cr_assert_eq(complete_messages(r.backup), 1, "%s", name);
    cr_assert_eq(complete_messages(r.primary), 0, "%s", name);
  }
  if (got == DETOUR_CLASS_TRANSIENT)
    cr_assert_eq(np, 2, "%s: TRANSIENT retries the same server (%zu)", name,
                 np);
  if (got == DETOUR_CLASS_SWITCH)
    cr_assert_eq(np, 1, "%s: SWITCH moves on at once", name);
  run_free(&r);
}

/* R13: the entry's class, and the configuration warning with its reason;
 * nothing but EHLO and STARTTLS reached the primary in clear. */
static void check_tls_entry(const char *name, const char *reason) {
  check_entry(name);
  run_env r;
  run_fault(&r, name, -1);
  if (reason) {
    cr_assert(strstr(r.warning, reason) != NULL, "%s: warning '%s'", name,
              r.warning);
    cr_assert(strstr(r.warning, r.primary_name) != NULL, "%s: names %s", name,
              r.primary_name);
  } else {
    cr_assert(strstr(r.warning, "refused us") == NULL, "%s: no R13 warning: %s",
              name, r.warning);
  }
  /* From the primary's record: before a handshake that completed, the
   * only commands were EHLO and STARTTLS (no AUTH, no MAIL in clear). */
  bool tls_entry = strncmp(name, "auth_", 5) != 0;
  bool inside = false;
  size_t n = detour_fake_server_event_count(r.primary);
  for (size_t i = 0; tls_entry && i < n; i++) {
    detour_fake_event ev;
    cr_assert_eq(detour_fake_server_event(r.primary, i, &ev), 0);
    if (ev.type == DETOUR_FAKE_EV_TLS && strncmp(ev.data, "version=", 8) == 0)
      inside = true;
    if (ev.type == DETOUR_FAKE_EV_COMMAND && !inside)
      cr_assert(strncasecmp(ev.data, "EHLO", 4) == 0 ||
                    strncasecmp(ev.data, "STARTTLS", 8) == 0 ||
                    strncasecmp(ev.data, "QUIT", 4) == 0,
                "%s: '%s' sent in clear", name, ev.data);
  }
  run_free(&r);
}

/* The reason an R13 entry's configuration warning must give (NULL: the
 * entry is TRANSIENT and gives none). */
static const struct {
  const char *name, *reason;
} tls_reasons[] = {
    {"starttls_stripped", "STARTTLS not offered"},
    {"starttls_454", "STARTTLS refused"},
    {"tls_alert", "TLS handshake failed"},
    {"tls_drop", "TLS handshake"},
    {"cert_expired", "certificate expired"},
    {"cert_self_signed", "self-signed certificate"},
    {"cert_wrong_host", "certificate name mismatch"},
    {"cert_unknown_ca", "certificate from an unknown CA"},
    {"tls_old_only", "no TLS version in common"},
    {"starttls_injection", "response injection"},
    {"auth_535", "authentication failed"},
    {"auth_454", NULL},
    {"auth_534", "authentication mechanism too weak"},
    {"auth_required", "authentication required"},
};

/* A TLS/AUTH entry also gets the R13 checks; every entry the class one. */
static void check_catalogue_entry(const char *name) {
  for (size_t i = 0; i < sizeof tls_reasons / sizeof tls_reasons[0]; i++)
    if (strcmp(tls_reasons[i].name, name) == 0) {
      check_tls_entry(name, tls_reasons[i].reason);
      return;
    }
  check_entry(name);
}

/* One test per catalogue entry, generated from the catalogue's own list:
 * an entry added to fakeservers/src/fault_list.h is tested at once. */
#define ENTRY_TEST(n, ...)                                                     \
  Test(engine_vs_fault, n) { check_catalogue_entry(#n); }
FAKE_FAULT_LIST(ENTRY_TEST)
#undef ENTRY_TEST

#define ENTRY_NAME(n, ...) #n,
static const char *const tested[] = {FAKE_FAULT_LIST(ENTRY_NAME)};
#undef ENTRY_NAME

Test(engine_vs_fault, every_entry_has_a_test) {
  /* The list the tests above came from is the catalogue, entry by entry,
   * in order: nothing in the catalogue without a test, nothing tested
   * that the catalogue lacks. */
  size_t n = sizeof tested / sizeof tested[0];
  cr_assert_eq(detour_fake_fault_count(), n, "catalogue %zu, tested %zu",
               detour_fake_fault_count(), n);
  for (size_t i = 0; i < n; i++) {
    const detour_fake_fault_info *fi = detour_fake_fault_at(i);
    cr_assert_not_null(fi);
    cr_assert_str_eq(fi->name, tested[i], "entry %zu", i);
    cr_assert_eq(detour_fake_fault_find(tested[i]), fi);
  }
}

Test(engine_vs_fault, disk_full_at_eod) {
  run_env r;
  run_fault(&r, "disk_full", DETOUR_FAKE_EOD);
  cr_assert_eq(r.first_class, DETOUR_CLASS_SWITCH, "%s", r.first_detail);
  cr_assert_eq(r.delivered_server, 1);
  run_free(&r);
}

/* ------------------------------------------------------------------------ */
/* The hostile matrix: every hostile behaviour at every stage                */

Test(engine_vs_fault, hostile_matrix, .timeout = 600) {
  static const char *const faults[] = {"overlong_line", "endless_multiline",
                                       "garbage_code",  "nul_bytes",
                                       "bare_lf",       "early_reply",
                                       "partial_lines", "stall_after",
                                       "close",         "reset"};
  static const detour_fake_stage stages[] = {
      DETOUR_FAKE_GREETING, DETOUR_FAKE_EHLO, DETOUR_FAKE_MAIL,
      DETOUR_FAKE_RCPT,     DETOUR_FAKE_DATA, DETOUR_FAKE_EOD,
      DETOUR_FAKE_QUIT};
  size_t cells = 0;
  for (size_t f = 0; f < sizeof faults / sizeof faults[0]; f++)
    for (size_t s = 0; s < sizeof stages / sizeof stages[0]; s++) {
      run_env r;
      run_fault(&r, faults[f], (int)stages[s]);
      cr_assert_eq(r.status, DETOUR_DONE_DELIVERED, "%s at %s: delivered",
                   faults[f], detour_fake_stage_name(stages[s]));
      run_free(&r);
      cells++;
    }
  cr_log_info("hostile matrix: %zu cells, no crash, no hang", cells);
}

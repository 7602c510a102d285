/*
 * fake.h - libdetour-fake (target detour::fake): scripted fake SMTP servers
 * on libuv, the fault catalogue, and the recording of what they saw.
 *
 * One libuv loop hosts any number of fake servers, each on its own
 * address:port (any 127.0.0.0/8 address, so a scenario can give every server
 * its own IP). A server's behaviour is a script (detour_fake_script): per
 * stage of the SMTP dialogue the reply, an optional delay, an optional fault
 * (close, reset, stall, drip, raw bytes), with per-connection and
 * per-occurrence sequencing. Scripts come from YAML (fakeservers/README.md
 * documents the format) or from the C API below.
 *
 * A script may also offer STARTTLS (RFC 3207) or implicit TLS (RFC 8314)
 * with certificates from a run-local test CA (detour_fake_ca_make), and
 * AUTH PLAIN/LOGIN (RFC 4954) against a user table; passwords never enter
 * the record.
 *
 * Every timer goes through a detour_clock (detour_uv.h), so the servers run
 * in virtual time next to the engine's driver: "delay 3m before greeting"
 * then takes no real time. The library knows nothing of the engine.
 *
 * Sessions write to peers that may have gone: the application ignores
 * SIGPIPE (libuv does not), as `detour serve` does.
 *
 * Ownership, in one place: every object returned by a _new or _load
 * function belongs to the caller, who frees it with the matching _free.
 * Strings passed in are copied. Pointers inside records stay valid until
 * the server is freed or its record cleared.
 */
#ifndef DETOUR_FAKE_H
#define DETOUR_FAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "detour/detour.h"
#include "detour/detour_uv.h"

#ifdef __cplusplus
extern "C" {
#endif

/* libyaml types, declared so this header does not need <yaml.h>. */
struct yaml_document_s;
struct yaml_node_s;

/* ------------------------------------------------------------------------ */
/* Stages and actions                                                        */

typedef enum {
  DETOUR_FAKE_CONNECT = 0, /* just accepted: only delay and action apply */
  DETOUR_FAKE_GREETING,
  DETOUR_FAKE_EHLO,
  DETOUR_FAKE_HELO,
  DETOUR_FAKE_MAIL,
  DETOUR_FAKE_RCPT,
  DETOUR_FAKE_DATA, /* the DATA command (354) */
  DETOUR_FAKE_BODY, /* receiving the message: after_bytes faults */
  DETOUR_FAKE_EOD,  /* the final "." */
  DETOUR_FAKE_RSET,
  DETOUR_FAKE_NOOP,
  DETOUR_FAKE_QUIT,
  DETOUR_FAKE_UNKNOWN,  /* any other command (VRFY, ...), and STARTTLS or
                           AUTH when the script offers neither */
  DETOUR_FAKE_STARTTLS, /* STARTTLS on a server with tls mode starttls */
  DETOUR_FAKE_AUTH      /* the verdict of an AUTH exchange (after the
                           credentials arrived) on a server with auth */
} detour_fake_stage;
#define DETOUR_FAKE_STAGE_COUNT 15

/* "connect", "greeting", "ehlo", "helo", "mail", "rcpt", "data", "body",
 * "eod", "rset", "noop", "quit", "unknown", "starttls", "auth". Static. */
const char *detour_fake_stage_name(detour_fake_stage stage);
/* Inverse (also "end_of_data"). 0 or DETOUR_EPARSE. */
int detour_fake_stage_from_name(const char *name, detour_fake_stage *out);

/* What a rule does. As `action` (instead of replying) AUTO and CONTINUE
 * mean "reply". As `then` (after the reply is written) AUTO means: close
 * after a 421 and after the reply to QUIT, go on otherwise. */
typedef enum {
  DETOUR_FAKE_ACT_AUTO = 0,
  DETOUR_FAKE_ACT_CONTINUE, /* keep the session going */
  DETOUR_FAKE_ACT_CLOSE,    /* orderly close (FIN) once writes are done */
  DETOUR_FAKE_ACT_RESET,    /* abortive close (RST, SO_LINGER 0) */
  DETOUR_FAKE_ACT_STALL     /* never answer again; keep the socket open */
} detour_fake_action;
const char *detour_fake_action_name(detour_fake_action a);
int detour_fake_action_from_name(const char *name, detour_fake_action *out);

/* ------------------------------------------------------------------------ */
/* Scripts                                                                   */

typedef enum {
  DETOUR_FAKE_MODE_NORMAL = 0, /* listen and run the script */
  DETOUR_FAKE_MODE_REFUSE,     /* bound, not listening: ECONNREFUSED */
  DETOUR_FAKE_MODE_BLACKHOLE   /* listening, backlog 0, accept queue kept
                                  full: SYNs go unanswered */
} detour_fake_mode;

typedef enum {
  DETOUR_FAKE_RECORD_FULL = 0, /* connections, every event, messages */
  DETOUR_FAKE_RECORD_SUMMARY,  /* connections and messages, no events */
  DETOUR_FAKE_RECORD_OFF       /* counters only (benchmarks) */
} detour_fake_record_level;

/* One scripted behaviour. Conditions first (all must match), then what to
 * do. Zero-initialise, then set what you need: a zero rule for a stage
 * means "the default reply of that stage". */
typedef struct {
  detour_fake_stage stage;
  /* conditions */
  unsigned conn_first, conn_last; /* connection numbers (1-based) this rule
                                     applies to; 0/0 = all, last 0 = open */
  unsigned nth_first, nth_last;   /* occurrence of the stage within the
                                     connection (2 = the 2nd RCPT); 0/0 all */
  const char *address;            /* MAIL/RCPT: address pattern, '*' wildcard,
                                     case-insensitive; NULL = any */
  int params; /* MAIL/RCPT: -1 or 0 = any, 1 = only with ESMTP
                 parameters, 2 = only without */
  /* the reply */
  int code;             /* 0 = the stage's default reply */
  const char *enhanced; /* "4.3.1"; NULL = none (default replies have one) */
  const char *text;     /* lines separated by '\n'; NULL = a default text */
  const char *raw;      /* exact bytes sent instead of code/text */
  size_t raw_len;
  const char *append; /* bytes sent right after the reply (hostile:
                         early replies, data after QUIT) */
  size_t append_len;
  bool bare_lf; /* end reply lines with LF instead of CRLF */
  bool endless; /* multi-line reply that never ends: continuation
                   lines every drip_every (1 s if 0), at most
                   DETOUR_FAKE_ENDLESS_MAX */
  /* timing and faults */
  detour_ms delay;           /* before the reply / action */
  size_t drip_bytes;         /* write the reply drip_bytes at a time ... */
  detour_ms drip_every;      /* ... every drip_every ms (0: separate writes
                                at once) ; drip_bytes 0 = one write */
  detour_fake_action action; /* instead of the reply */
  detour_fake_action then;   /* after the reply */
  size_t after_bytes;        /* BODY: act once this many bytes of the
                                message arrived (drop mid-DATA) */
  bool from_fault;           /* set by the catalogue; raises precedence */
} detour_fake_rule;

#define DETOUR_FAKE_ENDLESS_MAX 1000

typedef struct detour_fake_script detour_fake_script;

/* An empty script (every stage answers normally) named `name` (copied;
 * NULL = "fake"). Listens on 127.0.0.1:0. NULL on out of memory. */
detour_fake_script *detour_fake_script_new(const char *name);
void detour_fake_script_free(detour_fake_script *s);
/* A deep copy. NULL on out of memory. */
detour_fake_script *detour_fake_script_clone(const detour_fake_script *s);

const char *detour_fake_script_name(const detour_fake_script *s);
/* "127.0.0.2:2525", "[::1]:0", "127.0.0.3" (port 0). 0 or DETOUR_EINVAL.
 * Any IP may be set; the server refuses non-loopback ones unless asked. */
int detour_fake_script_set_listen(detour_fake_script *s, const char *addr);
const char *detour_fake_script_listen(const detour_fake_script *s);
void detour_fake_script_set_mode(detour_fake_script *s, detour_fake_mode m);
detour_fake_mode detour_fake_script_mode(const detour_fake_script *s);
void detour_fake_script_set_record(detour_fake_script *s,
                                   detour_fake_record_level level);
/* The name in the greeting and EHLO reply ("mx.fake.test"). */
int detour_fake_script_set_hostname(detour_fake_script *s, const char *h);
/* EHLO keywords, replacing the defaults (PIPELINING, 8BITMIME,
 * ENHANCEDSTATUSCODES, SIZE 52428800). n = 0 offers none. */
int detour_fake_script_set_ehlo_keywords(detour_fake_script *s,
                                         const char *const *kw, size_t n);
/* Close sessions idle this long (0 = never, the default). */
void detour_fake_script_set_idle_timeout(detour_fake_script *s, detour_ms t);
/* Keep at most this many bytes of each message body (default 16 MiB).
 * The same as limits.max_body. */
void detour_fake_script_set_max_body(detour_fake_script *s, size_t bytes);

/* ------------------------------------------------------------------------ */
/* TLS and AUTH (fakeservers/README.md, "TLS and AUTH")                      */

typedef enum {
  DETOUR_FAKE_TLS_NONE = 0, /* plaintext only (the default) */
  DETOUR_FAKE_TLS_STARTTLS, /* RFC 3207: STARTTLS in the EHLO reply */
  DETOUR_FAKE_TLS_IMPLICIT  /* RFC 8314: TLS from the first byte (465) */
} detour_fake_tls_mode;

/* The certificates of a run-local test CA (detour_fake_ca_make). */
typedef enum {
  DETOUR_FAKE_CERT_GOOD = 0,    /* signed by the CA, for the hosts asked */
  DETOUR_FAKE_CERT_EXPIRED,     /* as good, but notAfter is in the past */
  DETOUR_FAKE_CERT_SELF_SIGNED, /* the hosts, signed by its own key */
  DETOUR_FAKE_CERT_WRONG_HOST,  /* signed by the CA for wrong.host.invalid */
  DETOUR_FAKE_CERT_UNKNOWN_CA   /* the hosts, signed by a CA not in ca.pem */
} detour_fake_cert;
#define DETOUR_FAKE_CERT_COUNT 5
/* "server", "expired", "self_signed", "wrong_host", "unknown_ca": also the
 * file names in the CA directory (NAME.pem, NAME.key). Static. */
const char *detour_fake_cert_name(detour_fake_cert c);
int detour_fake_cert_from_name(const char *name, detour_fake_cert *out);

/* What the handshake does. */
typedef enum {
  DETOUR_FAKE_TLS_OK = 0, /* complete it */
  DETOUR_FAKE_TLS_ALERT,  /* answer the ClientHello with a fatal
                             handshake_failure alert, then close */
  DETOUR_FAKE_TLS_DROP    /* send half of the first server flight, then
                             close (FIN) in the middle of the handshake */
} detour_fake_tls_handshake;

typedef struct {
  detour_fake_tls_mode mode;
  /* Certificate and key: explicit PEM files, or `serve` from a CA
   * directory (`dir`, else the server's, detour_fake_server_set_tls_dir). */
  const char *cert_file, *key_file;
  const char *dir;
  detour_fake_cert serve;
  bool hide_starttls; /* do not advertise STARTTLS (stripping); STARTTLS
                         is then an unknown command (502) */
  int min_version;    /* TLS1_VERSION (0x0301) .. TLS1_3_VERSION (0x0304);
                         0 = TLS 1.2 */
  int max_version;    /* 0 = the highest the library has */
  detour_fake_tls_handshake handshake;
} detour_fake_tls;

/* SASL mechanisms (bit mask). */
#define DETOUR_FAKE_AUTH_PLAIN 1u
#define DETOUR_FAKE_AUTH_LOGIN 2u

typedef struct {
  unsigned mechanisms; /* 0 = AUTH off; else offered in EHLO */
  bool after_tls;      /* offer AUTH only once TLS is on (else 538 5.7.11) */
  bool required;       /* 530 5.7.0 to MAIL before a successful AUTH */
} detour_fake_auth;

/* Set the script's TLS settings (strings copied). 0, DETOUR_EINVAL or
 * DETOUR_ENOMEM. */
int detour_fake_script_set_tls(detour_fake_script *s, const detour_fake_tls *t);
/* The current settings (pointers valid until the next set or free). */
const detour_fake_tls *detour_fake_script_tls(const detour_fake_script *s);
void detour_fake_script_set_auth(detour_fake_script *s,
                                 const detour_fake_auth *a);
const detour_fake_auth *detour_fake_script_auth(const detour_fake_script *s);
/* Add a user to the AUTH table (copied; a user added twice gets the new
 * password). The password is kept only to be compared: it never enters
 * the record, an event or an error message. 0, DETOUR_EINVAL or
 * DETOUR_ENOMEM. */
int detour_fake_script_add_user(detour_fake_script *s, const char *user,
                                const char *password);
/* Users from a file of "user:password" lines ('#' comments, blank lines
 * skipped). 0, DETOUR_EIO (cannot read: reason in err), DETOUR_EPARSE
 * ("file:line: expected user:password" in err; never the line itself). */
int detour_fake_script_load_users(detour_fake_script *s, const char *path,
                                  char *err, size_t errlen);

/* A run-local test CA, made in directory `dir` (dirlen bytes; created
 * 0700 when missing; when dir is "" a fresh private directory under
 * $TMPDIR or /tmp is made and its path written back into dir). Writes, all
 * mode 0600, with a fresh P-256 key per certificate (keys are never
 * reused between runs and never leave the directory):
 *   ca.pem                    the CA certificate a client trusts
 *   server.pem/.key           DETOUR_FAKE_CERT_GOOD
 *   expired.pem/.key, self_signed.pem/.key, wrong_host.pem/.key,
 *   unknown_ca.pem/.key       the bad ones (detour_fake_cert)
 *   other-ca.pem              the CA unknown_ca.pem is signed by (not
 *                             trusted; for tests that want to check it)
 * hosts: the names the certificates are for (DNS names or IP addresses,
 * as subjectAltName entries); n = 0 means localhost, mx.fake.test, ::1
 * and 127.0.0.1 to 127.0.0.16. Returns 0, or DETOUR_EIO / DETOUR_EINVAL
 * with the reason in err. */
int detour_fake_ca_make(char *dir, size_t dirlen, const char *const *hosts,
                        size_t n, char *err, size_t errlen);
/* "DIR/NAME.pem" (or .key) into out. 0 or DETOUR_ERANGE (too long). */
int detour_fake_ca_file(const char *dir, detour_fake_cert which, bool key,
                        char *out, size_t len);
/* Remove what detour_fake_ca_make wrote into dir, then dir if empty. */
void detour_fake_ca_remove(const char *dir);

/* Pure SASL decoding of the server side of RFC 4954 (what the fake server
 * runs; exposed for fuzzing and tests). An exchange starts with the AUTH
 * command line and goes on with one client line per 334 challenge. */
typedef enum {
  DETOUR_FAKE_SASL_CHALLENGE = 0, /* send "334 " + challenge, read a line */
  DETOUR_FAKE_SASL_DONE,          /* user and password decoded */
  DETOUR_FAKE_SASL_CANCELLED,     /* the client sent "*": 501 5.7.0 */
  DETOUR_FAKE_SASL_BAD_MECH,      /* unknown or not offered: 504 5.5.4 */
  DETOUR_FAKE_SASL_SYNTAX         /* not base64 / bad PLAIN: 501 5.5.2 */
} detour_fake_sasl_status;

#define DETOUR_FAKE_SASL_FIELD_MAX 256
typedef struct {
  unsigned mechanism;    /* DETOUR_FAKE_AUTH_PLAIN or _LOGIN once known */
  int step;              /* challenges sent so far */
  const char *challenge; /* base64 text after "334 " (static) */
  char authzid[DETOUR_FAKE_SASL_FIELD_MAX];
  char user[DETOUR_FAKE_SASL_FIELD_MAX];
  char password[DETOUR_FAKE_SASL_FIELD_MAX]; /* wipe after use */
} detour_fake_sasl;

/* "AUTH PLAIN [initial-response]" / "AUTH LOGIN [initial-response]"
 * (line without CRLF) against the mechanisms offered (bit mask). */
detour_fake_sasl_status detour_fake_sasl_begin(detour_fake_sasl *x,
                                               const char *line, size_t len,
                                               unsigned offered);
/* The client's answer to the last challenge (line without CRLF). */
detour_fake_sasl_status detour_fake_sasl_step(detour_fake_sasl *x,
                                              const char *line, size_t len);
/* Strict RFC 4648 base64 (padding required, no whitespace). Returns the
 * decoded length, or -1 (bad input or more than cap bytes). */
long detour_fake_base64_decode(const char *in, size_t len, unsigned char *out,
                               size_t cap);

/* What one server lets a client make it hold, and what happens at each
 * limit (fakeservers/README.md, "Limits and hostile clients"). Every limit
 * hit is recorded as a DETOUR_FAKE_EV_LIMIT event whose data starts with
 * the limit's key ("max_line: ..."). 0 means the default. */
typedef struct {
  size_t max_line;          /* command line without CRLF (4096): 500 5.5.6, the
                               rest of the line up to its LF discarded */
  size_t max_body;          /* bytes kept of each body (16 MiB): the rest is
                               read and dropped, the message marked truncated */
  size_t max_rcpts;         /* recipients per message (1000): 452 4.5.3 */
  size_t max_sessions;      /* open sessions (20000): a session over it gets
                               421 4.7.0 and is closed */
  size_t max_input;         /* bytes buffered while a reply is in progress
                               (1 MiB): reading pauses until they are used */
  size_t max_output;        /* reply bytes queued for a client that does not
                               read (1 MiB): reading pauses until they drain */
  size_t max_record_events; /* connections, events and messages each kept
                               in memory (1,000,000): later ones are not
                               kept (counters go on) */
  size_t max_record_bytes;  /* bytes of event data and bodies kept in
                               memory (256 MiB): likewise */
} detour_fake_limits;

/* The defaults above. */
void detour_fake_limits_init(detour_fake_limits *l);
/* Set all limits (0 fields: the default). */
void detour_fake_script_set_limits(detour_fake_script *s,
                                   const detour_fake_limits *l);
/* The limits in effect. */
void detour_fake_script_limits(const detour_fake_script *s,
                               detour_fake_limits *out);

/* Add a rule (copied). Which rule applies: among the rules of the stage
 * whose conditions match, the one with the highest precedence, then the
 * first added. Precedence: a connection range counts 2, from_fault 1.
 * Returns 0, DETOUR_EINVAL (bad stage/range) or DETOUR_ENOMEM. */
int detour_fake_script_add_rule(detour_fake_script *s,
                                const detour_fake_rule *r);

/* ------------------------------------------------------------------------ */
/* The fault catalogue                                                       */

/* Parameters of a catalogue entry; zero = the entry's default. */
typedef struct {
  detour_fake_stage stage; /* where it strikes (has_stage) */
  bool has_stage;
  int code; /* overrides the entry's reply code */
  const char *enhanced;
  size_t after_bytes;             /* reset/close at BODY */
  size_t bytes_per_sec;           /* slow */
  size_t chunk;                   /* partial_lines: bytes per write */
  unsigned conn_first, conn_last; /* only these connections */
} detour_fake_fault_args;

typedef struct {
  const char *name;        /* "refuse", "disk_full", ... */
  const char *wire;        /* what the client sees on the wire */
  detour_class expected;   /* the SPEC R3 class a correct client assigns
                              at the default stage (NONE: the message
                              goes through) */
  int tolerated;           /* another class a lenient client may assign,
                              or -1 */
  const char *note;        /* remarks (variants, tolerated behaviour) */
  detour_fake_stage stage; /* default stage */
} detour_fake_fault_info;

size_t detour_fake_fault_count(void);
/* Entry i (0-based), NULL past the end. Static. */
const detour_fake_fault_info *detour_fake_fault_at(size_t i);
/* The entry named `name`, or NULL. */
const detour_fake_fault_info *detour_fake_fault_find(const char *name);

/* Add catalogue entry `name` to s (args may be NULL). Returns 0,
 * DETOUR_ENOT_FOUND (no such entry), DETOUR_EINVAL (stage not allowed for
 * that entry) or DETOUR_ENOMEM. */
int detour_fake_script_add_fault(detour_fake_script *s, const char *name,
                                 const detour_fake_fault_args *args);

/* ------------------------------------------------------------------------ */
/* Loading scripts from YAML (format: fakeservers/README.md)                 */

/* One server script from a mapping node of a libyaml document that the
 * caller parsed (scenario files embed server scripts). `file` only names
 * the file in errors. On error returns NULL and writes
 * "file:line:col: what was expected" into err (errlen bytes). */
detour_fake_script *detour_fake_script_from_yaml(struct yaml_document_s *doc,
                                                 struct yaml_node_s *node,
                                                 const char *file, char *err,
                                                 size_t errlen);

/* Every server of a YAML file: either one server mapping, or a mapping
 * with `servers:` (a sequence of server mappings). Returns a malloc'ed
 * array of *n scripts (free with detour_fake_scripts_free), or NULL with
 * "file:line:col: ..." in err. */
detour_fake_script **detour_fake_load_file(const char *path, size_t *n,
                                           char *err, size_t errlen);
/* The same from a string (`name` for errors). */
detour_fake_script **detour_fake_load_string(const char *yaml, size_t len,
                                             const char *name, size_t *n,
                                             char *err, size_t errlen);
void detour_fake_scripts_free(detour_fake_script **scripts, size_t n);

/* ------------------------------------------------------------------------ */
/* Recording                                                                 */

typedef enum {
  DETOUR_FAKE_BY_NONE = 0,     /* still open */
  DETOUR_FAKE_BY_CLIENT,       /* EOF from the client */
  DETOUR_FAKE_BY_CLIENT_RESET, /* ECONNRESET or a read error */
  DETOUR_FAKE_BY_SERVER,       /* the script closed (FIN) */
  DETOUR_FAKE_BY_SERVER_RESET, /* the script reset (RST) */
  DETOUR_FAKE_BY_STOP,         /* the server was stopped */
  DETOUR_FAKE_BY_IDLE,         /* idle timeout */
  DETOUR_FAKE_BY_NOMEM         /* out of memory: the session was reset */
} detour_fake_closer;
/* "open", "client", "client_reset", "server", "server_reset", "stop",
 * "idle", "nomem". Static. */
const char *detour_fake_closer_name(detour_fake_closer c);

typedef struct {
  unsigned id;           /* connection number on this server, 1-based */
  char peer[64];         /* "127.0.0.1:43210" */
  detour_ms accept_time; /* clock now (virtual or real) */
  uint64_t accept_mono;  /* uv_hrtime() ns */
  detour_ms close_time;  /* DETOUR_NO_DEADLINE while open */
  uint64_t close_mono;
  detour_fake_closer closed_by;
  size_t commands, messages;
  uint64_t bytes_in, bytes_out;
  /* TLS and AUTH, kept at every record level ("" when none happened): */
  char tls_version[12];   /* "TLSv1.3" once a handshake completed */
  char tls_cipher[48];    /* "TLS_AES_256_GCM_SHA384" */
  char auth_mechanism[8]; /* the last AUTH's: "PLAIN", "LOGIN" */
  char auth_user[64];     /* its user (cut to 63 bytes; the event has all) */
  bool auth_ok;           /* it got 235 */
} detour_fake_conn;

typedef struct {
  unsigned conn;  /* connection number */
  size_t index;   /* in this server's message list */
  detour_ms time; /* when the final "." (or the cut) arrived */
  uint64_t mono;
  const char *from;         /* reverse path without <> ("" for null sender) */
  const char *const *rcpts; /* accepted recipients (2xx at RCPT) */
  size_t nrcpts;
  const char *body; /* exact bytes after dot-unstuffing, line ends as
                       sent, without the final ".\r\n"; NUL added.
                       NULL when the body was spooled: see body_file */
  size_t body_len;
  FILE *body_file; /* a streaming server's body over 16 KiB
                      (detour_fake_server_set_streaming), during the
                      MESSAGE event only: the body_len bytes of the
                      body, positioned at 0; else NULL */
  bool complete;   /* false: cut mid-DATA by an after_bytes fault */
  bool truncated;  /* body longer than max_body: the rest dropped */
  int code;        /* reply to the final "." (0: none was sent) */
} detour_fake_message;

typedef enum {
  DETOUR_FAKE_EV_LISTEN = 0, /* server started: data = "ip:port" */
  DETOUR_FAKE_EV_ACCEPT,     /* data = peer */
  DETOUR_FAKE_EV_COMMAND,    /* data = the line, without its line end */
  DETOUR_FAKE_EV_REPLY,      /* data = the exact bytes written */
  DETOUR_FAKE_EV_ACTION,     /* a scripted fault: data = "close", ... */
  DETOUR_FAKE_EV_MESSAGE,    /* message received: see msg */
  DETOUR_FAKE_EV_CLOSE,      /* see closed_by */
  DETOUR_FAKE_EV_STOP,       /* server stopped */
  DETOUR_FAKE_EV_LIMIT,      /* a limit was hit: data = "KEY: what happened"
                                (fakeservers/README.md, "Limits") */
  DETOUR_FAKE_EV_FINDING,    /* the client did something a certification
                                reports: data = "bare LF dot: ..." */
  DETOUR_FAKE_EV_TLS,        /* handshake done: data = "version=TLSv1.3
                                cipher=... sni=... cert=NAME subject=...";
                                or "failed: reason" / "alert sent" /
                                "dropped" */
  DETOUR_FAKE_EV_AUTH        /* AUTH credentials decoded: data =
                                "mechanism=PLAIN user=NAME password=match"
                                (or mismatch / unknown_user); never the
                                password. COMMAND events of an AUTH
                                exchange carry "AUTH PLAIN <redacted>" and
                                "<redacted>" instead of the base64. */
} detour_fake_event_type;
/* "listen", "accept", "command", "reply", "action", "message", "close",
 * "stop", "limit", "finding", "tls", "auth". Static. */
const char *detour_fake_event_name(detour_fake_event_type t);

typedef struct {
  detour_fake_event_type type;
  unsigned conn;  /* 0 for server-level events */
  detour_ms time; /* clock now */
  uint64_t mono;  /* uv_hrtime() ns */
  detour_fake_stage stage;
  int code;         /* REPLY: the reply code, 0 when unparsable */
  const char *data; /* bytes (may hold NULs), NUL-terminated */
  size_t len;
  detour_fake_closer closed_by;   /* CLOSE */
  const detour_fake_message *msg; /* MESSAGE, else NULL */
} detour_fake_event;

/* ------------------------------------------------------------------------ */
/* Servers                                                                   */

typedef struct detour_fake_server detour_fake_server;

/* Observer: called for every event, whatever the record level. Pointers
 * in ev are valid during the call only. */
typedef void (*detour_fake_observer)(void *arg, detour_fake_server *srv,
                                     const detour_fake_event *ev);

/* The CA directory (detour_fake_ca_make) a TLS script without cert files
 * or dir of its own takes its certificate from. Before start. 0 or
 * DETOUR_EINVAL. */
int detour_fake_server_set_tls_dir(detour_fake_server *srv, const char *dir);

/* Serve only clients whose address is `ip` (device mode: the device under
 * test, and nothing else on the network). A connection from any other
 * address is accepted only to be recorded (its ACCEPT, an ACTION event
 * "not the peer") and reset at once, before any reply. NULL serves
 * everyone again. Before start. 0, or DETOUR_EINVAL for a bad address. */
int detour_fake_server_set_only_peer(detour_fake_server *srv, const char *ip);

/* The allocator of libdetour-fake, as nghttp2_mem: every allocation of a
 * script, a server, its sessions and its record goes through one. A
 * failure is never fatal: a script call returns DETOUR_ENOMEM, a session
 * is reset (closed_by NOMEM, stats.nomem) and the server goes on. (The
 * YAML loader and libuv allocate with libc.) */
typedef struct {
  void *user; /* passed to each function */
  void *(*malloc)(size_t size, void *user);
  void *(*calloc)(size_t n, size_t size, void *user);
  void *(*realloc)(void *p, size_t size, void *user);
  void (*free)(void *p, void *user);
} detour_fake_mem;

/* The process-wide allocator (copied; NULL: libc's), used by scripts and
 * by servers created without one. Set it before creating any object and
 * keep it until the last is freed. */
void detour_fake_set_mem(const detour_fake_mem *mem);

/* Let a server listen on a non-loopback address (detour serve --listen). */
#define DETOUR_FAKE_ALLOW_PUBLIC 1u

/* A server running script s (copied) on clock c (and c's loop; borrowed).
 * listen != NULL overrides the script's address. Nothing happens until
 * detour_fake_server_start. Sets *err and returns NULL: DETOUR_EINVAL (bad
 * address, non-loopback without DETOUR_FAKE_ALLOW_PUBLIC), DETOUR_ENOMEM. */
detour_fake_server *detour_fake_server_new(detour_clock *c,
                                           const detour_fake_script *s,
                                           const char *listen, unsigned flags,
                                           int *err);
/* The same, with an allocator of its own (copied; NULL: the process-wide
 * one) for everything the server allocates. */
detour_fake_server *
detour_fake_server_new_mem(detour_clock *c, const detour_fake_script *s,
                           const char *listen, unsigned flags,
                           const detour_fake_mem *mem, int *err);
/* Streaming (for long runs such as detour serve; call before start):
 * keep no record in memory (the getters below see nothing; the observer
 * sees every event), and keep each body in the session's memory up to
 * 16 KiB, beyond that in an unlinked temporary file in spool_dir (NULL:
 * $TMPDIR or /tmp) while it arrives, so that memory does not grow with
 * messages or time. The MESSAGE event of a spooled body carries
 * msg->body_file instead of msg->body. 0 or DETOUR_EINVAL (started). */
int detour_fake_server_set_streaming(detour_fake_server *srv,
                                     const char *spool_dir);
/* Bind (and listen, per mode). Returns 0 or DETOUR_EIO with the reason in
 * err (errlen bytes), e.g. "127.0.0.2:25: address already in use". */
int detour_fake_server_start(detour_fake_server *srv, char *err, size_t errlen);
/* Stop listening and close every session (closed_by STOP). The record
 * stays readable. Run the loop afterwards for the closes to finish. */
void detour_fake_server_stop(detour_fake_server *srv);
/* Stops, then frees srv once its handles are closed (run the loop
 * afterwards; uv_loop_close then succeeds). */
void detour_fake_server_free(detour_fake_server *srv);
/* True when no handle of srv is open (listener or session). */
bool detour_fake_server_idle(const detour_fake_server *srv);

void detour_fake_server_set_observer(detour_fake_server *srv,
                                     detour_fake_observer cb, void *arg);
const char *detour_fake_server_name(const detour_fake_server *srv);
/* The bound address "ip:port" (port resolved when 0 was asked), valid
 * after start; "" before. */
const char *detour_fake_server_address(const detour_fake_server *srv);
uint16_t detour_fake_server_port(const detour_fake_server *srv);
/* The bound IP alone ("127.0.0.2", "::1"). */
const char *detour_fake_server_ip(const detour_fake_server *srv);
detour_clock *detour_fake_server_clock(const detour_fake_server *srv);

/* Counters, kept at every record level. */
typedef struct {
  uint64_t accepted; /* connections accepted */
  uint64_t active;   /* open now */
  uint64_t closed;
  uint64_t messages; /* final "." received */
  uint64_t commands;
  uint64_t bytes_in, bytes_out;
  uint64_t accept_errors; /* accept() failed (EMFILE, ...) */
  uint64_t limits_hit;    /* DETOUR_FAKE_EV_LIMIT events */
  uint64_t findings;      /* DETOUR_FAKE_EV_FINDING events */
  uint64_t nomem;         /* allocations that failed: each ended its
                             session (closed_by NOMEM), refused a
                             connection, or lost a server-level event */
  uint64_t not_kept;      /* record items over max_record_* (not kept) */
  uint64_t paused;        /* times reading was paused (max_input,
                             max_output) */
  int64_t refused;        /* connections refused, when observable; -1 when
                             not (refuse and blackhole modes: the kernel
                             answers or drops, we never see them) */
  uint64_t writes;        /* writes to client sockets (the replies to
                             pipelined commands leave in one) */
} detour_fake_stats;
void detour_fake_server_stats(const detour_fake_server *srv,
                              detour_fake_stats *out);

/* The record. Index-based getters fill *out and return 0, or
 * DETOUR_ERANGE past the end. Pointers inside *out stay valid until the
 * server is freed or detour_fake_server_clear_record is called. */
size_t detour_fake_server_conn_count(const detour_fake_server *srv);
int detour_fake_server_conn(const detour_fake_server *srv, size_t i,
                            detour_fake_conn *out);
size_t detour_fake_server_event_count(const detour_fake_server *srv);
int detour_fake_server_event(const detour_fake_server *srv, size_t i,
                             detour_fake_event *out);
size_t detour_fake_server_message_count(const detour_fake_server *srv);
int detour_fake_server_message(const detour_fake_server *srv, size_t i,
                               detour_fake_message *out);
/* Forget the record (connections still open keep their numbers). */
void detour_fake_server_clear_record(detour_fake_server *srv);

/* One event as one JSON object (a JSON Lines record) with a newline.
 * Bytes >= 0x80 and control bytes are written as \u00XX, so every byte
 * maps to one code point (read back as Latin-1). Returns 0 or DETOUR_EIO. */
int detour_fake_event_write_json(const detour_fake_event *ev,
                                 const char *server, FILE *f);
/* The whole record: every event (FULL), else connections and messages as
 * synthetic events, in time order per kind. 0 or DETOUR_EIO. */
int detour_fake_server_write_jsonl(const detour_fake_server *srv, FILE *f);

/* A record file written as events happen (detour serve --record): each
 * event is formatted whole, then written with one write(2), so a crash or
 * SIGKILL loses at most the event being written and never leaves a cut
 * line. Bodies up to DETOUR_FAKE_SINK_INLINE bytes are inline ("body");
 * longer ones are copied to their own file, named in "body_file":
 * PATH.bodies/SERVER-CONN-INDEX.eml, with "body" absent. */
#define DETOUR_FAKE_SINK_INLINE ((size_t)64 << 10)
typedef struct detour_fake_sink detour_fake_sink;
/* Create (truncate) path. NULL with errno set on failure. */
detour_fake_sink *detour_fake_sink_open(const char *path);
/* 0 or DETOUR_EIO (errno set). */
int detour_fake_sink_write(detour_fake_sink *k, const detour_fake_event *ev,
                           const char *server);
/* Close and free; 0 or DETOUR_EIO when a write or the close failed. */
int detour_fake_sink_close(detour_fake_sink *k);

#ifdef __cplusplus
}
#endif

#endif /* DETOUR_FAKE_H */

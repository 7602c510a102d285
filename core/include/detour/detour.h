/*
 * detour.h - the public API of libdetour (target detour::core).
 *
 * libdetour is the SMTP failover engine of docs/rules.md as a pure
 * ("sans-I/O") state machine plus the pure pieces it is made of: the SMTP
 * reply parser, the failure classification table (R3), the detour
 * permission table (R4) and the send-log formatter (R8).
 *
 * Nothing in this library reads a clock, opens a socket, sleeps or prints.
 * Time is an argument of every entry point (milliseconds; the drivers use
 * milliseconds since the Unix epoch so that log rows carry real dates).
 * Depends on libc only.
 */
#ifndef DETOUR_DETOUR_H
#define DETOUR_DETOUR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DETOUR_VERSION "0.1.0"

/* ------------------------------------------------------------------------ */
/* Errors: one X-macro gives the values, the names and the messages.        */

#define DETOUR_ERRNO_MAP(XX)                                                   \
  XX(NOMEM, -1, "out of memory")                                               \
  XX(INVAL, -2, "invalid argument")                                            \
  XX(PROTO, -3, "SMTP protocol error")                                         \
  XX(LINE_TOO_LONG, -4, "reply line longer than 512 octets")                   \
  XX(CODE_MISMATCH, -5, "multi-line reply with mismatched codes")              \
  XX(BAD_CODE, -6, "reply code is not three digits")                           \
  XX(NUL_BYTE, -7, "NUL byte in reply")                                        \
  XX(TOO_MANY_LINES, -8, "multi-line reply with too many lines")               \
  XX(PARSE, -9, "syntax error")                                                \
  XX(RANGE, -10, "value out of range")                                         \
  XX(NOT_FOUND, -11, "not found")                                              \
  XX(IO, -12, "input/output error")

typedef enum {
#define DETOUR_XX_(name, val, msg) DETOUR_E##name = (val),
  DETOUR_ERRNO_MAP(DETOUR_XX_)
#undef DETOUR_XX_
} detour_error;

/* Message for an error value; "unknown error" for anything else. Static. */
const char *detour_strerror(int err);
/* Name of an error value ("EPROTO"); "EUNKNOWN" for anything else. Static. */
const char *detour_err_name(int err);

/* Wildcard match: '*' matches any run of characters (none included);
 * with DETOUR_GLOB_QMARK '?' matches one; with DETOUR_GLOB_NOCASE letters
 * match ignoring case. NULL pattern or text never matches. */
#define DETOUR_GLOB_NOCASE 1u
#define DETOUR_GLOB_QMARK 2u
bool detour_glob(const char *pattern, const char *text, unsigned flags);

/* Milliseconds. Absolute times are ms since the Unix epoch (or a virtual
 * epoch in the scenario runner); durations are plain ms. */
typedef int64_t detour_ms;
#define DETOUR_NO_DEADLINE ((detour_ms)-1)

/* The longest duration any file or option may give: 30 days. Longer than
 * any sensible retry interval, timeout or scenario (a mail queue gives up
 * after about 5 days), and small enough that a deadline computed from it
 * (now + interval * attempts, attempts <= 10^6) stays far below INT64_MAX
 * and fits a libuv timer: a huge value is refused, never wrapped into a
 * timer that fires at once. */
#define DETOUR_DURATION_MAX ((detour_ms)30 * 24 * 3600 * 1000)

/* Parse a duration (core/src/duration.c, docs/config.md): "500ms", "3s",
 * "1.5s", "3m20s", "1h", or a bare number of seconds ("30"). Returns 0,
 * DETOUR_EPARSE (not a duration) or DETOUR_ERANGE (more than
 * DETOUR_DURATION_MAX); *out is untouched on error. */
int detour_parse_duration(const char *text, detour_ms *out);

/* ------------------------------------------------------------------------ */
/* Failure classes (SPEC R3), SMTP stages and non-reply conditions.          */

typedef enum {
  DETOUR_CLASS_NONE = 0,  /* not a failure */
  DETOUR_CLASS_CONNECT,   /* switch to the next server at once */
  DETOUR_CLASS_TRANSIENT, /* wait the retry interval, same server */
  DETOUR_CLASS_SWITCH,    /* the server cannot serve now: next server */
  DETOUR_CLASS_ABORT      /* retrying cannot help: stop */
} detour_class;
#define DETOUR_CLASS_COUNT 5

/* "NONE", "CONNECT", "TRANSIENT", "SWITCH", "ABORT". Static. */
const char *detour_class_name(detour_class cls);
/* Case-insensitive inverse of detour_class_name. 0 or DETOUR_EPARSE. */
int detour_class_from_name(const char *name, detour_class *out);

typedef enum {
  DETOUR_STAGE_CONNECT = 0, /* TCP connect */
  DETOUR_STAGE_GREETING,    /* the 220 banner */
  DETOUR_STAGE_EHLO,
  DETOUR_STAGE_HELO,
  DETOUR_STAGE_MAIL,
  DETOUR_STAGE_RCPT,
  DETOUR_STAGE_DATA,        /* the DATA command (354 expected) */
  DETOUR_STAGE_END_OF_DATA, /* the reply to the final "." */
  DETOUR_STAGE_QUIT,
  DETOUR_STAGE_STARTTLS, /* the reply to STARTTLS (220 expected) */
  DETOUR_STAGE_TLS,      /* the TLS handshake and certificate check */
  DETOUR_STAGE_AUTH      /* the AUTH exchange (235 expected) */
} detour_stage;
#define DETOUR_STAGE_COUNT 12

/* "connect", "greeting", "ehlo", "helo", "mail", "rcpt", "data", "eod",
 * "quit", "starttls", "tls", "auth". Static. */
const char *detour_stage_name(detour_stage stage);
/* Inverse of detour_stage_name (also accepts "end_of_data"). */
int detour_stage_from_name(const char *name, detour_stage *out);

/* What happened when it was not a reply from the server. */
typedef enum {
  DETOUR_COND_REPLY = 0,       /* a reply: see code / enhanced / text */
  DETOUR_COND_CONNECT_REFUSED, /* ECONNREFUSED */
  DETOUR_COND_UNREACHABLE,     /* EHOSTUNREACH, ENETUNREACH, ... */
  DETOUR_COND_CONNECT_TIMEOUT, /* the TCP handshake did not complete */
  DETOUR_COND_DNS,             /* the name did not resolve */
  DETOUR_COND_TIMEOUT,         /* no (complete) reply within the timeout */
  DETOUR_COND_CLOSED,          /* connection closed or reset mid-session */
  DETOUR_COND_MALFORMED,       /* the reply broke the protocol */
  DETOUR_COND_TLS,             /* TLS handshake or certificate failed, or
                                  plaintext injected after STARTTLS */
  DETOUR_COND_NO_STARTTLS,     /* TLS required, STARTTLS not offered */
  DETOUR_COND_NO_AUTH          /* AUTH configured, no mechanism we speak
                                  (PLAIN, LOGIN) offered */
} detour_condition;
#define DETOUR_COND_COUNT 11

/* "reply", "connect_refused", "unreachable", "connect_timeout", "dns",
 * "timeout", "closed", "malformed", "tls", "no_starttls", "no_auth".
 * Static. */
const char *detour_condition_name(detour_condition cond);
int detour_condition_from_name(const char *name, detour_condition *out);

/* Why TLS failed (SPEC R13): the driver maps its TLS library's verdict to
 * one of these; the engine names it in the log and the warning. */
#define DETOUR_TLS_FAILURE_MAP(XX)                                             \
  XX(HANDSHAKE, "handshake", "TLS handshake failed")                           \
  XX(PROTOCOL_VERSION, "protocol_version",                                     \
     "no TLS version in common (1.2 or later required)")                       \
  XX(CERT_EXPIRED, "cert_expired", "certificate expired")                      \
  XX(CERT_NOT_YET_VALID, "cert_not_yet_valid", "certificate not yet valid")    \
  XX(NAME_MISMATCH, "name_mismatch", "certificate name mismatch")              \
  XX(SELF_SIGNED, "self_signed", "self-signed certificate")                    \
  XX(UNKNOWN_CA, "unknown_ca", "certificate from an unknown CA")               \
  XX(CERT_INVALID, "cert_invalid", "certificate invalid")                      \
  XX(INJECTION, "injection",                                                   \
     "plaintext after the 220 to STARTTLS (response injection)")               \
  XX(LOCAL, "local", "local TLS setup failed")

typedef enum {
#define DETOUR_XX_(name, str, msg) DETOUR_TLS_##name,
  DETOUR_TLS_FAILURE_MAP(DETOUR_XX_)
#undef DETOUR_XX_
} detour_tls_failure;
#define DETOUR_TLS_FAILURE_COUNT 10

/* "handshake", "cert_expired", ... Static. "unknown" outside the enum. */
const char *detour_tls_failure_name(detour_tls_failure f);
/* "certificate expired", ... Static. */
const char *detour_tls_failure_message(detour_tls_failure f);

/* One failure, as the classification table sees it. */
typedef struct {
  detour_stage stage;
  detour_condition cond;
  int code;          /* 3-digit reply code when cond == DETOUR_COND_REPLY */
  char enhanced[16]; /* RFC 3463 code "4.3.1", or "" when none was sent */
  const char *text;  /* reply text (may be NULL) */
} detour_failure;

/* ------------------------------------------------------------------------ */
/* Reply parser (pure).                                                      */

#define DETOUR_REPLY_LINE_MAX 512  /* octets, CRLF included (RFC 5321) */
#define DETOUR_REPLY_LINES_MAX 100 /* lines in one multi-line reply */
#define DETOUR_REPLY_TEXT_MAX 4096 /* text kept; longer text is truncated */

/* One reply line, without its line end. */
typedef struct {
  int code;          /* 100..599 */
  bool last;         /* "250 x" (true) vs "250-x" (false) */
  char enhanced[16]; /* "2.1.0" when the text starts with one, else "" */
  const char *text;  /* points into the parsed line, after code/enhanced */
  size_t text_len;
} detour_reply_line;

/* Parse one line (CRLF or LF already removed). Returns 0, or
 * DETOUR_EBAD_CODE, DETOUR_ENUL_BYTE, DETOUR_ELINE_TOO_LONG, DETOUR_EPROTO
 * (a fourth character that is neither ' ' nor '-', when there is one).
 * "250" alone is a valid last line with empty text. */
int detour_parse_reply_line(const char *line, size_t len,
                            detour_reply_line *out);

/* A complete (possibly multi-line) reply. */
typedef struct {
  int code;
  char enhanced[16];                /* of the first line */
  char text[DETOUR_REPLY_TEXT_MAX]; /* lines' text joined with '\n' */
  size_t nlines;
} detour_reply;

/* Accumulates bytes into replies. Bounded memory: a line is at most
 * DETOUR_REPLY_LINE_MAX octets, a reply at most DETOUR_REPLY_LINES_MAX
 * lines. Lines end in CRLF; a bare LF is accepted as a line end. */
typedef struct {
  char line[DETOUR_REPLY_LINE_MAX + 1];
  size_t line_len;
  detour_reply reply;
  bool in_reply;
  int error; /* sticky: after an error the reader refuses more input */
} detour_reply_reader;

void detour_reply_reader_init(detour_reply_reader *r);

/* Feed up to len bytes. Sets *used to the bytes consumed. Returns 1 when a
 * complete reply is in r->reply (feed the rest, buf + *used, afterwards),
 * 0 when every byte was consumed and no reply is complete yet, or a
 * negative error (sticky; the connection should be given up). */
int detour_reply_reader_feed(detour_reply_reader *r, const char *buf,
                             size_t len, size_t *used);

/* ------------------------------------------------------------------------ */
/* Classification table (SPEC R3): data, not code paths.                     */

typedef struct detour_classify detour_classify;

/* A new table holding the SPEC R3 defaults. NULL on out of memory. */
detour_classify *detour_classify_new_default(void);
void detour_classify_free(detour_classify *t);

/* Add an override that wins over every rule added before it. KEY forms:
 *   "452"  "5xx"  "45x"               a reply code (x = any digit)
 *   "452 4.3.1"  "5xx x.1.x"          code plus enhanced pattern
 *   "rcpt:550"  "greeting:554"        limited to one stage
 *   "timeout"  "closed"  ...          a condition (detour_condition_name)
 *   "rcpt:timeout"                    a condition at one stage
 * Returns 0, or DETOUR_EPARSE with a message in err (errlen bytes). */
int detour_classify_override(detour_classify *t, const char *key,
                             detour_class cls, char *err, size_t errlen);

/* The class of a failure. When warn is not NULL it is set to true when the
 * matching rule asks for a configuration warning (authentication, TLS). */
detour_class detour_classify_failure(const detour_classify *t,
                                     const detour_failure *f, bool *warn);

/* ------------------------------------------------------------------------ */
/* Detour permission table (SPEC R4).                                        */

typedef enum {
  DETOUR_RULE_ANY = 0,   /* sender OR any recipient allowed ([0016]) */
  DETOUR_RULE_SENDER,    /* the sender's entry alone decides */
  DETOUR_RULE_RECIPIENT, /* any recipient allowed (sender ignored) */
  DETOUR_RULE_ALL        /* sender AND every recipient allowed */
} detour_rule;

typedef enum {
  DETOUR_OVERRIDE_NONE = 0, /* use the table */
  DETOUR_OVERRIDE_ALLOW,    /* the sender allows detour for this message */
  DETOUR_OVERRIDE_DENY      /* the sender forbids detour for this message */
} detour_override;

typedef struct detour_policy detour_policy;

/* A table with rule ANY, default allow, no entries. NULL on OOM. */
detour_policy *detour_policy_new(void);
void detour_policy_free(detour_policy *p);
void detour_policy_set_rule(detour_policy *p, detour_rule rule);
void detour_policy_set_default(detour_policy *p, bool allow);
/* Entries: a whole address (case-insensitive) or a pattern with '*'
 * ("*@example.com"). An exact entry wins over patterns; among patterns the
 * longest match wins. Returns 0, DETOUR_EINVAL or DETOUR_ENOMEM. */
int detour_policy_add_sender(detour_policy *p, const char *pattern, bool allow);
int detour_policy_add_recipient(detour_policy *p, const char *pattern,
                                bool allow);
/* The verdict for one address (table entry, else the default). */
bool detour_policy_sender_allowed(const detour_policy *p, const char *addr);
bool detour_policy_recipient_allowed(const detour_policy *p, const char *addr);
/* The per-message decision. p == NULL means "always allowed". */
bool detour_policy_allows(const detour_policy *p, const char *sender,
                          const char *const *rcpts, size_t nrcpts,
                          detour_override ov);
int detour_rule_from_name(const char *name, detour_rule *out);
const char *detour_rule_name(detour_rule rule);

/* ------------------------------------------------------------------------ */
/* Send log rows (SPEC R8).                                                  */

typedef enum {
  DETOUR_LOG_CONNECT = 0, /* a TCP connect that failed */
  DETOUR_LOG_SMTP,        /* an SMTP transaction (its result) */
  DETOUR_LOG_WARNING,     /* "configuration error": limit reached */
  DETOUR_LOG_BREAKER,     /* R12: server skipped / held down */
  DETOUR_LOG_RACE,        /* R12: a racing connect started / lost */
  DETOUR_LOG_TLS,         /* R13: TLS is up (version, cipher) */
  DETOUR_LOG_AUTH         /* R13: AUTH accepted (mechanism, user) */
} detour_log_kind;
#define DETOUR_LOG_KIND_COUNT 7

typedef struct {
  detour_ms time;
  detour_log_kind kind;
  size_t message;        /* index of the message in submission order */
  const char *recipient; /* one recipient per row */
  const char *server;    /* "host:port" as configured */
  const char *address;   /* "ip:port" actually used, "" when none */
  int priority;          /* of the server */
  unsigned attempt;      /* attempt number at this server, 1-based */
  const char *result;    /* "TCP error", "SMTP OK", "SMTP 421 4.3.2 ..." */
  detour_class cls;      /* DETOUR_CLASS_NONE for success */
  const char *detail;    /* why: "connect_refused", "rcpt: 550 5.1.1 ..." */
} detour_log_row;

const char *detour_log_kind_name(detour_log_kind kind);

/* ISO 8601 UTC with milliseconds: "2002-07-01T10:15:30.000Z". Writes at
 * most len bytes, NUL-terminated; returns the length or DETOUR_ERANGE. */
int detour_format_time(detour_ms t, char *buf, size_t len);

/* One row as a line of the Fig. 6 table (date-time, recipient, server,
 * result, then class and attempt), no newline. Returns length written or
 * DETOUR_ERANGE when it did not fit (the output is then truncated). */
int detour_log_format_table(const detour_log_row *row, char *buf, size_t len);
/* The header line matching detour_log_format_table. Static. */
const char *detour_log_table_header(void);
/* One row as one JSON object (a JSON Lines record), no newline. Strings
 * are escaped per RFC 8259. Returns length or DETOUR_ERANGE. */
int detour_log_format_json(const detour_log_row *row, char *buf, size_t len);

/* ------------------------------------------------------------------------ */
/* Message bodies on the wire (RFC 5321 4.5.2).                             */

/* An incremental encoder of a body into its DATA form: every line end (CRLF,
 * bare LF, bare CR) becomes CRLF, a line that starts with "." gets one
 * more, and the end adds CRLF when the last line has none, then ".\r\n".
 * The body may be fed in pieces of any size, so a message of any length
 * goes out in fixed-size blocks. Pure; no allocation. */
typedef struct {
  bool line_start;   /* the next byte starts a line */
  bool after_cr;     /* the last byte was a CR: an LF now belongs to it */
  bool eight_bit;    /* a byte >= 0x80 was seen */
  uint64_t wire_len; /* bytes produced so far (counted when out is NULL) */
} detour_dot_encoder;

void detour_dot_encoder_init(detour_dot_encoder *enc);
/* Encode from in (in_len bytes) into out (out_cap bytes). Each input byte
 * becomes at most 2 output bytes; encoding stops before a byte that would
 * not fit. Returns the input bytes consumed; *out_len gets the bytes
 * written. With out NULL nothing is written and everything is consumed
 * (to measure: enc->wire_len and enc->eight_bit). */
size_t detour_dot_encode(detour_dot_encoder *enc, const char *in, size_t in_len,
                         char *out, size_t out_cap, size_t *out_len);
/* The end of the body: CRLF when the last line is open, then ".\r\n".
 * Writes at most DETOUR_DOT_END_MAX bytes to out (NULL: count only);
 * returns how many. */
#define DETOUR_DOT_END_MAX 5
size_t detour_dot_encode_end(detour_dot_encoder *enc, char *out);

/* A body kept by the caller (a file, a spool) that the engine reads in
 * blocks, from the start again on every attempt, instead of a copy in
 * memory. read_at copies up to len bytes of the body (as given: LF or CRLF
 * line ends, not dot-stuffed) starting at byte off into buf and returns
 * how many (0 only at the end of the body), or a negative detour_error.
 * It is called from inside detour_engine_* calls. A read error during an
 * attempt ends the message: the connection is dropped without the final
 * "." (the server discards the partial body) and every recipient not yet
 * delivered is deferred. */
typedef struct {
  int64_t (*read_at)(void *arg, uint64_t off, char *buf, size_t len);
  void *arg;
} detour_body_source;

/* ------------------------------------------------------------------------ */
/* Allocation (nghttp2_mem style): every allocation of the engine goes      */
/* through these, so a caller can bound, count or fail them.                */

typedef struct {
  void *(*malloc)(size_t size, void *user);
  void *(*realloc)(void *p, size_t size, void *user);
  void *(*calloc)(size_t n, size_t size, void *user);
  void (*free)(void *p, void *user);
  void *user;
} detour_mem;

/* ------------------------------------------------------------------------ */
/* The engine (SPEC R2, R5-R7, R10-R12).                                     */

/* Transport security per server (SPEC R13). */
typedef enum {
  DETOUR_TLS_MODE_NONE = 0, /* plain SMTP */
  DETOUR_TLS_MODE_STARTTLS, /* RFC 3207: upgrade after EHLO */
  DETOUR_TLS_MODE_IMPLICIT  /* RFC 8314: TLS from the first byte (465) */
} detour_tls_mode;
/* "none", "starttls", "implicit". Static. */
const char *detour_tls_mode_name(detour_tls_mode m);
int detour_tls_mode_from_name(const char *name, detour_tls_mode *out);

typedef struct {
  char host[256]; /* IP address or host name, as configured; also the
                     name TLS sends (SNI) and checks the certificate for */
  uint16_t port;
  int priority; /* 1 = normal server, 2 = first backup, ... */
  /* R13. Zero means: no TLS, no AUTH. */
  detour_tls_mode tls;
  bool tls_optional;       /* STARTTLS only when offered (default: TLS is
                              required whenever configured) */
  char ca_file[256];       /* PEM trust anchors; "" = the system store */
  char auth_user[256];     /* "" = no AUTH */
  char auth_password[256]; /* the secret; never logged */
} detour_server;

/* Per-state timeouts (R11; RFC 5321 4.5.3.2 defaults). */
typedef struct {
  detour_ms connect;    /* 30 s */
  detour_ms greeting;   /* 5 min */
  detour_ms ehlo;       /* 5 min (EHLO and HELO) */
  detour_ms mail;       /* 5 min */
  detour_ms rcpt;       /* 5 min */
  detour_ms data_start; /* 2 min: the reply to DATA */
  detour_ms data_block; /* 3 min: each block of the body written */
  detour_ms final_dot;  /* 10 min: the reply to the final "." */
  detour_ms quit;       /* 5 min: the reply to QUIT (mail already sent) */
  detour_ms tls;        /* 5 min: the TLS handshake */
  detour_ms auth;       /* 5 min: each reply of the AUTH exchange */
} detour_timeouts;

#define DETOUR_MAX_SERVERS 64
#define DETOUR_MAX_RECIPIENTS 1000

typedef struct {
  detour_server servers[DETOUR_MAX_SERVERS]; /* any order: sorted by
                                                priority (stable) */
  size_t nservers;
  detour_ms retry_interval; /* R6: 3 min */
  unsigned max_attempts;    /* R6: 10 attempts per server per message */
  detour_timeouts timeouts;
  const detour_classify *classify; /* borrowed; NULL = SPEC defaults */
  const detour_policy *policy;     /* borrowed; NULL = detour allowed */
  char helo_name[256];             /* "localhost" by default */
  bool pipelining;                 /* use PIPELINING when offered */
  detour_ms breaker_hold;          /* R12 circuit breaker, 0 = off */
  detour_ms race_delay;            /* R12 connection racing, 0 = off */
  size_t block_size; /* wire bytes per SEND of a body: 64 KiB; each
                        block has the data_block timeout (R11) */
  /* Every allocation of the engine (copied at detour_engine_new; NULL =
   * libc), except the built-in classification table it makes when
   * classify is NULL (detour_classify_new_default uses libc). */
  const detour_mem *mem;
} detour_config;

/* Fill c with the SPEC defaults and no servers. */
void detour_config_init(detour_config *c);
/* Add a server; priority <= 0 means "after the last one". Returns 0,
 * DETOUR_ERANGE (list full) or DETOUR_EINVAL. The new server is
 * c->servers[c->nservers - 1], without TLS or AUTH: set those fields
 * there. */
int detour_config_add_server(detour_config *c, const char *host, uint16_t port,
                             int priority);
/* The order in which the engine tries the servers: order[k] is the
 * configured index of the k-th (priority ascending; equal priorities keep
 * their configured order). order holds c->nservers entries. */
void detour_config_priority_order(const detour_config *c, size_t *order);

typedef struct {
  const char *from;
  const char *const *rcpts;
  size_t nrcpts;
  const char *body; /* RFC 5322 message, LF or CRLF line ends */
  size_t body_len;
  detour_override override; /* R4 per-send override */
  /* Instead of body/body_len (copied): a body the caller keeps, read in
   * blocks. The struct is copied; its arg must stay valid until the
   * message's DONE action. */
  const detour_body_source *source;
} detour_message;

typedef enum {
  DETOUR_RCPT_DELIVERED = 0, /* accepted by a server (final "." 2xx) */
  DETOUR_RCPT_ABORTED,       /* refused for good (ABORT) */
  DETOUR_RCPT_DEFERRED       /* every allowed retry failed */
} detour_rcpt_outcome;
const char *detour_rcpt_outcome_name(detour_rcpt_outcome o);

typedef enum {
  DETOUR_DONE_DELIVERED = 0, /* every recipient delivered */
  DETOUR_DONE_ABORTED,       /* some refused for good, none deferred */
  DETOUR_DONE_DEFERRED       /* some recipient deferred */
} detour_done_status;
const char *detour_done_status_name(detour_done_status s);

typedef enum {
  DETOUR_ACT_CONNECT = 0, /* open connection conn to host:port */
  DETOUR_ACT_SEND,        /* write bytes on conn (report on_sent) */
  DETOUR_ACT_CLOSE,       /* close conn; no more events for it */
  DETOUR_ACT_LOG,         /* a send-log row */
  DETOUR_ACT_WARN,        /* a warning line for the operator */
  DETOUR_ACT_RCPT_RESULT, /* a recipient's final outcome */
  DETOUR_ACT_DONE,        /* a message is finished */
  DETOUR_ACT_ERROR,       /* the engine failed (out of memory): the
                             actions after it close every connection and
                             finish every message (DEFERRED); then free */
  DETOUR_ACT_TLS_START    /* start TLS (client) on conn: answer with
                             detour_engine_on_tls_up / _on_tls_failed */
} detour_action_type;
const char *detour_action_type_name(detour_action_type t);

/* An action. Every pointer in it stays valid until the next call of any
 * detour_engine_* function on the same engine. */
typedef struct {
  detour_action_type type;
  unsigned conn; /* CONNECT, SEND, CLOSE: the connection id (>= 1) */
  union {
    struct {
      size_t server; /* index in the configured list (cfg->servers) */
      const char *host;
      uint16_t port;
    } connect;
    struct {
      const char *data;
      size_t len;
    } send;
    detour_log_row log;
    struct {
      const char *text;
    } warn;
    struct {
      size_t message;
      size_t index; /* recipient index in the message */
      const char *recipient;
      detour_rcpt_outcome outcome;
      int server;         /* configured index (cfg->servers); -1: none */
      const char *detail; /* the last result for this recipient */
    } rcpt;
    struct {
      size_t message;
      detour_done_status status;
    } done;
    struct {
      int code; /* DETOUR_ENOMEM */
      const char *text;
    } error;
    struct {
      const char *server_name; /* SNI and the name the certificate must
                                  carry (an IP address: no SNI, the
                                  certificate must carry the address) */
      const char *ca_file;     /* "" = the system trust store */
    } tls;
  } u;
} detour_action;

typedef struct detour_engine detour_engine;

/* A new engine. cfg is copied (classify and policy are borrowed and must
 * outlive the engine). Sets *err and returns NULL on failure: DETOUR_EINVAL
 * for no servers or a zero max_attempts, DETOUR_ENOMEM. */
detour_engine *detour_engine_new(const detour_config *cfg, int *err);
void detour_engine_free(detour_engine *e);

/* Servers are named by their index in the configured list, the order of
 * cfg->servers given to detour_engine_new (not the priority order the
 * engine tries them in): CONNECT and RCPT_RESULT actions carry it. */
/* The server at configured index i, or NULL when i is out of range. Owned
 * by the engine, valid for its life. */
const detour_server *detour_engine_server(const detour_engine *e, size_t i);
/* Its label, as log rows and warnings write it: "host:port", or
 * "[v6addr]:port". NULL when i is out of range. Valid for the engine's
 * life. */
const char *detour_engine_server_label(const detour_engine *e, size_t i);

/* Queue a message (copied, except a body source). Messages are sent one
 * after another in submission order; the first starts at once. Returns
 * the message index (>= 0) or DETOUR_EINVAL (no sender, no recipient),
 * DETOUR_ENOMEM (nothing queued), the body source's read error, or the
 * error of an engine that has failed (see DETOUR_ACT_ERROR). */
int detour_engine_submit(detour_engine *e, const detour_message *m,
                         detour_ms now);

/* Pop the next action. Returns 1 and fills *out, or 0 when none. */
int detour_engine_next_action(detour_engine *e, detour_action *out);

/* When the engine wants detour_engine_on_timer next, or
 * DETOUR_NO_DEADLINE. */
detour_ms detour_engine_next_deadline(const detour_engine *e);

/* The SMTP session's state ("greeting", "starttls", "tls", "ehlo_tls",
 * "auth", "mail", ..., "none" before the first session) and, in *from when
 * not NULL, the state it entered this one from: the last move the
 * session made, for tests and for a driver's debug output. Static. */
const char *detour_engine_session_state(const detour_engine *e,
                                        const char **from);

/* True when every submitted message is done and no action is queued
 * (after an ERROR: when every closing action has been popped). */
bool detour_engine_idle(const detour_engine *e);

/* Events. conn is the id from the CONNECT action; events for a connection
 * the engine closed are ignored, and so is every event once the engine
 * has failed (DETOUR_ACT_ERROR). Out of memory inside an event makes the
 * engine fail: it then hands out an ERROR action followed by a CLOSE for
 * every open connection and the outcome of every unfinished message, and
 * allocates nothing more. */
void detour_engine_on_timer(detour_engine *e, detour_ms now);
void detour_engine_on_connected(detour_engine *e, unsigned conn, detour_ms now,
                                const char *address);
void detour_engine_on_connect_failed(detour_engine *e, unsigned conn,
                                     detour_ms now, detour_condition cond,
                                     const char *detail);
void detour_engine_on_data(detour_engine *e, unsigned conn, detour_ms now,
                           const char *buf, size_t len);
/* One SEND action's bytes were all written (handed to the socket): one
 * call per SEND. A body goes out in blocks; each on_sent restarts the
 * data-block timeout for the next block (R11, RFC 5321 4.5.3.2). */
void detour_engine_on_sent(detour_engine *e, unsigned conn, detour_ms now);
/* TLS_START finished: the handshake completed and the certificate was
 * verified. version ("TLSv1.3") and cipher are for the log. From now on
 * on_data carries decrypted bytes and SEND bytes are encrypted. */
void detour_engine_on_tls_up(detour_engine *e, unsigned conn, detour_ms now,
                             const char *version, const char *cipher);
/* TLS_START failed; detail says more (the library's words). */
void detour_engine_on_tls_failed(detour_engine *e, unsigned conn, detour_ms now,
                                 detour_tls_failure why, const char *detail);
/* The peer closed, reset, or a read/write failed. */
void detour_engine_on_closed(detour_engine *e, unsigned conn, detour_ms now,
                             const char *detail);

#ifdef __cplusplus
}
#endif

#endif /* DETOUR_DETOUR_H */

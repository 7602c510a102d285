/*
 * fake_internal.h - what the sources of libdetour-fake share and nobody
 * else sees: the script's inside, rule matching, the record's storage and
 * small helpers. Names here are detour__fake_ (libuv's uv__ habit).
 */
#ifndef DETOUR_FAKE_INTERNAL_H
#define DETOUR_FAKE_INTERNAL_H

#include "detour/fake.h"

#define FAKE_DEFAULT_LISTEN "127.0.0.1:0"
#define FAKE_DEFAULT_HOSTNAME "mx.fake.test"
#define FAKE_DEFAULT_MAX_BODY ((size_t)16 << 20)
#define FAKE_DEFAULT_MAX_LINE ((size_t)4096)
#define FAKE_DEFAULT_MAX_RCPTS ((size_t)1000)
#define FAKE_DEFAULT_MAX_SESSIONS ((size_t)20000)
#define FAKE_DEFAULT_MAX_INPUT ((size_t)1 << 20)
#define FAKE_DEFAULT_MAX_OUTPUT ((size_t)1 << 20)
#define FAKE_DEFAULT_MAX_RECORD_EVENTS ((size_t)1000000)
#define FAKE_DEFAULT_MAX_RECORD_BYTES ((size_t)256 << 20)
/* Streaming: a body stays in the session's memory up to this size and
 * goes to a spool file only beyond (session.c, spool_memory). Bounded
 * like a session's input buffer, far below it. */
#define FAKE_STREAM_INLINE_BODY ((size_t)16 << 10)

/* ------------------------------------------------------------------------ */
/* Allocation (mem.c): every allocation of the library goes through a
 * detour_fake_mem, the process-wide one or a server's. */

const detour_fake_mem *detour__fake_mem_global(void);
void *detour__fake_malloc(const detour_fake_mem *m, size_t n);
void *detour__fake_calloc(const detour_fake_mem *m, size_t n, size_t size);
void *detour__fake_realloc(const detour_fake_mem *m, void *p, size_t n);
void detour__fake_free(const detour_fake_mem *m, void *p);

/* How replies of a stage are written when the rule does not say (the
 * slow, partial_lines and bare_lf faults set it, so that they change the
 * delivery of whatever reply another rule chose). */
typedef struct {
  size_t drip_bytes;
  detour_ms drip_every;
  bool bare_lf;
} detour__fake_style;

/* One AUTH user (strings owned by the script). */
typedef struct {
  char *user, *password;
} detour__fake_user;

struct detour_fake_script {
  char *name;
  char listen[96];
  detour_fake_mode mode;
  detour_fake_record_level record;
  char *hostname;
  char **ehlo_kw;
  size_t n_ehlo;
  detour_ms idle_timeout;
  detour_fake_limits limits; /* every field set (defaults filled in) */
  detour__fake_style style[DETOUR_FAKE_STAGE_COUNT];
  detour_fake_rule *rules; /* strings owned by the script */
  size_t nrules, cap;
  detour_fake_tls tls; /* strings owned by the script */
  detour_fake_auth auth;
  detour__fake_user *users;
  size_t nusers, users_cap;
};

/* What a rule is matched against. */
typedef struct {
  detour_fake_stage stage;
  unsigned conn;       /* connection number */
  unsigned nth;        /* occurrence of the stage in the connection */
  const char *address; /* MAIL/RCPT path, NULL otherwise */
  bool has_params;
} detour__fake_match_ctx;

/* The rule that applies, or NULL for "the stage's default". */
const detour_fake_rule *
detour__fake_script_match(const detour_fake_script *s,
                          const detour__fake_match_ctx *ctx);

/* The code of a stage's default reply (220, 250, 354, 221, 502). */
int detour__fake_default_code(detour_fake_stage stage);

/* Case-insensitive glob with '*' only. */
bool detour__fake_glob(const char *pattern, const char *text);

/* Parse "ip:port", "[v6]:port", "ip" into a sockaddr. 0 or DETOUR_EINVAL. */
int detour__fake_parse_addr(const char *text, struct sockaddr_storage *out);
bool detour__fake_is_loopback(const struct sockaddr *sa);
/* "ip:port" / "[ip]:port" of sa into buf; ip alone into ip (may be NULL). */
void detour__fake_format_addr(const struct sockaddr *sa, char *buf, size_t len,
                              char *ip, size_t iplen);

/* Copies through allocator m (NUL added; NULL stays NULL). */
void *detour__fake_memdup(const detour_fake_mem *m, const void *p, size_t len);
char *detour__fake_strdup(const detour_fake_mem *m, const char *s);

/* ------------------------------------------------------------------------ */
/* Record storage (record.c)                                                 */

typedef struct {
  detour_fake_event ev; /* ev.data owned; ev.msg NULL (index in code) */
  size_t msg_index;     /* MESSAGE: index in msgs */
} detour__fake_event;

typedef struct {
  detour_fake_message m; /* from, rcpts, body owned */
} detour__fake_message;

typedef struct {
  detour_fake_record_level level;
  bool keep; /* false: streaming, nothing kept */
  const detour_fake_mem *mem;
  size_t max_items, max_bytes; /* max_record_events, max_record_bytes */
  size_t bytes;                /* event data and bodies kept */
  uint64_t not_kept;           /* items refused by the limits */
  bool limit_noted;            /* the LIMIT event was emitted */
  detour_fake_conn *conns;     /* conns[i].id is not i+1 after a clear */
  size_t nconns, conns_cap;
  detour__fake_event *events;
  size_t nevents, events_cap;
  detour__fake_message *msgs;
  size_t nmsgs, msgs_cap;
} detour__fake_record;

void detour__fake_record_init(detour__fake_record *r,
                              detour_fake_record_level level,
                              const detour_fake_mem *mem,
                              const detour_fake_limits *lim);
void detour__fake_record_clear(detour__fake_record *r);
/* Append; return the stored copy's index, -1 when not kept (level,
 * streaming, limits) or FAKE_REC_NOMEM. Copies every string. */
#define FAKE_REC_NOMEM (-2)
long detour__fake_record_conn(detour__fake_record *r,
                              const detour_fake_conn *c);
detour_fake_conn *detour__fake_record_conn_at(detour__fake_record *r,
                                              long index);
long detour__fake_record_event(detour__fake_record *r,
                               const detour_fake_event *ev);
long detour__fake_record_message(detour__fake_record *r,
                                 const detour_fake_message *m);
/* True once an item was refused by a limit (and not yet said so). */
bool detour__fake_record_limit_hit(detour__fake_record *r);

/* ------------------------------------------------------------------------ */
/* Servers and sessions (server.c, session.c)                                */

typedef struct detour__fake_session detour__fake_session;

struct detour_fake_server {
  detour_fake_mem mem; /* everything below is allocated with it */
  detour_clock *clock;
  uv_loop_t *loop;
  detour_fake_script *script; /* our own copy */
  struct sockaddr_storage want;
  char address[96], ip[64];
  uint16_t port;
  uv_tcp_t listener; /* NORMAL mode */
  bool listener_open;
  int raw_fd, filler_fd; /* REFUSE / BLACKHOLE modes */
  bool started, stopped, freeing;
  uv_tcp_t reject; /* takes and resets a connection we have no memory for */
  bool reject_busy, reject_pending;
  detour__fake_session *sessions; /* doubly linked, newest first */
  unsigned next_conn;
  unsigned queue_id;   /* for "queued as" texts */
  unsigned generation; /* bumped by clear_record */
  detour__fake_record rec;
  bool streaming;  /* detour_fake_server_set_streaming */
  char *spool_dir; /* streaming: where bodies are spooled */
  detour_fake_stats stats;
  detour_fake_observer obs;
  void *obs_arg;
  struct ssl_ctx_st *tls_ctx; /* made at start when the script has TLS */
  char *tls_dir;              /* detour_fake_server_set_tls_dir */
  char only_peer[64];         /* detour_fake_server_set_only_peer, or "" */
  char tls_cert[256];         /* "expired subject=/O=.../CN=..." */
};

/* Stamp ev with the clock and uv_hrtime, record it, tell the observer.
 * False when the record ran out of memory (the caller's session ends). */
bool detour__fake_emit(detour_fake_server *srv, detour_fake_event *ev);
/* Accept one pending connection into a new session. */
void detour__fake_session_accept(detour_fake_server *srv);
/* Close a session because the server stops (closed_by STOP). */
void detour__fake_session_stop(detour__fake_session *s);
detour__fake_session *detour__fake_session_next(detour__fake_session *s);
/* A session or the listener finished closing: free srv if it was asked. */
void detour__fake_server_maybe_free(detour_fake_server *srv);

/* ------------------------------------------------------------------------ */
/* TLS (tls.c): OpenSSL through memory BIOs                                  */

typedef struct detour__fake_tls detour__fake_tls;
struct ssl_ctx_st;

/* The server context of s's TLS settings (certificate from the script's
 * files or CA directory, else from server_dir); desc gets the name of the
 * certificate served. NULL with the reason in err. */
struct ssl_ctx_st *detour__fake_tls_ctx_new(const detour_fake_script *s,
                                            const char *server_dir, char *desc,
                                            size_t dlen, char *err,
                                            size_t errlen);
void detour__fake_tls_ctx_free(struct ssl_ctx_st *ctx);
/* A server-side TLS session on memory BIOs, allocated from mem. NULL on
 * out of memory. */
detour__fake_tls *detour__fake_tls_new(struct ssl_ctx_st *ctx,
                                       const detour_fake_mem *mem);
void detour__fake_tls_free(detour__fake_tls *t);
/* Ciphertext from the peer. false on out of memory. */
bool detour__fake_tls_push(detour__fake_tls *t, const void *p, size_t n);
/* 1 done, 0 needs more input, -1 failed (detour__fake_tls_error). */
int detour__fake_tls_handshake(detour__fake_tls *t);
bool detour__fake_tls_established(const detour__fake_tls *t);
/* "TLSv1.3", "TLS_AES_256_GCM_SHA384" (after the handshake). */
const char *detour__fake_tls_version(const detour__fake_tls *t);
const char *detour__fake_tls_cipher(const detour__fake_tls *t);
/* Plaintext: > 0 bytes, 0 nothing yet, -1 close_notify, -2 error. */
long detour__fake_tls_read(detour__fake_tls *t, char *buf, size_t cap);
/* Encrypt plaintext into the outgoing BIO. false on failure. */
bool detour__fake_tls_write(detour__fake_tls *t, const void *p, size_t n);
/* Ciphertext waiting to be written, and taking it. */
size_t detour__fake_tls_pending(detour__fake_tls *t);
size_t detour__fake_tls_pull(detour__fake_tls *t, char *buf, size_t cap);
/* Queue close_notify (once, after a completed handshake). */
void detour__fake_tls_close_notify(detour__fake_tls *t);
const char *detour__fake_tls_error(const detour__fake_tls *t);
/* "version=TLSv1.3 cipher=... sni=... cert=CERT" */
void detour__fake_tls_describe(const detour__fake_tls *t, const char *cert,
                               char *buf, size_t len);

/* The user's password, or NULL (auth.c's table lookup in script.c). */
const char *detour__fake_script_password(const detour_fake_script *s,
                                         const char *user);

#endif /* DETOUR_FAKE_INTERNAL_H */

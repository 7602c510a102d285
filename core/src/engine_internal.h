/*
 * engine_internal.h - the engine's state, shared by engine.c (messages,
 * server choice, retries: SPEC R4-R7, R10, R12), engine_session.c (one
 * SMTP dialogue: R2, R3, R11) and engine_body.c (the body in blocks).
 * Internal to libdetour.
 */
#ifndef DETOUR_ENGINE_INTERNAL_H
#define DETOUR_ENGINE_INTERNAL_H

#include "detour/detour.h"
#include "engine_queue.h"

#define ENGINE_MAX_CONNS 8
#define ENGINE_MAX_EXPECT (DETOUR_MAX_RECIPIENTS + 2)

/* A recipient of the active message. */
typedef enum {
  RCPT_PENDING = 0, /* still to be delivered */
  RCPT_IN_TXN,      /* accepted by RCPT in the current session */
  RCPT_DELIVERED,
  RCPT_ABORTED,
  RCPT_DEFERRED,
  RCPT_DUPLICATE /* same address earlier in the list: shares its fate */
} rcpt_state;

typedef struct {
  char *addr;
  rcpt_state state;
  size_t dup_of;           /* for RCPT_DUPLICATE */
  bool row_this_session;   /* a log row was written in this session */
  detour_class last_class; /* of its last failure */
  int server;              /* where it was delivered, -1 if nowhere */
  char detail[256];        /* its last result */
  bool reported;           /* its RCPT_RESULT action was queued */
} engine_rcpt;

typedef struct {
  size_t index;
  char *from;
  engine_rcpt *rcpts;
  size_t nrcpts;
  char *body; /* the engine's copy, as given (unless has_source) */
  size_t body_len;
  bool has_source;           /* the body is read from source instead */
  detour_body_source source; /* the caller's */
  uint64_t raw_len;          /* of the body as given, measured at submit */
  uint64_t wire_len;         /* of the DATA form, final ".\r\n" included */
  bool eight_bit;
  detour_override override;
} engine_message;

/* The SMTP dialogue of the one session in progress: one state per reply
 * (or write) the session waits for. engine_session.c holds the per-state
 * name, timeout and stage in one table indexed by this enum, and moves
 * between states only through its enter_state(). */
typedef enum {
  SESSION_NONE = 0,
  SESSION_GREETING, /* connected, the 220 banner expected */
  SESSION_EHLO,
  SESSION_HELO,
  SESSION_STARTTLS, /* STARTTLS sent, its 220 expected */
  SESSION_TLS,      /* the driver runs the TLS handshake */
  SESSION_EHLO_TLS, /* EHLO again inside TLS (RFC 3207 4.2) */
  SESSION_AUTH,     /* the AUTH exchange (RFC 4954) */
  SESSION_MAIL,     /* the reply to MAIL expected (oldest unanswered) */
  SESSION_RCPT,
  SESSION_DATA, /* the reply to DATA (354) expected */
  SESSION_BODY, /* the body being written (data-block timeout) */
  SESSION_DOT,  /* body written, the reply to the final "." expected */
  SESSION_DONE
} session_state;
#define SESSION_STATE_COUNT (SESSION_DONE + 1)

/* One reply the session waits for, in order (PIPELINING sends several
 * commands at once). */
typedef struct {
  detour_stage stage;
  size_t rcpt; /* for DETOUR_STAGE_RCPT */
} engine_expect;

typedef enum {
  CONN_FREE = 0,
  CONN_CONNECTING,
  CONN_SESSION,
  CONN_QUITTING /* QUIT sent; close on its reply, on EOF or timeout */
} conn_role;

typedef struct {
  unsigned id;
  conn_role role;
  size_t server;
  detour_ms deadline;
} engine_conn;

/* How far the body of the active message has gone out in this session. */
typedef struct {
  uint64_t off;           /* body bytes encoded so far */
  detour_dot_encoder enc; /* line state across blocks */
  bool done;              /* the final ".\r\n" is in a block sent */
} engine_body_cursor;

/* What a session event led to. The session never decides what comes
 * after it: engine.c reads this and applies R5-R7 and R12. */
typedef struct {
  bool over;         /* the session ended (QUIT sent or connection closed) */
  bool trip_breaker; /* a CONNECT or SWITCH failure at this server (R12) */
  bool worked;       /* a message was accepted here: clear the breaker */
  bool give_up;      /* the body could not be read: finish the message */
  bool warn;         /* a failure whose rule asks for the configuration
                        warning; the first one's words follow */
  char warn_reason[64];
  char warn_detail[256];
} session_outcome;

typedef struct {
  session_state state;
  session_state from; /* the state before the last enter_state() */
  engine_conn *conn;
  size_t server;
  char address[80]; /* ip:port actually used */
  detour_reply_reader reader;
  engine_expect *expect; /* ring of ENGINE_MAX_EXPECT */
  size_t expect_head, expect_count;
  unsigned sends_outstanding; /* SEND actions not yet reported sent */
  bool cap_size, cap_8bitmime, cap_pipelining;
  bool cap_starttls, cap_auth_plain, cap_auth_login;
  bool tls_up;        /* the handshake completed on this connection */
  bool tls_started;   /* the TLS_START action was emitted */
  bool auth_login;    /* AUTH LOGIN (else PLAIN) */
  unsigned auth_step; /* LOGIN: 0 command, 1 user, 2 password sent */
  bool pipelined;     /* this transaction was sent as one group */
  size_t rcpt_cursor; /* next recipient to send RCPT for (not pipelined) */
  size_t accepted;    /* recipients in RCPT_IN_TXN */
  engine_body_cursor body;
  session_outcome out; /* filled during one entry point, then returned */
} engine_session;

/* Per-message retry bookkeeping (R6, R7). */
typedef struct {
  unsigned attempts[DETOUR_MAX_SERVERS];
  bool exhausted[DETOUR_MAX_SERVERS];
  bool auth_warned[DETOUR_MAX_SERVERS];
  bool detour_allowed;
  size_t current; /* server of the attempt in progress / last one */
  bool waiting;   /* waiting the retry interval */
  detour_ms wait_until;
  size_t wait_server; /* where to connect when the wait ends */
  detour_ms race_at;  /* R12: start a racing connect then, or NO_DEADLINE */
} engine_round;

struct detour_engine {
  detour_mem mem;                       /* every allocation goes here */
  detour_config cfg;                    /* servers sorted by priority */
  detour_classify *own_classify;        /* built-in table when cfg had none */
  char labels[DETOUR_MAX_SERVERS][280]; /* "host:port" */
  /* Servers are tried in priority order (cfg.servers is sorted); the
   * public API names them by their configured index. */
  size_t configured[DETOUR_MAX_SERVERS];    /* sorted index -> configured */
  size_t sorted[DETOUR_MAX_SERVERS];        /* configured index -> sorted */
  detour_ms hold_until[DETOUR_MAX_SERVERS]; /* R12 breaker */

  engine_message *messages; /* FIFO of messages not yet finished */
  size_t nmessages, cap_messages, next_index;
  engine_message *active; /* messages[0] while one is in progress */

  engine_round round;
  engine_session session;
  engine_conn conns[ENGINE_MAX_CONNS];
  unsigned next_conn_id;

  engine_queue queue;

  /* Body blocks (engine_body.c): the wire block being sent and the body
   * bytes it is encoded from. */
  char *block; /* cfg.block_size bytes */
  char *raw;   /* raw_cap bytes */
  size_t raw_cap;

  /* Out of memory (DETOUR_ACT_ERROR): once failed, nothing more is
   * allocated; detour_engine_next_action hands out the error, a CLOSE per
   * open connection and every unfinished message's outcome. */
  int failed;          /* 0, or the error */
  bool error_reported; /* the ERROR action was handed out */
  size_t swept;        /* messages whose outcome was handed out */
};

/* engine.c, used by engine_session.c: actions only, no decisions. */
void detour__engine_log(detour_engine *e, detour_ms now, detour_log_kind kind,
                        const engine_rcpt *r, size_t server,
                        const char *address, const char *result,
                        detour_class cls, const char *detail);
bool detour__engine_push(detour_engine *e, const detour_action *a);
void detour__engine_send(detour_engine *e, unsigned conn, const char *data,
                         size_t len);
void detour__engine_close_conn(detour_engine *e, engine_conn *c);
void detour__engine_rcpt_final(detour_engine *e, size_t index,
                               detour_rcpt_outcome outcome);

/* engine_session.c: each entry point returns what happened; engine.c acts
 * on it. */
session_outcome detour__session_begin(detour_engine *e, engine_conn *c,
                                      detour_ms now, const char *address);
session_outcome detour__session_on_data(detour_engine *e, detour_ms now,
                                        const char *buf, size_t len);
session_outcome detour__session_on_sent(detour_engine *e, detour_ms now);
session_outcome detour__session_on_closed(detour_engine *e, detour_ms now,
                                          const char *detail);
session_outcome detour__session_on_timeout(detour_engine *e, detour_ms now);
session_outcome detour__session_on_tls_up(detour_engine *e, detour_ms now,
                                          const char *version,
                                          const char *cipher);
session_outcome detour__session_on_tls_failed(detour_engine *e, detour_ms now,
                                              detour_tls_failure why,
                                              const char *detail);
/* "greeting", "rcpt", ...: the name of a state. Static. */
const char *detour__session_state_name(session_state st);

/* engine_body.c */
/* Set m->wire_len and m->eight_bit, reading the whole body once. Returns 0
 * or the body source's error. */
int detour__body_measure(detour_engine *e, engine_message *m);
void detour__body_cursor_init(engine_body_cursor *c);
/* The next block of m's wire body into e->block: its length, 0 when the
 * whole body (final ".\r\n" included) has been handed out, or the body
 * source's negative error. */
int64_t detour__body_next_block(detour_engine *e, const engine_message *m,
                                engine_body_cursor *c);

#endif

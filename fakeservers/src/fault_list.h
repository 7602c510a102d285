/*
 * fault_list.h - the fault catalogue as one X-macro list, so that the
 * catalogue (faults.c) and every list derived from it (the engine test of
 * each entry, tests/test_fake_engine.c) come from the same lines: a new
 * entry is tested the moment it is added, and cannot be forgotten.
 *
 * FAKE_FAULT_LIST(X) calls, per entry in catalogue order,
 *   X(name, wire, expected, tolerated, note, stage, stages, expand)
 * name: an identifier (also the entry's string name); expected, tolerated:
 * a detour_class suffix (CONNECT, ...) or NO_CLASS; stage: a
 * detour_fake_stage suffix (GREETING, ...); stages: the mask of the
 * stages an entry may strike, from the FAULT_* masks below (0: fixed
 * stage); expand: the expander in faults.c.
 *
 * The masks are defined here so the list is self-contained; a user that
 * only wants the names can ignore every argument but the first.
 */
#ifndef DETOUR_FAKE_FAULT_LIST_H
#define DETOUR_FAKE_FAULT_LIST_H

#define FAULT_BIT(s) (1u << (DETOUR_FAKE_##s))
#define FAULT_REPLYING                                                         \
  (FAULT_BIT(GREETING) | FAULT_BIT(EHLO) | FAULT_BIT(HELO) | FAULT_BIT(MAIL) | \
   FAULT_BIT(RCPT) | FAULT_BIT(DATA) | FAULT_BIT(EOD) | FAULT_BIT(RSET) |      \
   FAULT_BIT(NOOP) | FAULT_BIT(QUIT) | FAULT_BIT(UNKNOWN))
#define FAULT_ANY_STAGE (FAULT_REPLYING | FAULT_BIT(CONNECT) | FAULT_BIT(BODY))

/* clang-format off */
#define FAKE_FAULT_LIST(X)                                                     \
  X(refuse, "nothing listens: connect() fails with ECONNREFUSED (RST)",        \
    CONNECT, NO_CLASS, "the port stays bound so port 0 gets a number",         \
    CONNECT, 0, x_refuse)                                                      \
  X(blackhole, "SYNs unanswered: the client's connect times out",              \
    CONNECT, NO_CLASS,                                                         \
    "backlog 0 listener whose accept queue holds our own connection",          \
    CONNECT, 0, x_blackhole)                                                   \
  X(silent, "accepts, never greets", TRANSIENT, NO_CLASS,                      \
    "= stall_after at greeting", GREETING, 0, x_stall)                         \
  X(stall_after, "stops answering at the stage (no reply, stays open)",        \
    TRANSIENT, NO_CLASS, "at quit the mail is already accepted: NONE", MAIL,   \
    FAULT_ANY_STAGE, x_stall)                                                  \
  X(close, "closes (FIN) instead of replying at the stage", TRANSIENT,         \
    NO_CLASS,                                                                  \
    "connect: right after accept; body: after after_bytes bytes; quit: NONE",  \
    CONNECT, FAULT_ANY_STAGE, x_close)                                         \
  X(reset, "resets (RST) instead of replying at the stage", TRANSIENT,         \
    CONNECT,                                                                   \
    "as close, with SO_LINGER 0; at connect the RST may reach the client "     \
    "before its connect() completes, which then fails with ECONNRESET",        \
    CONNECT, FAULT_ANY_STAGE, x_reset)                                         \
  X(drop_mid_data, "RST after after_bytes (64) bytes of the message",          \
    TRANSIENT, NO_CLASS, "= reset at body", BODY, 0, x_drop_mid_data)          \
  X(greeting_421, "421 4.3.2 greeting, then close", SWITCH, NO_CLASS, "",      \
    GREETING, 0, x_greeting_421)                                               \
  X(greeting_554, "554 5.3.2 greeting, 503 to all but QUIT", SWITCH, NO_CLASS, \
    "RFC 5321 3.1", GREETING, 0, x_greeting_554)                               \
  X(disk_full, "452 4.3.1 at RCPT (or MAIL); 552 5.3.1 at eod", SWITCH,        \
    NO_CLASS, "", RCPT,                                                        \
    FAULT_BIT(MAIL) | FAULT_BIT(RCPT) | FAULT_BIT(EOD), x_disk_full)           \
  X(unsupported, "555 5.5.4 (or code 504) to MAIL with parameters", SWITCH,    \
    NO_CLASS, "only commands that carry ESMTP parameters", MAIL,               \
    FAULT_BIT(MAIL) | FAULT_BIT(RCPT), x_unsupported)                          \
  X(busy, "450 4.2.1 at RCPT; 451 4.3.0 at MAIL, DATA or eod", TRANSIENT,      \
    NO_CLASS, "", RCPT,                                                        \
    FAULT_BIT(MAIL) | FAULT_BIT(RCPT) | FAULT_BIT(DATA) | FAULT_BIT(EOD),      \
    x_busy)                                                                    \
  X(slow, "every reply dripped at bytes_per_sec (10 B/s)", NONE, TRANSIENT,    \
    "TRANSIENT only when the drip outlasts a timeout", GREETING,               \
    FAULT_ANY_STAGE, x_slow)                                                   \
  X(partial_lines,                                                             \
    "every reply split into chunk-byte (5) writes 1 ms apart", NONE,           \
    NO_CLASS, "", GREETING, FAULT_ANY_STAGE, x_partial_lines)                  \
  X(bare_lf, "reply lines end in LF, not CRLF", NONE, TRANSIENT,               \
    "a strict client may call it malformed", GREETING, FAULT_ANY_STAGE,        \
    x_bare_lf)                                                                 \
  X(overlong_line, "a 2000-octet reply line (RFC 5321 limit: 512)",            \
    TRANSIENT, NO_CLASS, "malformed reply", GREETING, FAULT_REPLYING,          \
    x_overlong)                                                                \
  X(endless_multiline,                                                         \
    "a multi-line reply that never ends: '220-' lines every 100 ms",           \
    TRANSIENT, NO_CLASS, "too many lines or timeout; stops after 1000 lines",  \
    GREETING, FAULT_REPLYING, x_endless)                                       \
  X(garbage_code, "a reply line without a numeric code", TRANSIENT, NO_CLASS,  \
    "malformed reply", GREETING, FAULT_REPLYING, x_garbage)                    \
  X(nul_bytes, "NUL bytes inside the reply line", TRANSIENT, NO_CLASS,         \
    "malformed reply", GREETING, FAULT_REPLYING, x_nul)                        \
  X(early_reply, "an extra 250 reply sent before the next command",            \
    TRANSIENT, NONE,                                                           \
    "a client that reads replies in step may desync and still succeed",        \
    GREETING, FAULT_REPLYING, x_early_reply)                                   \
  X(data_after_quit, "bytes after the 221 reply to QUIT, then close", NONE,    \
    NO_CLASS, "the message was already accepted", QUIT, 0, x_after_quit)      \
  FAKE_FAULT_LIST_TLS(X)

/* TLS and AUTH (rule R13, docs/rules.md): SWITCH with the configuration
 * warning for a client that requires TLS or holds credentials; 454 to AUTH
 * TRANSIENT. */
#define FAKE_FAULT_LIST_TLS(X)                                                 \
  X(starttls_stripped,                                                         \
    "STARTTLS missing from the EHLO reply (stripping); STARTTLS gets 502",     \
    SWITCH, NO_CLASS,                                                          \
    "a client that requires TLS sends neither AUTH nor MAIL in clear", EHLO,   \
    0, x_starttls_stripped)                                                    \
  X(starttls_454, "454 4.7.0 to STARTTLS", SWITCH, NO_CLASS,                   \
    "TLS required: configuration warning", STARTTLS, 0, x_starttls_454)        \
  X(tls_alert, "fatal handshake_failure alert to the ClientHello, close",      \
    SWITCH, NO_CLASS, "handshake failure", STARTTLS, 0, x_tls_alert)           \
  X(tls_drop, "half of the server's first flight, then FIN", SWITCH,           \
    NO_CLASS, "handshake failure", STARTTLS, 0, x_tls_drop)                    \
  X(cert_expired, "a certificate whose notAfter is in the past", SWITCH,       \
    NO_CLASS, "certificate failure", STARTTLS, 0, x_cert_expired)              \
  X(cert_self_signed, "a self-signed certificate", SWITCH, NO_CLASS,           \
    "certificate failure", STARTTLS, 0, x_cert_self_signed)                    \
  X(cert_wrong_host, "a certificate for wrong.host.invalid only", SWITCH,      \
    NO_CLASS, "certificate failure", STARTTLS, 0, x_cert_wrong_host)           \
  X(cert_unknown_ca, "a certificate signed by a CA the client lacks", SWITCH,  \
    NO_CLASS, "certificate failure", STARTTLS, 0, x_cert_unknown_ca)           \
  X(tls_old_only, "TLS 1.0 and 1.1 only (protocol_version alert to 1.2+)",     \
    SWITCH, NO_CLASS, "handshake failure", STARTTLS, 0, x_tls_old_only)        \
  X(starttls_injection,                                                        \
    "220 to STARTTLS and a plaintext '250' in the same segment "               \
    "(CVE-2011-0411)",                                                         \
    SWITCH, NONE,                                                              \
    "a client that discards pre-handshake bytes and goes on is also "          \
    "correct (NONE); one that reads the 250 as a reply is not",                \
    STARTTLS, 0, x_starttls_injection)                                         \
  X(auth_535, "535 5.7.8 to AUTH (bad credentials)", SWITCH, NO_CLASS,         \
    "authentication failed: configuration warning", AUTH, 0, x_auth_535)       \
  X(auth_454, "454 4.7.0 to AUTH (temporary)", TRANSIENT, NO_CLASS, "", AUTH,  \
    0, x_auth_454)                                                             \
  X(auth_534, "534 5.7.9 to AUTH (mechanism too weak)", SWITCH, NO_CLASS,      \
    "authentication failed: configuration warning", AUTH, 0, x_auth_534)       \
  X(auth_required, "530 5.7.0 to MAIL before a successful AUTH", SWITCH,       \
    NO_CLASS, "a client without credentials", MAIL, 0, x_auth_required)
/* clang-format on */

#endif /* DETOUR_FAKE_FAULT_LIST_H */

/*
 * uv_tls.h - TLS for the libuv driver (internal to detour::uv).
 *
 * One TLS client object per connection, over two memory BIOs: the driver
 * keeps its libuv read/write path and moves ciphertext in and out of the
 * object; there is no second event loop and no socket in here. The only
 * policy is the SPEC R13 floor: TLS 1.2 or later, the certificate checked
 * against the configured CA file or the system store and against the
 * configured host name.
 */
#ifndef DETOUR_UV_TLS_H
#define DETOUR_UV_TLS_H

#include <stddef.h>
#include <sys/types.h>

#include "detour/detour.h"

typedef struct detour__tls_contexts detour__tls_contexts;
typedef struct detour__tls detour__tls;

/* A cache of TLS contexts, one per CA file (loading the system store
 * costs milliseconds; a driver pays it once). */
detour__tls_contexts *detour__tls_contexts_new(void);
void detour__tls_contexts_free(detour__tls_contexts *c);

/* A client for server_name (SNI and the name the certificate must carry;
 * an IP address is checked as an address and sends no SNI), trusting
 * ca_file ("" = the system store). NULL on failure with *why and detail
 * filled (a CA file that does not load is DETOUR_TLS_LOCAL). */
detour__tls *detour__tls_new(detour__tls_contexts *c, const char *server_name,
                             const char *ca_file, detour_tls_failure *why,
                             char *detail, size_t detail_len);
void detour__tls_free(detour__tls *t);

/* Ciphertext received from the peer. Returns 0 or -1 (out of memory). */
int detour__tls_feed(detour__tls *t, const char *data, size_t len);

/* Drive the handshake: 1 done (verified), 0 needs more input, -1 failed
 * with *why and detail. Output to send is then in detour__tls_take. */
int detour__tls_handshake(detour__tls *t, detour_tls_failure *why, char *detail,
                          size_t detail_len);

/* Decrypted bytes: > 0 bytes read, 0 nothing more for now, -1 the TLS
 * session ended (close_notify or an error; detail says which). */
ssize_t detour__tls_read(detour__tls *t, char *buf, size_t len, char *detail,
                         size_t detail_len);

/* Encrypt len bytes. Returns 0 or -1 (detail filled). */
int detour__tls_write(detour__tls *t, const char *data, size_t len,
                      char *detail, size_t detail_len);

/* Ciphertext waiting to go to the peer: its size, and a copy of up to len
 * bytes (removed from the object). */
size_t detour__tls_pending(detour__tls *t);
size_t detour__tls_take(detour__tls *t, char *buf, size_t len);

/* "TLSv1.3" and the cipher suite name, once the handshake is done. */
const char *detour__tls_version(const detour__tls *t);
const char *detour__tls_cipher(const detour__tls *t);

#endif

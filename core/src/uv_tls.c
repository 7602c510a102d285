/*
 * uv_tls.c - OpenSSL 3 through memory BIOs for the libuv driver.
 *
 * Why memory BIOs: the driver owns the socket and its libuv read/write
 * path (and, in the scenario runner, a virtual clock that must see every
 * byte); letting OpenSSL touch the socket would need a second loop or
 * blocking calls. Here OpenSSL only ever reads what the driver fed into
 * the read BIO and writes into the write BIO, which the driver drains to
 * the socket.
 *
 * What is checked (SPEC R13): TLS 1.2 or later; the peer's chain against
 * the configured CA file or the system store; the configured host name
 * (X509_VERIFY_PARAM_set1_host, no partial wildcards) or, for an IP
 * address, the address. The verdict is mapped to a detour_tls_failure so
 * that the engine can name the reason (certificate expired, name
 * mismatch, unknown CA, ...) without knowing OpenSSL.
 */
#include "uv_tls.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define MAX_CONTEXTS 8

struct detour__tls_contexts {
  struct {
    char *ca_file;
    SSL_CTX *ctx;
  } entry[MAX_CONTEXTS];
  size_t n;
};

struct detour__tls {
  SSL *ssl;
  BIO *rbio; /* ciphertext from the peer; owned by ssl */
  BIO *wbio; /* ciphertext to the peer; owned by ssl */
};

/* The library's last error as text, and clear the queue. */
static void take_error(const char *what, char *detail, size_t len) {
  unsigned long e = ERR_get_error();
  char buf[200] = "";
  if (e)
    ERR_error_string_n(e, buf, sizeof buf);
  snprintf(detail, len, "%s%s%s", what, *buf ? ": " : "", buf);
  ERR_clear_error();
}

detour__tls_contexts *detour__tls_contexts_new(void) {
  return calloc(1, sizeof(detour__tls_contexts));
}

void detour__tls_contexts_free(detour__tls_contexts *c) {
  if (!c)
    return;
  for (size_t i = 0; i < c->n; i++) {
    SSL_CTX_free(c->entry[i].ctx);
    free(c->entry[i].ca_file);
  }
  free(c);
}

static SSL_CTX *make_context(const char *ca_file, char *detail, size_t len) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) {
    take_error("SSL_CTX_new", detail, len);
    return NULL;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  int ok = *ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
                    : SSL_CTX_set_default_verify_paths(ctx);
  if (!ok) {
    char what[300];
    snprintf(what, sizeof what, "cannot load CA file %s",
             *ca_file ? ca_file : "(system store)");
    take_error(what, detail, len);
    SSL_CTX_free(ctx);
    return NULL;
  }
  return ctx;
}

static SSL_CTX *context_for(detour__tls_contexts *c, const char *ca_file,
                            char *detail, size_t len) {
  for (size_t i = 0; i < c->n; i++)
    if (strcmp(c->entry[i].ca_file, ca_file) == 0)
      return c->entry[i].ctx;
  SSL_CTX *ctx = make_context(ca_file, detail, len);
  if (!ctx || c->n == MAX_CONTEXTS)
    return ctx; /* not cached: the caller's SSL keeps a reference */
  char *copy = strdup(ca_file);
  if (!copy)
    return ctx;
  c->entry[c->n].ca_file = copy;
  c->entry[c->n].ctx = ctx;
  c->n++;
  return ctx;
}

static bool is_cached(const detour__tls_contexts *c, const SSL_CTX *ctx) {
  for (size_t i = 0; i < c->n; i++)
    if (c->entry[i].ctx == ctx)
      return true;
  return false;
}

static bool is_ip_address(const char *host) {
  unsigned char buf[16];
  return inet_pton(AF_INET, host, buf) == 1 ||
         inet_pton(AF_INET6, host, buf) == 1;
}

/* Which name the certificate must carry, and SNI for a host name. */
static int set_peer_name(SSL *ssl, const char *name) {
  X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
  if (is_ip_address(name))
    return X509_VERIFY_PARAM_set1_ip_asc(param, name);
  X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  return X509_VERIFY_PARAM_set1_host(param, name, 0) &&
         SSL_set_tlsext_host_name(ssl, name);
}

detour__tls *detour__tls_new(detour__tls_contexts *c, const char *server_name,
                             const char *ca_file, detour_tls_failure *why,
                             char *detail, size_t detail_len) {
  *why = DETOUR_TLS_LOCAL;
  SSL_CTX *ctx = context_for(c, ca_file ? ca_file : "", detail, detail_len);
  if (!ctx)
    return NULL;
  detour__tls *t = calloc(1, sizeof *t);
  SSL *ssl = t ? SSL_new(ctx) : NULL;
  if (!is_cached(c, ctx))
    SSL_CTX_free(ctx); /* the SSL holds its own reference */
  BIO *rbio = BIO_new(BIO_s_mem()), *wbio = BIO_new(BIO_s_mem());
  if (!t || !ssl || !rbio || !wbio) {
    take_error("out of memory", detail, detail_len);
    BIO_free(rbio);
    BIO_free(wbio);
    SSL_free(ssl);
    free(t);
    return NULL;
  }
  /* an empty read BIO means "wait for more", not end of stream */
  BIO_set_mem_eof_return(rbio, -1);
  SSL_set_bio(ssl, rbio, wbio);
  t->ssl = ssl;
  t->rbio = rbio;
  t->wbio = wbio;
  if (!set_peer_name(ssl, server_name)) {
    take_error("cannot set the server name", detail, detail_len);
    detour__tls_free(t);
    return NULL;
  }
  SSL_set_connect_state(ssl);
  return t;
}

void detour__tls_free(detour__tls *t) {
  if (!t)
    return;
  SSL_free(t->ssl); /* frees both BIOs */
  free(t);
}

int detour__tls_feed(detour__tls *t, const char *data, size_t len) {
  while (len > 0) {
    size_t n = len > INT32_MAX ? INT32_MAX : len;
    int w = BIO_write(t->rbio, data, (int)n);
    if (w <= 0)
      return -1;
    data += w;
    len -= (size_t)w;
  }
  return 0;
}

/* OpenSSL's verification verdict, as SPEC R13 names reasons. */
static detour_tls_failure verify_failure(long v) {
  switch (v) {
  case X509_V_ERR_CERT_HAS_EXPIRED:
    return DETOUR_TLS_CERT_EXPIRED;
  case X509_V_ERR_CERT_NOT_YET_VALID:
    return DETOUR_TLS_CERT_NOT_YET_VALID;
  case X509_V_ERR_HOSTNAME_MISMATCH:
  case X509_V_ERR_IP_ADDRESS_MISMATCH:
    return DETOUR_TLS_NAME_MISMATCH;
  case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
  case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    return DETOUR_TLS_SELF_SIGNED;
  case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
  case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
  case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    return DETOUR_TLS_UNKNOWN_CA;
  default:
    return DETOUR_TLS_CERT_INVALID;
  }
}

/* A handshake error that is not a certificate verdict. */
static detour_tls_failure handshake_failure(unsigned long e) {
  switch (ERR_GET_REASON(e)) {
  case SSL_R_UNSUPPORTED_PROTOCOL:
  case SSL_R_NO_PROTOCOLS_AVAILABLE:
  case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
  case SSL_R_WRONG_SSL_VERSION:
  case SSL_R_VERSION_TOO_LOW:
    return DETOUR_TLS_PROTOCOL_VERSION;
  default:
    return DETOUR_TLS_HANDSHAKE;
  }
}

int detour__tls_handshake(detour__tls *t, detour_tls_failure *why, char *detail,
                          size_t detail_len) {
  ERR_clear_error();
  int rc = SSL_do_handshake(t->ssl);
  if (rc == 1)
    return 1;
  int err = SSL_get_error(t->ssl, rc);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
    return 0;
  long v = SSL_get_verify_result(t->ssl);
  if (v != X509_V_OK) {
    *why = verify_failure(v);
    snprintf(detail, detail_len, "%s", X509_verify_cert_error_string(v));
    ERR_clear_error();
    return -1;
  }
  *why = handshake_failure(ERR_peek_error());
  take_error("handshake", detail, detail_len);
  return -1;
}

ssize_t detour__tls_read(detour__tls *t, char *buf, size_t len, char *detail,
                         size_t detail_len) {
  ERR_clear_error();
  int n = SSL_read(t->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
  if (n > 0)
    return n;
  int err = SSL_get_error(t->ssl, n);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
    return 0;
  if (err == SSL_ERROR_ZERO_RETURN)
    snprintf(detail, detail_len, "closed by server (TLS close_notify)");
  else
    take_error("TLS read error", detail, detail_len);
  return -1;
}

int detour__tls_write(detour__tls *t, const char *data, size_t len,
                      char *detail, size_t detail_len) {
  ERR_clear_error();
  while (len > 0) {
    int n = SSL_write(t->ssl, data, len > INT32_MAX ? INT32_MAX : (int)len);
    if (n <= 0) {
      take_error("TLS write error", detail, detail_len);
      return -1;
    }
    data += n;
    len -= (size_t)n;
  }
  return 0;
}

size_t detour__tls_pending(detour__tls *t) { return BIO_ctrl_pending(t->wbio); }

size_t detour__tls_take(detour__tls *t, char *buf, size_t len) {
  int n = BIO_read(t->wbio, buf, len > INT32_MAX ? INT32_MAX : (int)len);
  return n > 0 ? (size_t)n : 0;
}

const char *detour__tls_version(const detour__tls *t) {
  return SSL_get_version(t->ssl);
}

const char *detour__tls_cipher(const detour__tls *t) {
  return SSL_CIPHER_get_name(SSL_get_current_cipher(t->ssl));
}

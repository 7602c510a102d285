/*
 * tls.c - TLS for the fake servers: OpenSSL 3 through a pair of memory
 * BIOs, so the bytes stay in the session's own libuv read/write path.
 *
 * Why memory BIOs: libuv owns the socket and the loop (real or virtual
 * clock). The session hands every ciphertext chunk it reads to
 * detour__fake_tls_push, drives the handshake and SSL_read from there, and
 * writes what OpenSSL put into the outgoing BIO with its ordinary uv_write.
 * There is no second event loop, no blocking call and no thread; a drip or a
 * split still decides how many TLS records a reply becomes.
 *
 * The server's SSL_CTX (one per fake server) also carries the handshake
 * faults: an alert from the ClientHello callback (tls_alert), old protocol
 * versions only (tls_old_only, at security level 0 so that OpenSSL 3 will
 * speak them at all), and the catalogue's bad certificates, which are
 * just other files of the run-local CA (ca.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "fake_internal.h"

struct detour__fake_tls {
  const detour_fake_mem *mem; /* ours; OpenSSL allocates with its own */
  SSL *ssl;
  BIO *in, *out; /* ciphertext from the peer / for the peer */
  bool done;     /* handshake complete */
  bool shut;     /* close_notify queued */
  char error[200];
};

/* The last OpenSSL error as text (or `fallback`). */
static void ssl_error(char *buf, size_t len, const char *fallback) {
  unsigned long e = ERR_get_error();
  if (e) {
    char tmp[160];
    ERR_error_string_n(e, tmp, sizeof tmp);
    /* "error:0A000416:SSL routines::sslv3 alert certificate unknown": the
     * reason is the useful part. */
    const char *r = strrchr(tmp, ':');
    snprintf(buf, len, "%s", r && r[1] ? r + 1 : tmp);
  } else {
    snprintf(buf, len, "%s", fallback);
  }
  ERR_clear_error();
}

/* ClientHello callback of the tls_alert fault: refuse every hello with a
 * fatal handshake_failure alert (OpenSSL writes the alert record). */
static int alert_hello(SSL *ssl, int *al, void *arg) {
  *al = SSL_AD_HANDSHAKE_FAILURE;
  return SSL_CLIENT_HELLO_ERROR;
}

/* The certificate and key files of the script's settings. */
static int cert_paths(const detour_fake_tls *t, const char *server_dir,
                      char *cert, char *key, size_t len, char *desc,
                      size_t dlen, char *err, size_t errlen) {
  if (t->cert_file && t->key_file) {
    snprintf(cert, len, "%s", t->cert_file);
    snprintf(key, len, "%s", t->key_file);
    snprintf(desc, dlen, "%s", t->cert_file);
    return 0;
  }
  const char *dir = t->dir ? t->dir : server_dir;
  if (!dir || !*dir) {
    snprintf(err, errlen,
             "TLS needs a certificate: give tls cert and key files, a CA "
             "directory (tls dir), or detour serve --tls-dir");
    return DETOUR_EINVAL;
  }
  if (detour_fake_ca_file(dir, t->serve, false, cert, len) != 0 ||
      detour_fake_ca_file(dir, t->serve, true, key, len) != 0) {
    snprintf(err, errlen, "TLS directory name too long: %s", dir);
    return DETOUR_EINVAL;
  }
  snprintf(desc, dlen, "%s", detour_fake_cert_name(t->serve));
  return 0;
}

struct ssl_ctx_st *detour__fake_tls_ctx_new(const detour_fake_script *s,
                                            const char *server_dir, char *desc,
                                            size_t dlen, char *err,
                                            size_t errlen) {
  const detour_fake_tls *t = &s->tls;
  char cert[4096], key[4096], why[160];
  if (cert_paths(t, server_dir, cert, key, sizeof cert, desc, dlen, err,
                 errlen) != 0)
    return NULL;
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx) {
    snprintf(err, errlen, "TLS: out of memory");
    return NULL;
  }
  int min = t->min_version ? t->min_version : TLS1_2_VERSION;
  if (min < TLS1_2_VERSION) {
    /* OpenSSL 3 refuses TLS 1.0/1.1 (SHA-1 signatures) above level 0. */
    SSL_CTX_set_security_level(ctx, 0);
    SSL_CTX_set_cipher_list(ctx, "DEFAULT:@SECLEVEL=0");
  }
  if (!SSL_CTX_set_min_proto_version(ctx, min) ||
      !SSL_CTX_set_max_proto_version(ctx, t->max_version)) {
    snprintf(err, errlen, "TLS: bad protocol versions 0x%x..0x%x", min,
             t->max_version);
    goto fail;
  }
  if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
    ssl_error(why, sizeof why, "unreadable");
    snprintf(err, errlen, "TLS certificate %s: %s", cert, why);
    goto fail;
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(ctx) != 1) {
    ssl_error(why, sizeof why, "unreadable");
    snprintf(err, errlen, "TLS key %s: %s", key, why);
    goto fail;
  }
  /* Name the certificate in the record by its subject too. */
  X509 *x = SSL_CTX_get0_certificate(ctx);
  if (x) {
    char subj[160];
    size_t used = strlen(desc);
    X509_NAME_oneline(X509_get_subject_name(x), subj, sizeof subj);
    snprintf(desc + used, dlen - used, " subject=%s", subj);
  }
  if (t->handshake == DETOUR_FAKE_TLS_ALERT)
    SSL_CTX_set_client_hello_cb(ctx, alert_hello, NULL);
  return ctx;
fail:
  SSL_CTX_free(ctx);
  return NULL;
}

void detour__fake_tls_ctx_free(struct ssl_ctx_st *ctx) { SSL_CTX_free(ctx); }

detour__fake_tls *detour__fake_tls_new(struct ssl_ctx_st *ctx,
                                       const detour_fake_mem *mem) {
  detour__fake_tls *t = detour__fake_calloc(mem, 1, sizeof *t);
  if (!t)
    return NULL;
  t->mem = mem;
  t->ssl = SSL_new(ctx);
  t->in = BIO_new(BIO_s_mem());
  t->out = BIO_new(BIO_s_mem());
  if (!t->ssl || !t->in || !t->out) {
    SSL_free(t->ssl);
    BIO_free(t->in);
    BIO_free(t->out);
    detour__fake_free(mem, t);
    return NULL;
  }
  /* An empty input BIO means "wait for more", not end of file. */
  BIO_set_mem_eof_return(t->in, -1);
  BIO_set_mem_eof_return(t->out, -1);
  SSL_set_bio(t->ssl, t->in, t->out); /* the SSL owns both now */
  SSL_set_accept_state(t->ssl);
  return t;
}

void detour__fake_tls_free(detour__fake_tls *t) {
  if (!t)
    return;
  SSL_free(t->ssl);
  detour__fake_free(t->mem, t);
}

bool detour__fake_tls_push(detour__fake_tls *t, const void *p, size_t n) {
  return n == 0 || BIO_write(t->in, p, (int)n) == (int)n;
}

int detour__fake_tls_handshake(detour__fake_tls *t) {
  if (t->done)
    return 1;
  int rc = SSL_do_handshake(t->ssl);
  if (rc == 1) {
    t->done = true;
    return 1;
  }
  int e = SSL_get_error(t->ssl, rc);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
    return 0;
  ssl_error(t->error, sizeof t->error,
            e == SSL_ERROR_SYSCALL ? "connection closed" : "handshake failed");
  return -1;
}

long detour__fake_tls_read(detour__fake_tls *t, char *buf, size_t cap) {
  size_t got = 0;
  int rc = SSL_read_ex(t->ssl, buf, cap, &got);
  if (rc == 1)
    return (long)got;
  int e = SSL_get_error(t->ssl, rc);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
    return 0;
  if (e == SSL_ERROR_ZERO_RETURN) {
    snprintf(t->error, sizeof t->error, "close_notify from the client");
    return -1;
  }
  ssl_error(t->error, sizeof t->error, "TLS read failed");
  return -2;
}

bool detour__fake_tls_write(detour__fake_tls *t, const void *p, size_t n) {
  size_t done = 0;
  /* Memory BIOs grow, so a write after the handshake never blocks. */
  return n == 0 || (SSL_write_ex(t->ssl, p, n, &done) == 1 && done == n);
}

size_t detour__fake_tls_pending(detour__fake_tls *t) {
  return BIO_ctrl_pending(t->out);
}

size_t detour__fake_tls_pull(detour__fake_tls *t, char *buf, size_t cap) {
  int n = BIO_read(t->out, buf, (int)cap);
  return n > 0 ? (size_t)n : 0;
}

void detour__fake_tls_close_notify(detour__fake_tls *t) {
  if (t->done && !t->shut) {
    t->shut = true;
    SSL_shutdown(t->ssl); /* queues close_notify; we do not wait for the
                             client's */
    ERR_clear_error();
  }
}

bool detour__fake_tls_established(const detour__fake_tls *t) { return t->done; }

const char *detour__fake_tls_version(const detour__fake_tls *t) {
  return SSL_get_version(t->ssl);
}

const char *detour__fake_tls_cipher(const detour__fake_tls *t) {
  const char *c = SSL_get_cipher_name(t->ssl);
  return c ? c : "";
}

const char *detour__fake_tls_error(const detour__fake_tls *t) {
  return t->error[0] ? t->error : "handshake failed";
}

void detour__fake_tls_describe(const detour__fake_tls *t, const char *cert,
                               char *buf, size_t len) {
  const char *sni = SSL_get_servername(t->ssl, TLSEXT_NAMETYPE_host_name);
  snprintf(buf, len, "version=%s cipher=%s sni=%s cert=%s",
           SSL_get_version(t->ssl), SSL_get_cipher_name(t->ssl),
           sni ? sni : "-", cert ? cert : "-");
}

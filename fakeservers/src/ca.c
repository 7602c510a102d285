/*
 * ca.c - a run-local test CA: a CA certificate and the server
 * certificates the TLS faults need (good, expired, self-signed, wrong host
 * name, signed by an unknown CA), made with OpenSSL's EVP/X509 API into a
 * private directory.
 *
 * Why made per run and never committed: a private key in a repository is
 * a key someone copies into production. Every key here is a fresh P-256
 * key (fast to make, accepted by every client we test), written 0600 into
 * a 0700 directory, and the CA signs nothing but this run's certificates.
 * The CA is trusted by the tests only through its ca.pem file.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "fake_internal.h"

#define DAY (24L * 3600L)

static const char *const cert_names[] = {"server", "expired", "self_signed",
                                         "wrong_host", "unknown_ca"};
_Static_assert(sizeof cert_names / sizeof cert_names[0] ==
                       DETOUR_FAKE_CERT_COUNT &&
                   DETOUR_FAKE_CERT_UNKNOWN_CA + 1 == DETOUR_FAKE_CERT_COUNT,
               "one name per certificate");

const char *detour_fake_cert_name(detour_fake_cert c) {
  return (unsigned)c < DETOUR_FAKE_CERT_COUNT ? cert_names[c] : "?";
}

int detour_fake_cert_from_name(const char *name, detour_fake_cert *out) {
  for (int i = 0; name && i < DETOUR_FAKE_CERT_COUNT; i++)
    if (strcasecmp(name, cert_names[i]) == 0 ||
        (i == DETOUR_FAKE_CERT_GOOD && strcasecmp(name, "good") == 0)) {
      *out = (detour_fake_cert)i;
      return 0;
    }
  return DETOUR_EPARSE;
}

int detour_fake_ca_file(const char *dir, detour_fake_cert which, bool key,
                        char *out, size_t len) {
  int n = snprintf(out, len, "%s/%s.%s", dir, detour_fake_cert_name(which),
                   key ? "key" : "pem");
  return n < 0 || (size_t)n >= len ? DETOUR_ERANGE : 0;
}

/* ------------------------------------------------------------------------ */
/* Certificates                                                              */

typedef struct {
  const char *cn;       /* subject common name */
  const char *san;      /* "DNS:a,IP:1.2.3.4"; NULL for a CA */
  long not_before;      /* seconds from now */
  long not_after;       /* seconds from now */
  bool ca;              /* a CA certificate */
  X509 *issuer;         /* NULL: self-signed */
  EVP_PKEY *issuer_key; /* with issuer */
} cert_spec;

static bool add_ext(X509 *x, X509 *issuer, int nid, const char *value) {
  X509V3_CTX v3;
  X509V3_set_ctx(&v3, issuer ? issuer : x, x, NULL, NULL, 0);
  X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
  bool ok = e && X509_add_ext(x, e, -1);
  X509_EXTENSION_free(e);
  return ok;
}

static bool random_serial(X509 *x) {
  unsigned char b[16];
  if (RAND_bytes(b, sizeof b) != 1)
    return false;
  b[0] &= 0x7f; /* positive */
  BIGNUM *bn = BN_bin2bn(b, sizeof b, NULL);
  bool ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
  BN_free(bn);
  return ok;
}

/* A certificate for key per spec, or NULL. */
static X509 *make_cert(const cert_spec *sp, EVP_PKEY *key) {
  X509 *x = X509_new();
  X509_NAME *name = X509_NAME_new();
  bool ok =
      x && name && X509_set_version(x, 2) && random_serial(x) &&
      X509_gmtime_adj(X509_getm_notBefore(x), sp->not_before) &&
      X509_gmtime_adj(X509_getm_notAfter(x), sp->not_after) &&
      X509_set_pubkey(x, key) &&
      X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                                 (const unsigned char *)"detour test", -1, -1,
                                 0) &&
      X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                 (const unsigned char *)sp->cn, -1, -1, 0) &&
      X509_set_subject_name(x, name) &&
      X509_set_issuer_name(x, sp->issuer ? X509_get_subject_name(sp->issuer)
                                         : name);
  X509_NAME_free(name);
  if (ok && sp->ca)
    ok = add_ext(x, sp->issuer, NID_basic_constraints, "critical,CA:TRUE") &&
         add_ext(x, sp->issuer, NID_key_usage, "critical,keyCertSign,cRLSign");
  else if (ok)
    ok = add_ext(x, sp->issuer, NID_basic_constraints, "critical,CA:FALSE") &&
         add_ext(x, sp->issuer, NID_key_usage,
                 "critical,digitalSignature,keyEncipherment") &&
         add_ext(x, sp->issuer, NID_ext_key_usage, "serverAuth") &&
         add_ext(x, sp->issuer, NID_subject_alt_name, sp->san);
  ok = ok && add_ext(x, sp->issuer, NID_subject_key_identifier, "hash") &&
       (!sp->issuer ||
        add_ext(x, sp->issuer, NID_authority_key_identifier, "keyid:always")) &&
       X509_sign(x, sp->issuer ? sp->issuer_key : key, EVP_sha256()) > 0;
  if (!ok) {
    X509_free(x);
    return NULL;
  }
  return x;
}

/* ------------------------------------------------------------------------ */
/* Files                                                                     */

typedef struct {
  const char *dir;
  char *err;
  size_t errlen;
} ca_ctx;

static int fail(ca_ctx *c, const char *what, const char *path) {
  char ssl[160] = "";
  unsigned long e = ERR_get_error();
  if (e)
    ERR_error_string_n(e, ssl, sizeof ssl);
  ERR_clear_error();
  if (c->err)
    snprintf(c->err, c->errlen, "test CA in %s: %s%s%s%s%s", c->dir, what,
             path ? " " : "", path ? path : "",
             errno && !e ? ": " : (e ? ": " : ""),
             e ? ssl : (errno ? strerror(errno) : ""));
  return DETOUR_EIO;
}

/* Open path for writing, mode 0600 even if it existed with another. */
static FILE *open_private(const char *path) {
  /* O_NOFOLLOW: a symlink planted in the directory is not followed. */
  int fd =
      open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0)
    return NULL;
  if (fchmod(fd, 0600) != 0) {
    close(fd);
    return NULL;
  }
  FILE *f = fdopen(fd, "w");
  if (!f)
    close(fd);
  return f;
}

static int write_pem(ca_ctx *c, const char *name, const char *ext, X509 *x,
                     EVP_PKEY *k) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s.%s", c->dir, name, ext);
  errno = 0;
  FILE *f = open_private(path);
  if (!f)
    return fail(c, "cannot create", path);
  bool ok = x ? PEM_write_X509(f, x) == 1
              : PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) == 1;
  if (fclose(f) != 0 || !ok)
    return fail(c, "cannot write", path);
  return 0;
}

/* subjectAltName value for the hosts: IP: for addresses, DNS: else. */
static int san_of(ca_ctx *c, const char *const *hosts, size_t n, char *out,
                  size_t len) {
  static const char *const defaults[] = {"localhost", "mx.fake.test", "::1"};
  size_t used = 0;
  out[0] = '\0';
  if (n == 0) {
    hosts = defaults;
    n = sizeof defaults / sizeof defaults[0];
    for (int i = 1; i <= 16; i++)
      used += (size_t)snprintf(out + used, len - used, "IP:127.0.0.%d,", i);
  }
  for (size_t i = 0; i < n; i++) {
    unsigned char a[16];
    const char *h = hosts[i];
    if (!h || !*h || strpbrk(h, ", \t\r\n"))
      return (errno = 0), fail(c, "bad host name for a certificate", h);
    bool ip = inet_pton(AF_INET, h, a) == 1 || inet_pton(AF_INET6, h, a) == 1;
    int k = snprintf(out + used, len - used, "%s%s:%s", i ? "," : "",
                     ip ? "IP" : "DNS", h);
    if (k < 0 || (size_t)k >= len - used)
      return (errno = 0), fail(c, "too many host names", NULL);
    used += (size_t)k;
  }
  return 0;
}

/* A fresh key and a certificate for it, both written as NAME.pem/.key. */
static int issue(ca_ctx *c, const char *name, const cert_spec *sp,
                 X509 **keep_cert, EVP_PKEY **keep_key, bool write_key) {
  EVP_PKEY *k = EVP_EC_gen("P-256");
  X509 *x = k ? make_cert(sp, k) : NULL;
  int rc;
  errno = 0;
  if (!x)
    rc = fail(c, "cannot make the certificate", name);
  else if ((rc = write_pem(c, name, "pem", x, NULL)) == 0 && write_key)
    rc = write_pem(c, name, "key", NULL, k);
  if (rc == 0 && keep_cert) {
    *keep_cert = x;
    *keep_key = k;
    return 0;
  }
  X509_free(x);
  EVP_PKEY_free(k);
  return rc;
}

static int make_dir(ca_ctx *c, char *dir, size_t dirlen) {
  if (dir[0] == '\0') {
    const char *tmp = getenv("TMPDIR");
    int n = snprintf(dir, dirlen, "%s/detour-ca-XXXXXX",
                     tmp && *tmp ? tmp : "/tmp");
    if (n < 0 || (size_t)n >= dirlen)
      return (errno = ENAMETOOLONG), fail(c, "cannot make a directory", NULL);
    if (!mkdtemp(dir))
      return fail(c, "cannot make a directory", dir);
    return 0;
  }
  if (mkdir(dir, 0700) != 0 && errno != EEXIST)
    return fail(c, "cannot make the directory", dir);
  /* Keys go there: a directory others may write to (/tmp itself) would
   * let them replace the files between our writes and their use. */
  struct stat st;
  if (stat(dir, &st) != 0)
    return fail(c, "cannot read the directory", dir);
  if (!S_ISDIR(st.st_mode) || (st.st_mode & 0022) || st.st_uid != geteuid())
    return (errno = 0),
           fail(c, "not a private directory of ours (want mode 0700)", dir);
  return 0;
}

int detour_fake_ca_make(char *dir, size_t dirlen, const char *const *hosts,
                        size_t n, char *err, size_t errlen) {
  ca_ctx c = {dir, err, errlen};
  char san[4096];
  X509 *ca = NULL, *other = NULL;
  EVP_PKEY *ca_key = NULL, *other_key = NULL;
  int rc;
  if (!dir || dirlen == 0)
    return DETOUR_EINVAL;
  if ((rc = make_dir(&c, dir, dirlen)) != 0 ||
      (rc = san_of(&c, hosts, n, san, sizeof san)) != 0)
    return rc;
  cert_spec ca_spec = {
      "detour run-local test CA", NULL, -DAY, 30 * DAY, true, NULL, NULL};
  cert_spec other_spec = {
      "detour unknown CA", NULL, -DAY, 30 * DAY, true, NULL, NULL};
  if ((rc = issue(&c, "ca", &ca_spec, &ca, &ca_key, false)) != 0 ||
      (rc = issue(&c, "other-ca", &other_spec, &other, &other_key, false)) != 0)
    goto done;
  const cert_spec leaves[DETOUR_FAKE_CERT_COUNT] = {
      [DETOUR_FAKE_CERT_GOOD] = {"detour fake server", san, -DAY, 30 * DAY,
                                 false, ca, ca_key},
      [DETOUR_FAKE_CERT_EXPIRED] = {"detour fake server (expired)", san,
                                    -30 * DAY, -DAY, false, ca, ca_key},
      [DETOUR_FAKE_CERT_SELF_SIGNED] = {"detour fake server (self-signed)", san,
                                        -DAY, 30 * DAY, false, NULL, NULL},
      [DETOUR_FAKE_CERT_WRONG_HOST] = {"wrong.host.invalid",
                                       "DNS:wrong.host.invalid", -DAY, 30 * DAY,
                                       false, ca, ca_key},
      [DETOUR_FAKE_CERT_UNKNOWN_CA] = {"detour fake server (unknown CA)", san,
                                       -DAY, 30 * DAY, false, other,
                                       other_key}};
  for (int i = 0; rc == 0 && i < DETOUR_FAKE_CERT_COUNT; i++)
    rc = issue(&c, cert_names[i], &leaves[i], NULL, NULL, true);
done:
  X509_free(ca);
  X509_free(other);
  EVP_PKEY_free(ca_key);
  EVP_PKEY_free(other_key);
  return rc;
}

void detour_fake_ca_remove(const char *dir) {
  char path[4096];
  if (!dir || !*dir)
    return;
  for (int i = 0; i < DETOUR_FAKE_CERT_COUNT; i++)
    for (int key = 0; key < 2; key++)
      if (detour_fake_ca_file(dir, (detour_fake_cert)i, key, path,
                              sizeof path) == 0)
        unlink(path);
  snprintf(path, sizeof path, "%s/ca.pem", dir);
  unlink(path);
  snprintf(path, sizeof path, "%s/other-ca.pem", dir);
  unlink(path);
  rmdir(dir);
}

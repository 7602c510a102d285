/*
 * test_fake_tls.c - TLS and AUTH on the fake servers, checked on the wire
 * with an OpenSSL client of our own (blocking sockets, bounded reads): the
 * run-local CA's certificates, STARTTLS (RFC 3207) and implicit TLS (RFC
 * 8314), AUTH PLAIN and LOGIN (RFC 4954), every TLS/AUTH catalogue entry,
 * and a recording that never holds a password.
 */
#include <inttypes.h>
#include <sys/stat.h>
#include <sys/time.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "test_fake_util.h"

#define PASSWORD "pw-Zq8!secret"
/* base64 of "\0alice\0" PASSWORD (PLAIN) and of PASSWORD (LOGIN) */
#define PLAIN_B64 "AGFsaWNlAHB3LVpxOCFzZWNyZXQ="
#define LOGIN_USER_B64 "YWxpY2U="
#define LOGIN_PASS_B64 "cHctWnE4IXNlY3JldA=="

typedef struct {
  ft_env e;
  char dir[512];
  char ca[600];
} tls_env;

static void make_ca(char *dir, size_t len) {
  char err[512] = "";
  dir[0] = '\0';
  cr_assert_eq(detour_fake_ca_make(dir, len, NULL, 0, err, sizeof err), 0,
               "CA: %s", err);
}

/* Start the servers of yaml_fmt, where every %s is the CA directory. */
static void tls_start(tls_env *t, const char *yaml_fmt) {
  char yaml[4096];
  make_ca(t->dir, sizeof t->dir);
  snprintf(t->ca, sizeof t->ca, "%s/ca.pem", t->dir);
  snprintf(yaml, sizeof yaml, yaml_fmt, t->dir, t->dir, t->dir, t->dir);
  ft_start(&t->e, yaml);
}

static void tls_finish(tls_env *t) {
  ft_finish(&t->e);
  detour_fake_ca_remove(t->dir);
}

/* A plaintext session up to the EHLO reply (returned in buf). */
static int plain_ehlo(tls_env *t, char *buf, size_t cap) {
  int fd = ft_connect(t->e.srv[0]);
  cr_assert_geq(fd, 0);
  struct timeval tv = {5, 0}; /* SSL_read on this fd is bounded too */
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  FT_EXPECT(fd, NULL, "220 ");
  cr_assert_gt(ft_cmd(fd, "EHLO client.test", buf, cap), 0);
  return fd;
}

/* ------------------------------------------------------------------------ */
/* An OpenSSL client                                                         */

typedef struct {
  SSL_CTX *ctx;
  SSL *ssl;
  bool ok;           /* handshake done */
  long verify;       /* SSL_get_verify_result */
  unsigned long err; /* first error on failure */
} client;

/* Handshake on fd, trusting ca (NULL: nothing), checking `host`. Peer
 * verification is computed but not enforced, so a test sees why a
 * certificate is bad. Versions: 0 = library defaults. */
static void tls_client(client *c, int fd, const char *ca, const char *host,
                       int min, int max) {
  memset(c, 0, sizeof *c);
  c->ctx = SSL_CTX_new(TLS_client_method());
  cr_assert_not_null(c->ctx);
  if (min && min < TLS1_2_VERSION) {
    SSL_CTX_set_security_level(c->ctx, 0);
    SSL_CTX_set_cipher_list(c->ctx, "DEFAULT:@SECLEVEL=0");
  }
  SSL_CTX_set_min_proto_version(c->ctx, min ? min : TLS1_2_VERSION);
  SSL_CTX_set_max_proto_version(c->ctx, max);
  if (ca)
    cr_assert_eq(SSL_CTX_load_verify_locations(c->ctx, ca, NULL), 1);
  SSL_CTX_set_verify(c->ctx, SSL_VERIFY_NONE, NULL);
  c->ssl = SSL_new(c->ctx);
  SSL_set_fd(c->ssl, fd);
  SSL_set_tlsext_host_name(c->ssl, host);
  SSL_set1_host(c->ssl, host);
  ERR_clear_error();
  c->ok = SSL_connect(c->ssl) == 1;
  c->err = c->ok ? 0 : ERR_peek_error();
  c->verify = SSL_get_verify_result(c->ssl);
}

static void client_free(client *c) {
  SSL_free(c->ssl);
  SSL_CTX_free(c->ctx);
}

/* A command over TLS and its complete reply. */
static ssize_t tls_cmd(client *c, const char *cmd, char *buf, size_t cap) {
  char line[1024];
  size_t len = 0;
  if (cmd) {
    snprintf(line, sizeof line, "%s\r\n", cmd);
    if (SSL_write(c->ssl, line, (int)strlen(line)) <= 0)
      return -1; /* the caller's check of the reply fails */
  }
  buf[0] = '\0';
  while (len + 1 < cap) {
    int n = SSL_read(c->ssl, buf + len, (int)(cap - 1 - len));
    if (n <= 0)
      break;
    len += (size_t)n;
    buf[len] = '\0';
    char *last = buf + len - 1;
    while (last > buf && last[-1] != '\n')
      last--;
    if (buf[len - 1] == '\n' && last + 3 < buf + len && last[3] == ' ')
      break;
  }
  return (ssize_t)len;
}

#define TLS_EXPECT(c, cmd, prefix)                                             \
  do {                                                                         \
    char tb_[4096];                                                            \
    ssize_t tn_ = tls_cmd((c), (cmd), tb_, sizeof tb_);                        \
    cr_assert(tn_ > 0 && strncmp(tb_, (prefix), strlen(prefix)) == 0,          \
              "%s: expected '%s', got '%s'", (cmd) ? (cmd) : "(read)",         \
              (prefix), tn_ > 0 ? tb_ : "");                                   \
  } while (0)

/* The data of the first event of type t, or NULL. */
static const char *event_data(const detour_fake_server *srv,
                              detour_fake_event_type t) {
  for (size_t i = 0; i < detour_fake_server_event_count(srv); i++) {
    detour_fake_event ev;
    detour_fake_server_event(srv, i, &ev);
    if (ev.type == t)
      return ev.data;
  }
  return NULL;
}

/* STARTTLS after EHLO; returns the fd with the handshake done in c. */
static int starttls(tls_env *t, client *c, const char *host) {
  char buf[4096];
  int fd = plain_ehlo(t, buf, sizeof buf);
  cr_assert(strstr(buf, "250-STARTTLS") || strstr(buf, "250 STARTTLS"),
            "STARTTLS advertised: %s", buf);
  FT_EXPECT(fd, "STARTTLS", "220 2.0.0");
  tls_client(c, fd, t->ca, host, 0, 0);
  return fd;
}

#define SUBMISSION                                                             \
  "name: sub\n"                                                                \
  "tls: { mode: starttls, dir: '%s' }\n"                                       \
  "auth: { users: { alice: '" PASSWORD "' } }\n"

/* ------------------------------------------------------------------------ */
/* The run-local CA                                                          */

static long verify_file(const char *ca, const char *pem, const char *host,
                        const char *ip) {
  X509_STORE *store = X509_STORE_new();
  X509_STORE_load_file(store, ca);
  FILE *f = fopen(pem, "r");
  cr_assert_not_null(f, "%s", pem);
  X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
  fclose(f);
  X509_STORE_CTX *ctx = X509_STORE_CTX_new();
  X509_STORE_CTX_init(ctx, store, x, NULL);
  X509_VERIFY_PARAM *p = X509_STORE_CTX_get0_param(ctx);
  if (host)
    X509_VERIFY_PARAM_set1_host(p, host, 0);
  if (ip)
    X509_VERIFY_PARAM_set1_ip_asc(p, ip);
  X509_verify_cert(ctx);
  long rc = X509_STORE_CTX_get_error(ctx);
  X509_STORE_CTX_free(ctx);
  X509_free(x);
  X509_STORE_free(store);
  return rc;
}

Test(tls_ca, makes_private_files_with_the_bad_certificates) {
  char dir[512], path[600], ca[600];
  struct stat st;
  make_ca(dir, sizeof dir);
  snprintf(ca, sizeof ca, "%s/ca.pem", dir);
  cr_assert_eq(stat(dir, &st), 0);
  cr_assert_eq(st.st_mode & 0777, 0700, "directory 0700");
  for (int i = 0; i < DETOUR_FAKE_CERT_COUNT; i++)
    for (int key = 0; key < 2; key++) {
      detour_fake_ca_file(dir, (detour_fake_cert)i, key, path, sizeof path);
      cr_assert_eq(stat(path, &st), 0, "%s", path);
      cr_assert_eq(st.st_mode & 0777, 0600, "%s is 0600", path);
    }
  static const struct {
    detour_fake_cert c;
    long want;
  } cases[] = {
      {DETOUR_FAKE_CERT_GOOD, X509_V_OK},
      {DETOUR_FAKE_CERT_EXPIRED, X509_V_ERR_CERT_HAS_EXPIRED},
      {DETOUR_FAKE_CERT_SELF_SIGNED, X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT},
      {DETOUR_FAKE_CERT_WRONG_HOST, X509_V_ERR_HOSTNAME_MISMATCH},
      {DETOUR_FAKE_CERT_UNKNOWN_CA,
       X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    detour_fake_ca_file(dir, cases[i].c, false, path, sizeof path);
    long got = verify_file(ca, path, "localhost", NULL);
    cr_assert_eq(got, cases[i].want, "%s: %s",
                 detour_fake_cert_name(cases[i].c),
                 X509_verify_cert_error_string(got));
  }
  /* The default names: IP addresses as IP entries, for 127.0.0.1-16. */
  detour_fake_ca_file(dir, DETOUR_FAKE_CERT_GOOD, false, path, sizeof path);
  cr_assert_eq(verify_file(ca, path, NULL, "127.0.0.7"), X509_V_OK);
  cr_assert_eq(verify_file(ca, path, NULL, "127.0.0.17"),
               X509_V_ERR_IP_ADDRESS_MISMATCH);
  cr_assert_eq(verify_file(ca, path, "mx.fake.test", NULL), X509_V_OK);
  detour_fake_ca_remove(dir);
  cr_assert_neq(stat(dir, &st), 0, "removed");
}

static char *slurp(const char *path) {
  FILE *f = fopen(path, "r");
  static char buf[2][4096];
  static int k;
  cr_assert_not_null(f);
  char *b = buf[k++ % 2];
  b[fread(b, 1, 4095, f)] = '\0';
  fclose(f);
  return b;
}

Test(tls_ca, fresh_keys_every_run_and_the_hosts_asked) {
  char a[512], b[512], pa[600], pb[600], err[256];
  const char *hosts[] = {"smtp.example.test", "10.1.2.3"};
  make_ca(a, sizeof a);
  b[0] = '\0';
  cr_assert_eq(detour_fake_ca_make(b, sizeof b, hosts, 2, err, sizeof err), 0);
  detour_fake_ca_file(a, DETOUR_FAKE_CERT_GOOD, true, pa, sizeof pa);
  detour_fake_ca_file(b, DETOUR_FAKE_CERT_GOOD, true, pb, sizeof pb);
  cr_assert_str_neq(slurp(pa), slurp(pb), "a new key per run");
  char ca[600];
  snprintf(ca, sizeof ca, "%s/ca.pem", b);
  detour_fake_ca_file(b, DETOUR_FAKE_CERT_GOOD, false, pb, sizeof pb);
  cr_assert_eq(verify_file(ca, pb, "smtp.example.test", NULL), X509_V_OK);
  cr_assert_eq(verify_file(ca, pb, NULL, "10.1.2.3"), X509_V_OK);
  cr_assert_eq(verify_file(ca, pb, "localhost", NULL),
               X509_V_ERR_HOSTNAME_MISMATCH);
  /* A name that would smuggle a second SAN entry is refused. */
  const char *bad[] = {"a.test,DNS:evil.test"};
  char c[512] = "";
  cr_assert_eq(detour_fake_ca_make(c, sizeof c, bad, 1, err, sizeof err),
               DETOUR_EIO);
  cr_assert(strstr(err, "bad host name"), "%s", err);
  detour_fake_ca_remove(c);
  detour_fake_ca_remove(a);
  detour_fake_ca_remove(b);
}

/* ------------------------------------------------------------------------ */
/* STARTTLS and AUTH: the good path                                          */

/* Lines sent in clear behind STARTTLS are discarded: no recorded command
 * holds NEEDLE (RFC 3207 4.2). */
static void assert_never_a_command(detour_fake_server *srv,
                                   const char *needle) {
  for (size_t i = 0; i < detour_fake_server_event_count(srv); i++) {
    detour_fake_event ev;
    detour_fake_server_event(srv, i, &ev);
    cr_assert(ev.type != DETOUR_FAKE_EV_COMMAND || !strstr(ev.data, needle),
              "'%s' was taken as a command", needle);
  }
}

Test(tls_starttls, delivers_with_starttls_and_auth_plain) {
  tls_env t;
  client c;
  char buf[4096];
  tls_start(&t, SUBMISSION);
  int fd = starttls(&t, &c, "localhost");
  cr_assert(c.ok, "handshake: %s", ERR_reason_error_string(c.err));
  cr_assert_eq(c.verify, X509_V_OK, "%s",
               X509_verify_cert_error_string(c.verify));
  /* Inside TLS: no STARTTLS any more, AUTH offered. */
  cr_assert_gt(tls_cmd(&c, "EHLO client.test", buf, sizeof buf), 0);
  cr_assert_null(strstr(buf, "STARTTLS"), "%s", buf);
  cr_assert_not_null(strstr(buf, "250 AUTH PLAIN LOGIN"), "%s", buf);
  TLS_EXPECT(&c, "AUTH PLAIN " PLAIN_B64, "235 2.7.0");
  TLS_EXPECT(&c, "MAIL FROM:<a@x.test>", "250 2.1.0");
  TLS_EXPECT(&c, "RCPT TO:<b@x.test>", "250 2.1.5");
  TLS_EXPECT(&c, "DATA", "354");
  TLS_EXPECT(&c, "Subject: t\r\n\r\nhello\r\n.", "250 2.0.0");
  TLS_EXPECT(&c, "QUIT", "221");
  /* The server said close_notify before its FIN. */
  char tmp[64];
  cr_assert_eq(SSL_read(c.ssl, tmp, sizeof tmp), 0);
  cr_assert_eq(SSL_get_error(c.ssl, 0), SSL_ERROR_ZERO_RETURN);
  client_free(&c);
  close(fd);
  ft_join(&t.e);
  detour_fake_server *s = t.e.srv[0];
  const char *tls = event_data(s, DETOUR_FAKE_EV_TLS);
  cr_assert_not_null(tls);
  cr_assert(strstr(tls, "version=TLSv1.3 ") && strstr(tls, "cipher=TLS_") &&
                strstr(tls, "sni=localhost ") && strstr(tls, "cert=server "),
            "%s", tls);
  cr_assert_str_eq(event_data(s, DETOUR_FAKE_EV_AUTH),
                   "mechanism=PLAIN user=alice password=match");
  cr_assert_eq(detour_fake_server_message_count(s), 1);
  tls_finish(&t);
}

Test(tls_starttls, auth_login_and_wrong_password) {
  tls_env t;
  client c;
  char buf[4096];
  tls_start(&t, SUBMISSION);
  int fd = starttls(&t, &c, "localhost");
  cr_assert(c.ok);
  tls_cmd(&c, "EHLO client.test", buf, sizeof buf);
  TLS_EXPECT(&c, "AUTH LOGIN", "334 VXNlcm5hbWU6");
  TLS_EXPECT(&c, LOGIN_USER_B64, "334 UGFzc3dvcmQ6");
  TLS_EXPECT(&c, "d3Jvbmc=", "535 5.7.8"); /* "wrong" */
  TLS_EXPECT(&c, "AUTH LOGIN " LOGIN_USER_B64, "334 UGFzc3dvcmQ6");
  TLS_EXPECT(&c, LOGIN_PASS_B64, "235 2.7.0");
  TLS_EXPECT(&c, "AUTH PLAIN " PLAIN_B64, "503 5.5.1"); /* once only */
  client_free(&c);
  close(fd);
  ft_join(&t.e);
  cr_assert_eq(ft_count(t.e.srv[0], DETOUR_FAKE_EV_AUTH, -1), 2);
  cr_assert_str_eq(event_data(t.e.srv[0], DETOUR_FAKE_EV_AUTH),
                   "mechanism=LOGIN user=alice password=mismatch");
  tls_finish(&t);
}

Test(tls_starttls, auth_exchange_errors) {
  tls_env t;
  client c;
  char buf[4096];
  tls_start(&t, SUBMISSION);
  int fd = starttls(&t, &c, "localhost");
  cr_assert(c.ok);
  tls_cmd(&c, "EHLO client.test", buf, sizeof buf);
  TLS_EXPECT(&c, "AUTH PLAIN", "334 ");
  TLS_EXPECT(&c, "*", "501 5.7.0");
  TLS_EXPECT(&c, "AUTH PLAIN not-base64!", "501 5.5.2");
  TLS_EXPECT(&c, "AUTH CRAM-MD5", "504 5.5.4");
  TLS_EXPECT(&c, "AUTH PLAIN AGJvYgB4", "535 5.7.8"); /* \0bob\0x */
  TLS_EXPECT(&c, "NOOP", "250");
  client_free(&c);
  close(fd);
  ft_join(&t.e);
  cr_assert_str_eq(event_data(t.e.srv[0], DETOUR_FAKE_EV_AUTH),
                   "mechanism=PLAIN user=bob password=unknown_user");
  tls_finish(&t);
}

Test(tls_starttls, discards_plaintext_sent_with_starttls) {
  tls_env t;
  client c;
  char buf[4096];
  tls_start(&t, SUBMISSION);
  int fd = plain_ehlo(&t, buf, sizeof buf);
  /* RFC 3207 4.2: a command piggybacked on STARTTLS must not run. */
  ft_send(fd, "STARTTLS\r\nMAIL FROM:<injected@x.test>\r\n");
  FT_EXPECT(fd, NULL, "220 2.0.0");
  tls_client(&c, fd, t.ca, "localhost", 0, 0);
  cr_assert(c.ok, "the injected line did not disturb the handshake");
  /* State was reset: EHLO is expected again, MAIL before it is 503. */
  TLS_EXPECT(&c, "MAIL FROM:<a@x.test>", "503 5.5.1");
  tls_cmd(&c, "EHLO client.test", buf, sizeof buf);
  TLS_EXPECT(&c, "MAIL FROM:<a@x.test>", "250");
  client_free(&c);
  close(fd);
  ft_join(&t.e);
  assert_never_a_command(t.e.srv[0], "injected");
  tls_finish(&t);
}

/* EHLO, STARTTLS and a line of garbage in one write (RFC 2920 allows
 * STARTTLS last in a group): EHLO's reply and the 220 leave together, in
 * clear and before the handshake; the garbage is discarded, never a
 * command (RFC 3207 4.2). */
Test(tls_starttls, pipelined_ehlo_starttls_and_garbage) {
  tls_env t;
  client c;
  char buf[8192];
  size_t len = 0;
  detour_fake_stats st0, st1;
  tls_start(&t, SUBMISSION);
  int fd = ft_connect(t.e.srv[0]);
  cr_assert_geq(fd, 0);
  struct timeval tv = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  FT_EXPECT(fd, NULL, "220 ");
  ft_stats(&t.e, 0, &st0);
  ft_send(fd, "EHLO client.test\r\nSTARTTLS\r\nGARBAGE injected\r\n");
  buf[0] = '\0';
  while (!strstr(buf, "\r\n220 ") && len + 1 < sizeof buf) {
    ssize_t n = ft_read_some(fd, buf + len, sizeof buf - 1 - len, 3000);
    cr_assert_gt(n, 0, "EHLO's reply and the 220, in clear: got '%s'", buf);
    len += (size_t)n;
    buf[len] = '\0';
  }
  cr_assert(strncmp(buf, "250-", 4) == 0, "%s", buf);
  const char *tail = strstr(buf, "\r\n220 ") + 2;
  cr_assert_str_eq(tail, "220 2.0.0 Ready to start TLS\r\n",
                   "nothing after the 220 in clear");
  ft_stats(&t.e, 0, &st1);
  cr_assert_eq(st1.writes - st0.writes, 1, "one write for both replies: %llu",
               (unsigned long long)(st1.writes - st0.writes));
  tls_client(&c, fd, t.ca, "localhost", 0, 0);
  cr_assert(c.ok, "the handshake after the 220");
  TLS_EXPECT(&c, "MAIL FROM:<a@x.test>", "503 5.5.1"); /* EHLO again first */
  TLS_EXPECT(&c, "EHLO client.test", "250");
  TLS_EXPECT(&c, "MAIL FROM:<a@x.test>", "250");
  client_free(&c);
  close(fd);
  ft_join(&t.e);
  assert_never_a_command(t.e.srv[0], "GARBAGE");
  tls_finish(&t);
}

Test(tls_starttls, auth_offered_only_after_tls) {
  tls_env t;
  client c;
  char buf[4096];
  tls_start(&t,
            "tls: { dir: '%s' }\n"
            "auth: { offer: after_tls, users: { alice: '" PASSWORD "' } }\n");
  int fd = plain_ehlo(&t, buf, sizeof buf);
  cr_assert_null(strstr(buf, "AUTH"), "no AUTH in clear: %s", buf);
  FT_EXPECT(fd, "AUTH PLAIN " PLAIN_B64, "538 5.7.11");
  FT_EXPECT(fd, "STARTTLS", "220");
  tls_client(&c, fd, t.ca, "localhost", 0, 0);
  cr_assert(c.ok);
  tls_cmd(&c, "EHLO client.test", buf, sizeof buf);
  cr_assert_not_null(strstr(buf, "AUTH PLAIN LOGIN"), "%s", buf);
  TLS_EXPECT(&c, "AUTH PLAIN " PLAIN_B64, "235");
  client_free(&c);
  close(fd);
  tls_finish(&t);
}

Test(tls_implicit, handshake_first_then_greeting) {
  tls_env t;
  client c;
  tls_start(&t, "tls: { mode: implicit, dir: '%s' }\n");
  int fd = ft_connect(t.e.srv[0]);
  struct timeval tv = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  tls_client(&c, fd, t.ca, "127.0.0.1", 0, 0);
  cr_assert(c.ok);
  cr_assert_eq(c.verify, X509_V_OK, "%s",
               X509_verify_cert_error_string(c.verify));
  TLS_EXPECT(&c, NULL, "220 ");
  char buf[4096];
  tls_cmd(&c, "EHLO client.test", buf, sizeof buf);
  cr_assert_null(strstr(buf, "STARTTLS"), "%s", buf);
  TLS_EXPECT(&c, "STARTTLS", "502"); /* TLS is on already */
  TLS_EXPECT(&c, "QUIT", "221");
  client_free(&c);
  close(fd);
  tls_finish(&t);
}

Test(tls_plain, starttls_and_auth_unknown_without_tls_or_auth) {
  ft_env e;
  ft_start(&e, "name: p\n");
  int fd = ft_connect(e.srv[0]);
  char buf[4096];
  FT_EXPECT(fd, NULL, "220");
  ft_cmd(fd, "EHLO c", buf, sizeof buf);
  cr_assert_null(strstr(buf, "STARTTLS"));
  cr_assert_null(strstr(buf, "AUTH"));
  FT_EXPECT(fd, "STARTTLS", "502 5.5.2");
  FT_EXPECT(fd, "AUTH PLAIN " PLAIN_B64, "502 5.5.2");
  close(fd);
  ft_join(&e);
  /* Even an AUTH nobody asked for is recorded without its argument. */
  for (size_t i = 0; i < detour_fake_server_event_count(e.srv[0]); i++) {
    detour_fake_event ev;
    detour_fake_server_event(e.srv[0], i, &ev);
    cr_assert_null(strstr(ev.data ? ev.data : "", PLAIN_B64));
  }
  ft_finish(&e);
}

Test(tls_plain, start_fails_clearly_without_certificates) {
  ft_env e;
  memset(&e, 0, sizeof e);
  char err[512] = "";
  size_t n;
  detour_fake_script **v = detour_fake_load_string(
      "tls: starttls\n", 14, "t.yaml", &n, err, sizeof err);
  cr_assert_not_null(v, "%s", err);
  uv_loop_t loop;
  uv_loop_init(&loop);
  detour_clock *clk = detour_clock_new_real(&loop);
  detour_fake_server *s = detour_fake_server_new(clk, v[0], NULL, 0, NULL);
  cr_assert_eq(detour_fake_server_start(s, err, sizeof err), DETOUR_EIO);
  cr_assert(strstr(err, "TLS needs a certificate"), "%s", err);
  detour_fake_server_free(s);
  detour_fake_scripts_free(v, n);
  uv_run(&loop, UV_RUN_DEFAULT);
  detour_clock_free(clk);
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_assert_eq(uv_loop_close(&loop), 0);
}

/* ------------------------------------------------------------------------ */
/* The catalogue, entry by entry                                             */

static void fault_start(tls_env *t, const char *fault) {
  char fmt[1024];
  snprintf(fmt, sizeof fmt, "%sfault: %s\n", SUBMISSION, fault);
  tls_start(t, fmt);
}

Test(tls_fault, starttls_stripped) {
  tls_env t;
  char buf[4096];
  fault_start(&t, "starttls_stripped");
  int fd = plain_ehlo(&t, buf, sizeof buf);
  cr_assert_null(strstr(buf, "STARTTLS"), "%s", buf);
  FT_EXPECT(fd, "STARTTLS", "502");
  close(fd);
  tls_finish(&t);
}

Test(tls_fault, starttls_454) {
  tls_env t;
  char buf[4096];
  fault_start(&t, "starttls_454");
  int fd = plain_ehlo(&t, buf, sizeof buf);
  cr_assert_not_null(strstr(buf, "STARTTLS"));
  FT_EXPECT(fd, "STARTTLS", "454 4.7.0");
  FT_EXPECT(fd, "NOOP", "250"); /* still plaintext, still talking */
  close(fd);
  tls_finish(&t);
}

Test(tls_fault, tls_alert) {
  tls_env t;
  client c;
  fault_start(&t, "tls_alert");
  int fd = starttls(&t, &c, "localhost");
  cr_assert_not(c.ok);
  cr_assert_eq(ERR_GET_REASON(c.err), SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE,
               "got %s", ERR_reason_error_string(c.err));
  client_free(&c);
  close(fd);
  ft_join(&t.e);
  cr_assert(
      strstr(event_data(t.e.srv[0], DETOUR_FAKE_EV_TLS), "handshake failed"));
  tls_finish(&t);
}

Test(tls_fault, tls_drop) {
  tls_env t;
  char buf[4096];
  fault_start(&t, "tls_drop");
  int fd = plain_ehlo(&t, buf, sizeof buf);
  FT_EXPECT(fd, "STARTTLS", "220");
  /* A ClientHello from a memory-BIO client, then raw reads until EOF. */
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  SSL *ssl = SSL_new(ctx);
  BIO *in = BIO_new(BIO_s_mem()), *out = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl, in, out);
  SSL_set_connect_state(ssl);
  cr_assert_neq(SSL_do_handshake(ssl), 1);
  char hello[4096];
  int hn = BIO_read(out, hello, sizeof hello);
  cr_assert_gt(hn, 0);
  /* In two segments: the fault waits for the whole hello. */
  cr_assert_eq(send(fd, hello, 10, 0), 10);
  usleep(50 * 1000);
  cr_assert_eq(send(fd, hello + 10, (size_t)hn - 10, 0), hn - 10);
  size_t got = 0;
  ssize_t n;
  while ((n = ft_read_some(fd, buf + got, sizeof buf - got, 3000)) > 0)
    got += (size_t)n;
  cr_assert_eq(n, 0, "EOF, not a timeout or reset (%zd)", n);
  cr_assert_gt(got, 5, "part of the server's flight came");
  cr_assert_eq((unsigned char)buf[0], 0x16, "a handshake record");
  BIO_write(in, buf, (int)got);
  cr_assert_neq(SSL_do_handshake(ssl), 1, "the handshake cannot complete");
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  close(fd);
  ft_join(&t.e);
  cr_assert_str_eq(event_data(t.e.srv[0], DETOUR_FAKE_EV_TLS),
                   "dropped mid-handshake");
  tls_finish(&t);
}

/* The certificate entries: the handshake completes (verification is not
 * enforced by this client) and the certificate is the bad one. */
static void check_cert(const char *fault, long want, const char *cert) {
  tls_env t;
  client c;
  fault_start(&t, fault);
  int fd = starttls(&t, &c, "localhost");
  cr_assert(c.ok);
  cr_assert_eq(c.verify, want, "%s: %s", fault,
               X509_verify_cert_error_string(c.verify));
  X509 *peer = SSL_get1_peer_certificate(c.ssl);
  cr_assert_not_null(peer);
  if (want == X509_V_ERR_CERT_HAS_EXPIRED)
    cr_assert_lt(X509_cmp_current_time(X509_get0_notAfter(peer)), 0,
                 "notAfter is in the past");
  X509_free(peer);
  client_free(&c);
  close(fd);
  ft_join(&t.e);
  char want_cert[64];
  snprintf(want_cert, sizeof want_cert, "cert=%s ", cert);
  cr_assert(strstr(event_data(t.e.srv[0], DETOUR_FAKE_EV_TLS), want_cert));
  tls_finish(&t);
}

Test(tls_fault, cert_expired) {
  check_cert("cert_expired", X509_V_ERR_CERT_HAS_EXPIRED, "expired");
}
Test(tls_fault, cert_self_signed) {
  check_cert("cert_self_signed", X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT,
             "self_signed");
}
Test(tls_fault, cert_wrong_host) {
  check_cert("cert_wrong_host", X509_V_ERR_HOSTNAME_MISMATCH, "wrong_host");
}
Test(tls_fault, cert_unknown_ca) {
  check_cert("cert_unknown_ca", X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY,
             "unknown_ca");
}

Test(tls_fault, tls_old_only) {
  tls_env t;
  client c;
  fault_start(&t, "tls_old_only");
  /* A TLS 1.2+ client is refused ... */
  int fd = starttls(&t, &c, "localhost");
  cr_assert_not(c.ok);
  cr_assert_eq(ERR_GET_REASON(c.err), SSL_R_TLSV1_ALERT_PROTOCOL_VERSION,
               "got %s", ERR_reason_error_string(c.err));
  client_free(&c);
  close(fd);
  /* ... and one that still speaks TLS 1.0/1.1 gets TLS 1.1. */
  char buf[4096];
  fd = plain_ehlo(&t, buf, sizeof buf);
  FT_EXPECT(fd, "STARTTLS", "220");
  tls_client(&c, fd, t.ca, "localhost", TLS1_VERSION, TLS1_3_VERSION);
  cr_assert(c.ok, "%s", ERR_reason_error_string(c.err));
  cr_assert_eq(SSL_version(c.ssl), TLS1_1_VERSION);
  client_free(&c);
  close(fd);
  ft_join(&t.e);
  cr_assert_eq(ft_count(t.e.srv[0], DETOUR_FAKE_EV_TLS, -1), 2);
  tls_finish(&t);
}

Test(tls_fault, starttls_injection_in_one_segment) {
  tls_env t;
  client c;
  char buf[4096];
  fault_start(&t, "starttls_injection");
  int fd = plain_ehlo(&t, buf, sizeof buf);
  ft_send(fd, "STARTTLS\r\n");
  /* One read holds both replies: they left in one write, one segment. */
  ssize_t n = ft_read_some(fd, buf, sizeof buf - 1, 3000);
  cr_assert_gt(n, 0);
  buf[n] = '\0';
  cr_assert_str_eq(buf, "220 2.0.0 Ready to start TLS\r\n"
                        "250 2.0.0 injected before the handshake\r\n");
  tls_client(&c, fd, t.ca, "localhost", 0, 0);
  cr_assert(c.ok, "the handshake follows the injection");
  client_free(&c);
  close(fd);
  tls_finish(&t);
}

/* AUTH entries: the right password, and still the fault's reply. */
static void check_auth_fault(const char *fault, const char *want) {
  tls_env t;
  client c;
  char buf[4096];
  fault_start(&t, fault);
  int fd = starttls(&t, &c, "localhost");
  cr_assert(c.ok);
  tls_cmd(&c, "EHLO client.test", buf, sizeof buf);
  TLS_EXPECT(&c, "AUTH PLAIN " PLAIN_B64, want);
  TLS_EXPECT(&c, "MAIL FROM:<a@x.test>", "250"); /* auth not required */
  client_free(&c);
  close(fd);
  ft_join(&t.e);
  cr_assert_str_eq(event_data(t.e.srv[0], DETOUR_FAKE_EV_AUTH),
                   "mechanism=PLAIN user=alice password=match");
  tls_finish(&t);
}

Test(tls_fault, auth_535) { check_auth_fault("auth_535", "535 5.7.8"); }
Test(tls_fault, auth_454) { check_auth_fault("auth_454", "454 4.7.0"); }
Test(tls_fault, auth_534) { check_auth_fault("auth_534", "534 5.7.9"); }

Test(tls_fault, auth_required) {
  tls_env t;
  client c;
  char buf[4096];
  fault_start(&t, "auth_required");
  int fd = starttls(&t, &c, "localhost");
  cr_assert(c.ok);
  tls_cmd(&c, "EHLO client.test", buf, sizeof buf);
  TLS_EXPECT(&c, "MAIL FROM:<a@x.test>", "530 5.7.0");
  TLS_EXPECT(&c, "AUTH PLAIN " PLAIN_B64, "235");
  TLS_EXPECT(&c, "MAIL FROM:<a@x.test>", "250");
  client_free(&c);
  close(fd);
  tls_finish(&t);
}

Test(tls_fault, every_tls_entry_is_in_the_catalogue_with_its_class) {
  static const struct {
    const char *name;
    detour_class cls;
  } want[] = {{"starttls_stripped", DETOUR_CLASS_SWITCH},
              {"starttls_454", DETOUR_CLASS_SWITCH},
              {"tls_alert", DETOUR_CLASS_SWITCH},
              {"tls_drop", DETOUR_CLASS_SWITCH},
              {"cert_expired", DETOUR_CLASS_SWITCH},
              {"cert_self_signed", DETOUR_CLASS_SWITCH},
              {"cert_wrong_host", DETOUR_CLASS_SWITCH},
              {"cert_unknown_ca", DETOUR_CLASS_SWITCH},
              {"tls_old_only", DETOUR_CLASS_SWITCH},
              {"starttls_injection", DETOUR_CLASS_SWITCH},
              {"auth_535", DETOUR_CLASS_SWITCH},
              {"auth_454", DETOUR_CLASS_TRANSIENT},
              {"auth_534", DETOUR_CLASS_SWITCH},
              {"auth_required", DETOUR_CLASS_SWITCH}};
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    const detour_fake_fault_info *fi = detour_fake_fault_find(want[i].name);
    cr_assert_not_null(fi, "%s", want[i].name);
    cr_assert_eq(fi->expected, want[i].cls, "%s", want[i].name);
  }
  /* Whole-server TLS entries refuse a connection range. */
  detour_fake_script *s = detour_fake_script_new("t");
  detour_fake_fault_args a = {.conn_first = 1, .conn_last = 1};
  cr_assert_eq(detour_fake_script_add_fault(s, "cert_expired", &a),
               DETOUR_EINVAL);
  cr_assert_eq(detour_fake_script_add_fault(s, "auth_535", &a), 0);
  detour_fake_script_free(s);
}

/* ------------------------------------------------------------------------ */
/* The recording never holds the password                                    */

static void observe(void *arg, detour_fake_server *srv,
                    const detour_fake_event *ev) {
  detour_fake_event_write_json(ev, detour_fake_server_name(srv), arg);
}

Test(tls_record, no_password_nor_its_base64_anywhere) {
  tls_env t;
  client c;
  char buf[4096];
  char *live = NULL, *rec = NULL;
  size_t live_len = 0, rec_len = 0;
  FILE *lf = open_memstream(&live, &live_len);
  tls_start(&t, SUBMISSION);
  /* No client has connected yet: the loop thread emits nothing until one
   * does, so setting the observer now races with nothing. */
  detour_fake_server_set_observer(t.e.srv[0], observe, lf);
  int fd = starttls(&t, &c, "localhost");
  cr_assert(c.ok);
  tls_cmd(&c, "EHLO client.test", buf, sizeof buf);
  TLS_EXPECT(&c, "AUTH PLAIN " PLAIN_B64, "235");
  TLS_EXPECT(&c, "RSET", "250");
  TLS_EXPECT(&c, "AUTH LOGIN", "503"); /* authenticated already */
  client_free(&c);
  close(fd);
  /* LOGIN on a second connection, in clear this time (offer: always). */
  fd = plain_ehlo(&t, buf, sizeof buf);
  FT_EXPECT(fd, "AUTH LOGIN", "334");
  FT_EXPECT(fd, LOGIN_USER_B64, "334");
  FT_EXPECT(fd, LOGIN_PASS_B64, "235");
  close(fd);
  ft_join(&t.e);
  FILE *rf = open_memstream(&rec, &rec_len);
  cr_assert_eq(detour_fake_server_write_jsonl(t.e.srv[0], rf), 0);
  fclose(rf);
  fclose(lf);
  const char *secrets[] = {PASSWORD, PLAIN_B64, LOGIN_PASS_B64};
  for (size_t i = 0; i < 3; i++) {
    cr_assert_null(strstr(rec, secrets[i]), "record holds '%s'", secrets[i]);
    cr_assert_null(strstr(live, secrets[i]), "events hold '%s'", secrets[i]);
  }
  /* ... but it does hold what happened. */
  cr_assert_not_null(strstr(rec, "\"data\":\"AUTH PLAIN <redacted>\""));
  cr_assert_not_null(strstr(rec, "\"data\":\"<redacted>\""));
  cr_assert_not_null(strstr(rec, "mechanism=LOGIN user=alice password=match"));
  free(rec);
  free(live);
  tls_finish(&t);
}

/* ------------------------------------------------------------------------ */
/* SASL decoding (pure)                                                      */

Test(tls_sasl, base64_is_strict) {
  unsigned char out[16];
  cr_assert_eq(detour_fake_base64_decode("YWJj", 4, out, sizeof out), 3);
  cr_assert_eq(memcmp(out, "abc", 3), 0);
  cr_assert_eq(detour_fake_base64_decode("YWI=", 4, out, sizeof out), 2);
  cr_assert_eq(detour_fake_base64_decode("YQ==", 4, out, sizeof out), 1);
  cr_assert_eq(detour_fake_base64_decode("", 0, out, sizeof out), 0);
  cr_assert_eq(detour_fake_base64_decode("YQ", 2, out, sizeof out), -1);
  cr_assert_eq(detour_fake_base64_decode("Y===", 4, out, sizeof out), -1);
  cr_assert_eq(detour_fake_base64_decode("YQ==YWJj", 8, out, sizeof out), -1);
  cr_assert_eq(detour_fake_base64_decode("YW J", 4, out, sizeof out), -1);
  cr_assert_eq(detour_fake_base64_decode("YWJjYWJj", 8, out, 5), -1, "cap");
}

Test(tls_sasl, plain_and_login) {
  detour_fake_sasl x;
  unsigned both = DETOUR_FAKE_AUTH_PLAIN | DETOUR_FAKE_AUTH_LOGIN;
  const char *l = "AUTH PLAIN " PLAIN_B64;
  cr_assert_eq(detour_fake_sasl_begin(&x, l, strlen(l), both),
               DETOUR_FAKE_SASL_DONE);
  cr_assert_str_eq(x.user, "alice");
  cr_assert_str_eq(x.password, PASSWORD);
  cr_assert_str_eq(x.authzid, "");
  /* authzid "admin" */
  l = "auth plain YWRtaW4AYWxpY2UAcHc=";
  cr_assert_eq(detour_fake_sasl_begin(&x, l, strlen(l), both),
               DETOUR_FAKE_SASL_DONE);
  cr_assert_str_eq(x.authzid, "admin");
  cr_assert_str_eq(x.password, "pw");
  /* empty password, no NULs, "=" (empty initial response) */
  const char *bad[] = {"AUTH PLAIN AGFsaWNlAA==", "AUTH PLAIN YWxpY2U=",
                       "AUTH PLAIN =", "AUTH PLAIN ", "AUTH PLAIN a b"};
  for (size_t i = 0; i < 5; i++)
    cr_assert_eq(detour_fake_sasl_begin(&x, bad[i], strlen(bad[i]), both),
                 DETOUR_FAKE_SASL_SYNTAX, "%s", bad[i]);
  l = "AUTH LOGIN";
  cr_assert_eq(detour_fake_sasl_begin(&x, l, strlen(l), both),
               DETOUR_FAKE_SASL_CHALLENGE);
  cr_assert_str_eq(x.challenge, "VXNlcm5hbWU6");
  cr_assert_eq(detour_fake_sasl_step(&x, LOGIN_USER_B64, 8),
               DETOUR_FAKE_SASL_CHALLENGE);
  cr_assert_str_eq(x.challenge, "UGFzc3dvcmQ6");
  cr_assert_eq(detour_fake_sasl_step(&x, "*", 1), DETOUR_FAKE_SASL_CANCELLED);
  cr_assert_eq(detour_fake_sasl_step(&x, LOGIN_PASS_B64, 20),
               DETOUR_FAKE_SASL_DONE);
  cr_assert_str_eq(x.user, "alice");
  cr_assert_str_eq(x.password, PASSWORD);
  l = "AUTH LOGIN";
  cr_assert_eq(detour_fake_sasl_begin(&x, l, strlen(l), DETOUR_FAKE_AUTH_PLAIN),
               DETOUR_FAKE_SASL_BAD_MECH, "LOGIN not offered");
  l = "AUTH XOAUTH2 abc=";
  cr_assert_eq(detour_fake_sasl_begin(&x, l, strlen(l), both),
               DETOUR_FAKE_SASL_BAD_MECH);
  /* A NUL inside a LOGIN user name is refused, not cut. */
  cr_assert_eq(detour_fake_sasl_begin(&x, "AUTH LOGIN YQBi", 15, both),
               DETOUR_FAKE_SASL_SYNTAX);
}

/* ------------------------------------------------------------------------ */
/* YAML                                                                      */

static void load_error(const char *yaml, const char *want) {
  char err[512] = "";
  size_t n;
  detour_fake_script **v = detour_fake_load_string(yaml, strlen(yaml), "t.yaml",
                                                   &n, err, sizeof err);
  cr_assert_null(v, "%s loaded", yaml);
  cr_assert(strstr(err, want), "got '%s', want '%s'", err, want);
}

Test(tls_yaml, errors_name_the_place) {
  load_error("tls: tls13\n", "t.yaml:1:6: expected one of none, starttls");
  load_error("tls: { serve: bogus }\n", "t.yaml:1:15: expected a certificate");
  load_error("tls: { cert: a.pem }\n",
             "t.yaml:1:6: expected both tls cert and key");
  load_error("tls: { min_version: '1.3', max_version: '1.2' }\n",
             "expected min_version <= max_version");
  load_error("tls: { colour: red }\n", "t.yaml:1:8: unknown tls key 'colour'");
  load_error("auth: { mechanisms: [CRAM-MD5] }\n",
             "t.yaml:1:22: expected a mechanism: PLAIN or LOGIN");
  load_error("auth: { users: [alice] }\n", "t.yaml:1:16: expected users:");
  load_error("auth: { users: { alice: [x] } }\n",
             "expected the password of 'alice'");
  load_error("auth: { users_file: /nonexistent/u }\n",
             "/nonexistent/u: cannot open");
  load_error("auth: plain\n", "t.yaml:1:7: expected auth: a mapping");
}

Test(tls_yaml, users_file_errors_never_quote_the_line) {
  char path[] = "/tmp/detour-users-XXXXXX";
  int fd = mkstemp(path);
  const char text[] = "# users\nalice:pw1\n\nno-colon-" PASSWORD "\n";
  cr_assert_eq(write(fd, text, sizeof text - 1), (ssize_t)sizeof text - 1);
  close(fd);
  char yaml[256], err[512] = "";
  snprintf(yaml, sizeof yaml, "auth: { users_file: '%s' }\n", path);
  size_t n;
  cr_assert_null(detour_fake_load_string(yaml, strlen(yaml), "t.yaml", &n, err,
                                         sizeof err));
  cr_assert(strstr(err, ":4: expected user:password"), "%s", err);
  cr_assert_null(strstr(err, PASSWORD));
  /* Fixed, the file loads. */
  fd = open(path, O_WRONLY | O_TRUNC);
  cr_assert_eq(write(fd, "alice:pw1\nbob:pw:2\n", 19), 19);
  close(fd);
  detour_fake_script **v = detour_fake_load_string(yaml, strlen(yaml), "t.yaml",
                                                   &n, err, sizeof err);
  cr_assert_not_null(v, "%s", err);
  cr_assert_eq(detour_fake_script_auth(v[0])->mechanisms,
               DETOUR_FAKE_AUTH_PLAIN | DETOUR_FAKE_AUTH_LOGIN);
  detour_fake_scripts_free(v, n);
  unlink(path);
}

/* ------------------------------------------------------------------------ */
/* Out of memory inside a TLS session                                        */

/* Allocations of the fake library: the Nth fails (sticky: and every one
 * after it) while armed. OpenSSL's own allocations are not ours and never
 * fail here. */
static _Atomic long oom_count, oom_at = -1;
static _Atomic bool oom_sticky;

static bool oom_now(void) {
  if (oom_at < 0)
    return false;
  long k = oom_count++;
  return oom_sticky ? k >= oom_at : k == oom_at;
}
static void *oom_malloc(size_t n, void *u) {
  return oom_now() ? NULL : malloc(n);
}
static void *oom_calloc(size_t n, size_t k, void *u) {
  return oom_now() ? NULL : calloc(n, k);
}
static void *oom_realloc(void *p, size_t n, void *u) {
  return oom_now() ? NULL : realloc(p, n);
}
static void oom_free(void *p, void *u) { free(p); }

/* One STARTTLS + AUTH + MAIL session that tolerates the server going
 * away at any step; true when it got through to the 250 to MAIL. */
static bool oom_session(tls_env *t) {
  char buf[4096];
  bool ok = false;
  int fd = ft_connect(t->e.srv[0]);
  if (fd < 0)
    return false;
  struct timeval tv = {2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (ft_read_reply(fd, buf, sizeof buf, 2000) > 0 &&
      strncmp(buf, "220", 3) == 0 &&
      ft_cmd(fd, "EHLO client.test", buf, sizeof buf) > 0 &&
      ft_cmd(fd, "STARTTLS", buf, sizeof buf) > 0 &&
      strncmp(buf, "220", 3) == 0) {
    client c;
    tls_client(&c, fd, t->ca, "localhost", 0, 0);
    ok = c.ok && tls_cmd(&c, "EHLO client.test", buf, sizeof buf) > 0 &&
         tls_cmd(&c, "AUTH PLAIN " PLAIN_B64, buf, sizeof buf) > 0 &&
         strncmp(buf, "235", 3) == 0 &&
         tls_cmd(&c, "MAIL FROM:<a@x.test>", buf, sizeof buf) > 0 &&
         strncmp(buf, "250", 3) == 0;
    client_free(&c);
  }
  close(fd);
  return ok;
}

/* Fail the 1st, 2nd, ... allocation of a session (alone, or with every
 * one after it) until a session needs no failing allocation at all: every
 * step of the session has been hit. Returns the points swept. */
static long oom_sweep(tls_env *t, bool sticky) {
  long n;
  bool clean = false;
  oom_sticky = sticky;
  for (n = 0; n < 2000 && !clean; n++) {
    oom_count = 0;
    oom_at = n;
    bool ok = oom_session(t);
    clean = oom_count <= n; /* the failing one never came */
    oom_at = -1;
    cr_assert(!clean || ok, "with no failure the session works (n=%ld)", n);
  }
  cr_assert(clean, "a session needs fewer than 2000 allocations");
  cr_assert_gt(n, 10, "the sweep went through the session (%ld)", n);
  return n;
}

Test(tls_oom, every_allocation_of_a_tls_session_can_fail, .timeout = 300) {
  detour_fake_mem m = {NULL, oom_malloc, oom_calloc, oom_realloc, oom_free};
  detour_fake_set_mem(&m);
  tls_env t;
  tls_start(&t, SUBMISSION);
  long n = oom_sweep(&t, false);
  long n2 = oom_sweep(&t, true);
  /* The server goes on, and recorded the sessions it had to drop. */
  cr_assert(oom_session(&t), "a session after the sweep works");
  ft_join(&t.e);
  detour_fake_stats st;
  detour_fake_server_stats(t.e.srv[0], &st);
  cr_assert_gt(st.nomem, 0, "out of memory was seen and counted");
  cr_log_info("TLS session OOM sweep: %ld + %ld (sticky) points, %" PRIu64
              " nomem",
              n, n2, st.nomem);
  tls_finish(&t);
}

/* ------------------------------------------------------------------------ */
/* TLS and AUTH in the connection record, at every record level              */

Test(tls_record, summary_level_keeps_tls_and_auth_per_connection) {
  tls_env t;
  client c;
  char buf[4096];
  tls_start(&t, SUBMISSION "record: summary\n");
  int fd = starttls(&t, &c, "localhost");
  cr_assert(c.ok);
  tls_cmd(&c, "EHLO client.test", buf, sizeof buf);
  TLS_EXPECT(&c, "AUTH PLAIN " PLAIN_B64, "235");
  client_free(&c);
  close(fd);
  fd = plain_ehlo(&t, buf, sizeof buf); /* in clear: nothing to show */
  FT_EXPECT(fd, "AUTH LOGIN " LOGIN_USER_B64, "334");
  FT_EXPECT(fd, "d3Jvbmc=", "535");
  close(fd);
  ft_join(&t.e);
  detour_fake_server *s = t.e.srv[0];
  cr_assert_eq(detour_fake_server_event_count(s), 0, "summary: no events");
  detour_fake_conn a, b;
  cr_assert_eq(detour_fake_server_conn(s, 0, &a), 0);
  cr_assert_eq(detour_fake_server_conn(s, 1, &b), 0);
  cr_assert_str_eq(a.tls_version, "TLSv1.3");
  cr_assert(strncmp(a.tls_cipher, "TLS_", 4) == 0, "%s", a.tls_cipher);
  cr_assert_str_eq(a.auth_mechanism, "PLAIN");
  cr_assert_str_eq(a.auth_user, "alice");
  cr_assert(a.auth_ok);
  cr_assert_str_eq(b.tls_version, "");
  cr_assert_str_eq(b.auth_user, "alice");
  cr_assert_not(b.auth_ok, "535: not accepted");
  char *rec = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&rec, &len);
  cr_assert_eq(detour_fake_server_write_jsonl(s, f), 0);
  fclose(f);
  cr_assert(
      strstr(rec, "\"event\":\"tls\",\"data\":\"version=TLSv1.3 cipher=TLS_"),
      "%s", rec);
  cr_assert(
      strstr(rec, "\"data\":\"mechanism=PLAIN user=alice accepted=yes\""));
  cr_assert(strstr(rec, "\"data\":\"mechanism=LOGIN user=alice accepted=no\""));
  cr_assert_null(strstr(rec, PASSWORD));
  free(rec);
  tls_finish(&t);
}

Test(tls_ca, refuses_a_directory_others_can_write) {
  char dir[512], err[512] = "";
  snprintf(dir, sizeof dir, "/tmp/detour-ca-shared-%d", (int)getpid());
  cr_assert_eq(mkdir(dir, 0777), 0);
  cr_assert_eq(chmod(dir, 01777), 0);
  cr_assert_eq(detour_fake_ca_make(dir, sizeof dir, NULL, 0, err, sizeof err),
               DETOUR_EIO);
  cr_assert(strstr(err, "not a private directory"), "%s", err);
  /* A planted symlink is not followed. */
  char target[600], link[600];
  snprintf(target, sizeof target, "%s.victim", dir);
  snprintf(link, sizeof link, "%s/server.key", dir);
  FILE *v = fopen(target, "w");
  fputs("precious\n", v);
  fclose(v);
  cr_assert_eq(chmod(dir, 0700), 0);
  cr_assert_eq(symlink(target, link), 0);
  cr_assert_eq(detour_fake_ca_make(dir, sizeof dir, NULL, 0, err, sizeof err),
               DETOUR_EIO);
  cr_assert(strstr(err, "cannot create"), "%s", err);
  cr_assert_str_eq(slurp(target), "precious\n", "the victim is untouched");
  unlink(link);
  unlink(target);
  detour_fake_ca_remove(dir);
  rmdir(dir);
}

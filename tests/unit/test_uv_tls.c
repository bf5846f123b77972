/* SPDX-License-Identifier: MIT */
/* The TLS engine (src/uv/tls.c) against an in-process OpenSSL server.
 *
 * No sockets: the server is a second SSL object over its own pair of memory
 * BIOs, and the tests shuttle ciphertext between it and the engine, whole,
 * one byte at a time, or cut at every point of a record. Keys and
 * certificates are generated at start-up (EC P-256): a trusted "Test CA", a
 * server certificate for DNS:localhost + IP:127.0.0.1 signed by it, the same
 * from an untrusted CA, and an expired one; nothing is read from disk except
 * what a test writes into a temporary file or directory itself.
 *
 * Every engine call goes through a wrapper that first pushes a bogus entry
 * onto the thread's OpenSSL error queue (a verify failure, an unexpected
 * EOF, an alert, an allocation failure, in turn) and afterwards checks that
 * the queue is empty: a stale entry must neither change a result nor
 * survive the call. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "support.h"
#include "uv/tls.h"

/* ------------------------------------------------------------------------ */
/* Keys and certificates, made once                                          */
/* ------------------------------------------------------------------------ */

static EVP_PKEY *ca_key, *evil_key, *srv_key;
static X509 *ca_cert;      /* CN=Test CA, trusted by the tests */
static X509 *evil_cert;    /* CN=Untrusted CA */
static X509 *srv_cert;     /* CN=localhost, SAN DNS:localhost, IP:127.0.0.1 */
static X509 *evil_srv;     /* same names, signed by the untrusted CA */
static X509 *expired_srv;  /* same names, by Test CA, expired yesterday */

static EVP_PKEY *gen_key(void) {
  EVP_PKEY *k = NULL;
  EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_id(EVP_PKEY_EC, NULL);
  assert_non_null(pc);
  assert_int_equal(EVP_PKEY_keygen_init(pc), 1);
  assert_int_equal(
      EVP_PKEY_CTX_set_ec_paramgen_curve_nid(pc, NID_X9_62_prime256v1), 1);
  assert_int_equal(EVP_PKEY_keygen(pc, &k), 1);
  EVP_PKEY_CTX_free(pc);
  return k;
}

static void add_ext(X509 *cert, X509 *issuer, int nid, const char *value) {
  X509V3_CTX v;
  X509_EXTENSION *ex;
  X509V3_set_ctx_nodb(&v);
  X509V3_set_ctx(&v, issuer, cert, NULL, NULL, 0);
  ex = X509V3_EXT_conf_nid(NULL, &v, nid, value);
  assert_non_null(ex);
  assert_int_equal(X509_add_ext(cert, ex, -1), 1);
  X509_EXTENSION_free(ex);
}

/* issuer NULL: self-signed CA. Validity in days relative to now. */
static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer,
                       EVP_PKEY *issuer_key, long from_days, long to_days,
                       long serial) {
  X509 *c = X509_new();
  X509_NAME *name;
  assert_non_null(c);
  assert_int_equal(X509_set_version(c, 2), 1);
  assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(c), serial), 1);
  assert_non_null(X509_gmtime_adj(X509_getm_notBefore(c), from_days * 86400));
  assert_non_null(X509_gmtime_adj(X509_getm_notAfter(c), to_days * 86400));
  assert_int_equal(X509_set_pubkey(c, key), 1);
  name = X509_get_subject_name(c);
  assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                              (const unsigned char *)cn, -1,
                                              -1, 0),
                   1);
  assert_int_equal(
      X509_set_issuer_name(c, issuer ? X509_get_subject_name(issuer) : name),
      1);
  add_ext(c, issuer ? issuer : c, NID_subject_key_identifier, "hash");
  if (issuer == NULL) {
    add_ext(c, c, NID_basic_constraints, "critical,CA:TRUE");
    add_ext(c, c, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    add_ext(c, issuer, NID_authority_key_identifier, "keyid:always");
    add_ext(c, issuer, NID_basic_constraints, "critical,CA:FALSE");
    add_ext(c, issuer, NID_key_usage, "critical,digitalSignature");
    add_ext(c, issuer, NID_ext_key_usage, "serverAuth");
    add_ext(c, issuer, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1");
  }
  assert_true(X509_sign(c, issuer_key ? issuer_key : key, EVP_sha256()) > 0);
  return c;
}

static int make_fixtures(void **state) {
  (void)state;
  ca_key = gen_key();
  evil_key = gen_key();
  srv_key = gen_key();
  ca_cert = make_cert(ca_key, "Test CA", NULL, NULL, -1, 3650, 1);
  evil_cert = make_cert(evil_key, "Untrusted CA", NULL, NULL, -1, 3650, 2);
  srv_cert = make_cert(srv_key, "localhost", ca_cert, ca_key, -1, 365, 3);
  evil_srv = make_cert(srv_key, "localhost", evil_cert, evil_key, -1, 365, 4);
  expired_srv = make_cert(srv_key, "localhost", ca_cert, ca_key, -30, -1, 5);
  ERR_clear_error();
  return 0;
}

static int free_fixtures(void **state) {
  (void)state;
  X509_free(ca_cert);
  X509_free(evil_cert);
  X509_free(srv_cert);
  X509_free(evil_srv);
  X509_free(expired_srv);
  EVP_PKEY_free(ca_key);
  EVP_PKEY_free(evil_key);
  EVP_PKEY_free(srv_key);
  return 0;
}

/* A context from smtpuv__tls_ctx_new() that also trusts Test CA. */
static SSL_CTX *trusting_ctx(void) {
  SSL_CTX *ctx = NULL;
  char err[256];
  assert_int_equal(smtpuv__tls_ctx_new(NULL, NULL, &ctx, err, sizeof(err)), 0);
  assert_string_equal(err, "");
  assert_int_equal(X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), ca_cert),
                   1);
  return ctx;
}

/* ------------------------------------------------------------------------ */
/* Engine calls with a poisoned error queue                                  */
/* ------------------------------------------------------------------------ */

static unsigned poison_n;

static void raise_err(int lib, int reason) {
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
  ERR_raise(lib, reason);
#else
  ERR_put_error(lib, 0, reason, __FILE__, __LINE__);
#endif
}

/* A stale entry that would mislead an engine reading the queue blindly. */
static void poison(void) {
  switch (poison_n++ % 4) {
  case 0:
    raise_err(ERR_LIB_SSL, SSL_R_CERTIFICATE_VERIFY_FAILED);
    break;
  case 1:
#ifdef SSL_R_UNEXPECTED_EOF_WHILE_READING
    raise_err(ERR_LIB_SSL, SSL_R_UNEXPECTED_EOF_WHILE_READING);
#else
    raise_err(ERR_LIB_SSL, SSL_R_WRONG_VERSION_NUMBER);
#endif
    break;
  case 2:
    raise_err(ERR_LIB_SSL, SSL_AD_REASON_OFFSET + SSL_AD_HANDSHAKE_FAILURE);
    break;
  default:
    raise_err(ERR_LIB_SSL, ERR_R_MALLOC_FAILURE);
    break;
  }
  assert_int_not_equal(ERR_peek_error(), 0);
}

#define QUEUE_EMPTY() assert_int_equal(ERR_peek_error(), 0)

static int x_handshake(smtpuv_tls *t) {
  int r;
  poison();
  r = smtpuv__tls_handshake(t);
  QUEUE_EMPTY();
  return r;
}

static int x_feed(smtpuv_tls *t, const void *p, size_t n) {
  int r;
  poison();
  r = smtpuv__tls_feed(t, p, n);
  QUEUE_EMPTY();
  return r;
}

static long x_read(smtpuv_tls *t, void *buf, size_t cap) {
  long r;
  poison();
  r = smtpuv__tls_read(t, buf, cap);
  QUEUE_EMPTY();
  return r;
}

static int x_write(smtpuv_tls *t, const void *p, size_t n) {
  int r;
  poison();
  r = smtpuv__tls_write(t, p, n);
  QUEUE_EMPTY();
  return r;
}

static int x_shutdown(smtpuv_tls *t) {
  int r;
  poison();
  r = smtpuv__tls_shutdown(t);
  QUEUE_EMPTY();
  return r;
}

static int x_take(smtpuv_tls *t, void **buf, size_t *len) {
  int r;
  poison();
  r = smtpuv__tls_take_output(t, buf, len);
  QUEUE_EMPTY();
  return r;
}

static void x_eof(smtpuv_tls *t) {
  poison();
  smtpuv__tls_eof(t);
  QUEUE_EMPTY();
}

static size_t x_summary(smtpuv_tls *t, char *buf, size_t cap) {
  size_t r;
  poison();
  r = smtpuv__tls_summary(t, buf, cap);
  QUEUE_EMPTY();
  return r;
}

/* ------------------------------------------------------------------------ */
/* The in-process server                                                     */
/* ------------------------------------------------------------------------ */

typedef struct srv {
  SSL_CTX *ctx;
  SSL *ssl;
  BIO *in, *out; /* owned by ssl */
  int done;      /* handshake complete */
  int failed;    /* handshake failed */
  int last_err;  /* SSL_get_error of the last failing server read */
} srv;

typedef struct srv_opts {
  X509 *cert;       /* NULL: srv_cert */
  int max_version;  /* 0: default */
  int old_versions; /* allow TLS 1.0/1.1 (security level 0) */
  int reject_sni;   /* fatal unrecognized_name alert from the SNI callback */
  SSL_CTX *shared;  /* use this server context (referenced), ignore the
                       fields above: sessions resume across connections */
  int want_client_cert; /* require a client certificate from Test CA */
} srv_opts;

static int sni_reject(SSL *s, int *al, void *arg) {
  (void)s;
  (void)arg;
  *al = SSL_AD_UNRECOGNIZED_NAME;
  return SSL_TLSEXT_ERR_ALERT_FATAL;
}

static void srv_init(srv *s, const srv_opts *o) {
  memset(s, 0, sizeof(*s));
  if (o && o->shared) {
    assert_int_equal(SSL_CTX_up_ref(o->shared), 1);
    s->ctx = o->shared;
    o = NULL;
    goto ssl;
  }
  s->ctx = SSL_CTX_new(TLS_server_method());
  assert_non_null(s->ctx);
  assert_int_equal(
      SSL_CTX_use_certificate(s->ctx, o && o->cert ? o->cert : srv_cert), 1);
  assert_int_equal(SSL_CTX_use_PrivateKey(s->ctx, srv_key), 1);
  if (o && o->old_versions) {
    SSL_CTX_set_security_level(s->ctx, 0);
    SSL_CTX_set_min_proto_version(s->ctx, TLS1_VERSION);
  }
  if (o && o->max_version)
    assert_int_equal(SSL_CTX_set_max_proto_version(s->ctx, o->max_version),
                     1);
  if (o && o->reject_sni)
    SSL_CTX_set_tlsext_servername_callback(s->ctx, sni_reject);
  if (o && o->want_client_cert) {
    assert_int_equal(X509_STORE_add_cert(SSL_CTX_get_cert_store(s->ctx),
                                         ca_cert),
                     1);
    SSL_CTX_set_verify(s->ctx,
                       SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                       NULL);
    /* the fixture's certificate is for servers (EKU serverAuth) */
    assert_int_equal(SSL_CTX_set_purpose(s->ctx, X509_PURPOSE_ANY), 1);
  }
ssl:
  s->ssl = SSL_new(s->ctx);
  s->in = BIO_new(BIO_s_mem());
  s->out = BIO_new(BIO_s_mem());
  assert_non_null(s->ssl);
  assert_non_null(s->in);
  assert_non_null(s->out);
  BIO_set_mem_eof_return(s->in, -1);
  SSL_set_bio(s->ssl, s->in, s->out);
  SSL_set_accept_state(s->ssl);
  ERR_clear_error();
}

static void srv_free(srv *s) {
  SSL_free(s->ssl);
  SSL_CTX_free(s->ctx);
  ERR_clear_error();
}

static void srv_step(srv *s) {
  if (!s->done && !s->failed) {
    int r = SSL_do_handshake(s->ssl);
    if (r == 1)
      s->done = 1;
    else if (SSL_get_error(s->ssl, r) != SSL_ERROR_WANT_READ)
      s->failed = 1;
  }
  ERR_clear_error();
}

/* All ciphertext the server has written, in a malloc'd buffer. */
static size_t srv_take(srv *s, unsigned char **buf) {
  size_t n = BIO_ctrl_pending(s->out);
  *buf = NULL;
  if (n == 0)
    return 0;
  *buf = malloc(n);
  assert_non_null(*buf);
  assert_int_equal(BIO_read(s->out, *buf, (int)n), (int)n);
  return n;
}

static void srv_write(srv *s, const void *p, size_t n) {
  assert_int_equal(SSL_write(s->ssl, p, (int)n), (int)n);
  ERR_clear_error();
}

/* Decrypt everything the server has received; returns the byte count. */
static size_t srv_read(srv *s, unsigned char *buf, size_t cap) {
  size_t got = 0;
  for (;;) {
    int r;
    assert_true(got < cap);
    r = SSL_read(s->ssl, buf + got, (int)(cap - got));
    if (r <= 0) {
      s->last_err = SSL_get_error(s->ssl, r);
      break;
    }
    got += (size_t)r;
  }
  ERR_clear_error();
  return got;
}

/* ------------------------------------------------------------------------ */
/* A connection: engine + server                                             */
/* ------------------------------------------------------------------------ */

typedef struct conn {
  const smtpuv_mem *mem; /* the engine's allocator */
  smtpuv_tls *t;
  srv s;
  SSL_CTX *cctx; /* the caller's context, or NULL */
} conn;

/* Default: TLS 1.3, Test CA trusted through a caller context, host
   "localhost". Any `cfg` field given overrides. */
static void conn_open(conn *c, const smtpuv_mem *mem, const srv_opts *so,
                      const smtpuv_tls_config *cfg) {
  smtpuv_tls_config def;
  memset(c, 0, sizeof(*c));
  c->mem = mem ? mem : smtpuv_mem_default();
  srv_init(&c->s, so);
  if (cfg == NULL) {
    memset(&def, 0, sizeof(def));
    c->cctx = trusting_ctx();
    def.ctx = c->cctx;
    def.host = "localhost";
    def.verify = 1;
    cfg = &def;
  }
  poison();
  assert_int_equal(smtpuv__tls_new(mem, cfg, &c->t), 0);
  QUEUE_EMPTY();
  assert_non_null(c->t);
  assert_string_equal(smtpuv__tls_error_text(c->t), "");
}

static void conn_close(conn *c) {
  smtpuv__tls_free(c->t);
  c->t = NULL;
  srv_free(&c->s);
  SSL_CTX_free(c->cctx);
  c->cctx = NULL;
}

/* Engine output to the server. Returns 0 or the engine's error. */
static int e2s(conn *c) {
  void *b;
  size_t n;
  int r = x_take(c->t, &b, &n);
  if (r != 0) {
    assert_null(b);
    assert_int_equal(n, 0);
    return r;
  }
  assert_int_equal(smtpuv__tls_pending_output(c->t), 0);
  if (n == 0) {
    assert_null(b);
    return 0;
  }
  assert_int_equal(BIO_write(c->s.in, b, (int)n), (int)n);
  c->mem->free(b, c->mem->user);
  return 0;
}

/*
 * Run the handshake; the server's bytes reach the engine `chunk` bytes at a
 * time (0: each flight whole), with a handshake call after each piece.
 * Returns the engine's final answer (1 or an error code) or an error from
 * taking its output.
 */
static int run_handshake(conn *c, size_t chunk) {
  unsigned char *q = NULL;
  size_t qlen = 0, qoff = 0;
  int r = 0;
  for (int round = 0; round < 200000; round++) {
    int rc;
    r = x_handshake(c->t);
    assert_true(r == 0 || r == 1 || r < 0);
    rc = e2s(c);
    if (rc != 0) {
      r = rc;
      break;
    }
    srv_step(&c->s);
    if (r != 0)
      break;
    if (qoff == qlen) {
      free(q);
      qoff = 0;
      qlen = srv_take(&c->s, &q);
      assert_true(qlen > 0); /* otherwise both sides wait: stalled */
    }
    size_t k = chunk != 0 && chunk < qlen - qoff ? chunk : qlen - qoff;
    assert_int_equal(x_feed(c->t, q + qoff, k), 0);
    qoff += k;
  }
  if (r == 1) {
    /* the engine must not finish before the server's last flight is in */
    assert_int_equal(qoff, qlen);
    assert_true(c->s.done);
    assert_string_equal(smtpuv__tls_error_text(c->t), "");
  }
  free(q);
  return r;
}

/* Everything the engine can decrypt now, taking its output after reads.
   Returns the bytes read, or the first error (bytes read before it are in
   *got). */
static long engine_read_all(conn *c, unsigned char *buf, size_t cap,
                            size_t rcap, size_t *got) {
  for (int i = 0; i < 10000000; i++) {
    size_t room = cap - *got;
    long r;
    assert_true(room > 0);
    r = x_read(c->t, buf + *got, room < rcap ? room : rcap);
    if (r < 0)
      return r;
    assert_int_equal(e2s(c), 0);
    if (r == 0)
      return (long)*got;
    assert_true((size_t)r <= rcap);
    *got += (size_t)r;
  }
  fail_msg("read loop did not end");
  return -1;
}

/* Server ciphertext to the engine `chunk` bytes at a time (0: whole), with
   a full read after each piece. Returns the total plaintext or an error. */
static long s2e(conn *c, size_t chunk, unsigned char *buf, size_t cap,
                size_t rcap) {
  unsigned char *q;
  size_t n = srv_take(&c->s, &q), off = 0, got = 0;
  long r = 0;
  while (off < n) {
    size_t k = chunk != 0 && chunk < n - off ? chunk : n - off;
    assert_int_equal(x_feed(c->t, q + off, k), 0);
    off += k;
    r = engine_read_all(c, buf, cap, rcap, &got);
    if (r < 0)
      break;
  }
  free(q);
  return r < 0 ? r : (long)got;
}

static void fill_pattern(unsigned char *p, size_t n, unsigned seed) {
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; i++) {
    x = x * 1103515245u + 12345u;
    p[i] = (unsigned char)(x >> 16);
  }
}

static int version_of(void **state) {
  return *state != NULL ? *(const int *)*state : TLS1_3_VERSION;
}

static void open_version(conn *c, void **state) {
  srv_opts so;
  memset(&so, 0, sizeof(so));
  so.max_version = version_of(state);
  conn_open(c, NULL, &so, NULL);
}

/* ------------------------------------------------------------------------ */
/* Handshake and data                                                        */
/* ------------------------------------------------------------------------ */

static void check_summary(conn *c, const char *version) {
  char sum[256], want[64];
  struct tm tm;
  size_t n = x_summary(c->t, sum, sizeof(sum));
  assert_int_equal(n, strlen(sum));
  assert_ptr_equal(strstr(sum, version), sum);
  assert_non_null(strstr(sum, "; subject CN=localhost; issuer CN=Test CA; "));
  {
    /* the certificate's SHA-256 (as -S prints it) and validity */
    unsigned char md[32];
    unsigned int mdn = 0;
    char hex[160] = "; sha256 ";
    assert_int_equal(X509_digest(srv_cert, EVP_sha256(), md, &mdn), 1);
    for (unsigned int i = 0; i < mdn; i++)
      snprintf(hex + strlen(hex), 4, "%02X%s", md[i], i + 1 < mdn ? ":" : "");
    strcat(hex, "; valid since ");
    if (strstr(sum, hex) == NULL)
      fail_msg("summary \"%s\" lacks \"%s\"", sum, hex);
  }
  assert_int_equal(ASN1_TIME_to_tm(X509_get0_notAfter(srv_cert), &tm), 1);
  snprintf(want, sizeof(want), "; expires %04d-%02d-%02d", tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday);
  assert_non_null(strstr(sum, want));
  assert_string_equal(strstr(sum, want), want); /* at the end */
  /* the cipher sits between the version and the subject */
  assert_non_null(
      strstr(sum, SSL_CIPHER_get_name(SSL_get_current_cipher(c->s.ssl))));
}

static void test_handshake_and_data(void **state) {
  static const char hello[] = "EHLO client.example\r\n";
  static const char reply[] = "250-mail.example\r\n250 PIPELINING\r\n";
  int v = version_of(state);
  unsigned char buf[256];
  conn c;

  open_version(&c, state);
  assert_int_equal(run_handshake(&c, 0), 1);
  assert_int_equal(SSL_version(c.s.ssl), v);
  assert_string_equal(
      SSL_get_servername(c.s.ssl, TLSEXT_NAMETYPE_host_name), "localhost");
  check_summary(&c, v == TLS1_3_VERSION ? "TLSv1.3 " : "TLSv1.2 ");
  assert_int_equal(x_handshake(c.t), 1); /* stays done */

  /* client to server */
  assert_int_equal(x_write(c.t, hello, strlen(hello)), 0);
  assert_true(smtpuv__tls_pending_output(c.t) > strlen(hello));
  assert_int_equal(e2s(&c), 0);
  assert_int_equal(srv_read(&c.s, buf, sizeof(buf)), strlen(hello));
  assert_memory_equal(buf, hello, strlen(hello));

  /* server to client (TLS 1.3: the session tickets come along) */
  srv_write(&c.s, reply, strlen(reply));
  assert_int_equal(s2e(&c, 0, buf, sizeof(buf), sizeof(buf)), strlen(reply));
  assert_memory_equal(buf, reply, strlen(reply));
  assert_int_equal(x_read(c.t, buf, sizeof(buf)), 0); /* nothing more */

  /* an empty write is a no-op */
  assert_int_equal(x_write(c.t, "", 0), 0);
  assert_int_equal(smtpuv__tls_pending_output(c.t), 0);
  conn_close(&c);
}

static void test_handshake_per_byte(void **state) {
  static const char msg[] = "220 ready\r\n";
  unsigned char buf[64];
  conn c;
  open_version(&c, state);
  assert_int_equal(run_handshake(&c, 1), 1);
  srv_write(&c.s, msg, strlen(msg));
  assert_int_equal(s2e(&c, 1, buf, sizeof(buf), sizeof(buf)), strlen(msg));
  assert_memory_equal(buf, msg, strlen(msg));
  conn_close(&c);
}

/* One record cut at every point: no plaintext until its last byte. */
static void test_record_every_split(void **state) {
  unsigned char msg[300], buf[400];
  unsigned char *q;
  size_t n, got;
  conn c;

  open_version(&c, state);
  assert_int_equal(run_handshake(&c, 0), 1);
  /* deliver the tickets (TLS 1.3) so that only the record is left */
  assert_int_equal(s2e(&c, 0, buf, sizeof(buf), sizeof(buf)), 0);
  fill_pattern(msg, sizeof(msg), 1);
  srv_write(&c.s, msg, sizeof(msg));
  n = srv_take(&c.s, &q); /* the record's size */
  assert_true(n > sizeof(msg));
  assert_int_equal(x_feed(c.t, q, n), 0);
  free(q);
  got = 0;
  assert_int_equal(engine_read_all(&c, buf, sizeof(buf), sizeof(buf), &got),
                   sizeof(msg));
  for (size_t k = 1; k < n; k++) {
    msg[0] = (unsigned char)k;
    srv_write(&c.s, msg, sizeof(msg));
    assert_int_equal(srv_take(&c.s, &q), n);
    assert_int_equal(x_feed(c.t, q, k), 0);
    got = 0;
    assert_int_equal(engine_read_all(&c, buf, sizeof(buf), sizeof(buf), &got),
                     0);
    assert_int_equal(x_feed(c.t, q + k, n - k), 0);
    assert_int_equal(engine_read_all(&c, buf, sizeof(buf), sizeof(buf), &got),
                     sizeof(msg));
    assert_memory_equal(buf, msg, sizeof(msg));
    free(q);
  }
  conn_close(&c);
}

/* Several records, including multi-record writes, in a single feed; small
   read buffers so OpenSSL holds decrypted data between calls. */
static void test_several_records_one_feed(void **state) {
  size_t sizes[] = {1, 5, 100, 16384, 16385, 40000, 3};
  size_t total = 0, got;
  unsigned char *all, *buf;
  conn c;

  for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
    total += sizes[i];
  all = malloc(total);
  buf = malloc(total + 1);
  assert_non_null(all);
  assert_non_null(buf);
  fill_pattern(all, total, 2);

  open_version(&c, state);
  assert_int_equal(run_handshake(&c, 0), 1);
  for (size_t i = 0, off = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
    srv_write(&c.s, all + off, sizes[i]);
    off += sizes[i];
  }
  for (size_t rcap = 1; rcap <= 100000; rcap *= 77) {
    unsigned char *q;
    size_t n;
    if (rcap > 1) /* same records again for another read size */
      for (size_t i = 0, off = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        srv_write(&c.s, all + off, sizes[i]);
        off += sizes[i];
      }
    n = srv_take(&c.s, &q);
    assert_int_equal(x_feed(c.t, q, n), 0); /* one feed */
    free(q);
    got = 0;
    assert_int_equal(engine_read_all(&c, buf, total + 1, rcap, &got),
                     (long)total);
    assert_memory_equal(buf, all, total);
  }
  conn_close(&c);
  free(all);
  free(buf);
}

static void test_large_both_directions(void **state) {
  const size_t size = 1u << 20;
  unsigned char *data = malloc(size), *buf = malloc(size + 1);
  conn c;
  assert_non_null(data);
  assert_non_null(buf);
  fill_pattern(data, size, 3);

  open_version(&c, state);
  assert_int_equal(run_handshake(&c, 0), 1);
  assert_int_equal(x_write(c.t, data, size), 0);
  assert_int_equal(e2s(&c), 0);
  assert_int_equal(srv_read(&c.s, buf, size + 1), size);
  assert_memory_equal(buf, data, size);

  data[0] ^= 0xff;
  srv_write(&c.s, data, size);
  assert_int_equal(s2e(&c, 0, buf, size + 1, 16384), (long)size);
  assert_memory_equal(buf, data, size);
  conn_close(&c);
  free(data);
  free(buf);
}

/* TLS 1.3 key update requested by the server: the engine reads on with
   the new keys, and OpenSSL answers with its own KeyUpdate ahead of our next
   record (RFC 8446 4.6.3: before the next application data). */
static void test_key_update(void **state) {
  unsigned char buf[64];
  conn c;
  (void)state;
  conn_open(&c, NULL, NULL, NULL);
  assert_int_equal(run_handshake(&c, 0), 1);
  for (int round = 0; round < 3; round++) {
    assert_int_equal(SSL_key_update(c.s.ssl, SSL_KEY_UPDATE_REQUESTED), 1);
    srv_write(&c.s, "one", 3);
    assert_int_equal(s2e(&c, round == 1 ? 1 : 0, buf, sizeof(buf), 2), 3);
    assert_memory_equal(buf, "one", 3);
    assert_int_equal(x_write(c.t, "two", 3), 0);
    assert_int_equal(e2s(&c), 0);
    assert_int_equal(srv_read(&c.s, buf, sizeof(buf)), 3);
    assert_memory_equal(buf, "two", 3);
    assert_int_equal(c.s.last_err, SSL_ERROR_WANT_READ);
  }
  conn_close(&c);
}

/* TLS 1.2 renegotiation started by the server is refused: the engine
   answers the HelloRequest with a no_renegotiation warning alert (policy:
   see smtpuv__tls_new in tls.h). An OpenSSL server that asked for it gives
   up with a fatal handshake_failure alert, which the engine reports. */
static void test_renegotiation(void **state) {
  srv_opts so;
  unsigned char buf[64];
  conn c;
  (void)state;
  memset(&so, 0, sizeof(so));
  so.max_version = TLS1_2_VERSION;
  conn_open(&c, NULL, &so, NULL);
  assert_int_equal(run_handshake(&c, 0), 1);
  assert_int_equal(SSL_renegotiate(c.s.ssl), 1);
  (void)SSL_do_handshake(c.s.ssl); /* sends HelloRequest */
  ERR_clear_error();
  /* the engine reads it and queues its refusal (taken by s2e) */
  assert_int_equal(s2e(&c, 0, buf, sizeof(buf), sizeof(buf)), 0);
  assert_int_equal(srv_read(&c.s, buf, sizeof(buf)), 0);
  assert_int_equal(c.s.last_err, SSL_ERROR_SSL); /* no_renegotiation */
  assert_int_equal(SSL_num_renegotiations(c.s.ssl), 1);
  assert_int_equal(s2e(&c, 0, buf, sizeof(buf), sizeof(buf)), SMTPUV_ETLS);
  if (strstr(smtpuv__tls_error_text(c.t), "handshake failure") == NULL)
    fail_msg("error text: %s", smtpuv__tls_error_text(c.t));
  conn_close(&c);
}

/* Regression: a HelloRequest arrives while the client has a command to
   write. Before renegotiation was refused, the engine started a new
   handshake on the read, and the next write got WANT_READ, which it treated
   as fatal ("unexpected retry"): the stream died on our side. Now the write
   goes out (after the refusal). */
static void test_renegotiation_then_write(void **state) {
  srv_opts so;
  unsigned char buf[64];
  conn c;
  void *out;
  size_t n;
  (void)state;
  memset(&so, 0, sizeof(so));
  so.max_version = TLS1_2_VERSION;
  conn_open(&c, NULL, &so, NULL);
  assert_int_equal(run_handshake(&c, 0), 1);
  assert_int_equal(SSL_renegotiate(c.s.ssl), 1);
  (void)SSL_do_handshake(c.s.ssl); /* sends HelloRequest */
  ERR_clear_error();
  srv_write(&c.s, "250 ok", 6); /* a reply in the same flight */
  assert_int_equal(s2e(&c, 0, buf, sizeof(buf), sizeof(buf)), 6);
  assert_memory_equal(buf, "250 ok", 6);
  /* and a pipelined command goes out right away */
  assert_int_equal(x_write(c.t, "RCPT", 4), 0);
  assert_string_equal(smtpuv__tls_error_text(c.t), "");
  assert_int_equal(x_take(c.t, &out, &n), 0);
  assert_true(n > 4);
  c.mem->free(out, c.mem->user);
  conn_close(&c);
}

/* ------------------------------------------------------------------------ */
/* Verification                                                              */
/* ------------------------------------------------------------------------ */

static void expect_cert_error(conn *c, const char *text) {
  const char *err;
  int r = run_handshake(c, 0);
  assert_int_equal(r, SMTPUV_ECERT);
  err = smtpuv__tls_error_text(c->t);
  if (strstr(err, text) == NULL)
    fail_msg("error text \"%s\" lacks \"%s\"", err, text);
  assert_ptr_equal(strstr(err, "certificate verify failed: "), err);
  /* the alert reached the server, which gives up too */
  assert_true(c->s.failed);
  /* sticky */
  assert_int_equal(x_handshake(c->t), SMTPUV_ECERT);
  assert_int_equal(x_write(c->t, "x", 1), SMTPUV_ECERT);
  {
    char b[4];
    assert_int_equal(x_read(c->t, b, sizeof(b)), SMTPUV_ECERT);
  }
  assert_int_equal(x_shutdown(c->t), SMTPUV_ECERT);
}

static void test_hostname_mismatch(void **state) {
  smtpuv_tls_config cfg;
  conn c;
  SSL_CTX *ctx = trusting_ctx();
  (void)state;
  memset(&cfg, 0, sizeof(cfg));
  cfg.ctx = ctx;
  cfg.host = "wrong.example";
  cfg.verify = 1;
  conn_open(&c, NULL, NULL, &cfg);
  expect_cert_error(&c, "hostname mismatch (expected wrong.example)");
  conn_close(&c);
  SSL_CTX_free(ctx);
}

static void test_untrusted_ca(void **state) {
  srv_opts so;
  conn c;
  (void)state;
  memset(&so, 0, sizeof(so));
  so.cert = evil_srv;
  conn_open(&c, NULL, &so, NULL);
  expect_cert_error(&c, "unable to get local issuer certificate");
  conn_close(&c);
}

static void test_expired(void **state) {
  srv_opts so;
  conn c;
  (void)state;
  memset(&so, 0, sizeof(so));
  so.cert = expired_srv;
  so.max_version = TLS1_2_VERSION;
  conn_open(&c, NULL, &so, NULL);
  expect_cert_error(&c, "certificate has expired");
  conn_close(&c);
}

/* The engine's own context trusts the system store only. */
static void test_system_store_rejects_test_ca(void **state) {
  smtpuv_tls_config cfg;
  conn c;
  (void)state;
  memset(&cfg, 0, sizeof(cfg));
  cfg.host = "localhost";
  cfg.verify = 1;
  conn_open(&c, NULL, NULL, &cfg);
  expect_cert_error(&c, "unable to get local issuer certificate");
  conn_close(&c);
}

static void test_verify_off(void **state) {
  smtpuv_tls_config cfg;
  srv_opts so;
  unsigned char buf[8];
  conn c;
  (void)state;
  memset(&so, 0, sizeof(so));
  so.cert = evil_srv;
  memset(&cfg, 0, sizeof(cfg));
  cfg.host = "wrong.example"; /* still sent as SNI, not checked */
  cfg.verify = 0;
  conn_open(&c, NULL, &so, &cfg);
  assert_int_equal(run_handshake(&c, 0), 1);
  assert_string_equal(
      SSL_get_servername(c.s.ssl, TLSEXT_NAMETYPE_host_name), "wrong.example");
  srv_write(&c.s, "ok", 2);
  assert_int_equal(s2e(&c, 0, buf, sizeof(buf), sizeof(buf)), 2);
  conn_close(&c);

  /* no host at all */
  so.cert = expired_srv;
  cfg.host = NULL;
  conn_open(&c, NULL, &so, &cfg);
  assert_int_equal(run_handshake(&c, 0), 1);
  assert_null(SSL_get_servername(c.s.ssl, TLSEXT_NAMETYPE_host_name));
  conn_close(&c);
}

static void test_ip_literal(void **state) {
  smtpuv_tls_config cfg;
  SSL_CTX *ctx = trusting_ctx();
  conn c;
  (void)state;
  memset(&cfg, 0, sizeof(cfg));
  cfg.ctx = ctx;
  cfg.verify = 1;

  cfg.host = "127.0.0.1";
  conn_open(&c, NULL, NULL, &cfg);
  assert_int_equal(run_handshake(&c, 0), 1);
  assert_null(SSL_get_servername(c.s.ssl, TLSEXT_NAMETYPE_host_name));
  conn_close(&c);

  cfg.host = "127.0.0.2";
  conn_open(&c, NULL, NULL, &cfg);
  expect_cert_error(&c, "IP address mismatch (expected 127.0.0.2)");
  conn_close(&c);

  cfg.host = "::1";
  conn_open(&c, NULL, NULL, &cfg);
  expect_cert_error(&c, "IP address mismatch (expected ::1)");
  conn_close(&c);

  /* a trailing dot is dropped from names */
  cfg.host = "localhost.";
  conn_open(&c, NULL, NULL, &cfg);
  assert_int_equal(run_handshake(&c, 0), 1);
  assert_string_equal(
      SSL_get_servername(c.s.ssl, TLSEXT_NAMETYPE_host_name), "localhost");
  conn_close(&c);
  SSL_CTX_free(ctx);
}

/* ------------------------------------------------------------------------ */
/* Contexts                                                                  */
/* ------------------------------------------------------------------------ */

static int ctx_freed;
static int ctx_marker;

static void ctx_free_cb(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx,
                        long argl, void *argp) {
  (void)parent;
  (void)ad;
  (void)idx;
  (void)argl;
  (void)argp;
  if (ptr == &ctx_marker)
    ctx_freed++;
}

/* The caller's context carries the trust, is used, and is not freed. */
static void test_caller_ctx(void **state) {
  smtpuv_tls_config cfg;
  SSL_CTX *ctx = trusting_ctx();
  int idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, ctx_free_cb);
  conn c;
  (void)state;
  assert_true(idx >= 0);
  assert_int_equal(SSL_CTX_set_ex_data(ctx, idx, &ctx_marker), 1);
  ctx_freed = 0;
  memset(&cfg, 0, sizeof(cfg));
  cfg.ctx = ctx;
  cfg.host = "localhost";
  cfg.verify = 1;
  for (int i = 0; i < 2; i++) {
    conn_open(&c, NULL, NULL, &cfg);
    assert_int_equal(run_handshake(&c, 0), 1);
    conn_close(&c);
    assert_int_equal(ctx_freed, 0);
  }
  /* the caller may drop its reference while an engine still runs */
  conn_open(&c, NULL, NULL, &cfg);
  SSL_CTX_free(ctx);
  assert_int_equal(ctx_freed, 0);
  assert_int_equal(run_handshake(&c, 0), 1);
  conn_close(&c);
  assert_int_equal(ctx_freed, 1);
}

/* Regression: a caller's context without SSL_MODE_AUTO_RETRY. After the
   TLS 1.3 handshake the server's session tickets and its first reply come in
   one feed; without the mode, SSL_read stops after a ticket with WANT_READ
   although the reply is already buffered, the engine said "need more input",
   and the client waited forever for a reply it had (TLS.md trap 1). The
   engine sets the mode on its SSL object. */
static void test_caller_ctx_without_auto_retry(void **state) {
  smtpuv_tls_config cfg;
  SSL_CTX *ctx = trusting_ctx();
  unsigned char buf[64];
  conn c;
  (void)state;
  SSL_CTX_clear_mode(ctx, SSL_MODE_AUTO_RETRY);
  memset(&cfg, 0, sizeof(cfg));
  cfg.ctx = ctx;
  cfg.host = "localhost";
  cfg.verify = 1;
  conn_open(&c, NULL, NULL, &cfg);
  assert_int_equal(run_handshake(&c, 0), 1);
  srv_write(&c.s, "220 ready", 9); /* after the tickets, same flight */
  assert_int_equal(s2e(&c, 0, buf, sizeof(buf), sizeof(buf)), 9);
  assert_memory_equal(buf, "220 ready", 9);
  conn_close(&c);
  SSL_CTX_free(ctx);
}

/* Input the caller feeds but never reads is bounded: past
   SMTPUV__TLS_INPUT_MAX unprocessed bytes, feed() refuses more (a caller
   that reads after every feed never gets near it). */
static void test_input_bounded(void **state) {
  static unsigned char junk[65536];
  unsigned char buf[64];
  conn c;
  size_t fed = 0;
  int r = 0;
  (void)state;
  open_version(&c, state);
  assert_int_equal(run_handshake(&c, 0), 1);
  memset(junk, 0x17, sizeof(junk));
  for (int i = 0; i < 1000 && r == 0; i++) {
    r = x_feed(c.t, junk, sizeof(junk));
    if (r == 0)
      fed += sizeof(junk);
  }
  assert_int_equal(r, SMTPUV_ELIMIT);
  assert_true(fed >= SMTPUV__TLS_INPUT_MAX);
  assert_true(fed <= SMTPUV__TLS_INPUT_MAX + sizeof(junk));
  assert_non_null(strstr(smtpuv__tls_error_text(c.t), "unread"));
  /* not sticky by itself: the garbage is what kills the session */
  assert_int_equal(x_read(c.t, buf, sizeof(buf)), SMTPUV_ETLS);
  conn_close(&c);
}

/* A caller's context that verifies nothing is still made to verify. */
static void test_caller_ctx_verify_forced(void **state) {
  smtpuv_tls_config cfg;
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  conn c;
  (void)state;
  assert_non_null(ctx);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
  memset(&cfg, 0, sizeof(cfg));
  cfg.ctx = ctx;
  cfg.host = "localhost";
  cfg.verify = 1;
  conn_open(&c, NULL, NULL, &cfg);
  expect_cert_error(&c, "unable to get local issuer certificate");
  conn_close(&c);
  SSL_CTX_free(ctx);
}

static void write_ca_pem(const char *path) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  assert_int_equal(PEM_write_X509(f, ca_cert), 1);
  assert_int_equal(fclose(f), 0);
}

static void test_ca_file_and_dir(void **state) {
  char file[] = "/tmp/smtpuv-tls-test-XXXXXX";
  char dir[] = "/tmp/smtpuv-tls-dir-XXXXXX";
  char hashed[128], err[256];
  smtpuv_tls_config cfg;
  SSL_CTX *ctx = NULL;
  smtpuv_tls *t = NULL;
  conn c;
  int fd;
  (void)state;

  fd = mkstemp(file);
  assert_true(fd >= 0);
  close(fd);
  write_ca_pem(file);
  assert_non_null(mkdtemp(dir));
  snprintf(hashed, sizeof(hashed), "%s/%08lx.0", dir,
           X509_subject_name_hash(ca_cert));
  write_ca_pem(hashed);

  memset(&cfg, 0, sizeof(cfg));
  cfg.host = "localhost";
  cfg.verify = 1;
  cfg.ca_file = file;
  conn_open(&c, NULL, NULL, &cfg);
  assert_int_equal(run_handshake(&c, 0), 1);
  conn_close(&c);

  cfg.ca_file = NULL;
  cfg.ca_dir = dir;
  conn_open(&c, NULL, NULL, &cfg);
  assert_int_equal(run_handshake(&c, 0), 1);
  conn_close(&c);

  /* a missing file: the text names it and the system's reason */
  poison();
  assert_int_equal(smtpuv__tls_ctx_new("/nonexistent/ca.pem", NULL, &ctx, err,
                                       sizeof(err)),
                   SMTPUV_ETLS);
  QUEUE_EMPTY();
  assert_null(ctx);
  assert_string_equal(err,
                      "cannot load CA file /nonexistent/ca.pem: No such file "
                      "or directory");
  cfg.ca_dir = NULL;
  cfg.ca_file = "/nonexistent/ca.pem";
  cfg.err = err;
  cfg.errlen = sizeof(err);
  poison();
  assert_int_equal(smtpuv__tls_new(NULL, &cfg, &t), SMTPUV_ETLS);
  QUEUE_EMPTY();
  assert_null(t);
  assert_non_null(strstr(err, "/nonexistent/ca.pem"));
  /* no room for text is fine */
  cfg.err = NULL;
  assert_int_equal(smtpuv__tls_new(NULL, &cfg, &t), SMTPUV_ETLS);
  assert_int_equal(smtpuv__tls_ctx_new("/nonexistent/ca.pem", NULL, &ctx, NULL,
                                       0),
                   SMTPUV_ETLS);
  QUEUE_EMPTY();

  /* a file holding no certificate */
  {
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fputs("not a certificate\n", f);
    fclose(f);
  }
  assert_int_equal(smtpuv__tls_ctx_new(file, NULL, &ctx, err, sizeof(err)),
                   SMTPUV_ETLS);
  assert_ptr_equal(strstr(err, "cannot load CA file "), err);
  assert_true(strlen(err) > strlen("cannot load CA file ") + strlen(file) + 2);
  QUEUE_EMPTY();

  /* the engine's own context: TLS 1.2 minimum, verification on */
  assert_int_equal(smtpuv__tls_ctx_new(NULL, NULL, &ctx, NULL, 0), 0);
  assert_int_equal(SSL_CTX_get_min_proto_version(ctx), TLS1_2_VERSION);
  assert_int_equal(SSL_CTX_get_verify_mode(ctx), SSL_VERIFY_PEER);
  SSL_CTX_free(ctx);
  assert_int_equal(smtpuv__tls_ctx_new(NULL, NULL, NULL, NULL, 0),
                   SMTPUV_EINVAL);

  unlink(hashed);
  rmdir(dir);
  unlink(file);
}

/* ------------------------------------------------------------------------ */
/* Closing, EOF, garbage, alerts                                             */
/* ------------------------------------------------------------------------ */

static void test_server_close_notify(void **state) {
  unsigned char buf[64];
  size_t got = 0;
  conn c;
  open_version(&c, state);
  assert_int_equal(run_handshake(&c, 0), 1);
  srv_write(&c.s, "221 bye\r\n", 9);
  assert_int_equal(SSL_shutdown(c.s.ssl), 0);
  {
    unsigned char *q;
    size_t n = srv_take(&c.s, &q);
    assert_int_equal(x_feed(c.t, q, n), 0);
    free(q);
  }
  /* the data first, then the close */
  assert_int_equal(engine_read_all(&c, buf, sizeof(buf), sizeof(buf), &got),
                   SMTPUV_ECONNLOST);
  assert_int_equal(got, 9);
  assert_memory_equal(buf, "221 bye\r\n", 9);
  assert_non_null(strstr(smtpuv__tls_error_text(c.t), "close_notify"));
  assert_int_equal(x_read(c.t, buf, sizeof(buf)), SMTPUV_ECONNLOST);
  /* answering with our close_notify is still possible */
  assert_int_equal(x_shutdown(c.t), 0);
  assert_int_equal(e2s(&c), 0);
  assert_int_equal(SSL_shutdown(c.s.ssl), 1);
  ERR_clear_error();
  conn_close(&c);
}

static void test_engine_shutdown(void **state) {
  unsigned char buf[16];
  conn c;
  open_version(&c, state);
  assert_int_equal(run_handshake(&c, 0), 1);
  assert_int_equal(x_write(c.t, "QUIT\r\n", 6), 0);
  assert_int_equal(x_shutdown(c.t), 0);
  assert_true(smtpuv__tls_pending_output(c.t) > 0);
  assert_int_equal(e2s(&c), 0);
  assert_int_equal(x_shutdown(c.t), 0); /* once only */
  assert_int_equal(smtpuv__tls_pending_output(c.t), 0);
  assert_int_equal(srv_read(&c.s, buf, sizeof(buf)), 6);
  assert_memory_equal(buf, "QUIT\r\n", 6);
  assert_int_equal(c.s.last_err, SSL_ERROR_ZERO_RETURN);
  /* nothing more may be sent */
  assert_int_equal(x_write(c.t, "x", 1), SMTPUV_ETLS);
  assert_int_not_equal(smtpuv__tls_error_text(c.t)[0], '\0');
  conn_close(&c);
}

static void test_eof_mid_handshake(void **state) {
  conn c;
  unsigned char *q;
  size_t n;
  (void)state;

  /* nothing at all from the server */
  conn_open(&c, NULL, NULL, NULL);
  assert_int_equal(x_handshake(c.t), 0);
  assert_int_equal(e2s(&c), 0);
  x_eof(c.t);
  assert_int_equal(x_handshake(c.t), SMTPUV_ECONNLOST);
  assert_string_equal(smtpuv__tls_error_text(c.t),
                      "connection closed during the TLS handshake");
  assert_int_equal(x_handshake(c.t), SMTPUV_ECONNLOST);
  conn_close(&c);

  /* part of the server's flight, then EOF */
  conn_open(&c, NULL, NULL, NULL);
  assert_int_equal(x_handshake(c.t), 0);
  assert_int_equal(e2s(&c), 0);
  srv_step(&c.s);
  n = srv_take(&c.s, &q);
  assert_true(n > 100);
  assert_int_equal(x_feed(c.t, q, 100), 0);
  assert_int_equal(x_handshake(c.t), 0);
  x_eof(c.t);
  assert_int_equal(x_handshake(c.t), SMTPUV_ECONNLOST);
  free(q);
  conn_close(&c);
}

static void test_eof_without_close_notify(void **state) {
  unsigned char buf[64];
  size_t got = 0;
  conn c;
  open_version(&c, state);
  assert_int_equal(run_handshake(&c, 0), 1);
  assert_int_equal(s2e(&c, 0, buf, sizeof(buf), sizeof(buf)), 0);
  assert_int_equal(x_read(c.t, buf, sizeof(buf)), 0); /* waits */
  srv_write(&c.s, "250 OK\r\n", 8);
  {
    unsigned char *q;
    size_t n = srv_take(&c.s, &q);
    assert_int_equal(x_feed(c.t, q, n), 0);
    free(q);
  }
  x_eof(c.t);
  assert_int_equal(engine_read_all(&c, buf, sizeof(buf), sizeof(buf), &got),
                   SMTPUV_ECONNLOST);
  assert_int_equal(got, 8);
  assert_memory_equal(buf, "250 OK\r\n", 8);
  assert_string_equal(smtpuv__tls_error_text(c.t),
                      "connection closed without TLS close_notify");
  assert_int_equal(x_read(c.t, buf, sizeof(buf)), SMTPUV_ECONNLOST);
  conn_close(&c);

  /* EOF in the middle of a record */
  open_version(&c, state);
  assert_int_equal(run_handshake(&c, 0), 1);
  assert_int_equal(s2e(&c, 0, buf, sizeof(buf), sizeof(buf)), 0);
  srv_write(&c.s, "250 OK\r\n", 8);
  {
    unsigned char *q;
    size_t n = srv_take(&c.s, &q);
    assert_int_equal(x_feed(c.t, q, n - 1), 0);
    free(q);
  }
  assert_int_equal(x_read(c.t, buf, sizeof(buf)), 0);
  x_eof(c.t);
  assert_int_equal(x_read(c.t, buf, sizeof(buf)), SMTPUV_ECONNLOST);
  conn_close(&c);
}

/* A plaintext SMTP greeting where the ServerHello should be. */
static void test_garbage_instead_of_server_hello(void **state) {
  static const char junk[] = "220 mail.example.com ESMTP ready\r\n";
  conn c;
  (void)state;
  conn_open(&c, NULL, NULL, NULL);
  assert_int_equal(x_handshake(c.t), 0);
  assert_int_equal(e2s(&c), 0);
  assert_int_equal(x_feed(c.t, junk, strlen(junk)), 0);
  assert_int_equal(x_handshake(c.t), SMTPUV_ETLS);
  if (strstr(smtpuv__tls_error_text(c.t), "TLS handshake failed: ") == NULL ||
      strlen(smtpuv__tls_error_text(c.t)) < 25)
    fail_msg("text: %s", smtpuv__tls_error_text(c.t));
  assert_int_equal(x_handshake(c.t), SMTPUV_ETLS);
  conn_close(&c);

  /* garbage after the handshake: a corrupted record */
  {
    unsigned char buf[32];
    unsigned char *q;
    size_t n;
    conn_open(&c, NULL, NULL, NULL);
    assert_int_equal(run_handshake(&c, 0), 1);
    assert_int_equal(s2e(&c, 0, buf, sizeof(buf), sizeof(buf)), 0);
    srv_write(&c.s, "250 OK\r\n", 8);
    n = srv_take(&c.s, &q);
    q[n - 3] ^= 1;
    assert_int_equal(x_feed(c.t, q, n), 0);
    free(q);
    assert_int_equal(x_read(c.t, buf, sizeof(buf)), SMTPUV_ETLS);
    assert_ptr_equal(strstr(smtpuv__tls_error_text(c.t), "TLS read failed: "),
                     smtpuv__tls_error_text(c.t));
    assert_int_equal(x_read(c.t, buf, sizeof(buf)), SMTPUV_ETLS);
    /* the failed read queued a fatal alert for the server */
    assert_true(smtpuv__tls_pending_output(c.t) > 0);
    assert_int_equal(e2s(&c), 0);
    assert_int_equal(srv_read(&c.s, buf, sizeof(buf)), 0);
    assert_int_equal(c.s.last_err, SSL_ERROR_SSL);
    conn_close(&c);
  }
}

static void test_server_alert(void **state) {
  srv_opts so;
  conn c;
  (void)state;
  memset(&so, 0, sizeof(so));
  so.reject_sni = 1;
  conn_open(&c, NULL, &so, NULL);
  assert_int_equal(run_handshake(&c, 0), SMTPUV_ETLS);
  assert_string_equal(smtpuv__tls_error_text(c.t),
                      "TLS handshake failed: alert from the server: "
                      "unrecognized name");
  conn_close(&c);
}

static void test_old_tls_refused(void **state) {
  srv_opts so;
  conn c;
  (void)state;
  memset(&so, 0, sizeof(so));
  so.old_versions = 1;
  so.max_version = TLS1_1_VERSION;
  conn_open(&c, NULL, &so, NULL);
  assert_int_equal(run_handshake(&c, 0), SMTPUV_ETLS);
  assert_non_null(strstr(smtpuv__tls_error_text(c.t), "TLS handshake failed"));
  assert_false(c.s.done);
  conn_close(&c);
}

/* ------------------------------------------------------------------------ */
/* Misuse, state, error queue, allocation failures                           */
/* ------------------------------------------------------------------------ */

static void test_state_and_arguments(void **state) {
  smtpuv_tls_config cfg;
  smtpuv_tls *t = (smtpuv_tls *)&cfg;
  char buf[64];
  void *out = &cfg;
  size_t outlen = 7;
  conn c;
  (void)state;

  memset(&cfg, 0, sizeof(cfg));
  cfg.verify = 1;
  assert_int_equal(smtpuv__tls_new(NULL, NULL, &t), SMTPUV_EINVAL);
  assert_null(t);
  assert_int_equal(smtpuv__tls_new(NULL, &cfg, NULL), SMTPUV_EINVAL);
  assert_int_equal(smtpuv__tls_new(NULL, &cfg, &t), SMTPUV_EINVAL); /* host */
  cfg.host = "";
  assert_int_equal(smtpuv__tls_new(NULL, &cfg, &t), SMTPUV_EINVAL);
  assert_null(t);
  cfg.host = ".";
  assert_int_equal(smtpuv__tls_new(NULL, &cfg, &t), SMTPUV_EINVAL);
  assert_null(t);
  {
    char longname[300];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    cfg.host = longname;
    assert_int_equal(smtpuv__tls_new(NULL, &cfg, &t), SMTPUV_EINVAL);
    assert_null(t);
  }
  {
    smtpuv_mem bad = *smtpuv_mem_default();
    bad.calloc = NULL;
    cfg.host = "localhost";
    assert_int_equal(smtpuv__tls_new(&bad, &cfg, &t), SMTPUV_EINVAL);
    assert_null(t);
  }
  smtpuv__tls_free(NULL);
  assert_string_equal(smtpuv__tls_error_text(NULL), "");
  assert_int_equal(smtpuv__tls_pending_output(NULL), 0);

  conn_open(&c, NULL, NULL, NULL);
  assert_int_equal(x_take(c.t, &out, &outlen), 0); /* nothing yet */
  assert_null(out);
  assert_int_equal(outlen, 0);
  assert_int_equal(x_write(c.t, "x", 1), SMTPUV_ESTATE);
  assert_int_equal(x_read(c.t, buf, sizeof(buf)), SMTPUV_ESTATE);
  assert_int_equal(x_shutdown(c.t), SMTPUV_ESTATE);
  assert_int_equal(smtpuv__tls_pending_output(c.t), 0); /* wrote nothing */
  assert_int_equal(x_summary(c.t, buf, sizeof(buf)),
                   strlen("TLS handshake not complete"));
  assert_string_equal(buf, "TLS handshake not complete");
  assert_int_equal(x_feed(c.t, NULL, 1), SMTPUV_EINVAL);
  assert_int_equal(x_feed(c.t, NULL, 0), 0);
  assert_int_equal(run_handshake(&c, 0), 1);
  assert_int_equal(x_read(c.t, buf, 0), SMTPUV_EINVAL);
  assert_int_equal(x_write(c.t, NULL, 1), SMTPUV_EINVAL);
  /* truncated summary */
  assert_int_equal(x_summary(c.t, buf, 10), 9);
  assert_int_equal(strlen(buf), 9);
  assert_memory_equal(buf, "TLSv1.3 T", 9);
  assert_int_equal(x_summary(c.t, buf, 0), 0);
  conn_close(&c);
}

/* Stale errors before the calls that read the queue most. */
static void test_error_queue_hygiene(void **state) {
  smtpuv_tls_config cfg;
  SSL_CTX *ctx = NULL;
  conn c;
  (void)state;
  raise_err(ERR_LIB_SSL, SSL_R_CERTIFICATE_VERIFY_FAILED);
  raise_err(ERR_LIB_SSL, ERR_R_MALLOC_FAILURE);
  assert_int_equal(smtpuv__tls_ctx_new(NULL, NULL, &ctx, NULL, 0), 0);
  QUEUE_EMPTY();
  assert_int_equal(X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), ca_cert),
                   1);
  memset(&cfg, 0, sizeof(cfg));
  cfg.ctx = ctx;
  cfg.host = "localhost";
  cfg.verify = 1;
  for (int i = 0; i < 4; i++) { /* every poison before every call */
    poison_n = (unsigned)i;
    conn_open(&c, NULL, NULL, &cfg);
    assert_int_equal(run_handshake(&c, 1), 1);
    assert_int_equal(x_write(c.t, "x", 1), 0);
    assert_int_equal(e2s(&c), 0);
    conn_close(&c);
  }
  /* a failing connection leaves nothing behind for the next one */
  cfg.host = "wrong.example";
  conn_open(&c, NULL, NULL, &cfg);
  assert_int_equal(run_handshake(&c, 0), SMTPUV_ECERT);
  QUEUE_EMPTY();
  conn_close(&c);
  SSL_CTX_free(ctx);
}

/* One full session with `mem`: handshake, a command and its reply, close.
   Returns 0 or the first engine error. */
static int alloc_scenario(const smtpuv_mem *mem, SSL_CTX *ctx, int version) {
  smtpuv_tls_config cfg;
  srv_opts so;
  unsigned char buf[64];
  size_t got = 0;
  conn c;
  int r;

  memset(&cfg, 0, sizeof(cfg));
  memset(&so, 0, sizeof(so));
  so.max_version = version;
  cfg.ctx = ctx;
  cfg.host = "localhost";
  cfg.verify = 1;
  memset(&c, 0, sizeof(c));
  c.mem = mem;
  srv_init(&c.s, &so);
  poison();
  r = smtpuv__tls_new(mem, &cfg, &c.t);
  QUEUE_EMPTY();
  if (r != 0) {
    assert_null(c.t);
    goto out;
  }
  r = run_handshake(&c, 0);
  if (r != 1)
    goto out;
  r = x_write(c.t, "EHLO x\r\n", 8);
  if (r == 0)
    r = e2s(&c);
  if (r != 0)
    goto out;
  assert_int_equal(srv_read(&c.s, buf, sizeof(buf)), 8);
  srv_write(&c.s, "250 x\r\n", 7);
  {
    unsigned char *q;
    size_t n = srv_take(&c.s, &q);
    assert_int_equal(x_feed(c.t, q, n), 0);
    free(q);
  }
  r = (int)engine_read_all(&c, buf, sizeof(buf), sizeof(buf), &got);
  if (r < 0)
    goto out;
  assert_int_equal(got, 7);
  r = x_shutdown(c.t);
  if (r == 0)
    r = e2s(&c);
out:
  smtpuv__tls_free(c.t);
  srv_free(&c.s);
  return r;
}

static void test_alloc_failures(void **state) {
  SSL_CTX *ctx = trusting_ctx();
  (void)state;
  for (int v = 0; v < 2; v++) {
    int version = v ? TLS1_2_VERSION : TLS1_3_VERSION;
    unsigned long n;
    for (n = 1; n < 1000; n++) {
      test_mem tm;
      int r;
      test_mem_init(&tm, n);
      r = alloc_scenario(&tm.mem, ctx, version);
      assert_int_equal(tm.live, 0);
      if (!tm.failed) {
        assert_int_equal(r, 0);
        break;
      }
      assert_int_equal(r, SMTPUV_ENOMEM);
    }
    assert_true(n > 4 && n < 1000); /* engine, host, several outputs */
  }
  SSL_CTX_free(ctx);
}

/* A caller's allocator sees every allocation of the engine. */
static void test_allocator_used(void **state) {
  test_mem tm;
  conn c;
  (void)state;
  test_mem_init(&tm, 0);
  conn_open(&c, &tm.mem, NULL, NULL);
  assert_true(tm.live >= 2); /* engine and host */
  assert_int_equal(run_handshake(&c, 0), 1);
  conn_close(&c);
  assert_int_equal(tm.live, 0);
  assert_true(tm.calls >= 3);
}

/* ------------------------------------------------------------------------ */
/* Session resumption                                                        */
/* ------------------------------------------------------------------------ */

typedef struct resume_case {
  int version;
  int no_ticket; /* TLS 1.2 session IDs (server cache) instead of tickets */
} resume_case;

static SSL_CTX *server_ctx(const resume_case *rc) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  assert_non_null(ctx);
  assert_int_equal(SSL_CTX_use_certificate(ctx, srv_cert), 1);
  assert_int_equal(SSL_CTX_use_PrivateKey(ctx, srv_key), 1);
  assert_int_equal(SSL_CTX_set_max_proto_version(ctx, rc->version), 1);
  if (rc->no_ticket)
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  assert_int_equal(
      SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"t", 1), 1);
  return ctx;
}

/* One connection: handshake, a greeting from the server (which carries
   TLS 1.3's tickets to the engine), close. Returns whether the engine
   says it resumed (checked against the server's view); `sum` gets the
   summary. */
static int resume_round(SSL_CTX *sctx, SSL_CTX *cctx, smtpuv__tls_cache *cache,
                        const char *host, unsigned port, int verify,
                        char *sum, size_t sumcap) {
  static const char greeting[] = "220 mail.example ESMTP\r\n";
  unsigned char buf[256];
  srv_opts so;
  conn c;
  smtpuv_tls_config cfg;
  memset(&so, 0, sizeof(so));
  memset(&c, 0, sizeof(c));
  memset(&cfg, 0, sizeof(cfg));
  so.shared = sctx;
  c.mem = smtpuv_mem_default();
  srv_init(&c.s, &so);
  cfg.ctx = cctx;
  cfg.host = host;
  cfg.verify = verify;
  cfg.cache = cache;
  cfg.port = port;
  assert_int_equal(smtpuv__tls_new(NULL, &cfg, &c.t), 0);
  assert_int_equal(smtpuv__tls_resumed(c.t), 0); /* not before the end */
  assert_int_equal(run_handshake(&c, 0), 1);
  srv_write(&c.s, greeting, sizeof(greeting) - 1);
  assert_int_equal(s2e(&c, 0, buf, sizeof(buf), sizeof(buf)),
                   (long)sizeof(greeting) - 1);
  assert_memory_equal(buf, greeting, sizeof(greeting) - 1);
  int resumed = smtpuv__tls_resumed(c.t);
  assert_int_equal(resumed, SSL_session_reused(c.s.ssl));
  x_summary(c.t, sum, sumcap);
  /* a session whose connection ended without our close_notify is marked
     not resumable by OpenSSL (SSL_free of an unshut SSL): shut down as the
     client does after QUIT */
  assert_int_equal(x_shutdown(c.t), 0);
  assert_int_equal(e2s(&c), 0);
  smtpuv__tls_free(c.t);
  /* the server's side likewise (its session cache keeps the TLS 1.2
     session IDs) */
  assert_int_equal(srv_read(&c.s, buf, sizeof(buf)), 0);
  assert_int_equal(c.s.last_err, SSL_ERROR_ZERO_RETURN);
  assert_true(SSL_shutdown(c.s.ssl) >= 0);
  srv_free(&c.s);
  return resumed;
}

static int ends_with(const char *s, const char *tail) {
  size_t n = strlen(s), k = strlen(tail);
  return n >= k && strcmp(s + n - k, tail) == 0;
}

/* The second and later connections with the client's cache resume; the
   summary says so. */
static void test_resumption(void **state) {
  const resume_case *rc = *state;
  SSL_CTX *sctx = server_ctx(rc);
  SSL_CTX *cctx = trusting_ctx();
  smtpuv__tls_cache *cache;
  char sum[256];
  const char *version = rc->version == TLS1_3_VERSION ? "TLSv1.3 " : "TLSv1.2 ";
  assert_int_equal(smtpuv__tls_ctx_enable_sessions(cctx), 0);
  assert_int_equal(smtpuv__tls_cache_new(NULL, &cache), 0);
  assert_int_equal(
      resume_round(sctx, cctx, cache, "localhost", 465, 1, sum, sizeof(sum)),
      0);
  assert_ptr_equal(strstr(sum, version), sum);
  assert_null(strstr(sum, "resumed"));
  assert_int_equal(smtpuv__tls_cache_count(cache), 1);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(resume_round(sctx, cctx, cache, "localhost", 465, 1, sum,
                                  sizeof(sum)),
                     1);
    assert_ptr_equal(strstr(sum, version), sum);
    assert_true(ends_with(sum, "; resumed"));
    /* the session (and its certificate) is the first one's */
    assert_non_null(strstr(sum, "; subject CN=localhost; issuer CN=Test CA"));
    assert_int_equal(smtpuv__tls_cache_count(cache), 1);
  }
  smtpuv__tls_cache_free(cache);
  SSL_CTX_free(cctx);
  SSL_CTX_free(sctx);
}

/* A session is offered only to the same host name, port and verification
   setting; without a cache (or over a context not prepared for sessions)
   nothing is kept or offered. */
static void test_resumption_key(void **state) {
  const resume_case *rc = *state;
  SSL_CTX *sctx = server_ctx(rc);
  SSL_CTX *cctx = trusting_ctx();
  SSL_CTX *plain = trusting_ctx();
  smtpuv__tls_cache *cache, *other;
  char sum[256];
  assert_int_equal(smtpuv__tls_ctx_enable_sessions(cctx), 0);
  assert_int_equal(smtpuv__tls_cache_new(NULL, &cache), 0);
  assert_int_equal(smtpuv__tls_cache_new(NULL, &other), 0);
  assert_int_equal(
      resume_round(sctx, cctx, cache, "localhost", 465, 1, sum, sizeof(sum)),
      0);
  /* another port, another name (IP literal: no SNI), verification off:
     full handshakes, each cached under its own key */
  assert_int_equal(
      resume_round(sctx, cctx, cache, "localhost", 466, 1, sum, sizeof(sum)),
      0);
  assert_int_equal(
      resume_round(sctx, cctx, cache, "127.0.0.1", 465, 1, sum, sizeof(sum)),
      0);
  assert_int_equal(
      resume_round(sctx, cctx, cache, "localhost", 465, 0, sum, sizeof(sum)),
      0);
  assert_int_equal(smtpuv__tls_cache_count(cache), 4);
  /* another client's cache knows nothing */
  assert_int_equal(
      resume_round(sctx, cctx, other, "localhost", 465, 1, sum, sizeof(sum)),
      0);
  /* no cache: nothing offered */
  assert_int_equal(
      resume_round(sctx, cctx, NULL, "localhost", 465, 1, sum, sizeof(sum)), 0);
  /* a caller's context left as it was: nothing arrives in the cache */
  smtpuv__tls_cache *mine;
  assert_int_equal(smtpuv__tls_cache_new(NULL, &mine), 0);
  assert_int_equal(
      resume_round(sctx, plain, mine, "localhost", 465, 1, sum, sizeof(sum)), 0);
  assert_int_equal(smtpuv__tls_cache_count(mine), 0);
  /* every key resumes its own session */
  assert_int_equal(
      resume_round(sctx, cctx, cache, "localhost", 466, 1, sum, sizeof(sum)),
      1);
  assert_int_equal(
      resume_round(sctx, cctx, cache, "127.0.0.1", 465, 1, sum, sizeof(sum)),
      1);
  assert_int_equal(
      resume_round(sctx, cctx, cache, "localhost", 465, 0, sum, sizeof(sum)),
      1);
  assert_int_equal(
      resume_round(sctx, cctx, cache, "localhost", 465, 1, sum, sizeof(sum)),
      1);
  smtpuv__tls_cache_free(mine);
  smtpuv__tls_cache_free(other);
  smtpuv__tls_cache_free(cache);
  SSL_CTX_free(plain);
  SSL_CTX_free(cctx);
  SSL_CTX_free(sctx);
}

/* The cache holds at most 8 servers and drops the least recently used. */
static void test_resumption_cache_bounded(void **state) {
  static const resume_case rc = {TLS1_3_VERSION, 0};
  SSL_CTX *sctx = server_ctx(&rc);
  SSL_CTX *cctx = trusting_ctx();
  smtpuv__tls_cache *cache;
  char sum[256];
  (void)state;
  assert_int_equal(smtpuv__tls_ctx_enable_sessions(cctx), 0);
  assert_int_equal(smtpuv__tls_cache_new(NULL, &cache), 0);
  for (unsigned port = 1; port <= 9; port++)
    assert_int_equal(resume_round(sctx, cctx, cache, "localhost", port, 1, sum,
                                  sizeof(sum)),
                     0);
  assert_int_equal(smtpuv__tls_cache_count(cache), 8);
  assert_int_equal(
      resume_round(sctx, cctx, cache, "localhost", 9, 1, sum, sizeof(sum)), 1);
  assert_int_equal(
      resume_round(sctx, cctx, cache, "localhost", 2, 1, sum, sizeof(sum)), 1);
  assert_int_equal( /* the oldest, dropped */
      resume_round(sctx, cctx, cache, "localhost", 1, 1, sum, sizeof(sum)), 0);
  assert_int_equal(smtpuv__tls_cache_count(cache), 8);
  smtpuv__tls_cache_free(cache);
  SSL_CTX_free(cctx);
  SSL_CTX_free(sctx);
}

/* An idle engine trims its memory BIOs and keeps working; it refuses
   while bytes wait in either direction or before the handshake. */
static void test_trim(void **state) {
  static const char ping[] = "NOOP\r\n", pong[] = "250 2.0.0 Ok\r\n";
  unsigned char buf[4096];
  conn c;
  open_version(&c, state);
  assert_int_equal(smtpuv__tls_trim(c.t), 0); /* handshake not done */
  assert_int_equal(run_handshake(&c, 0), 1);
  srv_write(&c.s, pong, sizeof(pong) - 1);
  assert_int_equal(s2e(&c, 0, buf, sizeof(buf), sizeof(buf)),
                   (long)sizeof(pong) - 1);
  for (int round = 0; round < 3; round++) {
    assert_int_equal(smtpuv__tls_trim(c.t), 1);
    /* output waiting: no trim, nothing lost */
    assert_int_equal(x_write(c.t, ping, sizeof(ping) - 1), 0);
    assert_int_equal(smtpuv__tls_trim(c.t), 0);
    assert_int_equal(e2s(&c), 0);
    assert_int_equal(srv_read(&c.s, buf, sizeof(buf)), sizeof(ping) - 1);
    assert_memory_equal(buf, ping, sizeof(ping) - 1);
    /* input waiting: no trim, nothing lost */
    srv_write(&c.s, pong, sizeof(pong) - 1);
    {
      unsigned char *q;
      size_t n = srv_take(&c.s, &q);
      assert_int_equal(x_feed(c.t, q, n), 0);
      free(q);
    }
    assert_int_equal(smtpuv__tls_trim(c.t), 0);
    size_t got = 0;
    assert_int_equal(engine_read_all(&c, buf, sizeof(buf), sizeof(buf), &got),
                     (long)sizeof(pong) - 1);
    assert_memory_equal(buf, pong, sizeof(pong) - 1);
  }
  /* after the stream's end the fresh read BIO still reports it */
  assert_int_equal(smtpuv__tls_trim(c.t), 1);
  x_eof(c.t);
  assert_int_equal(smtpuv__tls_trim(c.t), 1);
  assert_int_equal(x_read(c.t, buf, sizeof(buf)), SMTPUV_ECONNLOST);
  conn_close(&c);
}

static const resume_case r13 = {TLS1_3_VERSION, 0},
                         r12 = {TLS1_2_VERSION, 0},
                         r12id = {TLS1_2_VERSION, 1};

static const int v13 = TLS1_3_VERSION, v12 = TLS1_2_VERSION;

#define BOTH(fn)                                                               \
  cmocka_unit_test_prestate(fn, (void *)&v13),                                 \
      cmocka_unit_test_prestate(fn, (void *)&v12)


/* ------------------------------------------------------------------------ */
/* Certificate pinning and client certificates                              */
/* ------------------------------------------------------------------------ */

static void sha256_of(X509 *cert, unsigned char out[32]) {
  unsigned int n = 0;
  assert_int_equal(X509_digest(cert, EVP_sha256(), out, &n), 1);
  assert_int_equal(n, 32);
}

/* The pin replaces the chain check: the engine's own context trusts only
   the system store, and a certificate from an unknown CA is accepted when
   its digest is the pin. */
static void test_pin_match(void **state) {
  smtpuv_tls_config cfg;
  srv_opts so;
  conn c;
  unsigned char pin[32];
  X509 *certs[2] = {srv_cert, evil_srv};
  (void)state;
  for (int i = 0; i < 2; i++) {
    sha256_of(certs[i], pin);
    memset(&so, 0, sizeof(so));
    so.cert = certs[i];
    memset(&cfg, 0, sizeof(cfg));
    cfg.host = "localhost";
    cfg.verify = 1;
    cfg.pin_sha256 = pin;
    conn_open(&c, NULL, &so, &cfg);
    assert_int_equal(run_handshake(&c, 0), 1);
    assert_int_equal(x_write(c.t, "hi", 2), 0);
    conn_close(&c);
  }
}

static void test_pin_mismatch(void **state) {
  smtpuv_tls_config cfg;
  srv_opts so;
  conn c;
  unsigned char pin[32];
  SSL_CTX *ctx = trusting_ctx();
  (void)state;
  /* the pin of the good certificate; the server shows another, even one
     the CA store would accept */
  X509 *shown[2] = {evil_srv, expired_srv};
  sha256_of(srv_cert, pin);
  for (int i = 0; i < 2; i++) {
    memset(&so, 0, sizeof(so));
    so.cert = shown[i];
    memset(&cfg, 0, sizeof(cfg));
    cfg.ctx = ctx;
    cfg.host = "localhost";
    cfg.verify = 1;
    cfg.pin_sha256 = pin;
    conn_open(&c, NULL, &so, &cfg);
    assert_int_equal(run_handshake(&c, 0), SMTPUV_ECERT);
    assert_ptr_equal(strstr(smtpuv__tls_error_text(c.t),
                            "certificate fingerprint mismatch: the server's "
                            "SHA-256 is "),
                     smtpuv__tls_error_text(c.t));
    /* sticky: nothing can be written */
    assert_int_equal(x_handshake(c.t), SMTPUV_ECERT);
    assert_int_equal(x_write(c.t, "x", 1), SMTPUV_ECERT);
    conn_close(&c);
  }
  SSL_CTX_free(ctx);
}

static int run_handshake_nocheck(conn *c) {
  int r = 0;
  for (int round = 0; round < 100; round++) {
    unsigned char *q = NULL;
    r = x_handshake(c->t);
    assert_int_equal(e2s(c), 0);
    srv_step(&c->s);
    if (r != 0)
      break;
    size_t n = srv_take(&c->s, &q);
    if (n > 0)
      assert_int_equal(x_feed(c->t, q, n), 0);
    free(q);
  }
  return r;
}

static char *write_pem(const char *tag, X509 *cert, EVP_PKEY *key) {
  char *path = malloc(64);
  assert_non_null(path);
  snprintf(path, 64, "/tmp/smtpuv-tls-%s-%ld.pem", tag, (long)getpid());
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  if (cert != NULL)
    assert_int_equal(PEM_write_X509(f, cert), 1);
  if (key != NULL)
    assert_int_equal(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL),
                     1);
  fclose(f);
  return path;
}

static void test_client_certificate(void **state) {
  smtpuv_tls_config cfg;
  srv_opts so;
  conn c;
  SSL_CTX *ctx = trusting_ctx();
  char *cert = write_pem("cert", srv_cert, NULL);
  char *key = write_pem("key", NULL, srv_key);
  char *both = write_pem("both", srv_cert, srv_key);
  (void)state;
  memset(&so, 0, sizeof(so));
  so.want_client_cert = 1;
  /* separate files, then the key in the certificate's file */
  const char *keys[2] = {key, NULL};
  const char *certs[2] = {cert, both};
  for (int i = 0; i < 2; i++) {
    memset(&cfg, 0, sizeof(cfg));
    cfg.ctx = ctx;
    cfg.host = "localhost";
    cfg.verify = 1;
    cfg.cert_file = certs[i];
    cfg.key_file = keys[i];
    conn_open(&c, NULL, &so, &cfg);
    int hr = run_handshake_nocheck(&c);
    if (!c.s.done)
      fail_msg("server: %s", X509_verify_cert_error_string(SSL_get_verify_result(c.s.ssl)));
    assert_int_equal(hr, 1);
    X509 *peer = SSL_get_peer_certificate(c.s.ssl);
    assert_non_null(peer);
    assert_int_equal(X509_cmp(peer, srv_cert), 0);
    X509_free(peer);
    conn_close(&c);
  }
  /* without one, the server refuses the handshake */
  memset(&cfg, 0, sizeof(cfg));
  cfg.ctx = ctx;
  cfg.host = "localhost";
  cfg.verify = 1;
  conn_open(&c, NULL, &so, &cfg);
  (void)run_handshake_nocheck(&c); /* TLS 1.3: the client is done first */
  assert_false(c.s.done);
  assert_true(c.s.failed);
  conn_close(&c);
  /* a file that is not there, a key that does not match */
  const char *bad_certs[2] = {"/nonexistent/cert.pem", cert};
  const char *bad_keys[2] = {NULL, cert};
  for (int i = 0; i < 2; i++) {
    char err[256];
    smtpuv_tls *t = NULL;
    memset(&cfg, 0, sizeof(cfg));
    cfg.ctx = ctx;
    cfg.host = "localhost";
    cfg.verify = 1;
    cfg.cert_file = bad_certs[i];
    cfg.key_file = bad_keys[i];
    cfg.err = err;
    cfg.errlen = sizeof(err);
    poison();
    assert_int_equal(smtpuv__tls_new(NULL, &cfg, &t), SMTPUV_ETLS);
    QUEUE_EMPTY();
    assert_null(t);
    assert_ptr_equal(strstr(err, "cannot load the client certificate "), err);
  }
  unlink(cert);
  unlink(key);
  unlink(both);
  free(cert);
  free(key);
  free(both);
  SSL_CTX_free(ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      BOTH(test_handshake_and_data),
      BOTH(test_handshake_per_byte),
      BOTH(test_record_every_split),
      BOTH(test_several_records_one_feed),
      BOTH(test_large_both_directions),
      cmocka_unit_test(test_key_update),
      cmocka_unit_test(test_renegotiation),
      cmocka_unit_test(test_renegotiation_then_write),
      cmocka_unit_test(test_hostname_mismatch),
      cmocka_unit_test(test_untrusted_ca),
      cmocka_unit_test(test_expired),
      cmocka_unit_test(test_system_store_rejects_test_ca),
      cmocka_unit_test(test_verify_off),
      cmocka_unit_test(test_ip_literal),
      cmocka_unit_test(test_caller_ctx),
      cmocka_unit_test(test_caller_ctx_verify_forced),
      cmocka_unit_test(test_caller_ctx_without_auto_retry),
      cmocka_unit_test(test_input_bounded),
      cmocka_unit_test(test_ca_file_and_dir),
      BOTH(test_server_close_notify),
      BOTH(test_engine_shutdown),
      cmocka_unit_test(test_eof_mid_handshake),
      BOTH(test_eof_without_close_notify),
      cmocka_unit_test(test_garbage_instead_of_server_hello),
      cmocka_unit_test(test_server_alert),
      cmocka_unit_test(test_old_tls_refused),
      cmocka_unit_test(test_state_and_arguments),
      cmocka_unit_test(test_error_queue_hygiene),
      cmocka_unit_test(test_alloc_failures),
      cmocka_unit_test(test_allocator_used),
      cmocka_unit_test_prestate(test_resumption, (void *)&r13),
      cmocka_unit_test_prestate(test_resumption, (void *)&r12),
      cmocka_unit_test_prestate(test_resumption, (void *)&r12id),
      cmocka_unit_test_prestate(test_resumption_key, (void *)&r13),
      cmocka_unit_test_prestate(test_resumption_key, (void *)&r12id),
      cmocka_unit_test(test_resumption_cache_bounded),
      BOTH(test_trim),
      cmocka_unit_test(test_pin_match),
      cmocka_unit_test(test_pin_mismatch),
      cmocka_unit_test(test_client_certificate),
  };
  return cmocka_run_group_tests(tests, make_fixtures, free_fixtures);
}

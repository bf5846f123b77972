/* SPDX-License-Identifier: MIT */
/*
 * The TLS engine: one client SSL object over two growable memory BIOs.
 *
 * Ciphertext from the network is appended to the read BIO (whose EOF return
 * is -1, so "empty" means "retry" until smtpuv__tls_eof() switches it to 0);
 * everything OpenSSL writes accumulates in the write BIO until the caller
 * takes it. Both BIOs grow as needed, so SSL_write never reports WANT_WRITE
 * and no output is ever lost between calls: whatever a handshake step, a
 * read (TLS 1.3 key update, alert) or a write produced is waiting in
 * smtpuv__tls_pending_output().
 *
 * Error queue discipline: every entry point (except the two pure queries
 * pending_output and error_text) starts with ERR_clear_error() (a stale entry
 * from another connection or from the host application must not be mistaken
 * for ours), calls SSL_get_error() right
 * after a failing SSL call, drains the queue into the engine's own text and
 * leaves the queue empty on return.
 */
#include "uv/tls.h"

#include <arpa/inet.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "protocol/mem.h"

/* Largest chunk handed to one OpenSSL call (their lengths are ints). */
#define TLS_CHUNK_MAX (1 << 30)

struct smtpuv_tls {
  smtpuv_mem mem;
  SSL *ssl;        /* owns rbio, wbio and a reference to its SSL_CTX */
  BIO *rbio;       /* ciphertext from the server */
  BIO *wbio;       /* ciphertext for the server */
  char *host;      /* expected name (for error text); NULL with verify 0 */
  int verify;      /* chain + name verification requested */
  int pinned;      /* pin[] replaces chain + name verification */
  unsigned char pin[32];
  int established; /* handshake complete */
  int peer_closed; /* close_notify received */
  int shut;        /* our close_notify queued */
  int dead;        /* sticky fatal error code, 0 while usable */
  char err[256];
  smtpuv__tls_cache *cache; /* sessions offered and kept, or NULL */
  unsigned port;            /* the cache key's port */
  int eof;                  /* smtpuv__tls_eof() was called */
};

static int session_setup(smtpuv_tls *t, const smtpuv_tls_config *cfg);

/* ------------------------------------------------------------------------ */
/* Error text                                                                */
/* ------------------------------------------------------------------------ */

static void fmt_text(char *buf, size_t cap, const char *fmt, ...) {
  va_list ap;
  if (buf == NULL || cap == 0)
    return;
  va_start(ap, fmt);
  vsnprintf(buf, cap, fmt, ap);
  va_end(ap);
}

/* What a failed call left on the thread's error queue, drained. */
typedef struct tls_errs {
  unsigned long first; /* earliest entry: usually the root cause */
  int verify_failed;   /* SSL_R_CERTIFICATE_VERIFY_FAILED */
  int unexpected_eof;  /* the stream ended without close_notify */
  int nomem;           /* an allocation inside OpenSSL failed */
  int alert;           /* alert description from the peer, or -1 */
} tls_errs;

static void errs_collect(tls_errs *ei) {
  unsigned long e;
  ei->first = 0;
  ei->verify_failed = 0;
  ei->unexpected_eof = 0;
  ei->nomem = 0;
  ei->alert = -1;
  while ((e = ERR_get_error()) != 0) {
    int lib = ERR_GET_LIB(e);
    int reason = ERR_GET_REASON(e);
    if (ei->first == 0)
      ei->first = e;
    if (lib == ERR_LIB_SYS)
      continue;
    if (reason == ERR_R_MALLOC_FAILURE)
      ei->nomem = 1;
    if (lib != ERR_LIB_SSL)
      continue;
    if (reason == SSL_R_CERTIFICATE_VERIFY_FAILED)
      ei->verify_failed = 1;
#ifdef SSL_R_UNEXPECTED_EOF_WHILE_READING
    else if (reason == SSL_R_UNEXPECTED_EOF_WHILE_READING)
      ei->unexpected_eof = 1;
#endif
    else if (reason >= SSL_AD_REASON_OFFSET &&
             reason < SSL_AD_REASON_OFFSET + 256 && ei->alert < 0)
      ei->alert = reason - SSL_AD_REASON_OFFSET;
  }
}

/* OpenSSL's reason string for `e` ("wrong version number"). */
static const char *errs_reason(unsigned long e, char *tmp, size_t cap) {
  const char *s;
  if (e == 0)
    return "unknown error";
  if (ERR_GET_LIB(e) == ERR_LIB_SYS &&
      strerror_r(ERR_GET_REASON(e), tmp, cap) == 0) /* XSI strerror_r */
    return tmp;
  s = ERR_reason_error_string(e);
  if (s != NULL)
    return s;
  ERR_error_string_n(e, tmp, cap);
  return tmp;
}

/* Drain the queue after a failed setup call: ENOMEM or ETLS with text. */
static int errs_setup_fail(char *err, size_t errlen, const char *what,
                           const char *arg) {
  tls_errs ei;
  char tmp[128];
  errs_collect(&ei);
  if (ei.nomem) {
    fmt_text(err, errlen, "%s: out of memory", what);
    return SMTPUV_ENOMEM;
  }
  if (arg != NULL)
    fmt_text(err, errlen, "%s %s: %s", what, arg,
             errs_reason(ei.first, tmp, sizeof(tmp)));
  else
    fmt_text(err, errlen, "%s: %s", what,
             errs_reason(ei.first, tmp, sizeof(tmp)));
  return SMTPUV_ETLS;
}

/*
 * Classify a failed SSL call; `ssl_err` is SSL_get_error()'s answer, taken
 * before the queue is drained. Sets the text and, for fatal errors, the
 * sticky state. `what` names the operation ("TLS handshake failed").
 */
static int tls_fail(smtpuv_tls *t, int ssl_err, const char *what) {
  tls_errs ei;
  char tmp[128];
  long vr = SSL_get_verify_result(t->ssl);
  int rc;

  errs_collect(&ei);
  if (ssl_err == SSL_ERROR_ZERO_RETURN) {
    t->peer_closed = 1;
    fmt_text(t->err, sizeof(t->err),
             "the server closed the TLS session (close_notify)");
    return SMTPUV_ECONNLOST;
  }
  if (t->verify && ssl_err == SSL_ERROR_SSL &&
      (ei.verify_failed || (!t->established && vr != X509_V_OK))) {
    const char *why = vr != X509_V_OK ? X509_verify_cert_error_string(vr)
                                      : "rejected";
    if ((vr == X509_V_ERR_HOSTNAME_MISMATCH ||
         vr == X509_V_ERR_IP_ADDRESS_MISMATCH) &&
        t->host != NULL)
      fmt_text(t->err, sizeof(t->err),
               "certificate verify failed: %s (expected %s)", why, t->host);
    else
      fmt_text(t->err, sizeof(t->err), "certificate verify failed: %s", why);
    rc = SMTPUV_ECERT;
  } else if (ei.unexpected_eof ||
             (ssl_err == SSL_ERROR_SYSCALL && ei.first == 0)) {
    fmt_text(t->err, sizeof(t->err), "%s",
             t->established ? "connection closed without TLS close_notify"
                            : "connection closed during the TLS handshake");
    rc = SMTPUV_ECONNLOST;
  } else if (ei.alert >= 0) {
    fmt_text(t->err, sizeof(t->err), "%s: alert from the server: %s", what,
             SSL_alert_desc_string_long(ei.alert));
    rc = SMTPUV_ETLS;
  } else if (ei.nomem) {
    fmt_text(t->err, sizeof(t->err), "%s: out of memory", what);
    rc = SMTPUV_ENOMEM;
  } else {
    fmt_text(t->err, sizeof(t->err), "%s: %s", what,
             errs_reason(ei.first, tmp, sizeof(tmp)));
    rc = SMTPUV_ETLS;
  }
  t->dead = rc;
  return rc;
}

/* ------------------------------------------------------------------------ */
/* Context and engine                                                        */
/* ------------------------------------------------------------------------ */

int smtpuv__tls_ctx_new(const char *ca_file, const char *ca_dir, SSL_CTX **out,
                        char *err, size_t errlen) {
  return smtpuv__tls_ctx_new_pem(NULL, 0, ca_file, ca_dir, out, err, errlen);
}

int smtpuv__tls_pem_add(X509_STORE *store, const char *pem, size_t len) {
  if (pem == NULL || len == 0 || len > INT_MAX)
    return SMTPUV_EINVAL;
  BIO *bio = BIO_new_mem_buf(pem, (int)len);
  if (bio == NULL)
    return SMTPUV_ENOMEM;
  STACK_OF(X509_INFO) *infos = PEM_X509_INFO_read_bio(bio, NULL, NULL, NULL);
  BIO_free(bio);
  if (infos == NULL) {
    ERR_clear_error();
    return SMTPUV_EINVAL;
  }
  int n = 0, rc = 0;
  for (int i = 0; i < sk_X509_INFO_num(infos); i++) {
    X509_INFO *xi = sk_X509_INFO_value(infos, i);
    if (xi->x509 == NULL)
      continue;
    if (store != NULL && X509_STORE_add_cert(store, xi->x509) != 1) {
      /* a duplicate is harmless; anything else is out of memory */
      unsigned long e = ERR_peek_last_error();
      if (ERR_GET_REASON(e) != X509_R_CERT_ALREADY_IN_HASH_TABLE) {
        rc = SMTPUV_ENOMEM;
        break;
      }
    }
    n++;
  }
  sk_X509_INFO_pop_free(infos, X509_INFO_free);
  ERR_clear_error();
  if (rc != 0)
    return rc;
  return n > 0 ? n : SMTPUV_EINVAL;
}

int smtpuv__tls_ctx_new_pem(const char *pem, size_t pem_len,
                            const char *ca_file, const char *ca_dir,
                            SSL_CTX **out, char *err, size_t errlen) {
  SSL_CTX *ctx;
  int rc;

  ERR_clear_error();
  fmt_text(err, errlen, "%s", "");
  if (out == NULL)
    return SMTPUV_EINVAL;
  *out = NULL;
  ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == NULL) {
    rc = errs_setup_fail(err, errlen, "cannot create the TLS context", NULL);
    goto out;
  }
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
    rc = errs_setup_fail(err, errlen, "cannot set TLS 1.2 as minimum", NULL);
    goto fail;
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  if (pem != NULL) {
    rc = smtpuv__tls_pem_add(SSL_CTX_get_cert_store(ctx), pem, pem_len);
    if (rc < 0) {
      if (rc == SMTPUV_EINVAL) {
        fmt_text(err, errlen, "%s", "cannot load CA certificates from PEM");
        rc = SMTPUV_ETLS;
      }
      goto fail;
    }
  }
  if (ca_file != NULL || ca_dir != NULL) {
    if (SSL_CTX_load_verify_locations(ctx, ca_file, ca_dir) != 1) {
      rc = errs_setup_fail(err, errlen,
                           ca_file != NULL ? "cannot load CA file"
                                           : "cannot load CA directory",
                           ca_file != NULL ? ca_file : ca_dir);
      goto fail;
    }
  } else if (pem == NULL && SSL_CTX_set_default_verify_paths(ctx) != 1) {
    rc = errs_setup_fail(err, errlen, "cannot load the system trust store",
                         NULL);
    goto fail;
  }
  *out = ctx;
  rc = 0;
  goto out;
fail:
  SSL_CTX_free(ctx);
out:
  ERR_clear_error();
  return rc;
}

/* An IPv4 or IPv6 literal (no brackets)? */
static int is_ip_literal(const char *host) {
  unsigned char buf[16];
  return inet_pton(AF_INET, host, buf) == 1 ||
         inet_pton(AF_INET6, host, buf) == 1;
}

/* Name checks (inside the handshake) and SNI. Returns 0 or SSL failure. */
static int setup_name(smtpuv_tls *t, const char *host, int verify) {
  if (host == NULL)
    return 0;
  if (is_ip_literal(host)) {
    /* no SNI for addresses (RFC 6066 section 3) */
    if (verify &&
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), host) != 1)
      return -1;
    return 0;
  }
  if (SSL_set_tlsext_host_name(t->ssl, host) != 1)
    return -1;
  if (verify) {
    SSL_set_hostflags(t->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (SSL_set1_host(t->ssl, host) != 1)
      return -1;
  }
  return 0;
}

int smtpuv__tls_new(const smtpuv_mem *mem, const smtpuv_tls_config *cfg,
                    smtpuv_tls **out) {
  smtpuv_mem m;
  smtpuv_tls *t;
  SSL_CTX *ctx = NULL;
  char *errbuf;
  size_t errlen;
  size_t hlen;
  int rc;

  ERR_clear_error();
  if (out == NULL)
    return SMTPUV_EINVAL;
  *out = NULL;
  if (cfg == NULL)
    return SMTPUV_EINVAL;
  errbuf = cfg->err;
  errlen = errbuf != NULL ? cfg->errlen : 0;
  fmt_text(errbuf, errlen, "%s", "");
  hlen = cfg->host != NULL ? strlen(cfg->host) : 0;
  if (hlen > 0 && cfg->host[hlen - 1] == '.')
    hlen--; /* "example.com." is "example.com" on the wire and in certs */
  if (cfg->verify && hlen == 0) {
    fmt_text(errbuf, errlen, "a host name is needed to verify the server");
    return SMTPUV_EINVAL;
  }
  if (hlen > 253) {
    fmt_text(errbuf, errlen, "host name too long");
    return SMTPUV_EINVAL;
  }
  if (mem != NULL && (mem->malloc == NULL || mem->free == NULL ||
                      mem->calloc == NULL || mem->realloc == NULL))
    return SMTPUV_EINVAL;
  smtpuv__mem_init(&m, mem);

  t = smtpuv__calloc(&m, 1, sizeof(*t));
  if (t == NULL)
    return SMTPUV_ENOMEM;
  t->mem = m;
  t->verify = cfg->verify != 0;
  if (cfg->pin_sha256 != NULL) {
    t->pinned = 1;
    t->verify = 0; /* the pin is the check (after the handshake) */
    memcpy(t->pin, cfg->pin_sha256, sizeof(t->pin));
  }
  if (hlen > 0) {
    t->host = smtpuv__strndup(&m, cfg->host, hlen);
    if (t->host == NULL) {
      rc = SMTPUV_ENOMEM;
      goto fail;
    }
  }

  if (cfg->ctx != NULL) {
    ctx = cfg->ctx;
  } else {
    rc = smtpuv__tls_ctx_new(cfg->ca_file, cfg->ca_dir, &ctx, errbuf, errlen);
    if (rc != 0)
      goto fail;
  }
  /* SSL_new takes its own reference on the context: the caller's stays the
     caller's; one we built is released below and dies with the SSL. */
  t->ssl = SSL_new(ctx);
  if (cfg->ctx == NULL)
    SSL_CTX_free(ctx);
  if (t->ssl == NULL)
    goto ssl_fail;
  t->rbio = BIO_new(BIO_s_mem());
  if (t->rbio == NULL)
    goto ssl_fail;
  t->wbio = BIO_new(BIO_s_mem());
  if (t->wbio == NULL) {
    BIO_free(t->rbio);
    t->rbio = NULL;
    goto ssl_fail;
  }
  BIO_set_mem_eof_return(t->rbio, -1);
  SSL_set_bio(t->ssl, t->rbio, t->wbio); /* the SSL owns both now */
  SSL_set_connect_state(t->ssl);
#ifdef SSL_OP_CLEANSE_PLAINTEXT
  SSL_set_options(t->ssl, SSL_OP_CLEANSE_PLAINTEXT);
#endif
  /* Refuse TLS 1.2 renegotiation (a HelloRequest gets a no_renegotiation
     warning), as Go's crypto/tls does by default: SMTP servers have no use
     for it, and an SSL_write during a renegotiation would need a read first
     (WANT_READ), which a write-through engine cannot honour. Also applied
     over a caller's context. */
  SSL_set_options(t->ssl, SSL_OP_NO_RENEGOTIATION);
  /* A caller's context may have cleared it: without it SSL_read stops with
     WANT_READ after a non-data record (a TLS 1.3 session ticket) although
     application data is already buffered behind it, and the engine would
     report "need more input" for bytes it holds. */
  SSL_set_mode(t->ssl, SSL_MODE_AUTO_RETRY);
  SSL_set_verify(t->ssl, t->verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
  if (setup_name(t, t->host, t->verify) != 0)
    goto ssl_fail;
  /* idle connections give their record buffers back (also over a caller's
     context: a per-connection setting) */
  SSL_set_mode(t->ssl, SSL_MODE_RELEASE_BUFFERS);
  if (session_setup(t, cfg) != 0)
    goto ssl_fail;
  if (cfg->cert_file != NULL) {
    const char *key = cfg->key_file != NULL ? cfg->key_file : cfg->cert_file;
    if (SSL_use_certificate_chain_file(t->ssl, cfg->cert_file) != 1 ||
        SSL_use_PrivateKey_file(t->ssl, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_check_private_key(t->ssl) != 1) {
      rc = errs_setup_fail(errbuf, errlen,
                           "cannot load the client certificate",
                           cfg->cert_file);
      goto fail;
    }
  }
  ERR_clear_error();
  *out = t;
  return 0;

ssl_fail:
  rc = errs_setup_fail(errbuf, errlen, "cannot create the TLS session", NULL);
fail:
  ERR_clear_error();
  smtpuv__tls_free(t);
  return rc;
}

void smtpuv__tls_free(smtpuv_tls *t) {
  smtpuv_mem m;
  if (t == NULL)
    return;
  m = t->mem;
  SSL_free(t->ssl); /* frees both BIOs and its context reference */
  ERR_clear_error();
  smtpuv__free(&m, t->host);
  OPENSSL_cleanse(t, sizeof(*t));
  smtpuv__free(&m, t);
}

/* ------------------------------------------------------------------------ */
/* Bytes in and out                                                          */
/* ------------------------------------------------------------------------ */

int smtpuv__tls_feed(smtpuv_tls *t, const void *data, size_t len) {
  const unsigned char *p = data;
  ERR_clear_error();
  if (t == NULL || (data == NULL && len > 0))
    return SMTPUV_EINVAL;
  if (len > 0 && BIO_ctrl_pending(t->rbio) > SMTPUV__TLS_INPUT_MAX) {
    fmt_text(t->err, sizeof(t->err),
             "TLS input: more than %d bytes fed and still unread",
             SMTPUV__TLS_INPUT_MAX);
    return SMTPUV_ELIMIT;
  }
  while (len > 0) {
    int n = len > TLS_CHUNK_MAX ? TLS_CHUNK_MAX : (int)len;
    int w = BIO_write(t->rbio, p, n);
    if (w <= 0) {
      ERR_clear_error();
      fmt_text(t->err, sizeof(t->err), "TLS input: out of memory");
      return SMTPUV_ENOMEM;
    }
    p += w;
    len -= (size_t)w;
  }
  return 0;
}

void smtpuv__tls_eof(smtpuv_tls *t) {
  ERR_clear_error();
  if (t == NULL)
    return;
  BIO_set_mem_eof_return(t->rbio, 0);
  t->eof = 1;
}

size_t smtpuv__tls_pending_output(const smtpuv_tls *t) {
  return t != NULL ? BIO_ctrl_pending(t->wbio) : 0;
}

int smtpuv__tls_take_output(smtpuv_tls *t, void **buf, size_t *len) {
  size_t n, got = 0;
  unsigned char *p;

  ERR_clear_error();
  if (buf != NULL)
    *buf = NULL;
  if (len != NULL)
    *len = 0;
  if (t == NULL || buf == NULL || len == NULL)
    return SMTPUV_EINVAL;
  n = BIO_ctrl_pending(t->wbio);
  if (n == 0)
    return 0;
  p = smtpuv__malloc(&t->mem, n);
  if (p == NULL)
    return SMTPUV_ENOMEM; /* the output stays queued for a later try */
  while (got < n) {
    size_t want = n - got;
    int r = BIO_read(t->wbio, p + got,
                     want > TLS_CHUNK_MAX ? TLS_CHUNK_MAX : (int)want);
    if (r <= 0)
      break;
    got += (size_t)r;
  }
  ERR_clear_error();
  if (got == 0) {
    smtpuv__free(&t->mem, p);
    return 0;
  }
  *buf = p;
  *len = got;
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Handshake, records, shutdown                                              */
/* ------------------------------------------------------------------------ */

/* The peer certificate's SHA-256 against the pin; the text says why not. */
static int pin_matches(smtpuv_tls *t) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  int ok = 0;
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
  X509 *cert = SSL_get1_peer_certificate(t->ssl);
#else
  X509 *cert = SSL_get_peer_certificate(t->ssl);
#endif
  if (cert == NULL) {
    fmt_text(t->err, sizeof(t->err),
             "certificate fingerprint mismatch: no server certificate");
    return 0;
  }
  if (X509_digest(cert, EVP_sha256(), md, &n) == 1 && n == sizeof(t->pin))
    ok = CRYPTO_memcmp(md, t->pin, sizeof(t->pin)) == 0;
  X509_free(cert);
  if (!ok) {
    char hex[3 * 32 + 1];
    for (unsigned int i = 0; i < n && i < 32; i++)
      snprintf(hex + 3 * i, 4, "%02X%s", md[i], i + 1 < n ? ":" : "");
    fmt_text(t->err, sizeof(t->err),
             "certificate fingerprint mismatch: the server's SHA-256 is %s",
             n ? hex : "unknown");
  }
  return ok;
}

int smtpuv__tls_handshake(smtpuv_tls *t) {
  int r, e, rc;
  ERR_clear_error();
  if (t == NULL)
    return SMTPUV_EINVAL;
  if (t->dead)
    return t->dead;
  if (t->established)
    return 1;
  r = SSL_do_handshake(t->ssl);
  if (r == 1 && t->pinned && !pin_matches(t)) {
    t->dead = SMTPUV_ECERT;
    rc = SMTPUV_ECERT;
  } else if (r == 1) {
    t->established = 1;
    rc = 1;
  } else {
    e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      rc = 0;
    } else {
      rc = tls_fail(t, e, "TLS handshake failed");
      if (rc == SMTPUV_ECONNLOST) /* close_notify before the end counts too */
        t->dead = rc;
    }
  }
  ERR_clear_error();
  return rc;
}

long smtpuv__tls_read(smtpuv_tls *t, void *buf, size_t cap) {
  int r, e;
  long rc;
  ERR_clear_error();
  if (t == NULL || buf == NULL || cap == 0)
    return SMTPUV_EINVAL;
  if (t->dead)
    return t->dead;
  if (!t->established)
    return SMTPUV_ESTATE;
  if (t->peer_closed)
    return SMTPUV_ECONNLOST;
  r = SSL_read(t->ssl, buf, cap > TLS_CHUNK_MAX ? TLS_CHUNK_MAX : (int)cap);
  if (r > 0) {
    rc = r;
  } else {
    e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
      rc = 0;
    else
      rc = tls_fail(t, e, "TLS read failed");
  }
  ERR_clear_error();
  return rc;
}

int smtpuv__tls_write(smtpuv_tls *t, const void *data, size_t len) {
  const unsigned char *p = data;
  int rc = 0;
  ERR_clear_error();
  if (t == NULL || (data == NULL && len > 0))
    return SMTPUV_EINVAL;
  if (t->dead)
    return t->dead;
  if (!t->established)
    return SMTPUV_ESTATE;
  while (len > 0) {
    int n = len > TLS_CHUNK_MAX ? TLS_CHUNK_MAX : (int)len;
    /* Without SSL_MODE_ENABLE_PARTIAL_WRITE a successful SSL_write took all
       n bytes; growable memory BIOs never ask for a retry. */
    int r = SSL_write(t->ssl, p, n);
    if (r <= 0) {
      int e = SSL_get_error(t->ssl, r);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        /* cannot happen with memory BIOs; a half-written stream is dead */
        ERR_clear_error();
        fmt_text(t->err, sizeof(t->err), "TLS write failed: unexpected retry");
        t->dead = rc = SMTPUV_ETLS;
      } else {
        rc = tls_fail(t, e, "TLS write failed");
        if (rc == SMTPUV_ECONNLOST) /* writing after the peer's close */
          t->dead = rc = SMTPUV_ETLS;
      }
      break;
    }
    p += r;
    len -= (size_t)r;
  }
  ERR_clear_error();
  return rc;
}

int smtpuv__tls_shutdown(smtpuv_tls *t) {
  int r, rc = 0;
  ERR_clear_error();
  if (t == NULL)
    return SMTPUV_EINVAL;
  if (t->dead)
    return t->dead;
  if (!t->established)
    return SMTPUV_ESTATE;
  if (t->shut)
    return 0;
  r = SSL_shutdown(t->ssl); /* 0: ours queued, the peer's not seen; 1: both */
  if (r >= 0) {
    t->shut = 1;
  } else {
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      t->shut = 1; /* close_notify is queued; we do not wait for the peer */
    } else {
      rc = tls_fail(t, e, "TLS shutdown failed");
    }
  }
  ERR_clear_error();
  return rc;
}

const char *smtpuv__tls_error_text(const smtpuv_tls *t) {
  return t != NULL ? t->err : "";
}

/* ------------------------------------------------------------------------ */
/* Summary                                                                   */
/* ------------------------------------------------------------------------ */

/* First CN of `name` as printable UTF-8 (control bytes become '?'). */
static void name_cn(const X509_NAME *name, char *out, size_t cap) {
  unsigned char *utf8 = NULL;
  int idx, n, i;
  snprintf(out, cap, "(none)");
  if (name == NULL)
    return;
  idx = X509_NAME_get_index_by_NID((X509_NAME *)name, NID_commonName, -1);
  if (idx < 0)
    return;
  n = ASN1_STRING_to_UTF8(
      &utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx)));
  if (n < 0)
    return;
  for (i = 0; i < n; i++)
    if (utf8[i] < 0x20 || utf8[i] == 0x7f)
      utf8[i] = '?';
  snprintf(out, cap, "%.*s", n, (const char *)utf8);
  OPENSSL_free(utf8);
}

size_t smtpuv__tls_summary(const smtpuv_tls *t, char *buf, size_t cap) {
  char subject[128], issuer[128], expires[48] = "unknown";
  char since[48] = "unknown", sha[3 * 32 + 1] = "unknown";
  const SSL_CIPHER *cipher;
  X509 *cert;
  int n;

  ERR_clear_error();
  if (buf == NULL || cap == 0)
    return 0;
  buf[0] = '\0';
  if (t == NULL)
    return 0;
  if (!t->established) {
    n = snprintf(buf, cap, "TLS handshake not complete");
    return n < 0 ? 0 : ((size_t)n < cap ? (size_t)n : cap - 1);
  }
  cipher = SSL_get_current_cipher(t->ssl);
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
  cert = SSL_get1_peer_certificate(t->ssl);
#else
  cert = SSL_get_peer_certificate(t->ssl);
#endif
  if (cert != NULL) {
    struct tm tm;
    name_cn(X509_get_subject_name(cert), subject, sizeof(subject));
    name_cn(X509_get_issuer_name(cert), issuer, sizeof(issuer));
    memset(&tm, 0, sizeof(tm));
    if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) == 1)
      snprintf(expires, sizeof(expires), "%04d-%02d-%02d",
               tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
    memset(&tm, 0, sizeof(tm));
    if (ASN1_TIME_to_tm(X509_get0_notBefore(cert), &tm) == 1)
      snprintf(since, sizeof(since), "%04d-%02d-%02d", tm.tm_year + 1900,
               tm.tm_mon + 1, tm.tm_mday);
    {
      unsigned char md[EVP_MAX_MD_SIZE];
      unsigned int mdn = 0;
      if (X509_digest(cert, EVP_sha256(), md, &mdn) == 1 && mdn == 32)
        for (unsigned int i = 0; i < mdn; i++)
          snprintf(sha + 3 * i, 4, "%02X%s", md[i], i + 1 < mdn ? ":" : "");
    }
    n = snprintf(buf, cap,
                 "%s %s; subject CN=%s; issuer CN=%s; sha256 %s; valid "
                 "since %s; expires %s%s",
                 SSL_get_version(t->ssl),
                 cipher != NULL ? SSL_CIPHER_get_name(cipher) : "(none)",
                 subject, issuer, sha, since, expires,
                 SSL_session_reused(t->ssl) ? "; resumed" : "");
    X509_free(cert);
  } else {
    n = snprintf(buf, cap, "%s %s; no peer certificate%s",
                 SSL_get_version(t->ssl),
                 cipher != NULL ? SSL_CIPHER_get_name(cipher) : "(none)",
                 SSL_session_reused(t->ssl) ? "; resumed" : "");
  }
  ERR_clear_error();
  if (n < 0)
    return 0;
  return (size_t)n < cap ? (size_t)n : cap - 1;
}

/* ------------------------------------------------------------------------ */
/* Session resumption (the cache itself: tlssess.c)                          */
/* ------------------------------------------------------------------------ */

static CRYPTO_ONCE ex_once = CRYPTO_ONCE_STATIC_INIT;
static int ex_idx = -1; /* SSL ex data: the engine owning the SSL */

static void ex_init(void) {
  ex_idx = SSL_get_ex_new_index(0, "smtpuv TLS engine", NULL, NULL, NULL);
}

static int ex_index(void) {
  if (CRYPTO_THREAD_run_once(&ex_once, ex_init) != 1)
    return -1;
  return ex_idx;
}

/* OpenSSL: a new session from the server (TLS 1.2 at the end of the
   handshake, TLS 1.3 per NewSessionTicket, during a later read). Returning
   1 hands our reference to the cache. */
static int on_new_session(SSL *ssl, SSL_SESSION *sess) {
  int idx = ex_index();
  smtpuv_tls *t = idx >= 0 ? SSL_get_ex_data(ssl, idx) : NULL;
  if (t == NULL || t->cache == NULL)
    return 0;
  return smtpuv__tls_cache_put(t->cache, t->host, t->port, t->verify, sess);
}

int smtpuv__tls_ctx_enable_sessions(SSL_CTX *ctx) {
  if (ctx == NULL)
    return SMTPUV_EINVAL;
  if (ex_index() < 0) {
    ERR_clear_error();
    return SMTPUV_ENOMEM;
  }
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT |
                                          SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(ctx, on_new_session);
  return 0;
}

/* With a cache: register the engine on its SSL (for on_new_session) and
   offer the session cached for this server, if any. 0 or -1 (OpenSSL
   failure, queue filled). */
static int session_setup(smtpuv_tls *t, const smtpuv_tls_config *cfg) {
  if (cfg->cache == NULL || t->host == NULL)
    return 0;
  int idx = ex_index();
  if (idx < 0 || SSL_set_ex_data(t->ssl, idx, t) != 1)
    return -1;
  t->cache = cfg->cache;
  t->port = cfg->port;
  SSL_SESSION *s =
      smtpuv__tls_cache_find(t->cache, t->host, t->port, t->verify);
  if (s != NULL && SSL_set_session(t->ssl, s) != 1)
    return -1;
  return 0;
}

int smtpuv__tls_resumed(const smtpuv_tls *t) {
  return t != NULL && t->established && SSL_session_reused(t->ssl) == 1;
}

int smtpuv__tls_trim(smtpuv_tls *t) {
  if (t == NULL || !t->established || t->dead ||
      BIO_ctrl_pending(t->rbio) != 0 || BIO_ctrl_pending(t->wbio) != 0 ||
      SSL_pending(t->ssl) != 0)
    return 0;
  ERR_clear_error();
  BIO *r = BIO_new(BIO_s_mem());
  BIO *w = r != NULL ? BIO_new(BIO_s_mem()) : NULL;
  if (w == NULL) { /* keep the old ones: nothing lost */
    BIO_free(r);
    ERR_clear_error();
    return 0;
  }
  /* the EOF setting goes with the read BIO */
  BIO_set_mem_eof_return(r, t->eof ? 0 : -1);
  SSL_set0_rbio(t->ssl, r); /* frees the old one */
  SSL_set0_wbio(t->ssl, w);
  t->rbio = r;
  t->wbio = w;
  ERR_clear_error();
  return 1;
}

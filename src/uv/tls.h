/* SPDX-License-Identifier: MIT */
/*
 * Internal: the TLS engine. One OpenSSL SSL object over two memory BIOs,
 * sans-io: ciphertext in through smtpuv__tls_feed(), ciphertext out through
 * smtpuv__tls_take_output(), plaintext through smtpuv__tls_read()/_write().
 * STARTTLS and implicit TLS both use it; the libuv connection only moves
 * bytes. Unit-tested against an in-process OpenSSL server (no sockets).
 *
 * Every call clears OpenSSL's per-thread error queue before it touches the
 * SSL object and turns whatever the call left there into the engine's own
 * error text (smtpuv__tls_error_text()), so no leftover can poison another
 * connection or the host application (Node). Nothing is ever printed.
 */
#ifndef SMTPUV_SRC_UV_TLS_H
#define SMTPUV_SRC_UV_TLS_H

#include <stddef.h>

#include <openssl/ssl.h>

#include "smtpuv.h"

typedef struct smtpuv_tls smtpuv_tls;

/* A client's TLS session cache (tlssess.c): the last session per server. */
typedef struct smtpuv__tls_cache smtpuv__tls_cache;

/* Client-side verification settings for smtpuv__tls_new(). */
typedef struct smtpuv_tls_config {
  SSL_CTX *ctx;          /* caller's context (referenced, not owned); NULL:
                            the engine builds one from the fields below */
  const char *ca_file;   /* PEM bundle; NULL with ca_dir NULL: system store */
  const char *ca_dir;    /* hashed directory */
  const char *host;      /* SNI and SSL_set1_host() name; an IP literal is
                            verified with X509_VERIFY_PARAM_set1_ip_asc() and
                            sends no SNI; a trailing dot is dropped */
  int verify;            /* 1 (default in the client): verify chain + name;
                            0: accept any certificate (explicit opt-out) */
  const unsigned char *pin_sha256; /* 32 bytes, or NULL: when set, the
                            peer certificate must have this SHA-256 digest,
                            and chain and name checks are not made */
  const char *cert_file; /* client certificate chain (PEM), or NULL */
  const char *key_file;  /* its key (PEM); NULL: in cert_file */
  char *err;             /* optional: receives the text when
                            smtpuv__tls_new() fails (e.g. CA file missing) */
  size_t errlen;         /* size of `err` */
  smtpuv__tls_cache *cache; /* optional: offer the last session cached for
                            (host, port, verify) and keep the ones the
                            server sends (needs a context prepared with
                            smtpuv__tls_ctx_enable_sessions()) */
  unsigned port;         /* the server's port, part of the cache key */
} smtpuv_tls_config;

/*
 * Build a client SSL_CTX: TLS 1.2 minimum, verification on, trust from
 * ca_file/ca_dir or the system's default paths. Returns 0, SMTPUV_ENOMEM,
 * SMTPUV_EINVAL (out NULL), or SMTPUV_ETLS with `err` (may be NULL) filled from the OpenSSL error
 * queue (e.g. "cannot load CA file /x: No such file"). Free with SSL_CTX_free.
 */
int smtpuv__tls_ctx_new(const char *ca_file, const char *ca_dir, SSL_CTX **out,
                        char *err, size_t errlen);

/* smtpuv__tls_ctx_new() trusting the certificates of a PEM bundle in
   memory (`pem` NULL: none) and ca_file/ca_dir when given; the system's
   default paths only when all three are NULL. A bundle without any
   certificate: SMTPUV_ETLS. */
int smtpuv__tls_ctx_new_pem(const char *pem, size_t pem_len,
                            const char *ca_file, const char *ca_dir,
                            SSL_CTX **out, char *err, size_t errlen);

/* Add every certificate of a PEM bundle to `store` (NULL: only count
   them). Returns how many (> 0), SMTPUV_EINVAL (no certificate, len 0 or
   over INT_MAX) or SMTPUV_ENOMEM. Leaves the error queue empty. */
int smtpuv__tls_pem_add(X509_STORE *store, const char *pem, size_t len);

/* New client engine; the handshake starts with the first
   smtpuv__tls_handshake(). Returns 0, SMTPUV_ENOMEM, SMTPUV_EINVAL (verify
   without a host, name too long), SMTPUV_ETLS (text in cfg->err).
   A caller's cfg->ctx is used as is (its trust store, verify callback and
   protocol range: the TLS 1.2 floor of smtpuv__tls_ctx_new() is NOT imposed
   on it, a caller that allows TLS 1.0 made that choice; OpenSSL 3 refuses
   anything below 1.2 at its default security level anyway), except that on
   the engine's SSL object verification is forced on or off per cfg->verify,
   TLS 1.2 renegotiation is refused (SSL_OP_NO_RENEGOTIATION: a server's
   HelloRequest gets a no_renegotiation warning) and SSL_MODE_AUTO_RETRY is
   set. The SSL object holds its own reference, so the caller may free its
   context whenever it likes. A context built here dies with the engine. */
int smtpuv__tls_new(const smtpuv_mem *mem, const smtpuv_tls_config *cfg,
                    smtpuv_tls **out);

/* Free the SSL object, its BIOs, any ciphertext not yet taken, and wipe
   buffered plaintext. NULL is accepted. */
void smtpuv__tls_free(smtpuv_tls *t);

/* Most ciphertext fed and not yet consumed by OpenSSL that the engine
   accepts before refusing more (see smtpuv__tls_feed()). */
#define SMTPUV__TLS_INPUT_MAX (1024 * 1024)

/*
 * Hand the engine ciphertext received from the network. The engine keeps
 * what OpenSSL has not consumed yet; a caller that calls
 * smtpuv__tls_handshake() or smtpuv__tls_read() (until <= 0) after every
 * feed leaves at most one partial TLS record (< 17 KiB) behind, so memory
 * is bounded by the size of its reads. Feeding again while more than
 * SMTPUV__TLS_INPUT_MAX bytes are still unread is refused, so a caller that
 * does not drain cannot be made to buffer without limit by a server.
 * Returns 0, SMTPUV_ENOMEM, SMTPUV_ELIMIT (nothing taken: read first), or
 * SMTPUV_EINVAL.
 */
int smtpuv__tls_feed(smtpuv_tls *t, const void *data, size_t len);

/* The TCP stream ended: tell OpenSSL (memory BIO EOF return 0) so a pending
   read reports the close instead of waiting for more. */
void smtpuv__tls_eof(smtpuv_tls *t);

/*
 * Advance the handshake. Returns 1 when it is complete, 0 when it needs more
 * input (take and send the output first), or SMTPUV_ECERT (chain or host
 * name rejected; the text names the reason, e.g. "certificate verify failed:
 * hostname mismatch"), SMTPUV_ETLS (any other failure, incl. an alert from
 * the peer), SMTPUV_ECONNLOST (EOF during the handshake). Errors are
 * sticky: later calls return the same code. After 1, call
 * smtpuv__tls_read(): the last flight may already have carried data.
 */
int smtpuv__tls_handshake(smtpuv_tls *t);

/*
 * Decrypt into `buf`. Returns the number of bytes (> 0), 0 when more input
 * is needed, SMTPUV_ECONNLOST when the peer sent close_notify or the stream
 * ended (after smtpuv__tls_eof(); an EOF without close_notify is reported
 * the same way: the caller decides whether it was benign, e.g. after QUIT),
 * or SMTPUV_ETLS; SMTPUV_ESTATE before the handshake completed, SMTPUV_EINVAL
 * when cap is 0. Call until it returns <= 0: OpenSSL may hold more than
 * one record. Reads may produce output (alerts, a renegotiation refusal;
 * OpenSSL answers a TLS 1.3 KeyUpdate with the next write): take it.
 */
long smtpuv__tls_read(smtpuv_tls *t, void *buf, size_t cap);

/* Encrypt all `len` bytes into the output queue. Returns 0, SMTPUV_ENOMEM,
   SMTPUV_ETLS, or SMTPUV_ESTATE before the handshake completed. */
int smtpuv__tls_write(smtpuv_tls *t, const void *data, size_t len);

/* Queue a close_notify alert (does not wait for the peer's). Returns 0 (also
   when already queued), SMTPUV_ESTATE before the handshake completed (nothing
   to close: just close the stream), or the engine's sticky error. */
int smtpuv__tls_shutdown(smtpuv_tls *t);

/* Bytes of ciphertext waiting to be sent. */
size_t smtpuv__tls_pending_output(const smtpuv_tls *t);

/*
 * Take all waiting ciphertext: `*buf` is a new allocation from the engine's
 * allocator, owned by the caller (free it with that allocator, e.g. in the
 * write callback), `*len` its size. `*buf` is NULL and `*len` 0 when nothing
 * waits. Returns 0 or SMTPUV_ENOMEM.
 */
int smtpuv__tls_take_output(smtpuv_tls *t, void **buf, size_t *len);

/* Text of the last error (OpenSSL's reason strings, verify result), or "". */
const char *smtpuv__tls_error_text(const smtpuv_tls *t);

/* After the handshake: one line describing the session and the peer
   certificate: "TLSv1.3 TLS_AES_256_GCM_SHA384; subject CN=localhost; issuer
   CN=Test CA; expires 2027-11-24". Returns the length written (truncated to
   cap-1, NUL-terminated). */
size_t smtpuv__tls_summary(const smtpuv_tls *t, char *buf, size_t cap);

/* ---- session resumption (tlssess.c) ---------------------------------------- */

/* A new, empty cache. 0, SMTPUV_ENOMEM or SMTPUV_EINVAL. */
int smtpuv__tls_cache_new(const smtpuv_mem *mem, smtpuv__tls_cache **out);
/* Free the cache and every session in it. NULL is accepted. */
void smtpuv__tls_cache_free(smtpuv__tls_cache *c);
/* Number of sessions held (for tests and the memory figures). */
size_t smtpuv__tls_cache_count(const smtpuv__tls_cache *c);

/* Let engines of `ctx` keep the sessions the server sends (TLS 1.2 session
   IDs or tickets after the handshake, TLS 1.3 tickets after it):
   client-side session caching without OpenSSL's internal store, and a
   new-session callback that hands each session to the cache of the engine
   it belongs to (found through an SSL ex-data index created once). Call on
   a context before it is shared (the library's own built contexts,
   sslshare.c). 0 or SMTPUV_ENOMEM (no ex-data index). */
int smtpuv__tls_ctx_enable_sessions(SSL_CTX *ctx);

/* An idle engine (everything fed was consumed, all output taken) gives
   back the buffers its memory BIOs grew to (they keep their largest size
   otherwise: a whole handshake flight or body write), by replacing both
   with fresh empty ones. Nothing is done while bytes wait either way, or
   before the handshake completed. Returns 1 when trimmed, 0 when not. */
int smtpuv__tls_trim(smtpuv_tls *t);

/* After the handshake: 1 when the server accepted the offered session (an
   abbreviated handshake), else 0. */
int smtpuv__tls_resumed(const smtpuv_tls *t);

/* Internal to tls.c/tlssess.c: the session cached for the key (borrowed,
   NULL when none or no longer resumable), and storing a new one (the cache
   takes the caller's reference; 1 when kept, 0 when not and the caller
   still owns it). */
SSL_SESSION *smtpuv__tls_cache_find(smtpuv__tls_cache *c, const char *host,
                                    unsigned port, int verify);
int smtpuv__tls_cache_put(smtpuv__tls_cache *c, const char *host,
                          unsigned port, int verify, SSL_SESSION *s);

#endif

/* SPDX-License-Identifier: MIT */
/* TLS at scale, the client's side: the options' SSL_CTX built off the loop
 * thread, and the client's session cache.
 *
 * Building a context loads the trust store (the system bundle: ~17 ms of
 * CPU). A TLS client created before anyone built it queues the build on
 * libuv's thread pool (uv_queue_work) at smtpuv_client_new(); the share's
 * mutex (sslshare.c) keeps concurrent builds from several threads or
 * clients to one. A connection that reaches its handshake first waits
 * (conn.c holds the handshake while smtpuv__client_tls_waiting()); the
 * after-work callback, on the loop, stores the context in the client and
 * kicks the client's dispatch, which drives the connection on. A build
 * that failed in the worker leaves nothing: the connection then builds on
 * the loop, which reports the reason (a missing CA file fails fast).
 *
 * The session cache (tlssess.c) holds the sessions the client's
 * connections got, so the next connection to the same server resumes.
 */
#include <string.h>

#include <openssl/crypto.h>

#include "conv/conv_int.h" /* the conversation's protocol session */
#include "protocol/idle.h"
#include "uv/client_int.h"

static void build_work(uv_work_t *w) {
  smtpuv_client *c = w->data;
  SSL_CTX *ctx = NULL;
  /* c->opts is not changed after smtpuv_client_new(); the share locks */
  if (smtpuv__options_ssl_ctx(&c->opts, &ctx, c->tls.err, sizeof c->tls.err) ==
      0)
    c->tls.built = ctx;
  /* The build left OpenSSL per-thread state (error queue, DRBGs) on this
     pool thread, which lives until the process ends and is not freed by
     OpenSSL's exit handler (valgrind: definitely lost). Give it back now;
     OpenSSL recreates it if later work on this thread needs it. */
  OPENSSL_thread_stop();
}

static void build_done(uv_work_t *w, int status) {
  smtpuv_client *c = w->data;
  (void)status; /* canceled: nothing built, the connection builds */
  c->tls.work_pending = 0;
  if (c->tls.built != NULL) {
    if (c->ssl_ctx == NULL)
      c->ssl_ctx = c->tls.built;
    else
      SSL_CTX_free(c->tls.built);
    c->tls.built = NULL;
  }
  /* every connection that holds its handshake (the pool's and probes),
     then the dispatch (queued messages, or a pending close) */
  smtpuv__conn *cn = c->tls.waiters;
  c->tls.waiters = NULL;
  while (cn != NULL) {
    smtpuv__conn *next = cn->tls_wait_next;
    cn->tls_wait_next = NULL;
    cn->tls_listed = 0;
    smtpuv__conn_drive(cn); /* frees nothing now: handles close later */
    cn = next;
  }
  smtpuv__client_kick(c);
}

void smtpuv__client_tls_wait(smtpuv_client *c, smtpuv__conn *cn) {
  if (cn->tls_listed)
    return;
  cn->tls_listed = 1;
  cn->tls_wait_next = c->tls.waiters;
  c->tls.waiters = cn;
}

void smtpuv__client_tls_forget(smtpuv_client *c, smtpuv__conn *cn) {
  if (!cn->tls_listed)
    return;
  for (smtpuv__conn **pp = &c->tls.waiters; *pp != NULL;
       pp = &(*pp)->tls_wait_next)
    if (*pp == cn) {
      *pp = cn->tls_wait_next;
      break;
    }
  cn->tls_listed = 0;
}

void smtpuv__client_tls_start(smtpuv_client *c) {
  if (c->opts.tls == SMTPUV_TLS_NONE || c->opts.ssl_ctx != NULL ||
      c->ssl_ctx != NULL)
    return;
  if (smtpuv__ssl_share_peek(c->opts.ssl_share, &c->ssl_ctx))
    return; /* built before: no need for a thread */
  c->tls.work.data = c;
  if (uv_queue_work(c->loop, &c->tls.work, build_work, build_done) == 0)
    c->tls.work_pending = 1;
  /* else: built on the loop at the first TLS connection, as before */
}

int smtpuv__client_tls_waiting(const smtpuv_client *c) {
  return c->tls.work_pending && c->ssl_ctx == NULL;
}

smtpuv__tls_cache *smtpuv__client_tls_cache(smtpuv_client *c) {
  if (c->tls.cache == NULL &&
      smtpuv__tls_cache_new(&c->mem, &c->tls.cache) != 0)
    c->tls.cache = NULL;
  return c->tls.cache;
}

void smtpuv__client_tls_clear(smtpuv_client *c) {
  smtpuv__tls_cache_free(c->tls.cache);
  c->tls.cache = NULL;
  if (c->tls.built != NULL)
    SSL_CTX_free(c->tls.built);
  c->tls.built = NULL;
}

void smtpuv__conn_trim_idle(smtpuv__conn *cn) {
  smtpuv_client *c = cn->client;
  /* After every read: nothing refers to the read buffers between reads
     (the conversation and the TLS engine copy what they keep). Freed at
     once, the same chunk serves the next read of any connection on the
     loop, so a thousand clients handshaking at once do not each hold (and
     leave holes of) 2 x 16 KiB. */
  smtpuv__free(&c->mem, c->read_buf);
  smtpuv__free(&c->mem, c->plain_buf);
  c->read_buf = c->plain_buf = NULL;
  if (cn->state != SMTPUV__C_OPEN || smtpuv__conv_inflight(cn->conv) != 0 ||
      c->queue != NULL)
    return;
  /* idle: the engine's BIO buffers and the protocol session's spare
     output block and input buffer too (this costs a few small
     allocations at the next message, so not between the messages of a
     busy connection) */
  smtpuv__tls_trim(cn->tls);
  smtpuv__proto_release_idle(cn->conv->proto);
}

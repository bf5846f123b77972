/* SPDX-License-Identifier: MIT */
/* The SSL_CTX the library builds, shared.
 *
 * Building a client context loads the trust store (the system's: a few
 * hundred certificates, ~20 ms of CPU and ~800 KiB), so it is built once
 * per options object, at the first TLS connection of any client made from
 * them, and every such client references it (SSL_CTX_up_ref). The share is
 * refcounted: the options and each client copy hold one reference, so a
 * client outlives the options it came from. Setting new trust anchors on
 * the options (smtpuv_options_set_ca) starts a new share; clients made
 * before keep theirs.
 *
 * A TLS client starts the build on libuv's thread pool when it is created
 * (tlsprep.c), so the loop thread does not spend the ~20 ms; a connection
 * that needs TLS before the build is done waits for it.
 *
 * Options are const to smtpuv_client_new() and smtpuv_send_sync(), which
 * may run in several threads at once with the same options object: the
 * reference count and the lazy build are guarded by a mutex. A built
 * context is never modified again, and OpenSSL allows SSL_new() on one
 * context from several threads.
 */
#include <string.h>

#include "uv/client_int.h"

struct smtpuv__ssl_share {
  smtpuv_mem mem;
  uv_mutex_t lock;
  unsigned refs;
  SSL_CTX *ctx; /* NULL until first needed (or after a failed build) */
  uv_thread_t built_by; /* the thread that built ctx (tests) */
};

int smtpuv__ssl_share_new(const smtpuv_mem *mem, smtpuv__ssl_share **out) {
  smtpuv__ssl_share *s = smtpuv__calloc(mem, 1, sizeof *s);
  *out = NULL;
  if (s == NULL)
    return SMTPUV_ENOMEM;
  if (uv_mutex_init(&s->lock) != 0) {
    smtpuv__free(mem, s);
    return SMTPUV_ENOMEM;
  }
  s->mem = *mem;
  s->refs = 1;
  *out = s;
  return 0;
}

smtpuv__ssl_share *smtpuv__ssl_share_ref(smtpuv__ssl_share *s) {
  if (s != NULL) {
    uv_mutex_lock(&s->lock);
    s->refs++;
    uv_mutex_unlock(&s->lock);
  }
  return s;
}

void smtpuv__ssl_share_unref(smtpuv__ssl_share *s) {
  if (s == NULL)
    return;
  uv_mutex_lock(&s->lock);
  unsigned left = --s->refs;
  uv_mutex_unlock(&s->lock);
  if (left > 0)
    return;
  if (s->ctx != NULL)
    SSL_CTX_free(s->ctx);
  uv_mutex_destroy(&s->lock);
  smtpuv_mem m = s->mem;
  smtpuv__free(&m, s);
}

int smtpuv__ssl_share_get(smtpuv__ssl_share *s, const char *ca_file,
                          const char *ca_dir, SSL_CTX **out, char *err,
                          size_t errlen) {
  return smtpuv__ssl_share_get_pem(s, NULL, 0, ca_file, ca_dir, out, err,
                                   errlen);
}

int smtpuv__ssl_share_get_pem(smtpuv__ssl_share *s, const char *pem,
                              size_t pem_len, const char *ca_file,
                              const char *ca_dir, SSL_CTX **out, char *err,
                              size_t errlen) {
  int rc = 0;
  *out = NULL;
  if (s == NULL)
    return SMTPUV_EINVAL;
  uv_mutex_lock(&s->lock);
  if (s->ctx == NULL) {
    SSL_CTX *ctx;
    rc = smtpuv__tls_ctx_new_pem(pem, pem_len, ca_file, ca_dir, &ctx, err,
                                 errlen);
    if (rc == 0) {
      /* idle connections give their 2 x ~17 KiB record buffers back */
      SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
      /* sessions go to the cache of the client whose connection got them */
      rc = smtpuv__tls_ctx_enable_sessions(ctx);
      if (rc == 0) {
        s->ctx = ctx;
        s->built_by = uv_thread_self();
      } else {
        SSL_CTX_free(ctx);
      }
    }
  }
  if (rc == 0) {
    if (SSL_CTX_up_ref(s->ctx) == 1)
      *out = s->ctx;
    else
      rc = SMTPUV_ENOMEM;
  }
  uv_mutex_unlock(&s->lock);
  return rc;
}

int smtpuv__ssl_share_peek(smtpuv__ssl_share *s, SSL_CTX **out) {
  int got = 0;
  *out = NULL;
  if (s == NULL)
    return 0;
  uv_mutex_lock(&s->lock);
  if (s->ctx != NULL && SSL_CTX_up_ref(s->ctx) == 1) {
    *out = s->ctx;
    got = 1;
  }
  uv_mutex_unlock(&s->lock);
  return got;
}

int smtpuv__ssl_share_built_by(smtpuv__ssl_share *s, uv_thread_t *out) {
  int built = 0;
  if (s == NULL)
    return 0;
  uv_mutex_lock(&s->lock);
  if (s->ctx != NULL) {
    *out = s->built_by;
    built = 1;
  }
  uv_mutex_unlock(&s->lock);
  return built;
}

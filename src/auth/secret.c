/* SPDX-License-Identifier: MIT */
/* Secret strings and buffers: every byte that held a password, token,
 * derived key or response is wiped (OPENSSL_cleanse) before it is freed. */
#include <string.h>

#include <openssl/crypto.h>

#include "auth/auth_int.h"

char *smtpuv__secret_dup(const smtpuv_mem *m, const char *s, int *err) {
  if (s == NULL)
    return NULL;
  char *d = smtpuv__strdup(m, s);
  if (d == NULL)
    *err = SMTPUV_ENOMEM;
  return d;
}

void smtpuv__secret_free(const smtpuv_mem *m, char *s) {
  if (s == NULL)
    return;
  OPENSSL_cleanse(s, strlen(s) + 1);
  smtpuv__free(m, s);
}

void smtpuv__wipe_free(const smtpuv_mem *m, void *p, size_t n) {
  if (p == NULL)
    return;
  OPENSSL_cleanse(p, n);
  smtpuv__free(m, p);
}

int smtpuv__pwcred_copy(smtpuv__pwcred *p, const smtpuv_mem *m,
                        const smtpuv_auth_credentials *c, int with_authzid) {
  int err = 0;
  p->mem = m;
  p->authzid = with_authzid
                   ? smtpuv__secret_dup(m, c->authzid ? c->authzid : "", &err)
                   : NULL;
  p->user = smtpuv__secret_dup(m, c->username, &err);
  p->pass = smtpuv__secret_dup(m, c->password, &err);
  if (err != 0)
    smtpuv__pwcred_clear(p);
  return err;
}

void smtpuv__pwcred_clear(smtpuv__pwcred *p) {
  smtpuv__secret_free(p->mem, p->authzid);
  smtpuv__secret_free(p->mem, p->user);
  smtpuv__secret_free(p->mem, p->pass);
  p->authzid = p->user = p->pass = NULL;
}

void smtpuv__sbuf_init(smtpuv__sbuf *b, const smtpuv_mem *m) {
  b->mem = m;
  b->p = NULL;
  b->len = 0;
  b->cap = 0;
  b->err = 0;
}

static int sbuf_reserve(smtpuv__sbuf *b, size_t extra) {
  if (b->err != 0)
    return b->err;
  if (extra <= b->cap - b->len)
    return 0;
  if (extra > ((size_t)-1) / 4 - b->len) {
    b->err = SMTPUV_ENOMEM;
    return b->err;
  }
  size_t cap = b->cap ? b->cap : 64;
  while (cap - b->len < extra)
    cap *= 2;
  unsigned char *np = smtpuv__malloc(b->mem, cap);
  if (np == NULL) {
    b->err = SMTPUV_ENOMEM;
    return b->err;
  }
  if (b->len > 0)
    memcpy(np, b->p, b->len);
  smtpuv__wipe_free(b->mem, b->p, b->cap);
  b->p = np;
  b->cap = cap;
  return 0;
}

void smtpuv__sbuf_add(smtpuv__sbuf *b, const void *data, size_t len) {
  if (len == 0 || sbuf_reserve(b, len) != 0)
    return;
  memcpy(b->p + b->len, data, len);
  b->len += len;
}

void smtpuv__sbuf_adds(smtpuv__sbuf *b, const char *s) {
  smtpuv__sbuf_add(b, s, strlen(s));
}

void smtpuv__sbuf_addc(smtpuv__sbuf *b, char c) { smtpuv__sbuf_add(b, &c, 1); }

void smtpuv__sbuf_free(smtpuv__sbuf *b) {
  smtpuv__wipe_free(b->mem, b->p, b->cap);
  b->p = NULL;
  b->len = 0;
  b->cap = 0;
}

/* SPDX-License-Identifier: MIT */
/* The authenticator object: ops, the response buffer, error text, OAuth
 * token source, and the mechanism-level API (begin/step/success). */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "auth/auth_int.h"

static int valid_name(const char *name) {
  size_t n = 0;
  for (; name[n] != '\0'; n++) {
    char c = name[n];
    if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
          c == '_'))
      return 0;
  }
  return n >= 1 && n < SMTPUV__AUTH_NAMELEN;
}

int smtpuv__auth_alloc(const smtpuv_mem *mem, const smtpuv_auth_ops *ops,
                       smtpuv_auth **out) {
  if (ops == NULL || out == NULL || ops->struct_size == 0 ||
      ops->name == NULL || !valid_name(ops->name))
    return SMTPUV_EINVAL;
  smtpuv_auth_ops copy;
  memset(&copy, 0, sizeof(copy));
#define END(f) (offsetof(smtpuv_auth_ops, f) + sizeof(copy.f))
  static const size_t ends[] = {END(struct_size), END(name), END(flags),
                                END(begin),       END(step), END(success),
                                END(destroy)};
#undef END
  /* whole fields only: a struct_size in the middle of `step` must not give
     half a function pointer */
  size_t n = smtpuv__struct_prefix(ops->struct_size, ends,
                                   sizeof(ends) / sizeof(ends[0]));
  memcpy(&copy, ops, n);
  copy.struct_size = sizeof(copy);
  if (copy.step == NULL)
    return SMTPUV_EINVAL;
  smtpuv_mem m;
  smtpuv__mem_init(&m, mem);
  smtpuv_auth *a = smtpuv__calloc(&m, 1, sizeof(*a));
  if (a == NULL)
    return SMTPUV_ENOMEM;
  a->mem = m;
  a->ops = copy;
  a->flags = copy.flags;
  memcpy(a->name, ops->name, strlen(ops->name) + 1);
  *out = a;
  return 0;
}

size_t smtpuv__struct_prefix(size_t struct_size, const size_t *ends,
                             size_t n) {
  size_t got = 0;
  for (size_t i = 0; i < n && ends[i] <= struct_size; i++)
    got = ends[i];
  return got;
}

int smtpuv_auth_new(const smtpuv_mem *mem, const smtpuv_auth_ops *ops,
                    void *state, smtpuv_auth **out) {
  int r = smtpuv__auth_alloc(mem, ops, out);
  if (r == 0)
    (*out)->state = state;
  return r;
}

void smtpuv_auth_free(smtpuv_auth *a) {
  if (a == NULL)
    return;
  if (a->ops.destroy != NULL)
    a->ops.destroy(a, a->state);
  smtpuv__wipe_free(&a->mem, a->resp, a->resp_cap);
  smtpuv__secret_free(&a->mem, a->token);
  smtpuv_mem m = a->mem;
  OPENSSL_cleanse(a, sizeof(*a));
  smtpuv__free(&m, a);
}

const char *smtpuv_auth_name(const smtpuv_auth *a) {
  return a != NULL ? a->name : "";
}

const char *smtpuv_auth_error_text(const smtpuv_auth *a) {
  return a != NULL ? a->err : "";
}

int smtpuv_auth_set_error(smtpuv_auth *a, const char *text) {
  if (a == NULL || text == NULL)
    return SMTPUV_EINVAL;
  snprintf(a->err, sizeof(a->err), "%s", text);
  return 0;
}

int smtpuv__auth_errorf(smtpuv_auth *a, int err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(a->err, sizeof(a->err), fmt, ap);
  va_end(ap);
  return err;
}

void smtpuv__auth_clean_text(char *dst, size_t dstlen, const char *src,
                             size_t srclen) {
  if (dstlen == 0)
    return;
  size_t n = srclen < dstlen - 1 ? srclen : dstlen - 1;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)src[i];
    dst[i] = (c >= 0x20 && c < 0x7f) || c == '\n' ? (char)c : '?';
  }
  dst[n] = '\0';
}

void smtpuv__auth_clean_line(char *dst, size_t dstlen, const char *src,
                             size_t srclen) {
  if (dstlen == 0)
    return;
  smtpuv__auth_clean_text(dst, dstlen, src, srclen);
  for (; *dst != '\0'; dst++)
    if (*dst == '\n')
      *dst = '?';
}

int smtpuv__auth_printable(const char *s) {
  for (; *s != '\0'; s++)
    if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
      return 0;
  return 1;
}

int smtpuv_auth_respond(smtpuv_auth *a, const void *data, size_t len) {
  /* len + 1 must not wrap; a response is base64-encoded on the wire, whose
     encoder takes up to INT_MAX / 2 bytes */
  if (a == NULL || (data == NULL && len > 0) || len > (size_t)INT_MAX / 2)
    return SMTPUV_EINVAL;
  if (len + 1 > a->resp_cap) {
    unsigned char *np = smtpuv__malloc(&a->mem, len + 1);
    if (np == NULL)
      return SMTPUV_ENOMEM;
    smtpuv__wipe_free(&a->mem, a->resp, a->resp_cap);
    a->resp = np;
    a->resp_cap = len + 1;
  } else if (a->resp != NULL) {
    OPENSSL_cleanse(a->resp, a->resp_cap);
  }
  if (len > 0)
    memcpy(a->resp, data, len);
  a->resp[len] = '\0';
  a->resp_len = len;
  a->has_resp = 1;
  return 0;
}

static void clear_resp(smtpuv_auth *a) {
  if (a->resp != NULL)
    OPENSSL_cleanse(a->resp, a->resp_cap);
  a->resp_len = 0;
  a->has_resp = 0;
}

void smtpuv_auth_wake(smtpuv_auth *a) {
  if (a != NULL && a->wake != NULL)
    a->wake(a->wake_data);
}

int smtpuv_auth_begin(smtpuv_auth *a, unsigned flags,
                      const unsigned char **resp, size_t *len) {
  if (a == NULL || resp == NULL || len == NULL)
    return SMTPUV_EINVAL;
  if (a->ops.begin == NULL && a->select != NULL)
    return SMTPUV_ESTATE; /* auto before selection */
  int fresh = !a->begin_pending;
  if (fresh) {
    a->err[0] = '\0';
    if (flags & SMTPUV_AUTH_BEGIN_RETRY)
      smtpuv__auth_token_reject(a);
  }
  clear_resp(a);
  int r = a->ops.begin != NULL ? a->ops.begin(a, a->state, flags) : 0;
  a->begin_pending = r == SMTPUV_EAGAIN;
  if (r != 0) {
    clear_resp(a);
    return r;
  }
  *resp = a->has_resp ? a->resp : NULL;
  *len = a->has_resp ? a->resp_len : 0;
  return 0;
}

int smtpuv_auth_step(smtpuv_auth *a, const unsigned char *challenge,
                     size_t clen, const unsigned char **resp, size_t *len) {
  if (a == NULL || resp == NULL || len == NULL ||
      (challenge == NULL && clen > 0))
    return SMTPUV_EINVAL;
  if (a->ops.step == NULL)
    return SMTPUV_ESTATE;
  static const unsigned char empty[1] = {0};
  clear_resp(a);
  int r = a->ops.step(a, a->state, challenge != NULL ? challenge : empty,
                      clen);
  if (r != 0) {
    clear_resp(a);
    return r;
  }
  if (!a->has_resp && (r = smtpuv_auth_respond(a, "", 0)) != 0)
    return r;
  *resp = a->resp;
  *len = a->resp_len;
  return 0;
}

int smtpuv_auth_success(smtpuv_auth *a) {
  if (a == NULL)
    return SMTPUV_EINVAL;
  clear_resp(a);
  return a->ops.success != NULL ? a->ops.success(a, a->state) : 0;
}

/* ---- OAuth tokens -------------------------------------------------------- */

static int token_ok(const char *t) {
  if (*t == '\0')
    return 0;
  for (; *t != '\0'; t++)
    if ((unsigned char)*t <= 0x20 || (unsigned char)*t >= 0x7f)
      return 0;
  return 1;
}

int smtpuv_auth_token_provide(smtpuv_auth *a, const char *token) {
  if (a == NULL || token == NULL || !token_ok(token))
    return SMTPUV_EINVAL;
  int err = 0;
  char *t = smtpuv__secret_dup(&a->mem, token, &err);
  if (t == NULL)
    return err;
  smtpuv__secret_free(&a->mem, a->token);
  a->token = t;
  int was_pending = a->token_state == SMTPUV__TOKEN_PENDING;
  a->token_state = SMTPUV__TOKEN_READY;
  a->token_rejected = 0;
  if (was_pending && !a->in_token_cb)
    smtpuv_auth_wake(a);
  return 0;
}

int smtpuv_auth_token_fail(smtpuv_auth *a, int err, const char *reason) {
  if (a == NULL)
    return SMTPUV_EINVAL;
  smtpuv__secret_free(&a->mem, a->token);
  a->token = NULL;
  int was_pending = a->token_state == SMTPUV__TOKEN_PENDING;
  a->token_state = SMTPUV__TOKEN_FAILED;
  a->token_err = err < 0 ? err : SMTPUV_EAUTH;
  char clean[SMTPUV__AUTH_ERRLEN];
  const char *r = reason != NULL ? reason : "";
  smtpuv__auth_clean_line(clean, sizeof(clean), r, strlen(r));
  snprintf(a->token_reason, sizeof(a->token_reason), "OAuth token: %.240s",
           clean[0] != '\0' ? clean : "the token source failed");
  if (was_pending && !a->in_token_cb)
    smtpuv_auth_wake(a);
  return 0;
}

void smtpuv__auth_token_reject(smtpuv_auth *a) {
  a->token_rejected = 1;
  if (a->token_state == SMTPUV__TOKEN_READY)
    a->token_state = SMTPUV__TOKEN_NONE;
  smtpuv__secret_free(&a->mem, a->token);
  a->token = NULL;
}

int smtpuv__auth_token_get(smtpuv_auth *a, const char **tok) {
  for (int round = 0; round < 2; round++) {
    switch (a->token_state) {
    case SMTPUV__TOKEN_READY:
      *tok = a->token;
      return 0;
    case SMTPUV__TOKEN_PENDING:
      return SMTPUV_EAGAIN;
    case SMTPUV__TOKEN_FAILED:
      /* reported once; the next attempt asks again */
      a->token_state = SMTPUV__TOKEN_NONE;
      memcpy(a->err, a->token_reason, sizeof(a->err));
      return a->token_err;
    default:
      break;
    }
    if (a->token_cb == NULL) {
      if (a->token_rejected)
        return smtpuv__auth_errorf(
            a, SMTPUV_EAUTH,
            "%s: the server rejected the token and there is no token "
            "callback to refresh it",
            a->name);
      return smtpuv__auth_errorf(a, SMTPUV_ECREDENTIALS,
                                 "%s: no OAuth token and no token callback",
                                 a->name);
    }
    a->token_state = SMTPUV__TOKEN_PENDING;
    int rejected = a->token_rejected;
    a->in_token_cb = 1;
    a->token_cb(a, rejected, a->token_data);
    a->in_token_cb = 0;
    if (a->token_state == SMTPUV__TOKEN_PENDING)
      return SMTPUV_EAGAIN;
  }
  return SMTPUV_EAGAIN; /* not reached */
}

int smtpuv__auth_set_token_source(smtpuv_auth *a,
                                  const smtpuv_auth_credentials *c) {
  a->token_cb = c->token_cb;
  a->token_data = c->token_data;
  if (c->token != NULL && c->token[0] != '\0') {
    int err = 0;
    char *t = smtpuv__secret_dup(&a->mem, c->token, &err);
    if (t == NULL)
      return err;
    smtpuv__secret_free(&a->mem, a->token);
    a->token = t;
    a->token_state = SMTPUV__TOKEN_READY;
  }
  return 0;
}

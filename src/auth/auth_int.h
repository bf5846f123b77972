/* SPDX-License-Identifier: MIT */
/* Internal parts of the authenticators: the smtpuv_auth object, secret
 * buffers, base64, and the table of built-in mechanisms. */
#ifndef SMTPUV_SRC_AUTH_INT_H
#define SMTPUV_SRC_AUTH_INT_H

#include <stdarg.h>
#include <stddef.h>

#include "protocol/mem.h"
#include "smtpuv/auth.h"

#define SMTPUV__AUTH_ERRLEN 256
#define SMTPUV__AUTH_NAMELEN 21 /* 20 characters (RFC 4422) + NUL */

enum smtpuv__token_state {
  SMTPUV__TOKEN_NONE = 0, /* nothing asked, nothing held */
  SMTPUV__TOKEN_PENDING,  /* token_cb called, no answer yet */
  SMTPUV__TOKEN_READY,    /* a token is held */
  SMTPUV__TOKEN_FAILED    /* token_cb answered with a failure */
};

struct smtpuv_auth {
  smtpuv_mem mem;
  smtpuv_auth_ops ops; /* copy */
  void *state;
  char name[SMTPUV__AUTH_NAMELEN];
  unsigned flags; /* effective ops flags (auto: the selected mechanism's) */
  /* auto: choose the mechanism from the server's list (NULL otherwise) */
  int (*select)(smtpuv_auth *a, const char *offered);

  /* the response of the last begin/step (wiped when replaced) */
  unsigned char *resp;
  size_t resp_len, resp_cap;
  int has_resp;
  int begin_pending; /* the last begin() returned SMTPUV_EAGAIN */

  char err[SMTPUV__AUTH_ERRLEN];

  /* OAuth token source */
  smtpuv_auth_token_cb token_cb;
  void *token_data;
  char *token; /* wiped when replaced or freed */
  int token_state;
  int token_rejected; /* the held token was rejected: ask for a fresh one */
  int token_err;
  char token_reason[SMTPUV__AUTH_ERRLEN];
  int in_token_cb;

  /* the session waiting on us */
  void (*wake)(void *data);
  void *wake_data;
  int attached;
};

/* ---- secrets ------------------------------------------------------------ */

/* Copy of `s` (NULL gives NULL with *err untouched); sets *err to
   SMTPUV_ENOMEM on failure. */
char *smtpuv__secret_dup(const smtpuv_mem *m, const char *s, int *err);
/* Wipe strlen(s)+1 bytes and free. NULL is accepted. */
void smtpuv__secret_free(const smtpuv_mem *m, char *s);
/* Wipe `n` bytes and free. NULL is accepted. */
void smtpuv__wipe_free(const smtpuv_mem *m, void *p, size_t n);

/* The password credentials PLAIN, LOGIN and CRAM-MD5 keep: wiped copies of
   the username, the password and (when asked for) the authorization id. */
typedef struct smtpuv__pwcred {
  const smtpuv_mem *mem;
  char *authzid; /* "" when none; NULL unless copied with_authzid */
  char *user, *pass;
} smtpuv__pwcred;

/* Copy the credentials' strings into `p`. 0, or SMTPUV_ENOMEM with `p`
   cleared. */
int smtpuv__pwcred_copy(smtpuv__pwcred *p, const smtpuv_mem *m,
                        const smtpuv_auth_credentials *c, int with_authzid);
/* Wipe and free the copies. */
void smtpuv__pwcred_clear(smtpuv__pwcred *p);

/* A growing byte buffer for secrets: it never uses realloc (which could
   leave a copy behind), the old block is wiped before it is freed. */
typedef struct smtpuv__sbuf {
  const smtpuv_mem *mem;
  unsigned char *p;
  size_t len, cap;
  int err; /* sticky SMTPUV_ENOMEM */
} smtpuv__sbuf;

void smtpuv__sbuf_init(smtpuv__sbuf *b, const smtpuv_mem *m);
void smtpuv__sbuf_add(smtpuv__sbuf *b, const void *data, size_t len);
void smtpuv__sbuf_adds(smtpuv__sbuf *b, const char *s);
void smtpuv__sbuf_addc(smtpuv__sbuf *b, char c);
void smtpuv__sbuf_free(smtpuv__sbuf *b); /* wipes */

/* ---- base64 (OpenSSL) --------------------------------------------------- */

/* NUL-terminated base64 of `len` bytes in *out (free with
   smtpuv__secret_free). 0 or SMTPUV_ENOMEM / SMTPUV_EINVAL (too long). */
int smtpuv__b64_encode(const smtpuv_mem *m, const void *data, size_t len,
                       char **out);
/* Strict decode: length a multiple of 4, only A-Z a-z 0-9 + /, '=' only as
   the last one or two characters, zero bits under the padding. *out is NUL-terminated (not counted in
   *outlen); free with smtpuv__wipe_free(m, *out, *outlen + 1).
   0, SMTPUV_EPROTO (malformed), SMTPUV_ENOMEM. */
int smtpuv__b64_decode(const smtpuv_mem *m, const char *in, size_t inlen,
                       unsigned char **out, size_t *outlen);
/* 1 when `in` is valid base64 under the rules above. */
int smtpuv__b64_valid(const char *in, size_t inlen);

/* ---- the auth object ----------------------------------------------------- */

/* Allocate an authenticator for `ops` (name validated). */
int smtpuv__auth_alloc(const smtpuv_mem *mem, const smtpuv_auth_ops *ops,
                       smtpuv_auth **out);
/* printf-style error text; returns `err`. */
int smtpuv__auth_errorf(smtpuv_auth *a, int err, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* The held OAuth token: 0 (`*tok` set), SMTPUV_EAGAIN (token_cb asked and
   not answered yet), or an error (token failure; no source:
   SMTPUV_ECREDENTIALS) with the error text set. */
int smtpuv__auth_token_get(smtpuv_auth *a, const char **tok);
/* The held token was rejected by the server: the next token_get asks
   token_cb again with rejected = 1. */
void smtpuv__auth_token_reject(smtpuv_auth *a);

/* Copy text into a fixed buffer, replacing control characters and bytes
   >= 0x80 with '?' (server texts in error messages). */
void smtpuv__auth_clean_text(char *dst, size_t dstlen, const char *src,
                             size_t srclen);
/* The same on one line: '\n' becomes '?' too (a server's challenge text in
   an error message must not forge a second line in the caller's log). */
void smtpuv__auth_clean_line(char *dst, size_t dstlen, const char *src,
                             size_t srclen);

/* 1 when every byte of s is printable ASCII (0x20..0x7e). */
int smtpuv__auth_printable(const char *s);

/* How many bytes of a caller's struct of `struct_size` to copy: the end of
   the last whole field it covers (`ends`: the fields' end offsets in
   order), never a part of a pointer. */
size_t smtpuv__struct_prefix(size_t struct_size, const size_t *ends,
                             size_t n);

/* ---- built-in mechanisms ------------------------------------------------- */

/* Create a mechanism's state from credentials. The creds were checked for
   NULL required fields by the caller (smtpuv__mech_table). */
typedef int (*smtpuv__mech_create_fn)(const smtpuv_mem *m,
                                      const smtpuv_auth_credentials *c,
                                      void **state);

typedef struct smtpuv__mech_info {
  smtpuv_auth_mech mech;
  const smtpuv_auth_ops *ops;
  smtpuv__mech_create_fn create;
  int needs_password; /* username + password */
  int needs_token;    /* token source */
  int ascii_only;     /* SCRAM: no SASLprep */
} smtpuv__mech_info;

const smtpuv__mech_info *smtpuv__mech_lookup(smtpuv_auth_mech mech);

extern const smtpuv_auth_ops smtpuv__plain_ops, smtpuv__login_ops,
    smtpuv__cram_md5_ops, smtpuv__scram_sha1_ops, smtpuv__scram_sha256_ops,
    smtpuv__xoauth2_ops, smtpuv__oauthbearer_ops;

int smtpuv__plain_create(const smtpuv_mem *m, const smtpuv_auth_credentials *c,
                         void **state);
int smtpuv__login_create(const smtpuv_mem *m, const smtpuv_auth_credentials *c,
                         void **state);
int smtpuv__cram_md5_create(const smtpuv_mem *m,
                            const smtpuv_auth_credentials *c, void **state);
int smtpuv__scram_sha1_create(const smtpuv_mem *m,
                              const smtpuv_auth_credentials *c, void **state);
int smtpuv__scram_sha256_create(const smtpuv_mem *m,
                                const smtpuv_auth_credentials *c,
                                void **state);
int smtpuv__xoauth2_create(const smtpuv_mem *m,
                           const smtpuv_auth_credentials *c, void **state);
int smtpuv__oauthbearer_create(const smtpuv_mem *m,
                               const smtpuv_auth_credentials *c, void **state);

/* Read a credentials struct of any (valid) struct_size into a full one.
   0 or SMTPUV_EINVAL. */
int smtpuv__creds_copy(smtpuv_auth_credentials *dst,
                       const smtpuv_auth_credentials *src);

/* Set the token source of an authenticator from credentials (copies a
   fixed token). 0 or SMTPUV_ENOMEM. */
int smtpuv__auth_set_token_source(smtpuv_auth *a,
                                  const smtpuv_auth_credentials *c);

#endif

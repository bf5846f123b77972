/* SPDX-License-Identifier: MIT */
/* CRAM-MD5 (RFC 2195): response = user SP lowercase-hex(HMAC-MD5(password,
 * challenge)). Last in auto's order: the server keeps a plaintext-equivalent
 * secret and the exchange can be attacked offline. */
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "auth/auth_int.h"

typedef struct cram_state {
  smtpuv__pwcred cred;
  int done;
} cram_state;

static void cram_destroy(smtpuv_auth *a, void *state) {
  (void)a;
  cram_state *s = state;
  if (s == NULL)
    return;
  const smtpuv_mem *m = s->cred.mem;
  smtpuv__pwcred_clear(&s->cred);
  smtpuv__wipe_free(m, s, sizeof(*s));
}

int smtpuv__cram_md5_create(const smtpuv_mem *m,
                            const smtpuv_auth_credentials *c, void **state) {
  cram_state *s = smtpuv__calloc(m, 1, sizeof(*s));
  if (s == NULL)
    return SMTPUV_ENOMEM;
  int err = smtpuv__pwcred_copy(&s->cred, m, c, 0);
  if (err != 0) {
    smtpuv__free(m, s);
    return err;
  }
  *state = s;
  return 0;
}

static int cram_begin(smtpuv_auth *a, void *state, unsigned flags) {
  (void)flags;
  cram_state *s = state;
  s->done = 0;
  if (s->cred.user[0] == '\0' || s->cred.pass[0] == '\0')
    return smtpuv__auth_errorf(a, SMTPUV_ECREDENTIALS,
                               "CRAM-MD5: the username and password must not "
                               "be empty");
  for (const char *p = s->cred.user; *p != '\0'; p++)
    if ((unsigned char)*p <= 0x20 || (unsigned char)*p == 0x7f)
      return smtpuv__auth_errorf(a, SMTPUV_ECREDENTIALS,
                                 "CRAM-MD5: the username must not contain "
                                 "spaces or control characters");
  return 0; /* the server speaks first */
}

static int cram_step(smtpuv_auth *a, void *state, const unsigned char *chal,
                     size_t len) {
  cram_state *s = state;
  if (s->done || len == 0)
    return smtpuv__auth_errorf(a, SMTPUV_EPROTO,
                               s->done ? "CRAM-MD5: unexpected second "
                                         "challenge from the server"
                                       : "CRAM-MD5: empty challenge");
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int maclen = 0;
  if (HMAC(EVP_md5(), s->cred.pass, (int)strlen(s->cred.pass), chal, len, mac,
           &maclen) == NULL || maclen != 16) {
    OPENSSL_cleanse(mac, sizeof(mac));
    return smtpuv__auth_errorf(a, SMTPUV_EAUTH,
                               "CRAM-MD5: HMAC-MD5 is not available in this "
                               "OpenSSL configuration");
  }
  static const char hex[] = "0123456789abcdef";
  char digest[33];
  for (unsigned i = 0; i < 16; i++) {
    digest[2 * i] = hex[mac[i] >> 4];
    digest[2 * i + 1] = hex[mac[i] & 15];
  }
  digest[32] = '\0';
  OPENSSL_cleanse(mac, sizeof(mac));
  smtpuv__sbuf b;
  smtpuv__sbuf_init(&b, s->cred.mem);
  smtpuv__sbuf_adds(&b, s->cred.user);
  smtpuv__sbuf_addc(&b, ' ');
  smtpuv__sbuf_add(&b, digest, 32);
  OPENSSL_cleanse(digest, sizeof(digest));
  int r = b.err != 0 ? b.err : smtpuv_auth_respond(a, b.p, b.len);
  smtpuv__sbuf_free(&b);
  if (r == 0)
    s->done = 1;
  return r;
}

const smtpuv_auth_ops smtpuv__cram_md5_ops = {
    sizeof(smtpuv_auth_ops), "CRAM-MD5", 0, cram_begin, cram_step, NULL,
    cram_destroy};

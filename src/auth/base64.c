/* SPDX-License-Identifier: MIT */
/* Base64 for AUTH: OpenSSL's EVP_EncodeBlock/EVP_DecodeBlock, with a strict
 * syntax check in front of the decoder (EVP_DecodeBlock skips surrounding
 * whitespace, counts padding as data and ignores non-zero pad bits). */
#include <limits.h>
#include <string.h>

#include <openssl/evp.h>

#include "auth/auth_int.h"

static int b64_char(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
         (c >= '0' && c <= '9') || c == '+' || c == '/';
}

static unsigned b64_value(unsigned char c) {
  if (c >= 'A' && c <= 'Z')
    return (unsigned)(c - 'A');
  if (c >= 'a' && c <= 'z')
    return (unsigned)(c - 'a' + 26);
  if (c >= '0' && c <= '9')
    return (unsigned)(c - '0' + 52);
  return c == '+' ? 62u : 63u;
}

int smtpuv__b64_valid(const char *in, size_t inlen) {
  if (inlen % 4 != 0)
    return 0;
  size_t pad = 0;
  if (inlen > 0 && in[inlen - 1] == '=') {
    pad = 1;
    if (in[inlen - 2] == '=')
      pad = 2;
  }
  for (size_t i = 0; i < inlen - pad; i++)
    if (!b64_char((unsigned char)in[i]))
      return 0;
  if (pad > 0) {
    /* canonical form: the bits under the padding are zero (RFC 4648 3.5) */
    unsigned v = b64_value((unsigned char)in[inlen - pad - 1]);
    if ((pad == 1 && (v & 0x3) != 0) || (pad == 2 && (v & 0xf) != 0))
      return 0;
  }
  return 1;
}

int smtpuv__b64_encode(const smtpuv_mem *m, const void *data, size_t len,
                       char **out) {
  if (len > (size_t)INT_MAX / 2)
    return SMTPUV_EINVAL;
  size_t olen = 4 * ((len + 2) / 3);
  char *o = smtpuv__malloc(m, olen + 1);
  if (o == NULL)
    return SMTPUV_ENOMEM;
  if (len == 0)
    o[0] = '\0';
  else
    EVP_EncodeBlock((unsigned char *)o, data, (int)len);
  *out = o;
  return 0;
}

int smtpuv__b64_decode(const smtpuv_mem *m, const char *in, size_t inlen,
                       unsigned char **out, size_t *outlen) {
  if (inlen > (size_t)INT_MAX / 2 || !smtpuv__b64_valid(in, inlen))
    return SMTPUV_EPROTO;
  size_t pad = 0;
  if (inlen > 0 && in[inlen - 1] == '=')
    pad = in[inlen - 2] == '=' ? 2 : 1;
  size_t cap = 3 * (inlen / 4);
  unsigned char *o = smtpuv__malloc(m, cap + 1);
  if (o == NULL)
    return SMTPUV_ENOMEM;
  if (inlen > 0) {
    int n = EVP_DecodeBlock(o, (const unsigned char *)in, (int)inlen);
    if (n < 0 || (size_t)n != cap) {
      smtpuv__wipe_free(m, o, cap + 1);
      return SMTPUV_EPROTO;
    }
  }
  o[cap - pad] = '\0';
  *out = o;
  *outlen = cap - pad;
  return 0;
}

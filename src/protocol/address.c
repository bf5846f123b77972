/* SPDX-License-Identifier: MIT */
/*
 * What may go on a command line: addresses, domains, SASL mechanism names,
 * base64, and the xtext encoding of DSN parameters. Every check runs before
 * a byte is written, so no caller string can smuggle a CR or LF onto the
 * wire.
 */
#include <stdint.h>
#include <string.h>

#include "protocol/proto_int.h"

/* Length of the UTF-8 sequence at s (n bytes available), 0 if malformed:
   no overlongs, no surrogates, nothing above U+10FFFF. */
static size_t utf8_seq(const unsigned char *s, size_t n) {
  unsigned c = s[0];
  size_t len;
  unsigned lo = 0x80, hi = 0xBF; /* range of the second byte */
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0)
      lo = 0xA0;
    else if (c == 0xED)
      hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0)
      lo = 0x90;
    else if (c == 0xF4)
      hi = 0x8F;
  } else {
    return 0;
  }
  if (n < len || s[1] < lo || s[1] > hi)
    return 0;
  for (size_t i = 2; i < len; i++)
    if ((s[i] & 0xC0) != 0x80)
      return 0;
  return len;
}

/* ASCII bytes refused in addresses: controls, DEL, '<' and '>'. Bytes from
   0x80 on are checked as UTF-8. */
static const unsigned char addr_refused[128] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
};

int smtpuv__scan_address(const char *addr, size_t *len_out, int *non_ascii) {
  if (addr == NULL)
    return SMTPUV_EADDRESS;
  size_t len = strnlen(addr, SMTPUV_MAX_ADDRESS + 1);
  if (len > SMTPUV_MAX_ADDRESS)
    return SMTPUV_EADDRESS;
  const unsigned char *s = (const unsigned char *)addr;
  int high = 0;
  for (size_t i = 0; i < len;) {
    unsigned c = s[i];
    if (c < 0x80) {
      if (addr_refused[c])
        return SMTPUV_EADDRESS;
      i++;
      continue;
    }
    size_t n = utf8_seq(s + i, len - i);
    if (n == 0)
      return SMTPUV_EADDRESS;
    high = 1;
    i += n;
  }
  *len_out = len;
  if (non_ascii != NULL)
    *non_ascii = high;
  return 0;
}

int smtpuv_check_address(const char *addr, int smtputf8_ok) {
  size_t len;
  int non_ascii;
  int rc = smtpuv__scan_address(addr, &len, &non_ascii);
  if (rc != 0)
    return rc;
  return non_ascii && !smtputf8_ok ? SMTPUV_ENOEXT : 0;
}

/* A host name or address literal for EHLO/HELO: printable ASCII without
   space, 1..255 bytes. */
int smtpuv__check_domain(const char *domain, size_t *len) {
  if (domain == NULL)
    return SMTPUV_EINVAL;
  size_t n = strnlen(domain, 256);
  if (n == 0 || n > 255)
    return SMTPUV_EINVAL;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)domain[i] <= 0x20 || (unsigned char)domain[i] >= 0x7F)
      return SMTPUV_EINVAL;
  *len = n;
  return 0;
}

/* RFC 4422 3.1: 1..20 characters of A-Z 0-9 - _ */
int smtpuv__check_mechanism(const char *mech, size_t *len) {
  if (mech == NULL)
    return SMTPUV_EINVAL;
  size_t n = strnlen(mech, 21);
  if (n == 0 || n > 20)
    return SMTPUV_EINVAL;
  for (size_t i = 0; i < n; i++) {
    char c = mech[i];
    if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
          c == '_'))
      return SMTPUV_EINVAL;
  }
  *len = n;
  return 0;
}

int smtpuv__check_base64(const char *b64, size_t *len) {
  if (b64 == NULL)
    return SMTPUV_EINVAL;
  size_t n = strlen(b64);
  for (size_t i = 0; i < n; i++) {
    char c = b64[i];
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
          (c >= '0' && c <= '9') || c == '+' || c == '/' || c == '='))
      return SMTPUV_EINVAL;
  }
  *len = n;
  return 0;
}

/* RFC 3461 4: xchar is '!'..'~' except '+' and '='; others become +XX. */
static int xtext_plain(unsigned char c) {
  return c >= '!' && c <= '~' && c != '+' && c != '=';
}

char *smtpuv__put_xtext(char *w, const char *s, size_t len) {
  static const char hex[] = "0123456789ABCDEF";
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (xtext_plain(c)) {
      *w++ = (char)c;
    } else {
      *w++ = '+';
      *w++ = hex[c >> 4];
      *w++ = hex[c & 15];
    }
  }
  return w;
}

char *smtpuv__put_u64(char *w, uint64_t v) {
  char tmp[20];
  size_t n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v != 0);
  while (n > 0)
    *w++ = tmp[--n];
  return w;
}

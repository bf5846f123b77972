/* SPDX-License-Identifier: MIT */
/* Transfer encodings of the parts: the choice, quoted-printable (RFC 2045
 * 6.7) and base64 in 76-column lines (OpenSSL's EVP_EncodeBlock, 57 input
 * bytes a line). */
#include <string.h>

#include <openssl/evp.h>

#include "compose/compose_int.h"

int smtpuv__compose_choose_encoding(const unsigned char *d, size_t n, int text,
                            int allow8) {
  int has8 = 0, ctl = 0, bad_eol = 0;
  size_t line = 0, maxline = 0, nesc = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = d[i];
    if (c == '\r' && i + 1 < n && d[i + 1] == '\n') {
      if (line > maxline)
        maxline = line;
      line = 0;
      i++;
      continue;
    }
    if (c == '\r' || c == '\n') {
      bad_eol = 1; /* a lone CR or LF would not survive SMTP */
      nesc++;
    } else if (c >= 0x80) {
      has8 = 1;
      nesc++;
    } else if ((c < 0x20 && c != '\t') || c == 0x7f) {
      ctl = 1;
      nesc++;
    } else if (c == '=') {
      nesc++;
    }
    line++;
  }
  if (line > maxline)
    maxline = line;
  if (!bad_eol && !ctl && maxline <= 998) {
    if (!has8)
      return SMTPUV__COMPOSE_ENC_7BIT;
    if (allow8)
      return SMTPUV__COMPOSE_ENC_8BIT;
  }
  if (text && nesc * 6 <= n)
    return SMTPUV__COMPOSE_ENC_QP;
  return SMTPUV__COMPOSE_ENC_B64;
}

static const char hexd[] = "0123456789ABCDEF";

static int crlf_at(const unsigned char *d, size_t n, size_t p) {
  return p + 1 < n && d[p] == '\r' && d[p + 1] == '\n';
}

size_t smtpuv__compose_qp_encode(const unsigned char *d, size_t n, size_t *pos,
                         size_t *col, char *out, size_t cap) {
  size_t p = *pos, c0 = *col, o = 0;
  while (p < n && o + 8 <= cap) {
    if (crlf_at(d, n, p)) {
      out[o++] = '\r';
      out[o++] = '\n';
      c0 = 0;
      p += 2;
      continue;
    }
    unsigned char c = d[p];
    int last = p + 1 == n || crlf_at(d, n, p + 1);
    int lit = (c >= 33 && c <= 126 && c != '=') ||
              ((c == ' ' || c == '\t') && !last);
    size_t r = lit ? 1 : 3;
    if (c0 + r > (last ? 76u : 75u)) {
      out[o++] = '=';
      out[o++] = '\r';
      out[o++] = '\n';
      c0 = 0;
    }
    if (lit) {
      out[o++] = (char)c;
    } else {
      out[o++] = '=';
      out[o++] = hexd[c >> 4];
      out[o++] = hexd[c & 15];
    }
    c0 += r;
    p++;
  }
  *pos = p;
  *col = c0;
  return o;
}

uint64_t smtpuv__compose_qp_size(const unsigned char *d, size_t n) {
  char scratch[4096];
  size_t pos = 0, col = 0;
  uint64_t total = 0;
  while (pos < n)
    total += smtpuv__compose_qp_encode(d, n, &pos, &col, scratch, sizeof scratch);
  return total;
}

uint64_t smtpuv__compose_b64_size(uint64_t n) {
  if (n == 0)
    return 0;
  uint64_t lines = (n + 56) / 57;
  return (n + 2) / 3 * 4 + 2 * (lines - 1);
}

size_t smtpuv__compose_b64_lines(const unsigned char *in, size_t n, uint64_t *lines,
                         char *out) {
  size_t o = 0;
  for (size_t off = 0; off < n; off += 57) {
    size_t k = n - off < 57 ? n - off : 57;
    if (*lines > 0) {
      out[o++] = '\r';
      out[o++] = '\n';
    }
    o += (size_t)EVP_EncodeBlock((unsigned char *)out + o, in + off, (int)k);
    (*lines)++;
  }
  return o;
}

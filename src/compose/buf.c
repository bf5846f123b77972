/* SPDX-License-Identifier: MIT */
/* The composer's growing buffer and UTF-8 checks. */
#include <string.h>

#include "compose/compose_int.h"

void smtpuv__compose_buf_init(smtpuv__compose_buf *b, const smtpuv_mem *mem) {
  memset(b, 0, sizeof *b);
  b->mem = mem;
}

void smtpuv__compose_buf_free(smtpuv__compose_buf *b) {
  smtpuv__free(b->mem, b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}

void smtpuv__compose_buf_put(smtpuv__compose_buf *b, const void *s, size_t n) {
  if (b->err != 0 || n == 0)
    return;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1)
      cap *= 2;
    char *p = smtpuv__realloc(b->mem, b->p, cap);
    if (p == NULL) {
      b->err = SMTPUV_ENOMEM;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

void smtpuv__compose_buf_puts(smtpuv__compose_buf *b, const char *s) {
  smtpuv__compose_buf_put(b, s, strlen(s));
}

void smtpuv__compose_buf_putc(smtpuv__compose_buf *b, char ch) { smtpuv__compose_buf_put(b, &ch, 1); }

size_t smtpuv__compose_utf8_seq(const unsigned char *s, size_t n) {
  unsigned c = s[0];
  if (c < 0x80)
    return 1;
  size_t len;
  unsigned min, cp;
  if (c >= 0xc2 && c <= 0xdf) {
    len = 2;
    cp = c & 0x1f;
    min = 0x80;
  } else if (c >= 0xe0 && c <= 0xef) {
    len = 3;
    cp = c & 0x0f;
    min = 0x800;
  } else if (c >= 0xf0 && c <= 0xf4) {
    len = 4;
    cp = c & 0x07;
    min = 0x10000;
  } else {
    return 0;
  }
  if (n < len)
    return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xc0) != 0x80)
      return 0;
    cp = (cp << 6) | (s[i] & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return len;
}

int smtpuv__compose_utf8_copy(const smtpuv_mem *mem, const char *s, size_t n,
                      int replace, int no_crlf, int bad, char **out,
                      size_t *out_len) {
  const unsigned char *u = (const unsigned char *)s;
  size_t need = 0;
  for (size_t i = 0; i < n;) {
    if (no_crlf && (u[i] == '\r' || u[i] == '\n' || u[i] == 0))
      return bad;
    size_t k = smtpuv__compose_utf8_seq(u + i, n - i);
    if (k == 0) {
      if (!replace)
        return bad;
      need += 3;
      i++;
      continue;
    }
    need += k;
    i += k;
  }
  char *d = smtpuv__malloc(mem, need + 1);
  if (d == NULL)
    return SMTPUV_ENOMEM;
  size_t o = 0;
  for (size_t i = 0; i < n;) {
    size_t k = smtpuv__compose_utf8_seq(u + i, n - i);
    if (k == 0) {
      memcpy(d + o, "\xef\xbf\xbd", 3);
      o += 3;
      i++;
      continue;
    }
    memcpy(d + o, s + i, k);
    o += k;
    i += k;
  }
  d[o] = '\0';
  *out = d;
  if (out_len != NULL)
    *out_len = o;
  return 0;
}

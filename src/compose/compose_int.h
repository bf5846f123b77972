/* SPDX-License-Identifier: MIT */
/* Internals of the composer (src/compose): the growing buffer, UTF-8,
 * header-field writing (encoded words, folding) and the part encoders.
 * libc and libcrypto only (cmake/SmtpuvLayering.cmake). */
#ifndef SMTPUV_SRC_COMPOSE_INT_H
#define SMTPUV_SRC_COMPOSE_INT_H

#include <stddef.h>
#include <stdint.h>

#include "protocol/mem.h"
#include "smtpuv/compose.h"

/* ---- growing buffer (buf.c) ---------------------------------------------- */

/* Appends never fail visibly: the first failure sets `err` (ENOMEM) and
   later appends do nothing. */
typedef struct smtpuv__compose_buf {
  const smtpuv_mem *mem;
  char *p;
  size_t len, cap;
  int err;
} smtpuv__compose_buf;

void smtpuv__compose_buf_init(smtpuv__compose_buf *b, const smtpuv_mem *mem);
void smtpuv__compose_buf_free(smtpuv__compose_buf *b);
void smtpuv__compose_buf_put(smtpuv__compose_buf *b, const void *s, size_t n);
void smtpuv__compose_buf_puts(smtpuv__compose_buf *b, const char *s);
void smtpuv__compose_buf_putc(smtpuv__compose_buf *b, char ch);

/* ---- UTF-8 (buf.c) -------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s[0..n) (1..4), or 0 when invalid
   (overlong, surrogate, above U+10FFFF, truncated). */
size_t smtpuv__compose_utf8_seq(const unsigned char *s, size_t n);

/* A checked NUL-terminated copy of `s` (`n` bytes) into `*out`: invalid
   UTF-8 is replaced by U+FFFD when `replace`, else refused; CR, LF and NUL
   are refused when `no_crlf`. Returns 0, `bad` (the caller's code for
   refused input) or SMTPUV_ENOMEM. */
int smtpuv__compose_utf8_copy(const smtpuv_mem *mem, const char *s, size_t n,
                      int replace, int no_crlf, int bad, char **out,
                      size_t *out_len);

/* ---- header fields (header.c) ----------------------------------------------- */

/* A header field being written, folded at 78 columns. */
typedef struct smtpuv__compose_hdr {
  smtpuv__compose_buf *b;
  size_t col;    /* columns on the current line */
  int any;       /* a token was written on the field */
} smtpuv__compose_hdr;

void smtpuv__compose_hdr_begin(smtpuv__compose_hdr *h, smtpuv__compose_buf *b, const char *name);
/* One token, preceded by a space, or by CRLF SP when it would pass 78
   columns (never before the field's first token when it fits in 998). */
void smtpuv__compose_hdr_token(smtpuv__compose_hdr *h, const char *t, size_t n);
void smtpuv__compose_hdr_end(smtpuv__compose_hdr *h);
/* UTF-8 text as unstructured field content (RFC 5322 3.2.5 + RFC 2047). */
void smtpuv__compose_hdr_unstructured(smtpuv__compose_hdr *h, const char *s, size_t n);
/* A display name (phrase): atoms, a quoted string or encoded words. */
void smtpuv__compose_hdr_phrase(smtpuv__compose_hdr *h, const char *s, size_t n);
/* RFC 2047 encoded words for the whole of [s, s+n) (n > 0). */
void smtpuv__compose_hdr_encoded(smtpuv__compose_hdr *h, const char *s, size_t n);
/* The filename parameter of `name`: filename="..." or RFC 2231 sections
   (filename*=utf-8''... or filename*0*=..., filename*1*=...). */
void smtpuv__compose_hdr_filename(smtpuv__compose_hdr *h, const char *name);

/* The Date value (RFC 5322 3.3, without the name) for `t` at `off`
   minutes east of UTC: 0, or SMTPUV_EINVAL out of range. */
int smtpuv__compose_date_format(int64_t t, int off, char out[40]);
/* "<32 hex@domain>" into the buffer: 0 or SMTPUV_EIO (no randomness). */
int smtpuv__compose_msgid_make(smtpuv__compose_buf *b, const char *domain);
/* 1 when `d` is a Message-ID domain we accept. */
int smtpuv__compose_domain_ok(const char *d);

/* ---- part encoders (encode.c) ----------------------------------------------- */

enum { SMTPUV__COMPOSE_ENC_7BIT, SMTPUV__COMPOSE_ENC_8BIT, SMTPUV__COMPOSE_ENC_QP, SMTPUV__COMPOSE_ENC_B64 };

/* The encoding for in-memory content: `text` when it is a text part (line
   ends already CRLF) or a text/ attachment. */
int smtpuv__compose_choose_encoding(const unsigned char *d, size_t n, int text,
                            int allow8);

/* Quoted-printable of d[*pos..n) into out (at least 16 bytes), stopping
   before it would overflow `cap`; `*col` is the current line length. CRLF
   pairs are hard line breaks; every other byte outside printable ASCII is
   escaped. Returns the bytes written. */
size_t smtpuv__compose_qp_encode(const unsigned char *d, size_t n, size_t *pos,
                         size_t *col, char *out, size_t cap);
/* The quoted-printable size of d[0..n). */
uint64_t smtpuv__compose_qp_size(const unsigned char *d, size_t n);
/* Base64 of `n` bytes as 76-column lines separated by CRLF (no final
   CRLF): its size. */
uint64_t smtpuv__compose_b64_size(uint64_t n);
/* Encode `n` bytes (a multiple of 57, or the last piece) as lines into
   `out`; `*lines` counts lines written so far (a CRLF precedes every line
   but the first). Returns bytes written; `out` needs n/57*78+80. */
size_t smtpuv__compose_b64_lines(const unsigned char *in, size_t n, uint64_t *lines,
                         char *out);

#endif

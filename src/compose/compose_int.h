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
typedef struct smtpuv__cbuf {
  const smtpuv_mem *mem;
  char *p;
  size_t len, cap;
  int err;
} smtpuv__cbuf;

void smtpuv__cbuf_init(smtpuv__cbuf *b, const smtpuv_mem *mem);
void smtpuv__cbuf_free(smtpuv__cbuf *b);
void smtpuv__cbuf_put(smtpuv__cbuf *b, const void *s, size_t n);
void smtpuv__cbuf_puts(smtpuv__cbuf *b, const char *s);
void smtpuv__cbuf_putc(smtpuv__cbuf *b, char ch);

/* ---- UTF-8 (buf.c) -------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s[0..n) (1..4), or 0 when invalid
   (overlong, surrogate, above U+10FFFF, truncated). */
size_t smtpuv__utf8_seq(const unsigned char *s, size_t n);

/* A checked NUL-terminated copy of `s` (`n` bytes) into `*out`: invalid
   UTF-8 is replaced by U+FFFD when `replace`, else refused; CR, LF and NUL
   are refused when `no_ctl`. Returns 0, `bad` (the caller's code for
   refused input) or SMTPUV_ENOMEM. */
int smtpuv__utf8_copy(const smtpuv_mem *mem, const char *s, size_t n,
                      int replace, int no_crlf, int bad, char **out,
                      size_t *out_len);

/* ---- header fields (header.c) ----------------------------------------------- */

/* A header field being written, folded at 78 columns. */
typedef struct smtpuv__hdr {
  smtpuv__cbuf *b;
  size_t col;    /* columns on the current line */
  int any;       /* a token was written on the field */
} smtpuv__hdr;

void smtpuv__hdr_begin(smtpuv__hdr *h, smtpuv__cbuf *b, const char *name);
/* One token, preceded by a space, or by CRLF SP when it would pass 78
   columns (never before the field's first token when it fits in 998). */
void smtpuv__hdr_token(smtpuv__hdr *h, const char *t, size_t n);
void smtpuv__hdr_end(smtpuv__hdr *h);
/* UTF-8 text as unstructured field content (RFC 5322 3.2.5 + RFC 2047). */
void smtpuv__hdr_unstructured(smtpuv__hdr *h, const char *s, size_t n);
/* A display name (phrase): atoms, a quoted string or encoded words; the
   last token gets `suffix` appended (NULL: none). */
void smtpuv__hdr_phrase(smtpuv__hdr *h, const char *s, size_t n);
/* RFC 2047 encoded words for the whole of [s, s+n) (n > 0). */
void smtpuv__hdr_encoded(smtpuv__hdr *h, const char *s, size_t n);
/* A file name parameter (`param` "filename"), preceded by "; " folding. */
void smtpuv__hdr_filename(smtpuv__hdr *h, const char *name);

/* "Date: ..." value (no name) for `t` at `off` minutes east: 0, or
   SMTPUV_EINVAL out of range. `out` holds 40 bytes. */
int smtpuv__date_format(int64_t t, int off, char out[40]);
/* "<32 hex@domain>" into the buffer: 0 or SMTPUV_EIO (no randomness). */
int smtpuv__msgid_make(smtpuv__cbuf *b, const char *domain);
/* 1 when `d` is a Message-ID domain we accept. */
int smtpuv__domain_ok(const char *d);

/* ---- part encoders (encode.c) ----------------------------------------------- */

enum { SMTPUV__ENC_7BIT, SMTPUV__ENC_8BIT, SMTPUV__ENC_QP, SMTPUV__ENC_B64 };

/* The encoding for in-memory content: `text` when it is a text part (line
   ends already CRLF) or a text/ attachment. */
int smtpuv__choose_encoding(const unsigned char *d, size_t n, int text,
                            int allow8);

/* Quoted-printable of d[*pos..n) into out (at least 16 bytes), stopping
   before it would overflow `cap`; `*col` is the current line length. CRLF
   pairs are hard line breaks; every other byte outside printable ASCII is
   escaped. Returns the bytes written. */
size_t smtpuv__qp_encode(const unsigned char *d, size_t n, size_t *pos,
                         size_t *col, char *out, size_t cap);
/* The quoted-printable size of d[0..n). */
uint64_t smtpuv__qp_size(const unsigned char *d, size_t n);
/* Base64 of `n` bytes as 76-column lines separated by CRLF (no final
   CRLF): its size. */
uint64_t smtpuv__b64_size(uint64_t n);
/* Encode `n` bytes (a multiple of 57, or the last piece) as lines into
   `out`; `*lines` counts lines written so far (a CRLF precedes every line
   but the first). Returns bytes written; `out` needs n/57*78+80. */
size_t smtpuv__b64_lines(const unsigned char *in, size_t n, uint64_t *lines,
                         char *out);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * Internal: the DATA/BDAT body encoder. Pure functions over caller buffers,
 * no allocation, state carried across chunks.
 *
 * Normalisation (both modes): CRLF stays, a lone LF or a lone CR becomes
 * CRLF. A CR is emitted as CRLF at once and a directly following LF (even
 * in the next chunk) is then dropped, so the output of each call is final
 * and a BDAT chunk's size is known when the call returns.
 * DATA mode also doubles a '.' at the start of every line.
 * The scan is memchr-class: no function call per byte.
 */
#ifndef SMTPUV_SRC_ENCODER_H
#define SMTPUV_SRC_ENCODER_H

#include <stddef.h>
#include <stdint.h>

typedef struct smtpuv_encoder {
  unsigned char dot_stuff;     /* DATA mode */
  unsigned char at_line_start; /* next byte starts a line */
  unsigned char skip_lf;       /* the last byte was a CR already sent as CRLF */
  unsigned char empty;         /* nothing encoded yet */
} smtpuv_encoder;

/* Worst-case output size for `len` input bytes (every byte a lone CR/LF, or
   ".\n" pairs that become "..\r\n"). */
#define SMTPUV_ENCODE_BOUND(len) (2 * (len))

/* Terminator room: CRLF + ".\r\n". */
#define SMTPUV_ENCODE_FINISH_BOUND 5

void smtpuv__encoder_init(smtpuv_encoder *e, int dot_stuff);

/* Encode `len` bytes into `out` (at least SMTPUV_ENCODE_BOUND(len) bytes).
   Returns the number of bytes written. The bytes of `out` after those (up
   to the bound) may be overwritten too: the copy runs ahead in vectors. */
size_t smtpuv__encoder_encode(smtpuv_encoder *e, const char *in, size_t len,
                              char *out);

/* Exact size smtpuv__encoder_encode() would produce, without writing and
   without changing `e`. */
size_t smtpuv__encoder_measure(const smtpuv_encoder *e, const char *in,
                               size_t len);

/* End of body: CRLF if the body does not end with a line ending (an empty
   body gets none), then ".\r\n" in DATA mode. Writes at most
   SMTPUV_ENCODE_FINISH_BOUND bytes; returns the number written. */
size_t smtpuv__encoder_finish(smtpuv_encoder *e, char *out);

/* smtpuv_needs_binarymime() chunk by chunk: 1 when this chunk holds a NUL
   byte or completes a line of more than 998 octets (CR and LF both end a
   line, as on the wire). `*line` carries the length of the line still open
   at the end of the previous chunk (0 before the first) and is updated
   when 0 is returned. */
int smtpuv__binary_chunk(const void *buf, size_t len, uint32_t *line);

#endif

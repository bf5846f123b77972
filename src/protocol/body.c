/* SPDX-License-Identifier: MIT */
/*
 * Message content: data_write/data_end after DATA's 354, and BDAT chunks.
 *
 * Bytes go straight from the caller's buffer through the encoder into
 * output blocks, in slices small enough that the encoder's worst case
 * (SMTPUV_ENCODE_BOUND) fits the room reserved for it; a large write fills
 * block after block. If a block cannot be allocated half way, everything
 * the call wrote is rolled back, encoder state included.
 */
#include <string.h>

#include "protocol/proto_int.h"

/* A tail block with room for fewer input bytes than this (and fewer than
   are left) is left as it is and the rest goes to a new block. */
#define SLICE_MIN 512
/* What is left of a body up to this size gets a small block (it fits one
   unless it has many lone line endings), more a large one. */
#define SMALL_BODY 3072

/* "BDAT " 20 digits " LAST\r\n" */
#define BDAT_HEADER_MAX 32

/* Append `len` bytes: encoded with `e`, or as they are when `e` is NULL.
   With `check_8bit`, SMTPUV_E8BIT when a byte >= 0x80 comes: each slice is
   checked just before it is encoded, while it is in cache (the caller rolls
   back what earlier slices wrote). */
static int put_body(smtpuv_proto *p, smtpuv_encoder *e, const char *in,
                    size_t len, int check_8bit) {
  /* output room per input byte (the bound is linear) */
  const size_t factor = e != NULL ? SMTPUV_ENCODE_BOUND((size_t)1) : 1;
  while (len > 0) {
    size_t fit = smtpuv__outbuf_room(&p->out) / factor;
    if (fit < len && fit < SLICE_MIN) {
      size_t cap = len <= SMALL_BODY ? SMTPUV_OUTBUF_SMALL
                                     : SMTPUV_OUTBUF_BLOCK;
      if (smtpuv__outbuf_reserve(&p->out, &p->mem, cap) == NULL)
        return SMTPUV_ENOMEM;
      fit = smtpuv__outbuf_room(&p->out) / factor;
    }
    size_t n = len < fit ? len : fit;
    if (check_8bit && smtpuv_is_8bit(in, n))
      return SMTPUV_E8BIT;
    char *w = smtpuv__outbuf_reserve(&p->out, &p->mem, factor * n);
    size_t out = n;
    if (e != NULL)
      out = smtpuv__encoder_encode(e, in, n, w);
    else
      memcpy(w, in, n);
    smtpuv__outbuf_commit(&p->out, out);
    in += n;
    len -= n;
  }
  return 0;
}

/* The end of the body (encoder.h: smtpuv__encoder_finish). */
static int put_finish(smtpuv_proto *p, smtpuv_encoder *e) {
  char *w = smtpuv__outbuf_reserve(&p->out, &p->mem,
                                   SMTPUV_ENCODE_FINISH_BOUND);
  if (w == NULL)
    return SMTPUV_ENOMEM;
  smtpuv__outbuf_commit(&p->out, smtpuv__encoder_finish(e, w));
  return 0;
}

/* The transaction declared a body that may carry 8-bit bytes. */
static int eight_bit_ok(const smtpuv_proto *p) {
  return p->txo.body == SMTPUV_BODY_8BITMIME ||
         p->txo.body == SMTPUV_BODY_BINARYMIME;
}

int smtpuv_proto_data_write(smtpuv_proto *p, const void *buf, size_t len) {
  if (p == NULL)
    return SMTPUV_EINVAL;
  int rc = smtpuv__check_state(p, SMTPUV__ST(DATA));
  if (rc != 0)
    return rc;
  if (buf == NULL && len > 0)
    return SMTPUV_EINVAL;
  if (len == 0)
    return 0;
  smtpuv__outbuf_mark mark;
  smtpuv__outbuf_mark_get(&p->out, &mark);
  smtpuv_encoder saved = p->enc;
  rc = put_body(p, &p->enc, buf, len, !eight_bit_ok(p));
  if (rc != 0) {
    smtpuv__outbuf_rollback(&p->out, &p->mem, &mark);
    p->enc = saved;
  }
  return rc;
}

int smtpuv_proto_data_end(smtpuv_proto *p) {
  if (p == NULL)
    return SMTPUV_EINVAL;
  int rc = smtpuv__check_state(p, SMTPUV__ST(DATA));
  if (rc != 0)
    return rc;
  size_t slots = p->lmtp ? smtpuv__lmtp_slots_needed(p) : 1;
  if (smtpuv__ring_reserve(p, slots) != 0 || put_finish(p, &p->enc) != 0)
    return SMTPUV_ENOMEM;
  if (p->lmtp)
    smtpuv__push_lmtp_slots(p, SMTPUV_CMD_DATA_END, slots);
  else
    smtpuv__ring_push(p, SMTPUV_CMD_DATA_END);
  p->state = SMTPUV_STATE_READY;
  return 0;
}

/* Bytes the LAST chunk's end adds: CRLF unless the body is empty or ends
   with a line ending (a lone CR counts: it went out as CRLF). */
static size_t finish_len(const smtpuv_encoder *e, const char *buf,
                         size_t len) {
  if (len > 0)
    return buf[len - 1] == '\n' || buf[len - 1] == '\r' ? 0 : 2;
  return e->empty || e->at_line_start ? 0 : 2;
}

uint64_t smtpuv_body_wire_size(const void *buf, size_t len) {
  if (buf == NULL || len == 0)
    return 0;
  smtpuv_encoder e;
  smtpuv__encoder_init(&e, 0); /* BDAT mode: normalised, not dot-stuffed */
  return (uint64_t)smtpuv__encoder_measure(&e, buf, len) +
         finish_len(&e, buf, len);
}

static size_t put_bdat_header(char *w0, uint64_t size, int last) {
  char *w = SMTPUV__PUT_LIT(w0, "BDAT ");
  w = smtpuv__put_u64(w, size);
  if (last)
    w = SMTPUV__PUT_LIT(w, " LAST");
  w = SMTPUV__PUT_LIT(w, "\r\n");
  return (size_t)(w - w0);
}

/* Header, chunk and (LAST) final line ending, or nothing at all. */
static int write_chunk(smtpuv_proto *p, smtpuv_encoder *e, const char *buf,
                       size_t len, int last) {
  uint64_t size = len;
  if (e != NULL)
    size = (len > 0 ? smtpuv__encoder_measure(e, buf, len) : 0) +
           (last ? finish_len(e, buf, len) : 0);
  smtpuv__outbuf_mark mark;
  smtpuv__outbuf_mark_get(&p->out, &mark);
  char *w = smtpuv__outbuf_reserve(&p->out, &p->mem, BDAT_HEADER_MAX);
  if (w == NULL)
    return SMTPUV_ENOMEM;
  smtpuv__outbuf_commit(&p->out, put_bdat_header(w, size, last));
  int rc = put_body(p, e, buf, len, 0);
  if (rc == 0 && e != NULL && last)
    rc = put_finish(p, e);
  if (rc != 0)
    smtpuv__outbuf_rollback(&p->out, &p->mem, &mark);
  return rc;
}

int smtpuv_proto_bdat(smtpuv_proto *p, const void *buf, size_t len,
                      int last) {
  if (p == NULL)
    return SMTPUV_EINVAL;
  int rc = smtpuv__check_state(p, SMTPUV__ST(RECIPIENT_SENT) |
                                      SMTPUV__ST(BDAT));
  if (rc != 0)
    return rc;
  if (buf == NULL && len > 0)
    return SMTPUV_EINVAL;
  if (!(smtpuv__ext_bits(p) & SMTPUV_EXT_CHUNKING))
    return SMTPUV_ENOEXT;
  int binary = p->txo.body == SMTPUV_BODY_BINARYMIME;
  if (!eight_bit_ok(p) && len > 0 && smtpuv_is_8bit(buf, len))
    return SMTPUV_E8BIT;
  if ((rc = smtpuv__check_busy(p, 0)) != 0)
    return rc;
  int first = p->state == SMTPUV_STATE_RECIPIENT_SENT;
  if (first && smtpuv__no_recipient(p))
    return SMTPUV_ENORCPT;
  /* LMTP: the LAST chunk gets one reply per accepted recipient */
  size_t slots = p->lmtp && last ? smtpuv__lmtp_slots_needed(p) : 1;
  if (smtpuv__ring_reserve(p, slots) != 0)
    return SMTPUV_ENOMEM;

  smtpuv_encoder e = p->enc;
  if (first)
    smtpuv__encoder_init(&e, 0);
  rc = write_chunk(p, binary ? NULL : &e, buf, len, last);
  if (rc != 0)
    return rc;
  p->enc = e;
  if (p->lmtp && last)
    smtpuv__push_lmtp_slots(p, SMTPUV_CMD_BDAT, slots);
  else
    smtpuv__ring_push(p, SMTPUV_CMD_BDAT)->last = last != 0;
  p->state = last ? SMTPUV_STATE_READY : SMTPUV_STATE_BDAT;
  return 0;
}

/* SPDX-License-Identifier: MIT */
/* The body of the last message on the wire: a buffer or a streamed source
 * handed to the core (DATA or BDAT) in chunks until the unwritten output
 * reaches the high-water mark; the transport's writes bring it on again.
 */
#include "conv/conv_int.h"
#include "protocol/encoder.h"

#define MEM(cv) (&(cv)->mem)

int smtpuv__pump_in_body(const smtpuv__conv *cv) {
  const smtpuv__msg *m = cv->inflight_tail;
  return m != NULL && m->stage == SMTPUV__M_BODY;
}

void smtpuv__pump_fail(smtpuv__conv *cv, smtpuv__msg *m, int err,
                      const char *what) {
  smtpuv__msg_decide(MEM(cv), m, SMTPUV_SEND_FAILED, err, SMTPUV_PHASE_DATA,
                     NULL, "%s", what);
  if (m->bdat) {
    m->bdat_abort = 1;
    smtpuv__txn_check_done(cv, m);
    return;
  }
  /* DATA cannot be abandoned once the 354 came: drop the connection */
  smtpuv__txn_remove(cv, m);
  smtpuv__txn_finish(cv, m);
  cv->doomed = 1;
  cv->doomed_err = SMTPUV_ECONNLOST;
}

/* Read a streamed body into the pump buffer until it is full, the source
   ends or says SMTPUV_EAGAIN (at most `reads` calls). 0, SMTPUV_EAGAIN,
   SMTPUV_ENOMEM or SMTPUV_EBODY (the source failed: the buffer is
   emptied). */
static int fill(smtpuv__conv *cv, smtpuv__msg *m, int reads) {
  if (cv->pump_buf == NULL) {
    cv->pump_buf = smtpuv__malloc(&cv->mem, SMTPUV__CONV_PUMP_BUF);
    if (cv->pump_buf == NULL)
      return SMTPUV_ENOMEM;
  }
  for (int guard = 0; cv->pump_len < SMTPUV__CONV_PUMP_BUF && !m->body_eof &&
                      guard < reads;
       guard++) {
    long n = m->body.read(m->body.user, cv->pump_buf + cv->pump_len,
                          SMTPUV__CONV_PUMP_BUF - cv->pump_len);
    if (n > 0) {
      if ((size_t)n > SMTPUV__CONV_PUMP_BUF - cv->pump_len)
        n = (long)(SMTPUV__CONV_PUMP_BUF - cv->pump_len);
      cv->pump_len += (size_t)n;
    } else if (n == 0) {
      m->body_eof = 1;
    } else if (n == SMTPUV_EAGAIN) {
      return SMTPUV_EAGAIN;
    } else {
      cv->pump_len = 0;
      return SMTPUV_EBODY;
    }
  }
  return 0;
}

/* Fill the pump buffer from a streamed body. Returns 1 when data (or the
   end) is available, 0 when blocked, -1 after a failure. */
static int stream_fill(smtpuv__conv *cv, smtpuv__msg *m) {
  int rc = fill(cv, m, 4096);
  if (rc == SMTPUV_ENOMEM || rc == SMTPUV_EBODY) {
    smtpuv__pump_fail(cv, m, rc,
                      rc == SMTPUV_ENOMEM ? "out of memory"
                                          : "the message body source failed");
    return -1;
  }
  if (rc == SMTPUV_EAGAIN && cv->pump_len == 0) {
    cv->body_blocked = 1;
    return 0;
  }
  return 1;
}

int smtpuv__pump_prefetch(smtpuv__conv *cv, smtpuv__msg *m, int *binary,
                          int *eight) {
  *binary = *eight = 0;
  cv->pump_len = 0;
  /* judged by what came; the rest is checked as it flows */
  int rc = fill(cv, m, 64);
  if (rc == SMTPUV_ENOMEM || rc == SMTPUV_EBODY)
    return rc;
  uint32_t line = 0;
  *binary = smtpuv__binary_chunk(cv->pump_buf, cv->pump_len, &line);
  *eight = !*binary && smtpuv_is_8bit(cv->pump_buf, cv->pump_len);
  return 0;
}

void smtpuv__pump(smtpuv__conv *cv) {
  smtpuv__msg *m = cv->inflight_tail;
  if (m == NULL || m->stage != SMTPUV__M_BODY || m->bdat_abort ||
      cv->closing || cv->doomed)
    return;
  for (int guard = 0; guard < 1024 && cv->state == SMTPUV__CV_READY &&
                      smtpuv__conv_unwritten(cv) < SMTPUV__CONV_HIGH_WATER;
       guard++) {
    const char *ptr;
    size_t n;
    int eof;
    if (m->body.read == NULL) {
      uint64_t left = m->body.len - m->body_off;
      n = left < SMTPUV__CONV_BODY_CHUNK ? (size_t)left : SMTPUV__CONV_BODY_CHUNK;
      ptr = (const char *)m->body.data + m->body_off;
      eof = m->body_off + n == m->body.len;
    } else {
      int f = stream_fill(cv, m);
      if (f <= 0)
        return;
      ptr = cv->pump_buf;
      n = cv->pump_len;
      eof = m->body_eof;
    }
    if (m->body.read != NULL && m->body_type != SMTPUV_BODY_BINARYMIME &&
        smtpuv__binary_chunk(ptr, n, &m->body_line)) {
      /* before the final dot: the server discards the transaction */
      cv->pump_len = 0;
      smtpuv__pump_fail(cv, m, SMTPUV_EBINARY,
                        "the message holds NUL bytes or lines over 998 "
                        "octets and was not declared BODY=BINARYMIME: not "
                        "sent");
      return;
    }
    size_t before = smtpuv_proto_pending_output(cv->proto);
    int rc;
    if (m->bdat) {
      rc = smtpuv_proto_bdat(cv->proto, ptr, n, eof);
      if (rc == SMTPUV_EBUSY)
        return; /* no pipelining: wait for the previous chunk's reply */
      if (rc != 0) {
        smtpuv__pump_fail(cv, m, rc, smtpuv_strerror(rc));
        return;
      }
      smtpuv__trace_out(cv, before, SMTPUV__TR_BDAT);
      m->expect++;
    } else if (n > 0) {
      rc = smtpuv_proto_data_write(cv->proto, ptr, n);
      if (rc != 0) {
        smtpuv__pump_fail(cv, m, rc,
                  rc == SMTPUV_E8BIT
                      ? "the message has 8-bit content and was not declared "
                        "BODY=8BITMIME (set the envelope's mail_params): "
                        "not sent"
                      : smtpuv_strerror(rc));
        return;
      }
      smtpuv__trace_out(cv, before, SMTPUV__TR_BODY);
    }
    if (m->body.read == NULL)
      m->body_off += n;
    else
      cv->pump_len = 0;
    if (eof) {
      if (!m->bdat) {
        before = smtpuv_proto_pending_output(cv->proto);
        rc = smtpuv_proto_data_end(cv->proto);
        if (rc != 0) {
          smtpuv__pump_fail(cv, m, rc, smtpuv_strerror(rc));
          return;
        }
        smtpuv__trace_out(cv, before, SMTPUV__TR_CMD);
        m->expect++;
      }
      m->stage = SMTPUV__M_DOT;
      m->dot_mark = cv->out_handed + smtpuv_proto_pending_output(cv->proto) -
                    cv->handed;
      return;
    }
  }
}


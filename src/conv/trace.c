/* SPDX-License-Identifier: MIT */
/* Trace records. Output is traced when a command is issued (the new bytes
 * at the tail of the core's pending output), so AUTH lines can be replaced
 * by "<redacted>" before anyone sees them: the mechanism name stays, the
 * initial response and every continuation line do not. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "conv/conv_int.h"

static void emit(smtpuv__conv *cv, smtpuv_trace_kind kind, const char *p,
                 size_t n) {
  if (n > 0)
    cv->cfg.trace(cv->cfg.trace_data, kind, p, n);
}

void smtpuv__trace_in(smtpuv__conv *cv, const void *buf, size_t len) {
  if (SMTPUV__TRACING(cv))
    emit(cv, SMTPUV_TRACE_RECV, buf, len);
}

static void vinfo(smtpuv__conv *cv, const char *fmt, va_list ap) {
  if (!SMTPUV__TRACING(cv))
    return;
  char buf[600];
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  if (n < 0)
    return;
  emit(cv, SMTPUV_TRACE_INFO, buf,
       (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

void smtpuv__trace_info(smtpuv__conv *cv, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vinfo(cv, fmt, ap);
  va_end(ap);
}

void smtpuv__conv_trace_info(smtpuv__conv *cv, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vinfo(cv, fmt, ap);
  va_end(ap);
}

/* Redact AUTH output line by line: "AUTH MECH <redacted>" for the command,
   "<redacted>" for every other line. Only the first bytes of each line are
   looked at. */
static void trace_redacted(smtpuv__conv *cv, const smtpuv_iov *iov, int n) {
  char head[64];
  size_t hlen = 0;
  int in_line = 0;
  for (int i = 0; i < n; i++) {
    const char *p = iov[i].base;
    for (size_t k = 0; k < iov[i].len; k++) {
      char ch = p[k];
      in_line = 1;
      if (ch == '\n') {
        char out[128];
        int len;
        /* strip the CR */
        if (hlen > 0 && head[hlen - 1] == '\r')
          hlen--;
        if (hlen >= 5 && (head[0] | 0x20) == 'a' && (head[1] | 0x20) == 'u' &&
            (head[2] | 0x20) == 't' && (head[3] | 0x20) == 'h' &&
            head[4] == ' ') {
          size_t e = 5;
          while (e < hlen && head[e] != ' ')
            e++;
          len = snprintf(out, sizeof out, "%.*s%s\r\n", (int)e, head,
                         e < hlen ? " <redacted>" : "");
        } else if (hlen == 1 && head[0] == '*') {
          len = snprintf(out, sizeof out, "*\r\n");
        } else {
          len = snprintf(out, sizeof out, "<redacted>\r\n");
        }
        emit(cv, SMTPUV_TRACE_SEND, out, (size_t)len);
        hlen = 0;
        in_line = 0;
        continue;
      }
      if (hlen < sizeof head)
        head[hlen++] = ch;
    }
  }
  if (in_line)
    emit(cv, SMTPUV_TRACE_SEND, "<redacted>", 10);
}

void smtpuv__trace_out(smtpuv__conv *cv, size_t before, int mode) {
  if (!SMTPUV__TRACING(cv))
    return;
  smtpuv_iov iov[64];
  int n = smtpuv_proto_outgoing_iov(cv->proto, before, iov, 64);
  if (n <= 0)
    return;
  if (mode == SMTPUV__TR_REDACT) {
    trace_redacted(cv, iov, n);
    return;
  }
  smtpuv_trace_kind kind =
      mode == SMTPUV__TR_BODY ? SMTPUV_TRACE_SEND_BODY : SMTPUV_TRACE_SEND;
  int header = mode == SMTPUV__TR_BDAT; /* the "BDAT n" line comes first */
  for (int i = 0; i < n; i++) {
    const char *p = iov[i].base;
    size_t len = iov[i].len;
    if (header) {
      const char *nl = memchr(p, '\n', len);
      if (nl == NULL) {
        emit(cv, SMTPUV_TRACE_SEND, p, len);
        continue;
      }
      size_t h = (size_t)(nl - p) + 1;
      emit(cv, SMTPUV_TRACE_SEND, p, h);
      p += h;
      len -= h;
      header = 0;
      kind = SMTPUV_TRACE_SEND_BODY;
    }
    emit(cv, kind, p, len);
  }
}

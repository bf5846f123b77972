/* SPDX-License-Identifier: MIT */
/* What an idle session can give back (see idle.h). */
#include "protocol/idle.h"

#include "protocol/mem.h"
#include "protocol/proto_int.h"

void smtpuv__proto_release_idle(smtpuv_proto *p) {
  if (p == NULL)
    return;
  /* spares hold no bytes (a sensitive one was wiped when released) */
  smtpuv__outbuf_trim(&p->out, &p->mem);
  smtpuv__free(&p->mem, p->out.spare_small);
  p->out.spare_small = NULL;
  if (p->in.buf != NULL && p->in.start == p->in.end) {
    smtpuv__free(&p->mem, p->in.buf);
    p->in.buf = NULL;
    p->in.cap = p->in.start = p->in.end = 0;
    p->rd.line_start = p->rd.reply_start = 0;
  }
}

/* SPDX-License-Identifier: MIT */
/*
 * The session object: life cycle, the queue of commands awaiting replies,
 * what each popped reply does to the state, and the output accessors.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "protocol/mem.h"
#include "protocol/proto_int.h"

#define RING_MIN_CAP 8
/* An empty ring larger than this is shrunk back to RING_MIN_CAP. */
#define RING_KEEP_CAP 64

int smtpuv_proto_new(const smtpuv_mem *mem, smtpuv_proto **out) {
  if (out == NULL)
    return SMTPUV_EINVAL;
  *out = NULL;
  if (mem != NULL && (mem->malloc == NULL || mem->free == NULL ||
                      mem->calloc == NULL || mem->realloc == NULL))
    return SMTPUV_EINVAL;
  smtpuv_mem m;
  smtpuv__mem_init(&m, mem);
  smtpuv_proto *p = smtpuv__calloc(&m, 1, sizeof *p);
  if (p == NULL)
    return SMTPUV_ENOMEM;
  p->mem = m;
  p->ring = smtpuv__malloc(&m, RING_MIN_CAP * sizeof *p->ring);
  if (p->ring == NULL) {
    smtpuv__free(&m, p);
    return SMTPUV_ENOMEM;
  }
  p->ring_cap = RING_MIN_CAP;
  p->state = SMTPUV_STATE_GREETING_EXPECTED;
  p->pipelining_allowed = 1;
  p->lines = p->lines_inline;
  p->lines_cap = SMTPUV__INLINE_LINES;
  smtpuv__ring_push(p, SMTPUV_CMD_GREETING);
  *out = p;
  return 0;
}

void smtpuv_proto_free(smtpuv_proto *p) {
  if (p == NULL)
    return;
  smtpuv_mem m = p->mem;
  smtpuv__outbuf_free(&p->out, &m);
  if (p->lines != p->lines_inline)
    smtpuv__free(&m, p->lines);
  smtpuv__free(&m, p->ehlo);
  smtpuv__free(&m, p->lm.acc);
  smtpuv__free(&m, p->ring);
  smtpuv__free(&m, p->in.buf);
  smtpuv__free(&m, p);
}

int smtpuv__proto_fail(smtpuv_proto *p, int err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(p->errtext, sizeof p->errtext, fmt, ap);
  va_end(ap);
  p->err = err;
  p->state = SMTPUV_STATE_FINISHED;
  return err;
}

size_t smtpuv__proto_heap_bytes(const smtpuv_proto *p) {
  size_t n = sizeof *p + p->ring_cap * sizeof *p->ring + p->in.cap +
             smtpuv__outbuf_heap_bytes(&p->out);
  if (p->lines != p->lines_inline)
    n += p->lines_cap * sizeof *p->lines;
  if (p->ehlo != NULL)
    n += p->ehlo->size;
  n += p->lm.cap * sizeof *p->lm.acc;
  return n;
}

/* ---- the ring of commands awaiting replies ------------------------------ */

int smtpuv__ring_reserve(smtpuv_proto *p, size_t n) {
  if (p->ring_count + n <= p->ring_cap)
    return 0;
  size_t cap = p->ring_cap;
  while (cap < p->ring_count + n)
    cap *= 2;
  smtpuv__pending *ring = smtpuv__malloc(&p->mem, cap * sizeof *ring);
  if (ring == NULL)
    return SMTPUV_ENOMEM;
  for (size_t i = 0; i < p->ring_count; i++)
    ring[i] = *smtpuv__ring_at(p, i);
  smtpuv__free(&p->mem, p->ring);
  p->ring = ring;
  p->ring_cap = cap;
  p->ring_head = 0;
  return 0;
}

void smtpuv__ring_trim(smtpuv_proto *p) {
  if (p->ring_count != 0 || p->ring_cap <= RING_KEEP_CAP)
    return;
  smtpuv__pending *ring = smtpuv__malloc(&p->mem, RING_MIN_CAP * sizeof *ring);
  if (ring == NULL)
    return; /* keep the large one */
  smtpuv__free(&p->mem, p->ring);
  p->ring = ring;
  p->ring_cap = RING_MIN_CAP;
  p->ring_head = 0;
}

/* Commands after which nothing but QUIT may be pipelined (RFC 2920 3.1). */
static int ends_group(unsigned cmd) {
  switch (cmd) {
  case SMTPUV_CMD_EHLO:
  case SMTPUV_CMD_HELO:
  case SMTPUV_CMD_LHLO:
  case SMTPUV_CMD_STARTTLS:
  case SMTPUV_CMD_AUTH:
  case SMTPUV_CMD_NOOP:
  case SMTPUV_CMD_VRFY:
    return 1;
  default:
    return 0;
  }
}

smtpuv__pending *smtpuv__ring_push(smtpuv_proto *p, smtpuv_cmd cmd) {
  smtpuv__pending *e = smtpuv__ring_at(p, p->ring_count++);
  memset(e, 0, sizeof *e);
  e->cmd = (uint8_t)cmd;
  e->txn = p->txo.id;
  p->group_enders += (unsigned)ends_group(cmd);
  return e;
}

/* ---- replies and the state ---------------------------------------------- */

/* The transaction `e` belongs to has failed: MAIL refused or, once every
   RCPT reply is in, no recipient accepted. */
static int txn_failed(const smtpuv_proto *p, const smtpuv__pending *e) {
  return e->txn == p->txi.id &&
         (p->txi.mail_failed || p->txi.rcpt_accepted == 0);
}

/* LMTP: room in the accepted list for one more recipient. */
static int lmtp_reserve(smtpuv_proto *p) {
  if (p->lm.len < p->lm.cap)
    return 0;
  size_t cap = p->lm.cap != 0 ? 2 * p->lm.cap : 8;
  uint32_t *acc = smtpuv__realloc(&p->mem, p->lm.acc, cap * sizeof *acc);
  if (acc == NULL)
    return SMTPUV_ENOMEM;
  p->lm.acc = acc;
  p->lm.cap = cap;
  return 0;
}

/* A positive RCPT reply of the transaction being popped (LMTP). */
static int lmtp_accepts(const smtpuv_proto *p, const smtpuv__pending *e,
                        const smtpuv_reply *r) {
  return p->lmtp && e->cmd == SMTPUV_CMD_RCPT && r->positive &&
         e->txn == p->txi.id && !p->txi.mail_failed;
}

int smtpuv__session_prepare(smtpuv_proto *p, const smtpuv__pending *e,
                            const smtpuv_reply *r, smtpuv__apply *a) {
  a->ehlo = NULL;
  a->auto_end = 0;
  /* even when FINISHED (QUIT pipelined behind the end of data): the
     verdicts still to come need the accepted recipients */
  if (lmtp_accepts(p, e, r))
    return lmtp_reserve(p);
  if (p->state == SMTPUV_STATE_FINISHED)
    return 0;
  if ((e->cmd == SMTPUV_CMD_EHLO || e->cmd == SMTPUV_CMD_HELO ||
       e->cmd == SMTPUV_CMD_LHLO) &&
      r->positive)
    return smtpuv__ehlo_build(&p->mem, r->lines, r->nlines,
                              e->cmd != SMTPUV_CMD_HELO, &a->ehlo);
  if (e->cmd == SMTPUV_CMD_DATA && r->positive && txn_failed(p, e)) {
    /* data() left room for both; this only allocates when consumed()
       drained the block and a trim freed it (it was a large one). */
    if (smtpuv__ring_reserve(p, 1) != 0 ||
        smtpuv__outbuf_reserve(&p->out, &p->mem, 3) == NULL)
      return SMTPUV_ENOMEM;
    a->auto_end = 1;
  }
  return 0;
}

/* The 354 came although the transaction failed: end the body at once. */
static void write_empty_body(smtpuv_proto *p, const smtpuv__pending *e) {
  char *w = smtpuv__outbuf_reserve(&p->out, &p->mem, 3);
  memcpy(w, ".\r\n", 3);
  smtpuv__outbuf_commit(&p->out, 3);
  smtpuv__pending *end = smtpuv__ring_push(p, SMTPUV_CMD_DATA_END);
  end->txn = e->txn;
  end->auto_end = 1;
}

/* Reply flags and the reply side of the transaction bookkeeping. */
static void track_transaction(smtpuv_proto *p, const smtpuv__pending *e,
                              smtpuv_reply *r) {
  switch (e->cmd) {
  case SMTPUV_CMD_MAIL:
    p->txi.id = e->txn;
    p->txi.mail_failed = !r->positive;
    p->txi.rcpt_replied = p->txi.rcpt_accepted = 0;
    p->lm.len = 0;
    p->lm.popped = 0;
    break;
  case SMTPUV_CMD_RCPT:
    if (lmtp_accepts(p, e, r))
      p->lm.acc[p->lm.len++] = e->rcpt_index; /* room: prepare() */
    if (e->txn == p->txi.id) {
      p->txi.rcpt_replied++;
      p->txi.rcpt_accepted += (uint32_t)r->positive;
      if (p->txi.mail_failed)
        r->flags |= SMTPUV_REPLY_TXN_FAILED;
    }
    break;
  case SMTPUV_CMD_DATA:
  case SMTPUV_CMD_DATA_END:
  case SMTPUV_CMD_BDAT:
    if (txn_failed(p, e))
      r->flags |= SMTPUV_REPLY_TXN_FAILED;
    if (e->lmtp_slot) {
      /* the k-th verdict is for the k-th accepted recipient */
      r->rcpt_index = 0;
      if (e->txn == p->txi.id) {
        p->lm.popped = e->rcpt_index + 1;
        if (!(r->flags & SMTPUV_REPLY_TXN_FAILED) &&
            e->rcpt_index < p->lm.len) {
          r->rcpt_index = p->lm.acc[e->rcpt_index];
          r->flags |= SMTPUV_REPLY_LMTP_RCPT;
        }
      }
    }
    if (e->auto_end) {
      r->flags |= SMTPUV_REPLY_EMPTY_DATA;
      r->positive = 0;
    }
    break;
  default:
    break;
  }
}

static void move_state(smtpuv_proto *p, const smtpuv__pending *e,
                       const smtpuv_reply *r, smtpuv__apply *a) {
  switch (e->cmd) {
  case SMTPUV_CMD_GREETING:
    p->state = r->positive ? SMTPUV_STATE_GREETED : SMTPUV_STATE_FINISHED;
    break;
  case SMTPUV_CMD_EHLO:
  case SMTPUV_CMD_HELO:
  case SMTPUV_CMD_LHLO:
    if (r->positive) {
      smtpuv__free(&p->mem, p->ehlo);
      p->ehlo = a->ehlo;
      a->ehlo = NULL;
    }
    p->state = r->positive ? SMTPUV_STATE_READY : SMTPUV_STATE_GREETED;
    break;
  case SMTPUV_CMD_STARTTLS:
    if (r->positive)
      p->tls_ready = 1;
    else
      p->state = SMTPUV_STATE_READY;
    break;
  case SMTPUV_CMD_AUTH:
    if (r->code == 334) {
      p->auth_challenge = 1;
    } else {
      p->state = SMTPUV_STATE_READY;
      if (r->positive)
        p->authenticated = 1;
    }
    break;
  case SMTPUV_CMD_MAIL:
    /* Refused: the transaction is over unless DATA is already on its way
       (then its reply ends it). */
    if (!r->positive && e->txn == p->txo.id &&
        (p->state == SMTPUV_STATE_MAIL_TRANSACTION ||
         p->state == SMTPUV_STATE_RECIPIENT_SENT ||
         p->state == SMTPUV_STATE_BDAT))
      p->state = SMTPUV_STATE_READY;
    break;
  case SMTPUV_CMD_DATA:
    if (a->auto_end)
      write_empty_body(p, e);
    p->state = r->positive && !a->auto_end ? SMTPUV_STATE_DATA
                                           : SMTPUV_STATE_READY;
    break;
  default:
    break;
  }
}

void smtpuv__session_apply(smtpuv_proto *p, const smtpuv__pending *e,
                           smtpuv_reply *r, smtpuv__apply *a) {
  if (r->command == SMTPUV_CMD_DATA && a->auto_end)
    r->flags |= SMTPUV_REPLY_EMPTY_DATA;
  track_transaction(p, e, r);
  if (ends_group(e->cmd))
    p->group_enders--;
  if (p->state != SMTPUV_STATE_FINISHED)
    move_state(p, e, r, a);
  if (r->code == 421)
    p->state = SMTPUV_STATE_FINISHED; /* the server closes the channel */
  smtpuv__free(&p->mem, a->ehlo); /* unused when the state did not move */
}

int smtpuv_proto_tls_established(smtpuv_proto *p) {
  if (p == NULL)
    return SMTPUV_EINVAL;
  if (p->err != 0)
    return p->err;
  if (p->state != SMTPUV_STATE_STARTTLS_PENDING || !p->tls_ready)
    return SMTPUV_ESTATE;
  smtpuv__free(&p->mem, p->ehlo);
  p->ehlo = NULL;
  p->tls_ready = 0;
  p->authenticated = 0; /* a new session (RFC 3207 4.2) */
  p->rd.tls_wait = 0;
  p->state = SMTPUV_STATE_GREETED;
  return 0;
}

/* ---- output ------------------------------------------------------------- */

void smtpuv_proto_outgoing(smtpuv_proto *p, const void **ptr, size_t *len) {
  if (p == NULL) {
    *ptr = NULL;
    *len = 0;
    return;
  }
  smtpuv__outbuf_peek(&p->out, ptr, len);
}

int smtpuv_proto_outgoing_iov(smtpuv_proto *p, size_t skip, smtpuv_iov *iov,
                              int iovcnt) {
  if (p == NULL || iov == NULL || iovcnt <= 0)
    return 0;
  return smtpuv__outbuf_iov(&p->out, skip, iov, iovcnt);
}

void smtpuv_proto_consumed(smtpuv_proto *p, size_t n) {
  if (p == NULL)
    return;
  smtpuv__outbuf_consume(&p->out, &p->mem, n);
  /* drained and no body being streamed: give the large spare back */
  if (p->out.pending == 0 && p->state != SMTPUV_STATE_DATA &&
      p->state != SMTPUV_STATE_BDAT)
    smtpuv__outbuf_trim(&p->out, &p->mem);
}

size_t smtpuv_proto_pending_output(const smtpuv_proto *p) {
  return p != NULL ? p->out.pending : 0;
}

/* ---- queries ------------------------------------------------------------ */

size_t smtpuv_proto_pending_replies(const smtpuv_proto *p) {
  return p != NULL ? p->ring_count - p->rd.voids : 0;
}

/* LMTP: 1 when the end of data of the transaction being popped is in the
   queue (some of its slots not popped yet). */
static int lmtp_eod_queued(const smtpuv_proto *p) {
  for (size_t i = 0; i < p->ring_count; i++) {
    const smtpuv__pending *e = smtpuv__ring_at(p, i);
    if (e->txn != p->txi.id)
      return 0; /* a later transaction: the slots would precede it */
    if (e->lmtp_slot && !e->voided)
      return 1;
  }
  return 0;
}

size_t smtpuv_proto_lmtp_due(const smtpuv_proto *p) {
  if (p == NULL || !p->lmtp || p->txi.mail_failed ||
      p->lm.popped >= p->lm.len || !lmtp_eod_queued(p))
    return 0;
  return p->lm.len - p->lm.popped;
}

int smtpuv_proto_lmtp_due_rcpt(const smtpuv_proto *p, size_t i,
                               unsigned *index) {
  if (index == NULL || i >= smtpuv_proto_lmtp_due(p))
    return SMTPUV_EINVAL;
  *index = p->lm.acc[p->lm.popped + i];
  return 0;
}

smtpuv_state smtpuv_proto_state(const smtpuv_proto *p) {
  return p != NULL ? p->state : SMTPUV_STATE_FINISHED;
}

int smtpuv_proto_error(const smtpuv_proto *p) {
  return p != NULL ? p->err : SMTPUV_EINVAL;
}

const char *smtpuv_proto_error_text(const smtpuv_proto *p) {
  return p != NULL && p->err != 0 ? p->errtext : "";
}

void smtpuv_proto_set_pipelining(smtpuv_proto *p, int enable) {
  if (p != NULL)
    p->pipelining_allowed = enable != 0;
}

const char *smtpuv_cmd_name(smtpuv_cmd cmd) {
  static const char *const names[] = {
      "unsolicited", "greeting", "EHLO", "HELO", "STARTTLS",
      "AUTH",        "MAIL",     "RCPT", "DATA", "end-of-data",
      "BDAT",        "RSET",     "NOOP", "VRFY", "QUIT",
      "LHLO"};
  return (unsigned)cmd < sizeof names / sizeof names[0] ? names[cmd] : "?";
}

const char *smtpuv_state_name(smtpuv_state state) {
  static const char *const names[] = {
      "GREETING_EXPECTED", "GREETED",          "EHLO_SENT",
      "STARTTLS_PENDING",  "AUTHENTICATING",   "READY",
      "MAIL_TRANSACTION",  "RECIPIENT_SENT",   "DATA_PENDING",
      "DATA",              "BDAT",             "FINISHED"};
  return (unsigned)state < sizeof names / sizeof names[0] ? names[state]
                                                          : "?";
}

/* SPDX-License-Identifier: MIT */
/* Mail transactions on a READY connection: messages are taken from the
 * client's queue in order and sent (MAIL, RCPT, DATA or BDAT, the body),
 * pipelined where the server allows, with the replies routed back to the
 * message they answer and turned into per-recipient results; a transaction
 * that failed before its end is closed with RSET.
 *
 * Replies come in FIFO order of the commands, so each message counts the
 * replies it still expects (`expect`) and a reply to MAIL, RCPT, DATA,
 * "." or BDAT goes to the oldest in-flight message still expecting one.
 * A message's outcome may be decided before all its replies are in (a
 * refused MAIL is followed by RCPT and DATA replies when pipelined); it
 * completes when the outcome is known and nothing more is due.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "uv/session_int.h"

static void check_done(smtpuv__conn *cn, smtpuv__msg *m);

#define MEM(cn) (&(cn)->client->mem)

/* ---- in-flight messages ---------------------------------------------- */

/* The reply a message was waiting for (with pipelining the whole message
   may be written while the reply to MAIL is still due). */
static smtpuv_phase msg_phase(const smtpuv__msg *m) {
  if (m->stage == SMTPUV__M_QUEUED)
    return SMTPUV_PHASE_NONE;
  if (!m->mail_ok && !m->mail_failed)
    return SMTPUV_PHASE_MAIL;
  if (m->rcpt_replies < m->nrcpts)
    return SMTPUV_PHASE_RCPT;
  if (m->stage == SMTPUV__M_DOT && m->expect <= 1)
    return SMTPUV_PHASE_END_OF_DATA;
  return SMTPUV_PHASE_DATA;
}

static void inflight_remove(smtpuv__conn *cn, smtpuv__msg *m) {
  smtpuv__msg *prev = NULL;
  for (smtpuv__msg *it = cn->inflight; it != NULL; prev = it, it = it->next) {
    if (it != m)
      continue;
    if (prev != NULL)
      prev->next = m->next;
    else
      cn->inflight = m->next;
    if (cn->inflight_tail == m)
      cn->inflight_tail = prev;
    cn->ninflight--;
    m->next = NULL;
    return;
  }
}

static void attach_tls(smtpuv__conn *cn, smtpuv__msg *m) {
  if (cn->tls_summary != NULL && m->tls == 0)
    m->tls = smtpuv__msg_str(MEM(cn), m, cn->tls_summary,
                             strlen(cn->tls_summary));
}

static void complete(smtpuv__conn *cn, smtpuv__msg *m) {
  attach_tls(cn, m);
  smtpuv__client_complete(cn->client, m);
}

/* Every in-flight message ends because the connection does. */
void smtpuv__txn_fail_inflight(smtpuv__conn *cn, int err, const char *text,
                               const smtpuv_reply *reply) {
  smtpuv_client *c = cn->client;
  while (cn->inflight != NULL) {
    smtpuv__msg *m = cn->inflight;
    inflight_remove(cn, m);
    if (m->decided) {
      complete(cn, m);
      continue;
    }
    if (m->stage == SMTPUV__M_DOT && cn->out_started >= m->dot_mark) {
      smtpuv__msg_decide(MEM(cn), m, SMTPUV_SEND_UNKNOWN, err, msg_phase(m),
                         reply,
                         "%s after the end of the message was sent: it may "
                         "or may not have been accepted",
                         text);
      complete(cn, m);
      continue;
    }
    if (!c->closing && m->reused && m->attempts < 2 &&
        (err == SMTPUV_ECONNLOST || err == SMTPUV_EIO) &&
        smtpuv__msg_rewind(m)) {
      smtpuv__trace_info(cn, "retrying the message on a new connection");
      smtpuv__client_requeue(c, m);
      continue;
    }
    smtpuv_phase ph = msg_phase(m);
    if (ph == SMTPUV_PHASE_END_OF_DATA)
      ph = SMTPUV_PHASE_DATA; /* the "." never left */
    smtpuv__msg_decide(MEM(cn), m, SMTPUV_SEND_FAILED, err, ph, reply, "%s",
                       text);
    complete(cn, m);
  }
}

/* The client is closing: every in-flight message is canceled. */
void smtpuv__txn_cancel_inflight(smtpuv__conn *cn) {
  while (cn->inflight != NULL) {
    smtpuv__msg *m = cn->inflight;
    inflight_remove(cn, m);
    smtpuv__msg_decide(MEM(cn), m, SMTPUV_SEND_CANCELED, SMTPUV_ECANCELED,
                       msg_phase(m), NULL, "canceled: the client was closed");
    complete(cn, m);
  }
}

/* ---- messages ------------------------------------------------------------------- */

static int is_ascii(const char *s) {
  for (; *s; s++)
    if ((unsigned char)*s >= 0x80)
      return 0;
  return 1;
}

/* Fail a message before any of its bytes were written. */
static void local_fail(smtpuv__conn *cn, smtpuv__msg *m, int err,
                       smtpuv_phase phase, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;
static void local_fail(smtpuv__conn *cn, smtpuv__msg *m, int err,
                       smtpuv_phase phase, const char *fmt, ...) {
  char text[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  smtpuv__msg_decide(MEM(cn), m, SMTPUV_SEND_FAILED, err, phase, NULL, "%s",
                     text);
  complete(cn, m);
}

/* What a buffer body holds: each scan runs at most once per message, only
   when its answer matters, and is kept for a retry on a new connection. */
static int body_scan(smtpuv__msg *m, unsigned what) {
  if (!(m->scan & what)) {
    int yes = what == SMTPUV__SCAN_8BIT
                  ? smtpuv_is_8bit(m->body.data, m->body.len)
                  : smtpuv_needs_binarymime(m->body.data, m->body.len);
    m->scan |= what | (yes ? what << 8 : 0);
  }
  return (m->scan & (what << 8)) != 0;
}

static uint64_t body_wire_size(smtpuv__msg *m) {
  if (!(m->scan & SMTPUV__SCAN_WIRE)) {
    m->wire_size = smtpuv_body_wire_size(m->body.data, m->body.len);
    m->scan |= SMTPUV__SCAN_WIRE;
  }
  return m->wire_size;
}

static int issue_rcpt(smtpuv__conn *cn, smtpuv__msg *m) {
  smtpuv__rcpt *rc = &m->rcpts[m->next_rcpt];
  size_t before = smtpuv_proto_pending_output(cn->proto);
  int err = smtpuv_proto_rcpt(cn->proto, rc->address, rc->params);
  if (err != 0)
    return err;
  smtpuv__trace_out(cn, before, SMTPUV__TR_CMD);
  m->next_rcpt++;
  m->expect++;
  return 0;
}

static int issue_data(smtpuv__conn *cn, smtpuv__msg *m) {
  m->data_issued = 1;
  if (m->bdat) {
    m->stage = SMTPUV__M_BODY;
    return 0;
  }
  size_t before = smtpuv_proto_pending_output(cn->proto);
  int err = smtpuv_proto_data(cn->proto);
  if (err != 0)
    return err;
  smtpuv__trace_out(cn, before, SMTPUV__TR_CMD);
  m->expect++;
  return 0;
}

/* The transaction of `m` failed before its end: RSET before the next MAIL,
   unless one was already pipelined behind it. */
static void need_rset(smtpuv__conn *cn, smtpuv__msg *m) {
  if (!m->rset_after)
    cn->rset_needed = 1;
}

/* A command of an in-flight message could not be issued (local refusal
   after MAIL was written): the transaction is abandoned with RSET. */
static void envelope_abort(smtpuv__conn *cn, smtpuv__msg *m, int err,
                           smtpuv_phase phase, const char *what) {
  smtpuv__msg_decide(MEM(cn), m, SMTPUV_SEND_FAILED, err, phase, NULL,
                     "%s: %s", what, smtpuv_strerror(err));
  need_rset(cn, m);
  check_done(cn, m);
}

static void start_message(smtpuv__conn *cn, smtpuv__msg *m) {
  smtpuv_client *c = cn->client;
  unsigned ext = smtpuv_proto_extensions(cn->proto);
  m->attempts++;
  m->reused = cn->messages_issued > 0;
  cn->messages_issued++;
  if (smtpuv__session_tls_required(c) && !cn->tls_up) {
    local_fail(cn, m, SMTPUV_ENOTLS, SMTPUV_PHASE_MAIL,
               "TLS is required and not established");
    return;
  }
  smtpuv_mail_params mp = m->mail_params;
  int chunking = c->opts.chunking && (ext & SMTPUV_EXT_CHUNKING);
  const smtpuv_body *b = &m->body;
  if (mp.body == SMTPUV_BODY_UNSPECIFIED) {
    if (b->read == NULL) {
      int binary = chunking && (ext & SMTPUV_EXT_BINARYMIME) &&
                   body_scan(m, SMTPUV__SCAN_BINARY);
      if (binary)
        mp.body = SMTPUV_BODY_BINARYMIME;
      else if (body_scan(m, SMTPUV__SCAN_8BIT)) {
        if (!(ext & SMTPUV_EXT_8BITMIME)) {
          local_fail(cn, m, SMTPUV_E8BIT, SMTPUV_PHASE_MAIL,
                     "the message has 8-bit content and the server does not "
                     "offer 8BITMIME");
          return;
        }
        mp.body = SMTPUV_BODY_8BITMIME;
      }
    } else if (ext & SMTPUV_EXT_8BITMIME) {
      mp.body = SMTPUV_BODY_8BITMIME;
    }
  }
  if (mp.size == 0 && (ext & SMTPUV_EXT_SIZE)) {
    /* what the server counts: CRLF line endings (a buffer's bare LFs
       become CRLF on the wire); binary bodies go unchanged */
    if (b->read != NULL)
      mp.size = b->size;
    else if (mp.body == SMTPUV_BODY_BINARYMIME)
      mp.size = b->len;
    else
      mp.size = body_wire_size(m);
  }
  if (mp.body == SMTPUV_BODY_BINARYMIME && !chunking) {
    local_fail(cn, m, SMTPUV_ENOEXT, SMTPUV_PHASE_MAIL,
               "BODY=BINARYMIME needs CHUNKING, which is %s",
               c->opts.chunking ? "not offered by the server" : "switched off");
    return;
  }
  m->bdat = chunking;
  for (size_t i = 0; i < m->nrcpts; i++) {
    if (!is_ascii(m->rcpts[i].address)) {
      if (!(ext & SMTPUV_EXT_SMTPUTF8)) {
        local_fail(cn, m, SMTPUV_ENOEXT, SMTPUV_PHASE_RCPT,
                   "recipient %s is not ASCII and the server does not offer "
                   "SMTPUTF8",
                   m->rcpts[i].address);
        return;
      }
      mp.smtputf8 = 1;
    }
  }
  if (!(ext & SMTPUV_EXT_DSN)) {
    /* DSN parameters without DSN: refused here, before MAIL is written,
       rather than by the core in the middle of the envelope */
    int dsn = mp.dsn_ret != SMTPUV_DSN_RET_UNSPECIFIED || mp.dsn_envid;
    for (size_t i = 0; i < m->nrcpts && !dsn; i++)
      dsn = m->rcpts[i].params != NULL &&
            (m->rcpts[i].params->dsn_notify || m->rcpts[i].params->dsn_orcpt);
    if (dsn) {
      local_fail(cn, m, SMTPUV_ENOEXT, SMTPUV_PHASE_MAIL,
                 "DSN parameters were given and the server does not offer "
                 "DSN");
      return;
    }
  }
  size_t before = smtpuv_proto_pending_output(cn->proto);
  int rc = smtpuv_proto_mail(cn->proto, m->sender, &mp);
  if (rc != 0) {
    local_fail(cn, m, rc, SMTPUV_PHASE_MAIL, "MAIL FROM:<%s>: %s", m->sender,
               smtpuv_strerror(rc));
    return;
  }
  smtpuv__trace_out(cn, before, SMTPUV__TR_CMD);
  m->stage = SMTPUV__M_ENVELOPE;
  m->expect = 1;
  m->next = NULL;
  if (cn->inflight_tail != NULL)
    cn->inflight_tail->next = m;
  else
    cn->inflight = m;
  cn->inflight_tail = m;
  cn->ninflight++;
  m->pipelined = (ext & SMTPUV_EXT_PIPELINING) && c->opts.pipelining;
  if (!m->pipelined)
    return;
  while (m->next_rcpt < m->nrcpts) {
    rc = issue_rcpt(cn, m);
    if (rc != 0) {
      envelope_abort(cn, m, rc, SMTPUV_PHASE_RCPT, "RCPT");
      return;
    }
  }
  if (!c->opts.require_all) {
    rc = issue_data(cn, m);
    if (rc != 0)
      envelope_abort(cn, m, rc, SMTPUV_PHASE_DATA, "DATA");
  }
}

/* All RCPT replies are in and DATA was not issued yet. */
static void after_rcpts(smtpuv__conn *cn, smtpuv__msg *m,
                        const smtpuv_reply *last) {
  if (m->mail_failed || m->decided)
    return;
  if (m->naccepted == 0 ||
      (cn->client->opts.require_all && m->naccepted < m->nrcpts)) {
    size_t i = 0;
    while (i + 1 < m->nrcpts && m->rcpts[i].accepted)
      i++;
    /* copy: deciding may move the arena */
    char why[320];
    const char *t = m->rcpts[i].text ? m->arena + m->rcpts[i].text : "";
    const char *nl = strchr(t, '\n');
    int tl = nl != NULL ? (int)(nl - t) : (int)strlen(t);
    snprintf(why, sizeof why, "%.*s", tl > 300 ? 300 : tl, t);
    smtpuv__msg_decide(MEM(cn), m, SMTPUV_SEND_FAILED, SMTPUV_ENORCPT,
                       SMTPUV_PHASE_RCPT, last, "%s: RCPT TO:<%s>: %d %s",
                       m->naccepted == 0 ? "no recipient accepted"
                                         : "a recipient was refused",
                       m->rcpts[i].address, m->rcpts[i].code, why);
    need_rset(cn, m);
    return;
  }
  int rc = issue_data(cn, m);
  if (rc != 0)
    envelope_abort(cn, m, rc, SMTPUV_PHASE_DATA, "DATA");
}

/* The refusal of a transaction whose MAIL or every RCPT failed. */
static int txn_refused(smtpuv__conn *cn, smtpuv__msg *m,
                       const smtpuv_reply *r) {
  if (m->decided)
    return 1;
  if (m->mail_failed)
    return 1;
  if (m->rcpt_replies == m->nrcpts && m->naccepted == 0) {
    after_rcpts(cn, m, r);
    return 1;
  }
  return 0;
}

static void check_done(smtpuv__conn *cn, smtpuv__msg *m) {
  if (!m->decided || m->expect > 0)
    return;
  if (m->stage == SMTPUV__M_BODY && m->bdat) {
    /* chunks were sent without LAST: end the transaction */
    need_rset(cn, m);
  }
  inflight_remove(cn, m);
  complete(cn, m);
}

static smtpuv__msg *route(smtpuv__conn *cn) {
  for (smtpuv__msg *m = cn->inflight; m != NULL; m = m->next)
    if (m->expect > 0)
      return m;
  return NULL;
}

void smtpuv__txn_reply(smtpuv__conn *cn, const smtpuv_reply *r) {
  smtpuv__msg *m = route(cn);
  if (m == NULL) {
    smtpuv__session_fail(cn, SMTPUV_EPROTO, "unexpected reply to %s",
                         smtpuv_cmd_name(r->command));
    return;
  }
  m->expect--;
  int fl = smtpuv__session_first_line_len(r);
  switch (r->command) {
  case SMTPUV_CMD_MAIL:
    if (r->positive) {
      m->mail_ok = 1;
      if (!m->pipelined && m->next_rcpt < m->nrcpts) {
        int rc = issue_rcpt(cn, m);
        if (rc != 0)
          envelope_abort(cn, m, rc, SMTPUV_PHASE_RCPT, "RCPT");
      }
    } else {
      m->mail_failed = 1;
      smtpuv__msg_decide(MEM(cn), m, SMTPUV_SEND_FAILED,
                         smtpuv__session_reply_err(r->code), SMTPUV_PHASE_MAIL,
                         r, "MAIL FROM:<%s>: %d %.*s", m->sender, r->code, fl,
                         r->text);
      need_rset(cn, m);
    }
    break;
  case SMTPUV_CMD_RCPT: {
    size_t i = r->rcpt_index;
    if (i < m->nrcpts) {
      smtpuv__rcpt *rc = &m->rcpts[i];
      rc->code = r->code;
      rc->accepted = r->positive;
      memcpy(rc->enhanced, r->enhanced, sizeof rc->enhanced);
      rc->enhanced[sizeof rc->enhanced - 1] = '\0';
      rc->text = smtpuv__msg_str(MEM(cn), m, r->text, r->text_len);
      if (r->positive)
        m->naccepted++;
    }
    m->rcpt_replies++;
    if (m->rcpt_replies < m->nrcpts) {
      if (!m->pipelined) {
        int err = issue_rcpt(cn, m);
        if (err != 0)
          envelope_abort(cn, m, err, SMTPUV_PHASE_RCPT, "RCPT");
      }
    } else if (!m->data_issued) {
      after_rcpts(cn, m, r);
    } else if (m->bdat && (m->mail_failed || m->naccepted == 0)) {
      /* pipelined BDAT for a dead transaction: stop sending chunks */
      after_rcpts(cn, m, r);
      m->bdat_abort = 1;
    }
    break;
  }
  case SMTPUV_CMD_DATA:
    if (r->positive) {
      if (r->flags & SMTPUV_REPLY_EMPTY_DATA) {
        /* the core ended the data itself: its reply is still due */
        m->expect++;
        m->stage = SMTPUV__M_DOT;
        m->dot_mark = 0;
        txn_refused(cn, m, r);
      } else {
        m->stage = SMTPUV__M_BODY;
      }
    } else {
      if (!txn_refused(cn, m, r))
        smtpuv__msg_decide_reply(MEM(cn), m, SMTPUV_SEND_FAILED,
                                 smtpuv__session_reply_err(r->code),
                                 SMTPUV_PHASE_DATA, r, "DATA");
      need_rset(cn, m);
    }
    break;
  case SMTPUV_CMD_DATA_END:
  case SMTPUV_CMD_BDAT:
    if (r->command == SMTPUV_CMD_BDAT && !r->last) {
      if (!r->positive) {
        if (!txn_refused(cn, m, r))
          smtpuv__msg_decide_reply(MEM(cn), m, SMTPUV_SEND_FAILED,
                                   smtpuv__session_reply_err(r->code),
                                   SMTPUV_PHASE_DATA, r, "BDAT");
        m->bdat_abort = 1;
      }
      break;
    }
    if (m->decided || (r->flags & SMTPUV_REPLY_EMPTY_DATA))
      break;
    if (r->positive && !(r->flags & SMTPUV_REPLY_TXN_FAILED) &&
        m->naccepted > 0) {
      smtpuv__msg_decide_reply(MEM(cn), m, SMTPUV_SEND_SENT,
                               m->naccepted < m->nrcpts ? SMTPUV_ENORCPT : 0,
                               SMTPUV_PHASE_END_OF_DATA, r, NULL);
    } else if (!txn_refused(cn, m, r)) {
      smtpuv__msg_decide_reply(MEM(cn), m, SMTPUV_SEND_FAILED,
                               r->positive ? SMTPUV_EPROTO
                                           : smtpuv__session_reply_err(r->code),
                               SMTPUV_PHASE_END_OF_DATA, r, "end of data");
    }
    break;
  default:
    break;
  }
  if (cn->state != SMTPUV__C_DEAD)
    check_done(cn, m);
}

/* ---- body ---------------------------------------------------------------------- */

static void body_fail(smtpuv__conn *cn, smtpuv__msg *m, int err,
                      const char *what) {
  smtpuv__msg_decide(MEM(cn), m, SMTPUV_SEND_FAILED, err, SMTPUV_PHASE_DATA,
                     NULL, "%s", what);
  if (m->bdat) {
    m->bdat_abort = 1;
    check_done(cn, m);
    return;
  }
  /* DATA cannot be abandoned once the 354 came: drop the connection */
  inflight_remove(cn, m);
  complete(cn, m);
  cn->doomed = 1;
  cn->doomed_err = SMTPUV_ECONNLOST;
}

/* Fill the client's pump buffer from a streamed body. Returns 1 when data
   (or the end) is available, 0 when blocked, -1 after a failure. */
static int stream_fill(smtpuv__conn *cn, smtpuv__msg *m) {
  smtpuv_client *c = cn->client;
  if (c->pump_buf == NULL) {
    c->pump_buf = smtpuv__malloc(&c->mem, SMTPUV__PUMP_BUF);
    if (c->pump_buf == NULL) {
      body_fail(cn, m, SMTPUV_ENOMEM, "out of memory");
      return -1;
    }
  }
  for (int guard = 0; c->pump_len < SMTPUV__PUMP_BUF && !m->body_eof &&
                      guard < 4096;
       guard++) {
    long n = m->body.read(m->body.user, c->pump_buf + c->pump_len,
                          SMTPUV__PUMP_BUF - c->pump_len);
    if (n > 0) {
      if ((size_t)n > SMTPUV__PUMP_BUF - c->pump_len)
        n = (long)(SMTPUV__PUMP_BUF - c->pump_len);
      c->pump_len += (size_t)n;
    } else if (n == 0) {
      m->body_eof = 1;
    } else if (n == SMTPUV_EAGAIN) {
      if (c->pump_len == 0) {
        c->body_blocked = 1;
        return 0;
      }
      break;
    } else {
      c->pump_len = 0;
      body_fail(cn, m, SMTPUV_EBODY, "the message body source failed");
      return -1;
    }
  }
  return 1;
}

void smtpuv__txn_pump(smtpuv__conn *cn) {
  smtpuv_client *c = cn->client;
  smtpuv__msg *m = cn->inflight_tail;
  if (m == NULL || m->stage != SMTPUV__M_BODY || m->bdat_abort ||
      c->closing || cn->doomed)
    return;
  for (int guard = 0; guard < 1024 && cn->state == SMTPUV__C_READY &&
                      smtpuv__conn_backlog(cn) < SMTPUV__HIGH_WATER;
       guard++) {
    const char *ptr;
    size_t n;
    int eof;
    if (m->body.read == NULL) {
      uint64_t left = m->body.len - m->body_off;
      n = left < SMTPUV__BODY_CHUNK ? (size_t)left : SMTPUV__BODY_CHUNK;
      ptr = (const char *)m->body.data + m->body_off;
      eof = m->body_off + n == m->body.len;
    } else {
      int f = stream_fill(cn, m);
      if (f <= 0)
        return;
      ptr = c->pump_buf;
      n = c->pump_len;
      eof = m->body_eof;
    }
    size_t before = smtpuv_proto_pending_output(cn->proto);
    int rc;
    if (m->bdat) {
      rc = smtpuv_proto_bdat(cn->proto, ptr, n, eof);
      if (rc == SMTPUV_EBUSY)
        return; /* no pipelining: wait for the previous chunk's reply */
      if (rc != 0) {
        body_fail(cn, m, rc, smtpuv_strerror(rc));
        return;
      }
      smtpuv__trace_out(cn, before, SMTPUV__TR_BDAT);
      m->expect++;
    } else if (n > 0) {
      rc = smtpuv_proto_data_write(cn->proto, ptr, n);
      if (rc != 0) {
        body_fail(cn, m, rc,
                  rc == SMTPUV_E8BIT
                      ? "the message has 8-bit content and the server does "
                        "not offer 8BITMIME"
                      : smtpuv_strerror(rc));
        return;
      }
      smtpuv__trace_out(cn, before, SMTPUV__TR_BODY);
    }
    if (m->body.read == NULL)
      m->body_off += n;
    else
      c->pump_len = 0;
    if (eof) {
      if (!m->bdat) {
        before = smtpuv_proto_pending_output(cn->proto);
        rc = smtpuv_proto_data_end(cn->proto);
        if (rc != 0) {
          body_fail(cn, m, rc, smtpuv_strerror(rc));
          return;
        }
        smtpuv__trace_out(cn, before, SMTPUV__TR_CMD);
        m->expect++;
      }
      m->stage = SMTPUV__M_DOT;
      m->dot_mark = cn->out_started + smtpuv_proto_pending_output(cn->proto);
      return;
    }
  }
}

/* ---- scheduling ------------------------------------------------------------------ */

int smtpuv__txn_dot_waiting(const smtpuv__conn *cn) {
  for (const smtpuv__msg *m = cn->inflight; m != NULL; m = m->next)
    if (m->stage == SMTPUV__M_DOT && m->expect > 0)
      return 1;
  return 0;
}

void smtpuv__txn_issue(smtpuv__conn *cn) {
  smtpuv_client *c = cn->client;
  smtpuv_proto *p = cn->proto;
  for (int guard = 0; guard < 64; guard++) {
    if (c->closing || cn->doomed || cn->state != SMTPUV__C_READY)
      return;
    int pipelining = (smtpuv_proto_extensions(p) & SMTPUV_EXT_PIPELINING) &&
                     c->opts.pipelining;
    if (cn->rset_needed && cn->ninflight == 0) {
      size_t before = smtpuv_proto_pending_output(p);
      int rc = smtpuv_proto_rset(p);
      if (rc == SMTPUV_EBUSY)
        return;
      if (rc != 0) {
        cn->doomed = 1;
        cn->doomed_err = rc;
        return;
      }
      smtpuv__trace_out(cn, before, SMTPUV__TR_CMD);
      cn->rset_needed = 0;
      cn->rset_pending++;
    }
    if (c->queue == NULL)
      return;
    if (cn->ninflight >= SMTPUV__MAX_INFLIGHT)
      return;
    if (!pipelining && smtpuv_proto_pending_replies(p) > 0)
      return;
    if (cn->ninflight > 0 &&
        (!pipelining || cn->inflight_tail->stage != SMTPUV__M_DOT ||
         cn->rset_needed))
      return;
    if (smtpuv_proto_state(p) != SMTPUV_STATE_READY)
      return;
    smtpuv__msg *tail = cn->inflight_tail;
    if (tail != NULL && tail->bdat && !tail->rset_after &&
        !(tail->mail_ok && tail->rcpt_replies == tail->nrcpts &&
          tail->naccepted > 0)) {
      /* After BDAT LAST a server may keep a transaction whose MAIL or every
         RCPT failed open (as after a refused DATA): an RSET pipelined in
         front of the next MAIL closes it either way and costs no round
         trip. */
      size_t before = smtpuv_proto_pending_output(p);
      int rc = smtpuv_proto_rset(p);
      if (rc != 0)
        return;
      smtpuv__trace_out(cn, before, SMTPUV__TR_CMD);
      cn->rset_pending++;
      tail->rset_after = 1;
    }
    smtpuv__msg *m = c->queue;
    c->queue = m->next;
    if (c->queue == NULL)
      c->queue_tail = NULL;
    m->next = NULL;
    start_message(cn, m);
    if (cn->state == SMTPUV__C_DEAD)
      return;
    /* a buffer body that fits goes out with its envelope */
    smtpuv__txn_pump(cn);
  }
}

/* The last message's body has more to give (not blocked, not aborted). */
int smtpuv__txn_body_flowing(const smtpuv__conn *cn) {
  const smtpuv__msg *m = cn->inflight_tail;
  if (m == NULL || m->stage != SMTPUV__M_BODY || m->bdat_abort || cn->doomed)
    return 0;
  if (m->body.read == NULL)
    return m->body_off < m->body.len;
  return !cn->client->body_blocked;
}

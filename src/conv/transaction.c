/* SPDX-License-Identifier: MIT */
/* Mail transactions on a READY conversation: messages submitted by the
 * transport are sent in order (MAIL, RCPT, DATA or BDAT, the body),
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

#include "conv/conv_int.h"


#define MEM(cv) (&(cv)->mem)

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

void smtpuv__txn_remove(smtpuv__conv *cv, smtpuv__msg *m) {
  smtpuv__msg *prev = NULL;
  for (smtpuv__msg *it = cv->inflight; it != NULL; prev = it, it = it->next) {
    if (it != m)
      continue;
    if (prev != NULL)
      prev->next = m->next;
    else
      cv->inflight = m->next;
    if (cv->inflight_tail == m)
      cv->inflight_tail = prev;
    cv->ninflight--;
    m->next = NULL;
    return;
  }
}

static void attach_tls(smtpuv__conv *cv, smtpuv__msg *m) {
  if (cv->tls_summary != NULL && m->tls == 0)
    m->tls = smtpuv__msg_str(MEM(cv), m, cv->tls_summary,
                             strlen(cv->tls_summary));
}

void smtpuv__txn_finish(smtpuv__conv *cv, smtpuv__msg *m) {
  if (!m->retry)
    attach_tls(cv, m); /* a retry goes out on another connection */
  m->stage = SMTPUV__M_DONE;
  m->next = NULL;
  if (cv->finished_tail != NULL)
    cv->finished_tail->next = m;
  else
    cv->finished = m;
  cv->finished_tail = m;
}

/* Every in-flight message ends because the connection does. */
void smtpuv__txn_fail_inflight(smtpuv__conv *cv, int err, const char *text,
                               const smtpuv_reply *reply) {
  while (cv->inflight != NULL) {
    smtpuv__msg *m = cv->inflight;
    smtpuv__txn_remove(cv, m);
    if (m->decided) {
      smtpuv__txn_finish(cv, m);
      continue;
    }
    if (m->stage == SMTPUV__M_DOT && cv->out_handed >= m->dot_mark) {
      smtpuv__msg_decide(MEM(cv), m, SMTPUV_SEND_UNKNOWN, err, msg_phase(m),
                         reply,
                         "%s after the end of the message was sent: it may "
                         "or may not have been accepted",
                         text);
      smtpuv__txn_finish(cv, m);
      continue;
    }
    if (!cv->closing && m->reused && m->attempts < 2 &&
        (err == SMTPUV_ECONNLOST || err == SMTPUV_EIO) &&
        smtpuv__msg_rewind(m)) {
      smtpuv__trace_info(cv, "retrying the message on a new connection");
      smtpuv__msg_reset(m);
      m->retry = 1;
      smtpuv__txn_finish(cv, m);
      continue;
    }
    smtpuv_phase ph = msg_phase(m);
    if (ph == SMTPUV_PHASE_END_OF_DATA)
      ph = SMTPUV_PHASE_DATA; /* the "." never left */
    smtpuv__msg_decide(MEM(cv), m, SMTPUV_SEND_FAILED, err, ph, reply, "%s",
                       text);
    smtpuv__txn_finish(cv, m);
  }
}

void smtpuv__txn_end_inflight(smtpuv__conv *cv, smtpuv_send_status st,
                              int err, int unknown_after_dot,
                              const char *text) {
  while (cv->inflight != NULL) {
    smtpuv__msg *m = cv->inflight;
    smtpuv__txn_remove(cv, m);
    if (!m->decided) {
      if (unknown_after_dot && m->stage == SMTPUV__M_DOT &&
          cv->out_handed >= m->dot_mark)
        smtpuv__msg_decide(MEM(cv), m, SMTPUV_SEND_UNKNOWN, err, msg_phase(m),
                           NULL,
                           "%s after the end of the message was sent: it may "
                           "or may not have been accepted",
                           text);
      else
        smtpuv__msg_decide(MEM(cv), m, st, err, msg_phase(m), NULL, "%s",
                           text);
    }
    smtpuv__txn_finish(cv, m);
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
static void local_fail(smtpuv__conv *cv, smtpuv__msg *m, int err,
                       smtpuv_phase phase, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;
static void local_fail(smtpuv__conv *cv, smtpuv__msg *m, int err,
                       smtpuv_phase phase, const char *fmt, ...) {
  char text[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  smtpuv__msg_decide(MEM(cv), m, SMTPUV_SEND_FAILED, err, phase, NULL, "%s",
                     text);
  cv->pump_len = 0; /* what a stream's source gave before MAIL */
  smtpuv__txn_finish(cv, m);
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

static int issue_rcpt(smtpuv__conv *cv, smtpuv__msg *m) {
  smtpuv__rcpt *rc = &m->rcpts[m->next_rcpt];
  size_t before = smtpuv_proto_pending_output(cv->proto);
  int err = smtpuv_proto_rcpt(cv->proto, rc->address, rc->params);
  if (err != 0)
    return err;
  smtpuv__trace_out(cv, before, SMTPUV__TR_CMD);
  m->next_rcpt++;
  m->expect++;
  return 0;
}

static int issue_data(smtpuv__conv *cv, smtpuv__msg *m) {
  m->data_issued = 1;
  if (m->bdat) {
    m->stage = SMTPUV__M_BODY;
    cv->progress_clock = cv->now;
    return 0;
  }
  size_t before = smtpuv_proto_pending_output(cv->proto);
  int err = smtpuv_proto_data(cv->proto);
  if (err != 0)
    return err;
  smtpuv__trace_out(cv, before, SMTPUV__TR_CMD);
  m->expect++;
  return 0;
}

/* The transaction of `m` failed before its end: RSET before the next MAIL,
   unless one was already pipelined behind it. */
static void need_rset(smtpuv__conv *cv, smtpuv__msg *m) {
  if (!m->rset_after)
    cv->rset_needed = 1;
}

/* A command of an in-flight message could not be issued (local refusal
   after MAIL was written): the transaction is abandoned with RSET. */
static void envelope_abort(smtpuv__conv *cv, smtpuv__msg *m, int err,
                           smtpuv_phase phase, const char *what) {
  smtpuv__msg_decide(MEM(cv), m, SMTPUV_SEND_FAILED, err, phase, NULL,
                     "%s: %s", what, smtpuv_strerror(err));
  need_rset(cv, m);
  smtpuv__txn_check_done(cv, m);
}

static void start_message(smtpuv__conv *cv, smtpuv__msg *m) {
  unsigned ext = smtpuv_proto_extensions(cv->proto);
  m->attempts++;
  /* a connection that carried a message before: the server may have
     closed it meanwhile (see the retry rule) */
  m->reused = cv->messages_issued > 0;
  if (smtpuv__conv_tls_required(cv) && !cv->tls_up) {
    local_fail(cv, m, SMTPUV_ENOTLS, SMTPUV_PHASE_MAIL,
               "TLS is required and not established");
    return;
  }
  smtpuv_mail_params mp = m->mail_params;
  int chunking = cv->cfg.chunking && (ext & SMTPUV_EXT_CHUNKING);
  const smtpuv_body *b = &m->body;
  int binary_ok = chunking && (ext & SMTPUV_EXT_BINARYMIME);
  int binary = 0, eight = 0;
  if (b->read == NULL) {
    /* a buffer is judged whole, before anything is written */
    if (mp.body != SMTPUV_BODY_BINARYMIME)
      binary = body_scan(m, SMTPUV__SCAN_BINARY);
    if (mp.body == SMTPUV_BODY_UNSPECIFIED && !binary)
      eight = body_scan(m, SMTPUV__SCAN_8BIT);
  } else {
    /* a stream by what it shows before MAIL (its first chunk, when the
       source has one ready); the rest is checked as it flows */
    int rc = smtpuv__pump_prefetch(cv, m, &binary, &eight);
    if (rc != 0) {
      local_fail(cv, m, rc, SMTPUV_PHASE_MAIL, "%s",
                 rc == SMTPUV_ENOMEM ? "out of memory"
                                     : "the message body source failed");
      return;
    }
    if (mp.body == SMTPUV_BODY_BINARYMIME)
      binary = 0;
    if (b->flags & SMTPUV_BODY_8BIT)
      eight = eight || (ext & SMTPUV_EXT_8BITMIME);
  }
  if (binary) {
    if (!binary_ok || mp.body != SMTPUV_BODY_UNSPECIFIED) {
      local_fail(cv, m, SMTPUV_EBINARY, SMTPUV_PHASE_MAIL,
                 "the message holds NUL bytes or lines over 998 octets%s",
                 mp.body != SMTPUV_BODY_UNSPECIFIED
                     ? " and its envelope declares another BODY type"
                 : cv->cfg.chunking
                     ? " and the server does not offer BINARYMIME with "
                       "CHUNKING"
                     : " and needs BINARYMIME with CHUNKING, which is "
                       "switched off");
      return;
    }
    mp.body = SMTPUV_BODY_BINARYMIME;
  } else if (eight && mp.body == SMTPUV_BODY_UNSPECIFIED) {
    if (!(ext & SMTPUV_EXT_8BITMIME)) {
      local_fail(cv, m, SMTPUV_E8BIT, SMTPUV_PHASE_MAIL,
                 "the message has 8-bit content and the server does not "
                 "offer 8BITMIME");
      return;
    }
    mp.body = SMTPUV_BODY_8BITMIME;
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
    local_fail(cv, m, SMTPUV_ENOEXT, SMTPUV_PHASE_MAIL,
               "BODY=BINARYMIME needs CHUNKING, which is %s",
               cv->cfg.chunking ? "not offered by the server" : "switched off");
    return;
  }
  m->bdat = chunking;
  m->body_type = mp.body;
  for (size_t i = 0; i < m->nrcpts; i++) {
    if (!is_ascii(m->rcpts[i].address)) {
      if (!(ext & SMTPUV_EXT_SMTPUTF8)) {
        local_fail(cv, m, SMTPUV_ENOEXT, SMTPUV_PHASE_RCPT,
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
      local_fail(cv, m, SMTPUV_ENOEXT, SMTPUV_PHASE_MAIL,
                 "DSN parameters were given and the server does not offer "
                 "DSN");
      return;
    }
  }
  size_t before = smtpuv_proto_pending_output(cv->proto);
  int rc = smtpuv_proto_mail(cv->proto, m->sender, &mp);
  if (rc != 0) {
    local_fail(cv, m, rc, SMTPUV_PHASE_MAIL, "MAIL FROM:<%s>: %s", m->sender,
               smtpuv_strerror(rc));
    return;
  }
  smtpuv__trace_out(cv, before, SMTPUV__TR_CMD);
  cv->messages_issued++; /* MAIL is out: local refusals do not count */
  m->stage = SMTPUV__M_ENVELOPE;
  m->expect = 1;
  m->next = NULL;
  if (cv->inflight_tail != NULL)
    cv->inflight_tail->next = m;
  else
    cv->inflight = m;
  cv->inflight_tail = m;
  cv->ninflight++;
  m->pipelined = (ext & SMTPUV_EXT_PIPELINING) && cv->cfg.pipelining;
  if (!m->pipelined)
    return;
  while (m->next_rcpt < m->nrcpts) {
    rc = issue_rcpt(cv, m);
    if (rc != 0) {
      envelope_abort(cv, m, rc, SMTPUV_PHASE_RCPT, "RCPT");
      return;
    }
  }
  if (!cv->cfg.require_all) {
    rc = issue_data(cv, m);
    if (rc != 0)
      envelope_abort(cv, m, rc, SMTPUV_PHASE_DATA, "DATA");
  }
}

/* All RCPT replies are in and DATA was not issued yet. */
static void after_rcpts(smtpuv__conv *cv, smtpuv__msg *m,
                        const smtpuv_reply *last) {
  if (m->mail_failed || m->decided)
    return;
  if (m->naccepted == 0 ||
      (cv->cfg.require_all && m->naccepted < m->nrcpts)) {
    size_t i = 0;
    while (i + 1 < m->nrcpts && m->rcpts[i].accepted)
      i++;
    /* copy: deciding may move the arena */
    char why[320];
    const char *t = m->rcpts[i].text ? m->arena + m->rcpts[i].text : "";
    const char *nl = strchr(t, '\n');
    int tl = nl != NULL ? (int)(nl - t) : (int)strlen(t);
    snprintf(why, sizeof why, "%.*s", tl > 300 ? 300 : tl, t);
    smtpuv__msg_decide(MEM(cv), m, SMTPUV_SEND_FAILED, SMTPUV_ENORCPT,
                       SMTPUV_PHASE_RCPT, last, "%s: RCPT TO:<%s>: %d %s",
                       m->naccepted == 0 ? "no recipient accepted"
                                         : "a recipient was refused",
                       m->rcpts[i].address, m->rcpts[i].code, why);
    need_rset(cv, m);
    return;
  }
  int rc = issue_data(cv, m);
  if (rc != 0)
    envelope_abort(cv, m, rc, SMTPUV_PHASE_DATA, "DATA");
}

/* The refusal of a transaction whose MAIL or every RCPT failed. */
static int txn_refused(smtpuv__conv *cv, smtpuv__msg *m,
                       const smtpuv_reply *r) {
  if (m->decided)
    return 1;
  if (m->mail_failed)
    return 1;
  if (m->rcpt_replies == m->nrcpts && m->naccepted == 0) {
    after_rcpts(cv, m, r);
    return 1;
  }
  return 0;
}

void smtpuv__txn_check_done(smtpuv__conv *cv, smtpuv__msg *m) {
  /* DONE: finished already (envelope_abort() from inside a reply, then the
     reply's own check) */
  if (!m->decided || m->expect > 0 || m->stage == SMTPUV__M_DONE)
    return;
  if (m->stage == SMTPUV__M_BODY && m->bdat) {
    /* chunks were sent without LAST: end the transaction */
    need_rset(cv, m);
  }
  smtpuv__txn_remove(cv, m);
  smtpuv__txn_finish(cv, m);
}

static smtpuv__msg *route(smtpuv__conv *cv) {
  for (smtpuv__msg *m = cv->inflight; m != NULL; m = m->next)
    if (m->expect > 0)
      return m;
  return NULL;
}

void smtpuv__txn_reply(smtpuv__conv *cv, const smtpuv_reply *r) {
  smtpuv__msg *m = route(cv);
  if (m == NULL) {
    smtpuv__conv_fail(cv, SMTPUV_EPROTO, NULL, 0, "unexpected reply to %s",
                      smtpuv_cmd_name(r->command));
    return;
  }
  m->expect--;
  int fl = smtpuv__conv_first_line_len(r);
  switch (r->command) {
  case SMTPUV_CMD_MAIL:
    if (r->positive) {
      m->mail_ok = 1;
      if (!m->pipelined && m->next_rcpt < m->nrcpts) {
        int rc = issue_rcpt(cv, m);
        if (rc != 0)
          envelope_abort(cv, m, rc, SMTPUV_PHASE_RCPT, "RCPT");
      }
    } else {
      m->mail_failed = 1;
      smtpuv__msg_decide(MEM(cv), m, SMTPUV_SEND_FAILED,
                         smtpuv__conv_reply_err(r->code), SMTPUV_PHASE_MAIL,
                         r, "MAIL FROM:<%s>: %d %.*s", m->sender, r->code, fl,
                         r->text);
      need_rset(cv, m);
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
      rc->text = smtpuv__msg_str(MEM(cv), m, r->text, r->text_len);
      if (r->positive)
        m->naccepted++;
    }
    m->rcpt_replies++;
    if (m->rcpt_replies < m->nrcpts) {
      if (!m->pipelined) {
        int err = issue_rcpt(cv, m);
        if (err != 0)
          envelope_abort(cv, m, err, SMTPUV_PHASE_RCPT, "RCPT");
      }
    } else if (!m->data_issued) {
      after_rcpts(cv, m, r);
    } else if (m->bdat && (m->mail_failed || m->naccepted == 0)) {
      /* pipelined BDAT for a dead transaction: stop sending chunks */
      after_rcpts(cv, m, r);
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
        txn_refused(cv, m, r);
      } else {
        m->stage = SMTPUV__M_BODY;
        cv->progress_clock = cv->now; /* DATA: the body write from now */
      }
    } else {
      if (!txn_refused(cv, m, r))
        smtpuv__msg_decide_reply(MEM(cv), m, SMTPUV_SEND_FAILED,
                                 smtpuv__conv_reply_err(r->code),
                                 SMTPUV_PHASE_DATA, r, "DATA");
      need_rset(cv, m);
    }
    break;
  case SMTPUV_CMD_DATA_END:
  case SMTPUV_CMD_BDAT:
    if (r->command == SMTPUV_CMD_BDAT && !r->last) {
      if (!r->positive) {
        if (!txn_refused(cv, m, r))
          smtpuv__msg_decide_reply(MEM(cv), m, SMTPUV_SEND_FAILED,
                                   smtpuv__conv_reply_err(r->code),
                                   SMTPUV_PHASE_DATA, r, "BDAT");
        m->bdat_abort = 1;
      }
      break;
    }
    if (m->decided || (r->flags & SMTPUV_REPLY_EMPTY_DATA))
      break;
    if (r->positive && !(r->flags & SMTPUV_REPLY_TXN_FAILED) &&
        m->naccepted > 0) {
      smtpuv__msg_decide_reply(MEM(cv), m, SMTPUV_SEND_SENT,
                               m->naccepted < m->nrcpts ? SMTPUV_ENORCPT : 0,
                               SMTPUV_PHASE_END_OF_DATA, r, NULL);
    } else if (!txn_refused(cv, m, r)) {
      smtpuv__msg_decide_reply(MEM(cv), m, SMTPUV_SEND_FAILED,
                               r->positive ? SMTPUV_EPROTO
                                           : smtpuv__conv_reply_err(r->code),
                               SMTPUV_PHASE_END_OF_DATA, r, "end of data");
    }
    break;
  default:
    break;
  }
  if (cv->state != SMTPUV__CV_ENDED)
    smtpuv__txn_check_done(cv, m);
}

/* ---- scheduling ------------------------------------------------------------------ */

int smtpuv__txn_dot_waiting(const smtpuv__conv *cv) {
  for (const smtpuv__msg *m = cv->inflight; m != NULL; m = m->next)
    if (m->stage == SMTPUV__M_DOT && m->expect > 0)
      return 1;
  return 0;
}

void smtpuv__txn_rset(smtpuv__conv *cv) {
  if (!cv->rset_needed || cv->ninflight > 0 || cv->doomed ||
      cv->state != SMTPUV__CV_READY)
    return;
  size_t before = smtpuv_proto_pending_output(cv->proto);
  int rc = smtpuv_proto_rset(cv->proto);
  if (rc == SMTPUV_EBUSY)
    return; /* without pipelining: after the replies still due */
  if (rc != 0) {
    cv->doomed = 1;
    cv->doomed_err = rc;
    return;
  }
  smtpuv__trace_out(cv, before, SMTPUV__TR_CMD);
  cv->rset_needed = 0;
  cv->rset_pending++;
}

void smtpuv__txn_start(smtpuv__conv *cv, smtpuv__msg *m) {
  smtpuv__txn_rset(cv);
  smtpuv__msg *tail = cv->inflight_tail;
  if (tail != NULL && tail->bdat && !tail->rset_after &&
      !(tail->mail_ok && tail->rcpt_replies == tail->nrcpts &&
        tail->naccepted > 0)) {
    /* After BDAT LAST a server may keep a transaction whose MAIL or every
       RCPT failed open (as after a refused DATA): an RSET pipelined in
       front of the next MAIL closes it either way and costs no round
       trip. */
    size_t before = smtpuv_proto_pending_output(cv->proto);
    if (smtpuv_proto_rset(cv->proto) == 0) {
      smtpuv__trace_out(cv, before, SMTPUV__TR_CMD);
      cv->rset_pending++;
      tail->rset_after = 1;
    }
  }
  start_message(cv, m);
}

/* SPDX-License-Identifier: MIT */
/* The conversation of one connection: life, events, actions, reply
 * routing, ending (QUIT, the server's 421, failures) and the timeout rule.
 *
 * Every event ends in advance(): the body is pumped, an RSET owed is
 * written, a doomed connection is abandoned, a closing one QUITs, and the
 * reply clock starts when a reply becomes awaited. The transport then reads
 * the actions. Nothing here calls the transport.
 *
 * TLS-required guard: nothing but EHLO and STARTTLS is written before the
 * handshake succeeded; setup.c (AUTH) and transaction.c (MAIL) check it
 * again where those commands would be written.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "conv/conv_int.h"

static void advance(smtpuv__conv *cv);

/* ---- small helpers ---------------------------------------------------------- */

int smtpuv__conv_tls_required(const smtpuv__conv *cv) {
  return cv->cfg.tls == SMTPUV_TLS_REQUIRED ||
         cv->cfg.tls == SMTPUV_TLS_IMPLICIT;
}

int smtpuv__conv_reply_err(int code) {
  if (code == 421)
    return SMTPUV_ESHUTDOWN;
  if (code >= 400 && code < 500)
    return SMTPUV_ETEMPFAIL;
  if (code >= 500 && code < 600)
    return SMTPUV_EPERMFAIL;
  return SMTPUV_EPROTO;
}

int smtpuv__conv_first_line_len(const smtpuv_reply *r) {
  const char *nl = memchr(r->text, '\n', r->text_len);
  size_t n = nl != NULL ? (size_t)(nl - r->text) : r->text_len;
  return n > 300 ? 300 : (int)n;
}

unsigned smtpuv__conv_timeout(const smtpuv__conv *cv, smtpuv_timeout which) {
  return (unsigned)which < SMTPUV__NTIMEOUTS ? cv->cfg.timeouts[which] : 0;
}

smtpuv_phase smtpuv__conv_setup_phase(const smtpuv__conv *cv) {
  switch (cv->state) {
  case SMTPUV__CV_CONNECTING:
    return SMTPUV_PHASE_CONNECT;
  case SMTPUV__CV_TLS_IMPLICIT:
  case SMTPUV__CV_STARTTLS:
  case SMTPUV__CV_TLS_STARTTLS:
    return SMTPUV_PHASE_TLS;
  case SMTPUV__CV_GREETING:
    return SMTPUV_PHASE_GREETING;
  case SMTPUV__CV_EHLO:
  case SMTPUV__CV_HELO:
    return SMTPUV_PHASE_EHLO;
  case SMTPUV__CV_AUTH:
    return SMTPUV_PHASE_AUTH;
  default:
    return SMTPUV_PHASE_QUIT;
  }
}

int smtpuv__conv_in_setup(const smtpuv__conv *cv) {
  return cv->state < SMTPUV__CV_READY;
}

void smtpuv__conv_reply_clock(smtpuv__conv *cv) { cv->reply_clock = cv->now; }

/* ---- life --------------------------------------------------------------------- */

int smtpuv__conv_new(const smtpuv_mem *mem, const smtpuv__conv_config *cfg,
                     smtpuv__conv **out) {
  if (out == NULL)
    return SMTPUV_EINVAL;
  *out = NULL;
  if (cfg == NULL)
    return SMTPUV_EINVAL;
  if (mem == NULL)
    mem = smtpuv_mem_default();
  size_t elen = cfg->ehlo_name != NULL ? strlen(cfg->ehlo_name) : 0;
  smtpuv__conv *cv = smtpuv__calloc(mem, 1, sizeof *cv);
  if (cv == NULL)
    return SMTPUV_ENOMEM;
  cv->mem = *mem;
  cv->cfg = *cfg;
  if (elen >= sizeof cv->ehlo)
    elen = 0; /* not a valid name: the address literal */
  memcpy(cv->ehlo, cfg->ehlo_name != NULL ? cfg->ehlo_name : "", elen);
  cv->ehlo[elen] = '\0';
  cv->cfg.ehlo_name = cv->ehlo;
  if (cv->cfg.max_inflight == 0)
    cv->cfg.max_inflight = 2;
  int rc = smtpuv_proto_new(&cv->mem, &cv->proto);
  if (rc != 0) {
    smtpuv__free(&cv->mem, cv);
    return rc;
  }
  smtpuv_proto_set_pipelining(cv->proto, cfg->pipelining);
  memcpy(cv->literal, "[127.0.0.1]", sizeof "[127.0.0.1]");
  cv->state = SMTPUV__CV_CONNECTING;
  *out = cv;
  return 0;
}

static void free_list(smtpuv__conv *cv, smtpuv__msg *m) {
  while (m != NULL) {
    smtpuv__msg *next = m->next;
    smtpuv__msg_free(&cv->mem, m);
    m = next;
  }
}

void smtpuv__conv_free(smtpuv__conv *cv) {
  if (cv == NULL)
    return;
  free_list(cv, cv->inflight);
  free_list(cv, cv->finished);
  smtpuv_auth_session_free(cv->auth);
  smtpuv_proto_free(cv->proto);
  smtpuv__free(&cv->mem, cv->tls_summary);
  smtpuv__free(&cv->mem, cv->pump_buf);
  smtpuv__free(&cv->mem, cv->fail_text);
  smtpuv__setup_free(cv);
  smtpuv__free(&cv->mem, cv);
}

/* ---- ending --------------------------------------------------------------------- */

/* End the conversation; whatever is still in flight ends with it. */
static void end_with(smtpuv__conv *cv, int kind, int err) {
  if (cv->state == SMTPUV__CV_ENDED)
    return;
  if (cv->inflight != NULL)
    smtpuv__txn_fail_inflight(cv, err != 0 ? err : SMTPUV_ECONNLOST,
                              "the connection was closed", NULL);
  cv->state = SMTPUV__CV_ENDED;
  cv->end = kind;
  cv->end_err = err;
  cv->start_tls = 0;
  cv->want_tls = 0;
}

void smtpuv__conv_finish(smtpuv__conv *cv) {
  end_with(cv, SMTPUV__CONV_FINISH, 0);
}

void smtpuv__conv_abandon(smtpuv__conv *cv, int err) {
  end_with(cv, SMTPUV__CONV_ABORT, err);
}

void smtpuv__conv_fail_setup(smtpuv__conv *cv, int err, smtpuv_phase phase,
                             const smtpuv_reply *reply, const char *text) {
  if (cv->failed)
    return; /* the first failure tells what happened */
  cv->failed = 1;
  cv->fail_err = err;
  cv->fail_phase = phase;
  snprintf(cv->fail_message, sizeof cv->fail_message, "%s", text);
  if (reply != NULL) {
    cv->fail_code = reply->code;
    memcpy(cv->fail_enhanced, reply->enhanced, sizeof cv->fail_enhanced);
    cv->fail_enhanced[sizeof cv->fail_enhanced - 1] = '\0';
    cv->fail_text = smtpuv__strndup(&cv->mem, reply->text, reply->text_len);
  }
}

void smtpuv__conv_quit(smtpuv__conv *cv) {
  if (cv->state == SMTPUV__CV_ENDED || cv->state == SMTPUV__CV_QUIT)
    return;
  smtpuv_state st = smtpuv_proto_state(cv->proto);
  if (st == SMTPUV_STATE_FINISHED || st == SMTPUV_STATE_DATA ||
      st == SMTPUV_STATE_GREETING_EXPECTED || cv->start_tls ||
      cv->state == SMTPUV__CV_TLS_IMPLICIT ||
      cv->state == SMTPUV__CV_TLS_STARTTLS ||
      cv->state == SMTPUV__CV_CONNECTING) {
    smtpuv__conv_finish(cv);
    return;
  }
  size_t before = smtpuv_proto_pending_output(cv->proto);
  if (smtpuv_proto_quit(cv->proto) != 0) {
    smtpuv__conv_finish(cv);
    return;
  }
  smtpuv__trace_out(cv, before, SMTPUV__TR_CMD);
  cv->state = SMTPUV__CV_QUIT;
  cv->quit_clock = cv->now;
}

static void vfail(smtpuv__conv *cv, int err, const smtpuv_reply *reply,
                  int finish, const char *fmt, va_list ap) {
  if (cv->state == SMTPUV__CV_ENDED)
    return;
  if (cv->state == SMTPUV__CV_QUIT) {
    /* the server closed after (or instead of) its 221: fine */
    smtpuv__conv_finish(cv);
    return;
  }
  char text[512];
  vsnprintf(text, sizeof text, fmt, ap);
  smtpuv__trace_info(cv, "error: %s", text);
  if (smtpuv__conv_in_setup(cv))
    smtpuv__conv_fail_setup(cv, err, smtpuv__conv_setup_phase(cv), reply,
                            text);
  else
    smtpuv__txn_fail_inflight(cv, err, text, reply);
  if (finish)
    smtpuv__conv_finish(cv);
  else
    smtpuv__conv_abandon(cv, err);
}

void smtpuv__conv_fail(smtpuv__conv *cv, int err, const smtpuv_reply *reply,
                       int finish, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfail(cv, err, reply, finish, fmt, ap);
  va_end(ap);
}

void smtpuv__conv_server_closing(smtpuv__conv *cv, const smtpuv_reply *r) {
  smtpuv__conv_fail(cv, SMTPUV_ESHUTDOWN, r, 1,
                    "the server is closing the connection: %d %.*s", r->code,
                    smtpuv__conv_first_line_len(r), r->text);
}

/* ---- replies ------------------------------------------------------------------------ */

static void on_reply(smtpuv__conv *cv, const smtpuv_reply *r) {
  switch (r->command) {
  case SMTPUV_CMD_NONE: /* unsolicited: 421 */
    smtpuv__conv_server_closing(cv, r);
    return;
  case SMTPUV_CMD_GREETING:
  case SMTPUV_CMD_EHLO:
  case SMTPUV_CMD_HELO:
  case SMTPUV_CMD_STARTTLS:
  case SMTPUV_CMD_AUTH:
    smtpuv__setup_reply(cv, r);
    return;
  case SMTPUV_CMD_RSET:
    if (cv->rset_pending > 0)
      cv->rset_pending--;
    if (r->code == 421)
      smtpuv__conv_server_closing(cv, r);
    return;
  case SMTPUV_CMD_QUIT:
    smtpuv__conv_finish(cv);
    return;
  case SMTPUV_CMD_MAIL:
  case SMTPUV_CMD_RCPT:
  case SMTPUV_CMD_DATA:
  case SMTPUV_CMD_DATA_END:
  case SMTPUV_CMD_BDAT:
    smtpuv__txn_reply(cv, r);
    if (r->code == 421 && cv->state != SMTPUV__CV_ENDED)
      smtpuv__conv_server_closing(cv, r);
    return;
  default:
    return;
  }
}

static int ended(const smtpuv__conv *cv) {
  return cv->state == SMTPUV__CV_ENDED;
}

void smtpuv__conv_received(smtpuv__conv *cv, const void *buf, size_t len) {
  if (ended(cv) || len == 0)
    return;
  cv->in_event++;
  smtpuv__trace_in(cv, buf, len);
  if (cv->state == SMTPUV__CV_TLS_IMPLICIT) {
    /* nothing can come through TLS before its handshake (as after
       STARTTLS's 220, where the core refuses it) */
    smtpuv__conv_fail(cv, SMTPUV_EPROTO, NULL, 0,
                      "the server sent data before the TLS handshake");
    advance(cv);
    cv->in_event--;
    return;
  }
  int frc = smtpuv_proto_feed(cv->proto, buf, len);
  /* Replies completed before a violation in the same bytes are popped
     first (a "250 queued" followed by junk still counts); next_reply()
     reports the sticky error once they are out. */
  int rc = 0;
  smtpuv_reply r;
  if (frc == 0 || frc == SMTPUV_EPROTO || frc == SMTPUV_EINJECT) {
    while (!ended(cv) && !cv->want_tls) {
      rc = smtpuv_proto_next_reply(cv->proto, &r);
      if (rc != 1)
        break;
      on_reply(cv, &r);
      /* the next reply is awaited from now, or from when its command is
         written if it is still in the output */
      cv->reply_clock = cv->now;
      cv->clock_on_write = smtpuv__conv_unwritten(cv) > 0;
      rc = 0;
    }
  }
  if (!ended(cv)) {
    if (rc == 0 && frc < 0)
      rc = frc;
    if (cv->want_tls && rc == 0) {
      /* nothing may follow STARTTLS's 220 in plaintext */
      rc = smtpuv_proto_next_reply(cv->proto, &r);
      if (rc == 1)
        rc = SMTPUV_EINJECT;
    }
    if (rc < 0) {
      const char *why = smtpuv_proto_error_text(cv->proto);
      if (rc == SMTPUV_EINJECT)
        smtpuv__conv_fail(cv, rc, NULL, 0,
                          "STARTTLS: the server sent data after its 220 "
                          "(response injection)%s%s",
                          why[0] ? ": " : "", why);
      else if (rc == SMTPUV_EPROTO)
        smtpuv__conv_fail(cv, rc, NULL, 0, "protocol error: %s",
                          why[0] ? why : "malformed reply");
      else
        smtpuv__conv_fail(cv, rc, NULL, 0, "%s", smtpuv_strerror(rc));
    } else if (cv->want_tls) {
      cv->want_tls = 0;
      cv->start_tls = 1;
      cv->tls_clock = cv->now;
      smtpuv__trace_info(cv, "starting TLS");
    }
  }
  advance(cv);
  cv->in_event--;
}

/* ---- events ---------------------------------------------------------------------- */

void smtpuv__conv_set_now(smtpuv__conv *cv, uint64_t now_ms) {
  cv->now = now_ms;
}

void smtpuv__conv_connected(smtpuv__conv *cv, const char *local_literal) {
  if (cv->state != SMTPUV__CV_CONNECTING)
    return;
  if (local_literal != NULL && local_literal[0] != '\0') {
    size_t n = strlen(local_literal);
    if (n < sizeof cv->literal)
      memcpy(cv->literal, local_literal, n + 1);
  }
  cv->progress_clock = cv->now;
  if (cv->cfg.tls == SMTPUV_TLS_IMPLICIT) {
    cv->state = SMTPUV__CV_TLS_IMPLICIT;
    cv->start_tls = 1;
    cv->tls_clock = cv->now;
    return;
  }
  cv->state = SMTPUV__CV_GREETING;
  cv->reply_clock = cv->now;
}

void smtpuv__conv_tls_established(smtpuv__conv *cv, const char *summary) {
  if (ended(cv) || cv->tls_up ||
      (cv->state != SMTPUV__CV_TLS_IMPLICIT &&
       cv->state != SMTPUV__CV_TLS_STARTTLS))
    return;
  cv->in_event++;
  cv->start_tls = 0;
  cv->tls_up = 1;
  smtpuv__free(&cv->mem, cv->tls_summary);
  cv->tls_summary =
      summary != NULL ? smtpuv__strdup(&cv->mem, summary) : NULL;
  cv->reply_clock = cv->now;
  smtpuv__setup_tls_up(cv);
  advance(cv);
  cv->in_event--;
}

void smtpuv__conv_handed(smtpuv__conv *cv, size_t n) {
  size_t avail = smtpuv_proto_pending_output(cv->proto) - cv->handed;
  if (n > avail)
    n = avail;
  cv->handed += n;
  cv->out_handed += n;
  if (n > 0)
    cv->progress_clock = cv->now;
}

void smtpuv__conv_written(smtpuv__conv *cv, size_t n) {
  if (n > cv->handed)
    n = cv->handed;
  if (n > 0) {
    smtpuv_proto_consumed(cv->proto, n);
    cv->handed -= n;
  }
  cv->progress_clock = cv->now;
  if (ended(cv))
    return;
  if (cv->clock_on_write && smtpuv__conv_unwritten(cv) == 0) {
    /* the awaited reply's command has just been written whole */
    cv->reply_clock = cv->now;
    cv->clock_on_write = 0;
  }
  cv->in_event++;
  advance(cv);
  cv->in_event--;
}

void smtpuv__conv_transport_failed(smtpuv__conv *cv, int err,
                                   const char *text) {
  if (ended(cv))
    return;
  cv->in_event++;
  smtpuv__conv_fail(cv, err, NULL, 0, "%s",
                    text != NULL && text[0] ? text : smtpuv_strerror(err));
  cv->in_event--;
}

static const char *waiting_for(const smtpuv__conv *cv) {
  switch (cv->state) {
  case SMTPUV__CV_GREETING:
    return "waiting for the greeting";
  case SMTPUV__CV_TLS_IMPLICIT:
  case SMTPUV__CV_TLS_STARTTLS:
    return "during the TLS handshake";
  case SMTPUV__CV_STARTTLS:
    return "waiting for the reply to STARTTLS";
  case SMTPUV__CV_EHLO:
  case SMTPUV__CV_HELO:
    return "waiting for the reply to EHLO";
  case SMTPUV__CV_AUTH:
    return cv->auth_waiting ? "waiting for the OAuth token"
                            : "waiting for the reply to AUTH";
  default:
    if (smtpuv__txn_dot_waiting(cv))
      return "waiting for the reply to the end of data";
    if (smtpuv__pump_in_body(cv))
      return "sending the message";
    return "waiting for a reply";
  }
}

static int is_idle(const smtpuv__conv *cv) {
  return cv->state == SMTPUV__CV_READY && cv->ninflight == 0 &&
         smtpuv_proto_pending_replies(cv->proto) == 0 &&
         smtpuv__conv_unwritten(cv) == 0;
}

void smtpuv__conv_timer(smtpuv__conv *cv) {
  uint64_t at;
  if (ended(cv) || !smtpuv__conv_deadline(cv, &at) || cv->now < at)
    return;
  cv->in_event++;
  if (cv->state == SMTPUV__CV_QUIT) {
    smtpuv__conv_finish(cv);
  } else if (is_idle(cv)) {
    smtpuv__trace_info(cv, "idle: closing the connection");
    smtpuv__conv_quit(cv);
  } else {
    smtpuv__conv_fail(cv, SMTPUV_ETIMEDOUT, NULL, 0, "timed out %s",
                      waiting_for(cv));
  }
  cv->in_event--;
}

int smtpuv__conv_can_take(const smtpuv__conv *cv) {
  if (cv->cfg.mode != SMTPUV__CONV_SEND || cv->state != SMTPUV__CV_READY ||
      cv->closing || cv->doomed)
    return 0;
  if (cv->cfg.max_messages != 0 && cv->messages_issued >= cv->cfg.max_messages)
    return 0;
  if (cv->ninflight >= cv->cfg.max_inflight)
    return 0;
  int pipelining =
      (smtpuv_proto_extensions(cv->proto) & SMTPUV_EXT_PIPELINING) &&
      cv->cfg.pipelining;
  if (!pipelining && smtpuv_proto_pending_replies(cv->proto) > 0)
    return 0;
  if (cv->ninflight > 0 &&
      (!pipelining || cv->inflight_tail->stage != SMTPUV__M_DOT ||
       cv->rset_needed))
    return 0;
  return smtpuv_proto_state(cv->proto) == SMTPUV_STATE_READY;
}

void smtpuv__conv_submit(smtpuv__conv *cv, smtpuv__msg *m) {
  cv->in_event++;
  m->next = NULL;
  if (!smtpuv__conv_can_take(cv)) {
    smtpuv__msg_decide(&cv->mem, m, SMTPUV_SEND_FAILED, SMTPUV_ESTATE,
                       SMTPUV_PHASE_NONE, NULL,
                       "the connection cannot take a message now");
    smtpuv__txn_finish(cv, m);
  } else {
    smtpuv__txn_start(cv, m);
  }
  advance(cv);
  cv->in_event--;
}

void smtpuv__conv_body_ready(smtpuv__conv *cv) {
  if (!cv->body_blocked)
    return;
  cv->body_blocked = 0;
  cv->progress_clock = cv->now;
  cv->in_event++;
  advance(cv);
  cv->in_event--;
}

/* The graceful end, step by step (advance() calls it while closing). */
static void close_step(smtpuv__conv *cv) {
  if (ended(cv) || cv->state == SMTPUV__CV_QUIT)
    return;
  if (smtpuv__conv_in_setup(cv)) {
    smtpuv__conv_finish(cv);
    return;
  }
  if (smtpuv__txn_dot_waiting(cv))
    return; /* let the final replies come */
  if (cv->ninflight > 0) {
    smtpuv__txn_end_inflight(cv, SMTPUV_SEND_CANCELED, SMTPUV_ECANCELED, 0,
                             "canceled: the client was closed");
    smtpuv__conv_abandon(cv, SMTPUV_ECANCELED);
    return;
  }
  /* RFC 5321 4.1.1.10: QUIT before closing, also after a refusal whose
     RSET is still unanswered (without pipelining it must be awaited) */
  if (smtpuv_proto_pending_replies(cv->proto) > 0 &&
      !((smtpuv_proto_extensions(cv->proto) & SMTPUV_EXT_PIPELINING) &&
        cv->cfg.pipelining))
    return;
  smtpuv__conv_quit(cv);
}

void smtpuv__conv_close(smtpuv__conv *cv) {
  if (ended(cv) || cv->closing)
    return;
  cv->in_event++;
  cv->closing = 1;
  advance(cv);
  cv->in_event--;
}

void smtpuv__conv_abort(smtpuv__conv *cv) {
  if (ended(cv))
    return;
  cv->in_event++;
  smtpuv__txn_end_inflight(cv, SMTPUV_SEND_FAILED, SMTPUV_ECANCELED, 1,
                           "aborted: the client was aborted");
  smtpuv__conv_abandon(cv, SMTPUV_ECANCELED);
  cv->in_event--;
}

static void advance(smtpuv__conv *cv) {
  if (ended(cv))
    return;
  if (cv->auth_ready) {
    cv->auth_ready = 0;
    smtpuv__setup_auth_resume(cv);
  }
  if (cv->state == SMTPUV__CV_READY && !ended(cv)) {
    smtpuv__pump(cv);
    smtpuv__txn_rset(cv);
    if (cv->doomed && !smtpuv__txn_dot_waiting(cv) && !ended(cv)) {
      smtpuv__conv_fail(cv, cv->doomed_err, NULL, 0,
                        "the connection had to be abandoned");
      return;
    }
  }
  if (cv->cfg.max_messages != 0 && cv->state == SMTPUV__CV_READY &&
      cv->messages_issued >= cv->cfg.max_messages && cv->ninflight == 0 &&
      !cv->closing) {
    smtpuv__trace_info(cv, "%u messages sent on this connection: closing it",
                       cv->messages_issued);
    cv->closing = 1;
  }
  if (cv->closing)
    close_step(cv);
  if (ended(cv))
    return;
  /* a reply becomes awaited when a command is issued with none pending */
  size_t awaited = smtpuv_proto_pending_replies(cv->proto);
  if (cv->awaited == 0 && awaited > 0) {
    cv->reply_clock = cv->now;
    cv->clock_on_write = smtpuv__conv_unwritten(cv) > 0;
  }
  cv->awaited = awaited;
  /* idle from the moment it became idle */
  int idle = is_idle(cv);
  if (!idle || !cv->was_idle)
    cv->idle_since = cv->now;
  cv->was_idle = idle;
}

/* ---- actions ------------------------------------------------------------------------ */

int smtpuv__conv_outgoing(smtpuv__conv *cv, smtpuv_iov *iov, int max) {
  if (max <= 0)
    return 0;
  int n = smtpuv_proto_outgoing_iov(cv->proto, cv->handed, iov, max);
  return n > 0 ? n : 0;
}

size_t smtpuv__conv_unwritten(const smtpuv__conv *cv) {
  return smtpuv_proto_pending_output(cv->proto);
}

int smtpuv__conv_take_start_tls(smtpuv__conv *cv) {
  if (!cv->start_tls || ended(cv))
    return 0;
  cv->start_tls = 0;
  /* the handshake's deadline starts when the transport starts it */
  cv->tls_clock = cv->now;
  return 1;
}

/* `base` + `ms` in *at; 0 (no deadline) when `ms` is 0. */
static int at_after(uint64_t base, unsigned ms, uint64_t *at) {
  if (ms == 0)
    return 0;
  *at = base + ms;
  return 1;
}

int smtpuv__conv_deadline(const smtpuv__conv *cv, uint64_t *at) {
  unsigned cmd = smtpuv__conv_timeout(cv, SMTPUV_TIMEOUT_COMMAND);
  switch (cv->state) {
  case SMTPUV__CV_CONNECTING:
  case SMTPUV__CV_ENDED:
    return 0; /* connecting is the transport's own deadline */
  case SMTPUV__CV_TLS_IMPLICIT:
    return at_after(cv->tls_clock, cmd, at);
  case SMTPUV__CV_TLS_STARTTLS:
    if (!cv->tls_up && smtpuv_proto_pending_replies(cv->proto) == 0)
      return at_after(cv->tls_clock, cmd, at);
    break;
  case SMTPUV__CV_QUIT:
    return at_after(cv->quit_clock,
                    cmd == 0 || cmd > SMTPUV__CONV_QUIT_WAIT
                        ? SMTPUV__CONV_QUIT_WAIT
                        : cmd,
                    at);
  case SMTPUV__CV_AUTH:
    if (cv->auth_waiting)
      return at_after(cv->reply_clock, cmd, at);
    break;
  default:
    break;
  }
  int body = smtpuv__pump_in_body(cv);
  if (smtpuv__conv_unwritten(cv) > 0 || (body && cv->body_blocked))
    return at_after(cv->progress_clock,
                    body ? smtpuv__conv_timeout(cv, SMTPUV_TIMEOUT_DATA) : cmd,
                    at);
  if (smtpuv_proto_pending_replies(cv->proto) > 0 ||
      cv->state == SMTPUV__CV_GREETING)
    return at_after(cv->reply_clock,
                    smtpuv__txn_dot_waiting(cv)
                        ? smtpuv__conv_timeout(cv, SMTPUV_TIMEOUT_FINAL)
                        : cmd,
                    at);
  if (body)
    return at_after(cv->progress_clock,
                    smtpuv__conv_timeout(cv, SMTPUV_TIMEOUT_DATA), at);
  if (cv->state == SMTPUV__CV_READY)
    return at_after(cv->idle_since,
                    smtpuv__conv_timeout(cv, SMTPUV_TIMEOUT_IDLE), at);
  return 0;
}

smtpuv__conv_end_kind smtpuv__conv_end(const smtpuv__conv *cv, int *err) {
  if (err != NULL)
    *err = cv->end_err;
  return (smtpuv__conv_end_kind)cv->end;
}

smtpuv__msg *smtpuv__conv_pop_finished(smtpuv__conv *cv) {
  smtpuv__msg *m = cv->finished;
  if (m == NULL)
    return NULL;
  cv->finished = m->next;
  if (cv->finished == NULL)
    cv->finished_tail = NULL;
  m->next = NULL;
  return m;
}

int smtpuv__conv_take_failure(smtpuv__conv *cv, smtpuv__conv_failure *f) {
  if (!cv->failed || cv->failure_taken)
    return 0;
  cv->failure_taken = 1;
  f->error = cv->fail_err;
  f->phase = cv->fail_phase;
  f->message = cv->fail_message;
  f->reply_code = cv->fail_code;
  f->reply_enhanced = cv->fail_enhanced;
  f->reply_text = cv->fail_text != NULL ? cv->fail_text : "";
  f->tls = cv->tls_summary;
  return 1;
}

int smtpuv__conv_setup_failed(const smtpuv__conv *cv) { return cv->failed; }

unsigned smtpuv__conv_room(const smtpuv__conv *cv) {
  if (ended(cv) || cv->cfg.mode != SMTPUV__CONV_SEND || cv->closing ||
      cv->doomed || cv->failed || cv->state == SMTPUV__CV_QUIT)
    return 0;
  if (cv->cfg.max_messages != 0 && cv->messages_issued >= cv->cfg.max_messages)
    return 0;
  unsigned depth = cv->cfg.max_inflight;
  if (smtpuv__conv_in_setup(cv))
    return depth; /* what its pipeline will take once it is ready */
  if (!((smtpuv_proto_extensions(cv->proto) & SMTPUV_EXT_PIPELINING) &&
        cv->cfg.pipelining))
    depth = 1;
  return cv->ninflight < depth ? depth - cv->ninflight : 0;
}

unsigned smtpuv__conv_inflight(const smtpuv__conv *cv) {
  return cv->ninflight;
}

int smtpuv__conv_body_blocked(const smtpuv__conv *cv) {
  return cv->body_blocked;
}

const char *smtpuv__conv_tls_summary(const smtpuv__conv *cv) {
  return cv->tls_summary;
}

const smtpuv_proto *smtpuv__conv_proto(const smtpuv__conv *cv) {
  return cv->proto;
}

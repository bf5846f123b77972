/* SPDX-License-Identifier: MIT */
/* The SMTP session over one connection: what conn.c reports for the
 * client's connections comes here. Replies are routed to the setup
 * (setup.c: greeting, EHLO, STARTTLS, AUTH) or to the message they answer
 * (transaction.c: MAIL, RCPT, DATA, BDAT); this file ends connections
 * (QUIT, failures, the server's 421), runs the process loop and keeps the
 * timer.
 *
 * TLS-required guard: nothing but EHLO and STARTTLS is written before the
 * handshake succeeded; start_auth() (setup.c) and start_message()
 * (transaction.c) check it again where AUTH or MAIL would be written.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "uv/session_int.h"

int smtpuv__session_tls_required(const smtpuv_client *c) {
  return c->opts.tls == SMTPUV_TLS_REQUIRED ||
         c->opts.tls == SMTPUV_TLS_IMPLICIT;
}

int smtpuv__session_reply_err(int code) {
  if (code == 421)
    return SMTPUV_ESHUTDOWN;
  if (code >= 400 && code < 500)
    return SMTPUV_ETEMPFAIL;
  if (code >= 500 && code < 600)
    return SMTPUV_EPERMFAIL;
  return SMTPUV_EPROTO;
}

/* First line of a reply text, for one-line messages. */
int smtpuv__session_first_line_len(const smtpuv_reply *r) {
  const char *nl = memchr(r->text, '\n', r->text_len);
  size_t n = nl != NULL ? (size_t)(nl - r->text) : r->text_len;
  return n > 300 ? 300 : (int)n;
}

static smtpuv_phase setup_phase(const smtpuv__conn *cn) {
  switch (cn->state) {
  case SMTPUV__C_RESOLVING:
  case SMTPUV__C_CONNECTING:
    return SMTPUV_PHASE_CONNECT;
  case SMTPUV__C_TLS_IMPLICIT:
  case SMTPUV__C_STARTTLS:
  case SMTPUV__C_TLS_STARTTLS:
    return SMTPUV_PHASE_TLS;
  case SMTPUV__C_GREETING:
    return SMTPUV_PHASE_GREETING;
  case SMTPUV__C_EHLO:
  case SMTPUV__C_HELO:
    return SMTPUV_PHASE_EHLO;
  case SMTPUV__C_AUTH:
    return SMTPUV_PHASE_AUTH;
  case SMTPUV__C_QUIT:
    return SMTPUV_PHASE_QUIT;
  default:
    return SMTPUV_PHASE_NONE;
  }
}

static int in_setup(const smtpuv__conn *cn) {
  return cn->state < SMTPUV__C_READY;
}

/* ---- ending a connection -------------------------------------------------------- */

/* QUIT when the protocol allows it, else just close. */
void smtpuv__session_quit(smtpuv__conn *cn) {
  if (cn->state == SMTPUV__C_DEAD || cn->state == SMTPUV__C_QUIT ||
      cn->state == SMTPUV__C_SHUTDOWN)
    return;
  smtpuv_state st = smtpuv_proto_state(cn->proto);
  if (st == SMTPUV_STATE_FINISHED || st == SMTPUV_STATE_DATA ||
      st == SMTPUV_STATE_GREETING_EXPECTED ||
      (cn->tls != NULL && !cn->tls_up)) {
    smtpuv__conn_finish(cn);
    return;
  }
  size_t before = smtpuv_proto_pending_output(cn->proto);
  if (smtpuv_proto_quit(cn->proto) != 0) {
    smtpuv__conn_finish(cn);
    return;
  }
  smtpuv__trace_out(cn, before, SMTPUV__TR_CMD);
  cn->state = SMTPUV__C_QUIT;
  unsigned t = smtpuv__client_timeout(cn->client, SMTPUV_TIMEOUT_COMMAND);
  smtpuv__conn_timer(cn, t == 0 || t > 10000 ? 10000 : t);
  smtpuv__conn_flush(cn);
}

void smtpuv__session_fail(smtpuv__conn *cn, int err, const char *fmt, ...) {
  if (cn->state == SMTPUV__C_DEAD || cn->state == SMTPUV__C_SHUTDOWN)
    return; /* closing anyway */
  if (cn->state == SMTPUV__C_QUIT) {
    /* the server closed after (or instead of) its 221: fine */
    smtpuv__conn_finish(cn);
    return;
  }
  char text[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  smtpuv__trace_info(cn, "error: %s", text);
  if (in_setup(cn)) {
    smtpuv__client_fail_queue(cn->client, SMTPUV_SEND_FAILED, err,
                              setup_phase(cn), NULL, text, cn->tls_summary);
  } else if (cn->state == SMTPUV__C_READY) {
    smtpuv__txn_fail_inflight(cn, err, text, NULL);
  }
  smtpuv__conn_abort(cn, err);
}

/* The server said 421 (to a command or unsolicited): it is closing. */
void smtpuv__session_server_closing(smtpuv__conn *cn, const smtpuv_reply *r) {
  char text[400];
  snprintf(text, sizeof text, "the server is closing the connection: %d %.*s",
           r->code, smtpuv__session_first_line_len(r), r->text);
  smtpuv__trace_info(cn, "%s", text);
  if (in_setup(cn))
    smtpuv__client_fail_queue(cn->client, SMTPUV_SEND_FAILED,
                              SMTPUV_ESHUTDOWN, setup_phase(cn), r, text,
                              cn->tls_summary);
  else
    smtpuv__txn_fail_inflight(cn, SMTPUV_ESHUTDOWN, text, r);
  smtpuv__conn_finish(cn);
}

static void on_reply(smtpuv__conn *cn, const smtpuv_reply *r) {
  if (r->command == SMTPUV_CMD_NONE) {
    smtpuv__session_server_closing(cn, r);
    return;
  }
  switch (r->command) {
  case SMTPUV_CMD_GREETING:
  case SMTPUV_CMD_EHLO:
  case SMTPUV_CMD_HELO:
  case SMTPUV_CMD_STARTTLS:
  case SMTPUV_CMD_AUTH:
    smtpuv__setup_reply(cn, r);
    return;
  case SMTPUV_CMD_RSET:
    if (cn->rset_pending > 0)
      cn->rset_pending--;
    if (r->code == 421)
      smtpuv__session_server_closing(cn, r);
    return;
  case SMTPUV_CMD_QUIT:
    smtpuv__conn_finish(cn);
    return;
  case SMTPUV_CMD_MAIL:
  case SMTPUV_CMD_RCPT:
  case SMTPUV_CMD_DATA:
  case SMTPUV_CMD_DATA_END:
  case SMTPUV_CMD_BDAT:
    smtpuv__txn_reply(cn, r);
    if (r->code == 421 && cn->state != SMTPUV__C_DEAD)
      smtpuv__session_server_closing(cn, r);
    return;
  default:
    return;
  }
}

void smtpuv__session_data(smtpuv__conn *cn, const char *buf, size_t len) {
  if (cn->state == SMTPUV__C_DEAD)
    return;
  smtpuv__trace_in(cn, buf, len);
  int frc = smtpuv_proto_feed(cn->proto, buf, len);
  /* Replies completed before a violation in the same bytes are popped
     first (a "250 queued" followed by junk still counts); next_reply()
     reports the sticky error once they are out. */
  int rc = 0;
  smtpuv_reply r;
  if (frc == 0 || frc == SMTPUV_EPROTO || frc == SMTPUV_EINJECT) {
    while (cn->state != SMTPUV__C_DEAD && !cn->want_tls) {
      rc = smtpuv_proto_next_reply(cn->proto, &r);
      if (rc != 1)
        break;
      on_reply(cn, &r);
      rc = 0;
    }
  }
  if (cn->state == SMTPUV__C_DEAD)
    return;
  if (rc == 0 && frc < 0)
    rc = frc;
  if (cn->want_tls && rc == 0) {
    /* nothing may follow STARTTLS's 220 in plaintext */
    rc = smtpuv_proto_next_reply(cn->proto, &r);
    if (rc == 1)
      rc = SMTPUV_EINJECT;
  }
  if (rc < 0) {
    const char *why = smtpuv_proto_error_text(cn->proto);
    if (rc == SMTPUV_EINJECT)
      smtpuv__session_fail(cn, rc,
                           "STARTTLS: the server sent data after its 220 "
                           "(response injection)%s%s",
                           why[0] ? ": " : "", why);
    else if (rc == SMTPUV_EPROTO)
      smtpuv__session_fail(cn, rc, "protocol error: %s",
                           why[0] ? why : "malformed reply");
    else
      smtpuv__session_fail(cn, rc, "%s", smtpuv_strerror(rc));
    return;
  }
  if (cn->want_tls) {
    cn->want_tls = 0;
    smtpuv__trace_info(cn, "starting TLS");
    if (smtpuv__conn_start_tls(cn) != 0)
      return;
  }
  smtpuv__session_process(cn);
}

static void rearm(smtpuv__conn *cn) {
  smtpuv_client *c = cn->client;
  unsigned t;
  if (cn->write_err)
    return; /* reading what is left: the short timer stays */
  switch (cn->state) {
  case SMTPUV__C_READY:
    if (cn->ninflight > 0) {
      if (smtpuv__txn_dot_waiting(cn))
        t = smtpuv__client_timeout(c, SMTPUV_TIMEOUT_FINAL);
      else if (cn->inflight_tail->stage == SMTPUV__M_BODY)
        t = smtpuv__client_timeout(c, SMTPUV_TIMEOUT_DATA);
      else
        t = smtpuv__client_timeout(c, SMTPUV_TIMEOUT_COMMAND);
    } else if (smtpuv_proto_pending_replies(cn->proto) > 0) {
      t = smtpuv__client_timeout(c, SMTPUV_TIMEOUT_COMMAND);
    } else {
      t = smtpuv__client_timeout(c, SMTPUV_TIMEOUT_IDLE);
    }
    break;
  case SMTPUV__C_RESOLVING:
  case SMTPUV__C_CONNECTING:
  case SMTPUV__C_QUIT:
  case SMTPUV__C_SHUTDOWN:
  case SMTPUV__C_DEAD:
    return; /* their own timers */
  default:
    t = smtpuv__client_timeout(c, SMTPUV_TIMEOUT_COMMAND);
    break;
  }
  smtpuv__conn_timer(cn, t);
}

void smtpuv__session_close(smtpuv__conn *cn) {
  if (cn->state == SMTPUV__C_DEAD || cn->state == SMTPUV__C_QUIT ||
      cn->state == SMTPUV__C_SHUTDOWN)
    return;
  if (in_setup(cn)) {
    smtpuv__conn_terminate(cn);
    return;
  }
  if (smtpuv__txn_dot_waiting(cn))
    return; /* let the final replies come */
  if (cn->ninflight == 0) {
    smtpuv__session_quit(cn);
    return;
  }
  smtpuv__txn_cancel_inflight(cn);
  smtpuv__conn_terminate(cn);
}

void smtpuv__session_process(smtpuv__conn *cn) {
  if (cn->state == SMTPUV__C_DEAD || cn->in_process)
    return;
  cn->in_process = 1;
  if (cn->client->closing) {
    smtpuv__session_close(cn);
  } else if (cn->state == SMTPUV__C_READY) {
    for (int round = 0;; round++) {
      smtpuv__txn_pump(cn);
      smtpuv__txn_issue(cn);
      if (cn->doomed && !smtpuv__txn_dot_waiting(cn) &&
          cn->state != SMTPUV__C_DEAD) {
        cn->in_process = 0;
        smtpuv__session_fail(cn, cn->doomed_err,
                             "the connection had to be abandoned");
        return;
      }
      if (cn->state != SMTPUV__C_READY || !smtpuv__txn_body_flowing(cn))
        break;
      /* The body stopped at the high-water mark. A flush that the socket
         takes whole completes nothing later (no write callback): pump on
         here, a bounded number of rounds, then yield to the loop. */
      cn->wrote_sync = 0;
      smtpuv__conn_flush(cn);
      if (cn->state == SMTPUV__C_DEAD || cn->writing || cn->wrote_sync == 0)
        break;
      if (round >= 15) {
        smtpuv__client_kick(cn->client); /* dispatch comes back here */
        break;
      }
    }
  }
  if (cn->state != SMTPUV__C_DEAD) {
    smtpuv__conn_flush(cn);
    rearm(cn);
  }
  cn->in_process = 0;
}

/* conn.c's write callback handles SMTPUV__C_SHUTDOWN itself. */
void smtpuv__session_writable(smtpuv__conn *cn) { smtpuv__session_process(cn); }

void smtpuv__session_timeout(smtpuv__conn *cn) {
  smtpuv_client *c = cn->client;
  switch (cn->state) {
  case SMTPUV__C_QUIT:
    smtpuv__conn_terminate(cn);
    return;
  case SMTPUV__C_READY:
    if (cn->ninflight == 0 && smtpuv_proto_pending_replies(cn->proto) == 0) {
      if (c->queue == NULL) {
        smtpuv__trace_info(cn, "idle: closing the connection");
        smtpuv__session_quit(cn);
      }
      return;
    }
    break;
  default:
    break;
  }
  const char *what;
  switch (cn->state) {
  case SMTPUV__C_GREETING:
    what = "waiting for the greeting";
    break;
  case SMTPUV__C_TLS_IMPLICIT:
  case SMTPUV__C_TLS_STARTTLS:
    what = "during the TLS handshake";
    break;
  case SMTPUV__C_STARTTLS:
    what = "waiting for the reply to STARTTLS";
    break;
  case SMTPUV__C_EHLO:
  case SMTPUV__C_HELO:
    what = "waiting for the reply to EHLO";
    break;
  case SMTPUV__C_AUTH:
    what = cn->auth_waiting ? "waiting for the OAuth token"
                            : "waiting for the reply to AUTH";
    break;
  default:
    what = smtpuv__txn_dot_waiting(cn)
               ? "waiting for the reply to the end of data"
           : (cn->inflight_tail != NULL &&
              cn->inflight_tail->stage == SMTPUV__M_BODY)
               ? "sending the message"
               : "waiting for a reply";
    break;
  }
  smtpuv__session_fail(cn, SMTPUV_ETIMEDOUT, "timed out %s", what);
}

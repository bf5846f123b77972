/* SPDX-License-Identifier: MIT */
/*
 * Internal: the parts of the client's session that cross its files.
 *
 *   session.c      conn ops, reply routing, ending a connection, the
 *                  process loop and the timer
 *   setup.c        greeting, EHLO (HELO fallback), STARTTLS, AUTH
 *   transaction.c  messages: MAIL/RCPT/DATA/BDAT, the body, results, RSET
 *
 * The conn ops themselves (smtpuv__session_*) are declared in client_int.h.
 */
#ifndef SMTPUV_SRC_UV_SESSION_INT_H
#define SMTPUV_SRC_UV_SESSION_INT_H

#include "uv/client_int.h"

/* ---- session.c ------------------------------------------------------------ */

/* 1 when the options require TLS (STARTTLS required, or implicit TLS). */
int smtpuv__session_tls_required(const smtpuv_client *c);
/* The SMTPUV_E* for a negative reply code: ESHUTDOWN (421), ETEMPFAIL (4xx),
   EPERMFAIL (5xx), else EPROTO. */
int smtpuv__session_reply_err(int code);
/* Length of the first line of a reply text (at most 300), for one-line
   messages. */
int smtpuv__session_first_line_len(const smtpuv_reply *r);
/* QUIT when the protocol allows it, else just close. */
void smtpuv__session_quit(smtpuv__conn *cn);
/* The server said 421 (to a command or unsolicited): fail what waits on the
   connection and finish it. */
void smtpuv__session_server_closing(smtpuv__conn *cn, const smtpuv_reply *r);

/* ---- setup.c -------------------------------------------------------------- */

/* A reply to the greeting, EHLO, HELO, STARTTLS or AUTH. */
void smtpuv__setup_reply(smtpuv__conn *cn, const smtpuv_reply *r);

/* ---- transaction.c -------------------------------------------------------- */

/* A reply to MAIL, RCPT, DATA, "." or BDAT: routed to the oldest in-flight
   message still expecting one (EPROTO session failure when none does). */
void smtpuv__txn_reply(smtpuv__conn *cn, const smtpuv_reply *r);
/* Every in-flight message ends because the connection does (`reply` may be
   NULL); a message may be requeued for a retry on a new connection. */
void smtpuv__txn_fail_inflight(smtpuv__conn *cn, int err, const char *text,
                               const smtpuv_reply *reply);
/* The client is closing: every in-flight message is canceled. */
void smtpuv__txn_cancel_inflight(smtpuv__conn *cn);
/* 1 when a message waits for the reply to its "." (or BDAT LAST). */
int smtpuv__txn_dot_waiting(const smtpuv__conn *cn);
/* Start queued messages as far as the connection allows. */
void smtpuv__txn_issue(smtpuv__conn *cn);
/* Hand the last message's body to the core up to the high-water mark. */
void smtpuv__txn_pump(smtpuv__conn *cn);
/* The last message's body has more to give (not blocked, not aborted). */
int smtpuv__txn_body_flowing(const smtpuv__conn *cn);

#endif

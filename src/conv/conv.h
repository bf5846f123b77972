/* SPDX-License-Identifier: MIT */
/*
 * Internal: the conversation of ONE connection, sans-io.
 *
 * A conversation owns everything the SMTP session of a connection decides:
 * the greeting, EHLO (HELO fallback), STARTTLS and the second EHLO, the
 * TLS-required guard, AUTH with asynchronous tokens and one refresh, the
 * mail transactions (MAIL/RCPT/DATA/BDAT, pipelined across messages), the
 * body pump and its high-water mark, RSET after refusals, QUIT, the 421
 * rule, per-recipient accounting, the sent / failed / unknown verdicts and
 * which timeout applies. It performs no I/O, reads no clock and includes no
 * libuv or OpenSSL header: the transport (src/uv, or any other event loop)
 * reports events and reads the actions out after each one, like
 * smtpuv_proto and nghttp2's session. Nothing is called back into the
 * transport from inside an event.
 *
 * Events in (each returns nothing; what follows is read from the actions):
 *   smtpuv__conv_set_now()        the transport's clock, before any event
 *   smtpuv__conv_connected()      the stream is up (plaintext)
 *   smtpuv__conv_tls_established() the handshake the conversation asked for
 *                                 completed
 *   smtpuv__conv_received()       plaintext bytes from the server
 *   smtpuv__conv_handed()         bytes of smtpuv__conv_outgoing() given to
 *                                 the transport (write, try_write, SSL_write)
 *   smtpuv__conv_written()        a write completed: bytes acknowledged
 *   smtpuv__conv_timer()          the deadline passed
 *   smtpuv__conv_transport_failed() EOF, reset, read/write/TLS error
 *   smtpuv__conv_submit()         a message for this connection
 *   smtpuv__conv_body_ready()     a streamed body that said SMTPUV_EAGAIN has
 *                                 data
 *   smtpuv__conv_close()          end gracefully (QUIT when possible)
 *   smtpuv__conv_abort()          end now
 *
 * Actions out (read after every event):
 *   smtpuv__conv_outgoing()       bytes to write, as spans, valid until they
 *                                 are written (smtpuv__conv_written())
 *   smtpuv__conv_take_start_tls() 1 once when the TLS handshake must start
 *   smtpuv__conv_deadline()       when smtpuv__conv_timer() is due, or none
 *   smtpuv__conv_end()            RUN, FINISH (close_notify when TLS is up,
 *                                 then close) or ABORT (close now; a pending
 *                                 TLS alert may go first)
 *   smtpuv__conv_pop_finished()   messages whose outcome is known (or that
 *                                 must be retried elsewhere), one at a time
 *   smtpuv__conv_take_failure()   once: why the conversation failed before it
 *                                 could carry messages (the transport fails
 *                                 the messages still queued for it with this)
 *   smtpuv__conv_can_take()       1 when smtpuv__conv_submit() would start a
 *                                 message now
 *
 * Time: the transport passes its monotonic clock in milliseconds with
 * smtpuv__conv_set_now() before every event (libuv: uv_now()). Deadlines are
 * absolute on that clock.
 *
 * Timeout rule (the documented behaviour of smtpuv_timeout):
 *   - COMMAND is a deadline for a whole reply: it starts when the reply
 *     becomes the one awaited (the greeting: when the connection opened;
 *     a command's reply: when the command's bytes were written and every
 *     earlier reply was in) and is never extended by partial bytes;
 *   - FINAL is the same deadline for the reply to the final "." or to
 *     BDAT LAST;
 *   - DATA is the progress of the body write: while output is unwritten (or
 *     a streamed body waits for its source) in the body phase, the deadline
 *     is the last write progress plus DATA;
 *   - the TLS handshake has one COMMAND deadline from its start;
 *   - IDLE: a connection with nothing in flight is closed with QUIT;
 *   - after QUIT, min(COMMAND, 10 s) for the 221.
 *   A timeout of 0 is no deadline.
 */
#ifndef SMTPUV_SRC_CONV_CONV_H
#define SMTPUV_SRC_CONV_CONV_H

#include <stddef.h>
#include <stdint.h>

#include "conv/msg.h"
#include "smtpuv/auth.h"
#include "smtpuv/protocol.h"
#include "smtpuv/send.h"

typedef struct smtpuv__conv smtpuv__conv;

#define SMTPUV__NTIMEOUTS 5

/* What the conversation is for. */
typedef enum smtpuv__conv_mode {
  SMTPUV__CONV_SEND = 0,   /* carry messages */
  SMTPUV__CONV_PROBE,      /* greeting, EHLO, STARTTLS + EHLO, QUIT */
  SMTPUV__CONV_PROBE_AUTH  /* the probe, then AUTH (a credentials check),
                              then QUIT */
} smtpuv__conv_mode;

/* Settings, copied by smtpuv__conv_new() (strings too; `auth` is
   borrowed and must outlive the conversation). */
typedef struct smtpuv__conv_config {
  smtpuv__conv_mode mode;
  smtpuv_tls_mode tls;
  int allow_plain_auth;
  int pipelining;        /* use PIPELINING when offered */
  int chunking;          /* use CHUNKING (BDAT) when offered */
  int require_all;       /* every recipient must be accepted */
  const char *ehlo_name; /* NULL or "": the address literal given to
                            smtpuv__conv_connected() */
  smtpuv_auth *auth;     /* NULL: no AUTH */
  unsigned timeouts[SMTPUV__NTIMEOUTS]; /* smtpuv_timeout, ms; 0: none */
  unsigned max_inflight; /* messages on the wire at once (0: 2) */
  unsigned max_messages; /* messages on this connection, then QUIT once
                            they are done (0: no limit) */
  smtpuv_trace_cb trace; /* may be NULL */
  void *trace_data;
  /* Called when the conversation has work outside of any event: only when
     an OAuth token arrives asynchronously (the authenticator's ready
     callback). The transport then drives the conversation (reads the
     actions). May be NULL when no authenticator answers later. */
  void (*wake)(void *data);
  void *wake_data;
} smtpuv__conv_config;

/* Create. 0, SMTPUV_EINVAL or SMTPUV_ENOMEM. */
int smtpuv__conv_new(const smtpuv_mem *mem, const smtpuv__conv_config *cfg,
                     smtpuv__conv **out);
/* Free. Every submitted message must have been popped (the conversation
   ended: smtpuv__conv_end() != RUN, and smtpuv__conv_pop_finished() gave
   them all); records still inside are freed with it. NULL is accepted. */
void smtpuv__conv_free(smtpuv__conv *cv);

/* ---- events ---------------------------------------------------------------- */

void smtpuv__conv_set_now(smtpuv__conv *cv, uint64_t now_ms);

/* The stream is up. `local_literal`: our end as an address literal
   ("[192.0.2.1]", "[IPv6:::1]"), used as the EHLO name when none was set.
   Implicit TLS: asks for the handshake (smtpuv__conv_take_start_tls()). */
void smtpuv__conv_connected(smtpuv__conv *cv, const char *local_literal);

/* The TLS handshake completed; `summary` describes it ("TLSv1.3 ...;
   subject CN=...", copied, attached to every result of the connection). */
void smtpuv__conv_tls_established(smtpuv__conv *cv, const char *summary);

/* Plaintext from the server (after TLS decryption). */
void smtpuv__conv_received(smtpuv__conv *cv, const void *buf, size_t len);

/* `n` bytes from the front of smtpuv__conv_outgoing() went to the
   transport: they count as sent (a final "." handed over makes a lost
   connection's outcome UNKNOWN) but stay valid until written. */
void smtpuv__conv_handed(smtpuv__conv *cv, size_t n);

/* A write completed: the oldest `n` handed bytes are released (0: progress
   only, e.g. a TLS record of bytes already released). */
void smtpuv__conv_written(smtpuv__conv *cv, size_t n);

/* The deadline of smtpuv__conv_deadline() passed (early calls are
   ignored). */
void smtpuv__conv_timer(smtpuv__conv *cv);

/* The transport failed (`err`: SMTPUV_ECONNLOST, SMTPUV_ETLS, SMTPUV_ECERT,
   SMTPUV_ENOMEM...; `text` the detail, copied). After QUIT this is the
   normal end. */
void smtpuv__conv_transport_failed(smtpuv__conv *cv, int err,
                                   const char *text);

/* Take a message (only when smtpuv__conv_can_take() says 1; otherwise it is
   finished at once as FAILED with SMTPUV_ESTATE). The record stays the
   conversation's until smtpuv__conv_pop_finished() returns it. */
void smtpuv__conv_submit(smtpuv__conv *cv, smtpuv__msg *m);

/* A streamed body that returned SMTPUV_EAGAIN can be read again. */
void smtpuv__conv_body_ready(smtpuv__conv *cv);

/* End gracefully: during setup at once; with final replies awaited, after
   them; then QUIT. Messages on the wire before their final "." are
   CANCELED. */
void smtpuv__conv_close(smtpuv__conv *cv);

/* End now, without QUIT: every message on the wire is FAILED with
   SMTPUV_ECANCELED, or UNKNOWN when its final "." was handed over. */
void smtpuv__conv_abort(smtpuv__conv *cv);

/* ---- actions ----------------------------------------------------------------- */

/* Spans of output not yet handed over (at most `max`), in order. Returns
   the number of spans (0: nothing to write). */
int smtpuv__conv_outgoing(smtpuv__conv *cv, smtpuv_iov *iov, int max);

/* Output not yet written (handed or not). */
size_t smtpuv__conv_unwritten(const smtpuv__conv *cv);

/* 1 exactly once when the transport must start the TLS handshake (then
   report smtpuv__conv_tls_established() or a failure). */
int smtpuv__conv_take_start_tls(smtpuv__conv *cv);

/* 1 when a deadline is set, with its time in *at (on the set_now clock). */
int smtpuv__conv_deadline(const smtpuv__conv *cv, uint64_t *at);

typedef enum smtpuv__conv_end_kind {
  SMTPUV__CONV_RUN = 0, /* keep the connection */
  SMTPUV__CONV_FINISH,  /* write what is left, close_notify, close */
  SMTPUV__CONV_ABORT    /* close now (a failed handshake's alert first) */
} smtpuv__conv_end_kind;

/* What the transport must do with the connection; `err` (may be NULL)
   receives the error of an ABORT. Once not RUN it stays so; every later
   event is ignored. */
smtpuv__conv_end_kind smtpuv__conv_end(const smtpuv__conv *cv, int *err);

/* The next message whose outcome is decided, or NULL. A message with
   `retry` set failed before its final "." on a connection that broke
   and may be sent again on another one (its body can be rewound); its
   progress is reset. */
smtpuv__msg *smtpuv__conv_pop_finished(smtpuv__conv *cv);

/* Why the conversation failed before it could carry messages (setup:
   greeting, EHLO, STARTTLS, TLS, AUTH, or the transport during them). */
typedef struct smtpuv__conv_failure {
  int error;            /* SMTPUV_E* */
  smtpuv_phase phase;
  const char *message;  /* one line for humans */
  int reply_code;       /* the deciding reply, 0 when none */
  const char *reply_enhanced;
  const char *reply_text;
  const char *tls;      /* TLS summary or NULL */
} smtpuv__conv_failure;

/* 1 once after a setup failure, with `*f` pointing into the conversation
   (valid until it is freed); 0 otherwise. */
int smtpuv__conv_take_failure(smtpuv__conv *cv, smtpuv__conv_failure *f);

/* 1 when the conversation failed during its setup (taken or not). */
int smtpuv__conv_setup_failed(const smtpuv__conv *cv);

/* 1 when smtpuv__conv_submit() would start a message now. */
int smtpuv__conv_can_take(const smtpuv__conv *cv);

/* How many more messages the conversation would take: its pipeline's room
   (1 without PIPELINING), a whole pipeline while it is being set up, 0
   when it takes none (failed, closing, limit reached). For a pool's
   decision to open another connection. */
unsigned smtpuv__conv_room(const smtpuv__conv *cv);

/* Messages submitted and not yet popped. */
unsigned smtpuv__conv_inflight(const smtpuv__conv *cv);

/* 1 while the connection is set up (greeting to AUTH). */
int smtpuv__conv_in_setup(const smtpuv__conv *cv);

/* 1 while a streamed body waits for smtpuv__conv_body_ready(). */
int smtpuv__conv_body_blocked(const smtpuv__conv *cv);

/* The TLS summary given to smtpuv__conv_tls_established(), or NULL. */
const char *smtpuv__conv_tls_summary(const smtpuv__conv *cv);

/* The session's core (EHLO extensions, auth mechanisms...), read-only. */
const smtpuv_proto *smtpuv__conv_proto(const smtpuv__conv *cv);

/* Trace a line of transport commentary ("connecting to ...") through the
   configured trace callback (nothing when none). */
void smtpuv__conv_trace_info(smtpuv__conv *cv, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* ---- probe mode --------------------------------------------------------------- */

/* What a probe learnt (SMTPUV__CONV_PROBE, _PROBE_AUTH). Pointers into the
   conversation, valid until it is freed; strings never NULL except
   ext_plain. */
typedef struct smtpuv__conv_probe {
  int error;            /* 0, or what stopped the probe (ENOTLS when TLS is
                           required and not offered: extensions filled) */
  smtpuv_phase phase;   /* where it stopped (QUIT when complete) */
  const char *message;  /* "" when error is 0 */
  int greeting_code;
  const char *greeting;
  const char *server_name;
  const char *ext;       /* the last EHLO reply's lines after the first */
  const char *ext_plain; /* the EHLO reply before STARTTLS, or NULL */
  unsigned ext_flags;
  uint64_t max_size;
  const char *auth_mechanisms;
  int authenticated;     /* PROBE_AUTH: 1 when AUTH succeeded */
  const char *auth_mechanism; /* PROBE_AUTH: the mechanism used, or "" */
} smtpuv__conv_probe;

void smtpuv__conv_probe_result(const smtpuv__conv *cv, smtpuv__conv_probe *r);

#endif

/* SPDX-License-Identifier: MIT */
/*
 * Internal to src/conv: the conversation object and what its files share.
 *
 *   conv.c         life, events, actions, reply routing, ending the
 *                  conversation (QUIT, 421, failures), the timeout rule
 *   setup.c        greeting, EHLO (HELO fallback), STARTTLS, AUTH, probe
 *   transaction.c  messages: MAIL/RCPT/DATA/BDAT, results, RSET
 *   pump.c         the body: buffer or stream into DATA/BDAT, high-water
 *   trace.c        trace records (AUTH payloads redacted)
 *   message.c      message records and their results
 */
#ifndef SMTPUV_SRC_CONV_CONV_INT_H
#define SMTPUV_SRC_CONV_CONV_INT_H

#include "conv/conv.h"
#include "protocol/mem.h"

#define SMTPUV__CONV_PUMP_BUF 65536    /* streamed body chunk */
#define SMTPUV__CONV_BODY_CHUNK 65536  /* buffer body bytes handed at once */
#define SMTPUV__CONV_HIGH_WATER 131072 /* stop pumping above this much
                                          unwritten output */
#define SMTPUV__CONV_QUIT_WAIT 10000   /* most ms to wait for QUIT's 221 */

/* Where the conversation is. */
enum smtpuv__cv_state {
  SMTPUV__CV_CONNECTING = 0, /* before smtpuv__conv_connected() */
  SMTPUV__CV_TLS_IMPLICIT,   /* handshake before the greeting */
  SMTPUV__CV_GREETING,
  SMTPUV__CV_EHLO,
  SMTPUV__CV_HELO,
  SMTPUV__CV_STARTTLS,       /* STARTTLS sent, 220 awaited */
  SMTPUV__CV_TLS_STARTTLS,   /* handshake after STARTTLS */
  SMTPUV__CV_AUTH,
  SMTPUV__CV_READY,
  SMTPUV__CV_QUIT,           /* QUIT sent: waiting for 221 or the end */
  SMTPUV__CV_ENDED           /* smtpuv__conv_end() is FINISH or ABORT */
};

struct smtpuv__conv {
  smtpuv_mem mem;
  smtpuv__conv_config cfg; /* ehlo_name points into `ehlo` */
  char ehlo[256];
  int state;
  int end;      /* smtpuv__conv_end_kind */
  int end_err;
  int closing;  /* smtpuv__conv_close() */
  int in_event; /* inside an event: the wake callback is not called */

  smtpuv_proto *proto;
  smtpuv_auth_session *auth;
  int auth_waiting;     /* the auth session waits for a token */
  int auth_ready;       /* the token came during an event */
  int want_tls;         /* STARTTLS's 220 seen: asking for the handshake */
  int start_tls;        /* smtpuv__conv_take_start_tls() answers 1 */
  int tls_up;
  char *tls_summary;
  char literal[64];     /* our address literal */

  /* output accounting */
  size_t handed;        /* handed over, not yet written */
  uint64_t out_handed;  /* every byte ever handed over */

  /* time (ms on the transport's clock) */
  uint64_t now;
  uint64_t reply_clock;    /* the awaited reply's deadline starts here */
  int clock_on_write;      /* ... or when the output is written whole (its
                              command was still in it) */
  size_t awaited;          /* replies pending at the end of the last event */
  int was_idle;
  uint64_t progress_clock; /* last write progress (DATA) */
  uint64_t idle_since;
  uint64_t tls_clock;      /* handshake started */
  uint64_t quit_clock;

  /* messages on this connection, oldest first */
  smtpuv__msg *inflight, *inflight_tail;
  unsigned ninflight;
  unsigned messages_issued;
  smtpuv__msg *finished, *finished_tail; /* for smtpuv__conv_pop_finished */
  int rset_needed;      /* a transaction failed before its end: RSET first */
  unsigned rset_pending;
  int doomed;           /* abandon the connection once no final reply is
                           awaited (a body that failed after 354) */
  int doomed_err;

  /* the body pump (streams) */
  char *pump_buf;
  size_t pump_len;
  int body_blocked;

  /* a setup failure, for smtpuv__conv_take_failure() */
  int failed, failure_taken;
  int fail_err;
  smtpuv_phase fail_phase;
  char fail_message[512];
  int fail_code;
  char fail_enhanced[16];
  char *fail_text;

  /* probe mode */
  int greeting_code;
  char *greeting, *server_name, *ext, *ext_plain;
  unsigned ext_flags;
  uint64_t max_size;
  char *auth_mechs;
  int authenticated;
  char auth_mech_used[32];
};

/* ---- conv.c ------------------------------------------------------------------ */

/* 1 when TLS must be up before AUTH or MAIL (required or implicit). */
int smtpuv__conv_tls_required(const smtpuv__conv *cv);
/* SMTPUV_ESHUTDOWN (421), ETEMPFAIL (4xx), EPERMFAIL (5xx), else EPROTO. */
int smtpuv__conv_reply_err(int code);
/* Length of the first line of a reply text (at most 300). */
int smtpuv__conv_first_line_len(const smtpuv_reply *r);
/* The phase of a failure in the current (setup) state. */
smtpuv_phase smtpuv__conv_setup_phase(const smtpuv__conv *cv);
/* The timeout `which` in ms (0: none). */
unsigned smtpuv__conv_timeout(const smtpuv__conv *cv, smtpuv_timeout which);
/* Record a setup failure (first one wins); `reply` may be NULL. */
void smtpuv__conv_fail_setup(smtpuv__conv *cv, int err, smtpuv_phase phase,
                             const smtpuv_reply *reply, const char *text);
/* QUIT when the protocol allows it, else FINISH. */
void smtpuv__conv_quit(smtpuv__conv *cv);
/* Close the connection: FINISH (close_notify) or ABORT with `err`. */
void smtpuv__conv_finish(smtpuv__conv *cv);
void smtpuv__conv_abandon(smtpuv__conv *cv, int err);
/* The transport or the server failed the conversation (`reply` may be
   NULL): setup failure or in-flight messages failed, then ABORT (or
   FINISH for a 421, `finish` 1). */
void smtpuv__conv_fail(smtpuv__conv *cv, int err, const smtpuv_reply *reply,
                       int finish, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;
/* The server said 421: it is closing. */
void smtpuv__conv_server_closing(smtpuv__conv *cv, const smtpuv_reply *r);
/* A reply's deadline starts now (a new reply is awaited). */
void smtpuv__conv_reply_clock(smtpuv__conv *cv);

/* ---- setup.c ----------------------------------------------------------------- */

/* A reply to the greeting, EHLO, HELO, STARTTLS or AUTH. */
void smtpuv__setup_reply(smtpuv__conv *cv, const smtpuv_reply *r);
/* The handshake after STARTTLS (or implicit TLS) completed. */
void smtpuv__setup_tls_up(smtpuv__conv *cv);
/* An OAuth token that arrived during an event: go on. */
void smtpuv__setup_auth_resume(smtpuv__conv *cv);
/* A setup step was refused: record it, then QUIT (FINISH after 421). */
void smtpuv__setup_fail(smtpuv__conv *cv, int err, smtpuv_phase phase,
                        const smtpuv_reply *r, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;
/* Free the probe's strings. */
void smtpuv__setup_free(smtpuv__conv *cv);

/* ---- transaction.c ----------------------------------------------------------- */

/* A reply to MAIL, RCPT, DATA, "." or BDAT. */
void smtpuv__txn_reply(smtpuv__conv *cv, const smtpuv_reply *r);
/* Start `m` (READY): MAIL (RCPT, DATA when pipelined), and its body. */
void smtpuv__txn_start(smtpuv__conv *cv, smtpuv__msg *m);
/* RSET when a failed transaction needs one and nothing is in flight. */
void smtpuv__txn_rset(smtpuv__conv *cv);
/* Every in-flight message ends because the connection does. */
void smtpuv__txn_fail_inflight(smtpuv__conv *cv, int err, const char *text,
                               const smtpuv_reply *reply);
/* Every in-flight message ends with `st`/`err` (cancel, abort); UNKNOWN
   instead when its "." was handed over and `unknown_after_dot`. */
void smtpuv__txn_end_inflight(smtpuv__conv *cv, smtpuv_send_status st,
                              int err, int unknown_after_dot,
                              const char *text);
/* 1 when a message waits for the reply to its "." (or BDAT LAST). */
int smtpuv__txn_dot_waiting(const smtpuv__conv *cv);
/* Hand `m` to the finished list (the transport pops it). */
void smtpuv__txn_finish(smtpuv__conv *cv, smtpuv__msg *m);
/* Remove `m` from the in-flight list. */
void smtpuv__txn_remove(smtpuv__conv *cv, smtpuv__msg *m);
/* Decided and nothing more due: finish it. */
void smtpuv__txn_check_done(smtpuv__conv *cv, smtpuv__msg *m);

/* ---- pump.c ------------------------------------------------------------------ */

/* Hand the last message's body to the core up to the high-water mark. */
void smtpuv__pump(smtpuv__conv *cv);
/* Before MAIL: read a streamed body's first chunk (what the source has
   ready) into the pump buffer and say whether it holds binary content
   (NUL, a line over 998 octets) or 8-bit bytes. 0, SMTPUV_ENOMEM or
   SMTPUV_EBODY (the source failed). */
int smtpuv__pump_prefetch(smtpuv__conv *cv, smtpuv__msg *m, int *binary,
                          int *eight);
/* 1 while the last message is in its body phase. */
int smtpuv__pump_in_body(const smtpuv__conv *cv);
/* The body of `m` failed (its source, the core): DATA cannot be abandoned,
   so the connection is doomed; BDAT stops sending chunks. */
void smtpuv__pump_fail(smtpuv__conv *cv, smtpuv__msg *m, int err,
                       const char *what);

/* ---- trace.c ----------------------------------------------------------------- */

enum {
  SMTPUV__TR_CMD = 0, /* commands */
  SMTPUV__TR_REDACT,  /* AUTH: "AUTH MECH <redacted>", "<redacted>" */
  SMTPUV__TR_BODY,    /* message content */
  SMTPUV__TR_BDAT     /* "BDAT n" line, then content */
};
#define SMTPUV__TRACING(cv) ((cv)->cfg.trace != NULL)
/* Trace the output the core gained since it held `before` pending bytes. */
void smtpuv__trace_out(smtpuv__conv *cv, size_t before, int mode);
void smtpuv__trace_in(smtpuv__conv *cv, const void *buf, size_t len);
void smtpuv__trace_info(smtpuv__conv *cv, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

#endif

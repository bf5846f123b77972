/* SPDX-License-Identifier: MIT */
/*
 * Internal: message records. One record per smtpuv_client_send(): a copy of
 * the envelope in one allocation, the progress of the current attempt on a
 * connection, and the outcome with the strings of the result.
 *
 * The record belongs to whoever holds it: the client's queue, one
 * conversation (src/conv) while it is on the wire, then the client's list
 * of completed messages until its callback has run.
 */
#ifndef SMTPUV_SRC_CONV_MSG_H
#define SMTPUV_SRC_CONV_MSG_H

#include <stdint.h>

#include "protocol/mem.h"
#include "smtpuv/send.h"

struct smtpuv_client;
struct smtpuv_message;

enum smtpuv__stage {
  SMTPUV__M_QUEUED = 0, /* in the client's queue */
  SMTPUV__M_ENVELOPE,   /* MAIL/RCPT/DATA issued, replies coming */
  SMTPUV__M_BODY,       /* 354 received (or BDAT started): body flowing */
  SMTPUV__M_DOT,        /* final "." or BDAT LAST issued */
  SMTPUV__M_DONE        /* outcome known, waiting for its callback */
};

typedef struct smtpuv__rcpt {
  const char *address; /* inside the record */
  const smtpuv_rcpt_params *params; /* NULL or inside the record */
  int code;
  int accepted;
  char enhanced[16];
  size_t text; /* arena offset */
} smtpuv__rcpt;

enum {
  SMTPUV__SCAN_8BIT = 1,   /* smtpuv_is_8bit() */
  SMTPUV__SCAN_BINARY = 2, /* smtpuv_needs_binarymime() */
  SMTPUV__SCAN_WIRE = 4    /* wire_size holds smtpuv_body_wire_size() */
};

typedef struct smtpuv__msg smtpuv__msg;
struct smtpuv__msg {
  smtpuv__msg *next;
  uint64_t seq;          /* queue order: callbacks run in this order */
  /* the client's callback and message (src/uv), carried, never used here */
  void (*cb)(struct smtpuv_client *client, const smtpuv_send_result *result,
             void *data);
  void *cbdata;
  struct smtpuv_message *owned; /* smtpuv_client_send_message(): freed
                                   after cb */

  /* envelope (copied into the same allocation) */
  const char *sender;
  smtpuv__rcpt *rcpts;
  size_t nrcpts;
  int has_mail_params;
  smtpuv_mail_params mail_params;
  smtpuv_body body;
  /* what a buffer body was found to hold (SMTPUV__SCAN_*; the answer of a
     scan is its bit << 8), kept across attempts */
  unsigned scan;
  uint64_t wire_size;

  /* progress on the current attempt */
  int stage;
  unsigned attempts;
  int pipelined;      /* envelope sent without waiting */
  int bdat;           /* body goes with BDAT */
  unsigned expect;    /* replies still due for this message */
  size_t next_rcpt;   /* next RCPT to issue (not pipelined) */
  size_t rcpt_replies;
  int mail_ok;
  int mail_failed;
  int data_issued;    /* DATA issued / BDAT started */
  int bdat_abort;     /* stop sending chunks, RSET when replies are in */
  int reused;         /* issued on a connection that carried a message */
  int rset_after;     /* an RSET was pipelined behind it */
  int body_type;      /* smtpuv_body_type declared in MAIL */
  uint32_t body_line; /* stream: length of the line still open, for the
                         998-octet check */
  uint64_t body_off;  /* buffer: bytes handed to the core */
  int body_eof;       /* stream: the source reported its end */
  uint64_t dot_mark;  /* connection output offset just after the "." */
  size_t naccepted;

  /* retries by the client's policy (kept across attempts) */
  char *attempt_log;   /* heap: "attempt N: reason\n"..., or NULL */
  uint64_t first_try;  /* the client's clock at the first attempt */
  uint64_t not_before; /* a delayed retry goes out then */

  /* outcome */
  int retry;          /* failed before its "." on a connection that broke:
                         send again elsewhere (progress reset) */
  int decided;
  smtpuv_send_status status;
  int error;
  smtpuv_phase phase;
  int reply_code;
  char reply_enhanced[16];
  size_t reply_text; /* arena offsets */
  size_t message;
  size_t tls;

  /* strings of the result: offset 0 is ""; the arena starts inside the
     record's own block (arena_inline) and moves to the heap when a result
     outgrows it */
  char *arena;
  size_t arena_len, arena_cap;
  int arena_inline;
};

/* Allocate a record with copies of the envelope and body. 0, SMTPUV_EINVAL,
   SMTPUV_EADDRESS, SMTPUV_ENOMEM. */
int smtpuv__msg_new(const smtpuv_mem *mem, const smtpuv_envelope *env,
                    const smtpuv_body *body, smtpuv__msg **out);
void smtpuv__msg_free(const smtpuv_mem *mem, smtpuv__msg *m);
/* Forget the progress of a previous attempt (results, arena). */
void smtpuv__msg_reset(smtpuv__msg *m);
/* Append a string to the arena: its offset, or 0 ("") when out of memory. */
size_t smtpuv__msg_str(const smtpuv_mem *mem, smtpuv__msg *m, const char *s,
                       size_t len);
size_t smtpuv__msg_printf(const smtpuv_mem *mem, smtpuv__msg *m,
                          const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* Record the outcome (first call wins unless `force`). `reply` may be
   NULL; `fmt` gives the human message. */
void smtpuv__msg_decide(const smtpuv_mem *mem, smtpuv__msg *m,
                        smtpuv_send_status st, int err, smtpuv_phase phase,
                        const smtpuv_reply *reply, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 7, 8)))
#endif
    ;
/* Longest reply line quoted in a result's message. */
#define SMTPUV__MSG_LINE_MAX 300
/* smtpuv__msg_decide() with the message "[what: ]NNN first reply line",
   built without printf (`what` may be NULL; `reply` is required). */
void smtpuv__msg_decide_reply(const smtpuv_mem *mem, smtpuv__msg *m,
                              smtpuv_send_status st, int err,
                              smtpuv_phase phase, const smtpuv_reply *reply,
                              const char *what);
/* Fill a result for the callback (pointers into m and `rr`, which must hold
   m->nrcpts entries). */
void smtpuv__msg_result(smtpuv__msg *m, smtpuv_send_result *r,
                        smtpuv_rcpt_result *rr);
/* 1 when the body can be sent again from its start (rewinds a stream). */
int smtpuv__msg_rewind(smtpuv__msg *m);
/* Append "attempt N: <its message>" for the outcome just decided to the
   attempt log. 0 or SMTPUV_ENOMEM (the log is then left as it was). */
int smtpuv__msg_log_attempt(const smtpuv_mem *mem, smtpuv__msg *m);

#endif

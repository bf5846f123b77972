/* SPDX-License-Identifier: MIT */
/*
 * Internal: the protocol session object and the helpers its files share.
 *
 * Data flow:
 *   feed()        copies server bytes into `in`, checks every line as it
 *                 completes (reply.c) and matches each complete reply to the
 *                 oldest command still without one (the `ring`);
 *   next_reply()  pops the oldest matched reply, turns it into text in place
 *                 and applies it to the state (session.c);
 *   commands      check state and arguments, then reserve output room and a
 *                 ring slot, and only then write: a failing call changes
 *                 nothing (commands.c, body.c).
 */
#ifndef SMTPUV_SRC_PROTO_INT_H
#define SMTPUV_SRC_PROTO_INT_H

#include <stdint.h>
#include <string.h>

#include "protocol/encoder.h"
#include "protocol/outbuf.h"
#include "smtpuv.h"

/* A command awaiting its reply. The reply fields are set by feed() once the
   whole reply has arrived; the reply's bytes then sit in `in` in order. */
typedef struct smtpuv__pending {
  uint8_t cmd;         /* smtpuv_cmd */
  uint8_t last;        /* BDAT LAST */
  uint8_t auto_end;    /* DATA_END the core wrote itself (empty body) */
  uint8_t lmtp_slot;   /* LMTP: one of the end of data's per-recipient
                          replies; its number is in rcpt_index */
  uint8_t voided;      /* LMTP: a slot no reply will come for (fewer
                          recipients were accepted than issued) */
  uint16_t code;       /* reply code, once complete */
  uint32_t rcpt_index; /* RCPT: index within its transaction; LMTP slot:
                          its number, 0 .. RCPTs - 1 */
  uint32_t txn;        /* transaction number (MAIL .. end of data) */
  uint32_t reply_len;  /* bytes of the complete reply in `in` */
  uint32_t nlines;
} smtpuv__pending;

/* Incremental reply reader state; plain data so feed() can snapshot it and
   roll back when it runs out of memory half way. */
typedef struct smtpuv__reader {
  size_t line_start;   /* offset in in.buf of the line being received */
  size_t reply_start;  /* offset of the reply being received */
  uint32_t nlines;     /* complete lines of that reply */
  int code;            /* its code (once nlines > 0) */
  size_t matched;      /* ring entries, from the head, with a complete reply */
  uint64_t bytes;      /* bytes accepted since the session began */
  uint64_t lines;      /* reply lines completed since the session began */
  uint8_t tls_wait;    /* STARTTLS's 220 is in: nothing may follow */
  uint8_t unsolicited; /* 1: a 421 nobody asked for follows the matched
                          replies; 2: it was popped */
  uint32_t unsol_len, unsol_nlines;
  /* LMTP, as replies are matched: the transaction of the last matched
     MAIL, its positive RCPT replies, whether MAIL was refused; and the
     slots voided and not yet dropped by next_reply() */
  uint32_t lm_txn, lm_accepted;
  uint8_t lm_mail_failed;
  size_t voids;
} smtpuv__reader;

/* The transaction as commands are issued. */
typedef struct smtpuv__txn_out {
  uint32_t id;      /* incremented by every MAIL */
  uint32_t nrcpt;   /* RCPT commands issued */
  uint8_t body;     /* smtpuv_body_type */
  uint8_t smtputf8; /* SMTPUTF8 declared */
} smtpuv__txn_out;

/* The transaction as its replies are popped. */
typedef struct smtpuv__txn_in {
  uint32_t id;
  uint32_t rcpt_replied, rcpt_accepted;
  uint8_t mail_failed;
} smtpuv__txn_in;

/* One advertised EHLO keyword (upper-cased) and its parameters. */
typedef struct smtpuv__ext {
  const char *keyword;
  const char *params;
  int old_auth; /* the "AUTH=..." form */
} smtpuv__ext;

/* Everything learnt from the EHLO/HELO reply, in one allocation. */
typedef struct smtpuv__ehlo {
  size_t size;   /* bytes of the allocation */
  unsigned bits; /* SMTPUV_EXT_* */
  uint64_t max_size;
  const char *server_name;
  const char *auth_mechs; /* upper-cased, single spaces */
  size_t next;
  smtpuv__ext *exts;
} smtpuv__ehlo;

#define SMTPUV__INLINE_LINES 16

struct smtpuv_proto {
  smtpuv_mem mem;
  smtpuv_state state;
  int err;          /* sticky SMTPUV_EPROTO / SMTPUV_EINJECT, or 0 */
  char errtext[160];
  uint8_t pipelining_allowed; /* smtpuv_proto_set_pipelining() */
  uint8_t auth_challenge;     /* a 334 was popped and not yet answered */
  uint8_t tls_ready;          /* STARTTLS's 220 was popped */
  uint8_t lmtp;               /* LMTP mode (set_lmtp() or lhlo()) */
  uint8_t hello_sent;         /* an EHLO/HELO/LHLO was issued */
  uint8_t authenticated;      /* AUTH succeeded (235): no second AUTH,
                                 RFC 4954 section 4 */

  /* input: [start, end) unpopped bytes; complete replies first */
  struct {
    char *buf;
    size_t cap, start, end;
  } in;
  smtpuv__reader rd;

  /* commands awaiting replies: ring of power-of-two size */
  smtpuv__pending *ring;
  size_t ring_cap, ring_head, ring_count;
  unsigned group_enders; /* pending EHLO/HELO/STARTTLS/AUTH/NOOP/VRFY */

  /* the reply handed out by next_reply() */
  smtpuv_str *lines; /* lines_inline or heap */
  size_t lines_cap;
  smtpuv_str lines_inline[SMTPUV__INLINE_LINES];

  smtpuv__ehlo *ehlo; /* NULL before EHLO/HELO and after STARTTLS */
  smtpuv__txn_out txo;
  smtpuv__txn_in txi;
  /* LMTP, as replies are popped: the rcpt_index of every accepted RCPT of
     the transaction txi, and how many of its slots were popped */
  struct {
    uint32_t *acc;
    size_t len, cap;
    uint32_t popped;
  } lm;
  smtpuv_encoder enc;
  smtpuv__outbuf out;
};

/* ---- session.c ---------------------------------------------------------- */

/* Record the sticky protocol error `err` with a message (printf format),
   finish the session and return `err`. */
int smtpuv__proto_fail(smtpuv_proto *p, int err, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static inline smtpuv__pending *smtpuv__ring_at(const smtpuv_proto *p,
                                               size_t i) {
  return &p->ring[(p->ring_head + i) & (p->ring_cap - 1)];
}

/* Make room for `n` more ring entries. 0 or SMTPUV_ENOMEM. */
int smtpuv__ring_reserve(smtpuv_proto *p, size_t n);

/* Shrink an empty ring that grew for a long pipeline (best effort). */
void smtpuv__ring_trim(smtpuv_proto *p);

/* Heap bytes the session holds right now (the object, input buffer, ring,
   reply lines, EHLO record, output blocks and spares): what an idle
   connection costs. */
size_t smtpuv__proto_heap_bytes(const smtpuv_proto *p);

/* Append an entry (room reserved before) for the current transaction;
   returns it zeroed but for cmd and txn. */
smtpuv__pending *smtpuv__ring_push(smtpuv_proto *p, smtpuv_cmd cmd);

/* Popping a reply is two steps: prepare() does everything that can fail
   (allocation) without changing anything; apply() then cannot fail. */
typedef struct smtpuv__apply {
  smtpuv__ehlo *ehlo; /* new extensions for an EHLO/HELO success */
  int auto_end;       /* a 354 that must be answered with ".\r\n" */
} smtpuv__apply;

/* 0 or SMTPUV_ENOMEM. */
int smtpuv__session_prepare(smtpuv_proto *p, const smtpuv__pending *e,
                            const smtpuv_reply *r, smtpuv__apply *a);
/* Update the state, the transaction bookkeeping and the reply's flags;
   may append the end of data the core writes itself. */
void smtpuv__session_apply(smtpuv_proto *p, const smtpuv__pending *e,
                           smtpuv_reply *r, smtpuv__apply *a);

/* ---- commands.c ---------------------------------------------------------- */

#define SMTPUV__ST(s) (1u << SMTPUV_STATE_##s)

/* The sticky error, SMTPUV_ESTATE unless the state is in `states` (a set
   of SMTPUV__ST() bits), else 0. */
static inline int smtpuv__check_state(const smtpuv_proto *p, unsigned states) {
  if (p->err != 0)
    return p->err;
  return (states & (1u << p->state)) ? 0 : SMTPUV_ESTATE;
}

/* Every RCPT reply of the transaction being issued is in, none positive. */
int smtpuv__no_recipient(const smtpuv_proto *p);

/* LMTP: push the end of data's `n` per-recipient slots (room reserved). */
void smtpuv__push_lmtp_slots(smtpuv_proto *p, smtpuv_cmd cmd, size_t n);

/* LMTP: how many slots an end of data issued now needs: the accepted
   recipients when every RCPT reply of the transaction was popped, else
   one per RCPT issued (the surplus is voided as replies are matched). */
size_t smtpuv__lmtp_slots_needed(const smtpuv_proto *p);

/* SMTPUV_EBUSY when a command (`is_quit`: QUIT) must wait for replies. */
int smtpuv__check_busy(const smtpuv_proto *p, int is_quit);

/* ---- ehlo.c ------------------------------------------------------------- */

/* Build the extension record from an EHLO (with_ext) or HELO reply. */
int smtpuv__ehlo_build(const smtpuv_mem *mem, const smtpuv_str *lines,
                       size_t nlines, int with_ext, smtpuv__ehlo **out);

static inline unsigned smtpuv__ext_bits(const smtpuv_proto *p) {
  return p->ehlo != NULL ? p->ehlo->bits : 0;
}

/* ASCII case-insensitive comparison of a NUL-terminated string with
   `len` bytes of `s`. */
int smtpuv__ascii_ieq(const char *z, const char *s, size_t len);

/* ---- address.c ---------------------------------------------------------- */

/* Syntax checks for what goes on a command line. */
int smtpuv__check_domain(const char *domain, size_t *len);
int smtpuv__check_mechanism(const char *mech, size_t *len);
int smtpuv__check_base64(const char *b64, size_t *len);
/* smtpuv_check_address()'s syntax checks (0 or SMTPUV_EADDRESS), giving
   the length and whether the address has a byte >= 0x80 (`non_ascii` may
   be NULL), in one pass. */
int smtpuv__scan_address(const char *addr, size_t *len, int *non_ascii);

/* xtext (RFC 3461) of `len` bytes at w (at most 3 * len); returns the end. */
char *smtpuv__put_xtext(char *w, const char *s, size_t len);

/* Decimal digits of `v` at w; returns the end. */
char *smtpuv__put_u64(char *w, uint64_t v);

static inline char *smtpuv__put(char *w, const char *s, size_t len) {
  memcpy(w, s, len);
  return w + len;
}
#define SMTPUV__PUT_LIT(w, lit) smtpuv__put((w), (lit), sizeof(lit) - 1)

#endif

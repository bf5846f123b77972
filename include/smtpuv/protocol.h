/* SPDX-License-Identifier: MIT */
/**
 * @file
 * smtpuv/protocol.h — the sans-io ESMTP client state machine.
 *
 * No sockets, no clock, no TLS: the caller moves bytes. The model is
 * nghttp2's mem_recv/mem_send and Python smtpproto's SMTPClientProtocol,
 * extended for PIPELINING (RFC 2920), CHUNKING (RFC 3030), DSN (RFC 3461)
 * and enhanced status codes (RFC 3463).
 *
 * Driving it from an event loop:
 *
 *   smtpuv_proto *p;
 *   smtpuv_proto_new(NULL, &p);                 // expects the greeting
 *   on read(buf, n):
 *     if (smtpuv_proto_feed(p, buf, n) < 0) ... // sticky protocol error
 *     smtpuv_reply r;
 *     while (smtpuv_proto_next_reply(p, &r) == 1)
 *       handle(r);  // may issue commands: smtpuv_proto_ehlo(p, "me") ...
 *   after issuing commands, send what is pending:
 *     const void *ptr; size_t len;
 *     while (smtpuv_proto_outgoing(p, &ptr, &len), len > 0) {
 *       n = write(fd, ptr, len);
 *       smtpuv_proto_consumed(p, n);
 *     }
 *
 * Rules that hold for every command function:
 *   - it returns 0 after appending the command's bytes to the outgoing
 *     buffer, or a negative SMTPUV_E* code after writing nothing and changing
 *     nothing;
 *   - checks run in this order: the sticky error, the state (SMTPUV_ESTATE:
 *     the command is not allowed in the current state, see
 *     smtpuv_proto_state()), the arguments (SMTPUV_EINVAL, SMTPUV_EADDRESS)
 *     and the server's extensions (SMTPUV_ENOEXT, ...), then
 *     SMTPUV_EBUSY: the server does not pipeline (or pipelining was switched
 *     off) and a reply is still awaited; wait for it and call again;
 *   - SMTPUV_EINVAL also for a NULL session; SMTPUV_ENOMEM when memory for
 *     the command could not be had (nothing changed: retry later);
 *   - once the server violated the protocol (SMTPUV_EPROTO, SMTPUV_EINJECT)
 *     the object is finished and every call returns that error again.
 *
 * Pipelining: when the server advertised PIPELINING (and it is not switched
 * off), MAIL, RCPT, RSET, and DATA or BDAT may be issued without waiting for
 * replies; replies are matched to commands in FIFO order. The body after DATA
 * still waits for the 354 (RFC 2920: DATA ends a group), and the next
 * transaction's MAIL may follow the end-of-data mark at once (message content
 * may open a group). EHLO, HELO, STARTTLS, AUTH, NOOP and VRFY end a group:
 * they may follow queued commands, but nothing but QUIT is accepted
 * (SMTPUV_EBUSY) until their reply is in. QUIT may follow anything except
 * DATA, STARTTLS and AUTH, whose positive replies would turn it into body
 * text, a TLS record or a SASL response (see smtpuv_proto_quit()).
 * Without pipelining every command waits for the previous reply
 * (SMTPUV_EBUSY).
 *
 * Transactions: replies are tracked per transaction (MAIL to end of data).
 * When MAIL is refused, the replies to the RCPT, DATA and BDAT commands
 * pipelined behind it carry SMTPUV_REPLY_TXN_FAILED, and the state returns
 * to READY at once (or, when DATA was issued, with DATA's reply). A reply
 * 421 to any command means the server is closing: the state becomes
 * FINISHED (no error). After DATA or the end of data was refused, issue
 * RSET before the next MAIL (servers keep the transaction open).
 */
#ifndef SMTPUV_PROTOCOL_H
#define SMTPUV_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#include "../smtpuv.h"

#ifdef __cplusplus
extern "C" {
#endif

/** One protocol session (one connection). Opaque. */
typedef struct smtpuv_proto smtpuv_proto;

/** The command a reply answers. */
typedef enum smtpuv_cmd {
  SMTPUV_CMD_NONE = 0,  /**< unsolicited (only a 421 is accepted) */
  SMTPUV_CMD_GREETING,  /**< the server's opening 220 */
  SMTPUV_CMD_EHLO,
  SMTPUV_CMD_HELO,
  SMTPUV_CMD_STARTTLS,
  SMTPUV_CMD_AUTH,      /**< AUTH and each AUTH continuation (334 / 235) */
  SMTPUV_CMD_MAIL,
  SMTPUV_CMD_RCPT,      /**< see smtpuv_reply.rcpt_index */
  SMTPUV_CMD_DATA,      /**< the DATA command itself (354 expected) */
  SMTPUV_CMD_DATA_END,  /**< the end-of-data mark "." */
  SMTPUV_CMD_BDAT,      /**< a BDAT chunk; see smtpuv_reply.last */
  SMTPUV_CMD_RSET,
  SMTPUV_CMD_NOOP,
  SMTPUV_CMD_VRFY,
  SMTPUV_CMD_QUIT,
  SMTPUV_CMD_LHLO       /**< LMTP's LHLO (RFC 2033), answered like EHLO */
} smtpuv_cmd;

/** Name of a command for traces and messages ("EHLO", "end-of-data"...). */
SMTPUV_EXTERN const char *smtpuv_cmd_name(smtpuv_cmd cmd);

/**
 * Protocol states, as seen by the command functions: each state says which
 * commands may be issued next. With pipelining the state moves when a
 * command is issued (assuming success) and moves back when its failure
 * reply arrives, so a caller may inspect replies as they come.
 */
typedef enum smtpuv_state {
  SMTPUV_STATE_GREETING_EXPECTED, /**< waiting for the server's 220 */
  SMTPUV_STATE_GREETED,       /**< EHLO/HELO needed (also after STARTTLS) */
  SMTPUV_STATE_EHLO_SENT,     /**< waiting for the EHLO/HELO reply */
  SMTPUV_STATE_STARTTLS_PENDING, /**< STARTTLS sent, or its 220 received and
                                    the caller must run the TLS handshake and
                                    then call smtpuv_proto_tls_established() */
  SMTPUV_STATE_AUTHENTICATING, /**< AUTH exchange in progress */
  SMTPUV_STATE_READY,          /**< MAIL, AUTH, STARTTLS, RSET, NOOP, VRFY, QUIT */
  SMTPUV_STATE_MAIL_TRANSACTION, /**< MAIL issued: RCPT next */
  SMTPUV_STATE_RECIPIENT_SENT, /**< at least one RCPT issued: RCPT, DATA, BDAT */
  SMTPUV_STATE_DATA_PENDING,   /**< DATA issued, its 354 not yet received */
  SMTPUV_STATE_DATA,           /**< 354 received: data_write, data_end */
  SMTPUV_STATE_BDAT,           /**< BDAT chunks issued, LAST not yet */
  SMTPUV_STATE_FINISHED        /**< QUIT issued, 421 received, greeting
                                    refused, or violation */
} smtpuv_state;

/** Name of a state ("READY", "DATA"...); "?" for a value outside the enum. */
SMTPUV_EXTERN const char *smtpuv_state_name(smtpuv_state state);

/** A borrowed byte string: not NUL-terminated. */
typedef struct smtpuv_str {
  const char *ptr; /**< first byte */
  size_t len;      /**< number of bytes */
} smtpuv_str;

/** Reply flags. */
enum {
  /** DATA got 354 although no recipient had been accepted: the core wrote
      the end-of-data mark itself (an empty body). The transaction is
      failed; the later SMTPUV_CMD_DATA_END reply carries the same flag. */
  SMTPUV_REPLY_EMPTY_DATA = 1u << 0,
  /** The reply to MAIL/RCPT/DATA/BDAT of a transaction already failed
      (MAIL refused, or no recipient accepted); nothing was delivered. */
  SMTPUV_REPLY_TXN_FAILED = 1u << 1,
  /** LMTP: this reply to the end of data (SMTPUV_CMD_DATA_END or the BDAT
      LAST chunk) is the final verdict for one accepted recipient, the one
      whose RCPT reply had `rcpt_index`; see smtpuv_proto_lhlo(). */
  SMTPUV_REPLY_LMTP_RCPT = 1u << 2
};

/**
 * A complete server reply, filled by smtpuv_proto_next_reply() into the
 * caller's struct. All pointers borrow the core's memory and stay
 * valid until the next call of smtpuv_proto_feed(), smtpuv_proto_next_reply()
 * or smtpuv_proto_free() on the same object.
 *
 * Growth: fields are only ever appended. smtpuv_proto_next_reply() passes
 * the size of the struct the caller was compiled with, the library writes
 * no more than that and sets `struct_size` to the number of bytes it filled:
 * a field at offset o of size n is valid when struct_size >= o + n.
 */
typedef struct smtpuv_reply {
  size_t struct_size;   /**< set by the library: bytes filled (output) */
  smtpuv_cmd command;   /**< the command this reply answers */
  unsigned rcpt_index;  /**< RCPT: 0-based index within its transaction;
                             LMTP end of data with SMTPUV_REPLY_LMTP_RCPT:
                             the index of the recipient it is the verdict
                             for; 0 otherwise */
  int last;             /**< BDAT: 1 when this answers the LAST chunk.
                             LMTP (DATA_END and BDAT LAST): 1 on the final
                             reply of the message's end of data only, 0 on
                             the per-recipient replies before it */
  int code;             /**< 200..599 */
  int positive;         /**< 1 when the code means success for `command`
                             (2xx; 354 for DATA; 334 for AUTH; 220 for
                             GREETING and STARTTLS); 0 for the end of data
                             the core wrote itself (SMTPUV_REPLY_EMPTY_DATA)
                             and for an unsolicited 421 */
  unsigned flags;       /**< SMTPUV_REPLY_* */
  /** Enhanced status code (RFC 3463) of the first line when the server
      advertised ENHANCEDSTATUSCODES and the line starts with one whose class
      matches the code's first digit; all zero otherwise. */
  int enh_class;
  int enh_subject;      /**< second number of the enhanced code (see enh_class) */
  int enh_detail;       /**< third number of the enhanced code (see enh_class) */
  char enhanced[16];    /**< "5.1.1" or "" (NUL-terminated) */
  /** Text of every line, without the code, separator and line ending
      (each points into `text`). */
  const smtpuv_str *lines;
  size_t nlines;        /**< number of `lines` (at least 1) */
  /** The whole text: the lines joined with "\n", NUL-terminated. */
  const char *text;
  size_t text_len;      /**< length of `text` without its NUL */
} smtpuv_reply;

/* ------------------------------------------------------------------------ */
/* Limits                                                                    */
/* ------------------------------------------------------------------------ */

/** Longest reply line accepted, line ending included (RFC 5321 says 512;
    real servers send longer EHLO lines and texts). Longer is SMTPUV_EPROTO. */
#define SMTPUV_MAX_REPLY_LINE 4096
/** Largest multi-line reply accepted (all lines). Larger is SMTPUV_EPROTO. */
#define SMTPUV_MAX_REPLY_SIZE 65536
/** Longest address accepted by mail()/rcpt()/vrfy() (RFC 5321: 256). */
#define SMTPUV_MAX_ADDRESS 1024

/* ------------------------------------------------------------------------ */
/* Life cycle, input, output                                                 */
/* ------------------------------------------------------------------------ */

/**
 * Create a session that expects the server's greeting. `mem` may be NULL.
 * Returns 0, SMTPUV_EINVAL or SMTPUV_ENOMEM.
 */
SMTPUV_EXTERN int smtpuv_proto_new(const smtpuv_mem *mem, smtpuv_proto **out);

/** Free the session and everything it owns. NULL is accepted. */
SMTPUV_EXTERN void smtpuv_proto_free(smtpuv_proto *p);

/**
 * Hand the core `len` bytes received from the server, in any chunking. The
 * bytes are copied. Replies become available through smtpuv_proto_next_reply();
 * call it until it returns 0 after each feed.
 *
 * Lines end with CRLF; a bare LF is tolerated. Returns 0, SMTPUV_EINVAL
 * (NULL data with a length), SMTPUV_ENOMEM (nothing of `data` was taken:
 * feed it again), or a sticky SMTPUV_EPROTO (malformed reply: no 3-digit
 * code, no space or '-' after it, a NUL or a CR inside a line; line longer
 * than SMTPUV_MAX_REPLY_LINE, reply larger than SMTPUV_MAX_REPLY_SIZE, code
 * outside 200..599, codes differing between lines, a reply nobody asked for
 * (only a 421 may come unasked, once), anything after such a 421) or
 * SMTPUV_EINJECT (bytes after STARTTLS's 220, in the same read or a later
 * one before smtpuv_proto_tls_established()). The check is made as bytes
 * arrive, so memory stays bounded whatever the server sends. Replies that
 * were complete before the violation can still be popped: next_reply()
 * returns them, then the error (a "250 queued" is not lost to the junk
 * that follows it). smtpuv_proto_error_text() tells where it happened.
 */
SMTPUV_EXTERN int smtpuv_proto_feed(smtpuv_proto *p, const void *data,
                                    size_t len);

/**
 * Pop the next complete reply. A macro over
 * smtpuv_proto_next_reply_sized() that passes `sizeof(smtpuv_reply)` as
 * the caller's header defines it, so a later library with a longer
 * smtpuv_reply never writes past the caller's struct.
 * Returns 1 and fills `*reply`, 0 when no
 * complete reply is buffered, SMTPUV_EINVAL, SMTPUV_ENOMEM (the reply stays
 * queued: call again), or the sticky error code once the replies received
 * before the error are popped. Popping a reply updates the state and the
 * server's extensions (after EHLO); popping DATA's 354 when no recipient
 * was accepted appends ".\r\n" to the output (SMTPUV_REPLY_EMPTY_DATA).
 * Once the session is FINISHED, replies are still delivered but change
 * nothing.
 */
#define smtpuv_proto_next_reply(p, reply)                                      \
  smtpuv_proto_next_reply_sized((p), (reply), sizeof(smtpuv_reply))

/**
 * smtpuv_proto_next_reply() with the size of the caller's smtpuv_reply
 * spelled out (for bindings that cannot use the macro): at most
 * `reply_size` bytes of `*reply` are written, and `reply->struct_size`
 * says how many were. SMTPUV_EINVAL when `reply_size` is smaller than the
 * smtpuv_reply of version 0.2 (every field up to `text_len`).
 */
SMTPUV_EXTERN int smtpuv_proto_next_reply_sized(smtpuv_proto *p,
                                                smtpuv_reply *reply,
                                                size_t reply_size);

/**
 * The first contiguous run of bytes waiting to be written: `*len` is 0 when
 * nothing is pending. The pointer stays valid until those bytes are marked
 * consumed or the object is freed, even if more commands are issued in
 * between (output lives in blocks that never move), so it may be handed to
 * an asynchronous write directly.
 */
SMTPUV_EXTERN void smtpuv_proto_outgoing(smtpuv_proto *p, const void **ptr,
                                         size_t *len);

/** An iovec-compatible span (same layout as struct iovec / uv_buf_t on POSIX
    is NOT guaranteed: copy the two fields). */
typedef struct smtpuv_iov {
  const void *base; /**< first byte */
  size_t len;       /**< number of bytes */
} smtpuv_iov;

/**
 * Fill up to `iovcnt` spans describing pending output, skipping the first
 * `skip` pending bytes (bytes the caller already has in flight). Returns the
 * number of spans filled (0 when nothing beyond `skip` is pending). Spans
 * stay valid until consumed, as with smtpuv_proto_outgoing().
 */
SMTPUV_EXTERN int smtpuv_proto_outgoing_iov(smtpuv_proto *p, size_t skip,
                                            smtpuv_iov *iov, int iovcnt);

/** Mark the first `n` pending bytes written. `n` larger than what is pending
    is clamped. Memory: commands go to 4 KiB blocks, a streamed body to
    64 KiB ones; once everything is consumed outside a body (states other
    than DATA and BDAT) the large blocks are freed, so an idle session keeps
    a few KiB whatever it sent before. Blocks that held AUTH lines are
    zeroed when their bytes are consumed (and by smtpuv_proto_free()). */
SMTPUV_EXTERN void smtpuv_proto_consumed(smtpuv_proto *p, size_t n);

/** Bytes issued but not yet consumed. */
SMTPUV_EXTERN size_t smtpuv_proto_pending_output(const smtpuv_proto *p);

/** Number of replies not popped yet (the greeting and the end of data the
    core writes itself count). LMTP: the end of data counts one reply per
    accepted recipient when it was issued after every RCPT reply was
    popped, else one per RCPT issued until its final verdict is fed. */
SMTPUV_EXTERN size_t smtpuv_proto_pending_replies(const smtpuv_proto *p);

/** Current state (see smtpuv_state). */
SMTPUV_EXTERN smtpuv_state smtpuv_proto_state(const smtpuv_proto *p);

/** The sticky error (0 if none). */
SMTPUV_EXTERN int smtpuv_proto_error(const smtpuv_proto *p);

/** Human text for the sticky error with its position, e.g.
    "reply line 3: code 250 differs from 220 (byte 57)"; "" if none. */
SMTPUV_EXTERN const char *smtpuv_proto_error_text(const smtpuv_proto *p);

/**
 * Allow (1, default) or forbid (0) pipelining even when the server offers
 * it. Takes effect for the next command.
 */
SMTPUV_EXTERN void smtpuv_proto_set_pipelining(smtpuv_proto *p, int enable);

/* ------------------------------------------------------------------------ */
/* Server extensions (from the last successful EHLO)                         */
/* ------------------------------------------------------------------------ */

enum {
  SMTPUV_EXT_PIPELINING = 1u << 0,
  SMTPUV_EXT_8BITMIME = 1u << 1,
  SMTPUV_EXT_SMTPUTF8 = 1u << 2,
  SMTPUV_EXT_CHUNKING = 1u << 3,
  SMTPUV_EXT_BINARYMIME = 1u << 4,
  SMTPUV_EXT_DSN = 1u << 5,
  SMTPUV_EXT_ENHANCEDSTATUSCODES = 1u << 6,
  SMTPUV_EXT_STARTTLS = 1u << 7,
  SMTPUV_EXT_REQUIRETLS = 1u << 8,
  SMTPUV_EXT_SIZE = 1u << 9,
  SMTPUV_EXT_AUTH = 1u << 10
};

/** SMTPUV_EXT_* bits the server advertised (0 before EHLO, after HELO and
    after STARTTLS until the new EHLO). */
SMTPUV_EXTERN unsigned smtpuv_proto_extensions(const smtpuv_proto *p);

/** 1 if `keyword` (any case) was advertised, whether known to smtpuv or not. */
SMTPUV_EXTERN int smtpuv_proto_has_extension(const smtpuv_proto *p,
                                             const char *keyword);

/** The parameters advertised with `keyword` ("" when none), or NULL when
    it was not advertised. Valid until the next EHLO reply or free. */
SMTPUV_EXTERN const char *smtpuv_proto_extension_params(const smtpuv_proto *p,
                                                        const char *keyword);

/** SIZE limit in bytes; 0 when SIZE was not advertised or has no limit. */
SMTPUV_EXTERN uint64_t smtpuv_proto_max_size(const smtpuv_proto *p);

/** 1 if the server offers SASL mechanism `mech` (any case), from "AUTH a b"
    or the old "AUTH=a b" form. */
SMTPUV_EXTERN int smtpuv_proto_auth_offered(const smtpuv_proto *p,
                                            const char *mech);

/** The advertised mechanisms, upper-cased and separated by single spaces
    ("" when none). */
SMTPUV_EXTERN const char *smtpuv_proto_auth_mechanisms(const smtpuv_proto *p);

/** The EHLO/HELO reply's first line after the code (the server's name and
    greeting text), or "" before. */
SMTPUV_EXTERN const char *smtpuv_proto_server_name(const smtpuv_proto *p);

/* ------------------------------------------------------------------------ */
/* Commands                                                                  */
/* ------------------------------------------------------------------------ */

/** EHLO `domain`: a host name or address literal, 1..255 printable ASCII
    characters without space (else SMTPUV_EINVAL). State: GREETED (also
    after a failed EHLO or HELO, and after tls_established()). On 250 the
    state is READY with the advertised extensions; on a refusal GREETED. */
SMTPUV_EXTERN int smtpuv_proto_ehlo(smtpuv_proto *p, const char *domain);

/** HELO `domain`: the fallback when EHLO was refused (no extensions). Same
    rules as smtpuv_proto_ehlo(). */
SMTPUV_EXTERN int smtpuv_proto_helo(smtpuv_proto *p, const char *domain);

/* ---- LMTP (RFC 2033) ---------------------------------------------------- */

/**
 * Speak LMTP on this session: EHLO and HELO are refused from now on
 * (SMTPUV_ESTATE; LMTP has no HELO fallback) and LHLO must be used.
 * Allowed before the first EHLO/HELO/LHLO was issued (states
 * GREETING_EXPECTED and GREETED), else SMTPUV_ESTATE; also SMTPUV_EINVAL
 * and the sticky error. smtpuv_proto_lhlo() switches the mode by itself;
 * this call only makes the choice early and explicit.
 *
 * What LMTP changes in the core:
 *   - the reply to LHLO is parsed for extensions exactly like EHLO's;
 *   - after the end of data (DATA's final "." or the BDAT LAST chunk) the
 *     server sends one reply per ACCEPTED recipient, in RCPT order (RFC
 *     2033 4.2, RFC 3030 4.2). The core counts the positive RCPT replies
 *     and hands out that many replies to SMTPUV_CMD_DATA_END (or
 *     SMTPUV_CMD_BDAT), each with SMTPUV_REPLY_LMTP_RCPT, `rcpt_index`
 *     set to the recipient it is the verdict for and `last` 1 on the final
 *     one. Replies to commands pipelined after the end of data (the next
 *     MAIL) come after all of them (FIFO);
 *   - when the transaction failed (MAIL refused, or no RCPT accepted: the
 *     server answers DATA with 503, RFC 2033 4.2) a single reply is
 *     expected, as in SMTP, flagged SMTPUV_REPLY_TXN_FAILED and not
 *     SMTPUV_REPLY_LMTP_RCPT (also when a non-conforming server answered
 *     DATA with 354 and the core ended the body itself);
 *   - BDAT LAST may be issued before the RCPT replies are in (pipelining):
 *     until its final verdict has been fed, smtpuv_proto_pending_replies()
 *     counts one reply per RCPT issued, then drops the surplus;
 *   - a 421 among the per-recipient replies finishes the session as
 *     always; the recipients after it are still due (see
 *     smtpuv_proto_lmtp_due()).
 */
SMTPUV_EXTERN int smtpuv_proto_set_lmtp(smtpuv_proto *p);

/** 1 if the session speaks LMTP (set_lmtp() or lhlo() was called), else 0. */
SMTPUV_EXTERN int smtpuv_proto_is_lmtp(const smtpuv_proto *p);

/**
 * LHLO `domain` (LMTP's EHLO): same arguments, states and reply handling
 * as smtpuv_proto_ehlo(); switches the session to LMTP (see
 * smtpuv_proto_set_lmtp()). SMTPUV_ESTATE when an EHLO or HELO was
 * issued before on this session.
 */
SMTPUV_EXTERN int smtpuv_proto_lhlo(smtpuv_proto *p, const char *domain);

/**
 * LMTP: how many per-recipient replies to the end of data of the
 * transaction whose replies are being popped are still to be popped, i.e.
 * its recipients still waiting for their final verdict. 0 when the end of
 * data of that transaction was not issued, when it failed (no recipient
 * waits), once every verdict was popped, and outside LMTP. Only recipients
 * whose positive RCPT reply was popped are counted (a recipient whose RCPT
 * reply never came is unknown anyway). When the connection is lost, these
 * are the recipients whose outcome is unknown: the message may or may not
 * have been delivered to them.
 */
SMTPUV_EXTERN size_t smtpuv_proto_lmtp_due(const smtpuv_proto *p);

/**
 * LMTP: the `rcpt_index` of the i-th recipient still due (0 <= i <
 * smtpuv_proto_lmtp_due()), in RCPT order. Returns 0 and sets `*index`, or
 * SMTPUV_EINVAL (NULL, or i out of range).
 */
SMTPUV_EXTERN int smtpuv_proto_lmtp_due_rcpt(const smtpuv_proto *p, size_t i,
                                             unsigned *index);

/**
 * STARTTLS. Needs the STARTTLS extension (else SMTPUV_ENOEXT). On its 220
 * the state stays STARTTLS_PENDING: run the TLS handshake, then call
 * smtpuv_proto_tls_established(). Any byte the server sent after that 220
 * is response injection and finishes the session with SMTPUV_EINJECT.
 * On a refusal the state returns to READY. State: READY.
 */
SMTPUV_EXTERN int smtpuv_proto_starttls(smtpuv_proto *p);

/** The TLS handshake completed: forget the extensions and require a new
    EHLO (state GREETED). Only after STARTTLS's 220 was popped (else
    SMTPUV_ESTATE). Returns 0, SMTPUV_EINVAL, SMTPUV_ESTATE or the sticky
    error. */
SMTPUV_EXTERN int smtpuv_proto_tls_established(smtpuv_proto *p);

/**
 * AUTH `mechanism` [initial-response]. `initial_b64` is already base64
 * (the authenticators of smtpuv/auth.h produce it); NULL sends no initial
 * response, "" sends "=" (an empty one). Replies: 334 (positive, a
 * challenge: its text is the base64 challenge) keeps AUTHENTICATING; 235
 * returns to READY; anything else returns to READY with the failure.
 * The mechanism name must follow RFC 4422 (1..20 of A-Z 0-9 - _, upper
 * case) and base64 strings may only hold A-Z a-z 0-9 + / =, else
 * SMTPUV_EINVAL. Needs the AUTH extension (SMTPUV_ENOEXT). State: READY,
 * and not yet authenticated: after a 235 a second AUTH is SMTPUV_ESTATE
 * (RFC 4954 section 4) until a TLS handshake starts a new session
 * (smtpuv_proto_tls_established()). The core's copy of the line is zeroed once written (see
 * smtpuv_proto_consumed()); the caller's strings are the caller's to wipe.
 */
SMTPUV_EXTERN int smtpuv_proto_auth(smtpuv_proto *p, const char *mechanism,
                                    const char *initial_b64);

/** Answer a 334 challenge with a base64 line ("" sends an empty line).
    SMTPUV_ESTATE unless a 334 was popped and not answered yet;
    SMTPUV_EINVAL for NULL or characters outside the base64 alphabet. */
SMTPUV_EXTERN int smtpuv_proto_auth_response(smtpuv_proto *p,
                                             const char *response_b64);

/** Cancel the exchange after a 334 ("*"); the server answers 501. Same
    state rule as smtpuv_proto_auth_response(). */
SMTPUV_EXTERN int smtpuv_proto_auth_cancel(smtpuv_proto *p);

/** BODY= values for MAIL. */
typedef enum smtpuv_body_type {
  SMTPUV_BODY_UNSPECIFIED = 0, /**< no BODY= (7-bit body) */
  SMTPUV_BODY_7BIT,            /**< BODY=7BIT (needs 8BITMIME) */
  SMTPUV_BODY_8BITMIME,        /**< BODY=8BITMIME (needs 8BITMIME) */
  SMTPUV_BODY_BINARYMIME       /**< BODY=BINARYMIME (needs BINARYMIME and
                                    CHUNKING: the body must go with BDAT) */
} smtpuv_body_type;

/** DSN RET= of MAIL (RFC 3461): what a delivery status notification returns. */
typedef enum smtpuv_dsn_ret {
  SMTPUV_DSN_RET_UNSPECIFIED = 0, /**< no RET= parameter */
  SMTPUV_DSN_RET_FULL,            /**< RET=FULL: the whole message */
  SMTPUV_DSN_RET_HDRS             /**< RET=HDRS: the headers only */
} smtpuv_dsn_ret;

/**
 * MAIL FROM parameters. Use SMTPUV_MAIL_PARAMS_INIT (or zero-initialise
 * and set struct_size); fields are only ever appended and `struct_size`
 * tells the library how many it may read (smaller than this version's
 * struct: SMTPUV_EINVAL).
 */
typedef struct smtpuv_mail_params {
  size_t struct_size;     /**< sizeof(smtpuv_mail_params) */
  uint64_t size;          /**< message size for SIZE=, 0 = unknown. When the
                               server advertises a limit and size exceeds it,
                               MAIL is refused with SMTPUV_ETOOBIG. SIZE= is
                               only sent when the server advertises SIZE. */
  smtpuv_body_type body;  /**< BODY=; 7BIT and 8BITMIME need 8BITMIME (else
                               SMTPUV_ENOEXT / SMTPUV_E8BIT), BINARYMIME
                               needs BINARYMIME and CHUNKING (SMTPUV_ENOEXT) */
  int smtputf8;           /**< 1: add SMTPUTF8 (needs SMTPUTF8, else
                               SMTPUV_ENOEXT). Added automatically when the
                               sender is non-ASCII; a later non-ASCII RCPT
                               without it is refused with SMTPUV_ENOEXT. */
  smtpuv_dsn_ret dsn_ret; /**< RET=FULL/HDRS (needs DSN, else SMTPUV_ENOEXT) */
  const char *dsn_envid;  /**< ENVID=, xtext-encoded by the core (needs DSN);
                               1..100 printable ASCII characters (else
                               SMTPUV_EINVAL) */
  int requiretls;         /**< 1: REQUIRETLS (needs REQUIRETLS, else
                               SMTPUV_ENOEXT) */
} smtpuv_mail_params;

/** Initialiser of a smtpuv_mail_params: struct_size set, nothing declared. */
#define SMTPUV_MAIL_PARAMS_INIT {sizeof(smtpuv_mail_params), 0, SMTPUV_BODY_UNSPECIFIED, 0, SMTPUV_DSN_RET_UNSPECIFIED, NULL, 0}

/** DSN NOTIFY bits for RCPT. NEVER excludes the others. */
enum {
  SMTPUV_DSN_NOTIFY_SUCCESS = 1u << 0,
  SMTPUV_DSN_NOTIFY_FAILURE = 1u << 1,
  SMTPUV_DSN_NOTIFY_DELAY = 1u << 2,
  SMTPUV_DSN_NOTIFY_NEVER = 1u << 3
};

/** RCPT TO parameters; SMTPUV_RCPT_PARAMS_INIT, same growth rule as above. */
typedef struct smtpuv_rcpt_params {
  size_t struct_size;    /**< sizeof(smtpuv_rcpt_params) */
  unsigned dsn_notify;   /**< SMTPUV_DSN_NOTIFY_* or 0 (needs DSN); NEVER
                              with another bit or unknown bits:
                              SMTPUV_EINVAL */
  const char *dsn_orcpt; /**< original recipient: sent as
                              `ORCPT=rfc822;<xtext>` (needs DSN); the address
                              rules apply, non-ASCII allowed (xtext) */
} smtpuv_rcpt_params;

/** Initialiser of a smtpuv_rcpt_params: struct_size set, nothing declared. */
#define SMTPUV_RCPT_PARAMS_INIT {sizeof(smtpuv_rcpt_params), 0, NULL}

/**
 * `MAIL FROM:<sender>`. `sender` "" is the null reverse-path <>. The address
 * is refused with SMTPUV_EADDRESS as smtpuv_check_address() says (CR, LF,
 * other control characters, '<', '>', malformed UTF-8, longer than
 * SMTPUV_MAX_ADDRESS, NULL); non-ASCII needs SMTPUTF8 (SMTPUV_ENOEXT) and
 * adds the SMTPUTF8 parameter. `params` may be NULL. Parameters are written
 * in this order: SIZE= BODY= SMTPUTF8 RET= ENVID= REQUIRETLS. SMTPUV_ETOOBIG
 * when params->size exceeds the advertised SIZE limit. State: READY.
 */
SMTPUV_EXTERN int smtpuv_proto_mail(smtpuv_proto *p, const char *sender,
                                    const smtpuv_mail_params *params);

/** `RCPT TO:<recipient>` (non-empty; same address rules, SMTPUV_EADDRESS). A
    non-ASCII recipient needs SMTPUTF8 declared by this transaction's MAIL
    (SMTPUV_ENOEXT). `params` may be NULL; written as " NOTIFY=... ORCPT=...".
    State: MAIL_TRANSACTION or RECIPIENT_SENT. */
SMTPUV_EXTERN int smtpuv_proto_rcpt(smtpuv_proto *p, const char *recipient,
                                    const smtpuv_rcpt_params *params);

/**
 * DATA. State: RECIPIENT_SENT. Refused with SMTPUV_ENORCPT when every RCPT
 * reply is in and none was positive (issue RSET), with SMTPUV_ENOEXT when
 * the transaction declared BINARYMIME. The body may be written once the
 * 354 has been popped (state DATA). Until then (DATA_PENDING) no command
 * can be issued. If the 354 comes although no recipient was accepted, the
 * core writes the end of data itself (see SMTPUV_REPLY_EMPTY_DATA) and the
 * state is READY.
 */
SMTPUV_EXTERN int smtpuv_proto_data(smtpuv_proto *p);

/**
 * Append body bytes, in any chunking: lone LF and lone CR become CRLF, a
 * line starting with '.' gets another '.', and the state carries across
 * calls. When the transaction did not declare BODY=8BITMIME (or the server
 * lacks 8BITMIME) a chunk with a byte >= 0x80 is refused with SMTPUV_E8BIT
 * and nothing of it is written (the transaction cannot be completed: close
 * the connection). SMTPUV_EINVAL for NULL with a length. State: DATA.
 */
SMTPUV_EXTERN int smtpuv_proto_data_write(smtpuv_proto *p, const void *buf,
                                          size_t len);

/** End the body: CRLF if the body did not end with one, then ".\r\n".
    State: DATA; the state becomes READY (optimistically: MAIL may follow). */
SMTPUV_EXTERN int smtpuv_proto_data_end(smtpuv_proto *p);

/**
 * One BDAT chunk: `"BDAT <n>[ LAST]\r\n"` and the chunk. The chunk is
 * normalised like DATA (lone CR/LF become CRLF, the state carries across
 * chunks) but not dot-stuffed, and `<n>` is the normalised size; with
 * BODY=BINARYMIME the bytes are sent as they are. The LAST chunk adds a final
 * CRLF when the body did not end with one (not for BINARYMIME) and may be
 * empty. Needs CHUNKING (SMTPUV_ENOEXT). 8-bit bytes need BODY=8BITMIME or
 * BINARYMIME (SMTPUV_E8BIT, checked before anything is written); the first
 * chunk is refused with SMTPUV_ENORCPT like DATA. State: RECIPIENT_SENT or
 * BDAT; READY after the LAST chunk (MAIL may follow).
 */
SMTPUV_EXTERN int smtpuv_proto_bdat(smtpuv_proto *p, const void *buf,
                                    size_t len, int last);

/** RSET: aborts the transaction. State: READY, MAIL_TRANSACTION,
    RECIPIENT_SENT or BDAT (not DATA_PENDING or DATA: the server may be
    reading the body). */
SMTPUV_EXTERN int smtpuv_proto_rset(smtpuv_proto *p);

/** NOOP. State: GREETED or READY (ends a pipelining group). */
SMTPUV_EXTERN int smtpuv_proto_noop(smtpuv_proto *p);

/** `VRFY <string>` (non-empty, same character rules as addresses:
    SMTPUV_EADDRESS). Non-ASCII needs SMTPUTF8 (SMTPUV_ENOEXT) and adds the
    SMTPUTF8 parameter. State: READY (ends a pipelining group). */
SMTPUV_EXTERN int smtpuv_proto_vrfy(smtpuv_proto *p, const char *string);

/** QUIT; the state becomes FINISHED. State: GREETED, EHLO_SENT, READY,
    MAIL_TRANSACTION, RECIPIENT_SENT or BDAT. Not before the greeting, and
    not while the server may read it as something else: in DATA_PENDING and
    DATA (body text), STARTTLS_PENDING (TLS) or AUTHENTICATING (a SASL
    response); close the connection there instead. */
SMTPUV_EXTERN int smtpuv_proto_quit(smtpuv_proto *p);

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */
/* ------------------------------------------------------------------------ */

/** 1 if `buf` holds a byte >= 0x80 (needs 8BITMIME), else 0. Word-at-a-time. */
SMTPUV_EXTERN int smtpuv_is_8bit(const void *buf, size_t len);

/**
 * The message size a server counts for SIZE= (RFC 1870): the body's octets
 * once lone CR and lone LF became CRLF, with the CRLF the core adds when the
 * body does not end with a line ending, and without dot-stuffing and the
 * end-of-data mark. It equals the sum of the BDAT chunk sizes the core
 * writes for the same body, and what DATA writes minus the stuffed dots and
 * the final ".\r\n". For BODY=BINARYMIME the size is `len` itself (bytes
 * go unchanged). Returns 0 for an empty body or NULL. Reads the buffer once
 * at memory speed and allocates nothing.
 */
SMTPUV_EXTERN uint64_t smtpuv_body_wire_size(const void *buf, size_t len);

/** 1 if `buf` holds NUL or a bare CR/LF-less line over 998 octets — content
    that needs BINARYMIME; else 0. */
SMTPUV_EXTERN int smtpuv_needs_binarymime(const void *buf, size_t len);

/**
 * Check an address for mail()/rcpt(): 0, SMTPUV_EADDRESS (NULL, a control
 * character such as CR, LF, TAB or DEL, '<', '>', malformed UTF-8, longer
 * than SMTPUV_MAX_ADDRESS bytes), or with `smtputf8_ok` 0 and a non-ASCII
 * byte SMTPUV_ENOEXT.
 */
SMTPUV_EXTERN int smtpuv_check_address(const char *addr, int smtputf8_ok);

#ifdef __cplusplus
}
#endif

#endif /* SMTPUV_PROTOCOL_H */

/* SPDX-License-Identifier: MIT */
/**
 * @file
 * smtpuv/send.h — what a message send is made of, for every event loop.
 *
 * The envelope, the body (a buffer or a pull source), the result of a send
 * with the verdict on every recipient, the TLS modes and the timeouts. These
 * types belong to no event loop: the libuv client (smtpuv/client.h, which
 * includes this header) and the sans-io conversation underneath it share
 * them, and a program that drives the core from another loop can use them
 * without libuv's headers.
 */
#ifndef SMTPUV_SEND_H
#define SMTPUV_SEND_H

#include <stddef.h>
#include <stdint.h>

#include "../smtpuv.h"
#include "protocol.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Connection settings shared by every client                                */
/* ------------------------------------------------------------------------ */

/**
 * TLS modes. The default, SMTPUV_TLS_REQUIRED, is the safe one: nothing but
 * EHLO and STARTTLS is ever written before the TLS handshake succeeded, and
 * a server that does not offer STARTTLS (or refuses it) fails the message
 * before AUTH or MAIL is sent.
 */
typedef enum smtpuv_tls_mode {
  SMTPUV_TLS_REQUIRED = 0,   /**< STARTTLS must succeed (default; port 587) */
  SMTPUV_TLS_OPPORTUNISTIC,  /**< STARTTLS when offered, else plaintext. A
                                  failed handshake still fails the message:
                                  there is no silent downgrade after it. */
  SMTPUV_TLS_IMPLICIT,       /**< TLS from the first byte (port 465) */
  SMTPUV_TLS_NONE            /**< never TLS (explicit opt-out) */
} smtpuv_tls_mode;

/** Timeouts, in milliseconds; see smtpuv_options_set_timeout(). */
typedef enum smtpuv_timeout {
  SMTPUV_TIMEOUT_CONNECT = 0, /**< resolution + TCP connect, all addresses
                                   together (default 30 000) */
  SMTPUV_TIMEOUT_COMMAND,     /**< each reply, the greeting and the TLS
                                   handshake (default 60 000) */
  SMTPUV_TIMEOUT_DATA,        /**< body transmission: reset whenever a write
                                   completes (default 180 000) */
  SMTPUV_TIMEOUT_FINAL,       /**< the reply to the final "." or BDAT LAST
                                   (default 600 000, RFC 5321 4.5.3.2.6) */
  SMTPUV_TIMEOUT_IDLE         /**< an idle connection is closed with QUIT
                                   after this long (default 60 000) */
} smtpuv_timeout;

/** Trace record kinds for the trace callback. */
typedef enum smtpuv_trace_kind {
  SMTPUV_TRACE_SEND = 0, /**< command bytes written (plaintext SMTP); AUTH
                              payloads appear as "<redacted>" */
  SMTPUV_TRACE_SEND_BODY, /**< message content as written (dot-stuffed for
                               DATA; the bytes after "BDAT n" for BDAT) */
  SMTPUV_TRACE_RECV,     /**< bytes received (plaintext SMTP) */
  SMTPUV_TRACE_INFO      /**< one line of client commentary without line
                              ending: "connecting to 127.0.0.1:587",
                              "TLS: TLSv1.3 TLS_AES_256_GCM_SHA384; ..." */
} smtpuv_trace_kind;

/**
 * Trace callback: `bytes`/`len` are exactly what went over the wire (after
 * TLS decryption, before TLS encryption), in arbitrary pieces; not
 * NUL-terminated. Runs synchronously inside the client: do not call into
 * the client from it.
 */
typedef void (*smtpuv_trace_cb)(void *data, smtpuv_trace_kind kind,
                                const char *bytes, size_t len);

/* ------------------------------------------------------------------------ */
/* Messages: envelope, body, result                                          */
/* ------------------------------------------------------------------------ */

/**
 * Who the message is from and to. Zero-initialise (or SMTPUV_ENVELOPE_INIT):
 * fields are only appended and `struct_size` says how many the library may
 * read. Everything is copied by smtpuv_client_send().
 */
typedef struct smtpuv_envelope {
  size_t struct_size;            /**< sizeof(smtpuv_envelope) */
  const char *sender;            /**< MAIL FROM; "" is the null path <> */
  const char *const *recipients; /**< RCPT TO addresses (at least one) */
  size_t nrecipients;            /**< number of `recipients` */
  /** NULL, or one RCPT parameter set (DSN) per recipient. */
  const smtpuv_rcpt_params *rcpt_params;
  /** NULL, or MAIL parameters. When `body` is SMTPUV_BODY_UNSPECIFIED the
      client chooses, and the rules hold for every body:
        - content with NUL bytes or lines over 998 octets ("binary") goes
          only as BODY=BINARYMIME, which needs BINARYMIME and CHUNKING from
          the server (and chunking on); otherwise the message fails with
          SMTPUV_EBINARY;
        - content with 8-bit bytes goes only as BODY=8BITMIME (or
          BINARYMIME), which needs 8BITMIME; otherwise SMTPUV_E8BIT.
      A buffer body is scanned whole before MAIL: a message that breaks a
      rule fails in phase MAIL and nothing of it is written. A streamed
      body is judged before MAIL by the SMTPUV_BODY_8BIT flag and by its
      first chunk (what the source has ready, up to 64 KiB): BODY=8BITMIME
      is declared when the flag is set or 8-bit bytes were seen,
      BODY=BINARYMIME when binary content was seen; the rest is checked as
      it flows, and a chunk that breaks the rule declared ends the
      transaction before its final "." (BDAT: no LAST, then RSET; DATA: the
      connection is dropped, as DATA cannot be abandoned) with
      SMTPUV_EBINARY or SMTPUV_E8BIT in phase DATA: never a silently
      illegal message. An explicit `body` is kept (binary content then
      needs BINARYMIME). `size` 0 is filled in from the body when the
      server offers SIZE: a buffer's size as it goes out (bare LFs counted
      as CRLF, see smtpuv_body_wire_size()), a stream's `size`. */
  const smtpuv_mail_params *mail_params;
} smtpuv_envelope;

/** Initialiser of a smtpuv_envelope: struct_size set, the rest empty. */
#define SMTPUV_ENVELOPE_INIT {sizeof(smtpuv_envelope), NULL, NULL, 0, NULL, NULL}

/**
 * Streaming body source: copy up to `cap` bytes of the message into `buf`
 * and return how many (> 0), 0 at the end of the message, SMTPUV_EAGAIN
 * when nothing is available yet (call smtpuv_client_body_ready() when there
 * is), or another negative value to abort the message (it fails with
 * SMTPUV_EBODY; the connection is dropped since DATA cannot be aborted).
 */
typedef long (*smtpuv_body_read_cb)(void *user, void *buf, size_t cap);

/** Rewind a streaming source to its first byte. Return 0, or a negative
    value when that is impossible. */
typedef int (*smtpuv_body_rewind_cb)(void *user);

/**
 * The message content (headers and body, lines ending in CRLF or LF; the
 * client dot-stuffs and normalises line endings, the caller must not).
 * Either a buffer (`read` NULL) or a streaming source. Use the init
 * functions below. The struct is copied by smtpuv_client_send(); the buffer
 * (or the source's `user`) must stay valid until the send callback.
 *
 * A message that failed BEFORE its final "." was written because the
 * connection broke (a reused connection the server had just closed) is
 * retried once on a fresh connection when the body is a buffer or its
 * source has a `rewind` hook. Never after the final ".".
 */
typedef struct smtpuv_body {
  size_t struct_size;          /**< sizeof(smtpuv_body) */
  const void *data;            /**< buffer body */
  size_t len;                  /**< length of the buffer body in bytes */
  smtpuv_body_read_cb read;    /**< streaming body (then data is ignored) */
  smtpuv_body_rewind_cb rewind; /**< NULL: not rewindable */
  void *user;                  /**< passed to read/rewind */
  uint64_t size;               /**< streaming: total size if known (SIZE=),
                                    0 when unknown */
  unsigned flags;              /**< SMTPUV_BODY_* flags below, 0 by default */
} smtpuv_body;

/** Body flag: the content may hold 8-bit bytes anywhere. A streamed body
    is then declared BODY=8BITMIME whenever the server offers 8BITMIME
    (not only when its first chunk shows 8-bit bytes). Ignored for
    buffers, which are scanned. */
#define SMTPUV_BODY_8BIT 1u

/** A body from a caller buffer kept valid until the send callback. */
static inline void smtpuv_body_init_buffer(smtpuv_body *b, const void *data,
                                           size_t len) {
  smtpuv_body z = {sizeof(smtpuv_body), data, len, NULL, NULL, NULL, 0, 0};
  *b = z;
}

/** A streamed body; `rewind` may be NULL, `size` 0 when unknown. */
static inline void smtpuv_body_init_stream(smtpuv_body *b,
                                           smtpuv_body_read_cb read,
                                           smtpuv_body_rewind_cb rewind,
                                           void *user, uint64_t size) {
  smtpuv_body z = {sizeof(smtpuv_body), NULL, 0, read, rewind, user, size,
                   0};
  *b = z;
}

/** Overall fate of a message. */
typedef enum smtpuv_send_status {
  SMTPUV_SEND_SENT = 0, /**< the server took responsibility for it (for at
                             least one recipient; all with the option) */
  SMTPUV_SEND_FAILED,   /**< not delivered to anyone; safe to retry */
  SMTPUV_SEND_UNKNOWN,  /**< the connection was lost (or timed out) after
                             the final "." was written and before its
                             reply: it may or may not have been accepted.
                             Retrying risks a duplicate. The phase names
                             the reply that was awaited (with pipelining
                             the whole message may be written before the
                             reply to MAIL arrives). */
  SMTPUV_SEND_CANCELED  /**< smtpuv_client_close() before it was sent */
} smtpuv_send_status;

/** Name of a status ("sent", "failed", "unknown outcome", "canceled"), for
    logs; "?" for a value outside the enum. */
SMTPUV_EXTERN const char *smtpuv_send_status_name(smtpuv_send_status s);

/** Where in the session a message's outcome was decided. */
typedef enum smtpuv_phase {
  SMTPUV_PHASE_NONE = 0,    /**< never started (canceled while queued) */
  SMTPUV_PHASE_CONNECT,     /**< resolution and TCP connection */
  SMTPUV_PHASE_TLS,         /**< STARTTLS command or TLS handshake */
  SMTPUV_PHASE_GREETING,    /**< the server's opening reply */
  SMTPUV_PHASE_EHLO,        /**< EHLO (or HELO) */
  SMTPUV_PHASE_AUTH,
  SMTPUV_PHASE_MAIL,
  SMTPUV_PHASE_RCPT,
  SMTPUV_PHASE_DATA,        /**< DATA command, or body transmission */
  SMTPUV_PHASE_END_OF_DATA, /**< the reply to "." or to BDAT LAST */
  SMTPUV_PHASE_QUIT,
  SMTPUV_PHASE_PROXY        /**< the SOCKS5 handshake with the proxy, before
                                 the greeting (smtpuv/socks5.h) */
} smtpuv_phase;

/** Name of a phase ("connect", "TLS", "RCPT"...), for logs; "?" for a
    value outside the enum. */
SMTPUV_EXTERN const char *smtpuv_phase_name(smtpuv_phase p);

/** The server's verdict on one recipient. */
typedef struct smtpuv_rcpt_result {
  const char *address;  /**< as given in the envelope */
  int accepted;         /**< 1 when RCPT got 2xx */
  int code;             /**< RCPT reply code, 0 when RCPT was never answered */
  const char *enhanced; /**< "2.1.5" or "" */
  const char *text;     /**< reply text (lines joined by "\n"), or "" */
} smtpuv_rcpt_result;

/**
 * What happened to a message. Passed to the send callback; every pointer is
 * valid only during the callback (keep a copy with smtpuv_send_result_dup()).
 * Fields are only appended.
 */
typedef struct smtpuv_send_result {
  size_t struct_size;         /**< sizeof(smtpuv_send_result) */
  smtpuv_send_status status;  /**< the message's fate */
  int error;                  /**< 0 when SENT with every recipient accepted;
                                   else an SMTPUV_E* code: ETEMPFAIL /
                                   EPERMFAIL / ESHUTDOWN for a refusing
                                   reply, ENORCPT when recipients were
                                   refused (also with status SENT when only
                                   some were), transport and TLS codes,
                                   ECANCELED... */
  smtpuv_phase phase;         /**< where it was decided */
  const char *message;        /**< one line for humans, never NULL:
                                   "RCPT TO:<a@b>: 550 5.1.1 unknown user",
                                   "connect 127.0.0.1:25: connection refused",
                                   "certificate verify failed: hostname
                                   mismatch" */
  int reply_code;             /**< the deciding server reply (the reply to
                                   the final "." when sent), 0 when none */
  const char *reply_enhanced; /**< "2.0.0" or "" */
  const char *reply_text;     /**< its text, lines joined by "\n", or "" */
  const smtpuv_rcpt_result *recipients; /**< one per envelope recipient;
                                     read them with
                                     smtpuv_send_result_recipient(), which
                                     steps by `recipient_size` */
  size_t nrecipients;         /**< number of `recipients` */
  size_t naccepted;           /**< recipients accepted by RCPT */
  unsigned attempts;          /**< attempts made (1; more after a retry on
                                   another connection or by the retry
                                   policy, smtpuv_options_set_retry()) */
  const char *tls;            /**< TLS summary of the connection
                                   ("TLSv1.3 ...; subject CN=...") or NULL
                                   for plaintext / not connected */
  size_t recipient_size;      /**< sizeof(smtpuv_rcpt_result) of the
                                   library that filled `recipients`: the
                                   distance between two elements. Fields of
                                   smtpuv_rcpt_result are only appended; one
                                   at offset o of size n is there when
                                   recipient_size >= o + n (since 0.2) */
  const char *attempt_log;    /**< the reasons of the earlier attempts, one
                                   line each ("attempt 1: RCPT TO:<a@b>: 451
                                   4.3.0 try later"), or NULL when the
                                   message was tried once */
} smtpuv_send_result;

/**
 * The `i`th recipient of a result (0-based, in envelope order), stepping by
 * the library's `recipient_size`, so code compiled against an older or a
 * newer header reads the array right. NULL when `r` is NULL or `i` is not
 * below `r->nrecipients`. Valid as long as `r` is.
 */
SMTPUV_EXTERN const smtpuv_rcpt_result *
smtpuv_send_result_recipient(const smtpuv_send_result *r, size_t i);

/** Deep copy of a result (one allocation from `mem`, may be NULL).
    Returns 0, SMTPUV_EINVAL or SMTPUV_ENOMEM. */
SMTPUV_EXTERN int smtpuv_send_result_dup(const smtpuv_mem *mem,
                                         const smtpuv_send_result *r,
                                         smtpuv_send_result **out);

/** Free a result from smtpuv_send_result_dup() or smtpuv_send_sync().
    NULL is accepted. */
SMTPUV_EXTERN void smtpuv_send_result_free(smtpuv_send_result *r);

#ifdef __cplusplus
}
#endif

#endif /* SMTPUV_SEND_H */

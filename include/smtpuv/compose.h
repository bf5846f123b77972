/* SPDX-License-Identifier: MIT */
/*
 * smtpuv/compose.h: composing Internet messages (RFC 5322 + MIME).
 *
 * A small, strict composer in the core (libc and OpenSSL libcrypto only, no
 * libuv: it links with libsmtpuv_core alone). Build a message from parts,
 * finish it, then pull its bytes:
 *
 *   smtpuv_compose *c;
 *   smtpuv_compose_new(NULL, 0, &c);
 *   smtpuv_compose_address(c, SMTPUV_COMPOSE_FROM, "Zoë", "zoe@example.org");
 *   smtpuv_compose_address(c, SMTPUV_COMPOSE_TO, NULL, "ops@example.net");
 *   smtpuv_compose_subject(c, "Café is open");
 *   smtpuv_compose_text(c, text, strlen(text));
 *   smtpuv_compose_attach(c, &part);          // a file, bytes or a callback
 *   smtpuv_compose_finish(c);                 // checks, encodings, sizes
 *   ... smtpuv_compose_read(c, buf, sizeof buf) until it returns 0 ...
 *   smtpuv_compose_free(c);
 *
 * The output is produced incrementally: headers and boundaries are built by
 * smtpuv_compose_finish(), part contents are encoded while they are read,
 * so an attachment from a file or a callback of any size goes out through a
 * few tens of KiB. smtpuv_compose_read()/smtpuv_compose_rewind() have the
 * contract of the libuv client's streamed body (smtpuv_body_read_cb and
 * smtpuv_body_rewind_cb in smtpuv/client.h), so a finished composer is
 * passed to the client as it is:
 *
 *   smtpuv_envelope env = SMTPUV_ENVELOPE_INIT;
 *   env.sender = smtpuv_compose_sender(c);
 *   env.recipients = smtpuv_compose_recipients(c, &env.nrecipients);
 *   smtpuv_body body;
 *   int64_t size = smtpuv_compose_size(c);
 *   smtpuv_body_init_stream(&body, smtpuv_compose_read, smtpuv_compose_rewind,
 *                           c, size > 0 ? (uint64_t)size : 0);
 *   smtpuv_client_send(client, &env, &body, on_sent, NULL); // c kept until on_sent
 *
 * What is written:
 *   - header fields in this order: Date, From, Sender, Reply-To, To, Cc,
 *     Subject, Message-ID, In-Reply-To, References, the extra fields (in
 *     the order added), MIME-Version, Content-Type, Content-Transfer-Encoding.
 *     Bcc is never written (its addresses are only in the envelope).
 *     Lines end in CRLF, are folded at 78 columns where there is a place to
 *     fold and never exceed 998 octets; every header byte is 7-bit: UTF-8
 *     text becomes RFC 2047 encoded words (Q or B, whichever is shorter for
 *     that word; a UTF-8 sequence is never split), non-ASCII file names
 *     RFC 2231 parameters.
 *   - the body: a text part alone (text/plain or text/html), or
 *     multipart/alternative (text, html), with inline parts (those with a
 *     Content-ID) in a multipart/related around the html, and attachments
 *     in a multipart/mixed around all that. Boundaries are random
 *     ("=_" and 28 hex digits from RAND_bytes; "=_" never occurs in
 *     quoted-printable nor base64 output) and checked against the 7bit/8bit
 *     parts and the headers.
 *   - transfer encodings, per part: 7bit when the content is (ASCII, lines
 *     of at most 998 octets, CRLF line ends for attachments); 8bit instead
 *     of quoted-printable/base64 only with SMTPUV_COMPOSE_8BITMIME;
 *     quoted-printable for text that is mostly ASCII (at most one byte in
 *     six to escape); base64 (76-column lines) otherwise, and always for
 *     attachments read from a file or a callback.
 *
 * Every function returns 0 or a negative SMTPUV_E* code; a failing call
 * changes nothing (the composer stays as it was before the call).
 */
#ifndef SMTPUV_COMPOSE_H
#define SMTPUV_COMPOSE_H

#include <stddef.h>
#include <stdint.h>

#include "../smtpuv.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A message being composed. Opaque; one thread at a time. */
typedef struct smtpuv_compose smtpuv_compose;

/** Flags of smtpuv_compose_new(). */
enum {
  /** The path offers 8BITMIME: 8-bit text goes as Content-Transfer-Encoding
      8bit instead of quoted-printable/base64 (the envelope must then ask
      for BODY=8BITMIME: see smtpuv_compose_8bit()). */
  SMTPUV_COMPOSE_8BITMIME = 1u << 0,
  /** Invalid UTF-8 in a header value, a display name, a file name or a text
      part is replaced by U+FFFD instead of refused. */
  SMTPUV_COMPOSE_REPLACE_INVALID = 1u << 1
};

/** The address fields. */
typedef enum smtpuv_compose_field {
  SMTPUV_COMPOSE_FROM = 0, /**< From (at least one; several need a Sender) */
  SMTPUV_COMPOSE_SENDER,   /**< Sender (one at most) */
  SMTPUV_COMPOSE_REPLY_TO, /**< Reply-To */
  SMTPUV_COMPOSE_TO,       /**< To */
  SMTPUV_COMPOSE_CC,       /**< Cc */
  SMTPUV_COMPOSE_BCC       /**< Bcc: in the envelope, never in the headers */
} smtpuv_compose_field;

/**
 * A new, empty composer (allocations through `mem`, NULL: malloc/free).
 * `flags`: SMTPUV_COMPOSE_8BITMIME, SMTPUV_COMPOSE_REPLACE_INVALID.
 * Returns 0, SMTPUV_EINVAL (`out` NULL, an unknown flag) or SMTPUV_ENOMEM.
 */
SMTPUV_EXTERN int smtpuv_compose_new(const smtpuv_mem *mem, unsigned flags,
                                     smtpuv_compose **out);

/** Free the composer, closing the files of its attachments. NULL is
    accepted. */
SMTPUV_EXTERN void smtpuv_compose_free(smtpuv_compose *c);

/**
 * Add a mailbox to an address field. `address` is an addr-spec
 * ("local@domain", ASCII, a quoted local part allowed) checked with the
 * address-list rules of smtpuv_address_list_parse() (it must be one address
 * and nothing else); `name` (UTF-8, NULL or "" for none) is the display
 * name, written as atoms, a quoted string or RFC 2047 encoded words as
 * needed; its blanks are not significant (RFC 5322 phrase): tabs become
 * spaces, runs of them one space, leading and trailing ones are dropped. Mailboxes appear in the order added.
 * Returns 0, SMTPUV_EINVAL (NULL `c` or `address`, unknown field, already
 * finished: SMTPUV_ESTATE), SMTPUV_EADDRESS (not exactly one valid ASCII
 * addr-spec with an '@'), SMTPUV_EHEADER (invalid UTF-8, CR, LF or NUL in
 * the name; a second Sender) or SMTPUV_ENOMEM.
 */
SMTPUV_EXTERN int smtpuv_compose_address(smtpuv_compose *c,
                                         smtpuv_compose_field field,
                                         const char *name,
                                         const char *address);

/** Set the Subject (UTF-8; replaces an earlier one). Returns 0,
    SMTPUV_EINVAL, SMTPUV_ESTATE, SMTPUV_EHEADER (invalid UTF-8, CR, LF or
    NUL) or SMTPUV_ENOMEM. */
SMTPUV_EXTERN int smtpuv_compose_subject(smtpuv_compose *c, const char *text);

/**
 * Add another header field, written after References in the order added.
 * `name`: 1 to 76 printable ASCII characters without ':' (so no space),
 * not one the composer writes itself (From, Sender, Reply-To, To, Cc, Bcc,
 * Subject, Date, Message-ID, MIME-Version, In-Reply-To, References,
 * Content-Type, Content-Transfer-Encoding: SMTPUV_EINVAL). `value` is
 * UTF-8 text (unstructured: ASCII words are kept as they are, the others
 * become encoded words). Returns 0, SMTPUV_EINVAL, SMTPUV_ESTATE,
 * SMTPUV_EHEADER (bad name; invalid UTF-8, CR, LF or NUL in the value) or
 * SMTPUV_ENOMEM.
 */
SMTPUV_EXTERN int smtpuv_compose_header(smtpuv_compose *c, const char *name,
                                        const char *value);

/**
 * Set the Date: `unix_time` seconds since the epoch shown in the zone
 * `utc_offset_minutes` east of UTC (-5999..5999, written "+HHMM"). Without a call
 * smtpuv_compose_finish() takes the current time, in UTC (+0000).
 * Returns 0, SMTPUV_EINVAL (offset out of range, time before 1900 or after
 * 9999) or SMTPUV_ESTATE.
 */
SMTPUV_EXTERN int smtpuv_compose_date(smtpuv_compose *c, int64_t unix_time,
                                      int utc_offset_minutes);

/**
 * The domain of the Message-ID smtpuv_compose_finish() generates
 * ("<32 random hex digits@domain>", RAND_bytes). Without a call, the domain
 * of the sender (Sender, else the first From). `domain`: letters, digits,
 * '-' and '.', or an address literal in brackets. Returns 0, SMTPUV_EINVAL,
 * SMTPUV_ESTATE or SMTPUV_ENOMEM.
 */
SMTPUV_EXTERN int smtpuv_compose_message_id(smtpuv_compose *c,
                                            const char *domain);

/** Set In-Reply-To: one or more message ids "<left@right>" separated by
    blanks. Returns 0, SMTPUV_EINVAL, SMTPUV_ESTATE, SMTPUV_EHEADER (not a
    list of message ids) or SMTPUV_ENOMEM. */
SMTPUV_EXTERN int smtpuv_compose_in_reply_to(smtpuv_compose *c,
                                             const char *msg_ids);

/** Set References, as smtpuv_compose_in_reply_to(). */
SMTPUV_EXTERN int smtpuv_compose_references(smtpuv_compose *c,
                                            const char *msg_ids);

/**
 * Set the text/plain part (UTF-8, `len` bytes, copied; replaces an earlier
 * one). Line ends (CRLF, LF or a lone CR) become CRLF and a text that does
 * not end with one gets a final CRLF. Returns 0, SMTPUV_EINVAL (NULL with a
 * length; also invalid UTF-8 or a NUL byte unless
 * SMTPUV_COMPOSE_REPLACE_INVALID, which replaces invalid UTF-8), SMTPUV_ESTATE
 * or SMTPUV_ENOMEM.
 */
SMTPUV_EXTERN int smtpuv_compose_text(smtpuv_compose *c, const void *text,
                                      size_t len);

/** Set the text/html part, as smtpuv_compose_text(). With a text part too
    the two form a multipart/alternative. */
SMTPUV_EXTERN int smtpuv_compose_html(smtpuv_compose *c, const void *html,
                                      size_t len);

/** A streamed attachment source: the contract of smtpuv_body_read_cb
    (bytes > 0, 0 at the end, SMTPUV_EAGAIN, or a negative error). */
typedef long (*smtpuv_compose_read_cb)(void *user, void *buf, size_t cap);

/** Rewind a streamed attachment source to its first byte: 0, or a negative
    value when impossible. */
typedef int (*smtpuv_compose_rewind_cb)(void *user);

/**
 * An attachment or an inline part. Exactly one source: `data`/`len` (copied
 * by smtpuv_compose_attach()), `path` (opened by smtpuv_compose_attach(),
 * read while composing; its size from fstat), or `read` (called while
 * composing; `size` its total or -1 when unknown, which makes the message
 * size unknown). Use SMTPUV_COMPOSE_PART_INIT.
 */
typedef struct smtpuv_compose_part {
  size_t struct_size;       /**< sizeof(smtpuv_compose_part) */
  const char *content_type; /**< "type/subtype" (parameters may follow
                                 after ';'), NULL: application/octet-stream;
                                 multipart/ and message/ are refused */
  const char *filename;     /**< UTF-8 file name, NULL: none (Content-
                                 Disposition filename, RFC 2231 if needed;
                                 spaces at its ends are dropped, control
                                 characters refused) */
  const char *content_id;   /**< non-NULL: an inline part, Content-ID
                                 \<content_id\>, referenced as
                                 cid:content_id from the html
                                 (multipart/related); printable ASCII
                                 without blanks, angle brackets or quotes */
  const void *data;         /**< in-memory content */
  size_t len;               /**< bytes at `data` */
  const char *path;         /**< a file */
  smtpuv_compose_read_cb read; /**< a callback source */
  smtpuv_compose_rewind_cb rewind; /**< NULL: the message cannot rewind */
  void *user;               /**< passed to read and rewind */
  int64_t size;             /**< the callback source's total, -1 unknown */
} smtpuv_compose_part;

#define SMTPUV_COMPOSE_PART_INIT                                               \
  {sizeof(smtpuv_compose_part), NULL, NULL, NULL, NULL, 0,                     \
   NULL, NULL, NULL, NULL, -1}

/**
 * Add an attachment (or an inline part when `content_id` is set), in the
 * order added. Returns 0, SMTPUV_EINVAL (no source or several, a bad
 * content type or content id), SMTPUV_ESTATE, SMTPUV_EHEADER (invalid
 * UTF-8 or a control character in the file name), SMTPUV_EIO (the file
 * cannot be opened, is not a regular file or cannot be read) or
 * SMTPUV_ENOMEM.
 */
SMTPUV_EXTERN int smtpuv_compose_attach(smtpuv_compose *c,
                                        const smtpuv_compose_part *part);

/**
 * Check the message and build it: a From (and a Sender when there are
 * several From mailboxes) and at least one recipient (To, Cc or Bcc) are
 * required; Date and Message-ID are made if not given; encodings and
 * boundaries are chosen. After it only the reading functions and
 * smtpuv_compose_free() may be called. Returns 0, SMTPUV_EINVAL,
 * SMTPUV_ESTATE (finished already), SMTPUV_EHEADER (no From, no recipient,
 * several From without Sender, no domain for the Message-ID), SMTPUV_EIO
 * (the clock) or SMTPUV_ENOMEM; after a failure the composer can be
 * completed and finished again.
 */
SMTPUV_EXTERN int smtpuv_compose_finish(smtpuv_compose *c);

/**
 * Copy up to `cap` of the next bytes of the finished message into `buf`:
 * returns their count (> 0), 0 at the end, SMTPUV_EAGAIN when a callback
 * source returned it (call again later), or a negative error, which sticks:
 * SMTPUV_ESTATE (not finished), SMTPUV_EINVAL (`cap` 0, NULL arguments),
 * SMTPUV_EIO (a file read failed), SMTPUV_EBODY (a callback failed, or a
 * source gave more or fewer bytes than its size). `composer` is a
 * smtpuv_compose * (void * so that the function is a smtpuv_body_read_cb).
 */
SMTPUV_EXTERN long smtpuv_compose_read(void *composer, void *buf, size_t cap);

/**
 * Start the message over from its first byte (the same bytes again: date,
 * ids and boundaries are fixed by smtpuv_compose_finish()). Returns 0, or
 * SMTPUV_ESTATE (not finished), SMTPUV_EINVAL (a callback source without
 * rewind), SMTPUV_EIO / SMTPUV_EBODY (a file or callback could not
 * rewind). A smtpuv_body_rewind_cb.
 */
SMTPUV_EXTERN int smtpuv_compose_rewind(void *composer);

/** The exact size in bytes of the finished message, or -1 when a callback
    source's size is unknown (or not finished). */
SMTPUV_EXTERN int64_t smtpuv_compose_size(const smtpuv_compose *c);

/** The envelope sender of the finished message: the Sender's address, else
    the first From's (as smtpuv_message_new() derives it); NULL before
    smtpuv_compose_finish(). Owned by the composer. */
SMTPUV_EXTERN const char *smtpuv_compose_sender(const smtpuv_compose *c);

/** The envelope recipients of the finished message: the addresses of To,
    Bcc and Cc in that order, each once (as smtpuv_message_new() derives
    them), NULL-terminated; `*n` (may be NULL) their count. NULL (and 0)
    before smtpuv_compose_finish(). Owned by the composer. */
SMTPUV_EXTERN const char *const *
smtpuv_compose_recipients(const smtpuv_compose *c, size_t *n);

/** 1 when a part went out as 8bit (SMTPUV_COMPOSE_8BITMIME): the envelope
    must declare BODY=8BITMIME; else 0. */
SMTPUV_EXTERN int smtpuv_compose_8bit(const smtpuv_compose *c);

/**
 * Read the whole finished message (from its start: it rewinds first, and
 * again after, so the message can then be sent) into a new NUL-terminated
 * buffer, to free with smtpuv_compose_buffer_free().
 * For messages that fit in memory; a source returning SMTPUV_EAGAIN fails
 * the call with SMTPUV_EAGAIN. Returns 0 or the codes of
 * smtpuv_compose_read() and smtpuv_compose_rewind(), SMTPUV_ENOMEM.
 */
SMTPUV_EXTERN int smtpuv_compose_to_buffer(smtpuv_compose *c, char **out,
                                           size_t *len);

/** Free a buffer of smtpuv_compose_to_buffer(), smtpuv_compose_missing() ;
    `mem` is the allocator given to its composer or function (NULL:
    free). */
SMTPUV_EXTERN void smtpuv_compose_buffer_free(const smtpuv_mem *mem,
                                              char *buf);

/**
 * One call for the common notification: a finished composer for a plain
 * UTF-8 text message from `from` to the addr-specs of `to` (`nto` of them),
 * with `subject` and `text` (NUL-terminated UTF-8), Date now and a random
 * Message-ID. Read it, or pass it to the client, then free it.
 * Returns 0 or the codes of the functions it calls.
 */
SMTPUV_EXTERN int smtpuv_compose_plain(const smtpuv_mem *mem,
                                       const char *from,
                                       const char *const *to, size_t nto,
                                       const char *subject, const char *text,
                                       smtpuv_compose **out);

/**
 * For a message the caller already has (msmtp's behaviour): the header
 * fields to put in front of it so that it has a Date and a Message-ID.
 * Scans the header block of `msg` (`len` bytes, as smtpuv_header_next());
 * for each of Date and Message-ID that is missing, one field is made
 * (Date: `unix_time`, or now when it is negative, in UTC; Message-ID: 32
 * random hex digits @ `domain`, or when `domain` is NULL the domain of the
 * message's Sender or else first From address). The fields end like the
 * message's first line (LF when it ends in a bare LF, else CRLF).
 * `*out` receives a NUL-terminated buffer (allocated through `mem`, "" when
 * nothing is missing; free with smtpuv_compose_buffer_free()) and `*out_len`
 * its length. Prepend it: the message itself is not copied.
 * Returns 0, SMTPUV_EINVAL (NULL arguments, bad `domain`), SMTPUV_EHEADER
 * (a Message-ID is missing and no domain is known) or SMTPUV_ENOMEM.
 */
SMTPUV_EXTERN int smtpuv_compose_missing(const smtpuv_mem *mem,
                                         const void *msg, size_t len,
                                         const char *domain,
                                         int64_t unix_time, char **out,
                                         size_t *out_len);

#ifdef __cplusplus
}
#endif

#endif

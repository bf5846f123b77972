/* SPDX-License-Identifier: MIT */
/*
 * smtpuv/headers.h: the header field scanner and the RFC 5322 address-list
 * parser. Pure parsing on the caller's bytes (libc only), part of the core
 * (libsmtpuv_core): the libuv client derives envelopes with them
 * (smtpuv_message_new() in smtpuv/client.h, which includes this header) and
 * the composer (smtpuv/compose.h) checks addresses with them.
 */
#ifndef SMTPUV_HEADERS_H
#define SMTPUV_HEADERS_H

#include <stddef.h>

#include "../smtpuv.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * One header field of a message, as smtpuv_header_next() finds it. The
 * pointers are into the caller's message; nothing is NUL-terminated.
 * Fields are only ever appended: smtpuv_header_next() writes no more than
 * the caller's sizeof(smtpuv_header_field) and sets `struct_size` to the
 * bytes it filled (as smtpuv_reply).
 */
typedef struct smtpuv_header_field {
  size_t struct_size; /**< set by the library: bytes filled (output) */
  const char *name;   /**< field name ("To"), without the colon */
  size_t name_len;    /**< length of `name` */
  const char *value;  /**< field body: from after the colon to the end of
                           the field, continuation lines (folds) included,
                           without the final line ending */
  size_t value_len;   /**< length of `value` */
  size_t start;       /**< offset of the field in the message */
  size_t end;         /**< offset just past the field, its last line ending
                           included: the field is [start, end) */
} smtpuv_header_field;

/**
 * A macro over smtpuv_header_next_sized() that passes the caller's
 * `sizeof(smtpuv_header_field)`.
 * Step through the header block at the start of `data`: set `*pos` to 0,
 * then call until it returns 0; each call fills `field` and moves `*pos`
 * past it. The block ends at an empty line (CRLF or LF), at the end of the
 * data, or at a line that is not a field (a name of printable ASCII
 * characters followed by a colon; blanks before the colon are tolerated).
 * A field runs through its continuation lines (lines starting with a space
 * or a tab). This is the scan smtpuv_message_new() makes.
 * Returns 1 (a field), 0 (end of the header block: `*pos` is where it
 * ended, at the empty line if there is one) or SMTPUV_EINVAL (`pos` or
 * `field` NULL, `data` NULL with a length).
 */
#define smtpuv_header_next(data, len, pos, field)                              \
  smtpuv_header_next_sized((data), (len), (pos), (field),                      \
                           sizeof(smtpuv_header_field))

/**
 * smtpuv_header_next() with the size of the caller's smtpuv_header_field
 * spelled out (for bindings): at most `field_size` bytes of `*field` are
 * written and `field->struct_size` says how many. SMTPUV_EINVAL also when
 * `field_size` is smaller than the field of version 0.2 (up to `end`).
 */
SMTPUV_EXTERN int smtpuv_header_next_sized(const void *data, size_t len,
                                           size_t *pos,
                                           smtpuv_header_field *field,
                                           size_t field_size);

/** 1 when the field's name is `name`, compared ASCII case-insensitively
    ("BCC" is "Bcc"); else 0 (also for NULL arguments). */
SMTPUV_EXTERN int smtpuv_header_field_is(const smtpuv_header_field *field,
                                         const char *name);

/**
 * The addresses of an RFC 5322 address list (smtpuv_address_list_parse()).
 * Read-only; free it with smtpuv_address_list_free().
 */
typedef struct smtpuv_address_list {
  size_t count;                 /**< number of addresses (0 for an empty
                                     list or an empty group) */
  const char *const *addresses; /**< `count` addr-specs ("local@domain"),
                                     NUL-terminated, in the order of the
                                     list, duplicates kept; a NULL follows
                                     the last (never NULL itself) */
} smtpuv_address_list;

/**
 * Parse an address-list field body (To, Cc, Bcc, From, Reply-To...; RFC
 * 5322 3.4) into its addr-specs, as smtpuv_message_new() reads them:
 * display names and comments are dropped ("A, Person" <a@example.com>
 * (work) gives a@example.com), a quoted local part stays quoted
 * ("\"odd local\"@example.com"), groups give their members ("Team:
 * a@example.com, b@example.com;"; an empty group gives nothing), an
 * obsolete source route is dropped (`<@relay:a@example.com>`), and line
 * breaks count as folding white space. `value` (`len` bytes, no NUL needed)
 * is typically smtpuv_header_field.value. Every address must pass
 * smtpuv_check_address(address, 1) (UTF-8 allowed).
 * On success `*out` is a list for smtpuv_address_list_free() (allocated
 * through `mem`, NULL: malloc/free), possibly empty.
 * Returns 0, SMTPUV_EINVAL (`out` NULL, `value` NULL with a length),
 * SMTPUV_EHEADER (malformed: an unterminated angle address, quoted string
 * or comment; words without an address ("John Doe"); an address that fails
 * the check or is longer than SMTPUV_MAX_ADDRESS) or SMTPUV_ENOMEM; `*out`
 * is NULL after a failure.
 */
SMTPUV_EXTERN int smtpuv_address_list_parse(const smtpuv_mem *mem,
                                            const void *value, size_t len,
                                            smtpuv_address_list **out);

/** Free a list from smtpuv_address_list_parse(). NULL is accepted. */
SMTPUV_EXTERN void smtpuv_address_list_free(smtpuv_address_list *list);

#ifdef __cplusplus
}
#endif

#endif

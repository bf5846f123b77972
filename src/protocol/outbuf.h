/*
 * Internal: the outgoing byte queue of a protocol session.
 *
 * A chain of fixed blocks that never move: a pointer handed to the
 * transport stays valid until the transport reports those bytes consumed,
 * however many commands are appended meanwhile. Writers reserve contiguous
 * room in the tail block, fill it, then commit what they used; small
 * commands share the tail block, body data fills whole blocks. One empty
 * block is kept as a spare so a steady stream of writes does not malloc.
 */
#ifndef SMTPUV_SRC_OUTBUF_H
#define SMTPUV_SRC_OUTBUF_H

#include <stddef.h>

#include "smtpuv.h"

/* Data bytes of a standard block. Larger reservations get a block of their
   own size (long AUTH lines); body data is written in slices that fit. */
#define SMTPUV_OUTBUF_BLOCK (64 * 1024 - 64)

typedef struct smtpuv__oblock smtpuv__oblock;

typedef struct smtpuv__outbuf {
  smtpuv__oblock *head;  /* oldest unconsumed bytes */
  smtpuv__oblock *tail;  /* where writers append */
  smtpuv__oblock *spare; /* one standard block kept for reuse */
  size_t pending;        /* committed, not yet consumed */
} smtpuv__outbuf;

/* A position to roll back to when a multi-block write fails half way. */
typedef struct smtpuv__outbuf_mark {
  smtpuv__oblock *tail;
  size_t tail_end;
  size_t pending;
} smtpuv__outbuf_mark;

void smtpuv__outbuf_free(smtpuv__outbuf *ob, const smtpuv_mem *mem);

/* Room in the tail block right now (0 when there is no tail). */
size_t smtpuv__outbuf_room(const smtpuv__outbuf *ob);

/* Contiguous room for `n` bytes at the end of the queue, adding a block if
   the tail cannot take them; NULL when out of memory (nothing changed that
   anybody can observe). The bytes count once committed. */
char *smtpuv__outbuf_reserve(smtpuv__outbuf *ob, const smtpuv_mem *mem,
                             size_t n);

/* Commit `n` bytes written at the pointer of the last reserve (n <= the
   reserved size). */
void smtpuv__outbuf_commit(smtpuv__outbuf *ob, size_t n);

void smtpuv__outbuf_mark_get(const smtpuv__outbuf *ob,
                             smtpuv__outbuf_mark *mark);

/* Drop everything committed since `mark` (blocks added since are freed). */
void smtpuv__outbuf_rollback(smtpuv__outbuf *ob, const smtpuv_mem *mem,
                             const smtpuv__outbuf_mark *mark);

/* First contiguous run of pending bytes. */
void smtpuv__outbuf_peek(const smtpuv__outbuf *ob, const void **ptr,
                         size_t *len);

/* Spans of pending bytes after the first `skip`; returns the count. */
int smtpuv__outbuf_iov(const smtpuv__outbuf *ob, size_t skip, smtpuv_iov *iov,
                       int iovcnt);

/* Mark `n` bytes written (clamped to what is pending). */
void smtpuv__outbuf_consume(smtpuv__outbuf *ob, const smtpuv_mem *mem,
                            size_t n);

#endif

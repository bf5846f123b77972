/* SPDX-License-Identifier: MIT */
/*
 * Internal: the outgoing byte queue of a protocol session.
 *
 * A chain of blocks that never move: a pointer handed to the transport
 * stays valid until the transport reports those bytes consumed, however
 * many commands are appended meanwhile. Writers reserve contiguous room in
 * the tail block, fill it, then commit what they used.
 *
 * Two block sizes: small blocks (4 KiB) for commands and small bodies, large
 * ones (64 KiB) only for streaming a body; a reservation larger than a large
 * block gets a block of its own size. Drained blocks are kept as spares,
 * one small one and up to SMTPUV_OUTBUF_LARGE_SPARES large ones, so a
 * steady stream of small messages (or of body data) does not malloc. The
 * owner calls smtpuv__outbuf_trim() when output is drained and no body is
 * being streamed: the large spares are freed, so an idle session holds one
 * small block at most.
 *
 * Blocks that received secrets (AUTH lines) are marked sensitive and wiped
 * whole before they are freed or reused.
 */
#ifndef SMTPUV_SRC_OUTBUF_H
#define SMTPUV_SRC_OUTBUF_H

#include <stddef.h>

#include "smtpuv.h"

/* Data bytes of a small block (commands) and of a large block (body
   streaming), each a malloc of just under a power of two. */
#define SMTPUV_OUTBUF_SMALL (4 * 1024 - 64)
#define SMTPUV_OUTBUF_BLOCK (64 * 1024 - 64)
/* Large blocks kept for reuse while a body streams (a transport that keeps
   about 128 KiB in flight cycles through three). */
#define SMTPUV_OUTBUF_LARGE_SPARES 4

typedef struct smtpuv__oblock smtpuv__oblock;

typedef struct smtpuv__outbuf {
  smtpuv__oblock *head;        /* oldest unconsumed bytes */
  smtpuv__oblock *tail;        /* where writers append */
  smtpuv__oblock *spare_small; /* drained blocks kept for reuse */
  smtpuv__oblock *spare_large; /* a list, linked by next */
  unsigned nspare_large;
  size_t pending;              /* committed, not yet consumed */
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

/* Contiguous room for `n` bytes at the end of the queue. When the tail
   cannot take them a block is added: a small one for up to
   SMTPUV_OUTBUF_SMALL bytes, a large one up to SMTPUV_OUTBUF_BLOCK, else
   one of exactly `n` bytes (so reserving a block's size starts a new block
   of that kind). NULL when out of memory (nothing changed that anybody can
   observe). The bytes count once committed. */
char *smtpuv__outbuf_reserve(smtpuv__outbuf *ob, const smtpuv_mem *mem,
                             size_t n);

/* Commit `n` bytes written at the pointer of the last reserve (n <= the
   reserved size). */
void smtpuv__outbuf_commit(smtpuv__outbuf *ob, size_t n);

/* The tail block holds a secret: wipe it before it is freed or reused. */
void smtpuv__outbuf_sensitive(smtpuv__outbuf *ob);

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

/* Free the large spare blocks (call when drained and idle). */
void smtpuv__outbuf_trim(smtpuv__outbuf *ob, const smtpuv_mem *mem);

/* Heap bytes held: blocks in the queue and spares, headers included. */
size_t smtpuv__outbuf_heap_bytes(const smtpuv__outbuf *ob);

#endif

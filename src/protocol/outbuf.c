/* SPDX-License-Identifier: MIT */
/* The outgoing block chain (see outbuf.h). */
#include "protocol/outbuf.h"

#include <stdint.h>

#include "protocol/mem.h"

struct smtpuv__oblock {
  smtpuv__oblock *next;
  size_t cap;    /* bytes in data[] */
  size_t start;  /* first unconsumed byte */
  size_t end;    /* first free byte */
  int sensitive; /* holds a secret: wipe before free or reuse */
  char data[];
};

static smtpuv__oblock *block_new(smtpuv__outbuf *ob, const smtpuv_mem *mem,
                                 size_t n) {
  smtpuv__oblock *b;
  if (n <= SMTPUV_OUTBUF_SMALL && ob->spare_small != NULL) {
    b = ob->spare_small;
    ob->spare_small = NULL;
    return b;
  }
  if (n > SMTPUV_OUTBUF_SMALL && n <= SMTPUV_OUTBUF_BLOCK &&
      ob->spare_large != NULL) {
    b = ob->spare_large;
    ob->spare_large = b->next;
    ob->nspare_large--;
    b->next = NULL;
    return b;
  }
  size_t cap = n <= SMTPUV_OUTBUF_SMALL   ? SMTPUV_OUTBUF_SMALL
               : n <= SMTPUV_OUTBUF_BLOCK ? SMTPUV_OUTBUF_BLOCK
                                          : n;
  if (cap > SIZE_MAX - sizeof *b)
    return NULL;
  b = smtpuv__malloc(mem, sizeof *b + cap);
  if (b == NULL)
    return NULL;
  b->next = NULL;
  b->cap = cap;
  b->start = b->end = 0;
  b->sensitive = 0;
  return b;
}

/* Wipe a sensitive block, then keep it as a spare if there is room for
   one of its size, else free it. */
static void block_release(smtpuv__outbuf *ob, const smtpuv_mem *mem,
                          smtpuv__oblock *b) {
  if (b->sensitive) {
    smtpuv__wipe(b->data, b->cap);
    b->sensitive = 0;
  }
  b->start = b->end = 0;
  if (b->cap == SMTPUV_OUTBUF_SMALL && ob->spare_small == NULL) {
    b->next = NULL;
    ob->spare_small = b;
  } else if (b->cap == SMTPUV_OUTBUF_BLOCK &&
             ob->nspare_large < SMTPUV_OUTBUF_LARGE_SPARES) {
    b->next = ob->spare_large;
    ob->spare_large = b;
    ob->nspare_large++;
  } else {
    smtpuv__free(mem, b);
  }
}

static void chain_free(smtpuv__outbuf *ob, const smtpuv_mem *mem,
                       smtpuv__oblock *b) {
  while (b != NULL) {
    smtpuv__oblock *next = b->next;
    block_release(ob, mem, b);
    b = next;
  }
}

void smtpuv__outbuf_free(smtpuv__outbuf *ob, const smtpuv_mem *mem) {
  chain_free(ob, mem, ob->head);
  ob->head = ob->tail = NULL;
  ob->pending = 0;
  smtpuv__outbuf_trim(ob, mem);
  smtpuv__free(mem, ob->spare_small);
  ob->spare_small = NULL;
}

size_t smtpuv__outbuf_room(const smtpuv__outbuf *ob) {
  return ob->tail != NULL ? ob->tail->cap - ob->tail->end : 0;
}

char *smtpuv__outbuf_reserve(smtpuv__outbuf *ob, const smtpuv_mem *mem,
                             size_t n) {
  smtpuv__oblock *b = ob->tail;
  if (b != NULL && b->cap - b->end >= n)
    return b->data + b->end;
  b = block_new(ob, mem, n);
  if (b == NULL)
    return NULL;
  if (ob->tail != NULL)
    ob->tail->next = b;
  else
    ob->head = b;
  ob->tail = b;
  return b->data;
}

void smtpuv__outbuf_commit(smtpuv__outbuf *ob, size_t n) {
  ob->tail->end += n;
  ob->pending += n;
}

void smtpuv__outbuf_sensitive(smtpuv__outbuf *ob) {
  if (ob->tail != NULL)
    ob->tail->sensitive = 1;
}

void smtpuv__outbuf_mark_get(const smtpuv__outbuf *ob,
                             smtpuv__outbuf_mark *mark) {
  mark->tail = ob->tail;
  mark->tail_end = ob->tail != NULL ? ob->tail->end : 0;
  mark->pending = ob->pending;
}

void smtpuv__outbuf_rollback(smtpuv__outbuf *ob, const smtpuv_mem *mem,
                             const smtpuv__outbuf_mark *mark) {
  if (mark->tail == NULL) {
    chain_free(ob, mem, ob->head);
    ob->head = ob->tail = NULL;
  } else {
    chain_free(ob, mem, mark->tail->next);
    mark->tail->next = NULL;
    mark->tail->end = mark->tail_end;
    ob->tail = mark->tail;
  }
  ob->pending = mark->pending;
}

void smtpuv__outbuf_peek(const smtpuv__outbuf *ob, const void **ptr,
                         size_t *len) {
  const smtpuv__oblock *b = ob->head;
  while (b != NULL && b->start == b->end)
    b = b->next;
  *ptr = b != NULL ? b->data + b->start : NULL;
  *len = b != NULL ? b->end - b->start : 0;
}

int smtpuv__outbuf_iov(const smtpuv__outbuf *ob, size_t skip, smtpuv_iov *iov,
                       int iovcnt) {
  int n = 0;
  for (const smtpuv__oblock *b = ob->head; b != NULL && n < iovcnt;
       b = b->next) {
    size_t len = b->end - b->start;
    if (skip >= len) {
      skip -= len;
      continue;
    }
    iov[n].base = b->data + b->start + skip;
    iov[n].len = len - skip;
    skip = 0;
    n++;
  }
  return n;
}

void smtpuv__outbuf_consume(smtpuv__outbuf *ob, const smtpuv_mem *mem,
                            size_t n) {
  if (n > ob->pending)
    n = ob->pending;
  ob->pending -= n;
  while (ob->head != NULL) {
    smtpuv__oblock *b = ob->head;
    size_t len = b->end - b->start;
    if (n < len) {
      b->start += n;
      return;
    }
    n -= len;
    ob->head = b->next;
    if (ob->tail == b)
      ob->tail = NULL;
    block_release(ob, mem, b);
  }
}

void smtpuv__outbuf_trim(smtpuv__outbuf *ob, const smtpuv_mem *mem) {
  while (ob->spare_large != NULL) {
    smtpuv__oblock *next = ob->spare_large->next;
    smtpuv__free(mem, ob->spare_large);
    ob->spare_large = next;
  }
  ob->nspare_large = 0;
}

static size_t chain_bytes(const smtpuv__oblock *b) {
  size_t n = 0;
  for (; b != NULL; b = b->next)
    n += sizeof *b + b->cap;
  return n;
}

size_t smtpuv__outbuf_heap_bytes(const smtpuv__outbuf *ob) {
  return chain_bytes(ob->head) + chain_bytes(ob->spare_small) +
         chain_bytes(ob->spare_large);
}

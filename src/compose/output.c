/* SPDX-License-Identifier: MIT */
/* The finished message, read incrementally: literal segments copied, part
 * contents encoded on demand into the caller's buffer (or a small one of
 * ours), streamed sources read through a bounded input buffer. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "compose/compose_obj.h"

/* short local names of the shared types */
typedef smtpuv__compose_part part;
typedef smtpuv__compose_mailbox mailbox;
typedef smtpuv__compose_xheader xheader;
typedef smtpuv__compose_seg seg;
#define SRC_MEM SMTPUV__COMPOSE_SRC_MEM
#define SRC_FILE SMTPUV__COMPOSE_SRC_FILE
#define SRC_CB SMTPUV__COMPOSE_SRC_CB
#define P_TEXT SMTPUV__COMPOSE_P_TEXT
#define P_HTML SMTPUV__COMPOSE_P_HTML
#define P_ATTACH SMTPUV__COMPOSE_P_ATTACH

/* ---- output -------------------------------------------------------------------- */

static long src_read(part *p, void *buf, size_t cap) {
  if (p->src == SRC_FILE) {
    for (;;) {
      ssize_t r = read(p->fd, buf, cap);
      if (r >= 0)
        return (long)r;
      if (errno != EINTR)
        return SMTPUV_EIO;
    }
  }
  long r = p->read(p->user, buf, cap);
  if (r == SMTPUV_EAGAIN)
    return r;
  if (r < 0 || (size_t)r > cap)
    return SMTPUV_EBODY;
  return r;
}

/* Encoded bytes of `p` into dst (room >= 80 unless 7bit/8bit): > 0, 0 at
   the end of the part, or a negative code. */
static long produce(smtpuv_compose *c, part *p, char *dst, size_t room) {
  if (p->enc == SMTPUV__COMPOSE_ENC_7BIT || p->enc == SMTPUV__COMPOSE_ENC_8BIT) {
    size_t k = p->len - p->pos < room ? p->len - p->pos : room;
    memcpy(dst, p->data + p->pos, k);
    p->pos += k;
    return (long)k;
  }
  if (p->enc == SMTPUV__COMPOSE_ENC_QP)
    return (long)smtpuv__compose_qp_encode(p->data, p->len, &p->pos, &p->col, dst,
                                   room);
  size_t maxin = (room - 2) / 78 * 57; /* whole lines that fit */
  if (p->src == SRC_MEM) {
    size_t k = p->len - p->pos < maxin ? p->len - p->pos : maxin;
    size_t o = smtpuv__compose_b64_lines(p->data + p->pos, k, &p->lines, dst);
    p->pos += k;
    return (long)o;
  }
  while (c->ilen < 57 && !p->eof) {
    long r = src_read(p, c->ibuf + c->ilen, IBUF_SIZE - c->ilen);
    if (r < 0)
      return r;
    if (r == 0) {
      p->eof = 1;
      if (p->size >= 0 && p->in_done != (uint64_t)p->size)
        return SMTPUV_EBODY; /* fewer bytes than its size */
      break;
    }
    c->ilen += (size_t)r;
    p->in_done += (uint64_t)r;
    if (p->size >= 0 && p->in_done > (uint64_t)p->size)
      return SMTPUV_EBODY; /* more bytes than its size */
  }
  size_t avail = p->eof ? c->ilen : c->ilen / 57 * 57;
  size_t k = avail < maxin ? avail : maxin;
  size_t o = smtpuv__compose_b64_lines(c->ibuf, k, &p->lines, dst);
  memmove(c->ibuf, c->ibuf + k, c->ilen - k);
  c->ilen -= k;
  return (long)o;
}

long smtpuv_compose_read(void *composer, void *buf, size_t cap) {
  smtpuv_compose *c = composer;
  if (c == NULL || buf == NULL || cap == 0)
    return SMTPUV_EINVAL;
  if (!c->finished)
    return SMTPUV_ESTATE;
  if (c->err != 0)
    return c->err;
  char *out = buf;
  size_t n = 0;
  while (n < cap) {
    if (c->opos < c->olen) {
      size_t k = c->olen - c->opos < cap - n ? c->olen - c->opos : cap - n;
      memcpy(out + n, c->obuf + c->opos, k);
      c->opos += k;
      n += k;
      continue;
    }
    if (c->cur >= c->nseg)
      break;
    seg *s = &c->segs[c->cur];
    if (s->p == NULL) {
      size_t left = s->len - c->segpos;
      size_t k = left < cap - n ? left : cap - n;
      memcpy(out + n, c->lit.p + s->off + c->segpos, k);
      c->segpos += k;
      n += k;
      if (c->segpos == s->len) {
        c->cur++;
        c->segpos = 0;
      }
      continue;
    }
    int direct = cap - n >= DIRECT_MIN || s->p->enc <= SMTPUV__COMPOSE_ENC_8BIT;
    long r = direct ? produce(c, s->p, out + n, cap - n)
                    : produce(c, s->p, c->obuf, OBUF_SIZE);
    if (r == SMTPUV_EAGAIN)
      return n > 0 ? (long)n : SMTPUV_EAGAIN;
    if (r < 0) {
      c->err = (int)r;
      return r;
    }
    if (r == 0) {
      c->cur++;
      continue;
    }
    if (direct) {
      n += (size_t)r;
    } else {
      c->opos = 0;
      c->olen = (size_t)r;
    }
  }
  return (long)n;
}

int smtpuv_compose_rewind(void *composer) {
  smtpuv_compose *c = composer;
  if (c == NULL)
    return SMTPUV_EINVAL;
  if (!c->finished)
    return SMTPUV_ESTATE;
  for (size_t i = 0; i < c->nseg; i++) {
    part *p = c->segs[i].p;
    if (p == NULL || p->src == SRC_MEM)
      continue;
    if (p->src == SRC_CB && p->rewind == NULL)
      return SMTPUV_EINVAL;
  }
  for (size_t i = 0; i < c->nseg; i++) {
    part *p = c->segs[i].p;
    if (p == NULL)
      continue;
    p->pos = p->col = 0;
    p->in_done = p->lines = 0;
    p->eof = 0;
    int rc = 0;
    if (p->src == SRC_FILE && lseek(p->fd, 0, SEEK_SET) != 0)
      rc = SMTPUV_EIO;
    else if (p->src == SRC_CB && p->rewind(p->user) != 0)
      rc = SMTPUV_EBODY;
    if (rc != 0) {
      c->err = rc;
      return rc;
    }
  }
  c->cur = c->segpos = c->opos = c->olen = c->ilen = 0;
  c->err = 0;
  return 0;
}

int64_t smtpuv_compose_size(const smtpuv_compose *c) {
  return c != NULL && c->finished ? c->size : -1;
}

const char *smtpuv_compose_sender(const smtpuv_compose *c) {
  return c != NULL && c->finished ? c->sender : NULL;
}

const char *const *smtpuv_compose_recipients(const smtpuv_compose *c,
                                             size_t *n) {
  int ok = c != NULL && c->finished;
  if (n != NULL)
    *n = ok ? c->nrcpt : 0;
  return ok ? (const char *const *)c->rcpt : NULL;
}

int smtpuv_compose_8bit(const smtpuv_compose *c) {
  return c != NULL && c->finished && c->eightbit;
}

int smtpuv_compose_to_buffer(smtpuv_compose *c, char **out, size_t *len) {
  if (c == NULL || out == NULL)
    return SMTPUV_EINVAL;
  *out = NULL;
  int rc = smtpuv_compose_rewind(c);
  if (rc != 0)
    return rc;
  smtpuv__compose_buf b;
  smtpuv__compose_buf_init(&b, &c->mem);
  char chunk[16384];
  for (;;) {
    long r = smtpuv_compose_read(c, chunk, sizeof chunk);
    if (r == 0)
      break;
    if (r < 0) {
      smtpuv__compose_buf_free(&b);
      return (int)r;
    }
    smtpuv__compose_buf_put(&b, chunk, (size_t)r);
  }
  if (b.p == NULL)
    smtpuv__compose_buf_put(&b, "", 0);
  if (b.err != 0 || (b.p == NULL && (b.p = smtpuv__calloc(&c->mem, 1, 1)) ==
                                        NULL)) {
    smtpuv__compose_buf_free(&b);
    return SMTPUV_ENOMEM;
  }
  rc = smtpuv_compose_rewind(c); /* ready to be read (sent) again */
  if (rc != 0) {
    smtpuv__compose_buf_free(&b);
    return rc;
  }
  *out = b.p;
  if (len != NULL)
    *len = b.len;
  return 0;
}

void smtpuv_compose_buffer_free(const smtpuv_mem *mem, char *buf) {
  smtpuv_mem mm;
  smtpuv__mem_init(&mm, mem);
  smtpuv__free(&mm, buf);
}

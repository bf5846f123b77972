/* SPDX-License-Identifier: MIT */
/*
 * Server input: smtpuv_proto_feed() and smtpuv_proto_next_reply().
 *
 * feed() copies the bytes line by line (one memchr per line) and checks each
 * line as soon as it is complete, and the line and reply limits before a
 * byte is copied, so a server cannot make the buffer grow past the limits
 * (plus whatever complete replies the caller has not popped yet, each
 * answering a command it issued). Each complete reply is matched at once to
 * the oldest command without one; that is how STARTTLS's 220 is known the
 * moment it arrives, and anything after it is refused as injection.
 *
 * next_reply() turns the oldest matched reply into text where it lies: the
 * line texts are moved down over the codes and line endings, joined with
 * "\n" and NUL-terminated, so popping copies nothing and allocates nothing
 * unless the reply has more lines than the inline array.
 */
#include <string.h>

#include "protocol/mem.h"
#include "protocol/proto_int.h"

#define IN_MIN_CAP 1024
/* An empty input buffer larger than this (it grew for a long pipelined
   reply burst) is freed, so an idle session keeps little. */
#define IN_KEEP_CAP 4096

/* ---- feed --------------------------------------------------------------- */

static void in_compact(smtpuv_proto *p) {
  size_t shift = p->in.start;
  if (shift == 0)
    return;
  memmove(p->in.buf, p->in.buf + shift, p->in.end - shift);
  p->in.start = 0;
  p->in.end -= shift;
  p->rd.line_start -= shift;
  p->rd.reply_start -= shift;
}

static int in_reserve(smtpuv_proto *p, size_t n) {
  size_t need = p->in.end + n;
  if (need <= p->in.cap)
    return 0;
  size_t cap = p->in.cap != 0 ? 2 * p->in.cap : IN_MIN_CAP;
  if (cap < need)
    cap = need;
  char *buf = smtpuv__realloc(&p->mem, p->in.buf, cap);
  if (buf == NULL)
    return SMTPUV_ENOMEM;
  p->in.buf = buf;
  p->in.cap = cap;
  return 0;
}

/* Byte offset in the server's stream of the line being received. */
static unsigned long long line_offset(const smtpuv_proto *p) {
  return (unsigned long long)(p->rd.bytes -
                              (p->in.end - p->rd.line_start));
}

static unsigned long long line_number(const smtpuv_proto *p) {
  return (unsigned long long)p->rd.lines + 1;
}

/* LMTP bookkeeping as a reply is matched to `e` (LMTP mode only): count
   the transaction's accepted recipients; a slot that gets the final
   verdict voids the slots after it no reply will come for. */
static void lmtp_matched(smtpuv_proto *p, smtpuv__pending *e) {
  smtpuv__reader *rd = &p->rd;
  int ok = e->code / 100 == 2;
  if (e->cmd == SMTPUV_CMD_MAIL) {
    rd->lm_txn = e->txn;
    rd->lm_accepted = 0;
    rd->lm_mail_failed = !ok;
  } else if (e->cmd == SMTPUV_CMD_RCPT && e->txn == rd->lm_txn) {
    rd->lm_accepted += (uint32_t)ok;
  } else if (e->lmtp_slot) {
    /* a failed transaction gets one reply, as in SMTP */
    uint32_t expected = e->txn == rd->lm_txn && !rd->lm_mail_failed &&
                                rd->lm_accepted > 0
                            ? rd->lm_accepted
                            : 1;
    e->last = e->rcpt_index + 1 >= expected;
    while (e->last && rd->matched < p->ring_count) {
      smtpuv__pending *n = smtpuv__ring_at(p, rd->matched);
      if (!n->lmtp_slot || n->txn != e->txn)
        break;
      n->voided = 1;
      rd->matched++;
      rd->voids++;
    }
  }
}

/* A reply is complete: give it to the oldest command without one. */
static int reply_done(smtpuv_proto *p) {
  smtpuv__reader *rd = &p->rd;
  uint32_t len = (uint32_t)(p->in.end - rd->reply_start);
  if (rd->unsolicited != 0)
    return smtpuv__proto_fail(p, SMTPUV_EPROTO,
                              "reply line %llu: reply after the server's "
                              "closing 421 (byte %llu)",
                              (unsigned long long)rd->lines,
                              (unsigned long long)(rd->bytes - len));
  if (rd->matched < p->ring_count) {
    smtpuv__pending *e = smtpuv__ring_at(p, rd->matched++);
    e->reply_len = len;
    e->nlines = rd->nlines;
    e->code = (uint16_t)rd->code;
    e->voided = 0;
    if (e->cmd == SMTPUV_CMD_STARTTLS && rd->code == 220)
      rd->tls_wait = 1;
    if (p->lmtp)
      lmtp_matched(p, e);
  } else if (rd->code == 421) {
    rd->unsolicited = 1;
    rd->unsol_len = len;
    rd->unsol_nlines = rd->nlines;
  } else {
    return smtpuv__proto_fail(p, SMTPUV_EPROTO,
                              "reply line %llu: reply %d nobody asked for "
                              "(byte %llu)",
                              (unsigned long long)rd->lines, rd->code,
                              (unsigned long long)(rd->bytes - len));
  }
  rd->reply_start = p->in.end;
  rd->nlines = 0;
  return 0;
}

/* The line [rd.line_start, in.end) just got its LF: check it. */
static int line_done(smtpuv_proto *p) {
  smtpuv__reader *rd = &p->rd;
  const char *l = p->in.buf + rd->line_start;
  size_t n = p->in.end - rd->line_start - 1;
  const char *why = NULL;
  if (n > 0 && l[n - 1] == '\r')
    n--;
  if (n < 3 || l[0] < '0' || l[0] > '9' || l[1] < '0' || l[1] > '9' ||
      l[2] < '0' || l[2] > '9')
    why = "no three-digit code";
  else if (n > 3 && l[3] != ' ' && l[3] != '-')
    why = "no space or '-' after the code";
  else if (l[0] < '2' || l[0] > '5')
    why = "code outside 200..599";
  else if (memchr(l, '\0', n) != NULL)
    why = "NUL byte";
  else if (memchr(l, '\r', n) != NULL)
    why = "CR inside the line";
  if (why != NULL)
    return smtpuv__proto_fail(p, SMTPUV_EPROTO,
                              "reply line %llu: %s (byte %llu)",
                              line_number(p), why, line_offset(p));
  int code = (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
  if (rd->nlines > 0 && code != rd->code)
    return smtpuv__proto_fail(p, SMTPUV_EPROTO,
                              "reply line %llu: code %d differs from %d "
                              "(byte %llu)",
                              line_number(p), code, rd->code, line_offset(p));
  rd->code = code;
  rd->nlines++;
  rd->lines++;
  rd->line_start = p->in.end;
  return n == 3 || l[3] == ' ' ? reply_done(p) : 0;
}

/* Check the limits for `seg` more bytes of the current line. */
static int limits_ok(smtpuv_proto *p, size_t seg) {
  if (p->in.end - p->rd.line_start + seg > SMTPUV_MAX_REPLY_LINE)
    return smtpuv__proto_fail(p, SMTPUV_EPROTO,
                              "reply line %llu: longer than %d bytes "
                              "(byte %llu)",
                              line_number(p), SMTPUV_MAX_REPLY_LINE,
                              line_offset(p));
  if (p->in.end - p->rd.reply_start + seg > SMTPUV_MAX_REPLY_SIZE)
    return smtpuv__proto_fail(p, SMTPUV_EPROTO,
                              "reply line %llu: reply larger than %d bytes "
                              "(byte %llu)",
                              line_number(p), SMTPUV_MAX_REPLY_SIZE,
                              line_offset(p));
  return 0;
}

int smtpuv_proto_feed(smtpuv_proto *p, const void *data, size_t len) {
  if (p == NULL || (data == NULL && len > 0))
    return SMTPUV_EINVAL;
  if (p->err != 0)
    return p->err;
  in_compact(p);
  const smtpuv__reader saved = p->rd;
  const size_t saved_end = p->in.end;
  const char *d = data;
  while (len > 0) {
    if (p->rd.tls_wait)
      return smtpuv__proto_fail(p, SMTPUV_EINJECT,
                                "byte %llu: data after STARTTLS's 220 "
                                "(response injection)",
                                (unsigned long long)p->rd.bytes);
    const char *nl = memchr(d, '\n', len);
    size_t seg = nl != NULL ? (size_t)(nl - d) + 1 : len;
    if (limits_ok(p, seg) != 0)
      return p->err;
    if (in_reserve(p, seg) != 0) {
      p->rd = saved;
      p->in.end = saved_end;
      return SMTPUV_ENOMEM;
    }
    memcpy(p->in.buf + p->in.end, d, seg);
    p->in.end += seg;
    p->rd.bytes += seg;
    d += seg;
    len -= seg;
    if (nl != NULL && line_done(p) != 0)
      return p->err;
  }
  return 0;
}

/* ---- next_reply ---------------------------------------------------------- */

static int lines_reserve(smtpuv_proto *p, size_t n) {
  if (n <= p->lines_cap)
    return 0;
  size_t cap = 2 * p->lines_cap;
  if (cap < n)
    cap = n;
  smtpuv_str *l = smtpuv__malloc(&p->mem, cap * sizeof *l);
  if (l == NULL)
    return SMTPUV_ENOMEM;
  p->lines = l; /* trim() freed a previous heap array */
  p->lines_cap = cap;
  return 0;
}

/* Point lines[] at each line's text in the raw reply (nothing moved). The
   reply ends with the last line's LF. */
static void split_lines(smtpuv_proto *p, const char *s, const char *end,
                        size_t nlines) {
  for (size_t i = 0; i < nlines; i++) {
    const char *nl =
        i + 1 < nlines ? memchr(s, '\n', (size_t)(end - s)) : end - 1;
    size_t n = (size_t)(nl - s);
    if (n > 0 && s[n - 1] == '\r')
      n--;
    size_t skip = n > 3 ? 4 : 3;
    p->lines[i].ptr = s + skip;
    p->lines[i].len = n - skip;
    s = nl + 1;
  }
}

/* Join the lines with "\n" over the raw reply starting at `dst`. */
static size_t join_lines(smtpuv_proto *p, char *dst, size_t nlines) {
  char *w = dst;
  for (size_t i = 0; i < nlines; i++) {
    memmove(w, p->lines[i].ptr, p->lines[i].len);
    p->lines[i].ptr = w;
    w += p->lines[i].len;
    if (i + 1 < nlines)
      *w++ = '\n';
  }
  *w = '\0';
  return (size_t)(w - dst);
}

static int digits(const char *s, size_t len, size_t max, int *v) {
  size_t n = 0;
  *v = 0;
  while (n < len && n < max + 1 && s[n] >= '0' && s[n] <= '9')
    *v = *v * 10 + (s[n++] - '0');
  return n >= 1 && n <= max ? (int)n : 0;
}

/* RFC 3463 "class.subject.detail" at the start of the first line, followed
   by a space or the end, with the class equal to the code's first digit. */
static void parse_enhanced(smtpuv_reply *r) {
  const char *s = r->lines[0].ptr;
  size_t len = r->lines[0].len, n, pos = 0;
  int cls, sub, det;
  if ((n = digits(s, len, 1, &cls)) == 0 || cls != r->code / 100 ||
      n >= len || s[n] != '.')
    return;
  pos = n + 1;
  if ((n = digits(s + pos, len - pos, 3, &sub)) == 0 || pos + n >= len ||
      s[pos + n] != '.')
    return;
  pos += n + 1;
  if ((n = digits(s + pos, len - pos, 3, &det)) == 0)
    return;
  pos += n;
  if (pos < len && s[pos] != ' ')
    return;
  r->enh_class = cls;
  r->enh_subject = sub;
  r->enh_detail = det;
  memcpy(r->enhanced, s, pos);
  r->enhanced[pos] = '\0';
}

static int is_positive(smtpuv_cmd cmd, int code) {
  switch (cmd) {
  case SMTPUV_CMD_NONE:
    return 0;
  case SMTPUV_CMD_GREETING:
  case SMTPUV_CMD_STARTTLS:
    return code == 220;
  case SMTPUV_CMD_DATA:
    return code == 354;
  case SMTPUV_CMD_AUTH:
    return code == 334 || code / 100 == 2;
  default:
    return code / 100 == 2;
  }
}

/* The previous reply's memory may be reused now: free an input buffer that
   grew and is empty and a line array that outgrew the inline one, shrink a
   ring that grew and is empty. */
static void trim(smtpuv_proto *p) {
  if (p->lines != p->lines_inline) {
    smtpuv__free(&p->mem, p->lines);
    p->lines = p->lines_inline;
    p->lines_cap = SMTPUV__INLINE_LINES;
  }
  if (p->in.start == p->in.end && p->in.cap > IN_KEEP_CAP) {
    smtpuv__free(&p->mem, p->in.buf);
    p->in.buf = NULL;
    p->in.cap = p->in.start = p->in.end = 0;
    p->rd.line_start = p->rd.reply_start = 0;
  }
  if (p->ring_count == 0)
    smtpuv__ring_trim(p);
}

/* LMTP: drop the voided slots at the head of the queue (they carry no
   reply and no bytes). */
static void drop_voids(smtpuv_proto *p) {
  while (p->rd.voids > 0 && p->rd.matched > 0 &&
         smtpuv__ring_at(p, 0)->voided) {
    p->ring_head = (p->ring_head + 1) & (p->ring_cap - 1);
    p->ring_count--;
    p->rd.matched--;
    p->rd.voids--;
  }
}

static int next_reply(smtpuv_proto *p, smtpuv_reply *r) {
  drop_voids(p);
  trim(p);
  smtpuv__pending e;
  if (p->rd.matched > 0) {
    e = *smtpuv__ring_at(p, 0);
  } else if (p->rd.unsolicited == 1) {
    memset(&e, 0, sizeof e);
    e.cmd = SMTPUV_CMD_NONE;
    e.code = 421;
    e.reply_len = p->rd.unsol_len;
    e.nlines = p->rd.unsol_nlines;
  } else {
    return p->err;
  }
  if (lines_reserve(p, e.nlines) != 0)
    return SMTPUV_ENOMEM;

  char *raw = p->in.buf + p->in.start;
  memset(r, 0, sizeof *r);
  r->command = (smtpuv_cmd)e.cmd;
  r->rcpt_index = e.rcpt_index;
  r->last = e.last;
  r->code = e.code;
  r->positive = is_positive(r->command, r->code);
  r->lines = p->lines;
  r->nlines = e.nlines;
  split_lines(p, raw, raw + e.reply_len, e.nlines);
  if (smtpuv__ext_bits(p) & SMTPUV_EXT_ENHANCEDSTATUSCODES)
    parse_enhanced(r);

  smtpuv__apply a;
  if (smtpuv__session_prepare(p, &e, r, &a) != 0)
    return SMTPUV_ENOMEM;

  /* From here on nothing fails: consume the reply. */
  r->text = raw;
  r->text_len = join_lines(p, raw, e.nlines);
  p->in.start += e.reply_len;
  if (e.cmd == SMTPUV_CMD_NONE) {
    p->rd.unsolicited = 2;
  } else {
    p->ring_head = (p->ring_head + 1) & (p->ring_cap - 1);
    p->ring_count--;
    p->rd.matched--;
  }
  smtpuv__session_apply(p, &e, r, &a);
  drop_voids(p);
  return 1;
}

/* The smallest smtpuv_reply accepted: the layout of version 0.2 (every field
   up to text_len). Later versions append fields; they stay readable by a
   caller compiled against an older header. */
#define REPLY_MIN_SIZE (offsetof(smtpuv_reply, text_len) + sizeof(size_t))

int smtpuv_proto_next_reply_sized(smtpuv_proto *p, smtpuv_reply *reply,
                                  size_t reply_size) {
  if (p == NULL || reply == NULL || reply_size < REPLY_MIN_SIZE)
    return SMTPUV_EINVAL;
  if (reply_size >= sizeof(smtpuv_reply)) {
    int rc = next_reply(p, reply);
    if (rc == 1)
      reply->struct_size = sizeof(smtpuv_reply);
    return rc;
  }
  /* an older caller's shorter struct: fill a whole one, copy its prefix
     (the pointers point into the core, never into the struct itself) */
  smtpuv_reply full;
  int rc = next_reply(p, &full);
  if (rc == 1) {
    full.struct_size = reply_size;
    memcpy(reply, &full, reply_size);
  }
  return rc;
}

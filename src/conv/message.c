/* SPDX-License-Identifier: MIT */
/* Message records: the copied envelope, progress, and the result. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "conv/msg.h"

const char *smtpuv_send_status_name(smtpuv_send_status s) {
  switch (s) {
  case SMTPUV_SEND_SENT:
    return "sent";
  case SMTPUV_SEND_FAILED:
    return "failed";
  case SMTPUV_SEND_UNKNOWN:
    return "unknown outcome";
  case SMTPUV_SEND_CANCELED:
    return "canceled";
  }
  return "?";
}

const char *smtpuv_phase_name(smtpuv_phase p) {
  switch (p) {
  case SMTPUV_PHASE_NONE:
    return "none";
  case SMTPUV_PHASE_CONNECT:
    return "connect";
  case SMTPUV_PHASE_TLS:
    return "TLS";
  case SMTPUV_PHASE_GREETING:
    return "greeting";
  case SMTPUV_PHASE_EHLO:
    return "EHLO";
  case SMTPUV_PHASE_AUTH:
    return "AUTH";
  case SMTPUV_PHASE_MAIL:
    return "MAIL";
  case SMTPUV_PHASE_RCPT:
    return "RCPT";
  case SMTPUV_PHASE_DATA:
    return "DATA";
  case SMTPUV_PHASE_END_OF_DATA:
    return "end-of-data";
  case SMTPUV_PHASE_QUIT:
    return "QUIT";
  case SMTPUV_PHASE_PROXY:
    return "proxy";
  }
  return "?";
}

static size_t align8(size_t n) { return (n + 7) & ~(size_t)7; }

/* Result strings kept in the message record itself: enough for a sent
   message's reply and message and a short text per recipient. */
#define ARENA_BASE 192
#define ARENA_PER_RCPT 32

int smtpuv__msg_new(const smtpuv_mem *mem, const smtpuv_envelope *env,
                    const smtpuv_body *body, smtpuv__msg **out) {
  *out = NULL;
  if (env == NULL || body == NULL)
    return SMTPUV_EINVAL;
  /* envelope of any (valid) size */
  smtpuv_envelope e = SMTPUV_ENVELOPE_INIT;
  if (env->struct_size < offsetof(smtpuv_envelope, nrecipients) +
                             sizeof(size_t))
    return SMTPUV_EINVAL;
  memcpy(&e, env, env->struct_size < sizeof e ? env->struct_size : sizeof e);
  smtpuv_body b;
  smtpuv_body_init_buffer(&b, NULL, 0);
  if (body->struct_size < offsetof(smtpuv_body, user) + sizeof(void *))
    return SMTPUV_EINVAL;
  memcpy(&b, body, body->struct_size < sizeof b ? body->struct_size : sizeof b);
  b.struct_size = sizeof b;
  if (b.read == NULL && b.data == NULL && b.len > 0)
    return SMTPUV_EINVAL;
  if (e.sender == NULL || e.recipients == NULL || e.nrecipients == 0 ||
      e.nrecipients > 100000)
    return SMTPUV_EINVAL;
  int rc;
  if (*e.sender != '\0' && (rc = smtpuv_check_address(e.sender, 1)) != 0)
    return rc;
  smtpuv_mail_params mp = SMTPUV_MAIL_PARAMS_INIT;
  if (e.mail_params != NULL) {
    size_t n = e.mail_params->struct_size;
    if (n < offsetof(smtpuv_mail_params, body) + sizeof(smtpuv_body_type))
      return SMTPUV_EINVAL;
    memcpy(&mp, e.mail_params, n < sizeof mp ? n : sizeof mp);
    mp.struct_size = sizeof mp;
  }

  /* size everything: record, rcpts, rcpt params, strings */
  size_t strbytes = strlen(e.sender) + 1;
  if (mp.dsn_envid != NULL)
    strbytes += strlen(mp.dsn_envid) + 1;
  for (size_t i = 0; i < e.nrecipients; i++) {
    const char *a = e.recipients[i];
    if (a == NULL || *a == '\0')
      return SMTPUV_EINVAL;
    if ((rc = smtpuv_check_address(a, 1)) != 0)
      return rc;
    strbytes += strlen(a) + 1;
    if (e.rcpt_params != NULL && e.rcpt_params[i].dsn_orcpt != NULL)
      strbytes += strlen(e.rcpt_params[i].dsn_orcpt) + 1;
  }
  size_t n = e.nrecipients;
  size_t off_rcpts = align8(sizeof(smtpuv__msg));
  size_t off_params = align8(off_rcpts + n * sizeof(smtpuv__rcpt));
  size_t nparams = e.rcpt_params != NULL ? n : 0;
  size_t off_str = align8(off_params + nparams * sizeof(smtpuv_rcpt_params));
  /* the result's strings start in the same block, sized for the usual
     outcome (reply, message, one short text per recipient) */
  size_t arena_cap = ARENA_BASE + ARENA_PER_RCPT * (n < 64 ? n : 64);
  size_t off_arena = off_str + strbytes;
  size_t total = off_arena + arena_cap;
  char *blk = smtpuv__calloc(mem, 1, total);
  if (blk == NULL)
    return SMTPUV_ENOMEM;
  smtpuv__msg *m = (smtpuv__msg *)blk;
  m->arena = blk + off_arena;
  m->arena_cap = arena_cap;
  m->arena_inline = 1;
  m->rcpts = (smtpuv__rcpt *)(blk + off_rcpts);
  smtpuv_rcpt_params *params = (smtpuv_rcpt_params *)(blk + off_params);
  char *s = blk + off_str;
#define COPY_STR(dst, src)                                                     \
  do {                                                                         \
    size_t l_ = strlen(src) + 1;                                               \
    memcpy(s, (src), l_);                                                      \
    (dst) = s;                                                                 \
    s += l_;                                                                   \
  } while (0)
  COPY_STR(m->sender, e.sender);
  if (mp.dsn_envid != NULL)
    COPY_STR(mp.dsn_envid, mp.dsn_envid);
  for (size_t i = 0; i < n; i++) {
    COPY_STR(m->rcpts[i].address, e.recipients[i]);
    if (e.rcpt_params != NULL) {
      smtpuv_rcpt_params rp = SMTPUV_RCPT_PARAMS_INIT;
      size_t sz = e.rcpt_params[i].struct_size;
      if (sz < sizeof(size_t))
        sz = sizeof(size_t);
      memcpy(&rp, &e.rcpt_params[i], sz < sizeof rp ? sz : sizeof rp);
      rp.struct_size = sizeof rp;
      if (rp.dsn_orcpt != NULL)
        COPY_STR(rp.dsn_orcpt, rp.dsn_orcpt);
      params[i] = rp;
      m->rcpts[i].params = &params[i];
    }
  }
#undef COPY_STR
  m->nrcpts = n;
  m->has_mail_params = e.mail_params != NULL;
  m->mail_params = mp;
  m->body = b;
  m->stage = SMTPUV__M_QUEUED;
  *out = m;
  return 0;
}

void smtpuv__msg_free(const smtpuv_mem *mem, smtpuv__msg *m) {
  if (m == NULL)
    return;
  if (!m->arena_inline)
    smtpuv__free(mem, m->arena);
  smtpuv__free(mem, m->attempt_log);
  smtpuv__free(mem, m);
}

int smtpuv__msg_log_attempt(const smtpuv_mem *mem, smtpuv__msg *m) {
  const char *why = m->message != 0 && m->arena != NULL
                        ? m->arena + m->message
                        : smtpuv_strerror(m->error);
  size_t old = m->attempt_log != NULL ? strlen(m->attempt_log) : 0;
  size_t add = strlen(why) + 32;
  char *log = smtpuv__realloc(mem, m->attempt_log, old + add);
  if (log == NULL)
    return SMTPUV_ENOMEM;
  snprintf(log + old, add, "%sattempt %u: %s", old > 0 ? "\n" : "",
           m->attempts, why);
  m->attempt_log = log;
  return 0;
}

void smtpuv__msg_reset(smtpuv__msg *m) {
  m->stage = SMTPUV__M_QUEUED;
  m->pipelined = m->bdat = 0;
  m->expect = 0;
  m->next_rcpt = m->rcpt_replies = 0;
  m->mail_ok = m->mail_failed = m->data_issued = m->bdat_abort = 0;
  m->reused = 0;
  m->rset_after = 0;
  m->body_off = 0;
  m->body_eof = 0;
  m->body_type = SMTPUV_BODY_UNSPECIFIED;
  m->body_line = 0;
  m->dot_mark = 0;
  m->naccepted = 0;
  m->decided = 0;
  m->status = SMTPUV_SEND_FAILED;
  m->error = 0;
  m->phase = SMTPUV_PHASE_NONE;
  m->reply_code = 0;
  m->reply_enhanced[0] = '\0';
  m->reply_text = m->message = m->tls = 0;
  for (size_t i = 0; i < m->nrcpts; i++) {
    m->rcpts[i].code = 0;
    m->rcpts[i].accepted = 0;
    m->rcpts[i].enhanced[0] = '\0';
    m->rcpts[i].text = 0;
  }
  m->arena_len = 0;
}

/* Room for `len` bytes and a NUL at the end of the arena: the offset, or 0
   when out of memory. The arena starts inside the record; it moves to the
   heap only when a result outgrows it. */
static size_t arena_reserve(const smtpuv_mem *mem, smtpuv__msg *m,
                            size_t len) {
  if (m->arena_len == 0) {
    if (m->arena_cap < 2)
      return 0;
    m->arena[0] = '\0'; /* offset 0 is the empty string */
    m->arena_len = 1;
  }
  if (len + 1 > m->arena_cap - m->arena_len) {
    size_t cap = m->arena_cap * 2;
    while (cap - m->arena_len < len + 1)
      cap *= 2;
    char *a;
    if (m->arena_inline) {
      a = smtpuv__malloc(mem, cap);
      if (a != NULL)
        memcpy(a, m->arena, m->arena_len);
    } else {
      a = smtpuv__realloc(mem, m->arena, cap);
    }
    if (a == NULL)
      return 0;
    m->arena = a;
    m->arena_cap = cap;
    m->arena_inline = 0;
  }
  return m->arena_len;
}

size_t smtpuv__msg_str(const smtpuv_mem *mem, smtpuv__msg *m, const char *s,
                       size_t len) {
  if (len == 0)
    return 0;
  size_t off = arena_reserve(mem, m, len);
  if (off == 0)
    return 0;
  memcpy(m->arena + off, s, len);
  m->arena[off + len] = '\0';
  m->arena_len += len + 1;
  return off;
}

/* One line for humans: control characters become spaces. */
static void one_line(char *p, size_t len) {
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
      p[i] = ' ';
}

static size_t msg_vprintf(const smtpuv_mem *mem, smtpuv__msg *m,
                          const char *fmt, va_list ap) {
  char buf[512];
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  if (n < 0)
    return 0;
  size_t len = (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1;
  one_line(buf, len);
  return smtpuv__msg_str(mem, m, buf, len);
}

size_t smtpuv__msg_printf(const smtpuv_mem *mem, smtpuv__msg *m,
                          const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  size_t off = msg_vprintf(mem, m, fmt, ap);
  va_end(ap);
  return off;
}

static void decide_common(const smtpuv_mem *mem, smtpuv__msg *m,
                          smtpuv_send_status st, int err, smtpuv_phase phase,
                          const smtpuv_reply *reply) {
  m->decided = 1;
  m->status = st;
  m->error = err;
  m->phase = phase;
  if (reply != NULL) {
    m->reply_code = reply->code;
    memcpy(m->reply_enhanced, reply->enhanced, sizeof m->reply_enhanced);
    m->reply_enhanced[sizeof m->reply_enhanced - 1] = '\0';
    m->reply_text = smtpuv__msg_str(mem, m, reply->text, reply->text_len);
  }
}

void smtpuv__msg_decide_reply(const smtpuv_mem *mem, smtpuv__msg *m,
                              smtpuv_send_status st, int err,
                              smtpuv_phase phase, const smtpuv_reply *reply,
                              const char *what) {
  if (m->decided)
    return;
  decide_common(mem, m, st, err, phase, reply);
  /* "[what: ]NNN first line", built without printf: this is the message
     of every sent mail */
  const char *nl = memchr(reply->text, '\n', reply->text_len);
  size_t tl = nl != NULL ? (size_t)(nl - reply->text) : reply->text_len;
  if (tl > SMTPUV__MSG_LINE_MAX)
    tl = SMTPUV__MSG_LINE_MAX;
  size_t wl = what != NULL ? strlen(what) : 0;
  size_t len = (wl > 0 ? wl + 2 : 0) + 4 + tl;
  size_t off = arena_reserve(mem, m, len);
  if (off == 0)
    return; /* the message falls back to the error's text */
  char *w = m->arena + off;
  if (wl > 0) {
    memcpy(w, what, wl);
    w[wl] = ':';
    w[wl + 1] = ' ';
    w += wl + 2;
  }
  unsigned code = reply->code >= 100 && reply->code <= 999
                      ? (unsigned)reply->code : 0;
  w[0] = (char)('0' + code / 100);
  w[1] = (char)('0' + code / 10 % 10);
  w[2] = (char)('0' + code % 10);
  w[3] = ' ';
  memcpy(w + 4, reply->text, tl);
  one_line(m->arena + off, len);
  m->arena[off + len] = '\0';
  m->arena_len += len + 1;
  m->message = off;
}

void smtpuv__msg_decide(const smtpuv_mem *mem, smtpuv__msg *m,
                        smtpuv_send_status st, int err, smtpuv_phase phase,
                        const smtpuv_reply *reply, const char *fmt, ...) {
  if (m->decided)
    return;
  decide_common(mem, m, st, err, phase, reply);
  va_list ap;
  va_start(ap, fmt);
  m->message = msg_vprintf(mem, m, fmt, ap);
  va_end(ap);
}

void smtpuv__msg_result(smtpuv__msg *m, smtpuv_send_result *r,
                        smtpuv_rcpt_result *rr) {
  static const char empty[] = "";
  const char *a = m->arena != NULL && m->arena_len > 0 ? m->arena : empty;
#define STR(off) ((off) != 0 ? a + (off) : empty)
  memset(r, 0, sizeof *r);
  r->struct_size = sizeof *r;
  r->status = m->status;
  r->error = m->error;
  r->phase = m->phase;
  r->message = m->message != 0 ? a + m->message
                                : smtpuv_strerror(m->error);
  r->reply_code = m->reply_code;
  r->reply_enhanced = m->reply_enhanced;
  r->reply_text = STR(m->reply_text);
  for (size_t i = 0; i < m->nrcpts; i++) {
    rr[i].address = m->rcpts[i].address;
    rr[i].accepted = m->rcpts[i].accepted;
    rr[i].code = m->rcpts[i].code;
    rr[i].enhanced = m->rcpts[i].enhanced;
    rr[i].text = STR(m->rcpts[i].text);
  }
  r->recipients = rr;
  r->nrecipients = m->nrcpts;
  r->naccepted = m->naccepted;
  r->attempts = m->attempts;
  r->tls = m->tls != 0 ? a + m->tls : NULL;
  r->recipient_size = sizeof(smtpuv_rcpt_result);
  r->attempt_log = m->attempt_log;
#undef STR
}

const smtpuv_rcpt_result *
smtpuv_send_result_recipient(const smtpuv_send_result *r, size_t i) {
  if (r == NULL || i >= r->nrecipients || r->recipients == NULL)
    return NULL;
  /* a result from before 0.2 (no recipient_size) has the 0.1 stride, which
     is this one's */
  size_t stride = sizeof(smtpuv_rcpt_result);
  if (r->struct_size >= offsetof(smtpuv_send_result, recipient_size) +
                            sizeof(size_t) &&
      r->recipient_size != 0)
    stride = r->recipient_size;
  return (const smtpuv_rcpt_result *)((const char *)r->recipients +
                                      i * stride);
}

int smtpuv__msg_rewind(smtpuv__msg *m) {
  if (m->body.read == NULL)
    return 1;
  if (m->body.rewind == NULL)
    return 0;
  return m->body.rewind(m->body.user) == 0;
}

/* ---- result copies ---------------------------------------------------------- */

typedef struct result_copy {
  smtpuv_mem mem;
  smtpuv_send_result r; /* must stay the address handed out */
} result_copy;

static size_t slen(const char *s) { return s != NULL ? strlen(s) + 1 : 0; }

int smtpuv_send_result_dup(const smtpuv_mem *mem, const smtpuv_send_result *r,
                           smtpuv_send_result **out) {
  if (r == NULL || out == NULL)
    return SMTPUV_EINVAL;
  *out = NULL;
  smtpuv_mem m;
  smtpuv__mem_init(&m, mem);
  /* a result of an older layout has no attempt_log */
  const char *log =
      r->struct_size >= offsetof(smtpuv_send_result, attempt_log) +
                            sizeof(const char *)
          ? r->attempt_log
          : NULL;
  size_t str = slen(r->message) + slen(r->reply_enhanced) +
               slen(r->reply_text) + slen(r->tls) + slen(log);
  for (size_t i = 0; i < r->nrecipients; i++) {
    const smtpuv_rcpt_result *x = smtpuv_send_result_recipient(r, i);
    str += slen(x->address) + slen(x->enhanced) + slen(x->text);
  }
  size_t off_rr = align8(sizeof(result_copy));
  size_t off_str = off_rr + r->nrecipients * sizeof(smtpuv_rcpt_result);
  char *blk = smtpuv__calloc(&m, 1, off_str + str);
  if (blk == NULL)
    return SMTPUV_ENOMEM;
  result_copy *rc = (result_copy *)blk;
  rc->mem = m;
  memcpy(&rc->r, r, r->struct_size < sizeof rc->r ? r->struct_size
                                                  : sizeof rc->r);
  rc->r.struct_size = sizeof rc->r;
  rc->r.recipient_size = sizeof(smtpuv_rcpt_result);
  smtpuv_rcpt_result *rr = (smtpuv_rcpt_result *)(blk + off_rr);
  char *s = blk + off_str;
#define DUP(dst, src)                                                          \
  do {                                                                         \
    if ((src) == NULL) {                                                       \
      (dst) = NULL;                                                            \
    } else {                                                                   \
      size_t l_ = strlen(src) + 1;                                             \
      memcpy(s, (src), l_);                                                    \
      (dst) = s;                                                               \
      s += l_;                                                                 \
    }                                                                          \
  } while (0)
  DUP(rc->r.message, r->message);
  DUP(rc->r.reply_enhanced, r->reply_enhanced);
  DUP(rc->r.reply_text, r->reply_text);
  DUP(rc->r.tls, r->tls);
  DUP(rc->r.attempt_log, log);
  for (size_t i = 0; i < r->nrecipients; i++) {
    const smtpuv_rcpt_result *x = smtpuv_send_result_recipient(r, i);
    rr[i] = *x;
    DUP(rr[i].address, x->address);
    DUP(rr[i].enhanced, x->enhanced);
    DUP(rr[i].text, x->text);
  }
#undef DUP
  rc->r.recipients = r->nrecipients ? rr : NULL;
  *out = &rc->r;
  return 0;
}

void smtpuv_send_result_free(smtpuv_send_result *r) {
  if (r == NULL)
    return;
  result_copy *rc =
      (result_copy *)((char *)r - offsetof(result_copy, r));
  smtpuv_mem m = rc->mem;
  smtpuv__free(&m, rc);
}

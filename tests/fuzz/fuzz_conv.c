/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the conversation driver (src/conv/conv.h) from fuzz
 * input. The first three bytes choose the settings (mode, TLS mode, plain
 * AUTH allowed, pipelining, chunking, require-all, authenticator, window,
 * timeouts); every following byte is an event, in any order:
 *
 *   0 s i k   a canned server reply (table), cut at k
 *   1 n ...   n raw server bytes
 *   2 t       time passes: t*20 ms, the timer firing at each deadline
 *   3         the timer event now (early calls are ignored)
 *   4 k       a message (k: body, recipients, stream or buffer, blocking,
 *             rewind, submitted through the queue or forced)
 *   5 close   6 abort   7 TLS up (when asked)
 *   8 e       transport failure (error table)
 *   9 m n     output handing: all (auto-written) or n*7 bytes at a time,
 *             written or held
 *   10 n      write n*13 held bytes (0: all)
 *   11        body ready (the streams give data again)
 *   12        the OAuth token arrives
 *   13        drive (after a wake)
 *
 * Checked after every step (abort() on violation):
 *   - exactly one result per submitted message: none twice, and once the
 *     conversation ended (or at the end of the input, after an abort) none
 *     left inside;
 *   - when TLS is required, nothing but EHLO, STARTTLS (and QUIT) is
 *     handed over before the handshake (implicit TLS: nothing);
 *   - no AUTH line handed in plaintext unless plaintext AUTH is allowed;
 *   - no MAIL handed when an authenticator is set unless a positive reply
 *     (235; any 2xx) came after an AUTH was handed (so never after a
 *     refused AUTH); none in probe modes;
 *   - never SENT without a positive reply to a final "." handed over: a
 *     SENT result has a 2xx reply code, SENT + UNKNOWN results never
 *     outnumber the final dots (or BDAT LAST chunks) handed, SENT never
 *     outnumber the positive reply lines that came after the first dot;
 *   - output spans are non-empty and within the requested count; the end
 *     action never changes once it is not RUN; take_start_tls() says 1 at
 *     most once; nothing leaks.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conv/conv.h"
#include "conv/msg.h"
#include "smtpuv.h"

#define CHECK(x)                                                               \
  do {                                                                         \
    if (!(x)) {                                                                \
      fprintf(stderr, "fuzz_conv: %s:%d: %s\n", __FILE__, __LINE__, #x);       \
      abort();                                                                 \
    }                                                                          \
  } while (0)

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
#define MAX_MSGS 16

/* ---- a counting allocator ------------------------------------------------------ */

static long live;
static void *c_malloc(size_t n, void *u) {
  (void)u;
  void *p = malloc(n ? n : 1);
  if (p)
    live++;
  return p;
}
static void *c_calloc(size_t k, size_t n, void *u) {
  (void)u;
  void *p = calloc(k ? k : 1, n ? n : 1);
  if (p)
    live++;
  return p;
}
static void *c_realloc(void *ptr, size_t n, void *u) {
  (void)u;
  void *p = realloc(ptr, n ? n : 1);
  if (p && ptr == NULL)
    live++;
  return p;
}
static void c_free(void *p, void *u) {
  (void)u;
  if (p) {
    live--;
    free(p);
  }
}
static const smtpuv_mem cmem = {NULL, c_malloc, c_free, c_calloc, c_realloc};

/* ---- tables ------------------------------------------------------------------------ */

static const char *const replies[] = {
    "220 mx.test ESMTP\r\n",
    ("250-mx.test\r\n250-PIPELINING\r\n250-STARTTLS\r\n250-AUTH PLAIN LOGIN "
     "XOAUTH2\r\n250-CHUNKING\r\n250-BINARYMIME\r\n250-8BITMIME\r\n"
     "250-SMTPUTF8\r\n250-DSN\r\n250 SIZE 100000\r\n"),
    ("250-mx.test\r\n250-PIPELINING\r\n250-AUTH PLAIN LOGIN XOAUTH2\r\n"
     "250 8BITMIME\r\n"),
    "250-mx.test\r\n250 STARTTLS\r\n",
    "250 mx.test\r\n",
    "250 2.0.0 Ok\r\n",
    "250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n354 go ahead\r\n",
    "354 go ahead\r\n",
    "250 2.0.0 Ok: queued\r\n",
    "235 2.7.0 ok\r\n",
    "334 VXNlcm5hbWU6\r\n",
    "334 eyJzdGF0dXMiOiI0MDEifQ==\r\n",
    "535 5.7.8 bad credentials\r\n",
    "220 2.0.0 go ahead\r\n",
    "454 4.7.0 no TLS\r\n",
    "421 4.3.2 closing\r\n",
    "550 5.1.1 no such user\r\n",
    "451 4.3.0 later\r\n",
    "554 5.5.1 no valid recipients\r\n",
    "502 5.5.2 what?\r\n",
    "221 2.0.0 bye\r\n",
    "250-2.0.0 multi\r\n250 2.0.0 line\r\n",
    "xyz junk\r\n",
    "250 chunk ok\r\n",
};

static const char *const bodies[] = {
    "Subject: t\r\n\r\nhello\r\n.dot\r\n",
    "Subject: t\n\nbare LF\n.\n..\n",
    "Subject: 8\r\n\r\ncaf\xc3\xa9\r\n",
    "Subject: b\r\n\r\nbin\0ary\r\n",
    "",
    "Subject: x\r\n\r\nno final line ending",
};
static const size_t body_lens[] = {27, 25, 21, 23, 0, 34};

static const char *const rcpts[] = {"b@example.com", "c@example.com",
                                    "j\xc3\xb6rg@example.com",
                                    "bad@example.com"};

static const int errors[] = {SMTPUV_ECONNLOST, SMTPUV_EIO, SMTPUV_ETLS,
                             SMTPUV_ECERT, SMTPUV_ENOMEM, SMTPUV_ECONNLOST};

/* ---- state ----------------------------------------------------------------------------- */

typedef struct stream {
  const char *data;
  size_t len, pos;
  size_t block_at;
  int woken;
} stream;

static long stream_read(void *user, void *buf, size_t cap) {
  stream *s = user;
  if (s->block_at != 0 && s->pos >= s->block_at && !s->woken)
    return SMTPUV_EAGAIN;
  size_t n = s->len - s->pos;
  if (n > cap)
    n = cap;
  if (n > 5)
    n = 5;
  memcpy(buf, s->data + s->pos, n);
  s->pos += n;
  return (long)n;
}

static int stream_rewind(void *user) {
  ((stream *)user)->pos = 0;
  return 0;
}

typedef struct fz {
  const uint8_t *d;
  size_t n, pos;
  smtpuv__conv_config cfg;
  smtpuv__conv *cv;
  smtpuv_auth *auth;
  smtpuv_auth *token_auth; /* asked for a token */
  int token_asked;
  uint64_t now;
  int tls_required, implicit;
  int tls_wanted, tls_up, tls_asks;
  smtpuv__conv_end_kind end;
  /* output handing */
  size_t hand_chunk; /* 0: everything */
  int auto_write;
  size_t held;
  /* messages */
  smtpuv__msg *rec[MAX_MSGS];
  int state[MAX_MSGS]; /* 0 free, 1 queued, 2 submitted, 3 done */
  stream streams[MAX_MSGS];
  int nmsgs;
  int q[MAX_MSGS], qh, qt;
  /* the output as commands */
  int om;            /* 0 line, 1 after DATA, 2 body, 3 BDAT chunk */
  size_t chunk_left;
  int chunk_last;
  char line[64];
  size_t linelen;
  size_t dots;       /* final dots / BDAT LAST chunks handed */
  int auth_handed;
  int auth_ok;       /* a 235 came after an AUTH was handed */
  size_t sent, unknown;
  /* the input as lines */
  char rl[4];
  size_t rllen;
  int r_at_start;
  size_t pos_after_dot;
} fz;

static unsigned next(fz *f) { return f->pos < f->n ? f->d[f->pos++] : 0; }

/* ---- output checks ---------------------------------------------------------------------- */

static int is_verb(const char *l, const char *v) {
  size_t n = strlen(v);
  for (size_t i = 0; i < n; i++) {
    char c = l[i];
    if (c >= 'a' && c <= 'z')
      c = (char)(c - 32);
    if (c != v[i])
      return 0;
  }
  return l[n] == ' ' || l[n] == '\r' || l[n] == '\n' || l[n] == '\0';
}

static int is_command(const char *l) {
  static const char *const verbs[] = {"EHLO", "HELO", "MAIL", "RCPT", "DATA",
                                      "BDAT", "RSET", "QUIT", "NOOP", "AUTH",
                                      "STARTTLS"};
  for (size_t i = 0; i < COUNT(verbs); i++)
    if (is_verb(l, verbs[i]))
      return 1;
  return 0;
}

static void command_line(fz *f, const char *l) {
  if (f->tls_required && !f->tls_up) {
    CHECK(!f->implicit);
    CHECK(is_verb(l, "EHLO") || is_verb(l, "STARTTLS") || is_verb(l, "QUIT"));
  }
  if (is_verb(l, "AUTH")) {
    CHECK(f->tls_up || f->cfg.allow_plain_auth);
    CHECK(f->cfg.auth != NULL);
    f->auth_handed = 1;
  }
  if (is_verb(l, "MAIL")) {
    CHECK(f->cfg.mode == SMTPUV__CONV_SEND);
    if (f->cfg.auth != NULL)
      CHECK(f->auth_ok);
    if (f->tls_required)
      CHECK(f->tls_up);
  }
  if (is_verb(l, "DATA"))
    f->om = 1;
  if (is_verb(l, "BDAT")) {
    const char *p = l + 5;
    size_t n = 0;
    while (*p >= '0' && *p <= '9')
      n = n * 10 + (size_t)(*p++ - '0');
    f->chunk_left = n;
    f->chunk_last = strstr(l, "LAST") != NULL;
    if (n == 0) {
      if (f->chunk_last)
        f->dots++;
    } else {
      f->om = 3;
    }
  }
}

static void out_bytes(fz *f, const char *p, size_t n) {
  if (f->implicit && !f->tls_up)
    CHECK(n == 0);
  for (size_t i = 0; i < n; i++) {
    if (f->om == 3) {
      size_t take = n - i < f->chunk_left ? n - i : f->chunk_left;
      f->chunk_left -= take;
      i += take - 1;
      if (f->chunk_left == 0) {
        f->om = 0;
        if (f->chunk_last)
          f->dots++;
      }
      continue;
    }
    char c = p[i];
    if (f->linelen < sizeof f->line - 1)
      f->line[f->linelen++] = c;
    if (f->linelen == 5 && f->om != 2 && !memcmp(f->line, "AUTH ", 5))
      f->auth_handed = 1; /* a reply may come once part of it was handed */
    if (c != '\n')
      continue;
    f->line[f->linelen] = '\0';
    f->linelen = 0;
    if (f->om == 2) {
      if (!strcmp(f->line, ".\r\n")) {
        f->dots++;
        f->om = 0;
      }
      continue;
    }
    if (f->om == 1) {
      if (!is_command(f->line)) {
        /* the body after 354 */
        f->om = 2;
        if (!strcmp(f->line, ".\r\n")) {
          f->dots++;
          f->om = 0;
        }
        continue;
      }
      f->om = 0;
    }
    command_line(f, f->line);
  }
}

/* ---- input checks ------------------------------------------------------------------------- */

/* Output queued but not handed over yet (a reply may come "early" for it:
   a misbehaving server, not a driver fault), and whether it holds `s`. */
static int pending(fz *f, const char *s) {
  smtpuv_iov iov[8];
  int n = smtpuv__conv_outgoing(f->cv, iov, 8);
  if (n <= 0)
    return 0;
  if (s == NULL)
    return 1;
  for (int i = 0; i < n; i++)
    for (size_t k = 0; k + strlen(s) <= iov[i].len; k++)
      if (!memcmp((const char *)iov[i].base + k, s, strlen(s)))
        return 1;
  return 0;
}

static void in_bytes(fz *f, const char *p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    char c = p[i];
    if (f->r_at_start) {
      f->rllen = 0;
      f->r_at_start = 0;
    }
    if (f->rllen < 3)
      f->rl[f->rllen++] = c;
    if (c != '\n')
      continue;
    /* a line counts when it is complete (its start may have come before
       the command was handed: a server answering early) */
    f->r_at_start = 1;
    if (f->rllen < 3 || f->rl[0] != '2')
      continue;
    /* a positive completion after AUTH (RFC 4954 defines 235; the
       authenticator takes any 2xx as success, never a 4xx/5xx) */
    if (f->auth_handed || pending(f, "AUTH "))
      f->auth_ok = 1;
    if (f->dots > 0 || pending(f, NULL))
      f->pos_after_dot++;
  }
}

/* ---- pumping ---------------------------------------------------------------------------------- */

static int index_of(const fz *f, const smtpuv__msg *m) {
  for (int i = 0; i < f->nmsgs; i++)
    if (f->rec[i] == m)
      return i;
  return -1;
}

static void check_popped(fz *f, smtpuv__msg *m) {
  int i = index_of(f, m);
  CHECK(i >= 0);
  CHECK(f->state[i] == 2); /* submitted, popped once */
  f->state[i] = 3;
  smtpuv_send_result r;
  smtpuv_rcpt_result rr[8];
  CHECK(m->nrcpts <= 8);
  memset(&r, 0, sizeof r);
  r.struct_size = sizeof r;
  smtpuv__msg_result(m, &r, rr);
  CHECK(r.message != NULL);
  if (!m->retry) {
    CHECK(r.status == SMTPUV_SEND_SENT || r.status == SMTPUV_SEND_FAILED ||
          r.status == SMTPUV_SEND_UNKNOWN || r.status == SMTPUV_SEND_CANCELED);
    if (r.status == SMTPUV_SEND_SENT) {
      CHECK(r.reply_code >= 200 && r.reply_code < 300);
      CHECK(r.naccepted > 0);
      f->sent++;
      CHECK(f->sent <= f->pos_after_dot);
    }
    if (r.status == SMTPUV_SEND_UNKNOWN)
      f->unknown++;
    if (r.status != SMTPUV_SEND_SENT)
      CHECK(r.error < 0);
    /* the outcome-unknown rule: UNKNOWN only after a final dot was handed;
       SENT needs one too, unless the reply came early for a dot still
       queued */
    CHECK(f->unknown <= f->dots);
    if (!pending(f, NULL))
      CHECK(f->sent + f->unknown <= f->dots);
  }
  smtpuv__msg_free(&cmem, m);
  f->rec[i] = NULL;
}

static void take_output(fz *f) {
  smtpuv_iov iov[8];
  for (int guard = 0; guard < 100000; guard++) {
    int max = 1 + (int)(guard % 8);
    int n = smtpuv__conv_outgoing(f->cv, iov, max);
    CHECK(n >= 0 && n <= max);
    if (n == 0)
      return;
    size_t total = 0;
    for (int i = 0; i < n; i++) {
      CHECK(iov[i].len > 0 && iov[i].base != NULL);
      total += iov[i].len;
    }
    size_t give = total;
    if (f->hand_chunk != 0 && give > f->hand_chunk)
      give = f->hand_chunk;
    size_t left = give;
    for (int i = 0; i < n && left > 0; i++) {
      size_t k = iov[i].len < left ? iov[i].len : left;
      out_bytes(f, iov[i].base, k);
      left -= k;
    }
    smtpuv__conv_handed(f->cv, give);
    f->held += give;
    CHECK(smtpuv__conv_unwritten(f->cv) >= f->held);
    if (f->auto_write) {
      smtpuv__conv_written(f->cv, f->held);
      f->held = 0;
    }
    if (f->hand_chunk != 0)
      return; /* one piece per event */
  }
  CHECK(0);
}

static void pump(fz *f) {
  for (int round = 0; round < 10000; round++) {
    int progress = 0;
    int err = 0;
    smtpuv__conv_end_kind e = smtpuv__conv_end(f->cv, &err);
    if (f->end != SMTPUV__CONV_RUN)
      CHECK(e == f->end);
    CHECK(e == SMTPUV__CONV_RUN || e == SMTPUV__CONV_FINISH ||
          e == SMTPUV__CONV_ABORT);
    f->end = e;
    if (smtpuv__conv_take_start_tls(f->cv)) {
      CHECK(f->tls_asks == 0);
      f->tls_asks++;
      f->tls_wanted = 1;
    }
    smtpuv__conv_failure fl;
    if (smtpuv__conv_take_failure(f->cv, &fl)) {
      CHECK(fl.error < 0 && fl.message != NULL);
      /* the transport fails what is still queued */
      while (f->qh != f->qt) {
        int i = f->q[f->qh++];
        smtpuv__msg_free(&cmem, f->rec[i]);
        f->rec[i] = NULL;
        f->state[i] = 3;
      }
      progress = 1;
    }
    smtpuv__msg *m;
    while ((m = smtpuv__conv_pop_finished(f->cv)) != NULL) {
      check_popped(f, m);
      progress = 1;
    }
    if (e != SMTPUV__CONV_ABORT) {
      size_t before = f->held;
      int om = f->om;
      size_t dots = f->dots;
      take_output(f);
      if (f->held != before || om != f->om || dots != f->dots)
        progress = 1;
    }
    if (e == SMTPUV__CONV_RUN && f->qh != f->qt &&
        smtpuv__conv_can_take(f->cv)) {
      int i = f->q[f->qh++];
      f->state[i] = 2;
      smtpuv__conv_set_now(f->cv, f->now);
      smtpuv__conv_submit(f->cv, f->rec[i]);
      progress = 1;
    }
    if (e != SMTPUV__CONV_RUN) {
      /* every message on the connection has come out */
      CHECK(smtpuv__conv_inflight(f->cv) == 0);
      for (int i = 0; i < f->nmsgs; i++)
        CHECK(f->state[i] != 2);
    }
    if (!progress)
      return;
  }
}

/* ---- events --------------------------------------------------------------------------------- */

static void feed(fz *f, const char *p, size_t n) {
  if (n == 0)
    return;
  in_bytes(f, p, n);
  smtpuv__conv_set_now(f->cv, f->now);
  smtpuv__conv_received(f->cv, p, n);
}

static void token_cb(smtpuv_auth *auth, int rejected, void *data) {
  fz *f = data;
  (void)rejected;
  f->token_auth = auth;
  f->token_asked = 1;
}

static void on_wake(void *data) { (void)data; }

/* FUZZ_CONV_TRACE=1: print the conversation (to debug a crash). */
static void on_trace(void *data, smtpuv_trace_kind kind, const char *b,
                     size_t n) {
  (void)data;
  static const char *const tags[] = {"C", "B", "S", "*"};
  fprintf(stderr, "%s: %.*s%s", tags[kind], (int)n, b,
          kind == SMTPUV_TRACE_INFO ? "\n" : "");
}

static void add_message(fz *f, unsigned k) {
  if (f->nmsgs >= MAX_MSGS)
    return;
  int i = f->nmsgs;
  size_t b = k % COUNT(bodies);
  size_t nr = 1 + (k >> 3) % 3;
  const char *to[3];
  for (size_t j = 0; j < nr; j++)
    to[j] = rcpts[(k >> (5 + j)) % COUNT(rcpts)];
  smtpuv_envelope e = SMTPUV_ENVELOPE_INIT;
  e.sender = (k & 0x40) ? "" : "a@example.com";
  e.recipients = to;
  e.nrecipients = nr;
  smtpuv_body body;
  unsigned k2 = next(f);
  if (k2 & 1) {
    stream *s = &f->streams[i];
    s->data = bodies[b];
    s->len = body_lens[b];
    s->pos = 0;
    s->block_at = (k2 >> 1) & 7;
    s->woken = 0;
    smtpuv_body_init_stream(&body, stream_read,
                            (k2 & 0x10) ? stream_rewind : NULL, s, 0);
  } else {
    smtpuv_body_init_buffer(&body, bodies[b], body_lens[b]);
  }
  smtpuv_mail_params mp = SMTPUV_MAIL_PARAMS_INIT;
  if (k2 & 0x20) {
    mp.body = (k2 & 0x40) ? SMTPUV_BODY_BINARYMIME : SMTPUV_BODY_8BITMIME;
    e.mail_params = &mp;
  }
  smtpuv__msg *m;
  if (smtpuv__msg_new(&cmem, &e, &body, &m) != 0)
    return;
  f->rec[i] = m;
  f->nmsgs++;
  if ((k2 & 0x80) && f->end == SMTPUV__CONV_RUN) {
    /* forced: refused at once when the conversation cannot take it */
    f->state[i] = 2;
    smtpuv__conv_set_now(f->cv, f->now);
    smtpuv__conv_submit(f->cv, m);
  } else {
    f->state[i] = 1;
    f->q[f->qt++] = i;
  }
}

static void advance(fz *f, uint64_t ms) {
  uint64_t target = f->now + ms;
  for (int guard = 0; guard < 64; guard++) {
    uint64_t at;
    if (!smtpuv__conv_deadline(f->cv, &at) || at > target)
      break;
    if (at > f->now)
      f->now = at;
    smtpuv__conv_set_now(f->cv, f->now);
    smtpuv__conv_timer(f->cv);
    pump(f);
  }
  f->now = target;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 3)
    return 0;
  fz *f = calloc(1, sizeof *f);
  if (f == NULL)
    return 0;
  live = 0;
  f->d = data;
  f->n = size;
  unsigned b0 = next(f), b1 = next(f), b2 = next(f);
  f->cfg.mode = (smtpuv__conv_mode)(b0 % 3);
  f->cfg.tls = (smtpuv_tls_mode)((b0 / 3) % 4);
  f->cfg.allow_plain_auth = b1 & 1;
  f->cfg.pipelining = (b1 >> 1) & 1;
  f->cfg.chunking = (b1 >> 2) & 1;
  f->cfg.require_all = (b1 >> 3) & 1;
  f->cfg.max_inflight = b1 >> 6;
  f->cfg.ehlo_name = (b0 & 0x80) ? NULL : "client.test";
  unsigned t = b2 & 3;
  f->cfg.timeouts[SMTPUV_TIMEOUT_CONNECT] = 1000;
  f->cfg.timeouts[SMTPUV_TIMEOUT_COMMAND] = t == 0 ? 0 : 500 * t;
  f->cfg.timeouts[SMTPUV_TIMEOUT_DATA] = (b2 & 4) ? 0 : 1000;
  f->cfg.timeouts[SMTPUV_TIMEOUT_FINAL] = (b2 & 8) ? 0 : 2000;
  f->cfg.timeouts[SMTPUV_TIMEOUT_IDLE] = (b2 & 16) ? 0 : 3000;
  f->cfg.wake = on_wake;
  f->cfg.wake_data = f;
  if (getenv("FUZZ_CONV_TRACE") != NULL)
    f->cfg.trace = on_trace;
  switch ((b1 >> 4) & 3) {
  case 1:
    smtpuv_auth_plain_new(&cmem, NULL, "user", "s3cr3t", &f->auth);
    break;
  case 2:
    smtpuv_auth_xoauth2_new(&cmem, "me@example.com", token_cb, f, &f->auth);
    break;
  case 3:
    smtpuv_auth_login_new(&cmem, "user", "s3cr3t", &f->auth);
    break;
  default:
    break;
  }
  f->cfg.auth = f->auth;
  f->tls_required = f->cfg.tls == SMTPUV_TLS_REQUIRED ||
                    f->cfg.tls == SMTPUV_TLS_IMPLICIT;
  f->implicit = f->cfg.tls == SMTPUV_TLS_IMPLICIT;
  f->auto_write = 1;
  f->r_at_start = 1;
  if (smtpuv__conv_new(&cmem, &f->cfg, &f->cv) != 0) {
    smtpuv_auth_free(f->auth);
    CHECK(live == 0);
    free(f);
    return 0;
  }
  smtpuv__conv_set_now(f->cv, 0);
  smtpuv__conv_connected(f->cv, "[127.0.0.1]");
  pump(f);
  while (f->pos < f->n) {
    unsigned op = next(f) % 14;
    smtpuv__conv_set_now(f->cv, f->now);
    switch (op) {
    case 0: {
      const char *r = replies[next(f) % COUNT(replies)];
      size_t len = strlen(r), k = next(f) % (len + 1);
      feed(f, r, k);
      pump(f);
      feed(f, r + k, len - k);
      break;
    }
    case 1: {
      size_t n = next(f);
      if (n > f->n - f->pos)
        n = f->n - f->pos;
      feed(f, (const char *)f->d + f->pos, n);
      f->pos += n;
      break;
    }
    case 2:
      advance(f, (uint64_t)next(f) * 20);
      break;
    case 3:
      smtpuv__conv_timer(f->cv);
      break;
    case 4:
      add_message(f, next(f));
      break;
    case 5:
      smtpuv__conv_close(f->cv);
      break;
    case 6:
      smtpuv__conv_abort(f->cv);
      break;
    case 7:
      if (f->tls_wanted) {
        f->tls_wanted = 0;
        f->tls_up = 1;
        smtpuv__conv_tls_established(f->cv, "TLSv1.3 fuzz");
      }
      break;
    case 8:
      smtpuv__conv_transport_failed(f->cv, errors[next(f) % COUNT(errors)],
                                    "transport failure");
      break;
    case 9: {
      unsigned m = next(f);
      f->hand_chunk = (m & 1) ? (size_t)(next(f) + 1) * 7 : 0;
      f->auto_write = !(m & 2);
      break;
    }
    case 10: {
      size_t w = (size_t)next(f) * 13;
      if (w == 0 || w > f->held)
        w = f->held;
      f->held -= w;
      smtpuv__conv_written(f->cv, w);
      break;
    }
    case 11:
      for (int i = 0; i < f->nmsgs; i++)
        f->streams[i].woken = 1;
      smtpuv__conv_body_ready(f->cv);
      break;
    case 12:
      if (f->token_asked) {
        f->token_asked = 0;
        smtpuv_auth_token_provide(f->token_auth, "tok123");
      }
      break;
    default:
      break;
    }
    pump(f);
  }
  /* the end: whatever is left is aborted; every message comes out */
  if (f->end == SMTPUV__CONV_RUN) {
    smtpuv__conv_abort(f->cv);
    pump(f);
  }
  CHECK(f->end != SMTPUV__CONV_RUN);
  CHECK(smtpuv__conv_inflight(f->cv) == 0);
  for (int i = 0; i < f->nmsgs; i++)
    CHECK(f->state[i] != 2);
  smtpuv__conv_probe pr;
  if (f->cfg.mode != SMTPUV__CONV_SEND) {
    smtpuv__conv_probe_result(f->cv, &pr);
    CHECK(pr.message != NULL && pr.greeting != NULL && pr.ext != NULL &&
          pr.server_name != NULL && pr.auth_mechanisms != NULL);
    if (pr.authenticated)
      CHECK(f->auth_ok);
  }
  smtpuv__conv_free(f->cv);
  for (int i = 0; i < f->nmsgs; i++)
    if (f->rec[i] != NULL)
      smtpuv__msg_free(&cmem, f->rec[i]);
  if (f->token_asked)
    smtpuv_auth_token_provide(f->token_auth, "late");
  smtpuv_auth_free(f->auth);
  CHECK(live == 0);
  free(f);
  return 0;
}

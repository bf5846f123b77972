/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: whole sessions. The input is a program: each letter is
 * a client command (arguments taken from the following bytes, strings from
 * small tables that include injection attempts) or a server flight:
 *
 *   F n <n bytes>  feed, then pop every reply    G n <n bytes>  feed only
 *   P  pop replies                 c n  consume n*37 pending bytes (0: all)
 *   E d / H d  EHLO / HELO         S  STARTTLS          T  tls_established
 *   A m i  AUTH mech [ir]          R i  AUTH response   C  AUTH cancel
 *   M a f1 f2  MAIL                r a n o  RCPT        D  DATA
 *   W n <n bytes>  data_write      e  data_end
 *   B l n <n bytes>  BDAT (l & 1: LAST)
 *   X  RSET   N  NOOP   V a  VRFY   Q  QUIT   p b  set_pipelining
 *   L d  LHLO (switches to LMTP)      l  set_lmtp
 *
 * Checked after every step: a failing command wrote nothing and changed
 * nothing; a successful one added output (and a queue entry when it
 * expects a reply); feeding and popping never write, except the end of
 * data the core adds itself; errors are sticky; the output stream has no
 * bare CR or LF (unless BINARYMIME was declared). LMTP: the end of data
 * queues one reply per recipient, feeding may drop surplus ones, every
 * per-recipient verdict names an accepted recipient, in RCPT order, and
 * smtpuv_proto_lmtp_due() never exceeds the accepted recipients.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/proto_int.h"
#include "smtpuv.h"

#define CHECK(x)                                                               \
  do {                                                                         \
    if (!(x))                                                                  \
      abort();                                                                 \
  } while (0)

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const char *const domains[] = {"client.example", "[192.0.2.1]",
                                      "a\r\nMAIL FROM:<x>", "", "x y"};
static const char *const mechs[] = {"PLAIN", "LOGIN",   "XOAUTH2",
                                    "plain", "BAD\r\n", "SCRAM-SHA-256"};
static const char *const b64s[] = {NULL,          "",    "AHUAcA==", "dXNlcg==",
                                   "a\r\nQUIT", "x y"};
static const char *const addrs[] = {
    "a@example.org", "",      "j\xc3\xb6rg@example.org", "a@b>\r\nRCPT TO:<c@d",
    "<x@y>",         "\xff@b", "postmaster",             NULL};
static const char *const envids[] = {NULL, "id1", "a+b=c d", "bad\r\n"};
static const uint64_t sizes[] = {0, 100, 10000000, UINT64_MAX};

typedef struct fz {
  const uint8_t *d;
  size_t n, pos;
  smtpuv_proto *p;
  int err;        /* sticky error seen */
  int binary;     /* BINARYMIME declared: raw bytes may follow */
  int pending_cr; /* the last consumed byte was a CR */
  /* LMTP: the accepted RCPT indices of the transaction being popped and
     how many verdicts were popped */
  unsigned acc[256];
  size_t nacc, verdicts;
  int acc_overflow;
} fz;

static unsigned next(fz *f) { return f->pos < f->n ? f->d[f->pos++] : 0; }

/* `n` input bytes (fewer at the end). */
static const char *take(fz *f, size_t *n) {
  const char *s = (const char *)f->d + f->pos;
  if (*n > f->n - f->pos)
    *n = f->n - f->pos;
  f->pos += *n;
  return s;
}

typedef struct before {
  size_t out, q;
  smtpuv_state st;
} before;

static before snap(const fz *f) {
  before b = {smtpuv_proto_pending_output(f->p),
              smtpuv_proto_pending_replies(f->p), smtpuv_proto_state(f->p)};
  return b;
}

static int known_error(int rc) {
  return (rc <= -1 && rc >= -15) || rc == SMTPUV_EPROTO ||
         rc == SMTPUV_EINJECT;
}

/* After a command: `replies` is 1 when success queues a reply. */
static void after_command(fz *f, before b, int rc, int replies, int writes) {
  if (f->err != 0)
    CHECK(rc == f->err);
  if (rc != 0) {
    CHECK(known_error(rc) && rc != SMTPUV_ENOMEM);
    CHECK(smtpuv_proto_pending_output(f->p) == b.out);
    CHECK(smtpuv_proto_pending_replies(f->p) == b.q);
    CHECK(smtpuv_proto_state(f->p) == b.st);
    return;
  }
  CHECK(f->err == 0);
  if (writes)
    CHECK(smtpuv_proto_pending_output(f->p) > b.out);
  else
    CHECK(smtpuv_proto_pending_output(f->p) >= b.out);
  if (replies < 0) /* LMTP end of data: one or more */
    CHECK(smtpuv_proto_pending_replies(f->p) > b.q);
  else
    CHECK(smtpuv_proto_pending_replies(f->p) == b.q + (size_t)replies);
}

/* LMTP verdicts name the accepted recipients in RCPT order. */
static void check_lmtp(fz *f, const smtpuv_reply *r) {
  if (!smtpuv_proto_is_lmtp(f->p)) {
    CHECK(!(r->flags & SMTPUV_REPLY_LMTP_RCPT));
    return;
  }
  if (r->command == SMTPUV_CMD_MAIL) {
    f->nacc = f->verdicts = 0;
    f->acc_overflow = 0;
  } else if (r->command == SMTPUV_CMD_RCPT && r->positive &&
             !(r->flags & SMTPUV_REPLY_TXN_FAILED)) {
    if (f->nacc < COUNT(f->acc))
      f->acc[f->nacc++] = r->rcpt_index;
    else
      f->acc_overflow = 1;
  }
  if (r->flags & SMTPUV_REPLY_LMTP_RCPT) {
    CHECK(r->command == SMTPUV_CMD_DATA_END || r->command == SMTPUV_CMD_BDAT);
    CHECK(!(r->flags & SMTPUV_REPLY_TXN_FAILED));
    if (!f->acc_overflow) {
      CHECK(f->verdicts < f->nacc);
      CHECK(r->rcpt_index == f->acc[f->verdicts]);
      CHECK(r->last == (f->verdicts + 1 == f->nacc));
    }
    f->verdicts++;
  }
  size_t due = smtpuv_proto_lmtp_due(f->p);
  unsigned idx;
  if (!f->acc_overflow) {
    CHECK(due <= f->nacc);
    if (due > 0) {
      CHECK(smtpuv_proto_lmtp_due_rcpt(f->p, 0, &idx) == 0);
      CHECK(idx == f->acc[f->nacc - due]);
    }
  }
  CHECK(smtpuv_proto_lmtp_due_rcpt(f->p, due, &idx) == SMTPUV_EINVAL);
}

static void pop_all(fz *f) {
  for (;;) {
    before b = snap(f);
    smtpuv_reply r;
    int rc = smtpuv_proto_next_reply(f->p, &r);
    if (rc != 1) {
      CHECK(rc == f->err);
      CHECK(smtpuv_proto_pending_output(f->p) == b.out);
      return;
    }
    CHECK(r.code >= 200 && r.code <= 599);
    CHECK(r.text[r.text_len] == '\0');
    size_t out = smtpuv_proto_pending_output(f->p);
    size_t q = smtpuv_proto_pending_replies(f->p);
    if (r.command == SMTPUV_CMD_DATA && (r.flags & SMTPUV_REPLY_EMPTY_DATA)) {
      CHECK(out == b.out + 3 && q == b.q);
      CHECK(r.flags & SMTPUV_REPLY_TXN_FAILED);
    } else if (r.command == SMTPUV_CMD_NONE) {
      CHECK(r.code == 421 && out == b.out && q == b.q);
    } else {
      CHECK(out == b.out && q + 1 == b.q);
    }
    if (r.code == 421)
      CHECK(smtpuv_proto_state(f->p) == SMTPUV_STATE_FINISHED);
    check_lmtp(f, &r);
  }
}

static void feed(fz *f, int pop) {
  size_t n = next(f);
  const char *s = take(f, &n);
  before b = snap(f);
  int rc = smtpuv_proto_feed(f->p, s, n);
  CHECK(rc == 0 || rc == SMTPUV_EPROTO || rc == SMTPUV_EINJECT);
  if (f->err != 0)
    CHECK(rc == f->err);
  CHECK(smtpuv_proto_pending_output(f->p) == b.out);
  if (smtpuv_proto_is_lmtp(f->p)) /* surplus verdict slots dropped */
    CHECK(smtpuv_proto_pending_replies(f->p) <= b.q);
  else
    CHECK(smtpuv_proto_pending_replies(f->p) == b.q);
  if (rc != 0) {
    f->err = rc;
    CHECK(smtpuv_proto_error(f->p) == rc);
    CHECK(smtpuv_proto_state(f->p) == SMTPUV_STATE_FINISHED);
  }
  if (pop)
    pop_all(f);
}

/* Consume output, checking that every CR is followed by LF and every LF
   preceded by CR across the whole stream. */
static void consume(fz *f, size_t n) {
  smtpuv_iov iov[8];
  size_t done = 0;
  while (done < n) {
    int k = smtpuv_proto_outgoing_iov(f->p, done, iov, 8);
    if (k == 0)
      break;
    for (int i = 0; i < k && done < n; i++) {
      const unsigned char *s = iov[i].base;
      size_t len = iov[i].len < n - done ? iov[i].len : n - done;
      for (size_t j = 0; j < len && !f->binary; j++) {
        if (f->pending_cr)
          CHECK(s[j] == '\n');
        else
          CHECK(s[j] != '\n');
        f->pending_cr = s[j] == '\r';
      }
      done += len;
    }
  }
  size_t before_out = smtpuv_proto_pending_output(f->p);
  smtpuv_proto_consumed(f->p, n);
  CHECK(smtpuv_proto_pending_output(f->p) ==
        (n < before_out ? before_out - n : 0));
}

static void mail(fz *f) {
  const char *from = addrs[next(f) % COUNT(addrs)];
  unsigned f1 = next(f), f2 = next(f);
  smtpuv_mail_params mp = SMTPUV_MAIL_PARAMS_INIT;
  mp.size = sizes[f1 & 3];
  mp.body = (smtpuv_body_type)((f1 >> 2) % 5);
  mp.smtputf8 = (f1 >> 5) & 1;
  mp.dsn_ret = (smtpuv_dsn_ret)((f1 >> 6) & 3);
  mp.requiretls = f2 & 1;
  mp.dsn_envid = envids[(f2 >> 1) % COUNT(envids)];
  if (f2 & 0x80)
    mp.struct_size = 3;
  before b = snap(f);
  int rc = smtpuv_proto_mail(f->p, from, (f2 & 0x40) ? NULL : &mp);
  after_command(f, b, rc, 1, 1);
  if (rc == 0 && !(f2 & 0x40) && mp.body == SMTPUV_BODY_BINARYMIME)
    f->binary = 1;
}

static void rcpt(fz *f) {
  const char *to = addrs[next(f) % COUNT(addrs)];
  smtpuv_rcpt_params rp = SMTPUV_RCPT_PARAMS_INIT;
  rp.dsn_notify = next(f) & 0x1f;
  rp.dsn_orcpt = addrs[next(f) % COUNT(addrs)];
  before b = snap(f);
  int rc = smtpuv_proto_rcpt(f->p, to, &rp);
  after_command(f, b, rc, 1, 1);
}

static void step(fz *f, unsigned op) {
  smtpuv_proto *p = f->p;
  before b = snap(f);
  int rc;
  size_t n;
  const char *s;
  switch (op) {
  case 'F':
  case 'G':
    feed(f, op == 'F');
    return;
  case 'P':
    pop_all(f);
    return;
  case 'c':
    n = next(f);
    consume(f, n == 0 ? smtpuv_proto_pending_output(p) : n * 37);
    return;
  case 'p':
    smtpuv_proto_set_pipelining(p, (int)(next(f) & 1));
    return;
  case 'E':
  case 'H':
    s = domains[next(f) % COUNT(domains)];
    rc = op == 'E' ? smtpuv_proto_ehlo(p, s) : smtpuv_proto_helo(p, s);
    after_command(f, b, rc, 1, 1);
    return;
  case 'S':
    after_command(f, b, smtpuv_proto_starttls(p), 1, 1);
    return;
  case 'T':
    after_command(f, b, smtpuv_proto_tls_established(p), 0, 0);
    return;
  case 'A':
    s = mechs[next(f) % COUNT(mechs)];
    rc = smtpuv_proto_auth(p, s, b64s[next(f) % COUNT(b64s)]);
    after_command(f, b, rc, 1, 1);
    return;
  case 'R':
    s = b64s[next(f) % COUNT(b64s)];
    after_command(f, b, smtpuv_proto_auth_response(p, s), 1, 1);
    return;
  case 'C':
    after_command(f, b, smtpuv_proto_auth_cancel(p), 1, 1);
    return;
  case 'M':
    mail(f);
    return;
  case 'r':
    rcpt(f);
    return;
  case 'D':
    after_command(f, b, smtpuv_proto_data(p), 1, 1);
    return;
  case 'W':
    n = next(f);
    s = take(f, &n);
    after_command(f, b, smtpuv_proto_data_write(p, s, n), 0, n > 0);
    return;
  case 'e':
    after_command(f, b, smtpuv_proto_data_end(p),
                  smtpuv_proto_is_lmtp(p) ? -1 : 1, 1);
    return;
  case 'B': {
    int last = (int)(next(f) & 1);
    n = next(f);
    s = take(f, &n);
    after_command(f, b, smtpuv_proto_bdat(p, s, n, last),
                  smtpuv_proto_is_lmtp(p) && last ? -1 : 1, 1);
    return;
  }
  case 'L':
    s = domains[next(f) % COUNT(domains)];
    rc = smtpuv_proto_lhlo(p, s);
    after_command(f, b, rc, 1, 1);
    if (rc == 0)
      CHECK(smtpuv_proto_is_lmtp(p));
    return;
  case 'l':
    rc = smtpuv_proto_set_lmtp(p);
    after_command(f, b, rc, 0, 0);
    if (rc == 0)
      CHECK(smtpuv_proto_is_lmtp(p));
    return;
  case 'X':
    after_command(f, b, smtpuv_proto_rset(p), 1, 1);
    return;
  case 'N':
    after_command(f, b, smtpuv_proto_noop(p), 1, 1);
    return;
  case 'V':
    s = addrs[next(f) % COUNT(addrs)];
    after_command(f, b, smtpuv_proto_vrfy(p, s), 1, 1);
    return;
  case 'Q':
    rc = smtpuv_proto_quit(p);
    after_command(f, b, rc, 1, 1);
    if (rc == 0)
      CHECK(smtpuv_proto_state(p) == SMTPUV_STATE_FINISHED);
    return;
  default:
    return;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz f;
  memset(&f, 0, sizeof f);
  f.d = data;
  f.n = size;
  if (smtpuv_proto_new(NULL, &f.p) != 0)
    return 0;
  for (unsigned steps = 0; f.pos < f.n && steps < 4096; steps++)
    step(&f, next(&f));
  consume(&f, smtpuv_proto_pending_output(f.p));
  smtpuv_proto_free(f.p);
  return 0;
}

/* SPDX-License-Identifier: MIT */
/* bench_core: throughput of the protocol core, each beside memcpy of the
 * same bytes in the same chunking, measured in the same run.
 *
 *   1. body encoder (DATA mode): 64 MiB of 76-character lines, every 7th
 *      starting with '.', encoded in 64 KiB chunks into a reused buffer;
 *   2. reply parsing: a realistic mix of server replies (multi-line EHLO of
 *      Postfix/Gmail/Outlook, AUTH LOGIN challenges, pipelined MAIL/RCPT/DATA
 *      replies, queued-as, QUIT) fed through smtpuv_proto_feed() and popped
 *      with smtpuv_proto_next_reply() while a real session issues the
 *      matching commands.
 *
 *   3. the composer (smtpuv/compose.h): a 20 MiB binary attachment read out
 *      base64-encoded, and a 1 MiB mostly-ASCII text part read out
 *      quoted-printable, 64 KiB reads, each beside memcpy of the same input
 *      in the same chunks (MB/s of input, and the ratio).
 *
 * Best of a few runs each. The last line is "encoder/memcpy: R". */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "protocol/encoder.h"
#include "smtpuv/compose.h"
#include "smtpuv/protocol.h"

/* Through a volatile pointer so the compiler cannot drop or merge copies
   into a buffer that is never read. */
static void *(*volatile copy_fn)(void *, const void *, size_t) = memcpy;
static volatile size_t sink;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *what, int rc) {
  fprintf(stderr, "bench_core: %s failed: %d (%s)\n", what, rc,
          smtpuv_err_name(rc));
  exit(1);
}

/* ------------------------------------------------------------------------ */
/* 1. Body encoder                                                           */
/* ------------------------------------------------------------------------ */

enum {
  BODY_SIZE = 64 << 20,
  CHUNK = 64 << 10,
  LINE = 76,
  ENC_RUNS = 9
};

static size_t make_body(char *b, size_t size) {
  size_t pos = 0, line = 0, dots = 0;
  uint32_t x = 12345;
  while (pos < size) {
    for (size_t i = 0; i < LINE && pos < size; i++) {
      x = x * 1103515245u + 12345u;
      char c = (char)('a' + (x >> 16) % 26);
      if ((x >> 8) % 7 == 0)
        c = ' ';
      if (i == 0 && line % 7 == 0) {
        c = '.';
        dots++;
      }
      b[pos++] = c;
    }
    if (pos < size)
      b[pos++] = '\r';
    if (pos < size)
      b[pos++] = '\n';
    line++;
  }
  return dots;
}

static size_t run_encoder(const char *body, char *out) {
  smtpuv_encoder e;
  size_t total = 0;
  smtpuv__encoder_init(&e, 1);
  for (size_t off = 0; off < BODY_SIZE; off += CHUNK) {
    size_t n = BODY_SIZE - off < CHUNK ? BODY_SIZE - off : CHUNK;
    total += smtpuv__encoder_encode(&e, body + off, n, out);
  }
  total += smtpuv__encoder_finish(&e, out);
  return total;
}

static void run_memcpy_chunks(const char *body, char *out) {
  for (size_t off = 0; off < BODY_SIZE; off += CHUNK) {
    size_t n = BODY_SIZE - off < CHUNK ? BODY_SIZE - off : CHUNK;
    copy_fn(out, body + off, n);
  }
  sink += (unsigned char)out[CHUNK - 1];
}

static double bench_encoder(void) {
  char *body = malloc(BODY_SIZE);
  char *out = malloc(SMTPUV_ENCODE_BOUND(CHUNK) + SMTPUV_ENCODE_FINISH_BOUND);
  if (body == NULL || out == NULL) {
    fprintf(stderr, "bench_core: out of memory\n");
    exit(1);
  }
  size_t dots = make_body(body, BODY_SIZE);
  size_t expect = BODY_SIZE + dots + 3; /* body ends with CRLF? see below */
  if (body[BODY_SIZE - 2] != '\r' || body[BODY_SIZE - 1] != '\n')
    expect += 2;
  double best_enc = 1e9, best_cpy = 1e9;
  for (int r = 0; r < ENC_RUNS; r++) {
    double t0 = now();
    size_t n = run_encoder(body, out);
    double t1 = now();
    run_memcpy_chunks(body, out);
    double t2 = now();
    if (n != expect) {
      fprintf(stderr, "bench_core: encoder produced %zu bytes, expected %zu\n",
              n, expect);
      exit(1);
    }
    if (t1 - t0 < best_enc)
      best_enc = t1 - t0;
    if (t2 - t1 < best_cpy)
      best_cpy = t2 - t1;
  }
  double enc = BODY_SIZE / best_enc / 1e9, cpy = BODY_SIZE / best_cpy / 1e9;
  printf("encoder: %d MiB body, %d-char lines, every 7th dot-stuffed "
         "(%zu), %d KiB chunks, best of %d\n",
         BODY_SIZE >> 20, LINE, dots, CHUNK >> 10, ENC_RUNS);
  printf("  encode (DATA)   %6.2f GB/s\n", enc);
  printf("  memcpy          %6.2f GB/s\n", cpy);
  free(body);
  free(out);
  return enc / cpy;
}

/* ------------------------------------------------------------------------ */
/* 2. Reply parsing                                                          */
/* ------------------------------------------------------------------------ */

static const char *const greetings[3] = {
    "220 mail.example.org ESMTP Postfix (Debian/GNU)\r\n",
    "220 smtp.gmail.com ESMTP d9443c01a7336-21c3f2b8a3dsm1234567b3.12 - "
    "gsmtp\r\n",
    "220 AM0PR04CA0123.outlook.office365.com Microsoft ESMTP MAIL Service "
    "ready at Mon, 2 Jun 2025 10:15:07 +0000 [08DDA0B1C2D3E4F5]\r\n"};

static const char *const ehlo_replies[3] = {
    "250-mail.example.org\r\n"
    "250-PIPELINING\r\n"
    "250-SIZE 10240000\r\n"
    "250-VRFY\r\n"
    "250-ETRN\r\n"
    "250-STARTTLS\r\n"
    "250-AUTH PLAIN LOGIN\r\n"
    "250-AUTH=PLAIN LOGIN\r\n"
    "250-ENHANCEDSTATUSCODES\r\n"
    "250-8BITMIME\r\n"
    "250-DSN\r\n"
    "250-SMTPUTF8\r\n"
    "250 CHUNKING\r\n",
    "250-smtp.gmail.com at your service, [203.0.113.7]\r\n"
    "250-SIZE 35882577\r\n"
    "250-8BITMIME\r\n"
    "250-AUTH LOGIN PLAIN XOAUTH2 PLAIN-CLIENTTOKEN OAUTHBEARER XOAUTH\r\n"
    "250-ENHANCEDSTATUSCODES\r\n"
    "250-PIPELINING\r\n"
    "250-CHUNKING\r\n"
    "250 SMTPUTF8\r\n",
    "250-AM0PR04CA0123.outlook.office365.com Hello [203.0.113.7]\r\n"
    "250-SIZE 157286400\r\n"
    "250-PIPELINING\r\n"
    "250-DSN\r\n"
    "250-ENHANCEDSTATUSCODES\r\n"
    "250-AUTH LOGIN XOAUTH2\r\n"
    "250-8BITMIME\r\n"
    "250-BINARYMIME\r\n"
    "250-CHUNKING\r\n"
    "250 SMTPUTF8\r\n"};

static const char *const auth_replies[3] = {
    "334 VXNlcm5hbWU6\r\n", "334 UGFzc3dvcmQ6\r\n",
    "235 2.7.0 Authentication successful\r\n"};

static const char *const mail_ok = "250 2.1.0 Ok\r\n";
static const char *const rcpt_ok = "250 2.1.5 Ok\r\n";
static const char *const rcpt_bad =
    "550 5.1.1 <nobody@example.org>: Recipient address rejected: User "
    "unknown in local recipient table\r\n";
static const char *const data_go = "354 End data with <CR><LF>.<CR><LF>\r\n";
static const char *const quit_ok = "221 2.0.0 Bye\r\n";

enum { SESSIONS = 3000, TXNS = 20, PARSE_RUNS = 5 };

/* Shape of transaction t: its recipient count and which one is refused. */
static int txn_rcpts(int t) { return 1 + t % 4; }
static int txn_bad_rcpt(int t) { return t % 5 == 4 && txn_rcpts(t) > 1; }

/* The pre-built reply stream: one "batch" per feed call, in order. */
typedef struct script {
  char *buf;
  size_t len, cap;
  size_t *ends; /* end offset of each batch */
  size_t nbatch, batch_cap;
  size_t replies;
} script;

static void put(script *s, const char *str) {
  size_t n = strlen(str);
  if (s->len + n > s->cap) {
    s->cap = (s->cap + n) * 2;
    s->buf = realloc(s->buf, s->cap);
  }
  if (s->buf == NULL) {
    fprintf(stderr, "bench_core: out of memory\n");
    exit(1);
  }
  memcpy(s->buf + s->len, str, n);
  s->len += n;
  s->replies++;
}

static void end_batch(script *s) {
  if (s->nbatch == s->batch_cap) {
    s->batch_cap = s->batch_cap ? 2 * s->batch_cap : 1024;
    s->ends = realloc(s->ends, s->batch_cap * sizeof *s->ends);
    if (s->ends == NULL) {
      fprintf(stderr, "bench_core: out of memory\n");
      exit(1);
    }
  }
  s->ends[s->nbatch++] = s->len;
}

static void build_script(script *s) {
  char queued[96];
  memset(s, 0, sizeof *s);
  for (int k = 0; k < SESSIONS; k++) {
    put(s, greetings[k % 3]);
    end_batch(s);
    put(s, ehlo_replies[k % 3]);
    end_batch(s);
    for (int i = 0; i < 3; i++) {
      put(s, auth_replies[i]);
      end_batch(s);
    }
    for (int t = 0; t < TXNS; t++) {
      if (t > 0) { /* end of the previous body, pipelined with this MAIL */
        snprintf(queued, sizeof queued,
                 "250 2.0.0 Ok: queued as 4Xq%04dZ%03dmz%02d\r\n", k, t, k % 97);
        put(s, queued);
      }
      put(s, mail_ok);
      for (int r = 0; r < txn_rcpts(t); r++)
        put(s, txn_bad_rcpt(t) && r == 1 ? rcpt_bad : rcpt_ok);
      put(s, data_go);
      end_batch(s);
    }
    snprintf(queued, sizeof queued,
             "250 2.0.0 Ok: queued as 4Xq%04dZ%03dmz%02d\r\n", k, TXNS, k % 97);
    put(s, queued);
    put(s, quit_ok);
    end_batch(s);
  }
}

typedef struct driver {
  smtpuv_proto *p;
  const script *s;
  size_t batch;
  size_t replies;
  double parse_time; /* inside feed + next_reply, timer cost removed */
  double timer_cost;
} driver;

static void drop_output(smtpuv_proto *p) {
  smtpuv_proto_consumed(p, smtpuv_proto_pending_output(p));
}

/* Feed the next batch and pop everything; expects `n` replies. */
static void feed_batch(driver *d, size_t n) {
  const char *start = d->s->buf + (d->batch ? d->s->ends[d->batch - 1] : 0);
  size_t len = (size_t)(d->s->buf + d->s->ends[d->batch] - start);
  smtpuv_reply r;
  size_t got = 0;
  int rc;
  d->batch++;
  double t0 = now();
  rc = smtpuv_proto_feed(d->p, start, len);
  while (rc == 0 && (rc = smtpuv_proto_next_reply(d->p, &r)) == 1) {
    got++;
    rc = 0;
  }
  double t1 = now();
  d->parse_time += t1 - t0 - d->timer_cost;
  if (rc < 0)
    die(smtpuv_proto_error_text(d->p), rc);
  if (got != n) {
    fprintf(stderr, "bench_core: batch %zu gave %zu replies, expected %zu\n",
            d->batch, got, n);
    exit(1);
  }
  d->replies += got;
}

static void check(int rc, const char *what) {
  if (rc != 0)
    die(what, rc);
}

static void run_session(driver *d) {
  static const char body[] = "From: a@example.org\r\nTo: b@example.org\r\n"
                             "Subject: bench\r\n\r\nHello.\r\n";
  int rc = smtpuv_proto_new(NULL, &d->p);
  if (rc != 0)
    die("smtpuv_proto_new", rc);
  feed_batch(d, 1);
  check(smtpuv_proto_ehlo(d->p, "client.example.net"), "ehlo");
  feed_batch(d, 1);
  check(smtpuv_proto_auth(d->p, "LOGIN", NULL), "auth");
  feed_batch(d, 1);
  check(smtpuv_proto_auth_response(d->p, "dXNlcg=="), "auth_response");
  feed_batch(d, 1);
  check(smtpuv_proto_auth_response(d->p, "c2VjcmV0"), "auth_response");
  feed_batch(d, 1);
  drop_output(d->p);
  for (int t = 0; t < TXNS; t++) {
    if (t > 0)
      check(smtpuv_proto_data_end(d->p), "data_end");
    check(smtpuv_proto_mail(d->p, "sender@example.org", NULL), "mail");
    for (int r = 0; r < txn_rcpts(t); r++)
      check(smtpuv_proto_rcpt(d->p, "rcpt@example.net", NULL), "rcpt");
    check(smtpuv_proto_data(d->p), "data");
    feed_batch(d, (t > 0) + 2 + (size_t)txn_rcpts(t));
    check(smtpuv_proto_data_write(d->p, body, sizeof body - 1), "data_write");
    drop_output(d->p);
  }
  check(smtpuv_proto_data_end(d->p), "data_end");
  check(smtpuv_proto_quit(d->p), "quit");
  feed_batch(d, 2);
  smtpuv_proto_free(d->p);
  d->p = NULL;
}

static double timer_cost(void) {
  double best = 1e9;
  for (int k = 0; k < 5; k++) {
    double t0 = now();
    for (int i = 0; i < 10000; i++)
      (void)now();
    double per = (now() - t0) / 10000;
    if (per < best)
      best = per;
  }
  return best;
}

static void bench_replies(void) {
  script s;
  build_script(&s);
  double tc = timer_cost();
  double best_parse = 1e9, best_total = 1e9, best_cpy = 1e9;
  size_t replies = 0;
  char *dst = malloc(65536);
  if (dst == NULL)
    exit(1);
  for (int run = 0; run < PARSE_RUNS; run++) {
    driver d = {NULL, &s, 0, 0, 0.0, tc};
    double t0 = now();
    for (int k = 0; k < SESSIONS; k++)
      run_session(&d);
    double t1 = now();
    if (d.batch != s.nbatch || d.replies != s.replies) {
      fprintf(stderr, "bench_core: script out of step\n");
      exit(1);
    }
    replies = d.replies;
    for (size_t b = 0, start = 0; b < s.nbatch; start = s.ends[b], b++)
      copy_fn(dst, s.buf + start, s.ends[b] - start);
    double t2 = now();
    sink += (unsigned char)dst[0];
    if (d.parse_time < best_parse)
      best_parse = d.parse_time;
    if (t1 - t0 < best_total)
      best_total = t1 - t0;
    if (t2 - t1 < best_cpy)
      best_cpy = t2 - t1;
  }
  double mb = (double)s.len / 1e6;
  printf("reply parsing: %zu replies, %.1f MB in %zu feeds per run "
         "(%d sessions: greeting, EHLO, AUTH LOGIN, %d pipelined "
         "transactions, QUIT), best of %d\n",
         replies, mb, s.nbatch, SESSIONS, TXNS, PARSE_RUNS);
  printf("  feed+next_reply %8.1f MB/s  %6.2f M replies/s  "
         "(timer cost %.0f ns/feed removed)\n",
         mb / best_parse, (double)replies / best_parse / 1e6, tc * 1e9);
  printf("  whole session   %8.1f MB/s  (with commands, new/free)\n",
         mb / best_total);
  printf("  memcpy          %8.1f MB/s  (same feeds)\n", mb / best_cpy);
  printf("  parse/memcpy: %.3f\n", best_cpy / best_parse);
  free(dst);
  free(s.buf);
  free(s.ends);
}

/* ------------------------------------------------------------------------ */
/* 3. The composer                                                           */
/* ------------------------------------------------------------------------ */

#define COMPOSE_RUNS 3
#define COMPOSE_CHUNK 65536

/* Read the whole message `runs` times: best seconds; `*total` its size. */
static double compose_read_best(smtpuv_compose *c, char *buf, size_t *total) {
  double best = 1e9;
  for (int r = 0; r < COMPOSE_RUNS; r++) {
    check(smtpuv_compose_rewind(c), "smtpuv_compose_rewind");
    size_t n = 0;
    double t0 = now();
    for (;;) {
      long k = smtpuv_compose_read(c, buf, COMPOSE_CHUNK);
      if (k < 0)
        die("smtpuv_compose_read", (int)k);
      if (k == 0)
        break;
      n += (size_t)k;
    }
    double t = now() - t0;
    if (t < best)
      best = t;
    if ((int64_t)n != smtpuv_compose_size(c))
      die("composer size", -1);
    *total = n;
  }
  sink += (unsigned char)buf[0];
  return best;
}

static double memcpy_best(const char *in, size_t len, char *buf) {
  double best = 1e9;
  for (int r = 0; r < COMPOSE_RUNS; r++) {
    double t0 = now();
    for (size_t off = 0; off < len; off += COMPOSE_CHUNK)
      copy_fn(buf, in + off, len - off < COMPOSE_CHUNK ? len - off : COMPOSE_CHUNK);
    double t = now() - t0;
    if (t < best)
      best = t;
  }
  sink += (unsigned char)buf[1];
  return best;
}

static void bench_compose_one(const char *what, const char *in, size_t len,
                              int binary) {
  smtpuv_compose *c;
  check(smtpuv_compose_new(NULL, 0, &c), "smtpuv_compose_new");
  check(smtpuv_compose_address(c, SMTPUV_COMPOSE_FROM, NULL, "a@example.org"), "address");
  check(smtpuv_compose_address(c, SMTPUV_COMPOSE_TO, NULL, "b@example.org"), "address");
  if (binary) {
    smtpuv_compose_part p = SMTPUV_COMPOSE_PART_INIT;
    p.data = in;
    p.len = len;
    check(smtpuv_compose_attach(c, &p), "smtpuv_compose_attach");
  } else {
    check(smtpuv_compose_text(c, in, len), "smtpuv_compose_text");
  }
  check(smtpuv_compose_finish(c), "smtpuv_compose_finish");
  char *buf = malloc(COMPOSE_CHUNK);
  if (buf == NULL)
    die("malloc", -1);
  size_t total;
  double tc = compose_read_best(c, buf, &total);
  double tm = memcpy_best(in, len, buf);
  double mc = (double)len / tc / 1e6, mm = (double)len / tm / 1e6;
  printf("  %-28s %8.1f MB/s   memcpy %8.1f MB/s   ratio %.3f  (%zu bytes out)\n",
         what, mc, mm, mc / mm, total);
  free(buf);
  smtpuv_compose_free(c);
}

static void bench_compose(void) {
  size_t bin_len = 20u << 20, text_len = 1u << 20;
  char *bin = malloc(bin_len), *text = malloc(text_len);
  if (bin == NULL || text == NULL)
    die("malloc", -1);
  uint64_t x = 88172645463325252ull;
  for (size_t i = 0; i < bin_len; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    bin[i] = (char)(x >> 24);
  }
  /* French-like text: mostly ASCII, an accented letter now and then, lines
     of 100 characters (over 76: quoted-printable soft breaks) */
  static const char *const words[] = {"le ", "café ", "est ", "prêt ", "pour ",
                                      "tous ", "les ", "développeurs ", "et ",
                                      "opérateurs "};
  size_t o = 0, col = 0, w = 0;
  while (o < text_len) {
    const char *s = words[w++ % 10];
    size_t n = strlen(s);
    if (col + n > 100 || o + n + 1 >= text_len) {
      text[o++] = '\n';
      col = 0;
      if (o + n + 1 >= text_len) {
        while (o < text_len)
          text[o++] = 'x';
        break;
      }
    }
    memcpy(text + o, s, n);
    o += n;
    col += n;
  }
  text[text_len - 1] = '\n';
  printf("composer: best of %d, %d KiB reads\n", COMPOSE_RUNS, COMPOSE_CHUNK >> 10);
  bench_compose_one("20 MiB binary -> base64", bin, bin_len, 1);
  bench_compose_one("1 MiB text -> quoted-printable", text, text_len, 0);
  free(bin);
  free(text);
}

int main(void) {
  double ratio = bench_encoder();
  bench_replies();
  bench_compose();
  printf("encoder/memcpy: %.2f\n", ratio);
  return 0;
}

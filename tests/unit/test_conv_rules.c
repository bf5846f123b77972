/* SPDX-License-Identifier: MIT */
/* Rules of the conversation (src/conv), driven directly: server bytes in,
 * client bytes out, a fake clock, no sockets.
 *   - the body rules that hold for every body (smtpuv/send.h,
 *     mail_params): binary content (NUL, lines over 998 octets) only as
 *     BINARYMIME, 8-bit content only as 8BITMIME; a buffer refused before
 *     MAIL, a stream stopped before its final ".";
 *   - QUIT after the last refusal;
 *   - the deadlines: idle from the moment the connection went idle, a
 *     final reply's deadline not moved by a later pipelined write. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "conv/conv.h"

#define EHLO_BASE "250-mx\r\n250-PIPELINING\r\n250-8BITMIME\r\n"

typedef struct run {
  smtpuv__conv *cv;
  char out[1 << 20]; /* what the client wrote, command lines only: bodies
                        are summarised by their length in `body_bytes` */
  size_t len;
  size_t total;
} run;

/* Take everything the conversation wants written (handed and written at
   once, as a socket that takes it all). */
static void drain(run *r) {
  smtpuv_iov iov[16];
  int n;
  while ((n = smtpuv__conv_outgoing(r->cv, iov, 16)) > 0) {
    size_t t = 0;
    for (int i = 0; i < n; i++) {
      size_t k = iov[i].len;
      if (r->len + k < sizeof r->out) {
        memcpy(r->out + r->len, iov[i].base, k);
        r->len += k;
      }
      t += k;
    }
    r->total += t;
    smtpuv__conv_handed(r->cv, t);
    smtpuv__conv_written(r->cv, t);
  }
  r->out[r->len] = '\0';
}

static void feed(run *r, const char *s) {
  smtpuv__conv_received(r->cv, s, strlen(s));
  drain(r);
}

static void start(run *r, const char *ehlo, int chunking) {
  memset(r, 0, sizeof *r);
  smtpuv__conv_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.mode = SMTPUV__CONV_SEND;
  cfg.tls = SMTPUV_TLS_NONE;
  cfg.pipelining = 1;
  cfg.chunking = chunking;
  cfg.ehlo_name = "client.example";
  for (int i = 0; i < SMTPUV__NTIMEOUTS; i++)
    cfg.timeouts[i] = 1000;
  assert_int_equal(smtpuv__conv_new(NULL, &cfg, &r->cv), 0);
  smtpuv__conv_set_now(r->cv, 0);
  smtpuv__conv_connected(r->cv, "[127.0.0.1]");
  drain(r);
  feed(r, "220 mx ready\r\n");
  assert_string_equal(r->out, "EHLO client.example\r\n");
  feed(r, ehlo);
  assert_int_equal(smtpuv__conv_can_take(r->cv), 1);
  r->len = 0;
}

static smtpuv__msg *submit(run *r, const smtpuv_body *b) {
  static const char *to[] = {"b@example.com"};
  smtpuv_envelope env = SMTPUV_ENVELOPE_INIT;
  env.sender = "a@example.com";
  env.recipients = to;
  env.nrecipients = 1;
  smtpuv__msg *m;
  assert_int_equal(smtpuv__msg_new(smtpuv_mem_default(), &env, b, &m), 0);
  smtpuv__conv_submit(r->cv, m);
  drain(r);
  return m;
}

static smtpuv__msg *finished(run *r) {
  smtpuv__msg *m = smtpuv__conv_pop_finished(r->cv);
  assert_non_null(m);
  assert_null(smtpuv__conv_pop_finished(r->cv));
  return m;
}

static void done(run *r, smtpuv__msg *m) {
  smtpuv__msg_free(smtpuv_mem_default(), m);
  smtpuv__conv_free(r->cv);
}

/* ---- a streamed body from a string, with an optional tail ---------------- */

typedef struct src {
  const char *head; /* repeated `reps` times */
  size_t reps;
  const char *tail;
  size_t tail_len;
  size_t pos, total;
  size_t head_len; /* 0: strlen(head) */
} src;

static long src_read(void *user, void *buf, size_t cap) {
  src *s = user;
  size_t hl = s->head_len ? s->head_len : strlen(s->head);
  size_t body = hl * s->reps;
  size_t all = body + s->tail_len;
  size_t n = 0;
  while (n < cap && s->pos < all) {
    ((char *)buf)[n++] = s->pos < body ? s->head[s->pos % hl]
                                       : s->tail[s->pos - body];
    s->pos++;
  }
  return (long)n;
}

/* ---- buffers ---------------------------------------------------------------- */

static char *long_line(size_t n) {
  static const char head[] = "Subject: x\r\n\r\n";
  char *b = malloc(sizeof head + n + 3);
  memcpy(b, head, sizeof head - 1);
  memset(b + sizeof head - 1, 'a', n);
  memcpy(b + sizeof head - 1 + n, "\r\n", 3);
  return b;
}

static void test_buffer_long_line(void **state) {
  (void)state;
  run r;
  smtpuv_body b;
  /* 999 octets: refused before MAIL, nothing written */
  char *body = long_line(999);
  start(&r, EHLO_BASE "250 SIZE 100000\r\n", 1);
  smtpuv_body_init_buffer(&b, body, strlen(body));
  smtpuv__msg *m = submit(&r, &b);
  assert_int_equal(r.len, 0);
  m = finished(&r);
  assert_int_equal(m->status, SMTPUV_SEND_FAILED);
  assert_int_equal(m->error, SMTPUV_EBINARY);
  assert_int_equal(m->phase, SMTPUV_PHASE_MAIL);
  assert_int_equal(smtpuv__conv_end(r.cv, NULL), SMTPUV__CONV_RUN);
  done(&r, m);
  free(body);

  /* 998 octets: the longest line allowed goes out */
  body = long_line(998);
  start(&r, EHLO_BASE "250 SIZE 100000\r\n", 1);
  smtpuv_body_init_buffer(&b, body, strlen(body));
  submit(&r, &b);
  assert_non_null(strstr(r.out, "MAIL FROM:<a@example.com> SIZE=1014\r\n"));
  feed(&r, "250 ok\r\n250 ok\r\n354 go\r\n");
  assert_non_null(strstr(r.out, "aaa\r\n.\r\n"));
  feed(&r, "250 queued\r\n");
  m = finished(&r);
  assert_int_equal(m->status, SMTPUV_SEND_SENT);
  done(&r, m);
  free(body);

  /* with BINARYMIME and CHUNKING it goes as BINARYMIME, unchanged */
  body = long_line(999);
  start(&r, EHLO_BASE "250-CHUNKING\r\n250 BINARYMIME\r\n", 1);
  smtpuv_body_init_buffer(&b, body, strlen(body));
  submit(&r, &b);
  assert_non_null(strstr(r.out, "MAIL FROM:<a@example.com> BODY=BINARYMIME\r\n"));
  assert_non_null(strstr(r.out, "BDAT 1015 LAST\r\n"));
  feed(&r, "250 ok\r\n250 ok\r\n250 queued\r\n");
  m = finished(&r);
  assert_int_equal(m->status, SMTPUV_SEND_SENT);
  done(&r, m);
  free(body);
}

static void test_buffer_nul(void **state) {
  (void)state;
  static const char body[] = "Subject: x\r\n\r\na\0b\r\n";
  run r;
  smtpuv_body b;
  start(&r, EHLO_BASE "250 CHUNKING\r\n", 1); /* no BINARYMIME */
  smtpuv_body_init_buffer(&b, body, sizeof body - 1);
  submit(&r, &b);
  assert_int_equal(r.len, 0);
  smtpuv__msg *m = finished(&r);
  assert_int_equal(m->error, SMTPUV_EBINARY);
  assert_non_null(strstr(m->arena + m->message, "BINARYMIME"));
  done(&r, m);
}

/* ---- streams ------------------------------------------------------------------ */

/* 8-bit bytes after the first chunk of a stream that did not say it may
   hold them: the transaction ends before its final "." (DATA: the
   connection is dropped). */
static void test_stream_late_8bit(void **state) {
  (void)state;
  run r;
  src s = {"0123456789 abcdefghijklmnopqrstuvwxyz\r\n", 3000, "caf\xc3\xa9\r\n",
           7, 0, 0, 0};
  smtpuv_body b;
  smtpuv_body_init_stream(&b, src_read, NULL, &s, 0);
  start(&r, EHLO_BASE "250 SIZE 1000000\r\n", 0);
  submit(&r, &b);
  /* the first chunk is 7-bit: no BODY= */
  assert_non_null(strstr(r.out, "MAIL FROM:<a@example.com>\r\n"));
  feed(&r, "250 ok\r\n250 ok\r\n354 go\r\n");
  smtpuv__msg *m = finished(&r);
  assert_int_equal(m->status, SMTPUV_SEND_FAILED);
  assert_int_equal(m->error, SMTPUV_E8BIT);
  assert_int_equal(m->phase, SMTPUV_PHASE_DATA);
  assert_null(strstr(r.out, "\r\n.\r\n")); /* no final dot */
  int err;
  assert_int_equal(smtpuv__conv_end(r.cv, &err), SMTPUV__CONV_ABORT);
  done(&r, m);

  /* the same source with SMTPUV_BODY_8BIT is declared and goes out */
  src s2 = s;
  s2.pos = 0;
  smtpuv_body_init_stream(&b, src_read, NULL, &s2, 0);
  b.flags = SMTPUV_BODY_8BIT;
  start(&r, EHLO_BASE "250 SIZE 1000000\r\n", 0);
  submit(&r, &b);
  assert_non_null(strstr(r.out, "MAIL FROM:<a@example.com> BODY=8BITMIME\r\n"));
  feed(&r, "250 ok\r\n250 ok\r\n354 go\r\n");
  assert_non_null(strstr(r.out, "caf\xc3\xa9\r\n.\r\n"));
  feed(&r, "250 queued\r\n");
  m = finished(&r);
  assert_int_equal(m->status, SMTPUV_SEND_SENT);
  done(&r, m);
}

/* 8-bit bytes in the first chunk: declared BODY=8BITMIME. */
static void test_stream_early_8bit(void **state) {
  (void)state;
  run r;
  src s = {"caf\xc3\xa9\r\n", 10, "", 0, 0, 0, 0};
  smtpuv_body b;
  smtpuv_body_init_stream(&b, src_read, NULL, &s, 0);
  start(&r, EHLO_BASE "250 SIZE 1000000\r\n", 0);
  submit(&r, &b);
  assert_non_null(strstr(r.out, "MAIL FROM:<a@example.com> BODY=8BITMIME\r\n"));
  feed(&r, "250 ok\r\n250 ok\r\n354 go\r\n");
  feed(&r, "250 queued\r\n");
  smtpuv__msg *m = finished(&r);
  assert_int_equal(m->status, SMTPUV_SEND_SENT);
  done(&r, m);
}

/* A NUL after the first chunk of a BDAT stream: no LAST is sent, the
   transaction is closed with RSET and the connection stays. */
static void test_stream_late_nul_bdat(void **state) {
  (void)state;
  run r;
  src s = {"line of text\r\n", 8000, "a\0b\r\n", 5, 0, 0, 0};
  smtpuv_body b;
  smtpuv_body_init_stream(&b, src_read, NULL, &s, 0);
  start(&r, EHLO_BASE "250 CHUNKING\r\n", 1);
  submit(&r, &b);
  assert_non_null(strstr(r.out, "MAIL FROM:<a@example.com>\r\n"));
  assert_null(strstr(r.out, "LAST"));
  assert_non_null(strstr(r.out, "BDAT 65536\r\n"));
  /* decided at once (the second chunk holds the NUL), finished when the
     replies to MAIL, RCPT and the one chunk are in */
  assert_null(smtpuv__conv_pop_finished(r.cv));
  feed(&r, "250 ok\r\n250 ok\r\n250 chunk\r\n");
  smtpuv__msg *m = smtpuv__conv_pop_finished(r.cv);
  assert_non_null(m);
  assert_int_equal(m->status, SMTPUV_SEND_FAILED);
  assert_int_equal(m->error, SMTPUV_EBINARY);
  assert_int_equal(m->phase, SMTPUV_PHASE_DATA);
  assert_null(strstr(r.out, "LAST"));
  assert_non_null(strstr(r.out, "RSET\r\n"));
  assert_int_equal(smtpuv__conv_end(r.cv, NULL), SMTPUV__CONV_RUN);
  done(&r, m);
}

/* Binary in the first chunk, BINARYMIME and CHUNKING offered. */
static void test_stream_binarymime(void **state) {
  (void)state;
  run r;
  src s = {"x\0y\r\n", 4, "", 0, 0, 0, 5};
  smtpuv_body b;
  smtpuv_body_init_stream(&b, src_read, NULL, &s, 0);
  start(&r, EHLO_BASE "250-CHUNKING\r\n250 BINARYMIME\r\n", 1);
  submit(&r, &b);
  if (strstr(r.out, "MAIL FROM:<a@example.com> BODY=BINARYMIME\r\n") == NULL)
    fail_msg("%s", r.out);
  assert_non_null(strstr(r.out, "BDAT 20 LAST\r\n"));
  feed(&r, "250 ok\r\n250 ok\r\n250 ok\r\n");
  smtpuv__msg *m = finished(&r);
  assert_int_equal(m->status, SMTPUV_SEND_SENT);
  done(&r, m);
}

/* ---- QUIT after the last refusal (RFC 5321 4.1.1.10) ------------------------ */

static void test_quit_after_refusal(void **state) {
  (void)state;
  static const char body[] = "Subject: x\r\n\r\nhi\r\n";
  for (int pipelining = 0; pipelining < 2; pipelining++) {
    run r;
    smtpuv_body b;
    start(&r,
          pipelining ? EHLO_BASE "250 SIZE 1000\r\n"
                     : "250-mx\r\n250 8BITMIME\r\n",
          0);
    smtpuv_body_init_buffer(&b, body, sizeof body - 1);
    submit(&r, &b);
    assert_non_null(strstr(r.out, "MAIL FROM:<a@example.com>"));
    feed(&r, pipelining ? "451 4.3.0 try later\r\n554 no valid recipients\r\n"
                          "554 no valid recipients\r\n"
                        : "451 4.3.0 try later\r\n");
    smtpuv__msg *m = finished(&r);
    assert_int_equal(m->status, SMTPUV_SEND_FAILED);
    assert_int_equal(m->error, SMTPUV_ETEMPFAIL);
    assert_non_null(strstr(r.out, "RSET\r\n"));
    /* the application closes after the last message's callback */
    smtpuv__conv_close(r.cv);
    drain(&r);
    if (!pipelining) {
      /* QUIT waits for the RSET reply without pipelining */
      assert_null(strstr(r.out, "QUIT"));
      feed(&r, "250 reset\r\n");
    }
    assert_non_null(strstr(r.out, "RSET\r\nQUIT\r\n"));
    assert_int_equal(smtpuv__conv_end(r.cv, NULL), SMTPUV__CONV_RUN);
    feed(&r, pipelining ? "250 reset\r\n221 bye\r\n" : "221 bye\r\n");
    assert_int_equal(smtpuv__conv_end(r.cv, NULL), SMTPUV__CONV_FINISH);
    done(&r, m);
  }
}

/* ---- deadlines ---------------------------------------------------------------- */

static uint64_t deadline(run *r) {
  uint64_t at = 0;
  assert_int_equal(smtpuv__conv_deadline(r->cv, &at), 1);
  return at;
}

/* A server that takes long to answer the final dot: the idle time starts
   when the reply came, not when the dot was written. */
static void test_idle_after_slow_reply(void **state) {
  (void)state;
  static const char body[] = "Subject: x\r\n\r\nhi\r\n";
  run r;
  smtpuv_body b;
  start(&r, EHLO_BASE "250 SIZE 1000\r\n", 0); /* timeouts: 1000 each */
  smtpuv__conv_set_now(r.cv, 100);
  smtpuv_body_init_buffer(&b, body, sizeof body - 1);
  submit(&r, &b);
  feed(&r, "250 ok\r\n250 ok\r\n354 go\r\n");
  assert_non_null(strstr(r.out, "hi\r\n.\r\n"));
  assert_int_equal(deadline(&r), 1100); /* FINAL from the dot */
  smtpuv__conv_set_now(r.cv, 900);
  feed(&r, "250 queued\r\n");
  smtpuv__msg *m = finished(&r);
  assert_int_equal(m->status, SMTPUV_SEND_SENT);
  assert_int_equal(deadline(&r), 1900); /* IDLE from the reply */
  smtpuv__conv_set_now(r.cv, 1800);
  smtpuv__conv_timer(r.cv);
  assert_null(strstr(r.out, "QUIT")); /* not yet */
  smtpuv__conv_set_now(r.cv, 1900);
  smtpuv__conv_timer(r.cv);
  drain(&r);
  assert_non_null(strstr(r.out, "QUIT\r\n"));
  done(&r, m);
}

/* A reply trickled a byte at a time does not move its deadline; a later
   pipelined message's write does not move the deadline of the reply
   awaited before it. */
static void test_reply_deadline_fixed(void **state) {
  (void)state;
  static const char body[] = "Subject: x\r\n\r\nhi\r\n";
  run r;
  smtpuv_body b;
  start(&r, EHLO_BASE "250 SIZE 1000\r\n", 0);
  smtpuv__conv_set_now(r.cv, 0);
  smtpuv_body_init_buffer(&b, body, sizeof body - 1);
  submit(&r, &b);
  assert_int_equal(deadline(&r), 1000);
  /* "250 ok" for MAIL, one byte every 100 ms */
  const char *t = "250 ok\r";
  for (int i = 0; t[i]; i++) {
    smtpuv__conv_set_now(r.cv, 100 * (uint64_t)(i + 1));
    smtpuv__conv_received(r.cv, t + i, 1);
    assert_int_equal(deadline(&r), 1000);
  }
  smtpuv__conv_set_now(r.cv, 1000);
  smtpuv__conv_timer(r.cv);
  smtpuv__msg *m = finished(&r);
  assert_int_equal(m->status, SMTPUV_SEND_FAILED);
  assert_int_equal(m->error, SMTPUV_ETIMEDOUT);
  assert_int_equal(m->phase, SMTPUV_PHASE_MAIL);
  done(&r, m);

  /* message 1's dot at t=0, message 2 pipelined and written at t=500:
     message 1's final reply is still due at t=1000 */
  start(&r, EHLO_BASE "250 SIZE 1000\r\n", 0);
  smtpuv__conv_set_now(r.cv, 0);
  submit(&r, &b);
  feed(&r, "250 ok\r\n250 ok\r\n354 go\r\n");
  assert_int_equal(deadline(&r), 1000);
  smtpuv__conv_set_now(r.cv, 500);
  submit(&r, &b); /* MAIL of #2 behind #1's dot */
  assert_non_null(strstr(r.out, "hi\r\n.\r\nMAIL FROM:"));
  assert_int_equal(deadline(&r), 1000);
  smtpuv__msg *m2;
  smtpuv__conv_set_now(r.cv, 1000);
  smtpuv__conv_timer(r.cv);
  m = smtpuv__conv_pop_finished(r.cv);
  m2 = smtpuv__conv_pop_finished(r.cv);
  assert_non_null(m);
  assert_non_null(m2);
  assert_int_equal(m->status, SMTPUV_SEND_UNKNOWN); /* its dot was out */
  assert_int_equal(m2->status, SMTPUV_SEND_FAILED);
  smtpuv__msg_free(smtpuv_mem_default(), m2);
  done(&r, m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_buffer_long_line),
      cmocka_unit_test(test_buffer_nul),
      cmocka_unit_test(test_stream_late_8bit),
      cmocka_unit_test(test_stream_early_8bit),
      cmocka_unit_test(test_stream_late_nul_bdat),
      cmocka_unit_test(test_stream_binarymime),
      cmocka_unit_test(test_quit_after_refusal),
      cmocka_unit_test(test_idle_after_slow_reply),
      cmocka_unit_test(test_reply_deadline_fixed),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/*
 * Fail the Nth allocation, for every N, across a whole conversation that
 * reaches every allocating path (session, input buffer, queue growth, reply
 * lines, EHLO record, output blocks for commands, DATA and BDAT bodies).
 * The failing call must return SMTPUV_ENOMEM and change nothing: retried,
 * the conversation goes on and produces exactly the bytes and replies of
 * a run without failures. Nothing leaks.
 */
#include "test_proto_util.h"

typedef struct run {
  test_mem tm;
  smtpuv_proto *p;
  char *log; /* client bytes and replies, in order */
  size_t len, cap;
  unsigned enomem; /* ENOMEM results seen */
} run;

static void log_add(run *r, const void *s, size_t n) {
  if (r->len + n > r->cap) {
    r->cap = (r->len + n) * 2;
    r->log = realloc(r->log, r->cap);
    assert_non_null(r->log);
  }
  memcpy(r->log + r->len, s, n);
  r->len += n;
}

/* Move pending output to the log. */
static void drain(run *r) {
  size_t n;
  char *out = pending_copy(r->p, &n);
  log_add(r, out, n);
  free(out);
  smtpuv_proto_consumed(r->p, n);
}

typedef struct snap {
  size_t out, q, in_end;
  smtpuv_state st;
} snap;

static snap take(smtpuv_proto *p) {
  snap s = {smtpuv_proto_pending_output(p), smtpuv_proto_pending_replies(p),
            p->in.end, smtpuv_proto_state(p)};
  return s;
}

static void same(smtpuv_proto *p, snap s) {
  snap t = take(p);
  assert_int_equal(t.out, s.out);
  assert_int_equal(t.q, s.q);
  assert_int_equal(t.in_end, s.in_end);
  assert_int_equal(t.st, s.st);
}

/* Run `expr`; on SMTPUV_ENOMEM check nothing changed and run it again
   (the allocator fails one call only). */
#define TRY(r, expr, want)                                                     \
  do {                                                                         \
    snap s_ = take((r)->p);                                                    \
    int rc_ = (expr);                                                          \
    if (rc_ == SMTPUV_ENOMEM) {                                                \
      (r)->enomem++;                                                           \
      same((r)->p, s_);                                                        \
      rc_ = (expr);                                                            \
    }                                                                          \
    assert_int_equal(rc_, (want));                                             \
  } while (0)

static void feed(run *r, const char *s) {
  TRY(r, feed_str(r->p, s), 0);
}

/* Pop every available reply into the log. */
static void pop_all(run *r) {
  for (;;) {
    smtpuv_reply rep;
    snap s = take(r->p);
    int rc = smtpuv_proto_next_reply(r->p, &rep);
    if (rc == SMTPUV_ENOMEM) {
      r->enomem++;
      same(r->p, s);
      rc = smtpuv_proto_next_reply(r->p, &rep);
    }
    if (rc == 0)
      break;
    assert_int_equal(rc, 1);
    char head[64];
    int n = snprintf(head, sizeof head, "[%s %d %u %s|",
                     smtpuv_cmd_name(rep.command), rep.code, rep.flags,
                     rep.enhanced);
    log_add(r, head, (size_t)n);
    log_add(r, rep.text, rep.text_len);
    log_add(r, "]", 1);
  }
}

static void conversation(run *r) {
  smtpuv_proto *p = NULL;
  int rc = smtpuv_proto_new(&r->tm.mem, &p);
  if (rc == SMTPUV_ENOMEM) {
    assert_null(p);
    r->enomem++;
    rc = smtpuv_proto_new(&r->tm.mem, &p);
  }
  assert_int_equal(rc, 0);
  r->p = p;

  /* a greeting with more lines than the inline array */
  char greet[2048] = "";
  for (int i = 0; i < 40; i++)
    strcat(greet, "220-welcome line\r\n");
  strcat(greet, "220 mx ready\r\n");
  feed(r, greet);
  pop_all(r);
  TRY(r, smtpuv_proto_ehlo(p, "client.example"), 0);
  drain(r);
  feed(r, "250-mx\r\n250-PIPELINING\r\n250-STARTTLS\r\n250-SIZE 100000000\r\n"
          "250 8BITMIME\r\n");
  pop_all(r);
  TRY(r, smtpuv_proto_starttls(p), 0);
  drain(r);
  feed(r, "220 go\r\n");
  pop_all(r);
  TRY(r, smtpuv_proto_tls_established(p), 0);
  TRY(r, smtpuv_proto_ehlo(p, "client.example"), 0);
  drain(r);
  feed(r, "250-mx\r\n250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n"
          "250-AUTH PLAIN LOGIN\r\n250-CHUNKING\r\n250-DSN\r\n"
          "250-SIZE 100000000\r\n250 8BITMIME\r\n");
  pop_all(r);
  TRY(r, smtpuv_proto_auth(p, "LOGIN", NULL), 0);
  drain(r);
  feed(r, "334 VXNlcm5hbWU6\r\n");
  pop_all(r);
  TRY(r, smtpuv_proto_auth_response(p, "dXNlcg=="), 0);
  drain(r);
  feed(r, "235 2.7.0 ok\r\n");
  pop_all(r);

  /* 20 pipelined recipients: the queue grows */
  smtpuv_mail_params mp = SMTPUV_MAIL_PARAMS_INIT;
  mp.size = 5000000;
  mp.body = SMTPUV_BODY_8BITMIME;
  TRY(r, smtpuv_proto_mail(p, "a@b", &mp), 0);
  smtpuv_rcpt_params rp = SMTPUV_RCPT_PARAMS_INIT;
  rp.dsn_notify = SMTPUV_DSN_NOTIFY_FAILURE;
  rp.dsn_orcpt = "x@y";
  char replies[4096] = "250 2.1.0 ok\r\n";
  for (int i = 0; i < 20; i++) {
    char rcpt[32];
    snprintf(rcpt, sizeof rcpt, "r%d@example.org", i);
    TRY(r, smtpuv_proto_rcpt(p, rcpt, &rp), 0);
    strcat(replies, i % 3 ? "250 2.1.5 ok\r\n" : "550 5.1.1 no\r\n");
  }
  TRY(r, smtpuv_proto_data(p), 0);
  strcat(replies, "354 go\r\n");
  drain(r);
  feed(r, replies);
  pop_all(r);

  /* a body of several blocks */
  size_t blen = 3 * SMTPUV_OUTBUF_BLOCK + 1234;
  char *body = malloc(blen);
  for (size_t i = 0; i < blen; i++)
    body[i] = "ab\n.\r\xc3"[i % 6];
  TRY(r, smtpuv_proto_data_write(p, body, blen), 0);
  TRY(r, smtpuv_proto_data_write(p, body, 100), 0);
  TRY(r, smtpuv_proto_data_end(p), 0);
  drain(r);

  /* BDAT, pipelined after the end of data, with large chunks */
  TRY(r, smtpuv_proto_mail(p, "", &mp), 0);
  TRY(r, smtpuv_proto_rcpt(p, "z@example.org", NULL), 0);
  TRY(r, smtpuv_proto_bdat(p, body, blen, 0), 0);
  TRY(r, smtpuv_proto_bdat(p, body, 5000, 1), 0);
  drain(r);
  feed(r, "250 2.0.0 queued\r\n250 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n");
  pop_all(r);

  /* every recipient refused, DATA pipelined: the core ends the body */
  TRY(r, smtpuv_proto_mail(p, "a@b", NULL), 0);
  TRY(r, smtpuv_proto_rcpt(p, "n@example.org", NULL), 0);
  TRY(r, smtpuv_proto_data(p), 0);
  drain(r);
  feed(r, "250 ok\r\n550 no\r\n354 go\r\n");
  pop_all(r);
  drain(r);
  feed(r, "554 no recipients\r\n");
  pop_all(r);

  TRY(r, smtpuv_proto_vrfy(p, "postmaster"), 0);
  drain(r);
  feed(r, "252 2.0.0 maybe\r\n");
  pop_all(r);
  TRY(r, smtpuv_proto_rset(p), 0);
  TRY(r, smtpuv_proto_quit(p), 0);
  drain(r);
  feed(r, "250 ok\r\n221 bye\r\n");
  pop_all(r);
  assert_int_equal(smtpuv_proto_error(p), 0);
  free(body);
}

static void test_fail_every_allocation(void **state) {
  (void)state;
  run ref;
  memset(&ref, 0, sizeof ref);
  test_mem_init(&ref.tm, 0);
  conversation(&ref);
  smtpuv_proto_free(ref.p);
  assert_int_equal(ref.tm.live, 0);
  unsigned long total = ref.tm.calls;
  assert_true(total > 10);

  unsigned long n;
  for (n = 1; n <= total + 1; n++) {
    run r;
    memset(&r, 0, sizeof r);
    test_mem_init(&r.tm, n);
    conversation(&r);
    smtpuv_proto_free(r.p);
    assert_int_equal(r.tm.live, 0);
    if (r.len != ref.len || memcmp(r.log, ref.log, r.len) != 0)
      fail_msg("allocation %lu failed: the conversation changed", n);
    if (n <= total)
      assert_true(r.tm.failed && r.enomem == 1);
    else
      assert_false(r.tm.failed);
    free(r.log);
  }
  print_message("%lu allocation points failed one by one\n", total);
  free(ref.log);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fail_every_allocation),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/*
 * LMTP (RFC 2033) in the sans-io core: LHLO, and one reply per accepted
 * recipient after the end of data (DATA's "." and BDAT LAST), tagged with
 * the recipient's RCPT index, in RCPT order, FIFO with what is pipelined
 * after it. Client bytes are checked exactly; every conversation runs with
 * each server flight fed whole, one byte at a time and cut at every
 * offset.
 */
#include "test_proto_util.h"

/* Greeting and LHLO reply of Dovecot 2.3.19 (Debian 12 dovecot-lmtpd), as
   recorded from tests/servers/dovecot_lmtp.sh; the reply texts below are
   Dovecot's too (Saved, Quota exceeded, No valid recipients). */
#define DOVECOT_GREETING "220 lmtp.example.org Dovecot (Debian) ready.\r\n"
#define DOVECOT_LHLO                                                           \
  "250-lmtp.example.org\r\n250-8BITMIME\r\n250-CHUNKING\r\n"                  \
  "250-ENHANCEDSTATUSCODES\r\n250 PIPELINING\r\n"

/* Greeting and LHLO; the session is READY with Dovecot's extensions. */
static void lhlo(drv *d) {
  smtpuv_proto *p = d->p;
  assert_int_equal(smtpuv_proto_is_lmtp(p), 0);
  drv_feed(d, DOVECOT_GREETING);
  drv_reply(d, SMTPUV_CMD_GREETING, 220);
  assert_int_equal(smtpuv_proto_lhlo(p, "client.example"), 0);
  assert_int_equal(smtpuv_proto_is_lmtp(p), 1);
  drv_out(d, "LHLO client.example\r\n");
  const smtpuv_reply *r;
  drv_feed(d, DOVECOT_LHLO);
  r = drv_reply(d, SMTPUV_CMD_LHLO, 250);
  assert_true(r->positive);
  assert_int_equal(r->nlines, 5);
  assert_int_equal(smtpuv_proto_state(p), SMTPUV_STATE_READY);
  assert_string_equal(smtpuv_proto_server_name(p), "lmtp.example.org");
  assert_int_equal(smtpuv_proto_extensions(p),
                   SMTPUV_EXT_8BITMIME | SMTPUV_EXT_CHUNKING |
                       SMTPUV_EXT_ENHANCEDSTATUSCODES |
                       SMTPUV_EXT_PIPELINING);
  /* no SMTP greeting words in LMTP */
  assert_int_equal(smtpuv_proto_ehlo(p, "x"), SMTPUV_ESTATE);
  assert_int_equal(smtpuv_proto_helo(p, "x"), SMTPUV_ESTATE);
}

/* Check a per-recipient verdict. */
static void verdict(drv *d, smtpuv_cmd cmd, int code, unsigned index,
                    int last, const char *enhanced) {
  const smtpuv_reply *r = drv_reply(d, cmd, code);
  assert_int_equal(r->flags, SMTPUV_REPLY_LMTP_RCPT);
  assert_int_equal(r->rcpt_index, index);
  assert_int_equal(r->last, last);
  assert_int_equal(r->positive, code / 100 == 2);
  assert_string_equal(r->enhanced, enhanced);
}

/* DATA: three recipients, the middle one refused at RCPT; after the "."
   one verdict each for recipients 0 and 2 (one delivered, one over
   quota), then the reply to the next MAIL pipelined behind the dot. */
static void conv_data(drv *d) {
  smtpuv_proto *p = d->p;
  lhlo(d);
  assert_int_equal(smtpuv_proto_mail(p, "sender@example.org", NULL), 0);
  assert_int_equal(smtpuv_proto_rcpt(p, "alice@example.org", NULL), 0);
  assert_int_equal(smtpuv_proto_rcpt(p, "nobody@example.org", NULL), 0);
  assert_int_equal(smtpuv_proto_rcpt(p, "bob@example.org", NULL), 0);
  assert_int_equal(smtpuv_proto_data(p), 0);
  drv_out(d, "MAIL FROM:<sender@example.org>\r\nRCPT TO:<alice@example.org>\r\n"
             "RCPT TO:<nobody@example.org>\r\nRCPT TO:<bob@example.org>\r\n"
             "DATA\r\n");
  assert_int_equal(smtpuv_proto_lmtp_due(p), 0);
  drv_feed(d, "250 2.1.0 OK\r\n250 2.1.5 OK\r\n"
              "550 5.1.1 <nobody@example.org> User doesn't exist: "
              "nobody@example.org\r\n250 2.1.5 OK\r\n"
              "354 OK\r\n");
  drv_reply(d, SMTPUV_CMD_MAIL, 250);
  drv_reply(d, SMTPUV_CMD_RCPT, 250);
  drv_reply(d, SMTPUV_CMD_RCPT, 550);
  drv_reply(d, SMTPUV_CMD_RCPT, 250);
  drv_reply(d, SMTPUV_CMD_DATA, 354);
  assert_int_equal(smtpuv_proto_lmtp_due(p), 0); /* nothing sent yet */
  assert_int_equal(smtpuv_proto_data_write(p, "Subject: t\n\n.dot\n", 17), 0);
  assert_int_equal(smtpuv_proto_data_end(p), 0);
  assert_int_equal(smtpuv_proto_pending_replies(p), 2);
  assert_int_equal(smtpuv_proto_lmtp_due(p), 2);
  unsigned idx;
  assert_int_equal(smtpuv_proto_lmtp_due_rcpt(p, 0, &idx), 0);
  assert_int_equal(idx, 0);
  assert_int_equal(smtpuv_proto_lmtp_due_rcpt(p, 1, &idx), 0);
  assert_int_equal(idx, 2);
  assert_int_equal(smtpuv_proto_lmtp_due_rcpt(p, 2, &idx), SMTPUV_EINVAL);
  /* the next transaction, pipelined behind the dot */
  assert_int_equal(smtpuv_proto_mail(p, "", NULL), 0);
  assert_int_equal(smtpuv_proto_pending_replies(p), 3);
  drv_out(d, "Subject: t\r\n\r\n..dot\r\n.\r\nMAIL FROM:<>\r\n");
  drv_feed(d, "250 2.0.0 <alice@example.org> Ok: queued\r\n"
              "552 5.2.2 <bob@example.org> Quota exceeded (mailbox for user "
              "is full)\r\n250 2.1.0 OK\r\n");
  verdict(d, SMTPUV_CMD_DATA_END, 250, 0, 0, "2.0.0");
  assert_int_equal(smtpuv_proto_lmtp_due(p), 1);
  assert_int_equal(smtpuv_proto_lmtp_due_rcpt(p, 0, &idx), 0);
  assert_int_equal(idx, 2);
  verdict(d, SMTPUV_CMD_DATA_END, 552, 2, 1, "5.2.2");
  assert_string_equal(d->r.text, "5.2.2 <bob@example.org> Quota exceeded "
                                 "(mailbox for user is full)");
  assert_int_equal(smtpuv_proto_lmtp_due(p), 0);
  drv_reply(d, SMTPUV_CMD_MAIL, 250);
  assert_int_equal(smtpuv_proto_pending_replies(p), 0);
  assert_int_equal(smtpuv_proto_rset(p), 0);
  assert_int_equal(smtpuv_proto_quit(p), 0);
  drv_out(d, "RSET\r\nQUIT\r\n");
  drv_feed(d, "250 2.0.0 OK\r\n221 2.0.0 Bye\r\n");
  drv_reply(d, SMTPUV_CMD_RSET, 250);
  drv_reply(d, SMTPUV_CMD_QUIT, 221);
  drv_no_reply(d);
  assert_int_equal(smtpuv_proto_error(p), 0);
}

/* BDAT: a first chunk and the LAST chunk pipelined with MAIL and the RCPTs
   before any reply is in, then a second message the same way. The core
   expects one LAST reply per RCPT issued until the RCPT replies arrive,
   then as many as were accepted. */
static void conv_bdat(drv *d) {
  smtpuv_proto *p = d->p;
  lhlo(d);
  assert_int_equal(smtpuv_proto_mail(p, "s@example.org", NULL), 0);
  assert_int_equal(smtpuv_proto_rcpt(p, "a@example.org", NULL), 0);
  assert_int_equal(smtpuv_proto_rcpt(p, "b@example.org", NULL), 0);
  assert_int_equal(smtpuv_proto_rcpt(p, "c@example.org", NULL), 0);
  assert_int_equal(smtpuv_proto_bdat(p, "Subject: b\n\n", 12, 0), 0);
  assert_int_equal(smtpuv_proto_bdat(p, "body", 4, 1), 0);
  assert_int_equal(smtpuv_proto_pending_replies(p), 1 + 3 + 1 + 3);
  /* message 2: one recipient, refused; its BDAT LAST gets one reply */
  assert_int_equal(smtpuv_proto_mail(p, "s@example.org", NULL), 0);
  assert_int_equal(smtpuv_proto_rcpt(p, "x@example.org", NULL), 0);
  assert_int_equal(smtpuv_proto_bdat(p, "x", 1, 1), 0);
  assert_int_equal(smtpuv_proto_pending_replies(p), 8 + 3);
  drv_out(d, "MAIL FROM:<s@example.org>\r\nRCPT TO:<a@example.org>\r\n"
             "RCPT TO:<b@example.org>\r\nRCPT TO:<c@example.org>\r\n"
             "BDAT 14\r\nSubject: b\r\n\r\nBDAT 6 LAST\r\nbody\r\n"
             "MAIL FROM:<s@example.org>\r\nRCPT TO:<x@example.org>\r\n"
             "BDAT 3 LAST\r\nx\r\n");
  drv_feed(d, "250 2.1.0 OK\r\n250 2.1.5 OK\r\n452 4.2.2 b is full\r\n"
              "250 2.1.5 OK\r\n250 2.0.0 OK\r\n");
  /* until the final verdict is in, one LAST reply per RCPT is counted */
  assert_int_equal(smtpuv_proto_pending_replies(p), 11);
  drv_feed(d, "250 2.0.0 <a@example.org> Saved\r\n");
  assert_int_equal(smtpuv_proto_pending_replies(p), 11);
  drv_reply(d, SMTPUV_CMD_MAIL, 250);
  const smtpuv_reply *r = drv_reply(d, SMTPUV_CMD_RCPT, 250);
  assert_int_equal(r->rcpt_index, 0);
  r = drv_reply(d, SMTPUV_CMD_RCPT, 452);
  assert_int_equal(r->rcpt_index, 1);
  drv_reply(d, SMTPUV_CMD_RCPT, 250);
  assert_int_equal(smtpuv_proto_lmtp_due(p), 2);
  r = drv_reply(d, SMTPUV_CMD_BDAT, 250);
  assert_int_equal(r->last, 0);
  assert_int_equal(r->flags, 0);
  assert_int_equal(smtpuv_proto_lmtp_due(p), 2);
  verdict(d, SMTPUV_CMD_BDAT, 250, 0, 0, "2.0.0");
  assert_int_equal(smtpuv_proto_lmtp_due(p), 1);
  drv_no_reply(d);
  assert_int_equal(smtpuv_proto_pending_replies(p), 5);
  drv_feed(d, "451 4.3.0 <c@example.org> Temporary internal error\r\n"
              "250 2.1.0 OK\r\n550 5.1.1 no such user\r\n"
              "503 5.5.1 No valid recipients\r\n");
  /* the final verdict is in: the third slot is dropped */
  assert_int_equal(smtpuv_proto_pending_replies(p), 4);
  verdict(d, SMTPUV_CMD_BDAT, 451, 2, 1, "4.3.0");
  assert_int_equal(smtpuv_proto_lmtp_due(p), 0);
  drv_reply(d, SMTPUV_CMD_MAIL, 250);
  drv_reply(d, SMTPUV_CMD_RCPT, 550);
  r = drv_reply(d, SMTPUV_CMD_BDAT, 503);
  assert_int_equal(r->flags, SMTPUV_REPLY_TXN_FAILED);
  assert_int_equal(r->last, 1);
  assert_int_equal(r->rcpt_index, 0);
  assert_int_equal(smtpuv_proto_lmtp_due(p), 0);
  assert_int_equal(smtpuv_proto_pending_replies(p), 0);
  drv_no_reply(d);
  assert_int_equal(smtpuv_proto_state(p), SMTPUV_STATE_READY);
  assert_int_equal(smtpuv_proto_error(p), 0);
}

/* No recipient accepted: DATA gets 503 (RFC 2033 4.2) and nothing comes
   after; then the server answers DATA with 354 all the same (not
   conforming): the core ends the body and expects one reply. */
static void conv_no_recipient(drv *d) {
  smtpuv_proto *p = d->p;
  lhlo(d);
  assert_int_equal(smtpuv_proto_mail(p, "s@example.org", NULL), 0);
  assert_int_equal(smtpuv_proto_rcpt(p, "a@example.org", NULL), 0);
  assert_int_equal(smtpuv_proto_rcpt(p, "b@example.org", NULL), 0);
  assert_int_equal(smtpuv_proto_data(p), 0);
  drv_out(d, "MAIL FROM:<s@example.org>\r\nRCPT TO:<a@example.org>\r\n"
             "RCPT TO:<b@example.org>\r\nDATA\r\n");
  drv_feed(d, "250 2.1.0 OK\r\n550 5.1.1 no\r\n550 5.1.1 no\r\n"
              "503 5.5.0 No valid recipients\r\n");
  drv_reply(d, SMTPUV_CMD_MAIL, 250);
  drv_reply(d, SMTPUV_CMD_RCPT, 550);
  drv_reply(d, SMTPUV_CMD_RCPT, 550);
  const smtpuv_reply *r = drv_reply(d, SMTPUV_CMD_DATA, 503);
  assert_int_equal(r->flags, SMTPUV_REPLY_TXN_FAILED);
  assert_int_equal(smtpuv_proto_state(p), SMTPUV_STATE_READY);
  assert_int_equal(smtpuv_proto_pending_replies(p), 0);
  assert_int_equal(smtpuv_proto_lmtp_due(p), 0);
  drv_no_reply(d);

  assert_int_equal(smtpuv_proto_rset(p), 0);
  assert_int_equal(smtpuv_proto_mail(p, "s@example.org", NULL), 0);
  assert_int_equal(smtpuv_proto_rcpt(p, "a@example.org", NULL), 0);
  assert_int_equal(smtpuv_proto_data(p), 0);
  drv_out(d, "RSET\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<a@example.org>\r\n"
             "DATA\r\n");
  drv_feed(d, "250 2.0.0 OK\r\n250 2.1.0 OK\r\n550 5.1.1 no\r\n354 OK\r\n");
  drv_reply(d, SMTPUV_CMD_RSET, 250);
  drv_reply(d, SMTPUV_CMD_MAIL, 250);
  drv_reply(d, SMTPUV_CMD_RCPT, 550);
  r = drv_reply(d, SMTPUV_CMD_DATA, 354);
  assert_int_equal(r->flags, SMTPUV_REPLY_TXN_FAILED | SMTPUV_REPLY_EMPTY_DATA);
  drv_out(d, ".\r\n");
  assert_int_equal(smtpuv_proto_pending_replies(p), 1);
  assert_int_equal(smtpuv_proto_lmtp_due(p), 0);
  drv_feed(d, "503 5.5.1 No valid recipients\r\n");
  r = drv_reply(d, SMTPUV_CMD_DATA_END, 503);
  assert_int_equal(r->flags, SMTPUV_REPLY_TXN_FAILED | SMTPUV_REPLY_EMPTY_DATA);
  drv_no_reply(d);
  assert_int_equal(smtpuv_proto_error(p), 0);
}

/* Four recipients accepted; the server answers the first, then 421 for the
   second and closes: the session is FINISHED and the last two are still
   due (their fate is unknown). QUIT was pipelined behind the dot. */
static void conv_421(drv *d) {
  smtpuv_proto *p = d->p;
  lhlo(d);
  assert_int_equal(smtpuv_proto_mail(p, "s@example.org", NULL), 0);
  for (int i = 0; i < 4; i++) {
    char a[32];
    snprintf(a, sizeof a, "r%d@example.org", i);
    assert_int_equal(smtpuv_proto_rcpt(p, a, NULL), 0);
  }
  assert_int_equal(smtpuv_proto_bdat(p, "m", 1, 1), 0);
  assert_int_equal(smtpuv_proto_quit(p), 0);
  drv_out(d, "MAIL FROM:<s@example.org>\r\nRCPT TO:<r0@example.org>\r\n"
             "RCPT TO:<r1@example.org>\r\nRCPT TO:<r2@example.org>\r\n"
             "RCPT TO:<r3@example.org>\r\nBDAT 3 LAST\r\nm\r\nQUIT\r\n");
  /* the state is FINISHED (QUIT), the verdicts are still tracked */
  drv_feed(d, "250 OK\r\n250 OK\r\n250 OK\r\n250 OK\r\n250 OK\r\n"
              "250 2.0.0 saved\r\n421 4.3.2 Shutting down\r\n");
  drv_reply(d, SMTPUV_CMD_MAIL, 250);
  for (unsigned i = 0; i < 4; i++)
    assert_int_equal(drv_reply(d, SMTPUV_CMD_RCPT, 250)->rcpt_index, i);
  assert_int_equal(smtpuv_proto_lmtp_due(p), 4);
  verdict(d, SMTPUV_CMD_BDAT, 250, 0, 0, "2.0.0");
  verdict(d, SMTPUV_CMD_BDAT, 421, 1, 0, "4.3.2");
  assert_int_equal(smtpuv_proto_state(p), SMTPUV_STATE_FINISHED);
  drv_no_reply(d);
  /* the connection closes here */
  assert_int_equal(smtpuv_proto_lmtp_due(p), 2);
  unsigned idx;
  assert_int_equal(smtpuv_proto_lmtp_due_rcpt(p, 0, &idx), 0);
  assert_int_equal(idx, 2);
  assert_int_equal(smtpuv_proto_lmtp_due_rcpt(p, 1, &idx), 0);
  assert_int_equal(idx, 3);
  assert_int_equal(smtpuv_proto_pending_replies(p), 3); /* 2 slots + QUIT */
  assert_int_equal(smtpuv_proto_error(p), 0);
}

/* The connection is lost between two verdicts: the consumer reads which
   recipients are still waiting. */
static void conv_lost(drv *d) {
  smtpuv_proto *p = d->p;
  lhlo(d);
  assert_int_equal(smtpuv_proto_mail(p, "s@example.org", NULL), 0);
  assert_int_equal(smtpuv_proto_rcpt(p, "a@example.org", NULL), 0);
  assert_int_equal(smtpuv_proto_rcpt(p, "b@example.org", NULL), 0);
  assert_int_equal(smtpuv_proto_rcpt(p, "c@example.org", NULL), 0);
  assert_int_equal(smtpuv_proto_data(p), 0);
  drv_out(d, "MAIL FROM:<s@example.org>\r\nRCPT TO:<a@example.org>\r\n"
             "RCPT TO:<b@example.org>\r\nRCPT TO:<c@example.org>\r\nDATA\r\n");
  drv_feed(d, "250 OK\r\n250 OK\r\n250 OK\r\n550 no\r\n354 go\r\n");
  for (int i = 0; i < 5; i++)
    assert_int_equal(smtpuv_proto_next_reply(p, &d->r), 1);
  assert_int_equal(smtpuv_proto_data_end(p), 0);
  drv_out(d, ".\r\n");
  /* half a verdict line, then the connection drops */
  drv_feed(d, "250 2.0.0 a saved\r\n250 2.0.0 b sa");
  verdict(d, SMTPUV_CMD_DATA_END, 250, 0, 0, "2.0.0");
  drv_no_reply(d);
  assert_int_equal(smtpuv_proto_lmtp_due(p), 1);
  unsigned idx;
  assert_int_equal(smtpuv_proto_lmtp_due_rcpt(p, 0, &idx), 0);
  assert_int_equal(idx, 1);
  assert_int_equal(smtpuv_proto_error(p), 0);
}

typedef void (*conv_fn)(drv *d);

static void run_all_ways(conv_fn conv) {
  drv d;
  drv_init(&d, FEED_WHOLE, 0);
  conv(&d);
  drv_done(&d);
  drv_init(&d, FEED_BYTES, 0);
  conv(&d);
  drv_done(&d);
  for (size_t k = 0; k <= 300; k++) {
    drv_init(&d, FEED_SPLIT, k);
    conv(&d);
    drv_done(&d);
  }
}

static void test_data(void **state) {
  (void)state;
  run_all_ways(conv_data);
}

static void test_bdat(void **state) {
  (void)state;
  run_all_ways(conv_bdat);
}

static void test_no_recipient(void **state) {
  (void)state;
  run_all_ways(conv_no_recipient);
}

static void test_421(void **state) {
  (void)state;
  run_all_ways(conv_421);
}

static void test_lost(void **state) {
  (void)state;
  run_all_ways(conv_lost);
}

/* The mode: set before the greeting, or by LHLO; never after EHLO/HELO. */
static void test_mode(void **state) {
  (void)state;
  smtpuv_proto *p;
  assert_int_equal(smtpuv_proto_set_lmtp(NULL), SMTPUV_EINVAL);
  assert_int_equal(smtpuv_proto_lhlo(NULL, "x"), SMTPUV_EINVAL);
  assert_int_equal(smtpuv_proto_is_lmtp(NULL), 0);
  assert_int_equal(smtpuv_proto_lmtp_due(NULL), 0);
  unsigned idx = 77;
  assert_int_equal(smtpuv_proto_lmtp_due_rcpt(NULL, 0, &idx), SMTPUV_EINVAL);
  assert_int_equal(idx, 77);

  /* set_lmtp() before the greeting: EHLO and HELO are refused */
  assert_int_equal(smtpuv_proto_new(NULL, &p), 0);
  assert_int_equal(smtpuv_proto_set_lmtp(p), 0);
  assert_int_equal(smtpuv_proto_is_lmtp(p), 1);
  assert_int_equal(smtpuv_proto_lhlo(p, "x"), SMTPUV_ESTATE); /* greeting */
  assert_int_equal(feed_str(p, "220 lmtp\r\n"), 0);
  pop(p, SMTPUV_CMD_GREETING, 220);
  assert_int_equal(smtpuv_proto_ehlo(p, "x"), SMTPUV_ESTATE);
  assert_int_equal(smtpuv_proto_helo(p, "x"), SMTPUV_ESTATE);
  assert_int_equal(smtpuv_proto_pending_output(p), 0);
  assert_int_equal(smtpuv_proto_lhlo(p, "bad domain"), SMTPUV_EINVAL);
  assert_int_equal(smtpuv_proto_lhlo(p, "x"), 0);
  expect_out(p, "LHLO x\r\n");
  assert_int_equal(smtpuv_proto_set_lmtp(p), SMTPUV_ESTATE); /* EHLO_SENT */
  /* a refused LHLO: back to GREETED, LHLO again (no HELO fallback) */
  assert_int_equal(feed_str(p, "500 5.5.1 Unknown command\r\n"), 0);
  pop(p, SMTPUV_CMD_LHLO, 500);
  assert_int_equal(smtpuv_proto_state(p), SMTPUV_STATE_GREETED);
  assert_int_equal(smtpuv_proto_helo(p, "x"), SMTPUV_ESTATE);
  assert_int_equal(smtpuv_proto_set_lmtp(p), 0); /* already LMTP: no-op */
  assert_int_equal(smtpuv_proto_lhlo(p, "x"), 0);
  expect_out(p, "LHLO x\r\n");
  smtpuv_proto_free(p);

  /* an SMTP session that said EHLO cannot turn into LMTP */
  p = session_with(NULL, EHLO_BASIC);
  assert_int_equal(smtpuv_proto_set_lmtp(p), SMTPUV_ESTATE);
  assert_int_equal(smtpuv_proto_is_lmtp(p), 0);
  smtpuv_proto_free(p);
  assert_int_equal(smtpuv_proto_new(NULL, &p), 0);
  assert_int_equal(feed_str(p, "220 x\r\n"), 0);
  pop(p, SMTPUV_CMD_GREETING, 220);
  assert_int_equal(smtpuv_proto_ehlo(p, "x"), 0);
  expect_out(p, "EHLO x\r\n");
  assert_int_equal(feed_str(p, "502 no\r\n"), 0);
  pop(p, SMTPUV_CMD_EHLO, 502);
  assert_int_equal(smtpuv_proto_lhlo(p, "x"), SMTPUV_ESTATE);
  assert_int_equal(smtpuv_proto_set_lmtp(p), SMTPUV_ESTATE);
  assert_int_equal(smtpuv_proto_helo(p, "x"), 0);
  expect_out(p, "HELO x\r\n");
  /* the SMTP end of data is unchanged: one reply, last 0 */
  assert_int_equal(feed_str(p, "250 x\r\n"), 0);
  pop(p, SMTPUV_CMD_HELO, 250);
  assert_int_equal(smtpuv_proto_mail(p, "a@b", NULL), 0);
  expect_out(p, "MAIL FROM:<a@b>\r\n");
  assert_int_equal(feed_str(p, "250 ok\r\n"), 0);
  pop(p, SMTPUV_CMD_MAIL, 250);
  for (int i = 0; i < 2; i++) {
    assert_int_equal(smtpuv_proto_rcpt(p, "c@d", NULL), 0);
    expect_out(p, "RCPT TO:<c@d>\r\n");
    assert_int_equal(feed_str(p, "250 ok\r\n"), 0);
    pop(p, SMTPUV_CMD_RCPT, 250);
  }
  assert_int_equal(smtpuv_proto_data(p), 0);
  expect_out(p, "DATA\r\n");
  assert_int_equal(feed_str(p, "354 go\r\n"), 0);
  pop(p, SMTPUV_CMD_DATA, 354);
  assert_int_equal(smtpuv_proto_data_end(p), 0);
  expect_out(p, ".\r\n");
  assert_int_equal(smtpuv_proto_pending_replies(p), 1);
  assert_int_equal(feed_str(p, "250 ok\r\n"), 0);
  smtpuv_reply r = pop(p, SMTPUV_CMD_DATA_END, 250);
  assert_int_equal(r.flags, 0);
  assert_int_equal(r.last, 0);
  assert_int_equal(smtpuv_proto_lmtp_due(p), 0);
  smtpuv_proto_free(p);
  assert_string_equal(smtpuv_cmd_name(SMTPUV_CMD_LHLO), "LHLO");
}

/* A verdict too many is a reply nobody asked for. */
static void test_extra_verdict(void **state) {
  (void)state;
  drv d;
  drv_init(&d, FEED_WHOLE, 0);
  lhlo(&d);
  smtpuv_proto *p = d.p;
  assert_int_equal(smtpuv_proto_mail(p, "s@e", NULL), 0);
  assert_int_equal(smtpuv_proto_rcpt(p, "a@e", NULL), 0);
  assert_int_equal(smtpuv_proto_rcpt(p, "b@e", NULL), 0);
  assert_int_equal(smtpuv_proto_bdat(p, "", 0, 1), 0);
  drv_out(&d, "MAIL FROM:<s@e>\r\nRCPT TO:<a@e>\r\nRCPT TO:<b@e>\r\n"
              "BDAT 0 LAST\r\n");
  assert_int_equal(feed_str(p, "250 ok\r\n250 ok\r\n550 no\r\n250 ok\r\n"
                               "250 again\r\n"),
                   SMTPUV_EPROTO);
  drv_reply(&d, SMTPUV_CMD_MAIL, 250);
  drv_reply(&d, SMTPUV_CMD_RCPT, 250);
  drv_reply(&d, SMTPUV_CMD_RCPT, 550);
  verdict(&d, SMTPUV_CMD_BDAT, 250, 0, 1, "");
  assert_int_equal(smtpuv_proto_next_reply(p, &d.r), SMTPUV_EPROTO);
  assert_string_equal(smtpuv_proto_error_text(p),
                      "reply line 11: reply 250 nobody asked for (byte 169)");
  drv_done(&d);
}

/* Fail every allocation of an LMTP conversation in turn: the failing call
   changes nothing and, retried, the conversation goes on; nothing leaks.
   The accepted-recipient list grows past its first allocation. */
static void lmtp_mem_conv(smtpuv_proto *p, unsigned *enomem, char *log,
                          size_t cap) {
#define RETRY(expr, want)                                                      \
  do {                                                                         \
    int rc_ = (expr);                                                          \
    if (rc_ == SMTPUV_ENOMEM) {                                                \
      (*enomem)++;                                                             \
      rc_ = (expr);                                                            \
    }                                                                          \
    assert_int_equal(rc_, (want));                                             \
  } while (0)
  size_t n = 0;
  RETRY(feed_str(p, "220 lmtp\r\n"), 0);
  smtpuv_reply r;
  RETRY(smtpuv_proto_next_reply(p, &r), 1);
  RETRY(smtpuv_proto_lhlo(p, "c"), 0);
  RETRY(feed_str(p, "250-x\r\n250-PIPELINING\r\n250 CHUNKING\r\n"), 0);
  RETRY(smtpuv_proto_next_reply(p, &r), 1);
  RETRY(smtpuv_proto_mail(p, "s@e", NULL), 0);
  char replies[2048] = "250 ok\r\n";
  for (int i = 0; i < 20; i++) {
    RETRY(smtpuv_proto_rcpt(p, "r@e", NULL), 0);
    strcat(replies, i % 4 ? "250 ok\r\n" : "550 no\r\n");
  }
  RETRY(smtpuv_proto_bdat(p, "body\n", 5, 1), 0);
  for (int i = 0; i < 15; i++)
    strcat(replies, "250 2.0.0 saved\r\n");
  RETRY(feed_str(p, replies), 0);
  for (;;) {
    int rc = smtpuv_proto_next_reply(p, &r);
    if (rc == SMTPUV_ENOMEM) {
      (*enomem)++;
      rc = smtpuv_proto_next_reply(p, &r);
    }
    if (rc == 0)
      break;
    assert_int_equal(rc, 1);
    n += (size_t)snprintf(log + n, cap - n, "%s %d %u %u %d;",
                          smtpuv_cmd_name(r.command), r.code, r.rcpt_index,
                          r.flags, r.last);
  }
  assert_int_equal(smtpuv_proto_pending_replies(p), 0);
#undef RETRY
}

static void test_fail_every_allocation(void **state) {
  (void)state;
  char ref[4096], got[4096];
  test_mem tm;
  test_mem_init(&tm, 0);
  smtpuv_proto *p;
  unsigned enomem = 0;
  assert_int_equal(smtpuv_proto_new(&tm.mem, &p), 0);
  lmtp_mem_conv(p, &enomem, ref, sizeof ref);
  smtpuv_proto_free(p);
  assert_int_equal(tm.live, 0);
  assert_non_null(strstr(ref, "BDAT 250 19 4 1;"));
  unsigned long total = tm.calls;
  for (unsigned long k = 2; k <= total; k++) { /* 1: smtpuv_proto_new */
    test_mem_init(&tm, k);
    enomem = 0;
    int rc = smtpuv_proto_new(&tm.mem, &p);
    if (rc == SMTPUV_ENOMEM) {
      enomem++;
      rc = smtpuv_proto_new(&tm.mem, &p);
    }
    assert_int_equal(rc, 0);
    lmtp_mem_conv(p, &enomem, got, sizeof got);
    smtpuv_proto_free(p);
    assert_int_equal(tm.live, 0);
    assert_int_equal(enomem, 1);
    assert_string_equal(got, ref);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_data),
      cmocka_unit_test(test_bdat),
      cmocka_unit_test(test_no_recipient),
      cmocka_unit_test(test_421),
      cmocka_unit_test(test_lost),
      cmocka_unit_test(test_mode),
      cmocka_unit_test(test_extra_verdict),
      cmocka_unit_test(test_fail_every_allocation),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

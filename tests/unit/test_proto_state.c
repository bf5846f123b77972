/* SPDX-License-Identifier: MIT */
/*
 * The state machine: every command in every state, pipelining (FIFO
 * matching, group-ending commands, SMTPUV_EBUSY), and the transaction
 * bookkeeping (MAIL refused, no recipient accepted, automatic end of data).
 */
#include "test_proto_util.h"

/* Places in a session, each reached with every reply popped that can be. */
enum {
  AT_GREETING, /* nothing received */
  AT_GREETED,
  AT_EHLO_SENT,
  AT_STARTTLS_SENT,
  AT_STARTTLS_220,
  AT_AUTH_SENT,
  AT_AUTH_334,
  AT_READY,
  AT_MAIL,
  AT_RCPT,
  AT_DATA_SENT,
  AT_DATA,
  AT_BDAT,
  AT_QUIT,
  AT_421,
  AT_EPROTO,
  AT_COUNT
};

static const char *const at_names[] = {
    "GREETING",  "GREETED", "EHLO_SENT", "STARTTLS_SENT", "STARTTLS_220",
    "AUTH_SENT", "AUTH_334", "READY",    "MAIL",          "RCPT",
    "DATA_SENT", "DATA",     "BDAT",     "QUIT",          "421",
    "EPROTO"};

static void feed_pop(smtpuv_proto *p, const char *s, smtpuv_cmd cmd,
                     int code) {
  assert_int_equal(feed_str(p, s), 0);
  pop(p, cmd, code);
}

static smtpuv_proto *reach(int at) {
  smtpuv_proto *p;
  assert_int_equal(smtpuv_proto_new(NULL, &p), 0);
  if (at == AT_GREETING)
    return p;
  feed_pop(p, "220 mx\r\n", SMTPUV_CMD_GREETING, 220);
  if (at == AT_GREETED)
    return p;
  assert_int_equal(smtpuv_proto_ehlo(p, "c"), 0);
  if (at == AT_EHLO_SENT)
    goto out;
  feed_pop(p,
           "250-mx\r\n250-PIPELINING\r\n250-STARTTLS\r\n250-AUTH PLAIN\r\n"
           "250-CHUNKING\r\n250 8BITMIME\r\n",
           SMTPUV_CMD_EHLO, 250);
  switch (at) {
  case AT_STARTTLS_SENT:
  case AT_STARTTLS_220:
    assert_int_equal(smtpuv_proto_starttls(p), 0);
    if (at == AT_STARTTLS_220)
      feed_pop(p, "220 go\r\n", SMTPUV_CMD_STARTTLS, 220);
    goto out;
  case AT_AUTH_SENT:
  case AT_AUTH_334:
    assert_int_equal(smtpuv_proto_auth(p, "PLAIN", NULL), 0);
    if (at == AT_AUTH_334)
      feed_pop(p, "334 \r\n", SMTPUV_CMD_AUTH, 334);
    goto out;
  case AT_READY:
    goto out;
  case AT_QUIT:
    assert_int_equal(smtpuv_proto_quit(p), 0);
    goto out;
  case AT_421:
    feed_pop(p, "421 bye\r\n", SMTPUV_CMD_NONE, 421);
    goto out;
  case AT_EPROTO:
    assert_int_equal(feed_str(p, "999 x\r\n"), SMTPUV_EPROTO);
    goto out;
  default:
    break;
  }
  assert_int_equal(smtpuv_proto_mail(p, "a@b", NULL), 0);
  feed_pop(p, "250 ok\r\n", SMTPUV_CMD_MAIL, 250);
  if (at == AT_MAIL)
    goto out;
  assert_int_equal(smtpuv_proto_rcpt(p, "c@d", NULL), 0);
  feed_pop(p, "250 ok\r\n", SMTPUV_CMD_RCPT, 250);
  if (at == AT_RCPT)
    goto out;
  if (at == AT_BDAT) {
    assert_int_equal(smtpuv_proto_bdat(p, "x", 1, 0), 0);
    feed_pop(p, "250 ok\r\n", SMTPUV_CMD_BDAT, 250);
    goto out;
  }
  assert_int_equal(smtpuv_proto_data(p), 0);
  if (at == AT_DATA)
    feed_pop(p, "354 go\r\n", SMTPUV_CMD_DATA, 354);
out:
  smtpuv_proto_consumed(p, smtpuv_proto_pending_output(p));
  return p;
}

typedef int (*cmd_fn)(smtpuv_proto *p);

static int c_ehlo(smtpuv_proto *p) { return smtpuv_proto_ehlo(p, "c"); }
static int c_helo(smtpuv_proto *p) { return smtpuv_proto_helo(p, "c"); }
static int c_starttls(smtpuv_proto *p) { return smtpuv_proto_starttls(p); }
static int c_tls(smtpuv_proto *p) { return smtpuv_proto_tls_established(p); }
static int c_auth(smtpuv_proto *p) { return smtpuv_proto_auth(p, "PLAIN", ""); }
static int c_auth_resp(smtpuv_proto *p) {
  return smtpuv_proto_auth_response(p, "AA==");
}
static int c_auth_cancel(smtpuv_proto *p) { return smtpuv_proto_auth_cancel(p); }
static int c_mail(smtpuv_proto *p) { return smtpuv_proto_mail(p, "a@b", NULL); }
static int c_rcpt(smtpuv_proto *p) { return smtpuv_proto_rcpt(p, "c@d", NULL); }
static int c_data(smtpuv_proto *p) { return smtpuv_proto_data(p); }
static int c_write(smtpuv_proto *p) {
  return smtpuv_proto_data_write(p, "body\r\n", 6);
}
static int c_end(smtpuv_proto *p) { return smtpuv_proto_data_end(p); }
static int c_bdat(smtpuv_proto *p) { return smtpuv_proto_bdat(p, "x", 1, 1); }
static int c_rset(smtpuv_proto *p) { return smtpuv_proto_rset(p); }
static int c_noop(smtpuv_proto *p) { return smtpuv_proto_noop(p); }
static int c_vrfy(smtpuv_proto *p) { return smtpuv_proto_vrfy(p, "x"); }
static int c_quit(smtpuv_proto *p) { return smtpuv_proto_quit(p); }

#define AT(x) (1u << AT_##x)

static const struct {
  const char *name;
  cmd_fn fn;
  unsigned allowed; /* AT() places where the state allows it */
} commands[] = {
    {"ehlo", c_ehlo, AT(GREETED)},
    {"helo", c_helo, AT(GREETED)},
    {"starttls", c_starttls, AT(READY)},
    {"tls_established", c_tls, AT(STARTTLS_220)},
    {"auth", c_auth, AT(READY)},
    {"auth_response", c_auth_resp, AT(AUTH_334)},
    {"auth_cancel", c_auth_cancel, AT(AUTH_334)},
    {"mail", c_mail, AT(READY)},
    {"rcpt", c_rcpt, AT(MAIL) | AT(RCPT)},
    {"data", c_data, AT(RCPT)},
    {"data_write", c_write, AT(DATA)},
    {"data_end", c_end, AT(DATA)},
    {"bdat", c_bdat, AT(RCPT) | AT(BDAT)},
    {"rset", c_rset, AT(READY) | AT(MAIL) | AT(RCPT) | AT(BDAT)},
    {"noop", c_noop, AT(GREETED) | AT(READY)},
    {"vrfy", c_vrfy, AT(READY)},
    {"quit", c_quit,
     AT(GREETED) | AT(EHLO_SENT) | AT(READY) | AT(MAIL) | AT(RCPT) | AT(BDAT)},
};

/* Every command in every place: refused ones return SMTPUV_ESTATE (or the
   sticky error) and change nothing; allowed ones are not refused for the
   state. */
static void test_every_command_every_state(void **state) {
  (void)state;
  for (int at = 0; at < AT_COUNT; at++) {
    for (size_t c = 0; c < sizeof commands / sizeof commands[0]; c++) {
      smtpuv_proto *p = reach(at);
      smtpuv_state st = smtpuv_proto_state(p);
      size_t q = smtpuv_proto_pending_replies(p);
      int rc = commands[c].fn(p);
      if (commands[c].allowed & (1u << at)) {
        if (rc != 0 && rc != SMTPUV_EBUSY)
          fail_msg("%s at %s: %s", commands[c].name, at_names[at],
                   smtpuv_err_name(rc));
      } else {
        int want = at == AT_EPROTO ? SMTPUV_EPROTO : SMTPUV_ESTATE;
        if (rc != want)
          fail_msg("%s at %s: %s, want %s", commands[c].name, at_names[at],
                   smtpuv_err_name(rc), smtpuv_err_name(want));
        assert_int_equal(smtpuv_proto_pending_output(p), 0);
        assert_int_equal(smtpuv_proto_state(p), st);
        assert_int_equal(smtpuv_proto_pending_replies(p), q);
      }
      smtpuv_proto_free(p);
    }
  }
}

/* MAIL refused with RCPT and DATA pipelined behind it. */
static void test_mail_refused_pipelined(void **state) {
  (void)state;
  smtpuv_proto *p = session_with(NULL, EHLO_FULL);
  assert_int_equal(smtpuv_proto_mail(p, "a@b", NULL), 0);
  assert_int_equal(smtpuv_proto_rcpt(p, "c@d", NULL), 0);
  assert_int_equal(smtpuv_proto_rcpt(p, "e@f", NULL), 0);
  assert_int_equal(smtpuv_proto_data(p), 0);
  expect_out(p, "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nRCPT TO:<e@f>\r\n"
                "DATA\r\n");
  assert_int_equal(feed_str(p, "550 5.7.1 sender refused\r\n"
                               "503 5.5.1 need MAIL\r\n503 5.5.1 need MAIL\r\n"
                               "503 5.5.1 need MAIL\r\n"),
                   0);
  smtpuv_reply r = pop(p, SMTPUV_CMD_MAIL, 550);
  assert_int_equal(r.flags, 0);
  assert_int_equal(smtpuv_proto_state(p), SMTPUV_STATE_DATA_PENDING);
  r = pop(p, SMTPUV_CMD_RCPT, 503);
  assert_int_equal(r.flags, SMTPUV_REPLY_TXN_FAILED);
  assert_int_equal(r.rcpt_index, 0);
  r = pop(p, SMTPUV_CMD_RCPT, 503);
  assert_int_equal(r.flags, SMTPUV_REPLY_TXN_FAILED);
  assert_int_equal(r.rcpt_index, 1);
  r = pop(p, SMTPUV_CMD_DATA, 503);
  assert_int_equal(r.flags, SMTPUV_REPLY_TXN_FAILED);
  assert_false(r.positive);
  assert_int_equal(smtpuv_proto_state(p), SMTPUV_STATE_READY);
  assert_int_equal(smtpuv_proto_pending_output(p), 0);
  smtpuv_proto_free(p);
}

/* MAIL refused before DATA was issued: READY at once, and the next
   transaction may start while the old RCPT replies are still coming. */
static void test_mail_refused_early(void **state) {
  (void)state;
  smtpuv_proto *p = session_with(NULL, EHLO_FULL);
  assert_int_equal(smtpuv_proto_mail(p, "a@b", NULL), 0);
  assert_int_equal(smtpuv_proto_rcpt(p, "c@d", NULL), 0);
  assert_int_equal(feed_str(p, "451 4.3.0 try later\r\n"), 0);
  pop(p, SMTPUV_CMD_MAIL, 451);
  assert_int_equal(smtpuv_proto_state(p), SMTPUV_STATE_READY);
  assert_int_equal(smtpuv_proto_data(p), SMTPUV_ESTATE);
  assert_int_equal(smtpuv_proto_mail(p, "x@y", NULL), 0);
  assert_int_equal(smtpuv_proto_rcpt(p, "z@w", NULL), 0);
  assert_int_equal(smtpuv_proto_data(p), 0);
  expect_out(p, "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nMAIL FROM:<x@y>\r\n"
                "RCPT TO:<z@w>\r\nDATA\r\n");
  assert_int_equal(
      feed_str(p, "503 need MAIL\r\n250 ok\r\n250 ok\r\n354 go\r\n"), 0);
  smtpuv_reply r = pop(p, SMTPUV_CMD_RCPT, 503);
  assert_int_equal(r.flags, SMTPUV_REPLY_TXN_FAILED);
  r = pop(p, SMTPUV_CMD_MAIL, 250);
  r = pop(p, SMTPUV_CMD_RCPT, 250);
  assert_int_equal(r.flags, 0);
  assert_int_equal(r.rcpt_index, 0);
  r = pop(p, SMTPUV_CMD_DATA, 354);
  assert_int_equal(r.flags, 0);
  assert_int_equal(smtpuv_proto_state(p), SMTPUV_STATE_DATA);
  smtpuv_proto_free(p);

  /* refused while BDAT chunks are on their way */
  p = session_with(NULL, EHLO_FULL);
  assert_int_equal(smtpuv_proto_mail(p, "a@b", NULL), 0);
  assert_int_equal(smtpuv_proto_rcpt(p, "c@d", NULL), 0);
  assert_int_equal(smtpuv_proto_bdat(p, "abc", 3, 0), 0);
  assert_int_equal(feed_str(p, "550 no\r\n503 no\r\n503 no\r\n"), 0);
  pop(p, SMTPUV_CMD_MAIL, 550);
  assert_int_equal(smtpuv_proto_state(p), SMTPUV_STATE_READY);
  r = pop(p, SMTPUV_CMD_RCPT, 503);
  assert_int_equal(r.flags, SMTPUV_REPLY_TXN_FAILED);
  r = pop(p, SMTPUV_CMD_BDAT, 503);
  assert_int_equal(r.flags, SMTPUV_REPLY_TXN_FAILED);
  assert_false(r.last);
  smtpuv_proto_free(p);
}

/* Every recipient refused: DATA and BDAT are refused once all replies are
   in; with DATA already pipelined the core ends the body itself. */
static void test_no_recipient(void **state) {
  (void)state;
  smtpuv_proto *p = session_with(NULL, EHLO_FULL);
  assert_int_equal(smtpuv_proto_mail(p, "a@b", NULL), 0);
  assert_int_equal(smtpuv_proto_rcpt(p, "c@d", NULL), 0);
  assert_int_equal(smtpuv_proto_rcpt(p, "e@f", NULL), 0);
  assert_int_equal(feed_str(p, "250 ok\r\n550 no\r\n"), 0);
  pop(p, SMTPUV_CMD_MAIL, 250);
  pop(p, SMTPUV_CMD_RCPT, 550);
  assert_int_equal(smtpuv_proto_data(p), 0); /* one reply still out */
  smtpuv_proto_free(p);

  p = session_with(NULL, EHLO_FULL);
  assert_int_equal(smtpuv_proto_mail(p, "a@b", NULL), 0);
  assert_int_equal(smtpuv_proto_rcpt(p, "c@d", NULL), 0);
  assert_int_equal(smtpuv_proto_rcpt(p, "e@f", NULL), 0);
  expect_out(p, "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nRCPT TO:<e@f>\r\n");
  assert_int_equal(feed_str(p, "250 ok\r\n550 no\r\n550 no\r\n"), 0);
  pop(p, SMTPUV_CMD_MAIL, 250);
  pop(p, SMTPUV_CMD_RCPT, 550);
  pop(p, SMTPUV_CMD_RCPT, 550);
  assert_int_equal(smtpuv_proto_data(p), SMTPUV_ENORCPT);
  assert_int_equal(smtpuv_proto_bdat(p, "x", 1, 1), SMTPUV_ENORCPT);
  assert_int_equal(smtpuv_proto_pending_output(p), 0);
  assert_int_equal(smtpuv_proto_rcpt(p, "g@h", NULL), 0); /* one more try */
  assert_int_equal(feed_str(p, "250 ok\r\n"), 0);
  pop(p, SMTPUV_CMD_RCPT, 250);
  assert_int_equal(smtpuv_proto_data(p), 0);
  expect_out(p, "RCPT TO:<g@h>\r\nDATA\r\n");
  smtpuv_proto_free(p);

  /* pipelined DATA, 354 anyway, and the consumed output does not matter */
  p = session_with(NULL, EHLO_FULL);
  assert_int_equal(smtpuv_proto_mail(p, "a@b", NULL), 0);
  assert_int_equal(smtpuv_proto_rcpt(p, "c@d", NULL), 0);
  assert_int_equal(smtpuv_proto_data(p), 0);
  expect_out(p, "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n");
  assert_int_equal(feed_str(p, "250 ok\r\n550 no\r\n354 go\r\n"), 0);
  pop(p, SMTPUV_CMD_MAIL, 250);
  pop(p, SMTPUV_CMD_RCPT, 550);
  smtpuv_reply r = pop(p, SMTPUV_CMD_DATA, 354);
  assert_true(r.positive);
  assert_int_equal(r.flags, SMTPUV_REPLY_EMPTY_DATA | SMTPUV_REPLY_TXN_FAILED);
  assert_int_equal(smtpuv_proto_state(p), SMTPUV_STATE_READY);
  /* MAIL may follow the automatic end of data at once */
  assert_int_equal(smtpuv_proto_mail(p, "a@b", NULL), 0);
  expect_out(p, ".\r\nMAIL FROM:<a@b>\r\n");
  assert_int_equal(feed_str(p, "250 ok\r\n250 ok\r\n"), 0);
  r = pop(p, SMTPUV_CMD_DATA_END, 250);
  assert_false(r.positive);
  assert_int_equal(r.flags, SMTPUV_REPLY_EMPTY_DATA | SMTPUV_REPLY_TXN_FAILED);
  r = pop(p, SMTPUV_CMD_MAIL, 250);
  assert_int_equal(r.flags, 0);
  smtpuv_proto_free(p);

  /* DATA refused with a recipient accepted: READY, not a failed txn */
  p = session_with(NULL, EHLO_FULL);
  assert_int_equal(smtpuv_proto_mail(p, "a@b", NULL), 0);
  assert_int_equal(smtpuv_proto_rcpt(p, "c@d", NULL), 0);
  assert_int_equal(smtpuv_proto_data(p), 0);
  assert_int_equal(feed_str(p, "250 ok\r\n250 ok\r\n451 later\r\n"), 0);
  pop(p, SMTPUV_CMD_MAIL, 250);
  pop(p, SMTPUV_CMD_RCPT, 250);
  r = pop(p, SMTPUV_CMD_DATA, 451);
  assert_int_equal(r.flags, 0);
  assert_int_equal(smtpuv_proto_state(p), SMTPUV_STATE_READY);
  smtpuv_proto_free(p);
}

static void test_group_enders(void **state) {
  (void)state;
  smtpuv_proto *p = session_with(NULL, EHLO_FULL);
  assert_int_equal(smtpuv_proto_rset(p), 0);
  assert_int_equal(smtpuv_proto_noop(p), 0); /* may follow queued commands */
  assert_int_equal(smtpuv_proto_mail(p, "a@b", NULL), SMTPUV_EBUSY);
  assert_int_equal(smtpuv_proto_vrfy(p, "x"), SMTPUV_EBUSY);
  assert_int_equal(smtpuv_proto_auth(p, "PLAIN", NULL), SMTPUV_EBUSY);
  assert_int_equal(smtpuv_proto_starttls(p), SMTPUV_EBUSY);
  assert_int_equal(feed_str(p, "250 ok\r\n"), 0);
  pop(p, SMTPUV_CMD_RSET, 250);
  assert_int_equal(smtpuv_proto_mail(p, "a@b", NULL), SMTPUV_EBUSY);
  assert_int_equal(feed_str(p, "250 ok\r\n"), 0);
  pop(p, SMTPUV_CMD_NOOP, 250);
  assert_int_equal(smtpuv_proto_vrfy(p, "x"), 0);
  assert_int_equal(smtpuv_proto_rset(p), SMTPUV_EBUSY);
  assert_int_equal(smtpuv_proto_quit(p), 0); /* QUIT may follow anything */
  expect_out(p, "RSET\r\nNOOP\r\nVRFY x\r\nQUIT\r\n");
  assert_int_equal(smtpuv_proto_pending_replies(p), 2);
  smtpuv_proto_free(p);
}

/* Pipelining switched off, or not offered: one command at a time. */
static void test_no_pipelining(void **state) {
  (void)state;
  smtpuv_proto *p = session_with(NULL, EHLO_FULL);
  smtpuv_proto_set_pipelining(p, 0);
  assert_int_equal(smtpuv_proto_mail(p, "a@b", NULL), 0);
  assert_int_equal(smtpuv_proto_rcpt(p, "c@d", NULL), SMTPUV_EBUSY);
  assert_int_equal(smtpuv_proto_rset(p), SMTPUV_EBUSY);
  assert_int_equal(smtpuv_proto_quit(p), SMTPUV_EBUSY);
  assert_int_equal(feed_str(p, "250 ok\r\n"), 0);
  pop(p, SMTPUV_CMD_MAIL, 250);
  assert_int_equal(smtpuv_proto_rcpt(p, "c@d", NULL), 0);
  assert_int_equal(smtpuv_proto_bdat(p, "x", 1, 0), SMTPUV_EBUSY);
  smtpuv_proto_set_pipelining(p, 1);
  assert_int_equal(smtpuv_proto_bdat(p, "x", 1, 0), 0);
  assert_int_equal(smtpuv_proto_bdat(p, "y", 1, 1), 0);
  expect_out(p, "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nBDAT 1\r\nxBDAT 3 LAST\r\n"
                "y\r\n");
  smtpuv_proto_free(p);
}

static void test_bdat_rules(void **state) {
  (void)state;
  /* CHUNKING needed; 8-bit needs BODY=8BITMIME */
  smtpuv_proto *p = session_with(NULL, "mx\nPIPELINING\n8BITMIME");
  assert_int_equal(smtpuv_proto_mail(p, "a@b", NULL), 0);
  assert_int_equal(smtpuv_proto_rcpt(p, "c@d", NULL), 0);
  assert_int_equal(smtpuv_proto_bdat(p, "x", 1, 1), SMTPUV_ENOEXT);
  smtpuv_proto_free(p);

  p = session_with(NULL, EHLO_FULL);
  assert_int_equal(smtpuv_proto_mail(p, "a@b", NULL), 0);
  assert_int_equal(smtpuv_proto_rcpt(p, "c@d", NULL), 0);
  expect_out(p, "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n");
  assert_int_equal(smtpuv_proto_bdat(p, "\xe9", 1, 1), SMTPUV_E8BIT);
  assert_int_equal(smtpuv_proto_pending_output(p), 0);
  assert_int_equal(smtpuv_proto_bdat(p, NULL, 1, 1), SMTPUV_EINVAL);
  assert_int_equal(smtpuv_proto_bdat(p, NULL, 0, 0), 0); /* empty chunk */
  assert_int_equal(smtpuv_proto_bdat(p, "a\r", 2, 0), 0);
  assert_int_equal(smtpuv_proto_bdat(p, "\nb\n\n.c", 6, 0), 0);
  assert_int_equal(smtpuv_proto_bdat(p, "", 0, 1), 0);
  expect_out(p, "BDAT 0\r\nBDAT 3\r\na\r\nBDAT 7\r\nb\r\n\r\n.cBDAT 2 LAST\r\n"
                "\r\n");
  smtpuv_proto_free(p);

  /* BINARYMIME: bytes as they are, no DATA, no final CRLF */
  p = session_with(NULL, EHLO_FULL);
  smtpuv_mail_params mp = SMTPUV_MAIL_PARAMS_INIT;
  mp.body = SMTPUV_BODY_BINARYMIME;
  assert_int_equal(smtpuv_proto_mail(p, "a@b", &mp), 0);
  assert_int_equal(smtpuv_proto_rcpt(p, "c@d", NULL), 0);
  assert_int_equal(smtpuv_proto_data(p), SMTPUV_ENOEXT);
  assert_int_equal(smtpuv_proto_bdat(p, "\0\n\r.\xff", 5, 0), 0);
  assert_int_equal(smtpuv_proto_bdat(p, "z", 1, 1), 0);
  expect_outn(p,
              "MAIL FROM:<a@b> BODY=BINARYMIME\r\nRCPT TO:<c@d>\r\n"
              "BDAT 5\r\n\0\n\r.\xff"
              "BDAT 1 LAST\r\nz",
              56 + 5 + 13 + 1);
  smtpuv_proto_free(p);

  /* BODY=8BITMIME allows 8-bit chunks */
  p = session_with(NULL, EHLO_FULL);
  mp.body = SMTPUV_BODY_8BITMIME;
  assert_int_equal(smtpuv_proto_mail(p, "a@b", &mp), 0);
  assert_int_equal(smtpuv_proto_rcpt(p, "c@d", NULL), 0);
  assert_int_equal(smtpuv_proto_bdat(p, "\xc3\xa9", 2, 1), 0);
  expect_out(p, "MAIL FROM:<a@b> BODY=8BITMIME\r\nRCPT TO:<c@d>\r\n"
                "BDAT 4 LAST\r\n\xc3\xa9\r\n");
  smtpuv_proto_free(p);
}

/* The auth exchange: a response only after a 334, several rounds. */
static void test_auth_rounds(void **state) {
  (void)state;
  smtpuv_proto *p = session_with(NULL, EHLO_FULL);
  assert_int_equal(smtpuv_proto_auth(p, "CRAM-MD5", NULL), 0);
  assert_int_equal(smtpuv_proto_auth_response(p, "AA"), SMTPUV_ESTATE);
  assert_int_equal(smtpuv_proto_quit(p), SMTPUV_ESTATE);
  assert_int_equal(feed_str(p, "334 PDEyMzQ+\r\n"), 0);
  pop(p, SMTPUV_CMD_AUTH, 334);
  assert_int_equal(smtpuv_proto_auth_response(p, "dXNlciBhYmM="), 0);
  assert_int_equal(smtpuv_proto_auth_cancel(p), SMTPUV_ESTATE);
  assert_int_equal(feed_str(p, "535 5.7.8 no\r\n"), 0);
  smtpuv_reply r = pop(p, SMTPUV_CMD_AUTH, 535);
  assert_false(r.positive);
  assert_string_equal(r.enhanced, "5.7.8");
  assert_int_equal(smtpuv_proto_state(p), SMTPUV_STATE_READY);
  assert_int_equal(smtpuv_proto_auth(p, "PLAIN", "AHUAcA=="), 0);
  assert_int_equal(feed_str(p, "235 2.7.0 ok\r\n"), 0);
  pop(p, SMTPUV_CMD_AUTH, 235);
  assert_int_equal(smtpuv_proto_state(p), SMTPUV_STATE_READY);
  expect_out(p, "AUTH CRAM-MD5\r\ndXNlciBhYmM=\r\nAUTH PLAIN AHUAcA==\r\n");
  /* RFC 4954 section 4: no second AUTH after a 235, and nothing written */
  assert_int_equal(smtpuv_proto_auth(p, "PLAIN", "AHUAcA=="), SMTPUV_ESTATE);
  assert_int_equal(smtpuv_proto_pending_output(p), 0);
  assert_int_equal(smtpuv_proto_mail(p, "a@example.com", NULL), 0);
  smtpuv_proto_free(p);

  /* STARTTLS needs the extension; AUTH too */
  p = session_with(NULL, EHLO_BASIC);
  assert_int_equal(smtpuv_proto_starttls(p), SMTPUV_ENOEXT);
  assert_int_equal(smtpuv_proto_auth(p, "PLAIN", NULL), SMTPUV_ENOEXT);
  assert_int_equal(smtpuv_proto_pending_output(p), 0);
  smtpuv_proto_free(p);
}

/* NULL arguments never crash. */
static void test_null_arguments(void **state) {
  (void)state;
  smtpuv_reply r;
  assert_int_equal(smtpuv_proto_new(NULL, NULL), SMTPUV_EINVAL);
  smtpuv_mem bad = {0};
  smtpuv_proto *p = (smtpuv_proto *)&bad;
  assert_int_equal(smtpuv_proto_new(&bad, &p), SMTPUV_EINVAL);
  assert_null(p);
  smtpuv_proto_free(NULL);
  assert_int_equal(smtpuv_proto_feed(NULL, "x", 1), SMTPUV_EINVAL);
  assert_int_equal(smtpuv_proto_next_reply(NULL, &r), SMTPUV_EINVAL);
  assert_int_equal(smtpuv_proto_ehlo(NULL, "x"), SMTPUV_EINVAL);
  assert_int_equal(smtpuv_proto_quit(NULL), SMTPUV_EINVAL);
  assert_int_equal(smtpuv_proto_data_write(NULL, "x", 1), SMTPUV_EINVAL);
  assert_int_equal(smtpuv_proto_bdat(NULL, "x", 1, 1), SMTPUV_EINVAL);
  assert_int_equal(smtpuv_proto_tls_established(NULL), SMTPUV_EINVAL);
  assert_int_equal(smtpuv_proto_extensions(NULL), 0);
  assert_int_equal(smtpuv_proto_has_extension(NULL, "X"), 0);
  p = reach(AT_GREETING);
  assert_int_equal(smtpuv_proto_feed(p, NULL, 1), SMTPUV_EINVAL);
  assert_int_equal(smtpuv_proto_feed(p, NULL, 0), 0);
  assert_int_equal(smtpuv_proto_next_reply(p, NULL), SMTPUV_EINVAL);
  assert_int_equal(smtpuv_proto_has_extension(p, NULL), 0);
  assert_null(smtpuv_proto_extension_params(p, "SIZE"));
  assert_string_equal(smtpuv_proto_auth_mechanisms(p), "");
  smtpuv_proto_free(p);
}

static void test_names(void **state) {
  (void)state;
  assert_string_equal(smtpuv_cmd_name(SMTPUV_CMD_DATA_END), "end-of-data");
  assert_string_equal(smtpuv_cmd_name(SMTPUV_CMD_RCPT), "RCPT");
  assert_string_equal(smtpuv_cmd_name((smtpuv_cmd)99), "?");
  assert_string_equal(smtpuv_state_name(SMTPUV_STATE_FINISHED), "FINISHED");
  assert_string_equal(smtpuv_state_name(SMTPUV_STATE_GREETING_EXPECTED),
                      "GREETING_EXPECTED");
  assert_string_equal(smtpuv_state_name((smtpuv_state)-1), "?");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_every_command_every_state),
      cmocka_unit_test(test_mail_refused_pipelined),
      cmocka_unit_test(test_mail_refused_early),
      cmocka_unit_test(test_no_recipient),
      cmocka_unit_test(test_group_enders),
      cmocka_unit_test(test_no_pipelining),
      cmocka_unit_test(test_bdat_rules),
      cmocka_unit_test(test_auth_rounds),
      cmocka_unit_test(test_null_arguments),
      cmocka_unit_test(test_names),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

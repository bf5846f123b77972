/* SPDX-License-Identifier: MIT */
/*
 * Command arguments: MAIL/RCPT parameters (SIZE, BODY, SMTPUTF8, DSN,
 * REQUIRETLS) with their exact wire format, and every way a caller string
 * could inject a command: refused before a byte is written.
 */
#include "test_proto_util.h"

/* `call` must fail with `err` and leave output, queue and state alone. */
#define REFUSED(p, call, err)                                                  \
  do {                                                                         \
    size_t out_ = smtpuv_proto_pending_output(p);                              \
    size_t q_ = smtpuv_proto_pending_replies(p);                               \
    smtpuv_state st_ = smtpuv_proto_state(p);                                  \
    assert_int_equal((call), (err));                                           \
    assert_int_equal(smtpuv_proto_pending_output(p), out_);                    \
    assert_int_equal(smtpuv_proto_pending_replies(p), q_);                     \
    assert_int_equal(smtpuv_proto_state(p), st_);                              \
  } while (0)

static void mail_ok(smtpuv_proto *p, const char *from,
                    const smtpuv_mail_params *mp, const char *wire) {
  assert_int_equal(smtpuv_proto_mail(p, from, mp), 0);
  expect_out(p, wire);
  assert_int_equal(smtpuv_proto_rset(p), 0); /* pipelined: back to READY */
  expect_out(p, "RSET\r\n");
}

static void test_mail_params(void **state) {
  (void)state;
  smtpuv_proto *p = session_with(NULL, EHLO_FULL);
  smtpuv_mail_params mp = SMTPUV_MAIL_PARAMS_INIT;
  mail_ok(p, "a@b", NULL, "MAIL FROM:<a@b>\r\n");
  mail_ok(p, "", NULL, "MAIL FROM:<>\r\n");
  mp.size = 123;
  mp.body = SMTPUV_BODY_8BITMIME;
  mail_ok(p, "a@b", &mp, "MAIL FROM:<a@b> SIZE=123 BODY=8BITMIME\r\n");
  mp.size = 10485760; /* exactly the limit */
  mp.body = SMTPUV_BODY_7BIT;
  mail_ok(p, "a@b", &mp, "MAIL FROM:<a@b> SIZE=10485760 BODY=7BIT\r\n");
  mp.size = 10485761;
  REFUSED(p, smtpuv_proto_mail(p, "a@b", &mp), SMTPUV_ETOOBIG);
  mp.size = 0;
  mp.body = SMTPUV_BODY_BINARYMIME;
  mail_ok(p, "a@b", &mp, "MAIL FROM:<a@b> BODY=BINARYMIME\r\n");
  mp.body = (smtpuv_body_type)7;
  REFUSED(p, smtpuv_proto_mail(p, "a@b", &mp), SMTPUV_EINVAL);

  mp = (smtpuv_mail_params)SMTPUV_MAIL_PARAMS_INIT;
  mp.smtputf8 = 1;
  mail_ok(p, "a@b", &mp, "MAIL FROM:<a@b> SMTPUTF8\r\n");
  mp.smtputf8 = 0;
  mail_ok(p, "j\xc3\xb6rg@b\xc3\xbc.example", &mp,
          "MAIL FROM:<j\xc3\xb6rg@b\xc3\xbc.example> SMTPUTF8\r\n");

  mp.dsn_ret = SMTPUV_DSN_RET_HDRS;
  mp.dsn_envid = "QQ314159";
  mail_ok(p, "a@b", &mp, "MAIL FROM:<a@b> RET=HDRS ENVID=QQ314159\r\n");
  mp.dsn_ret = SMTPUV_DSN_RET_FULL;
  mp.dsn_envid = "a+b=c d~!";
  mail_ok(p, "a@b", &mp, "MAIL FROM:<a@b> RET=FULL ENVID=a+2Bb+3Dc+20d~!\r\n");
  mp.dsn_envid = "bad\r\nRCPT";
  REFUSED(p, smtpuv_proto_mail(p, "a@b", &mp), SMTPUV_EINVAL);
  mp.dsn_envid = "caf\xc3\xa9";
  REFUSED(p, smtpuv_proto_mail(p, "a@b", &mp), SMTPUV_EINVAL);
  mp.dsn_envid = "";
  REFUSED(p, smtpuv_proto_mail(p, "a@b", &mp), SMTPUV_EINVAL);
  char envid[102];
  memset(envid, 'e', 101);
  envid[101] = '\0';
  mp.dsn_envid = envid;
  REFUSED(p, smtpuv_proto_mail(p, "a@b", &mp), SMTPUV_EINVAL);
  envid[100] = '\0';
  mp.dsn_ret = SMTPUV_DSN_RET_UNSPECIFIED;
  assert_int_equal(smtpuv_proto_mail(p, "a@b", &mp), 0);
  smtpuv_proto_rset(p);
  expect_out(p, "MAIL FROM:<a@b> ENVID=eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"
                "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"
                "ee\r\nRSET\r\n");
  mp.dsn_envid = NULL;
  mp.dsn_ret = (smtpuv_dsn_ret)3;
  REFUSED(p, smtpuv_proto_mail(p, "a@b", &mp), SMTPUV_EINVAL);

  mp = (smtpuv_mail_params)SMTPUV_MAIL_PARAMS_INIT;
  mp.requiretls = 1;
  mail_ok(p, "a@b", &mp, "MAIL FROM:<a@b> REQUIRETLS\r\n");

  mp.size = 1;
  mp.body = SMTPUV_BODY_8BITMIME;
  mp.smtputf8 = 1;
  mp.dsn_ret = SMTPUV_DSN_RET_HDRS;
  mp.dsn_envid = "x";
  mail_ok(p, "a@b", &mp,
          "MAIL FROM:<a@b> SIZE=1 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=x "
          "REQUIRETLS\r\n");

  /* struct_size: too small is refused, larger (a newer caller) is fine */
  mp.struct_size = 0;
  REFUSED(p, smtpuv_proto_mail(p, "a@b", &mp), SMTPUV_EINVAL);
  mp.struct_size = sizeof mp - 1;
  REFUSED(p, smtpuv_proto_mail(p, "a@b", &mp), SMTPUV_EINVAL);
  struct {
    smtpuv_mail_params mp;
    int future_field;
  } bigger = {SMTPUV_MAIL_PARAMS_INIT, 42};
  bigger.mp.struct_size = sizeof bigger;
  mail_ok(p, "a@b", &bigger.mp, "MAIL FROM:<a@b>\r\n");
  smtpuv_proto_free(p);
}

/* What MAIL needs from the server. */
static void test_mail_needs_extensions(void **state) {
  (void)state;
  smtpuv_proto *p = session_with(NULL, "mx\nPIPELINING");
  smtpuv_mail_params mp = SMTPUV_MAIL_PARAMS_INIT;
  mp.size = 1u << 30; /* no SIZE advertised: not sent, not checked */
  mail_ok(p, "a@b", &mp, "MAIL FROM:<a@b>\r\n");
  mp.size = 0;
  mp.body = SMTPUV_BODY_8BITMIME;
  REFUSED(p, smtpuv_proto_mail(p, "a@b", &mp), SMTPUV_E8BIT);
  mp.body = SMTPUV_BODY_7BIT;
  REFUSED(p, smtpuv_proto_mail(p, "a@b", &mp), SMTPUV_ENOEXT);
  mp.body = SMTPUV_BODY_BINARYMIME;
  REFUSED(p, smtpuv_proto_mail(p, "a@b", &mp), SMTPUV_ENOEXT);
  mp.body = SMTPUV_BODY_UNSPECIFIED;
  mp.smtputf8 = 1;
  REFUSED(p, smtpuv_proto_mail(p, "a@b", &mp), SMTPUV_ENOEXT);
  mp.smtputf8 = 0;
  REFUSED(p, smtpuv_proto_mail(p, "\xc3\xa9@b", &mp), SMTPUV_ENOEXT);
  mp.dsn_ret = SMTPUV_DSN_RET_FULL;
  REFUSED(p, smtpuv_proto_mail(p, "a@b", &mp), SMTPUV_ENOEXT);
  mp.dsn_ret = SMTPUV_DSN_RET_UNSPECIFIED;
  mp.dsn_envid = "id";
  REFUSED(p, smtpuv_proto_mail(p, "a@b", &mp), SMTPUV_ENOEXT);
  mp.dsn_envid = NULL;
  mp.requiretls = 1;
  REFUSED(p, smtpuv_proto_mail(p, "a@b", &mp), SMTPUV_ENOEXT);
  smtpuv_proto_free(p);

  /* BINARYMIME without CHUNKING is no use (it needs BDAT) */
  p = session_with(NULL, "mx\nBINARYMIME\n8BITMIME");
  mp = (smtpuv_mail_params)SMTPUV_MAIL_PARAMS_INIT;
  mp.body = SMTPUV_BODY_BINARYMIME;
  REFUSED(p, smtpuv_proto_mail(p, "a@b", &mp), SMTPUV_ENOEXT);
  /* SIZE limit 0 means none */
  smtpuv_proto_free(p);
  p = session_with(NULL, "mx\nSIZE");
  mp = (smtpuv_mail_params)SMTPUV_MAIL_PARAMS_INIT;
  mp.size = UINT64_MAX;
  assert_int_equal(smtpuv_proto_mail(p, "a@b", &mp), 0);
  expect_out(p, "MAIL FROM:<a@b> SIZE=18446744073709551615\r\n");
  smtpuv_proto_free(p);
}

static void test_rcpt_params(void **state) {
  (void)state;
  smtpuv_proto *p = session_with(NULL, EHLO_FULL);
  smtpuv_rcpt_params rp = SMTPUV_RCPT_PARAMS_INIT;
  assert_int_equal(smtpuv_proto_mail(p, "a@b", NULL), 0);
  assert_int_equal(smtpuv_proto_rcpt(p, "c@d", NULL), 0);
  rp.dsn_notify = SMTPUV_DSN_NOTIFY_SUCCESS | SMTPUV_DSN_NOTIFY_FAILURE;
  rp.dsn_orcpt = "c@d";
  assert_int_equal(smtpuv_proto_rcpt(p, "c@d", &rp), 0);
  rp.dsn_notify = SMTPUV_DSN_NOTIFY_SUCCESS | SMTPUV_DSN_NOTIFY_FAILURE |
                  SMTPUV_DSN_NOTIFY_DELAY;
  rp.dsn_orcpt = NULL;
  assert_int_equal(smtpuv_proto_rcpt(p, "e@f", &rp), 0);
  rp.dsn_notify = SMTPUV_DSN_NOTIFY_NEVER;
  assert_int_equal(smtpuv_proto_rcpt(p, "g@h", &rp), 0);
  rp.dsn_notify = SMTPUV_DSN_NOTIFY_DELAY;
  rp.dsn_orcpt = "x+y=z w@\xc3\xa9.example";
  assert_int_equal(smtpuv_proto_rcpt(p, "i@j", &rp), 0);
  expect_out(p, "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n"
                "RCPT TO:<c@d> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;c@d\r\n"
                "RCPT TO:<e@f> NOTIFY=SUCCESS,FAILURE,DELAY\r\n"
                "RCPT TO:<g@h> NOTIFY=NEVER\r\n"
                "RCPT TO:<i@j> NOTIFY=DELAY "
                "ORCPT=rfc822;x+2By+3Dz+20w@+C3+A9.example\r\n");

  rp.dsn_orcpt = NULL;
  rp.dsn_notify = SMTPUV_DSN_NOTIFY_NEVER | SMTPUV_DSN_NOTIFY_FAILURE;
  REFUSED(p, smtpuv_proto_rcpt(p, "k@l", &rp), SMTPUV_EINVAL);
  rp.dsn_notify = 1u << 4;
  REFUSED(p, smtpuv_proto_rcpt(p, "k@l", &rp), SMTPUV_EINVAL);
  rp.dsn_notify = 0;
  rp.dsn_orcpt = "a@b\r\nDATA";
  REFUSED(p, smtpuv_proto_rcpt(p, "k@l", &rp), SMTPUV_EADDRESS);
  rp.dsn_orcpt = "";
  REFUSED(p, smtpuv_proto_rcpt(p, "k@l", &rp), SMTPUV_EADDRESS);
  rp.dsn_orcpt = NULL;
  rp.struct_size = 1;
  REFUSED(p, smtpuv_proto_rcpt(p, "k@l", &rp), SMTPUV_EINVAL);
  smtpuv_proto_free(p);

  /* DSN parameters need DSN */
  p = session_with(NULL, "mx\nPIPELINING\nSMTPUTF8");
  rp = (smtpuv_rcpt_params)SMTPUV_RCPT_PARAMS_INIT;
  assert_int_equal(smtpuv_proto_mail(p, "a@b", NULL), 0);
  rp.dsn_notify = SMTPUV_DSN_NOTIFY_FAILURE;
  REFUSED(p, smtpuv_proto_rcpt(p, "k@l", &rp), SMTPUV_ENOEXT);
  rp.dsn_notify = 0;
  rp.dsn_orcpt = "k@l";
  REFUSED(p, smtpuv_proto_rcpt(p, "k@l", &rp), SMTPUV_ENOEXT);
  /* a non-ASCII recipient needs SMTPUTF8 declared by this transaction */
  REFUSED(p, smtpuv_proto_rcpt(p, "\xc3\xa9@l", NULL), SMTPUV_ENOEXT);
  assert_int_equal(smtpuv_proto_rset(p), 0);
  smtpuv_mail_params mp = SMTPUV_MAIL_PARAMS_INIT;
  mp.smtputf8 = 1;
  assert_int_equal(smtpuv_proto_mail(p, "a@b", &mp), 0);
  assert_int_equal(smtpuv_proto_rcpt(p, "\xc3\xa9@l", NULL), 0);
  expect_out(p, "MAIL FROM:<a@b>\r\nRSET\r\nMAIL FROM:<a@b> SMTPUTF8\r\n"
                "RCPT TO:<\xc3\xa9@l>\r\n");
  smtpuv_proto_free(p);
}

static void test_address_injection(void **state) {
  (void)state;
  static const char *const bad[] = {
      "a@b>\r\nRCPT TO:<evil@x", "a@b\r\n", "a@b\n", "a\r@b", "<a@b>",
      "a<b@c",                  "a>b@c",  "a\tb@c", "a\x7f@b", "a\x01@b",
      "\xc3@b",                  /* truncated UTF-8 */
      "\xc0\xaf@b",              /* overlong */
      "\xed\xa0\x80@b",          /* surrogate */
      "\xf4\x90\x80\x80@b",      /* above U+10FFFF */
      "\xff@b"};
  smtpuv_proto *p = session_with(NULL, EHLO_FULL);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    REFUSED(p, smtpuv_proto_mail(p, bad[i], NULL), SMTPUV_EADDRESS);
    assert_int_equal(smtpuv_check_address(bad[i], 1), SMTPUV_EADDRESS);
    REFUSED(p, smtpuv_proto_vrfy(p, bad[i]), SMTPUV_EADDRESS);
  }
  REFUSED(p, smtpuv_proto_mail(p, NULL, NULL), SMTPUV_EADDRESS);
  char long_addr[SMTPUV_MAX_ADDRESS + 2];
  memset(long_addr, 'a', sizeof long_addr);
  long_addr[SMTPUV_MAX_ADDRESS + 1] = '\0';
  REFUSED(p, smtpuv_proto_mail(p, long_addr, NULL), SMTPUV_EADDRESS);
  long_addr[SMTPUV_MAX_ADDRESS] = '\0';
  assert_int_equal(smtpuv_check_address(long_addr, 0), 0);

  assert_int_equal(smtpuv_proto_mail(p, "a@b", NULL), 0);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    REFUSED(p, smtpuv_proto_rcpt(p, bad[i], NULL), SMTPUV_EADDRESS);
  REFUSED(p, smtpuv_proto_rcpt(p, "", NULL), SMTPUV_EADDRESS);
  REFUSED(p, smtpuv_proto_rcpt(p, NULL, NULL), SMTPUV_EADDRESS);
  expect_out(p, "MAIL FROM:<a@b>\r\n");

  /* quoted local parts with spaces are fine; so is a valid 4-byte UTF-8 */
  assert_int_equal(smtpuv_check_address("\"john doe\"@example.com", 0), 0);
  assert_int_equal(smtpuv_check_address("\xf0\x9f\x93\xa7@example.com", 1), 0);
  assert_int_equal(smtpuv_check_address("\xf0\x9f\x93\xa7@example.com", 0),
                   SMTPUV_ENOEXT);
  assert_int_equal(smtpuv_check_address(NULL, 1), SMTPUV_EADDRESS);
  smtpuv_proto_free(p);
}

static void test_vrfy(void **state) {
  (void)state;
  smtpuv_proto *p = session_with(NULL, EHLO_FULL);
  REFUSED(p, smtpuv_proto_vrfy(p, ""), SMTPUV_EADDRESS);
  REFUSED(p, smtpuv_proto_vrfy(p, NULL), SMTPUV_EADDRESS);
  assert_int_equal(smtpuv_proto_vrfy(p, "J\xc3\xb6rg Smith"), 0);
  expect_out(p, "VRFY J\xc3\xb6rg Smith SMTPUTF8\r\n");
  smtpuv_proto_free(p);
  p = session_with(NULL, EHLO_BASIC);
  REFUSED(p, smtpuv_proto_vrfy(p, "J\xc3\xb6rg"), SMTPUV_ENOEXT);
  assert_int_equal(smtpuv_proto_vrfy(p, "postmaster"), 0);
  expect_out(p, "VRFY postmaster\r\n");
  smtpuv_proto_free(p);
}

static void test_hello_injection(void **state) {
  (void)state;
  smtpuv_proto *p;
  smtpuv_reply r;
  assert_int_equal(smtpuv_proto_new(NULL, &p), 0);
  assert_int_equal(feed_str(p, "220 mx\r\n"), 0);
  assert_int_equal(smtpuv_proto_next_reply(p, &r), 1);
  static const char *const bad[] = {"a\r\nMAIL FROM:<x>", "a b", "", "a\n",
                                    "caf\xc3\xa9.example", "a\tb", "a\x7f"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    REFUSED(p, smtpuv_proto_ehlo(p, bad[i]), SMTPUV_EINVAL);
    REFUSED(p, smtpuv_proto_helo(p, bad[i]), SMTPUV_EINVAL);
  }
  REFUSED(p, smtpuv_proto_ehlo(p, NULL), SMTPUV_EINVAL);
  char name[257];
  memset(name, 'h', 256);
  name[256] = '\0';
  REFUSED(p, smtpuv_proto_ehlo(p, name), SMTPUV_EINVAL);
  name[255] = '\0';
  assert_int_equal(smtpuv_proto_ehlo(p, name), 0);
  smtpuv_proto_free(p);
}

static void test_auth_injection(void **state) {
  (void)state;
  smtpuv_proto *p = session_with(NULL, EHLO_FULL);
  static const char *const bad_mech[] = {
      "PLAIN\r\nMAIL", "plain", "PLA IN", "", "ABCDEFGHIJKLMNOPQRSTU",
      "PL=AIN",        "PLAIN\n"};
  for (size_t i = 0; i < sizeof bad_mech / sizeof bad_mech[0]; i++)
    REFUSED(p, smtpuv_proto_auth(p, bad_mech[i], NULL), SMTPUV_EINVAL);
  REFUSED(p, smtpuv_proto_auth(p, NULL, NULL), SMTPUV_EINVAL);
  static const char *const bad_b64[] = {"AA==\r\nMAIL FROM:<x>", "AA AA",
                                        "AA\n", "AA-_", "\xc3\xa9"};
  for (size_t i = 0; i < sizeof bad_b64 / sizeof bad_b64[0]; i++)
    REFUSED(p, smtpuv_proto_auth(p, "PLAIN", bad_b64[i]), SMTPUV_EINVAL);
  assert_int_equal(smtpuv_proto_auth(p, "ABCDEFGHIJ-_0123456789", NULL),
                   SMTPUV_EINVAL); /* 22 characters */
  assert_int_equal(smtpuv_proto_auth(p, "SCRAM-SHA-256", "biwsbj11c2Vy"), 0);
  expect_out(p, "AUTH SCRAM-SHA-256 biwsbj11c2Vy\r\n");
  assert_int_equal(feed_str(p, "334 cj1meWtv\r\n"), 0);
  pop(p, SMTPUV_CMD_AUTH, 334);
  for (size_t i = 0; i < sizeof bad_b64 / sizeof bad_b64[0]; i++)
    REFUSED(p, smtpuv_proto_auth_response(p, bad_b64[i]), SMTPUV_EINVAL);
  REFUSED(p, smtpuv_proto_auth_response(p, NULL), SMTPUV_EINVAL);
  assert_int_equal(smtpuv_proto_auth_response(p, "Yz1iaXdz+/=="), 0);
  expect_out(p, "Yz1iaXdz+/==\r\n");
  smtpuv_proto_free(p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_mail_params),
      cmocka_unit_test(test_mail_needs_extensions),
      cmocka_unit_test(test_rcpt_params),
      cmocka_unit_test(test_address_injection),
      cmocka_unit_test(test_vrfy),
      cmocka_unit_test(test_hello_injection),
      cmocka_unit_test(test_auth_injection),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

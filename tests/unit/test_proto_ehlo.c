/* SPDX-License-Identifier: MIT */
/*
 * EHLO replies as real servers send them, and the extension queries.
 */
#include "test_proto_util.h"

/* A greeted session that sent EHLO and got `reply` (raw bytes). */
static smtpuv_proto *ehlo_session(const char *reply) {
  smtpuv_proto *p;
  smtpuv_reply r;
  assert_int_equal(smtpuv_proto_new(NULL, &p), 0);
  assert_int_equal(feed_str(p, "220 mx ESMTP\r\n"), 0);
  assert_int_equal(smtpuv_proto_next_reply(p, &r), 1);
  assert_int_equal(smtpuv_proto_ehlo(p, "client.example"), 0);
  expect_out(p, "EHLO client.example\r\n");
  assert_int_equal(feed_str(p, reply), 0);
  r = pop(p, SMTPUV_CMD_EHLO, 250);
  assert_true(r.positive);
  assert_int_equal(smtpuv_proto_state(p), SMTPUV_STATE_READY);
  return p;
}

static void test_postfix(void **state) {
  (void)state;
  smtpuv_proto *p = ehlo_session(
      "250-localhost\r\n250-PIPELINING\r\n250-SIZE 10485760\r\n250-VRFY\r\n"
      "250-ETRN\r\n250-AUTH PLAIN LOGIN CRAM-MD5 XOAUTH2 OAUTHBEARER\r\n"
      "250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n"
      "250 CHUNKING\r\n");
  assert_int_equal(smtpuv_proto_extensions(p),
                   SMTPUV_EXT_PIPELINING | SMTPUV_EXT_SIZE | SMTPUV_EXT_AUTH |
                       SMTPUV_EXT_ENHANCEDSTATUSCODES | SMTPUV_EXT_8BITMIME |
                       SMTPUV_EXT_DSN | SMTPUV_EXT_SMTPUTF8 |
                       SMTPUV_EXT_CHUNKING);
  assert_int_equal(smtpuv_proto_max_size(p), 10485760);
  assert_string_equal(smtpuv_proto_server_name(p), "localhost");
  assert_true(smtpuv_proto_has_extension(p, "VRFY"));
  assert_true(smtpuv_proto_has_extension(p, "etrn"));
  assert_false(smtpuv_proto_has_extension(p, "STARTTLS"));
  assert_false(smtpuv_proto_has_extension(p, "ETR"));
  assert_false(smtpuv_proto_has_extension(p, "ETRNX"));
  assert_false(smtpuv_proto_has_extension(p, ""));
  assert_string_equal(smtpuv_proto_extension_params(p, "size"), "10485760");
  assert_string_equal(smtpuv_proto_extension_params(p, "PIPELINING"), "");
  assert_null(smtpuv_proto_extension_params(p, "XCLIENT"));
  assert_string_equal(smtpuv_proto_auth_mechanisms(p),
                      "PLAIN LOGIN CRAM-MD5 XOAUTH2 OAUTHBEARER");
  assert_true(smtpuv_proto_auth_offered(p, "cram-md5"));
  assert_false(smtpuv_proto_auth_offered(p, "CRAM"));
  assert_false(smtpuv_proto_auth_offered(p, "SCRAM-SHA-256"));
  smtpuv_proto_free(p);
}

static void test_exim(void **state) {
  (void)state;
  smtpuv_proto *p = ehlo_session(
      "250-localhost Hello client.test [127.0.0.1]\r\n250-SIZE 10485760\r\n"
      "250-8BITMIME\r\n250-PIPELINING\r\n250-PIPECONNECT\r\n250-CHUNKING\r\n"
      "250-STARTTLS\r\n250-SMTPUTF8\r\n250 HELP\r\n");
  assert_int_equal(smtpuv_proto_extensions(p),
                   SMTPUV_EXT_SIZE | SMTPUV_EXT_8BITMIME |
                       SMTPUV_EXT_PIPELINING | SMTPUV_EXT_CHUNKING |
                       SMTPUV_EXT_STARTTLS | SMTPUV_EXT_SMTPUTF8);
  assert_true(smtpuv_proto_has_extension(p, "PIPECONNECT"));
  assert_true(smtpuv_proto_has_extension(p, "help"));
  assert_string_equal(smtpuv_proto_server_name(p),
                      "localhost Hello client.test [127.0.0.1]");
  assert_string_equal(smtpuv_proto_auth_mechanisms(p), "");
  smtpuv_proto_free(p);
}

/* smtp-sink (Postfix's test server) ends with an empty "250 " line. */
static void test_smtp_sink(void **state) {
  (void)state;
  smtpuv_proto *p = ehlo_session(
      "250-smtp-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n"
      "250-AUTH PLAIN LOGIN\r\n250-XCLIENT NAME HELO\r\n"
      "250-XFORWARD NAME ADDR PROTO HELO\r\n250-ENHANCEDSTATUSCODES\r\n"
      "250-DSN\r\n250 \r\n");
  assert_int_equal(smtpuv_proto_extensions(p),
                   SMTPUV_EXT_PIPELINING | SMTPUV_EXT_8BITMIME |
                       SMTPUV_EXT_AUTH | SMTPUV_EXT_ENHANCEDSTATUSCODES |
                       SMTPUV_EXT_DSN);
  assert_string_equal(smtpuv_proto_extension_params(p, "XCLIENT"),
                      "NAME HELO");
  assert_string_equal(smtpuv_proto_extension_params(p, "xforward"),
                      "NAME ADDR PROTO HELO");
  assert_false(smtpuv_proto_has_extension(p, ""));
  smtpuv_proto_free(p);
}

static void test_gmail(void **state) {
  (void)state;
  smtpuv_proto *p = ehlo_session(
      "250-smtp.gmail.com at your service, [203.0.113.9]\r\n"
      "250-SIZE 35882577\r\n250-8BITMIME\r\n250-STARTTLS\r\n"
      "250-ENHANCEDSTATUSCODES\r\n250-PIPELINING\r\n250-CHUNKING\r\n"
      "250 SMTPUTF8\r\n");
  assert_int_equal(smtpuv_proto_extensions(p),
                   SMTPUV_EXT_SIZE | SMTPUV_EXT_8BITMIME |
                       SMTPUV_EXT_STARTTLS | SMTPUV_EXT_ENHANCEDSTATUSCODES |
                       SMTPUV_EXT_PIPELINING | SMTPUV_EXT_CHUNKING |
                       SMTPUV_EXT_SMTPUTF8);
  assert_int_equal(smtpuv_proto_max_size(p), 35882577);
  /* after TLS the mechanisms appear */
  assert_int_equal(smtpuv_proto_starttls(p), 0);
  expect_out(p, "STARTTLS\r\n");
  assert_int_equal(feed_str(p, "220 2.0.0 Ready to start TLS\r\n"), 0);
  pop(p, SMTPUV_CMD_STARTTLS, 220);
  assert_int_equal(smtpuv_proto_tls_established(p), 0);
  assert_int_equal(smtpuv_proto_extensions(p), 0);
  assert_string_equal(smtpuv_proto_server_name(p), "");
  assert_int_equal(smtpuv_proto_ehlo(p, "client.example"), 0);
  expect_out(p, "EHLO client.example\r\n");
  assert_int_equal(
      feed_str(p, "250-smtp.gmail.com at your service, [203.0.113.9]\r\n"
                  "250-SIZE 35882577\r\n250-8BITMIME\r\n"
                  "250-AUTH LOGIN PLAIN XOAUTH2 PLAIN-CLIENTTOKEN OAUTHBEARER "
                  "XOAUTH\r\n250-ENHANCEDSTATUSCODES\r\n250-PIPELINING\r\n"
                  "250-CHUNKING\r\n250 SMTPUTF8\r\n"),
      0);
  pop(p, SMTPUV_CMD_EHLO, 250);
  assert_string_equal(smtpuv_proto_auth_mechanisms(p),
                      "LOGIN PLAIN XOAUTH2 PLAIN-CLIENTTOKEN OAUTHBEARER XOAUTH");
  assert_false(smtpuv_proto_extensions(p) & SMTPUV_EXT_STARTTLS);
  assert_true(smtpuv_proto_extensions(p) & SMTPUV_EXT_AUTH);
  smtpuv_proto_free(p);
}

/* Outlook style: the old "AUTH=" form next to the standard one. */
static void test_outlook(void **state) {
  (void)state;
  smtpuv_proto *p = ehlo_session(
      "250-AM0PR01CA0001.outlook.office365.com Hello [198.51.100.4]\r\n"
      "250-SIZE 157286400\r\n250-PIPELINING\r\n250-DSN\r\n"
      "250-ENHANCEDSTATUSCODES\r\n250-STARTTLS\r\n250-AUTH=LOGIN\r\n"
      "250-AUTH LOGIN XOAUTH2\r\n250-8BITMIME\r\n250-BINARYMIME\r\n"
      "250-CHUNKING\r\n250 SMTPUTF8\r\n");
  assert_int_equal(smtpuv_proto_extensions(p),
                   SMTPUV_EXT_SIZE | SMTPUV_EXT_PIPELINING | SMTPUV_EXT_DSN |
                       SMTPUV_EXT_ENHANCEDSTATUSCODES | SMTPUV_EXT_STARTTLS |
                       SMTPUV_EXT_AUTH | SMTPUV_EXT_8BITMIME |
                       SMTPUV_EXT_BINARYMIME | SMTPUV_EXT_CHUNKING |
                       SMTPUV_EXT_SMTPUTF8);
  assert_int_equal(smtpuv_proto_max_size(p), 157286400);
  assert_string_equal(smtpuv_proto_auth_mechanisms(p), "LOGIN XOAUTH2");
  assert_string_equal(smtpuv_proto_extension_params(p, "AUTH"),
                      "LOGIN XOAUTH2");
  assert_true(smtpuv_proto_has_extension(p, "AUTH"));
  smtpuv_proto_free(p);

  /* only the old form */
  p = ehlo_session("250-mx\r\n250 AUTH=PLAIN  LOGIN\r\n");
  assert_int_equal(smtpuv_proto_extensions(p), SMTPUV_EXT_AUTH);
  assert_string_equal(smtpuv_proto_auth_mechanisms(p), "PLAIN LOGIN");
  assert_string_equal(smtpuv_proto_extension_params(p, "auth"),
                      "PLAIN  LOGIN");
  smtpuv_proto_free(p);
}

static void test_lowercase_and_odd(void **state) {
  (void)state;
  smtpuv_proto *p = ehlo_session(
      "250-mx.example greets you\r\n250-pipelining\r\n250-size\r\n"
      "250-Auth plain login plain bad/mech ThisMechanismNameIsTooLong x_y\r\n"
      "250-8bitmime\r\n250-  starttls  \r\n250-chunking\r\n"
      "250-binaryMIME\r\n250-dsn\r\n250-enhancedstatuscodes\r\n"
      "250-requiretls\r\n250-x-vendor-thing a=b c\r\n250 smtputf8\r\n");
  assert_int_equal(smtpuv_proto_extensions(p),
                   SMTPUV_EXT_PIPELINING | SMTPUV_EXT_SIZE | SMTPUV_EXT_AUTH |
                       SMTPUV_EXT_8BITMIME | SMTPUV_EXT_STARTTLS |
                       SMTPUV_EXT_CHUNKING | SMTPUV_EXT_BINARYMIME |
                       SMTPUV_EXT_DSN | SMTPUV_EXT_ENHANCEDSTATUSCODES |
                       SMTPUV_EXT_REQUIRETLS | SMTPUV_EXT_SMTPUTF8);
  assert_int_equal(smtpuv_proto_max_size(p), 0); /* SIZE without a limit */
  assert_string_equal(smtpuv_proto_auth_mechanisms(p), "PLAIN LOGIN X_Y");
  assert_string_equal(smtpuv_proto_extension_params(p, "X-VENDOR-THING"),
                      "a=b c");
  assert_string_equal(smtpuv_proto_server_name(p), "mx.example greets you");
  smtpuv_proto_free(p);

  /* SIZE values that are not a limit */
  const char *sizes[] = {"250-mx\r\n250 SIZE 0\r\n",
                         "250-mx\r\n250 SIZE abc\r\n",
                         "250-mx\r\n250 SIZE 99999999999999999999999\r\n",
                         "250-mx\r\n250 SIZE -5\r\n"};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    p = ehlo_session(sizes[i]);
    assert_int_equal(smtpuv_proto_extensions(p), SMTPUV_EXT_SIZE);
    assert_int_equal(smtpuv_proto_max_size(p), 0);
    smtpuv_proto_free(p);
  }
  p = ehlo_session("250-mx\r\n250 SIZE 18446744073709551615\r\n");
  assert_true(smtpuv_proto_max_size(p) == UINT64_MAX);
  smtpuv_proto_free(p);

  /* a single-line EHLO reply: no extensions */
  p = ehlo_session("250 mx\r\n");
  assert_int_equal(smtpuv_proto_extensions(p), 0);
  assert_string_equal(smtpuv_proto_server_name(p), "mx");
  smtpuv_proto_free(p);
}

/* EHLO refused: GREETED again, HELO allowed; HELO success has no
   extensions; a second EHLO after HELO is not allowed (READY). */
static void test_refused_then_helo(void **state) {
  (void)state;
  smtpuv_proto *p;
  smtpuv_reply r;
  assert_int_equal(smtpuv_proto_new(NULL, &p), 0);
  assert_int_equal(feed_str(p, "220 mx\r\n"), 0);
  pop(p, SMTPUV_CMD_GREETING, 220);
  assert_int_equal(smtpuv_proto_ehlo(p, "c"), 0);
  assert_int_equal(feed_str(p, "500 5.5.2 what?\r\n"), 0);
  r = pop(p, SMTPUV_CMD_EHLO, 500);
  assert_false(r.positive);
  assert_int_equal(smtpuv_proto_state(p), SMTPUV_STATE_GREETED);
  assert_int_equal(smtpuv_proto_helo(p, "c"), 0);
  expect_out(p, "EHLO c\r\nHELO c\r\n");
  assert_int_equal(smtpuv_proto_state(p), SMTPUV_STATE_EHLO_SENT);
  assert_int_equal(feed_str(p, "250-mx\r\n250 PIPELINING\r\n"), 0);
  r = pop(p, SMTPUV_CMD_HELO, 250);
  assert_int_equal(smtpuv_proto_extensions(p), 0);
  assert_false(smtpuv_proto_has_extension(p, "PIPELINING"));
  assert_string_equal(smtpuv_proto_server_name(p), "mx");
  assert_int_equal(smtpuv_proto_ehlo(p, "c"), SMTPUV_ESTATE);
  smtpuv_proto_free(p);

  /* HELO refused too */
  assert_int_equal(smtpuv_proto_new(NULL, &p), 0);
  assert_int_equal(feed_str(p, "220 mx\r\n"), 0);
  pop(p, SMTPUV_CMD_GREETING, 220);
  assert_int_equal(smtpuv_proto_helo(p, "c"), 0);
  assert_int_equal(feed_str(p, "501 bad\r\n"), 0);
  pop(p, SMTPUV_CMD_HELO, 501);
  assert_int_equal(smtpuv_proto_state(p), SMTPUV_STATE_GREETED);
  smtpuv_proto_free(p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_postfix),
      cmocka_unit_test(test_exim),
      cmocka_unit_test(test_smtp_sink),
      cmocka_unit_test(test_gmail),
      cmocka_unit_test(test_outlook),
      cmocka_unit_test(test_lowercase_and_odd),
      cmocka_unit_test(test_refused_then_helo),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

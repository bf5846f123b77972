/* SPDX-License-Identifier: MIT */
/*
 * Whole conversations against the sans-io core, client bytes checked
 * exactly. Every conversation runs with each server flight fed whole, one
 * byte at a time, and cut at every offset: the results must not change.
 */
#include "test_proto_util.h"

#define POSTFIX_EHLO_PLAIN                                                     \
  "250-localhost\r\n250-PIPELINING\r\n250-SIZE 10485760\r\n250-VRFY\r\n"        \
  "250-ETRN\r\n250-STARTTLS\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n"     \
  "250-DSN\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n"

#define POSTFIX_EHLO_TLS                                                       \
  "250-localhost\r\n250-PIPELINING\r\n250-SIZE 10485760\r\n250-VRFY\r\n"        \
  "250-ETRN\r\n250-AUTH PLAIN LOGIN CRAM-MD5 XOAUTH2 OAUTHBEARER\r\n"           \
  "250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n"      \
  "250 CHUNKING\r\n"

/* Postfix: STARTTLS, AUTH LOGIN, a pipelined DATA transaction with one
   recipient refused, a pipelined BDAT transaction, VRFY, RSET, NOOP, QUIT. */
static void conv_postfix(drv *d) {
  smtpuv_proto *p = d->p;
  const smtpuv_reply *r;
  assert_int_equal(smtpuv_proto_state(p), SMTPUV_STATE_GREETING_EXPECTED);
  assert_int_equal(smtpuv_proto_pending_replies(p), 1);
  drv_feed(d, "220 localhost ESMTP Postfix (Debian/GNU)\r\n");
  r = drv_reply(d, SMTPUV_CMD_GREETING, 220);
  assert_true(r->positive);
  assert_string_equal(r->text, "localhost ESMTP Postfix (Debian/GNU)");
  assert_int_equal(smtpuv_proto_state(p), SMTPUV_STATE_GREETED);

  assert_int_equal(smtpuv_proto_ehlo(p, "client.example"), 0);
  drv_out(d, "EHLO client.example\r\n");
  drv_feed(d, POSTFIX_EHLO_PLAIN);
  r = drv_reply(d, SMTPUV_CMD_EHLO, 250);
  assert_int_equal(r->nlines, 11);
  assert_string_equal(smtpuv_proto_server_name(p), "localhost");
  assert_int_equal(smtpuv_proto_extensions(p),
                   SMTPUV_EXT_PIPELINING | SMTPUV_EXT_SIZE |
                       SMTPUV_EXT_STARTTLS | SMTPUV_EXT_ENHANCEDSTATUSCODES |
                       SMTPUV_EXT_8BITMIME | SMTPUV_EXT_DSN |
                       SMTPUV_EXT_SMTPUTF8 | SMTPUV_EXT_CHUNKING);
  assert_int_equal(smtpuv_proto_auth(p, "PLAIN", "AA=="), SMTPUV_ENOEXT);

  assert_int_equal(smtpuv_proto_starttls(p), 0);
  drv_out(d, "STARTTLS\r\n");
  assert_int_equal(smtpuv_proto_tls_established(p), SMTPUV_ESTATE);
  drv_feed(d, "220 2.0.0 Ready to start TLS\r\n");
  r = drv_reply(d, SMTPUV_CMD_STARTTLS, 220);
  assert_true(r->positive);
  assert_string_equal(r->enhanced, "2.0.0");
  assert_int_equal(smtpuv_proto_state(p), SMTPUV_STATE_STARTTLS_PENDING);
  assert_int_equal(smtpuv_proto_tls_established(p), 0);
  assert_int_equal(smtpuv_proto_state(p), SMTPUV_STATE_GREETED);
  assert_int_equal(smtpuv_proto_extensions(p), 0);
  assert_int_equal(smtpuv_proto_has_extension(p, "PIPELINING"), 0);

  assert_int_equal(smtpuv_proto_ehlo(p, "client.example"), 0);
  drv_out(d, "EHLO client.example\r\n");
  drv_feed(d, POSTFIX_EHLO_TLS);
  drv_reply(d, SMTPUV_CMD_EHLO, 250);
  assert_string_equal(smtpuv_proto_auth_mechanisms(p),
                      "PLAIN LOGIN CRAM-MD5 XOAUTH2 OAUTHBEARER");
  assert_int_equal(smtpuv_proto_max_size(p), 10485760);

  assert_int_equal(smtpuv_proto_auth(p, "LOGIN", NULL), 0);
  drv_out(d, "AUTH LOGIN\r\n");
  drv_feed(d, "334 VXNlcm5hbWU6\r\n");
  r = drv_reply(d, SMTPUV_CMD_AUTH, 334);
  assert_true(r->positive);
  assert_string_equal(r->text, "VXNlcm5hbWU6");
  assert_int_equal(smtpuv_proto_state(p), SMTPUV_STATE_AUTHENTICATING);
  assert_int_equal(smtpuv_proto_auth_response(p, "dGVzdHVzZXJAZXhhbXBsZS5jb20="),
                   0);
  drv_out(d, "dGVzdHVzZXJAZXhhbXBsZS5jb20=\r\n");
  drv_feed(d, "334 UGFzc3dvcmQ6\r\n");
  drv_reply(d, SMTPUV_CMD_AUTH, 334);
  assert_int_equal(smtpuv_proto_auth_response(p, "dGVzdHBhc3M="), 0);
  drv_out(d, "dGVzdHBhc3M=\r\n");
  drv_feed(d, "235 2.7.0 Authentication successful\r\n");
  r = drv_reply(d, SMTPUV_CMD_AUTH, 235);
  assert_true(r->positive);
  assert_int_equal(smtpuv_proto_state(p), SMTPUV_STATE_READY);

  /* one pipelined transaction: MAIL, 3 RCPT, DATA */
  smtpuv_mail_params mp = SMTPUV_MAIL_PARAMS_INIT;
  mp.size = 123;
  mp.body = SMTPUV_BODY_8BITMIME;
  assert_int_equal(smtpuv_proto_mail(p, "a@b", &mp), 0);
  assert_int_equal(smtpuv_proto_rcpt(p, "r0@example.org", NULL), 0);
  assert_int_equal(smtpuv_proto_rcpt(p, "r1@example.org", NULL), 0);
  assert_int_equal(smtpuv_proto_rcpt(p, "r2@example.org", NULL), 0);
  assert_int_equal(smtpuv_proto_data(p), 0);
  assert_int_equal(smtpuv_proto_state(p), SMTPUV_STATE_DATA_PENDING);
  assert_int_equal(smtpuv_proto_pending_replies(p), 5);
  drv_out(d, "MAIL FROM:<a@b> SIZE=123 BODY=8BITMIME\r\n"
             "RCPT TO:<r0@example.org>\r\nRCPT TO:<r1@example.org>\r\n"
             "RCPT TO:<r2@example.org>\r\nDATA\r\n");
  drv_feed(d, "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
              "550 5.1.1 <r1@example.org>: Recipient address rejected: "
              "User unknown\r\n250 2.1.5 Ok\r\n"
              "354 End data with <CR><LF>.<CR><LF>\r\n");
  drv_reply(d, SMTPUV_CMD_MAIL, 250);
  assert_int_equal(smtpuv_proto_data_write(p, "x", 1), SMTPUV_ESTATE);
  r = drv_reply(d, SMTPUV_CMD_RCPT, 250);
  assert_int_equal(r->rcpt_index, 0);
  r = drv_reply(d, SMTPUV_CMD_RCPT, 550);
  assert_int_equal(r->rcpt_index, 1);
  assert_false(r->positive);
  assert_int_equal(r->flags, 0);
  assert_string_equal(r->enhanced, "5.1.1");
  assert_int_equal(r->enh_class, 5);
  assert_int_equal(r->enh_subject, 1);
  assert_int_equal(r->enh_detail, 1);
  r = drv_reply(d, SMTPUV_CMD_RCPT, 250);
  assert_int_equal(r->rcpt_index, 2);
  r = drv_reply(d, SMTPUV_CMD_DATA, 354);
  assert_true(r->positive);
  assert_int_equal(r->flags, 0);
  assert_int_equal(smtpuv_proto_state(p), SMTPUV_STATE_DATA);
  drv_no_reply(d);

  assert_int_equal(smtpuv_proto_data_write(p, "Subject: hi\n\n.dot\r", 18), 0);
  assert_int_equal(smtpuv_proto_data_write(p, "\ncaf\xc3\xa9\n.", 8), 0);
  assert_int_equal(smtpuv_proto_data_end(p), 0);
  assert_int_equal(smtpuv_proto_state(p), SMTPUV_STATE_READY);
  drv_out(d, "Subject: hi\r\n\r\n..dot\r\ncaf\xc3\xa9\r\n..\r\n.\r\n");

  /* the next transaction is pipelined right after the end of data */
  assert_int_equal(smtpuv_proto_mail(p, "", NULL), 0);
  assert_int_equal(smtpuv_proto_rcpt(p, "x@example.org", NULL), 0);
  assert_int_equal(smtpuv_proto_bdat(p, "line one\nline", 13, 0), 0);
  assert_int_equal(smtpuv_proto_state(p), SMTPUV_STATE_BDAT);
  assert_int_equal(smtpuv_proto_bdat(p, " two", 4, 1), 0);
  assert_int_equal(smtpuv_proto_state(p), SMTPUV_STATE_READY);
  drv_out(d, "MAIL FROM:<>\r\nRCPT TO:<x@example.org>\r\n"
             "BDAT 14\r\nline one\r\nline"
             "BDAT 6 LAST\r\n two\r\n");
  drv_feed(d, "250 2.0.0 Ok: queued as 4F1\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
              "250 2.0.0 Ok: 14 bytes\r\n"
              "250 2.0.0 Ok: 20 bytes queued as 4F2\r\n");
  r = drv_reply(d, SMTPUV_CMD_DATA_END, 250);
  assert_true(r->positive);
  assert_int_equal(r->flags, 0);
  assert_string_equal(r->text, "2.0.0 Ok: queued as 4F1");
  drv_reply(d, SMTPUV_CMD_MAIL, 250);
  drv_reply(d, SMTPUV_CMD_RCPT, 250);
  r = drv_reply(d, SMTPUV_CMD_BDAT, 250);
  assert_false(r->last);
  r = drv_reply(d, SMTPUV_CMD_BDAT, 250);
  assert_true(r->last);
  assert_int_equal(smtpuv_proto_pending_replies(p), 0);

  assert_int_equal(smtpuv_proto_vrfy(p, "postmaster"), 0);
  drv_out(d, "VRFY postmaster\r\n");
  assert_int_equal(smtpuv_proto_rset(p), SMTPUV_EBUSY);
  drv_feed(d, "252 2.0.0 postmaster\r\n");
  drv_reply(d, SMTPUV_CMD_VRFY, 252);
  assert_int_equal(smtpuv_proto_rset(p), 0);
  assert_int_equal(smtpuv_proto_noop(p), 0);
  assert_int_equal(smtpuv_proto_quit(p), 0);
  assert_int_equal(smtpuv_proto_state(p), SMTPUV_STATE_FINISHED);
  drv_out(d, "RSET\r\nNOOP\r\nQUIT\r\n");
  drv_feed(d, "250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n221 2.0.0 Bye\r\n");
  drv_reply(d, SMTPUV_CMD_RSET, 250);
  drv_reply(d, SMTPUV_CMD_NOOP, 250);
  r = drv_reply(d, SMTPUV_CMD_QUIT, 221);
  assert_true(r->positive);
  drv_no_reply(d);
  assert_int_equal(smtpuv_proto_pending_replies(p), 0);
  assert_int_equal(smtpuv_proto_error(p), 0);
}

/* A server without ESMTP: EHLO refused, HELO, one step at a time. */
static void conv_helo(drv *d) {
  smtpuv_proto *p = d->p;
  const smtpuv_reply *r;
  drv_feed(d, "220-old.example SMTP\n220 ready\n"); /* bare LF endings */
  r = drv_reply(d, SMTPUV_CMD_GREETING, 220);
  assert_int_equal(r->nlines, 2);
  assert_string_equal(r->text, "old.example SMTP\nready");
  assert_int_equal(smtpuv_proto_ehlo(p, "[192.0.2.1]"), 0);
  drv_out(d, "EHLO [192.0.2.1]\r\n");
  drv_feed(d, "502 5.5.1 EHLO not implemented\r\n");
  r = drv_reply(d, SMTPUV_CMD_EHLO, 502);
  assert_false(r->positive);
  assert_string_equal(r->enhanced, ""); /* not advertised */
  assert_int_equal(smtpuv_proto_state(p), SMTPUV_STATE_GREETED);
  assert_int_equal(smtpuv_proto_helo(p, "[192.0.2.1]"), 0);
  drv_out(d, "HELO [192.0.2.1]\r\n");
  drv_feed(d, "250 old.example\r\n");
  drv_reply(d, SMTPUV_CMD_HELO, 250);
  assert_int_equal(smtpuv_proto_state(p), SMTPUV_STATE_READY);
  assert_int_equal(smtpuv_proto_extensions(p), 0);
  assert_string_equal(smtpuv_proto_server_name(p), "old.example");

  smtpuv_mail_params mp = SMTPUV_MAIL_PARAMS_INIT;
  mp.size = 99999999; /* no SIZE: not sent, not checked */
  assert_int_equal(smtpuv_proto_mail(p, "me@old.example", &mp), 0);
  drv_out(d, "MAIL FROM:<me@old.example>\r\n");
  assert_int_equal(smtpuv_proto_rcpt(p, "you@old.example", NULL),
                   SMTPUV_EBUSY);
  drv_feed(d, "250 ok\r\n");
  drv_reply(d, SMTPUV_CMD_MAIL, 250);
  assert_int_equal(smtpuv_proto_rcpt(p, "you@old.example", NULL), 0);
  assert_int_equal(smtpuv_proto_data(p), SMTPUV_EBUSY);
  drv_out(d, "RCPT TO:<you@old.example>\r\n");
  drv_feed(d, "250 ok\r\n");
  drv_reply(d, SMTPUV_CMD_RCPT, 250);
  assert_int_equal(smtpuv_proto_data(p), 0);
  drv_out(d, "DATA\r\n");
  drv_feed(d, "354 go ahead\r\n");
  drv_reply(d, SMTPUV_CMD_DATA, 354);
  assert_int_equal(smtpuv_proto_data_write(p, "8bit \xff", 6), SMTPUV_E8BIT);
  assert_int_equal(smtpuv_proto_pending_output(p), 0);
  assert_int_equal(smtpuv_proto_data_write(p, "no newline", 10), 0);
  assert_int_equal(smtpuv_proto_data_end(p), 0);
  drv_out(d, "no newline\r\n.\r\n");
  assert_int_equal(smtpuv_proto_mail(p, "me@old.example", NULL), SMTPUV_EBUSY);
  assert_int_equal(smtpuv_proto_quit(p), SMTPUV_EBUSY);
  drv_feed(d, "250 queued\r\n");
  drv_reply(d, SMTPUV_CMD_DATA_END, 250);
  assert_int_equal(smtpuv_proto_quit(p), 0);
  drv_out(d, "QUIT\r\n");
  drv_feed(d, "221 bye\r\n");
  drv_reply(d, SMTPUV_CMD_QUIT, 221);
}

/* Gmail: 334 error challenge answered with an empty line, multi-line 535;
   then AUTH PLAIN with an empty initial response ("="), AUTH cancelled. */
static void conv_gmail_auth(drv *d) {
  smtpuv_proto *p = d->p;
  const smtpuv_reply *r;
  drv_feed(d, "220 smtp.gmail.com ESMTP a1sm123 - gsmtp\r\n");
  drv_reply(d, SMTPUV_CMD_GREETING, 220);
  assert_int_equal(smtpuv_proto_ehlo(p, "me.example"), 0);
  drv_out(d, "EHLO me.example\r\n");
  drv_feed(d, "250-smtp.gmail.com at your service, [192.0.2.7]\r\n"
              "250-SIZE 35882577\r\n250-8BITMIME\r\n"
              "250-AUTH LOGIN PLAIN XOAUTH2 PLAIN-CLIENTTOKEN OAUTHBEARER "
              "XOAUTH\r\n250-ENHANCEDSTATUSCODES\r\n250-PIPELINING\r\n"
              "250-CHUNKING\r\n250 SMTPUTF8\r\n");
  drv_reply(d, SMTPUV_CMD_EHLO, 250);
  assert_string_equal(smtpuv_proto_server_name(p),
                      "smtp.gmail.com at your service, [192.0.2.7]");
  assert_true(smtpuv_proto_auth_offered(p, "xoauth2"));
  assert_true(smtpuv_proto_auth_offered(p, "PLAIN-CLIENTTOKEN"));
  assert_false(smtpuv_proto_auth_offered(p, "CRAM-MD5"));

  assert_int_equal(smtpuv_proto_auth(p, "XOAUTH2", "dXNlcj1tZQFhdXRo"), 0);
  drv_out(d, "AUTH XOAUTH2 dXNlcj1tZQFhdXRo\r\n");
  drv_feed(d, "334 eyJzdGF0dXMiOiI0MDEifQ==\r\n");
  r = drv_reply(d, SMTPUV_CMD_AUTH, 334);
  assert_string_equal(r->text, "eyJzdGF0dXMiOiI0MDEifQ==");
  assert_int_equal(smtpuv_proto_auth_response(p, ""), 0);
  drv_out(d, "\r\n");
  assert_int_equal(smtpuv_proto_auth_response(p, ""), SMTPUV_ESTATE);
  drv_feed(d, "535-5.7.8 Username and Password not accepted.\r\n"
              "535 5.7.8  https://support.google.com/mail/?p=BadCredentials\r\n");
  r = drv_reply(d, SMTPUV_CMD_AUTH, 535);
  assert_false(r->positive);
  assert_int_equal(r->nlines, 2);
  assert_string_equal(r->enhanced, "5.7.8");
  assert_memory_equal(r->lines[1].ptr, "5.7.8  https://", 15);
  assert_int_equal(smtpuv_proto_state(p), SMTPUV_STATE_READY);

  assert_int_equal(smtpuv_proto_auth(p, "PLAIN", ""), 0);
  drv_out(d, "AUTH PLAIN =\r\n");
  drv_feed(d, "334 \r\n");
  r = drv_reply(d, SMTPUV_CMD_AUTH, 334);
  assert_string_equal(r->text, "");
  assert_int_equal(smtpuv_proto_auth_cancel(p), 0);
  drv_out(d, "*\r\n");
  drv_feed(d, "501 5.7.0 Authentication aborted\r\n");
  drv_reply(d, SMTPUV_CMD_AUTH, 501);
  assert_int_equal(smtpuv_proto_state(p), SMTPUV_STATE_READY);
  assert_int_equal(smtpuv_proto_quit(p), 0);
  drv_out(d, "QUIT\r\n");
  drv_feed(d, "221 2.0.0 closing connection a1sm123 - gsmtp\r\n");
  drv_reply(d, SMTPUV_CMD_QUIT, 221);
}

/* Exim: PIPECONNECT and HELP advertised, BDAT with a multi-line reply,
   a second message by DATA with every recipient refused (the core ends
   the body itself), and a 421 instead of the last reply. */
static void conv_exim(drv *d) {
  smtpuv_proto *p = d->p;
  const smtpuv_reply *r;
  drv_feed(d, "220 localhost ESMTP Exim 4.96 Mon, 01 Jan 2024 00:00:00 +0000"
              "\r\n");
  drv_reply(d, SMTPUV_CMD_GREETING, 220);
  assert_int_equal(smtpuv_proto_ehlo(p, "client.test"), 0);
  drv_out(d, "EHLO client.test\r\n");
  drv_feed(d, "250-localhost Hello client.test [127.0.0.1]\r\n"
              "250-SIZE 10485760\r\n250-8BITMIME\r\n250-PIPELINING\r\n"
              "250-PIPECONNECT\r\n250-CHUNKING\r\n250-STARTTLS\r\n"
              "250-SMTPUTF8\r\n250 HELP\r\n");
  drv_reply(d, SMTPUV_CMD_EHLO, 250);
  assert_true(smtpuv_proto_has_extension(p, "pipeconnect"));
  assert_true(smtpuv_proto_has_extension(p, "HELP"));

  smtpuv_mail_params mp = SMTPUV_MAIL_PARAMS_INIT;
  mp.size = 1606;
  assert_int_equal(smtpuv_proto_mail(p, "s\xc3\xa9@example.com", &mp), 0);
  assert_int_equal(smtpuv_proto_rcpt(p, "r\xc3\xa9@example.com", NULL), 0);
  static const char body[] = "Subject: x\r\n\r\n.leading dot\r\n";
  assert_int_equal(smtpuv_proto_bdat(p, body, sizeof body - 1, 1), 0);
  drv_out(d, "MAIL FROM:<s\xc3\xa9@example.com> SIZE=1606 SMTPUTF8\r\n"
             "RCPT TO:<r\xc3\xa9@example.com>\r\n"
             "BDAT 28 LAST\r\nSubject: x\r\n\r\n.leading dot\r\n");
  drv_feed(d, "250 OK\r\n250 Accepted\r\n"
              "250- 29 byte chunk, total 29\r\n250 OK id=1qX-000\r\n");
  drv_reply(d, SMTPUV_CMD_MAIL, 250);
  drv_reply(d, SMTPUV_CMD_RCPT, 250);
  r = drv_reply(d, SMTPUV_CMD_BDAT, 250);
  assert_true(r->last);
  assert_string_equal(r->text, " 29 byte chunk, total 29\nOK id=1qX-000");

  assert_int_equal(smtpuv_proto_mail(p, "a@example.com", NULL), 0);
  assert_int_equal(smtpuv_proto_rcpt(p, "b@example.com", NULL), 0);
  assert_int_equal(smtpuv_proto_rcpt(p, "c@example.com", NULL), 0);
  assert_int_equal(smtpuv_proto_data(p), 0);
  drv_out(d, "MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n"
             "RCPT TO:<c@example.com>\r\nDATA\r\n");
  drv_feed(d, "250 OK\r\n550 no such user\r\n550 no such user\r\n"
              "354 Enter message, ending with \".\" on a line by itself\r\n");
  drv_reply(d, SMTPUV_CMD_MAIL, 250);
  r = drv_reply(d, SMTPUV_CMD_RCPT, 550);
  assert_int_equal(r->flags, 0);
  drv_reply(d, SMTPUV_CMD_RCPT, 550);
  r = drv_reply(d, SMTPUV_CMD_DATA, 354);
  assert_int_equal(r->flags,
                   SMTPUV_REPLY_EMPTY_DATA | SMTPUV_REPLY_TXN_FAILED);
  assert_int_equal(smtpuv_proto_state(p), SMTPUV_STATE_READY);
  assert_int_equal(smtpuv_proto_data_write(p, "x", 1), SMTPUV_ESTATE);
  drv_out(d, ".\r\n");
  assert_int_equal(smtpuv_proto_pending_replies(p), 1);
  drv_feed(d, "554 no valid recipients\r\n");
  r = drv_reply(d, SMTPUV_CMD_DATA_END, 554);
  assert_false(r->positive);
  assert_int_equal(r->flags,
                   SMTPUV_REPLY_EMPTY_DATA | SMTPUV_REPLY_TXN_FAILED);

  assert_int_equal(smtpuv_proto_noop(p), 0);
  drv_out(d, "NOOP\r\n");
  drv_feed(d, "421 localhost lost input connection\r\n");
  r = drv_reply(d, SMTPUV_CMD_NOOP, 421);
  assert_false(r->positive);
  assert_int_equal(smtpuv_proto_state(p), SMTPUV_STATE_FINISHED);
  assert_int_equal(smtpuv_proto_quit(p), SMTPUV_ESTATE);
  assert_int_equal(smtpuv_proto_error(p), 0);
}

typedef void (*conv_fn)(drv *d);

static size_t max_flight = 600;

static void run_all_ways(conv_fn conv) {
  drv d;
  drv_init(&d, FEED_WHOLE, 0);
  conv(&d);
  drv_done(&d);
  drv_init(&d, FEED_BYTES, 0);
  conv(&d);
  drv_done(&d);
  for (size_t k = 0; k <= max_flight; k++) {
    drv_init(&d, FEED_SPLIT, k);
    conv(&d);
    drv_done(&d);
  }
}

static void test_postfix(void **state) {
  (void)state;
  run_all_ways(conv_postfix);
}

static void test_helo(void **state) {
  (void)state;
  run_all_ways(conv_helo);
}

static void test_gmail_auth(void **state) {
  (void)state;
  run_all_ways(conv_gmail_auth);
}

static void test_exim(void **state) {
  (void)state;
  run_all_ways(conv_exim);
}

/* The same conversations with a counting allocator: nothing leaks. (The
   fail-the-Nth-allocation loop is in test_proto_mem.c.) */
static void test_no_leak(void **state) {
  (void)state;
  conv_fn convs[] = {conv_postfix, conv_helo, conv_gmail_auth, conv_exim};
  for (size_t i = 0; i < sizeof convs / sizeof convs[0]; i++) {
    test_mem tm;
    test_mem_init(&tm, 0);
    drv d;
    memset(&d, 0, sizeof d);
    assert_int_equal(smtpuv_proto_new(&tm.mem, &d.p), 0);
    convs[i](&d);
    smtpuv_proto_free(d.p);
    assert_int_equal(tm.live, 0);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_postfix),    cmocka_unit_test(test_helo),
      cmocka_unit_test(test_gmail_auth), cmocka_unit_test(test_exim),
      cmocka_unit_test(test_no_leak),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

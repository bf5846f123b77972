/* SPDX-License-Identifier: MIT */
/* The conversation driver, socket-free: the scenarios of
 * test_uv_client_script.c as exact byte conversations (command order and
 * pipelining, RSET after refusals, require-all, partial recipients, HELO
 * fallback, local refusals, the retry on a reused connection, 421, closing,
 * streamed bodies that wait or fail, trace redaction, asynchronous OAuth
 * tokens, the order results come out in, a reply before junk, SIZE= and
 * BODY=, large bodies and the high-water mark, many recipients and long
 * replies, AUTH only once). Every conversation runs with the server bytes
 * whole, byte by byte and split at every position (conv_harness.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/evp.h>

#include "conv_harness.h"

#define GREETING "220 mx.test ESMTP\r\n"
#define EHLO_CMD "EHLO client.test\r\n"

static const char msg[] = "Subject: t\r\n\r\nhello\r\n.dot\r\n";
#define MSG_WIRE "Subject: t\r\n\r\nhello\r\n..dot\r\n.\r\n"
#define ENV1 "MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n"
#define ENV1_SIZE                                                              \
  "MAIL FROM:<a@example.com> SIZE=27\r\nRCPT TO:<b@example.com>\r\nDATA\r\n"
#define OK "250 2.0.0 Ok\r\n"
#define GO "354 go ahead\r\n"
#define QUEUED "250 2.0.0 Ok: queued\r\n"

static const char *one[] = {"b@example.com"};

static int submit1(h *x) {
  return h_submit(x, "a@example.com", one, 1, msg, sizeof msg - 1);
}

/* greeting and EHLO with `ehlo` (the full reply) */
static void greet(h *x, const char *ehlo) {
  h_server(x, GREETING);
  h_expect(x, EHLO_CMD);
  h_server(x, ehlo);
}

#define R(x, i) (&(x)->res[i])

static void expect_sent(h *x, int i) {
  if (R(x, i)->popped != 1 || R(x, i)->status != SMTPUV_SEND_SENT)
    fail_msg("%s [%s]: message %d: popped %d, %s, %s", x->name,
             h_mode_name(x), i, R(x, i)->popped,
             smtpuv_send_status_name(R(x, i)->status), R(x, i)->message);
}

static void quit(h *x) {
  h_close(x);
  h_expect(x, "QUIT\r\n");
  h_server(x, "221 2.0.0 bye\r\n");
  H_CHECK(x, h_end_kind(x) == SMTPUV__CONV_FINISH);
}

/* ---- order and pipelining ------------------------------------------------------- */

static void sc_pipelined_sequence(h *x, void *arg) {
  (void)arg;
  h_start(x);
  for (int i = 0; i < 3; i++)
    submit1(x);
  h_expect(x, "");
  greet(x, "250-mx.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n"
           "250-ENHANCEDSTATUSCODES\r\n250 SIZE 1000000\r\n");
  h_expect(x, ENV1_SIZE);
  h_server(x, OK OK GO);
  /* the end of #0 and the whole envelope of #1 in one write */
  h_expect(x, MSG_WIRE ENV1_SIZE);
  h_server(x, QUEUED OK OK GO);
  expect_sent(x, 0);
  h_expect(x, MSG_WIRE ENV1_SIZE);
  h_server(x, QUEUED OK OK GO);
  h_expect(x, MSG_WIRE);
  h_server(x, QUEUED);
  h_expect_none(x);
  for (int i = 0; i < 3; i++) {
    expect_sent(x, i);
    H_CHECK(x, R(x, i)->error == 0);
    H_CHECK(x, R(x, i)->phase == SMTPUV_PHASE_END_OF_DATA);
    H_CHECK(x, R(x, i)->reply_code == 250);
    assert_string_equal(R(x, i)->reply_enhanced, "2.0.0");
    assert_string_equal(R(x, i)->reply_text, "2.0.0 Ok: queued");
    H_CHECK(x, R(x, i)->attempts == 1);
    H_CHECK(x, R(x, i)->naccepted == 1);
    H_CHECK(x, R(x, i)->rcpt[0].code == 250);
    H_CHECK(x, !R(x, i)->has_tls);
    H_CHECK(x, h_popped(x, i) == i);
  }
  if (x->mode == H_WHOLE)
    H_CHECK(x, h_flights(x) == 5); /* EHLO, env, then one per message */
  quit(x);
}

static void test_pipelined_sequence(void **state) {
  (void)state;
  h_run("pipelined sequence", sc_pipelined_sequence, NULL, H_ALL_MODES);
}

static void sc_no_pipelining(h *x, void *arg) {
  (void)arg;
  h_start(x);
  const char *two[] = {"b@example.com", "c@example.com"};
  h_submit(x, "a@example.com", two, 2, msg, sizeof msg - 1);
  submit1(x);
  greet(x, "250-mx.test\r\n250 8BITMIME\r\n");
  /* lock-step: one command per reply */
  h_expect(x, "MAIL FROM:<a@example.com>\r\n");
  h_server(x, OK);
  h_expect(x, "RCPT TO:<b@example.com>\r\n");
  h_server(x, OK);
  h_expect(x, "RCPT TO:<c@example.com>\r\n");
  h_server(x, OK);
  h_expect(x, "DATA\r\n");
  h_server(x, GO);
  h_expect(x, MSG_WIRE);
  h_server(x, QUEUED);
  expect_sent(x, 0);
  H_CHECK(x, R(x, 0)->naccepted == 2);
  h_expect(x, "MAIL FROM:<a@example.com>\r\n");
  h_server(x, OK);
  h_expect(x, "RCPT TO:<b@example.com>\r\n");
  h_server(x, OK);
  h_expect(x, "DATA\r\n");
  h_server(x, GO);
  h_expect(x, MSG_WIRE);
  h_server(x, QUEUED);
  expect_sent(x, 1);
  if (x->mode == H_WHOLE)
    H_CHECK(x, h_flights(x) == 10);
  quit(x);
}

static void test_no_pipelining(void **state) {
  (void)state;
  h_run("no pipelining", sc_no_pipelining, NULL, H_ALL_MODES);
}

/* PIPELINING offered, the client's switch off: lock-step too. */
static void sc_pipelining_off(h *x, void *arg) {
  (void)arg;
  x->cfg.pipelining = 0;
  h_start(x);
  submit1(x);
  greet(x, "250-mx.test\r\n250 PIPELINING\r\n");
  h_expect(x, "MAIL FROM:<a@example.com>\r\n");
  h_server(x, OK);
  h_expect(x, "RCPT TO:<b@example.com>\r\n");
  h_server(x, OK);
  h_expect(x, "DATA\r\n");
  h_server(x, GO);
  h_expect(x, MSG_WIRE);
  h_server(x, QUEUED);
  expect_sent(x, 0);
}

static void test_pipelining_off(void **state) {
  (void)state;
  h_run("pipelining off", sc_pipelining_off, NULL, H_ALL_MODES);
}

/* ---- refusals ------------------------------------------------------------------ */

static void check_refused_bad(h *x) {
  const h_result *r = R(x, 0);
  H_CHECK(x, r->popped == 1);
  H_CHECK(x, r->status == SMTPUV_SEND_FAILED);
  H_CHECK(x, r->error == SMTPUV_ENORCPT);
  H_CHECK(x, r->phase == SMTPUV_PHASE_RCPT);
  H_CHECK(x, r->rcpt[0].code == 550);
  H_CHECK(x, !r->rcpt[0].accepted);
  assert_string_equal(r->rcpt[0].enhanced, "5.1.1");
  assert_string_equal(r->rcpt[0].text, "5.1.1 no such user");
  H_CHECK(x, strstr(r->message, "no such user") != NULL);
  H_CHECK(x, r->naccepted == 0);
}

static void sc_rset_after_refusal(h *x, void *arg) {
  int pipe = *(int *)arg;
  h_start(x);
  const char *bad[] = {"bad@example.com"};
  h_submit(x, "a@example.com", bad, 1, msg, sizeof msg - 1);
  submit1(x);
  if (pipe) {
    greet(x, "250-mx.test\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n");
    h_expect(x, "MAIL FROM:<a@example.com>\r\nRCPT TO:<bad@example.com>\r\n"
                "DATA\r\n");
    h_server(x, OK "550 5.1.1 no such user\r\n"
                   "554 5.5.1 no valid recipients\r\n");
    check_refused_bad(x);
    /* the failed transaction is closed before the next MAIL */
    h_expect(x, "RSET\r\n" ENV1);
    h_server(x, OK OK OK GO);
  } else {
    greet(x, "250-mx.test\r\n250 ENHANCEDSTATUSCODES\r\n");
    h_expect(x, "MAIL FROM:<a@example.com>\r\n");
    h_server(x, OK);
    h_expect(x, "RCPT TO:<bad@example.com>\r\n");
    h_server(x, "550 5.1.1 no such user\r\n");
    check_refused_bad(x);
    h_expect(x, "RSET\r\n");
    h_server(x, OK);
    h_expect(x, "MAIL FROM:<a@example.com>\r\n");
    h_server(x, OK);
    h_expect(x, "RCPT TO:<b@example.com>\r\n");
    h_server(x, OK);
    h_expect(x, "DATA\r\n");
    h_server(x, GO);
  }
  h_expect(x, MSG_WIRE);
  h_server(x, QUEUED);
  expect_sent(x, 1);
  H_CHECK(x, h_popped(x, 0) == 0 && h_popped(x, 1) == 1);
}

static void test_rset_after_refusal(void **state) {
  (void)state;
  for (int pipe = 0; pipe < 2; pipe++)
    h_run(pipe ? "RSET after refusal, pipelined" : "RSET after refusal",
          sc_rset_after_refusal, &pipe, H_ALL_MODES);
}

/* MAIL refused: RSET, and the next message goes on. */
static void sc_mail_refused(h *x, void *arg) {
  (void)arg;
  h_start(x);
  submit1(x);
  submit1(x);
  greet(x, "250-mx.test\r\n250 PIPELINING\r\n");
  h_expect(x, ENV1);
  h_server(x, "451 4.3.0 try later\r\n"
              "503 5.5.1 need MAIL\r\n503 5.5.1 need MAIL\r\n");
  H_CHECK(x, R(x, 0)->status == SMTPUV_SEND_FAILED);
  H_CHECK(x, R(x, 0)->error == SMTPUV_ETEMPFAIL);
  H_CHECK(x, R(x, 0)->phase == SMTPUV_PHASE_MAIL);
  H_CHECK(x, R(x, 0)->reply_code == 451);
  h_expect(x, "RSET\r\n" ENV1);
  h_server(x, OK OK OK GO);
  h_expect(x, MSG_WIRE);
  h_server(x, QUEUED);
  expect_sent(x, 1);
}

static void test_mail_refused(void **state) {
  (void)state;
  h_run("MAIL refused", sc_mail_refused, NULL, H_ALL_MODES);
}

/* DATA refused after accepted recipients; the end of data refused. */
static void sc_data_refused(h *x, void *arg) {
  (void)arg;
  h_start(x);
  submit1(x);
  submit1(x);
  submit1(x);
  greet(x, "250-mx.test\r\n250 PIPELINING\r\n");
  h_expect(x, ENV1);
  h_server(x, OK OK "554 5.3.4 not now\r\n");
  H_CHECK(x, R(x, 0)->status == SMTPUV_SEND_FAILED);
  H_CHECK(x, R(x, 0)->error == SMTPUV_EPERMFAIL);
  H_CHECK(x, R(x, 0)->phase == SMTPUV_PHASE_DATA);
  H_CHECK(x, R(x, 0)->reply_code == 554);
  h_expect(x, "RSET\r\n" ENV1);
  h_server(x, OK OK OK GO);
  h_expect(x, MSG_WIRE ENV1);
  h_server(x, "552 5.3.4 too much\r\n" OK OK GO);
  H_CHECK(x, R(x, 1)->status == SMTPUV_SEND_FAILED);
  H_CHECK(x, R(x, 1)->error == SMTPUV_EPERMFAIL);
  H_CHECK(x, R(x, 1)->phase == SMTPUV_PHASE_END_OF_DATA);
  H_CHECK(x, R(x, 1)->reply_code == 552);
  h_expect(x, MSG_WIRE);
  h_server(x, QUEUED);
  expect_sent(x, 2);
}

static void test_data_refused(void **state) {
  (void)state;
  h_run("DATA refused", sc_data_refused, NULL, H_ALL_MODES);
}

static void sc_require_all(h *x, void *arg) {
  (void)arg;
  x->cfg.require_all = 1;
  h_start(x);
  const char *mixed[] = {"b@example.com", "bad@example.com"};
  h_submit(x, "a@example.com", mixed, 2, msg, sizeof msg - 1);
  submit1(x);
  greet(x, "250-mx.test\r\n250 PIPELINING\r\n");
  /* no DATA before every RCPT reply is in */
  h_expect(x, "MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n"
              "RCPT TO:<bad@example.com>\r\n");
  h_server(x, OK OK "550 5.1.1 no such user\r\n");
  H_CHECK(x, R(x, 0)->status == SMTPUV_SEND_FAILED);
  H_CHECK(x, R(x, 0)->error == SMTPUV_ENORCPT);
  H_CHECK(x, R(x, 0)->phase == SMTPUV_PHASE_RCPT);
  H_CHECK(x, R(x, 0)->naccepted == 1);
  H_CHECK(x, R(x, 0)->rcpt[0].accepted && !R(x, 0)->rcpt[1].accepted);
  h_expect(x, "RSET\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n");
  h_server(x, OK OK OK);
  h_expect(x, "DATA\r\n");
  h_server(x, GO);
  h_expect(x, MSG_WIRE);
  h_server(x, QUEUED);
  expect_sent(x, 1);
  H_CHECK(x, R(x, 1)->error == 0);
}

static void test_require_all(void **state) {
  (void)state;
  h_run("require all", sc_require_all, NULL, H_ALL_MODES);
}

static void sc_partial_recipients(h *x, void *arg) {
  (void)arg;
  h_start(x);
  const char *mixed[] = {"bad@example.com", "b@example.com"};
  h_submit(x, "a@example.com", mixed, 2, msg, sizeof msg - 1);
  greet(x, "250-mx.test\r\n250 PIPELINING\r\n");
  h_expect(x, "MAIL FROM:<a@example.com>\r\nRCPT TO:<bad@example.com>\r\n"
              "RCPT TO:<b@example.com>\r\nDATA\r\n");
  h_server(x, OK "550 5.1.1 no such user\r\n" OK GO);
  h_expect(x, MSG_WIRE);
  h_server(x, QUEUED);
  expect_sent(x, 0);
  H_CHECK(x, R(x, 0)->error == SMTPUV_ENORCPT);
  H_CHECK(x, R(x, 0)->naccepted == 1);
  H_CHECK(x, !R(x, 0)->rcpt[0].accepted && R(x, 0)->rcpt[0].code == 550);
  H_CHECK(x, R(x, 0)->rcpt[1].accepted && R(x, 0)->rcpt[1].code == 250);
}

static void test_partial_recipients_sent(void **state) {
  (void)state;
  h_run("partial recipients", sc_partial_recipients, NULL, H_ALL_MODES);
}

static void sc_helo_fallback(h *x, void *arg) {
  int required = *(int *)arg;
  if (required)
    x->cfg.tls = SMTPUV_TLS_REQUIRED;
  h_start(x);
  submit1(x);
  greet(x, "502 5.5.2 what?\r\n");
  if (required) {
    /* HELO cannot offer STARTTLS: no fallback when TLS is required */
    h_expect(x, "QUIT\r\n");
    H_CHECK(x, x->failed);
    H_CHECK(x, x->fail_phase == SMTPUV_PHASE_EHLO);
    H_CHECK(x, x->fail_code == 502);
    H_CHECK(x, x->fail_error == SMTPUV_EPERMFAIL);
    H_CHECK(x, R(x, 0)->by_failure);
    H_CHECK(x, R(x, 0)->status == SMTPUV_SEND_FAILED);
    H_CHECK(x, R(x, 0)->phase == SMTPUV_PHASE_EHLO);
    h_server(x, "221 bye\r\n");
    H_CHECK(x, h_end_kind(x) == SMTPUV__CONV_FINISH);
    return;
  }
  h_expect(x, "HELO client.test\r\n");
  h_server(x, "250 mx.test\r\n");
  h_expect(x, "MAIL FROM:<a@example.com>\r\n");
  h_server(x, OK);
  h_expect(x, "RCPT TO:<b@example.com>\r\n");
  h_server(x, OK);
  h_expect(x, "DATA\r\n");
  h_server(x, GO);
  h_expect(x, MSG_WIRE);
  h_server(x, QUEUED);
  expect_sent(x, 0);
}

static void test_helo_fallback(void **state) {
  (void)state;
  for (int required = 0; required < 2; required++)
    h_run(required ? "no HELO fallback with TLS required" : "HELO fallback",
          sc_helo_fallback, &required, H_ALL_MODES);
}

/* EHLO refused with 4xx: no HELO (only a 5xx means "EHLO unknown"). */
static void sc_ehlo_4xx(h *x, void *arg) {
  (void)arg;
  h_start(x);
  submit1(x);
  greet(x, "451 4.3.2 not now\r\n");
  h_expect(x, "QUIT\r\n");
  H_CHECK(x, x->failed && x->fail_error == SMTPUV_ETEMPFAIL);
  H_CHECK(x, x->fail_phase == SMTPUV_PHASE_EHLO);
  H_CHECK(x, R(x, 0)->by_failure);
}

static void test_ehlo_4xx(void **state) {
  (void)state;
  h_run("EHLO 4xx", sc_ehlo_4xx, NULL, H_ALL_MODES);
}

static void sc_local_refusals(h *x, void *arg) {
  (void)arg;
  h_start(x);
  static const char eight[] = "Subject: x\r\n\r\ncaf\xc3\xa9\r\n";
  static char big[300];
  memset(big, 'x', sizeof big);
  static const char bin[] = "Subject: b\r\n\r\nbin\0ary\r\n";
  const char *utf[] = {"j\xc3\xb6rg@example.com"};
  /* 0: 8-bit content without 8BITMIME */
  h_submit(x, "a@example.com", one, 1, eight, sizeof eight - 1);
  /* 1: bigger than SIZE */
  h_submit(x, "a@example.com", one, 1, big, sizeof big);
  /* 2: a non-ASCII recipient without SMTPUTF8 */
  h_submit(x, "a@example.com", utf, 1, msg, sizeof msg - 1);
  /* 3: DSN parameters without DSN */
  smtpuv_envelope e = SMTPUV_ENVELOPE_INIT;
  e.sender = "a@example.com";
  e.recipients = one;
  e.nrecipients = 1;
  smtpuv_rcpt_params rp = SMTPUV_RCPT_PARAMS_INIT;
  rp.dsn_notify = SMTPUV_DSN_NOTIFY_FAILURE;
  e.rcpt_params = &rp;
  smtpuv_body b;
  smtpuv_body_init_buffer(&b, msg, sizeof msg - 1);
  h_submit_env(x, &e, &b);
  /* 4: BODY=BINARYMIME asked for without CHUNKING */
  e.rcpt_params = NULL;
  smtpuv_mail_params mp = SMTPUV_MAIL_PARAMS_INIT;
  mp.body = SMTPUV_BODY_BINARYMIME;
  e.mail_params = &mp;
  smtpuv_body_init_buffer(&b, bin, sizeof bin - 1);
  h_submit_env(x, &e, &b);
  /* 5: fine */
  submit1(x);
  greet(x, "250-mx.test\r\n250-PIPELINING\r\n250 SIZE 100\r\n");
  /* each refused before MAIL is written: one MAIL only */
  h_expect(x, ENV1_SIZE);
  for (int i = 0; i < 5; i++) {
    H_CHECK(x, R(x, i)->popped == 1);
    H_CHECK(x, R(x, i)->status == SMTPUV_SEND_FAILED);
    H_CHECK(x, R(x, i)->reply_code == 0);
  }
  H_CHECK(x, R(x, 0)->error == SMTPUV_E8BIT);
  H_CHECK(x, R(x, 0)->phase == SMTPUV_PHASE_MAIL);
  H_CHECK(x, R(x, 1)->error == SMTPUV_ETOOBIG);
  H_CHECK(x, R(x, 1)->phase == SMTPUV_PHASE_MAIL);
  H_CHECK(x, R(x, 2)->error == SMTPUV_ENOEXT);
  H_CHECK(x, R(x, 2)->phase == SMTPUV_PHASE_RCPT);
  H_CHECK(x, R(x, 3)->error == SMTPUV_ENOEXT);
  H_CHECK(x, R(x, 3)->phase == SMTPUV_PHASE_MAIL);
  H_CHECK(x, strstr(R(x, 3)->message, "DSN") != NULL);
  H_CHECK(x, R(x, 4)->error == SMTPUV_ENOEXT);
  H_CHECK(x, R(x, 4)->phase == SMTPUV_PHASE_MAIL);
  H_CHECK(x, strstr(R(x, 4)->message, "CHUNKING") != NULL);
  h_server(x, OK OK GO);
  h_expect(x, MSG_WIRE);
  h_server(x, QUEUED);
  expect_sent(x, 5);
}

static void test_local_refusals(void **state) {
  (void)state;
  h_run("local refusals", sc_local_refusals, NULL, H_ALL_MODES);
}

/* With the extensions offered, the same messages go out. */
static void sc_extensions_used(h *x, void *arg) {
  (void)arg;
  h_start(x);
  static const char eight[] = "Subject: x\r\n\r\ncaf\xc3\xa9\r\n";
  const char *utf[] = {"j\xc3\xb6rg@example.com"};
  h_submit(x, "a@example.com", one, 1, eight, sizeof eight - 1);
  h_submit(x, "a@example.com", utf, 1, msg, sizeof msg - 1);
  greet(x, "250-mx.test\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n");
  h_expect(x, "MAIL FROM:<a@example.com> BODY=8BITMIME\r\n");
  h_server(x, OK);
  h_expect(x, "RCPT TO:<b@example.com>\r\n");
  h_server(x, OK);
  h_expect(x, "DATA\r\n");
  h_server(x, GO);
  h_expect(x, "Subject: x\r\n\r\ncaf\xc3\xa9\r\n.\r\n");
  h_server(x, QUEUED);
  expect_sent(x, 0);
  h_expect(x, "MAIL FROM:<a@example.com> SMTPUTF8\r\n");
  h_server(x, OK);
  h_expect(x, "RCPT TO:<j\xc3\xb6rg@example.com>\r\n");
  h_server(x, OK);
  h_expect(x, "DATA\r\n");
  h_server(x, GO);
  h_expect(x, MSG_WIRE);
  h_server(x, QUEUED);
  expect_sent(x, 1);
}

static void test_extensions_used(void **state) {
  (void)state;
  h_run("8BITMIME and SMTPUTF8 used", sc_extensions_used, NULL, H_ALL_MODES);
}

/* ---- connections ------------------------------------------------------------------- */

/* The server closes the idle connection: nothing is failed, the
   conversation ends, the next message goes on a new one. */
static void sc_reopen_after_idle_close(h *x, void *arg) {
  (void)arg;
  h_start(x);
  submit1(x);
  greet(x, "250-mx.test\r\n250 PIPELINING\r\n");
  h_expect(x, ENV1);
  h_server(x, OK OK GO);
  h_expect(x, MSG_WIRE);
  h_server(x, QUEUED);
  expect_sent(x, 0);
  h_fail(x, SMTPUV_ECONNLOST, "connection closed by the server");
  H_CHECK(x, h_end_kind(x) != SMTPUV__CONV_RUN);
  H_CHECK(x, !x->failed);
  H_CHECK(x, !smtpuv__conv_can_take(x->cv));
  submit1(x);
  H_CHECK(x, x->queued[1]);
  h_reconnect(x);
  greet(x, "250-mx.test\r\n250 PIPELINING\r\n");
  h_expect(x, ENV1);
  h_server(x, OK OK GO);
  h_expect(x, MSG_WIRE);
  h_server(x, QUEUED);
  expect_sent(x, 1);
  H_CHECK(x, R(x, 1)->attempts == 1);
}

static void test_reopen_after_idle_close(void **state) {
  (void)state;
  h_run("reopen after idle close", sc_reopen_after_idle_close, NULL,
        H_ALL_MODES);
}

/* The server drops the connection when the second message's MAIL arrives:
   a rewindable message comes out with `retry` set and is sent again on a
   new connection; a stream without rewind fails. */
static void sc_retry_reused(h *x, void *arg) {
  int rewindable = *(int *)arg;
  x->keep_retry = 1;
  h_start(x);
  submit1(x);
  greet(x, "250-mx.test\r\n250 PIPELINING\r\n");
  h_expect(x, ENV1);
  h_server(x, OK OK GO);
  h_expect(x, MSG_WIRE);
  h_server(x, QUEUED);
  expect_sent(x, 0);
  h_stream s = {msg, sizeof msg - 1, 0, 7, 0, 0, 0, 0, 0};
  smtpuv_envelope e = SMTPUV_ENVELOPE_INIT;
  e.sender = "a@example.com";
  e.recipients = one;
  e.nrecipients = 1;
  smtpuv_body b;
  smtpuv_body_init_stream(&b, h_stream_read,
                          rewindable ? h_stream_rewind : NULL, &s, 0);
  int i = h_submit_env(x, &e, &b);
  h_expect(x, ENV1);
  h_fail(x, SMTPUV_ECONNLOST, "connection reset by peer");
  H_CHECK(x, h_end_kind(x) == SMTPUV__CONV_ABORT);
  H_CHECK(x, R(x, i)->popped == 1);
  if (!rewindable) {
    H_CHECK(x, !R(x, i)->retry);
    H_CHECK(x, R(x, i)->status == SMTPUV_SEND_FAILED);
    H_CHECK(x, R(x, i)->error == SMTPUV_ECONNLOST);
    H_CHECK(x, R(x, i)->phase == SMTPUV_PHASE_MAIL);
    H_CHECK(x, R(x, i)->attempts == 1);
    return;
  }
  H_CHECK(x, R(x, i)->retry);
  H_CHECK(x, s.rewinds >= 1);
  h_requeue(x, i);
  h_reconnect(x);
  greet(x, "250-mx.test\r\n250 PIPELINING\r\n");
  h_expect(x, ENV1);
  h_server(x, OK OK GO);
  h_expect(x, MSG_WIRE); /* the whole body again */
  h_server(x, QUEUED);
  expect_sent(x, i);
  H_CHECK(x, R(x, i)->attempts == 2);
}

static void test_retry_on_reused_connection(void **state) {
  (void)state;
  for (int rw = 0; rw < 2; rw++)
    h_run(rw ? "retry, rewindable" : "retry, not rewindable", sc_retry_reused,
          &rw, H_ALL_MODES);
}

/* A first message on a fresh connection is never retried. */
static void sc_no_retry_fresh(h *x, void *arg) {
  (void)arg;
  x->keep_retry = 1;
  h_start(x);
  submit1(x);
  greet(x, "250-mx.test\r\n250 PIPELINING\r\n");
  h_expect(x, ENV1);
  h_fail(x, SMTPUV_ECONNLOST, "connection reset by peer");
  H_CHECK(x, R(x, 0)->popped == 1 && !R(x, 0)->retry);
  H_CHECK(x, R(x, 0)->status == SMTPUV_SEND_FAILED);
  H_CHECK(x, R(x, 0)->error == SMTPUV_ECONNLOST);
  H_CHECK(x, R(x, 0)->phase == SMTPUV_PHASE_MAIL);
}

static void test_no_retry_on_fresh_connection(void **state) {
  (void)state;
  h_run("no retry on a fresh connection", sc_no_retry_fresh, NULL,
        H_ALL_MODES);
}

static void sc_unsolicited_421(h *x, void *arg) {
  (void)arg;
  h_start(x);
  submit1(x);
  greet(x, "250-mx.test\r\n250 PIPELINING\r\n");
  h_expect(x, ENV1);
  h_server(x, OK OK GO);
  h_expect(x, MSG_WIRE);
  h_server(x, OK "421 4.4.2 idle timeout\r\n");
  expect_sent(x, 0);
  /* the server is closing: no QUIT, the connection ends */
  h_expect_none(x);
  H_CHECK(x, h_end_kind(x) == SMTPUV__CONV_FINISH);
  H_CHECK(x, !x->failed);
  submit1(x);
  h_reconnect(x);
  greet(x, "250-mx.test\r\n250 PIPELINING\r\n");
  h_expect(x, ENV1);
  h_server(x, OK OK GO);
  h_expect(x, MSG_WIRE);
  h_server(x, QUEUED);
  expect_sent(x, 1);
}

static void test_unsolicited_421_then_reopen(void **state) {
  (void)state;
  h_run("unsolicited 421", sc_unsolicited_421, NULL, H_ALL_MODES);
}

/* 421 in answer to a command: what waits on the connection fails with
   ESHUTDOWN. */
static void sc_421_to_mail(h *x, void *arg) {
  (void)arg;
  h_start(x);
  submit1(x);
  greet(x, "250-mx.test\r\n250 PIPELINING\r\n");
  h_expect(x, ENV1);
  h_server(x, "421 4.3.2 shutting down\r\n");
  H_CHECK(x, R(x, 0)->popped == 1);
  H_CHECK(x, R(x, 0)->status == SMTPUV_SEND_FAILED);
  H_CHECK(x, R(x, 0)->error == SMTPUV_ESHUTDOWN);
  H_CHECK(x, R(x, 0)->phase == SMTPUV_PHASE_MAIL);
  H_CHECK(x, R(x, 0)->reply_code == 421);
  h_expect_none(x);
  H_CHECK(x, h_end_kind(x) == SMTPUV__CONV_FINISH);
}

static void test_421_to_mail(void **state) {
  (void)state;
  h_run("421 to MAIL", sc_421_to_mail, NULL, H_ALL_MODES);
}

/* 421 as the greeting, and during EHLO: setup failures with ESHUTDOWN. */
static void sc_421_setup(h *x, void *arg) {
  int where = *(int *)arg;
  h_start(x);
  submit1(x);
  if (where == 0) {
    h_server(x, "421 4.3.2 busy\r\n");
  } else {
    h_server(x, GREETING);
    h_expect(x, EHLO_CMD);
    h_server(x, "421 4.3.2 busy\r\n");
  }
  h_expect_none(x);
  H_CHECK(x, x->failed);
  H_CHECK(x, x->fail_error == SMTPUV_ESHUTDOWN);
  H_CHECK(x, x->fail_phase ==
                 (where == 0 ? SMTPUV_PHASE_GREETING : SMTPUV_PHASE_EHLO));
  H_CHECK(x, x->fail_code == 421);
  H_CHECK(x, R(x, 0)->by_failure && R(x, 0)->error == SMTPUV_ESHUTDOWN);
  H_CHECK(x, h_end_kind(x) == SMTPUV__CONV_FINISH);
}

static void test_421_setup(void **state) {
  (void)state;
  for (int where = 0; where < 2; where++)
    h_run(where ? "421 to EHLO" : "421 greeting", sc_421_setup, &where,
          H_ALL_MODES);
}

static void sc_greeting_refused(h *x, void *arg) {
  (void)arg;
  h_start(x);
  submit1(x);
  h_server(x, "554 5.7.1 no service here\r\n");
  H_CHECK(x, x->failed);
  H_CHECK(x, x->fail_error == SMTPUV_EPERMFAIL);
  H_CHECK(x, x->fail_phase == SMTPUV_PHASE_GREETING);
  H_CHECK(x, x->fail_code == 554);
  H_CHECK(x, strstr(x->fail_message, "no service here") != NULL);
  /* QUIT (RFC 5321 3.1 allows it after a 554 greeting) or just close */
  char *out;
  h_take_out(x, &out);
  H_CHECK(x, out[0] == '\0' || !strcmp(out, "QUIT\r\n"));
  if (out[0] != '\0')
    h_server(x, "221 bye\r\n");
  free(out);
  H_CHECK(x, h_end_kind(x) != SMTPUV__CONV_RUN);
  H_CHECK(x, strstr(x->all, "EHLO") == NULL);
}

static void test_greeting_refused(void **state) {
  (void)state;
  h_run("greeting refused", sc_greeting_refused, NULL, H_ALL_MODES);
}

/* ---- closing ---------------------------------------------------------------------- */

/* Closed right after the first result (the client closed from its
   callback): #1, on the wire before its ".", is canceled. */
static void sc_close_after_first(h *x, void *arg) {
  (void)arg;
  h_start(x);
  for (int i = 0; i < 5; i++)
    submit1(x);
  greet(x, "250-mx.test\r\n250 PIPELINING\r\n");
  h_expect(x, ENV1);
  h_server(x, OK OK GO);
  h_expect(x, MSG_WIRE ENV1);
  h_server(x, QUEUED);
  expect_sent(x, 0);
  h_close(x);
  H_CHECK(x, R(x, 1)->popped == 1);
  H_CHECK(x, R(x, 1)->status == SMTPUV_SEND_CANCELED);
  H_CHECK(x, R(x, 1)->error == SMTPUV_ECANCELED);
  /* nothing more is started */
  char *out;
  h_take_out(x, &out);
  H_CHECK(x, strstr(out, "MAIL") == NULL);
  free(out);
  h_server(x, OK OK GO);
  h_take_out(x, &out);
  H_CHECK(x, strstr(out, "MAIL") == NULL && strstr(out, "Subject") == NULL);
  free(out);
  h_server(x, "221 bye\r\n");
  H_CHECK(x, h_end_kind(x) != SMTPUV__CONV_RUN);
  for (int i = 2; i < 5; i++)
    H_CHECK(x, x->queued[i]); /* never given to the conversation */
}

static void test_close_after_first_result(void **state) {
  (void)state;
  h_run("close after the first result", sc_close_after_first, NULL,
        H_ALL_MODES);
}

/* Closed while a final reply is awaited: it is waited for, then QUIT. */
static void sc_close_waits_final(h *x, void *arg) {
  (void)arg;
  h_start(x);
  submit1(x);
  greet(x, "250-mx.test\r\n250 PIPELINING\r\n");
  h_expect(x, ENV1);
  h_server(x, OK OK GO);
  h_expect(x, MSG_WIRE);
  h_close(x);
  h_expect_none(x);
  H_CHECK(x, R(x, 0)->popped == 0);
  H_CHECK(x, h_end_kind(x) == SMTPUV__CONV_RUN);
  h_server(x, QUEUED);
  expect_sent(x, 0);
  h_expect(x, "QUIT\r\n");
  h_server(x, "221 bye\r\n");
  H_CHECK(x, h_end_kind(x) == SMTPUV__CONV_FINISH);
}

static void test_close_waits_for_final_reply(void **state) {
  (void)state;
  h_run("close waits for the final reply", sc_close_waits_final, NULL,
        H_ALL_MODES);
}

/* Closed after a refusal without PIPELINING: the RSET reply is waited
   for, then QUIT (RFC 5321 4.1.1.10), not a dropped connection. */
static void sc_close_after_refusal(h *x, void *arg) {
  (void)arg;
  h_start(x);
  const char *bad[] = {"bad@example.com"};
  h_submit(x, "a@example.com", bad, 1, msg, sizeof msg - 1);
  greet(x, "250-mx.test\r\n250 8BITMIME\r\n");
  h_expect(x, "MAIL FROM:<a@example.com>\r\n");
  h_server(x, OK);
  h_expect(x, "RCPT TO:<bad@example.com>\r\n");
  h_server(x, "550 5.1.1 no such user\r\n");
  H_CHECK(x, R(x, 0)->popped == 1 && R(x, 0)->error == SMTPUV_ENORCPT);
  h_expect(x, "RSET\r\n");
  h_close(x);
  h_expect_none(x); /* lock-step: the RSET reply first */
  H_CHECK(x, h_end_kind(x) == SMTPUV__CONV_RUN);
  h_server(x, OK);
  h_expect(x, "QUIT\r\n");
  h_server(x, "221 bye\r\n");
  H_CHECK(x, h_end_kind(x) == SMTPUV__CONV_FINISH);
}

static void test_close_after_refusal(void **state) {
  (void)state;
  h_run("close after a refusal", sc_close_after_refusal, NULL, H_ALL_MODES);
}

static void sc_close_idle(h *x, void *arg) {
  (void)arg;
  h_start(x);
  greet(x, "250-mx.test\r\n250 PIPELINING\r\n");
  h_expect_none(x);
  quit(x);
  /* the server closing after its 221 is the normal end */
  h_fail(x, SMTPUV_ECONNLOST, "closed");
  H_CHECK(x, h_end_kind(x) == SMTPUV__CONV_FINISH);
  H_CHECK(x, !x->failed);
}

static void test_close_idle(void **state) {
  (void)state;
  h_run("close an idle connection", sc_close_idle, NULL, H_ALL_MODES);
}

/* Closed during setup: ends at once, nothing is written but (at most)
   QUIT. */
static void sc_close_in_setup(h *x, void *arg) {
  int when = *(int *)arg;
  if (when == 0) {
    h_create(x);
    submit1(x);
    h_close(x);
    h_connected(x);
  } else {
    h_start(x);
    submit1(x);
    if (when == 2) {
      h_server(x, GREETING);
      h_expect(x, EHLO_CMD);
    }
    h_close(x);
  }
  H_CHECK(x, h_end_kind(x) != SMTPUV__CONV_RUN);
  char *out;
  h_take_out(x, &out);
  H_CHECK(x, out[0] == '\0' || !strcmp(out, "QUIT\r\n"));
  free(out);
  H_CHECK(x, x->queued[0]); /* never given: the client cancels it */
}

static void test_close_in_setup(void **state) {
  (void)state;
  for (int when = 0; when < 3; when++)
    h_run("close during setup", sc_close_in_setup, &when, H_ALL_MODES);
}

/* Closed in the middle of a streamed body that waits for its source. */
static long stuck_read(void *user, void *buf, size_t cap) {
  h_stream *s = user;
  if (s->pos >= 100)
    return SMTPUV_EAGAIN;
  size_t n = cap < 100 ? cap : 100;
  memset(buf, 'y', n);
  s->pos += n;
  return (long)n;
}

static void sc_close_mid_data(h *x, void *arg) {
  (void)arg;
  h_start(x);
  h_stream s;
  memset(&s, 0, sizeof s);
  smtpuv_envelope e = SMTPUV_ENVELOPE_INIT;
  e.sender = "a@example.com";
  e.recipients = one;
  e.nrecipients = 1;
  smtpuv_body b;
  smtpuv_body_init_stream(&b, stuck_read, NULL, &s, 0);
  h_submit_env(x, &e, &b);
  submit1(x);
  greet(x, "250-mx.test\r\n250 PIPELINING\r\n");
  h_expect(x, ENV1);
  h_server(x, OK OK GO);
  char y[101];
  memset(y, 'y', 100);
  y[100] = '\0';
  h_expect(x, y);
  H_CHECK(x, smtpuv__conv_body_blocked(x->cv));
  h_close(x);
  H_CHECK(x, R(x, 0)->popped == 1);
  H_CHECK(x, R(x, 0)->status == SMTPUV_SEND_CANCELED);
  H_CHECK(x, R(x, 0)->phase == SMTPUV_PHASE_DATA);
  H_CHECK(x, h_end_kind(x) != SMTPUV__CONV_RUN);
  H_CHECK(x, x->queued[1]);
  /* the body was never ended */
  char *out;
  h_take_out(x, &out);
  H_CHECK(x, strstr(out, ".\r\n") == NULL);
  free(out);
}

static void test_close_mid_data(void **state) {
  (void)state;
  h_run("close mid-data", sc_close_mid_data, NULL, H_ALL_MODES);
}

/* ---- bodies ------------------------------------------------------------------------ */

static void sc_stream_waits(h *x, void *arg) {
  (void)arg;
  h_start(x);
  static const char text[] =
      "Subject: s\r\n\r\nline one\nline two\r\n.x\r\n";
  h_stream s = {text, sizeof text - 1, 0, 7, 7, 0, 0, 0, 0};
  smtpuv_envelope e = SMTPUV_ENVELOPE_INIT;
  e.sender = "a@example.com";
  e.recipients = one;
  e.nrecipients = 1;
  smtpuv_body b;
  smtpuv_body_init_stream(&b, h_stream_read, h_stream_rewind, &s, 0);
  h_submit_env(x, &e, &b);
  greet(x, "250-mx.test\r\n250 PIPELINING\r\n");
  h_expect(x, ENV1);
  h_server(x, OK OK GO);
  /* the first piece, then the source has nothing yet */
  h_expect(x, "Subject");
  H_CHECK(x, s.waited > 0);
  H_CHECK(x, smtpuv__conv_body_blocked(x->cv));
  H_CHECK(x, R(x, 0)->popped == 0);
  h_body_ready(x); /* spurious: still nothing */
  h_expect_none(x);
  s.woken = 1;
  h_body_ready(x);
  H_CHECK(x, !smtpuv__conv_body_blocked(x->cv));
  h_expect(x, ": s\r\n\r\nline one\r\nline two\r\n..x\r\n.\r\n");
  h_server(x, QUEUED);
  expect_sent(x, 0);
}

static void test_stream_waits(void **state) {
  (void)state;
  h_run("stream waits", sc_stream_waits, NULL, H_ALL_MODES);
}

/* A source that fails at once is refused before MAIL (the first chunk is
   read before MAIL): nothing written, the connection goes on. */
static void sc_stream_error_early(h *x, void *arg) {
  int bdat = *(int *)arg;
  h_start(x);
  h_stream s;
  memset(&s, 0, sizeof s);
  s.fail = 1;
  smtpuv_envelope e = SMTPUV_ENVELOPE_INIT;
  e.sender = "a@example.com";
  e.recipients = one;
  e.nrecipients = 1;
  smtpuv_body b;
  smtpuv_body_init_stream(&b, h_stream_read, NULL, &s, 0);
  h_submit_env(x, &e, &b);
  submit1(x);
  greet(x, bdat ? "250-mx.test\r\n250-PIPELINING\r\n250 CHUNKING\r\n"
                : "250-mx.test\r\n250 PIPELINING\r\n");
  H_CHECK(x, R(x, 0)->popped == 1);
  H_CHECK(x, R(x, 0)->status == SMTPUV_SEND_FAILED);
  H_CHECK(x, R(x, 0)->error == SMTPUV_EBODY);
  H_CHECK(x, R(x, 0)->phase == SMTPUV_PHASE_MAIL);
  if (bdat) {
    h_expect(x, "MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\n"
                "BDAT 27 LAST\r\n" "Subject: t\r\n\r\nhello\r\n.dot\r\n");
    h_server(x, OK OK QUEUED);
  } else {
    h_expect(x, ENV1);
    h_server(x, OK OK GO);
    h_expect(x, MSG_WIRE);
    h_server(x, QUEUED);
  }
  expect_sent(x, 1);
  H_CHECK(x, h_end_kind(x) == SMTPUV__CONV_RUN);
}

/* 100 KiB of text, then a failure: after 354 (DATA) or between chunks
   (BDAT). */
static long late_failing_read(void *user, void *buf, size_t cap) {
  size_t *left = user;
  if (*left == 0)
    return -5;
  size_t n = cap < *left ? cap : *left;
  for (size_t i = 0; i < n; i++)
    ((char *)buf)[i] = (i % 64) == 63 ? '\n' : 'x';
  *left -= n;
  return (long)n;
}

static void sc_stream_error_late(h *x, void *arg) {
  int bdat = *(int *)arg;
  h_start(x);
  size_t left = 100 * 1024;
  smtpuv_envelope e = SMTPUV_ENVELOPE_INIT;
  e.sender = "a@example.com";
  e.recipients = one;
  e.nrecipients = 1;
  smtpuv_body b;
  smtpuv_body_init_stream(&b, late_failing_read, NULL, &left, 0);
  h_submit_env(x, &e, &b);
  submit1(x);
  h_serve(x, bdat ? "PIPELINING\r\nCHUNKING\r\n" : "PIPELINING\r\n", NULL,
          NULL);
  H_CHECK(x, R(x, 0)->popped == 1);
  H_CHECK(x, R(x, 0)->status == SMTPUV_SEND_FAILED);
  H_CHECK(x, R(x, 0)->error == SMTPUV_EBODY);
  H_CHECK(x, R(x, 0)->phase == SMTPUV_PHASE_DATA);
  if (!bdat) {
    /* DATA cannot be abandoned after 354: the connection is dropped before
       the final dot, the next message waits for a new one */
    H_CHECK(x, h_end_kind(x) == SMTPUV__CONV_ABORT);
    H_CHECK(x, !x->failed);
    H_CHECK(x, x->srv_messages == 0);
    H_CHECK(x, x->queued[1]);
    h_reconnect(x);
    h_serve(x, "PIPELINING\r\n", NULL, NULL);
  } else {
    /* BDAT: the chunks stop, RSET ends the transaction, the connection goes
       on */
    H_CHECK(x, h_srv_count(x, "LAST") == 1); /* the next message's only */
    H_CHECK(x, strstr(x->srv_tr, "C: RSET\nC: MAIL") != NULL);
  }
  expect_sent(x, 1);
}

static void test_stream_error(void **state) {
  (void)state;
  for (int bdat = 0; bdat < 2; bdat++) {
    h_run(bdat ? "stream fails at once, BDAT" : "stream fails at once",
          sc_stream_error_early, &bdat, H_ALL_MODES);
    h_run(bdat ? "stream fails later, BDAT" : "stream fails later",
          sc_stream_error_late, &bdat, H_WHOLE_ONLY);
  }
}

/* ---- the outcome-unknown rule and abort ------------------------------------------ */

/* The connection is lost with the final "." not (entirely) handed to the
   transport: FAILED, safe to retry; once handed (written or not): UNKNOWN,
   the server may have it. */
static void sc_lost_around_dot(h *x, void *arg) {
  int k = *(int *)arg; /* 0: all but the last byte handed, 1: all handed */
  h_start(x);
  submit1(x);
  greet(x, "250-mx.test\r\n250 PIPELINING\r\n");
  h_expect(x, ENV1);
  h_server(x, OK OK);
  size_t body = strlen(MSG_WIRE);
  h_hold(x, k ? body : body - 1, 0); /* handed, never acknowledged */
  h_server(x, GO);
  char *out;
  size_t n = h_take_out(x, &out);
  H_CHECK(x, n == (k ? body : body - 1));
  H_CHECK(x, memcmp(out, MSG_WIRE, n) == 0);
  free(out);
  H_CHECK(x, smtpuv__conv_unwritten(x->cv) == body);
  h_fail(x, SMTPUV_ECONNLOST, "connection reset by peer");
  H_CHECK(x, R(x, 0)->popped == 1);
  H_CHECK(x, R(x, 0)->error == SMTPUV_ECONNLOST);
  if (k) {
    H_CHECK(x, R(x, 0)->status == SMTPUV_SEND_UNKNOWN);
    H_CHECK(x, R(x, 0)->phase == SMTPUV_PHASE_END_OF_DATA);
  } else {
    H_CHECK(x, R(x, 0)->status == SMTPUV_SEND_FAILED);
    H_CHECK(x, R(x, 0)->phase == SMTPUV_PHASE_DATA);
  }
  H_CHECK(x, h_end_kind(x) == SMTPUV__CONV_ABORT);
  H_CHECK(x, x->end_err == SMTPUV_ECONNLOST);
}

static void test_outcome_unknown_after_dot(void **state) {
  (void)state;
  for (int k = 0; k < 2; k++)
    h_run(k ? "lost after the dot was handed" : "lost before the dot",
          sc_lost_around_dot, &k, H_ALL_MODES);
}

/* With BDAT and pipelining the whole message is handed before any reply:
   lost then, it is UNKNOWN with the phase of the reply awaited (MAIL). */
static void sc_lost_bdat(h *x, void *arg) {
  int k = *(int *)arg;
  static const char wire[] = "MAIL FROM:<a@example.com>\r\n"
                             "RCPT TO:<b@example.com>\r\n"
                             "BDAT 27 LAST\r\n"
                             "Subject: t\r\n\r\nhello\r\n.dot\r\n";
  h_start(x);
  h_server(x, GREETING);
  h_expect(x, EHLO_CMD);
  h_server(x, "250-mx.test\r\n250-PIPELINING\r\n250 CHUNKING\r\n");
  h_hold(x, k ? sizeof wire - 1 : sizeof wire - 2, 0);
  submit1(x);
  char *out;
  size_t n = h_take_out(x, &out);
  H_CHECK(x, n == (k ? sizeof wire - 1 : sizeof wire - 2));
  H_CHECK(x, memcmp(out, wire, n) == 0);
  free(out);
  h_fail(x, SMTPUV_EIO, "write failed");
  H_CHECK(x, R(x, 0)->popped == 1);
  H_CHECK(x, R(x, 0)->status ==
                 (k ? SMTPUV_SEND_UNKNOWN : SMTPUV_SEND_FAILED));
  H_CHECK(x, R(x, 0)->phase == SMTPUV_PHASE_MAIL);
  H_CHECK(x, R(x, 0)->error == SMTPUV_EIO);
}

static void test_outcome_unknown_bdat(void **state) {
  (void)state;
  for (int k = 0; k < 2; k++)
    h_run("BDAT lost", sc_lost_bdat, &k, H_ALL_MODES);
}

/* Abort: on the wire before its dot FAILED with ECANCELED; with its dot
   handed, UNKNOWN. Nothing more is written (no QUIT). */
static void sc_abort(h *x, void *arg) {
  (void)arg;
  h_start(x);
  submit1(x);
  submit1(x);
  submit1(x);
  greet(x, "250-mx.test\r\n250 PIPELINING\r\n");
  h_expect(x, ENV1);
  h_server(x, OK OK GO);
  h_expect(x, MSG_WIRE ENV1);
  h_abort(x);
  h_expect_none(x);
  H_CHECK(x, h_end_kind(x) == SMTPUV__CONV_ABORT);
  H_CHECK(x, x->end_err == SMTPUV_ECANCELED);
  H_CHECK(x, R(x, 0)->popped == 1 && R(x, 1)->popped == 1);
  H_CHECK(x, R(x, 0)->status == SMTPUV_SEND_UNKNOWN);
  H_CHECK(x, R(x, 0)->phase == SMTPUV_PHASE_END_OF_DATA);
  H_CHECK(x, R(x, 1)->status == SMTPUV_SEND_FAILED);
  H_CHECK(x, R(x, 1)->error == SMTPUV_ECANCELED);
  H_CHECK(x, R(x, 1)->phase == SMTPUV_PHASE_MAIL);
  H_CHECK(x, x->queued[2]); /* never given */
  /* every later event is ignored */
  h_server(x, QUEUED OK OK GO);
  h_close(x);
  h_advance(x, 100000);
  h_expect_none(x);
  H_CHECK(x, R(x, 0)->popped == 1);
}

static void test_abort(void **state) {
  (void)state;
  h_run("abort", sc_abort, NULL, H_ALL_MODES);
}

/* ---- trace and AUTH ------------------------------------------------------------------ */

static void sc_trace_redacts(h *x, void *arg) {
  int mech = *(int *)arg;
  smtpuv_auth *a;
  if (mech)
    assert_int_equal(smtpuv_auth_login_new(NULL, "user", "s3cr3t", &a),
                     0);
  else
    assert_int_equal(
        smtpuv_auth_plain_new(NULL, NULL, "user", "s3cr3t", &a), 0);
  x->cfg.auth = a;
  x->cfg.tls = SMTPUV_TLS_OPPORTUNISTIC;
  x->cfg.allow_plain_auth = 1;
  h_start(x);
  submit1(x);
  greet(x, "250-mx.test\r\n250-PIPELINING\r\n250 AUTH PLAIN LOGIN\r\n");
  if (mech) {
    h_expect(x, "AUTH LOGIN\r\n");
    h_server(x, "334 VXNlcm5hbWU6\r\n");
    h_expect(x, "dXNlcg==\r\n");
    h_server(x, "334 UGFzc3dvcmQ6\r\n");
    h_expect(x, "czNjcjN0\r\n");
  } else {
    h_expect(x, "AUTH PLAIN AHVzZXIAczNjcjN0\r\n");
  }
  h_server(x, "235 2.7.0 ok\r\n");
  h_expect(x, ENV1);
  h_server(x, OK OK GO);
  h_expect(x, MSG_WIRE);
  h_server(x, QUEUED);
  expect_sent(x, 0);
  const char *t = x->trace != NULL ? x->trace : "";
  if (mech) {
    H_CHECK(x, strstr(t, "C: AUTH LOGIN\r\n") != NULL);
    H_CHECK(x, strstr(t, "C: <redacted>\r\nS: 334 UGFzc3dvcmQ6") != NULL ||
                   x->mode != H_WHOLE);
    H_CHECK(x, strstr(t, "C: <redacted>\r\n") != NULL);
    H_CHECK(x, strstr(t, "dXNlcg==") == NULL);
    H_CHECK(x, strstr(t, "czNjcjN0") == NULL);
  } else {
    H_CHECK(x, strstr(t, "C: AUTH PLAIN <redacted>\r\n") != NULL);
    H_CHECK(x, strstr(t, "AHVzZXIAczNjcjN0") == NULL);
  }
  if (strstr(t, "C: MAIL FROM:<a@example.com>") == NULL)
    fail_msg("[%s] trace:\n%s", h_mode_name(x), t);
  H_CHECK(x, strstr(t, "B: Subject: t\r\n") != NULL);
  H_CHECK(x, strstr(t, "S: 250 ") != NULL || x->mode != H_WHOLE);
  H_CHECK(x, strstr(t, "S: 2") != NULL);
  h_end(x);
  smtpuv_auth_free(a);
  assert_int_equal(x->tm.live, 0);
}

static void test_trace_redacts_auth(void **state) {
  (void)state;
  for (int mech = 0; mech < 2; mech++)
    h_run(mech ? "trace redacts AUTH LOGIN" : "trace redacts AUTH PLAIN",
          sc_trace_redacts, &mech, H_ALL_MODES);
}

/* Credentials over plaintext are refused unless allowed; an AUTH refusal
   fails the setup; AUTH is never written twice. */
static void sc_auth_guards(h *x, void *arg) {
  int k = *(int *)arg;
  smtpuv_auth *a;
  assert_int_equal(smtpuv_auth_plain_new(NULL, NULL, "user", "s3cr3t", &a),
                   0);
  x->cfg.auth = a;
  x->cfg.tls = SMTPUV_TLS_OPPORTUNISTIC;
  x->cfg.allow_plain_auth = k != 0;
  h_start(x);
  submit1(x);
  submit1(x);
  greet(x, k == 3 ? "250-mx.test\r\n250 PIPELINING\r\n"
                  : "250-mx.test\r\n250-PIPELINING\r\n250 AUTH PLAIN\r\n");
  if (k == 0) {
    /* plaintext AUTH not allowed */
    h_expect(x, "QUIT\r\n");
    H_CHECK(x, x->failed && x->fail_error == SMTPUV_EPLAINTEXT);
    H_CHECK(x, x->fail_phase == SMTPUV_PHASE_AUTH);
  } else if (k == 1) {
    h_expect(x, "AUTH PLAIN AHVzZXIAczNjcjN0\r\n");
    h_server(x, "535 5.7.8 bad credentials\r\n");
    h_expect(x, "QUIT\r\n");
    H_CHECK(x, x->failed && x->fail_phase == SMTPUV_PHASE_AUTH);
    H_CHECK(x, x->fail_code == 535);
    H_CHECK(x, R(x, 0)->by_failure && R(x, 1)->by_failure);
  } else if (k == 2) {
    /* a second 235 (or any reply) after success: never a second AUTH */
    h_expect(x, "AUTH PLAIN AHVzZXIAczNjcjN0\r\n");
    h_server(x, "235 2.7.0 ok\r\n");
    h_expect(x, ENV1);
    h_server(x, OK OK GO);
    h_expect(x, MSG_WIRE ENV1);
    h_server(x, QUEUED OK OK GO);
    h_expect(x, MSG_WIRE);
    h_server(x, QUEUED);
    expect_sent(x, 0);
    expect_sent(x, 1);
    H_CHECK(x, strstr(x->all, "AUTH") == strstr(x->all, "AUTH PLAIN"));
    H_CHECK(x, strstr(strstr(x->all, "AUTH") + 4, "AUTH") == NULL);
  } else {
    /* credentials set, no AUTH offered */
    h_expect(x, "QUIT\r\n");
    H_CHECK(x, x->failed && x->fail_error == SMTPUV_EAUTHMECH);
  }
  if (k != 2) {
    H_CHECK(x, strstr(x->all, "MAIL") == NULL);
    h_server(x, "221 bye\r\n");
    H_CHECK(x, h_end_kind(x) == SMTPUV__CONV_FINISH);
  }
  h_end(x);
  smtpuv_auth_free(a);
}

static void test_auth_guards(void **state) {
  (void)state;
  static const char *const names[] = {
      "plaintext AUTH refused", "AUTH refused", "AUTH once",
      "AUTH not offered"};
  for (int k = 0; k < 4; k++)
    h_run(names[k], sc_auth_guards, &k, H_ALL_MODES);
}

/* ---- OAuth token arriving later ---------------------------------------------------- */

typedef struct tok {
  smtpuv_auth *auth;
  int asks;
} tok;

static void token_cb(smtpuv_auth *auth, int rejected, void *data) {
  tok *t = data;
  (void)rejected;
  t->auth = auth;
  t->asks++;
}

static void sc_async_token(h *x, void *arg) {
  (void)arg;
  tok t = {NULL, 0};
  smtpuv_auth *a;
  assert_int_equal(
      smtpuv_auth_xoauth2_new(NULL, "me@example.com", token_cb, &t, &a),
      0);
  x->cfg.auth = a;
  x->cfg.tls = SMTPUV_TLS_OPPORTUNISTIC;
  x->cfg.allow_plain_auth = 1;
  h_start(x);
  submit1(x);
  greet(x, "250-mx.test\r\n250-PIPELINING\r\n250 AUTH XOAUTH2\r\n");
  /* waiting for the token: nothing written, a deadline set */
  h_expect_none(x);
  H_CHECK(x, t.asks == 1);
  uint64_t at;
  H_CHECK(x, smtpuv__conv_deadline(x->cv, &at));
  H_CHECK(x, x->wakes == 0);
  h_advance(x, 100);
  assert_int_equal(smtpuv_auth_token_provide(t.auth, "tok123"), 0);
  H_CHECK(x, x->wakes == 1);
  h_drive(x);
  /* "user=me@example.com\1auth=Bearer tok123\1\1" */
  h_expect(x, "AUTH XOAUTH2 dXNlcj1tZUBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB0b2sx"
              "MjMBAQ==\r\n");
  h_server(x, "235 2.7.0 ok\r\n");
  h_expect(x, ENV1);
  h_server(x, OK OK GO);
  h_expect(x, MSG_WIRE);
  h_server(x, QUEUED);
  expect_sent(x, 0);
  H_CHECK(x, t.asks == 1);
  h_end(x);
  smtpuv_auth_free(a);
}

static void test_async_oauth_token(void **state) {
  (void)state;
  h_run("async OAuth token", sc_async_token, NULL, H_ALL_MODES);
}

/* The token never comes: the COMMAND deadline ends the wait. */
static void sc_token_never(h *x, void *arg) {
  (void)arg;
  tok t = {NULL, 0};
  smtpuv_auth *a;
  assert_int_equal(
      smtpuv_auth_xoauth2_new(NULL, "me@example.com", token_cb, &t, &a),
      0);
  x->cfg.auth = a;
  x->cfg.tls = SMTPUV_TLS_OPPORTUNISTIC;
  x->cfg.allow_plain_auth = 1;
  h_start(x);
  submit1(x);
  greet(x, "250-mx.test\r\n250-PIPELINING\r\n250 AUTH XOAUTH2\r\n");
  h_advance(x, 3000);
  H_CHECK(x, x->failed);
  H_CHECK(x, x->fail_error == SMTPUV_ETIMEDOUT);
  H_CHECK(x, x->fail_phase == SMTPUV_PHASE_AUTH);
  H_CHECK(x, h_end_kind(x) != SMTPUV__CONV_RUN);
  H_CHECK(x, strstr(x->all, "MAIL") == NULL);
  h_end(x);
  /* the request is answered even though nobody waits any more */
  assert_int_equal(smtpuv_auth_token_provide(t.auth, "late"), 0);
  smtpuv_auth_free(a);
}

static void test_oauth_token_never_comes(void **state) {
  (void)state;
  h_run("OAuth token never comes", sc_token_never, NULL, H_ALL_MODES);
}

/* A token given from inside the token callback: no wake, AUTH at once. */
static void sync_token_cb(smtpuv_auth *auth, int rejected, void *data) {
  tok *t = data;
  (void)rejected;
  t->asks++;
  assert_int_equal(smtpuv_auth_token_provide(auth, "tok123"), 0);
}

static void sc_sync_token(h *x, void *arg) {
  (void)arg;
  tok t = {NULL, 0};
  smtpuv_auth *a;
  assert_int_equal(smtpuv_auth_xoauth2_new(NULL, "me@example.com",
                                           sync_token_cb, &t, &a),
                   0);
  x->cfg.auth = a;
  x->cfg.tls = SMTPUV_TLS_OPPORTUNISTIC;
  x->cfg.allow_plain_auth = 1;
  h_start(x);
  submit1(x);
  greet(x, "250-mx.test\r\n250-PIPELINING\r\n250 AUTH XOAUTH2\r\n");
  h_expect(x, "AUTH XOAUTH2 dXNlcj1tZUBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB0b2sx"
              "MjMBAQ==\r\n");
  H_CHECK(x, x->wakes == 0); /* never from inside an event */
  h_server(x, "235 2.7.0 ok\r\n");
  h_expect(x, ENV1);
  h_end(x);
  smtpuv_auth_free(a);
}

static void test_oauth_token_synchronous(void **state) {
  (void)state;
  h_run("OAuth token at once", sc_sync_token, NULL, H_ALL_MODES);
}

static void xoauth2_line(char *out, size_t cap, const char *token) {
  char raw[200];
  int n = snprintf(raw, sizeof raw, "user=me@example.com\001auth=Bearer %s"
                   "\001\001", token);
  unsigned char b64[280];
  EVP_EncodeBlock(b64, (const unsigned char *)raw, n);
  snprintf(out, cap, "AUTH XOAUTH2 %s\r\n", b64);
}

/* The token is refused once: the authenticator asks for a fresh one
   (rejected = 1) and AUTH is tried once more; a second refusal ends it. */
static void sc_token_refresh(h *x, void *arg) {
  int twice = *(int *)arg;
  tok t = {NULL, 0};
  smtpuv_auth *a;
  assert_int_equal(
      smtpuv_auth_xoauth2_new(NULL, "me@example.com", token_cb, &t, &a), 0);
  x->cfg.auth = a;
  x->cfg.tls = SMTPUV_TLS_OPPORTUNISTIC;
  x->cfg.allow_plain_auth = 1;
  h_start(x);
  submit1(x);
  greet(x, "250-mx.test\r\n250-PIPELINING\r\n250 AUTH XOAUTH2\r\n");
  assert_int_equal(smtpuv_auth_token_provide(t.auth, "old"), 0);
  h_drive(x);
  char line[320];
  xoauth2_line(line, sizeof line, "old");
  h_expect(x, line);
  /* the XOAUTH2 error challenge, answered with an empty line */
  h_server(x, "334 eyJzdGF0dXMiOiI0MDEifQ==\r\n");
  h_expect(x, "\r\n");
  h_server(x, "535 5.7.8 token expired\r\n");
  H_CHECK(x, t.asks == 2);
  h_expect_none(x);
  H_CHECK(x, !x->failed);
  int wakes = x->wakes;
  assert_int_equal(smtpuv_auth_token_provide(t.auth, "new"), 0);
  H_CHECK(x, x->wakes == wakes + 1);
  h_drive(x);
  xoauth2_line(line, sizeof line, "new");
  h_expect(x, line);
  if (!twice) {
    h_server(x, "235 2.7.0 ok\r\n");
    h_expect(x, ENV1);
    h_server(x, OK OK GO);
    h_expect(x, MSG_WIRE);
    h_server(x, QUEUED);
    expect_sent(x, 0);
  } else {
    h_server(x, "535 5.7.8 still no\r\n");
    H_CHECK(x, t.asks == 2); /* one refresh only */
    h_expect(x, "QUIT\r\n");
    H_CHECK(x, x->failed && x->fail_phase == SMTPUV_PHASE_AUTH);
    H_CHECK(x, x->fail_code == 535);
    H_CHECK(x, R(x, 0)->by_failure);
  }
  H_CHECK(x, strstr(x->trace, "old") == NULL && strstr(x->trace, "new") == NULL);
  h_end(x);
  smtpuv_auth_free(a);
}

static void test_oauth_token_refresh(void **state) {
  (void)state;
  for (int twice = 0; twice < 2; twice++)
    h_run(twice ? "token refused twice" : "token refresh", sc_token_refresh,
          &twice, H_ALL_MODES);
}

/* ---- results ------------------------------------------------------------------------- */

/* #1 is refused locally while #0 waits for the reply to its ".": the
   driver reports each outcome when it is decided (#1 first); the client
   delivers callbacks in queue order. The connection goes on. */
static void sc_result_order(h *x, void *arg) {
  (void)arg;
  h_start(x);
  submit1(x);
  static const char eight[] = "Subject: x\r\n\r\ncaf\xc3\xa9\r\n";
  h_submit(x, "a@example.com", one, 1, eight, sizeof eight - 1);
  greet(x, "250-mx.test\r\n250 PIPELINING\r\n");
  h_expect(x, ENV1);
  h_server(x, OK OK GO);
  h_expect(x, MSG_WIRE);
  H_CHECK(x, R(x, 1)->popped == 1);
  H_CHECK(x, R(x, 1)->error == SMTPUV_E8BIT);
  H_CHECK(x, R(x, 0)->popped == 0);
  h_server(x, "250 2.0.0 Ok: late\r\n");
  expect_sent(x, 0);
  assert_string_equal(R(x, 0)->message, "250 2.0.0 Ok: late");
  H_CHECK(x, h_popped(x, 0) == 1 && h_popped(x, 1) == 0);
  submit1(x);
  h_expect(x, ENV1);
  h_server(x, OK OK GO);
  h_expect(x, MSG_WIRE);
  h_server(x, QUEUED);
  expect_sent(x, 2);
  H_CHECK(x, h_popped(x, 2) == 2);
}

static void test_result_order(void **state) {
  (void)state;
  h_run("result order", sc_result_order, NULL, H_ALL_MODES);
}

static void sc_reply_before_junk(h *x, void *arg) {
  (void)arg;
  h_start(x);
  submit1(x);
  greet(x, "250-mx.test\r\n250 PIPELINING\r\n");
  h_expect(x, ENV1);
  h_server(x, OK OK GO);
  h_expect(x, MSG_WIRE);
  h_server(x, QUEUED "xyz junk\r\n");
  /* the "250" that came with the junk counts */
  expect_sent(x, 0);
  H_CHECK(x, R(x, 0)->error == 0);
  H_CHECK(x, R(x, 0)->reply_code == 250);
  assert_string_equal(R(x, 0)->reply_text, "2.0.0 Ok: queued");
  /* then the connection is dropped: no QUIT after a violation */
  h_expect_none(x);
  H_CHECK(x, h_end_kind(x) == SMTPUV__CONV_ABORT);
  H_CHECK(x, x->end_err == SMTPUV_EPROTO);
}

static void test_reply_before_junk(void **state) {
  (void)state;
  h_run("reply before junk", sc_reply_before_junk, NULL, H_ALL_MODES);
}

/* A reply nobody asked for. */
static void sc_unexpected_reply(h *x, void *arg) {
  (void)arg;
  h_start(x);
  greet(x, "250-mx.test\r\n250 PIPELINING\r\n");
  h_server(x, OK);
  H_CHECK(x, h_end_kind(x) == SMTPUV__CONV_ABORT);
  submit1(x);
  H_CHECK(x, x->queued[0]);
}

static void test_unexpected_reply(void **state) {
  (void)state;
  h_run("unexpected reply", sc_unexpected_reply, NULL, H_ALL_MODES);
}

/* Without pipelining the RCPT is issued from inside the MAIL reply; when
   the same read also held a reply nobody asked for, the core refuses the
   RCPT (its error is sticky): the message must still come out exactly
   once (found by fuzz_conv: it was finished twice, a cycle in the list of
   finished messages). */
static void sc_junk_behind_mail_reply(h *x, void *arg) {
  (void)arg;
  h_start(x);
  submit1(x);
  greet(x, "250-mx.test\r\n250 8BITMIME\r\n");
  h_expect(x, "MAIL FROM:<a@example.com>\r\n");
  h_server(x, OK OK GO);
  H_CHECK(x, R(x, 0)->popped == 1);
  H_CHECK(x, R(x, 0)->status == SMTPUV_SEND_FAILED);
  H_CHECK(x, R(x, 0)->error == SMTPUV_EPROTO);
  H_CHECK(x, h_end_kind(x) == SMTPUV__CONV_ABORT);
  H_CHECK(x, x->end_err == SMTPUV_EPROTO);
  h_expect_none(x);
}

static void test_junk_behind_mail_reply(void **state) {
  (void)state;
  h_run("junk behind the MAIL reply", sc_junk_behind_mail_reply, NULL,
        H_WHOLE_ONLY);
}

/* ---- SIZE= and BODY= ---------------------------------------------------------------- */

static long size_param(const char *tr, int nth) {
  const char *p = tr;
  for (int i = 0; p != NULL && i <= nth; i++) {
    p = strstr(p, "C: MAIL");
    if (p != NULL && i < nth)
      p += 7;
  }
  if (p == NULL)
    return -2;
  const char *eol = strchr(p, '\n');
  const char *sz = strstr(p, " SIZE=");
  if (sz == NULL || (eol != NULL && sz > eol))
    return -1;
  return strtol(sz + 6, NULL, 10);
}

static const char lf[] = "Subject: t\n\nhello\n.dot\n"; /* 23, 4 LF */
static const char noend[] = "Subject: t\n\nhello";       /* 17, 2 LF */
static const char crlf[] = "Subject: t\r\n\r\nx\r\n";    /* 17 */

static void sc_size_counts_crlf(h *x, void *arg) {
  int bdat = *(int *)arg;
  h_start(x);
  h_submit(x, "a@example.com", one, 1, lf, sizeof lf - 1);
  h_submit(x, "a@example.com", one, 1, noend, sizeof noend - 1);
  h_submit(x, "a@example.com", one, 1, crlf, sizeof crlf - 1);
  h_serve(x, bdat ? "PIPELINING\r\nCHUNKING\r\nSIZE 1000000\r\n"
                  : "PIPELINING\r\nSIZE 1000000\r\n",
          NULL, NULL);
  for (int i = 0; i < 3; i++)
    expect_sent(x, i);
  H_CHECK(x, size_param(x->srv_tr, 0) == 27);
  H_CHECK(x, size_param(x->srv_tr, 1) == 21);
  H_CHECK(x, size_param(x->srv_tr, 2) == 17);
  H_CHECK(x, strstr(x->srv_tr, "B: 27\n") != NULL);
  H_CHECK(x, strstr(x->srv_tr, "B: 21\n") != NULL);
  H_CHECK(x, strstr(x->srv_tr, "B: 17\n") != NULL);
  H_CHECK(x, h_srv_count(x, bdat ? "C: BDAT" : "C: DATA") == 3);
  if (bdat)
    H_CHECK(x, strstr(x->all, "BDAT 27 LAST\r\nSubject: t\r\n\r\nhello\r\n"
                              ".dot\r\n") != NULL);
  else
    H_CHECK(x, strstr(x->all, "Subject: t\r\n\r\nhello\r\n..dot\r\n.\r\n"));
}

static void sc_no_size(h *x, void *arg) {
  (void)arg;
  h_start(x);
  h_submit(x, "a@example.com", one, 1, lf, sizeof lf - 1);
  h_serve(x, "PIPELINING\r\n", NULL, NULL);
  expect_sent(x, 0);
  H_CHECK(x, size_param(x->srv_tr, 0) == -1);
}

static void test_size_counts_crlf(void **state) {
  (void)state;
  for (int bdat = 0; bdat < 2; bdat++)
    h_run(bdat ? "SIZE counts CRLF, BDAT" : "SIZE counts CRLF",
          sc_size_counts_crlf, &bdat, H_ALL_MODES);
  h_run("no SIZE offered", sc_no_size, NULL, H_ALL_MODES);
}

typedef struct bin_case {
  const char *ehlo;
  int chunking;
  const char *mail; /* NULL: refused */
  const char *via;
} bin_case;

/* Binary content (NUL, a line over 998 octets) goes only as BINARYMIME
   with CHUNKING; otherwise it is refused before MAIL, nothing written. */
static void sc_binarymime(h *x, void *arg) {
  const bin_case *c = arg;
  static const char bin[] = "Subject: b\r\n\r\nbin\0ary\r\n";
  x->cfg.chunking = c->chunking;
  h_start(x);
  h_submit(x, "a@example.com", one, 1, bin, sizeof bin - 1);
  h_serve(x, c->ehlo, NULL, NULL);
  if (c->mail == NULL) {
    H_CHECK(x, R(x, 0)->popped == 1);
    H_CHECK(x, R(x, 0)->status == SMTPUV_SEND_FAILED);
    H_CHECK(x, R(x, 0)->error == SMTPUV_EBINARY);
    H_CHECK(x, R(x, 0)->phase == SMTPUV_PHASE_MAIL);
    H_CHECK(x, strstr(R(x, 0)->message, c->via) != NULL);
    H_CHECK(x, h_srv_count(x, "C: MAIL") == 0);
    return;
  }
  expect_sent(x, 0);
  if (strstr(x->srv_tr, c->mail) == NULL)
    fail_msg("[%s] no \"%s\" in\n%s", h_mode_name(x), c->mail, x->srv_tr);
  H_CHECK(x, strstr(x->srv_tr, c->via) != NULL);
  H_CHECK(x, x->srv_blen == sizeof bin - 1);
  H_CHECK(x, memcmp(x->srv_body, bin, sizeof bin - 1) == 0);
}

static void test_binarymime_only_when_offered(void **state) {
  (void)state;
  static const bin_case cases[] = {
      {"PIPELINING\r\nCHUNKING\r\nBINARYMIME\r\n8BITMIME\r\nSIZE 999\r\n", 1,
       "C: MAIL FROM:<a@example.com> SIZE=23 BODY=BINARYMIME\n",
       "C: BDAT 23 LAST"},
      {"PIPELINING\r\nCHUNKING\r\n8BITMIME\r\nSIZE 999\r\n", 1, NULL,
       "does not offer BINARYMIME"},
      {"PIPELINING\r\nCHUNKING\r\nBINARYMIME\r\n8BITMIME\r\nSIZE 999\r\n", 0,
       NULL, "switched off"},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++)
    h_run("BINARYMIME only when offered", sc_binarymime, (void *)&cases[k],
          H_ALL_MODES);
}

/* ---- large bodies and the high-water mark ------------------------------------------- */

static char *big_body;
static size_t big_len = 31457 * 100; /* whole CRLF-ended lines */

static void sc_large_bodies(h *x, void *arg) {
  int mode = *(int *)arg; /* DATA, BDAT, streamed DATA */
  h_start(x);
  h_stream s = {big_body, big_len, 0, 0, 0, 0, 0, 0, 0};
  smtpuv_envelope e = SMTPUV_ENVELOPE_INIT;
  e.sender = "a@example.com";
  e.recipients = one;
  e.nrecipients = 1;
  smtpuv_body b;
  if (mode == 2)
    smtpuv_body_init_stream(&b, h_stream_read, NULL, &s, big_len);
  else
    smtpuv_body_init_buffer(&b, big_body, big_len);
  h_submit_env(x, &e, &b);
  submit1(x); /* pipelined behind it */
  /* nothing is acknowledged: the body stops at the high-water mark */
  h_hold(x, SIZE_MAX, 0);
  h_serve(x, mode == 1 ? "PIPELINING\r\nCHUNKING\r\n" : "PIPELINING\r\n",
          NULL, NULL);
  size_t held = smtpuv__conv_unwritten(x->cv);
  H_CHECK(x, held > 0);
  H_CHECK(x, held < 1024 * 1024); /* far less than the 3 MB body */
  H_CHECK(x, x->alllen < 1024 * 1024);
  H_CHECK(x, R(x, 0)->popped == 0);
  uint64_t at;
  H_CHECK(x, smtpuv__conv_deadline(x->cv, &at)); /* DATA progress */
  /* every write lets more through */
  for (int guard = 0; guard < 100000 && R(x, 1)->popped == 0; guard++) {
    size_t before = x->alllen;
    h_write(x, SIZE_MAX);
    h_serve(x, NULL, NULL, NULL);
    if (x->alllen == before && smtpuv__conv_unwritten(x->cv) == 0)
      break;
    H_CHECK(x, smtpuv__conv_unwritten(x->cv) < 1024 * 1024);
  }
  h_write(x, SIZE_MAX);
  h_serve(x, NULL, NULL, NULL);
  expect_sent(x, 0);
  expect_sent(x, 1);
  char want[32];
  snprintf(want, sizeof want, "B: %zu\n", big_len);
  H_CHECK(x, strstr(x->srv_tr, want) != NULL);
  H_CHECK(x, x->srv_blen == sizeof msg - 1); /* the last one */
}

static void sc_large_body_exact(h *x, void *arg) {
  (void)arg;
  h_start(x);
  h_submit(x, "a@example.com", one, 1, big_body, big_len);
  h_serve(x, "PIPELINING\r\n", NULL, NULL);
  expect_sent(x, 0);
  H_CHECK(x, x->srv_blen == big_len);
  H_CHECK(x, memcmp(x->srv_body, big_body, big_len) == 0);
}

static void test_large_bodies(void **state) {
  (void)state;
  big_body = malloc(big_len);
  assert_non_null(big_body);
  for (size_t i = 0; i < big_len; i++)
    big_body[i] = i % 100 == 98   ? '\r'
                  : i % 100 == 99 ? '\n'
                                  : (char)('a' + i % 26);
  for (int mode = 0; mode < 3; mode++)
    h_run("large bodies", sc_large_bodies, &mode, H_WHOLE_ONLY);
  h_run("large body byte for byte", sc_large_body_exact, NULL, H_WHOLE_ONLY);
  free(big_body);
  big_body = NULL;
}

/* ---- many recipients, long replies ---------------------------------------------------- */

static int long_final_reply(h *x, const char *line, char *reply, size_t cap,
                            void *arg) {
  (void)x;
  (void)arg;
  if (line == NULL) {
    char a[201], b[201];
    memset(a, 'a', 200);
    a[200] = '\0';
    memset(b, 'b', 200);
    b[200] = '\0';
    snprintf(reply, cap, "250-2.0.0 %s\r\n250-%s\r\n250 2.0.0 end\r\n", a, b);
    return 1;
  }
  if (strstr(line, "RCPT TO:<r7@") != NULL) {
    snprintf(reply, cap, "550 5.1.1 no r7 here\r\n");
    return 1;
  }
  return 0;
}

static char addrs[12][32];
static const char *to12[12];

static void sc_many_recipients(h *x, void *arg) {
  (void)arg;
  h_start(x);
  h_submit(x, "a@example.com", to12, 12, msg, sizeof msg - 1);
  h_submit(x, "a@example.com", to12 + 2, 10, msg, sizeof msg - 1);
  h_serve(x, "PIPELINING\r\nENHANCEDSTATUSCODES\r\n", long_final_reply, NULL);
  char want[700], a[201], b[201];
  memset(a, 'a', 200);
  a[200] = '\0';
  memset(b, 'b', 200);
  b[200] = '\0';
  snprintf(want, sizeof want, "2.0.0 %s\n%s\n2.0.0 end", a, b);
  for (int m = 0; m < 2; m++) {
    const h_result *r = R(x, m);
    size_t n = m == 0 ? 12 : 10;
    expect_sent(x, m);
    H_CHECK(x, r->error == SMTPUV_ENORCPT);
    H_CHECK(x, r->nrcpts == n);
    H_CHECK(x, r->naccepted == n - 1);
    for (size_t i = 0; i < n; i++) {
      int k = (int)i + (m == 0 ? 0 : 2);
      H_CHECK(x, r->rcpt[i].accepted == (k != 7));
      assert_string_equal(r->rcpt[i].text,
                          k == 7 ? "5.1.1 no r7 here" : "2.0.0 Ok");
    }
    assert_string_equal(r->reply_text, want);
    H_CHECK(x, strncmp(r->message, "250 2.0.0 aaaa", 14) == 0);
    H_CHECK(x, strlen(r->message) == 4 + 206);
  }
}

static void test_many_recipients_long_reply(void **state) {
  (void)state;
  for (int i = 0; i < 12; i++) {
    snprintf(addrs[i], sizeof addrs[i], "r%d@example.com", i);
    to12[i] = addrs[i];
  }
  h_run("many recipients", sc_many_recipients, NULL, H_ALL_MODES);
}

/* ---- submitting when the conversation cannot take a message ---------------------------- */

static void sc_submit_refused(h *x, void *arg) {
  (void)arg;
  h_start(x);
  H_CHECK(x, !smtpuv__conv_can_take(x->cv)); /* setup */
  H_CHECK(x, smtpuv__conv_in_setup(x->cv));
  int i = h_submit_now(x, "a@example.com", one, 1, msg, sizeof msg - 1);
  H_CHECK(x, R(x, i)->popped == 1);
  H_CHECK(x, R(x, i)->status == SMTPUV_SEND_FAILED);
  H_CHECK(x, R(x, i)->error == SMTPUV_ESTATE);
  h_expect_none(x);
  greet(x, "250-mx.test\r\n250 PIPELINING\r\n");
  H_CHECK(x, !smtpuv__conv_in_setup(x->cv));
  H_CHECK(x, smtpuv__conv_can_take(x->cv));
  H_CHECK(x, smtpuv__conv_inflight(x->cv) == 0);
  submit1(x);
  H_CHECK(x, smtpuv__conv_inflight(x->cv) == 1);
  h_expect(x, ENV1);
}

static void test_submit_when_not_ready(void **state) {
  (void)state;
  h_run("submit when not ready", sc_submit_refused, NULL, H_ALL_MODES);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pipelined_sequence),
      cmocka_unit_test(test_no_pipelining),
      cmocka_unit_test(test_pipelining_off),
      cmocka_unit_test(test_rset_after_refusal),
      cmocka_unit_test(test_mail_refused),
      cmocka_unit_test(test_data_refused),
      cmocka_unit_test(test_require_all),
      cmocka_unit_test(test_partial_recipients_sent),
      cmocka_unit_test(test_helo_fallback),
      cmocka_unit_test(test_ehlo_4xx),
      cmocka_unit_test(test_local_refusals),
      cmocka_unit_test(test_extensions_used),
      cmocka_unit_test(test_reopen_after_idle_close),
      cmocka_unit_test(test_retry_on_reused_connection),
      cmocka_unit_test(test_no_retry_on_fresh_connection),
      cmocka_unit_test(test_unsolicited_421_then_reopen),
      cmocka_unit_test(test_421_to_mail),
      cmocka_unit_test(test_421_setup),
      cmocka_unit_test(test_greeting_refused),
      cmocka_unit_test(test_close_after_first_result),
      cmocka_unit_test(test_close_waits_for_final_reply),
      cmocka_unit_test(test_close_after_refusal),
      cmocka_unit_test(test_close_idle),
      cmocka_unit_test(test_close_in_setup),
      cmocka_unit_test(test_close_mid_data),
      cmocka_unit_test(test_stream_waits),
      cmocka_unit_test(test_stream_error),
      cmocka_unit_test(test_outcome_unknown_after_dot),
      cmocka_unit_test(test_outcome_unknown_bdat),
      cmocka_unit_test(test_abort),
      cmocka_unit_test(test_trace_redacts_auth),
      cmocka_unit_test(test_auth_guards),
      cmocka_unit_test(test_async_oauth_token),
      cmocka_unit_test(test_oauth_token_never_comes),
      cmocka_unit_test(test_oauth_token_synchronous),
      cmocka_unit_test(test_oauth_token_refresh),
      cmocka_unit_test(test_result_order),
      cmocka_unit_test(test_reply_before_junk),
      cmocka_unit_test(test_unexpected_reply),
      cmocka_unit_test(test_junk_behind_mail_reply),
      cmocka_unit_test(test_size_counts_crlf),
      cmocka_unit_test(test_binarymime_only_when_offered),
      cmocka_unit_test(test_large_bodies),
      cmocka_unit_test(test_many_recipients_long_reply),
      cmocka_unit_test(test_submit_when_not_ready),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

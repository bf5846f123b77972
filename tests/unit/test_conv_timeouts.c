/* SPDX-License-Identifier: MIT */
/* Which timeout applies when, on the fake clock of the harness (conv.h,
 * "Timeout rule"): COMMAND and FINAL are deadlines for a whole reply that
 * trickling bytes never extend (a greeting trickled one byte per 100 ms
 * with a 500 ms COMMAND timeout fails at 500 ms in phase GREETING), a
 * pipelined reply's deadline starts when it becomes the one awaited, DATA
 * is the progress of the body write, the TLS handshake has one COMMAND
 * deadline, an idle connection QUITs after IDLE, QUIT waits at most
 * min(COMMAND, 10 s), 0 is no deadline, and an early timer is ignored. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "conv_harness.h"

#define GREETING "220 mx.test ESMTP\r\n"
#define EHLO_CMD "EHLO client.test\r\n"
#define EHLO_PIPE "250-mx.test\r\n250 PIPELINING\r\n"
#define ENV1 "MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n"
#define OK "250 2.0.0 Ok\r\n"
#define GO "354 go ahead\r\n"
#define QUEUED "250 2.0.0 Ok: queued\r\n"

static const char msg[] = "Subject: t\r\n\r\nhello\r\n";
static const char *one[] = {"b@example.com"};

static uint64_t deadline(h *x) {
  uint64_t at;
  if (!smtpuv__conv_deadline(x->cv, &at))
    return UINT64_MAX;
  return at;
}

static int submit1(h *x) {
  return h_submit(x, "a@example.com", one, 1, msg, sizeof msg - 1);
}

/* ---- the greeting ------------------------------------------------------------------ */

static const char slow[] =
    "220 mx.test ESMTP a greeting that is sent one byte at a time\r\n";

static void sc_greeting_trickle(h *x, void *arg) {
  (void)arg;
  x->cfg.timeouts[SMTPUV_TIMEOUT_COMMAND] = 500;
  h_start(x);
  submit1(x);
  size_t fed = 0;
  while (h_end_kind(x) == SMTPUV__CONV_RUN && fed < sizeof slow - 1) {
    /* the deadline is the one set when the connection opened */
    if (deadline(x) != 500)
      fail_msg("after %zu bytes at %llu ms: deadline %llu", fed,
               (unsigned long long)x->now, (unsigned long long)deadline(x));
    h_servern(x, slow + fed, 1);
    fed++;
    h_advance(x, 100);
  }
  H_CHECK(x, fed == 5); /* at 0, 100, 200, 300 and 400 ms */
  H_CHECK(x, x->now == 500);
  H_CHECK(x, h_end_kind(x) == SMTPUV__CONV_ABORT);
  H_CHECK(x, x->end_err == SMTPUV_ETIMEDOUT);
  H_CHECK(x, x->failed);
  H_CHECK(x, x->fail_error == SMTPUV_ETIMEDOUT);
  H_CHECK(x, x->fail_phase == SMTPUV_PHASE_GREETING);
  H_CHECK(x, x->res[0].by_failure && x->res[0].error == SMTPUV_ETIMEDOUT);
  H_CHECK(x, x->res[0].phase == SMTPUV_PHASE_GREETING);
  H_CHECK(x, x->alllen == 0); /* nothing written */
}

static void test_greeting_trickle_deadline(void **state) {
  (void)state;
  h_run("greeting trickled", sc_greeting_trickle, NULL, H_WHOLE_ONLY);
}

/* A silent server: exactly at the deadline, not before. */
static void sc_silent_greeting(h *x, void *arg) {
  (void)arg;
  x->cfg.timeouts[SMTPUV_TIMEOUT_COMMAND] = 500;
  h_start(x);
  H_CHECK(x, deadline(x) == 500);
  h_timer_now(x); /* early: ignored */
  h_advance(x, 499);
  H_CHECK(x, h_end_kind(x) == SMTPUV__CONV_RUN);
  h_advance(x, 1);
  H_CHECK(x, h_end_kind(x) == SMTPUV__CONV_ABORT);
  H_CHECK(x, x->fail_error == SMTPUV_ETIMEDOUT);
  H_CHECK(x, x->fail_phase == SMTPUV_PHASE_GREETING);
}

static void test_silent_greeting(void **state) {
  (void)state;
  h_run("silent greeting", sc_silent_greeting, NULL, H_WHOLE_ONLY);
}

/* ---- command replies ----------------------------------------------------------------- */

static const char slow_ehlo[] =
    "250-mx.test says hello to you, slowly\r\n250 PIPELINING\r\n";

static void sc_reply_trickle(h *x, void *arg) {
  (void)arg;
  x->cfg.timeouts[SMTPUV_TIMEOUT_COMMAND] = 500;
  h_start(x);
  h_advance(x, 200);
  h_server(x, GREETING);
  h_expect(x, EHLO_CMD);
  /* EHLO was written at 200 ms: its reply is due by 700 ms */
  H_CHECK(x, deadline(x) == 700);
  size_t fed = 0;
  while (h_end_kind(x) == SMTPUV__CONV_RUN && fed < sizeof slow_ehlo - 1) {
    H_CHECK(x, deadline(x) == 700); /* never extended */
    h_servern(x, slow_ehlo + fed, 1);
    fed++;
    h_advance(x, 100);
  }
  H_CHECK(x, fed == 5);
  H_CHECK(x, x->now == 700);
  H_CHECK(x, x->fail_error == SMTPUV_ETIMEDOUT);
  H_CHECK(x, x->fail_phase == SMTPUV_PHASE_EHLO);
  H_CHECK(x, h_end_kind(x) == SMTPUV__CONV_ABORT);
}

static void test_reply_trickle_deadline(void **state) {
  (void)state;
  h_run("reply trickled", sc_reply_trickle, NULL, H_WHOLE_ONLY);
}

/* The deadline starts when the command is written, not when it is handed
   to the transport. */
static void sc_deadline_from_written(h *x, void *arg) {
  (void)arg;
  x->cfg.timeouts[SMTPUV_TIMEOUT_COMMAND] = 500;
  h_start(x);
  h_hold(x, SIZE_MAX, 0);
  h_server(x, GREETING);
  h_expect(x, EHLO_CMD);
  h_advance(x, 300); /* the greeting's deadline is gone */
  H_CHECK(x, h_end_kind(x) == SMTPUV__CONV_RUN);
  h_write(x, SIZE_MAX); /* written at 300 ms */
  H_CHECK(x, deadline(x) == 800);
}

static void test_deadline_from_written(void **state) {
  (void)state;
  h_run("deadline from written", sc_deadline_from_written, NULL,
        H_WHOLE_ONLY);
}

/* Pipelined replies: each deadline starts when the reply before it came. */
static void sc_pipelined_deadlines(h *x, void *arg) {
  (void)arg;
  x->cfg.timeouts[SMTPUV_TIMEOUT_COMMAND] = 500;
  h_start(x);
  h_server(x, GREETING);
  h_server(x, EHLO_PIPE);
  h_advance(x, 100);
  submit1(x); /* written at 100 ms */
  h_expect(x, EHLO_CMD ENV1);
  H_CHECK(x, deadline(x) == 600);
  h_advance(x, 400);
  h_server(x, OK); /* MAIL at 500 ms: RCPT's reply due by 1000 */
  H_CHECK(x, deadline(x) == 1000);
  h_advance(x, 400);
  h_server(x, OK); /* RCPT at 900 ms */
  H_CHECK(x, deadline(x) == 1400);
  h_advance(x, 499);
  H_CHECK(x, x->res[0].popped == 0);
  h_advance(x, 1);
  H_CHECK(x, x->res[0].popped == 1);
  H_CHECK(x, x->res[0].status == SMTPUV_SEND_FAILED);
  H_CHECK(x, x->res[0].error == SMTPUV_ETIMEDOUT);
  H_CHECK(x, x->res[0].phase == SMTPUV_PHASE_DATA);
  H_CHECK(x, h_end_kind(x) == SMTPUV__CONV_ABORT);
}

static void test_pipelined_reply_deadlines(void **state) {
  (void)state;
  h_run("pipelined deadlines", sc_pipelined_deadlines, NULL, H_WHOLE_ONLY);
}

/* ---- the body ------------------------------------------------------------------------- */

static char *big;
static const size_t big_len = 1024 * 1024;

static void sc_data_progress(h *x, void *arg) {
  (void)arg;
  x->cfg.timeouts[SMTPUV_TIMEOUT_COMMAND] = 500;
  x->cfg.timeouts[SMTPUV_TIMEOUT_DATA] = 1000;
  h_start(x);
  h_server(x, GREETING);
  h_server(x, EHLO_PIPE);
  h_submit(x, "a@example.com", one, 1, big, big_len);
  h_hold(x, SIZE_MAX, 0); /* handed, never acknowledged */
  h_write(x, SIZE_MAX);
  h_server(x, OK OK GO);
  uint64_t t0 = x->now;
  H_CHECK(x, deadline(x) == t0 + 1000);
  /* a slow but moving write keeps the body alive far beyond DATA */
  for (int i = 0; i < 5; i++) {
    h_advance(x, 900);
    H_CHECK(x, h_end_kind(x) == SMTPUV__CONV_RUN);
    h_write(x, 1000);
    H_CHECK(x, deadline(x) == x->now + 1000);
  }
  H_CHECK(x, x->now - t0 == 4500);
  h_advance(x, 999);
  H_CHECK(x, x->res[0].popped == 0);
  h_advance(x, 1);
  H_CHECK(x, x->res[0].popped == 1);
  H_CHECK(x, x->res[0].status == SMTPUV_SEND_FAILED);
  H_CHECK(x, x->res[0].error == SMTPUV_ETIMEDOUT);
  H_CHECK(x, x->res[0].phase == SMTPUV_PHASE_DATA);
  H_CHECK(x, h_end_kind(x) == SMTPUV__CONV_ABORT);
}

static void test_data_progress_resets_on_written(void **state) {
  (void)state;
  big = malloc(big_len);
  assert_non_null(big);
  for (size_t i = 0; i < big_len; i++)
    big[i] = i % 100 == 98 ? '\r' : i % 100 == 99 ? '\n' : 'x';
  h_run("DATA progress", sc_data_progress, NULL, H_WHOLE_ONLY);
  free(big);
}

/* A streamed body waiting for its source: DATA applies too. */
static void sc_stream_stall(h *x, void *arg) {
  (void)arg;
  x->cfg.timeouts[SMTPUV_TIMEOUT_DATA] = 1000;
  h_start(x);
  h_server(x, GREETING);
  h_server(x, EHLO_PIPE);
  static const char text[] = "Subject: s\r\n\r\nbody\r\n";
  h_stream s = {text, sizeof text - 1, 0, 0, 5, 0, 0, 0, 0};
  smtpuv_envelope e = SMTPUV_ENVELOPE_INIT;
  e.sender = "a@example.com";
  e.recipients = one;
  e.nrecipients = 1;
  smtpuv_body b;
  smtpuv_body_init_stream(&b, h_stream_read, NULL, &s, 0);
  h_submit_env(x, &e, &b);
  h_server(x, OK OK GO);
  H_CHECK(x, smtpuv__conv_body_blocked(x->cv));
  uint64_t t0 = x->now;
  H_CHECK(x, deadline(x) == t0 + 1000);
  h_advance(x, 1000);
  H_CHECK(x, x->res[0].popped == 1);
  H_CHECK(x, x->res[0].error == SMTPUV_ETIMEDOUT);
  H_CHECK(x, x->res[0].phase == SMTPUV_PHASE_DATA);
}

static void test_stream_stall(void **state) {
  (void)state;
  h_run("stream stalls", sc_stream_stall, NULL, H_WHOLE_ONLY);
}

/* FINAL: from the "." written; the outcome is then unknown. */
static void sc_final(h *x, void *arg) {
  (void)arg;
  x->cfg.timeouts[SMTPUV_TIMEOUT_COMMAND] = 500;
  x->cfg.timeouts[SMTPUV_TIMEOUT_FINAL] = 20000;
  h_start(x);
  h_server(x, GREETING);
  h_server(x, EHLO_PIPE);
  submit1(x);
  h_server(x, OK OK GO);
  uint64_t t0 = x->now;
  H_CHECK(x, deadline(x) == t0 + 20000);
  h_advance(x, 19999);
  H_CHECK(x, x->res[0].popped == 0);
  h_server(x, "250 2.0.0 Ok: que"); /* trickling does not help */
  H_CHECK(x, deadline(x) == t0 + 20000);
  h_advance(x, 1);
  H_CHECK(x, x->res[0].popped == 1);
  H_CHECK(x, x->res[0].status == SMTPUV_SEND_UNKNOWN);
  H_CHECK(x, x->res[0].error == SMTPUV_ETIMEDOUT);
  H_CHECK(x, x->res[0].phase == SMTPUV_PHASE_END_OF_DATA);
}

static void test_final_deadline(void **state) {
  (void)state;
  h_run("FINAL", sc_final, NULL, H_WHOLE_ONLY);
}

/* ---- TLS, idle, QUIT, none ------------------------------------------------------------ */

static void sc_tls_handshake(h *x, void *arg) {
  (void)arg;
  x->cfg.tls = SMTPUV_TLS_REQUIRED;
  x->cfg.timeouts[SMTPUV_TIMEOUT_COMMAND] = 500;
  h_start(x);
  submit1(x);
  h_server(x, GREETING);
  h_server(x, "250-mx.test\r\n250 STARTTLS\r\n");
  h_expect(x, EHLO_CMD "STARTTLS\r\n");
  h_advance(x, 100);
  h_server(x, "220 2.0.0 go ahead\r\n");
  H_CHECK(x, x->tls_wanted);
  H_CHECK(x, deadline(x) == 600);
  h_advance(x, 500);
  H_CHECK(x, h_end_kind(x) == SMTPUV__CONV_ABORT);
  H_CHECK(x, x->fail_error == SMTPUV_ETIMEDOUT);
  H_CHECK(x, x->fail_phase == SMTPUV_PHASE_TLS);
  H_CHECK(x, x->res[0].by_failure);
}

static void test_tls_handshake_deadline(void **state) {
  (void)state;
  h_run("TLS handshake", sc_tls_handshake, NULL, H_WHOLE_ONLY);
}

static void sc_idle(h *x, void *arg) {
  unsigned idle = *(unsigned *)arg;
  x->cfg.timeouts[SMTPUV_TIMEOUT_IDLE] = idle;
  h_start(x);
  h_server(x, GREETING);
  h_server(x, EHLO_PIPE);
  submit1(x);
  h_server(x, OK OK GO);
  h_server(x, QUEUED);
  H_CHECK(x, x->res[0].status == SMTPUV_SEND_SENT);
  h_expect(x, EHLO_CMD ENV1 "Subject: t\r\n\r\nhello\r\n.\r\n");
  if (idle == 0) {
    H_CHECK(x, deadline(x) == UINT64_MAX);
    h_advance(x, 3600000);
    h_expect_none(x);
    H_CHECK(x, h_end_kind(x) == SMTPUV__CONV_RUN);
    return;
  }
  H_CHECK(x, deadline(x) == x->now + idle);
  h_advance(x, idle - 1);
  h_expect_none(x);
  h_advance(x, 1);
  /* nothing else queued: the idle connection QUITs */
  h_expect(x, "QUIT\r\n");
  H_CHECK(x, strstr(x->trace, "idle") != NULL);
  h_server(x, "221 2.0.0 bye\r\n");
  H_CHECK(x, h_end_kind(x) == SMTPUV__CONV_FINISH);
}

static void test_idle_timeout_quits(void **state) {
  (void)state;
  unsigned v[] = {50, 0};
  for (int i = 0; i < 2; i++)
    h_run("idle", sc_idle, &v[i], H_ALL_MODES);
}

/* A message submitted to an idle connection restarts the clock. */
static void sc_idle_reset(h *x, void *arg) {
  (void)arg;
  x->cfg.timeouts[SMTPUV_TIMEOUT_IDLE] = 1000;
  h_start(x);
  h_server(x, GREETING);
  h_server(x, EHLO_PIPE);
  h_expect(x, EHLO_CMD);
  h_advance(x, 900);
  submit1(x);
  h_expect(x, ENV1);
  h_advance(x, 200);
  h_expect_none(x);
  H_CHECK(x, h_end_kind(x) == SMTPUV__CONV_RUN);
}

static void test_idle_reset_by_message(void **state) {
  (void)state;
  h_run("idle reset", sc_idle_reset, NULL, H_WHOLE_ONLY);
}

static void sc_quit_wait(h *x, void *arg) {
  unsigned cmd = *(unsigned *)arg;
  x->cfg.timeouts[SMTPUV_TIMEOUT_COMMAND] = cmd;
  h_start(x);
  h_server(x, GREETING);
  h_server(x, EHLO_PIPE);
  h_expect(x, EHLO_CMD);
  h_advance(x, 1000);
  h_close(x);
  h_expect(x, "QUIT\r\n");
  uint64_t want = 1000 + (cmd == 0 || cmd > 10000 ? 10000 : cmd);
  H_CHECK(x, deadline(x) == want);
  h_advance(x, want - 1000 - 1);
  H_CHECK(x, h_end_kind(x) == SMTPUV__CONV_RUN);
  h_advance(x, 1);
  H_CHECK(x, h_end_kind(x) != SMTPUV__CONV_RUN);
  H_CHECK(x, !x->failed);
}

static void test_quit_waits_bounded(void **state) {
  (void)state;
  unsigned v[] = {3000, 30000, 0};
  for (int i = 0; i < 3; i++)
    h_run("QUIT wait", sc_quit_wait, &v[i], H_WHOLE_ONLY);
}

static void sc_no_deadline(h *x, void *arg) {
  (void)arg;
  x->cfg.timeouts[SMTPUV_TIMEOUT_COMMAND] = 0;
  h_start(x);
  H_CHECK(x, deadline(x) == UINT64_MAX);
  h_advance(x, 3600000);
  h_timer_now(x); /* nothing is due: ignored */
  H_CHECK(x, h_end_kind(x) == SMTPUV__CONV_RUN);
  h_server(x, GREETING);
  h_expect(x, EHLO_CMD);
  H_CHECK(x, deadline(x) == UINT64_MAX);
}

static void test_zero_is_no_deadline(void **state) {
  (void)state;
  h_run("no deadline", sc_no_deadline, NULL, H_WHOLE_ONLY);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_greeting_trickle_deadline),
      cmocka_unit_test(test_silent_greeting),
      cmocka_unit_test(test_reply_trickle_deadline),
      cmocka_unit_test(test_deadline_from_written),
      cmocka_unit_test(test_pipelined_reply_deadlines),
      cmocka_unit_test(test_data_progress_resets_on_written),
      cmocka_unit_test(test_stream_stall),
      cmocka_unit_test(test_final_deadline),
      cmocka_unit_test(test_tls_handshake_deadline),
      cmocka_unit_test(test_idle_timeout_quits),
      cmocka_unit_test(test_idle_reset_by_message),
      cmocka_unit_test(test_quit_waits_bounded),
      cmocka_unit_test(test_zero_is_no_deadline),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

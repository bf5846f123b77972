/* SPDX-License-Identifier: MIT */
/* The retry policy's pure functions (src/conv/retry.c) on a fake clock:
 * which outcomes are temporary, the backoff and its jitter, the limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "conv/retry.h"

static smtpuv__msg *make(void) {
  static const char *to[] = {"b@example.com", "c@example.com"};
  smtpuv_envelope e = SMTPUV_ENVELOPE_INIT;
  e.sender = "a@example.com";
  e.recipients = to;
  e.nrecipients = 2;
  smtpuv_body b;
  smtpuv_body_init_buffer(&b, "x\r\n", 3);
  smtpuv__msg *m;
  assert_int_equal(smtpuv__msg_new(smtpuv_mem_default(), &e, &b, &m), 0);
  return m;
}

static void decide(smtpuv__msg *m, smtpuv_send_status st, int err) {
  m->decided = 0;
  smtpuv__msg_decide(smtpuv_mem_default(), m, st, err, SMTPUV_PHASE_MAIL, NULL,
                     "why");
}

static void test_temporary(void **state) {
  (void)state;
  smtpuv__msg *m = make();
  static const struct {
    smtpuv_send_status st;
    int err, temporary;
  } cases[] = {
      {SMTPUV_SEND_FAILED, SMTPUV_ETEMPFAIL, 1},
      {SMTPUV_SEND_FAILED, SMTPUV_ESHUTDOWN, 1},
      {SMTPUV_SEND_FAILED, SMTPUV_ECONNECT, 1},
      {SMTPUV_SEND_FAILED, SMTPUV_ERESOLVE, 1},
      {SMTPUV_SEND_FAILED, SMTPUV_ECONNLOST, 1},
      {SMTPUV_SEND_FAILED, SMTPUV_ETIMEDOUT, 1},
      {SMTPUV_SEND_FAILED, SMTPUV_EIO, 1},
      {SMTPUV_SEND_FAILED, SMTPUV_EPERMFAIL, 0},
      {SMTPUV_SEND_FAILED, SMTPUV_EAUTH, 0},
      {SMTPUV_SEND_FAILED, SMTPUV_ECERT, 0},
      {SMTPUV_SEND_FAILED, SMTPUV_ETLS, 0},
      {SMTPUV_SEND_FAILED, SMTPUV_E8BIT, 0},
      {SMTPUV_SEND_FAILED, SMTPUV_ECANCELED, 0},
      {SMTPUV_SEND_UNKNOWN, SMTPUV_ECONNLOST, 0},
      {SMTPUV_SEND_CANCELED, SMTPUV_ECANCELED, 0},
      {SMTPUV_SEND_SENT, SMTPUV_ENORCPT, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    decide(m, cases[i].st, cases[i].err);
    if (smtpuv__retry_temporary(m) != cases[i].temporary)
      fail_msg("case %zu: %s", i, smtpuv_err_name(cases[i].err));
  }
  /* every recipient refused: temporary only when every code is 4xx */
  m->rcpts[0].code = 451;
  m->rcpts[1].code = 452;
  decide(m, SMTPUV_SEND_FAILED, SMTPUV_ENORCPT);
  assert_true(smtpuv__retry_temporary(m));
  m->rcpts[1].code = 550;
  assert_false(smtpuv__retry_temporary(m));
  /* undecided: nothing to judge */
  m->decided = 0;
  assert_false(smtpuv__retry_temporary(m));
  smtpuv__msg_free(smtpuv_mem_default(), m);
}

static void test_delay(void **state) {
  (void)state;
  smtpuv__retry_policy p = {5, 1000, 8000, 0};
  /* no jitter: the lower half; full jitter: the whole delay */
  assert_int_equal(smtpuv__retry_delay(&p, 2, 0), 500);
  assert_int_equal(smtpuv__retry_delay(&p, 2, 65535), 1000);
  assert_int_equal(smtpuv__retry_delay(&p, 3, 65535), 2000);
  assert_int_equal(smtpuv__retry_delay(&p, 4, 65535), 4000);
  assert_int_equal(smtpuv__retry_delay(&p, 5, 65535), 8000);
  assert_int_equal(smtpuv__retry_delay(&p, 9, 65535), 8000); /* capped */
  assert_int_equal(smtpuv__retry_delay(&p, 40, 0), 4000);    /* no overflow */
  uint64_t mid = smtpuv__retry_delay(&p, 3, 32768);
  assert_true(mid > 1000 && mid < 2000);
}

static void test_when(void **state) {
  (void)state;
  smtpuv__msg *m = make();
  smtpuv__retry_policy p = {3, 100, 1000, 0};
  uint64_t at;
  decide(m, SMTPUV_SEND_FAILED, SMTPUV_ETEMPFAIL);
  m->attempts = 1;
  m->first_try = 10000;
  assert_true(smtpuv__retry_when(&p, m, 10050, 65535, &at));
  assert_int_equal(at, 10150);
  m->attempts = 2;
  assert_true(smtpuv__retry_when(&p, m, 10200, 0, &at));
  assert_int_equal(at, 10300); /* 200 ms, no jitter: 100 */
  m->attempts = 3; /* the limit */
  assert_false(smtpuv__retry_when(&p, m, 10400, 0, &at));
  /* off */
  smtpuv__retry_policy off = {1, 100, 100, 0};
  m->attempts = 1;
  assert_false(smtpuv__retry_when(&off, m, 10400, 0, &at));
  /* the deadline: the next attempt would come too late */
  smtpuv__retry_policy dl = {5, 100, 1000, 500};
  assert_true(smtpuv__retry_when(&dl, m, 10300, 65535, &at));
  assert_false(smtpuv__retry_when(&dl, m, 10450, 65535, &at));
  /* permanent */
  decide(m, SMTPUV_SEND_FAILED, SMTPUV_EPERMFAIL);
  assert_false(smtpuv__retry_when(&p, m, 10000, 0, &at));
  smtpuv__msg_free(smtpuv_mem_default(), m);

  /* a stream without rewind is never retried */
  static const char *to[] = {"b@example.com"};
  smtpuv_envelope e = SMTPUV_ENVELOPE_INIT;
  e.sender = "a@example.com";
  e.recipients = to;
  e.nrecipients = 1;
  smtpuv_body b;
  smtpuv_body_init_stream(&b, (smtpuv_body_read_cb)1, NULL, NULL, 0);
  assert_int_equal(smtpuv__msg_new(smtpuv_mem_default(), &e, &b, &m), 0);
  decide(m, SMTPUV_SEND_FAILED, SMTPUV_ECONNLOST);
  m->attempts = 1;
  assert_false(smtpuv__retry_when(&p, m, 0, 0, &at));
  smtpuv__msg_free(smtpuv_mem_default(), m);
}

static void test_attempt_log(void **state) {
  (void)state;
  smtpuv__msg *m = make();
  m->attempts = 1;
  decide(m, SMTPUV_SEND_FAILED, SMTPUV_ETEMPFAIL);
  assert_int_equal(smtpuv__msg_log_attempt(smtpuv_mem_default(), m), 0);
  m->attempts = 2;
  assert_int_equal(smtpuv__msg_log_attempt(smtpuv_mem_default(), m), 0);
  assert_string_equal(m->attempt_log, "attempt 1: why\nattempt 2: why");
  smtpuv_send_result r;
  smtpuv_rcpt_result rr[2];
  smtpuv__msg_result(m, &r, rr);
  assert_string_equal(r.attempt_log, m->attempt_log);
  smtpuv_send_result *copy;
  assert_int_equal(smtpuv_send_result_dup(NULL, &r, &copy), 0);
  assert_string_equal(copy->attempt_log, m->attempt_log);
  assert_ptr_not_equal(copy->attempt_log, m->attempt_log);
  smtpuv_send_result_free(copy);
  /* an older, shorter result has no attempt_log: not read */
  r.struct_size = offsetof(smtpuv_send_result, attempt_log);
  assert_int_equal(smtpuv_send_result_dup(NULL, &r, &copy), 0);
  assert_null(copy->attempt_log);
  smtpuv_send_result_free(copy);
  smtpuv__msg_free(smtpuv_mem_default(), m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_temporary),
      cmocka_unit_test(test_delay),
      cmocka_unit_test(test_when),
      cmocka_unit_test(test_attempt_log),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/* smtpuv-send's exit statuses (examples/smtpuv_send/exitcode.c): every
 * SMTPUV_E* code has a sysexits.h status, the reply class decides where the
 * code alone cannot, refused recipients give their class, an unknown
 * outcome is a temporary failure, and a failed message is never 0. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../examples/smtpuv_send/exitcode.c"

static const struct {
  int err;
  smtpuv_phase phase;
  int reply;
  int expect;
} TABLE[] = {
    {0, SMTPUV_PHASE_END_OF_DATA, 250, CLI_EX_OK},
    {SMTPUV_EINVAL, SMTPUV_PHASE_NONE, 0, CLI_EX_USAGE},
    {SMTPUV_ESTATE, SMTPUV_PHASE_MAIL, 0, CLI_EX_SOFTWARE},
    {SMTPUV_EBUSY, SMTPUV_PHASE_MAIL, 0, CLI_EX_SOFTWARE},
    {SMTPUV_ENOMEM, SMTPUV_PHASE_NONE, 0, CLI_EX_OSERR},
    {SMTPUV_EADDRESS, SMTPUV_PHASE_NONE, 0, CLI_EX_DATAERR},
    {SMTPUV_EHEADER, SMTPUV_PHASE_NONE, 0, CLI_EX_DATAERR},
    {SMTPUV_ELIMIT, SMTPUV_PHASE_RCPT, 0, CLI_EX_DATAERR},
    {SMTPUV_ENOEXT, SMTPUV_PHASE_MAIL, 0, CLI_EX_UNAVAILABLE},
    {SMTPUV_E8BIT, SMTPUV_PHASE_DATA, 0, CLI_EX_UNAVAILABLE},
    {SMTPUV_ETOOBIG, SMTPUV_PHASE_MAIL, 0, CLI_EX_UNAVAILABLE},
    {SMTPUV_ENORCPT, SMTPUV_PHASE_RCPT, 550, CLI_EX_UNAVAILABLE},
    {SMTPUV_ENORCPT, SMTPUV_PHASE_RCPT, 451, CLI_EX_TEMPFAIL},
    {SMTPUV_ENORCPT, SMTPUV_PHASE_RCPT, 0, CLI_EX_UNAVAILABLE},
    {SMTPUV_ECANCELED, SMTPUV_PHASE_NONE, 0, CLI_EX_TEMPFAIL},
    {SMTPUV_ECLOSED, SMTPUV_PHASE_NONE, 0, CLI_EX_SOFTWARE},
    {SMTPUV_EBODY, SMTPUV_PHASE_DATA, 0, CLI_EX_IOERR},
    {SMTPUV_EPROTO, SMTPUV_PHASE_EHLO, 0, CLI_EX_PROTOCOL},
    {SMTPUV_EINJECT, SMTPUV_PHASE_TLS, 0, CLI_EX_PROTOCOL},
    {SMTPUV_ETEMPFAIL, SMTPUV_PHASE_MAIL, 451, CLI_EX_TEMPFAIL},
    {SMTPUV_ESHUTDOWN, SMTPUV_PHASE_GREETING, 421, CLI_EX_TEMPFAIL},
    {SMTPUV_EPERMFAIL, SMTPUV_PHASE_END_OF_DATA, 554, CLI_EX_UNAVAILABLE},
    {SMTPUV_EPERMFAIL, SMTPUV_PHASE_MAIL, 0, CLI_EX_UNAVAILABLE},
    {SMTPUV_EAUTH, SMTPUV_PHASE_AUTH, 535, CLI_EX_NOPERM},
    {SMTPUV_EAUTH, SMTPUV_PHASE_AUTH, 0, CLI_EX_NOPERM},
    {SMTPUV_EAUTH, SMTPUV_PHASE_AUTH, 454, CLI_EX_TEMPFAIL},
    {SMTPUV_EAUTHMECH, SMTPUV_PHASE_AUTH, 0, CLI_EX_UNAVAILABLE},
    {SMTPUV_EPLAINTEXT, SMTPUV_PHASE_AUTH, 0, CLI_EX_CONFIG},
    {SMTPUV_EAUTHSERVER, SMTPUV_PHASE_AUTH, 235, CLI_EX_NOPERM},
    {SMTPUV_ECREDENTIALS, SMTPUV_PHASE_AUTH, 0, CLI_EX_CONFIG},
    {SMTPUV_ERESOLVE, SMTPUV_PHASE_CONNECT, 0, CLI_EX_NOHOST},
    {SMTPUV_ECONNECT, SMTPUV_PHASE_CONNECT, 0, CLI_EX_IOERR},
    {SMTPUV_ETIMEDOUT, SMTPUV_PHASE_CONNECT, 0, CLI_EX_TEMPFAIL},
    {SMTPUV_ETIMEDOUT, SMTPUV_PHASE_EHLO, 0, CLI_EX_TEMPFAIL},
    {SMTPUV_ECONNLOST, SMTPUV_PHASE_MAIL, 0, CLI_EX_IOERR},
    {SMTPUV_EIO, SMTPUV_PHASE_DATA, 0, CLI_EX_IOERR},
    {SMTPUV_ETLS, SMTPUV_PHASE_TLS, 0, CLI_EX_CONFIG},
    {SMTPUV_ETLS, SMTPUV_PHASE_DATA, 0, CLI_EX_IOERR},
    {SMTPUV_ECERT, SMTPUV_PHASE_TLS, 0, CLI_EX_CONFIG},
    {SMTPUV_ENOTLS, SMTPUV_PHASE_EHLO, 0, CLI_EX_CONFIG},
    {SMTPUV_EPROXY, SMTPUV_PHASE_PROXY, 0, CLI_EX_PROTOCOL},
    {SMTPUV_EPROXYMETHOD, SMTPUV_PHASE_PROXY, 0, CLI_EX_CONFIG},
    {SMTPUV_EPROXYAUTH, SMTPUV_PHASE_PROXY, 0, CLI_EX_NOPERM},
    {SMTPUV_EPROXYRULES, SMTPUV_PHASE_PROXY, 0, CLI_EX_NOPERM},
    {SMTPUV_EPROXYFAIL, SMTPUV_PHASE_PROXY, 0, CLI_EX_TEMPFAIL},
    {SMTPUV_EPROXYTTL, SMTPUV_PHASE_PROXY, 0, CLI_EX_TEMPFAIL},
    {SMTPUV_EPROXYNETUNREACH, SMTPUV_PHASE_PROXY, 0, CLI_EX_IOERR},
    {SMTPUV_EPROXYHOSTUNREACH, SMTPUV_PHASE_PROXY, 0, CLI_EX_IOERR},
    {SMTPUV_EPROXYREFUSED, SMTPUV_PHASE_PROXY, 0, CLI_EX_IOERR},
    {SMTPUV_EPROXYCMD, SMTPUV_PHASE_PROXY, 0, CLI_EX_UNAVAILABLE},
    {SMTPUV_EPROXYATYP, SMTPUV_PHASE_PROXY, 0, CLI_EX_UNAVAILABLE},
    /* STARTTLS answered 454: temporary; a 5xx refusal: the settings */
    {SMTPUV_ENOTLS, SMTPUV_PHASE_TLS, 454, CLI_EX_TEMPFAIL},
    {SMTPUV_ENOTLS, SMTPUV_PHASE_TLS, 554, CLI_EX_CONFIG},
    /* codes the table does not know: the reply class, else internal */
    {-999, SMTPUV_PHASE_MAIL, 452, CLI_EX_TEMPFAIL},
    {-999, SMTPUV_PHASE_MAIL, 0, CLI_EX_SOFTWARE},
};

static void test_error_table(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof TABLE / sizeof TABLE[0]; i++) {
    int got = cli_exit_for_error(TABLE[i].err, TABLE[i].phase, TABLE[i].reply);
    if (got != TABLE[i].expect)
      fail_msg("%s (phase %d, reply %d): %d, expected %d",
               smtpuv_err_name(TABLE[i].err), TABLE[i].phase, TABLE[i].reply,
               got, TABLE[i].expect);
  }
}

/* Every code of the X-macro list maps to a documented status (never 0,
   never EX_SOFTWARE except the "cannot happen" codes). */
static void test_every_code_covered(void **state) {
  (void)state;
#define CHECK_(name, val, msg)                                                 \
  do {                                                                         \
    int st = cli_exit_for_error(val, SMTPUV_PHASE_MAIL, 0);                    \
    assert_true(st >= 64 && st <= 78);                                         \
    if (st == CLI_EX_SOFTWARE)                                                 \
      assert_true(val == SMTPUV_ESTATE || val == SMTPUV_EBUSY ||               \
                  val == SMTPUV_EAGAIN || val == SMTPUV_ECLOSED);              \
    assert_string_not_equal(cli_exit_name(st), "EX_UNKNOWN");                  \
  } while (0);
  SMTPUV_ERRNO_MAP(CHECK_)
#undef CHECK_
}

static smtpuv_send_result result(smtpuv_send_status st, int err,
                                 smtpuv_phase ph, int reply,
                                 smtpuv_rcpt_result *rr, size_t n) {
  smtpuv_send_result r;
  memset(&r, 0, sizeof r);
  r.struct_size = sizeof r;
  r.status = st;
  r.error = err;
  r.phase = ph;
  r.message = "";
  r.reply_code = reply;
  r.reply_enhanced = "";
  r.reply_text = "";
  r.recipients = rr;
  r.nrecipients = n;
  for (size_t i = 0; i < n; i++)
    r.naccepted += rr[i].accepted != 0;
  return r;
}

static smtpuv_rcpt_result rcpt(int code) {
  smtpuv_rcpt_result x = {"a@x", code >= 200 && code < 300, code, "", ""};
  return x;
}

static void test_results(void **state) {
  (void)state;
  smtpuv_rcpt_result ok[2] = {rcpt(250), rcpt(250)};
  smtpuv_send_result r =
      result(SMTPUV_SEND_SENT, 0, SMTPUV_PHASE_END_OF_DATA, 250, ok, 2);
  assert_int_equal(cli_exit_for_result(&r), 0);

  /* some refused: the message went to the others, status = their class */
  smtpuv_rcpt_result perm[2] = {rcpt(250), rcpt(550)};
  r = result(SMTPUV_SEND_SENT, SMTPUV_ENORCPT, SMTPUV_PHASE_END_OF_DATA, 250,
             perm, 2);
  assert_int_equal(cli_exit_for_result(&r), CLI_EX_UNAVAILABLE);
  smtpuv_rcpt_result temp[2] = {rcpt(451), rcpt(250)};
  r = result(SMTPUV_SEND_SENT, SMTPUV_ENORCPT, SMTPUV_PHASE_END_OF_DATA, 250,
             temp, 2);
  assert_int_equal(cli_exit_for_result(&r), CLI_EX_TEMPFAIL);
  /* a permanent refusal wins over a temporary one */
  smtpuv_rcpt_result mixed[3] = {rcpt(451), rcpt(250), rcpt(550)};
  r = result(SMTPUV_SEND_SENT, SMTPUV_ENORCPT, SMTPUV_PHASE_END_OF_DATA, 250,
             mixed, 3);
  assert_int_equal(cli_exit_for_result(&r), CLI_EX_UNAVAILABLE);
  /* even when the library's error code is 0, a refused recipient counts */
  r = result(SMTPUV_SEND_SENT, 0, SMTPUV_PHASE_END_OF_DATA, 250, temp, 2);
  assert_int_equal(cli_exit_for_result(&r), CLI_EX_TEMPFAIL);

  /* all refused */
  smtpuv_rcpt_result none[2] = {rcpt(550), rcpt(551)};
  r = result(SMTPUV_SEND_FAILED, SMTPUV_ENORCPT, SMTPUV_PHASE_RCPT, 551, none,
             2);
  assert_int_equal(cli_exit_for_result(&r), CLI_EX_UNAVAILABLE);
  smtpuv_rcpt_result tnone[1] = {rcpt(452)};
  r = result(SMTPUV_SEND_FAILED, SMTPUV_ENORCPT, SMTPUV_PHASE_RCPT, 452, tnone,
             1);
  assert_int_equal(cli_exit_for_result(&r), CLI_EX_TEMPFAIL);

  /* the connection lost after the final dot */
  smtpuv_rcpt_result one[1] = {rcpt(250)};
  r = result(SMTPUV_SEND_UNKNOWN, SMTPUV_ECONNLOST, SMTPUV_PHASE_END_OF_DATA,
             0, one, 1);
  assert_int_equal(cli_exit_for_result(&r), CLI_EX_TEMPFAIL);
  /* ... and before it */
  r = result(SMTPUV_SEND_FAILED, SMTPUV_ECONNLOST, SMTPUV_PHASE_MAIL, 0, one,
             1);
  assert_int_equal(cli_exit_for_result(&r), CLI_EX_IOERR);
  r = result(SMTPUV_SEND_FAILED, SMTPUV_EPERMFAIL, SMTPUV_PHASE_END_OF_DATA,
             554, one, 1);
  assert_int_equal(cli_exit_for_result(&r), CLI_EX_UNAVAILABLE);
  r = result(SMTPUV_SEND_CANCELED, SMTPUV_ECANCELED, SMTPUV_PHASE_NONE, 0, one,
             1);
  assert_int_equal(cli_exit_for_result(&r), CLI_EX_TEMPFAIL);
  /* failed with no error code at all: never reported as success */
  r = result(SMTPUV_SEND_FAILED, 0, SMTPUV_PHASE_MAIL, 0, one, 1);
  assert_int_equal(cli_exit_for_result(&r), CLI_EX_SOFTWARE);
  assert_int_equal(cli_exit_for_result(NULL), CLI_EX_SOFTWARE);
}

static void test_names(void **state) {
  (void)state;
  assert_string_equal(cli_exit_name(0), "EX_OK");
  assert_string_equal(cli_exit_name(75), "EX_TEMPFAIL");
  assert_string_equal(cli_exit_name(78), "EX_CONFIG");
  assert_string_equal(cli_exit_name(1), "EX_UNKNOWN");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_error_table),
      cmocka_unit_test(test_every_code_covered),
      cmocka_unit_test(test_results),
      cmocka_unit_test(test_names),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

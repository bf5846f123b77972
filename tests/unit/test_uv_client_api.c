/* The client API without a network: options, argument checks, the
 * envelope-from-headers helper and its Bcc-less body, result copies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smtpuv/client.h"
#include "support.h"

static void test_options(void **state) {
  (void)state;
  smtpuv_options *o;
  assert_int_equal(smtpuv_options_new(NULL, NULL), SMTPUV_EINVAL);
  assert_int_equal(smtpuv_options_new(NULL, &o), 0);
  assert_int_equal(smtpuv_options_set_host(o, NULL), SMTPUV_EINVAL);
  assert_int_equal(smtpuv_options_set_host(o, ""), SMTPUV_EINVAL);
  assert_int_equal(smtpuv_options_set_host(o, "a b"), SMTPUV_EINVAL);
  assert_int_equal(smtpuv_options_set_host(o, "smtp.example.com"), 0);
  assert_int_equal(smtpuv_options_set_host(o, "::1"), 0);
  assert_int_equal(smtpuv_options_set_port(o, 70000), SMTPUV_EINVAL);
  assert_int_equal(smtpuv_options_set_port(o, 2525), 0);
  assert_int_equal(smtpuv_options_set_tls(o, (smtpuv_tls_mode)9),
                   SMTPUV_EINVAL);
  assert_int_equal(smtpuv_options_set_ehlo_name(o, "bad name"), SMTPUV_EINVAL);
  assert_int_equal(smtpuv_options_set_ehlo_name(o, "bad\r\nname"),
                   SMTPUV_EINVAL);
  assert_int_equal(smtpuv_options_set_ehlo_name(o, "[127.0.0.1]"), 0);
  assert_int_equal(smtpuv_options_set_auth_mechanism(o, "NOPE"),
                   SMTPUV_EINVAL);
  assert_int_equal(smtpuv_options_set_auth_mechanism(o, "scram-sha-256"), 0);
  assert_int_equal(smtpuv_options_set_auth_mechanism(o, "auto"), 0);
  assert_int_equal(smtpuv_options_set_credentials(o, "u", NULL, NULL),
                   SMTPUV_EINVAL);
  assert_int_equal(smtpuv_options_set_credentials(o, "u", "p", "z"), 0);
  assert_int_equal(smtpuv_options_set_credentials(o, NULL, NULL, NULL), 0);
  assert_int_equal(smtpuv_options_set_timeout(o, (smtpuv_timeout)7, 1),
                   SMTPUV_EINVAL);
  assert_int_equal(smtpuv_options_set_timeout(o, SMTPUV_TIMEOUT_IDLE, 0), 0);
  assert_int_equal(smtpuv_options_set_ca(o, "", NULL), SMTPUV_EINVAL);
  assert_int_equal(smtpuv_options_set_ca(o, "/x/ca.pem", NULL), 0);
  smtpuv_options_free(o);
  smtpuv_options_free(NULL);
  /* an incomplete allocator */
  smtpuv_mem m = *smtpuv_mem_default();
  m.calloc = NULL;
  assert_int_equal(smtpuv_options_new(&m, &o), SMTPUV_EINVAL);
}

static void test_client_args(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  smtpuv_options *o;
  smtpuv_options_new(NULL, &o);
  smtpuv_client *c;
  /* no host */
  assert_int_equal(smtpuv_client_new(&loop, o, &c), SMTPUV_EINVAL);
  smtpuv_options_set_host(o, "127.0.0.1");
  assert_int_equal(smtpuv_client_new(NULL, o, &c), SMTPUV_EINVAL);
  assert_int_equal(smtpuv_client_new(&loop, o, &c), 0);
  smtpuv_options_free(o); /* the client has a copy */

  const char *to[] = {"b@example.com"};
  const char *bad[] = {"b@example.com>\r\nRCPT TO:<evil@example.com"};
  const char *none[] = {NULL};
  smtpuv_envelope e = SMTPUV_ENVELOPE_INIT;
  e.sender = "a@example.com";
  e.recipients = to;
  e.nrecipients = 1;
  smtpuv_body b;
  smtpuv_body_init_buffer(&b, "x", 1);
  assert_int_equal(smtpuv_client_send(c, NULL, &b, NULL, NULL), SMTPUV_EINVAL);
  assert_int_equal(smtpuv_client_send(c, &e, NULL, NULL, NULL), SMTPUV_EINVAL);
  e.nrecipients = 0;
  assert_int_equal(smtpuv_client_send(c, &e, &b, NULL, NULL), SMTPUV_EINVAL);
  e.nrecipients = 1;
  e.recipients = none;
  assert_int_equal(smtpuv_client_send(c, &e, &b, NULL, NULL), SMTPUV_EINVAL);
  e.recipients = bad;
  assert_int_equal(smtpuv_client_send(c, &e, &b, NULL, NULL),
                   SMTPUV_EADDRESS);
  e.recipients = to;
  e.sender = "a@example.com\r\nDATA";
  assert_int_equal(smtpuv_client_send(c, &e, &b, NULL, NULL),
                   SMTPUV_EADDRESS);
  e.sender = "";
  smtpuv_body nob;
  smtpuv_body_init_buffer(&nob, NULL, 5);
  assert_int_equal(smtpuv_client_send(c, &e, &nob, NULL, NULL), SMTPUV_EINVAL);
  assert_int_equal(smtpuv_client_pending(c), 0);
  assert_int_equal(smtpuv_client_send_message(c, "no headers", 10, NULL, NULL),
                   SMTPUV_EHEADER);
  assert_ptr_equal(smtpuv_client_loop(c), &loop);
  assert_int_equal(smtpuv_client_close(c, NULL), 0);
  assert_int_equal(smtpuv_client_close(c, NULL), SMTPUV_ECLOSED);
  assert_int_equal(smtpuv_client_send(c, &e, &b, NULL, NULL), SMTPUV_ECLOSED);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_names(void **state) {
  (void)state;
  assert_string_equal(smtpuv_send_status_name(SMTPUV_SEND_UNKNOWN),
                      "unknown outcome");
  assert_string_equal(smtpuv_phase_name(SMTPUV_PHASE_END_OF_DATA),
                      "end-of-data");
  assert_string_equal(smtpuv_phase_name(SMTPUV_PHASE_TLS), "TLS");
}

static void test_result_dup(void **state) {
  (void)state;
  smtpuv_rcpt_result rr[2] = {{"a@x", 1, 250, "2.1.5", "ok"},
                              {"b@x", 0, 550, "5.1.1", "no"}};
  smtpuv_send_result r;
  memset(&r, 0, sizeof r);
  r.struct_size = sizeof r;
  r.status = SMTPUV_SEND_SENT;
  r.error = SMTPUV_ENORCPT;
  r.message = "250 ok";
  r.reply_code = 250;
  r.reply_enhanced = "2.0.0";
  r.reply_text = "2.0.0 ok";
  r.recipients = rr;
  r.nrecipients = 2;
  r.naccepted = 1;
  r.tls = NULL;
  test_mem tm;
  test_mem_init(&tm, 0);
  smtpuv_send_result *d;
  assert_int_equal(smtpuv_send_result_dup(&tm.mem, &r, &d), 0);
  assert_int_equal(tm.live, 1); /* one allocation */
  assert_string_equal(d->message, "250 ok");
  assert_ptr_not_equal(d->message, r.message);
  assert_string_equal(d->recipients[1].text, "no");
  assert_int_equal(d->recipients[1].code, 550);
  assert_null(d->tls);
  smtpuv_send_result_free(d);
  assert_int_equal(tm.live, 0);
  test_mem_init(&tm, 1);
  assert_int_equal(smtpuv_send_result_dup(&tm.mem, &r, &d), SMTPUV_ENOMEM);
}

/* ---- envelope from headers -------------------------------------------------- */

static void expect_env(const char *msg, const char *sender,
                       const char *const *rcpts, size_t n) {
  smtpuv_message *m;
  int rc = smtpuv_message_new(NULL, msg, strlen(msg), &m);
  if (rc != 0)
    fail_msg("%s for:\n%s", smtpuv_err_name(rc), msg);
  const smtpuv_envelope *e = smtpuv_message_envelope(m);
  assert_string_equal(e->sender, sender);
  if (e->nrecipients != n) {
    for (size_t i = 0; i < e->nrecipients; i++)
      fprintf(stderr, "  got %s\n", e->recipients[i]);
    fail_msg("%zu recipients, want %zu", e->nrecipients, n);
  }
  for (size_t i = 0; i < n; i++)
    assert_string_equal(e->recipients[i], rcpts[i]);
  smtpuv_message_free(m);
}

static void test_envelope_from_headers(void **state) {
  (void)state;
  {
    const char *r[] = {"to@example.com", "bcc@example.com", "cc@example.com"};
    expect_env("From: f@example.com\r\nTo: to@example.com\r\n"
               "Cc: cc@example.com\r\nBcc: bcc@example.com\r\n\r\nbody\r\n",
               "f@example.com", r, 3);
  }
  { /* Sender wins over From; display names, comments, quotes, groups */
    const char *r[] = {"a@example.com", "\"odd local\"@example.com",
                       "g1@example.com", "g2@example.com", "c@example.com"};
    expect_env("From: Someone <from@example.com>\n"
               "Sender: \"The, Sender\" <sender@example.com> (comment)\n"
               "To: \"A, Person\" <a@example.com>,\n"
               " \"odd local\"@example.com\n"
               "Cc: Team: g1@example.com, G Two <g2@example.com>;,"
               " (c) c@example.com (C)\n"
               "Subject: x\n\nbody\n",
               "sender@example.com", r, 5);
  }
  { /* one Resent- block wins */
    const char *r[] = {"rt@example.com", "rb@example.com"};
    expect_env("From: f@example.com\r\nTo: to@example.com\r\n"
               "Resent-Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
               "Resent-From: rf@example.com\r\n"
               "Resent-To: rt@example.com\r\n"
               "Resent-Bcc: rb@example.com\r\n\r\nbody\r\n",
               "rf@example.com", r, 2);
  }
  { /* duplicates once; an empty group; route syntax */
    const char *r[] = {"x@example.com", "y@example.com"};
    expect_env("From: <f@example.com>\r\n"
               "To: x@example.com, undisclosed-recipients:;, X <x@example.com>"
               "\r\nCc: <@relay.example:y@example.com>\r\n\r\n",
               "f@example.com", r, 2);
  }
  {
    const char *r[] = {"m\xc3\xbcller@example.com"};
    expect_env("From: j\xc3\xb6rg@example.com\r\n"
               "To: m\xc3\xbcller@example.com\r\n\r\n",
               "j\xc3\xb6rg@example.com", r, 1);
  }
  smtpuv_message *m;
  static const char two_resent[] =
      "From: f@example.com\r\nTo: t@example.com\r\n"
      "Resent-Date: a\r\nResent-To: r1@example.com\r\n"
      "Resent-Date: b\r\nResent-To: r2@example.com\r\n\r\n";
  assert_int_equal(
      smtpuv_message_new(NULL, two_resent, sizeof two_resent - 1, &m),
      SMTPUV_EHEADER);
  static const char no_from[] = "To: t@example.com\r\n\r\n";
  assert_int_equal(smtpuv_message_new(NULL, no_from, sizeof no_from - 1, &m),
                   SMTPUV_EHEADER);
  static const char no_to[] = "From: f@example.com\r\n\r\n";
  assert_int_equal(smtpuv_message_new(NULL, no_to, sizeof no_to - 1, &m),
                   SMTPUV_EHEADER);
  static const char phrase[] = "From: f@example.com\r\nTo: John Doe\r\n\r\n";
  assert_int_equal(smtpuv_message_new(NULL, phrase, sizeof phrase - 1, &m),
                   SMTPUV_EHEADER);
  static const char inject[] =
      "From: f@example.com\r\nTo: <a@x\r\n .com>\r\n\r\n";
  assert_int_equal(smtpuv_message_new(NULL, inject, sizeof inject - 1, &m),
                   0); /* folding whitespace inside <> is removed */
  assert_string_equal(smtpuv_message_envelope(m)->recipients[0], "a@x.com");
  smtpuv_message_free(m);
  assert_int_equal(smtpuv_message_new(NULL, "", 0, &m), SMTPUV_EINVAL);
}

static void read_all(smtpuv_body *b, char *out, size_t cap, size_t *len) {
  *len = 0;
  for (;;) {
    long n = b->read(b->user, out + *len, cap - *len < 5 ? cap - *len : 5);
    assert_true(n >= 0);
    if (n == 0)
      break;
    *len += (size_t)n;
  }
}

static void test_body_without_bcc(void **state) {
  (void)state;
  static const char msg[] = "Bcc: first@example.com\r\n"
                            "From: f@example.com\r\n"
                            "To: t@example.com\r\n"
                            "bcc: b@example.com,\r\n"
                            "\tfolded@example.com\r\n"
                            "Subject: s\r\n"
                            "Resent-Bcc: nobody@example.com\r\n"
                            "\r\n"
                            "Bcc: this is body text\r\n";
  static const char want[] = "From: f@example.com\r\n"
                             "To: t@example.com\r\n"
                             "Subject: s\r\n"
                             "\r\n"
                             "Bcc: this is body text\r\n";
  smtpuv_message *m;
  assert_int_equal(smtpuv_message_new(NULL, msg, sizeof msg - 1, &m), 0);
  assert_int_equal(smtpuv_message_envelope(m)->nrecipients, 4);
  smtpuv_body b;
  smtpuv_message_body(m, &b);
  assert_non_null(b.read);
  assert_int_equal(b.size, sizeof want - 1);
  char out[512];
  size_t len;
  read_all(&b, out, sizeof out, &len);
  assert_int_equal(len, sizeof want - 1);
  assert_memory_equal(out, want, len);
  assert_int_equal(b.rewind(b.user), 0);
  read_all(&b, out, sizeof out, &len);
  assert_memory_equal(out, want, len);
  smtpuv_message_free(m);

  /* no Bcc: the buffer itself */
  static const char plain[] = "From: f@example.com\r\nTo: t@example.com\r\n\r\n";
  assert_int_equal(smtpuv_message_new(NULL, plain, sizeof plain - 1, &m), 0);
  smtpuv_message_body(m, &b);
  assert_null(b.read);
  assert_ptr_equal(b.data, plain);
  smtpuv_message_free(m);
}

static void test_message_failmalloc(void **state) {
  (void)state;
  static const char msg[] = "From: f@example.com\r\nTo: a@example.com, "
                            "b@example.com, c@example.com\r\n"
                            "Bcc: d@example.com\r\n\r\nx\r\n";
  for (unsigned long n = 1; n < 100; n++) {
    test_mem tm;
    test_mem_init(&tm, n);
    smtpuv_message *m;
    int rc = smtpuv_message_new(&tm.mem, msg, sizeof msg - 1, &m);
    if (rc == 0) {
      smtpuv_message_free(m);
      assert_int_equal(tm.live, 0);
      if (!tm.failed)
        return;
      continue;
    }
    assert_int_equal(rc, SMTPUV_ENOMEM);
    assert_int_equal(tm.live, 0);
  }
  fail_msg("never completed");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_options),
      cmocka_unit_test(test_client_args),
      cmocka_unit_test(test_names),
      cmocka_unit_test(test_result_dup),
      cmocka_unit_test(test_envelope_from_headers),
      cmocka_unit_test(test_body_without_bcc),
      cmocka_unit_test(test_message_failmalloc),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

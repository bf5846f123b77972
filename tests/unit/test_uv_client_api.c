/* SPDX-License-Identifier: MIT */
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

/* The TLS extras: a SHA-256 pin (64 hex digits, colons optional) and a
   client certificate; anything else is refused without changing the
   options. */
static void test_tls_extra_options(void **state) {
  (void)state;
  smtpuv_options *o;
  assert_int_equal(smtpuv_options_new(NULL, &o), 0);
  static const char colons[] =
      "AB:CD:EF:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:"
      "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89";
  assert_int_equal(smtpuv_options_set_tls_fingerprint(o, colons), 0);
  assert_int_equal(
      smtpuv_options_set_tls_fingerprint(
          o, "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789"),
      0);
  assert_int_equal(smtpuv_options_set_tls_fingerprint(o, NULL), 0);
  static const char *const bad[] = {
      "",
      "AB:CD",                                                   /* short */
      "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33", /* SHA-1 */
      "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:"
      "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:00", /* 33 bytes */
      "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:"
      "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:8G", /* not hex */
      "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:"
      "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:", /* trailing */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_int_equal(smtpuv_options_set_tls_fingerprint(o, bad[i]),
                     SMTPUV_EINVAL);
  assert_int_equal(smtpuv_options_set_tls_fingerprint(NULL, colons),
                   SMTPUV_EINVAL);
  assert_int_equal(smtpuv_options_set_tls_client_cert(o, "/c.pem", "/k.pem"), 0);
  assert_int_equal(smtpuv_options_set_tls_client_cert(o, "/both.pem", NULL), 0);
  assert_int_equal(smtpuv_options_set_tls_client_cert(o, NULL, NULL), 0);
  assert_int_equal(smtpuv_options_set_tls_client_cert(o, NULL, "/k.pem"),
                   SMTPUV_EINVAL);
  assert_int_equal(smtpuv_options_set_tls_client_cert(o, "", NULL),
                   SMTPUV_EINVAL);
  assert_int_equal(smtpuv_options_set_tls_client_cert(o, "/c.pem", ""),
                   SMTPUV_EINVAL);
  assert_int_equal(smtpuv_options_set_tls_client_cert(o, "/c.pem", "/k.pem"), 0);
  smtpuv_options_free(o); /* frees the copies */
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
  assert_string_equal(smtpuv_phase_name(SMTPUV_PHASE_PROXY), "proxy");
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

/* The message's body source gives `want` (twice: it rewinds). */
static void expect_stripped(smtpuv_message *m, const char *want, size_t n) {
  smtpuv_body b;
  smtpuv_message_body(m, &b);
  assert_non_null(b.read);
  assert_int_equal(b.size, n);
  char out[512];
  size_t len;
  for (int pass = 0; pass < 2; pass++) {
    read_all(&b, out, sizeof out, &len);
    assert_int_equal(len, n);
    assert_memory_equal(out, want, len);
    assert_int_equal(b.rewind(b.user), 0);
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
  expect_stripped(m, want, sizeof want - 1);
  smtpuv_message_free(m);
  smtpuv_body b;

  /* no Bcc: the buffer itself */
  static const char plain[] = "From: f@example.com\r\nTo: t@example.com\r\n\r\n";
  assert_int_equal(smtpuv_message_new(NULL, plain, sizeof plain - 1, &m), 0);
  smtpuv_message_body(m, &b);
  assert_null(b.read);
  assert_ptr_equal(b.data, plain);
  smtpuv_message_free(m);
}

/* Run `step` with the 1st, 2nd, ... allocation failing until a run sees
   none fail: a failed run returns SMTPUV_ENOMEM (a run may also get over a
   failure), and no run leaks. */
typedef int (*alloc_step)(const smtpuv_mem *mem);

static void each_failing_alloc(alloc_step step) {
  for (unsigned long n = 1; n < 100; n++) {
    test_mem tm;
    test_mem_init(&tm, n);
    int rc = step(&tm.mem);
    assert_int_equal(tm.live, 0);
    if (rc == 0 && !tm.failed)
      return;
    if (rc != 0)
      assert_int_equal(rc, SMTPUV_ENOMEM);
  }
  fail_msg("never completed");
}

static int new_message_step(const smtpuv_mem *mem) {
  static const char msg[] = "From: f@example.com\r\nTo: a@example.com, "
                            "b@example.com, c@example.com\r\n"
                            "Bcc: d@example.com\r\n\r\nx\r\n";
  smtpuv_message *m;
  int rc = smtpuv_message_new(mem, msg, sizeof msg - 1, &m);
  if (rc == 0) {
    assert_int_equal(smtpuv_message_envelope(m)->nrecipients, 4);
    smtpuv_message_free(m);
  }
  return rc;
}

static void test_message_failmalloc(void **state) {
  (void)state;
  each_failing_alloc(new_message_step);
}

/* ---- header fields and address lists ------------------------------------------ */

static void expect_field(const char *msg, size_t len, size_t *pos,
                         const char *name, const char *value, size_t start,
                         size_t end) {
  smtpuv_header_field f;
  assert_int_equal(smtpuv_header_next(msg, len, pos, &f), 1);
  assert_int_equal(f.name_len, strlen(name));
  assert_memory_equal(f.name, name, f.name_len);
  assert_int_equal(f.value_len, strlen(value));
  assert_memory_equal(f.value, value, f.value_len);
  assert_ptr_equal(f.name, msg + start);
  assert_int_equal(f.start, start);
  assert_int_equal(f.end, end);
  assert_int_equal(*pos, end);
}

static void test_header_next(void **state) {
  (void)state;
  static const char msg[] = "From: a@x\r\n"       /* 0..11 */
                            "To: b@x,\r\n\t c@x\r\n" /* 11..28 */
                            "X-Odd : v\n"          /* 28..38 */
                            "Subject:\r\n"         /* 38..48 */
                            "\r\n"
                            "Bcc: body@x\r\n";
  size_t len = sizeof msg - 1, pos = 0;
  expect_field(msg, len, &pos, "From", " a@x", 0, 11);
  expect_field(msg, len, &pos, "To", " b@x,\r\n\t c@x", 11, 28);
  expect_field(msg, len, &pos, "X-Odd", " v", 28, 38);
  expect_field(msg, len, &pos, "Subject", "", 38, 48);
  smtpuv_header_field f;
  assert_int_equal(smtpuv_header_next(msg, len, &pos, &f), 0);
  assert_int_equal(pos, 48); /* at the empty line */
  assert_int_equal(smtpuv_header_next(msg, len, &pos, &f), 0);

  /* a field without a line ending at the end of the data */
  pos = 0;
  expect_field("A: b", 4, &pos, "A", " b", 0, 4);
  assert_int_equal(smtpuv_header_next("A: b", 4, &pos, &f), 0);
  /* no header block: text, a leading blank, a name without a colon, a
     name with a control character, an empty message */
  static const char *const none[] = {"just text\n", " A: b\n", "A\n",
                                     "A\x01: b\n", ": no name\n", "\r\nA: b\n"};
  for (size_t i = 0; i < sizeof none / sizeof none[0]; i++) {
    pos = 0;
    assert_int_equal(smtpuv_header_next(none[i], strlen(none[i]), &pos, &f),
                     0);
    assert_int_equal(pos, 0);
  }
  pos = 0;
  assert_int_equal(smtpuv_header_next(NULL, 0, &pos, &f), 0);
  assert_int_equal(smtpuv_header_next(NULL, 1, &pos, &f), SMTPUV_EINVAL);
  assert_int_equal(smtpuv_header_next(msg, len, NULL, &f), SMTPUV_EINVAL);
  assert_int_equal(smtpuv_header_next(msg, len, &pos, NULL), SMTPUV_EINVAL);

  /* names */
  pos = 0;
  assert_int_equal(smtpuv_header_next("bcc: x\n", 7, &pos, &f), 1);
  assert_int_equal(smtpuv_header_field_is(&f, "Bcc"), 1);
  assert_int_equal(smtpuv_header_field_is(&f, "BCC"), 1);
  assert_int_equal(smtpuv_header_field_is(&f, "Bc"), 0);
  assert_int_equal(smtpuv_header_field_is(&f, "Resent-Bcc"), 0);
  assert_int_equal(smtpuv_header_field_is(&f, NULL), 0);
  assert_int_equal(smtpuv_header_field_is(NULL, "Bcc"), 0);
}

/* Parse `value`: expect `err`, and when it is 0 the `n` addresses of
   `want` followed by a NULL. */
static void expect_list(const char *value, int err, const char *const *want,
                        size_t n) {
  smtpuv_address_list *l = (smtpuv_address_list *)1;
  int rc = smtpuv_address_list_parse(NULL, value, strlen(value), &l);
  if (rc != err)
    fail_msg("%s: %s, want %s", value, smtpuv_err_name(rc),
             smtpuv_err_name(err));
  if (err != 0) {
    assert_null(l);
    return;
  }
  if (l->count != n) {
    for (size_t i = 0; i < l->count; i++)
      fprintf(stderr, "  got %s\n", l->addresses[i]);
    fail_msg("%s: %zu addresses, want %zu", value, l->count, n);
  }
  for (size_t i = 0; i < n; i++)
    assert_string_equal(l->addresses[i], want[i]);
  assert_null(l->addresses[n]);
  smtpuv_address_list_free(l);
}

static void test_address_list(void **state) {
  (void)state;
  { /* display names, comments, quoted strings */
    const char *w[] = {"a@example.com", "b@example.com", "c@example.com",
                       "\"odd, local\"@example.com", "d@example.com"};
    expect_list("\"Doe, A\" <a@example.com>, b@example.com (Bee),"
                " (lead) c@example.com, \"odd, local\"@example.com,"
                " D (the (nested) one) <d@example.com>",
                0, w, 5);
  }
  { /* groups, an empty group, duplicates kept, a source route */
    const char *w[] = {"g1@example.com", "g2@example.com", "x@example.com",
                       "x@example.com", "y@example.com"};
    expect_list("Team: g1@example.com, G Two <g2@example.com>;, "
                "undisclosed-recipients:;, x@example.com, X <x@example.com>,"
                " <@relay.example,@r2.example:y@example.com>",
                0, w, 5);
  }
  { /* folding: CRLF (or LF) with white space anywhere, inside <> too */
    const char *w[] = {"a@example.com", "b@example.com"};
    expect_list("A\r\n <a@\r\n example.com>,\r\n\tb@example.com\n", 0, w, 2);
  }
  { /* quoted pairs; a local address; UTF-8 */
    const char *w[] = {"\"a\\\"b\"@example.com", "postmaster",
                       "j\xc3\xbcrgen@example.com"};
    expect_list("\"a\\\"b\"@example.com, postmaster, j\xc3\xbcrgen@example.com",
                0, w, 3);
  }
  expect_list("", 0, NULL, 0);
  expect_list("  (just a comment) ", 0, NULL, 0);
  expect_list("Nobody:;", 0, NULL, 0);
  expect_list(",,", 0, NULL, 0);
  /* malformed */
  static const char *const bad[] = {
      "John Doe",              /* words without an address */
      "<a@example.com",        /* unterminated angle address */
      "a@example.com>",        /* '>' in an address */
      "\"unterminated@example.com", /* unterminated quoted string */
      "a@example.com (unterminated", /* unterminated comment */
      "Team: a@example.com, <b@example.com",
      "a\x01@example.com", /* control character */
      "bad\xff@example.com", /* invalid UTF-8 */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    expect_list(bad[i], SMTPUV_EHEADER, NULL, 0);
  /* longer than SMTPUV_MAX_ADDRESS */
  char longest[SMTPUV_MAX_ADDRESS + 40];
  memset(longest, 'a', sizeof longest - 1);
  longest[sizeof longest - 1] = '\0';
  memcpy(longest + sizeof longest - 13, "@example.com", 12);
  expect_list(longest, SMTPUV_EHEADER, NULL, 0);
  char with_angle[sizeof longest + 2];
  snprintf(with_angle, sizeof with_angle, "<%s>", longest);
  expect_list(with_angle, SMTPUV_EHEADER, NULL, 0);

  /* the value is a length, not a C string */
  smtpuv_address_list *l;
  assert_int_equal(smtpuv_address_list_parse(NULL, "a@x, b@y", 3, &l), 0);
  assert_int_equal(l->count, 1);
  assert_string_equal(l->addresses[0], "a@x");
  smtpuv_address_list_free(l);
  assert_int_equal(smtpuv_address_list_parse(NULL, NULL, 0, &l), 0);
  assert_int_equal(l->count, 0);
  assert_null(l->addresses[0]);
  smtpuv_address_list_free(l);
  assert_int_equal(smtpuv_address_list_parse(NULL, NULL, 1, &l),
                   SMTPUV_EINVAL);
  assert_int_equal(smtpuv_address_list_parse(NULL, "a@x", 3, NULL),
                   SMTPUV_EINVAL);
  smtpuv_address_list_free(NULL);

  /* a header field's value straight in */
  static const char msg[] = "To: \"Doe, John\" <john@x>,\r\n jane@x (Jane)\r\n";
  size_t pos = 0;
  smtpuv_header_field f;
  assert_int_equal(smtpuv_header_next(msg, sizeof msg - 1, &pos, &f), 1);
  assert_int_equal(smtpuv_address_list_parse(NULL, f.value, f.value_len, &l),
                   0);
  assert_int_equal(l->count, 2);
  assert_string_equal(l->addresses[0], "john@x");
  assert_string_equal(l->addresses[1], "jane@x");
  smtpuv_address_list_free(l);
}

static int address_list_step(const smtpuv_mem *mem) {
  /* more than one growth of the array */
  static const char v[] = "a1@x, a2@x, a3@x, a4@x, a5@x, a6@x, a7@x, a8@x, "
                          "a9@x, a10@x, a11@x, a12@x, a13@x, a14@x, a15@x, "
                          "a16@x, a17@x";
  smtpuv_address_list *l;
  int rc = smtpuv_address_list_parse(mem, v, sizeof v - 1, &l);
  if (rc != 0) {
    assert_null(l);
    return rc;
  }
  assert_int_equal(l->count, 17);
  assert_string_equal(l->addresses[16], "a17@x");
  smtpuv_address_list_free(l);
  return 0;
}

static void test_address_list_failmalloc(void **state) {
  (void)state;
  each_failing_alloc(address_list_step);
}

/* A message wrapped with many Bcc fields (the inline table grows). */
static int wrap_step(const smtpuv_mem *mem) {
  char big[4096], out[4096];
  size_t n = 0, len;
  for (int i = 0; i < 40; i++)
    n += (size_t)snprintf(big + n, sizeof big - n, "Bcc: b%d@x\r\nX-%d: y\r\n",
                          i, i);
  n += (size_t)snprintf(big + n, sizeof big - n, "\r\nbody\r\n");
  smtpuv_message *m;
  int rc = smtpuv_message_wrap(mem, big, n, &m);
  if (rc != 0)
    return rc;
  smtpuv_body b;
  smtpuv_message_body(m, &b);
  read_all(&b, out, sizeof out, &len);
  assert_int_equal(len, b.size);
  assert_memory_equal(out, "X-0: y\r\nX-1: y\r\n", 16);
  assert_memory_equal(out + len - 8, "\r\nbody\r\n", 8);
  smtpuv_message_free(m);
  return 0;
}

/* A message whose envelope is given: only the Bcc-free body. */
static void test_message_wrap(void **state) {
  (void)state;
  static const char msg[] = "Subject: no From, no To\r\n"
                            "Bcc: hidden@example.com,\r\n second@example.com\r\n"
                            "\r\n"
                            "Bcc: body text\r\n";
  static const char want[] = "Subject: no From, no To\r\n"
                             "\r\n"
                             "Bcc: body text\r\n";
  smtpuv_message *m;
  assert_int_equal(smtpuv_message_new(NULL, msg, sizeof msg - 1, &m),
                   SMTPUV_EHEADER);
  assert_int_equal(smtpuv_message_wrap(NULL, msg, sizeof msg - 1, &m), 0);
  assert_null(smtpuv_message_envelope(m));
  expect_stripped(m, want, sizeof want - 1);
  smtpuv_message_free(m);
  smtpuv_body b;

  /* no header block, an empty message: the data itself */
  static const char *const plain[] = {"just text\r\nBcc: x@example.com\r\n",
                                      ""};
  for (int i = 0; i < 2; i++) {
    assert_int_equal(
        smtpuv_message_wrap(NULL, plain[i], strlen(plain[i]), &m), 0);
    smtpuv_message_body(m, &b);
    assert_null(b.read);
    assert_ptr_equal(b.data, plain[i]);
    assert_int_equal(b.len, strlen(plain[i]));
    smtpuv_message_free(m);
  }
  assert_int_equal(smtpuv_message_wrap(NULL, NULL, 0, &m), 0);
  smtpuv_message_free(m);
  assert_int_equal(smtpuv_message_wrap(NULL, NULL, 1, &m), SMTPUV_EINVAL);
  assert_null(m);
  assert_int_equal(smtpuv_message_wrap(NULL, "x", 1, NULL), SMTPUV_EINVAL);
  assert_null(smtpuv_message_envelope(NULL));
  each_failing_alloc(wrap_step);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_options),
      cmocka_unit_test(test_tls_extra_options),
      cmocka_unit_test(test_client_args),
      cmocka_unit_test(test_names),
      cmocka_unit_test(test_result_dup),
      cmocka_unit_test(test_envelope_from_headers),
      cmocka_unit_test(test_body_without_bcc),
      cmocka_unit_test(test_message_failmalloc),
      cmocka_unit_test(test_header_next),
      cmocka_unit_test(test_address_list),
      cmocka_unit_test(test_address_list_failmalloc),
      cmocka_unit_test(test_message_wrap),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

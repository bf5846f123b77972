/* SPDX-License-Identifier: MIT */
/* TLS decisions of the conversation and its probe modes, socket-free:
 * STARTTLS (the handshake is asked for with take_start_tls() and reported
 * with tls_established()), bytes after STARTTLS's 220 (SMTPUV_EINJECT),
 * TLS required and not offered or refused, opportunistic TLS, implicit
 * TLS, a failed handshake, AUTH only after TLS, the TLS summary on results,
 * and the probe: greeting, EHLO, STARTTLS + EHLO, QUIT, with AUTH in
 * PROBE_AUTH (a credentials check). Nothing but EHLO and STARTTLS is ever
 * written before the handshake when TLS is required. */
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
#define ENV1 "MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n"
#define OK "250 2.0.0 Ok\r\n"
#define GO "354 go ahead\r\n"
#define QUEUED "250 2.0.0 Ok: queued\r\n"
#define SUMMARY "TLSv1.3 TLS_AES_256_GCM_SHA384; subject CN=mx.test"

static const char msg[] = "Subject: t\r\n\r\nhello\r\n";
#define MSG_WIRE "Subject: t\r\n\r\nhello\r\n.\r\n"
static const char *one[] = {"b@example.com"};

static int submit1(h *x) {
  return h_submit(x, "a@example.com", one, 1, msg, sizeof msg - 1);
}

/* ---- STARTTLS -------------------------------------------------------------------- */

static void sc_starttls(h *x, void *arg) {
  smtpuv_tls_mode mode = *(smtpuv_tls_mode *)arg;
  x->cfg.tls = mode;
  h_start(x);
  submit1(x);
  h_server(x, GREETING);
  h_expect(x, EHLO_CMD);
  h_server(x, "250-mx.test\r\n250-PIPELINING\r\n250-AUTH PLAIN\r\n"
              "250 STARTTLS\r\n");
  h_expect(x, "STARTTLS\r\n");
  H_CHECK(x, !x->tls_wanted);
  h_server(x, "220 2.0.0 go ahead\r\n");
  /* nothing more in plaintext: the transport starts the handshake */
  h_expect_none(x);
  H_CHECK(x, x->tls_wanted && x->tls_asks == 1);
  H_CHECK(x, smtpuv__conv_in_setup(x->cv));
  H_CHECK(x, smtpuv__conv_tls_summary(x->cv) == NULL);
  h_tls_up(x, SUMMARY);
  assert_string_equal(smtpuv__conv_tls_summary(x->cv), SUMMARY);
  /* the second EHLO, then the message */
  h_expect(x, EHLO_CMD);
  h_server(x, "250-mx.test\r\n250-PIPELINING\r\n250 AUTH PLAIN\r\n");
  h_expect(x, ENV1);
  h_server(x, OK OK GO);
  h_expect(x, MSG_WIRE);
  h_server(x, QUEUED);
  H_CHECK(x, x->res[0].status == SMTPUV_SEND_SENT);
  H_CHECK(x, x->res[0].has_tls);
  assert_string_equal(x->res[0].tls, SUMMARY);
  H_CHECK(x, strstr(x->trace, "* ") != NULL);
  H_CHECK(x, x->tls_asks == 1);
}

static void test_starttls(void **state) {
  (void)state;
  smtpuv_tls_mode m[] = {SMTPUV_TLS_REQUIRED, SMTPUV_TLS_OPPORTUNISTIC};
  for (int i = 0; i < 2; i++)
    h_run(i ? "STARTTLS, opportunistic" : "STARTTLS, required", sc_starttls,
          &m[i], H_ALL_MODES);
}

/* Bytes after STARTTLS's 220 in the same read: response injection. */
static void sc_injection(h *x, void *arg) {
  (void)arg;
  x->cfg.tls = SMTPUV_TLS_REQUIRED;
  h_start(x);
  submit1(x);
  h_server(x, GREETING);
  h_server(x, "250-mx.test\r\n250 STARTTLS\r\n");
  h_expect(x, EHLO_CMD "STARTTLS\r\n");
  h_server_whole(x, "220 2.0.0 go ahead\r\n250-mx.test\r\n250 AUTH PLAIN\r\n");
  H_CHECK(x, h_end_kind(x) == SMTPUV__CONV_ABORT);
  H_CHECK(x, x->end_err == SMTPUV_EINJECT);
  H_CHECK(x, x->tls_asks == 0); /* no handshake over a poisoned stream */
  H_CHECK(x, x->failed);
  H_CHECK(x, x->fail_error == SMTPUV_EINJECT);
  H_CHECK(x, x->fail_phase == SMTPUV_PHASE_TLS);
  H_CHECK(x, x->res[0].by_failure && x->res[0].error == SMTPUV_EINJECT);
  h_expect_none(x);
}

static void test_starttls_injection(void **state) {
  (void)state;
  h_run("STARTTLS injection", sc_injection, NULL, H_WHOLE_ONLY);
}

/* Plaintext arriving while the handshake is awaited (a transport that
   reported it anyway) is never taken as a reply. */
static void sc_plaintext_during_handshake(h *x, void *arg) {
  (void)arg;
  x->cfg.tls = SMTPUV_TLS_REQUIRED;
  h_start(x);
  submit1(x);
  h_server(x, GREETING);
  h_server(x, "250-mx.test\r\n250 STARTTLS\r\n");
  h_expect(x, EHLO_CMD "STARTTLS\r\n");
  h_server(x, "220 2.0.0 go ahead\r\n");
  H_CHECK(x, x->tls_wanted);
  h_server(x, "250-mx.test\r\n250 AUTH PLAIN\r\n");
  H_CHECK(x, h_end_kind(x) == SMTPUV__CONV_ABORT);
  h_expect_none(x);
  H_CHECK(x, x->res[0].by_failure);
}

/* The same before an implicit-TLS handshake: bytes that did not come
   through TLS are not a greeting (found by fuzz_conv: the greeting was
   taken and EHLO written before the handshake). */
static void sc_plaintext_before_implicit(h *x, void *arg) {
  (void)arg;
  x->cfg.tls = SMTPUV_TLS_IMPLICIT;
  h_start(x);
  submit1(x);
  H_CHECK(x, x->tls_wanted);
  h_server(x, GREETING);
  H_CHECK(x, h_end_kind(x) == SMTPUV__CONV_ABORT);
  H_CHECK(x, x->alllen == 0);
  H_CHECK(x, x->failed && x->fail_phase == SMTPUV_PHASE_TLS);
  H_CHECK(x, x->res[0].by_failure);
}

static void test_plaintext_during_handshake(void **state) {
  (void)state;
  h_run("plaintext during the handshake", sc_plaintext_during_handshake, NULL,
        H_ALL_MODES);
  h_run("plaintext before the implicit handshake", sc_plaintext_before_implicit,
        NULL, H_ALL_MODES);
}

static void sc_required_not_offered(h *x, void *arg) {
  (void)arg;
  x->cfg.tls = SMTPUV_TLS_REQUIRED;
  h_start(x);
  submit1(x);
  h_server(x, GREETING);
  h_server(x, "250-mx.test\r\n250-PIPELINING\r\n250 AUTH PLAIN\r\n");
  h_expect(x, EHLO_CMD "QUIT\r\n");
  H_CHECK(x, x->failed);
  H_CHECK(x, x->fail_error == SMTPUV_ENOTLS);
  H_CHECK(x, x->fail_phase == SMTPUV_PHASE_TLS);
  H_CHECK(x, x->res[0].by_failure && x->res[0].error == SMTPUV_ENOTLS);
  h_server(x, "221 bye\r\n");
  H_CHECK(x, h_end_kind(x) == SMTPUV__CONV_FINISH);
}

static void test_tls_required_not_offered(void **state) {
  (void)state;
  h_run("TLS required, not offered", sc_required_not_offered, NULL,
        H_ALL_MODES);
}

static void sc_starttls_refused(h *x, void *arg) {
  smtpuv_tls_mode mode = *(smtpuv_tls_mode *)arg;
  x->cfg.tls = mode;
  h_start(x);
  submit1(x);
  h_server(x, GREETING);
  h_server(x, "250-mx.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n");
  h_expect(x, EHLO_CMD "STARTTLS\r\n");
  h_server(x, "454 4.7.0 TLS not available\r\n");
  if (mode == SMTPUV_TLS_REQUIRED) {
    h_expect(x, "QUIT\r\n");
    H_CHECK(x, x->fail_error == SMTPUV_ENOTLS);
    H_CHECK(x, x->fail_phase == SMTPUV_PHASE_TLS);
    H_CHECK(x, x->fail_code == 454);
    H_CHECK(x, x->res[0].by_failure);
    return;
  }
  /* opportunistic: on without TLS (no second EHLO) */
  h_expect(x, ENV1);
  h_server(x, OK OK GO);
  h_expect(x, MSG_WIRE);
  h_server(x, QUEUED);
  H_CHECK(x, x->res[0].status == SMTPUV_SEND_SENT);
  H_CHECK(x, !x->res[0].has_tls);
}

static void test_starttls_refused(void **state) {
  (void)state;
  smtpuv_tls_mode m[] = {SMTPUV_TLS_REQUIRED, SMTPUV_TLS_OPPORTUNISTIC};
  for (int i = 0; i < 2; i++)
    h_run("STARTTLS refused", sc_starttls_refused, &m[i], H_ALL_MODES);
}

/* Opportunistic without STARTTLS, and NONE with it: plaintext. */
static void sc_plaintext(h *x, void *arg) {
  smtpuv_tls_mode mode = *(smtpuv_tls_mode *)arg;
  x->cfg.tls = mode;
  h_start(x);
  submit1(x);
  h_server(x, GREETING);
  h_server(x, mode == SMTPUV_TLS_NONE
                  ? "250-mx.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n"
                  : "250-mx.test\r\n250 PIPELINING\r\n");
  h_expect(x, EHLO_CMD ENV1);
  h_server(x, OK OK GO);
  h_expect(x, MSG_WIRE);
  h_server(x, QUEUED);
  H_CHECK(x, x->res[0].status == SMTPUV_SEND_SENT);
  H_CHECK(x, x->tls_asks == 0);
}

static void test_plaintext_modes(void **state) {
  (void)state;
  smtpuv_tls_mode m[] = {SMTPUV_TLS_NONE, SMTPUV_TLS_OPPORTUNISTIC};
  for (int i = 0; i < 2; i++)
    h_run("plaintext", sc_plaintext, &m[i], H_ALL_MODES);
}

static void sc_implicit(h *x, void *arg) {
  (void)arg;
  x->cfg.tls = SMTPUV_TLS_IMPLICIT;
  h_start(x);
  submit1(x);
  /* the handshake comes first */
  H_CHECK(x, x->tls_wanted);
  h_expect_none(x);
  h_tls_up(x, SUMMARY);
  h_expect_none(x);
  h_server(x, GREETING);
  h_expect(x, EHLO_CMD);
  /* STARTTLS offered over TLS: not used again */
  h_server(x, "250-mx.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n");
  h_expect(x, ENV1);
  h_server(x, OK OK GO);
  h_expect(x, MSG_WIRE);
  h_server(x, QUEUED);
  H_CHECK(x, x->res[0].status == SMTPUV_SEND_SENT);
  assert_string_equal(x->res[0].tls, SUMMARY);
  H_CHECK(x, x->tls_asks == 1);
}

static void test_implicit_tls(void **state) {
  (void)state;
  h_run("implicit TLS", sc_implicit, NULL, H_ALL_MODES);
}

/* The handshake fails (certificate): a setup failure in phase TLS. */
static void sc_handshake_fails(h *x, void *arg) {
  int implicit = *(int *)arg;
  x->cfg.tls = implicit ? SMTPUV_TLS_IMPLICIT : SMTPUV_TLS_REQUIRED;
  h_start(x);
  submit1(x);
  if (!implicit) {
    h_server(x, GREETING);
    h_server(x, "250-mx.test\r\n250 STARTTLS\r\n");
    h_expect(x, EHLO_CMD "STARTTLS\r\n");
    h_server(x, "220 2.0.0 go ahead\r\n");
  }
  H_CHECK(x, x->tls_wanted);
  h_fail(x, SMTPUV_ECERT, "certificate verify failed: hostname mismatch");
  H_CHECK(x, h_end_kind(x) == SMTPUV__CONV_ABORT);
  H_CHECK(x, x->end_err == SMTPUV_ECERT);
  H_CHECK(x, x->fail_error == SMTPUV_ECERT);
  H_CHECK(x, x->fail_phase == SMTPUV_PHASE_TLS);
  H_CHECK(x, strstr(x->fail_message, "hostname mismatch") != NULL);
  H_CHECK(x, x->res[0].by_failure && x->res[0].error == SMTPUV_ECERT);
  h_expect_none(x);
}

static void test_handshake_fails(void **state) {
  (void)state;
  for (int implicit = 0; implicit < 2; implicit++)
    h_run("handshake fails", sc_handshake_fails, &implicit, H_ALL_MODES);
}

/* AUTH with TLS required is written only after the handshake, even when
   the plaintext EHLO offers it; no plaintext AUTH is ever needed. */
static void sc_auth_after_tls(h *x, void *arg) {
  (void)arg;
  smtpuv_auth *a;
  assert_int_equal(smtpuv_auth_plain_new(NULL, NULL, "user", "s3cr3t", &a), 0);
  x->cfg.auth = a;
  x->cfg.tls = SMTPUV_TLS_REQUIRED;
  h_start(x);
  submit1(x);
  h_server(x, GREETING);
  h_server(x, "250-mx.test\r\n250-AUTH PLAIN\r\n250 STARTTLS\r\n");
  h_expect(x, EHLO_CMD "STARTTLS\r\n");
  h_server(x, "220 go ahead\r\n");
  h_tls_up(x, SUMMARY);
  h_expect(x, EHLO_CMD);
  h_server(x, "250-mx.test\r\n250-PIPELINING\r\n250 AUTH PLAIN\r\n");
  h_expect(x, "AUTH PLAIN AHVzZXIAczNjcjN0\r\n");
  h_server(x, "235 2.7.0 ok\r\n");
  h_expect(x, ENV1);
  h_server(x, OK OK GO);
  h_expect(x, MSG_WIRE);
  h_server(x, QUEUED);
  H_CHECK(x, x->res[0].status == SMTPUV_SEND_SENT);
  h_end(x);
  smtpuv_auth_free(a);
}

static void test_auth_after_tls(void **state) {
  (void)state;
  h_run("AUTH after TLS", sc_auth_after_tls, NULL, H_ALL_MODES);
}

/* ---- probe -------------------------------------------------------------------------- */

#define EXT_PROBE                                                              \
  "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-AUTH PLAIN login\r\n" \
  "250 8BITMIME\r\n"

static void sc_probe(h *x, void *arg) {
  int creds = *(int *)arg;
  smtpuv_auth *a = NULL;
  if (creds) {
    assert_int_equal(smtpuv_auth_plain_new(NULL, NULL, "u", "p", &a), 0);
    x->cfg.auth = a;
    x->cfg.allow_plain_auth = 1;
  }
  x->cfg.mode = SMTPUV__CONV_PROBE;
  h_start(x);
  h_server(x, GREETING);
  h_expect(x, EHLO_CMD);
  h_server(x, EXT_PROBE);
  /* EHLO and QUIT, nothing else (credentials are never used) */
  h_expect(x, "QUIT\r\n");
  h_server(x, "221 2.0.0 bye\r\n");
  H_CHECK(x, h_end_kind(x) == SMTPUV__CONV_FINISH);
  smtpuv__conv_probe r;
  smtpuv__conv_probe_result(x->cv, &r);
  H_CHECK(x, r.error == 0);
  H_CHECK(x, r.phase == SMTPUV_PHASE_QUIT);
  assert_string_equal(r.message, "");
  H_CHECK(x, r.greeting_code == 220);
  assert_string_equal(r.greeting, "mx.test ESMTP");
  assert_string_equal(r.server_name, "mx.test");
  assert_string_equal(r.ext, "PIPELINING\nSIZE 1000\nAUTH PLAIN login\n8BITMIME");
  H_CHECK(x, r.ext_plain == NULL);
  H_CHECK(x, r.max_size == 1000);
  assert_string_equal(r.auth_mechanisms, "PLAIN LOGIN");
  H_CHECK(x, (r.ext_flags & (SMTPUV_EXT_PIPELINING | SMTPUV_EXT_SIZE |
                             SMTPUV_EXT_AUTH | SMTPUV_EXT_8BITMIME |
                             SMTPUV_EXT_STARTTLS)) ==
                 (SMTPUV_EXT_PIPELINING | SMTPUV_EXT_SIZE | SMTPUV_EXT_AUTH |
                  SMTPUV_EXT_8BITMIME));
  H_CHECK(x, !r.authenticated);
  H_CHECK(x, !x->failed);
  H_CHECK(x, strstr(x->trace, "C: EHLO client.test\r\n") != NULL);
  H_CHECK(x, strstr(x->trace, "S: 2") != NULL);
  h_end(x);
  smtpuv_auth_free(a);
}

static void test_probe(void **state) {
  (void)state;
  for (int creds = 0; creds < 2; creds++)
    h_run(creds ? "probe ignores credentials" : "probe", sc_probe, &creds,
          H_ALL_MODES);
}

static void sc_probe_starttls(h *x, void *arg) {
  (void)arg;
  x->cfg.mode = SMTPUV__CONV_PROBE;
  x->cfg.tls = SMTPUV_TLS_REQUIRED;
  h_start(x);
  h_server(x, GREETING);
  h_server(x, "250-mx.test\r\n250-STARTTLS\r\n250 SIZE 10\r\n");
  h_expect(x, EHLO_CMD "STARTTLS\r\n");
  h_server(x, "220 go ahead\r\n");
  h_tls_up(x, SUMMARY);
  h_expect(x, EHLO_CMD);
  h_server(x, "250-mx.test\r\n250-SIZE 20\r\n250 AUTH PLAIN\r\n");
  h_expect(x, "QUIT\r\n");
  h_server(x, "221 bye\r\n");
  smtpuv__conv_probe r;
  smtpuv__conv_probe_result(x->cv, &r);
  H_CHECK(x, r.error == 0);
  assert_string_equal(r.ext, "SIZE 20\nAUTH PLAIN");
  H_CHECK(x, r.ext_plain != NULL);
  assert_string_equal(r.ext_plain, "STARTTLS\nSIZE 10");
  H_CHECK(x, r.max_size == 20);
  assert_string_equal(smtpuv__conv_tls_summary(x->cv), SUMMARY);
}

static void test_probe_starttls(void **state) {
  (void)state;
  h_run("probe with STARTTLS", sc_probe_starttls, NULL, H_ALL_MODES);
}

static void sc_probe_required_not_offered(h *x, void *arg) {
  (void)arg;
  x->cfg.mode = SMTPUV__CONV_PROBE;
  x->cfg.tls = SMTPUV_TLS_REQUIRED;
  h_start(x);
  h_server(x, GREETING);
  h_server(x, EXT_PROBE);
  h_expect(x, EHLO_CMD "QUIT\r\n");
  smtpuv__conv_probe r;
  smtpuv__conv_probe_result(x->cv, &r);
  H_CHECK(x, r.error == SMTPUV_ENOTLS);
  /* the plaintext extensions are still reported */
  H_CHECK(x, r.max_size == 1000);
  assert_string_equal(r.auth_mechanisms, "PLAIN LOGIN");
  H_CHECK(x, strstr(r.ext, "PIPELINING") != NULL);
  H_CHECK(x, strstr(r.message, "STARTTLS") != NULL);
}

static void test_probe_tls_required_not_offered(void **state) {
  (void)state;
  h_run("probe, TLS required not offered", sc_probe_required_not_offered,
        NULL, H_ALL_MODES);
}

typedef struct probe_case {
  smtpuv_tls_mode tls;
  const char *greeting; /* NULL: the usual one */
  const char *ehlo;     /* reply to EHLO; NULL: the connection closes */
  int error;
  smtpuv_phase phase;
  int greeting_code;
  const char *message;
} probe_case;

static void sc_probe_failure(h *x, void *arg) {
  const probe_case *c = arg;
  x->cfg.mode = SMTPUV__CONV_PROBE;
  x->cfg.tls = c->tls;
  h_start(x);
  h_server(x, c->greeting != NULL ? c->greeting : GREETING);
  if (c->greeting_code == 220) {
    if (c->ehlo != NULL)
      h_server(x, c->ehlo);
    else
      h_fail(x, SMTPUV_ECONNLOST, "connection closed by the server");
  }
  char *out;
  h_take_out(x, &out);
  if (out[0] != '\0' && strstr(out, "QUIT") != NULL &&
      h_end_kind(x) == SMTPUV__CONV_RUN)
    h_server(x, "221 bye\r\n");
  H_CHECK(x, strstr(out, "MAIL") == NULL && strstr(out, "AUTH") == NULL);
  free(out);
  smtpuv__conv_probe r;
  smtpuv__conv_probe_result(x->cv, &r);
  if (r.error != c->error || r.phase != c->phase ||
      r.greeting_code != c->greeting_code ||
      strstr(r.message, c->message) == NULL)
    fail_msg("%s [%s] (greeting %s, EHLO %s): %s in %s, greeting %d: %s",
             x->name, h_mode_name(x), c->greeting ? c->greeting : "220",
             c->ehlo ? c->ehlo : "closed",
             smtpuv_err_name(r.error), smtpuv_phase_name(r.phase),
             r.greeting_code, r.message);
  if (c->phase == SMTPUV_PHASE_GREETING)
    assert_string_equal(r.server_name, "");
}

static void test_probe_failures(void **state) {
  (void)state;
  static const probe_case cases[] = {
      {SMTPUV_TLS_NONE, "554 no service here\r\n", NULL, SMTPUV_EPERMFAIL,
       SMTPUV_PHASE_GREETING, 554, "554 no service here"},
      /* 421 is the server closing: ESHUTDOWN, as for a send */
      {SMTPUV_TLS_NONE, "421 busy, later\r\n", NULL, SMTPUV_ESHUTDOWN,
       SMTPUV_PHASE_GREETING, 421, "421"},
      /* EHLO refused with TLS required: no HELO fallback */
      {SMTPUV_TLS_REQUIRED, NULL, "550 5.5.1 go away\r\n", SMTPUV_EPERMFAIL,
       SMTPUV_PHASE_EHLO, 220, "550 5.5.1 go away"},
      {SMTPUV_TLS_NONE, NULL, NULL, SMTPUV_ECONNLOST, SMTPUV_PHASE_EHLO, 220,
       "closed"},
      {SMTPUV_TLS_NONE, NULL, "hello there\r\n", SMTPUV_EPROTO,
       SMTPUV_PHASE_EHLO, 220, ""},
      {SMTPUV_TLS_NONE, "220 hi\r\n421 shutting down\r\n", "",
       SMTPUV_ESHUTDOWN, SMTPUV_PHASE_EHLO, 220, "421 shutting down"},
  };

  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    h_run("probe failure", sc_probe_failure, (void *)&cases[i], H_ALL_MODES);
}

/* The probe is the same conversation: EHLO refused without TLS required
   falls back to HELO; STARTTLS refused with opportunistic TLS goes on in
   plaintext. Both end complete. */
static void sc_probe_fallbacks(h *x, void *arg) {
  int k = *(int *)arg;
  x->cfg.mode = SMTPUV__CONV_PROBE;
  x->cfg.tls = k ? SMTPUV_TLS_OPPORTUNISTIC : SMTPUV_TLS_NONE;
  h_start(x);
  h_server(x, GREETING);
  h_expect(x, EHLO_CMD);
  if (k == 0) {
    h_server(x, "502 5.5.2 what?\r\n");
    h_expect(x, "HELO client.test\r\n");
    h_server(x, "250 mx.test\r\n");
  } else {
    h_server(x, "250-mx.test\r\n250-SIZE 10\r\n250 STARTTLS\r\n");
    h_expect(x, "STARTTLS\r\n");
    h_server(x, "502 5.5.2 no\r\n");
  }
  h_expect(x, "QUIT\r\n");
  h_server(x, "221 bye\r\n");
  smtpuv__conv_probe r;
  smtpuv__conv_probe_result(x->cv, &r);
  H_CHECK(x, r.error == 0);
  H_CHECK(x, r.phase == SMTPUV_PHASE_QUIT);
  if (k == 1)
    H_CHECK(x, r.max_size == 10);
  H_CHECK(x, x->tls_asks == 0);
}

static void test_probe_fallbacks(void **state) {
  (void)state;
  for (int k = 0; k < 2; k++)
    h_run(k ? "probe, STARTTLS refused" : "probe, HELO", sc_probe_fallbacks,
          &k, H_ALL_MODES);
}

static void sc_probe_silent(h *x, void *arg) {
  (void)arg;
  x->cfg.mode = SMTPUV__CONV_PROBE;
  x->cfg.timeouts[SMTPUV_TIMEOUT_COMMAND] = 200;
  h_start(x);
  h_advance(x, 200);
  H_CHECK(x, h_end_kind(x) == SMTPUV__CONV_ABORT);
  smtpuv__conv_probe r;
  smtpuv__conv_probe_result(x->cv, &r);
  H_CHECK(x, r.error == SMTPUV_ETIMEDOUT);
  H_CHECK(x, r.phase == SMTPUV_PHASE_GREETING);
  H_CHECK(x, r.greeting_code == 0);
}

static void test_probe_silent_greeting(void **state) {
  (void)state;
  h_run("probe, silent greeting", sc_probe_silent, NULL, H_WHOLE_ONLY);
}

/* PROBE_AUTH: the probe, then AUTH, then QUIT. */
static void sc_probe_auth(h *x, void *arg) {
  int ok = *(int *)arg;
  smtpuv_auth *a;
  assert_int_equal(smtpuv_auth_plain_new(NULL, NULL, "user", "s3cr3t", &a), 0);
  x->cfg.auth = a;
  x->cfg.allow_plain_auth = 1;
  x->cfg.mode = SMTPUV__CONV_PROBE_AUTH;
  h_start(x);
  h_server(x, GREETING);
  h_expect(x, EHLO_CMD);
  h_server(x, EXT_PROBE);
  h_expect(x, "AUTH PLAIN AHVzZXIAczNjcjN0\r\n");
  h_server(x, ok ? "235 2.7.0 ok\r\n" : "535 5.7.8 bad credentials\r\n");
  h_expect(x, "QUIT\r\n");
  h_server(x, "221 bye\r\n");
  H_CHECK(x, h_end_kind(x) == SMTPUV__CONV_FINISH);
  smtpuv__conv_probe r;
  smtpuv__conv_probe_result(x->cv, &r);
  H_CHECK(x, r.authenticated == ok);
  if (ok) {
    H_CHECK(x, r.error == 0);
    assert_string_equal(r.auth_mechanism, "PLAIN");
  } else {
    H_CHECK(x, r.error != 0);
    H_CHECK(x, r.phase == SMTPUV_PHASE_AUTH);
    H_CHECK(x, strstr(r.message, "535") != NULL ||
                   strstr(r.message, "bad credentials") != NULL);
  }
  H_CHECK(x, strstr(x->trace, "s3cr3t") == NULL);
  H_CHECK(x, strstr(x->trace, "AHVzZXIAczNjcjN0") == NULL);
  h_end(x);
  smtpuv_auth_free(a);
}

static void test_probe_auth(void **state) {
  (void)state;
  for (int ok = 0; ok < 2; ok++)
    h_run(ok ? "probe+AUTH" : "probe+AUTH refused", sc_probe_auth, &ok,
          H_ALL_MODES);
}

/* PROBE_AUTH still refuses plaintext AUTH unless allowed. */
static void sc_probe_auth_plaintext(h *x, void *arg) {
  (void)arg;
  smtpuv_auth *a;
  assert_int_equal(smtpuv_auth_plain_new(NULL, NULL, "user", "s3cr3t", &a), 0);
  x->cfg.auth = a;
  x->cfg.tls = SMTPUV_TLS_OPPORTUNISTIC;
  x->cfg.mode = SMTPUV__CONV_PROBE_AUTH;
  h_start(x);
  h_server(x, GREETING);
  h_server(x, EXT_PROBE);
  h_expect(x, EHLO_CMD "QUIT\r\n");
  smtpuv__conv_probe r;
  smtpuv__conv_probe_result(x->cv, &r);
  H_CHECK(x, r.error == SMTPUV_EPLAINTEXT);
  H_CHECK(x, !r.authenticated);
  h_end(x);
  smtpuv_auth_free(a);
}

static void test_probe_auth_plaintext(void **state) {
  (void)state;
  h_run("probe+AUTH over plaintext", sc_probe_auth_plaintext, NULL,
        H_ALL_MODES);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_starttls),
      cmocka_unit_test(test_starttls_injection),
      cmocka_unit_test(test_plaintext_during_handshake),
      cmocka_unit_test(test_tls_required_not_offered),
      cmocka_unit_test(test_starttls_refused),
      cmocka_unit_test(test_plaintext_modes),
      cmocka_unit_test(test_implicit_tls),
      cmocka_unit_test(test_handshake_fails),
      cmocka_unit_test(test_auth_after_tls),
      cmocka_unit_test(test_probe),
      cmocka_unit_test(test_probe_starttls),
      cmocka_unit_test(test_probe_tls_required_not_offered),
      cmocka_unit_test(test_probe_failures),
      cmocka_unit_test(test_probe_fallbacks),
      cmocka_unit_test(test_probe_silent_greeting),
      cmocka_unit_test(test_probe_auth),
      cmocka_unit_test(test_probe_auth_plaintext),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

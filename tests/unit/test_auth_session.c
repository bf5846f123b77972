/* SPDX-License-Identifier: MIT */
/* The AUTH driver (smtpuv_auth_session) end to end against the real
 * protocol core: server bytes are fed (whole and one byte at a time), the
 * client's bytes are compared exactly. Covers every built-in mechanism,
 * failure replies at each step, malformed challenges, cancellation, the
 * XOAUTH2/OAUTHBEARER error challenge, asynchronous tokens, the token
 * refresh, long initial responses, auto selection, and allocation failures
 * at every point of whole sessions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "auth/auth_int.h"
#include "auth/scram_int.h"
#include "smtpuv.h"
#include "support.h"

/* ---- harness ------------------------------------------------------------ */

typedef struct h {
  test_mem tm;
  smtpuv_proto *p;
  smtpuv_auth *a;
  smtpuv_auth_session *s;
  int bytewise;      /* feed one byte at a time */
  int last;          /* last result of on_reply (or resume from ready) */
  int auth_replies;  /* AUTH replies handed to the session */
  int other_err;     /* a non-AUTH reply or a proto error */
  int ready_calls;
  int resume_in_ready;
  char out[16384];
} h;

static void on_ready(smtpuv_auth_session *s, void *data) {
  h *x = data;
  x->ready_calls++;
  if (x->resume_in_ready)
    x->last = smtpuv_auth_session_resume(s);
}

/* Pop and dispatch every complete reply. Returns a proto error or 0. */
static int pump(h *x) {
  smtpuv_reply r;
  int rc;
  while ((rc = smtpuv_proto_next_reply(x->p, &r)) == 1) {
    if (r.command == SMTPUV_CMD_AUTH && x->s != NULL) {
      x->auth_replies++;
      x->last = smtpuv_auth_session_on_reply(x->s, &r);
    }
  }
  return rc;
}

/* Feed `bytes` (whole or byte-wise), dispatching replies as they complete. */
static int feed(h *x, const char *bytes) {
  size_t n = strlen(bytes);
  if (!x->bytewise) {
    int rc = smtpuv_proto_feed(x->p, bytes, n);
    return rc != 0 ? rc : pump(x);
  }
  for (size_t i = 0; i < n; i++) {
    int rc = smtpuv_proto_feed(x->p, bytes + i, 1);
    if (rc == 0)
      rc = pump(x);
    if (rc != 0)
      return rc;
  }
  return 0;
}

/* Everything the client wrote since the last call. */
static const char *out(h *x) {
  size_t used = 0;
  const void *ptr;
  size_t len;
  for (;;) {
    smtpuv_proto_outgoing(x->p, &ptr, &len);
    if (len == 0)
      break;
    assert_true(used + len < sizeof(x->out));
    memcpy(x->out + used, ptr, len);
    used += len;
    smtpuv_proto_consumed(x->p, len);
  }
  x->out[used] = '\0';
  return x->out;
}

#define EHLO_REPLY(auth)                                                       \
  "250-mx.example.com Hello\r\n250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n" \
  "250-AUTH " auth "\r\n250 8BITMIME\r\n"

/* Greeting, EHLO with `ehlo_reply`; the proto is READY. Non-fatal version
   for the allocation-failure runs: returns the first error. */
static int h_open(h *x, unsigned long fail_at, const char *ehlo_reply) {
  memset(x, 0, sizeof(*x));
  test_mem_init(&x->tm, fail_at);
  int rc = smtpuv_proto_new(&x->tm.mem, &x->p);
  if (rc == 0)
    rc = feed(x, "220 mx.example.com ESMTP\r\n");
  if (rc == 0)
    rc = smtpuv_proto_ehlo(x->p, "client.example.com");
  if (rc == 0 && strcmp(out(x), "EHLO client.example.com\r\n") != 0)
    rc = -999;
  if (rc == 0)
    rc = feed(x, ehlo_reply);
  if (rc == 0 && smtpuv_proto_state(x->p) != SMTPUV_STATE_READY)
    rc = -998;
  return rc;
}

static void h_init(h *x, const char *ehlo_reply) {
  assert_int_equal(h_open(x, 0, ehlo_reply), 0);
}

static void h_session(h *x) {
  assert_int_equal(smtpuv_auth_session_new(&x->tm.mem, x->p, x->a, on_ready,
                                           x, &x->s),
                   0);
}

static void h_close(h *x) {
  smtpuv_auth_session_free(x->s);
  smtpuv_auth_free(x->a);
  smtpuv_proto_free(x->p);
  x->s = NULL;
  x->a = NULL;
  x->p = NULL;
  assert_int_equal(x->tm.live, 0);
}

static const char *b64(const char *s, size_t len) {
  static char buf[4][4096];
  static int i;
  char *enc = NULL;
  assert_int_equal(smtpuv__b64_encode(smtpuv_mem_default(), s, len, &enc), 0);
  i = (i + 1) % 4;
  snprintf(buf[i], sizeof(buf[i]), "%s", enc);
  smtpuv__secret_free(smtpuv_mem_default(), enc);
  return buf[i];
}

#define B64S(lit) b64(lit, sizeof(lit) - 1)

/* ---- success paths, each fed whole and byte-wise ---------------------------- */

static void plain_success(int bytewise) {
  h x;
  h_init(&x, EHLO_REPLY("PLAIN LOGIN"));
  x.bytewise = bytewise;
  assert_int_equal(smtpuv_auth_plain_new(&x.tm.mem, NULL, "tim",
                                         "tanstaaftanstaaf", &x.a),
                   0);
  h_session(&x);
  assert_int_equal(smtpuv_auth_session_status(x.s), SMTPUV_AUTH_PENDING);
  assert_int_equal(smtpuv_auth_session_start(x.s), SMTPUV_AUTH_PENDING);
  assert_string_equal(smtpuv_auth_session_mechanism(x.s), "PLAIN");
  assert_string_equal(out(&x), "AUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm\r\n");
  assert_int_equal(smtpuv_proto_state(x.p), SMTPUV_STATE_AUTHENTICATING);
  assert_int_equal(feed(&x, "235 2.7.0 Authentication successful\r\n"), 0);
  assert_int_equal(x.last, 0);
  assert_int_equal(smtpuv_auth_session_status(x.s), 0);
  assert_string_equal(smtpuv_auth_session_error_text(x.s), "");
  assert_int_equal(smtpuv_proto_state(x.p), SMTPUV_STATE_READY);
  /* finished: another reply is refused, start too */
  assert_int_equal(smtpuv_auth_session_start(x.s), SMTPUV_ESTATE);
  h_close(&x);
}

static void test_plain(void **st) {
  (void)st;
  plain_success(0);
  plain_success(1);
}

static void login_success(int bytewise) {
  h x;
  h_init(&x, EHLO_REPLY("LOGIN"));
  x.bytewise = bytewise;
  assert_int_equal(smtpuv_auth_login_new(&x.tm.mem, "tim", "s3cr3t!", &x.a),
                   0);
  h_session(&x);
  assert_int_equal(smtpuv_auth_session_start(x.s), SMTPUV_AUTH_PENDING);
  assert_string_equal(out(&x), "AUTH LOGIN\r\n");
  assert_int_equal(feed(&x, "334 VXNlcm5hbWU6\r\n"), 0);
  assert_int_equal(x.last, SMTPUV_AUTH_PENDING);
  assert_string_equal(out(&x), "dGlt\r\n");
  assert_int_equal(feed(&x, "334 UGFzc3dvcmQ6\r\n"), 0);
  assert_string_equal(out(&x), "czNjcjN0IQ==\r\n");
  assert_int_equal(feed(&x, "235 2.7.0 Accepted\r\n"), 0);
  assert_int_equal(x.last, 0);
  assert_int_equal(x.auth_replies, 3);
  h_close(&x);
}

static void test_login(void **st) {
  (void)st;
  login_success(0);
  login_success(1);
}

static void test_cram_md5_rfc2195(void **st) {
  (void)st;
  for (int bw = 0; bw < 2; bw++) {
    h x;
    h_init(&x, EHLO_REPLY("CRAM-MD5"));
    x.bytewise = bw;
    assert_int_equal(smtpuv_auth_cram_md5_new(&x.tm.mem, "tim",
                                              "tanstaaftanstaaf", &x.a),
                     0);
    h_session(&x);
    assert_int_equal(smtpuv_auth_session_start(x.s), SMTPUV_AUTH_PENDING);
    assert_string_equal(out(&x), "AUTH CRAM-MD5\r\n");
    assert_int_equal(
        feed(&x,
             "334 PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+\r\n"),
        0);
    assert_string_equal(out(&x),
                        "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw\r\n");
    assert_int_equal(feed(&x, "235 2.7.0 ok\r\n"), 0);
    assert_int_equal(x.last, 0);
    h_close(&x);
  }
}

typedef struct scram_case {
  const char *mech, *nonce, *first, *sfirst, *final, *sfinal;
} scram_case;

static const scram_case scram_sha1 = {
    "SCRAM-SHA-1", "fyko+d2lbbFgONRv9qkxdawL",
    "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
    "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
    "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+"
    "HI4Ts=",
    "v=rmF9pqV8S7suAoZWja4dJRkFsKQ="};

static const scram_case scram_sha256 = {
    "SCRAM-SHA-256", "rOprNGfwEbeRWgbNEkqO", "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6"
    "gQ==,i=4096",
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p="
    "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
    "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="};

static void scram_open(h *x, const scram_case *c, int bytewise) {
  h_init(x, EHLO_REPLY("PLAIN SCRAM-SHA-1 SCRAM-SHA-256"));
  x->bytewise = bytewise;
  int rc = strcmp(c->mech, "SCRAM-SHA-1") == 0
               ? smtpuv_auth_scram_sha1_new(&x->tm.mem, NULL, "user", "pencil",
                                            &x->a)
               : smtpuv_auth_scram_sha256_new(&x->tm.mem, NULL, "user",
                                              "pencil", &x->a);
  assert_int_equal(rc, 0);
  assert_int_equal(smtpuv__scram_set_nonce(x->a, c->nonce), 0);
  h_session(x);
  assert_int_equal(smtpuv_auth_session_start(x->s), SMTPUV_AUTH_PENDING);
  char want[512];
  snprintf(want, sizeof(want), "AUTH %s %s\r\n", c->mech,
           b64(c->first, strlen(c->first)));
  assert_string_equal(out(x), want);
  char line[512];
  snprintf(line, sizeof(line), "334 %s\r\n", b64(c->sfirst, strlen(c->sfirst)));
  assert_int_equal(feed(x, line), 0);
  assert_int_equal(x->last, SMTPUV_AUTH_PENDING);
  snprintf(want, sizeof(want), "%s\r\n", b64(c->final, strlen(c->final)));
  assert_string_equal(out(x), want);
}

static void test_scram_rfc_exchanges(void **st) {
  (void)st;
  const scram_case *cases[2] = {&scram_sha1, &scram_sha256};
  for (int k = 0; k < 2; k++)
    for (int bw = 0; bw < 2; bw++) {
      h x;
      scram_open(&x, cases[k], bw);
      char line[512];
      snprintf(line, sizeof(line), "334 %s\r\n",
               b64(cases[k]->sfinal, strlen(cases[k]->sfinal)));
      assert_int_equal(feed(&x, line), 0);
      assert_int_equal(x.last, SMTPUV_AUTH_PENDING);
      assert_string_equal(out(&x), "\r\n");
      assert_int_equal(feed(&x, "235 2.7.0 Authentication successful\r\n"), 0);
      assert_int_equal(x.last, 0);
      assert_string_equal(smtpuv_auth_session_mechanism(x.s), cases[k]->mech);
      h_close(&x);
    }
}

static void test_scram_wrong_server_signature(void **st) {
  (void)st;
  h x;
  scram_open(&x, &scram_sha256, 0);
  /* a signature computed for another password */
  char line[256];
  snprintf(line, sizeof(line), "334 %s\r\n",
           B64S("v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="));
  assert_int_equal(feed(&x, line), 0);
  assert_int_equal(x.last, SMTPUV_AUTH_PENDING);
  assert_string_equal(out(&x), "*\r\n");
  assert_int_equal(feed(&x, "501 5.7.0 Authentication aborted\r\n"), 0);
  assert_int_equal(x.last, SMTPUV_EAUTHSERVER);
  assert_string_equal(smtpuv_auth_session_error_text(x.s),
                      "SCRAM-SHA-256: server signature mismatch");
  assert_int_equal(smtpuv_auth_session_reply_code(x.s), 501);
  assert_int_equal(smtpuv_proto_state(x.p), SMTPUV_STATE_READY);
  h_close(&x);

  /* 235 straight after the client-final: the server never proved itself */
  scram_open(&x, &scram_sha1, 1);
  assert_int_equal(feed(&x, "235 2.7.0 ok\r\n"), 0);
  assert_int_equal(x.last, SMTPUV_EAUTHSERVER);
  assert_string_equal(smtpuv_auth_session_error_text(x.s),
                      "SCRAM-SHA-1: the server reported success without "
                      "proving that it knows the password");
  h_close(&x);

  /* server-final e= */
  scram_open(&x, &scram_sha1, 0);
  snprintf(line, sizeof(line), "334 %s\r\n", B64S("e=invalid-proof"));
  assert_int_equal(feed(&x, line), 0);
  assert_string_equal(out(&x), "*\r\n");
  assert_int_equal(feed(&x, "535 5.7.8 Authentication credentials invalid\r\n"),
                   0);
  assert_int_equal(x.last, SMTPUV_EAUTH);
  assert_string_equal(smtpuv_auth_session_error_text(x.s),
                      "SCRAM-SHA-1: server error: invalid-proof");
  assert_int_equal(smtpuv_auth_session_reply_code(x.s), 535);
  h_close(&x);
}

/* ---- failure replies at each step -------------------------------------------- */

typedef struct fail_case {
  const char *mech;
  int at_step;       /* number of challenges answered before the failure */
  const char *reply; /* the failure */
  int want;
  const char *want_text;
} fail_case;

static void run_fail_case(const fail_case *fc, int bytewise) {
  h x;
  h_init(&x, EHLO_REPLY("PLAIN LOGIN CRAM-MD5 SCRAM-SHA-1"));
  x.bytewise = bytewise;
  const char *const *script;
  static const char *const login_script[] = {"334 VXNlcm5hbWU6\r\n",
                                             "334 UGFzc3dvcmQ6\r\n"};
  static const char *const cram_script[] = {"334 PDEuMkB4Pg==\r\n"};
  char sfirst[256], sfinal[256];
  const char *scram_script[2] = {sfirst, sfinal};
  snprintf(sfirst, sizeof(sfirst), "334 %s\r\n",
           b64(scram_sha1.sfirst, strlen(scram_sha1.sfirst)));
  snprintf(sfinal, sizeof(sfinal), "334 %s\r\n",
           b64(scram_sha1.sfinal, strlen(scram_sha1.sfinal)));
  if (strcmp(fc->mech, "PLAIN") == 0) {
    assert_int_equal(smtpuv_auth_plain_new(&x.tm.mem, NULL, "u", "pw", &x.a),
                     0);
    script = NULL;
  } else if (strcmp(fc->mech, "LOGIN") == 0) {
    assert_int_equal(smtpuv_auth_login_new(&x.tm.mem, "u", "pw", &x.a), 0);
    script = login_script;
  } else if (strcmp(fc->mech, "CRAM-MD5") == 0) {
    assert_int_equal(smtpuv_auth_cram_md5_new(&x.tm.mem, "u", "pw", &x.a), 0);
    script = cram_script;
  } else {
    assert_int_equal(
        smtpuv_auth_scram_sha1_new(&x.tm.mem, NULL, "user", "pencil", &x.a), 0);
    assert_int_equal(smtpuv__scram_set_nonce(x.a, scram_sha1.nonce), 0);
    script = scram_script;
  }
  h_session(&x);
  assert_int_equal(smtpuv_auth_session_start(x.s), SMTPUV_AUTH_PENDING);
  out(&x);
  for (int i = 0; i < fc->at_step; i++) {
    assert_int_equal(feed(&x, script[i]), 0);
    assert_int_equal(x.last, SMTPUV_AUTH_PENDING);
    assert_true(strlen(out(&x)) >= 2); /* a response line */
  }
  assert_int_equal(feed(&x, fc->reply), 0);
  assert_int_equal(x.last, fc->want);
  assert_int_equal(smtpuv_auth_session_status(x.s), fc->want);
  assert_string_equal(smtpuv_auth_session_error_text(x.s), fc->want_text);
  assert_string_equal(out(&x), ""); /* nothing more is written */
  assert_int_equal(smtpuv_auth_session_reply_code(x.s), atoi(fc->reply));
  if (fc->want != SMTPUV_ESHUTDOWN)
    assert_int_equal(smtpuv_proto_state(x.p), SMTPUV_STATE_READY);
  h_close(&x);
}

static void test_failure_replies(void **st) {
  (void)st;
  static const fail_case cases[] = {
      {"PLAIN", 0, "535 5.7.8 Authentication credentials invalid\r\n",
       SMTPUV_EAUTH, "535 5.7.8 Authentication credentials invalid"},
      {"PLAIN", 0, "454 4.7.0 Temporary authentication failure\r\n",
       SMTPUV_EAUTH, "454 4.7.0 Temporary authentication failure"},
      {"PLAIN", 0, "534-5.7.9 Please log in with your web browser\r\n534 5.7.9 "
                   "Learn more\r\n",
       SMTPUV_EAUTH,
       "534 5.7.9 Please log in with your web browser 5.7.9 Learn more"},
      {"PLAIN", 0, "421 4.7.0 Too many errors, closing\r\n", SMTPUV_ESHUTDOWN,
       "421 4.7.0 Too many errors, closing"},
      {"LOGIN", 0, "504 5.5.4 Unrecognized authentication type\r\n",
       SMTPUV_EAUTH, "504 5.5.4 Unrecognized authentication type"},
      {"LOGIN", 1, "535 5.7.8 no such user\r\n", SMTPUV_EAUTH,
       "535 5.7.8 no such user"},
      {"LOGIN", 2, "535 5.7.8 bad password\r\n", SMTPUV_EAUTH,
       "535 5.7.8 bad password"},
      {"LOGIN", 2, "454 4.7.0 try later\r\n", SMTPUV_EAUTH,
       "454 4.7.0 try later"},
      {"CRAM-MD5", 0, "535 5.7.8 no\r\n", SMTPUV_EAUTH, "535 5.7.8 no"},
      {"CRAM-MD5", 1, "535 5.7.8 no\r\n", SMTPUV_EAUTH, "535 5.7.8 no"},
      {"SCRAM-SHA-1", 0, "535 5.7.8 unknown user\r\n", SMTPUV_EAUTH,
       "535 5.7.8 unknown user"},
      {"SCRAM-SHA-1", 1, "535 5.7.8 bad proof\r\n", SMTPUV_EAUTH,
       "535 5.7.8 bad proof"},
      {"SCRAM-SHA-1", 2, "454 4.7.0 backend down\r\n", SMTPUV_EAUTH,
       "454 4.7.0 backend down"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    run_fail_case(&cases[i], 0);
    run_fail_case(&cases[i], 1);
  }
}

/* ---- malformed challenges, step errors -------------------------------------- */

static void test_malformed_base64(void **st) {
  (void)st;
  static const char *bad[] = {"334 VXNlcm5hbWU\r\n", "334 VXNlc!5hbWU6\r\n",
                              "334 VXNl cm5h\r\n", "334 ====\r\n",
                              "334 VXNlcm5hbWU6=\r\n"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    h x;
    h_init(&x, EHLO_REPLY("LOGIN"));
    assert_int_equal(smtpuv_auth_login_new(&x.tm.mem, "u", "pw", &x.a), 0);
    h_session(&x);
    assert_int_equal(smtpuv_auth_session_start(x.s), SMTPUV_AUTH_PENDING);
    out(&x);
    assert_int_equal(feed(&x, bad[i]), 0);
    assert_int_equal(x.last, SMTPUV_AUTH_PENDING);
    assert_string_equal(out(&x), "*\r\n");
    assert_int_equal(feed(&x, "501 5.0.0 AUTH aborted\r\n"), 0);
    assert_int_equal(x.last, SMTPUV_EPROTO);
    assert_string_equal(smtpuv_auth_session_error_text(x.s),
                        "LOGIN: malformed base64 in the server's challenge");
    assert_int_equal(smtpuv_auth_session_reply_code(x.s), 501);
    assert_int_equal(smtpuv_proto_state(x.p), SMTPUV_STATE_READY);
    h_close(&x);
  }
}

static void test_step_error_cancels(void **st) {
  (void)st;
  h x;
  h_init(&x, EHLO_REPLY("LOGIN"));
  x.bytewise = 1;
  assert_int_equal(smtpuv_auth_login_new(&x.tm.mem, "u", "pw", &x.a), 0);
  h_session(&x);
  assert_int_equal(smtpuv_auth_session_start(x.s), SMTPUV_AUTH_PENDING);
  out(&x);
  assert_int_equal(feed(&x, "334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n"), 0);
  assert_int_equal(x.last, SMTPUV_AUTH_PENDING);
  out(&x);
  assert_int_equal(feed(&x, "334 T25lIG1vcmU/\r\n"), 0); /* "One more?" */
  assert_string_equal(out(&x), "*\r\n");
  assert_int_equal(smtpuv_auth_session_status(x.s), SMTPUV_AUTH_PENDING);
  /* whatever the server answers to "*", the session reports the step error */
  assert_int_equal(feed(&x, "235 2.7.0 odd but ok\r\n"), 0);
  assert_int_equal(x.last, SMTPUV_EPROTO);
  assert_string_equal(smtpuv_auth_session_error_text(x.s),
                      "LOGIN: unexpected third challenge from the server");
  h_close(&x);
}

static void test_too_many_challenges(void **st) {
  (void)st;
  h x;
  h_init(&x, EHLO_REPLY("XOAUTH2"));
  assert_int_equal(smtpuv_auth_xoauth2_new(&x.tm.mem, "u", NULL, NULL, &x.a),
                   0);
  assert_int_equal(smtpuv_auth_token_provide(x.a, "tok"), 0);
  h_session(&x);
  assert_int_equal(smtpuv_auth_session_start(x.s), SMTPUV_AUTH_PENDING);
  out(&x);
  for (int i = 0; i < SMTPUV_AUTH_MAX_STEPS; i++) {
    assert_int_equal(feed(&x, "334 e30=\r\n"), 0);
    assert_string_equal(out(&x), "\r\n");
  }
  assert_int_equal(feed(&x, "334 e30=\r\n"), 0);
  assert_string_equal(out(&x), "*\r\n");
  assert_int_equal(feed(&x, "501 5.5.2 aborted\r\n"), 0);
  assert_int_equal(x.last, SMTPUV_EPROTO);
  assert_string_equal(smtpuv_auth_session_error_text(x.s),
                      "XOAUTH2: more than 16 challenges");
  h_close(&x);
}

/* ---- OAuth: error challenge, async tokens, refresh ---------------------------- */

typedef struct tok {
  int calls;
  int rejected[8];
  const char *answers[8]; /* answer of call i; NULL = later */
  smtpuv_auth *pending;
} tok;

static void tok_cb(smtpuv_auth *a, int rejected, void *data) {
  tok *t = data;
  int i = t->calls++;
  t->rejected[i] = rejected;
  if (t->answers[i] != NULL &&
      smtpuv_auth_token_provide(a, t->answers[i]) != 0)
    smtpuv_auth_token_fail(a, SMTPUV_ENOMEM, "out of memory");
  else if (t->answers[i] == NULL)
    t->pending = a;
}

static const char xo_json[] =
    "{\"status\":\"401\",\"schemes\":\"bearer\",\"scope\":\"https://"
    "mail.google.com/\"}";

static void test_xoauth2_error_and_refresh(void **st) {
  (void)st;
  for (int second_ok = 0; second_ok < 2; second_ok++) {
    h x;
    tok t = {0, {0}, {"old-token", "new-token"}, NULL};
    h_init(&x, EHLO_REPLY("XOAUTH2 PLAIN"));
    assert_int_equal(smtpuv_auth_xoauth2_new(&x.tm.mem, "someuser@example.com",
                                             tok_cb, &t, &x.a),
                     0);
    h_session(&x);
    assert_int_equal(smtpuv_auth_session_start(x.s), SMTPUV_AUTH_PENDING);
    char want[512];
    snprintf(want, sizeof(want), "AUTH XOAUTH2 %s\r\n",
             B64S("user=someuser@example.com\001auth=Bearer old-token\001\001"));
    assert_string_equal(out(&x), want);
    char line[512];
    snprintf(line, sizeof(line), "334 %s\r\n", B64S(xo_json));
    assert_int_equal(feed(&x, line), 0);
    assert_int_equal(x.last, SMTPUV_AUTH_PENDING);
    assert_string_equal(out(&x), "\r\n"); /* the empty response */
    assert_int_equal(
        feed(&x, "535-5.7.8 Username and Password not accepted.\r\n535 5.7.8 "
                 "https://support.google.com/mail/?p=BadCredentials\r\n"),
        0);
    /* refreshed synchronously, AUTH issued again */
    assert_int_equal(x.last, SMTPUV_AUTH_PENDING);
    assert_int_equal(t.calls, 2);
    assert_int_equal(t.rejected[0], 0);
    assert_int_equal(t.rejected[1], 1);
    snprintf(want, sizeof(want), "AUTH XOAUTH2 %s\r\n",
             B64S("user=someuser@example.com\001auth=Bearer new-token\001\001"));
    assert_string_equal(out(&x), want);
    if (second_ok) {
      assert_int_equal(feed(&x, "235 2.7.0 Accepted\r\n"), 0);
      assert_int_equal(x.last, 0);
    } else {
      assert_int_equal(feed(&x, line), 0);
      assert_string_equal(out(&x), "\r\n");
      assert_int_equal(feed(&x, "535 5.7.8 Username and Password not "
                                "accepted.\r\n"),
                       0);
      assert_int_equal(x.last, SMTPUV_EAUTH); /* asked once, not twice */
      assert_int_equal(t.calls, 2);
      char want_err[512];
      snprintf(want_err, sizeof(want_err),
               "XOAUTH2: %s; server: 535 5.7.8 Username and Password not "
               "accepted.",
               xo_json);
      assert_string_equal(smtpuv_auth_session_error_text(x.s), want_err);
      assert_string_equal(out(&x), "");
    }
    h_close(&x);
  }
}

static void test_oauthbearer_async_refresh(void **st) {
  (void)st;
  for (int in_ready = 0; in_ready < 2; in_ready++) {
    h x;
    tok t = {0, {0}, {NULL, NULL}, NULL};
    h_init(&x, EHLO_REPLY("OAUTHBEARER XOAUTH2"));
    x.resume_in_ready = in_ready;
    assert_int_equal(smtpuv_auth_oauthbearer_new(&x.tm.mem, "user@example.com",
                                                 "server.example.com", 587,
                                                 tok_cb, &t, &x.a),
                     0);
    h_session(&x);
    /* the token is fetched later: nothing is written meanwhile */
    assert_int_equal(smtpuv_auth_session_start(x.s), SMTPUV_EAGAIN);
    assert_int_equal(smtpuv_auth_session_status(x.s), SMTPUV_EAGAIN);
    assert_string_equal(out(&x), "");
    assert_int_equal(smtpuv_proto_state(x.p), SMTPUV_STATE_READY);
    assert_int_equal(x.ready_calls, 0);
    assert_int_equal(smtpuv_auth_session_resume(x.s), SMTPUV_EAGAIN);
    assert_int_equal(t.calls, 1);
    assert_int_equal(smtpuv_auth_token_provide(t.pending, "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg=="), 0);
    assert_int_equal(x.ready_calls, 1);
    if (!in_ready)
      x.last = smtpuv_auth_session_resume(x.s);
    assert_int_equal(x.last, SMTPUV_AUTH_PENDING);
    char want[512];
    snprintf(want, sizeof(want), "AUTH OAUTHBEARER %s\r\n",
             B64S("n,a=user@example.com,\001host=server.example.com\001port="
                  "587\001auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg="
                  "=\001\001"));
    assert_string_equal(out(&x), want);
    /* RFC 7628 error challenge, answered with ^A */
    char line[256];
    snprintf(line, sizeof(line), "334 %s\r\n",
             B64S("{\"status\":\"invalid_token\"}"));
    assert_int_equal(feed(&x, line), 0);
    assert_string_equal(out(&x), "AQ==\r\n");
    assert_int_equal(feed(&x, "535 5.7.8 invalid token\r\n"), 0);
    assert_int_equal(x.last, SMTPUV_EAGAIN); /* fetching a fresh one */
    assert_int_equal(t.calls, 2);
    assert_int_equal(t.rejected[1], 1);
    assert_string_equal(out(&x), "");
    assert_int_equal(smtpuv_auth_token_provide(t.pending, "fresh"), 0);
    assert_int_equal(x.ready_calls, 2);
    if (!in_ready)
      x.last = smtpuv_auth_session_resume(x.s);
    assert_int_equal(x.last, SMTPUV_AUTH_PENDING);
    snprintf(want, sizeof(want), "AUTH OAUTHBEARER %s\r\n",
             B64S("n,a=user@example.com,\001host=server.example.com\001port="
                  "587\001auth=Bearer fresh\001\001"));
    assert_string_equal(out(&x), want);
    assert_int_equal(feed(&x, "235 2.7.0 ok\r\n"), 0);
    assert_int_equal(x.last, 0);
    h_close(&x);
  }
}

static void test_token_failure(void **st) {
  (void)st;
  h x;
  tok t = {0, {0}, {NULL}, NULL};
  h_init(&x, EHLO_REPLY("XOAUTH2"));
  assert_int_equal(smtpuv_auth_xoauth2_new(&x.tm.mem, "u", tok_cb, &t, &x.a),
                   0);
  h_session(&x);
  assert_int_equal(smtpuv_auth_session_start(x.s), SMTPUV_EAGAIN);
  assert_int_equal(smtpuv_auth_token_fail(t.pending, SMTPUV_ETIMEDOUT,
                                          "token endpoint timed out"),
                   0);
  assert_int_equal(x.ready_calls, 1);
  assert_int_equal(smtpuv_auth_session_resume(x.s), SMTPUV_ETIMEDOUT);
  assert_string_equal(smtpuv_auth_session_error_text(x.s),
                      "OAuth token: token endpoint timed out");
  assert_string_equal(out(&x), "");
  assert_int_equal(smtpuv_auth_session_resume(x.s), SMTPUV_ESTATE);
  h_close(&x);

  /* a fixed token without callback: a 535 is final */
  h_init(&x, EHLO_REPLY("XOAUTH2"));
  assert_int_equal(smtpuv_auth_xoauth2_new(&x.tm.mem, "u", NULL, NULL, &x.a),
                   0);
  assert_int_equal(smtpuv_auth_token_provide(x.a, "fixed"), 0);
  h_session(&x);
  assert_int_equal(smtpuv_auth_session_start(x.s), SMTPUV_AUTH_PENDING);
  out(&x);
  assert_int_equal(feed(&x, "535 5.7.8 no\r\n"), 0);
  assert_int_equal(x.last, SMTPUV_EAUTH);
  assert_string_equal(smtpuv_auth_session_error_text(x.s),
                      "XOAUTH2: the server rejected the token and there is no "
                      "token callback to refresh it");
  assert_string_equal(out(&x), "");
  h_close(&x);
}

/* A plain 535 (no error challenge) also refreshes; a password mechanism
   never retries. */
static void test_refresh_on_plain_535(void **st) {
  (void)st;
  h x;
  tok t = {0, {0}, {"t1", "t2"}, NULL};
  h_init(&x, EHLO_REPLY("OAUTHBEARER"));
  assert_int_equal(
      smtpuv_auth_oauthbearer_new(&x.tm.mem, NULL, NULL, 0, tok_cb, &t, &x.a),
      0);
  h_session(&x);
  assert_int_equal(smtpuv_auth_session_start(x.s), SMTPUV_AUTH_PENDING);
  out(&x);
  assert_int_equal(feed(&x, "535 5.7.8 expired\r\n"), 0);
  assert_int_equal(x.last, SMTPUV_AUTH_PENDING);
  char want[256];
  snprintf(want, sizeof(want), "AUTH OAUTHBEARER %s\r\n",
           B64S("n,,\001auth=Bearer t2\001\001"));
  assert_string_equal(out(&x), want);
  /* a 454 is not a token rejection */
  assert_int_equal(feed(&x, "454 4.7.0 later\r\n"), 0);
  assert_int_equal(x.last, SMTPUV_EAUTH);
  assert_int_equal(t.calls, 2);
  h_close(&x);
}

/* Every reply code at every step of every mechanism, fed whole and byte by
   byte: the session ends exactly when it says so, reports success only for
   a 2xx that the mechanism accepts (SCRAM: after a verified signature),
   maps 421 to SMTPUV_ESHUTDOWN, never writes after its end, and the proto
   is back in READY whenever the server sent a final reply. */
static void test_reply_matrix(void **st) {
  (void)st;
  static const char *const codes[] = {
      "235 2.7.0 ok\r\n", "250 ok\r\n",       "334 \r\n",
      "334 =\r\n",        "334 !!!!\r\n",     "334 e30=\r\n",
      "354 go\r\n",       "421 4.7.0 bye\r\n", "432 4.7.12 pw\r\n",
      "454 4.7.0 tmp\r\n", "500 5.5.1 what\r\n", "501 5.5.4 syntax\r\n",
      "504 5.5.4 mech\r\n", "530 5.7.0 tls\r\n", "534 5.7.9 weak\r\n",
      "535 5.7.8 bad\r\n", "538 5.7.11 enc\r\n", "550 5.7.1 no\r\n"};
  static const char *const mechs[] = {"PLAIN", "LOGIN", "CRAM-MD5",
                                      "SCRAM-SHA-1", "XOAUTH2", "OAUTHBEARER"};
  char sfirst[256], sfinal[256];
  snprintf(sfirst, sizeof(sfirst), "334 %s\r\n",
           b64(scram_sha1.sfirst, strlen(scram_sha1.sfirst)));
  snprintf(sfinal, sizeof(sfinal), "334 %s\r\n",
           b64(scram_sha1.sfinal, strlen(scram_sha1.sfinal)));
  for (size_t m = 0; m < sizeof(mechs) / sizeof(mechs[0]); m++) {
    const char *script[2] = {NULL, NULL};
    int nscript = 0;
    if (m == 1) {
      script[0] = "334 VXNlcm5hbWU6\r\n";
      script[1] = "334 UGFzc3dvcmQ6\r\n";
      nscript = 2;
    } else if (m == 2) {
      script[0] = "334 PDEuMkB4Pg==\r\n";
      nscript = 1;
    } else if (m == 3) {
      script[0] = sfirst;
      script[1] = sfinal;
      nscript = 2;
    }
    for (int step = 0; step <= nscript; step++)
      for (size_t c = 0; c < sizeof(codes) / sizeof(codes[0]); c++)
        for (int bw = 0; bw < 2; bw++) {
          h x;
          tok t = {0, {0}, {"tok1", "tok2"}, NULL};
          h_init(&x, EHLO_REPLY("PLAIN LOGIN CRAM-MD5 SCRAM-SHA-1 XOAUTH2 "
                                "OAUTHBEARER"));
          x.bytewise = bw;
          switch (m) {
          case 0:
            assert_int_equal(
                smtpuv_auth_plain_new(&x.tm.mem, NULL, "u", "pw", &x.a), 0);
            break;
          case 1:
            assert_int_equal(
                smtpuv_auth_login_new(&x.tm.mem, "u", "pw", &x.a), 0);
            break;
          case 2:
            assert_int_equal(
                smtpuv_auth_cram_md5_new(&x.tm.mem, "u", "pw", &x.a), 0);
            break;
          case 3:
            assert_int_equal(smtpuv_auth_scram_sha1_new(&x.tm.mem, NULL,
                                                        "user", "pencil",
                                                        &x.a),
                             0);
            assert_int_equal(smtpuv__scram_set_nonce(x.a, scram_sha1.nonce),
                             0);
            break;
          case 4:
            assert_int_equal(
                smtpuv_auth_xoauth2_new(&x.tm.mem, "u", tok_cb, &t, &x.a), 0);
            break;
          default:
            assert_int_equal(smtpuv_auth_oauthbearer_new(&x.tm.mem, NULL, NULL,
                                                         0, tok_cb, &t, &x.a),
                             0);
            break;
          }
          h_session(&x);
          assert_int_equal(smtpuv_auth_session_start(x.s),
                           SMTPUV_AUTH_PENDING);
          out(&x);
          for (int i = 0; i < step; i++) {
            assert_int_equal(feed(&x, script[i]), 0);
            assert_int_equal(x.last, SMTPUV_AUTH_PENDING);
            out(&x);
          }
          int before = x.auth_replies;
          assert_int_equal(feed(&x, codes[c]), 0);
          assert_int_equal(x.auth_replies, before + 1);
          int code = atoi(codes[c]);
          int r = x.last;
          const char *o = out(&x);
          if (r == SMTPUV_AUTH_PENDING) {
            /* a response, a "*", or a retried AUTH went out */
            assert_true(strlen(o) >= 2);
            assert_int_equal(smtpuv_auth_session_status(x.s),
                             SMTPUV_AUTH_PENDING);
            if (code != 334) /* only the OAuth retry after 535 */
              assert_true(code == 535 && m >= 4 &&
                          strncmp(o, "AUTH ", 5) == 0);
            /* whatever comes next ends it or goes on; a 501 to "*" ends */
            if (strcmp(o, "*\r\n") == 0) {
              assert_int_equal(feed(&x, "501 5.0.0 aborted\r\n"), 0);
              assert_true(x.last < 0);
              assert_int_equal(smtpuv_auth_session_status(x.s), x.last);
            }
          } else {
            assert_string_equal(o, "");
            assert_int_equal(smtpuv_auth_session_status(x.s), r);
            assert_true(r <= 0);
            if (r == 0) {
              assert_true(code / 100 == 2);
              if (m == 3 && step < 2) /* only after the server-final */
                fail_msg("SCRAM accepted %s at step %d", codes[c], step);
            }
            if (code == 421)
              assert_int_equal(r, SMTPUV_ESHUTDOWN);
            else if (code / 100 == 4 || code / 100 == 5 || code / 100 == 3)
              assert_int_equal(r, SMTPUV_EAUTH);
            if (code != 421 && code != 334)
              assert_int_equal(smtpuv_proto_state(x.p), SMTPUV_STATE_READY);
            assert_true(smtpuv_auth_session_error_text(x.s)[0] != '\0' ||
                        r == 0);
          }
          h_close(&x);
        }
  }
}

/* ---- long initial responses (RFC 4954 section 4) ---------------------------- */

static void test_long_initial_response(void **st) {
  (void)st;
  char token[700];
  memset(token, 'A', sizeof(token) - 1);
  token[sizeof(token) - 1] = '\0';
  for (int bw = 0; bw < 2; bw++) {
    h x;
    h_init(&x, EHLO_REPLY("XOAUTH2"));
    x.bytewise = bw;
    assert_int_equal(smtpuv_auth_xoauth2_new(&x.tm.mem, "u", NULL, NULL, &x.a),
                     0);
    assert_int_equal(smtpuv_auth_token_provide(x.a, token), 0);
    h_session(&x);
    assert_int_equal(smtpuv_auth_session_start(x.s), SMTPUV_AUTH_PENDING);
    assert_string_equal(out(&x), "AUTH XOAUTH2\r\n");
    assert_int_equal(feed(&x, "334 \r\n"), 0);
    char ir[1200];
    snprintf(ir, sizeof(ir), "user=u\001auth=Bearer %s\001\001", token);
    char want[1300];
    snprintf(want, sizeof(want), "%s\r\n", b64(ir, strlen(ir)));
    assert_string_equal(out(&x), want);
    assert_int_equal(feed(&x, "235 2.7.0 ok\r\n"), 0);
    assert_int_equal(x.last, 0);
    h_close(&x);
  }
  /* the limit: a line of exactly 512 octets still carries it */
  h x;
  h_init(&x, EHLO_REPLY("PLAIN"));
  /* "AUTH PLAIN " + b64 + CRLF = 512 -> b64 499 is not a multiple of 4;
     b64 length 496 (372 bytes) gives 509, 500 (375 bytes) gives 513 */
  char pass[400];
  memset(pass, 'p', sizeof(pass));
  pass[375 - 3] = '\0'; /* "\0u\0" + 372 = 375 bytes -> 500 base64 */
  assert_int_equal(smtpuv_auth_plain_new(&x.tm.mem, NULL, "u", pass, &x.a), 0);
  h_session(&x);
  assert_int_equal(smtpuv_auth_session_start(x.s), SMTPUV_AUTH_PENDING);
  assert_string_equal(out(&x), "AUTH PLAIN\r\n");
  h_close(&x);
  h_init(&x, EHLO_REPLY("PLAIN"));
  pass[372 - 3] = '\0'; /* 372 bytes -> 496 base64 -> 509 octets */
  assert_int_equal(smtpuv_auth_plain_new(&x.tm.mem, NULL, "u", pass, &x.a), 0);
  h_session(&x);
  assert_int_equal(smtpuv_auth_session_start(x.s), SMTPUV_AUTH_PENDING);
  assert_int_equal(strlen(out(&x)), 509);
  h_close(&x);
}

/* ---- selection, offers, states ---------------------------------------------- */

static void test_auto_session(void **st) {
  (void)st;
  h x;
  smtpuv_auth_credentials c = SMTPUV_AUTH_CREDENTIALS_INIT;
  c.username = "tim";
  c.password = "tanstaaftanstaaf";
  /* the default allocator: the authenticator outlives two harnesses */
  smtpuv_auth *a;
  assert_int_equal(smtpuv_auth_auto_new(NULL, &c, &a), 0);
  assert_string_equal(smtpuv_auth_name(a), "AUTO");
  h_init(&x, EHLO_REPLY("LOGIN PLAIN CRAM-MD5"));
  x.a = a;
  h_session(&x);
  assert_int_equal(smtpuv_auth_session_start(x.s), SMTPUV_AUTH_PENDING);
  assert_string_equal(smtpuv_auth_session_mechanism(x.s), "PLAIN");
  assert_string_equal(smtpuv_auth_name(a), "PLAIN");
  assert_string_equal(out(&x), "AUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm\r\n");
  assert_int_equal(feed(&x, "235 2.7.0 ok\r\n"), 0);
  assert_int_equal(x.last, 0);
  x.a = NULL;
  h_close(&x);
  /* the same authenticator on a new connection picks again */
  h_init(&x, EHLO_REPLY("CRAM-MD5 SCRAM-SHA-1"));
  x.a = a;
  h_session(&x);
  assert_int_equal(smtpuv_auth_session_start(x.s), SMTPUV_AUTH_PENDING);
  assert_string_equal(smtpuv_auth_session_mechanism(x.s), "SCRAM-SHA-1");
  const char *o = out(&x);
  assert_memory_equal(o, "AUTH SCRAM-SHA-1 biwsbj10aW0s", 29); /* n,,n=tim, */
  x.a = NULL;
  h_close(&x);
  smtpuv_auth_free(a);

  /* nothing fits: the text names the server's mechanisms */
  h_init(&x, EHLO_REPLY("GSSAPI NTLM xoauth2"));
  assert_int_equal(smtpuv_auth_auto_new(&x.tm.mem, &c, &x.a), 0);
  h_session(&x);
  assert_int_equal(smtpuv_auth_session_start(x.s), SMTPUV_EAUTHMECH);
  assert_string_equal(smtpuv_auth_session_error_text(x.s),
                      "no usable authentication mechanism: the server offers "
                      "GSSAPI NTLM XOAUTH2; the credentials allow "
                      "SCRAM-SHA-256 SCRAM-SHA-1 PLAIN LOGIN CRAM-MD5");
  assert_int_equal(smtpuv_auth_session_status(x.s), SMTPUV_EAUTHMECH);
  assert_string_equal(out(&x), "");
  h_close(&x);
}

static void test_not_offered_and_states(void **st) {
  (void)st;
  h x;
  h_init(&x, EHLO_REPLY("LOGIN CRAM-MD5"));
  assert_int_equal(smtpuv_auth_plain_new(&x.tm.mem, NULL, "u", "p", &x.a), 0);
  h_session(&x);
  /* one session per authenticator */
  smtpuv_auth_session *s2;
  assert_int_equal(smtpuv_auth_session_new(NULL, x.p, x.a, NULL, NULL, &s2),
                   SMTPUV_EBUSY);
  assert_int_equal(smtpuv_auth_session_new(NULL, NULL, x.a, NULL, NULL, &s2),
                   SMTPUV_EINVAL);
  assert_int_equal(smtpuv_auth_session_resume(x.s), SMTPUV_ESTATE);
  assert_int_equal(smtpuv_auth_session_start(x.s), SMTPUV_EAUTHMECH);
  assert_string_equal(smtpuv_auth_session_error_text(x.s),
                      "the server does not offer PLAIN: it offers LOGIN "
                      "CRAM-MD5");
  assert_string_equal(out(&x), "");
  h_close(&x);

  /* no AUTH at all */
  memset(&x, 0, sizeof(x));
  test_mem_init(&x.tm, 0);
  assert_int_equal(smtpuv_proto_new(&x.tm.mem, &x.p), 0);
  assert_int_equal(feed(&x, "220 mx ESMTP\r\n"), 0);
  assert_int_equal(smtpuv_auth_plain_new(&x.tm.mem, NULL, "u", "p", &x.a), 0);
  h_session(&x);
  /* before EHLO: not READY */
  assert_int_equal(smtpuv_auth_session_start(x.s), SMTPUV_ESTATE);
  assert_int_equal(smtpuv_proto_ehlo(x.p, "c"), 0);
  out(&x);
  assert_int_equal(feed(&x, "250-mx\r\n250 PIPELINING\r\n"), 0);
  assert_int_equal(smtpuv_auth_session_start(x.s), SMTPUV_EAUTHMECH);
  assert_string_equal(smtpuv_auth_session_error_text(x.s),
                      "the server does not offer PLAIN: it does not advertise "
                      "AUTH");
  h_close(&x);

  /* a reply that is not an AUTH reply */
  h_init(&x, EHLO_REPLY("PLAIN"));
  assert_int_equal(smtpuv_auth_plain_new(&x.tm.mem, NULL, "u", "p", &x.a), 0);
  h_session(&x);
  smtpuv_reply r;
  memset(&r, 0, sizeof(r));
  r.command = SMTPUV_CMD_AUTH;
  r.code = 235;
  assert_int_equal(smtpuv_auth_session_on_reply(x.s, &r), SMTPUV_ESTATE);
  assert_int_equal(smtpuv_auth_session_start(x.s), SMTPUV_AUTH_PENDING);
  r.command = SMTPUV_CMD_MAIL;
  assert_int_equal(smtpuv_auth_session_on_reply(x.s, &r), SMTPUV_EINVAL);
  assert_int_equal(smtpuv_auth_session_on_reply(x.s, NULL), SMTPUV_EINVAL);
  /* credentials problems surface at start, with a text */
  h_close(&x);
  h_init(&x, EHLO_REPLY("SCRAM-SHA-256"));
  assert_int_equal(smtpuv_auth_scram_sha256_new(&x.tm.mem, NULL, "us\xc3\xa9r",
                                                "p", &x.a),
                   0);
  h_session(&x);
  assert_int_equal(smtpuv_auth_session_start(x.s), SMTPUV_ECREDENTIALS);
  assert_non_null(strstr(smtpuv_auth_session_error_text(x.s), "SASLprep"));
  assert_string_equal(out(&x), "");
  h_close(&x);
}

/* An application mechanism that answers asynchronously and wakes the
   session itself. */
typedef struct later {
  smtpuv_auth *a;
  int ready;
} later;

static int later_begin(smtpuv_auth *a, void *state, unsigned flags) {
  later *l = state;
  (void)flags;
  l->a = a;
  if (!l->ready)
    return SMTPUV_EAGAIN;
  return smtpuv_auth_respond(a, "", 0); /* empty initial response */
}

static int later_step(smtpuv_auth *a, void *state, const unsigned char *c,
                      size_t n) {
  (void)state;
  return smtpuv_auth_respond(a, c, n);
}

static void test_custom_async_mechanism(void **st) {
  (void)st;
  h x;
  later l = {NULL, 0};
  smtpuv_auth_ops ops = {sizeof(ops), "X-LATER", 0, later_begin, later_step,
                         NULL, NULL};
  h_init(&x, EHLO_REPLY("X-LATER"));
  assert_int_equal(smtpuv_auth_new(&x.tm.mem, &ops, &l, &x.a), 0);
  h_session(&x);
  assert_int_equal(smtpuv_auth_session_start(x.s), SMTPUV_EAGAIN);
  l.ready = 1;
  smtpuv_auth_wake(l.a);
  assert_int_equal(x.ready_calls, 1);
  assert_int_equal(smtpuv_auth_session_resume(x.s), SMTPUV_AUTH_PENDING);
  assert_string_equal(out(&x), "AUTH X-LATER =\r\n");
  assert_int_equal(feed(&x, "334 ZWNobw==\r\n"), 0);
  assert_string_equal(out(&x), "ZWNobw==\r\n");
  assert_int_equal(feed(&x, "235 ok\r\n"), 0);
  assert_int_equal(x.last, 0);
  /* a wake with nobody waiting is harmless */
  smtpuv_auth_wake(l.a);
  assert_int_equal(x.ready_calls, 1);
  h_close(&x);
}

/* Token answers in awkward places: twice, after the asking session is gone,
   and a session (and its authenticator) freed from inside the ready
   callback that provide() runs. */
typedef struct freer {
  h *x;
  int calls;
} freer;

static void free_in_ready(smtpuv_auth_session *s, void *data) {
  freer *f = data;
  f->calls++;
  assert_ptr_equal(s, f->x->s);
  smtpuv_auth_session_free(f->x->s);
  smtpuv_auth_free(f->x->a);
  f->x->s = NULL;
  f->x->a = NULL;
}

static void test_token_reentrancy(void **st) {
  (void)st;
  char want[256];
  /* provide() twice before resume: one ready call, the last token wins */
  {
    h x;
    tok t = {0, {0}, {NULL}, NULL};
    h_init(&x, EHLO_REPLY("OAUTHBEARER"));
    assert_int_equal(smtpuv_auth_oauthbearer_new(&x.tm.mem, NULL, NULL, 0,
                                                 tok_cb, &t, &x.a),
                     0);
    h_session(&x);
    assert_int_equal(smtpuv_auth_session_start(x.s), SMTPUV_EAGAIN);
    assert_int_equal(smtpuv_auth_token_provide(t.pending, "first"), 0);
    assert_int_equal(smtpuv_auth_token_provide(t.pending, "second"), 0);
    assert_int_equal(x.ready_calls, 1);
    assert_int_equal(smtpuv_auth_session_resume(x.s), SMTPUV_AUTH_PENDING);
    snprintf(want, sizeof(want), "AUTH OAUTHBEARER %s\r\n",
             B64S("n,,\001auth=Bearer second\001\001"));
    assert_string_equal(out(&x), want);
    /* a late duplicate during the exchange changes nothing on the wire */
    assert_int_equal(smtpuv_auth_token_provide(t.pending, "third"), 0);
    assert_int_equal(x.ready_calls, 1);
    assert_string_equal(out(&x), "");
    assert_int_equal(feed(&x, "235 ok\r\n"), 0);
    assert_int_equal(x.last, 0);
    assert_int_equal(t.calls, 1);
    h_close(&x);
  }
  /* the asking session is freed; the answer comes later and serves the
     next session without asking again */
  {
    h x;
    tok t = {0, {0}, {NULL}, NULL};
    h_init(&x, EHLO_REPLY("OAUTHBEARER"));
    assert_int_equal(smtpuv_auth_oauthbearer_new(&x.tm.mem, NULL, NULL, 0,
                                                 tok_cb, &t, &x.a),
                     0);
    h_session(&x);
    assert_int_equal(smtpuv_auth_session_start(x.s), SMTPUV_EAGAIN);
    smtpuv_auth_session_free(x.s);
    x.s = NULL;
    assert_int_equal(smtpuv_auth_token_provide(t.pending, "late"), 0);
    assert_int_equal(x.ready_calls, 0);
    h_session(&x);
    assert_int_equal(smtpuv_auth_session_start(x.s), SMTPUV_AUTH_PENDING);
    snprintf(want, sizeof(want), "AUTH OAUTHBEARER %s\r\n",
             B64S("n,,\001auth=Bearer late\001\001"));
    assert_string_equal(out(&x), want);
    assert_int_equal(t.calls, 1);
    h_close(&x);
  }
  /* the session that waits is freed while the request is out; a new one
     waits for the same answer (the callback is not asked twice) */
  {
    h x;
    tok t = {0, {0}, {NULL}, NULL};
    h_init(&x, EHLO_REPLY("OAUTHBEARER"));
    assert_int_equal(smtpuv_auth_oauthbearer_new(&x.tm.mem, NULL, NULL, 0,
                                                 tok_cb, &t, &x.a),
                     0);
    h_session(&x);
    assert_int_equal(smtpuv_auth_session_start(x.s), SMTPUV_EAGAIN);
    smtpuv_auth_session_free(x.s);
    h_session(&x);
    assert_int_equal(smtpuv_auth_session_start(x.s), SMTPUV_EAGAIN);
    assert_int_equal(t.calls, 1);
    assert_int_equal(smtpuv_auth_token_provide(t.pending, "tok"), 0);
    assert_int_equal(x.ready_calls, 1);
    assert_int_equal(smtpuv_auth_session_resume(x.s), SMTPUV_AUTH_PENDING);
    h_close(&x);
  }
  /* session and authenticator freed inside the ready callback that
     provide() / fail() runs: nothing touches them afterwards (ASan) */
  for (int failing = 0; failing < 2; failing++) {
    h x;
    tok t = {0, {0}, {NULL}, NULL};
    freer f = {&x, 0};
    h_init(&x, EHLO_REPLY("XOAUTH2"));
    assert_int_equal(
        smtpuv_auth_xoauth2_new(&x.tm.mem, "u", tok_cb, &t, &x.a), 0);
    assert_int_equal(smtpuv_auth_session_new(&x.tm.mem, x.p, x.a,
                                             free_in_ready, &f, &x.s),
                     0);
    assert_int_equal(smtpuv_auth_session_start(x.s), SMTPUV_EAGAIN);
    if (failing)
      assert_int_equal(smtpuv_auth_token_fail(t.pending, 0, "nope"), 0);
    else
      assert_int_equal(smtpuv_auth_token_provide(t.pending, "tok"), 0);
    assert_int_equal(f.calls, 1);
    assert_null(x.s);
    assert_null(x.a);
    h_close(&x);
  }
}

/* ---- no secret in any text ----------------------------------------------------- */

static void test_no_secret_in_texts(void **st) {
  (void)st;
  h x;
  h_init(&x, EHLO_REPLY("XOAUTH2"));
  tok t = {0, {0}, {"SECRET-TOKEN-1", "SECRET-TOKEN-2"}, NULL};
  assert_int_equal(smtpuv_auth_xoauth2_new(&x.tm.mem, "u", tok_cb, &t, &x.a),
                   0);
  h_session(&x);
  assert_int_equal(smtpuv_auth_session_start(x.s), SMTPUV_AUTH_PENDING);
  out(&x);
  assert_int_equal(feed(&x, "535 5.7.8 nope\r\n"), 0);
  out(&x);
  assert_int_equal(feed(&x, "535 5.7.8 nope\r\n"), 0);
  assert_int_equal(x.last, SMTPUV_EAUTH);
  const char *texts[3] = {smtpuv_auth_session_error_text(x.s),
                          smtpuv_auth_session_reply_text(x.s),
                          smtpuv_auth_error_text(x.a)};
  for (int i = 0; i < 3; i++) {
    assert_null(strstr(texts[i], "SECRET"));
    assert_null(strstr(texts[i], "U0VDUkVU")); /* base64 of "SECRET" */
  }
  h_close(&x);
}

/* ---- allocation failures over whole sessions ----------------------------------- */

/* One full scenario with fail_at; returns 0 (the session authenticated) or
   the first error. Never leaks. */
static int scenario(unsigned long fail_at, int which, long *live) {
  h x;
  int rc = h_open(&x, fail_at, EHLO_REPLY("SCRAM-SHA-256 XOAUTH2"));
  tok t = {0, {0}, {"t1", "t2"}, NULL};
  char line[512];
  if (rc != 0)
    goto out;
  if (which == 0) {
    rc = smtpuv_auth_scram_sha256_new(&x.tm.mem, NULL, "user", "pencil", &x.a);
    if (rc == 0)
      rc = smtpuv__scram_set_nonce(x.a, scram_sha256.nonce);
  } else {
    smtpuv_auth_credentials c = SMTPUV_AUTH_CREDENTIALS_INIT;
    c.username = "u";
    c.token_cb = tok_cb;
    c.token_data = &t;
    rc = smtpuv_auth_auto_new(&x.tm.mem, &c, &x.a);
  }
  if (rc == 0)
    rc = smtpuv_auth_session_new(&x.tm.mem, x.p, x.a, on_ready, &x, &x.s);
  if (rc == 0) {
    rc = smtpuv_auth_session_start(x.s);
    rc = rc == SMTPUV_AUTH_PENDING ? 0 : rc;
  }
  if (rc != 0)
    goto out;
  out(&x);
  x.last = SMTPUV_AUTH_PENDING;
  static const char *const replies[2][3] = {{NULL, NULL, "235 2.7.0 ok\r\n"},
                                            {NULL, "535 5.7.8 expired\r\n",
                                             "235 2.7.0 ok\r\n"}};
  for (int i = 0; i < 3; i++) {
    const char *r = replies[which][i];
    if (which == 0 && i == 0)
      snprintf(line, sizeof(line), "334 %s\r\n",
               b64(scram_sha256.sfirst, strlen(scram_sha256.sfirst)));
    else if (which == 0 && i == 1)
      snprintf(line, sizeof(line), "334 %s\r\n",
               b64(scram_sha256.sfinal, strlen(scram_sha256.sfinal)));
    else if (which == 1 && i == 0)
      snprintf(line, sizeof(line), "334 %s\r\n", B64S(xo_json));
    else
      snprintf(line, sizeof(line), "%s", r);
    rc = feed(&x, line);
    if (rc != 0)
      goto out;
    out(&x);
    if (x.last != SMTPUV_AUTH_PENDING)
      break;
  }
  rc = x.last;
out:
  smtpuv_auth_session_free(x.s);
  smtpuv_auth_free(x.a);
  smtpuv_proto_free(x.p);
  *live = x.tm.live;
  if (rc == 0 && x.tm.failed)
    rc = -997; /* a failed allocation went unnoticed */
  return rc;
}

static void test_alloc_failures(void **st) {
  (void)st;
  for (int which = 0; which < 2; which++) {
    long live;
    assert_int_equal(scenario(0, which, &live), 0);
    assert_int_equal(live, 0);
    unsigned long n;
    int done = 0;
    for (n = 1; n < 10000 && !done; n++) {
      int rc = scenario(n, which, &live);
      if (live != 0 || (rc != 0 && rc != SMTPUV_ENOMEM))
        print_error("scenario %d fail_at %lu: rc %d live %ld\n", which, n, rc,
                    live);
      assert_int_equal(live, 0);
      if (rc == 0)
        done = 1; /* n is past the last allocation */
      else
        assert_int_equal(rc, SMTPUV_ENOMEM);
    }
    assert_true(done);
    assert_true(n > 10);
  }
}

/* RFC 4954 4: after a successful AUTH no second AUTH may be issued; the
   core refuses one (SMTPUV_ESTATE), writes nothing, and a session on the
   same core cannot start either. After a refusal another attempt is
   fine. */
static void test_no_auth_after_235(void **st) {
  (void)st;
  h x;
  for (int bytewise = 0; bytewise < 2; bytewise++) {
    h_init(&x, EHLO_REPLY("PLAIN LOGIN"));
    x.bytewise = bytewise;
    assert_int_equal(smtpuv_proto_auth(x.p, "PLAIN", "AHUAcA=="), 0);
    assert_string_equal(out(&x), "AUTH PLAIN AHUAcA==\r\n");
    assert_int_equal(feed(&x, "235 2.7.0 ok\r\n"), 0);
    assert_int_equal(smtpuv_proto_state(x.p), SMTPUV_STATE_READY);
    assert_int_equal(smtpuv_proto_auth(x.p, "PLAIN", "AHUAcA=="),
                     SMTPUV_ESTATE);
    assert_int_equal(smtpuv_proto_auth(x.p, "LOGIN", NULL), SMTPUV_ESTATE);
    assert_int_equal(smtpuv_proto_pending_output(x.p), 0);
    assert_int_equal(smtpuv_proto_pending_replies(x.p), 0);
    /* an authenticator cannot go round the rule */
    assert_int_equal(smtpuv_auth_plain_new(&x.tm.mem, NULL, "u", "p", &x.a), 0);
    h_session(&x);
    assert_int_equal(smtpuv_auth_session_start(x.s), SMTPUV_ESTATE);
    assert_string_equal(out(&x), "");
    /* the session goes on */
    assert_int_equal(smtpuv_proto_mail(x.p, "a@b", NULL), 0);
    assert_string_equal(out(&x), "MAIL FROM:<a@b>\r\n");
    h_close(&x);
  }

  h_init(&x, EHLO_REPLY("PLAIN LOGIN"));
  assert_int_equal(smtpuv_proto_auth(x.p, "PLAIN", "AHUAcA=="), 0);
  assert_int_equal(feed(&x, "535 5.7.8 no\r\n"), 0);
  assert_int_equal(smtpuv_proto_auth(x.p, "LOGIN", NULL), 0);
  assert_int_equal(feed(&x, "334 VXNlcm5hbWU6\r\n"), 0);
  assert_int_equal(smtpuv_proto_auth_response(x.p, "dQ=="), 0);
  assert_int_equal(feed(&x, "235 ok\r\n"), 0);
  assert_string_equal(out(&x),
                      "AUTH PLAIN AHUAcA==\r\nAUTH LOGIN\r\ndQ==\r\n");
  assert_int_equal(smtpuv_proto_auth(x.p, "PLAIN", "AHUAcA=="), SMTPUV_ESTATE);
  assert_string_equal(out(&x), "");
  h_close(&x);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_plain),
      cmocka_unit_test(test_login),
      cmocka_unit_test(test_cram_md5_rfc2195),
      cmocka_unit_test(test_scram_rfc_exchanges),
      cmocka_unit_test(test_scram_wrong_server_signature),
      cmocka_unit_test(test_failure_replies),
      cmocka_unit_test(test_reply_matrix),
      cmocka_unit_test(test_malformed_base64),
      cmocka_unit_test(test_step_error_cancels),
      cmocka_unit_test(test_too_many_challenges),
      cmocka_unit_test(test_xoauth2_error_and_refresh),
      cmocka_unit_test(test_oauthbearer_async_refresh),
      cmocka_unit_test(test_token_failure),
      cmocka_unit_test(test_refresh_on_plain_535),
      cmocka_unit_test(test_long_initial_response),
      cmocka_unit_test(test_auto_session),
      cmocka_unit_test(test_not_offered_and_states),
      cmocka_unit_test(test_custom_async_mechanism),
      cmocka_unit_test(test_token_reentrancy),
      cmocka_unit_test(test_no_secret_in_texts),
      cmocka_unit_test(test_alloc_failures),
      cmocka_unit_test(test_no_auth_after_235),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

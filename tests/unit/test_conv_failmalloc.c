/* SPDX-License-Identifier: MIT */
/* Fail the Nth allocation of a whole conversation, for N = 1, 2, ... until
 * a run completes without a failed allocation: every run must end with
 * each message either sent or failed with SMTPUV_ENOMEM (a setup failure
 * with ENOMEM for the queued ones), nothing leaked (the counting allocator
 * of support.c, checked by h_end()), no crash (the ASan build runs this
 * too). Conversations: plain pipelined DATA with two messages; STARTTLS +
 * AUTH PLAIN + BDAT with a trace; a streamed body; the probe modes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "conv_harness.h"

static const char msg[] = "Subject: t\r\n\r\nhello\r\n.dot\r\n";
static const char *two[] = {"b@example.com", "c@example.com"};

typedef struct fm {
  int kind;
  unsigned long n;
  int completed; /* a run without a failed allocation, all sent */
} fm;

enum { K_PLAIN, K_TLS_AUTH, K_STREAM, K_PROBE, K_PROBE_AUTH, K_COUNT };

static const char *const kind_names[] = {"plain", "STARTTLS+AUTH+BDAT",
                                         "stream", "probe", "probe+AUTH"};

/* The server of h_serve() after STARTTLS's 220: the handshake completes. */
static void serve_tls(h *x, const char *ext1, const char *ext2) {
  h_serve(x, ext1, NULL, NULL);
  if (x->tls_wanted) {
    h_tls_up(x, "TLSv1.3 test");
    h_serve(x, ext2, NULL, NULL);
  }
}

static void sc_failmalloc(h *x, void *arg) {
  fm *f = arg;
  test_mem_init(&x->tm, f->n);
  smtpuv_auth *a = NULL;
  h_stream s = {msg, sizeof msg - 1, 0, 5, 0, 0, 0, 0, 0};
  if (f->kind == K_TLS_AUTH || f->kind == K_PROBE_AUTH) {
    /* the authenticator's own allocations fail too */
    if (smtpuv_auth_plain_new(&x->tm.mem, NULL, "user", "s3cr3t", &a) != 0) {
      H_CHECK(x, x->tm.failed);
      return;
    }
    x->cfg.auth = a;
    x->cfg.allow_plain_auth = f->kind == K_PROBE_AUTH;
    x->defer_leak_check = 1;
  }
  if (f->kind == K_TLS_AUTH)
    x->cfg.tls = SMTPUV_TLS_REQUIRED;
  if (f->kind == K_PROBE)
    x->cfg.mode = SMTPUV__CONV_PROBE;
  if (f->kind == K_PROBE_AUTH)
    x->cfg.mode = SMTPUV__CONV_PROBE_AUTH;
  h_start(x);
  if (x->cv == NULL) {
    smtpuv_auth_free(a);
    assert_int_equal(x->tm.live, 0);
    return; /* smtpuv__conv_new() said ENOMEM */
  }
  int ids[2] = {-1, -1};
  int nsub = f->kind >= K_PROBE ? 0 : 2;
  for (int i = 0; i < nsub; i++) {
    if (f->kind == K_STREAM && i == 0) {
      smtpuv_envelope e = SMTPUV_ENVELOPE_INIT;
      e.sender = "a@example.com";
      e.recipients = two;
      e.nrecipients = 2;
      smtpuv_body b;
      smtpuv_body_init_stream(&b, h_stream_read, h_stream_rewind, &s, 0);
      ids[i] = h_submit_env(x, &e, &b);
    } else {
      ids[i] = h_submit(x, "a@example.com", two, 2, msg, sizeof msg - 1);
    }
  }
  switch (f->kind) {
  case K_TLS_AUTH:
    serve_tls(x, "STARTTLS\r\nPIPELINING\r\n",
              "PIPELINING\r\nCHUNKING\r\nAUTH PLAIN\r\n");
    break;
  case K_PROBE_AUTH:
    h_serve(x, "PIPELINING\r\nAUTH PLAIN LOGIN\r\n", NULL, NULL);
    break;
  default:
    h_serve(x, "PIPELINING\r\nSIZE 1000\r\n8BITMIME\r\n", NULL, NULL);
  }
  int all_sent = nsub > 0;
  int saw_enomem = 0;
  for (int i = 0; i < nsub; i++) {
    if (ids[i] < 0) {
      all_sent = 0; /* smtpuv__msg_new() said ENOMEM */
      continue;
    }
    const h_result *r = &x->res[ids[i]];
    if (r->popped == 0) {
      /* still queued: the conversation ended before it could take it (it
         goes to another connection), or it is still running */
      H_CHECK(x, x->queued[ids[i]] || h_end_kind(x) == SMTPUV__CONV_RUN);
      if (h_end_kind(x) == SMTPUV__CONV_RUN)
        H_CHECK(x, x->tm.failed);
      all_sent = 0;
      continue;
    }
    if (r->status != SMTPUV_SEND_SENT) {
      all_sent = 0;
      saw_enomem |= r->error == SMTPUV_ENOMEM;
      if (r->error != SMTPUV_ENOMEM)
        fail_msg("%s: allocation %lu: message %d: %s %s: %s", kind_names[f->kind],
                 f->n, i, smtpuv_send_status_name(r->status),
                 smtpuv_err_name(r->error), r->message);
    } else {
      H_CHECK(x, r->error == 0);
    }
  }
  if (x->end == SMTPUV__CONV_ABORT && !x->failed && nsub > 0) {
    /* an abort outside setup: only for lack of memory (a body that could
       not be pumped fails with ENOMEM and drops the connection, as DATA
       cannot be abandoned) */
    if (x->end_err != SMTPUV_ENOMEM && !saw_enomem)
      fail_msg("%s: allocation %lu: abort with %s", kind_names[f->kind],
               f->n, smtpuv_err_name(x->end_err));
  }
  if (f->kind >= K_PROBE) {
    smtpuv__conv_probe r;
    smtpuv__conv_probe_result(x->cv, &r);
    if (r.error != 0 && r.error != SMTPUV_ENOMEM)
      fail_msg("%s: allocation %lu: probe %s: %s", kind_names[f->kind], f->n,
               smtpuv_err_name(r.error), r.message);
    all_sent = r.error == 0 &&
               (f->kind == K_PROBE || r.authenticated);
  }
  if (!x->tm.failed) {
    if (!all_sent)
      fail_msg("%s: a run without failed allocation did not succeed",
               kind_names[f->kind]);
    f->completed = 1;
  }
  h_end(x);
  smtpuv_auth_free(a);
  assert_int_equal(x->tm.live, 0);
}

static void test_failmalloc(void **state) {
  (void)state;
  for (int kind = 0; kind < K_COUNT; kind++) {
    fm f = {kind, 0, 0};
    for (f.n = 1; f.n < 5000 && !f.completed; f.n++)
      h_run(kind_names[kind], sc_failmalloc, &f, H_WHOLE_ONLY);
    if (!f.completed)
      fail_msg("%s: never completed", kind_names[kind]);
    printf("%s: allocations 1..%lu failed in turn\n", kind_names[kind],
           f.n - 2);
  }
}

/* The same, byte-wise: the reply parser's allocations on every boundary. */
static void test_failmalloc_bytewise(void **state) {
  (void)state;
  fm f = {K_PLAIN, 0, 0};
  for (f.n = 1; f.n < 5000 && !f.completed; f.n++) {
    h *x = calloc(1, sizeof *x);
    assert_non_null(x);
    test_mem_init(&x->tm, 0);
    x->name = "plain, byte-wise";
    x->mode = H_BYTES;
    h_config_default(x);
    sc_failmalloc(x, &f);
    h_release(x);
    free(x);
  }
  assert_true(f.completed);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_failmalloc),
      cmocka_unit_test(test_failmalloc_bytewise),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

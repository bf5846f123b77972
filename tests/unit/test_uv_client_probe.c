/* SPDX-License-Identifier: MIT */
/* smtpuv_client_probe() (smtpuv-send --serverinfo) against a scripted
 * in-process server on 127.0.0.1: what it reports, what it writes (EHLO and
 * QUIT, nothing else), how each failure is reported (phase, code), the
 * trace, argument checks and failing allocations. The TLS paths (STARTTLS,
 * implicit TLS, certificate failures, injection) run against real servers in
 * tests/integration/cli/test_cli.py (Faults.test_serverinfo_faults). */
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
#include "uv_script_server.h"

/* A copy of the result (its pointers die with the callback). */
typedef struct copy {
  int calls;
  int inside; /* the callback ran from inside smtpuv_client_probe() */
  int error;
  smtpuv_phase phase;
  char message[512], peer[80], greeting[256], server_name[128];
  char extensions[512], auth[128], tls[8];
  int greeting_code;
  int has_plain;
  char extensions_plain[512];
  unsigned ext_flags;
  uint64_t max_size;
  char trace[4096];
  size_t tlen;
} copy;

static int in_probe;

static void on_probe(const smtpuv_probe_result *r, void *data) {
  copy *c = data;
  c->calls++;
  c->inside = in_probe;
  assert_int_equal(r->struct_size, sizeof *r);
  c->error = r->error;
  c->phase = r->phase;
  snprintf(c->message, sizeof c->message, "%s", r->message);
  snprintf(c->peer, sizeof c->peer, "%s", r->peer);
  snprintf(c->greeting, sizeof c->greeting, "%s", r->greeting);
  snprintf(c->server_name, sizeof c->server_name, "%s", r->server_name);
  snprintf(c->extensions, sizeof c->extensions, "%s", r->extensions);
  snprintf(c->auth, sizeof c->auth, "%s", r->auth_mechanisms);
  snprintf(c->tls, sizeof c->tls, "%s", r->tls != NULL ? "yes" : "no");
  c->greeting_code = r->greeting_code;
  c->has_plain = r->extensions_plain != NULL;
  if (r->extensions_plain != NULL)
    snprintf(c->extensions_plain, sizeof c->extensions_plain, "%s",
             r->extensions_plain);
  c->ext_flags = r->ext_flags;
  c->max_size = r->max_size;
}

static void on_trace(void *data, smtpuv_trace_kind kind, const char *p,
                     size_t n) {
  copy *c = data;
  const char *tag = kind == SMTPUV_TRACE_SEND   ? "> "
                    : kind == SMTPUV_TRACE_RECV ? "< "
                                                : "# ";
  int w = snprintf(c->trace + c->tlen, sizeof c->trace - c->tlen, "%s%.*s%s",
                   tag, (int)n, p, kind == SMTPUV_TRACE_INFO ? "\n" : "");
  if (w > 0 && c->tlen + (size_t)w < sizeof c->trace)
    c->tlen += (size_t)w;
}

typedef struct fixture {
  uv_loop_t loop;
  ss_server srv;
  smtpuv_options *o;
  copy out;
} fixture;

static void setup(fixture *f, const char *ehlo, const smtpuv_mem *mem) {
  memset(f, 0, sizeof *f);
  uv_loop_init(&f->loop);
  f->srv.ehlo = ehlo;
  assert_int_equal(ss_start(&f->srv, &f->loop), 0);
  assert_int_equal(smtpuv_options_new(mem, &f->o), 0);
  smtpuv_options_set_host(f->o, "127.0.0.1");
  smtpuv_options_set_port(f->o, (unsigned)f->srv.port);
  smtpuv_options_set_tls(f->o, SMTPUV_TLS_NONE);
  smtpuv_options_set_ehlo_name(f->o, "client.test");
  smtpuv_options_set_timeout(f->o, SMTPUV_TIMEOUT_COMMAND, 3000);
}

/* Start the probe; 0 or its error. */
static int start(fixture *f) {
  in_probe = 1;
  int rc = smtpuv_client_probe(&f->loop, f->o, on_probe, &f->out);
  in_probe = 0;
  return rc;
}

/* Run until the callback came (the listener keeps the loop alive). */
static void wait_done(fixture *f) {
  for (int guard = 0; f->out.calls == 0 && guard < 100000; guard++)
    uv_run(&f->loop, UV_RUN_ONCE);
  assert_int_equal(f->out.calls, 1);
  assert_int_equal(f->out.inside, 0);
}

static void finish(fixture *f) {
  ss_stop(&f->srv);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&f->loop), 0);
  assert_true(f->out.calls <= 1);
  smtpuv_options_free(f->o);
  ss_free(&f->srv);
}

static const char EXT[] = "PIPELINING\r\nSIZE 1000\r\nAUTH PLAIN login\r\n"
                          "8BITMIME\r\n";

/* ---- a complete probe ------------------------------------------------------- */

static void test_probe_plaintext(void **state) {
  (void)state;
  fixture f;
  setup(&f, EXT, NULL);
  smtpuv_options_set_trace(f.o, on_trace, &f.out);
  assert_int_equal(start(&f), 0);
  assert_int_equal(f.out.calls, 0);
  wait_done(&f);
  assert_int_equal(f.out.error, 0);
  assert_int_equal(f.out.phase, SMTPUV_PHASE_QUIT);
  assert_string_equal(f.out.message, "");
  char peer[64];
  snprintf(peer, sizeof peer, "127.0.0.1:%d", f.srv.port);
  assert_string_equal(f.out.peer, peer);
  assert_int_equal(f.out.greeting_code, 220);
  assert_string_equal(f.out.greeting, "test ESMTP");
  assert_string_equal(f.out.server_name, "test");
  assert_string_equal(f.out.extensions,
                      "PIPELINING\nSIZE 1000\nAUTH PLAIN login\n8BITMIME");
  assert_int_equal(f.out.has_plain, 0);
  assert_string_equal(f.out.tls, "no");
  assert_int_equal(f.out.ext_flags & (SMTPUV_EXT_PIPELINING | SMTPUV_EXT_SIZE |
                                      SMTPUV_EXT_AUTH | SMTPUV_EXT_8BITMIME |
                                      SMTPUV_EXT_STARTTLS),
                   SMTPUV_EXT_PIPELINING | SMTPUV_EXT_SIZE | SMTPUV_EXT_AUTH |
                       SMTPUV_EXT_8BITMIME);
  assert_int_equal(f.out.max_size, 1000);
  assert_string_equal(f.out.auth, "PLAIN LOGIN");
  /* EHLO and QUIT, nothing else */
  assert_string_equal(f.srv.transcript,
                      "#open\nC: EHLO client.test\nC: QUIT\n#close\n");
  /* the trace saw both directions */
  assert_non_null(strstr(f.out.trace, "> EHLO client.test\r\n"));
  assert_non_null(strstr(f.out.trace, "> QUIT\r\n"));
  assert_non_null(strstr(f.out.trace, "< 220 test ESMTP\r\n"));
  assert_non_null(strstr(f.out.trace, "# connected to 127.0.0.1"));
  finish(&f);
}

/* Credentials in the options are never used (and never stop the probe). */
static void test_probe_ignores_credentials(void **state) {
  (void)state;
  fixture f;
  setup(&f, EXT, NULL);
  assert_int_equal(smtpuv_options_set_credentials(f.o, "u", "p", NULL), 0);
  assert_int_equal(smtpuv_options_set_auth_mechanism(f.o, "XOAUTH2"), 0);
  assert_int_equal(start(&f), 0);
  wait_done(&f);
  assert_int_equal(f.out.error, 0);
  assert_int_equal(ss_count(&f.srv, "C: AUTH"), 0);
  assert_int_equal(ss_count(&f.srv, "C: QUIT"), 1);
  finish(&f);
}

/* ---- TLS modes without STARTTLS ------------------------------------------------ */

static void test_probe_tls_required_not_offered(void **state) {
  (void)state;
  fixture f;
  setup(&f, EXT, NULL);
  smtpuv_options_set_tls(f.o, SMTPUV_TLS_REQUIRED);
  assert_int_equal(start(&f), 0);
  wait_done(&f);
  assert_int_equal(f.out.error, SMTPUV_ENOTLS);
  assert_int_equal(f.out.phase, SMTPUV_PHASE_TLS);
  /* the plaintext extensions are still reported */
  assert_int_equal(f.out.max_size, 1000);
  assert_string_equal(f.out.auth, "PLAIN LOGIN");
  assert_non_null(strstr(f.out.extensions, "PIPELINING"));
  assert_non_null(strstr(f.out.message, "does not offer STARTTLS"));
  assert_int_equal(ss_count(&f.srv, "C: STARTTLS"), 0);
  assert_int_equal(ss_count(&f.srv, "C: QUIT"), 1);
  finish(&f);
}

static void test_probe_tls_opportunistic_not_offered(void **state) {
  (void)state;
  fixture f;
  setup(&f, EXT, NULL);
  smtpuv_options_set_tls(f.o, SMTPUV_TLS_OPPORTUNISTIC);
  assert_int_equal(start(&f), 0);
  wait_done(&f);
  assert_int_equal(f.out.error, 0);
  assert_string_equal(f.out.tls, "no");
  assert_int_equal(f.out.has_plain, 0);
  finish(&f);
}

/* With TLS off, STARTTLS is reported but not used. */
static void test_probe_tls_off_starttls_offered(void **state) {
  (void)state;
  fixture f;
  setup(&f, "STARTTLS\r\n", NULL);
  assert_int_equal(start(&f), 0);
  wait_done(&f);
  assert_int_equal(f.out.error, 0);
  assert_true(f.out.ext_flags & SMTPUV_EXT_STARTTLS);
  assert_string_equal(f.out.extensions, "STARTTLS");
  assert_string_equal(f.out.auth, "");
  assert_int_equal(ss_count(&f.srv, "C: STARTTLS"), 0);
  finish(&f);
}

/* ---- failures ------------------------------------------------------------------ */

/* The server's answer to a command starting with `prefix`: `reply`, or
   NULL to close the connection. */
typedef struct rule {
  const char *prefix, *reply;
} rule;

static int reply_hook(ss_server *s, const char *line, char *reply,
                      size_t cap) {
  const rule *r = s->data;
  if (line == NULL || strncmp(line, r->prefix, strlen(r->prefix)) != 0)
    return SS_DEFAULT;
  if (r->reply == NULL)
    return SS_CLOSE;
  snprintf(reply, cap, "%s", r->reply);
  return SS_REPLY;
}

/* Each way a probe can be stopped by the server: the error, the phase it is
   reported in, and a piece of the message. */
static void test_probe_failures(void **state) {
  (void)state;
  static const struct {
    const char *greeting, *ehlo;
    rule rule;
    smtpuv_tls_mode tls;
    int error;
    smtpuv_phase phase;
    int greeting_code;
    const char *message;
  } cases[] = {
      {"554 no service here\r\n", NULL, {"", ""}, SMTPUV_TLS_NONE,
       SMTPUV_EPERMFAIL, SMTPUV_PHASE_GREETING, 554,
       "greeting: 554 no service here"},
      /* 421 is the server closing, as for a send (SMTPUV_ESHUTDOWN) */
      {"421 busy, later\r\n", NULL, {"", ""}, SMTPUV_TLS_NONE,
       SMTPUV_ESHUTDOWN, SMTPUV_PHASE_GREETING, 421, "421 busy, later"},
      /* EHLO refused: no HELO fallback when TLS is required (HELO cannot
         offer STARTTLS) */
      {NULL, NULL, {"EHLO", "550 5.5.1 go away\r\n"}, SMTPUV_TLS_REQUIRED,
       SMTPUV_EPERMFAIL, SMTPUV_PHASE_EHLO, 220, "EHLO: 550 5.5.1 go away"},
      {NULL, NULL, {"EHLO", NULL}, SMTPUV_TLS_NONE, SMTPUV_ECONNLOST,
       SMTPUV_PHASE_EHLO, 220, "closed"},
      {NULL, NULL, {"EHLO", "hello there\r\n"}, SMTPUV_TLS_NONE,
       SMTPUV_EPROTO, SMTPUV_PHASE_EHLO, 220, ""},
      {"220 hi\r\n421 shutting down\r\n", NULL, {"", ""}, SMTPUV_TLS_NONE,
       SMTPUV_ESHUTDOWN, SMTPUV_PHASE_EHLO, 220, "421 shutting down"},
      /* STARTTLS offered but refused (the script server says 502) */
      {NULL, "STARTTLS\r\nSIZE 10\r\n", {"", ""}, SMTPUV_TLS_REQUIRED,
       SMTPUV_ENOTLS, SMTPUV_PHASE_TLS, 220, "STARTTLS refused: 502"},
      /* opportunistic: a refused STARTTLS goes on in plaintext, as a send
         would (the probe reports the plaintext session) */
      {NULL, "STARTTLS\r\nSIZE 10\r\n", {"", ""}, SMTPUV_TLS_OPPORTUNISTIC,
       0, SMTPUV_PHASE_QUIT, 220, ""},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    fixture f;
    setup(&f, cases[i].ehlo != NULL ? cases[i].ehlo : EXT, NULL);
    if (cases[i].greeting != NULL)
      f.srv.greeting = cases[i].greeting;
    if (cases[i].rule.prefix[0] != '\0') {
      f.srv.hook = reply_hook;
      f.srv.data = (void *)&cases[i].rule;
    }
    smtpuv_options_set_tls(f.o, cases[i].tls);
    assert_int_equal(start(&f), 0);
    wait_done(&f);
    if (f.out.error != cases[i].error || f.out.phase != cases[i].phase ||
        f.out.greeting_code != cases[i].greeting_code ||
        strstr(f.out.message, cases[i].message) == NULL)
      fail_msg("case %zu: %s in %s, greeting %d: %s", i,
               smtpuv_err_name(f.out.error), smtpuv_phase_name(f.out.phase),
               f.out.greeting_code, f.out.message);
    if (cases[i].phase == SMTPUV_PHASE_GREETING) {
      assert_string_equal(f.out.server_name, "");
      assert_int_equal(ss_count(&f.srv, "C: EHLO"), 0);
    }
    assert_int_equal(ss_count(&f.srv, "C: AUTH"), 0);
    assert_int_equal(ss_count(&f.srv, "C: MAIL"), 0);
    finish(&f);
  }
}

static void test_probe_silent_greeting(void **state) {
  (void)state;
  fixture f;
  setup(&f, EXT, NULL);
  f.srv.greeting = "";
  smtpuv_options_set_timeout(f.o, SMTPUV_TIMEOUT_COMMAND, 200);
  uint64_t t0 = uv_now(&f.loop);
  assert_int_equal(start(&f), 0);
  wait_done(&f);
  uv_update_time(&f.loop);
  assert_int_equal(f.out.error, SMTPUV_ETIMEDOUT);
  assert_int_equal(f.out.phase, SMTPUV_PHASE_GREETING);
  assert_int_equal(f.out.greeting_code, 0);
  assert_true(uv_now(&f.loop) - t0 < 2000);
  finish(&f);
}

static void test_probe_refused(void **state) {
  (void)state;
  fixture f;
  setup(&f, EXT, NULL);
  /* a port nobody listens on: the script server's, closed */
  ss_stop(&f.srv);
  uv_run(&f.loop, UV_RUN_DEFAULT);
  assert_int_equal(start(&f), 0);
  uv_run(&f.loop, UV_RUN_DEFAULT);
  assert_int_equal(f.out.calls, 1);
  assert_int_equal(f.out.error, SMTPUV_ECONNECT);
  assert_int_equal(f.out.phase, SMTPUV_PHASE_CONNECT);
  assert_int_equal(f.out.greeting_code, 0);
  assert_non_null(strstr(f.out.message, "connect 127.0.0.1:"));
  finish(&f);
}

static void test_probe_args(void **state) {
  (void)state;
  fixture f;
  setup(&f, EXT, NULL);
  assert_int_equal(smtpuv_client_probe(NULL, f.o, on_probe, &f.out),
                   SMTPUV_EINVAL);
  assert_int_equal(smtpuv_client_probe(&f.loop, NULL, on_probe, &f.out),
                   SMTPUV_EINVAL);
  assert_int_equal(smtpuv_client_probe(&f.loop, f.o, NULL, &f.out),
                   SMTPUV_EINVAL);
  smtpuv_options *nohost;
  assert_int_equal(smtpuv_options_new(NULL, &nohost), 0);
  assert_int_equal(smtpuv_client_probe(&f.loop, nohost, on_probe, &f.out),
                   SMTPUV_EINVAL);
  smtpuv_options_free(nohost);
  assert_int_equal(f.out.calls, 0);
  finish(&f);
}

/* The options may be freed once the probe started (they are copied). */
static void test_probe_options_copied(void **state) {
  (void)state;
  fixture f;
  setup(&f, EXT, NULL);
  assert_int_equal(start(&f), 0);
  smtpuv_options_free(f.o);
  f.o = NULL;
  wait_done(&f);
  assert_int_equal(f.out.error, 0);
  finish(&f);
}

/* Every allocation failing in turn: ENOMEM from the call (no callback) or
   one callback; nothing leaks. */
static void test_probe_failmalloc(void **state) {
  (void)state;
  int completed = 0;
  for (unsigned long n = 1; n < 400 && !completed; n++) {
    test_mem tm;
    test_mem_init(&tm, 0);
    fixture f;
    setup(&f, EXT, &tm.mem);
    tm.calls = 0;
    tm.fail_at = n;
    int rc = start(&f);
    if (rc != 0) {
      assert_int_equal(rc, SMTPUV_ENOMEM);
      assert_int_equal(f.out.calls, 0);
    } else {
      wait_done(&f);
      if (!tm.failed) {
        assert_int_equal(f.out.error, 0);
        completed = 1;
      } else {
        /* the read buffer's allocation failing is a failed read (ENOBUFS),
           as for every connection */
        int nobufs = f.out.error == SMTPUV_ECONNLOST &&
                     strstr(f.out.message, "no buffer space") != NULL;
        if (f.out.error != 0 && f.out.error != SMTPUV_ENOMEM && !nobufs)
          fail_msg("allocation %lu: %s (%s)", n, smtpuv_err_name(f.out.error),
                   f.out.message);
      }
    }
    finish(&f);
    assert_int_equal(tm.live, 0);
  }
  assert_true(completed);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_probe_plaintext),
      cmocka_unit_test(test_probe_ignores_credentials),
      cmocka_unit_test(test_probe_tls_required_not_offered),
      cmocka_unit_test(test_probe_tls_opportunistic_not_offered),
      cmocka_unit_test(test_probe_tls_off_starttls_offered),
      cmocka_unit_test(test_probe_failures),
      cmocka_unit_test(test_probe_silent_greeting),
      cmocka_unit_test(test_probe_refused),
      cmocka_unit_test(test_probe_args),
      cmocka_unit_test(test_probe_options_copied),
      cmocka_unit_test(test_probe_failmalloc),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

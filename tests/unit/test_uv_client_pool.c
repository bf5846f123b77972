/* SPDX-License-Identifier: MIT */
/* The client's pool features against the scripted server on 127.0.0.1:
 * the retry policy (451 then 250 is sent after two attempts with the
 * backoff waited; 550 and UNKNOWN never retried; a refused connection
 * retried up to the limit), fallback servers (a dead first server is
 * skipped), back-pressure (SMTPUV_EFULL, the drained callback), callbacks
 * in completion order, the message rate limit, messages per connection,
 * abort. Time is only ever checked from below (the client may not be
 * early), never from above. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>

#include "smtpuv/client.h"
#include "support.h"
#include "uv_script_server.h"

/* A loopback port nobody listens on (bound, then closed). */
static int itest_like_free_port(void) {
  uv_loop_t loop;
  uv_tcp_t t;
  struct sockaddr_in a;
  uv_loop_init(&loop);
  uv_tcp_init(&loop, &t);
  uv_ip4_addr("127.0.0.1", 0, &a);
  assert_int_equal(uv_tcp_bind(&t, (const struct sockaddr *)&a, 0), 0);
  struct sockaddr_storage ss;
  int len = sizeof ss;
  assert_int_equal(uv_tcp_getsockname(&t, (struct sockaddr *)&ss, &len), 0);
  int port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  return port;
}

static int contains(const char *b, size_t n, const char *needle) {
  size_t k = strlen(needle);
  for (size_t i = 0; i + k <= n; i++)
    if (!memcmp(b + i, needle, k))
      return 1;
  return 0;
}

typedef struct fixture {
  uv_loop_t loop;
  ss_server srv;
  smtpuv_options *o;
  smtpuv_client *c;
  smtpuv_send_result *r[64];
  int order[64];
  int done;
  int closed;
  int drained;
  int refuse_rcpt; /* RCPTs still to answer 451 */
  int fail_code;   /* 0, or the code RCPT always gets */
  int close_after_dot; /* close instead of answering "." */
  uint64_t t0;
} fixture;

static void on_closed(smtpuv_client *c) {
  fixture *f = smtpuv_client_get_data(c);
  f->closed++;
}

static void on_sent(smtpuv_client *c, const smtpuv_send_result *r,
                    void *data) {
  fixture *f = smtpuv_client_get_data(c);
  size_t i = (size_t)data;
  assert_true(i < 64);
  assert_null(f->r[i]); /* exactly once */
  assert_int_equal(smtpuv_send_result_dup(NULL, r, &f->r[i]), 0);
  f->order[f->done++] = (int)i;
}

static void on_drained(smtpuv_client *c) {
  fixture *f = smtpuv_client_get_data(c);
  f->drained++;
}

static int hook(ss_server *s, const char *line, char *reply, size_t cap) {
  fixture *f = s->data;
  if (line == NULL && f->close_after_dot)
    return SS_CLOSE;
  if (line != NULL && !strncmp(line, "RCPT", 4)) {
    if (f->fail_code != 0) {
      snprintf(reply, cap, "%d 5.1.1 no such user\r\n", f->fail_code);
      return SS_REPLY;
    }
    if (f->refuse_rcpt > 0) {
      f->refuse_rcpt--;
      snprintf(reply, cap, "451 4.3.0 try again later\r\n");
      return SS_REPLY;
    }
  }
  return SS_DEFAULT;
}

static void setup(fixture *f) {
  memset(f, 0, sizeof *f);
  uv_loop_init(&f->loop);
  f->srv.ehlo = "PIPELINING\r\n";
  f->srv.hook = hook;
  f->srv.data = f;
  assert_int_equal(ss_start(&f->srv, &f->loop), 0);
  assert_int_equal(smtpuv_options_new(NULL, &f->o), 0);
  smtpuv_options_set_host(f->o, "127.0.0.1");
  smtpuv_options_set_port(f->o, (unsigned)f->srv.port);
  smtpuv_options_set_tls(f->o, SMTPUV_TLS_NONE);
  smtpuv_options_set_ehlo_name(f->o, "client.test");
  smtpuv_options_set_timeout(f->o, SMTPUV_TIMEOUT_COMMAND, 3000);
  smtpuv_options_set_timeout(f->o, SMTPUV_TIMEOUT_CONNECT, 3000);
  f->t0 = uv_now(&f->loop);
}

static void make_client(fixture *f) {
  assert_int_equal(smtpuv_client_new(&f->loop, f->o, &f->c), 0);
  smtpuv_client_set_data(f->c, f);
}

static const char body[] = "Subject: t\r\n\r\nhello\r\n";
static const char *const one[] = {"b@example.com"};

static int send_one(fixture *f, int i) {
  smtpuv_envelope e = SMTPUV_ENVELOPE_INIT;
  e.sender = "a@example.com";
  e.recipients = one;
  e.nrecipients = 1;
  smtpuv_body b;
  smtpuv_body_init_buffer(&b, body, sizeof body - 1);
  return smtpuv_client_send(f->c, &e, &b, on_sent, (void *)(size_t)i);
}

static void run_until(fixture *f, int n) {
  for (int guard = 0; f->done < n && guard < 200000; guard++)
    uv_run(&f->loop, UV_RUN_ONCE);
  assert_int_equal(f->done, n);
}

static void finish(fixture *f) {
  if (f->c != NULL) {
    if (!f->closed)
      smtpuv_client_close(f->c, on_closed);
    for (int guard = 0; !f->closed && guard < 100000; guard++)
      uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(f->closed, 1);
  }
  ss_stop(&f->srv);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&f->loop), 0);
  ss_free(&f->srv);
  smtpuv_options_free(f->o);
  for (int i = 0; i < 64; i++)
    smtpuv_send_result_free(f->r[i]);
}

/* ---- retries ------------------------------------------------------------------ */

static void test_retry_temporary_then_sent(void **state) {
  (void)state;
  fixture f;
  setup(&f);
  f.refuse_rcpt = 1;
  assert_int_equal(smtpuv_options_set_retry(f.o, 3, 200, 1000, 0), 0);
  make_client(&f);
  assert_int_equal(send_one(&f, 0), 0);
  run_until(&f, 1);
  assert_int_equal(f.r[0]->status, SMTPUV_SEND_SENT);
  assert_int_equal(f.r[0]->attempts, 2);
  assert_non_null(f.r[0]->attempt_log);
  assert_non_null(strstr(f.r[0]->attempt_log, "attempt 1: "));
  assert_non_null(strstr(f.r[0]->attempt_log, "451 4.3.0"));
  assert_null(strchr(f.r[0]->attempt_log, '\n')); /* one earlier attempt */
  /* the backoff was waited: at least half of the 200 ms base (jitter) */
  assert_true(uv_now(&f.loop) - f.t0 >= 100);
  assert_int_equal(ss_count(&f.srv, "C: RCPT"), 2);
  /* the first attempt's pipelined DATA got 354 from this server without a
     recipient: the client ended it with an empty body (DESIGN rule); the
     second delivered the message */
  assert_int_equal(f.srv.messages, 2);
  assert_int_equal(f.srv.blen, sizeof body - 1);
  assert_memory_equal(f.srv.body, body, sizeof body - 1);
  finish(&f);
}

static void test_no_retry_permanent_or_unknown(void **state) {
  (void)state;
  fixture f;
  setup(&f);
  f.fail_code = 550;
  assert_int_equal(smtpuv_options_set_retry(f.o, 5, 10, 10, 0), 0);
  make_client(&f);
  assert_int_equal(send_one(&f, 0), 0);
  run_until(&f, 1);
  assert_int_equal(f.r[0]->status, SMTPUV_SEND_FAILED);
  assert_int_equal(f.r[0]->attempts, 1);
  assert_null(f.r[0]->attempt_log);
  assert_int_equal(ss_count(&f.srv, "C: RCPT"), 1);
  finish(&f);

  /* the connection lost after the final dot: UNKNOWN, never again */
  setup(&f);
  f.close_after_dot = 1;
  assert_int_equal(smtpuv_options_set_retry(f.o, 5, 10, 10, 0), 0);
  make_client(&f);
  assert_int_equal(send_one(&f, 0), 0);
  run_until(&f, 1);
  assert_int_equal(f.r[0]->status, SMTPUV_SEND_UNKNOWN);
  assert_int_equal(f.r[0]->attempts, 1);
  assert_int_equal(f.srv.connections, 1);
  finish(&f);
}

static void test_retry_refused_connection(void **state) {
  (void)state;
  fixture f;
  setup(&f);
  /* nobody listens there */
  smtpuv_options_set_port(f.o, (unsigned)itest_like_free_port());
  assert_int_equal(smtpuv_options_set_retry(f.o, 3, 20, 40, 0), 0);
  make_client(&f);
  assert_int_equal(send_one(&f, 0), 0);
  run_until(&f, 1);
  assert_int_equal(f.r[0]->status, SMTPUV_SEND_FAILED);
  assert_int_equal(f.r[0]->error, SMTPUV_ECONNECT);
  assert_int_equal(f.r[0]->attempts, 3);
  assert_non_null(f.r[0]->attempt_log);
  assert_non_null(strstr(f.r[0]->attempt_log, "attempt 2: "));
  assert_null(strstr(f.r[0]->attempt_log, "attempt 3: "));
  finish(&f);

  /* a deadline shorter than the backoff: one attempt only */
  setup(&f);
  smtpuv_options_set_port(f.o, (unsigned)itest_like_free_port());
  assert_int_equal(smtpuv_options_set_retry(f.o, 3, 1000, 1000, 100), 0);
  make_client(&f);
  assert_int_equal(send_one(&f, 0), 0);
  run_until(&f, 1);
  assert_int_equal(f.r[0]->attempts, 1);
  finish(&f);
}

/* ---- fallback servers --------------------------------------------------------- */

typedef struct tracecount {
  int connecting_dead;
  char dead[64];
} tracecount;

static void count_trace(void *data, smtpuv_trace_kind kind, const char *b,
                        size_t n) {
  tracecount *t = data;
  if (kind == SMTPUV_TRACE_INFO && n > 14 && !memcmp(b, "connecting to ", 14) &&
      contains(b, n, t->dead))
    t->connecting_dead++;
}

static void test_fallback_server(void **state) {
  (void)state;
  fixture f;
  setup(&f);
  tracecount t = {0, ""};
  int dead = itest_like_free_port();
  snprintf(t.dead, sizeof t.dead, ":%d", dead);
  /* the first server is dead, the second is the script server */
  smtpuv_options_set_port(f.o, (unsigned)dead);
  assert_int_equal(
      smtpuv_options_add_fallback_host(f.o, "127.0.0.1", (unsigned)f.srv.port),
      0);
  smtpuv_options_set_trace(f.o, count_trace, &t);
  smtpuv_options_set_timeout(f.o, SMTPUV_TIMEOUT_IDLE, 1); /* reconnects */
  make_client(&f);
  for (int i = 0; i < 5; i++) {
    assert_int_equal(send_one(&f, i), 0);
    run_until(&f, i + 1);
    assert_int_equal(f.r[i]->status, SMTPUV_SEND_SENT);
    /* let the idle connection go, so the next message reconnects */
    for (int g = 0; g < 100 && f.srv.conn != NULL; g++)
      uv_run(&f.loop, UV_RUN_ONCE);
  }
  assert_int_equal(f.srv.messages, 5);
  /* the dead server was tried once, then skipped */
  assert_int_equal(t.connecting_dead, 1);
  assert_true(f.srv.connections >= 2);
  finish(&f);
}

/* ---- setup failures in a pool ------------------------------------------------- */

/* Every connection's greeting is refused: with several connections (and
   with a fallback that is never skipped) the queue fails with the
   greeting's reply after a bounded number of connections, instead of
   reconnecting for ever. */
static void test_pool_setup_failures(void **state) {
  (void)state;
  for (int variant = 0; variant < 2; variant++) {
    fixture f;
    setup(&f);
    f.srv.greeting = "554 5.7.1 no service for you\r\n";
    assert_int_equal(smtpuv_options_set_max_connections(f.o, 4), 0);
    if (variant == 1) {
      /* a dead first server, the refusing one as fallback, no skipping */
      smtpuv_options_set_port(f.o, (unsigned)itest_like_free_port());
      assert_int_equal(smtpuv_options_add_fallback_host(
                           f.o, "127.0.0.1", (unsigned)f.srv.port),
                       0);
      assert_int_equal(smtpuv_options_set_host_skip_time(f.o, 0), 0);
    }
    make_client(&f);
    for (int i = 0; i < 20; i++)
      assert_int_equal(send_one(&f, i), 0);
    run_until(&f, 20);
    for (int i = 0; i < 20; i++) {
      assert_int_equal(f.r[i]->status, SMTPUV_SEND_FAILED);
      assert_true(f.r[i]->error == SMTPUV_EPERMFAIL ||
                  f.r[i]->error == SMTPUV_ECONNECT);
    }
    assert_true(f.srv.connections >= 1);
    assert_true(f.srv.connections <= 8);
    finish(&f);
  }
}

/* ---- back-pressure -------------------------------------------------------------- */

static void test_queue_limits(void **state) {
  (void)state;
  fixture f;
  setup(&f);
  assert_int_equal(smtpuv_options_set_queue_limits(f.o, 3, 1), 0);
  assert_int_equal(smtpuv_options_set_queue_limits(f.o, 3, 3), SMTPUV_EINVAL);
  make_client(&f);
  assert_int_equal(smtpuv_client_set_drained_cb(f.c, on_drained), 0);
  for (int i = 0; i < 3; i++)
    assert_int_equal(send_one(&f, i), 0);
  assert_int_equal(send_one(&f, 3), SMTPUV_EFULL);
  assert_int_equal(smtpuv_client_pending(f.c), 3);
  run_until(&f, 3);
  for (int g = 0; g < 100 && f.drained == 0; g++)
    uv_run(&f.loop, UV_RUN_ONCE);
  assert_int_equal(f.drained, 1);
  assert_int_equal(send_one(&f, 4), 0);
  run_until(&f, 4);
  assert_null(f.r[3]); /* refused: never called back */
  assert_int_equal(f.r[4]->status, SMTPUV_SEND_SENT);
  finish(&f);
}

/* ---- callback order ---------------------------------------------------------------- */

static int send_utf8(fixture *f, int i) {
  static const char *const u[] = {"j\xc3\xb6rg@example.com"};
  smtpuv_envelope e = SMTPUV_ENVELOPE_INIT;
  e.sender = "a@example.com";
  e.recipients = u;
  e.nrecipients = 1;
  smtpuv_body b;
  smtpuv_body_init_buffer(&b, body, sizeof body - 1);
  return smtpuv_client_send(f->c, &e, &b, on_sent, (void *)(size_t)i);
}

static void test_completion_order(void **state) {
  (void)state;
  for (int ordered = 0; ordered < 2; ordered++) {
    fixture f;
    setup(&f);
    assert_int_equal(smtpuv_options_set_ordered_callbacks(f.o, ordered), 0);
    make_client(&f);
    /* #0 goes over the wire; #1 is refused locally (no SMTPUTF8) as soon
       as the connection is ready, before #0's reply */
    assert_int_equal(send_one(&f, 0), 0);
    assert_int_equal(send_utf8(&f, 1), 0);
    run_until(&f, 2);
    assert_int_equal(f.r[0]->status, SMTPUV_SEND_SENT);
    assert_int_equal(f.r[1]->error, SMTPUV_ENOEXT);
    assert_int_equal(f.order[0], ordered ? 0 : 1);
    assert_int_equal(f.order[1], ordered ? 1 : 0);
    finish(&f);
  }
}

/* ---- rate limit, messages per connection ------------------------------------------ */

static void test_message_rate(void **state) {
  (void)state;
  fixture f;
  setup(&f);
  /* 20 per second, bursts of 1: 5 messages need 4 more tokens = 200 ms */
  assert_int_equal(smtpuv_options_set_rate_limit(f.o, 20, 1, 0), 0);
  assert_int_equal(smtpuv_options_set_rate_limit(f.o, -1, 1, 0), SMTPUV_EINVAL);
  make_client(&f);
  for (int i = 0; i < 5; i++)
    assert_int_equal(send_one(&f, i), 0);
  run_until(&f, 5);
  for (int i = 0; i < 5; i++)
    assert_int_equal(f.r[i]->status, SMTPUV_SEND_SENT);
  assert_true(uv_now(&f.loop) - f.t0 >= 190);
  finish(&f);
}

static void test_messages_per_connection(void **state) {
  (void)state;
  fixture f;
  setup(&f);
  assert_int_equal(smtpuv_options_set_max_messages_per_connection(f.o, 2), 0);
  make_client(&f);
  for (int i = 0; i < 5; i++)
    assert_int_equal(send_one(&f, i), 0);
  run_until(&f, 5);
  for (int i = 0; i < 5; i++)
    assert_int_equal(f.r[i]->status, SMTPUV_SEND_SENT);
  assert_int_equal(f.srv.connections, 3);
  assert_int_equal(f.srv.messages, 5);
  /* each full connection ended with QUIT */
  assert_true(ss_count(&f.srv, "C: QUIT") >= 2);
  finish(&f);
}

/* ---- options ------------------------------------------------------------------------ */

static void test_pool_options(void **state) {
  (void)state;
  smtpuv_options *o;
  assert_int_equal(smtpuv_options_new(NULL, &o), 0);
  assert_int_equal(smtpuv_options_set_max_connections(o, 0), SMTPUV_EINVAL);
  assert_int_equal(smtpuv_options_set_max_connections(o, 1001), SMTPUV_EINVAL);
  assert_int_equal(smtpuv_options_set_max_connections(o, 8), 0);
  assert_int_equal(smtpuv_options_set_pipeline_depth(o, 0), SMTPUV_EINVAL);
  assert_int_equal(smtpuv_options_set_pipeline_depth(o, 65), SMTPUV_EINVAL);
  assert_int_equal(smtpuv_options_set_pipeline_depth(o, 8), 0);
  assert_int_equal(smtpuv_options_set_retry(o, 3, 0, 0, 0), SMTPUV_EINVAL);
  assert_int_equal(smtpuv_options_set_retry(o, 3, 100, 50, 0), SMTPUV_EINVAL);
  assert_int_equal(smtpuv_options_add_fallback_host(o, "bad host", 25),
                   SMTPUV_EINVAL);
  for (int i = 0; i < 15; i++)
    assert_int_equal(smtpuv_options_add_fallback_host(o, "mx.example", 25), 0);
  assert_int_equal(smtpuv_options_add_fallback_host(o, "mx.example", 25),
                   SMTPUV_ELIMIT);
  /* copies (a client) own their fallback list */
  assert_int_equal(smtpuv_options_set_host(o, "127.0.0.1"), 0);
  uv_loop_t loop;
  uv_loop_init(&loop);
  smtpuv_client *c;
  assert_int_equal(smtpuv_client_new(&loop, o, &c), 0);
  smtpuv_options_free(o);
  assert_int_equal(smtpuv_client_close(c, NULL), 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_retry_temporary_then_sent),
      cmocka_unit_test(test_no_retry_permanent_or_unknown),
      cmocka_unit_test(test_retry_refused_connection),
      cmocka_unit_test(test_fallback_server),
      cmocka_unit_test(test_pool_setup_failures),
      cmocka_unit_test(test_queue_limits),
      cmocka_unit_test(test_completion_order),
      cmocka_unit_test(test_message_rate),
      cmocka_unit_test(test_messages_per_connection),
      cmocka_unit_test(test_pool_options),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

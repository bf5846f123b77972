/* SPDX-License-Identifier: MIT */
/* The pool against Postfix's smtp-sink: connections opened only as needed,
 * the per-connection message limit honoured, every message delivered once
 * (read back from the sink's dump files), and, when the sink dies in the
 * middle of a run, every message accounted for exactly once: sent, failed
 * with a reason, or unknown. Connections are counted from the client's
 * trace ("connected to ..."). */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "itest.h"

static char sink_dir[400];
static int sink_port;

static int start_sink(void **state) {
  (void)state;
  char log[400], port[16];
  static int n;
  snprintf(sink_dir, sizeof sink_dir, "%s/sink%d", itest_workdir(), n++);
  snprintf(log, sizeof log, "%s/sink.log", itest_workdir());
  sink_port = itest_free_port();
  snprintf(port, sizeof port, "%d", sink_port);
  return itest_run(log, itest_server_path("smtp_sink.sh"), "start", sink_dir,
                   port, NULL) == 0
             ? 0
             : -1;
}

static void stop_sink(void) {
  char log[400];
  snprintf(log, sizeof log, "%s/sink.log", itest_workdir());
  itest_run(log, itest_server_path("smtp_sink.sh"), "stop", sink_dir, NULL,
            NULL);
}

static int teardown(void **state) {
  (void)state;
  itest_cleanup();
  return 0;
}

static int msgs_now(void) {
  char d[500];
  snprintf(d, sizeof d, "%s/msgs", sink_dir);
  return itest_count_files(d);
}

static void wait_msgs(int want) {
  double end = itest_now_ms() + 30000;
  while (msgs_now() < want && itest_now_ms() < end)
    itest_sleep_ms(20);
  assert_int_equal(msgs_now(), want);
}

typedef struct run {
  uv_loop_t loop;
  smtpuv_client *c;
  int done, sent, failed, unknown, in_order, next, next_q;
  int connected, limit_closes;
  int closed;
  int kill_at; /* stop the sink once it holds this many messages */
  int killed;
  uv_timer_t watch;
} run;

static void trace_cb(void *data, smtpuv_trace_kind kind, const char *b,
                     size_t n) {
  run *r = data;
  if (kind != SMTPUV_TRACE_INFO)
    return;
  if (n >= 13 && !memcmp(b, "connected to ", 13))
    r->connected++;
  static const char lim[] = "messages sent on this connection";
  for (size_t i = 0; i + sizeof lim - 1 <= n; i++)
    if (!memcmp(b + i, lim, sizeof lim - 1)) {
      r->limit_closes++;
      break;
    }
}

static void on_sent(smtpuv_client *c, const smtpuv_send_result *res,
                    void *data) {
  run *r = smtpuv_client_get_data(c);
  if ((int)(size_t)data != r->next)
    r->in_order = 0;
  r->next++;
  r->done++;
  switch (res->status) {
  case SMTPUV_SEND_SENT:
    r->sent++;
    break;
  case SMTPUV_SEND_UNKNOWN:
    r->unknown++;
    break;
  default:
    r->failed++;
    assert_true(res->message[0] != '\0'); /* failed with a reason */
    break;
  }
}

static void on_closed(smtpuv_client *c) {
  run *r = smtpuv_client_get_data(c);
  r->closed = 1;
}

static void on_watch(uv_timer_t *t) {
  run *r = t->data;
  if (!r->killed && msgs_now() >= r->kill_at) {
    stop_sink();
    r->killed = 1;
  }
}

static const char body[] = "From: a@example.com\r\nTo: b@example.com\r\n"
                           "Subject: pool\r\n\r\nhello\r\n";

static void start_run(run *r, smtpuv_options *o) {
  memset(r, 0, sizeof *r);
  r->in_order = 1;
  uv_loop_init(&r->loop);
  smtpuv_options_set_trace(o, trace_cb, r);
  assert_int_equal(smtpuv_client_new(&r->loop, o, &r->c), 0);
  smtpuv_client_set_data(r->c, r);
}

static void submit(run *r, int n) {
  ITEST_ONE_MESSAGE(env, b, "b@example.com", body, sizeof body - 1);
  for (int i = 0; i < n; i++)
    assert_int_equal(
        smtpuv_client_send(r->c, &env, &b, on_sent, (void *)(size_t)r->next_q++),
        0);
}

static void wait_done(run *r, int n) {
  for (int guard = 0; r->done < n && guard < 10000000; guard++)
    uv_run(&r->loop, UV_RUN_ONCE);
  assert_int_equal(r->done, n);
}

static void end_run(run *r) {
  smtpuv_client_close(r->c, on_closed);
  uv_run(&r->loop, UV_RUN_DEFAULT);
  assert_true(r->closed);
  assert_int_equal(uv_loop_close(&r->loop), 0);
}

static smtpuv_options *options(unsigned conns) {
  smtpuv_options *o = itest_options(sink_port, SMTPUV_TLS_NONE);
  assert_int_equal(smtpuv_options_set_max_connections(o, conns), 0);
  return o;
}

/* 2,000 messages at once: the pool grows (no more than its ceiling), every
   message arrives once, callbacks in submission order. */
static void test_pool_grows(void **state) {
  (void)state;
  assert_int_equal(start_sink(NULL), 0);
  smtpuv_options *o = options(8);
  run r;
  start_run(&r, o);
  submit(&r, 2000);
  wait_done(&r, 2000);
  assert_int_equal(r.sent, 2000);
  assert_true(r.in_order);
  assert_true(r.connected >= 2);
  assert_true(r.connected <= 8);
  end_run(&r);
  wait_msgs(2000);
  smtpuv_options_free(o);
  stop_sink();
}

/* One message at a time never needs a second connection. */
static void test_pool_trickle(void **state) {
  (void)state;
  assert_int_equal(start_sink(NULL), 0);
  smtpuv_options *o = options(8);
  run r;
  start_run(&r, o);
  for (int i = 0; i < 20; i++) {
    submit(&r, 1);
    wait_done(&r, i + 1);
  }
  assert_int_equal(r.sent, 20);
  assert_int_equal(r.connected, 1);
  end_run(&r);
  wait_msgs(20);
  smtpuv_options_free(o);
  stop_sink();
}

/* 50 messages per connection. One connection at a time: 500 messages take
   exactly 10 connections, each closed by the limit. Four at a time: at
   least 10 (the limit is a ceiling: the last ones may carry fewer). */
static void test_messages_per_connection(void **state) {
  (void)state;
  assert_int_equal(start_sink(NULL), 0);
  for (unsigned conns = 1; conns <= 4; conns += 3) {
    smtpuv_options *o = options(conns);
    assert_int_equal(smtpuv_options_set_max_messages_per_connection(o, 50), 0);
    run r;
    start_run(&r, o);
    submit(&r, 500);
    wait_done(&r, 500);
    assert_int_equal(r.sent, 500);
    if (conns == 1) {
      assert_int_equal(r.connected, 10);
      assert_int_equal(r.limit_closes, 10);
    } else {
      assert_true(r.connected >= 10);
      assert_true(r.limit_closes >= 1 && r.limit_closes <= r.connected);
    }
    end_run(&r);
    wait_msgs(conns == 1 ? 500 : 1000);
    smtpuv_options_free(o);
  }
  stop_sink();
}

/* The sink dies after 300 messages: each of the 2,000 is accounted for
   exactly once, and what the sink stored is every sent message (and
   perhaps some whose outcome is unknown), never more. */
static void test_sink_dies(void **state) {
  (void)state;
  assert_int_equal(start_sink(NULL), 0);
  smtpuv_options *o = options(4);
  smtpuv_options_set_timeout(o, SMTPUV_TIMEOUT_CONNECT, 2000);
  run r;
  start_run(&r, o);
  r.kill_at = 300;
  uv_timer_init(&r.loop, &r.watch);
  r.watch.data = &r;
  uv_timer_start(&r.watch, on_watch, 1, 1);
  submit(&r, 2000);
  wait_done(&r, 2000);
  uv_close((uv_handle_t *)&r.watch, NULL);
  assert_true(r.killed);
  assert_int_equal(r.sent + r.failed + r.unknown, 2000);
  assert_true(r.failed > 0);
  int stored = msgs_now();
  assert_true(stored >= r.sent);
  assert_true(stored <= r.sent + r.unknown);
  end_run(&r);
  smtpuv_options_free(o);
  stop_sink();
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pool_grows),
      cmocka_unit_test(test_pool_trickle),
      cmocka_unit_test(test_messages_per_connection),
      cmocka_unit_test(test_sink_dies),
  };
  return cmocka_run_group_tests(tests, NULL, teardown);
}

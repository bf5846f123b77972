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

#include <dirent.h>

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

/* Each stored file's X-Seq header: `seen[seq]` counts the copies. */
static void count_stored(int *seen, int n) {
  char d[500];
  snprintf(d, sizeof d, "%s/msgs", sink_dir);
  DIR *dir = opendir(d);
  if (dir == NULL)
    return;
  struct dirent *e;
  while ((e = readdir(dir)) != NULL) {
    if (e->d_name[0] == '.')
      continue;
    char path[800];
    size_t len;
    snprintf(path, sizeof path, "%s/%s", d, e->d_name);
    char *text = itest_read_file(path, &len);
    const char *x = text != NULL ? strstr(text, "X-Seq: ") : NULL;
    if (x != NULL) {
      int seq = atoi(x + 7);
      if (seq >= 0 && seq < n)
        seen[seq]++;
    }
    free(text);
  }
  closedir(dir);
}

typedef struct seq_run {
  run r;
  char (*bodies)[128];
  int *status;
} seq_run;

static void on_seq_sent(smtpuv_client *c, const smtpuv_send_result *res,
                        void *data) {
  seq_run *s = (seq_run *)smtpuv_client_get_data(c);
  s->status[(size_t)data] = (int)res->status;
  on_sent(c, res, data);
}

/* The sink dies after 300 messages: each of the 2,000 is accounted for
   exactly once (sent, failed with a reason, or unknown), every sent one is
   stored, and none is stored twice: nothing was sent again after its final
   dot. (The sink may keep a partial copy of a message that failed in its
   body, so failed ones are not checked against the store.) */
static void test_sink_dies(void **state) {
  (void)state;
  enum { N = 2000 };
  assert_int_equal(start_sink(NULL), 0);
  smtpuv_options *o = options(4);
  smtpuv_options_set_timeout(o, SMTPUV_TIMEOUT_CONNECT, 2000);
  seq_run s;
  start_run(&s.r, o);
  smtpuv_client_set_data(s.r.c, &s); /* s.r is its first member */
  s.bodies = calloc(N, sizeof *s.bodies);
  s.status = calloc(N, sizeof *s.status);
  int *seen = calloc(N, sizeof *seen);
  assert_non_null(s.bodies);
  assert_non_null(s.status);
  assert_non_null(seen);
  s.r.kill_at = 300;
  uv_timer_init(&s.r.loop, &s.r.watch);
  s.r.watch.data = &s.r;
  uv_timer_start(&s.r.watch, on_watch, 5, 5);
  const char *to[] = {"b@example.com"};
  smtpuv_envelope env = SMTPUV_ENVELOPE_INIT;
  env.sender = "a@example.com";
  env.recipients = to;
  env.nrecipients = 1;
  for (int i = 0; i < N; i++) {
    int n = snprintf(s.bodies[i], sizeof s.bodies[i],
                     "From: a@example.com\r\nTo: b@example.com\r\n"
                     "X-Seq: %d\r\nSubject: pool\r\n\r\nhello\r\n", i);
    smtpuv_body b;
    smtpuv_body_init_buffer(&b, s.bodies[i], (size_t)n);
    assert_int_equal(smtpuv_client_send(s.r.c, &env, &b, on_seq_sent,
                                        (void *)(size_t)i),
                     0);
    s.r.next_q++;
  }
  wait_done(&s.r, N);
  uv_close((uv_handle_t *)&s.r.watch, NULL);
  assert_true(s.r.killed);
  assert_int_equal(s.r.sent + s.r.failed + s.r.unknown, N);
  count_stored(seen, N);
  for (int i = 0; i < N; i++) {
    if (seen[i] > 1)
      fail_msg("message %d stored %d times", i, seen[i]);
    if (s.status[i] == SMTPUV_SEND_SENT && seen[i] != 1)
      fail_msg("message %d was reported sent and is not stored", i);
  }
  end_run(&s.r);
  smtpuv_options_free(o);
  free(s.bodies);
  free(s.status);
  free(seen);
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

/* SPDX-License-Identifier: MIT */
/* Throughput and accounting against Postfix's smtp-sink: many messages on
 * one client (pipelined), many clients on one loop, messages read back
 * from the sink's dump files. */
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
  snprintf(sink_dir, sizeof sink_dir, "%s/sink", itest_workdir());
  snprintf(log, sizeof log, "%s/sink.log", itest_workdir());
  sink_port = itest_free_port();
  snprintf(port, sizeof port, "%d", sink_port);
  /* smtp_sink.sh records the PID and stops it by PID */
  return itest_run(log, itest_server_path("smtp_sink.sh"), "start", sink_dir,
                   port, NULL) == 0
             ? 0
             : -1;
}

static int stop_sink(void **state) {
  (void)state;
  char log[400];
  snprintf(log, sizeof log, "%s/sink.log", itest_workdir());
  itest_run(log, itest_server_path("smtp_sink.sh"), "stop", sink_dir, NULL,
            NULL);
  itest_cleanup();
  return 0;
}

static int msgs_now(void) {
  char d[500];
  snprintf(d, sizeof d, "%s/msgs", sink_dir);
  return itest_count_files(d);
}

static void wait_msgs(int want) {
  double end = itest_now_ms() + 20000;
  while (msgs_now() < want && itest_now_ms() < end)
    itest_sleep_ms(20);
  assert_int_equal(msgs_now(), want);
}

typedef struct counter {
  int done, sent, order_ok, next;
  int close_cbs;
} counter;

static void count_cb(smtpuv_client *c, const smtpuv_send_result *r,
                     void *data) {
  counter *k = smtpuv_client_get_data(c);
  size_t i = (size_t)data;
  if ((int)i != k->next)
    k->order_ok = 0; /* callbacks come in queue order */
  k->next++;
  k->done++;
  if (r->status == SMTPUV_SEND_SENT && r->error == 0)
    k->sent++;
}

static void closed_cb(smtpuv_client *c) {
  counter *k = smtpuv_client_get_data(c);
  k->close_cbs++;
}

/* 1,000 messages queued at once on one client. */
static void test_thousand_messages(void **state) {
  (void)state;
  int before = msgs_now();
  smtpuv_options *o = itest_options(sink_port, SMTPUV_TLS_NONE);
  uv_loop_t loop;
  uv_loop_init(&loop);
  smtpuv_client *c;
  assert_int_equal(smtpuv_client_new(&loop, o, &c), 0);
  counter k = {0, 0, 1, 0, 0};
  smtpuv_client_set_data(c, &k);
  const char *to[] = {"b@example.com"};
  smtpuv_envelope env = SMTPUV_ENVELOPE_INIT;
  env.sender = "a@example.com";
  env.recipients = to;
  env.nrecipients = 1;
  static const char msg[] = "Subject: many\r\n\r\nbody\r\n.dot\r\n";
  smtpuv_body b;
  smtpuv_body_init_buffer(&b, msg, sizeof msg - 1);
  for (int i = 0; i < 1000; i++)
    assert_int_equal(
        smtpuv_client_send(c, &env, &b, count_cb, (void *)(size_t)i), 0);
  assert_int_equal(smtpuv_client_pending(c), 1000);
  double t0 = itest_now_ms();
  while (k.done < 1000 && itest_now_ms() - t0 < 60000)
    uv_run(&loop, UV_RUN_ONCE);
  assert_int_equal(smtpuv_client_pending(c), 0);
  smtpuv_client_close(c, closed_cb);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
  assert_int_equal(k.done, 1000);
  assert_int_equal(k.sent, 1000);
  assert_true(k.order_ok);
  assert_int_equal(k.close_cbs, 1);
  wait_msgs(before + 1000);
  smtpuv_options_free(o);
}

/* 100 clients on one loop, 10 messages each. */
static void test_hundred_clients(void **state) {
  (void)state;
  int before = msgs_now();
  smtpuv_options *o = itest_options(sink_port, SMTPUV_TLS_NONE);
  uv_loop_t loop;
  uv_loop_init(&loop);
  enum { NC = 100, NM = 10 };
  smtpuv_client *c[NC];
  counter k[NC];
  memset(k, 0, sizeof k);
  const char *to[] = {"b@example.com", "c@example.com"};
  smtpuv_envelope env = SMTPUV_ENVELOPE_INIT;
  env.sender = "a@example.com";
  env.recipients = to;
  env.nrecipients = 2;
  static const char msg[] = "Subject: clients\r\n\r\nbody\r\n";
  smtpuv_body b;
  smtpuv_body_init_buffer(&b, msg, sizeof msg - 1);
  for (int i = 0; i < NC; i++) {
    assert_int_equal(smtpuv_client_new(&loop, o, &c[i]), 0);
    k[i].order_ok = 1;
    smtpuv_client_set_data(c[i], &k[i]);
    for (int j = 0; j < NM; j++)
      assert_int_equal(
          smtpuv_client_send(c[i], &env, &b, count_cb, (void *)(size_t)j), 0);
  }
  double t0 = itest_now_ms();
  for (;;) {
    int all = 1;
    for (int i = 0; i < NC; i++)
      all &= k[i].done == NM;
    if (all || itest_now_ms() - t0 > 60000)
      break;
    uv_run(&loop, UV_RUN_ONCE);
  }
  for (int i = 0; i < NC; i++)
    assert_int_equal(smtpuv_client_close(c[i], closed_cb), 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
  for (int i = 0; i < NC; i++) {
    assert_int_equal(k[i].done, NM);
    assert_int_equal(k[i].sent, NM);
    assert_true(k[i].order_ok);
    assert_int_equal(k[i].close_cbs, 1);
  }
  /* the sink writes one file per message */
  wait_msgs(before + NC * NM);
  smtpuv_options_free(o);
}

/* What the sink received for a message: envelope lines and the body. */
static void test_readback(void **state) {
  (void)state;
  char d[500];
  snprintf(d, sizeof d, "%s/msgs", sink_dir);
  int before = msgs_now();
  smtpuv_options *o = itest_options(sink_port, SMTPUV_TLS_NONE);
  static const char msg[] = "From: x@example.com\r\nSubject: readback\r\n"
                            "X-Marker: readback-42\r\n\r\n"
                            ".\r\n..two\r\nend\r\n";
  const char *to[] = {"r1@example.com", "r2@example.com"};
  smtpuv_envelope env = SMTPUV_ENVELOPE_INIT;
  env.sender = "from@example.com";
  env.recipients = to;
  env.nrecipients = 2;
  smtpuv_body b;
  smtpuv_body_init_buffer(&b, msg, sizeof msg - 1);
  smtpuv_send_result *r = NULL;
  assert_int_equal(smtpuv_send_sync(o, &env, &b, &r), 0);
  assert_int_equal(r->status, SMTPUV_SEND_SENT);
  assert_int_equal(r->naccepted, 2);
  assert_string_equal(r->reply_enhanced, "2.0.0");
  assert_string_equal(r->recipients[1].enhanced, "2.1.5");
  smtpuv_send_result_free(r);
  wait_msgs(before + 1);
  /* find the file with our marker */
  char cmd[1200];
  snprintf(cmd, sizeof cmd, "grep -l 'X-Marker: readback-42' %s/* > %s/../found",
           d, d);
  assert_int_equal(system(cmd), 0);
  char found[600];
  snprintf(found, sizeof found, "%s/../found", d);
  char *name = itest_read_file(found, NULL);
  assert_non_null(name);
  name[strcspn(name, "\n")] = '\0';
  char *dump = itest_read_file(name, NULL);
  assert_non_null(dump);
  assert_non_null(strstr(dump, "X-Mail-Args: <from@example.com>"));
  assert_non_null(strstr(dump, "X-Rcpt-Args: <r1@example.com>"));
  assert_non_null(strstr(dump, "X-Rcpt-Args: <r2@example.com>"));
  assert_non_null(strstr(dump, "X-Helo-Args: client.test"));
  /* the dump has LF endings and is dot-unstuffed */
  assert_non_null(strstr(dump, "X-Marker: readback-42\n\n.\n..two\nend\n"));
  free(dump);
  free(name);
  smtpuv_options_free(o);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_readback),
      cmocka_unit_test(test_thousand_messages),
      cmocka_unit_test(test_hundred_clients),
  };
  return cmocka_run_group_tests(tests, start_sink, stop_sink);
}

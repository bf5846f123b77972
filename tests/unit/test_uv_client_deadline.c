/* SPDX-License-Identifier: MIT */
/* The COMMAND timeout is a deadline for a whole reply, through the real
 * libuv client: a server on 127.0.0.1 that trickles its greeting one byte
 * every 100 ms (an 80-byte greeting would take 8 s) to a client whose
 * COMMAND timeout is 500 ms. The send must fail with SMTPUV_ETIMEDOUT in
 * phase GREETING, and the server must have sent fewer than 20 bytes when
 * the client closed the connection: with an idle timer re-armed by every
 * byte it would have read the whole greeting. The assertion is on bytes,
 * never on time. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smtpuv/client.h"

static const char greeting[] =
    "220 slow.test ESMTP this greeting arrives one byte every 100 ms, "
    "slowly\r\n";

typedef struct trickle {
  uv_loop_t loop;
  uv_tcp_t listener;
  uv_tcp_t *conn;
  uv_timer_t tick;
  int port;
  size_t sent;          /* greeting bytes written */
  size_t sent_at_close; /* ... when the client's close was seen */
  int closed_by_client;
  int connections;
  /* the client */
  smtpuv_client *c;
  int done, client_closed;
  smtpuv_send_status status;
  int error;
  smtpuv_phase phase;
  char message[256];
  uv_timer_t watchdog;
  int gave_up;
} trickle;

static void on_conn_closed(uv_handle_t *h) { free(h); }

static void drop_conn(trickle *t) {
  if (t->conn == NULL)
    return;
  uv_timer_stop(&t->tick);
  uv_close((uv_handle_t *)t->conn, on_conn_closed);
  t->conn = NULL;
}

typedef struct wreq {
  uv_write_t req;
  char byte;
} wreq;

static void on_written(uv_write_t *req, int status) {
  (void)status;
  free(req);
}

static void on_tick(uv_timer_t *timer) {
  trickle *t = timer->data;
  if (t->conn == NULL || t->sent >= sizeof greeting - 1)
    return;
  wreq *w = malloc(sizeof *w);
  assert_non_null(w);
  w->byte = greeting[t->sent];
  uv_buf_t b = uv_buf_init(&w->byte, 1);
  if (uv_write(&w->req, (uv_stream_t *)t->conn, &b, 1, on_written) != 0) {
    free(w);
    return;
  }
  t->sent++;
}

static void on_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b) {
  (void)h;
  b->base = malloc(sz);
  b->len = sz;
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
  trickle *t = st->data;
  free(b->base);
  if (n < 0 && (uv_tcp_t *)st == t->conn) {
    /* EOF or reset: the client gave up */
    t->closed_by_client = 1;
    t->sent_at_close = t->sent;
    drop_conn(t);
  }
}

static void on_connection(uv_stream_t *l, int status) {
  trickle *t = l->data;
  if (status < 0)
    return;
  uv_tcp_t *c = malloc(sizeof *c);
  assert_non_null(c);
  uv_tcp_init(&t->loop, c);
  if (uv_accept(l, (uv_stream_t *)c) != 0 || t->conn != NULL) {
    uv_close((uv_handle_t *)c, on_conn_closed);
    return;
  }
  t->conn = c;
  c->data = t;
  t->connections++;
  uv_read_start((uv_stream_t *)c, on_alloc, on_read);
  on_tick(&t->tick); /* the first byte at once */
  uv_timer_start(&t->tick, on_tick, 100, 100);
}

static void on_client_closed(smtpuv_client *c) {
  trickle *t = smtpuv_client_get_data(c);
  t->client_closed = 1;
}

static void on_sent(smtpuv_client *c, const smtpuv_send_result *r,
                    void *data) {
  trickle *t = smtpuv_client_get_data(c);
  (void)data;
  t->done++;
  t->status = r->status;
  t->error = r->error;
  t->phase = r->phase;
  snprintf(t->message, sizeof t->message, "%s", r->message);
  smtpuv_client_close(c, on_client_closed);
}

/* A bound on the whole test (not an assertion on time): a client that
   never gives up would otherwise hang the suite. */
static void on_watchdog(uv_timer_t *timer) {
  trickle *t = timer->data;
  t->gave_up = 1;
  if (!t->client_closed)
    smtpuv_client_close(t->c, on_client_closed);
}

static void test_greeting_deadline(void **state) {
  (void)state;
  trickle *t = calloc(1, sizeof *t);
  assert_non_null(t);
  assert_int_equal(uv_loop_init(&t->loop), 0);
  uv_timer_init(&t->loop, &t->tick);
  t->tick.data = t;
  uv_timer_init(&t->loop, &t->watchdog);
  t->watchdog.data = t;
  uv_tcp_init(&t->loop, &t->listener);
  t->listener.data = t;
  struct sockaddr_in a;
  uv_ip4_addr("127.0.0.1", 0, &a);
  assert_int_equal(uv_tcp_bind(&t->listener, (struct sockaddr *)&a, 0), 0);
  assert_int_equal(uv_listen((uv_stream_t *)&t->listener, 4, on_connection),
                   0);
  struct sockaddr_in got;
  int len = sizeof got;
  uv_tcp_getsockname(&t->listener, (struct sockaddr *)&got, &len);
  t->port = ntohs(got.sin_port);

  smtpuv_options *o;
  assert_int_equal(smtpuv_options_new(NULL, &o), 0);
  smtpuv_options_set_host(o, "127.0.0.1");
  smtpuv_options_set_port(o, (unsigned)t->port);
  smtpuv_options_set_tls(o, SMTPUV_TLS_NONE);
  smtpuv_options_set_ehlo_name(o, "client.test");
  smtpuv_options_set_timeout(o, SMTPUV_TIMEOUT_COMMAND, 500);
  assert_int_equal(smtpuv_client_new(&t->loop, o, &t->c), 0);
  smtpuv_options_free(o);
  smtpuv_client_set_data(t->c, t);
  const char *to[] = {"b@example.com"};
  smtpuv_envelope e = SMTPUV_ENVELOPE_INIT;
  e.sender = "a@example.com";
  e.recipients = to;
  e.nrecipients = 1;
  static const char body[] = "Subject: t\r\n\r\nhello\r\n";
  smtpuv_body b;
  smtpuv_body_init_buffer(&b, body, sizeof body - 1);
  assert_int_equal(smtpuv_client_send(t->c, &e, &b, on_sent, NULL), 0);
  uv_timer_start(&t->watchdog, on_watchdog, 20000, 0);

  for (int guard = 0;
       guard < 1000000 && !(t->client_closed && t->closed_by_client) &&
       !t->gave_up;
       guard++)
    uv_run(&t->loop, UV_RUN_ONCE);

  assert_int_equal(t->gave_up, 0);
  assert_int_equal(t->done, 1);
  if (t->status != SMTPUV_SEND_FAILED || t->error != SMTPUV_ETIMEDOUT ||
      t->phase != SMTPUV_PHASE_GREETING)
    fail_msg("%s %s in %s: %s", smtpuv_send_status_name(t->status),
             smtpuv_err_name(t->error), smtpuv_phase_name(t->phase),
             t->message);
  assert_int_equal(t->connections, 1);
  assert_true(t->closed_by_client);
  printf("greeting bytes sent when the client closed: %zu of %zu\n",
         t->sent_at_close, sizeof greeting - 1);
  /* some of the greeting came, far from all of it */
  assert_true(t->sent_at_close >= 1);
  if (t->sent_at_close >= 20)
    fail_msg("the server had sent %zu greeting bytes when the client gave "
             "up: the timeout was extended by the trickle",
             t->sent_at_close);

  drop_conn(t);
  uv_close((uv_handle_t *)&t->listener, NULL);
  uv_close((uv_handle_t *)&t->tick, NULL);
  uv_close((uv_handle_t *)&t->watchdog, NULL);
  uv_run(&t->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&t->loop), 0);
  free(t);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_greeting_deadline),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

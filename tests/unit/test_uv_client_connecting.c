/* SPDX-License-Identifier: MIT */
/* smtpuv_options_set_max_connecting(): how many of a pool's connections are
 * set up at once. A gate server on 127.0.0.1 accepts connections and keeps
 * them silent (no greeting, so every connection stays in setup) until the
 * test opens the gate; then it greets them and every later one, and speaks
 * just enough SMTP (no PIPELINING) to take the messages, answering the
 * final dots only once all ten bodies are in (so each connection carries
 * one message: the pool needs all ten). With ten messages queued, the pool
 * opens only as many connections as the cap allows while the gate is shut,
 * and all ten once setups complete. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <uv.h>

#include "smtpuv/client.h"

#define GATE_MAX 32

typedef struct gate gate;

typedef struct gate_conn {
  uv_tcp_t tcp;
  gate *g;
  int greeted, in_data, closing, dot_due;
  char line[1024];
  size_t len;
} gate_conn;

struct gate {
  uv_loop_t *loop;
  uv_tcp_t listener;
  int port;
  int open;            /* greet: at once (open) or when opened */
  gate_conn *conns[GATE_MAX];
  int accepted, messages;
  int dots_at;         /* the final dots are answered from this many bodies */
};

static void gate_send(gate_conn *gc, const char *text) {
  uv_buf_t b = uv_buf_init((char *)text, (unsigned)strlen(text));
  /* short replies to a loopback peer: the kernel takes them at once */
  assert_true(uv_try_write((uv_stream_t *)&gc->tcp, &b, 1) ==
              (int)strlen(text));
}

static void gate_close(gate_conn *gc) {
  if (!gc->closing) {
    gc->closing = 1;
    uv_close((uv_handle_t *)&gc->tcp, NULL); /* freed by the gate */
  }
}

static void gate_line(gate_conn *gc, const char *l) {
  if (gc->in_data) {
    if (strcmp(l, ".") == 0) {
      gate *g = gc->g;
      gc->in_data = 0;
      gc->dot_due = 1;
      if (++g->messages == g->dots_at)
        for (int i = 0; i < g->accepted; i++)
          if (g->conns[i]->dot_due && !g->conns[i]->closing) {
            g->conns[i]->dot_due = 0;
            gate_send(g->conns[i], "250 2.0.0 queued\r\n");
          }
      if (g->messages > g->dots_at && gc->dot_due) {
        gc->dot_due = 0;
        gate_send(gc, "250 2.0.0 queued\r\n");
      }
    }
    return;
  }
  if (strncmp(l, "DATA", 4) == 0) {
    gc->in_data = 1;
    gate_send(gc, "354 go ahead\r\n");
  } else if (strncmp(l, "QUIT", 4) == 0) {
    gate_send(gc, "221 bye\r\n");
    gate_close(gc);
  } else {
    gate_send(gc, "250 gate\r\n"); /* EHLO, MAIL, RCPT, RSET, NOOP */
  }
}

static void gate_alloc(uv_handle_t *h, size_t n, uv_buf_t *b) {
  (void)h;
  b->base = malloc(n);
  b->len = b->base != NULL ? n : 0;
}

static void gate_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  gate_conn *gc = s->data;
  for (ssize_t i = 0; i < n && !gc->closing; i++) {
    char ch = b->base[i];
    if (ch == '\n') {
      if (gc->len > 0 && gc->line[gc->len - 1] == '\r')
        gc->len--;
      gc->line[gc->len] = 0;
      gc->len = 0;
      gate_line(gc, gc->line);
    } else if (gc->len + 1 < sizeof gc->line) {
      gc->line[gc->len++] = ch;
    }
  }
  if (n < 0)
    gate_close(gc);
  free(b->base);
}

static void gate_greet(gate_conn *gc) {
  if (!gc->greeted && !gc->closing) {
    gc->greeted = 1;
    gate_send(gc, "220 gate ESMTP\r\n");
  }
}

static void gate_accept(uv_stream_t *l, int status) {
  gate *g = l->data;
  assert_int_equal(status, 0);
  assert_true(g->accepted < GATE_MAX);
  gate_conn *gc = calloc(1, sizeof *gc);
  assert_non_null(gc);
  gc->g = g;
  gc->tcp.data = gc;
  g->conns[g->accepted++] = gc;
  uv_tcp_init(g->loop, &gc->tcp);
  assert_int_equal(uv_accept(l, (uv_stream_t *)&gc->tcp), 0);
  uv_read_start((uv_stream_t *)&gc->tcp, gate_alloc, gate_read);
  if (g->open)
    gate_greet(gc);
}

static void gate_start(gate *g, uv_loop_t *loop) {
  memset(g, 0, sizeof *g);
  g->loop = loop;
  uv_tcp_init(loop, &g->listener);
  g->listener.data = g;
  struct sockaddr_in a;
  uv_ip4_addr("127.0.0.1", 0, &a);
  assert_int_equal(uv_tcp_bind(&g->listener, (const struct sockaddr *)&a, 0),
                   0);
  assert_int_equal(uv_listen((uv_stream_t *)&g->listener, 64, gate_accept), 0);
  struct sockaddr_storage ss;
  int len = sizeof ss;
  uv_tcp_getsockname(&g->listener, (struct sockaddr *)&ss, &len);
  g->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void gate_open(gate *g) {
  g->open = 1;
  for (int i = 0; i < g->accepted; i++)
    gate_greet(g->conns[i]);
}

static void gate_stop(gate *g) {
  uv_close((uv_handle_t *)&g->listener, NULL);
  for (int i = 0; i < g->accepted; i++)
    gate_close(g->conns[i]);
}

static void gate_free(gate *g) {
  for (int i = 0; i < g->accepted; i++)
    free(g->conns[i]);
}

/* ---- the client ---------------------------------------------------------------- */

typedef struct run {
  uv_loop_t loop;
  gate g;
  smtpuv_client *c;
  int done, sent, closed, waited;
  uv_timer_t t;
} run;

static void on_sent(smtpuv_client *c, const smtpuv_send_result *r,
                    void *data) {
  (void)data;
  run *x = smtpuv_client_get_data(c);
  x->done++;
  if (r->status == SMTPUV_SEND_SENT)
    x->sent++;
}

static void on_closed(smtpuv_client *c) {
  run *x = smtpuv_client_get_data(c);
  x->closed = 1;
}

static void on_timer(uv_timer_t *t) {
  run *x = t->data;
  x->waited = 1;
}

/* Run the loop for `ms` of the loop's clock (the client may not finish
   setting up meanwhile: the gate is shut). */
static void run_for(run *x, uint64_t ms) {
  x->waited = 0;
  uv_timer_start(&x->t, on_timer, ms, 0);
  for (int guard = 0; !x->waited && guard < 1000000; guard++)
    uv_run(&x->loop, UV_RUN_ONCE);
  assert_true(x->waited);
}

static const char body[] = "Subject: gate\r\n\r\nhello\r\n";
static const char *const rcpt[] = {"b@example.com"};

/* Ten messages, one per connection (pipeline depth 1, ten connections
   allowed), `cap` connections in setup at most (0: the default). */
static void ten_messages(unsigned cap, int held_expected) {
  run x;
  memset(&x, 0, sizeof x);
  uv_loop_init(&x.loop);
  uv_timer_init(&x.loop, &x.t);
  x.t.data = &x;
  gate_start(&x.g, &x.loop);
  x.g.dots_at = 10;
  smtpuv_options *o;
  assert_int_equal(smtpuv_options_new(NULL, &o), 0);
  smtpuv_options_set_host(o, "127.0.0.1");
  smtpuv_options_set_port(o, (unsigned)x.g.port);
  smtpuv_options_set_tls(o, SMTPUV_TLS_NONE);
  smtpuv_options_set_ehlo_name(o, "client.test");
  assert_int_equal(smtpuv_options_set_max_connections(o, 10), 0);
  assert_int_equal(smtpuv_options_set_pipeline_depth(o, 1), 0);
  if (cap != 0)
    assert_int_equal(smtpuv_options_set_max_connecting(o, cap), 0);
  assert_int_equal(smtpuv_client_new(&x.loop, o, &x.c), 0);
  smtpuv_client_set_data(x.c, &x);
  smtpuv_envelope e = SMTPUV_ENVELOPE_INIT;
  e.sender = "a@example.com";
  e.recipients = rcpt;
  e.nrecipients = 1;
  for (int i = 0; i < 10; i++) {
    smtpuv_body b;
    smtpuv_body_init_buffer(&b, body, sizeof body - 1);
    assert_int_equal(smtpuv_client_send(x.c, &e, &b, on_sent, NULL), 0);
  }
  /* the gate is shut: no connection gets past its greeting */
  run_for(&x, 300);
  assert_int_equal(x.g.accepted, held_expected);
  assert_int_equal(x.done, 0);
  /* open: the held ones get ready, the pool opens the rest */
  gate_open(&x.g);
  for (int guard = 0; x.done < 10 && guard < 1000000; guard++)
    uv_run(&x.loop, UV_RUN_ONCE);
  assert_int_equal(x.sent, 10);
  assert_int_equal(x.g.messages, 10);
  assert_int_equal(x.g.accepted, 10); /* one message per connection */
  smtpuv_client_close(x.c, on_closed);
  for (int guard = 0; !x.closed && guard < 1000000; guard++)
    uv_run(&x.loop, UV_RUN_ONCE);
  assert_true(x.closed);
  gate_stop(&x.g);
  uv_close((uv_handle_t *)&x.t, NULL);
  uv_run(&x.loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&x.loop), 0);
  gate_free(&x.g);
  smtpuv_options_free(o);
}

static void test_cap_holds_setups(void **state) {
  (void)state;
  ten_messages(3, 3);
}

static void test_cap_of_one(void **state) {
  (void)state;
  ten_messages(1, 1);
}

/* The default (16) does not hold back a pool of ten. */
static void test_default_cap(void **state) {
  (void)state;
  assert_true(SMTPUV_DEFAULT_MAX_CONNECTING >= 10);
  ten_messages(0, 10);
}

static void test_cap_range(void **state) {
  (void)state;
  smtpuv_options *o;
  assert_int_equal(smtpuv_options_new(NULL, &o), 0);
  assert_int_equal(smtpuv_options_set_max_connecting(o, 0), SMTPUV_EINVAL);
  assert_int_equal(smtpuv_options_set_max_connecting(o, 1001), SMTPUV_EINVAL);
  assert_int_equal(smtpuv_options_set_max_connecting(o, 1000), 0);
  assert_int_equal(smtpuv_options_set_max_connecting(NULL, 4), SMTPUV_EINVAL);
  smtpuv_options_free(o);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_cap_holds_setups),
      cmocka_unit_test(test_cap_of_one),
      cmocka_unit_test(test_default_cap),
      cmocka_unit_test(test_cap_range),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

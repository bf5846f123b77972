/* SPDX-License-Identifier: MIT */
/* smtpuv_client_abort(): every connection ends at once, queued messages
 * are CANCELED, in-flight ones FAILED (UNKNOWN once their final "." was
 * handed to the transport), every send callback runs exactly once, then
 * the close callback, and by then no handle of the client is left on the
 * loop (checked with uv_walk). Also smtpuv_client_set_ref(): the client's
 * handles, present and future, follow it.
 *
 * The server is the in-process scripted server (uv_script_server.h) on the
 * test's own loop; the moment of the abort is found by a poll timer that
 * watches what the server has seen, so no step depends on timing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smtpuv/client.h"
#include "uv_script_server.h"

#define MAXMSG 8

typedef struct fixture {
  uv_loop_t loop;
  ss_server srv;
  uv_timer_t poll;
  smtpuv_client *client;
  /* per message: callbacks seen and the outcome */
  int calls[MAXMSG];
  smtpuv_send_status status[MAXMSG];
  int error[MAXMSG];
  smtpuv_phase phase[MAXMSG];
  int closed;          /* close callbacks */
  int handles_at_close; /* client handles uv_walk found in the close cb */
  /* scenario */
  int silent_after_first; /* server: silent from the first end of data on */
  int silent_after_dot;   /* server: no reply to any end of data */
  int starttls;           /* server: 220 to STARTTLS, then silence */
  int after_starttls;
  int tls_started;        /* trace: the client started its handshake */
  int abort_in_cb;        /* abort from the first send callback */
  int send_in_cb;         /* ... after queuing one more message */
  int (*ready)(struct fixture *f); /* poll: abort now? */
  int aborted;
  /* streamed body: one chunk, then SMTPUV_EAGAIN for ever */
  int body_reads;
  int body_blocked;
  int reads_at_abort;
} fixture;

static const char MSG[] = "From: a@example.com\r\nTo: b@example.com\r\n"
                          "Subject: t\r\n\r\nhello\r\n";

/* ---- server script ----------------------------------------------------------- */

static int hook(ss_server *s, const char *line, char *reply, size_t cap) {
  fixture *f = s->data;
  (void)cap;
  if (f->after_starttls) {
    reply[0] = '\0';
    return SS_REPLY; /* the ClientHello's bytes: never answered */
  }
  if (line == NULL) {
    if (f->silent_after_dot ||
        (f->silent_after_first && s->messages > 1)) {
      reply[0] = '\0';
      return SS_REPLY;
    }
    return SS_DEFAULT;
  }
  if (f->silent_after_first && s->messages >= 1) {
    reply[0] = '\0';
    return SS_REPLY;
  }
  if (f->starttls && !strncmp(line, "STARTTLS", 8)) {
    f->after_starttls = 1;
    snprintf(reply, cap, "220 2.0.0 go ahead\r\n");
    return SS_REPLY;
  }
  return SS_DEFAULT;
}

static void on_trace(void *data, smtpuv_trace_kind kind, const char *bytes,
                     size_t len) {
  fixture *f = data;
  if (kind == SMTPUV_TRACE_INFO && len >= 12 &&
      !memcmp(bytes, "starting TLS", 12))
    f->tls_started = 1;
}

/* ---- client side --------------------------------------------------------------- */

/* Handles on the loop that are not the server's or the fixture's. */
static void count_client_handle(uv_handle_t *h, void *arg) {
  fixture *f = arg;
  if (h == (uv_handle_t *)&f->poll || h->data == &f->srv)
    return;
  f->handles_at_close++;
}

static void on_closed(smtpuv_client *c) {
  fixture *f = smtpuv_client_get_data(c);
  f->closed++;
  f->handles_at_close = 0;
  uv_walk(&f->loop, count_client_handle, f);
  f->client = NULL;
  if (!uv_is_closing((uv_handle_t *)&f->poll))
    uv_close((uv_handle_t *)&f->poll, NULL);
  ss_stop(&f->srv);
}

static void do_abort(fixture *f) {
  f->aborted = 1;
  f->reads_at_abort = f->body_reads;
  assert_int_equal(smtpuv_client_abort(f->client, on_closed), 0);
  /* a second abort is refused and changes nothing */
  assert_int_equal(smtpuv_client_abort(f->client, on_closed), SMTPUV_ECLOSED);
  /* no callback ran inside the call */
}

static void on_sent(smtpuv_client *c, const smtpuv_send_result *r,
                    void *data) {
  fixture *f = smtpuv_client_get_data(c);
  int i = (int)(intptr_t)data;
  assert_true(i >= 0 && i < MAXMSG);
  f->calls[i]++;
  f->status[i] = r->status;
  f->error[i] = r->error;
  f->phase[i] = r->phase;
  assert_int_equal(f->closed, 0); /* every send callback before close's */
  if (i == 0 && f->abort_in_cb && !f->aborted) {
    if (f->send_in_cb) {
      smtpuv_envelope env = SMTPUV_ENVELOPE_INIT;
      const char *to[] = {"b@example.com"};
      env.sender = "a@example.com";
      env.recipients = to;
      env.nrecipients = 1;
      smtpuv_body b;
      smtpuv_body_init_buffer(&b, MSG, sizeof MSG - 1);
      assert_int_equal(smtpuv_client_send(c, &env, &b, on_sent,
                                          (void *)(intptr_t)(MAXMSG - 1)),
                       0);
    }
    do_abort(f);
    /* sending after abort is refused */
    smtpuv_envelope env = SMTPUV_ENVELOPE_INIT;
    const char *to[] = {"b@example.com"};
    env.sender = "a@example.com";
    env.recipients = to;
    env.nrecipients = 1;
    smtpuv_body b;
    smtpuv_body_init_buffer(&b, MSG, sizeof MSG - 1);
    assert_int_equal(smtpuv_client_send(c, &env, &b, on_sent, NULL),
                     SMTPUV_ECLOSED);
  }
}

static long body_read(void *user, void *buf, size_t cap) {
  fixture *f = user;
  if (f->body_reads++ == 0) {
    /* enough to be sure the body is flowing: one chunk */
    size_t n = cap < 1000 ? cap : 1000;
    memset(buf, 'x', n);
    for (size_t i = 79; i < n; i += 80)
      ((char *)buf)[i] = '\n'; /* lines of 80 (998 is the limit) */
    ((char *)buf)[n - 1] = '\n';
    return (long)n;
  }
  f->body_blocked = 1;
  return SMTPUV_EAGAIN;
}

static void on_poll(uv_timer_t *t) {
  fixture *f = t->data;
  if (f->aborted || f->client == NULL || f->ready == NULL)
    return;
  if (f->ready(f))
    do_abort(f);
}

static void setup_fixture(fixture *f, const char *ehlo) {
  memset(f, 0, sizeof *f);
  assert_int_equal(uv_loop_init(&f->loop), 0);
  f->srv.ehlo = ehlo;
  f->srv.hook = hook;
  f->srv.data = f;
  assert_int_equal(ss_start(&f->srv, &f->loop), 0);
  f->srv.listener.data = &f->srv;
  uv_timer_init(&f->loop, &f->poll);
  f->poll.data = f;
  uv_timer_start(&f->poll, on_poll, 1, 1);
  for (int i = 0; i < MAXMSG; i++)
    f->status[i] = (smtpuv_send_status)-1;
}

static void make_client(fixture *f, smtpuv_tls_mode tls) {
  smtpuv_options *o;
  assert_int_equal(smtpuv_options_new(NULL, &o), 0);
  assert_int_equal(smtpuv_options_set_host(o, "127.0.0.1"), 0);
  assert_int_equal(smtpuv_options_set_port(o, (unsigned)f->srv.port), 0);
  assert_int_equal(smtpuv_options_set_tls(o, tls), 0);
  assert_int_equal(smtpuv_options_set_ehlo_name(o, "client.test"), 0);
  assert_int_equal(smtpuv_options_set_trace(o, on_trace, f), 0);
  assert_int_equal(smtpuv_client_new(&f->loop, o, &f->client), 0);
  smtpuv_options_free(o);
  smtpuv_client_set_data(f->client, f);
}

static void send_buf(fixture *f, int i) {
  smtpuv_envelope env = SMTPUV_ENVELOPE_INIT;
  const char *to[] = {"b@example.com"};
  env.sender = "a@example.com";
  env.recipients = to;
  env.nrecipients = 1;
  smtpuv_body b;
  smtpuv_body_init_buffer(&b, MSG, sizeof MSG - 1);
  assert_int_equal(
      smtpuv_client_send(f->client, &env, &b, on_sent, (void *)(intptr_t)i),
      0);
}

static void run_and_finish(fixture *f) {
  assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(f->closed, 1);
  assert_int_equal(f->handles_at_close, 0);
  ss_free(&f->srv);
  assert_int_equal(uv_loop_close(&f->loop), 0);
}

/* Server extensions: pipelining, so messages go out back to back. */
#define EHLO_PIPE "PIPELINING\r\n8BITMIME\r\n"

/* ---- tests -------------------------------------------------------------------- */

/* Abort before the loop ever ran: nothing is sent, every message is
   CANCELED, no connection was made. */
static void test_abort_queued(void **state) {
  (void)state;
  fixture f;
  setup_fixture(&f, EHLO_PIPE);
  make_client(&f, SMTPUV_TLS_NONE);
  for (int i = 0; i < 3; i++)
    send_buf(&f, i);
  assert_int_equal(smtpuv_client_pending(f.client), 3);
  do_abort(&f);
  for (int i = 0; i < 3; i++)
    assert_int_equal(f.calls[i], 0); /* never from inside abort() */
  run_and_finish(&f);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(f.calls[i], 1);
    assert_int_equal(f.status[i], SMTPUV_SEND_CANCELED);
    assert_int_equal(f.error[i], SMTPUV_ECANCELED);
    assert_int_equal(f.phase[i], SMTPUV_PHASE_NONE);
  }
  assert_int_equal(f.srv.connections, 0);
}

/* Abort from the first message's send callback while the second waits for
   the replies to its pipelined envelope and a third (queued from inside
   the callback) has not started. No QUIT is written. */
static void test_abort_from_send_callback(void **state) {
  (void)state;
  fixture f;
  setup_fixture(&f, EHLO_PIPE);
  f.silent_after_first = 1;
  f.abort_in_cb = 1;
  f.send_in_cb = 1;
  make_client(&f, SMTPUV_TLS_NONE);
  send_buf(&f, 0);
  send_buf(&f, 1);
  run_and_finish(&f);
  assert_int_equal(f.calls[0], 1);
  assert_int_equal(f.status[0], SMTPUV_SEND_SENT);
  assert_int_equal(f.calls[1], 1);
  assert_int_equal(f.status[1], SMTPUV_SEND_FAILED);
  assert_int_equal(f.error[1], SMTPUV_ECANCELED);
  assert_int_equal(f.calls[MAXMSG - 1], 1);
  assert_int_equal(f.status[MAXMSG - 1], SMTPUV_SEND_CANCELED);
  assert_int_equal(f.error[MAXMSG - 1], SMTPUV_ECANCELED);
  assert_int_equal(ss_count(&f.srv, "C: QUIT"), 0);
  assert_int_equal(f.srv.messages, 1);
}

static int tls_in_progress(fixture *f) {
  return f->tls_started && f->after_starttls;
}

/* Abort while the TLS handshake after STARTTLS waits for the server's
   answer to the ClientHello: the message never started (CANCELED). */
static void test_abort_mid_tls_handshake(void **state) {
  (void)state;
  fixture f;
  setup_fixture(&f, "PIPELINING\r\nSTARTTLS\r\n");
  f.starttls = 1;
  f.ready = tls_in_progress;
  make_client(&f, SMTPUV_TLS_REQUIRED);
  send_buf(&f, 0);
  send_buf(&f, 1);
  run_and_finish(&f);
  for (int i = 0; i < 2; i++) {
    assert_int_equal(f.calls[i], 1);
    assert_int_equal(f.status[i], SMTPUV_SEND_CANCELED);
    assert_int_equal(f.error[i], SMTPUV_ECANCELED);
  }
  assert_int_equal(ss_count(&f.srv, "C: MAIL"), 0);
  assert_true(f.aborted);
}

/* The source was asked again after its first EAGAIN: the first one comes
   before MAIL (the first chunk is looked at then), the next in DATA. */
static int body_waiting(fixture *f) {
  return f->body_blocked && f->body_reads >= 3;
}

/* Abort while a streamed body is being written (its source said EAGAIN):
   the message FAILED in the DATA phase, the one behind it CANCELED, and
   the body source is not read again. */
static void test_abort_mid_body(void **state) {
  (void)state;
  fixture f;
  setup_fixture(&f, EHLO_PIPE);
  f.ready = body_waiting;
  make_client(&f, SMTPUV_TLS_NONE);
  smtpuv_envelope env = SMTPUV_ENVELOPE_INIT;
  const char *to[] = {"b@example.com"};
  env.sender = "a@example.com";
  env.recipients = to;
  env.nrecipients = 1;
  smtpuv_body b;
  smtpuv_body_init_stream(&b, body_read, NULL, &f, 0);
  assert_int_equal(smtpuv_client_send(f.client, &env, &b, on_sent,
                                      (void *)(intptr_t)0),
                   0);
  send_buf(&f, 1);
  run_and_finish(&f);
  assert_int_equal(f.calls[0], 1);
  assert_int_equal(f.status[0], SMTPUV_SEND_FAILED);
  assert_int_equal(f.error[0], SMTPUV_ECANCELED);
  assert_int_equal(f.phase[0], SMTPUV_PHASE_DATA);
  assert_int_equal(f.calls[1], 1);
  assert_true(f.status[1] == SMTPUV_SEND_CANCELED ||
              f.status[1] == SMTPUV_SEND_FAILED);
  assert_int_equal(f.error[1], SMTPUV_ECANCELED);
  assert_true(f.body_reads >= 2);
  assert_int_equal(f.body_reads, f.reads_at_abort); /* none after abort */
  assert_int_equal(f.srv.messages, 0);
}

static int dot_received(fixture *f) { return f->srv.messages >= 1; }

/* Abort after the final "." was written and before its reply: UNKNOWN. */
static void test_abort_after_dot_is_unknown(void **state) {
  (void)state;
  fixture f;
  setup_fixture(&f, EHLO_PIPE);
  f.silent_after_dot = 1;
  f.ready = dot_received;
  make_client(&f, SMTPUV_TLS_NONE);
  send_buf(&f, 0);
  run_and_finish(&f);
  assert_int_equal(f.calls[0], 1);
  assert_int_equal(f.status[0], SMTPUV_SEND_UNKNOWN);
  assert_int_equal(f.error[0], SMTPUV_ECANCELED);
  assert_int_equal(f.phase[0], SMTPUV_PHASE_END_OF_DATA);
}

static void on_close_from_close(smtpuv_client *c) {
  fixture *f = smtpuv_client_get_data(c);
  f->calls[MAXMSG - 2]++; /* close()'s callback */
  on_closed(c);
}

static void on_never(smtpuv_client *c) {
  (void)c;
  fail_msg("abort's callback must not run after close()");
}

static int close_then_abort(fixture *f) {
  if (f->srv.messages < 1)
    return 0;
  /* close() waits for the final reply; abort() escalates it */
  assert_int_equal(smtpuv_client_close(f->client, on_close_from_close), 0);
  f->aborted = 1;
  assert_int_equal(smtpuv_client_abort(f->client, on_never), 0);
  assert_int_equal(smtpuv_client_abort(f->client, on_never), SMTPUV_ECLOSED);
  return 0;
}

/* close() is waiting for the reply to the final "." (up to the FINAL
   timeout): abort() ends it at once, close()'s callback runs once. */
static void test_abort_escalates_close(void **state) {
  (void)state;
  fixture f;
  setup_fixture(&f, EHLO_PIPE);
  f.silent_after_dot = 1;
  f.ready = close_then_abort;
  make_client(&f, SMTPUV_TLS_NONE);
  send_buf(&f, 0);
  run_and_finish(&f);
  assert_int_equal(f.calls[MAXMSG - 2], 1);
  assert_int_equal(f.calls[0], 1);
  assert_int_equal(f.status[0], SMTPUV_SEND_UNKNOWN);
}

static int idle_connection(fixture *f) {
  return f->calls[0] == 1 && f->srv.conn != NULL;
}

/* An idle connection (message sent, no QUIT yet): abort closes it without
   QUIT. */
static void test_abort_idle_connection(void **state) {
  (void)state;
  fixture f;
  setup_fixture(&f, EHLO_PIPE);
  f.ready = idle_connection;
  make_client(&f, SMTPUV_TLS_NONE);
  send_buf(&f, 0);
  run_and_finish(&f);
  assert_int_equal(f.status[0], SMTPUV_SEND_SENT);
  assert_int_equal(ss_count(&f.srv, "C: QUIT"), 0);
}

/* ---- set_ref ------------------------------------------------------------------ */

typedef struct refcount {
  fixture *f;
  int total, refd;
} refcount;

static void count_refs(uv_handle_t *h, void *arg) {
  refcount *rc = arg;
  if (h == (uv_handle_t *)&rc->f->poll || h->data == &rc->f->srv ||
      uv_is_closing(h))
    return;
  rc->total++;
  if (uv_has_ref(h))
    rc->refd++;
}

static int check_refs_when_idle(fixture *f) {
  if (!idle_connection(f))
    return 0;
  refcount rc = {f, 0, 0};
  uv_walk(&f->loop, count_refs, &rc);
  /* the client's idle handle and timer, the socket, the connection's
     timer, and the wake-up handle of the thread-safe submit (threadsafe.c:
     never referenced) */
  assert_int_equal(rc.total, 5);
  assert_int_equal(rc.refd, 0); /* made while unref'd */
  smtpuv_client_set_ref(f->client, 1);
  rc.total = rc.refd = 0;
  uv_walk(&f->loop, count_refs, &rc);
  assert_int_equal(rc.refd, 4);
  smtpuv_client_set_ref(f->client, 0);
  rc.total = rc.refd = 0;
  uv_walk(&f->loop, count_refs, &rc);
  assert_int_equal(rc.refd, 0);
  return 1;
}

static void test_set_ref(void **state) {
  (void)state;
  fixture f;
  setup_fixture(&f, EHLO_PIPE);
  f.ready = check_refs_when_idle;
  make_client(&f, SMTPUV_TLS_NONE);
  smtpuv_client_set_ref(f.client, 0);
  smtpuv_client_set_ref(NULL, 0); /* ignored */
  send_buf(&f, 0);
  run_and_finish(&f);
  assert_int_equal(f.status[0], SMTPUV_SEND_SENT);
  assert_true(f.aborted);
}

static void test_abort_args(void **state) {
  (void)state;
  assert_int_equal(smtpuv_client_abort(NULL, NULL), SMTPUV_EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_abort_args),
      cmocka_unit_test(test_abort_queued),
      cmocka_unit_test(test_abort_from_send_callback),
      cmocka_unit_test(test_abort_mid_tls_handshake),
      cmocka_unit_test(test_abort_mid_body),
      cmocka_unit_test(test_abort_after_dot_is_unknown),
      cmocka_unit_test(test_abort_escalates_close),
      cmocka_unit_test(test_abort_idle_connection),
      cmocka_unit_test(test_set_ref),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/* The libuv client against a scripted in-process server on 127.0.0.1:
 * command order and pipelining, RSET after refusals, require-all, HELO
 * fallback, re-opening a connection the server closed while idle, the
 * retry on a reused connection, closing from callbacks and mid-DATA,
 * streamed bodies that wait, trace redaction, and failing allocations. */
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
#include "support.h"
#include "uv_script_server.h"

static void on_closed(smtpuv_client *c);

typedef struct outcome {
  int calls;
  smtpuv_send_result *r;
} outcome;

typedef struct fixture {
  uv_loop_t loop;
  ss_server srv;
  smtpuv_options *o;
  smtpuv_client *c;
  outcome out[16];
  int done;
  int closed;
  int close_at; /* close the client in the callback of message # */
  int second_close; /* what a second close() returned */
  smtpuv_trace_cb trace;
  int order[16]; /* message numbers in callback order */
  int norder;
} fixture;

static void on_closed(smtpuv_client *c) {
  struct fixture *f = smtpuv_client_get_data(c);
  f->closed++;
}

static void on_sent(smtpuv_client *c, const smtpuv_send_result *r,
                    void *data) {
  fixture *f = smtpuv_client_get_data(c);
  size_t i = (size_t)data;
  f->out[i].calls++;
  if (f->norder < 16)
    f->order[f->norder++] = (int)i;
  smtpuv_send_result_free(f->out[i].r);
  smtpuv_send_result_dup(NULL, r, &f->out[i].r);
  f->done++;
  if (f->close_at == (int)i + 1) {
    smtpuv_client_close(c, on_closed);
    f->second_close = smtpuv_client_close(c, on_closed);
  }
}

static void setup_fixture(fixture *f, const char *ehlo) {
  memset(f, 0, sizeof *f);
  uv_loop_init(&f->loop);
  f->srv.ehlo = ehlo;
  assert_int_equal(ss_start(&f->srv, &f->loop), 0);
  assert_int_equal(smtpuv_options_new(NULL, &f->o), 0);
  smtpuv_options_set_host(f->o, "127.0.0.1");
  smtpuv_options_set_port(f->o, (unsigned)f->srv.port);
  smtpuv_options_set_tls(f->o, SMTPUV_TLS_NONE);
  smtpuv_options_set_ehlo_name(f->o, "client.test");
  smtpuv_options_set_timeout(f->o, SMTPUV_TIMEOUT_COMMAND, 3000);
}

static void make_client(fixture *f) {
  assert_int_equal(smtpuv_client_new(&f->loop, f->o, &f->c), 0);
  smtpuv_client_set_data(f->c, f);
}

static smtpuv_envelope env1(const char *const *to, size_t n) {
  smtpuv_envelope e = SMTPUV_ENVELOPE_INIT;
  e.sender = "a@example.com";
  e.recipients = to;
  e.nrecipients = n;
  return e;
}

static const char msg[] = "Subject: t\r\n\r\nhello\r\n.dot\r\n";

static void send_msg(fixture *f, int i, const char *const *to, size_t n) {
  smtpuv_envelope e = env1(to, n);
  smtpuv_body b;
  smtpuv_body_init_buffer(&b, msg, sizeof msg - 1);
  assert_int_equal(smtpuv_client_send(f->c, &e, &b, on_sent, (void *)(size_t)i),
                   0);
  assert_int_equal(f->out[i].calls, 0);
}

/* Run until `n` callbacks came, then close the client and finish. */
static void run_until(fixture *f, int n) {
  for (int guard = 0; f->done < n && guard < 100000; guard++)
    uv_run(&f->loop, UV_RUN_ONCE);
  assert_int_equal(f->done, n);
}

/* Run until the client's close callback ran (the listener keeps the loop
   alive, so UV_RUN_DEFAULT would not return). */
static void wait_closed(fixture *f) {
  for (int guard = 0; !f->closed && guard < 100000; guard++)
    uv_run(&f->loop, UV_RUN_ONCE);
  assert_int_equal(f->closed, 1);
}

static void finish(fixture *f) {
  if (f->c != NULL) {
    if (!f->closed)
      smtpuv_client_close(f->c, on_closed);
    wait_closed(f);
  }
  ss_stop(&f->srv);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&f->loop), 0);
  for (int i = 0; i < 16; i++) {
    assert_true(f->out[i].calls <= 1); /* exactly once at most */
    smtpuv_send_result_free(f->out[i].r);
  }
  smtpuv_options_free(f->o);
  ss_free(&f->srv);
}

static const char *one[] = {"b@example.com"};

/* ---- order and pipelining ----------------------------------------------------- */

static void test_pipelined_sequence(void **state) {
  (void)state;
  fixture f;
  setup_fixture(&f, "PIPELINING\r\n8BITMIME\r\nENHANCEDSTATUSCODES\r\n"
                    "SIZE 1000000\r\n");
  make_client(&f);
  for (int i = 0; i < 3; i++)
    send_msg(&f, i, one, 1);
  run_until(&f, 3);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(f.out[i].r->status, SMTPUV_SEND_SENT);
    assert_int_equal(f.out[i].r->error, 0);
    assert_string_equal(f.out[i].r->reply_enhanced, "2.0.0");
  }
  assert_string_equal(f.srv.transcript,
                      "#open\n"
                      "C: EHLO client.test\n"
                      "C: MAIL FROM:<a@example.com> SIZE=27\n"
                      "C: RCPT TO:<b@example.com>\n"
                      "C: DATA\nB: 27\n"
                      "C: MAIL FROM:<a@example.com> SIZE=27\n"
                      "C: RCPT TO:<b@example.com>\n"
                      "C: DATA\nB: 27\n"
                      "C: MAIL FROM:<a@example.com> SIZE=27\n"
                      "C: RCPT TO:<b@example.com>\n"
                      "C: DATA\nB: 27\n");
  assert_memory_equal(f.srv.body, msg, sizeof msg - 1);
  smtpuv_client_close(f.c, on_closed);
  wait_closed(&f);
  assert_int_equal(ss_count(&f.srv, "C: QUIT"), 1);
  finish(&f);
}

static void test_no_pipelining(void **state) {
  (void)state;
  fixture f;
  setup_fixture(&f, "8BITMIME\r\n");
  make_client(&f);
  const char *two[] = {"b@example.com", "c@example.com"};
  send_msg(&f, 0, two, 2);
  send_msg(&f, 1, one, 1);
  run_until(&f, 2);
  assert_int_equal(f.out[0].r->status, SMTPUV_SEND_SENT);
  assert_int_equal(f.out[0].r->naccepted, 2);
  assert_int_equal(f.out[1].r->status, SMTPUV_SEND_SENT);
  assert_int_equal(ss_count(&f.srv, "C: MAIL"), 2);
  assert_int_equal(ss_count(&f.srv, "C: RCPT"), 3);
  finish(&f);
}

/* ---- refusals ---------------------------------------------------------------- */

static int refuse_bad(ss_server *s, const char *line, char *reply,
                      size_t cap) {
  (void)s;
  if (line != NULL && strstr(line, "RCPT TO:<bad") != NULL) {
    snprintf(reply, cap, "550 5.1.1 no such user\r\n");
    return SS_REPLY;
  }
  if (line != NULL && !strncmp(line, "DATA", 4) && s->data != NULL) {
    snprintf(reply, cap, "554 5.5.1 no valid recipients\r\n");
    s->data = NULL;
    return SS_REPLY;
  }
  return SS_DEFAULT;
}

static void test_rset_after_refusal(void **state) {
  (void)state;
  for (int pipe = 0; pipe < 2; pipe++) {
    fixture f;
    setup_fixture(&f, pipe ? "PIPELINING\r\nENHANCEDSTATUSCODES\r\n"
                           : "ENHANCEDSTATUSCODES\r\n");
    f.srv.hook = refuse_bad;
    f.srv.data = pipe ? (void *)1 : NULL; /* DATA refused when pipelined */
    make_client(&f);
    const char *bad[] = {"bad@example.com"};
    send_msg(&f, 0, bad, 1);
    send_msg(&f, 1, one, 1);
    run_until(&f, 2);
    const smtpuv_send_result *r = f.out[0].r;
    assert_int_equal(r->status, SMTPUV_SEND_FAILED);
    assert_int_equal(r->error, SMTPUV_ENORCPT);
    assert_int_equal(r->phase, SMTPUV_PHASE_RCPT);
    assert_int_equal(r->recipients[0].code, 550);
    assert_string_equal(r->recipients[0].enhanced, "5.1.1");
    assert_string_equal(r->recipients[0].text, "5.1.1 no such user");
    assert_non_null(strstr(r->message, "no such user"));
    assert_int_equal(f.out[1].r->status, SMTPUV_SEND_SENT);
    /* RSET between the failed transaction and the next MAIL */
    const char *t = f.srv.transcript;
    const char *rset = strstr(t, "C: RSET");
    assert_non_null(rset);
    assert_non_null(strstr(rset, "C: MAIL"));
    assert_int_equal(ss_count(&f.srv, "B: "), 1);
    finish(&f);
  }
}

static void test_require_all(void **state) {
  (void)state;
  fixture f;
  setup_fixture(&f, "PIPELINING\r\n");
  f.srv.hook = refuse_bad;
  smtpuv_options_set_require_all_recipients(f.o, 1);
  make_client(&f);
  const char *mixed[] = {"b@example.com", "bad@example.com"};
  send_msg(&f, 0, mixed, 2);
  send_msg(&f, 1, one, 1);
  run_until(&f, 2);
  assert_int_equal(f.out[0].r->status, SMTPUV_SEND_FAILED);
  assert_int_equal(f.out[0].r->error, SMTPUV_ENORCPT);
  assert_int_equal(f.out[0].r->naccepted, 1);
  assert_int_equal(f.out[1].r->status, SMTPUV_SEND_SENT);
  /* no DATA for the first: RSET instead */
  assert_non_null(strstr(f.srv.transcript,
                         "C: RCPT TO:<bad@example.com>\nC: RSET\n"));
  assert_int_equal(ss_count(&f.srv, "C: DATA"), 1);
  finish(&f);
}

static void test_partial_recipients_sent(void **state) {
  (void)state;
  fixture f;
  setup_fixture(&f, "PIPELINING\r\n");
  f.srv.hook = refuse_bad;
  make_client(&f);
  const char *mixed[] = {"bad@example.com", "b@example.com"};
  send_msg(&f, 0, mixed, 2);
  run_until(&f, 1);
  const smtpuv_send_result *r = f.out[0].r;
  assert_int_equal(r->status, SMTPUV_SEND_SENT);
  assert_int_equal(r->error, SMTPUV_ENORCPT);
  assert_int_equal(r->naccepted, 1);
  assert_false(r->recipients[0].accepted);
  assert_true(r->recipients[1].accepted);
  finish(&f);
}

static int ehlo_refused(ss_server *s, const char *line, char *reply,
                        size_t cap) {
  (void)s;
  if (line != NULL && !strncmp(line, "EHLO", 4)) {
    snprintf(reply, cap, "502 5.5.2 what?\r\n");
    return SS_REPLY;
  }
  return SS_DEFAULT;
}

static void test_helo_fallback(void **state) {
  (void)state;
  for (int required = 0; required < 2; required++) {
    fixture f;
    setup_fixture(&f, "");
    f.srv.hook = ehlo_refused;
    if (required)
      smtpuv_options_set_tls(f.o, SMTPUV_TLS_REQUIRED);
    make_client(&f);
    send_msg(&f, 0, one, 1);
    run_until(&f, 1);
    if (required) {
      /* HELO cannot offer STARTTLS: no fallback when TLS is required */
      assert_int_equal(f.out[0].r->status, SMTPUV_SEND_FAILED);
      assert_int_equal(f.out[0].r->phase, SMTPUV_PHASE_EHLO);
      assert_int_equal(f.out[0].r->reply_code, 502);
      assert_int_equal(ss_count(&f.srv, "C: HELO"), 0);
      assert_int_equal(ss_count(&f.srv, "C: MAIL"), 0);
      assert_int_equal(ss_count(&f.srv, "C: QUIT"), 1);
    } else {
      assert_int_equal(f.out[0].r->status, SMTPUV_SEND_SENT);
      assert_int_equal(ss_count(&f.srv, "C: HELO client.test"), 1);
    }
    finish(&f);
  }
}

static void test_local_refusals(void **state) {
  (void)state;
  fixture f;
  setup_fixture(&f, "PIPELINING\r\nSIZE 100\r\n");
  make_client(&f);
  /* 8-bit content without 8BITMIME; too big for SIZE; a non-ASCII
     recipient without SMTPUTF8: each refused before MAIL is written */
  static const char eight[] = "Subject: x\r\n\r\ncaf\xc3\xa9\r\n";
  char big[300];
  memset(big, 'x', sizeof big);
  const char *utf[] = {"j\xc3\xb6rg@example.com"};
  smtpuv_envelope e = env1(one, 1);
  smtpuv_body b;
  smtpuv_body_init_buffer(&b, eight, sizeof eight - 1);
  assert_int_equal(smtpuv_client_send(f.c, &e, &b, on_sent, (void *)0), 0);
  smtpuv_body_init_buffer(&b, big, sizeof big);
  assert_int_equal(smtpuv_client_send(f.c, &e, &b, on_sent, (void *)1), 0);
  e = env1(utf, 1);
  smtpuv_body_init_buffer(&b, msg, sizeof msg - 1);
  assert_int_equal(smtpuv_client_send(f.c, &e, &b, on_sent, (void *)2), 0);
  e = env1(one, 1);
  smtpuv_rcpt_params rp = SMTPUV_RCPT_PARAMS_INIT;
  rp.dsn_notify = SMTPUV_DSN_NOTIFY_FAILURE;
  e.rcpt_params = &rp;
  assert_int_equal(smtpuv_client_send(f.c, &e, &b, on_sent, (void *)4), 0);
  e.rcpt_params = NULL;
  assert_int_equal(smtpuv_client_send(f.c, &e, &b, on_sent, (void *)3), 0);
  run_until(&f, 5);
  assert_int_equal(f.out[4].r->error, SMTPUV_ENOEXT);
  assert_int_equal(f.out[4].r->phase, SMTPUV_PHASE_MAIL);
  assert_int_equal(f.out[0].r->error, SMTPUV_E8BIT);
  assert_int_equal(f.out[0].r->phase, SMTPUV_PHASE_MAIL);
  assert_int_equal(f.out[1].r->error, SMTPUV_ETOOBIG);
  assert_int_equal(f.out[2].r->error, SMTPUV_ENOEXT);
  assert_int_equal(f.out[2].r->phase, SMTPUV_PHASE_RCPT);
  assert_int_equal(f.out[3].r->status, SMTPUV_SEND_SENT);
  assert_int_equal(ss_count(&f.srv, "C: MAIL"), 1);
  finish(&f);
}

/* ---- connections --------------------------------------------------------------- */

static int close_after_message(ss_server *s, const char *line, char *reply,
                               size_t cap) {
  if (line == NULL) {
    snprintf(reply, cap, "250 2.0.0 Ok\r\n");
    ss_send(s, reply);
    ss_close_conn(s); /* the server drops the idle connection */
    return SS_REPLY;
  }
  return SS_DEFAULT;
}

static void later_send(uv_timer_t *t) {
  fixture *f = t->data;
  send_msg(f, 1, one, 1);
  uv_close((uv_handle_t *)t, NULL);
}

/* One message, then (after `delay_ms`, once the server has done what `hook`
   makes it do to the idle connection) a second one: both must be sent, the
   second on a new connection. `t` must live until finish(f). */
static void send_twice_across_reopen(fixture *f, uv_timer_t *t, ss_hook hook,
                                     unsigned delay_ms) {
  setup_fixture(f, "PIPELINING\r\n");
  f->srv.hook = hook;
  make_client(f);
  send_msg(f, 0, one, 1);
  run_until(f, 1);
  uv_timer_init(&f->loop, t);
  t->data = f;
  uv_timer_start(t, later_send, delay_ms, 0);
  run_until(f, 2);
  assert_int_equal(f->out[0].r->status, SMTPUV_SEND_SENT);
  assert_int_equal(f->out[1].r->status, SMTPUV_SEND_SENT);
  assert_int_equal(f->srv.connections, 2);
}

static void test_reopen_after_idle_close(void **state) {
  (void)state;
  fixture f;
  uv_timer_t t;
  send_twice_across_reopen(&f, &t, close_after_message, 100);
  assert_int_equal(f.out[1].r->attempts, 1);
  finish(&f);
}

/* The server closes the connection when the second message's MAIL arrives
   (it had timed out the idle session): a rewindable message is retried
   once on a new connection; a stream without rewind is not. */
static int drop_second_mail(ss_server *s, const char *line, char *reply,
                            size_t cap) {
  (void)reply;
  (void)cap;
  if (line != NULL && !strncmp(line, "MAIL", 4) && s->messages == 1 &&
      s->connections == 1) {
    ss_close_conn(s);
    return SS_CLOSE;
  }
  return SS_DEFAULT;
}

typedef struct stream {
  const char *data;
  size_t len, pos;
  int eagain_once; /* after the first piece: SMTPUV_EAGAIN until woken */
  int waited;
  int woken;
} stream;

static long stream_read(void *user, void *buf, size_t cap) {
  stream *s = user;
  if (s->eagain_once && !s->woken && s->pos > 0) {
    s->waited++;
    return SMTPUV_EAGAIN;
  }
  size_t n = s->len - s->pos;
  if (n > cap)
    n = cap;
  if (n > 7)
    n = 7; /* small pieces */
  memcpy(buf, s->data + s->pos, n);
  s->pos += n;
  return (long)n;
}

static int stream_rewind(void *user) {
  ((stream *)user)->pos = 0;
  return 0;
}

static void test_retry_on_reused_connection(void **state) {
  (void)state;
  for (int rewindable = 0; rewindable < 2; rewindable++) {
    fixture f;
    setup_fixture(&f, "PIPELINING\r\n");
    f.srv.hook = drop_second_mail;
    make_client(&f);
    send_msg(&f, 0, one, 1);
    run_until(&f, 1);
    stream s = {msg, sizeof msg - 1, 0, 0, 0, 0};
    smtpuv_envelope e = env1(one, 1);
    smtpuv_body b;
    smtpuv_body_init_stream(&b, stream_read, rewindable ? stream_rewind : NULL,
                            &s, 0);
    assert_int_equal(smtpuv_client_send(f.c, &e, &b, on_sent, (void *)1), 0);
    run_until(&f, 2);
    if (rewindable) {
      assert_int_equal(f.out[1].r->status, SMTPUV_SEND_SENT);
      assert_int_equal(f.out[1].r->attempts, 2);
      assert_int_equal(f.srv.connections, 2);
      assert_memory_equal(f.srv.body, msg, sizeof msg - 1);
    } else {
      assert_int_equal(f.out[1].r->status, SMTPUV_SEND_FAILED);
      assert_int_equal(f.out[1].r->error, SMTPUV_ECONNLOST);
      assert_int_equal(f.out[1].r->phase, SMTPUV_PHASE_MAIL);
      assert_int_equal(f.out[1].r->attempts, 1);
    }
    finish(&f);
  }
}

static int unsolicited_421(ss_server *s, const char *line, char *reply,
                           size_t cap) {
  if (line == NULL) {
    snprintf(reply, cap, "250 2.0.0 Ok\r\n421 4.4.2 idle timeout\r\n");
    ss_send(s, reply);
    ss_close_conn(s);
    return SS_REPLY;
  }
  return SS_DEFAULT;
}

static void test_unsolicited_421_then_reopen(void **state) {
  (void)state;
  fixture f;
  uv_timer_t t;
  send_twice_across_reopen(&f, &t, unsolicited_421, 50);
  finish(&f);
}

static void test_idle_timeout_quits(void **state) {
  (void)state;
  fixture f;
  setup_fixture(&f, "PIPELINING\r\n");
  smtpuv_options_set_timeout(f.o, SMTPUV_TIMEOUT_IDLE, 50);
  make_client(&f);
  send_msg(&f, 0, one, 1);
  run_until(&f, 1);
  /* nothing else queued: the idle connection QUITs after 50 ms */
  double guard = 0;
  while (ss_count(&f.srv, "#close") == 0 && guard++ < 100000)
    uv_run(&f.loop, UV_RUN_ONCE);
  assert_int_equal(ss_count(&f.srv, "C: QUIT"), 1);
  assert_int_equal(smtpuv_client_pending(f.c), 0);
  finish(&f);
}

/* ---- closing --------------------------------------------------------------------- */

static void test_close_from_callback(void **state) {
  (void)state;
  fixture f;
  setup_fixture(&f, "PIPELINING\r\n");
  make_client(&f);
  f.close_at = 1;
  for (int i = 0; i < 5; i++)
    send_msg(&f, i, one, 1);
  wait_closed(&f);
  assert_int_equal(f.done, 5);
  assert_int_equal(f.out[0].r->status, SMTPUV_SEND_SENT);
  for (int i = 2; i < 5; i++) {
    assert_int_equal(f.out[i].r->status, SMTPUV_SEND_CANCELED);
    assert_int_equal(f.out[i].r->error, SMTPUV_ECANCELED);
  }
  /* #2 was pipelined behind #1's end of data: canceled, or sent if its
     replies came first — either way exactly one callback */
  assert_true(f.out[1].r->status == SMTPUV_SEND_CANCELED ||
              f.out[1].r->status == SMTPUV_SEND_SENT);
  assert_int_equal(f.second_close, SMTPUV_ECLOSED);
  finish(&f);
  assert_int_equal(f.closed, 1);
}

static void close_now(uv_timer_t *t) {
  fixture *f = t->data;
  assert_int_equal(smtpuv_client_close(f->c, on_closed), 0);
  /* nothing may be sent any more */
  smtpuv_envelope e = env1(one, 1);
  smtpuv_body b;
  smtpuv_body_init_buffer(&b, msg, sizeof msg - 1);
  assert_int_equal(smtpuv_client_send(f->c, &e, &b, on_sent, (void *)9),
                   SMTPUV_ECLOSED);
  uv_close((uv_handle_t *)t, NULL);
}

static long stuck_read(void *user, void *buf, size_t cap) {
  stream *s = user;
  if (s->pos >= 100)
    return SMTPUV_EAGAIN; /* the rest never comes */
  size_t n = cap < 100 ? cap : 100;
  memset(buf, 'y', n);
  s->pos += n;
  return (long)n;
}

/* Close once body bytes have reached the server (the client read the 354
   and is in DATA). Polled: under valgrind the client may need far longer
   than any fixed delay to get there. The stuck body has no line end, so
   its bytes wait in the server's line buffer. */
static void close_in_data(uv_timer_t *t) {
  fixture *f = t->data;
  if (!f->srv.in_data || f->srv.linelen == 0)
    return;
  uv_timer_stop(t);
  close_now(t);
}

static void test_close_mid_data(void **state) {
  (void)state;
  fixture f;
  setup_fixture(&f, "PIPELINING\r\n");
  make_client(&f);
  stream s = {NULL, 0, 0, 0, 0, 0};
  smtpuv_envelope e = env1(one, 1);
  smtpuv_body b;
  smtpuv_body_init_stream(&b, stuck_read, NULL, &s, 0);
  assert_int_equal(smtpuv_client_send(f.c, &e, &b, on_sent, (void *)0), 0);
  send_msg(&f, 1, one, 1);
  uv_timer_t t;
  uv_timer_init(&f.loop, &t);
  t.data = &f;
  uv_timer_start(&t, close_in_data, 5, 5);
  wait_closed(&f);
  assert_int_equal(f.out[0].r->status, SMTPUV_SEND_CANCELED);
  assert_int_equal(f.out[0].r->phase, SMTPUV_PHASE_DATA);
  assert_int_equal(f.out[1].r->status, SMTPUV_SEND_CANCELED);
  assert_int_equal(f.out[1].r->phase, SMTPUV_PHASE_NONE);
  assert_int_equal(f.out[9].calls, 0);
  assert_int_equal(ss_count(&f.srv, "B: "), 0); /* never completed */
  finish(&f);
}

static void test_close_while_connecting(void **state) {
  (void)state;
  for (int when = 0; when < 2; when++) {
    fixture f;
    setup_fixture(&f, "");
    f.srv.closing = 1;
    f.srv.greeting = NULL; /* never greets */
    make_client(&f);
    send_msg(&f, 0, one, 1);
    uv_timer_t t;
    if (when == 0) {
      /* before the loop ran at all */
      assert_int_equal(smtpuv_client_close(f.c, on_closed), 0);
    } else {
      uv_timer_init(&f.loop, &t);
      t.data = &f;
      uv_timer_start(&t, close_now, 100, 0);
    }
    wait_closed(&f);
    assert_int_equal(f.out[0].calls, 1);
    assert_int_equal(f.out[0].r->status, SMTPUV_SEND_CANCELED);
    finish(&f);
  }
}

static void test_close_idle_client(void **state) {
  (void)state;
  fixture f;
  setup_fixture(&f, "");
  make_client(&f);
  assert_int_equal(smtpuv_client_close(f.c, on_closed), 0);
  assert_int_equal(f.closed, 0); /* never from inside close() */
  wait_closed(&f);
  assert_int_equal(f.srv.connections, 0);
  finish(&f);
}

/* ---- bodies ---------------------------------------------------------------------- */

static stream *wake_stream;

/* Polled until the stream has said SMTPUV_EAGAIN, then woken. */
static void wake_body(uv_timer_t *t) {
  fixture *f = t->data;
  if (!wake_stream->waited)
    return;
  uv_timer_stop(t);
  assert_int_equal(f->done, 0); /* still waiting for the body */
  wake_stream->woken = 1;
  assert_int_equal(smtpuv_client_body_ready(f->c), 0);
  uv_close((uv_handle_t *)t, NULL);
}

static void test_stream_waits(void **state) {
  (void)state;
  fixture f;
  setup_fixture(&f, "PIPELINING\r\n");
  make_client(&f);
  static const char text[] = "Subject: s\r\n\r\nline one\nline two\r\n.x\r\n";
  stream s = {text, sizeof text - 1, 0, 1, 0, 0};
  wake_stream = &s;
  smtpuv_envelope e = env1(one, 1);
  smtpuv_body b;
  smtpuv_body_init_stream(&b, stream_read, stream_rewind, &s, 0);
  assert_int_equal(smtpuv_client_send(f.c, &e, &b, on_sent, (void *)0), 0);
  uv_timer_t t;
  uv_timer_init(&f.loop, &t);
  t.data = &f;
  uv_timer_start(&t, wake_body, 5, 5);
  run_until(&f, 1);
  assert_int_equal(f.out[0].r->status, SMTPUV_SEND_SENT);
  assert_true(s.waited);
  static const char want[] = "Subject: s\r\n\r\nline one\r\nline two\r\n.x\r\n";
  assert_int_equal(f.srv.blen, sizeof want - 1);
  assert_memory_equal(f.srv.body, want, sizeof want - 1);
  finish(&f);
}

static long failing_read(void *user, void *buf, size_t cap) {
  (void)user;
  (void)buf;
  (void)cap;
  return -5;
}

/* 100 KiB of text, then a failure: the first 64 KiB come before MAIL (the
   body's first chunk is looked at before MAIL), the failure after 354. */
static long late_failing_read(void *user, void *buf, size_t cap) {
  size_t *left = user;
  if (*left == 0)
    return -5;
  size_t n = cap < *left ? cap : *left;
  for (size_t i = 0; i < n; i++)
    ((char *)buf)[i] = (i % 64) == 63 ? '\n' : 'x';
  *left -= n;
  return (long)n;
}

static void test_stream_error(void **state) {
  (void)state;
  /* the source fails at once: refused before MAIL, the connection goes on */
  fixture f;
  setup_fixture(&f, "PIPELINING\r\n");
  make_client(&f);
  smtpuv_envelope e = env1(one, 1);
  smtpuv_body b;
  smtpuv_body_init_stream(&b, failing_read, NULL, NULL, 0);
  assert_int_equal(smtpuv_client_send(f.c, &e, &b, on_sent, (void *)0), 0);
  send_msg(&f, 1, one, 1);
  run_until(&f, 2);
  assert_int_equal(f.out[0].r->status, SMTPUV_SEND_FAILED);
  assert_int_equal(f.out[0].r->error, SMTPUV_EBODY);
  assert_int_equal(f.out[0].r->phase, SMTPUV_PHASE_MAIL);
  assert_int_equal(f.out[1].r->status, SMTPUV_SEND_SENT);
  assert_int_equal(f.srv.connections, 1);
  assert_int_equal(ss_count(&f.srv, "C: MAIL"), 1);
  finish(&f);

  /* the source fails after 354: DATA cannot be abandoned, so the
     connection was dropped before the final dot and the next message went
     on a new one */
  size_t left = 100 * 1024;
  setup_fixture(&f, "PIPELINING\r\n");
  make_client(&f);
  smtpuv_body_init_stream(&b, late_failing_read, NULL, &left, 0);
  assert_int_equal(smtpuv_client_send(f.c, &e, &b, on_sent, (void *)0), 0);
  send_msg(&f, 1, one, 1);
  run_until(&f, 2);
  assert_int_equal(f.out[0].r->status, SMTPUV_SEND_FAILED);
  assert_int_equal(f.out[0].r->error, SMTPUV_EBODY);
  assert_int_equal(f.out[0].r->phase, SMTPUV_PHASE_DATA);
  assert_int_equal(f.out[1].r->status, SMTPUV_SEND_SENT);
  assert_int_equal(f.srv.connections, 2);
  finish(&f);
}

/* ---- trace ------------------------------------------------------------------------- */

typedef struct tracebuf {
  char buf[8192];
  size_t len;
} tracebuf;

static void trace_cb(void *data, smtpuv_trace_kind kind, const char *b,
                     size_t n) {
  tracebuf *t = data;
  const char *tag = kind == SMTPUV_TRACE_SEND        ? "C: "
                    : kind == SMTPUV_TRACE_SEND_BODY ? "B: "
                    : kind == SMTPUV_TRACE_RECV      ? "S: "
                                                     : "* ";
  int w = snprintf(t->buf + t->len, sizeof t->buf - t->len, "%s%.*s%s", tag,
                   (int)n, b, kind == SMTPUV_TRACE_INFO ? "\n" : "");
  if (w > 0 && t->len + (size_t)w < sizeof t->buf)
    t->len += (size_t)w;
}

static int login_auth(ss_server *s, const char *line, char *reply,
                      size_t cap) {
  (void)s;
  if (line != NULL && !strncmp(line, "AUTH LOGIN", 10)) {
    snprintf(reply, cap, "334 VXNlcm5hbWU6\r\n");
    return SS_REPLY;
  }
  if (line != NULL && !strcmp(line, "dXNlcg==")) { /* "user" */
    snprintf(reply, cap, "334 UGFzc3dvcmQ6\r\n");
    return SS_REPLY;
  }
  if (line != NULL && !strcmp(line, "czNjcjN0")) { /* "s3cr3t" */
    snprintf(reply, cap, "235 2.7.0 ok\r\n");
    return SS_REPLY;
  }
  return SS_DEFAULT;
}

static void test_trace_redacts_auth(void **state) {
  (void)state;
  for (int mech = 0; mech < 2; mech++) {
    fixture f;
    setup_fixture(&f, "PIPELINING\r\nAUTH PLAIN LOGIN\r\n");
    f.srv.hook = login_auth;
    tracebuf t;
    memset(&t, 0, sizeof t);
    smtpuv_options_set_trace(f.o, trace_cb, &t);
    smtpuv_options_set_tls(f.o, SMTPUV_TLS_OPPORTUNISTIC);
    smtpuv_options_set_allow_plaintext_auth(f.o, 1);
    smtpuv_options_set_credentials(f.o, "user", "s3cr3t", NULL);
    smtpuv_options_set_auth_mechanism(f.o, mech ? "LOGIN" : "PLAIN");
    make_client(&f);
    send_msg(&f, 0, one, 1);
    run_until(&f, 1);
    assert_int_equal(f.out[0].r->status, SMTPUV_SEND_SENT);
    t.buf[t.len] = '\0';
    if (mech) {
      assert_non_null(strstr(t.buf, "C: AUTH LOGIN\r\n"));
      assert_non_null(strstr(t.buf, "C: <redacted>\r\nS: 334 UGFzc3dvcmQ6"));
      assert_null(strstr(t.buf, "dXNlcg=="));
      assert_null(strstr(t.buf, "czNjcjN0"));
      assert_non_null(strstr(f.srv.transcript, "C: czNjcjN0"));
    } else {
      assert_non_null(strstr(t.buf, "C: AUTH PLAIN <redacted>\r\n"));
      assert_null(strstr(t.buf, "AHVzZXIAczNjcjN0")); /* \0user\0s3cr3t */
      assert_non_null(strstr(f.srv.transcript, "AHVzZXIAczNjcjN0"));
    }
    assert_non_null(strstr(t.buf, "C: MAIL FROM:<a@example.com>"));
    assert_non_null(strstr(t.buf, "B: Subject: t\r\n"));
    assert_non_null(strstr(t.buf, "S: 250 "));
    assert_non_null(strstr(t.buf, "* connected to 127.0.0.1:"));
    finish(&f);
  }
}

/* ---- OAuth token arriving later ------------------------------------------------ */

/* The token is asked for when AUTH comes and handed over 100 ms later from
   a timer the callback starts: after the ask, not on a clock that runs from
   the send (which raced the client's setup under valgrind). */
static smtpuv_auth *token_auth;
static int token_asks;
static uv_timer_t token_timer;

static void give_token(uv_timer_t *t) {
  fixture *f = t->data;
  assert_int_equal(f->done, 0);
  assert_non_null(token_auth);
  assert_int_equal(smtpuv_auth_token_provide(token_auth, "tok123"), 0);
  uv_close((uv_handle_t *)t, NULL);
}

static void token_cb(smtpuv_auth *auth, int rejected, void *data) {
  (void)rejected;
  token_auth = auth;
  token_asks++;
  uv_timer_start(&token_timer, give_token, 100, 0);
  (void)data;
}

static void test_async_oauth_token(void **state) {
  (void)state;
  fixture f;
  setup_fixture(&f, "PIPELINING\r\nAUTH XOAUTH2\r\n");
  smtpuv_options_set_tls(f.o, SMTPUV_TLS_OPPORTUNISTIC);
  smtpuv_options_set_allow_plaintext_auth(f.o, 1);
  smtpuv_auth_credentials cr = SMTPUV_AUTH_CREDENTIALS_INIT;
  cr.username = "me@example.com";
  cr.token_cb = token_cb;
  assert_int_equal(smtpuv_options_set_auth_credentials(f.o, &cr), 0);
  make_client(&f);
  token_asks = 0;
  token_auth = NULL;
  uv_timer_init(&f.loop, &token_timer);
  token_timer.data = &f;
  send_msg(&f, 0, one, 1);
  run_until(&f, 1);
  assert_int_equal(f.out[0].r->status, SMTPUV_SEND_SENT);
  assert_int_equal(token_asks, 1);
  /* "user=me@example.com\1auth=Bearer tok123\1\1" */
  assert_non_null(strstr(f.srv.transcript,
                         "C: AUTH XOAUTH2 dXNlcj1tZUBleGFtcGxlLmNvbQFhdXRoPUJl"
                         "YXJlciB0b2sxMjMBAQ==\n"));
  finish(&f);
}

/* ---- callback order -------------------------------------------------------- */

static uv_timer_t late_timer;
static ss_server *late_srv;

static void send_late_reply(uv_timer_t *t) {
  (void)t;
  ss_send(late_srv, "250 2.0.0 Ok: late\r\n");
  uv_close((uv_handle_t *)&late_timer, NULL);
}

/* The first end of data is answered 150 ms late. */
static int late_first_dot(ss_server *s, const char *line, char *reply,
                          size_t cap) {
  (void)cap;
  if (line == NULL && s->messages == 1) {
    reply[0] = '\0'; /* silent for now */
    late_srv = s;
    uv_timer_init(s->loop, &late_timer);
    uv_timer_start(&late_timer, send_late_reply, 150, 0);
    return SS_REPLY;
  }
  return SS_DEFAULT;
}

/* #1 is refused locally (8-bit, no 8BITMIME) while #0 waits for the reply
   to its "." on the wire: #1's callback still comes after #0's. */
static void test_callbacks_in_queue_order(void **state) {
  (void)state;
  fixture f;
  setup_fixture(&f, "PIPELINING\r\n");
  f.srv.hook = late_first_dot;
  make_client(&f);
  send_msg(&f, 0, one, 1);
  static const char eight[] = "Subject: x\r\n\r\ncaf\xc3\xa9\r\n";
  smtpuv_envelope e = env1(one, 1);
  smtpuv_body b;
  smtpuv_body_init_buffer(&b, eight, sizeof eight - 1);
  assert_int_equal(smtpuv_client_send(f.c, &e, &b, on_sent, (void *)1), 0);
  run_until(&f, 2);
  send_msg(&f, 2, one, 1); /* the connection goes on */
  run_until(&f, 3);
  assert_int_equal(f.order[0], 0);
  assert_int_equal(f.order[1], 1);
  assert_int_equal(f.order[2], 2);
  assert_int_equal(f.out[0].r->status, SMTPUV_SEND_SENT);
  assert_string_equal(f.out[0].r->message, "250 2.0.0 Ok: late");
  assert_int_equal(f.out[1].r->status, SMTPUV_SEND_FAILED);
  assert_int_equal(f.out[1].r->error, SMTPUV_E8BIT);
  assert_int_equal(f.out[2].r->status, SMTPUV_SEND_SENT);
  /* #1 really was refused while #0 was in flight */
  assert_int_equal(ss_count(&f.srv, "C: MAIL"), 2);
  finish(&f);
}

/* ---- replies before a protocol error ------------------------------------------ */

static int junk_after_queued(ss_server *s, const char *line, char *reply,
                             size_t cap) {
  if (line == NULL && s->connections == 1) {
    snprintf(reply, cap, "250 2.0.0 Ok: queued\r\nxyz junk\r\n");
    return SS_REPLY;
  }
  return SS_DEFAULT;
}

static void test_reply_before_junk(void **state) {
  (void)state;
  fixture f;
  setup_fixture(&f, "PIPELINING\r\n");
  f.srv.hook = junk_after_queued;
  make_client(&f);
  send_msg(&f, 0, one, 1);
  run_until(&f, 1);
  /* the "250" that came with the junk counts */
  assert_int_equal(f.out[0].r->status, SMTPUV_SEND_SENT);
  assert_int_equal(f.out[0].r->error, 0);
  assert_int_equal(f.out[0].r->reply_code, 250);
  assert_string_equal(f.out[0].r->reply_text, "2.0.0 Ok: queued");
  /* then the connection was dropped (no QUIT after a violation) */
  for (int g = 0; ss_count(&f.srv, "#close") == 0 && g < 100000; g++)
    uv_run(&f.loop, UV_RUN_ONCE);
  assert_int_equal(ss_count(&f.srv, "#close"), 1);
  assert_int_equal(ss_count(&f.srv, "C: QUIT"), 0);
  /* the next message goes on a new connection */
  send_msg(&f, 1, one, 1);
  run_until(&f, 2);
  assert_int_equal(f.out[1].r->status, SMTPUV_SEND_SENT);
  assert_int_equal(f.srv.connections, 2);
  finish(&f);
}

/* ---- SIZE= and BODY= ---------------------------------------------------------- */

/* The value of SIZE= in the n-th MAIL command of the transcript, -1 when
   absent. */
static long size_param(const ss_server *s, int nth) {
  const char *p = s->transcript;
  for (int i = 0; p != NULL && i <= nth; i++) {
    p = strstr(p, "C: MAIL");
    if (p != NULL && i < nth)
      p += 7;
  }
  if (p == NULL)
    return -2;
  const char *eol = strchr(p, '\n');
  const char *sz = strstr(p, " SIZE=");
  if (sz == NULL || (eol != NULL && sz > eol))
    return -1;
  return strtol(sz + 6, NULL, 10);
}

static void send_body(fixture *f, int i, const char *body, size_t len) {
  smtpuv_envelope e = env1(one, 1);
  smtpuv_body b;
  smtpuv_body_init_buffer(&b, body, len);
  assert_int_equal(smtpuv_client_send(f->c, &e, &b, on_sent, (void *)(size_t)i),
                   0);
}

/* SIZE= counts the body as it goes out: bare LFs become CRLF, a missing
   final line ending is added, stuffed dots do not count (RFC 1870); it
   equals what the server received. */
static void test_size_counts_crlf(void **state) {
  (void)state;
  static const char lf[] = "Subject: t\n\nhello\n.dot\n";  /* 23, 4 LF */
  static const char noend[] = "Subject: t\n\nhello";         /* 17, 2 LF */
  static const char crlf[] = "Subject: t\r\n\r\nx\r\n";      /* 17 */
  for (int bdat = 0; bdat < 2; bdat++) {
    fixture f;
    setup_fixture(&f, bdat ? "PIPELINING\r\nCHUNKING\r\nSIZE 1000000\r\n"
                           : "PIPELINING\r\nSIZE 1000000\r\n");
    make_client(&f);
    send_body(&f, 0, lf, sizeof lf - 1);
    send_body(&f, 1, noend, sizeof noend - 1);
    send_body(&f, 2, crlf, sizeof crlf - 1);
    run_until(&f, 3);
    for (int i = 0; i < 3; i++)
      assert_int_equal(f.out[i].r->status, SMTPUV_SEND_SENT);
    assert_int_equal(size_param(&f.srv, 0), 27);
    assert_int_equal(size_param(&f.srv, 1), 21);
    assert_int_equal(size_param(&f.srv, 2), 17);
    const char *t = f.srv.transcript;
    assert_non_null(strstr(t, "B: 27\n"));
    assert_non_null(strstr(t, "B: 21\n"));
    assert_non_null(strstr(t, "B: 17\n"));
    assert_int_equal(ss_count(&f.srv, bdat ? "C: BDAT" : "C: DATA"), 3);
    finish(&f);
  }
  /* no SIZE offered: no SIZE= */
  fixture f;
  setup_fixture(&f, "PIPELINING\r\n");
  make_client(&f);
  send_body(&f, 0, lf, sizeof lf - 1);
  run_until(&f, 1);
  assert_int_equal(size_param(&f.srv, 0), -1);
  finish(&f);
}

/* BODY=BINARYMIME only when the server offers both CHUNKING and BINARYMIME
   and chunking is on; otherwise a body with a NUL goes as it did. */
/* Binary content (NUL, a line over 998 octets) goes only as BINARYMIME with
   CHUNKING; otherwise it is refused before MAIL, nothing written. */
static void test_binarymime_only_when_offered(void **state) {
  (void)state;
  static const char bin[] = "Subject: b\r\n\r\nbin\0ary\r\n";
  static const struct {
    const char *ehlo;
    int chunking;
    const char *mail; /* NULL: refused */
    const char *via;
  } cases[] = {
      {"PIPELINING\r\nCHUNKING\r\nBINARYMIME\r\n8BITMIME\r\nSIZE 999\r\n", 1,
       "C: MAIL FROM:<a@example.com> SIZE=23 BODY=BINARYMIME\n",
       "C: BDAT 23 LAST"},
      {"PIPELINING\r\nCHUNKING\r\n8BITMIME\r\nSIZE 999\r\n", 1, NULL,
       "does not offer BINARYMIME"},
      {"PIPELINING\r\nCHUNKING\r\nBINARYMIME\r\n8BITMIME\r\nSIZE 999\r\n", 0,
       NULL, "switched off"},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    fixture f;
    setup_fixture(&f, cases[k].ehlo);
    smtpuv_options_set_chunking(f.o, cases[k].chunking);
    make_client(&f);
    send_body(&f, 0, bin, sizeof bin - 1);
    run_until(&f, 1);
    if (cases[k].mail == NULL) {
      assert_int_equal(f.out[0].r->status, SMTPUV_SEND_FAILED);
      assert_int_equal(f.out[0].r->error, SMTPUV_EBINARY);
      assert_int_equal(f.out[0].r->phase, SMTPUV_PHASE_MAIL);
      assert_non_null(strstr(f.out[0].r->message, cases[k].via));
      assert_int_equal(ss_count(&f.srv, "C: MAIL"), 0);
      finish(&f);
      continue;
    }
    assert_int_equal(f.out[0].r->status, SMTPUV_SEND_SENT);
    if (strstr(f.srv.transcript, cases[k].mail) == NULL)
      fail_msg("case %zu: no \"%s\" in\n%s", k, cases[k].mail,
               f.srv.transcript);
    assert_non_null(strstr(f.srv.transcript, cases[k].via));
    assert_int_equal(f.srv.blen, sizeof bin - 1);
    assert_memory_equal(f.srv.body, bin, sizeof bin - 1);
    finish(&f);
  }
}

/* ---- large bodies: synchronous writes and the write queue ---------------------- */

typedef struct big_stream {
  const char *data;
  size_t len, pos;
} big_stream;

static long big_read(void *user, void *buf, size_t cap) {
  big_stream *s = user;
  size_t n = s->len - s->pos;
  if (n > cap)
    n = cap;
  memcpy(buf, s->data + s->pos, n);
  s->pos += n;
  return (long)n;
}

static void test_large_bodies(void **state) {
  (void)state;
  size_t len = 31457 * 100; /* whole CRLF-ended lines */
  char *body = malloc(len);
  assert_non_null(body);
  for (size_t i = 0; i < len; i++)
    body[i] = i % 100 == 98 ? '\r' : i % 100 == 99 ? '\n' : (char)('a' + i % 26);
  for (int mode = 0; mode < 3; mode++) { /* DATA, BDAT, streamed DATA */
    fixture f;
    setup_fixture(&f, mode == 1 ? "PIPELINING\r\nCHUNKING\r\n"
                                : "PIPELINING\r\n");
    make_client(&f);
    big_stream bs = {body, len, 0};
    smtpuv_envelope e = env1(one, 1);
    smtpuv_body b;
    if (mode == 2)
      smtpuv_body_init_stream(&b, big_read, NULL, &bs, len);
    else
      smtpuv_body_init_buffer(&b, body, len);
    assert_int_equal(smtpuv_client_send(f.c, &e, &b, on_sent, (void *)0), 0);
    send_msg(&f, 1, one, 1); /* pipelined behind it */
    run_until(&f, 2);
    assert_int_equal(f.out[0].r->status, SMTPUV_SEND_SENT);
    assert_int_equal(f.out[1].r->status, SMTPUV_SEND_SENT);
    if (strstr(f.srv.transcript, "B: 3145700\n") == NULL)
      fail_msg("mode %d:\n%s", mode, f.srv.transcript);
    assert_memory_equal(f.srv.body, msg, sizeof msg - 1); /* the last one */
    assert_int_equal(f.srv.connections, 1);
    finish(&f);
  }
  /* the first body, byte for byte */
  fixture f;
  setup_fixture(&f, "PIPELINING\r\n");
  make_client(&f);
  send_body(&f, 0, body, len);
  run_until(&f, 1);
  assert_int_equal(f.srv.blen, len);
  assert_memory_equal(f.srv.body, body, len);
  finish(&f);
  free(body);
}

/* A server in its own thread reads as fast as it can (like a real one in
   another process): the socket takes every write at once, so the client
   must keep its body flowing without any write callback. */
typedef struct thread_srv {
  uv_loop_t loop;
  ss_server srv;
  uv_async_t stop;
  uv_sem_t ready;
} thread_srv;

static void thread_srv_stop(uv_async_t *a) {
  thread_srv *t = a->data;
  ss_stop(&t->srv);
  uv_close((uv_handle_t *)&t->stop, NULL);
}

static void thread_srv_run(void *arg) {
  thread_srv *t = arg;
  uv_loop_init(&t->loop);
  uv_async_init(&t->loop, &t->stop, thread_srv_stop);
  t->stop.data = t;
  ss_start(&t->srv, &t->loop);
  uv_sem_post(&t->ready);
  uv_run(&t->loop, UV_RUN_DEFAULT);
  uv_loop_close(&t->loop);
}

static void test_stream_to_fast_reader(void **state) {
  (void)state;
  size_t len = 80000 * 100; /* 8 MB of CRLF-ended lines */
  char *body = malloc(len);
  assert_non_null(body);
  for (size_t i = 0; i < len; i++)
    body[i] = i % 100 == 98 ? '\r' : i % 100 == 99 ? '\n' : (char)('a' + i % 26);
  thread_srv t;
  memset(&t, 0, sizeof t);
  t.srv.ehlo = "PIPELINING\r\n";
  uv_sem_init(&t.ready, 0);
  uv_thread_t th;
  assert_int_equal(uv_thread_create(&th, thread_srv_run, &t), 0);
  uv_sem_wait(&t.ready);
  fixture f;
  memset(&f, 0, sizeof f);
  uv_loop_init(&f.loop);
  assert_int_equal(smtpuv_options_new(NULL, &f.o), 0);
  smtpuv_options_set_host(f.o, "127.0.0.1");
  smtpuv_options_set_port(f.o, (unsigned)t.srv.port);
  smtpuv_options_set_tls(f.o, SMTPUV_TLS_NONE);
  smtpuv_options_set_ehlo_name(f.o, "client.test");
  /* a stalled body fails fast instead of after 3 minutes */
  smtpuv_options_set_timeout(f.o, SMTPUV_TIMEOUT_DATA, 3000);
  smtpuv_options_set_timeout(f.o, SMTPUV_TIMEOUT_COMMAND, 3000);
  make_client(&f);
  big_stream bs = {body, len, 0};
  smtpuv_envelope e = env1(one, 1);
  smtpuv_body b;
  smtpuv_body_init_stream(&b, big_read, NULL, &bs, len);
  assert_int_equal(smtpuv_client_send(f.c, &e, &b, on_sent, (void *)0), 0);
  smtpuv_body_init_buffer(&b, body, len);
  assert_int_equal(smtpuv_client_send(f.c, &e, &b, on_sent, (void *)1), 0);
  run_until(&f, 2);
  for (int i = 0; i < 2; i++)
    if (f.out[i].r->status != SMTPUV_SEND_SENT)
      fail_msg("message %d: %s", i, f.out[i].r->message);
  smtpuv_client_close(f.c, on_closed);
  wait_closed(&f);
  uv_run(&f.loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&f.loop), 0);
  uv_async_send(&t.stop);
  uv_thread_join(&th);
  uv_sem_destroy(&t.ready);
  assert_int_equal(ss_count(&t.srv, "B: 8000000\n"), 2);
  assert_int_equal(t.srv.blen, len);
  assert_memory_equal(t.srv.body, body, len);
  for (int i = 0; i < 2; i++)
    smtpuv_send_result_free(f.out[i].r);
  smtpuv_options_free(f.o);
  ss_free(&t.srv);
  free(body);
}

/* ---- results -------------------------------------------------------------------- */

static int long_final_reply(ss_server *s, const char *line, char *reply,
                            size_t cap) {
  (void)s;
  if (line == NULL) {
    char a[201], b[201];
    memset(a, 'a', 200);
    a[200] = '\0';
    memset(b, 'b', 200);
    b[200] = '\0';
    snprintf(reply, cap, "250-2.0.0 %s\r\n250-%s\r\n250 2.0.0 end\r\n", a, b);
    return SS_REPLY;
  }
  if (line != NULL && strstr(line, "RCPT TO:<r7@") != NULL) {
    snprintf(reply, cap, "550 5.1.1 no r7 here\r\n");
    return SS_REPLY;
  }
  return SS_DEFAULT;
}

/* Twelve recipients (more than fit the stack array of a callback) and a
   long three-line final reply (more than fits the record's own arena),
   twice. */
static void test_many_recipients_long_reply(void **state) {
  (void)state;
  fixture f;
  setup_fixture(&f, "PIPELINING\r\nENHANCEDSTATUSCODES\r\n");
  f.srv.hook = long_final_reply;
  make_client(&f);
  char addr[12][32];
  const char *to[12];
  for (int i = 0; i < 12; i++) {
    snprintf(addr[i], sizeof addr[i], "r%d@example.com", i);
    to[i] = addr[i];
  }
  send_msg(&f, 0, to, 12);
  send_msg(&f, 1, to + 2, 10);
  run_until(&f, 2);
  char want[700];
  char a[201], b[201];
  memset(a, 'a', 200);
  a[200] = '\0';
  memset(b, 'b', 200);
  b[200] = '\0';
  snprintf(want, sizeof want, "2.0.0 %s\n%s\n2.0.0 end", a, b);
  for (int m = 0; m < 2; m++) {
    const smtpuv_send_result *r = f.out[m].r;
    size_t n = m == 0 ? 12 : 10;
    assert_int_equal(r->status, SMTPUV_SEND_SENT);
    assert_int_equal(r->error, SMTPUV_ENORCPT);
    assert_int_equal(r->nrecipients, n);
    assert_int_equal(r->naccepted, n - 1);
    for (size_t i = 0; i < n; i++) {
      int k = (int)i + (m == 0 ? 0 : 2);
      assert_string_equal(r->recipients[i].address, addr[k]);
      assert_int_equal(r->recipients[i].accepted, k != 7);
      assert_string_equal(r->recipients[i].text,
                          k == 7 ? "5.1.1 no r7 here" : "2.0.0 Ok");
    }
    assert_string_equal(r->reply_text, want);
    assert_int_equal(strncmp(r->message, "250 2.0.0 aaaa", 14), 0);
    assert_int_equal(strlen(r->message), 4 + 206);
  }
  finish(&f);
}

/* ---- TLS setup errors name their reason ------------------------------------------ */

static void test_tls_setup_errors(void **state) {
  (void)state;
  for (int k = 0; k < 2; k++) {
    fixture f;
    setup_fixture(&f, "");
    smtpuv_options_set_tls(f.o, SMTPUV_TLS_IMPLICIT);
    if (k == 0) {
      assert_int_equal(
          smtpuv_options_set_ca(f.o, "/nonexistent/smtpuv-test/ca.pem", NULL),
          0);
    } else {
      char name[255];
      memset(name, 'a', 254);
      name[254] = '\0';
      assert_int_equal(smtpuv_options_set_tls_server_name(f.o, name), 0);
    }
    make_client(&f);
    send_msg(&f, 0, one, 1);
    run_until(&f, 1);
    const smtpuv_send_result *r = f.out[0].r;
    assert_int_equal(r->status, SMTPUV_SEND_FAILED);
    assert_int_equal(r->phase, SMTPUV_PHASE_TLS);
    const char *want = k == 0 ? "TLS setup: cannot load CA file "
                                "/nonexistent/smtpuv-test/ca.pem"
                              : "TLS setup: host name too long";
    if (strncmp(r->message, want, strlen(want)) != 0)
      fail_msg("message \"%s\" does not start with \"%s\"", r->message, want);
    assert_int_equal(r->error, k == 0 ? SMTPUV_ETLS : SMTPUV_EINVAL);
    finish(&f);
  }
}

/* ---- failing allocations ------------------------------------------------------ */

static void test_failmalloc(void **state) {
  (void)state;
  int completed = 0;
  for (unsigned long n = 1; n < 400 && !completed; n++) {
    test_mem tm;
    test_mem_init(&tm, n);
    fixture f;
    setup_fixture(&f, "PIPELINING\r\n");
    smtpuv_options_free(f.o);
    if (smtpuv_options_new(&tm.mem, &f.o) != 0) {
      f.o = NULL;
      finish(&f);
      assert_int_equal(tm.live, 0);
      continue;
    }
    int ok = smtpuv_options_set_host(f.o, "127.0.0.1") == 0 &&
             smtpuv_options_set_port(f.o, (unsigned)f.srv.port) == 0 &&
             smtpuv_options_set_tls(f.o, SMTPUV_TLS_NONE) == 0 &&
             smtpuv_options_set_ehlo_name(f.o, "client.test") == 0;
    int sent = 0;
    if (ok && smtpuv_client_new(&f.loop, f.o, &f.c) == 0) {
      smtpuv_client_set_data(f.c, &f);
      const char *two[] = {"b@example.com", "c@example.com"};
      smtpuv_envelope e = env1(two, 2);
      smtpuv_body b;
      smtpuv_body_init_buffer(&b, msg, sizeof msg - 1);
      for (int i = 0; i < 2; i++)
        if (smtpuv_client_send(f.c, &e, &b, on_sent, (void *)(size_t)i) == 0)
          sent++;
      run_until(&f, sent);
      if (sent == 2 && !tm.failed && f.out[0].r->status == SMTPUV_SEND_SENT &&
          f.out[1].r->status == SMTPUV_SEND_SENT)
        completed = 1;
      smtpuv_client_close(f.c, on_closed);
      wait_closed(&f);
    }
    finish(&f);
    assert_int_equal(tm.live, 0); /* nothing leaked, whatever failed */
  }
  assert_true(completed);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pipelined_sequence),
      cmocka_unit_test(test_no_pipelining),
      cmocka_unit_test(test_rset_after_refusal),
      cmocka_unit_test(test_require_all),
      cmocka_unit_test(test_partial_recipients_sent),
      cmocka_unit_test(test_helo_fallback),
      cmocka_unit_test(test_local_refusals),
      cmocka_unit_test(test_reopen_after_idle_close),
      cmocka_unit_test(test_retry_on_reused_connection),
      cmocka_unit_test(test_unsolicited_421_then_reopen),
      cmocka_unit_test(test_idle_timeout_quits),
      cmocka_unit_test(test_close_from_callback),
      cmocka_unit_test(test_close_mid_data),
      cmocka_unit_test(test_close_while_connecting),
      cmocka_unit_test(test_close_idle_client),
      cmocka_unit_test(test_stream_waits),
      cmocka_unit_test(test_stream_error),
      cmocka_unit_test(test_trace_redacts_auth),
      cmocka_unit_test(test_async_oauth_token),
      cmocka_unit_test(test_callbacks_in_queue_order),
      cmocka_unit_test(test_reply_before_junk),
      cmocka_unit_test(test_size_counts_crlf),
      cmocka_unit_test(test_binarymime_only_when_offered),
      cmocka_unit_test(test_large_bodies),
      cmocka_unit_test(test_stream_to_fast_reader),
      cmocka_unit_test(test_many_recipients_long_reply),
      cmocka_unit_test(test_tls_setup_errors),
      cmocka_unit_test(test_failmalloc),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

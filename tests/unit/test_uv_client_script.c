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

static void test_reopen_after_idle_close(void **state) {
  (void)state;
  fixture f;
  setup_fixture(&f, "PIPELINING\r\n");
  f.srv.hook = close_after_message;
  make_client(&f);
  send_msg(&f, 0, one, 1);
  run_until(&f, 1);
  uv_timer_t t;
  uv_timer_init(&f.loop, &t);
  t.data = &f;
  uv_timer_start(&t, later_send, 100, 0);
  run_until(&f, 2);
  assert_int_equal(f.out[0].r->status, SMTPUV_SEND_SENT);
  assert_int_equal(f.out[1].r->status, SMTPUV_SEND_SENT);
  assert_int_equal(f.out[1].r->attempts, 1);
  assert_int_equal(f.srv.connections, 2);
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
  setup_fixture(&f, "PIPELINING\r\n");
  f.srv.hook = unsolicited_421;
  make_client(&f);
  send_msg(&f, 0, one, 1);
  run_until(&f, 1);
  uv_timer_t t;
  uv_timer_init(&f.loop, &t);
  t.data = &f;
  uv_timer_start(&t, later_send, 50, 0);
  run_until(&f, 2);
  assert_int_equal(f.out[0].r->status, SMTPUV_SEND_SENT);
  assert_int_equal(f.out[1].r->status, SMTPUV_SEND_SENT);
  assert_int_equal(f.srv.connections, 2);
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
  uv_timer_start(&t, close_now, 200, 0);
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

static void wake_body(uv_timer_t *t) {
  fixture *f = t->data;
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
  uv_timer_start(&t, wake_body, 100, 0);
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

static void test_stream_error(void **state) {
  (void)state;
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
  assert_int_equal(f.out[0].r->phase, SMTPUV_PHASE_DATA);
  /* DATA cannot be abandoned: the connection was dropped, the next message
     went on a new one */
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

static smtpuv_auth *token_auth;
static int token_asks;

static void token_cb(smtpuv_auth *auth, int rejected, void *data) {
  (void)rejected;
  (void)data;
  token_auth = auth; /* answered from a timer */
  token_asks++;
}

static void give_token(uv_timer_t *t) {
  fixture *f = t->data;
  assert_int_equal(f->done, 0);
  assert_int_equal(smtpuv_auth_token_provide(token_auth, "tok123"), 0);
  uv_close((uv_handle_t *)t, NULL);
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
  send_msg(&f, 0, one, 1);
  uv_timer_t t;
  uv_timer_init(&f.loop, &t);
  t.data = &f;
  uv_timer_start(&t, give_token, 100, 0);
  run_until(&f, 1);
  assert_int_equal(f.out[0].r->status, SMTPUV_SEND_SENT);
  assert_int_equal(token_asks, 1);
  /* "user=me@example.com\1auth=Bearer tok123\1\1" */
  assert_non_null(strstr(f.srv.transcript,
                         "C: AUTH XOAUTH2 dXNlcj1tZUBleGFtcGxlLmNvbQFhdXRoPUJl"
                         "YXJlciB0b2sxMjMBAQ==\n"));
  finish(&f);
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
      cmocka_unit_test(test_failmalloc),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/* The fault matrix: a scripted, misbehaving server (tests/servers/
 * fault_server.py) per scenario; each send must end in exactly one
 * callback with the right status, error and phase, timeouts must fire
 * within their bound, and the loop must end with every handle closed. */
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

/* Timeouts of the client under test; SMTPUV_TEST_TIME_SCALE multiplies
   them and the bounds (valgrind makes TLS handshakes slow). */
static double scale = 1;
#define CMD_MS (800 * scale)
#define FINAL_MS (1200 * scale)

typedef struct fault_case {
  const char *scenario;
  int implicit;        /* server and client in implicit TLS */
  smtpuv_tls_mode mode;
  int chunking;        /* client allows BDAT */
  int creds;           /* client authenticates */
  size_t body_size;    /* 0: a small message */
  smtpuv_send_status status;
  int error;
  smtpuv_phase phase;
  int reply_code;      /* expected, or 0 */
  double min_ms, max_ms; /* elapsed bounds at scale 1 (0: unchecked) */
  const char *message_has; /* substring of the result message, or NULL */
  const char *transcript_lacks; /* the server never saw this, or NULL */
  const char *transcript_has;   /* the server logged this, or NULL */
} fault_case;

static pid_t cur_pid; /* stopped by the teardown if a case fails */

typedef struct run {
  int callbacks;
  smtpuv_send_result *r;
  double t_end;
} run;

static void on_sent(smtpuv_client *c, const smtpuv_send_result *r,
                    void *data) {
  run *x = data;
  x->callbacks++;
  x->t_end = itest_now_ms();
  smtpuv_send_result_free(x->r);
  smtpuv_send_result_dup(NULL, r, &x->r);
  smtpuv_client_close(c, NULL);
}

/* Start fault_server.py with `scenario`; returns its port. */
static int start_server(const char *scenario, int implicit,
                        const char *transcript) {
  char log[400], line[200];
  static int seq;
  seq++;
  snprintf(log, sizeof log, "%s/fault-%d-%s.log", itest_workdir(), seq,
           scenario);
  char *argv[16];
  int a = 0;
  argv[a++] = "/usr/bin/python3";
  argv[a++] = (char *)itest_server_path("fault_server.py");
  argv[a++] = "--port";
  argv[a++] = "0";
  argv[a++] = "--scenario";
  argv[a++] = (char *)scenario;
  argv[a++] = "--pki";
  argv[a++] = (char *)itest_pki();
  argv[a++] = "--transcript";
  argv[a++] = (char *)transcript;
  argv[a++] = "--lifetime";
  argv[a++] = "60";
  if (implicit)
    argv[a++] = "--implicit";
  argv[a] = NULL;
  pid_t pid = itest_spawn(argv, log);
  assert_true(pid > 0);
  cur_pid = pid;
  assert_int_equal(itest_wait_ready(log, 15, line, sizeof line), 0);
  int port;
  assert_int_equal(sscanf(line, "READY %d", &port), 1);
  return port;
}

static void run_case(const fault_case *fc) {
  char transcript[400];
  snprintf(transcript, sizeof transcript, "%s/fault-%s-%d-%d.transcript",
           itest_workdir(), fc->scenario, fc->implicit, fc->chunking);
  int port = start_server(fc->scenario, fc->implicit, transcript);
  pid_t pid = cur_pid;

  smtpuv_options *o = itest_options(port, fc->mode);
  smtpuv_options_set_timeout(o, SMTPUV_TIMEOUT_CONNECT,
                             (unsigned)(2000 * scale));
  smtpuv_options_set_timeout(o, SMTPUV_TIMEOUT_COMMAND, (unsigned)CMD_MS);
  smtpuv_options_set_timeout(o, SMTPUV_TIMEOUT_DATA, (unsigned)CMD_MS);
  smtpuv_options_set_timeout(o, SMTPUV_TIMEOUT_FINAL, (unsigned)FINAL_MS);
  smtpuv_options_set_chunking(o, fc->chunking);
  if (fc->creds)
    smtpuv_options_set_credentials(o, "user", "secret", NULL);
  size_t len = fc->body_size ? fc->body_size : 40;
  char *body = malloc(len);
  for (size_t i = 0; i < len; i++)
    body[i] = i % 64 == 63 ? '\n' : 'x';
  ITEST_ONE_MESSAGE(env, b, "b@example.com", body, len);

  uv_loop_t loop;
  uv_loop_init(&loop);
  smtpuv_client *c;
  assert_int_equal(smtpuv_client_new(&loop, o, &c), 0);
  run x = {0, NULL, 0};
  double t0 = itest_now_ms();
  assert_int_equal(smtpuv_client_send(c, &env, &b, on_sent, &x), 0);
  assert_int_equal(x.callbacks, 0); /* never from inside send */
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0); /* every handle closed */
  /* the server logs a connection's end from its own thread: give it a
     moment before it is stopped */
  for (int i = 0; fc->transcript_has != NULL && i < 300; i++) {
    char *t = itest_read_file(transcript, NULL);
    int seen = t != NULL && strstr(t, fc->transcript_has) != NULL;
    free(t);
    if (seen)
      break;
    itest_sleep_ms(10);
  }
  itest_stop(pid);
  cur_pid = 0;

  assert_int_equal(x.callbacks, 1);
  const smtpuv_send_result *r = x.r;
  double ms = x.t_end - t0;
  if (getenv("SMTPUV_TEST_VERBOSE") != NULL)
    fprintf(stderr, "  %-20s imp %d chunk %d body %zu: %s %s %s after %.0f ms: %s\n",
            fc->scenario, fc->implicit, fc->chunking, fc->body_size,
            smtpuv_send_status_name(r->status), smtpuv_err_name(r->error),
            smtpuv_phase_name(r->phase), ms, r->message);
  if (r->status != fc->status || r->error != fc->error ||
      r->phase != fc->phase)
    fail_msg("%s (implicit %d, chunking %d): got %s %s %s (%s), want %s %s "
             "%s",
             fc->scenario, fc->implicit, fc->chunking,
             smtpuv_send_status_name(r->status), smtpuv_err_name(r->error),
             smtpuv_phase_name(r->phase), r->message,
             smtpuv_send_status_name(fc->status), smtpuv_err_name(fc->error),
             smtpuv_phase_name(fc->phase));
  if (fc->reply_code)
    assert_int_equal(r->reply_code, fc->reply_code);
  if (fc->min_ms > 0 && ms < fc->min_ms * scale)
    fail_msg("%s: ended after %.0f ms, before %.0f", fc->scenario, ms,
             fc->min_ms * scale);
  if (fc->max_ms > 0 && ms > fc->max_ms * scale)
    fail_msg("%s: ended after %.0f ms, after %.0f", fc->scenario, ms,
             fc->max_ms * scale);
  if (fc->message_has && strstr(r->message, fc->message_has) == NULL)
    fail_msg("%s: message \"%s\" lacks \"%s\"", fc->scenario, r->message,
             fc->message_has);
  assert_non_null(r->message);
  assert_true(r->message[0] != '\0');
  if (fc->transcript_lacks || fc->transcript_has) {
    char *t = itest_read_file(transcript, NULL);
    assert_non_null(t);
    if (fc->transcript_lacks && strstr(t, fc->transcript_lacks) != NULL)
      fail_msg("%s: the server saw \"%s\":\n%s", fc->scenario,
               fc->transcript_lacks, t);
    if (fc->transcript_has && strstr(t, fc->transcript_has) == NULL)
      fail_msg("%s: the server did not log \"%s\":\n%s", fc->scenario,
               fc->transcript_has, t);
    free(t);
  }
  smtpuv_send_result_free(x.r);
  smtpuv_options_free(o);
  free(body);
}

#define REQ SMTPUV_TLS_REQUIRED
#define OPP SMTPUV_TLS_OPPORTUNISTIC
#define IMP SMTPUV_TLS_IMPLICIT
#define FAILED SMTPUV_SEND_FAILED
#define UNKNOWN SMTPUV_SEND_UNKNOWN
#define SENT SMTPUV_SEND_SENT
#define BIG (4u << 20)
/* more than the loopback socket buffers of both ends hold when the server
   does not read (about 3 MB here; tcp_wmem allows 4 MB of send buffer),
   less than the fault server's SIZE (10485760) */
#define STALL (9u << 20)

static const fault_case cases[] = {
    /* scenario, implicit, mode, chunking, creds, body, status, error,
       phase, reply, min, max, message_has, transcript_lacks */
    {"normal", 0, REQ, 1, 1, 0, SENT, 0, SMTPUV_PHASE_END_OF_DATA, 250, 0,
     5000, NULL, NULL, NULL},
    {"normal", 1, IMP, 0, 1, 0, SENT, 0, SMTPUV_PHASE_END_OF_DATA, 250, 0,
     5000, NULL, NULL, NULL},
    {"refuse", 0, REQ, 1, 0, 0, FAILED, SMTPUV_ECONNECT,
     SMTPUV_PHASE_CONNECT, 0, 0, 1500, "refused", NULL, NULL},
    {"no_greeting", 0, REQ, 1, 0, 0, FAILED, SMTPUV_ETIMEDOUT,
     SMTPUV_PHASE_GREETING, 0, 750, 1800, "greeting", NULL, NULL},
    {"greeting_421", 0, REQ, 1, 0, 0, FAILED, SMTPUV_ESHUTDOWN,
     SMTPUV_PHASE_GREETING, 421, 0, 3000, "421", "C: QUIT", NULL},
    {"close_after_ehlo", 0, REQ, 1, 0, 0, FAILED, SMTPUV_ECONNLOST,
     SMTPUV_PHASE_EHLO, 0, 0, 3000, NULL, NULL, NULL},
    {"close_in_auth", 0, REQ, 1, 1, 0, FAILED, SMTPUV_ECONNLOST,
     SMTPUV_PHASE_AUTH, 0, 0, 3000, NULL, "C: MAIL", NULL},
    {"close_after_mail", 0, REQ, 0, 0, 0, FAILED, SMTPUV_ECONNLOST,
     SMTPUV_PHASE_MAIL, 0, 0, 3000, NULL, NULL, NULL},
    /* pipelined BDAT: the whole message was written before MAIL's reply */
    {"close_after_mail", 0, REQ, 1, 0, 0, UNKNOWN, SMTPUV_ECONNLOST,
     SMTPUV_PHASE_MAIL, 0, 0, 3000, "may or may not", NULL, NULL},
    {"close_mid_body", 0, REQ, 0, 0, BIG, FAILED, SMTPUV_ECONNLOST,
     SMTPUV_PHASE_DATA, 0, 0, 5000, NULL, NULL, NULL},
    {"close_mid_body", 0, REQ, 1, 0, BIG, FAILED, SMTPUV_ECONNLOST,
     SMTPUV_PHASE_DATA, 0, 0, 5000, NULL, NULL, NULL},
    {"close_after_dot", 0, REQ, 0, 0, 0, UNKNOWN, SMTPUV_ECONNLOST,
     SMTPUV_PHASE_END_OF_DATA, 0, 0, 3000, "may or may not", NULL, NULL},
    {"close_after_dot", 0, REQ, 1, 0, 0, UNKNOWN, SMTPUV_ECONNLOST,
     SMTPUV_PHASE_END_OF_DATA, 0, 0, 3000, "may or may not", NULL, NULL},
    {"close_after_dot", 1, IMP, 0, 0, BIG, UNKNOWN, SMTPUV_ECONNLOST,
     SMTPUV_PHASE_END_OF_DATA, 0, 0, 5000, "may or may not", NULL, NULL},
    {"silent_after_ehlo", 0, REQ, 1, 0, 0, FAILED, SMTPUV_ETIMEDOUT,
     SMTPUV_PHASE_EHLO, 0, 750, 1800, NULL, NULL, NULL},
    {"silent_after_mail", 0, REQ, 0, 0, 0, FAILED, SMTPUV_ETIMEDOUT,
     SMTPUV_PHASE_MAIL, 0, 750, 1800, NULL, NULL, NULL},
    {"silent_after_mail", 0, REQ, 1, 0, 0, UNKNOWN, SMTPUV_ETIMEDOUT,
     SMTPUV_PHASE_MAIL, 0, 1150, 2200, NULL, NULL, NULL},
    {"silent_after_data", 0, REQ, 0, 0, 0, FAILED, SMTPUV_ETIMEDOUT,
     SMTPUV_PHASE_DATA, 0, 750, 1800, NULL, NULL, NULL},
    {"silent_after_data", 0, REQ, 1, 0, 0, UNKNOWN, SMTPUV_ETIMEDOUT,
     SMTPUV_PHASE_END_OF_DATA, 0, 1150, 2200, NULL,
     NULL, NULL},
    {"silent_after_dot", 0, REQ, 0, 0, 0, UNKNOWN, SMTPUV_ETIMEDOUT,
     SMTPUV_PHASE_END_OF_DATA, 0, 1150, 2200, NULL,
     NULL, NULL},
    {"silent_after_dot", 1, IMP, 1, 0, 0, UNKNOWN, SMTPUV_ETIMEDOUT,
     SMTPUV_PHASE_END_OF_DATA, 0, 1150, 2200, NULL,
     NULL, NULL},
    {"garbage_reply", 0, REQ, 1, 0, 0, FAILED, SMTPUV_EPROTO,
     SMTPUV_PHASE_EHLO, 0, 0, 3000, "protocol error", NULL, NULL},
    {"starttls_injection", 0, REQ, 1, 1, 0, FAILED, SMTPUV_EINJECT,
     SMTPUV_PHASE_TLS, 0, 0, 3000, "injection", "C: AUTH", NULL},
    {"starttls_injection", 0, REQ, 1, 0, 0, FAILED, SMTPUV_EINJECT,
     SMTPUV_PHASE_TLS, 0, 0, 3000, "injection", "C: MAIL", NULL},
    {"starttls_refused", 0, REQ, 1, 1, 0, FAILED, SMTPUV_ENOTLS,
     SMTPUV_PHASE_TLS, 454, 0, 3000, "454", "C: AUTH", NULL},
    {"starttls_refused", 0, REQ, 1, 0, 0, FAILED, SMTPUV_ENOTLS,
     SMTPUV_PHASE_TLS, 454, 0, 3000, "454", "C: MAIL", NULL},
    /* opportunistic: goes on in plaintext, but never with credentials */
    {"starttls_refused", 0, OPP, 1, 0, 0, SENT, 0, SMTPUV_PHASE_END_OF_DATA,
     250, 0, 3000, NULL, NULL, NULL},
    {"starttls_refused", 0, OPP, 1, 1, 0, FAILED, SMTPUV_EPLAINTEXT,
     SMTPUV_PHASE_AUTH, 0, 0, 3000, NULL, "C: AUTH", NULL},
    {"tls_abort", 0, REQ, 1, 1, 0, FAILED, SMTPUV_ETLS, SMTPUV_PHASE_TLS, 0,
     0, 3000, "TLS", "C: AUTH", NULL},
    /* a refused certificate: the client's alert reaches the server before
       the close (Python logs "sslv3 alert bad certificate", "tlsv1 alert
       unknown ca"; a bare close shows as EOF) */
    {"wrong_host", 0, REQ, 1, 1, 0, FAILED, SMTPUV_ECERT, SMTPUV_PHASE_TLS,
     0, 0, 3000, "hostname mismatch", "C: AUTH", "alert bad certificate"},
    {"wrong_host", 1, IMP, 1, 1, 0, FAILED, SMTPUV_ECERT, SMTPUV_PHASE_TLS, 0,
     0, 3000, "hostname mismatch", "C: AUTH", "alert bad certificate"},
    {"untrusted_cert", 0, REQ, 1, 1, 0, FAILED, SMTPUV_ECERT,
     SMTPUV_PHASE_TLS, 0, 0, 3000, "verify", "C: AUTH", "alert unknown ca"},
    {"untrusted_cert", 1, IMP, 1, 0, 0, FAILED, SMTPUV_ECERT,
     SMTPUV_PHASE_TLS, 0, 0, 3000, "verify", "C: MAIL", "alert unknown ca"},
    /* the handshake is timed by the command timeout */
    {"silent_in_tls", 0, REQ, 1, 1, 0, FAILED, SMTPUV_ETIMEDOUT,
     SMTPUV_PHASE_TLS, 0, 750, 1800, NULL, "C: AUTH", "bytes of TLS handshake"},
    {"silent_in_tls", 1, IMP, 1, 0, 0, FAILED, SMTPUV_ETIMEDOUT,
     SMTPUV_PHASE_TLS, 0, 750, 1800, NULL, "C: EHLO", "bytes of TLS handshake"},
    {"silent_in_auth", 0, REQ, 1, 1, 0, FAILED, SMTPUV_ETIMEDOUT,
     SMTPUV_PHASE_AUTH, 0, 750, 1800, NULL, "C: MAIL", "C: AUTH PLAIN"},
    /* the server stops reading in the body: no write completes for the
       DATA timeout; the final dot (or BDAT LAST) was never written, so the
       message failed for sure */
    {"stall_mid_body", 0, REQ, 0, 0, STALL, FAILED, SMTPUV_ETIMEDOUT,
     SMTPUV_PHASE_DATA, 0, 750, 4000, NULL, NULL, "stalled"},
    {"stall_mid_body", 0, REQ, 1, 0, STALL, FAILED, SMTPUV_ETIMEDOUT,
     SMTPUV_PHASE_DATA, 0, 750, 4000, NULL, NULL, "stalled"},
    {"stall_mid_body", 1, IMP, 0, 0, STALL, FAILED, SMTPUV_ETIMEDOUT,
     SMTPUV_PHASE_DATA, 0, 750, 4000, NULL, NULL, "stalled"},
};

/* SMTPUV_FAULT_SCENARIO=name runs only that scenario's rows (e.g. under
   valgrind); SMTPUV_TEST_FILTER=pattern selects the test functions. */
static void test_fault_matrix(void **state) {
  (void)state;
  const char *only = getenv("SMTPUV_FAULT_SCENARIO");
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    if (only == NULL || strcmp(only, cases[i].scenario) == 0)
      run_case(&cases[i]);
}

/* After an error reply the client QUITs (RFC 5321 4.1.1.10): a refused
   STARTTLS in required mode ends with QUIT, not a bare close. */
static void test_quit_after_error(void **state) {
  (void)state;
  char tr[400];
  snprintf(tr, sizeof tr, "%s/fault-starttls_refused-0-1.transcript",
           itest_workdir());
  char *t = itest_read_file(tr, NULL);
  assert_non_null(t);
  assert_non_null(strstr(t, "C: QUIT"));
  free(t);
}

/* smtpuv_client_close() while the TLS handshake waits for the server
   (silent_in_tls: the ClientHello was read, nothing answers it). The
   message ends in exactly one callback, CANCELED, before the close
   callback; the close does not wait for the handshake timeout; the loop
   ends with every handle closed (and, under valgrind or LSan, nothing
   leaks). */
typedef struct midtls {
  uv_timer_t poll;
  smtpuv_client *c;
  const char *transcript;
  int callbacks, closes, order_ok, polls;
  smtpuv_send_result *r;
  double t_close, t_closed;
} midtls;

static void mt_on_sent(smtpuv_client *c, const smtpuv_send_result *r,
                       void *data) {
  midtls *m = data;
  (void)c;
  m->callbacks++;
  m->order_ok = m->closes == 0;
  smtpuv_send_result_free(m->r);
  smtpuv_send_result_dup(NULL, r, &m->r);
}

static void mt_on_closed(smtpuv_client *c) {
  midtls *m = smtpuv_client_get_data(c);
  m->closes++;
  m->t_closed = itest_now_ms();
}

/* Close the client once the server has logged the ClientHello. */
static void mt_poll(uv_timer_t *t) {
  midtls *m = t->data;
  char *tr = itest_read_file(m->transcript, NULL);
  int hello = tr != NULL && strstr(tr, "bytes of TLS handshake") != NULL;
  free(tr);
  if (!hello && ++m->polls < 500)
    return;
  uv_timer_stop(t);
  uv_close((uv_handle_t *)t, NULL);
  m->t_close = itest_now_ms();
  assert_int_equal(smtpuv_client_close(m->c, mt_on_closed), 0);
  assert_int_equal(m->callbacks, 0); /* not from inside close() */
}

static void close_mid_handshake(int implicit) {
  char transcript[400];
  snprintf(transcript, sizeof transcript, "%s/midtls-%d.transcript",
           itest_workdir(), implicit);
  int port = start_server("silent_in_tls", implicit, transcript);
  smtpuv_options *o =
      itest_options(port, implicit ? IMP : REQ);
  /* the handshake timeout must not be what ends it */
  smtpuv_options_set_timeout(o, SMTPUV_TIMEOUT_COMMAND,
                             (unsigned)(10000 * scale));
  smtpuv_options_set_credentials(o, "user", "secret", NULL);
  static const char msg[] = "Subject: x\r\n\r\nx\r\n";
  ITEST_ONE_MESSAGE(env, b, "b@example.com", msg, sizeof msg - 1);

  uv_loop_t loop;
  uv_loop_init(&loop);
  midtls m;
  memset(&m, 0, sizeof m);
  m.transcript = transcript;
  assert_int_equal(smtpuv_client_new(&loop, o, &m.c), 0);
  smtpuv_options_free(o);
  smtpuv_client_set_data(m.c, &m);
  assert_int_equal(smtpuv_client_send(m.c, &env, &b, mt_on_sent, &m), 0);
  uv_timer_init(&loop, &m.poll);
  m.poll.data = &m;
  uv_timer_start(&m.poll, mt_poll, 10, 10);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0); /* every handle closed */
  /* the socket really was closed: the server sees the end of the stream */
  int eof = 0;
  for (int i = 0; i < 300 && !eof; i++) {
    char *t = itest_read_file(transcript, NULL);
    eof = t != NULL && strstr(t, "close client closed") != NULL;
    free(t);
    if (!eof)
      itest_sleep_ms(10);
  }
  itest_stop(cur_pid);
  cur_pid = 0;
  assert_true(eof);

  if (getenv("SMTPUV_TEST_VERBOSE") != NULL && m.r != NULL)
    fprintf(stderr, "  close mid-handshake, implicit %d: %s %s %s, close cb "
            "%.0f ms after close(): %s\n", implicit,
            smtpuv_send_status_name(m.r->status), smtpuv_err_name(m.r->error),
            smtpuv_phase_name(m.r->phase), m.t_closed - m.t_close,
            m.r->message);
  assert_true(m.polls < 500); /* the server did see the ClientHello */
  assert_int_equal(m.callbacks, 1);
  assert_int_equal(m.closes, 1);
  assert_true(m.order_ok); /* the send callback ran before the close cb */
  /* no MAIL was written: "never started (canceled while queued)" */
  if (m.r->status != SMTPUV_SEND_CANCELED ||
      m.r->error != SMTPUV_ECANCELED || m.r->phase != SMTPUV_PHASE_NONE)
    fail_msg("implicit %d: got %s %s %s (%s), want CANCELED ECANCELED none",
             implicit, smtpuv_send_status_name(m.r->status),
             smtpuv_err_name(m.r->error), smtpuv_phase_name(m.r->phase),
             m.r->message);
  if (m.t_closed - m.t_close > 1000 * scale)
    fail_msg("close took %.0f ms", m.t_closed - m.t_close);
  char *t = itest_read_file(transcript, NULL);
  assert_non_null(t);
  assert_null(strstr(t, "C: AUTH"));
  free(t);
  smtpuv_send_result_free(m.r);
}

static void test_close_mid_handshake(void **state) {
  (void)state;
  close_mid_handshake(0);
  close_mid_handshake(1);
}

static int teardown(void **state) {
  (void)state;
  if (cur_pid > 0)
    itest_stop(cur_pid);
  itest_cleanup();
  return 0;
}

int main(void) {
  signal(SIGPIPE, SIG_IGN); /* as every libuv program must */
  if (getenv("SMTPUV_TEST_TIME_SCALE") != NULL)
    scale = atof(getenv("SMTPUV_TEST_TIME_SCALE"));
  if (scale < 1)
    scale = 1;
  if (getenv("SMTPUV_TEST_FILTER") != NULL)
    cmocka_set_test_filter(getenv("SMTPUV_TEST_FILTER"));
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fault_matrix),
      cmocka_unit_test(test_quit_after_error),
      cmocka_unit_test(test_close_mid_handshake),
  };
  return cmocka_run_group_tests(tests, NULL, teardown);
}

/* SPDX-License-Identifier: MIT */
/* The client against a real MTA: a private Postfix 3.7 instance with
 * Dovecot SASL (tests/servers/postfix_instance.sh). CHUNKING (BDAT) and
 * DATA, STARTTLS and implicit TLS, AUTH, SMTPUTF8, many pipelined
 * messages; each message is read back from the Maildir and compared byte
 * for byte (maildir_extract.py undoes the delivery headers and LF
 * endings). */
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

static char pf_dir[400], pf_log[400], pf_ca[500];
static int pf_port, pf_tls_port;

static int start_pf(void **state) {
  (void)state;
  char p1[16], p2[16];
  snprintf(pf_dir, sizeof pf_dir, "%s/postfix", itest_workdir());
  snprintf(pf_log, sizeof pf_log, "%s/postfix.log", itest_workdir());
  snprintf(pf_ca, sizeof pf_ca, "%s/pki/ca.crt", pf_dir);
  pf_port = itest_free_port();
  pf_tls_port = itest_free_port();
  snprintf(p1, sizeof p1, "%d", pf_port);
  snprintf(p2, sizeof p2, "%d", pf_tls_port);
  if (itest_run(pf_log, itest_server_path("postfix_instance.sh"), "start",
                pf_dir, p1, p2) != 0) {
    char *l = itest_read_file(pf_log, NULL);
    fprintf(stderr, "postfix_instance.sh start failed:\n%s\n", l ? l : "");
    free(l);
    return -1;
  }
  return 0;
}

static int stop_pf(void **state) {
  (void)state;
  itest_run(pf_log, itest_server_path("postfix_instance.sh"), "stop", pf_dir,
            NULL, NULL);
  itest_cleanup();
  return 0;
}

static smtpuv_options *pf_options(int implicit) {
  smtpuv_options *o =
      itest_options(implicit ? pf_tls_port : pf_port,
                    implicit ? SMTPUV_TLS_IMPLICIT : SMTPUV_TLS_REQUIRED);
  smtpuv_options_set_ca(o, pf_ca, NULL);
  smtpuv_options_set_credentials(o, "testuser@example.com", "testpass", NULL);
  return o;
}

/* The Maildir file delivered for `rcpt` (X-Original-To), extracted to the
   bytes the client sent; waits for delivery. */
static char *delivered(const char *rcpt, size_t *len) {
  char cmd[1600], out[600], found[600];
  snprintf(found, sizeof found, "%s/found", pf_dir);
  snprintf(out, sizeof out, "%s/extracted.eml", pf_dir);
  double end = itest_now_ms() + 20000;
  for (;;) {
    snprintf(cmd, sizeof cmd,
             "grep -l -x 'X-Original-To: %s' %s/mail/capture/new/* > %s "
             "2>/dev/null",
             rcpt, pf_dir, found);
    if (system(cmd) == 0)
      break;
    if (itest_now_ms() > end)
      fail_msg("no delivery for %s", rcpt);
    itest_sleep_ms(50);
  }
  char *name = itest_read_file(found, NULL);
  name[strcspn(name, "\n")] = '\0';
  snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s '%s' --raw-out %s >/dev/null",
           itest_server_path("maildir_extract.py"), name, out);
  free(name);
  assert_int_equal(system(cmd), 0);
  return itest_read_file(out, len);
}

/* The commands the client wrote (SMTPUV_TRACE_SEND records, bodies left
   out), for checking which of DATA and BDAT it used. */
typedef struct sent_log {
  char buf[8192];
  size_t len;
} sent_log;

static void on_trace(void *data, smtpuv_trace_kind kind, const char *bytes,
                     size_t len) {
  sent_log *l = data;
  if (kind != SMTPUV_TRACE_SEND || l->len + len + 1 > sizeof l->buf)
    return;
  memcpy(l->buf + l->len, bytes, len);
  l->len += len;
  l->buf[l->len] = '\0';
}

/* Postfix's maillog line for the delivery to `rcpt` and the smtpd session
   that received the message: copies the sasl_method of that message's
   "client=" line to `method` ("" when it had none) and that session's
   "disconnect" line (its command counts: "... bdat=1 quit=1 ...") to
   `disconnect`. Waits for the lines (Postfix logs asynchronously). */
static void maillog_lookup(const char *rcpt, char *method, size_t mlen,
                           char *disconnect, size_t dlen) {
  char p[500], to[200];
  snprintf(p, sizeof p, "%s/maillog", pf_dir);
  snprintf(to, sizeof to, ": to=<%s>", rcpt);
  double end = itest_now_ms() + 20000;
  for (;;) {
    char *log = itest_read_file(p, NULL);
    char *hit = log ? strstr(log, to) : NULL;
    if (hit != NULL) {
      /* queue id: the token before ": to=<" */
      char *q = hit;
      while (q > log && q[-1] != ' ')
        q--;
      char qid[64], client[80];
      snprintf(qid, sizeof qid, "%.*s", (int)(hit - q), q);
      snprintf(client, sizeof client, " %s: client=", qid);
      /* the last "QID: client=" line before the delivery */
      char *c = NULL;
      for (char *x = strstr(log, client); x != NULL && x < hit;
           x = strstr(x + 1, client))
        c = x;
      if (c != NULL) {
        char *eol = strchr(c, '\n');
        char *m = strstr(c, "sasl_method=");
        method[0] = '\0';
        if (m != NULL && (eol == NULL || m < eol))
          snprintf(method, mlen, "%.*s", (int)strcspn(m + 12, ", \n"),
                   m + 12);
        /* "postfix/smtpd[PID]:" of that line, then its disconnect */
        char *bol = c;
        while (bol > log && bol[-1] != '\n')
          bol--;
        char *sp = strstr(bol, "smtpd[");
        if (sp != NULL && sp < c) {
          char disc[80];
          snprintf(disc, sizeof disc, "%.*s: disconnect from",
                   (int)(strchr(sp, ']') + 1 - sp), sp);
          char *d = strstr(c, disc);
          if (d != NULL) {
            snprintf(disconnect, dlen, "%.*s", (int)strcspn(d, "\n"), d);
            free(log);
            return;
          }
        }
      }
    }
    free(log);
    if (itest_now_ms() > end)
      fail_msg("no complete maillog record for %s", rcpt);
    itest_sleep_ms(50);
  }
}

static char *awkward(size_t *len, const char *marker) {
  char head[300];
  int n = snprintf(head, sizeof head,
                   "From: a@example.com\r\nTo: b@example.com\r\nSubject: %s"
                   "\r\n\r\n.\r\n..two\r\n.leading dot\r\n"
                   "8bit \xc3\xa9\xc3\xa0\r\n   \r\ntrailing \r\n",
                   marker);
  char *b = malloc((size_t)n + 998 + 3);
  memcpy(b, head, (size_t)n);
  for (int i = 0; i < 998; i++) /* the longest line allowed (RFC 5322) */
    b[n + i] = (char)('a' + i % 26);
  memcpy(b + n + 998, "\r\n", 2);
  *len = (size_t)n + 1000;
  return b;
}

static void roundtrip(int implicit, int chunking, const char *rcpt) {
  smtpuv_options *o = pf_options(implicit);
  smtpuv_options_set_chunking(o, chunking);
  size_t len;
  char *body = awkward(&len, rcpt);
  const char *to[] = {rcpt};
  smtpuv_envelope env = SMTPUV_ENVELOPE_INIT;
  env.sender = "sender@example.com";
  env.recipients = to;
  env.nrecipients = 1;
  smtpuv_body b;
  smtpuv_body_init_buffer(&b, body, len);
  static sent_log sent;
  sent.len = 0;
  sent.buf[0] = '\0';
  smtpuv_options_set_trace(o, on_trace, &sent);
  smtpuv_send_result *r = NULL;
  int rc = smtpuv_send_sync(o, &env, &b, &r);
  if (rc != 0)
    fail_msg("%s: %s %s", rcpt, smtpuv_err_name(rc), r ? r->message : "");
  assert_non_null(r->tls);
  /* BDAT was (or was not) used: by what the client wrote ... */
  int bdat = strstr(sent.buf, "\r\nBDAT ") != NULL;
  int data = strstr(sent.buf, "\r\nDATA\r\n") != NULL;
  if (bdat != chunking || data == chunking)
    fail_msg("%s: chunking %d but the client wrote:\n%s", rcpt, chunking,
             sent.buf);
  /* ... and by what Postfix counted in that session */
  char method[64], disc[400];
  maillog_lookup(rcpt, method, sizeof method, disc, sizeof disc);
  if ((strstr(disc, " bdat=") != NULL) != chunking ||
      (strstr(disc, " data=") != NULL) == chunking)
    fail_msg("%s: chunking %d but Postfix logged: %s", rcpt, chunking, disc);
  assert_string_equal(r->reply_enhanced, "2.0.0");
  size_t n;
  char *got = delivered(rcpt, &n);
  assert_int_equal(n, len);
  assert_memory_equal(got, body, len);
  free(got);
  free(body);
  smtpuv_send_result_free(r);
  smtpuv_options_free(o);
}

static void test_bdat_starttls(void **state) {
  (void)state;
  roundtrip(0, 1, "bdat-starttls@example.com");
}

static void test_data_starttls(void **state) {
  (void)state;
  roundtrip(0, 0, "data-starttls@example.com");
}

static void test_bdat_implicit(void **state) {
  (void)state;
  roundtrip(1, 1, "bdat-implicit@example.com");
}

static void test_auth_in_maillog(void **state) {
  (void)state;
  const char *mechs[] = {"PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256"};
  for (int i = 0; i < 4; i++) {
    smtpuv_options *o = pf_options(i % 2);
    smtpuv_options_set_auth_mechanism(o, mechs[i]);
    char rcpt[100];
    snprintf(rcpt, sizeof rcpt, "auth-%d@example.com", i);
    const char *to[] = {rcpt};
    smtpuv_envelope env = SMTPUV_ENVELOPE_INIT;
    env.sender = "sender@example.com";
    env.recipients = to;
    env.nrecipients = 1;
    static const char msg[] = "Subject: auth\r\n\r\nauth\r\n";
    smtpuv_body b;
    smtpuv_body_init_buffer(&b, msg, sizeof msg - 1);
    smtpuv_send_result *r = NULL;
    int rc = smtpuv_send_sync(o, &env, &b, &r);
    if (rc != 0)
      fail_msg("%s: %s %s", mechs[i], smtpuv_err_name(rc),
               r ? r->message : "");
    smtpuv_send_result_free(r);
    smtpuv_options_free(o);
    size_t n;
    free(delivered(rcpt, &n));
    /* the message itself was received under that mechanism (other sends
       use "auto", which picks SCRAM-SHA-256 here: a bare search of the
       log would prove nothing) */
    char method[64], disc[400];
    maillog_lookup(rcpt, method, sizeof method, disc, sizeof disc);
    if (strcmp(method, mechs[i]) != 0)
      fail_msg("%s: Postfix logged sasl_method=%s", mechs[i], method);
  }
}

/* 200 messages pipelined on one connection, each to its own recipient. */
typedef struct k200 {
  int done, sent;
} k200;

static void k_cb(smtpuv_client *c, const smtpuv_send_result *r, void *d) {
  k200 *k = smtpuv_client_get_data(c);
  (void)d;
  k->done++;
  k->sent += r->status == SMTPUV_SEND_SENT;
}

static void test_many_pipelined(void **state) {
  (void)state;
  for (int chunking = 0; chunking < 2; chunking++) {
    smtpuv_options *o = pf_options(0);
    smtpuv_options_set_chunking(o, chunking);
    uv_loop_t loop;
    uv_loop_init(&loop);
    smtpuv_client *c;
    assert_int_equal(smtpuv_client_new(&loop, o, &c), 0);
    k200 k = {0, 0};
    smtpuv_client_set_data(c, &k);
    enum { N = 100 };
    static char rcpt[2][N][64];
    const char *to[2][N][1];
    char body[N][64];
    smtpuv_body b[N];
    smtpuv_envelope env[N];
    for (int i = 0; i < N; i++) {
      snprintf(rcpt[chunking][i], sizeof rcpt[0][0], "many-%d-%d@example.com",
               chunking, i);
      to[chunking][i][0] = rcpt[chunking][i];
      smtpuv_envelope z = SMTPUV_ENVELOPE_INIT;
      env[i] = z;
      env[i].sender = "sender@example.com";
      env[i].recipients = to[chunking][i];
      env[i].nrecipients = 1;
      int n = snprintf(body[i], sizeof body[i], "Subject: %d\r\n\r\nm%d\r\n",
                       i, i);
      smtpuv_body_init_buffer(&b[i], body[i], (size_t)n);
      assert_int_equal(smtpuv_client_send(c, &env[i], &b[i], k_cb, NULL), 0);
    }
    double t0 = itest_now_ms();
    while (k.done < N && itest_now_ms() - t0 < 60000)
      uv_run(&loop, UV_RUN_ONCE);
    smtpuv_client_close(c, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_int_equal(k.done, N);
    assert_int_equal(k.sent, N);
    for (int i = 0; i < N; i += 33) {
      size_t n;
      char *got = delivered(rcpt[chunking][i], &n);
      assert_int_equal(n, strlen(body[i]));
      assert_memory_equal(got, body[i], n);
      free(got);
    }
    smtpuv_options_free(o);
  }
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bdat_starttls),
      cmocka_unit_test(test_data_starttls),
      cmocka_unit_test(test_bdat_implicit),
      cmocka_unit_test(test_auth_in_maillog),
      cmocka_unit_test(test_many_pipelined),
  };
  return cmocka_run_group_tests(tests, start_pf, stop_pf);
}

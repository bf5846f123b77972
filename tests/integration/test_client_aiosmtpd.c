/* SPDX-License-Identifier: MIT */
/* The client against python3-aiosmtpd (tests/servers/aiosmtpd_server.py):
 * STARTTLS and implicit TLS, every AUTH mechanism, DATA and BDAT, and the
 * exact bytes and envelope the server stored for each message. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "itest.h"

static pid_t aio_pid;
static int aio_port, aio_tls_port;
static char aio_out[400];
static int aio_count; /* messages stored so far */

static int start_aio(void **state) {
  (void)state;
  char crt[400], key[400], log[400], line[200];
  snprintf(crt, sizeof crt, "%s/server.crt", itest_pki());
  snprintf(key, sizeof key, "%s/server.key", itest_pki());
  snprintf(aio_out, sizeof aio_out, "%s/aio", itest_workdir());
  snprintf(log, sizeof log, "%s/aio.log", itest_workdir());
  char *argv[] = {"/usr/bin/python3",
                  (char *)itest_server_path("aiosmtpd_server.py"),
                  "--port", "0", "--tls-port", "0", "--cert", crt, "--key", key,
                  "--outdir", aio_out, "--max-line", "100000", "--size",
                  "67108864", "--lifetime", "300", NULL};
  aio_pid = itest_spawn(argv, log);
  if (aio_pid < 0 || itest_wait_ready(log, 15, line, sizeof line) != 0)
    return -1;
  if (sscanf(line, "READY %d %d", &aio_port, &aio_tls_port) != 2)
    return -1;
  return 0;
}

static int stop_aio(void **state) {
  (void)state;
  itest_stop(aio_pid);
  itest_cleanup();
  return 0;
}

/* Remove blanks outside strings, so needles need not match the server's
   indentation. */
static void compact_json(char *json) {
  if (json == NULL)
    return;
  char *w = json;
  int in_str = 0;
  for (char *r = json; *r; r++) {
    if (in_str) {
      *w++ = *r;
      if (*r == '\\' && r[1])
        *w++ = *++r;
      else if (*r == '"')
        in_str = 0;
    } else if (*r == '"') {
      in_str = 1;
      *w++ = *r;
    } else if (*r != ' ' && *r != '\n' && *r != '\r' && *r != '\t') {
      *w++ = *r;
    }
  }
  *w = '\0';
}

/* The next stored message: its .eml and .json (waits for the .json). */
static void next_stored(char **eml, size_t *eml_len, char **json) {
  aio_count++;
  char p[500];
  snprintf(p, sizeof p, "%s/%06d.json", aio_out, aio_count);
  assert_int_equal(itest_wait_file(p, 20), 0);
  *json = itest_read_file(p, NULL);
  compact_json(*json);
  snprintf(p, sizeof p, "%s/%06d.eml", aio_out, aio_count);
  *eml = itest_read_file(p, eml_len);
  assert_non_null(*eml);
  assert_non_null(*json);
}

static void assert_json_has(const char *json, const char *needle) {
  if (strstr(json, needle) == NULL)
    fail_msg("%s not in %s", needle, json);
}

static smtpuv_send_result *send1(smtpuv_options *o, const smtpuv_envelope *e,
                                 const smtpuv_body *b) {
  smtpuv_send_result *r = NULL;
  smtpuv_send_sync(o, e, b, &r);
  assert_non_null(r);
  return r;
}

/* the awkward body and what DATA/BDAT must deliver */
static char *awkward(size_t *len, char **expect, size_t *elen) {
  static const char head[] =
      "From: a@example.com\r\nTo: b@example.com\r\nSubject: awkward\r\n\r\n"
      ".\r\n..two\r\n.leading dot\r\n8bit \xc3\xa9\xc3\xa0\r\n"
      "bare LF\nbare CR\rtrailing space \r\n   \r\n";
  static const char head_norm[] =
      "From: a@example.com\r\nTo: b@example.com\r\nSubject: awkward\r\n\r\n"
      ".\r\n..two\r\n.leading dot\r\n8bit \xc3\xa9\xc3\xa0\r\n"
      "bare LF\r\nbare CR\r\ntrailing space \r\n   \r\n";
  size_t hl = sizeof head - 1, nl = sizeof head_norm - 1;
  char *b = malloc(hl + 998 + 20);
  char *e = malloc(nl + 998 + 20);
  memcpy(b, head, hl);
  memcpy(e, head_norm, nl);
  for (int i = 0; i < 998; i++) /* the longest line allowed (RFC 5322) */
    b[hl + i] = e[nl + i] = (char)('a' + i % 26);
  memcpy(b + hl + 998, "\r\nlast line", 11); /* no final CRLF */
  memcpy(e + nl + 998, "\r\nlast line\r\n", 13);
  *len = hl + 998 + 11;
  *elen = nl + 998 + 13;
  *expect = e;
  return b;
}

static void exact_bytes(int chunking) {
  smtpuv_options *o = itest_options(aio_port, SMTPUV_TLS_REQUIRED);
  smtpuv_options_set_chunking(o, chunking);
  size_t len, elen;
  char *expect;
  char *body = awkward(&len, &expect, &elen);
  const char *to[] = {"b@example.com", "c@example.com"};
  smtpuv_envelope env = SMTPUV_ENVELOPE_INIT;
  env.sender = "a@example.com";
  env.recipients = to;
  env.nrecipients = 2;
  smtpuv_body b;
  smtpuv_body_init_buffer(&b, body, len);
  smtpuv_send_result *r = send1(o, &env, &b);
  assert_int_equal(r->status, SMTPUV_SEND_SENT);
  assert_int_equal(r->error, 0);
  assert_int_equal(r->naccepted, 2);
  assert_non_null(r->tls);
  char *eml, *json;
  size_t n;
  next_stored(&eml, &n, &json);
  assert_int_equal(n, elen);
  assert_memory_equal(eml, expect, elen);
  assert_json_has(json, chunking ? "\"via\":\"BDAT\"" : "\"via\":\"DATA\"");
  assert_json_has(json, "\"rcpt_tos\":[\"b@example.com\",\"c@example.com\"]");
  assert_json_has(json, "\"mail_from\":\"a@example.com\"");
  assert_json_has(json, "BODY=8BITMIME");
  assert_json_has(json, "\"tls\":true");
  assert_json_has(json, "\"helo\":\"client.test\"");
  free(eml);
  free(json);
  free(body);
  free(expect);
  smtpuv_send_result_free(r);
  smtpuv_options_free(o);
}

static void test_exact_bytes_data(void **state) {
  (void)state;
  exact_bytes(0);
}

static void test_exact_bytes_bdat(void **state) {
  (void)state;
  exact_bytes(1);
}

/* Every mechanism, STARTTLS and implicit TLS. */
static void test_auth_mechanisms(void **state) {
  (void)state;
  const char *mechs[] = {"auto",          "PLAIN",       "LOGIN",
                         "CRAM-MD5",      "SCRAM-SHA-1", "SCRAM-SHA-256",
                         "XOAUTH2",       "OAUTHBEARER"};
  const char *expect_mech[] = {"SCRAM-SHA-256", "PLAIN",       "LOGIN",
                               "CRAM-MD5",      "SCRAM-SHA-1", "SCRAM-SHA-256",
                               "XOAUTH2",       "OAUTHBEARER"};
  static const char msg[] = "Subject: auth\r\n\r\nhello\r\n";
  for (size_t i = 0; i < sizeof mechs / sizeof mechs[0]; i++) {
    int implicit = i % 2;
    smtpuv_options *o =
        itest_options(implicit ? aio_tls_port : aio_port,
                      implicit ? SMTPUV_TLS_IMPLICIT : SMTPUV_TLS_REQUIRED);
    smtpuv_auth_credentials cr = SMTPUV_AUTH_CREDENTIALS_INIT;
    cr.username = "testuser@example.com";
    int oauth = strstr(mechs[i], "OAUTH") != NULL;
    if (oauth)
      cr.token = "test-oauth-token";
    else
      cr.password = "testpass";
    assert_int_equal(smtpuv_options_set_auth_credentials(o, &cr), 0);
    assert_int_equal(smtpuv_options_set_auth_mechanism(o, mechs[i]), 0);
    ITEST_ONE_MESSAGE(env, b, "b@example.com", msg, sizeof msg - 1);
    smtpuv_send_result *r = send1(o, &env, &b);
    if (r->status != SMTPUV_SEND_SENT)
      fail_msg("%s: %s %s", mechs[i], smtpuv_err_name(r->error), r->message);
    char *eml, *json;
    size_t n;
    next_stored(&eml, &n, &json);
    char want[100];
    snprintf(want, sizeof want, "\"auth_mech\":\"%s\"", expect_mech[i]);
    assert_json_has(json, want);
    assert_json_has(json, "\"auth\":\"testuser@example.com\"");
    free(eml);
    free(json);
    smtpuv_send_result_free(r);
    smtpuv_options_free(o);
  }
}

static void test_auth_wrong_password(void **state) {
  (void)state;
  smtpuv_options *o = itest_options(aio_port, SMTPUV_TLS_REQUIRED);
  smtpuv_options_set_credentials(o, "testuser@example.com", "wrong", NULL);
  ITEST_ONE_MESSAGE(env, b, "b@example.com", "x\r\n", 3);
  smtpuv_send_result *r = send1(o, &env, &b);
  assert_int_equal(r->status, SMTPUV_SEND_FAILED);
  assert_int_equal(r->error, SMTPUV_EAUTH);
  assert_int_equal(r->phase, SMTPUV_PHASE_AUTH);
  assert_int_equal(r->reply_code, 535);
  smtpuv_send_result_free(r);
  smtpuv_options_free(o);
}

/* Per-recipient results; require_all refuses the message. */
static void test_recipients(void **state) {
  (void)state;
  const char *to[] = {"ok@example.com", "reject1@example.com",
                      "tempfail@example.com"};
  smtpuv_envelope env = SMTPUV_ENVELOPE_INIT;
  env.sender = "a@example.com";
  env.recipients = to;
  env.nrecipients = 3;
  static const char msg[] = "Subject: r\r\n\r\nbody\r\n";
  smtpuv_body b;
  smtpuv_body_init_buffer(&b, msg, sizeof msg - 1);
  for (int all = 0; all < 2; all++) {
    for (int pipe = 0; pipe < 2; pipe++) {
      smtpuv_options *o = itest_options(aio_port, SMTPUV_TLS_REQUIRED);
      smtpuv_options_set_require_all_recipients(o, all);
      smtpuv_options_set_pipelining(o, pipe);
      smtpuv_send_result *r = send1(o, &env, &b);
      assert_int_equal(r->nrecipients, 3);
      assert_int_equal(r->naccepted, 1);
      assert_int_equal(r->recipients[0].code, 250);
      assert_true(r->recipients[0].accepted);
      assert_int_equal(r->recipients[1].code, 550);
      assert_false(r->recipients[1].accepted);
      assert_string_equal(r->recipients[1].address, "reject1@example.com");
      assert_non_null(strstr(r->recipients[1].text, "recipient rejected"));
      assert_int_equal(r->recipients[2].code, 451);
      assert_int_equal(r->error, SMTPUV_ENORCPT);
      if (all) {
        assert_int_equal(r->status, SMTPUV_SEND_FAILED);
        assert_int_equal(r->phase, SMTPUV_PHASE_RCPT);
      } else {
        assert_int_equal(r->status, SMTPUV_SEND_SENT);
        char *eml, *json;
        size_t n;
        next_stored(&eml, &n, &json);
        assert_json_has(json, "\"rcpt_tos\":[\"ok@example.com\"]");
        free(eml);
        free(json);
      }
      smtpuv_send_result_free(r);
      smtpuv_options_free(o);
    }
  }
  /* nothing was stored for the require_all runs: the next message is #n+1 */
  smtpuv_options *o = itest_options(aio_port, SMTPUV_TLS_REQUIRED);
  env.nrecipients = 1;
  smtpuv_send_result *r = send1(o, &env, &b);
  assert_int_equal(r->status, SMTPUV_SEND_SENT);
  char *eml, *json;
  size_t n;
  next_stored(&eml, &n, &json);
  free(eml);
  free(json);
  smtpuv_send_result_free(r);
  smtpuv_options_free(o);
}

/* MAIL refused, end-of-data refused, all recipients refused, then a good
   message on the same connection (RSET in between). */
static void test_failures_then_success(void **state) {
  (void)state;
  smtpuv_options *o = itest_options(aio_port, SMTPUV_TLS_REQUIRED);
  uv_loop_t loop;
  uv_loop_init(&loop);
  smtpuv_client *c;
  assert_int_equal(smtpuv_client_new(&loop, o, &c), 0);
  smtpuv_send_result *res[4] = {0};
  const char *good[] = {"b@example.com"};
  const char *bad[] = {"reject@example.com", "reject2@example.com"};
  smtpuv_envelope e[4];
  for (int i = 0; i < 4; i++) {
    smtpuv_envelope z = SMTPUV_ENVELOPE_INIT;
    e[i] = z;
    e[i].sender = "a@example.com";
    e[i].recipients = good;
    e[i].nrecipients = 1;
  }
  e[0].sender = "reject@example.com";
  e[2].recipients = bad;
  e[2].nrecipients = 2;
  static const char ok[] = "Subject: ok\r\n\r\nok\r\n";
  static const char refused[] = "X-Test-Reply: 554 5.6.0 content refused\r\n"
                                "\r\nno\r\n";
  smtpuv_body b[4];
  smtpuv_body_init_buffer(&b[0], ok, sizeof ok - 1);
  smtpuv_body_init_buffer(&b[1], refused, sizeof refused - 1);
  smtpuv_body_init_buffer(&b[2], ok, sizeof ok - 1);
  smtpuv_body_init_buffer(&b[3], ok, sizeof ok - 1);
  int done = 0;
  smtpuv_client_set_data(c, &done);
  for (int i = 0; i < 4; i++)
    assert_int_equal(smtpuv_client_send(c, &e[i], &b[i],
                                        (smtpuv_send_cb)NULL, NULL),
                     0);
  (void)res;
  /* NULL callbacks: count with pending() instead */
  while (smtpuv_client_pending(c) > 0)
    uv_run(&loop, UV_RUN_ONCE);
  smtpuv_client_close(c, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
  /* stored: message 2 (the server stores it, then refuses it with 554) and
     message 4 */
  char *eml, *json;
  size_t n;
  next_stored(&eml, &n, &json);
  assert_json_has(json, "\"reply\":\"554 5.6.0 content refused\"");
  free(eml);
  free(json);
  next_stored(&eml, &n, &json);
  assert_memory_equal(eml, ok, sizeof ok - 1);
  free(eml);
  free(json);
  char p[500];
  snprintf(p, sizeof p, "%s/%06d.json", aio_out, aio_count + 1);
  assert_int_not_equal(itest_wait_file(p, 0.3), 0);
  smtpuv_options_free(o);
}

/* The same with callbacks: status, error, phase of each. */
typedef struct rec {
  int n;
  smtpuv_send_result *r[8];
} rec;

static void rec_cb(smtpuv_client *c, const smtpuv_send_result *r, void *d) {
  rec *x = smtpuv_client_get_data(c);
  smtpuv_send_result_dup(NULL, r, &x->r[(size_t)d]);
  x->n++;
}

static void test_failure_phases(void **state) {
  (void)state;
  for (int pipe = 0; pipe < 2; pipe++) {
    for (int chunk = 0; chunk < 2; chunk++) {
      smtpuv_options *o = itest_options(aio_port, SMTPUV_TLS_REQUIRED);
      smtpuv_options_set_pipelining(o, pipe);
      smtpuv_options_set_chunking(o, chunk);
      uv_loop_t loop;
      uv_loop_init(&loop);
      smtpuv_client *c;
      assert_int_equal(smtpuv_client_new(&loop, o, &c), 0);
      rec x = {0, {0}};
      smtpuv_client_set_data(c, &x);
      const char *good[] = {"b@example.com"};
      const char *bad[] = {"reject@example.com", "reject2@example.com"};
      smtpuv_envelope e = SMTPUV_ENVELOPE_INIT;
      e.sender = "reject@example.com";
      e.recipients = good;
      e.nrecipients = 1;
      static const char ok[] = "Subject: ok\r\n\r\nok\r\n";
      static const char refused[] =
          "X-Test-Reply: 554 5.6.0 content refused\r\n\r\nno\r\n";
      smtpuv_body bok, bref;
      smtpuv_body_init_buffer(&bok, ok, sizeof ok - 1);
      smtpuv_body_init_buffer(&bref, refused, sizeof refused - 1);
      assert_int_equal(smtpuv_client_send(c, &e, &bok, rec_cb, (void *)0), 0);
      e.sender = "a@example.com";
      assert_int_equal(smtpuv_client_send(c, &e, &bref, rec_cb, (void *)1),
                       0);
      e.recipients = bad;
      e.nrecipients = 2;
      assert_int_equal(smtpuv_client_send(c, &e, &bok, rec_cb, (void *)2), 0);
      e.recipients = good;
      e.nrecipients = 1;
      assert_int_equal(smtpuv_client_send(c, &e, &bok, rec_cb, (void *)3), 0);
      while (x.n < 4)
        uv_run(&loop, UV_RUN_ONCE);
      smtpuv_client_close(c, NULL);
      uv_run(&loop, UV_RUN_DEFAULT);
      assert_int_equal(uv_loop_close(&loop), 0);
      assert_int_equal(x.r[0]->status, SMTPUV_SEND_FAILED);
      assert_int_equal(x.r[0]->phase, SMTPUV_PHASE_MAIL);
      assert_int_equal(x.r[0]->error, SMTPUV_EPERMFAIL);
      assert_int_equal(x.r[0]->reply_code, 550);
      assert_int_equal(x.r[1]->status, SMTPUV_SEND_FAILED);
      assert_int_equal(x.r[1]->phase, SMTPUV_PHASE_END_OF_DATA);
      assert_int_equal(x.r[1]->error, SMTPUV_EPERMFAIL);
      assert_int_equal(x.r[1]->reply_code, 554);
      assert_int_equal(x.r[2]->status, SMTPUV_SEND_FAILED);
      assert_int_equal(x.r[2]->phase, SMTPUV_PHASE_RCPT);
      assert_int_equal(x.r[2]->error, SMTPUV_ENORCPT);
      assert_int_equal(x.r[2]->recipients[1].code, 550);
      if (x.r[3]->status != SMTPUV_SEND_SENT)
        fail_msg("pipe %d chunk %d: %s %s %s", pipe, chunk,
                 smtpuv_err_name(x.r[3]->error),
                 smtpuv_phase_name(x.r[3]->phase), x.r[3]->message);
      assert_int_equal(x.r[3]->attempts, 1);
      char *eml, *json;
      size_t n;
      next_stored(&eml, &n, &json); /* the refused one */
      assert_memory_equal(eml, refused, sizeof refused - 1);
      free(eml);
      free(json);
      next_stored(&eml, &n, &json);
      assert_memory_equal(eml, ok, sizeof ok - 1);
      assert_json_has(json, chunk ? "\"via\":\"BDAT\"" : "\"via\":\"DATA\"");
      free(eml);
      free(json);
      for (int i = 0; i < 4; i++)
        smtpuv_send_result_free(x.r[i]);
      smtpuv_options_free(o);
    }
  }
}

/* 20 MiB streamed (never in memory as a whole), by DATA and by BDAT. */
typedef struct gen {
  uint64_t total, pos;
  EVP_MD_CTX *sha; /* of the bytes as they must arrive */
  unsigned rewinds;
} gen;

static long gen_read(void *user, void *buf, size_t cap) {
  gen *g = user;
  size_t n = 0;
  char *out = buf;
  while (n < cap && g->pos < g->total) {
    uint64_t line = g->pos / 100, col = g->pos % 100;
    char ch;
    if (col == 98)
      ch = '\r';
    else if (col == 99)
      ch = '\n';
    else if (col == 0 && line % 7 == 0)
      ch = '.'; /* dot lines */
    else
      ch = (char)('A' + (line + col) % 26);
    out[n++] = ch;
    g->pos++;
  }
  EVP_DigestUpdate(g->sha, buf, n);
  return (long)n;
}

static int gen_rewind(void *user) {
  gen *g = user;
  g->pos = 0;
  g->rewinds++;
  EVP_DigestInit_ex(g->sha, EVP_sha256(), NULL);
  return 0;
}

static void big_body(int chunking) {
  smtpuv_options *o = itest_options(aio_port, SMTPUV_TLS_REQUIRED);
  smtpuv_options_set_chunking(o, chunking);
  gen g;
  memset(&g, 0, sizeof g);
  g.total = (20u << 20) - 20; /* whole 100-byte lines */
  g.sha = EVP_MD_CTX_new();
  EVP_DigestInit_ex(g.sha, EVP_sha256(), NULL);
  const char *to[] = {"big@example.com"};
  smtpuv_envelope env = SMTPUV_ENVELOPE_INIT;
  env.sender = "a@example.com";
  env.recipients = to;
  env.nrecipients = 1;
  smtpuv_body b;
  smtpuv_body_init_stream(&b, gen_read, gen_rewind, &g, g.total);
  smtpuv_send_result *r = send1(o, &env, &b);
  if (r->status != SMTPUV_SEND_SENT)
    fail_msg("%s %s", smtpuv_err_name(r->error), r->message);
  unsigned char want[32], got[32];
  EVP_DigestFinal_ex(g.sha, want, NULL);
  EVP_MD_CTX_free(g.sha);
  char *eml, *json;
  size_t n;
  next_stored(&eml, &n, &json);
  assert_int_equal(n, g.total);
  EVP_Digest(eml, n, got, NULL, EVP_sha256(), NULL);
  assert_memory_equal(want, got, 32);
  assert_json_has(json, chunking ? "\"via\":\"BDAT\"" : "\"via\":\"DATA\"");
  assert_json_has(json, "SIZE=20971500");
  free(eml);
  free(json);
  smtpuv_send_result_free(r);
  smtpuv_options_free(o);
}

static void test_big_body_data(void **state) {
  (void)state;
  big_body(0);
}

static void test_big_body_bdat(void **state) {
  (void)state;
  big_body(1);
}

/* Clients made from one options object share the SSL_CTX built from them:
   the CA file is read once, at the first TLS connection, so a client made
   after it was removed still verifies the server; setting the CA again
   starts a new context, whose build fails with the reason. */
typedef struct shared_run {
  int done;
  smtpuv_send_status st[2];
} shared_run;

static void shared_cb(smtpuv_client *c, const smtpuv_send_result *r,
                      void *data) {
  shared_run *x = data;
  x->st[x->done++] = r->status;
  smtpuv_client_close(c, NULL);
}

static void test_shared_ssl_ctx(void **state) {
  (void)state;
  char ca[400], copy[400];
  snprintf(ca, sizeof ca, "%s/ca.crt", itest_pki());
  snprintf(copy, sizeof copy, "%s/ca-shared.crt", itest_workdir());
  size_t n;
  char *pem = itest_read_file(ca, &n);
  assert_non_null(pem);
  FILE *f = fopen(copy, "w");
  assert_non_null(f);
  assert_int_equal(fwrite(pem, 1, n, f), n);
  fclose(f);
  free(pem);

  smtpuv_options *o = itest_options(aio_tls_port, SMTPUV_TLS_IMPLICIT);
  smtpuv_options_set_ca(o, copy, NULL);
  static const char msg[] = "Subject: shared\r\n\r\nshared\r\n";
  ITEST_ONE_MESSAGE(env, b, "b@example.com", msg, sizeof msg - 1);

  /* two clients on one loop, made before the context exists */
  uv_loop_t loop;
  uv_loop_init(&loop);
  smtpuv_client *c[2];
  shared_run x = {0, {0, 0}};
  for (int i = 0; i < 2; i++) {
    assert_int_equal(smtpuv_client_new(&loop, o, &c[i]), 0);
    assert_int_equal(smtpuv_client_send(c[i], &env, &b, shared_cb, &x), 0);
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
  assert_int_equal(x.done, 2);
  assert_int_equal(x.st[0], SMTPUV_SEND_SENT);
  assert_int_equal(x.st[1], SMTPUV_SEND_SENT);

  /* the file is gone: a new client of the same options does not read it */
  assert_int_equal(unlink(copy), 0);
  smtpuv_send_result *r = send1(o, &env, &b);
  assert_int_equal(r->status, SMTPUV_SEND_SENT);
  assert_non_null(r->tls);
  smtpuv_send_result_free(r);

  /* new trust anchors, a new context: the missing file is named */
  smtpuv_options_set_ca(o, copy, NULL);
  r = send1(o, &env, &b);
  assert_int_equal(r->status, SMTPUV_SEND_FAILED);
  assert_int_equal(r->error, SMTPUV_ETLS);
  assert_int_equal(r->phase, SMTPUV_PHASE_TLS);
  char want[500];
  snprintf(want, sizeof want, "cannot load CA file %s", copy);
  if (strstr(r->message, want) == NULL)
    fail_msg("\"%s\" lacks \"%s\"", r->message, want);
  smtpuv_send_result_free(r);
  smtpuv_options_free(o);

  for (int i = 0; i < 3; i++) { /* the three stored messages */
    char *eml, *json;
    next_stored(&eml, &n, &json);
    assert_json_has(json, "\"tls\":true");
    free(eml);
    free(json);
  }
}

/* TLS session resumption: two messages on two connections of one client
   (the first connection ends by the idle timeout); the second connection
   resumes the first's session (TLS 1.3 ticket from Python's ssl), as the
   result's TLS summary and the server's own record say. */
typedef struct resume_run {
  smtpuv_client *c;
  uv_timer_t poll;
  int connects, quits, done;
  uint64_t give_up; /* loop time: stop waiting for the QUIT */
  smtpuv_send_status st[2];
  char tls[2][512];
  const smtpuv_envelope *env;
  const smtpuv_body *body;
} resume_run;

static void resume_trace(void *data, smtpuv_trace_kind kind, const char *b,
                         size_t len) {
  resume_run *x = data;
  if (kind == SMTPUV_TRACE_INFO && len >= 12 && memcmp(b, "connected to", 12) == 0)
    x->connects++;
  if (kind == SMTPUV_TRACE_RECV && len >= 4 && memcmp(b, "221 ", 4) == 0)
    x->quits++;
}

static void resume_cb(smtpuv_client *c, const smtpuv_send_result *r,
                      void *data);

/* Poll (bounded) until the first connection said goodbye, then send the
   second message: it needs a new connection. */
static void resume_poll(uv_timer_t *t) {
  resume_run *x = t->data;
  if (x->quits == 0 && uv_now(t->loop) < x->give_up)
    return;
  uv_timer_stop(t);
  assert_int_equal(
      smtpuv_client_send(x->c, x->env, x->body, resume_cb, x), 0);
}

static void resume_cb(smtpuv_client *c, const smtpuv_send_result *r,
                      void *data) {
  resume_run *x = data;
  x->st[x->done] = r->status;
  snprintf(x->tls[x->done], sizeof x->tls[0], "%s", r->tls ? r->tls : "");
  if (++x->done == 1) {
    x->give_up = uv_now(x->poll.loop) + 10000;
    uv_timer_start(&x->poll, resume_poll, 5, 5);
  }
  else {
    uv_close((uv_handle_t *)&x->poll, NULL);
    smtpuv_client_close(c, NULL);
  }
}

static void tls_resumption(int enable) {
  resume_run x;
  memset(&x, 0, sizeof x);
  smtpuv_options *o = itest_options(aio_tls_port, SMTPUV_TLS_IMPLICIT);
  if (!enable) /* smtpuv_options_set_tls_resumption(o, 0): full handshakes */
    assert_int_equal(smtpuv_options_set_tls_resumption(o, 0), 0);
  smtpuv_options_set_timeout(o, SMTPUV_TIMEOUT_IDLE, 20);
  smtpuv_options_set_trace(o, resume_trace, &x);
  static const char msg[] = "Subject: resumed\r\n\r\nresumed\r\n";
  ITEST_ONE_MESSAGE(env, b, "b@example.com", msg, sizeof msg - 1);
  x.env = &env;
  x.body = &b;
  uv_loop_t loop;
  uv_loop_init(&loop);
  uv_timer_init(&loop, &x.poll);
  x.poll.data = &x;
  assert_int_equal(smtpuv_client_new(&loop, o, &x.c), 0);
  assert_int_equal(smtpuv_client_send(x.c, &env, &b, resume_cb, &x), 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
  smtpuv_options_free(o);
  assert_int_equal(x.done, 2);
  assert_int_equal(x.st[0], SMTPUV_SEND_SENT);
  assert_int_equal(x.st[1], SMTPUV_SEND_SENT);
  assert_int_equal(x.connects, 2);
  assert_ptr_equal(strstr(x.tls[0], "TLSv1.3 "), x.tls[0]);
  if (strstr(x.tls[0], "resumed") != NULL)
    fail_msg("first connection resumed? %s", x.tls[0]);
  size_t n2 = strlen(x.tls[1]);
  int resumed = n2 >= 9 && strcmp(x.tls[1] + n2 - 9, "; resumed") == 0;
  if (resumed != enable)
    fail_msg("second connection %sresumed: %s", resumed ? "" : "not ",
             x.tls[1]);
  const char *want[2] = {"\"tls_resumed\":false",
                         enable ? "\"tls_resumed\":true"
                                : "\"tls_resumed\":false"};
  for (int i = 0; i < 2; i++) {
    char *eml, *json;
    size_t n;
    next_stored(&eml, &n, &json);
    assert_int_equal(n, sizeof msg - 1);
    assert_memory_equal(eml, msg, n);
    assert_json_has(json, want[i]);
    free(eml);
    free(json);
  }
}

static void test_tls_resumption(void **state) {
  (void)state;
  tls_resumption(1);
  tls_resumption(0);
}

/* Envelope from headers; Bcc not transmitted; SMTPUTF8 addresses. */
static void test_send_message_headers(void **state) {
  (void)state;
  static const char msg[] =
      "From: Alice Example <alice@example.com>\r\n"
      "To: \"Bob, B.\" <bob@example.com>, carol@example.com (Carol)\r\n"
      "Cc: undisclosed:;, Dave <dave@example.com>\r\n"
      "Bcc: secret@example.com,\r\n"
      "  other-secret@example.com\r\n"
      "Subject: headers\r\n"
      "\r\n"
      "Bcc: in the body stays\r\n";
  static const char sent[] =
      "From: Alice Example <alice@example.com>\r\n"
      "To: \"Bob, B.\" <bob@example.com>, carol@example.com (Carol)\r\n"
      "Cc: undisclosed:;, Dave <dave@example.com>\r\n"
      "Subject: headers\r\n"
      "\r\n"
      "Bcc: in the body stays\r\n";
  smtpuv_options *o = itest_options(aio_port, SMTPUV_TLS_REQUIRED);
  smtpuv_send_result *r = NULL;
  int rc = smtpuv_send_message_sync(o, msg, sizeof msg - 1, &r);
  assert_int_equal(rc, 0);
  assert_int_equal(r->nrecipients, 5);
  char *eml, *json;
  size_t n;
  next_stored(&eml, &n, &json);
  assert_int_equal(n, sizeof sent - 1);
  assert_memory_equal(eml, sent, n);
  assert_json_has(json, "\"mail_from\":\"alice@example.com\"");
  assert_json_has(json,
                  "\"rcpt_tos\":[\"bob@example.com\",\"carol@example.com\","
                  "\"secret@example.com\",\"other-secret@example.com\","
                  "\"dave@example.com\"]");
  free(eml);
  free(json);
  smtpuv_send_result_free(r);

  static const char intl[] = "From: j\xc3\xb6rg@example.com\r\n"
                             "To: m\xc3\xbcller@b\xc3\xbc" "cher.example\r\n"
                             "Subject: utf8\r\n\r\nGr\xc3\xbc\xc3\x9f" "e\r\n";
  rc = smtpuv_send_message_sync(o, intl, sizeof intl - 1, &r);
  if (rc != 0)
    fail_msg("%s %s", smtpuv_err_name(rc), r ? r->message : "");
  next_stored(&eml, &n, &json);
  assert_memory_equal(eml, intl, sizeof intl - 1);
  assert_json_has(json, "\"smtputf8\":true");
  free(eml);
  free(json);
  smtpuv_send_result_free(r);
  smtpuv_options_free(o);
}

/* A server without STARTTLS: required TLS fails before MAIL; opportunistic
   sends in plaintext; AUTH over plaintext is refused locally. */
static void test_no_starttls(void **state) {
  (void)state;
  char log[400], line[200], out[400];
  snprintf(out, sizeof out, "%s/aio-nostarttls", itest_workdir());
  snprintf(log, sizeof log, "%s/aio-nostarttls.log", itest_workdir());
  char *argv[] = {"/usr/bin/python3",
                  (char *)itest_server_path("aiosmtpd_server.py"),
                  "--port", "0", "--outdir", out, "--lifetime", "60",
                  "--auth-without-tls", NULL};
  pid_t pid = itest_spawn(argv, log);
  assert_int_equal(itest_wait_ready(log, 15, line, sizeof line), 0);
  int port;
  assert_int_equal(sscanf(line, "READY %d", &port), 1);
  const char *to[] = {"b@example.com"};
  smtpuv_envelope env = SMTPUV_ENVELOPE_INIT;
  env.sender = "a@example.com";
  env.recipients = to;
  env.nrecipients = 1;
  static const char msg[] = "Subject: plain\r\n\r\nplain\r\n";
  smtpuv_body b;
  smtpuv_body_init_buffer(&b, msg, sizeof msg - 1);

  smtpuv_options *o = itest_options(port, SMTPUV_TLS_REQUIRED);
  smtpuv_send_result *r = send1(o, &env, &b);
  assert_int_equal(r->status, SMTPUV_SEND_FAILED);
  assert_int_equal(r->error, SMTPUV_ENOTLS);
  assert_int_equal(r->phase, SMTPUV_PHASE_TLS);
  smtpuv_send_result_free(r);
  smtpuv_options_free(o);

  o = itest_options(port, SMTPUV_TLS_OPPORTUNISTIC);
  smtpuv_options_set_credentials(o, "testuser@example.com", "testpass", NULL);
  r = send1(o, &env, &b);
  assert_int_equal(r->status, SMTPUV_SEND_FAILED);
  assert_int_equal(r->error, SMTPUV_EPLAINTEXT);
  assert_int_equal(r->phase, SMTPUV_PHASE_AUTH);
  smtpuv_send_result_free(r);
  smtpuv_options_set_allow_plaintext_auth(o, 1);
  r = send1(o, &env, &b);
  assert_int_equal(r->status, SMTPUV_SEND_SENT);
  assert_null(r->tls);
  smtpuv_send_result_free(r);
  smtpuv_options_free(o);

  char p[500];
  snprintf(p, sizeof p, "%s/000001.json", out);
  assert_int_equal(itest_wait_file(p, 10), 0);
  char *json = itest_read_file(p, NULL);
  compact_json(json);
  assert_json_has(json, "\"tls\":false");
  assert_json_has(json, "\"auth\":\"testuser@example.com\"");
  free(json);
  snprintf(p, sizeof p, "%s/000002.json", out);
  assert_int_not_equal(itest_wait_file(p, 0.2), 0);
  itest_stop(pid);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN); /* as every libuv program must */
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_exact_bytes_data),
      cmocka_unit_test(test_exact_bytes_bdat),
      cmocka_unit_test(test_auth_mechanisms),
      cmocka_unit_test(test_auth_wrong_password),
      cmocka_unit_test(test_recipients),
      cmocka_unit_test(test_failures_then_success),
      cmocka_unit_test(test_failure_phases),
      cmocka_unit_test(test_big_body_data),
      cmocka_unit_test(test_big_body_bdat),
      cmocka_unit_test(test_send_message_headers),
      cmocka_unit_test(test_no_starttls),
      cmocka_unit_test(test_tls_resumption),
      cmocka_unit_test(test_shared_ssl_ctx),
  };
  return cmocka_run_group_tests(tests, start_aio, stop_aio);
}

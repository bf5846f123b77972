/* SPDX-License-Identifier: MIT */
/* Secrets are wiped before their memory goes back: the authenticators and
 * the AUTH session run on a "sniffing" allocator that, whenever a block is
 * freed (or given up by realloc), scans it for the password, the token, and
 * every response the client sent (raw and base64). Any hit is a buffer that
 * was freed without OPENSSL_cleanse.
 *
 * The protocol core gets its own (plain) allocator: its output buffer is the
 * transport's business, not the authenticators'. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "auth/auth_int.h"
#include "auth/scram_int.h"
#include "smtpuv.h"
#include "support.h"

/* ---- the sniffing allocator ---------------------------------------------- */

#define MAX_NEEDLES 16
#define HDR 16 /* keeps the user block 16-aligned */

typedef struct sniff {
  smtpuv_mem mem;
  long live;
  char needles[MAX_NEEDLES][512];
  size_t nlen[MAX_NEEDLES];
  int n;
  int hits;
  char what[512]; /* first hit */
} sniff;

static void sniff_add(sniff *s, const void *p, size_t len) {
  if (len < 4 || len >= sizeof(s->needles[0]))
    return;
  assert_true(s->n < MAX_NEEDLES);
  memcpy(s->needles[s->n], p, len);
  s->nlen[s->n] = len;
  s->n++;
}

/* `p` and its base64 */
static void sniff_add_b64(sniff *s, const void *p, size_t len) {
  char *enc = NULL;
  sniff_add(s, p, len);
  assert_int_equal(smtpuv__b64_encode(smtpuv_mem_default(), p, len, &enc), 0);
  sniff_add(s, enc, strlen(enc));
  smtpuv__secret_free(smtpuv_mem_default(), enc);
}

static void sniff_scan(sniff *s, const unsigned char *p, size_t n) {
  for (int k = 0; k < s->n; k++) {
    size_t l = s->nlen[k];
    for (size_t i = 0; l <= n && i <= n - l; i++)
      if (memcmp(p + i, s->needles[k], l) == 0) {
        if (s->hits++ == 0)
          snprintf(s->what, sizeof(s->what), "%.*s", (int)l, s->needles[k]);
        break;
      }
  }
}

static void *s_malloc(size_t n, void *user) {
  sniff *s = user;
  unsigned char *p = malloc(HDR + (n ? n : 1));
  if (p == NULL)
    return NULL;
  memcpy(p, &n, sizeof(n));
  s->live++;
  return p + HDR;
}

static void *s_calloc(size_t k, size_t n, void *user) {
  if (n != 0 && k > SIZE_MAX / n)
    return NULL;
  void *p = s_malloc(k * n, user);
  if (p != NULL)
    memset(p, 0, k * n);
  return p;
}

static void s_free(void *ptr, void *user) {
  sniff *s = user;
  if (ptr == NULL)
    return;
  unsigned char *b = (unsigned char *)ptr - HDR;
  size_t n;
  memcpy(&n, b, sizeof(n));
  sniff_scan(s, ptr, n);
  s->live--;
  free(b);
}

/* realloc never moves in place here: the old block is scanned like a free */
static void *s_realloc(void *ptr, size_t n, void *user) {
  void *np = s_malloc(n, user);
  if (np == NULL)
    return NULL;
  if (ptr != NULL) {
    size_t old;
    memcpy(&old, (unsigned char *)ptr - HDR, sizeof(old));
    memcpy(np, ptr, old < n ? old : n);
    s_free(ptr, user);
  }
  return np;
}

static void sniff_init(sniff *s) {
  memset(s, 0, sizeof(*s));
  s->mem.user = s;
  s->mem.malloc = s_malloc;
  s->mem.calloc = s_calloc;
  s->mem.realloc = s_realloc;
  s->mem.free = s_free;
}

static void sniff_check(sniff *s) {
  if (s->hits != 0)
    fail_msg("%d freed block(s) still held a secret, first: \"%s\"", s->hits,
             s->what);
  assert_int_equal(s->live, 0);
}

/* ---- a session harness ------------------------------------------------------ */

typedef struct h {
  sniff sn;
  smtpuv_proto *p;
  smtpuv_auth *a;
  smtpuv_auth_session *s;
  int last;
  char out[8192];
} h;

static void pump(h *x) {
  smtpuv_reply r;
  int rc;
  while ((rc = smtpuv_proto_next_reply(x->p, &r)) == 1)
    if (r.command == SMTPUV_CMD_AUTH && x->s != NULL)
      x->last = smtpuv_auth_session_on_reply(x->s, &r);
  assert_int_equal(rc, 0);
}

static void feed(h *x, const char *bytes) {
  assert_int_equal(smtpuv_proto_feed(x->p, bytes, strlen(bytes)), 0);
  pump(x);
}

static const char *out(h *x) {
  size_t used = 0;
  const void *ptr;
  size_t len;
  for (;;) {
    smtpuv_proto_outgoing(x->p, &ptr, &len);
    if (len == 0)
      break;
    assert_true(used + len < sizeof(x->out));
    memcpy(x->out + used, ptr, len);
    used += len;
    smtpuv_proto_consumed(x->p, len);
  }
  x->out[used] = '\0';
  return x->out;
}

/* The base64 of every line the client sent since the last call: added as
   needles (an AUTH line's initial response, or a response line). */
static void sniff_out(h *x) {
  const char *o = out(x);
  while (*o != '\0') {
    const char *e = strstr(o, "\r\n");
    assert_non_null(e);
    const char *arg = o;
    if (strncmp(o, "AUTH ", 5) == 0) {
      const char *sp = memchr(o + 5, ' ', (size_t)(e - (o + 5)));
      arg = sp != NULL ? sp + 1 : e;
    }
    if (e - arg >= 8 && strncmp(arg, "*", 1) != 0)
      sniff_add(&x->sn, arg, (size_t)(e - arg));
    o = e + 2;
  }
}

static void h_open(h *x, const char *auth) {
  char ehlo[256];
  memset(x, 0, sizeof(*x));
  sniff_init(&x->sn);
  assert_int_equal(smtpuv_proto_new(NULL, &x->p), 0);
  feed(x, "220 mx ESMTP\r\n");
  assert_int_equal(smtpuv_proto_ehlo(x->p, "c.example"), 0);
  out(x);
  snprintf(ehlo, sizeof(ehlo), "250-mx\r\n250 AUTH %s\r\n", auth);
  feed(x, ehlo);
  assert_int_equal(smtpuv_proto_state(x->p), SMTPUV_STATE_READY);
}

static void h_start(h *x, int want) {
  assert_int_equal(
      smtpuv_auth_session_new(&x->sn.mem, x->p, x->a, NULL, NULL, &x->s), 0);
  assert_int_equal(smtpuv_auth_session_start(x->s), want);
  sniff_out(x);
}

static void h_close(h *x) {
  smtpuv_auth_session_free(x->s);
  smtpuv_auth_free(x->a);
  smtpuv_proto_free(x->p);
  sniff_check(&x->sn);
}

static void challenge(h *x, const char *raw, size_t len) {
  char *enc = NULL;
  char line[1024];
  assert_int_equal(smtpuv__b64_encode(smtpuv_mem_default(), raw, len, &enc),
                   0);
  snprintf(line, sizeof(line), "334 %s\r\n", enc);
  smtpuv__secret_free(smtpuv_mem_default(), enc);
  feed(x, line);
  sniff_out(x);
}

#define PASS "Sw0rdf1sh-Pa55"
#define TOKEN "ya29.T0k3n-S3cr3t-V4lue"

/* ---- scenarios ---------------------------------------------------------------- */

static void test_plain_login_cram(void **st) {
  (void)st;
  h x;
  /* PLAIN, success and failure */
  for (int ok = 0; ok < 2; ok++) {
    h_open(&x, "PLAIN");
    sniff_add_b64(&x.sn, PASS, strlen(PASS));
    assert_int_equal(smtpuv_auth_plain_new(&x.sn.mem, "boss", "user", PASS,
                                           &x.a),
                     0);
    h_start(&x, SMTPUV_AUTH_PENDING);
    feed(&x, ok ? "235 ok\r\n" : "535 no\r\n");
    assert_int_equal(x.last, ok ? 0 : SMTPUV_EAUTH);
    h_close(&x);
  }
  /* PLAIN deferred (long line): the response waits in the session */
  {
    char longpass[600];
    memset(longpass, 'q', sizeof(longpass) - 1);
    memcpy(longpass, PASS, strlen(PASS));
    longpass[sizeof(longpass) - 1] = '\0';
    for (int answered = 0; answered < 2; answered++) {
      h_open(&x, "PLAIN");
      sniff_add(&x.sn, PASS, strlen(PASS));
      assert_int_equal(
          smtpuv_auth_plain_new(&x.sn.mem, NULL, "user", longpass, &x.a), 0);
      h_start(&x, SMTPUV_AUTH_PENDING);
      assert_string_equal(x.out, "AUTH PLAIN\r\n");
      if (answered) {
        feed(&x, "334 \r\n");
        sniff_out(&x);
        feed(&x, "235 ok\r\n");
        assert_int_equal(x.last, 0);
      }
      h_close(&x); /* unanswered: the deferred response is freed here */
    }
  }
  /* LOGIN */
  h_open(&x, "LOGIN");
  sniff_add_b64(&x.sn, PASS, strlen(PASS));
  assert_int_equal(smtpuv_auth_login_new(&x.sn.mem, "user", PASS, &x.a), 0);
  h_start(&x, SMTPUV_AUTH_PENDING);
  challenge(&x, "Username:", 9);
  challenge(&x, "Password:", 9);
  feed(&x, "235 ok\r\n");
  assert_int_equal(x.last, 0);
  h_close(&x);
  /* CRAM-MD5 */
  h_open(&x, "CRAM-MD5");
  sniff_add(&x.sn, PASS, strlen(PASS));
  assert_int_equal(smtpuv_auth_cram_md5_new(&x.sn.mem, "user", PASS, &x.a),
                   0);
  h_start(&x, SMTPUV_AUTH_PENDING);
  challenge(&x, "<1.2@mx>", 8);
  /* the digest itself (hex) */
  const char *resp = x.out;
  assert_true(strlen(resp) > 4);
  {
    unsigned char *raw = NULL;
    size_t rlen = 0;
    assert_int_equal(smtpuv__b64_decode(smtpuv_mem_default(), resp,
                                        strlen(resp) - 2, &raw, &rlen),
                     0);
    assert_true(rlen == 5 + 32);
    sniff_add(&x.sn, raw + 5, 32);
    smtpuv__wipe_free(smtpuv_mem_default(), raw, rlen + 1);
  }
  feed(&x, "535 no\r\n");
  h_close(&x);
}

static const char kat_nonce[] = "rOprNGfwEbeRWgbNEkqO";
static const char kat_sfirst[] =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6"
    "gQ==,i=4096";
static const char kat_sfinal[] =
    "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

static void test_scram(void **st) {
  (void)st;
  /* 0: success, 1: wrong signature, 2: e=, 3: 535 after client-final,
     4: freed mid-exchange */
  for (int end = 0; end < 5; end++) {
    h x;
    h_open(&x, "SCRAM-SHA-256");
    sniff_add(&x.sn, "pencil", 6);
    assert_int_equal(smtpuv_auth_scram_sha256_new(&x.sn.mem, NULL, "user",
                                                  "pencil", &x.a),
                     0);
    assert_int_equal(smtpuv__scram_set_nonce(x.a, kat_nonce), 0);
    h_start(&x, SMTPUV_AUTH_PENDING);
    challenge(&x, kat_sfirst, strlen(kat_sfirst));
    /* the client-final (with the proof) as raw text too */
    sniff_add(&x.sn, "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", 46);
    if (end == 0) {
      challenge(&x, kat_sfinal, strlen(kat_sfinal));
      feed(&x, "235 ok\r\n");
      assert_int_equal(x.last, 0);
    } else if (end == 1) {
      challenge(&x, "v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=", 46);
      feed(&x, "501 cancelled\r\n");
      assert_int_equal(x.last, SMTPUV_EAUTHSERVER);
    } else if (end == 2) {
      challenge(&x, "e=invalid-proof", 15);
      feed(&x, "501 cancelled\r\n");
      assert_int_equal(x.last, SMTPUV_EAUTH);
    } else if (end == 3) {
      feed(&x, "535 no\r\n");
      assert_int_equal(x.last, SMTPUV_EAUTH);
    }
    h_close(&x);
  }
}

static void tok_cb(smtpuv_auth *a, int rejected, void *data) {
  (void)data;
  (void)rejected;
  assert_int_equal(smtpuv_auth_token_provide(a, TOKEN), 0);
}

static void test_oauth(void **st) {
  (void)st;
  static const char json[] = "{\"status\":\"401\"}";
  for (int k = 0; k < 2; k++) {
    h x;
    h_open(&x, k ? "OAUTHBEARER" : "XOAUTH2");
    sniff_add(&x.sn, TOKEN, strlen(TOKEN));
    if (k)
      assert_int_equal(smtpuv_auth_oauthbearer_new(&x.sn.mem, "u@example",
                                                   "mx", 587, tok_cb, NULL,
                                                   &x.a),
                       0);
    else
      assert_int_equal(
          smtpuv_auth_xoauth2_new(&x.sn.mem, "u@example", tok_cb, NULL, &x.a),
          0);
    /* a fixed token replaced by the callback's */
    assert_int_equal(smtpuv_auth_token_provide(x.a, TOKEN "-fixed"), 0);
    h_start(&x, SMTPUV_AUTH_PENDING);
    challenge(&x, json, strlen(json));
    feed(&x, "535 expired\r\n"); /* refresh: the token is replaced */
    sniff_out(&x);
    assert_int_equal(x.last, SMTPUV_AUTH_PENDING);
    feed(&x, "235 ok\r\n");
    assert_int_equal(x.last, 0);
    h_close(&x);
  }
}

static void test_auto(void **st) {
  (void)st;
  static const char *offers[] = {"SCRAM-SHA-256 PLAIN", "PLAIN", "LOGIN",
                                 "OAUTHBEARER PLAIN"};
  for (size_t i = 0; i < sizeof(offers) / sizeof(offers[0]); i++) {
    h x;
    smtpuv_auth_credentials c = SMTPUV_AUTH_CREDENTIALS_INIT;
    h_open(&x, offers[i]);
    sniff_add(&x.sn, PASS, strlen(PASS));
    sniff_add(&x.sn, TOKEN, strlen(TOKEN));
    c.username = "user";
    c.password = PASS;
    if (i == 3)
      c.token = TOKEN;
    assert_int_equal(smtpuv_auth_auto_new(&x.sn.mem, &c, &x.a), 0);
    h_start(&x, SMTPUV_AUTH_PENDING);
    feed(&x, "535 no\r\n");
    h_close(&x);
  }
}

/* An application mechanism whose responses grow: the response buffer is
   replaced, and the old one must be wiped. */
static int grow_step(smtpuv_auth *a, void *state, const unsigned char *c,
                     size_t n) {
  char buf[300];
  (void)state;
  (void)c;
  memset(buf, 'z', sizeof(buf));
  memcpy(buf, PASS, strlen(PASS));
  return smtpuv_auth_respond(a, buf, n < sizeof(buf) ? n : sizeof(buf));
}

static void test_custom_responses(void **st) {
  (void)st;
  h x;
  smtpuv_auth_ops ops = {sizeof(ops), "X-GROW", 0, NULL, grow_step, NULL,
                         NULL};
  h_open(&x, "X-GROW");
  sniff_add(&x.sn, PASS, strlen(PASS));
  assert_int_equal(smtpuv_auth_new(&x.sn.mem, &ops, NULL, &x.a), 0);
  h_start(&x, SMTPUV_AUTH_PENDING);
  challenge(&x, "0123456789abcdef", 16);
  challenge(&x, "0123456789abcdef0123456789abcdef0123456789abcdef", 48);
  feed(&x, "235 ok\r\n");
  h_close(&x);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_plain_login_cram),
      cmocka_unit_test(test_scram),
      cmocka_unit_test(test_oauth),
      cmocka_unit_test(test_auto),
      cmocka_unit_test(test_custom_responses),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

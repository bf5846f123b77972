/* SPDX-License-Identifier: MIT */
/* The authenticators at the mechanism level (raw bytes, no SMTP):
 * known-answer tests from RFC 4616 (PLAIN), RFC 2195 (CRAM-MD5), RFC 5802
 * (SCRAM-SHA-1), RFC 7677 (SCRAM-SHA-256), RFC 7628 (OAUTHBEARER) and the
 * XOAUTH2 format, then the failure paths, the strict base64, OAuth tokens,
 * application mechanisms, and fail-the-Nth-allocation runs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "auth/auth_int.h"
#include "auth/scram_int.h"
#include "smtpuv.h"
#include "support.h"

/* ---- helpers --------------------------------------------------------------- */

#define STR_AND_LEN(s) (const unsigned char *)(s), sizeof(s) - 1

static void assert_bytes(const unsigned char *got, size_t got_len,
                         const void *want, size_t want_len) {
  if (got_len != want_len || memcmp(got, want, want_len) != 0) {
    print_error("got %zu bytes \"%.*s\", want %zu bytes \"%.*s\"\n", got_len,
                (int)got_len, (const char *)got, want_len, (int)want_len,
                (const char *)want);
    fail();
  }
}

static void assert_b64(const unsigned char *data, size_t len,
                       const char *want) {
  char *b64 = NULL;
  assert_int_equal(smtpuv__b64_encode(smtpuv_mem_default(), data, len, &b64),
                   0);
  assert_string_equal(b64, want);
  smtpuv__secret_free(smtpuv_mem_default(), b64);
}

static void assert_no_secret(const char *text, const char *secret) {
  if (strstr(text, secret) != NULL) {
    print_error("secret \"%s\" leaked into \"%s\"\n", secret, text);
    fail();
  }
}

/* ---- PLAIN (RFC 4616 section 4 examples) ------------------------------------ */

static void test_plain_rfc4616(void **st) {
  (void)st;
  smtpuv_auth *a;
  const unsigned char *r;
  size_t n;
  /* "the client is sending the authcid tim with passwd tanstaaftanstaaf" */
  assert_int_equal(smtpuv_auth_plain_new(NULL, NULL, "tim", "tanstaaftanstaaf",
                                         &a),
                   0);
  assert_string_equal(smtpuv_auth_name(a), "PLAIN");
  assert_int_equal(smtpuv_auth_begin(a, 0, &r, &n), 0);
  assert_non_null(r);
  assert_bytes(r, n, "\0tim\0tanstaaftanstaaf", 21);
  assert_b64(r, n, "AHRpbQB0YW5zdGFhZnRhbnN0YWFm");
  smtpuv_auth_free(a);

  /* "the client is sending authzid Ursel, authcid Kurt, passwd xipj3plmq" */
  assert_int_equal(smtpuv_auth_plain_new(NULL, "Ursel", "Kurt", "xipj3plmq",
                                         &a),
                   0);
  assert_int_equal(smtpuv_auth_begin(a, 0, &r, &n), 0);
  assert_bytes(r, n, "Ursel\0Kurt\0xipj3plmq", 20);
  /* nothing else is expected from the server */
  assert_int_equal(smtpuv_auth_step(a, STR_AND_LEN("x"), &r, &n),
                   SMTPUV_EPROTO);
  assert_string_equal(smtpuv_auth_error_text(a),
                      "PLAIN: unexpected challenge from the server");
  smtpuv_auth_free(a);

  /* UTF-8 is passed through */
  assert_int_equal(smtpuv_auth_plain_new(NULL, NULL, "j\xc3\xb6rg",
                                         "p\xc3\xa4ss", &a),
                   0);
  assert_int_equal(smtpuv_auth_begin(a, 0, &r, &n), 0);
  assert_bytes(r, n, "\0j\xc3\xb6rg\0p\xc3\xa4ss", 12);
  smtpuv_auth_free(a);
}

static void test_plain_empty_and_null(void **st) {
  (void)st;
  smtpuv_auth *a;
  const unsigned char *r;
  size_t n;
  assert_int_equal(smtpuv_auth_plain_new(NULL, NULL, NULL, "x", &a),
                   SMTPUV_EINVAL);
  assert_int_equal(smtpuv_auth_plain_new(NULL, NULL, "u", "x", NULL),
                   SMTPUV_EINVAL);
  assert_int_equal(smtpuv_auth_plain_new(NULL, NULL, "tim", "", &a), 0);
  assert_int_equal(smtpuv_auth_begin(a, 0, &r, &n), SMTPUV_ECREDENTIALS);
  assert_string_equal(smtpuv_auth_error_text(a),
                      "PLAIN: the username and password must not be empty");
  smtpuv_auth_free(a);
}

/* ---- LOGIN ------------------------------------------------------------------ */

static void test_login(void **st) {
  (void)st;
  smtpuv_auth *a;
  const unsigned char *r;
  size_t n = 99;
  assert_int_equal(smtpuv_auth_login_new(NULL, "tim", "s3cret", &a), 0);
  assert_string_equal(smtpuv_auth_name(a), "LOGIN");
  assert_int_equal(smtpuv_auth_begin(a, 0, &r, &n), 0);
  assert_null(r); /* no initial response */
  assert_int_equal(n, 0);
  assert_int_equal(smtpuv_auth_step(a, STR_AND_LEN("Username:"), &r, &n), 0);
  assert_bytes(r, n, "tim", 3);
  assert_int_equal(smtpuv_auth_step(a, STR_AND_LEN("Password:"), &r, &n), 0);
  assert_bytes(r, n, "s3cret", 6);
  assert_int_equal(smtpuv_auth_step(a, STR_AND_LEN("What?"), &r, &n),
                   SMTPUV_EPROTO);
  assert_no_secret(smtpuv_auth_error_text(a), "s3cret");
  /* a new attempt starts over */
  assert_int_equal(smtpuv_auth_begin(a, 0, &r, &n), 0);
  assert_int_equal(smtpuv_auth_step(a, STR_AND_LEN("Username:"), &r, &n), 0);
  assert_bytes(r, n, "tim", 3);
  smtpuv_auth_free(a);
}

/* ---- CRAM-MD5 (RFC 2195 section 2 example) ---------------------------------- */

static void test_cram_md5_rfc2195(void **st) {
  (void)st;
  smtpuv_auth *a;
  const unsigned char *r;
  size_t n;
  assert_int_equal(smtpuv_auth_cram_md5_new(NULL, "tim", "tanstaaftanstaaf",
                                            &a),
                   0);
  assert_string_equal(smtpuv_auth_name(a), "CRAM-MD5");
  assert_int_equal(smtpuv_auth_begin(a, 0, &r, &n), 0);
  assert_null(r);
  assert_int_equal(
      smtpuv_auth_step(
          a, STR_AND_LEN("<1896.697170952@postoffice.reston.mci.net>"), &r,
          &n),
      0);
  assert_bytes(r, n, "tim b913a602c7eda7a495b4e6e7334d3890", 36);
  assert_b64(r, n, "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw");
  assert_int_equal(smtpuv_auth_step(a, STR_AND_LEN("again"), &r, &n),
                   SMTPUV_EPROTO);
  smtpuv_auth_free(a);

  assert_int_equal(smtpuv_auth_cram_md5_new(NULL, "t im", "x", &a), 0);
  assert_int_equal(smtpuv_auth_begin(a, 0, &r, &n), SMTPUV_ECREDENTIALS);
  smtpuv_auth_free(a);
}

/* ---- SCRAM (RFC 5802 section 5, RFC 7677 section 3) ------------------------- */

typedef struct scram_kat {
  int sha256;
  const char *nonce, *client_first, *server_first, *client_final,
      *server_final;
} scram_kat;

static const scram_kat kat_sha1 = {
    0, "fyko+d2lbbFgONRv9qkxdawL", "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
    "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
    "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+"
    "HI4Ts=",
    "v=rmF9pqV8S7suAoZWja4dJRkFsKQ="};

static const scram_kat kat_sha256 = {
    1, "rOprNGfwEbeRWgbNEkqO", "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6"
    "gQ==,i=4096",
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p="
    "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
    "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="};

static smtpuv_auth *scram_new(const smtpuv_mem *mem, const scram_kat *k,
                              const char *authzid, const char *user,
                              const char *pass) {
  smtpuv_auth *a = NULL;
  int r = k->sha256
              ? smtpuv_auth_scram_sha256_new(mem, authzid, user, pass, &a)
              : smtpuv_auth_scram_sha1_new(mem, authzid, user, pass, &a);
  assert_int_equal(r, 0);
  assert_int_equal(smtpuv__scram_set_nonce(a, k->nonce), 0);
  return a;
}

static void run_scram_kat(const scram_kat *k) {
  smtpuv_auth *a = scram_new(NULL, k, NULL, "user", "pencil");
  const unsigned char *r;
  size_t n;
  assert_string_equal(smtpuv_auth_name(a),
                      k->sha256 ? "SCRAM-SHA-256" : "SCRAM-SHA-1");
  assert_int_equal(smtpuv_auth_begin(a, 0, &r, &n), 0);
  assert_bytes(r, n, k->client_first, strlen(k->client_first));
  assert_int_equal(smtpuv_auth_step(a, (const unsigned char *)k->server_first,
                                    strlen(k->server_first), &r, &n),
                   0);
  assert_bytes(r, n, k->client_final, strlen(k->client_final));
  assert_int_equal(smtpuv_auth_step(a, (const unsigned char *)k->server_final,
                                    strlen(k->server_final), &r, &n),
                   0);
  assert_int_equal(n, 0); /* the empty response that lets the server say 235 */
  assert_int_equal(smtpuv_auth_success(a), 0);
  smtpuv_auth_free(a);
}

static void test_scram_sha1_rfc5802(void **st) {
  (void)st;
  run_scram_kat(&kat_sha1);
}

static void test_scram_sha256_rfc7677(void **st) {
  (void)st;
  run_scram_kat(&kat_sha256);
}

/* Run the KAT up to the server-final, then hand `server_final`. */
static int scram_final(const scram_kat *k, const char *server_final,
                       smtpuv_auth **out) {
  smtpuv_auth *a = scram_new(NULL, k, NULL, "user", "pencil");
  const unsigned char *r;
  size_t n;
  assert_int_equal(smtpuv_auth_begin(a, 0, &r, &n), 0);
  assert_int_equal(smtpuv_auth_step(a, (const unsigned char *)k->server_first,
                                    strlen(k->server_first), &r, &n),
                   0);
  *out = a;
  return smtpuv_auth_step(a, (const unsigned char *)server_final,
                          strlen(server_final), &r, &n);
}

static void test_scram_server_signature(void **st) {
  (void)st;
  smtpuv_auth *a;
  /* one bit flipped in the SHA-256 signature's first byte */
  assert_int_equal(
      scram_final(&kat_sha256, "v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
                  &a),
      SMTPUV_EAUTHSERVER);
  assert_string_equal(smtpuv_auth_error_text(a),
                      "SCRAM-SHA-256: server signature mismatch");
  assert_int_equal(smtpuv_auth_success(a), SMTPUV_EAUTHSERVER);
  smtpuv_auth_free(a);
  /* the SHA-1 signature given to SHA-256 (wrong length) */
  assert_int_equal(scram_final(&kat_sha256, kat_sha1.server_final, &a),
                   SMTPUV_EAUTHSERVER);
  smtpuv_auth_free(a);
  /* not base64 */
  assert_int_equal(scram_final(&kat_sha1, "v=rmF9pqV8S7su!oZWja4dJRkFsKQ=", &a),
                   SMTPUV_EAUTHSERVER);
  smtpuv_auth_free(a);
  /* server error */
  assert_int_equal(scram_final(&kat_sha1, "e=invalid-proof", &a),
                   SMTPUV_EAUTH);
  assert_string_equal(smtpuv_auth_error_text(a),
                      "SCRAM-SHA-1: server error: invalid-proof");
  smtpuv_auth_free(a);
  /* on one line (regression: the '\n' was kept) */
  assert_int_equal(scram_final(&kat_sha1, "e=other\nline", &a), SMTPUV_EAUTH);
  assert_string_equal(smtpuv_auth_error_text(a),
                      "SCRAM-SHA-1: server error: other?line");
  smtpuv_auth_free(a);
  /* neither */
  assert_int_equal(scram_final(&kat_sha1, "x=1", &a), SMTPUV_EPROTO);
  smtpuv_auth_free(a);
}

static void test_scram_success_without_proof(void **st) {
  (void)st;
  smtpuv_auth *a = scram_new(NULL, &kat_sha1, NULL, "user", "pencil");
  const unsigned char *r;
  size_t n;
  assert_int_equal(smtpuv_auth_begin(a, 0, &r, &n), 0);
  assert_int_equal(smtpuv_auth_success(a), SMTPUV_EAUTHSERVER);
  assert_int_equal(
      smtpuv_auth_step(a, (const unsigned char *)kat_sha1.server_first,
                       strlen(kat_sha1.server_first), &r, &n),
      0);
  assert_int_equal(smtpuv_auth_success(a), SMTPUV_EAUTHSERVER);
  assert_string_equal(smtpuv_auth_error_text(a),
                      "SCRAM-SHA-1: the server reported success without "
                      "proving that it knows the password");
  smtpuv_auth_free(a);
}

static int scram_first(const char *server_first, char *err, size_t errlen) {
  smtpuv_auth *a = scram_new(NULL, &kat_sha1, NULL, "user", "pencil");
  const unsigned char *r;
  size_t n;
  assert_int_equal(smtpuv_auth_begin(a, 0, &r, &n), 0);
  int rc = smtpuv_auth_step(a, (const unsigned char *)server_first,
                            strlen(server_first), &r, &n);
  snprintf(err, errlen, "%s", smtpuv_auth_error_text(a));
  assert_no_secret(err, "pencil");
  smtpuv_auth_free(a);
  return rc;
}

static void test_scram_bad_server_first(void **st) {
  (void)st;
  char err[256];
  static const struct {
    const char *msg, *err;
  } cases[] = {
      {"r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=0",
       "SCRAM-SHA-1: iteration count 0 outside 4096..1000000"},
      {"r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=1000001",
       "SCRAM-SHA-1: iteration count 1000001 outside 4096..1000000"},
      {"r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=99999999999",
       "SCRAM-SHA-1: malformed iteration count"},
      {"r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=4k",
       "SCRAM-SHA-1: malformed iteration count"},
      {"r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=",
       "SCRAM-SHA-1: malformed iteration count"},
      {"r=XXXX+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=4096",
       "SCRAM-SHA-1: the server nonce does not extend the client nonce"},
      {"r=fyko+d2lbbFgONRv9qkxdawL,s=QSXCR+Q6sek8bf92,i=4096",
       "SCRAM-SHA-1: the server nonce does not extend the client nonce"},
      {"r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf9,i=4096",
       "SCRAM-SHA-1: malformed salt"},
      {"r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=,i=4096",
       "SCRAM-SHA-1: malformed salt"},
      {"m=ext,r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=4096",
       "SCRAM-SHA-1: the server requires an unsupported mandatory extension"},
      {"s=QSXCR+Q6sek8bf92,r=fyko+d2lbbFgONRv9qkxdawL3rfc,i=4096",
       "SCRAM-SHA-1: malformed server-first-message"},
      {"r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92",
       "SCRAM-SHA-1: malformed server-first-message"},
      {"", "SCRAM-SHA-1: malformed server-first-message"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    assert_int_equal(scram_first(cases[i].msg, err, sizeof(err)),
                     SMTPUV_EPROTO);
    assert_string_equal(err, cases[i].err);
  }
  /* extensions after i= are allowed */
  assert_int_equal(
      scram_first("r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=4096,"
                  "x=y,Z=w=v",
                  err, sizeof(err)),
      0);
  /* NUL inside the message */
  smtpuv_auth *a = scram_new(NULL, &kat_sha1, NULL, "user", "pencil");
  const unsigned char *r;
  size_t n;
  assert_int_equal(smtpuv_auth_begin(a, 0, &r, &n), 0);
  assert_int_equal(smtpuv_auth_step(a, STR_AND_LEN("r=fyko\0x"), &r, &n),
                   SMTPUV_EPROTO);
  smtpuv_auth_free(a);
}

/* Regressions (review): a low iteration count (a MITM choosing i=1 gets a
   proof it can brute-force at one HMAC per guess), a server nonce with
   characters RFC 5802 forbids, and malformed extensions after i= were all
   accepted. */
static void test_scram_strict_server_first(void **st) {
  (void)st;
  char err[256];
  static const struct {
    const char *msg, *err;
  } cases[] = {
      {"r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=1",
       "SCRAM-SHA-1: iteration count 1 outside 4096..1000000"},
      {"r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=4095",
       "SCRAM-SHA-1: iteration count 4095 outside 4096..1000000"},
      {"r=fyko+d2lbbFgONRv9qkxdawL3r c,s=QSXCR+Q6sek8bf92,i=4096",
       "SCRAM-SHA-1: the server nonce does not extend the client nonce"},
      {"r=fyko+d2lbbFgONRv9qkxdawL3r\001c,s=QSXCR+Q6sek8bf92,i=4096",
       "SCRAM-SHA-1: the server nonce does not extend the client nonce"},
      {"r=fyko+d2lbbFgONRv9qkxdawL3r\xc3\xa9,s=QSXCR+Q6sek8bf92,i=4096",
       "SCRAM-SHA-1: the server nonce does not extend the client nonce"},
      {"r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=4096,",
       "SCRAM-SHA-1: malformed server-first-message"},
      {"r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=4096,x",
       "SCRAM-SHA-1: malformed server-first-message"},
      {"r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=4096,x=",
       "SCRAM-SHA-1: malformed server-first-message"},
      {"r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=4096,1=2",
       "SCRAM-SHA-1: malformed server-first-message"},
      {"r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=4096,x=y,",
       "SCRAM-SHA-1: malformed server-first-message"},
      {"r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=4096,,x=y",
       "SCRAM-SHA-1: malformed server-first-message"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    assert_int_equal(scram_first(cases[i].msg, err, sizeof(err)),
                     SMTPUV_EPROTO);
    assert_string_equal(err, cases[i].err);
  }
  /* the bounds themselves are accepted */
  assert_int_equal(
      scram_first("r=fyko+d2lbbFgONRv9qkxdawL3rfc,s=QSXCR+Q6sek8bf92,i=4096",
                  err, sizeof(err)),
      0);
}

static void test_scram_names_and_authzid(void **st) {
  (void)st;
  smtpuv_auth *a = scram_new(NULL, &kat_sha256, "ad,m=n", "u,s=er", "pencil");
  const unsigned char *r;
  size_t n;
  assert_int_equal(smtpuv_auth_begin(a, 0, &r, &n), 0);
  static const char want[] =
      "n,a=ad=2Cm=3Dn,n=u=2Cs=3Der,r=rOprNGfwEbeRWgbNEkqO";
  assert_bytes(r, n, want, sizeof(want) - 1);
  assert_int_equal(
      smtpuv_auth_step(a, STR_AND_LEN("r=rOprNGfwEbeRWgbNEkqOxyz,s=QSXCR+"
                                      "Q6sek8bf92,i=4096"),
                       &r, &n),
      0);
  /* c= carries the GS2 header "n,a=ad=2Cm=3Dn," */
  char *b64 = NULL;
  assert_int_equal(smtpuv__b64_encode(smtpuv_mem_default(),
                                      "n,a=ad=2Cm=3Dn,", 15, &b64),
                   0);
  char prefix[128];
  snprintf(prefix, sizeof(prefix), "c=%s,r=rOprNGfwEbeRWgbNEkqOxyz,p=", b64);
  smtpuv__secret_free(smtpuv_mem_default(), b64);
  assert_true(n > strlen(prefix));
  assert_memory_equal(r, prefix, strlen(prefix));
  smtpuv_auth_free(a);
}

static void test_scram_non_ascii_refused(void **st) {
  (void)st;
  smtpuv_auth *a;
  const unsigned char *r;
  size_t n;
  assert_int_equal(
      smtpuv_auth_scram_sha256_new(NULL, NULL, "j\xc3\xb6rg", "pencil", &a),
      0);
  assert_int_equal(smtpuv_auth_begin(a, 0, &r, &n), SMTPUV_ECREDENTIALS);
  assert_string_equal(
      smtpuv_auth_error_text(a),
      "SCRAM-SHA-256: the username, password and authorization id must be "
      "printable ASCII (SASLprep is not implemented; use PLAIN over TLS)");
  smtpuv_auth_free(a);
  assert_int_equal(
      smtpuv_auth_scram_sha1_new(NULL, NULL, "user", "p\xc3\xa4ss", &a), 0);
  assert_int_equal(smtpuv_auth_begin(a, 0, &r, &n), SMTPUV_ECREDENTIALS);
  smtpuv_auth_free(a);
  assert_int_equal(smtpuv_auth_scram_sha1_new(NULL, NULL, "user", "tab\t", &a),
                   0);
  assert_int_equal(smtpuv_auth_begin(a, 0, &r, &n), SMTPUV_ECREDENTIALS);
  smtpuv_auth_free(a);
}

static void test_scram_random_nonce(void **st) {
  (void)st;
  smtpuv_auth *a;
  const unsigned char *r;
  size_t n;
  char first[64];
  assert_int_equal(smtpuv_auth_scram_sha256_new(NULL, NULL, "user", "pencil",
                                                &a),
                   0);
  assert_int_equal(smtpuv_auth_begin(a, 0, &r, &n), 0);
  assert_int_equal(n, strlen("n,,n=user,r=") + 24);
  assert_memory_equal(r, "n,,n=user,r=", 12);
  memcpy(first, r, n);
  for (size_t i = 12; i < n; i++)
    assert_true(r[i] != ',' && r[i] > 0x20 && r[i] < 0x7f);
  assert_int_equal(smtpuv_auth_begin(a, 0, &r, &n), 0);
  assert_int_equal(n, 36);
  assert_memory_not_equal(r, first, n);
  smtpuv_auth_free(a);
  /* the hook only applies to SCRAM */
  assert_int_equal(smtpuv_auth_plain_new(NULL, NULL, "u", "p", &a), 0);
  assert_int_equal(smtpuv__scram_set_nonce(a, "abc"), SMTPUV_EINVAL);
  smtpuv_auth_free(a);
}

/* ---- OAuth: token source --------------------------------------------------- */

typedef struct token_src {
  int calls;
  int last_rejected;
  const char *answer; /* NULL: answer later */
  int fail;
} token_src;

static void token_cb(smtpuv_auth *a, int rejected, void *data) {
  token_src *t = data;
  t->calls++;
  t->last_rejected = rejected;
  if (t->fail)
    smtpuv_auth_token_fail(a, SMTPUV_EAUTH, "token endpoint said 400");
  else if (t->answer != NULL &&
           smtpuv_auth_token_provide(a, t->answer) != 0)
    smtpuv_auth_token_fail(a, SMTPUV_ENOMEM, "out of memory");
}

/* ---- XOAUTH2 ------------------------------------------------------------------ */

static void test_xoauth2_format(void **st) {
  (void)st;
  token_src t = {0, 0, "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg", 0};
  smtpuv_auth *a;
  const unsigned char *r;
  size_t n;
  assert_int_equal(
      smtpuv_auth_xoauth2_new(NULL, "someuser@example.com", token_cb, &t, &a),
      0);
  assert_string_equal(smtpuv_auth_name(a), "XOAUTH2");
  assert_int_equal(smtpuv_auth_begin(a, 0, &r, &n), 0);
  static const char want[] =
      "user=someuser@example.com\001auth=Bearer "
      "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg\001\001";
  assert_bytes(r, n, want, sizeof(want) - 1);
  assert_int_equal(t.calls, 1);
  assert_int_equal(t.last_rejected, 0);
  /* the token is kept for the next attempt */
  assert_int_equal(smtpuv_auth_begin(a, 0, &r, &n), 0);
  assert_bytes(r, n, want, sizeof(want) - 1);
  assert_int_equal(t.calls, 1);
  /* error challenge: empty response, JSON kept */
  static const char json[] =
      "{\"status\":\"401\",\"schemes\":\"bearer\",\"scope\":\"https://"
      "mail.google.com/\"}";
  assert_int_equal(smtpuv_auth_step(a, STR_AND_LEN(json), &r, &n), 0);
  assert_int_equal(n, 0);
  char want_err[256];
  snprintf(want_err, sizeof(want_err), "XOAUTH2: %s", json);
  assert_string_equal(smtpuv_auth_error_text(a), want_err);
  /* Regression: a pretty-printed JSON (or a hostile server) put line breaks
     into the error text, which could forge lines in the caller's log. */
  assert_int_equal(
      smtpuv_auth_step(a, STR_AND_LEN("{\n\"status\":\"401\"\r\n}"), &r, &n),
      0);
  assert_string_equal(smtpuv_auth_error_text(a),
                      "XOAUTH2: {?\"status\":\"401\"??}");
  /* retry: the callback is asked again with rejected = 1 */
  t.answer = "ya29.fresh";
  assert_int_equal(smtpuv_auth_begin(a, SMTPUV_AUTH_BEGIN_RETRY, &r, &n), 0);
  static const char want2[] =
      "user=someuser@example.com\001auth=Bearer ya29.fresh\001\001";
  assert_bytes(r, n, want2, sizeof(want2) - 1);
  assert_int_equal(t.calls, 2);
  assert_int_equal(t.last_rejected, 1);
  assert_string_equal(smtpuv_auth_error_text(a), "");
  smtpuv_auth_free(a);
}

static void test_xoauth2_fixed_token(void **st) {
  (void)st;
  smtpuv_auth *a;
  const unsigned char *r;
  size_t n;
  assert_int_equal(smtpuv_auth_xoauth2_new(NULL, "u@x", NULL, NULL, &a), 0);
  /* neither token nor callback */
  assert_int_equal(smtpuv_auth_begin(a, 0, &r, &n), SMTPUV_ECREDENTIALS);
  assert_string_equal(smtpuv_auth_error_text(a),
                      "XOAUTH2: no OAuth token and no token callback");
  assert_int_equal(smtpuv_auth_token_provide(a, "bad token"), SMTPUV_EINVAL);
  assert_int_equal(smtpuv_auth_token_provide(a, "tok\001"), SMTPUV_EINVAL);
  assert_int_equal(smtpuv_auth_token_provide(a, ""), SMTPUV_EINVAL);
  assert_int_equal(smtpuv_auth_token_provide(a, "T0K"), 0);
  assert_int_equal(smtpuv_auth_begin(a, 0, &r, &n), 0);
  assert_bytes(r, n, "user=u@x\001auth=Bearer T0K\001\001", 26);
  /* rejected, no callback to refresh it */
  assert_int_equal(smtpuv_auth_begin(a, SMTPUV_AUTH_BEGIN_RETRY, &r, &n),
                   SMTPUV_EAUTH);
  assert_no_secret(smtpuv_auth_error_text(a), "T0K");
  smtpuv_auth_free(a);

  /* username with a ^A would break the framing */
  assert_int_equal(smtpuv_auth_xoauth2_new(NULL, "u\001x", NULL, NULL, &a), 0);
  assert_int_equal(smtpuv_auth_token_provide(a, "T"), 0);
  assert_int_equal(smtpuv_auth_begin(a, 0, &r, &n), SMTPUV_ECREDENTIALS);
  smtpuv_auth_free(a);
  assert_int_equal(smtpuv_auth_xoauth2_new(NULL, NULL, NULL, NULL, &a),
                   SMTPUV_EINVAL);
}

/* ---- OAUTHBEARER (RFC 7628 section 4.1) -------------------------------------- */

static void test_oauthbearer_rfc7628(void **st) {
  (void)st;
  token_src t = {0, 0, "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==", 0};
  smtpuv_auth *a;
  const unsigned char *r;
  size_t n;
  assert_int_equal(smtpuv_auth_oauthbearer_new(NULL, "user@example.com",
                                               "server.example.com", 143,
                                               token_cb, &t, &a),
                   0);
  assert_string_equal(smtpuv_auth_name(a), "OAUTHBEARER");
  assert_int_equal(smtpuv_auth_begin(a, 0, &r, &n), 0);
  static const char want[] =
      "n,a=user@example.com,\001host=server.example.com\001port=143\001auth="
      "Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\001\001";
  assert_bytes(r, n, want, sizeof(want) - 1);
  /* RFC 7628 3.2.2 error, answered with a lone ^A (3.2.3) */
  static const char json[] =
      "{\"status\":\"invalid_token\",\"scope\":\"example_scope\","
      "\"openid-configuration\":\"https://example.com/.well-known/"
      "openid-configuration\"}";
  assert_int_equal(smtpuv_auth_step(a, STR_AND_LEN(json), &r, &n), 0);
  assert_bytes(r, n, "\001", 1);
  assert_b64(r, n, "AQ==");
  char want_err[256];
  snprintf(want_err, sizeof(want_err), "OAUTHBEARER: %s", json);
  assert_string_equal(smtpuv_auth_error_text(a), want_err);
  smtpuv_auth_free(a);

  /* no authzid, host or port; saslname escaping */
  t.answer = "abc-._~+/=";
  assert_int_equal(
      smtpuv_auth_oauthbearer_new(NULL, NULL, NULL, 0, token_cb, &t, &a), 0);
  assert_int_equal(smtpuv_auth_begin(a, 0, &r, &n), 0);
  static const char want2[] = "n,,\001auth=Bearer abc-._~+/=\001\001";
  assert_bytes(r, n, want2, sizeof(want2) - 1);
  smtpuv_auth_free(a);
  assert_int_equal(
      smtpuv_auth_oauthbearer_new(NULL, "a,b=c", NULL, 587, token_cb, &t, &a),
      0);
  assert_int_equal(smtpuv_auth_begin(a, 0, &r, &n), 0);
  static const char want3[] =
      "n,a=a=2Cb=3Dc,\001port=587\001auth=Bearer abc-._~+/=\001\001";
  assert_bytes(r, n, want3, sizeof(want3) - 1);
  smtpuv_auth_free(a);

  /* not a b64token */
  t.answer = "abc=def";
  assert_int_equal(
      smtpuv_auth_oauthbearer_new(NULL, NULL, NULL, 0, token_cb, &t, &a), 0);
  assert_int_equal(smtpuv_auth_begin(a, 0, &r, &n), SMTPUV_ECREDENTIALS);
  assert_string_equal(smtpuv_auth_error_text(a),
                      "OAUTHBEARER: the token is not an RFC 6750 b64token");
  smtpuv_auth_free(a);
}

/* ---- async tokens at the mechanism level ------------------------------------- */

static void test_token_async_and_fail(void **st) {
  (void)st;
  token_src t = {0, 0, NULL, 0};
  smtpuv_auth *a;
  const unsigned char *r;
  size_t n;
  assert_int_equal(
      smtpuv_auth_oauthbearer_new(NULL, "u@x", NULL, 0, token_cb, &t, &a), 0);
  assert_int_equal(smtpuv_auth_begin(a, 0, &r, &n), SMTPUV_EAGAIN);
  assert_int_equal(t.calls, 1);
  /* asking again does not call the callback again */
  assert_int_equal(smtpuv_auth_begin(a, 0, &r, &n), SMTPUV_EAGAIN);
  assert_int_equal(t.calls, 1);
  assert_int_equal(smtpuv_auth_token_provide(a, "later"), 0);
  assert_int_equal(smtpuv_auth_begin(a, 0, &r, &n), 0);
  static const char want[] = "n,a=u@x,\001auth=Bearer later\001\001";
  assert_bytes(r, n, want, sizeof(want) - 1);

  /* retry: fresh token asked with rejected = 1, and it fails */
  t.fail = 1;
  assert_int_equal(smtpuv_auth_begin(a, SMTPUV_AUTH_BEGIN_RETRY, &r, &n),
                   SMTPUV_EAUTH);
  assert_int_equal(t.calls, 2);
  assert_int_equal(t.last_rejected, 1);
  assert_string_equal(smtpuv_auth_error_text(a),
                      "OAuth token: token endpoint said 400");
  /* a later attempt asks again */
  t.fail = 0;
  t.answer = "again";
  assert_int_equal(smtpuv_auth_begin(a, 0, &r, &n), 0);
  assert_int_equal(t.calls, 3);
  assert_int_equal(t.last_rejected, 1);
  smtpuv_auth_free(a);

  /* failure reported later, with a code of our choosing */
  t.answer = NULL;
  t.calls = 0;
  assert_int_equal(smtpuv_auth_xoauth2_new(NULL, "u", token_cb, &t, &a), 0);
  assert_int_equal(smtpuv_auth_begin(a, 0, &r, &n), SMTPUV_EAGAIN);
  assert_int_equal(smtpuv_auth_token_fail(a, SMTPUV_ETIMEDOUT, NULL), 0);
  assert_int_equal(smtpuv_auth_begin(a, 0, &r, &n), SMTPUV_ETIMEDOUT);
  assert_string_equal(smtpuv_auth_error_text(a),
                      "OAuth token: the token source failed");
  smtpuv_auth_free(a);
  assert_int_equal(smtpuv_auth_token_provide(NULL, "x"), SMTPUV_EINVAL);
  assert_int_equal(smtpuv_auth_token_fail(NULL, 0, NULL), SMTPUV_EINVAL);
}

/* ---- application mechanisms ------------------------------------------------- */

typedef struct custom {
  int begins, steps, successes, destroyed;
  int async;
} custom;

static int c_begin(smtpuv_auth *a, void *state, unsigned flags) {
  custom *c = state;
  (void)flags;
  c->begins++;
  if (c->async && c->begins == 1)
    return SMTPUV_EAGAIN;
  return smtpuv_auth_respond(a, "hello", 5);
}

static int c_step(smtpuv_auth *a, void *state, const unsigned char *chal,
                  size_t len) {
  custom *c = state;
  c->steps++;
  if (len == 4 && memcmp(chal, "fail", 4) == 0) {
    smtpuv_auth_set_error(a, "X-CUSTOM: told to fail");
    return SMTPUV_EAUTH;
  }
  if (len == 5 && memcmp(chal, "empty", 5) == 0)
    return 0; /* no respond(): empty response */
  if (len == 4 && memcmp(chal, "huge", 4) == 0) {
    /* Regression: len + 1 wrapped to 0, so the buffer was "big enough"
       and memcpy ran off with SIZE_MAX bytes. */
    assert_int_equal(smtpuv_auth_respond(a, chal, SIZE_MAX),
                     SMTPUV_EINVAL);
    assert_int_equal(smtpuv_auth_respond(a, chal, (size_t)INT_MAX),
                     SMTPUV_EINVAL);
    return smtpuv_auth_respond(a, "ok", 2);
  }
  return smtpuv_auth_respond(a, chal, len);
}

static int c_success(smtpuv_auth *a, void *state) {
  (void)a;
  ((custom *)state)->successes++;
  return 0;
}

static void c_destroy(smtpuv_auth *a, void *state) {
  (void)a;
  ((custom *)state)->destroyed++;
}

static void test_custom_mechanism(void **st) {
  (void)st;
  custom c = {0, 0, 0, 0, 1};
  smtpuv_auth_ops ops = {sizeof(ops), "X-CUSTOM_1", 0,         c_begin,
                         c_step,      c_success,    c_destroy};
  smtpuv_auth *a;
  const unsigned char *r;
  size_t n;
  assert_int_equal(smtpuv_auth_new(NULL, &ops, &c, &a), 0);
  assert_string_equal(smtpuv_auth_name(a), "X-CUSTOM_1");
  assert_int_equal(smtpuv_auth_begin(a, 0, &r, &n), SMTPUV_EAGAIN);
  assert_int_equal(smtpuv_auth_begin(a, 0, &r, &n), 0);
  assert_bytes(r, n, "hello", 5);
  assert_int_equal(smtpuv_auth_step(a, STR_AND_LEN("echo"), &r, &n), 0);
  assert_bytes(r, n, "echo", 4);
  assert_int_equal(smtpuv_auth_step(a, STR_AND_LEN("huge"), &r, &n), 0);
  assert_bytes(r, n, "ok", 2);
  assert_int_equal(smtpuv_auth_step(a, STR_AND_LEN("empty"), &r, &n), 0);
  assert_non_null(r);
  assert_int_equal(n, 0);
  assert_int_equal(smtpuv_auth_step(a, STR_AND_LEN("fail"), &r, &n),
                   SMTPUV_EAUTH);
  assert_string_equal(smtpuv_auth_error_text(a), "X-CUSTOM: told to fail");
  assert_int_equal(smtpuv_auth_success(a), 0);
  assert_int_equal(c.successes, 1);
  smtpuv_auth_free(a);
  assert_int_equal(c.destroyed, 1);

  /* names and required fields */
  static const char *bad[] = {"", "lower", "SP ACE", "X=Y",
                              "ABCDEFGHIJKLMNOPQRSTU" /* 21 */};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    ops.name = bad[i];
    assert_int_equal(smtpuv_auth_new(NULL, &ops, &c, &a), SMTPUV_EINVAL);
  }
  ops.name = "ABCDEFGHIJKLMNOPQRST";
  ops.step = NULL;
  assert_int_equal(smtpuv_auth_new(NULL, &ops, &c, &a), SMTPUV_EINVAL);
  assert_int_equal(smtpuv_auth_new(NULL, NULL, &c, &a), SMTPUV_EINVAL);
  /* a shorter (older) struct: only name/flags/begin/step given */
  ops.step = c_step;
  ops.struct_size = offsetof(smtpuv_auth_ops, success);
  assert_int_equal(smtpuv_auth_new(NULL, &ops, &c, &a), 0);
  assert_int_equal(smtpuv_auth_success(a), 0);
  assert_int_equal(c.successes, 1); /* not called: beyond struct_size */
  smtpuv_auth_free(a);
  assert_int_equal(c.destroyed, 1);
  /* Regression: a struct_size ending inside `step` reads none of it (it used
     to copy half of the function pointer and call that). */
  ops.struct_size = offsetof(smtpuv_auth_ops, step) + sizeof(ops.step) / 2;
  assert_int_equal(smtpuv_auth_new(NULL, &ops, &c, &a), SMTPUV_EINVAL);
}

/* ---- base64 ------------------------------------------------------------------ */

static void test_base64_strict(void **st) {
  (void)st;
  const smtpuv_mem *m = smtpuv_mem_default();
  static const struct {
    const char *in;
    const char *out; /* NULL: malformed */
    size_t outlen;
  } cases[] = {
      {"", "", 0},
      {"Zg==", "f", 1},
      {"Zm8=", "fo", 2},
      {"Zm9v", "foo", 3},
      {"Zm9vYg==", "foob", 4},
      {"AA==", "\0", 1},
      {"AAAA", "\0\0\0", 3},
      {"+/+/", "\xfb\xff\xbf", 3},
      {"Zg=", NULL, 0},
      {"Zg", NULL, 0},
      {"Zm9", NULL, 0},
      {"Z===", NULL, 0},
      {"====", NULL, 0},
      {"Zg==Zg==", NULL, 0},
      {"Zm=v", NULL, 0},
      {"Zm9v ", NULL, 0},
      {" Zm9v", NULL, 0},
      {"Zm\r\n9v", NULL, 0},
      {"Zm9-", NULL, 0},
      {"Zm9_", NULL, 0},
      {"Zm9v\n", NULL, 0},
      {"Zh==", NULL, 0}, /* non-zero bits under the padding */
      {"Zm9=", NULL, 0},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    unsigned char *out = NULL;
    size_t outlen = 0;
    int r = smtpuv__b64_decode(m, cases[i].in, strlen(cases[i].in), &out,
                               &outlen);
    if (cases[i].out == NULL) {
      if (r != SMTPUV_EPROTO)
        print_error("case %zu \"%s\" accepted\n", i, cases[i].in);
      assert_int_equal(r, SMTPUV_EPROTO);
      continue;
    }
    assert_int_equal(r, 0);
    assert_bytes(out, outlen, cases[i].out, cases[i].outlen);
    assert_int_equal(out[outlen], 0);
    smtpuv__wipe_free(m, out, outlen + 1);
    /* and back */
    char *enc = NULL;
    assert_int_equal(smtpuv__b64_encode(m, cases[i].out, cases[i].outlen, &enc),
                     0);
    assert_string_equal(enc, cases[i].in);
    smtpuv__secret_free(m, enc);
  }
}

/* ---- allocation failures ----------------------------------------------------- */

/* One complete run of every mechanism with allocator `tm`; returns the first
   error (ENOMEM expected when an allocation fails), 0 if all went through. */
static int all_mechs_once(test_mem *tm) {
  const smtpuv_mem *mem = &tm->mem;
  smtpuv_auth *a = NULL;
  const unsigned char *r;
  size_t n;
  int rc;
#define TRY(x)                                                                 \
  do {                                                                         \
    if ((rc = (x)) != 0)                                                       \
      goto out;                                                                \
  } while (0)
  TRY(smtpuv_auth_plain_new(mem, "z", "u", "p", &a));
  TRY(smtpuv_auth_begin(a, 0, &r, &n));
  smtpuv_auth_free(a);
  a = NULL;
  TRY(smtpuv_auth_login_new(mem, "u", "p", &a));
  TRY(smtpuv_auth_begin(a, 0, &r, &n));
  TRY(smtpuv_auth_step(a, STR_AND_LEN("Username:"), &r, &n));
  TRY(smtpuv_auth_step(a, STR_AND_LEN("Password:"), &r, &n));
  smtpuv_auth_free(a);
  a = NULL;
  TRY(smtpuv_auth_cram_md5_new(mem, "tim", "tanstaaftanstaaf", &a));
  TRY(smtpuv_auth_begin(a, 0, &r, &n));
  TRY(smtpuv_auth_step(a, STR_AND_LEN("<1.2@x>"), &r, &n));
  smtpuv_auth_free(a);
  a = NULL;
  const scram_kat *kats[2] = {&kat_sha1, &kat_sha256};
  for (int k = 0; k < 2; k++) {
    TRY(kats[k]->sha256
            ? smtpuv_auth_scram_sha256_new(mem, "z", "user", "pencil", &a)
            : smtpuv_auth_scram_sha1_new(mem, NULL, "user", "pencil", &a));
    TRY(smtpuv__scram_set_nonce(a, kats[k]->nonce));
    TRY(smtpuv_auth_begin(a, 0, &r, &n));
    TRY(smtpuv_auth_step(a, (const unsigned char *)kats[k]->server_first,
                         strlen(kats[k]->server_first), &r, &n));
    rc = smtpuv_auth_step(a, (const unsigned char *)kats[k]->server_final,
                          strlen(kats[k]->server_final), &r, &n);
    /* with an authzid the signature differs from the RFC's */
    if (rc != 0 && rc != SMTPUV_EAUTHSERVER)
      goto out;
    smtpuv_auth_free(a);
    a = NULL;
  }
  token_src t = {0, 0, "tok", 0};
  TRY(smtpuv_auth_xoauth2_new(mem, "u", token_cb, &t, &a));
  TRY(smtpuv_auth_begin(a, 0, &r, &n));
  TRY(smtpuv_auth_step(a, STR_AND_LEN("{}"), &r, &n));
  TRY(smtpuv_auth_begin(a, SMTPUV_AUTH_BEGIN_RETRY, &r, &n));
  smtpuv_auth_free(a);
  a = NULL;
  TRY(smtpuv_auth_oauthbearer_new(mem, "u", "h", 1, token_cb, &t, &a));
  TRY(smtpuv_auth_begin(a, 0, &r, &n));
  TRY(smtpuv_auth_step(a, STR_AND_LEN("{}"), &r, &n));
  smtpuv_auth_free(a);
  a = NULL;
  smtpuv_auth_credentials c = SMTPUV_AUTH_CREDENTIALS_INIT;
  c.username = "u";
  c.password = "p";
  TRY(smtpuv_auth_auto_new(mem, &c, &a));
#undef TRY
out:
  smtpuv_auth_free(a);
  return rc;
}

static void test_alloc_failures(void **st) {
  (void)st;
  test_mem tm;
  test_mem_init(&tm, 0);
  assert_int_equal(all_mechs_once(&tm), 0);
  assert_int_equal(tm.live, 0);
  unsigned long total = tm.calls;
  assert_true(total > 20);
  for (unsigned long i = 1; i <= total; i++) {
    test_mem_init(&tm, i);
    int rc = all_mechs_once(&tm);
    if (rc != SMTPUV_ENOMEM || tm.live != 0)
      print_error("fail_at %lu: rc %d live %ld\n", i, rc, tm.live);
    assert_true(tm.failed);
    assert_int_equal(rc, SMTPUV_ENOMEM);
    assert_int_equal(tm.live, 0);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_plain_rfc4616),
      cmocka_unit_test(test_plain_empty_and_null),
      cmocka_unit_test(test_login),
      cmocka_unit_test(test_cram_md5_rfc2195),
      cmocka_unit_test(test_scram_sha1_rfc5802),
      cmocka_unit_test(test_scram_sha256_rfc7677),
      cmocka_unit_test(test_scram_server_signature),
      cmocka_unit_test(test_scram_success_without_proof),
      cmocka_unit_test(test_scram_bad_server_first),
      cmocka_unit_test(test_scram_strict_server_first),
      cmocka_unit_test(test_scram_names_and_authzid),
      cmocka_unit_test(test_scram_non_ascii_refused),
      cmocka_unit_test(test_scram_random_nonce),
      cmocka_unit_test(test_xoauth2_format),
      cmocka_unit_test(test_xoauth2_fixed_token),
      cmocka_unit_test(test_oauthbearer_rfc7628),
      cmocka_unit_test(test_token_async_and_fail),
      cmocka_unit_test(test_custom_mechanism),
      cmocka_unit_test(test_base64_strict),
      cmocka_unit_test(test_alloc_failures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

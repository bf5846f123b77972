/* SPDX-License-Identifier: MIT */
/* smtpuv_auth_select(): which mechanism `auto` picks for each combination
 * of credentials and server offer, and the "nothing fits" texts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "smtpuv.h"

enum {
  PW = 1,
  TOK = 2,
  AUTHZ = 4,
  NONASCII = 8,
  NOUSER = 16,
  SPACEUSER = 32,
  CTRLUSER = 64
};

typedef struct sel_case {
  unsigned creds;
  unsigned disabled;
  const char *offered;
  smtpuv_auth_mech want; /* NONE: SMTPUV_EAUTHMECH */
} sel_case;

static void dummy_cb(smtpuv_auth *a, int rejected, void *data) {
  (void)a;
  (void)rejected;
  (void)data;
}

static smtpuv_auth_credentials make_creds(unsigned f) {
  smtpuv_auth_credentials c = SMTPUV_AUTH_CREDENTIALS_INIT;
  if (!(f & NOUSER))
    c.username = (f & SPACEUSER)  ? "tim smith"
                 : (f & CTRLUSER) ? "tim\tsmith"
                                  : "tim";
  if (f & PW)
    c.password = (f & NONASCII) ? "p\xc3\xa4ss" : "pass";
  if (f & TOK)
    c.token_cb = dummy_cb;
  if (f & AUTHZ)
    c.authzid = "admin";
  return c;
}

#define B(m) SMTPUV_AUTH_MECH_BIT(SMTPUV_AUTH_MECH_##m)
#define M(m) SMTPUV_AUTH_MECH_##m

static const char all[] =
    "PLAIN LOGIN CRAM-MD5 SCRAM-SHA-1 SCRAM-SHA-256 XOAUTH2 OAUTHBEARER";

static const sel_case cases[] = {
    /* password: SCRAM-SHA-256 > SCRAM-SHA-1 > PLAIN > LOGIN > CRAM-MD5 */
    {PW, 0, all, M(SCRAM_SHA_256)},
    {PW, 0, "PLAIN LOGIN CRAM-MD5 SCRAM-SHA-1", M(SCRAM_SHA_1)},
    {PW, 0, "LOGIN CRAM-MD5 PLAIN", M(PLAIN)},
    {PW, 0, "CRAM-MD5 LOGIN", M(LOGIN)},
    {PW, 0, "CRAM-MD5", M(CRAM_MD5)},
    {PW, 0, "XOAUTH2 OAUTHBEARER", M(NONE)},
    {PW, 0, "GSSAPI NTLM", M(NONE)},
    {PW, 0, "", M(NONE)},
    /* any case, any spacing; no partial names */
    {PW, 0, "  login   plain ", M(PLAIN)},
    {PW, 0, "scram-sha-256", M(SCRAM_SHA_256)},
    {PW, 0, "SCRAM-SHA-256-PLUS PLAINX LOGIN", M(LOGIN)},
    {PW, 0, "SCRAM-SHA-256-PLUS", M(NONE)},
    /* no SASLprep: SCRAM skipped for non-ASCII credentials */
    {PW | NONASCII, 0, all, M(PLAIN)},
    {PW | NONASCII, 0, "SCRAM-SHA-256 SCRAM-SHA-1", M(NONE)},
    /* an authorization id rules out LOGIN and CRAM-MD5 */
    {PW | AUTHZ, 0, "LOGIN CRAM-MD5 PLAIN", M(PLAIN)},
    {PW | AUTHZ, 0, "LOGIN CRAM-MD5", M(NONE)},
    {PW | AUTHZ, 0, "SCRAM-SHA-1 PLAIN", M(SCRAM_SHA_1)},
    /* CRAM-MD5 cannot carry a username with a space */
    {PW | SPACEUSER, 0, "CRAM-MD5 LOGIN", M(LOGIN)},
    {PW | SPACEUSER, 0, "CRAM-MD5", M(NONE)},
    /* Regressions: auto picked a mechanism whose begin() then refused the
       credentials, instead of the next one that works: CRAM-MD5 with a
       control character in the username, XOAUTH2 with a space in it. */
    {PW | CTRLUSER, 0, "CRAM-MD5 LOGIN", M(LOGIN)},
    {PW | CTRLUSER, 0, "CRAM-MD5", M(NONE)},
    {TOK | PW | SPACEUSER, 0, "XOAUTH2 PLAIN", M(PLAIN)},
    {TOK | SPACEUSER, 0, "XOAUTH2 OAUTHBEARER", M(OAUTHBEARER)},
    /* password without username */
    {PW | NOUSER, 0, all, M(NONE)},
    /* disabled mechanisms */
    {PW, B(SCRAM_SHA_256), all, M(SCRAM_SHA_1)},
    {PW, B(SCRAM_SHA_256) | B(SCRAM_SHA_1), all, M(PLAIN)},
    {PW, B(PLAIN) | B(SCRAM_SHA_256) | B(SCRAM_SHA_1), all, M(LOGIN)},
    {PW, B(LOGIN), "LOGIN CRAM-MD5", M(CRAM_MD5)},
    /* token: OAUTHBEARER > XOAUTH2, never a password mechanism */
    {TOK, 0, all, M(OAUTHBEARER)},
    {TOK, 0, "PLAIN XOAUTH2", M(XOAUTH2)},
    {TOK, 0, "PLAIN LOGIN", M(NONE)},
    {TOK | NOUSER, 0, "XOAUTH2", M(NONE)}, /* XOAUTH2 needs user= */
    {TOK | NOUSER, 0, "XOAUTH2 OAUTHBEARER", M(OAUTHBEARER)},
    {TOK, B(OAUTHBEARER), all, M(XOAUTH2)},
    /* token and password: OAuth first, then the password order */
    {TOK | PW, 0, all, M(OAUTHBEARER)},
    {TOK | PW, 0, "XOAUTH2 SCRAM-SHA-256", M(XOAUTH2)},
    {TOK | PW, 0, "PLAIN SCRAM-SHA-1", M(SCRAM_SHA_1)},
    /* nothing at all */
    {0, 0, all, M(NONE)},
};

static void test_matrix(void **st) {
  (void)st;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    smtpuv_auth_credentials c = make_creds(cases[i].creds);
    c.disabled = cases[i].disabled;
    smtpuv_auth_mech got = M(PLAIN);
    char err[256];
    int rc = smtpuv_auth_select(cases[i].offered, &c, &got, err, sizeof(err));
    if (got != cases[i].want)
      print_error("case %zu (\"%s\"): got %s, want %s\n", i, cases[i].offered,
                  smtpuv_auth_mech_name(got),
                  smtpuv_auth_mech_name(cases[i].want));
    assert_int_equal(got, cases[i].want);
    if (cases[i].want == M(NONE)) {
      assert_int_equal(rc, SMTPUV_EAUTHMECH);
      assert_non_null(strstr(err, "no usable authentication mechanism"));
    } else {
      assert_int_equal(rc, 0);
      assert_string_equal(err, "");
    }
  }
}

static void test_error_texts(void **st) {
  (void)st;
  char err[300];
  smtpuv_auth_mech m;
  smtpuv_auth_credentials c = make_creds(TOK);
  assert_int_equal(smtpuv_auth_select("plain login", &c, &m, err, sizeof(err)),
                   SMTPUV_EAUTHMECH);
  assert_string_equal(err, "no usable authentication mechanism: the server "
                           "offers plain login; the credentials allow "
                           "OAUTHBEARER XOAUTH2");
  c = make_creds(PW | AUTHZ);
  assert_int_equal(smtpuv_auth_select("LOGIN", &c, &m, err, sizeof(err)),
                   SMTPUV_EAUTHMECH);
  assert_string_equal(err, "no usable authentication mechanism: the server "
                           "offers LOGIN; the credentials allow SCRAM-SHA-256 "
                           "SCRAM-SHA-1 PLAIN");
  c = make_creds(PW);
  assert_int_equal(smtpuv_auth_select("", &c, &m, err, sizeof(err)),
                   SMTPUV_EAUTHMECH);
  assert_string_equal(err, "no usable authentication mechanism: the server "
                           "does not advertise AUTH; the credentials allow "
                           "SCRAM-SHA-256 SCRAM-SHA-1 PLAIN LOGIN CRAM-MD5");
  c = make_creds(0);
  assert_int_equal(smtpuv_auth_select("PLAIN", &c, &m, err, sizeof(err)),
                   SMTPUV_EAUTHMECH);
  assert_string_equal(err, "no usable authentication mechanism: the server "
                           "offers PLAIN; the credentials allow nothing (no "
                           "username and password, no OAuth token source)");
  /* control characters from the server are neutralised */
  assert_int_equal(
      smtpuv_auth_select("GSSAPI\001\033[31m", &c, &m, err, sizeof(err)),
      SMTPUV_EAUTHMECH);
  assert_null(strchr(err, '\033'));
  assert_non_null(strstr(err, "GSSAPI??[31m"));
  /* truncation and NULL buffers */
  assert_int_equal(smtpuv_auth_select("PLAIN", &c, &m, err, 10),
                   SMTPUV_EAUTHMECH);
  assert_string_equal(err, "no usable");
  assert_int_equal(smtpuv_auth_select("PLAIN", &c, &m, NULL, 0),
                   SMTPUV_EAUTHMECH);
  /* a fixed token counts as a token source */
  c = make_creds(0);
  c.token = "abc";
  assert_int_equal(smtpuv_auth_select("XOAUTH2", &c, &m, NULL, 0), 0);
  assert_int_equal(m, M(XOAUTH2));
}

static void test_arguments(void **st) {
  (void)st;
  smtpuv_auth_mech m;
  smtpuv_auth_credentials c = make_creds(PW);
  assert_int_equal(smtpuv_auth_select(NULL, &c, &m, NULL, 0), SMTPUV_EINVAL);
  assert_int_equal(smtpuv_auth_select("PLAIN", NULL, &m, NULL, 0),
                   SMTPUV_EINVAL);
  assert_int_equal(smtpuv_auth_select("PLAIN", &c, NULL, NULL, 0),
                   SMTPUV_EINVAL);
  c.struct_size = 0;
  assert_int_equal(smtpuv_auth_select("PLAIN", &c, &m, NULL, 0), SMTPUV_EINVAL);
  /* an older, shorter struct: the fields beyond it count as zero */
  c = make_creds(PW | TOK);
  c.struct_size = offsetof(smtpuv_auth_credentials, token_cb);
  assert_int_equal(smtpuv_auth_select("XOAUTH2 PLAIN", &c, &m, NULL, 0), 0);
  assert_int_equal(m, M(PLAIN));
  /* Regression: a struct_size that ends inside a field reads none of it
     (it used to copy the field's first bytes: half a pointer, or here part
     of `disabled`, which then disabled PLAIN). */
  c = make_creds(PW);
  c.disabled = SMTPUV_AUTH_MECH_BIT(M(PLAIN)) | 0x80000000u;
  c.struct_size = offsetof(smtpuv_auth_credentials, disabled) + 2;
  assert_int_equal(smtpuv_auth_select("PLAIN", &c, &m, NULL, 0), 0);
  assert_int_equal(m, M(PLAIN));
  c.struct_size = offsetof(smtpuv_auth_credentials, disabled) + sizeof(unsigned);
  assert_int_equal(smtpuv_auth_select("PLAIN", &c, &m, NULL, 0),
                   SMTPUV_EAUTHMECH);

  smtpuv_auth *a;
  smtpuv_auth_credentials none = SMTPUV_AUTH_CREDENTIALS_INIT;
  assert_int_equal(smtpuv_auth_auto_new(NULL, &none, &a), SMTPUV_EINVAL);
  assert_int_equal(smtpuv_auth_auto_new(NULL, NULL, &a), SMTPUV_EINVAL);
  none.username = "u";
  assert_int_equal(smtpuv_auth_mech_new(NULL, M(PLAIN), &none, &a),
                   SMTPUV_EINVAL);
  assert_int_equal(smtpuv_auth_mech_new(NULL, M(NONE), &c, &a), SMTPUV_EINVAL);
  assert_int_equal(smtpuv_auth_mech_new(NULL, (smtpuv_auth_mech)99, &c, &a),
                   SMTPUV_EINVAL);
  c = make_creds(PW);
  for (int mech = M(PLAIN); mech < SMTPUV_AUTH_MECH_COUNT_; mech++) {
    smtpuv_auth_credentials cc = c;
    cc.token = "tok";
    assert_int_equal(
        smtpuv_auth_mech_new(NULL, (smtpuv_auth_mech)mech, &cc, &a), 0);
    assert_string_equal(smtpuv_auth_name(a),
                        smtpuv_auth_mech_name((smtpuv_auth_mech)mech));
    smtpuv_auth_free(a);
  }
  smtpuv_auth_free(NULL);
}

static void test_names(void **st) {
  (void)st;
  static const char *names[] = {"",           "PLAIN",       "LOGIN",
                                "CRAM-MD5",   "SCRAM-SHA-1", "SCRAM-SHA-256",
                                "XOAUTH2",    "OAUTHBEARER"};
  for (int m = 0; m < SMTPUV_AUTH_MECH_COUNT_; m++) {
    assert_string_equal(smtpuv_auth_mech_name((smtpuv_auth_mech)m), names[m]);
    if (m > 0)
      assert_int_equal(smtpuv_auth_mech_from_name(names[m]), m);
  }
  assert_string_equal(smtpuv_auth_mech_name((smtpuv_auth_mech)42), "");
  assert_int_equal(smtpuv_auth_mech_from_name("scram-sha-256"),
                   M(SCRAM_SHA_256));
  assert_int_equal(smtpuv_auth_mech_from_name("SCRAM-SHA-2"), M(NONE));
  assert_int_equal(smtpuv_auth_mech_from_name("SCRAM-SHA-256-PLUS"), M(NONE));
  assert_int_equal(smtpuv_auth_mech_from_name(""), M(NONE));
  assert_int_equal(smtpuv_auth_mech_from_name(NULL), M(NONE));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_matrix),
      cmocka_unit_test(test_error_texts),
      cmocka_unit_test(test_arguments),
      cmocka_unit_test(test_names),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/* smtpuv_options_set_ca_pem(): trust anchors from memory. The built
 * context trusts exactly the bundle's certificates (the system store is
 * not loaded), a bundle without a certificate is refused and changes
 * nothing, the bundle is copied (the caller's buffer may go), clients
 * copy it, and it can be removed again. White-box: looks into the built
 * SSL_CTX's X509_STORE and the options. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "support.h"
#include "uv/client_int.h"

/* A self-signed CA certificate as PEM text (malloc'd, NUL-terminated). */
static char *make_ca_pem(const char *cn) {
  EVP_PKEY *key = EVP_EC_gen("P-256");
  X509 *x = X509_new();
  assert_non_null(key);
  assert_non_null(x);
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), 0);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600);
  X509_set_pubkey(x, key);
  X509_NAME *n = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn,
                             -1, -1, 0);
  X509_set_issuer_name(x, n);
  assert_true(X509_sign(x, key, EVP_sha256()) > 0);
  BIO *b = BIO_new(BIO_s_mem());
  assert_int_equal(PEM_write_bio_X509(b, x), 1);
  char *p;
  long len = BIO_get_mem_data(b, &p);
  char *out = malloc((size_t)len + 1);
  memcpy(out, p, (size_t)len);
  out[len] = '\0';
  BIO_free(b);
  X509_free(x);
  EVP_PKEY_free(key);
  return out;
}

/* Certificates in the store of the context the options build. */
static int store_certs(const smtpuv_options *o) {
  SSL_CTX *ctx = NULL;
  char err[256] = "";
  int rc = smtpuv__options_ssl_ctx(o, &ctx, err, sizeof err);
  if (rc != 0)
    fail_msg("smtpuv__options_ssl_ctx: %s: %s", smtpuv_err_name(rc), err);
  STACK_OF(X509_OBJECT) *objs = X509_STORE_get0_objects(SSL_CTX_get_cert_store(ctx));
  int n = 0;
  for (int i = 0; i < sk_X509_OBJECT_num(objs); i++)
    if (X509_OBJECT_get_type(sk_X509_OBJECT_value(objs, i)) == X509_LU_X509)
      n++;
  SSL_CTX_free(ctx);
  return n;
}

static void test_bundle_is_the_trust_store(void **state) {
  (void)state;
  char *a = make_ca_pem("pem test CA one");
  char *b = make_ca_pem("pem test CA two");
  size_t la = strlen(a), lb = strlen(b);
  /* two certificates with text around them, as tls.rootCertificates
     joined by "\n" gives */
  char *both = malloc(la + lb + 32);
  size_t n = (size_t)sprintf(both, "# comment\n%s\n%s\n", a, b);
  smtpuv_options *o;
  assert_int_equal(smtpuv_options_new(NULL, &o), 0);
  assert_int_equal(smtpuv_options_set_host(o, "127.0.0.1"), 0);
  assert_int_equal(smtpuv_options_set_ca_pem(o, both, n), 0);
  memset(both, 0, n); /* copied */
  free(both);
  assert_int_equal(store_certs(o), 2);

  /* a client made from them copies the bundle */
  uv_loop_t loop;
  uv_loop_init(&loop);
  smtpuv_client *c;
  assert_int_equal(smtpuv_client_new(&loop, o, &c), 0);
  assert_int_equal(c->opts.ca_pem_len, n);
  assert_non_null(c->opts.ca_pem);
  assert_ptr_not_equal(c->opts.ca_pem, o->ca_pem);
  assert_int_equal(smtpuv_client_close(c, NULL), 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);

  /* replacing it: one certificate, a new context */
  assert_int_equal(smtpuv_options_set_ca_pem(o, a, la), 0);
  assert_int_equal(store_certs(o), 1);
  /* removing it: back to the system store (more than our one) */
  assert_int_equal(smtpuv_options_set_ca_pem(o, NULL, 0), 0);
  assert_null(o->ca_pem);
  smtpuv_options_free(o);
  free(a);
  free(b);
}

static void test_bad_bundles(void **state) {
  (void)state;
  char *a = make_ca_pem("pem test CA");
  smtpuv_options *o;
  assert_int_equal(smtpuv_options_new(NULL, &o), 0);
  assert_int_equal(smtpuv_options_set_host(o, "127.0.0.1"), 0);
  assert_int_equal(smtpuv_options_set_ca_pem(o, a, strlen(a)), 0);
  assert_int_equal(smtpuv_options_set_ca_pem(NULL, a, strlen(a)),
                   SMTPUV_EINVAL);
  assert_int_equal(smtpuv_options_set_ca_pem(o, NULL, 5), SMTPUV_EINVAL);
  assert_int_equal(smtpuv_options_set_ca_pem(o, "", 0), SMTPUV_EINVAL);
  static const char junk[] = "not a certificate\n";
  assert_int_equal(smtpuv_options_set_ca_pem(o, junk, sizeof junk - 1),
                   SMTPUV_EINVAL);
  /* a truncated certificate */
  assert_int_equal(smtpuv_options_set_ca_pem(o, a, strlen(a) / 2),
                   SMTPUV_EINVAL);
  /* unchanged by the failures */
  assert_int_equal(o->ca_pem_len, strlen(a));
  assert_int_equal(store_certs(o), 1);
  smtpuv_options_free(o);
  free(a);
}

static void test_with_ca_file_too(void **state) {
  (void)state;
  char *a = make_ca_pem("pem test CA");
  char *b = make_ca_pem("file test CA");
  char path[] = "/tmp/smtpuv-capem-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, b, strlen(b)), (ssize_t)strlen(b));
  close(fd);
  smtpuv_options *o;
  assert_int_equal(smtpuv_options_new(NULL, &o), 0);
  assert_int_equal(smtpuv_options_set_host(o, "127.0.0.1"), 0);
  assert_int_equal(smtpuv_options_set_ca(o, path, NULL), 0);
  assert_int_equal(smtpuv_options_set_ca_pem(o, a, strlen(a)), 0);
  assert_int_equal(store_certs(o), 2);
  smtpuv_options_free(o);
  unlink(path);
  free(a);
  free(b);
}

static void test_failmalloc(void **state) {
  (void)state;
  char *a = make_ca_pem("pem test CA");
  int ok = 0;
  for (unsigned long n = 1; n < 40 && !ok; n++) {
    test_mem tm;
    test_mem_init(&tm, n);
    smtpuv_options *o = NULL;
    int rc = smtpuv_options_new(&tm.mem, &o);
    if (rc == 0)
      rc = smtpuv_options_set_host(o, "127.0.0.1");
    if (rc == 0)
      rc = smtpuv_options_set_ca_pem(o, a, strlen(a));
    if (rc == 0) {
      assert_int_equal(o->ca_pem_len, strlen(a));
      ok = 1;
    } else {
      assert_int_equal(rc, SMTPUV_ENOMEM);
    }
    smtpuv_options_free(o);
    assert_int_equal(tm.live, 0);
  }
  assert_true(ok);
  free(a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bundle_is_the_trust_store),
      cmocka_unit_test(test_bad_bundles),
      cmocka_unit_test(test_with_ca_file_too),
      cmocka_unit_test(test_failmalloc),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

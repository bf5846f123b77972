/* SPDX-License-Identifier: MIT */
/* The SSL_CTX the client builds: once per options object, shared by every
 * client made from them (and by copies made in other threads), with
 * SSL_MODE_RELEASE_BUFFERS; a caller's context is used as given; new trust
 * anchors start a new context; a failed build names its reason and is
 * tried again. White-box: reads the client's private structures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "support.h"
#include "uv/client_int.h"

static char ca_path[64];

/* A self-signed CA certificate in a temporary PEM file. */
static int make_ca_file(void **state) {
  (void)state;
  EVP_PKEY *key = EVP_EC_gen("P-256");
  X509 *x = X509_new();
  if (key == NULL || x == NULL)
    return -1;
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), 0);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600);
  X509_set_pubkey(x, key);
  X509_NAME *n = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
                             (const unsigned char *)"sslctx test CA", -1, -1,
                             0);
  X509_set_issuer_name(x, n);
  if (X509_sign(x, key, EVP_sha256()) == 0)
    return -1;
  snprintf(ca_path, sizeof ca_path, "/tmp/smtpuv-sslctx-XXXXXX");
  int fd = mkstemp(ca_path);
  FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
  if (f == NULL || PEM_write_X509(f, x) != 1)
    return -1;
  fclose(f);
  X509_free(x);
  EVP_PKEY_free(key);
  return 0;
}

static int remove_ca_file(void **state) {
  (void)state;
  unlink(ca_path);
  return 0;
}

static smtpuv_options *new_options(const smtpuv_mem *mem) {
  smtpuv_options *o;
  assert_int_equal(smtpuv_options_new(mem, &o), 0);
  assert_int_equal(smtpuv_options_set_host(o, "127.0.0.1"), 0);
  assert_int_equal(smtpuv_options_set_ca(o, ca_path, NULL), 0);
  return o;
}

static SSL_CTX *ctx_of(const smtpuv_options *o) {
  SSL_CTX *ctx = NULL;
  char err[256] = "";
  int rc = smtpuv__options_ssl_ctx(o, &ctx, err, sizeof err);
  if (rc != 0)
    fail_msg("smtpuv__options_ssl_ctx: %s: %s", smtpuv_err_name(rc), err);
  SSL_CTX_free(ctx); /* the options (or a client) still hold it */
  return ctx;
}

static void on_closed(smtpuv_client *c) { (void)c; }

static void test_one_context_per_options(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  smtpuv_options *o = new_options(NULL);
  smtpuv_client *c1, *c2, *c3;
  assert_int_equal(smtpuv_client_new(&loop, o, &c1), 0);
  assert_int_equal(smtpuv_client_new(&loop, o, &c2), 0);
  /* built at first use, then the same one for everybody */
  SSL_CTX *a, *b;
  char err[256];
  assert_int_equal(smtpuv__client_ssl_ctx(c1, &a, err, sizeof err), 0);
  assert_int_equal(smtpuv__client_ssl_ctx(c2, &b, err, sizeof err), 0);
  assert_ptr_equal(a, b);
  assert_ptr_equal(ctx_of(o), a);
  assert_true(SSL_CTX_get_mode(a) & SSL_MODE_RELEASE_BUFFERS);
  assert_int_equal(SSL_CTX_get_verify_mode(a), SSL_VERIFY_PEER);
  /* a client made before the first use shares it as well */
  assert_int_equal(smtpuv_client_new(&loop, o, &c3), 0);
  assert_int_equal(smtpuv__client_ssl_ctx(c3, &b, err, sizeof err), 0);
  assert_ptr_equal(a, b);
  /* new trust anchors: a new context for the options; clients keep theirs */
  assert_int_equal(smtpuv_options_set_ca(o, ca_path, NULL), 0);
  SSL_CTX *n = ctx_of(o);
  assert_ptr_not_equal(n, a);
  assert_true(SSL_CTX_get_mode(n) & SSL_MODE_RELEASE_BUFFERS);
  assert_int_equal(smtpuv__client_ssl_ctx(c1, &b, err, sizeof err), 0);
  assert_ptr_equal(a, b);
  /* the clients outlive the options */
  smtpuv_options_free(o);
  assert_int_equal(SSL_CTX_get_verify_mode(a), SSL_VERIFY_PEER);
  smtpuv_client_close(c1, on_closed);
  smtpuv_client_close(c2, on_closed);
  smtpuv_client_close(c3, on_closed);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_caller_context(void **state) {
  (void)state;
  SSL_CTX *mine = SSL_CTX_new(TLS_client_method());
  assert_non_null(mine);
  smtpuv_options *o = new_options(NULL);
  assert_int_equal(smtpuv_options_set_ssl_ctx(o, mine), 0);
  SSL_CTX *got = ctx_of(o);
  assert_ptr_equal(got, mine);
  /* used as given: no mode added to the caller's context */
  assert_false(SSL_CTX_get_mode(mine) & SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_up_ref(mine); /* kept, so a new context cannot take its address */
  SSL_CTX_free(mine); /* the options hold their own reference */
  assert_ptr_equal(ctx_of(o), got);
  /* keep it alive, so that a new context cannot reuse its address */
  assert_int_equal(SSL_CTX_up_ref(got), 1);
  assert_int_equal(smtpuv_options_set_ssl_ctx(o, NULL), 0);
  assert_ptr_not_equal(ctx_of(o), got);
  SSL_CTX_free(got);
  smtpuv_options_free(o);
  SSL_CTX_free(mine);
}

static void test_failed_build_is_retried(void **state) {
  (void)state;
  smtpuv_options *o = new_options(NULL);
  assert_int_equal(smtpuv_options_set_ca(o, "/nonexistent/smtpuv/ca.pem", NULL),
                   0);
  for (int i = 0; i < 2; i++) {
    SSL_CTX *ctx = (SSL_CTX *)1;
    char err[256] = "";
    assert_int_equal(smtpuv__options_ssl_ctx(o, &ctx, err, sizeof err),
                     SMTPUV_ETLS);
    assert_null(ctx);
    assert_non_null(strstr(err, "cannot load CA file /nonexistent/smtpuv/ca.pem"));
  }
  assert_int_equal(smtpuv_options_set_ca(o, ca_path, NULL), 0);
  assert_non_null(ctx_of(o));
  smtpuv_options_free(o);
}

/* smtpuv_send_sync() in several threads with one options object: copies
   and lazy builds race for the share. */
typedef struct worker {
  const smtpuv_options *o;
  SSL_CTX *seen[50];
  int failures;
} worker;

static void work(void *arg) {
  worker *w = arg;
  for (int i = 0; i < 50; i++) {
    smtpuv_options copy;
    if (smtpuv__options_copy(&copy, w->o) != 0) {
      w->failures++;
      continue;
    }
    char err[256];
    SSL_CTX *ctx = NULL;
    if (smtpuv__options_ssl_ctx(&copy, &ctx, err, sizeof err) != 0)
      w->failures++;
    w->seen[i] = ctx;
    SSL_CTX_free(ctx);
    smtpuv__options_clear(&copy);
  }
}

static void test_threads_share_one(void **state) {
  (void)state;
  smtpuv_options *o = new_options(NULL);
  worker w[4];
  uv_thread_t t[4];
  for (int i = 0; i < 4; i++) {
    memset(&w[i], 0, sizeof w[i]);
    w[i].o = o;
    assert_int_equal(uv_thread_create(&t[i], work, &w[i]), 0);
  }
  for (int i = 0; i < 4; i++)
    assert_int_equal(uv_thread_join(&t[i]), 0);
  SSL_CTX *one = ctx_of(o);
  for (int i = 0; i < 4; i++) {
    assert_int_equal(w[i].failures, 0);
    for (int k = 0; k < 50; k++)
      assert_ptr_equal(w[i].seen[k], one);
  }
  smtpuv_options_free(o);
}

static void test_failmalloc(void **state) {
  (void)state;
  int done = 0;
  for (unsigned long n = 1; n < 50 && !done; n++) {
    test_mem tm;
    test_mem_init(&tm, n);
    smtpuv_options *o;
    if (smtpuv_options_new(&tm.mem, &o) == 0) {
      int ok = smtpuv_options_set_ca(o, ca_path, NULL) == 0;
      smtpuv_options copy;
      if (ok && smtpuv__options_copy(&copy, o) == 0) {
        SSL_CTX *ctx = NULL;
        char err[64];
        if (smtpuv__options_ssl_ctx(&copy, &ctx, err, sizeof err) == 0) {
          SSL_CTX_free(ctx);
          done = !tm.failed;
        }
        smtpuv__options_clear(&copy);
      }
      smtpuv_options_free(o);
    }
    assert_int_equal(tm.live, 0);
  }
  assert_true(done);
}

/* A TLS client starts building the options' context on the thread pool
   when it is created: the loop thread never loads the trust store; a
   client made later takes the built one without a thread; closing at once
   waits for the build (no leak, nothing left running). */
static int closed_n;
static void on_closed_count(smtpuv_client *c) {
  (void)c;
  closed_n++;
}
static unsigned idle_ticks;
static void on_idle_tick(uv_idle_t *h) {
  idle_ticks++;
  smtpuv_client *c = h->data;
  if (!c->tls.work_pending)
    uv_idle_stop(h);
}

static void test_built_off_loop(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  smtpuv_options *o = new_options(NULL);
  assert_int_equal(smtpuv_options_set_tls(o, SMTPUV_TLS_IMPLICIT), 0);
  smtpuv_client *c1, *c2, *c3;
  uv_thread_t by;
  assert_int_equal(smtpuv_client_new(&loop, o, &c1), 0);
  assert_true(c1->tls.work_pending);
  assert_true(smtpuv__client_tls_waiting(c1));
  assert_null(c1->ssl_ctx);
  /* the loop runs (an idle handle ticks) while the context is built */
  uv_idle_t idle;
  uv_idle_init(&loop, &idle);
  idle.data = c1;
  idle_ticks = 0;
  uv_idle_start(&idle, on_idle_tick);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_true(idle_ticks >= 1);
  assert_false(c1->tls.work_pending);
  assert_false(smtpuv__client_tls_waiting(c1));
  assert_non_null(c1->ssl_ctx);
  assert_ptr_equal(c1->ssl_ctx, ctx_of(o));
  assert_true(smtpuv__ssl_share_built_by(o->ssl_share, &by));
  uv_thread_t self = uv_thread_self();
  assert_false(uv_thread_equal(&by, &self));
  /* built once, with resumption enabled */
  assert_true(SSL_CTX_get_session_cache_mode(c1->ssl_ctx) &
              SSL_SESS_CACHE_CLIENT);
  assert_non_null(SSL_CTX_sess_get_new_cb(c1->ssl_ctx));
  /* a later client takes it at once */
  assert_int_equal(smtpuv_client_new(&loop, o, &c2), 0);
  assert_false(c2->tls.work_pending);
  assert_ptr_equal(c2->ssl_ctx, c1->ssl_ctx);
  SSL_CTX *ctx;
  char err[256];
  assert_int_equal(smtpuv__client_ssl_ctx(c2, &ctx, err, sizeof err), 0);
  assert_ptr_equal(ctx, c1->ssl_ctx);
  closed_n = 0;
  smtpuv_client_close(c1, on_closed_count);
  smtpuv_client_close(c2, on_closed_count);
  uv_close((uv_handle_t *)&idle, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(closed_n, 2);
  /* new trust anchors: a new build; closing before it is done */
  assert_int_equal(smtpuv_options_set_ca(o, ca_path, NULL), 0);
  assert_int_equal(smtpuv_client_new(&loop, o, &c3), 0);
  assert_true(c3->tls.work_pending);
  smtpuv_client_close(c3, on_closed_count);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(closed_n, 3);
  assert_true(smtpuv__ssl_share_built_by(o->ssl_share, &by));
  assert_false(uv_thread_equal(&by, &self));
  /* a plaintext client or a caller's context: no build */
  smtpuv_options *p = new_options(NULL);
  assert_int_equal(smtpuv_options_set_tls(p, SMTPUV_TLS_NONE), 0);
  smtpuv_client *c4;
  assert_int_equal(smtpuv_client_new(&loop, p, &c4), 0);
  assert_false(c4->tls.work_pending);
  smtpuv_client_close(c4, on_closed_count);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(closed_n, 4);
  assert_false(smtpuv__ssl_share_built_by(p->ssl_share, &by));
  smtpuv_options_free(p);
  smtpuv_options_free(o);
  assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_one_context_per_options),
      cmocka_unit_test(test_caller_context),
      cmocka_unit_test(test_failed_build_is_retried),
      cmocka_unit_test(test_threads_share_one),
      cmocka_unit_test(test_failmalloc),
      cmocka_unit_test(test_built_off_loop),
  };
  return cmocka_run_group_tests(tests, make_ca_file, remove_ca_file);
}

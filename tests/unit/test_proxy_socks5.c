/* SPDX-License-Identifier: MIT */
/*
 * The SOCKS5 handshake (RFC 1928 / RFC 1929), sans-io: client bytes
 * checked exactly, proxy bytes fed whole, one byte at a time and cut at
 * every offset; every failure code; secrets wiped.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smtpuv.h"
#include "support.h"

#define S(lit) lit, sizeof(lit) - 1

/* The client must have written exactly these bytes (then consumed). */
static void expect_out(smtpuv_socks5 *s, const char *want, size_t wlen) {
  const void *ptr;
  size_t len;
  smtpuv_socks5_outgoing(s, &ptr, &len);
  if (len != wlen || memcmp(ptr, want, len) != 0)
    fail_msg("client bytes differ (%zu, want %zu)", len, wlen);
  smtpuv_socks5_consumed(s, len);
  smtpuv_socks5_outgoing(s, &ptr, &len);
  assert_int_equal(len, 0);
}

enum { WHOLE, BYTES, SPLIT };

/* Feed `len` bytes with a chunking; returns the last feed's result and
   the bytes used in total. */
static int feed(smtpuv_socks5 *s, int mode, size_t split, const char *d,
                size_t len, size_t *used_total) {
  size_t used, total = 0;
  int rc = 0;
  if (mode == WHOLE) {
    rc = smtpuv_socks5_feed(s, d, len, &used);
    total = used;
  } else if (mode == BYTES) {
    for (size_t i = 0; i < len; i++) {
      rc = smtpuv_socks5_feed(s, d + i, 1, &used);
      total += used;
      if (rc != 0)
        break;
    }
  } else {
    size_t k = split < len ? split : len;
    rc = smtpuv_socks5_feed(s, d, k, &used);
    total = used;
    if (rc == 0) {
      rc = smtpuv_socks5_feed(s, d + k, len - k, &used);
      total += used;
    }
  }
  *used_total = total;
  return rc;
}

static smtpuv_socks5 *new_hs(const char *host, uint16_t port,
                             const char *user, const char *pass) {
  smtpuv_socks5_params sp = SMTPUV_SOCKS5_PARAMS_INIT;
  sp.host = host;
  sp.port = port;
  sp.username = user;
  sp.password = pass;
  smtpuv_socks5 *s;
  assert_int_equal(smtpuv_socks5_new(NULL, &sp, &s), 0);
  assert_int_equal(smtpuv_socks5_state_of(s), SMTPUV_SOCKS5_METHOD);
  return s;
}

/* No authentication, a domain name: the reply to CONNECT and the server's
   greeting arrive in one read; the greeting is left for the SMTP core. */
static void conv_noauth(int mode, size_t split) {
  smtpuv_socks5 *s = new_hs("mx.example.org", 25, NULL, NULL);
  expect_out(s, S("\x05\x01\x00"));
  size_t used;
  assert_int_equal(feed(s, mode, split, S("\x05\x00"), &used), 0);
  assert_int_equal(used, 2);
  assert_int_equal(smtpuv_socks5_state_of(s), SMTPUV_SOCKS5_CONNECT);
  expect_out(s, S("\x05\x01\x00\x03\x0emx.example.org\x00\x19"));
  static const char reply[] = "\x05\x00\x00\x01\x7f\x00\x00\x01\x9c\x41"
                              "220 mx ESMTP\r\n";
  assert_int_equal(feed(s, mode, split, reply, sizeof reply - 1, &used), 1);
  assert_int_equal(used, 10);
  assert_int_equal(smtpuv_socks5_state_of(s), SMTPUV_SOCKS5_DONE);
  assert_int_equal(smtpuv_socks5_reply_code(s), 0);
  const char *addr;
  uint16_t port;
  assert_int_equal(smtpuv_socks5_bound(s, &addr, &port), 0);
  assert_string_equal(addr, "127.0.0.1");
  assert_int_equal(port, 40001);
  assert_int_equal(smtpuv_socks5_feed(s, "x", 1, &used), SMTPUV_ESTATE);
  assert_int_equal(used, 0);
  assert_int_equal(smtpuv_socks5_error(s), 0);
  assert_string_equal(smtpuv_socks5_error_text(s), "");
  smtpuv_socks5_free(s);
}

/* Username/password selected; the proxy binds an IPv6 address; the
   destination is an IPv6 literal in brackets. */
static void conv_userpass(int mode, size_t split) {
  smtpuv_socks5 *s = new_hs("[2001:db8::25]", 587, "alice", "s3cret");
  expect_out(s, S("\x05\x02\x00\x02"));
  size_t used;
  assert_int_equal(feed(s, mode, split, S("\x05\x02"), &used), 0);
  assert_int_equal(smtpuv_socks5_state_of(s), SMTPUV_SOCKS5_AUTH);
  expect_out(s, S("\x01\x05" "alice" "\x06" "s3cret"));
  assert_int_equal(feed(s, mode, split, S("\x01\x00"), &used), 0);
  expect_out(s, S("\x05\x01\x00\x04\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00"
                  "\x00\x00\x00\x00\x00\x25\x02\x4b"));
  static const char reply[] = "\x05\x00\x00\x04\x00\x00\x00\x00\x00\x00\x00"
                              "\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x19";
  assert_int_equal(feed(s, mode, split, reply, sizeof reply - 1, &used), 1);
  assert_int_equal(used, sizeof reply - 1);
  const char *addr;
  uint16_t port;
  assert_int_equal(smtpuv_socks5_bound(s, &addr, &port), 0);
  assert_string_equal(addr, "::1");
  assert_int_equal(port, 25);
  smtpuv_socks5_free(s);
}

/* Credentials offered, the proxy picks no authentication: none are sent.
   The bound address is a domain name; an IPv4 literal destination. */
static void conv_offered_unused(int mode, size_t split) {
  smtpuv_socks5 *s = new_hs("192.0.2.7", 2525, "u", "p");
  expect_out(s, S("\x05\x02\x00\x02"));
  size_t used;
  assert_int_equal(feed(s, mode, split, S("\x05\x00"), &used), 0);
  expect_out(s, S("\x05\x01\x00\x01\xc0\x00\x02\x07\x09\xdd"));
  static const char reply[] = "\x05\x00\x00\x03\x09proxy.lan\x04\x00";
  assert_int_equal(feed(s, mode, split, reply, sizeof reply - 1, &used), 1);
  const char *addr;
  uint16_t port;
  assert_int_equal(smtpuv_socks5_bound(s, &addr, &port), 0);
  assert_string_equal(addr, "proxy.lan");
  assert_int_equal(port, 1024);
  smtpuv_socks5_free(s);
}

typedef void (*conv_fn)(int mode, size_t split);

static void all_ways(conv_fn fn) {
  fn(WHOLE, 0);
  fn(BYTES, 0);
  for (size_t k = 0; k <= 30; k++)
    fn(SPLIT, k);
}

static void test_noauth(void **state) {
  (void)state;
  all_ways(conv_noauth);
}

static void test_userpass(void **state) {
  (void)state;
  all_ways(conv_userpass);
}

static void test_offered_unused(void **state) {
  (void)state;
  all_ways(conv_offered_unused);
}

/* A failure after `prefix` (proxy bytes that lead to the step) with the
   proxy's `bad` bytes: the code, the text, and stickiness. */
static void expect_failure(const char *user, const char *pass,
                           const char *prefix, size_t plen, const char *bad,
                           size_t blen, int err, const char *text) {
  for (int mode = WHOLE; mode <= BYTES; mode++) {
    smtpuv_socks5 *s = new_hs("mx.example.org", 25, user, pass);
    size_t used;
    if (plen > 0)
      assert_int_equal(feed(s, mode, 0, prefix, plen, &used), 0);
    assert_int_equal(feed(s, mode, 0, bad, blen, &used), err);
    assert_int_equal(smtpuv_socks5_state_of(s), SMTPUV_SOCKS5_FAILED);
    assert_int_equal(smtpuv_socks5_error(s), err);
    assert_string_equal(smtpuv_socks5_error_text(s), text);
    assert_int_equal(smtpuv_socks5_feed(s, "\x05", 1, &used), err);
    assert_int_equal(used, 0);
    const char *addr;
    uint16_t port;
    assert_int_equal(smtpuv_socks5_bound(s, &addr, &port), SMTPUV_ESTATE);
    smtpuv_socks5_free(s);
  }
}

static void test_failures(void **state) {
  (void)state;
  expect_failure(NULL, NULL, "", 0, S("\x04\x00"), SMTPUV_EPROXY,
                 "method selection: version 4, not 5");
  expect_failure(NULL, NULL, "", 0, S("\x05\xff"), SMTPUV_EPROXYMETHOD,
                 "the proxy wants authentication (X'FF'): give a username "
                 "and password");
  expect_failure("u", "p", "", 0, S("\x05\xff"), SMTPUV_EPROXYMETHOD,
                 "the proxy accepts neither no authentication nor "
                 "username/password (X'FF')");
  /* username/password chosen although not offered */
  expect_failure(NULL, NULL, "", 0, S("\x05\x02"), SMTPUV_EPROXY,
                 "method selection: X'02' was not offered");
  expect_failure("u", "p", "", 0, S("\x05\x01"), SMTPUV_EPROXY,
                 "method selection: X'01' was not offered");
  expect_failure("u", "p", S("\x05\x02"), S("\x01\x01"), SMTPUV_EPROXYAUTH,
                 "username/password refused (status X'01')");
  expect_failure("u", "p", S("\x05\x02"), S("\x05\x00"), SMTPUV_EPROXY,
                 "username/password status: version 5, not 1");
  static const struct {
    int err;
    const char *text;
  } reps[] = {
      {SMTPUV_EPROXYFAIL, "CONNECT reply 1: general SOCKS server failure"},
      {SMTPUV_EPROXYRULES, "CONNECT reply 2: connection not allowed by "
                           "ruleset"},
      {SMTPUV_EPROXYNETUNREACH, "CONNECT reply 3: network unreachable"},
      {SMTPUV_EPROXYHOSTUNREACH, "CONNECT reply 4: host unreachable"},
      {SMTPUV_EPROXYREFUSED, "CONNECT reply 5: connection refused by the "
                             "destination host"},
      {SMTPUV_EPROXYTTL, "CONNECT reply 6: TTL expired"},
      {SMTPUV_EPROXYCMD, "CONNECT reply 7: command not supported"},
      {SMTPUV_EPROXYATYP, "CONNECT reply 8: address type not supported"},
  };
  for (int i = 0; i < 8; i++) {
    char reply[10] = "\x05\x00\x00\x01\x00\x00\x00\x00\x00\x00";
    reply[1] = (char)(i + 1);
    /* reported as soon as REP is in: two bytes are enough */
    expect_failure(NULL, NULL, S("\x05\x00"), reply, 2, reps[i].err,
                   reps[i].text);
    expect_failure(NULL, NULL, S("\x05\x00"), reply, 10, reps[i].err,
                   reps[i].text);
    /* strerror says the same in its own words */
    assert_non_null(strstr(smtpuv_strerror(reps[i].err), "SOCKS5 proxy reply"));
  }
  expect_failure(NULL, NULL, S("\x05\x00"), S("\x05\x09"), SMTPUV_EPROXY,
                 "CONNECT reply: unknown code 9");
  expect_failure(NULL, NULL, S("\x05\x00"), S("\x04\x00"), SMTPUV_EPROXY,
                 "CONNECT reply: version 4, not 5");
  expect_failure(NULL, NULL, S("\x05\x00"), S("\x05\x00\x01"), SMTPUV_EPROXY,
                 "CONNECT reply: reserved byte X'01'");
  expect_failure(NULL, NULL, S("\x05\x00"), S("\x05\x00\x00\x02"),
                 SMTPUV_EPROXY, "CONNECT reply: address type 2");
  assert_string_equal(smtpuv_err_name(SMTPUV_EPROXYAUTH), "SMTPUV_EPROXYAUTH");
  assert_string_equal(smtpuv_strerror(SMTPUV_EPROXYREFUSED),
                      "SOCKS5 proxy reply 5: connection refused by the "
                      "destination host");
}

static void test_params(void **state) {
  (void)state;
  smtpuv_socks5 *s = (smtpuv_socks5 *)1;
  smtpuv_socks5_params sp = SMTPUV_SOCKS5_PARAMS_INIT;
  assert_int_equal(smtpuv_socks5_new(NULL, NULL, &s), SMTPUV_EINVAL);
  assert_null(s);
  assert_int_equal(smtpuv_socks5_new(NULL, &sp, NULL), SMTPUV_EINVAL);
  assert_int_equal(smtpuv_socks5_new(NULL, &sp, &s), SMTPUV_EINVAL); /* host */
  sp.host = "mx.example.org";
  assert_int_equal(smtpuv_socks5_new(NULL, &sp, &s), SMTPUV_EINVAL); /* port */
  sp.port = 25;
  sp.struct_size = 8;
  assert_int_equal(smtpuv_socks5_new(NULL, &sp, &s), SMTPUV_EINVAL);
  sp.struct_size = sizeof sp;
  const char *bad_hosts[] = {"", "a b", "a\r\nb", "[::1", "[]", "[1.2.3.4]",
                             "\xc3\xa9.example"};
  for (size_t i = 0; i < sizeof bad_hosts / sizeof bad_hosts[0]; i++) {
    sp.host = bad_hosts[i];
    assert_int_equal(smtpuv_socks5_new(NULL, &sp, &s), SMTPUV_EINVAL);
  }
  char longest[257];
  memset(longest, 'a', 256);
  longest[256] = '\0';
  sp.host = longest;
  assert_int_equal(smtpuv_socks5_new(NULL, &sp, &s), SMTPUV_EINVAL);
  longest[255] = '\0'; /* 255: the most a length octet says */
  assert_int_equal(smtpuv_socks5_new(NULL, &sp, &s), 0);
  const void *ptr;
  size_t len;
  smtpuv_socks5_outgoing(s, &ptr, &len);
  smtpuv_socks5_consumed(s, 100); /* clamped */
  size_t used;
  assert_int_equal(smtpuv_socks5_feed(s, "\x05\x00", 2, &used), 0);
  smtpuv_socks5_outgoing(s, &ptr, &len);
  assert_int_equal(len, 4 + 1 + 255 + 2);
  assert_int_equal(((const unsigned char *)ptr)[4], 255);
  smtpuv_socks5_free(s);

  sp.host = "::1"; /* a bare IPv6 literal */
  assert_int_equal(smtpuv_socks5_new(NULL, &sp, &s), 0);
  smtpuv_socks5_consumed(s, 3);
  assert_int_equal(smtpuv_socks5_feed(s, "\x05\x00", 2, &used), 0);
  expect_out(s, S("\x05\x01\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
                  "\x00\x00\x00\x00\x00\x01\x00\x19"));
  smtpuv_socks5_free(s);

  /* credentials: both or none, 1..255 bytes each */
  sp.host = "mx";
  char cred[257];
  memset(cred, 'u', 256);
  cred[256] = '\0';
  const char *bad[][2] = {{"u", NULL}, {NULL, "p"}, {"", "p"}, {"u", ""},
                          {cred, "p"}, {"u", cred}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    sp.username = bad[i][0];
    sp.password = bad[i][1];
    assert_int_equal(smtpuv_socks5_new(NULL, &sp, &s), SMTPUV_EINVAL);
  }
  cred[255] = '\0';
  sp.username = cred;
  sp.password = cred;
  assert_int_equal(smtpuv_socks5_new(NULL, &sp, &s), 0);
  smtpuv_socks5_consumed(s, 4);
  assert_int_equal(smtpuv_socks5_feed(s, "\x05\x02", 2, &used), 0);
  smtpuv_socks5_outgoing(s, &ptr, &len);
  assert_int_equal(len, 3 + 2 * 255);
  smtpuv_socks5_free(s);

  /* NULL arguments */
  smtpuv_socks5_free(NULL);
  assert_int_equal(smtpuv_socks5_feed(NULL, "", 0, &used), SMTPUV_EINVAL);
  assert_int_equal(smtpuv_socks5_state_of(NULL), SMTPUV_SOCKS5_FAILED);
  assert_int_equal(smtpuv_socks5_error(NULL), SMTPUV_EINVAL);
  assert_string_equal(smtpuv_socks5_error_text(NULL), "");
  assert_int_equal(smtpuv_socks5_reply_code(NULL), -1);
  smtpuv_socks5_outgoing(NULL, &ptr, &len);
  assert_int_equal(len, 0);
  smtpuv_socks5_consumed(NULL, 1);
  sp.username = sp.password = NULL;
  assert_int_equal(smtpuv_socks5_new(NULL, &sp, &s), 0);
  assert_int_equal(smtpuv_socks5_feed(s, NULL, 1, &used), SMTPUV_EINVAL);
  assert_int_equal(smtpuv_socks5_feed(s, "x", 1, NULL), SMTPUV_EINVAL);
  assert_int_equal(smtpuv_socks5_feed(s, NULL, 0, &used), 0);
  smtpuv_socks5_free(s);
}

/* The allocator: its own object only; failure is SMTPUV_ENOMEM; nothing
   leaks; a bad allocator is refused. */
static void test_allocator(void **state) {
  (void)state;
  smtpuv_socks5_params sp = SMTPUV_SOCKS5_PARAMS_INIT;
  sp.host = "mx";
  sp.port = 25;
  test_mem tm;
  test_mem_init(&tm, 1);
  smtpuv_socks5 *s;
  assert_int_equal(smtpuv_socks5_new(&tm.mem, &sp, &s), SMTPUV_ENOMEM);
  assert_null(s);
  test_mem_init(&tm, 0);
  assert_int_equal(smtpuv_socks5_new(&tm.mem, &sp, &s), 0);
  assert_int_equal(tm.live, 1);
  smtpuv_socks5_free(s);
  assert_int_equal(tm.live, 0);
  smtpuv_mem bad = tm.mem;
  bad.calloc = NULL;
  assert_int_equal(smtpuv_socks5_new(&bad, &sp, &s), SMTPUV_EINVAL);
}

/* Credentials leave no trace in the object once written, nor after a
   failure, nor at free (checked through an allocator that keeps the
   freed memory readable). */
static unsigned char *last_block;
static size_t last_size;
static void *keep_calloc(size_t k, size_t n, void *u) {
  (void)u;
  last_size = k * n;
  last_block = calloc(k, n);
  return last_block;
}
static void keep_free(void *p, void *u) {
  (void)p;
  (void)u; /* freed at the end of the test */
}
static void *keep_malloc(size_t n, void *u) {
  (void)u;
  return malloc(n);
}
static void *keep_realloc(void *p, size_t n, void *u) {
  (void)u;
  return realloc(p, n);
}

static int contains(const char *needle) {
  size_t n = strlen(needle);
  for (size_t i = 0; i + n <= last_size; i++)
    if (memcmp(last_block + i, needle, n) == 0)
      return 1;
  return 0;
}

static void test_wipe(void **state) {
  (void)state;
  smtpuv_mem m = {NULL, keep_malloc, keep_free, keep_calloc, keep_realloc};
  smtpuv_socks5_params sp = SMTPUV_SOCKS5_PARAMS_INIT;
  sp.host = "mx";
  sp.port = 25;
  sp.username = "user-marker";
  sp.password = "password-marker";
  smtpuv_socks5 *s;
  size_t used;

  /* written: wiped as consumed, in two steps */
  assert_int_equal(smtpuv_socks5_new(&m, &sp, &s), 0);
  assert_true(contains("password-marker"));
  smtpuv_socks5_consumed(s, 4);
  assert_int_equal(smtpuv_socks5_feed(s, "\x05\x02", 2, &used), 0);
  smtpuv_socks5_consumed(s, 10);
  assert_true(contains("password-marker")); /* not written yet */
  smtpuv_socks5_consumed(s, 100);
  assert_false(contains("user-marker"));
  assert_false(contains("password-marker"));
  assert_int_equal(smtpuv_socks5_feed(s, "\x01\x00", 2, &used), 0);
  smtpuv_socks5_free(s);
  free(last_block);

  /* the proxy picked no authentication, then failed: copies wiped */
  assert_int_equal(smtpuv_socks5_new(&m, &sp, &s), 0);
  assert_int_equal(smtpuv_socks5_feed(s, "\x05\x00\x05\x01", 4, &used),
                   SMTPUV_EPROXYFAIL);
  assert_false(contains("password-marker"));
  smtpuv_socks5_free(s);
  free(last_block);

  /* never used: wiped at free */
  assert_int_equal(smtpuv_socks5_new(&m, &sp, &s), 0);
  assert_true(contains("password-marker"));
  smtpuv_socks5_free(s);
  assert_false(contains("password-marker"));
  assert_false(contains("user-marker"));
  free(last_block);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_noauth),   cmocka_unit_test(test_userpass),
      cmocka_unit_test(test_offered_unused), cmocka_unit_test(test_failures),
      cmocka_unit_test(test_params),   cmocka_unit_test(test_allocator),
      cmocka_unit_test(test_wipe),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

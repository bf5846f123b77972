/* SPDX-License-Identifier: MIT */
/*
 * Output: blocks that never move, iovec views, consumption, the spare
 * block, and large bodies through DATA and BDAT compared with a plain
 * byte-by-byte reference encoder.
 */
#include "test_proto_util.h"

/* Reference: CR, LF and CRLF become CRLF; DATA doubles a leading dot and
   ends with [CRLF] ".\r\n"; BDAT's last chunk ends with [CRLF]. */
static size_t ref_encode(const char *in, size_t len, char *out, int data) {
  size_t n = 0;
  int ls = 1;
  for (size_t i = 0; i < len; i++) {
    char c = in[i];
    if (c == '\r' || c == '\n') {
      out[n++] = '\r';
      out[n++] = '\n';
      if (c == '\r' && i + 1 < len && in[i + 1] == '\n')
        i++;
      ls = 1;
      continue;
    }
    if (ls && data && c == '.')
      out[n++] = '.';
    out[n++] = c;
    ls = 0;
  }
  if (len > 0 && !ls) {
    out[n++] = '\r';
    out[n++] = '\n';
  }
  if (data) {
    memcpy(out + n, ".\r\n", 3);
    n += 3;
  }
  return n;
}

/* Text with every awkward ending, dots and long lines. */
static void make_body(char *b, size_t len, unsigned seed) {
  static const char *const bits[] = {"\r\n", "\n", "\r", ".", "..", "\r\n.",
                                     "\n.\n", "\r.\r", "x", "hello world"};
  size_t n = 0;
  while (n < len) {
    seed = seed * 1103515245u + 12345u;
    unsigned r = (seed >> 16) % 40;
    const char *s = r < 10 ? bits[r] : "abcdefghijklmnopqrstuvwxyz0123456789ABCD";
    size_t k = strlen(s);
    if (r >= 10)
      k = r;
    if (k > len - n)
      k = len - n;
    memcpy(b + n, s, k);
    n += k;
  }
}

/* DATA through to the 354, output consumed. */
static smtpuv_proto *at_data(const smtpuv_mem *mem) {
  smtpuv_proto *p = session_with(mem, EHLO_FULL);
  assert_int_equal(smtpuv_proto_mail(p, "a@b", NULL), 0);
  assert_int_equal(smtpuv_proto_rcpt(p, "c@d", NULL), 0);
  assert_int_equal(smtpuv_proto_data(p), 0);
  assert_int_equal(feed_str(p, "250 ok\r\n250 ok\r\n354 go\r\n"), 0);
  pop(p, SMTPUV_CMD_MAIL, 250);
  pop(p, SMTPUV_CMD_RCPT, 250);
  pop(p, SMTPUV_CMD_DATA, 354);
  smtpuv_proto_consumed(p, smtpuv_proto_pending_output(p));
  return p;
}

static void check_blocks_bounded(smtpuv_proto *p) {
  smtpuv_iov iov[64];
  size_t skip = 0;
  int n;
  while ((n = smtpuv_proto_outgoing_iov(p, skip, iov, 64)) > 0)
    for (int i = 0; i < n; i++) {
      assert_true(iov[i].len <= SMTPUV_OUTBUF_BLOCK);
      skip += iov[i].len;
    }
  assert_int_equal(skip, smtpuv_proto_pending_output(p));
}

/* A large body in many chunkings equals the reference encoding. */
static void test_data_large(void **state) {
  (void)state;
  const size_t len = 700 * 1000;
  char *body = malloc(len), *want = malloc(2 * len + 5);
  assert_non_null(body);
  assert_non_null(want);
  make_body(body, len, 7);
  size_t wlen = ref_encode(body, len, want, 1);
  static const size_t steps[] = {len, 1, 2, 3, 7, 4096, 65536, 100003};
  for (size_t s = 0; s < sizeof steps / sizeof steps[0]; s++) {
    smtpuv_proto *p = at_data(NULL);
    size_t step = steps[s] == 1 ? 1 : steps[s];
    size_t max = steps[s] == 1 ? 20000 : len; /* per byte: a prefix */
    for (size_t off = 0; off < max; off += step) {
      size_t k = step < max - off ? step : max - off;
      assert_int_equal(smtpuv_proto_data_write(p, body + off, k), 0);
    }
    assert_int_equal(smtpuv_proto_data_end(p), 0);
    check_blocks_bounded(p);
    if (max == len) {
      expect_outn(p, want, wlen);
    } else {
      char *w2 = malloc(2 * max + 5);
      size_t n2 = ref_encode(body, max, w2, 1);
      expect_outn(p, w2, n2);
      free(w2);
    }
    smtpuv_proto_free(p);
  }
  free(body);
  free(want);
}

/* Large BDAT chunks: the size in each header is exact. */
static void test_bdat_large(void **state) {
  (void)state;
  const size_t len = 300 * 1000;
  char *body = malloc(len), *want = malloc(2 * len + 2);
  assert_non_null(body);
  make_body(body, len, 11);
  size_t wlen = ref_encode(body, len, want, 0);
  smtpuv_proto *p = session_with(NULL, EHLO_FULL);
  assert_int_equal(smtpuv_proto_mail(p, "a@b", NULL), 0);
  assert_int_equal(smtpuv_proto_rcpt(p, "c@d", NULL), 0);
  smtpuv_proto_consumed(p, smtpuv_proto_pending_output(p));
  const size_t cut = 123457; /* the chunks split where they split */
  assert_int_equal(smtpuv_proto_bdat(p, body, cut, 0), 0);
  assert_int_equal(smtpuv_proto_bdat(p, body + cut, len - cut, 1), 0);
  check_blocks_bounded(p);
  /* sizes: the reference of the first part, minus a CRLF the second part
     may complete, is what the encoder wrote; check the sum and structure */
  size_t got_len;
  char *got = pending_copy(p, &got_len);
  size_t n1 = (size_t)strtoul(got + 5, NULL, 10);
  const char *c1 = strchr(got, '\n') + 1;
  const char *h2 = c1 + n1;
  assert_memory_equal(h2, "BDAT ", 5);
  size_t n2 = (size_t)strtoul(h2 + 5, NULL, 10);
  const char *c2 = strchr(h2, '\n') + 1;
  assert_memory_equal(strchr(h2, ' ') + 1 + strspn(h2 + 5, "0123456789"),
                      " LAST\r\n", 7);
  assert_int_equal(n1 + n2, wlen);
  assert_int_equal((size_t)(c2 - got) + n2, got_len);
  assert_memory_equal(c1, want, n1);
  assert_memory_equal(c2, want + n1, n2);
  free(got);
  smtpuv_proto_free(p);
  free(body);
  free(want);
}

/* A pointer from outgoing() stays valid while a lot more is appended. */
static void test_pointer_stability(void **state) {
  (void)state;
  smtpuv_proto *p = session_with(NULL, EHLO_FULL);
  assert_int_equal(smtpuv_proto_mail(p, "a@b", NULL), 0);
  const void *ptr, *ptr2_early;
  size_t len;
  smtpuv_proto_outgoing(p, &ptr, &len);
  assert_int_equal(len, 17);
  assert_memory_equal(ptr, "MAIL FROM:<a@b>\r\n", 17);
  assert_int_equal(smtpuv_proto_rcpt(p, "c@d", NULL), 0);
  smtpuv_proto_outgoing(p, &ptr2_early, &len);
  assert_ptr_equal(ptr2_early, ptr); /* small commands share the block */
  assert_int_equal(len, 17 + 15);
  size_t big = 3 * SMTPUV_OUTBUF_BLOCK;
  char *body = malloc(big);
  memset(body, 'q', big);
  assert_int_equal(smtpuv_proto_bdat(p, body, big, 1), 0);
  assert_memory_equal(ptr, "MAIL FROM:<a@b>\r\n", 17);
  const void *ptr2;
  smtpuv_proto_outgoing(p, &ptr2, &len);
  assert_ptr_equal(ptr, ptr2);
  assert_true(len >= 17);
  /* consume part of the first block: the rest keeps its address */
  smtpuv_proto_consumed(p, 5);
  smtpuv_proto_outgoing(p, &ptr2, &len);
  assert_ptr_equal(ptr2, (const char *)ptr + 5);
  assert_memory_equal(ptr2, "FROM:<a@b>\r\n", 12);

  /* iov: all spans, skipping across block boundaries */
  size_t total = smtpuv_proto_pending_output(p);
  smtpuv_iov iov[8];
  int n = smtpuv_proto_outgoing_iov(p, 0, iov, 8);
  assert_true(n >= 3);
  size_t sum = 0;
  for (int i = 0; i < n; i++)
    sum += iov[i].len;
  assert_int_equal(sum, total);
  n = smtpuv_proto_outgoing_iov(p, iov[0].len + 10, iov, 1);
  assert_int_equal(n, 1);
  assert_memory_equal(iov[0].base, "qqqq", 4);
  assert_int_equal(smtpuv_proto_outgoing_iov(p, total, iov, 8), 0);
  assert_int_equal(smtpuv_proto_outgoing_iov(p, total + 100, iov, 8), 0);
  assert_int_equal(smtpuv_proto_outgoing_iov(p, 0, iov, 0), 0);

  /* consume in odd steps; more than pending is clamped */
  while (smtpuv_proto_pending_output(p) > 0)
    smtpuv_proto_consumed(p, 9999);
  smtpuv_proto_consumed(p, 10);
  smtpuv_proto_outgoing(p, &ptr, &len);
  assert_int_equal(len, 0);
  free(body);
  smtpuv_proto_free(p);
}

/* Streaming a body (state DATA) and consuming it allocates nothing after
   warm-up: the large spare block stays while the body goes on. (Small
   messages end to end: test_proto_heap.c.) */
static void test_spare_block(void **state) {
  (void)state;
  test_mem tm;
  test_mem_init(&tm, 0);
  smtpuv_proto *p = at_data(&tm.mem);
  char chunk[40000];
  make_body(chunk, sizeof chunk, 3);
  for (int i = 0; i < 4; i++) {
    assert_int_equal(smtpuv_proto_data_write(p, chunk, sizeof chunk), 0);
    smtpuv_proto_consumed(p, smtpuv_proto_pending_output(p));
  }
  unsigned long calls = tm.calls;
  for (int i = 0; i < 200; i++) {
    assert_int_equal(smtpuv_proto_data_write(p, chunk, sizeof chunk), 0);
    smtpuv_proto_consumed(p, smtpuv_proto_pending_output(p) / 2);
    assert_int_equal(smtpuv_proto_data_write(p, chunk, 100), 0);
    smtpuv_proto_consumed(p, smtpuv_proto_pending_output(p));
  }
  assert_int_equal(tm.calls, calls);
  /* commands too: into the tail block */
  assert_int_equal(smtpuv_proto_data_end(p), 0);
  for (int i = 0; i < 5; i++) {
    assert_int_equal(smtpuv_proto_noop(p), 0);
    assert_int_equal(feed_str(p, i == 0 ? "250 a\r\n250 b\r\n" : "250 b\r\n"),
                     0);
    if (i == 0)
      pop(p, SMTPUV_CMD_DATA_END, 250);
    pop(p, SMTPUV_CMD_NOOP, 250);
  }
  smtpuv_proto_consumed(p, smtpuv_proto_pending_output(p));
  assert_true(tm.calls - calls <= 1); /* at most the input buffer */
  smtpuv_proto_free(p);
  assert_int_equal(tm.live, 0);
}

/* 8-bit refused before anything is written, even at the end of a chunk. */
static void test_data_8bit(void **state) {
  (void)state;
  smtpuv_proto *p = at_data(NULL);
  char chunk[5000];
  memset(chunk, 'a', sizeof chunk);
  chunk[sizeof chunk - 1] = (char)0x80;
  assert_int_equal(smtpuv_proto_data_write(p, chunk, sizeof chunk),
                   SMTPUV_E8BIT);
  assert_int_equal(smtpuv_proto_pending_output(p), 0);
  assert_int_equal(smtpuv_proto_data_write(p, chunk, sizeof chunk - 1), 0);
  assert_int_equal(smtpuv_proto_data_write(p, NULL, 0), 0);
  assert_int_equal(smtpuv_proto_data_write(p, NULL, 1), SMTPUV_EINVAL);
  smtpuv_proto_free(p);
}

/* An empty body is just the end mark; a body ending without a line ending
   gets one; the encoder state carries across writes. */
static void test_data_edges(void **state) {
  (void)state;
  smtpuv_proto *p = at_data(NULL);
  assert_int_equal(smtpuv_proto_data_end(p), 0);
  expect_out(p, ".\r\n");
  smtpuv_proto_free(p);

  p = at_data(NULL);
  assert_int_equal(smtpuv_proto_data_write(p, ".", 1), 0);
  assert_int_equal(smtpuv_proto_data_write(p, "\r", 1), 0);
  assert_int_equal(smtpuv_proto_data_write(p, "\n", 1), 0);
  assert_int_equal(smtpuv_proto_data_write(p, ".", 1), 0);
  assert_int_equal(smtpuv_proto_data_write(p, "\n.\r.", 4), 0);
  assert_int_equal(smtpuv_proto_data_end(p), 0);
  expect_out(p, "..\r\n..\r\n..\r\n..\r\n.\r\n");
  smtpuv_proto_free(p);

  /* SMTP smuggling attempt: "\n.\n" inside the body is no end mark */
  p = at_data(NULL);
  static const char smug[] = "a\n.\nMAIL FROM:<x@y>\r\n\r.\r";
  assert_int_equal(smtpuv_proto_data_write(p, smug, sizeof smug - 1), 0);
  assert_int_equal(smtpuv_proto_data_end(p), 0);
  expect_out(p, "a\r\n..\r\nMAIL FROM:<x@y>\r\n\r\n..\r\n.\r\n");
  smtpuv_proto_free(p);
}

/* smtpuv_body_wire_size(): what the server counts for SIZE= (normalised,
   final CRLF, no dot-stuffing), equal to the reference encoding in BDAT
   mode, to the size of a single BDAT LAST chunk, and to DATA's output
   without the stuffed dots and the end mark. */
static void test_body_wire_size(void **state) {
  (void)state;
  static const struct {
    const char *body;
    uint64_t size;
  } fixed[] = {{"", 0},          {"a", 3},        {"a\n", 3},
               {"a\r", 3},       {"a\r\n", 3},    {"\r\n", 2},
               {"\n\n", 4},      {"\r\r\n", 4},   {".\n", 3},
               {"..\r\n.", 7},   {"a\n.\nb", 9},  {"x\r.\ry\n", 9}};
  for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
    if (smtpuv_body_wire_size(fixed[i].body, strlen(fixed[i].body)) !=
        fixed[i].size)
      fail_msg("\"%s\": %llu, want %llu", fixed[i].body,
               (unsigned long long)smtpuv_body_wire_size(
                   fixed[i].body, strlen(fixed[i].body)),
               (unsigned long long)fixed[i].size);
  assert_int_equal(smtpuv_body_wire_size(NULL, 5), 0);

  static const size_t lens[] = {1, 2, 3, 17, 64, 65, 1000, 4096, 70001,
                                300000};
  char *body = malloc(300000), *want = malloc(2 * 300000 + 5);
  assert_non_null(body);
  assert_non_null(want);
  for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
    size_t len = lens[k];
    make_body(body, len, (unsigned)(k + 1));
    uint64_t size = smtpuv_body_wire_size(body, len);
    assert_int_equal(size, ref_encode(body, len, want, 0));

    /* one BDAT LAST chunk announces the same size */
    smtpuv_proto *p = session_with(NULL, EHLO_FULL);
    assert_int_equal(smtpuv_proto_mail(p, "a@b", NULL), 0);
    assert_int_equal(smtpuv_proto_rcpt(p, "c@d", NULL), 0);
    smtpuv_proto_consumed(p, smtpuv_proto_pending_output(p));
    assert_int_equal(smtpuv_proto_bdat(p, body, len, 1), 0);
    char *got = pending_copy(p, NULL);
    assert_int_equal(strtoull(got + 5, NULL, 10), size);
    free(got);
    smtpuv_proto_free(p);

    /* DATA: the same bytes plus stuffed dots plus ".\r\n" */
    p = at_data(NULL);
    assert_int_equal(smtpuv_proto_data_write(p, body, len), 0);
    assert_int_equal(smtpuv_proto_data_end(p), 0);
    size_t dlen;
    got = pending_copy(p, &dlen);
    size_t dots = 0;
    for (size_t i = 0; i + 1 < dlen; i++)
      dots += (i == 0 || got[i - 1] == '\n') && got[i] == '.' &&
              got[i + 1] == '.';
    assert_int_equal(size, dlen - dots - 3);
    free(got);
    smtpuv_proto_free(p);
  }
  free(body);
  free(want);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_data_large),
      cmocka_unit_test(test_bdat_large),
      cmocka_unit_test(test_pointer_stability),
      cmocka_unit_test(test_spare_block),
      cmocka_unit_test(test_data_8bit),
      cmocka_unit_test(test_data_edges),
      cmocka_unit_test(test_body_wire_size),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

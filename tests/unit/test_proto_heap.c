/* SPDX-License-Identifier: MIT */
/*
 * What the session leaves in memory: secrets are wiped before their memory
 * is freed or reused, an idle session holds a few KiB whatever it sent or
 * received before, and small messages do not allocate once warmed up.
 *
 * The allocator here keeps every live block on a list with its size, so a
 * test can count the live bytes, search every live block, and search each
 * block at the moment it is freed (or moved by realloc).
 */
#include "test_proto_util.h"

#include "protocol/idle.h"

typedef struct hdr {
  struct hdr *prev, *next;
  size_t size;
  size_t pad; /* keeps the payload 16-byte aligned */
} hdr;

typedef struct heap {
  smtpuv_mem mem;
  hdr live;            /* list head */
  size_t live_bytes;   /* payload bytes of live blocks */
  unsigned long calls; /* allocation calls */
  const char *secrets[4]; /* searched for in every freed block */
  unsigned leaked[4];     /* freed blocks that still held secrets[i] */
} heap;

static int holds(const void *p, size_t n, const char *s) {
  size_t k = strlen(s);
  const char *b = p;
  for (size_t i = 0; k <= n && i <= n - k; i++)
    if (b[i] == s[0] && memcmp(b + i, s, k) == 0)
      return 1;
  return 0;
}

static void on_release(heap *h, hdr *b) {
  for (int i = 0; i < 4 && h->secrets[i] != NULL; i++)
    if (holds(b + 1, b->size, h->secrets[i]))
      h->leaked[i]++;
  b->prev->next = b->next;
  b->next->prev = b->prev;
  h->live_bytes -= b->size;
}

static void *h_malloc(size_t n, void *user) {
  heap *h = user;
  h->calls++;
  hdr *b = malloc(sizeof *b + (n ? n : 1));
  if (b == NULL)
    return NULL;
  memset(b + 1, 0xA5, n); /* defined bytes to search (no base64 in them) */
  b->size = n;
  b->next = h->live.next;
  b->prev = &h->live;
  h->live.next->prev = b;
  h->live.next = b;
  h->live_bytes += n;
  return b + 1;
}

static void h_free(void *p, void *user) {
  if (p == NULL)
    return;
  hdr *b = (hdr *)p - 1;
  on_release(user, b);
  free(b);
}

static void *h_calloc(size_t k, size_t n, void *user) {
  void *p = h_malloc(k * n, user);
  if (p != NULL)
    memset(p, 0, k * n);
  return p;
}

static void *h_realloc(void *p, size_t n, void *user) {
  if (p == NULL)
    return h_malloc(n, user);
  hdr *old = (hdr *)p - 1;
  void *q = h_malloc(n, user);
  if (q == NULL)
    return NULL;
  memcpy(q, p, old->size < n ? old->size : n);
  h_free(p, user);
  return q;
}

static void heap_init(heap *h) {
  memset(h, 0, sizeof *h);
  h->mem.user = h;
  h->mem.malloc = h_malloc;
  h->mem.free = h_free;
  h->mem.calloc = h_calloc;
  h->mem.realloc = h_realloc;
  h->live.next = h->live.prev = &h->live;
}

/* Number of live blocks holding `s`. */
static int live_holding(const heap *h, const char *s) {
  int n = 0;
  for (const hdr *b = h->live.next; b != &h->live; b = b->next)
    n += holds(b + 1, b->size, s);
  return n;
}

static void drain(smtpuv_proto *p) {
  smtpuv_proto_consumed(p, smtpuv_proto_pending_output(p));
}

/* Pop everything available; returns how many replies. */
static int pop_all(smtpuv_proto *p) {
  smtpuv_reply r;
  int n = 0, rc;
  while ((rc = smtpuv_proto_next_reply(p, &r)) == 1)
    n++;
  assert_int_equal(rc, 0);
  return n;
}

/* A base64 string of `n` characters that cannot occur by chance. */
static char *make_secret(size_t n, char seed) {
  static const char b64[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  char *s = malloc(n + 1);
  assert_non_null(s);
  unsigned x = (unsigned char)seed * 2654435761u;
  for (size_t i = 0; i < n; i++) {
    x = x * 1103515245u + 12345u;
    s[i] = b64[(x >> 16) & 63];
  }
  s[n] = '\0';
  return s;
}

#define EHLO_AUTH "mx.example\nPIPELINING\n8BITMIME\nAUTH PLAIN LOGIN XOAUTH2"

/* ---- 1. secrets ---------------------------------------------------------- */

/* AUTH's initial response, LOGIN responses and a long token: once their
   bytes are written, no block that held them is freed or reused unwiped,
   and none of them is left anywhere in the session's heap. */
static void test_auth_secrets_wiped(void **state) {
  (void)state;
  heap h;
  heap_init(&h);
  char *plain = make_secret(60, 'p');  /* AUTH PLAIN initial response */
  char *user = make_secret(24, 'u');   /* AUTH LOGIN user name */
  char *pass = make_secret(40, 'w');   /* AUTH LOGIN password */
  char *token = make_secret(6000, 't'); /* XOAUTH2: larger than a small block */
  h.secrets[0] = plain;
  h.secrets[1] = user;
  h.secrets[2] = pass;
  h.secrets[3] = token;

  smtpuv_proto *p = session_with(&h.mem, EHLO_AUTH);
  /* PLAIN refused; the line shares its block with nothing else */
  assert_int_equal(smtpuv_proto_auth(p, "PLAIN", plain), 0);
  smtpuv_proto_consumed(p, 7); /* partly written first */
  drain(p);
  assert_int_equal(live_holding(&h, plain), 0);
  assert_int_equal(feed_str(p, "535 5.7.8 no\r\n"), 0);
  pop(p, SMTPUV_CMD_AUTH, 535);

  /* LOGIN: the password shares its block with later commands */
  assert_int_equal(smtpuv_proto_auth(p, "LOGIN", NULL), 0);
  drain(p);
  assert_int_equal(feed_str(p, "334 VXNlcm5hbWU6\r\n"), 0);
  pop(p, SMTPUV_CMD_AUTH, 334);
  assert_int_equal(smtpuv_proto_auth_response(p, user), 0);
  drain(p);
  assert_int_equal(feed_str(p, "334 UGFzc3dvcmQ6\r\n"), 0);
  pop(p, SMTPUV_CMD_AUTH, 334);
  assert_int_equal(smtpuv_proto_auth_response(p, pass), 0);
  assert_int_equal(feed_str(p, "535 5.7.8 no\r\n"), 0);
  pop(p, SMTPUV_CMD_AUTH, 535);
  assert_int_equal(smtpuv_proto_noop(p), 0); /* after it, same block */
  assert_int_equal(live_holding(&h, pass), 1); /* not yet written */
  drain(p);
  assert_int_equal(live_holding(&h, user), 0);
  assert_int_equal(live_holding(&h, pass), 0);
  assert_int_equal(feed_str(p, "250 ok\r\n"), 0);
  pop(p, SMTPUV_CMD_NOOP, 250);

  /* a long token: a block of its own */
  assert_int_equal(smtpuv_proto_auth(p, "XOAUTH2", token), 0);
  drain(p);
  assert_int_equal(live_holding(&h, token), 0);
  assert_int_equal(feed_str(p, "235 2.7.0 ok\r\n"), 0);
  pop(p, SMTPUV_CMD_AUTH, 235);

  /* the recycled blocks carry on with a message */
  assert_int_equal(smtpuv_proto_mail(p, "a@b", NULL), 0);
  assert_int_equal(smtpuv_proto_rcpt(p, "c@d", NULL), 0);
  drain(p);
  smtpuv_proto_free(p);
  assert_int_equal(h.live_bytes, 0);
  for (int i = 0; i < 4; i++)
    if (h.leaked[i] != 0)
      fail_msg("secret %d was in %u freed block(s)", i, h.leaked[i]);
  free(plain);
  free(user);
  free(pass);
  free(token);
}

/* Freeing the session with AUTH bytes still pending wipes them too. */
static void test_auth_secret_wiped_on_free(void **state) {
  (void)state;
  heap h;
  heap_init(&h);
  char *plain = make_secret(80, 'q');
  h.secrets[0] = plain;
  smtpuv_proto *p = session_with(&h.mem, EHLO_AUTH);
  assert_int_equal(smtpuv_proto_auth(p, "PLAIN", plain), 0);
  smtpuv_proto_consumed(p, 20);
  assert_int_equal(live_holding(&h, plain), 1);
  smtpuv_proto_free(p);
  assert_int_equal(h.leaked[0], 0);
  free(plain);
}

/* ---- 2. idle memory ------------------------------------------------------ */

/* The session's own count of its heap is the allocator's count. */
static void check_heap_count(const heap *h, const smtpuv_proto *p) {
  assert_int_equal(smtpuv__proto_heap_bytes(p), h->live_bytes);
}

/* Small enough for thousands of idle connections: the object, a 1 KiB
   input buffer, the ring, the EHLO record and one small output block. */
#define IDLE_MAX (8 * 1024)

/* DATA through to the 354, drained. */
static void start_data_with(smtpuv_proto *p, const smtpuv_mail_params *mp) {
  assert_int_equal(smtpuv_proto_mail(p, "a@example.org", mp), 0);
  assert_int_equal(smtpuv_proto_rcpt(p, "b@example.org", NULL), 0);
  assert_int_equal(smtpuv_proto_data(p), 0);
  drain(p);
  assert_int_equal(feed_str(p, "250 ok\r\n250 ok\r\n354 go\r\n"), 0);
  assert_int_equal(pop_all(p), 3);
}

static void start_data(smtpuv_proto *p) { start_data_with(p, NULL); }

/* After a 1 MiB body streamed in 64 KiB writes with partial drains, the
   idle session is back to a few KiB. */
static void test_idle_after_large_body(void **state) {
  (void)state;
  heap h;
  heap_init(&h);
  smtpuv_proto *p = session_with(&h.mem, EHLO_FULL);
  drain(p);
  pop_all(p);
  check_heap_count(&h, p);
  size_t idle0 = h.live_bytes;
  assert_true(idle0 <= IDLE_MAX);

  const size_t len = 1 << 20, chunk = 65536;
  char *body = malloc(len);
  assert_non_null(body);
  for (size_t i = 0; i < len; i++)
    body[i] = i % 73 == 72 ? '\n' : (char)('a' + i % 26);
  for (int round = 0; round < 2; round++) {
    start_data(p);
    size_t peak = 0;
    unsigned long warm = 0;
    for (size_t off = 0; off < len; off += chunk) {
      if (off == 4 * chunk)
        warm = h.calls;
      assert_int_equal(smtpuv_proto_data_write(p, body + off, chunk), 0);
      if (h.live_bytes > peak)
        peak = h.live_bytes;
      /* the transport writes a bit more than half each time */
      smtpuv_proto_consumed(p, smtpuv_proto_pending_output(p) / 2 + 1000);
    }
    /* streaming reuses the large blocks: no malloc once warmed up */
    assert_int_equal(h.calls, warm);
    assert_int_equal(smtpuv_proto_data_end(p), 0);
    check_heap_count(&h, p);
    assert_true(peak > 2 * chunk); /* the body did go through large blocks */
    drain(p);
    assert_int_equal(feed_str(p, "250 2.0.0 queued\r\n"), 0);
    pop(p, SMTPUV_CMD_DATA_END, 250);
    assert_int_equal(pop_all(p), 0);
    check_heap_count(&h, p);
    if (h.live_bytes > IDLE_MAX)
      fail_msg("idle session holds %zu bytes after a 1 MiB body",
               h.live_bytes);
  }

  /* BDAT too */
  assert_int_equal(smtpuv_proto_mail(p, "a@example.org", NULL), 0);
  assert_int_equal(smtpuv_proto_rcpt(p, "b@example.org", NULL), 0);
  for (size_t off = 0; off < len; off += chunk) {
    assert_int_equal(smtpuv_proto_bdat(p, body + off, chunk, off + chunk == len),
                     0);
    smtpuv_proto_consumed(p, smtpuv_proto_pending_output(p) - 100);
  }
  drain(p);
  char replies[40 * 16 + 32] = "250 ok\r\n250 ok\r\n";
  for (size_t i = 0; i < len / chunk; i++)
    strcat(replies, "250 ok\r\n");
  assert_int_equal(feed_str(p, replies), 0);
  assert_int_equal(pop_all(p), 2 + (int)(len / chunk));
  check_heap_count(&h, p);
  assert_true(h.live_bytes <= IDLE_MAX);
  smtpuv_proto_free(p);
  assert_int_equal(h.live_bytes, 0);
  free(body);
}

/* A long pipeline grows the ring and the input buffer (hundreds of RCPT
   replies in one read, a 30 KiB multi-line reply); popped, they shrink. */
static void test_idle_after_large_replies(void **state) {
  (void)state;
  heap h;
  heap_init(&h);
  smtpuv_proto *p = session_with(&h.mem, EHLO_FULL);
  assert_int_equal(smtpuv_proto_mail(p, "a@example.org", NULL), 0);
  enum { N = 500 };
  size_t cap = 64 + N * 64;
  char *replies = malloc(cap);
  assert_non_null(replies);
  strcpy(replies, "250 2.1.0 ok\r\n");
  for (int i = 0; i < N; i++) {
    char rcpt[32];
    snprintf(rcpt, sizeof rcpt, "r%d@example.org", i);
    assert_int_equal(smtpuv_proto_rcpt(p, rcpt, NULL), 0);
    strcat(replies, "250 2.1.5 recipient ok, with some text\r\n");
  }
  assert_int_equal(smtpuv_proto_rset(p), 0);
  strcat(replies, "250 2.0.0 reset\r\n");
  drain(p);
  assert_int_equal(feed_str(p, replies), 0);
  size_t grown = h.live_bytes;
  check_heap_count(&h, p);
  assert_int_equal(pop_all(p), N + 2);
  check_heap_count(&h, p);
  assert_true(grown > 4 * IDLE_MAX);
  if (h.live_bytes > IDLE_MAX)
    fail_msg("idle session holds %zu bytes after %d replies", h.live_bytes,
             N + 2);

  /* one large multi-line reply */
  assert_int_equal(smtpuv_proto_noop(p), 0);
  drain(p);
  for (int i = 0; i < 300; i++)
    assert_int_equal(feed_str(p, "250-a line of about a hundred bytes, the "
                                 "kind a chatty server sends to everyone\r\n"),
                     0);
  assert_int_equal(feed_str(p, "250 ok\r\n"), 0);
  assert_true(h.live_bytes > 4 * IDLE_MAX);
  smtpuv_reply r = pop(p, SMTPUV_CMD_NOOP, 250);
  assert_int_equal(r.nlines, 301);
  assert_int_equal(pop_all(p), 0);
  check_heap_count(&h, p);
  assert_true(h.live_bytes <= IDLE_MAX);
  smtpuv_proto_free(p);
  free(replies);
}

/* Small messages and commands, pipelined or not, allocate nothing once the
   first one went through (the small output block and the input buffer are
   reused); reading the replies in pieces does not change that. */
static void steady_small_messages(const char *ehlo, int pipelined) {
  heap h;
  heap_init(&h);
  smtpuv_proto *p = session_with(&h.mem, ehlo);
  char body[2900]; /* with its CRs, almost a small block */
  for (size_t i = 0; i < sizeof body; i++)
    body[i] = i % 60 == 59 ? '\n' : (char)('A' + i % 26);
  unsigned long calls = 0;
  for (int m = 0; m < 30; m++) {
    if (m == 2)
      calls = h.calls;
    assert_int_equal(smtpuv_proto_mail(p, "sender@example.org", NULL), 0);
    if (!pipelined) {
      drain(p);
      assert_int_equal(feed_str(p, "250 2.1.0 ok\r\n"), 0);
      pop(p, SMTPUV_CMD_MAIL, 250);
    }
    for (int r = 0; r < 3; r++) {
      assert_int_equal(smtpuv_proto_rcpt(p, "rcpt@example.net", NULL), 0);
      if (!pipelined) {
        drain(p);
        assert_int_equal(feed_str(p, "250 2.1.5 ok\r\n"), 0);
        pop(p, SMTPUV_CMD_RCPT, 250);
      }
    }
    assert_int_equal(smtpuv_proto_data(p), 0);
    drain(p);
    const char *rs = pipelined ? "250 2.1.0 ok\r\n250 2.1.5 ok\r\n250 2.1.5 "
                                 "ok\r\n250 2.1.5 ok\r\n354 go ahead\r\n"
                               : "354 go ahead\r\n";
    for (const char *s = rs; *s != '\0';) { /* in pieces */
      size_t k = strnlen(s, 5);
      assert_int_equal(smtpuv_proto_feed(p, s, k), 0);
      s += k;
    }
    assert_int_equal(pop_all(p), pipelined ? 5 : 1);
    assert_int_equal(smtpuv_proto_data_write(p, body, sizeof body), 0);
    assert_int_equal(smtpuv_proto_data_end(p), 0);
    drain(p);
    assert_int_equal(feed_str(p, "250 2.0.0 Ok: queued as 4XqABCDEF\r\n"), 0);
    pop(p, SMTPUV_CMD_DATA_END, 250);
  }
  assert_int_equal(smtpuv_proto_noop(p), 0);
  drain(p);
  assert_int_equal(feed_str(p, "250 ok\r\n"), 0);
  pop(p, SMTPUV_CMD_NOOP, 250);
  if (h.calls != calls)
    fail_msg("%lu allocations in steady state", h.calls - calls);
  assert_true(h.live_bytes <= IDLE_MAX);
  smtpuv_proto_free(p);
}

static void test_steady_small_pipelined(void **state) {
  (void)state;
  steady_small_messages(EHLO_FULL, 1);
}

static void test_steady_small_lockstep(void **state) {
  (void)state;
  steady_small_messages(EHLO_BASIC, 0);
}

/* An idle session gives back its spare output block and its empty input
   buffer (smtpuv__proto_release_idle, for transports holding many idle
   connections); the next transaction works as before and allocates them
   again; bytes not yet written or replies not yet popped are kept. */
static void test_release_idle(void **state) {
  (void)state;
  heap h;
  heap_init(&h);
  smtpuv_proto *p = session_with(&h.mem, EHLO_FULL);
  drain(p);
  pop_all(p);
  size_t idle0 = h.live_bytes;
  smtpuv__proto_release_idle(p);
  check_heap_count(&h, p);
  if (idle0 - h.live_bytes < 4096)
    fail_msg("released only %zu of %zu bytes", idle0 - h.live_bytes, idle0);
  size_t bare = h.live_bytes;
  smtpuv__proto_release_idle(p); /* idempotent */
  assert_int_equal(h.live_bytes, bare);
  for (int round = 0; round < 3; round++) {
    /* output waiting: kept, written afterwards byte for byte */
    assert_int_equal(smtpuv_proto_noop(p), 0);
    size_t n = smtpuv_proto_pending_output(p);
    assert_true(n > 0);
    smtpuv__proto_release_idle(p);
    assert_int_equal(smtpuv_proto_pending_output(p), n);
    smtpuv_iov iov[4];
    int k = smtpuv_proto_outgoing_iov(p, 0, iov, 4);
    assert_true(k >= 1);
    assert_int_equal(iov[0].len, 6);
    assert_int_equal(memcmp(iov[0].base, "NOOP\r\n", 6), 0);
    drain(p);
    /* a partial reply: kept */
    assert_int_equal(feed_str(p, "250 2.1"), 0);
    smtpuv__proto_release_idle(p);
    assert_int_equal(feed_str(p, ".0 ok\r\n"), 0);
    smtpuv_reply r;
    assert_int_equal(smtpuv_proto_next_reply(p, &r), 1);
    assert_int_equal(r.code, 250);
    assert_string_equal(r.text, "2.1.0 ok");
    assert_int_equal(pop_all(p), 0);
    smtpuv__proto_release_idle(p);
    check_heap_count(&h, p);
    assert_int_equal(h.live_bytes, bare);
  }
  smtpuv_proto_free(p);
  assert_int_equal(h.live_bytes, 0);
}

/* ---- 3. 8-bit check ------------------------------------------------------ */

/* An 8-bit byte deep in a write of many slices: refused, nothing of the
   write stays, the encoder state is as before, nothing leaks. Declared
   8BITMIME, the same bytes go through. */
static void test_8bit_late_in_large_write(void **state) {
  (void)state;
  heap h;
  heap_init(&h);
  smtpuv_proto *p = session_with(&h.mem, EHLO_FULL);
  start_data(p);
  const size_t len = 300 * 1000;
  char *body = malloc(len);
  assert_non_null(body);
  for (size_t i = 0; i < len; i++)
    body[i] = i % 50 == 49 ? '\n' : '.';
  body[len - 7] = (char)0xE9;
  assert_int_equal(smtpuv_proto_data_write(p, "x\r", 2), 0);
  size_t before = smtpuv_proto_pending_output(p);
  size_t heap_before = h.live_bytes;
  assert_int_equal(smtpuv_proto_data_write(p, body, len), SMTPUV_E8BIT);
  assert_int_equal(smtpuv_proto_pending_output(p), before);
  assert_true(h.live_bytes <=
              heap_before + SMTPUV_OUTBUF_LARGE_SPARES * SMTPUV_OUTBUF_BLOCK +
                  1024); /* at most the spares stay */
  /* the pending CR still swallows the LF that follows */
  assert_int_equal(smtpuv_proto_data_write(p, "\n.\n", 3), 0);
  assert_int_equal(smtpuv_proto_data_end(p), 0);
  expect_out(p, "x\r\n..\r\n.\r\n");
  smtpuv_proto_free(p);

  p = session_with(&h.mem, EHLO_FULL);
  smtpuv_mail_params mp = SMTPUV_MAIL_PARAMS_INIT;
  mp.body = SMTPUV_BODY_8BITMIME;
  start_data_with(p, &mp);
  assert_int_equal(smtpuv_proto_data_write(p, body, len), 0);
  assert_true(smtpuv_proto_pending_output(p) > len);
  smtpuv_proto_free(p);
  assert_int_equal(h.live_bytes, 0);
  free(body);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_auth_secrets_wiped),
      cmocka_unit_test(test_auth_secret_wiped_on_free),
      cmocka_unit_test(test_idle_after_large_body),
      cmocka_unit_test(test_idle_after_large_replies),
      cmocka_unit_test(test_steady_small_pipelined),
      cmocka_unit_test(test_steady_small_lockstep),
      cmocka_unit_test(test_8bit_late_in_large_write),
      cmocka_unit_test(test_release_idle),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

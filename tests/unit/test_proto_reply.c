/* SPDX-License-Identifier: MIT */
/*
 * The reply reader: syntax, limits (checked as bytes arrive, memory
 * bounded), sticky errors with their position, unsolicited replies,
 * enhanced status codes, STARTTLS response injection.
 */
#include "test_proto_util.h"

static smtpuv_proto *fresh(void) {
  smtpuv_proto *p;
  assert_int_equal(smtpuv_proto_new(NULL, &p), 0);
  return p;
}

/* Feed `s` to a new session (expecting the greeting) and return feed()'s
   result; the session is freed. */
static int greeting_rc(const char *s, size_t len) {
  smtpuv_proto *p = fresh();
  int rc = smtpuv_proto_feed(p, s, len);
  if (rc == 0) {
    smtpuv_reply r;
    rc = smtpuv_proto_next_reply(p, &r);
    if (rc == 1)
      rc = 0;
  }
  smtpuv_proto_free(p);
  return rc;
}

#define GREETING_RC(lit) greeting_rc(lit, sizeof(lit) - 1)

static void test_malformed(void **state) {
  (void)state;
  assert_int_equal(GREETING_RC("220 ok\r\n"), 0);
  assert_int_equal(GREETING_RC("220\r\n"), 0);
  assert_int_equal(GREETING_RC("220 \r\n"), 0);
  assert_int_equal(GREETING_RC("220-a\r\n220 b\r\n"), 0);
  assert_int_equal(GREETING_RC("220-a\r\n250 b\r\n"), SMTPUV_EPROTO);
  assert_int_equal(GREETING_RC("220-a\r\n220-b\r\n221 c\r\n"), SMTPUV_EPROTO);
  assert_int_equal(GREETING_RC("150 opening\r\n"), SMTPUV_EPROTO);
  assert_int_equal(GREETING_RC("199 x\r\n"), SMTPUV_EPROTO);
  assert_int_equal(GREETING_RC("600 x\r\n"), SMTPUV_EPROTO);
  assert_int_equal(GREETING_RC("000 x\r\n"), SMTPUV_EPROTO);
  assert_int_equal(GREETING_RC("25\r\n"), SMTPUV_EPROTO);
  assert_int_equal(GREETING_RC("\r\n"), SMTPUV_EPROTO);
  assert_int_equal(GREETING_RC("\n"), SMTPUV_EPROTO);
  assert_int_equal(GREETING_RC("250x\r\n"), SMTPUV_EPROTO);
  assert_int_equal(GREETING_RC("220\tx\r\n"), SMTPUV_EPROTO);
  assert_int_equal(GREETING_RC("2a0 x\r\n"), SMTPUV_EPROTO);
  assert_int_equal(GREETING_RC(" 220 x\r\n"), SMTPUV_EPROTO);
  assert_int_equal(GREETING_RC("220 a\0b\r\n"), SMTPUV_EPROTO);
  assert_int_equal(GREETING_RC("220 a\rb\r\n"), SMTPUV_EPROTO);
  assert_int_equal(GREETING_RC("220 a\r\r\n"), SMTPUV_EPROTO);
  assert_int_equal(GREETING_RC("220 bare lf\n"), 0);
  assert_int_equal(GREETING_RC("220-mixed\n220 endings\r\n"), 0);
  /* an incomplete line is no reply yet */
  assert_int_equal(GREETING_RC("220 no line end"), 0);
}

static void test_error_position_and_sticky(void **state) {
  (void)state;
  smtpuv_proto *p = fresh();
  smtpuv_reply r;
  assert_int_equal(feed_str(p, "220 mx\r\n"), 0);
  assert_int_equal(smtpuv_proto_next_reply(p, &r), 1);
  assert_int_equal(smtpuv_proto_ehlo(p, "c"), 0);
  /* line 1 was the greeting: the bad line is line 3, at byte 8 + 9 */
  assert_int_equal(feed_str(p, "250-mx a\r\n251 more\r\n"), SMTPUV_EPROTO);
  assert_string_equal(smtpuv_proto_error_text(p),
                      "reply line 3: code 251 differs from 250 (byte 18)");
  assert_int_equal(smtpuv_proto_error(p), SMTPUV_EPROTO);
  assert_int_equal(smtpuv_proto_state(p), SMTPUV_STATE_FINISHED);
  assert_int_equal(feed_str(p, "250 ok\r\n"), SMTPUV_EPROTO);
  assert_int_equal(smtpuv_proto_next_reply(p, &r), SMTPUV_EPROTO);
  assert_int_equal(smtpuv_proto_noop(p), SMTPUV_EPROTO);
  assert_int_equal(smtpuv_proto_quit(p), SMTPUV_EPROTO);
  assert_int_equal(smtpuv_proto_tls_established(p), SMTPUV_EPROTO);
  assert_int_equal(smtpuv_proto_pending_output(p), 8); /* "EHLO c" only */
  smtpuv_proto_free(p);

  p = fresh();
  assert_string_equal(smtpuv_proto_error_text(p), "");
  assert_int_equal(feed_str(p, "220 a\r\n22"), 0);
  assert_int_equal(feed_str(p, "0x\r\n"), SMTPUV_EPROTO);
  assert_string_equal(smtpuv_proto_error_text(p),
                      "reply line 2: no space or '-' after the code (byte 7)");
  smtpuv_proto_free(p);
}

/* Replies completed before a violation are still delivered, then the
   error: a "250 queued" must not be lost to the junk that follows it. */
static void test_replies_before_violation(void **state) {
  (void)state;
  smtpuv_proto *p = fresh();
  smtpuv_reply r;
  assert_int_equal(feed_str(p, "220 mx\r\n"), 0);
  assert_int_equal(smtpuv_proto_next_reply(p, &r), 1);
  assert_int_equal(smtpuv_proto_ehlo(p, "c"), 0);
  assert_int_equal(feed_str(p, "250 mx\r\njunk\r\n"), SMTPUV_EPROTO);
  assert_int_equal(smtpuv_proto_state(p), SMTPUV_STATE_FINISHED);
  r = pop(p, SMTPUV_CMD_EHLO, 250);
  assert_string_equal(r.text, "mx");
  assert_int_equal(smtpuv_proto_state(p), SMTPUV_STATE_FINISHED);
  assert_int_equal(smtpuv_proto_next_reply(p, &r), SMTPUV_EPROTO);
  smtpuv_proto_free(p);
}

static void test_unsolicited(void **state) {
  (void)state;
  smtpuv_proto *p = session_with(NULL, EHLO_BASIC);
  smtpuv_reply r;
  assert_int_equal(feed_str(p, "421 4.4.2 idle timeout\r\n"), 0);
  r = pop(p, SMTPUV_CMD_NONE, 421);
  assert_false(r.positive);
  assert_string_equal(r.text, "4.4.2 idle timeout");
  assert_int_equal(smtpuv_proto_state(p), SMTPUV_STATE_FINISHED);
  assert_int_equal(smtpuv_proto_error(p), 0);
  assert_int_equal(smtpuv_proto_mail(p, "a@b", NULL), SMTPUV_ESTATE);
  assert_int_equal(feed_str(p, "421 again\r\n"), SMTPUV_EPROTO);
  smtpuv_proto_free(p);

  p = session_with(NULL, EHLO_BASIC);
  assert_int_equal(feed_str(p, "250 hello?\r\n"), SMTPUV_EPROTO);
  assert_string_equal(smtpuv_proto_error_text(p),
                      "reply line 4: reply 250 nobody asked for (byte 52)");
  smtpuv_proto_free(p);

  /* a 421 while something is pending answers that command */
  p = session_with(NULL, EHLO_BASIC);
  assert_int_equal(smtpuv_proto_noop(p), 0);
  assert_int_equal(feed_str(p, "421 shutting down\r\n"), 0);
  r = pop(p, SMTPUV_CMD_NOOP, 421);
  assert_int_equal(smtpuv_proto_state(p), SMTPUV_STATE_FINISHED);
  smtpuv_proto_free(p);

  /* before the greeting: the greeting is pending, so it is the greeting */
  p = fresh();
  assert_int_equal(feed_str(p, "421 too busy\r\n"), 0);
  r = pop(p, SMTPUV_CMD_GREETING, 421);
  assert_false(r.positive);
  assert_int_equal(smtpuv_proto_state(p), SMTPUV_STATE_FINISHED);
  smtpuv_proto_free(p);
}

static void test_greeting_refused(void **state) {
  (void)state;
  smtpuv_proto *p = fresh();
  smtpuv_reply r;
  assert_int_equal(feed_str(p, "554 5.7.1 no SMTP service here\r\n"), 0);
  r = pop(p, SMTPUV_CMD_GREETING, 554);
  assert_false(r.positive);
  assert_int_equal(smtpuv_proto_state(p), SMTPUV_STATE_FINISHED);
  assert_int_equal(smtpuv_proto_ehlo(p, "c"), SMTPUV_ESTATE);
  assert_int_equal(smtpuv_proto_quit(p), SMTPUV_ESTATE);
  smtpuv_proto_free(p);
}

/* A 1 MiB line without LF, fed 4 KiB at a time: refused as soon as it is
   longer than the limit, and the buffer never grows past it. */
static void test_huge_line_bounded(void **state) {
  (void)state;
  smtpuv_proto *p = fresh();
  char chunk[4096];
  memset(chunk, 'x', sizeof chunk);
  memcpy(chunk, "220 ", 4);
  int rc = 0;
  size_t fed = 0;
  for (size_t i = 0; i < 256; i++) {
    rc = smtpuv_proto_feed(p, chunk, sizeof chunk);
    assert_true(p->in.cap <= 2 * SMTPUV_MAX_REPLY_LINE);
    assert_true(p->in.end <= SMTPUV_MAX_REPLY_LINE);
    if (rc != 0)
      break;
    fed += sizeof chunk;
    memset(chunk, 'x', 4);
  }
  assert_int_equal(rc, SMTPUV_EPROTO);
  assert_int_equal(fed, SMTPUV_MAX_REPLY_LINE);
  assert_string_equal(smtpuv_proto_error_text(p),
                      "reply line 1: longer than 4096 bytes (byte 0)");
  smtpuv_proto_free(p);

  /* the same line in one piece: nothing is copied */
  p = fresh();
  char *big = malloc(1 << 20);
  assert_non_null(big);
  memset(big, 'y', 1 << 20);
  memcpy(big, "220 ", 4);
  assert_int_equal(smtpuv_proto_feed(p, big, 1 << 20), SMTPUV_EPROTO);
  assert_true(p->in.cap == 0);
  smtpuv_proto_free(p);
  free(big);
}

static void test_line_limit_exact(void **state) {
  (void)state;
  char line[SMTPUV_MAX_REPLY_LINE + 1];
  memset(line, 'a', sizeof line);
  memcpy(line, "220 ", 4);
  memcpy(line + SMTPUV_MAX_REPLY_LINE - 2, "\r\n", 2);
  assert_int_equal(greeting_rc(line, SMTPUV_MAX_REPLY_LINE), 0);
  memcpy(line + SMTPUV_MAX_REPLY_LINE - 2, "a\r\n", 3);
  assert_int_equal(greeting_rc(line, SMTPUV_MAX_REPLY_LINE + 1), SMTPUV_EPROTO);
  /* bare LF: one byte less counts */
  memcpy(line + SMTPUV_MAX_REPLY_LINE - 1, "\n", 1);
  assert_int_equal(greeting_rc(line, SMTPUV_MAX_REPLY_LINE), 0);
}

/* A reply of many lines: accepted up to SMTPUV_MAX_REPLY_SIZE bytes. */
static void test_reply_size_limit(void **state) {
  (void)state;
  const size_t line_len = 64; /* "220-" + 58 + CRLF */
  const size_t n = SMTPUV_MAX_REPLY_SIZE / line_len;
  char *buf = malloc(n * line_len + line_len);
  assert_non_null(buf);
  for (size_t i = 0; i < n + 1; i++) {
    char *l = buf + i * line_len;
    memset(l, 'a' + (char)(i % 26), line_len);
    memcpy(l, "220-", 4);
    memcpy(l + line_len - 2, "\r\n", 2);
  }
  /* exactly the limit: the last line ends the reply */
  buf[(n - 1) * line_len + 3] = ' ';
  smtpuv_proto *p = fresh();
  assert_int_equal(smtpuv_proto_feed(p, buf, n * line_len), 0);
  smtpuv_reply r = pop(p, SMTPUV_CMD_GREETING, 220);
  assert_int_equal(r.nlines, n);
  assert_int_equal(r.text_len, n * (line_len - 4 - 2) + n - 1);
  for (size_t i = 0; i < n; i++) {
    assert_int_equal(r.lines[i].len, line_len - 6);
    assert_int_equal(r.lines[i].ptr[0], 'a' + (char)(i % 26));
    if (i + 1 < n)
      assert_int_equal(r.lines[i].ptr[r.lines[i].len], '\n');
  }
  assert_int_equal(r.text[r.text_len], '\0');
  smtpuv_proto_free(p);

  /* one line more: refused while it arrives */
  buf[(n - 1) * line_len + 3] = '-';
  buf[n * line_len + 3] = ' ';
  p = fresh();
  assert_int_equal(smtpuv_proto_feed(p, buf, n * line_len + 10),
                   SMTPUV_EPROTO);
  assert_true(p->in.cap <= 2 * SMTPUV_MAX_REPLY_SIZE);
  assert_non_null(strstr(smtpuv_proto_error_text(p), "reply larger than"));
  smtpuv_proto_free(p);
  free(buf);
}

static void test_code_only_and_texts(void **state) {
  (void)state;
  smtpuv_proto *p = fresh();
  assert_int_equal(feed_str(p, "220-first\r\n220\r\n"), 0);
  smtpuv_reply r = pop(p, SMTPUV_CMD_GREETING, 220);
  assert_int_equal(r.nlines, 2);
  assert_int_equal(r.lines[0].len, 5);
  assert_memory_equal(r.lines[0].ptr, "first", 5);
  assert_int_equal(r.lines[1].len, 0);
  assert_string_equal(r.text, "first\n");
  assert_int_equal(r.text_len, 6);
  smtpuv_proto_free(p);
}

static void test_enhanced_codes(void **state) {
  (void)state;
  smtpuv_proto *p = session_with(NULL, "mx\nENHANCEDSTATUSCODES\nPIPELINING");
  static const struct {
    const char *line;
    int code;
    const char *enhanced;
  } cases[] = {
      {"250 2.1.0 Ok\r\n", 250, "2.1.0"},
      {"250 2.1.0\r\n", 250, "2.1.0"},
      {"550 5.7.1 denied\r\n", 550, "5.7.1"},
      {"451 4.3.0 later\r\n", 451, "4.3.0"},
      {"550 4.1.1 class differs\r\n", 550, ""},
      {"550 5.1 short\r\n", 550, ""},
      {"550 5.1.1000 long\r\n", 550, ""},
      {"550 5.123.456 wide\r\n", 550, "5.123.456"},
      {"550 5.1.1x\r\n", 550, ""},
      {"550 X.1.1 no\r\n", 550, ""},
      {"550\r\n", 550, ""},
      {"250 Ok 2.0.0\r\n", 250, ""},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    assert_int_equal(smtpuv_proto_rset(p), 0);
    assert_int_equal(feed_str(p, cases[i].line), 0);
    smtpuv_reply r = pop(p, SMTPUV_CMD_RSET, cases[i].code);
    assert_string_equal(r.enhanced, cases[i].enhanced);
    if (r.enhanced[0] == '\0')
      assert_int_equal(r.enh_class + r.enh_subject + r.enh_detail, 0);
  }
  smtpuv_proto_free(p);
}

/* Replies arriving in odd pieces while earlier ones are popped between
   feeds (the buffer is compacted under them); 50 pipelined commands also
   grow the queue. */
static void test_interleaved_feeds(void **state) {
  (void)state;
  smtpuv_proto *p = session_with(NULL, "mx\nPIPELINING");
  char replies[50 * 16], cmds[50 * 6 + 1];
  size_t n = 0;
  for (int i = 0; i < 50; i++) {
    assert_int_equal(smtpuv_proto_rset(p), 0);
    n += (size_t)snprintf(replies + n, sizeof replies - n, "250 ok %d\r\n", i);
    memcpy(cmds + 6 * i, "RSET\r\n", 6);
  }
  cmds[300] = '\0';
  expect_out(p, cmds);
  assert_int_equal(smtpuv_proto_pending_replies(p), 50);
  size_t off = 0, step = 7;
  int popped = 0;
  smtpuv_reply r;
  char want[16];
  while (off < n || popped < 50) {
    if (off < n) {
      size_t k = step < n - off ? step : n - off;
      assert_int_equal(smtpuv_proto_feed(p, replies + off, k), 0);
      off += k;
      step = step * 3 % 23 + 1;
    }
    if (smtpuv_proto_next_reply(p, &r) == 1) {
      snprintf(want, sizeof want, "ok %d", popped++);
      assert_string_equal(r.text, want);
      assert_int_equal(r.command, SMTPUV_CMD_RSET);
    }
  }
  assert_int_equal(smtpuv_proto_next_reply(p, &r), 0);
  assert_int_equal(smtpuv_proto_pending_replies(p), 0);
  smtpuv_proto_free(p);
}

static void test_starttls_injection(void **state) {
  (void)state;
  /* trailing bytes in the same read as the 220 */
  smtpuv_proto *p = session_with(NULL, "mx\nSTARTTLS\nPIPELINING");
  assert_int_equal(smtpuv_proto_starttls(p), 0);
  assert_int_equal(feed_str(p, "220 go ahead\r\n250-injected\r\n"),
                   SMTPUV_EINJECT);
  assert_string_equal(smtpuv_proto_error_text(p),
                      "byte 74: data after STARTTLS's 220 (response "
                      "injection)");
  smtpuv_reply r = pop(p, SMTPUV_CMD_STARTTLS, 220);
  assert_int_equal(smtpuv_proto_next_reply(p, &r), SMTPUV_EINJECT);
  assert_int_equal(smtpuv_proto_tls_established(p), SMTPUV_EINJECT);
  assert_int_equal(smtpuv_proto_state(p), SMTPUV_STATE_FINISHED);
  smtpuv_proto_free(p);

  /* even one byte */
  p = session_with(NULL, "mx\nSTARTTLS");
  assert_int_equal(smtpuv_proto_starttls(p), 0);
  assert_int_equal(feed_str(p, "220 go ahead\r\n\n"), SMTPUV_EINJECT);
  smtpuv_proto_free(p);

  /* in a later read, before the handshake is reported done */
  p = session_with(NULL, "mx\nSTARTTLS");
  assert_int_equal(smtpuv_proto_starttls(p), 0);
  expect_out(p, "STARTTLS\r\n");
  assert_int_equal(feed_str(p, "220 go ahead\r\n"), 0);
  pop(p, SMTPUV_CMD_STARTTLS, 220);
  assert_int_equal(feed_str(p, "2"), SMTPUV_EINJECT);
  assert_int_equal(smtpuv_proto_tls_established(p), SMTPUV_EINJECT);
  smtpuv_proto_free(p);

  /* also when the 220 was not popped yet */
  p = session_with(NULL, "mx\nSTARTTLS");
  assert_int_equal(smtpuv_proto_starttls(p), 0);
  assert_int_equal(feed_str(p, "220 go ahead\r\n"), 0);
  assert_int_equal(feed_str(p, "250 x\r\n"), SMTPUV_EINJECT);
  smtpuv_proto_free(p);

  /* after tls_established() input is welcome again */
  p = session_with(NULL, "mx\nSTARTTLS");
  assert_int_equal(smtpuv_proto_starttls(p), 0);
  assert_int_equal(feed_str(p, "220 go ahead\r\n"), 0);
  pop(p, SMTPUV_CMD_STARTTLS, 220);
  assert_int_equal(smtpuv_proto_tls_established(p), 0);
  assert_int_equal(feed_str(p, "421 bye\r\n"), 0);
  pop(p, SMTPUV_CMD_NONE, 421);
  smtpuv_proto_free(p);

  /* a refusal is no TLS: input goes on, state READY */
  p = session_with(NULL, "mx\nSTARTTLS");
  assert_int_equal(smtpuv_proto_starttls(p), 0);
  assert_int_equal(feed_str(p, "454 4.7.0 TLS not available\r\n"), 0);
  r = pop(p, SMTPUV_CMD_STARTTLS, 454);
  assert_false(r.positive);
  assert_int_equal(smtpuv_proto_state(p), SMTPUV_STATE_READY);
  assert_int_equal(smtpuv_proto_tls_established(p), SMTPUV_ESTATE);
  smtpuv_proto_free(p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_malformed),
      cmocka_unit_test(test_error_position_and_sticky),
      cmocka_unit_test(test_replies_before_violation),
      cmocka_unit_test(test_unsolicited),
      cmocka_unit_test(test_greeting_refused),
      cmocka_unit_test(test_huge_line_bounded),
      cmocka_unit_test(test_line_limit_exact),
      cmocka_unit_test(test_reply_size_limit),
      cmocka_unit_test(test_code_only_and_texts),
      cmocka_unit_test(test_enhanced_codes),
      cmocka_unit_test(test_interleaved_feeds),
      cmocka_unit_test(test_starttls_injection),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

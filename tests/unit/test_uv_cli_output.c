/* SPDX-License-Identifier: MIT */
/* smtpuv-send's output and input helpers: JSON escaping (always valid JSON
 * and UTF-8, whatever bytes a server sends), the --json objects, header
 * scanning (Bcc removal byte for byte, -t recipients, --read-envelope-from),
 * command-line address lists, --passwordeval and the --serverinfo text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../examples/smtpuv_send/exitcode.c"
#include "../../examples/smtpuv_send/headers.c"
#include "../../examples/smtpuv_send/json.c"
#include "../../examples/smtpuv_send/passwordeval.c"
#include "../../examples/smtpuv_send/serverinfo.c"

static void json_is(const char *in, size_t n, const char *expect) {
  cli_buf b = {0};
  cli_json_str(&b, in, n);
  assert_false(b.oom);
  assert_string_equal(b.p, expect);
  cli_buf_free(&b);
}

static void test_json_strings(void **state) {
  (void)state;
  json_is("plain", 5, "\"plain\"");
  json_is("", 0, "\"\"");
  json_is("a\"b\\c/d", 7, "\"a\\\"b\\\\c/d\"");
  json_is("l1\nl2\r\t\b\f", 9, "\"l1\\nl2\\r\\t\\b\\f\"");
  json_is("\x01\x1f\x7f", 3, "\"\\u0001\\u001f\x7f\"");
  json_is("nul\0x", 5, "\"nul\\u0000x\"");
  /* valid UTF-8 passes: 2, 3 and 4 byte sequences */
  json_is("J\xc3\xbcrgen \xe2\x82\xac \xf0\x9f\x93\xa7", 16,
          "\"J\xc3\xbcrgen \xe2\x82\xac \xf0\x9f\x93\xa7\"");
  /* invalid UTF-8 becomes U+FFFD, one per bad byte */
  json_is("\xff", 1, "\"\\ufffd\"");
  json_is("\xc0\xaf", 2, "\"\\ufffd\\ufffd\"");         /* overlong '/' */
  json_is("\xed\xa0\x80", 3, "\"\\ufffd\\ufffd\\ufffd\""); /* surrogate */
  json_is("\xf4\x90\x80\x80", 4,
          "\"\\ufffd\\ufffd\\ufffd\\ufffd\""); /* > U+10FFFF */
  json_is("ab\xe2\x82", 4, "\"ab\\ufffd\\ufffd\"");     /* truncated */
  json_is("\xe2(x", 3, "\"\\ufffd(x\"");
  cli_buf b = {0};
  cli_json_str(&b, NULL, 0);
  assert_string_equal(b.p, "null");
  cli_buf_free(&b);
}

/* Every byte value, alone and in pairs: the output never holds a raw
   control character and every non-ASCII byte is part of valid UTF-8. */
static void test_json_all_bytes(void **state) {
  (void)state;
  for (int a = 0; a < 256; a++)
    for (int c = 0; c < 256; c += 7) {
      char in[2] = {(char)a, (char)c};
      cli_buf b = {0};
      cli_json_str(&b, in, 2);
      const unsigned char *p = (const unsigned char *)b.p;
      for (size_t i = 0; i < b.len; i++) {
        assert_true(p[i] >= 0x20);
        if (p[i] >= 0x80) {
          size_t l = utf8_len(p + i, b.len - i);
          assert_true(l >= 2);
          i += l - 1;
        }
      }
      cli_buf_free(&b);
    }
}

static void test_json_result(void **state) {
  (void)state;
  smtpuv_rcpt_result rr[2] = {
      {"ok@example.com", 1, 250, "2.1.5", "2.1.5 OK"},
      {"bad\"@example.com", 0, 550, "5.1.1", "5.1.1 no\nsuch user"},
  };
  smtpuv_send_result r;
  memset(&r, 0, sizeof r);
  r.struct_size = sizeof r;
  r.status = SMTPUV_SEND_SENT;
  r.error = SMTPUV_ENORCPT;
  r.phase = SMTPUV_PHASE_END_OF_DATA;
  r.message = "250 2.0.0 queued";
  r.reply_code = 250;
  r.reply_enhanced = "2.0.0";
  r.reply_text = "2.0.0 queued";
  r.recipients = rr;
  r.nrecipients = 2;
  r.naccepted = 1;
  r.attempts = 1;
  r.tls = NULL;
  cli_buf b = {0};
  cli_json_result(&b, &r, 69);
  assert_string_equal(
      b.p,
      "{\"status\":\"sent\",\"error\":\"SMTPUV_ENORCPT\",\"phase\":"
      "\"end-of-data\",\"message\":\"250 2.0.0 queued\",\"reply\":{\"code\":"
      "250,\"enhanced\":\"2.0.0\",\"text\":\"queued\"},\"recipients\":["
      "{\"address\":\"ok@example.com\",\"accepted\":true,\"code\":250,"
      "\"enhanced\":\"2.1.5\",\"text\":\"OK\"},{\"address\":"
      "\"bad\\\"@example.com\",\"accepted\":false,\"code\":550,\"enhanced\":"
      "\"5.1.1\",\"text\":\"no\\nsuch user\"}],\"tls\":null,"
      "\"attempts\":1,\"exit\":69,\"exit_name\":\"EX_UNAVAILABLE\"}\n");
  cli_buf_free(&b);

  cli_json_error(&b, SMTPUV_EADDRESS, "bad \x01 address", 65);
  assert_string_equal(
      b.p, "{\"status\":\"failed\",\"error\":\"SMTPUV_EADDRESS\",\"phase\":"
           "\"none\",\"message\":\"bad \\u0001 address\",\"reply\":null,"
           "\"recipients\":[],\"tls\":null,\"attempts\":0,\"exit\":65,"
           "\"exit_name\":\"EX_DATAERR\"}\n");
  cli_buf_free(&b);
}

/* ---- headers ---------------------------------------------------------------- */

static void test_header_recipients(void **state) {
  (void)state;
  static const char msg[] =
      "From: Me <me@x>\r\n"
      "To: \"Doe, John\" <john@x>, jane@x (Jane)\r\n"
      "Cc: undisclosed-recipients:;\r\n"
      "cc: Team: a@x, b@x;\r\n"
      "Bcc: hidden@x,\r\n\tjohn@x\r\n"
      "X-To: not@x\r\n"
      "\r\n"
      "To: body@x\r\n";
  cli_addrs a = {0};
  char err[128] = "";
  assert_int_equal(cli_header_recipients(msg, sizeof msg - 1, &a, err,
                                         sizeof err),
                   0);
  const char *expect[] = {"john@x", "jane@x", "a@x", "b@x", "hidden@x"};
  assert_int_equal(a.n, 5);
  for (size_t i = 0; i < 5; i++)
    assert_string_equal(a.v[i], expect[i]);
  cli_addrs_free(&a);

  static const char bad[] = "To: ok@x\r\nCc: <unterminated@x\r\n\r\n";
  assert_int_equal(cli_header_recipients(bad, sizeof bad - 1, &a, err,
                                         sizeof err),
                   CLI_EX_DATAERR);
  assert_string_equal(err, "cannot read the addresses of the Cc header");
  cli_addrs_free(&a);
  static const char unterminated[] = "bcc: \"Bob <b@x>\r\n\r\n";
  assert_int_equal(cli_header_recipients(unterminated, sizeof unterminated - 1,
                                         &a, err, sizeof err),
                   CLI_EX_DATAERR);
  assert_string_equal(err, "cannot read the addresses of the bcc header");
  cli_addrs_free(&a);

  static const char none[] = "Subject: x\r\n\r\nTo: body@x\r\n";
  assert_int_equal(cli_header_recipients(none, sizeof none - 1, &a, err,
                                         sizeof err),
                   0);
  assert_int_equal(a.n, 0);
  cli_addrs_free(&a);
}

static void test_header_from(void **state) {
  (void)state;
  char *s, err[128];
  static const char m1[] = "Sender: s@x\r\nFrom: \"Me\" <me@x>, o@x\r\n\r\n";
  assert_int_equal(cli_header_from(m1, sizeof m1 - 1, &s, err, sizeof err), 0);
  assert_string_equal(s, "me@x"); /* msmtp reads From, not Sender */
  free(s);
  static const char m2[] = "To: a@x\r\n\r\nFrom: body@x\r\n";
  assert_int_equal(cli_header_from(m2, sizeof m2 - 1, &s, err, sizeof err),
                   CLI_EX_DATAERR);
  assert_string_equal(err, "the message has no From header");
  static const char m3[] = "From: Undisclosed:;\r\n\r\n";
  assert_int_equal(cli_header_from(m3, sizeof m3 - 1, &s, err, sizeof err),
                   CLI_EX_DATAERR);
  assert_string_equal(err, "cannot read an address from the From header");
}

static void test_address_list(void **state) {
  (void)state;
  cli_addrs a = {0};
  assert_int_equal(cli_address_list("plain@x", &a), 0);
  assert_int_equal(cli_address_list("Name <n@x>, plain@x, j\xc3\xbcrgen@x",
                                    &a),
                   0);
  assert_int_equal(a.n, 3);
  assert_string_equal(a.v[0], "plain@x");
  assert_string_equal(a.v[1], "n@x");
  assert_string_equal(a.v[2], "j\xc3\xbcrgen@x");
  /* command injection attempts */
  assert_int_equal(cli_address_list("a@x\r\nRCPT TO:<evil@x>", &a),
                   CLI_EX_DATAERR);
  assert_int_equal(cli_address_list("a@x\nDATA", &a), CLI_EX_DATAERR);
  assert_int_equal(cli_address_list("a@x>", &a), CLI_EX_DATAERR);
  assert_int_equal(cli_address_list("<a@x", &a), CLI_EX_DATAERR);
  assert_int_equal(a.n, 3);
  cli_addrs_free(&a);
}

/* ---- passwordeval ------------------------------------------------------------ */

static void test_passwordeval(void **state) {
  (void)state;
  char pw[64], err[256];
  assert_int_equal(cli_passwordeval("printf 'secret\\r\\nsecond line\\n'", pw,
                                    sizeof pw, err, sizeof err),
                   0);
  assert_string_equal(pw, "secret");
  /* what followed the first line was wiped */
  for (size_t i = strlen(pw); i < sizeof pw; i++)
    assert_int_equal(pw[i], 0);
  assert_int_equal(cli_passwordeval("printf 'no newline'", pw, sizeof pw, err,
                                    sizeof err),
                   0);
  assert_string_equal(pw, "no newline");
  /* the command does not read our standard input */
  assert_int_equal(cli_passwordeval("cat; echo x", pw, sizeof pw, err,
                                    sizeof err),
                   0);
  assert_string_equal(pw, "x");
  assert_int_equal(cli_passwordeval("exit 3", pw, sizeof pw, err, sizeof err),
                   CLI_EX_CONFIG);
  assert_string_equal(err, "--passwordeval command failed (exit status 3)");
  assert_int_equal(cli_passwordeval("echo pw; exit 1", pw, sizeof pw, err,
                                    sizeof err),
                   CLI_EX_CONFIG);
  assert_int_equal(pw[0], 0);
  assert_int_equal(cli_passwordeval("true", pw, sizeof pw, err, sizeof err),
                   CLI_EX_CONFIG);
  assert_string_equal(err, "--passwordeval command printed nothing");
  assert_int_equal(cli_passwordeval("head -c 200 /dev/zero | tr '\\0' a", pw,
                                    sizeof pw, err, sizeof err),
                   CLI_EX_CONFIG);
  assert_string_equal(
      err, "--passwordeval: the first output line is longer than 62 bytes");
  /* lots of output after the first line: read and dropped, no deadlock */
  assert_int_equal(cli_passwordeval("echo tok; head -c 300000 /dev/zero", pw,
                                    sizeof pw, err, sizeof err),
                   0);
  assert_string_equal(pw, "tok");
  assert_int_equal(cli_passwordeval("/nonexistent/cmd 2>/dev/null", pw,
                                    sizeof pw, err, sizeof err),
                   CLI_EX_CONFIG);
  assert_string_equal(err, "--passwordeval command failed (exit status 127)");
}

/* ---- serverinfo ------------------------------------------------------------------ */

static void test_serverinfo_text(void **state) {
  (void)state;
  smtpuv_probe_result r;
  memset(&r, 0, sizeof r);
  r.struct_size = sizeof r;
  r.phase = SMTPUV_PHASE_QUIT;
  r.message = "";
  r.peer = "127.0.0.1:2525";
  r.greeting_code = 220;
  r.greeting = "mx ESMTP\x1b[31m";
  r.server_name = "mx.example";
  r.extensions = "PIPELINING\nSIZE 1048576\nAUTH PLAIN LOGIN\nX-ODD";
  r.extensions_plain = "PIPELINING\nSTARTTLS";
  r.ext_flags = SMTPUV_EXT_PIPELINING | SMTPUV_EXT_SIZE | SMTPUV_EXT_AUTH;
  r.max_size = 1048576;
  r.auth_mechanisms = "PLAIN LOGIN";
  r.tls = "TLSv1.3 X; subject CN=mx; sha256 AB:CD; valid since 2026-01-01; "
          "expires 2027-01-01";
  cli_buf b = {0};
  cli_serverinfo_text(&b, "mx.example", &r);
  assert_string_equal(
      b.p,
      "SMTP server at 127.0.0.1:2525 (mx.example)\n"
      "Greeting:\n    220 mx ESMTP?[31m\n"
      "TLS session and certificate:\n    TLSv1.3 X\n    subject CN=mx\n"
      "    sha256 AB:CD\n    valid since 2026-01-01\n    expires 2027-01-01\n"
      "EHLO reply:\n    mx.example\n"
      "Capabilities (over TLS):\n"
      "    PIPELINING                   command pipelining (RFC 2920)\n"
      "    SIZE 1048576                 maximum message size\n"
      "    AUTH PLAIN LOGIN             authentication (RFC 4954)\n"
      "    X-ODD\n"
      "Maximum message size: 1048576 bytes = 1.00 MiB\n"
      "Authentication mechanisms: PLAIN LOGIN\n"
      "Before STARTTLS: PIPELINING STARTTLS\n");
  cli_buf_free(&b);
  cli_serverinfo_json(&b, "mx.example", &r, 0);
  assert_non_null(strstr(b.p, "\"extensions\":[\"PIPELINING\",\"SIZE "
                              "1048576\",\"AUTH PLAIN LOGIN\",\"X-ODD\"]"));
  assert_non_null(strstr(b.p, "\"auth\":[\"PLAIN\",\"LOGIN\"]"));
  assert_non_null(strstr(b.p, "\"greeting\":{\"code\":220,\"text\":\"mx "
                              "ESMTP\\u001b[31m\"}"));
  cli_buf_free(&b);
  r.error = SMTPUV_ENOTLS;
  assert_int_equal(cli_exit_for_probe(&r), CLI_EX_CONFIG);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_json_strings),
      cmocka_unit_test(test_json_all_bytes),
      cmocka_unit_test(test_json_result),
      cmocka_unit_test(test_header_recipients),
      cmocka_unit_test(test_header_from),
      cmocka_unit_test(test_address_list),
      cmocka_unit_test(test_passwordeval),
      cmocka_unit_test(test_serverinfo_text),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

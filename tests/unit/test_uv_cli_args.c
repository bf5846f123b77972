/* SPDX-License-Identifier: MIT */
/* smtpuv-send's command line (examples/smtpuv_send/args.c): msmtp option
 * forms (--opt=value, --opt value, optional values), sendmail short flags
 * (clusters, attached and separate values, ignored flags), operands
 * anywhere, "--", and a one-line reason for every usage error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../examples/smtpuv_send/args.c"

#define MAXARGS 32

/* Parse a NULL-terminated list of arguments (the program name is added). */
static int parse(cli_config *c, char *err, size_t errlen, ...) {
  static char *argv[MAXARGS];
  int argc = 0;
  argv[argc++] = "smtpuv-send";
  va_list ap;
  va_start(ap, errlen);
  const char *a;
  while ((a = va_arg(ap, const char *)) != NULL && argc < MAXARGS - 1)
    argv[argc++] = (char *)a;
  va_end(ap);
  argv[argc] = NULL;
  cli_config_init(c);
  return cli_args_parse(c, argc, argv, err, errlen);
}

static void test_defaults(void **state) {
  (void)state;
  cli_config c;
  char err[256];
  assert_int_equal(parse(&c, err, sizeof err, NULL), 0);
  assert_int_equal(c.mode, CLI_MODE_SEND);
  assert_int_equal(c.tls, 1);
  assert_int_equal(c.tls_starttls, 1);
  assert_int_equal(c.tls_certcheck, 1);
  assert_int_equal(c.remove_bcc, 1);
  assert_int_equal(c.auth, CLI_AUTH_UNSET);
  assert_null(c.host);
  assert_int_equal(c.nrecipients, 0);
  assert_string_equal(err, "");
  cli_config_free(&c);
}

static void test_long_forms(void **state) {
  (void)state;
  cli_config c;
  char err[256];
  assert_int_equal(parse(&c, err, sizeof err, "--host=mx.example.com",
                         "--port", "2525", "--timeout=7", "--domain",
                         "client.example", "--user=u", "--passwordeval",
                         "echo pw", "--tls-trust-file=/x/ca.pem",
                         "--tls-host-override", "localhost", NULL),
                   0);
  assert_string_equal(c.host, "mx.example.com");
  assert_int_equal(c.port, 2525);
  assert_int_equal(c.timeout, 7);
  assert_string_equal(c.domain, "client.example");
  assert_string_equal(c.user, "u");
  assert_string_equal(c.passwordeval, "echo pw");
  assert_string_equal(c.tls_trust_file, "/x/ca.pem");
  assert_string_equal(c.tls_host_override, "localhost");
  cli_config_free(&c);
}

static void test_optional_values(void **state) {
  (void)state;
  cli_config c;
  char err[256];
  assert_int_equal(parse(&c, err, sizeof err, "--tls=off", "--auth", NULL),
                   0);
  assert_int_equal(c.tls, 0);
  assert_int_equal(c.auth, CLI_AUTH_ON);
  assert_null(c.auth_mech);
  cli_config_free(&c);

  /* an optional value is only taken with '=': the next word is an operand */
  assert_int_equal(parse(&c, err, sizeof err, "--tls", "off@example.com",
                         NULL),
                   0);
  assert_int_equal(c.tls, 1);
  assert_int_equal(c.nrecipients, 1);
  assert_string_equal(c.recipients[0], "off@example.com");
  cli_config_free(&c);

  assert_int_equal(parse(&c, err, sizeof err, "--tls-starttls=off",
                         "--tls-certcheck=off", "--auth=SCRAM-SHA-256",
                         "--allow-plaintext-auth", NULL),
                   0);
  assert_int_equal(c.tls_starttls, 0);
  assert_int_equal(c.tls_certcheck, 0);
  assert_int_equal(c.auth, CLI_AUTH_ON);
  assert_string_equal(c.auth_mech, "SCRAM-SHA-256");
  assert_int_equal(c.allow_plaintext_auth, 1);
  cli_config_free(&c);

  assert_int_equal(parse(&c, err, sizeof err, "--auth=on", "--auth=off", NULL),
                   0);
  assert_int_equal(c.auth, CLI_AUTH_OFF);
  cli_config_free(&c);

  assert_int_equal(parse(&c, err, sizeof err, "--tls-trust-file=system",
                         NULL),
                   0);
  assert_null(c.tls_trust_file);
  cli_config_free(&c);
}

static void test_sendmail_flags(void **state) {
  (void)state;
  cli_config c;
  char err[256];
  /* the classic cron / MUA invocations */
  assert_int_equal(parse(&c, err, sizeof err, "-oi", "-t", "-odi", "-oem",
                         "-i", "-bm", "-F", "Cron Daemon", "-FName", "-h",
                         "17", "-Lsmtpuv", "-O", "DeliveryMode=b", "-B8BITMIME",
                         "-m", "-n", "-G", "-U", "-Ac", NULL),
                   0);
  assert_int_equal(c.read_recipients, 1);
  assert_int_equal(c.nrecipients, 0);
  assert_int_equal(c.debug, 0);
  cli_config_free(&c);

  /* clusters: -ti, and a value ends the cluster (-tfme@x) */
  assert_int_equal(parse(&c, err, sizeof err, "-ti", "-tfme@x.example", NULL),
                   0);
  assert_int_equal(c.read_recipients, 1);
  assert_string_equal(c.from, "me@x.example");
  cli_config_free(&c);

  assert_int_equal(parse(&c, err, sizeof err, "-f", "", "-v", NULL), 0);
  assert_string_equal(c.from, "");
  assert_int_equal(c.debug, 1); /* msmtp: -v is --debug */
  cli_config_free(&c);

  assert_int_equal(parse(&c, err, sizeof err, "-N", "success,delay",
                         "-Rhdrs", NULL),
                   0);
  assert_int_equal(c.dsn_notify,
                   SMTPUV_DSN_NOTIFY_SUCCESS | SMTPUV_DSN_NOTIFY_DELAY);
  assert_int_equal(c.dsn_ret, SMTPUV_DSN_RET_HDRS);
  cli_config_free(&c);

  assert_int_equal(parse(&c, err, sizeof err, "--dsn-notify=never",
                         "--dsn-return=full", NULL),
                   0);
  assert_int_equal(c.dsn_notify, SMTPUV_DSN_NOTIFY_NEVER);
  assert_int_equal(c.dsn_ret, SMTPUV_DSN_RET_FULL);
  cli_config_free(&c);

  assert_int_equal(parse(&c, err, sizeof err, "-S", "--json", NULL), 0);
  assert_int_equal(c.mode, CLI_MODE_SERVERINFO);
  assert_int_equal(c.json, 1);
  cli_config_free(&c);
}

static void test_operands(void **state) {
  (void)state;
  cli_config c;
  char err[256];
  assert_int_equal(parse(&c, err, sizeof err, "a@x", "--host=h", "b@x", "--",
                         "-c@x", "--host=literal@x", NULL),
                   0);
  assert_int_equal(c.nrecipients, 4);
  assert_string_equal(c.recipients[0], "a@x");
  assert_string_equal(c.recipients[1], "b@x");
  assert_string_equal(c.recipients[2], "-c@x");
  assert_string_equal(c.recipients[3], "--host=literal@x");
  assert_string_equal(c.host, "h");
  cli_config_free(&c);
}

static void test_help_version(void **state) {
  (void)state;
  cli_config c;
  char err[256];
  assert_int_equal(parse(&c, err, sizeof err, "--version", NULL), 0);
  assert_int_equal(c.mode, CLI_MODE_VERSION);
  cli_config_free(&c);
  assert_int_equal(parse(&c, err, sizeof err, "--help", "--version", NULL), 0);
  assert_int_equal(c.mode, CLI_MODE_HELP);
  cli_config_free(&c);
  assert_non_null(strstr(cli_usage(), "Exit status"));
  assert_non_null(strstr(cli_usage(), "--read-envelope-from"));
}

/* Every usage error: status 64 and the expected one-line reason. */
static void expect_usage(const char *reason, ...) {
  static char *argv[MAXARGS];
  int argc = 0;
  argv[argc++] = "smtpuv-send";
  va_list ap;
  va_start(ap, reason);
  const char *a;
  while ((a = va_arg(ap, const char *)) != NULL && argc < MAXARGS - 1)
    argv[argc++] = (char *)a;
  va_end(ap);
  argv[argc] = NULL;
  cli_config c;
  char err[256];
  cli_config_init(&c);
  int rc = cli_args_parse(&c, argc, argv, err, sizeof err);
  cli_config_free(&c);
  if (rc != CLI_EX_USAGE || strcmp(err, reason) != 0)
    fail_msg("args ending '%s': rc %d, reason '%s', expected '%s'",
             argv[argc - 1], rc, err, reason);
  assert_null(strchr(err, '\n'));
}

static void test_usage_errors(void **state) {
  (void)state;
  expect_usage("option --host needs a value", "--host", NULL);
  expect_usage("--host needs a host name", "--host=", NULL);
  expect_usage("unknown option '--bogus' (see --help)", "--bogus=1", NULL);
  expect_usage("unknown option '-Z' (see --help)", "-Z", NULL);
  expect_usage("option -f needs a value", "-f", NULL);
  expect_usage("option --json takes no value", "--json=1", NULL);
  expect_usage("--port takes 1..65535, not 'abc'", "--port=abc", NULL);
  expect_usage("--port takes 1..65535, not '0'", "--port=0", NULL);
  expect_usage("--port takes 1..65535, not '65536'", "--port=65536", NULL);
  expect_usage("--port takes 1..65535, not '-1'", "--port=-1", NULL);
  expect_usage("--port takes 1..65535, not '99999999999999999999999'",
               "--port=99999999999999999999999", NULL);
  expect_usage("--timeout takes off or 1..86400 seconds, not '1s'",
               "--timeout=1s", NULL);
  expect_usage("--tls takes on or off, not 'yes'", "--tls=yes", NULL);
  expect_usage("--tls-certcheck takes on or off, not ''", "--tls-certcheck=",
               NULL);
  expect_usage("--auth takes on, off, plain, login, cram-md5, scram-sha-1, "
               "scram-sha-256, xoauth2 or oauthbearer, not 'gssapi'",
               "--auth=gssapi", NULL);
  expect_usage("--dsn-notify takes off, never, or a list of "
               "success,delay,failure, not 'sometimes'",
               "-N", "sometimes", NULL);
  expect_usage("--dsn-notify takes off, never, or a list of "
               "success,delay,failure, not 'success,'",
               "-N", "success,", NULL);
  expect_usage("--dsn-notify: never cannot be combined with other "
               "conditions",
               "--dsn-notify=never,failure", NULL);
  expect_usage("--dsn-return takes off, hdrs or full, not 'body'", "-R",
               "body", NULL);
  expect_usage("sendmail mode -bp is not supported (only -bm)", "-bp", NULL);
  expect_usage("msmtp's option --account is not supported by smtpuv-send "
               "(see --help)",
               "--account=work", NULL);
  expect_usage("msmtp's option -C (--file) is not supported by smtpuv-send "
               "(see --help)",
               "-C", "/etc/msmtprc", NULL);
  expect_usage("'-' is not an option or an address (standard input is "
               "always read)",
               "-", NULL);
  expect_usage("--domain 'a b' is not a valid EHLO name", "--domain=a b",
               NULL);
  /* control bytes in the echoed value are shown, not printed raw */
  expect_usage("--port takes 1..65535, not '1\\x0A2'", "--port=1\n2", NULL);
  expect_usage("unknown option '-\\xC3\\xA9' (see --help)", "-\xc3\xa9",
               NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),      cmocka_unit_test(test_long_forms),
      cmocka_unit_test(test_optional_values),
      cmocka_unit_test(test_sendmail_flags), cmocka_unit_test(test_operands),
      cmocka_unit_test(test_help_version),  cmocka_unit_test(test_usage_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

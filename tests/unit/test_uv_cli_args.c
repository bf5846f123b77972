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

/* msmtp's options that came with the configuration files, and
   getopt_long's abbreviations */
static void test_config_options(void **state) {
  (void)state;
  cli_config c;
  char err[256];
  assert_int_equal(parse(&c, err, sizeof err, "-C", "/x/rc", "-a", "work",
                         "-X", "-", "--logfile-time", "none", "--syslog",
                         "--aliases", "/x/aliases", "--auto-from",
                         "--maildomain=ex.org", "--set-from-header",
                         "--set-date-header=off", "--set-msgid=off",
                         "--undisclosed-recipients", "-F", "Cron Daemon",
                         "--tls-cert-file", "/c.pem", "--tls-key-file=/k.pem",
                         "--tls-fingerprint",
                         "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:"
                         "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89",
                         "--read-env", "--protocol=smtp", "--source-ip=",
                         "r@x", NULL),
                   0);
  assert_string_equal(c.conffile, "/x/rc");
  assert_string_equal(c.account, "work");
  assert_string_equal(c.logfile, "-");
  assert_string_equal(c.logfile_time_format, "none");
  assert_int_equal(c.syslog_on, 1);
  assert_int_equal(c.syslog_facility, LOG_USER);
  assert_string_equal(c.aliases, "/x/aliases");
  assert_int_equal(c.auto_from, 1);
  assert_string_equal(c.maildomain, "ex.org");
  assert_int_equal(c.set_from_header, CLI_HDR_ON);
  assert_int_equal(c.set_date_header, CLI_HDR_OFF);
  assert_int_equal(c.set_msgid_header, CLI_HDR_OFF);
  assert_int_equal(c.undisclosed, 1);
  assert_string_equal(c.full_name, "Cron Daemon");
  assert_string_equal(c.tls_cert_file, "/c.pem");
  assert_string_equal(c.tls_key_file, "/k.pem");
  assert_non_null(c.tls_fingerprint);
  assert_int_equal(c.read_envelope_from, 1);
  assert_int_equal(c.host_given, 0);
  assert_int_equal(c.nrecipients, 1);
  cli_config_free(&c);
  /* --host on the command line is remembered (no file data then) */
  assert_int_equal(parse(&c, err, sizeof err, "--ho", "mx", "--syslog=LOG_MAIL",
                         NULL),
                   0);
  assert_string_equal(c.host, "mx");
  assert_int_equal(c.host_given, 1);
  assert_int_equal(c.syslog_facility, LOG_MAIL);
  cli_config_free(&c);
}

/* the configuration file's commands go through the same code */
static void test_config_commands(void **state) {
  (void)state;
  cli_config c;
  char err[256];
  cli_config_init(&c);
  assert_int_equal(cli_config_command(&c, "host", "mx.example", err, sizeof err), 0);
  assert_int_equal(c.host_given, 0);
  assert_int_equal(cli_config_command(&c, "tls_starttls", "off", err, sizeof err), 0);
  assert_int_equal(c.tls_starttls, 0);
  assert_int_equal(cli_config_command(&c, "tls_starttls", "", err, sizeof err), 0);
  assert_int_equal(c.tls_starttls, 1); /* an empty argument is "on" */
  assert_int_equal(cli_config_command(&c, "tls_trust_file", "", err, sizeof err), 0);
  assert_null(c.tls_trust_file);
  assert_int_equal(cli_config_command(&c, "password", "s3cret", err, sizeof err), 0);
  assert_string_equal(c.password, "s3cret");
  assert_int_equal(cli_config_command(&c, "allow_from_override", "off", err, sizeof err), 0);
  assert_int_equal(c.allow_from_override, 0);
  assert_int_equal(cli_config_command(&c, "add_missing_date_header", "off", err, sizeof err), 0);
  assert_int_equal(c.set_date_header, CLI_HDR_OFF);
  assert_int_equal(cli_config_command(&c, "port", "x", err, sizeof err), CLI_EX_CONFIG);
  assert_string_equal(err, "--port takes 1..65535, not 'x'");
  assert_int_equal(cli_config_command(&c, "bogus", "1", err, sizeof err), CLI_EX_CONFIG);
  assert_string_equal(err, "unknown command bogus");
  assert_int_equal(cli_config_command(&c, "tls-trust-file", "x", err, sizeof err), CLI_EX_CONFIG);
  assert_int_equal(cli_config_command(&c, "read_recipients", NULL, err, sizeof err), CLI_EX_CONFIG);
  assert_int_equal(cli_config_command(&c, "proxy_host", "h", err, sizeof err), CLI_EX_CONFIG);
  assert_string_equal(err, "command proxy_host is not supported by smtpuv-send");
  cli_config_free(&c);
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
  expect_usage("msmtp's option --tls-crl-file is not supported by "
               "smtpuv-send (see --help)",
               "--tls-crl-file=/x", NULL);
  expect_usage("msmtp's option --proxy-host is not supported by "
               "smtpuv-send (see --help)",
               "--proxy-h", "h", NULL); /* an abbreviation */
  expect_usage("option '--proxy' is ambiguous (see --help)", "--proxy=h",
               NULL);
  expect_usage("option '--tls-c' is ambiguous (see --help)", "--tls-c=x",
               NULL);
  expect_usage("'password' is a configuration file command, not an option "
               "(see --help)",
               "--password=x", NULL); /* not --passwordeval abbreviated */
  expect_usage("--tls-fingerprint: only SHA-256 fingerprints are accepted "
               "(SHA-1 and MD5 are too weak)",
               "--tls-fingerprint=00:11:22:33:44:55:66:77:88:99:AA:BB:CC:"
               "DD:EE:FF:00:11:22:33", NULL);
  expect_usage("--tls-fingerprint takes a SHA-256 fingerprint (32 hex "
               "pairs, AB:CD:...), not 'zz'",
               "--tls-fingerprint=zz", NULL);
  expect_usage("--syslog takes on, off, LOG_USER, LOG_MAIL or LOG_LOCAL0..7, "
               "not 'LOG_KERN'",
               "--syslog=LOG_KERN", NULL);
  expect_usage("--protocol: only smtp is supported, not 'lmtp'",
               "--protocol=lmtp", NULL);
  expect_usage("--set-from-header takes auto, on or off, not 'x'",
               "--set-from-header=x", NULL);
  expect_usage("--set-date-header takes auto or off, not 'on'",
               "--set-date-header=on", NULL);
  expect_usage("--source-ip is not supported by smtpuv-send (the library "
               "cannot bind a source address)",
               "--source-ip=127.0.0.2", NULL);
  expect_usage("-F: the name contains a line break", "-F", "a\nb", NULL);
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
      cmocka_unit_test(test_config_options),
      cmocka_unit_test(test_config_commands),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

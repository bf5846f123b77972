/* SPDX-License-Identifier: MIT */
/* smtpuv-send's msmtp pieces without a network: configuration files
 * (examples/smtpuv_send/config.c), aliases (aliases.c), the streamed
 * message and its header rewrite (stream.c), the log line (logfile.c) and
 * the added header fields (compose.c). Files go to a temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../examples/smtpuv_send/aliases.c"
#include "../../examples/smtpuv_send/args.c"
#include "../../examples/smtpuv_send/compose.c"
#include "../../examples/smtpuv_send/config.c"
#include "../../examples/smtpuv_send/exitcode.c"
#include "../../examples/smtpuv_send/headers.c"
#include "../../examples/smtpuv_send/json.c"
#include "../../examples/smtpuv_send/logfile.c"
#include "../../examples/smtpuv_send/passwordeval.c"
#include "../../examples/smtpuv_send/stream.c"

static char dir[64];

static int setup(void **state) {
  (void)state;
  snprintf(dir, sizeof dir, "/tmp/smtpuv-cli-config-XXXXXX");
  return mkdtemp(dir) != NULL ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  return system(cmd) == 0 ? 0 : -1;
}

/* Write `text` to DIR/name with `mode`; returns the path (static). */
static const char *file(const char *name, const char *text, mode_t mode) {
  static char path[2][128];
  static int k;
  char *p = path[k++ & 1];
  snprintf(p, 128, "%s/%s", dir, name);
  FILE *f = fopen(p, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
  assert_int_equal(chmod(p, mode), 0);
  return p;
}

static const char *value_of(const cli_rc_account *a, const char *cmd) {
  const char *v = NULL;
  for (size_t i = 0; i < a->n; i++)
    if (strcmp(a->v[i].cmd, cmd) == 0)
      v = a->v[i].value;
  return v;
}

/* ---- configuration files ------------------------------------------------------ */

static void test_rc_accounts(void **state) {
  (void)state;
  const char *p = file("rc",
                       "# comment\n"
                       "\n"
                       "defaults\n"
                       "  port 2525\n"
                       "tls_trust_file ~/ca.pem\n"
                       "account base\n"
                       "host base.example\n"
                       "from base@example.com\n"
                       "account child : base\n"
                       "from \"child \\\"x\\\"@example.com\"\n"
                       "account two:base , child\n"
                       "port 26\n"
                       "defaults\n"
                       "port 2626\n"
                       "account late\n"
                       "host late.example\n"
                       "account default : child\n"
                       "auth\n",
                       0644);
  setenv("HOME", "/home/u", 1);
  cli_rc rc;
  memset(&rc, 0, sizeof rc);
  char err[512] = "";
  assert_int_equal(cli_rc_load(&rc, p, 1, 1, err, sizeof err), 0);
  assert_int_equal(rc.n, 5);
  assert_int_equal(rc.nfiles, 1);
  assert_string_equal(rc.user_file, p);
  cli_rc_account *base = cli_rc_find(&rc, "base");
  assert_non_null(base);
  assert_string_equal(value_of(base, "port"), "2525"); /* defaults */
  assert_string_equal(value_of(base, "tls_trust_file"), "/home/u/ca.pem");
  cli_rc_account *child = cli_rc_find(&rc, "child");
  assert_string_equal(value_of(child, "host"), "base.example"); /* inherited */
  assert_string_equal(value_of(child, "from"), "child \"x\"@example.com");
  cli_rc_account *two = cli_rc_find(&rc, "two");
  assert_string_equal(value_of(two, "port"), "26");
  assert_string_equal(value_of(two, "from"), "child \"x\"@example.com");
  cli_rc_account *late = cli_rc_find(&rc, "late");
  assert_string_equal(value_of(late, "port"), "2626"); /* the new defaults */
  cli_rc_account *def = cli_rc_find(&rc, "default");
  assert_non_null(def);
  assert_null(cli_rc_find(&rc, "nope"));
  /* applying replays the commands: later ones win */
  cli_config c;
  cli_config_init(&c);
  assert_int_equal(cli_rc_apply(two, &c, err, sizeof err), 0);
  assert_int_equal(c.port, 26);
  assert_string_equal(c.host, "base.example");
  assert_int_equal(c.host_given, 0);
  cli_config_free(&c);
  cli_config_init(&c);
  assert_int_equal(cli_rc_apply(def, &c, err, sizeof err), 0);
  assert_int_equal(c.auth, CLI_AUTH_ON); /* "auth" with no argument: on */
  cli_config_free(&c);
  /* selection by the envelope sender */
  assert_ptr_equal(cli_rc_by_from(&rc, "BASE@example.com"), base);
  assert_ptr_equal(cli_rc_by_from(&rc, "base+tag@example.com"), base);
  assert_null(cli_rc_by_from(&rc, "other@example.com"));
  cli_rc_free(&rc);
}

static void test_rc_wildcards_and_user_first(void **state) {
  (void)state;
  const char *sys = file("sys", "account s\nhost s\nfrom *@example.com\n"
                                "account shared\nhost sys\n",
                         0644);
  const char *usr = file("usr", "account u\nhost u\nfrom a?c@example.com\n"
                                "account shared\nhost usr\n"
                                "account b\nhost b\nfrom [xy]*@b.example\n",
                         0600);
  cli_rc rc;
  memset(&rc, 0, sizeof rc);
  char err[512];
  assert_int_equal(cli_rc_load(&rc, sys, 0, 0, err, sizeof err), 0);
  assert_int_equal(cli_rc_load(&rc, usr, 0, 1, err, sizeof err), 0);
  /* the user's account of the same name replaces the system's */
  cli_rc_account *shared = cli_rc_find(&rc, "shared");
  assert_string_equal(value_of(shared, "host"), "usr");
  assert_string_equal(shared->file, usr);
  /* the user's file first: abc@ matches both patterns */
  assert_string_equal(cli_rc_by_from(&rc, "abc@example.com")->name, "u");
  assert_string_equal(cli_rc_by_from(&rc, "zzz@example.com")->name, "s");
  assert_string_equal(cli_rc_by_from(&rc, "x1@b.example")->name, "b");
  assert_null(cli_rc_by_from(&rc, "z1@b.example"));
  cli_rc_free(&rc);
  /* a missing file that is not required: nothing */
  memset(&rc, 0, sizeof rc);
  assert_int_equal(cli_rc_load(&rc, "/nonexistent/rc", 0, 1, err, sizeof err),
                   0);
  assert_int_equal(rc.nfiles, 0);
  assert_int_equal(cli_rc_load(&rc, "/nonexistent/rc", 1, 1, err, sizeof err),
                   CLI_EX_IOERR);
  cli_rc_free(&rc);
}

static void expect_rc_error(const char *text, const char *needle) {
  const char *p = file("bad", text, 0600);
  cli_rc rc;
  memset(&rc, 0, sizeof rc);
  char err[512] = "";
  int r = cli_rc_load(&rc, p, 1, 1, err, sizeof err);
  cli_rc_free(&rc);
  char want[600];
  snprintf(want, sizeof want, "%s%s", p, needle);
  if (r != CLI_EX_CONFIG || strstr(err, want) != err)
    fail_msg("'%s': rc %d, '%s', expected '%s'", text, r, err, want);
}

static void test_rc_errors(void **state) {
  (void)state;
  expect_rc_error("account a\nbogus x\n", ":2: unknown command bogus");
  expect_rc_error("account a\nsocket /s\n",
                  ":2: command socket is not supported by smtpuv-send");
  expect_rc_error("account a\ntls maybe\n",
                  ":2: invalid argument for command tls: --tls takes on or "
                  "off, not 'maybe'");
  expect_rc_error("port 25\n", ":1: command port outside of an account");
  expect_rc_error("account a : nope\n", ":1: account nope not (yet) defined");
  expect_rc_error("account a\naccount a\n", ":2: account a was already defined");
  expect_rc_error("account a,b\n", ":1: an account name must not contain");
  expect_rc_error("account\n", ":1: missing account name");
  expect_rc_error("account a :\n", ":1: missing account name after ':'");
  expect_rc_error("defaults x\n", ":1: command defaults does not take");
  expect_rc_error("account a\nhost \"h\" x\n", ":2: unterminated or misplaced");
  expect_rc_error("account a\neval\n", ":2: command eval needs an argument");
  expect_rc_error("account a\neval echo account b\n",
                  ":2: eval: the command printed an unusable line");
  /* a password in a file others can read */
  const char *p = file("secret", "account a\npassword x\n", 0640);
  cli_rc rc;
  memset(&rc, 0, sizeof rc);
  char err[512];
  assert_int_equal(cli_rc_load(&rc, p, 1, 1, err, sizeof err), CLI_EX_CONFIG);
  char want[300];
  snprintf(want, sizeof want,
           "%s: contains secrets and therefore must have no more than user "
           "read/write permissions",
           p);
  assert_string_equal(err, want);
  cli_rc_free(&rc);
  /* the system file is not checked (it is meant to be shared) */
  memset(&rc, 0, sizeof rc);
  assert_int_equal(cli_rc_load(&rc, p, 1, 0, err, sizeof err), 0);
  cli_rc_free(&rc);
}

static void test_rc_eval_and_wipe(void **state) {
  (void)state;
  const char *p = file("eval", "account a\neval echo host evald.example\n"
                               "password pw-123\n",
                       0600);
  cli_rc rc;
  memset(&rc, 0, sizeof rc);
  char err[512];
  assert_int_equal(cli_rc_load(&rc, p, 1, 1, err, sizeof err), 0);
  cli_rc_account *a = cli_rc_find(&rc, "a");
  assert_string_equal(value_of(a, "host"), "evald.example");
  const char *pw = value_of(a, "password");
  assert_string_equal(pw, "pw-123");
  size_t n = strlen(pw);
  cli_rc_wipe_passwords(&rc);
  for (size_t i = 0; i < n; i++)
    assert_int_equal(pw[i], 0);
  cli_rc_free(&rc);
}

/* ---- substitutions and added fields ---------------------------------------------- */

static void test_from_expansion(void **state) {
  (void)state;
  char out[256];
  setenv("USER", "alice", 1);
  setenv("HOSTNAME", "box.example", 1);
  assert_int_equal(cli_expand_from("%U@%H", out, sizeof out), 0);
  assert_string_equal(out, "alice@box.example");
  assert_int_equal(cli_expand_from("100%x%", out, sizeof out), 0);
  assert_string_equal(out, "100%x%");
  assert_int_equal(cli_expand_from("%U%U%U", out, 10), -1); /* too long */
  unsetenv("USER");
  setenv("LOGNAME", "bob", 1);
  assert_string_equal(cli_user_name(), "bob");
  unsetenv("HOSTNAME");
}

static void test_added_fields(void **state) {
  (void)state;
  cli_buf b = {0};
  cli_from_header(&b, NULL, "a@x");
  cli_from_header(&b, "Cron Daemon", "root@x");
  cli_from_header(&b, "Doe, J. \"JD\"", "j@x");
  cli_from_header(&b, "J\xc3\xbcrgen", "j@x");
  assert_string_equal(b.p, "From: a@x\n"
                           "From: Cron Daemon <root@x>\n"
                           "From: \"Doe, J. \\\"JD\\\"\" <j@x>\n"
                           "From: =?UTF-8?B?SsO8cmdlbg==?= <j@x>\n");
  b.len = 0;
  cli_date_header(&b);
  assert_int_equal(b.len, strlen("Date: Tue, 01 Dec 2026 10:00:00 +0000\n"));
  assert_memory_equal(b.p, "Date: ", 6);
  b.len = 0;
  cli_msgid_header(&b, "me@example.com");
  b.p[b.len] = '\0';
  assert_memory_equal(b.p, "Message-ID: <", 13);
  assert_non_null(strstr(b.p, "@example.com>\n"));
  cli_buf_free(&b);
}

/* ---- aliases ------------------------------------------------------------------- */

static void test_aliases(void **state) {
  (void)state;
  const char *p = file("aliases",
                       "# system aliases\n"
                       "root: postmaster, ops@example.org # two\n"
                       "postmaster: admin@example.org\n"
                       "\n"
                       "Default: catch@example.org\n",
                       0644);
  cli_addrs r = {0};
  char err[512];
  assert_int_equal(cli_addrs_add(&r, "ROOT"), 0);
  assert_int_equal(cli_addrs_add(&r, "www-data"), 0);
  assert_int_equal(cli_addrs_add(&r, "x@example.net"), 0);
  assert_int_equal(cli_aliases_apply(p, &r, err, sizeof err), 0);
  assert_int_equal(r.n, 4);
  assert_string_equal(r.v[0], "admin@example.org");
  assert_string_equal(r.v[1], "ops@example.org");
  assert_string_equal(r.v[2], "catch@example.org");
  assert_string_equal(r.v[3], "x@example.net");
  cli_addrs_free(&r);
  /* a loop is an error, as in msmtp ("too many redirects") */
  p = file("loop", "a: b\nb: a, c@x\n", 0644);
  assert_int_equal(cli_addrs_add(&r, "a"), 0);
  assert_int_equal(cli_aliases_apply(p, &r, err, sizeof err), CLI_EX_DATAERR);
  cli_addrs_free(&r);
  /* an alias naming itself is its own address */
  p = file("self", "a: a, c@x\n", 0644);
  assert_int_equal(cli_addrs_add(&r, "a"), 0);
  assert_int_equal(cli_aliases_apply(p, &r, err, sizeof err), 0);
  assert_int_equal(r.n, 2);
  assert_string_equal(r.v[0], "a");
  cli_addrs_free(&r);
  p = file("deep", "a: b\nb: c\nc: d\nd: e\ne: f\nf: g\ng: h\nh: i\ni: j\n"
                   "j: k\nk: l\nl: m@x\n",
           0644);
  assert_int_equal(cli_addrs_add(&r, "a"), 0);
  assert_int_equal(cli_aliases_apply(p, &r, err, sizeof err), CLI_EX_DATAERR);
  assert_non_null(strstr(err, "more than 10 levels"));
  cli_addrs_free(&r);
  /* errors name the line */
  const char *bad[][2] = {{"root admin@x\n", ":1: single ':' delimiter"},
                          {"ok: a@x\nbad name: b@x\n", ":2: invalid alias"},
                          {"a: b@x\nA: c@x\n", ":2: duplicate alias"},
                          {"a: \"unterminated\n", ":1: cannot read the"}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    p = file("bad-aliases", bad[i][0], 0644);
    assert_int_equal(cli_addrs_add(&r, "a"), 0);
    assert_int_equal(cli_aliases_apply(p, &r, err, sizeof err), CLI_EX_CONFIG);
    assert_non_null(strstr(err, bad[i][1]));
    assert_int_equal(r.n, 1); /* untouched */
    cli_addrs_free(&r);
  }
  assert_int_equal(cli_addrs_add(&r, "a"), 0);
  assert_int_equal(cli_aliases_apply("/nonexistent/aliases", &r, err,
                                     sizeof err),
                   CLI_EX_IOERR);
  cli_addrs_free(&r);
}

/* ---- the streamed message -------------------------------------------------------- */

typedef struct memin {
  const char *p;
  size_t len, pos, chunk;
} memin;

static long mem_input(void *ctx, void *buf, size_t cap) {
  memin *m = ctx;
  size_t n = m->len - m->pos;
  if (n > m->chunk)
    n = m->chunk;
  if (n > cap)
    n = cap;
  memcpy(buf, m->p + m->pos, n);
  m->pos += n;
  return (long)n;
}

/* Everything the body source yields, read `cap` bytes at a time. */
static char *drain(cli_msg *m, size_t cap, size_t *len) {
  size_t n = 0, room = 1024;
  char *out = malloc(room);
  assert_non_null(out);
  for (;;) {
    if (room - n < cap) {
      room = room * 2 + cap;
      out = realloc(out, room);
      assert_non_null(out);
    }
    long r = cli_msg_read(m, out + n, cap);
    assert_true(r >= 0);
    if (r == 0)
      break;
    n += (size_t)r;
  }
  *len = n;
  return out;
}

static void stream_case(const char *in, size_t chunk, const cli_rewrite *w,
                        const char *expect) {
  memin src = {in, strlen(in), 0, chunk};
  cli_msg m;
  char err[256];
  cli_msg_init(&m, mem_input, &src);
  assert_int_equal(cli_msg_read_header(&m, err, sizeof err), 0);
  assert_int_equal(cli_msg_rewrite(&m, w), 0);
  size_t n;
  char *out = drain(&m, chunk * 3 + 1, &n);
  if (n != strlen(expect) || memcmp(out, expect, n) != 0)
    fail_msg("chunk %zu: got '%.*s' expected '%s'", chunk, (int)n, out, expect);
  assert_int_equal(m.sent, n);
  free(out);
  cli_msg_free(&m);
}

static void test_stream_rewrite(void **state) {
  (void)state;
  static const char msg[] = "From: a@x\r\nBcc: hidden@x,\r\n  other@x\r\n"
                            "To: b@x\nbcc: h2@x\nRESENT-BCC: h3@x\r\n"
                            "Cc: c@x\r\nSubject: s\r\n\r\nBcc: body@x stays\r\n";
  cli_rewrite w;
  for (size_t chunk = 1; chunk <= 64; chunk = chunk * 2 + 1) {
    memset(&w, 0, sizeof w);
    w.remove_bcc = 1;
    stream_case(msg, chunk, &w,
                "From: a@x\r\nTo: b@x\nCc: c@x\r\nSubject: s\r\n\r\n"
                "Bcc: body@x stays\r\n");
    memset(&w, 0, sizeof w);
    stream_case(msg, chunk, &w, msg); /* nothing changed */
    memset(&w, 0, sizeof w);
    w.remove_bcc = 1;
    w.remove_from = 1;
    w.undisclosed = 1;
    w.prepend = "From: N <n@x>\nTo: undisclosed-recipients:;\n";
    w.prepend_len = strlen(w.prepend);
    stream_case(msg, chunk, &w,
                "From: N <n@x>\nTo: undisclosed-recipients:;\n"
                "Subject: s\r\n\r\nBcc: body@x stays\r\n");
  }
  /* the last field without a line ending, no body */
  memset(&w, 0, sizeof w);
  w.remove_bcc = 1;
  stream_case("To: b@x\r\nBcc: c@x", 2, &w, "To: b@x\r\n");
  /* the header block ends at a line that is not a field */
  stream_case("To: b@x\nnot a field\nBcc: x@y\n", 3, &w,
              "To: b@x\nnot a field\nBcc: x@y\n");
}

static void test_stream_big_body(void **state) {
  (void)state;
  /* a body far bigger than one read streams through in pieces */
  size_t body = 5 * 65536 + 7;
  char *in = malloc(body + 64);
  assert_non_null(in);
  strcpy(in, "To: b@x\nBcc: c@x\n\n");
  size_t h = strlen(in);
  for (size_t i = 0; i < body; i++)
    in[h + i] = (char)('a' + i % 26);
  in[h + body] = '\0';
  memin src = {in, h + body, 0, 65536};
  cli_msg m;
  char err[256];
  cli_msg_init(&m, mem_input, &src);
  assert_int_equal(cli_msg_read_header(&m, err, sizeof err), 0);
  assert_true(m.len < 3 * 65536); /* not the whole message */
  cli_rewrite w;
  memset(&w, 0, sizeof w);
  w.remove_bcc = 1;
  assert_int_equal(cli_msg_rewrite(&m, &w), 0);
  size_t n;
  char *out = drain(&m, 8192, &n);
  assert_int_equal(n, h + body - strlen("Bcc: c@x\n"));
  assert_memory_equal(out, "To: b@x\n\n", 9);
  assert_memory_equal(out + 9, in + h, body);
  free(out);
  cli_msg_free(&m);
  free(in);
}

static void test_stream_refusals(void **state) {
  (void)state;
  const char *cases[][2] = {
      {"", "the message is empty"},
      {"\nbody only\n", "the message has no header fields"},
      {"no field here\n\nbody\n", "the message has no header fields"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    memin src = {cases[i][0], strlen(cases[i][0]), 0, 4};
    cli_msg m;
    char err[256] = "";
    cli_msg_init(&m, mem_input, &src);
    assert_int_equal(cli_msg_read_header(&m, err, sizeof err), CLI_EX_DATAERR);
    assert_non_null(strstr(err, cases[i][1]));
    cli_msg_free(&m);
  }
  /* a header block over the cap */
  size_t big = CLI_HEADER_MAX + 100;
  char *in = malloc(big + 1);
  assert_non_null(in);
  memcpy(in, "X-Big: ", 7);
  memset(in + 7, 'x', big - 7);
  in[big] = '\0';
  memin src = {in, big, 0, 65536};
  cli_msg m;
  char err[256];
  cli_msg_init(&m, mem_input, &src);
  assert_int_equal(cli_msg_read_header(&m, err, sizeof err), CLI_EX_DATAERR);
  assert_non_null(strstr(err, "longer than 1024 KiB"));
  cli_msg_free(&m);
  free(in);
  assert_int_equal(cli_msg_has_field(&(cli_msg){0}, "From"), 0);
}

/* ---- the log line ------------------------------------------------------------------ */

static void test_log_line(void **state) {
  (void)state;
  cli_config c;
  cli_config_init(&c);
  c.host = "mx.example";
  c.user = "u'ser";
  cli_addrs r = {0};
  assert_int_equal(cli_addrs_add(&r, "a@x"), 0);
  assert_int_equal(cli_addrs_add(&r, "b@x"), 0);
  smtpuv_send_result res;
  memset(&res, 0, sizeof res);
  res.status = SMTPUV_SEND_SENT;
  res.reply_code = 250;
  res.reply_enhanced = "2.0.0";
  res.reply_text = "2.0.0 queued 'as' 1";
  cli_buf b = {0};
  cli_log_info(&b, &c, "s@x", &r, 123, &res, "", 0);
  assert_string_equal(b.p, "host=mx.example tls=on auth=on user=u?ser from=s@x "
                           "recipients=a@x,b@x mailsize=123 smtpstatus=250 "
                           "smtpmsg='250 2.0.0 queued ?as? 1' exitcode=EX_OK");
  b.len = 0;
  smtpuv_rcpt_result rr[2];
  memset(rr, 0, sizeof rr);
  rr[0].address = "a@x";
  rr[0].accepted = 1;
  rr[0].code = 250;
  rr[1].address = "b@x";
  rr[1].code = 550;
  rr[1].enhanced = "5.1.1";
  rr[1].text = "5.1.1 no\nsuch user";
  res.recipients = rr;
  res.nrecipients = 2;
  c.auth = CLI_AUTH_OFF;
  c.tls = 0;
  cli_log_info(&b, &c, "s@x", &r, 123, &res, "refused", 69);
  b.p[b.len] = '\0';
  assert_string_equal(b.p, "host=mx.example tls=off auth=off from=s@x "
                           "recipients=a@x,b@x smtpstatus=550 "
                           "smtpmsg='550 5.1.1 no\\nsuch user' "
                           "errormsg='refused' exitcode=EX_UNAVAILABLE");
  /* written with the time, appended */
  char path[128];
  snprintf(path, sizeof path, "%s/log", dir);
  c.logfile = path;
  c.logfile_time_format = "[%Y]";
  char err[256];
  assert_int_equal(cli_log_write(&c, "one", 0, err, sizeof err), 0);
  c.logfile_time_format = "none";
  assert_int_equal(cli_log_write(&c, "two", 1, err, sizeof err), 0);
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  char line[64];
  assert_non_null(fgets(line, sizeof line, f));
  assert_int_equal(line[0], '[');
  assert_non_null(strstr(line, "] one\n"));
  assert_non_null(fgets(line, sizeof line, f));
  assert_string_equal(line, "two\n");
  fclose(f);
  c.logfile = "/nonexistent/dir/log";
  assert_int_equal(cli_log_write(&c, "x", 0, err, sizeof err), -1);
  assert_non_null(strstr(err, "cannot log to /nonexistent/dir/log"));
  cli_buf_free(&b);
  cli_addrs_free(&r);
  cli_config_free(&c);
}

/* ---- -t with a Resent- block -------------------------------------------------------- */

static void test_resent_recipients(void **state) {
  (void)state;
  static const char one[] = "Resent-From: f@x\nResent-Date: d\nResent-To: n@x\n"
                            "Resent-Cc: c@x\nFrom: a@x\nTo: o@x\n\n";
  cli_addrs r = {0};
  char err[256];
  char *from;
  assert_int_equal(cli_header_recipients(one, sizeof one - 1, &r, err,
                                         sizeof err),
                   0);
  assert_int_equal(r.n, 2);
  assert_string_equal(r.v[0], "n@x");
  assert_string_equal(r.v[1], "c@x");
  cli_addrs_free(&r);
  assert_int_equal(cli_header_from(one, sizeof one - 1, &from, err, sizeof err),
                   0);
  assert_string_equal(from, "f@x");
  free(from);
  static const char two[] = "Resent-Date: d\nResent-To: n@x\nResent-Date: e\n"
                            "To: o@x\n\n";
  assert_int_equal(cli_header_recipients(two, sizeof two - 1, &r, err,
                                         sizeof err),
                   CLI_EX_DATAERR);
  assert_non_null(strstr(err, "2 Resent- blocks"));
  cli_addrs_free(&r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rc_accounts),
      cmocka_unit_test(test_rc_wildcards_and_user_first),
      cmocka_unit_test(test_rc_errors),
      cmocka_unit_test(test_rc_eval_and_wipe),
      cmocka_unit_test(test_from_expansion),
      cmocka_unit_test(test_added_fields),
      cmocka_unit_test(test_aliases),
      cmocka_unit_test(test_stream_rewrite),
      cmocka_unit_test(test_stream_big_body),
      cmocka_unit_test(test_stream_refusals),
      cmocka_unit_test(test_log_line),
      cmocka_unit_test(test_resent_recipients),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}

/* SPDX-License-Identifier: MIT */
/*
 * The sans-io pieces of issue 14 against real servers, before the libuv
 * client uses them: the LMTP mode of smtpuv_proto against Dovecot's LMTP
 * server (tests/servers/dovecot_lmtp.sh, Unix socket and TCP, one mailbox
 * over quota) and the SOCKS5 handshake smtpuv_socks5 against Dante
 * (tests/servers/dante_socks.sh, no-auth and username/password) in front of
 * aiosmtpd, and aiosmtpd's LMTP class on a Unix socket for exact bytes.
 * The test moves the bytes itself over blocking POSIX sockets (a
 * receive timeout only guards against a hang); every verdict is checked
 * and the delivered bytes are read back from the Maildir.
 * Needs root (Dovecot, Dante), dovecot-lmtpd, dante-server, python3-aiosmtpd.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "itest.h"
#include "smtpuv.h"

static char dv_dir[400], dv_log[400], dn_dir[2][400], dn_log[400];
static int dv_port, dn_port[2], aio_port;
static pid_t aio_pid, lm_pid;
static char aio_out[400], lm_out[400], lm_sock[400];

/* ---- servers ---------------------------------------------------------- */

static int start_servers(void **state) {
  (void)state;
  char p[16], line[200], log[400];
  snprintf(dv_dir, sizeof dv_dir, "%s/dovecot-lmtp", itest_workdir());
  snprintf(dv_log, sizeof dv_log, "%s/dovecot-lmtp.log", itest_workdir());
  dv_port = itest_free_port();
  snprintf(p, sizeof p, "%d", dv_port);
  if (itest_run(dv_log, itest_server_path("dovecot_lmtp.sh"), "start", dv_dir,
                p, NULL) != 0) {
    char *l = itest_read_file(dv_log, NULL);
    fprintf(stderr, "dovecot_lmtp.sh start failed:\n%s\n", l ? l : "");
    free(l);
    return -1;
  }
  snprintf(dn_log, sizeof dn_log, "%s/dante.log", itest_workdir());
  const char *modes[2] = {"none", "userpass"};
  for (int i = 0; i < 2; i++) {
    snprintf(dn_dir[i], sizeof dn_dir[i], "%s/dante-%s", itest_workdir(),
             modes[i]);
    dn_port[i] = itest_free_port();
    snprintf(p, sizeof p, "%d", dn_port[i]);
    if (itest_run(dn_log, itest_server_path("dante_socks.sh"), "start",
                  dn_dir[i], p, modes[i]) != 0) {
      char *l = itest_read_file(dn_log, NULL);
      fprintf(stderr, "dante_socks.sh start failed:\n%s\n", l ? l : "");
      free(l);
      return -1;
    }
  }
  snprintf(aio_out, sizeof aio_out, "%s/aio", itest_workdir());
  snprintf(log, sizeof log, "%s/aio.log", itest_workdir());
  char *argv[] = {"/usr/bin/python3", (char *)itest_server_path("aiosmtpd_server.py"),
                  "--port", "0", "--outdir", aio_out, "--lifetime", "300", NULL};
  aio_pid = itest_spawn(argv, log);
  if (aio_pid < 0 || itest_wait_ready(log, 15, line, sizeof line) != 0 ||
      sscanf(line, "READY %d", &aio_port) != 1)
    return -1;
  /* aiosmtpd in LMTP mode on a Unix socket, for exact bytes */
  snprintf(lm_out, sizeof lm_out, "%s/aio-lmtp", itest_workdir());
  snprintf(lm_sock, sizeof lm_sock, "%s/aio-lmtp.sock", itest_workdir());
  snprintf(log, sizeof log, "%s/aio-lmtp.log", itest_workdir());
  char *largv[] = {"/usr/bin/python3", (char *)itest_server_path("aiosmtpd_server.py"),
                   "--port", "0", "--outdir", lm_out, "--lmtp", "--unix", lm_sock,
                   "--lifetime", "300", NULL};
  lm_pid = itest_spawn(largv, log);
  if (lm_pid < 0 || itest_wait_ready(log, 15, line, sizeof line) != 0)
    return -1;
  return 0;
}

static int stop_servers(void **state) {
  (void)state;
  itest_run(dv_log, itest_server_path("dovecot_lmtp.sh"), "stop", dv_dir, NULL,
            NULL);
  for (int i = 0; i < 2; i++)
    itest_run(dn_log, itest_server_path("dante_socks.sh"), "stop", dn_dir[i],
              NULL, NULL);
  itest_stop(aio_pid);
  itest_stop(lm_pid);
  itest_cleanup();
  return 0;
}

/* ---- sockets ------------------------------------------------------------ */

static void guard(int fd) {
  struct timeval tv = {20, 0}; /* a hang guard, not an assertion */
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

static int connect_tcp(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  guard(fd);
  return fd;
}

static int connect_unix(const char *path) {
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_un a;
  memset(&a, 0, sizeof a);
  a.sun_family = AF_UNIX;
  assert_true(strlen(path) < sizeof a.sun_path);
  strcpy(a.sun_path, path);
  assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  guard(fd);
  return fd;
}

static void write_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n > 0) {
    ssize_t k = write(fd, c, n);
    assert_true(k > 0);
    c += k;
    n -= (size_t)k;
  }
}

/* ---- LMTP against Dovecot ---------------------------------------------- */

static void flush(int fd, smtpuv_proto *p) {
  const void *ptr;
  size_t len;
  for (smtpuv_proto_outgoing(p, &ptr, &len); len > 0;
       smtpuv_proto_outgoing(p, &ptr, &len)) {
    write_all(fd, ptr, len);
    smtpuv_proto_consumed(p, len);
  }
}

/* The next reply, reading as needed; checks command and code. */
static smtpuv_reply next(int fd, smtpuv_proto *p, smtpuv_cmd cmd, int code) {
  smtpuv_reply r;
  int rc;
  while ((rc = smtpuv_proto_next_reply(p, &r)) == 0) {
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0)
      fail_msg("connection closed waiting for %s %d", smtpuv_cmd_name(cmd),
               code);
    assert_int_equal(smtpuv_proto_feed(p, buf, (size_t)n), 0);
  }
  assert_int_equal(rc, 1);
  if (r.command != cmd || r.code != code)
    fail_msg("expected %s %d, got %s %d %s", smtpuv_cmd_name(cmd), code,
             smtpuv_cmd_name(r.command), r.code, r.text);
  return r;
}

static smtpuv_proto *lhlo(int fd) {
  smtpuv_proto *p;
  assert_int_equal(smtpuv_proto_new(NULL, &p), 0);
  assert_int_equal(smtpuv_proto_set_lmtp(p), 0);
  smtpuv_reply r = next(fd, p, SMTPUV_CMD_GREETING, 220);
  assert_non_null(strstr(r.text, "Dovecot"));
  assert_int_equal(smtpuv_proto_ehlo(p, "client.example"), SMTPUV_ESTATE);
  assert_int_equal(smtpuv_proto_lhlo(p, "client.example"), 0);
  flush(fd, p);
  next(fd, p, SMTPUV_CMD_LHLO, 250);
  assert_true(smtpuv_proto_extensions(p) & SMTPUV_EXT_PIPELINING);
  assert_true(smtpuv_proto_extensions(p) & SMTPUV_EXT_CHUNKING);
  return p;
}

static void bye(int fd, smtpuv_proto *p) {
  assert_int_equal(smtpuv_proto_quit(p), 0);
  flush(fd, p);
  next(fd, p, SMTPUV_CMD_QUIT, 221);
  assert_int_equal(smtpuv_proto_error(p), 0);
  smtpuv_proto_free(p);
  close(fd);
}

static const char BODY[] =
    "From: <sender@example.org>\r\nSubject: smtpuv LMTP\r\n\r\n"
    ".leading dot\r\nline two\r\n"
    "a line long enough to exceed the one-byte quota of full@example.org\r\n";

/* The one message in DIR/mail/<user>/Maildir/new ends with `want`. */
static void delivered(const char *user, const char *want, size_t wlen,
                      int count) {
  char dir[600];
  snprintf(dir, sizeof dir, "%s/mail/%s/Maildir/new", dv_dir, user);
  assert_int_equal(itest_count_files(dir), count);
  DIR *d = opendir(dir);
  assert_non_null(d);
  struct dirent *e;
  int seen = 0;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.')
      continue;
    char path[900];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    size_t len;
    char *m = itest_read_file(path, &len);
    assert_non_null(m);
    /* Dovecot prepends Return-Path, Delivered-To, Received */
    assert_true(strncmp(m, "Return-Path: <sender@example.org>\r\n", 35) == 0);
    if (len >= wlen && memcmp(m + len - wlen, want, wlen) == 0 &&
        m[len - wlen - 1] == '\n')
      seen++;
    free(m);
  }
  closedir(d);
  assert_true(seen >= 1);
}

/* DATA over the Unix socket: MAIL, three RCPTs (one unknown), DATA
   pipelined; after the dot a verdict for recipients 0 and 2: delivered
   and over quota; the next MAIL pipelined behind the dot. */
static void test_dovecot_data_unix(void **state) {
  (void)state;
  char sock[500];
  snprintf(sock, sizeof sock, "%s/lmtp.sock", dv_dir);
  int fd = connect_unix(sock);
  smtpuv_proto *p = lhlo(fd);
  assert_int_equal(smtpuv_proto_mail(p, "sender@example.org", NULL), 0);
  assert_int_equal(smtpuv_proto_rcpt(p, "alice@example.org", NULL), 0);
  assert_int_equal(smtpuv_proto_rcpt(p, "nobody@example.org", NULL), 0);
  assert_int_equal(smtpuv_proto_rcpt(p, "full@example.org", NULL), 0);
  assert_int_equal(smtpuv_proto_data(p), 0);
  flush(fd, p);
  next(fd, p, SMTPUV_CMD_MAIL, 250);
  next(fd, p, SMTPUV_CMD_RCPT, 250);
  smtpuv_reply r = next(fd, p, SMTPUV_CMD_RCPT, 550);
  assert_string_equal(r.enhanced, "5.1.1");
  next(fd, p, SMTPUV_CMD_RCPT, 250);
  next(fd, p, SMTPUV_CMD_DATA, 354);
  assert_int_equal(smtpuv_proto_data_write(p, BODY, sizeof BODY - 1), 0);
  assert_int_equal(smtpuv_proto_data_end(p), 0);
  assert_int_equal(smtpuv_proto_mail(p, "sender@example.org", NULL), 0);
  flush(fd, p);
  assert_int_equal(smtpuv_proto_lmtp_due(p), 2);
  r = next(fd, p, SMTPUV_CMD_DATA_END, 250);
  assert_int_equal(r.flags, SMTPUV_REPLY_LMTP_RCPT);
  assert_int_equal(r.rcpt_index, 0);
  assert_int_equal(r.last, 0);
  assert_non_null(strstr(r.text, "<alice@example.org>"));
  assert_int_equal(smtpuv_proto_lmtp_due(p), 1);
  r = next(fd, p, SMTPUV_CMD_DATA_END, 552);
  assert_int_equal(r.flags, SMTPUV_REPLY_LMTP_RCPT);
  assert_int_equal(r.rcpt_index, 2);
  assert_int_equal(r.last, 1);
  assert_string_equal(r.enhanced, "5.2.2");
  assert_non_null(strstr(r.text, "Quota exceeded"));
  next(fd, p, SMTPUV_CMD_MAIL, 250);
  assert_int_equal(smtpuv_proto_rset(p), 0);
  flush(fd, p);
  next(fd, p, SMTPUV_CMD_RSET, 250);
  bye(fd, p);
  delivered("alice", BODY, sizeof BODY - 1, 1);
  char dir[600];
  snprintf(dir, sizeof dir, "%s/mail/full/Maildir/new", dv_dir);
  assert_int_equal(itest_count_files(dir), 0);
}

/* BDAT over TCP, everything pipelined before any reply: two messages,
   the first with three recipients of which two are accepted, the second
   with none (Dovecot answers its BDAT LAST once, 503). */
static void test_dovecot_bdat_tcp(void **state) {
  (void)state;
  int fd = connect_tcp(dv_port);
  smtpuv_proto *p = lhlo(fd);
  assert_int_equal(smtpuv_proto_mail(p, "sender@example.org", NULL), 0);
  assert_int_equal(smtpuv_proto_rcpt(p, "full@example.org", NULL), 0);
  assert_int_equal(smtpuv_proto_rcpt(p, "ghost@example.org", NULL), 0);
  assert_int_equal(smtpuv_proto_rcpt(p, "bob@example.org", NULL), 0);
  assert_int_equal(smtpuv_proto_bdat(p, BODY, 20, 0), 0);
  assert_int_equal(smtpuv_proto_bdat(p, BODY + 20, sizeof BODY - 21, 1), 0);
  assert_int_equal(smtpuv_proto_mail(p, "sender@example.org", NULL), 0);
  assert_int_equal(smtpuv_proto_rcpt(p, "ghost@example.org", NULL), 0);
  assert_int_equal(smtpuv_proto_bdat(p, "x", 1, 1), 0);
  flush(fd, p);
  next(fd, p, SMTPUV_CMD_MAIL, 250);
  next(fd, p, SMTPUV_CMD_RCPT, 250);
  next(fd, p, SMTPUV_CMD_RCPT, 550);
  next(fd, p, SMTPUV_CMD_RCPT, 250);
  smtpuv_reply r = next(fd, p, SMTPUV_CMD_BDAT, 250); /* the first chunk */
  assert_int_equal(r.flags, 0);
  assert_int_equal(smtpuv_proto_lmtp_due(p), 2);
  r = next(fd, p, SMTPUV_CMD_BDAT, 552);
  assert_int_equal(r.flags, SMTPUV_REPLY_LMTP_RCPT);
  assert_int_equal(r.rcpt_index, 0);
  assert_int_equal(r.last, 0);
  r = next(fd, p, SMTPUV_CMD_BDAT, 250);
  assert_int_equal(r.flags, SMTPUV_REPLY_LMTP_RCPT);
  assert_int_equal(r.rcpt_index, 2);
  assert_int_equal(r.last, 1);
  next(fd, p, SMTPUV_CMD_MAIL, 250);
  next(fd, p, SMTPUV_CMD_RCPT, 550);
  r = next(fd, p, SMTPUV_CMD_BDAT, 503);
  assert_int_equal(r.flags, SMTPUV_REPLY_TXN_FAILED);
  assert_int_equal(r.last, 1);
  assert_int_equal(smtpuv_proto_pending_replies(p), 0);
  bye(fd, p);
  delivered("bob", BODY, sizeof BODY - 1, 1);
}

/* aiosmtpd --lmtp over its Unix socket: a DATA message with dot-stuffing
   and bare line endings, then a BDAT message pipelined behind its dot;
   per-recipient verdicts by local part; the stored bytes exactly what the
   core's encoder must produce. */
static void test_aiosmtpd_exact_unix(void **state) {
  (void)state;
  int fd = connect_unix(lm_sock);
  smtpuv_proto *p;
  assert_int_equal(smtpuv_proto_new(NULL, &p), 0);
  next(fd, p, SMTPUV_CMD_GREETING, 220);
  assert_int_equal(smtpuv_proto_lhlo(p, "client.example"), 0);
  flush(fd, p);
  next(fd, p, SMTPUV_CMD_LHLO, 250);
  assert_int_equal(smtpuv_proto_mail(p, "s@example.org", NULL), 0);
  assert_int_equal(smtpuv_proto_rcpt(p, "fail@example.org", NULL), 0);
  assert_int_equal(smtpuv_proto_rcpt(p, "reject@example.org", NULL), 0);
  assert_int_equal(smtpuv_proto_rcpt(p, "a@example.org", NULL), 0);
  assert_int_equal(smtpuv_proto_data(p), 0);
  flush(fd, p);
  next(fd, p, SMTPUV_CMD_MAIL, 250);
  next(fd, p, SMTPUV_CMD_RCPT, 250);
  next(fd, p, SMTPUV_CMD_RCPT, 550);
  next(fd, p, SMTPUV_CMD_RCPT, 250);
  next(fd, p, SMTPUV_CMD_DATA, 354);
  static const char raw[] = "Subject: x\n\n.dot\nbare cr\rend";
  static const char stored1[] = "Subject: x\r\n\r\n.dot\r\nbare cr\r\nend\r\n";
  assert_int_equal(smtpuv_proto_data_write(p, raw, sizeof raw - 1), 0);
  assert_int_equal(smtpuv_proto_data_end(p), 0);
  /* the next message behind the dot, BDAT LAST before its RCPT replies */
  assert_int_equal(smtpuv_proto_mail(p, "s@example.org", NULL), 0);
  assert_int_equal(smtpuv_proto_rcpt(p, "b@example.org", NULL), 0);
  assert_int_equal(smtpuv_proto_rcpt(p, "failtemp@example.org", NULL), 0);
  assert_int_equal(smtpuv_proto_bdat(p, "\x00" "binary?\n", 9, 1), 0);
  flush(fd, p);
  smtpuv_reply r = next(fd, p, SMTPUV_CMD_DATA_END, 550);
  assert_int_equal(r.rcpt_index, 0);
  assert_int_equal(r.last, 0);
  r = next(fd, p, SMTPUV_CMD_DATA_END, 250);
  assert_int_equal(r.rcpt_index, 2);
  assert_int_equal(r.last, 1);
  next(fd, p, SMTPUV_CMD_MAIL, 250);
  next(fd, p, SMTPUV_CMD_RCPT, 250);
  next(fd, p, SMTPUV_CMD_RCPT, 250);
  r = next(fd, p, SMTPUV_CMD_BDAT, 250);
  assert_int_equal(r.rcpt_index, 0);
  assert_int_equal(r.last, 0);
  r = next(fd, p, SMTPUV_CMD_BDAT, 452);
  assert_int_equal(r.rcpt_index, 1);
  assert_int_equal(r.last, 1);
  assert_int_equal(r.flags, SMTPUV_REPLY_LMTP_RCPT);
  bye(fd, p);
  char path[500];
  size_t len;
  snprintf(path, sizeof path, "%s/000002.json", lm_out);
  assert_int_equal(itest_wait_file(path, 20), 0);
  snprintf(path, sizeof path, "%s/000001.eml", lm_out);
  char *m = itest_read_file(path, &len);
  assert_non_null(m);
  assert_int_equal(len, sizeof stored1 - 1);
  assert_memory_equal(m, stored1, len);
  free(m);
  snprintf(path, sizeof path, "%s/000002.eml", lm_out);
  m = itest_read_file(path, &len);
  assert_non_null(m);
  assert_int_equal(len, 10);
  assert_memory_equal(m, "\x00" "binary?\r\n", 10);
  free(m);
  snprintf(path, sizeof path, "%s/000001.json", lm_out);
  m = itest_read_file(path, NULL);
  assert_non_null(strstr(m, "550 5.2.1 <fail@example.org> mailbox disabled"));
  assert_non_null(strstr(m, "250 2.0.0 <a@example.org> delivered"));
  assert_null(strstr(m, "reject@example.org"));
  free(m);
}

/* ---- SOCKS5 against Dante ------------------------------------------------ */

/* Run the handshake on `fd`; returns its result and leaves the bytes the
   proxy sent after it in rest/rest_len. */
static int handshake(int fd, smtpuv_socks5 *s, char *rest, size_t *rest_len) {
  *rest_len = 0;
  for (;;) {
    const void *ptr;
    size_t len;
    smtpuv_socks5_outgoing(s, &ptr, &len);
    if (len > 0) {
      write_all(fd, ptr, len);
      smtpuv_socks5_consumed(s, len);
    }
    char buf[512];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0)
      return SMTPUV_ECONNLOST;
    size_t used;
    int rc = smtpuv_socks5_feed(s, buf, (size_t)n, &used);
    if (rc == 1) {
      memcpy(rest, buf + used, (size_t)n - used);
      *rest_len = (size_t)n - used;
    }
    if (rc != 0)
      return rc;
  }
}

static smtpuv_socks5 *socks(const char *host, int port, const char *user,
                            const char *pass) {
  smtpuv_socks5_params sp = SMTPUV_SOCKS5_PARAMS_INIT;
  sp.host = host;
  sp.port = (uint16_t)port;
  sp.username = user;
  sp.password = pass;
  smtpuv_socks5 *s;
  assert_int_equal(smtpuv_socks5_new(NULL, &sp, &s), 0);
  return s;
}

/* Through the proxy to aiosmtpd: the destination by name (resolved by the
   proxy) or literal; the greeting, EHLO and QUIT over the tunnel. */
static void through(int proxy, const char *host, const char *user,
                    const char *pass) {
  int fd = connect_tcp(dn_port[proxy]);
  smtpuv_socks5 *s = socks(host, aio_port, user, pass);
  char rest[512];
  size_t rest_len;
  int rc = handshake(fd, s, rest, &rest_len);
  if (rc != 1)
    fail_msg("handshake: %s (%s)", smtpuv_err_name(rc),
             smtpuv_socks5_error_text(s));
  const char *addr;
  uint16_t port;
  assert_int_equal(smtpuv_socks5_bound(s, &addr, &port), 0);
  assert_string_equal(addr, "127.0.0.1");
  assert_true(port > 0);
  smtpuv_socks5_free(s);
  smtpuv_proto *p;
  assert_int_equal(smtpuv_proto_new(NULL, &p), 0);
  assert_int_equal(smtpuv_proto_feed(p, rest, rest_len), 0);
  smtpuv_reply r = next(fd, p, SMTPUV_CMD_GREETING, 220);
  assert_non_null(strstr(r.text, "Python SMTP"));
  assert_int_equal(smtpuv_proto_ehlo(p, "client.example"), 0);
  flush(fd, p);
  next(fd, p, SMTPUV_CMD_EHLO, 250);
  bye(fd, p);
}

static void test_socks_noauth(void **state) {
  (void)state;
  through(0, "localhost", NULL, NULL);
  through(0, "127.0.0.1", NULL, NULL);
  through(0, "localhost", "u", "p"); /* offered, not selected */
}

static void test_socks_userpass(void **state) {
  (void)state;
  through(1, "localhost", "smtpuvsocks", "smtpuv-socks-pass");
}

static void refused(int proxy, const char *host, int port, const char *user,
                    const char *pass, int want) {
  int fd = connect_tcp(dn_port[proxy]);
  smtpuv_socks5 *s = socks(host, port, user, pass);
  char rest[512];
  size_t rest_len;
  int rc = handshake(fd, s, rest, &rest_len);
  if (rc != want)
    fail_msg("expected %s, got %s (%s)", smtpuv_err_name(want),
             smtpuv_err_name(rc), smtpuv_socks5_error_text(s));
  assert_int_equal(smtpuv_socks5_state_of(s), SMTPUV_SOCKS5_FAILED);
  smtpuv_socks5_free(s);
  close(fd);
}

static void test_socks_failures(void **state) {
  (void)state;
  refused(0, "127.0.0.2", aio_port, NULL, NULL, SMTPUV_EPROXYRULES);
  refused(0, "127.0.0.1", itest_free_port(), NULL, NULL, SMTPUV_EPROXYREFUSED);
  refused(1, "localhost", aio_port, NULL, NULL, SMTPUV_EPROXYMETHOD);
  refused(1, "localhost", aio_port, "smtpuvsocks", "wrong", SMTPUV_EPROXYAUTH);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_dovecot_data_unix),
      cmocka_unit_test(test_dovecot_bdat_tcp),
      cmocka_unit_test(test_aiosmtpd_exact_unix),
      cmocka_unit_test(test_socks_noauth),
      cmocka_unit_test(test_socks_userpass),
      cmocka_unit_test(test_socks_failures),
  };
  return cmocka_run_group_tests(tests, start_servers, stop_servers);
}

/* SPDX-License-Identifier: MIT */
/* Composed messages (smtpuv/compose.h) through real MTAs: the private
 * Postfix (tests/servers/postfix_instance.sh) and Exim
 * (tests/servers/exim_instance.sh, unpacked by scripts/install-deps.sh).
 * Each message has UTF-8 display names and headers, a text and an html
 * part, an inline image, a non-ASCII file name and a 3 MiB attachment
 * streamed from a callback; it goes out through
 * smtpuv_client_send_composed() and is read back from the Maildir of every
 * recipient (To, Cc and the Bcc one) and compared byte for byte with what
 * the composer produced (maildir_extract.py removes the delivery trace). */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "itest.h"
#include "smtpuv/compose.h"

typedef struct server {
  const char *name, *script, *trace; /* trace: header naming the recipient */
  char dir[400], log[400], ca[500];
  int port, tls_port, up;
} server;

static server servers[2] = {
    {"postfix", "postfix_instance.sh", "X-Original-To", "", "", "", 0, 0, 0},
    {"exim", "exim_instance.sh", "Envelope-to", "", "", "", 0, 0, 0}};

static int start_servers(void **state) {
  (void)state;
  for (int i = 0; i < 2; i++) {
    server *s = &servers[i];
    char p1[16], p2[16];
    snprintf(s->dir, sizeof s->dir, "%s/%s", itest_workdir(), s->name);
    snprintf(s->log, sizeof s->log, "%s/%s.log", itest_workdir(), s->name);
    snprintf(s->ca, sizeof s->ca, "%s/pki/ca.crt", s->dir);
    s->port = itest_free_port();
    s->tls_port = itest_free_port();
    snprintf(p1, sizeof p1, "%d", s->port);
    snprintf(p2, sizeof p2, "%d", s->tls_port);
    if (itest_run(s->log, itest_server_path(s->script), "start", s->dir, p1,
                  p2) != 0) {
      char *l = itest_read_file(s->log, NULL);
      fprintf(stderr, "%s start failed:\n%s\n", s->script, l ? l : "");
      free(l);
      return -1;
    }
    s->up = 1;
  }
  return 0;
}

static int stop_servers(void **state) {
  (void)state;
  for (int i = 0; i < 2; i++)
    if (servers[i].up)
      itest_run(servers[i].log, itest_server_path(servers[i].script), "stop",
                servers[i].dir, NULL, NULL);
  itest_cleanup();
  return 0;
}

/* The Maildir file delivered to `rcpt`, without the delivery trace. */
static char *delivered(const server *s, const char *rcpt, size_t *len) {
  char cmd[1600], out[600], found[600];
  snprintf(found, sizeof found, "%s/found", s->dir);
  snprintf(out, sizeof out, "%s/extracted.eml", s->dir);
  double end = itest_now_ms() + 30000;
  for (;;) {
    snprintf(cmd, sizeof cmd,
             "grep -l -x '%s: %s' %s/mail/capture/new/* > %s 2>/dev/null",
             s->trace, rcpt, s->dir, found);
    if (system(cmd) == 0)
      break;
    if (itest_now_ms() > end)
      fail_msg("%s: no delivery for %s", s->name, rcpt);
    itest_sleep_ms(50);
  }
  char *name = itest_read_file(found, NULL);
  name[strcspn(name, "\n")] = '\0';
  snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s '%s' --raw-out %s >/dev/null",
           itest_server_path("maildir_extract.py"), name, out);
  free(name);
  assert_int_equal(system(cmd), 0);
  return itest_read_file(out, len);
}

/* A rewindable 3 MiB binary source. */
typedef struct gen {
  size_t total, pos;
} gen;

static long gen_read(void *u, void *buf, size_t cap) {
  gen *g = u;
  size_t k = g->total - g->pos < cap ? g->total - g->pos : cap;
  unsigned char *b = buf;
  for (size_t i = 0; i < k; i++)
    b[i] = (unsigned char)((g->pos + i) * 2654435761u >> 11);
  g->pos += k;
  return (long)k;
}

static int gen_rewind(void *u) {
  ((gen *)u)->pos = 0;
  return 0;
}

static smtpuv_compose *make(const char *tag, unsigned flags, gen *g) {
  smtpuv_compose *c;
  char a[128], subject[300];
  assert_int_equal(smtpuv_compose_new(NULL, flags, &c), 0);
  assert_int_equal(smtpuv_compose_address(c, SMTPUV_COMPOSE_FROM, "Zoë Martin",
                                          "zoe@example.com"), 0);
  snprintf(a, sizeof a, "to-%s@example.com", tag);
  assert_int_equal(smtpuv_compose_address(c, SMTPUV_COMPOSE_TO, "Ops, Team", a), 0);
  snprintf(a, sizeof a, "cc-%s@example.com", tag);
  assert_int_equal(smtpuv_compose_address(c, SMTPUV_COMPOSE_CC, "Jürgen", a), 0);
  snprintf(a, sizeof a, "bcc-%s@example.com", tag);
  assert_int_equal(smtpuv_compose_address(c, SMTPUV_COMPOSE_BCC, NULL, a), 0);
  snprintf(subject, sizeof subject,
           "Café ✓ %s — 日本語のテキストがここに続きます and a long ASCII "
           "tail that folds the header line past 78 columns", tag);
  assert_int_equal(smtpuv_compose_subject(c, subject), 0);
  assert_int_equal(smtpuv_compose_header(c, "X-Test-Tag", tag), 0);
  char text[2000];
  int n = snprintf(text, sizeof text,
                   "Bonjour à tous,\n.leading dot\n..two dots\n\nfin %s\n", tag);
  for (int i = 0; i < 1200; i++) /* a line longer than 998 */
    text[n++] = (char)('a' + i % 26);
  text[n++] = '\n';
  assert_int_equal(smtpuv_compose_text(c, text, (size_t)n), 0);
  const char *html = "<p>Caf\xc3\xa9 <img src=\"cid:logo@example.com\"></p>\n";
  assert_int_equal(smtpuv_compose_html(c, html, strlen(html)), 0);
  static unsigned char img[3000];
  for (size_t i = 0; i < sizeof img; i++)
    img[i] = (unsigned char)(i * 31 + 7);
  smtpuv_compose_part p = SMTPUV_COMPOSE_PART_INIT;
  p.content_type = "image/png";
  p.content_id = "logo@example.com";
  p.data = img;
  p.len = sizeof img;
  assert_int_equal(smtpuv_compose_attach(c, &p), 0);
  smtpuv_compose_part q = SMTPUV_COMPOSE_PART_INIT;
  q.content_type = "application/octet-stream";
  q.filename = "données très longues — 2026.bin";
  q.read = gen_read;
  q.rewind = gen_rewind;
  q.user = g;
  q.size = (int64_t)g->total;
  assert_int_equal(smtpuv_compose_attach(c, &q), 0);
  assert_int_equal(smtpuv_compose_finish(c), 0);
  return c;
}

typedef struct outcome {
  int done, status, error;
} outcome;

static void on_sent(smtpuv_client *cl, const smtpuv_send_result *r, void *d) {
  outcome *o = d;
  (void)cl;
  o->done = 1;
  o->status = r->status;
  o->error = r->error;
  if (r->status != SMTPUV_SEND_SENT)
    fprintf(stderr, "send: %s\n", r->message);
}

static void roundtrip(server *s, const char *tag, unsigned flags) {
  gen g = {3u << 20, 0};
  smtpuv_compose *c = make(tag, flags, &g);
  char *want;
  size_t want_len;
  assert_int_equal(smtpuv_compose_to_buffer(c, &want, &want_len), 0);
  assert_null(strstr(want, "bcc-"));
  smtpuv_options *o = itest_options(s->port, SMTPUV_TLS_REQUIRED);
  smtpuv_options_set_ca(o, s->ca, NULL);
  smtpuv_options_set_credentials(o, "testuser@example.com", "testpass", NULL);
  uv_loop_t loop;
  uv_loop_init(&loop);
  smtpuv_client *cl;
  assert_int_equal(smtpuv_client_new(&loop, o, &cl), 0);
  outcome out = {0, -1, 0};
  assert_int_equal(smtpuv_client_send_composed(cl, c, on_sent, &out), 0);
  double t0 = itest_now_ms();
  while (!out.done && itest_now_ms() - t0 < 60000)
    uv_run(&loop, UV_RUN_ONCE);
  smtpuv_client_close(cl, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
  smtpuv_options_free(o);
  assert_true(out.done);
  assert_int_equal(out.status, SMTPUV_SEND_SENT);
  const char *who[3] = {"to", "cc", "bcc"};
  for (int i = 0; i < 3; i++) {
    char rcpt[128];
    snprintf(rcpt, sizeof rcpt, "%s-%s@example.com", who[i], tag);
    size_t n;
    char *got = delivered(s, rcpt, &n);
    if (n != want_len || memcmp(got, want, n) != 0)
      fail_msg("%s: %s got %zu bytes, composed %zu", s->name, rcpt, n,
               want_len);
    free(got);
  }
  smtpuv_compose_buffer_free(NULL, want);
  smtpuv_compose_free(c);
}

static void test_postfix(void **state) {
  (void)state;
  roundtrip(&servers[0], "pf7", 0);
  roundtrip(&servers[0], "pf8", SMTPUV_COMPOSE_8BITMIME);
}

static void test_exim(void **state) {
  (void)state;
  roundtrip(&servers[1], "ex7", 0);
  roundtrip(&servers[1], "ex8", SMTPUV_COMPOSE_8BITMIME);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_postfix),
      cmocka_unit_test(test_exim),
  };
  return cmocka_run_group_tests(tests, start_servers, stop_servers);
}

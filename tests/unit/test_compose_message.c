/* SPDX-License-Identifier: MIT */
/* The composer (smtpuv/compose.h): exact bytes of the common shapes, the
 * refusals, the streaming contract, bounded memory, the helpers. The random
 * parts (boundaries, Message-ID digits) are replaced by placeholders before
 * comparing: "=_B1", "=_B2"... in order of appearance, and "<ID@". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "smtpuv/compose.h"
#include "support.h"

static int ishex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

/* Replace the random parts with placeholders (in place). */
static char *canon(const char *in, size_t len) {
  char *out = malloc(len + 1);
  char seen[8][31];
  int nseen = 0;
  size_t o = 0;
  for (size_t i = 0; i < len;) {
    if (in[i] == '=' && i + 30 <= len && in[i + 1] == '_') {
      int hex = 1;
      for (int k = 0; k < 28; k++)
        hex &= ishex(in[i + 2 + k]);
      if (hex) {
        int id = -1;
        for (int k = 0; k < nseen; k++)
          if (memcmp(seen[k], in + i, 30) == 0)
            id = k;
        if (id < 0 && nseen < 8) {
          memcpy(seen[nseen], in + i, 30);
          id = nseen++;
        }
        o += (size_t)sprintf(out + o, "=_B%d", id + 1);
        i += 30;
        continue;
      }
    }
    if (in[i] == '<' && i + 34 <= len && in[i + 33] == '@') {
      int hex = 1;
      for (int k = 0; k < 32; k++)
        hex &= ishex(in[i + 1 + k]);
      if (hex) {
        memcpy(out + o, "<ID@", 4);
        o += 4;
        i += 34;
        continue;
      }
    }
    out[o++] = in[i++];
  }
  out[o] = '\0';
  return out;
}

static char *compose_all(smtpuv_compose *c, size_t *len) {
  char *b;
  size_t n;
  assert_int_equal(smtpuv_compose_to_buffer(c, &b, &n), 0);
  assert_int_equal(strlen(b), n);
  if (smtpuv_compose_size(c) >= 0)
    assert_int_equal(smtpuv_compose_size(c), n);
  char *k = canon(b, n);
  smtpuv_compose_buffer_free(NULL, b);
  if (len)
    *len = n;
  return k;
}

static smtpuv_compose *base(unsigned flags) {
  smtpuv_compose *c;
  assert_int_equal(smtpuv_compose_new(NULL, flags, &c), 0);
  assert_int_equal(smtpuv_compose_address(c, SMTPUV_COMPOSE_FROM, NULL,
                                          "alerts@example.org"), 0);
  assert_int_equal(smtpuv_compose_address(c, SMTPUV_COMPOSE_TO, NULL,
                                          "ops@example.net"), 0);
  assert_int_equal(smtpuv_compose_date(c, 1700000000, 0), 0);
  return c;
}

static void plain_ascii(void **state) {
  (void)state;
  smtpuv_compose *c = base(0);
  assert_int_equal(smtpuv_compose_subject(c, "Disk almost full"), 0);
  assert_int_equal(smtpuv_compose_text(c, "Disk /var is 95% full.\n", 23), 0);
  assert_int_equal(smtpuv_compose_finish(c), 0);
  char *m = compose_all(c, NULL);
  assert_string_equal(m,
                      "Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
                      "From: alerts@example.org\r\n"
                      "To: ops@example.net\r\n"
                      "Subject: Disk almost full\r\n"
                      "Message-ID: <ID@example.org>\r\n"
                      "MIME-Version: 1.0\r\n"
                      "Content-Type: text/plain; charset=utf-8\r\n"
                      "Content-Transfer-Encoding: 7bit\r\n"
                      "\r\n"
                      "Disk /var is 95% full.\r\n");
  free(m);
  assert_string_equal(smtpuv_compose_sender(c), "alerts@example.org");
  size_t n;
  const char *const *r = smtpuv_compose_recipients(c, &n);
  assert_int_equal(n, 1);
  assert_string_equal(r[0], "ops@example.net");
  assert_null(r[1]);
  assert_int_equal(smtpuv_compose_8bit(c), 0);
  smtpuv_compose_free(c);
}

static void utf8_headers(void **state) {
  (void)state;
  smtpuv_compose *c;
  assert_int_equal(smtpuv_compose_new(NULL, 0, &c), 0);
  assert_int_equal(smtpuv_compose_address(c, SMTPUV_COMPOSE_FROM, "Zoë Martin",
                                          "zoe@example.org"), 0);
  assert_int_equal(smtpuv_compose_address(c, SMTPUV_COMPOSE_TO, "Ops, Team",
                                          "ops@example.net"), 0);
  assert_int_equal(smtpuv_compose_address(c, SMTPUV_COMPOSE_TO, "Bob Smith",
                                          "bob@example.net"), 0);
  assert_int_equal(smtpuv_compose_address(c, SMTPUV_COMPOSE_CC, NULL,
                                          "cc@example.net"), 0);
  assert_int_equal(smtpuv_compose_address(c, SMTPUV_COMPOSE_BCC, NULL,
                                          "hidden@example.net"), 0);
  assert_int_equal(smtpuv_compose_address(c, SMTPUV_COMPOSE_BCC, NULL,
                                          "ops@example.net"), 0);
  assert_int_equal(smtpuv_compose_date(c, 1700000000, -300), 0);
  assert_int_equal(smtpuv_compose_subject(c, "Café ouvert"), 0);
  assert_int_equal(smtpuv_compose_header(c, "X-Priority", "1 (Highest)"), 0);
  assert_int_equal(smtpuv_compose_in_reply_to(c, "<a@example.org>"), 0);
  assert_int_equal(smtpuv_compose_message_id(c, "mail.example.org"), 0);
  assert_int_equal(smtpuv_compose_text(c, "Bonjour à tous\n", 16), 0);
  assert_int_equal(smtpuv_compose_finish(c), 0);
  char *m = compose_all(c, NULL);
  assert_string_equal(m,
                      "Date: Tue, 14 Nov 2023 17:13:20 -0500\r\n"
                      "From: =?UTF-8?Q?Zo=C3=AB_Martin?= <zoe@example.org>\r\n"
                      "To: \"Ops, Team\" <ops@example.net>, Bob Smith <bob@example.net>\r\n"
                      "Cc: cc@example.net\r\n"
                      "Subject: =?UTF-8?B?Q2Fmw6k=?= ouvert\r\n" /* B: shorter */
                      "Message-ID: <ID@mail.example.org>\r\n"
                      "In-Reply-To: <a@example.org>\r\n"
                      "X-Priority: 1 (Highest)\r\n"
                      "MIME-Version: 1.0\r\n"
                      "Content-Type: text/plain; charset=utf-8\r\n"
                      "Content-Transfer-Encoding: quoted-printable\r\n"
                      "\r\n"
                      "Bonjour =C3=A0 tous\r\n");
  free(m);
  size_t n;
  const char *const *r = smtpuv_compose_recipients(c, &n);
  assert_int_equal(n, 4); /* To, Bcc, Cc; each once */
  assert_string_equal(r[0], "ops@example.net");
  assert_string_equal(r[1], "bob@example.net");
  assert_string_equal(r[2], "hidden@example.net");
  assert_string_equal(r[3], "cc@example.net");
  smtpuv_compose_free(c);
}

static void long_subject_folds(void **state) {
  (void)state;
  smtpuv_compose *c = base(0);
  assert_int_equal(
      smtpuv_compose_subject(c, "The quarterly report of the operations team "
                                "is ready for review: "
                                "日本語のテキストがここに続きます"),
      0);
  assert_int_equal(smtpuv_compose_finish(c), 0);
  char *m = compose_all(c, NULL);
  const char *want =
      "Subject: The quarterly report of the operations team is ready for review:\r\n"
      " =?UTF-8?B?5pel5pys6Kqe44Gu44OG44Kt44K544OI44GM44GT44GT44Gr57aa44GN44G+?=\r\n"
      " =?UTF-8?B?44GZ?=\r\n"
      "Message-ID:";
  assert_non_null(strstr(m, want));
  free(m);
  smtpuv_compose_free(c);
}

static void alternative_attachment(void **state) {
  (void)state;
  smtpuv_compose *c = base(0);
  assert_int_equal(smtpuv_compose_subject(c, "Report"), 0);
  assert_int_equal(smtpuv_compose_text(c, "See attached.", 13), 0);
  assert_int_equal(smtpuv_compose_html(c, "<p>See <img src=\"cid:logo@x\"></p>", 33), 0);
  smtpuv_compose_part p = SMTPUV_COMPOSE_PART_INIT;
  p.content_type = "image/png";
  p.content_id = "logo@x";
  p.data = "\x89PNG";
  p.len = 4;
  assert_int_equal(smtpuv_compose_attach(c, &p), 0);
  smtpuv_compose_part a = SMTPUV_COMPOSE_PART_INIT;
  a.content_type = "application/pdf";
  a.filename = "résumé.pdf";
  a.data = "%PDF-1.4\r\n";
  a.len = 10;
  assert_int_equal(smtpuv_compose_attach(c, &a), 0);
  assert_int_equal(smtpuv_compose_finish(c), 0);
  char *m = compose_all(c, NULL);
  const char *body = strstr(m, "MIME-Version");
  assert_non_null(body);
  assert_string_equal(body,
      "MIME-Version: 1.0\r\n"
      "Content-Type: multipart/mixed; boundary=\"=_B1\"\r\n"
      "\r\n"
      "--=_B1\r\n"
      "Content-Type: multipart/alternative; boundary=\"=_B2\"\r\n"
      "\r\n"
      "--=_B2\r\n"
      "Content-Type: text/plain; charset=utf-8\r\n"
      "Content-Transfer-Encoding: 7bit\r\n"
      "\r\n"
      "See attached.\r\n"
      "\r\n"
      "--=_B2\r\n"
      "Content-Type: multipart/related; boundary=\"=_B3\"\r\n"
      "\r\n"
      "--=_B3\r\n"
      "Content-Type: text/html; charset=utf-8\r\n"
      "Content-Transfer-Encoding: 7bit\r\n"
      "\r\n"
      "<p>See <img src=\"cid:logo@x\"></p>\r\n"
      "\r\n"
      "--=_B3\r\n"
      "Content-Type: image/png\r\n"
      "Content-Transfer-Encoding: base64\r\n"
      "Content-Disposition: inline\r\n"
      "Content-ID: <logo@x>\r\n"
      "\r\n"
      "iVBORw==\r\n"
      "--=_B3--\r\n"
      "--=_B2--\r\n"
      "--=_B1\r\n"
      "Content-Type: application/pdf\r\n"
      "Content-Transfer-Encoding: 7bit\r\n"
      "Content-Disposition: attachment; filename*=utf-8''r%C3%A9sum%C3%A9.pdf\r\n"
      "\r\n"
      "%PDF-1.4\r\n"
      "\r\n"
      "--=_B1--\r\n");
  free(m);
  smtpuv_compose_free(c);
}

static void eight_bit_and_base64(void **state) {
  (void)state;
  smtpuv_compose *c = base(SMTPUV_COMPOSE_8BITMIME);
  assert_int_equal(smtpuv_compose_text(c, "Grüße\n", 8), 0);
  assert_int_equal(smtpuv_compose_finish(c), 0);
  char *m = compose_all(c, NULL);
  assert_non_null(strstr(m, "Content-Transfer-Encoding: 8bit\r\n\r\nGrüße\r\n"));
  assert_int_equal(smtpuv_compose_8bit(c), 1);
  free(m);
  smtpuv_compose_free(c);
  /* mostly non-ASCII text: base64, 76 columns */
  c = base(0);
  const char *ru = "Привет, мир! Это проверка длинной строки на русском языке.";
  assert_int_equal(smtpuv_compose_text(c, ru, strlen(ru)), 0);
  assert_int_equal(smtpuv_compose_finish(c), 0);
  m = compose_all(c, NULL);
  assert_non_null(strstr(m,
      "Content-Transfer-Encoding: base64\r\n\r\n"
      "0J/RgNC40LLQtdGCLCDQvNC40YAhINCt0YLQviDQv9GA0L7QstC10YDQutCwINC00LvQuNC90L3Q\r\n"
      "vtC5INGB0YLRgNC+0LrQuCDQvdCwINGA0YPRgdGB0LrQvtC8INGP0LfRi9C60LUuDQo="));
  free(m);
  smtpuv_compose_free(c);
}

static void quoted_printable_lines(void **state) {
  (void)state;
  smtpuv_compose *c = base(0);
  char t[200];
  memset(t, 'a', 100);
  memcpy(t + 100, " é \n", 5);
  assert_int_equal(smtpuv_compose_text(c, t, 104), 0);
  assert_int_equal(smtpuv_compose_finish(c), 0);
  char *m = compose_all(c, NULL);
  assert_non_null(strstr(m,
      "quoted-printable\r\n\r\n"
      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa=\r\n"
      "aaaaaaaaaaaaaaaaaaaaaaaaa =C3=A9=20\r\n"));
  free(m);
  smtpuv_compose_free(c);
}

static void refusals(void **state) {
  (void)state;
  smtpuv_compose *c;
  assert_int_equal(smtpuv_compose_new(NULL, 0, &c), 0);
  /* addresses */
  assert_int_equal(smtpuv_compose_address(c, SMTPUV_COMPOSE_TO, NULL, "a b@x.org"), SMTPUV_EADDRESS);
  assert_int_equal(smtpuv_compose_address(c, SMTPUV_COMPOSE_TO, NULL, "a@x.org, b@x.org"), SMTPUV_EADDRESS);
  assert_int_equal(smtpuv_compose_address(c, SMTPUV_COMPOSE_TO, NULL, "nobody"), SMTPUV_EADDRESS);
  assert_int_equal(smtpuv_compose_address(c, SMTPUV_COMPOSE_TO, NULL, "<a@x.org>"), SMTPUV_EADDRESS);
  assert_int_equal(smtpuv_compose_address(c, SMTPUV_COMPOSE_TO, NULL, "zoë@x.org"), SMTPUV_EADDRESS);
  assert_int_equal(smtpuv_compose_address(c, SMTPUV_COMPOSE_TO, "A\r\nBcc: x@y", "a@x.org"), SMTPUV_EHEADER);
  assert_int_equal(smtpuv_compose_address(c, SMTPUV_COMPOSE_TO, "\xff", "a@x.org"), SMTPUV_EHEADER);
  assert_int_equal(smtpuv_compose_address(c, (smtpuv_compose_field)9, NULL, "a@x.org"), SMTPUV_EINVAL);
  /* headers */
  assert_int_equal(smtpuv_compose_subject(c, "a\nb"), SMTPUV_EHEADER);
  assert_int_equal(smtpuv_compose_subject(c, "caf\xc3"), SMTPUV_EHEADER);
  assert_int_equal(smtpuv_compose_header(c, "X Bad", "v"), SMTPUV_EHEADER);
  assert_int_equal(smtpuv_compose_header(c, "X:Bad", "v"), SMTPUV_EHEADER);
  assert_int_equal(smtpuv_compose_header(c, "", "v"), SMTPUV_EHEADER);
  assert_int_equal(smtpuv_compose_header(c, "X-Ok", "v\r\nBcc: x@y"), SMTPUV_EHEADER);
  assert_int_equal(smtpuv_compose_header(c, "bcc", "x@y"), SMTPUV_EINVAL);
  assert_int_equal(smtpuv_compose_header(c, "Content-Type", "text/html"), SMTPUV_EINVAL);
  assert_int_equal(smtpuv_compose_in_reply_to(c, "not-an-id"), SMTPUV_EHEADER);
  assert_int_equal(smtpuv_compose_in_reply_to(c, "<a@b> <c"), SMTPUV_EHEADER);
  assert_int_equal(smtpuv_compose_message_id(c, "bad domain"), SMTPUV_EINVAL);
  assert_int_equal(smtpuv_compose_date(c, 0, 6000), SMTPUV_EINVAL);
  /* bodies */
  assert_int_equal(smtpuv_compose_text(c, "caf\xc3\xa9 \xfe", 7), SMTPUV_EINVAL);
  assert_int_equal(smtpuv_compose_text(c, "a\0b", 3), SMTPUV_EINVAL);
  assert_int_equal(smtpuv_compose_text(c, NULL, 1), SMTPUV_EINVAL);
  smtpuv_compose_part p = SMTPUV_COMPOSE_PART_INIT;
  assert_int_equal(smtpuv_compose_attach(c, &p), SMTPUV_EINVAL); /* no source */
  p.path = "/nonexistent/file";
  assert_int_equal(smtpuv_compose_attach(c, &p), SMTPUV_EIO);
  p.path = "/tmp"; /* a directory */
  assert_int_equal(smtpuv_compose_attach(c, &p), SMTPUV_EIO);
  p.path = NULL;
  p.data = "x";
  p.len = 1;
  p.content_type = "multipart/mixed";
  assert_int_equal(smtpuv_compose_attach(c, &p), SMTPUV_EINVAL);
  p.content_type = "no-slash";
  assert_int_equal(smtpuv_compose_attach(c, &p), SMTPUV_EINVAL);
  p.content_type = NULL;
  p.filename = "a\nb";
  assert_int_equal(smtpuv_compose_attach(c, &p), SMTPUV_EHEADER);
  p.filename = NULL;
  p.content_id = "a b";
  assert_int_equal(smtpuv_compose_attach(c, &p), SMTPUV_EINVAL);
  /* nothing half-written: no recipient, no From */
  assert_int_equal(smtpuv_compose_finish(c), SMTPUV_EHEADER);
  assert_int_equal(smtpuv_compose_address(c, SMTPUV_COMPOSE_FROM, NULL, "a@x.org"), 0);
  assert_int_equal(smtpuv_compose_finish(c), SMTPUV_EHEADER); /* no recipient */
  assert_int_equal(smtpuv_compose_address(c, SMTPUV_COMPOSE_FROM, NULL, "b@x.org"), 0);
  assert_int_equal(smtpuv_compose_address(c, SMTPUV_COMPOSE_BCC, NULL, "r@x.org"), 0);
  assert_int_equal(smtpuv_compose_finish(c), SMTPUV_EHEADER); /* 2 From, no Sender */
  assert_int_equal(smtpuv_compose_address(c, SMTPUV_COMPOSE_SENDER, NULL, "s@x.org"), 0);
  assert_int_equal(smtpuv_compose_address(c, SMTPUV_COMPOSE_SENDER, NULL, "t@x.org"), SMTPUV_EHEADER);
  char buf[8];
  assert_int_equal(smtpuv_compose_read(c, buf, sizeof buf), SMTPUV_ESTATE);
  assert_int_equal(smtpuv_compose_finish(c), 0);
  assert_string_equal(smtpuv_compose_sender(c), "s@x.org");
  assert_int_equal(smtpuv_compose_subject(c, "late"), SMTPUV_ESTATE);
  assert_int_equal(smtpuv_compose_finish(c), SMTPUV_ESTATE);
  assert_int_equal(smtpuv_compose_read(c, buf, 0), SMTPUV_EINVAL);
  size_t len;
  char *m = compose_all(c, &len);
  assert_null(strstr(m, "Bcc"));
  assert_null(strstr(m, "r@x.org"));
  assert_non_null(strstr(m, "From: a@x.org, b@x.org\r\nSender: s@x.org\r\n"));
  free(m);
  smtpuv_compose_free(c);
}

static void replace_invalid(void **state) {
  (void)state;
  smtpuv_compose *c = base(SMTPUV_COMPOSE_REPLACE_INVALID | SMTPUV_COMPOSE_8BITMIME);
  assert_int_equal(smtpuv_compose_subject(c, "a\xff"), 0);
  assert_int_equal(smtpuv_compose_text(c, "x\xc3y", 3), 0);
  assert_int_equal(smtpuv_compose_finish(c), 0);
  char *m = compose_all(c, NULL);
  assert_non_null(strstr(m, "Subject: =?UTF-8?B?Ye+/vQ==?=\r\n"));
  assert_non_null(strstr(m, "\r\n\r\nx\xef\xbf\xbdy\r\n"));
  free(m);
  smtpuv_compose_free(c);
}

/* ---- streaming ---------------------------------------------------------------- */

typedef struct gen {
  uint64_t total, pos;
  int eagain_every, calls, fail_at;
} gen;

static long gen_read(void *u, void *buf, size_t cap) {
  gen *g = u;
  g->calls++;
  if (g->fail_at && g->calls == g->fail_at)
    return -1;
  if (g->eagain_every && g->calls % g->eagain_every == 0)
    return SMTPUV_EAGAIN;
  uint64_t left = g->total - g->pos;
  size_t k = left < cap ? (size_t)left : cap;
  unsigned char *b = buf;
  for (size_t i = 0; i < k; i++)
    b[i] = (unsigned char)((g->pos + i) * 2654435761u >> 13);
  g->pos += k;
  return (long)k;
}

static int gen_rewind(void *u) {
  ((gen *)u)->pos = 0;
  return 0;
}

/* peak live bytes of an allocator */
typedef struct peak_mem {
  smtpuv_mem mem;
  size_t live, peak;
} peak_mem;
static void *pm_malloc(size_t n, void *u) {
  peak_mem *p = u;
  size_t *b = malloc(n + 16);
  if (!b)
    return NULL;
  b[0] = n;
  p->live += n;
  if (p->live > p->peak)
    p->peak = p->live;
  return (char *)b + 16;
}
static void pm_free(void *ptr, void *u) {
  if (!ptr)
    return;
  peak_mem *p = u;
  size_t *b = (size_t *)((char *)ptr - 16);
  p->live -= b[0];
  free(b);
}
static void *pm_calloc(size_t k, size_t n, void *u) {
  void *q = pm_malloc(k * n, u);
  if (q)
    memset(q, 0, k * n);
  return q;
}
static void *pm_realloc(void *ptr, size_t n, void *u) {
  void *q = pm_malloc(n, u);
  if (q && ptr) {
    size_t old = ((size_t *)((char *)ptr - 16))[0];
    memcpy(q, ptr, old < n ? old : n);
  }
  if (q)
    pm_free(ptr, u);
  return q;
}

static void bounded_memory_stream(void **state) {
  (void)state;
  peak_mem pm;
  memset(&pm, 0, sizeof pm);
  pm.mem.user = &pm;
  pm.mem.malloc = pm_malloc;
  pm.mem.calloc = pm_calloc;
  pm.mem.realloc = pm_realloc;
  pm.mem.free = pm_free;
  smtpuv_compose *c;
  assert_int_equal(smtpuv_compose_new(&pm.mem, 0, &c), 0);
  assert_int_equal(smtpuv_compose_address(c, SMTPUV_COMPOSE_FROM, NULL, "a@x.org"), 0);
  assert_int_equal(smtpuv_compose_address(c, SMTPUV_COMPOSE_TO, NULL, "b@x.org"), 0);
  assert_int_equal(smtpuv_compose_text(c, "big one", 7), 0);
  gen g = {16u << 20, 0, 7, 0, 0}; /* 16 MiB, EAGAIN every 7th call */
  smtpuv_compose_part p = SMTPUV_COMPOSE_PART_INIT;
  p.read = gen_read;
  p.rewind = gen_rewind;
  p.user = &g;
  p.size = (int64_t)g.total;
  p.filename = "big.bin";
  assert_int_equal(smtpuv_compose_attach(c, &p), 0);
  assert_int_equal(smtpuv_compose_finish(c), 0);
  int64_t size = smtpuv_compose_size(c);
  assert_true(size > (int64_t)(g.total / 3 * 4));
  static char buf[65536];
  uint64_t total = 0;
  int eagains = 0;
  for (size_t cap = 1;; cap = cap * 3 % 65521 + 1) {
    long r = smtpuv_compose_read(c, buf, cap);
    if (r == SMTPUV_EAGAIN) {
      eagains++;
      continue;
    }
    assert_true(r >= 0);
    if (r == 0)
      break;
    for (long i = 0; i < r; i++) /* 7-bit, CRLF only */
      assert_true((unsigned char)buf[i] < 0x80);
    total += (uint64_t)r;
  }
  assert_int_equal(total, (uint64_t)size);
  assert_true(g.calls > 7); /* the source said EAGAIN on the way */
  (void)eagains;
  assert_true(pm.peak < 128 * 1024); /* bounded: the composer's buffers only */
  /* rewind gives the same size again */
  assert_int_equal(smtpuv_compose_rewind(c), 0);
  total = 0;
  for (;;) {
    long r = smtpuv_compose_read(c, buf, sizeof buf);
    if (r == SMTPUV_EAGAIN)
      continue;
    assert_true(r >= 0);
    if (r == 0)
      break;
    total += (uint64_t)r;
  }
  assert_int_equal(total, (uint64_t)size);
  smtpuv_compose_free(c);
  assert_int_equal(pm.live, 0);
}

static void stream_errors(void **state) {
  (void)state;
  /* a failing source: EBODY, sticky */
  smtpuv_compose *c = base(0);
  gen g = {100000, 0, 0, 0, 3};
  smtpuv_compose_part p = SMTPUV_COMPOSE_PART_INIT;
  p.read = gen_read;
  p.user = &g;
  assert_int_equal(smtpuv_compose_attach(c, &p), 0);
  assert_int_equal(smtpuv_compose_finish(c), 0);
  assert_int_equal(smtpuv_compose_size(c), -1); /* unknown source size */
  char buf[70000];
  long r;
  while ((r = smtpuv_compose_read(c, buf, sizeof buf)) > 0)
    ;
  assert_int_equal(r, SMTPUV_EBODY);
  assert_int_equal(smtpuv_compose_read(c, buf, sizeof buf), SMTPUV_EBODY);
  assert_int_equal(smtpuv_compose_rewind(c), SMTPUV_EINVAL); /* no rewind hook */
  smtpuv_compose_free(c);
  /* a source shorter than its size */
  c = base(0);
  gen g2 = {1000, 0, 0, 0, 0};
  p.user = &g2;
  p.size = 2000;
  assert_int_equal(smtpuv_compose_attach(c, &p), 0);
  assert_int_equal(smtpuv_compose_finish(c), 0);
  while ((r = smtpuv_compose_read(c, buf, sizeof buf)) > 0)
    ;
  assert_int_equal(r, SMTPUV_EBODY);
  smtpuv_compose_free(c);
}

static void file_attachment(void **state) {
  (void)state;
  char path[] = "/tmp/smtpuv-compose-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  unsigned char data[1000];
  for (size_t i = 0; i < sizeof data; i++)
    data[i] = (unsigned char)(i * 7);
  assert_int_equal(write(fd, data, sizeof data), sizeof data);
  close(fd);
  smtpuv_compose *c = base(0);
  smtpuv_compose_part p = SMTPUV_COMPOSE_PART_INIT;
  p.path = path;
  p.filename = "data.bin";
  assert_int_equal(smtpuv_compose_attach(c, &p), 0);
  unlink(path); /* open already: read from the descriptor */
  assert_int_equal(smtpuv_compose_finish(c), 0);
  size_t len;
  char *m = compose_all(c, &len);
  assert_non_null(strstr(m, "Content-Disposition: attachment; filename=\"data.bin\"\r\n\r\nAAcOFRwjKjE4P0ZNVFtiaXB3foWMk5qhqK+2vcTL0tng5+71/AMKERgfJi00O0JJUFdeZWxzeoGI\r\n"
                        "j5adpKuyucDHztXc4+rx+P8GDRQbIikwNz5FTFNaYWhvdn2Ei5KZoKeutbzDytHY3+bt9PsCCRAX\r\n"));
  assert_int_equal(smtpuv_compose_size(c), (int64_t)len);
  free(m);
  smtpuv_compose_free(c);
}

/* ---- helpers ------------------------------------------------------------------- */

static void plain_helper(void **state) {
  (void)state;
  const char *to[2] = {"a@example.net", "b@example.net"};
  smtpuv_compose *c;
  assert_int_equal(smtpuv_compose_plain(NULL, "me@example.org", to, 2, "Hi", "Body", &c), 0);
  char *m = compose_all(c, NULL);
  assert_non_null(strstr(m, "\r\nFrom: me@example.org\r\nTo: a@example.net, b@example.net\r\nSubject: Hi\r\nMessage-ID: <ID@example.org>\r\n"));
  assert_non_null(strstr(m, "7bit\r\n\r\nBody\r\n"));
  free(m);
  size_t n;
  smtpuv_compose_recipients(c, &n);
  assert_int_equal(n, 2);
  smtpuv_compose_free(c);
  assert_int_equal(smtpuv_compose_plain(NULL, "me@example.org", to, 0, "Hi", "Body", &c), SMTPUV_EHEADER);
  assert_null(c);
}

static void missing_helper(void **state) {
  (void)state;
  char *out;
  size_t n;
  const char *msg = "From: Me <me@mail.example.org>\nTo: x@y.org\n\nbody\n";
  assert_int_equal(smtpuv_compose_missing(NULL, msg, strlen(msg), NULL, 1700000000, &out, &n), 0);
  char *k = canon(out, n);
  assert_string_equal(k, "Date: Tue, 14 Nov 2023 22:13:20 +0000\nMessage-ID: <ID@mail.example.org>\n");
  free(k);
  smtpuv_compose_buffer_free(NULL, out);
  const char *full = "Date: x\r\nMessage-ID: <a@b>\r\nFrom: a@b.org\r\n\r\n";
  assert_int_equal(smtpuv_compose_missing(NULL, full, strlen(full), NULL, -1, &out, &n), 0);
  assert_int_equal(n, 0);
  assert_string_equal(out, "");
  smtpuv_compose_buffer_free(NULL, out);
  const char *nodate = "Message-ID: <a@b>\r\nSubject: x\r\n\r\n";
  assert_int_equal(smtpuv_compose_missing(NULL, nodate, strlen(nodate), NULL, 0, &out, &n), 0);
  assert_string_equal(out, "Date: Thu, 01 Jan 1970 00:00:00 +0000\r\n");
  smtpuv_compose_buffer_free(NULL, out);
  const char *nofrom = "Subject: x\r\n\r\n";
  assert_int_equal(smtpuv_compose_missing(NULL, nofrom, strlen(nofrom), NULL, 0, &out, &n), SMTPUV_EHEADER);
  assert_int_equal(smtpuv_compose_missing(NULL, nofrom, strlen(nofrom), "given.example", 0, &out, &n), 0);
  assert_non_null(strstr(out, "@given.example>\r\n"));
  smtpuv_compose_buffer_free(NULL, out);
}

static void allocation_failures(void **state) {
  (void)state;
  /* every allocation failing in turn: a clean error, no leak */
  for (unsigned long k = 1; k < 400; k++) {
    test_mem tm;
    test_mem_init(&tm, k);
    smtpuv_compose *c = NULL;
    int rc = smtpuv_compose_new(&tm.mem, 0, &c);
    if (rc == 0) {
      rc = smtpuv_compose_address(c, SMTPUV_COMPOSE_FROM, "Zoë", "z@x.org");
      if (rc == 0)
        rc = smtpuv_compose_address(c, SMTPUV_COMPOSE_TO, NULL, "t@x.org");
      if (rc == 0)
        rc = smtpuv_compose_subject(c, "Café");
      if (rc == 0)
        rc = smtpuv_compose_text(c, "text", 4);
      smtpuv_compose_part p = SMTPUV_COMPOSE_PART_INIT;
      p.data = "abc";
      p.len = 3;
      p.filename = "é.txt";
      if (rc == 0)
        rc = smtpuv_compose_attach(c, &p);
      if (rc == 0)
        rc = smtpuv_compose_finish(c);
      if (rc == 0) {
        char *b;
        size_t n;
        rc = smtpuv_compose_to_buffer(c, &b, &n);
        if (rc == 0)
          smtpuv_compose_buffer_free(&tm.mem, b);
      }
      smtpuv_compose_free(c);
    }
    assert_true(rc == 0 || rc == SMTPUV_ENOMEM);
    assert_int_equal(tm.live, 0);
    if (!tm.failed)
      break;
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(plain_ascii),
      cmocka_unit_test(utf8_headers),
      cmocka_unit_test(long_subject_folds),
      cmocka_unit_test(alternative_attachment),
      cmocka_unit_test(eight_bit_and_base64),
      cmocka_unit_test(quoted_printable_lines),
      cmocka_unit_test(refusals),
      cmocka_unit_test(replace_invalid),
      cmocka_unit_test(bounded_memory_stream),
      cmocka_unit_test(stream_errors),
      cmocka_unit_test(file_attachment),
      cmocka_unit_test(plain_helper),
      cmocka_unit_test(missing_helper),
      cmocka_unit_test(allocation_failures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

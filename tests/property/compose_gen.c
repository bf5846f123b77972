/* SPDX-License-Identifier: MIT */
/* Property test generator (tests/property/check_compose.py drives it):
 * `compose_gen SEED COUNT` composes COUNT random messages (UTF-8 names and
 * headers, text, html, binary and text attachments from memory and from
 * callbacks, inline parts) and reads each back in random chunks. For each
 * message it writes a description of the inputs (one "key hex" per line)
 * and the composed bytes:
 *   "MSG <n-description-bytes> <n-message-bytes>\n" description message
 * Exits non-zero when the library itself reports a mismatch it can see
 * (the size announced against the bytes read, a rewind giving other bytes). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <smtpuv/compose.h>

static uint64_t rs;
static uint32_t rnd(void) {
  rs ^= rs << 13;
  rs ^= rs >> 7;
  rs ^= rs << 17;
  return (uint32_t)(rs >> 16);
}
static uint32_t below(uint32_t n) { return n ? rnd() % n : 0; }

typedef struct sbuf {
  char *p;
  size_t len, cap;
} sbuf;
static void sput(sbuf *b, const void *s, size_t n) {
  if (b->len + n + 1 > b->cap) {
    b->cap = (b->len + n + 1) * 2;
    b->p = realloc(b->p, b->cap);
    if (b->p == NULL)
      abort();
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = 0;
}
static void sputs(sbuf *b, const char *s) { sput(b, s, strlen(s)); }

static void field(sbuf *d, const char *key, const void *v, size_t n) {
  static const char hx[] = "0123456789abcdef";
  sputs(d, key);
  sputs(d, " ");
  const unsigned char *u = v;
  for (size_t i = 0; i < n; i++) {
    char t[2] = {hx[u[i] >> 4], hx[u[i] & 15]};
    sput(d, t, 2);
  }
  sputs(d, "\n");
}

static const char *const pool[] = {
    "a", "b", "Z", "0", "x", "hello", "world", " ", " ", "  ", "\t", ".",
    ",", "\"", "\\", "=?", "?=", "_", "=", "(", ")", "<", ">", "@", ";",
    ":", "é", "ü", "ß", "Ω", "Ж", "日本", "語", "€", "😀", "𝄞", "—",
    "ñ", "%", "'", "*", "/", "-", "+", "!", "#"};
#define NPOOL (sizeof pool / sizeof pool[0])

/* random UTF-8 text of up to `max` pieces */
static void text(sbuf *b, size_t max, int lines) {
  size_t n = below((uint32_t)max + 1);
  for (size_t i = 0; i < n; i++) {
    if (lines && below(12) == 0) {
      static const char *const eol[] = {"\n", "\r\n", "\r"};
      sputs(b, eol[below(3)]);
      continue;
    }
    if (lines && below(40) == 0) { /* a long line */
      for (int k = 0; k < 120; k++)
        sputs(b, "abcdefghij");
      continue;
    }
    sputs(b, pool[below(NPOOL)]);
  }
}

static void addr(sbuf *b) {
  static const char *const locals[] = {"alice", "bob.smith", "x_y", "o+tag",
                                       "\"odd local\""};
  static const char *const doms[] = {"example.org", "mail.example.net",
                                     "[127.0.0.1]", "a-b.example"};
  const char *l = locals[below(5)];
  sputs(b, l);
  if (l[0] != '"') { /* a quoted local part stays as it is */
    char n[8];
    snprintf(n, sizeof n, "%u", below(100));
    sputs(b, n);
  }
  sputs(b, "@");
  sputs(b, doms[below(4)]);
}

typedef struct stream {
  const unsigned char *d;
  size_t len, pos;
  int eagain;
} stream;

static long stream_read(void *u, void *buf, size_t cap) {
  stream *s = u;
  if (s->eagain && below(4) == 0)
    return -10; /* SMTPUV_EAGAIN */
  size_t k = s->len - s->pos;
  size_t lim = 1 + below(3000);
  if (k > lim)
    k = lim;
  if (k > cap)
    k = cap;
  memcpy(buf, s->d + s->pos, k);
  s->pos += k;
  return (long)k;
}
static int stream_rewind(void *u) {
  ((stream *)u)->pos = 0;
  return 0;
}

static int must(int rc, const char *what) {
  if (rc != 0) {
    fprintf(stderr, "compose_gen: %s: %s\n", what, smtpuv_strerror(rc));
    exit(1);
  }
  return rc;
}

static void read_all(smtpuv_compose *c, sbuf *out) {
  char buf[9000];
  for (;;) {
    size_t cap = 1 + below(below(2) ? 100 : 8999);
    long r = smtpuv_compose_read(c, buf, cap);
    if (r == -10)
      continue;
    if (r < 0)
      must((int)r, "read");
    if (r == 0)
      break;
    sput(out, buf, (size_t)r);
  }
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: compose_gen SEED COUNT\n");
    return 2;
  }
  rs = strtoull(argv[1], NULL, 10) * 2654435761u + 88172645463325252ull;
  long count = atol(argv[2]);
  static const char *const fields[] = {"from", "sender", "reply", "to", "cc",
                                       "bcc"};
  for (long m = 0; m < count; m++) {
    sbuf d = {0};
    unsigned flags = below(3) == 0 ? SMTPUV_COMPOSE_8BITMIME : 0;
    smtpuv_compose *c;
    must(smtpuv_compose_new(NULL, flags, &c), "new");
    if (flags)
      field(&d, "8bit", "1", 1);
    int counts[6] = {1, (int)below(2), (int)below(2), 1 + (int)below(3),
                     (int)below(3), (int)below(3)};
    if (below(5) == 0) {
      counts[0] = 2;
      counts[1] = 1;
    }
    for (int f = 0; f < 6; f++)
      for (int k = 0; k < counts[f]; k++) {
        sbuf name = {0}, a = {0};
        int has_name = below(3) != 0;
        if (has_name) {
          /* short enough for one encoded word: Python's phrase parser
             keeps the blanks between two adjacent encoded words (RFC 2047
             6.2 drops them), the unit tests cover longer names */
          text(&name, 6, 0);
          if (name.len == 0)
            has_name = 0;
        }
        addr(&a);
        must(smtpuv_compose_address(c, (smtpuv_compose_field)f,
                                    has_name ? name.p : NULL, a.p),
             "address");
        field(&d, fields[f], a.p, a.len);
        field(&d, "name", has_name ? name.p : "", has_name ? name.len : 0);
        free(name.p);
        free(a.p);
      }
    sbuf s = {0};
    text(&s, 40, 0);
    must(smtpuv_compose_subject(c, s.p ? s.p : ""), "subject");
    field(&d, "subject", s.p ? s.p : "", s.len);
    free(s.p);
    int64_t when = (int64_t)below(2000000000);
    int off = (int)below(24 * 60) - 12 * 60;
    must(smtpuv_compose_date(c, when, off), "date");
    char w[64];
    snprintf(w, sizeof w, "%lld %d", (long long)when, off);
    field(&d, "date", w, strlen(w));
    for (uint32_t k = below(3); k > 0; k--) {
      sbuf v = {0};
      char nm[32];
      snprintf(nm, sizeof nm, "X-Prop-%u", k);
      text(&v, 30, 0);
      must(smtpuv_compose_header(c, nm, v.p ? v.p : ""), "header");
      field(&d, "xname", nm, strlen(nm));
      field(&d, "xvalue", v.p ? v.p : "", v.len);
      free(v.p);
    }
    if (below(4) == 0) {
      must(smtpuv_compose_references(c, "<a1@example.org> <b2@example.org>"),
           "references");
      must(smtpuv_compose_in_reply_to(c, "<b2@example.org>"), "in-reply-to");
      field(&d, "refs", "1", 1);
    }
    int has_text = below(4) != 0, has_html = below(3) == 0;
    if (has_text) {
      sbuf t = {0};
      text(&t, below(2) ? 30 : 600, 1);
      must(smtpuv_compose_text(c, t.p ? t.p : "", t.len), "text");
      field(&d, "text", t.p ? t.p : "", t.len);
      free(t.p);
    }
    if (has_html) {
      sbuf t = {0};
      sputs(&t, "<p>");
      text(&t, 50, 1);
      must(smtpuv_compose_html(c, t.p, t.len), "html");
      field(&d, "html", t.p, t.len);
      free(t.p);
    }
    stream streams[4];
    unsigned char *datas[4] = {0};
    uint32_t natt = below(4);
    for (uint32_t k = 0; k < natt; k++) {
      smtpuv_compose_part p = SMTPUV_COMPOSE_PART_INIT;
      size_t len = below(below(4) == 0 ? 70000 : 3000);
      unsigned char *b = malloc(len + 1);
      int kind = (int)below(3);
      for (size_t i = 0; i < len; i++) {
        if (kind == 0)
          b[i] = (unsigned char)rnd();
        else if (kind == 1)
          b[i] = i % 40 == 39 ? '\n' : (unsigned char)('a' + below(26));
        else
          b[i] = (unsigned char)" abc\r\n=\xc3\xa9."[below(11)];
      }
      datas[k] = b;
      static const char *const types[] = {"application/octet-stream",
                                          "text/plain", "image/png",
                                          "application/pdf"};
      p.content_type = types[below(4)];
      sbuf fn = {0};
      if (below(4) != 0) {
        text(&fn, 20, 0);
        sputs(&fn, ".bin");
        for (size_t i = 0; i < fn.len; i++)
          if (fn.p[i] == '\t')
            fn.p[i] = '_'; /* control characters are refused in names */
        p.filename = fn.p;
      }
      char cid[32];
      if (below(4) == 0) {
        snprintf(cid, sizeof cid, "part%u@example.org", k);
        p.content_id = cid;
        field(&d, "cid", cid, strlen(cid));
      }
      int src = (int)below(2);
      if (src == 0) {
        p.data = b;
        p.len = len;
      } else {
        streams[k].d = b;
        streams[k].len = len;
        streams[k].pos = 0;
        streams[k].eagain = below(2);
        p.read = stream_read;
        p.rewind = stream_rewind;
        p.user = &streams[k];
        p.size = below(2) ? (int64_t)len : -1;
      }
      must(smtpuv_compose_attach(c, &p), "attach");
      field(&d, "att", b, len);
      field(&d, "ctype", p.content_type, strlen(p.content_type));
      field(&d, "filename", fn.p ? fn.p : "", fn.len);
      field(&d, "hasfn", fn.p ? "1" : "0", 1);
      free(fn.p);
    }
    must(smtpuv_compose_finish(c), "finish");
    sbuf out = {0};
    read_all(c, &out);
    int64_t size = smtpuv_compose_size(c);
    if (size >= 0 && (size_t)size != out.len) {
      fprintf(stderr, "message %ld: size %lld announced, %zu read\n", m,
              (long long)size, out.len);
      return 1;
    }
    must(smtpuv_compose_rewind(c), "rewind");
    sbuf again = {0};
    read_all(c, &again);
    if (again.len != out.len || memcmp(again.p, out.p, out.len) != 0) {
      fprintf(stderr, "message %ld: rewind gave other bytes\n", m);
      return 1;
    }
    size_t nr;
    const char *const *r = smtpuv_compose_recipients(c, &nr);
    for (size_t i = 0; i < nr; i++)
      field(&d, "rcpt", r[i], strlen(r[i]));
    const char *snd = smtpuv_compose_sender(c);
    field(&d, "envfrom", snd, strlen(snd));
    printf("MSG %zu %zu\n", d.len, out.len);
    fwrite(d.p, 1, d.len, stdout);
    fwrite(out.p, 1, out.len, stdout);
    free(d.p);
    free(out.p);
    free(again.p);
    for (uint32_t k = 0; k < natt; k++)
      free(datas[k]);
    smtpuv_compose_free(c);
  }
  return 0;
}

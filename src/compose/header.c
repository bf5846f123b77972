/* SPDX-License-Identifier: MIT */
/* Header fields: folding at 78 columns, RFC 2047 encoded words (Q or B per
 * word, whole UTF-8 sequences), unstructured text, display names, RFC 2231
 * file names, the Date and a random Message-ID. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "compose/compose_int.h"

#define FOLD_AT 78   /* RFC 5322 2.1.1: SHOULD */
#define EW_MAX 75    /* RFC 2047 2: an encoded word's length */
#define EW_FIXED 12  /* "=?UTF-8?Q?" and "?=" */
#define LITERAL_MAX 900 /* a longer word is encoded, so that it can fold */

static const char hexd[] = "0123456789ABCDEF";

void smtpuv__compose_hdr_begin(smtpuv__compose_hdr *h, smtpuv__compose_buf *b, const char *name) {
  h->b = b;
  h->any = 0;
  smtpuv__compose_buf_puts(b, name);
  smtpuv__compose_buf_putc(b, ':');
  h->col = strlen(name) + 1;
}

static void hdr_fold(smtpuv__compose_hdr *h) {
  smtpuv__compose_buf_put(h->b, "\r\n", 2);
  h->col = 0;
}

static void hdr_put(smtpuv__compose_hdr *h, const char *t, size_t n) {
  smtpuv__compose_buf_putc(h->b, ' ');
  smtpuv__compose_buf_put(h->b, t, n);
  h->col += 1 + n;
  h->any = 1;
}

void smtpuv__compose_hdr_token(smtpuv__compose_hdr *h, const char *t, size_t n) {
  if (h->any && h->col + 1 + n > FOLD_AT)
    hdr_fold(h);
  hdr_put(h, t, n);
}

void smtpuv__compose_hdr_end(smtpuv__compose_hdr *h) { smtpuv__compose_buf_put(h->b, "\r\n", 2); }

/* Q-encoded length of one byte: safe in every context of RFC 2047 5. */
static int q_safe(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '!' || c == '*' || c == '+' ||
         c == '-' || c == '/';
}

static size_t q_len(unsigned char c) { return q_safe(c) || c == ' ' ? 1 : 3; }

static size_t b_len(size_t bytes) { return (bytes + 2) / 3 * 4; }

static const char b64d[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void smtpuv__compose_hdr_encoded(smtpuv__compose_hdr *h, const char *s, size_t n) {
  const unsigned char *u = (const unsigned char *)s;
  size_t i = 0;
  while (i < n) {
    size_t room = h->col + 1 < FOLD_AT ? FOLD_AT - h->col - 1 : 0;
    size_t limit = EW_MAX - EW_FIXED;
    /* what fits in one word is not split to fill a line: fold first */
    size_t rest_q = 0;
    for (size_t x = i; x < n; x++)
      rest_q += q_len(u[x]);
    size_t rest = rest_q < b_len(n - i) ? rest_q : b_len(n - i);
    if (rest <= limit && rest + EW_FIXED > room && h->any)
      room = 0;
    if (!h->any) {
      /* never fold before the first word: a parser would keep the blank */
      size_t r = room > EW_FIXED + 8 ? room - EW_FIXED : 8;
      if (r < limit)
        limit = r;
    } else if (room >= EW_FIXED + 12) {
      if (room - EW_FIXED < limit)
        limit = room - EW_FIXED;
    } else {
      hdr_fold(h);
    }
    /* as many whole characters as fit in Q or in B */
    size_t j = i, qn = 0, bytes = 0;
    while (j < n) {
      size_t k = smtpuv__compose_utf8_seq(u + j, n - j);
      if (k == 0)
        k = 1; /* not reached: the text was checked */
      size_t qk = 0;
      for (size_t x = 0; x < k; x++)
        qk += q_len(u[j + x]);
      size_t q2 = qn + qk, b2 = b_len(bytes + k);
      if ((q2 < b2 ? q2 : b2) > limit)
        break;
      qn = q2;
      bytes += k;
      j += k;
    }
    if (j == i) { /* not reached: 12 columns hold any character */
      hdr_fold(h);
      continue;
    }
    char w[EW_MAX + 8];
    size_t o = 0;
    int useq = qn <= b_len(bytes);
    memcpy(w, useq ? "=?UTF-8?Q?" : "=?UTF-8?B?", 10);
    o = 10;
    if (useq) {
      for (size_t x = i; x < j; x++) {
        unsigned char c = u[x];
        if (c == ' ') {
          w[o++] = '_';
        } else if (q_safe(c)) {
          w[o++] = (char)c;
        } else {
          w[o++] = '=';
          w[o++] = hexd[c >> 4];
          w[o++] = hexd[c & 15];
        }
      }
    } else {
      for (size_t x = i; x < j; x += 3) {
        size_t r = j - x;
        unsigned v = (unsigned)u[x] << 16;
        if (r > 1)
          v |= (unsigned)u[x + 1] << 8;
        if (r > 2)
          v |= u[x + 2];
        w[o++] = b64d[(v >> 18) & 63];
        w[o++] = b64d[(v >> 12) & 63];
        w[o++] = r > 1 ? b64d[(v >> 6) & 63] : '=';
        w[o++] = r > 2 ? b64d[v & 63] : '=';
      }
    }
    w[o++] = '?';
    w[o++] = '=';
    hdr_put(h, w, o);
    i = j;
  }
}

/* A word kept as it is in unstructured text. */
static int literal_word(const char *s, size_t n) {
  if (n == 0 || n > LITERAL_MAX)
    return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c <= 0x20 || c >= 0x7f)
      return 0;
    if (c == '=' && i + 1 < n && s[i + 1] == '?')
      return 0; /* would read as an encoded word */
  }
  return 1;
}

typedef struct word {
  size_t start, len;
  int literal;
} word;

void smtpuv__compose_hdr_unstructured(smtpuv__compose_hdr *h, const char *s, size_t n) {
  /* words between single spaces; a run of words that are not literal is
     encoded as one (the spaces between them inside) */
  size_t nw = 1;
  for (size_t i = 0; i < n; i++)
    nw += s[i] == ' ';
  word wbuf[64];
  word *w = nw <= 64 ? wbuf : smtpuv__malloc(h->b->mem, nw * sizeof *w);
  if (w == NULL) {
    h->b->err = SMTPUV_ENOMEM;
    return;
  }
  size_t k = 0, st = 0;
  for (size_t i = 0; i <= n; i++) {
    if (i == n || s[i] == ' ') {
      w[k].start = st;
      w[k].len = i - st;
      w[k].literal = literal_word(s + st, i - st);
      k++;
      st = i + 1;
    }
  }
  /* an encoded run must not be empty text: a lone empty word (two spaces
     in a row, or a space at either end) takes in a neighbour */
  for (size_t i = 0; i < nw; i++) {
    if (w[i].literal || (i > 0 && !w[i - 1].literal))
      continue;
    size_t e = i;
    while (e + 1 < nw && !w[e + 1].literal)
      e++;
    if (e == i && w[i].len == 0) {
      if (i + 1 < nw)
        w[i + 1].literal = 0;
      else if (i > 0)
        w[i - 1].literal = 0;
    }
  }
  for (size_t i = 0; i < nw;) {
    if (w[i].literal) {
      smtpuv__compose_hdr_token(h, s + w[i].start, w[i].len);
      i++;
      continue;
    }
    size_t e = i;
    while (e + 1 < nw && !w[e + 1].literal)
      e++;
    size_t a = w[i].start, z = w[e].start + w[e].len;
    if (z > a)
      smtpuv__compose_hdr_encoded(h, s + a, z - a);
    i = e + 1;
  }
  if (w != wbuf)
    smtpuv__free(h->b->mem, w);
}

static int atext(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

void smtpuv__compose_hdr_phrase(smtpuv__compose_hdr *h, const char *s, size_t n) {
  int printable = n > 0, atoms = n > 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x20 || c >= 0x7f)
      printable = atoms = 0;
    else if (c != ' ' && !atext(c))
      atoms = 0;
    if (c == '=' && i + 1 < n && s[i + 1] == '?')
      printable = atoms = 0;
    if (c == ' ' && (i == 0 || i + 1 == n || s[i + 1] == ' '))
      printable = atoms = 0; /* blanks that a parser would not keep */
  }
  if (atoms) {
    size_t st = 0;
    for (size_t i = 0; i <= n; i++)
      if (i == n || s[i] == ' ') {
        if (i - st > 70) {
          atoms = 0;
          break;
        }
        st = i + 1;
      }
  }
  if (atoms) {
    size_t st = 0;
    for (size_t i = 0; i <= n; i++)
      if (i == n || s[i] == ' ') {
        smtpuv__compose_hdr_token(h, s + st, i - st);
        st = i + 1;
      }
    return;
  }
  if (printable && n <= 70) {
    char q[2 * 70 + 3];
    size_t o = 0;
    q[o++] = '"';
    for (size_t i = 0; i < n; i++) {
      if (s[i] == '"' || s[i] == '\\')
        q[o++] = '\\';
      q[o++] = s[i];
    }
    q[o++] = '"';
    smtpuv__compose_hdr_token(h, q, o);
    return;
  }
  smtpuv__compose_hdr_encoded(h, s, n);
}

static int attr_char(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || (c != 0 && strchr("!#$&+-.^_`|~", c));
}

#define SEG_MAX 50 /* encoded characters per RFC 2231 section */

void smtpuv__compose_hdr_filename(smtpuv__compose_hdr *h, const char *name) {
  size_t n = strlen(name);
  int simple = n > 0 && n <= SEG_MAX && name[0] != ' ' && name[n - 1] != ' ';
  for (size_t i = 0; i < n && simple; i++) {
    unsigned char c = (unsigned char)name[i];
    if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\' ||
        (c == '=' && name[i + 1] == '?') || (c == ' ' && name[i + 1] == ' '))
      simple = 0;
  }
  char t[SEG_MAX + 40];
  if (simple) {
    int len = snprintf(t, sizeof t, "filename=\"%s\"", name);
    smtpuv__compose_hdr_token(h, t, (size_t)len);
    return;
  }
  /* RFC 2231: percent-encoded UTF-8, in sections of SEG_MAX characters */
  size_t total = 0;
  for (size_t i = 0; i < n; i++)
    total += attr_char((unsigned char)name[i]) ? 1 : 3;
  int sections = total > SEG_MAX;
  size_t i = 0;
  for (unsigned sec = 0; i < n || (sec == 0 && n == 0); sec++) {
    size_t o;
    if (!sections)
      o = (size_t)snprintf(t, sizeof t, "filename*=utf-8''");
    else if (sec == 0)
      o = (size_t)snprintf(t, sizeof t, "filename*0*=utf-8''");
    else
      o = (size_t)snprintf(t, sizeof t, "filename*%u*=", sec);
    size_t used = 0;
    while (i < n) {
      unsigned char c = (unsigned char)name[i];
      size_t k = attr_char(c) ? 1 : 3;
      if (used + k > SEG_MAX)
        break;
      if (k == 1) {
        t[o++] = (char)c;
      } else {
        t[o++] = '%';
        t[o++] = hexd[c >> 4];
        t[o++] = hexd[c & 15];
      }
      used += k;
      i++;
    }
    if (i < n)
      t[o++] = ';';
    smtpuv__compose_hdr_token(h, t, o);
    if (n == 0)
      break;
  }
}

int smtpuv__compose_date_format(int64_t t, int off, char out[40]) {
  static const char *const days[7] = {"Sun", "Mon", "Tue", "Wed",
                                      "Thu", "Fri", "Sat"};
  static const char *const months[12] = {"Jan", "Feb", "Mar", "Apr",
                                         "May", "Jun", "Jul", "Aug",
                                         "Sep", "Oct", "Nov", "Dec"};
  if (off < -(99 * 60 + 59) || off > 99 * 60 + 59)
    return SMTPUV_EINVAL;
  int hh = (off < 0 ? -off : off) / 60, mm = (off < 0 ? -off : off) % 60;
  int64_t local = t + (int64_t)off * 60;
  if (local < INT64_C(-2208988800) || local > INT64_C(253402300799))
    return SMTPUV_EINVAL; /* 1900..9999 */
  time_t tt = (time_t)local;
  struct tm tm;
  if ((int64_t)tt != local || gmtime_r(&tt, &tm) == NULL)
    return SMTPUV_EINVAL;
  snprintf(out, 40, "%s, %02d %s %04d %02d:%02d:%02d %c%02d%02d",
           days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900,
           tm.tm_hour, tm.tm_min, tm.tm_sec, off < 0 ? '-' : '+', hh, mm);
  return 0;
}

int smtpuv__compose_domain_ok(const char *d) {
  size_t n = strlen(d);
  if (n == 0 || n > 253)
    return 0;
  if (d[0] == '[') {
    if (n < 3 || d[n - 1] != ']')
      return 0;
    for (size_t i = 1; i + 1 < n; i++)
      if ((unsigned char)d[i] <= 0x20 || (unsigned char)d[i] >= 0x7f ||
          d[i] == '[' || d[i] == ']' || d[i] == '\\')
        return 0;
    return 1;
  }
  if (d[0] == '.' || d[n - 1] == '.')
    return 0;
  for (size_t i = 0; i < n; i++) {
    char c = d[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '-' || c == '.'))
      return 0;
    if (c == '.' && d[i + 1] == '.')
      return 0;
  }
  return 1;
}

int smtpuv__compose_msgid_make(smtpuv__compose_buf *b, const char *domain) {
  unsigned char r[16];
  if (RAND_bytes(r, sizeof r) != 1)
    return SMTPUV_EIO;
  char x[2 * sizeof r + 2];
  x[0] = '<';
  for (size_t i = 0; i < sizeof r; i++) {
    x[1 + 2 * i] = hexd[r[i] >> 4];
    x[2 + 2 * i] = hexd[r[i] & 15];
  }
  x[1 + 2 * sizeof r] = '@';
  smtpuv__compose_buf_put(b, x, sizeof x);
  smtpuv__compose_buf_puts(b, domain);
  smtpuv__compose_buf_putc(b, '>');
  return 0;
}

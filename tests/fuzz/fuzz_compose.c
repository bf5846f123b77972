/* SPDX-License-Identifier: MIT */
/* libFuzzer target of the composer: the input is split at NUL bytes into
 * a display name, a subject, a header value, a text, a file name and an
 * attachment; whatever the composer accepts must come out well-formed: only
 * CRLF line ends, no line over 998 octets, a 7-bit header block, and no
 * boundary inside a part's content. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smtpuv/compose.h"

static const char *piece(const uint8_t **d, size_t *n, char *buf, size_t cap) {
  const uint8_t *z = memchr(*d, 0, *n);
  size_t k = z ? (size_t)(z - *d) : *n;
  if (k >= cap)
    k = cap - 1;
  memcpy(buf, *d, k);
  buf[k] = 0;
  size_t adv = z ? (size_t)(z - *d) + 1 : *n;
  *d += adv;
  *n -= adv;
  return buf;
}

/* The boundaries are learnt from the structure, never from a text search:
 * only a "Content-Type: multipart/" field at the start of a line inside a
 * header section (the message's own, or a part's after a delimiter line)
 * declares one; a caller's subject or body that imitates the parameter is
 * content. Every occurrence of a declared boundary must then be a delimiter
 * at the start of a line or its own parameter, and each one is used. */
#define MAX_BOUNDARIES 8

static int line_is_delim(const char *l, size_t ll, const char (*bd)[72],
                         int nb) {
  for (int k = 0; k < nb; k++) {
    size_t bl = strlen(bd[k]);
    if (ll >= bl + 2 && l[0] == '-' && l[1] == '-' &&
        memcmp(l + 2, bd[k], bl) == 0 &&
        (ll == bl + 2 || (ll == bl + 4 && memcmp(l + 2 + bl, "--", 2) == 0)))
      return ll == bl + 2 ? 1 : 2; /* 1: a part follows; 2: close */
  }
  return 0;
}

static void check_boundaries(const char *m, size_t len) {
  char bd[MAX_BOUNDARIES][72];
  int nb = 0, in_head = 1;
  for (size_t i = 0; i < len;) {
    const char *l = m + i;
    const char *e = memchr(l, '\r', len - i); /* CRLF checked already */
    size_t ll = (size_t)(e - l);
    if (in_head) {
      if (ll == 0) {
        in_head = 0;
      } else if (ll > 24 &&
                 strncasecmp(l, "Content-Type: multipart/", 24) == 0) {
        /* the field with its folded continuation lines */
        const char *fe = e;
        while (fe + 2 < m + len && (fe[2] == ' ' || fe[2] == '\t'))
          fe = memchr(fe + 2, '\r', (size_t)(m + len - fe - 2));
        const char *b = NULL;
        for (const char *q = l; q + 10 <= fe; q++)
          if (memcmp(q, "boundary=\"", 10) == 0) {
            b = q + 10;
            break;
          }
        if (b == NULL || nb == MAX_BOUNDARIES)
          abort(); /* a multipart without a boundary, or too deep */
        const char *bq = memchr(b, '"', (size_t)(fe - b));
        if (bq == NULL || bq == b || (size_t)(bq - b) >= sizeof bd[0])
          abort();
        memcpy(bd[nb], b, (size_t)(bq - b));
        bd[nb][bq - b] = 0;
        nb++;
      }
    } else if (line_is_delim(l, ll, bd, nb) == 1) {
      in_head = 1;
    }
    i += ll + 2;
  }
  for (int k = 0; k < nb; k++) {
    size_t occ = 0, bl = strlen(bd[k]);
    for (const char *q = strstr(m, bd[k]); q; q = strstr(q + 1, bd[k])) {
      int delim = q >= m + 2 && q[-1] == '-' && q[-2] == '-' &&
                  (q == m + 2 || q[-3] == '\n');
      int param = q >= m + 10 && memcmp(q - 10, "boundary=\"", 10) == 0 &&
                  q[bl] == '"';
      if (!delim && !param)
        abort(); /* a boundary inside content */
      occ++;
    }
    if (occ < 3)
      abort(); /* declared, opened and closed at least */
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  unsigned flags = data[0] & 3;
  data++;
  size--;
  static char name[512], subj[2048], val[2048], text[8192], fn[512];
  piece(&data, &size, name, sizeof name);
  piece(&data, &size, subj, sizeof subj);
  piece(&data, &size, val, sizeof val);
  piece(&data, &size, text, sizeof text);
  piece(&data, &size, fn, sizeof fn);
  smtpuv_compose *c;
  if (smtpuv_compose_new(NULL, flags, &c) != 0)
    abort();
  if (smtpuv_compose_address(c, SMTPUV_COMPOSE_FROM, name, "a@example.org"))
    smtpuv_compose_address(c, SMTPUV_COMPOSE_FROM, NULL, "a@example.org");
  if (smtpuv_compose_address(c, SMTPUV_COMPOSE_TO, subj, "b@example.org"))
    smtpuv_compose_address(c, SMTPUV_COMPOSE_TO, NULL, "b@example.org");
  smtpuv_compose_subject(c, subj);
  smtpuv_compose_header(c, "X-Fuzz", val);
  smtpuv_compose_text(c, text, strlen(text));
  smtpuv_compose_html(c, val, strlen(val));
  smtpuv_compose_part p = SMTPUV_COMPOSE_PART_INIT;
  p.data = data;
  p.len = size;
  p.filename = fn;
  p.content_type = "text/plain";
  if (size > 0)
    smtpuv_compose_attach(c, &p);
  if (smtpuv_compose_finish(c) != 0)
    abort(); /* From and To are valid: finishing cannot fail */
  char *m;
  size_t len;
  if (smtpuv_compose_to_buffer(c, &m, &len) != 0)
    abort();
  if ((int64_t)len != smtpuv_compose_size(c))
    abort();
  size_t line = 0;
  int in_head = 1;
  for (size_t i = 0; i < len; i++) {
    unsigned char ch = (unsigned char)m[i];
    if (ch == '\r') {
      if (i + 1 >= len || m[i + 1] != '\n')
        abort(); /* bare CR */
      if (line == 0)
        in_head = 0;
      line = 0;
      i++;
      continue;
    }
    if (ch == '\n')
      abort(); /* bare LF */
    if (in_head && ch >= 0x80)
      abort(); /* 8-bit header */
    if (++line > 998)
      abort();
  }
  check_boundaries(m, len);
  smtpuv_compose_buffer_free(NULL, m);
  smtpuv_compose_free(c);
  return 0;
}

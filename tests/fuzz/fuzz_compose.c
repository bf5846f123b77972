/* SPDX-License-Identifier: MIT */
/* libFuzzer target of the composer: the input is split at NUL bytes into
 * a display name, a subject, a header value, a text, a file name and an
 * attachment; whatever the composer accepts must come out well-formed: only
 * CRLF line ends, no line over 998 octets, a 7-bit header block, and no
 * boundary inside a part's content. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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
  /* each boundary "=_" + 28 hex occurs only as delimiters and parameters */
  const char *b = strstr(m, "boundary=\"");
  while (b != NULL) {
    char bd[40];
    memcpy(bd, b + 10, 30);
    bd[30] = 0;
    int ours = bd[0] == '=' && bd[1] == '_' && strlen(bd) == 30;
    for (int k = 2; k < 30 && ours; k++)
      ours = (bd[k] >= '0' && bd[k] <= '9') || (bd[k] >= 'A' && bd[k] <= 'F');
    if (!ours) { /* the caller's text, not a Content-Type parameter */
      b = strstr(b + 1, "boundary=\"");
      continue;
    }
    size_t occ = 0;
    for (const char *q = strstr(m, bd); q; q = strstr(q + 1, bd)) {
      int delim = q >= m + 2 && q[-1] == '-' && q[-2] == '-' &&
                  (q == m + 2 || q[-3] == '\n');
      int param = q >= m + 10 && memcmp(q - 10, "boundary=\"", 10) == 0;
      if (!delim && !param)
        abort(); /* a boundary inside content */
      occ++;
    }
    if (occ < 3)
      abort();
    b = strstr(b + 1, "boundary=\"");
  }
  smtpuv_compose_buffer_free(NULL, m);
  smtpuv_compose_free(c);
  return 0;
}

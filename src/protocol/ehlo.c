/* SPDX-License-Identifier: MIT */
/*
 * EHLO reply parsing (RFC 5321 4.1.1.1) and the extension queries.
 *
 * Every line after the first is "keyword [params]"; keywords are matched
 * without regard to case and kept upper-cased, unknown ones too (for
 * smtpuv_proto_has_extension). The old "AUTH=mech ..." form some servers
 * still send counts as AUTH. Empty lines (smtp-sink ends with "250 ") are
 * skipped. The whole result lives in one allocation, built before the old
 * one is dropped, so a failed allocation leaves the session as it was.
 */
#include <stdint.h>
#include <string.h>

#include "protocol/mem.h"
#include "protocol/proto_int.h"

static const struct {
  const char *keyword;
  unsigned bit;
} known[] = {
    {"PIPELINING", SMTPUV_EXT_PIPELINING},
    {"8BITMIME", SMTPUV_EXT_8BITMIME},
    {"SMTPUTF8", SMTPUV_EXT_SMTPUTF8},
    {"CHUNKING", SMTPUV_EXT_CHUNKING},
    {"BINARYMIME", SMTPUV_EXT_BINARYMIME},
    {"DSN", SMTPUV_EXT_DSN},
    {"ENHANCEDSTATUSCODES", SMTPUV_EXT_ENHANCEDSTATUSCODES},
    {"STARTTLS", SMTPUV_EXT_STARTTLS},
    {"REQUIRETLS", SMTPUV_EXT_REQUIRETLS},
    {"SIZE", SMTPUV_EXT_SIZE},
    {"AUTH", SMTPUV_EXT_AUTH},
};

static char ascii_upper(char c) {
  return c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
}

int smtpuv__ascii_ieq(const char *z, const char *s, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (z[i] == '\0' || ascii_upper(z[i]) != ascii_upper(s[i]))
      return 0;
  return z[len] == '\0';
}

static int is_space(char c) { return c == ' ' || c == '\t'; }

static smtpuv_str trim(smtpuv_str s) {
  while (s.len > 0 && is_space(s.ptr[0])) {
    s.ptr++;
    s.len--;
  }
  while (s.len > 0 && is_space(s.ptr[s.len - 1]))
    s.len--;
  return s;
}

/* Bump-allocator over the record's character area. */
typedef struct arena {
  char *w;
} arena;

static const char *arena_str(arena *a, const char *s, size_t len, int upper) {
  char *d = a->w;
  for (size_t i = 0; i < len; i++)
    d[i] = upper ? ascii_upper(s[i]) : s[i];
  d[len] = '\0';
  a->w += len + 1;
  return d;
}

/* SIZE's parameter: the limit, 0 for none, unparsable or absurdly large. */
static uint64_t parse_size(const char *s) {
  uint64_t v = 0;
  if (*s == '\0')
    return 0;
  for (; *s != '\0'; s++) {
    unsigned d = (unsigned)(*s - '0');
    if (*s < '0' || *s > '9' || v > UINT64_MAX / 10 ||
        (v == UINT64_MAX / 10 && d > UINT64_MAX % 10))
      return 0;
    v = v * 10 + d;
  }
  return v;
}

static int token_listed(const char *list, size_t list_len, const char *tok,
                        size_t len) {
  const char *p = list, *end = list + list_len;
  while (p < end) {
    const char *sp = memchr(p, ' ', (size_t)(end - p));
    size_t n = sp != NULL ? (size_t)(sp - p) : (size_t)(end - p);
    if (n == len && memcmp(p, tok, len) == 0)
      return 1;
    p += n + 1;
  }
  return 0;
}

static int mech_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_';
}

/* Append the valid, not yet listed mechanisms of `params` (upper-cased) to
   the list of `n` bytes; returns its new length. */
static size_t add_mechs(char *list, size_t n, const char *params) {
  const char *p = params;
  for (;;) {
    while (is_space(*p))
      p++;
    if (*p == '\0')
      break;
    char up[21];
    size_t len = 0;
    int ok = 1;
    for (; *p != '\0' && !is_space(*p); p++, len++) {
      if (len < sizeof up)
        up[len] = ascii_upper(*p);
      ok = ok && len < 20 && mech_char(up[len]);
    }
    if (!ok || token_listed(list, n, up, len))
      continue;
    if (n > 0)
      list[n++] = ' ';
    memcpy(list + n, up, len);
    n += len;
  }
  list[n] = '\0';
  return n;
}

static void add_extension(smtpuv__ehlo *h, arena *a, smtpuv_str line) {
  line = trim(line);
  if (line.len == 0)
    return;
  size_t kw = 0;
  while (kw < line.len && !is_space(line.ptr[kw]))
    kw++;
  smtpuv__ext *x = &h->exts[h->next++];
  smtpuv_str params = {line.ptr + kw, line.len - kw};
  x->old_auth = kw > 5 && smtpuv__ascii_ieq("AUTH=", line.ptr, 5);
  if (x->old_auth) {
    kw = 4;
    params.ptr = line.ptr + 5;
    params.len = line.len - 5;
  }
  x->keyword = arena_str(a, line.ptr, kw, 1);
  params = trim(params);
  x->params = arena_str(a, params.ptr, params.len, 0);
  for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
    if (strcmp(x->keyword, known[i].keyword) == 0) {
      h->bits |= known[i].bit;
      break;
    }
  }
}

int smtpuv__ehlo_build(const smtpuv_mem *mem, const smtpuv_str *lines,
                       size_t nlines, int with_ext, smtpuv__ehlo **out) {
  size_t next = with_ext ? nlines - 1 : 0, chars = lines[0].len + 1;
  for (size_t i = 1; i <= next; i++)
    chars += 3 * (lines[i].len + 1); /* keyword, params, AUTH list */
  size_t size = sizeof(smtpuv__ehlo) + next * sizeof(smtpuv__ext) + chars + 1;
  smtpuv__ehlo *h = smtpuv__malloc(mem, size);
  if (h == NULL)
    return SMTPUV_ENOMEM;
  h->size = size;
  h->bits = 0;
  h->max_size = 0;
  h->next = 0;
  h->exts = (smtpuv__ext *)(h + 1);
  arena a = {(char *)(h->exts + next)};
  h->server_name = arena_str(&a, lines[0].ptr, lines[0].len, 0);
  for (size_t i = 1; i <= next; i++)
    add_extension(h, &a, lines[i]);

  char *mechs = a.w;
  size_t n = 0;
  mechs[0] = '\0';
  for (size_t i = 0; i < h->next; i++) {
    const smtpuv__ext *x = &h->exts[i];
    if (strcmp(x->keyword, "AUTH") == 0)
      n = add_mechs(mechs, n, x->params);
    else if (strcmp(x->keyword, "SIZE") == 0 && h->max_size == 0)
      h->max_size = parse_size(x->params);
  }
  h->auth_mechs = mechs;
  *out = h;
  return 0;
}

/* ---- queries ------------------------------------------------------------ */

static const smtpuv__ext *find(const smtpuv_proto *p, const char *keyword) {
  const smtpuv__ext *found = NULL;
  if (p == NULL || p->ehlo == NULL || keyword == NULL)
    return NULL;
  for (size_t i = 0; i < p->ehlo->next; i++) {
    const smtpuv__ext *x = &p->ehlo->exts[i];
    if (!smtpuv__ascii_ieq(keyword, x->keyword, strlen(x->keyword)))
      continue;
    if (!x->old_auth)
      return x;
    if (found == NULL)
      found = x;
  }
  return found;
}

unsigned smtpuv_proto_extensions(const smtpuv_proto *p) {
  return p != NULL ? smtpuv__ext_bits(p) : 0;
}

int smtpuv_proto_has_extension(const smtpuv_proto *p, const char *keyword) {
  return find(p, keyword) != NULL;
}

const char *smtpuv_proto_extension_params(const smtpuv_proto *p,
                                          const char *keyword) {
  const smtpuv__ext *x = find(p, keyword);
  return x != NULL ? x->params : NULL;
}

uint64_t smtpuv_proto_max_size(const smtpuv_proto *p) {
  return p != NULL && p->ehlo != NULL ? p->ehlo->max_size : 0;
}

int smtpuv_proto_auth_offered(const smtpuv_proto *p, const char *mech) {
  if (p == NULL || p->ehlo == NULL || mech == NULL)
    return 0;
  size_t len = strlen(mech);
  char up[20];
  if (len == 0 || len > sizeof up)
    return 0;
  for (size_t i = 0; i < len; i++)
    up[i] = ascii_upper(mech[i]);
  return token_listed(p->ehlo->auth_mechs, strlen(p->ehlo->auth_mechs), up,
                      len);
}

const char *smtpuv_proto_auth_mechanisms(const smtpuv_proto *p) {
  return p != NULL && p->ehlo != NULL ? p->ehlo->auth_mechs : "";
}

const char *smtpuv_proto_server_name(const smtpuv_proto *p) {
  return p != NULL && p->ehlo != NULL ? p->ehlo->server_name : "";
}

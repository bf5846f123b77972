/* SPDX-License-Identifier: MIT */
/* The header field scanner (smtpuv_header_next) and the RFC 5322
 * address-list parser (smtpuv_address_list_parse): pure parsing, libc only,
 * so the composer (src/compose) and the libuv client's envelope derivation
 * (src/uv/headers.c, smtpuv_message_*) share them. Moved here from
 * src/uv/headers.c unchanged. */
#include <stddef.h>
#include <string.h>

#include "protocol/headers_int.h"

/* ---- header block ------------------------------------------------------------- */

static int header_next(const void *data, size_t len, size_t *pos,
                       smtpuv_header_field *f) {
  const char *d = data;
  size_t p = *pos;
  if (p >= len)
    return 0;
  if (d[p] == '\n' || (d[p] == '\r' && p + 1 < len && d[p + 1] == '\n'))
    return 0; /* the empty line */
  /* field name: printable ASCII except ':' (RFC 5322 2.2) */
  size_t q = p;
  while (q < len && d[q] != ':' && (unsigned char)d[q] > 0x20 &&
         (unsigned char)d[q] < 0x7f)
    q++;
  /* tolerate blanks before the colon (obsolete syntax) */
  size_t name_end = q;
  while (q < len && (d[q] == ' ' || d[q] == '\t'))
    q++;
  if (q >= len || d[q] != ':' || name_end == p)
    return 0;
  /* to the end of the line, then continuation lines */
  size_t e = q + 1;
  for (;;) {
    const char *nl = memchr(d + e, '\n', len - e);
    if (nl == NULL) {
      e = len;
      break;
    }
    e = (size_t)(nl - d) + 1;
    if (e < len && (d[e] == ' ' || d[e] == '\t'))
      continue;
    break;
  }
  size_t v = q + 1, ve = e;
  if (ve > v && d[ve - 1] == '\n')
    ve--;
  if (ve > v && d[ve - 1] == '\r')
    ve--;
  f->name = d + p;
  f->name_len = name_end - p;
  f->value = d + v;
  f->value_len = ve - v;
  f->start = p;
  f->end = e;
  *pos = e;
  return 1;
}

/* The smallest smtpuv_header_field accepted: the layout of version 0.2. */
#define FIELD_MIN_SIZE (offsetof(smtpuv_header_field, end) + sizeof(size_t))

int smtpuv_header_next_sized(const void *data, size_t len, size_t *pos,
                             smtpuv_header_field *field, size_t field_size) {
  if (pos == NULL || field == NULL || (data == NULL && len > 0) ||
      field_size < FIELD_MIN_SIZE)
    return SMTPUV_EINVAL;
  smtpuv_header_field full;
  memset(&full, 0, sizeof full);
  int rc = header_next(data, len, pos, &full);
  if (rc == 1) {
    full.struct_size = field_size < sizeof full ? field_size : sizeof full;
    memcpy(field, &full, full.struct_size);
  }
  return rc;
}

int smtpuv_header_field_is(const smtpuv_header_field *f, const char *name) {
  if (f == NULL || name == NULL || strlen(name) != f->name_len)
    return 0;
  for (size_t i = 0; i < f->name_len; i++) {
    char a = f->name[i], b = name[i];
    if (a >= 'A' && a <= 'Z')
      a = (char)(a + 32);
    if (b >= 'A' && b <= 'Z')
      b = (char)(b + 32);
    if (a != b)
      return 0;
  }
  return 1;
}

/* ---- address lists -------------------------------------------------------------- */

static const char *const no_addresses[1] = {NULL};

void smtpuv__addr_list_init(smtpuv__addr_list *l, const smtpuv_mem *mem) {
  memset(l, 0, sizeof *l);
  l->mem = *mem;
  l->pub.addresses = no_addresses;
}

void smtpuv__addr_list_clear(smtpuv__addr_list *l) {
  for (size_t i = 0; i < l->pub.count; i++)
    smtpuv__free(&l->mem, l->v[i]);
  smtpuv__free(&l->mem, l->v);
  l->v = NULL;
  l->cap = l->pub.count = 0;
  l->pub.addresses = no_addresses;
}

/* Append to the list `ctx` a copy of the addr-spec [a, a+n) after checking
   it: 0, SMTPUV_EHEADER or SMTPUV_ENOMEM. An smtpuv__addr_fn. */
int smtpuv__addr_list_add(void *ctx, const char *a, size_t n) {
  smtpuv__addr_list *l = ctx;
  if (l->pub.count + 2 > l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 8;
    char **v = smtpuv__realloc(&l->mem, l->v, cap * sizeof *v);
    if (v == NULL)
      return SMTPUV_ENOMEM;
    l->v = v;
    l->cap = cap;
  }
  char *s = smtpuv__strndup(&l->mem, a, n);
  if (s == NULL)
    return SMTPUV_ENOMEM;
  if (smtpuv_check_address(s, 1) != 0) {
    smtpuv__free(&l->mem, s);
    return SMTPUV_EHEADER;
  }
  l->v[l->pub.count++] = s;
  l->v[l->pub.count] = NULL;
  l->pub.addresses = (const char *const *)l->v;
  return 0;
}

typedef struct addrbuf {
  char buf[SMTPUV_MAX_ADDRESS + 1];
  size_t len;
  int overflow;
} addrbuf;

static void ab_add(addrbuf *b, char c) {
  if (b->len < SMTPUV_MAX_ADDRESS)
    b->buf[b->len++] = c;
  else
    b->overflow = 1;
}

#define UNTERMINATED ((size_t)-1)

/* The index after the comment at `i`, or UNTERMINATED. */
static size_t skip_comment(const char *d, size_t i, size_t end) {
  int depth = 0;
  for (; i < end; i++) {
    if (d[i] == '\\') {
      i++;
      continue;
    }
    if (d[i] == '(')
      depth++;
    else if (d[i] == ')' && --depth == 0)
      return i + 1;
  }
  return UNTERMINATED;
}

/* Copy a quoted string (with its quotes) into `b`; returns the index after
   it, or UNTERMINATED. */
static size_t copy_quoted(const char *d, size_t i, size_t end, addrbuf *b) {
  ab_add(b, '"');
  for (i++; i < end; i++) {
    char c = d[i];
    if (c == '\\' && i + 1 < end) {
      ab_add(b, c);
      ab_add(b, d[++i]);
      continue;
    }
    if (c == '\r' || c == '\n')
      continue; /* folding */
    ab_add(b, c);
    if (c == '"')
      return i + 1;
  }
  return UNTERMINATED;
}


/* Finish one mailbox: the angle address when there is one, else the bare
   addr-spec. */
static int finish_mailbox(void *ctx, addrbuf *plain, int words, int at_seen,
                          addrbuf *angle, int has_angle, smtpuv__addr_fn fn) {
  int rc = 0;
  if (has_angle ? angle->overflow : plain->overflow)
    return SMTPUV_EHEADER;
  if (has_angle) {
    /* drop an obsolete source route "@a,@b:" */
    const char *a = angle->buf;
    size_t n = angle->len;
    if (n > 0 && a[0] == '@') {
      const char *colon = memchr(a, ':', n);
      if (colon != NULL) {
        n -= (size_t)(colon + 1 - a);
        a = colon + 1;
      }
    }
    if (n > 0)
      rc = fn(ctx, a, n);
  } else if (plain->len > 0) {
    if (words > 1 && !at_seen)
      return SMTPUV_EHEADER; /* a phrase without an address */
    rc = fn(ctx, plain->buf, plain->len);
  }
  plain->len = angle->len = 0;
  plain->overflow = angle->overflow = 0;
  return rc;
}

/* Parse an address-list field value [i, end), calling `fn` for each
   address. */
int smtpuv__parse_addresses(void *ctx, const char *d, size_t i, size_t end,
                           smtpuv__addr_fn fn) {
  addrbuf plain, angle;
  plain.len = angle.len = 0;
  plain.overflow = angle.overflow = 0;
  int has_angle = 0, words = 0, in_word = 0, at_seen = 0;
  int rc;
  while (i < end) {
    char c = d[i];
    switch (c) {
    case '(':
      i = skip_comment(d, i, end);
      if (i == UNTERMINATED)
        return SMTPUV_EHEADER;
      in_word = 0;
      continue;
    case '"':
      if (!in_word)
        words++;
      in_word = 1;
      i = copy_quoted(d, i, end, &plain);
      if (i == UNTERMINATED)
        return SMTPUV_EHEADER;
      continue;
    case '<': {
      /* angle-addr: quoted strings and comments inside are kept/skipped */
      has_angle = 1;
      angle.len = 0;
      i++;
      while (i < end && d[i] != '>') {
        if (d[i] == '"')
          i = copy_quoted(d, i, end, &angle);
        else if (d[i] == '(')
          i = skip_comment(d, i, end);
        else if (d[i] != ' ' && d[i] != '\t' && d[i] != '\r' && d[i] != '\n')
          ab_add(&angle, d[i++]);
        else
          i++;
      }
      if (i >= end)
        return SMTPUV_EHEADER; /* unterminated (UNTERMINATED too) */
      i++;
      in_word = 0;
      continue;
    }
    case ':':
      /* group: what came before was its display name */
      plain.len = 0;
      words = 0;
      at_seen = 0;
      has_angle = 0;
      in_word = 0;
      i++;
      continue;
    case ',':
    case ';':
      rc = finish_mailbox(ctx, &plain, words, at_seen, &angle, has_angle, fn);
      if (rc != 0)
        return rc;
      has_angle = words = in_word = at_seen = 0;
      i++;
      continue;
    case ' ':
    case '\t':
    case '\r':
    case '\n':
      in_word = 0;
      i++;
      continue;
    default:
      if (!in_word)
        words++;
      in_word = 1;
      if (c == '@')
        at_seen = 1;
      ab_add(&plain, c);
      i++;
      continue;
    }
  }
  return finish_mailbox(ctx, &plain, words, at_seen, &angle, has_angle, fn);
}

int smtpuv_address_list_parse(const smtpuv_mem *mem, const void *value,
                              size_t len, smtpuv_address_list **out) {
  if (out == NULL)
    return SMTPUV_EINVAL;
  *out = NULL;
  if (value == NULL && len > 0)
    return SMTPUV_EINVAL;
  smtpuv_mem mm;
  smtpuv__mem_init(&mm, mem);
  smtpuv__addr_list *l = smtpuv__malloc(&mm, sizeof *l);
  if (l == NULL)
    return SMTPUV_ENOMEM;
  smtpuv__addr_list_init(l, &mm);
  int rc = smtpuv__parse_addresses(l, value != NULL ? value : "", 0, len, smtpuv__addr_list_add);
  if (rc != 0) {
    smtpuv_address_list_free(&l->pub);
    return rc;
  }
  *out = &l->pub;
  return 0;
}

void smtpuv_address_list_free(smtpuv_address_list *list) {
  if (list == NULL)
    return;
  smtpuv__addr_list *l = (smtpuv__addr_list *)list; /* pub is its first member */
  smtpuv_mem mm = l->mem;
  smtpuv__addr_list_clear(l);
  smtpuv__free(&mm, l);
}

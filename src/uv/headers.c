/* SPDX-License-Identifier: MIT */
/* The envelope from a message's own headers (Python's smtplib
 * send_message() rules), a body source that leaves out Bcc and Resent-Bcc,
 * and the two pieces they are made of, public on their own: the header
 * field scanner (smtpuv_header_next) and the RFC 5322 address-list parser
 * (smtpuv_address_list_parse). The message buffer is the caller's; nothing
 * of it is copied but the addresses. */
#include <stdio.h>
#include <string.h>

#include "uv/client_int.h"

typedef struct span {
  size_t start, end; /* byte offsets; [start, end) */
} span;

/* A growing array of checked addresses, NULL-terminated; `pub` is what the
   caller of smtpuv_address_list_parse() sees. */
typedef struct addr_list {
  smtpuv_address_list pub;
  smtpuv_mem mem;
  char **v;
  size_t cap;
} addr_list;

struct smtpuv_message {
  smtpuv_mem mem;
  const char *data;
  size_t len;
  /* header fields to leave out (Bcc, Resent-Bcc), in order */
  span skip[16];
  span *skips;
  size_t nskip, skip_cap;
  size_t skipped; /* total bytes left out */
  /* derived envelope */
  int has_envelope;
  addr_list sender; /* one address at most */
  addr_list rcpts;
  smtpuv_mail_params mp;
  smtpuv_envelope env;
  /* body source position */
  size_t pos;
};

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

static void list_init(addr_list *l, const smtpuv_mem *mem) {
  memset(l, 0, sizeof *l);
  l->mem = *mem;
  l->pub.addresses = no_addresses;
}

static void list_clear(addr_list *l) {
  for (size_t i = 0; i < l->pub.count; i++)
    smtpuv__free(&l->mem, l->v[i]);
  smtpuv__free(&l->mem, l->v);
  l->v = NULL;
  l->cap = l->pub.count = 0;
  l->pub.addresses = no_addresses;
}

/* Append to the list `ctx` a copy of the addr-spec [a, a+n) after checking
   it: 0, SMTPUV_EHEADER or SMTPUV_ENOMEM. An addr_fn. */
static int list_add(void *ctx, const char *a, size_t n) {
  addr_list *l = ctx;
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

/* Where each address of a list goes: 0 or an error that stops the parse. */
typedef int (*addr_fn)(void *ctx, const char *a, size_t n);

/* Finish one mailbox: the angle address when there is one, else the bare
   addr-spec. */
static int finish_mailbox(void *ctx, addrbuf *plain, int words, int at_seen,
                          addrbuf *angle, int has_angle, addr_fn fn) {
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
static int parse_addresses(void *ctx, const char *d, size_t i, size_t end,
                           addr_fn fn) {
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
  addr_list *l = smtpuv__malloc(&mm, sizeof *l);
  if (l == NULL)
    return SMTPUV_ENOMEM;
  list_init(l, &mm);
  int rc = parse_addresses(l, value != NULL ? value : "", 0, len, list_add);
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
  addr_list *l = (addr_list *)list; /* pub is its first member */
  smtpuv_mem mm = l->mem;
  list_clear(l);
  smtpuv__free(&mm, l);
}

/* ---- the envelope ---------------------------------------------------------------- */

/* A recipient: each address once. */
static int add_rcpt(void *ctx, const char *a, size_t n) {
  addr_list *l = &((smtpuv_message *)ctx)->rcpts;
  for (size_t i = 0; i < l->pub.count; i++)
    if (strlen(l->v[i]) == n && memcmp(l->v[i], a, n) == 0)
      return 0; /* duplicate */
  return list_add(l, a, n);
}

/* The sender: the first address of the field. */
static int set_sender(void *ctx, const char *a, size_t n) {
  addr_list *l = &((smtpuv_message *)ctx)->sender;
  return l->pub.count > 0 ? 0 : list_add(l, a, n);
}

static int add_skip(smtpuv_message *m, size_t start, size_t end) {
  if (m->nskip == m->skip_cap) {
    size_t cap = m->skip_cap * 2;
    span *s;
    if (m->skips == m->skip) {
      s = smtpuv__malloc(&m->mem, cap * sizeof *s);
      if (s != NULL)
        memcpy(s, m->skip, m->nskip * sizeof *s);
    } else {
      s = smtpuv__realloc(&m->mem, m->skips, cap * sizeof *s);
    }
    if (s == NULL)
      return SMTPUV_ENOMEM;
    m->skips = s;
    m->skip_cap = cap;
  }
  m->skips[m->nskip].start = start;
  m->skips[m->nskip].end = end;
  m->nskip++;
  m->skipped += end - start;
  return 0;
}

/* Pass 1 over the header block: the Bcc and Resent-Bcc fields to leave
   out; counts the fields and the Resent-Date fields. 0 or ENOMEM. */
static int find_bcc(smtpuv_message *m, size_t *fields, unsigned *resent) {
  size_t pos = 0;
  smtpuv_header_field f;
  *fields = 0;
  *resent = 0;
  while (smtpuv_header_next(m->data, m->len, &pos, &f) == 1) {
    (*fields)++;
    if (smtpuv_header_field_is(&f, "Resent-Date"))
      (*resent)++;
    if (smtpuv_header_field_is(&f, "Bcc") ||
        smtpuv_header_field_is(&f, "Resent-Bcc")) {
      int rc = add_skip(m, f.start, f.end);
      if (rc != 0)
        return rc;
    }
  }
  return 0;
}

/* Hand the addresses of every field named `name` to `fn` (of the first one
   only when `first`); `*found` (may be NULL) tells whether there was one. */
static int each_field(smtpuv_message *m, const char *name, int first,
                      addr_fn fn, int *found) {
  size_t pos = 0;
  smtpuv_header_field f;
  while (smtpuv_header_next(m->data, m->len, &pos, &f) == 1) {
    if (!smtpuv_header_field_is(&f, name))
      continue;
    if (found != NULL)
      *found = 1;
    int rc = parse_addresses(m, f.value, 0, f.value_len, fn);
    if (rc != 0 || first)
      return rc;
  }
  return 0;
}

static int is_ascii_str(const char *s) {
  for (; *s; s++)
    if ((unsigned char)*s >= 0x80)
      return 0;
  return 1;
}

static int derive(smtpuv_message *m, unsigned resent_dates) {
  if (resent_dates > 1)
    return SMTPUV_EHEADER; /* several Resent- blocks */
  const char *pfx = resent_dates == 1 ? "Resent-" : "";
  char n_sender[32], n_from[32], n_to[32], n_cc[32], n_bcc[32];
  snprintf(n_sender, sizeof n_sender, "%sSender", pfx);
  snprintf(n_from, sizeof n_from, "%sFrom", pfx);
  snprintf(n_to, sizeof n_to, "%sTo", pfx);
  snprintf(n_cc, sizeof n_cc, "%sCc", pfx);
  snprintf(n_bcc, sizeof n_bcc, "%sBcc", pfx);
  /* sender: the first Sender field, else the first From field */
  int have_sender_field = 0;
  int rc = each_field(m, n_sender, 1, set_sender, &have_sender_field);
  if (rc == 0 && !have_sender_field)
    rc = each_field(m, n_from, 1, set_sender, NULL);
  if (rc != 0)
    return rc;
  if (m->sender.pub.count == 0)
    return SMTPUV_EHEADER;
  /* recipients: To, Bcc, Cc (in this order, as send_message does) */
  const char *names[3] = {n_to, n_bcc, n_cc};
  for (int k = 0; k < 3; k++)
    if ((rc = each_field(m, names[k], 0, add_rcpt, NULL)) != 0)
      return rc;
  const addr_list *r = &m->rcpts;
  if (r->pub.count == 0)
    return SMTPUV_EHEADER;
  int intl = !is_ascii_str(m->sender.v[0]);
  for (size_t i = 0; i < r->pub.count && !intl; i++)
    intl = !is_ascii_str(r->v[i]);
  smtpuv_mail_params mp = SMTPUV_MAIL_PARAMS_INIT;
  m->mp = mp;
  smtpuv_envelope env = SMTPUV_ENVELOPE_INIT;
  env.sender = m->sender.v[0];
  env.recipients = r->pub.addresses;
  env.nrecipients = r->pub.count;
  if (intl) {
    m->mp.smtputf8 = 1;
    m->mp.body = SMTPUV_BODY_8BITMIME;
    env.mail_params = &m->mp;
  }
  m->env = env;
  m->has_envelope = 1;
  return 0;
}

static int message_open(const smtpuv_mem *mem, const void *data, size_t len,
                        int envelope, smtpuv_message **out) {
  smtpuv_mem mm;
  smtpuv__mem_init(&mm, mem);
  smtpuv_message *m = smtpuv__calloc(&mm, 1, sizeof *m);
  if (m == NULL)
    return SMTPUV_ENOMEM;
  m->mem = mm;
  m->data = data != NULL ? data : "";
  m->len = len;
  m->skips = m->skip;
  m->skip_cap = sizeof m->skip / sizeof m->skip[0];
  list_init(&m->sender, &mm);
  list_init(&m->rcpts, &mm);
  size_t fields;
  unsigned resent_dates;
  int rc = find_bcc(m, &fields, &resent_dates);
  if (rc == 0 && envelope)
    rc = fields == 0 ? SMTPUV_EHEADER /* no header field at all */
                     : derive(m, resent_dates);
  if (rc != 0) {
    smtpuv_message_free(m);
    return rc;
  }
  *out = m;
  return 0;
}

int smtpuv_message_new(const smtpuv_mem *mem, const void *data, size_t len,
                       smtpuv_message **out) {
  if (out == NULL)
    return SMTPUV_EINVAL;
  *out = NULL;
  if (data == NULL || len == 0)
    return SMTPUV_EINVAL;
  return message_open(mem, data, len, 1, out);
}

int smtpuv_message_wrap(const smtpuv_mem *mem, const void *data, size_t len,
                        smtpuv_message **out) {
  if (out == NULL)
    return SMTPUV_EINVAL;
  *out = NULL;
  if (data == NULL && len > 0)
    return SMTPUV_EINVAL;
  return message_open(mem, data, len, 0, out);
}

const smtpuv_envelope *smtpuv_message_envelope(const smtpuv_message *m) {
  return m != NULL && m->has_envelope ? &m->env : NULL;
}

static long message_read(void *user, void *buf, size_t cap) {
  smtpuv_message *m = user;
  size_t n = 0;
  char *out = buf;
  while (n < cap && m->pos < m->len) {
    size_t stop = m->len;
    int jumped = 0;
    for (size_t i = 0; i < m->nskip; i++) {
      const span *sp = &m->skips[i];
      if (m->pos >= sp->start && m->pos < sp->end) {
        m->pos = sp->end; /* a left-out field */
        jumped = 1;
        break;
      }
      if (sp->start > m->pos && sp->start < stop)
        stop = sp->start;
    }
    if (jumped)
      continue;
    size_t run = stop - m->pos;
    if (run > cap - n)
      run = cap - n;
    memcpy(out + n, m->data + m->pos, run);
    n += run;
    m->pos += run;
  }
  return (long)n;
}

static int message_rewind(void *user) {
  smtpuv_message *m = user;
  m->pos = 0;
  return 0;
}

void smtpuv_message_body(smtpuv_message *m, smtpuv_body *body) {
  if (m == NULL || body == NULL)
    return;
  m->pos = 0;
  if (m->nskip == 0) {
    /* nothing to leave out: the buffer itself (scanned for 8-bit) */
    smtpuv_body_init_buffer(body, m->data, m->len);
    return;
  }
  smtpuv_body_init_stream(body, message_read, message_rewind, m,
                          (uint64_t)(m->len - m->skipped));
}

void smtpuv_message_free(smtpuv_message *m) {
  if (m == NULL)
    return;
  list_clear(&m->sender);
  list_clear(&m->rcpts);
  if (m->skips != m->skip)
    smtpuv__free(&m->mem, m->skips);
  smtpuv_mem mm = m->mem;
  smtpuv__free(&mm, m);
}

/* The envelope from a message's own headers (Python's smtplib
 * send_message() rules) and a body source that leaves out Bcc and
 * Resent-Bcc. The message buffer is the caller's; nothing of it is copied
 * but the addresses. */
#include <string.h>

#include "uv/client_int.h"

typedef struct span {
  size_t start, end; /* byte offsets; [start, end) */
} span;

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
  char *sender;
  char **rcpts;
  size_t nrcpts, rcpt_cap;
  smtpuv_mail_params mp;
  smtpuv_envelope env;
  /* body source position */
  size_t pos;
};

/* ---- header block ------------------------------------------------------------- */

typedef struct field {
  size_t start, end;     /* whole field incl. continuation lines */
  size_t name_end;       /* ':' position */
  size_t value_start;
} field;

/* Next header field at `*pos`. Returns 1 with `f`, 0 at the end of the
   header block (empty line, end of data, or a line that is not a field). */
static int next_field(const char *d, size_t len, size_t *pos, field *f) {
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
  f->start = p;
  f->name_end = name_end;
  f->value_start = q + 1;
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
  f->end = e;
  *pos = e;
  return 1;
}

static int name_is(const char *d, const field *f, const char *name) {
  size_t n = strlen(name);
  if (f->name_end - f->start != n)
    return 0;
  for (size_t i = 0; i < n; i++) {
    char a = d[f->start + i], b = name[i];
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
  return end;
}

/* Copy a quoted string (with its quotes) into `b`; returns the index after
   it. */
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
  return end;
}

static int add_rcpt(smtpuv_message *m, const char *a, size_t n);

typedef int (*addr_fn)(smtpuv_message *m, const char *a, size_t n);

/* Finish one mailbox: the angle address when there is one, else the bare
   addr-spec. */
static int finish_mailbox(smtpuv_message *m, addrbuf *plain, int words,
                          int at_seen, addrbuf *angle, int has_angle,
                          addr_fn fn) {
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
      rc = fn(m, a, n);
  } else if (plain->len > 0) {
    if (words > 1 && !at_seen)
      return SMTPUV_EHEADER; /* a phrase without an address */
    rc = fn(m, plain->buf, plain->len);
  }
  plain->len = angle->len = 0;
  plain->overflow = angle->overflow = 0;
  return rc;
}

/* Parse an address-list field value [i, end), calling `fn` for each
   address. */
static int parse_addresses(smtpuv_message *m, const char *d, size_t i,
                           size_t end, addr_fn fn) {
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
      in_word = 0;
      continue;
    case '"':
      if (!in_word)
        words++;
      in_word = 1;
      i = copy_quoted(d, i, end, &plain);
      continue;
    case '<': {
      /* angle-addr: quoted strings and comments inside are kept/skipped */
      has_angle = 1;
      angle.len = 0;
      i++;
      while (i < end && d[i] != '>') {
        if (d[i] == '"') {
          i = copy_quoted(d, i, end, &angle);
          continue;
        }
        if (d[i] == '(') {
          i = skip_comment(d, i, end);
          continue;
        }
        if (d[i] != ' ' && d[i] != '\t' && d[i] != '\r' && d[i] != '\n')
          ab_add(&angle, d[i]);
        i++;
      }
      if (i >= end)
        return SMTPUV_EHEADER; /* unterminated */
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
      rc = finish_mailbox(m, &plain, words, at_seen, &angle, has_angle, fn);
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
  return finish_mailbox(m, &plain, words, at_seen, &angle, has_angle, fn);
}

static int add_rcpt(smtpuv_message *m, const char *a, size_t n) {
  for (size_t i = 0; i < m->nrcpts; i++)
    if (strlen(m->rcpts[i]) == n && memcmp(m->rcpts[i], a, n) == 0)
      return 0; /* duplicate */
  if (m->nrcpts == m->rcpt_cap) {
    size_t cap = m->rcpt_cap ? m->rcpt_cap * 2 : 8;
    char **r = smtpuv__realloc(&m->mem, m->rcpts, cap * sizeof *r);
    if (r == NULL)
      return SMTPUV_ENOMEM;
    m->rcpts = r;
    m->rcpt_cap = cap;
  }
  char *s = smtpuv__strndup(&m->mem, a, n);
  if (s == NULL)
    return SMTPUV_ENOMEM;
  if (smtpuv_check_address(s, 1) != 0) {
    smtpuv__free(&m->mem, s);
    return SMTPUV_EHEADER;
  }
  m->rcpts[m->nrcpts++] = s;
  return 0;
}

static int set_sender(smtpuv_message *m, const char *a, size_t n) {
  if (m->sender != NULL)
    return 0; /* the first address of the field */
  char *s = smtpuv__strndup(&m->mem, a, n);
  if (s == NULL)
    return SMTPUV_ENOMEM;
  if (smtpuv_check_address(s, 1) != 0) {
    smtpuv__free(&m->mem, s);
    return SMTPUV_EHEADER;
  }
  m->sender = s;
  return 0;
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

static int is_ascii_str(const char *s) {
  for (; *s; s++)
    if ((unsigned char)*s >= 0x80)
      return 0;
  return 1;
}

static int derive(smtpuv_message *m) {
  const char *d = m->data;
  size_t len = m->len;
  size_t pos = 0;
  field f;
  unsigned resent_dates = 0;
  int rc;
  /* pass 1: Resent-Date count and the Bcc fields to leave out */
  while (next_field(d, len, &pos, &f)) {
    if (name_is(d, &f, "Resent-Date"))
      resent_dates++;
    if (name_is(d, &f, "Bcc") || name_is(d, &f, "Resent-Bcc"))
      if ((rc = add_skip(m, f.start, f.end)) != 0)
        return rc;
  }
  if (pos == 0)
    return SMTPUV_EHEADER; /* no header field at all */
  if (resent_dates > 1)
    return SMTPUV_EHEADER; /* several Resent- blocks */
  const char *pfx = resent_dates == 1 ? "Resent-" : "";
  char n_sender[32], n_from[32], n_to[32], n_cc[32], n_bcc[32];
  strcpy(n_sender, pfx);
  strcat(n_sender, "Sender");
  strcpy(n_from, pfx);
  strcat(n_from, "From");
  strcpy(n_to, pfx);
  strcat(n_to, "To");
  strcpy(n_cc, pfx);
  strcat(n_cc, "Cc");
  strcpy(n_bcc, pfx);
  strcat(n_bcc, "Bcc");
  /* sender: the first Sender field, else the first From field */
  int have_sender_field = 0;
  pos = 0;
  while (next_field(d, len, &pos, &f))
    if (name_is(d, &f, n_sender)) {
      have_sender_field = 1;
      rc = parse_addresses(m, d, f.value_start, f.end, set_sender);
      if (rc != 0)
        return rc;
      break;
    }
  if (!have_sender_field) {
    pos = 0;
    while (next_field(d, len, &pos, &f))
      if (name_is(d, &f, n_from)) {
        rc = parse_addresses(m, d, f.value_start, f.end, set_sender);
        if (rc != 0)
          return rc;
        break;
      }
  }
  if (m->sender == NULL)
    return SMTPUV_EHEADER;
  /* recipients: To, Bcc, Cc (in this order, as send_message does) */
  const char *names[3] = {n_to, n_bcc, n_cc};
  for (int k = 0; k < 3; k++) {
    pos = 0;
    while (next_field(d, len, &pos, &f))
      if (name_is(d, &f, names[k])) {
        rc = parse_addresses(m, d, f.value_start, f.end, add_rcpt);
        if (rc != 0)
          return rc;
      }
  }
  if (m->nrcpts == 0)
    return SMTPUV_EHEADER;
  int intl = !is_ascii_str(m->sender);
  for (size_t i = 0; i < m->nrcpts && !intl; i++)
    intl = !is_ascii_str(m->rcpts[i]);
  smtpuv_mail_params mp = SMTPUV_MAIL_PARAMS_INIT;
  m->mp = mp;
  smtpuv_envelope env = SMTPUV_ENVELOPE_INIT;
  env.sender = m->sender;
  env.recipients = (const char *const *)m->rcpts;
  env.nrecipients = m->nrcpts;
  if (intl) {
    m->mp.smtputf8 = 1;
    m->mp.body = SMTPUV_BODY_8BITMIME;
    env.mail_params = &m->mp;
  }
  m->env = env;
  return 0;
}

int smtpuv_message_new(const smtpuv_mem *mem, const void *data, size_t len,
                       smtpuv_message **out) {
  if (out == NULL)
    return SMTPUV_EINVAL;
  *out = NULL;
  if (data == NULL || len == 0)
    return SMTPUV_EINVAL;
  smtpuv_mem mm;
  smtpuv__mem_init(&mm, mem);
  smtpuv_message *m = smtpuv__calloc(&mm, 1, sizeof *m);
  if (m == NULL)
    return SMTPUV_ENOMEM;
  m->mem = mm;
  m->data = data;
  m->len = len;
  m->skips = m->skip;
  m->skip_cap = sizeof m->skip / sizeof m->skip[0];
  int rc = derive(m);
  if (rc != 0) {
    smtpuv_message_free(m);
    return rc;
  }
  *out = m;
  return 0;
}

const smtpuv_envelope *smtpuv_message_envelope(const smtpuv_message *m) {
  return m != NULL ? &m->env : NULL;
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
  smtpuv__free(&m->mem, m->sender);
  for (size_t i = 0; i < m->nrcpts; i++)
    smtpuv__free(&m->mem, m->rcpts[i]);
  smtpuv__free(&m->mem, m->rcpts);
  if (m->skips != m->skip)
    smtpuv__free(&m->mem, m->skips);
  smtpuv_mem mm = m->mem;
  smtpuv__free(&mm, m);
}

/* SPDX-License-Identifier: MIT */
/* The envelope from a message's own headers (Python's smtplib
 * send_message() rules) and a body source that leaves out Bcc and
 * Resent-Bcc, built on the header field scanner and the RFC 5322
 * address-list parser of the core (src/protocol/headers.c). The message
 * buffer is the caller's; nothing of it is copied but the addresses. */
#include <stdio.h>
#include <string.h>

#include "protocol/headers_int.h"
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
  int has_envelope;
  smtpuv__addr_list sender; /* one address at most */
  smtpuv__addr_list rcpts;
  smtpuv_mail_params mp;
  smtpuv_envelope env;
  /* body source position */
  size_t pos;
};

/* ---- the envelope ---------------------------------------------------------------- */

/* A recipient: each address once. */
static int add_rcpt(void *ctx, const char *a, size_t n) {
  smtpuv__addr_list *l = &((smtpuv_message *)ctx)->rcpts;
  for (size_t i = 0; i < l->pub.count; i++)
    if (strlen(l->v[i]) == n && memcmp(l->v[i], a, n) == 0)
      return 0; /* duplicate */
  return smtpuv__addr_list_add(l, a, n);
}

/* The sender: the first address of the field. */
static int set_sender(void *ctx, const char *a, size_t n) {
  smtpuv__addr_list *l = &((smtpuv_message *)ctx)->sender;
  return l->pub.count > 0 ? 0 : smtpuv__addr_list_add(l, a, n);
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
                      smtpuv__addr_fn fn, int *found) {
  size_t pos = 0;
  smtpuv_header_field f;
  while (smtpuv_header_next(m->data, m->len, &pos, &f) == 1) {
    if (!smtpuv_header_field_is(&f, name))
      continue;
    if (found != NULL)
      *found = 1;
    int rc = smtpuv__parse_addresses(m, f.value, 0, f.value_len, fn);
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
  const smtpuv__addr_list *r = &m->rcpts;
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
  smtpuv__addr_list_init(&m->sender, &mm);
  smtpuv__addr_list_init(&m->rcpts, &mm);
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
  smtpuv__addr_list_clear(&m->sender);
  smtpuv__addr_list_clear(&m->rcpts);
  if (m->skips != m->skip)
    smtpuv__free(&m->mem, m->skips);
  smtpuv_mem mm = m->mem;
  smtpuv__free(&mm, m);
}

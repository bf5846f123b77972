/* SPDX-License-Identifier: MIT */
/* The composer's lifetime and what the caller sets: addresses, headers,
 * text and html, attachments (checked, copied or opened here). */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "compose/compose_obj.h"
#include "protocol/headers_int.h"

/* short local names of the shared types */
typedef smtpuv__compose_part part;
typedef smtpuv__compose_mailbox mailbox;
typedef smtpuv__compose_xheader xheader;
typedef smtpuv__compose_seg seg;
#define SRC_MEM SMTPUV__COMPOSE_SRC_MEM
#define SRC_FILE SMTPUV__COMPOSE_SRC_FILE
#define SRC_CB SMTPUV__COMPOSE_SRC_CB
#define P_TEXT SMTPUV__COMPOSE_P_TEXT
#define P_HTML SMTPUV__COMPOSE_P_HTML
#define P_ATTACH SMTPUV__COMPOSE_P_ATTACH

/* ---- lifetime ---------------------------------------------------------------- */

int smtpuv_compose_new(const smtpuv_mem *mem, unsigned flags,
                       smtpuv_compose **out) {
  if (out == NULL)
    return SMTPUV_EINVAL;
  *out = NULL;
  if (flags & ~(unsigned)(SMTPUV_COMPOSE_8BITMIME |
                          SMTPUV_COMPOSE_REPLACE_INVALID))
    return SMTPUV_EINVAL;
  smtpuv_mem mm;
  smtpuv__mem_init(&mm, mem);
  smtpuv_compose *c = smtpuv__calloc(&mm, 1, sizeof *c);
  if (c == NULL)
    return SMTPUV_ENOMEM;
  c->mem = mm;
  c->flags = flags;
  c->empty.kind = P_TEXT;
  c->empty.src = SRC_MEM;
  c->empty.fd = -1;
  c->empty.data = (unsigned char *)"";
  smtpuv__compose_buf_init(&c->lit, &c->mem);
  c->size = -1;
  *out = c;
  return 0;
}

static void part_free(smtpuv_compose *c, part *p) {
  if (p == NULL || p == &c->empty)
    return;
  if (p->src == SRC_MEM)
    smtpuv__free(&c->mem, p->data);
  if (p->fd >= 0)
    close(p->fd);
  smtpuv__free(&c->mem, p->ctype);
  smtpuv__free(&c->mem, p->filename);
  smtpuv__free(&c->mem, p->cid);
  smtpuv__free(&c->mem, p);
}

void smtpuv__compose_unfinish(smtpuv_compose *c) {
  smtpuv__compose_buf_free(&c->lit);
  c->lit.err = 0;
  smtpuv__free(&c->mem, c->segs);
  c->segs = NULL;
  c->nseg = c->segcap = 0;
  c->seg_err = 0;
  for (size_t i = 0; i < c->nrcpt; i++)
    smtpuv__free(&c->mem, c->rcpt[i]);
  smtpuv__free(&c->mem, c->rcpt);
  c->rcpt = NULL;
  c->nrcpt = 0;
  c->sender = NULL;
  smtpuv__free(&c->mem, c->obuf);
  smtpuv__free(&c->mem, c->ibuf);
  c->obuf = NULL;
  c->ibuf = NULL;
  c->size = -1;
  c->eightbit = 0;
  c->finished = 0;
}

void smtpuv_compose_free(smtpuv_compose *c) {
  if (c == NULL)
    return;
  smtpuv__compose_unfinish(c);
  for (size_t i = 0; i < c->nmb; i++) {
    smtpuv__free(&c->mem, c->mb[i].name);
    smtpuv__free(&c->mem, c->mb[i].addr);
  }
  smtpuv__free(&c->mem, c->mb);
  for (size_t i = 0; i < c->nxh; i++) {
    smtpuv__free(&c->mem, c->xh[i].name);
    smtpuv__free(&c->mem, c->xh[i].value);
  }
  smtpuv__free(&c->mem, c->xh);
  smtpuv__free(&c->mem, c->subject);
  smtpuv__free(&c->mem, c->mid_domain);
  smtpuv__free(&c->mem, c->in_reply_to);
  smtpuv__free(&c->mem, c->references);
  part_free(c, c->text);
  part_free(c, c->html);
  for (size_t i = 0; i < c->natt; i++)
    part_free(c, c->att[i]);
  smtpuv__free(&c->mem, c->att);
  smtpuv_mem mm = c->mem;
  smtpuv__free(&mm, c);
}

/* Grow an array by one slot: 0 or ENOMEM. */
static int grow(smtpuv_compose *c, void **arr, size_t n, size_t elem) {
  if ((n & (n - 1)) != 0 && n != 0)
    return 0; /* room left: capacities are powers of two */
  size_t cap = n ? n * 2 : 4;
  void *p = smtpuv__realloc(&c->mem, *arr, cap * elem);
  if (p == NULL)
    return SMTPUV_ENOMEM;
  *arr = p;
  return 0;
}

int smtpuv__compose_open_check(smtpuv_compose *c) {
  if (c == NULL)
    return SMTPUV_EINVAL;
  return c->finished ? SMTPUV_ESTATE : 0;
}

static int replace_invalid(const smtpuv_compose *c) {
  return (c->flags & SMTPUV_COMPOSE_REPLACE_INVALID) != 0;
}

/* ---- headers ----------------------------------------------------------------- */

int smtpuv_compose_address(smtpuv_compose *c, smtpuv_compose_field field,
                           const char *name, const char *address) {
  int rc = smtpuv__compose_open_check(c);
  if (rc != 0)
    return rc;
  if (address == NULL || (unsigned)field > SMTPUV_COMPOSE_BCC)
    return SMTPUV_EINVAL;
  if (field == SMTPUV_COMPOSE_SENDER)
    for (size_t i = 0; i < c->nmb; i++)
      if (c->mb[i].field == SMTPUV_COMPOSE_SENDER)
        return SMTPUV_EHEADER;
  size_t alen = strlen(address);
  for (size_t i = 0; i < alen; i++)
    if ((unsigned char)address[i] >= 0x80)
      return SMTPUV_EADDRESS;
  if (memchr(address, '@', alen) == NULL)
    return SMTPUV_EADDRESS;
  smtpuv_address_list *l = NULL;
  rc = smtpuv_address_list_parse(&c->mem, address, alen, &l);
  if (rc == SMTPUV_ENOMEM)
    return rc;
  int one = rc == 0 && l->count == 1 && strcmp(l->addresses[0], address) == 0;
  smtpuv_address_list_free(l);
  if (!one)
    return SMTPUV_EADDRESS;
  char *nm = NULL;
  size_t nlen = 0;
  if (name != NULL && name[0] != '\0') {
    rc = smtpuv__compose_utf8_copy(&c->mem, name, strlen(name), replace_invalid(c), 1,
                           SMTPUV_EHEADER, &nm, &nlen);
    if (rc != 0)
      return rc;
    /* a phrase: its blanks are not significant (RFC 5322 3.2.5) */
    size_t o = 0;
    for (size_t i = 0; i < nlen; i++) {
      char ch = nm[i] == '\t' ? ' ' : nm[i];
      if (ch == ' ' && (o == 0 || nm[o - 1] == ' '))
        continue;
      nm[o++] = ch;
    }
    while (o > 0 && nm[o - 1] == ' ')
      o--;
    nm[o] = '\0';
    nlen = o;
    if (nlen == 0) {
      smtpuv__free(&c->mem, nm);
      nm = NULL;
    }
  }
  char *ad = smtpuv__strdup(&c->mem, address);
  if (ad == NULL || grow(c, (void **)&c->mb, c->nmb, sizeof *c->mb) != 0) {
    smtpuv__free(&c->mem, ad);
    smtpuv__free(&c->mem, nm);
    return SMTPUV_ENOMEM;
  }
  mailbox *m = &c->mb[c->nmb++];
  m->field = (int)field;
  m->name = nm;
  m->name_len = nlen;
  m->addr = ad;
  return 0;
}

int smtpuv_compose_subject(smtpuv_compose *c, const char *text) {
  int rc = smtpuv__compose_open_check(c);
  if (rc != 0)
    return rc;
  if (text == NULL)
    return SMTPUV_EINVAL;
  char *s;
  size_t n;
  rc = smtpuv__compose_utf8_copy(&c->mem, text, strlen(text), replace_invalid(c), 1,
                         SMTPUV_EHEADER, &s, &n);
  if (rc != 0)
    return rc;
  smtpuv__free(&c->mem, c->subject);
  c->subject = s;
  c->subject_len = n;
  return 0;
}

static const char *const reserved[] = {
    "From", "Sender", "Reply-To", "To", "Cc", "Bcc", "Subject", "Date",
    "Message-ID", "MIME-Version", "In-Reply-To", "References",
    "Content-Type", "Content-Transfer-Encoding"};

int smtpuv_compose_header(smtpuv_compose *c, const char *name,
                          const char *value) {
  int rc = smtpuv__compose_open_check(c);
  if (rc != 0)
    return rc;
  if (name == NULL || value == NULL)
    return SMTPUV_EINVAL;
  size_t nl = strlen(name);
  if (nl == 0 || nl > 76)
    return SMTPUV_EHEADER;
  for (size_t i = 0; i < nl; i++)
    if ((unsigned char)name[i] <= 0x20 || (unsigned char)name[i] >= 0x7f ||
        name[i] == ':')
      return SMTPUV_EHEADER;
  for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
    if (strcasecmp(name, reserved[i]) == 0)
      return SMTPUV_EINVAL;
  char *v, *n;
  size_t vl;
  rc = smtpuv__compose_utf8_copy(&c->mem, value, strlen(value), replace_invalid(c), 1,
                         SMTPUV_EHEADER, &v, &vl);
  if (rc != 0)
    return rc;
  n = smtpuv__strdup(&c->mem, name);
  if (n == NULL || grow(c, (void **)&c->xh, c->nxh, sizeof *c->xh) != 0) {
    smtpuv__free(&c->mem, n);
    smtpuv__free(&c->mem, v);
    return SMTPUV_ENOMEM;
  }
  c->xh[c->nxh].name = n;
  c->xh[c->nxh].value = v;
  c->xh[c->nxh].value_len = vl;
  c->nxh++;
  return 0;
}

int smtpuv_compose_date(smtpuv_compose *c, int64_t unix_time,
                        int utc_offset_minutes) {
  int rc = smtpuv__compose_open_check(c);
  if (rc != 0)
    return rc;
  char tmp[40];
  rc = smtpuv__compose_date_format(unix_time, utc_offset_minutes, tmp);
  if (rc != 0)
    return rc;
  c->has_date = 1;
  c->date = unix_time;
  c->date_off = utc_offset_minutes;
  return 0;
}

int smtpuv_compose_message_id(smtpuv_compose *c, const char *domain) {
  int rc = smtpuv__compose_open_check(c);
  if (rc != 0)
    return rc;
  if (domain == NULL || !smtpuv__compose_domain_ok(domain))
    return SMTPUV_EINVAL;
  char *d = smtpuv__strdup(&c->mem, domain);
  if (d == NULL)
    return SMTPUV_ENOMEM;
  smtpuv__free(&c->mem, c->mid_domain);
  c->mid_domain = d;
  return 0;
}

/* A checked, normalised list of message ids (single spaces). */
static int msgids(smtpuv_compose *c, const char *s, char **slot) {
  int rc = smtpuv__compose_open_check(c);
  if (rc != 0)
    return rc;
  if (s == NULL)
    return SMTPUV_EINVAL;
  smtpuv__compose_buf b;
  smtpuv__compose_buf_init(&b, &c->mem);
  size_t i = 0, n = strlen(s), count = 0;
  while (i < n) {
    if (s[i] == ' ' || s[i] == '\t') {
      i++;
      continue;
    }
    size_t st = i;
    int at = 0;
    if (s[i] != '<')
      goto bad;
    for (i++; i < n && s[i] != '>'; i++) {
      unsigned char ch = (unsigned char)s[i];
      if (ch <= 0x20 || ch >= 0x7f || ch == '<')
        goto bad;
      at |= ch == '@';
    }
    if (i >= n || !at || i - st > 250 || i - st < 4)
      goto bad;
    i++;
    if (count++ > 0)
      smtpuv__compose_buf_putc(&b, ' ');
    smtpuv__compose_buf_put(&b, s + st, i - st);
  }
  if (count == 0)
    goto bad;
  if (b.err != 0) {
    smtpuv__compose_buf_free(&b);
    return SMTPUV_ENOMEM;
  }
  smtpuv__free(&c->mem, *slot);
  *slot = b.p;
  return 0;
bad:
  smtpuv__compose_buf_free(&b);
  return SMTPUV_EHEADER;
}

int smtpuv_compose_in_reply_to(smtpuv_compose *c, const char *ids) {
  return msgids(c, ids, c != NULL ? &c->in_reply_to : NULL);
}

int smtpuv_compose_references(smtpuv_compose *c, const char *ids) {
  return msgids(c, ids, c != NULL ? &c->references : NULL);
}

/* ---- parts --------------------------------------------------------------------- */

static part *part_new(smtpuv_compose *c, int kind, int src) {
  part *p = smtpuv__calloc(&c->mem, 1, sizeof *p);
  if (p != NULL) {
    p->kind = kind;
    p->src = src;
    p->fd = -1;
    p->size = -1;
  }
  return p;
}

static int set_text(smtpuv_compose *c, int kind, const void *t, size_t len) {
  int rc = smtpuv__compose_open_check(c);
  if (rc != 0)
    return rc;
  if (t == NULL && len > 0)
    return SMTPUV_EINVAL;
  if (len > 0 && memchr(t, 0, len) != NULL)
    return SMTPUV_EINVAL;
  char *u = NULL;
  size_t ul = 0;
  rc = smtpuv__compose_utf8_copy(&c->mem, len ? t : "", len, replace_invalid(c), 0,
                         SMTPUV_EINVAL, &u, &ul);
  if (rc != 0)
    return rc;
  /* line ends to CRLF, a final one */
  size_t extra = 2;
  for (size_t i = 0; i < ul; i++)
    extra += u[i] == '\n' || u[i] == '\r';
  part *p = part_new(c, kind, SRC_MEM);
  unsigned char *d = smtpuv__malloc(&c->mem, ul + extra + 1);
  if (p == NULL || d == NULL) {
    smtpuv__free(&c->mem, p);
    smtpuv__free(&c->mem, d);
    smtpuv__free(&c->mem, u);
    return SMTPUV_ENOMEM;
  }
  size_t o = 0;
  for (size_t i = 0; i < ul; i++) {
    if (u[i] == '\r' || u[i] == '\n') {
      if (u[i] == '\r' && i + 1 < ul && u[i + 1] == '\n')
        i++;
      d[o++] = '\r';
      d[o++] = '\n';
    } else {
      d[o++] = (unsigned char)u[i];
    }
  }
  if (o > 0 && d[o - 1] != '\n') {
    d[o++] = '\r';
    d[o++] = '\n';
  }
  smtpuv__free(&c->mem, u);
  p->data = d;
  p->len = o;
  p->size = (int64_t)o;
  part **slot = kind == P_TEXT ? &c->text : &c->html;
  part_free(c, *slot);
  *slot = p;
  return 0;
}

int smtpuv_compose_text(smtpuv_compose *c, const void *text, size_t len) {
  return set_text(c, P_TEXT, text, len);
}

int smtpuv_compose_html(smtpuv_compose *c, const void *html, size_t len) {
  return set_text(c, P_HTML, html, len);
}

static int token_char(unsigned char ch) {
  return ch > 0x20 && ch < 0x7f && strchr("()<>@,;:\\\"/[]?=", ch) == NULL;
}

/* "type/subtype" then optionally ";" and printable parameters. */
static int ctype_ok(const char *t) {
  size_t n = strlen(t), i = 0;
  if (n == 0 || n > 200)
    return 0;
  while (i < n && token_char((unsigned char)t[i]))
    i++;
  if (i == 0 || i >= n || t[i] != '/')
    return 0;
  size_t j = ++i;
  while (i < n && token_char((unsigned char)t[i]))
    i++;
  if (i == j)
    return 0;
  if (i < n && t[i] != ';')
    return 0;
  for (; i < n; i++)
    if ((unsigned char)t[i] < 0x20 || (unsigned char)t[i] >= 0x7f ||
        (t[i] == ' ' && t[i + 1] == ' '))
      return 0;
  if (t[n - 1] == ' ')
    return 0;
  if (strncasecmp(t, "multipart/", 10) == 0 ||
      strncasecmp(t, "message/", 8) == 0)
    return 0;
  return 1;
}

static int cid_ok(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 200)
    return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch <= 0x20 || ch >= 0x7f || ch == '<' || ch == '>' || ch == '"')
      return 0;
  }
  return 1;
}

int smtpuv_compose_attach(smtpuv_compose *c, const smtpuv_compose_part *in) {
  int rc = smtpuv__compose_open_check(c);
  if (rc != 0)
    return rc;
  if (in == NULL || in->struct_size < sizeof(smtpuv_compose_part))
    return SMTPUV_EINVAL;
  int nsrc = (in->data != NULL || in->len > 0) + (in->path != NULL) +
             (in->read != NULL);
  if (nsrc != 1 || (in->data == NULL && in->len > 0))
    return SMTPUV_EINVAL;
  if (in->content_type != NULL && !ctype_ok(in->content_type))
    return SMTPUV_EINVAL;
  if (in->content_id != NULL && !cid_ok(in->content_id))
    return SMTPUV_EINVAL;
  if (in->read != NULL && in->size < -1)
    return SMTPUV_EINVAL;
  int src = in->path != NULL ? SRC_FILE : in->read != NULL ? SRC_CB : SRC_MEM;
  part *p = part_new(c, P_ATTACH, src);
  if (p == NULL)
    return SMTPUV_ENOMEM;
  rc = SMTPUV_ENOMEM;
  p->ctype = smtpuv__strdup(&c->mem, in->content_type != NULL
                                         ? in->content_type
                                         : "application/octet-stream");
  if (p->ctype == NULL)
    goto fail;
  if (in->content_id != NULL &&
      (p->cid = smtpuv__strdup(&c->mem, in->content_id)) == NULL)
    goto fail;
  if (in->filename != NULL) {
    rc = smtpuv__compose_utf8_copy(&c->mem, in->filename, strlen(in->filename),
                           replace_invalid(c), 1, SMTPUV_EHEADER,
                           &p->filename, NULL);
    if (rc != 0)
      goto fail;
    for (const char *f = p->filename; *f; f++)
      if ((unsigned char)*f < 0x20 || *f == 0x7f) {
        rc = SMTPUV_EHEADER;
        goto fail;
      }
    /* blanks at the ends are dropped (parsers drop them) */
    char *f = p->filename;
    size_t fl = strlen(f), lead = strspn(f, " ");
    while (fl > lead && f[fl - 1] == ' ')
      fl--;
    memmove(f, f + lead, fl - lead);
    f[fl - lead] = '\0';
    rc = SMTPUV_ENOMEM;
  }
  if (src == SRC_MEM) {
    p->data = smtpuv__malloc(&c->mem, in->len ? in->len : 1);
    if (p->data == NULL)
      goto fail;
    if (in->len)
      memcpy(p->data, in->data, in->len);
    p->len = in->len;
    p->size = (int64_t)in->len;
  } else if (src == SRC_FILE) {
    rc = SMTPUV_EIO;
    p->fd = open(in->path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    char probe;
    if (p->fd < 0 || fstat(p->fd, &st) != 0 || !S_ISREG(st.st_mode) ||
        pread(p->fd, &probe, 1, 0) < 0)
      goto fail;
    p->size = (int64_t)st.st_size;
  } else {
    p->read = in->read;
    p->rewind = in->rewind;
    p->user = in->user;
    p->size = in->size;
  }
  if (grow(c, (void **)&c->att, c->natt, sizeof *c->att) != 0) {
    rc = SMTPUV_ENOMEM;
    goto fail;
  }
  c->att[c->natt++] = p;
  return 0;
fail:
  part_free(c, p);
  return rc;
}

/* The composer: the message's parts as the caller sets them, the checks,
 * smtpuv_compose_finish() (headers, structure, encodings, boundaries, size,
 * envelope) and the incremental output (smtpuv_compose_read). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "compose/compose_int.h"
#include "protocol/headers_int.h"

#define IBUF_SIZE (57 * 256) /* streamed source bytes in flight */
#define OBUF_SIZE 16384      /* encoded bytes for a small read */
#define DIRECT_MIN 4096      /* encode straight into a caller buffer this big */
#define BOUNDARY_HEX 28

enum { SRC_MEM, SRC_FILE, SRC_CB };
enum { P_TEXT, P_HTML, P_ATTACH };

typedef struct part {
  int kind, src, enc;
  unsigned char *data; /* SRC_MEM, owned */
  size_t len;
  int fd;              /* SRC_FILE */
  smtpuv_compose_read_cb read;
  smtpuv_compose_rewind_cb rewind;
  void *user;
  int64_t size;        /* source bytes, -1 unknown */
  char *ctype, *filename, *cid;
  /* output state */
  size_t pos, col;
  uint64_t in_done, lines;
  int eof;
} part;

typedef struct mailbox {
  int field;
  char *name; /* NULL: none */
  size_t name_len;
  char *addr;
} mailbox;

typedef struct xheader {
  char *name, *value;
  size_t value_len;
} xheader;

typedef struct seg {
  size_t off, len; /* literal: a range of `lit` */
  part *p;         /* else a part's encoded content */
} seg;

struct smtpuv_compose {
  smtpuv_mem mem;
  unsigned flags;
  int finished;
  mailbox *mb;
  size_t nmb;
  xheader *xh;
  size_t nxh;
  char *subject;
  size_t subject_len;
  int has_date, date_off;
  int64_t date;
  char *mid_domain, *in_reply_to, *references;
  part *text, *html;
  part **att;
  size_t natt;
  part empty; /* the body of a message without any */
  /* made by finish */
  smtpuv__cbuf lit;
  seg *segs;
  size_t nseg, segcap;
  int seg_err;
  char **rcpt;
  size_t nrcpt;
  const char *sender;
  int64_t size;
  int eightbit;
  /* reading */
  int err;
  size_t cur, segpos;
  char *obuf;
  size_t opos, olen;
  unsigned char *ibuf;
  size_t ilen;
};

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
  smtpuv__cbuf_init(&c->lit, &c->mem);
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

static void unfinish(smtpuv_compose *c) {
  smtpuv__cbuf_free(&c->lit);
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
  unfinish(c);
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

static int open_check(smtpuv_compose *c) {
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
  int rc = open_check(c);
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
    rc = smtpuv__utf8_copy(&c->mem, name, strlen(name), replace_invalid(c), 1,
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
  int rc = open_check(c);
  if (rc != 0)
    return rc;
  if (text == NULL)
    return SMTPUV_EINVAL;
  char *s;
  size_t n;
  rc = smtpuv__utf8_copy(&c->mem, text, strlen(text), replace_invalid(c), 1,
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
  int rc = open_check(c);
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
  rc = smtpuv__utf8_copy(&c->mem, value, strlen(value), replace_invalid(c), 1,
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
  int rc = open_check(c);
  if (rc != 0)
    return rc;
  char tmp[40];
  rc = smtpuv__date_format(unix_time, utc_offset_minutes, tmp);
  if (rc != 0)
    return rc;
  c->has_date = 1;
  c->date = unix_time;
  c->date_off = utc_offset_minutes;
  return 0;
}

int smtpuv_compose_message_id(smtpuv_compose *c, const char *domain) {
  int rc = open_check(c);
  if (rc != 0)
    return rc;
  if (domain == NULL || !smtpuv__domain_ok(domain))
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
  int rc = open_check(c);
  if (rc != 0)
    return rc;
  if (s == NULL)
    return SMTPUV_EINVAL;
  smtpuv__cbuf b;
  smtpuv__cbuf_init(&b, &c->mem);
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
      smtpuv__cbuf_putc(&b, ' ');
    smtpuv__cbuf_put(&b, s + st, i - st);
  }
  if (count == 0)
    goto bad;
  if (b.err != 0) {
    smtpuv__cbuf_free(&b);
    return SMTPUV_ENOMEM;
  }
  smtpuv__free(&c->mem, *slot);
  *slot = b.p;
  return 0;
bad:
  smtpuv__cbuf_free(&b);
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
  int rc = open_check(c);
  if (rc != 0)
    return rc;
  if (t == NULL && len > 0)
    return SMTPUV_EINVAL;
  if (len > 0 && memchr(t, 0, len) != NULL)
    return SMTPUV_EINVAL;
  char *u = NULL;
  size_t ul = 0;
  rc = smtpuv__utf8_copy(&c->mem, len ? t : "", len, replace_invalid(c), 0,
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
  int rc = open_check(c);
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
    rc = smtpuv__utf8_copy(&c->mem, in->filename, strlen(in->filename),
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

/* ---- finish: headers and structure ------------------------------------------ */

static void add_seg(smtpuv_compose *c, part *p) {
  if (c->nseg == c->segcap) {
    size_t cap = c->segcap ? c->segcap * 2 : 16;
    seg *s = smtpuv__realloc(&c->mem, c->segs, cap * sizeof *s);
    if (s == NULL) {
      c->seg_err = SMTPUV_ENOMEM;
      return;
    }
    c->segs = s;
    c->segcap = cap;
  }
  seg *s = &c->segs[c->nseg++];
  s->p = p;
  s->off = c->lit.len;
  s->len = 0;
}

/* Close the literal segment in progress and start a part segment. */
static void lit_then_part(smtpuv_compose *c, part *p) {
  seg *last = c->nseg ? &c->segs[c->nseg - 1] : NULL;
  if (last != NULL && last->p == NULL)
    last->len = c->lit.len - last->off;
  add_seg(c, p);
  add_seg(c, NULL); /* the next literal run */
}

static void put_mailboxes(smtpuv_compose *c, int field, const char *name) {
  size_t n = 0, k = 0;
  for (size_t i = 0; i < c->nmb; i++)
    n += c->mb[i].field == field;
  if (n == 0)
    return;
  smtpuv__hdr h;
  smtpuv__hdr_begin(&h, &c->lit, name);
  for (size_t i = 0; i < c->nmb; i++) {
    const mailbox *m = &c->mb[i];
    if (m->field != field)
      continue;
    k++;
    char t[SMTPUV_MAX_ADDRESS + 4];
    int len;
    if (m->name != NULL) {
      smtpuv__hdr_phrase(&h, m->name, m->name_len);
      len = snprintf(t, sizeof t, "<%s>%s", m->addr, k < n ? "," : "");
    } else {
      len = snprintf(t, sizeof t, "%s%s", m->addr, k < n ? "," : "");
    }
    smtpuv__hdr_token(&h, t, (size_t)len);
  }
  smtpuv__hdr_end(&h);
}

static void put_ids(smtpuv_compose *c, const char *name, const char *ids) {
  if (ids == NULL)
    return;
  smtpuv__hdr h;
  smtpuv__hdr_begin(&h, &c->lit, name);
  const char *s = ids;
  while (*s) {
    const char *e = strchr(s, ' ');
    size_t n = e ? (size_t)(e - s) : strlen(s);
    smtpuv__hdr_token(&h, s, n);
    s += n;
    if (*s == ' ')
      s++;
  }
  smtpuv__hdr_end(&h);
}

static void put_words(smtpuv__hdr *h, const char *s) {
  /* split at blanks; the value was checked */
  while (*s) {
    while (*s == ' ')
      s++;
    size_t n = strcspn(s, " ");
    if (n > 0)
      smtpuv__hdr_token(h, s, n);
    s += n;
  }
}

static const char *const enc_names[] = {"7bit", "8bit", "quoted-printable",
                                        "base64"};

static void put_part_headers(smtpuv_compose *c, const part *p) {
  smtpuv__hdr h;
  smtpuv__hdr_begin(&h, &c->lit, "Content-Type");
  if (p->kind == P_ATTACH) {
    put_words(&h, p->ctype);
  } else {
    smtpuv__hdr_token(&h, p->kind == P_TEXT ? "text/plain;" : "text/html;",
                      p->kind == P_TEXT ? 11 : 10);
    smtpuv__hdr_token(&h, "charset=utf-8", 13);
  }
  smtpuv__hdr_end(&h);
  smtpuv__cbuf_puts(&c->lit, "Content-Transfer-Encoding: ");
  smtpuv__cbuf_puts(&c->lit, enc_names[p->enc]);
  smtpuv__cbuf_puts(&c->lit, "\r\n");
  if (p->kind != P_ATTACH)
    return;
  smtpuv__hdr_begin(&h, &c->lit, "Content-Disposition");
  const char *d = p->cid != NULL ? "inline" : "attachment";
  if (p->filename != NULL) {
    char t[16];
    int n = snprintf(t, sizeof t, "%s;", d);
    smtpuv__hdr_token(&h, t, (size_t)n);
    smtpuv__hdr_filename(&h, p->filename);
  } else {
    smtpuv__hdr_token(&h, d, strlen(d));
  }
  smtpuv__hdr_end(&h);
  if (p->cid != NULL) {
    smtpuv__hdr_begin(&h, &c->lit, "Content-ID");
    char t[210];
    int n = snprintf(t, sizeof t, "<%s>", p->cid);
    smtpuv__hdr_token(&h, t, (size_t)n);
    smtpuv__hdr_end(&h);
  }
}

typedef struct node {
  part *leaf;
  const char *sub, *boundary;
  struct node *kids;
  size_t nkids;
} node;

static void put_entity_headers(smtpuv_compose *c, const node *n) {
  if (n->leaf != NULL) {
    put_part_headers(c, n->leaf);
    return;
  }
  smtpuv__hdr h;
  smtpuv__hdr_begin(&h, &c->lit, "Content-Type");
  char t[64];
  int len = snprintf(t, sizeof t, "multipart/%s;", n->sub);
  smtpuv__hdr_token(&h, t, (size_t)len);
  len = snprintf(t, sizeof t, "boundary=\"%s\"", n->boundary);
  smtpuv__hdr_token(&h, t, (size_t)len);
  smtpuv__hdr_end(&h);
}

static void put_entity_body(smtpuv_compose *c, const node *n) {
  smtpuv__cbuf_puts(&c->lit, "\r\n");
  if (n->leaf != NULL) {
    lit_then_part(c, n->leaf);
    return;
  }
  for (size_t i = 0; i < n->nkids; i++) {
    smtpuv__cbuf_puts(&c->lit, i == 0 ? "--" : "\r\n--");
    smtpuv__cbuf_puts(&c->lit, n->boundary);
    smtpuv__cbuf_puts(&c->lit, "\r\n");
    put_entity_headers(c, &n->kids[i]);
    put_entity_body(c, &n->kids[i]);
  }
  smtpuv__cbuf_puts(&c->lit, "\r\n--");
  smtpuv__cbuf_puts(&c->lit, n->boundary);
  smtpuv__cbuf_puts(&c->lit, "--");
}

/* 1 when `b` occurs in [d, d+n). */
static int contains(const void *d, size_t n, const char *b) {
  size_t bl = strlen(b);
  const char *s = d, *end = s + n;
  while ((size_t)(end - s) >= bl) {
    const char *q = memchr(s, b[0], (size_t)(end - s) - bl + 1);
    if (q == NULL)
      return 0;
    if (memcmp(q, b, bl) == 0)
      return 1;
    s = q + 1;
  }
  return 0;
}

/* 1 when a boundary occurs in what the caller gave (headers, 7bit/8bit
   contents). */
static int boundary_clash(smtpuv_compose *c, char b[3][BOUNDARY_HEX + 3]) {
  for (int k = 0; k < 3; k++) {
    const char *x = b[k];
    if (c->subject && contains(c->subject, c->subject_len, x))
      return 1;
    for (size_t i = 0; i < c->nmb; i++)
      if (c->mb[i].name && contains(c->mb[i].name, c->mb[i].name_len, x))
        return 1;
    for (size_t i = 0; i < c->nxh; i++)
      if (contains(c->xh[i].value, c->xh[i].value_len, x))
        return 1;
    part *ps[2] = {c->text, c->html};
    for (size_t i = 0; i < 2 + c->natt; i++) {
      part *p = i < 2 ? ps[i] : c->att[i - 2];
      if (p == NULL)
        continue;
      if (p->src == SRC_MEM && p->enc <= SMTPUV__ENC_8BIT &&
          contains(p->data, p->len, x))
        return 1;
      if ((p->filename && contains(p->filename, strlen(p->filename), x)) ||
          (p->ctype && contains(p->ctype, strlen(p->ctype), x)) ||
          (p->cid && contains(p->cid, strlen(p->cid), x)))
        return 1;
    }
    if (strcmp(b[k], b[(k + 1) % 3]) == 0)
      return 1;
  }
  return 0;
}

static int make_boundaries(char b[3][BOUNDARY_HEX + 3]) {
  static const char hexd[] = "0123456789ABCDEF";
  unsigned char r[3][BOUNDARY_HEX / 2];
  if (RAND_bytes(&r[0][0], sizeof r) != 1)
    return SMTPUV_EIO;
  for (int k = 0; k < 3; k++) {
    b[k][0] = '=';
    b[k][1] = '_';
    for (int i = 0; i < BOUNDARY_HEX / 2; i++) {
      b[k][2 + 2 * i] = hexd[r[k][i] >> 4];
      b[k][3 + 2 * i] = hexd[r[k][i] & 15];
    }
    b[k][BOUNDARY_HEX + 2] = '\0';
  }
  return 0;
}

static const char *field_domain(const char *addr) {
  const char *at = strrchr(addr, '@');
  return at != NULL ? at + 1 : "";
}

static int add_rcpt(smtpuv_compose *c, const char *a) {
  for (size_t i = 0; i < c->nrcpt; i++)
    if (strcmp(c->rcpt[i], a) == 0)
      return 0;
  char *s = smtpuv__strdup(&c->mem, a);
  if (s == NULL)
    return SMTPUV_ENOMEM;
  c->rcpt[c->nrcpt++] = s;
  c->rcpt[c->nrcpt] = NULL;
  return 0;
}

static int envelope(smtpuv_compose *c) {
  const char *from = NULL, *sender = NULL;
  size_t nfrom = 0;
  for (size_t i = 0; i < c->nmb; i++) {
    if (c->mb[i].field == SMTPUV_COMPOSE_FROM && nfrom++ == 0)
      from = c->mb[i].addr;
    if (c->mb[i].field == SMTPUV_COMPOSE_SENDER)
      sender = c->mb[i].addr;
  }
  if (from == NULL || (nfrom > 1 && sender == NULL))
    return SMTPUV_EHEADER;
  c->sender = sender != NULL ? sender : from;
  c->rcpt = smtpuv__calloc(&c->mem, c->nmb + 1, sizeof *c->rcpt);
  if (c->rcpt == NULL)
    return SMTPUV_ENOMEM;
  static const int order[3] = {SMTPUV_COMPOSE_TO, SMTPUV_COMPOSE_BCC,
                               SMTPUV_COMPOSE_CC};
  for (int k = 0; k < 3; k++)
    for (size_t i = 0; i < c->nmb; i++)
      if (c->mb[i].field == order[k]) {
        int rc = add_rcpt(c, c->mb[i].addr);
        if (rc != 0)
          return rc;
      }
  return c->nrcpt > 0 ? 0 : SMTPUV_EHEADER;
}

static uint64_t part_out_size(const part *p, int *unknown) {
  if (p->size < 0) {
    *unknown = 1;
    return 0;
  }
  switch (p->enc) {
  case SMTPUV__ENC_QP:
    return smtpuv__qp_size(p->data, p->len);
  case SMTPUV__ENC_B64:
    return smtpuv__b64_size((uint64_t)p->size);
  default:
    return p->len;
  }
}

static int build(smtpuv_compose *c, char B[3][BOUNDARY_HEX + 3],
                 const char *date, const char *domain) {
  smtpuv__cbuf *L = &c->lit;
  add_seg(c, NULL);
  smtpuv__cbuf_puts(L, "Date: ");
  smtpuv__cbuf_puts(L, date);
  smtpuv__cbuf_puts(L, "\r\n");
  put_mailboxes(c, SMTPUV_COMPOSE_FROM, "From");
  put_mailboxes(c, SMTPUV_COMPOSE_SENDER, "Sender");
  put_mailboxes(c, SMTPUV_COMPOSE_REPLY_TO, "Reply-To");
  put_mailboxes(c, SMTPUV_COMPOSE_TO, "To");
  put_mailboxes(c, SMTPUV_COMPOSE_CC, "Cc");
  if (c->subject != NULL) {
    smtpuv__hdr h;
    smtpuv__hdr_begin(&h, L, "Subject");
    smtpuv__hdr_unstructured(&h, c->subject, c->subject_len);
    smtpuv__hdr_end(&h);
  }
  smtpuv__cbuf_puts(L, "Message-ID: ");
  int rc = smtpuv__msgid_make(L, domain);
  if (rc != 0)
    return rc;
  smtpuv__cbuf_puts(L, "\r\n");
  put_ids(c, "In-Reply-To", c->in_reply_to);
  put_ids(c, "References", c->references);
  for (size_t i = 0; i < c->nxh; i++) {
    smtpuv__hdr h;
    smtpuv__hdr_begin(&h, L, c->xh[i].name);
    smtpuv__hdr_unstructured(&h, c->xh[i].value, c->xh[i].value_len);
    smtpuv__hdr_end(&h);
  }
  smtpuv__cbuf_puts(L, "MIME-Version: 1.0\r\n");

  /* the tree: mixed(alternative(text, related(html, inline...)), att...) */
  size_t nin = 0;
  for (size_t i = 0; i < c->natt; i++)
    nin += c->att[i]->cid != NULL;
  node *pool = smtpuv__calloc(&c->mem, 2 * c->natt + 6, sizeof *pool);
  if (pool == NULL)
    return SMTPUV_ENOMEM;
  size_t np = 0;
  node rel = {0}, alt = {0}, mix = {0}, htmlleaf = {0}, textleaf = {0},
       emptyleaf = {0};
  node *htmlnode = NULL, *body = NULL;
  if (c->html != NULL) {
    if (nin > 0) {
      rel.sub = "related";
      rel.boundary = B[2];
      rel.kids = pool + np;
      rel.nkids = 1 + nin;
      pool[np++].leaf = c->html;
      for (size_t i = 0; i < c->natt; i++)
        if (c->att[i]->cid != NULL)
          pool[np++].leaf = c->att[i];
      htmlnode = &rel;
    } else {
      htmlleaf.leaf = c->html;
      htmlnode = &htmlleaf;
    }
  }
  if (c->text != NULL && htmlnode != NULL) {
    alt.sub = "alternative";
    alt.boundary = B[1];
    alt.kids = pool + np;
    alt.nkids = 2;
    pool[np].leaf = c->text;
    pool[np + 1] = *htmlnode;
    np += 2;
    body = &alt;
  } else if (c->text != NULL) {
    textleaf.leaf = c->text;
    body = &textleaf;
  } else {
    body = htmlnode;
  }
  size_t others = c->natt - (c->html != NULL ? nin : 0);
  node *root = body;
  if (others > 0) {
    mix.sub = "mixed";
    mix.boundary = B[0];
    mix.kids = pool + np;
    if (body != NULL)
      pool[np++] = *body;
    for (size_t i = 0; i < c->natt; i++)
      if (c->html == NULL || c->att[i]->cid == NULL)
        pool[np++].leaf = c->att[i];
    mix.nkids = (size_t)(pool + np - mix.kids);
    root = &mix;
  } else if (root == NULL) {
    emptyleaf.leaf = &c->empty;
    root = &emptyleaf;
  }
  put_entity_headers(c, root);
  put_entity_body(c, root);
  if (root->leaf == NULL)
    smtpuv__cbuf_puts(L, "\r\n");
  smtpuv__free(&c->mem, pool);
  if (L->err != 0 || c->seg_err != 0)
    return SMTPUV_ENOMEM;
  seg *last = &c->segs[c->nseg - 1];
  if (last->p == NULL)
    last->len = L->len - last->off;
  return 0;
}

int smtpuv_compose_finish(smtpuv_compose *c) {
  int rc = open_check(c);
  if (rc != 0)
    return rc;
  rc = envelope(c);
  if (rc != 0)
    goto fail;
  const char *domain = c->mid_domain;
  if (domain == NULL) {
    domain = field_domain(c->sender);
    if (!smtpuv__domain_ok(domain)) {
      rc = SMTPUV_EHEADER;
      goto fail;
    }
  }
  char date[40];
  if (c->has_date) {
    rc = smtpuv__date_format(c->date, c->date_off, date);
  } else {
    time_t now = time(NULL);
    rc = now == (time_t)-1 ? SMTPUV_EIO
                           : smtpuv__date_format((int64_t)now, 0, date);
  }
  if (rc != 0)
    goto fail;
  /* encodings */
  int allow8 = (c->flags & SMTPUV_COMPOSE_8BITMIME) != 0;
  int streamed = 0;
  part *ps[3] = {c->text, c->html, &c->empty};
  for (size_t i = 0; i < 3 + c->natt; i++) {
    part *p = i < 3 ? ps[i] : c->att[i - 3];
    if (p == NULL)
      continue;
    if (p->src != SRC_MEM) {
      p->enc = SMTPUV__ENC_B64;
      streamed = 1;
      continue;
    }
    int text = p->kind != P_ATTACH || strncasecmp(p->ctype, "text/", 5) == 0;
    p->enc = smtpuv__choose_encoding(p->data, p->len, text, allow8);
    if (p->enc == SMTPUV__ENC_8BIT)
      c->eightbit = 1;
  }
  char B[3][BOUNDARY_HEX + 3];
  int tries = 0;
  do {
    if (tries++ == 8) {
      rc = SMTPUV_ELIMIT;
      goto fail;
    }
    if ((rc = make_boundaries(B)) != 0)
      goto fail;
  } while (boundary_clash(c, B));
  rc = build(c, B, date, domain);
  if (rc != 0)
    goto fail;
  /* size */
  int unknown = 0;
  uint64_t total = c->lit.len;
  for (size_t i = 0; i < c->nseg; i++)
    if (c->segs[i].p != NULL)
      total += part_out_size(c->segs[i].p, &unknown);
  c->size = unknown ? -1 : (int64_t)total;
  c->obuf = smtpuv__malloc(&c->mem, OBUF_SIZE);
  if (streamed)
    c->ibuf = smtpuv__malloc(&c->mem, IBUF_SIZE);
  if (c->obuf == NULL || (streamed && c->ibuf == NULL)) {
    rc = SMTPUV_ENOMEM;
    goto fail;
  }
  c->finished = 1;
  c->cur = c->segpos = c->opos = c->olen = c->ilen = 0;
  c->err = 0;
  return 0;
fail:
  unfinish(c);
  return rc;
}

/* ---- output -------------------------------------------------------------------- */

static long src_read(part *p, void *buf, size_t cap) {
  if (p->src == SRC_FILE) {
    for (;;) {
      ssize_t r = read(p->fd, buf, cap);
      if (r >= 0)
        return (long)r;
      if (errno != EINTR)
        return SMTPUV_EIO;
    }
  }
  long r = p->read(p->user, buf, cap);
  if (r == SMTPUV_EAGAIN)
    return r;
  if (r < 0 || (size_t)r > cap)
    return SMTPUV_EBODY;
  return r;
}

/* Encoded bytes of `p` into dst (room >= 80 unless 7bit/8bit): > 0, 0 at
   the end of the part, or a negative code. */
static long produce(smtpuv_compose *c, part *p, char *dst, size_t room) {
  if (p->enc == SMTPUV__ENC_7BIT || p->enc == SMTPUV__ENC_8BIT) {
    size_t k = p->len - p->pos < room ? p->len - p->pos : room;
    memcpy(dst, p->data + p->pos, k);
    p->pos += k;
    return (long)k;
  }
  if (p->enc == SMTPUV__ENC_QP)
    return (long)smtpuv__qp_encode(p->data, p->len, &p->pos, &p->col, dst,
                                   room);
  size_t maxin = (room - 2) / 78 * 57; /* whole lines that fit */
  if (p->src == SRC_MEM) {
    size_t k = p->len - p->pos < maxin ? p->len - p->pos : maxin;
    size_t o = smtpuv__b64_lines(p->data + p->pos, k, &p->lines, dst);
    p->pos += k;
    return (long)o;
  }
  while (c->ilen < 57 && !p->eof) {
    long r = src_read(p, c->ibuf + c->ilen, IBUF_SIZE - c->ilen);
    if (r < 0)
      return r;
    if (r == 0) {
      p->eof = 1;
      if (p->size >= 0 && p->in_done != (uint64_t)p->size)
        return SMTPUV_EBODY; /* fewer bytes than its size */
      break;
    }
    c->ilen += (size_t)r;
    p->in_done += (uint64_t)r;
    if (p->size >= 0 && p->in_done > (uint64_t)p->size)
      return SMTPUV_EBODY; /* more bytes than its size */
  }
  size_t avail = p->eof ? c->ilen : c->ilen / 57 * 57;
  size_t k = avail < maxin ? avail : maxin;
  size_t o = smtpuv__b64_lines(c->ibuf, k, &p->lines, dst);
  memmove(c->ibuf, c->ibuf + k, c->ilen - k);
  c->ilen -= k;
  return (long)o;
}

long smtpuv_compose_read(void *composer, void *buf, size_t cap) {
  smtpuv_compose *c = composer;
  if (c == NULL || buf == NULL || cap == 0)
    return SMTPUV_EINVAL;
  if (!c->finished)
    return SMTPUV_ESTATE;
  if (c->err != 0)
    return c->err;
  char *out = buf;
  size_t n = 0;
  while (n < cap) {
    if (c->opos < c->olen) {
      size_t k = c->olen - c->opos < cap - n ? c->olen - c->opos : cap - n;
      memcpy(out + n, c->obuf + c->opos, k);
      c->opos += k;
      n += k;
      continue;
    }
    if (c->cur >= c->nseg)
      break;
    seg *s = &c->segs[c->cur];
    if (s->p == NULL) {
      size_t left = s->len - c->segpos;
      size_t k = left < cap - n ? left : cap - n;
      memcpy(out + n, c->lit.p + s->off + c->segpos, k);
      c->segpos += k;
      n += k;
      if (c->segpos == s->len) {
        c->cur++;
        c->segpos = 0;
      }
      continue;
    }
    int direct = cap - n >= DIRECT_MIN || s->p->enc <= SMTPUV__ENC_8BIT;
    long r = direct ? produce(c, s->p, out + n, cap - n)
                    : produce(c, s->p, c->obuf, OBUF_SIZE);
    if (r == SMTPUV_EAGAIN)
      return n > 0 ? (long)n : SMTPUV_EAGAIN;
    if (r < 0) {
      c->err = (int)r;
      return r;
    }
    if (r == 0) {
      c->cur++;
      continue;
    }
    if (direct) {
      n += (size_t)r;
    } else {
      c->opos = 0;
      c->olen = (size_t)r;
    }
  }
  return (long)n;
}

int smtpuv_compose_rewind(void *composer) {
  smtpuv_compose *c = composer;
  if (c == NULL)
    return SMTPUV_EINVAL;
  if (!c->finished)
    return SMTPUV_ESTATE;
  for (size_t i = 0; i < c->nseg; i++) {
    part *p = c->segs[i].p;
    if (p == NULL || p->src == SRC_MEM)
      continue;
    if (p->src == SRC_CB && p->rewind == NULL)
      return SMTPUV_EINVAL;
  }
  for (size_t i = 0; i < c->nseg; i++) {
    part *p = c->segs[i].p;
    if (p == NULL)
      continue;
    p->pos = p->col = 0;
    p->in_done = p->lines = 0;
    p->eof = 0;
    int rc = 0;
    if (p->src == SRC_FILE && lseek(p->fd, 0, SEEK_SET) != 0)
      rc = SMTPUV_EIO;
    else if (p->src == SRC_CB && p->rewind(p->user) != 0)
      rc = SMTPUV_EBODY;
    if (rc != 0) {
      c->err = rc;
      return rc;
    }
  }
  c->cur = c->segpos = c->opos = c->olen = c->ilen = 0;
  c->err = 0;
  return 0;
}

int64_t smtpuv_compose_size(const smtpuv_compose *c) {
  return c != NULL && c->finished ? c->size : -1;
}

const char *smtpuv_compose_sender(const smtpuv_compose *c) {
  return c != NULL && c->finished ? c->sender : NULL;
}

const char *const *smtpuv_compose_recipients(const smtpuv_compose *c,
                                             size_t *n) {
  int ok = c != NULL && c->finished;
  if (n != NULL)
    *n = ok ? c->nrcpt : 0;
  return ok ? (const char *const *)c->rcpt : NULL;
}

int smtpuv_compose_8bit(const smtpuv_compose *c) {
  return c != NULL && c->finished && c->eightbit;
}

int smtpuv_compose_to_buffer(smtpuv_compose *c, char **out, size_t *len) {
  if (c == NULL || out == NULL)
    return SMTPUV_EINVAL;
  *out = NULL;
  int rc = smtpuv_compose_rewind(c);
  if (rc != 0)
    return rc;
  smtpuv__cbuf b;
  smtpuv__cbuf_init(&b, &c->mem);
  char chunk[16384];
  for (;;) {
    long r = smtpuv_compose_read(c, chunk, sizeof chunk);
    if (r == 0)
      break;
    if (r < 0) {
      smtpuv__cbuf_free(&b);
      return (int)r;
    }
    smtpuv__cbuf_put(&b, chunk, (size_t)r);
  }
  if (b.p == NULL)
    smtpuv__cbuf_put(&b, "", 0);
  if (b.err != 0 || (b.p == NULL && (b.p = smtpuv__calloc(&c->mem, 1, 1)) ==
                                        NULL)) {
    smtpuv__cbuf_free(&b);
    return SMTPUV_ENOMEM;
  }
  rc = smtpuv_compose_rewind(c); /* ready to be read (sent) again */
  if (rc != 0) {
    smtpuv__cbuf_free(&b);
    return rc;
  }
  *out = b.p;
  if (len != NULL)
    *len = b.len;
  return 0;
}

void smtpuv_compose_buffer_free(const smtpuv_mem *mem, char *buf) {
  smtpuv_mem mm;
  smtpuv__mem_init(&mm, mem);
  smtpuv__free(&mm, buf);
}

/* SPDX-License-Identifier: MIT */
/* smtpuv_compose_finish(): the checks, the envelope, the encodings, the
 * boundaries, the header block and the MIME tree as segments, the size. */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/rand.h>

#include "compose/compose_obj.h"

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
  smtpuv__compose_hdr h;
  smtpuv__compose_hdr_begin(&h, &c->lit, name);
  for (size_t i = 0; i < c->nmb; i++) {
    const mailbox *m = &c->mb[i];
    if (m->field != field)
      continue;
    k++;
    char t[SMTPUV_MAX_ADDRESS + 4];
    int len;
    if (m->name != NULL) {
      smtpuv__compose_hdr_phrase(&h, m->name, m->name_len);
      len = snprintf(t, sizeof t, "<%s>%s", m->addr, k < n ? "," : "");
    } else {
      len = snprintf(t, sizeof t, "%s%s", m->addr, k < n ? "," : "");
    }
    smtpuv__compose_hdr_token(&h, t, (size_t)len);
  }
  smtpuv__compose_hdr_end(&h);
}

static void put_ids(smtpuv_compose *c, const char *name, const char *ids) {
  if (ids == NULL)
    return;
  smtpuv__compose_hdr h;
  smtpuv__compose_hdr_begin(&h, &c->lit, name);
  const char *s = ids;
  while (*s) {
    const char *e = strchr(s, ' ');
    size_t n = e ? (size_t)(e - s) : strlen(s);
    smtpuv__compose_hdr_token(&h, s, n);
    s += n;
    if (*s == ' ')
      s++;
  }
  smtpuv__compose_hdr_end(&h);
}

static void put_words(smtpuv__compose_hdr *h, const char *s) {
  /* split at blanks; the value was checked */
  while (*s) {
    while (*s == ' ')
      s++;
    size_t n = strcspn(s, " ");
    if (n > 0)
      smtpuv__compose_hdr_token(h, s, n);
    s += n;
  }
}

static const char *const enc_names[] = {"7bit", "8bit", "quoted-printable",
                                        "base64"};

static void put_part_headers(smtpuv_compose *c, const part *p) {
  smtpuv__compose_hdr h;
  smtpuv__compose_hdr_begin(&h, &c->lit, "Content-Type");
  if (p->kind == P_ATTACH) {
    put_words(&h, p->ctype);
  } else {
    smtpuv__compose_hdr_token(&h, p->kind == P_TEXT ? "text/plain;" : "text/html;",
                      p->kind == P_TEXT ? 11 : 10);
    smtpuv__compose_hdr_token(&h, "charset=utf-8", 13);
  }
  smtpuv__compose_hdr_end(&h);
  smtpuv__compose_buf_puts(&c->lit, "Content-Transfer-Encoding: ");
  smtpuv__compose_buf_puts(&c->lit, enc_names[p->enc]);
  smtpuv__compose_buf_puts(&c->lit, "\r\n");
  if (p->kind != P_ATTACH)
    return;
  smtpuv__compose_hdr_begin(&h, &c->lit, "Content-Disposition");
  const char *d = p->cid != NULL ? "inline" : "attachment";
  if (p->filename != NULL) {
    char t[16];
    int n = snprintf(t, sizeof t, "%s;", d);
    smtpuv__compose_hdr_token(&h, t, (size_t)n);
    smtpuv__compose_hdr_filename(&h, p->filename);
  } else {
    smtpuv__compose_hdr_token(&h, d, strlen(d));
  }
  smtpuv__compose_hdr_end(&h);
  if (p->cid != NULL) {
    smtpuv__compose_hdr_begin(&h, &c->lit, "Content-ID");
    char t[210];
    int n = snprintf(t, sizeof t, "<%s>", p->cid);
    smtpuv__compose_hdr_token(&h, t, (size_t)n);
    smtpuv__compose_hdr_end(&h);
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
  smtpuv__compose_hdr h;
  smtpuv__compose_hdr_begin(&h, &c->lit, "Content-Type");
  char t[64];
  int len = snprintf(t, sizeof t, "multipart/%s;", n->sub);
  smtpuv__compose_hdr_token(&h, t, (size_t)len);
  len = snprintf(t, sizeof t, "boundary=\"%s\"", n->boundary);
  smtpuv__compose_hdr_token(&h, t, (size_t)len);
  smtpuv__compose_hdr_end(&h);
}

static void put_entity_body(smtpuv_compose *c, const node *n) {
  smtpuv__compose_buf_puts(&c->lit, "\r\n");
  if (n->leaf != NULL) {
    lit_then_part(c, n->leaf);
    return;
  }
  for (size_t i = 0; i < n->nkids; i++) {
    smtpuv__compose_buf_puts(&c->lit, i == 0 ? "--" : "\r\n--");
    smtpuv__compose_buf_puts(&c->lit, n->boundary);
    smtpuv__compose_buf_puts(&c->lit, "\r\n");
    put_entity_headers(c, &n->kids[i]);
    put_entity_body(c, &n->kids[i]);
  }
  smtpuv__compose_buf_puts(&c->lit, "\r\n--");
  smtpuv__compose_buf_puts(&c->lit, n->boundary);
  smtpuv__compose_buf_puts(&c->lit, "--");
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
      if (p->src == SRC_MEM && p->enc <= SMTPUV__COMPOSE_ENC_8BIT &&
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
  case SMTPUV__COMPOSE_ENC_QP:
    return smtpuv__compose_qp_size(p->data, p->len);
  case SMTPUV__COMPOSE_ENC_B64:
    return smtpuv__compose_b64_size((uint64_t)p->size);
  default:
    return p->len;
  }
}

static int build(smtpuv_compose *c, char B[3][BOUNDARY_HEX + 3],
                 const char *date, const char *domain) {
  smtpuv__compose_buf *L = &c->lit;
  add_seg(c, NULL);
  smtpuv__compose_buf_puts(L, "Date: ");
  smtpuv__compose_buf_puts(L, date);
  smtpuv__compose_buf_puts(L, "\r\n");
  put_mailboxes(c, SMTPUV_COMPOSE_FROM, "From");
  put_mailboxes(c, SMTPUV_COMPOSE_SENDER, "Sender");
  put_mailboxes(c, SMTPUV_COMPOSE_REPLY_TO, "Reply-To");
  put_mailboxes(c, SMTPUV_COMPOSE_TO, "To");
  put_mailboxes(c, SMTPUV_COMPOSE_CC, "Cc");
  if (c->subject != NULL) {
    smtpuv__compose_hdr h;
    smtpuv__compose_hdr_begin(&h, L, "Subject");
    smtpuv__compose_hdr_unstructured(&h, c->subject, c->subject_len);
    smtpuv__compose_hdr_end(&h);
  }
  smtpuv__compose_buf_puts(L, "Message-ID: ");
  int rc = smtpuv__compose_msgid_make(L, domain);
  if (rc != 0)
    return rc;
  smtpuv__compose_buf_puts(L, "\r\n");
  put_ids(c, "In-Reply-To", c->in_reply_to);
  put_ids(c, "References", c->references);
  for (size_t i = 0; i < c->nxh; i++) {
    smtpuv__compose_hdr h;
    smtpuv__compose_hdr_begin(&h, L, c->xh[i].name);
    smtpuv__compose_hdr_unstructured(&h, c->xh[i].value, c->xh[i].value_len);
    smtpuv__compose_hdr_end(&h);
  }
  smtpuv__compose_buf_puts(L, "MIME-Version: 1.0\r\n");

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
    smtpuv__compose_buf_puts(L, "\r\n");
  smtpuv__free(&c->mem, pool);
  if (L->err != 0 || c->seg_err != 0)
    return SMTPUV_ENOMEM;
  seg *last = &c->segs[c->nseg - 1];
  if (last->p == NULL)
    last->len = L->len - last->off;
  return 0;
}

int smtpuv_compose_finish(smtpuv_compose *c) {
  int rc = smtpuv__compose_open_check(c);
  if (rc != 0)
    return rc;
  rc = envelope(c);
  if (rc != 0)
    goto fail;
  const char *domain = c->mid_domain;
  if (domain == NULL) {
    domain = field_domain(c->sender);
    if (!smtpuv__compose_domain_ok(domain)) {
      rc = SMTPUV_EHEADER;
      goto fail;
    }
  }
  char date[40];
  if (c->has_date) {
    rc = smtpuv__compose_date_format(c->date, c->date_off, date);
  } else {
    time_t now = time(NULL);
    rc = now == (time_t)-1 ? SMTPUV_EIO
                           : smtpuv__compose_date_format((int64_t)now, 0, date);
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
      p->enc = SMTPUV__COMPOSE_ENC_B64;
      streamed = 1;
      continue;
    }
    int text = p->kind != P_ATTACH || strncasecmp(p->ctype, "text/", 5) == 0;
    p->enc = smtpuv__compose_choose_encoding(p->data, p->len, text, allow8);
    if (p->enc == SMTPUV__COMPOSE_ENC_8BIT)
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
  smtpuv__compose_unfinish(c);
  return rc;
}

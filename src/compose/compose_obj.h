/* SPDX-License-Identifier: MIT */
/* The composer object (src/compose/compose.c: setters, finish.c: building
 * the message, output.c: reading it), shared by those three files. */
#ifndef SMTPUV_SRC_COMPOSE_OBJ_H
#define SMTPUV_SRC_COMPOSE_OBJ_H

#include "compose/compose_int.h"

#define IBUF_SIZE (57 * 256) /* streamed source bytes in flight */
#define OBUF_SIZE 16384      /* encoded bytes for a small read */
#define DIRECT_MIN 4096      /* encode straight into a caller buffer this big */
#define BOUNDARY_HEX 28

enum { SMTPUV__COMPOSE_SRC_MEM, SMTPUV__COMPOSE_SRC_FILE, SMTPUV__COMPOSE_SRC_CB };
enum { SMTPUV__COMPOSE_P_TEXT, SMTPUV__COMPOSE_P_HTML, SMTPUV__COMPOSE_P_ATTACH };

typedef struct smtpuv__compose_part {
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
} smtpuv__compose_part;

typedef struct smtpuv__compose_mailbox {
  int field;
  char *name; /* NULL: none */
  size_t name_len;
  char *addr;
} smtpuv__compose_mailbox;

typedef struct smtpuv__compose_xheader {
  char *name, *value;
  size_t value_len;
} smtpuv__compose_xheader;

typedef struct smtpuv__compose_seg {
  size_t off, len; /* literal: a range of `lit` */
  smtpuv__compose_part *p; /* else a part's encoded content */
} smtpuv__compose_seg;

struct smtpuv_compose {
  smtpuv_mem mem;
  unsigned flags;
  int finished;
  smtpuv__compose_mailbox *mb;
  size_t nmb;
  smtpuv__compose_xheader *xh;
  size_t nxh;
  char *subject;
  size_t subject_len;
  int has_date, date_off;
  int64_t date;
  char *mid_domain, *in_reply_to, *references;
  smtpuv__compose_part *text, *html;
  smtpuv__compose_part **att;
  size_t natt;
  smtpuv__compose_part empty; /* the body of a message without any */
  /* made by finish */
  smtpuv__compose_buf lit;
  smtpuv__compose_seg *segs;
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

/* Undo smtpuv_compose_finish(): back to an open composer. */
void smtpuv__compose_unfinish(smtpuv_compose *c);
/* 0, SMTPUV_EINVAL (NULL) or SMTPUV_ESTATE (finished). */
int smtpuv__compose_open_check(smtpuv_compose *c);

#endif

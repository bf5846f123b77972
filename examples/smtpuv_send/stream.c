/* SPDX-License-Identifier: MIT */
/* The message on standard input, streamed: the header block is read first
 * (at most CLI_HEADER_MAX bytes) so -t, --read-envelope-from, Bcc removal
 * and the added fields can work on it; the fields to leave out are found
 * with the library's scanner (smtpuv_header_next(), the one
 * smtpuv_message_body() uses to leave out Bcc); then the body flows from
 * the input to the client in the client's own chunks (smtpuv_body
 * streaming source), never held whole. Memory: the header block plus one
 * read. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

#define READ_CHUNK 65536

long cli_fd_input(void *ctx, void *buf, size_t cap) {
  int fd = *(const int *)ctx;
  for (;;) {
    ssize_t r = read(fd, buf, cap);
    if (r < 0 && errno == EINTR)
      continue;
    return r < 0 ? -1 : (long)r;
  }
}

void cli_msg_init(cli_msg *m, cli_in_fn in, void *ctx) {
  memset(m, 0, sizeof *m);
  m->in = in;
  m->in_ctx = ctx;
}

void cli_msg_free(cli_msg *m) {
  free(m->buf);
  cli_buf_free(&m->head);
  m->buf = NULL;
}

/* Where the header fields end if that is known from buf[0..len): 1 (and
   `*end`), or 0 when more input is needed to tell. */
static int header_end(const cli_msg *m, size_t *end) {
  size_t pos = 0;
  smtpuv_header_field f;
  while (smtpuv_header_next(m->buf, m->len, &pos, &f) == 1)
    ;
  /* the line at `pos` (the empty line, or one that is not a field) must be
     complete: a field continued on the next line would look the same */
  if (m->eof || (pos < m->len && memchr(m->buf + pos, '\n', m->len - pos))) {
    *end = pos;
    return 1;
  }
  return 0;
}

int cli_msg_read_header(cli_msg *m, char *err, size_t errlen) {
  for (;;) {
    size_t end;
    if (m->len > 0 || m->eof) {
      if (header_end(m, &end)) {
        m->hdr_end = end;
        break;
      }
    }
    if (m->len >= CLI_HEADER_MAX) {
      snprintf(err, errlen,
               "the header block is longer than %d KiB (" CLI_NAME
               "'s limit), or the message has no empty line after it",
               CLI_HEADER_MAX / 1024);
      return CLI_EX_DATAERR;
    }
    if (m->cap - m->len < READ_CHUNK) {
      size_t cap = m->cap ? m->cap * 2 : READ_CHUNK * 2;
      char *nb = realloc(m->buf, cap);
      if (nb == NULL)
        return CLI_EX_OSERR;
      m->buf = nb;
      m->cap = cap;
    }
    long r = m->in(m->in_ctx, m->buf + m->len, READ_CHUNK);
    if (r < 0) {
      snprintf(err, errlen, "cannot read the message: %s", strerror(errno));
      return CLI_EX_IOERR;
    }
    if (r == 0)
      m->eof = 1;
    m->len += (size_t)r;
  }
  if (m->len == 0) {
    snprintf(err, errlen, "the message is empty (no header fields, no body)");
    return CLI_EX_DATAERR;
  }
  if (m->hdr_end == 0) {
    snprintf(err, errlen, "the message has no header fields");
    return CLI_EX_DATAERR;
  }
  return 0;
}

int cli_msg_has_field(const cli_msg *m, const char *name) {
  size_t pos = 0;
  smtpuv_header_field f;
  while (smtpuv_header_next(m->buf, m->hdr_end, &pos, &f) == 1)
    if (smtpuv_header_field_is(&f, name))
      return 1;
  return 0;
}

static int dropped(const smtpuv_header_field *f, const cli_rewrite *w) {
  if (w->remove_bcc && (smtpuv_header_field_is(f, "Bcc") ||
                        smtpuv_header_field_is(f, "Resent-Bcc")))
    return 1;
  if (w->remove_from && smtpuv_header_field_is(f, "From"))
    return 1;
  if (w->undisclosed &&
      (smtpuv_header_field_is(f, "To") || smtpuv_header_field_is(f, "Cc") ||
       smtpuv_header_field_is(f, "Bcc")))
    return 1;
  return 0;
}

int cli_msg_rewrite(cli_msg *m, const cli_rewrite *w) {
  m->head.len = 0;
  if (w->prepend_len > 0)
    cli_buf_add(&m->head, w->prepend, w->prepend_len);
  size_t pos = 0, kept = 0;
  smtpuv_header_field f;
  while (smtpuv_header_next(m->buf, m->hdr_end, &pos, &f) == 1) {
    if (!dropped(&f, w))
      continue;
    cli_buf_add(&m->head, m->buf + kept, f.start - kept);
    kept = f.end;
  }
  cli_buf_add(&m->head, m->buf + kept, m->hdr_end - kept);
  m->head_pos = 0;
  m->buf_pos = m->hdr_end;
  return m->head.oom ? CLI_EX_OSERR : 0;
}

long cli_msg_read(void *user, void *buf, size_t cap) {
  cli_msg *m = user;
  size_t n;
  if (m->head_pos < m->head.len) {
    n = m->head.len - m->head_pos;
    if (n > cap)
      n = cap;
    memcpy(buf, m->head.p + m->head_pos, n);
    m->head_pos += n;
  } else if (m->buf_pos < m->len) {
    n = m->len - m->buf_pos;
    if (n > cap)
      n = cap;
    memcpy(buf, m->buf + m->buf_pos, n);
    m->buf_pos += n;
    if (m->buf_pos == m->len && m->len > READ_CHUNK * 2) {
      /* the header block is out: give its memory back */
      free(m->buf);
      m->buf = NULL;
      m->len = m->buf_pos = m->cap = 0;
    }
  } else if (m->eof) {
    return 0;
  } else {
    long r = m->in(m->in_ctx, buf, cap);
    if (r < 0) {
      m->in_errno = errno;
      m->in_error = 1;
      return -1;
    }
    if (r == 0) {
      m->eof = 1;
      return 0;
    }
    n = (size_t)r;
  }
  m->sent += n;
  return (long)n;
}

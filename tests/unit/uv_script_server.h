/* SPDX-License-Identifier: MIT */
/* Header-only (include it once per test program). A tiny scripted SMTP server on 127.0.0.1 running on the test's own libuv
 * loop, for the client's unit tests. Default behaviour: greeting, EHLO with
 * the configured extensions, 250 to MAIL/RCPT/RSET/NOOP, 354 to DATA, 250
 * to the end of data, 221 to QUIT; "BDAT n [LAST]" takes n bytes of body
 * and answers 250 (the LAST chunk counts as the end of data); a hook can
 * change any reply, stay silent or close. Everything received is kept in a
 * transcript. */
#ifndef SMTPUV_UV_SCRIPT_SERVER_H
#define SMTPUV_UV_SCRIPT_SERVER_H

#include <stddef.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#define SS_STATIC static __attribute__((unused))

typedef struct ss_server ss_server;

enum {
  SS_DEFAULT = 0, /* reply as usual */
  SS_REPLY,       /* send `reply` (may be "" for silence) */
  SS_CLOSE        /* close the connection without replying */
};

/* Called for each command line (without CRLF) and with line == NULL at the
   end of a message body (the reply to "."). */
typedef int (*ss_hook)(ss_server *s, const char *line, char *reply,
                       size_t cap);

struct ss_server {
  uv_loop_t *loop;
  uv_tcp_t listener;
  int port;
  const char *greeting; /* default "220 test ESMTP\r\n"; NULL: silent */
  const char *ehlo;     /* extension lines after "250-test", CRLF-ended,
                           without the code, e.g. "PIPELINING\r\n8BITMIME\r\n" */
  ss_hook hook;
  void *data;

  /* state */
  uv_tcp_t *conn;       /* current connection or NULL */
  int connections;      /* accepted so far */
  int messages;         /* bodies received */
  int in_data;
  size_t bdat_left;     /* body bytes of the current BDAT chunk still due */
  int bdat_last;        /* it is the LAST chunk */
  int in_bdat;          /* a BDAT transaction has started (body kept) */
  char line[4096];
  size_t linelen;
  /* transcript: "C: <line>\n" per command, "#open\n", "#close\n",
     "B: <n>\n" per body (after "." or the LAST chunk) */
  char *transcript;
  size_t tlen, tcap;
  /* the last body as received (dot-unstuffed, CRLF kept) */
  char *body;
  size_t blen, bcap;
  int closing;
};

/* Listen on 127.0.0.1:0. Returns 0. */
SS_STATIC int ss_start(ss_server *s, uv_loop_t *loop);
/* Close the listener and any connection (run the loop afterwards). */
SS_STATIC void ss_stop(ss_server *s);
/* Free the transcript and body (after the loop closed the handles). */
SS_STATIC void ss_free(ss_server *s);
/* Send raw bytes on the current connection. */
SS_STATIC void ss_send(ss_server *s, const char *text);
/* Close the current connection. */
SS_STATIC void ss_close_conn(ss_server *s);
/* Occurrences of `needle` in the transcript. */
SS_STATIC int ss_count(const ss_server *s, const char *needle);

/* ---- implementation (header-only: test code) ---- */


SS_STATIC void ss__append(char **buf, size_t *len, size_t *cap, const char *p,
                   size_t n) {
  if (*len + n + 1 > *cap) {
    size_t c = *cap ? *cap : 256;
    while (c < *len + n + 1)
      c *= 2;
    *buf = realloc(*buf, c);
    *cap = c;
  }
  memcpy(*buf + *len, p, n);
  *len += n;
  (*buf)[*len] = '\0';
}

SS_STATIC void ss__tr(ss_server *s, const char *p) {
  ss__append(&s->transcript, &s->tlen, &s->tcap, p, strlen(p));
}

typedef struct ss__wreq {
  uv_write_t req;
  char data[];
} ss__wreq;

SS_STATIC void ss__on_written(uv_write_t *req, int status) {
  (void)status;
  free(req);
}

SS_STATIC void ss_send(ss_server *s, const char *text) {
  size_t n = strlen(text);
  if (s->conn == NULL || n == 0)
    return;
  ss__wreq *w = malloc(sizeof *w + n);
  memcpy(w->data, text, n);
  uv_buf_t b = uv_buf_init(w->data, (unsigned)n);
  if (uv_write(&w->req, (uv_stream_t *)s->conn, &b, 1, ss__on_written) != 0)
    free(w);
}

SS_STATIC void ss__on_conn_closed(uv_handle_t *h) { free(h); }

SS_STATIC void ss_close_conn(ss_server *s) {
  if (s->conn == NULL)
    return;
  ss__tr(s, "#close\n");
  uv_close((uv_handle_t *)s->conn, ss__on_conn_closed);
  s->conn = NULL;
  s->in_data = 0;
  s->bdat_left = 0;
  s->in_bdat = 0;
  s->linelen = 0;
}

SS_STATIC void ss__reply_default(ss_server *s, const char *line, char *out,
                          size_t cap) {
  if (line == NULL) {
    snprintf(out, cap, "250 2.0.0 Ok: queued as %d\r\n", s->messages);
    return;
  }
  char verb[8] = {0};
  for (int i = 0; i < 7 && line[i] && line[i] != ' '; i++)
    verb[i] = (char)(line[i] >= 'a' && line[i] <= 'z' ? line[i] - 32 : line[i]);
  if (!strcmp(verb, "EHLO")) {
    size_t n = (size_t)snprintf(out, cap, "250%stest\r\n",
                                s->ehlo && *s->ehlo ? "-" : " ");
    const char *e = s->ehlo ? s->ehlo : "";
    while (*e && n < cap) {
      const char *nl = strstr(e, "\r\n");
      size_t l = nl ? (size_t)(nl - e) : strlen(e);
      const char *next = nl ? nl + 2 : e + l;
      n += (size_t)snprintf(out + n, cap - n, "250%c%.*s\r\n",
                            *next ? '-' : ' ', (int)l, e);
      e = next;
    }
  } else if (!strcmp(verb, "HELO")) {
    snprintf(out, cap, "250 test\r\n");
  } else if (!strcmp(verb, "DATA")) {
    snprintf(out, cap, "354 go ahead\r\n");
  } else if (!strcmp(verb, "QUIT")) {
    snprintf(out, cap, "221 2.0.0 bye\r\n");
  } else if (!strcmp(verb, "AUTH")) {
    snprintf(out, cap, "235 2.7.0 ok\r\n");
  } else if (!strcmp(verb, "MAIL") || !strcmp(verb, "RCPT") ||
             !strcmp(verb, "RSET") || !strcmp(verb, "NOOP")) {
    snprintf(out, cap, "250 2.0.0 Ok\r\n");
  } else {
    snprintf(out, cap, "502 5.5.2 unknown command\r\n");
  }
}

SS_STATIC void ss__handle_line(ss_server *s, const char *line) {
  char reply[4096];
  reply[0] = '\0';
  int what = s->hook ? s->hook(s, line, reply, sizeof reply) : SS_DEFAULT;
  if (s->conn == NULL)
    return; /* the hook closed it */
  if (what == SS_CLOSE) {
    ss_close_conn(s);
    return;
  }
  if (what == SS_DEFAULT)
    ss__reply_default(s, line, reply, sizeof reply);
  ss_send(s, reply);
  if (line != NULL && (line[0] == 'Q' || line[0] == 'q') &&
      what == SS_DEFAULT && strlen(line) == 4)
    ss_close_conn(s);
  else if (line != NULL && what == SS_DEFAULT &&
           (!strncmp(line, "DATA", 4) || !strncmp(line, "data", 4)))
    s->in_data = 1;
}

/* A BDAT chunk is in: its reply ("." semantics for the LAST one). */
SS_STATIC void ss__bdat_done(ss_server *s) {
  if (!s->bdat_last) {
    ss_send(s, "250 2.0.0 chunk ok\r\n");
    return;
  }
  s->in_bdat = 0;
  s->messages++;
  char m[64];
  snprintf(m, sizeof m, "B: %zu\n", s->blen);
  ss__tr(s, m);
  ss__handle_line(s, NULL);
}

SS_STATIC void ss__on_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b) {
  (void)h;
  b->base = malloc(sz);
  b->len = sz;
}

SS_STATIC void ss__on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
  ss_server *s = st->data;
  if (n < 0) {
    if ((uv_tcp_t *)st == s->conn)
      ss_close_conn(s);
    free(b->base);
    return;
  }
  for (ssize_t i = 0; i < n && (uv_tcp_t *)st == s->conn; i++) {
    if (s->bdat_left > 0) {
      /* chunk bytes: kept as they are */
      size_t take = (size_t)(n - i) < s->bdat_left ? (size_t)(n - i)
                                                   : s->bdat_left;
      ss__append(&s->body, &s->blen, &s->bcap, b->base + i, take);
      s->bdat_left -= take;
      i += (ssize_t)take - 1;
      if (s->bdat_left == 0)
        ss__bdat_done(s);
      continue;
    }
    char c = b->base[i];
    if (s->linelen < sizeof s->line - 1)
      s->line[s->linelen++] = c;
    if (c != '\n')
      continue;
    s->line[s->linelen] = '\0';
    size_t l = s->linelen;
    s->linelen = 0;
    if (s->in_data) {
      if (!strcmp(s->line, ".\r\n")) {
        s->in_data = 0;
        s->messages++;
        char m[64];
        snprintf(m, sizeof m, "B: %zu\n", s->blen);
        ss__tr(s, m);
        ss__handle_line(s, NULL);
        continue;
      }
      const char *p = s->line[0] == '.' ? s->line + 1 : s->line;
      if (s->blen == (size_t)-1)
        s->blen = 0;
      ss__append(&s->body, &s->blen, &s->bcap, p, l - (size_t)(p - s->line));
      continue;
    }
    while (l > 0 && (s->line[l - 1] == '\n' || s->line[l - 1] == '\r'))
      s->line[--l] = '\0';
    ss__tr(s, "C: ");
    ss__tr(s, s->line);
    ss__tr(s, "\n");
    if (!strncmp(s->line, "DATA", 4))
      s->blen = 0;
    if (!strncmp(s->line, "BDAT ", 5)) {
      if (!s->in_bdat)
        s->blen = 0;
      s->in_bdat = 1;
      s->bdat_left = strtoul(s->line + 5, NULL, 10);
      s->bdat_last = strstr(s->line, " LAST") != NULL;
      if (s->bdat_left == 0)
        ss__bdat_done(s);
      continue;
    }
    if (!strncmp(s->line, "RSET", 4))
      s->in_bdat = 0;
    ss__handle_line(s, s->line);
  }
  free(b->base);
}

SS_STATIC void ss__on_connection(uv_stream_t *l, int status) {
  ss_server *s = l->data;
  if (status < 0)
    return;
  uv_tcp_t *c = malloc(sizeof *c);
  uv_tcp_init(s->loop, c);
  if (uv_accept(l, (uv_stream_t *)c) != 0) {
    uv_close((uv_handle_t *)c, ss__on_conn_closed);
    return;
  }
  if (s->conn != NULL)
    ss_close_conn(s); /* one at a time */
  s->conn = c;
  c->data = s;
  s->connections++;
  s->in_data = 0;
  s->linelen = 0;
  ss__tr(s, "#open\n");
  uv_read_start((uv_stream_t *)c, ss__on_alloc, ss__on_read);
  if (s->greeting != NULL)
    ss_send(s, s->greeting);
}

SS_STATIC int ss_start(ss_server *s, uv_loop_t *loop) {
  s->loop = loop;
  if (s->greeting == NULL && !s->closing)
    s->greeting = "220 test ESMTP\r\n";
  uv_tcp_init(loop, &s->listener);
  s->listener.data = s;
  struct sockaddr_in a;
  uv_ip4_addr("127.0.0.1", 0, &a);
  if (uv_tcp_bind(&s->listener, (struct sockaddr *)&a, 0) != 0)
    return -1;
  if (uv_listen((uv_stream_t *)&s->listener, 16, ss__on_connection) != 0)
    return -1;
  struct sockaddr_in got;
  int len = sizeof got;
  uv_tcp_getsockname(&s->listener, (struct sockaddr *)&got, &len);
  s->port = ntohs(got.sin_port);
  ss__tr(s, "");
  return 0;
}

SS_STATIC void ss_stop(ss_server *s) {
  ss_close_conn(s);
  if (!uv_is_closing((uv_handle_t *)&s->listener))
    uv_close((uv_handle_t *)&s->listener, NULL);
}

SS_STATIC void ss_free(ss_server *s) {
  free(s->transcript);
  free(s->body);
  s->transcript = s->body = NULL;
}

SS_STATIC int ss_count(const ss_server *s, const char *needle) {
  int n = 0;
  const char *p = s->transcript;
  while (p != NULL && (p = strstr(p, needle)) != NULL) {
    n++;
    p += strlen(needle);
  }
  return n;
}

#endif

/* SPDX-License-Identifier: MIT */
/* A growable byte buffer and the --json output (RFC 8259). Server texts are
 * arbitrary bytes: control characters are escaped and anything that is not
 * well-formed UTF-8 (overlongs, surrogates, > U+10FFFF, truncated
 * sequences) becomes U+FFFD, so the output always parses. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

void cli_buf_free(cli_buf *b) {
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}

static int reserve(cli_buf *b, size_t more) {
  if (b->oom)
    return -1;
  if (more > ((size_t)-1) / 2 - b->len) {
    b->oom = 1;
    return -1;
  }
  size_t need = b->len + more + 1;
  if (need <= b->cap)
    return 0;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < need)
    cap *= 2;
  char *p = realloc(b->p, cap);
  if (p == NULL) {
    b->oom = 1;
    return -1;
  }
  b->p = p;
  b->cap = cap;
  return 0;
}

void cli_buf_add(cli_buf *b, const void *s, size_t n) {
  if (reserve(b, n) != 0)
    return;
  if (n > 0)
    memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

void cli_buf_puts(cli_buf *b, const char *s) { cli_buf_add(b, s, strlen(s)); }

void cli_buf_printf(cli_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0 || reserve(b, (size_t)n) != 0)
    return;
  va_start(ap, fmt);
  vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

/* Length of the well-formed UTF-8 sequence at s (1..4), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n) {
  unsigned c = s[0];
  size_t len;
  unsigned min;
  if (c < 0x80)
    return 1;
  if (c >= 0xC2 && c <= 0xDF)
    len = 2, min = 0x80;
  else if (c >= 0xE0 && c <= 0xEF)
    len = 3, min = 0x800;
  else if (c >= 0xF0 && c <= 0xF4)
    len = 4, min = 0x10000;
  else
    return 0;
  if (n < len)
    return 0;
  unsigned cp = c & (0x3Fu >> (len - 1));
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80)
      return 0;
    cp = (cp << 6) | (s[i] & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
    return 0;
  return len;
}

void cli_json_str(cli_buf *b, const char *s, size_t n) {
  if (s == NULL) {
    cli_buf_puts(b, "null");
    return;
  }
  const unsigned char *p = (const unsigned char *)s;
  cli_buf_add(b, "\"", 1);
  size_t i = 0;
  while (i < n) {
    /* copy a run of plain characters at once */
    size_t j = i;
    while (j < n && p[j] >= 0x20 && p[j] < 0x80 && p[j] != '"' &&
           p[j] != '\\')
      j++;
    if (j > i) {
      cli_buf_add(b, p + i, j - i);
      i = j;
      continue;
    }
    unsigned c = p[i];
    if (c == '"' || c == '\\') {
      char e[2] = {'\\', (char)c};
      cli_buf_add(b, e, 2);
      i++;
    } else if (c < 0x20) {
      switch (c) {
      case '\n':
        cli_buf_add(b, "\\n", 2);
        break;
      case '\r':
        cli_buf_add(b, "\\r", 2);
        break;
      case '\t':
        cli_buf_add(b, "\\t", 2);
        break;
      case '\b':
        cli_buf_add(b, "\\b", 2);
        break;
      case '\f':
        cli_buf_add(b, "\\f", 2);
        break;
      default:
        cli_buf_printf(b, "\\u%04x", c);
      }
      i++;
    } else {
      size_t len = utf8_len(p + i, n - i);
      if (len == 0) {
        cli_buf_add(b, "\\ufffd", 6);
        i++;
      } else {
        cli_buf_add(b, p + i, len);
        i += len;
      }
    }
  }
  cli_buf_add(b, "\"", 1);
}

void cli_json_cstr(cli_buf *b, const char *s) {
  cli_json_str(b, s, s ? strlen(s) : 0);
}

static const char *status_word(smtpuv_send_status s) {
  switch (s) {
  case SMTPUV_SEND_SENT:
    return "sent";
  case SMTPUV_SEND_UNKNOWN:
    return "unknown";
  case SMTPUV_SEND_CANCELED:
    return "canceled";
  default:
    return "failed";
  }
}

static void json_error_name(cli_buf *b, int err) {
  if (err == 0)
    cli_buf_puts(b, "null");
  else
    cli_json_cstr(b, smtpuv_err_name(err));
}

const char *cli_reply_text(const char *text, const char *enhanced) {
  size_t n = enhanced ? strlen(enhanced) : 0;
  if (text != NULL && n > 0 && strncmp(text, enhanced, n) == 0 &&
      (text[n] == ' ' || text[n] == '\0'))
    return text[n] ? text + n + 1 : text + n;
  return text;
}

void cli_json_result(cli_buf *b, const smtpuv_send_result *r, int exit_code) {
  cli_buf_printf(b, "{\"status\":\"%s\",\"error\":", status_word(r->status));
  json_error_name(b, r->error);
  cli_buf_puts(b, ",\"phase\":");
  cli_json_cstr(b, smtpuv_phase_name(r->phase));
  cli_buf_puts(b, ",\"message\":");
  cli_json_cstr(b, r->message ? r->message : "");
  cli_buf_puts(b, ",\"reply\":");
  if (r->reply_code == 0) {
    cli_buf_puts(b, "null");
  } else {
    cli_buf_printf(b, "{\"code\":%d,\"enhanced\":", r->reply_code);
    cli_json_cstr(b, r->reply_enhanced ? r->reply_enhanced : "");
    cli_buf_puts(b, ",\"text\":");
    cli_json_cstr(b, r->reply_text ? cli_reply_text(r->reply_text,
                                                    r->reply_enhanced)
                                   : "");
    cli_buf_puts(b, "}");
  }
  cli_buf_puts(b, ",\"recipients\":[");
  for (size_t i = 0; i < r->nrecipients; i++) {
    const smtpuv_rcpt_result *rr = &r->recipients[i];
    if (i > 0)
      cli_buf_puts(b, ",");
    cli_buf_puts(b, "{\"address\":");
    cli_json_cstr(b, rr->address ? rr->address : "");
    cli_buf_printf(b, ",\"accepted\":%s,\"code\":%d,\"enhanced\":",
                   rr->accepted ? "true" : "false", rr->code);
    cli_json_cstr(b, rr->enhanced ? rr->enhanced : "");
    cli_buf_puts(b, ",\"text\":");
    cli_json_cstr(b, rr->text ? cli_reply_text(rr->text, rr->enhanced) : "");
    cli_buf_puts(b, "}");
  }
  cli_buf_puts(b, "],\"tls\":");
  cli_json_cstr(b, r->tls);
  cli_buf_printf(b, ",\"attempts\":%u,\"exit\":%d,\"exit_name\":\"%s\"}\n",
                 r->attempts, exit_code, cli_exit_name(exit_code));
}

void cli_json_error(cli_buf *b, int err, const char *message, int exit_code) {
  cli_buf_puts(b, "{\"status\":\"failed\",\"error\":");
  json_error_name(b, err);
  cli_buf_puts(b, ",\"phase\":\"none\",\"message\":");
  cli_json_cstr(b, message ? message : "");
  cli_buf_printf(b,
                 ",\"reply\":null,\"recipients\":[],\"tls\":null,"
                 "\"attempts\":0,\"exit\":%d,\"exit_name\":\"%s\"}\n",
                 exit_code, cli_exit_name(exit_code));
}

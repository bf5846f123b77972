/* SPDX-License-Identifier: MIT */
/* --serverinfo output: what smtpuv_client_probe() learned, as text (close to
 * msmtp's layout) or as one JSON object. Server texts are printed with
 * control characters replaced, so a hostile server cannot drive the
 * terminal. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cli.h"

/* Append `s` with control characters shown as '?' (a newline continues on
   an indented line). */
static void safe_text(cli_buf *b, const char *s, size_t n,
                      const char *indent) {
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '\n') {
      cli_buf_puts(b, "\n");
      cli_buf_puts(b, indent);
    } else if (c < 0x20 || c == 0x7f) {
      cli_buf_puts(b, "?");
    } else {
      cli_buf_add(b, &s[i], 1);
    }
  }
}

static const struct {
  const char *kw;
  const char *what;
} KNOWN[] = {
    {"SIZE", "maximum message size"},
    {"PIPELINING", "command pipelining (RFC 2920)"},
    {"CHUNKING", "BDAT chunks (RFC 3030)"},
    {"BINARYMIME", "binary bodies (RFC 3030)"},
    {"8BITMIME", "8-bit bodies (RFC 6152)"},
    {"SMTPUTF8", "UTF-8 addresses (RFC 6531)"},
    {"DSN", "delivery status notifications (RFC 3461)"},
    {"ENHANCEDSTATUSCODES", "enhanced status codes (RFC 3463)"},
    {"STARTTLS", "TLS upgrade (RFC 3207)"},
    {"REQUIRETLS", "REQUIRETLS (RFC 8689)"},
    {"AUTH", "authentication (RFC 4954)"},
    {"VRFY", "address verification"},
    {"ETRN", "remote queue starting (RFC 1985)"},
};

static const char *describe(const char *line, size_t n) {
  size_t kw = 0;
  while (kw < n && line[kw] != ' ' && line[kw] != '=')
    kw++;
  for (size_t i = 0; i < sizeof KNOWN / sizeof KNOWN[0]; i++)
    if (strlen(KNOWN[i].kw) == kw && strncasecmp(line, KNOWN[i].kw, kw) == 0)
      return KNOWN[i].what;
  return NULL;
}

/* One capability per line, padded, with a description when known. */
static void capabilities(cli_buf *b, const char *ext) {
  const char *p = ext;
  while (*p) {
    const char *nl = strchr(p, '\n');
    size_t n = nl ? (size_t)(nl - p) : strlen(p);
    if (n > 0) {
      cli_buf_puts(b, "    ");
      safe_text(b, p, n, "");
      const char *what = describe(p, n);
      if (what != NULL) {
        for (size_t pad = n; pad < 28; pad++)
          cli_buf_puts(b, " ");
        cli_buf_puts(b, " ");
        cli_buf_puts(b, what);
      }
      cli_buf_puts(b, "\n");
    }
    if (nl == NULL)
      break;
    p = nl + 1;
  }
}

/* The keywords of an EHLO list on one line ("PIPELINING SIZE STARTTLS"). */
static void keywords(cli_buf *b, const char *ext) {
  const char *p = ext;
  int first = 1;
  while (*p) {
    const char *nl = strchr(p, '\n');
    size_t n = nl ? (size_t)(nl - p) : strlen(p);
    size_t kw = 0;
    while (kw < n && p[kw] != ' ')
      kw++;
    if (kw > 0) {
      if (!first)
        cli_buf_puts(b, " ");
      safe_text(b, p, kw, "");
      first = 0;
    }
    if (nl == NULL)
      break;
    p = nl + 1;
  }
}

void cli_serverinfo_text(cli_buf *b, const char *host,
                         const smtpuv_probe_result *r) {
  if (r->peer[0] != '\0') {
    cli_buf_puts(b, "SMTP server at ");
    safe_text(b, r->peer, strlen(r->peer), "");
    if (host != NULL && strncmp(r->peer, host, strlen(host)) != 0) {
      cli_buf_puts(b, " (");
      safe_text(b, host, strlen(host), "");
      cli_buf_puts(b, ")");
    }
    cli_buf_puts(b, "\n");
  }
  if (r->greeting_code != 0) {
    cli_buf_printf(b, "Greeting:\n    %d ", r->greeting_code);
    safe_text(b, r->greeting, strlen(r->greeting), "    ");
    cli_buf_puts(b, "\n");
  }
  if (r->tls != NULL) {
    /* one part per line: session, subject, issuer, SHA-256 fingerprint
       (what --tls-fingerprint takes), validity dates */
    cli_buf_puts(b, "TLS session and certificate:\n");
    for (const char *p = r->tls; *p;) {
      const char *e = strstr(p, "; ");
      size_t n = e != NULL ? (size_t)(e - p) : strlen(p);
      cli_buf_puts(b, "    ");
      safe_text(b, p, n, "    ");
      cli_buf_puts(b, "\n");
      p += n;
      if (e != NULL)
        p += 2;
    }
  }
  if (r->server_name[0] != '\0') {
    cli_buf_puts(b, "EHLO reply:\n    ");
    safe_text(b, r->server_name, strlen(r->server_name), "    ");
    cli_buf_puts(b, "\n");
  }
  if (r->extensions[0] != '\0') {
    cli_buf_puts(b, r->tls != NULL ? "Capabilities (over TLS):\n"
                                   : "Capabilities:\n");
    capabilities(b, r->extensions);
  }
  if (r->max_size != 0)
    cli_buf_printf(b, "Maximum message size: %llu bytes = %.2f MiB\n",
                   (unsigned long long)r->max_size,
                   (double)r->max_size / (1024.0 * 1024.0));
  else if (r->ext_flags & SMTPUV_EXT_SIZE)
    cli_buf_puts(b, "Maximum message size: no limit announced\n");
  if (r->server_name[0] != '\0') {
    cli_buf_puts(b, "Authentication mechanisms: ");
    if (r->auth_mechanisms[0] != '\0')
      safe_text(b, r->auth_mechanisms, strlen(r->auth_mechanisms), "");
    else
      cli_buf_puts(b, r->tls == NULL && (r->ext_flags & SMTPUV_EXT_STARTTLS)
                          ? "none offered before STARTTLS"
                          : "none offered");
    cli_buf_puts(b, "\n");
  }
  if (r->extensions_plain != NULL) {
    cli_buf_puts(b, "Before STARTTLS: ");
    keywords(b, r->extensions_plain);
    cli_buf_puts(b, "\n");
  }
}

void cli_serverinfo_json(cli_buf *b, const char *host,
                         const smtpuv_probe_result *r, int exit_code) {
  cli_buf_puts(b, "{\"status\":");
  cli_buf_puts(b, r->error == 0 ? "\"ok\"" : "\"failed\"");
  cli_buf_puts(b, ",\"error\":");
  if (r->error == 0)
    cli_buf_puts(b, "null");
  else
    cli_json_cstr(b, smtpuv_err_name(r->error));
  cli_buf_puts(b, ",\"phase\":");
  cli_json_cstr(b, smtpuv_phase_name(r->phase));
  cli_buf_puts(b, ",\"message\":");
  cli_json_cstr(b, r->message);
  cli_buf_puts(b, ",\"host\":");
  cli_json_cstr(b, host);
  cli_buf_puts(b, ",\"peer\":");
  cli_json_cstr(b, r->peer);
  cli_buf_printf(b, ",\"greeting\":{\"code\":%d,\"text\":", r->greeting_code);
  cli_json_cstr(b, r->greeting);
  cli_buf_puts(b, "},\"server_name\":");
  cli_json_cstr(b, r->server_name);
  cli_buf_puts(b, ",\"extensions\":[");
  const char *p = r->extensions;
  int first = 1;
  while (*p) {
    const char *nl = strchr(p, '\n');
    size_t n = nl ? (size_t)(nl - p) : strlen(p);
    if (!first)
      cli_buf_puts(b, ",");
    cli_json_str(b, p, n);
    first = 0;
    if (nl == NULL)
      break;
    p = nl + 1;
  }
  cli_buf_printf(b, "],\"size\":%llu,\"auth\":[",
                 (unsigned long long)r->max_size);
  p = r->auth_mechanisms;
  first = 1;
  while (*p) {
    const char *sp = strchr(p, ' ');
    size_t n = sp ? (size_t)(sp - p) : strlen(p);
    if (n > 0) {
      if (!first)
        cli_buf_puts(b, ",");
      cli_json_str(b, p, n);
      first = 0;
    }
    if (sp == NULL)
      break;
    p = sp + 1;
  }
  cli_buf_puts(b, "],\"starttls_before\":");
  cli_buf_puts(b, r->extensions_plain != NULL ? "true" : "false");
  cli_buf_puts(b, ",\"tls\":");
  cli_json_cstr(b, r->tls);
  cli_buf_printf(b, ",\"exit\":%d,\"exit_name\":\"%s\"}\n", exit_code,
                 cli_exit_name(exit_code));
}

int cli_exit_for_probe(const smtpuv_probe_result *r) {
  return cli_exit_for_error(r->error, r->phase, r->greeting_code >= 400
                                                    ? r->greeting_code
                                                    : 0);
}

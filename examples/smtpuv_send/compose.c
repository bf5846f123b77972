/* SPDX-License-Identifier: MIT */
/* The header fields smtpuv-send adds (From, Date, Message-ID) and msmtp's
 * `from` substitutions. Kept small and on its own: a composer library will
 * replace it. */
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <uv.h>

#include "cli.h"

const char *cli_user_name(void) {
  const char *u = getenv("USER");
  if (u == NULL || *u == '\0')
    u = getenv("LOGNAME");
  if (u == NULL || *u == '\0') {
    struct passwd *pw = getpwuid(getuid());
    u = pw != NULL ? pw->pw_name : NULL;
  }
  return u != NULL ? u : "";
}

static void host_name(char *out, size_t cap) {
  const char *h = getenv("HOSTNAME");
  if (h != NULL && *h != '\0') {
    snprintf(out, cap, "%s", h);
    return;
  }
  size_t n = cap;
  if (uv_os_gethostname(out, &n) != 0)
    snprintf(out, cap, "localhost");
}

/* The canonical name of `host` (libuv's resolver, synchronous), else host. */
static void canonical_name(const char *host, char *out, size_t cap) {
  uv_loop_t loop;
  snprintf(out, cap, "%s", host);
  if (uv_loop_init(&loop) != 0)
    return;
  uv_getaddrinfo_t req;
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_flags = AI_CANONNAME;
  hints.ai_socktype = SOCK_STREAM;
  if (uv_getaddrinfo(&loop, &req, NULL, host, NULL, &hints) == 0) {
    if (req.addrinfo != NULL && req.addrinfo->ai_canonname != NULL)
      snprintf(out, cap, "%s", req.addrinfo->ai_canonname);
    uv_freeaddrinfo(req.addrinfo);
  }
  uv_loop_close(&loop);
}

static void mail_name(char *out, size_t cap) {
  out[0] = '\0';
  FILE *f = fopen("/etc/mailname", "r");
  if (f == NULL)
    return;
  if (fgets(out, (int)cap, f) == NULL)
    out[0] = '\0';
  fclose(f);
  out[strcspn(out, "\r\n")] = '\0';
}

int cli_expand_from(const char *from, char *out, size_t cap) {
  size_t o = 0;
  char tmp[512];
  for (const char *p = from; *p; p++) {
    const char *add = NULL;
    char one[2] = {*p, '\0'};
    if (*p == '%' && p[1] != '\0') {
      switch (p[1]) {
      case 'U':
        add = cli_user_name();
        break;
      case 'H':
        host_name(tmp, sizeof tmp);
        add = tmp;
        break;
      case 'C': {
        char h[256];
        host_name(h, sizeof h);
        canonical_name(h, tmp, sizeof tmp);
        add = tmp;
        break;
      }
      case 'M':
        mail_name(tmp, sizeof tmp);
        add = tmp;
        break;
      default:
        break;
      }
      if (add != NULL)
        p++;
    }
    if (add == NULL)
      add = one;
    size_t n = strlen(add);
    if (o + n + 1 > cap)
      return -1;
    memcpy(out + o, add, n);
    o += n;
  }
  if (o >= cap)
    return -1;
  out[o] = '\0';
  return 0;
}

void cli_date_header(cli_buf *b) {
  static const char *const days[] = {"Sun", "Mon", "Tue", "Wed",
                                     "Thu", "Fri", "Sat"};
  static const char *const months[] = {"Jan", "Feb", "Mar", "Apr",
                                       "May", "Jun", "Jul", "Aug",
                                       "Sep", "Oct", "Nov", "Dec"};
  time_t t = time(NULL);
  struct tm tm, g;
  localtime_r(&t, &tm);
  gmtime_r(&t, &g);
  /* the UTC offset in minutes, from the two broken-down times */
  long off = (tm.tm_hour - g.tm_hour) * 60L + (tm.tm_min - g.tm_min);
  int dd = tm.tm_yday - g.tm_yday;
  if (tm.tm_year != g.tm_year)
    dd = tm.tm_year > g.tm_year ? 1 : -1;
  off += dd * 1440L;
  char sign = off < 0 ? '-' : '+';
  if (off < 0)
    off = -off;
  cli_buf_printf(b, "Date: %s, %02d %s %04d %02d:%02d:%02d %c%02ld%02ld\n",
                 days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon],
                 tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec, sign,
                 off / 60, off % 60);
}

void cli_msgid_header(cli_buf *b, const char *from) {
  unsigned char r[16];
  char hex[33], host[256];
  if (RAND_bytes(r, sizeof r) != 1)
    memset(r, 0, sizeof r);
  for (size_t i = 0; i < sizeof r; i++)
    snprintf(hex + 2 * i, 3, "%02x", r[i]);
  const char *at = from != NULL ? strrchr(from, '@') : NULL;
  if (at != NULL && at[1] != '\0' && strpbrk(at + 1, "<>\r\n \t") == NULL) {
    snprintf(host, sizeof host, "%s", at + 1);
  } else {
    host_name(host, sizeof host);
    if (strpbrk(host, "<>\r\n \t") != NULL || host[0] == '\0')
      snprintf(host, sizeof host, "localhost");
  }
  cli_buf_printf(b, "Message-ID: <%lx.%s@%s>\n", (unsigned long)time(NULL),
                 hex, host);
}

void cli_from_header(cli_buf *b, const char *name, const char *addr) {
  if (name == NULL || *name == '\0') {
    cli_buf_printf(b, "From: %s\n", addr);
    return;
  }
  int ascii = 1, special = 0;
  for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
    if (*p >= 0x80)
      ascii = 0;
    else if (strchr("()<>[]:;@\\,.\"", *p) != NULL)
      special = 1;
  }
  cli_buf_puts(b, "From: ");
  if (!ascii) {
    /* RFC 2047 encoded-word, base64 by OpenSSL */
    size_t n = strlen(name);
    unsigned char *enc = malloc(4 * ((n + 2) / 3) + 1);
    if (enc == NULL) {
      b->oom = 1;
      return;
    }
    EVP_EncodeBlock(enc, (const unsigned char *)name, (int)n);
    cli_buf_printf(b, "=?UTF-8?B?%s?=", (const char *)enc);
    free(enc);
  } else if (special) {
    cli_buf_puts(b, "\"");
    for (const char *p = name; *p; p++) {
      if (*p == '"' || *p == '\\')
        cli_buf_puts(b, "\\");
      cli_buf_add(b, p, 1);
    }
    cli_buf_puts(b, "\"");
  } else {
    cli_buf_puts(b, name);
  }
  cli_buf_printf(b, " <%s>\n", addr);
}

/* SPDX-License-Identifier: MIT */
/*
 * The SOCKS5 client handshake (RFC 1928, RFC 1929), sans-io: see
 * smtpuv/socks5.h.
 *
 * Output is one fixed buffer the requests are appended to (the three of
 * them fit together, so nothing ever moves while the transport holds a
 * pointer). Input is gathered in a fixed buffer until the message it
 * belongs to is complete; the longest is a CONNECT reply with a domain
 * name, 4 + 1 + 255 + 2 bytes.
 */
#include <arpa/inet.h>
#include <sys/socket.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "protocol/mem.h"
#include "smtpuv.h"

#define VER 0x05
#define AUTH_VER 0x01 /* RFC 1929 subnegotiation version */
#define METHOD_NONE 0x00
#define METHOD_USERPASS 0x02
#define METHOD_REFUSED 0xFF
#define CMD_CONNECT 0x01
#define ATYP_IPV4 0x01
#define ATYP_DOMAIN 0x03
#define ATYP_IPV6 0x04

/* method request (4) + RFC 1929 request (3 + 2 * 255) + CONNECT (7 + 255) */
#define OUT_CAP (4 + 3 + 2 * SMTPUV_SOCKS5_MAX_CREDENTIAL + 7 + \
                 SMTPUV_SOCKS5_MAX_HOST)
#define IN_CAP (4 + 1 + 255 + 2)

struct smtpuv_socks5 {
  smtpuv_mem mem;
  smtpuv_socks5_state state;
  int err;
  int rep; /* CONNECT reply code, -1 before */
  char errtext[128];

  /* the CONNECT request's address part, built at new() */
  uint8_t atyp;
  uint8_t addr[SMTPUV_SOCKS5_MAX_HOST + 1]; /* domain: length octet first */
  size_t addr_len;
  uint16_t port;

  /* credentials until the RFC 1929 request is built (then wiped) */
  uint8_t has_auth;
  uint8_t user_len, pass_len;
  char user[SMTPUV_SOCKS5_MAX_CREDENTIAL];
  char pass[SMTPUV_SOCKS5_MAX_CREDENTIAL];

  /* output: [out_start, out_end) pending; [secret_start, secret_end) holds
     the RFC 1929 request, wiped once consumed */
  uint8_t out[OUT_CAP];
  size_t out_start, out_end, secret_start, secret_end;

  uint8_t in[IN_CAP];
  size_t in_len;

  /* BND.ADDR as text, BND.PORT */
  char bound[SMTPUV_SOCKS5_MAX_HOST + 1];
  uint16_t bound_port;
};

static int fail(smtpuv_socks5 *s, int err, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static int fail(smtpuv_socks5 *s, int err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(s->errtext, sizeof s->errtext, fmt, ap);
  va_end(ap);
  s->err = err;
  s->state = SMTPUV_SOCKS5_FAILED;
  smtpuv__wipe(s->user, sizeof s->user);
  smtpuv__wipe(s->pass, sizeof s->pass);
  return err;
}

static void put(smtpuv_socks5 *s, const void *data, size_t len) {
  memcpy(s->out + s->out_end, data, len); /* OUT_CAP holds every request */
  s->out_end += len;
}

/* ---- parameters ----------------------------------------------------------- */

/* A host name as RFC 1928 carries it: 1..255 printable ASCII, no space. */
static int check_name(const char *host, size_t *len) {
  size_t n = strnlen(host, SMTPUV_SOCKS5_MAX_HOST + 1);
  if (n == 0 || n > SMTPUV_SOCKS5_MAX_HOST)
    return SMTPUV_EINVAL;
  for (size_t i = 0; i < n; i++)
    if (host[i] <= 0x20 || host[i] >= 0x7F)
      return SMTPUV_EINVAL;
  *len = n;
  return 0;
}

/* The destination: an IPv4 literal, an IPv6 literal (bare or in
   brackets), else a name for the proxy to resolve. */
static int set_destination(smtpuv_socks5 *s, const char *host) {
  size_t n;
  if (check_name(host, &n) != 0)
    return SMTPUV_EINVAL;
  char v6[64];
  const char *lit = host;
  if (host[0] == '[') {
    if (n < 3 || n - 2 >= sizeof v6 || host[n - 1] != ']')
      return SMTPUV_EINVAL;
    memcpy(v6, host + 1, n - 2);
    v6[n - 2] = '\0';
    lit = v6;
    if (inet_pton(AF_INET6, lit, s->addr) != 1)
      return SMTPUV_EINVAL; /* brackets hold an IPv6 address only */
    s->atyp = ATYP_IPV6;
    s->addr_len = 16;
    return 0;
  }
  if (inet_pton(AF_INET, lit, s->addr) == 1) {
    s->atyp = ATYP_IPV4;
    s->addr_len = 4;
  } else if (inet_pton(AF_INET6, lit, s->addr) == 1) {
    s->atyp = ATYP_IPV6;
    s->addr_len = 16;
  } else {
    s->atyp = ATYP_DOMAIN;
    s->addr[0] = (uint8_t)n;
    memcpy(s->addr + 1, host, n);
    s->addr_len = n + 1;
  }
  return 0;
}

/* 1..255 bytes. */
static int credential_len(const char *c, uint8_t *len) {
  size_t n = strnlen(c, SMTPUV_SOCKS5_MAX_CREDENTIAL + 1);
  if (n == 0 || n > SMTPUV_SOCKS5_MAX_CREDENTIAL)
    return SMTPUV_EINVAL;
  *len = (uint8_t)n;
  return 0;
}

static int check_params(smtpuv_socks5 *s, const smtpuv_socks5_params *sp) {
  if (sp->struct_size < sizeof *sp || sp->host == NULL || sp->port == 0)
    return SMTPUV_EINVAL;
  if ((sp->username == NULL) != (sp->password == NULL))
    return SMTPUV_EINVAL;
  if (set_destination(s, sp->host) != 0)
    return SMTPUV_EINVAL;
  s->port = sp->port;
  if (sp->username == NULL)
    return 0;
  if (credential_len(sp->username, &s->user_len) != 0 ||
      credential_len(sp->password, &s->pass_len) != 0)
    return SMTPUV_EINVAL;
  memcpy(s->user, sp->username, s->user_len);
  memcpy(s->pass, sp->password, s->pass_len);
  s->has_auth = 1;
  return 0;
}

int smtpuv_socks5_new(const smtpuv_mem *mem, const smtpuv_socks5_params *sp,
                      smtpuv_socks5 **out) {
  if (out == NULL)
    return SMTPUV_EINVAL;
  *out = NULL;
  if (sp == NULL)
    return SMTPUV_EINVAL;
  if (mem != NULL && (mem->malloc == NULL || mem->free == NULL ||
                      mem->calloc == NULL || mem->realloc == NULL))
    return SMTPUV_EINVAL;
  smtpuv_mem m;
  smtpuv__mem_init(&m, mem);
  smtpuv_socks5 *s = smtpuv__calloc(&m, 1, sizeof *s);
  if (s == NULL)
    return SMTPUV_ENOMEM;
  s->mem = m;
  s->rep = -1;
  int rc = check_params(s, sp);
  if (rc != 0) {
    smtpuv_socks5_free(s);
    return rc;
  }
  static const uint8_t plain[] = {VER, 1, METHOD_NONE};
  static const uint8_t both[] = {VER, 2, METHOD_NONE, METHOD_USERPASS};
  if (s->has_auth)
    put(s, both, sizeof both);
  else
    put(s, plain, sizeof plain);
  s->state = SMTPUV_SOCKS5_METHOD;
  *out = s;
  return 0;
}

void smtpuv_socks5_free(smtpuv_socks5 *s) {
  if (s == NULL)
    return;
  smtpuv_mem m = s->mem;
  smtpuv__wipe(s, sizeof *s);
  smtpuv__free(&m, s);
}

/* ---- output --------------------------------------------------------------- */

void smtpuv_socks5_outgoing(smtpuv_socks5 *s, const void **ptr,
                            size_t *len) {
  if (s == NULL) {
    *ptr = NULL;
    *len = 0;
    return;
  }
  *ptr = s->out + s->out_start;
  *len = s->out_end - s->out_start;
}

void smtpuv_socks5_consumed(smtpuv_socks5 *s, size_t n) {
  if (s == NULL)
    return;
  size_t left = s->out_end - s->out_start;
  s->out_start += n < left ? n : left;
  /* wipe what was written of the credentials */
  if (s->secret_end > s->secret_start && s->out_start > s->secret_start) {
    size_t upto = s->out_start < s->secret_end ? s->out_start : s->secret_end;
    smtpuv__wipe(s->out + s->secret_start, upto - s->secret_start);
    s->secret_start = upto;
  }
}

static void send_auth(smtpuv_socks5 *s) {
  s->secret_start = s->out_end;
  uint8_t hdr[2] = {AUTH_VER, s->user_len};
  put(s, hdr, 2);
  put(s, s->user, s->user_len);
  put(s, &s->pass_len, 1);
  put(s, s->pass, s->pass_len);
  s->secret_end = s->out_end;
  smtpuv__wipe(s->user, sizeof s->user);
  smtpuv__wipe(s->pass, sizeof s->pass);
  s->state = SMTPUV_SOCKS5_AUTH;
}

static void send_connect(smtpuv_socks5 *s) {
  uint8_t hdr[4] = {VER, CMD_CONNECT, 0x00, s->atyp};
  uint8_t port[2] = {(uint8_t)(s->port >> 8), (uint8_t)(s->port & 0xFF)};
  put(s, hdr, 4);
  put(s, s->addr, s->addr_len);
  put(s, port, 2);
  s->state = SMTPUV_SOCKS5_CONNECT;
}

/* ---- input ---------------------------------------------------------------- */

static const struct {
  int err;
  const char *what;
} connect_errors[] = {
    {0, "succeeded"},
    {SMTPUV_EPROXYFAIL, "general SOCKS server failure"},
    {SMTPUV_EPROXYRULES, "connection not allowed by ruleset"},
    {SMTPUV_EPROXYNETUNREACH, "network unreachable"},
    {SMTPUV_EPROXYHOSTUNREACH, "host unreachable"},
    {SMTPUV_EPROXYREFUSED, "connection refused by the destination host"},
    {SMTPUV_EPROXYTTL, "TTL expired"},
    {SMTPUV_EPROXYCMD, "command not supported"},
    {SMTPUV_EPROXYATYP, "address type not supported"},
};

/* Bytes the message being received needs in total, given what is in
   (0: not known yet, more needed). */
static size_t needed(const smtpuv_socks5 *s) {
  switch (s->state) {
  case SMTPUV_SOCKS5_METHOD:
  case SMTPUV_SOCKS5_AUTH:
    return 2;
  case SMTPUV_SOCKS5_CONNECT:
    if (s->in_len < 4)
      return 4;
    switch (s->in[3]) {
    case ATYP_IPV4:
      return 4 + 4 + 2;
    case ATYP_IPV6:
      return 4 + 16 + 2;
    case ATYP_DOMAIN:
      return s->in_len < 5 ? 5 : 4 + 1 + (size_t)s->in[4] + 2;
    default:
      return 4; /* checked by connect_head() */
    }
  default:
    return 0;
  }
}

static int on_method(smtpuv_socks5 *s) {
  if (s->in[0] != VER)
    return fail(s, SMTPUV_EPROXY, "method selection: version %u, not 5",
                s->in[0]);
  switch (s->in[1]) {
  case METHOD_NONE:
    smtpuv__wipe(s->user, sizeof s->user); /* not needed */
    smtpuv__wipe(s->pass, sizeof s->pass);
    send_connect(s);
    return 0;
  case METHOD_USERPASS:
    if (s->has_auth) {
      send_auth(s);
      return 0;
    }
    break;
  case METHOD_REFUSED:
    return fail(s, SMTPUV_EPROXYMETHOD,
                s->has_auth ? "the proxy accepts neither no authentication "
                              "nor username/password (X'FF')"
                            : "the proxy wants authentication (X'FF'): give "
                              "a username and password");
  default:
    break;
  }
  return fail(s, SMTPUV_EPROXY, "method selection: X'%02X' was not offered",
              s->in[1]);
}

static int on_auth(smtpuv_socks5 *s) {
  if (s->in[0] != AUTH_VER)
    return fail(s, SMTPUV_EPROXY,
                "username/password status: version %u, not 1", s->in[0]);
  if (s->in[1] != 0)
    return fail(s, SMTPUV_EPROXYAUTH,
                "username/password refused (status X'%02X')", s->in[1]);
  send_connect(s);
  return 0;
}

/* The first four bytes of the CONNECT reply: VER REP RSV ATYP. A failure
   is reported as soon as REP is known. */
static int connect_head(smtpuv_socks5 *s) {
  if (s->in_len >= 1 && s->in[0] != VER)
    return fail(s, SMTPUV_EPROXY, "CONNECT reply: version %u, not 5",
                s->in[0]);
  if (s->in_len >= 2 && s->rep < 0) {
    s->rep = s->in[1];
    if (s->rep >= (int)(sizeof connect_errors / sizeof connect_errors[0]))
      return fail(s, SMTPUV_EPROXY, "CONNECT reply: unknown code %d", s->rep);
    if (s->rep != 0)
      return fail(s, connect_errors[s->rep].err, "CONNECT reply %d: %s",
                  s->rep, connect_errors[s->rep].what);
  }
  if (s->in_len >= 3 && s->in[2] != 0)
    return fail(s, SMTPUV_EPROXY, "CONNECT reply: reserved byte X'%02X'",
                s->in[2]);
  if (s->in_len >= 4 && s->in[3] != ATYP_IPV4 && s->in[3] != ATYP_IPV6 &&
      s->in[3] != ATYP_DOMAIN)
    return fail(s, SMTPUV_EPROXY, "CONNECT reply: address type %u",
                s->in[3]);
  return 0;
}

static int on_connect(smtpuv_socks5 *s) {
  const uint8_t *a = s->in + 4;
  size_t n = s->in_len - 4 - 2;
  if (s->in[3] == ATYP_IPV4) {
    inet_ntop(AF_INET, a, s->bound, sizeof s->bound);
  } else if (s->in[3] == ATYP_IPV6) {
    inet_ntop(AF_INET6, a, s->bound, sizeof s->bound);
  } else {
    memcpy(s->bound, a + 1, n - 1); /* n - 1 <= 255 */
    s->bound[n - 1] = '\0';
  }
  s->bound_port = (uint16_t)((s->in[s->in_len - 2] << 8) |
                             s->in[s->in_len - 1]);
  s->state = SMTPUV_SOCKS5_DONE;
  return 1;
}

int smtpuv_socks5_feed(smtpuv_socks5 *s, const void *data, size_t len,
                       size_t *used) {
  if (used != NULL)
    *used = 0;
  if (s == NULL || used == NULL || (data == NULL && len > 0))
    return SMTPUV_EINVAL;
  if (s->err != 0)
    return s->err;
  if (s->state == SMTPUV_SOCKS5_DONE)
    return SMTPUV_ESTATE;
  const uint8_t *d = data;
  size_t pos = 0;
  while (pos < len) {
    size_t want = needed(s);
    size_t take = want - s->in_len;
    if (take > len - pos)
      take = len - pos;
    memcpy(s->in + s->in_len, d + pos, take);
    s->in_len += take;
    pos += take;
    *used = pos;
    int rc = 0;
    if (s->state == SMTPUV_SOCKS5_CONNECT)
      rc = connect_head(s);
    if (rc != 0)
      return rc;
    if (s->in_len < needed(s))
      continue; /* the length became known: read on */
    switch (s->state) {
    case SMTPUV_SOCKS5_METHOD:
      rc = on_method(s);
      break;
    case SMTPUV_SOCKS5_AUTH:
      rc = on_auth(s);
      break;
    default:
      rc = on_connect(s);
      break;
    }
    s->in_len = 0;
    if (rc != 0)
      return rc; /* 1: done, the rest is the server's */
  }
  return 0;
}

/* ---- queries -------------------------------------------------------------- */

smtpuv_socks5_state smtpuv_socks5_state_of(const smtpuv_socks5 *s) {
  return s != NULL ? s->state : SMTPUV_SOCKS5_FAILED;
}

int smtpuv_socks5_error(const smtpuv_socks5 *s) {
  return s != NULL ? s->err : SMTPUV_EINVAL;
}

const char *smtpuv_socks5_error_text(const smtpuv_socks5 *s) {
  return s != NULL && s->err != 0 ? s->errtext : "";
}

int smtpuv_socks5_reply_code(const smtpuv_socks5 *s) {
  return s != NULL ? s->rep : -1;
}

int smtpuv_socks5_bound(const smtpuv_socks5 *s, const char **addr,
                        uint16_t *port) {
  if (s == NULL || addr == NULL || port == NULL)
    return SMTPUV_EINVAL;
  if (s->state != SMTPUV_SOCKS5_DONE)
    return SMTPUV_ESTATE;
  *addr = s->bound;
  *port = s->bound_port;
  return 0;
}

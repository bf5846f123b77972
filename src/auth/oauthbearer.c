/* SPDX-License-Identifier: MIT */
/* OAUTHBEARER (RFC 7628): initial response
 *   gs2-header ^A ["host=" host ^A] ["port=" port ^A] "auth=Bearer " token ^A ^A
 * with gs2-header = "n," ["a=" saslname] ",". On failure the server sends a
 * 334 with a JSON error; the client must answer with a single ^A (3.2.3)
 * and the server then fails the exchange. */
#include <stdio.h>
#include <string.h>

#include "auth/auth_int.h"

typedef struct oauthbearer_state {
  const smtpuv_mem *mem;
  char *authzid, *host;
  unsigned port;
} oauthbearer_state;

static void ob_destroy(smtpuv_auth *a, void *state) {
  (void)a;
  oauthbearer_state *s = state;
  if (s == NULL)
    return;
  smtpuv__secret_free(s->mem, s->authzid);
  smtpuv__secret_free(s->mem, s->host);
  smtpuv__wipe_free(s->mem, s, sizeof(*s));
}

int smtpuv__oauthbearer_create(const smtpuv_mem *m,
                               const smtpuv_auth_credentials *c,
                               void **state) {
  oauthbearer_state *s = smtpuv__calloc(m, 1, sizeof(*s));
  if (s == NULL)
    return SMTPUV_ENOMEM;
  int err = 0;
  s->mem = m;
  const char *az = c->authzid != NULL ? c->authzid : c->username;
  s->authzid = smtpuv__secret_dup(m, az != NULL ? az : "", &err);
  s->host = smtpuv__secret_dup(m, c->host != NULL ? c->host : "", &err);
  s->port = c->port;
  if (err != 0) {
    ob_destroy(NULL, s);
    return err;
  }
  *state = s;
  return 0;
}

/* RFC 6750 b64token: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" )
   *"=" */
static int b64token(const char *t) {
  size_t i = 0;
  for (; t[i] != '\0' && t[i] != '='; i++) {
    char c = t[i];
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
          (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
          c == '~' || c == '+' || c == '/'))
      return 0;
  }
  if (i == 0)
    return 0;
  for (; t[i] == '='; i++)
    ;
  return t[i] == '\0';
}

static int ob_begin(smtpuv_auth *a, void *state, unsigned flags) {
  (void)flags;
  oauthbearer_state *s = state;
  if (!smtpuv__auth_printable(s->authzid) || !smtpuv__auth_printable(s->host) ||
      strchr(s->host, ' ') != NULL || s->port > 65535)
    return smtpuv__auth_errorf(a, SMTPUV_ECREDENTIALS,
                               "OAUTHBEARER: the authorization id and host "
                               "must be printable ASCII, the port 0..65535");
  const char *tok;
  int r = smtpuv__auth_token_get(a, &tok);
  if (r != 0)
    return r;
  if (!b64token(tok))
    return smtpuv__auth_errorf(a, SMTPUV_ECREDENTIALS,
                               "OAUTHBEARER: the token is not an RFC 6750 "
                               "b64token");
  smtpuv__sbuf b;
  smtpuv__sbuf_init(&b, s->mem);
  smtpuv__sbuf_adds(&b, "n,");
  if (s->authzid[0] != '\0') {
    smtpuv__sbuf_adds(&b, "a=");
    for (const char *p = s->authzid; *p != '\0'; p++) {
      if (*p == ',')
        smtpuv__sbuf_adds(&b, "=2C");
      else if (*p == '=')
        smtpuv__sbuf_adds(&b, "=3D");
      else
        smtpuv__sbuf_addc(&b, *p);
    }
  }
  smtpuv__sbuf_adds(&b, ",\001");
  if (s->host[0] != '\0') {
    smtpuv__sbuf_adds(&b, "host=");
    smtpuv__sbuf_adds(&b, s->host);
    smtpuv__sbuf_addc(&b, '\001');
  }
  if (s->port != 0) {
    char port[24];
    snprintf(port, sizeof(port), "port=%u\001", s->port);
    smtpuv__sbuf_adds(&b, port);
  }
  smtpuv__sbuf_adds(&b, "auth=Bearer ");
  smtpuv__sbuf_adds(&b, tok);
  smtpuv__sbuf_adds(&b, "\001\001");
  r = b.err != 0 ? b.err : smtpuv_auth_respond(a, b.p, b.len);
  smtpuv__sbuf_free(&b);
  return r;
}

static int ob_step(smtpuv_auth *a, void *state, const unsigned char *chal,
                   size_t len) {
  (void)state;
  char clean[SMTPUV__AUTH_ERRLEN - 16];
  smtpuv__auth_clean_line(clean, sizeof(clean), (const char *)chal, len);
  smtpuv__auth_errorf(a, 0, "OAUTHBEARER: %s", clean);
  return smtpuv_auth_respond(a, "\001", 1);
}

const smtpuv_auth_ops smtpuv__oauthbearer_ops = {
    sizeof(smtpuv_auth_ops), "OAUTHBEARER", SMTPUV_AUTH_OPS_RETRY_ON_REJECT,
    ob_begin, ob_step, NULL, ob_destroy};

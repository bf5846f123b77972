/* SPDX-License-Identifier: MIT */
/* XOAUTH2 (Google, Microsoft): initial response
 *   "user=" user ^A "auth=Bearer " token ^A ^A
 * A rejected token gets a 334 whose decoded text is a JSON error; the client
 * answers it with an empty response and the server then says 535. The JSON
 * is kept as the error text; the session refreshes the token once. */
#include <string.h>

#include "auth/auth_int.h"

typedef struct xoauth2_state {
  const smtpuv_mem *mem;
  char *user;
  int sent;
} xoauth2_state;

static void xoauth2_destroy(smtpuv_auth *a, void *state) {
  (void)a;
  xoauth2_state *s = state;
  if (s == NULL)
    return;
  smtpuv__secret_free(s->mem, s->user);
  smtpuv__wipe_free(s->mem, s, sizeof(*s));
}

int smtpuv__xoauth2_create(const smtpuv_mem *m,
                           const smtpuv_auth_credentials *c, void **state) {
  xoauth2_state *s = smtpuv__calloc(m, 1, sizeof(*s));
  if (s == NULL)
    return SMTPUV_ENOMEM;
  int err = 0;
  s->mem = m;
  s->user = smtpuv__secret_dup(m, c->username, &err);
  if (err != 0) {
    xoauth2_destroy(NULL, s);
    return err;
  }
  *state = s;
  return 0;
}

static int xoauth2_begin(smtpuv_auth *a, void *state, unsigned flags) {
  (void)flags;
  xoauth2_state *s = state;
  s->sent = 0;
  if (s->user[0] == '\0' || !smtpuv__auth_printable(s->user) ||
      strchr(s->user, ' ') != NULL)
    return smtpuv__auth_errorf(a, SMTPUV_ECREDENTIALS,
                               "XOAUTH2: the username must be non-empty "
                               "printable ASCII without spaces");
  const char *tok;
  int r = smtpuv__auth_token_get(a, &tok);
  if (r != 0)
    return r;
  for (const char *p = tok; *p != '\0'; p++)
    if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
      return smtpuv__auth_errorf(a, SMTPUV_ECREDENTIALS,
                                 "XOAUTH2: the token must be printable ASCII "
                                 "without spaces");
  smtpuv__sbuf b;
  smtpuv__sbuf_init(&b, s->mem);
  smtpuv__sbuf_adds(&b, "user=");
  smtpuv__sbuf_adds(&b, s->user);
  smtpuv__sbuf_adds(&b, "\001auth=Bearer ");
  smtpuv__sbuf_adds(&b, tok);
  smtpuv__sbuf_adds(&b, "\001\001");
  r = b.err != 0 ? b.err : smtpuv_auth_respond(a, b.p, b.len);
  smtpuv__sbuf_free(&b);
  if (r == 0)
    s->sent = 1;
  return r;
}

static int xoauth2_step(smtpuv_auth *a, void *state, const unsigned char *chal,
                        size_t len) {
  (void)state;
  /* The only challenge after the initial response is the error report. */
  char clean[SMTPUV__AUTH_ERRLEN - 16];
  smtpuv__auth_clean_line(clean, sizeof(clean), (const char *)chal, len);
  smtpuv__auth_errorf(a, 0, "XOAUTH2: %s", clean);
  return smtpuv_auth_respond(a, "", 0);
}

const smtpuv_auth_ops smtpuv__xoauth2_ops = {
    sizeof(smtpuv_auth_ops), "XOAUTH2", SMTPUV_AUTH_OPS_RETRY_ON_REJECT,
    xoauth2_begin, xoauth2_step, NULL, xoauth2_destroy};

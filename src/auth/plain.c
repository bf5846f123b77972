/* SPDX-License-Identifier: MIT */
/* PLAIN (RFC 4616): message = [authzid] NUL authcid NUL passwd, sent as the
 * initial response. */
#include <string.h>

#include "auth/auth_int.h"

typedef struct plain_state {
  smtpuv__pwcred cred;
  int sent;
} plain_state;

static void plain_destroy(smtpuv_auth *a, void *state) {
  (void)a;
  plain_state *s = state;
  if (s == NULL)
    return;
  const smtpuv_mem *m = s->cred.mem;
  smtpuv__pwcred_clear(&s->cred);
  smtpuv__wipe_free(m, s, sizeof(*s));
}

int smtpuv__plain_create(const smtpuv_mem *m, const smtpuv_auth_credentials *c,
                         void **state) {
  plain_state *s = smtpuv__calloc(m, 1, sizeof(*s));
  if (s == NULL)
    return SMTPUV_ENOMEM;
  int err = smtpuv__pwcred_copy(&s->cred, m, c, 1);
  if (err != 0) {
    smtpuv__free(m, s);
    return err;
  }
  *state = s;
  return 0;
}

static int plain_begin(smtpuv_auth *a, void *state, unsigned flags) {
  (void)flags;
  plain_state *s = state;
  s->sent = 0;
  if (s->cred.user[0] == '\0' || s->cred.pass[0] == '\0')
    return smtpuv__auth_errorf(a, SMTPUV_ECREDENTIALS,
                               "PLAIN: the username and password must not be "
                               "empty");
  smtpuv__sbuf b;
  smtpuv__sbuf_init(&b, s->cred.mem);
  smtpuv__sbuf_adds(&b, s->cred.authzid);
  smtpuv__sbuf_addc(&b, '\0');
  smtpuv__sbuf_adds(&b, s->cred.user);
  smtpuv__sbuf_addc(&b, '\0');
  smtpuv__sbuf_adds(&b, s->cred.pass);
  int r = b.err != 0 ? b.err : smtpuv_auth_respond(a, b.p, b.len);
  smtpuv__sbuf_free(&b);
  if (r == 0)
    s->sent = 1;
  return r;
}

static int plain_step(smtpuv_auth *a, void *state, const unsigned char *chal,
                      size_t len) {
  (void)state;
  (void)chal;
  (void)len;
  /* The response went with AUTH (or, when the line would be too long,
     after the empty 334: the session sends it). Nothing else is expected. */
  return smtpuv__auth_errorf(a, SMTPUV_EPROTO,
                             "PLAIN: unexpected challenge from the server");
}

const smtpuv_auth_ops smtpuv__plain_ops = {
    sizeof(smtpuv_auth_ops), "PLAIN", 0, plain_begin, plain_step, NULL,
    plain_destroy};

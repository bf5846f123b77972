/* SPDX-License-Identifier: MIT */
/* LOGIN (draft-murchison-sasl-login): no initial response; the first
 * challenge ("Username:") gets the username, the second ("Password:") the
 * password. The prompts are not checked: servers word them differently. */
#include "auth/auth_int.h"

typedef struct login_state {
  smtpuv__pwcred cred;
  int step;
} login_state;

static void login_destroy(smtpuv_auth *a, void *state) {
  (void)a;
  login_state *s = state;
  if (s == NULL)
    return;
  const smtpuv_mem *m = s->cred.mem;
  smtpuv__pwcred_clear(&s->cred);
  smtpuv__wipe_free(m, s, sizeof(*s));
}

int smtpuv__login_create(const smtpuv_mem *m, const smtpuv_auth_credentials *c,
                         void **state) {
  login_state *s = smtpuv__calloc(m, 1, sizeof(*s));
  if (s == NULL)
    return SMTPUV_ENOMEM;
  int err = smtpuv__pwcred_copy(&s->cred, m, c, 0);
  if (err != 0) {
    smtpuv__free(m, s);
    return err;
  }
  *state = s;
  return 0;
}

static int login_begin(smtpuv_auth *a, void *state, unsigned flags) {
  (void)flags;
  login_state *s = state;
  s->step = 0;
  if (s->cred.user[0] == '\0' || s->cred.pass[0] == '\0')
    return smtpuv__auth_errorf(a, SMTPUV_ECREDENTIALS,
                               "LOGIN: the username and password must not be "
                               "empty");
  return 0; /* no initial response */
}

static int login_step(smtpuv_auth *a, void *state, const unsigned char *chal,
                      size_t len) {
  (void)chal;
  (void)len;
  login_state *s = state;
  const char *v;
  size_t n;
  switch (s->step) {
  case 0:
    v = s->cred.user;
    break;
  case 1:
    v = s->cred.pass;
    break;
  default:
    return smtpuv__auth_errorf(a, SMTPUV_EPROTO,
                               "LOGIN: unexpected third challenge from the "
                               "server");
  }
  for (n = 0; v[n] != '\0'; n++)
    ;
  int r = smtpuv_auth_respond(a, v, n);
  if (r == 0)
    s->step++;
  return r;
}

const smtpuv_auth_ops smtpuv__login_ops = {
    sizeof(smtpuv_auth_ops), "LOGIN", 0, login_begin, login_step, NULL,
    login_destroy};

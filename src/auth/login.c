/* LOGIN (draft-murchison-sasl-login): no initial response; the first
 * challenge ("Username:") gets the username, the second ("Password:") the
 * password. The prompts are not checked: servers word them differently. */
#include "auth/auth_int.h"

typedef struct login_state {
  const smtpuv_mem *mem;
  char *user, *pass;
  int step;
} login_state;

static void login_destroy(smtpuv_auth *a, void *state) {
  (void)a;
  login_state *s = state;
  if (s == NULL)
    return;
  const smtpuv_mem *m = s->mem;
  smtpuv__secret_free(m, s->user);
  smtpuv__secret_free(m, s->pass);
  smtpuv__wipe_free(m, s, sizeof(*s));
}

int smtpuv__login_create(const smtpuv_mem *m, const smtpuv_auth_credentials *c,
                         void **state) {
  login_state *s = smtpuv__calloc(m, 1, sizeof(*s));
  if (s == NULL)
    return SMTPUV_ENOMEM;
  int err = 0;
  s->mem = m;
  s->user = smtpuv__secret_dup(m, c->username, &err);
  s->pass = smtpuv__secret_dup(m, c->password, &err);
  if (err != 0) {
    login_destroy(NULL, s);
    return err;
  }
  *state = s;
  return 0;
}

static int login_begin(smtpuv_auth *a, void *state, unsigned flags) {
  (void)flags;
  login_state *s = state;
  s->step = 0;
  if (s->user[0] == '\0' || s->pass[0] == '\0')
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
    v = s->user;
    break;
  case 1:
    v = s->pass;
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

/* SPDX-License-Identifier: MIT */
/* Mechanism table, constructors, smtpuv_auth_select() and the `auto`
 * authenticator. The order and its reasons are documented in auth.h. */
#include <stdio.h>
#include <string.h>

#include "auth/auth_int.h"

static const smtpuv__mech_info mech_table[] = {
    {SMTPUV_AUTH_MECH_PLAIN, &smtpuv__plain_ops, smtpuv__plain_create, 1, 0,
     0},
    {SMTPUV_AUTH_MECH_LOGIN, &smtpuv__login_ops, smtpuv__login_create, 1, 0,
     0},
    {SMTPUV_AUTH_MECH_CRAM_MD5, &smtpuv__cram_md5_ops, smtpuv__cram_md5_create,
     1, 0, 0},
    {SMTPUV_AUTH_MECH_SCRAM_SHA_1, &smtpuv__scram_sha1_ops,
     smtpuv__scram_sha1_create, 1, 0, 1},
    {SMTPUV_AUTH_MECH_SCRAM_SHA_256, &smtpuv__scram_sha256_ops,
     smtpuv__scram_sha256_create, 1, 0, 1},
    {SMTPUV_AUTH_MECH_XOAUTH2, &smtpuv__xoauth2_ops, smtpuv__xoauth2_create, 0,
     1, 0},
    {SMTPUV_AUTH_MECH_OAUTHBEARER, &smtpuv__oauthbearer_ops,
     smtpuv__oauthbearer_create, 0, 1, 0},
};

/* auto's preference, strongest first (see auth.h) */
static const smtpuv_auth_mech token_order[] = {SMTPUV_AUTH_MECH_OAUTHBEARER,
                                               SMTPUV_AUTH_MECH_XOAUTH2};
static const smtpuv_auth_mech password_order[] = {
    SMTPUV_AUTH_MECH_SCRAM_SHA_256, SMTPUV_AUTH_MECH_SCRAM_SHA_1,
    SMTPUV_AUTH_MECH_PLAIN, SMTPUV_AUTH_MECH_LOGIN, SMTPUV_AUTH_MECH_CRAM_MD5};

const smtpuv__mech_info *smtpuv__mech_lookup(smtpuv_auth_mech mech) {
  for (size_t i = 0; i < sizeof(mech_table) / sizeof(mech_table[0]); i++)
    if (mech_table[i].mech == mech)
      return &mech_table[i];
  return NULL;
}

const char *smtpuv_auth_mech_name(smtpuv_auth_mech mech) {
  const smtpuv__mech_info *info = smtpuv__mech_lookup(mech);
  return info != NULL ? info->ops->name : "";
}

static int ieq(const char *a, size_t alen, const char *b) {
  size_t i = 0;
  for (; i < alen && b[i] != '\0'; i++) {
    char x = a[i], y = b[i];
    if (x >= 'a' && x <= 'z')
      x = (char)(x - 'a' + 'A');
    if (y >= 'a' && y <= 'z')
      y = (char)(y - 'a' + 'A');
    if (x != y)
      return 0;
  }
  return i == alen && b[i] == '\0';
}

smtpuv_auth_mech smtpuv_auth_mech_from_name(const char *name) {
  if (name == NULL)
    return SMTPUV_AUTH_MECH_NONE;
  for (size_t i = 0; i < sizeof(mech_table) / sizeof(mech_table[0]); i++)
    if (ieq(name, strlen(name), mech_table[i].ops->name))
      return mech_table[i].mech;
  return SMTPUV_AUTH_MECH_NONE;
}

int smtpuv__creds_copy(smtpuv_auth_credentials *dst,
                       const smtpuv_auth_credentials *src) {
  if (src == NULL || src->struct_size < sizeof(size_t))
    return SMTPUV_EINVAL;
  memset(dst, 0, sizeof(*dst));
#define END(f) (offsetof(smtpuv_auth_credentials, f) + sizeof(dst->f))
  static const size_t ends[] = {
      END(struct_size), END(username), END(password), END(authzid),
      END(token_cb),    END(token_data), END(token), END(host),
      END(port),        END(disabled)};
#undef END
  /* whole fields only: never half a pointer */
  size_t n = smtpuv__struct_prefix(src->struct_size, ends,
                                   sizeof(ends) / sizeof(ends[0]));
  memcpy(dst, src, n);
  dst->struct_size = sizeof(*dst);
  return 0;
}

static int nonempty(const char *s) { return s != NULL && s[0] != '\0'; }

static int has_token(const smtpuv_auth_credentials *c) {
  return c->token_cb != NULL || nonempty(c->token);
}

static int has_password(const smtpuv_auth_credentials *c) {
  return nonempty(c->username) && nonempty(c->password);
}

/* no byte <= 0x20 or 0x7f (UTF-8 passes): CRAM-MD5's username */
static int no_space_or_control(const char *s) {
  for (; *s != '\0'; s++)
    if ((unsigned char)*s <= 0x20 || (unsigned char)*s == 0x7f)
      return 0;
  return 1;
}

/* printable ASCII without space (0x21..0x7e) */
static int graphic(const char *s) {
  return smtpuv__auth_printable(s) && strchr(s, ' ') == NULL;
}

/* Can `mech` work with these credentials (regardless of the server)? */
static int usable(smtpuv_auth_mech mech, const smtpuv_auth_credentials *c) {
  if (c->disabled & SMTPUV_AUTH_MECH_BIT(mech))
    return 0;
  switch (mech) {
  /* each case mirrors what the mechanism's begin() accepts, so that auto
     moves on to the next mechanism instead of choosing one that fails */
  case SMTPUV_AUTH_MECH_OAUTHBEARER: {
    const char *az = c->authzid != NULL ? c->authzid : c->username;
    return has_token(c) && (az == NULL || smtpuv__auth_printable(az)) &&
           (c->host == NULL || graphic(c->host)) && c->port <= 65535;
  }
  case SMTPUV_AUTH_MECH_XOAUTH2:
    return has_token(c) && nonempty(c->username) && graphic(c->username);
  case SMTPUV_AUTH_MECH_SCRAM_SHA_256:
  case SMTPUV_AUTH_MECH_SCRAM_SHA_1:
    return has_password(c) && smtpuv__auth_printable(c->username) &&
           smtpuv__auth_printable(c->password) &&
           (c->authzid == NULL || smtpuv__auth_printable(c->authzid));
  case SMTPUV_AUTH_MECH_PLAIN:
    return has_password(c);
  case SMTPUV_AUTH_MECH_LOGIN:
    /* no authorization id: never silently act as the wrong user */
    return has_password(c) && !nonempty(c->authzid);
  case SMTPUV_AUTH_MECH_CRAM_MD5:
    return has_password(c) && !nonempty(c->authzid) &&
           no_space_or_control(c->username);
  default:
    return 0;
  }
}

static int offered_has(const char *offered, const char *name) {
  const char *p = offered;
  while (*p != '\0') {
    while (*p == ' ')
      p++;
    const char *e = p;
    while (*e != '\0' && *e != ' ')
      e++;
    if (e > p && ieq(p, (size_t)(e - p), name))
      return 1;
    p = e;
  }
  return 0;
}

static void list_usable(char *buf, size_t len,
                        const smtpuv_auth_credentials *c) {
  size_t used = 0;
  buf[0] = '\0';
  const smtpuv_auth_mech *orders[2] = {token_order, password_order};
  size_t counts[2] = {sizeof(token_order) / sizeof(token_order[0]),
                      sizeof(password_order) / sizeof(password_order[0])};
  for (int k = 0; k < 2; k++)
    for (size_t i = 0; i < counts[k]; i++) {
      if (!usable(orders[k][i], c))
        continue;
      int n = snprintf(buf + used, len - used, "%s%s", used ? " " : "",
                       smtpuv_auth_mech_name(orders[k][i]));
      if (n < 0 || (size_t)n >= len - used)
        return;
      used += (size_t)n;
    }
}

int smtpuv_auth_select(const char *offered,
                       const smtpuv_auth_credentials *creds,
                       smtpuv_auth_mech *mech, char *errbuf, size_t errlen) {
  smtpuv_auth_credentials c;
  if (offered == NULL || mech == NULL || smtpuv__creds_copy(&c, creds) != 0)
    return SMTPUV_EINVAL;
  if (errbuf != NULL && errlen > 0)
    errbuf[0] = '\0';
  const smtpuv_auth_mech *orders[2] = {token_order, password_order};
  size_t counts[2] = {sizeof(token_order) / sizeof(token_order[0]),
                      sizeof(password_order) / sizeof(password_order[0])};
  for (int k = 0; k < 2; k++)
    for (size_t i = 0; i < counts[k]; i++) {
      smtpuv_auth_mech m = orders[k][i];
      if (usable(m, &c) && offered_has(offered, smtpuv_auth_mech_name(m))) {
        *mech = m;
        return 0;
      }
    }
  *mech = SMTPUV_AUTH_MECH_NONE;
  if (errbuf != NULL && errlen > 0) {
    char mine[128], theirs[160];
    list_usable(mine, sizeof(mine), &c);
    smtpuv__auth_clean_line(theirs, sizeof(theirs), offered, strlen(offered));
    const char *have =
        mine[0] != '\0' ? mine
                        : "nothing (no username and password, no OAuth token "
                          "source)";
    if (theirs[0] == '\0')
      snprintf(errbuf, errlen,
               "no usable authentication mechanism: the server does not "
               "advertise AUTH; the credentials allow %s",
               have);
    else
      snprintf(errbuf, errlen,
               "no usable authentication mechanism: the server offers %s; "
               "the credentials allow %s",
               theirs, have);
  }
  return SMTPUV_EAUTHMECH;
}

/* ---- constructors -------------------------------------------------------- */

static int make(const smtpuv_mem *mem, const smtpuv__mech_info *info,
                const smtpuv_auth_credentials *c, smtpuv_auth **out) {
  smtpuv_auth *a;
  int r = smtpuv__auth_alloc(mem, info->ops, &a);
  if (r != 0)
    return r;
  r = info->create(&a->mem, c, &a->state);
  if (r == 0 && info->needs_token)
    r = smtpuv__auth_set_token_source(a, c);
  if (r != 0) {
    smtpuv_auth_free(a);
    return r;
  }
  *out = a;
  return 0;
}

static int creds_fit(const smtpuv__mech_info *info,
                     const smtpuv_auth_credentials *c) {
  if (info->needs_password && (c->username == NULL || c->password == NULL))
    return 0;
  if (info->mech == SMTPUV_AUTH_MECH_XOAUTH2 && c->username == NULL)
    return 0;
  return 1;
}

int smtpuv_auth_mech_new(const smtpuv_mem *mem, smtpuv_auth_mech mech,
                         const smtpuv_auth_credentials *creds,
                         smtpuv_auth **out) {
  smtpuv_auth_credentials c;
  const smtpuv__mech_info *info = smtpuv__mech_lookup(mech);
  if (out == NULL || info == NULL || smtpuv__creds_copy(&c, creds) != 0 ||
      !creds_fit(info, &c))
    return SMTPUV_EINVAL;
  return make(mem, info, &c, out);
}

static int password_new(const smtpuv_mem *mem, smtpuv_auth_mech mech,
                        const char *authzid, const char *user,
                        const char *pass, smtpuv_auth **out) {
  smtpuv_auth_credentials c = SMTPUV_AUTH_CREDENTIALS_INIT;
  c.authzid = authzid;
  c.username = user;
  c.password = pass;
  return smtpuv_auth_mech_new(mem, mech, &c, out);
}

int smtpuv_auth_plain_new(const smtpuv_mem *mem, const char *authzid,
                          const char *username, const char *password,
                          smtpuv_auth **out) {
  return password_new(mem, SMTPUV_AUTH_MECH_PLAIN, authzid, username,
                      password, out);
}

int smtpuv_auth_login_new(const smtpuv_mem *mem, const char *username,
                          const char *password, smtpuv_auth **out) {
  return password_new(mem, SMTPUV_AUTH_MECH_LOGIN, NULL, username, password,
                      out);
}

int smtpuv_auth_cram_md5_new(const smtpuv_mem *mem, const char *username,
                             const char *password, smtpuv_auth **out) {
  return password_new(mem, SMTPUV_AUTH_MECH_CRAM_MD5, NULL, username,
                      password, out);
}

int smtpuv_auth_scram_sha1_new(const smtpuv_mem *mem, const char *authzid,
                               const char *username, const char *password,
                               smtpuv_auth **out) {
  return password_new(mem, SMTPUV_AUTH_MECH_SCRAM_SHA_1, authzid, username,
                      password, out);
}

int smtpuv_auth_scram_sha256_new(const smtpuv_mem *mem, const char *authzid,
                                 const char *username, const char *password,
                                 smtpuv_auth **out) {
  return password_new(mem, SMTPUV_AUTH_MECH_SCRAM_SHA_256, authzid, username,
                      password, out);
}

int smtpuv_auth_xoauth2_new(const smtpuv_mem *mem, const char *username,
                            smtpuv_auth_token_cb token_cb, void *token_data,
                            smtpuv_auth **out) {
  smtpuv_auth_credentials c = SMTPUV_AUTH_CREDENTIALS_INIT;
  c.username = username;
  c.token_cb = token_cb;
  c.token_data = token_data;
  return smtpuv_auth_mech_new(mem, SMTPUV_AUTH_MECH_XOAUTH2, &c, out);
}

int smtpuv_auth_oauthbearer_new(const smtpuv_mem *mem, const char *authzid,
                                const char *host, unsigned port,
                                smtpuv_auth_token_cb token_cb,
                                void *token_data, smtpuv_auth **out) {
  smtpuv_auth_credentials c = SMTPUV_AUTH_CREDENTIALS_INIT;
  c.authzid = authzid;
  c.host = host;
  c.port = port;
  c.token_cb = token_cb;
  c.token_data = token_data;
  return smtpuv_auth_mech_new(mem, SMTPUV_AUTH_MECH_OAUTHBEARER, &c, out);
}

/* ---- auto ------------------------------------------------------------------ */

typedef struct auto_state {
  const smtpuv_mem *mem;
  smtpuv_auth_credentials c; /* strings below, owned */
  char *username, *password, *authzid, *host;
  const smtpuv__mech_info *info; /* selected, or NULL */
  void *inner;
} auto_state;

static void auto_drop_inner(smtpuv_auth *a, auto_state *s) {
  if (s->info != NULL && s->info->ops->destroy != NULL)
    s->info->ops->destroy(a, s->inner);
  s->info = NULL;
  s->inner = NULL;
}

static void auto_destroy(smtpuv_auth *a, void *state) {
  auto_state *s = state;
  if (s == NULL)
    return;
  auto_drop_inner(a, s);
  smtpuv__secret_free(s->mem, s->username);
  smtpuv__secret_free(s->mem, s->password);
  smtpuv__secret_free(s->mem, s->authzid);
  smtpuv__secret_free(s->mem, s->host);
  smtpuv__wipe_free(s->mem, s, sizeof(*s));
}

static int auto_begin(smtpuv_auth *a, void *state, unsigned flags) {
  auto_state *s = state;
  if (s->info == NULL)
    return SMTPUV_ESTATE;
  return s->info->ops->begin(a, s->inner, flags);
}

static int auto_step(smtpuv_auth *a, void *state, const unsigned char *chal,
                     size_t len) {
  auto_state *s = state;
  if (s->info == NULL)
    return SMTPUV_ESTATE;
  return s->info->ops->step(a, s->inner, chal, len);
}

static int auto_success(smtpuv_auth *a, void *state) {
  auto_state *s = state;
  if (s->info == NULL || s->info->ops->success == NULL)
    return 0;
  return s->info->ops->success(a, s->inner);
}

static const smtpuv_auth_ops auto_ops = {sizeof(smtpuv_auth_ops),
                                         "AUTO",
                                         0,
                                         auto_begin,
                                         auto_step,
                                         auto_success,
                                         auto_destroy};

static int auto_select(smtpuv_auth *a, const char *offered) {
  auto_state *s = a->state;
  smtpuv_auth_mech mech;
  int r = smtpuv_auth_select(offered, &s->c, &mech, a->err, sizeof(a->err));
  if (r != 0)
    return r;
  const smtpuv__mech_info *info = smtpuv__mech_lookup(mech);
  if (info != s->info) {
    void *inner = NULL;
    r = info->create(s->mem, &s->c, &inner);
    if (r != 0)
      return r;
    auto_drop_inner(a, s);
    s->info = info;
    s->inner = inner;
  }
  snprintf(a->name, sizeof(a->name), "%s", info->ops->name);
  a->flags = info->ops->flags;
  return 0;
}

int smtpuv_auth_auto_new(const smtpuv_mem *mem,
                         const smtpuv_auth_credentials *creds,
                         smtpuv_auth **out) {
  smtpuv_auth_credentials c;
  if (out == NULL || smtpuv__creds_copy(&c, creds) != 0 ||
      (!has_password(&c) && !has_token(&c)))
    return SMTPUV_EINVAL;
  smtpuv_auth *a;
  int r = smtpuv__auth_alloc(mem, &auto_ops, &a);
  if (r != 0)
    return r;
  auto_state *s = smtpuv__calloc(&a->mem, 1, sizeof(*s));
  if (s == NULL) {
    smtpuv_auth_free(a);
    return SMTPUV_ENOMEM;
  }
  a->state = s;
  a->select = auto_select;
  s->mem = &a->mem;
  int err = 0;
  s->username = smtpuv__secret_dup(s->mem, c.username, &err);
  s->password = smtpuv__secret_dup(s->mem, c.password, &err);
  s->authzid = smtpuv__secret_dup(s->mem, c.authzid, &err);
  s->host = smtpuv__secret_dup(s->mem, c.host, &err);
  s->c = c;
  s->c.username = s->username;
  s->c.password = s->password;
  s->c.authzid = s->authzid;
  s->c.host = s->host;
  /* The token itself is held by the auth object (set below); selection
     only needs to know that there is one. */
  s->c.token = nonempty(c.token) ? "(held)" : NULL;
  if (err == 0)
    err = smtpuv__auth_set_token_source(a, &c);
  if (err != 0) {
    smtpuv_auth_free(a);
    return err;
  }
  *out = a;
  return 0;
}

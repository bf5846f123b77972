/* SPDX-License-Identifier: MIT */
/* The options builder. */
#include <string.h>
#include <sys/un.h>

#include <openssl/crypto.h>

#include "uv/client_int.h"

static const unsigned default_timeouts[SMTPUV__NTIMEOUTS] = {
    30000,  /* CONNECT */
    60000,  /* COMMAND */
    180000, /* DATA */
    600000, /* FINAL */
    60000   /* IDLE */
};

static void secret_free(const smtpuv_mem *m, char *s) {
  if (s != NULL) {
    OPENSSL_cleanse(s, strlen(s));
    smtpuv__free(m, s);
  }
}

/* Replace *dst by a copy of src (NULL allowed). */
static int set_str(const smtpuv_mem *m, char **dst, const char *src,
                   int secret) {
  char *copy = NULL;
  if (src != NULL) {
    copy = smtpuv__strdup(m, src);
    if (copy == NULL)
      return SMTPUV_ENOMEM;
  }
  if (secret)
    secret_free(m, *dst);
  else
    smtpuv__free(m, *dst);
  *dst = copy;
  return 0;
}

static void creds_clear(const smtpuv_mem *m, smtpuv_auth_credentials *c) {
  smtpuv__free(m, (char *)c->username);
  secret_free(m, (char *)c->password);
  secret_free(m, (char *)c->authzid);
  secret_free(m, (char *)c->token);
  smtpuv__free(m, (char *)c->host);
  smtpuv_auth_credentials z = SMTPUV_AUTH_CREDENTIALS_INIT;
  *c = z;
}

/* Copy a credentials struct of any valid struct_size. */
static int creds_copy(const smtpuv_mem *m, smtpuv_auth_credentials *dst,
                      const smtpuv_auth_credentials *src) {
  smtpuv_auth_credentials in = SMTPUV_AUTH_CREDENTIALS_INIT;
  size_t n = src->struct_size;
  if (n < offsetof(smtpuv_auth_credentials, password) + sizeof(char *))
    return SMTPUV_EINVAL;
  if (n > sizeof in)
    n = sizeof in;
  memcpy(&in, src, n);
  in.struct_size = sizeof in;
  smtpuv_auth_credentials out = in;
  out.username = out.password = out.authzid = out.token = out.host = NULL;
  int rc = 0;
  if ((in.username && !(out.username = smtpuv__strdup(m, in.username))) ||
      (in.password && !(out.password = smtpuv__strdup(m, in.password))) ||
      (in.authzid && !(out.authzid = smtpuv__strdup(m, in.authzid))) ||
      (in.token && !(out.token = smtpuv__strdup(m, in.token))) ||
      (in.host && !(out.host = smtpuv__strdup(m, in.host))))
    rc = SMTPUV_ENOMEM;
  if (rc != 0) {
    creds_clear(m, &out);
    return rc;
  }
  *dst = out;
  return 0;
}

int smtpuv_options_new(const smtpuv_mem *mem, smtpuv_options **out) {
  if (out == NULL)
    return SMTPUV_EINVAL;
  *out = NULL;
  if (mem != NULL && (mem->malloc == NULL || mem->free == NULL ||
                      mem->calloc == NULL || mem->realloc == NULL))
    return SMTPUV_EINVAL;
  smtpuv_mem m;
  smtpuv__mem_init(&m, mem);
  smtpuv_options *o = smtpuv__calloc(&m, 1, sizeof *o);
  if (o == NULL)
    return SMTPUV_ENOMEM;
  if (smtpuv__ssl_share_new(&m, &o->ssl_share) != 0) {
    smtpuv__free(&m, o);
    return SMTPUV_ENOMEM;
  }
  o->mem = m;
  o->tls = SMTPUV_TLS_REQUIRED;
  o->verify = 1;
  memcpy(o->timeouts, default_timeouts, sizeof o->timeouts);
  o->pipelining = 1;
  o->chunking = 1;
  o->max_connections = 1;
  o->max_connecting = SMTPUV_DEFAULT_MAX_CONNECTING;
  o->pipeline_depth = SMTPUV__DEFAULT_DEPTH;
  o->host_skip_ms = 30000;
  o->ordered = 1;
  smtpuv_auth_credentials z = SMTPUV_AUTH_CREDENTIALS_INIT;
  o->creds = z;
  *out = o;
  return 0;
}

void smtpuv__options_clear(smtpuv_options *o) {
  const smtpuv_mem *m = &o->mem;
  smtpuv__free(m, o->host);
  smtpuv__free(m, o->ca_file);
  smtpuv__free(m, o->ca_dir);
  smtpuv__free(m, o->server_name);
  smtpuv__free(m, o->ehlo);
  smtpuv__free(m, o->mechanism);
  smtpuv__free(m, o->tls_cert_file);
  smtpuv__free(m, o->tls_key_file);
  o->tls_cert_file = o->tls_key_file = NULL;
  smtpuv__free(m, o->ca_pem);
  o->ca_pem = NULL;
  o->ca_pem_len = 0;
  creds_clear(m, &o->creds);
  for (unsigned i = 0; i < o->nfallback; i++) {
    smtpuv__free(m, o->fallback[i].host);
    o->fallback[i].host = NULL;
  }
  smtpuv__free(m, o->unix_path);
  smtpuv__free(m, o->proxy_host);
  secret_free(m, o->proxy_user);
  secret_free(m, o->proxy_pass);
  o->unix_path = o->proxy_host = o->proxy_user = o->proxy_pass = NULL;
  o->nfallback = 0;
  if (o->ssl_ctx != NULL)
    SSL_CTX_free(o->ssl_ctx);
  smtpuv__ssl_share_unref(o->ssl_share);
  o->host = o->ca_file = o->ca_dir = o->server_name = o->ehlo = NULL;
  o->mechanism = NULL;
  o->ssl_ctx = NULL;
  o->ssl_share = NULL;
}

void smtpuv_options_free(smtpuv_options *o) {
  if (o == NULL)
    return;
  smtpuv_mem m = o->mem;
  smtpuv__options_clear(o);
  smtpuv__free(&m, o);
}

int smtpuv__options_copy(smtpuv_options *dst, const smtpuv_options *src) {
  const smtpuv_mem *m = &src->mem;
  *dst = *src;
  dst->host = dst->ca_file = dst->ca_dir = dst->server_name = NULL;
  dst->ehlo = dst->mechanism = NULL;
  dst->tls_cert_file = dst->tls_key_file = NULL;
  dst->ssl_ctx = NULL;
  dst->ssl_share = NULL;
  dst->ca_pem = NULL; /* copied below */
  smtpuv_auth_credentials z = SMTPUV_AUTH_CREDENTIALS_INIT;
  dst->creds = z;
  for (unsigned i = 0; i < src->nfallback; i++)
    dst->fallback[i].host = NULL;
  dst->nfallback = 0;
  dst->unix_path = dst->proxy_host = dst->proxy_user = dst->proxy_pass = NULL;
  if (set_str(m, &dst->unix_path, src->unix_path, 0) ||
      set_str(m, &dst->proxy_host, src->proxy_host, 0) ||
      set_str(m, &dst->proxy_user, src->proxy_user, 1) ||
      set_str(m, &dst->proxy_pass, src->proxy_pass, 1)) {
    smtpuv__options_clear(dst);
    return SMTPUV_ENOMEM;
  }
  for (unsigned i = 0; i < src->nfallback; i++) {
    if (set_str(m, &dst->fallback[i].host, src->fallback[i].host, 0)) {
      smtpuv__options_clear(dst);
      return SMTPUV_ENOMEM;
    }
    dst->nfallback = i + 1;
  }
  if (set_str(m, &dst->host, src->host, 0) ||
      set_str(m, &dst->ca_file, src->ca_file, 0) ||
      set_str(m, &dst->ca_dir, src->ca_dir, 0) ||
      set_str(m, &dst->server_name, src->server_name, 0) ||
      set_str(m, &dst->ehlo, src->ehlo, 0) ||
      set_str(m, &dst->mechanism, src->mechanism, 0) ||
      set_str(m, &dst->tls_cert_file, src->tls_cert_file, 0) ||
      set_str(m, &dst->tls_key_file, src->tls_key_file, 0) ||
      (src->has_creds && creds_copy(m, &dst->creds, &src->creds))) {
    smtpuv__options_clear(dst);
    return SMTPUV_ENOMEM;
  }
  if (src->ca_pem != NULL) {
    dst->ca_pem = smtpuv__malloc(m, src->ca_pem_len);
    if (dst->ca_pem == NULL) {
      smtpuv__options_clear(dst);
      return SMTPUV_ENOMEM;
    }
    memcpy(dst->ca_pem, src->ca_pem, src->ca_pem_len);
  }
  if (src->ssl_ctx != NULL) {
    SSL_CTX_up_ref(src->ssl_ctx);
    dst->ssl_ctx = src->ssl_ctx;
  }
  dst->ssl_share = smtpuv__ssl_share_ref(src->ssl_share);
  return 0;
}

int smtpuv__options_ssl_ctx(const smtpuv_options *o, SSL_CTX **out, char *err,
                            size_t errlen) {
  if (o->ssl_ctx != NULL) {
    if (SSL_CTX_up_ref(o->ssl_ctx) != 1)
      return SMTPUV_ENOMEM;
    *out = o->ssl_ctx;
    return 0;
  }
  return smtpuv__ssl_share_get_pem(o->ssl_share, o->ca_pem, o->ca_pem_len,
                                   o->ca_file, o->ca_dir, out, err, errlen);
}

/* A host name, IPv4 or IPv6 literal: no control characters, spaces or
   brackets inside, not empty. */
static int valid_host(const char *h) {
  if (h == NULL || *h == '\0' || strlen(h) > 255)
    return 0;
  for (const unsigned char *p = (const unsigned char *)h; *p; p++)
    if (*p <= 0x20 || *p >= 0x7f || *p == '/' || *p == '@')
      return 0;
  return 1;
}

int smtpuv_options_set_host(smtpuv_options *o, const char *host) {
  if (o == NULL || !valid_host(host))
    return SMTPUV_EINVAL;
  return set_str(&o->mem, &o->host, host, 0);
}

int smtpuv_options_set_port(smtpuv_options *o, unsigned port) {
  if (o == NULL || port > 65535)
    return SMTPUV_EINVAL;
  o->port = port;
  return 0;
}

int smtpuv_options_set_tls(smtpuv_options *o, smtpuv_tls_mode mode) {
  if (o == NULL || (unsigned)mode > SMTPUV_TLS_NONE)
    return SMTPUV_EINVAL;
  o->tls = mode;
  o->tls_set = 1;
  return 0;
}

int smtpuv_options_set_ssl_ctx(smtpuv_options *o, struct ssl_ctx_st *ctx) {
  if (o == NULL)
    return SMTPUV_EINVAL;
  if (ctx != NULL && SSL_CTX_up_ref(ctx) != 1)
    return SMTPUV_ENOMEM;
  if (o->ssl_ctx != NULL)
    SSL_CTX_free(o->ssl_ctx);
  o->ssl_ctx = ctx;
  return 0;
}

int smtpuv_options_set_ca(smtpuv_options *o, const char *file,
                          const char *dir) {
  if (o == NULL || (file != NULL && *file == '\0') ||
      (dir != NULL && *dir == '\0'))
    return SMTPUV_EINVAL;
  char *f = NULL, *d = NULL;
  smtpuv__ssl_share *share = NULL;
  if (set_str(&o->mem, &f, file, 0) || set_str(&o->mem, &d, dir, 0) ||
      smtpuv__ssl_share_new(&o->mem, &share) != 0) {
    smtpuv__free(&o->mem, f);
    smtpuv__free(&o->mem, d);
    return SMTPUV_ENOMEM;
  }
  smtpuv__free(&o->mem, o->ca_file);
  smtpuv__free(&o->mem, o->ca_dir);
  o->ca_file = f;
  o->ca_dir = d;
  /* other trust anchors, another context; clients made before keep the
     one they share */
  smtpuv__ssl_share_unref(o->ssl_share);
  o->ssl_share = share;
  return 0;
}

int smtpuv_options_set_tls_server_name(smtpuv_options *o, const char *name) {
  if (o == NULL || (name != NULL && !valid_host(name)))
    return SMTPUV_EINVAL;
  return set_str(&o->mem, &o->server_name, name, 0);
}

int smtpuv_options_set_tls_verify(smtpuv_options *o, int verify) {
  if (o == NULL)
    return SMTPUV_EINVAL;
  o->verify = verify != 0;
  return 0;
}

/* An EHLO argument: a domain or an address literal, printable ASCII
   without spaces. */
int smtpuv__valid_ehlo(const char *s);
int smtpuv__valid_ehlo(const char *s) {
  if (s == NULL || *s == '\0' || strlen(s) > 255)
    return 0;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++)
    if (*p <= 0x20 || *p >= 0x7f)
      return 0;
  return 1;
}

int smtpuv_options_set_ehlo_name(smtpuv_options *o, const char *name) {
  if (o == NULL || (name != NULL && !smtpuv__valid_ehlo(name)))
    return SMTPUV_EINVAL;
  return set_str(&o->mem, &o->ehlo, name, 0);
}

int smtpuv_options_set_auth_credentials(smtpuv_options *o,
                                        const smtpuv_auth_credentials *creds) {
  if (o == NULL)
    return SMTPUV_EINVAL;
  if (creds == NULL) {
    creds_clear(&o->mem, &o->creds);
    o->has_creds = 0;
    return 0;
  }
  smtpuv_auth_credentials c;
  int rc = creds_copy(&o->mem, &c, creds);
  if (rc != 0)
    return rc;
  creds_clear(&o->mem, &o->creds);
  o->creds = c;
  o->has_creds = 1;
  return 0;
}

int smtpuv_options_set_credentials(smtpuv_options *o, const char *user,
                                   const char *password, const char *authzid) {
  if (o == NULL)
    return SMTPUV_EINVAL;
  if (user == NULL)
    return smtpuv_options_set_auth_credentials(o, NULL);
  if (password == NULL)
    return SMTPUV_EINVAL;
  smtpuv_auth_credentials c = SMTPUV_AUTH_CREDENTIALS_INIT;
  c.username = user;
  c.password = password;
  c.authzid = authzid;
  return smtpuv_options_set_auth_credentials(o, &c);
}

int smtpuv_options_set_authenticator(smtpuv_options *o, smtpuv_auth *auth) {
  if (o == NULL)
    return SMTPUV_EINVAL;
  o->authenticator = auth;
  return 0;
}

int smtpuv_options_set_auth_mechanism(smtpuv_options *o,
                                      const char *mechanism) {
  if (o == NULL || mechanism == NULL)
    return SMTPUV_EINVAL;
  size_t n = strlen(mechanism);
  if (n == 0 || n > 20)
    return SMTPUV_EINVAL;
  for (size_t i = 0; i < n; i++) {
    char ch = mechanism[i];
    if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
          (ch >= '0' && ch <= '9') || ch == '-' || ch == '_'))
      return SMTPUV_EINVAL;
  }
  int is_auto = n == 4 && (mechanism[0] | 0x20) == 'a' &&
                (mechanism[1] | 0x20) == 'u' && (mechanism[2] | 0x20) == 't' &&
                (mechanism[3] | 0x20) == 'o';
  if (!is_auto && smtpuv_auth_mech_from_name(mechanism) == SMTPUV_AUTH_MECH_NONE)
    return SMTPUV_EINVAL;
  return set_str(&o->mem, &o->mechanism, is_auto ? NULL : mechanism, 0);
}

int smtpuv_options_set_allow_plaintext_auth(smtpuv_options *o, int allow) {
  if (o == NULL)
    return SMTPUV_EINVAL;
  o->allow_plain_auth = allow != 0;
  return 0;
}

int smtpuv_options_set_timeout(smtpuv_options *o, smtpuv_timeout which,
                               unsigned ms) {
  if (o == NULL || (unsigned)which >= SMTPUV__NTIMEOUTS)
    return SMTPUV_EINVAL;
  o->timeouts[which] = ms;
  return 0;
}

int smtpuv_options_set_pipelining(smtpuv_options *o, int enable) {
  if (o == NULL)
    return SMTPUV_EINVAL;
  o->pipelining = enable != 0;
  return 0;
}

int smtpuv_options_set_chunking(smtpuv_options *o, int enable) {
  if (o == NULL)
    return SMTPUV_EINVAL;
  o->chunking = enable != 0;
  return 0;
}

int smtpuv_options_set_require_all_recipients(smtpuv_options *o, int enable) {
  if (o == NULL)
    return SMTPUV_EINVAL;
  o->require_all = enable != 0;
  return 0;
}

int smtpuv_options_set_trace(smtpuv_options *o, smtpuv_trace_cb cb,
                             void *data) {
  if (o == NULL)
    return SMTPUV_EINVAL;
  o->trace = cb;
  o->trace_data = cb != NULL ? data : NULL;
  return 0;
}

/* ---- TLS extras: certificate pinning, client certificate ---------------- */

static int hex_nibble(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

int smtpuv_options_set_tls_fingerprint(smtpuv_options *o,
                                       const char *sha256) {
  if (o == NULL)
    return SMTPUV_EINVAL;
  if (sha256 == NULL) {
    o->has_tls_pin = 0;
    memset(o->tls_pin, 0, sizeof o->tls_pin);
    return 0;
  }
  unsigned char pin[32];
  size_t n = 0;
  for (const char *p = sha256; *p;) {
    int hi = hex_nibble(p[0]), lo = hi < 0 ? -1 : hex_nibble(p[1]);
    if (hi < 0 || lo < 0 || n == sizeof pin)
      return SMTPUV_EINVAL;
    pin[n++] = (unsigned char)(hi << 4 | lo);
    p += 2;
    if (*p == ':' && p[1] != '\0')
      p++;
  }
  if (n != sizeof pin)
    return SMTPUV_EINVAL;
  memcpy(o->tls_pin, pin, sizeof pin);
  o->has_tls_pin = 1;
  return 0;
}

int smtpuv_options_set_tls_client_cert(smtpuv_options *o,
                                       const char *cert_file,
                                       const char *key_file) {
  if (o == NULL || (cert_file == NULL && key_file != NULL) ||
      (cert_file != NULL && *cert_file == '\0') ||
      (key_file != NULL && *key_file == '\0'))
    return SMTPUV_EINVAL;
  char *c = NULL, *k = NULL;
  if (set_str(&o->mem, &c, cert_file, 0) || set_str(&o->mem, &k, key_file, 0)) {
    smtpuv__free(&o->mem, c);
    smtpuv__free(&o->mem, k);
    return SMTPUV_ENOMEM;
  }
  smtpuv__free(&o->mem, o->tls_cert_file);
  smtpuv__free(&o->mem, o->tls_key_file);
  o->tls_cert_file = c;
  o->tls_key_file = k;
  return 0;
}

/* ---- the pool ------------------------------------------------------------------ */

int smtpuv_options_set_max_connections(smtpuv_options *o, unsigned n) {
  if (o == NULL || n < 1 || n > 1000)
    return SMTPUV_EINVAL;
  o->max_connections = n;
  return 0;
}

int smtpuv_options_set_max_connecting(smtpuv_options *o, unsigned n) {
  if (o == NULL || n < 1 || n > 1000)
    return SMTPUV_EINVAL;
  o->max_connecting = n;
  return 0;
}

int smtpuv_options_set_max_messages_per_connection(smtpuv_options *o,
                                                   unsigned n) {
  if (o == NULL)
    return SMTPUV_EINVAL;
  o->max_messages = n;
  return 0;
}

int smtpuv_options_set_pipeline_depth(smtpuv_options *o, unsigned n) {
  if (o == NULL || n < 1 || n > 64)
    return SMTPUV_EINVAL;
  o->pipeline_depth = n;
  return 0;
}

int smtpuv_options_set_rate_limit(smtpuv_options *o,
                                  double messages_per_second, unsigned burst,
                                  double connections_per_second) {
  /* 0 (off), or from one per 1000 s to 10^9 per second */
  if (o == NULL || !(messages_per_second >= 0) ||
      !(connections_per_second >= 0) || messages_per_second > 1e9 ||
      connections_per_second > 1e9 ||
      (messages_per_second != 0 && messages_per_second < 0.001) ||
      (connections_per_second != 0 && connections_per_second < 0.001))
    return SMTPUV_EINVAL;
  o->msg_rate = messages_per_second;
  o->msg_burst = burst;
  o->conn_rate = connections_per_second;
  return 0;
}

int smtpuv_options_add_fallback_host(smtpuv_options *o, const char *host,
                                     unsigned port) {
  if (o == NULL || !valid_host(host) || port > 65535)
    return SMTPUV_EINVAL;
  if (o->nfallback >= SMTPUV__MAX_FALLBACK)
    return SMTPUV_ELIMIT;
  char *copy = NULL;
  if (set_str(&o->mem, &copy, host, 0) != 0)
    return SMTPUV_ENOMEM;
  o->fallback[o->nfallback].host = copy;
  o->fallback[o->nfallback].port = port;
  o->nfallback++;
  return 0;
}

int smtpuv_options_set_host_skip_time(smtpuv_options *o, unsigned skip_ms) {
  if (o == NULL)
    return SMTPUV_EINVAL;
  o->host_skip_ms = skip_ms;
  return 0;
}

int smtpuv_options_set_retry(smtpuv_options *o, unsigned max_attempts,
                             unsigned base_ms, unsigned max_ms,
                             unsigned deadline_ms) {
  if (o == NULL || max_attempts > 100 || (max_attempts > 1 && base_ms == 0) ||
      (max_ms != 0 && max_ms < base_ms))
    return SMTPUV_EINVAL;
  o->retry_max = max_attempts;
  o->retry_base = base_ms;
  o->retry_cap = max_ms != 0 ? max_ms : base_ms;
  o->retry_deadline = deadline_ms;
  return 0;
}

int smtpuv_options_set_queue_limits(smtpuv_options *o, size_t high,
                                    size_t low) {
  if (o == NULL || (high != 0 && low >= high))
    return SMTPUV_EINVAL;
  o->queue_high = high;
  o->queue_low = high != 0 ? low : 0;
  return 0;
}

int smtpuv_options_set_ordered_callbacks(smtpuv_options *o, int ordered) {
  if (o == NULL)
    return SMTPUV_EINVAL;
  o->ordered = ordered != 0;
  return 0;
}

/* ---- CA certificates from memory (issue 13) ---------------------------- */

int smtpuv_options_set_ca_pem(smtpuv_options *o, const char *pem,
                              size_t len) {
  if (o == NULL || (pem == NULL && len != 0))
    return SMTPUV_EINVAL;
  char *copy = NULL;
  if (pem != NULL) {
    int n = smtpuv__tls_pem_add(NULL, pem, len); /* at least one cert */
    if (n < 0)
      return n;
    copy = smtpuv__malloc(&o->mem, len);
    if (copy == NULL)
      return SMTPUV_ENOMEM;
    memcpy(copy, pem, len);
  }
  smtpuv__ssl_share *share = NULL;
  if (smtpuv__ssl_share_new(&o->mem, &share) != 0) {
    smtpuv__free(&o->mem, copy);
    return SMTPUV_ENOMEM;
  }
  smtpuv__free(&o->mem, o->ca_pem);
  o->ca_pem = copy;
  o->ca_pem_len = copy != NULL ? len : 0;
  /* other trust anchors, another context (as set_ca()) */
  smtpuv__ssl_share_unref(o->ssl_share);
  o->ssl_share = share;
  return 0;
}

/* ---- transports and LMTP (issue 14) ------------------------------------------ */

int smtpuv_options_set_protocol(smtpuv_options *o, smtpuv_protocol protocol) {
  if (o == NULL ||
      (protocol != SMTPUV_PROTOCOL_SMTP && protocol != SMTPUV_PROTOCOL_LMTP))
    return SMTPUV_EINVAL;
  o->lmtp = protocol == SMTPUV_PROTOCOL_LMTP;
  return 0;
}

int smtpuv_options_set_unix_socket(smtpuv_options *o, const char *path) {
  if (o == NULL)
    return SMTPUV_EINVAL;
  if (path != NULL) {
    struct sockaddr_un un;
    if (*path == '\0' || strlen(path) >= sizeof un.sun_path ||
        o->has_source || o->proxy_host != NULL)
      return SMTPUV_EINVAL;
  }
  return set_str(&o->mem, &o->unix_path, path, 0);
}

int smtpuv_options_set_source_address(smtpuv_options *o, const char *ip) {
  if (o == NULL || (ip != NULL && o->unix_path != NULL))
    return SMTPUV_EINVAL;
  if (ip == NULL) {
    o->has_source = 0;
    return 0;
  }
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  if (uv_ip4_addr(ip, 0, (struct sockaddr_in *)&ss) != 0 &&
      uv_ip6_addr(ip, 0, (struct sockaddr_in6 *)&ss) != 0)
    return SMTPUV_EINVAL;
  o->source = ss;
  o->has_source = 1;
  return 0;
}

int smtpuv_options_set_socks5_proxy(smtpuv_options *o, const char *host,
                                    unsigned port, const char *user,
                                    const char *password) {
  if (o == NULL || (host != NULL && (!valid_host(host) || port == 0 ||
                                     port > 65535 || o->unix_path != NULL)))
    return SMTPUV_EINVAL;
  if (host != NULL &&
      ((user == NULL) != (password == NULL) ||
       (user != NULL && (*user == '\0' || *password == '\0' ||
                         strlen(user) > SMTPUV_SOCKS5_MAX_CREDENTIAL ||
                         strlen(password) > SMTPUV_SOCKS5_MAX_CREDENTIAL))))
    return SMTPUV_EINVAL;
  char *h = NULL, *u = NULL, *p = NULL;
  if (set_str(&o->mem, &h, host, 0) ||
      set_str(&o->mem, &u, host ? user : NULL, 1) ||
      set_str(&o->mem, &p, host ? password : NULL, 1)) {
    smtpuv__free(&o->mem, h);
    secret_free(&o->mem, u);
    secret_free(&o->mem, p);
    return SMTPUV_ENOMEM;
  }
  smtpuv__free(&o->mem, o->proxy_host);
  secret_free(&o->mem, o->proxy_user);
  secret_free(&o->mem, o->proxy_pass);
  o->proxy_host = h;
  o->proxy_port = host ? port : 0;
  o->proxy_user = u;
  o->proxy_pass = p;
  return 0;
}

int smtpuv_options_set_tls_resumption(smtpuv_options *o, int enable) {
  if (o == NULL)
    return SMTPUV_EINVAL;
  o->tls_no_resume = enable == 0;
  return 0;
}

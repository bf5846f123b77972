/* SPDX-License-Identifier: MIT */
/* SCRAM-SHA-1 and SCRAM-SHA-256 (RFC 5802, RFC 7677), without channel
 * binding.
 *
 *   client-first  = gs2-header client-first-bare
 *   gs2-header    = "n," ["a=" saslname] ","
 *   client-first-bare = "n=" saslname ",r=" c-nonce
 *   server-first  = "r=" c-nonce s-nonce ",s=" salt ",i=" iterations [,ext]
 *   client-final  = "c=" base64(gs2-header) ",r=" nonce ",p=" base64(proof)
 *   server-final  = "v=" base64(ServerSignature) | "e=" error
 *
 *   SaltedPassword = PBKDF2-HMAC-H(password, salt, i)
 *   ClientKey = HMAC(SaltedPassword, "Client Key"), StoredKey = H(ClientKey)
 *   AuthMessage = client-first-bare "," server-first "," client-final-w/o-proof
 *   ClientProof = ClientKey XOR HMAC(StoredKey, AuthMessage)
 *   ServerSignature = HMAC(HMAC(SaltedPassword, "Server Key"), AuthMessage)
 *
 * SASLprep is not implemented: names and password must be printable ASCII,
 * for which SASLprep is the identity.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "auth/auth_int.h"
#include "auth/scram_int.h"

#define SCRAM_NONCE_BYTES 18 /* 24 base64 characters */

typedef struct scram_state {
  const smtpuv_mem *mem;
  const EVP_MD *(*md)(void);
  const char *name;
  char *authzid, *user, *pass;
  char *test_nonce;  /* test hook */
  char *gs2;         /* "n,,", "n,a=...," */
  char *first_bare;  /* "n=user,r=nonce" */
  size_t nonce_len;  /* length of the client nonce in first_bare */
  int phase;         /* 0 idle, 1 first sent, 2 final sent, 3 verified */
  unsigned char server_sig[EVP_MAX_MD_SIZE];
  unsigned server_sig_len;
} scram_state;

static void reset(scram_state *s) {
  smtpuv__secret_free(s->mem, s->gs2);
  smtpuv__secret_free(s->mem, s->first_bare);
  s->gs2 = NULL;
  s->first_bare = NULL;
  s->nonce_len = 0;
  s->phase = 0;
  OPENSSL_cleanse(s->server_sig, sizeof(s->server_sig));
  s->server_sig_len = 0;
}

static void scram_destroy(smtpuv_auth *a, void *state) {
  (void)a;
  scram_state *s = state;
  if (s == NULL)
    return;
  const smtpuv_mem *m = s->mem;
  reset(s);
  smtpuv__secret_free(m, s->authzid);
  smtpuv__secret_free(m, s->user);
  smtpuv__secret_free(m, s->pass);
  smtpuv__secret_free(m, s->test_nonce);
  smtpuv__wipe_free(m, s, sizeof(*s));
}

static int create(const smtpuv_mem *m, const smtpuv_auth_credentials *c,
                  const EVP_MD *(*md)(void), const char *name, void **state) {
  scram_state *s = smtpuv__calloc(m, 1, sizeof(*s));
  if (s == NULL)
    return SMTPUV_ENOMEM;
  int err = 0;
  s->mem = m;
  s->md = md;
  s->name = name;
  s->authzid = smtpuv__secret_dup(m, c->authzid ? c->authzid : "", &err);
  s->user = smtpuv__secret_dup(m, c->username, &err);
  s->pass = smtpuv__secret_dup(m, c->password, &err);
  if (err != 0) {
    scram_destroy(NULL, s);
    return err;
  }
  *state = s;
  return 0;
}

int smtpuv__scram_sha1_create(const smtpuv_mem *m,
                              const smtpuv_auth_credentials *c, void **state) {
  return create(m, c, EVP_sha1, "SCRAM-SHA-1", state);
}

int smtpuv__scram_sha256_create(const smtpuv_mem *m,
                                const smtpuv_auth_credentials *c,
                                void **state) {
  return create(m, c, EVP_sha256, "SCRAM-SHA-256", state);
}

/* saslname: ',' -> "=2C", '=' -> "=3D" */
static void add_saslname(smtpuv__sbuf *b, const char *v) {
  for (; *v != '\0'; v++) {
    if (*v == ',')
      smtpuv__sbuf_adds(b, "=2C");
    else if (*v == '=')
      smtpuv__sbuf_adds(b, "=3D");
    else
      smtpuv__sbuf_addc(b, *v);
  }
}

static char *sbuf_take(smtpuv__sbuf *b, int *err) {
  smtpuv__sbuf_addc(b, '\0');
  if (b->err != 0) {
    *err = b->err;
    smtpuv__sbuf_free(b);
    return NULL;
  }
  char *r = smtpuv__strndup(b->mem, (const char *)b->p, b->len - 1);
  smtpuv__sbuf_free(b);
  if (r == NULL)
    *err = SMTPUV_ENOMEM;
  return r;
}

static int scram_begin(smtpuv_auth *a, void *state, unsigned flags) {
  (void)flags;
  scram_state *s = state;
  reset(s);
  if (s->user[0] == '\0' || s->pass[0] == '\0')
    return smtpuv__auth_errorf(a, SMTPUV_ECREDENTIALS,
                               "%s: the username and password must not be "
                               "empty",
                               s->name);
  if (!smtpuv__auth_printable(s->user) || !smtpuv__auth_printable(s->pass) ||
      !smtpuv__auth_printable(s->authzid))
    return smtpuv__auth_errorf(
        a, SMTPUV_ECREDENTIALS,
        "%s: the username, password and authorization id must be printable "
        "ASCII (SASLprep is not implemented; use PLAIN over TLS)",
        s->name);

  char nonce[4 * ((SCRAM_NONCE_BYTES + 2) / 3) + 1];
  if (s->test_nonce != NULL) {
    size_t n = strlen(s->test_nonce);
    if (n >= sizeof(nonce))
      n = sizeof(nonce) - 1;
    memcpy(nonce, s->test_nonce, n);
    nonce[n] = '\0';
  } else {
    unsigned char rnd[SCRAM_NONCE_BYTES];
    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
      return smtpuv__auth_errorf(a, SMTPUV_EAUTH,
                                 "%s: the random generator failed", s->name);
    EVP_EncodeBlock((unsigned char *)nonce, rnd, sizeof(rnd));
    OPENSSL_cleanse(rnd, sizeof(rnd));
  }

  int err = 0;
  smtpuv__sbuf b;
  smtpuv__sbuf_init(&b, s->mem);
  smtpuv__sbuf_adds(&b, "n,");
  if (s->authzid[0] != '\0') {
    smtpuv__sbuf_adds(&b, "a=");
    add_saslname(&b, s->authzid);
  }
  smtpuv__sbuf_addc(&b, ',');
  s->gs2 = sbuf_take(&b, &err);

  smtpuv__sbuf_init(&b, s->mem);
  smtpuv__sbuf_adds(&b, "n=");
  add_saslname(&b, s->user);
  smtpuv__sbuf_adds(&b, ",r=");
  smtpuv__sbuf_adds(&b, nonce);
  s->first_bare = sbuf_take(&b, &err);
  s->nonce_len = strlen(nonce);
  OPENSSL_cleanse(nonce, sizeof(nonce));
  if (err != 0) {
    reset(s);
    return err;
  }

  smtpuv__sbuf_init(&b, s->mem);
  smtpuv__sbuf_adds(&b, s->gs2);
  smtpuv__sbuf_adds(&b, s->first_bare);
  int r = b.err != 0 ? b.err : smtpuv_auth_respond(a, b.p, b.len);
  smtpuv__sbuf_free(&b);
  if (r != 0) {
    reset(s);
    return r;
  }
  s->phase = 1;
  return 0;
}

/* Find attribute `k` at `*pos` in msg ("k=value," ...): sets value span and
   moves *pos past the following ','. 0 when the attribute is not there. */
static int attr(const char *msg, size_t len, size_t *pos, char k,
                const char **val, size_t *vlen) {
  size_t p = *pos;
  if (p + 2 > len || msg[p] != k || msg[p + 1] != '=')
    return 0;
  size_t e = p + 2;
  while (e < len && msg[e] != ',')
    e++;
  *val = msg + p + 2;
  *vlen = e - (p + 2);
  *pos = e < len ? e + 1 : e;
  return 1;
}

/* RFC 5802: printable = %x21-2B / %x2D-7E (no ',', no space) */
static int nonce_chars(const char *v, size_t n) {
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)v[i] < 0x21 || (unsigned char)v[i] > 0x7e ||
        v[i] == ',')
      return 0;
  return 1;
}

/* What follows i=: nothing, or ("," ALPHA "=" 1*value-char)+ (RFC 5802
   extensions, ignored when optional). */
static int extensions_ok(const char *msg, size_t len, size_t pos) {
  if (pos == len)
    return msg[len - 1] != ','; /* "i=4096," is not an extension */
  while (pos < len) {
    const char *v;
    size_t vlen;
    char k = msg[pos];
    if (!((k >= 'a' && k <= 'z') || (k >= 'A' && k <= 'Z')) ||
        !attr(msg, len, &pos, k, &v, &vlen) || vlen == 0)
      return 0;
    if (pos == len && msg[len - 1] == ',')
      return 0;
  }
  return 1;
}

static int hmac(const EVP_MD *md, const void *key, size_t klen,
                const void *data, size_t dlen, unsigned char *out) {
  unsigned int n = 0;
  return HMAC(md, key, (int)klen, data, dlen, out, &n) != NULL ? 0 : -1;
}

static int server_first(smtpuv_auth *a, scram_state *s, const char *msg,
                        size_t len) {
  const EVP_MD *md = s->md();
  const size_t mdlen = (size_t)EVP_MD_size(md);
  const char *r, *salt64, *it;
  size_t rlen, salt64len, itlen, pos = 0;
  if (len >= 2 && msg[0] == 'm' && msg[1] == '=')
    return smtpuv__auth_errorf(a, SMTPUV_EPROTO,
                               "%s: the server requires an unsupported "
                               "mandatory extension",
                               s->name);
  if (!attr(msg, len, &pos, 'r', &r, &rlen) ||
      !attr(msg, len, &pos, 's', &salt64, &salt64len) ||
      !attr(msg, len, &pos, 'i', &it, &itlen))
    return smtpuv__auth_errorf(a, SMTPUV_EPROTO,
                               "%s: malformed server-first-message", s->name);
  if (!extensions_ok(msg, len, pos))
    return smtpuv__auth_errorf(a, SMTPUV_EPROTO,
                               "%s: malformed server-first-message", s->name);
  const char *cnonce = s->first_bare + strlen(s->first_bare) - s->nonce_len;
  if (rlen <= s->nonce_len || memcmp(r, cnonce, s->nonce_len) != 0 ||
      !nonce_chars(r, rlen))
    return smtpuv__auth_errorf(a, SMTPUV_EPROTO,
                               "%s: the server nonce does not extend the "
                               "client nonce",
                               s->name);
  if (itlen == 0 || itlen > 9)
    return smtpuv__auth_errorf(a, SMTPUV_EPROTO,
                               "%s: malformed iteration count", s->name);
  unsigned long iter = 0;
  for (size_t i = 0; i < itlen; i++) {
    if (it[i] < '0' || it[i] > '9')
      return smtpuv__auth_errorf(a, SMTPUV_EPROTO,
                                 "%s: malformed iteration count", s->name);
    iter = iter * 10 + (unsigned long)(it[i] - '0');
  }
  /* A low count would let whoever answers in the server's place (a MITM
     past TLS, a rogue server) test password guesses cheaply offline
     against the proof: refuse it (RFC 7677 section 4: at least 4096). */
  if (iter < SMTPUV_AUTH_SCRAM_MIN_ITERATIONS ||
      iter > SMTPUV_AUTH_SCRAM_MAX_ITERATIONS)
    return smtpuv__auth_errorf(a, SMTPUV_EPROTO,
                               "%s: iteration count %lu outside %d..%d",
                               s->name, iter, SMTPUV_AUTH_SCRAM_MIN_ITERATIONS,
                               SMTPUV_AUTH_SCRAM_MAX_ITERATIONS);
  unsigned char *salt = NULL;
  size_t saltlen = 0;
  int err = smtpuv__b64_decode(s->mem, salt64, salt64len, &salt, &saltlen);
  if (err == SMTPUV_EPROTO || (err == 0 && saltlen == 0)) {
    smtpuv__wipe_free(s->mem, salt, saltlen + 1);
    return smtpuv__auth_errorf(a, SMTPUV_EPROTO, "%s: malformed salt",
                               s->name);
  }
  if (err != 0)
    return err;

  unsigned char salted[EVP_MAX_MD_SIZE], ckey[EVP_MAX_MD_SIZE],
      stored[EVP_MAX_MD_SIZE], csig[EVP_MAX_MD_SIZE], skey[EVP_MAX_MD_SIZE];
  unsigned int stored_len = 0;
  int ok = PKCS5_PBKDF2_HMAC(s->pass, (int)strlen(s->pass), salt,
                             (int)saltlen, (int)iter, md, (int)mdlen,
                             salted) == 1;
  smtpuv__wipe_free(s->mem, salt, saltlen + 1);

  smtpuv__sbuf msgbuf, out;
  smtpuv__sbuf_init(&msgbuf, s->mem);
  smtpuv__sbuf_init(&out, s->mem);
  char *gs2_64 = NULL, *proof64 = NULL;
  if (ok)
    err = smtpuv__b64_encode(s->mem, s->gs2, strlen(s->gs2), &gs2_64);
  /* client-final-message-without-proof */
  if (ok && err == 0) {
    smtpuv__sbuf_adds(&out, "c=");
    smtpuv__sbuf_adds(&out, gs2_64);
    smtpuv__sbuf_adds(&out, ",r=");
    smtpuv__sbuf_add(&out, r, rlen);
    /* AuthMessage */
    smtpuv__sbuf_adds(&msgbuf, s->first_bare);
    smtpuv__sbuf_addc(&msgbuf, ',');
    smtpuv__sbuf_add(&msgbuf, msg, len);
    smtpuv__sbuf_addc(&msgbuf, ',');
    if (out.err == 0)
      smtpuv__sbuf_add(&msgbuf, out.p, out.len);
    err = out.err != 0 ? out.err : msgbuf.err;
  }
  if (ok && err == 0) {
    ok = hmac(md, salted, mdlen, "Client Key", 10, ckey) == 0 &&
         EVP_Digest(ckey, mdlen, stored, &stored_len, md, NULL) == 1 &&
         hmac(md, stored, mdlen, msgbuf.p, msgbuf.len, csig) == 0 &&
         hmac(md, salted, mdlen, "Server Key", 10, skey) == 0 &&
         hmac(md, skey, mdlen, msgbuf.p, msgbuf.len, s->server_sig) == 0;
  }
  if (ok && err == 0) {
    s->server_sig_len = (unsigned)mdlen;
    for (size_t i = 0; i < mdlen; i++)
      ckey[i] ^= csig[i]; /* ClientProof */
    err = smtpuv__b64_encode(s->mem, ckey, mdlen, &proof64);
  }
  if (ok && err == 0) {
    smtpuv__sbuf_adds(&out, ",p=");
    smtpuv__sbuf_adds(&out, proof64);
    err = out.err != 0 ? out.err : smtpuv_auth_respond(a, out.p, out.len);
  }
  OPENSSL_cleanse(salted, sizeof(salted));
  OPENSSL_cleanse(ckey, sizeof(ckey));
  OPENSSL_cleanse(stored, sizeof(stored));
  OPENSSL_cleanse(csig, sizeof(csig));
  OPENSSL_cleanse(skey, sizeof(skey));
  smtpuv__secret_free(s->mem, gs2_64);
  smtpuv__secret_free(s->mem, proof64);
  smtpuv__sbuf_free(&msgbuf);
  smtpuv__sbuf_free(&out);
  if (!ok)
    return smtpuv__auth_errorf(a, SMTPUV_EAUTH,
                               "%s: the key derivation failed in OpenSSL",
                               s->name);
  if (err != 0)
    return err;
  s->phase = 2;
  return 0;
}

static int server_final(smtpuv_auth *a, scram_state *s, const char *msg,
                        size_t len) {
  const char *v;
  size_t vlen, pos = 0;
  if (attr(msg, len, &pos, 'e', &v, &vlen)) {
    char clean[128];
    smtpuv__auth_clean_line(clean, sizeof(clean), v, vlen);
    return smtpuv__auth_errorf(a, SMTPUV_EAUTH, "%s: server error: %s",
                               s->name, clean);
  }
  if (!attr(msg, len, &pos, 'v', &v, &vlen))
    return smtpuv__auth_errorf(a, SMTPUV_EPROTO,
                               "%s: malformed server-final-message", s->name);
  unsigned char *sig = NULL;
  size_t siglen = 0;
  int err = smtpuv__b64_decode(s->mem, v, vlen, &sig, &siglen);
  if (err == SMTPUV_ENOMEM)
    return err;
  int match = err == 0 && siglen == s->server_sig_len &&
              CRYPTO_memcmp(sig, s->server_sig, siglen) == 0;
  if (err == 0)
    smtpuv__wipe_free(s->mem, sig, siglen + 1);
  if (!match)
    return smtpuv__auth_errorf(a, SMTPUV_EAUTHSERVER,
                               "%s: server signature mismatch", s->name);
  s->phase = 3;
  return smtpuv_auth_respond(a, "", 0);
}

static int scram_step(smtpuv_auth *a, void *state, const unsigned char *chal,
                      size_t len) {
  scram_state *s = state;
  const char *msg = (const char *)chal;
  if (memchr(chal, '\0', len) != NULL)
    return smtpuv__auth_errorf(a, SMTPUV_EPROTO,
                               "%s: NUL byte in a server message", s->name);
  switch (s->phase) {
  case 1:
    return server_first(a, s, msg, len);
  case 2:
    return server_final(a, s, msg, len);
  default:
    return smtpuv__auth_errorf(a, SMTPUV_EPROTO,
                               "%s: unexpected challenge from the server",
                               s->name);
  }
}

static int scram_success(smtpuv_auth *a, void *state) {
  scram_state *s = state;
  if (s->phase != 3)
    return smtpuv__auth_errorf(a, SMTPUV_EAUTHSERVER,
                               "%s: the server reported success without "
                               "proving that it knows the password",
                               s->name);
  return 0;
}

const smtpuv_auth_ops smtpuv__scram_sha1_ops = {
    sizeof(smtpuv_auth_ops), "SCRAM-SHA-1", 0, scram_begin, scram_step,
    scram_success, scram_destroy};
const smtpuv_auth_ops smtpuv__scram_sha256_ops = {
    sizeof(smtpuv_auth_ops), "SCRAM-SHA-256", 0, scram_begin, scram_step,
    scram_success, scram_destroy};

int smtpuv__scram_set_nonce(smtpuv_auth *a, const char *nonce) {
  if (a == NULL || nonce == NULL || a->ops.begin != scram_begin ||
      nonce[0] == '\0' || strchr(nonce, ',') != NULL ||
      !smtpuv__auth_printable(nonce) || strlen(nonce) > 24)
    return SMTPUV_EINVAL;
  scram_state *s = a->state;
  int err = 0;
  char *n = smtpuv__secret_dup(s->mem, nonce, &err);
  if (n == NULL)
    return err;
  smtpuv__secret_free(s->mem, s->test_nonce);
  s->test_nonce = n;
  return 0;
}

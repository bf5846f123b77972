/* SPDX-License-Identifier: MIT */
/*
 * The command functions. Each one checks, in this order: the sticky error
 * and the state (SMTPUV_ESTATE), its arguments and the server's extensions,
 * whether it must wait for a reply (SMTPUV_EBUSY); then it reserves its
 * output room and queue slot (SMTPUV_ENOMEM) and only then writes, so a
 * failing call leaves no trace.
 */
#include <stddef.h>
#include <string.h>

#include "protocol/proto_int.h"

#define ST(s) SMTPUV__ST(s)

/* Longest ENVID accepted (RFC 3461 4.4: 100 characters). */
#define ENVID_MAX 100

static int pipelining(const smtpuv_proto *p) {
  return p->pipelining_allowed &&
         (smtpuv__ext_bits(p) & SMTPUV_EXT_PIPELINING) != 0;
}

/* SMTPUV_EBUSY when the command has to wait for outstanding replies. */
int smtpuv__check_busy(const smtpuv_proto *p, int is_quit) {
  if (!pipelining(p))
    return p->ring_count > 0 ? SMTPUV_EBUSY : 0;
  return !is_quit && p->group_enders > 0 ? SMTPUV_EBUSY : 0;
}

/* Room for a command line of at most `max` bytes and `slots` queue
   entries; NULL when out of memory. */
static char *line_begin(smtpuv_proto *p, size_t max, size_t slots) {
  if (smtpuv__ring_reserve(p, slots) != 0)
    return NULL;
  return smtpuv__outbuf_reserve(&p->out, &p->mem, max);
}

static smtpuv__pending *line_end(smtpuv_proto *p, const char *start,
                                 const char *end, smtpuv_cmd cmd) {
  smtpuv__outbuf_commit(&p->out, (size_t)(end - start));
  return smtpuv__ring_push(p, cmd);
}

/* A fixed command line after the state and busy checks passed. */
static int emit(smtpuv_proto *p, smtpuv_cmd cmd, const char *line,
                size_t len) {
  char *w = line_begin(p, len, 1);
  if (w == NULL)
    return SMTPUV_ENOMEM;
  memcpy(w, line, len);
  line_end(p, w, w + len, cmd);
  return 0;
}

/* "VERB arg\r\n" */
static int emit_arg(smtpuv_proto *p, smtpuv_cmd cmd, const char *verb,
                    size_t verb_len, const char *arg, size_t len) {
  char *w0 = line_begin(p, verb_len + len + 2, 1);
  if (w0 == NULL)
    return SMTPUV_ENOMEM;
  char *w = smtpuv__put(w0, verb, verb_len);
  w = smtpuv__put(w, arg, len);
  w = SMTPUV__PUT_LIT(w, "\r\n");
  line_end(p, w0, w, cmd);
  return 0;
}

/* A non-empty address or VRFY string: 0 or SMTPUV_EADDRESS, with its
   length and whether it is non-ASCII. */
static int scan_nonempty(const char *s, size_t *len, int *non_ascii) {
  if (s == NULL || s[0] == '\0')
    return SMTPUV_EADDRESS;
  return smtpuv__scan_address(s, len, non_ascii);
}

/* ---- session commands ------------------------------------------------- */

static int hello(smtpuv_proto *p, const char *domain, smtpuv_cmd cmd) {
  if (p == NULL)
    return SMTPUV_EINVAL;
  size_t len;
  int rc = smtpuv__check_state(p, ST(GREETED));
  /* LMTP has LHLO only; a session that said EHLO/HELO stays SMTP */
  if (rc == 0 && (cmd == SMTPUV_CMD_LHLO ? !p->lmtp && p->hello_sent
                                         : p->lmtp))
    rc = SMTPUV_ESTATE;
  if (rc == 0)
    rc = smtpuv__check_domain(domain, &len);
  if (rc == 0)
    rc = smtpuv__check_busy(p, 0);
  if (rc == 0)
    rc = emit_arg(p, cmd,
                  cmd == SMTPUV_CMD_EHLO   ? "EHLO "
                  : cmd == SMTPUV_CMD_LHLO ? "LHLO "
                                           : "HELO ",
                  5, domain, len);
  if (rc == 0) {
    p->state = SMTPUV_STATE_EHLO_SENT;
    p->hello_sent = 1;
    p->lmtp |= cmd == SMTPUV_CMD_LHLO;
  }
  return rc;
}

int smtpuv_proto_ehlo(smtpuv_proto *p, const char *domain) {
  return hello(p, domain, SMTPUV_CMD_EHLO);
}

int smtpuv_proto_helo(smtpuv_proto *p, const char *domain) {
  return hello(p, domain, SMTPUV_CMD_HELO);
}

int smtpuv_proto_lhlo(smtpuv_proto *p, const char *domain) {
  return hello(p, domain, SMTPUV_CMD_LHLO);
}

int smtpuv_proto_set_lmtp(smtpuv_proto *p) {
  if (p == NULL)
    return SMTPUV_EINVAL;
  int rc = smtpuv__check_state(p, ST(GREETING_EXPECTED) | ST(GREETED));
  if (rc == 0 && p->hello_sent && !p->lmtp)
    rc = SMTPUV_ESTATE;
  if (rc == 0)
    p->lmtp = 1;
  return rc;
}

int smtpuv_proto_is_lmtp(const smtpuv_proto *p) {
  return p != NULL && p->lmtp;
}

int smtpuv_proto_starttls(smtpuv_proto *p) {
  if (p == NULL)
    return SMTPUV_EINVAL;
  int rc = smtpuv__check_state(p, ST(READY));
  if (rc == 0 && !(smtpuv__ext_bits(p) & SMTPUV_EXT_STARTTLS))
    rc = SMTPUV_ENOEXT;
  if (rc == 0)
    rc = smtpuv__check_busy(p, 0);
  if (rc == 0)
    rc = emit(p, SMTPUV_CMD_STARTTLS, "STARTTLS\r\n", 10);
  if (rc == 0) {
    p->state = SMTPUV_STATE_STARTTLS_PENDING;
    p->tls_ready = 0;
  }
  return rc;
}

int smtpuv_proto_auth(smtpuv_proto *p, const char *mechanism,
                      const char *initial_b64) {
  if (p == NULL)
    return SMTPUV_EINVAL;
  size_t mlen, ilen = 0;
  int rc = smtpuv__check_state(p, ST(READY));
  if (rc == 0 && p->authenticated)
    rc = SMTPUV_ESTATE; /* RFC 4954 section 4: one AUTH per session */
  if (rc == 0 && !(smtpuv__ext_bits(p) & SMTPUV_EXT_AUTH))
    rc = SMTPUV_ENOEXT;
  if (rc == 0)
    rc = smtpuv__check_mechanism(mechanism, &mlen);
  if (rc == 0 && initial_b64 != NULL)
    rc = smtpuv__check_base64(initial_b64, &ilen);
  if (rc == 0)
    rc = smtpuv__check_busy(p, 0);
  if (rc != 0)
    return rc;
  char *w0 = line_begin(p, 5 + mlen + 1 + (ilen ? ilen : 1) + 2, 1);
  if (w0 == NULL)
    return SMTPUV_ENOMEM;
  char *w = SMTPUV__PUT_LIT(w0, "AUTH ");
  w = smtpuv__put(w, mechanism, mlen);
  if (initial_b64 != NULL) {
    *w++ = ' ';
    w = ilen > 0 ? smtpuv__put(w, initial_b64, ilen) : SMTPUV__PUT_LIT(w, "=");
  }
  w = SMTPUV__PUT_LIT(w, "\r\n");
  line_end(p, w0, w, SMTPUV_CMD_AUTH);
  smtpuv__outbuf_sensitive(&p->out); /* credentials: wiped when drained */
  p->state = SMTPUV_STATE_AUTHENTICATING;
  p->auth_challenge = 0;
  return 0;
}

static int check_challenge(const smtpuv_proto *p) {
  int rc = smtpuv__check_state(p, ST(AUTHENTICATING));
  return rc == 0 && !p->auth_challenge ? SMTPUV_ESTATE : rc;
}

int smtpuv_proto_auth_response(smtpuv_proto *p, const char *response_b64) {
  if (p == NULL)
    return SMTPUV_EINVAL;
  size_t len;
  int rc = check_challenge(p);
  if (rc == 0)
    rc = smtpuv__check_base64(response_b64, &len);
  if (rc == 0)
    rc = emit_arg(p, SMTPUV_CMD_AUTH, "", 0, response_b64, len);
  if (rc == 0) {
    smtpuv__outbuf_sensitive(&p->out);
    p->auth_challenge = 0;
  }
  return rc;
}

int smtpuv_proto_auth_cancel(smtpuv_proto *p) {
  if (p == NULL)
    return SMTPUV_EINVAL;
  int rc = check_challenge(p);
  if (rc == 0)
    rc = emit(p, SMTPUV_CMD_AUTH, "*\r\n", 3);
  if (rc == 0)
    p->auth_challenge = 0;
  return rc;
}

int smtpuv_proto_rset(smtpuv_proto *p) {
  if (p == NULL)
    return SMTPUV_EINVAL;
  int rc = smtpuv__check_state(p, ST(READY) | ST(MAIL_TRANSACTION) |
                              ST(RECIPIENT_SENT) | ST(BDAT));
  if (rc == 0)
    rc = smtpuv__check_busy(p, 0);
  if (rc == 0)
    rc = emit(p, SMTPUV_CMD_RSET, "RSET\r\n", 6);
  if (rc == 0)
    p->state = SMTPUV_STATE_READY;
  return rc;
}

int smtpuv_proto_noop(smtpuv_proto *p) {
  if (p == NULL)
    return SMTPUV_EINVAL;
  int rc = smtpuv__check_state(p, ST(GREETED) | ST(READY));
  if (rc == 0)
    rc = smtpuv__check_busy(p, 0);
  return rc == 0 ? emit(p, SMTPUV_CMD_NOOP, "NOOP\r\n", 6) : rc;
}

int smtpuv_proto_vrfy(smtpuv_proto *p, const char *string) {
  if (p == NULL)
    return SMTPUV_EINVAL;
  int rc = smtpuv__check_state(p, ST(READY));
  if (rc != 0)
    return rc;
  size_t len;
  int utf8;
  if ((rc = scan_nonempty(string, &len, &utf8)) != 0)
    return rc;
  if (utf8 && !(smtpuv__ext_bits(p) & SMTPUV_EXT_SMTPUTF8))
    return SMTPUV_ENOEXT;
  if ((rc = smtpuv__check_busy(p, 0)) != 0)
    return rc;
  char *w0 = line_begin(p, 5 + len + 9 + 2, 1);
  if (w0 == NULL)
    return SMTPUV_ENOMEM;
  char *w = SMTPUV__PUT_LIT(w0, "VRFY ");
  w = smtpuv__put(w, string, len);
  if (utf8)
    w = SMTPUV__PUT_LIT(w, " SMTPUTF8");
  w = SMTPUV__PUT_LIT(w, "\r\n");
  line_end(p, w0, w, SMTPUV_CMD_VRFY);
  return 0;
}

int smtpuv_proto_quit(smtpuv_proto *p) {
  if (p == NULL)
    return SMTPUV_EINVAL;
  int rc = smtpuv__check_state(p, ST(GREETED) | ST(EHLO_SENT) | ST(READY) |
                              ST(MAIL_TRANSACTION) | ST(RECIPIENT_SENT) |
                              ST(BDAT));
  if (rc == 0)
    rc = smtpuv__check_busy(p, 1);
  if (rc == 0)
    rc = emit(p, SMTPUV_CMD_QUIT, "QUIT\r\n", 6);
  if (rc == 0)
    p->state = SMTPUV_STATE_FINISHED;
  return rc;
}

/* ---- envelope ----------------------------------------------------------- */

/* The caller's parameter struct, fields it does not know about zeroed. */
static int read_params(void *dst, size_t dst_size, const void *src) {
  memset(dst, 0, dst_size);
  if (src == NULL)
    return 0;
  size_t n = *(const size_t *)src;
  if (n < dst_size)
    return SMTPUV_EINVAL;
  memcpy(dst, src, dst_size);
  return 0;
}

static int check_body(unsigned ext, smtpuv_body_type body) {
  switch (body) {
  case SMTPUV_BODY_UNSPECIFIED:
    return 0;
  case SMTPUV_BODY_7BIT:
    return ext & SMTPUV_EXT_8BITMIME ? 0 : SMTPUV_ENOEXT;
  case SMTPUV_BODY_8BITMIME:
    return ext & SMTPUV_EXT_8BITMIME ? 0 : SMTPUV_E8BIT;
  case SMTPUV_BODY_BINARYMIME:
    return (ext & SMTPUV_EXT_BINARYMIME) && (ext & SMTPUV_EXT_CHUNKING)
               ? 0
               : SMTPUV_ENOEXT;
  default:
    return SMTPUV_EINVAL;
  }
}

static int check_envid(const char *envid, size_t *len) {
  size_t n = strnlen(envid, ENVID_MAX + 1);
  if (n == 0 || n > ENVID_MAX)
    return SMTPUV_EINVAL;
  for (size_t i = 0; i < n; i++)
    if (envid[i] < 0x20 || envid[i] > 0x7E)
      return SMTPUV_EINVAL;
  *len = n;
  return 0;
}

/* Everything MAIL's parameters need from the server, checked up front. */
static int check_mail_params(const smtpuv_proto *p,
                             const smtpuv_mail_params *mp, int utf8,
                             size_t *envid_len) {
  unsigned ext = smtpuv__ext_bits(p);
  int rc = check_body(ext, mp->body);
  if (rc != 0)
    return rc;
  if (utf8 && !(ext & SMTPUV_EXT_SMTPUTF8))
    return SMTPUV_ENOEXT;
  if ((unsigned)mp->dsn_ret > SMTPUV_DSN_RET_HDRS)
    return SMTPUV_EINVAL;
  if (mp->dsn_envid != NULL && (rc = check_envid(mp->dsn_envid, envid_len)))
    return rc;
  if ((mp->dsn_ret != SMTPUV_DSN_RET_UNSPECIFIED || mp->dsn_envid != NULL) &&
      !(ext & SMTPUV_EXT_DSN))
    return SMTPUV_ENOEXT;
  if (mp->requiretls && !(ext & SMTPUV_EXT_REQUIRETLS))
    return SMTPUV_ENOEXT;
  uint64_t limit = smtpuv_proto_max_size(p);
  if ((ext & SMTPUV_EXT_SIZE) && limit != 0 && mp->size > limit)
    return SMTPUV_ETOOBIG;
  return 0;
}

int smtpuv_proto_mail(smtpuv_proto *p, const char *sender,
                      const smtpuv_mail_params *params) {
  if (p == NULL)
    return SMTPUV_EINVAL;
  smtpuv_mail_params mp;
  size_t slen, envid_len = 0;
  int utf8;
  int rc = smtpuv__check_state(p, ST(READY));
  if (rc == 0)
    rc = read_params(&mp, sizeof mp, params);
  if (rc == 0)
    rc = smtpuv__scan_address(sender, &slen, &utf8);
  if (rc != 0)
    return rc;
  utf8 = utf8 || mp.smtputf8;
  if ((rc = check_mail_params(p, &mp, utf8, &envid_len)) != 0)
    return rc;
  if ((rc = smtpuv__check_busy(p, 0)) != 0)
    return rc;

  static const char *const body[] = {"", " BODY=7BIT", " BODY=8BITMIME",
                                     " BODY=BINARYMIME"};
  size_t max = 11 + slen + 1 + 26 + 16 + 9 + 9 + 7 + 3 * envid_len + 11 + 2;
  char *w0 = line_begin(p, max, 1);
  if (w0 == NULL)
    return SMTPUV_ENOMEM;
  char *w = SMTPUV__PUT_LIT(w0, "MAIL FROM:<");
  w = smtpuv__put(w, sender, slen);
  *w++ = '>';
  if (mp.size != 0 && (smtpuv__ext_bits(p) & SMTPUV_EXT_SIZE)) {
    w = SMTPUV__PUT_LIT(w, " SIZE=");
    w = smtpuv__put_u64(w, mp.size);
  }
  w = smtpuv__put(w, body[mp.body], strlen(body[mp.body]));
  if (utf8)
    w = SMTPUV__PUT_LIT(w, " SMTPUTF8");
  if (mp.dsn_ret == SMTPUV_DSN_RET_FULL)
    w = SMTPUV__PUT_LIT(w, " RET=FULL");
  else if (mp.dsn_ret == SMTPUV_DSN_RET_HDRS)
    w = SMTPUV__PUT_LIT(w, " RET=HDRS");
  if (mp.dsn_envid != NULL) {
    w = SMTPUV__PUT_LIT(w, " ENVID=");
    w = smtpuv__put_xtext(w, mp.dsn_envid, envid_len);
  }
  if (mp.requiretls)
    w = SMTPUV__PUT_LIT(w, " REQUIRETLS");
  w = SMTPUV__PUT_LIT(w, "\r\n");

  p->txo.id++;
  p->txo.nrcpt = 0;
  p->txo.body = (uint8_t)mp.body;
  p->txo.smtputf8 = (uint8_t)utf8;
  line_end(p, w0, w, SMTPUV_CMD_MAIL);
  p->state = SMTPUV_STATE_MAIL_TRANSACTION;
  return 0;
}

static int check_notify(unsigned notify) {
  const unsigned all = SMTPUV_DSN_NOTIFY_SUCCESS | SMTPUV_DSN_NOTIFY_FAILURE |
                       SMTPUV_DSN_NOTIFY_DELAY;
  if (notify & ~(all | SMTPUV_DSN_NOTIFY_NEVER))
    return SMTPUV_EINVAL;
  if ((notify & SMTPUV_DSN_NOTIFY_NEVER) && (notify & all))
    return SMTPUV_EINVAL;
  return 0;
}

static char *put_notify(char *w, unsigned notify) {
  static const struct {
    unsigned bit;
    const char *name;
  } names[] = {{SMTPUV_DSN_NOTIFY_SUCCESS, "SUCCESS"},
               {SMTPUV_DSN_NOTIFY_FAILURE, "FAILURE"},
               {SMTPUV_DSN_NOTIFY_DELAY, "DELAY"},
               {SMTPUV_DSN_NOTIFY_NEVER, "NEVER"}};
  char sep = '=';
  w = SMTPUV__PUT_LIT(w, " NOTIFY");
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    if (notify & names[i].bit) {
      *w++ = sep;
      w = smtpuv__put(w, names[i].name, strlen(names[i].name));
      sep = ',';
    }
  }
  return w;
}

int smtpuv_proto_rcpt(smtpuv_proto *p, const char *recipient,
                      const smtpuv_rcpt_params *params) {
  if (p == NULL)
    return SMTPUV_EINVAL;
  smtpuv_rcpt_params rp;
  size_t len, olen = 0;
  int utf8;
  int rc = smtpuv__check_state(p, ST(MAIL_TRANSACTION) | ST(RECIPIENT_SENT));
  if (rc == 0)
    rc = read_params(&rp, sizeof rp, params);
  if (rc == 0)
    rc = scan_nonempty(recipient, &len, &utf8);
  if (rc == 0 && rp.dsn_orcpt != NULL)
    rc = scan_nonempty(rp.dsn_orcpt, &olen, NULL); /* any: xtext */
  if (rc == 0)
    rc = check_notify(rp.dsn_notify);
  if (rc != 0)
    return rc;
  unsigned ext = smtpuv__ext_bits(p);
  if (utf8 && !p->txo.smtputf8)
    return SMTPUV_ENOEXT;
  if ((rp.dsn_notify != 0 || rp.dsn_orcpt != NULL) && !(ext & SMTPUV_EXT_DSN))
    return SMTPUV_ENOEXT;
  if ((rc = smtpuv__check_busy(p, 0)) != 0)
    return rc;

  size_t max = 9 + len + 1 + 7 + 24 + 14 + 3 * olen + 2;
  char *w0 = line_begin(p, max, 1);
  if (w0 == NULL)
    return SMTPUV_ENOMEM;
  char *w = SMTPUV__PUT_LIT(w0, "RCPT TO:<");
  w = smtpuv__put(w, recipient, len);
  *w++ = '>';
  if (rp.dsn_notify != 0)
    w = put_notify(w, rp.dsn_notify);
  if (rp.dsn_orcpt != NULL) {
    w = SMTPUV__PUT_LIT(w, " ORCPT=rfc822;");
    w = smtpuv__put_xtext(w, rp.dsn_orcpt, olen);
  }
  w = SMTPUV__PUT_LIT(w, "\r\n");
  smtpuv__pending *e = line_end(p, w0, w, SMTPUV_CMD_RCPT);
  e->rcpt_index = p->txo.nrcpt++;
  p->state = SMTPUV_STATE_RECIPIENT_SENT;
  return 0;
}

size_t smtpuv__lmtp_slots_needed(const smtpuv_proto *p) {
  size_t n = p->txo.nrcpt;
  if (p->txi.id == p->txo.id && p->txi.rcpt_replied == p->txo.nrcpt)
    n = p->lm.len; /* exact: every RCPT reply was popped */
  return n > 0 ? n : 1;
}

void smtpuv__push_lmtp_slots(smtpuv_proto *p, smtpuv_cmd cmd, size_t n) {
  for (size_t k = 0; k < n; k++) {
    smtpuv__pending *e = smtpuv__ring_push(p, cmd);
    e->lmtp_slot = 1;
    e->rcpt_index = (uint32_t)k; /* `last` is set when it is matched */
  }
}

/* Every RCPT reply of the current transaction is in and none accepted. */
int smtpuv__no_recipient(const smtpuv_proto *p) {
  return p->txi.id == p->txo.id && p->txi.rcpt_replied == p->txo.nrcpt &&
         p->txi.rcpt_accepted == 0;
}

int smtpuv_proto_data(smtpuv_proto *p) {
  if (p == NULL)
    return SMTPUV_EINVAL;
  int rc = smtpuv__check_state(p, ST(RECIPIENT_SENT));
  if (rc == 0 && p->txo.body == SMTPUV_BODY_BINARYMIME)
    rc = SMTPUV_ENOEXT;
  if (rc == 0)
    rc = smtpuv__check_busy(p, 0);
  if (rc == 0 && smtpuv__no_recipient(p))
    rc = SMTPUV_ENORCPT;
  if (rc != 0)
    return rc;
  /* Room for the ".\r\n" and the queue entry the core writes itself if
     the 354 comes although no recipient was accepted: nothing can be
     appended in DATA_PENDING, so they are still there then. */
  char *w = line_begin(p, 6 + 3, 2);
  if (w == NULL)
    return SMTPUV_ENOMEM;
  memcpy(w, "DATA\r\n", 6);
  line_end(p, w, w + 6, SMTPUV_CMD_DATA);
  smtpuv__encoder_init(&p->enc, 1);
  p->state = SMTPUV_STATE_DATA_PENDING;
  return 0;
}

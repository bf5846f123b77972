/* SPDX-License-Identifier: MIT */
/* The AUTH driver: runs an authenticator against a smtpuv_proto. Sans-io:
 * it only calls the proto's command functions; the transport moves bytes.
 *
 *   IDLE --start--> [WAIT] --> EXCHANGE --334--> EXCHANGE ... --235--> DONE
 *                                 |--step error/bad base64--> CANCELLING
 *                                 |    --reply to "*"--> DONE (that error)
 *                                 |--535 + refreshable--> [WAIT] --> EXCHANGE
 *                                 `--4xx/5xx--> DONE (EAUTH)
 */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "auth/auth_int.h"

#define SESSION_TEXT 512
#define AUTH_LINE_MAX 512 /* RFC 5321 command line, CRLF included */

enum { S_IDLE, S_WAIT, S_EXCHANGE, S_CANCELLING, S_DONE };

struct smtpuv_auth_session {
  smtpuv_mem mem;
  smtpuv_proto *p;
  smtpuv_auth *a;
  smtpuv_auth_ready_cb ready_cb;
  void *ready_data;
  int state;
  int result;
  int cancel_err;
  unsigned begin_flags;
  int retried;
  int steps;
  int in_begin, woken;
  char *deferred; /* base64 initial response awaiting the empty 334 */
  int reply_code;
  char reply_text[SESSION_TEXT];
  char err[SESSION_TEXT];
  char mech[SMTPUV__AUTH_NAMELEN];
};

static void session_wake(void *data) {
  smtpuv_auth_session *s = data;
  if (s->in_begin) {
    s->woken = 1;
    return;
  }
  if (s->state == S_WAIT && s->ready_cb != NULL)
    s->ready_cb(s, s->ready_data);
}

int smtpuv_auth_session_new(const smtpuv_mem *mem, smtpuv_proto *proto,
                            smtpuv_auth *auth, smtpuv_auth_ready_cb ready_cb,
                            void *ready_data, smtpuv_auth_session **out) {
  if (proto == NULL || auth == NULL || out == NULL)
    return SMTPUV_EINVAL;
  if (auth->attached)
    return SMTPUV_EBUSY;
  smtpuv_mem m;
  smtpuv__mem_init(&m, mem);
  smtpuv_auth_session *s = smtpuv__calloc(&m, 1, sizeof(*s));
  if (s == NULL)
    return SMTPUV_ENOMEM;
  s->mem = m;
  s->p = proto;
  s->a = auth;
  s->ready_cb = ready_cb;
  s->ready_data = ready_data;
  s->state = S_IDLE;
  s->result = SMTPUV_AUTH_PENDING;
  auth->attached = 1;
  auth->wake = session_wake;
  auth->wake_data = s;
  auth->begin_pending = 0;
  *out = s;
  return 0;
}

static void drop_deferred(smtpuv_auth_session *s) {
  smtpuv__secret_free(&s->mem, s->deferred);
  s->deferred = NULL;
}

void smtpuv_auth_session_free(smtpuv_auth_session *s) {
  if (s == NULL)
    return;
  s->a->attached = 0;
  s->a->wake = NULL;
  s->a->wake_data = NULL;
  s->a->begin_pending = 0;
  drop_deferred(s);
  smtpuv_mem m = s->mem;
  OPENSSL_cleanse(s, sizeof(*s));
  smtpuv__free(&m, s);
}

/* The mechanism's text, or "<MECH>: <strerror>". */
static void mech_error(smtpuv_auth_session *s, int err) {
  if (s->a->err[0] != '\0')
    snprintf(s->err, sizeof(s->err), "%s", s->a->err);
  else
    snprintf(s->err, sizeof(s->err), "%s: %s", s->mech, smtpuv_strerror(err));
}

static int finish(smtpuv_auth_session *s, int result) {
  s->state = S_DONE;
  s->result = result;
  if (result == 0)
    s->err[0] = '\0';
  drop_deferred(s);
  return result;
}

/* Send "*" and report `err` when the server has answered it. */
static int cancel(smtpuv_auth_session *s, int err) {
  drop_deferred(s);
  int r = smtpuv_proto_auth_cancel(s->p);
  if (r != 0)
    return finish(s, err);
  s->state = S_CANCELLING;
  s->cancel_err = err;
  return SMTPUV_AUTH_PENDING;
}

static int send_auth(smtpuv_auth_session *s, const unsigned char *resp,
                     size_t len) {
  char *b64 = NULL;
  int r;
  if (resp != NULL && (r = smtpuv__b64_encode(&s->mem, resp, len, &b64)) != 0)
    return r;
  const char *ir = b64;
  if (b64 != NULL) {
    size_t line = 5 + strlen(s->mech) + 1 + (len ? strlen(b64) : 1) + 2;
    if (line > AUTH_LINE_MAX)
      ir = NULL; /* RFC 4954 4: send it after the server's empty 334 */
  }
  r = smtpuv_proto_auth(s->p, s->mech, ir);
  if (r != 0 || ir != NULL) {
    smtpuv__secret_free(&s->mem, b64);
    return r;
  }
  s->deferred = b64;
  return 0;
}

static int do_begin(smtpuv_auth_session *s) {
  const unsigned char *resp = NULL;
  size_t len = 0;
  int r = SMTPUV_EAGAIN;
  s->woken = 0;
  s->in_begin = 1;
  for (int i = 0; i < 4 && r == SMTPUV_EAGAIN; i++) {
    s->woken = 0;
    r = smtpuv_auth_begin(s->a, s->begin_flags, &resp, &len);
    if (r != SMTPUV_EAGAIN || !s->woken)
      break;
  }
  s->in_begin = 0;
  if (r == SMTPUV_EAGAIN) {
    s->state = S_WAIT;
    return SMTPUV_EAGAIN;
  }
  if (r != 0) {
    mech_error(s, r);
    return finish(s, r);
  }
  r = send_auth(s, resp, len);
  if (r != 0) {
    snprintf(s->err, sizeof(s->err), "%s: AUTH could not be issued: %s",
             s->mech, smtpuv_strerror(r));
    return finish(s, r);
  }
  s->state = S_EXCHANGE;
  s->steps = 0;
  return SMTPUV_AUTH_PENDING;
}

int smtpuv_auth_session_start(smtpuv_auth_session *s) {
  if (s == NULL)
    return SMTPUV_EINVAL;
  if (s->state != S_IDLE || smtpuv_proto_state(s->p) != SMTPUV_STATE_READY)
    return SMTPUV_ESTATE;
  const char *offered = smtpuv_proto_auth_mechanisms(s->p);
  if (offered == NULL)
    offered = "";
  if (s->a->select != NULL) {
    s->a->err[0] = '\0';
    int r = s->a->select(s->a, offered);
    if (r != 0) {
      mech_error(s, r);
      return finish(s, r);
    }
  }
  snprintf(s->mech, sizeof(s->mech), "%s", s->a->name);
  if (!smtpuv_proto_auth_offered(s->p, s->mech)) {
    char theirs[SESSION_TEXT / 2];
    smtpuv__auth_clean_line(theirs, sizeof(theirs), offered, strlen(offered));
    if (theirs[0] == '\0')
      snprintf(s->err, sizeof(s->err),
               "the server does not offer %s: it does not advertise AUTH",
               s->mech);
    else
      snprintf(s->err, sizeof(s->err),
               "the server does not offer %s: it offers %s", s->mech, theirs);
    return finish(s, SMTPUV_EAUTHMECH);
  }
  s->begin_flags = 0;
  return do_begin(s);
}

int smtpuv_auth_session_resume(smtpuv_auth_session *s) {
  if (s == NULL)
    return SMTPUV_EINVAL;
  if (s->state != S_WAIT || s->in_begin)
    return SMTPUV_ESTATE;
  if (smtpuv_proto_state(s->p) != SMTPUV_STATE_READY) {
    snprintf(s->err, sizeof(s->err),
             "%s: the connection left the READY state while the token was "
             "awaited",
             s->mech);
    return finish(s, SMTPUV_ESTATE);
  }
  return do_begin(s);
}

/* "535 5.7.8 text" with lines joined by spaces. */
static void keep_reply(smtpuv_auth_session *s, const smtpuv_reply *r) {
  s->reply_code = r->code;
  smtpuv__auth_clean_text(s->reply_text, sizeof(s->reply_text),
                          r->text != NULL ? r->text : "", r->text_len);
}

static void reply_error(smtpuv_auth_session *s) {
  char line[SESSION_TEXT + 16];
  snprintf(line, sizeof(line), "%d%s%s", s->reply_code,
           s->reply_text[0] ? " " : "", s->reply_text);
  for (char *c = line; *c != '\0'; c++)
    if (*c == '\n')
      *c = ' ';
  if (s->a->err[0] != '\0')
    snprintf(s->err, sizeof(s->err), "%.240s; server: %.250s", s->a->err,
             line);
  else
    snprintf(s->err, sizeof(s->err), "%.500s", line);
}

static int on_challenge(smtpuv_auth_session *s, const smtpuv_reply *r) {
  int err;
  if (++s->steps > SMTPUV_AUTH_MAX_STEPS) {
    snprintf(s->err, sizeof(s->err), "%s: more than %d challenges", s->mech,
             SMTPUV_AUTH_MAX_STEPS);
    return cancel(s, SMTPUV_EPROTO);
  }
  if (s->deferred != NULL) {
    err = smtpuv_proto_auth_response(s->p, s->deferred);
    drop_deferred(s);
    if (err != 0) {
      snprintf(s->err, sizeof(s->err),
               "%s: the response could not be sent: %s", s->mech,
               smtpuv_strerror(err));
      return err == SMTPUV_ENOMEM ? cancel(s, err) : finish(s, err);
    }
    return SMTPUV_AUTH_PENDING;
  }
  const char *text = r->text != NULL ? r->text : "";
  size_t tlen = r->text_len;
  if (tlen == 1 && text[0] == '=')
    tlen = 0; /* "334 =": an empty challenge written like an empty response */
  unsigned char *chal = NULL;
  size_t clen = 0;
  err = smtpuv__b64_decode(&s->mem, text, tlen, &chal, &clen);
  if (err != 0) {
    if (err == SMTPUV_EPROTO)
      snprintf(s->err, sizeof(s->err),
               "%s: malformed base64 in the server's challenge", s->mech);
    else
      snprintf(s->err, sizeof(s->err), "%s: %s", s->mech,
               smtpuv_strerror(err));
    return cancel(s, err);
  }
  const unsigned char *resp;
  size_t len;
  err = smtpuv_auth_step(s->a, chal, clen, &resp, &len);
  smtpuv__wipe_free(&s->mem, chal, clen + 1);
  if (err != 0) {
    mech_error(s, err);
    return cancel(s, err);
  }
  char *b64 = NULL;
  err = smtpuv__b64_encode(&s->mem, resp, len, &b64);
  if (err == 0) {
    err = smtpuv_proto_auth_response(s->p, b64);
    smtpuv__secret_free(&s->mem, b64);
  }
  if (err != 0) {
    snprintf(s->err, sizeof(s->err), "%s: the response could not be sent: %s",
             s->mech, smtpuv_strerror(err));
    return err == SMTPUV_ENOMEM ? cancel(s, err) : finish(s, err);
  }
  return SMTPUV_AUTH_PENDING;
}

int smtpuv_auth_session_on_reply(smtpuv_auth_session *s,
                                 const smtpuv_reply *r) {
  if (s == NULL || r == NULL || r->command != SMTPUV_CMD_AUTH)
    return SMTPUV_EINVAL;
  if (s->state == S_CANCELLING) {
    if (r->code != 334 && r->code / 100 != 2)
      keep_reply(s, r);
    return finish(s, s->cancel_err);
  }
  if (s->state != S_EXCHANGE)
    return SMTPUV_ESTATE;
  if (r->code == 334)
    return on_challenge(s, r);
  if (r->code / 100 == 2) {
    int err = smtpuv_auth_success(s->a);
    if (err != 0)
      mech_error(s, err);
    return finish(s, err);
  }
  keep_reply(s, r);
  reply_error(s);
  if (r->code == 421)
    return finish(s, SMTPUV_ESHUTDOWN);
  if (r->code == 535 && (s->a->flags & SMTPUV_AUTH_OPS_RETRY_ON_REJECT) &&
      !s->retried && smtpuv_proto_state(s->p) == SMTPUV_STATE_READY) {
    char first[SESSION_TEXT];
    memcpy(first, s->err, sizeof(first));
    s->retried = 1;
    s->begin_flags = SMTPUV_AUTH_BEGIN_RETRY;
    drop_deferred(s);
    int res = do_begin(s);
    if (res < 0 && res != SMTPUV_EAGAIN && s->err[0] == '\0')
      memcpy(s->err, first, sizeof(first));
    return res;
  }
  return finish(s, SMTPUV_EAUTH);
}

int smtpuv_auth_session_status(const smtpuv_auth_session *s) {
  if (s == NULL)
    return SMTPUV_EINVAL;
  if (s->state == S_WAIT)
    return SMTPUV_EAGAIN;
  return s->state == S_DONE ? s->result : SMTPUV_AUTH_PENDING;
}

const char *smtpuv_auth_session_error_text(const smtpuv_auth_session *s) {
  return s != NULL && s->state == S_DONE ? s->err : "";
}

int smtpuv_auth_session_reply_code(const smtpuv_auth_session *s) {
  return s != NULL ? s->reply_code : 0;
}

const char *smtpuv_auth_session_reply_text(const smtpuv_auth_session *s) {
  return s != NULL ? s->reply_text : "";
}

const char *smtpuv_auth_session_mechanism(const smtpuv_auth_session *s) {
  return s != NULL ? s->mech : "";
}

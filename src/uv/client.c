/* The client API, the send queue and the deferred dispatch.
 *
 * Every send callback runs from the idle handle's callback (`dispatch`),
 * never from inside smtpuv_client_send() or from the middle of reply
 * processing, so a callback may call send() or close() freely: both only
 * queue work. Callbacks run in the order the messages were queued: each
 * message gets a sequence number, the list of completed messages is kept
 * sorted by it, and only its head is delivered, when it is the next due
 * (a message refused locally waits for the outcome of earlier ones still
 * on the wire). The client is freed only from the idle handle's close
 * callback, after every connection is gone and every callback has run.
 */
#include <string.h>

#include "uv/client_int.h"

int smtpuv__valid_ehlo(const char *s);

static void dispatch(uv_idle_t *h);

void smtpuv__client_kick(smtpuv_client *c) {
  c->kicked = 1; /* seen by a dispatch that is running */
  if (!c->idle_active && !c->close_done) {
    uv_idle_start(&c->idle, dispatch);
    c->idle_active = 1;
  }
}

unsigned smtpuv__client_timeout(const smtpuv_client *c, smtpuv_timeout w) {
  return c->opts.timeouts[w];
}

static void default_ehlo_name(smtpuv_client *c) {
  char name[256];
  size_t n = sizeof name;
  c->ehlo_name[0] = '\0';
  if (uv_os_gethostname(name, &n) == 0 && smtpuv__valid_ehlo(name))
    memcpy(c->ehlo_name, name, strlen(name) + 1);
}

static int make_auth(smtpuv_client *c) {
  const smtpuv_options *o = &c->opts;
  if (o->authenticator != NULL) {
    c->auth = o->authenticator;
    c->auth_owned = 0;
    return 0;
  }
  if (!o->has_creds)
    return 0;
  int rc;
  if (o->mechanism == NULL) {
    rc = smtpuv_auth_auto_new(&c->mem, &o->creds, &c->auth);
  } else {
    smtpuv_auth_mech mech = smtpuv_auth_mech_from_name(o->mechanism);
    rc = smtpuv_auth_mech_new(&c->mem, mech, &o->creds, &c->auth);
  }
  if (rc == SMTPUV_ECREDENTIALS)
    rc = SMTPUV_EINVAL;
  c->auth_owned = rc == 0;
  return rc;
}

int smtpuv_client_new(uv_loop_t *loop, const smtpuv_options *options,
                      smtpuv_client **out) {
  if (out == NULL)
    return SMTPUV_EINVAL;
  *out = NULL;
  if (loop == NULL || options == NULL || options->host == NULL)
    return SMTPUV_EINVAL;
  smtpuv_client *c = smtpuv__calloc(&options->mem, 1, sizeof *c);
  if (c == NULL)
    return SMTPUV_ENOMEM;
  c->mem = options->mem;
  c->loop = loop;
  int rc = smtpuv__options_copy(&c->opts, options);
  if (rc != 0) {
    smtpuv__free(&c->mem, c);
    return rc;
  }
  if (c->opts.port == 0)
    c->opts.port = c->opts.tls == SMTPUV_TLS_IMPLICIT ? 465 : 587;
  if (c->opts.ehlo != NULL)
    memcpy(c->ehlo_name, c->opts.ehlo, strlen(c->opts.ehlo) + 1);
  else
    default_ehlo_name(c);
  rc = make_auth(c);
  if (rc != 0) {
    smtpuv__options_clear(&c->opts);
    smtpuv__free(&c->mem, c);
    return rc;
  }
  uv_idle_init(loop, &c->idle);
  c->idle.data = c;
  smtpuv__client_tls_start(c); /* tlsprep.c: the SSL_CTX off the loop */
  *out = c;
  return 0;
}

static void queue_push(smtpuv__msg **head, smtpuv__msg **tail,
                       smtpuv__msg *m) {
  m->next = NULL;
  if (*tail != NULL)
    (*tail)->next = m;
  else
    *head = m;
  *tail = m;
}

int smtpuv_client_send(smtpuv_client *c, const smtpuv_envelope *env,
                       const smtpuv_body *body, smtpuv_send_cb cb,
                       void *data) {
  if (c == NULL)
    return SMTPUV_EINVAL;
  if (c->closing)
    return SMTPUV_ECLOSED;
  smtpuv__msg *m;
  int rc = smtpuv__msg_new(&c->mem, env, body, &m);
  if (rc != 0)
    return rc;
  m->cb = cb;
  m->cbdata = data;
  smtpuv__client_enqueue(c, m);
  return 0;
}

void smtpuv__client_enqueue(smtpuv_client *c, smtpuv__msg *m) {
  m->seq = c->next_seq++;
  queue_push(&c->queue, &c->queue_tail, m);
  c->pending++;
  smtpuv__client_kick(c);
}

int smtpuv_client_send_message(smtpuv_client *c, const void *data, size_t len,
                               smtpuv_send_cb cb, void *cbdata) {
  if (c == NULL || data == NULL)
    return SMTPUV_EINVAL;
  if (c->closing)
    return SMTPUV_ECLOSED;
  smtpuv_message *msg;
  int rc = smtpuv_message_new(&c->mem, data, len, &msg);
  if (rc != 0)
    return rc;
  smtpuv_body body;
  smtpuv_message_body(msg, &body);
  rc = smtpuv_client_send(c, smtpuv_message_envelope(msg), &body, cb, cbdata);
  if (rc != 0) {
    smtpuv_message_free(msg);
    return rc;
  }
  c->queue_tail->owned = msg;
  return 0;
}

int smtpuv_client_body_ready(smtpuv_client *c) {
  if (c == NULL)
    return SMTPUV_EINVAL;
  if (c->close_done)
    return SMTPUV_ECLOSED;
  if (c->conn != NULL && smtpuv__conv_body_blocked(c->conn->conv))
    smtpuv__client_kick(c); /* dispatch hands it on, outside any event */
  return 0;
}

size_t smtpuv_client_pending(const smtpuv_client *c) {
  return c != NULL ? c->pending : 0;
}

void smtpuv_client_set_data(smtpuv_client *c, void *data) {
  if (c != NULL)
    c->data = data;
}

void *smtpuv_client_get_data(const smtpuv_client *c) {
  return c != NULL ? c->data : NULL;
}

uv_loop_t *smtpuv_client_loop(const smtpuv_client *c) {
  return c != NULL ? c->loop : NULL;
}

static void client_complete(smtpuv_client *c, smtpuv__msg *m) {
  m->stage = SMTPUV__M_DONE;
  if (c->done_tail == NULL || c->done_tail->seq < m->seq) {
    queue_push(&c->done, &c->done_tail, m); /* the usual case: in order */
  } else {
    smtpuv__msg *prev = NULL, *it = c->done;
    while (it != NULL && it->seq < m->seq) {
      prev = it;
      it = it->next;
    }
    m->next = it;
    if (prev != NULL)
      prev->next = m;
    else
      c->done = m;
  }
  smtpuv__client_kick(c);
}

/* The head of the completed list is the next callback due. */
static int deliverable(const smtpuv_client *c) {
  return c->done != NULL && c->done->seq == c->deliver_seq;
}

static void client_requeue(smtpuv_client *c, smtpuv__msg *m) {
  /* retried messages keep their order ahead of the never-started ones: they
     are requeued oldest first, each after the previous (the conversation
     has reset their progress) */
  m->retry = 0;
  smtpuv__msg *prev = NULL, *it = c->queue;
  while (it != NULL && it->attempts > 0) {
    prev = it;
    it = it->next;
  }
  m->next = it;
  if (prev != NULL)
    prev->next = m;
  else
    c->queue = m;
  if (it == NULL)
    c->queue_tail = m;
  smtpuv__client_kick(c);
}

/* Fail every queued message (the connection could not be set up, or the
   client was closed): `f` may be NULL. */
static void fail_queue(smtpuv_client *c, smtpuv_send_status st, int err,
                       smtpuv_phase phase, const smtpuv__conv_failure *f,
                       const char *text) {
  smtpuv_reply r;
  memset(&r, 0, sizeof r);
  if (f != NULL && f->reply_code != 0) {
    r.code = f->reply_code;
    memcpy(r.enhanced, f->reply_enhanced,
           strnlen(f->reply_enhanced, sizeof r.enhanced - 1));
    r.text = f->reply_text;
    r.text_len = strlen(f->reply_text);
  }
  smtpuv__msg *m = c->queue;
  c->queue = c->queue_tail = NULL;
  while (m != NULL) {
    smtpuv__msg *next = m->next;
    if (m->attempts == 0)
      m->attempts = 1;
    smtpuv__msg_decide(&c->mem, m, st, err, phase, r.code != 0 ? &r : NULL,
                       "%s", text);
    if (f != NULL && f->tls != NULL)
      m->tls = smtpuv__msg_str(&c->mem, m, f->tls, strlen(f->tls));
    client_complete(c, m);
    m = next;
  }
}

/* The sending connection's settle step (conn.c, after every event): what
   the conversation finished goes to the callbacks, a setup failure fails
   the queue, queued messages go to the conversation while it takes them. */
static void settle(smtpuv__conn *cn) {
  smtpuv_client *c = cn->client;
  smtpuv__conv *cv = cn->conv;
  smtpuv__conv_failure f;
  if (smtpuv__conv_take_failure(cv, &f))
    fail_queue(c, SMTPUV_SEND_FAILED, f.error, f.phase, &f, f.message);
  for (int guard = 0; guard < 1024; guard++) {
    smtpuv__msg *m;
    while ((m = smtpuv__conv_pop_finished(cv)) != NULL) {
      if (m->retry)
        client_requeue(c, m);
      else
        client_complete(c, m);
    }
    if (c->closing || c->queue == NULL || c->conn != cn ||
        !smtpuv__conv_can_take(cv))
      break;
    m = c->queue;
    c->queue = m->next;
    if (c->queue == NULL)
      c->queue_tail = NULL;
    m->next = NULL;
    smtpuv__conv_submit(cv, m);
  }
}

static const smtpuv__conn_ops send_ops = {settle, NULL};

int smtpuv__conn_start(smtpuv_client *c) {
  smtpuv__conn *cn;
  int rc = smtpuv__conn_open(c, SMTPUV__CONV_SEND, &send_ops, NULL, &cn);
  if (rc == 0 && cn->state != SMTPUV__C_DEAD)
    c->conn = cn;
  return rc;
}

int smtpuv__client_ssl_ctx(smtpuv_client *c, SSL_CTX **ctx, char *err,
                           size_t errlen) {
  if (c->ssl_ctx == NULL) {
    /* the caller's, or the one shared by every client of the options */
    int rc = smtpuv__options_ssl_ctx(&c->opts, &c->ssl_ctx, err, errlen);
    if (rc != 0)
      return rc;
  }
  *ctx = c->ssl_ctx;
  return 0;
}

/* ---- closing -------------------------------------------------------------- */

static void client_free(smtpuv_client *c) {
  smtpuv_mem m = c->mem;
  if (c->auth_owned)
    smtpuv_auth_free(c->auth);
  if (c->ssl_ctx != NULL)
    SSL_CTX_free(c->ssl_ctx);
  smtpuv__client_tls_clear(c); /* tlsprep.c */
  smtpuv__options_clear(&c->opts);
  smtpuv__free(&m, c->read_buf);
  smtpuv__free(&m, c->plain_buf);
  smtpuv__free(&m, c->rr);
  smtpuv__free(&m, c);
}

static void on_idle_closed(uv_handle_t *h) {
  smtpuv_client *c = h->data;
  if (c->close_cb != NULL)
    c->close_cb(c);
  client_free(c);
}

int smtpuv_client_close(smtpuv_client *c, smtpuv_close_cb cb) {
  if (c == NULL)
    return SMTPUV_EINVAL;
  if (c->closing)
    return SMTPUV_ECLOSED;
  c->closing = 1;
  c->close_cb = cb;
  fail_queue(c, SMTPUV_SEND_CANCELED, SMTPUV_ECANCELED, SMTPUV_PHASE_NONE,
             NULL, "canceled: the client was closed");
  smtpuv__client_kick(c);
  return 0;
}

int smtpuv_client_abort(smtpuv_client *c, smtpuv_close_cb cb) {
  if (c == NULL)
    return SMTPUV_EINVAL;
  if (c->aborting)
    return SMTPUV_ECLOSED;
  c->aborting = 1;
  if (!c->closing) {
    c->closing = 1;
    c->close_cb = cb;
  }
  fail_queue(c, SMTPUV_SEND_CANCELED, SMTPUV_ECANCELED, SMTPUV_PHASE_NONE,
             NULL, "canceled: the client was aborted");
  if (c->conn != NULL && !c->conn->in_drive) {
    /* now: no byte is written after this returns */
    smtpuv__conv_abort(c->conn->conv);
    smtpuv__conn_drive(c->conn);
  }
  smtpuv__client_kick(c);
  return 0;
}

void smtpuv__client_conn_gone(smtpuv_client *c, smtpuv__conn *cn) {
  (void)cn;
  c->nconns--;
  smtpuv__client_kick(c);
}

/* ---- dispatch ----------------------------------------------------------------- */

static void deliver(smtpuv_client *c, smtpuv__msg *m) {
  smtpuv_rcpt_result stack_rr[8];
  smtpuv_rcpt_result *rr = stack_rr;
  smtpuv_send_result r;
  if (m->cb == NULL)
    return;
  if (m->nrcpts > 8) {
    /* one array per client, grown as needed: a callback cannot re-enter
       dispatch, so it is never in use twice */
    if (m->nrcpts > c->rr_cap) {
      smtpuv_rcpt_result *a =
          smtpuv__malloc(&c->mem, m->nrcpts * sizeof *a);
      if (a == NULL) {
        /* still call back, with the recipients left out */
        size_t n = m->nrcpts;
        m->nrcpts = 0;
        smtpuv__msg_result(m, &r, stack_rr);
        m->nrcpts = n;
        m->cb(c, &r, m->cbdata);
        return;
      }
      smtpuv__free(&c->mem, c->rr);
      c->rr = a;
      c->rr_cap = m->nrcpts;
    }
    rr = c->rr;
  }
  smtpuv__msg_result(m, &r, rr);
  m->cb(c, &r, m->cbdata);
}

static void dispatch(uv_idle_t *h) {
  smtpuv_client *c = h->data;
  c->in_dispatch++;
  /* 1. callbacks, in queue order (a callback may queue more: the loop
     takes them too) */
  while (deliverable(c)) {
    smtpuv__msg *m = c->done;
    c->done = m->next;
    if (c->done == NULL)
      c->done_tail = NULL;
    c->pending--;
    c->deliver_seq++;
    deliver(c, m);
    smtpuv_message_free(m->owned);
    smtpuv__msg_free(&c->mem, m);
  }
  /* 2. the connection (what it asks for meanwhile needs another pass) */
  c->kicked = 0;
  if (c->conn != NULL) {
    smtpuv__conv *cv = c->conn->conv;
    if (c->aborting)
      smtpuv__conv_abort(cv);
    else if (c->closing)
      smtpuv__conv_close(cv);
    else if (smtpuv__conv_body_blocked(cv))
      smtpuv__conv_body_ready(cv);
    smtpuv__conn_drive(c->conn);
  } else if (c->queue != NULL && !c->closing) {
    int rc = smtpuv__conn_start(c);
    if (rc != 0)
      fail_queue(c, SMTPUV_SEND_FAILED, rc, SMTPUV_PHASE_CONNECT, NULL,
                 smtpuv_strerror(rc));
  }
  c->in_dispatch--;
  if (deliverable(c) || c->kicked)
    return; /* stay active: more callbacks, or more work asked for */
  uv_idle_stop(&c->idle);
  c->idle_active = 0;
  if (c->closing && c->conn == NULL && c->nconns == 0 && c->queue == NULL &&
      c->done == NULL && !c->close_done &&
      !c->tls.work_pending /* tlsprep.c */) {
    c->close_done = 1;
    uv_close((uv_handle_t *)&c->idle, on_idle_closed);
  }
}

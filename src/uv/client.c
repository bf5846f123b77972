/* SPDX-License-Identifier: MIT */
/* The client API, the send queue, the pool of connections, the retry
 * policy and the deferred dispatch.
 *
 * Every send callback runs from the idle handle's callback (`dispatch`),
 * never from inside smtpuv_client_send() or from the middle of reply
 * processing, so a callback may call send() or close() freely: both only
 * queue work. By default callbacks run in the order the messages were
 * queued: each message gets a sequence number, the list of completed
 * messages is kept sorted by it, and only its head is delivered, when it is
 * the next due (a message refused locally waits for the outcome of earlier
 * ones still on the wire); smtpuv_options_set_ordered_callbacks(o, 0)
 * delivers in completion order.
 *
 * The pool: the client's sending connections are in `conns`. Each takes
 * messages from the one queue in its settle step (after every event of its
 * conversation) while its conversation can take one and the message rate
 * allows; dispatch opens a new connection when more messages are queued
 * than the connections absorb (grow()). A failure during a connection's
 * setup marks its server as failed for a while; the queue fails only when
 * no other connection and no other server is left to carry it. Messages
 * whose outcome is temporary wait in `delayed` for their next attempt when
 * the retry policy is on. The client is freed only from the close callback
 * of its last handle, after every connection is gone and every callback
 * has run.
 */
#include <math.h>
#include <string.h>

#include <openssl/rand.h>

#include "conv/retry.h"
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

/* An authenticator from the options' credentials (NULL when there are
   none): 0, SMTPUV_EINVAL (credentials unfit) or SMTPUV_ENOMEM. */
static int auth_from_credentials(smtpuv_client *c, smtpuv_auth **out) {
  const smtpuv_options *o = &c->opts;
  *out = NULL;
  if (!o->has_creds)
    return 0;
  int rc;
  if (o->mechanism == NULL) {
    rc = smtpuv_auth_auto_new(&c->mem, &o->creds, out);
  } else {
    smtpuv_auth_mech mech = smtpuv_auth_mech_from_name(o->mechanism);
    rc = smtpuv_auth_mech_new(&c->mem, mech, &o->creds, out);
  }
  return rc == SMTPUV_ECREDENTIALS ? SMTPUV_EINVAL : rc;
}

/* One authenticator serves one AUTH exchange at a time: a client with one
   connection keeps one (an OAuth token lives on across reconnects), a
   pool gives each connection its own from the credentials. */
static int make_auth(smtpuv_client *c) {
  const smtpuv_options *o = &c->opts;
  if (o->authenticator != NULL) {
    if (o->max_connections > 1)
      return SMTPUV_EINVAL;
    c->auth = o->authenticator;
    c->auth_owned = 0;
    return 0;
  }
  if (o->max_connections > 1) {
    smtpuv_auth *probe;
    int rc = auth_from_credentials(c, &probe); /* fail now, not later */
    smtpuv_auth_free(probe);
    return rc;
  }
  int rc = auth_from_credentials(c, &c->auth);
  c->auth_owned = c->auth != NULL;
  return rc;
}

int smtpuv__client_conn_auth(smtpuv_client *c, smtpuv_auth **auth,
                             int *owned) {
  *owned = 0;
  if (c->opts.max_connections <= 1 || c->opts.authenticator != NULL) {
    *auth = c->auth;
    return 0;
  }
  int rc = auth_from_credentials(c, auth);
  *owned = *auth != NULL;
  return rc;
}


static uint64_t now_ms(const smtpuv_client *c) { return uv_now(c->loop); }

static void on_timer(uv_timer_t *t);

int smtpuv_client_new(uv_loop_t *loop, const smtpuv_options *options,
                      smtpuv_client **out) {
  if (out == NULL)
    return SMTPUV_EINVAL;
  *out = NULL;
  if (loop == NULL || options == NULL ||
      (options->host == NULL && options->unix_path == NULL))
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
  if (c->opts.host == NULL &&
      (rc = smtpuv_options_set_host(&c->opts, "localhost")) != 0) {
    /* a Unix socket: the name only serves TLS */
    smtpuv__options_clear(&c->opts);
    smtpuv__free(&c->mem, c);
    return rc;
  }
  if (c->opts.lmtp && !c->opts.tls_set)
    c->opts.tls = SMTPUV_TLS_NONE; /* local delivery agents: see set_protocol */
  if (c->opts.port == 0)
    c->opts.port = c->opts.lmtp                          ? 24
                   : c->opts.tls == SMTPUV_TLS_IMPLICIT ? 465
                                                         : 587;
  if (c->opts.ehlo != NULL)
    memcpy(c->ehlo_name, c->opts.ehlo, strlen(c->opts.ehlo) + 1);
  else
    default_ehlo_name(c);
  rc = make_auth(c);
  if (rc == 0 && (rc = smtpuv__tsq_new(c)) != 0 && c->auth_owned)
    smtpuv_auth_free(c->auth); /* threadsafe.c */
  if (rc != 0) {
    smtpuv__options_clear(&c->opts);
    smtpuv__free(&c->mem, c);
    return rc;
  }
  uv_idle_init(loop, &c->idle);
  c->idle.data = c;
  smtpuv__client_tls_start(c); /* tlsprep.c: the SSL_CTX off the loop */
  uv_timer_init(loop, &c->timer);
  c->timer.data = c;
  c->msg_tokens = c->opts.msg_burst ? c->opts.msg_burst
                                    : ceil(c->opts.msg_rate > 1 ? c->opts.msg_rate : 1);
  c->conn_tokens = ceil(c->opts.conn_rate > 1 ? c->opts.conn_rate : 1);
  c->msg_tokens_at = c->conn_tokens_at = now_ms(c);
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

static smtpuv__msg *queue_pop(smtpuv_client *c) {
  smtpuv__msg *m = c->queue;
  if (m == NULL)
    return NULL;
  c->queue = m->next;
  if (c->queue == NULL)
    c->queue_tail = NULL;
  m->next = NULL;
  c->queued--;
  return m;
}

/* SMTPUV_ECLOSED, SMTPUV_EFULL or 0: may a message be submitted now? */
static int may_submit(smtpuv_client *c) {
  if (c->closing)
    return SMTPUV_ECLOSED;
  if (c->opts.queue_high != 0 && c->pending >= c->opts.queue_high) {
    c->above_high = 1;
    return SMTPUV_EFULL;
  }
  return 0;
}

int smtpuv_client_send(smtpuv_client *c, const smtpuv_envelope *env,
                       const smtpuv_body *body, smtpuv_send_cb cb,
                       void *data) {
  if (c == NULL)
    return SMTPUV_EINVAL;
  int rc = may_submit(c);
  if (rc != 0)
    return rc;
  smtpuv__msg *m;
  rc = smtpuv__msg_new(&c->mem, env, body, &m);
  if (rc != 0)
    return rc;
  m->cb = cb;
  m->cbdata = data;
  smtpuv__client_enqueue(c, m);
  return 0;
}

void smtpuv__client_enqueue(smtpuv_client *c, smtpuv__msg *m) {
  m->seq = c->next_seq++;
  m->first_try = now_ms(c);
  queue_push(&c->queue, &c->queue_tail, m);
  c->queued++;
  c->pending++;
  if (c->opts.queue_high != 0 && c->pending >= c->opts.queue_high)
    c->above_high = 1;
  smtpuv__client_kick(c);
}

int smtpuv_client_send_message(smtpuv_client *c, const void *data, size_t len,
                               smtpuv_send_cb cb, void *cbdata) {
  if (c == NULL || data == NULL)
    return SMTPUV_EINVAL;
  int rc = may_submit(c);
  if (rc != 0)
    return rc;
  smtpuv_message *msg;
  rc = smtpuv_message_new(&c->mem, data, len, &msg);
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
  c->body_ready = 1; /* dispatch hands it on, outside any event */
  smtpuv__client_kick(c);
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

int smtpuv_client_set_drained_cb(smtpuv_client *c, smtpuv_drained_cb cb) {
  if (c == NULL)
    return SMTPUV_EINVAL;
  c->drained_cb = cb;
  return 0;
}

/* ---- the timer: retries and rate limits ------------------------------------------ */

/* Token bucket: 1 when a token was taken (or the limit is off), else 0
   with the ms until the next one in *wait. */
static int take_token(double rate, unsigned burst, double *tokens,
                      uint64_t *at, uint64_t now, uint64_t *wait) {
  if (rate <= 0)
    return 1;
  double cap = burst != 0 ? burst : ceil(rate > 1 ? rate : 1);
  *tokens += (double)(now - *at) * rate / 1000.0;
  if (*tokens > cap)
    *tokens = cap;
  *at = now;
  if (*tokens >= 1) {
    *tokens -= 1;
    return 1;
  }
  double ms = ceil((1 - *tokens) * 1000.0 / rate);
  *wait = ms < 1 ? 1 : ms > 3600000 ? 3600000 : (uint64_t)ms;
  return 0;
}

/* Wake dispatch in `ms` (the earliest of what waits wins). */
static void wake_in(smtpuv_client *c, uint64_t ms) {
  if (c->close_done)
    return;
  uint64_t at = now_ms(c) + ms;
  if (uv_is_active((uv_handle_t *)&c->timer) && c->timer_at <= at)
    return;
  c->timer_at = at;
  uv_timer_start(&c->timer, on_timer, ms, 0);
}

static void on_timer(uv_timer_t *t) {
  smtpuv_client *c = t->data;
  smtpuv__client_kick(c);
}

static void release_delayed(smtpuv_client *c);

static int msg_token(smtpuv_client *c) {
  uint64_t wait;
  if (take_token(c->opts.msg_rate, c->opts.msg_burst, &c->msg_tokens,
                 &c->msg_tokens_at, now_ms(c), &wait))
    return 1;
  wake_in(c, wait);
  return 0;
}

static int conn_token(smtpuv_client *c) {
  uint64_t wait;
  if (take_token(c->opts.conn_rate, 0, &c->conn_tokens, &c->conn_tokens_at,
                 now_ms(c), &wait))
    return 1;
  wake_in(c, wait);
  return 0;
}

/* ---- completed messages ------------------------------------------------------------ */

static void insert_done(smtpuv_client *c, smtpuv__msg *m) {
  m->stage = SMTPUV__M_DONE;
  if (!c->opts.ordered || c->done_tail == NULL || c->done_tail->seq < m->seq) {
    queue_push(&c->done, &c->done_tail, m); /* the usual case: in order */
    return;
  }
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

/* The retry policy: 1 when `m` waits in `delayed` for another attempt. */
static int retry_later(smtpuv_client *c, smtpuv__msg *m) {
  smtpuv__retry_policy p = {c->opts.retry_max, c->opts.retry_base,
                            c->opts.retry_cap, c->opts.retry_deadline};
  uint16_t jitter = 0;
  uint64_t at, now = now_ms(c);
  if (c->closing || p.max_attempts < 2)
    return 0;
  if (RAND_bytes((unsigned char *)&jitter, sizeof jitter) != 1)
    jitter = (uint16_t)uv_hrtime();
  if (!smtpuv__retry_when(&p, m, now, jitter, &at) || !smtpuv__msg_rewind(m) ||
      smtpuv__msg_log_attempt(&c->mem, m) != 0)
    return 0;
  smtpuv__msg_reset(m);
  m->not_before = at;
  /* sorted by time */
  smtpuv__msg **pp = &c->delayed;
  while (*pp != NULL && (*pp)->not_before <= at)
    pp = &(*pp)->next;
  m->next = *pp;
  *pp = m;
  wake_in(c, at - now);
  return 1;
}

static void client_complete(smtpuv_client *c, smtpuv__msg *m) {
  m->next = NULL;
  if (m->status == SMTPUV_SEND_FAILED && retry_later(c, m))
    return;
  insert_done(c, m);
  smtpuv__client_kick(c);
}

/* The head of the completed list is the next callback due. */
static int deliverable(const smtpuv_client *c) {
  return c->done != NULL &&
         (!c->opts.ordered || c->done->seq == c->deliver_seq);
}

/* Back at the head of the queue, after the other retried messages. */
static void client_requeue(smtpuv_client *c, smtpuv__msg *m) {
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
  c->queued++;
  smtpuv__client_kick(c);
}

static void release_delayed(smtpuv_client *c) {
  uint64_t now = now_ms(c);
  while (c->delayed != NULL && c->delayed->not_before <= now) {
    smtpuv__msg *m = c->delayed;
    c->delayed = m->next;
    client_requeue(c, m);
  }
  if (c->delayed != NULL)
    wake_in(c, c->delayed->not_before - now);
}

/* Every queued message (and, when closing, every delayed one) ends with
   `st`/`err`: the connections could not be set up, or the client closed.
   `f` may be NULL. Each failure counts as an attempt. */
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
  c->queued = 0;
  if (c->closing) {
    /* the retries waiting for their time end too */
    smtpuv__msg **pp = &m;
    while (*pp != NULL)
      pp = &(*pp)->next;
    *pp = c->delayed;
    c->delayed = NULL;
  }
  while (m != NULL) {
    smtpuv__msg *next = m->next;
    if (st != SMTPUV_SEND_CANCELED)
      m->attempts++;
    smtpuv__msg_decide(&c->mem, m, st, err, phase, r.code != 0 ? &r : NULL,
                       "%s", text);
    if (f != NULL && f->tls != NULL)
      m->tls = smtpuv__msg_str(&c->mem, m, f->tls, strlen(f->tls));
    client_complete(c, m);
    m = next;
  }
}

/* ---- the pool ------------------------------------------------------------------------ */

static unsigned nservers(const smtpuv_client *c) {
  return 1 + c->opts.nfallback;
}

/* The server for a new connection: the first that did not fail in this
   round and is not being skipped, else the first that did not fail in
   this round; -1 when every server failed in this round (the queue was
   failed with it). A round ends when a connection gets ready. */
static int pick_server(const smtpuv_client *c) {
  uint64_t now = now_ms(c);
  int fallback = -1;
  for (unsigned i = 0; i < nservers(c); i++) {
    if (c->round_failed[i])
      continue;
    if (c->server_failed_until[i] <= now)
      return (int)i;
    if (fallback < 0)
      fallback = (int)i;
  }
  return fallback;
}

static void new_round(smtpuv_client *c) {
  memset(c->round_failed, 0, sizeof c->round_failed);
}

/* A connection's setup failed: its server is skipped for a while and
   counts as failed in this round. The queue fails when no connection is
   ready to carry it and every server failed in this round (connections
   still being set up would most likely fail the same way: they are not
   waited for). */
static void setup_failed(smtpuv__conn *cn, const smtpuv__conv_failure *f) {
  smtpuv_client *c = cn->client;
  if (f->error != SMTPUV_ENOMEM && c->opts.host_skip_ms != 0)
    c->server_failed_until[cn->host_index] =
        now_ms(c) + c->opts.host_skip_ms;
  c->round_failed[cn->host_index] = 1;
  for (smtpuv__conn *o = c->conns; o != NULL; o = o->next)
    if (o != cn && smtpuv__conv_end(o->conv, NULL) == SMTPUV__CONV_RUN &&
        !smtpuv__conv_in_setup(o->conv) && !smtpuv__conv_setup_failed(o->conv))
      return; /* a ready connection carries the queue */
  if (pick_server(c) >= 0) {
    smtpuv__conv_trace_info(cn->conv, "trying the next server");
    smtpuv__client_kick(c);
    return;
  }
  new_round(c); /* later messages try every server again */
  fail_queue(c, SMTPUV_SEND_FAILED, f->error, f->phase, f, f->message);
}

/* The sending connection's settle step (conn.c, after every event): what
   the conversation finished goes to the callbacks, a setup failure is
   handled, queued messages go to the conversation while it takes them. */
static void settle(smtpuv__conn *cn) {
  smtpuv_client *c = cn->client;
  smtpuv__conv *cv = cn->conv;
  smtpuv__conv_failure f;
  if (smtpuv__conv_take_failure(cv, &f))
    setup_failed(cn, &f);
  else if (!cn->ready_seen && !smtpuv__conv_in_setup(cv) &&
           !smtpuv__conv_setup_failed(cv)) {
    cn->ready_seen = 1;
    new_round(c); /* a server works: every one may be tried again */
    smtpuv__client_kick(c); /* a setup slot is free: grow() may open more */
  }
  for (int guard = 0; guard < 1024; guard++) {
    smtpuv__msg *m;
    while ((m = smtpuv__conv_pop_finished(cv)) != NULL) {
      if (m->retry && c->closing) {
        /* its connection broke while the client closes: not again */
        m->retry = 0;
        smtpuv__msg_decide(&c->mem, m, SMTPUV_SEND_CANCELED, SMTPUV_ECANCELED,
                           SMTPUV_PHASE_NONE, NULL,
                           "canceled: the client was closed");
        client_complete(c, m);
      } else if (m->retry) {
        client_requeue(c, m);
      } else {
        client_complete(c, m);
      }
    }
    if (c->closing || c->queue == NULL || !cn->attached ||
        !smtpuv__conv_can_take(cv) || !msg_token(c))
      break;
    smtpuv__conv_submit(cv, queue_pop(c));
  }
}

static const smtpuv__conn_ops send_ops = {settle, NULL};

static int open_connection(smtpuv_client *c, unsigned server) {
  smtpuv__conn *cn;
  int rc = smtpuv__conn_open(c, server, SMTPUV__CONV_SEND, &send_ops, NULL,
                             &cn);
  if (rc != 0)
    return rc;
  if (cn->state != SMTPUV__C_DEAD) {
    cn->attached = 1;
    cn->next = c->conns;
    c->conns = cn;
  }
  return 0;
}

void smtpuv__client_detach(smtpuv_client *c, smtpuv__conn *cn) {
  if (!cn->attached)
    return;
  cn->attached = 0;
  for (smtpuv__conn **pp = &c->conns; *pp != NULL; pp = &(*pp)->next)
    if (*pp == cn) {
      *pp = cn->next;
      break;
    }
  cn->next = NULL;
  smtpuv__client_kick(c);
}

/* A connection still connecting, greeting, saying EHLO, handshaking TLS
   or authenticating (not one whose setup already failed). */
static int setting_up(const smtpuv__conn *cn) {
  const smtpuv__conv *cv = cn->conv;
  return smtpuv__conv_end(cv, NULL) == SMTPUV__CONV_RUN &&
         smtpuv__conv_in_setup(cv) && !smtpuv__conv_setup_failed(cv);
}

/* Open connections while more messages are queued than the open ones
   absorb (a connection being set up absorbs a pipeline's depth, a ready
   one what its pipeline still has room for), at most max_connecting of
   them being set up at once (settle() kicks the client when one gets
   ready; one that fails frees its slot when smtpuv__client_detach()
   takes it off the list, which kicks too). */
static void grow(smtpuv_client *c) {
  for (unsigned guard = 0; guard < c->opts.max_connections; guard++) {
    if (c->closing || c->queue == NULL)
      return;
    unsigned open = 0, opening = 0;
    size_t absorb = 0;
    for (smtpuv__conn *cn = c->conns; cn != NULL; cn = cn->next) {
      open++;
      opening += (unsigned)setting_up(cn);
      absorb += smtpuv__conv_room(cn->conv);
    }
    if (open >= c->opts.max_connections || c->queued <= absorb ||
        opening >= c->opts.max_connecting)
      return;
    int server = pick_server(c);
    if (server < 0 || !conn_token(c))
      return;
    int rc = open_connection(c, (unsigned)server);
    if (rc != 0) {
      if (open == 0)
        fail_queue(c, SMTPUV_SEND_FAILED, rc, SMTPUV_PHASE_CONNECT, NULL,
                   smtpuv_strerror(rc));
      return;
    }
  }
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
  smtpuv__tsq_free(c);
  smtpuv__free(&m, c);
}

static void on_handle_closed(uv_handle_t *h) {
  smtpuv_client *c = h->data;
  if (--c->handles_closing > 0)
    return;
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
  smtpuv__tsq_shut(c); /* threadsafe.c: ECLOSED from now on */
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
  smtpuv__tsq_shut(c); /* threadsafe.c: ECLOSED from now on */
  fail_queue(c, SMTPUV_SEND_CANCELED, SMTPUV_ECANCELED, SMTPUV_PHASE_NONE,
             NULL, "canceled: the client was aborted");
  /* now, unless a connection is in the middle of an event (then from
     dispatch): no byte is written after this returns */
  smtpuv__conn *next;
  for (smtpuv__conn *cn = c->conns; cn != NULL; cn = next) {
    next = cn->next;
    if (cn->in_drive)
      continue;
    smtpuv__conv_abort(cn->conv);
    smtpuv__conn_drive(cn);
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
  /* 1. callbacks (a callback may queue more: the loop takes them too) */
  while (deliverable(c)) {
    smtpuv__msg *m = c->done;
    c->done = m->next;
    if (c->done == NULL)
      c->done_tail = NULL;
    c->pending--;
    if (m->seq == c->deliver_seq)
      c->deliver_seq++;
    deliver(c, m);
    smtpuv_message_free(m->owned);
    smtpuv__msg_free(&c->mem, m);
  }
  if (c->above_high && c->pending <= c->opts.queue_low) {
    c->above_high = 0;
    if (c->drained_cb != NULL && !c->closing)
      c->drained_cb(c);
  }
  /* 2. the connections (what they ask for meanwhile needs another pass) */
  c->kicked = 0;
  release_delayed(c);
  int body_ready = c->body_ready;
  c->body_ready = 0;
  smtpuv__conn *next;
  for (smtpuv__conn *cn = c->conns; cn != NULL; cn = next) {
    next = cn->next;
    smtpuv__conv *cv = cn->conv;
    if (c->aborting)
      smtpuv__conv_abort(cv);
    else if (c->closing)
      smtpuv__conv_close(cv);
    else if (body_ready && smtpuv__conv_body_blocked(cv))
      smtpuv__conv_body_ready(cv);
    smtpuv__conn_drive(cn);
  }
  grow(c);
  c->in_dispatch--;
  if (deliverable(c) || c->kicked)
    return; /* stay active: more callbacks, or more work asked for */
  uv_idle_stop(&c->idle);
  c->idle_active = 0;
  if (c->closing && c->conns == NULL && c->nconns == 0 && c->queue == NULL &&
      c->delayed == NULL && c->done == NULL && !c->close_done &&
      !c->tls.work_pending /* tlsprep.c */) {
    c->close_done = 1;
    c->handles_closing = 3;
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    uv_close((uv_handle_t *)&c->idle, on_handle_closed);
    smtpuv__tsq_close(c, on_handle_closed); /* threadsafe.c: its async */
  }
}

/* ---- loop references (the Node binding) ------------------------------------ */

static void set_handle_ref(uv_handle_t *h, int ref) {
  if (ref)
    uv_ref(h);
  else
    uv_unref(h);
}

void smtpuv_client_set_ref(smtpuv_client *c, int ref) {
  if (c == NULL || c->close_done)
    return;
  c->unref = !ref;
  set_handle_ref((uv_handle_t *)&c->idle, ref);
  set_handle_ref((uv_handle_t *)&c->timer, ref);
  /* new connections take it from c->unref (conn.c) */
  for (smtpuv__conn *cn = c->conns; cn != NULL; cn = cn->next) {
    if (cn->timer_open)
      set_handle_ref((uv_handle_t *)&cn->timer, ref);
    if (cn->tcp_open)
      set_handle_ref((uv_handle_t *)&cn->s.tcp, ref);
  }
}

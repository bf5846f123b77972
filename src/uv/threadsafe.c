/* SPDX-License-Identifier: MIT */
/* Submissions from any thread: smtpuv_client_send_threadsafe() and friends.
 *
 * The calling thread validates and copies the envelope into a message
 * record (smtpuv__msg_new(), through the client's allocator) and appends it
 * to a queue protected by a uv_mutex_t; the first record of an empty queue
 * wakes the loop with uv_async_send(). On the loop thread the async
 * callback hands the records, oldest first, to smtpuv__client_enqueue():
 * from there a record is like one from smtpuv_client_send().
 *
 * Close: smtpuv_client_close()/abort() call smtpuv__tsq_shut() on the loop
 * thread, which sets `shut` under the mutex (every later submission gets
 * SMTPUV_ECLOSED and no callback) and hands over what was accepted before,
 * so the close cancels it with the rest of the queue: every accepted
 * submission is called back exactly once. uv_async_send() is called only
 * under the mutex and never once `shut` is set, so no thread touches the
 * handle after the teardown closed it.
 *
 * Back-pressure (smtpuv_options_set_queue_limits): a submission is refused
 * with SMTPUV_EFULL while the pending count below is at the high mark.
 *
 * Pending count: `queued` (under the mutex) plus the client's atomic
 * `pending`; a hand-over moves records from one to the other under the
 * mutex, so a reader holding it never misses a message.
 */
#include <stdatomic.h>
#include <string.h>

#include "uv/client_int.h"

typedef struct smtpuv__tsq {
  uv_mutex_t lock;
  uv_async_t async;
  smtpuv_client *client;
  /* under `lock` */
  smtpuv__msg *head, *tail; /* submitted, not yet handed to the client */
  size_t queued;
  atomic_int shut;          /* close/abort began (written under `lock`;
                               read without it for an early refusal) */
} smtpuv__tsq;

/* Under the lock, on the loop thread: every record to the client, in
   submission order. */
static void hand_over(smtpuv__tsq *q) {
  smtpuv__msg *m = q->head;
  q->head = q->tail = NULL;
  while (m != NULL) {
    smtpuv__msg *next = m->next;
    smtpuv__client_enqueue(q->client, m); /* counts it in pending */
    q->queued--;
    m = next;
  }
}

static void on_async(uv_async_t *h) {
  smtpuv_client *c = h->data;
  smtpuv__tsq *q = c->tsq;
  uv_mutex_lock(&q->lock);
  if (!q->shut)
    hand_over(q);
  uv_mutex_unlock(&q->lock);
}

int smtpuv__tsq_new(smtpuv_client *c) {
  smtpuv__tsq *q = smtpuv__calloc(&c->mem, 1, sizeof *q);
  if (q == NULL)
    return SMTPUV_ENOMEM;
  if (uv_mutex_init(&q->lock) != 0) {
    smtpuv__free(&c->mem, q);
    return SMTPUV_ENOMEM;
  }
  /* the loop's wake-up descriptor is made at its first async handle: the
     only failure is running out of descriptors or memory */
  if (uv_async_init(c->loop, &q->async, on_async) != 0) {
    uv_mutex_destroy(&q->lock);
    smtpuv__free(&c->mem, q);
    return SMTPUV_ENOMEM;
  }
  /* like the idle handle, it does not keep the loop running by itself */
  uv_unref((uv_handle_t *)&q->async);
  q->async.data = c; /* as for the client's other handles */
  q->client = c;
  c->tsq = q;
  return 0;
}

void smtpuv__tsq_shut(smtpuv_client *c) {
  smtpuv__tsq *q = c->tsq;
  uv_mutex_lock(&q->lock);
  q->shut = 1;
  hand_over(q);
  uv_mutex_unlock(&q->lock);
}

void smtpuv__tsq_close(smtpuv_client *c, uv_close_cb cb) {
  uv_close((uv_handle_t *)&c->tsq->async, cb);
}

void smtpuv__tsq_free(smtpuv_client *c) {
  smtpuv__tsq *q = c->tsq;
  if (q == NULL)
    return;
  uv_mutex_destroy(&q->lock);
  smtpuv__free(&c->mem, q);
  c->tsq = NULL;
}

/* Append a complete record; on SMTPUV_ECLOSED or SMTPUV_EFULL the caller
   frees it. */
static int submit(smtpuv_client *c, smtpuv__msg *m) {
  smtpuv__tsq *q = c->tsq;
  m->next = NULL;
  uv_mutex_lock(&q->lock);
  if (q->shut) {
    uv_mutex_unlock(&q->lock);
    return SMTPUV_ECLOSED;
  }
  /* back-pressure as in smtpuv_client_send(), counting those not yet
     handed over (the hand-over past the mark sets the client's flag for
     the drained callback) */
  size_t high = c->opts.queue_high;
  if (high != 0 && q->queued + atomic_load(&c->pending) >= high) {
    uv_mutex_unlock(&q->lock);
    return SMTPUV_EFULL;
  }
  if (q->tail != NULL)
    q->tail->next = m;
  else
    q->head = m;
  q->tail = m;
  if (q->queued++ == 0)
    uv_async_send(&q->async); /* later ones find the loop already woken */
  uv_mutex_unlock(&q->lock);
  return 0;
}

/* Already shut: refuse before building a record (submit() decides). */
static int is_shut(smtpuv_client *c) { return atomic_load(&c->tsq->shut); }

int smtpuv_client_send_threadsafe(smtpuv_client *c, const smtpuv_envelope *env,
                                  const smtpuv_body *body, smtpuv_send_cb cb,
                                  void *data) {
  if (c == NULL)
    return SMTPUV_EINVAL;
  if (is_shut(c))
    return SMTPUV_ECLOSED;
  smtpuv__msg *m;
  int rc = smtpuv__msg_new(&c->mem, env, body, &m);
  if (rc != 0)
    return rc;
  m->cb = cb;
  m->cbdata = data;
  rc = submit(c, m);
  if (rc != 0)
    smtpuv__msg_free(&c->mem, m);
  return rc;
}

int smtpuv_client_send_message_threadsafe(smtpuv_client *c, const void *data,
                                          size_t len, smtpuv_send_cb cb,
                                          void *cbdata) {
  if (c == NULL || data == NULL)
    return SMTPUV_EINVAL;
  if (is_shut(c))
    return SMTPUV_ECLOSED;
  smtpuv_message *msg;
  int rc = smtpuv_message_new(&c->mem, data, len, &msg);
  if (rc != 0)
    return rc;
  smtpuv_body body;
  smtpuv_message_body(msg, &body);
  smtpuv__msg *m;
  rc = smtpuv__msg_new(&c->mem, smtpuv_message_envelope(msg), &body, &m);
  if (rc != 0) {
    smtpuv_message_free(msg);
    return rc;
  }
  m->cb = cb;
  m->cbdata = cbdata;
  m->owned = msg; /* freed after the callback, on the loop thread */
  rc = submit(c, m);
  if (rc != 0) {
    smtpuv_message_free(msg);
    smtpuv__msg_free(&c->mem, m);
  }
  return rc;
}

size_t smtpuv_client_pending_threadsafe(smtpuv_client *c) {
  if (c == NULL)
    return 0;
  smtpuv__tsq *q = c->tsq;
  uv_mutex_lock(&q->lock);
  size_t n = q->queued + atomic_load(&c->pending);
  uv_mutex_unlock(&q->lock);
  return n;
}

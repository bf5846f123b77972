/* SPDX-License-Identifier: MIT */
/* smtpuv_session_sync_*(): one client on a private loop thread, for code
 * without an event loop.
 *
 * The session owns a loop, a client on it and a thread (uv_thread_create)
 * that runs the loop until the session is freed. A send submits with
 * smtpuv_client_send_threadsafe() and waits on its own uv_cond_t until the
 * callback (on the session thread) has copied the result and signalled it,
 * so several threads may send at once, each blocking for its own message,
 * and all of them share the client's connection (TLS and AUTH done once).
 * Freeing wakes the loop through `stop`, whose callback closes the client
 * (QUIT) and then itself; the loop ends when the client's close is done,
 * and the thread is joined.
 */
#include <signal.h>
#include <string.h>

#include <pthread.h>

#include "uv/client_int.h"

struct smtpuv_session_sync {
  smtpuv_mem mem;
  uv_loop_t loop;
  smtpuv_client *client;
  uv_async_t stop;   /* keeps the loop alive; wakes it to close */
  uv_thread_t thread;
  uv_mutex_t lock;   /* the waiters' `done` and results */
};

typedef struct waiter {
  smtpuv_session_sync *s;
  uv_cond_t cond;
  int done;
  smtpuv_send_result *copy;
  int copy_rc;
  smtpuv_send_status status;
  int error;
} waiter;

static void on_sent(smtpuv_client *c, const smtpuv_send_result *r,
                    void *data) {
  (void)c;
  waiter *w = data;
  smtpuv_send_result *copy = NULL;
  int copy_rc = smtpuv_send_result_dup(&w->s->mem, r, &copy);
  uv_mutex_lock(&w->s->lock);
  w->copy = copy;
  w->copy_rc = copy_rc;
  w->status = r->status;
  w->error = r->error;
  w->done = 1;
  uv_cond_signal(&w->cond);
  uv_mutex_unlock(&w->s->lock); /* `w` may be gone from here on */
}

static void on_stop(uv_async_t *h) {
  smtpuv_session_sync *s = h->data;
  smtpuv_client_close(s->client, NULL);
  uv_close((uv_handle_t *)&s->stop, NULL);
}

static void run(void *arg) {
  smtpuv_session_sync *s = arg;
  /* every timer of the client is finite unless the caller disabled them;
     the loop ends once `stop` and the client are closed */
  uv_run(&s->loop, UV_RUN_DEFAULT);
}

/* The loop without its thread (a failed start): close what is open. */
static void teardown_here(smtpuv_session_sync *s) {
  smtpuv_client_close(s->client, NULL);
  uv_close((uv_handle_t *)&s->stop, NULL);
  uv_run(&s->loop, UV_RUN_DEFAULT);
}

static void session_free(smtpuv_session_sync *s) {
  smtpuv_mem m = s->mem;
  uv_loop_close(&s->loop);
  uv_mutex_destroy(&s->lock);
  smtpuv__free(&m, s);
}

int smtpuv_session_sync_new(const smtpuv_options *options,
                            smtpuv_session_sync **out) {
  if (out == NULL)
    return SMTPUV_EINVAL;
  *out = NULL;
  if (options == NULL || options->host == NULL)
    return SMTPUV_EINVAL;
  smtpuv_session_sync *s = smtpuv__calloc(&options->mem, 1, sizeof *s);
  if (s == NULL)
    return SMTPUV_ENOMEM;
  s->mem = options->mem;
  if (uv_mutex_init(&s->lock) != 0) {
    smtpuv__free(&s->mem, s);
    return SMTPUV_ENOMEM;
  }
  if (uv_loop_init(&s->loop) != 0) {
    uv_mutex_destroy(&s->lock);
    smtpuv__free(&s->mem, s);
    return SMTPUV_ENOMEM;
  }
  int rc = smtpuv_client_new(&s->loop, options, &s->client);
  if (rc != 0) {
    session_free(s);
    return rc;
  }
  if (uv_async_init(&s->loop, &s->stop, on_stop) != 0) {
    smtpuv_client_close(s->client, NULL);
    uv_run(&s->loop, UV_RUN_DEFAULT);
    session_free(s);
    return SMTPUV_ENOMEM;
  }
  s->stop.data = s;
  /* The session thread takes no signal: the application's handlers run on
     its own threads, and a SIGPIPE from a write to a closed connection
     stays pending on the session thread (discarded when it ends) instead
     of ending the process. The new thread inherits the mask. */
  sigset_t all, old;
  sigfillset(&all);
  int masked = pthread_sigmask(SIG_SETMASK, &all, &old) == 0;
  rc = uv_thread_create(&s->thread, run, s);
  if (masked)
    pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc != 0) {
    teardown_here(s);
    session_free(s);
    return SMTPUV_ENOMEM;
  }
  *out = s;
  return 0;
}

/* Submit (one of the two forms) and wait for the callback. */
static int send_wait(smtpuv_session_sync *s, const smtpuv_envelope *env,
                     const smtpuv_body *body, const void *msg, size_t msglen,
                     smtpuv_send_result **result) {
  if (result != NULL)
    *result = NULL;
  if (s == NULL)
    return SMTPUV_EINVAL;
  uv_thread_t self = uv_thread_self();
  if (uv_thread_equal(&self, &s->thread))
    return SMTPUV_EINVAL; /* from a callback on the session thread: it
                             would wait for itself */
  waiter w;
  memset(&w, 0, sizeof w);
  w.s = s;
  if (uv_cond_init(&w.cond) != 0)
    return SMTPUV_ENOMEM;
  int rc = msg != NULL
               ? smtpuv_client_send_message_threadsafe(s->client, msg, msglen,
                                                       on_sent, &w)
               : smtpuv_client_send_threadsafe(s->client, env, body, on_sent,
                                               &w);
  if (rc != 0) {
    uv_cond_destroy(&w.cond);
    return rc;
  }
  uv_mutex_lock(&s->lock);
  while (!w.done)
    uv_cond_wait(&w.cond, &s->lock);
  uv_mutex_unlock(&s->lock);
  uv_cond_destroy(&w.cond);
  if (result != NULL) {
    if (w.copy_rc != 0)
      return SMTPUV_ENOMEM;
    *result = w.copy;
  } else {
    smtpuv_send_result_free(w.copy);
  }
  if (w.status == SMTPUV_SEND_SENT)
    return 0;
  return w.error != 0 ? w.error : SMTPUV_EIO;
}

int smtpuv_session_sync_send(smtpuv_session_sync *s,
                             const smtpuv_envelope *env,
                             const smtpuv_body *body,
                             smtpuv_send_result **result) {
  if (env == NULL || body == NULL) {
    if (result != NULL)
      *result = NULL;
    return SMTPUV_EINVAL;
  }
  return send_wait(s, env, body, NULL, 0, result);
}

int smtpuv_session_sync_send_message(smtpuv_session_sync *s,
                                     const void *data, size_t len,
                                     smtpuv_send_result **result) {
  if (data == NULL) {
    if (result != NULL)
      *result = NULL;
    return SMTPUV_EINVAL;
  }
  return send_wait(s, NULL, NULL, data, len, result);
}

size_t smtpuv_session_sync_pending(smtpuv_session_sync *s) {
  return s != NULL ? smtpuv_client_pending_threadsafe(s->client) : 0;
}

void smtpuv_session_sync_free(smtpuv_session_sync *s) {
  if (s == NULL)
    return;
  uv_async_send(&s->stop);
  uv_thread_join(&s->thread);
  session_free(s);
}

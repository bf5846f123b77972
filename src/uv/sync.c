/* SPDX-License-Identifier: MIT */
/* smtpuv_send_sync(): one message on a private loop. */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <time.h>

#include <pthread.h>

#include "uv/client_int.h"

typedef struct sync_state {
  const smtpuv_mem *mem;
  smtpuv_send_result *copy;
  int copy_rc;
  int done;
  smtpuv_send_status status;
  int error;
} sync_state;

static void on_sent(smtpuv_client *c, const smtpuv_send_result *r,
                    void *data) {
  sync_state *st = data;
  st->done = 1;
  st->status = r->status;
  st->error = r->error;
  st->copy_rc = smtpuv_send_result_dup(st->mem, r, &st->copy);
  smtpuv_client_close(c, NULL);
}

static int run_sync(const smtpuv_options *o, const smtpuv_envelope *env,
                    const smtpuv_body *body, const void *msg, size_t msglen,
                    smtpuv_send_result **result) {
  if (result != NULL)
    *result = NULL;
  if (o == NULL)
    return SMTPUV_EINVAL;
  uv_loop_t loop;
  int rc = uv_loop_init(&loop);
  if (rc != 0)
    return SMTPUV_ENOMEM;
  smtpuv_client *c;
  rc = smtpuv_client_new(&loop, o, &c);
  if (rc != 0) {
    uv_loop_close(&loop);
    return rc;
  }
  sync_state st;
  memset(&st, 0, sizeof st);
  st.mem = &o->mem;
  if (msg != NULL)
    rc = smtpuv_client_send_message(c, msg, msglen, on_sent, &st);
  else
    rc = smtpuv_client_send(c, env, body, on_sent, &st);
  if (rc != 0)
    smtpuv_client_close(c, NULL);
  /* SIGPIPE (a write to a connection the server closed) would end the
     process: block it in this thread while the loop runs and discard one
     that we caused (it was not pending before). */
  sigset_t pipe_set, old_set, pending;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  sigemptyset(&pending);
  int masked = pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set) == 0;
  int was_pending = 0;
  if (masked && sigpending(&pending) == 0)
    was_pending = sigismember(&pending, SIGPIPE);
  /* bounded: every timer of the client is finite unless the caller
     disabled them */
  uv_run(&loop, UV_RUN_DEFAULT);
  if (masked) {
    if (!was_pending && sigpending(&pending) == 0 &&
        sigismember(&pending, SIGPIPE)) {
      struct timespec zero = {0, 0};
      while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR) {
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_set, NULL);
  }
  uv_loop_close(&loop);
  if (rc != 0)
    return rc;
  if (!st.done)
    return SMTPUV_EIO;
  if (result != NULL) {
    if (st.copy_rc != 0)
      return SMTPUV_ENOMEM;
    *result = st.copy;
  } else {
    smtpuv_send_result_free(st.copy);
  }
  if (st.status == SMTPUV_SEND_SENT)
    return 0;
  return st.error != 0 ? st.error : SMTPUV_EIO;
}

int smtpuv_send_sync(const smtpuv_options *o, const smtpuv_envelope *env,
                     const smtpuv_body *body, smtpuv_send_result **result) {
  if (env == NULL || body == NULL) {
    if (result != NULL)
      *result = NULL;
    return SMTPUV_EINVAL;
  }
  return run_sync(o, env, body, NULL, 0, result);
}

int smtpuv_send_message_sync(const smtpuv_options *o, const void *data,
                             size_t len, smtpuv_send_result **result) {
  if (data == NULL) {
    if (result != NULL)
      *result = NULL;
    return SMTPUV_EINVAL;
  }
  return run_sync(o, NULL, NULL, data, len, result);
}

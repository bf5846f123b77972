/* SPDX-License-Identifier: MIT */
/* Submissions from other threads without a server: argument checks,
 * hand-over in submission order, close racing with submitters (every
 * accepted message called back exactly once, SMTPUV_ECLOSED after), the
 * pending count seen from another thread, no handle left after the close
 * callback, allocation failures, and the blocking session's life cycle.
 * The only sockets are connects to a closed loopback port. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "smtpuv/client.h"
#include "support.h"

/* A thread-safe allocator that counts live blocks. */
static atomic_long ts_live;
static void *ts_malloc(size_t n, void *u) {
  (void)u;
  void *p = malloc(n ? n : 1);
  if (p)
    atomic_fetch_add(&ts_live, 1);
  return p;
}
static void *ts_calloc(size_t k, size_t n, void *u) {
  (void)u;
  void *p = calloc(k ? k : 1, n ? n : 1);
  if (p)
    atomic_fetch_add(&ts_live, 1);
  return p;
}
static void *ts_realloc(void *q, size_t n, void *u) {
  (void)u;
  void *p = realloc(q, n ? n : 1);
  if (p && q == NULL)
    atomic_fetch_add(&ts_live, 1);
  return p;
}
static void ts_free(void *p, void *u) {
  (void)u;
  if (p) {
    atomic_fetch_sub(&ts_live, 1);
    free(p);
  }
}
static const smtpuv_mem ts_mem = {NULL, ts_malloc, ts_free, ts_calloc,
                                  ts_realloc};

/* A loopback port nobody listens on (bound, then closed). */
static int closed_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  socklen_t n = sizeof a;
  assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &n), 0);
  close(fd);
  return ntohs(a.sin_port);
}

static smtpuv_options *opts(const smtpuv_mem *mem, int port) {
  smtpuv_options *o;
  assert_int_equal(smtpuv_options_new(mem, &o), 0);
  assert_int_equal(smtpuv_options_set_host(o, "127.0.0.1"), 0);
  assert_int_equal(smtpuv_options_set_port(o, (unsigned)port), 0);
  assert_int_equal(smtpuv_options_set_tls(o, SMTPUV_TLS_NONE), 0);
  assert_int_equal(smtpuv_options_set_ehlo_name(o, "client.test"), 0);
  return o;
}

static void count_handle(uv_handle_t *h, void *arg) {
  (void)h;
  (*(int *)arg)++;
}

/* No handle of the client is left once its close callback ran. */
static void assert_loop_empty(uv_loop_t *loop) {
  int n = 0;
  uv_walk(loop, count_handle, &n);
  assert_int_equal(n, 0);
  assert_int_equal(uv_loop_close(loop), 0);
}

static const char *to1[] = {"b@example.com"};
static const char body_text[] = "Subject: t\r\n\r\nbody\r\n";

static void env_init(smtpuv_envelope *e, smtpuv_body *b) {
  smtpuv_envelope z = SMTPUV_ENVELOPE_INIT;
  *e = z;
  e->sender = "a@example.com";
  e->recipients = to1;
  e->nrecipients = 1;
  smtpuv_body_init_buffer(b, body_text, sizeof body_text - 1);
}

/* ---- the record of each callback ----------------------------------------- */

enum { MAXT = 8, MAXN = 2000 };

typedef struct book {
  int nthreads, per_thread;
  /* loop thread only */
  int calls[MAXT][MAXN];
  int last[MAXT]; /* last index called back per thread, -1 */
  int order_ok;
  int done;
  int by_status[4];
  int phase_connect;
  int close_cbs;
  /* submitters */
  atomic_int accepted[MAXT]; /* submissions that returned 0 */
  atomic_int closed_seen[MAXT];
  atomic_int go;
  smtpuv_client *client;
  uv_async_t keep; /* keeps the loop alive while submitters run */
  int total_wanted; /* close keep when done reaches it (-1: never) */
} book;

static void book_init(book *k, int nthreads, int per_thread) {
  memset(k, 0, sizeof *k);
  k->nthreads = nthreads;
  k->per_thread = per_thread;
  k->order_ok = 1;
  k->total_wanted = -1;
  for (int t = 0; t < MAXT; t++)
    k->last[t] = -1;
}

typedef struct tag {
  book *k;
  int t, i;
} tag;

static void on_sent(smtpuv_client *c, const smtpuv_send_result *r,
                    void *data) {
  (void)c;
  tag *g = data;
  book *k = g->k;
  k->calls[g->t][g->i]++;
  if (g->i <= k->last[g->t])
    k->order_ok = 0; /* one thread's messages keep their order */
  k->last[g->t] = g->i;
  k->done++;
  k->by_status[r->status]++;
  if (r->phase == SMTPUV_PHASE_CONNECT)
    k->phase_connect++;
  if (k->done == k->total_wanted)
    uv_close((uv_handle_t *)&k->keep, NULL);
}

static void on_closed(smtpuv_client *c) {
  book *k = smtpuv_client_get_data(c);
  k->close_cbs++;
}

typedef struct worker {
  book *k;
  int t;
  tag *tags; /* per_thread entries */
  int stop_at_closed;
} worker;

static void submit_loop(void *arg) {
  worker *w = arg;
  book *k = w->k;
  while (!atomic_load(&k->go)) {
  }
  smtpuv_envelope env;
  smtpuv_body b;
  env_init(&env, &b);
  for (int i = 0; i < k->per_thread; i++) {
    w->tags[i].k = k;
    w->tags[i].t = w->t;
    w->tags[i].i = i;
    int rc = smtpuv_client_send_threadsafe(k->client, &env, &b, on_sent,
                                           &w->tags[i]);
    if (rc == 0) {
      atomic_fetch_add(&k->accepted[w->t], 1);
      continue;
    }
    assert_int_equal(rc, SMTPUV_ECLOSED);
    atomic_fetch_add(&k->closed_seen[w->t], 1);
    /* refused for good: the next one too, and no callback for either */
    assert_int_equal(smtpuv_client_send_threadsafe(k->client, &env, &b,
                                                   on_sent, &w->tags[i]),
                     SMTPUV_ECLOSED);
    assert_int_equal(smtpuv_client_send_message_threadsafe(
                         k->client, body_text, sizeof body_text - 1, on_sent,
                         &w->tags[i]),
                     SMTPUV_ECLOSED);
    if (w->stop_at_closed)
      return;
  }
}

typedef struct run {
  book k;
  worker w[MAXT];
  uv_thread_t th[MAXT];
} run;

static void start_workers(run *r, int stop_at_closed) {
  for (int t = 0; t < r->k.nthreads; t++) {
    r->w[t].k = &r->k;
    r->w[t].t = t;
    r->w[t].stop_at_closed = stop_at_closed;
    r->w[t].tags = calloc((size_t)r->k.per_thread, sizeof(tag));
    assert_non_null(r->w[t].tags);
    assert_int_equal(uv_thread_create(&r->th[t], submit_loop, &r->w[t]), 0);
  }
}

static void join_workers(run *r) {
  for (int t = 0; t < r->k.nthreads; t++) {
    uv_thread_join(&r->th[t]);
  }
}

static void free_workers(run *r) {
  for (int t = 0; t < r->k.nthreads; t++)
    free(r->w[t].tags);
}

/* ---- tests ------------------------------------------------------------------ */

static void test_args(void **state) {
  (void)state;
  smtpuv_envelope env;
  smtpuv_body b;
  env_init(&env, &b);
  assert_int_equal(smtpuv_client_send_threadsafe(NULL, &env, &b, NULL, NULL),
                   SMTPUV_EINVAL);
  assert_int_equal(
      smtpuv_client_send_message_threadsafe(NULL, "x", 1, NULL, NULL),
      SMTPUV_EINVAL);
  assert_int_equal(smtpuv_client_pending_threadsafe(NULL), 0);

  atomic_store(&ts_live, 0);
  uv_loop_t loop;
  uv_loop_init(&loop);
  smtpuv_options *o = opts(&ts_mem, 1);
  smtpuv_client *c;
  assert_int_equal(smtpuv_client_new(&loop, o, &c), 0);
  assert_int_equal(smtpuv_client_send_threadsafe(c, NULL, &b, NULL, NULL),
                   SMTPUV_EINVAL);
  assert_int_equal(smtpuv_client_send_threadsafe(c, &env, NULL, NULL, NULL),
                   SMTPUV_EINVAL);
  smtpuv_envelope bad = env;
  bad.nrecipients = 0;
  assert_int_equal(smtpuv_client_send_threadsafe(c, &bad, &b, NULL, NULL),
                   SMTPUV_EINVAL);
  bad = env;
  bad.sender = "a\r\nRSET@example.com";
  assert_int_equal(smtpuv_client_send_threadsafe(c, &bad, &b, NULL, NULL),
                   SMTPUV_EADDRESS);
  assert_int_equal(
      smtpuv_client_send_message_threadsafe(c, NULL, 0, NULL, NULL),
      SMTPUV_EINVAL);
  static const char nohdr[] = "Subject: no addresses\r\n\r\nx\r\n";
  assert_int_equal(smtpuv_client_send_message_threadsafe(
                       c, nohdr, sizeof nohdr - 1, NULL, NULL),
                   SMTPUV_EHEADER);
  assert_int_equal(smtpuv_client_pending_threadsafe(c), 0);
  assert_int_equal(smtpuv_client_close(c, NULL), 0);
  /* refused as soon as the close began, before the loop ran */
  assert_int_equal(smtpuv_client_send_threadsafe(c, &env, &b, NULL, NULL),
                   SMTPUV_ECLOSED);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_loop_empty(&loop);
  smtpuv_options_free(o);
  assert_int_equal(atomic_load(&ts_live), 0);
}

/* A fresh client on a loop with nothing else: uv_run returns at once (the
   wake-up handle does not hold the loop). */
static void test_unreferenced(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  smtpuv_options *o = opts(NULL, 1);
  smtpuv_client *c;
  assert_int_equal(smtpuv_client_new(&loop, o, &c), 0);
  assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(smtpuv_client_close(c, NULL), 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_loop_empty(&loop);
  smtpuv_options_free(o);
}

typedef struct peek {
  smtpuv_client *c;
  size_t seen;
} peek;

static void peek_pending(void *arg) {
  peek *p = arg;
  p->seen = smtpuv_client_pending_threadsafe(p->c);
}

/* Submitted while the loop does not run, then the client is closed: every
   one is handed over by the close and canceled, exactly once, in each
   thread's order; the pending count is right from another thread. */
static void test_close_cancels_all(void **state) {
  (void)state;
  enum { T = 4, N = 500 };
  atomic_store(&ts_live, 0);
  run *r = calloc(1, sizeof *r);
  book_init(&r->k, T, N);
  uv_loop_t loop;
  uv_loop_init(&loop);
  smtpuv_options *o = opts(&ts_mem, closed_port());
  assert_int_equal(smtpuv_client_new(&loop, o, &r->k.client), 0);
  smtpuv_client_set_data(r->k.client, &r->k);
  atomic_store(&r->k.go, 1);
  start_workers(r, 0);
  join_workers(r);
  peek p = {r->k.client, 0};
  uv_thread_t pt;
  assert_int_equal(uv_thread_create(&pt, peek_pending, &p), 0);
  uv_thread_join(&pt);
  assert_int_equal(p.seen, T * N);
  assert_int_equal(smtpuv_client_pending(r->k.client), 0); /* not handed */
  assert_int_equal(smtpuv_client_close(r->k.client, on_closed), 0);
  /* the close took them over: now the client's own */
  assert_int_equal(smtpuv_client_pending(r->k.client), T * N);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_loop_empty(&loop);
  assert_int_equal(r->k.done, T * N);
  assert_int_equal(r->k.by_status[SMTPUV_SEND_CANCELED], T * N);
  assert_true(r->k.order_ok);
  assert_int_equal(r->k.close_cbs, 1);
  for (int t = 0; t < T; t++)
    for (int i = 0; i < N; i++)
      assert_int_equal(r->k.calls[t][i], 1);
  free_workers(r);
  free(r);
  smtpuv_options_free(o);
  assert_int_equal(atomic_load(&ts_live), 0);
}

/* Reads the pending count while the others submit and the loop hands
   over: never more than what was accepted, in bounded steps. */
typedef struct watcher {
  book *k;
  atomic_int stop;
  int bad;
} watcher;

static void watch_pending(void *arg) {
  watcher *w = arg;
  for (int i = 0; i < 1000000 && !atomic_load(&w->stop); i++) {
    size_t n = smtpuv_client_pending_threadsafe(w->k->client);
    if (n > (size_t)(w->k->nthreads * w->k->per_thread))
      w->bad = 1;
  }
}

/* Submitted while the loop runs: the async hand-over takes every one to the
   client, which fails them at connect (nobody listens): each called back
   once, FAILED in the connect phase, in each thread's order. */
static void test_handover_while_running(void **state) {
  (void)state;
  enum { T = 4, N = 500 };
  atomic_store(&ts_live, 0);
  run *r = calloc(1, sizeof *r);
  book_init(&r->k, T, N);
  r->k.total_wanted = T * N;
  uv_loop_t loop;
  uv_loop_init(&loop);
  smtpuv_options *o = opts(&ts_mem, closed_port());
  assert_int_equal(smtpuv_client_new(&loop, o, &r->k.client), 0);
  smtpuv_client_set_data(r->k.client, &r->k);
  uv_async_init(&loop, &r->k.keep, NULL);
  watcher wt = {&r->k, 0, 0};
  uv_thread_t wth;
  assert_int_equal(uv_thread_create(&wth, watch_pending, &wt), 0);
  start_workers(r, 0);
  atomic_store(&r->k.go, 1);
  uv_run(&loop, UV_RUN_DEFAULT); /* until the last callback closes keep */
  join_workers(r);
  atomic_store(&wt.stop, 1);
  uv_thread_join(&wth);
  assert_int_equal(wt.bad, 0);
  assert_int_equal(smtpuv_client_pending_threadsafe(r->k.client), 0);
  assert_int_equal(smtpuv_client_close(r->k.client, on_closed), 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_loop_empty(&loop);
  assert_int_equal(r->k.done, T * N);
  assert_int_equal(r->k.by_status[SMTPUV_SEND_FAILED], T * N);
  assert_int_equal(r->k.phase_connect, T * N);
  assert_true(r->k.order_ok);
  for (int t = 0; t < T; t++) {
    assert_int_equal(atomic_load(&r->k.accepted[t]), N);
    for (int i = 0; i < N; i++)
      assert_int_equal(r->k.calls[t][i], 1);
  }
  free_workers(r);
  free(r);
  smtpuv_options_free(o);
  assert_int_equal(atomic_load(&ts_live), 0);
}

/* The close callback joins the submitters, which stop at their first
   SMTPUV_ECLOSED (the documented way to end them before the client is
   freed). */
static run *race_run;
static void on_closed_join(smtpuv_client *c) {
  on_closed(c);
  join_workers(race_run);
}

static void close_after_some(smtpuv_client *c, const smtpuv_send_result *r,
                             void *data) {
  on_sent(c, r, data);
  tag *g = data;
  if (g->k->done == 200)
    assert_int_equal(smtpuv_client_close(c, on_closed_join), 0);
}

static void race_submit(void *arg) {
  /* like submit_loop, with the closing callback */
  worker *w = arg;
  book *k = w->k;
  while (!atomic_load(&k->go)) {
  }
  smtpuv_envelope env;
  smtpuv_body b;
  env_init(&env, &b);
  for (int i = 0; i < k->per_thread; i++) {
    w->tags[i] = (tag){k, w->t, i};
    int rc = smtpuv_client_send_threadsafe(k->client, &env, &b,
                                           close_after_some, &w->tags[i]);
    if (rc != 0) {
      assert_int_equal(rc, SMTPUV_ECLOSED);
      atomic_fetch_add(&k->closed_seen[w->t], 1);
      return;
    }
    atomic_fetch_add(&k->accepted[w->t], 1);
  }
}

static void test_close_races_submitters(void **state) {
  (void)state;
  enum { T = 4, N = MAXN };
  atomic_store(&ts_live, 0);
  run *r = calloc(1, sizeof *r);
  race_run = r;
  book_init(&r->k, T, N);
  uv_loop_t loop;
  uv_loop_init(&loop);
  smtpuv_options *o = opts(&ts_mem, closed_port());
  assert_int_equal(smtpuv_client_new(&loop, o, &r->k.client), 0);
  smtpuv_client_set_data(r->k.client, &r->k);
  /* keep the loop alive until the close callback: closed there */
  uv_async_init(&loop, &r->k.keep, NULL);
  for (int t = 0; t < T; t++) {
    r->w[t].k = &r->k;
    r->w[t].t = t;
    r->w[t].tags = calloc(N, sizeof(tag));
    assert_int_equal(uv_thread_create(&r->th[t], race_submit, &r->w[t]), 0);
  }
  atomic_store(&r->k.go, 1);
  while (r->k.close_cbs == 0)
    uv_run(&loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&r->k.keep, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_loop_empty(&loop);
  int accepted = 0;
  for (int t = 0; t < T; t++) {
    int a = atomic_load(&r->k.accepted[t]);
    accepted += a;
    for (int i = 0; i < N; i++)
      assert_int_equal(r->k.calls[t][i], i < a ? 1 : 0);
  }
  assert_true(accepted >= 200);
  assert_int_equal(r->k.done, accepted); /* every accepted one, once */
  assert_true(r->k.order_ok);
  assert_int_equal(r->k.close_cbs, 1);
  free_workers(r);
  free(r);
  smtpuv_options_free(o);
  assert_int_equal(atomic_load(&ts_live), 0);
}

/* Every allocation of client_new (the queue, its mutex and handle among
   them) and of a submission may fail: a clean SMTPUV_ENOMEM, nothing left. */
static void test_enomem(void **state) {
  (void)state;
  smtpuv_envelope env;
  smtpuv_body b;
  env_init(&env, &b);
  int succeeded = 0;
  for (unsigned long fail = 1; fail < 200 && !succeeded; fail++) {
    test_mem tm;
    test_mem_init(&tm, 0);
    smtpuv_options *o = opts(&tm.mem, 1);
    tm.fail_at = tm.calls + fail;
    uv_loop_t loop;
    uv_loop_init(&loop);
    smtpuv_client *c;
    int rc = smtpuv_client_new(&loop, o, &c);
    if (rc == 0) {
      /* and the submission's own allocations */
      tm.fail_at = tm.calls + 1;
      assert_int_equal(smtpuv_client_send_threadsafe(c, &env, &b, NULL, NULL),
                       SMTPUV_ENOMEM);
      static const char m[] = "From: a@example.com\r\nTo: b@example.com\r\n\r\n";
      for (unsigned long k = 1; k <= 2; k++) { /* the parse, the record */
        tm.fail_at = tm.calls + k;
        assert_int_equal(smtpuv_client_send_message_threadsafe(
                             c, m, sizeof m - 1, NULL, NULL),
                         SMTPUV_ENOMEM);
      }
      assert_int_equal(smtpuv_client_pending_threadsafe(c), 0);
      tm.fail_at = 0;
      assert_int_equal(smtpuv_client_close(c, NULL), 0);
      succeeded = 1;
    } else {
      assert_int_equal(rc, SMTPUV_ENOMEM);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_loop_empty(&loop);
    smtpuv_options_free(o);
    assert_int_equal(tm.live, 0);
  }
  assert_true(succeeded);
}

/* Back-pressure counts the submissions not yet handed over: SMTPUV_EFULL at
   the high mark (no callback for the refused one). */
static void test_queue_full(void **state) {
  (void)state;
  enum { HIGH = 10 };
  atomic_store(&ts_live, 0);
  run *r = calloc(1, sizeof *r);
  book_init(&r->k, 1, HIGH + 1);
  uv_loop_t loop;
  uv_loop_init(&loop);
  smtpuv_options *o = opts(&ts_mem, closed_port());
  assert_int_equal(smtpuv_options_set_queue_limits(o, HIGH, 2), 0);
  assert_int_equal(smtpuv_client_new(&loop, o, &r->k.client), 0);
  smtpuv_client_set_data(r->k.client, &r->k);
  smtpuv_envelope env;
  smtpuv_body b;
  env_init(&env, &b);
  tag g[HIGH + 1];
  for (int i = 0; i <= HIGH; i++) {
    g[i] = (tag){&r->k, 0, i};
    assert_int_equal(smtpuv_client_send_threadsafe(r->k.client, &env, &b,
                                                   on_sent, &g[i]),
                     i < HIGH ? 0 : SMTPUV_EFULL);
  }
  assert_int_equal(smtpuv_client_pending_threadsafe(r->k.client), HIGH);
  assert_int_equal(smtpuv_client_close(r->k.client, on_closed), 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_loop_empty(&loop);
  assert_int_equal(r->k.done, HIGH);
  for (int i = 0; i < HIGH; i++)
    assert_int_equal(r->k.calls[0][i], 1);
  assert_int_equal(r->k.calls[0][HIGH], 0);
  free(r);
  smtpuv_options_free(o);
  assert_int_equal(atomic_load(&ts_live), 0);
}

/* ---- the blocking session, against a closed port ------------------------------ */

typedef struct sess_worker {
  smtpuv_session_sync *s;
  int n, failed_connect, other;
} sess_worker;

static void sess_send(void *arg) {
  sess_worker *w = arg;
  smtpuv_envelope env;
  smtpuv_body b;
  env_init(&env, &b);
  for (int i = 0; i < w->n; i++) {
    smtpuv_send_result *r = NULL;
    int rc = smtpuv_session_sync_send(w->s, &env, &b, &r);
    if (rc != 0 && r != NULL && r->status == SMTPUV_SEND_FAILED &&
        r->phase == SMTPUV_PHASE_CONNECT && rc == r->error)
      w->failed_connect++;
    else
      w->other++;
    smtpuv_send_result_free(r);
  }
}

static void test_session_args(void **state) {
  (void)state;
  smtpuv_session_sync *s = (smtpuv_session_sync *)1;
  assert_int_equal(smtpuv_session_sync_new(NULL, &s), SMTPUV_EINVAL);
  assert_null(s);
  smtpuv_options *o;
  assert_int_equal(smtpuv_options_new(NULL, &o), 0);
  assert_int_equal(smtpuv_session_sync_new(o, NULL), SMTPUV_EINVAL);
  assert_int_equal(smtpuv_session_sync_new(o, &s), SMTPUV_EINVAL); /* host */
  smtpuv_options_free(o);
  smtpuv_send_result *r = (smtpuv_send_result *)1;
  smtpuv_envelope env;
  smtpuv_body b;
  env_init(&env, &b);
  assert_int_equal(smtpuv_session_sync_send(NULL, &env, &b, &r),
                   SMTPUV_EINVAL);
  assert_null(r);
  assert_int_equal(smtpuv_session_sync_send_message(NULL, "x", 1, NULL),
                   SMTPUV_EINVAL);
  assert_int_equal(smtpuv_session_sync_pending(NULL), 0);
  smtpuv_session_sync_free(NULL);

  /* a session that never sent anything ends at once */
  atomic_store(&ts_live, 0);
  o = opts(&ts_mem, 1);
  assert_int_equal(smtpuv_session_sync_new(o, &s), 0);
  assert_int_equal(smtpuv_session_sync_send(s, NULL, &b, &r), SMTPUV_EINVAL);
  assert_null(r);
  env.nrecipients = 0;
  assert_int_equal(smtpuv_session_sync_send(s, &env, &b, &r), SMTPUV_EINVAL);
  assert_null(r);
  assert_int_equal(smtpuv_session_sync_send_message(s, "Subject: x\r\n\r\n",
                                                    14, &r),
                   SMTPUV_EHEADER);
  assert_null(r);
  assert_int_equal(smtpuv_session_sync_pending(s), 0);
  smtpuv_session_sync_free(s);
  smtpuv_options_free(o);
  assert_int_equal(atomic_load(&ts_live), 0);
}

/* Two threads send through one session to a port nobody listens on: every
   call returns its own failure (connect phase), then the session ends. */
static void test_session_two_threads_refused(void **state) {
  (void)state;
  atomic_store(&ts_live, 0);
  smtpuv_options *o = opts(&ts_mem, closed_port());
  smtpuv_session_sync *s;
  assert_int_equal(smtpuv_session_sync_new(o, &s), 0);
  smtpuv_options_free(o); /* copied */
  sess_worker w[2] = {{s, 20, 0, 0}, {s, 20, 0, 0}};
  uv_thread_t th[2];
  for (int i = 0; i < 2; i++)
    assert_int_equal(uv_thread_create(&th[i], sess_send, &w[i]), 0);
  for (int i = 0; i < 2; i++)
    uv_thread_join(&th[i]);
  for (int i = 0; i < 2; i++) {
    assert_int_equal(w[i].failed_connect, 20);
    assert_int_equal(w[i].other, 0);
  }
  assert_int_equal(smtpuv_session_sync_pending(s), 0);
  smtpuv_session_sync_free(s);
  assert_int_equal(atomic_load(&ts_live), 0);
}

/* Every allocation of the session's start may fail: clean ENOMEM. */
static void test_session_enomem(void **state) {
  (void)state;
  int succeeded = 0;
  for (unsigned long fail = 1; fail < 200 && !succeeded; fail++) {
    test_mem tm;
    test_mem_init(&tm, 0);
    smtpuv_options *o = opts(&tm.mem, 1);
    tm.fail_at = tm.calls + fail;
    smtpuv_session_sync *s;
    int rc = smtpuv_session_sync_new(o, &s);
    tm.fail_at = 0;
    if (rc == 0) {
      succeeded = 1;
      smtpuv_session_sync_free(s);
    } else {
      assert_int_equal(rc, SMTPUV_ENOMEM);
      assert_null(s);
    }
    smtpuv_options_free(o);
    assert_int_equal(tm.live, 0);
  }
  assert_true(succeeded);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_args),
      cmocka_unit_test(test_unreferenced),
      cmocka_unit_test(test_close_cancels_all),
      cmocka_unit_test(test_handover_while_running),
      cmocka_unit_test(test_close_races_submitters),
      cmocka_unit_test(test_enomem),
      cmocka_unit_test(test_queue_full),
      cmocka_unit_test(test_session_args),
      cmocka_unit_test(test_session_two_threads_refused),
      cmocka_unit_test(test_session_enomem),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/* Many threads, one client, against Postfix's smtp-sink (issue 10):
 *   - 8 threads x 5,000 submissions to ONE client: every callback exactly
 *     once, in each thread's order, and every message at the sink exactly
 *     once (each carries its own X-Seq header, read back from the dumps);
 *   - submissions racing with close: SMTPUV_ECLOSED after, every accepted
 *     one called back once, the sink holds exactly the sent ones;
 *   - the blocking session from two threads: many messages, one connection
 *     (the sink's own session counter).
 * SMTPUV_THREADS_MESSAGES sets the submissions per thread (default 5000;
 * the ThreadSanitizer stage uses fewer). */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "itest.h"

static char sink_dir[400];
static int sink_port;

static int sink_start(char *dir, size_t dirlen, const char *name, int *port) {
  char log[400], p[16];
  snprintf(dir, dirlen, "%s/%s", itest_workdir(), name);
  snprintf(log, sizeof log, "%s/%s.log", itest_workdir(), name);
  *port = itest_free_port();
  snprintf(p, sizeof p, "%d", *port);
  return itest_run(log, itest_server_path("smtp_sink.sh"), "start", dir, p,
                   NULL);
}

static void sink_stop(const char *dir, const char *name) {
  char log[400];
  snprintf(log, sizeof log, "%s/%s.log", itest_workdir(), name);
  itest_run(log, itest_server_path("smtp_sink.sh"), "stop", dir, NULL, NULL);
}

static int setup(void **state) {
  (void)state;
  return sink_start(sink_dir, sizeof sink_dir, "sink", &sink_port) == 0 ? 0
                                                                         : -1;
}

static int teardown(void **state) {
  (void)state;
  sink_stop(sink_dir, "sink");
  itest_cleanup();
  return 0;
}

static int per_thread(void) {
  const char *e = getenv("SMTPUV_THREADS_MESSAGES");
  int n = e != NULL ? atoi(e) : 5000;
  return n > 0 ? n : 5000;
}

static int msgs_now(const char *dir) {
  char d[500];
  snprintf(d, sizeof d, "%s/msgs", dir);
  return itest_count_files(d);
}

static void wait_msgs(const char *dir, int want) {
  double end = itest_now_ms() + 60000;
  while (msgs_now(dir) < want && itest_now_ms() < end)
    itest_sleep_ms(20);
  assert_int_equal(msgs_now(dir), want);
}

/* Dumps carrying "X-Seq: <run>-": how many, and how many distinct. */
static void count_marked(const char *dir, const char *run, int *lines,
                         int *distinct) {
  char cmd[4000], out[500];
  snprintf(out, sizeof out, "%s/marked.%s", itest_workdir(), run);
  snprintf(cmd, sizeof cmd,
           "grep -rh '^X-Seq: %s-' %s/msgs > %s.all; wc -l < %s.all > %s; "
           "sort -u %s.all | wc -l >> %s",
           run, dir, out, out, out, out, out);
  assert_int_equal(system(cmd), 0);
  char *s = itest_read_file(out, NULL);
  assert_non_null(s);
  assert_int_equal(sscanf(s, "%d %d", lines, distinct), 2);
  free(s);
}

/* The sink's counters (-c): the last "sess=N quit=N mesg=N" of its log. */
static void sink_counters(const char *dir, int *sess, int *mesg) {
  char path[500];
  snprintf(path, sizeof path, "%s/sink.log", dir);
  char *s = itest_read_file(path, NULL);
  *sess = *mesg = 0;
  if (s == NULL)
    return;
  char *p = s, *last = NULL;
  while ((p = strstr(p, "sess=")) != NULL)
    last = p++;
  int quit;
  if (last != NULL)
    sscanf(last, "sess=%d quit=%d mesg=%d", sess, &quit, mesg);
  free(s);
}

/* ---- submitters ---------------------------------------------------------------- */

enum { T = 8 };

typedef struct tag {
  struct book *k;
  int t, i;
} tag;

typedef struct book {
  int n;                /* per thread */
  smtpuv_client *client;
  uv_async_t keep;      /* holds the loop while the threads submit */
  int total_wanted;     /* -1: unknown (race) */
  int close_after;      /* race: close at this many callbacks (0: never) */
  /* loop thread */
  unsigned char *calls; /* T * n */
  int last[T];
  int order_ok, done, sent, canceled, failed, unknown, close_cbs;
  /* submitters */
  atomic_int go;
  atomic_int accepted[T];
  atomic_int closed_seen[T];
  char **bodies;        /* T * n, valid until the callbacks ran */
  tag *tags;
  uv_thread_t th[T];
  int joined;
} book;

static void join_all(book *k) {
  if (k->joined)
    return;
  for (int t = 0; t < T; t++)
    uv_thread_join(&k->th[t]);
  k->joined = 1;
}

static void on_closed(smtpuv_client *c) {
  book *k = smtpuv_client_get_data(c);
  k->close_cbs++;
  /* the submitters stop at their first SMTPUV_ECLOSED: join them before
     the client is freed (the documented rule) */
  join_all(k);
}

static void on_sent(smtpuv_client *c, const smtpuv_send_result *r,
                    void *data) {
  tag *g = data;
  book *k = g->k;
  k->calls[g->t * k->n + g->i]++;
  if (g->i <= k->last[g->t])
    k->order_ok = 0;
  k->last[g->t] = g->i;
  k->done++;
  switch (r->status) {
  case SMTPUV_SEND_SENT:
    k->sent++;
    break;
  case SMTPUV_SEND_CANCELED:
    k->canceled++;
    break;
  case SMTPUV_SEND_FAILED:
    k->failed++;
    break;
  case SMTPUV_SEND_UNKNOWN:
    k->unknown++;
    break;
  }
  if (k->done == k->total_wanted) {
    /* the last one: nothing is left anywhere (this one no longer counts) */
    if (smtpuv_client_pending_threadsafe(c) != 0)
      k->order_ok = 0;
    uv_close((uv_handle_t *)&k->keep, NULL);
    assert_int_equal(smtpuv_client_close(c, on_closed), 0);
  }
  if (k->close_after != 0 && k->done == k->close_after)
    assert_int_equal(smtpuv_client_close(c, on_closed), 0);
}

typedef struct worker {
  book *k;
  int t;
  const char *run;
} worker;

static void submit(void *arg) {
  worker *w = arg;
  book *k = w->k;
  while (!atomic_load(&k->go)) {
  }
  const char *to[] = {"b@example.com"};
  smtpuv_envelope env = SMTPUV_ENVELOPE_INIT;
  env.sender = "a@example.com";
  env.recipients = to;
  env.nrecipients = 1;
  for (int i = 0; i < k->n; i++) {
    char **bp = &k->bodies[w->t * k->n + i];
    *bp = malloc(96);
    int len = snprintf(*bp, 96, "X-Seq: %s-%d-%d\r\nSubject: t\r\n\r\nbody\r\n",
                       w->run, w->t, i);
    smtpuv_body b;
    smtpuv_body_init_buffer(&b, *bp, (size_t)len);
    tag *g = &k->tags[w->t * k->n + i];
    g->k = k;
    g->t = w->t;
    g->i = i;
    int rc = smtpuv_client_send_threadsafe(k->client, &env, &b, on_sent, g);
    if (rc == 0) {
      atomic_fetch_add(&k->accepted[w->t], 1);
      continue;
    }
    if (rc != SMTPUV_ECLOSED)
      abort();
    atomic_fetch_add(&k->closed_seen[w->t], 1);
    if (smtpuv_client_send_threadsafe(k->client, &env, &b, on_sent, g) !=
        SMTPUV_ECLOSED)
      abort(); /* refused for good */
    return;
  }
}

static book *book_new(int n) {
  book *k = calloc(1, sizeof *k);
  k->n = n;
  k->calls = calloc((size_t)T * n, 1);
  k->bodies = calloc((size_t)T * n, sizeof(char *));
  k->tags = calloc((size_t)T * n, sizeof(tag));
  k->order_ok = 1;
  k->total_wanted = -1;
  for (int t = 0; t < T; t++)
    k->last[t] = -1;
  return k;
}

static void book_free(book *k) {
  for (int i = 0; i < T * k->n; i++)
    free(k->bodies[i]);
  free(k->bodies);
  free(k->tags);
  free(k->calls);
  free(k);
}

static void start_threads(book *k, worker *w, const char *run) {
  for (int t = 0; t < T; t++) {
    w[t].k = k;
    w[t].t = t;
    w[t].run = run;
    assert_int_equal(uv_thread_create(&k->th[t], submit, &w[t]), 0);
  }
  atomic_store(&k->go, 1);
}

/* 8 threads x N submissions to one client. */
static void test_threads_one_client(void **state) {
  (void)state;
  int n = per_thread();
  int before = msgs_now(sink_dir);
  book *k = book_new(n);
  k->total_wanted = T * n;
  smtpuv_options *o = itest_options(sink_port, SMTPUV_TLS_NONE);
  uv_loop_t loop;
  uv_loop_init(&loop);
  assert_int_equal(smtpuv_client_new(&loop, o, &k->client), 0);
  smtpuv_client_set_data(k->client, k);
  uv_async_init(&loop, &k->keep, NULL);
  worker w[T];
  start_threads(k, w, "R1");
  /* until the last callback closed keep and the client (whose close
     callback joins the threads) */
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
  assert_int_equal(k->done, T * n);
  assert_int_equal(k->sent, T * n);
  assert_true(k->order_ok);
  assert_int_equal(k->close_cbs, 1);
  for (int t = 0; t < T; t++)
    assert_int_equal(atomic_load(&k->accepted[t]), n);
  for (int i = 0; i < T * n; i++)
    assert_int_equal(k->calls[i], 1);
  /* at the sink: one dump per message, each X-Seq once */
  wait_msgs(sink_dir, before + T * n);
  int lines, distinct;
  count_marked(sink_dir, "R1", &lines, &distinct);
  assert_int_equal(lines, T * n);
  assert_int_equal(distinct, T * n);
  book_free(k);
  smtpuv_options_free(o);
}

/* Submitters race with a close made from a callback: after it, every
   submission gets SMTPUV_ECLOSED; every accepted one is called back once;
   the sink holds exactly the sent ones. */
static void test_close_races_submitters(void **state) {
  (void)state;
  int n = per_thread();
  int sess0, mesg0;
  sink_counters(sink_dir, &sess0, &mesg0);
  book *k = book_new(n);
  k->close_after = 1; /* at the first callback: the threads still submit */
  smtpuv_options *o = itest_options(sink_port, SMTPUV_TLS_NONE);
  uv_loop_t loop;
  uv_loop_init(&loop);
  assert_int_equal(smtpuv_client_new(&loop, o, &k->client), 0);
  smtpuv_client_set_data(k->client, k);
  uv_async_init(&loop, &k->keep, NULL);
  worker w[T];
  start_threads(k, w, "R2");
  while (k->close_cbs == 0)
    uv_run(&loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&k->keep, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
  int accepted = 0, closed = 0;
  for (int t = 0; t < T; t++) {
    int a = atomic_load(&k->accepted[t]);
    accepted += a;
    closed += atomic_load(&k->closed_seen[t]);
    for (int i = 0; i < n; i++)
      assert_int_equal(k->calls[t * n + i], i < a ? 1 : 0);
  }
  assert_true(accepted >= k->close_after);
  assert_int_equal(k->done, accepted);
  assert_int_equal(k->sent + k->canceled + k->failed, accepted);
  assert_int_equal(k->unknown, 0);
  assert_true(k->order_ok);
  assert_int_equal(k->close_cbs, 1);
  /* a thread still submitting at the close saw SMTPUV_ECLOSED */
  if (accepted < T * n)
    assert_true(closed > 0);
  fprintf(stderr, "race: %d accepted, %d sent, %d canceled, %d failed\n",
          accepted, k->sent, k->canceled, k->failed);
  /* delivered: the sink's message counter (a "." received; a canceled
     message may leave a dump of its headers when the connection dropped
     after its DATA) */
  int sess, mesg;
  double end = itest_now_ms() + 60000;
  do {
    sink_counters(sink_dir, &sess, &mesg);
  } while (mesg < mesg0 + k->sent && itest_now_ms() < end &&
           (itest_sleep_ms(10), 1));
  assert_int_equal(mesg, mesg0 + k->sent);
  int lines, distinct;
  count_marked(sink_dir, "R2", &lines, &distinct);
  assert_int_equal(lines, k->sent);
  assert_int_equal(distinct, k->sent);
  book_free(k);
  smtpuv_options_free(o);
}

/* ---- the blocking session --------------------------------------------------------- */

typedef struct sess_worker {
  smtpuv_session_sync *s;
  int t, n, sent;
  char body[96];
} sess_worker;

static void sess_send(void *arg) {
  sess_worker *w = arg;
  const char *to[] = {"b@example.com"};
  smtpuv_envelope env = SMTPUV_ENVELOPE_INIT;
  env.sender = "a@example.com";
  env.recipients = to;
  env.nrecipients = 1;
  for (int i = 0; i < w->n; i++) {
    int len = snprintf(w->body, sizeof w->body,
                       "X-Seq: S1-%d-%d\r\nSubject: s\r\n\r\nbody\r\n", w->t, i);
    smtpuv_body b;
    smtpuv_body_init_buffer(&b, w->body, (size_t)len);
    smtpuv_send_result *r = NULL;
    /* the body is used only during the call: reused for the next one */
    if (smtpuv_session_sync_send(w->s, &env, &b, &r) == 0 && r != NULL &&
        r->status == SMTPUV_SEND_SENT)
      w->sent++;
    smtpuv_send_result_free(r);
  }
}

/* Two threads send through one blocking session: every message sent, all
   on one connection (the sink counts its sessions), then one message by
   smtpuv_send_sync() (a connection of its own). */
static void test_session_sync_one_connection(void **state) {
  (void)state;
  enum { NS = 2, PER = 200 };
  char dir[400];
  int port;
  assert_int_equal(sink_start(dir, sizeof dir, "sink2", &port), 0);
  int sess0, mesg0;
  /* the port check of smtp_sink.sh was one session: wait until counted */
  double end = itest_now_ms() + 20000;
  do {
    sink_counters(dir, &sess0, &mesg0);
  } while (sess0 < 1 && itest_now_ms() < end && (itest_sleep_ms(10), 1));
  assert_int_equal(sess0, 1);
  assert_int_equal(mesg0, 0);

  smtpuv_options *o = itest_options(port, SMTPUV_TLS_NONE);
  smtpuv_session_sync *s;
  assert_int_equal(smtpuv_session_sync_new(o, &s), 0);
  sess_worker w[NS];
  uv_thread_t th[NS];
  for (int i = 0; i < NS; i++) {
    memset(&w[i], 0, sizeof w[i]);
    w[i].s = s;
    w[i].t = i;
    w[i].n = PER;
    assert_int_equal(uv_thread_create(&th[i], sess_send, &w[i]), 0);
  }
  for (int i = 0; i < NS; i++)
    uv_thread_join(&th[i]);
  /* the message API too, on the same connection */
  static const char m[] = "From: a@example.com\r\nTo: c@example.com\r\n"
                          "Bcc: hidden@example.com\r\nX-Seq: S1-m-0\r\n\r\nx\r\n";
  smtpuv_send_result *r = NULL;
  assert_int_equal(smtpuv_session_sync_send_message(s, m, sizeof m - 1, &r), 0);
  assert_int_equal(r->naccepted, 2);
  smtpuv_send_result_free(r);
  assert_int_equal(smtpuv_session_sync_pending(s), 0);
  smtpuv_session_sync_free(s); /* QUIT */
  for (int i = 0; i < NS; i++)
    assert_int_equal(w[i].sent, PER);
  /* a later connection of its own: its end is counted after the session's */
  static const char one[] = "X-Seq: S1-after-0\r\n\r\nx\r\n";
  ITEST_ONE_MESSAGE(env, b, "d@example.com", one, sizeof one - 1);
  assert_int_equal(smtpuv_send_sync(o, &env, &b, NULL), 0);
  smtpuv_options_free(o);
  int want = NS * PER + 2;
  wait_msgs(dir, want);
  int sess, mesg;
  end = itest_now_ms() + 20000;
  do {
    sink_counters(dir, &sess, &mesg);
  } while ((sess < 3 || mesg < want) && itest_now_ms() < end &&
           (itest_sleep_ms(10), 1));
  assert_int_equal(mesg, want);
  assert_int_equal(sess, 3); /* port check, the session, the last one */
  int lines, distinct;
  count_marked(dir, "S1", &lines, &distinct);
  assert_int_equal(lines, want);
  assert_int_equal(distinct, want);
  sink_stop(dir, "sink2");
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_threads_one_client),
      cmocka_unit_test(test_close_races_submitters),
      cmocka_unit_test(test_session_sync_one_connection),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}

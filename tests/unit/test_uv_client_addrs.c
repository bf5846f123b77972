/* SPDX-License-Identifier: MIT */
/* Every address of the host is tried in turn (DESIGN: "Resolution with
 * uv_getaddrinfo, every address tried in turn"): a refused or silent first
 * address is not the end of the connection.
 *
 * Nothing on this machine resolves one name to two loopback addresses
 * ("localhost" is 127.0.0.1 only in /etc/hosts, and the tests may not edit
 * system files), so this program defines getaddrinfo() and freeaddrinfo()
 * itself: the executable's definitions interpose on libc's for libuv's
 * resolver thread too. Names under ".smtpuv.test" (a reserved TLD) get a
 * fixed list of loopback addresses; every other name goes to libc. The
 * count of calls proves the client's resolution really came here. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>
#include <dlfcn.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "smtpuv/client.h"
#include "uv_script_server.h"

/* ---- the resolver ------------------------------------------------------- */

typedef struct fake_list {
  struct addrinfo ai[4];
  struct sockaddr_in6 sa[4]; /* large enough for either family */
} fake_list;

static pthread_mutex_t fake_lock = PTHREAD_MUTEX_INITIALIZER;
static fake_list *fake_live[16];
static int fake_calls;

static const char *fake_addresses(const char *node) {
  static const struct {
    const char *name, *addrs;
  } table[] = {
      {"v6-then-v4.smtpuv.test", "::1 127.0.0.1"},
      {"refused-then-v4.smtpuv.test", "127.0.0.2 ::1 127.0.0.1"},
      {"all-refused.smtpuv.test", "::1 127.0.0.2"},
      {"nothing.smtpuv.test", ""},
  };
  for (size_t i = 0; node != NULL && i < sizeof table / sizeof table[0]; i++)
    if (strcmp(node, table[i].name) == 0)
      return table[i].addrs;
  return NULL;
}

/* exported even under -fvisibility=hidden: libuv must bind to these */
#define INTERPOSE __attribute__((visibility("default")))

INTERPOSE int getaddrinfo(const char *node, const char *service,
                const struct addrinfo *hints, struct addrinfo **res) {
  const char *addrs = fake_addresses(node);
  if (addrs == NULL) {
    int (*real)(const char *, const char *, const struct addrinfo *,
                struct addrinfo **) =
        (int (*)(const char *, const char *, const struct addrinfo *,
                 struct addrinfo **))dlsym(RTLD_NEXT, "getaddrinfo");
    return real(node, service, hints, res);
  }
  pthread_mutex_lock(&fake_lock);
  fake_calls++;
  pthread_mutex_unlock(&fake_lock);
  if (*addrs == '\0')
    return EAI_NONAME;
  fake_list *l = calloc(1, sizeof *l);
  if (l == NULL)
    return EAI_MEMORY;
  unsigned short port = (unsigned short)atoi(service ? service : "0");
  int n = 0;
  char buf[64];
  snprintf(buf, sizeof buf, "%s", addrs);
  for (char *save = NULL, *a = strtok_r(buf, " ", &save); a != NULL && n < 4;
       a = strtok_r(NULL, " ", &save), n++) {
    struct addrinfo *ai = &l->ai[n];
    ai->ai_socktype = SOCK_STREAM;
    ai->ai_protocol = IPPROTO_TCP;
    ai->ai_addr = (struct sockaddr *)&l->sa[n];
    if (strchr(a, ':') != NULL) {
      struct sockaddr_in6 *s6 = &l->sa[n];
      s6->sin6_family = AF_INET6;
      s6->sin6_port = htons(port);
      inet_pton(AF_INET6, a, &s6->sin6_addr);
      ai->ai_family = AF_INET6;
      ai->ai_addrlen = sizeof *s6;
    } else {
      struct sockaddr_in *s4 = (struct sockaddr_in *)&l->sa[n];
      s4->sin_family = AF_INET;
      s4->sin_port = htons(port);
      inet_pton(AF_INET, a, &s4->sin_addr);
      ai->ai_family = AF_INET;
      ai->ai_addrlen = sizeof *s4;
    }
    if (n > 0)
      l->ai[n - 1].ai_next = ai;
  }
  pthread_mutex_lock(&fake_lock);
  int slot = -1;
  for (int i = 0; i < 16 && slot < 0; i++)
    if (fake_live[i] == NULL)
      slot = i;
  if (slot >= 0)
    fake_live[slot] = l;
  pthread_mutex_unlock(&fake_lock);
  if (slot < 0) {
    free(l);
    return EAI_MEMORY;
  }
  *res = &l->ai[0];
  return 0;
}

INTERPOSE void freeaddrinfo(struct addrinfo *ai) {
  pthread_mutex_lock(&fake_lock);
  for (int i = 0; i < 16; i++)
    if (fake_live[i] != NULL && &fake_live[i]->ai[0] == ai) {
      free(fake_live[i]);
      fake_live[i] = NULL;
      pthread_mutex_unlock(&fake_lock);
      return;
    }
  pthread_mutex_unlock(&fake_lock);
  void (*real)(struct addrinfo *) =
      (void (*)(struct addrinfo *))dlsym(RTLD_NEXT, "freeaddrinfo");
  real(ai);
}

static int fake_lists_live(void) {
  int n = 0;
  pthread_mutex_lock(&fake_lock);
  for (int i = 0; i < 16; i++)
    n += fake_live[i] != NULL;
  pthread_mutex_unlock(&fake_lock);
  return n;
}

/* SMTPUV_TEST_TIME_SCALE stretches the connect timeout and the bounds
   (valgrind). */
static double scale = 1;

/* ---- one send ----------------------------------------------------------- */

typedef struct run {
  int calls, closed;
  smtpuv_send_result *r;
  double t_end;
  char trace[2048];
  size_t tlen;
} run;

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

static void on_trace(void *data, smtpuv_trace_kind kind, const char *bytes,
                     size_t len) {
  run *x = data;
  if (kind != SMTPUV_TRACE_INFO || x->tlen + len + 2 > sizeof x->trace)
    return;
  memcpy(x->trace + x->tlen, bytes, len);
  x->tlen += len;
  x->trace[x->tlen++] = '\n';
  x->trace[x->tlen] = '\0';
}

static void on_closed(smtpuv_client *c) {
  run *x = smtpuv_client_get_data(c);
  x->closed++;
}

static void on_sent(smtpuv_client *c, const smtpuv_send_result *r,
                    void *data) {
  run *x = data;
  x->calls++;
  x->t_end = now_ms();
  smtpuv_send_result_dup(NULL, r, &x->r);
  smtpuv_client_close(c, on_closed);
}

/* Send one message to `host`:`port` with the script server `srv` (may be
   NULL) on the same loop; returns the elapsed milliseconds. */
static double send_one(const char *host, int port, unsigned connect_ms,
                       ss_server *srv, uv_loop_t *loop, run *x) {
  memset(x, 0, sizeof *x);
  smtpuv_options *o;
  assert_int_equal(smtpuv_options_new(NULL, &o), 0);
  smtpuv_options_set_host(o, host);
  smtpuv_options_set_port(o, (unsigned)port);
  smtpuv_options_set_tls(o, SMTPUV_TLS_NONE);
  smtpuv_options_set_ehlo_name(o, "client.test");
  smtpuv_options_set_timeout(o, SMTPUV_TIMEOUT_CONNECT, connect_ms);
  smtpuv_options_set_timeout(o, SMTPUV_TIMEOUT_COMMAND, 5000);
  smtpuv_options_set_trace(o, on_trace, x);
  smtpuv_client *c;
  assert_int_equal(smtpuv_client_new(loop, o, &c), 0);
  smtpuv_options_free(o);
  smtpuv_client_set_data(c, x);
  static const char msg[] = "Subject: addrs\r\n\r\nhello\r\n";
  const char *to[] = {"b@example.com"};
  smtpuv_envelope env = SMTPUV_ENVELOPE_INIT;
  env.sender = "a@example.com";
  env.recipients = to;
  env.nrecipients = 1;
  smtpuv_body b;
  smtpuv_body_init_buffer(&b, msg, sizeof msg - 1);
  int calls_before = fake_calls;
  double t0 = now_ms();
  assert_int_equal(smtpuv_client_send(c, &env, &b, on_sent, x), 0);
  /* run until the client closed; then stop the server */
  for (int i = 0; i < 100000 && x->closed == 0; i++)
    uv_run(loop, UV_RUN_ONCE);
  if (srv != NULL)
    ss_stop(srv);
  uv_run(loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(loop), 0);
  assert_int_equal(x->calls, 1);
  assert_int_equal(x->closed, 1);
  assert_int_equal(fake_lists_live(), 0); /* the client freed its list */
  assert_int_equal(fake_calls, calls_before + 1); /* resolved here, once */
  return x->t_end - t0;
}

/* Position of `needle` in the trace, or -1. */
static long trace_at(const run *x, const char *needle) {
  const char *p = strstr(x->trace, needle);
  return p ? p - x->trace : -1;
}

/* ::1 refuses (the server listens on 127.0.0.1 only): 127.0.0.1 next. */
static void test_refused_first_address(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  ss_server srv;
  memset(&srv, 0, sizeof srv);
  assert_int_equal(ss_start(&srv, &loop), 0);
  run x;
  send_one("v6-then-v4.smtpuv.test", srv.port, 5000, &srv, &loop, &x);
  if (x.r->status != SMTPUV_SEND_SENT)
    fail_msg("%s: %s", smtpuv_send_status_name(x.r->status), x.r->message);
  assert_int_equal(x.r->attempts, 1);
  assert_int_equal(srv.connections, 1);
  assert_int_equal(srv.messages, 1);
  char a[64], b[64];
  snprintf(a, sizeof a, "connecting to ::1:%d", srv.port);
  snprintf(b, sizeof b, "connecting to 127.0.0.1:%d", srv.port);
  long pa = trace_at(&x, a), pb = trace_at(&x, b);
  if (pa < 0 || pb < 0 || pa > pb)
    fail_msg("trace:\n%s", x.trace);
  smtpuv_send_result_free(x.r);
  ss_free(&srv);
}

/* Two refusals in a row (127.0.0.2 and ::1), then the server; and each
   address is tried once. */
static void test_two_refused_then_server(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  ss_server srv;
  memset(&srv, 0, sizeof srv);
  assert_int_equal(ss_start(&srv, &loop), 0);
  run x;
  send_one("refused-then-v4.smtpuv.test", srv.port, 5000, &srv, &loop, &x);
  if (x.r->status != SMTPUV_SEND_SENT)
    fail_msg("%s: %s", smtpuv_send_status_name(x.r->status), x.r->message);
  const char *order[] = {"127.0.0.2", "::1", "127.0.0.1"};
  long last = -1;
  for (int i = 0; i < 3; i++) {
    char a[64];
    snprintf(a, sizeof a, "connecting to %s:%d", order[i], srv.port);
    long p = trace_at(&x, a);
    if (p <= last)
      fail_msg("%s not after the previous address:\n%s", a, x.trace);
    if (strstr(x.trace + p + 1, a) != NULL)
      fail_msg("%s twice:\n%s", a, x.trace);
    last = p;
  }
  assert_int_equal(srv.connections, 1);
  smtpuv_send_result_free(x.r);
  ss_free(&srv);
}

/* Every address refuses: one failure, CONNECT phase, naming the last. */
static void test_all_refused(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  ss_server srv; /* only to find a port nothing listens on */
  memset(&srv, 0, sizeof srv);
  assert_int_equal(ss_start(&srv, &loop), 0);
  int port = srv.port;
  ss_stop(&srv);
  uv_run(&loop, UV_RUN_DEFAULT);
  ss_free(&srv);
  run x;
  double ms = send_one("all-refused.smtpuv.test", port, 5000, NULL, &loop,
                       &x);
  assert_int_equal(x.r->status, SMTPUV_SEND_FAILED);
  assert_int_equal(x.r->error, SMTPUV_ECONNECT);
  assert_int_equal(x.r->phase, SMTPUV_PHASE_CONNECT);
  char want[64];
  snprintf(want, sizeof want, "127.0.0.2:%d", port);
  if (strstr(x.r->message, want) == NULL ||
      strstr(x.r->message, "refused") == NULL)
    fail_msg("message: %s", x.r->message);
  assert_true(trace_at(&x, "connecting to ::1") >= 0);
  assert_true(ms < 2000 * scale); /* refusals are immediate: no timeout */
  smtpuv_send_result_free(x.r);
}

/* A name without addresses: one ERESOLVE failure. */
static void test_no_address(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  run x;
  send_one("nothing.smtpuv.test", 25, 5000, NULL, &loop, &x);
  assert_int_equal(x.r->status, SMTPUV_SEND_FAILED);
  assert_int_equal(x.r->error, SMTPUV_ERESOLVE);
  assert_int_equal(x.r->phase, SMTPUV_PHASE_CONNECT);
  smtpuv_send_result_free(x.r);
}

/* The first address swallows the SYN (a listener on ::1 with a full
   backlog of 0): after its share of the connect timeout (half of it, for
   two addresses) the client gives up on it and reaches 127.0.0.1. */
static void test_silent_first_address(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  ss_server srv;
  memset(&srv, 0, sizeof srv);
  assert_int_equal(ss_start(&srv, &loop), 0);
  int hole = socket(AF_INET6, SOCK_STREAM, 0);
  assert_true(hole >= 0);
  struct sockaddr_in6 a6;
  memset(&a6, 0, sizeof a6);
  a6.sin6_family = AF_INET6;
  a6.sin6_port = htons((unsigned short)srv.port);
  a6.sin6_addr = in6addr_loopback;
  if (bind(hole, (struct sockaddr *)&a6, sizeof a6) != 0 ||
      listen(hole, 0) != 0) {
    close(hole);
    skip(); /* ::1 unusable here */
  }
  int fill = socket(AF_INET6, SOCK_STREAM, 0);
  assert_int_equal(connect(fill, (struct sockaddr *)&a6, sizeof a6), 0);
  run x;
  double ms = send_one("v6-then-v4.smtpuv.test", srv.port,
                       (unsigned)(1000 * scale), &srv, &loop, &x);
  close(fill);
  close(hole);
  if (x.r->status != SMTPUV_SEND_SENT)
    fail_msg("%s: %s (%.0f ms)\n%s", smtpuv_send_status_name(x.r->status),
             x.r->message, ms, x.trace);
  /* ::1 got 1000/2 ms, then 127.0.0.1 answered at once */
  if (ms < 450 * scale || ms > 2500 * scale)
    fail_msg("sent after %.0f ms", ms);
  assert_int_equal(srv.connections, 1);
  smtpuv_send_result_free(x.r);
  ss_free(&srv);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  if (getenv("SMTPUV_TEST_TIME_SCALE") != NULL)
    scale = atof(getenv("SMTPUV_TEST_TIME_SCALE"));
  if (scale < 1)
    scale = 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_refused_first_address),
      cmocka_unit_test(test_two_refused_then_server),
      cmocka_unit_test(test_all_refused),
      cmocka_unit_test(test_no_address),
      cmocka_unit_test(test_silent_first_address),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/* One round trip per message (issue 6): the client, given several queued
 * messages and a server that offers PIPELINING, writes the end of one
 * message and the whole envelope of the next (MAIL, RCPTs, DATA; or with
 * CHUNKING the next MAIL, RCPTs and BDAT LAST) before it waits for a reply.
 *
 * The server here is a small in-process libuv SMTP server on 127.0.0.1
 * that answers in "flights": it parses and queues its replies but sends
 * them only once the client has been quiet for a short window, all in one
 * write. Everything the client wrote between two such answers is one flight
 * (a round trip). A client that waits for a reply before writing more ends
 * its flight early, so the counts below can only be met by a client that
 * pipelines across messages; the same checks with pipelining switched off
 * must (and do) fail. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smtpuv/client.h"

/* The quiet window that ends a flight; SMTPUV_TEST_TIME_SCALE stretches
   it (valgrind). A client flight is one uv_try_write/uv_write of a few
   hundred bytes on loopback: far below the window. */
static double scale = 1;
#define QUIET_MS ((uint64_t)(40 * scale))

enum { N = 5, MAX_FLIGHTS = 128 };

/* ---- the flight server ---------------------------------------------------- */

typedef struct flight_srv {
  uv_loop_t *loop;
  uv_tcp_t listener;
  uv_tcp_t *conn;
  uv_timer_t quiet;
  int port;
  const char *ehlo;       /* extension lines, each CRLF-ended */
  /* input parsing */
  enum { P_LINE, P_BODY, P_CHUNK } mode;
  char line[4096];
  size_t linelen;
  size_t chunk_left;      /* P_CHUNK: bytes of the BDAT chunk to come */
  int chunk_last;
  /* replies waiting for the end of the client's flight */
  char *replies;
  size_t rlen, rcap;
  int quit_seen;
  /* the current flight, and every completed one */
  char *cur;
  size_t clen, ccap;
  char *flights[MAX_FLIGHTS];
  size_t flen[MAX_FLIGHTS];
  int nflights;
  int connections;
  int bodies;
} flight_srv;

static void grow(char **buf, size_t *len, size_t *cap, const char *p,
                 size_t n) {
  if (*len + n + 1 > *cap) {
    size_t c = *cap ? *cap : 1024;
    while (c < *len + n + 1)
      c *= 2;
    *buf = realloc(*buf, c);
    assert_non_null(*buf);
    *cap = c;
  }
  memcpy(*buf + *len, p, n);
  *len += n;
  (*buf)[*len] = '\0';
}

static void queue_reply(flight_srv *s, const char *r) {
  grow(&s->replies, &s->rlen, &s->rcap, r, strlen(r));
}

typedef struct wreq {
  uv_write_t req;
  flight_srv *s;
  int close_after;
  char data[];
} wreq;

static void on_conn_closed(uv_handle_t *h) { free(h); }

static void close_conn(flight_srv *s) {
  if (s->conn == NULL)
    return;
  uv_close((uv_handle_t *)s->conn, on_conn_closed);
  s->conn = NULL;
}

static void on_written(uv_write_t *req, int status) {
  wreq *w = (wreq *)req;
  (void)status;
  if (w->close_after && (uv_stream_t *)w->s->conn == req->handle)
    close_conn(w->s);
  free(w);
}

static void srv_write(flight_srv *s, const char *p, size_t n, int close_after) {
  if (s->conn == NULL || n == 0)
    return;
  wreq *w = malloc(sizeof *w + n);
  assert_non_null(w);
  w->s = s;
  w->close_after = close_after;
  memcpy(w->data, p, n);
  uv_buf_t b = uv_buf_init(w->data, (unsigned)n);
  if (uv_write(&w->req, (uv_stream_t *)s->conn, &b, 1, on_written) != 0)
    free(w);
}

/* The client has been quiet for QUIET_MS: its flight is over. Answer it
   (one write) if it asked for anything; a flight that needs no answer yet
   (a DATA body in several writes) goes on. */
static void on_quiet(uv_timer_t *t) {
  flight_srv *s = t->data;
  if (s->rlen == 0)
    return;
  if (s->nflights < MAX_FLIGHTS) {
    s->flights[s->nflights] = s->cur;
    s->flen[s->nflights] = s->clen;
    s->nflights++;
  } else {
    free(s->cur);
  }
  s->cur = NULL;
  s->clen = s->ccap = 0;
  srv_write(s, s->replies, s->rlen, s->quit_seen);
  s->rlen = 0;
}

static void handle_line(flight_srv *s, const char *line) {
  char verb[8] = {0};
  for (int i = 0; i < 7 && line[i] && line[i] != ' ' && line[i] != '\r';
       i++)
    verb[i] = (char)(line[i] >= 'a' && line[i] <= 'z' ? line[i] - 32
                                                       : line[i]);
  if (!strcmp(verb, "EHLO")) {
    queue_reply(s, "250-flight\r\n");
    const char *e = s->ehlo;
    while (*e) {
      const char *nl = strstr(e, "\r\n");
      char l[200];
      snprintf(l, sizeof l, "250%c%.*s\r\n", nl[2] ? '-' : ' ',
               (int)(nl - e), e);
      queue_reply(s, l);
      e = nl + 2;
    }
  } else if (!strcmp(verb, "MAIL") || !strcmp(verb, "RCPT") ||
             !strcmp(verb, "RSET") || !strcmp(verb, "NOOP")) {
    queue_reply(s, "250 2.0.0 Ok\r\n");
  } else if (!strcmp(verb, "DATA")) {
    queue_reply(s, "354 go ahead\r\n");
    s->mode = P_BODY;
  } else if (!strcmp(verb, "BDAT")) {
    char *end;
    unsigned long n = strtoul(line + 5, &end, 10);
    s->chunk_left = n;
    s->chunk_last = strncmp(end, " LAST", 5) == 0;
    s->mode = P_CHUNK;
  } else if (!strcmp(verb, "QUIT")) {
    queue_reply(s, "221 2.0.0 bye\r\n");
    s->quit_seen = 1;
  } else {
    queue_reply(s, "502 5.5.2 unknown command\r\n");
  }
}

static void chunk_done(flight_srv *s) {
  s->mode = P_LINE;
  if (s->chunk_last) {
    s->bodies++;
    queue_reply(s, "250 2.0.0 Ok: queued\r\n");
  } else {
    queue_reply(s, "250 2.0.0 chunk Ok\r\n");
  }
}

static void on_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b) {
  (void)h;
  b->base = malloc(sz);
  b->len = sz;
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
  flight_srv *s = st->data;
  if (n < 0) {
    if ((uv_tcp_t *)st == s->conn)
      close_conn(s);
    free(b->base);
    return;
  }
  if (n > 0)
    grow(&s->cur, &s->clen, &s->ccap, b->base, (size_t)n);
  for (ssize_t i = 0; i < n; i++) {
    if (s->mode == P_CHUNK) {
      size_t take = (size_t)(n - i) < s->chunk_left ? (size_t)(n - i)
                                                    : s->chunk_left;
      s->chunk_left -= take;
      i += (ssize_t)take - 1;
      if (s->chunk_left == 0)
        chunk_done(s);
      continue;
    }
    char c = b->base[i];
    if (s->linelen < sizeof s->line - 1)
      s->line[s->linelen++] = c;
    if (c != '\n')
      continue;
    s->line[s->linelen] = '\0';
    s->linelen = 0;
    if (s->mode == P_BODY) {
      if (!strcmp(s->line, ".\r\n")) {
        s->mode = P_LINE;
        s->bodies++;
        queue_reply(s, "250 2.0.0 Ok: queued\r\n");
      }
      continue;
    }
    handle_line(s, s->line);
    if (s->mode == P_CHUNK && s->chunk_left == 0)
      chunk_done(s);
  }
  free(b->base);
  /* the flight goes on while the client keeps writing */
  uv_timer_start(&s->quiet, on_quiet, QUIET_MS, 0);
}

static void on_connection(uv_stream_t *l, int status) {
  flight_srv *s = l->data;
  if (status < 0)
    return;
  uv_tcp_t *c = malloc(sizeof *c);
  uv_tcp_init(s->loop, c);
  if (uv_accept(l, (uv_stream_t *)c) != 0 || s->conn != NULL) {
    uv_close((uv_handle_t *)c, on_conn_closed); /* one at a time */
    return;
  }
  s->conn = c;
  c->data = s;
  s->connections++;
  s->mode = P_LINE;
  s->linelen = 0;
  uv_read_start((uv_stream_t *)c, on_alloc, on_read);
  srv_write(s, "220 flight ESMTP\r\n", 18, 0);
}

static void srv_start(flight_srv *s, uv_loop_t *loop, const char *ehlo) {
  memset(s, 0, sizeof *s);
  s->loop = loop;
  s->ehlo = ehlo;
  uv_timer_init(loop, &s->quiet);
  s->quiet.data = s;
  uv_tcp_init(loop, &s->listener);
  s->listener.data = s;
  struct sockaddr_in a;
  uv_ip4_addr("127.0.0.1", 0, &a);
  assert_int_equal(uv_tcp_bind(&s->listener, (struct sockaddr *)&a, 0), 0);
  assert_int_equal(uv_listen((uv_stream_t *)&s->listener, 4, on_connection),
                   0);
  struct sockaddr_in got;
  int len = sizeof got;
  uv_tcp_getsockname(&s->listener, (struct sockaddr *)&got, &len);
  s->port = ntohs(got.sin_port);
}

static void srv_stop(flight_srv *s) {
  close_conn(s);
  if (!uv_is_closing((uv_handle_t *)&s->listener))
    uv_close((uv_handle_t *)&s->listener, NULL);
  if (!uv_is_closing((uv_handle_t *)&s->quiet))
    uv_close((uv_handle_t *)&s->quiet, NULL);
}

static void srv_free(flight_srv *s) {
  for (int i = 0; i < s->nflights; i++)
    free(s->flights[i]);
  free(s->cur);
  free(s->replies);
}

/* ---- the client side ------------------------------------------------------ */

typedef struct run {
  uv_loop_t loop;
  flight_srv srv;
  uv_timer_t watchdog;
  smtpuv_client *c;
  int done, sent, closed, timed_out;
  smtpuv_send_status status[N];
  char senders[N][40];
  char rcpts[N][2][40];
  const char *to[N][2];
  char bodies[N][80];
  size_t blen[N];
  smtpuv_envelope env[N];
  smtpuv_body body[N];
} run;

static void on_closed(smtpuv_client *c) {
  run *r = smtpuv_client_get_data(c);
  r->closed++;
  srv_stop(&r->srv);
  uv_close((uv_handle_t *)&r->watchdog, NULL);
}

static void on_sent(smtpuv_client *c, const smtpuv_send_result *res,
                    void *data) {
  run *r = smtpuv_client_get_data(c);
  size_t i = (size_t)data;
  r->status[i] = res->status;
  r->sent += res->status == SMTPUV_SEND_SENT;
  if (++r->done == N)
    smtpuv_client_close(c, on_closed);
}

static void on_watchdog(uv_timer_t *t) {
  run *r = t->data;
  r->timed_out = 1;
  smtpuv_client_close(r->c, on_closed);
}

/* Queue N messages at once (two recipients each, distinct senders so each
   message's MAIL can be found) and run until every callback ran. */
static void run_flights(run *r, const char *ehlo, int pipelining,
                        int chunking) {
  memset(r, 0, sizeof *r);
  assert_int_equal(uv_loop_init(&r->loop), 0);
  srv_start(&r->srv, &r->loop, ehlo);
  smtpuv_options *o;
  assert_int_equal(smtpuv_options_new(NULL, &o), 0);
  smtpuv_options_set_host(o, "127.0.0.1");
  smtpuv_options_set_port(o, (unsigned)r->srv.port);
  smtpuv_options_set_tls(o, SMTPUV_TLS_NONE);
  smtpuv_options_set_ehlo_name(o, "client.test");
  smtpuv_options_set_timeout(o, SMTPUV_TIMEOUT_COMMAND,
                             (unsigned)(5000 * scale));
  assert_int_equal(smtpuv_options_set_pipelining(o, pipelining), 0);
  assert_int_equal(smtpuv_options_set_chunking(o, chunking), 0);
  assert_int_equal(smtpuv_client_new(&r->loop, o, &r->c), 0);
  smtpuv_options_free(o);
  smtpuv_client_set_data(r->c, r);
  for (int i = 0; i < N; i++) {
    snprintf(r->senders[i], sizeof r->senders[i], "s%d@example.com", i);
    for (int j = 0; j < 2; j++) {
      snprintf(r->rcpts[i][j], sizeof r->rcpts[i][j], "r%d-%d@example.com",
               i, j);
      r->to[i][j] = r->rcpts[i][j];
    }
    r->blen[i] = (size_t)snprintf(r->bodies[i], sizeof r->bodies[i],
                                  "Subject: %d\r\n\r\nbody of message %d\r\n",
                                  i, i);
    smtpuv_envelope e = SMTPUV_ENVELOPE_INIT;
    r->env[i] = e;
    r->env[i].sender = r->senders[i];
    r->env[i].recipients = r->to[i];
    r->env[i].nrecipients = 2;
    smtpuv_body_init_buffer(&r->body[i], r->bodies[i], r->blen[i]);
    assert_int_equal(smtpuv_client_send(r->c, &r->env[i], &r->body[i],
                                        on_sent, (void *)(size_t)i),
                     0);
  }
  uv_timer_init(&r->loop, &r->watchdog);
  r->watchdog.data = r;
  uv_timer_start(&r->watchdog, on_watchdog, (uint64_t)(20000 * scale), 0);
  uv_run(&r->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&r->loop), 0);
  assert_int_equal(r->timed_out, 0);
  assert_int_equal(r->closed, 1);
  assert_int_equal(r->done, N);
  assert_int_equal(r->sent, N);
  assert_int_equal(r->srv.connections, 1);
  assert_int_equal(r->srv.bodies, N);
}

/* Index of the flight holding `needle` (first occurrence), or -1. */
static int flight_of(const run *r, const char *needle) {
  for (int i = 0; i < r->srv.nflights; i++)
    if (strstr(r->srv.flights[i], needle) != NULL)
      return i;
  return -1;
}

static void dump(const run *r, const char *what) {
  if (getenv("SMTPUV_TEST_VERBOSE") == NULL)
    return;
  fprintf(stderr, "---- %s: %d flights\n", what, r->srv.nflights);
  for (int i = 0; i < r->srv.nflights; i++)
    fprintf(stderr, "[%d] %s\n", i, r->srv.flights[i]);
}

/* Round trips spent on the messages: the flights from the first MAIL to the
   last message's end. */
static int message_round_trips(const run *r, const char *last_end) {
  int first = flight_of(r, "MAIL FROM:<s0@example.com>");
  int last = flight_of(r, last_end);
  assert_true(first >= 0);
  assert_true(last >= first);
  return last - first + 1;
}

/* DATA: how many of the messages 1..N-1 did NOT have their envelope in the
   flight that ended the previous body, i.e. in the same client write as
   "\r\n.\r\n": "<body k-1>\r\n.\r\nMAIL FROM:<sk> ...\r\nRCPT TO:<rk-0>
   ...\r\nRCPT TO:<rk-1> ...\r\nDATA\r\n", in this order, ending the flight
   (nothing can follow DATA before its 354). */
static int data_violations(const run *r) {
  int bad = 0;
  for (int k = 1; k < N; k++) {
    char prev_end[120], mail[60], r0[60], r1[60];
    snprintf(prev_end, sizeof prev_end, "body of message %d\r\n.\r\n", k - 1);
    snprintf(mail, sizeof mail, "MAIL FROM:<%s>", r->senders[k]);
    snprintf(r0, sizeof r0, "RCPT TO:<%s>", r->rcpts[k][0]);
    snprintf(r1, sizeof r1, "RCPT TO:<%s>", r->rcpts[k][1]);
    int f = flight_of(r, prev_end);
    if (f < 0) {
      bad++;
      continue;
    }
    const char *fl = r->srv.flights[f];
    const char *pe = strstr(fl, prev_end);
    const char *pm = strstr(fl, mail);
    const char *p0 = strstr(fl, r0);
    const char *p1 = strstr(fl, r1);
    const char *pd = p1 ? strstr(p1, "\r\nDATA\r\n") : NULL;
    size_t len = r->srv.flen[f];
    /* the end of the body directly followed by the next MAIL */
    if (pm == NULL || pm != pe + strlen(prev_end) || p0 == NULL ||
        p1 == NULL || !(pm < p0 && p0 < p1) || pd == NULL ||
        pd + 8 != fl + len)
      bad++;
  }
  return bad;
}

/* BDAT: how many of the messages 1..N-1 were NOT written in the flight of
   the previous message's "BDAT n LAST" and chunk, directly behind the chunk
   (an RSET may come between: the client pipelines one in front of MAIL when
   the previous transaction's outcome is still unknown). */
static int bdat_violations(const run *r, int *pairs) {
  int bad = 0;
  *pairs = 0;
  for (int k = 1; k < N; k++) {
    char chunk[160], mail[60], r0[60], r1[60];
    snprintf(chunk, sizeof chunk, "BDAT %zu LAST\r\n%s", r->blen[k - 1],
             r->bodies[k - 1]);
    snprintf(mail, sizeof mail, "MAIL FROM:<%s>", r->senders[k]);
    snprintf(r0, sizeof r0, "RCPT TO:<%s>", r->rcpts[k][0]);
    snprintf(r1, sizeof r1, "RCPT TO:<%s>", r->rcpts[k][1]);
    int f = flight_of(r, chunk);
    if (f < 0) {
      bad++;
      continue;
    }
    const char *fl = r->srv.flights[f];
    const char *after = strstr(fl, chunk) + strlen(chunk);
    if (!strncmp(after, "RSET\r\n", 6))
      after += 6;
    const char *p0 = strstr(after, r0);
    const char *p1 = strstr(after, r1);
    char bd[40];
    snprintf(bd, sizeof bd, "BDAT %zu LAST\r\n", r->blen[k]);
    const char *pb = p1 ? strstr(p1, bd) : NULL;
    if (strncmp(after, mail, strlen(mail)) != 0 || p0 == NULL ||
        p1 == NULL || p1 < p0 || pb == NULL) {
      bad++;
      continue;
    }
    (*pairs)++;
  }
  return bad;
}

#define EXT_DATA "PIPELINING\r\n8BITMIME\r\nENHANCEDSTATUSCODES\r\n"
#define EXT_BDAT EXT_DATA "CHUNKING\r\n"

static void test_data_one_round_trip_per_message(void **state) {
  (void)state;
  run *r = calloc(1, sizeof *r);
  run_flights(r, EXT_DATA, 1, 1);
  dump(r, "DATA, pipelining");
  /* EHLO is its own flight (nothing may be pipelined behind it) */
  assert_int_equal(flight_of(r, "EHLO client.test"), 0);
  assert_string_equal(r->srv.flights[0], "EHLO client.test\r\n");
  /* MAIL+RCPT+RCPT+DATA of the first message in one flight */
  int f0 = flight_of(r, "MAIL FROM:<s0@example.com>");
  assert_int_equal(f0, 1);
  assert_int_equal(flight_of(r, "RCPT TO:<r0-1@example.com>"), f0);
  assert_int_equal(flight_of(r, "DATA\r\n"), f0);
  /* then each flight: end of body k-1 + MAIL, RCPTs, DATA of message k */
  assert_int_equal(data_violations(r), 0);
  /* N+1 flights for N messages: one round trip per message, plus the
     first message's DATA (354 needed before any body). */
  assert_int_equal(message_round_trips(r, "body of message 4\r\n.\r\n"),
                   N + 1);
  srv_free(&r->srv);
  free(r);
}

static void test_bdat_one_round_trip_per_message(void **state) {
  (void)state;
  run *r = calloc(1, sizeof *r);
  run_flights(r, EXT_BDAT, 1, 1);
  dump(r, "BDAT, pipelining");
  assert_string_equal(r->srv.flights[0], "EHLO client.test\r\n");
  assert_int_equal(flight_of(r, "DATA\r\n"), -1); /* BDAT, not DATA */
  char last[120];
  snprintf(last, sizeof last, "BDAT %zu LAST\r\n%s", r->blen[N - 1],
           r->bodies[N - 1]);
  /* at most one round trip per message: the whole first message (MAIL,
     RCPTs, BDAT LAST and its chunk) is one write, and so on */
  int rt = message_round_trips(r, last);
  if (rt > N)
    fail_msg("%d round trips for %d messages", rt, N);
  for (int k = 0; k < N; k++) {
    char mail[60], chunk[160];
    snprintf(mail, sizeof mail, "MAIL FROM:<%s>", r->senders[k]);
    snprintf(chunk, sizeof chunk, "BDAT %zu LAST\r\n%s", r->blen[k],
             r->bodies[k]);
    int fm = flight_of(r, mail);
    assert_true(fm >= 1);
    assert_int_equal(flight_of(r, chunk), fm);
  }
  /* and the next message rides in the flight of the previous one's
     BDAT LAST, as far as the client's in-flight window allows */
  int pairs;
  int bad = bdat_violations(r, &pairs);
  assert_true(pairs >= 1);
  assert_true(pairs + bad == N - 1);
  /* a message that did not follow its predecessor's chunk had to wait for
     a reply: that is a round trip, so pairs and round trips agree */
  assert_int_equal(rt, N - pairs);
  srv_free(&r->srv);
  free(r);
}

/* The checks above must be able to fail: without pipelining every command
   is a round trip of its own. */
static void test_no_pipelining_costs_round_trips(void **state) {
  (void)state;
  run *r = calloc(1, sizeof *r);
  run_flights(r, EXT_DATA, 0, 1);
  dump(r, "DATA, no pipelining");
  assert_true(data_violations(r) == N - 1);
  /* MAIL, RCPT, RCPT, DATA, body: five per message */
  assert_int_equal(message_round_trips(r, "body of message 4\r\n.\r\n"),
                   5 * N);
  srv_free(&r->srv);
  free(r);

  r = calloc(1, sizeof *r);
  run_flights(r, EXT_BDAT, 0, 1);
  dump(r, "BDAT, no pipelining");
  assert_int_equal(flight_of(r, "DATA\r\n"), -1);
  int pairs;
  assert_int_equal(bdat_violations(r, &pairs), N - 1);
  assert_int_equal(pairs, 0);
  char last[120];
  snprintf(last, sizeof last, "BDAT %zu LAST\r\n%s", r->blen[N - 1],
           r->bodies[N - 1]);
  assert_int_equal(message_round_trips(r, last), 4 * N);
  srv_free(&r->srv);
  free(r);
}

/* A server that does not offer PIPELINING gets the same lock-step
   treatment even though the client's switch is on. */
static void test_no_pipelining_offered(void **state) {
  (void)state;
  run *r = calloc(1, sizeof *r);
  run_flights(r, "8BITMIME\r\nCHUNKING\r\n", 1, 1);
  dump(r, "BDAT, not offered");
  int pairs;
  assert_int_equal(bdat_violations(r, &pairs), N - 1);
  char last[120];
  snprintf(last, sizeof last, "BDAT %zu LAST\r\n%s", r->blen[N - 1],
           r->bodies[N - 1]);
  assert_int_equal(message_round_trips(r, last), 4 * N);
  srv_free(&r->srv);
  free(r);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  if (getenv("SMTPUV_TEST_TIME_SCALE") != NULL)
    scale = atof(getenv("SMTPUV_TEST_TIME_SCALE"));
  if (scale < 1)
    scale = 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_data_one_round_trip_per_message),
      cmocka_unit_test(test_bdat_one_round_trip_per_message),
      cmocka_unit_test(test_no_pipelining_costs_round_trips),
      cmocka_unit_test(test_no_pipelining_offered),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/* One round trip per message, socket-free (the scenarios of
 * test_uv_client_flight.c): given several queued messages and a server that
 * offers PIPELINING, the conversation writes the end of one message and
 * the whole envelope of the next (MAIL, RCPTs, DATA; or with CHUNKING the
 * next MAIL, RCPTs and BDAT LAST) before it waits for a reply.
 *
 * The scripted server of the harness (h_serve) answers everything the
 * client wrote in one server step; a flight is the client output between
 * two server steps, so a client that waits for a reply before writing more
 * ends its flight early. The same checks with pipelining off must (and do)
 * fail. Flights are counted on the whole-feed run; the byte-wise and split
 * runs check the same conversation end to end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "conv_harness.h"

enum { N = 5 };

typedef struct msgs {
  char senders[N][40];
  char rcpts[N][2][40];
  const char *to[N][2];
  char bodies[N][80];
  size_t blen[N];
} msgs;

static msgs M;

static void make_msgs(void) {
  for (int i = 0; i < N; i++) {
    snprintf(M.senders[i], sizeof M.senders[i], "s%d@example.com", i);
    for (int j = 0; j < 2; j++) {
      snprintf(M.rcpts[i][j], sizeof M.rcpts[i][j], "r%d-%d@example.com", i,
               j);
      M.to[i][j] = M.rcpts[i][j];
    }
    M.blen[i] = (size_t)snprintf(M.bodies[i], sizeof M.bodies[i],
                                 "Subject: %d\r\n\r\nbody of message %d\r\n",
                                 i, i);
  }
}

typedef struct flights {
  int n;
  char *f[H_MAX_FLIGHTS];
} flights;

static void run_flights(h *x, const char *ext, flights *out) {
  h_start(x);
  for (int i = 0; i < N; i++)
    h_submit(x, M.senders[i], M.to[i], 2, M.bodies[i], M.blen[i]);
  h_serve(x, ext, NULL, NULL);
  for (int i = 0; i < N; i++)
    if (x->res[i].popped != 1 || x->res[i].status != SMTPUV_SEND_SENT)
      fail_msg("%s [%s]: message %d: %s", x->name, h_mode_name(x), i,
               x->res[i].message);
  H_CHECK(x, x->srv_messages == N);
  out->n = h_flights(x);
  for (int i = 0; i < out->n; i++)
    out->f[i] = h_flight(x, i);
  if (getenv("SMTPUV_TEST_VERBOSE") != NULL && x->mode == H_WHOLE) {
    fprintf(stderr, "---- %s: %d flights\n", x->name, out->n);
    for (int i = 0; i < out->n; i++)
      fprintf(stderr, "[%d] %s\n", i, out->f[i]);
  }
}

static void free_flights(flights *f) {
  for (int i = 0; i < f->n; i++)
    free(f->f[i]);
  f->n = 0;
}

static int flight_of(const flights *f, const char *needle) {
  for (int i = 0; i < f->n; i++)
    if (strstr(f->f[i], needle) != NULL)
      return i;
  return -1;
}

static int message_round_trips(const flights *f, const char *last_end) {
  int first = flight_of(f, "MAIL FROM:<s0@example.com>");
  int last = flight_of(f, last_end);
  assert_true(first >= 0);
  assert_true(last >= first);
  return last - first + 1;
}

/* DATA: messages 1..N-1 whose envelope was NOT written directly behind the
   end of the previous body, ending the flight with DATA. */
static int data_violations(const flights *f) {
  int bad = 0;
  for (int k = 1; k < N; k++) {
    char prev_end[120], mail[60], r0[60], r1[60];
    snprintf(prev_end, sizeof prev_end, "body of message %d\r\n.\r\n", k - 1);
    snprintf(mail, sizeof mail, "MAIL FROM:<%s>", M.senders[k]);
    snprintf(r0, sizeof r0, "RCPT TO:<%s>", M.rcpts[k][0]);
    snprintf(r1, sizeof r1, "RCPT TO:<%s>", M.rcpts[k][1]);
    int i = flight_of(f, prev_end);
    if (i < 0) {
      bad++;
      continue;
    }
    const char *fl = f->f[i];
    const char *pe = strstr(fl, prev_end);
    const char *pm = strstr(fl, mail);
    const char *p0 = strstr(fl, r0);
    const char *p1 = strstr(fl, r1);
    const char *pd = p1 ? strstr(p1, "\r\nDATA\r\n") : NULL;
    if (pm == NULL || pm != pe + strlen(prev_end) || p0 == NULL ||
        p1 == NULL || !(pm < p0 && p0 < p1) || pd == NULL ||
        pd + 8 != fl + strlen(fl))
      bad++;
  }
  return bad;
}

/* BDAT: messages 1..N-1 NOT written in the flight of the previous
   message's "BDAT n LAST" and chunk, directly behind it (an RSET may come
   between). */
static int bdat_violations(const flights *f, int *pairs) {
  int bad = 0;
  *pairs = 0;
  for (int k = 1; k < N; k++) {
    char chunk[160], mail[60], r0[60], r1[60];
    snprintf(chunk, sizeof chunk, "BDAT %zu LAST\r\n%s", M.blen[k - 1],
             M.bodies[k - 1]);
    snprintf(mail, sizeof mail, "MAIL FROM:<%s>", M.senders[k]);
    snprintf(r0, sizeof r0, "RCPT TO:<%s>", M.rcpts[k][0]);
    snprintf(r1, sizeof r1, "RCPT TO:<%s>", M.rcpts[k][1]);
    int i = flight_of(f, chunk);
    if (i < 0) {
      bad++;
      continue;
    }
    const char *after = strstr(f->f[i], chunk) + strlen(chunk);
    if (!strncmp(after, "RSET\r\n", 6))
      after += 6;
    const char *p0 = strstr(after, r0);
    const char *p1 = strstr(after, r1);
    char bd[40];
    snprintf(bd, sizeof bd, "BDAT %zu LAST\r\n", M.blen[k]);
    const char *pb = p1 ? strstr(p1, bd) : NULL;
    if (strncmp(after, mail, strlen(mail)) != 0 || p0 == NULL || p1 == NULL ||
        p1 < p0 || pb == NULL) {
      bad++;
      continue;
    }
    (*pairs)++;
  }
  return bad;
}

#define EXT_DATA "PIPELINING\r\n8BITMIME\r\nENHANCEDSTATUSCODES\r\n"
#define EXT_BDAT EXT_DATA "CHUNKING\r\n"

static void sc_data_pipelined(h *x, void *arg) {
  (void)arg;
  flights f;
  run_flights(x, EXT_DATA, &f);
  if (x->mode == H_WHOLE) {
    /* EHLO is its own flight */
    assert_string_equal(f.f[0], "EHLO client.test\r\n");
    int f0 = flight_of(&f, "MAIL FROM:<s0@example.com>");
    assert_int_equal(f0, 1);
    assert_int_equal(flight_of(&f, "RCPT TO:<r0-1@example.com>"), f0);
    assert_int_equal(flight_of(&f, "DATA\r\n"), f0);
    assert_int_equal(data_violations(&f), 0);
    /* N+1 flights for N messages: one per message plus the first DATA's
       354 */
    assert_int_equal(message_round_trips(&f, "body of message 4\r\n.\r\n"),
                     N + 1);
  }
  free_flights(&f);
}

static void test_data_one_round_trip_per_message(void **state) {
  (void)state;
  h_run("DATA, pipelining", sc_data_pipelined, NULL, H_ALL_MODES);
}

static void sc_bdat_pipelined(h *x, void *arg) {
  (void)arg;
  flights f;
  run_flights(x, EXT_BDAT, &f);
  if (x->mode == H_WHOLE) {
    assert_string_equal(f.f[0], "EHLO client.test\r\n");
    assert_int_equal(flight_of(&f, "DATA\r\n"), -1);
    char last[120];
    snprintf(last, sizeof last, "BDAT %zu LAST\r\n%s", M.blen[N - 1],
             M.bodies[N - 1]);
    int rt = message_round_trips(&f, last);
    if (rt > N)
      fail_msg("%d round trips for %d messages", rt, N);
    for (int k = 0; k < N; k++) {
      char mail[60], chunk[160];
      snprintf(mail, sizeof mail, "MAIL FROM:<%s>", M.senders[k]);
      snprintf(chunk, sizeof chunk, "BDAT %zu LAST\r\n%s", M.blen[k],
               M.bodies[k]);
      int fm = flight_of(&f, mail);
      assert_true(fm >= 1);
      assert_int_equal(flight_of(&f, chunk), fm);
    }
    int pairs;
    int bad = bdat_violations(&f, &pairs);
    assert_true(pairs >= 1);
    assert_true(pairs + bad == N - 1);
    assert_int_equal(rt, N - pairs);
  }
  free_flights(&f);
}

static void test_bdat_one_round_trip_per_message(void **state) {
  (void)state;
  h_run("BDAT, pipelining", sc_bdat_pipelined, NULL, H_ALL_MODES);
}

static void sc_data_lockstep(h *x, void *arg) {
  (void)arg;
  x->cfg.pipelining = 0;
  flights f;
  run_flights(x, EXT_DATA, &f);
  if (x->mode == H_WHOLE) {
    assert_int_equal(data_violations(&f), N - 1);
    /* MAIL, RCPT, RCPT, DATA, body: five per message */
    assert_int_equal(message_round_trips(&f, "body of message 4\r\n.\r\n"),
                     5 * N);
  }
  free_flights(&f);
}

static void sc_bdat_lockstep(h *x, void *arg) {
  const char *ext = arg;
  if (strstr(ext, "PIPELINING") != NULL)
    x->cfg.pipelining = 0;
  flights f;
  run_flights(x, ext, &f);
  if (x->mode == H_WHOLE) {
    assert_int_equal(flight_of(&f, "DATA\r\n"), -1);
    int pairs;
    assert_int_equal(bdat_violations(&f, &pairs), N - 1);
    assert_int_equal(pairs, 0);
    char last[120];
    snprintf(last, sizeof last, "BDAT %zu LAST\r\n%s", M.blen[N - 1],
             M.bodies[N - 1]);
    /* MAIL, RCPT, RCPT, BDAT LAST with its chunk */
    assert_int_equal(message_round_trips(&f, last), 4 * N);
  }
  free_flights(&f);
}

static void test_no_pipelining_costs_round_trips(void **state) {
  (void)state;
  h_run("DATA, no pipelining", sc_data_lockstep, NULL, H_ALL_MODES);
  h_run("BDAT, no pipelining", sc_bdat_lockstep, EXT_BDAT, H_ALL_MODES);
}

static void test_no_pipelining_offered(void **state) {
  (void)state;
  h_run("BDAT, not offered", sc_bdat_lockstep, "8BITMIME\r\nCHUNKING\r\n",
        H_ALL_MODES);
}

/* The window: at most max_inflight messages are on the wire at once. */
static void sc_window(h *x, void *arg) {
  unsigned w = *(unsigned *)arg;
  x->cfg.max_inflight = w;
  h_start(x);
  for (int i = 0; i < N; i++)
    h_submit(x, M.senders[i], M.to[i], 2, M.bodies[i], M.blen[i]);
  h_server(x, "220 mx.test ESMTP\r\n");
  h_expect(x, "EHLO client.test\r\n");
  /* nothing answered yet after EHLO: count what went out */
  h_server(x, "250-mx.test\r\n250-PIPELINING\r\n250 CHUNKING\r\n");
  char *out;
  h_take_out(x, &out);
  int mails = 0;
  for (const char *p = out; (p = strstr(p, "MAIL FROM")) != NULL; p++)
    mails++;
  H_CHECK(x, (unsigned)mails == (w == 0 ? 2 : w));
  H_CHECK(x, smtpuv__conv_inflight(x->cv) == (w == 0 ? 2 : w));
  H_CHECK(x, !smtpuv__conv_can_take(x->cv));
  free(out);
  /* the scripted server takes over after EHLO */
  x->srv_greeted = 1;
  x->srv_pos = strlen("EHLO client.test\r\n");
  h_serve(x, "PIPELINING\r\nCHUNKING\r\n", NULL, NULL);
  for (int i = 0; i < N; i++)
    H_CHECK(x, x->res[i].popped == 1 && x->res[i].status == SMTPUV_SEND_SENT);
}

static void test_inflight_window(void **state) {
  (void)state;
  for (unsigned w = 0; w <= 3; w++)
    h_run("in-flight window", sc_window, &w, H_ALL_MODES);
}

int main(void) {
  make_msgs();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_data_one_round_trip_per_message),
      cmocka_unit_test(test_bdat_one_round_trip_per_message),
      cmocka_unit_test(test_no_pipelining_costs_round_trips),
      cmocka_unit_test(test_no_pipelining_offered),
      cmocka_unit_test(test_inflight_window),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

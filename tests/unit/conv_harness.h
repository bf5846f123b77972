/* SPDX-License-Identifier: MIT */
/*
 * A socket-free harness for the conversation driver (src/conv/conv.h).
 *
 * A test is a conversation written as a list of steps: server bytes to feed
 * (h_server), the exact client bytes expected since the previous check
 * (h_expect: the concatenation of smtpuv__conv_outgoing() spans, handed
 * and written), time passing on a fake clock (h_advance: the timer event
 * fires whenever the conversation's deadline is reached), TLS coming up
 * when smtpuv__conv_take_start_tls() asked for it (h_tls_up), messages
 * submitted (h_submit: queued like the libuv client's queue and handed to
 * the conversation whenever smtpuv__conv_can_take() says so), closes,
 * aborts and transport failures, and checks of the results.
 *
 * After every event the harness reads every action out: output is handed
 * and written (all of it, or as far as h_hold() allows), finished messages
 * are popped (each must come out exactly once; their results are copied
 * into h_result), the TLS request and a setup failure are taken. A setup
 * failure fails the messages still queued, as the transport does.
 *
 * h_run() runs a scenario with the server bytes of every h_server() step
 * fed whole, one byte at a time, and cut in two at every position (the
 * same cut in every step). Flights ("round trips") are counted exactly as
 * the non-empty client output between two feeds; they are only meaningful
 * when x->mode == H_WHOLE.
 *
 * Every run uses the failing allocator of support.c: h_end() frees the
 * conversation and every record and asserts nothing leaked.
 */
#ifndef SMTPUV_TEST_CONV_HARNESS_H
#define SMTPUV_TEST_CONV_HARNESS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "conv/conv.h"
#include "conv/msg.h"
#include "support.h"

#define H_MAX_MSGS 64
#define H_MAX_RCPTS 16
#define H_MAX_FLIGHTS 256

enum { H_WHOLE = 0, H_BYTES, H_SPLIT };

/* What a popped message said (copied from smtpuv__msg_result()). */
typedef struct h_result {
  int popped;     /* times popped (must end as 1) */
  int order;      /* position in pop order (0-based) */
  int by_failure; /* failed by the harness from smtpuv__conv_take_failure()
                     while queued (never submitted) */
  int retry;      /* popped with `retry` set */
  smtpuv_send_status status;
  int error;
  smtpuv_phase phase;
  int reply_code;
  char reply_enhanced[16];
  char reply_text[1024];
  char message[1024];
  int has_tls;
  char tls[256];
  size_t nrcpts, naccepted;
  unsigned attempts;
  struct {
    int code, accepted;
    char enhanced[16];
    char text[256];
  } rcpt[H_MAX_RCPTS];
} h_result;

/* A pull body source for tests. */
typedef struct h_stream {
  const char *data;
  size_t len, pos;
  size_t piece;     /* at most this much per read (0: no limit) */
  size_t block_at;  /* return SMTPUV_EAGAIN once pos reaches this (0: never)
                       until `woken` */
  int woken;
  int waited;       /* SMTPUV_EAGAIN returned */
  int fail;         /* return -5 (a source failure) */
  int rewinds;
} h_stream;

long h_stream_read(void *user, void *buf, size_t cap);
int h_stream_rewind(void *user);

typedef struct h {
  test_mem tm;
  int mode;       /* H_WHOLE, H_BYTES, H_SPLIT */
  size_t split;   /* H_SPLIT: where each server step is cut */
  size_t max_step; /* longest server step seen (for the runner) */
  const char *name; /* scenario, for messages */

  smtpuv__conv_config cfg;
  smtpuv__conv *cv;
  uint64_t now;
  char local[64];

  /* output: `out` since the last h_expect(), `all` since the start */
  char *out;
  size_t outlen, outcap;
  char *all;
  size_t alllen, allcap;
  size_t hand_limit;  /* bytes that may still be handed (SIZE_MAX: any) */
  int auto_write;     /* written() right after handed() */
  int lag;            /* with auto_write: written() only just before the
                         next server bytes or timer (writes complete late) */
  size_t unwritten;   /* handed, not yet written */
  int out_since_feed; /* output since the last received() */
  int flights;
  size_t flight_start[H_MAX_FLIGHTS + 1]; /* offsets in `all` */

  /* trace */
  char *trace;
  size_t tracelen, tracecap;

  /* TLS */
  int tls_wanted;   /* take_start_tls() said 1, TLS not yet up */
  int tls_asks;
  int tls_up;

  /* wake callback */
  int wakes;

  /* setup failure */
  int failed;
  int fail_error;
  smtpuv_phase fail_phase;
  int fail_code;
  char fail_message[512];

  /* the end */
  smtpuv__conv_end_kind end;
  int end_err;

  /* messages: index = submission number */
  int nmsgs;
  smtpuv__msg *rec[H_MAX_MSGS];    /* records not yet popped / kept */
  int queued[H_MAX_MSGS];          /* waiting in the harness queue */
  int qhead, qtail, queue[H_MAX_MSGS];
  int submitted[H_MAX_MSGS];       /* handed to the conversation */
  int keep_retry;                  /* keep popped retry records in rec[] */
  h_result res[H_MAX_MSGS];
  int npopped;
  int pop_order[H_MAX_MSGS];
  int in_pump;
  int defer_leak_check; /* h_end() leaves the leak check to the test (an
                           authenticator from x->tm outlives it) */

  /* the scripted server of h_serve() */
  size_t srv_pos;      /* client bytes of `all` parsed so far */
  int srv_greeted;
  int srv_mode;        /* 0 lines, 1 DATA body, 2 BDAT chunk */
  size_t srv_bdat_left;
  int srv_bdat_last;
  int srv_in_bdat;
  char srv_line[4096];
  size_t srv_linelen;
  int srv_messages;    /* bodies received */
  int srv_quit;
  char *srv_tr;        /* "C: <line>\n" per command, "B: <n>\n" per body */
  size_t srv_trlen, srv_trcap;
  char *srv_body;      /* the last body (dot-unstuffed, CRLF kept) */
  size_t srv_blen, srv_bcap;
} h;

/* ---- setup ------------------------------------------------------------------ */

/* Defaults: SEND, TLS NONE, pipelining and chunking on, EHLO name
   "client.test", COMMAND 3000, DATA 10000, FINAL 20000, IDLE 60000. */
void h_config_default(h *x);
/* Create the conversation with x->cfg (now = 0) and report connected. */
void h_start(h *x);
/* h_start() without the connected event. */
void h_create(h *x);
void h_connected(h *x);
/* Free everything; assert that every submitted message was popped exactly
   once (unless `allow_unpopped`) and that nothing leaked. */
void h_end(h *x);
/* Free the harness's own buffers (h_end() does; needed when the
   conversation could not be created). */
void h_release(h *x);

/* ---- events ------------------------------------------------------------------ */

void h_server(h *x, const char *bytes);
void h_servern(h *x, const char *bytes, size_t len);
/* Feed in one piece whatever the mode (bytes that must arrive in one read,
   like an injection after STARTTLS's 220). */
void h_server_whole(h *x, const char *bytes);
/* The handshake completed (asserts that it was asked for). */
void h_tls_up(h *x, const char *summary);
/* Advance the clock by `ms`, firing the timer at every deadline reached. */
void h_advance(h *x, uint64_t ms);
/* Fire the timer now (an early call must be ignored). */
void h_timer_now(h *x);
void h_fail(h *x, int err, const char *text);
void h_close(h *x);
void h_abort(h *x);
void h_body_ready(h *x);
/* Drive the conversation (read the actions) without an event: after the
   wake callback. */
void h_drive(h *x);

/* Queue a message (buffer body); returns its index. */
int h_submit(h *x, const char *sender, const char *const *to, size_t n,
             const void *body, size_t len);
/* Queue a message with a full envelope and body. */
int h_submit_env(h *x, const smtpuv_envelope *e, const smtpuv_body *b);
/* Queue a record made elsewhere (a retry); the harness owns it. */
int h_submit_msg(h *x, smtpuv__msg *m);
/* Submit directly, bypassing can_take() (to test the refusal). */
int h_submit_now(h *x, const char *sender, const char *const *to, size_t n,
                 const void *body, size_t len);

/* A new connection: the conversation is freed (every message on it must
   have been popped) and a new one created with the same settings and
   connected; the queue and kept records stay. */
void h_reconnect(h *x);
/* Put a message popped with `retry` (kept: x->keep_retry) back at the head
   of the queue. */
void h_requeue(h *x, int i);

/* ---- a scripted server ----------------------------------------------------------- */

/* The server's answer to a command line (without CRLF), or with line NULL
   to the end of a body. Return 1 with `reply` filled (may be "": silence),
   or 0 for the default answer. */
typedef int (*h_hook)(h *x, const char *line, char *reply, size_t cap,
                      void *arg);
/* Answer everything the client has written, flight by flight (one server
   step each), until the client has nothing more to say or the
   conversation ended: the greeting first (220 mx.test ESMTP) if not sent,
   EHLO with `ext` (extension lines, each CRLF-ended), 250 to MAIL, RCPT,
   RSET, NOOP, 220 to STARTTLS (then the client's h_tls_up() and another
   h_serve()), 354 to DATA, "250 2.0.0 Ok: queued as N" to the end of data
   or BDAT LAST, 250 to other BDAT chunks, 235 to AUTH, 221 to QUIT. The
   commands and bodies go to x->srv_tr. */
void h_serve(h *x, const char *ext, h_hook hook, void *arg);
/* Occurrences of `needle` in x->srv_tr. */
int h_srv_count(const h *x, const char *needle);

/* ---- output control ------------------------------------------------------------ */

/* From now on hand at most `n` more bytes (SIZE_MAX: no limit); written()
   only with h_write() when `auto_write` is 0. */
void h_hold(h *x, size_t n, int auto_write);
/* Acknowledge `n` handed bytes (SIZE_MAX: all). */
void h_write(h *x, size_t n);

/* ---- checks ------------------------------------------------------------------- */

/* The client bytes since the last check are exactly `want`. */
void h_expect(h *x, const char *want);
void h_expectn(h *x, const char *want, size_t len);
/* Nothing written since the last check. */
void h_expect_none(h *x);
/* Take (and clear) the client bytes since the last check. */
size_t h_take_out(h *x, char **out);
/* Flights so far (the last one counts when it has bytes). */
int h_flights(const h *x);
/* Flight `i` as a NUL-terminated copy (malloc'd). */
char *h_flight(const h *x, int i);
/* The end action now. */
smtpuv__conv_end_kind h_end_kind(h *x);
/* Index of the message popped `k`-th, -1 if none. */
int h_popped(const h *x, int k);

/* Assertions with the scenario and feed mode in the message. */
#define H_CHECK(x, cond)                                                       \
  do {                                                                         \
    if (!(cond))                                                               \
      fail_msg("%s [%s]: %s", (x)->name, h_mode_name(x), #cond);               \
  } while (0)
const char *h_mode_name(const h *x);

/* ---- the runner ------------------------------------------------------------------ */

enum { H_ALL_MODES = 0, H_WHOLE_ONLY = 1 };

/* Run `fn` whole, whole with writes completing late (x->lag), byte-wise
   and split at every position of the longest server step (unless
   H_WHOLE_ONLY). `fn` must call h_start() (or
   h_create()) and h_end(). */
void h_run(const char *name, void (*fn)(h *x, void *arg), void *arg,
           int flags);

#endif

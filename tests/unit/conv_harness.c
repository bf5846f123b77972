/* SPDX-License-Identifier: MIT */
/* The socket-free conversation harness (conv_harness.h). */
#include "conv_harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const mode_names[] = {"whole", "bytes", "split"};

const char *h_mode_name(const h *x) {
  static char buf[64];
  if (x->mode == H_SPLIT)
    snprintf(buf, sizeof buf, "split at %zu", x->split);
  else
    snprintf(buf, sizeof buf, "%s%s", mode_names[x->mode],
             x->lag ? ", writes late" : "");
  return buf;
}

static void grow(char **buf, size_t *len, size_t *cap, const void *p,
                 size_t n) {
  if (*len + n + 1 > *cap) {
    size_t c = *cap ? *cap : 1024;
    while (c < *len + n + 1)
      c *= 2;
    char *nb = realloc(*buf, c);
    if (nb == NULL)
      fail_msg("harness: out of memory");
    *buf = nb;
    *cap = c;
  }
  if (n > 0)
    memcpy(*buf + *len, p, n);
  *len += n;
  (*buf)[*len] = '\0';
}

/* ---- streams --------------------------------------------------------------------- */

long h_stream_read(void *user, void *buf, size_t cap) {
  h_stream *s = user;
  if (s->fail)
    return -5;
  if (s->block_at != 0 && s->pos >= s->block_at && !s->woken) {
    s->waited++;
    return SMTPUV_EAGAIN;
  }
  size_t n = s->len - s->pos;
  if (n > cap)
    n = cap;
  if (s->piece != 0 && n > s->piece)
    n = s->piece;
  if (s->block_at != 0 && !s->woken && s->pos < s->block_at &&
      s->pos + n > s->block_at)
    n = s->block_at - s->pos;
  memcpy(buf, s->data + s->pos, n);
  s->pos += n;
  return (long)n;
}

int h_stream_rewind(void *user) {
  h_stream *s = user;
  s->pos = 0;
  s->rewinds++;
  return 0;
}

/* ---- callbacks --------------------------------------------------------------------- */

static void on_trace(void *data, smtpuv_trace_kind kind, const char *b,
                     size_t n) {
  h *x = data;
  const char *tag = kind == SMTPUV_TRACE_SEND        ? "C: "
                    : kind == SMTPUV_TRACE_SEND_BODY ? "B: "
                    : kind == SMTPUV_TRACE_RECV      ? "S: "
                                                     : "* ";
  grow(&x->trace, &x->tracelen, &x->tracecap, tag, strlen(tag));
  grow(&x->trace, &x->tracelen, &x->tracecap, b, n);
  if (kind == SMTPUV_TRACE_INFO)
    grow(&x->trace, &x->tracelen, &x->tracecap, "\n", 1);
}

static void on_wake(void *data) {
  h *x = data;
  x->wakes++;
}

/* ---- records ---------------------------------------------------------------------- */

static int index_of(const h *x, const smtpuv__msg *m) {
  for (int i = 0; i < x->nmsgs; i++)
    if (x->rec[i] == m)
      return i;
  return -1;
}

static void copy_str(char *dst, size_t cap, const char *s) {
  snprintf(dst, cap, "%s", s != NULL ? s : "");
}

static void record(h *x, int i, smtpuv__msg *m) {
  h_result *r = &x->res[i];
  smtpuv_send_result sr;
  smtpuv_rcpt_result rr[H_MAX_RCPTS];
  if (m->nrcpts > H_MAX_RCPTS)
    fail_msg("harness: too many recipients");
  memset(&sr, 0, sizeof sr);
  sr.struct_size = sizeof sr;
  smtpuv__msg_result(m, &sr, rr);
  r->popped++;
  r->order = x->npopped;
  if (x->npopped < H_MAX_MSGS)
    x->pop_order[x->npopped] = i;
  x->npopped++;
  r->retry = m->retry;
  r->status = sr.status;
  r->error = sr.error;
  r->phase = sr.phase;
  r->reply_code = sr.reply_code;
  copy_str(r->reply_enhanced, sizeof r->reply_enhanced, sr.reply_enhanced);
  copy_str(r->reply_text, sizeof r->reply_text, sr.reply_text);
  copy_str(r->message, sizeof r->message, sr.message);
  r->has_tls = sr.tls != NULL;
  copy_str(r->tls, sizeof r->tls, sr.tls);
  r->nrcpts = sr.nrecipients;
  r->naccepted = sr.naccepted;
  r->attempts = sr.attempts;
  for (size_t k = 0; k < sr.nrecipients && k < H_MAX_RCPTS; k++) {
    r->rcpt[k].code = sr.recipients[k].code;
    r->rcpt[k].accepted = sr.recipients[k].accepted;
    copy_str(r->rcpt[k].enhanced, sizeof r->rcpt[k].enhanced,
             sr.recipients[k].enhanced);
    copy_str(r->rcpt[k].text, sizeof r->rcpt[k].text, sr.recipients[k].text);
  }
}

/* ---- pumping ------------------------------------------------------------------------ */

static void take_output(h *x) {
  smtpuv_iov iov[16];
  for (int guard = 0; guard < 100000; guard++) {
    if (x->hand_limit == 0)
      return;
    int n = smtpuv__conv_outgoing(x->cv, iov, 16);
    if (n < 0 || n > 16)
      fail_msg("%s [%s]: outgoing() returned %d", x->name, h_mode_name(x), n);
    if (n == 0)
      return;
    size_t took = 0;
    for (int i = 0; i < n && x->hand_limit > 0; i++) {
      size_t len = iov[i].len;
      if (len == 0)
        fail_msg("%s [%s]: an empty output span", x->name, h_mode_name(x));
      if (len > x->hand_limit)
        len = x->hand_limit;
      grow(&x->out, &x->outlen, &x->outcap, iov[i].base, len);
      grow(&x->all, &x->alllen, &x->allcap, iov[i].base, len);
      took += len;
      if (x->hand_limit != SIZE_MAX)
        x->hand_limit -= len;
      if (len < iov[i].len)
        break;
    }
    x->out_since_feed = 1;
    smtpuv__conv_handed(x->cv, took);
    x->unwritten += took;
    if (x->auto_write && !x->lag) {
      size_t w = x->unwritten;
      x->unwritten = 0;
      smtpuv__conv_written(x->cv, w);
    }
  }
  fail_msg("%s [%s]: output never ends", x->name, h_mode_name(x));
}

static void fail_queue(h *x) {
  while (x->qhead != x->qtail) {
    int i = x->queue[x->qhead++];
    x->queued[i] = 0;
    h_result *r = &x->res[i];
    r->popped++;
    r->by_failure = 1;
    r->order = x->npopped;
    if (x->npopped < H_MAX_MSGS)
      x->pop_order[x->npopped] = i;
    x->npopped++;
    r->status = SMTPUV_SEND_FAILED;
    r->error = x->fail_error;
    r->phase = x->fail_phase;
    r->reply_code = x->fail_code;
    copy_str(r->message, sizeof r->message, x->fail_message);
    smtpuv__msg_free(&x->tm.mem, x->rec[i]);
    x->rec[i] = NULL;
  }
}

static void pump(h *x) {
  if (x->cv == NULL || x->in_pump)
    return;
  x->in_pump = 1;
  for (int round = 0;; round++) {
    if (round > 100000)
      fail_msg("%s [%s]: the conversation never settles", x->name,
               h_mode_name(x));
    int progress = 0;
    int err = 0;
    smtpuv__conv_end_kind e = smtpuv__conv_end(x->cv, &err);
    if (x->end != SMTPUV__CONV_RUN && e != x->end)
      fail_msg("%s [%s]: end changed from %d to %d", x->name, h_mode_name(x),
               x->end, e);
    x->end = e;
    if (e == SMTPUV__CONV_ABORT)
      x->end_err = err;
    if (smtpuv__conv_take_start_tls(x->cv)) {
      if (x->tls_wanted || x->tls_up)
        fail_msg("%s [%s]: TLS asked for twice", x->name, h_mode_name(x));
      x->tls_wanted = 1;
      x->tls_asks++;
    }
    smtpuv__conv_failure f;
    if (smtpuv__conv_take_failure(x->cv, &f)) {
      if (x->failed)
        fail_msg("%s [%s]: a second setup failure", x->name, h_mode_name(x));
      x->failed = 1;
      x->fail_error = f.error;
      x->fail_phase = f.phase;
      x->fail_code = f.reply_code;
      copy_str(x->fail_message, sizeof x->fail_message, f.message);
      if (f.error >= 0)
        fail_msg("%s [%s]: setup failure without an error", x->name,
                 h_mode_name(x));
      fail_queue(x);
      progress = 1;
    }
    smtpuv__msg *m;
    while ((m = smtpuv__conv_pop_finished(x->cv)) != NULL) {
      int i = index_of(x, m);
      if (i < 0 || !x->submitted[i])
        fail_msg("%s [%s]: popped a record never submitted", x->name,
                 h_mode_name(x));
      if (x->res[i].popped)
        fail_msg("%s [%s]: message %d popped twice", x->name, h_mode_name(x),
                 i);
      record(x, i, m);
      x->submitted[i] = 0;
      if (!(m->retry && x->keep_retry)) {
        smtpuv__msg_free(&x->tm.mem, m);
        x->rec[i] = NULL;
      }
      progress = 1;
    }
    if (e != SMTPUV__CONV_ABORT) {
      size_t before = x->alllen;
      take_output(x);
      if (x->alllen != before)
        progress = 1;
    }
    if (e == SMTPUV__CONV_RUN && x->qhead != x->qtail &&
        smtpuv__conv_can_take(x->cv)) {
      int i = x->queue[x->qhead++];
      x->queued[i] = 0;
      x->submitted[i] = 1;
      smtpuv__conv_set_now(x->cv, x->now);
      smtpuv__conv_submit(x->cv, x->rec[i]);
      progress = 1;
    }
    if (!progress)
      break;
  }
  x->in_pump = 0;
}

/* ---- setup ---------------------------------------------------------------------------- */

void h_config_default(h *x) {
  memset(&x->cfg, 0, sizeof x->cfg);
  x->cfg.mode = SMTPUV__CONV_SEND;
  x->cfg.tls = SMTPUV_TLS_NONE;
  x->cfg.pipelining = 1;
  x->cfg.chunking = 1;
  x->cfg.ehlo_name = "client.test";
  x->cfg.timeouts[SMTPUV_TIMEOUT_CONNECT] = 30000;
  x->cfg.timeouts[SMTPUV_TIMEOUT_COMMAND] = 3000;
  x->cfg.timeouts[SMTPUV_TIMEOUT_DATA] = 10000;
  x->cfg.timeouts[SMTPUV_TIMEOUT_FINAL] = 20000;
  x->cfg.timeouts[SMTPUV_TIMEOUT_IDLE] = 60000;
  x->cfg.trace = on_trace;
  x->cfg.trace_data = x;
  x->cfg.wake = on_wake;
  x->cfg.wake_data = x;
}

void h_create(h *x) {
  /* the buffers are always strings */
  grow(&x->out, &x->outlen, &x->outcap, "", 0);
  grow(&x->all, &x->alllen, &x->allcap, "", 0);
  grow(&x->trace, &x->tracelen, &x->tracecap, "", 0);
  grow(&x->srv_tr, &x->srv_trlen, &x->srv_trcap, "", 0);
  x->hand_limit = SIZE_MAX;
  x->auto_write = 1;
  int rc = smtpuv__conv_new(&x->tm.mem, &x->cfg, &x->cv);
  if (rc != 0) {
    x->cv = NULL;
    if (rc != SMTPUV_ENOMEM || !x->tm.failed)
      fail_msg("%s: smtpuv__conv_new: %s", x->name, smtpuv_err_name(rc));
    return;
  }
  smtpuv__conv_set_now(x->cv, x->now);
}

void h_connected(h *x) {
  if (x->cv == NULL)
    return;
  if (x->local[0] == '\0')
    snprintf(x->local, sizeof x->local, "[127.0.0.1]");
  smtpuv__conv_set_now(x->cv, x->now);
  smtpuv__conv_connected(x->cv, x->local);
  pump(x);
}

void h_start(h *x) {
  h_create(x);
  h_connected(x);
}

void h_end(h *x) {
  if (x->cv != NULL) {
    pump(x);
    for (int i = 0; i < x->nmsgs; i++)
      if (x->submitted[i] && x->end != SMTPUV__CONV_RUN)
        fail_msg("%s [%s]: message %d never popped", x->name, h_mode_name(x),
                 i);
    smtpuv__conv_free(x->cv);
    x->cv = NULL;
    /* records still inside were freed with it */
    for (int i = 0; i < x->nmsgs; i++)
      if (x->submitted[i])
        x->rec[i] = NULL;
  }
  for (int i = 0; i < x->nmsgs; i++) {
    if (x->rec[i] != NULL)
      smtpuv__msg_free(&x->tm.mem, x->rec[i]);
    x->rec[i] = NULL;
    if (x->res[i].popped > 1)
      fail_msg("%s [%s]: message %d popped %d times", x->name, h_mode_name(x),
               i, x->res[i].popped);
  }
  if (x->tm.live != 0 && !x->defer_leak_check)
    fail_msg("%s [%s]: %ld allocations leaked", x->name, h_mode_name(x),
             x->tm.live);
  h_release(x);
}

void h_release(h *x) {
  free(x->out);
  free(x->all);
  free(x->trace);
  free(x->srv_tr);
  free(x->srv_body);
  x->out = x->all = x->trace = x->srv_tr = x->srv_body = NULL;
  x->srv_trlen = x->srv_trcap = x->srv_blen = x->srv_bcap = 0;
  x->outlen = x->outcap = x->alllen = x->allcap = 0;
  x->tracelen = x->tracecap = 0;
}

/* ---- events ------------------------------------------------------------------------------ */

/* x->lag: the writes handed so far complete now. */
static void complete_late_writes(h *x) {
  if (x->lag && x->auto_write && x->unwritten > 0 && x->cv != NULL) {
    size_t w = x->unwritten;
    x->unwritten = 0;
    smtpuv__conv_set_now(x->cv, x->now);
    smtpuv__conv_written(x->cv, w);
    pump(x);
  }
}

static void feed(h *x, const char *p, size_t n) {
  if (n == 0)
    return;
  complete_late_writes(x);
  if (x->out_since_feed) {
    if (x->flights < H_MAX_FLIGHTS) {
      x->flights++;
      x->flight_start[x->flights] = x->alllen;
    }
    x->out_since_feed = 0;
  }
  smtpuv__conv_set_now(x->cv, x->now);
  smtpuv__conv_received(x->cv, p, n);
  pump(x);
}

void h_servern(h *x, const char *bytes, size_t len) {
  if (len > x->max_step)
    x->max_step = len;
  if (x->cv == NULL)
    return;
  switch (x->mode) {
  case H_BYTES:
    for (size_t i = 0; i < len; i++)
      feed(x, bytes + i, 1);
    break;
  case H_SPLIT: {
    size_t k = x->split < len ? x->split : len;
    feed(x, bytes, k);
    feed(x, bytes + k, len - k);
    break;
  }
  default:
    feed(x, bytes, len);
  }
}

void h_server(h *x, const char *bytes) { h_servern(x, bytes, strlen(bytes)); }

void h_server_whole(h *x, const char *bytes) {
  if (x->cv != NULL)
    feed(x, bytes, strlen(bytes));
}

void h_tls_up(h *x, const char *summary) {
  if (x->cv == NULL)
    return;
  if (!x->tls_wanted)
    fail_msg("%s [%s]: TLS up without being asked for", x->name,
             h_mode_name(x));
  x->tls_wanted = 0;
  x->tls_up = 1;
  smtpuv__conv_set_now(x->cv, x->now);
  smtpuv__conv_tls_established(x->cv, summary);
  pump(x);
}

void h_advance(h *x, uint64_t ms) {
  uint64_t target = x->now + ms;
  if (x->cv == NULL) {
    x->now = target;
    return;
  }
  uint64_t last = UINT64_MAX;
  int same = 0;
  for (int guard = 0; guard < 100000; guard++) {
    uint64_t at;
    if (!smtpuv__conv_deadline(x->cv, &at) || at > target)
      break;
    complete_late_writes(x);
    if (!smtpuv__conv_deadline(x->cv, &at) || at > target)
      break;
    if (at == last && ++same > 100)
      fail_msg("%s [%s]: the timer fired and the deadline %llu stayed",
               x->name, h_mode_name(x), (unsigned long long)at);
    last = at;
    if (at > x->now)
      x->now = at;
    smtpuv__conv_set_now(x->cv, x->now);
    smtpuv__conv_timer(x->cv);
    pump(x);
    if (x->end != SMTPUV__CONV_RUN && !smtpuv__conv_deadline(x->cv, &at))
      break;
  }
  x->now = target;
  smtpuv__conv_set_now(x->cv, x->now);
}

void h_timer_now(h *x) {
  if (x->cv == NULL)
    return;
  smtpuv__conv_set_now(x->cv, x->now);
  smtpuv__conv_timer(x->cv);
  pump(x);
}

void h_fail(h *x, int err, const char *text) {
  if (x->cv == NULL)
    return;
  smtpuv__conv_set_now(x->cv, x->now);
  smtpuv__conv_transport_failed(x->cv, err, text);
  pump(x);
}

void h_close(h *x) {
  if (x->cv == NULL)
    return;
  smtpuv__conv_set_now(x->cv, x->now);
  smtpuv__conv_close(x->cv);
  pump(x);
}

void h_abort(h *x) {
  if (x->cv == NULL)
    return;
  smtpuv__conv_set_now(x->cv, x->now);
  smtpuv__conv_abort(x->cv);
  pump(x);
}

void h_body_ready(h *x) {
  if (x->cv == NULL)
    return;
  smtpuv__conv_set_now(x->cv, x->now);
  smtpuv__conv_body_ready(x->cv);
  pump(x);
}

void h_drive(h *x) { pump(x); }

static int enqueue(h *x, smtpuv__msg *m) {
  if (x->nmsgs >= H_MAX_MSGS)
    fail_msg("harness: too many messages");
  int i = x->nmsgs++;
  x->rec[i] = m;
  x->queued[i] = 1;
  x->queue[x->qtail++] = i;
  pump(x);
  return i;
}

int h_submit_env(h *x, const smtpuv_envelope *e, const smtpuv_body *b) {
  smtpuv__msg *m;
  int rc = smtpuv__msg_new(&x->tm.mem, e, b, &m);
  if (rc != 0) {
    if (rc != SMTPUV_ENOMEM || !x->tm.failed)
      fail_msg("%s: smtpuv__msg_new: %s", x->name, smtpuv_err_name(rc));
    return -1;
  }
  return enqueue(x, m);
}

int h_submit_msg(h *x, smtpuv__msg *m) { return enqueue(x, m); }

int h_submit(h *x, const char *sender, const char *const *to, size_t n,
             const void *body, size_t len) {
  smtpuv_envelope e = SMTPUV_ENVELOPE_INIT;
  e.sender = sender;
  e.recipients = to;
  e.nrecipients = n;
  smtpuv_body b;
  smtpuv_body_init_buffer(&b, body, len);
  return h_submit_env(x, &e, &b);
}

int h_submit_now(h *x, const char *sender, const char *const *to, size_t n,
                 const void *body, size_t len) {
  smtpuv_envelope e = SMTPUV_ENVELOPE_INIT;
  e.sender = sender;
  e.recipients = to;
  e.nrecipients = n;
  smtpuv_body b;
  smtpuv_body_init_buffer(&b, body, len);
  smtpuv__msg *m;
  assert_int_equal(smtpuv__msg_new(&x->tm.mem, &e, &b, &m), 0);
  int i = x->nmsgs++;
  x->rec[i] = m;
  x->submitted[i] = 1;
  smtpuv__conv_set_now(x->cv, x->now);
  smtpuv__conv_submit(x->cv, m);
  pump(x);
  return i;
}

/* ---- output control ---------------------------------------------------------------------- */

void h_hold(h *x, size_t n, int auto_write) {
  x->hand_limit = n;
  x->auto_write = auto_write;
  pump(x);
}

void h_write(h *x, size_t n) {
  if (x->cv == NULL)
    return;
  if (n > x->unwritten)
    n = x->unwritten;
  x->unwritten -= n;
  smtpuv__conv_set_now(x->cv, x->now);
  smtpuv__conv_written(x->cv, n);
  pump(x);
}

/* ---- checks ---------------------------------------------------------------------------------- */

void h_expectn(h *x, const char *want, size_t len) {
  if (x->cv == NULL && x->outlen == 0)
    return;
  if (x->outlen != len || memcmp(x->out, want, len) != 0)
    fail_msg("%s [%s]: client bytes differ:\n got (%zu): \"%.*s\"\n"
             "want (%zu): \"%.*s\"",
             x->name, h_mode_name(x), x->outlen,
             (int)(x->outlen > 3000 ? 3000 : x->outlen), x->out, len,
             (int)(len > 3000 ? 3000 : len), want);
  x->outlen = 0;
}

void h_expect(h *x, const char *want) { h_expectn(x, want, strlen(want)); }

void h_expect_none(h *x) { h_expectn(x, "", 0); }

size_t h_take_out(h *x, char **out) {
  size_t n = x->outlen;
  *out = malloc(n + 1);
  assert_non_null(*out);
  if (n > 0)
    memcpy(*out, x->out, n);
  (*out)[n] = '\0';
  x->outlen = 0;
  return n;
}

int h_flights(const h *x) { return x->flights + (x->out_since_feed ? 1 : 0); }

char *h_flight(const h *x, int i) {
  if (i < 0 || i >= h_flights(x))
    return NULL;
  size_t s = x->flight_start[i];
  size_t e = i < x->flights ? x->flight_start[i + 1] : x->alllen;
  char *p = malloc(e - s + 1);
  assert_non_null(p);
  memcpy(p, x->all + s, e - s);
  p[e - s] = '\0';
  return p;
}

smtpuv__conv_end_kind h_end_kind(h *x) {
  pump(x);
  return x->end;
}

int h_popped(const h *x, int k) {
  return k < x->npopped && k < H_MAX_MSGS ? x->pop_order[k] : -1;
}

/* ---- connections ----------------------------------------------------------------------------- */

void h_reconnect(h *x) {
  if (x->cv != NULL) {
    pump(x);
    for (int i = 0; i < x->nmsgs; i++)
      if (x->submitted[i])
        fail_msg("%s [%s]: message %d still on the old connection", x->name,
                 h_mode_name(x), i);
    smtpuv__conv_free(x->cv);
    x->cv = NULL;
  }
  x->tls_wanted = x->tls_up = 0;
  x->failed = 0;
  x->end = SMTPUV__CONV_RUN;
  x->end_err = 0;
  x->unwritten = 0;
  x->srv_pos = x->alllen;
  x->srv_greeted = 0;
  x->srv_mode = 0;
  x->srv_linelen = 0;
  x->srv_in_bdat = 0;
  x->srv_quit = 0;
  h_start(x);
}

void h_requeue(h *x, int i) {
  if (x->rec[i] == NULL || !x->res[i].retry)
    fail_msg("%s: message %d was not kept for a retry", x->name, i);
  x->res[i].popped = 0;
  x->res[i].retry = 0;
  for (int k = x->qtail; k > x->qhead; k--)
    x->queue[k] = x->queue[k - 1];
  x->queue[x->qhead] = i;
  x->qtail++;
  x->queued[i] = 1;
  pump(x);
}

/* ---- the scripted server ------------------------------------------------------------------------ */

static void srv_tr(h *x, const char *s) {
  grow(&x->srv_tr, &x->srv_trlen, &x->srv_trcap, s, strlen(s));
}

static void srv_default(h *x, const char *ext, const char *line, char *out,
                        size_t cap) {
  if (line == NULL) {
    snprintf(out, cap, "250 2.0.0 Ok: queued as %d\r\n", x->srv_messages);
    return;
  }
  char verb[16] = {0};
  for (int i = 0; i < 15 && line[i] && line[i] != ' '; i++)
    verb[i] = (char)(line[i] >= 'a' && line[i] <= 'z' ? line[i] - 32 : line[i]);
  if (!strcmp(verb, "EHLO")) {
    size_t n = (size_t)snprintf(out, cap, "250%smx.test\r\n",
                                ext && *ext ? "-" : " ");
    const char *e = ext ? ext : "";
    while (*e && n < cap) {
      const char *nl = strstr(e, "\r\n");
      size_t l = nl ? (size_t)(nl - e) : strlen(e);
      const char *next = nl ? nl + 2 : e + l;
      n += (size_t)snprintf(out + n, cap - n, "250%c%.*s\r\n",
                            *next ? '-' : ' ', (int)l, e);
      e = next;
    }
  } else if (!strcmp(verb, "HELO")) {
    snprintf(out, cap, "250 mx.test\r\n");
  } else if (!strcmp(verb, "STARTTLS")) {
    snprintf(out, cap, "220 2.0.0 Ready to start TLS\r\n");
  } else if (!strcmp(verb, "DATA")) {
    snprintf(out, cap, "354 go ahead\r\n");
  } else if (!strcmp(verb, "QUIT")) {
    snprintf(out, cap, "221 2.0.0 bye\r\n");
  } else if (!strcmp(verb, "AUTH")) {
    snprintf(out, cap, "235 2.7.0 ok\r\n");
  } else if (!strcmp(verb, "MAIL") || !strcmp(verb, "RCPT") ||
             !strcmp(verb, "RSET") || !strcmp(verb, "NOOP")) {
    snprintf(out, cap, "250 2.0.0 Ok\r\n");
  } else {
    snprintf(out, cap, "502 5.5.2 unknown command\r\n");
  }
}

static void srv_answer(h *x, const char *ext, h_hook hook, void *arg,
                       const char *line, char **rep, size_t *rlen,
                       size_t *rcap) {
  char reply[8192];
  reply[0] = '\0';
  if (hook == NULL || !hook(x, line, reply, sizeof reply, arg))
    srv_default(x, ext, line, reply, sizeof reply);
  grow(rep, rlen, rcap, reply, strlen(reply));
  if (line != NULL && !strncmp(line, "DATA", 4) && reply[0] == '3')
    x->srv_mode = 1;
  if (line != NULL && !strcmp(line, "QUIT"))
    x->srv_quit = 1;
}

static void srv_body_done(h *x, const char *ext, h_hook hook, void *arg,
                          char **rep, size_t *rlen, size_t *rcap) {
  x->srv_messages++;
  char m[64];
  snprintf(m, sizeof m, "B: %zu\n", x->srv_blen);
  srv_tr(x, m);
  srv_answer(x, ext, hook, arg, NULL, rep, rlen, rcap);
}

/* Parse the client bytes not yet seen; the replies they call for go to
   `rep`. */
static void srv_parse(h *x, const char *ext, h_hook hook, void *arg,
                      char **rep, size_t *rlen, size_t *rcap) {
  while (x->srv_pos < x->alllen) {
    if (x->srv_mode == 2) {
      size_t take = x->alllen - x->srv_pos;
      if (take > x->srv_bdat_left)
        take = x->srv_bdat_left;
      grow(&x->srv_body, &x->srv_blen, &x->srv_bcap, x->all + x->srv_pos,
           take);
      x->srv_pos += take;
      x->srv_bdat_left -= take;
      if (x->srv_bdat_left == 0) {
        x->srv_mode = 0;
        if (x->srv_bdat_last) {
          x->srv_in_bdat = 0;
          srv_body_done(x, ext, hook, arg, rep, rlen, rcap);
        } else {
          grow(rep, rlen, rcap, "250 2.0.0 chunk ok\r\n", 20);
        }
      }
      continue;
    }
    char c = x->all[x->srv_pos++];
    if (x->srv_linelen < sizeof x->srv_line - 1)
      x->srv_line[x->srv_linelen++] = c;
    if (c != '\n')
      continue;
    x->srv_line[x->srv_linelen] = '\0';
    size_t l = x->srv_linelen;
    x->srv_linelen = 0;
    char *line = x->srv_line;
    if (x->srv_mode == 1) {
      if (!strcmp(line, ".\r\n")) {
        x->srv_mode = 0;
        srv_body_done(x, ext, hook, arg, rep, rlen, rcap);
        continue;
      }
      const char *p = line[0] == '.' ? line + 1 : line;
      grow(&x->srv_body, &x->srv_blen, &x->srv_bcap, p,
           l - (size_t)(p - line));
      continue;
    }
    while (l > 0 && (line[l - 1] == '\n' || line[l - 1] == '\r'))
      line[--l] = '\0';
    srv_tr(x, "C: ");
    srv_tr(x, line);
    srv_tr(x, "\n");
    if (!strncmp(line, "DATA", 4))
      x->srv_blen = 0;
    if (!strncmp(line, "BDAT ", 5)) {
      if (!x->srv_in_bdat)
        x->srv_blen = 0;
      x->srv_in_bdat = 1;
      x->srv_bdat_left = strtoul(line + 5, NULL, 10);
      x->srv_bdat_last = strstr(line, " LAST") != NULL;
      if (x->srv_bdat_left > 0) {
        x->srv_mode = 2;
      } else if (x->srv_bdat_last) {
        x->srv_in_bdat = 0;
        srv_body_done(x, ext, hook, arg, rep, rlen, rcap);
      } else {
        grow(rep, rlen, rcap, "250 2.0.0 chunk ok\r\n", 20);
      }
      continue;
    }
    if (!strncmp(line, "RSET", 4))
      x->srv_in_bdat = 0;
    srv_answer(x, ext, hook, arg, line, rep, rlen, rcap);
  }
}

void h_serve(h *x, const char *ext, h_hook hook, void *arg) {
  if (x->cv == NULL)
    return;
  if (!x->srv_greeted) {
    x->srv_greeted = 1;
    x->srv_pos = x->alllen;
    if (!x->tls_wanted)
      h_server(x, "220 mx.test ESMTP\r\n");
  }
  for (int guard = 0; guard < 1000000; guard++) {
    if (x->cv == NULL || x->end == SMTPUV__CONV_ABORT)
      return;
    char *rep = NULL;
    size_t rlen = 0, rcap = 0;
    srv_parse(x, ext, hook, arg, &rep, &rlen, &rcap);
    if (rlen == 0) {
      free(rep);
      return;
    }
    h_servern(x, rep, rlen);
    free(rep);
  }
  fail_msg("%s: the scripted server never stops", x->name);
}

int h_srv_count(const h *x, const char *needle) {
  int n = 0;
  const char *p = x->srv_tr;
  while (p != NULL && (p = strstr(p, needle)) != NULL) {
    n++;
    p += strlen(needle);
  }
  return n;
}

/* ---- runner ---------------------------------------------------------------------------------- */

void h_run(const char *name, void (*fn)(h *x, void *arg), void *arg,
           int flags) {
  h *x = calloc(1, sizeof *x);
  assert_non_null(x);
  size_t longest = 0;
  int runs = 0;
  /* whole, whole with late writes, bytes, split */
  for (int step = 0; step <= 3; step++) {
    int mode = step == 0 ? H_WHOLE : step - 1;
    int lag = step == 1;
    if (step == 1)
      mode = H_WHOLE;
    size_t first = 1, last = 1;
    if (mode == H_SPLIT) {
      last = longest > 1 ? longest - 1 : 0;
    }
    for (size_t k = first; k <= last; k++) {
      memset(x, 0, sizeof *x);
      test_mem_init(&x->tm, 0);
      x->name = name;
      x->mode = mode;
      x->lag = lag;
      x->split = k;
      h_config_default(x);
      fn(x, arg);
      if (x->cv != NULL)
        h_end(x);
      h_release(x);
      if (x->max_step > longest)
        longest = x->max_step;
      runs++;
    }
    if (flags & H_WHOLE_ONLY)
      break;
  }
  free(x);
  (void)runs;
}

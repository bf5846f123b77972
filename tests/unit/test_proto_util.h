/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the test_proto_*.c suites: a driver that feeds server
 * bytes with a chosen chunking, pops replies and checks the exact client
 * bytes.
 */
#ifndef SMTPUV_TEST_PROTO_UTIL_H
#define SMTPUV_TEST_PROTO_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "protocol/proto_int.h"
#include "smtpuv.h"
#include "support.h"

/* How drv_feed() cuts each server flight. */
enum {
  FEED_WHOLE = 0, /* one feed() per flight */
  FEED_BYTES,     /* one feed() per byte */
  FEED_SPLIT      /* two feeds, cut at `split` (clamped) */
};

typedef struct drv {
  smtpuv_proto *p;
  int mode;
  size_t split;
  smtpuv_reply r; /* last popped reply */
} drv;

static inline void drv_init(drv *d, int mode, size_t split) {
  memset(d, 0, sizeof *d);
  d->mode = mode;
  d->split = split;
  assert_int_equal(smtpuv_proto_new(NULL, &d->p), 0);
}

static inline void drv_done(drv *d) {
  smtpuv_proto_free(d->p);
  d->p = NULL;
}

static inline int feed_str(smtpuv_proto *p, const char *s) {
  return smtpuv_proto_feed(p, s, strlen(s));
}

/* Feed `len` bytes with the driver's chunking; every feed must succeed. */
static inline void drv_feedn(drv *d, const char *s, size_t len) {
  switch (d->mode) {
  case FEED_BYTES:
    for (size_t i = 0; i < len; i++)
      assert_int_equal(smtpuv_proto_feed(d->p, s + i, 1), 0);
    break;
  case FEED_SPLIT: {
    size_t k = d->split < len ? d->split : len;
    assert_int_equal(smtpuv_proto_feed(d->p, s, k), 0);
    assert_int_equal(smtpuv_proto_feed(d->p, s + k, len - k), 0);
    break;
  }
  default:
    assert_int_equal(smtpuv_proto_feed(d->p, s, len), 0);
  }
}

static inline void drv_feed(drv *d, const char *s) {
  drv_feedn(d, s, strlen(s));
}

/* Pop the next reply and check what it answers and its code. */
static inline const smtpuv_reply *drv_reply(drv *d, smtpuv_cmd cmd, int code) {
  int rc = smtpuv_proto_next_reply(d->p, &d->r);
  if (rc != 1)
    fail_msg("expected a reply to %s %d, got %d (%s)", smtpuv_cmd_name(cmd),
             code, rc, smtpuv_proto_error_text(d->p));
  if (d->r.command != cmd || d->r.code != code)
    fail_msg("expected a reply to %s %d, got %s %d",
             smtpuv_cmd_name(cmd), code, smtpuv_cmd_name(d->r.command),
             d->r.code);
  return &d->r;
}

static inline void drv_no_reply(drv *d) {
  smtpuv_reply r;
  assert_int_equal(smtpuv_proto_next_reply(d->p, &r), 0);
}

/* All pending output as one string (malloc'd, NUL-terminated), gathered
   through outgoing_iov, and checked against outgoing(). */
static inline char *pending_copy(smtpuv_proto *p, size_t *len_out) {
  size_t total = smtpuv_proto_pending_output(p), off = 0;
  char *buf = malloc(total + 1);
  assert_non_null(buf);
  smtpuv_iov iov[4];
  int n;
  while ((n = smtpuv_proto_outgoing_iov(p, off, iov, 4)) > 0) {
    for (int i = 0; i < n; i++) {
      assert_true(off + iov[i].len <= total);
      memcpy(buf + off, iov[i].base, iov[i].len);
      off += iov[i].len;
    }
  }
  assert_int_equal(off, total);
  const void *ptr;
  size_t len;
  smtpuv_proto_outgoing(p, &ptr, &len);
  assert_true(len <= total);
  if (len > 0)
    assert_memory_equal(ptr, buf, len);
  buf[total] = '\0';
  if (len_out != NULL)
    *len_out = total;
  return buf;
}

/* The client must have written exactly `expected` (then consumed). */
static inline void expect_outn(smtpuv_proto *p, const char *expected,
                               size_t elen) {
  size_t len;
  char *got = pending_copy(p, &len);
  if (len != elen || memcmp(got, expected, len) != 0)
    fail_msg("client bytes differ:\n got (%zu): \"%.*s\"\nwant (%zu): \"%.*s\"",
             len, (int)(len > 2000 ? 2000 : len), got, elen,
             (int)(elen > 2000 ? 2000 : elen), expected);
  free(got);
  smtpuv_proto_consumed(p, len);
  assert_int_equal(smtpuv_proto_pending_output(p), 0);
}

static inline void expect_out(smtpuv_proto *p, const char *expected) {
  expect_outn(p, expected, strlen(expected));
}

static inline void drv_out(drv *d, const char *expected) {
  expect_out(d->p, expected);
}

/* A session greeted and EHLO'd with the given EHLO reply text (lines
   without "250-", separated by '\n'), output consumed. */
static inline smtpuv_proto *session_with(const smtpuv_mem *mem,
                                         const char *ehlo_lines) {
  smtpuv_proto *p;
  assert_int_equal(smtpuv_proto_new(mem, &p), 0);
  assert_int_equal(feed_str(p, "220 mx.example ESMTP\r\n"), 0);
  smtpuv_reply r;
  assert_int_equal(smtpuv_proto_next_reply(p, &r), 1);
  assert_int_equal(smtpuv_proto_ehlo(p, "client.example"), 0);
  expect_out(p, "EHLO client.example\r\n");
  char reply[4096];
  size_t n = 0;
  const char *s = ehlo_lines;
  for (;;) {
    const char *nl = strchr(s, '\n');
    size_t len = nl != NULL ? (size_t)(nl - s) : strlen(s);
    n += (size_t)snprintf(reply + n, sizeof reply - n, "250%c%.*s\r\n",
                          nl != NULL ? '-' : ' ', (int)len, s);
    if (nl == NULL)
      break;
    s = nl + 1;
  }
  assert_int_equal(smtpuv_proto_feed(p, reply, n), 0);
  assert_int_equal(smtpuv_proto_next_reply(p, &r), 1);
  assert_int_equal(r.command, SMTPUV_CMD_EHLO);
  assert_int_equal(smtpuv_proto_state(p), SMTPUV_STATE_READY);
  return p;
}

/* Pop one reply and check command and code. */
static inline smtpuv_reply pop(smtpuv_proto *p, smtpuv_cmd cmd, int code) {
  smtpuv_reply r;
  int rc = smtpuv_proto_next_reply(p, &r);
  if (rc != 1)
    fail_msg("expected a reply to %s %d, got %d (%s)", smtpuv_cmd_name(cmd),
             code, rc, smtpuv_proto_error_text(p));
  if (r.command != cmd || r.code != code)
    fail_msg("expected a reply to %s %d, got %s %d", smtpuv_cmd_name(cmd),
             code, smtpuv_cmd_name(r.command), r.code);
  return r;
}

#define EHLO_FULL                                                              \
  "mx.example\nPIPELINING\nSIZE 10485760\nSTARTTLS\nENHANCEDSTATUSCODES\n"     \
  "8BITMIME\nDSN\nSMTPUTF8\nCHUNKING\nBINARYMIME\nREQUIRETLS\n"               \
  "AUTH PLAIN LOGIN"

#define EHLO_BASIC "mx.example\n8BITMIME"

#endif

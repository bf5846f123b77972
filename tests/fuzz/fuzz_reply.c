/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the reply reader.
 *
 * Input: one setup byte, then chunks "<len><len bytes>" fed one by one.
 * Setup bit 0: greet and EHLO first (PIPELINING, ENHANCEDSTATUSCODES,
 * STARTTLS), then issue (setup >> 3) RSETs so replies have commands to
 * answer; bit 1: also STARTTLS at the end (injection checks); bit 2: pop
 * replies after every chunk (else only at the end, so they pile up).
 *
 * Checked: every popped reply is well formed (code 200..599, lines inside
 * the NUL-terminated text), errors are sticky, and the input buffer stays
 * within the limits whatever the bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/proto_int.h"
#include "smtpuv.h"

#define CHECK(x)                                                               \
  do {                                                                         \
    if (!(x))                                                                  \
      abort();                                                                 \
  } while (0)

static void check_reply(const smtpuv_reply *r) {
  CHECK(r->code >= 200 && r->code <= 599);
  CHECK(r->nlines >= 1);
  CHECK(r->text[r->text_len] == '\0');
  CHECK(strlen(r->text) == r->text_len);
  size_t sum = 0;
  for (size_t i = 0; i < r->nlines; i++) {
    CHECK(r->lines[i].ptr >= r->text);
    CHECK(r->lines[i].ptr + r->lines[i].len <= r->text + r->text_len);
    CHECK(memchr(r->lines[i].ptr, '\n', r->lines[i].len) == NULL);
    sum += r->lines[i].len;
  }
  CHECK(sum + r->nlines - 1 == r->text_len);
  if (r->enhanced[0] != '\0')
    CHECK(r->enh_class == r->code / 100);
  else
    CHECK(r->enh_class == 0 && r->enh_subject == 0 && r->enh_detail == 0);
}

static int pop_all(smtpuv_proto *p) {
  smtpuv_reply r;
  int rc;
  while ((rc = smtpuv_proto_next_reply(p, &r)) == 1)
    check_reply(&r);
  return rc;
}

static void setup(smtpuv_proto *p, unsigned flags) {
  static const char greet[] = "220 mx\r\n";
  static const char ehlo[] = "250-mx\r\n250-PIPELINING\r\n250-STARTTLS\r\n"
                             "250 ENHANCEDSTATUSCODES\r\n";
  smtpuv_reply r;
  CHECK(smtpuv_proto_feed(p, greet, sizeof greet - 1) == 0);
  CHECK(smtpuv_proto_next_reply(p, &r) == 1);
  CHECK(smtpuv_proto_ehlo(p, "fuzz") == 0);
  CHECK(smtpuv_proto_feed(p, ehlo, sizeof ehlo - 1) == 0);
  CHECK(smtpuv_proto_next_reply(p, &r) == 1);
  for (unsigned i = 0; i < (flags >> 3); i++)
    CHECK(smtpuv_proto_rset(p) == 0);
  if (flags & 2)
    CHECK(smtpuv_proto_starttls(p) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  smtpuv_proto *p;
  if (size == 0 || smtpuv_proto_new(NULL, &p) != 0)
    return 0;
  unsigned flags = data[0];
  if (flags & 1)
    setup(p, flags);
  size_t pos = 1;
  int err = 0;
  while (pos < size) {
    size_t len = data[pos++];
    if (len > size - pos)
      len = size - pos;
    int rc = smtpuv_proto_feed(p, data + pos, len);
    pos += len;
    CHECK(rc == 0 || rc == SMTPUV_EPROTO || rc == SMTPUV_EINJECT);
    if (err != 0)
      CHECK(rc == err); /* sticky */
    if (rc != 0) {
      err = rc;
      CHECK(smtpuv_proto_error(p) == rc);
      CHECK(smtpuv_proto_error_text(p)[0] != '\0');
      CHECK(smtpuv_proto_state(p) == SMTPUV_STATE_FINISHED);
    }
    /* bounded: at most the unpopped replies (one per command issued) and
       one reply being received, each within the limit */
    CHECK(p->in.end - p->in.start <=
          (p->ring_count + 2) * (size_t)SMTPUV_MAX_REPLY_SIZE);
    if (flags & 4) {
      rc = pop_all(p);
      CHECK(rc == err);
      CHECK(p->in.end - p->in.start <= SMTPUV_MAX_REPLY_SIZE);
    }
  }
  CHECK(pop_all(p) == err);
  if (err != 0)
    CHECK(smtpuv_proto_noop(p) == err);
  smtpuv_proto_free(p);
  return 0;
}

/* SPDX-License-Identifier: MIT */
/* libFuzzer target: SCRAM-SHA-1/-256 against hostile server messages.
 *
 * Input: one flags byte, then "server-first \n server-final" (the first
 * '\n' splits them; neither may legally contain one). Flags:
 *   bit 0  SCRAM-SHA-256 (else SCRAM-SHA-1)
 *   bit 1  with an authorization id that needs escaping ("ad,m=n")
 *   bit 2  through a whole AUTH session on the protocol core: the messages
 *          travel base64-encoded in "334" replies (else the mechanism API)
 *   bit 3  session only: the messages are put on the 334 lines as they are,
 *          unencoded, to exercise the strict base64 decoder
 *   bit 4  session only: the server ends with "235" (else "535")
 * The client nonce is fixed (test hook) to the RFC 5802 example's, so the
 * seed corpus can hold complete, valid exchanges.
 *
 * Run: see tests/fuzz/CMakeLists.txt; seeds in tests/fuzz/scram/. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth_int.h"
#include "auth/scram_int.h"
#include "smtpuv.h"

#define NONCE "fyko+d2lbbFgONRv9qkxdawL"

/* The password may appear in an error text only when the server itself put
   it there (its texts are quoted): the check is off for such inputs. */
static int input_has_password;

/* PBKDF2 with a large count makes one run take up to a second; the parser
   and the checks are what is fuzzed, so skip inputs that would accept a
   count above 8192 ("i=" followed by more than four digits or > 8192). */
static int too_slow(const uint8_t *p, size_t n) {
  for (size_t i = 0; i + 2 < n; i++) {
    if (p[i] != 'i' || p[i + 1] != '=')
      continue;
    unsigned long v = 0;
    size_t d = 0;
    while (i + 2 + d < n && p[i + 2 + d] >= '0' && p[i + 2 + d] <= '9') {
      v = v * 10 + (unsigned long)(p[i + 2 + d] - '0');
      if (++d > 5)
        return 1;
    }
    if (v > 8192)
      return 1;
  }
  return 0;
}

static smtpuv_auth *make(unsigned flags) {
  smtpuv_auth *a = NULL;
  const char *az = (flags & 2) ? "ad,m=n" : NULL;
  int r = (flags & 1) ? smtpuv_auth_scram_sha256_new(NULL, az, "user",
                                                     "pencil", &a)
                      : smtpuv_auth_scram_sha1_new(NULL, az, "user", "pencil",
                                                   &a);
  if (r != 0)
    abort();
  if (smtpuv__scram_set_nonce(a, NONCE) != 0)
    abort();
  return a;
}

static void mechanism_level(unsigned flags, const uint8_t *first,
                            size_t flen, const uint8_t *final, size_t fnlen) {
  smtpuv_auth *a = make(flags);
  const unsigned char *r;
  size_t n;
  if (smtpuv_auth_begin(a, 0, &r, &n) != 0 || r == NULL)
    abort();
  int rc = smtpuv_auth_step(a, first, flen, &r, &n);
  if (rc == 0) {
    if (r == NULL)
      abort();
    volatile unsigned char sink = 0;
    for (size_t i = 0; i < n; i++)
      sink ^= r[i]; /* ASan: the response is really n bytes */
    (void)sink;
    rc = smtpuv_auth_step(a, final, fnlen, &r, &n);
    if (rc == 0 && n != 0)
      abort(); /* the answer to a server-final is empty */
  }
  int ok = smtpuv_auth_success(a);
  /* success only after a verified server signature */
  if (ok == 0 && rc != 0)
    abort();
  const char *err = smtpuv_auth_error_text(a);
  if (!input_has_password && strstr(err, "pencil") != NULL)
    abort(); /* never the password in a text */
  smtpuv_auth_free(a);
}

static void feed(smtpuv_proto *p, smtpuv_auth_session *s, const char *line,
                 size_t len, int *last) {
  smtpuv_reply rep;
  if (smtpuv_proto_feed(p, line, len) != 0)
    return;
  while (smtpuv_proto_next_reply(p, &rep) == 1)
    if (rep.command == SMTPUV_CMD_AUTH)
      *last = smtpuv_auth_session_on_reply(s, &rep);
}

static void drain(smtpuv_proto *p) {
  const void *ptr;
  size_t len;
  for (int i = 0; i < 64; i++) {
    smtpuv_proto_outgoing(p, &ptr, &len);
    if (len == 0)
      break;
    smtpuv_proto_consumed(p, len);
  }
}

/* "334 " + (base64 of | raw) msg + CRLF; NULL when it cannot be a line */
static char *challenge_line(unsigned flags, const uint8_t *m, size_t len,
                            size_t *out_len) {
  char *b64 = NULL;
  const char *text;
  size_t tlen;
  if (flags & 8) {
    if (memchr(m, '\r', len) != NULL || memchr(m, '\n', len) != NULL)
      return NULL;
    text = (const char *)m;
    tlen = len;
  } else {
    if (smtpuv__b64_encode(smtpuv_mem_default(), m, len, &b64) != 0)
      return NULL;
    text = b64;
    tlen = strlen(b64);
  }
  char *line = malloc(tlen + 7);
  if (line == NULL)
    abort();
  memcpy(line, "334 ", 4);
  memcpy(line + 4, text, tlen);
  memcpy(line + 4 + tlen, "\r\n", 3);
  *out_len = tlen + 6;
  smtpuv__secret_free(smtpuv_mem_default(), b64);
  return line;
}

static void session_level(unsigned flags, const uint8_t *first, size_t flen,
                          const uint8_t *final, size_t fnlen) {
  static const char greet[] = "220 mx ESMTP\r\n";
  static const char ehlo[] =
      "250-mx\r\n250-AUTH SCRAM-SHA-1 SCRAM-SHA-256\r\n250 PIPELINING\r\n";
  smtpuv_proto *p = NULL;
  smtpuv_auth_session *s = NULL;
  smtpuv_auth *a = make(flags);
  int last = SMTPUV_AUTH_PENDING;
  if (smtpuv_proto_new(NULL, &p) != 0)
    abort();
  feed(p, NULL, greet, sizeof(greet) - 1, &last);
  if (smtpuv_proto_ehlo(p, "c.example") != 0)
    abort();
  drain(p);
  feed(p, NULL, ehlo, sizeof(ehlo) - 1, &last);
  if (smtpuv_auth_session_new(NULL, p, a, NULL, NULL, &s) != 0)
    abort();
  if (smtpuv_auth_session_start(s) != SMTPUV_AUTH_PENDING)
    abort();
  drain(p);
  const uint8_t *msgs[2] = {first, final};
  size_t lens[2] = {flen, fnlen};
  for (int i = 0; i < 2 && last == SMTPUV_AUTH_PENDING; i++) {
    size_t llen;
    char *line = challenge_line(flags, msgs[i], lens[i], &llen);
    if (line == NULL)
      break;
    feed(p, s, line, llen, &last);
    free(line);
    drain(p);
  }
  if (last == SMTPUV_AUTH_PENDING) {
    const char *end = (flags & 16) ? "235 2.7.0 ok\r\n" : "535 5.7.8 no\r\n";
    feed(p, s, end, strlen(end), &last);
  }
  int st = smtpuv_auth_session_status(s);
  if (st == 0 && last != 0)
    abort();
  const char *texts[3] = {smtpuv_auth_session_error_text(s),
                          smtpuv_auth_session_reply_text(s),
                          smtpuv_auth_error_text(a)};
  for (int i = 0; i < 3; i++)
    if (!input_has_password && strstr(texts[i], "pencil") != NULL)
      abort();
  smtpuv_auth_session_free(s);
  smtpuv_auth_free(a);
  smtpuv_proto_free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > 4096)
    return 0;
  unsigned flags = data[0];
  const uint8_t *body = data + 1;
  size_t blen = size - 1;
  if (too_slow(body, blen))
    return 0;
  /* raw lines (bit 3) may carry it base64-encoded: no check there */
  input_has_password = (flags & 12) == 12;
  for (size_t i = 0; i + 6 <= blen && !input_has_password; i++)
    input_has_password = memcmp(body + i, "pencil", 6) == 0;
  const uint8_t *nl = memchr(body, '\n', blen);
  size_t flen = nl != NULL ? (size_t)(nl - body) : blen;
  const uint8_t *final = nl != NULL ? nl + 1 : body + blen;
  size_t fnlen = blen - flen - (nl != NULL ? 1 : 0);
  if (flags & 4)
    session_level(flags, body, flen, final, fnlen);
  else
    mechanism_level(flags, body, flen, final, fnlen);
  return 0;
}

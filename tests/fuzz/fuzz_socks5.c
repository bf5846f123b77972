/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the SOCKS5 handshake (smtpuv/socks5.h) against any
 * proxy bytes. The input:
 *
 *   byte 0   bit 0: give credentials (username/password offered);
 *            bits 1-2: destination (name, IPv4, IPv6, [IPv6])
 *   then     chunks <len><bytes>: proxy bytes fed as one feed() each;
 *            a len byte of 0 consumes all pending output instead, and
 *            0xFF consumes 5 bytes of it.
 *
 * Checked after every step: feed() reports no more bytes used than given
 * and, unless it succeeded, all of them or (on error) at most all; errors
 * are sticky and leave the state FAILED; success means state DONE, a
 * bound address, and every later feed refused; the output never exceeds
 * what the three requests need.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtpuv.h"

#define CHECK(x)                                                               \
  do {                                                                         \
    if (!(x))                                                                  \
      abort();                                                                 \
  } while (0)

static const char *const hosts[] = {"mx.example.org", "192.0.2.25",
                                    "2001:db8::25", "[::1]"};

static int proxy_error(int rc) { return rc <= -220 && rc >= -230; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  smtpuv_socks5_params sp = SMTPUV_SOCKS5_PARAMS_INIT;
  sp.host = hosts[(data[0] >> 1) & 3];
  sp.port = 25;
  if (data[0] & 1) {
    sp.username = "user";
    sp.password = "secret";
  }
  smtpuv_socks5 *s;
  if (smtpuv_socks5_new(NULL, &sp, &s) != 0)
    return 0;
  int err = 0, done = 0;
  size_t pos = 1;
  while (pos < size) {
    size_t n = data[pos++];
    if (n == 0 || n == 0xFF) {
      const void *ptr;
      size_t len;
      smtpuv_socks5_outgoing(s, &ptr, &len);
      CHECK(len <= 4 + 3 + 2 * 255 + 7 + 255);
      smtpuv_socks5_consumed(s, n == 0 ? len : 5);
      continue;
    }
    if (n > size - pos)
      n = size - pos;
    size_t used = 12345;
    int rc = smtpuv_socks5_feed(s, data + pos, n, &used);
    pos += n;
    CHECK(used <= n);
    if (err != 0) {
      CHECK(rc == err && used == 0);
      continue;
    }
    if (done) {
      CHECK(rc == SMTPUV_ESTATE && used == 0);
      continue;
    }
    if (rc == 0) {
      CHECK(used == n);
      CHECK(smtpuv_socks5_state_of(s) != SMTPUV_SOCKS5_DONE &&
            smtpuv_socks5_state_of(s) != SMTPUV_SOCKS5_FAILED);
    } else if (rc == 1) {
      done = 1;
      CHECK(used >= 1);
      CHECK(smtpuv_socks5_state_of(s) == SMTPUV_SOCKS5_DONE);
      CHECK(smtpuv_socks5_reply_code(s) == 0);
      const char *addr;
      uint16_t port;
      CHECK(smtpuv_socks5_bound(s, &addr, &port) == 0);
      CHECK(strlen(addr) <= 255);
    } else {
      CHECK(proxy_error(rc));
      err = rc;
      CHECK(smtpuv_socks5_state_of(s) == SMTPUV_SOCKS5_FAILED);
      CHECK(smtpuv_socks5_error(s) == rc);
      CHECK(smtpuv_socks5_error_text(s)[0] != '\0');
    }
  }
  smtpuv_socks5_free(s);
  return 0;
}

/* SPDX-License-Identifier: MIT */
/* The DATA/BDAT body encoder (src/protocol/encoder.c) and the content
 * checks smtpuv_is_8bit / smtpuv_needs_binarymime.
 *
 * Byte-exact cases, then random bodies in random chunkings compared with a
 * byte-by-byte reference written below, then guard-page runs that catch any
 * read past the input or write past the promised output bound.
 * SMTPUV_TEST_SEED=<n> reruns the random part with another seed. */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS beside _POSIX_C_SOURCE */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "protocol/encoder.h"
#include "smtpuv/protocol.h"

/* ------------------------------------------------------------------------ */
/* Reference implementations: one byte at a time, whole body at once         */
/* ------------------------------------------------------------------------ */

/* The complete encoded body (terminator included); `out` holds
   2 * len + 5 bytes. */
static size_t ref_encode(const unsigned char *in, size_t len, int dot,
                         unsigned char *out) {
  size_t o = 0;
  int line_start = 1;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = in[i];
    if (c == '\r' || c == '\n') {
      out[o++] = '\r';
      out[o++] = '\n';
      if (c == '\r' && i + 1 < len && in[i + 1] == '\n')
        i++;
      line_start = 1;
      continue;
    }
    if (line_start && dot && c == '.')
      out[o++] = '.';
    out[o++] = c;
    line_start = 0;
  }
  if (len > 0 && !line_start) {
    out[o++] = '\r';
    out[o++] = '\n';
  }
  if (dot) {
    out[o++] = '.';
    out[o++] = '\r';
    out[o++] = '\n';
  }
  return o;
}

static int ref_is_8bit(const unsigned char *p, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (p[i] >= 0x80)
      return 1;
  return 0;
}

static int ref_needs_binarymime(const unsigned char *p, size_t len) {
  size_t line = 0;
  for (size_t i = 0; i < len; i++) {
    if (p[i] == 0)
      return 1;
    if (p[i] == '\r' || p[i] == '\n') {
      line = 0;
    } else if (++line > 998) {
      return 1;
    }
  }
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Driving the encoder                                                       */
/* ------------------------------------------------------------------------ */

/* Encode one chunk into a scratch buffer of exactly SMTPUV_ENCODE_BOUND(len)
   bytes (so ASan sees any overflow), checking measure() first and that it
   left the state alone. Appends to out + *olen. */
static void encode_chunk(smtpuv_encoder *e, const unsigned char *in,
                         size_t len, unsigned char *out, size_t *olen) {
  smtpuv_encoder before = *e;
  size_t m = smtpuv__encoder_measure(e, (const char *)in, len);
  assert_memory_equal(&before, e, sizeof before);
  size_t bound = SMTPUV_ENCODE_BOUND(len);
  unsigned char *scratch = malloc(bound ? bound : 1);
  assert_non_null(scratch);
  size_t n = smtpuv__encoder_encode(e, (const char *)in, len, (char *)scratch);
  assert_true(n <= bound);
  assert_int_equal(m, n);
  memcpy(out + *olen, scratch, n);
  *olen += n;
  free(scratch);
}

static size_t finish_into(smtpuv_encoder *e, unsigned char *out, size_t olen) {
  char fin[SMTPUV_ENCODE_FINISH_BOUND];
  size_t n = smtpuv__encoder_finish(e, fin);
  assert_true(n <= SMTPUV_ENCODE_FINISH_BOUND);
  memcpy(out + olen, fin, n);
  return olen + n;
}

/* Encode `in` cut at the given split points (offsets, ascending, may
   repeat: a repeated offset is a zero-length chunk) and finish. */
static size_t encode_split(const unsigned char *in, size_t len, int dot,
                           const size_t *cuts, size_t ncuts,
                           unsigned char *out) {
  smtpuv_encoder e;
  size_t olen = 0, pos = 0;
  smtpuv__encoder_init(&e, dot);
  for (size_t i = 0; i < ncuts; i++) {
    encode_chunk(&e, in + pos, cuts[i] - pos, out, &olen);
    pos = cuts[i];
  }
  encode_chunk(&e, in + pos, len - pos, out, &olen);
  return finish_into(&e, out, olen);
}

/* ------------------------------------------------------------------------ */
/* Byte-exact cases                                                          */
/* ------------------------------------------------------------------------ */

/* `in` cut at the '|' characters (which are not part of the body). */
static void check_case(const char *spec, int dot, const char *expect) {
  size_t slen = strlen(spec);
  unsigned char *in = malloc(slen + 1);
  unsigned char *out = malloc(2 * slen + 8);
  size_t cuts[32], ncuts = 0, len = 0;
  assert_non_null(in);
  assert_non_null(out);
  for (size_t i = 0; i < slen; i++) {
    if (spec[i] == '|') {
      assert_true(ncuts < 32);
      cuts[ncuts++] = len;
    } else {
      in[len++] = (unsigned char)spec[i];
    }
  }
  size_t n = encode_split(in, len, dot, cuts, ncuts, out);
  if (n != strlen(expect) || memcmp(out, expect, n) != 0) {
    print_error("case \"%s\" (%s): got %zu bytes, expected %zu\n", spec,
                dot ? "DATA" : "BDAT", n, strlen(expect));
  }
  assert_int_equal(n, strlen(expect));
  assert_memory_equal(out, expect, n);
  /* the same body unsplit and in 1-byte chunks gives the same bytes */
  size_t one[512];
  assert_true(len < 512);
  for (size_t i = 1; i < len; i++)
    one[i - 1] = i;
  assert_int_equal(encode_split(in, len, dot, NULL, 0, out), n);
  assert_memory_equal(out, expect, n);
  assert_int_equal(encode_split(in, len, dot, one, len ? len - 1 : 0, out), n);
  assert_memory_equal(out, expect, n);
  free(in);
  free(out);
}

static void test_data_exact(void **state) {
  (void)state;
  check_case("", 1, ".\r\n");
  check_case("a", 1, "a\r\n.\r\n");
  check_case("a\n", 1, "a\r\n.\r\n");
  check_case("a\r", 1, "a\r\n.\r\n");
  check_case("a\r\n", 1, "a\r\n.\r\n");
  check_case("\n", 1, "\r\n.\r\n");
  check_case("\r", 1, "\r\n.\r\n");
  check_case("\r\n", 1, "\r\n.\r\n");
  check_case(".", 1, "..\r\n.\r\n");
  check_case(".\n", 1, "..\r\n.\r\n");
  check_case("..", 1, "...\r\n.\r\n");
  check_case("...\r\n", 1, "....\r\n.\r\n");
  check_case("\n.\n", 1, "\r\n..\r\n.\r\n");
  check_case("\r.\r", 1, "\r\n..\r\n.\r\n");
  check_case("x\r\r\n", 1, "x\r\n\r\n.\r\n");
  check_case("x\n\r", 1, "x\r\n\r\n.\r\n");
  check_case("x\n\n", 1, "x\r\n\r\n.\r\n");
  check_case("a\r\n.\r\nb", 1, "a\r\n..\r\nb\r\n.\r\n");
  check_case("a\r\n.\r\n", 1, "a\r\n..\r\n.\r\n");
  check_case("a\r.b\n.c", 1, "a\r\n..b\r\n..c\r\n.\r\n");
  check_case("a.b\r\nc.\r\n", 1, "a.b\r\nc.\r\n.\r\n");
  check_case("\r\n\r\n.", 1, "\r\n\r\n..\r\n.\r\n");
  check_case("\r\r\r", 1, "\r\n\r\n\r\n.\r\n");
  check_case("\n\r\n\r", 1, "\r\n\r\n\r\n.\r\n");
  check_case("\x80\xff\x01z", 1, "\x80\xff\x01z\r\n.\r\n");
}

static void test_data_split(void **state) {
  (void)state;
  /* CR at the end of a chunk, its LF at the start of the next: one CRLF */
  check_case("a\r|\nb", 1, "a\r\nb\r\n.\r\n");
  check_case("a\r|\n|.b", 1, "a\r\n..b\r\n.\r\n");
  check_case("a\r|\n.b", 1, "a\r\n..b\r\n.\r\n");
  check_case("a\r||\n.b", 1, "a\r\n..b\r\n.\r\n"); /* empty chunk between */
  check_case("a\r|\r\n", 1, "a\r\n\r\n.\r\n");
  check_case("a\r|\r|\n", 1, "a\r\n\r\n.\r\n");
  check_case("a\r|\n|\n", 1, "a\r\n\r\n.\r\n");
  check_case("a\r|b", 1, "a\r\nb\r\n.\r\n");
  check_case("a\r|.", 1, "a\r\n..\r\n.\r\n");
  check_case("a\r\n|.", 1, "a\r\n..\r\n.\r\n");
  check_case("a\n|.\n|.", 1, "a\r\n..\r\n..\r\n.\r\n");
  check_case("a|\n", 1, "a\r\n.\r\n");
  check_case(".|.|.", 1, "....\r\n.\r\n");
  check_case("|.", 1, "..\r\n.\r\n");
  check_case("a\r|", 1, "a\r\n.\r\n"); /* finish after a CR */
  check_case("a|\r", 1, "a\r\n.\r\n");
  check_case("\r|\n|\r|\n", 1, "\r\n\r\n.\r\n");
}

static void test_bdat_exact(void **state) {
  (void)state;
  check_case("", 0, "");
  check_case("a", 0, "a\r\n");
  check_case("a\n", 0, "a\r\n");
  check_case("a\r", 0, "a\r\n");
  check_case("a\r\n", 0, "a\r\n");
  check_case(".", 0, ".\r\n");
  check_case(".\n", 0, ".\r\n");
  check_case("\n.\n", 0, "\r\n.\r\n");
  check_case("\r.\r", 0, "\r\n.\r\n");
  check_case("x\r\r\n", 0, "x\r\n\r\n");
  check_case("a\r\n.\r\nb", 0, "a\r\n.\r\nb\r\n");
  check_case("a\r|\n.b", 0, "a\r\n.b\r\n");
  check_case("a\r|\r\n", 0, "a\r\n\r\n");
  check_case("a\r|", 0, "a\r\n");
}

/* The state after each call: at_line_start, and the chunk's output is
   final (nothing held back for the next call). */
static void test_output_final_per_call(void **state) {
  (void)state;
  smtpuv_encoder e;
  char out[64];
  smtpuv__encoder_init(&e, 1);
  assert_int_equal(smtpuv__encoder_encode(&e, "ab\r", 3, out), 4);
  assert_memory_equal(out, "ab\r\n", 4);
  assert_int_equal(smtpuv__encoder_measure(&e, "\n", 1), 0);
  assert_int_equal(smtpuv__encoder_measure(&e, "\r", 1), 2);
  assert_int_equal(smtpuv__encoder_measure(&e, ".", 1), 2);
  assert_int_equal(smtpuv__encoder_encode(&e, "\n", 1, out), 0);
  /* the skipped LF is forgotten: a second LF is a line of its own */
  assert_int_equal(smtpuv__encoder_encode(&e, "\n", 1, out), 2);
  assert_memory_equal(out, "\r\n", 2);
  assert_int_equal(smtpuv__encoder_finish(&e, out), 3);
  assert_memory_equal(out, ".\r\n", 3);
}

/* ------------------------------------------------------------------------ */
/* Randomised comparison with the reference                                  */
/* ------------------------------------------------------------------------ */

static uint64_t rng_state;

static uint64_t rng(void) {
  /* splitmix64 */
  uint64_t z = (rng_state += UINT64_C(0x9e3779b97f4a7c15));
  z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
  return z ^ (z >> 31);
}

static size_t rnd(size_t n) { return n ? (size_t)(rng() % n) : 0; }

static uint64_t seed_from_env(void) {
  const char *s = getenv("SMTPUV_TEST_SEED");
  uint64_t seed = s ? strtoull(s, NULL, 0) : UINT64_C(20240601);
  return seed;
}

/* A body whose "special" bytes (CR, LF, '.', 0x80, NUL) have a density
   chosen per body, so that both short lines and long runs appear. */
static void random_body(unsigned char *b, size_t len) {
  unsigned density = (unsigned)(1 + rnd(4) * rnd(40)); /* 1 = all special */
  for (size_t i = 0; i < len; i++) {
    if (rnd(density) != 0) {
      b[i] = (unsigned char)('a' + rnd(3));
      continue;
    }
    switch (rnd(10)) {
    case 0: case 1: case 2: b[i] = '\r'; break;
    case 3: case 4: case 5: b[i] = '\n'; break;
    case 6: case 7: b[i] = '.'; break;
    case 8: b[i] = (unsigned char)(0x80 + rnd(128)); break;
    default: b[i] = (unsigned char)rnd(256); break;
    }
  }
}

/* Cut points for one of several chunking styles. Returns the count. */
static size_t random_cuts(const unsigned char *b, size_t len, int style,
                          size_t *cuts, size_t max) {
  size_t n = 0, pos = 0;
  switch (style) {
  case 0: /* one call */
    return 0;
  case 1: /* 1-byte chunks */
    for (pos = 1; pos < len && n < max; pos++)
      cuts[n++] = pos;
    return n;
  case 2: /* random sizes 0..64, zero-length chunks included */
    for (;;) {
      pos += rnd(65);
      if (pos >= len || n >= max)
        return n;
      cuts[n++] = pos;
    }
  case 3: /* every CRLF split between its CR and LF, plus a few random */
  default:
    for (pos = 0; pos + 1 < len && n < max; pos++) {
      if ((b[pos] == '\r' && rnd(4) != 0) || rnd(50) == 0)
        cuts[n++] = pos + 1;
    }
    return n;
  }
}

static void compare_one(const unsigned char *b, size_t len, int dot,
                        int style, size_t *cuts, unsigned char *exp,
                        unsigned char *got, size_t iter) {
  size_t ncuts = random_cuts(b, len, style, cuts, len + 1);
  size_t elen = ref_encode(b, len, dot, exp);
  size_t glen = encode_split(b, len, dot, cuts, ncuts, got);
  if (glen != elen || memcmp(exp, got, elen) != 0) {
    size_t i = 0;
    while (i < elen && i < glen && exp[i] == got[i])
      i++;
    print_error("mismatch: body %zu (len %zu) %s chunking %d: %zu vs %zu "
                "bytes, first difference at %zu\n",
                iter, len, dot ? "DATA" : "BDAT", style, glen, elen, i);
    fail();
  }
}

static void test_random_vs_reference(void **state) {
  (void)state;
  uint64_t seed = seed_from_env();
  enum { BODIES = 12000, MAXLEN = 4096, LARGE = 1 << 20 };
  unsigned char *b = malloc(LARGE);
  unsigned char *exp = malloc(2 * LARGE + 8);
  unsigned char *got = malloc(2 * LARGE + 8);
  size_t *cuts = malloc((LARGE + 1) * sizeof *cuts);
  assert_non_null(b);
  assert_non_null(exp);
  assert_non_null(got);
  assert_non_null(cuts);
  rng_state = seed;
  print_message("random encoder test: seed %llu (SMTPUV_TEST_SEED)\n",
                (unsigned long long)seed);
  for (size_t it = 0; it < BODIES; it++) {
    size_t len = rnd(4) == 0 ? rnd(16) : rnd(MAXLEN + 1);
    random_body(b, len);
    for (int dot = 0; dot <= 1; dot++) {
      compare_one(b, len, dot, (int)rnd(4), cuts, exp, got, it);
      if (it % 4 == 0)
        compare_one(b, len, dot, (int)(it / 4 % 4), cuts, exp, got, it);
    }
  }
  /* a few large bodies */
  for (size_t it = 0; it < 4; it++) {
    size_t len = LARGE - rnd(4096);
    random_body(b, len);
    for (int dot = 0; dot <= 1; dot++)
      compare_one(b, len, dot, (int)(2 + it % 2), cuts, exp, got, BODIES + it);
  }
  free(b);
  free(exp);
  free(got);
  free(cuts);
}

/* ------------------------------------------------------------------------ */
/* Guard pages: input ends right before a PROT_NONE page                     */
/* ------------------------------------------------------------------------ */

typedef struct guarded {
  unsigned char *base;
  size_t size; /* usable bytes, then one PROT_NONE page */
  size_t map;
} guarded;

static void guarded_alloc(guarded *g, size_t usable) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  size_t pages = (usable + page - 1) / page;
  g->size = pages * page;
  g->map = g->size + page;
  g->base = mmap(NULL, g->map, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  assert_true(g->base != MAP_FAILED);
  assert_int_equal(mprotect(g->base + g->size, page, PROT_NONE), 0);
}

static void guarded_free(guarded *g) { munmap(g->base, g->map); }

static void test_guard_page(void **state) {
  (void)state;
  guarded gin, gout;
  unsigned char src[600], exp[2 * 600 + 8];
  guarded_alloc(&gin, 4096);
  guarded_alloc(&gout, 2 * 4096);
  rng_state = seed_from_env() ^ 0x5555;
  for (size_t len = 0; len <= 300; len++) {
    for (int round = 0; round < 6; round++) {
      random_body(src, len);
      if (round == 0 && len > 0)
        src[len - 1] = '\r';
      if (round == 1)
        memset(src, 'a', len); /* long run: the word loops reach the end */
      unsigned char *in = gin.base + gin.size - len;
      memcpy(in, src, len);
      for (int dot = 0; dot <= 1; dot++) {
        smtpuv_encoder e;
        smtpuv__encoder_init(&e, dot);
        size_t bound = SMTPUV_ENCODE_BOUND(len);
        unsigned char *out = gout.base + gout.size - bound;
        size_t m = smtpuv__encoder_measure(&e, (const char *)in, len);
        size_t n = smtpuv__encoder_encode(&e, (const char *)in, len,
                                          (char *)out);
        assert_int_equal(m, n);
        size_t elen = ref_encode(src, len, dot, exp);
        char fin[SMTPUV_ENCODE_FINISH_BOUND];
        size_t f = smtpuv__encoder_finish(&e, fin);
        assert_int_equal(n + f, elen);
        assert_memory_equal(out, exp, n);
        assert_memory_equal(fin, exp + n, f);
      }
      assert_int_equal(smtpuv_is_8bit(in, len), ref_is_8bit(src, len));
      assert_int_equal(smtpuv_needs_binarymime(in, len),
                       ref_needs_binarymime(src, len));
    }
  }
  /* a long line right before the guard page */
  for (size_t len = 990; len <= 1010; len++) {
    unsigned char *in = gin.base + gin.size - len;
    memset(in, 'x', len);
    assert_int_equal(smtpuv_needs_binarymime(in, len), len > 998);
    assert_int_equal(smtpuv_is_8bit(in, len), 0);
    in[len - 1] = 0xc3;
    assert_int_equal(smtpuv_is_8bit(in, len), 1);
  }
  guarded_free(&gin);
  guarded_free(&gout);
}

/* ------------------------------------------------------------------------ */
/* smtpuv_is_8bit / smtpuv_needs_binarymime                                 */
/* ------------------------------------------------------------------------ */

static void test_is_8bit_alignments(void **state) {
  (void)state;
  unsigned char buf[160 + 16 + 8]; /* past the 64-byte SIMD loop twice */
  size_t checked = 0;
  for (size_t align = 0; align < 16; align++) {
    for (size_t len = 0; len <= 160; len++) {
      unsigned char *p = buf + align;
      for (size_t i = 0; i < len; i++)
        p[i] = (unsigned char)(1 + (i * 37 + align) % 127);
      /* high bytes around the buffer must not count */
      memset(buf, 0xff, align);
      memset(p + len, 0xff, sizeof buf - align - len);
      assert_int_equal(smtpuv_is_8bit(p, len), 0);
      for (size_t at = 0; at < len; at++) {
        for (unsigned v = 0x80; v <= 0xff; v += 0x7f) {
          unsigned char old = p[at];
          p[at] = (unsigned char)v;
          assert_int_equal(smtpuv_is_8bit(p, len), 1);
          assert_int_equal(ref_is_8bit(p, len), 1);
          p[at] = old;
          checked++;
        }
      }
    }
  }
  assert_true(checked > 30000);
  /* random contents against the reference */
  rng_state = seed_from_env() ^ 0x8b17;
  for (size_t it = 0; it < 20000; it++) {
    size_t align = rnd(16), len = rnd(161);
    for (size_t i = 0; i < sizeof buf; i++)
      buf[i] = (unsigned char)(rnd(40) == 0 ? 0x80 | rnd(128) : rnd(128));
    assert_int_equal(smtpuv_is_8bit(buf + align, len),
                     ref_is_8bit(buf + align, len));
  }
}

static void test_needs_binarymime(void **state) {
  (void)state;
  unsigned char buf[2100];
  /* NUL at every position, every alignment, lengths 0..64 */
  for (size_t align = 0; align < 16; align++) {
    for (size_t len = 0; len <= 64; len++) {
      unsigned char *p = buf + align;
      for (size_t i = 0; i < len; i++)
        p[i] = (unsigned char)("ab\r\nc.\xe9"[i % 7]);
      memset(buf, 0, align);
      memset(p + len, 0, 64 - len + 16 - align);
      assert_int_equal(smtpuv_needs_binarymime(p, len), 0);
      for (size_t at = 0; at < len; at++) {
        unsigned char old = p[at];
        p[at] = 0;
        assert_int_equal(smtpuv_needs_binarymime(p, len), 1);
        p[at] = old;
      }
    }
  }
  /* line lengths around 998 between every kind of line ending */
  static const char *const ends[] = {"\r\n", "\n", "\r", "\n\r", ""};
  for (size_t align = 0; align < 16; align++) {
    for (size_t k = 0; k < 5; k++) {
      for (size_t line = 995; line <= 1001; line++) {
        unsigned char *p = buf + align;
        size_t n = 0;
        memcpy(p, "ab", 2);
        n += 2;
        memcpy(p + n, ends[k], strlen(ends[k]));
        n += strlen(ends[k]);
        memset(p + n, 'z', line);
        n += line;
        memcpy(p + n, ends[k], strlen(ends[k]));
        n += strlen(ends[k]);
        int expect = k == 4 ? line + 2 > 998 : line > 998;
        assert_int_equal(ref_needs_binarymime(p, n), expect);
        assert_int_equal(smtpuv_needs_binarymime(p, n), expect);
      }
    }
  }
  /* random contents against the reference */
  rng_state = seed_from_env() ^ 0xb1;
  for (size_t it = 0; it < 3000; it++) {
    size_t align = rnd(16), len = rnd(2050);
    unsigned density = (unsigned)(1 + rnd(1500));
    for (size_t i = 0; i < sizeof buf; i++) {
      unsigned r = (unsigned)rnd(density * 3);
      buf[i] = r == 0 ? '\r' : r == 1 ? '\n' : r == 2 ? 0 : 'q';
    }
    assert_int_equal(smtpuv_needs_binarymime(buf + align, len),
                     ref_needs_binarymime(buf + align, len));
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_data_exact),
      cmocka_unit_test(test_data_split),
      cmocka_unit_test(test_bdat_exact),
      cmocka_unit_test(test_output_final_per_call),
      cmocka_unit_test(test_random_vs_reference),
      cmocka_unit_test(test_guard_page),
      cmocka_unit_test(test_is_8bit_alignments),
      cmocka_unit_test(test_needs_binarymime),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: MIT */
/* The DATA/BDAT body encoder (see encoder.h) and the 8-bit / BINARYMIME
 * content checks of protocol.h.
 *
 * Most of a body passes unchanged: a CRLF followed by anything but '.'
 * stays as it is. So the encoder looks at byte pairs (i, i + 1) and stops
 * only where the output differs from the input: a CR not followed by LF and
 * an LF not preceded by CR (both are "CR at i" != "LF at i + 1"), and in DATA
 * mode a '.' after an LF. Between such points it copies while it scans, 64
 * bytes at a time (AVX2 when the CPU has it, checked at run time, else
 * SSE2), or 8 at a time in a uint64_t where there is no SSE2; the rare
 * points are handled one byte at a time. Loads never reach past the end of
 * the input; stores stay inside SMTPUV_ENCODE_BOUND(len) but may run ahead
 * of the returned count.
 *
 * The 64-byte loops prefetch a few pages ahead: a single stream of loads
 * with work between them does not keep enough cache misses in flight to
 * read memory as fast as memcpy does. A prefetch never faults, and the
 * address is formed as an integer, so going past the input is harmless. */
#include <stdint.h>
#include <string.h>

/* SMTPUV_ENCODER_NO_SIMD: portable 8-byte words only (for tests);
   SMTPUV_ENCODER_NO_AVX2: no AVX2 even where the CPU has it. */
#if defined(__SSE2__) && !defined(SMTPUV_ENCODER_NO_SIMD)
#include <emmintrin.h>
#define SMTPUV_ENC_SSE2 1
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) &&       \
    !defined(SMTPUV_ENCODER_NO_AVX2)
#include <immintrin.h>
#define SMTPUV_ENC_AVX2 1 /* chosen at run time */
#endif
#endif

#include "protocol/encoder.h"
#include "smtpuv/protocol.h"

#if defined(__GNUC__) || defined(__clang__)
#define ENC_INLINE static inline __attribute__((always_inline))
#else
#define ENC_INLINE static inline
#endif

#define ONES UINT64_C(0x0101010101010101)
#define HIGHS UINT64_C(0x8080808080808080)
#define LOWS UINT64_C(0x7f7f7f7f7f7f7f7f)

ENC_INLINE uint64_t load64(const unsigned char *p) {
  uint64_t w;
  memcpy(&w, p, sizeof w);
  return w;
}

/* 0x80 in every byte of `w` equal to the byte in every byte of `pat`,
   0 elsewhere. Exact (no carries between bytes). */
ENC_INLINE uint64_t eq_bytes(uint64_t w, uint64_t pat) {
  uint64_t x = w ^ pat;
  return ~(((x & LOWS) + LOWS) | x | LOWS);
}

/* Index of the first (lowest-addressed) flagged byte of a non-zero mask. */
ENC_INLINE size_t first_byte(uint64_t mask) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  return (size_t)__builtin_clzll(mask) / 8;
#elif defined(__GNUC__) || defined(__clang__)
  return (size_t)__builtin_ctzll(mask) / 8;
#else
  size_t i = 0;
  while (!(mask & 0x80u)) {
    mask >>= 8;
    i++;
  }
  return i;
#endif
}

/* First CR or LF in [p, end), or end. */
ENC_INLINE const unsigned char *find_eol(const unsigned char *p,
                                         const unsigned char *end) {
#ifdef SMTPUV_ENC_SSE2
  const __m128i cr = _mm_set1_epi8('\r');
  const __m128i lf = _mm_set1_epi8('\n');
  while (end - p >= 16) {
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
    unsigned m = (unsigned)_mm_movemask_epi8(
        _mm_or_si128(_mm_cmpeq_epi8(v, cr), _mm_cmpeq_epi8(v, lf)));
    if (m != 0)
      return p + __builtin_ctz(m);
    p += 16;
  }
#endif
  while (end - p >= 8) {
    uint64_t w = load64(p);
    uint64_t m = eq_bytes(w, ONES * '\r') | eq_bytes(w, ONES * '\n');
    if (m != 0)
      return p + first_byte(m);
    p += 8;
  }
  while (p < end && *p != '\r' && *p != '\n')
    p++;
  return p;
}

/* Does the output differ from the input at the pair (p[0], p[1])? */
ENC_INLINE int pair_changes(const unsigned char *p, int dot) {
  return (p[0] == '\r') != (p[1] == '\n') ||
         (dot && p[0] == '\n' && p[1] == '.');
}

#ifdef SMTPUV_ENC_SSE2
/* 0xff in each lane i where pair_changes(p + i). */
ENC_INLINE __m128i pairs16(__m128i v, __m128i vn, int dot) {
  __m128i x = _mm_xor_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('\r')),
                            _mm_cmpeq_epi8(vn, _mm_set1_epi8('\n')));
  if (dot)
    x = _mm_or_si128(x, _mm_and_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('\n')),
                                      _mm_cmpeq_epi8(vn, _mm_set1_epi8('.'))));
  return x;
}

ENC_INLINE __m128i load16(const unsigned char *p) {
  return _mm_loadu_si128((const __m128i *)(const void *)p);
}
#endif

#ifdef SMTPUV_ENC_SSE2
#define ENC_PREFETCH_AHEAD 8192

ENC_INLINE void prefetch_ahead(const unsigned char *p) {
  _mm_prefetch((const char *)((uintptr_t)p + ENC_PREFETCH_AHEAD), _MM_HINT_T0);
}
#endif

#ifdef SMTPUV_ENC_AVX2
#define ENC_AVX2 __attribute__((target("avx2")))

ENC_AVX2 static inline __m256i load32(const unsigned char *p) {
  return _mm256_loadu_si256((const __m256i *)(const void *)p);
}

ENC_AVX2 static inline __m256i pairs32(__m256i v, __m256i vn, int dot) {
  __m256i x = _mm256_xor_si256(_mm256_cmpeq_epi8(v, _mm256_set1_epi8('\r')),
                               _mm256_cmpeq_epi8(vn, _mm256_set1_epi8('\n')));
  if (dot)
    x = _mm256_or_si256(
        x, _mm256_and_si256(_mm256_cmpeq_epi8(v, _mm256_set1_epi8('\n')),
                            _mm256_cmpeq_epi8(vn, _mm256_set1_epi8('.'))));
  return x;
}

/* copy_plain()'s 64-byte loop in AVX2: returns the first changing pair
   found, or where fewer than 65 bytes are left. */
ENC_AVX2 static inline const unsigned char *
copy64_avx2(const unsigned char *p, const unsigned char *end,
            unsigned char *o, int write, int dot) {
  const unsigned char *const p0 = p;
  while (end - p >= 65) {
    __m256i v0 = load32(p), v1 = load32(p + 32);
    __m256i m0 = pairs32(v0, load32(p + 1), dot);
    __m256i m1 = pairs32(v1, load32(p + 33), dot);
    prefetch_ahead(p);
    if (write) {
      _mm256_storeu_si256((__m256i *)(void *)(o + (p - p0)), v0);
      _mm256_storeu_si256((__m256i *)(void *)(o + (p - p0) + 32), v1);
    }
    if (!_mm256_testz_si256(_mm256_or_si256(m0, m1),
                            _mm256_or_si256(m0, m1))) {
      uint64_t m = (uint64_t)(uint32_t)_mm256_movemask_epi8(m0) |
                   (uint64_t)(uint32_t)_mm256_movemask_epi8(m1) << 32;
      return p + __builtin_ctzll(m);
    }
    p += 64;
  }
  return p;
}

/* One out-of-line copy per (write, dot), the checks folded away. */
#define ENC_AVX2_VARIANT(name, w, d)                                           \
  ENC_AVX2 __attribute__((noinline)) static const unsigned char *name(         \
      const unsigned char *p, const unsigned char *end, unsigned char *o) {   \
    return copy64_avx2(p, end, o, w, d);                                       \
  }
ENC_AVX2_VARIANT(copy64_avx2_wd, 1, 1)
ENC_AVX2_VARIANT(copy64_avx2_w, 1, 0)
ENC_AVX2_VARIANT(copy64_avx2_d, 0, 1)
ENC_AVX2_VARIANT(copy64_avx2_, 0, 0)
#undef ENC_AVX2_VARIANT
#endif

/* Copy bytes from p to o (when `write`) up to the first i in [p, end - 1)
   with pair_changes(i), or up to end - 1 (whose successor is unknown), and
   return that i. Needs p < end. May store up to 64 bytes past o + (i - p),
   but never further than 2 * (bytes left from p) - 1 past o, which keeps
   encode_pass() inside SMTPUV_ENCODE_BOUND. */
ENC_INLINE const unsigned char *copy_plain(const unsigned char *p,
                                           const unsigned char *end,
                                           unsigned char *o, int write,
                                           int dot) {
  const unsigned char *const p0 = p; /* o holds the copy of p0 */
#ifdef SMTPUV_ENC_AVX2
  if (end - p >= 65 && __builtin_cpu_supports("avx2")) {
    const unsigned char *q =
        write ? (dot ? copy64_avx2_wd(p, end, o) : copy64_avx2_w(p, end, o))
              : (dot ? copy64_avx2_d(p, end, NULL)
                     : copy64_avx2_(p, end, NULL));
    if (end - q >= 65)
      return q;
    p = q;
  }
#endif
#ifdef SMTPUV_ENC_SSE2
  while (end - p >= 65) {
    __m128i v0 = load16(p), v1 = load16(p + 16);
    __m128i v2 = load16(p + 32), v3 = load16(p + 48);
    __m128i m0 = pairs16(v0, load16(p + 1), dot);
    __m128i m1 = pairs16(v1, load16(p + 17), dot);
    __m128i m2 = pairs16(v2, load16(p + 33), dot);
    __m128i m3 = pairs16(v3, load16(p + 49), dot);
    prefetch_ahead(p);
    if (write) {
      unsigned char *d = o + (p - p0);
      _mm_storeu_si128((__m128i *)(void *)d, v0);
      _mm_storeu_si128((__m128i *)(void *)(d + 16), v1);
      _mm_storeu_si128((__m128i *)(void *)(d + 32), v2);
      _mm_storeu_si128((__m128i *)(void *)(d + 48), v3);
    }
    __m128i any = _mm_or_si128(_mm_or_si128(m0, m1), _mm_or_si128(m2, m3));
    if (_mm_movemask_epi8(any) != 0) {
      uint64_t m = (uint64_t)(unsigned)_mm_movemask_epi8(m0) |
                   (uint64_t)(unsigned)_mm_movemask_epi8(m1) << 16 |
                   (uint64_t)(unsigned)_mm_movemask_epi8(m2) << 32 |
                   (uint64_t)(unsigned)_mm_movemask_epi8(m3) << 48;
      return p + __builtin_ctzll(m);
    }
    p += 64;
  }
  while (end - p >= 17) {
    __m128i v = load16(p);
    unsigned m = (unsigned)_mm_movemask_epi8(pairs16(v, load16(p + 1), dot));
    if (write)
      _mm_storeu_si128((__m128i *)(void *)(o + (p - p0)), v);
    if (m != 0)
      return p + __builtin_ctz(m);
    p += 16;
  }
#endif
  while (end - p >= 9) {
    uint64_t w = load64(p), wn = load64(p + 1);
    uint64_t m = eq_bytes(w, ONES * '\r') ^ eq_bytes(wn, ONES * '\n');
    if (dot)
      m |= eq_bytes(w, ONES * '\n') & eq_bytes(wn, ONES * '.');
    if (write)
      memcpy(o + (p - p0), &w, sizeof w);
    if (m != 0)
      return p + first_byte(m);
    p += 8;
  }
  while (end - p >= 2 && !pair_changes(p, dot)) {
    if (write)
      o[p - p0] = *p;
    p++;
  }
  return p;
}

void smtpuv__encoder_init(smtpuv_encoder *e, int dot_stuff) {
  e->dot_stuff = dot_stuff ? 1 : 0;
  e->at_line_start = 1;
  e->skip_lf = 0;
  e->empty = 1;
}

/* One pass for encode (write != 0) and measure (write == 0): returns the
   output size and updates `e`. */
ENC_INLINE size_t encode_pass(smtpuv_encoder *e, const unsigned char *p,
                              size_t len, unsigned char *out, int write,
                              int dot) {
  const unsigned char *end = p + len;
  size_t n = 0;
  int ls = e->at_line_start;

#define ENC_PUT(c)                                                             \
  do {                                                                         \
    if (write)                                                                 \
      out[n] = (unsigned char)(c);                                             \
    n++;                                                                       \
  } while (0)

  if (len == 0)
    return 0;
  e->empty = 0;
  if (e->skip_lf) {
    e->skip_lf = 0;
    if (*p == '\n')
      p++; /* second half of a CRLF whose CR ended the previous chunk */
  }
  while (p < end) {
    const unsigned char c = *p;
    const unsigned char *q;
    if (c == '\r' || c == '\n') {
      /* CRLF, a lone CR or a lone LF: CRLF in all three cases */
      ENC_PUT('\r');
      ENC_PUT('\n');
      ls = 1;
      p++;
      if (c == '\r') {
        if (p == end)
          e->skip_lf = 1; /* a LF opening the next chunk belongs to it */
        else if (*p == '\n')
          p++;
      }
      continue;
    }
    if (ls && dot && c == '.')
      ENC_PUT('.');
    /* A plain byte: copy it and all that stays as it is after it. Up to q
       every CR and LF belong to CRLF pairs and no dot follows an LF. */
    q = copy_plain(p, end, write ? out + n : NULL, write, dot);
    if (*q == '\n')
      q--; /* back to its CR, so that the CRLF is seen whole */
    if (q == p) {
      ENC_PUT(c); /* p itself is plain; what follows is handled next */
      ls = 0;
      p++;
      continue;
    }
    n += (size_t)(q - p);
    ls = q[-1] == '\n'; /* then *q is not '.': that pair would have stopped */
    p = q;
  }
  e->at_line_start = (unsigned char)ls;
  return n;
#undef ENC_PUT
}

size_t smtpuv__encoder_encode(smtpuv_encoder *e, const char *in, size_t len,
                              char *out) {
  if (e->dot_stuff)
    return encode_pass(e, (const unsigned char *)in, len, (unsigned char *)out,
                       1, 1);
  return encode_pass(e, (const unsigned char *)in, len, (unsigned char *)out,
                     1, 0);
}

size_t smtpuv__encoder_measure(const smtpuv_encoder *e, const char *in,
                               size_t len) {
  smtpuv_encoder copy = *e;
  if (copy.dot_stuff)
    return encode_pass(&copy, (const unsigned char *)in, len, NULL, 0, 1);
  return encode_pass(&copy, (const unsigned char *)in, len, NULL, 0, 0);
}

size_t smtpuv__encoder_finish(smtpuv_encoder *e, char *out) {
  size_t n = 0;
  if (!e->empty && !e->at_line_start) {
    out[n++] = '\r';
    out[n++] = '\n';
  }
  if (e->dot_stuff) {
    out[n++] = '.';
    out[n++] = '\r';
    out[n++] = '\n';
  }
  smtpuv__encoder_init(e, e->dot_stuff);
  return n;
}

int smtpuv_is_8bit(const void *buf, size_t len) {
  const unsigned char *p = buf;
  const unsigned char *end;
  if (len == 0)
    return 0;
  end = p + len;
#ifdef SMTPUV_ENC_SSE2
  while (end - p >= 64) { /* a body: at memory speed, prefetched */
    __m128i v = _mm_or_si128(_mm_or_si128(load16(p), load16(p + 16)),
                             _mm_or_si128(load16(p + 32), load16(p + 48)));
    prefetch_ahead(p);
    if (_mm_movemask_epi8(v) != 0)
      return 1;
    p += 64;
  }
#endif
  while (end - p >= 32) {
    uint64_t w = load64(p) | load64(p + 8) | load64(p + 16) | load64(p + 24);
    if (w & HIGHS)
      return 1;
    p += 32;
  }
  while (end - p >= 8) {
    if (load64(p) & HIGHS)
      return 1;
    p += 8;
  }
  while (p < end) {
    if (*p++ & 0x80u)
      return 1;
  }
  return 0;
}

int smtpuv__binary_chunk(const void *buf, size_t len, uint32_t *line) {
  const unsigned char *p = buf;
  const unsigned char *end = p + len;
  if (len == 0)
    return 0;
  if (memchr(p, 0, len) != NULL)
    return 1;
  size_t open = *line;
  for (;;) {
    const unsigned char *q = find_eol(p, end);
    if (open + (size_t)(q - p) > 998)
      return 1;
    if (q == end) {
      *line = (uint32_t)(open + (size_t)(q - p));
      return 0;
    }
    open = 0;
    p = q + 1;
  }
}

int smtpuv_needs_binarymime(const void *buf, size_t len) {
  const unsigned char *p = buf;
  const unsigned char *end;
  if (len == 0)
    return 0;
  if (memchr(p, 0, len) != NULL)
    return 1;
  end = p + len;
  for (;;) {
    const unsigned char *q = find_eol(p, end);
    if (q - p > 998)
      return 1;
    if (q == end)
      return 0;
    p = q + 1;
  }
}

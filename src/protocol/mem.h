/* SPDX-License-Identifier: MIT */
/* Internal allocation helpers: every allocation of the library goes through
 * the object's smtpuv_mem. */
#ifndef SMTPUV_SRC_MEM_H
#define SMTPUV_SRC_MEM_H

#include <stddef.h>
#include <string.h>

#include "smtpuv.h"

/* Copy of the caller's allocator, or the default one when `mem` is NULL. */
void smtpuv__mem_init(smtpuv_mem *dst, const smtpuv_mem *mem);

static inline void *smtpuv__malloc(const smtpuv_mem *m, size_t n) {
  return m->malloc(n, m->user);
}
static inline void *smtpuv__calloc(const smtpuv_mem *m, size_t k, size_t n) {
  return m->calloc(k, n, m->user);
}
static inline void *smtpuv__realloc(const smtpuv_mem *m, void *p, size_t n) {
  return m->realloc(p, n, m->user);
}
static inline void smtpuv__free(const smtpuv_mem *m, void *p) {
  if (p != NULL)
    m->free(p, m->user);
}

/* Overwrite `n` bytes with zeros in a way the compiler may not drop as a
   dead store (the memory is usually freed right after). The core is
   libc-only, so no OPENSSL_cleanse here: memset, then an empty asm that
   claims to read the memory; elsewhere memset through a volatile pointer. */
#if defined(__GNUC__) || defined(__clang__)
static inline void smtpuv__wipe(void *ptr, size_t n) {
  if (n == 0)
    return;
  memset(ptr, 0, n);
  __asm__ __volatile__("" : : "r"(ptr) : "memory");
}
#else
static void *(*const volatile smtpuv__memset_v)(void *, int, size_t) = memset;
static inline void smtpuv__wipe(void *ptr, size_t n) {
  if (n != 0)
    smtpuv__memset_v(ptr, 0, n);
}
#endif

/* NUL-terminated copy of `len` bytes of `s`; NULL when out of memory. */
char *smtpuv__strndup(const smtpuv_mem *m, const char *s, size_t len);
char *smtpuv__strdup(const smtpuv_mem *m, const char *s);

#endif

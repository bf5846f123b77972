/* Internal allocation helpers: every allocation of the library goes through
 * the object's smtpuv_mem. */
#ifndef SMTPUV_SRC_MEM_H
#define SMTPUV_SRC_MEM_H

#include <stddef.h>

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

/* NUL-terminated copy of `len` bytes of `s`; NULL when out of memory. */
char *smtpuv__strndup(const smtpuv_mem *m, const char *s, size_t len);
char *smtpuv__strdup(const smtpuv_mem *m, const char *s);

#endif

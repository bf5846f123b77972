/* SPDX-License-Identifier: MIT */
/* Error names and messages, version, default allocator. */
#include <stdlib.h>
#include <string.h>

#include "protocol/mem.h"
#include "smtpuv.h"

const char *smtpuv_strerror(int err) {
  switch (err) {
  case SMTPUV_OK:
    return "success";
#define SMTPUV_STRERROR_CASE_(name, val, msg)                                  \
  case SMTPUV_##name:                                                          \
    return msg;
    SMTPUV_ERRNO_MAP(SMTPUV_STRERROR_CASE_)
#undef SMTPUV_STRERROR_CASE_
  default:
    return "unknown error";
  }
}

const char *smtpuv_err_name(int err) {
  switch (err) {
  case SMTPUV_OK:
    return "SMTPUV_OK";
#define SMTPUV_ERRNAME_CASE_(name, val, msg)                                   \
  case SMTPUV_##name:                                                          \
    return "SMTPUV_" #name;
    SMTPUV_ERRNO_MAP(SMTPUV_ERRNAME_CASE_)
#undef SMTPUV_ERRNAME_CASE_
  default:
    return "SMTPUV_UNKNOWN";
  }
}

const smtpuv_info *smtpuv_version(unsigned least_version) {
  static const smtpuv_info info = {1, SMTPUV_VERSION_NUM, SMTPUV_VERSION};
  return least_version > SMTPUV_VERSION_NUM ? NULL : &info;
}

static void *default_malloc(size_t n, void *user) {
  (void)user;
  return malloc(n);
}
static void default_free(void *p, void *user) {
  (void)user;
  free(p);
}
static void *default_calloc(size_t k, size_t n, void *user) {
  (void)user;
  return calloc(k, n);
}
static void *default_realloc(void *p, size_t n, void *user) {
  (void)user;
  return realloc(p, n);
}

static const smtpuv_mem default_mem = {NULL, default_malloc, default_free,
                                       default_calloc, default_realloc};

const smtpuv_mem *smtpuv_mem_default(void) { return &default_mem; }

void smtpuv__mem_init(smtpuv_mem *dst, const smtpuv_mem *mem) {
  *dst = mem != NULL ? *mem : default_mem;
}

char *smtpuv__strndup(const smtpuv_mem *m, const char *s, size_t len) {
  char *d = smtpuv__malloc(m, len + 1);
  if (d == NULL)
    return NULL;
  memcpy(d, s, len);
  d[len] = '\0';
  return d;
}

char *smtpuv__strdup(const smtpuv_mem *m, const char *s) {
  return smtpuv__strndup(m, s, strlen(s));
}

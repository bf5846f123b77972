/* SPDX-License-Identifier: MIT */
#include "support.h"

#include <stdlib.h>

static int should_fail(test_mem *tm) {
  tm->calls++;
  if (tm->fail_at != 0 && tm->calls == tm->fail_at) {
    tm->failed = 1;
    return 1;
  }
  return 0;
}

static void *t_malloc(size_t n, void *user) {
  test_mem *tm = user;
  if (should_fail(tm))
    return NULL;
  void *p = malloc(n ? n : 1);
  if (p)
    tm->live++;
  return p;
}

static void *t_calloc(size_t k, size_t n, void *user) {
  test_mem *tm = user;
  if (should_fail(tm))
    return NULL;
  void *p = calloc(k ? k : 1, n ? n : 1);
  if (p)
    tm->live++;
  return p;
}

static void *t_realloc(void *ptr, size_t n, void *user) {
  test_mem *tm = user;
  if (should_fail(tm))
    return NULL;
  void *p = realloc(ptr, n ? n : 1);
  if (p && ptr == NULL)
    tm->live++;
  return p;
}

static void t_free(void *ptr, void *user) {
  test_mem *tm = user;
  if (ptr) {
    tm->live--;
    free(ptr);
  }
}

void test_mem_init(test_mem *tm, unsigned long fail_at) {
  tm->mem.user = tm;
  tm->mem.malloc = t_malloc;
  tm->mem.free = t_free;
  tm->mem.calloc = t_calloc;
  tm->mem.realloc = t_realloc;
  tm->calls = 0;
  tm->fail_at = fail_at;
  tm->live = 0;
  tm->failed = 0;
}

/* SPDX-License-Identifier: MIT */
/* Shared helpers for the unit tests. */
#ifndef SMTPUV_TEST_SUPPORT_H
#define SMTPUV_TEST_SUPPORT_H

#include <stddef.h>

#include "smtpuv.h"

/* An allocator that counts live allocations and can fail the Nth call
   (fail_at = N, counting from 1; 0 never fails). */
typedef struct test_mem {
  smtpuv_mem mem;        /* pass &tm.mem to the library */
  unsigned long calls;   /* allocation calls so far */
  unsigned long fail_at; /* fail this call (1-based); 0: never */
  long live;             /* allocations not yet freed */
  int failed;            /* an allocation was failed */
} test_mem;

void test_mem_init(test_mem *tm, unsigned long fail_at);

#endif

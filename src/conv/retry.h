/* SPDX-License-Identifier: MIT */
/*
 * Internal: the retry policy (smtpuv_options_set_retry()), as pure
 * functions of a message's outcome and the clock the caller passes in, so
 * that the rules and the backoff are tested without a loop.
 */
#ifndef SMTPUV_SRC_CONV_RETRY_H
#define SMTPUV_SRC_CONV_RETRY_H

#include <stdint.h>

#include "conv/msg.h"

typedef struct smtpuv__retry_policy {
  unsigned max_attempts; /* attempts in all; 0 or 1: no retry */
  unsigned base_ms;      /* delay before the second attempt */
  unsigned max_ms;       /* ceiling of the delay */
  unsigned deadline_ms;  /* from the first attempt; 0: none */
} smtpuv__retry_policy;

/* 1 when the decided outcome of `m` is temporary (see
   smtpuv_options_set_retry()): FAILED with a 4xx, or a transport failure
   before the final dot. UNKNOWN, CANCELED, SENT and permanent failures
   are not. */
int smtpuv__retry_temporary(const smtpuv__msg *m);

/* The delay before attempt `next` (2, 3, ...): base * 2^(next - 2) capped
   at max, of which the second half is scaled by `jitter` (0..65535 for
   0..1): a delay d is d/2 + (d/2 * jitter) / 65535. */
uint64_t smtpuv__retry_delay(const smtpuv__retry_policy *p, unsigned next,
                             uint16_t jitter);

/* When `m` (decided, `m->attempts` made, the first at `m->first_try`)
   should be tried again: 1 with the time in *at; 0 when it must not (off,
   not temporary, attempts or deadline used up, a body that cannot be
   rewound). */
int smtpuv__retry_when(const smtpuv__retry_policy *p, const smtpuv__msg *m,
                       uint64_t now, uint16_t jitter, uint64_t *at);

#endif

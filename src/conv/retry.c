/* SPDX-License-Identifier: MIT */
/* The retry policy: which outcomes are temporary, and when the next
 * attempt goes (exponential backoff with jitter, bounded by attempts and a
 * deadline). */
#include "conv/retry.h"

static int transport_error(int err) {
  switch (err) {
  case SMTPUV_ECONNECT:
  case SMTPUV_ERESOLVE:
  case SMTPUV_ECONNLOST:
  case SMTPUV_ETIMEDOUT:
  case SMTPUV_EIO:
    return 1;
  default:
    return 0;
  }
}

int smtpuv__retry_temporary(const smtpuv__msg *m) {
  if (!m->decided || m->status != SMTPUV_SEND_FAILED)
    return 0;
  switch (m->error) {
  case SMTPUV_ETEMPFAIL:
  case SMTPUV_ESHUTDOWN:
    return 1;
  case SMTPUV_ENORCPT:
    /* every recipient refused, each with a 4xx */
    if (m->naccepted > 0)
      return 0;
    for (size_t i = 0; i < m->nrcpts; i++)
      if (m->rcpts[i].code != 0 &&
          (m->rcpts[i].code < 400 || m->rcpts[i].code >= 500))
        return 0;
    return 1;
  default:
    /* a transport failure is temporary before the final dot only: after
       it the outcome is UNKNOWN, never FAILED */
    return transport_error(m->error);
  }
}

uint64_t smtpuv__retry_delay(const smtpuv__retry_policy *p, unsigned next,
                             uint16_t jitter) {
  uint64_t d = p->base_ms;
  for (unsigned i = 2; i < next && d < p->max_ms; i++)
    d *= 2;
  if (d > p->max_ms)
    d = p->max_ms;
  uint64_t half = d / 2;
  return (d - half) + half * jitter / 65535;
}

int smtpuv__retry_when(const smtpuv__retry_policy *p, const smtpuv__msg *m,
                       uint64_t now, uint16_t jitter, uint64_t *at) {
  if (p->max_attempts < 2 || m->attempts >= p->max_attempts ||
      !smtpuv__retry_temporary(m))
    return 0;
  if (m->body.read != NULL && m->body.rewind == NULL)
    return 0;
  uint64_t when = now + smtpuv__retry_delay(p, m->attempts + 1, jitter);
  if (p->deadline_ms != 0 && when > m->first_try + p->deadline_ms)
    return 0;
  *at = when;
  return 1;
}

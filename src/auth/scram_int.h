/* SPDX-License-Identifier: MIT */
/* SCRAM internals visible to the unit tests only. */
#ifndef SMTPUV_SRC_AUTH_SCRAM_INT_H
#define SMTPUV_SRC_AUTH_SCRAM_INT_H

#include "smtpuv/auth.h"

/* Test hook: use `nonce` (printable ASCII without ',', copied) as the client
   nonce of the next attempts instead of RAND_bytes(). `auth` must be a
   SCRAM authenticator made by smtpuv_auth_scram_sha*_new() or
   smtpuv_auth_mech_new(). 0, SMTPUV_EINVAL, SMTPUV_ENOMEM. */
int smtpuv__scram_set_nonce(smtpuv_auth *auth, const char *nonce);

#endif

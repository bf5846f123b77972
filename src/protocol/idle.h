/* SPDX-License-Identifier: MIT */
/* Internal: what an idle session can give back (idle.c). */
#ifndef SMTPUV_SRC_PROTOCOL_IDLE_H
#define SMTPUV_SRC_PROTOCOL_IDLE_H

#include "smtpuv/protocol.h"

/* Free the buffers an idle session keeps for its next command and reply:
   the spare small output block (~4 KiB) and an empty input buffer
   (1 KiB or more). Both come back at the next command or reply, so a
   transport that holds many idle connections (src/uv/tlsprep.c) calls this
   when a connection has nothing in flight; the session's own trim keeps
   them, which suits a busy connection. Safe at any time: a block or buffer
   that holds bytes is kept. NULL is accepted. */
void smtpuv__proto_release_idle(smtpuv_proto *p);

#endif

/* SPDX-License-Identifier: MIT */
/* Internals of the address-list parser (src/protocol/headers.c) shared with
 * the libuv client's envelope derivation (src/uv/headers.c) and the
 * composer (src/compose). */
#ifndef SMTPUV_SRC_HEADERS_INT_H
#define SMTPUV_SRC_HEADERS_INT_H

#include <stddef.h>

#include "protocol/mem.h"
#include "smtpuv/headers.h"
#include "smtpuv/protocol.h"

/* A growing array of checked addresses, NULL-terminated; `pub` is what the
   caller of smtpuv_address_list_parse() sees. */
typedef struct smtpuv__addr_list {
  smtpuv_address_list pub;
  smtpuv_mem mem;
  char **v;
  size_t cap;
} smtpuv__addr_list;

void smtpuv__addr_list_init(smtpuv__addr_list *l, const smtpuv_mem *mem);
void smtpuv__addr_list_clear(smtpuv__addr_list *l);

/* Append to the list `ctx` a copy of the addr-spec [a, a+n) after checking
   it with smtpuv_check_address(s, 1): 0, SMTPUV_EHEADER or SMTPUV_ENOMEM.
   A smtpuv__addr_fn. */
int smtpuv__addr_list_add(void *ctx, const char *a, size_t n);

/* Where each address of a list goes: 0 or an error that stops the parse. */
typedef int (*smtpuv__addr_fn)(void *ctx, const char *a, size_t n);

/* Parse an address-list field value [i, end) of `d`, calling `fn(ctx, ...)`
   for each addr-spec: 0, SMTPUV_EHEADER or fn's error. */
int smtpuv__parse_addresses(void *ctx, const char *d, size_t i, size_t end,
                            smtpuv__addr_fn fn);

#endif

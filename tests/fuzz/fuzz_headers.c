/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the header field scanner (smtpuv_header_next) and the
 * RFC 5322 address-list parser (smtpuv_address_list_parse), the two parsers
 * of untrusted message text.
 *
 * Input: one setup byte, then a message. Setup: the allocation of every
 * address-list parse that fails (1-based; 0: none fails), so the ENOMEM
 * paths run too.
 *
 * Checked:
 *   - the scanner walks the header block in order: each field starts where
 *     the previous one ended, [start, end) lies inside the message, the name
 *     is a non-empty run of printable ASCII without ':' at `start`, the
 *     value lies inside the field, the walk ends (0) at or before the end,
 *     a field never crosses an empty line, and smtpuv_header_field_is()
 *     matches the field's own name in another case;
 *   - every field's value, and the whole input, parse to either a list or
 *     SMTPUV_EHEADER / SMTPUV_ENOMEM with `*out` NULL; a list has `count`
 *     NUL-terminated addresses, each accepted by smtpuv_check_address(a, 1),
 *     no longer than SMTPUV_MAX_ADDRESS, followed by NULL; parsing the same
 *     value again gives the same list; every allocation is freed.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtpuv.h"
#include "smtpuv/client.h"

#define CHECK(x)                                                               \
  do {                                                                         \
    if (!(x))                                                                  \
      abort();                                                                 \
  } while (0)

/* An allocator that counts live blocks and fails its Nth call. */
typedef struct fail_mem {
  smtpuv_mem mem;
  unsigned calls, fail_at;
  long live;
} fail_mem;

static int fail_now(fail_mem *m) {
  return m->fail_at != 0 && ++m->calls == m->fail_at;
}
static void *fm_malloc(size_t n, void *u) {
  fail_mem *m = u;
  if (fail_now(m))
    return NULL;
  void *p = malloc(n);
  if (p != NULL)
    m->live++;
  return p;
}
static void *fm_calloc(size_t k, size_t n, void *u) {
  fail_mem *m = u;
  if (fail_now(m))
    return NULL;
  void *p = calloc(k, n);
  if (p != NULL)
    m->live++;
  return p;
}
static void *fm_realloc(void *old, size_t n, void *u) {
  fail_mem *m = u;
  if (fail_now(m))
    return NULL;
  void *p = realloc(old, n);
  if (p != NULL && old == NULL)
    m->live++;
  return p;
}
static void fm_free(void *p, void *u) {
  fail_mem *m = u;
  if (p != NULL)
    m->live--;
  free(p);
}

static void fail_mem_init(fail_mem *m, unsigned fail_at) {
  memset(m, 0, sizeof *m);
  m->mem.user = m;
  m->mem.malloc = fm_malloc;
  m->mem.free = fm_free;
  m->mem.calloc = fm_calloc;
  m->mem.realloc = fm_realloc;
  m->fail_at = fail_at;
}

static void check_list(const smtpuv_address_list *l) {
  CHECK(l->addresses != NULL);
  for (size_t i = 0; i < l->count; i++) {
    const char *a = l->addresses[i];
    CHECK(a != NULL);
    CHECK(strlen(a) <= SMTPUV_MAX_ADDRESS);
    CHECK(smtpuv_check_address(a, 1) == 0);
  }
  CHECK(l->addresses[l->count] == NULL);
}

static int same_list(const smtpuv_address_list *a,
                     const smtpuv_address_list *b) {
  if (a->count != b->count)
    return 0;
  for (size_t i = 0; i < a->count; i++)
    if (strcmp(a->addresses[i], b->addresses[i]) != 0)
      return 0;
  return 1;
}

static void parse_value(const char *v, size_t len, unsigned fail_at) {
  /* with the default allocator: the reference result */
  smtpuv_address_list *ref = (smtpuv_address_list *)1;
  int rc = smtpuv_address_list_parse(NULL, v, len, &ref);
  CHECK(rc == 0 || rc == SMTPUV_EHEADER);
  if (rc != 0) {
    CHECK(ref == NULL);
  } else {
    CHECK(ref != NULL);
    check_list(ref);
  }
  /* again through a counting (and maybe failing) allocator */
  fail_mem m;
  fail_mem_init(&m, fail_at);
  smtpuv_address_list *l = (smtpuv_address_list *)1;
  int rc2 = smtpuv_address_list_parse(&m.mem, v, len, &l);
  if (rc2 == SMTPUV_ENOMEM) {
    CHECK(fail_at != 0 && m.calls >= fail_at);
    CHECK(l == NULL);
  } else {
    CHECK(rc2 == rc);
    if (rc2 == 0) {
      check_list(l);
      CHECK(same_list(l, ref));
    } else {
      CHECK(l == NULL);
    }
  }
  smtpuv_address_list_free(l);
  CHECK(m.live == 0);
  smtpuv_address_list_free(ref);
}

static int is_name_char(unsigned char c) { return c > 0x20 && c < 0x7f && c != ':'; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  unsigned fail_at = data[0];
  /* a private copy, so reads past the end are caught by ASan */
  size_t len = size - 1;
  char *msg = malloc(len > 0 ? len : 1);
  CHECK(msg != NULL);
  memcpy(msg, data + 1, len);

  size_t pos = 0, prev_end = 0, nfields = 0;
  smtpuv_header_field f;
  int rc;
  while ((rc = smtpuv_header_next(msg, len, &pos, &f)) == 1) {
    CHECK(f.struct_size == sizeof f);
    CHECK(f.start == prev_end);
    CHECK(f.end > f.start && f.end <= len);
    CHECK(pos == f.end);
    CHECK(f.name == msg + f.start);
    CHECK(f.name_len > 0 && f.name_len < f.end - f.start);
    for (size_t i = 0; i < f.name_len; i++)
      CHECK(is_name_char((unsigned char)f.name[i]));
    CHECK(f.value > f.name + f.name_len);
    CHECK(f.value + f.value_len <= msg + f.end);
    CHECK(f.value[-1] == ':');
    /* a field never contains an empty line */
    for (size_t i = f.start; i + 1 < f.end; i++)
      if (msg[i] == '\n')
        CHECK(msg[i + 1] == ' ' || msg[i + 1] == '\t');
    /* the name matches itself in another case */
    char name[128];
    if (f.name_len < sizeof name) {
      for (size_t i = 0; i < f.name_len; i++) {
        char c = f.name[i];
        name[i] = (c >= 'a' && c <= 'z') ? (char)(c - 32)
                  : (c >= 'A' && c <= 'Z') ? (char)(c + 32)
                                           : c;
      }
      name[f.name_len] = '\0';
      CHECK(smtpuv_header_field_is(&f, name) == 1);
    }
    parse_value(f.value, f.value_len, fail_at);
    prev_end = f.end;
    CHECK(++nfields <= len);
  }
  CHECK(rc == 0);
  CHECK(pos == prev_end && pos <= len);
  /* the scan is deterministic: once ended, it stays ended */
  CHECK(smtpuv_header_next(msg, len, &pos, &f) == 0 && pos == prev_end);

  /* the whole input as one field body */
  parse_value(msg, len, fail_at);
  free(msg);
  return 0;
}

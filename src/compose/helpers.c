/* SPDX-License-Identifier: MIT */
/* Helpers for notification senders: a plain text message in one call, and
 * the Date and Message-ID a message the caller already has is missing. */
#include <string.h>
#include <time.h>

#include "compose/compose_int.h"
#include "protocol/headers_int.h"

int smtpuv_compose_plain(const smtpuv_mem *mem, const char *from,
                         const char *const *to, size_t nto,
                         const char *subject, const char *text,
                         smtpuv_compose **out) {
  if (out == NULL)
    return SMTPUV_EINVAL;
  *out = NULL;
  if (from == NULL || (to == NULL && nto > 0) || subject == NULL ||
      text == NULL)
    return SMTPUV_EINVAL;
  smtpuv_compose *c;
  int rc = smtpuv_compose_new(mem, 0, &c);
  if (rc != 0)
    return rc;
  rc = smtpuv_compose_address(c, SMTPUV_COMPOSE_FROM, NULL, from);
  for (size_t i = 0; rc == 0 && i < nto; i++)
    rc = smtpuv_compose_address(c, SMTPUV_COMPOSE_TO, NULL, to[i]);
  if (rc == 0)
    rc = smtpuv_compose_subject(c, subject);
  if (rc == 0)
    rc = smtpuv_compose_text(c, text, strlen(text));
  if (rc == 0)
    rc = smtpuv_compose_finish(c);
  if (rc != 0) {
    smtpuv_compose_free(c);
    return rc;
  }
  *out = c;
  return 0;
}

/* The first address of the first field `name`, into `dom` (its domain). */
static int domain_of(const smtpuv_mem *mem, const char *msg, size_t len,
                     const char *name, char *dom, size_t cap) {
  size_t pos = 0;
  smtpuv_header_field f;
  while (smtpuv_header_next(msg, len, &pos, &f) == 1) {
    if (!smtpuv_header_field_is(&f, name))
      continue;
    smtpuv_address_list *l;
    int rc = smtpuv_address_list_parse(mem, f.value, f.value_len, &l);
    if (rc == SMTPUV_ENOMEM)
      return rc;
    if (rc != 0)
      return 0;
    int found = 0;
    if (l->count > 0) {
      const char *at = strrchr(l->addresses[0], '@');
      if (at != NULL && strlen(at + 1) < cap && smtpuv__compose_domain_ok(at + 1)) {
        strcpy(dom, at + 1);
        found = 1;
      }
    }
    smtpuv_address_list_free(l);
    return found;
  }
  return 0;
}

int smtpuv_compose_missing(const smtpuv_mem *mem, const void *msg, size_t len,
                           const char *domain, int64_t unix_time, char **out,
                           size_t *out_len) {
  if (out == NULL || out_len == NULL)
    return SMTPUV_EINVAL;
  *out = NULL;
  *out_len = 0;
  if ((msg == NULL && len > 0) ||
      (domain != NULL && !smtpuv__compose_domain_ok(domain)))
    return SMTPUV_EINVAL;
  const char *m = msg != NULL ? msg : "";
  smtpuv_mem mm;
  smtpuv__mem_init(&mm, mem);
  int has_date = 0, has_id = 0;
  size_t pos = 0;
  smtpuv_header_field f;
  while (smtpuv_header_next(m, len, &pos, &f) == 1) {
    has_date |= smtpuv_header_field_is(&f, "Date");
    has_id |= smtpuv_header_field_is(&f, "Message-ID");
  }
  const char *nl = memchr(m, '\n', len);
  const char *eol = nl != NULL && (nl == m || nl[-1] != '\r') ? "\n" : "\r\n";
  char dom[256];
  if (!has_id && domain == NULL) {
    int rc = domain_of(&mm, m, len, "Sender", dom, sizeof dom);
    if (rc == 0)
      rc = domain_of(&mm, m, len, "From", dom, sizeof dom);
    if (rc < 0)
      return rc;
    if (rc == 0)
      return SMTPUV_EHEADER;
    domain = dom;
  }
  smtpuv__compose_buf b;
  smtpuv__compose_buf_init(&b, &mm);
  if (!has_date) {
    char date[40];
    int64_t t = unix_time >= 0 ? unix_time : (int64_t)time(NULL);
    if (smtpuv__compose_date_format(t, 0, date) != 0)
      return SMTPUV_EINVAL;
    smtpuv__compose_buf_puts(&b, "Date: ");
    smtpuv__compose_buf_puts(&b, date);
    smtpuv__compose_buf_puts(&b, eol);
  }
  if (!has_id) {
    smtpuv__compose_buf_puts(&b, "Message-ID: ");
    int rc = smtpuv__compose_msgid_make(&b, domain);
    if (rc != 0) {
      smtpuv__compose_buf_free(&b);
      return rc;
    }
    smtpuv__compose_buf_puts(&b, eol);
  }
  if (b.err == 0 && b.p == NULL)
    b.p = smtpuv__calloc(&mm, 1, 1);
  if (b.err != 0 || b.p == NULL) {
    smtpuv__compose_buf_free(&b);
    return SMTPUV_ENOMEM;
  }
  *out = b.p;
  *out_len = b.len;
  return 0;
}

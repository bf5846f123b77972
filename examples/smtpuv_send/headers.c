/* SPDX-License-Identifier: MIT */
/* Header fields of the message on standard input, read with the library's
 * own pieces: smtpuv_header_next() finds the fields (the header block ends
 * at the first empty line, or at a line that is not a field, as mail
 * parsers do), smtpuv_address_list_parse() reads their address lists, and
 * smtpuv_message_wrap() + smtpuv_message_body() leave out Bcc and
 * Resent-Bcc. -t and --read-envelope-from follow msmtp (To, Cc, Bcc; From)
 * rather than Python's send_message() rules (Sender first, Resent-* blocks)
 * that smtpuv_message_new() implements. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cli_strip_bcc(const char *msg, size_t len, char **out, size_t *outlen) {
  *out = NULL;
  *outlen = 0;
  smtpuv_message *m;
  if (smtpuv_message_wrap(NULL, msg, len, &m) != 0)
    return CLI_EX_OSERR;
  smtpuv_body body;
  smtpuv_message_body(m, &body);
  int rc = 0;
  if (body.read != NULL) {
    /* there were fields to leave out: a copy without them (a buffer body
       keeps the client's exact SIZE= and 8-bit checks) */
    char *o = malloc((size_t)body.size + 1);
    size_t n = 0;
    long got = 1;
    while (o != NULL && n < body.size && got > 0) {
      got = body.read(body.user, o + n, (size_t)body.size - n);
      if (got > 0)
        n += (size_t)got;
    }
    if (o != NULL) {
      o[n] = '\0';
      *out = o;
      *outlen = n;
    } else {
      rc = CLI_EX_OSERR;
    }
  }
  smtpuv_message_free(m);
  return rc;
}

void cli_addrs_free(cli_addrs *a) {
  for (size_t i = 0; i < a->n; i++)
    free(a->v[i]);
  free(a->v);
  a->v = NULL;
  a->n = a->cap = 0;
}

int cli_addrs_add(cli_addrs *a, const char *s) {
  for (size_t i = 0; i < a->n; i++)
    if (strcmp(a->v[i], s) == 0)
      return 0;
  if (a->n == a->cap) {
    size_t cap = a->cap ? a->cap * 2 : 8;
    char **v = realloc(a->v, cap * sizeof *v);
    if (v == NULL)
      return CLI_EX_OSERR;
    a->v = v;
    a->cap = cap;
  }
  size_t n = strlen(s);
  char *c = malloc(n + 1);
  if (c == NULL)
    return CLI_EX_OSERR;
  memcpy(c, s, n + 1);
  a->v[a->n++] = c;
  return 0;
}

/* Add the addresses of one address-list value to `out`; with `first`, only
   the first one (and none at all is an error). */
static int add_list(const char *value, size_t n, int first, cli_addrs *out) {
  smtpuv_address_list *l;
  int rc = smtpuv_address_list_parse(NULL, value, n, &l);
  if (rc != 0)
    return rc == SMTPUV_ENOMEM ? CLI_EX_OSERR : CLI_EX_DATAERR;
  size_t count = first && l->count > 1 ? 1 : l->count;
  if (first && count == 0)
    rc = CLI_EX_DATAERR;
  for (size_t i = 0; i < count && rc == 0; i++)
    rc = cli_addrs_add(out, l->addresses[i]);
  smtpuv_address_list_free(l);
  return rc;
}

int cli_address_list(const char *s, cli_addrs *out) {
  if (strpbrk(s, "\r\n") != NULL)
    return CLI_EX_DATAERR;
  return add_list(s, strlen(s), 0, out);
}

int cli_header_recipients(const char *msg, size_t len, cli_addrs *out,
                          char *err, size_t errlen) {
  size_t pos = 0;
  smtpuv_header_field f;
  while (smtpuv_header_next(msg, len, &pos, &f) == 1) {
    if (!smtpuv_header_field_is(&f, "To") &&
        !smtpuv_header_field_is(&f, "Cc") &&
        !smtpuv_header_field_is(&f, "Bcc"))
      continue;
    int rc = add_list(f.value, f.value_len, 0, out);
    if (rc == CLI_EX_DATAERR)
      snprintf(err, errlen, "cannot read the addresses of the %.*s header",
               (int)f.name_len, f.name);
    if (rc != 0)
      return rc;
  }
  return 0;
}

int cli_header_from(const char *msg, size_t len, char **out, char *err,
                    size_t errlen) {
  *out = NULL;
  size_t pos = 0;
  smtpuv_header_field f;
  while (smtpuv_header_next(msg, len, &pos, &f) == 1) {
    if (!smtpuv_header_field_is(&f, "From"))
      continue;
    cli_addrs from = {0};
    int rc = add_list(f.value, f.value_len, 1, &from);
    if (rc == CLI_EX_DATAERR)
      snprintf(err, errlen, "cannot read an address from the From header");
    if (rc == 0) {
      *out = from.v[0]; /* the list's only string */
      from.n = 0;
    }
    cli_addrs_free(&from);
    return rc;
  }
  snprintf(err, errlen, "the message has no From header");
  return CLI_EX_DATAERR;
}

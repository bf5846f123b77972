/* SPDX-License-Identifier: MIT */
/* Header fields of the message on standard input, read with the library's
 * own pieces: smtpuv_header_next() finds the fields (the header block ends
 * at the first empty line, or at a line that is not a field, as mail
 * parsers do) and smtpuv_address_list_parse() reads their address lists.
 * -t reads To, Cc and Bcc (msmtp's order); when the message has one
 * Resent- block (one Resent-Date field, the rule of smtpuv_message_new())
 * it reads Resent-To, Resent-Cc and Resent-Bcc instead, and
 * --read-envelope-from Resent-From. Several Resent- blocks are refused. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

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

/* The number of Resent-Date fields: one starts a Resent- block whose
   fields then name the envelope (as smtpuv_message_new() does). */
static unsigned resent_blocks(const char *msg, size_t len) {
  size_t pos = 0;
  unsigned n = 0;
  smtpuv_header_field f;
  while (smtpuv_header_next(msg, len, &pos, &f) == 1)
    if (smtpuv_header_field_is(&f, "Resent-Date"))
      n++;
  return n;
}

int cli_header_recipients(const char *msg, size_t len, cli_addrs *out,
                          char *err, size_t errlen) {
  unsigned resent = resent_blocks(msg, len);
  if (resent > 1) {
    snprintf(err, errlen, "the message has %u Resent- blocks (Resent-Date "
                          "fields): cannot tell which names the recipients",
             resent);
    return CLI_EX_DATAERR;
  }
  const char *to = resent ? "Resent-To" : "To";
  const char *cc = resent ? "Resent-Cc" : "Cc";
  const char *bcc = resent ? "Resent-Bcc" : "Bcc";
  size_t pos = 0;
  smtpuv_header_field f;
  while (smtpuv_header_next(msg, len, &pos, &f) == 1) {
    if (!smtpuv_header_field_is(&f, to) && !smtpuv_header_field_is(&f, cc) &&
        !smtpuv_header_field_is(&f, bcc))
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
  const char *fname = resent_blocks(msg, len) == 1 ? "Resent-From" : "From";
  while (smtpuv_header_next(msg, len, &pos, &f) == 1) {
    if (!smtpuv_header_field_is(&f, fname))
      continue;
    cli_addrs from = {0};
    int rc = add_list(f.value, f.value_len, 1, &from);
    if (rc == CLI_EX_DATAERR)
      snprintf(err, errlen, "cannot read an address from the %s header",
               fname);
    if (rc == 0) {
      *out = from.v[0]; /* the list's only string */
      from.n = 0;
    }
    cli_addrs_free(&from);
    return rc;
  }
  snprintf(err, errlen, "the message has no %s header", fname);
  return CLI_EX_DATAERR;
}

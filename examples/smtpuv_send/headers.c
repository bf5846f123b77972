/* Header fields of the message on standard input: the header block ends at
 * the first empty line (or at a line that is not a field, as mail parsers
 * do); a field runs through its continuation lines. Addresses are read by
 * the library's RFC 5322 parser (smtpuv_message_new) from a small synthetic
 * message holding just the field in question, so that -t and
 * --read-envelope-from follow msmtp (To, Cc, Bcc; From) rather than
 * Python's send_message() rules (Sender first, Resent-* blocks). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"

typedef struct hfield {
  size_t start, end;   /* whole field, continuation lines included */
  size_t name_len;
  size_t value_start;  /* after ':' */
} hfield;

/* Next field at *pos; 1 with f, 0 at the end of the header block. */
static int next_field(const char *d, size_t len, size_t *pos, hfield *f) {
  size_t p = *pos;
  if (p >= len || d[p] == '\n' ||
      (d[p] == '\r' && p + 1 < len && d[p + 1] == '\n'))
    return 0;
  size_t q = p;
  while (q < len && d[q] != ':' && (unsigned char)d[q] > 0x20 &&
         (unsigned char)d[q] < 0x7f)
    q++;
  size_t name_end = q;
  while (q < len && (d[q] == ' ' || d[q] == '\t'))
    q++;
  if (q >= len || d[q] != ':' || name_end == p)
    return 0;
  f->start = p;
  f->name_len = name_end - p;
  f->value_start = q + 1;
  size_t e = q + 1;
  for (;;) {
    const char *nl = memchr(d + e, '\n', len - e);
    if (nl == NULL) {
      e = len;
      break;
    }
    e = (size_t)(nl - d) + 1;
    if (e < len && (d[e] == ' ' || d[e] == '\t'))
      continue;
    break;
  }
  f->end = e;
  *pos = e;
  return 1;
}

static int name_is(const char *d, const hfield *f, const char *name) {
  return strlen(name) == f->name_len &&
         strncasecmp(d + f->start, name, f->name_len) == 0;
}

size_t cli_header_block_len(const char *msg, size_t len) {
  size_t pos = 0;
  hfield f;
  while (next_field(msg, len, &pos, &f))
    ;
  if (pos == 0)
    return 0;
  /* include the empty line */
  if (pos < len && msg[pos] == '\n')
    pos++;
  else if (pos + 1 < len && msg[pos] == '\r' && msg[pos + 1] == '\n')
    pos += 2;
  return pos;
}

int cli_strip_bcc(const char *msg, size_t len, char **out, size_t *outlen) {
  *out = NULL;
  *outlen = 0;
  size_t pos = 0, removed = 0;
  hfield f;
  while (next_field(msg, len, &pos, &f))
    if (name_is(msg, &f, "Bcc") || name_is(msg, &f, "Resent-Bcc"))
      removed += f.end - f.start;
  if (removed == 0)
    return 0;
  char *o = malloc(len - removed + 1);
  if (o == NULL)
    return CLI_EX_OSERR;
  size_t n = 0, copied = 0;
  pos = 0;
  while (next_field(msg, len, &pos, &f)) {
    if (name_is(msg, &f, "Bcc") || name_is(msg, &f, "Resent-Bcc")) {
      memcpy(o + n, msg + copied, f.start - copied);
      n += f.start - copied;
      copied = f.end;
    }
  }
  memcpy(o + n, msg + copied, len - copied);
  n += len - copied;
  o[n] = '\0';
  *out = o;
  *outlen = n;
  return 0;
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

/* A placeholder the synthetic messages use for the half that is not being
   read; never taken from the user's message. */
static const char SENTINEL[] = "smtpuv-send-placeholder@placeholder.invalid";

/* Parse `value` (a field body, folds included) as the To field (as_from 0)
   or the From field (as_from 1) of a synthetic message. */
static int parse_value(const char *value, size_t vlen, int as_from,
                       smtpuv_message **out, char **syn_out) {
  static const char pre_to[] = "From: <";
  /* the value, the placeholder twice and at most ~30 bytes of fields */
  size_t cap = vlen + 2 * sizeof SENTINEL + 64;
  char *syn = malloc(cap);
  if (syn == NULL)
    return SMTPUV_ENOMEM;
  size_t n = 0;
  if (as_from) {
    memcpy(syn, "From:", 5);
    n = 5;
    memcpy(syn + n, value, vlen);
    n += vlen;
    n += (size_t)snprintf(syn + n, cap - n, "\r\nTo: <%s>\r\n\r\n", SENTINEL);
  } else {
    n = (size_t)snprintf(syn, cap, "%s%s>\r\nTo:", pre_to, SENTINEL);
    memcpy(syn + n, value, vlen);
    n += vlen;
    n += (size_t)snprintf(syn + n, cap - n, "\r\nCc: <%s>\r\n\r\n", SENTINEL);
  }
  if (n >= cap) { /* cannot happen with the sizes above */
    free(syn);
    return SMTPUV_ELIMIT;
  }
  /* the message object borrows `syn`: the caller frees it after the
     object */
  int rc = smtpuv_message_new(NULL, syn, n, out);
  if (rc != 0) {
    free(syn);
    return rc;
  }
  *syn_out = syn;
  return 0;
}

/* Trim the field's value to exclude the final line ending. */
static size_t value_len(const char *d, const hfield *f) {
  size_t e = f->end;
  if (e > f->value_start && d[e - 1] == '\n')
    e--;
  if (e > f->value_start && d[e - 1] == '\r')
    e--;
  return e - f->value_start;
}

/* Add the addresses of one address-list value to `out`. */
static int add_list(const char *value, size_t n, cli_addrs *out) {
  smtpuv_message *m;
  char *syn;
  int rc = parse_value(value, n, 0, &m, &syn);
  if (rc == SMTPUV_ENOMEM)
    return CLI_EX_OSERR;
  if (rc != 0)
    return CLI_EX_DATAERR;
  const smtpuv_envelope *env = smtpuv_message_envelope(m);
  for (size_t i = 0; i < env->nrecipients && rc == 0; i++)
    if (strcmp(env->recipients[i], SENTINEL) != 0)
      rc = cli_addrs_add(out, env->recipients[i]);
  smtpuv_message_free(m);
  free(syn);
  return rc;
}

int cli_address_list(const char *s, cli_addrs *out) {
  if (strpbrk(s, "\r\n") != NULL)
    return CLI_EX_DATAERR;
  return add_list(s, strlen(s), out);
}

int cli_header_recipients(const char *msg, size_t len, cli_addrs *out,
                          char *err, size_t errlen) {
  size_t pos = 0;
  hfield f;
  while (next_field(msg, len, &pos, &f)) {
    if (!name_is(msg, &f, "To") && !name_is(msg, &f, "Cc") &&
        !name_is(msg, &f, "Bcc"))
      continue;
    int rc = add_list(msg + f.value_start, value_len(msg, &f), out);
    if (rc == CLI_EX_DATAERR)
      snprintf(err, errlen, "cannot read the addresses of the %.*s header",
               (int)f.name_len, msg + f.start);
    if (rc != 0)
      return rc;
  }
  return 0;
}

int cli_header_from(const char *msg, size_t len, char **out, char *err,
                    size_t errlen) {
  *out = NULL;
  size_t pos = 0;
  hfield f;
  while (next_field(msg, len, &pos, &f)) {
    if (!name_is(msg, &f, "From"))
      continue;
    smtpuv_message *m;
    char *syn;
    int rc =
        parse_value(msg + f.value_start, value_len(msg, &f), 1, &m, &syn);
    if (rc == SMTPUV_ENOMEM)
      return CLI_EX_OSERR;
    if (rc != 0) {
      snprintf(err, errlen, "cannot read an address from the From header");
      return CLI_EX_DATAERR;
    }
    const char *s = smtpuv_message_envelope(m)->sender;
    size_t n = strlen(s);
    *out = malloc(n + 1);
    if (*out != NULL)
      memcpy(*out, s, n + 1);
    smtpuv_message_free(m);
    free(syn);
    return *out != NULL ? 0 : CLI_EX_OSERR;
  }
  snprintf(err, errlen, "the message has no From header");
  return CLI_EX_DATAERR;
}

/* SPDX-License-Identifier: MIT */
/* msmtp's aliases file: "local: a@example.com, b@example.org" per line,
 * '#' starts a comment, "default:" matches every local address the file
 * does not name. Local addresses (no '@') of the envelope are replaced,
 * local names in an alias are expanded again (at most ALIAS_DEPTH_MAX
 * levels, as msmtp); the headers are not touched. Names are compared
 * case-insensitively. Unlike msmtp, the addresses keep the file's order and
 * a local recipient right after an expanded one is expanded too. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"

#define ALIAS_DEPTH_MAX 10

typedef struct alias {
  char *name;
  char *value;
  unsigned line;
} alias;

static void trim(char **s) {
  char *p = *s;
  while (*p == ' ' || *p == '\t')
    p++;
  char *e = p + strlen(p);
  while (e > p && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
    *--e = '\0';
  *s = p;
}

static const alias *find_alias(const alias *v, size_t n, const char *name) {
  for (size_t i = 0; i < n; i++)
    if (strcasecmp(v[i].name, name) == 0)
      return &v[i];
  return NULL;
}

/* Add the expansion of local address `addr` to `out`: its alias (else the
   "default" alias, else itself), local addresses in it expanded again. */
static int expand(const alias *v, size_t n, const char *addr, int depth,
                  cli_addrs *out) {
  if (depth > ALIAS_DEPTH_MAX)
    return CLI_EX_DATAERR;
  const alias *hit = find_alias(v, n, addr);
  if (hit == NULL)
    hit = find_alias(v, n, "default");
  if (hit == NULL)
    return cli_addrs_add(out, addr);
  cli_addrs list = {0};
  int rc = cli_address_list(hit->value, &list);
  for (size_t i = 0; rc == 0 && i < list.n; i++) {
    if (strchr(list.v[i], '@') != NULL || strcasecmp(list.v[i], addr) == 0 ||
        find_alias(v, n, list.v[i]) == NULL)
      rc = cli_addrs_add(out, list.v[i]);
    else
      rc = expand(v, n, list.v[i], depth + 1, out);
  }
  cli_addrs_free(&list);
  return rc;
}

int cli_aliases_apply(const char *file, cli_addrs *rcpts, char *err,
                      size_t errlen) {
  FILE *f = fopen(file, "r");
  if (f == NULL) {
    snprintf(err, errlen, "%s: %s", file, strerror(errno));
    return CLI_EX_IOERR;
  }
  alias *v = NULL;
  size_t n = 0, cap = 0;
  char line[4096];
  unsigned ln = 0;
  int rc = 0;
  while (rc == 0 && fgets(line, sizeof line, f) != NULL) {
    ln++;
    line[strcspn(line, "\n")] = '\0';
    char *hash = strchr(line, '#');
    if (hash != NULL)
      *hash = '\0';
    char *p = line;
    trim(&p);
    if (*p == '\0')
      continue;
    char *colon = strchr(p, ':');
    if (colon == NULL) {
      snprintf(err, errlen, "%s:%u: single ':' delimiter expected", file, ln);
      rc = CLI_EX_CONFIG;
      break;
    }
    *colon = '\0';
    char *name = p, *value = colon + 1;
    trim(&name);
    trim(&value);
    if (*name == '\0' || strpbrk(name, " \t@") != NULL) {
      snprintf(err, errlen, "%s:%u: invalid alias '%s'", file, ln, name);
      rc = CLI_EX_CONFIG;
      break;
    }
    for (size_t i = 0; i < n; i++)
      if (strcasecmp(v[i].name, name) == 0) {
        snprintf(err, errlen, "%s:%u: duplicate alias '%s'", file, ln, name);
        rc = CLI_EX_CONFIG;
      }
    if (rc != 0)
      break;
    /* the list must parse as addresses */
    cli_addrs check = {0};
    int a = cli_address_list(value, &check);
    cli_addrs_free(&check);
    if (a != 0) {
      snprintf(err, errlen, "%s:%u: cannot read the addresses of alias '%s'",
               file, ln, name);
      rc = a == CLI_EX_OSERR ? a : CLI_EX_CONFIG;
      break;
    }
    if (n == cap) {
      cap = cap ? cap * 2 : 16;
      alias *nv = realloc(v, cap * sizeof *nv);
      if (nv == NULL) {
        rc = CLI_EX_OSERR;
        break;
      }
      v = nv;
    }
    v[n].name = strdup(name);
    v[n].value = strdup(value);
    v[n].line = ln;
    n++;
    if (v[n - 1].name == NULL || v[n - 1].value == NULL)
      rc = CLI_EX_OSERR;
  }
  fclose(f);
  if (rc == 0) {
    cli_addrs out = {0};
    for (size_t r = 0; r < rcpts->n && rc == 0; r++) {
      const char *addr = rcpts->v[r];
      if (strchr(addr, '@') != NULL)
        rc = cli_addrs_add(&out, addr);
      else
        rc = expand(v, n, addr, 0, &out);
      if (rc == CLI_EX_DATAERR)
        snprintf(err, errlen, "%s: alias %s: more than %d levels of aliases",
                 file, addr, ALIAS_DEPTH_MAX);
    }
    if (rc == 0) {
      cli_addrs_free(rcpts);
      *rcpts = out;
    } else {
      cli_addrs_free(&out);
    }
  }
  for (size_t i = 0; i < n; i++) {
    free(v[i].name);
    free(v[i].value);
  }
  free(v);
  return rc;
}

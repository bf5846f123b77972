/* SPDX-License-Identifier: MIT */
/* msmtp configuration files: /etc/msmtprc, then the user's file
 * (~/.msmtprc, else $XDG_CONFIG_HOME/msmtp/config, or -C FILE).
 *
 * Lines: blank, "# comment", or "command [argument]"; the argument may be
 * double-quoted (\" and \\ inside). "defaults" starts the settings every
 * following account of the file starts with; "account NAME [: A[,B...]]"
 * starts an account that also inherits the settings of A, B (defined
 * before). Every command is checked when the file is read (through the
 * same code as the command line option of the same name), so an unknown
 * or unsupported command, or a bad value, is an error naming FILE:LINE.
 * "eval CMD" replaces its line with the first line CMD prints. A leading
 * "~" of a file name argument becomes $HOME.
 *
 * An account is kept as the ordered list of its commands (inherited first);
 * applying it replays them onto a cli_config, so later commands win. The
 * values, passwords included, are wiped when the files are freed. */
#include <errno.h>
#include <stdarg.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cli.h"

#define LINE_MAX_LEN 4096

static char *dup_str(const char *s) {
  size_t n = strlen(s);
  char *d = malloc(n + 1);
  if (d != NULL)
    memcpy(d, s, n + 1);
  return d;
}

static void wipe_free(char *s) {
  if (s != NULL) {
    OPENSSL_cleanse(s, strlen(s));
    free(s);
  }
}

static void account_clear(cli_rc_account *a) {
  for (size_t i = 0; i < a->n; i++) {
    free(a->v[i].cmd);
    wipe_free(a->v[i].value);
  }
  free(a->v);
  free(a->name);
  memset(a, 0, sizeof *a);
}

void cli_rc_free(cli_rc *rc) {
  for (size_t i = 0; i < rc->n; i++)
    account_clear(&rc->acc[i]);
  free(rc->acc);
  for (size_t i = 0; i < rc->nfiles; i++)
    free(rc->files[i]);
  memset(rc, 0, sizeof *rc);
}

static int account_add(cli_rc_account *a, const char *cmd, const char *value,
                       const char *file, unsigned line) {
  if (a->n == a->cap) {
    size_t cap = a->cap ? a->cap * 2 : 16;
    cli_rc_setting *v = realloc(a->v, cap * sizeof *v);
    if (v == NULL)
      return CLI_EX_OSERR;
    a->v = v;
    a->cap = cap;
  }
  cli_rc_setting *s = &a->v[a->n];
  s->cmd = dup_str(cmd);
  s->value = value != NULL ? dup_str(value) : NULL;
  s->file = file;
  s->line = line;
  if (s->cmd == NULL || (value != NULL && s->value == NULL)) {
    free(s->cmd);
    wipe_free(s->value);
    return CLI_EX_OSERR;
  }
  a->n++;
  return 0;
}

static int account_copy_into(cli_rc_account *dst, const cli_rc_account *src) {
  for (size_t i = 0; i < src->n; i++) {
    int rc = account_add(dst, src->v[i].cmd, src->v[i].value, src->v[i].file,
                         src->v[i].line);
    if (rc != 0)
      return rc;
  }
  dst->secret |= src->secret;
  return 0;
}

cli_rc_account *cli_rc_find(const cli_rc *rc, const char *name) {
  for (size_t i = 0; i < rc->n; i++)
    if (strcmp(rc->acc[i].name, name) == 0)
      return &rc->acc[i];
  return NULL;
}

/* Commands whose argument is a file name: "~" is $HOME. */
static int is_file_command(const char *cmd) {
  static const char *const f[] = {"tls_trust_file", "tls_cert_file",
                                  "tls_key_file",   "logfile",
                                  "aliases",        "tls_crl_file"};
  for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
    if (strcmp(cmd, f[i]) == 0)
      return 1;
  return 0;
}

/* Split a line into command and argument (in place). Returns 0, 1 for a
   blank or comment line, or -1 for an unterminated quote. */
static int split_line(char *line, char **cmd, char **arg) {
  char *p = line;
  while (*p == ' ' || *p == '\t')
    p++;
  if (*p == '\0' || *p == '#')
    return 1;
  *cmd = p;
  while (*p && *p != ' ' && *p != '\t')
    p++;
  if (*p == '\0') {
    *arg = NULL;
    return 0;
  }
  *p++ = '\0';
  while (*p == ' ' || *p == '\t')
    p++;
  char *e = p + strlen(p);
  while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
    *--e = '\0';
  if (*p == '\0') {
    *arg = NULL;
    return 0;
  }
  if (*p == '"') {
    char *o = p, *q = p + 1;
    for (;; q++) {
      if (*q == '\0')
        return -1;
      if (*q == '\\' && (q[1] == '"' || q[1] == '\\')) {
        *o++ = *++q;
        continue;
      }
      if (*q == '"')
        break;
      *o++ = *q;
    }
    if (q[1] != '\0')
      return -1; /* text after the closing quote */
    *o = '\0';
  }
  *arg = p;
  return 0;
}

#if defined(__GNUC__) || defined(__clang__)
__attribute__((format(printf, 3, 4)))
#endif
static int rc_fail(char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
  return CLI_EX_CONFIG;
}

/* Check one command by applying it to a scratch configuration. */
static int check_command(const char *cmd, const char *arg, char *why,
                         size_t whylen) {
  cli_config scratch;
  cli_config_init(&scratch);
  int rc = cli_config_command(&scratch, cmd, arg, why, whylen);
  cli_config_free(&scratch);
  return rc;
}

static int parse_account_line(cli_rc *rc, const char *file, unsigned ln,
                              char *arg, const cli_rc_account *defaults,
                              size_t first_of_file, cli_rc_account **cur,
                              char *err, size_t errlen) {
  if (arg == NULL)
    return rc_fail(err, errlen, "%s:%u: missing account name", file, ln);
  char *colon = strchr(arg, ':');
  char *parents = NULL;
  if (colon != NULL) {
    parents = colon + 1;
    *colon = '\0';
  }
  char *e = arg + strlen(arg);
  while (e > arg && (e[-1] == ' ' || e[-1] == '\t'))
    *--e = '\0';
  if (*arg == '\0')
    return rc_fail(err, errlen, "%s:%u: missing account name", file, ln);
  if (strpbrk(arg, ":, \t") != NULL)
    return rc_fail(err, errlen,
                "%s:%u: an account name must not contain colons, commas or "
                "blanks",
                file, ln);
  /* defined in this file already: an error; in the system file: replaced */
  for (size_t i = 0; i < rc->n; i++)
    if (strcmp(rc->acc[i].name, arg) == 0) {
      if (i >= first_of_file)
        return rc_fail(err, errlen, "%s:%u: account %s was already defined",
                    file, ln, arg);
      account_clear(&rc->acc[i]);
      memmove(&rc->acc[i], &rc->acc[i + 1],
              (rc->n - i - 1) * sizeof rc->acc[0]);
      rc->n--;
      first_of_file--;
      break;
    }
  if (rc->n == rc->cap) {
    size_t cap = rc->cap ? rc->cap * 2 : 8;
    cli_rc_account *v = realloc(rc->acc, cap * sizeof *v);
    if (v == NULL)
      return CLI_EX_OSERR;
    rc->acc = v;
    rc->cap = cap;
  }
  cli_rc_account *a = &rc->acc[rc->n];
  memset(a, 0, sizeof *a);
  a->name = dup_str(arg);
  a->file = file;
  a->line = ln;
  if (a->name == NULL)
    return CLI_EX_OSERR;
  rc->n++;
  int r = account_copy_into(a, defaults);
  if (r != 0)
    return r;
  for (char *p = parents; p != NULL && r == 0;) {
    char *comma = strchr(p, ',');
    if (comma != NULL)
      *comma = '\0';
    while (*p == ' ' || *p == '\t')
      p++;
    char *pe = p + strlen(p);
    while (pe > p && (pe[-1] == ' ' || pe[-1] == '\t'))
      *--pe = '\0';
    if (*p == '\0')
      return rc_fail(err, errlen, "%s:%u: missing account name after ':'",
                  file, ln);
    cli_rc_account *parent = NULL;
    for (size_t i = 0; i + 1 < rc->n; i++)
      if (strcmp(rc->acc[i].name, p) == 0)
        parent = &rc->acc[i];
    if (parent == NULL)
      return rc_fail(err, errlen, "%s:%u: account %s not (yet) defined", file,
                  ln, p);
    a = &rc->acc[rc->n - 1];
    r = account_copy_into(a, parent);
    p = comma != NULL ? comma + 1 : NULL;
  }
  *cur = &rc->acc[rc->n - 1];
  return r;
}

static int parse_file(cli_rc *rc, FILE *f, const char *file, char *err,
                      size_t errlen) {
  char line[LINE_MAX_LEN + 2];
  char why[400];
  unsigned ln = 0;
  cli_rc_account defaults;
  memset(&defaults, 0, sizeof defaults);
  cli_rc_account *cur = NULL; /* NULL: before any account or in defaults */
  int in_defaults = 0;
  size_t first_of_file = rc->n;
  int r = 0;
  char *evald = NULL;
  while (r == 0 && fgets(line, sizeof line, f) != NULL) {
    ln++;
    size_t n = strlen(line);
    if (n > 0 && line[n - 1] == '\n')
      line[--n] = '\0';
    else if (n > LINE_MAX_LEN) {
      r = rc_fail(err, errlen, "%s:%u: longer than %d characters", file, ln,
               LINE_MAX_LEN);
      break;
    }
    if (n > 0 && line[n - 1] == '\r')
      line[--n] = '\0';
    char *cmd, *arg;
    int s = split_line(line, &cmd, &arg);
    if (s == 1)
      continue;
    if (s < 0) {
      r = rc_fail(err, errlen, "%s:%u: unterminated or misplaced quote", file,
               ln);
      break;
    }
    if (strcmp(cmd, "eval") == 0) {
      if (arg == NULL) {
        r = rc_fail(err, errlen, "%s:%u: command eval needs an argument", file,
                 ln);
        break;
      }
      if (evald == NULL && (evald = malloc(LINE_MAX_LEN + 2)) == NULL) {
        r = CLI_EX_OSERR;
        break;
      }
      if (cli_passwordeval(arg, evald, LINE_MAX_LEN + 1, why, sizeof why) !=
          0) {
        r = rc_fail(err, errlen, "%s:%u: eval: %s", file, ln, why);
        break;
      }
      s = split_line(evald, &cmd, &arg);
      if (s == 1)
        continue;
      if (s < 0 || strcmp(cmd, "eval") == 0 || strcmp(cmd, "account") == 0 ||
          strcmp(cmd, "defaults") == 0) {
        r = rc_fail(err, errlen, "%s:%u: eval: the command printed an unusable "
                              "line",
                 file, ln);
        break;
      }
    }
    if (strcmp(cmd, "defaults") == 0) {
      if (arg != NULL) {
        r = rc_fail(err, errlen, "%s:%u: command defaults does not take an "
                              "argument",
                 file, ln);
        break;
      }
      in_defaults = 1;
      cur = NULL;
      continue;
    }
    if (strcmp(cmd, "account") == 0) {
      in_defaults = 0;
      r = parse_account_line(rc, file, ln, arg, &defaults, first_of_file,
                             &cur, err, errlen);
      continue;
    }
    /* a setting */
    char expanded[LINE_MAX_LEN + 512];
    if (arg != NULL && arg[0] == '~' && (arg[1] == '/' || arg[1] == '\0') &&
        is_file_command(cmd)) {
      const char *home = getenv("HOME");
      snprintf(expanded, sizeof expanded, "%s%s", home ? home : "", arg + 1);
      arg = expanded;
    }
    int c = check_command(cmd, arg, why, sizeof why);
    if (c == CLI_EX_OSERR) {
      r = c;
      break;
    }
    if (c != 0) {
      if (strncmp(why, "unknown command", 15) == 0 ||
          strstr(why, "not supported") != NULL)
        r = rc_fail(err, errlen, "%s:%u: %s", file, ln, why);
      else
        r = rc_fail(err, errlen, "%s:%u: invalid argument for command %s: %s",
                 file, ln, cmd, why);
      break;
    }
    if (!in_defaults && cur == NULL) {
      r = rc_fail(err, errlen,
               "%s:%u: command %s outside of an account (start one with "
               "'account NAME' or 'defaults')",
               file, ln, cmd);
      break;
    }
    cli_rc_account *target = in_defaults ? &defaults : cur;
    r = account_add(target, cmd, arg, file, ln);
    if (strcmp(cmd, "password") == 0) {
      target->secret = 1;
      rc->secret = 1;
    }
  }
  if (r == 0 && ferror(f))
    r = rc_fail(err, errlen, "%s: read error: %s", file, strerror(errno));
  if (r == 0)
    for (size_t i = first_of_file; i < rc->n; i++)
      if (rc->acc[i].secret)
        rc->secret = 1;
  if (evald != NULL) {
    OPENSSL_cleanse(evald, LINE_MAX_LEN + 2);
    free(evald);
  }
  OPENSSL_cleanse(line, sizeof line);
  account_clear(&defaults);
  return r;
}

int cli_rc_load(cli_rc *rc, const char *path, int required, int check_owner,
                char *err, size_t errlen) {
  FILE *f = fopen(path, "r");
  if (f == NULL) {
    if (!required && (errno == ENOENT || errno == ENOTDIR))
      return 0;
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return required ? CLI_EX_IOERR : CLI_EX_CONFIG;
  }
  if (rc->nfiles == sizeof rc->files / sizeof rc->files[0]) {
    fclose(f);
    return rc_fail(err, errlen, "%s: too many configuration files", path);
  }
  char *name = dup_str(path);
  if (name == NULL) {
    fclose(f);
    return CLI_EX_OSERR;
  }
  rc->files[rc->nfiles++] = name;
  if (check_owner)
    rc->user_file = name;
  int had_secret = rc->secret;
  rc->secret = 0;
  int r = parse_file(rc, f, name, err, errlen);
  if (r == 0 && rc->secret) {
    /* like msmtp, but checked for root as well (msmtp skips it for root) */
    struct stat st;
    if (fstat(fileno(f), &st) != 0)
      r = rc_fail(err, errlen, "%s: %s", name, strerror(errno));
    else if (check_owner && st.st_uid != geteuid() && geteuid() != 0)
      r = rc_fail(err, errlen,
               "%s: contains secrets and therefore must be owned by you",
               name);
    else if (check_owner &&
             (st.st_mode & (S_IXUSR | S_IRWXG | S_IRWXO)) != 0)
      r = rc_fail(err, errlen,
               "%s: contains secrets and therefore must have no more than "
               "user read/write permissions",
               name);
  }
  rc->secret |= had_secret;
  fclose(f);
  return r;
}

int cli_rc_apply(const cli_rc_account *a, cli_config *c, char *err,
                 size_t errlen) {
  char why[400];
  for (size_t i = 0; i < a->n; i++) {
    int r = cli_config_command(c, a->v[i].cmd, a->v[i].value, why, sizeof why);
    if (r != 0) {
      snprintf(err, errlen, "%s:%u: %s", a->v[i].file, a->v[i].line, why);
      return r;
    }
  }
  return 0;
}

/* The `from` of an account after substitution, or NULL. */
static const char *account_from(const cli_rc_account *a, char *buf,
                                size_t cap) {
  const char *from = NULL;
  for (size_t i = 0; i < a->n; i++)
    if (strcmp(a->v[i].cmd, "from") == 0)
      from = a->v[i].value;
  if (from == NULL || *from == '\0')
    return NULL;
  if (cli_expand_from(from, buf, cap) != 0)
    return NULL;
  return buf;
}

static int from_matches(const char *from, const char *pattern) {
  if (strpbrk(pattern, "?*[") != NULL)
    return fnmatch(pattern, from, 0) == 0;
  return strcasecmp(from, pattern) == 0;
}

cli_rc_account *cli_rc_by_from(const cli_rc *rc, const char *from) {
  char buf[1024], plain[1024];
  const char *plus = strchr(from, '+'), *at = strchr(from, '@');
  plain[0] = '\0';
  if (plus != NULL && at != NULL && plus < at &&
      strlen(from) < sizeof plain) {
    size_t k = (size_t)(plus - from);
    memcpy(plain, from, k);
    snprintf(plain + k, sizeof plain - k, "%s", at);
  }
  /* the user's accounts first: they override the system's */
  for (size_t pass = 0; pass < 2; pass++)
    for (size_t i = 0; i < rc->n; i++) {
      cli_rc_account *a = &rc->acc[i];
      int user = rc->user_file != NULL && a->file == rc->user_file;
      if ((pass == 0) != user)
        continue;
      const char *af = account_from(a, buf, sizeof buf);
      if (af == NULL)
        continue;
      if (from_matches(from, af))
        return a;
      if (plain[0] && strchr(af, '+') == NULL && from_matches(plain, af))
        return a;
    }
  return NULL;
}

void cli_rc_wipe_passwords(cli_rc *rc) {
  for (size_t i = 0; i < rc->n; i++)
    for (size_t k = 0; k < rc->acc[i].n; k++)
      if (strcmp(rc->acc[i].v[k].cmd, "password") == 0 &&
          rc->acc[i].v[k].value != NULL)
        OPENSSL_cleanse(rc->acc[i].v[k].value,
                        strlen(rc->acc[i].v[k].value));
}

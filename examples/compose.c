/* SPDX-License-Identifier: MIT */
/* compose: print a composed message to stdout (smtpuv/compose.h, core only).
 *
 *   compose --from ADDR --to ADDR [--to ADDR...] --subject TEXT --text FILE
 *           [--html FILE] [--attach FILE...]
 *
 * Arguments and files are UTF-8. Attachments are streamed from their files
 * (bounded memory whatever their size). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <smtpuv/compose.h>

static char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return NULL;
  size_t cap = 4096, n = 0;
  char *b = malloc(cap);
  size_t r;
  while (b != NULL && (r = fread(b + n, 1, cap - n, f)) > 0) {
    n += r;
    if (n == cap) {
      char *nb = realloc(b, cap *= 2);
      if (nb == NULL)
        free(b);
      b = nb;
    }
  }
  int bad = ferror(f);
  fclose(f);
  if (bad) {
    free(b);
    return NULL;
  }
  *len = n;
  return b;
}

static int usage(void) {
  fprintf(stderr, "usage: compose --from ADDR --to ADDR [--to ADDR...] "
                  "--subject TEXT --text FILE [--html FILE] [--attach FILE...]\n");
  return 2;
}

static int check(int rc, const char *what, const char *arg) {
  if (rc != 0)
    fprintf(stderr, "compose: %s%s%s: %s\n", what, arg ? " " : "",
            arg ? arg : "", smtpuv_strerror(rc));
  return rc;
}

int main(int argc, char **argv) {
  const char *from = NULL, *subject = NULL, *text = NULL, *html = NULL;
  int nto = 0;
  smtpuv_compose *c;
  if (smtpuv_compose_new(NULL, 0, &c) != 0)
    return 1;
  int rc = 0;
  for (int i = 1; i < argc && rc == 0; i++) {
    const char *o = argv[i];
    if (i + 1 >= argc)
      return usage();
    const char *v = argv[++i];
    if (strcmp(o, "--from") == 0) {
      from = v;
      rc = check(smtpuv_compose_address(c, SMTPUV_COMPOSE_FROM, NULL, v), "--from", v);
    } else if (strcmp(o, "--to") == 0) {
      nto++;
      rc = check(smtpuv_compose_address(c, SMTPUV_COMPOSE_TO, NULL, v), "--to", v);
    } else if (strcmp(o, "--subject") == 0) {
      subject = v;
      rc = check(smtpuv_compose_subject(c, v), "--subject", NULL);
    } else if (strcmp(o, "--text") == 0 || strcmp(o, "--html") == 0) {
      int is_text = o[2] == 't';
      size_t len;
      char *b = slurp(v, &len);
      if (b == NULL) {
        perror(v);
        rc = 1;
        break;
      }
      rc = check(is_text ? smtpuv_compose_text(c, b, len)
                         : smtpuv_compose_html(c, b, len), o, v);
      free(b);
      if (is_text)
        text = v;
      else
        html = v;
    } else if (strcmp(o, "--attach") == 0) {
      smtpuv_compose_part p = SMTPUV_COMPOSE_PART_INIT;
      p.path = v;
      const char *base = strrchr(v, '/');
      p.filename = base ? base + 1 : v;
      rc = check(smtpuv_compose_attach(c, &p), "--attach", v);
    } else {
      return usage();
    }
  }
  (void)html;
  if (rc == 0 && (from == NULL || nto == 0 || subject == NULL || text == NULL))
    return usage();
  if (rc == 0)
    rc = check(smtpuv_compose_finish(c), "message", NULL);
  static char buf[65536];
  long r = 0;
  while (rc == 0 && (r = smtpuv_compose_read(c, buf, sizeof buf)) > 0)
    if (fwrite(buf, 1, (size_t)r, stdout) != (size_t)r)
      rc = 1;
  if (rc == 0 && r < 0)
    rc = check((int)r, "reading", NULL);
  smtpuv_compose_free(c);
  return rc == 0 && fflush(stdout) == 0 ? 0 : 1;
}

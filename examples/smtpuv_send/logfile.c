/* SPDX-License-Identifier: MIT */
/* msmtp's log: one line per message, in a file (logfile, -X; "-" is
 * standard output; each line starts with the time in logfile_time_format,
 * default "%b %d %H:%M:%S", "none" for no time) and/or to syslog (LOG_INFO,
 * LOG_ERR for a failure, in the chosen facility). Single quotes inside the
 * quoted texts become '?', control characters too, so a line stays a line
 * and is easy to parse. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

static void add_clean(cli_buf *b, const char *s) {
  for (const unsigned char *p = (const unsigned char *)s; p && *p; p++) {
    if (*p == '\r')
      continue;
    if (*p == '\n')
      cli_buf_puts(b, "\\n");
    else if (*p == '\'' || *p < 0x20 || *p == 0x7f)
      cli_buf_puts(b, "?");
    else
      cli_buf_add(b, p, 1);
  }
}

void cli_log_info(cli_buf *b, const cli_config *c, const char *from,
                  const cli_addrs *rcpts, uint64_t mailsize,
                  const smtpuv_send_result *r, const char *errmsg,
                  int exit_code) {
  int auth = c->auth == CLI_AUTH_ON || (c->auth != CLI_AUTH_OFF && c->user);
  cli_buf_puts(b, "host=");
  add_clean(b, c->host ? c->host : "");
  cli_buf_printf(b, " tls=%s auth=%s ", c->tls ? "on" : "off",
                 auth ? "on" : "off");
  if (auth && c->user != NULL) {
    cli_buf_puts(b, "user=");
    add_clean(b, c->user);
    cli_buf_puts(b, " ");
  }
  cli_buf_puts(b, "from=");
  add_clean(b, from ? from : "");
  cli_buf_puts(b, " recipients=");
  for (size_t i = 0; rcpts != NULL && i < rcpts->n; i++) {
    if (i > 0)
      cli_buf_puts(b, ",");
    add_clean(b, rcpts->v[i]);
  }
  cli_buf_puts(b, " ");
  if (exit_code == 0)
    cli_buf_printf(b, "mailsize=%llu ", (unsigned long long)mailsize);
  if (r != NULL) {
    /* the deciding reply, as msmtp logs it (the final reply on success):
       a refused recipient's when one was refused, else the message's */
    int code = r->reply_code;
    const char *enh = r->reply_enhanced;
    const char *text = cli_reply_text(r->reply_text, enh);
    for (size_t i = 0; exit_code != 0 && i < r->nrecipients; i++)
      if (!r->recipients[i].accepted && r->recipients[i].code != 0) {
        code = r->recipients[i].code;
        enh = r->recipients[i].enhanced;
        text = cli_reply_text(r->recipients[i].text, enh);
        break;
      }
    if (code != 0) {
      cli_buf_printf(b, "smtpstatus=%d smtpmsg='%d", code, code);
      if (enh != NULL && *enh) {
        cli_buf_puts(b, " ");
        add_clean(b, enh);
      }
      if (text != NULL && *text) {
        cli_buf_puts(b, " ");
        add_clean(b, text);
      }
      cli_buf_puts(b, "' ");
    }
  }
  if (exit_code != 0 && errmsg != NULL && *errmsg) {
    cli_buf_puts(b, "errormsg='");
    add_clean(b, errmsg);
    cli_buf_puts(b, "' ");
  }
  cli_buf_printf(b, "exitcode=%s", cli_exit_name(exit_code));
}

int cli_log_write(const cli_config *c, const char *info, int failed,
                  char *err, size_t errlen) {
  int rc = 0;
  if (c->syslog_on) {
    openlog(CLI_NAME, LOG_PID, c->syslog_facility);
    syslog(failed ? LOG_ERR : LOG_INFO, "%s", info);
    closelog();
  }
  if (c->logfile == NULL)
    return 0;
  char when[128] = "";
  const char *fmt = c->logfile_time_format ? c->logfile_time_format
                                           : "%b %d %H:%M:%S";
  if (strcmp(fmt, "none") != 0) {
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    if (strftime(when, sizeof when, fmt, &tm) == 0 && *fmt != '\0') {
      snprintf(err, errlen, "cannot log to %s: invalid logfile_time_format",
               c->logfile);
      return -1;
    }
  }
  cli_buf line = {0};
  if (when[0]) {
    cli_buf_puts(&line, when);
    cli_buf_puts(&line, " ");
  }
  cli_buf_puts(&line, info);
  cli_buf_puts(&line, "\n");
  if (line.oom) {
    cli_buf_free(&line);
    snprintf(err, errlen, "cannot log: out of memory");
    return -1;
  }
  if (strcmp(c->logfile, "-") == 0) {
    fputs(line.p, stdout);
    fflush(stdout);
    cli_buf_free(&line);
    return 0;
  }
  int fd = open(c->logfile, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    snprintf(err, errlen, "cannot log to %s: %s", c->logfile, strerror(errno));
    cli_buf_free(&line);
    return -1;
  }
  struct flock lk;
  memset(&lk, 0, sizeof lk);
  lk.l_type = F_WRLCK;
  lk.l_whence = SEEK_SET;
  (void)fcntl(fd, F_SETLKW, &lk); /* one writer at a time */
  ssize_t w = write(fd, line.p, line.len);
  if (w < 0 || (size_t)w != line.len) {
    snprintf(err, errlen, "cannot log to %s: %s", c->logfile,
             w < 0 ? strerror(errno) : "short write");
    rc = -1;
  }
  close(fd);
  cli_buf_free(&line);
  return rc;
}

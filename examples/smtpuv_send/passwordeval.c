/* SPDX-License-Identifier: MIT */
/* --passwordeval=CMD: run CMD with /bin/sh -c, stdin from /dev/null (the
 * message is on ours), stderr shared (gpg's prompts stay visible), and take
 * the first line of its standard output. Read with read(2) into our own
 * buffer (no stdio buffer keeps a copy), everything wiped afterwards. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cli.h"

int cli_passwordeval(const char *cmd, char *out, size_t cap, char *err,
                     size_t errlen) {
  if (cap < 2) {
    snprintf(err, errlen, "--passwordeval: internal buffer too small");
    return CLI_EX_CONFIG;
  }
  out[0] = '\0';
  int fds[2];
  if (pipe(fds) != 0) {
    snprintf(err, errlen, "--passwordeval: pipe: %s", strerror(errno));
    return CLI_EX_CONFIG;
  }
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    snprintf(err, errlen, "--passwordeval: fork: %s", strerror(errno));
    return CLI_EX_CONFIG;
  }
  if (pid == 0) {
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) {
      dup2(devnull, 0);
      if (devnull > 2)
        close(devnull);
    }
    dup2(fds[1], 1);
    close(fds[0]);
    if (fds[1] != 1)
      close(fds[1]);
    signal(SIGPIPE, SIG_DFL);
    execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
    _exit(127);
  }
  close(fds[1]);
  /* read everything (so the command never blocks on a full pipe), keep
     the first line */
  size_t n = 0;
  int too_long = 0, line_done = 0;
  char scratch[4096];
  for (;;) {
    ssize_t r;
    if (!line_done && n + 1 < cap)
      r = read(fds[0], out + n, cap - 1 - n);
    else
      r = read(fds[0], scratch, sizeof scratch);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      break;
    }
    if (r == 0)
      break;
    if (!line_done && n + 1 < cap) {
      char *nl = memchr(out + n, '\n', (size_t)r);
      if (nl != NULL) {
        line_done = 1;
        n = (size_t)(nl - out);
      } else {
        n += (size_t)r;
        if (n + 1 >= cap)
          too_long = 1, line_done = 1;
      }
    }
  }
  OPENSSL_cleanse(scratch, sizeof scratch);
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
    ;
  /* wipe whatever follows the first line */
  if (n < cap)
    OPENSSL_cleanse(out + n, cap - n);
  if (n > 0 && out[n - 1] == '\r')
    out[--n] = '\0';
  out[n] = '\0';
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    OPENSSL_cleanse(out, cap);
    if (WIFEXITED(status))
      snprintf(err, errlen, "--passwordeval command failed (exit status %d)",
               WEXITSTATUS(status));
    else
      snprintf(err, errlen, "--passwordeval command was killed by signal %d",
               WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    return CLI_EX_CONFIG;
  }
  if (too_long) {
    OPENSSL_cleanse(out, cap);
    snprintf(err, errlen,
             "--passwordeval: the first output line is longer than %zu bytes",
             cap - 2);
    return CLI_EX_CONFIG;
  }
  if (n == 0) {
    snprintf(err, errlen, "--passwordeval command printed nothing");
    return CLI_EX_CONFIG;
  }
  if (memchr(out, '\0', n) != NULL) {
    OPENSSL_cleanse(out, cap);
    snprintf(err, errlen, "--passwordeval output contains a NUL byte");
    return CLI_EX_CONFIG;
  }
  return 0;
}

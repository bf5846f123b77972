/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include "itest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>

static char workdir[256];
static char pkidir[300];
static char pathbuf[4][512];
static int pathnext;

double itest_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

void itest_sleep_ms(unsigned ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

const char *itest_server_path(const char *script) {
  const char *src = getenv("SMTPUV_SOURCE_DIR");
  char *p = pathbuf[pathnext++ % 4];
  snprintf(p, sizeof pathbuf[0], "%s/tests/servers/%s", src ? src : ".",
           script);
  return p;
}

const char *itest_workdir(void) {
  if (workdir[0] == '\0') {
    strcpy(workdir, "/tmp/smtpuv-it-XXXXXX");
    if (mkdtemp(workdir) == NULL) {
      perror("mkdtemp");
      abort();
    }
    chmod(workdir, 0755);
  }
  return workdir;
}

void itest_cleanup(void) {
  if (workdir[0] == '\0' || getenv("SMTPUV_KEEP_TEST_DIRS"))
    return;
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", workdir);
  if (system(cmd) != 0)
    fprintf(stderr, "cleanup of %s failed\n", workdir);
  workdir[0] = '\0';
  pkidir[0] = '\0';
}

pid_t itest_spawn(char *const argv[], const char *log) {
  pid_t pid = fork();
  if (pid < 0)
    return -1;
  if (pid == 0) {
    setpgid(0, 0);
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) {
      dup2(devnull, 0);
      close(devnull);
    }
    execv(argv[0], argv);
    _exit(127);
  }
  setpgid(pid, pid);
  return pid;
}

void itest_stop(pid_t pid) {
  if (pid <= 0)
    return;
  kill(-pid, SIGTERM);
  kill(pid, SIGTERM);
  for (int i = 0; i < 100; i++) {
    int st;
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid || (r < 0 && errno == ECHILD))
      return;
    usleep(20000);
  }
  kill(-pid, SIGKILL);
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
}

char *itest_read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return NULL;
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap + 1);
  for (;;) {
    if (n == cap) {
      cap *= 2;
      buf = realloc(buf, cap + 1);
    }
    size_t r = fread(buf + n, 1, cap - n, f);
    if (r == 0)
      break;
    n += r;
  }
  fclose(f);
  buf[n] = '\0';
  if (len != NULL)
    *len = n;
  return buf;
}

int itest_wait_ready(const char *log, double seconds, char *line,
                     size_t len) {
  double end = itest_now_ms() + seconds * 1000;
  while (itest_now_ms() < end) {
    char *s = itest_read_file(log, NULL);
    if (s != NULL) {
      char *p = strstr(s, "READY");
      if (p != NULL && strchr(p, '\n') != NULL) {
        char *nl = strchr(p, '\n');
        size_t n = (size_t)(nl - p);
        if (n >= len)
          n = len - 1;
        memcpy(line, p, n);
        line[n] = '\0';
        free(s);
        return 0;
      }
      free(s);
    }
    usleep(20000);
  }
  return -1;
}

int itest_run(const char *log, const char *script, const char *a1,
              const char *a2, const char *a3, const char *a4) {
  pid_t pid = fork();
  if (pid < 0)
    return -1;
  if (pid == 0) {
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
    char *argv[7] = {(char *)script, (char *)a1, (char *)a2,
                     (char *)a3,     (char *)a4, NULL, NULL};
    execv(script, argv);
    _exit(127);
  }
  int st;
  if (waitpid(pid, &st, 0) < 0)
    return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int itest_wait_file(const char *path, double seconds) {
  double end = itest_now_ms() + seconds * 1000;
  while (itest_now_ms() < end) {
    if (access(path, F_OK) == 0)
      return 0;
    usleep(10000);
  }
  return -1;
}

int itest_count_files(const char *dir) {
  DIR *d = opendir(dir);
  if (d == NULL)
    return 0;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.')
      n++;
  closedir(d);
  return n;
}

int itest_free_port(void) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t l = sizeof a;
  int port = -1;
  if (bind(s, (struct sockaddr *)&a, sizeof a) == 0 &&
      getsockname(s, (struct sockaddr *)&a, &l) == 0)
    port = ntohs(a.sin_port);
  close(s);
  return port;
}

const char *itest_pki(void) {
  if (pkidir[0] == '\0') {
    snprintf(pkidir, sizeof pkidir, "%s/pki", itest_workdir());
    char log[400];
    snprintf(log, sizeof log, "%s/gen_certs.log", itest_workdir());
    if (itest_run(log, itest_server_path("gen_certs.sh"), pkidir, NULL, NULL,
                  NULL) != 0) {
      fprintf(stderr, "gen_certs.sh failed\n");
      abort();
    }
  }
  return pkidir;
}

smtpuv_options *itest_options(int port, smtpuv_tls_mode mode) {
  smtpuv_options *o;
  if (smtpuv_options_new(NULL, &o) != 0)
    abort();
  char ca[400];
  snprintf(ca, sizeof ca, "%s/ca.crt", itest_pki());
  smtpuv_options_set_host(o, "127.0.0.1");
  smtpuv_options_set_port(o, (unsigned)port);
  smtpuv_options_set_tls(o, mode);
  smtpuv_options_set_ca(o, ca, NULL);
  smtpuv_options_set_tls_server_name(o, "localhost");
  smtpuv_options_set_ehlo_name(o, "client.test");
  smtpuv_options_set_timeout(o, SMTPUV_TIMEOUT_CONNECT, 5000);
  smtpuv_options_set_timeout(o, SMTPUV_TIMEOUT_COMMAND, 10000);
  smtpuv_options_set_timeout(o, SMTPUV_TIMEOUT_FINAL, 20000);
  return o;
}

typedef struct many {
  int n, done;
  smtpuv_send_result **results;
} many;

static void many_cb(smtpuv_client *c, const smtpuv_send_result *r,
                    void *data) {
  many *m = smtpuv_client_get_data(c);
  size_t i = (size_t)data;
  if (m->results != NULL)
    smtpuv_send_result_dup(NULL, r, &m->results[i]);
  if (++m->done == m->n)
    smtpuv_client_close(c, NULL);
}

int itest_send_many(const smtpuv_options *o, const smtpuv_envelope *env,
                    const smtpuv_body *body, int n,
                    smtpuv_send_result **results) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  smtpuv_client *c;
  if (smtpuv_client_new(&loop, o, &c) != 0)
    return -1;
  many m = {n, 0, results};
  smtpuv_client_set_data(c, &m);
  for (int i = 0; i < n; i++)
    if (smtpuv_client_send(c, env, body, many_cb, (void *)(size_t)i) != 0)
      return -1;
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  return m.done;
}

/* SPDX-License-Identifier: MIT */
/* Helpers for the integration tests: start the servers of tests/servers/ on
 * free loopback ports (each stopped by its PID), read back what they
 * received, and run the client. */
#ifndef SMTPUV_ITEST_H
#define SMTPUV_ITEST_H

#include <stddef.h>
#include <sys/types.h>

#include "smtpuv/client.h"

/* tests/servers/ path of a script ("aiosmtpd_server.py"). */
const char *itest_server_path(const char *script);

/* A fresh work directory (mode 755) under /tmp; removed by itest_cleanup()
   unless SMTPUV_KEEP_TEST_DIRS is set. */
const char *itest_workdir(void);
void itest_cleanup(void);

/* Start a program with stdout+stderr going to `log`, in its own process
   group. Returns its PID (> 0) or -1. */
pid_t itest_spawn(char *const argv[], const char *log);

/* Stop a spawned process: SIGTERM to its group, bounded wait, SIGKILL. */
void itest_stop(pid_t pid);

/* Wait (at most `seconds`) for a line starting with "READY" in `log`; copy
   it to `line`. Returns 0 or -1. */
int itest_wait_ready(const char *log, double seconds, char *line, size_t len);

/* Run a shell script synchronously (start/stop helpers that record their
   own PIDs); output appended to `log`. Returns the exit status. */
int itest_run(const char *log, const char *script, const char *a1,
              const char *a2, const char *a3, const char *a4);

/* Read a whole file (NUL-terminated, length in *len). NULL if missing. */
char *itest_read_file(const char *path, size_t *len);

/* Wait (at most `seconds`) until `path` exists. 0 or -1. */
int itest_wait_file(const char *path, double seconds);

/* Files in `dir` (count), 0 if missing. */
int itest_count_files(const char *dir);

/* A free TCP port on 127.0.0.1. */
int itest_free_port(void);

/* Certificates from gen_certs.sh in the work directory (made once). */
const char *itest_pki(void);

/* Options for 127.0.0.1:port with the test CA, TLS name "localhost" and
   short timeouts. */
smtpuv_options *itest_options(int port, smtpuv_tls_mode mode);

/* Declare `env` (a@example.com to the one recipient `rcpt`) and a buffer
   body `b` over `data`/`len`, in the current scope. */
#define ITEST_ONE_MESSAGE(env, b, rcpt, data, len)                             \
  const char *env##_to[] = {rcpt};                                             \
  smtpuv_envelope env = SMTPUV_ENVELOPE_INIT;                                  \
  env.sender = "a@example.com";                                                \
  env.recipients = env##_to;                                                   \
  env.nrecipients = 1;                                                         \
  smtpuv_body b;                                                               \
  smtpuv_body_init_buffer(&b, (data), (len))

/* Run a private loop with one client: queue `n` copies of (env, body) and
   wait for every callback. results[i] (n entries) get copies; the caller
   frees them. Returns the number of callbacks seen. */
int itest_send_many(const smtpuv_options *o, const smtpuv_envelope *env,
                    const smtpuv_body *body, int n,
                    smtpuv_send_result **results);

/* Monotonic milliseconds; sleep. */
double itest_now_ms(void);
void itest_sleep_ms(unsigned ms);

/* Check that the library's per-test allocator is balanced (wraps test_mem
   when available). */

#endif

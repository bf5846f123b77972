/* SPDX-License-Identifier: MIT */
/* XOAUTH2 with a bearer token fetched asynchronously, and fetched again when
 * the server rejects it (an expired token).
 *
 *   oauth2 HOST PORT CA-FILE USER TOKEN-COMMAND FROM TO
 *
 * TOKEN-COMMAND runs with /bin/sh on the loop (uv_spawn, output read
 * through a pipe, nothing blocks) each time the client needs a token; its
 * first line is the token. It gets one argument, "initial" or "refresh":
 * on "refresh" the previous token was refused and a cached one must not be
 * returned. In a real program the command would be your OAuth helper (or
 * the callback would make the HTTP request to the token endpoint itself);
 * `cat token.txt` reads a file.
 *
 * The flow: the client calls token_cb before AUTH; we start the command
 * and return at once; when the command ends we hand the token over with
 * smtpuv_auth_token_provide(), and the waiting session goes on. A 535 with
 * an XOAUTH2 error challenge makes the client call token_cb again with
 * rejected = 1, and retry AUTH once with the new token.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <smtpuv/client.h>

typedef struct token_job {
  uv_process_t proc;
  uv_pipe_t out;
  smtpuv_auth *auth; /* who is waiting for the token */
  char buf[8192];    /* the command's output (wiped after use) */
  char scratch[1024]; /* where output beyond buf goes (then ignored) */
  size_t len;
  int exited, eof, overflow;
  int64_t exit_status;
  int open_handles;
} token_job;

static const char *token_command;
static int token_requests;
static int status = 1;

static void job_handle_closed(uv_handle_t *h) {
  token_job *j = h->data;
  if (--j->open_handles == 0) {
    OPENSSL_cleanse(j, sizeof *j);
    free(j);
  }
}

/* Both the output and the exit status are in: answer the session. */
static void job_finish(token_job *j) {
  if (!j->exited || !j->eof)
    return;
  char *nl = memchr(j->buf, '\n', j->len);
  size_t n = nl ? (size_t)(nl - j->buf) : j->len;
  if (n > 0 && j->buf[n - 1] == '\r')
    n--;
  j->buf[n] = '\0';
  if (j->exit_status != 0 || n == 0 || j->overflow)
    smtpuv_auth_token_fail(j->auth, SMTPUV_EAUTH,
                           "the token command failed or printed nothing");
  else if (smtpuv_auth_token_provide(j->auth, j->buf) != 0)
    smtpuv_auth_token_fail(j->auth, SMTPUV_EAUTH,
                           "the token command printed an invalid token");
  uv_close((uv_handle_t *)&j->proc, job_handle_closed);
  uv_close((uv_handle_t *)&j->out, job_handle_closed);
}

static void on_exit_cb(uv_process_t *p, int64_t exit_status, int sig) {
  token_job *j = p->data;
  j->exited = 1;
  j->exit_status = sig ? -1 : exit_status;
  job_finish(j);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b) {
  token_job *j = h->data;
  (void)suggested;
  size_t room = sizeof j->buf - 1 - j->len;
  *b = uv_buf_init(j->buf + j->len, (unsigned)room);
  if (room == 0) { /* too much output: the token is unusable */
    j->overflow = 1;
    *b = uv_buf_init(j->scratch, sizeof j->scratch);
  }
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  token_job *j = s->data;
  (void)b;
  if (n > 0 && !j->overflow)
    j->len += (size_t)n;
  if (n < 0) { /* EOF or error: the output is complete */
    uv_read_stop(s);
    j->eof = 1;
    job_finish(j);
  }
}

/* The client needs a token (rejected = 1: the last one was refused). */
static void token_cb(smtpuv_auth *auth, int rejected, void *data) {
  uv_loop_t *loop = data;
  token_requests++;
  printf("token requested (%s)\n", rejected ? "refresh" : "initial");
  token_job *j = calloc(1, sizeof *j);
  if (j == NULL) {
    smtpuv_auth_token_fail(auth, SMTPUV_ENOMEM, "out of memory");
    return;
  }
  j->auth = auth;
  j->proc.data = j->out.data = j;
  uv_pipe_init(loop, &j->out, 0);
  j->open_handles = 1;
  char *args[] = {"sh", "-c", (char *)token_command, "token-command",
                  rejected ? "refresh" : "initial", NULL};
  uv_stdio_container_t stdio[3];
  stdio[0].flags = UV_IGNORE;
  stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
  stdio[1].data.stream = (uv_stream_t *)&j->out;
  stdio[2].flags = UV_INHERIT_FD;
  stdio[2].data.fd = 2;
  uv_process_options_t po;
  memset(&po, 0, sizeof po);
  po.file = "/bin/sh";
  po.args = args;
  po.exit_cb = on_exit_cb;
  po.stdio = stdio;
  po.stdio_count = 3;
  int rc = uv_spawn(loop, &j->proc, &po);
  if (rc != 0) {
    /* the process handle must still be closed after a failed spawn */
    j->open_handles = 2;
    uv_close((uv_handle_t *)&j->proc, job_handle_closed);
    uv_close((uv_handle_t *)&j->out, job_handle_closed);
    smtpuv_auth_token_fail(auth, SMTPUV_EAUTH, uv_strerror(rc));
    return;
  }
  j->open_handles = 2;
  uv_read_start((uv_stream_t *)&j->out, on_alloc, on_read);
}

static void on_sent(smtpuv_client *c, const smtpuv_send_result *r, void *d) {
  (void)d;
  if (r->status == SMTPUV_SEND_SENT && r->error == 0) {
    printf("sent after %d token request%s: %d %s\n", token_requests,
           token_requests == 1 ? "" : "s", r->reply_code, r->reply_text);
    status = 0;
  } else {
    fprintf(stderr, "not sent (%s in %s): %s\n", smtpuv_err_name(r->error),
            smtpuv_phase_name(r->phase), r->message);
    status = r->error == SMTPUV_EAUTH ? 77 : 1;
  }
  smtpuv_client_close(c, NULL);
}

int main(int argc, char **argv) {
  if (argc != 8) {
    fprintf(stderr,
            "usage: %s HOST PORT CA-FILE USER TOKEN-COMMAND FROM TO\n",
            argv[0]);
    return 64;
  }
  uv_loop_t *loop = uv_default_loop();
  token_command = argv[5];

  smtpuv_options *o;
  if (smtpuv_options_new(NULL, &o) != 0)
    return 71;
  smtpuv_options_set_host(o, argv[1]);
  smtpuv_options_set_port(o, (unsigned)strtoul(argv[2], NULL, 10));
  smtpuv_options_set_ca(o, argv[3], NULL);
  smtpuv_auth_credentials cr = SMTPUV_AUTH_CREDENTIALS_INIT;
  cr.username = argv[4];
  cr.token_cb = token_cb;
  cr.token_data = loop;
  smtpuv_options_set_auth_credentials(o, &cr);
  smtpuv_options_set_auth_mechanism(o, "XOAUTH2");
  smtpuv_client *c;
  int rc = smtpuv_client_new(loop, o, &c);
  smtpuv_options_free(o);
  if (rc != 0) {
    fprintf(stderr, "%s\n", smtpuv_strerror(rc));
    return 70;
  }

  static char msg[2048];
  snprintf(msg, sizeof msg,
           "From: %s\r\nTo: %s\r\nSubject: XOAUTH2 example\r\n\r\n"
           "Sent with a bearer token.\r\n",
           argv[6], argv[7]);
  const char *to[] = {argv[7]};
  smtpuv_envelope env = SMTPUV_ENVELOPE_INIT;
  env.sender = argv[6];
  env.recipients = to;
  env.nrecipients = 1;
  smtpuv_body body;
  smtpuv_body_init_buffer(&body, msg, strlen(msg));
  rc = smtpuv_client_send(c, &env, &body, on_sent, NULL);
  if (rc != 0) {
    fprintf(stderr, "%s\n", smtpuv_strerror(rc));
    smtpuv_client_close(c, NULL);
  }
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
  return status;
}

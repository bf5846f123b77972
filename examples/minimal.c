/* SPDX-License-Identifier: MIT */
/* The shortest complete program: one message over STARTTLS with AUTH.
 * usage: minimal HOST PORT USER PASSWORD FROM TO [CA-FILE]        */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <smtpuv/client.h>

static int status = 1;

static void on_sent(smtpuv_client *c, const smtpuv_send_result *r, void *d) {
  (void)d;
  if (r->status == SMTPUV_SEND_SENT && r->error == 0) {
    printf("sent: %d %s\n", r->reply_code, r->reply_text);
    status = 0;
  } else {
    fprintf(stderr, "%s: %s\n", smtpuv_send_status_name(r->status),
            r->message);
  }
  smtpuv_client_close(c, NULL); /* QUIT, then the client frees itself */
}

int main(int argc, char **argv) {
  if (argc < 7) {
    fprintf(stderr, "usage: %s HOST PORT USER PASSWORD FROM TO [CA-FILE]\n",
            argv[0]);
    return 64;
  }
  smtpuv_options *o;
  smtpuv_client *c;
  smtpuv_options_new(NULL, &o); /* STARTTLS required, certificate checked */
  smtpuv_options_set_host(o, argv[1]);
  smtpuv_options_set_port(o, (unsigned)atoi(argv[2]));
  smtpuv_options_set_credentials(o, argv[3], argv[4], NULL);
  if (argc > 7)
    smtpuv_options_set_ca(o, argv[7], NULL);
  int rc = smtpuv_client_new(uv_default_loop(), o, &c);
  smtpuv_options_free(o); /* the client has its own copy */
  if (rc != 0)
    return fprintf(stderr, "%s\n", smtpuv_strerror(rc)), 70;

  static char msg[1024];
  snprintf(msg, sizeof msg, "From: %s\r\nTo: %s\r\nSubject: Hello\r\n\r\n"
           "Sent by smtpuv's minimal example.\r\n", argv[5], argv[6]);
  const char *to[] = {argv[6]};
  smtpuv_envelope env = SMTPUV_ENVELOPE_INIT;
  env.sender = argv[5];
  env.recipients = to;
  env.nrecipients = 1;
  smtpuv_body body;
  smtpuv_body_init_buffer(&body, msg, strlen(msg));
  rc = smtpuv_client_send(c, &env, &body, on_sent, NULL);
  if (rc != 0) {
    fprintf(stderr, "%s\n", smtpuv_strerror(rc));
    smtpuv_client_close(c, NULL);
  }
  uv_run(uv_default_loop(), UV_RUN_DEFAULT);
  return status;
}

/* SPDX-License-Identifier: MIT */
/* The blocking convenience: no event loop in sight.
 *
 *   sync HOST PORT CA-FILE USER PASSWORD < message.eml
 *
 * Reads a whole message on standard input and sends it with
 * smtpuv_send_message_sync(): the envelope comes from the message's own
 * headers (Sender or From; To, Cc and Bcc, with Bcc never transmitted),
 * STARTTLS is required and the certificate checked against CA-FILE
 * ("-" for the system's trust store). Prints one line per recipient and
 * exits 0 when every recipient was accepted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <smtpuv/client.h>

static char *read_all(FILE *f, size_t *len) {
  size_t cap = 8192, n = 0;
  char *buf = malloc(cap);
  while (buf != NULL) {
    n += fread(buf + n, 1, cap - n, f);
    if (n < cap)
      break;
    char *nb = realloc(buf, cap *= 2);
    if (nb == NULL)
      free(buf);
    buf = nb;
  }
  *len = n;
  return buf;
}

int main(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: %s HOST PORT CA-FILE USER PASSWORD < message\n",
            argv[0]);
    return 64;
  }
  size_t len;
  char *msg = read_all(stdin, &len);
  if (msg == NULL) {
    fprintf(stderr, "out of memory\n");
    return 71;
  }

  smtpuv_options *o;
  if (smtpuv_options_new(NULL, &o) != 0)
    return 71;
  smtpuv_options_set_host(o, argv[1]);
  smtpuv_options_set_port(o, (unsigned)strtoul(argv[2], NULL, 10));
  if (strcmp(argv[3], "-") != 0)
    smtpuv_options_set_ca(o, argv[3], NULL);
  smtpuv_options_set_credentials(o, argv[4], argv[5], NULL);
  smtpuv_options_set_timeout(o, SMTPUV_TIMEOUT_COMMAND, 20000);

  smtpuv_send_result *r = NULL;
  int rc = smtpuv_send_message_sync(o, msg, len, &r);
  smtpuv_options_free(o);

  int status = 0;
  if (r == NULL) {
    /* nothing was queued: bad headers, bad address, no memory */
    fprintf(stderr, "not sent: %s (%s)\n", smtpuv_strerror(rc),
            smtpuv_err_name(rc));
    status = rc == SMTPUV_EHEADER || rc == SMTPUV_EADDRESS ? 65 : 70;
  } else {
    printf("%s: %s\n", smtpuv_send_status_name(r->status), r->message);
    for (size_t i = 0; i < r->nrecipients; i++) {
      const smtpuv_rcpt_result *x = &r->recipients[i];
      printf("  %-30s %s %d %s\n", x->address,
             x->accepted ? "accepted" : "refused ", x->code, x->text);
      if (!x->accepted)
        status = 1;
    }
    if (rc != 0 || r->status != SMTPUV_SEND_SENT)
      status = r->status == SMTPUV_SEND_UNKNOWN ? 75 : 1;
    smtpuv_send_result_free(r);
  }
  free(msg);
  return status;
}

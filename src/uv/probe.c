/* SPDX-License-Identifier: MIT */
/* smtpuv_client_probe() and smtpuv_client_verify(): a private client's one
 * connection whose conversation runs in probe mode (src/conv: greeting,
 * EHLO, STARTTLS and EHLO again when the TLS mode asks, AUTH for verify,
 * QUIT), and a report of what the server said about itself.
 *
 * The private client has the options' connection settings and their
 * shared SSL_CTX (and, for the probe, no credentials). When the connection
 * is gone the client is closed; the callback runs from the client's close
 * callback, after every handle is closed.
 */
#include <stdio.h>
#include <string.h>

#include "uv/client_int.h"

typedef struct probe {
  smtpuv_mem mem;
  smtpuv_probe_cb cb;
  void *data;
  /* the result, kept when the connection goes */
  int error;
  smtpuv_phase phase;
  char message[512];
  char peer[80];
  int greeting_code;
  char *greeting, *server_name, *ext, *ext_plain, *auth, *tls, *mech;
  unsigned ext_flags;
  uint64_t max_size;
  int authenticated;
} probe;

static void on_client_closed(smtpuv_client *c);

static char *dup_or_null(probe *p, const char *s) {
  return s != NULL ? smtpuv__strdup(&p->mem, s) : NULL;
}

/* The connection is about to be freed: keep what the report needs from
   its conversation, then close the client (its close callback reports). */
static void probe_gone(smtpuv__conn *cn) {
  probe *p = cn->owner;
  smtpuv__conv_probe r;
  smtpuv__conv_probe_result(cn->conv, &r);
  if (cn->peer[0] != '\0')
    snprintf(p->peer, sizeof p->peer,
             strchr(cn->peer, ':') != NULL ? "[%s]:%u" : "%s:%u", cn->peer,
             cn->client->opts.port);
  if (p->error == 0) {
    p->error = r.error;
    p->phase = r.phase;
    snprintf(p->message, sizeof p->message, "%s", r.message);
  }
  p->greeting_code = r.greeting_code;
  p->greeting = dup_or_null(p, r.greeting);
  p->server_name = dup_or_null(p, r.server_name);
  p->ext = dup_or_null(p, r.ext);
  p->ext_plain = dup_or_null(p, r.ext_plain);
  p->auth = dup_or_null(p, r.auth_mechanisms);
  p->tls = dup_or_null(p, smtpuv__conv_tls_summary(cn->conv));
  p->mech = dup_or_null(p, r.auth_mechanism);
  p->ext_flags = r.ext_flags;
  p->max_size = r.max_size;
  p->authenticated = r.authenticated;
  if (p->greeting == NULL || p->server_name == NULL || p->ext == NULL ||
      p->auth == NULL || p->mech == NULL ||
      (r.ext_plain != NULL && p->ext_plain == NULL) ||
      (smtpuv__conv_tls_summary(cn->conv) != NULL && p->tls == NULL)) {
    p->error = SMTPUV_ENOMEM;
    snprintf(p->message, sizeof p->message, "out of memory");
  }
  smtpuv_client_close(cn->client, on_client_closed);
}

static const smtpuv__conn_ops probe_ops = {NULL, probe_gone};

/* ---- API ------------------------------------------------------------------------ */

static void on_client_closed(smtpuv_client *c) {
  probe *p = smtpuv_client_get_data(c);
  smtpuv_probe_result r;
  memset(&r, 0, sizeof r);
  r.struct_size = sizeof r;
  r.error = p->error;
  r.phase = p->phase;
  r.message = p->message;
  r.peer = p->peer;
  r.greeting_code = p->greeting_code;
  r.greeting = p->greeting ? p->greeting : "";
  r.server_name = p->server_name ? p->server_name : "";
  r.extensions = p->ext ? p->ext : "";
  r.extensions_plain = p->ext_plain;
  r.ext_flags = p->ext_flags;
  r.max_size = p->max_size;
  r.auth_mechanisms = p->auth ? p->auth : "";
  r.tls = p->tls;
  r.authenticated = p->authenticated;
  r.auth_mechanism = p->mech ? p->mech : "";
  p->cb(&r, p->data);

  char **strs[] = {&p->greeting, &p->server_name, &p->ext, &p->ext_plain,
                   &p->auth,     &p->tls,         &p->mech};
  for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
    smtpuv__free(&p->mem, *strs[i]);
  smtpuv_mem m = p->mem;
  smtpuv__free(&m, p);
}

/* The private client: the options' connection settings, sharing their
   SSL_CTX; without credentials for a probe (nothing is authenticated, and
   credentials unfit for any mechanism must not stop it). */
static int probe_client(uv_loop_t *loop, const smtpuv_options *options,
                        int keep_credentials, smtpuv_client **out) {
  smtpuv_options o;
  int rc = smtpuv__options_copy(&o, options);
  if (rc != 0)
    return rc;
  if (!keep_credentials) {
    smtpuv_options_set_auth_credentials(&o, NULL);
    o.authenticator = NULL;
  }
  rc = smtpuv_client_new(loop, &o, out);
  smtpuv__options_clear(&o);
  return rc;
}

static int start(uv_loop_t *loop, const smtpuv_options *options,
                 smtpuv__conv_mode mode, smtpuv_probe_cb cb, void *data) {
  if (loop == NULL || options == NULL || cb == NULL || options->host == NULL)
    return SMTPUV_EINVAL;
  int verify = mode == SMTPUV__CONV_PROBE_AUTH;
  if (verify && !options->has_creds && options->authenticator == NULL)
    return SMTPUV_EINVAL;
  probe *p = smtpuv__calloc(&options->mem, 1, sizeof *p);
  if (p == NULL)
    return SMTPUV_ENOMEM;
  p->mem = options->mem;
  p->cb = cb;
  p->data = data;
  p->phase = SMTPUV_PHASE_QUIT;
  smtpuv_client *c;
  int rc = probe_client(loop, options, verify, &c);
  if (rc != 0) {
    smtpuv__free(&options->mem, p);
    return rc;
  }
  smtpuv_client_set_data(c, p);
  smtpuv__conn *cn;
  rc = smtpuv__conn_open(c, 0, mode, &probe_ops, p, &cn);
  if (rc != 0) {
    /* the client's handle closes on the loop: report from there */
    p->error = rc;
    p->phase = SMTPUV_PHASE_CONNECT;
    snprintf(p->message, sizeof p->message, "%s", smtpuv_strerror(rc));
    smtpuv_client_close(c, on_client_closed);
  }
  return 0;
}

int smtpuv_client_probe(uv_loop_t *loop, const smtpuv_options *options,
                        smtpuv_probe_cb cb, void *data) {
  return start(loop, options, SMTPUV__CONV_PROBE, cb, data);
}

int smtpuv_client_verify(uv_loop_t *loop, const smtpuv_options *options,
                         smtpuv_probe_cb cb, void *data) {
  return start(loop, options, SMTPUV__CONV_PROBE_AUTH, cb, data);
}

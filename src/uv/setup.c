/* SPDX-License-Identifier: MIT */
/* Setting up a session: the greeting, EHLO (HELO when EHLO is refused and
 * TLS is not required), STARTTLS, the TLS-required guard before AUTH, and
 * AUTH, until the connection is READY for messages (transaction.c).
 */
#include <stdarg.h>
#include <stdio.h>

#include "uv/session_int.h"

/* A setup step was refused by the server (or locally): fail the queue, then
   QUIT (RFC 5321 4.1.1.10) unless the server is already closing. */
static void setup_fail(smtpuv__conn *cn, int err, smtpuv_phase phase,
                       const smtpuv_reply *r, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;
static void setup_fail(smtpuv__conn *cn, int err, smtpuv_phase phase,
                       const smtpuv_reply *r, const char *fmt, ...) {
  char text[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  smtpuv__trace_info(cn, "error: %s", text);
  smtpuv__client_fail_queue(cn->client, SMTPUV_SEND_FAILED, err, phase, r,
                            text, cn->tls_summary);
  if (r != NULL && r->code == 421)
    smtpuv__conn_finish(cn);
  else
    smtpuv__session_quit(cn);
}

static void reply_fail(smtpuv__conn *cn, const smtpuv_reply *r,
                       smtpuv_phase phase, const char *what) {
  setup_fail(cn, smtpuv__session_reply_err(r->code), phase, r, "%s: %d %.*s",
             what, r->code, smtpuv__session_first_line_len(r), r->text);
}

static void send_ehlo(smtpuv__conn *cn, int helo) {
  smtpuv_client *c = cn->client;
  char literal[64];
  const char *name = c->ehlo_name;
  if (name[0] == '\0') {
    /* address literal of our end (RFC 5321 4.1.4) */
    smtpuv__conn_local_literal(cn, literal, sizeof literal);
    name = literal;
  }
  size_t before = smtpuv_proto_pending_output(cn->proto);
  int rc = helo ? smtpuv_proto_helo(cn->proto, name)
                : smtpuv_proto_ehlo(cn->proto, name);
  if (rc != 0) {
    setup_fail(cn, rc, SMTPUV_PHASE_EHLO, NULL, "%s %s: %s",
               helo ? "HELO" : "EHLO", name, smtpuv_strerror(rc));
    return;
  }
  smtpuv__trace_out(cn, before, SMTPUV__TR_CMD);
  cn->state = helo ? SMTPUV__C_HELO : SMTPUV__C_EHLO;
}

static void go_ready(smtpuv__conn *cn) { cn->state = SMTPUV__C_READY; }

static void auth_result(smtpuv__conn *cn, int rc, const smtpuv_reply *r) {
  if (rc == SMTPUV_AUTH_PENDING)
    return;
  if (rc == SMTPUV_EAGAIN) {
    cn->auth_waiting = 1;
    return;
  }
  cn->auth_waiting = 0;
  if (rc == 0) {
    smtpuv__trace_info(cn, "authenticated (%s)",
                       smtpuv_auth_session_mechanism(cn->auth));
    smtpuv_auth_session_free(cn->auth);
    cn->auth = NULL;
    go_ready(cn);
    return;
  }
  const char *why = smtpuv_auth_session_error_text(cn->auth);
  char text[400];
  snprintf(text, sizeof text, "AUTH %s: %s",
           smtpuv_auth_session_mechanism(cn->auth),
           why[0] ? why : smtpuv_strerror(rc));
  smtpuv_auth_session_free(cn->auth);
  cn->auth = NULL;
  setup_fail(cn, rc, SMTPUV_PHASE_AUTH, r, "%s", text);
}

static void on_auth_ready(smtpuv_auth_session *s, void *data) {
  smtpuv__conn *cn = data;
  (void)s;
  if (cn->state != SMTPUV__C_AUTH || !cn->auth_waiting || cn->auth == NULL)
    return;
  cn->auth_waiting = 0;
  size_t before = smtpuv_proto_pending_output(cn->proto);
  int rc = smtpuv_auth_session_resume(cn->auth);
  smtpuv__trace_out(cn, before, SMTPUV__TR_REDACT);
  auth_result(cn, rc, NULL);
  smtpuv__session_process(cn);
}

static void start_auth(smtpuv__conn *cn) {
  smtpuv_client *c = cn->client;
  if (c->auth == NULL) {
    go_ready(cn);
    return;
  }
  if (!cn->tls_up && smtpuv__session_tls_required(c)) {
    setup_fail(cn, SMTPUV_ENOTLS, SMTPUV_PHASE_TLS, NULL,
               "TLS is required and not established");
    return;
  }
  if (!cn->tls_up && !c->opts.allow_plain_auth) {
    setup_fail(cn, SMTPUV_EPLAINTEXT, SMTPUV_PHASE_AUTH, NULL,
               "refusing to authenticate over an unencrypted connection "
               "(allow it with smtpuv_options_set_allow_plaintext_auth)");
    return;
  }
  if (!(smtpuv_proto_extensions(cn->proto) & SMTPUV_EXT_AUTH)) {
    setup_fail(cn, SMTPUV_EAUTHMECH, SMTPUV_PHASE_AUTH, NULL,
               "credentials are set but the server offers no AUTH");
    return;
  }
  int rc = smtpuv_auth_session_new(&c->mem, cn->proto, c->auth, on_auth_ready,
                                   cn, &cn->auth);
  if (rc != 0) {
    setup_fail(cn, rc, SMTPUV_PHASE_AUTH, NULL, "AUTH: %s",
               smtpuv_strerror(rc));
    return;
  }
  cn->state = SMTPUV__C_AUTH;
  size_t before = smtpuv_proto_pending_output(cn->proto);
  rc = smtpuv_auth_session_start(cn->auth);
  smtpuv__trace_out(cn, before, SMTPUV__TR_REDACT);
  auth_result(cn, rc, NULL);
}

static void after_ehlo(smtpuv__conn *cn) {
  smtpuv_client *c = cn->client;
  unsigned ext = smtpuv_proto_extensions(cn->proto);
  if (!cn->tls_up && (c->opts.tls == SMTPUV_TLS_REQUIRED ||
                      (c->opts.tls == SMTPUV_TLS_OPPORTUNISTIC &&
                       (ext & SMTPUV_EXT_STARTTLS)))) {
    if (!(ext & SMTPUV_EXT_STARTTLS)) {
      setup_fail(cn, SMTPUV_ENOTLS, SMTPUV_PHASE_TLS, NULL,
                 "the server does not offer STARTTLS and TLS is required");
      return;
    }
    size_t before = smtpuv_proto_pending_output(cn->proto);
    int rc = smtpuv_proto_starttls(cn->proto);
    if (rc != 0) {
      setup_fail(cn, rc, SMTPUV_PHASE_TLS, NULL, "STARTTLS: %s",
                 smtpuv_strerror(rc));
      return;
    }
    smtpuv__trace_out(cn, before, SMTPUV__TR_CMD);
    cn->state = SMTPUV__C_STARTTLS;
    return;
  }
  start_auth(cn);
}

void smtpuv__session_connected(smtpuv__conn *cn) {
  cn->state = SMTPUV__C_GREETING;
  smtpuv__conn_timer(cn,
                     smtpuv__client_timeout(cn->client, SMTPUV_TIMEOUT_COMMAND));
}

void smtpuv__session_tls_done(smtpuv__conn *cn) {
  if (cn->state == SMTPUV__C_TLS_IMPLICIT) {
    cn->state = SMTPUV__C_GREETING;
  } else if (cn->state == SMTPUV__C_TLS_STARTTLS) {
    int rc = smtpuv_proto_tls_established(cn->proto);
    if (rc != 0) {
      smtpuv__session_fail(cn, rc, "after STARTTLS: %s", smtpuv_strerror(rc));
      return;
    }
    send_ehlo(cn, 0);
  }
  smtpuv__session_process(cn);
}

/* A reply to the greeting, EHLO, HELO, STARTTLS or AUTH. */
void smtpuv__setup_reply(smtpuv__conn *cn, const smtpuv_reply *r) {
  smtpuv_client *c = cn->client;
  switch (r->command) {
  case SMTPUV_CMD_GREETING:
    if (r->positive)
      send_ehlo(cn, 0);
    else if (r->code == 421)
      smtpuv__session_server_closing(cn, r);
    else
      reply_fail(cn, r, SMTPUV_PHASE_GREETING, "greeting");
    return;
  case SMTPUV_CMD_EHLO:
    if (r->positive)
      after_ehlo(cn);
    else if (r->code == 421)
      smtpuv__session_server_closing(cn, r);
    else if (r->code >= 500 && !smtpuv__session_tls_required(c))
      send_ehlo(cn, 1);
    else
      reply_fail(cn, r, SMTPUV_PHASE_EHLO, "EHLO");
    return;
  case SMTPUV_CMD_HELO:
    if (r->positive)
      after_ehlo(cn);
    else if (r->code == 421)
      smtpuv__session_server_closing(cn, r);
    else
      reply_fail(cn, r, SMTPUV_PHASE_EHLO, "HELO");
    return;
  case SMTPUV_CMD_STARTTLS:
    if (r->positive) {
      cn->want_tls = 1;
      cn->state = SMTPUV__C_TLS_STARTTLS;
    } else if (r->code == 421) {
      smtpuv__session_server_closing(cn, r);
    } else if (c->opts.tls == SMTPUV_TLS_OPPORTUNISTIC) {
      smtpuv__trace_info(cn, "STARTTLS refused; going on without TLS");
      start_auth(cn);
    } else {
      setup_fail(cn, SMTPUV_ENOTLS, SMTPUV_PHASE_TLS, r,
                 "STARTTLS refused: %d %.*s", r->code,
                 smtpuv__session_first_line_len(r), r->text);
    }
    return;
  case SMTPUV_CMD_AUTH: {
    if (cn->auth == NULL) {
      smtpuv__session_fail(cn, SMTPUV_EPROTO, "unexpected AUTH reply");
      return;
    }
    size_t before = smtpuv_proto_pending_output(cn->proto);
    int rc = smtpuv_auth_session_on_reply(cn->auth, r);
    smtpuv__trace_out(cn, before, SMTPUV__TR_REDACT);
    if (rc == SMTPUV_ESHUTDOWN) {
      smtpuv_auth_session_free(cn->auth);
      cn->auth = NULL;
      smtpuv__session_server_closing(cn, r);
      return;
    }
    auth_result(cn, rc, r);
    return;
  }
  default:
    return;
  }
}

/* SPDX-License-Identifier: MIT */
/* Setting up a session: the greeting, EHLO (HELO when EHLO is refused and
 * TLS is not required), STARTTLS, the TLS-required guard before AUTH, and
 * AUTH, until the conversation is READY for messages (transaction.c).
 *
 * The probe modes stop here: after the last EHLO (PROBE) or after AUTH
 * (PROBE_AUTH) they QUIT, keeping what the server said about itself.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "conv/conv_int.h"

static int probing(const smtpuv__conv *cv) {
  return cv->cfg.mode != SMTPUV__CONV_SEND;
}

void smtpuv__setup_fail(smtpuv__conv *cv, int err, smtpuv_phase phase,
                        const smtpuv_reply *r, const char *fmt, ...) {
  char text[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  smtpuv__trace_info(cv, "error: %s", text);
  smtpuv__conv_fail_setup(cv, err, phase, r, text);
  /* QUIT (RFC 5321 4.1.1.10) unless the server is already closing */
  if (r != NULL && r->code == 421)
    smtpuv__conv_finish(cv);
  else
    smtpuv__conv_quit(cv);
}

static void reply_fail(smtpuv__conv *cv, const smtpuv_reply *r,
                       smtpuv_phase phase, const char *what) {
  smtpuv__setup_fail(cv, smtpuv__conv_reply_err(r->code), phase, r,
                     "%s: %d %.*s", what, r->code,
                     smtpuv__conv_first_line_len(r), r->text);
}

static void send_ehlo(smtpuv__conv *cv, int helo) {
  const char *name = cv->ehlo[0] != '\0' ? cv->ehlo : cv->literal;
  size_t before = smtpuv_proto_pending_output(cv->proto);
  int rc = helo ? smtpuv_proto_helo(cv->proto, name)
                : smtpuv_proto_ehlo(cv->proto, name);
  if (rc != 0) {
    smtpuv__setup_fail(cv, rc, SMTPUV_PHASE_EHLO, NULL, "%s %s: %s",
                       helo ? "HELO" : "EHLO", name, smtpuv_strerror(rc));
    return;
  }
  smtpuv__trace_out(cv, before, SMTPUV__TR_CMD);
  cv->state = helo ? SMTPUV__CV_HELO : SMTPUV__CV_EHLO;
}

/* Setup is complete: carry messages, or end the probe. */
static void setup_done(smtpuv__conv *cv) {
  if (probing(cv)) {
    smtpuv__conv_quit(cv);
    return;
  }
  cv->state = SMTPUV__CV_READY;
}

/* ---- AUTH ---------------------------------------------------------------------- */

static void auth_result(smtpuv__conv *cv, int rc, const smtpuv_reply *r) {
  if (rc == SMTPUV_AUTH_PENDING)
    return;
  if (rc == SMTPUV_EAGAIN) {
    cv->auth_waiting = 1;
    cv->reply_clock = cv->now; /* the token's deadline */
    return;
  }
  cv->auth_waiting = 0;
  const char *mech = smtpuv_auth_session_mechanism(cv->auth);
  if (rc == 0) {
    smtpuv__trace_info(cv, "authenticated (%s)", mech);
    cv->authenticated = 1;
    snprintf(cv->auth_mech_used, sizeof cv->auth_mech_used, "%s", mech);
    smtpuv_auth_session_free(cv->auth);
    cv->auth = NULL;
    setup_done(cv);
    return;
  }
  const char *why = smtpuv_auth_session_error_text(cv->auth);
  char text[400];
  snprintf(text, sizeof text, "AUTH %s: %s", mech,
           why[0] ? why : smtpuv_strerror(rc));
  smtpuv_auth_session_free(cv->auth);
  cv->auth = NULL;
  smtpuv__setup_fail(cv, rc, SMTPUV_PHASE_AUTH, r, "%s", text);
}

/* The authenticator's ready callback: a token arrived (or failed). From
   inside an event the event goes on with it (advance()); from outside the
   transport is woken to drive the conversation. */
static void on_auth_ready(smtpuv_auth_session *s, void *data) {
  smtpuv__conv *cv = data;
  (void)s;
  if (cv->state != SMTPUV__CV_AUTH || !cv->auth_waiting || cv->auth == NULL)
    return;
  cv->auth_ready = 1;
  if (cv->in_event == 0) {
    cv->in_event++;
    smtpuv__setup_auth_resume(cv);
    cv->auth_ready = 0;
    cv->in_event--;
    if (cv->cfg.wake != NULL)
      cv->cfg.wake(cv->cfg.wake_data);
  }
}

void smtpuv__setup_auth_resume(smtpuv__conv *cv) {
  if (cv->state != SMTPUV__CV_AUTH || !cv->auth_waiting || cv->auth == NULL)
    return;
  cv->auth_waiting = 0;
  size_t before = smtpuv_proto_pending_output(cv->proto);
  int rc = smtpuv_auth_session_resume(cv->auth);
  smtpuv__trace_out(cv, before, SMTPUV__TR_REDACT);
  if (smtpuv_proto_pending_replies(cv->proto) > 0)
    cv->reply_clock = cv->now;
  auth_result(cv, rc, NULL);
}

static void start_auth(smtpuv__conv *cv) {
  if (cv->cfg.auth == NULL || cv->cfg.mode == SMTPUV__CONV_PROBE) {
    setup_done(cv);
    return;
  }
  if (!cv->tls_up && smtpuv__conv_tls_required(cv)) {
    smtpuv__setup_fail(cv, SMTPUV_ENOTLS, SMTPUV_PHASE_TLS, NULL,
                       "TLS is required and not established");
    return;
  }
  if (!cv->tls_up && !cv->cfg.allow_plain_auth) {
    smtpuv__setup_fail(
        cv, SMTPUV_EPLAINTEXT, SMTPUV_PHASE_AUTH, NULL,
        "refusing to authenticate over an unencrypted connection "
        "(allow it with smtpuv_options_set_allow_plaintext_auth)");
    return;
  }
  if (!(smtpuv_proto_extensions(cv->proto) & SMTPUV_EXT_AUTH)) {
    smtpuv__setup_fail(cv, SMTPUV_EAUTHMECH, SMTPUV_PHASE_AUTH, NULL,
                       "credentials are set but the server offers no AUTH");
    return;
  }
  int rc = smtpuv_auth_session_new(&cv->mem, cv->proto, cv->cfg.auth,
                                   on_auth_ready, cv, &cv->auth);
  if (rc != 0) {
    smtpuv__setup_fail(cv, rc, SMTPUV_PHASE_AUTH, NULL, "AUTH: %s",
                       smtpuv_strerror(rc));
    return;
  }
  cv->state = SMTPUV__CV_AUTH;
  size_t before = smtpuv_proto_pending_output(cv->proto);
  rc = smtpuv_auth_session_start(cv->auth);
  smtpuv__trace_out(cv, before, SMTPUV__TR_REDACT);
  auth_result(cv, rc, NULL);
}

/* ---- probe records -------------------------------------------------------------- */

/* Replace *dst by a copy of `len` bytes of `s`; 0 or SMTPUV_ENOMEM. */
static int keep(smtpuv__conv *cv, char **dst, const char *s, size_t len) {
  char *copy = smtpuv__strndup(&cv->mem, s, len);
  if (copy == NULL)
    return SMTPUV_ENOMEM;
  smtpuv__free(&cv->mem, *dst);
  *dst = copy;
  return 0;
}

/* The EHLO reply's lines after the first, joined by "\n". */
static char *join_ext(smtpuv__conv *cv, const smtpuv_reply *r) {
  size_t total = 1;
  for (size_t i = 1; i < r->nlines; i++)
    total += r->lines[i].len + 1;
  char *s = smtpuv__malloc(&cv->mem, total);
  if (s == NULL)
    return NULL;
  size_t off = 0;
  for (size_t i = 1; i < r->nlines; i++) {
    if (off > 0)
      s[off++] = '\n';
    memcpy(s + off, r->lines[i].ptr, r->lines[i].len);
    off += r->lines[i].len;
  }
  s[off] = '\0';
  return s;
}

/* What the probe keeps of an EHLO reply. 0 or SMTPUV_ENOMEM. */
static int probe_ehlo(smtpuv__conv *cv, const smtpuv_reply *r) {
  char *ext = join_ext(cv, r);
  if (ext == NULL)
    return SMTPUV_ENOMEM;
  const char *mechs = smtpuv_proto_auth_mechanisms(cv->proto);
  if ((r->nlines > 0 &&
       keep(cv, &cv->server_name, r->lines[0].ptr, r->lines[0].len) != 0) ||
      keep(cv, &cv->auth_mechs, mechs, strlen(mechs)) != 0) {
    smtpuv__free(&cv->mem, ext);
    return SMTPUV_ENOMEM;
  }
  if (cv->tls_up && cv->ext != NULL && cv->ext_plain == NULL) {
    cv->ext_plain = cv->ext; /* the reply before STARTTLS */
    cv->ext = NULL;
  }
  smtpuv__free(&cv->mem, cv->ext);
  cv->ext = ext;
  cv->ext_flags = smtpuv_proto_extensions(cv->proto);
  cv->max_size = smtpuv_proto_max_size(cv->proto);
  return 0;
}

void smtpuv__setup_free(smtpuv__conv *cv) {
  char **strs[] = {&cv->greeting, &cv->server_name, &cv->ext, &cv->ext_plain,
                   &cv->auth_mechs};
  for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
    smtpuv__free(&cv->mem, *strs[i]);
    *strs[i] = NULL;
  }
}

void smtpuv__conv_probe_result(const smtpuv__conv *cv,
                               smtpuv__conv_probe *r) {
  memset(r, 0, sizeof *r);
  r->error = cv->failed ? cv->fail_err : 0;
  r->phase = cv->failed ? cv->fail_phase : SMTPUV_PHASE_QUIT;
  r->message = cv->failed ? cv->fail_message : "";
  r->greeting_code = cv->greeting_code;
  r->greeting = cv->greeting != NULL ? cv->greeting : "";
  r->server_name = cv->server_name != NULL ? cv->server_name : "";
  r->ext = cv->ext != NULL ? cv->ext : "";
  r->ext_plain = cv->ext_plain;
  r->ext_flags = cv->ext_flags;
  r->max_size = cv->max_size;
  r->auth_mechanisms = cv->auth_mechs != NULL ? cv->auth_mechs : "";
  r->authenticated = cv->authenticated;
  r->auth_mechanism = cv->auth_mech_used;
}

/* ---- the steps ------------------------------------------------------------------- */

static void after_ehlo(smtpuv__conv *cv, const smtpuv_reply *r) {
  if (probing(cv) && probe_ehlo(cv, r) != 0) {
    smtpuv__setup_fail(cv, SMTPUV_ENOMEM, SMTPUV_PHASE_EHLO, NULL,
                       "out of memory");
    return;
  }
  unsigned ext = smtpuv_proto_extensions(cv->proto);
  if (!cv->tls_up && (cv->cfg.tls == SMTPUV_TLS_REQUIRED ||
                      (cv->cfg.tls == SMTPUV_TLS_OPPORTUNISTIC &&
                       (ext & SMTPUV_EXT_STARTTLS)))) {
    if (!(ext & SMTPUV_EXT_STARTTLS)) {
      smtpuv__setup_fail(cv, SMTPUV_ENOTLS, SMTPUV_PHASE_TLS, NULL,
                         "the server does not offer STARTTLS and TLS is "
                         "required");
      return;
    }
    size_t before = smtpuv_proto_pending_output(cv->proto);
    int rc = smtpuv_proto_starttls(cv->proto);
    if (rc != 0) {
      smtpuv__setup_fail(cv, rc, SMTPUV_PHASE_TLS, NULL, "STARTTLS: %s",
                         smtpuv_strerror(rc));
      return;
    }
    smtpuv__trace_out(cv, before, SMTPUV__TR_CMD);
    cv->state = SMTPUV__CV_STARTTLS;
    return;
  }
  start_auth(cv);
}

void smtpuv__setup_tls_up(smtpuv__conv *cv) {
  if (cv->state == SMTPUV__CV_TLS_IMPLICIT) {
    cv->state = SMTPUV__CV_GREETING;
    return;
  }
  int rc = smtpuv_proto_tls_established(cv->proto);
  if (rc != 0) {
    smtpuv__conv_fail(cv, rc, NULL, 0, "after STARTTLS: %s",
                      smtpuv_strerror(rc));
    return;
  }
  send_ehlo(cv, 0);
}

static void on_greeting(smtpuv__conv *cv, const smtpuv_reply *r) {
  cv->greeting_code = r->code;
  if (probing(cv) && keep(cv, &cv->greeting, r->text, r->text_len) != 0) {
    smtpuv__setup_fail(cv, SMTPUV_ENOMEM, SMTPUV_PHASE_GREETING, NULL,
                       "out of memory");
    return;
  }
  if (r->positive)
    send_ehlo(cv, 0);
  else if (r->code == 421)
    smtpuv__conv_server_closing(cv, r);
  else
    reply_fail(cv, r, SMTPUV_PHASE_GREETING, "greeting");
}

void smtpuv__setup_reply(smtpuv__conv *cv, const smtpuv_reply *r) {
  switch (r->command) {
  case SMTPUV_CMD_GREETING:
    on_greeting(cv, r);
    return;
  case SMTPUV_CMD_EHLO:
    if (r->positive)
      after_ehlo(cv, r);
    else if (r->code == 421)
      smtpuv__conv_server_closing(cv, r);
    else if (r->code >= 500 && !smtpuv__conv_tls_required(cv))
      send_ehlo(cv, 1);
    else
      reply_fail(cv, r, SMTPUV_PHASE_EHLO, "EHLO");
    return;
  case SMTPUV_CMD_HELO:
    if (r->positive)
      after_ehlo(cv, r);
    else if (r->code == 421)
      smtpuv__conv_server_closing(cv, r);
    else
      reply_fail(cv, r, SMTPUV_PHASE_EHLO, "HELO");
    return;
  case SMTPUV_CMD_STARTTLS:
    if (r->positive) {
      cv->want_tls = 1; /* asked for once the replies are read */
      cv->state = SMTPUV__CV_TLS_STARTTLS;
    } else if (r->code == 421) {
      smtpuv__conv_server_closing(cv, r);
    } else if (cv->cfg.tls == SMTPUV_TLS_OPPORTUNISTIC) {
      smtpuv__trace_info(cv, "STARTTLS refused; going on without TLS");
      start_auth(cv);
    } else {
      smtpuv__setup_fail(cv, SMTPUV_ENOTLS, SMTPUV_PHASE_TLS, r,
                         "STARTTLS refused: %d %.*s", r->code,
                         smtpuv__conv_first_line_len(r), r->text);
    }
    return;
  case SMTPUV_CMD_AUTH: {
    if (cv->auth == NULL) {
      smtpuv__conv_fail(cv, SMTPUV_EPROTO, NULL, 0, "unexpected AUTH reply");
      return;
    }
    size_t before = smtpuv_proto_pending_output(cv->proto);
    int rc = smtpuv_auth_session_on_reply(cv->auth, r);
    smtpuv__trace_out(cv, before, SMTPUV__TR_REDACT);
    if (rc == SMTPUV_ESHUTDOWN) {
      smtpuv_auth_session_free(cv->auth);
      cv->auth = NULL;
      smtpuv__conv_server_closing(cv, r);
      return;
    }
    auth_result(cv, rc, r);
    return;
  }
  default:
    return;
  }
}

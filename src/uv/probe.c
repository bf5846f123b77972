/* SPDX-License-Identifier: MIT */
/* smtpuv_client_probe(): read the greeting, EHLO, STARTTLS when the TLS
 * mode asks for it, EHLO again, QUIT, and report what the server said about
 * itself (smtpuv-send --serverinfo).
 *
 * The probe is a private client (the options' connection settings and
 * their shared SSL_CTX, no credentials) with one connection from conn.c:
 * the resolution, connect, timers, reads, writes and TLS of every send.
 * Only the session differs: the few steps below drive the connection
 * instead of session.c, and never write AUTH or MAIL. When the connection
 * is gone the client is closed; the callback runs from the client's close
 * callback, after every handle is closed.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "uv/client_int.h"

#if defined(__GNUC__) || defined(__clang__)
#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))
#else
#define PRINTF_LIKE(f, a)
#endif

#define QUIT_WAIT 2000 /* ms to wait for 221: the report is complete */

typedef struct probe {
  smtpuv_mem mem;
  smtpuv_probe_cb cb;
  void *data;
  /* the result */
  int error;
  smtpuv_phase phase;
  char message[512];
  char peer[80];
  int greeting_code;
  char *greeting, *server_name, *ext, *ext_plain, *auth, *tls;
  unsigned ext_flags;
  uint64_t max_size;
} probe;

static smtpuv_phase phase_of(const smtpuv__conn *cn) {
  static const smtpuv_phase phases[] = {
      [SMTPUV__C_RESOLVING] = SMTPUV_PHASE_CONNECT,
      [SMTPUV__C_CONNECTING] = SMTPUV_PHASE_CONNECT,
      [SMTPUV__C_TLS_IMPLICIT] = SMTPUV_PHASE_TLS,
      [SMTPUV__C_GREETING] = SMTPUV_PHASE_GREETING,
      [SMTPUV__C_EHLO] = SMTPUV_PHASE_EHLO,
      [SMTPUV__C_HELO] = SMTPUV_PHASE_EHLO,
      [SMTPUV__C_STARTTLS] = SMTPUV_PHASE_TLS,
      [SMTPUV__C_TLS_STARTTLS] = SMTPUV_PHASE_TLS,
      [SMTPUV__C_AUTH] = SMTPUV_PHASE_AUTH,
      [SMTPUV__C_READY] = SMTPUV_PHASE_QUIT,
      [SMTPUV__C_QUIT] = SMTPUV_PHASE_QUIT,
      [SMTPUV__C_SHUTDOWN] = SMTPUV_PHASE_QUIT,
      [SMTPUV__C_DEAD] = SMTPUV_PHASE_QUIT};
  return phases[cn->state];
}

/* "192.0.2.1:587", "[2001:db8::1]:587": the address tried last. */
static void peer_text(probe *p, const smtpuv__conn *cn) {
  if (cn->peer[0] != '\0')
    snprintf(p->peer, sizeof p->peer,
             strchr(cn->peer, ':') != NULL ? "[%s]:%u" : "%s:%u", cn->peer,
             cn->client->opts.port);
}

/* ---- outcome ----------------------------------------------------------------- */

static void vnote(probe *p, int err, smtpuv_phase phase, const char *fmt,
                  va_list ap) {
  if (p->error != 0)
    return; /* the first error tells what happened */
  p->error = err;
  p->phase = phase;
  vsnprintf(p->message, sizeof p->message, fmt, ap);
}

/* Record an error and go on (TLS required but not offered: QUIT). */
static void note(probe *p, int err, smtpuv_phase phase, const char *fmt, ...)
    PRINTF_LIKE(4, 5);
static void note(probe *p, int err, smtpuv_phase phase, const char *fmt,
                 ...) {
  va_list ap;
  va_start(ap, fmt);
  vnote(p, err, phase, fmt, ap);
  va_end(ap);
}

/* Record an error and close (a failed handshake's alert is written first).
   After QUIT the report is complete: the connection just ends. */
static void stop(smtpuv__conn *cn, int err, smtpuv_phase phase,
                 const char *fmt, ...) PRINTF_LIKE(4, 5);
static void stop(smtpuv__conn *cn, int err, smtpuv_phase phase,
                 const char *fmt, ...) {
  if (cn->state == SMTPUV__C_DEAD || cn->state == SMTPUV__C_SHUTDOWN)
    return;
  if (cn->state == SMTPUV__C_QUIT) {
    smtpuv__conn_finish(cn);
    return;
  }
  va_list ap;
  va_start(ap, fmt);
  vnote(cn->owner, err, phase, fmt, ap);
  va_end(ap);
  smtpuv__conn_abort(cn, err);
}

static void refused(smtpuv__conn *cn, const smtpuv_reply *r,
                    smtpuv_phase phase, const char *what) {
  stop(cn, r->code >= 500 ? SMTPUV_EPERMFAIL : SMTPUV_ETEMPFAIL, phase,
       "%s: %d %s", what, r->code, r->text);
}

/* Replace *dst by `s` (which may be NULL after a failed allocation). */
static void take(probe *p, char **dst, char *s) {
  smtpuv__free(&p->mem, *dst);
  *dst = s;
}

/* ---- commands ---------------------------------------------------------------- */

/* Trace a command the core has just queued (`rc` what its call returned,
   `before` the output pending before it) and enter `state`. */
static int command(smtpuv__conn *cn, size_t before, int rc, int state,
                   const char *what) {
  if (rc != 0) {
    stop(cn, rc, phase_of(cn), "%s: %s", what, smtpuv_strerror(rc));
    return rc;
  }
  smtpuv__trace_out(cn, before, SMTPUV__TR_CMD);
  cn->state = state;
  return 0;
}

static void send_ehlo(smtpuv__conn *cn) {
  char literal[64];
  const char *name = cn->client->ehlo_name;
  if (name[0] == '\0') {
    smtpuv__conn_local_literal(cn, literal, sizeof literal);
    name = literal;
  }
  size_t before = smtpuv_proto_pending_output(cn->proto);
  command(cn, before, smtpuv_proto_ehlo(cn->proto, name), SMTPUV__C_EHLO,
          "EHLO");
}

static void send_quit(smtpuv__conn *cn) {
  size_t before = smtpuv_proto_pending_output(cn->proto);
  if (command(cn, before, smtpuv_proto_quit(cn->proto), SMTPUV__C_QUIT,
              "QUIT") == 0)
    smtpuv__conn_timer(cn, QUIT_WAIT);
}

/* ---- replies ------------------------------------------------------------------- */

/* The EHLO reply's lines after the first, joined by "\n". */
static char *join_ext(probe *p, const smtpuv_reply *r) {
  size_t total = 1;
  for (size_t i = 1; i < r->nlines; i++)
    total += r->lines[i].len + 1;
  char *s = smtpuv__malloc(&p->mem, total);
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

static void on_ehlo(smtpuv__conn *cn, const smtpuv_reply *r) {
  probe *p = cn->owner;
  char *ext = join_ext(p, r);
  take(p, &p->server_name,
       r->nlines > 0
           ? smtpuv__strndup(&p->mem, r->lines[0].ptr, r->lines[0].len)
           : NULL);
  take(p, &p->auth,
       smtpuv__strdup(&p->mem, smtpuv_proto_auth_mechanisms(cn->proto)));
  if (ext == NULL || p->auth == NULL ||
      (r->nlines > 0 && p->server_name == NULL)) {
    smtpuv__free(&p->mem, ext);
    stop(cn, SMTPUV_ENOMEM, SMTPUV_PHASE_EHLO, "out of memory");
    return;
  }
  p->ext_flags = smtpuv_proto_extensions(cn->proto);
  p->max_size = smtpuv_proto_max_size(cn->proto);
  smtpuv_tls_mode mode = cn->client->opts.tls;
  if (!cn->tls_up && (p->ext_flags & SMTPUV_EXT_STARTTLS) &&
      (mode == SMTPUV_TLS_REQUIRED || mode == SMTPUV_TLS_OPPORTUNISTIC)) {
    take(p, &p->ext_plain, ext);
    size_t before = smtpuv_proto_pending_output(cn->proto);
    command(cn, before, smtpuv_proto_starttls(cn->proto), SMTPUV__C_STARTTLS,
            "STARTTLS");
    return;
  }
  take(p, &p->ext, ext);
  if (!cn->tls_up && mode == SMTPUV_TLS_REQUIRED) {
    peer_text(p, cn);
    note(p, SMTPUV_ENOTLS, SMTPUV_PHASE_EHLO,
         "TLS required but %s does not offer STARTTLS", p->peer);
  }
  send_quit(cn);
}

static void on_reply(smtpuv__conn *cn, const smtpuv_reply *r) {
  probe *p = cn->owner;
  switch (r->command) {
  case SMTPUV_CMD_GREETING:
    p->greeting_code = r->code;
    take(p, &p->greeting, smtpuv__strndup(&p->mem, r->text, r->text_len));
    if (p->greeting == NULL)
      stop(cn, SMTPUV_ENOMEM, SMTPUV_PHASE_GREETING, "out of memory");
    else if (!r->positive)
      refused(cn, r, SMTPUV_PHASE_GREETING, "greeting");
    else
      send_ehlo(cn);
    return;
  case SMTPUV_CMD_EHLO:
    if (r->positive)
      on_ehlo(cn, r);
    else
      refused(cn, r, SMTPUV_PHASE_EHLO, "EHLO");
    return;
  case SMTPUV_CMD_STARTTLS:
    if (r->positive) {
      cn->want_tls = 1; /* the handshake starts once the replies are read */
      cn->state = SMTPUV__C_TLS_STARTTLS;
      return;
    }
    stop(cn,
         cn->client->opts.tls == SMTPUV_TLS_REQUIRED ? SMTPUV_ENOTLS
                                                     : SMTPUV_ETEMPFAIL,
         SMTPUV_PHASE_TLS, "STARTTLS refused: %d %s", r->code, r->text);
    return;
  case SMTPUV_CMD_QUIT:
    smtpuv__conn_finish(cn);
    return;
  case SMTPUV_CMD_NONE: /* 421: the server is closing */
    stop(cn, SMTPUV_ESHUTDOWN, phase_of(cn), "%d %s", r->code, r->text);
    return;
  default:
    return;
  }
}

/* ---- the connection's owner --------------------------------------------------- */

static int live(const smtpuv__conn *cn) {
  return cn->state != SMTPUV__C_DEAD && cn->state != SMTPUV__C_SHUTDOWN;
}

/* Write what was queued and wait for the next reply. */
static void go_on(smtpuv__conn *cn) {
  if (!live(cn))
    return;
  smtpuv__conn_flush(cn);
  if (cn->state != SMTPUV__C_QUIT)
    smtpuv__conn_timer(cn, smtpuv__client_timeout(cn->client,
                                                  SMTPUV_TIMEOUT_COMMAND));
}

static void probe_connected(smtpuv__conn *cn) {
  cn->state = SMTPUV__C_GREETING;
  go_on(cn);
}

static void probe_tls_done(smtpuv__conn *cn) {
  if (cn->state == SMTPUV__C_TLS_IMPLICIT) {
    cn->state = SMTPUV__C_GREETING;
  } else {
    int rc = smtpuv_proto_tls_established(cn->proto);
    if (rc != 0) {
      stop(cn, rc, SMTPUV_PHASE_TLS, "after STARTTLS: %s",
           smtpuv_strerror(rc));
      return;
    }
    send_ehlo(cn);
  }
  go_on(cn);
}

static void probe_data(smtpuv__conn *cn, const char *buf, size_t len) {
  smtpuv__trace_in(cn, buf, len);
  /* replies completed before a violation are still taken; the core reports
     bytes after STARTTLS's 220 (SMTPUV_EINJECT) */
  int rc = smtpuv_proto_feed(cn->proto, buf, len);
  smtpuv_reply r;
  for (int guard = 0; guard < 1000 && rc != SMTPUV_ENOMEM && live(cn) &&
                      !cn->want_tls;
       guard++) {
    int got = smtpuv_proto_next_reply(cn->proto, &r);
    if (got < 0)
      rc = got;
    if (got != 1)
      break;
    on_reply(cn, &r);
  }
  if (!live(cn))
    return;
  if (rc < 0) {
    const char *why = smtpuv_proto_error_text(cn->proto);
    stop(cn, rc, phase_of(cn), "%s", why[0] ? why : smtpuv_strerror(rc));
    return;
  }
  if (cn->want_tls) {
    cn->want_tls = 0;
    smtpuv__trace_info(cn, "starting TLS");
    if (smtpuv__conn_start_tls(cn) != 0)
      return; /* reported through probe_fail() */
  }
  go_on(cn);
}

static void probe_timeout(smtpuv__conn *cn) {
  probe *p = cn->owner;
  if (cn->state == SMTPUV__C_QUIT) {
    smtpuv__conn_terminate(cn);
    return;
  }
  peer_text(p, cn);
  stop(cn, SMTPUV_ETIMEDOUT, phase_of(cn), "timed out in %s with %s",
       smtpuv_phase_name(phase_of(cn)), p->peer);
}

static void probe_fail(smtpuv__conn *cn, int err, const char *text) {
  stop(cn, err, phase_of(cn), "%s", text);
}

static void on_client_closed(smtpuv_client *c);

/* The connection is about to be freed: keep what the report needs from it,
   then close the client (its close callback reports). */
static void probe_gone(smtpuv__conn *cn) {
  probe *p = cn->owner;
  peer_text(p, cn);
  take(p, &p->tls, cn->tls_summary); /* same allocator */
  cn->tls_summary = NULL;
  smtpuv_client_close(cn->client, on_client_closed);
}

static const smtpuv__conn_ops probe_ops = {
    .connected = probe_connected,
    .tls_done = probe_tls_done,
    .data = probe_data,
    .writable = smtpuv__conn_flush,
    .timeout = probe_timeout,
    .fail = probe_fail,
    .gone = probe_gone};

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
  p->cb(&r, p->data);

  char **strs[] = {&p->greeting, &p->server_name, &p->ext,
                   &p->ext_plain, &p->auth,        &p->tls};
  for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
    smtpuv__free(&p->mem, *strs[i]);
  smtpuv_mem m = p->mem;
  smtpuv__free(&m, p);
}

/* The private client: the options without credentials (nothing is
   authenticated, and credentials unfit for any mechanism must not stop a
   probe). It shares the options' SSL_CTX. */
static int probe_client(uv_loop_t *loop, const smtpuv_options *options,
                        smtpuv_client **out) {
  smtpuv_options o;
  int rc = smtpuv__options_copy(&o, options);
  if (rc != 0)
    return rc;
  smtpuv_options_set_auth_credentials(&o, NULL);
  o.authenticator = NULL;
  rc = smtpuv_client_new(loop, &o, out);
  smtpuv__options_clear(&o);
  return rc;
}

int smtpuv_client_probe(uv_loop_t *loop, const smtpuv_options *options,
                        smtpuv_probe_cb cb, void *data) {
  if (loop == NULL || options == NULL || cb == NULL || options->host == NULL)
    return SMTPUV_EINVAL;
  probe *p = smtpuv__calloc(&options->mem, 1, sizeof *p);
  if (p == NULL)
    return SMTPUV_ENOMEM;
  p->mem = options->mem;
  p->cb = cb;
  p->data = data;
  p->phase = SMTPUV_PHASE_QUIT;
  smtpuv_client *c;
  int rc = probe_client(loop, options, &c);
  if (rc != 0) {
    smtpuv__free(&options->mem, p);
    return rc;
  }
  smtpuv_client_set_data(c, p);
  smtpuv__conn *cn;
  rc = smtpuv__conn_open(c, &probe_ops, p, &cn);
  if (rc != 0) {
    /* the client's handle closes on the loop: report from there */
    note(p, rc, SMTPUV_PHASE_CONNECT, "%s", smtpuv_strerror(rc));
    smtpuv_client_close(c, on_client_closed);
  }
  return 0;
}

/* The SMTP session over one connection: greeting, EHLO (HELO fallback),
 * STARTTLS, AUTH, then messages in order, pipelined where the server
 * allows, with the replies routed back to the message they answer.
 *
 * Replies come in FIFO order of the commands, so each message counts the
 * replies it still expects (`expect`) and a reply to MAIL, RCPT, DATA,
 * "." or BDAT goes to the oldest in-flight message still expecting one.
 * A message's outcome may be decided before all its replies are in (a
 * refused MAIL is followed by RCPT and DATA replies when pipelined); it
 * completes when the outcome is known and nothing more is due.
 *
 * TLS-required guard: nothing but EHLO and STARTTLS is written before the
 * handshake succeeded; start_auth() and start_message() check it again
 * where AUTH or MAIL would be written.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "uv/client_int.h"

static void on_reply(smtpuv__conn *cn, const smtpuv_reply *r);
static void check_done(smtpuv__conn *cn, smtpuv__msg *m);

#define MEM(cn) (&(cn)->client->mem)

static int tls_required(const smtpuv_client *c) {
  return c->opts.tls == SMTPUV_TLS_REQUIRED ||
         c->opts.tls == SMTPUV_TLS_IMPLICIT;
}

static int reply_err(int code) {
  if (code == 421)
    return SMTPUV_ESHUTDOWN;
  if (code >= 400 && code < 500)
    return SMTPUV_ETEMPFAIL;
  if (code >= 500 && code < 600)
    return SMTPUV_EPERMFAIL;
  return SMTPUV_EPROTO;
}

/* First line of a reply text, for one-line messages. */
static int first_line_len(const smtpuv_reply *r) {
  const char *nl = memchr(r->text, '\n', r->text_len);
  size_t n = nl != NULL ? (size_t)(nl - r->text) : r->text_len;
  return n > 300 ? 300 : (int)n;
}

static smtpuv_phase setup_phase(const smtpuv__conn *cn) {
  switch (cn->state) {
  case SMTPUV__C_RESOLVING:
  case SMTPUV__C_CONNECTING:
    return SMTPUV_PHASE_CONNECT;
  case SMTPUV__C_TLS_IMPLICIT:
  case SMTPUV__C_STARTTLS:
  case SMTPUV__C_TLS_STARTTLS:
    return SMTPUV_PHASE_TLS;
  case SMTPUV__C_GREETING:
    return SMTPUV_PHASE_GREETING;
  case SMTPUV__C_EHLO:
  case SMTPUV__C_HELO:
    return SMTPUV_PHASE_EHLO;
  case SMTPUV__C_AUTH:
    return SMTPUV_PHASE_AUTH;
  case SMTPUV__C_QUIT:
    return SMTPUV_PHASE_QUIT;
  default:
    return SMTPUV_PHASE_NONE;
  }
}

static int in_setup(const smtpuv__conn *cn) {
  return cn->state < SMTPUV__C_READY;
}

/* ---- ending a connection -------------------------------------------------------- */

/* QUIT when the protocol allows it, else just close. */
static void conn_quit(smtpuv__conn *cn) {
  if (cn->state == SMTPUV__C_DEAD || cn->state == SMTPUV__C_QUIT ||
      cn->state == SMTPUV__C_SHUTDOWN)
    return;
  smtpuv_state st = smtpuv_proto_state(cn->proto);
  if (st == SMTPUV_STATE_FINISHED || st == SMTPUV_STATE_DATA ||
      st == SMTPUV_STATE_GREETING_EXPECTED ||
      (cn->tls != NULL && !cn->tls_up)) {
    smtpuv__conn_finish(cn);
    return;
  }
  size_t before = smtpuv_proto_pending_output(cn->proto);
  if (smtpuv_proto_quit(cn->proto) != 0) {
    smtpuv__conn_finish(cn);
    return;
  }
  smtpuv__trace_out(cn, before, SMTPUV__TR_CMD);
  cn->state = SMTPUV__C_QUIT;
  unsigned t = smtpuv__client_timeout(cn->client, SMTPUV_TIMEOUT_COMMAND);
  smtpuv__conn_timer(cn, t == 0 || t > 10000 ? 10000 : t);
  smtpuv__conn_flush(cn);
}

/* The reply a message was waiting for (with pipelining the whole message
   may be written while the reply to MAIL is still due). */
static smtpuv_phase msg_phase(const smtpuv__msg *m) {
  if (m->stage == SMTPUV__M_QUEUED)
    return SMTPUV_PHASE_NONE;
  if (!m->mail_ok && !m->mail_failed)
    return SMTPUV_PHASE_MAIL;
  if (m->rcpt_replies < m->nrcpts)
    return SMTPUV_PHASE_RCPT;
  if (m->stage == SMTPUV__M_DOT && m->expect <= 1)
    return SMTPUV_PHASE_END_OF_DATA;
  return SMTPUV_PHASE_DATA;
}

static void inflight_remove(smtpuv__conn *cn, smtpuv__msg *m) {
  smtpuv__msg *prev = NULL;
  for (smtpuv__msg *it = cn->inflight; it != NULL; prev = it, it = it->next) {
    if (it != m)
      continue;
    if (prev != NULL)
      prev->next = m->next;
    else
      cn->inflight = m->next;
    if (cn->inflight_tail == m)
      cn->inflight_tail = prev;
    cn->ninflight--;
    m->next = NULL;
    return;
  }
}

static void attach_tls(smtpuv__conn *cn, smtpuv__msg *m) {
  if (cn->tls_summary != NULL && m->tls == 0)
    m->tls = smtpuv__msg_str(MEM(cn), m, cn->tls_summary,
                             strlen(cn->tls_summary));
}

static void complete(smtpuv__conn *cn, smtpuv__msg *m) {
  attach_tls(cn, m);
  smtpuv__client_complete(cn->client, m);
}

/* Every in-flight message ends because the connection does. */
static void fail_inflight(smtpuv__conn *cn, int err, const char *text,
                          const smtpuv_reply *reply) {
  smtpuv_client *c = cn->client;
  while (cn->inflight != NULL) {
    smtpuv__msg *m = cn->inflight;
    inflight_remove(cn, m);
    if (m->decided) {
      complete(cn, m);
      continue;
    }
    if (m->stage == SMTPUV__M_DOT && cn->out_started >= m->dot_mark) {
      smtpuv__msg_decide(MEM(cn), m, SMTPUV_SEND_UNKNOWN, err, msg_phase(m),
                         reply,
                         "%s after the end of the message was sent: it may "
                         "or may not have been accepted",
                         text);
      complete(cn, m);
      continue;
    }
    if (!c->closing && m->reused && m->attempts < 2 &&
        (err == SMTPUV_ECONNLOST || err == SMTPUV_EIO) &&
        smtpuv__msg_rewind(m)) {
      smtpuv__trace_info(cn, "retrying the message on a new connection");
      smtpuv__client_requeue(c, m);
      continue;
    }
    smtpuv_phase ph = msg_phase(m);
    if (ph == SMTPUV_PHASE_END_OF_DATA)
      ph = SMTPUV_PHASE_DATA; /* the "." never left */
    smtpuv__msg_decide(MEM(cn), m, SMTPUV_SEND_FAILED, err, ph, reply, "%s",
                       text);
    complete(cn, m);
  }
}

void smtpuv__session_fail(smtpuv__conn *cn, int err, const char *fmt, ...) {
  if (cn->state == SMTPUV__C_DEAD || cn->state == SMTPUV__C_SHUTDOWN)
    return; /* closing anyway */
  if (cn->state == SMTPUV__C_QUIT) {
    /* the server closed after (or instead of) its 221: fine */
    smtpuv__conn_finish(cn);
    return;
  }
  char text[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  smtpuv__trace_info(cn, "error: %s", text);
  if (in_setup(cn)) {
    smtpuv__client_fail_queue(cn->client, SMTPUV_SEND_FAILED, err,
                              setup_phase(cn), NULL, text, cn->tls_summary);
  } else if (cn->state == SMTPUV__C_READY) {
    fail_inflight(cn, err, text, NULL);
  }
  smtpuv__conn_abort(cn, err);
}

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
    conn_quit(cn);
}

static void reply_fail(smtpuv__conn *cn, const smtpuv_reply *r,
                       smtpuv_phase phase, const char *what) {
  setup_fail(cn, reply_err(r->code), phase, r, "%s: %d %.*s", what, r->code,
             first_line_len(r), r->text);
}

/* ---- setup ---------------------------------------------------------------------- */

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
  if (!cn->tls_up && tls_required(c)) {
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

/* ---- messages ------------------------------------------------------------------- */

static int is_ascii(const char *s) {
  for (; *s; s++)
    if ((unsigned char)*s >= 0x80)
      return 0;
  return 1;
}

/* Fail a message before any of its bytes were written. */
static void local_fail(smtpuv__conn *cn, smtpuv__msg *m, int err,
                       smtpuv_phase phase, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;
static void local_fail(smtpuv__conn *cn, smtpuv__msg *m, int err,
                       smtpuv_phase phase, const char *fmt, ...) {
  char text[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  smtpuv__msg_decide(MEM(cn), m, SMTPUV_SEND_FAILED, err, phase, NULL, "%s",
                     text);
  complete(cn, m);
}

/* What a buffer body holds: each scan runs at most once per message, only
   when its answer matters, and is kept for a retry on a new connection. */
static int body_scan(smtpuv__msg *m, unsigned what) {
  if (!(m->scan & what)) {
    int yes = what == SMTPUV__SCAN_8BIT
                  ? smtpuv_is_8bit(m->body.data, m->body.len)
                  : smtpuv_needs_binarymime(m->body.data, m->body.len);
    m->scan |= what | (yes ? what << 8 : 0);
  }
  return (m->scan & (what << 8)) != 0;
}

static uint64_t body_wire_size(smtpuv__msg *m) {
  if (!(m->scan & SMTPUV__SCAN_WIRE)) {
    m->wire_size = smtpuv_body_wire_size(m->body.data, m->body.len);
    m->scan |= SMTPUV__SCAN_WIRE;
  }
  return m->wire_size;
}

static int issue_rcpt(smtpuv__conn *cn, smtpuv__msg *m) {
  smtpuv__rcpt *rc = &m->rcpts[m->next_rcpt];
  size_t before = smtpuv_proto_pending_output(cn->proto);
  int err = smtpuv_proto_rcpt(cn->proto, rc->address, rc->params);
  if (err != 0)
    return err;
  smtpuv__trace_out(cn, before, SMTPUV__TR_CMD);
  m->next_rcpt++;
  m->expect++;
  return 0;
}

static int issue_data(smtpuv__conn *cn, smtpuv__msg *m) {
  m->data_issued = 1;
  if (m->bdat) {
    m->stage = SMTPUV__M_BODY;
    return 0;
  }
  size_t before = smtpuv_proto_pending_output(cn->proto);
  int err = smtpuv_proto_data(cn->proto);
  if (err != 0)
    return err;
  smtpuv__trace_out(cn, before, SMTPUV__TR_CMD);
  m->expect++;
  return 0;
}

/* The transaction of `m` failed before its end: RSET before the next MAIL,
   unless one was already pipelined behind it. */
static void need_rset(smtpuv__conn *cn, smtpuv__msg *m) {
  if (!m->rset_after)
    cn->rset_needed = 1;
}

/* A command of an in-flight message could not be issued (local refusal
   after MAIL was written): the transaction is abandoned with RSET. */
static void envelope_abort(smtpuv__conn *cn, smtpuv__msg *m, int err,
                           smtpuv_phase phase, const char *what) {
  smtpuv__msg_decide(MEM(cn), m, SMTPUV_SEND_FAILED, err, phase, NULL,
                     "%s: %s", what, smtpuv_strerror(err));
  need_rset(cn, m);
  check_done(cn, m);
}

static void start_message(smtpuv__conn *cn, smtpuv__msg *m) {
  smtpuv_client *c = cn->client;
  unsigned ext = smtpuv_proto_extensions(cn->proto);
  m->attempts++;
  m->reused = cn->messages_issued > 0;
  cn->messages_issued++;
  if (tls_required(c) && !cn->tls_up) {
    local_fail(cn, m, SMTPUV_ENOTLS, SMTPUV_PHASE_MAIL,
               "TLS is required and not established");
    return;
  }
  smtpuv_mail_params mp = m->mail_params;
  int chunking = c->opts.chunking && (ext & SMTPUV_EXT_CHUNKING);
  const smtpuv_body *b = &m->body;
  if (mp.body == SMTPUV_BODY_UNSPECIFIED) {
    if (b->read == NULL) {
      int binary = chunking && (ext & SMTPUV_EXT_BINARYMIME) &&
                   body_scan(m, SMTPUV__SCAN_BINARY);
      if (binary)
        mp.body = SMTPUV_BODY_BINARYMIME;
      else if (body_scan(m, SMTPUV__SCAN_8BIT)) {
        if (!(ext & SMTPUV_EXT_8BITMIME)) {
          local_fail(cn, m, SMTPUV_E8BIT, SMTPUV_PHASE_MAIL,
                     "the message has 8-bit content and the server does not "
                     "offer 8BITMIME");
          return;
        }
        mp.body = SMTPUV_BODY_8BITMIME;
      }
    } else if (ext & SMTPUV_EXT_8BITMIME) {
      mp.body = SMTPUV_BODY_8BITMIME;
    }
  }
  if (mp.size == 0 && (ext & SMTPUV_EXT_SIZE)) {
    /* what the server counts: CRLF line endings (a buffer's bare LFs
       become CRLF on the wire); binary bodies go unchanged */
    if (b->read != NULL)
      mp.size = b->size;
    else if (mp.body == SMTPUV_BODY_BINARYMIME)
      mp.size = b->len;
    else
      mp.size = body_wire_size(m);
  }
  if (mp.body == SMTPUV_BODY_BINARYMIME && !chunking) {
    local_fail(cn, m, SMTPUV_ENOEXT, SMTPUV_PHASE_MAIL,
               "BODY=BINARYMIME needs CHUNKING, which is %s",
               c->opts.chunking ? "not offered by the server" : "switched off");
    return;
  }
  m->bdat = chunking;
  for (size_t i = 0; i < m->nrcpts; i++) {
    if (!is_ascii(m->rcpts[i].address)) {
      if (!(ext & SMTPUV_EXT_SMTPUTF8)) {
        local_fail(cn, m, SMTPUV_ENOEXT, SMTPUV_PHASE_RCPT,
                   "recipient %s is not ASCII and the server does not offer "
                   "SMTPUTF8",
                   m->rcpts[i].address);
        return;
      }
      mp.smtputf8 = 1;
    }
  }
  if (!(ext & SMTPUV_EXT_DSN)) {
    /* DSN parameters without DSN: refused here, before MAIL is written,
       rather than by the core in the middle of the envelope */
    int dsn = mp.dsn_ret != SMTPUV_DSN_RET_UNSPECIFIED || mp.dsn_envid;
    for (size_t i = 0; i < m->nrcpts && !dsn; i++)
      dsn = m->rcpts[i].params != NULL &&
            (m->rcpts[i].params->dsn_notify || m->rcpts[i].params->dsn_orcpt);
    if (dsn) {
      local_fail(cn, m, SMTPUV_ENOEXT, SMTPUV_PHASE_MAIL,
                 "DSN parameters were given and the server does not offer "
                 "DSN");
      return;
    }
  }
  size_t before = smtpuv_proto_pending_output(cn->proto);
  int rc = smtpuv_proto_mail(cn->proto, m->sender, &mp);
  if (rc != 0) {
    local_fail(cn, m, rc, SMTPUV_PHASE_MAIL, "MAIL FROM:<%s>: %s", m->sender,
               smtpuv_strerror(rc));
    return;
  }
  smtpuv__trace_out(cn, before, SMTPUV__TR_CMD);
  m->stage = SMTPUV__M_ENVELOPE;
  m->expect = 1;
  m->next = NULL;
  if (cn->inflight_tail != NULL)
    cn->inflight_tail->next = m;
  else
    cn->inflight = m;
  cn->inflight_tail = m;
  cn->ninflight++;
  m->pipelined = (ext & SMTPUV_EXT_PIPELINING) && c->opts.pipelining;
  if (!m->pipelined)
    return;
  while (m->next_rcpt < m->nrcpts) {
    rc = issue_rcpt(cn, m);
    if (rc != 0) {
      envelope_abort(cn, m, rc, SMTPUV_PHASE_RCPT, "RCPT");
      return;
    }
  }
  if (!c->opts.require_all) {
    rc = issue_data(cn, m);
    if (rc != 0)
      envelope_abort(cn, m, rc, SMTPUV_PHASE_DATA, "DATA");
  }
}

/* All RCPT replies are in and DATA was not issued yet. */
static void after_rcpts(smtpuv__conn *cn, smtpuv__msg *m,
                        const smtpuv_reply *last) {
  if (m->mail_failed || m->decided)
    return;
  if (m->naccepted == 0 ||
      (cn->client->opts.require_all && m->naccepted < m->nrcpts)) {
    size_t i = 0;
    while (i + 1 < m->nrcpts && m->rcpts[i].accepted)
      i++;
    /* copy: deciding may move the arena */
    char why[320];
    const char *t = m->rcpts[i].text ? m->arena + m->rcpts[i].text : "";
    const char *nl = strchr(t, '\n');
    int tl = nl != NULL ? (int)(nl - t) : (int)strlen(t);
    snprintf(why, sizeof why, "%.*s", tl > 300 ? 300 : tl, t);
    smtpuv__msg_decide(MEM(cn), m, SMTPUV_SEND_FAILED, SMTPUV_ENORCPT,
                       SMTPUV_PHASE_RCPT, last, "%s: RCPT TO:<%s>: %d %s",
                       m->naccepted == 0 ? "no recipient accepted"
                                         : "a recipient was refused",
                       m->rcpts[i].address, m->rcpts[i].code, why);
    need_rset(cn, m);
    return;
  }
  int rc = issue_data(cn, m);
  if (rc != 0)
    envelope_abort(cn, m, rc, SMTPUV_PHASE_DATA, "DATA");
}

/* The refusal of a transaction whose MAIL or every RCPT failed. */
static int txn_refused(smtpuv__conn *cn, smtpuv__msg *m,
                       const smtpuv_reply *r) {
  if (m->decided)
    return 1;
  if (m->mail_failed)
    return 1;
  if (m->rcpt_replies == m->nrcpts && m->naccepted == 0) {
    after_rcpts(cn, m, r);
    return 1;
  }
  return 0;
}

static void check_done(smtpuv__conn *cn, smtpuv__msg *m) {
  if (!m->decided || m->expect > 0)
    return;
  if (m->stage == SMTPUV__M_BODY && m->bdat) {
    /* chunks were sent without LAST: end the transaction */
    need_rset(cn, m);
  }
  inflight_remove(cn, m);
  complete(cn, m);
}

static smtpuv__msg *route(smtpuv__conn *cn) {
  for (smtpuv__msg *m = cn->inflight; m != NULL; m = m->next)
    if (m->expect > 0)
      return m;
  return NULL;
}

static void msg_reply(smtpuv__conn *cn, const smtpuv_reply *r) {
  smtpuv__msg *m = route(cn);
  if (m == NULL) {
    smtpuv__session_fail(cn, SMTPUV_EPROTO, "unexpected reply to %s",
                         smtpuv_cmd_name(r->command));
    return;
  }
  m->expect--;
  int fl = first_line_len(r);
  switch (r->command) {
  case SMTPUV_CMD_MAIL:
    if (r->positive) {
      m->mail_ok = 1;
      if (!m->pipelined && m->next_rcpt < m->nrcpts) {
        int rc = issue_rcpt(cn, m);
        if (rc != 0)
          envelope_abort(cn, m, rc, SMTPUV_PHASE_RCPT, "RCPT");
      }
    } else {
      m->mail_failed = 1;
      smtpuv__msg_decide(MEM(cn), m, SMTPUV_SEND_FAILED, reply_err(r->code),
                         SMTPUV_PHASE_MAIL, r, "MAIL FROM:<%s>: %d %.*s",
                         m->sender, r->code, fl, r->text);
      need_rset(cn, m);
    }
    break;
  case SMTPUV_CMD_RCPT: {
    size_t i = r->rcpt_index;
    if (i < m->nrcpts) {
      smtpuv__rcpt *rc = &m->rcpts[i];
      rc->code = r->code;
      rc->accepted = r->positive;
      memcpy(rc->enhanced, r->enhanced, sizeof rc->enhanced);
      rc->enhanced[sizeof rc->enhanced - 1] = '\0';
      rc->text = smtpuv__msg_str(MEM(cn), m, r->text, r->text_len);
      if (r->positive)
        m->naccepted++;
    }
    m->rcpt_replies++;
    if (m->rcpt_replies < m->nrcpts) {
      if (!m->pipelined) {
        int err = issue_rcpt(cn, m);
        if (err != 0)
          envelope_abort(cn, m, err, SMTPUV_PHASE_RCPT, "RCPT");
      }
    } else if (!m->data_issued) {
      after_rcpts(cn, m, r);
    } else if (m->bdat && (m->mail_failed || m->naccepted == 0)) {
      /* pipelined BDAT for a dead transaction: stop sending chunks */
      after_rcpts(cn, m, r);
      m->bdat_abort = 1;
    }
    break;
  }
  case SMTPUV_CMD_DATA:
    if (r->positive) {
      if (r->flags & SMTPUV_REPLY_EMPTY_DATA) {
        /* the core ended the data itself: its reply is still due */
        m->expect++;
        m->stage = SMTPUV__M_DOT;
        m->dot_mark = 0;
        txn_refused(cn, m, r);
      } else {
        m->stage = SMTPUV__M_BODY;
      }
    } else {
      if (!txn_refused(cn, m, r))
        smtpuv__msg_decide_reply(MEM(cn), m, SMTPUV_SEND_FAILED,
                                 reply_err(r->code), SMTPUV_PHASE_DATA, r,
                                 "DATA");
      need_rset(cn, m);
    }
    break;
  case SMTPUV_CMD_DATA_END:
  case SMTPUV_CMD_BDAT:
    if (r->command == SMTPUV_CMD_BDAT && !r->last) {
      if (!r->positive) {
        if (!txn_refused(cn, m, r))
          smtpuv__msg_decide_reply(MEM(cn), m, SMTPUV_SEND_FAILED,
                                   reply_err(r->code), SMTPUV_PHASE_DATA, r,
                                   "BDAT");
        m->bdat_abort = 1;
      }
      break;
    }
    if (m->decided || (r->flags & SMTPUV_REPLY_EMPTY_DATA))
      break;
    if (r->positive && !(r->flags & SMTPUV_REPLY_TXN_FAILED) &&
        m->naccepted > 0) {
      smtpuv__msg_decide_reply(MEM(cn), m, SMTPUV_SEND_SENT,
                               m->naccepted < m->nrcpts ? SMTPUV_ENORCPT : 0,
                               SMTPUV_PHASE_END_OF_DATA, r, NULL);
    } else if (!txn_refused(cn, m, r)) {
      smtpuv__msg_decide_reply(
          MEM(cn), m, SMTPUV_SEND_FAILED,
          r->positive ? SMTPUV_EPROTO : reply_err(r->code),
          SMTPUV_PHASE_END_OF_DATA, r, "end of data");
    }
    break;
  default:
    break;
  }
  if (cn->state != SMTPUV__C_DEAD)
    check_done(cn, m);
}

/* The server said 421 (to a command or unsolicited): it is closing. */
static void server_closing(smtpuv__conn *cn, const smtpuv_reply *r) {
  char text[400];
  snprintf(text, sizeof text, "the server is closing the connection: %d %.*s",
           r->code, first_line_len(r), r->text);
  smtpuv__trace_info(cn, "%s", text);
  if (in_setup(cn))
    smtpuv__client_fail_queue(cn->client, SMTPUV_SEND_FAILED,
                              SMTPUV_ESHUTDOWN, setup_phase(cn), r, text,
                              cn->tls_summary);
  else
    fail_inflight(cn, SMTPUV_ESHUTDOWN, text, r);
  smtpuv__conn_finish(cn);
}

static void on_reply(smtpuv__conn *cn, const smtpuv_reply *r) {
  smtpuv_client *c = cn->client;
  if (r->command == SMTPUV_CMD_NONE) {
    server_closing(cn, r);
    return;
  }
  switch (r->command) {
  case SMTPUV_CMD_GREETING:
    if (r->positive)
      send_ehlo(cn, 0);
    else if (r->code == 421)
      server_closing(cn, r);
    else
      reply_fail(cn, r, SMTPUV_PHASE_GREETING, "greeting");
    return;
  case SMTPUV_CMD_EHLO:
    if (r->positive)
      after_ehlo(cn);
    else if (r->code == 421)
      server_closing(cn, r);
    else if (r->code >= 500 && !tls_required(c))
      send_ehlo(cn, 1);
    else
      reply_fail(cn, r, SMTPUV_PHASE_EHLO, "EHLO");
    return;
  case SMTPUV_CMD_HELO:
    if (r->positive)
      after_ehlo(cn);
    else if (r->code == 421)
      server_closing(cn, r);
    else
      reply_fail(cn, r, SMTPUV_PHASE_EHLO, "HELO");
    return;
  case SMTPUV_CMD_STARTTLS:
    if (r->positive) {
      cn->want_tls = 1;
      cn->state = SMTPUV__C_TLS_STARTTLS;
    } else if (r->code == 421) {
      server_closing(cn, r);
    } else if (c->opts.tls == SMTPUV_TLS_OPPORTUNISTIC) {
      smtpuv__trace_info(cn, "STARTTLS refused; going on without TLS");
      start_auth(cn);
    } else {
      setup_fail(cn, SMTPUV_ENOTLS, SMTPUV_PHASE_TLS, r,
                 "STARTTLS refused: %d %.*s", r->code, first_line_len(r),
                 r->text);
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
      server_closing(cn, r);
      return;
    }
    auth_result(cn, rc, r);
    return;
  }
  case SMTPUV_CMD_RSET:
    if (cn->rset_pending > 0)
      cn->rset_pending--;
    if (r->code == 421)
      server_closing(cn, r);
    return;
  case SMTPUV_CMD_QUIT:
    smtpuv__conn_finish(cn);
    return;
  case SMTPUV_CMD_MAIL:
  case SMTPUV_CMD_RCPT:
  case SMTPUV_CMD_DATA:
  case SMTPUV_CMD_DATA_END:
  case SMTPUV_CMD_BDAT:
    msg_reply(cn, r);
    if (r->code == 421 && cn->state != SMTPUV__C_DEAD)
      server_closing(cn, r);
    return;
  default:
    return;
  }
}

void smtpuv__session_data(smtpuv__conn *cn, const char *buf, size_t len) {
  if (cn->state == SMTPUV__C_DEAD)
    return;
  smtpuv__trace_in(cn, buf, len);
  int frc = smtpuv_proto_feed(cn->proto, buf, len);
  /* Replies completed before a violation in the same bytes are popped
     first (a "250 queued" followed by junk still counts); next_reply()
     reports the sticky error once they are out. */
  int rc = 0;
  smtpuv_reply r;
  if (frc == 0 || frc == SMTPUV_EPROTO || frc == SMTPUV_EINJECT) {
    while (cn->state != SMTPUV__C_DEAD && !cn->want_tls) {
      rc = smtpuv_proto_next_reply(cn->proto, &r);
      if (rc != 1)
        break;
      on_reply(cn, &r);
      rc = 0;
    }
  }
  if (cn->state == SMTPUV__C_DEAD)
    return;
  if (rc == 0 && frc < 0)
    rc = frc;
  if (cn->want_tls && rc == 0) {
    /* nothing may follow STARTTLS's 220 in plaintext */
    rc = smtpuv_proto_next_reply(cn->proto, &r);
    if (rc == 1)
      rc = SMTPUV_EINJECT;
  }
  if (rc < 0) {
    const char *why = smtpuv_proto_error_text(cn->proto);
    if (rc == SMTPUV_EINJECT)
      smtpuv__session_fail(cn, rc,
                           "STARTTLS: the server sent data after its 220 "
                           "(response injection)%s%s",
                           why[0] ? ": " : "", why);
    else if (rc == SMTPUV_EPROTO)
      smtpuv__session_fail(cn, rc, "protocol error: %s",
                           why[0] ? why : "malformed reply");
    else
      smtpuv__session_fail(cn, rc, "%s", smtpuv_strerror(rc));
    return;
  }
  if (cn->want_tls) {
    cn->want_tls = 0;
    smtpuv__trace_info(cn, "starting TLS");
    if (smtpuv__conn_start_tls(cn) != 0)
      return;
  }
  smtpuv__session_process(cn);
}

/* ---- body ---------------------------------------------------------------------- */

static void body_fail(smtpuv__conn *cn, smtpuv__msg *m, int err,
                      const char *what) {
  smtpuv__msg_decide(MEM(cn), m, SMTPUV_SEND_FAILED, err, SMTPUV_PHASE_DATA,
                     NULL, "%s", what);
  if (m->bdat) {
    m->bdat_abort = 1;
    check_done(cn, m);
    return;
  }
  /* DATA cannot be abandoned once the 354 came: drop the connection */
  inflight_remove(cn, m);
  complete(cn, m);
  cn->doomed = 1;
  cn->doomed_err = SMTPUV_ECONNLOST;
}

/* Fill the client's pump buffer from a streamed body. Returns 1 when data
   (or the end) is available, 0 when blocked, -1 after a failure. */
static int stream_fill(smtpuv__conn *cn, smtpuv__msg *m) {
  smtpuv_client *c = cn->client;
  if (c->pump_buf == NULL) {
    c->pump_buf = smtpuv__malloc(&c->mem, SMTPUV__PUMP_BUF);
    if (c->pump_buf == NULL) {
      body_fail(cn, m, SMTPUV_ENOMEM, "out of memory");
      return -1;
    }
  }
  for (int guard = 0; c->pump_len < SMTPUV__PUMP_BUF && !m->body_eof &&
                      guard < 4096;
       guard++) {
    long n = m->body.read(m->body.user, c->pump_buf + c->pump_len,
                          SMTPUV__PUMP_BUF - c->pump_len);
    if (n > 0) {
      if ((size_t)n > SMTPUV__PUMP_BUF - c->pump_len)
        n = (long)(SMTPUV__PUMP_BUF - c->pump_len);
      c->pump_len += (size_t)n;
    } else if (n == 0) {
      m->body_eof = 1;
    } else if (n == SMTPUV_EAGAIN) {
      if (c->pump_len == 0) {
        c->body_blocked = 1;
        return 0;
      }
      break;
    } else {
      c->pump_len = 0;
      body_fail(cn, m, SMTPUV_EBODY, "the message body source failed");
      return -1;
    }
  }
  return 1;
}

static void pump(smtpuv__conn *cn) {
  smtpuv_client *c = cn->client;
  smtpuv__msg *m = cn->inflight_tail;
  if (m == NULL || m->stage != SMTPUV__M_BODY || m->bdat_abort ||
      c->closing || cn->doomed)
    return;
  for (int guard = 0; guard < 1024 && cn->state == SMTPUV__C_READY &&
                      smtpuv__conn_backlog(cn) < SMTPUV__HIGH_WATER;
       guard++) {
    const char *ptr;
    size_t n;
    int eof;
    if (m->body.read == NULL) {
      uint64_t left = m->body.len - m->body_off;
      n = left < SMTPUV__BODY_CHUNK ? (size_t)left : SMTPUV__BODY_CHUNK;
      ptr = (const char *)m->body.data + m->body_off;
      eof = m->body_off + n == m->body.len;
    } else {
      int f = stream_fill(cn, m);
      if (f <= 0)
        return;
      ptr = c->pump_buf;
      n = c->pump_len;
      eof = m->body_eof;
    }
    size_t before = smtpuv_proto_pending_output(cn->proto);
    int rc;
    if (m->bdat) {
      rc = smtpuv_proto_bdat(cn->proto, ptr, n, eof);
      if (rc == SMTPUV_EBUSY)
        return; /* no pipelining: wait for the previous chunk's reply */
      if (rc != 0) {
        body_fail(cn, m, rc, smtpuv_strerror(rc));
        return;
      }
      smtpuv__trace_out(cn, before, SMTPUV__TR_BDAT);
      m->expect++;
    } else if (n > 0) {
      rc = smtpuv_proto_data_write(cn->proto, ptr, n);
      if (rc != 0) {
        body_fail(cn, m, rc,
                  rc == SMTPUV_E8BIT
                      ? "the message has 8-bit content and the server does "
                        "not offer 8BITMIME"
                      : smtpuv_strerror(rc));
        return;
      }
      smtpuv__trace_out(cn, before, SMTPUV__TR_BODY);
    }
    if (m->body.read == NULL)
      m->body_off += n;
    else
      c->pump_len = 0;
    if (eof) {
      if (!m->bdat) {
        before = smtpuv_proto_pending_output(cn->proto);
        rc = smtpuv_proto_data_end(cn->proto);
        if (rc != 0) {
          body_fail(cn, m, rc, smtpuv_strerror(rc));
          return;
        }
        smtpuv__trace_out(cn, before, SMTPUV__TR_CMD);
        m->expect++;
      }
      m->stage = SMTPUV__M_DOT;
      m->dot_mark = cn->out_started + smtpuv_proto_pending_output(cn->proto);
      return;
    }
  }
}

/* ---- scheduling ------------------------------------------------------------------ */

static int dot_waiting(const smtpuv__conn *cn) {
  for (const smtpuv__msg *m = cn->inflight; m != NULL; m = m->next)
    if (m->stage == SMTPUV__M_DOT && m->expect > 0)
      return 1;
  return 0;
}

static void issue(smtpuv__conn *cn) {
  smtpuv_client *c = cn->client;
  smtpuv_proto *p = cn->proto;
  for (int guard = 0; guard < 64; guard++) {
    if (c->closing || cn->doomed || cn->state != SMTPUV__C_READY)
      return;
    int pipelining = (smtpuv_proto_extensions(p) & SMTPUV_EXT_PIPELINING) &&
                     c->opts.pipelining;
    if (cn->rset_needed && cn->ninflight == 0) {
      size_t before = smtpuv_proto_pending_output(p);
      int rc = smtpuv_proto_rset(p);
      if (rc == SMTPUV_EBUSY)
        return;
      if (rc != 0) {
        cn->doomed = 1;
        cn->doomed_err = rc;
        return;
      }
      smtpuv__trace_out(cn, before, SMTPUV__TR_CMD);
      cn->rset_needed = 0;
      cn->rset_pending++;
    }
    if (c->queue == NULL)
      return;
    if (cn->ninflight >= SMTPUV__MAX_INFLIGHT)
      return;
    if (!pipelining && smtpuv_proto_pending_replies(p) > 0)
      return;
    if (cn->ninflight > 0 &&
        (!pipelining || cn->inflight_tail->stage != SMTPUV__M_DOT ||
         cn->rset_needed))
      return;
    if (smtpuv_proto_state(p) != SMTPUV_STATE_READY)
      return;
    smtpuv__msg *tail = cn->inflight_tail;
    if (tail != NULL && tail->bdat && !tail->rset_after &&
        !(tail->mail_ok && tail->rcpt_replies == tail->nrcpts &&
          tail->naccepted > 0)) {
      /* After BDAT LAST a server may keep a transaction whose MAIL or every
         RCPT failed open (as after a refused DATA): an RSET pipelined in
         front of the next MAIL closes it either way and costs no round
         trip. */
      size_t before = smtpuv_proto_pending_output(p);
      int rc = smtpuv_proto_rset(p);
      if (rc != 0)
        return;
      smtpuv__trace_out(cn, before, SMTPUV__TR_CMD);
      cn->rset_pending++;
      tail->rset_after = 1;
    }
    smtpuv__msg *m = c->queue;
    c->queue = m->next;
    if (c->queue == NULL)
      c->queue_tail = NULL;
    m->next = NULL;
    start_message(cn, m);
    if (cn->state == SMTPUV__C_DEAD)
      return;
    /* a buffer body that fits goes out with its envelope */
    pump(cn);
  }
}

static void rearm(smtpuv__conn *cn) {
  smtpuv_client *c = cn->client;
  unsigned t;
  if (cn->write_err)
    return; /* reading what is left: the short timer stays */
  switch (cn->state) {
  case SMTPUV__C_READY:
    if (cn->ninflight > 0) {
      if (dot_waiting(cn))
        t = smtpuv__client_timeout(c, SMTPUV_TIMEOUT_FINAL);
      else if (cn->inflight_tail->stage == SMTPUV__M_BODY)
        t = smtpuv__client_timeout(c, SMTPUV_TIMEOUT_DATA);
      else
        t = smtpuv__client_timeout(c, SMTPUV_TIMEOUT_COMMAND);
    } else if (smtpuv_proto_pending_replies(cn->proto) > 0) {
      t = smtpuv__client_timeout(c, SMTPUV_TIMEOUT_COMMAND);
    } else {
      t = smtpuv__client_timeout(c, SMTPUV_TIMEOUT_IDLE);
    }
    break;
  case SMTPUV__C_RESOLVING:
  case SMTPUV__C_CONNECTING:
  case SMTPUV__C_QUIT:
  case SMTPUV__C_SHUTDOWN:
  case SMTPUV__C_DEAD:
    return; /* their own timers */
  default:
    t = smtpuv__client_timeout(c, SMTPUV_TIMEOUT_COMMAND);
    break;
  }
  smtpuv__conn_timer(cn, t);
}

/* The last message's body has more to give (not blocked, not aborted). */
static int body_flowing(const smtpuv__conn *cn) {
  const smtpuv__msg *m = cn->inflight_tail;
  if (m == NULL || m->stage != SMTPUV__M_BODY || m->bdat_abort || cn->doomed)
    return 0;
  if (m->body.read == NULL)
    return m->body_off < m->body.len;
  return !cn->client->body_blocked;
}

void smtpuv__session_close(smtpuv__conn *cn) {
  if (cn->state == SMTPUV__C_DEAD || cn->state == SMTPUV__C_QUIT ||
      cn->state == SMTPUV__C_SHUTDOWN)
    return;
  if (in_setup(cn)) {
    smtpuv__conn_terminate(cn);
    return;
  }
  if (dot_waiting(cn))
    return; /* let the final replies come */
  if (cn->ninflight == 0) {
    conn_quit(cn);
    return;
  }
  while (cn->inflight != NULL) {
    smtpuv__msg *m = cn->inflight;
    inflight_remove(cn, m);
    smtpuv__msg_decide(MEM(cn), m, SMTPUV_SEND_CANCELED, SMTPUV_ECANCELED,
                       msg_phase(m), NULL, "canceled: the client was closed");
    complete(cn, m);
  }
  smtpuv__conn_terminate(cn);
}

void smtpuv__session_process(smtpuv__conn *cn) {
  if (cn->state == SMTPUV__C_DEAD || cn->in_process)
    return;
  cn->in_process = 1;
  if (cn->client->closing) {
    smtpuv__session_close(cn);
  } else if (cn->state == SMTPUV__C_READY) {
    for (int round = 0;; round++) {
      pump(cn);
      issue(cn);
      if (cn->doomed && !dot_waiting(cn) && cn->state != SMTPUV__C_DEAD) {
        cn->in_process = 0;
        smtpuv__session_fail(cn, cn->doomed_err,
                             "the connection had to be abandoned");
        return;
      }
      if (cn->state != SMTPUV__C_READY || !body_flowing(cn))
        break;
      /* The body stopped at the high-water mark. A flush that the socket
         takes whole completes nothing later (no write callback): pump on
         here, a bounded number of rounds, then yield to the loop. */
      cn->wrote_sync = 0;
      smtpuv__conn_flush(cn);
      if (cn->state == SMTPUV__C_DEAD || cn->writing || cn->wrote_sync == 0)
        break;
      if (round >= 15) {
        smtpuv__client_kick(cn->client); /* dispatch comes back here */
        break;
      }
    }
  }
  if (cn->state != SMTPUV__C_DEAD) {
    smtpuv__conn_flush(cn);
    rearm(cn);
  }
  cn->in_process = 0;
}

/* conn.c's write callback handles SMTPUV__C_SHUTDOWN itself. */
void smtpuv__session_writable(smtpuv__conn *cn) { smtpuv__session_process(cn); }

void smtpuv__session_timeout(smtpuv__conn *cn) {
  smtpuv_client *c = cn->client;
  switch (cn->state) {
  case SMTPUV__C_QUIT:
    smtpuv__conn_terminate(cn);
    return;
  case SMTPUV__C_READY:
    if (cn->ninflight == 0 && smtpuv_proto_pending_replies(cn->proto) == 0) {
      if (c->queue == NULL) {
        smtpuv__trace_info(cn, "idle: closing the connection");
        conn_quit(cn);
      }
      return;
    }
    break;
  default:
    break;
  }
  const char *what;
  switch (cn->state) {
  case SMTPUV__C_GREETING:
    what = "waiting for the greeting";
    break;
  case SMTPUV__C_TLS_IMPLICIT:
  case SMTPUV__C_TLS_STARTTLS:
    what = "during the TLS handshake";
    break;
  case SMTPUV__C_STARTTLS:
    what = "waiting for the reply to STARTTLS";
    break;
  case SMTPUV__C_EHLO:
  case SMTPUV__C_HELO:
    what = "waiting for the reply to EHLO";
    break;
  case SMTPUV__C_AUTH:
    what = cn->auth_waiting ? "waiting for the OAuth token"
                            : "waiting for the reply to AUTH";
    break;
  default:
    what = dot_waiting(cn) ? "waiting for the reply to the end of data"
           : (cn->inflight_tail != NULL &&
              cn->inflight_tail->stage == SMTPUV__M_BODY)
               ? "sending the message"
               : "waiting for a reply";
    break;
  }
  smtpuv__session_fail(cn, SMTPUV_ETIMEDOUT, "timed out %s", what);
}

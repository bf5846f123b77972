/* SPDX-License-Identifier: MIT */
/* smtpuv for Node.js: the N-API addon.
 *
 * Each native handle is one smtpuv_client on the environment's own libuv
 * loop (napi_get_uv_event_loop): the main thread's or a Worker's. The
 * addon links no libuv and no OpenSSL: the uv_* and OpenSSL symbols the
 * library calls are Node's own (see README.md, "Why no libssl").
 *
 * Calls into JavaScript:
 *   - send results and the close notification: from the library's send
 *     and close callbacks (its deferred dispatch: never from inside a call
 *     the addon made), through napi_make_callback so that promise
 *     continuations run right after;
 *   - OAuth token requests and stream "drain" notifications: the library
 *     asks for them from inside its own processing, where user code must
 *     not run, so they are flagged there and delivered from the
 *     environment's uv_async handle.
 *
 * Life cycle (per environment, napi_set_instance_data):
 *   - a client's handles keep the loop alive only while a send or a close
 *     is pending (smtpuv_client_set_ref); an idle connection does not hold
 *     the process;
 *   - the JS event function is held strongly while work is pending, weakly
 *     otherwise: an idle client that became garbage is aborted by its
 *     external's finalizer;
 *   - an async cleanup hook aborts every open client when the environment
 *     (a Worker or the process) goes away, waits for their close callbacks
 *     and closes the uv_async handle, so no handle is left on the loop.
 *
 * Never blocking: smtpuv_send_sync() is not used here.
 */
#define NAPI_VERSION 8
#include <node_api.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "smtpuv/client.h"
#include "smtpuv/compose.h"

/* Stream bodies: JS is told to pause above HIGH buffered bytes and to go
   on ("drain") when the client has taken them below LOW. */
#define BODY_HIGH (256 * 1024)
#define BODY_LOW (64 * 1024)

enum { EV_SENT = 0, EV_CLOSED = 1, EV_TOKEN = 2, EV_DRAIN = 3 };

typedef struct env_state env_state;
typedef struct handle handle;
typedef struct nmsg nmsg;

typedef struct chunk {
  struct chunk *next;
  size_t len, off;
  char data[];
} chunk;

struct nmsg {
  handle *h;
  uint32_t id;
  napi_ref buf; /* buffer body, kept alive until the callback */
  /* streamed body */
  int stream;
  nmsg *snext, *sprev; /* h->streams */
  chunk *head, *tail;
  size_t buffered;
  int ended, errored;
  int paused;    /* push() said "stop": JS waits for EV_DRAIN */
  int drain_due; /* deliver EV_DRAIN from the async handle */
  /* sendMail: the composer (its one stream attachment, if any, reads the
     chunk queue above) and the header bytes read ahead to learn the
     Message-ID, served before the composer's next bytes */
  smtpuv_compose *comp;
  char *ahead;
  size_t ahead_len, ahead_off;
  char *msgid;
};

struct handle {
  env_state *st;
  handle *next, *prev; /* st->handles */
  smtpuv_client *c;    /* NULL once its close callback ran */
  napi_ref ev;         /* the JS event function */
  unsigned ev_strong;  /* ev's count: 1 while pending or closing */
  napi_async_context actx;
  size_t pending;      /* sends whose callback has not run */
  int closing;
  int finalized;       /* the JS external is gone */
  nmsg *streams;
  /* OAuth token request (one connection per client: one at a time) */
  smtpuv_auth *tok_auth;
  uint32_t tok_seq;
  int tok_rejected, tok_due, tok_open;
};

struct env_state {
  napi_env env;
  uv_loop_t *loop;
  uv_async_t async;
  int async_open;
  handle *handles;
  int tearing; /* the environment is going away: no more JS */
  int env_gone; /* its napi_env was finalized: no napi call at all */
  napi_async_cleanup_hook_handle hook;
};

/* ---- helpers ------------------------------------------------------------------ */

#define CHECK(env, call)                                                       \
  do {                                                                         \
    if ((call) != napi_ok) {                                                   \
      throw_last(env, #call);                                                  \
      return NULL;                                                             \
    }                                                                          \
  } while (0)

static void throw_last(napi_env env, const char *what) {
  const napi_extended_error_info *info = NULL;
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending)
    return;
  napi_get_last_error_info(env, &info);
  napi_throw_error(env, "SMTPUV_EINVAL",
                   info != NULL && info->error_message != NULL
                       ? info->error_message
                       : what);
}

static napi_value undefined(napi_env env) {
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

static napi_value num(napi_env env, double v) {
  napi_value r;
  napi_create_double(env, v, &r);
  return r;
}

static napi_value str(napi_env env, const char *s) {
  napi_value r;
  napi_create_string_utf8(env, s != NULL ? s : "", NAPI_AUTO_LENGTH, &r);
  return r;
}

static void set(napi_env env, napi_value o, const char *k, napi_value v) {
  napi_set_named_property(env, o, k, v);
}

/* A JS string as a malloc'd C string; NULL for undefined/null. *bad is set
   when the value is neither a string nor nullish. */
static char *get_cstr(napi_env env, napi_value v, int *bad) {
  napi_valuetype t;
  napi_typeof(env, v, &t);
  if (t == napi_undefined || t == napi_null)
    return NULL;
  size_t n = 0;
  if (t != napi_string || napi_get_value_string_utf8(env, v, NULL, 0, &n) !=
                              napi_ok) {
    *bad = 1;
    return NULL;
  }
  char *s = malloc(n + 1);
  if (s == NULL) {
    *bad = 1;
    return NULL;
  }
  napi_get_value_string_utf8(env, v, s, n + 1, &n);
  if (strlen(s) != n) { /* a NUL inside */
    free(s);
    *bad = 1;
    return NULL;
  }
  return s;
}

static napi_value prop(napi_env env, napi_value o, const char *k) {
  napi_value v;
  if (napi_get_named_property(env, o, k, &v) != napi_ok)
    return undefined(env);
  return v;
}

static int has(napi_env env, napi_value o, const char *k) {
  napi_valuetype t;
  napi_typeof(env, prop(env, o, k), &t);
  return t != napi_undefined && t != napi_null;
}

static int64_t get_int(napi_env env, napi_value o, const char *k,
                       int64_t def) {
  int64_t v;
  if (!has(env, o, k) ||
      napi_get_value_int64(env, prop(env, o, k), &v) != napi_ok)
    return def;
  return v;
}

/* ---- calling JS ------------------------------------------------------------------ */

/* Call the handle's event function with (kind, a, b). An exception thrown
   by it becomes an uncaught exception of the process (as in any other
   callback Node runs). */
static void emit(handle *h, int kind, napi_value a, napi_value b) {
  env_state *st = h->st;
  napi_env env = st->env;
  if (st->tearing || h->ev == NULL)
    return;
  napi_value fn;
  if (napi_get_reference_value(env, h->ev, &fn) != napi_ok || fn == NULL)
    return; /* collected: nobody listens */
  napi_value argv[3] = {num(env, kind), a != NULL ? a : undefined(env),
                        b != NULL ? b : undefined(env)};
  napi_value recv;
  napi_get_global(env, &recv);
  napi_status s = napi_make_callback(env, h->actx, recv, fn, 3, argv, NULL);
  if (s == napi_pending_exception) {
    napi_value err;
    napi_get_and_clear_last_exception(env, &err);
    napi_fatal_exception(env, err);
  }
}

/* Work is pending (1) or not (0): the loop and the JS function are held
   only while it is. */
static void hold(handle *h, int on) {
  if (on && !h->ev_strong) {
    h->ev_strong = 1;
    napi_reference_ref(h->st->env, h->ev, NULL);
    if (h->c != NULL)
      smtpuv_client_set_ref(h->c, 1);
  } else if (!on && h->ev_strong) {
    h->ev_strong = 0;
    napi_reference_unref(h->st->env, h->ev, NULL);
    if (h->c != NULL)
      smtpuv_client_set_ref(h->c, 0);
  }
}

/* ---- handle life --------------------------------------------------------------- */

static void handle_unlink(handle *h) {
  env_state *st = h->st;
  if (h->prev != NULL)
    h->prev->next = h->next;
  else if (st->handles == h)
    st->handles = h->next;
  if (h->next != NULL)
    h->next->prev = h->prev;
  h->next = h->prev = NULL;
}

static void handle_free(handle *h) {
  if (h->ev != NULL && !h->st->env_gone)
    napi_delete_reference(h->st->env, h->ev);
  free(h);
}

static void teardown_check(env_state *st);

static void on_closed(smtpuv_client *c) {
  handle *h = smtpuv_client_get_data(c);
  env_state *st = h->st;
  h->c = NULL; /* freed when this returns; token answers are ignored now */
  h->tok_due = h->tok_open = 0;
  handle_unlink(h);
  if (!st->env_gone) {
    if (!st->tearing) {
      napi_handle_scope scope;
      napi_open_handle_scope(st->env, &scope);
      emit(h, EV_CLOSED, NULL, NULL);
      napi_close_handle_scope(st->env, scope);
    }
    if (h->ev_strong) {
      h->ev_strong = 0;
      napi_reference_unref(st->env, h->ev, NULL);
    }
    napi_async_destroy(st->env, h->actx);
  }
  h->actx = NULL;
  if (h->finalized)
    handle_free(h);
  teardown_check(st);
}

static void handle_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  handle *h = data;
  h->finalized = 1;
  if (h->c == NULL) {
    handle_free(h);
    return;
  }
  /* an idle client nobody can reach any more: end it (no JS from here) */
  napi_delete_reference(h->st->env, h->ev);
  h->ev = NULL;
  h->closing = 1;
  smtpuv_client_set_ref(h->c, 1); /* the loop must run its close */
  smtpuv_client_abort(h->c, on_closed);
}

/* ---- deferred notifications ----------------------------------------------------- */

static void on_async(uv_async_t *a) {
  env_state *st = a->data;
  if (st->tearing)
    return;
  napi_handle_scope scope;
  napi_open_handle_scope(st->env, &scope);
  /* a JS call may close handles or end streams: walk carefully, one event
     at a time, from the start again after each */
  for (int again = 1; again;) {
    again = 0;
    for (handle *h = st->handles; h != NULL && !again; h = h->next) {
      if (h->tok_due) {
        h->tok_due = 0;
        h->tok_open = 1;
        napi_value rej;
        napi_get_boolean(st->env, h->tok_rejected != 0, &rej);
        emit(h, EV_TOKEN, num(st->env, h->tok_seq), rej);
        again = 1;
        break;
      }
      for (nmsg *m = h->streams; m != NULL; m = m->snext) {
        if (m->drain_due) {
          m->drain_due = 0;
          m->paused = 0;
          emit(h, EV_DRAIN, num(st->env, m->id), NULL);
          again = 1;
          break;
        }
      }
    }
  }
  napi_close_handle_scope(st->env, scope);
}

static void notify(env_state *st) {
  if (st->async_open)
    uv_async_send(&st->async);
}

/* ---- token source --------------------------------------------------------------- */

static void on_token(smtpuv_auth *auth, int rejected, void *data) {
  handle *h = data;
  h->tok_auth = auth;
  h->tok_seq++;
  h->tok_rejected = rejected;
  h->tok_due = 1;
  notify(h->st);
}

/* ---- streamed bodies ------------------------------------------------------------- */

static void stream_clear(nmsg *m) {
  chunk *c = m->head;
  while (c != NULL) {
    chunk *n = c->next;
    free(c);
    c = n;
  }
  m->head = m->tail = NULL;
  m->buffered = 0;
}

static long body_read(void *user, void *buf, size_t cap) {
  nmsg *m = user;
  size_t got = 0;
  while (got < cap && m->head != NULL) {
    chunk *c = m->head;
    size_t n = c->len - c->off;
    if (n > cap - got)
      n = cap - got;
    memcpy((char *)buf + got, c->data + c->off, n);
    c->off += n;
    got += n;
    m->buffered -= n;
    if (c->off == c->len) {
      m->head = c->next;
      if (m->head == NULL)
        m->tail = NULL;
      free(c);
    }
  }
  if (m->paused && !m->drain_due && m->buffered < BODY_LOW && !m->ended) {
    m->drain_due = 1;
    notify(m->h->st);
  }
  if (got > 0)
    return (long)got;
  if (m->errored)
    return -1; /* the message fails with SMTPUV_EBODY */
  if (m->ended)
    return 0;
  return SMTPUV_EAGAIN;
}

static nmsg *find_stream(handle *h, uint32_t id) {
  for (nmsg *m = h->streams; m != NULL; m = m->snext)
    if (m->id == id)
      return m;
  return NULL;
}

static void stream_unlink(nmsg *m) {
  handle *h = m->h;
  if (m->sprev != NULL)
    m->sprev->snext = m->snext;
  else if (h->streams == m)
    h->streams = m->snext;
  if (m->snext != NULL)
    m->snext->sprev = m->sprev;
  m->snext = m->sprev = NULL;
}

/* ---- results --------------------------------------------------------------------- */

static const char *status_name(smtpuv_send_status s) {
  switch (s) {
  case SMTPUV_SEND_SENT:
    return "sent";
  case SMTPUV_SEND_FAILED:
    return "failed";
  case SMTPUV_SEND_UNKNOWN:
    return "unknown";
  case SMTPUV_SEND_CANCELED:
    return "canceled";
  }
  return "failed";
}

static napi_value result_object(napi_env env, const smtpuv_send_result *r) {
  napi_value o, acc, rej;
  napi_create_object(env, &o);
  set(env, o, "status", str(env, status_name(r->status)));
  napi_create_array(env, &acc);
  napi_create_array(env, &rej);
  uint32_t na = 0, nr = 0;
  for (size_t i = 0; i < r->nrecipients; i++) {
    const smtpuv_rcpt_result *rc = &r->recipients[i];
    if (rc->accepted) {
      napi_set_element(env, acc, na++, str(env, rc->address));
    } else {
      napi_value e;
      napi_create_object(env, &e);
      set(env, e, "address", str(env, rc->address));
      set(env, e, "code", num(env, rc->code));
      set(env, e, "enhanced", str(env, rc->enhanced));
      set(env, e, "text", str(env, rc->text));
      napi_set_element(env, rej, nr++, e);
    }
  }
  set(env, o, "accepted", acc);
  set(env, o, "rejected", rej);
  char resp[1200] = "";
  if (r->reply_code > 0)
    snprintf(resp, sizeof resp, "%d%s%s", r->reply_code,
             r->reply_text[0] ? " " : "", r->reply_text);
  set(env, o, "response", str(env, resp));
  set(env, o, "replyCode", num(env, r->reply_code));
  set(env, o, "enhanced", str(env, r->reply_enhanced));
  napi_value code;
  if (r->error != 0)
    code = str(env, smtpuv_err_name(r->error));
  else
    napi_get_null(env, &code);
  set(env, o, "code", code);
  set(env, o, "phase", str(env, smtpuv_phase_name(r->phase)));
  set(env, o, "message", str(env, r->message));
  set(env, o, "attempts", num(env, r->attempts));
  napi_value tls;
  if (r->tls != NULL)
    tls = str(env, r->tls);
  else
    napi_get_null(env, &tls);
  set(env, o, "tls", tls);
  return o;
}

static void on_sent(smtpuv_client *c, const smtpuv_send_result *r,
                    void *data) {
  nmsg *m = data;
  handle *h = smtpuv_client_get_data(c);
  env_state *st = h->st;
  napi_env env = st->env;
  h->pending--;
  if (m->stream)
    stream_unlink(m);
  if (!st->tearing && !st->env_gone) {
    napi_handle_scope scope;
    napi_open_handle_scope(env, &scope);
    napi_value res = result_object(env, r);
    if (m->msgid != NULL)
      set(env, res, "messageId", str(env, m->msgid));
    emit(h, EV_SENT, num(env, m->id), res);
    napi_close_handle_scope(env, scope);
  }
  smtpuv_compose_free(m->comp);
  free(m->ahead);
  free(m->msgid);
  if (m->buf != NULL && !st->env_gone)
    napi_delete_reference(env, m->buf);
  stream_clear(m);
  free(m);
  if (h->pending == 0 && !h->closing && !st->env_gone)
    hold(h, 0);
}

/* ---- exported functions ---------------------------------------------------------- */

static handle *get_handle(napi_env env, napi_value v) {
  void *p = NULL;
  if (napi_get_value_external(env, v, &p) != napi_ok || p == NULL) {
    napi_throw_type_error(env, "SMTPUV_EINVAL", "not an smtpuv handle");
    return NULL;
  }
  return p;
}

/* A call on a handle: its arguments into argv[0..n) (missing ones are
   undefined) and the handle of argv[0]. NULL after throwing. */
static handle *call_handle(napi_env env, napi_callback_info info,
                           napi_value *argv, size_t n) {
  size_t argc = n;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) {
    throw_last(env, "napi_get_cb_info");
    return NULL;
  }
  return get_handle(env, argv[0]);
}

/* Options in the shape index.js normalised them to. Returns 0 or an
   SMTPUV_E* code. */
static int build_options(napi_env env, napi_value o, handle *h,
                         smtpuv_options **out) {
  smtpuv_options *opt;
  int rc = smtpuv_options_new(NULL, &opt);
  if (rc != 0)
    return rc;
  int bad = 0;
  char *host = get_cstr(env, prop(env, o, "host"), &bad);
  char *user = get_cstr(env, prop(env, o, "user"), &bad);
  char *pass = get_cstr(env, prop(env, o, "pass"), &bad);
  char *servername = get_cstr(env, prop(env, o, "servername"), &bad);
  char *ehlo = get_cstr(env, prop(env, o, "name"), &bad);
  char *mech = get_cstr(env, prop(env, o, "mechanism"), &bad);
  if (bad)
    rc = SMTPUV_EINVAL;
  if (rc == 0)
    rc = smtpuv_options_set_host(opt, host);
  if (rc == 0)
    rc = smtpuv_options_set_port(opt, (unsigned)get_int(env, o, "port", 0));
  if (rc == 0)
    rc = smtpuv_options_set_tls(opt,
                                (smtpuv_tls_mode)get_int(env, o, "tls", 0));
  if (rc == 0 && servername != NULL)
    rc = smtpuv_options_set_tls_server_name(opt, servername);
  if (rc == 0 && ehlo != NULL)
    rc = smtpuv_options_set_ehlo_name(opt, ehlo);
  if (rc == 0 && mech != NULL)
    rc = smtpuv_options_set_auth_mechanism(opt, mech);
  if (rc == 0 && has(env, o, "verify"))
    rc = smtpuv_options_set_tls_verify(opt, (int)get_int(env, o, "verify", 1));
  if (rc == 0 && has(env, o, "allowPlaintextAuth"))
    rc = smtpuv_options_set_allow_plaintext_auth(
        opt, (int)get_int(env, o, "allowPlaintextAuth", 0));
  if (rc == 0 && has(env, o, "pipelining"))
    rc = smtpuv_options_set_pipelining(opt,
                                       (int)get_int(env, o, "pipelining", 1));
  if (rc == 0 && has(env, o, "chunking"))
    rc = smtpuv_options_set_chunking(opt, (int)get_int(env, o, "chunking", 1));
  if (rc == 0 && has(env, o, "requireAll"))
    rc = smtpuv_options_set_require_all_recipients(
        opt, (int)get_int(env, o, "requireAll", 0));
  static const char *const tnames[] = {"connect", "command", "data", "final",
                                       "idle"};
  if (rc == 0 && has(env, o, "timeouts")) {
    napi_value t = prop(env, o, "timeouts");
    for (int i = 0; i < 5 && rc == 0; i++)
      if (has(env, t, tnames[i]))
        rc = smtpuv_options_set_timeout(
            opt, (smtpuv_timeout)i, (unsigned)get_int(env, t, tnames[i], 0));
  }
  if (rc == 0 && has(env, o, "ca")) {
    void *pem;
    size_t len;
    if (napi_get_buffer_info(env, prop(env, o, "ca"), &pem, &len) != napi_ok)
      rc = SMTPUV_EINVAL;
    else
      rc = smtpuv_options_set_ca_pem(opt, pem, len);
  }
  if (rc == 0 && user != NULL) {
    smtpuv_auth_credentials cr = SMTPUV_AUTH_CREDENTIALS_INIT;
    cr.username = user;
    cr.password = pass;
    if (get_int(env, o, "token", 0)) {
      cr.token_cb = on_token;
      cr.token_data = h;
    }
    rc = smtpuv_options_set_auth_credentials(opt, &cr);
  }
  free(host);
  free(user);
  if (pass != NULL) {
    memset(pass, 0, strlen(pass));
    free(pass);
  }
  free(servername);
  free(ehlo);
  free(mech);
  if (rc != 0) {
    smtpuv_options_free(opt);
    return rc;
  }
  *out = opt;
  return 0;
}

static napi_value throw_code(napi_env env, int rc) {
  napi_throw_error(env, smtpuv_err_name(rc), smtpuv_strerror(rc));
  return NULL;
}

/* newClient(options, onEvent) -> handle */
static napi_value js_new_client(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  env_state *st;
  CHECK(env, napi_get_instance_data(env, (void **)&st));
  handle *h = calloc(1, sizeof *h);
  if (h == NULL)
    return throw_code(env, SMTPUV_ENOMEM);
  h->st = st;
  smtpuv_options *opt;
  int rc = build_options(env, argv[0], h, &opt);
  if (rc == 0) {
    rc = smtpuv_client_new(st->loop, opt, &h->c);
    smtpuv_options_free(opt);
  }
  if (rc != 0) {
    free(h);
    return throw_code(env, rc);
  }
  smtpuv_client_set_data(h->c, h);
  smtpuv_client_set_ref(h->c, 0); /* idle: does not hold the loop */
  napi_value name, ext;
  napi_create_reference(env, argv[1], 0, &h->ev);
  napi_create_string_utf8(env, "smtpuv", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, NULL, name, &h->actx);
  h->next = st->handles;
  if (st->handles != NULL)
    st->handles->prev = h;
  st->handles = h;
  CHECK(env, napi_create_external(env, h, handle_finalize, NULL, &ext));
  return ext;
}

/* send(handle, id, from, to[], body Buffer | null (streamed), size) -> rc */
static napi_value js_send(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  handle *h = call_handle(env, info, argv, 6);
  if (h == NULL)
    return NULL;
  if (h->c == NULL || h->closing)
    return num(env, SMTPUV_ECLOSED);
  uint32_t id;
  CHECK(env, napi_get_value_uint32(env, argv[1], &id));
  int bad = 0;
  char *from = get_cstr(env, argv[2], &bad);
  uint32_t nto = 0;
  bool isarr = false;
  napi_is_array(env, argv[3], &isarr);
  if (isarr)
    napi_get_array_length(env, argv[3], &nto);
  if (bad || from == NULL || nto == 0) {
    free(from);
    return num(env, SMTPUV_EINVAL);
  }
  char *stack_to[16];
  char **to = nto <= 16 ? stack_to : calloc(nto, sizeof *to);
  if (to == NULL) {
    free(from);
    return num(env, SMTPUV_ENOMEM);
  }
  uint32_t got = 0;
  for (; got < nto; got++) {
    napi_value e;
    napi_get_element(env, argv[3], got, &e);
    to[got] = get_cstr(env, e, &bad);
    if (bad || to[got] == NULL)
      break;
  }
  int rc = got == nto ? 0 : SMTPUV_EINVAL;
  nmsg *m = NULL;
  smtpuv_body body;
  if (rc == 0) {
    m = calloc(1, sizeof *m);
    if (m == NULL)
      rc = SMTPUV_ENOMEM;
  }
  if (rc == 0) {
    m->h = h;
    m->id = id;
    bool isbuf = false;
    napi_is_buffer(env, argv[4], &isbuf);
    if (isbuf) {
      void *data;
      size_t len;
      napi_get_buffer_info(env, argv[4], &data, &len);
      napi_create_reference(env, argv[4], 1, &m->buf);
      smtpuv_body_init_buffer(&body, data, len);
    } else {
      int64_t size = 0;
      napi_get_value_int64(env, argv[5], &size);
      m->stream = 1;
      smtpuv_body_init_stream(&body, body_read, NULL, m,
                              size > 0 ? (uint64_t)size : 0);
    }
    smtpuv_envelope envl = SMTPUV_ENVELOPE_INIT;
    envl.sender = from;
    envl.recipients = (const char *const *)to;
    envl.nrecipients = nto;
    rc = smtpuv_client_send(h->c, &envl, &body, on_sent, m);
    if (rc != 0) {
      if (m->buf != NULL)
        napi_delete_reference(env, m->buf);
      free(m);
    }
  }
  for (uint32_t i = 0; i < got && i < nto; i++)
    free(to[i]);
  if (got < nto && to[got] != NULL)
    free(to[got]);
  if (to != stack_to)
    free(to);
  free(from);
  if (rc == 0) {
    if (m->stream) {
      m->snext = h->streams;
      if (h->streams != NULL)
        h->streams->sprev = m;
      h->streams = m;
    }
    if (h->pending++ == 0)
      hold(h, 1);
  }
  return num(env, rc);
}

/* push(handle, id, Buffer | null (end) | false (error)) -> true: go on,
   false: pause until the drain event */
static napi_value js_push(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  handle *h = call_handle(env, info, argv, 3);
  if (h == NULL)
    return NULL;
  uint32_t id;
  CHECK(env, napi_get_value_uint32(env, argv[1], &id));
  nmsg *m = h->c != NULL ? find_stream(h, id) : NULL;
  napi_value r;
  if (m == NULL || m->ended || m->errored) {
    napi_get_boolean(env, true, &r); /* finished meanwhile: ignore */
    return r;
  }
  bool isbuf = false;
  napi_is_buffer(env, argv[2], &isbuf);
  if (isbuf) {
    void *data;
    size_t len;
    napi_get_buffer_info(env, argv[2], &data, &len);
    if (len > 0) {
      chunk *c = malloc(sizeof *c + len);
      if (c == NULL) {
        m->errored = 1;
      } else {
        memcpy(c->data, data, len);
        c->len = len;
        c->off = 0;
        c->next = NULL;
        if (m->tail != NULL)
          m->tail->next = c;
        else
          m->head = c;
        m->tail = c;
        m->buffered += len;
      }
    }
  } else {
    napi_valuetype t;
    napi_typeof(env, argv[2], &t);
    if (t == napi_boolean)
      m->errored = 1;
    else
      m->ended = 1;
  }
  smtpuv_client_body_ready(h->c);
  int go = m->buffered < BODY_HIGH || m->ended || m->errored;
  if (!go)
    m->paused = 1;
  napi_get_boolean(env, go, &r);
  return r;
}

/* ---- sendMail: the library's composer ------------------------------------------- */

/* The body of a composed message: the bytes read ahead first, then the
   composer's. */
static long composed_read(void *user, void *buf, size_t cap) {
  nmsg *m = user;
  if (m->ahead_off < m->ahead_len) {
    size_t n = m->ahead_len - m->ahead_off;
    if (n > cap)
      n = cap;
    memcpy(buf, m->ahead + m->ahead_off, n);
    m->ahead_off += n;
    return (long)n;
  }
  return smtpuv_compose_read(m->comp, buf, cap);
}

static int composed_rewind(void *user) {
  nmsg *m = user;
  int rc = smtpuv_compose_rewind(m->comp);
  if (rc == 0)
    m->ahead_off = m->ahead_len; /* the composer starts from byte 0 now */
  return rc;
}

/* Read the finished message's header block ahead (it is built by
   smtpuv_compose_finish(): no attachment source is read for it, except
   that the last small read may reach into the first part) and keep its
   Message-ID. */
static int read_ahead(nmsg *m) {
  size_t cap = 0;
  for (;;) {
    if (m->ahead_len + 256 > cap) {
      size_t ncap = cap == 0 ? 2048 : cap * 2;
      if (ncap > 1024 * 1024)
        return 0; /* no end of headers in 1 MiB: no messageId */
      char *nb = realloc(m->ahead, ncap + 1);
      if (nb == NULL)
        return SMTPUV_ENOMEM;
      m->ahead = nb;
      cap = ncap;
    }
    long n = smtpuv_compose_read(m->comp, m->ahead + m->ahead_len, 256);
    if (n == SMTPUV_EAGAIN || n == 0)
      return 0;
    if (n < 0)
      return (int)n;
    m->ahead_len += (size_t)n;
    m->ahead[m->ahead_len] = '\0';
    char *end = strstr(m->ahead, "\r\n\r\n");
    if (end == NULL)
      continue;
    for (char *p = m->ahead; p < end; p = strstr(p, "\r\n") + 2) {
      if (strncmp(p, "Message-ID: <", 13) == 0) {
        char *gt = strchr(p, '>');
        if (gt != NULL && gt < end) {
          size_t len = (size_t)(gt - p) - 12 + 1;
          m->msgid = malloc(len + 1);
          if (m->msgid == NULL)
            return SMTPUV_ENOMEM;
          memcpy(m->msgid, p + 12, len);
          m->msgid[len] = '\0';
        }
        break;
      }
    }
    return 0;
  }
}

/* A Buffer argument, or NULL/0. */
static int get_buf(napi_env env, napi_value v, void **data, size_t *len) {
  bool isbuf = false;
  napi_is_buffer(env, v, &isbuf);
  if (!isbuf) {
    *data = NULL;
    *len = 0;
    return 0;
  }
  return napi_get_buffer_info(env, v, data, len) == napi_ok ? 1 : 0;
}

/* Fill the composer from the spec index.js normalised. Returns 0 or a
   code; *what names the step that failed. */
static int compose_spec(napi_env env, napi_value sp, nmsg *m, int *streamed,
                        char *what, size_t whatlen) {
  smtpuv_compose *c = m->comp;
  int rc = 0, bad = 0;
  uint32_t n = 0;
  napi_value arr = prop(env, sp, "addrs");
  napi_get_array_length(env, arr, &n);
  for (uint32_t i = 0; i < n && rc == 0; i++) {
    napi_value e, ef, en, ea;
    napi_get_element(env, arr, i, &e);
    napi_get_element(env, e, 0, &ef);
    napi_get_element(env, e, 1, &en);
    napi_get_element(env, e, 2, &ea);
    int32_t field = 0;
    napi_get_value_int32(env, ef, &field);
    char *name = get_cstr(env, en, &bad);
    char *addr = get_cstr(env, ea, &bad);
    snprintf(what, whatlen, "address %u", i);
    rc = bad ? SMTPUV_EHEADER
             : smtpuv_compose_address(c, (smtpuv_compose_field)field, name,
                                      addr != NULL ? addr : "");
    free(name);
    free(addr);
  }
  static const char *const one[] = {"subject", "inReplyTo", "references",
                                    "messageIdDomain"};
  for (int k = 0; k < 4 && rc == 0; k++) {
    if (!has(env, sp, one[k]))
      continue;
    char *v = get_cstr(env, prop(env, sp, one[k]), &bad);
    snprintf(what, whatlen, "%s", one[k]);
    if (bad)
      rc = k == 0 ? SMTPUV_EHEADER : SMTPUV_EINVAL;
    else if (k == 0)
      rc = smtpuv_compose_subject(c, v);
    else if (k == 1)
      rc = smtpuv_compose_in_reply_to(c, v);
    else if (k == 2)
      rc = smtpuv_compose_references(c, v);
    else
      rc = smtpuv_compose_message_id(c, v);
    free(v);
  }
  arr = prop(env, sp, "headers");
  n = 0;
  napi_get_array_length(env, arr, &n);
  for (uint32_t i = 0; i < n && rc == 0; i++) {
    napi_value e, en, ev;
    napi_get_element(env, arr, i, &e);
    napi_get_element(env, e, 0, &en);
    napi_get_element(env, e, 1, &ev);
    char *name = get_cstr(env, en, &bad);
    char *val = get_cstr(env, ev, &bad);
    snprintf(what, whatlen, "header %u", i);
    rc = bad || name == NULL || val == NULL
             ? SMTPUV_EHEADER
             : smtpuv_compose_header(c, name, val);
    free(name);
    free(val);
  }
  if (rc == 0 && has(env, sp, "date")) {
    int64_t t = get_int(env, sp, "date", 0);
    snprintf(what, whatlen, "date");
    rc = smtpuv_compose_date(c, t, (int)get_int(env, sp, "dateOffset", 0));
  }
  void *data;
  size_t len;
  if (rc == 0 && get_buf(env, prop(env, sp, "text"), &data, &len)) {
    snprintf(what, whatlen, "text");
    rc = smtpuv_compose_text(c, data, len);
  }
  if (rc == 0 && get_buf(env, prop(env, sp, "html"), &data, &len)) {
    snprintf(what, whatlen, "html");
    rc = smtpuv_compose_html(c, data, len);
  }
  arr = prop(env, sp, "attachments");
  n = 0;
  napi_get_array_length(env, arr, &n);
  for (uint32_t i = 0; i < n && rc == 0; i++) {
    napi_value e;
    napi_get_element(env, arr, i, &e);
    smtpuv_compose_part part = SMTPUV_COMPOSE_PART_INIT;
    char *ct = get_cstr(env, prop(env, e, "contentType"), &bad);
    char *fn = get_cstr(env, prop(env, e, "filename"), &bad);
    char *cid = get_cstr(env, prop(env, e, "cid"), &bad);
    char *path = get_cstr(env, prop(env, e, "path"), &bad);
    snprintf(what, whatlen, "attachment %u", i);
    part.content_type = ct;
    part.filename = fn;
    part.content_id = cid;
    if (get_int(env, e, "stream", 0)) {
      if (*streamed) {
        bad = 1; /* one stream per message: index.js checks it */
      } else {
        *streamed = 1;
        part.read = body_read;
        part.user = m;
        part.size = get_int(env, e, "size", -1);
      }
    } else if (path != NULL) {
      part.path = path;
    } else if (get_buf(env, prop(env, e, "data"), &data, &len)) {
      part.data = data != NULL ? data : "";
      part.len = len;
    } else {
      bad = 1;
    }
    rc = bad ? SMTPUV_EINVAL : smtpuv_compose_attach(c, &part);
    free(ct);
    free(fn);
    free(cid);
    free(path);
  }
  if (rc == 0) {
    snprintf(what, whatlen, "finish");
    rc = smtpuv_compose_finish(c);
  }
  return rc;
}

/* sendMail(handle, id, spec) -> 0 | [rc, step] */
static napi_value js_send_mail(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  handle *h = call_handle(env, info, argv, 3);
  if (h == NULL)
    return NULL;
  if (h->c == NULL || h->closing)
    return num(env, SMTPUV_ECLOSED);
  uint32_t id;
  CHECK(env, napi_get_value_uint32(env, argv[1], &id));
  char what[64] = "composer";
  int streamed = 0;
  nmsg *m = calloc(1, sizeof *m);
  int rc = m == NULL ? SMTPUV_ENOMEM : 0;
  if (rc == 0) {
    m->h = h;
    m->id = id;
    unsigned flags = get_int(env, argv[2], "replaceInvalid", 0)
                         ? SMTPUV_COMPOSE_REPLACE_INVALID
                         : 0;
    rc = smtpuv_compose_new(NULL, flags, &m->comp);
  }
  if (rc == 0)
    rc = compose_spec(env, argv[2], m, &streamed, what, sizeof what);
  if (rc == 0) {
    snprintf(what, sizeof what, "read");
    rc = read_ahead(m);
  }
  if (rc == 0) {
    snprintf(what, sizeof what, "send");
    smtpuv_envelope envl = SMTPUV_ENVELOPE_INIT;
    smtpuv_mail_params mp = SMTPUV_MAIL_PARAMS_INIT;
    envl.sender = smtpuv_compose_sender(m->comp);
    envl.recipients = smtpuv_compose_recipients(m->comp, &envl.nrecipients);
    if (smtpuv_compose_8bit(m->comp)) {
      mp.body = SMTPUV_BODY_8BITMIME;
      envl.mail_params = &mp;
    }
    smtpuv_body body;
    int64_t size = smtpuv_compose_size(m->comp);
    smtpuv_body_init_stream(&body, composed_read, composed_rewind, m,
                            size > 0 ? (uint64_t)size : 0);
    rc = smtpuv_client_send(h->c, &envl, &body, on_sent, m);
  }
  if (rc != 0) {
    if (m != NULL) {
      smtpuv_compose_free(m->comp);
      free(m->ahead);
      free(m->msgid);
      free(m);
    }
    napi_value r, e0, e1;
    napi_create_array(env, &r);
    e0 = num(env, rc);
    e1 = str(env, what);
    napi_set_element(env, r, 0, e0);
    napi_set_element(env, r, 1, e1);
    return r;
  }
  m->stream = streamed;
  if (streamed) {
    m->snext = h->streams;
    if (h->streams != NULL)
      h->streams->sprev = m;
    h->streams = m;
  }
  if (h->pending++ == 0)
    hold(h, 1);
  napi_value r = num(env, 0);
  if (m->msgid != NULL) {
    napi_create_array(env, &r);
    napi_set_element(env, r, 0, num(env, 0));
    napi_set_element(env, r, 1, str(env, m->msgid));
  }
  return r;
}

/* close(handle) -> rc; abort(handle) -> rc */
static napi_value js_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  handle *h = call_handle(env, info, argv, 1);
  if (h == NULL)
    return NULL;
  if (h->c == NULL || h->closing)
    return num(env, SMTPUV_ECLOSED);
  h->closing = 1;
  hold(h, 1);
  return num(env, smtpuv_client_close(h->c, on_closed));
}

static napi_value js_abort(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  handle *h = call_handle(env, info, argv, 1);
  if (h == NULL)
    return NULL;
  if (h->c == NULL)
    return num(env, SMTPUV_ECLOSED);
  h->closing = 1;
  hold(h, 1);
  return num(env, smtpuv_client_abort(h->c, on_closed));
}

/* tokenAnswer(handle, seq, token | null, reason) */
static napi_value js_token_answer(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  handle *h = call_handle(env, info, argv, 4);
  if (h == NULL)
    return NULL;
  uint32_t seq;
  CHECK(env, napi_get_value_uint32(env, argv[1], &seq));
  if (h->c == NULL || !h->tok_open || seq != h->tok_seq)
    return num(env, SMTPUV_ECLOSED); /* stale: a later request, or gone */
  h->tok_open = 0;
  int bad = 0;
  char *tok = get_cstr(env, argv[2], &bad);
  int rc;
  if (tok != NULL) {
    rc = smtpuv_auth_token_provide(h->tok_auth, tok);
    memset(tok, 0, strlen(tok));
    free(tok);
    if (rc != 0)
      smtpuv_auth_token_fail(h->tok_auth, SMTPUV_EAUTH,
                             "the token callback gave an invalid token");
  } else {
    char *why = get_cstr(env, argv[3], &bad);
    rc = smtpuv_auth_token_fail(h->tok_auth, SMTPUV_EAUTH,
                                why != NULL ? why : "the token callback failed");
    free(why);
  }
  return num(env, rc);
}

static napi_value js_pending(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  handle *h = call_handle(env, info, argv, 1);
  if (h == NULL)
    return NULL;
  return num(env, (double)h->pending);
}

static napi_value js_strerror(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t code = 0;
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  CHECK(env, napi_get_value_int32(env, argv[0], &code));
  napi_value o;
  napi_create_object(env, &o);
  set(env, o, "name", str(env, smtpuv_err_name(code)));
  set(env, o, "message", str(env, smtpuv_strerror(code)));
  return o;
}

/* handles() -> [{type, active, ref}] of every handle on this environment's
   loop (Node's own included): for tests of the addon's life cycle. */
typedef struct walk_ctx {
  napi_env env;
  napi_value arr;
  uint32_t n;
} walk_ctx;

static void walk_one(uv_handle_t *hd, void *arg) {
  walk_ctx *w = arg;
  napi_value o, b;
  napi_create_object(w->env, &o);
  set(w->env, o, "type", str(w->env, uv_handle_type_name(uv_handle_get_type(hd))));
  napi_get_boolean(w->env, uv_is_active(hd) != 0, &b);
  set(w->env, o, "active", b);
  napi_get_boolean(w->env, uv_has_ref(hd) != 0, &b);
  set(w->env, o, "ref", b);
  napi_get_boolean(w->env, uv_is_closing(hd) != 0, &b);
  set(w->env, o, "closing", b);
  napi_set_element(w->env, w->arr, w->n++, o);
}

static napi_value js_handles(napi_env env, napi_callback_info info) {
  (void)info;
  env_state *st;
  CHECK(env, napi_get_instance_data(env, (void **)&st));
  walk_ctx w = {env, NULL, 0};
  CHECK(env, napi_create_array(env, &w.arr));
  uv_walk(st->loop, walk_one, &w);
  return w.arr;
}

/* ---- environment ------------------------------------------------------------------ */

static void on_async_closed(uv_handle_t *a) {
  env_state *st = a->data;
  napi_async_cleanup_hook_handle hook = st->hook;
  st->hook = NULL;
  if (st->env_gone)
    free(st); /* env_finalize left it to us */
  napi_remove_async_cleanup_hook(hook);
}

/* During teardown: once every client is closed, close the async handle and
   let the environment go on. */
static void teardown_check(env_state *st) {
  if (!st->tearing || st->handles != NULL || !st->async_open)
    return;
  st->async_open = 0;
  uv_close((uv_handle_t *)&st->async, on_async_closed);
}

static void on_cleanup(napi_async_cleanup_hook_handle hook, void *arg) {
  env_state *st = arg;
  st->tearing = 1;
  st->hook = hook;
  for (handle *h = st->handles; h != NULL; h = h->next) {
    h->closing = 1;
    /* an idle client's handles are unref'd: the loop Node spins until this
       hook is removed would not run them */
    smtpuv_client_set_ref(h->c, 1);
    smtpuv_client_abort(h->c, on_closed); /* ECLOSED when already aborting */
  }
  teardown_check(st);
}

static void env_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  env_state *st = data;
  st->env_gone = 1;
  /* normally after the cleanup hook finished; if the hook is still waiting
     for close callbacks, on_async_closed frees it */
  if (!st->async_open && st->hook == NULL)
    free(st);
}

NAPI_MODULE_INIT() {
  env_state *st = calloc(1, sizeof *st);
  if (st == NULL) {
    napi_throw_error(env, "SMTPUV_ENOMEM", "out of memory");
    return NULL;
  }
  st->env = env;
  if (napi_get_uv_event_loop(env, &st->loop) != napi_ok) {
    free(st);
    napi_throw_error(env, "SMTPUV_EINVAL", "no event loop");
    return NULL;
  }
  uv_async_init(st->loop, &st->async, on_async);
  st->async.data = st;
  st->async_open = 1;
  uv_unref((uv_handle_t *)&st->async);
  CHECK(env, napi_set_instance_data(env, st, env_finalize, NULL));
  CHECK(env, napi_add_async_cleanup_hook(env, on_cleanup, st, &st->hook));

  static const struct {
    const char *name;
    napi_callback fn;
  } fns[] = {{"newClient", js_new_client}, {"send", js_send},
             {"sendMail", js_send_mail},
             {"push", js_push},            {"close", js_close},
             {"abort", js_abort},          {"tokenAnswer", js_token_answer},
             {"pending", js_pending},      {"strerror", js_strerror},
             {"handles", js_handles}};
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    napi_value f;
    CHECK(env, napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH,
                                    fns[i].fn, NULL, &f));
    CHECK(env, napi_set_named_property(env, exports, fns[i].name, f));
  }
  napi_value v;
  CHECK(env, napi_create_string_utf8(env, SMTPUV_VERSION, NAPI_AUTO_LENGTH,
                                     &v));
  CHECK(env, napi_set_named_property(env, exports, "version", v));
  return exports;
}

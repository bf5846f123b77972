/* smtpuv_client_probe(): connect, read the greeting, EHLO, STARTTLS when
 * the TLS mode asks for it, EHLO again, QUIT, and report what the server
 * said about itself (smtpuv-send --serverinfo).
 *
 * A small connection of its own on the same building blocks as conn.c (the
 * sans-io core, the TLS engine, libuv): it never writes AUTH or MAIL, so it
 * needs none of the message machinery. One uv_write at a time is not needed
 * here: every write owns a copy of its bytes (a handful of short commands
 * and the TLS handshake). The callback runs after every handle is closed.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "uv/client_int.h"

int smtpuv__valid_ehlo(const char *s);

enum {
  P_RESOLVING = 0,
  P_CONNECTING,
  P_TLS_IMPLICIT,
  P_GREETING,
  P_EHLO,
  P_STARTTLS,
  P_TLS_STARTTLS,
  P_QUIT,
  P_DEAD
};

typedef struct probe {
  smtpuv_options opts; /* private copy */
  uv_loop_t *loop;
  smtpuv_probe_cb cb;
  void *data;
  int state;

  uv_getaddrinfo_t gai;
  uv_connect_t creq;
  uv_tcp_t tcp;
  uv_timer_t timer;
  int gai_active, tcp_open, timer_open, closing;
  struct addrinfo *ai_list, *ai_next;
  int last_err;
  int resolve_err; /* uv_getaddrinfo() refused the name at once */
  uint64_t deadline;

  smtpuv_proto *proto;
  smtpuv_tls *tls;
  int tls_up;
  char ehlo[256];
  char rbuf[16384];
  char pbuf[16384];

  /* result */
  int error;
  smtpuv_phase phase;
  char message[512];
  char peer[80];
  int greeting_code;
  char *greeting, *server_name, *ext, *ext_plain, *auth;
  unsigned ext_flags;
  uint64_t max_size;
  char *tls_summary;
} probe;

typedef struct probe_write {
  uv_write_t req;
  probe *p;
  size_t len;
  char bytes[]; /* the copy being written */
} probe_write;

static void flush(probe *p);
static void try_next(probe *p);
static void drop_attempt(probe *p, int err);
static void on_timer(uv_timer_t *t);

/* ---- life cycle ------------------------------------------------------------- */

static void maybe_done(probe *p) {
  if (p->tcp_open || p->timer_open || p->gai_active || p->closing)
    return;
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
  r.tls = p->tls_summary;
  p->cb(&r, p->data);

  const smtpuv_mem *mem = &p->opts.mem;
  if (p->ai_list != NULL)
    uv_freeaddrinfo(p->ai_list);
  smtpuv_proto_free(p->proto);
  smtpuv__tls_free(p->tls);
  smtpuv__free(mem, p->greeting);
  smtpuv__free(mem, p->server_name);
  smtpuv__free(mem, p->ext);
  smtpuv__free(mem, p->ext_plain);
  smtpuv__free(mem, p->auth);
  smtpuv__free(mem, p->tls_summary);
  smtpuv_mem m = p->opts.mem;
  smtpuv__options_clear(&p->opts);
  smtpuv__free(&m, p);
}

static void on_closed(uv_handle_t *h) {
  probe *p = h->data;
  p->closing--;
  maybe_done(p);
}

/* Close everything; the callback follows when the handles are gone. */
static void terminate(probe *p) {
  if (p->state == P_DEAD)
    return;
  p->state = P_DEAD;
  if (p->gai_active)
    uv_cancel((uv_req_t *)&p->gai);
  if (p->timer_open) {
    p->timer_open = 0;
    p->closing++;
    uv_close((uv_handle_t *)&p->timer, on_closed);
  }
  if (p->tcp_open) {
    p->tcp_open = 0;
    p->closing++;
    uv_close((uv_handle_t *)&p->tcp, on_closed);
  }
  maybe_done(p);
}

static void trace(probe *p, smtpuv_trace_kind kind, const char *b, size_t n) {
  if (p->opts.trace != NULL && n > 0)
    p->opts.trace(p->opts.trace_data, kind, b, n);
}

#if defined(__GNUC__) || defined(__clang__)
__attribute__((format(printf, 2, 3)))
#endif
static void info(probe *p, const char *fmt, ...) {
  if (p->opts.trace == NULL)
    return;
  char line[600];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (n > 0)
    trace(p, SMTPUV_TRACE_INFO, line,
          (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

/* Record the outcome (first one wins) and stop. */
#if defined(__GNUC__) || defined(__clang__)
__attribute__((format(printf, 4, 5)))
#endif
static void fail(probe *p, int err, smtpuv_phase phase, const char *fmt, ...) {
  if (p->state == P_DEAD)
    return;
  if (p->error == 0) {
    p->error = err;
    p->phase = phase;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->message, sizeof p->message, fmt, ap);
    va_end(ap);
  }
  terminate(p);
}

static smtpuv_phase phase_of(const probe *p) {
  switch (p->state) {
  case P_RESOLVING:
  case P_CONNECTING:
    return SMTPUV_PHASE_CONNECT;
  case P_TLS_IMPLICIT:
  case P_STARTTLS:
  case P_TLS_STARTTLS:
    return SMTPUV_PHASE_TLS;
  case P_GREETING:
    return SMTPUV_PHASE_GREETING;
  case P_EHLO:
    return SMTPUV_PHASE_EHLO;
  default:
    return SMTPUV_PHASE_QUIT;
  }
}

/* ---- replies ------------------------------------------------------------------ */

static char *dup_text(probe *p, const char *s, size_t n) {
  return smtpuv__strndup(&p->opts.mem, s, n);
}

/* The EHLO reply's lines after the first, joined by "\n". */
static char *join_ext(probe *p, const smtpuv_reply *r) {
  size_t total = 1;
  for (size_t i = 1; i < r->nlines; i++)
    total += r->lines[i].len + 1;
  char *s = smtpuv__malloc(&p->opts.mem, total);
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

static void send_quit(probe *p) {
  p->state = P_QUIT;
  if (smtpuv_proto_quit(p->proto) != 0) {
    terminate(p);
    return;
  }
  flush(p);
  /* a short wait for 221: the report is complete already */
  if (p->timer_open && p->state == P_QUIT)
    uv_timer_start(&p->timer, on_timer, 2000, 0);
}

static void start_tls(probe *p);

static void on_ehlo(probe *p, const smtpuv_reply *r) {
  const smtpuv_mem *mem = &p->opts.mem;
  if (!r->positive) {
    fail(p, r->code >= 500 ? SMTPUV_EPERMFAIL : SMTPUV_ETEMPFAIL,
         SMTPUV_PHASE_EHLO, "EHLO: %d %s", r->code, r->text);
    return;
  }
  smtpuv__free(mem, p->server_name);
  smtpuv__free(mem, p->auth);
  char *ext = join_ext(p, r);
  p->server_name =
      r->nlines > 0 ? dup_text(p, r->lines[0].ptr, r->lines[0].len) : NULL;
  p->auth = smtpuv__strdup(mem, smtpuv_proto_auth_mechanisms(p->proto));
  if (ext == NULL || p->auth == NULL ||
      (r->nlines > 0 && p->server_name == NULL)) {
    smtpuv__free(mem, ext);
    fail(p, SMTPUV_ENOMEM, SMTPUV_PHASE_EHLO, "out of memory");
    return;
  }
  p->ext_flags = smtpuv_proto_extensions(p->proto);
  p->max_size = smtpuv_proto_max_size(p->proto);
  int offered = (p->ext_flags & SMTPUV_EXT_STARTTLS) != 0;
  smtpuv_tls_mode mode = p->opts.tls;
  if (!p->tls_up && offered &&
      (mode == SMTPUV_TLS_REQUIRED || mode == SMTPUV_TLS_OPPORTUNISTIC)) {
    smtpuv__free(mem, p->ext_plain);
    p->ext_plain = ext;
    p->state = P_STARTTLS;
    int rc = smtpuv_proto_starttls(p->proto);
    if (rc != 0) {
      fail(p, rc, SMTPUV_PHASE_TLS, "STARTTLS: %s", smtpuv_strerror(rc));
      return;
    }
    flush(p);
    return;
  }
  smtpuv__free(mem, p->ext);
  p->ext = ext;
  if (!p->tls_up && mode == SMTPUV_TLS_REQUIRED) {
    p->error = SMTPUV_ENOTLS;
    p->phase = SMTPUV_PHASE_EHLO;
    snprintf(p->message, sizeof p->message,
             "TLS required but %s does not offer STARTTLS", p->peer);
  }
  send_quit(p);
}

static void on_reply(probe *p, const smtpuv_reply *r) {
  switch (r->command) {
  case SMTPUV_CMD_GREETING:
    p->greeting_code = r->code;
    smtpuv__free(&p->opts.mem, p->greeting);
    p->greeting = dup_text(p, r->text, r->text_len);
    if (!r->positive) {
      fail(p, r->code >= 500 ? SMTPUV_EPERMFAIL : SMTPUV_ETEMPFAIL,
           SMTPUV_PHASE_GREETING, "greeting: %d %s", r->code, r->text);
      return;
    }
    p->state = P_EHLO;
    if (smtpuv_proto_ehlo(p->proto, p->ehlo) != 0) {
      fail(p, SMTPUV_EINVAL, SMTPUV_PHASE_EHLO, "EHLO: bad name '%s'",
           p->ehlo);
      return;
    }
    flush(p);
    return;
  case SMTPUV_CMD_EHLO:
    on_ehlo(p, r);
    return;
  case SMTPUV_CMD_STARTTLS:
    if (!r->positive) {
      int err = p->opts.tls == SMTPUV_TLS_REQUIRED ? SMTPUV_ENOTLS
                                                   : SMTPUV_ETEMPFAIL;
      fail(p, err, SMTPUV_PHASE_TLS, "STARTTLS refused: %d %s", r->code,
           r->text);
      return;
    }
    start_tls(p);
    return;
  case SMTPUV_CMD_QUIT:
    terminate(p);
    return;
  default:
    if (r->command == SMTPUV_CMD_NONE && r->code == 421) {
      fail(p, SMTPUV_ESHUTDOWN, phase_of(p), "%d %s", r->code, r->text);
      return;
    }
    return;
  }
}

static void on_plaintext(probe *p, const char *buf, size_t n) {
  trace(p, SMTPUV_TRACE_RECV, buf, n);
  int rc = smtpuv_proto_feed(p->proto, buf, n);
  smtpuv_reply r;
  for (int guard = 0; guard < 1000 && p->state != P_DEAD; guard++) {
    int got = smtpuv_proto_next_reply(p->proto, &r);
    if (got == 1) {
      on_reply(p, &r);
      continue;
    }
    if (got < 0)
      rc = got;
    break;
  }
  if (rc < 0 && p->state != P_DEAD) {
    if (p->state == P_QUIT) {
      terminate(p);
      return;
    }
    const char *why = smtpuv_proto_error_text(p->proto);
    fail(p, rc, phase_of(p), "%s",
         why[0] ? why : smtpuv_strerror(rc));
    return;
  }
  if (p->state != P_DEAD && p->state != P_QUIT && p->timer_open)
    uv_timer_again(&p->timer);
}

/* ---- TLS ------------------------------------------------------------------------ */

static void tls_drain(probe *p) {
  for (int guard = 0; guard < 10000 && p->state != P_DEAD && p->tls_up;
       guard++) {
    long n = smtpuv__tls_read(p->tls, p->pbuf, sizeof p->pbuf);
    if (n > 0) {
      on_plaintext(p, p->pbuf, (size_t)n);
      continue;
    }
    if (n < 0) {
      if (p->state == P_QUIT)
        terminate(p);
      else if (n == SMTPUV_ECONNLOST)
        fail(p, SMTPUV_ECONNLOST, phase_of(p),
             "connection closed by the server");
      else
        fail(p, (int)n, phase_of(p), "TLS: %s",
             smtpuv__tls_error_text(p->tls));
    }
    break;
  }
  if (p->state != P_DEAD)
    flush(p);
}

static void handshake(probe *p) {
  int rc = smtpuv__tls_handshake(p->tls);
  if (rc == 0) {
    flush(p);
    return;
  }
  if (rc < 0) {
    const char *why = smtpuv__tls_error_text(p->tls);
    if (rc == SMTPUV_ECONNLOST)
      fail(p, rc, SMTPUV_PHASE_TLS,
           "TLS handshake: connection closed by the server");
    else
      fail(p, rc, SMTPUV_PHASE_TLS, "TLS handshake: %s",
           why[0] ? why : smtpuv_strerror(rc));
    return;
  }
  p->tls_up = 1;
  char summary[512];
  size_t n = smtpuv__tls_summary(p->tls, summary, sizeof summary);
  p->tls_summary = smtpuv__strndup(&p->opts.mem, summary, n);
  info(p, "TLS: %s", summary);
  if (p->state == P_TLS_IMPLICIT) {
    p->state = P_GREETING;
  } else {
    int e = smtpuv_proto_tls_established(p->proto);
    if (e != 0) {
      fail(p, e, SMTPUV_PHASE_TLS, "TLS: %s", smtpuv_strerror(e));
      return;
    }
    p->state = P_EHLO;
    if (smtpuv_proto_ehlo(p->proto, p->ehlo) != 0) {
      fail(p, SMTPUV_EINVAL, SMTPUV_PHASE_EHLO, "EHLO: bad name");
      return;
    }
  }
  flush(p);
  if (p->state != P_DEAD)
    tls_drain(p);
}

static void start_tls(probe *p) {
  smtpuv_tls_config cfg;
  char err[256] = "";
  memset(&cfg, 0, sizeof cfg);
  cfg.ctx = p->opts.ssl_ctx;
  cfg.ca_file = p->opts.ca_file;
  cfg.ca_dir = p->opts.ca_dir;
  cfg.host = p->opts.server_name != NULL ? p->opts.server_name : p->opts.host;
  cfg.verify = p->opts.verify;
  cfg.err = err;
  cfg.errlen = sizeof err;
  p->state = p->state == P_TLS_IMPLICIT ? P_TLS_IMPLICIT : P_TLS_STARTTLS;
  int rc = smtpuv__tls_new(&p->opts.mem, &cfg, &p->tls);
  if (rc != 0) {
    fail(p, rc, SMTPUV_PHASE_TLS, "TLS setup: %s",
         err[0] ? err : smtpuv_strerror(rc));
    return;
  }
  handshake(p);
}

/* ---- socket --------------------------------------------------------------------- */

static void on_write(uv_write_t *req, int status) {
  probe_write *w = (probe_write *)req;
  probe *p = w->p;
  smtpuv__free(&p->opts.mem, w);
  if (status < 0 && p->state != P_DEAD) {
    if (p->state == P_QUIT)
      terminate(p);
    else
      fail(p, SMTPUV_ECONNLOST, phase_of(p), "write: %s",
           uv_strerror(status));
  }
}

static int write_copy(probe *p, const void *bytes, size_t len) {
  probe_write *w = smtpuv__malloc(&p->opts.mem, sizeof *w + len);
  if (w == NULL)
    return SMTPUV_ENOMEM;
  w->p = p;
  w->len = len;
  memcpy(w->bytes, bytes, len);
  uv_buf_t b = uv_buf_init(w->bytes, (unsigned)len);
  int rc = uv_write(&w->req, (uv_stream_t *)&p->tcp, &b, 1, on_write);
  if (rc != 0) {
    smtpuv__free(&p->opts.mem, w);
    return SMTPUV_ECONNLOST;
  }
  return 0;
}

/* Write what the core and the TLS engine have pending. */
static void flush(probe *p) {
  if (p->state == P_DEAD || !p->tcp_open)
    return;
  const void *ptr;
  size_t len;
  int rc = 0;
  for (;;) {
    smtpuv_proto_outgoing(p->proto, &ptr, &len);
    if (len == 0)
      break;
    if (p->tls != NULL && !p->tls_up)
      break; /* the handshake goes first */
    trace(p, SMTPUV_TRACE_SEND, ptr, len);
    rc = p->tls_up ? smtpuv__tls_write(p->tls, ptr, len)
                   : write_copy(p, ptr, len);
    if (rc != 0)
      break;
    smtpuv_proto_consumed(p->proto, len);
  }
  if (rc == 0 && p->tls != NULL) {
    void *buf;
    size_t n;
    rc = smtpuv__tls_take_output(p->tls, &buf, &n);
    if (rc == 0 && n > 0) {
      rc = write_copy(p, buf, n);
      p->opts.mem.free(buf, p->opts.mem.user);
    }
  }
  if (rc != 0) {
    if (p->state == P_QUIT)
      terminate(p);
    else
      fail(p, rc, phase_of(p), "write: %s", smtpuv_strerror(rc));
  }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  probe *p = h->data;
  (void)suggested;
  *buf = uv_buf_init(p->rbuf, sizeof p->rbuf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  probe *p = s->data;
  if (p->state == P_DEAD || nread == 0)
    return;
  if (nread < 0) {
    if (p->state == P_QUIT) {
      terminate(p);
      return;
    }
    if (p->tls != NULL && nread == UV_EOF) {
      smtpuv__tls_eof(p->tls);
      if (p->tls_up)
        tls_drain(p);
    }
    if (nread == UV_EOF)
      fail(p, SMTPUV_ECONNLOST, phase_of(p),
           "%s closed the connection during %s", p->peer,
           smtpuv_phase_name(phase_of(p)));
    else
      fail(p, SMTPUV_ECONNLOST, phase_of(p), "read: %s",
           uv_strerror((int)nread));
    return;
  }
  if (p->tls != NULL) {
    if (smtpuv__tls_feed(p->tls, buf->base, (size_t)nread) != 0) {
      fail(p, SMTPUV_ENOMEM, phase_of(p), "out of memory");
      return;
    }
    if (!p->tls_up)
      handshake(p);
    else
      tls_drain(p);
    return;
  }
  on_plaintext(p, buf->base, (size_t)nread);
}

static void on_timer(uv_timer_t *t) {
  probe *p = t->data;
  if (p->resolve_err != 0) {
    fail(p, SMTPUV_ERESOLVE, SMTPUV_PHASE_CONNECT, "resolve %s: %s",
         p->opts.host, uv_strerror(p->resolve_err));
    return;
  }
  if (p->state == P_QUIT) {
    terminate(p);
    return;
  }
  if (p->state == P_CONNECTING && p->ai_next != NULL &&
      uv_now(p->loop) < p->deadline) {
    /* this address is not answering: try the next one */
    drop_attempt(p, UV_ETIMEDOUT);
    return;
  }
  const char *what = p->state == P_RESOLVING    ? "resolve"
                     : p->state == P_CONNECTING ? "connect"
                                                : "waiting for";
  if (p->state <= P_CONNECTING)
    fail(p, SMTPUV_ETIMEDOUT, SMTPUV_PHASE_CONNECT, "%s %s:%u: timed out",
         what, p->opts.host, p->opts.port);
  else
    fail(p, SMTPUV_ETIMEDOUT, phase_of(p), "timed out in %s with %s",
         smtpuv_phase_name(phase_of(p)), p->peer);
}

static void default_ehlo(probe *p) {
  if (p->opts.ehlo != NULL) {
    snprintf(p->ehlo, sizeof p->ehlo, "%s", p->opts.ehlo);
    return;
  }
  size_t n = sizeof p->ehlo;
  if (uv_os_gethostname(p->ehlo, &n) == 0 && smtpuv__valid_ehlo(p->ehlo))
    return;
  /* an address literal of our end of the connection */
  struct sockaddr_storage ss;
  int len = sizeof ss;
  char ip[64] = "";
  if (uv_tcp_getsockname(&p->tcp, (struct sockaddr *)&ss, &len) == 0) {
    if (ss.ss_family == AF_INET)
      uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof ip);
    else if (ss.ss_family == AF_INET6)
      uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof ip);
  }
  if (ip[0] == '\0')
    snprintf(p->ehlo, sizeof p->ehlo, "localhost");
  else
    snprintf(p->ehlo, sizeof p->ehlo, "[%s%s]",
             ss.ss_family == AF_INET6 ? "IPv6:" : "", ip);
}

static void on_connect(uv_connect_t *req, int status) {
  probe *p = req->data;
  if (p->state == P_DEAD || status == UV_ECANCELED)
    return;
  if (status < 0) {
    drop_attempt(p, status);
    return;
  }
  info(p, "connected to %s", p->peer);
  default_ehlo(p);
  int rc = uv_read_start((uv_stream_t *)&p->tcp, on_alloc, on_read);
  if (rc != 0) {
    fail(p, SMTPUV_ECONNECT, SMTPUV_PHASE_CONNECT, "read: %s",
         uv_strerror(rc));
    return;
  }
  unsigned ms = p->opts.timeouts[SMTPUV_TIMEOUT_COMMAND];
  if (p->timer_open) {
    uv_timer_stop(&p->timer);
    if (ms != 0)
      uv_timer_start(&p->timer, on_timer, ms, ms);
  }
  if (p->opts.tls == SMTPUV_TLS_IMPLICIT) {
    p->state = P_TLS_IMPLICIT;
    start_tls(p);
    return;
  }
  p->state = P_GREETING;
}

static void addr_text(const struct sockaddr *sa, unsigned port, char *buf,
                      size_t len) {
  char ip[64] = "";
  if (sa->sa_family == AF_INET)
    uv_ip4_name((const struct sockaddr_in *)sa, ip, sizeof ip);
  else if (sa->sa_family == AF_INET6)
    uv_ip6_name((const struct sockaddr_in6 *)sa, ip, sizeof ip);
  snprintf(buf, len, sa->sa_family == AF_INET6 ? "[%s]:%u" : "%s:%u", ip,
           port);
}

static void on_tcp_closed_retry(uv_handle_t *h) {
  probe *p = h->data;
  p->closing--;
  if (p->state == P_DEAD) {
    maybe_done(p);
    return;
  }
  try_next(p);
}

/* Give up on the current address; the next one is tried once the handle
   is closed (its memory is reused). */
static void drop_attempt(probe *p, int err) {
  p->last_err = err;
  if (p->tcp_open) {
    p->tcp_open = 0;
    p->closing++;
    uv_close((uv_handle_t *)&p->tcp, on_tcp_closed_retry);
  } else {
    try_next(p);
  }
}

static void try_next(probe *p) {
  for (;;) {
    if (p->state == P_DEAD)
      return;
    struct addrinfo *ai = p->ai_next;
    if (ai == NULL) {
      int e = p->last_err;
      if (e == UV_ETIMEDOUT)
        fail(p, SMTPUV_ETIMEDOUT, SMTPUV_PHASE_CONNECT,
             "connect %s: timed out", p->peer[0] ? p->peer : p->opts.host);
      else
        fail(p, SMTPUV_ECONNECT, SMTPUV_PHASE_CONNECT, "connect %s: %s",
             p->peer[0] ? p->peer : p->opts.host,
             e ? uv_strerror(e) : "no usable address");
      return;
    }
    p->ai_next = ai->ai_next;
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
      continue;
    addr_text(ai->ai_addr, p->opts.port, p->peer, sizeof p->peer);
    info(p, "connecting to %s", p->peer);
    int rc = uv_tcp_init(p->loop, &p->tcp);
    if (rc != 0) {
      p->last_err = rc;
      continue;
    }
    p->tcp.data = p;
    p->tcp_open = 1;
    uv_tcp_nodelay(&p->tcp, 1);
    p->creq.data = p;
    p->state = P_CONNECTING;
    rc = uv_tcp_connect(&p->creq, &p->tcp, ai->ai_addr, on_connect);
    if (rc != 0) {
      drop_attempt(p, rc);
      return;
    }
    /* this attempt's share of what is left of the connect timeout */
    if (p->opts.timeouts[SMTPUV_TIMEOUT_CONNECT] != 0 && p->timer_open) {
      unsigned left = 1;
      for (struct addrinfo *x = p->ai_next; x != NULL; x = x->ai_next)
        left++;
      uint64_t now = uv_now(p->loop);
      uint64_t share = p->deadline > now ? (p->deadline - now) / left : 1;
      uv_timer_start(&p->timer, on_timer, share > 0 ? share : 1, 0);
    }
    return;
  }
}

static void on_resolved(uv_getaddrinfo_t *req, int status,
                        struct addrinfo *res) {
  probe *p = req->data;
  p->gai_active = 0;
  if (p->state == P_DEAD) {
    if (res != NULL)
      uv_freeaddrinfo(res);
    maybe_done(p);
    return;
  }
  if (status < 0) {
    fail(p, SMTPUV_ERESOLVE, SMTPUV_PHASE_CONNECT, "resolve %s: %s",
         p->opts.host, uv_strerror(status));
    return;
  }
  p->ai_list = res;
  p->ai_next = res;
  p->state = P_CONNECTING;
  try_next(p);
}

/* ---- API ------------------------------------------------------------------------ */

int smtpuv_client_probe(uv_loop_t *loop, const smtpuv_options *options,
                        smtpuv_probe_cb cb, void *data) {
  if (loop == NULL || options == NULL || cb == NULL || options->host == NULL)
    return SMTPUV_EINVAL;
  probe *p = smtpuv__calloc(&options->mem, 1, sizeof *p);
  if (p == NULL)
    return SMTPUV_ENOMEM;
  int rc = smtpuv__options_copy(&p->opts, options);
  if (rc != 0) {
    smtpuv__free(&options->mem, p);
    return rc;
  }
  rc = smtpuv_proto_new(&p->opts.mem, &p->proto);
  if (rc != 0) {
    smtpuv_mem m = p->opts.mem;
    smtpuv__options_clear(&p->opts);
    smtpuv__free(&m, p);
    return rc;
  }
  if (p->opts.port == 0)
    p->opts.port = p->opts.tls == SMTPUV_TLS_IMPLICIT ? 465 : 587;
  p->loop = loop;
  p->cb = cb;
  p->data = data;
  p->state = P_RESOLVING;
  p->phase = SMTPUV_PHASE_QUIT;

  char port[16];
  snprintf(port, sizeof port, "%u", p->opts.port);
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  hints.ai_flags = AI_NUMERICSERV;
  p->gai.data = p;
  uv_timer_init(loop, &p->timer);
  p->timer.data = p;
  p->timer_open = 1;
  unsigned total = p->opts.timeouts[SMTPUV_TIMEOUT_CONNECT];
  p->deadline = uv_now(loop) + total;
  info(p, "probing %s port %u", p->opts.host, p->opts.port);
  rc = uv_getaddrinfo(loop, &p->gai, on_resolved, p->opts.host, port, &hints);
  if (rc != 0) {
    /* e.g. a name IDNA cannot convert: reported from the loop, like any
       resolution failure */
    p->resolve_err = rc;
    uv_timer_start(&p->timer, on_timer, 0, 0);
    return 0;
  }
  p->gai_active = 1;
  if (total != 0)
    uv_timer_start(&p->timer, on_timer, total, 0);
  return 0;
}

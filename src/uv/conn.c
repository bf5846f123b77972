/* One connection: resolution, connect (every address in turn), reads,
 * writes, the timer, and the TLS engine between the socket and the core.
 *
 * Writes: at most one uv_write in flight. Plaintext: the core's pending
 * output is offered to uv_try_write as iovecs without copying; what the
 * socket did not take at once goes to uv_write (the spans stay valid until
 * consumed) and is consumed in the write callback. A flush never calls back
 * into the session. TLS: the spans are encrypted into the engine (and
 * consumed at once), its ciphertext is taken as one buffer and freed in the
 * write callback.
 *
 * Life: the connection detaches from the client (client->conn = NULL) as
 * soon as it is terminated, so a new one may start; it frees itself when
 * its last handle is closed and its getaddrinfo request has returned.
 *
 * Owner: what the connection reports (connected, TLS up, data, writable,
 * timeout, failure, gone) goes to its ops table: the client's session
 * (session.c) or a server probe (probe.c), which share everything here.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "uv/client_int.h"

static void try_next_address(smtpuv__conn *cn);
static void on_tcp_closed_retry(uv_handle_t *h);

/* A transport failure, reported to the owner with its text. */
static void conn_fail(smtpuv__conn *cn, int err, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static void conn_fail(smtpuv__conn *cn, int err, const char *fmt, ...) {
  char text[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  cn->ops->fail(cn, err, text);
}

/* The client's session as an owner (the default). */
static void session_fail(smtpuv__conn *cn, int err, const char *text) {
  smtpuv__session_fail(cn, err, "%s", text);
}

static const smtpuv__conn_ops session_ops = {
    smtpuv__session_connected, smtpuv__session_tls_done, smtpuv__session_data,
    smtpuv__session_writable, smtpuv__session_timeout, session_fail,
    NULL /* gone: smtpuv__client_conn_gone() is called for every owner */};

static void conn_maybe_free(smtpuv__conn *cn) {
  if (cn->tcp_open || cn->timer_open || cn->gai_active || cn->handles_closing)
    return;
  smtpuv_client *c = cn->client;
  const smtpuv_mem *mem = &c->mem;
  if (cn->ops->gone != NULL)
    cn->ops->gone(cn);
  if (cn->ai_list != NULL)
    uv_freeaddrinfo(cn->ai_list);
  smtpuv_auth_session_free(cn->auth);
  smtpuv_proto_free(cn->proto);
  smtpuv__tls_free(cn->tls);
  smtpuv__free(mem, cn->tls_summary);
  if (cn->write_buf != NULL)
    smtpuv__free(mem, cn->write_buf);
  smtpuv__free(mem, cn);
  smtpuv__client_conn_gone(c, cn);
}

static void on_handle_closed(uv_handle_t *h) {
  smtpuv__conn *cn = h->data;
  cn->handles_closing--;
  conn_maybe_free(cn);
}

void smtpuv__conn_terminate(smtpuv__conn *cn) {
  smtpuv_client *c = cn->client;
  if (cn->state == SMTPUV__C_DEAD)
    return;
  cn->state = SMTPUV__C_DEAD;
  if (c->conn == cn)
    c->conn = NULL;
  if (cn->gai_active)
    uv_cancel((uv_req_t *)&cn->gai);
  if (cn->timer_open) {
    cn->timer_open = 0;
    cn->handles_closing++;
    uv_close((uv_handle_t *)&cn->timer, on_handle_closed);
  }
  if (cn->tcp_open && !uv_is_closing((uv_handle_t *)&cn->tcp)) {
    cn->tcp_open = 0;
    cn->handles_closing++;
    uv_close((uv_handle_t *)&cn->tcp, on_handle_closed);
  }
  smtpuv__client_kick(c);
  conn_maybe_free(cn);
}

void smtpuv__conn_timer(smtpuv__conn *cn, unsigned ms);

static void on_timer(uv_timer_t *t) {
  smtpuv__conn *cn = t->data;
  if (cn->state == SMTPUV__C_DEAD)
    return;
  if (cn->state == SMTPUV__C_CONNECTING) {
    uint64_t now = uv_now(cn->client->loop);
    if (cn->ai_next != NULL && now < cn->connect_deadline) {
      /* give up on this address, try the next */
      cn->last_connect_err = UV_ETIMEDOUT;
      if (cn->tcp_open) {
        cn->tcp_open = 0;
        cn->handles_closing++;
        uv_close((uv_handle_t *)&cn->tcp, on_tcp_closed_retry);
      }
      return;
    }
    conn_fail(cn, SMTPUV_ETIMEDOUT, "connect %s:%u: timed out",
              cn->peer[0] ? cn->peer : cn->client->opts.host,
              cn->client->opts.port);
    return;
  }
  if (cn->state == SMTPUV__C_RESOLVING) {
    conn_fail(cn, SMTPUV_ETIMEDOUT, "resolve %s: timed out",
              cn->client->opts.host);
    return;
  }
  if (cn->state == SMTPUV__C_SHUTDOWN) {
    smtpuv__conn_terminate(cn);
    return;
  }
  if (cn->write_err) {
    conn_fail(cn, SMTPUV_ECONNLOST, "write: %s", uv_strerror(cn->write_err));
    return;
  }
  cn->ops->timeout(cn);
}

void smtpuv__conn_timer(smtpuv__conn *cn, unsigned ms) {
  if (!cn->timer_open)
    return;
  if (ms == 0)
    uv_timer_stop(&cn->timer);
  else
    uv_timer_start(&cn->timer, on_timer, ms, 0);
}

/* ---- reading ------------------------------------------------------------------ */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  smtpuv__conn *cn = h->data;
  smtpuv_client *c = cn->client;
  (void)suggested;
  if (c->read_buf == NULL)
    c->read_buf = smtpuv__malloc(&c->mem, SMTPUV__READ_BUF);
  buf->base = c->read_buf;
  buf->len = c->read_buf != NULL ? SMTPUV__READ_BUF : 0;
}

/* Decrypt everything the engine holds and hand it to the owner. */
static void tls_drain(smtpuv__conn *cn) {
  smtpuv_client *c = cn->client;
  if (c->plain_buf == NULL) {
    c->plain_buf = smtpuv__malloc(&c->mem, SMTPUV__READ_BUF);
    if (c->plain_buf == NULL) {
      conn_fail(cn, SMTPUV_ENOMEM, "out of memory");
      return;
    }
  }
  for (int guard = 0; guard < 100000 && cn->state != SMTPUV__C_DEAD &&
                      cn->state != SMTPUV__C_SHUTDOWN && cn->tls != NULL &&
                      cn->tls_up;
       guard++) {
    long n = smtpuv__tls_read(cn->tls, c->plain_buf, SMTPUV__READ_BUF);
    if (n > 0) {
      cn->ops->data(cn, c->plain_buf, (size_t)n);
      continue;
    }
    if (n < 0) {
      if (n == SMTPUV_ECONNLOST)
        conn_fail(cn, SMTPUV_ECONNLOST, "connection closed by the server");
      else
        conn_fail(cn, (int)n, "TLS: %s", smtpuv__tls_error_text(cn->tls));
    }
    break;
  }
  /* reads may produce output (alerts, key updates) */
  if (cn->state != SMTPUV__C_DEAD)
    smtpuv__conn_flush(cn);
}

static void tls_handshake_step(smtpuv__conn *cn) {
  int rc = smtpuv__tls_handshake(cn->tls);
  if (rc == 0) {
    smtpuv__conn_flush(cn);
    return;
  }
  if (rc < 0) {
    const char *why = smtpuv__tls_error_text(cn->tls);
    if (rc == SMTPUV_ECONNLOST)
      conn_fail(cn, rc, "TLS handshake: connection closed by the server");
    else
      conn_fail(cn, rc, "TLS handshake: %s",
                why[0] ? why : smtpuv_strerror(rc));
    return;
  }
  cn->tls_up = 1;
  char summary[512];
  size_t n = smtpuv__tls_summary(cn->tls, summary, sizeof summary);
  cn->tls_summary = smtpuv__strndup(&cn->client->mem, summary, n);
  smtpuv__trace_info(cn, "TLS: %s", summary);
  smtpuv__conn_flush(cn);
  cn->ops->tls_done(cn);
  /* application data may have come with the last handshake flight */
  if (cn->state != SMTPUV__C_DEAD)
    tls_drain(cn);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  smtpuv__conn *cn = s->data;
  (void)buf;
  if (cn->state == SMTPUV__C_DEAD || nread == 0)
    return;
  if (nread < 0) {
    if (cn->tls != NULL && nread == UV_EOF) {
      smtpuv__tls_eof(cn->tls);
      if (!cn->tls_up) {
        conn_fail(cn, SMTPUV_ECONNLOST,
                  "TLS handshake: connection closed by the server");
        return;
      }
      tls_drain(cn);
      if (cn->state != SMTPUV__C_DEAD)
        conn_fail(cn, SMTPUV_ECONNLOST, "connection closed by the server");
      return;
    }
    if (nread == UV_EOF)
      conn_fail(cn, SMTPUV_ECONNLOST, "connection closed by the server%s%s",
                cn->write_err ? " while writing: " : "",
                cn->write_err ? uv_strerror(cn->write_err) : "");
    else
      conn_fail(cn, SMTPUV_ECONNLOST, "read: %s", uv_strerror((int)nread));
    return;
  }
  if (buf->base == NULL)
    return;
  if (cn->tls != NULL) {
    if (smtpuv__tls_feed(cn->tls, buf->base, (size_t)nread) != 0) {
      conn_fail(cn, SMTPUV_ENOMEM, "out of memory");
      return;
    }
    if (!cn->tls_up)
      tls_handshake_step(cn);
    else
      tls_drain(cn);
    return;
  }
  cn->ops->data(cn, buf->base, (size_t)nread);
}

/* ---- writing ------------------------------------------------------------------ */

size_t smtpuv__conn_backlog(const smtpuv__conn *cn) {
  size_t n = smtpuv_proto_pending_output(cn->proto);
  if (cn->tls != NULL)
    n += smtpuv__tls_pending_output(cn->tls) + cn->write_buf_len;
  return n;
}

static void on_write(uv_write_t *req, int status) {
  smtpuv__conn *cn = req->data;
  cn->writing = 0;
  if (cn->write_buf != NULL) {
    smtpuv__free(&cn->client->mem, cn->write_buf);
    cn->write_buf = NULL;
    cn->write_buf_len = 0;
  } else {
    smtpuv_proto_consumed(cn->proto, cn->write_len);
  }
  cn->write_len = 0;
  if (cn->state == SMTPUV__C_DEAD)
    return;
  if (status < 0) {
    if (cn->state == SMTPUV__C_SHUTDOWN || cn->state == SMTPUV__C_QUIT) {
      smtpuv__conn_terminate(cn);
      return;
    }
    if (cn->reading) {
      /* The server closed while we wrote. Replies (an explanation, the
         answers to pipelined commands) may still be waiting to be read:
         read until the end of the stream, briefly, then fail. */
      cn->write_err = status;
      unsigned t = smtpuv__client_timeout(cn->client, SMTPUV_TIMEOUT_COMMAND);
      smtpuv__conn_timer(cn, t == 0 || t > 1000 ? 1000 : t);
      return;
    }
    conn_fail(cn, SMTPUV_ECONNLOST, "write: %s", uv_strerror(status));
    return;
  }
  if (cn->state == SMTPUV__C_SHUTDOWN) {
    /* close_notify (or an alert) being written: the rest, then close */
    if (cn->tls != NULL && smtpuv__tls_pending_output(cn->tls) > 0)
      smtpuv__conn_flush(cn);
    if (!cn->writing && cn->state != SMTPUV__C_DEAD)
      smtpuv__conn_terminate(cn);
    return;
  }
  cn->ops->writable(cn);
}

void smtpuv__conn_flush(smtpuv__conn *cn) {
  if (cn->state == SMTPUV__C_DEAD || cn->writing || !cn->tcp_open ||
      cn->write_err)
    return;
  int rc;
  if (cn->tls != NULL) {
    if (cn->tls_up) {
      smtpuv_iov iov[SMTPUV__MAX_IOV];
      int n;
      while ((n = smtpuv_proto_outgoing_iov(cn->proto, 0, iov,
                                            SMTPUV__MAX_IOV)) > 0) {
        size_t total = 0;
        for (int i = 0; i < n; i++) {
          rc = smtpuv__tls_write(cn->tls, iov[i].base, iov[i].len);
          if (rc != 0) {
            conn_fail(cn, rc, "TLS write: %s", smtpuv__tls_error_text(cn->tls));
            return;
          }
          total += iov[i].len;
        }
        smtpuv_proto_consumed(cn->proto, total);
        cn->out_started += total;
      }
    }
    void *buf;
    size_t len;
    rc = smtpuv__tls_take_output(cn->tls, &buf, &len);
    if (rc != 0) {
      conn_fail(cn, rc, "out of memory");
      return;
    }
    if (len == 0)
      return;
    cn->write_buf = buf;
    cn->write_buf_len = len;
    cn->bufs[0] = uv_buf_init(buf, (unsigned)len);
    cn->wreq.data = cn;
    rc = uv_write(&cn->wreq, (uv_stream_t *)&cn->tcp, cn->bufs, 1, on_write);
    if (rc != 0) {
      smtpuv__free(&cn->client->mem, cn->write_buf);
      cn->write_buf = NULL;
      cn->write_buf_len = 0;
      conn_fail(cn, SMTPUV_ECONNLOST, "write: %s", uv_strerror(rc));
      return;
    }
    cn->writing = 1;
    return;
  }
  smtpuv_iov iov[SMTPUV__MAX_IOV];
  int n = smtpuv_proto_outgoing_iov(cn->proto, 0, iov, SMTPUV__MAX_IOV);
  if (n <= 0)
    return;
  size_t total = 0;
  for (int i = 0; i < n; i++) {
    cn->bufs[i] = uv_buf_init((char *)iov[i].base, (unsigned)iov[i].len);
    total += iov[i].len;
  }
  /* Write what the socket takes now; only the rest waits for writability
     (one uv_write, and its callback drives the session on). A complete
     synchronous write calls nothing back: the caller sees `writing` 0 and
     no output left (see smtpuv__session_process()). An error other than
     EAGAIN is left to uv_write to report through the callback. */
  int w = uv_try_write((uv_stream_t *)&cn->tcp, cn->bufs, (unsigned)n);
  if (w > 0) {
    smtpuv_proto_consumed(cn->proto, (size_t)w);
    cn->out_started += (size_t)w;
    cn->wrote_sync += (size_t)w;
    /* the rest (or more than SMTPUV__MAX_IOV spans) goes with uv_write */
    n = smtpuv_proto_outgoing_iov(cn->proto, 0, iov, SMTPUV__MAX_IOV);
    if (n <= 0)
      return;
    total = 0;
    for (int i = 0; i < n; i++) {
      cn->bufs[i] = uv_buf_init((char *)iov[i].base, (unsigned)iov[i].len);
      total += iov[i].len;
    }
  }
  cn->wreq.data = cn;
  rc = uv_write(&cn->wreq, (uv_stream_t *)&cn->tcp, cn->bufs, (unsigned)n,
                on_write);
  if (rc != 0) {
    conn_fail(cn, SMTPUV_ECONNLOST, "write: %s", uv_strerror(rc));
    return;
  }
  cn->writing = 1;
  cn->write_len = total;
  cn->out_started += total;
}

/* ---- TLS -------------------------------------------------------------------- */

int smtpuv__conn_start_tls(smtpuv__conn *cn) {
  smtpuv_client *c = cn->client;
  char err[256] = "";
  SSL_CTX *ctx;
  int rc = smtpuv__client_ssl_ctx(c, &ctx, err, sizeof err);
  if (rc != 0) {
    conn_fail(cn, rc, "TLS setup: %s", err[0] ? err : smtpuv_strerror(rc));
    return rc;
  }
  smtpuv_tls_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.ctx = ctx;
  cfg.host = c->opts.server_name != NULL ? c->opts.server_name : c->opts.host;
  cfg.verify = c->opts.verify;
  cfg.pin_sha256 = c->opts.has_tls_pin ? c->opts.tls_pin : NULL;
  cfg.cert_file = c->opts.tls_cert_file;
  cfg.key_file = c->opts.tls_key_file;
  cfg.err = err;
  cfg.errlen = sizeof err;
  rc = smtpuv__tls_new(&c->mem, &cfg, &cn->tls);
  if (rc != 0) {
    conn_fail(cn, rc, "TLS setup: %s", err[0] ? err : smtpuv_strerror(rc));
    return rc;
  }
  smtpuv__conn_timer(cn, smtpuv__client_timeout(c, SMTPUV_TIMEOUT_COMMAND));
  tls_handshake_step(cn);
  return 0;
}

void smtpuv__conn_abort(smtpuv__conn *cn, int err) {
  if (cn->state == SMTPUV__C_DEAD)
    return;
  if ((err == SMTPUV_ETLS || err == SMTPUV_ECERT) && cn->tls != NULL &&
      !cn->tls_up && cn->tcp_open && !cn->write_err &&
      smtpuv__tls_pending_output(cn->tls) > 0) {
    /* A failed handshake left an alert in the engine ("unknown CA", "bad
       certificate"...): the server learns why before the close. The
       connection leaves the client at once and ends when the alert is
       written, or after a second. */
    smtpuv_client *c = cn->client;
    if (c->conn == cn)
      c->conn = NULL;
    smtpuv__client_kick(c);
    cn->state = SMTPUV__C_SHUTDOWN;
    if (uv_is_active((uv_handle_t *)&cn->tcp))
      uv_read_stop((uv_stream_t *)&cn->tcp);
    smtpuv__conn_timer(cn, 1000);
    smtpuv__conn_flush(cn);
    if (!cn->writing && cn->state != SMTPUV__C_DEAD)
      smtpuv__conn_terminate(cn);
    return;
  }
  smtpuv__conn_terminate(cn);
}

void smtpuv__conn_finish(smtpuv__conn *cn) {
  if (cn->state == SMTPUV__C_DEAD)
    return;
  if (cn->tls != NULL && cn->tls_up && cn->tcp_open &&
      smtpuv__tls_shutdown(cn->tls) == 0) {
    cn->state = SMTPUV__C_SHUTDOWN;
    if (uv_is_active((uv_handle_t *)&cn->tcp))
      uv_read_stop((uv_stream_t *)&cn->tcp);
    smtpuv__conn_timer(cn, 2000);
    if (!cn->writing)
      smtpuv__conn_flush(cn);
    if (!cn->writing && cn->state != SMTPUV__C_DEAD)
      smtpuv__conn_terminate(cn);
    return;
  }
  smtpuv__conn_terminate(cn);
}

/* ---- connecting ----------------------------------------------------------------- */

static void on_connect(uv_connect_t *req, int status) {
  smtpuv__conn *cn = req->data;
  if (cn->state == SMTPUV__C_DEAD || status == UV_ECANCELED)
    return;
  if (status < 0) {
    cn->last_connect_err = status;
    if (cn->tcp_open) {
      cn->tcp_open = 0;
      cn->handles_closing++;
      uv_close((uv_handle_t *)&cn->tcp, on_tcp_closed_retry);
    }
    return;
  }
  smtpuv_client *c = cn->client;
  smtpuv__trace_info(cn, "connected to %s:%u", cn->peer, c->opts.port);
  int rc = uv_read_start((uv_stream_t *)&cn->tcp, on_alloc, on_read);
  if (rc != 0) {
    conn_fail(cn, SMTPUV_ECONNECT, "read start: %s", uv_strerror(rc));
    return;
  }
  cn->reading = 1;
  if (c->opts.tls == SMTPUV_TLS_IMPLICIT) {
    cn->state = SMTPUV__C_TLS_IMPLICIT;
    smtpuv__conn_start_tls(cn);
    return;
  }
  cn->ops->connected(cn);
}

static void on_tcp_closed_retry(uv_handle_t *h) {
  smtpuv__conn *cn = h->data;
  cn->handles_closing--;
  if (cn->state == SMTPUV__C_DEAD) {
    conn_maybe_free(cn);
    return;
  }
  try_next_address(cn);
}

static void addr_text(const struct sockaddr *sa, char *buf, size_t len) {
  buf[0] = '\0';
  if (sa->sa_family == AF_INET)
    uv_ip4_name((const struct sockaddr_in *)sa, buf, len);
  else if (sa->sa_family == AF_INET6)
    uv_ip6_name((const struct sockaddr_in6 *)sa, buf, len);
}

static void try_next_address(smtpuv__conn *cn) {
  smtpuv_client *c = cn->client;
  for (;;) {
    struct addrinfo *ai = cn->ai_next;
    if (ai == NULL) {
      int e = cn->last_connect_err;
      if (e == UV_ETIMEDOUT)
        conn_fail(cn, SMTPUV_ETIMEDOUT, "connect %s:%u: timed out",
                  cn->peer[0] ? cn->peer : c->opts.host, c->opts.port);
      else
        conn_fail(cn, SMTPUV_ECONNECT, "connect %s:%u: %s",
                  cn->peer[0] ? cn->peer : c->opts.host, c->opts.port,
                  e ? uv_strerror(e) : "no usable address");
      return;
    }
    cn->ai_next = ai->ai_next;
    if (cn->ai_left > 0)
      cn->ai_left--;
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
      continue;
    addr_text(ai->ai_addr, cn->peer, sizeof cn->peer);
    smtpuv__trace_info(cn, "connecting to %s:%u", cn->peer, c->opts.port);
    int rc = uv_tcp_init(c->loop, &cn->tcp);
    if (rc != 0) {
      cn->last_connect_err = rc;
      continue;
    }
    cn->tcp.data = cn;
    cn->tcp_open = 1;
    uv_tcp_nodelay(&cn->tcp, 1);
    cn->creq.data = cn;
    rc = uv_tcp_connect(&cn->creq, &cn->tcp, ai->ai_addr, on_connect);
    if (rc != 0) {
      cn->last_connect_err = rc;
      cn->tcp_open = 0;
      cn->handles_closing++;
      uv_close((uv_handle_t *)&cn->tcp, on_tcp_closed_retry);
      return;
    }
    /* this attempt's share of what is left of the connect timeout */
    unsigned total = smtpuv__client_timeout(c, SMTPUV_TIMEOUT_CONNECT);
    if (total != 0) {
      uint64_t now = uv_now(c->loop);
      uint64_t left =
          cn->connect_deadline > now ? cn->connect_deadline - now : 1;
      uint64_t share = left / (cn->ai_left + 1);
      if (share < 1)
        share = 1;
      smtpuv__conn_timer(cn, (unsigned)share);
    }
    return;
  }
}

static void on_resolved(uv_getaddrinfo_t *req, int status,
                        struct addrinfo *res) {
  smtpuv__conn *cn = req->data;
  cn->gai_active = 0;
  if (cn->state == SMTPUV__C_DEAD) {
    if (res != NULL)
      uv_freeaddrinfo(res);
    conn_maybe_free(cn);
    return;
  }
  if (status < 0) {
    conn_fail(cn, SMTPUV_ERESOLVE, "resolve %s: %s", cn->client->opts.host,
              uv_strerror(status));
    return;
  }
  cn->ai_list = res;
  cn->ai_next = res;
  cn->ai_left = 0;
  for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next)
    cn->ai_left++;
  cn->state = SMTPUV__C_CONNECTING;
  try_next_address(cn);
}

void smtpuv__conn_local_literal(const smtpuv__conn *cn, char *buf,
                                size_t len) {
  struct sockaddr_storage ss;
  int n = sizeof ss;
  char ip[64] = "";
  if (cn->tcp_open &&
      uv_tcp_getsockname(&cn->tcp, (struct sockaddr *)&ss, &n) == 0)
    addr_text((const struct sockaddr *)&ss, ip, sizeof ip);
  int v6 = ip[0] != '\0' && ss.ss_family == AF_INET6;
  snprintf(buf, len, "[%s%s]", v6 ? "IPv6:" : "", ip[0] ? ip : "127.0.0.1");
}

int smtpuv__conn_open(smtpuv_client *c, const smtpuv__conn_ops *ops,
                      void *owner, smtpuv__conn **out) {
  smtpuv__conn *cn = smtpuv__calloc(&c->mem, 1, sizeof *cn);
  if (cn == NULL)
    return SMTPUV_ENOMEM;
  cn->client = c;
  cn->ops = ops != NULL ? ops : &session_ops;
  cn->owner = owner;
  int rc = smtpuv_proto_new(&c->mem, &cn->proto);
  if (rc != 0) {
    smtpuv__free(&c->mem, cn);
    return rc;
  }
  smtpuv_proto_set_pipelining(cn->proto, c->opts.pipelining);
  uv_timer_init(c->loop, &cn->timer);
  cn->timer.data = cn;
  cn->timer_open = 1;
  cn->state = SMTPUV__C_RESOLVING;
  if (ops == NULL)
    c->conn = cn;
  *out = cn;
  c->nconns++;
  unsigned total = smtpuv__client_timeout(c, SMTPUV_TIMEOUT_CONNECT);
  cn->connect_deadline = uv_now(c->loop) + total;
  smtpuv__conn_timer(cn, total);

  char port[16];
  snprintf(port, sizeof port, "%u", c->opts.port);
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  hints.ai_flags = AI_NUMERICSERV;
  cn->gai.data = cn;
  cn->gai_active = 1;
  rc = uv_getaddrinfo(c->loop, &cn->gai, on_resolved, c->opts.host, port,
                      &hints);
  if (rc != 0) {
    cn->gai_active = 0;
    conn_fail(cn, SMTPUV_ERESOLVE, "resolve %s: %s", c->opts.host,
              uv_strerror(rc));
  }
  return 0;
}

int smtpuv__conn_start(smtpuv_client *c) {
  smtpuv__conn *cn;
  return smtpuv__conn_open(c, NULL, NULL, &cn);
}

/* SPDX-License-Identifier: MIT */
/* One connection: resolution, connect (every address in turn), reads,
 * writes, the timer, and the TLS engine between the socket and the
 * conversation (src/conv), which decides everything SMTP.
 *
 * Every event is reported to the conversation, then drive() reads its
 * actions: start TLS, the bytes to write, how the connection ends, when the
 * timer is due. Nothing calls back from the conversation.
 *
 * Writes: at most one uv_write in flight. Plaintext: the conversation's
 * spans are offered to uv_try_write without copying; what the socket did
 * not take at once goes to uv_write (the spans stay valid until written).
 * TLS: the spans are encrypted into the engine (handed over), its
 * ciphertext is written as one buffer, and the spans are released when
 * that write completes.
 *
 * Life: the connection detaches from the client's list of sending
 * connections (smtpuv__client_detach()) as soon as it is terminated or
 * shuts down, so a new one may start; it frees itself (and its
 * conversation) when its last handle is closed and its getaddrinfo request
 * has returned.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "uv/client_int.h"

#define SHUTDOWN_WAIT 2000 /* ms for close_notify to be written */
#define ALERT_WAIT 1000    /* ms for a failed handshake's alert */
#define DRAIN_WAIT 1000    /* ms to read what is left after a write error */

static void try_next_address(smtpuv__conn *cn);
static void on_tcp_closed_retry(uv_handle_t *h);
static void on_timer(uv_timer_t *t);
static void stream_up(smtpuv__conn *cn, const char *early, size_t n);
static void proxy_start(smtpuv__conn *cn);
static void proxy_read(smtpuv__conn *cn, const char *buf, size_t n);

static uint64_t now_of(const smtpuv__conn *cn) {
  return uv_now(cn->client->loop);
}

/* A transport failure, reported to the conversation with its text. */
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
  smtpuv__conv_set_now(cn->conv, now_of(cn));
  smtpuv__conv_transport_failed(cn->conv, err, text);
  smtpuv__conn_drive(cn);
}

static void conn_maybe_free(smtpuv__conn *cn) {
  if (cn->tcp_open || cn->timer_open || cn->gai_active || cn->handles_closing)
    return;
  smtpuv_client *c = cn->client;
  const smtpuv_mem *mem = &c->mem;
  if (cn->ops->gone != NULL)
    cn->ops->gone(cn);
  smtpuv__client_tls_forget(c, cn); /* tlsprep.c */
  if (cn->ai_list != NULL)
    uv_freeaddrinfo(cn->ai_list);
  smtpuv__conv_free(cn->conv);
  smtpuv_socks5_free(cn->socks);
  if (cn->auth_owned)
    smtpuv_auth_free(cn->auth);
  smtpuv__tls_free(cn->tls);
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

static void close_handle(smtpuv__conn *cn, uv_handle_t *h, int *open) {
  if (!*open)
    return;
  *open = 0;
  if (uv_is_closing(h))
    return;
  cn->handles_closing++;
  uv_close(h, on_handle_closed);
}

/* Close every handle; the connection frees itself afterwards and detaches
   from the client at once. Idempotent. */
static void terminate(smtpuv__conn *cn) {
  smtpuv_client *c = cn->client;
  if (cn->state == SMTPUV__C_DEAD)
    return;
  cn->state = SMTPUV__C_DEAD;
  smtpuv__client_detach(c, cn);
  if (cn->gai_active)
    uv_cancel((uv_req_t *)&cn->gai);
  close_handle(cn, (uv_handle_t *)&cn->timer, &cn->timer_open);
  close_handle(cn, (uv_handle_t *)&cn->s.tcp, &cn->tcp_open);
  smtpuv__client_kick(c);
  conn_maybe_free(cn);
}

/* The one timer: fire in `ms` (resolve, connect, shutdown waits). */
static void set_timer(smtpuv__conn *cn, uint64_t ms) {
  if (cn->timer_open)
    uv_timer_start(&cn->timer, on_timer, ms, 0);
}

/* The timer of an open connection: the conversation's deadline, or sooner
   the end of the drain after a write error. */
static void arm_timer(smtpuv__conn *cn) {
  if (!cn->timer_open || cn->state != SMTPUV__C_OPEN)
    return;
  uint64_t at;
  int has = smtpuv__conv_deadline(cn->conv, &at);
  if (cn->write_err && (!has || cn->write_err_at < at)) {
    at = cn->write_err_at;
    has = 1;
  }
  if (!has) {
    uv_timer_stop(&cn->timer);
    return;
  }
  uint64_t now = now_of(cn);
  set_timer(cn, at > now ? at - now : 0);
}

/* ---- writing ------------------------------------------------------------------ */

static void on_write(uv_write_t *req, int status);

/* Start one uv_write of `nbufs` buffers that releases `conv_bytes` of the
   conversation's output when it completes. 0, or the connection failed. */
static int start_write(smtpuv__conn *cn, unsigned nbufs, size_t conv_bytes) {
  cn->wreq.data = cn;
  int rc = uv_write(&cn->wreq, (uv_stream_t *)&cn->s.tcp, cn->bufs, nbufs,
                    on_write);
  if (rc != 0) {
    if (cn->write_buf != NULL) {
      smtpuv__free(&cn->client->mem, cn->write_buf);
      cn->write_buf = NULL;
      cn->write_buf_len = 0;
    }
    conn_fail(cn, SMTPUV_ECONNLOST, "write: %s", uv_strerror(rc));
    return rc;
  }
  cn->writing = 1;
  cn->write_len = conv_bytes;
  return 0;
}

/* TLS: encrypt what the conversation has (after the handshake), write the
   engine's ciphertext (handshake records, alerts, application data). */
static void write_tls(smtpuv__conn *cn) {
  size_t total = 0;
  if (cn->tls_up && cn->state == SMTPUV__C_OPEN) {
    smtpuv_iov iov[SMTPUV__MAX_IOV];
    int n;
    /* every span not yet handed; outgoing() skips what was handed */
    while ((n = smtpuv__conv_outgoing(cn->conv, iov, SMTPUV__MAX_IOV)) > 0) {
      size_t part = 0;
      for (int i = 0; i < n; i++) {
        int rc = smtpuv__tls_write(cn->tls, iov[i].base, iov[i].len);
        if (rc != 0) {
          conn_fail(cn, rc, "TLS write: %s", smtpuv__tls_error_text(cn->tls));
          return;
        }
        part += iov[i].len;
      }
      smtpuv__conv_handed(cn->conv, part);
      total += part;
    }
  }
  void *buf;
  size_t len;
  int rc = smtpuv__tls_take_output(cn->tls, &buf, &len);
  if (rc != 0) {
    conn_fail(cn, rc, "out of memory");
    return;
  }
  if (len == 0)
    return;
  cn->write_buf = buf;
  cn->write_buf_len = len;
  cn->bufs[0] = uv_buf_init(buf, (unsigned)len);
  start_write(cn, 1, total);
}

/* Plaintext: what the socket takes now is written at once (the
   conversation may then have more: returns 1); the rest goes with one
   uv_write whose callback drives the conversation on. */
static int write_plain(smtpuv__conn *cn) {
  smtpuv_iov iov[SMTPUV__MAX_IOV];
  int n = smtpuv__conv_outgoing(cn->conv, iov, SMTPUV__MAX_IOV);
  if (n <= 0)
    return 0;
  size_t total = 0;
  for (int i = 0; i < n; i++) {
    cn->bufs[i] = uv_buf_init((char *)iov[i].base, (unsigned)iov[i].len);
    total += iov[i].len;
  }
  int w = uv_try_write((uv_stream_t *)&cn->s.tcp, cn->bufs, (unsigned)n);
  if (w > 0) {
    smtpuv__conv_handed(cn->conv, (size_t)w);
    smtpuv__conv_written(cn->conv, (size_t)w);
    if ((size_t)w == total)
      return 1;
    n = smtpuv__conv_outgoing(cn->conv, iov, SMTPUV__MAX_IOV);
    if (n <= 0)
      return 0;
    total = 0;
    for (int i = 0; i < n; i++) {
      cn->bufs[i] = uv_buf_init((char *)iov[i].base, (unsigned)iov[i].len);
      total += iov[i].len;
    }
  }
  /* An error other than EAGAIN is left to uv_write to report. */
  if (start_write(cn, (unsigned)n, total) == 0)
    smtpuv__conv_handed(cn->conv, total);
  return 0;
}

/* Write if no write is in flight. 1 when everything went out at once and
   the conversation may have more. */
static int write_out(smtpuv__conn *cn) {
  if (cn->state == SMTPUV__C_DEAD || cn->writing || !cn->tcp_open ||
      cn->write_err)
    return 0;
  if (cn->tls != NULL) {
    write_tls(cn);
    return 0;
  }
  if (cn->state != SMTPUV__C_OPEN)
    return 0;
  return write_plain(cn);
}

static void on_write(uv_write_t *req, int status) {
  smtpuv__conn *cn = req->data;
  size_t done = cn->write_len;
  cn->writing = 0;
  cn->write_len = 0;
  if (cn->write_buf != NULL) {
    smtpuv__free(&cn->client->mem, cn->write_buf);
    cn->write_buf = NULL;
    cn->write_buf_len = 0;
  }
  if (cn->state == SMTPUV__C_DEAD)
    return;
  smtpuv__conv_set_now(cn->conv, now_of(cn));
  if (status < 0) {
    if (cn->state == SMTPUV__C_SHUTDOWN) {
      terminate(cn);
      return;
    }
    if (cn->reading) {
      /* The server closed while we wrote. Replies (an explanation, the
         answers to pipelined commands) may still be waiting to be read:
         read until the end of the stream, briefly, then fail. */
      cn->write_err = status;
      cn->write_err_at = now_of(cn) + DRAIN_WAIT;
      smtpuv__conn_drive(cn);
      return;
    }
    conn_fail(cn, SMTPUV_ECONNLOST, "write: %s", uv_strerror(status));
    return;
  }
  if (cn->state == SMTPUV__C_SHUTDOWN) {
    /* close_notify (or an alert) being written: the rest, then close */
    write_out(cn);
    if (!cn->writing && cn->state != SMTPUV__C_DEAD)
      terminate(cn);
    return;
  }
  smtpuv__conv_written(cn->conv, done);
  smtpuv__conn_drive(cn);
}

/* ---- ending ------------------------------------------------------------------- */

/* Stop reading, write what the engine holds, then close (or after `wait`
   ms). */
static void shutdown_after_write(smtpuv__conn *cn, unsigned wait) {
  smtpuv_client *c = cn->client;
  smtpuv__client_detach(c, cn); /* a new connection may start meanwhile */
  cn->state = SMTPUV__C_SHUTDOWN;
  if (uv_is_active((uv_handle_t *)&cn->s.tcp))
    uv_read_stop((uv_stream_t *)&cn->s.tcp);
  set_timer(cn, wait);
  if (!cn->writing)
    write_out(cn);
  if (!cn->writing && cn->state != SMTPUV__C_DEAD)
    terminate(cn);
}

/* ABORT: at once, except that a failed handshake's alert ("unknown CA",
   "bad certificate"...) is written first so the server learns why. */
static void conn_abort(smtpuv__conn *cn, int err) {
  if ((err == SMTPUV_ETLS || err == SMTPUV_ECERT) && cn->tls != NULL &&
      !cn->tls_up && cn->tcp_open && !cn->write_err &&
      smtpuv__tls_pending_output(cn->tls) > 0) {
    shutdown_after_write(cn, ALERT_WAIT);
    return;
  }
  terminate(cn);
}

/* FINISH: what is being written (QUIT), close_notify if TLS is up, then
   close. */
static void conn_finish(smtpuv__conn *cn) {
  if (cn->tcp_open && !cn->write_err &&
      ((cn->tls != NULL && cn->tls_up && smtpuv__tls_shutdown(cn->tls) == 0) ||
       cn->writing)) {
    shutdown_after_write(cn, SHUTDOWN_WAIT);
    return;
  }
  terminate(cn);
}

/* ---- the timer ---------------------------------------------------------------- */

static void on_timer(uv_timer_t *t) {
  smtpuv__conn *cn = t->data;
  switch (cn->state) {
  case SMTPUV__C_DEAD:
    return;
  case SMTPUV__C_SHUTDOWN:
    terminate(cn);
    return;
  case SMTPUV__C_RESOLVING:
    conn_fail(cn, SMTPUV_ETIMEDOUT, "resolve %s: timed out", cn->host);
    return;
  case SMTPUV__C_PROXY:
    conn_fail(cn, SMTPUV_ETIMEDOUT, "SOCKS5 proxy %s:%u: timed out",
              cn->client->opts.proxy_host, cn->client->opts.proxy_port);
    return;
  case SMTPUV__C_CONNECTING:
    if (cn->ai_next != NULL && now_of(cn) < cn->connect_deadline) {
      /* give up on this address, try the next */
      cn->last_connect_err = UV_ETIMEDOUT;
      if (cn->tcp_open) {
        cn->tcp_open = 0;
        cn->handles_closing++;
        uv_close((uv_handle_t *)&cn->s.tcp, on_tcp_closed_retry);
      }
      return;
    }
    conn_fail(cn, SMTPUV_ETIMEDOUT, "connect %s:%u: timed out",
              cn->peer[0] ? cn->peer : cn->host, cn->port);
    return;
  default:
    break;
  }
  if (cn->write_err && now_of(cn) >= cn->write_err_at) {
    conn_fail(cn, SMTPUV_ECONNLOST, "write: %s", uv_strerror(cn->write_err));
    return;
  }
  smtpuv__conv_set_now(cn->conv, now_of(cn));
  smtpuv__conv_timer(cn->conv);
  smtpuv__conn_drive(cn);
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

static int open_and_running(const smtpuv__conn *cn) {
  return cn->state == SMTPUV__C_OPEN &&
         smtpuv__conv_end(cn->conv, NULL) == SMTPUV__CONV_RUN;
}

/* Decrypt everything the engine holds and hand it to the conversation. */
static void tls_drain(smtpuv__conn *cn) {
  smtpuv_client *c = cn->client;
  if (c->plain_buf == NULL) {
    c->plain_buf = smtpuv__malloc(&c->mem, SMTPUV__READ_BUF);
    if (c->plain_buf == NULL) {
      conn_fail(cn, SMTPUV_ENOMEM, "out of memory");
      return;
    }
  }
  for (int guard = 0; guard < 100000 && open_and_running(cn) && cn->tls_up;
       guard++) {
    long n = smtpuv__tls_read(cn->tls, c->plain_buf, SMTPUV__READ_BUF);
    if (n > 0) {
      smtpuv__conv_received(cn->conv, c->plain_buf, (size_t)n);
      continue;
    }
    if (n == SMTPUV_ECONNLOST)
      conn_fail(cn, SMTPUV_ECONNLOST, "connection closed by the server");
    else if (n < 0)
      conn_fail(cn, (int)n, "TLS: %s", smtpuv__tls_error_text(cn->tls));
    break;
  }
}

static void tls_handshake_step(smtpuv__conn *cn) {
  int rc = smtpuv__tls_handshake(cn->tls);
  if (rc == 0)
    return; /* more records to come; drive() writes ours */
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
  smtpuv__tls_summary(cn->tls, summary, sizeof summary);
  smtpuv__conv_trace_info(cn->conv, "TLS: %s", summary);
  smtpuv__conv_tls_established(cn->conv, summary);
  /* application data may have come with the last handshake flight */
  tls_drain(cn);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  smtpuv__conn *cn = s->data;
  if (cn->state == SMTPUV__C_PROXY && nread != 0) {
    if (nread < 0)
      conn_fail(cn, SMTPUV_EPROXY,
                "SOCKS5 proxy: the proxy closed the connection during the "
                "handshake");
    else if (buf->base != NULL)
      proxy_read(cn, buf->base, (size_t)nread);
    return;
  }
  if (cn->state != SMTPUV__C_OPEN || nread == 0)
    return;
  smtpuv__conv_set_now(cn->conv, now_of(cn));
  if (nread < 0) {
    if (cn->tls != NULL && nread == UV_EOF) {
      smtpuv__tls_eof(cn->tls);
      if (!cn->tls_up) {
        conn_fail(cn, SMTPUV_ECONNLOST,
                  "TLS handshake: connection closed by the server");
        return;
      }
      tls_drain(cn);
      if (cn->state == SMTPUV__C_OPEN)
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
  if (cn->tls == NULL) {
    smtpuv__conv_received(cn->conv, buf->base, (size_t)nread);
  } else if (smtpuv__tls_feed(cn->tls, buf->base, (size_t)nread) != 0) {
    conn_fail(cn, SMTPUV_ENOMEM, "out of memory");
    return;
  } else if (!cn->tls_up) {
    tls_handshake_step(cn);
  } else {
    tls_drain(cn);
  }
  smtpuv__conn_drive(cn);
  smtpuv__conn_trim_idle(cn); /* tlsprep.c */
}

/* ---- TLS -------------------------------------------------------------------- */

/* Create the engine and send the ClientHello (the conversation asked). 0,
   or the connection failed. */
static int start_tls(smtpuv__conn *cn) {
  smtpuv_client *c = cn->client;
  char err[256] = "";
  SSL_CTX *ctx;
  /* tlsprep.c: the context is built off the loop; drive() comes back.
     Reading pauses meanwhile: what the server sends before our ClientHello
     goes to the engine, as without the wait, never to the conversation. */
  cn->tls_wait = smtpuv__client_tls_waiting(c);
  if (cn->tls_wait != cn->read_paused) {
    int rr = cn->tls_wait ? uv_read_stop((uv_stream_t *)&cn->s.tcp)
                          : uv_read_start((uv_stream_t *)&cn->s.tcp, on_alloc,
                                          on_read);
    if (rr != 0) {
      conn_fail(cn, SMTPUV_ECONNLOST, "read: %s", uv_strerror(rr));
      return rr;
    }
    cn->read_paused = cn->tls_wait;
  }
  if (cn->tls_wait) {
    smtpuv__client_tls_wait(c, cn);
    return 0;
  }
  int rc = smtpuv__client_ssl_ctx(c, &ctx, err, sizeof err);
  if (rc == 0) {
    smtpuv_tls_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.ctx = ctx;
    cfg.host = c->opts.server_name != NULL && cn->host_index == 0
                   ? c->opts.server_name
                   : cn->host;
    cfg.verify = c->opts.verify;
    cfg.pin_sha256 = c->opts.has_tls_pin ? c->opts.tls_pin : NULL;
    cfg.cert_file = c->opts.tls_cert_file;
    cfg.key_file = c->opts.tls_key_file;
    cfg.err = err;
    cfg.errlen = sizeof err;
    cfg.cache = c->opts.tls_no_resume ? NULL : smtpuv__client_tls_cache(c);
    cfg.port = cn->port; /* the cache key: this connection's server */
    rc = smtpuv__tls_new(&c->mem, &cfg, &cn->tls);
  }
  if (rc != 0) {
    conn_fail(cn, rc, "TLS setup: %s", err[0] ? err : smtpuv_strerror(rc));
    return rc;
  }
  tls_handshake_step(cn);
  return cn->state == SMTPUV__C_OPEN ? 0 : SMTPUV_ETLS;
}

/* ---- drive --------------------------------------------------------------------- */

void smtpuv__conn_drive(smtpuv__conn *cn) {
  if (cn->in_drive || cn->state == SMTPUV__C_DEAD ||
      cn->state == SMTPUV__C_SHUTDOWN)
    return;
  cn->in_drive = 1;
  smtpuv__conv *cv = cn->conv;
  smtpuv__conv_set_now(cv, now_of(cn));
  /* Bounded: a socket that takes every write at once completes nothing
     later (no write callback), so the body is pumped on here, then the
     loop gets its turn (the client's dispatch comes back). */
  int round = 0;
  for (; round < 16 && cn->state == SMTPUV__C_OPEN; round++) {
    if (cn->ops->settle != NULL)
      cn->ops->settle(cn);
    if ((cn->tls_wait || smtpuv__conv_take_start_tls(cv)) && start_tls(cn) != 0)
      break;
    if (smtpuv__conv_end(cv, NULL) != SMTPUV__CONV_RUN || !write_out(cn))
      break;
  }
  if (round == 16)
    smtpuv__client_kick(cn->client);
  if (cn->ops->settle != NULL)
    cn->ops->settle(cn);
  int err = 0;
  switch (smtpuv__conv_end(cv, &err)) {
  case SMTPUV__CONV_FINISH:
    write_out(cn); /* the last commands (QUIT) */
    conn_finish(cn);
    break;
  case SMTPUV__CONV_ABORT:
    conn_abort(cn, err);
    break;
  default:
    arm_timer(cn);
    break;
  }
  cn->in_drive = 0;
}

static void on_wake(void *data) { smtpuv__conn_drive(data); }

/* ---- connecting ----------------------------------------------------------------- */

static void addr_text(const struct sockaddr *sa, char *buf, size_t len) {
  buf[0] = '\0';
  if (sa->sa_family == AF_INET)
    uv_ip4_name((const struct sockaddr_in *)sa, buf, len);
  else if (sa->sa_family == AF_INET6)
    uv_ip6_name((const struct sockaddr_in6 *)sa, buf, len);
}

/* The address literal of our end ("[192.0.2.1]", "[IPv6:::1]"; RFC 5321
   4.1.4), for EHLO without a name. */
static void local_literal(const smtpuv__conn *cn, char *buf, size_t len) {
  if (cn->client->opts.unix_path != NULL) {
    snprintf(buf, len, "localhost"); /* no address on a Unix socket */
    return;
  }
  struct sockaddr_storage ss;
  int n = sizeof ss;
  char ip[64] = "";
  if (uv_tcp_getsockname(&cn->s.tcp, (struct sockaddr *)&ss, &n) == 0)
    addr_text((const struct sockaddr *)&ss, ip, sizeof ip);
  int v6 = ip[0] != '\0' && ss.ss_family == AF_INET6;
  snprintf(buf, len, "[%s%s]", v6 ? "IPv6:" : "", ip[0] ? ip : "127.0.0.1");
}

static void on_connect(uv_connect_t *req, int status) {
  smtpuv__conn *cn = req->data;
  if (cn->state == SMTPUV__C_DEAD || status == UV_ECANCELED)
    return;
  if (status < 0) {
    cn->last_connect_err = status;
    if (cn->tcp_open) {
      cn->tcp_open = 0;
      cn->handles_closing++;
      uv_close((uv_handle_t *)&cn->s.tcp, on_tcp_closed_retry);
    }
    return;
  }
  smtpuv_client *c = cn->client;
  if (c->opts.unix_path != NULL)
    smtpuv__conv_trace_info(cn->conv, "connected to %s", c->opts.unix_path);
  else
    smtpuv__conv_trace_info(cn->conv, "connected to %s:%u", cn->peer,
                            c->opts.proxy_host ? c->opts.proxy_port
                                               : cn->port);
  int rc = uv_read_start((uv_stream_t *)&cn->s.tcp, on_alloc, on_read);
  if (rc != 0) {
    conn_fail(cn, SMTPUV_ECONNECT, "read start: %s", uv_strerror(rc));
    return;
  }
  cn->reading = 1;
  if (c->opts.proxy_host != NULL) {
    proxy_start(cn);
    return;
  }
  stream_up(cn, NULL, 0);
}

/* The stream to the server is up (directly, or through the proxy, whose
   last read may have carried the server's first bytes). */
static void stream_up(smtpuv__conn *cn, const char *early, size_t n) {
  cn->state = SMTPUV__C_OPEN;
  char literal[80];
  local_literal(cn, literal, sizeof literal);
  smtpuv__conv_set_now(cn->conv, now_of(cn));
  smtpuv__conv_connected(cn->conv, literal);
  if (n > 0)
    smtpuv__conv_received(cn->conv, early, n);
  smtpuv__conn_drive(cn);
}

/* ---- the SOCKS5 proxy (src/proxy does the protocol) -------------------------- */

static void on_proxy_write(uv_write_t *req, int status);

static void proxy_write(smtpuv__conn *cn) {
  const void *p;
  size_t n;
  if (cn->proxy_writing || cn->socks == NULL)
    return;
  smtpuv_socks5_outgoing(cn->socks, &p, &n);
  if (n == 0)
    return;
  uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
  cn->preq.data = cn;
  int rc = uv_write(&cn->preq, (uv_stream_t *)&cn->s.tcp, &b, 1,
                    on_proxy_write);
  if (rc != 0) {
    conn_fail(cn, SMTPUV_EPROXY, "SOCKS5 proxy: write: %s", uv_strerror(rc));
    return;
  }
  cn->proxy_writing = n;
}

static void on_proxy_write(uv_write_t *req, int status) {
  smtpuv__conn *cn = req->data;
  size_t n = cn->proxy_writing;
  cn->proxy_writing = 0;
  if (cn->state != SMTPUV__C_PROXY)
    return;
  if (status < 0) {
    conn_fail(cn, SMTPUV_EPROXY, "SOCKS5 proxy: write: %s",
              uv_strerror(status));
    return;
  }
  smtpuv_socks5_consumed(cn->socks, n); /* credentials wiped */
  proxy_write(cn);
}

static void proxy_start(smtpuv__conn *cn) {
  smtpuv_client *c = cn->client;
  smtpuv_socks5_params p = SMTPUV_SOCKS5_PARAMS_INIT;
  p.host = cn->host;
  p.port = (uint16_t)cn->port;
  p.username = c->opts.proxy_user;
  p.password = c->opts.proxy_pass;
  cn->state = SMTPUV__C_PROXY;
  smtpuv__conv_transport_phase(cn->conv, SMTPUV_PHASE_PROXY);
  int rc = smtpuv_socks5_new(&c->mem, &p, &cn->socks);
  if (rc != 0) {
    conn_fail(cn, rc == SMTPUV_ENOMEM ? rc : SMTPUV_EPROXY,
              "SOCKS5 proxy: %s", smtpuv_strerror(rc));
    return;
  }
  smtpuv__conv_trace_info(cn->conv, "SOCKS5: asking the proxy for %s:%u",
                          cn->host, cn->port);
  proxy_write(cn);
}

/* Bytes from the proxy: its replies, then (once the tunnel is up) the
   server's. */
static void proxy_read(smtpuv__conn *cn, const char *buf, size_t n) {
  size_t used = 0;
  int rc = smtpuv_socks5_feed(cn->socks, buf, n, &used);
  if (rc == 0) {
    proxy_write(cn); /* its next request (credentials, CONNECT) */
    return;
  }
  if (rc < 0) {
    char text[400];
    snprintf(text, sizeof text, "SOCKS5 proxy %s:%u: %s",
             cn->client->opts.proxy_host, cn->client->opts.proxy_port,
             smtpuv_socks5_error_text(cn->socks));
    conn_fail(cn, rc, "%s", text);
    return;
  }
  smtpuv__conv_trace_info(cn->conv, "SOCKS5: tunnel to %s:%u up", cn->host,
                          cn->port);
  smtpuv_socks5_free(cn->socks);
  cn->socks = NULL;
  smtpuv__conv_transport_phase(cn->conv, SMTPUV_PHASE_CONNECT);
  stream_up(cn, buf + used, n - used);
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

static void try_next_address(smtpuv__conn *cn) {
  smtpuv_client *c = cn->client;
  for (;;) {
    struct addrinfo *ai = cn->ai_next;
    if (ai == NULL) {
      int e = cn->last_connect_err;
      if (e == UV_ETIMEDOUT)
        conn_fail(cn, SMTPUV_ETIMEDOUT, "connect %s:%u: timed out",
                  cn->peer[0] ? cn->peer : cn->host, cn->port);
      else
        conn_fail(cn, SMTPUV_ECONNECT, "connect %s:%u: %s",
                  cn->peer[0] ? cn->peer : cn->host, cn->port,
                  e ? uv_strerror(e) : "no usable address");
      return;
    }
    cn->ai_next = ai->ai_next;
    if (cn->ai_left > 0)
      cn->ai_left--;
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
      continue;
    if (c->opts.has_source && ai->ai_family != c->opts.source.ss_family)
      continue; /* the source address is of the other family */
    addr_text(ai->ai_addr, cn->peer, sizeof cn->peer);
    smtpuv__conv_trace_info(cn->conv, "connecting to %s:%u", cn->peer,
                            cn->port);
    int rc = uv_tcp_init(c->loop, &cn->s.tcp);
    if (rc != 0) {
      cn->last_connect_err = rc;
      continue;
    }
    cn->s.tcp.data = cn;
    cn->tcp_open = 1;
    if (c->unref) /* smtpuv_client_set_ref() */
      uv_unref((uv_handle_t *)&cn->s.tcp);
    uv_tcp_nodelay(&cn->s.tcp, 1);
    if (c->opts.has_source &&
        (rc = uv_tcp_bind(&cn->s.tcp, (const struct sockaddr *)&c->opts.source,
                          0)) != 0) {
      char ip[64];
      addr_text((const struct sockaddr *)&c->opts.source, ip, sizeof ip);
      cn->last_connect_err = rc;
      smtpuv__conv_trace_info(cn->conv, "bind %s: %s", ip, uv_strerror(rc));
      cn->tcp_open = 0;
      cn->handles_closing++;
      uv_close((uv_handle_t *)&cn->s.tcp, on_tcp_closed_retry);
      return;
    }
    cn->creq.data = cn;
    rc = uv_tcp_connect(&cn->creq, &cn->s.tcp, ai->ai_addr, on_connect);
    if (rc != 0) {
      cn->last_connect_err = rc;
      cn->tcp_open = 0;
      cn->handles_closing++;
      uv_close((uv_handle_t *)&cn->s.tcp, on_tcp_closed_retry);
      return;
    }
    /* this attempt's share of what is left of the connect timeout */
    unsigned total = smtpuv__client_timeout(c, SMTPUV_TIMEOUT_CONNECT);
    if (total != 0) {
      uint64_t now = now_of(cn);
      uint64_t left =
          cn->connect_deadline > now ? cn->connect_deadline - now : 1;
      uint64_t share = left / (cn->ai_left + 1);
      set_timer(cn, share < 1 ? 1 : share);
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
    const char *proxy = cn->client->opts.proxy_host;
    conn_fail(cn, SMTPUV_ERESOLVE, "resolve %s%s: %s",
              proxy != NULL ? "the SOCKS5 proxy " : "",
              proxy != NULL ? proxy : cn->host, uv_strerror(status));
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

/* ---- opening ---------------------------------------------------------------------- */

static int conv_for(smtpuv__conn *cn, smtpuv__conv_mode mode) {
  smtpuv_client *c = cn->client;
  const smtpuv_options *o = &c->opts;
  smtpuv__conv_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.mode = mode;
  cfg.tls = o->tls;
  cfg.allow_plain_auth = o->allow_plain_auth;
  cfg.pipelining = o->pipelining;
  cfg.chunking = o->chunking;
  cfg.require_all = o->require_all;
  cfg.lmtp = o->lmtp;
  cfg.ehlo_name = c->ehlo_name;
  int rc = smtpuv__client_conn_auth(c, &cn->auth, &cn->auth_owned);
  if (rc != 0)
    return rc;
  cfg.auth = cn->auth;
  memcpy(cfg.timeouts, o->timeouts, sizeof cfg.timeouts);
  cfg.max_inflight = o->pipeline_depth;
  cfg.max_messages = o->max_messages;
  cfg.trace = o->trace;
  cfg.trace_data = o->trace_data;
  cfg.wake = on_wake;
  cfg.wake_data = cn;
  rc = smtpuv__conv_new(&c->mem, &cfg, &cn->conv);
  if (rc != 0 && cn->auth_owned) {
    smtpuv_auth_free(cn->auth);
    cn->auth_owned = 0;
  }
  return rc;
}

int smtpuv__conn_open(smtpuv_client *c, unsigned host, smtpuv__conv_mode mode,
                      const smtpuv__conn_ops *ops, void *owner,
                      smtpuv__conn **out) {
  if (host > c->opts.nfallback)
    return SMTPUV_EINVAL;
  smtpuv__conn *cn = smtpuv__calloc(&c->mem, 1, sizeof *cn);
  if (cn == NULL)
    return SMTPUV_ENOMEM;
  cn->client = c;
  cn->host_index = host;
  cn->host = host == 0 ? c->opts.host : c->opts.fallback[host - 1].host;
  cn->port = host == 0 || c->opts.fallback[host - 1].port == 0
                 ? c->opts.port
                 : c->opts.fallback[host - 1].port;
  cn->ops = ops;
  cn->owner = owner;
  int rc = conv_for(cn, mode);
  if (rc != 0) {
    smtpuv__free(&c->mem, cn);
    return rc;
  }
  uv_timer_init(c->loop, &cn->timer);
  cn->timer.data = cn;
  cn->timer_open = 1;
  if (c->unref) /* smtpuv_client_set_ref() */
    uv_unref((uv_handle_t *)&cn->timer);
  cn->state = SMTPUV__C_RESOLVING;
  *out = cn;
  c->nconns++;
  unsigned total = smtpuv__client_timeout(c, SMTPUV_TIMEOUT_CONNECT);
  cn->connect_deadline = now_of(cn) + total;
  if (total != 0)
    set_timer(cn, total);

  if (c->opts.unix_path != NULL) {
    /* a Unix domain socket: nothing to resolve, one address */
    cn->state = SMTPUV__C_CONNECTING;
    snprintf(cn->peer, sizeof cn->peer, "%s", c->opts.unix_path);
    smtpuv__conv_trace_info(cn->conv, "connecting to %s", c->opts.unix_path);
    rc = uv_pipe_init(c->loop, &cn->s.pipe, 0);
    if (rc != 0) {
      conn_fail(cn, SMTPUV_ECONNECT, "%s: %s", c->opts.unix_path,
                uv_strerror(rc));
      return 0;
    }
    cn->s.pipe.data = cn;
    cn->tcp_open = 1;
    if (c->unref)
      uv_unref((uv_handle_t *)&cn->s.pipe);
    cn->creq.data = cn;
    uv_pipe_connect(&cn->creq, &cn->s.pipe, c->opts.unix_path, on_connect);
    return 0;
  }
  /* through a proxy: connect to it; it resolves the server's name */
  const char *target = c->opts.proxy_host != NULL ? c->opts.proxy_host
                                                  : cn->host;
  unsigned target_port =
      c->opts.proxy_host != NULL ? c->opts.proxy_port : cn->port;
  char port[16];
  snprintf(port, sizeof port, "%u", target_port);
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  hints.ai_flags = AI_NUMERICSERV;
  cn->gai.data = cn;
  cn->gai_active = 1;
  rc = uv_getaddrinfo(c->loop, &cn->gai, on_resolved, target, port, &hints);
  if (rc != 0) {
    cn->gai_active = 0;
    conn_fail(cn, SMTPUV_ERESOLVE, "resolve %s: %s", target,
              uv_strerror(rc));
  }
  return 0;
}

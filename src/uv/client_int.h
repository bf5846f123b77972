/* SPDX-License-Identifier: MIT */
/*
 * Internal: the libuv adapter's objects. Every SMTP decision is the
 * conversation's (src/conv); this layer moves bytes, runs timers, pumps TLS
 * and delivers callbacks.
 *
 *   client.c   the client API, the send queue, the deferred dispatch that
 *              runs callbacks in queue order
 *   conn.c     one connection: resolve, connect (every address), reads,
 *              writes, the timer, the TLS engine, and drive(): the step
 *              after every event that reads the conversation's actions
 *   probe.c    smtpuv_client_probe(): a private client's connection with
 *              its conversation in probe mode
 *   options.c  the options builder; sslshare.c its shared SSL_CTX
 *   tls.c      the TLS engine over memory BIOs
 *   headers.c  envelope from headers, Bcc-stripping body source
 *   sync.c     smtpuv_send_sync()
 *   threadsafe.c  submissions from any thread (a mutex-protected queue and
 *              a uv_async_t handed to the client on the loop thread)
 *   sync_session.c  smtpuv_session_sync_*(): a client on a private loop
 *              thread, blocking calls from any thread
 *
 * Ownership: the client owns its queue of message records and its current
 * connection; a message submitted to the connection's conversation is the
 * conversation's until it is popped back as finished. A connection that is
 * closing lives on by itself (counted in client->nconns) until its last
 * handle is closed; the client is freed only when every connection is gone
 * and every send callback has run.
 */
#ifndef SMTPUV_SRC_UV_CLIENT_INT_H
#define SMTPUV_SRC_UV_CLIENT_INT_H

#include <stdatomic.h>
#include <stdint.h>

#include <openssl/ssl.h>
#include <uv.h>

#include "conv/conv.h"
#include "protocol/mem.h"
#include "smtpuv/auth.h"
#include "smtpuv/client.h"
#include "uv/tls.h"

#define SMTPUV__READ_BUF 16384    /* network read buffer (per client) */
#define SMTPUV__MAX_IOV 32
#define SMTPUV__MAX_FALLBACK 15   /* servers after the first */
#define SMTPUV__DEFAULT_DEPTH 4   /* messages on the wire per connection
                                     (bench/compare.sh W1, see README) */

/* ---- options -------------------------------------------------------------- */

/* The SSL_CTX built from the options (sslshare.c): built once at first use,
   referenced by the options and by every client copied from them. */
typedef struct smtpuv__ssl_share smtpuv__ssl_share;
/* A new share (one reference). 0 or SMTPUV_ENOMEM. */
int smtpuv__ssl_share_new(const smtpuv_mem *mem, smtpuv__ssl_share **out);
/* Another reference (thread-safe); returns `s`. NULL is accepted. */
smtpuv__ssl_share *smtpuv__ssl_share_ref(smtpuv__ssl_share *s);
/* Drop a reference; the last one frees the context. NULL is accepted. */
void smtpuv__ssl_share_unref(smtpuv__ssl_share *s);
/* The context (a new reference for the caller, to SSL_CTX_free), built on
   the first call with trust from ca_file/ca_dir (or the system store) and
   SSL_MODE_RELEASE_BUFFERS. 0, SMTPUV_ENOMEM, SMTPUV_EINVAL or SMTPUV_ETLS
   with the reason in `err` (nothing is kept after a failure: the next call
   tries again). Thread-safe. */
int smtpuv__ssl_share_get(smtpuv__ssl_share *s, const char *ca_file,
                          const char *ca_dir, SSL_CTX **out, char *err,
                          size_t errlen);
/* The context if it is built already (1, a new reference in *out), else 0
   without building. Thread-safe. */
int smtpuv__ssl_share_peek(smtpuv__ssl_share *s, SSL_CTX **out);
/* 1 and the thread that built the context, or 0 while not built (tests). */
int smtpuv__ssl_share_built_by(smtpuv__ssl_share *s, uv_thread_t *out);
/* smtpuv__ssl_share_get() that also trusts a PEM bundle in memory (`pem`
   NULL: none; see smtpuv_options_set_ca_pem()). */
int smtpuv__ssl_share_get_pem(smtpuv__ssl_share *s, const char *pem,
                              size_t pem_len, const char *ca_file,
                              const char *ca_dir, SSL_CTX **out, char *err,
                              size_t errlen);

struct smtpuv_options {
  smtpuv_mem mem;
  char *host;
  unsigned port;
  smtpuv_tls_mode tls;
  SSL_CTX *ssl_ctx; /* referenced */
  smtpuv__ssl_share *ssl_share; /* the built context (always set) */
  char *ca_file, *ca_dir, *server_name;
  int verify;
  char *ehlo;
  /* credentials (strings owned; secrets wiped) */
  int has_creds;
  smtpuv_auth_credentials creds;
  smtpuv_auth *authenticator; /* borrowed */
  char *mechanism;            /* NULL: auto */
  int allow_plain_auth;
  unsigned timeouts[SMTPUV__NTIMEOUTS];
  int pipelining, chunking, require_all;
  smtpuv_trace_cb trace;
  void *trace_data;
  int tls_no_resume; /* smtpuv_options_set_tls_resumption(o, 0) */
  /* TLS extras: SHA-256 pin of the server certificate, client certificate */
  int has_tls_pin;
  unsigned char tls_pin[32];
  char *tls_cert_file, *tls_key_file;
  /* the pool */
  unsigned max_connections, max_messages, pipeline_depth;
  unsigned max_connecting; /* connections in setup at once */
  double msg_rate, conn_rate;
  unsigned msg_burst;
  struct {
    char *host;
    unsigned port;
  } fallback[SMTPUV__MAX_FALLBACK];
  unsigned nfallback;
  unsigned host_skip_ms;
  unsigned retry_max, retry_base, retry_cap, retry_deadline;
  size_t queue_high, queue_low;
  int ordered;
  /* transports and LMTP (issue 14) */
  int lmtp;               /* smtpuv_options_set_protocol(LMTP) */
  int tls_set;            /* smtpuv_options_set_tls() was called */
  char *unix_path;        /* smtpuv_options_set_unix_socket() */
  int has_source;         /* smtpuv_options_set_source_address() */
  struct sockaddr_storage source;
  char *proxy_host;       /* smtpuv_options_set_socks5_proxy() */
  unsigned proxy_port;
  char *proxy_user, *proxy_pass; /* secrets: wiped */
  char *ca_pem; /* smtpuv_options_set_ca_pem(): owned copy, or NULL */
  size_t ca_pem_len;
};

/* Deep copy `src` into `dst` (dst uninitialised). 0 or SMTPUV_ENOMEM. The
   copy shares the options' built SSL_CTX. */
int smtpuv__options_copy(smtpuv_options *dst, const smtpuv_options *src);
/* The SSL_CTX for a TLS connection under these options: the caller's
   (set_ssl_ctx) or the shared built one; a new reference either way. 0 or
   an error with the reason in `err` (see smtpuv__ssl_share_get()). */
int smtpuv__options_ssl_ctx(const smtpuv_options *o, SSL_CTX **out, char *err,
                            size_t errlen);
/* Free what a copy owns (not the struct). */
void smtpuv__options_clear(smtpuv_options *o);

/* ---- connection ------------------------------------------------------------ */

/* The transport of one connection (conn.c). The conversation (src/conv)
   decides everything SMTP; the connection resolves, connects, moves bytes,
   pumps TLS and runs the one timer, and after every event drives the
   conversation (smtpuv__conn_drive()). */
enum smtpuv__cstate {
  SMTPUV__C_RESOLVING = 0,
  SMTPUV__C_CONNECTING,
  SMTPUV__C_PROXY,    /* connected to the SOCKS5 proxy: its handshake */
  SMTPUV__C_OPEN,     /* the conversation runs */
  SMTPUV__C_SHUTDOWN, /* close_notify (or an alert) being written */
  SMTPUV__C_DEAD      /* handles closing */
};

typedef struct smtpuv__conn smtpuv__conn;

/* The connection's owner: the client's sending connection (client.c) or a
   probe (probe.c). */
typedef struct smtpuv__conn_ops {
  /* After every event, before the output is written: take finished
     messages and failures, hand over queued messages. May be NULL. */
  void (*settle)(smtpuv__conn *cn);
  /* The connection is about to be freed (handles closed). May be NULL. */
  void (*gone)(smtpuv__conn *cn);
} smtpuv__conn_ops;

struct smtpuv__conn {
  smtpuv_client *client;
  smtpuv__conn *next;  /* the client's list of sending connections */
  int attached;        /* in that list (taking messages) */
  int ready_seen;      /* its conversation got ready once */
  unsigned host_index; /* 0: the options' host, else fallback[i - 1] */
  const char *host;    /* inside the client's options */
  unsigned port;
  const smtpuv__conn_ops *ops;
  void *owner;       /* the ops' object (probe) or NULL */
  smtpuv__conv *conv;
  int state;
  union {
    uv_tcp_t tcp;   /* TCP (to the server, or to the SOCKS5 proxy) */
    uv_pipe_t pipe; /* a Unix domain socket (smtpuv_options_set_unix_socket) */
  } s;              /* the stream: cast &s to uv_stream_t / uv_handle_t */
  smtpuv_socks5 *socks; /* the proxy handshake in progress */
  uv_write_t preq;      /* its write */
  int proxy_writing;
  uv_timer_t timer;
  uv_getaddrinfo_t gai;
  uv_connect_t creq;
  uv_write_t wreq;
  int tcp_open, timer_open, gai_active, reading;
  int handles_closing;
  int in_drive;

  /* resolution and connect */
  struct addrinfo *ai_list, *ai_next;
  unsigned ai_left;
  uint64_t connect_deadline;
  int last_connect_err;
  char peer[64];

  smtpuv_auth *auth; /* when owned: this connection's authenticator */
  int auth_owned;

  /* TLS */
  smtpuv_tls *tls;
  int tls_up;        /* handshake complete */
  int tls_wait;      /* TLS asked for, the context still being built */
  int read_paused;   /* ... and reading stopped meanwhile */
  smtpuv__conn *tls_wait_next; /* client->tls.waiters list (tlsprep.c) */
  int tls_listed;    /* ... is on it */

  /* output: at most one uv_write in flight */
  int writing;
  size_t write_len;  /* conversation bytes in the write in flight */
  void *write_buf;   /* TLS: ciphertext in flight (engine allocator) */
  size_t write_buf_len;
  int write_err;     /* a write failed: reading what is left, then fail */
  uint64_t write_err_at; /* ... until then */
  uv_buf_t bufs[SMTPUV__MAX_IOV];
};

/* Start a connection to server `host` (0: the options' host, i: the i-th
   fallback) whose conversation runs in `mode` for `ops`/`owner`. It counts
   in client->nconns until freed. A failure may be reported (and the
   connection end) before this returns. 0, SMTPUV_EINVAL or SMTPUV_ENOMEM
   (nothing started). */
int smtpuv__conn_open(smtpuv_client *c, unsigned host, smtpuv__conv_mode mode,
                      const smtpuv__conn_ops *ops, void *owner,
                      smtpuv__conn **out);
/* Let the conversation act: settle with the owner, start TLS, write what
   it has (uv_try_write first, the rest with one uv_write), end the
   connection when it says so, rearm the timer. Idempotent; never
   re-entered. */
void smtpuv__conn_drive(smtpuv__conn *cn);

/* ---- client ---------------------------------------------------------------- */

struct smtpuv_client {
  smtpuv_mem mem;
  uv_loop_t *loop;
  smtpuv_options opts;
  void *data;

  smtpuv_auth *auth; /* NULL when no AUTH */
  int auth_owned;
  SSL_CTX *ssl_ctx;  /* built or referenced at the first TLS connection */
  char ehlo_name[256];

  smtpuv__msg *queue, *queue_tail; /* not started */
  smtpuv__msg *done, *done_tail;   /* outcome known, sorted by seq */
  atomic_size_t pending;           /* callbacks not yet run (atomic: read
                                      by smtpuv_client_pending_threadsafe) */
  uint64_t next_seq;               /* seq of the next message queued */
  uint64_t deliver_seq;            /* seq of the next callback due */
  smtpuv_rcpt_result *rr;          /* recipients of a result (> 8), reused */
  size_t rr_cap;

  size_t queued;                   /* messages in `queue` */
  smtpuv__msg *delayed;            /* retries waiting, by not_before */

  smtpuv__conn *conns;             /* sending connections taking messages */
  unsigned nconns;                 /* connections not yet freed (any) */
  uint64_t server_failed_until[1 + SMTPUV__MAX_FALLBACK]; /* skip until */
  unsigned char round_failed[1 + SMTPUV__MAX_FALLBACK]; /* failed since a
                                          connection was last ready */

  /* rate limits (token buckets) and the timer that waits for them and
     for retries */
  uv_timer_t timer;
  uint64_t timer_at;
  double msg_tokens, conn_tokens;
  uint64_t msg_tokens_at, conn_tokens_at;

  /* back-pressure */
  smtpuv_drained_cb drained_cb;
  int above_high;

  uv_idle_t idle;
  int idle_active;
  int kicked;                      /* kick() since dispatch's step 2 */
  int body_ready;                  /* smtpuv_client_body_ready() */
  int closing;
  int aborting;                    /* smtpuv_client_abort() */
  int close_done;                  /* handles closing */
  int handles_closing;
  smtpuv_close_cb close_cb;
  int in_dispatch;

  char *read_buf;                  /* SMTPUV__READ_BUF, lazily */
  char *plain_buf;                 /* TLS plaintext, lazily */

  struct {                         /* TLS at scale (tlsprep.c) */
    smtpuv__tls_cache *cache;      /* sessions, lazily */
    uv_work_t work;                /* the options' context built off-loop */
    int work_pending;              /* ... until its after-work callback */
    SSL_CTX *built;                /* the worker's reference */
    char err[256];                 /* the worker's failure (retried later) */
    smtpuv__conn *waiters;         /* connections holding their handshake
                                      (probes too: not in the pool's list) */
  } tls;
  int unref;                       /* smtpuv_client_set_ref(c, 0) */

  struct smtpuv__tsq *tsq;         /* threadsafe.c: other threads' queue */
};

/* Schedule a dispatch pass (callbacks, queue processing) on the loop. */
void smtpuv__client_kick(smtpuv_client *c);
/* Queue a message record (its callback set) as smtpuv_client_send() does:
   it gets the next sequence number. Loop thread only. */
void smtpuv__client_enqueue(smtpuv_client *c, smtpuv__msg *m);
/* A sending connection stops taking messages (it is ending): out of the
   client's list, so that another may start. Idempotent. */
void smtpuv__client_detach(smtpuv_client *c, smtpuv__conn *cn);
/* The authenticator of a new connection: the client's own (one
   connection), or a new one from the credentials (a pool; *owned 1: the
   connection frees it). 0 or an error. */
int smtpuv__client_conn_auth(smtpuv_client *c, smtpuv_auth **auth,
                             int *owned);
/* A connection freed itself. */
void smtpuv__client_conn_gone(smtpuv_client *c, smtpuv__conn *cn);
/* The SSL_CTX for a TLS connection (built on first use). 0 or an error
   with the reason in `err`. */
int smtpuv__client_ssl_ctx(smtpuv_client *c, SSL_CTX **ctx, char *err,
                           size_t errlen);
unsigned smtpuv__client_timeout(const smtpuv_client *c, smtpuv_timeout which);

/* ---- TLS at scale (tlsprep.c) ---------------------------------------------- */

/* At smtpuv_client_new(): a TLS client whose context is the options' built
   one takes it if built, else starts building it on the thread pool
   (c->tls.work_pending until done; the client is not freed before). */
void smtpuv__client_tls_start(smtpuv_client *c);
/* 1 while the context is being built off the loop: a connection holds its
   handshake; the client's dispatch drives it again when the build is done. */
int smtpuv__client_tls_waiting(const smtpuv_client *c);
/* The client's session cache (created at first use; NULL without memory:
   connections then do full handshakes). */
smtpuv__tls_cache *smtpuv__client_tls_cache(smtpuv_client *c);
/* A connection holds its handshake until the context is built: it is
   driven again from the after-work callback. */
void smtpuv__client_tls_wait(smtpuv_client *c, smtpuv__conn *cn);
/* The connection is being freed: off the waiting list. */
void smtpuv__client_tls_forget(smtpuv_client *c, smtpuv__conn *cn);
/* At client_free(): the sessions and anything the worker left. */
void smtpuv__client_tls_clear(smtpuv_client *c);
/* After a read: the client's read buffers are given back (they come back
   at the next read), and an idle connection (no message in flight, nothing
   queued) trims its TLS engine (smtpuv__tls_trim()). */
void smtpuv__conn_trim_idle(smtpuv__conn *cn);
/* ---- submissions from other threads (threadsafe.c) ------------------------ */

/* Create the client's cross-thread queue and its uv_async_t (unreferenced:
   it does not keep the loop alive). Called by smtpuv_client_new(). 0 or
   SMTPUV_ENOMEM (nothing to undo). */
int smtpuv__tsq_new(smtpuv_client *c);
/* close/abort began (loop thread): refuse further submissions
   (SMTPUV_ECLOSED) and hand every one accepted so far to the client, so
   that the close cancels them with the rest of the queue. Idempotent. */
void smtpuv__tsq_shut(smtpuv_client *c);
/* Teardown: close the async handle (its data is the client) with `cb`,
   which counts it in handles_closing. */
void smtpuv__tsq_close(smtpuv_client *c, uv_close_cb cb);
/* Free the queue (from client_free; the handle is closed). */
void smtpuv__tsq_free(smtpuv_client *c);

#endif

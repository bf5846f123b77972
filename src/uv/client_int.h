/*
 * Internal: the libuv client's objects.
 *
 *   client.c   options builder, client API, send queue, deferred dispatch
 *   conn.c     one connection: resolve, connect, read/write, timer, TLS
 *   session.c  drives the protocol core over a connection: conn ops, reply
 *              routing, QUIT/failures, process loop, timer (session_int.h)
 *   setup.c    the session's greeting, EHLO, STARTTLS, AUTH
 *   transaction.c  the session's messages: MAIL/RCPT/DATA/BDAT, body, results
 *   probe.c    smtpuv_client_probe(): a connection of a private client
 *              driven as far as EHLO (and STARTTLS + EHLO)
 *   message.c  message records, result strings, result copies
 *   headers.c  envelope from headers, Bcc-stripping body source
 *   sync.c     smtpuv_send_sync()
 *   trace.c    trace records with AUTH payloads redacted
 *
 * Ownership: the client owns its queue of message records and its current
 * connection. A connection that is closing lives on by itself (counted in
 * client->nconns) until its last handle is closed; the client is freed only
 * when every connection is gone and every send callback has run.
 */
#ifndef SMTPUV_SRC_UV_CLIENT_INT_H
#define SMTPUV_SRC_UV_CLIENT_INT_H

#include <stdint.h>

#include <openssl/ssl.h>
#include <uv.h>

#include "protocol/mem.h"
#include "smtpuv/auth.h"
#include "smtpuv/client.h"
#include "uv/tls.h"

#include <stdarg.h>

#define SMTPUV__NTIMEOUTS 5
#define SMTPUV__READ_BUF 16384    /* network read buffer (per client) */
#define SMTPUV__PUMP_BUF 65536    /* streamed body chunk (per client) */
#define SMTPUV__BODY_CHUNK 65536  /* body bytes handed to the core at once */
#define SMTPUV__HIGH_WATER 131072 /* stop pumping the body above this much
                                     unwritten output */
#define SMTPUV__MAX_IOV 32
#define SMTPUV__MAX_INFLIGHT 2    /* messages on the wire at once */

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
  /* TLS extras: SHA-256 pin of the server certificate, client certificate */
  int has_tls_pin;
  unsigned char tls_pin[32];
  char *tls_cert_file, *tls_key_file;
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

/* ---- messages ------------------------------------------------------------- */

enum smtpuv__stage {
  SMTPUV__M_QUEUED = 0, /* in the client's queue */
  SMTPUV__M_ENVELOPE,   /* MAIL/RCPT/DATA issued, replies coming */
  SMTPUV__M_BODY,       /* 354 received (or BDAT started): body flowing */
  SMTPUV__M_DOT,        /* final "." or BDAT LAST issued */
  SMTPUV__M_DONE        /* outcome known, waiting for its callback */
};

typedef struct smtpuv__rcpt {
  const char *address; /* inside the record */
  const smtpuv_rcpt_params *params; /* NULL or inside the record */
  int code;
  int accepted;
  char enhanced[16];
  size_t text; /* arena offset */
} smtpuv__rcpt;

enum {
  SMTPUV__SCAN_8BIT = 1,   /* smtpuv_is_8bit() */
  SMTPUV__SCAN_BINARY = 2, /* smtpuv_needs_binarymime() */
  SMTPUV__SCAN_WIRE = 4    /* wire_size holds smtpuv_body_wire_size() */
};

typedef struct smtpuv__msg smtpuv__msg;
struct smtpuv__msg {
  smtpuv__msg *next;
  uint64_t seq;          /* queue order: callbacks run in this order */
  smtpuv_send_cb cb;
  void *cbdata;
  smtpuv_message *owned; /* smtpuv_client_send_message(): freed after cb */

  /* envelope (copied into the same allocation) */
  const char *sender;
  smtpuv__rcpt *rcpts;
  size_t nrcpts;
  int has_mail_params;
  smtpuv_mail_params mail_params;
  smtpuv_body body;
  /* what a buffer body was found to hold (SMTPUV__SCAN_*; the answer of a
     scan is its bit << 8), kept across attempts */
  unsigned scan;
  uint64_t wire_size;

  /* progress on the current attempt */
  int stage;
  unsigned attempts;
  int pipelined;      /* envelope sent without waiting */
  int bdat;           /* body goes with BDAT */
  unsigned expect;    /* replies still due for this message */
  size_t next_rcpt;   /* next RCPT to issue (not pipelined) */
  size_t rcpt_replies;
  int mail_ok;
  int mail_failed;
  int data_issued;    /* DATA issued / BDAT started */
  int bdat_abort;     /* stop sending chunks, RSET when replies are in */
  int reused;         /* issued on a connection that carried a message */
  int rset_after;     /* an RSET was pipelined behind it */
  uint64_t body_off;  /* buffer: bytes handed to the core */
  int body_eof;       /* stream: the source reported its end */
  uint64_t dot_mark;  /* connection output offset just after the "." */
  size_t naccepted;

  /* outcome */
  int decided;
  smtpuv_send_status status;
  int error;
  smtpuv_phase phase;
  int reply_code;
  char reply_enhanced[16];
  size_t reply_text; /* arena offsets */
  size_t message;
  size_t tls;

  /* strings of the result: offset 0 is ""; the arena starts inside the
     record's own block (arena_inline) and moves to the heap when a result
     outgrows it */
  char *arena;
  size_t arena_len, arena_cap;
  int arena_inline;
};

/* Allocate a record with copies of the envelope and body. 0, SMTPUV_EINVAL,
   SMTPUV_EADDRESS, SMTPUV_ENOMEM. */
int smtpuv__msg_new(const smtpuv_mem *mem, const smtpuv_envelope *env,
                    const smtpuv_body *body, smtpuv__msg **out);
void smtpuv__msg_free(const smtpuv_mem *mem, smtpuv__msg *m);
/* Forget the progress of a previous attempt (results, arena). */
void smtpuv__msg_reset(smtpuv__msg *m);
/* Append a string to the arena: its offset, or 0 ("") when out of memory. */
size_t smtpuv__msg_str(const smtpuv_mem *mem, smtpuv__msg *m, const char *s,
                       size_t len);
size_t smtpuv__msg_printf(const smtpuv_mem *mem, smtpuv__msg *m,
                          const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* Record the outcome (first call wins unless `force`). `reply` may be
   NULL; `fmt` gives the human message. */
void smtpuv__msg_decide(const smtpuv_mem *mem, smtpuv__msg *m,
                        smtpuv_send_status st, int err, smtpuv_phase phase,
                        const smtpuv_reply *reply, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 7, 8)))
#endif
    ;
/* Longest reply line quoted in a result's message. */
#define SMTPUV__MSG_LINE_MAX 300
/* smtpuv__msg_decide() with the message "[what: ]NNN first reply line",
   built without printf (`what` may be NULL; `reply` is required). */
void smtpuv__msg_decide_reply(const smtpuv_mem *mem, smtpuv__msg *m,
                              smtpuv_send_status st, int err,
                              smtpuv_phase phase, const smtpuv_reply *reply,
                              const char *what);
/* Fill a result for the callback (pointers into m and `rr`, which must hold
   m->nrcpts entries). */
void smtpuv__msg_result(smtpuv__msg *m, smtpuv_send_result *r,
                        smtpuv_rcpt_result *rr);
/* 1 when the body can be sent again from its start (rewinds a stream). */
int smtpuv__msg_rewind(smtpuv__msg *m);

/* ---- connection ------------------------------------------------------------ */

enum smtpuv__cstate {
  SMTPUV__C_RESOLVING = 0,
  SMTPUV__C_CONNECTING,
  SMTPUV__C_TLS_IMPLICIT, /* handshake before the greeting */
  SMTPUV__C_GREETING,
  SMTPUV__C_EHLO,
  SMTPUV__C_HELO,
  SMTPUV__C_STARTTLS,     /* STARTTLS sent, 220 awaited */
  SMTPUV__C_TLS_STARTTLS, /* handshake after STARTTLS */
  SMTPUV__C_AUTH,
  SMTPUV__C_READY,
  SMTPUV__C_QUIT,         /* QUIT sent: waiting for 221 or EOF */
  SMTPUV__C_SHUTDOWN,     /* close_notify being written */
  SMTPUV__C_DEAD          /* handles closing */
};

typedef struct smtpuv__conn smtpuv__conn;

/* Who drives a connection: what conn.c reports goes here. The client's
   session (session.c, the default) or a server probe (probe.c). Once the
   connection is terminated (DEAD) only `gone` is called; `fail` may come in
   the QUIT and SHUTDOWN states too. */
typedef struct smtpuv__conn_ops {
  void (*connected)(smtpuv__conn *cn); /* TCP up (plaintext) */
  void (*tls_done)(smtpuv__conn *cn);  /* handshake complete */
  void (*data)(smtpuv__conn *cn, const char *buf, size_t len); /* plaintext */
  void (*writable)(smtpuv__conn *cn);  /* a write completed */
  void (*timeout)(smtpuv__conn *cn);   /* the timer fired (once connected) */
  /* transport failure (`err` SMTPUV_E*); the owner ends the connection */
  void (*fail)(smtpuv__conn *cn, int err, const char *text);
  /* the connection is about to be freed (handles closed); may be NULL */
  void (*gone)(smtpuv__conn *cn);
} smtpuv__conn_ops;

struct smtpuv__conn {
  smtpuv_client *client;
  const smtpuv__conn_ops *ops;
  void *owner;       /* the ops' object (probe) or NULL */
  int state;
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_getaddrinfo_t gai;
  uv_connect_t creq;
  uv_write_t wreq;
  int tcp_open, timer_open, gai_active, reading;
  int handles_closing;

  /* resolution and connect */
  struct addrinfo *ai_list, *ai_next;
  unsigned ai_left;
  uint64_t connect_deadline;
  int last_connect_err;
  char peer[64];

  /* protocol */
  smtpuv_proto *proto;
  smtpuv_auth_session *auth;
  int want_tls;      /* STARTTLS 220 popped: start the handshake */
  int auth_waiting;  /* auth session waits for a token */

  /* TLS */
  smtpuv_tls *tls;
  int tls_up;        /* handshake complete */
  char *tls_summary;

  /* output */
  int writing;
  size_t write_len;  /* plaintext bytes in the write in flight */
  void *write_buf;   /* TLS: ciphertext in flight (engine allocator) */
  size_t write_buf_len;
  uint64_t out_started; /* plaintext bytes handed to the socket (or TLS) */
  size_t wrote_sync;    /* plaintext bytes uv_try_write took (a counter the
                           session resets to see what a flush did) */
  int write_err;        /* a write failed: reading what is left, then fail */
  uv_buf_t bufs[SMTPUV__MAX_IOV];

  /* messages issued on this connection, oldest first */
  smtpuv__msg *inflight, *inflight_tail;
  unsigned ninflight;
  unsigned messages_issued;
  int rset_needed;   /* a transaction failed before its end: RSET first */
  unsigned rset_pending; /* RSET replies due */
  int doomed;        /* terminate once no final reply is awaited */
  int doomed_err;
  int in_process;
};

/* Start a new connection for the client's session (client->conn). 0 or
   ENOMEM. */
int smtpuv__conn_start(smtpuv_client *c);
/* Start a connection driven by `ops` (NULL: the session, as
   smtpuv__conn_start()) with `owner` in cn->owner. Other owners' connections
   are not client->conn: the client's dispatch never drives them. It counts
   in client->nconns until freed. The owner may hear of a failure (ops->fail)
   before this returns. 0 or ENOMEM (nothing started). */
int smtpuv__conn_open(smtpuv_client *c, const smtpuv__conn_ops *ops,
                      void *owner, smtpuv__conn **out);
/* Write what the core (and the TLS engine) have pending, if no write is in
   flight: plaintext is tried synchronously first (uv_try_write) and only
   the rest is queued. Never calls back into the session. */
void smtpuv__conn_flush(smtpuv__conn *cn);
/* Create the TLS engine and send the ClientHello. 0 or an error. */
int smtpuv__conn_start_tls(smtpuv__conn *cn);
/* Restart the timer: `ms` 0 stops it. */
void smtpuv__conn_timer(smtpuv__conn *cn, unsigned ms);
/* Close every handle; the connection frees itself afterwards and detaches
   from the client at once. Idempotent. */
void smtpuv__conn_terminate(smtpuv__conn *cn);
/* After a failure (`err`): the alert a failed TLS handshake queued (ETLS,
   ECERT) is written first, then terminate; otherwise terminate at once. */
void smtpuv__conn_abort(smtpuv__conn *cn, int err);
/* After QUIT's reply (or when giving up): close_notify if TLS, then
   terminate. */
void smtpuv__conn_finish(smtpuv__conn *cn);
/* Unwritten output (core + TLS + write in flight). */
size_t smtpuv__conn_backlog(const smtpuv__conn *cn);
/* The address literal of our end ("[192.0.2.1]", "[IPv6:::1]"; RFC 5321
   4.1.4), for EHLO without a name; "[127.0.0.1]" when it is unknown. */
void smtpuv__conn_local_literal(const smtpuv__conn *cn, char *buf,
                                size_t len);

/* session.c (connected, tls_done: setup.c): the default smtpuv__conn_ops,
   called by conn.c */
void smtpuv__session_connected(smtpuv__conn *cn);   /* TCP up (plaintext) */
void smtpuv__session_tls_done(smtpuv__conn *cn);    /* handshake complete */
void smtpuv__session_data(smtpuv__conn *cn, const char *buf, size_t len);
void smtpuv__session_writable(smtpuv__conn *cn);    /* a write completed */
void smtpuv__session_timeout(smtpuv__conn *cn);
/* Transport failure: `err` SMTPUV_E*, `fmt` the detail. */
void smtpuv__session_fail(smtpuv__conn *cn, int err, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* Issue queued messages, pump the body, flush, rearm the timer. */
void smtpuv__session_process(smtpuv__conn *cn);
/* The client is closing: cancel what can be canceled, QUIT when possible. */
void smtpuv__session_close(smtpuv__conn *cn);

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
  size_t pending;                  /* callbacks not yet run */
  uint64_t next_seq;               /* seq of the next message queued */
  uint64_t deliver_seq;            /* seq of the next callback due */
  smtpuv_rcpt_result *rr;          /* recipients of a result (> 8), reused */
  size_t rr_cap;

  smtpuv__conn *conn;              /* current connection or NULL */
  unsigned nconns;                 /* connections not yet freed */

  uv_idle_t idle;
  int idle_active;
  int kicked;                      /* kick() since dispatch's step 2 */
  int closing;
  int close_done;                  /* idle handle closing */
  smtpuv_close_cb close_cb;
  int in_dispatch;

  char *read_buf;                  /* SMTPUV__READ_BUF, lazily */
  char *plain_buf;                 /* TLS plaintext, lazily */
  char *pump_buf;                  /* SMTPUV__PUMP_BUF, lazily */
  size_t pump_len;                 /* bytes read ahead in pump_buf */
  int body_blocked;                /* a stream returned SMTPUV_EAGAIN */
};

/* Schedule a dispatch pass (callbacks, queue processing) on the loop. */
void smtpuv__client_kick(smtpuv_client *c);
/* A message's outcome is known: queue its callback. */
void smtpuv__client_complete(smtpuv_client *c, smtpuv__msg *m);
/* Put a message back at the head of the queue (retry). */
void smtpuv__client_requeue(smtpuv_client *c, smtpuv__msg *m);
/* A connection freed itself. */
void smtpuv__client_conn_gone(smtpuv_client *c, smtpuv__conn *cn);
/* Fail every queued message (setup failure). */
void smtpuv__client_fail_queue(smtpuv_client *c, smtpuv_send_status st,
                               int err, smtpuv_phase phase,
                               const smtpuv_reply *reply, const char *text,
                               const char *tls);
/* The SSL_CTX for a TLS connection (built on first use). 0 or an error
   with the reason in `err`. */
int smtpuv__client_ssl_ctx(smtpuv_client *c, SSL_CTX **ctx, char *err,
                           size_t errlen);
unsigned smtpuv__client_timeout(const smtpuv_client *c, smtpuv_timeout which);

/* ---- trace ------------------------------------------------------------------ */

/* Trace the output the core gained since it held `before` pending bytes. */
enum {
  SMTPUV__TR_CMD = 0,  /* commands */
  SMTPUV__TR_REDACT,   /* AUTH: "AUTH MECH <redacted>", "<redacted>" */
  SMTPUV__TR_BODY,     /* message content */
  SMTPUV__TR_BDAT      /* "BDAT n" line, then content */
};
void smtpuv__trace_out(smtpuv__conn *cn, size_t before, int mode);
void smtpuv__trace_in(smtpuv__conn *cn, const char *buf, size_t len);
void smtpuv__trace_info(smtpuv__conn *cn, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
#define SMTPUV__TRACING(cn) ((cn)->client->opts.trace != NULL)

#endif

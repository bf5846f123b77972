/* SPDX-License-Identifier: MIT */
/**
 * @file
 * smtpuv/client.h — the libuv SMTP client.
 *
 * Sending a message (error handling shortened):
 *
 *   \#include <smtpuv/client.h>
 *
 *   static void on_sent(smtpuv_client *c, const smtpuv_send_result *r,
 *                       void *data) {
 *     if (r->status == SMTPUV_SEND_SENT)
 *       printf("queued: %s\n", r->reply_text);        // "2.0.0 Ok: queued as ..."
 *     else
 *       printf("%s in %s: %s\n", smtpuv_send_status_name(r->status),
 *              smtpuv_phase_name(r->phase), r->message);
 *     smtpuv_client_close(c, NULL);                    // QUIT, then free
 *   }
 *
 *   smtpuv_options *o;
 *   smtpuv_options_new(NULL, &o);
 *   smtpuv_options_set_host(o, "smtp.example.com");   // port 587, STARTTLS required
 *   smtpuv_options_set_credentials(o, "me@example.com", "secret", NULL);
 *   smtpuv_client *c;
 *   smtpuv_client_new(uv_default_loop(), o, &c);      // copies the options
 *   smtpuv_options_free(o);
 *
 *   const char *to[] = {"you@example.org"};
 *   smtpuv_envelope env = SMTPUV_ENVELOPE_INIT;
 *   env.sender = "me@example.com";
 *   env.recipients = to;
 *   env.nrecipients = 1;
 *   static const char msg[] = "From: me@example.com\r\nTo: you@example.org\r\n"
 *                             "Subject: hi\r\n\r\nHello.\r\n";
 *   smtpuv_body body;
 *   smtpuv_body_init_buffer(&body, msg, sizeof msg - 1); // kept until on_sent
 *   smtpuv_client_send(c, &env, &body, on_sent, NULL);
 *   uv_run(uv_default_loop(), UV_RUN_DEFAULT);
 *
 * Or, without an event loop, in one blocking call:
 *
 *   smtpuv_send_result *r;
 *   int rc = smtpuv_send_sync(o, &env, &body, &r);    // 0 when sent
 *   ...; smtpuv_send_result_free(r);
 *
 * Or let the message's own headers give the envelope (Sender/From; To, Cc,
 * Bcc; Bcc never transmitted): smtpuv_client_send_message(c, msg, len, cb,
 * data) and smtpuv_send_message_sync(o, msg, len, &r).
 *
 * What the client does for you:
 *   - resolves the host (every address is tried in turn), connects with
 *     TCP_NODELAY, negotiates TLS (STARTTLS or implicit; certificate and host
 *     name verified), EHLO, AUTH, and keeps the connection for the next
 *     message (re-opened when the server closed it while idle);
 *   - sends queued messages in order on one connection, pipelining MAIL,
 *     RCPT and DATA (RFC 2920) and using BDAT (RFC 3030) when offered;
 *   - calls the send callback exactly once per message, never from inside
 *     smtpuv_client_send(), with the fate of every recipient, in the order
 *     the messages were queued.
 *
 * SIGPIPE: libuv writes with write(2), so a server that closes the
 * connection while the client writes raises SIGPIPE, whose default action
 * ends the process. As in every libuv program, ignore it once at start-up:
 * signal(SIGPIPE, SIG_IGN) (Node does). The library never changes signal
 * dispositions; smtpuv_send_sync() blocks SIGPIPE in the calling thread
 * while it runs and discards one it caused.
 *
 * Threading: a client belongs to its loop's thread. All callbacks run on
 * that thread. Nothing is global: many clients may share a loop and many
 * loops may run in one process. The exceptions, callable from any thread,
 * are the functions whose name ends in _threadsafe (see "Threads" below)
 * and the blocking session smtpuv_session_sync_*(); docs/ARCHITECTURE.md ("Threads") has
 * the full rules.
 */
#ifndef SMTPUV_CLIENT_H
#define SMTPUV_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "../smtpuv.h"
#include "auth.h"
#include "compose.h"
#include "headers.h"
#include "send.h"

#ifdef __cplusplus
extern "C" {
#endif

/* OpenSSL's SSL_CTX, declared without including OpenSSL's headers. */
struct ssl_ctx_st;

/* ------------------------------------------------------------------------ */
/* Options                                                                   */
/* ------------------------------------------------------------------------ */

/** Client options: an opaque builder, copied by smtpuv_client_new(). */
typedef struct smtpuv_options smtpuv_options;

/**
 * New options with every default. `mem` (may be NULL) is the allocator for
 * the options and for clients created from them.
 * Returns 0, SMTPUV_EINVAL (out is NULL or `mem` incomplete) or
 * SMTPUV_ENOMEM.
 */
SMTPUV_EXTERN int smtpuv_options_new(const smtpuv_mem *mem,
                                     smtpuv_options **out);

/** Free the options (secrets are wiped). NULL is accepted. */
SMTPUV_EXTERN void smtpuv_options_free(smtpuv_options *o);

/*
 * Setters. Strings are copied. Each returns 0, SMTPUV_EINVAL for a bad value
 * (the options are unchanged) or SMTPUV_ENOMEM.
 */

/** Server host name or IP address literal (required). It is also the name
    the certificate is verified against unless set_tls_server_name(). */
SMTPUV_EXTERN int smtpuv_options_set_host(smtpuv_options *o, const char *host);

/** Server port; 0 (default) means 587, or 465 with SMTPUV_TLS_IMPLICIT. */
SMTPUV_EXTERN int smtpuv_options_set_port(smtpuv_options *o, unsigned port);

/** TLS mode (default SMTPUV_TLS_REQUIRED). */
SMTPUV_EXTERN int smtpuv_options_set_tls(smtpuv_options *o,
                                         smtpuv_tls_mode mode);

/**
 * Use the caller's SSL_CTX (its trust store, protocol range, client
 * certificate...). The context is referenced (SSL_CTX_up_ref) and released
 * with the options and clients; it must be a client context, and must not
 * be modified once a client uses it. When none is given the library builds
 * one: TLS 1.2 minimum, verification on, trust from set_ca() or the
 * system's default paths, SSL_MODE_RELEASE_BUFFERS (idle connections give
 * their record buffers back). It is built once, at the first TLS connection
 * of any client made from these options, and shared by all of them (also
 * across threads); set_ca() starts a new one for clients made afterwards.
 * NULL removes a previous one.
 */
SMTPUV_EXTERN int smtpuv_options_set_ssl_ctx(smtpuv_options *o,
                                             struct ssl_ctx_st *ctx);

/** Trust anchors for the built-in SSL_CTX: a PEM bundle and/or a hashed
    directory (either may be NULL; both NULL: the system store). An
    unreadable file fails the first connection with SMTPUV_ETLS and the
    OpenSSL reason in the result's message ("TLS setup: cannot load CA
    file ..."; tried again at the next connection). They are read once and
    the context shared (see set_ssl_ctx()). */
SMTPUV_EXTERN int smtpuv_options_set_ca(smtpuv_options *o, const char *file,
                                        const char *dir);

/**
 * Trust anchors from memory: every certificate of the PEM bundle `pem`
 * (`len` bytes, no NUL needed; copied), for the built-in SSL_CTX. Files
 * given with set_ca() are trusted as well; the system store is not loaded
 * when either is set. Node passes `tls.rootCertificates` joined here so
 * that its addon trusts what Node trusts. pem NULL (len 0) removes it. As
 * set_ca(), it starts a new shared context for clients made afterwards.
 * Returns 0, SMTPUV_EINVAL (NULL options, pem NULL with a length, a bundle
 * without any certificate: the options are unchanged) or SMTPUV_ENOMEM.
 */
SMTPUV_EXTERN int smtpuv_options_set_ca_pem(smtpuv_options *o,
                                            const char *pem, size_t len);

/** Name sent as SNI and checked against the certificate when it differs
    from the host connected to (e.g. host "127.0.0.1", name "localhost").
    NULL: the host. */
SMTPUV_EXTERN int smtpuv_options_set_tls_server_name(smtpuv_options *o,
                                                     const char *name);

/** Pin the server certificate: trust exactly the certificate whose SHA-256
    digest (of its DER encoding) is `sha256`, given as 64 hex digits, pairs
    optionally separated by ':' ("AB:CD:..." as `openssl x509 -fingerprint
    -sha256` and smtpuv-send -S print it). The pin replaces the CA chain
    and host name checks (a self-signed certificate is fine); any other
    certificate fails the handshake with SMTPUV_ECERT ("certificate
    fingerprint mismatch"). It is checked whatever set_tls_verify() says.
    NULL removes the pin. SMTPUV_EINVAL for anything but 32 bytes of hex
    (SHA-1 and MD5 fingerprints are refused). */
SMTPUV_EXTERN int smtpuv_options_set_tls_fingerprint(smtpuv_options *o,
                                                     const char *sha256);

/** Present a client certificate during TLS: `cert_file` (PEM, the
    certificate then any intermediates) and `key_file` (PEM private key;
    NULL: the key is in `cert_file`). Both NULL: none. The files are read at
    each connection; a file that cannot be loaded, or a key that does not
    match, fails it with SMTPUV_ETLS and the reason ("TLS setup: cannot
    load the client certificate ..."). SMTPUV_EINVAL for a key without a
    certificate or an empty name, SMTPUV_ENOMEM. */
SMTPUV_EXTERN int smtpuv_options_set_tls_client_cert(smtpuv_options *o,
                                                     const char *cert_file,
                                                     const char *key_file);

/** 0 accepts ANY certificate and host name (the connection is encrypted
    but not authenticated: a man in the middle can read everything,
    credentials included). Default 1. For tests only. */
SMTPUV_EXTERN int smtpuv_options_set_tls_verify(smtpuv_options *o,
                                                int verify);

/** TLS session resumption (default 1): a client keeps the last session
    each server sent (TLS 1.3 tickets, TLS 1.2 session IDs or tickets) and
    its next connection to the same server (host name, port, verification
    setting) offers it, for an abbreviated handshake without certificate
    transfer or verification; the result's TLS summary then ends with
    "; resumed". Sessions live with the client and are freed with it. 0
    makes every handshake a full one (e.g. so that a server cannot link a
    client's connections through its tickets). Only the library's own
    context keeps sessions: over a caller's context
    (smtpuv_options_set_ssl_ctx()) the caller's session settings rule. */
SMTPUV_EXTERN int smtpuv_options_set_tls_resumption(smtpuv_options *o,
                                                    int enable);

/** EHLO/HELO name; default: the machine's host name (an address literal
    "[a.b.c.d]" of the local end when the host name is unusable). */
SMTPUV_EXTERN int smtpuv_options_set_ehlo_name(smtpuv_options *o,
                                               const char *name);

/**
 * User name and password for AUTH, with an optional authorization identity
 * (PLAIN's authzid; NULL for none). Passing user NULL removes them. The
 * mechanism is chosen by set_auth_mechanism() (default "auto": the strongest
 * the server offers). AUTH is attempted only when credentials (or an
 * authenticator) are set; when they are set and the server offers no usable
 * mechanism the message fails (SMTPUV_EAUTHMECH, phase AUTH).
 */
SMTPUV_EXTERN int smtpuv_options_set_credentials(smtpuv_options *o,
                                                 const char *user,
                                                 const char *password,
                                                 const char *authzid);

/**
 * Full credentials (see smtpuv/auth.h): user name, password, authzid, an
 * OAuth token or token callback (answered with smtpuv_auth_token_provide()
 * on the authenticator the callback receives, now or later), OAUTHBEARER
 * host/port, mechanisms `auto` must not pick. Copied. NULL removes them.
 */
SMTPUV_EXTERN int smtpuv_options_set_auth_credentials(
    smtpuv_options *o, const smtpuv_auth_credentials *creds);

/**
 * Use an application authenticator (smtpuv_auth_new() or any built-in
 * constructor) instead of credentials. Borrowed: it must outlive every
 * client made from these options, and serves one connection at a time (do
 * not share it between clients that run at once). NULL removes it.
 */
SMTPUV_EXTERN int smtpuv_options_set_authenticator(smtpuv_options *o,
                                                  smtpuv_auth *auth);

/**
 * SASL mechanism: "auto" (default) or a name such as "PLAIN", "LOGIN",
 * "CRAM-MD5", "SCRAM-SHA-256", "XOAUTH2", "OAUTHBEARER". A named mechanism
 * the server does not offer fails the message with SMTPUV_EAUTHMECH.
 */
SMTPUV_EXTERN int smtpuv_options_set_auth_mechanism(smtpuv_options *o,
                                                    const char *mechanism);

/** 1 allows AUTH over a connection without TLS (default 0: refused with
    SMTPUV_EPLAINTEXT before a byte of the credentials is written). */
SMTPUV_EXTERN int smtpuv_options_set_allow_plaintext_auth(smtpuv_options *o,
                                                          int allow);

/** Set one timeout in milliseconds; 0 disables it (wait forever; for
    SMTPUV_TIMEOUT_IDLE: keep idle connections open until the server
    closes them). */
SMTPUV_EXTERN int smtpuv_options_set_timeout(smtpuv_options *o,
                                             smtpuv_timeout which,
                                             unsigned ms);

/** 0 never pipelines even when the server offers PIPELINING (default 1). */
SMTPUV_EXTERN int smtpuv_options_set_pipelining(smtpuv_options *o,
                                                int enable);

/** 0 never uses BDAT even when the server offers CHUNKING (default 1).
    Messages declared BODY=BINARYMIME then fail with SMTPUV_ENOEXT. */
SMTPUV_EXTERN int smtpuv_options_set_chunking(smtpuv_options *o, int enable);

/**
 * 1: a message counts as sent only when EVERY recipient was accepted. When
 * one is refused the client sends RSET instead of DATA and the message
 * fails (SMTPUV_ENORCPT, phase RCPT); DATA is then never pipelined behind
 * the RCPTs. Default 0: sent when at least one recipient accepted it.
 */
SMTPUV_EXTERN int smtpuv_options_set_require_all_recipients(smtpuv_options *o,
                                                            int enable);

/** Trace the SMTP conversation (see smtpuv_trace_cb). NULL turns it off. */
SMTPUV_EXTERN int smtpuv_options_set_trace(smtpuv_options *o,
                                           smtpuv_trace_cb cb, void *data);

/* ---- transports and LMTP ------------------------------------------------- */

/** The protocol spoken on the connection. */
typedef enum smtpuv_protocol {
  SMTPUV_PROTOCOL_SMTP = 0, /**< ESMTP (RFC 5321), the default */
  SMTPUV_PROTOCOL_LMTP      /**< LMTP (RFC 2033), to local delivery agents
                                 (Dovecot, Cyrus): LHLO instead of EHLO (no
                                 HELO fallback), and after the end of data
                                 one verdict per accepted recipient, reported
                                 in smtpuv_rcpt_result.delivery */
} smtpuv_protocol;

/**
 * SMTP (default) or LMTP. With LMTP the TLS mode defaults to
 * SMTPUV_TLS_NONE (unless smtpuv_options_set_tls() was called: local
 * delivery agents rarely offer STARTTLS) and the port to 24; plaintext
 * AUTH still needs smtpuv_options_set_allow_plaintext_auth(). The message
 * is SENT when every recipient was delivered, SENT with SMTPUV_ENORCPT when
 * some were, FAILED (ETEMPFAIL when every refusal was a 4xx, else
 * EPERMFAIL) when none was; a connection lost while verdicts are due leaves
 * those recipients SMTPUV_DELIVERY_UNKNOWN (the message is SENT if someone
 * got it, else UNKNOWN). SMTPUV_EINVAL for another value.
 */
SMTPUV_EXTERN int smtpuv_options_set_protocol(smtpuv_options *o,
                                              smtpuv_protocol protocol);

/**
 * Connect to a Unix domain socket at `path` instead of host and port (NULL:
 * TCP again), like msmtp's --socket. The host (smtpuv_options_set_host())
 * is then optional and only names the server for TLS, which stays off
 * unless asked for. SMTPUV_EINVAL for an empty path or one longer than a
 * socket address holds, or with a source address or a proxy set.
 */
SMTPUV_EXTERN int smtpuv_options_set_unix_socket(smtpuv_options *o,
                                                 const char *path);

/**
 * Bind the local end of TCP connections to `ip` (an IPv4 or IPv6 literal;
 * NULL: any), like msmtp's --source-ip: only server addresses of the same
 * family are tried; a bind failure fails the connection (SMTPUV_ECONNECT,
 * phase CONNECT). SMTPUV_EINVAL for a malformed address or with a Unix
 * socket.
 */
SMTPUV_EXTERN int smtpuv_options_set_source_address(smtpuv_options *o,
                                                    const char *ip);

/**
 * Reach the server through a SOCKS5 proxy at `host`:`port` (RFC 1928;
 * NULL host: none): the connection goes to the proxy, which resolves the
 * server's name itself (the name is never resolved locally), and the SMTP
 * conversation starts once the proxy has connected the tunnel. `user` and
 * `password` (both or neither, 1..255 bytes each; copied, wiped with the
 * options) use RFC 1929. TLS is verified against the server's name, not the
 * proxy's. A proxy failure ends the connection in phase SMTPUV_PHASE_PROXY
 * with SMTPUV_EPROXY* (smtpuv.h), or SMTPUV_ETIMEDOUT. SMTPUV_EINVAL for a
 * bad host, port or credentials, or with a Unix socket.
 */
SMTPUV_EXTERN int smtpuv_options_set_socks5_proxy(smtpuv_options *o,
                                                  const char *host,
                                                  unsigned port,
                                                  const char *user,
                                                  const char *password);

/* ---- the pool: connections, limits, rates, retries ------------------------ */

/**
 * Up to `n` connections to the server (1..1000; default 1). Messages go to
 * the first open connection that can take one; a new connection is opened
 * only when more messages are queued than the connections being set up
 * will absorb (`n` is a ceiling, not a target). One connection's failure
 * touches only the messages on it. SMTPUV_EINVAL out of range.
 */
SMTPUV_EXTERN int smtpuv_options_set_max_connections(smtpuv_options *o,
                                                     unsigned n);

/** Default of smtpuv_options_set_max_connecting(). */
#define SMTPUV_DEFAULT_MAX_CONNECTING 16

/**
 * At most `n` of the client's connections being set up at once (1..1000;
 * default SMTPUV_DEFAULT_MAX_CONNECTING): connecting, waiting for the
 * greeting, EHLO, the TLS handshake, AUTH. The pool opens more as these
 * get ready or fail, the way Postfix starts a destination with a few
 * connections. This bounds the burst a server sees when a deep queue meets
 * an empty pool, and the memory of simultaneous handshakes (OpenSSL holds
 * about 40 KiB per TLS handshake in progress and frees it afterwards;
 * opened all at once, a thousand connections leave the heap about 20 KiB
 * per connection larger than it needs to be once they are idle). The cost
 * is latency: a pool of N reaches full size after about N / n setup times,
 * which matters with slow servers (a greeting delay counts). Messages flow
 * on the first ready connections meanwhile. SMTPUV_EINVAL out of range.
 */
SMTPUV_EXTERN int smtpuv_options_set_max_connecting(smtpuv_options *o,
                                                    unsigned n);

/**
 * Messages per connection: after `n` the connection QUITs once they are
 * done and a new one is opened when needed (nodemailer's maxMessages).
 * 0 (default): no limit.
 */
SMTPUV_EXTERN int smtpuv_options_set_max_messages_per_connection(
    smtpuv_options *o, unsigned n);

/**
 * Messages on the wire at once on one connection when the server
 * pipelines (RFC 2920): the next message's MAIL follows the previous one's
 * final "." without waiting (1..64; default 4). 1 waits for every reply
 * to the final "." before the next MAIL.
 */
SMTPUV_EXTERN int smtpuv_options_set_pipeline_depth(smtpuv_options *o,
                                                    unsigned n);

/**
 * Rate limits for the whole client, as token buckets on the loop's clock
 * (no busy loop: a timer waits for the next token): at most
 * `messages_per_second` messages started per second with bursts of
 * `burst` (0: the rate rounded up), and at most `connections_per_second`
 * new connections. 0 turns a limit off (default).
 */
SMTPUV_EXTERN int smtpuv_options_set_rate_limit(smtpuv_options *o,
                                               double messages_per_second,
                                               unsigned burst,
                                               double connections_per_second);

/**
 * Servers tried in order after the one of smtpuv_options_set_host() (a
 * smarthost fallback): when a server is unreachable, times out or answers
 * 421 before a connection is ready, the next is tried, and the failed one
 * is skipped for `skip_ms` (default 30 000) while another works. `port` 0
 * is the options' port. Up to 16 servers; SMTPUV_EINVAL for a bad host,
 * SMTPUV_ELIMIT beyond that.
 */
SMTPUV_EXTERN int smtpuv_options_add_fallback_host(smtpuv_options *o,
                                                   const char *host,
                                                   unsigned port);

/** How long a server that failed is skipped while another works, in ms
    (default 30 000; 0: never skipped). */
SMTPUV_EXTERN int smtpuv_options_set_host_skip_time(smtpuv_options *o,
                                                    unsigned skip_ms);

/**
 * Automatic retries, off by default (`max_attempts` 0 or 1). A message
 * whose outcome is temporary is sent again, up to `max_attempts` attempts
 * in all and until `deadline_ms` after its first attempt (0: no deadline),
 * after a delay of `base_ms` * 2^(attempt - 2), at most `max_ms`, with
 * jitter (a uniform random part of the delay's second half). Temporary:
 * SMTPUV_SEND_FAILED with a 4xx reply (SMTPUV_ETEMPFAIL, SMTPUV_ESHUTDOWN,
 * or SMTPUV_ENORCPT when every refused recipient got a 4xx), or a
 * connection that could not be made, broke or timed out before the final
 * "." (SMTPUV_ECONNECT, SMTPUV_ERESOLVE, SMTPUV_ECONNLOST, SMTPUV_ETIMEDOUT,
 * SMTPUV_EIO). Never retried: permanent refusals (5xx), local refusals,
 * TLS and authentication failures, SMTPUV_SEND_UNKNOWN (the server may
 * have the message: retrying risks a duplicate) and SENT messages with
 * some recipients refused. A streamed body is retried only when it can be
 * rewound. The result's `attempts` counts the attempts and `attempt_log`
 * gives each earlier attempt's reason.
 */
SMTPUV_EXTERN int smtpuv_options_set_retry(smtpuv_options *o,
                                          unsigned max_attempts,
                                          unsigned base_ms, unsigned max_ms,
                                          unsigned deadline_ms);

/**
 * Back-pressure: smtpuv_client_send() (and the other submit functions)
 * fail with SMTPUV_EFULL while `high` messages are pending (queued or in
 * flight, callbacks not yet run); the drained callback
 * (smtpuv_client_set_drained_cb()) runs once the pending count falls to
 * `low` after the high-water mark was reached. 0 (default): no limit.
 * SMTPUV_EINVAL when low >= high.
 */
SMTPUV_EXTERN int smtpuv_options_set_queue_limits(smtpuv_options *o,
                                                 size_t high, size_t low);

/**
 * 1 (default): send callbacks run in the order the messages were
 * submitted (a message done early waits for those before it). 0: each
 * runs as soon as its message is done, in completion order: with many
 * connections a slow message no longer holds back the callbacks of the
 * ones behind it, at the price of the order.
 */
SMTPUV_EXTERN int smtpuv_options_set_ordered_callbacks(smtpuv_options *o,
                                                      int ordered);

/* ------------------------------------------------------------------------ */
/* The client                                                                */
/* ------------------------------------------------------------------------ */

/** One client: a queue of messages and a pool of connections to its
    server(s) (smtpuv_options_set_max_connections()). Opaque. */
typedef struct smtpuv_client smtpuv_client;

/** Send callback: runs exactly once per message, on the loop, never from
    inside smtpuv_client_send(), in the order the messages were queued. It
    may call smtpuv_client_send() and smtpuv_client_close(). */
typedef void (*smtpuv_send_cb)(smtpuv_client *client,
                               const smtpuv_send_result *result, void *data);

/** Close callback: the last thing the client does; the client is freed
    when it returns. */
typedef void (*smtpuv_close_cb)(smtpuv_client *client);

/**
 * Create a client on `loop`; the options are copied (free them whenever).
 * Nothing happens on the network until the first message is sent.
 * Returns 0, SMTPUV_EINVAL (NULL argument, no host set) or SMTPUV_ENOMEM.
 */
SMTPUV_EXTERN int smtpuv_client_new(uv_loop_t *loop,
                                    const smtpuv_options *options,
                                    smtpuv_client **out);

/**
 * Queue a message. The envelope and body struct are copied; the body's
 * buffer or source must stay valid until `cb` runs. Messages are sent in
 * the order queued, and their callbacks run in that order too: a message
 * refused locally (see below) while an earlier one awaits its reply gets
 * its callback after the earlier one's. `cb` may be NULL (fire and
 * forget).
 *
 * A failure while the connection is set up (resolution, connect, TLS,
 * greeting, EHLO, AUTH) fails every message queued at that moment with
 * that phase; a message queued later tries a new connection. A message
 * the client refuses by itself (8-bit body without 8BITMIME, larger than
 * the server's SIZE, non-ASCII address without SMTPUTF8, DSN parameters
 * without DSN) fails before any of its bytes is written and the next one
 * goes on.
 *
 * Returns 0 (cb will run exactly once), or without queuing anything and
 * without calling cb: SMTPUV_EINVAL (NULL argument, no recipient, a NULL
 * address, body with neither data nor read), SMTPUV_EADDRESS (an address
 * with CR, LF, NUL, '<' or '>' or too long: refused before any byte is
 * written), SMTPUV_ECLOSED (smtpuv_client_close() was called),
 * SMTPUV_ENOMEM.
 */
SMTPUV_EXTERN int smtpuv_client_send(smtpuv_client *client,
                                     const smtpuv_envelope *envelope,
                                     const smtpuv_body *body,
                                     smtpuv_send_cb cb, void *data);

/**
 * Queue a complete message (RFC 5322 headers + body in `data`) with the
 * envelope taken from its headers the way Python's smtplib send_message()
 * does (see smtpuv_message_new()); Bcc and Resent-Bcc are not transmitted.
 * `data` must stay valid until `cb` runs.
 * Returns smtpuv_client_send()'s codes and SMTPUV_EHEADER (no sender, no
 * recipient, more than one Resent- block, malformed header).
 */
SMTPUV_EXTERN int smtpuv_client_send_message(smtpuv_client *client,
                                             const void *data, size_t len,
                                             smtpuv_send_cb cb, void *cbdata);

/**
 * Queue a finished composer's message (smtpuv/compose.h): the envelope from
 * its headers (smtpuv_compose_sender(), smtpuv_compose_recipients(); Bcc
 * never transmitted; BODY=8BITMIME when smtpuv_compose_8bit()), the body
 * streamed from it (smtpuv_compose_read/rewind, its size for SIZE= when
 * known). `m` must stay valid until `cb` runs; free it there.
 * Returns smtpuv_client_send()'s codes and SMTPUV_ESTATE (not finished).
 */
static inline int smtpuv_client_send_composed(smtpuv_client *client,
                                              smtpuv_compose *m,
                                              smtpuv_send_cb cb, void *cbdata) {
  smtpuv_envelope env = SMTPUV_ENVELOPE_INIT;
  smtpuv_mail_params mp = SMTPUV_MAIL_PARAMS_INIT;
  env.sender = smtpuv_compose_sender(m);
  env.recipients = smtpuv_compose_recipients(m, &env.nrecipients);
  if (env.sender == NULL)
    return SMTPUV_ESTATE;
  if (smtpuv_compose_8bit(m)) {
    mp.body = SMTPUV_BODY_8BITMIME;
    env.mail_params = &mp;
  }
  smtpuv_body body;
  int64_t size = smtpuv_compose_size(m);
  smtpuv_body_init_stream(&body, smtpuv_compose_read, smtpuv_compose_rewind,
                          m, size > 0 ? (uint64_t)size : 0);
  return smtpuv_client_send(client, &env, &body, cb, cbdata);
}

/** A streaming body that returned SMTPUV_EAGAIN has data again. Returns
    0 (also when no body is waiting) or SMTPUV_ECLOSED. */
SMTPUV_EXTERN int smtpuv_client_body_ready(smtpuv_client *client);

/** Messages queued or in flight whose callback has not run yet. */
SMTPUV_EXTERN size_t smtpuv_client_pending(const smtpuv_client *client);

/**
 * Close the client: messages not yet started fail with
 * SMTPUV_SEND_CANCELED (SMTPUV_ECANCELED); a message whose body is being
 * written is abandoned (CANCELED, the connection is dropped); a message
 * whose final "." is already written keeps its chance: its reply is awaited
 * (SMTPUV_TIMEOUT_FINAL at most). Then QUIT, every handle is closed, and
 * `cb` (may be NULL) runs last; the client is freed after it. Callable from
 * inside any callback of the client. Every send callback runs before `cb`.
 * Returns 0, or SMTPUV_ECLOSED when already closing (cb will not run).
 */
SMTPUV_EXTERN int smtpuv_client_close(smtpuv_client *client,
                                      smtpuv_close_cb cb);

/** Drained callback: the pending count fell to the low-water mark after
    the high-water mark was reached (smtpuv_options_set_queue_limits()).
    Runs on the loop, from the client's dispatch, never during close. */
typedef void (*smtpuv_drained_cb)(smtpuv_client *client);

/** Set (or clear, NULL) the drained callback. 0 or SMTPUV_EINVAL. */
SMTPUV_EXTERN int smtpuv_client_set_drained_cb(smtpuv_client *client,
                                               smtpuv_drained_cb cb);

/** The caller's pointer for this client (NULL initially). */
SMTPUV_EXTERN void smtpuv_client_set_data(smtpuv_client *client, void *data);
/** The pointer last given to smtpuv_client_set_data() (NULL initially). */
SMTPUV_EXTERN void *smtpuv_client_get_data(const smtpuv_client *client);

/** The loop the client runs on. */
SMTPUV_EXTERN uv_loop_t *smtpuv_client_loop(const smtpuv_client *client);

/**
 * Abort the client: every connection ends at once (no QUIT, no TLS
 * close_notify, no waiting for a reply). Messages not yet started fail with
 * SMTPUV_SEND_CANCELED (SMTPUV_ECANCELED, phase NONE); messages in flight
 * with SMTPUV_SEND_FAILED (SMTPUV_ECANCELED, their phase), or
 * SMTPUV_SEND_UNKNOWN when their final "." (BDAT LAST) was already handed
 * to the transport. Messages waiting for a connection that is still being
 * set up (resolution, connect, TLS, EHLO, AUTH) have not started: CANCELED
 * as well. No message is retried. Every send callback still runs exactly
 * once, on the loop (never from inside this call), then `cb` (may be
 * NULL), and the client is freed after it; no handle of the client is open
 * when `cb` runs. Callable from inside any callback of the client. After
 * smtpuv_client_close() it escalates that close: `cb` is then ignored and
 * close()'s callback runs. An OAuth token request that is unanswered when
 * `cb` runs must not be answered afterwards (the authenticator is freed).
 * Returns 0, SMTPUV_EINVAL (NULL) or SMTPUV_ECLOSED (already aborting; cb
 * will not run).
 */
SMTPUV_EXTERN int smtpuv_client_abort(smtpuv_client *client,
                                      smtpuv_close_cb cb);

/**
 * Whether the client's handles (its idle handle, a connection's socket and
 * timer, present and future) keep the loop alive (uv_ref, the default) or
 * not (uv_unref, `ref` 0). An embedder that keeps its loop alive by itself
 * while messages are pending (Node's addon: ref while a send or close is
 * pending, unref when idle) lets an idle connection stay open without
 * holding the process. A DNS request in progress always keeps the loop
 * alive (libuv requests cannot be unref'd). The wake-up handle of the
 * _threadsafe functions never keeps the loop alive, whatever `ref` says.
 * Ignored once the client is closed.
 */
SMTPUV_EXTERN void smtpuv_client_set_ref(smtpuv_client *client, int ref);

/* ------------------------------------------------------------------------ */
/* Threads (src/uv/threadsafe.c)                                             */
/* ------------------------------------------------------------------------ */

/*
 * What may be called from where:
 *   - from any thread, at any time between smtpuv_client_new() returning and
 *     the close callback returning (the client is freed after it): only
 *     smtpuv_client_send_threadsafe(), smtpuv_client_send_message_threadsafe()
 *     and smtpuv_client_pending_threadsafe(). The application makes sure no
 *     such call is still running, or starts, once the close callback has
 *     returned: stop (or join) its submitting threads before or inside the
 *     close callback. After close/abort began they return SMTPUV_ECLOSED.
 *   - every other smtpuv_client_* function: only on the loop's thread (the
 *     thread running uv_run() on the client's loop, or any thread while the
 *     loop is not running, with the usual care of libuv).
 *   - every callback (send, close, trace, body source, token) runs on the
 *     loop's thread.
 *   - the allocator of the options (smtpuv_options_new()'s `mem`) is then
 *     called from the submitting threads too (the record of a submission is
 *     allocated on the calling thread): it must be thread-safe. The default
 *     (malloc/free) is.
 * The client's wake-up handle (a uv_async_t) does not keep the loop alive:
 * an application whose loop would otherwise have nothing to do keeps it
 * running by its own handle while other threads submit (the blocking
 * session does).
 */

/**
 * smtpuv_client_send() from any thread. On the calling thread the envelope
 * is validated and copied (sender, recipients, MAIL and RCPT parameters: the
 * caller may free or reuse them as soon as this returns) together with the
 * body struct; the body's buffer (`data`) or source (`read`/`user`) is NOT
 * copied and must stay valid until `cb` runs (a source's read and rewind
 * functions are called on the loop's thread). The message is then handed
 * to the client on the loop's thread, in the order of submission (as
 * serialised by the queue's mutex: one thread's messages keep their order),
 * and from there it is like any other message: `cb` runs exactly once, on
 * the loop's thread, in queue order.
 * Returns 0 (cb will run exactly once), or without queuing anything and
 * without calling cb: SMTPUV_EINVAL (NULL client, or as smtpuv_client_send()),
 * SMTPUV_EADDRESS, SMTPUV_ECLOSED (smtpuv_client_close() or
 * smtpuv_client_abort() began: from then on every submission is refused),
 * SMTPUV_EFULL (the high-water mark of smtpuv_options_set_queue_limits(),
 * counting the submissions not yet handed to the loop; the drained
 * callback runs on the loop's thread) or SMTPUV_ENOMEM.
 */
SMTPUV_EXTERN int smtpuv_client_send_threadsafe(smtpuv_client *client,
                                                const smtpuv_envelope *envelope,
                                                const smtpuv_body *body,
                                                smtpuv_send_cb cb, void *data);

/**
 * smtpuv_client_send_message() from any thread: the headers are parsed and
 * the envelope derived on the calling thread; `data` is not copied and must
 * stay valid until `cb` runs (it is read on the loop's thread). Returns
 * smtpuv_client_send_threadsafe()'s codes and SMTPUV_EHEADER.
 */
SMTPUV_EXTERN int smtpuv_client_send_message_threadsafe(smtpuv_client *client,
                                                        const void *data,
                                                        size_t len,
                                                        smtpuv_send_cb cb,
                                                        void *cbdata);

/**
 * Messages submitted (from any thread, with any send function) whose
 * callback has not run yet, including those not yet handed to the loop.
 * Callable from any thread (see the rules above); the value may be stale by
 * the time it is used. 0 for NULL. smtpuv_client_pending() (loop thread)
 * leaves out the submissions not yet handed over.
 */
SMTPUV_EXTERN size_t smtpuv_client_pending_threadsafe(smtpuv_client *client);

/* ------------------------------------------------------------------------ */
/* Envelope from headers                                                     */
/* ------------------------------------------------------------------------ */

/* The header field scanner and the address-list parser (smtpuv_header_next,
   smtpuv_address_list_parse, ...) are declared in smtpuv/headers.h (core). */

/**
 * A parsed message: the envelope its headers imply and a body source that
 * leaves out Bcc and Resent-Bcc. Opaque.
 */
typedef struct smtpuv_message smtpuv_message;

/**
 * Parse the header block of `data` (kept by the caller for the lifetime of
 * the message object; not copied) and derive the envelope like Python's
 * send_message():
 *   - with no Resent-Date header: sender = first address of Sender, else of
 *     From; recipients = every address of To, Bcc and Cc;
 *   - with exactly one Resent-Date: the same from Resent-Sender /
 *     Resent-From and Resent-To, Resent-Bcc, Resent-Cc;
 *   - more than one Resent-Date (several resent blocks): SMTPUV_EHEADER.
 * Addresses are read from RFC 5322 address lists (display names, quoted
 * strings, comments, groups, folded lines). When an address is non-ASCII
 * the envelope asks for SMTPUTF8 (and BODY=8BITMIME).
 * Returns 0, SMTPUV_EINVAL, SMTPUV_EHEADER (no header block, no sender, no
 * recipient, several Resent- blocks, an unparsable address) or
 * SMTPUV_ENOMEM.
 */
SMTPUV_EXTERN int smtpuv_message_new(const smtpuv_mem *mem, const void *data,
                                     size_t len, smtpuv_message **out);

/**
 * A message object for a message whose envelope comes from elsewhere (the
 * command line of a sendmail-style program): only smtpuv_message_body()
 * (without Bcc and Resent-Bcc) is of use; no envelope is derived, so any
 * data is accepted, empty or without a header block (then the body is the
 * data itself). `data` is kept by the caller as for smtpuv_message_new().
 * Returns 0, SMTPUV_EINVAL (`out` NULL, `data` NULL with a length) or
 * SMTPUV_ENOMEM.
 */
SMTPUV_EXTERN int smtpuv_message_wrap(const smtpuv_mem *mem, const void *data,
                                      size_t len, smtpuv_message **out);

/** The derived envelope (owned by the message; valid until it is freed);
    NULL for a message from smtpuv_message_wrap() (and for NULL). */
SMTPUV_EXTERN const smtpuv_envelope *
smtpuv_message_envelope(const smtpuv_message *m);

/** Fill `body` with the message without its Bcc and Resent-Bcc header
    fields: the buffer itself when it has none, else a rewindable, sized
    streaming source over it (no copy). It reads from `m`: free `m` only
    after the send callback. */
SMTPUV_EXTERN void smtpuv_message_body(smtpuv_message *m, smtpuv_body *body);

/** Free the message object. NULL is accepted. */
SMTPUV_EXTERN void smtpuv_message_free(smtpuv_message *m);

/* ------------------------------------------------------------------------ */
/* Blocking convenience                                                      */
/* ------------------------------------------------------------------------ */

/**
 * Send one message and wait for the outcome, on a private loop (for
 * programs without an event loop; do not call it from a loop's callback).
 * `*result` (when `result` is not NULL) receives a copy of the outcome to
 * free with smtpuv_send_result_free(); it is NULL when the call failed
 * before a message was queued.
 * Returns 0 when the status is SMTPUV_SEND_SENT (check result->error and
 * the recipients for refused ones), else the result's error code (for an
 * unknown outcome the transport error, with status SMTPUV_SEND_UNKNOWN), or
 * smtpuv_client_new()'s and smtpuv_client_send()'s codes.
 */
SMTPUV_EXTERN int smtpuv_send_sync(const smtpuv_options *options,
                                   const smtpuv_envelope *envelope,
                                   const smtpuv_body *body,
                                   smtpuv_send_result **result);

/** smtpuv_send_sync() with the envelope from the message's headers (see
    smtpuv_message_new()); Bcc is not transmitted. Also SMTPUV_EHEADER. */
SMTPUV_EXTERN int smtpuv_send_message_sync(const smtpuv_options *options,
                                           const void *data, size_t len,
                                           smtpuv_send_result **result);

/**
 * A blocking session for code without an event loop (like Python smtplib's
 * SMTP object): one client on a private loop that runs on its own thread,
 * so the connection, TLS and AUTH are set up once and reused by every
 * message (re-opened when the server closed it while idle), unlike
 * smtpuv_send_sync(). Opaque.
 */
typedef struct smtpuv_session_sync smtpuv_session_sync;

/**
 * Start a session: a loop, a client with a copy of `options` (free them
 * whenever) and the thread that runs them (created with every signal
 * blocked: a SIGPIPE raised by its writes never ends the process). Nothing
 * happens on the network until the first message. The allocator of the
 * options must be thread-safe (the default is).
 * Returns 0, SMTPUV_EINVAL (NULL argument, no host set) or SMTPUV_ENOMEM
 * (also: the thread could not be created); `*out` is NULL after a failure.
 */
SMTPUV_EXTERN int smtpuv_session_sync_new(const smtpuv_options *options,
                                          smtpuv_session_sync **out);

/**
 * Send one message on the session and wait for its outcome. Callable from
 * several threads at once: each call blocks for its own message; messages
 * go on the one connection in the order they arrive (pipelined when the
 * server allows). The envelope is copied; the body is used until the call
 * returns (a streaming source's read and rewind functions run on the
 * session's thread meanwhile, as do the trace and token callbacks of the
 * options). `*result` (when `result` is not NULL) receives a copy of the
 * outcome to free with smtpuv_send_result_free(); NULL when the call failed
 * before a message was queued.
 * Returns what smtpuv_send_sync() returns: 0 when sent, else the result's
 * error code or smtpuv_client_send()'s codes; SMTPUV_EINVAL also when
 * called on the session's own thread (from one of its callbacks), which
 * would wait for itself.
 */
SMTPUV_EXTERN int smtpuv_session_sync_send(smtpuv_session_sync *session,
                                           const smtpuv_envelope *envelope,
                                           const smtpuv_body *body,
                                           smtpuv_send_result **result);

/** smtpuv_session_sync_send() with the envelope from the message's headers
    (see smtpuv_message_new()); Bcc is not transmitted. Also
    SMTPUV_EHEADER. */
SMTPUV_EXTERN int smtpuv_session_sync_send_message(smtpuv_session_sync *session,
                                                   const void *data,
                                                   size_t len,
                                                   smtpuv_send_result **result);

/** Messages of the session whose call has not returned yet (any thread). */
SMTPUV_EXTERN size_t smtpuv_session_sync_pending(smtpuv_session_sync *session);

/**
 * End the session: QUIT (a message still on the wire keeps its chance, as
 * with smtpuv_client_close()), close the connection, stop and join the
 * thread, free everything. No other call on the session may be running or
 * start (join the threads that send first). NULL is accepted.
 */
SMTPUV_EXTERN void smtpuv_session_sync_free(smtpuv_session_sync *session);

/* ------------------------------------------------------------------------ */
/* Server probe (src/uv/probe.c; used by smtpuv-send --serverinfo)           */
/* ------------------------------------------------------------------------ */

/**
 * What a server says about itself before any mail is sent. Passed to the
 * probe callback; pointers are valid only during the callback. Fields are
 * only appended (check struct_size).
 */
typedef struct smtpuv_probe_result {
  size_t struct_size;         /**< sizeof(smtpuv_probe_result) */
  int error;                  /**< 0, or the SMTPUV_E* code that stopped the
                                   probe (ENOTLS: TLS required but STARTTLS
                                   not offered; the extensions are still
                                   filled in) */
  smtpuv_phase phase;         /**< where it stopped (QUIT when complete) */
  const char *message;        /**< one line for humans, "" when error is 0 */
  const char *peer;           /**< "127.0.0.1:587" once connected, else "" */
  int greeting_code;          /**< 220, or 0 when none was received */
  const char *greeting;       /**< greeting text, lines joined by "\n" */
  const char *server_name;    /**< first line of the last EHLO reply */
  const char *extensions;     /**< the last EHLO reply's other lines ("SIZE
                                   10485760", "PIPELINING", ...) joined by
                                   "\n"; "" when none */
  const char *extensions_plain; /**< the EHLO reply before STARTTLS when the
                                   session was upgraded, else NULL */
  unsigned ext_flags;         /**< SMTPUV_EXT_* of the last EHLO reply */
  uint64_t max_size;          /**< SIZE limit, 0 when none or unlimited */
  const char *auth_mechanisms; /**< "PLAIN LOGIN" (upper case), "" */
  const char *tls;            /**< TLS summary ("TLSv1.3 ...; subject CN=...;
                                   issuer ...; expires ...") or NULL */
  int authenticated;          /**< smtpuv_client_verify(): 1 when AUTH
                                   succeeded; always 0 for a probe */
  const char *auth_mechanism; /**< smtpuv_client_verify(): the mechanism
                                   that authenticated ("SCRAM-SHA-256"), or
                                   "" */
} smtpuv_probe_result;

/** Probe callback: runs exactly once, after the connection is closed. */
typedef void (*smtpuv_probe_cb)(const smtpuv_probe_result *result,
                                void *data);

/**
 * Connect to the server of `options` and report its greeting, its EHLO
 * extensions (after STARTTLS when TLS is on), its SIZE limit, its AUTH
 * mechanisms and the TLS session with the peer certificate; then QUIT.
 * Nothing but EHLO, STARTTLS and QUIT is sent: no AUTH, no MAIL.
 * The TLS mode, certificate checks, host, port, EHLO name, connect and
 * command timeouts and the trace callback of `options` apply (the options
 * are copied). With SMTPUV_TLS_REQUIRED and no STARTTLS offered the result
 * has error SMTPUV_ENOTLS and the plaintext extensions. A certificate that
 * fails verification stops the probe with SMTPUV_ECERT.
 * Returns 0 (cb will run exactly once, never from inside this call), or
 * without calling cb: SMTPUV_EINVAL (NULL loop, options or cb; no host) or
 * SMTPUV_ENOMEM.
 */
SMTPUV_EXTERN int smtpuv_client_probe(uv_loop_t *loop,
                                      const smtpuv_options *options,
                                      smtpuv_probe_cb cb, void *data);

/**
 * Check the credentials: smtpuv_client_probe(), then AUTH with the
 * credentials or authenticator of `options` (the same mechanism selection,
 * TLS-required guard and plaintext refusal as a send), then QUIT; no MAIL
 * is sent. The result has `authenticated` 1 and `auth_mechanism` on
 * success; otherwise `error` says why (SMTPUV_EAUTH and the server's reply
 * text for refused credentials, SMTPUV_EAUTHMECH, SMTPUV_EPLAINTEXT,
 * SMTPUV_ENOTLS...) and `phase` where (SMTPUV_PHASE_AUTH for the login
 * itself). Like nodemailer's verify().
 * Returns 0 (cb will run exactly once, never from inside this call), or
 * without calling cb: SMTPUV_EINVAL (as for the probe, or no credentials
 * and no authenticator in `options`) or SMTPUV_ENOMEM.
 */
SMTPUV_EXTERN int smtpuv_client_verify(uv_loop_t *loop,
                                       const smtpuv_options *options,
                                       smtpuv_probe_cb cb, void *data);

/* ---------------------------- end of probe ------------------------------ */

#ifdef __cplusplus
}
#endif

#endif /* SMTPUV_CLIENT_H */

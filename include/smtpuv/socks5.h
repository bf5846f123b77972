/* SPDX-License-Identifier: MIT */
/*
 * smtpuv/socks5.h — the SOCKS5 client handshake (RFC 1928), sans-io.
 *
 * A SOCKS5 proxy stands between the client and the SMTP server: the client
 * connects to the proxy, runs this handshake, and from then on the same
 * connection carries the SMTP session (TLS included) as if it went to the
 * server directly. This object only computes bytes: the caller connects,
 * writes what smtpuv_socks5_outgoing() gives, feeds what the proxy sends,
 * and hands everything after the handshake to the SMTP core.
 *
 *   smtpuv_socks5 *s;
 *   smtpuv_socks5_params sp = SMTPUV_SOCKS5_PARAMS_INIT;
 *   sp.host = "mx.example.org"; sp.port = 25;   // resolved by the proxy
 *   smtpuv_socks5_new(NULL, &sp, &s);
 *   loop:
 *     write out smtpuv_socks5_outgoing() / smtpuv_socks5_consumed();
 *     on read(buf, n):
 *       size_t used;
 *       rc = smtpuv_socks5_feed(s, buf, n, &used);
 *       rc < 0: fail with rc (phase SMTPUV_PHASE_PROXY);
 *       rc == 1: tunnel up; feed buf + used, n - used to smtpuv_proto;
 *   smtpuv_socks5_free(s);
 *
 * Methods (RFC 1928 3): "no authentication" always; with a username the
 * client also offers username/password (RFC 1929) and sends the
 * credentials only if the proxy selects that method. The destination is
 * sent as the proxy should use it: a domain name (ATYP 3: the PROXY
 * resolves it, nothing leaks to the local resolver), or an IPv4 or IPv6
 * literal (ATYP 1 / 4; "[::1]" and "::1" both accepted).
 *
 * Every function returns 0 (or the documented non-negative value) or a
 * negative SMTPUV_E* code; a failing feed is sticky (every later call
 * returns the same code) and smtpuv_socks5_error_text() says what the proxy
 * did. Secrets are wiped: the copies of username and password once the
 * request is built, the request once written (consumed) and everything at
 * free. No allocation beyond the object itself.
 */
#ifndef SMTPUV_SOCKS5_H
#define SMTPUV_SOCKS5_H

#include <stddef.h>
#include <stdint.h>

#include "../smtpuv.h"

#ifdef __cplusplus
extern "C" {
#endif

/** One SOCKS5 handshake. Opaque. */
typedef struct smtpuv_socks5 smtpuv_socks5;

/** Where the handshake is. */
typedef enum smtpuv_socks5_state {
  SMTPUV_SOCKS5_METHOD,  /**< method request sent, selection awaited */
  SMTPUV_SOCKS5_AUTH,    /**< username/password sent, status awaited */
  SMTPUV_SOCKS5_CONNECT, /**< CONNECT sent, reply awaited */
  SMTPUV_SOCKS5_DONE,    /**< succeeded: the tunnel is up */
  SMTPUV_SOCKS5_FAILED   /**< failed: see smtpuv_socks5_error() */
} smtpuv_socks5_state;

/** Longest username and password (RFC 1929: one length octet). */
#define SMTPUV_SOCKS5_MAX_CREDENTIAL 255
/** Longest destination host name (RFC 1928: one length octet). */
#define SMTPUV_SOCKS5_MAX_HOST 255

/**
 * Handshake parameters. Use SMTPUV_SOCKS5_PARAMS_INIT; fields are only
 * ever appended and `struct_size` tells the library how many it may read.
 * Every string is copied by smtpuv_socks5_new().
 */
typedef struct smtpuv_socks5_params {
  size_t struct_size;   /**< sizeof(smtpuv_socks5_params) */
  const char *host;     /**< destination: a host name (1..255 printable
                             ASCII characters, no space) the proxy resolves,
                             or an IPv4 / IPv6 literal */
  uint16_t port;        /**< destination port, not 0 */
  const char *username; /**< NULL: offer "no authentication" only; else
                             1..255 bytes (RFC 1929), no NUL */
  const char *password; /**< with a username: 1..255 bytes */
} smtpuv_socks5_params;

#define SMTPUV_SOCKS5_PARAMS_INIT {sizeof(smtpuv_socks5_params), NULL, 0, NULL, NULL}

/**
 * Start a handshake: the method request is ready in the output at once.
 * Returns 0, SMTPUV_ENOMEM, or SMTPUV_EINVAL (NULL out or params, a
 * struct_size smaller than this version's, port 0, an empty, overlong or
 * malformed host, a username or password that is empty or over
 * SMTPUV_SOCKS5_MAX_CREDENTIAL bytes, a password without a username or a
 * username without a password). `mem` may be NULL.
 */
SMTPUV_EXTERN int smtpuv_socks5_new(const smtpuv_mem *mem,
                                    const smtpuv_socks5_params *params,
                                    smtpuv_socks5 **out);

/** Free the handshake, wiping every secret. NULL is accepted. */
SMTPUV_EXTERN void smtpuv_socks5_free(smtpuv_socks5 *s);

/** The bytes waiting to be written (`*len` 0 when none). The pointer stays
    valid until the bytes are consumed or the object is freed. */
SMTPUV_EXTERN void smtpuv_socks5_outgoing(smtpuv_socks5 *s, const void **ptr,
                                          size_t *len);

/** Mark the first `n` pending bytes written (clamped); written
    credentials are wiped. */
SMTPUV_EXTERN void smtpuv_socks5_consumed(smtpuv_socks5 *s, size_t n);

/**
 * Hand the object bytes from the proxy, in any chunking. `*used` (may not
 * be NULL) is set to how many of them belong to the handshake: once it
 * succeeds, the rest is the tunnelled server's (its greeting may share a
 * read with the proxy's last reply) and must go to the SMTP core. Returns
 * 0 (more input needed; every byte used), 1 (the tunnel is up: state
 * DONE), or an error, sticky from then on:
 *   SMTPUV_EINVAL        NULL object, or NULL data with a length;
 *   SMTPUV_ESTATE        the handshake is already DONE;
 *   SMTPUV_EPROXY        the proxy broke the protocol (a version other
 *                        than 5 or, for RFC 1929, 1; a method that was not
 *                        offered; a non-zero reserved byte; an unknown
 *                        address type or reply code);
 *   SMTPUV_EPROXYMETHOD  the proxy accepts none of the offered methods
 *                        (X'FF': it wants credentials, or others);
 *   SMTPUV_EPROXYAUTH    the proxy refused the username/password;
 *   SMTPUV_EPROXYFAIL ... SMTPUV_EPROXYATYP: the CONNECT reply's failure
 *                        codes 1..8 of RFC 1928 6 (see smtpuv.h).
 */
SMTPUV_EXTERN int smtpuv_socks5_feed(smtpuv_socks5 *s, const void *data,
                                     size_t len, size_t *used);

/** Current state. SMTPUV_SOCKS5_FAILED for NULL. */
SMTPUV_EXTERN smtpuv_socks5_state smtpuv_socks5_state_of(
    const smtpuv_socks5 *s);

/** The sticky error (0 if none; SMTPUV_EINVAL for NULL). */
SMTPUV_EXTERN int smtpuv_socks5_error(const smtpuv_socks5 *s);

/** What went wrong, with the proxy's bytes, e.g. "CONNECT reply 5:
    connection refused by the destination host"; "" when nothing did. */
SMTPUV_EXTERN const char *smtpuv_socks5_error_text(const smtpuv_socks5 *s);

/** The CONNECT reply's REP field (RFC 1928 6) once it arrived, else -1. */
SMTPUV_EXTERN int smtpuv_socks5_reply_code(const smtpuv_socks5 *s);

/**
 * After DONE: the address the proxy bound for the tunnel (BND.ADDR and
 * BND.PORT), as text ("192.0.2.1", "2001:db8::1" or a name) and port.
 * Returns 0, or SMTPUV_ESTATE before DONE, SMTPUV_EINVAL for NULL
 * arguments. The string lives as long as the object.
 */
SMTPUV_EXTERN int smtpuv_socks5_bound(const smtpuv_socks5 *s,
                                      const char **addr, uint16_t *port);

#ifdef __cplusplus
}
#endif

#endif /* SMTPUV_SOCKS5_H */

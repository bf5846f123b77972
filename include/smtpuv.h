/* SPDX-License-Identifier: MIT */
/**
 * @file
 * smtpuv — an asynchronous ESMTP client library.
 *
 * This umbrella header carries what every layer shares: version macros and
 * the runtime version query, the error codes (one X-macro list, so codes,
 * names and messages cannot drift), and the per-object allocator.
 *
 * Layers (each has its own header, all included from here):
 *   smtpuv/protocol.h  sans-io ESMTP state machine (smtpuv_proto_*), libc only
 *   smtpuv/auth.h      SASL authenticators (smtpuv_auth_*), OpenSSL libcrypto
 *   smtpuv/socks5.h    sans-io SOCKS5 proxy handshake (smtpuv_socks5_*), libc
 *   smtpuv/client.h    libuv client (smtpuv_client_*), libuv + OpenSSL libssl
 *
 * Conventions used by every function of the library:
 *   - functions return 0 (or a documented non-negative value) on success and a
 *     negative SMTPUV_E* code on failure; a failing call changes nothing;
 *   - a function that takes a callback and fails never calls that callback;
 *   - the library never prints, never exits or aborts on bad input, and never
 *     initialises or tears down OpenSSL's global state.
 */
#ifndef SMTPUV_H
#define SMTPUV_H

#include <stddef.h>

#include "smtpuv/version.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Marks every exported function. On ELF platforms the library is compiled
 * with hidden visibility and this makes a symbol visible. On Windows (as
 * libuv's UV_EXTERN) it is `__declspec(dllexport)` while the DLL itself is
 * compiled (SMTPUV_BUILDING, set by the build), nothing when the static
 * library is built or used (SMTPUV_STATIC: the CMake targets and the .pc files
 * of a static build define it for their users), and `__declspec(dllimport)`
 * for users of the DLL (the default).
 */
#if defined(_WIN32) || defined(__CYGWIN__)
#if defined(SMTPUV_STATIC)
#define SMTPUV_EXTERN
#elif defined(SMTPUV_BUILDING)
#define SMTPUV_EXTERN __declspec(dllexport)
#else
#define SMTPUV_EXTERN __declspec(dllimport)
#endif
#elif defined(__GNUC__) || defined(__clang__)
#define SMTPUV_EXTERN __attribute__((visibility("default")))
#else
#define SMTPUV_EXTERN
#endif

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */
/* ------------------------------------------------------------------------ */

/**
 * Every error code as XX(NAME, value, message), the one list the enum, the
 * names and the messages are generated from. Ranges:
 *   -1 .. -99     misuse and local refusals: nothing was written to the wire;
 *   -100 .. -199  the server's answer or behaviour (protocol, AUTH, replies);
 *   -200 .. -299  transport: resolution, connection, timeouts, TLS.
 */
#define SMTPUV_ERRNO_MAP(XX)                                                   \
  XX(EINVAL, -1, "invalid argument")                                           \
  XX(ESTATE, -2, "command not allowed in the current protocol state")          \
  XX(EBUSY, -3, "a reply is still awaited and the server does not pipeline")   \
  XX(ENOMEM, -4, "out of memory")                                              \
  XX(EADDRESS, -5,                                                             \
     "address refused: it contains CR, LF, NUL, '<' or '>' or is malformed")   \
  XX(ENOEXT, -6, "the server does not offer a required extension")             \
  XX(E8BIT, -7, "8-bit data needs 8BITMIME (or BINARYMIME) from the server")   \
  XX(ETOOBIG, -8, "message larger than the server's SIZE limit")               \
  XX(ENORCPT, -9, "no recipient was accepted")                                 \
  XX(EAGAIN, -10, "not ready yet: try again after more input")                 \
  XX(ECANCELED, -11, "operation canceled")                                     \
  XX(ECLOSED, -12, "the client is closing or closed")                          \
  XX(EBODY, -13, "the message body source failed")                             \
  XX(EHEADER, -14, "message headers are malformed or ambiguous")              \
  XX(ELIMIT, -15, "a built-in limit was exceeded")                             \
  XX(EBINARY, -16,                                                             \
     "NUL bytes or lines over 998 octets need BINARYMIME and CHUNKING")        \
  XX(EFULL, -17, "the client's queue is at its high-water mark")               \
  XX(EPROTO, -100, "the server violated the SMTP protocol")                    \
  XX(EINJECT, -101,                                                            \
     "the server sent data after STARTTLS's 220 (response injection)")         \
  XX(ETEMPFAIL, -102, "the server answered with a temporary failure (4xx)")    \
  XX(EPERMFAIL, -103, "the server answered with a permanent failure (5xx)")    \
  XX(ESHUTDOWN, -104, "the server is closing the session (421)")               \
  XX(EAUTH, -110, "authentication failed")                                     \
  XX(EAUTHMECH, -111, "no authentication mechanism fits the server's offer")   \
  XX(EPLAINTEXT, -112,                                                         \
     "refusing to send credentials over an unencrypted connection")           \
  XX(EAUTHSERVER, -113, "the server failed to prove its identity (SCRAM)")     \
  XX(ECREDENTIALS, -114,                                                       \
     "credentials cannot be encoded for this mechanism")                       \
  XX(ERESOLVE, -200, "host name could not be resolved")                        \
  XX(ECONNECT, -201, "connection failed")                                      \
  XX(ETIMEDOUT, -202, "timed out")                                             \
  XX(ECONNLOST, -203, "connection closed or reset by the server")             \
  XX(EIO, -204, "I/O error")                                                   \
  XX(ETLS, -210, "TLS handshake or record error")                              \
  XX(ECERT, -211, "the server's certificate could not be verified")           \
  XX(ENOTLS, -212, "TLS is required but the server does not offer STARTTLS") \
  XX(EPROXY, -220, "the SOCKS5 proxy violated the protocol (RFC 1928)")        \
  XX(EPROXYMETHOD, -221,                                                       \
     "the SOCKS5 proxy accepts none of the offered authentication methods")   \
  XX(EPROXYAUTH, -222,                                                         \
     "the SOCKS5 proxy refused the username/password (RFC 1929)")              \
  XX(EPROXYFAIL, -223, "SOCKS5 proxy reply 1: general SOCKS server failure")   \
  XX(EPROXYRULES, -224,                                                        \
     "SOCKS5 proxy reply 2: connection not allowed by the proxy's ruleset")    \
  XX(EPROXYNETUNREACH, -225, "SOCKS5 proxy reply 3: network unreachable")      \
  XX(EPROXYHOSTUNREACH, -226, "SOCKS5 proxy reply 4: host unreachable")        \
  XX(EPROXYREFUSED, -227,                                                      \
     "SOCKS5 proxy reply 5: connection refused by the destination host")      \
  XX(EPROXYTTL, -228, "SOCKS5 proxy reply 6: TTL expired")                     \
  XX(EPROXYCMD, -229, "SOCKS5 proxy reply 7: command not supported")           \
  XX(EPROXYATYP, -230, "SOCKS5 proxy reply 8: address type not supported")

/** The error codes: SMTPUV_OK and one SMTPUV_<NAME> per SMTPUV_ERRNO_MAP()
    entry (SMTPUV_EINVAL, SMTPUV_EPROTO, ...). */
typedef enum smtpuv_errno {
  SMTPUV_OK = 0, /**< success */
/** @cond INTERNAL */
#define SMTPUV_ERRNO_ENUM_(name, val, msg) SMTPUV_##name = (val),
  SMTPUV_ERRNO_MAP(SMTPUV_ERRNO_ENUM_)
#undef SMTPUV_ERRNO_ENUM_
/** @endcond */
  SMTPUV_ERRNO_MAX_ = -1000 /**< below every code (keeps the enum signed) */
} smtpuv_errno;

/** A static English message for an error code ("unknown error" otherwise). */
SMTPUV_EXTERN const char *smtpuv_strerror(int err);

/** The code's name ("SMTPUV_EPROTO"), or "SMTPUV_UNKNOWN". */
SMTPUV_EXTERN const char *smtpuv_err_name(int err);

/* ------------------------------------------------------------------------ */
/* Version                                                                   */
/* ------------------------------------------------------------------------ */

/** What smtpuv_version() returns: the linked library's version. */
typedef struct smtpuv_info {
  int age;                 /**< 1 for this layout; grows when fields append */
  unsigned version_num;    /**< SMTPUV_VERSION_NUM of the linked library */
  const char *version_str; /**< SMTPUV_VERSION of the linked library */
} smtpuv_info;

/**
 * Version of the library actually linked. Returns NULL if it is older than
 * `least_version` (a SMTPUV_VERSION_NUM value; 0 accepts any).
 */
SMTPUV_EXTERN const smtpuv_info *smtpuv_version(unsigned least_version);

/* ------------------------------------------------------------------------ */
/* Allocator                                                                 */
/* ------------------------------------------------------------------------ */

/**
 * Per-object allocator. Every object of the library takes an optional
 * `const smtpuv_mem *`; NULL means the C library's malloc family. The struct
 * is copied, so it need not outlive the call. All four functions must be set.
 * There is no process-global allocator: two users of smtpuv in one process
 * (say two Node addons) never see each other's choice.
 */
typedef struct smtpuv_mem {
  void *user; /**< passed back as the last argument of every function */
  void *(*malloc)(size_t size, void *user); /**< as malloc(3) */
  void (*free)(void *ptr, void *user);      /**< as free(3); NULL happens */
  void *(*calloc)(size_t nmemb, size_t size, void *user); /**< as calloc(3) */
  void *(*realloc)(void *ptr, size_t size, void *user);   /**< as realloc(3) */
} smtpuv_mem;

/** The default allocator (malloc, free, calloc, realloc). */
SMTPUV_EXTERN const smtpuv_mem *smtpuv_mem_default(void);

#ifdef __cplusplus
}
#endif

#include "smtpuv/protocol.h"
#include "smtpuv/auth.h"
#include "smtpuv/socks5.h"

#endif /* SMTPUV_H */

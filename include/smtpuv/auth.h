/* SPDX-License-Identifier: MIT */
/**
 * @file
 * smtpuv/auth.h — SASL authenticators for SMTP AUTH (RFC 4954).
 *
 * Two levels:
 *
 *  1. An AUTHENTICATOR (smtpuv_auth) knows one SASL mechanism and works on
 *     raw bytes: an optional initial response, then one response for each
 *     decoded server challenge. The built-in ones are PLAIN (RFC 4616),
 *     LOGIN, CRAM-MD5 (RFC 2195), SCRAM-SHA-1 and SCRAM-SHA-256 (RFC 5802,
 *     RFC 7677), XOAUTH2 (Google/Microsoft) and OAUTHBEARER (RFC 7628), plus
 *     `auto`, which picks one of them from what the server advertises. An
 *     application implements its own mechanism with smtpuv_auth_ops.
 *
 *  2. A SESSION (smtpuv_auth_session) is a sans-io driver that runs an
 *     authenticator against a smtpuv_proto: it issues AUTH (with the initial
 *     response when it fits on the command line), base64-decodes each 334
 *     challenge, steps the authenticator, base64-encodes and sends the
 *     response, and ends with the server's 235 or failure reply.
 *
 * Secrets: passwords, tokens, derived keys (SCRAM's SaltedPassword,
 * ClientKey...) and every buffer that held a response are wiped with
 * OPENSSL_cleanse() before their memory is freed. No error text of this
 * layer contains a password, token or response (server texts are quoted,
 * they are not secrets). Traces are the transport's business: the client
 * redacts AUTH payloads.
 *
 * Cryptography (base64, HMAC, digests, PBKDF2, randomness) is OpenSSL's
 * libcrypto; nothing is hand-rolled.
 *
 * Threads: an authenticator and its session belong to one thread (the event
 * loop's); smtpuv_auth_token_provide() must be called on that thread.
 *
 * ------------------------------------------------------------------------
 * How `auto` chooses (smtpuv_auth_select)
 * ------------------------------------------------------------------------
 *
 * With an OAuth token source (token_cb or token in the credentials), the
 * OAuth mechanisms come first: OAUTHBEARER (the IETF standard, RFC 7628)
 * before XOAUTH2 (the older Google/Microsoft format, same bearer token).
 * A bearer token is what the account owner handed out; a password, if
 * also given, is only used when the server offers neither.
 *
 * With a password, in this order:
 *   SCRAM-SHA-256  the password never crosses the wire, a replayed exchange
 *                  is useless, and the server proves that it holds the
 *                  verifier (a wrong server signature fails the session with
 *                  SMTPUV_EAUTHSERVER), so a man in the middle that got past
 *                  TLS cannot log in with what it saw and, with the
 *                  iteration floor (SMTPUV_AUTH_SCRAM_MIN_ITERATIONS), can
 *                  only run a slow offline dictionary attack on the proof;
 *   SCRAM-SHA-1    the same protocol with a weaker hash;
 *   PLAIN          sends the password itself, which is fine inside TLS (the
 *                  client refuses AUTH over plaintext by default) and is
 *                  supported by every server; the server may store only a
 *                  strong one-way hash of the password;
 *   LOGIN          PLAIN's undocumented ancestor (draft-murchison-sasl-login),
 *                  same security, two round trips, no authorization id;
 *   CRAM-MD5       last: the server must keep a plaintext-equivalent secret,
 *                  it rests on MD5, is deprecated (RFC 8314 era), and the
 *                  exchange can be brute-forced offline by anyone who sees it.
 * SCRAM is skipped when the username or password is not printable ASCII
 * (smtpuv does not implement SASLprep), falling back to PLAIN. Likewise a
 * mechanism whose rules the credentials break is skipped rather than chosen
 * to fail: LOGIN and CRAM-MD5 with an authorization id, CRAM-MD5 with a
 * space or control character in the username, XOAUTH2 with a username that
 * is not printable ASCII without spaces, OAUTHBEARER with a non-printable
 * authorization id or host.
 * Mechanisms in `disabled` are never chosen.
 */
#ifndef SMTPUV_AUTH_H
#define SMTPUV_AUTH_H

#include <stddef.h>

#include "../smtpuv.h"
#include "protocol.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The protocol session (smtpuv/protocol.h). Declared again (C11 allows it)
    because protocol.h, when included first, pulls in smtpuv.h and so this
    header before its own declarations. */
typedef struct smtpuv_proto smtpuv_proto;
struct smtpuv_reply;

/* ------------------------------------------------------------------------ */
/* Mechanisms and credentials                                                */
/* ------------------------------------------------------------------------ */

/** The built-in mechanisms. */
typedef enum smtpuv_auth_mech {
  SMTPUV_AUTH_MECH_NONE = 0,
  SMTPUV_AUTH_MECH_PLAIN,
  SMTPUV_AUTH_MECH_LOGIN,
  SMTPUV_AUTH_MECH_CRAM_MD5,
  SMTPUV_AUTH_MECH_SCRAM_SHA_1,
  SMTPUV_AUTH_MECH_SCRAM_SHA_256,
  SMTPUV_AUTH_MECH_XOAUTH2,
  SMTPUV_AUTH_MECH_OAUTHBEARER,
  SMTPUV_AUTH_MECH_COUNT_
} smtpuv_auth_mech;

/** Bit of a mechanism in smtpuv_auth_credentials.disabled. */
#define SMTPUV_AUTH_MECH_BIT(m) (1u << (unsigned)(m))

/** SASL name of a built-in mechanism ("SCRAM-SHA-256"), "" for NONE or an
    unknown value. */
SMTPUV_EXTERN const char *smtpuv_auth_mech_name(smtpuv_auth_mech mech);

/** The built-in mechanism called `name` (any case), or
    SMTPUV_AUTH_MECH_NONE. */
SMTPUV_EXTERN smtpuv_auth_mech smtpuv_auth_mech_from_name(const char *name);

/** An authenticator. Opaque. */
typedef struct smtpuv_auth smtpuv_auth;

/**
 * OAuth token source. Called when an OAuth mechanism needs a bearer token:
 * before the first AUTH, and once more when the server rejected the token
 * (`rejected` = 1: the previous token has expired or been revoked; fetch a
 * fresh one, do not return a cached copy).
 *
 * Answer exactly once per call with smtpuv_auth_token_provide() or
 * smtpuv_auth_token_fail(), either from inside the callback (synchronous)
 * or later from the same thread (say when an HTTP request to the token
 * endpoint completes). A session waiting for the answer calls its ready
 * callback when it arrives.
 *
 * Rules: answer every call, even when the session that asked has been
 * freed meanwhile (the answer is kept for the next session; an unanswered
 * request makes every later session on this authenticator wait for it).
 * Inside the callback do not free the authenticator or a session attached
 * to it (it runs inside smtpuv_auth_begin()/smtpuv_auth_session_start());
 * later, from the ready callback, both may be freed. Never answer after
 * smtpuv_auth_free(): cancel your request first. A second answer to the
 * same call just replaces the held token (it is never sent twice).
 */
typedef void (*smtpuv_auth_token_cb)(smtpuv_auth *auth, int rejected,
                                     void *data);

/**
 * What the application knows. Zero-initialise (or SMTPUV_AUTH_CREDENTIALS_INIT);
 * fields are only ever appended and `struct_size` says how many are read
 * (whole fields only).
 * Strings are copied (secrets into memory that is wiped when freed): they
 * need not outlive the call that takes them.
 */
typedef struct smtpuv_auth_credentials {
  size_t struct_size;   /**< sizeof(smtpuv_auth_credentials) */
  const char *username; /**< authentication identity: PLAIN authcid, LOGIN,
                             CRAM-MD5, SCRAM n=, XOAUTH2 user= */
  const char *password; /**< PLAIN, LOGIN, CRAM-MD5, SCRAM */
  const char *authzid;  /**< optional authorization identity (act as this
                             user): PLAIN, SCRAM a=, OAUTHBEARER a=
                             (OAUTHBEARER uses `username` when NULL) */
  smtpuv_auth_token_cb token_cb; /**< OAuth token source, or NULL */
  void *token_data;     /**< passed to token_cb */
  const char *token;    /**< a fixed OAuth token (used before asking
                             token_cb; without token_cb a rejected token
                             ends the session) */
  const char *host;     /**< OAUTHBEARER host= (optional) */
  unsigned port;        /**< OAUTHBEARER port= (0: not sent) */
  unsigned disabled;    /**< SMTPUV_AUTH_MECH_BIT()s auto never picks */
} smtpuv_auth_credentials;

/** Initialiser of a smtpuv_auth_credentials: struct_size set, the rest
    empty: `smtpuv_auth_credentials c = SMTPUV_AUTH_CREDENTIALS_INIT;` */
#define SMTPUV_AUTH_CREDENTIALS_INIT                                           \
  {sizeof(smtpuv_auth_credentials), NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, 0}

/**
 * Choose the mechanism `auto` would use (see the top of this file) from the
 * server's advertised list `offered` (as smtpuv_proto_auth_mechanisms()
 * gives it: names separated by spaces, any case) and the credentials.
 *
 * Returns 0 and sets `*mech`; SMTPUV_EAUTHMECH when nothing fits, with a
 * sentence naming what the server offers and what the credentials allow
 * written to `errbuf` (NUL-terminated, truncated to `errlen`; may be NULL);
 * SMTPUV_EINVAL for NULL arguments or a bad struct_size.
 */
SMTPUV_EXTERN int smtpuv_auth_select(const char *offered,
                                     const smtpuv_auth_credentials *creds,
                                     smtpuv_auth_mech *mech, char *errbuf,
                                     size_t errlen);

/* ------------------------------------------------------------------------ */
/* Built-in authenticators                                                   */
/* ------------------------------------------------------------------------ */

/*
 * Every constructor copies its strings, returns 0 and sets `*out`, or
 * returns SMTPUV_EINVAL (NULL `out` or a NULL required argument) or
 * SMTPUV_ENOMEM. `mem` may be NULL. Free with smtpuv_auth_free().
 * The rules on the credentials' content (non-empty, ASCII for SCRAM...) are
 * checked when an attempt begins, so the failure carries a text:
 * smtpuv_auth_begin() / smtpuv_auth_session_start() return
 * SMTPUV_ECREDENTIALS and the error text says what is wrong.
 */

/** PLAIN (RFC 4616): "authzid NUL username NUL password", sent as the initial
    response. `authzid` may be NULL or "". Username and password must be
    non-empty (UTF-8 is passed through). */
SMTPUV_EXTERN int smtpuv_auth_plain_new(const smtpuv_mem *mem,
                                        const char *authzid,
                                        const char *username,
                                        const char *password,
                                        smtpuv_auth **out);

/** LOGIN: the username answers the first challenge ("Username:"), the
    password the second; no initial response. Both non-empty. */
SMTPUV_EXTERN int smtpuv_auth_login_new(const smtpuv_mem *mem,
                                        const char *username,
                                        const char *password,
                                        smtpuv_auth **out);

/** CRAM-MD5 (RFC 2195): answers the server's challenge with
    "username SP hex(HMAC-MD5(password, challenge))". Username must not
    contain a space or control character. */
SMTPUV_EXTERN int smtpuv_auth_cram_md5_new(const smtpuv_mem *mem,
                                           const char *username,
                                           const char *password,
                                           smtpuv_auth **out);

/**
 * SCRAM-SHA-1 / SCRAM-SHA-256 (RFC 5802 / RFC 7677) without channel binding
 * (GS2 header "n,," or "n,a=authzid,"). The client nonce comes from
 * RAND_bytes(); the server's nonce must extend it (printable, no ','); the
 * iteration count must be SMTPUV_AUTH_SCRAM_MIN_ITERATIONS..
 * SMTPUV_AUTH_SCRAM_MAX_ITERATIONS; the server signature is checked in
 * constant time, and a wrong one (or a 235 without it) fails the session
 * with SMTPUV_EAUTHSERVER. A server-final "e=..." fails with SMTPUV_EAUTH.
 * SASLprep is not implemented: username, password and authzid must be
 * printable ASCII (else SMTPUV_ECREDENTIALS; use PLAIN inside TLS).
 */
SMTPUV_EXTERN int smtpuv_auth_scram_sha1_new(const smtpuv_mem *mem,
                                             const char *authzid,
                                             const char *username,
                                             const char *password,
                                             smtpuv_auth **out);
/** SCRAM-SHA-256: as smtpuv_auth_scram_sha1_new(), with SHA-256. */
SMTPUV_EXTERN int smtpuv_auth_scram_sha256_new(const smtpuv_mem *mem,
                                               const char *authzid,
                                               const char *username,
                                               const char *password,
                                               smtpuv_auth **out);

/** Smallest SCRAM iteration count accepted from a server (RFC 7677 section
    4, RFC 5802 section 5.1): whoever answers in the server's place chooses
    salt and count, and a low count would let it test password guesses
    against the client's proof cheaply offline. A lower count fails the
    exchange with SMTPUV_EPROTO. */
#define SMTPUV_AUTH_SCRAM_MIN_ITERATIONS 4096

/** Largest SCRAM iteration count accepted from a server (a larger one would
    let a server make the client spin). */
#define SMTPUV_AUTH_SCRAM_MAX_ITERATIONS 1000000

/**
 * XOAUTH2: initial response "user=U\x01auth=Bearer T\x01\x01". When the
 * server rejects the token it sends a 334 whose decoded text is a JSON
 * error; the authenticator answers it with an empty response (as the
 * format requires) and keeps the JSON for the error text
 * ("XOAUTH2: {\"status\":\"401\",...}"). Needs `username`. Token: `token_cb`
 * (may answer later) and/or a fixed token given with
 * smtpuv_auth_token_provide() before the session starts.
 */
SMTPUV_EXTERN int smtpuv_auth_xoauth2_new(const smtpuv_mem *mem,
                                          const char *username,
                                          smtpuv_auth_token_cb token_cb,
                                          void *token_data, smtpuv_auth **out);

/**
 * OAUTHBEARER (RFC 7628): initial response
 * "n,a=AUTHZID,\x01host=H\x01port=P\x01auth=Bearer T\x01\x01" (a= omitted
 * when `authzid` is NULL, host= when `host` is NULL, port= when `port` is 0).
 * A 334 error challenge (JSON) is answered with "\x01" as RFC 7628 3.2.3
 * requires and its JSON becomes the error text. The token must be an RFC
 * 6750 b64token (else SMTPUV_ECREDENTIALS when the session starts).
 */
SMTPUV_EXTERN int smtpuv_auth_oauthbearer_new(const smtpuv_mem *mem,
                                              const char *authzid,
                                              const char *host, unsigned port,
                                              smtpuv_auth_token_cb token_cb,
                                              void *token_data,
                                              smtpuv_auth **out);

/**
 * The built-in mechanism `mech` from a credentials struct (the fields the
 * mechanism uses; the rules of the constructors above). Returns 0,
 * SMTPUV_EINVAL (unknown mech, NULL argument, bad struct_size),
 * SMTPUV_ENOMEM, SMTPUV_ECREDENTIALS.
 */
SMTPUV_EXTERN int smtpuv_auth_mech_new(const smtpuv_mem *mem,
                                       smtpuv_auth_mech mech,
                                       const smtpuv_auth_credentials *creds,
                                       smtpuv_auth **out);

/**
 * `auto`: an authenticator that picks its mechanism each time a session
 * starts, with smtpuv_auth_select() on the server's advertised list, and
 * then behaves exactly like that mechanism (its name becomes the chosen
 * one's). Needs at least a password (with a username) or a token source.
 * Returns 0, SMTPUV_EINVAL, SMTPUV_ENOMEM. When nothing fits,
 * smtpuv_auth_session_start() fails with SMTPUV_EAUTHMECH and the
 * session's error text names the server's mechanisms.
 */
SMTPUV_EXTERN int smtpuv_auth_auto_new(const smtpuv_mem *mem,
                                       const smtpuv_auth_credentials *creds,
                                       smtpuv_auth **out);

/** Free an authenticator, wiping its secrets. NULL is accepted. It must not
    be attached to a live session. */
SMTPUV_EXTERN void smtpuv_auth_free(smtpuv_auth *auth);

/** The SASL mechanism name ("PLAIN"); for `auto`, "AUTO" until a session
    selected one, then the selected name. */
SMTPUV_EXTERN const char *smtpuv_auth_name(const smtpuv_auth *auth);

/** Why the last begin/step failed, or what the server complained about in a
    challenge (XOAUTH2/OAUTHBEARER JSON, SCRAM e=); "" if nothing. Never
    contains a secret. */
SMTPUV_EXTERN const char *smtpuv_auth_error_text(const smtpuv_auth *auth);

/* ------------------------------------------------------------------------ */
/* OAuth tokens                                                              */
/* ------------------------------------------------------------------------ */

/**
 * Hand the authenticator a bearer token (copied; wiped when replaced or
 * freed). Call it in answer to the token callback — now or later — or
 * before the first session to set a fixed token. When a session is waiting
 * for it, the session's ready callback is called (after the token is
 * stored; not when called from inside the token callback itself).
 * Returns 0, SMTPUV_EINVAL (NULL, or a token with a control character,
 * space or non-ASCII byte), SMTPUV_ENOMEM (the request stays pending).
 */
SMTPUV_EXTERN int smtpuv_auth_token_provide(smtpuv_auth *auth,
                                            const char *token);

/**
 * Answer the token callback with a failure: the waiting session ends with
 * `err` (a negative SMTPUV_E* code; anything else means SMTPUV_EAUTH) and
 * the error text "OAuth token: <reason>" (`reason` may be NULL; it must not
 * contain the token). Wakes a waiting session like provide() does.
 * Returns 0 or SMTPUV_EINVAL.
 */
SMTPUV_EXTERN int smtpuv_auth_token_fail(smtpuv_auth *auth, int err,
                                         const char *reason);

/* ------------------------------------------------------------------------ */
/* Application-defined mechanisms                                            */
/* ------------------------------------------------------------------------ */

/*
 * A mechanism is a smtpuv_auth_ops table plus a state pointer. The session
 * calls begin() once per attempt (its smtpuv_auth_respond(), if any, is the
 * initial response), step() for every 334 challenge (already base64-decoded;
 * what step() passes to smtpuv_auth_respond() is base64-encoded and sent),
 * success() on 235, destroy() from smtpuv_auth_free(). Every response buffer
 * is wiped by the library; wipe your own state in destroy(). Example, a
 * mechanism "X-TOKEN" that sends a fixed secret after the server's
 * challenge "ready":
 *
 *   static int xt_step(smtpuv_auth *a, void *st, const unsigned char *c,
 *                      size_t n) {
 *     if (n != 5 || memcmp(c, "ready", 5) != 0) {
 *       smtpuv_auth_set_error(a, "X-TOKEN: unexpected challenge");
 *       return SMTPUV_EPROTO;             // the session sends "*"
 *     }
 *     return smtpuv_auth_respond(a, st, strlen(st));
 *   }
 *   static void xt_destroy(smtpuv_auth *a, void *st) {
 *     (void)a;
 *     OPENSSL_cleanse(st, strlen(st));
 *     free(st);
 *   }
 *   static const smtpuv_auth_ops xt_ops = {
 *       sizeof(smtpuv_auth_ops), "X-TOKEN", 0,
 *       NULL,          // begin: no initial response
 *       xt_step, NULL, xt_destroy};
 *   ...
 *   char *secret = strdup("s3cr3t");
 *   if (smtpuv_auth_new(NULL, &xt_ops, secret, &auth) != 0)
 *     free(secret);                       // still ours on failure
 */

/** smtpuv_auth_ops.flags */
enum {
  /** A 535 reply may be retried once: begin() is then called again with
      SMTPUV_AUTH_BEGIN_RETRY (the OAuth mechanisms refresh their token). */
  SMTPUV_AUTH_OPS_RETRY_ON_REJECT = 1u << 0
};

/** begin() flags */
enum {
  /** This attempt follows a rejection (535) of the previous one. */
  SMTPUV_AUTH_BEGIN_RETRY = 1u << 0
};

/**
 * The interface of a mechanism, the C counterpart of smtpproto's
 * SMTPAuthenticator. Callbacks report their output through the `auth`
 * handle they receive: smtpuv_auth_respond() for the bytes to send (raw:
 * the session base64-encodes them) and smtpuv_auth_set_error() for a
 * failure reason (never put a secret there).
 */
typedef struct smtpuv_auth_ops {
  size_t struct_size; /**< sizeof(smtpuv_auth_ops); fields are only ever
                           appended, the whole fields it covers are read */
  /** SASL mechanism name: 1..20 characters of A-Z 0-9 - _ (RFC 4422);
      copied. */
  const char *name;
  unsigned flags; /**< SMTPUV_AUTH_OPS_* */
  /**
   * Optional (NULL: no initial response, nothing to check).
   * Start an attempt (also called again after it returned SMTPUV_EAGAIN and
   * the mechanism called smtpuv_auth_wake()). Call smtpuv_auth_respond() to
   * give the initial response (length 0 is an empty one, sent as "="); not
   * calling it means no initial response. Return 0, SMTPUV_EAGAIN (not
   * available yet: call smtpuv_auth_wake() when it is) or a negative code.
   */
  int (*begin)(smtpuv_auth *auth, void *state, unsigned flags);
  /**
   * A decoded server challenge (`len` bytes, any content: it comes from the
   * server, validate it; valid during the call only; not NUL-terminated).
   * Call smtpuv_auth_respond() with the answer (not calling it sends an
   * empty response). Return 0 or a negative code: the session then cancels
   * the exchange ("*") and reports that code. Required.
   */
  int (*step)(smtpuv_auth *auth, void *state, const unsigned char *challenge,
              size_t len);
  /** Optional: the server said 235. Return 0 to accept, or a negative code
      (say SMTPUV_EAUTHSERVER when the server never proved itself). */
  int (*success)(smtpuv_auth *auth, void *state);
  /** Optional: free `state`, wiping its secrets. Called by
      smtpuv_auth_free(). */
  void (*destroy)(smtpuv_auth *auth, void *state);
} smtpuv_auth_ops;

/**
 * Wrap an application mechanism. `ops` is copied; `state` is owned by the
 * authenticator from a successful return on (destroy() frees it). Returns 0,
 * SMTPUV_EINVAL (NULL ops/out/step, bad name or struct_size), SMTPUV_ENOMEM
 * (then `state` is still the caller's).
 */
SMTPUV_EXTERN int smtpuv_auth_new(const smtpuv_mem *mem,
                                  const smtpuv_auth_ops *ops, void *state,
                                  smtpuv_auth **out);

/** From inside begin()/step(): the bytes to send (copied into memory that
    is wiped later). Returns 0, SMTPUV_EINVAL, SMTPUV_ENOMEM. */
SMTPUV_EXTERN int smtpuv_auth_respond(smtpuv_auth *auth, const void *data,
                                      size_t len);

/** Set the error text (copied, truncated to 255 bytes). Returns 0 or
    SMTPUV_EINVAL. */
SMTPUV_EXTERN int smtpuv_auth_set_error(smtpuv_auth *auth, const char *text);

/** A begin() that returned SMTPUV_EAGAIN is ready now: the waiting session
    calls its ready callback. No-op when nobody waits. */
SMTPUV_EXTERN void smtpuv_auth_wake(smtpuv_auth *auth);

/* ------------------------------------------------------------------------ */
/* Mechanism level, without SMTP                                             */
/* ------------------------------------------------------------------------ */

/*
 * These run an authenticator on raw (decoded) bytes, for tests or for
 * another protocol; an SMTP client uses a session instead. Responses point
 * into the authenticator and stay valid until its next call or free.
 */

/**
 * Start an attempt. `*resp` is NULL when the mechanism has no initial
 * response (else `*len` bytes, possibly 0). Returns 0, SMTPUV_EAGAIN (an
 * OAuth token is awaited: call again after the token arrives), or a
 * negative code with smtpuv_auth_error_text() set (SMTPUV_ECREDENTIALS...).
 * With SMTPUV_AUTH_BEGIN_RETRY an OAuth mechanism discards its token and
 * asks the token callback for a fresh one (rejected = 1).
 */
SMTPUV_EXTERN int smtpuv_auth_begin(smtpuv_auth *auth, unsigned flags,
                                    const unsigned char **resp, size_t *len);

/** Answer one decoded challenge. Returns 0 with the response in
    `*resp`/`*len` (never NULL), or a negative code (see ops.step). */
SMTPUV_EXTERN int smtpuv_auth_step(smtpuv_auth *auth,
                                   const unsigned char *challenge, size_t clen,
                                   const unsigned char **resp, size_t *len);

/** The server reported success: 0, or a negative code when the mechanism
    does not accept it (SCRAM without a verified server signature:
    SMTPUV_EAUTHSERVER). */
SMTPUV_EXTERN int smtpuv_auth_success(smtpuv_auth *auth);

/* ------------------------------------------------------------------------ */
/* Session: the driver against smtpuv_proto                                   */
/* ------------------------------------------------------------------------ */

/** Run one AUTH exchange on a smtpuv_proto. Opaque. */
typedef struct smtpuv_auth_session smtpuv_auth_session;

/** Called when a session that returned SMTPUV_EAGAIN can go on (the token
    arrived or failed): call smtpuv_auth_session_resume(), from inside the
    callback or later. */
typedef void (*smtpuv_auth_ready_cb)(smtpuv_auth_session *session,
                                     void *data);

/** Returned while the exchange goes on: flush the output, feed replies. */
#define SMTPUV_AUTH_PENDING 1

/** Most challenges accepted in one exchange before the session cancels it
    (SMTPUV_EPROTO): a server cannot keep the client answering forever. */
#define SMTPUV_AUTH_MAX_STEPS 16

/**
 * Create a session for `proto` (borrowed: it must outlive the session) and
 * `auth` (borrowed, attached until smtpuv_auth_session_free(); an
 * authenticator serves one session at a time and keeps its OAuth token
 * between sessions). `ready_cb` may be NULL when no mechanism can answer
 * later. Returns 0, SMTPUV_EINVAL, SMTPUV_ENOMEM, SMTPUV_EBUSY (`auth` is
 * attached to another session).
 */
SMTPUV_EXTERN int smtpuv_auth_session_new(const smtpuv_mem *mem,
                                          smtpuv_proto *proto,
                                          smtpuv_auth *auth,
                                          smtpuv_auth_ready_cb ready_cb,
                                          void *ready_data,
                                          smtpuv_auth_session **out);

/** Detach and free (wiping buffered responses). NULL is accepted. The proto
    is left as it is. */
SMTPUV_EXTERN void smtpuv_auth_session_free(smtpuv_auth_session *s);

/**
 * Start: the protocol must be READY after EHLO. `auto` selects its mechanism
 * now. Issues "AUTH <mech> <initial response>" — or "AUTH <mech>" and the
 * initial response after the server's empty 334 when the command line would
 * exceed 512 octets (RFC 4954 section 4).
 * Returns:
 *   SMTPUV_AUTH_PENDING  AUTH was written: flush, pass AUTH replies to
 *                        smtpuv_auth_session_on_reply();
 *   SMTPUV_EAGAIN        waiting for the application (OAuth token): nothing
 *                        written; the ready callback will fire;
 *   SMTPUV_ESTATE        not READY, or already started;
 *   SMTPUV_EAUTHMECH     the server does not offer the mechanism (or auto
 *                        found none): see smtpuv_auth_session_error_text();
 *   SMTPUV_ECREDENTIALS, SMTPUV_EAUTH (token failure), SMTPUV_ENOMEM, or the
 *                        proto's error. These end the session (status).
 */
SMTPUV_EXTERN int smtpuv_auth_session_start(smtpuv_auth_session *s);

/** After the ready callback: go on. Same returns as start(); SMTPUV_ESTATE
    when the session was not waiting. */
SMTPUV_EXTERN int smtpuv_auth_session_resume(smtpuv_auth_session *s);

/**
 * Hand the session a reply popped from the proto whose command is
 * SMTPUV_CMD_AUTH. Returns:
 *   SMTPUV_AUTH_PENDING  a response (or "*" after a local failure, or a
 *                        retried AUTH) was written: flush, wait for the next
 *                        AUTH reply; a cancelled exchange reports its error
 *                        when the server's answer to "*" arrives;
 *   0                    authenticated (235);
 *   SMTPUV_EAGAIN        the server rejected the OAuth token and a fresh one
 *                        is being fetched (ready callback, then resume());
 *   SMTPUV_EAUTH         the server refused (535, 454, 534, 5xx...): see
 *                        reply_code()/reply_text() and error_text(); or a
 *                        SCRAM server-final e=;
 *   SMTPUV_ESHUTDOWN     the server answered 421;
 *   SMTPUV_EPROTO        malformed base64 or a malformed/unexpected
 *                        challenge, or more than SMTPUV_AUTH_MAX_STEPS;
 *   SMTPUV_EAUTHSERVER   SCRAM: wrong server signature, or 235 without it;
 *   SMTPUV_ECREDENTIALS, SMTPUV_ENOMEM or another mechanism error;
 *   SMTPUV_EINVAL        not an AUTH reply; SMTPUV_ESTATE not in an exchange.
 * Every return but PENDING and EAGAIN ends the session.
 */
SMTPUV_EXTERN int smtpuv_auth_session_on_reply(
    smtpuv_auth_session *s, const struct smtpuv_reply *reply);

/** SMTPUV_AUTH_PENDING while running (or not started), SMTPUV_EAGAIN while
    waiting for the application, else the final result (0 or an error). */
SMTPUV_EXTERN int smtpuv_auth_session_status(const smtpuv_auth_session *s);

/** Why the session failed: "535 5.7.8 Authentication credentials invalid",
    "XOAUTH2: {...}; server: 535 ...", "SCRAM: server signature mismatch",
    "no usable authentication mechanism: ..."; "" on success. No secrets. */
SMTPUV_EXTERN const char *smtpuv_auth_session_error_text(
    const smtpuv_auth_session *s);

/** The last failure reply's code (0 if none) and text (lines joined with
    "\n"; "" if none). */
SMTPUV_EXTERN int smtpuv_auth_session_reply_code(const smtpuv_auth_session *s);
/** The last failure reply's text (see smtpuv_auth_session_reply_code()). */
SMTPUV_EXTERN const char *smtpuv_auth_session_reply_text(
    const smtpuv_auth_session *s);

/** The mechanism used (after start), else "". */
SMTPUV_EXTERN const char *smtpuv_auth_session_mechanism(
    const smtpuv_auth_session *s);

#ifdef __cplusplus
}
#endif

#endif /* SMTPUV_AUTH_H */

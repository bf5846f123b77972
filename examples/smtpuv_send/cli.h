/* SPDX-License-Identifier: MIT */
/*
 * smtpuv-send internals: a msmtp-compatible sendmail command on top of the
 * smtpuv client. Split so that the pure parts (argument parsing, exit-code
 * table, JSON writer, header scanning) are unit-tested without a network.
 *
 *   args.c          command line (msmtp / sendmail options) -> cli_config
 *   exitcode.c      smtpuv outcome -> sysexits.h status
 *   json.c          growable buffer + JSON writer (--json)
 *   headers.c       header fields: Bcc removal, To/Cc/Bcc/From addresses
 *                   (on the library's header and address-list parsers)
 *   passwordeval.c  --passwordeval=CMD
 *   serverinfo.c    --serverinfo output (text and JSON)
 *   main.c          glue: read the message, send it, report
 */
#ifndef SMTPUV_SEND_CLI_H
#define SMTPUV_SEND_CLI_H

#include <stddef.h>

#include <smtpuv.h>
#include <smtpuv/client.h>

#define CLI_NAME "smtpuv-send"

/* sysexits.h values (spelled out: the header is not everywhere). */
enum {
  CLI_EX_OK = 0,
  CLI_EX_USAGE = 64,       /* bad command line */
  CLI_EX_DATAERR = 65,     /* bad message or address */
  CLI_EX_NOHOST = 68,      /* host name unknown */
  CLI_EX_UNAVAILABLE = 69, /* permanent refusal (5xx), missing extension */
  CLI_EX_SOFTWARE = 70,    /* internal error */
  CLI_EX_OSERR = 71,       /* out of memory, fork failed */
  CLI_EX_IOERR = 74,       /* connection or I/O error */
  CLI_EX_TEMPFAIL = 75,    /* 4xx, timeout, outcome unknown */
  CLI_EX_PROTOCOL = 76,    /* the server broke the protocol */
  CLI_EX_NOPERM = 77,      /* authentication failed */
  CLI_EX_CONFIG = 78       /* TLS/auth configuration problem */
};

/* ---- command line (args.c) ------------------------------------------------- */

enum cli_mode {
  CLI_MODE_SEND = 0,
  CLI_MODE_SERVERINFO,
  CLI_MODE_PRETEND,
  CLI_MODE_HELP,
  CLI_MODE_VERSION
};

enum cli_auth { CLI_AUTH_UNSET = 0, CLI_AUTH_OFF, CLI_AUTH_ON };

typedef struct cli_config {
  enum cli_mode mode;
  const char *host;
  unsigned port;              /* 0: 587 (STARTTLS), 465 (implicit), 25 (off) */
  unsigned timeout;           /* seconds; 0: library defaults */
  int timeout_off;            /* --timeout=off: no timeouts at all */
  const char *domain;         /* EHLO name */
  enum cli_auth auth;
  const char *auth_mech;      /* NULL: strongest offered */
  const char *user;
  const char *passwordeval;
  int tls;                    /* 1 (default) */
  int tls_starttls;           /* 1 (default); tls on + starttls off: 465 style */
  const char *tls_trust_file; /* NULL: system store */
  int tls_certcheck;          /* 1 */
  const char *tls_host_override;
  int allow_plaintext_auth;
  unsigned dsn_notify;        /* SMTPUV_DSN_NOTIFY_* bits, 0: off */
  int dsn_ret;                /* smtpuv_dsn_ret */
  const char *from;           /* -f: envelope sender ("" = <>) */
  int read_envelope_from;
  int read_recipients;        /* -t */
  int remove_bcc;             /* 1 */
  int debug;
  int json;
  const char **recipients;    /* command line recipients (argv strings) */
  size_t nrecipients;
} cli_config;

/* Defaults (TLS on with STARTTLS, certificate check on, Bcc removed). */
void cli_config_init(cli_config *c);
/* Free what cli_args_parse() allocated. */
void cli_config_free(cli_config *c);

/* Parse argv (argv[0] is skipped). Returns 0, or CLI_EX_USAGE with a one-line
   reason in `err` (no program name, no newline), or CLI_EX_OSERR. Never
   prints. `argv` must outlive `c` (strings are borrowed). */
int cli_args_parse(cli_config *c, int argc, char **argv, char *err,
                   size_t errlen);

/* The usage text for --help. */
const char *cli_usage(void);

/* ---- exit statuses (exitcode.c) ---------------------------------------------- */

/* Exit status for an smtpuv error code in `phase` with the deciding reply
   code (0 when none). */
int cli_exit_for_error(int err, smtpuv_phase phase, int reply_code);
/* Exit status for a whole send result: 0 only when every recipient was
   accepted and the message was sent; refused recipients give their class
   (69 when any refusal was permanent, else 75). */
int cli_exit_for_result(const smtpuv_send_result *r);
/* "EX_TEMPFAIL" for 75, ... */
const char *cli_exit_name(int code);

/* ---- buffer and JSON (json.c) -------------------------------------------------- */

typedef struct cli_buf {
  char *p;
  size_t len, cap;
  int oom; /* an append failed: the content is truncated */
} cli_buf;

void cli_buf_free(cli_buf *b);
void cli_buf_add(cli_buf *b, const void *s, size_t n);
void cli_buf_puts(cli_buf *b, const char *s);
void cli_buf_printf(cli_buf *b, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* A JSON string literal (quotes included) for `n` bytes of `s`: control
   characters escaped, invalid UTF-8 replaced by U+FFFD. `s` NULL: null. */
void cli_json_str(cli_buf *b, const char *s, size_t n);
void cli_json_cstr(cli_buf *b, const char *s);
/* The --json object for a send result (newline-terminated). */
void cli_json_result(cli_buf *b, const smtpuv_send_result *r, int exit_code);
/* The --json object for a failure without a result (bad input, setup). */
void cli_json_error(cli_buf *b, int err, const char *message, int exit_code);

/* ---- message headers (headers.c) ------------------------------------------------ */

/* Copy of the message without Bcc and Resent-Bcc fields in `*out`
   (malloc'ed; NULL when there were none: use the original), made by the
   library's smtpuv_message_body(). Returns 0 or CLI_EX_OSERR. */
int cli_strip_bcc(const char *msg, size_t len, char **out, size_t *outlen);

/* A list of addresses (malloc'ed strings). */
typedef struct cli_addrs {
  char **v;
  size_t n, cap;
} cli_addrs;
void cli_addrs_free(cli_addrs *a);
/* Append a copy unless already present. 0 or CLI_EX_OSERR. */
int cli_addrs_add(cli_addrs *a, const char *s);

/* Append the addresses of an address list given on the command line
   ("a@b", "Name <a@b>, c@d"). Returns 0, CLI_EX_DATAERR (unparsable, or a
   CR/LF in it) or CLI_EX_OSERR. */
int cli_address_list(const char *s, cli_addrs *out);

/* Append the addresses of every To, Cc and Bcc field (in message order).
   Returns 0, CLI_EX_DATAERR (`err` names the field) or CLI_EX_OSERR. */
int cli_header_recipients(const char *msg, size_t len, cli_addrs *out,
                          char *err, size_t errlen);
/* The first address of the From field in `*out` (malloc'ed). Returns 0,
   CLI_EX_DATAERR (no From field, or no address in it) or CLI_EX_OSERR. */
int cli_header_from(const char *msg, size_t len, char **out, char *err,
                    size_t errlen);

/* ---- --passwordeval (passwordeval.c) ------------------------------------------- */

/* Run `cmd` with /bin/sh -c (stdin /dev/null) and put the first line of its
   output (without the line ending) in `out`. Returns 0, or CLI_EX_CONFIG
   with a reason in `err` (failed, empty, too long). Buffers that held the
   output are wiped. */
int cli_passwordeval(const char *cmd, char *out, size_t cap, char *err,
                     size_t errlen);

/* ---- --serverinfo (serverinfo.c) ------------------------------------------------ */

void cli_serverinfo_text(cli_buf *b, const char *host,
                         const smtpuv_probe_result *r);
void cli_serverinfo_json(cli_buf *b, const char *host,
                         const smtpuv_probe_result *r, int exit_code);
/* Exit status of a probe: 0 when it completed (and TLS was as required). */
int cli_exit_for_probe(const smtpuv_probe_result *r);

#endif

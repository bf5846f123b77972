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
#include <stdint.h>

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
  /* configuration files and accounts (config.c) */
  const char *conffile;       /* -C: instead of the user file */
  const char *account;        /* -a */
  int host_given;             /* --host on the command line: no file data */
  const char *password;       /* `password` of the account (file only) */
  /* TLS extras */
  const char *tls_fingerprint; /* SHA-256, "AB:CD:..." */
  const char *tls_cert_file, *tls_key_file;
  /* logging */
  const char *logfile;         /* -X; "-" is standard output */
  const char *logfile_time_format;
  int syslog_on;
  int syslog_facility;         /* LOG_USER... */
  /* headers and envelope */
  const char *aliases;
  int auto_from;
  const char *maildomain;
  int set_from_header;         /* CLI_HDR_AUTO / ON / OFF */
  int set_date_header;         /* CLI_HDR_AUTO / OFF */
  int set_msgid_header;        /* CLI_HDR_AUTO / OFF */
  int undisclosed;
  int allow_from_override;     /* 1 */
  const char *full_name;       /* -F */
  const char *account_from;    /* `from` of the chosen account */
} cli_config;

enum { CLI_HDR_AUTO = 0, CLI_HDR_ON, CLI_HDR_OFF };

/* Defaults (TLS on with STARTTLS, certificate check on, Bcc removed). */
void cli_config_init(cli_config *c);
/* Free what cli_args_parse() allocated. */
void cli_config_free(cli_config *c);

/* Apply one configuration-file command (`name` as in msmtprc, e.g.
   "tls_trust_file") with its value (NULL: no argument). Returns 0,
   CLI_EX_CONFIG with the reason in `err` (unknown command, not supported,
   bad value), or CLI_EX_OSERR. Strings are borrowed. */
int cli_config_command(cli_config *c, const char *name, const char *value,
                       char *err, size_t errlen);

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
/* `text` without its leading enhanced status code `enhanced` (the library
   keeps the reply text whole: "5.1.1 user unknown"), so it is not shown
   twice beside the code. */
const char *cli_reply_text(const char *text, const char *enhanced);
/* The --json object for a send result (newline-terminated). */
void cli_json_result(cli_buf *b, const smtpuv_send_result *r, int exit_code);
/* The --json object for a failure without a result (bad input, setup). */
void cli_json_error(cli_buf *b, int err, const char *message, int exit_code);

/* ---- message headers (headers.c) ------------------------------------------------ */

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

/* Append the addresses of every To, Cc and Bcc field (in message order;
   Resent-To, Resent-Cc and Resent-Bcc when there is one Resent- block).
   Returns 0, CLI_EX_DATAERR (`err` names the field) or CLI_EX_OSERR. */
int cli_header_recipients(const char *msg, size_t len, cli_addrs *out,
                          char *err, size_t errlen);
/* The first address of the From field in `*out` (malloc'ed). Returns 0,
   CLI_EX_DATAERR (no From field, or no address in it) or CLI_EX_OSERR. */
int cli_header_from(const char *msg, size_t len, char **out, char *err,
                    size_t errlen);

/* ---- the message, streamed (stream.c) ------------------------------------------ */

/* The most header-block bytes read before the body starts to stream. */
#define CLI_HEADER_MAX (1024 * 1024)

/* Input: like read(2) (bytes, 0 at the end, -1 with errno). */
typedef long (*cli_in_fn)(void *ctx, void *buf, size_t cap);
/* cli_in_fn over the file descriptor *(int *)ctx. */
long cli_fd_input(void *ctx, void *buf, size_t cap);

typedef struct cli_msg {
  cli_in_fn in;
  void *in_ctx;
  char *buf;        /* read so far: the header block and maybe some body */
  size_t len, cap;
  size_t hdr_end;   /* end of the header fields in buf */
  int eof;
  cli_buf head;     /* the header fields to send (after cli_msg_rewrite) */
  size_t head_pos, buf_pos;
  uint64_t sent;    /* bytes handed to the client so far */
  int in_error, in_errno;
} cli_msg;

typedef struct cli_rewrite {
  int remove_bcc;    /* Bcc, Resent-Bcc */
  int remove_from;   /* set_from_header on */
  int undisclosed;   /* To, Cc, Bcc */
  const char *prepend; /* fields to add first */
  size_t prepend_len;
} cli_rewrite;

void cli_msg_init(cli_msg *m, cli_in_fn in, void *ctx);
void cli_msg_free(cli_msg *m);
/* Read up to the end of the header block. Returns 0, CLI_EX_DATAERR (empty
   input, no header field, header block over CLI_HEADER_MAX), CLI_EX_IOERR
   or CLI_EX_OSERR, with the reason in `err`. */
int cli_msg_read_header(cli_msg *m, char *err, size_t errlen);
/* Whether the header block has a field NAME. */
int cli_msg_has_field(const cli_msg *m, const char *name);
/* Prepare the header fields to send. 0 or CLI_EX_OSERR. */
int cli_msg_rewrite(cli_msg *m, const cli_rewrite *w);
/* smtpuv_body_read_cb over `user` (a cli_msg). */
long cli_msg_read(void *user, void *buf, size_t cap);

/* ---- logfile and syslog (logfile.c) -------------------------------------------- */

/* msmtp's log line (without the time): "host=H tls=on auth=on user=U
   from=F recipients=a,b mailsize=N smtpstatus=C smtpmsg='T' errormsg='E'
   exitcode=EX_OK". `r` may be NULL (a failure before the send). */
void cli_log_info(cli_buf *b, const cli_config *c, const char *from,
                  const cli_addrs *rcpts, uint64_t mailsize,
                  const smtpuv_send_result *r, const char *errmsg,
                  int exit_code);
/* Append the line to c->logfile (with the time, locked) and/or syslog.
   Returns 0, or -1 with the reason in `err`. */
int cli_log_write(const cli_config *c, const char *info, int failed,
                  char *err, size_t errlen);

/* ---- configuration files (config.c) -------------------------------------------- */

typedef struct cli_rc_setting {
  char *cmd;        /* "tls_trust_file" */
  char *value;      /* NULL: no argument; wiped when freed */
  const char *file; /* cli_rc.files[...] */
  unsigned line;
} cli_rc_setting;

typedef struct cli_rc_account {
  char *name;
  const char *file;
  unsigned line;
  cli_rc_setting *v; /* defaults and inherited settings first */
  size_t n, cap;
  int secret;        /* holds a password */
} cli_rc_account;

typedef struct cli_rc {
  cli_rc_account *acc;
  size_t n, cap;
  char *files[4];        /* the files read, in order */
  size_t nfiles;
  const char *user_file; /* one of files[], or NULL */
  int secret;
} cli_rc;

/* Read one file into `rc` (accounts of a later file replace those of the
   same name). A missing file is not an error unless `required` (-C: then
   CLI_EX_IOERR). `user`: the user's file (the permission check applies to
   it when it holds a password). Returns 0, CLI_EX_CONFIG with
   "FILE:LINE: reason" in `err`, CLI_EX_IOERR or CLI_EX_OSERR. */
int cli_rc_load(cli_rc *rc, const char *path, int required, int user,
                char *err, size_t errlen);
/* Wipe and free everything. */
void cli_rc_free(cli_rc *rc);
/* Overwrite every `password` value with zeros (once it has been used). */
void cli_rc_wipe_passwords(cli_rc *rc);
/* The account NAME, or NULL. */
cli_rc_account *cli_rc_find(const cli_rc *rc, const char *name);
/* The first account whose `from` matches `from` (msmtp's rules: a pattern
   with ?, * or [ is an fnmatch() glob, else a case-insensitive compare;
   user+detail@domain also matches user@domain), user file first. */
cli_rc_account *cli_rc_by_from(const cli_rc *rc, const char *from);
/* Replay an account's commands onto `c` (strings stay owned by `rc`). */
int cli_rc_apply(const cli_rc_account *a, cli_config *c, char *err,
                 size_t errlen);

/* ---- added headers and substitutions (compose.c) ------------------------------ */

/* `from` with %U (user), %H (host name), %C (its canonical name) and %M
   (/etc/mailname) replaced. 0, or -1 when it does not fit. */
int cli_expand_from(const char *from, char *out, size_t cap);
/* The user's login name ($USER, $LOGNAME, the password database). */
const char *cli_user_name(void);
/* "Date: Tue, 01 Dec 2026 10:00:00 +0000\n" for now. */
void cli_date_header(cli_buf *b);
/* "Message-ID: <random@domain>\n" (domain: of `from`, else the host). */
void cli_msgid_header(cli_buf *b, const char *from);
/* "From: NAME <addr>\n" (NAME quoted or RFC 2047-encoded as needed). */
void cli_from_header(cli_buf *b, const char *name, const char *addr);

/* ---- aliases (aliases.c) --------------------------------------------------------- */

/* Replace every recipient without '@' by its aliases from `file`
   ("local: a@x, b@y"; "default:" for the rest; '#' comments). Returns 0,
   or CLI_EX_CONFIG / CLI_EX_IOERR with "FILE:LINE: reason" in `err`. */
int cli_aliases_apply(const char *file, cli_addrs *rcpts, char *err,
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

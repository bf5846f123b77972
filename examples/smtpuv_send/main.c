/* SPDX-License-Identifier: MIT */
/* smtpuv-send: a sendmail/msmtp-compatible command that sends the message
 * on standard input with the smtpuv client. See `smtpuv-send --help` and
 * cli.h for the pieces. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/opensslv.h>

#include "cli.h"

#define PASSWORD_MAX 16384

/* ---- output helpers ------------------------------------------------------------ */

/* One line on stderr, "smtpuv-send: " first; control characters in `s`
   become '?' and line breaks " / ", so a server text stays on one line. */
static void say_line(const char *prefix, const char *s, const char *suffix) {
  cli_buf b = {0};
  cli_buf_puts(&b, CLI_NAME ": ");
  if (prefix != NULL)
    cli_buf_puts(&b, prefix);
  for (const unsigned char *p = (const unsigned char *)s; p && *p; p++) {
    if (*p == '\n')
      cli_buf_puts(&b, " / ");
    else if (*p == '\r')
      continue;
    else if (*p < 0x20 || *p == 0x7f)
      cli_buf_puts(&b, "?");
    else
      cli_buf_add(&b, p, 1);
  }
  if (suffix != NULL)
    cli_buf_puts(&b, suffix);
  cli_buf_puts(&b, "\n");
  if (b.p != NULL)
    fputs(b.p, stderr);
  cli_buf_free(&b);
}

#if defined(__GNUC__) || defined(__clang__)
__attribute__((format(printf, 1, 2)))
#endif
static void say(const char *fmt, ...) {
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  say_line(NULL, line, NULL);
}

/* An address for a message: printable as is, control bytes \xNN. */
static const char *shown(const char *v, char *buf, size_t cap) {
  size_t o = 0;
  for (const unsigned char *p = (const unsigned char *)v; *p && o + 8 < cap;
       p++) {
    if (*p >= 0x20 && *p != 0x7f)
      buf[o++] = (char)*p;
    else
      o += (size_t)snprintf(buf + o, cap - o, "\\x%02X", *p);
  }
  buf[o] = '\0';
  return buf;
}

typedef struct app {
  cli_config cfg;       /* resolved: account, then the command line */
  cli_config cmd;       /* the command line alone */
  int argc;
  char **argv;
  cli_rc rc;            /* configuration files */
  const cli_rc_account *acct; /* the chosen account, or NULL */
  const char *why_acct; /* how it was chosen */
  const char *acct_from; /* the account's `from` (unexpanded) */
  const char *env_from; /* $EMAIL when no account applies */
  char host_port[300];
  /* for the log line */
  int log_ready;
  const char *log_from;
  const cli_addrs *log_rcpts;
  uint64_t log_size;
  /* result of the send */
  smtpuv_send_result *result;
  int send_rc;
  /* debug line assembly, one per direction */
  cli_buf line[3];
} app;

/* Finish the JSON object or the stderr line for a failure that happened
   before anything was sent; returns `code`. */
static void log_outcome(app *a, const smtpuv_send_result *r,
                        const char *errmsg, int code);

static int local_failure(app *a, int code, int err, const char *msg) {
  say_line(NULL, msg, NULL);
  if (a->log_ready)
    log_outcome(a, NULL, msg, code);
  if (a->cfg.json) {
    cli_buf b = {0};
    cli_json_error(&b, err, msg, code);
    if (b.p != NULL)
      fputs(b.p, stdout);
    cli_buf_free(&b);
  }
  return code;
}

/* ---- --debug ----------------------------------------------------------------- */

static void debug_flush_line(cli_buf *l, const char *prefix) {
  if (l->len == 0)
    return;
  cli_buf out = {0};
  cli_buf_puts(&out, prefix);
  for (size_t i = 0; i < l->len; i++) {
    unsigned char c = (unsigned char)l->p[i];
    if (c == '\r' && i + 1 == l->len)
      break;
    if (c < 0x20 && c != '\t')
      cli_buf_printf(&out, "\\x%02X", c);
    else if (c == 0x7f)
      cli_buf_puts(&out, "\\x7F");
    else
      cli_buf_add(&out, &l->p[i], 1);
  }
  cli_buf_puts(&out, "\n");
  if (out.p != NULL)
    fputs(out.p, stderr);
  cli_buf_free(&out);
  l->len = 0;
}

static void on_trace(void *data, smtpuv_trace_kind kind, const char *bytes,
                     size_t len) {
  app *a = data;
  if (kind == SMTPUV_TRACE_INFO) {
    cli_buf l = {0};
    cli_buf_add(&l, bytes, len);
    debug_flush_line(&l, "--- ");
    cli_buf_free(&l);
    return;
  }
  int k = kind == SMTPUV_TRACE_RECV ? 0 : kind == SMTPUV_TRACE_SEND ? 1 : 2;
  const char *prefix = k == 0 ? "<-- " : "--> ";
  cli_buf *l = &a->line[k];
  while (len > 0) {
    const char *nl = memchr(bytes, '\n', len);
    size_t n = nl ? (size_t)(nl - bytes) : len;
    if (l->len + n > 4096) {
      size_t room = l->len < 4096 ? 4096 - l->len : 0;
      cli_buf_add(l, bytes, room);
      cli_buf_puts(l, "[...]");
      debug_flush_line(l, prefix);
      bytes += room;
      len -= room;
      continue;
    }
    cli_buf_add(l, bytes, n);
    if (nl == NULL)
      break;
    debug_flush_line(l, prefix);
    bytes += n + 1;
    len -= n + 1;
  }
}

static void debug_flush_all(app *a) {
  debug_flush_line(&a->line[0], "<-- ");
  debug_flush_line(&a->line[1], "--> ");
  debug_flush_line(&a->line[2], "--> ");
  for (int i = 0; i < 3; i++)
    cli_buf_free(&a->line[i]);
}

/* ---- options ------------------------------------------------------------------- */

static smtpuv_tls_mode tls_mode(const cli_config *c) {
  if (!c->tls)
    return SMTPUV_TLS_NONE;
  return c->tls_starttls ? SMTPUV_TLS_REQUIRED : SMTPUV_TLS_IMPLICIT;
}

static unsigned effective_port(const cli_config *c) {
  if (c->port != 0)
    return c->port;
  switch (tls_mode(c)) {
  case SMTPUV_TLS_NONE:
    return 25;
  case SMTPUV_TLS_IMPLICIT:
    return 465;
  default:
    return 587;
  }
}

static int want_auth(const cli_config *c) {
  if (c->auth == CLI_AUTH_OFF)
    return 0;
  return c->auth == CLI_AUTH_ON || c->user != NULL;
}

static int is_oauth(const cli_config *c) {
  if (c->auth_mech == NULL)
    return 0;
  smtpuv_auth_mech m = smtpuv_auth_mech_from_name(c->auth_mech);
  return m == SMTPUV_AUTH_MECH_XOAUTH2 || m == SMTPUV_AUTH_MECH_OAUTHBEARER;
}

/* Build the client options; `password` may be NULL. Returns 0 or an exit
   status after saying why. */
static int build_options(app *a, const char *password, smtpuv_options **out) {
  const cli_config *c = &a->cfg;
  smtpuv_options *o;
  *out = NULL;
  if (smtpuv_options_new(NULL, &o) != 0)
    return local_failure(a, CLI_EX_OSERR, SMTPUV_ENOMEM, "out of memory");
  const char *what = NULL; /* the setting that was refused */
  char shown_buf[600];
  int rc = smtpuv_options_set_host(o, c->host);
  if (rc != 0)
    what = "--host";
  if (rc == 0)
    rc = smtpuv_options_set_port(o, effective_port(c));
  if (rc == 0)
    rc = smtpuv_options_set_tls(o, tls_mode(c));
  if (rc == 0 && c->tls_trust_file != NULL &&
      (rc = smtpuv_options_set_ca(o, c->tls_trust_file, NULL)) != 0)
    what = "--tls-trust-file";
  if (rc == 0 && c->tls_host_override != NULL &&
      (rc = smtpuv_options_set_tls_server_name(o, c->tls_host_override)) != 0)
    what = "--tls-host-override";
  if (rc == 0 && !c->tls_certcheck)
    rc = smtpuv_options_set_tls_verify(o, 0);
  if (rc == 0 && c->tls_fingerprint != NULL && c->tls_certcheck &&
      (rc = smtpuv_options_set_tls_fingerprint(o, c->tls_fingerprint)) != 0)
    what = "--tls-fingerprint";
  if (rc == 0 && (c->tls_cert_file != NULL || c->tls_key_file != NULL) &&
      (rc = smtpuv_options_set_tls_client_cert(o, c->tls_cert_file,
                                               c->tls_key_file)) != 0)
    what = "--tls-cert-file/--tls-key-file";
  if (rc == 0 && c->domain != NULL &&
      (rc = smtpuv_options_set_ehlo_name(o, c->domain)) != 0)
    what = "--domain";
  if (rc == 0 && c->allow_plaintext_auth)
    rc = smtpuv_options_set_allow_plaintext_auth(o, 1);
  if (rc == 0 && (c->timeout != 0 || c->timeout_off)) {
    unsigned ms = c->timeout_off ? 0 : c->timeout * 1000u;
    smtpuv_timeout which[] = {SMTPUV_TIMEOUT_CONNECT, SMTPUV_TIMEOUT_COMMAND,
                              SMTPUV_TIMEOUT_DATA, SMTPUV_TIMEOUT_FINAL};
    for (size_t i = 0; rc == 0 && i < sizeof which / sizeof which[0]; i++)
      rc = smtpuv_options_set_timeout(o, which[i], ms);
  }
  if (rc == 0 && c->debug)
    rc = smtpuv_options_set_trace(o, on_trace, a);
  if (rc == 0 && want_auth(c) && password != NULL) {
    smtpuv_auth_credentials cr = SMTPUV_AUTH_CREDENTIALS_INIT;
    cr.username = c->user;
    if (is_oauth(c))
      cr.token = password;
    else
      cr.password = password;
    rc = smtpuv_options_set_auth_credentials(o, &cr);
    if (rc == 0 && c->auth_mech != NULL)
      rc = smtpuv_options_set_auth_mechanism(o, c->auth_mech);
    if (rc == SMTPUV_EINVAL) {
      smtpuv_options_free(o);
      return local_failure(
          a, CLI_EX_CONFIG, SMTPUV_ECREDENTIALS,
          "the user name or password cannot be used (control characters?)");
    }
  }
  if (rc != 0) {
    smtpuv_options_free(o);
    if (rc == SMTPUV_ENOMEM)
      return local_failure(a, CLI_EX_OSERR, rc, "out of memory");
    char msg[800];
    const char *value = what == NULL                         ? NULL
                        : strcmp(what, "--host") == 0        ? c->host
                        : strcmp(what, "--domain") == 0      ? c->domain
                        : strcmp(what, "--tls-trust-file") == 0
                            ? c->tls_trust_file
                        : strcmp(what, "--tls-fingerprint") == 0
                            ? c->tls_fingerprint
                        : strcmp(what, "--tls-host-override") == 0
                            ? c->tls_host_override
                            : (c->tls_cert_file ? c->tls_cert_file : "");
    if (what != NULL)
      snprintf(msg, sizeof msg, "invalid %s '%s'", what,
               shown(value, shown_buf, sizeof shown_buf));
    else
      snprintf(msg, sizeof msg, "invalid setting: %s", smtpuv_strerror(rc));
    return local_failure(a, CLI_EX_USAGE, rc, msg);
  }
  *out = o;
  return 0;
}

/* ---- --pretend -------------------------------------------------------------------- */

static const char *on_off_word(int v) { return v ? "on" : "off"; }

static const char *hdr_word(int v) {
  return v == CLI_HDR_ON ? "on" : v == CLI_HDR_OFF ? "off" : "auto";
}

static void pretend(const app *a) {
  const cli_config *c = &a->cfg;
  if (a->rc.nfiles == 0)
    printf("configuration files  = (none)\n");
  for (size_t i = 0; i < a->rc.nfiles; i++)
    printf("configuration file   = %s\n", a->rc.files[i]);
  if (a->acct != NULL)
    printf("account              = %s (%s:%u; %s)\n", a->acct->name,
           a->acct->file, a->acct->line, a->why_acct);
  else
    printf("account              = (none: command line%s)\n",
           getenv("SMTPSERVER") && !a->cmd.host_given ? ", SMTPSERVER" : "");
  printf("host                 = %s\n", c->host);
  printf("port                 = %u\n", effective_port(c));
  if (c->timeout_off)
    printf("timeout              = off\n");
  else if (c->timeout != 0)
    printf("timeout              = %u seconds\n", c->timeout);
  else
    printf("timeout              = default (30 s connect, 60 s per reply, "
           "600 s final reply)\n");
  printf("domain               = %s\n",
         c->domain ? c->domain : "(this host's name)");
  printf("tls                  = %s\n",
         !c->tls ? "off"
         : c->tls_starttls ? "on (STARTTLS required)"
                           : "on (implicit TLS)");
  printf("tls_trust_file       = %s\n",
         c->tls_trust_file ? c->tls_trust_file : "system");
  printf("tls_fingerprint      = %s\n",
         c->tls_fingerprint ? c->tls_fingerprint : "(none)");
  printf("tls_cert_file        = %s\n",
         c->tls_cert_file ? c->tls_cert_file : "(none)");
  printf("tls_key_file         = %s\n",
         c->tls_key_file ? c->tls_key_file : "(none)");
  printf("tls_certcheck        = %s\n", on_off_word(c->tls_certcheck));
  printf("tls_host_override    = %s\n",
         c->tls_host_override ? c->tls_host_override : "(none)");
  printf("auth                 = %s\n",
         !want_auth(c)  ? "off"
         : c->auth_mech ? c->auth_mech
                        : "on (strongest mechanism offered)");
  printf("user                 = %s\n", c->user ? c->user : "(none)");
  printf("password             = %s\n", c->password ? "*" : "(none)");
  printf("passwordeval         = %s\n",
         c->passwordeval ? c->passwordeval : "(none)");
  printf("allow_plaintext_auth = %s\n", on_off_word(c->allow_plaintext_auth));
  char from[1024];
  if (a->cmd.from != NULL && (c->allow_from_override || !a->acct_from))
    snprintf(from, sizeof from, "%s", a->cmd.from[0] ? a->cmd.from : "<>");
  else if (a->cmd.read_envelope_from && c->allow_from_override)
    snprintf(from, sizeof from, "(From header)");
  else if (a->acct_from != NULL &&
           cli_expand_from(a->acct_from, from, sizeof from) == 0)
    ;
  else if (c->auto_from)
    snprintf(from, sizeof from, "%s%s%s", cli_user_name(),
             c->maildomain && *c->maildomain ? "@" : "",
             c->maildomain ? c->maildomain : "");
  else if (a->env_from != NULL)
    snprintf(from, sizeof from, "%s (EMAIL)", a->env_from);
  else
    snprintf(from, sizeof from, "(From header)");
  printf("from                 = %s\n", from);
  printf("allow_from_override  = %s\n", on_off_word(c->allow_from_override));
  printf("auto_from            = %s\n", on_off_word(c->auto_from));
  printf("maildomain           = %s\n",
         c->maildomain ? c->maildomain : "(none)");
  printf("set_from_header      = %s\n", hdr_word(c->set_from_header));
  printf("set_date_header      = %s\n", hdr_word(c->set_date_header));
  printf("set_msgid_header     = %s\n", hdr_word(c->set_msgid_header));
  printf("undisclosed_recipients = %s\n", on_off_word(c->undisclosed));
  printf("read_recipients      = %s\n", on_off_word(c->read_recipients));
  printf("remove_bcc_headers   = %s\n", on_off_word(c->remove_bcc));
  printf("aliases              = %s\n", c->aliases ? c->aliases : "(none)");
  printf("logfile              = %s\n", c->logfile ? c->logfile : "(none)");
  printf("logfile_time_format  = %s\n",
         c->logfile_time_format ? c->logfile_time_format
                                : "(default: %b %d %H:%M:%S)");
  printf("syslog               = %s\n",
         !c->syslog_on                   ? "off"
         : c->syslog_facility == LOG_MAIL ? "LOG_MAIL"
         : c->syslog_facility == LOG_USER ? "LOG_USER"
                                          : "LOG_LOCALn");
  printf("dsn_notify           = %s\n", c->dsn_notify ? "set" : "off");
  printf("dsn_return           = %s\n",
         c->dsn_ret == SMTPUV_DSN_RET_FULL   ? "full"
         : c->dsn_ret == SMTPUV_DSN_RET_HDRS ? "hdrs"
                                             : "off");
  for (size_t i = 0; i < c->nrecipients; i++)
    printf("recipient            = %s\n", c->recipients[i]);
}

/* ---- --serverinfo -------------------------------------------------------------- */

typedef struct probe_ctx {
  app *a;
  int code;
} probe_ctx;

static void on_probe(const smtpuv_probe_result *r, void *data) {
  probe_ctx *pc = data;
  app *a = pc->a;
  if (a->cfg.debug)
    debug_flush_all(a);
  pc->code = cli_exit_for_probe(r);
  cli_buf b = {0};
  if (a->cfg.json)
    cli_serverinfo_json(&b, a->cfg.host, r, pc->code);
  else
    cli_serverinfo_text(&b, a->cfg.host, r);
  if (b.p != NULL)
    fputs(b.p, stdout);
  cli_buf_free(&b);
  if (r->error == SMTPUV_ENOTLS)
    say("TLS required but %s does not offer STARTTLS (use --tls=off to "
        "talk in plaintext)",
        a->host_port);
  else if (r->error != 0)
    say_line(NULL, r->message, NULL);
}

static int serverinfo(app *a, smtpuv_options *o) {
  uv_loop_t loop;
  if (uv_loop_init(&loop) != 0)
    return local_failure(a, CLI_EX_OSERR, SMTPUV_ENOMEM, "cannot create a loop");
  probe_ctx pc = {a, CLI_EX_SOFTWARE};
  int rc = smtpuv_client_probe(&loop, o, on_probe, &pc);
  if (rc != 0) {
    uv_loop_close(&loop);
    return local_failure(a, cli_exit_for_error(rc, SMTPUV_PHASE_NONE, 0), rc,
                         smtpuv_strerror(rc));
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  return pc.code;
}

/* ---- sending ---------------------------------------------------------------------- */

static void on_sent(smtpuv_client *c, const smtpuv_send_result *r,
                    void *data) {
  app *a = data;
  a->send_rc = smtpuv_send_result_dup(NULL, r, &a->result);
  smtpuv_client_close(c, NULL);
}

static const char *hint_for(const cli_config *c, int err) {
  switch (err) {
  case SMTPUV_ECERT:
    return " (trust the server's CA with --tls-trust-file=FILE, or name the "
           "certificate's host with --tls-host-override=NAME)";
  case SMTPUV_ENOTLS:
    return " (use --tls=off to send in plaintext)";
  case SMTPUV_EAUTHMECH:
    if (!c->tls)
      return " (servers often offer AUTH only over TLS: drop --tls=off)";
    return c->auth_mech != NULL
               ? " (pick another mechanism with --auth=MECH, or --auth=on)"
               : NULL;
  default:
    return NULL;
  }
}

/* Tell the user what happened (stderr; stdout with --json). */
static int report(app *a, const smtpuv_send_result *r) {
  int code = cli_exit_for_result(r);
  char b1[600];
  size_t refused = 0;
  for (size_t i = 0; i < r->nrecipients; i++) {
    const smtpuv_rcpt_result *rr = &r->recipients[i];
    if (rr->accepted || rr->code == 0)
      continue;
    refused++;
    char pre[1400];
    snprintf(pre, sizeof pre, "recipient %s refused: %d%s%s ",
             shown(rr->address, b1, sizeof b1), rr->code,
             rr->enhanced[0] ? " " : "", rr->enhanced);
    say_line(pre, cli_reply_text(rr->text, rr->enhanced), NULL);
  }
  if (r->status == SMTPUV_SEND_SENT) {
    if (refused > 0)
      say("the message was sent to the other %zu recipient%s",
          r->naccepted, r->naccepted == 1 ? "" : "s");
  } else if (r->status == SMTPUV_SEND_UNKNOWN) {
    say_line("outcome unknown: the message may or may not have been "
             "delivered (",
             r->message, ")");
  } else if (r->error == SMTPUV_ENORCPT && refused > 0) {
    say("no recipient was accepted; nothing was sent");
  } else if (r->error == SMTPUV_EPLAINTEXT) {
    say("refusing to send the password unencrypted to %s (use TLS, or "
        "--allow-plaintext-auth to send it anyway)",
        a->host_port);
  } else if (r->error == SMTPUV_ENOTLS && r->reply_code == 0) {
    say("TLS required but %s does not offer STARTTLS (use --tls=off to "
        "send in plaintext)",
        a->host_port);
  } else {
    say_line(NULL, r->message, hint_for(&a->cfg, r->error));
  }
  if (a->cfg.json) {
    cli_buf b = {0};
    cli_json_result(&b, r, code);
    if (b.p != NULL)
      fputs(b.p, stdout);
    cli_buf_free(&b);
  }
  return code;
}

static int is_ascii(const char *s) {
  for (; *s; s++)
    if ((unsigned char)*s >= 0x80)
      return 0;
  return 1;
}

/* ---- the log line ------------------------------------------------------------------ */

static void log_outcome(app *a, const smtpuv_send_result *r,
                        const char *errmsg, int code) {
  const cli_config *c = &a->cfg;
  a->log_ready = 0; /* once */
  if (c->logfile == NULL && !c->syslog_on)
    return;
  cli_buf b = {0};
  cli_log_info(&b, c, a->log_from, a->log_rcpts, a->log_size, r, errmsg,
               code);
  char err[600];
  if (b.p != NULL && cli_log_write(c, b.p, code != 0, err, sizeof err) != 0)
    say_line(NULL, err, NULL);
  cli_buf_free(&b);
}

/* ---- configuration: files, account, command line --------------------------------------- */

static const char *sysconf_file(void) {
#ifdef SMTPUV_SEND_SYSCONFDIR
  return SMTPUV_SEND_SYSCONFDIR "/msmtprc";
#else
  return "/etc/msmtprc";
#endif
}

/* The user file msmtp would read: -C, else ~/.msmtprc when it exists, else
   $XDG_CONFIG_HOME/msmtp/config (default ~/.config/msmtp/config) when it
   exists, else ~/.msmtprc. */
static void user_file(const app *a, char *out, size_t cap) {
  if (a->cmd.conffile != NULL) {
    snprintf(out, cap, "%s", a->cmd.conffile);
    return;
  }
  const char *home = getenv("HOME");
  if (home == NULL)
    home = "";
  snprintf(out, cap, "%s/.msmtprc", home);
  if (access(out, F_OK) == 0)
    return;
  char xdg[1024];
  const char *x = getenv("XDG_CONFIG_HOME");
  if (x != NULL && *x != '\0')
    snprintf(xdg, sizeof xdg, "%s/msmtp/config", x);
  else
    snprintf(xdg, sizeof xdg, "%s/.config/msmtp/config", home);
  if (access(xdg, F_OK) == 0)
    snprintf(out, cap, "%s", xdg);
}

/* Read the files (unless --host). 0 or an exit status after saying why. */
static int load_files(app *a) {
  char err[1400], path[1100];
  if (a->cmd.host_given)
    return 0;
  int rc = cli_rc_load(&a->rc, sysconf_file(), 0, 0, err, sizeof err);
  if (rc == 0) {
    user_file(a, path, sizeof path);
    rc = cli_rc_load(&a->rc, path, a->cmd.conffile != NULL, 1, err,
                     sizeof err);
  }
  if (rc != 0)
    return local_failure(a, rc, rc == CLI_EX_OSERR ? SMTPUV_ENOMEM
                                                   : SMTPUV_EINVAL,
                         rc == CLI_EX_OSERR ? "out of memory" : err);
  return 0;
}

/* Choose the account (by -a, by the envelope sender `from`, else
   "default"), apply it, then the command line over it. */
static int resolve(app *a, const char *from) {
  char err[1400];
  cli_config *c = &a->cfg;
  a->acct = NULL;
  if (a->cmd.account != NULL) {
    a->acct = cli_rc_find(&a->rc, a->cmd.account);
    if (a->acct == NULL) {
      snprintf(err, sizeof err, "account %s not found%s", a->cmd.account,
               a->rc.nfiles == 0 ? ": no configuration file available" : "");
      return local_failure(a, CLI_EX_CONFIG, SMTPUV_EINVAL, err);
    }
    a->why_acct = "--account";
  } else if (!a->cmd.host_given) {
    if (from != NULL && *from != '\0' &&
        (a->acct = cli_rc_by_from(&a->rc, from)) != NULL)
      a->why_acct = "chosen by the envelope sender";
    else if ((a->acct = cli_rc_find(&a->rc, "default")) != NULL)
      a->why_acct = "the default account";
  }
  cli_config_free(c);
  cli_config_init(c);
  a->acct_from = NULL;
  a->env_from = NULL;
  if (a->acct != NULL) {
    int rc = cli_rc_apply(a->acct, c, err, sizeof err);
    if (rc != 0)
      return local_failure(a, rc, SMTPUV_EINVAL, err);
    if (c->from != NULL && *c->from != '\0')
      a->acct_from = c->from;
    c->from = NULL;
  } else if (!a->cmd.host_given) {
    const char *h = getenv("SMTPSERVER"), *e = getenv("EMAIL");
    if (h != NULL && *h != '\0')
      c->host = h;
    if (e != NULL && *e != '\0')
      a->env_from = e;
  }
  int rc = cli_args_parse(c, a->argc, a->argv, err, sizeof err);
  if (rc != 0)
    return local_failure(a, rc, SMTPUV_EINVAL, err);
  return 0;
}

/* The envelope sender: -f, --read-envelope-from, the account's `from`,
   auto_from, $EMAIL, and (smtpuv-send's default) the From header. NULL in
   `*out` means "the From header". */
static int choose_sender(app *a, char *buf, size_t cap, const char **out) {
  const cli_config *c = &a->cfg;
  int override = c->allow_from_override || a->acct_from == NULL;
  *out = NULL;
  if (a->cmd.from != NULL && override) {
    *out = a->cmd.from;
  } else if (a->cmd.read_envelope_from && override) {
    *out = NULL;
  } else if (a->acct_from != NULL) {
    if (cli_expand_from(a->acct_from, buf, cap) != 0)
      return local_failure(a, CLI_EX_CONFIG, SMTPUV_EINVAL,
                           "the account's from address is too long");
    *out = buf;
  } else if (c->auto_from) {
    snprintf(buf, cap, "%s%s%s", cli_user_name(),
             c->maildomain && *c->maildomain ? "@" : "",
             c->maildomain ? c->maildomain : "");
    *out = buf;
  } else if (a->env_from != NULL) {
    *out = a->env_from;
  }
  return 0;
}

/* ---- sending ------------------------------------------------------------------------ */

static int send_mode(app *a) {
  cli_config *c = &a->cfg;
  char err[1400] = "", b1[600];
  char msgbuf[1600];
  int code = 0;
  char *header_from = NULL;
  cli_addrs rcpts = {0};
  const char *sender = NULL;
  char *sender_copy = NULL;
  char *password = NULL;
  char sender_buf[1024];
  smtpuv_options *o = NULL;
  smtpuv_rcpt_params *rp = NULL;
  cli_msg msg;
  static int fd0 = 0;
  cli_msg_init(&msg, cli_fd_input, &fd0);
  cli_buf pre = {0};

  if (!a->cmd.host_given && a->rc.n == 0 && getenv("SMTPSERVER") == NULL) {
    code = local_failure(a, CLI_EX_USAGE, SMTPUV_EINVAL,
                         "no server given: use --host=HOST, or an account "
                         "in ~/.msmtprc (see --help)");
    goto out;
  }
  /* command line recipients first: a usage problem needs no input */
  for (size_t i = 0; i < a->cmd.nrecipients; i++) {
    const char *r = a->cmd.recipients[i];
    if (strlen(r) == 0) {
      code = local_failure(a, CLI_EX_DATAERR, SMTPUV_EADDRESS,
                           "empty recipient address");
      goto out;
    }
    int rc = cli_address_list(r, &rcpts);
    if (rc == CLI_EX_OSERR) {
      code = local_failure(a, rc, SMTPUV_ENOMEM, "out of memory");
      goto out;
    }
    if (rc != 0) {
      snprintf(msgbuf, sizeof msgbuf,
               "invalid recipient address \"%s\"%s", shown(r, b1, sizeof b1),
               strpbrk(r, "\r\n") ? ": it contains a line break" : "");
      code = local_failure(a, CLI_EX_DATAERR, SMTPUV_EADDRESS, msgbuf);
      goto out;
    }
  }
  if (a->cmd.nrecipients == 0 && !a->cmd.read_recipients) {
    code = local_failure(a, CLI_EX_USAGE, SMTPUV_EINVAL,
                         "no recipients given (name them as arguments, or "
                         "use -t to read them from the message)");
    goto out;
  }

  /* the header block (the body streams later) */
  int rc = cli_msg_read_header(&msg, err, sizeof err);
  if (rc != 0) {
    code = local_failure(a, rc,
                         rc == CLI_EX_OSERR   ? SMTPUV_ENOMEM
                         : rc == CLI_EX_IOERR ? SMTPUV_EIO
                                              : SMTPUV_EHEADER,
                         rc == CLI_EX_OSERR ? "out of memory" : err);
    goto out;
  }
  const char *hdr = msg.buf;
  size_t hdr_len = msg.hdr_end;
  if (a->cmd.from == NULL || a->cmd.read_envelope_from) {
    rc = cli_header_from(hdr, hdr_len, &header_from, err, sizeof err);
    if (rc == CLI_EX_OSERR) {
      code = local_failure(a, rc, SMTPUV_ENOMEM, "out of memory");
      goto out;
    }
    if (rc != 0 && a->cmd.read_envelope_from && a->cmd.from == NULL) {
      code = local_failure(a, CLI_EX_DATAERR, SMTPUV_EHEADER, err);
      goto out;
    }
  }

  /* the account: by -a, by the envelope sender, else "default" */
  rc = resolve(a, a->cmd.from != NULL           ? a->cmd.from
                  : a->cmd.read_envelope_from ? header_from
                                              : NULL);
  if (rc != 0) {
    code = rc;
    goto out;
  }
  if (c->host == NULL) {
    code = local_failure(a, CLI_EX_USAGE, SMTPUV_EINVAL,
                         "no server given: use --host=HOST, or an account "
                         "in ~/.msmtprc (see --help)");
    goto out;
  }
  if (strchr(c->host, ':') != NULL && c->host[0] != '[')
    snprintf(a->host_port, sizeof a->host_port, "[%s]:%u", c->host,
             effective_port(c));
  else
    snprintf(a->host_port, sizeof a->host_port, "%s:%u", c->host,
             effective_port(c));
  if (c->tls_trust_file != NULL && access(c->tls_trust_file, R_OK) != 0) {
    snprintf(msgbuf, sizeof msgbuf, "cannot read --tls-trust-file %s: %s",
             c->tls_trust_file, strerror(errno));
    code = local_failure(a, CLI_EX_CONFIG, SMTPUV_ETLS, msgbuf);
    goto out;
  }
  if (c->tls && !c->tls_certcheck)
    say("warning: --tls-certcheck=off: the server's certificate is not "
        "checked, anyone in between can read everything");

  rc = choose_sender(a, sender_buf, sizeof sender_buf, &sender);
  if (rc != 0) {
    code = rc;
    goto out;
  }
  if (sender == NULL) {
    if (header_from == NULL) {
      if (c->read_envelope_from) {
        code = local_failure(a, CLI_EX_DATAERR, SMTPUV_EHEADER,
                             err[0] ? err : "no From header");
      } else {
        snprintf(msgbuf, sizeof msgbuf,
                 "no envelope sender: use -f ADDR (%s)",
                 err[0] ? err : "no From header");
        code = local_failure(a, CLI_EX_USAGE, SMTPUV_EINVAL, msgbuf);
      }
      goto out;
    }
    sender = header_from;
  } else {
    size_t fl = strlen(sender);
    if (fl >= 2 && sender[0] == '<' && sender[fl - 1] == '>') {
      sender_copy = malloc(fl - 1);
      if (sender_copy == NULL) {
        code = local_failure(a, CLI_EX_OSERR, SMTPUV_ENOMEM, "out of memory");
        goto out;
      }
      memcpy(sender_copy, sender + 1, fl - 2);
      sender_copy[fl - 2] = '\0';
      sender = sender_copy;
    }
    if (smtpuv_check_address(sender, 1) != 0) {
      snprintf(msgbuf, sizeof msgbuf, "invalid sender address \"%s\"%s",
               shown(sender, b1, sizeof b1),
               strpbrk(sender, "\r\n") ? ": it contains a line break" : "");
      code = local_failure(a, CLI_EX_DATAERR, SMTPUV_EADDRESS, msgbuf);
      goto out;
    }
  }

  if (c->read_recipients) {
    rc = cli_header_recipients(hdr, hdr_len, &rcpts, err, sizeof err);
    if (rc != 0) {
      code = local_failure(a, rc,
                           rc == CLI_EX_OSERR ? SMTPUV_ENOMEM : SMTPUV_EHEADER,
                           rc == CLI_EX_OSERR ? "out of memory" : err);
      goto out;
    }
    if (rcpts.n == 0) {
      code = local_failure(a, CLI_EX_USAGE, SMTPUV_EINVAL,
                           "no recipients: none on the command line and no "
                           "To, Cc or Bcc header in the message");
      goto out;
    }
  }
  if (c->aliases != NULL) {
    rc = cli_aliases_apply(c->aliases, &rcpts, err, sizeof err);
    if (rc != 0) {
      code = local_failure(a, rc, SMTPUV_EINVAL,
                           rc == CLI_EX_OSERR ? "out of memory" : err);
      goto out;
    }
  }
  a->log_from = sender;
  a->log_rcpts = &rcpts;
  a->log_ready = 1;

  /* the header fields to add and to leave out */
  cli_rewrite w;
  memset(&w, 0, sizeof w);
  w.remove_bcc = c->remove_bcc;
  w.undisclosed = c->undisclosed;
  if (*sender != '\0' && (c->set_from_header == CLI_HDR_ON ||
                          (c->set_from_header == CLI_HDR_AUTO &&
                           !cli_msg_has_field(&msg, "From")))) {
    cli_from_header(&pre, c->full_name, sender);
    w.remove_from = 1;
  }
  if (c->undisclosed)
    cli_buf_puts(&pre, "To: undisclosed-recipients:;\n");
  if (c->set_date_header == CLI_HDR_AUTO && !cli_msg_has_field(&msg, "Date"))
    cli_date_header(&pre);
  if (c->set_msgid_header == CLI_HDR_AUTO &&
      !cli_msg_has_field(&msg, "Message-ID"))
    cli_msgid_header(&pre, sender);
  w.prepend = pre.p;
  w.prepend_len = pre.len;
  if (pre.oom || cli_msg_rewrite(&msg, &w) != 0) {
    code = local_failure(a, CLI_EX_OSERR, SMTPUV_ENOMEM, "out of memory");
    goto out;
  }

  /* authentication secret */
  if (want_auth(c)) {
    if (c->user == NULL) {
      code = local_failure(a, CLI_EX_USAGE, SMTPUV_EINVAL,
                           "--auth needs --user=NAME");
      goto out;
    }
    if (c->passwordeval == NULL && c->password == NULL) {
      code = local_failure(a, CLI_EX_USAGE, SMTPUV_EINVAL,
                           is_oauth(c)
                               ? "--auth needs a token: give --passwordeval=CMD"
                               : "--auth needs a password: give "
                                 "--passwordeval=CMD");
      goto out;
    }
    password = malloc(PASSWORD_MAX);
    if (password == NULL) {
      code = local_failure(a, CLI_EX_OSERR, SMTPUV_ENOMEM, "out of memory");
      goto out;
    }
    if (c->password != NULL) {
      snprintf(password, PASSWORD_MAX, "%s", c->password);
    } else {
      rc = cli_passwordeval(c->passwordeval, password, PASSWORD_MAX, err,
                            sizeof err);
      if (rc != 0) {
        code = local_failure(a, rc, SMTPUV_ECREDENTIALS, err);
        goto out;
      }
    }
  }
  code = build_options(a, password, &o);
  if (password != NULL) {
    OPENSSL_cleanse(password, PASSWORD_MAX);
    free(password);
    password = NULL;
  }
  cli_rc_wipe_passwords(&a->rc); /* the options hold their own copy */
  c->password = NULL;
  a->cmd.password = NULL;
  if (code != 0)
    goto out;

  /* envelope */
  smtpuv_mail_params mp = SMTPUV_MAIL_PARAMS_INIT;
  mp.dsn_ret = (smtpuv_dsn_ret)c->dsn_ret;
  int intl = !is_ascii(sender);
  for (size_t i = 0; i < rcpts.n && !intl; i++)
    intl = !is_ascii(rcpts.v[i]);
  mp.smtputf8 = intl;
  smtpuv_envelope env = SMTPUV_ENVELOPE_INIT;
  env.sender = sender;
  env.recipients = (const char *const *)rcpts.v;
  env.nrecipients = rcpts.n;
  env.mail_params = &mp;
  if (c->dsn_notify != 0) {
    rp = calloc(rcpts.n, sizeof *rp);
    if (rp == NULL) {
      code = local_failure(a, CLI_EX_OSERR, SMTPUV_ENOMEM, "out of memory");
      goto out;
    }
    for (size_t i = 0; i < rcpts.n; i++) {
      rp[i].struct_size = sizeof rp[i];
      rp[i].dsn_notify = c->dsn_notify;
    }
    env.rcpt_params = rp;
  }
  smtpuv_body body;
  smtpuv_body_init_stream(&body, cli_msg_read, NULL, &msg, 0);
  /* stdin may carry 8-bit bytes anywhere (a UTF-8 body past the first
     chunk): declare BODY=8BITMIME whenever the server offers it, rather
     than have the library abort the transaction when it sees one later */
  body.flags |= SMTPUV_BODY_8BIT;

  uv_loop_t loop;
  if (uv_loop_init(&loop) != 0) {
    code = local_failure(a, CLI_EX_OSERR, SMTPUV_ENOMEM, "cannot create a loop");
    goto out;
  }
  smtpuv_client *client;
  rc = smtpuv_client_new(&loop, o, &client);
  if (rc == 0) {
    rc = smtpuv_client_send(client, &env, &body, on_sent, a);
    if (rc != 0)
      smtpuv_client_close(client, NULL);
  }
  if (rc != 0) {
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    if (rc == SMTPUV_EADDRESS)
      snprintf(msgbuf, sizeof msgbuf, "invalid address: %s",
               smtpuv_strerror(rc));
    else
      snprintf(msgbuf, sizeof msgbuf, "%s", smtpuv_strerror(rc));
    code = local_failure(a, cli_exit_for_error(rc, SMTPUV_PHASE_NONE, 0), rc,
                         msgbuf);
    goto out;
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  if (c->debug)
    debug_flush_all(a);
  if (a->result == NULL) {
    code = local_failure(a, a->send_rc == SMTPUV_ENOMEM ? CLI_EX_OSERR
                                                        : CLI_EX_SOFTWARE,
                         a->send_rc ? a->send_rc : SMTPUV_ESTATE,
                         "no result from the client (internal error)");
    goto out;
  }
  if (msg.in_error && a->result->status != SMTPUV_SEND_SENT) {
    snprintf(msgbuf, sizeof msgbuf, "cannot read the message: %s",
             strerror(msg.in_errno));
    say_line(NULL, msgbuf, NULL);
  }
  a->log_size = msg.sent;
  code = report(a, a->result);
  log_outcome(a, a->result,
              a->result->message ? a->result->message : "", code);

out:
  a->log_ready = 0;
  if (password != NULL) {
    OPENSSL_cleanse(password, PASSWORD_MAX);
    free(password);
  }
  smtpuv_send_result_free(a->result);
  a->result = NULL;
  smtpuv_options_free(o);
  free(rp);
  cli_addrs_free(&rcpts);
  free(sender_copy);
  free(header_from);
  cli_buf_free(&pre);
  cli_msg_free(&msg);
  return code;
}

/* ---- main ---------------------------------------------------------------------------- */

static void version(app *a) {
  const smtpuv_info *v = smtpuv_version(0);
  char path[1100];
  printf("%s %s (libuv %s, %s)\n", CLI_NAME,
         v != NULL ? v->version_str : SMTPUV_VERSION, uv_version_string(),
         OpenSSL_version(OPENSSL_VERSION));
  user_file(a, path, sizeof path);
  printf("System configuration file name: %s\n", sysconf_file());
  printf("User configuration file name: %s\n", path);
  if (a->rc.nfiles == 0)
    printf("Configuration files read: (none)\n");
  for (size_t i = 0; i < a->rc.nfiles; i++)
    printf("Configuration file read: %s\n", a->rc.files[i]);
}

static int run_main(app *a) {
  char err[512];
  cli_config *c = &a->cmd;
  int rc = cli_args_parse(c, a->argc, a->argv, err, sizeof err);
  if (rc != 0) {
    /* --json promises one object on stdout, even for a bad command line */
    for (int i = 1; i < a->argc && a->argv[i] != NULL; i++)
      if (strcmp(a->argv[i], "--") == 0)
        break;
      else if (strcmp(a->argv[i], "--json") == 0)
        a->cfg.json = 1;
    return local_failure(a, rc,
                         rc == CLI_EX_OSERR ? SMTPUV_ENOMEM : SMTPUV_EINVAL,
                         rc == CLI_EX_OSERR ? "out of memory" : err);
  }
  a->cfg.json = c->json;
  if (c->mode == CLI_MODE_HELP) {
    fputs(cli_usage(), stdout);
    return 0;
  }
  if (c->host_given && c->account != NULL)
    return local_failure(a, CLI_EX_USAGE, SMTPUV_EINVAL,
                         "--account and --host cannot be used together");
  if ((rc = load_files(a)) != 0)
    return rc;
  if (c->mode == CLI_MODE_VERSION) {
    version(a);
    return 0;
  }
  if (c->mode == CLI_MODE_SEND)
    return send_mode(a);
  if ((rc = resolve(a, c->from)) != 0)
    return rc;
  cli_config *f = &a->cfg;
  if (f->host == NULL)
    return local_failure(a, CLI_EX_USAGE, SMTPUV_EINVAL,
                         "no server given: use --host=HOST, or an account "
                         "in ~/.msmtprc (see --help)");
  if (strchr(f->host, ':') != NULL && f->host[0] != '[')
    snprintf(a->host_port, sizeof a->host_port, "[%s]:%u", f->host,
             effective_port(f));
  else
    snprintf(a->host_port, sizeof a->host_port, "%s:%u", f->host,
             effective_port(f));
  if (f->tls_trust_file != NULL && access(f->tls_trust_file, R_OK) != 0) {
    char msg[700];
    snprintf(msg, sizeof msg, "cannot read --tls-trust-file %s: %s",
             f->tls_trust_file, strerror(errno));
    return local_failure(a, CLI_EX_CONFIG, SMTPUV_ETLS, msg);
  }
  if (c->mode == CLI_MODE_PRETEND) {
    pretend(a);
    return 0;
  }
  if (f->tls && !f->tls_certcheck)
    say("warning: --tls-certcheck=off: the server's certificate is not "
        "checked, anyone in between can read everything");
  smtpuv_options *o;
  rc = build_options(a, NULL, &o);
  if (rc == 0) {
    rc = serverinfo(a, o);
    smtpuv_options_free(o);
  }
  return rc;
}

int main(int argc, char **argv) {
  static app a;
  signal(SIGPIPE, SIG_IGN); /* a dead peer or a closed stdout: an error */
  cli_config_init(&a.cfg);
  cli_config_init(&a.cmd);
  a.argc = argc;
  a.argv = argv;
  int rc = run_main(&a);
  cli_config_free(&a.cfg);
  cli_config_free(&a.cmd);
  cli_rc_free(&a.rc);
  fflush(stdout);
  if (ferror(stdout) && rc == 0)
    rc = CLI_EX_IOERR;
  return rc;
}

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
  cli_config cfg;
  char host_port[300];
  /* result of the send */
  smtpuv_send_result *result;
  int send_rc;
  /* debug line assembly, one per direction */
  cli_buf line[3];
} app;

/* Finish the JSON object or the stderr line for a failure that happened
   before anything was sent; returns `code`. */
static int local_failure(app *a, int code, int err, const char *msg) {
  say_line(NULL, msg, NULL);
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
                            : c->tls_host_override;
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

static void pretend(const app *a) {
  const cli_config *c = &a->cfg;
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
  printf("tls_certcheck        = %s\n", c->tls_certcheck ? "on" : "off");
  printf("tls_host_override    = %s\n",
         c->tls_host_override ? c->tls_host_override : "(none)");
  printf("auth                 = %s\n",
         !want_auth(c)  ? "off"
         : c->auth_mech ? c->auth_mech
                        : "on (strongest mechanism offered)");
  printf("user                 = %s\n", c->user ? c->user : "(none)");
  printf("passwordeval         = %s\n",
         c->passwordeval ? c->passwordeval : "(none)");
  printf("allow_plaintext_auth = %s\n", c->allow_plaintext_auth ? "on" : "off");
  printf("from                 = %s\n",
         c->from ? (c->from[0] ? c->from : "<>") : "(From header)");
  printf("read_recipients      = %s\n", c->read_recipients ? "on" : "off");
  printf("remove_bcc_headers   = %s\n", c->remove_bcc ? "on" : "off");
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

/* Read all of standard input. */
static int read_stdin(char **out, size_t *outlen) {
  size_t cap = 65536, n = 0;
  char *buf = malloc(cap);
  if (buf == NULL)
    return CLI_EX_OSERR;
  for (;;) {
    if (n == cap) {
      if (cap > ((size_t)-1) / 4) {
        free(buf);
        return CLI_EX_OSERR;
      }
      char *nb = realloc(buf, cap * 2);
      if (nb == NULL) {
        free(buf);
        return CLI_EX_OSERR;
      }
      buf = nb;
      cap *= 2;
    }
    ssize_t r = read(0, buf + n, cap - n);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      free(buf);
      return CLI_EX_IOERR;
    }
    if (r == 0)
      break;
    n += (size_t)r;
  }
  *out = buf;
  *outlen = n;
  return 0;
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
    say_line(pre, rr->text, NULL);
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

static int send_mode(app *a) {
  cli_config *c = &a->cfg;
  char err[512] = "", b1[600];
  char msgbuf[1024];
  int code = 0;
  char *data = NULL, *stripped = NULL, *header_from = NULL;
  size_t len = 0, stripped_len = 0;
  cli_addrs rcpts = {0};
  const char *sender = NULL;
  char *sender_copy = NULL;
  char *password = NULL;
  smtpuv_options *o = NULL;
  smtpuv_rcpt_params *rp = NULL;

  /* command line recipients first: a usage problem needs no input */
  for (size_t i = 0; i < c->nrecipients; i++) {
    const char *r = c->recipients[i];
    size_t rl = strlen(r);
    if (rl == 0) {
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
  if (c->nrecipients == 0 && !c->read_recipients) {
    code = local_failure(a, CLI_EX_USAGE, SMTPUV_EINVAL,
                         "no recipients given (name them as arguments, or "
                         "use -t to read them from the message)");
    goto out;
  }
  if (c->from != NULL) {
    size_t fl = strlen(c->from);
    if (fl >= 2 && c->from[0] == '<' && c->from[fl - 1] == '>') {
      sender_copy = malloc(fl - 1);
      if (sender_copy == NULL) {
        code = local_failure(a, CLI_EX_OSERR, SMTPUV_ENOMEM, "out of memory");
        goto out;
      }
      memcpy(sender_copy, c->from + 1, fl - 2);
      sender_copy[fl - 2] = '\0';
      sender = sender_copy;
    } else {
      sender = c->from;
    }
    if (smtpuv_check_address(sender, 1) != 0) {
      snprintf(msgbuf, sizeof msgbuf, "invalid sender address \"%s\"%s",
               shown(c->from, b1, sizeof b1),
               strpbrk(c->from, "\r\n") ? ": it contains a line break" : "");
      code = local_failure(a, CLI_EX_DATAERR, SMTPUV_EADDRESS, msgbuf);
      goto out;
    }
  }

  /* the message */
  int rc = read_stdin(&data, &len);
  if (rc != 0) {
    snprintf(msgbuf, sizeof msgbuf, "cannot read the message: %s",
             rc == CLI_EX_OSERR ? "out of memory" : strerror(errno));
    code = local_failure(a, rc, rc == CLI_EX_OSERR ? SMTPUV_ENOMEM : SMTPUV_EIO,
                         msgbuf);
    goto out;
  }
  if (c->read_recipients) {
    rc = cli_header_recipients(data, len, &rcpts, err, sizeof err);
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
  if (c->from == NULL) {
    rc = cli_header_from(data, len, &header_from, err, sizeof err);
    if (rc == CLI_EX_OSERR) {
      code = local_failure(a, rc, SMTPUV_ENOMEM, "out of memory");
      goto out;
    }
    if (rc != 0) {
      if (c->read_envelope_from) {
        code = local_failure(a, CLI_EX_DATAERR, SMTPUV_EHEADER, err);
      } else {
        snprintf(msgbuf, sizeof msgbuf,
                 "no envelope sender: use -f ADDR (%s)", err);
        code = local_failure(a, CLI_EX_USAGE, SMTPUV_EINVAL, msgbuf);
      }
      goto out;
    }
    sender = header_from;
  }
  if (c->remove_bcc) {
    rc = cli_strip_bcc(data, len, &stripped, &stripped_len);
    if (rc != 0) {
      code = local_failure(a, rc, SMTPUV_ENOMEM, "out of memory");
      goto out;
    }
  }

  /* authentication secret */
  if (want_auth(c)) {
    if (c->user == NULL) {
      code = local_failure(a, CLI_EX_USAGE, SMTPUV_EINVAL,
                           "--auth needs --user=NAME");
      goto out;
    }
    if (c->passwordeval == NULL) {
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
    rc = cli_passwordeval(c->passwordeval, password, PASSWORD_MAX, err,
                          sizeof err);
    if (rc != 0) {
      code = local_failure(a, rc, SMTPUV_ECREDENTIALS, err);
      goto out;
    }
  }
  code = build_options(a, password, &o);
  if (password != NULL) {
    OPENSSL_cleanse(password, PASSWORD_MAX);
    free(password);
    password = NULL;
  }
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
  static const char empty[1] = "";
  if (stripped != NULL)
    smtpuv_body_init_buffer(&body, stripped, stripped_len);
  else
    smtpuv_body_init_buffer(&body, len ? data : empty, len);

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
  code = report(a, a->result);

out:
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
  free(stripped);
  free(data);
  return code;
}

/* ---- main ---------------------------------------------------------------------------- */

int main(int argc, char **argv) {
  static app a;
  char err[512];
  signal(SIGPIPE, SIG_IGN); /* a dead peer or a closed stdout: an error */
  cli_config_init(&a.cfg);
  int rc = cli_args_parse(&a.cfg, argc, argv, err, sizeof err);
  if (rc != 0) {
    /* --json promises one object on stdout, even for a bad command line */
    for (int i = 1; i < argc && argv[i] != NULL; i++)
      if (strcmp(argv[i], "--") == 0)
        break;
      else if (strcmp(argv[i], "--json") == 0)
        a.cfg.json = 1;
    rc = local_failure(&a, rc, rc == CLI_EX_OSERR ? SMTPUV_ENOMEM : SMTPUV_EINVAL,
                       rc == CLI_EX_OSERR ? "out of memory" : err);
    cli_config_free(&a.cfg);
    return rc;
  }
  cli_config *c = &a.cfg;
  if (c->mode == CLI_MODE_HELP) {
    fputs(cli_usage(), stdout);
    cli_config_free(c);
    return 0;
  }
  if (c->mode == CLI_MODE_VERSION) {
    const smtpuv_info *v = smtpuv_version(0);
    printf("%s %s (libuv %s, %s)\n", CLI_NAME,
           v != NULL ? v->version_str : SMTPUV_VERSION, uv_version_string(),
           OpenSSL_version(OPENSSL_VERSION));
    cli_config_free(c);
    return 0;
  }
  if (c->host == NULL) {
    rc = local_failure(&a, CLI_EX_USAGE, SMTPUV_EINVAL,
                       "no server given: use --host=HOST (see --help)");
    cli_config_free(c);
    return rc;
  }
  if (strchr(c->host, ':') != NULL && c->host[0] != '[')
    snprintf(a.host_port, sizeof a.host_port, "[%s]:%u", c->host,
             effective_port(c));
  else
    snprintf(a.host_port, sizeof a.host_port, "%s:%u", c->host,
             effective_port(c));
  if (c->tls_trust_file != NULL && access(c->tls_trust_file, R_OK) != 0) {
    char msg[700];
    snprintf(msg, sizeof msg, "cannot read --tls-trust-file %s: %s",
             c->tls_trust_file, strerror(errno));
    rc = local_failure(&a, CLI_EX_CONFIG, SMTPUV_ETLS, msg);
    cli_config_free(c);
    return rc;
  }
  if (c->mode == CLI_MODE_PRETEND) {
    pretend(&a);
    cli_config_free(c);
    return 0;
  }
  if (c->tls && !c->tls_certcheck)
    say("warning: --tls-certcheck=off: the server's certificate is not "
        "checked, anyone in between can read everything");
  if (c->mode == CLI_MODE_SERVERINFO) {
    smtpuv_options *o;
    rc = build_options(&a, NULL, &o);
    if (rc == 0) {
      rc = serverinfo(&a, o);
      smtpuv_options_free(o);
    }
    cli_config_free(c);
    return rc;
  }
  rc = send_mode(&a);
  cli_config_free(c);
  fflush(stdout);
  if (ferror(stdout) && rc == 0)
    rc = CLI_EX_IOERR;
  return rc;
}

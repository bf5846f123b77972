/* SPDX-License-Identifier: MIT */
/* smtpuv-send command line: msmtp's option names and meanings, sendmail's
 * short flags (the ones msmtp accepts and ignores, too), GNU-style parsing:
 * "--opt=value" or "--opt value" for options that need a value, "--opt" or
 * "--opt=value" for optional ones, short flags clustered ("-ti") with their
 * value attached ("-fme@x") or separate ("-f me@x"), "--" ends the options,
 * and every other argument is a recipient wherever it appears. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <ctype.h>
#include <syslog.h>

#include "cli.h"

enum arg_kind { ARG_NONE = 0, ARG_REQUIRED, ARG_OPTIONAL };

enum opt_id {
  O_HOST = 1,
  O_PORT,
  O_TIMEOUT,
  O_DOMAIN,
  O_AUTH,
  O_USER,
  O_PASSWORDEVAL,
  O_TLS,
  O_TLS_STARTTLS,
  O_TLS_TRUST_FILE,
  O_TLS_CERTCHECK,
  O_TLS_HOST_OVERRIDE,
  O_ALLOW_PLAINTEXT_AUTH,
  O_DSN_NOTIFY,
  O_DSN_RETURN,
  O_FROM,
  O_READ_RECIPIENTS,
  O_READ_ENVELOPE_FROM,
  O_REMOVE_BCC,
  O_DEBUG,
  O_SERVERINFO,
  O_PRETEND,
  O_JSON,
  O_HELP,
  O_VERSION,
  O_IGNORED,     /* sendmail flag without a value */
  O_IGNORED_ARG, /* sendmail flag with a value */
  O_SENDMAIL_B,  /* -bm only */
  O_UNSUPPORTED, /* an msmtp option smtpuv-send does not have */
  O_FILE,
  O_ACCOUNT,
  O_LOGFILE,
  O_LOGFILE_TIME_FORMAT,
  O_SYSLOG,
  O_PROTOCOL,
  O_TLS_KEY_FILE,
  O_TLS_CERT_FILE,
  O_TLS_FINGERPRINT,
  O_ALIASES,
  O_SOURCE_IP,
  O_MAILDOMAIN,
  O_AUTO_FROM,
  O_ADD_MISSING_FROM,
  O_ADD_MISSING_DATE,
  O_SET_FROM_HEADER,
  O_SET_DATE_HEADER,
  O_SET_MSGID_HEADER,
  O_UNDISCLOSED,
  O_FULL_NAME,
  O_PASSWORD,      /* configuration file only */
  O_ALLOW_FROM_OVERRIDE /* configuration file only */
};

/* Where an option may appear. */
enum { W_BOTH = 0, W_CLI, W_CONF };

typedef struct opt {
  const char *name; /* long name, or NULL */
  char short_name;  /* 0 if none */
  enum arg_kind kind;
  enum opt_id id;
  int where;        /* W_BOTH, W_CLI (command line only), W_CONF */
} opt;

static const opt OPTIONS[] = {
    {"host", 0, ARG_REQUIRED, O_HOST, 0},
    {"port", 0, ARG_REQUIRED, O_PORT, 0},
    {"timeout", 0, ARG_REQUIRED, O_TIMEOUT, 0},
    {"domain", 0, ARG_REQUIRED, O_DOMAIN, 0},
    {"auth", 0, ARG_OPTIONAL, O_AUTH, 0},
    {"user", 0, ARG_REQUIRED, O_USER, 0},
    {"passwordeval", 0, ARG_REQUIRED, O_PASSWORDEVAL, 0},
    {"tls", 0, ARG_OPTIONAL, O_TLS, 0},
    {"tls-starttls", 0, ARG_OPTIONAL, O_TLS_STARTTLS, 0},
    {"tls-trust-file", 0, ARG_REQUIRED, O_TLS_TRUST_FILE, 0},
    {"tls-certcheck", 0, ARG_OPTIONAL, O_TLS_CERTCHECK, 0},
    {"tls-host-override", 0, ARG_REQUIRED, O_TLS_HOST_OVERRIDE, 0},
    {"allow-plaintext-auth", 0, ARG_OPTIONAL, O_ALLOW_PLAINTEXT_AUTH, 0},
    {"dsn-notify", 'N', ARG_REQUIRED, O_DSN_NOTIFY, 0},
    {"dsn-return", 'R', ARG_REQUIRED, O_DSN_RETURN, 0},
    {"from", 'f', ARG_REQUIRED, O_FROM, 0},
    {"read-recipients", 't', ARG_NONE, O_READ_RECIPIENTS, W_CLI},
    {"read-envelope-from", 0, ARG_NONE, O_READ_ENVELOPE_FROM, W_CLI},
    {"remove-bcc-headers", 0, ARG_OPTIONAL, O_REMOVE_BCC, 0},
    {"debug", 'd', ARG_NONE, O_DEBUG, W_CLI},
    {NULL, 'v', ARG_NONE, O_DEBUG, 0}, /* msmtp: -v is --debug */
    {"serverinfo", 'S', ARG_NONE, O_SERVERINFO, W_CLI},
    {"pretend", 'P', ARG_NONE, O_PRETEND, W_CLI},
    {"json", 0, ARG_NONE, O_JSON, W_CLI},
    {"help", 0, ARG_NONE, O_HELP, W_CLI},
    {"version", 0, ARG_NONE, O_VERSION, W_CLI},
    /* sendmail flags msmtp accepts and ignores */
    {NULL, 'i', ARG_NONE, O_IGNORED, 0},
    {NULL, 'm', ARG_NONE, O_IGNORED, 0},
    {NULL, 'n', ARG_NONE, O_IGNORED, 0},
    {NULL, 'G', ARG_NONE, O_IGNORED, 0},
    {NULL, 'U', ARG_NONE, O_IGNORED, 0},
    {NULL, 'o', ARG_REQUIRED, O_IGNORED_ARG, 0}, /* -oi -odi -oem -o X */
    {NULL, 'O', ARG_REQUIRED, O_IGNORED_ARG, 0},
    {NULL, 'B', ARG_REQUIRED, O_IGNORED_ARG, 0},
    {NULL, 'F', ARG_REQUIRED, O_FULL_NAME, 0}, /* full name for From */
    {NULL, 'h', ARG_REQUIRED, O_IGNORED_ARG, 0}, /* hop count */
    {NULL, 'L', ARG_REQUIRED, O_IGNORED_ARG, 0},
    {NULL, 'A', ARG_REQUIRED, O_IGNORED_ARG, 0},
    {NULL, 'b', ARG_REQUIRED, O_SENDMAIL_B, 0},
    {"file", 'C', ARG_REQUIRED, O_FILE, W_CLI},
    {"account", 'a', ARG_REQUIRED, O_ACCOUNT, W_CLI},
    {"logfile", 'X', ARG_REQUIRED, O_LOGFILE, 0},
    {"logfile-time-format", 0, ARG_REQUIRED, O_LOGFILE_TIME_FORMAT, 0},
    {"syslog", 0, ARG_OPTIONAL, O_SYSLOG, 0},
    {"protocol", 0, ARG_REQUIRED, O_PROTOCOL, 0},
    {"tls-key-file", 0, ARG_REQUIRED, O_TLS_KEY_FILE, 0},
    {"tls-cert-file", 0, ARG_REQUIRED, O_TLS_CERT_FILE, 0},
    {"tls-fingerprint", 0, ARG_REQUIRED, O_TLS_FINGERPRINT, 0},
    {"aliases", 0, ARG_REQUIRED, O_ALIASES, 0},
    {"source-ip", 0, ARG_REQUIRED, O_SOURCE_IP, 0},
    {"maildomain", 0, ARG_REQUIRED, O_MAILDOMAIN, 0},
    {"auto-from", 0, ARG_OPTIONAL, O_AUTO_FROM, 0},
    {"add-missing-from-header", 0, ARG_OPTIONAL, O_ADD_MISSING_FROM, 0},
    {"add-missing-date-header", 0, ARG_OPTIONAL, O_ADD_MISSING_DATE, 0},
    {"set-from-header", 0, ARG_OPTIONAL, O_SET_FROM_HEADER, 0},
    {"set-date-header", 0, ARG_OPTIONAL, O_SET_DATE_HEADER, 0},
    {"set-msgid-header", 0, ARG_OPTIONAL, O_SET_MSGID_HEADER, 0},
    {"undisclosed-recipients", 0, ARG_OPTIONAL, O_UNDISCLOSED, 0},
    {"password", 0, ARG_REQUIRED, O_PASSWORD, W_CONF},
    {"allow-from-override", 0, ARG_OPTIONAL, O_ALLOW_FROM_OVERRIDE, W_CONF},
    /* msmtp options without an smtpuv-send counterpart */
    {"tls-crl-file", 0, ARG_REQUIRED, O_UNSUPPORTED, 0},
    {"tls-priorities", 0, ARG_REQUIRED, O_UNSUPPORTED, 0},
    {"tls-min-dh-prime-bits", 0, ARG_REQUIRED, O_UNSUPPORTED, 0},
    {"rmqs", 0, ARG_REQUIRED, O_UNSUPPORTED, W_CLI},
    {"configure", 0, ARG_REQUIRED, O_UNSUPPORTED, W_CLI},
    {"proxy-host", 0, ARG_REQUIRED, O_UNSUPPORTED, 0},
    {"proxy-port", 0, ARG_REQUIRED, O_UNSUPPORTED, 0},
    {"socket", 0, ARG_REQUIRED, O_UNSUPPORTED, 0},
    {"keepbcc", 0, ARG_OPTIONAL, O_UNSUPPORTED, 0},
};

#define NOPTIONS (sizeof OPTIONS / sizeof OPTIONS[0])

#if defined(__GNUC__) || defined(__clang__)
__attribute__((format(printf, 3, 4)))
#endif
static int usage_err(char *err, size_t errlen, const char *fmt, ...) {
  if (err != NULL && errlen > 0) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return CLI_EX_USAGE;
}

void cli_config_init(cli_config *c) {
  memset(c, 0, sizeof *c);
  c->tls = 1;
  c->tls_starttls = 1;
  c->tls_certcheck = 1;
  c->remove_bcc = 1;
  c->allow_from_override = 1;
}

void cli_config_free(cli_config *c) {
  free((void *)c->recipients);
  c->recipients = NULL;
  c->nrecipients = 0;
}

/* Quote a value for an error line: printable ASCII as is, the rest \xNN,
   at most ~60 characters. */
static const char *shown(const char *v, char *buf, size_t cap) {
  size_t o = 0;
  for (const unsigned char *p = (const unsigned char *)v; *p && o + 8 < cap;
       p++) {
    if (o > 60) {
      memcpy(buf + o, "...", 3);
      o += 3;
      break;
    }
    if (*p >= 0x20 && *p < 0x7f)
      buf[o++] = (char)*p;
    else
      o += (size_t)snprintf(buf + o, cap - o, "\\x%02X", *p);
  }
  buf[o] = '\0';
  return buf;
}

static int on_off(const char *name, const char *v, int *out, char *err,
                  size_t errlen) {
  if (v == NULL || strcmp(v, "on") == 0) {
    *out = 1;
    return 0;
  }
  if (strcmp(v, "off") == 0) {
    *out = 0;
    return 0;
  }
  char b[96];
  return usage_err(err, errlen, "--%s takes on or off, not '%s'", name,
                   shown(v, b, sizeof b));
}

static int parse_uint(const char *v, unsigned long max, unsigned long *out) {
  if (v == NULL || *v < '0' || *v > '9')
    return -1;
  errno = 0;
  char *end;
  unsigned long n = strtoul(v, &end, 10);
  if (errno != 0 || *end != '\0' || n > max)
    return -1;
  *out = n;
  return 0;
}

static int parse_notify(const char *v, unsigned *out, char *err,
                        size_t errlen) {
  char b[96];
  if (strcmp(v, "off") == 0) {
    *out = 0;
    return 0;
  }
  unsigned bits = 0;
  const char *p = v;
  for (;;) {
    const char *comma = strchr(p, ',');
    size_t n = comma ? (size_t)(comma - p) : strlen(p);
    if (n == 5 && strncasecmp(p, "never", 5) == 0)
      bits |= SMTPUV_DSN_NOTIFY_NEVER;
    else if (n == 7 && strncasecmp(p, "failure", 7) == 0)
      bits |= SMTPUV_DSN_NOTIFY_FAILURE;
    else if (n == 5 && strncasecmp(p, "delay", 5) == 0)
      bits |= SMTPUV_DSN_NOTIFY_DELAY;
    else if (n == 7 && strncasecmp(p, "success", 7) == 0)
      bits |= SMTPUV_DSN_NOTIFY_SUCCESS;
    else
      return usage_err(err, errlen,
                       "--dsn-notify takes off, never, or a list of "
                       "success,delay,failure, not '%s'",
                       shown(v, b, sizeof b));
    if (comma == NULL)
      break;
    p = comma + 1;
  }
  if ((bits & SMTPUV_DSN_NOTIFY_NEVER) && bits != SMTPUV_DSN_NOTIFY_NEVER)
    return usage_err(err, errlen,
                     "--dsn-notify: never cannot be combined with other "
                     "conditions");
  *out = bits;
  return 0;
}

/* "AB:CD:..." (or without colons): 32 bytes of SHA-256. */
static int check_fingerprint(const char *v) {
  size_t n = 0;
  for (const char *p = v; *p;) {
    if (!isxdigit((unsigned char)p[0]) || !isxdigit((unsigned char)p[1]))
      return -1;
    n++;
    p += 2;
    if (*p == ':')
      p++;
  }
  return n == 32 ? 0 : n == 20 || n == 16 ? 1 : -1;
}

static int syslog_facility(const char *v) {
  static const struct {
    const char *name;
    int fac;
  } t[] = {{"LOG_USER", LOG_USER},     {"LOG_MAIL", LOG_MAIL},
           {"LOG_LOCAL0", LOG_LOCAL0}, {"LOG_LOCAL1", LOG_LOCAL1},
           {"LOG_LOCAL2", LOG_LOCAL2}, {"LOG_LOCAL3", LOG_LOCAL3},
           {"LOG_LOCAL4", LOG_LOCAL4}, {"LOG_LOCAL5", LOG_LOCAL5},
           {"LOG_LOCAL6", LOG_LOCAL6}, {"LOG_LOCAL7", LOG_LOCAL7}};
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
    if (strcmp(v, t[i].name) == 0)
      return t[i].fac;
  return -1;
}

static int apply(cli_config *c, const opt *o, const char *v, int conf,
                 char *err, size_t errlen) {
  char b[96];
  unsigned long n;
  const char *name = o->name;
  switch (o->id) {
  case O_HOST:
    if (*v == '\0')
      return usage_err(err, errlen, "--host needs a host name");
    c->host = v;
    if (!conf)
      c->host_given = 1;
    return 0;
  case O_PORT:
    if (parse_uint(v, 65535, &n) != 0 || n == 0)
      return usage_err(err, errlen, "--port takes 1..65535, not '%s'",
                       shown(v, b, sizeof b));
    c->port = (unsigned)n;
    return 0;
  case O_TIMEOUT:
    if (strcmp(v, "off") == 0) {
      c->timeout = 0;
      c->timeout_off = 1;
      return 0;
    }
    if (parse_uint(v, 86400, &n) != 0 || n == 0)
      return usage_err(err, errlen,
                       "--timeout takes off or 1..86400 seconds, not '%s'",
                       shown(v, b, sizeof b));
    c->timeout = (unsigned)n;
    c->timeout_off = 0;
    return 0;
  case O_DOMAIN:
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
      if (*p <= 0x20 || *p >= 0x7f)
        return usage_err(err, errlen,
                         "--domain '%s' is not a valid EHLO name",
                         shown(v, b, sizeof b));
    if (*v == '\0' || strlen(v) > 255)
      return usage_err(err, errlen, "--domain needs a name (1..255 chars)");
    c->domain = v;
    return 0;
  case O_AUTH:
    if (v == NULL || strcmp(v, "on") == 0) {
      c->auth = CLI_AUTH_ON;
      c->auth_mech = NULL;
      return 0;
    }
    if (strcmp(v, "off") == 0) {
      c->auth = CLI_AUTH_OFF;
      c->auth_mech = NULL;
      return 0;
    }
    if (smtpuv_auth_mech_from_name(v) == SMTPUV_AUTH_MECH_NONE)
      return usage_err(err, errlen,
                       "--auth takes on, off, plain, login, cram-md5, "
                       "scram-sha-1, scram-sha-256, xoauth2 or oauthbearer, "
                       "not '%s'",
                       shown(v, b, sizeof b));
    c->auth = CLI_AUTH_ON;
    c->auth_mech = v;
    return 0;
  case O_USER:
    c->user = *v ? v : NULL;
    return 0;
  case O_PASSWORDEVAL:
    c->passwordeval = *v ? v : NULL;
    return 0;
  case O_TLS:
    return on_off(name, v, &c->tls, err, errlen);
  case O_TLS_STARTTLS:
    return on_off(name, v, &c->tls_starttls, err, errlen);
  case O_TLS_TRUST_FILE:
    c->tls_trust_file = (*v == '\0' || strcmp(v, "system") == 0) ? NULL : v;
    return 0;
  case O_TLS_CERTCHECK:
    return on_off(name, v, &c->tls_certcheck, err, errlen);
  case O_TLS_HOST_OVERRIDE:
    c->tls_host_override = *v ? v : NULL;
    return 0;
  case O_ALLOW_PLAINTEXT_AUTH:
    return on_off(name, v, &c->allow_plaintext_auth, err, errlen);
  case O_DSN_NOTIFY:
    return parse_notify(v, &c->dsn_notify, err, errlen);
  case O_DSN_RETURN:
    if (strcmp(v, "off") == 0)
      c->dsn_ret = SMTPUV_DSN_RET_UNSPECIFIED;
    else if (strcasecmp(v, "hdrs") == 0 || strcasecmp(v, "headers") == 0)
      c->dsn_ret = SMTPUV_DSN_RET_HDRS;
    else if (strcasecmp(v, "full") == 0)
      c->dsn_ret = SMTPUV_DSN_RET_FULL;
    else
      return usage_err(err, errlen,
                       "--dsn-return takes off, hdrs or full, not '%s'",
                       shown(v, b, sizeof b));
    return 0;
  case O_FROM:
    c->from = v;
    return 0;
  case O_READ_RECIPIENTS:
    c->read_recipients = 1;
    return 0;
  case O_READ_ENVELOPE_FROM:
    c->read_envelope_from = 1;
    return 0;
  case O_REMOVE_BCC:
    return on_off(name, v, &c->remove_bcc, err, errlen);
  case O_DEBUG:
    c->debug = 1;
    return 0;
  case O_SERVERINFO:
    c->mode = CLI_MODE_SERVERINFO;
    return 0;
  case O_PRETEND:
    c->mode = CLI_MODE_PRETEND;
    return 0;
  case O_JSON:
    c->json = 1;
    return 0;
  case O_HELP:
    c->mode = CLI_MODE_HELP;
    return 0;
  case O_VERSION:
    if (c->mode != CLI_MODE_HELP)
      c->mode = CLI_MODE_VERSION;
    return 0;
  case O_IGNORED:
  case O_IGNORED_ARG:
    return 0;
  case O_SENDMAIL_B:
    if (strcmp(v, "m") == 0)
      return 0;
    return usage_err(err, errlen,
                     "sendmail mode -b%s is not supported (only -bm)",
                     shown(v, b, sizeof b));
  case O_FILE:
    c->conffile = v;
    return 0;
  case O_ACCOUNT:
    c->account = v;
    return 0;
  case O_LOGFILE:
    c->logfile = *v ? v : NULL;
    return 0;
  case O_LOGFILE_TIME_FORMAT:
    c->logfile_time_format = *v ? v : NULL;
    return 0;
  case O_SYSLOG:
    if (v == NULL || strcmp(v, "on") == 0) {
      c->syslog_on = 1;
      c->syslog_facility = LOG_USER;
    } else if (strcmp(v, "off") == 0) {
      c->syslog_on = 0;
    } else if (syslog_facility(v) >= 0) {
      c->syslog_on = 1;
      c->syslog_facility = syslog_facility(v);
    } else {
      return usage_err(err, errlen,
                       "--syslog takes on, off, LOG_USER, LOG_MAIL or "
                       "LOG_LOCAL0..7, not '%s'",
                       shown(v, b, sizeof b));
    }
    return 0;
  case O_PROTOCOL:
    if (strcmp(v, "smtp") == 0)
      return 0;
    return usage_err(err, errlen, "--protocol: only smtp is supported, not '%s'",
                     shown(v, b, sizeof b));
  case O_TLS_KEY_FILE:
    c->tls_key_file = *v ? v : NULL;
    return 0;
  case O_TLS_CERT_FILE:
    c->tls_cert_file = *v ? v : NULL;
    return 0;
  case O_TLS_FINGERPRINT:
    if (*v == '\0') {
      c->tls_fingerprint = NULL;
      return 0;
    }
    switch (check_fingerprint(v)) {
    case 0:
      c->tls_fingerprint = v;
      return 0;
    case 1:
      return usage_err(err, errlen,
                       "--tls-fingerprint: only SHA-256 fingerprints are "
                       "accepted (SHA-1 and MD5 are too weak)");
    default:
      return usage_err(err, errlen,
                       "--tls-fingerprint takes a SHA-256 fingerprint "
                       "(32 hex pairs, AB:CD:...), not '%s'",
                       shown(v, b, sizeof b));
    }
  case O_ALIASES:
    c->aliases = *v ? v : NULL;
    return 0;
  case O_SOURCE_IP:
    if (*v == '\0')
      return 0;
    return usage_err(err, errlen,
                     "--source-ip is not supported by " CLI_NAME
                     " (the library cannot bind a source address)");
  case O_MAILDOMAIN:
    c->maildomain = v;
    return 0;
  case O_AUTO_FROM:
    return on_off(name, v, &c->auto_from, err, errlen);
  case O_ADD_MISSING_FROM:
  case O_ADD_MISSING_DATE: {
    int on;
    int rc = on_off(name, v, &on, err, errlen);
    if (rc == 0 && o->id == O_ADD_MISSING_FROM)
      c->set_from_header = on ? CLI_HDR_AUTO : CLI_HDR_OFF;
    else if (rc == 0)
      c->set_date_header = on ? CLI_HDR_AUTO : CLI_HDR_OFF;
    return rc;
  }
  case O_SET_FROM_HEADER:
    if (v == NULL || strcmp(v, "on") == 0)
      c->set_from_header = CLI_HDR_ON;
    else if (strcmp(v, "auto") == 0)
      c->set_from_header = CLI_HDR_AUTO;
    else if (strcmp(v, "off") == 0)
      c->set_from_header = CLI_HDR_OFF;
    else
      return usage_err(err, errlen,
                       "--set-from-header takes auto, on or off, not '%s'",
                       shown(v, b, sizeof b));
    return 0;
  case O_SET_DATE_HEADER:
  case O_SET_MSGID_HEADER: {
    int *f = o->id == O_SET_DATE_HEADER ? &c->set_date_header
                                        : &c->set_msgid_header;
    if (v == NULL || strcmp(v, "auto") == 0)
      *f = CLI_HDR_AUTO;
    else if (strcmp(v, "off") == 0)
      *f = CLI_HDR_OFF;
    else
      return usage_err(err, errlen, "--%s takes auto or off, not '%s'", name,
                       shown(v, b, sizeof b));
    return 0;
  }
  case O_UNDISCLOSED:
    return on_off(name, v, &c->undisclosed, err, errlen);
  case O_FULL_NAME:
    if (strpbrk(v, "\r\n") != NULL)
      return usage_err(err, errlen, "-F: the name contains a line break");
    c->full_name = *v ? v : NULL;
    return 0;
  case O_PASSWORD:
    c->password = v;
    return 0;
  case O_ALLOW_FROM_OVERRIDE:
    return on_off(name, v, &c->allow_from_override, err, errlen);
  case O_UNSUPPORTED:
    if (conf) {
      char cn[64];
      snprintf(cn, sizeof cn, "%s", name ? name : "?");
      for (char *p = cn; *p; p++)
        if (*p == '-')
          *p = '_';
      return usage_err(err, errlen, "command %s is not supported by " CLI_NAME,
                       cn);
    }
    return usage_err(err, errlen,
                     "msmtp's option --%s is not supported by " CLI_NAME
                     " (see --help)",
                     name ? name : "?");
  }
  return usage_err(err, errlen, "internal: unknown option id");
}

/* An exact long name, else the only one `name` is a prefix of (getopt_long's
   abbreviations). `*ambiguous` is set when several match. Options for the
   configuration file only are not on the command line. */
static const opt *find_long(const char *name, size_t n, int *ambiguous) {
  const opt *found = NULL;
  *ambiguous = 0;
  for (size_t i = 0; i < NOPTIONS; i++)
    if (OPTIONS[i].name != NULL && strlen(OPTIONS[i].name) == n &&
        memcmp(OPTIONS[i].name, name, n) == 0) {
      if (OPTIONS[i].where != W_CONF)
        return &OPTIONS[i];
      *ambiguous = 2; /* not an abbreviation of another one either */
      return NULL;
    }
  for (size_t i = 0; i < NOPTIONS; i++)
    if (OPTIONS[i].name != NULL && OPTIONS[i].where != W_CONF &&
        strlen(OPTIONS[i].name) > n && memcmp(OPTIONS[i].name, name, n) == 0) {
      if (found != NULL) {
        *ambiguous = 1;
        return NULL;
      }
      found = &OPTIONS[i];
    }
  return found;
}

int cli_config_command(cli_config *c, const char *name, const char *value,
                       char *err, size_t errlen) {
  char optname[64];
  size_t n = strlen(name);
  if (n == 0 || n >= sizeof optname)
  {
    usage_err(err, errlen, "unknown command");
    return CLI_EX_CONFIG;
  }
  for (size_t i = 0; i <= n; i++)
    optname[i] = name[i] == '_' ? '-' : name[i];
  const opt *o = NULL;
  for (size_t i = 0; i < NOPTIONS; i++)
    if (OPTIONS[i].name != NULL && OPTIONS[i].where != W_CLI &&
        strcmp(OPTIONS[i].name, optname) == 0 && strchr(name, '-') == NULL)
      o = &OPTIONS[i];
  if (o == NULL) {
    char b[96];
    usage_err(err, errlen, "unknown command %s", shown(name, b, sizeof b));
    return CLI_EX_CONFIG;
  }
  const char *v = value;
  if (o->kind == ARG_OPTIONAL && v != NULL && *v == '\0')
    v = NULL; /* an empty argument is "on" */
  if (o->kind == ARG_REQUIRED && v == NULL)
    v = "";
  int rc = apply(c, o, v, 1, err, errlen);
  return rc == CLI_EX_USAGE ? CLI_EX_CONFIG : rc;
}

static const opt *find_short(char ch) {
  for (size_t i = 0; i < NOPTIONS; i++)
    if (OPTIONS[i].short_name == ch)
      return &OPTIONS[i];
  return NULL;
}

int cli_args_parse(cli_config *c, int argc, char **argv, char *err,
                   size_t errlen) {
  char b[96];
  if (err != NULL && errlen > 0)
    err[0] = '\0';
  if (argc < 1)
    return 0;
  free((void *)c->recipients);
  c->nrecipients = 0;
  c->recipients = calloc((size_t)argc, sizeof *c->recipients);
  if (c->recipients == NULL)
    return CLI_EX_OSERR;
  int only_operands = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (a == NULL)
      break;
    if (only_operands || a[0] != '-' || a[1] == '\0') {
      if (a[0] == '-' && !only_operands)
        return usage_err(err, errlen,
                         "'-' is not an option or an address (standard "
                         "input is always read)");
      c->recipients[c->nrecipients++] = a;
      continue;
    }
    if (a[1] == '-') {
      if (a[2] == '\0') {
        only_operands = 1;
        continue;
      }
      const char *name = a + 2;
      const char *eq = strchr(name, '=');
      size_t n = eq ? (size_t)(eq - name) : strlen(name);
      int ambiguous;
      const opt *o = find_long(name, n, &ambiguous);
      if (o == NULL) {
        char nm[64];
        size_t k = n < sizeof nm - 1 ? n : sizeof nm - 1;
        memcpy(nm, name, k);
        nm[k] = '\0';
        if (ambiguous == 2)
          return usage_err(err, errlen,
                           "'%s' is a configuration file command, not an "
                           "option (see --help)",
                           shown(nm, b, sizeof b));
        return usage_err(err, errlen,
                         ambiguous ? "option '--%s' is ambiguous (see --help)"
                                   : "unknown option '--%s' (see --help)",
                         shown(nm, b, sizeof b));
      }
      const char *v = NULL;
      if (eq != NULL) {
        if (o->kind == ARG_NONE)
          return usage_err(err, errlen, "option --%s takes no value",
                           o->name);
        v = eq + 1;

      } else if (o->kind == ARG_REQUIRED) {
        if (i + 1 >= argc || argv[i + 1] == NULL)
          return usage_err(err, errlen, "option --%s needs a value",
                           o->name);
        v = argv[++i];
      }
      int rc = apply(c, o, v, 0, err, errlen);
      if (rc != 0)
        return rc;
      continue;
    }
    /* a cluster of short flags */
    for (const char *p = a + 1; *p; p++) {
      const opt *o = find_short(*p);
      if (o == NULL) {
        if ((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f)
          return usage_err(err, errlen, "unknown option '-%c' (see --help)",
                           *p);
        return usage_err(err, errlen, "unknown option '%s' (see --help)",
                         shown(a, b, sizeof b));
      }
      if (o->id == O_UNSUPPORTED)
        return usage_err(err, errlen,
                         "msmtp's option -%c%s%s%s is not supported by " CLI_NAME
                         " (see --help)",
                         *p, o->name ? " (--" : "", o->name ? o->name : "",
                         o->name ? ")" : "");
      if (o->kind == ARG_NONE) {
        int rc = apply(c, o, NULL, 0, err, errlen);
        if (rc != 0)
          return rc;
        continue;
      }
      const char *v;
      if (p[1] != '\0') {
        v = p + 1;
      } else {
        if (i + 1 >= argc || argv[i + 1] == NULL)
          return usage_err(err, errlen, "option -%c needs a value", *p);
        v = argv[++i];
      }
      int rc = apply(c, o, v, 0, err, errlen);
      if (rc != 0)
        return rc;
      break; /* the value ended the cluster */
    }
  }
  return 0;
}

const char *cli_usage(void) {
  return "Usage: " CLI_NAME " [option...] [--] recipient...\n"
         "       " CLI_NAME " [option...] -t [--] [recipient...]\n"
         "       " CLI_NAME " [option...] --serverinfo\n"
         "\n"
         "Reads a message (RFC 5322 headers and body) on standard input and "
         "sends it\n"
         "over SMTP, like msmtp and sendmail. Options use msmtp's names and "
         "may be\n"
         "abbreviated; settings come from msmtp's configuration files "
         "(/etc/msmtprc,\n"
         "~/.msmtprc or $XDG_CONFIG_HOME/msmtp/config) unless --host is "
         "given.\n"
         "See smtpuv-send(1).\n"
         "\n"
         "Configuration:\n"
         "  -C, --file=FILE           user configuration file\n"
         "  -a, --account=NAME        account (default: by -f, else "
         "\"default\")\n"
         "Server:\n"
         "  --host=HOST               SMTP server, no configuration file\n"
         "  --port=N                  port (default 587; 465 with "
         "--tls-starttls=off; 25 with --tls=off)\n"
         "  --timeout=(off|SECONDS)   network timeout for every step "
         "(default: 30 s connect,\n"
         "                            60 s per reply, 10 min for the final "
         "reply)\n"
         "  --domain=NAME             EHLO name (default: this host's name)\n"
         "TLS (on by default, with STARTTLS required):\n"
         "  --tls[=(on|off)]          off sends everything in plaintext\n"
         "  --tls-starttls[=(on|off)] off (with --tls=on) is implicit TLS, "
         "port 465 style\n"
         "  --tls-trust-file=FILE     trust the CAs in FILE (PEM) instead of "
         "the system's\n"
         "  --tls-certcheck[=(on|off)] off accepts any certificate (tests "
         "only!)\n"
         "  --tls-host-override=NAME  verify the certificate for NAME instead "
         "of --host\n"
         "  --tls-fingerprint=SHA256  trust only the certificate with this "
         "fingerprint\n"
         "  --tls-cert-file=FILE, --tls-key-file=FILE  client certificate "
         "(PEM)\n"
         "Authentication:\n"
         "  --auth[=(on|off|MECH)]    on (default when --user is given) picks "
         "the strongest\n"
         "                            mechanism; MECH: plain, login, "
         "cram-md5, scram-sha-1,\n"
         "                            scram-sha-256, xoauth2, oauthbearer\n"
         "  --user=NAME               user name\n"
         "  --passwordeval=CMD        run CMD with /bin/sh; the first line of "
         "its output is\n"
         "                            the password (the token for xoauth2 and "
         "oauthbearer)\n"
         "  --allow-plaintext-auth    allow AUTH without TLS (refused by "
         "default)\n"
         "Envelope (sendmail options):\n"
         "  -f ADDR, --from=ADDR      envelope sender ('' or '<>' for the "
         "null sender)\n"
         "  --read-envelope-from      envelope sender from the From header\n"
         "                            (default when neither is given)\n"
         "  -t, --read-recipients     add the To, Cc and Bcc header "
         "addresses to the recipients\n"
         "  --remove-bcc-headers[=(on|off)] Bcc headers are never "
         "transmitted (default on)\n"
         "  -N, --dsn-notify=(off|never|LIST)  DSN NOTIFY, LIST of "
         "success,delay,failure\n"
         "  -R, --dsn-return=(off|hdrs|full)   DSN RET\n"
         "  -F NAME                   display name of an added From field\n"
         "  --set-from-header[=(auto|on|off)], --set-date-header[=(auto|off)],"
         "\n"
         "  --set-msgid-header[=(auto|off)]  add From / Date / Message-ID "
         "(auto: when missing)\n"
         "  --undisclosed-recipients  To: undisclosed-recipients:; instead of "
         "To/Cc/Bcc\n"
         "  --aliases=FILE            replace local recipients (msmtp's "
         "aliases file)\n"
         "  --auto-from, --maildomain=DOMAIN  envelope sender USER@DOMAIN\n"
         "  -i -oi -odi -oem -m -n -G -U -bm -h N -L TAG -O OPT -B "
         "TYPE -A X\n"
         "                            accepted and ignored, as msmtp does\n"
         "Output:\n"
         "  -d, -v, --debug           print the SMTP conversation on stderr "
         "(AUTH redacted)\n"
         "  -S, --serverinfo          print the server's greeting, "
         "extensions, SIZE, AUTH\n"
         "                            mechanisms and TLS certificate, then "
         "exit\n"
         "  -P, --pretend             print the settings that would be used "
         "and exit\n"
         "  --json                    print one JSON object with the outcome "
         "on stdout\n"
         "  -X, --logfile=FILE        msmtp's log line per message ('-': "
         "stdout)\n"
         "  --logfile-time-format=FMT, --syslog[=(on|off|LOG_MAIL|...)]\n"
         "  --help, --version\n"
         "\n"
         "Exit status (sysexits.h):\n"
         "  0  every recipient accepted     68 host name unknown\n"
         "  64 usage error                  69 permanent refusal (5xx) or "
         "missing extension\n"
         "  65 bad message or address       74 connection or I/O error "
         "(refused, reset)\n"
         "  75 temporary failure: 4xx, timeout, or connection lost after "
         "the final '.'\n"
         "     (the message may have been delivered: retrying risks a "
         "duplicate)\n"
         "  76 the server broke the protocol   77 authentication failed\n"
         "  78 configuration: TLS required but not offered, certificate "
         "rejected,\n"
         "     AUTH without TLS, --passwordeval failed\n"
         "When some recipients are refused the message still goes to the "
         "others, the\n"
         "refused ones are named on stderr, and the status is 69 if any "
         "refusal was\n"
         "permanent, else 75.\n"
         "\n"
         "Differences from msmtp, on purpose: TLS is on by default and "
         "STARTTLS is\n"
         "required; AUTH without TLS is refused unless "
         "--allow-plaintext-auth; --user\n"
         "turns AUTH on; the envelope sender defaults to the From header; "
         "a connection\n"
         "that cannot be made or breaks is 74 (msmtp: 75); --json; see "
         "smtpuv-send(1).\n";
}

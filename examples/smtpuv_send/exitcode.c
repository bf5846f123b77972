/* SPDX-License-Identifier: MIT */
/* smtpuv outcome -> sysexits.h exit status.
 *
 * The table follows what a caller of sendmail can act on:
 *   75 EX_TEMPFAIL   try again later: 4xx replies (421 too), timeouts, and a
 *                    connection lost after the final "." (outcome unknown:
 *                    a retry may duplicate the message, but not retrying may
 *                    lose it, and a queueing caller resolves that way)
 *   74 EX_IOERR      the connection could not be made or broke before the
 *                    final "." (refused, reset, write error). msmtp says 75
 *                    for these; we keep "no answer from the network" apart
 *                    from "the server said later"
 *   69 EX_UNAVAILABLE the server said no for good (5xx) or lacks something
 *                    the message needs (SMTPUTF8, 8BITMIME, DSN, SIZE, AUTH)
 *   78 EX_CONFIG     fix the settings: TLS required but not offered or
 *                    refused, certificate rejected, AUTH over plaintext,
 *                    unusable credentials
 */
#include <stddef.h>

#include "cli.h"

static int reply_class(int code) {
  if (code >= 500 && code <= 599)
    return CLI_EX_UNAVAILABLE;
  if (code >= 400 && code <= 499)
    return CLI_EX_TEMPFAIL;
  return 0;
}

int cli_exit_for_error(int err, smtpuv_phase phase, int reply_code) {
  switch (err) {
  case 0:
    return CLI_EX_OK;
  case SMTPUV_EINVAL:
    return CLI_EX_USAGE;
  case SMTPUV_ESTATE:
  case SMTPUV_EBUSY:
  case SMTPUV_EAGAIN:
  case SMTPUV_ECLOSED:
    return CLI_EX_SOFTWARE;
  case SMTPUV_ENOMEM:
    return CLI_EX_OSERR;
  case SMTPUV_EADDRESS:
  case SMTPUV_EHEADER:
  case SMTPUV_ELIMIT:
  case SMTPUV_EBINARY:
    return CLI_EX_DATAERR;
  case SMTPUV_ENOEXT:
  case SMTPUV_E8BIT:
  case SMTPUV_ETOOBIG:
  case SMTPUV_EAUTHMECH:
    return CLI_EX_UNAVAILABLE;
  case SMTPUV_ENORCPT: {
    int c = reply_class(reply_code);
    return c ? c : CLI_EX_UNAVAILABLE;
  }
  case SMTPUV_ECANCELED:
  case SMTPUV_EFULL:
    return CLI_EX_TEMPFAIL;
  case SMTPUV_EBODY:
    return CLI_EX_IOERR;
  case SMTPUV_EPROTO:
  case SMTPUV_EINJECT:
    return CLI_EX_PROTOCOL;
  case SMTPUV_ETEMPFAIL:
  case SMTPUV_ESHUTDOWN:
    return CLI_EX_TEMPFAIL;
  case SMTPUV_EPERMFAIL: {
    int c = reply_class(reply_code);
    return c ? c : CLI_EX_UNAVAILABLE;
  }
  case SMTPUV_EAUTH:
    /* 454 4.7.0 "temporary authentication failure" is worth a retry */
    return reply_class(reply_code) == CLI_EX_TEMPFAIL ? CLI_EX_TEMPFAIL
                                                      : CLI_EX_NOPERM;
  case SMTPUV_EAUTHSERVER:
    return CLI_EX_NOPERM;
  case SMTPUV_EPLAINTEXT:
  case SMTPUV_ECREDENTIALS:
    return CLI_EX_CONFIG;
  case SMTPUV_ERESOLVE:
    return CLI_EX_NOHOST;
  case SMTPUV_ECONNECT:
  case SMTPUV_ECONNLOST:
  case SMTPUV_EIO:
    return CLI_EX_IOERR;
  case SMTPUV_ETIMEDOUT:
    return CLI_EX_TEMPFAIL;
  case SMTPUV_ETLS:
    /* a handshake that fails is a settings problem (CA file, versions);
       a broken record later on is an I/O error */
    return (phase == SMTPUV_PHASE_TLS || phase == SMTPUV_PHASE_CONNECT ||
            phase == SMTPUV_PHASE_NONE)
               ? CLI_EX_CONFIG
               : CLI_EX_IOERR;
  case SMTPUV_ENOTLS:
    /* STARTTLS answered 454 "TLS not available due to temporary reason":
       try again later; not offered, or refused for good: the settings */
    return reply_class(reply_code) == CLI_EX_TEMPFAIL ? CLI_EX_TEMPFAIL
                                                      : CLI_EX_CONFIG;
  case SMTPUV_ECERT:
    return CLI_EX_CONFIG;
  /* SOCKS5 proxy (smtpuv/socks5.h): the proxy's own verdicts */
  case SMTPUV_EPROXY:
    return CLI_EX_PROTOCOL;
  case SMTPUV_EPROXYMETHOD:
    return CLI_EX_CONFIG; /* credentials missing or of a kind it lacks */
  case SMTPUV_EPROXYAUTH:
  case SMTPUV_EPROXYRULES:
    return CLI_EX_NOPERM;
  case SMTPUV_EPROXYFAIL:
  case SMTPUV_EPROXYTTL:
    return CLI_EX_TEMPFAIL;
  case SMTPUV_EPROXYNETUNREACH:
  case SMTPUV_EPROXYHOSTUNREACH:
  case SMTPUV_EPROXYREFUSED:
    return CLI_EX_IOERR; /* as a direct connection that fails */
  case SMTPUV_EPROXYCMD:
  case SMTPUV_EPROXYATYP:
    return CLI_EX_UNAVAILABLE;
  default:
    break;
  }
  /* a code this table does not know: go by the reply, else internal */
  int c = reply_class(reply_code);
  return c ? c : CLI_EX_SOFTWARE;
}

int cli_exit_for_result(const smtpuv_send_result *r) {
  if (r == NULL)
    return CLI_EX_SOFTWARE;
  if (r->status == SMTPUV_SEND_UNKNOWN || r->status == SMTPUV_SEND_CANCELED)
    return CLI_EX_TEMPFAIL;
  /* refused recipients decide when that is what went wrong */
  int refused = 0, perm = 0, temp = 0;
  for (size_t i = 0; i < r->nrecipients; i++) {
    const smtpuv_rcpt_result *rr = &r->recipients[i];
    if (rr->accepted)
      continue;
    if (rr->code >= 500)
      perm = 1, refused = 1;
    else if (rr->code >= 400)
      temp = 1, refused = 1;
  }
  if (r->status == SMTPUV_SEND_SENT) {
    if (r->error == 0 && !refused)
      return CLI_EX_OK;
    if (perm)
      return CLI_EX_UNAVAILABLE;
    if (temp)
      return CLI_EX_TEMPFAIL;
    /* sent, but the library reports a problem without a refused
       recipient (a recipient never answered): not all accepted */
    return r->error != 0 ? cli_exit_for_error(r->error, r->phase,
                                              r->reply_code)
                         : CLI_EX_OK;
  }
  if (r->error == SMTPUV_ENORCPT && refused)
    return perm ? CLI_EX_UNAVAILABLE : CLI_EX_TEMPFAIL;
  int code = cli_exit_for_error(r->error, r->phase, r->reply_code);
  return code == CLI_EX_OK ? CLI_EX_SOFTWARE : code; /* failed is never 0 */
}

const char *cli_exit_name(int code) {
  switch (code) {
  case CLI_EX_OK:
    return "EX_OK";
  case CLI_EX_USAGE:
    return "EX_USAGE";
  case CLI_EX_DATAERR:
    return "EX_DATAERR";
  case CLI_EX_NOHOST:
    return "EX_NOHOST";
  case CLI_EX_UNAVAILABLE:
    return "EX_UNAVAILABLE";
  case CLI_EX_SOFTWARE:
    return "EX_SOFTWARE";
  case CLI_EX_OSERR:
    return "EX_OSERR";
  case CLI_EX_IOERR:
    return "EX_IOERR";
  case CLI_EX_TEMPFAIL:
    return "EX_TEMPFAIL";
  case CLI_EX_PROTOCOL:
    return "EX_PROTOCOL";
  case CLI_EX_NOPERM:
    return "EX_NOPERM";
  case CLI_EX_CONFIG:
    return "EX_CONFIG";
  default:
    return "EX_UNKNOWN";
  }
}

/* SPDX-License-Identifier: MIT */
/*
 * core_conversation — drive smtpuv's sans-io protocol core through one full
 * ESMTP conversation against a scripted in-memory server, and print the
 * wire, line by line ("C:" what the core wrote, "S:" what the server sent).
 *
 * No sockets: the "server" below reads the client's bytes and answers like
 * a small MTA that offers PIPELINING, 8BITMIME, SIZE and CHUNKING. The client
 * side is the real core: greeting -> EHLO -> MAIL/RCPT/DATA pipelined in one
 * write -> body (with a line starting with '.', and bare LFs) -> "." -> QUIT.
 *
 * Exit status 0 when the conversation completed as expected, 1 otherwise.
 */
#include <smtpuv.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* The scripted server                                                       */
/* ------------------------------------------------------------------------ */

typedef struct server {
  char line[2048]; /* the client line being assembled */
  size_t line_len;
  int in_data;     /* between 354 and the final "." */
  size_t body_bytes;
  size_t body_lines;
  char out[8192];  /* replies not yet delivered to the client */
  size_t out_len;
  int quit;
} server;

static void server_say(server *s, const char *reply) {
  size_t n = strlen(reply);
  if (s->out_len + n > sizeof(s->out)) {
    fprintf(stderr, "scripted server: reply buffer full\n");
    exit(1);
  }
  memcpy(s->out + s->out_len, reply, n);
  s->out_len += n;
}

static int starts_with(const char *line, const char *prefix) {
  size_t n = strlen(prefix);
  return strncmp(line, prefix, n) == 0;
}

/* One complete line from the client (without its CRLF). */
static void server_line(server *s, const char *line) {
  if (s->in_data) {
    if (strcmp(line, ".") == 0) {
      s->in_data = 0;
      server_say(s, "250 2.0.0 Ok: queued as 4F2A1C\r\n");
    } else {
      /* undo the dot-stuffing, as a real server does */
      s->body_bytes += strlen(line[0] == '.' ? line + 1 : line) + 2;
      s->body_lines++;
    }
    return;
  }
  if (starts_with(line, "EHLO ")) {
    server_say(s, "250-mail.example.org Hello client.example\r\n"
                  "250-PIPELINING\r\n"
                  "250-8BITMIME\r\n"
                  "250-SIZE 10485760\r\n"
                  "250-ENHANCEDSTATUSCODES\r\n"
                  "250 CHUNKING\r\n");
  } else if (starts_with(line, "MAIL FROM:")) {
    server_say(s, "250 2.1.0 Sender ok\r\n");
  } else if (starts_with(line, "RCPT TO:")) {
    server_say(s, "250 2.1.5 Recipient ok\r\n");
  } else if (strcmp(line, "DATA") == 0) {
    s->in_data = 1;
    server_say(s, "354 End data with <CR><LF>.<CR><LF>\r\n");
  } else if (strcmp(line, "QUIT") == 0) {
    s->quit = 1;
    server_say(s, "221 2.0.0 Bye\r\n");
  } else {
    server_say(s, "500 5.5.2 Error: command not recognized\r\n");
  }
}

/* Bytes from the client: print and process every complete line. */
static void server_receive(server *s, const char *p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (p[i] == '\n' && s->line_len > 0 && s->line[s->line_len - 1] == '\r') {
      s->line[s->line_len - 1] = '\0';
      printf("C: %s\n", s->line);
      server_line(s, s->line);
      s->line_len = 0;
    } else if (s->line_len + 1 < sizeof(s->line)) {
      s->line[s->line_len++] = p[i];
    } else {
      fprintf(stderr, "scripted server: client line too long\n");
      exit(1);
    }
  }
}

/* Print the pending replies as the server sends them. */
static void server_print_out(const server *s) {
  const char *p = s->out, *end = s->out + s->out_len;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t len = (size_t)((nl ? nl : end) - p);
    printf("S: %.*s\n", (int)(len > 0 && p[len - 1] == '\r' ? len - 1 : len), p);
    p += len + (nl ? 1 : 0);
  }
}

/* ------------------------------------------------------------------------ */
/* The client: smtpuv's protocol core                                         */
/* ------------------------------------------------------------------------ */

static const char BODY[] =
    "From: Alice <alice@example.org>\r\n"
    "To: Bob <bob@example.net>\r\n"
    "Subject: Hello from the smtpuv core\r\n"
    "\r\n"
    "Hi Bob,\n"                       /* a bare LF: the core sends CRLF */
    ".this line starts with a dot\n"  /* dot-stuffed on the wire */
    ".\n"                             /* a lone dot is not the end */
    "Bye.";                           /* no final newline: the core adds CRLF */

static int fail(const char *what, int rc) {
  fprintf(stderr, "core_conversation: %s failed: %s (%s)\n", what,
          smtpuv_err_name(rc), smtpuv_strerror(rc));
  return 1;
}

/* Hand everything the core wants to write to the server. */
static void flush_to_server(smtpuv_proto *p, server *s) {
  const void *ptr;
  size_t len;
  for (smtpuv_proto_outgoing(p, &ptr, &len); len > 0;
       smtpuv_proto_outgoing(p, &ptr, &len)) {
    server_receive(s, ptr, len);
    smtpuv_proto_consumed(p, len);
  }
}

int main(void) {
  smtpuv_proto *p = NULL;
  server srv;
  int rc, done = 0, delivered = 0, steps = 0;

  memset(&srv, 0, sizeof(srv));
  if ((rc = smtpuv_proto_new(NULL, &p)) < 0)
    return fail("smtpuv_proto_new", rc);

  server_say(&srv, "220 mail.example.org ESMTP scripted server\r\n");

  /* Each round: deliver the server's replies, let the core pop them and
     issue its next commands, deliver those to the server. Bounded. */
  while (!done && steps++ < 20) {
    smtpuv_reply r;
    server_print_out(&srv);
    rc = smtpuv_proto_feed(p, srv.out, srv.out_len);
    srv.out_len = 0;
    if (rc < 0)
      goto proto_error;

    while ((rc = smtpuv_proto_next_reply(p, &r)) == 1) {
      printf("   -- %s reply %d%s%s%s\n", smtpuv_cmd_name(r.command), r.code,
             r.enhanced[0] ? " (" : "", r.enhanced, r.enhanced[0] ? ")" : "");
      if (!r.positive) {
        fprintf(stderr, "core_conversation: unexpected failure reply %d %s\n",
                r.code, r.text);
        goto out;
      }
      switch (r.command) {
      case SMTPUV_CMD_GREETING:
        if ((rc = smtpuv_proto_ehlo(p, "client.example")) < 0)
          { fail("EHLO", rc); goto out; }
        break;
      case SMTPUV_CMD_EHLO: {
        smtpuv_mail_params mp = SMTPUV_MAIL_PARAMS_INIT;
        unsigned ext = smtpuv_proto_extensions(p);
        printf("   -- server %s offers:%s%s%s%s, SIZE limit %llu\n",
               smtpuv_proto_server_name(p),
               ext & SMTPUV_EXT_PIPELINING ? " PIPELINING" : "",
               ext & SMTPUV_EXT_8BITMIME ? " 8BITMIME" : "",
               ext & SMTPUV_EXT_CHUNKING ? " CHUNKING" : "",
               ext & SMTPUV_EXT_ENHANCEDSTATUSCODES ? " ENHANCEDSTATUSCODES" : "",
               (unsigned long long)smtpuv_proto_max_size(p));
        printf("   -- pipelining: MAIL, RCPT and DATA go out in one write\n");
        mp.size = sizeof(BODY) - 1;
        if ((rc = smtpuv_proto_mail(p, "alice@example.org", &mp)) < 0)
          { fail("MAIL", rc); goto out; }
        if ((rc = smtpuv_proto_rcpt(p, "bob@example.net", NULL)) < 0)
          { fail("RCPT", rc); goto out; }
        if ((rc = smtpuv_proto_data(p)) < 0)
          { fail("DATA", rc); goto out; }
        break;
      }
      case SMTPUV_CMD_DATA:
        /* Any chunking works: split the body at awkward places. */
        if ((rc = smtpuv_proto_data_write(p, BODY, 10)) < 0 ||
            (rc = smtpuv_proto_data_write(p, BODY + 10, sizeof(BODY) - 1 - 10)) < 0)
          { fail("data_write", rc); goto out; }
        if ((rc = smtpuv_proto_data_end(p)) < 0)
          { fail("data_end", rc); goto out; }
        break;
      case SMTPUV_CMD_DATA_END:
        delivered = 1;
        if ((rc = smtpuv_proto_quit(p)) < 0)
          { fail("QUIT", rc); goto out; }
        break;
      case SMTPUV_CMD_QUIT:
        done = 1;
        break;
      default:
        break;
      }
    }
    if (rc < 0)
      goto proto_error;
    flush_to_server(p, &srv);
  }

  printf("-- conversation %s: message %s, server got %zu body lines (%zu bytes), "
         "core state %s\n",
         done ? "complete" : "INCOMPLETE", delivered ? "accepted" : "NOT accepted",
         srv.body_lines, srv.body_bytes, smtpuv_state_name(smtpuv_proto_state(p)));
  smtpuv_proto_free(p);
  return done && delivered && srv.quit ? 0 : 1;

proto_error:
  fprintf(stderr, "core_conversation: protocol error %s: %s\n", smtpuv_err_name(rc),
          smtpuv_proto_error_text(p));
out:
  smtpuv_proto_free(p);
  return 1;
}

/* SPDX-License-Identifier: MIT */
/* An asynchronous HTTP endpoint that turns each request into an email, on
 * one libuv loop with one shared smtpuv client.
 *
 *   notify_server LISTEN-PORT SMTP-HOST SMTP-PORT CA-FILE USER PASSWORD FROM
 *
 *   curl -s -X POST --data-binary 'Disk almost full' \
 *     'http://127.0.0.1:8025/send?to=ops@example.com,dev@example.com&subject=alert'
 *   {"status":"sent","message":"250 2.0.0 OK ...","recipients":[
 *     {"address":"ops@example.com","accepted":true,"code":250,"text":"..."},...]}
 *
 * What it shows:
 *   - queueing: every request calls smtpuv_client_send() at once; the client
 *     sends the messages in order over one kept-alive, pipelined connection,
 *     so many requests in flight cost one SMTP session;
 *   - per-recipient results: the HTTP response is written from the send
 *     callback and lists what the server said about each recipient
 *     (HTTP 200 sent to all or some of them, 502 not sent, 504 outcome
 *     unknown, 503 canceled);
 *   - graceful shutdown on SIGINT/SIGTERM: stop accepting, let the messages
 *     already queued finish and answer their requests, then
 *     smtpuv_client_close() (QUIT) and let the loop run dry;
 *   - composing: smtpuv/compose.h makes the message (Date, Message-ID, a
 *     UTF-8 subject as encoded words, the body as 7bit or quoted-printable)
 *     and streams it into the client's body, its envelope from the headers;
 *   - a request whose HTTP client went away still gets its email sent: the
 *     request record lives until both the socket is closed and the send
 *     callback has run.
 * Listens on 127.0.0.1 only; LISTEN-PORT 0 picks a free port (printed).
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>

#include <smtpuv/client.h>
#include <smtpuv/compose.h>

#define MAX_REQUEST 65536
#define MAX_RCPTS 50

typedef struct request request;
struct request {
  uv_tcp_t tcp;
  request *prev, *next; /* open connections */
  unsigned id;
  int refs;             /* the socket + a send in flight */
  int sock_closing;
  int handled;          /* a request was read and answered or queued */
  char *in;
  size_t inlen;
  smtpuv_compose *mail; /* the email (kept until the send callback) */
  char *rcpt_buf;
  size_t nrcpts;
  uv_write_t wr;
  char *out;
};

static struct {
  uv_loop_t *loop;
  uv_tcp_t listener;
  uv_signal_t sigint, sigterm;
  smtpuv_client *client;
  const char *from;
  request *open;        /* open connections */
  unsigned next_id;
  unsigned in_flight;   /* sends whose callback has not run */
  int shutting_down;
  int client_closing;
} S;

static void request_unref(request *r) {
  if (--r->refs > 0)
    return;
  free(r->in);
  smtpuv_compose_free(r->mail);
  free(r->rcpt_buf);
  free(r->out);
  free(r);
}

static void on_sock_closed(uv_handle_t *h) { request_unref(h->data); }

static void close_request(request *r) {
  if (r->sock_closing)
    return;
  r->sock_closing = 1;
  if (r->prev)
    r->prev->next = r->next;
  else
    S.open = r->next;
  if (r->next)
    r->next->prev = r->prev;
  uv_close((uv_handle_t *)&r->tcp, on_sock_closed);
}

static void maybe_finish_shutdown(void) {
  if (!S.shutting_down || S.in_flight > 0 || S.client_closing)
    return;
  S.client_closing = 1;
  printf("all messages done: closing the SMTP client\n");
  fflush(stdout);
  smtpuv_client_close(S.client, NULL); /* QUIT; the loop then runs dry */
  /* connections that never sent a request */
  while (S.open != NULL)
    close_request(S.open);
}

/* ---- responses ------------------------------------------------------------- */

static void on_written(uv_write_t *w, int status) {
  (void)status;
  close_request(w->data);
}

static void respond(request *r, int code, const char *json) {
  if (r->sock_closing)
    return;
  const char *reason = code == 200   ? "OK"
                       : code == 400 ? "Bad Request"
                       : code == 404 ? "Not Found"
                       : code == 413 ? "Payload Too Large"
                       : code == 503 ? "Service Unavailable"
                       : code == 504 ? "Gateway Timeout"
                                     : "Bad Gateway";
  size_t n = strlen(json);
  r->out = malloc(n + 256);
  if (r->out == NULL) {
    close_request(r);
    return;
  }
  int h = snprintf(r->out, 256,
                   "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                   "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                   code, reason, n);
  memcpy(r->out + h, json, n);
  uv_buf_t b = uv_buf_init(r->out, (unsigned)(h + (int)n));
  r->wr.data = r;
  uv_read_stop((uv_stream_t *)&r->tcp);
  if (uv_write(&r->wr, (uv_stream_t *)&r->tcp, &b, 1, on_written) != 0)
    close_request(r);
}

/* A JSON string (control characters escaped). */
static void json_str(char **p, char *end, const char *s) {
  char *o = *p;
  if (o < end)
    *o++ = '"';
  for (; *s && o + 7 < end; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') {
      *o++ = '\\';
      *o++ = (char)c;
    } else if (c < 0x20) {
      o += snprintf(o, (size_t)(end - o), "\\u%04x", c);
    } else {
      *o++ = (char)c;
    }
  }
  if (o < end)
    *o++ = '"';
  *p = o;
}

#if defined(__GNUC__) || defined(__clang__)
__attribute__((format(printf, 3, 4)))
#endif
static void put(char **p, char *end, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(*p, (size_t)(end - *p), fmt, ap);
  va_end(ap);
  if (n > 0)
    *p += n < end - *p ? n : end - *p - 1;
}

static void respond_error(request *r, int code, const char *what) {
  char buf[1024], *p = buf, *end = buf + sizeof buf - 1;
  put(&p, end, "{\"status\":\"rejected\",\"message\":");
  json_str(&p, end, what);
  put(&p, end, "}\n");
  *p = '\0';
  respond(r, code, buf);
}

/* ---- the send callback ---------------------------------------------------------- */

static void on_sent(smtpuv_client *c, const smtpuv_send_result *res,
                    void *data) {
  request *r = data;
  (void)c;
  S.in_flight--;
  const char *word = smtpuv_send_status_name(res->status);
  printf("#%u %s: %s\n", r->id, word, res->message);
  fflush(stdout);
  size_t cap = 1024 + res->nrecipients * 1200;
  char *buf = malloc(cap);
  if (buf != NULL) {
    char *p = buf, *end = buf + cap - 1;
    put(&p, end, "{\"status\":");
    json_str(&p, end,
             res->status == SMTPUV_SEND_SENT      ? "sent"
             : res->status == SMTPUV_SEND_UNKNOWN ? "unknown"
             : res->status == SMTPUV_SEND_CANCELED ? "canceled"
                                                   : "failed");
    put(&p, end, ",\"message\":");
    json_str(&p, end, res->message);
    put(&p, end, ",\"accepted\":%zu,\"recipients\":[", res->naccepted);
    for (size_t i = 0; i < res->nrecipients; i++) {
      const smtpuv_rcpt_result *x = &res->recipients[i];
      put(&p, end, "%s{\"address\":", i ? "," : "");
      json_str(&p, end, x->address);
      put(&p, end, ",\"accepted\":%s,\"code\":%d,\"text\":",
          x->accepted ? "true" : "false", x->code);
      json_str(&p, end, x->text);
      put(&p, end, "}");
    }
    put(&p, end, "]}\n");
    *p = '\0';
    int code = 502;
    if (res->status == SMTPUV_SEND_SENT) /* to some or all recipients */
      code = 200;
    else if (res->status == SMTPUV_SEND_UNKNOWN)
      code = 504;
    else if (res->status == SMTPUV_SEND_CANCELED)
      code = 503;
    respond(r, code, buf);
    free(buf);
  } else {
    close_request(r);
  }
  request_unref(r);
  maybe_finish_shutdown();
}

/* ---- requests ---------------------------------------------------------------------- */

static int hexval(int c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  c = tolower(c);
  return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Decode %XX and '+' in place; 0, or -1 on a malformed escape. */
static int url_decode(char *s) {
  char *o = s;
  for (; *s; s++) {
    if (*s == '+') {
      *o++ = ' ';
    } else if (*s == '%') {
      int h = hexval((unsigned char)s[1]), l = h < 0 ? -1 : hexval((unsigned char)s[2]);
      if (h < 0 || l < 0)
        return -1;
      *o++ = (char)(h * 16 + l);
      s += 2;
    } else {
      *o++ = *s;
    }
  }
  *o = '\0';
  return 0;
}

static int has_ctl(const char *s) {
  for (; *s; s++)
    if ((unsigned char)*s < 0x20 || *s == 0x7f)
      return 1;
  return 0;
}

static void handle(request *r, char *head, const char *body, size_t blen) {
  r->handled = 1;
  char *sp1 = strchr(head, ' ');
  char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
  if (sp1 == NULL || sp2 == NULL) {
    respond_error(r, 400, "malformed request line");
    return;
  }
  *sp1 = *sp2 = '\0';
  char *target = sp1 + 1;
  char *query = strchr(target, '?');
  if (query)
    *query++ = '\0';
  if (strcmp(head, "POST") != 0 || strcmp(target, "/send") != 0) {
    respond_error(r, 404, "use POST /send?to=ADDR[,ADDR...]&subject=TEXT");
    return;
  }
  if (S.shutting_down) {
    respond_error(r, 503, "shutting down");
    return;
  }
  char *to = NULL, *subject = "Notification";
  for (char *kv = query ? strtok(query, "&") : NULL; kv != NULL;
       kv = strtok(NULL, "&")) {
    char *eq = strchr(kv, '=');
    if (eq == NULL)
      continue;
    *eq = '\0';
    if (url_decode(eq + 1) != 0) {
      respond_error(r, 400, "bad %-escape in the query");
      return;
    }
    if (strcmp(kv, "to") == 0)
      to = eq + 1;
    else if (strcmp(kv, "subject") == 0)
      subject = eq + 1;
  }
  /* header injection: no line break may reach the message headers */
  if (to == NULL || *to == '\0' || has_ctl(to) || has_ctl(subject)) {
    respond_error(r, 400, "need to=ADDR[,ADDR...]; no control characters "
                          "in to or subject");
    return;
  }
  r->rcpt_buf = strdup(to);
  if (r->rcpt_buf == NULL) {
    respond_error(r, 503, "out of memory");
    return;
  }
  /* the message: smtpuv/compose.h writes Date, Message-ID, MIME headers,
     encodes a UTF-8 subject and body, and checks every address */
  int rc = smtpuv_compose_new(NULL, SMTPUV_COMPOSE_REPLACE_INVALID, &r->mail);
  if (rc == 0)
    rc = smtpuv_compose_address(r->mail, SMTPUV_COMPOSE_FROM, NULL, S.from);
  for (char *a = strtok(r->rcpt_buf, ","); rc == 0 && a && r->nrcpts < MAX_RCPTS;
       a = strtok(NULL, ","))
    if (*a) {
      rc = smtpuv_compose_address(r->mail, SMTPUV_COMPOSE_TO, NULL, a);
      r->nrcpts++;
    }
  if (rc == 0)
    rc = smtpuv_compose_subject(r->mail, subject);
  if (rc == 0)
    rc = smtpuv_compose_text(r->mail, body, blen);
  if (rc == 0)
    rc = smtpuv_compose_finish(r->mail);
  if (rc != 0) {
    char why[256];
    snprintf(why, sizeof why, "%s: %s", smtpuv_err_name(rc), smtpuv_strerror(rc));
    respond_error(r, rc == SMTPUV_ENOMEM ? 503 : 400, why);
    return;
  }
  /* envelope from its headers, body streamed from it; r->mail lives
     until on_sent */
  rc = smtpuv_client_send_composed(S.client, r->mail, on_sent, r);
  if (rc != 0) {
    char why[256];
    snprintf(why, sizeof why, "%s: %s", smtpuv_err_name(rc),
             smtpuv_strerror(rc));
    respond_error(r, rc == SMTPUV_EADDRESS || rc == SMTPUV_EINVAL ? 400 : 503,
                  why);
    return;
  }
  r->refs++;
  S.in_flight++;
  printf("#%u queued for %zu recipient%s (%u in flight)\n", r->id, r->nrcpts,
         r->nrcpts == 1 ? "" : "s", S.in_flight);
  fflush(stdout);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b) {
  request *r = h->data;
  (void)suggested;
  if (r->in == NULL)
    r->in = malloc(MAX_REQUEST + 1);
  *b = uv_buf_init(r->in ? r->in + r->inlen : NULL,
                   r->in ? (unsigned)(MAX_REQUEST - r->inlen) : 0);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  request *r = s->data;
  (void)b;
  if (n < 0) {
    close_request(r);
    return;
  }
  if (r->handled || r->in == NULL)
    return;
  r->inlen += (size_t)n;
  r->in[r->inlen] = '\0';
  char *eoh = strstr(r->in, "\r\n\r\n");
  if (eoh == NULL) {
    if (r->inlen >= MAX_REQUEST)
      respond_error(r, 413, "request too large");
    return;
  }
  size_t hlen = (size_t)(eoh - r->in) + 4;
  size_t clen = 0;
  for (char *l = strstr(r->in, "\r\n"); l && l < eoh; l = strstr(l + 2, "\r\n"))
    if (strncasecmp(l + 2, "Content-Length:", 15) == 0)
      clen = strtoul(l + 17, NULL, 10);
  if (clen > MAX_REQUEST - hlen) {
    respond_error(r, 413, "request too large");
    return;
  }
  if (r->inlen < hlen + clen)
    return; /* more body to come */
  char *line_end = strstr(r->in, "\r\n");
  *line_end = '\0';
  handle(r, r->in, r->in + hlen, clen);
}

static void on_connection(uv_stream_t *server, int status) {
  if (status < 0 || S.shutting_down)
    return;
  request *r = calloc(1, sizeof *r);
  if (r == NULL)
    return;
  r->id = ++S.next_id;
  r->refs = 1;
  uv_tcp_init(S.loop, &r->tcp);
  r->tcp.data = r;
  r->next = S.open;
  if (S.open)
    S.open->prev = r;
  S.open = r;
  if (uv_accept(server, (uv_stream_t *)&r->tcp) != 0 ||
      uv_read_start((uv_stream_t *)&r->tcp, on_alloc, on_read) != 0)
    close_request(r);
}

/* ---- shutdown ---------------------------------------------------------------------- */

static void on_signal(uv_signal_t *h, int signum) {
  (void)h;
  if (S.shutting_down)
    return;
  S.shutting_down = 1;
  printf("signal %d: no new requests; %u message%s in flight\n", signum,
         S.in_flight, S.in_flight == 1 ? "" : "s");
  fflush(stdout);
  uv_close((uv_handle_t *)&S.listener, NULL);
  uv_close((uv_handle_t *)&S.sigint, NULL);
  uv_close((uv_handle_t *)&S.sigterm, NULL);
  /* connections still sending their request are let go */
  for (request *r = S.open, *next; r != NULL; r = next) {
    next = r->next;
    if (!r->handled)
      close_request(r);
  }
  maybe_finish_shutdown();
}

int main(int argc, char **argv) {
  if (argc != 8) {
    fprintf(stderr,
            "usage: %s LISTEN-PORT SMTP-HOST SMTP-PORT CA-FILE USER PASSWORD "
            "FROM\n",
            argv[0]);
    return 64;
  }
  S.loop = uv_default_loop();
  S.from = argv[7];

  smtpuv_options *o;
  if (smtpuv_options_new(NULL, &o) != 0)
    return 71;
  smtpuv_options_set_host(o, argv[2]);
  smtpuv_options_set_port(o, (unsigned)strtoul(argv[3], NULL, 10));
  if (strcmp(argv[4], "-") != 0)
    smtpuv_options_set_ca(o, argv[4], NULL);
  smtpuv_options_set_credentials(o, argv[5], argv[6], NULL);
  int rc = smtpuv_client_new(S.loop, o, &S.client);
  smtpuv_options_free(o);
  if (rc != 0) {
    fprintf(stderr, "smtpuv_client_new: %s\n", smtpuv_strerror(rc));
    return 70;
  }

  struct sockaddr_in addr;
  uv_ip4_addr("127.0.0.1", atoi(argv[1]), &addr);
  uv_tcp_init(S.loop, &S.listener);
  rc = uv_tcp_bind(&S.listener, (const struct sockaddr *)&addr, 0);
  if (rc == 0)
    rc = uv_listen((uv_stream_t *)&S.listener, 128, on_connection);
  if (rc != 0) {
    fprintf(stderr, "listen on 127.0.0.1:%s: %s\n", argv[1], uv_strerror(rc));
    return 69;
  }
  struct sockaddr_storage ss;
  int len = sizeof ss;
  uv_tcp_getsockname(&S.listener, (struct sockaddr *)&ss, &len);
  printf("listening on 127.0.0.1:%d\n",
         ntohs(((struct sockaddr_in *)&ss)->sin_port));
  fflush(stdout);

  uv_signal_init(S.loop, &S.sigint);
  uv_signal_init(S.loop, &S.sigterm);
  uv_signal_start(&S.sigint, on_signal, SIGINT);
  uv_signal_start(&S.sigterm, on_signal, SIGTERM);

  uv_run(S.loop, UV_RUN_DEFAULT);
  printf("stopped\n");
  return uv_loop_close(S.loop) == 0 ? 0 : 70;
}

/* SPDX-License-Identifier: MIT */
/* smtpuv-bench: an SMTP load generator on the public client API, with
 * smtp-source's options where they exist, so that the two can be run on the
 * same workload against Postfix's smtp-sink (see bench/compare.sh).
 *
 *   smtpuv-bench [options] host[:port]
 *
 * Model (matching smtp-source):
 *   -s N   sessions: N smtpuv_client objects on ONE uv loop (one thread).
 *   --connections=N  ONE client with a pool of up to N connections
 *          (smtpuv_options_set_max_connections), the way a service uses it;
 *          --depth=N sets the pipeline depth per connection.
 *   -m N   messages in total, taken from one shared counter by whichever
 *          session has room (like smtp-source's sessions).
 *   -d     reuse connections: each session is one client that keeps its
 *          connection. Without -d every message gets a new client (a new
 *          connection, EHLO, the message, QUIT), as smtp-source does.
 *   -w N   window: messages queued per client and not yet completed
 *          (default 16). The client pipelines across messages only when
 *          the next message is already queued when the body of the current
 *          one is written, so N must be at least 2; more than the client's
 *          own in-flight limit just keeps its queue non-empty. -w 0 queues
 *          each session's share (-m / -s) at once.
 *
 * Message content: like smtp-source's -l: From, To, Date and Message-Id
 * headers (Subject with -S), an empty line, then LENGTH bytes of 80-byte
 * lines ("0XXX...X\r\n", first character a cycling digit); a final partial
 * line gets a CRLF. Sixteen variants differing in their Message-Id are
 * built once and cycled (the buffers are shared read-only by every message
 * in flight). -F FILE streams the file instead: every message reads it in
 * 64 KiB pieces with pread() through smtpuv_body_init_stream (rewindable),
 * so memory stays flat whatever the size.
 *
 * Output: a human summary on stdout and a last line
 *   RESULT key=value ...
 * with msgs, sent, failed, wall_s, msgs_per_s, cpu_s, cpu_us_per_msg,
 * cpu_s_per_1000, maxrss_kib (and the --hold figures). Exit status 0 only
 * when every send callback reported SMTPUV_SEND_SENT; otherwise 1 and the
 * first failure's message is printed. 2 for usage errors.
 *
 * --threads T (needs -d, -s 1, no -F, no --hold): ONE client on the loop
 *          thread, fed by T submitter threads through
 *          smtpuv_client_send_threadsafe(); each thread submits its share of
 *          -m with at most -w of its messages outstanding (-w 0: no limit).
 *          CPU figures cover every thread of the process.
 *
 * --hold (needs -d): every session first sends one message and keeps its
 * connection; once all sessions have completed that first message (all
 * connected, EHLO done, idle) the resident set size is sampled, then the
 * remaining messages are sent. Prints (RSS_connected - RSS_baseline) / N as
 * the RSS per connection, and the library heap per client as seen by a
 * counting smtpuv_mem allocator (OpenSSL and libuv allocations excluded).
 *
 * --pool-hold (needs --connections N, -d, -s 1): the pool's version of
 * --hold. Every message is queued at once (-w 0); against a server that
 * delays its DATA reply (smtp-sink -w) each connection carries one message
 * at a time, so the pool opens as many connections as it may. Once every
 * message is done (the connections idle, none closed yet) the RSS is
 * sampled and divided by the connections opened (counted in the trace).
 * --connecting=N sets smtpuv_options_set_max_connecting() (how many are
 * set up at once).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <smtpuv/client.h>

#define NVARIANTS 16
#define READ_PIECE 65536
#define MAX_RCPTS 1000

/* ------------------------------------------------------------------------ */
/* Configuration and state                                                   */
/* ------------------------------------------------------------------------ */

typedef struct bench bench;

typedef struct session {
  bench *b;
  smtpuv_client *c;
  unsigned idx;
  unsigned inflight;  /* queued on c, callback not yet run */
  int first_done;     /* --hold: the first message completed */
  int closing;
} session;

/* A streamed (-F) message's read position; from a free list. */
typedef struct fsrc {
  struct fsrc *next;
  bench *b;
  uint64_t off;
} fsrc;

struct bench {
  /* options */
  const char *host;
  unsigned port;
  unsigned sessions;
  unsigned connections; /* --connections: one client's pool size */
  unsigned depth;       /* --depth: pipeline depth (0: the default) */
  unsigned connecting;  /* --connecting: setups at once (0: the default) */
  int pool_hold;        /* --pool-hold */
  int window_set;       /* -w given */
  unsigned long messages;
  long length;          /* -1: smtp-source's default one-line body */
  const char *file;
  int reuse;
  unsigned window;
  int hold;
  int counter;
  int quiet;
  int count_alloc;
  unsigned nrcpt;
  const char *from, *to, *myhost, *subject;
  smtpuv_tls_mode tls;
  const char *ca_file, *tls_name, *user, *password;
  int insecure, chunking, pipelining;
  unsigned timeout_s;
  unsigned threads;     /* --threads: submitter threads (0: none) */

  /* run */
  uv_loop_t *loop;
  smtpuv_options *opts;
  session *sess;
  char *bodies[NVARIANTS];
  size_t body_len[NVARIANTS];
  const char **rcpts;
  char **rcpt_store;
  int fd;
  uint64_t file_size, file_wire_size;
  fsrc *free_src;
  uv_timer_t watchdog;
  int watchdog_open;
  int timed_out;

  unsigned long queued, done, sent, failed, send_errors;
  unsigned long variant;
  unsigned clients_alive, first_done_count;
  int hold_phase;       /* 1 while waiting for every first message */
  char first_failure[512];

  /* measurements */
  double t_start, t_end;
  struct rusage ru_start, ru_end;
  long rss_baseline_kib, rss_connected_kib;
  long heap_baseline, heap_connected;
  double t_connected;

  /* counting allocator */
  long heap_live, heap_peak;

  /* TLS at scale: --reconnect, --no-resume; OpenSSL's heap with --heap */
  int reconnect, no_resume;
  int wait_quit;                 /* --reconnect: next message after the 221 */
  uv_timer_t next_timer;         /* ... sent from here, outside the trace */
  unsigned long connects, resumed, quits;
  long ossl_live, ossl_peak, ossl_baseline, ossl_connected;
};

static bench B;

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */
/* ------------------------------------------------------------------------ */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double ru_cpu(const struct rusage *r) {
  return (double)r->ru_utime.tv_sec + (double)r->ru_utime.tv_usec * 1e-6 +
         (double)r->ru_stime.tv_sec + (double)r->ru_stime.tv_usec * 1e-6;
}

/* Current resident set size in KiB (from /proc/self/statm), -1 if unknown. */
static long rss_now_kib(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  if (f == NULL)
    return -1;
  long size, resident;
  int n = fscanf(f, "%ld %ld", &size, &resident);
  fclose(f);
  if (n != 2)
    return -1;
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static void die_usage(const char *msg) {
  if (msg != NULL)
    fprintf(stderr, "smtpuv-bench: %s\n", msg);
  fprintf(stderr,
"usage: smtpuv-bench [options] host[:port]\n"
"  -s N        sessions: clients on one loop (default 1)\n"
"  --connections=N  each client keeps up to N connections (its pool;\n"
"              needs -d; the default window grows N times)\n"
"  --depth=N   messages on the wire per connection (pipeline depth)\n"
"  --connecting=N  at most N connections of a client set up at once\n"
"  --pool-hold (with --connections, -d, -s 1) queue every message, sample\n"
"              RSS once all are done, per connection the pool opened\n"
"  -m N        messages in total (default 1)\n"
"  -l N        payload length in bytes (smtp-source's -l)\n"
"  -F FILE     stream FILE as the message (headers and body)\n"
"  -d          reuse connections (default: one connection per message)\n"
"  -w N        messages queued per client (default 16; 0 = its whole share)\n"
"  -f FROM     sender (default foo@MYHOST)\n"
"  -t TO       recipient (default foo@MYHOST)\n"
"  -r N        recipients per message (numbers prepended, like smtp-source)\n"
"  -M MYHOST   EHLO name and default address domain (default: host name)\n"
"  -S SUBJECT  add a Subject header\n"
"  -c          running counter on stderr\n"
"  -q          quiet: only the RESULT line\n"
"  --tls=none|required|opportunistic|implicit   (default none)\n"
"  --ca=FILE, --tls-name=NAME, --insecure (no certificate check)\n"
"  --user=U --password=P   AUTH (plaintext AUTH allowed with --tls=none)\n"
"  --bdat      use BDAT when the server offers CHUNKING (the default)\n"
"  --no-bdat   never use BDAT\n"
"  --no-pipelining\n"
"  --hold      (with -d) connect every session first, sample RSS, then send\n"
"  --heap      count the library's heap through a counting allocator\n"
"              (and OpenSSL's, through CRYPTO_set_mem_functions)\n"
"  --reconnect (with -d -s 1) every message on a new connection of the one\n"
"              client (idle timeout 1 ms, next message after the 221)\n"
"  --no-resume smtpuv_options_set_tls_resumption(0): full handshakes\n"

"  --timeout=S give up after S seconds (default 600)\n"
"  --threads=T (with -d -s 1) T threads submit to the one client\n");
  exit(2);
}

static unsigned long parse_ulong(const char *s, const char *what) {
  char *end;
  errno = 0;
  unsigned long v = strtoul(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || s[0] == '-') {
    char m[128];
    snprintf(m, sizeof m, "bad number for %s: %s", what, s);
    die_usage(m);
  }
  return v;
}

/* ------------------------------------------------------------------------ */
/* Counting allocator (--heap): a 16-byte header holds the size.             */
/* ------------------------------------------------------------------------ */

#define HDR 16

static void *cnt_malloc(size_t n, void *u) {
  bench *b = u;
  unsigned char *p = malloc(n + HDR);
  if (p == NULL)
    return NULL;
  memcpy(p, &n, sizeof n);
  b->heap_live += (long)n;
  if (b->heap_live > b->heap_peak)
    b->heap_peak = b->heap_live;
  return p + HDR;
}

static void cnt_free(void *ptr, void *u) {
  bench *b = u;
  if (ptr == NULL)
    return;
  unsigned char *p = (unsigned char *)ptr - HDR;
  size_t n;
  memcpy(&n, p, sizeof n);
  b->heap_live -= (long)n;
  free(p);
}

static void *cnt_calloc(size_t k, size_t n, void *u) {
  if (n != 0 && k > SIZE_MAX / n)
    return NULL;
  void *p = cnt_malloc(k * n, u);
  if (p != NULL)
    memset(p, 0, k * n);
  return p;
}

static void *cnt_realloc(void *ptr, size_t n, void *u) {
  bench *b = u;
  if (ptr == NULL)
    return cnt_malloc(n, u);
  unsigned char *p = (unsigned char *)ptr - HDR;
  size_t old;
  memcpy(&old, p, sizeof old);
  unsigned char *q = realloc(p, n + HDR);
  if (q == NULL)
    return NULL;
  memcpy(q, &n, sizeof n);
  b->heap_live += (long)n - (long)old;
  if (b->heap_live > b->heap_peak)
    b->heap_peak = b->heap_live;
  return q + HDR;
}

/* ------------------------------------------------------------------------ */
/* Message content                                                           */
/* ------------------------------------------------------------------------ */

/* smtp-source-like message: headers, blank line, payload of `length`
   bytes in 80-byte lines. */
static char *build_message(const bench *b, unsigned variant, size_t *len) {
  char hdr[1024];
  char date[64];
  time_t t = time(NULL);
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000 (UTC)", &tm);
  int h = snprintf(hdr, sizeof hdr,
                   "From: <%s>\r\nTo: <%s>\r\nDate: %s\r\n"
                   "Message-Id: <%04x.%04x.%04x@%s>\r\n%s%s%s\r\n",
                   b->from, b->to, date, (unsigned)getpid() & 0xffff, 0u,
                   variant, b->myhost, b->subject ? "Subject: " : "",
                   b->subject ? b->subject : "", b->subject ? "\r\n" : "");
  if (h < 0 || (size_t)h >= sizeof hdr) {
    fprintf(stderr, "smtpuv-bench: header too long\n");
    exit(2);
  }
  size_t plen = b->length < 0 ? 10 : (size_t)b->length;
  char *m = malloc((size_t)h + plen + 2);
  if (m == NULL) {
    fprintf(stderr, "smtpuv-bench: out of memory\n");
    exit(1);
  }
  memcpy(m, hdr, (size_t)h);
  char *p = m + h;
  if (b->length < 0) {
    memcpy(p, "La La La\r\n", 10);
  } else {
    memset(p, 'X', plen);
    for (size_t i = 0; i < plen; i += 80) {
      p[i] = "0123456789"[(i / 80 + variant) % 10];
      if (i + 80 <= plen) {
        p[i + 78] = '\r';
        p[i + 79] = '\n';
      }
    }
    if (plen % 80 != 0) {
      p[plen] = '\r';
      p[plen + 1] = '\n';
      plen += 2;
    }
  }
  *len = (size_t)h + plen;
  return m;
}

/* -F: stream the file with pread, 64 KiB at a time. */
static long src_read(void *user, void *buf, size_t cap) {
  fsrc *s = user;
  if (cap > READ_PIECE)
    cap = READ_PIECE;
  ssize_t n;
  do
    n = pread(s->b->fd, buf, cap, (off_t)s->off);
  while (n < 0 && errno == EINTR);
  if (n < 0)
    return -1;
  s->off += (uint64_t)n;
  return (long)n;
}

static int src_rewind(void *user) {
  ((fsrc *)user)->off = 0;
  return 0;
}

static fsrc *src_get(bench *b) {
  fsrc *s = b->free_src;
  if (s != NULL)
    b->free_src = s->next;
  else if ((s = malloc(sizeof *s)) == NULL)
    return NULL;
  s->b = b;
  s->off = 0;
  s->next = NULL;
  return s;
}

static void src_put(bench *b, fsrc *s) {
  s->next = b->free_src;
  b->free_src = s;
}

static void open_file(bench *b) {
  b->fd = open(b->file, O_RDONLY);
  if (b->fd < 0) {
    fprintf(stderr, "smtpuv-bench: %s: %s\n", b->file, strerror(errno));
    exit(2);
  }
  struct stat st;
  if (fstat(b->fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    fprintf(stderr, "smtpuv-bench: %s: not a regular file\n", b->file);
    exit(2);
  }
  b->file_size = (uint64_t)st.st_size;
  /* SIZE= is the file's size: an estimate (CRs the client adds to bare
     LFs are not counted), which keeps the whole run a single pass over
     the file, like smtp-source. */
  b->file_wire_size = b->file_size;
}

/* ------------------------------------------------------------------------ */
/* Sending                                                                   */
/* ------------------------------------------------------------------------ */

static void on_sent(smtpuv_client *c, const smtpuv_send_result *r, void *data);
static void on_closed(smtpuv_client *c);
static void finish_session(session *s);

/* Keep the first failure's text; `count` adds one failed message. */
static void record_failure(bench *b, int count, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static void record_failure(bench *b, int count, const char *fmt, ...) {
  if (count)
    b->failed++;
  if (b->first_failure[0] != '\0')
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(b->first_failure, sizeof b->first_failure, fmt, ap);
  va_end(ap);
}

static int new_client(session *s) {
  bench *b = s->b;
  int rc = smtpuv_client_new(b->loop, b->opts, &s->c);
  if (rc != 0) {
    fprintf(stderr, "smtpuv-bench: smtpuv_client_new: %s\n",
            smtpuv_strerror(rc));
    exit(1);
  }
  smtpuv_client_set_data(s->c, s);
  s->closing = 0;
  b->clients_alive++;
  return 0;
}

/* Queue one message on the session's client. 0, or -1 when it could not
   be queued (counted as a failure). */
static int queue_one(session *s) {
  bench *b = s->b;
  smtpuv_envelope env = SMTPUV_ENVELOPE_INIT;
  env.sender = b->from;
  env.recipients = b->rcpts;
  env.nrecipients = b->nrcpt;
  smtpuv_body body;
  fsrc *src = NULL;
  if (b->file != NULL) {
    src = src_get(b);
    if (src == NULL) {
      record_failure(b, 1, "out of memory");
      b->queued++;
      b->done++;
      return -1;
    }
    smtpuv_body_init_stream(&body, src_read, src_rewind, src,
                            b->file_wire_size);
  } else {
    unsigned v = (unsigned)(b->variant++ % NVARIANTS);
    smtpuv_body_init_buffer(&body, b->bodies[v], b->body_len[v]);
  }
  b->queued++;
  int rc = smtpuv_client_send(s->c, &env, &body, on_sent, src);
  if (rc != 0) {
    b->send_errors++;
    b->done++;
    record_failure(b, 1, "smtpuv_client_send: %s", smtpuv_strerror(rc));
    if (src != NULL)
      src_put(b, src);
    return -1;
  }
  s->inflight++;
  return 0;
}

static unsigned long remaining(const bench *b) {
  return b->messages - b->queued;
}

/* Top the session's window up (reuse mode). */
static void refill(session *s) {
  bench *b = s->b;
  /* -w 0: the session's whole share, queued at once. */
  unsigned long share = (b->messages + b->sessions - 1) / b->sessions;
  unsigned limit = b->window != 0 ? b->window
                   : share > UINT_MAX ? UINT_MAX : (unsigned)share;
  if (b->hold_phase)
    limit = 1;
  while (s->inflight < limit && remaining(b) > 0 && !b->timed_out) {
    if (queue_one(s) != 0)
      break;
    if (b->hold_phase)
      break;
  }
}

/* One message on a fresh client (no -d). */
static void start_single(session *s) {
  bench *b = s->b;
  while (remaining(b) > 0 && !b->timed_out) {
    new_client(s);
    if (queue_one(s) == 0)
      return;
    finish_session(s);
    return;
  }
}

static void finish_session(session *s) {
  if (s->c != NULL && !s->closing) {
    s->closing = 1;
    smtpuv_client_close(s->c, on_closed);
  }
}

static void stop_watchdog(bench *b) {
  if (b->watchdog_open) {
    b->watchdog_open = 0;
    uv_close((uv_handle_t *)&b->watchdog, NULL);
  }
}

static void maybe_done(bench *b) {
  if (b->done == b->messages && b->reconnect && b->reconnect != 2) {
    b->reconnect = 2; /* the timer closed once */
    uv_close((uv_handle_t *)&b->next_timer, NULL);
  }
  if (b->done == b->messages && b->t_end == 0) {
    b->t_end = now_s();
    getrusage(RUSAGE_SELF, &b->ru_end);
    stop_watchdog(b);
  }
}

static void start_phase2(bench *b) {
  b->rss_connected_kib = rss_now_kib();
  b->heap_connected = b->heap_live;
  b->ossl_connected = b->ossl_live;
  b->t_connected = now_s();
  b->hold_phase = 0;
  for (unsigned i = 0; i < b->sessions; i++) {
    session *s = &b->sess[i];
    refill(s);
    if (s->inflight == 0)
      finish_session(s);
  }
}

static void on_sent(smtpuv_client *c, const smtpuv_send_result *r,
                    void *data) {
  session *s = smtpuv_client_get_data(c);
  bench *b = s->b;
  if (data != NULL)
    src_put(b, data);
  s->inflight--;
  b->done++;
  if (r->status == SMTPUV_SEND_SENT) {
    b->sent++;
  } else {
    record_failure(b, 1, "%s in %s: %s", smtpuv_send_status_name(r->status),
                   smtpuv_phase_name(r->phase), r->message);
  }
  if (b->counter)
    fprintf(stderr, "%lu\r", b->done);
  if (b->pool_hold && b->done == b->messages) {
    /* every connection idle, none closed yet */
    b->rss_connected_kib = rss_now_kib();
    b->heap_connected = b->heap_live;
    b->ossl_connected = b->ossl_live;
    b->t_connected = now_s();
  }

  if (!b->reuse) {
    finish_session(s);
    maybe_done(b);
    return;
  }
  if (b->hold_phase) {
    if (!s->first_done) {
      s->first_done = 1;
      if (++b->first_done_count == b->sessions)
        start_phase2(b);
    }
    maybe_done(b);
    return;
  }
  if (b->reconnect && remaining(b) > 0 && !b->timed_out) {
    /* the next message once this connection is gone (bench_trace) */
    if (b->quits >= b->done)
      refill(s);
    else
      b->wait_quit = 1;
    maybe_done(b);
    return;
  }
  refill(s);
  if (s->inflight == 0 && (remaining(b) == 0 || b->timed_out))
    finish_session(s);
  maybe_done(b);
}

static void on_closed(smtpuv_client *c) {
  session *s = smtpuv_client_get_data(c);
  bench *b = s->b;
  s->c = NULL;
  b->clients_alive--;
  if (!b->reuse)
    start_single(s);
}

static uv_async_t T_keep; /* --threads (below) */
static void thr_closed(smtpuv_client *c);

static void on_watchdog(uv_timer_t *t) {
  bench *b = t->data;
  b->timed_out = 1;
  record_failure(b, 0, "timed out after %u s with %lu of %lu messages done",
                 b->timeout_s, b->done, b->messages);
  if (b->threads > 0 && b->sess[0].c != NULL && !b->sess[0].closing) {
    b->sess[0].closing = 1; /* canceled callbacks free the threads' slots */
    uv_close((uv_handle_t *)&T_keep, NULL);
    smtpuv_client_close(b->sess[0].c, thr_closed);
  }
  for (unsigned i = 0; i < b->sessions && b->threads == 0; i++)
    finish_session(&b->sess[i]);
  stop_watchdog(b);
}

/* ------------------------------------------------------------------------ */
/* --threads: T threads submit to one client                                 */
/* ------------------------------------------------------------------------ */

typedef struct submitter {
  bench *b;
  uv_thread_t th;
  unsigned long share;  /* messages this thread submits */
  unsigned long first;  /* index of its first message (body variant) */
  uv_sem_t window;      /* free slots (-w), posted by the callbacks */
  unsigned long refused;
  int rc;               /* first submission error */
} submitter;

static submitter *T_sub;
/* T_keep (declared above) holds the loop while the threads submit */

static void thr_closed(smtpuv_client *c) {
  (void)c;
  bench *b = &B;
  for (unsigned i = 0; i < b->threads; i++)
    uv_thread_join(&T_sub[i].th);
  b->clients_alive--;
}

static void thr_done(bench *b) {
  maybe_done(b);
  if (b->done == b->messages && b->sess[0].c != NULL &&
      !b->sess[0].closing) {
    b->sess[0].closing = 1;
    uv_close((uv_handle_t *)&T_keep, NULL);
    smtpuv_client_close(b->sess[0].c, thr_closed);
  }
}

static void thr_sent(smtpuv_client *c, const smtpuv_send_result *r,
                     void *data) {
  (void)c;
  submitter *t = data;
  bench *b = t->b;
  b->done++;
  if (r->status == SMTPUV_SEND_SENT)
    b->sent++;
  else
    record_failure(b, 1, "%s in %s: %s", smtpuv_send_status_name(r->status),
                   smtpuv_phase_name(r->phase), r->message);
  if (b->window != 0)
    uv_sem_post(&t->window);
  thr_done(b);
}

static void thr_submit(void *arg) {
  submitter *t = arg;
  bench *b = t->b;
  smtpuv_client *c = b->sess[0].c;
  smtpuv_envelope env = SMTPUV_ENVELOPE_INIT;
  env.sender = b->from;
  env.recipients = b->rcpts;
  env.nrecipients = b->nrcpt;
  for (unsigned long i = 0; i < t->share; i++) {
    if (b->window != 0)
      uv_sem_wait(&t->window);
    unsigned v = (unsigned)((t->first + i) % NVARIANTS);
    smtpuv_body body;
    smtpuv_body_init_buffer(&body, b->bodies[v], b->body_len[v]);
    int rc = smtpuv_client_send_threadsafe(c, &env, &body, thr_sent, t);
    if (rc != 0) {
      /* no callback: counted by the loop thread after the join */
      if (t->rc == 0)
        t->rc = rc;
      t->refused = t->share - i;
      return; /* ECLOSED (the watchdog closed it) or the same again */
    }
  }
}

/* Refusals are counted once every thread is joined (thr_closed). */
static void thr_account(bench *b) {
  for (unsigned i = 0; i < b->threads; i++) {
    submitter *t = &T_sub[i];
    if (t->refused > 0) {
      b->send_errors += t->refused;
      b->done += t->refused;
      record_failure(b, (int)t->refused, "smtpuv_client_send_threadsafe: %s",
                     smtpuv_strerror(t->rc));
    }
    if (b->window != 0)
      uv_sem_destroy(&t->window);
  }
  free(T_sub);
}

static void thr_start(bench *b) {
  b->sess[0].b = b;
  new_client(&b->sess[0]);
  T_sub = calloc(b->threads, sizeof *T_sub);
  if (T_sub == NULL)
    exit(1);
  uv_async_init(b->loop, &T_keep, NULL);
  unsigned long first = 0;
  for (unsigned i = 0; i < b->threads; i++) {
    submitter *t = &T_sub[i];
    t->b = b;
    t->share = b->messages / b->threads + (i < b->messages % b->threads);
    t->first = first;
    first += t->share;
    if (b->window != 0 && uv_sem_init(&t->window, b->window) != 0)
      exit(1);
  }
  for (unsigned i = 0; i < b->threads; i++)
    if (uv_thread_create(&T_sub[i].th, thr_submit, &T_sub[i]) != 0) {
      fprintf(stderr, "smtpuv-bench: cannot create a thread\n");
      exit(1);
    }
  if (b->messages == 0)
    thr_done(b);
}

/* ------------------------------------------------------------------------ */
/* Setup                                                                     */
/* ------------------------------------------------------------------------ */

static void raise_nofile(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    (void)setrlimit(RLIMIT_NOFILE, &rl);
  }
}

/* ------------------------------------------------------------------------ */
/* TLS at scale: reconnects through one client, OpenSSL's heap               */
/* ------------------------------------------------------------------------ */

static void refill(session *s);

/* Counting OpenSSL allocator (--heap): the size in a 16-byte header. */
static void *ossl_malloc(size_t n, const char *file, int line) {
  (void)file;
  (void)line;
  unsigned char *p = malloc(n + 16);
  if (p == NULL)
    return NULL;
  memcpy(p, &n, sizeof n);
  B.ossl_live += (long)n;
  if (B.ossl_live > B.ossl_peak)
    B.ossl_peak = B.ossl_live;
  return p + 16;
}

static void ossl_free(void *ptr, const char *file, int line) {
  (void)file;
  (void)line;
  if (ptr == NULL)
    return;
  unsigned char *p = (unsigned char *)ptr - 16;
  size_t n;
  memcpy(&n, p, sizeof n);
  B.ossl_live -= (long)n;
  free(p);
}

static void *ossl_realloc(void *ptr, size_t n, const char *file, int line) {
  if (ptr == NULL)
    return ossl_malloc(n, file, line);
  if (n == 0) {
    ossl_free(ptr, file, line);
    return NULL;
  }
  unsigned char *p = (unsigned char *)ptr - 16;
  size_t old;
  memcpy(&old, p, sizeof old);
  unsigned char *q = realloc(p, n + 16);
  if (q == NULL)
    return NULL;
  memcpy(q, &n, sizeof n);
  B.ossl_live += (long)n - (long)old;
  if (B.ossl_live > B.ossl_peak)
    B.ossl_peak = B.ossl_live;
  return q + 16;
}

static void on_next_timer(uv_timer_t *t) {
  bench *b = t->data;
  if (b->sess[0].c != NULL)
    refill(&b->sess[0]);
}

/* --reconnect: counts connections, resumed handshakes and QUIT replies;
   the next message goes out once the previous connection said goodbye, so
   each message gets a new connection of the same client. */
static void bench_trace(void *data, smtpuv_trace_kind kind, const char *p,
                        size_t len) {
  bench *b = data;
  if (kind == SMTPUV_TRACE_INFO) {
    if (len >= 12 && memcmp(p, "connected to", 12) == 0)
      b->connects++;
    if (len >= 5 && memcmp(p, "TLS: ", 5) == 0 && len >= 9 &&
        memcmp(p + len - 9, "; resumed", 9) == 0)
      b->resumed++;
  } else if (kind == SMTPUV_TRACE_RECV && len >= 4 && memcmp(p, "221", 3) == 0) {
    b->quits++;
    if (b->wait_quit) {
      b->wait_quit = 0;
      uv_timer_start(&b->next_timer, on_next_timer, 0, 0);
    }
  }
}

static int tls_scale_options(bench *b) {
  int rc = 0;
  if (b->no_resume)
    rc = smtpuv_options_set_tls_resumption(b->opts, 0);
  if (rc == 0 && b->reconnect) {
    /* an idle connection QUITs after 1 ms; the trace sees the 221 */
    rc = smtpuv_options_set_timeout(b->opts, SMTPUV_TIMEOUT_IDLE, 1);
    if (rc == 0)
      rc = smtpuv_options_set_trace(b->opts, bench_trace, b);
    uv_timer_init(b->loop, &b->next_timer);
    b->next_timer.data = b;
    b->window = 1;
  }
  return rc;
}

static void make_options(bench *b) {
  smtpuv_mem cm = {b, cnt_malloc, cnt_free, cnt_calloc, cnt_realloc};
  int rc = smtpuv_options_new(b->count_alloc ? &cm : NULL, &b->opts);
  if (rc == 0)
    rc = smtpuv_options_set_host(b->opts, b->host);
  if (rc == 0)
    rc = smtpuv_options_set_port(b->opts, b->port);
  if (rc == 0)
    rc = smtpuv_options_set_tls(b->opts, b->tls);
  if (rc == 0)
    rc = smtpuv_options_set_ehlo_name(b->opts, b->myhost);
  if (rc == 0 && b->ca_file != NULL)
    rc = smtpuv_options_set_ca(b->opts, b->ca_file, NULL);
  if (rc == 0 && b->connections > 1)
    rc = smtpuv_options_set_max_connections(b->opts, b->connections);
  if (rc == 0 && b->depth > 0)
    rc = smtpuv_options_set_pipeline_depth(b->opts, b->depth);
  if (rc == 0 && b->connecting > 0)
    rc = smtpuv_options_set_max_connecting(b->opts, b->connecting);
  if (rc == 0 && b->pool_hold)
    rc = smtpuv_options_set_trace(b->opts, bench_trace, b); /* connects */
  if (rc == 0 && b->tls_name != NULL)
    rc = smtpuv_options_set_tls_server_name(b->opts, b->tls_name);
  if (rc == 0 && b->insecure)
    rc = smtpuv_options_set_tls_verify(b->opts, 0);
  if (rc == 0 && b->user != NULL) {
    rc = smtpuv_options_set_credentials(b->opts, b->user,
                                        b->password ? b->password : "", NULL);
    if (rc == 0 && b->tls == SMTPUV_TLS_NONE)
      rc = smtpuv_options_set_allow_plaintext_auth(b->opts, 1);
  }
  if (rc == 0)
    rc = smtpuv_options_set_chunking(b->opts, b->chunking);
  if (rc == 0)
    rc = smtpuv_options_set_pipelining(b->opts, b->pipelining);
  if (rc == 0)
    rc = tls_scale_options(b);
  if (rc != 0) {
    fprintf(stderr, "smtpuv-bench: options: %s\n", smtpuv_strerror(rc));
    exit(2);
  }
}

/* host[:port], [v6]:port, optional "inet:" prefix; default port 25. */
static void parse_target(bench *b, char *arg) {
  if (strncmp(arg, "inet:", 5) == 0)
    arg += 5;
  b->port = 25;
  char *colon = NULL;
  if (arg[0] == '[') {
    char *close = strchr(arg, ']');
    if (close == NULL)
      die_usage("bad host");
    *close = '\0';
    b->host = arg + 1;
    if (close[1] == ':')
      colon = close + 1;
    else if (close[1] != '\0')
      die_usage("bad host");
  } else {
    colon = strrchr(arg, ':');
    if (colon != NULL && strchr(arg, ':') != colon)
      colon = NULL; /* bare IPv6 literal */
    b->host = arg;
  }
  if (colon != NULL) {
    *colon = '\0';
    unsigned long p = parse_ulong(colon + 1, "port");
    if (p == 0 || p > 65535)
      die_usage("bad port");
    b->port = (unsigned)p;
  }
  if (b->host[0] == '\0')
    die_usage("no host");
}

static int long_opt(bench *b, const char *a) {
  const char *v = strchr(a, '=');
  size_t n = v ? (size_t)(v - a) : strlen(a);
  if (v)
    v++;
#define IS(name) (n == sizeof(name) - 1 && memcmp(a, name, n) == 0)
  if (IS("--tls") && v) {
    if (strcmp(v, "none") == 0)
      b->tls = SMTPUV_TLS_NONE;
    else if (strcmp(v, "required") == 0)
      b->tls = SMTPUV_TLS_REQUIRED;
    else if (strcmp(v, "opportunistic") == 0)
      b->tls = SMTPUV_TLS_OPPORTUNISTIC;
    else if (strcmp(v, "implicit") == 0)
      b->tls = SMTPUV_TLS_IMPLICIT;
    else
      die_usage("--tls=none|required|opportunistic|implicit");
  } else if (IS("--ca") && v) {
    b->ca_file = v;
  } else if (IS("--tls-name") && v) {
    b->tls_name = v;
  } else if (IS("--insecure") && !v) {
    b->insecure = 1;
  } else if (IS("--user") && v) {
    b->user = v;
  } else if (IS("--password") && v) {
    b->password = v;
  } else if (IS("--bdat") && !v) {
    b->chunking = 1;
  } else if (IS("--no-bdat") && !v) {
    b->chunking = 0;
  } else if (IS("--no-pipelining") && !v) {
    b->pipelining = 0;
  } else if (IS("--hold") && !v) {
    b->hold = 1;
  } else if (IS("--heap") && !v) {
    b->count_alloc = 1;
  } else if (IS("--reconnect") && !v) {
    b->reconnect = 1;
  } else if (IS("--no-resume") && !v) {
    b->no_resume = 1;
  } else if (IS("--connections") && v) {
    b->connections = (unsigned)parse_ulong(v, "--connections");
  } else if (IS("--connecting") && v) {
    b->connecting = (unsigned)parse_ulong(v, "--connecting");
  } else if (IS("--pool-hold") && !v) {
    b->pool_hold = 1;
  } else if (IS("--depth") && v) {
    b->depth = (unsigned)parse_ulong(v, "--depth");
  } else if (IS("--threads") && v) {
    b->threads = (unsigned)parse_ulong(v, "--threads");
  } else if (IS("--timeout") && v) {
    b->timeout_s = (unsigned)parse_ulong(v, "--timeout");
  } else if (IS("--help") && !v) {
    die_usage(NULL);
  } else {
    return -1;
  }
#undef IS
  return 0;
}

static void parse_args(bench *b, int argc, char **argv) {
  char *target = NULL;
  for (int i = 1; i < argc; i++) {
    char *a = argv[i];
    if (a[0] == '-' && a[1] == '-') {
      if (long_opt(b, a) != 0) {
        char m[256];
        snprintf(m, sizeof m, "unknown option %s", a);
        die_usage(m);
      }
      continue;
    }
    if (a[0] != '-' || a[1] == '\0') {
      if (target != NULL)
        die_usage("more than one host");
      target = a;
      continue;
    }
    for (char *p = a + 1; *p != '\0'; p++) {
      char o = *p;
      const char *val = NULL;
      if (strchr("smlFwftrMS", o) != NULL) {
        if (p[1] != '\0')
          val = p + 1;
        else if (i + 1 < argc)
          val = argv[++i];
        else
          die_usage("option needs a value");
      }
      switch (o) {
      case 's': b->sessions = (unsigned)parse_ulong(val, "-s"); break;
      case 'm': b->messages = parse_ulong(val, "-m"); break;
      case 'l': b->length = (long)parse_ulong(val, "-l"); break;
      case 'F': b->file = val; break;
      case 'w':
        b->window = (unsigned)parse_ulong(val, "-w");
        b->window_set = 1;
        break;
      case 'f': b->from = val; break;
      case 't': b->to = val; break;
      case 'r': b->nrcpt = (unsigned)parse_ulong(val, "-r"); break;
      case 'M': b->myhost = val; break;
      case 'S': b->subject = val; break;
      case 'd': b->reuse = 1; break;
      case 'c': b->counter = 1; break;
      case 'q': b->quiet = 1; break;
      default: {
        char m[64];
        snprintf(m, sizeof m, "unknown option -%c", o);
        die_usage(m);
      }
      }
      if (val != NULL)
        break;
    }
  }
  if (target == NULL)
    die_usage("no host given");
  parse_target(b, target);
  if (b->sessions == 0 || b->sessions > 100000)
    die_usage("-s must be 1..100000");
  if (b->nrcpt == 0 || b->nrcpt > MAX_RCPTS)
    die_usage("-r must be 1..1000");
  if (b->hold && !b->reuse)
    die_usage("--hold needs -d");
  if (b->reconnect && (!b->reuse || b->sessions != 1 || b->hold))
    die_usage("--reconnect needs -d -s 1 (and no --hold)");
  if (b->hold && b->messages < b->sessions)
    die_usage("--hold needs at least one message per session (-m >= -s)");
  if (b->file != NULL && b->length >= 0)
    die_usage("-l and -F exclude each other");
  if (b->connections > 1000)
    die_usage("--connections must be 1..1000");
  if (b->connections > 1 && !b->reuse)
    die_usage("--connections needs -d");
  if (b->depth > 64)
    die_usage("--depth must be 1..64");
  if (b->connecting > 1000)
    die_usage("--connecting must be 1..1000");
  if (b->pool_hold && (b->connections < 2 || !b->reuse || b->sessions != 1 ||
                       b->hold || b->reconnect || b->threads > 0))
    die_usage("--pool-hold needs --connections, -d and -s 1 (and no --hold, "
              "--reconnect or --threads)");
  if (b->pool_hold) {
    b->window = 0; /* everything queued at once */
    b->window_set = 1;
  }
  /* one client's window feeds all of its connections */
  if (b->connections > 1 && !b->window_set)
    b->window *= b->connections;
  if (b->threads > 1024)
    die_usage("--threads must be 1..1024");
  if (b->threads > 0 && (!b->reuse || b->sessions != 1 || b->hold ||
                         b->file != NULL))
    die_usage("--threads needs -d and -s 1, and excludes --hold and -F");
}

static char *xstrdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d == NULL) {
    fprintf(stderr, "smtpuv-bench: out of memory\n");
    exit(1);
  }
  return memcpy(d, s, n);
}

static const char *tls_name(smtpuv_tls_mode m) {
  switch (m) {
  case SMTPUV_TLS_NONE: return "none";
  case SMTPUV_TLS_REQUIRED: return "required";
  case SMTPUV_TLS_OPPORTUNISTIC: return "opportunistic";
  case SMTPUV_TLS_IMPLICIT: return "implicit";
  }
  return "?";
}

int main(int argc, char **argv) {
  bench *b = &B;
  b->sessions = 1;
  b->messages = 1;
  b->length = -1;
  b->window = 16;
  b->nrcpt = 1;
  b->tls = SMTPUV_TLS_NONE;
  b->chunking = 1;
  b->pipelining = 1;
  b->timeout_s = 600;
  b->fd = -1;
  parse_args(b, argc, argv);
  if (b->count_alloc) /* before OpenSSL allocates anything */
    CRYPTO_set_mem_functions(ossl_malloc, ossl_realloc, ossl_free);

  static char hostname[256];
  if (b->myhost == NULL) {
    if (gethostname(hostname, sizeof hostname - 1) != 0 || hostname[0] == '\0')
      strcpy(hostname, "localhost");
    b->myhost = hostname;
  }
  static char defaddr[300];
  snprintf(defaddr, sizeof defaddr, "foo@%s", b->myhost);
  if (b->from == NULL)
    b->from = defaddr;
  if (b->to == NULL)
    b->to = defaddr;
  b->rcpts = calloc(b->nrcpt, sizeof *b->rcpts);
  b->rcpt_store = calloc(b->nrcpt, sizeof *b->rcpt_store);
  if (b->rcpts == NULL || b->rcpt_store == NULL)
    return 1;
  for (unsigned i = 0; i < b->nrcpt; i++) {
    if (b->nrcpt == 1) {
      b->rcpt_store[i] = xstrdup(b->to);
    } else {
      char tmp[400];
      snprintf(tmp, sizeof tmp, "%u%s", i + 1, b->to);
      b->rcpt_store[i] = xstrdup(tmp);
    }
    b->rcpts[i] = b->rcpt_store[i];
  }

  raise_nofile();
  size_t msg_size;
  if (b->file != NULL) {
    open_file(b);
    msg_size = (size_t)b->file_wire_size;
  } else {
    for (unsigned v = 0; v < NVARIANTS; v++)
      b->bodies[v] = build_message(b, v, &b->body_len[v]);
    msg_size = b->body_len[0];
  }

  b->loop = uv_default_loop();
  make_options(b);
  b->sess = calloc(b->sessions, sizeof *b->sess);
  if (b->sess == NULL)
    return 1;

  uv_timer_init(b->loop, &b->watchdog);
  b->watchdog.data = b;
  b->watchdog_open = 1;
  if (b->timeout_s > 0)
    uv_timer_start(&b->watchdog, on_watchdog, (uint64_t)b->timeout_s * 1000,
                   0);
  uv_unref((uv_handle_t *)&b->watchdog);

  b->rss_baseline_kib = rss_now_kib();
  b->heap_baseline = b->heap_live;
  b->ossl_baseline = b->ossl_live;
  getrusage(RUSAGE_SELF, &b->ru_start);
  b->t_start = now_s();
  b->hold_phase = b->hold;
  if (b->threads > 0)
    thr_start(b);
  for (unsigned i = 0; i < b->sessions && b->threads == 0; i++) {
    session *s = &b->sess[i];
    s->b = b;
    s->idx = i;
    if (b->reuse) {
      new_client(s);
      refill(s);
      if (s->inflight == 0)
        finish_session(s);
    } else {
      start_single(s);
    }
  }
  if (b->messages == 0)
    maybe_done(b);
  uv_run(b->loop, UV_RUN_DEFAULT);
  if (b->t_end == 0) {
    b->t_end = now_s();
    getrusage(RUSAGE_SELF, &b->ru_end);
  }
  stop_watchdog(b);
  uv_run(b->loop, UV_RUN_DEFAULT);
  if (b->threads > 0)
    thr_account(b);

  /* Every message must be accounted for. */
  if (b->done != b->messages && b->first_failure[0] == '\0')
    record_failure(b, 0, "only %lu of %lu messages completed", b->done,
                   b->messages);
  unsigned long missing = b->messages - b->done;

  struct rusage ru_all;
  getrusage(RUSAGE_SELF, &ru_all);
  double wall = b->t_end - b->t_start;
  double cpu = ru_cpu(&b->ru_end) - ru_cpu(&b->ru_start);
  double n = b->messages > 0 ? (double)b->messages : 1.0;
  double rate = wall > 0 ? (double)b->sent / wall : 0.0;
  long maxrss = ru_all.ru_maxrss;

  if (!b->quiet) {
    printf("smtpuv-bench: %lu message%s of %zu bytes to %s:%u, %u session%s, "
           "%s, window %u, tls %s%s%s\n",
           b->messages, b->messages == 1 ? "" : "s", msg_size, b->host,
           b->port, b->sessions, b->sessions == 1 ? "" : "s",
           b->reuse ? "connections reused (-d)" : "one connection per message",
           b->window, tls_name(b->tls), b->pipelining ? "" : ", no pipelining",
           b->chunking ? "" : ", no BDAT");
    if (b->threads > 0)
      printf("  submitted from %u threads to one client\n", b->threads);
    printf("  sent %lu, failed %lu, missing %lu\n", b->sent, b->failed,
           missing);
    printf("  wall %.3f s, %.1f msgs/s\n", wall, rate);
    printf("  client CPU %.3f s (user %.3f, sys %.3f): %.2f us/msg, "
           "%.4f s per 1000 msgs\n",
           cpu,
           (double)(b->ru_end.ru_utime.tv_sec - b->ru_start.ru_utime.tv_sec) +
               (double)(b->ru_end.ru_utime.tv_usec -
                        b->ru_start.ru_utime.tv_usec) * 1e-6,
           (double)(b->ru_end.ru_stime.tv_sec - b->ru_start.ru_stime.tv_sec) +
               (double)(b->ru_end.ru_stime.tv_usec -
                        b->ru_start.ru_stime.tv_usec) * 1e-6,
           cpu / n * 1e6, cpu / n * 1000.0);
    printf("  peak RSS %ld KiB\n", maxrss);
    if (b->count_alloc)
      printf("  library heap peak %ld bytes (counting allocator)\n",
             b->heap_peak);
    if (b->hold && b->rss_connected_kib > 0)
      printf("  hold: %u sessions connected after %.3f s; RSS baseline %ld "
             "KiB, all connected %ld KiB: %.1f KiB per connection%s\n",
             b->sessions, b->t_connected - b->t_start, b->rss_baseline_kib,
             b->rss_connected_kib,
             (double)(b->rss_connected_kib - b->rss_baseline_kib) /
                 b->sessions,
             b->count_alloc ? "" : " (--heap adds the library's own share)");
    if (b->pool_hold && b->rss_connected_kib > 0)
      printf("  pool-hold: %lu connections opened; RSS baseline %ld KiB, "
             "all done and idle %ld KiB: %.1f KiB per connection\n",
             b->connects, b->rss_baseline_kib, b->rss_connected_kib,
             (double)(b->rss_connected_kib - b->rss_baseline_kib) /
                 (double)(b->connects ? b->connects : 1));
    if (b->hold && b->count_alloc && b->rss_connected_kib > 0)
      printf("  hold: library heap %.0f bytes per connected client\n",
             (double)(b->heap_connected - b->heap_baseline) / b->sessions);
  }
  printf("RESULT msgs=%lu sent=%lu failed=%lu missing=%lu bytes=%zu "
         "sessions=%u reuse=%d wall_s=%.4f msgs_per_s=%.1f cpu_s=%.4f "
         "cpu_us_per_msg=%.2f cpu_s_per_1000=%.4f maxrss_kib=%ld",
         b->messages, b->sent, b->failed, missing, msg_size, b->sessions,
         b->reuse, wall, rate, cpu, cpu / n * 1e6, cpu / n * 1000.0, maxrss);
  if (b->threads > 0)
    printf(" threads=%u", b->threads);
  if (b->hold)
    printf(" rss_base_kib=%ld rss_connected_kib=%ld rss_per_conn_kib=%.2f",
           b->rss_baseline_kib, b->rss_connected_kib,
           b->rss_connected_kib > 0
               ? (double)(b->rss_connected_kib - b->rss_baseline_kib) /
                     b->sessions
               : -1.0);
  if (b->count_alloc)
    printf(" heap_peak=%ld", b->heap_peak);
  if (b->hold && b->count_alloc)
    printf(" heap_per_conn=%.0f",
           (double)(b->heap_connected - b->heap_baseline) / b->sessions);
  if (b->hold && b->count_alloc && b->tls != SMTPUV_TLS_NONE)
    printf(" openssl_heap_per_conn=%.0f",
           (double)(b->ossl_connected - b->ossl_baseline) / b->sessions);
  if (b->reconnect)
    printf(" connects=%lu resumed=%lu", b->connects, b->resumed);
  if (b->pool_hold) {
    double nc = (double)(b->connects ? b->connects : 1);
    printf(" connects=%lu rss_base_kib=%ld rss_idle_kib=%ld "
           "rss_per_conn_kib=%.2f",
           b->connects, b->rss_baseline_kib, b->rss_connected_kib,
           b->rss_connected_kib > 0
               ? (double)(b->rss_connected_kib - b->rss_baseline_kib) / nc
               : -1.0);
    if (b->count_alloc)
      printf(" heap_per_conn=%.0f openssl_heap_per_conn=%.0f",
             (double)(b->heap_connected - b->heap_baseline) / nc,
             (double)(b->ossl_connected - b->ossl_baseline) / nc);
  }
  printf("\n");
  fflush(stdout);

  int ok = b->sent == b->messages && b->failed == 0 && missing == 0;
  if (!ok)
    fprintf(stderr, "smtpuv-bench: FAILED: %lu of %lu messages not sent; "
            "first failure: %s\n",
            b->messages - b->sent, b->messages,
            b->first_failure[0] ? b->first_failure : "(none recorded)");

  /* Cleanup (keeps valgrind quiet). */
  smtpuv_options_free(b->opts);
  (void)uv_loop_close(b->loop);
  for (unsigned v = 0; v < NVARIANTS; v++)
    free(b->bodies[v]);
  while (b->free_src != NULL) {
    fsrc *s = b->free_src;
    b->free_src = s->next;
    free(s);
  }
  for (unsigned i = 0; i < b->nrcpt; i++)
    free(b->rcpt_store[i]);
  free(b->rcpt_store);
  free(b->rcpts);
  free(b->sess);
  if (b->fd >= 0)
    close(b->fd);
  return ok ? 0 : 1;
}

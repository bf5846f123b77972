/* SPDX-License-Identifier: MIT */
/* curl-smtps-bench: the libcurl side of bench/compare_tls.sh's W5.
 *
 *   curl-smtps-bench -m N -l LENGTH [--ca FILE] [--insecure] URL
 *
 * Sends N messages over ONE connection: one easy handle, curl_easy_perform
 * once per message, which reuses the connection of the previous transfer
 * (libcurl's SMTP sends MAIL/RCPT/DATA again on the open connection and
 * QUIT at cleanup). libcurl's SMTP does not pipeline, so the multi
 * interface would run the same command/reply sequence for one connection;
 * the easy handle keeps the program small. The message is built like
 * smtpuv-bench's (From, To, Date, Message-Id, an empty line, LENGTH bytes
 * of 80-byte lines). URL: smtps://127.0.0.1:PORT (implicit TLS).
 *
 * Output: a last line "RESULT msgs=.. sent=.. wall_s=.. msgs_per_s=..
 * cpu_s=.. cpu_us_per_msg=.. connects=.." (connects: new connections libcurl
 * made, CURLINFO_NUM_CONNECTS summed; 1 means every message shared one).
 * Exit status 0 when every message was accepted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

typedef struct src {
  const char *p;
  size_t left;
} src;

static size_t read_cb(char *buf, size_t size, size_t n, void *data) {
  src *s = data;
  size_t cap = size * n, k = s->left < cap ? s->left : cap;
  memcpy(buf, s->p, k);
  s->p += k;
  s->left -= k;
  return k;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double cpu_s(void) {
  struct rusage r;
  getrusage(RUSAGE_SELF, &r);
  return (double)r.ru_utime.tv_sec + r.ru_utime.tv_usec * 1e-6 +
         (double)r.ru_stime.tv_sec + r.ru_stime.tv_usec * 1e-6;
}

static char *build_message(size_t plen, size_t *len) {
  char hdr[512], date[64];
  time_t t = time(NULL);
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000 (UTC)", &tm);
  int h = snprintf(hdr, sizeof hdr,
                   "From: <foo@localhost>\r\nTo: <foo@localhost>\r\n"
                   "Date: %s\r\nMessage-Id: <%04x.0000.0000@localhost>\r\n\r\n",
                   date, (unsigned)getpid() & 0xffff);
  char *m = malloc((size_t)h + plen + 2);
  if (m == NULL)
    exit(1);
  memcpy(m, hdr, (size_t)h);
  char *p = m + h;
  memset(p, 'X', plen);
  for (size_t i = 0; i < plen; i += 80) {
    p[i] = "0123456789"[(i / 80) % 10];
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
  *len = (size_t)h + plen;
  return m;
}

int main(int argc, char **argv) {
  unsigned long n = 1;
  size_t length = 2048;
  const char *ca = NULL, *url = NULL;
  int insecure = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "-m") == 0 && i + 1 < argc)
      n = strtoul(argv[++i], NULL, 10);
    else if (strcmp(argv[i], "-l") == 0 && i + 1 < argc)
      length = strtoul(argv[++i], NULL, 10);
    else if (strcmp(argv[i], "--ca") == 0 && i + 1 < argc)
      ca = argv[++i];
    else if (strcmp(argv[i], "--insecure") == 0)
      insecure = 1;
    else if (url == NULL && argv[i][0] != '-')
      url = argv[i];
    else {
      fprintf(stderr, "usage: curl-smtps-bench -m N -l LENGTH [--ca FILE] "
                      "[--insecure] smtps://HOST:PORT\n");
      return 2;
    }
  }
  if (url == NULL || n == 0 || n > 10000000) {
    fprintf(stderr, "curl-smtps-bench: need a URL and 1 <= N <= 1e7\n");
    return 2;
  }
  size_t mlen;
  char *msg = build_message(length, &mlen);
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
    return 1;
  CURL *e = curl_easy_init();
  struct curl_slist *rcpt = curl_slist_append(NULL, "<foo@localhost>");
  if (e == NULL || rcpt == NULL)
    return 1;
  src s;
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_MAIL_FROM, "<foo@localhost>");
  curl_easy_setopt(e, CURLOPT_MAIL_RCPT, rcpt);
  curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
  curl_easy_setopt(e, CURLOPT_READFUNCTION, read_cb);
  curl_easy_setopt(e, CURLOPT_READDATA, &s);
  curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)mlen);
  if (ca != NULL)
    curl_easy_setopt(e, CURLOPT_CAINFO, ca);
  if (insecure) {
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  unsigned long sent = 0, connects = 0;
  char first_err[CURL_ERROR_SIZE + 128] = "";
  char errbuf[CURL_ERROR_SIZE];
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
  double c0 = cpu_s(), t0 = now_s();
  for (unsigned long i = 0; i < n; i++) {
    s.p = msg;
    s.left = mlen;
    errbuf[0] = '\0';
    CURLcode rc = curl_easy_perform(e);
    long nc = 0;
    curl_easy_getinfo(e, CURLINFO_NUM_CONNECTS, &nc);
    connects += (unsigned long)nc;
    if (rc == CURLE_OK)
      sent++;
    else if (first_err[0] == '\0')
      snprintf(first_err, sizeof first_err, "%s: %s", curl_easy_strerror(rc),
               errbuf);
  }
  double wall = now_s() - t0, cpu = cpu_s() - c0;
  curl_easy_cleanup(e); /* QUIT */
  curl_slist_free_all(rcpt);
  curl_global_cleanup();
  free(msg);
  if (first_err[0])
    fprintf(stderr, "curl-smtps-bench: first failure: %s\n", first_err);
  printf("RESULT msgs=%lu sent=%lu wall_s=%.4f msgs_per_s=%.1f cpu_s=%.4f "
         "cpu_us_per_msg=%.2f connects=%lu\n",
         n, sent, wall, wall > 0 ? (double)sent / wall : 0.0, cpu,
         cpu / (double)n * 1e6, connects);
  return sent == n ? 0 : 1;
}

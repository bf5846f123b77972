/* SPDX-License-Identifier: MIT */
/* A client's TLS session cache: the last resumable session the server sent,
 * per (host name, port, verification), so that the next connection of the
 * same client to the same server offers it (SSL_set_session) and gets an
 * abbreviated handshake: TLS 1.3 tickets, TLS 1.2 session IDs or tickets.
 *
 * One cache per client, used on the loop thread only (every SSL call of
 * the client's connections runs there, and the new-session callback with
 * them). Small and bounded: at most CACHE_MAX servers, the least recently
 * used is dropped. The host name is part of the key so a session is only
 * ever offered to the name (SNI and certificate check) it was made with;
 * the verification flag too, so a session set up without verification is
 * never resumed by a verifying connection.
 *
 * A TLS 1.3 server may send several tickets; the newest replaces the one
 * held. Tickets are offered again until a newer one arrives (RFC 8446
 * section C.4 recommends single use against tracking by passive observers;
 * every connection of a pool here goes to the same server from the same
 * client, so reuse tells an observer nothing it could not see from the
 * addresses already).
 */
#include <string.h>

#include "protocol/mem.h"
#include "uv/tls.h"

#define CACHE_MAX 8

typedef struct entry {
  struct entry *next;
  SSL_SESSION *sess;
  unsigned port;
  int verify;
  char host[]; /* NUL-terminated */
} entry;

struct smtpuv__tls_cache {
  smtpuv_mem mem;
  entry *head; /* most recently stored or used first */
  size_t count;
};

int smtpuv__tls_cache_new(const smtpuv_mem *mem, smtpuv__tls_cache **out) {
  if (out == NULL)
    return SMTPUV_EINVAL;
  *out = NULL;
  smtpuv_mem m;
  smtpuv__mem_init(&m, mem);
  smtpuv__tls_cache *c = smtpuv__calloc(&m, 1, sizeof *c);
  if (c == NULL)
    return SMTPUV_ENOMEM;
  c->mem = m;
  *out = c;
  return 0;
}

static void entry_free(smtpuv__tls_cache *c, entry *e) {
  SSL_SESSION_free(e->sess);
  smtpuv__free(&c->mem, e);
}

void smtpuv__tls_cache_free(smtpuv__tls_cache *c) {
  if (c == NULL)
    return;
  entry *e = c->head;
  while (e != NULL) {
    entry *next = e->next;
    entry_free(c, e);
    e = next;
  }
  smtpuv_mem m = c->mem;
  smtpuv__free(&m, c);
}

size_t smtpuv__tls_cache_count(const smtpuv__tls_cache *c) {
  return c != NULL ? c->count : 0;
}

/* The entry for the key and the link pointing at it. */
static entry **lookup(smtpuv__tls_cache *c, const char *host, unsigned port,
                      int verify) {
  entry **pp = &c->head;
  for (; *pp != NULL; pp = &(*pp)->next)
    if ((*pp)->port == port && (*pp)->verify == verify &&
        strcmp((*pp)->host, host) == 0)
      return pp;
  return NULL;
}

SSL_SESSION *smtpuv__tls_cache_find(smtpuv__tls_cache *c, const char *host,
                                    unsigned port, int verify) {
  if (c == NULL || host == NULL)
    return NULL;
  entry **pp = lookup(c, host, port, verify != 0);
  if (pp == NULL)
    return NULL;
  entry *e = *pp;
  if (SSL_SESSION_is_resumable(e->sess) != 1) {
    *pp = e->next;
    c->count--;
    entry_free(c, e);
    return NULL;
  }
  *pp = e->next; /* to the front */
  e->next = c->head;
  c->head = e;
  return e->sess;
}

int smtpuv__tls_cache_put(smtpuv__tls_cache *c, const char *host,
                          unsigned port, int verify, SSL_SESSION *s) {
  if (c == NULL || host == NULL || s == NULL ||
      SSL_SESSION_is_resumable(s) != 1)
    return 0;
  verify = verify != 0;
  entry **pp = lookup(c, host, port, verify);
  entry *e;
  if (pp != NULL) {
    e = *pp;
    *pp = e->next;
    SSL_SESSION_free(e->sess);
  } else {
    size_t hl = strlen(host);
    e = smtpuv__malloc(&c->mem, sizeof *e + hl + 1);
    if (e == NULL)
      return 0; /* not cached: the next handshake is a full one */
    memcpy(e->host, host, hl + 1);
    e->port = port;
    e->verify = verify;
    c->count++;
    if (c->count > CACHE_MAX) { /* drop the least recently used */
      entry **last = &c->head;
      while ((*last)->next != NULL)
        last = &(*last)->next;
      entry_free(c, *last);
      *last = NULL;
      c->count--;
    }
  }
  e->sess = s;
  e->next = c->head;
  c->head = e;
  return 1;
}

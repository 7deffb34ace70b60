/* SPDX-License-Identifier: MIT */
/* Session ticket keys, shared by every server context and worker of the process: a ticket one
 * worker issued resumes on any other. The ring holds the current key (which encrypts new
 * tickets) and the previous one (which still decrypts, and asks for a renewed ticket). Keys
 * rotate by age, checked whenever a ticket is made or opened: after one rotation interval the
 * current key becomes the previous one, after two both are replaced, so no ticket outlives two
 * intervals whatever the traffic. */
#include "net/tls_int.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <string.h>

#include "core/time.h"

typedef struct ticket_key {
    unsigned char name[16];
    unsigned char aes[32];
    unsigned char hmac[32];
    bool set;
} ticket_key_t;

static struct {
    pthread_mutex_t lock;
    ticket_key_t cur, prev;
    uint64_t cur_since_ns;
    uint64_t interval_ns;
} ring = {.lock = PTHREAD_MUTEX_INITIALIZER, .interval_ns = 12ull * 3600 * 1000000000};

static bool
new_key(ticket_key_t *k)
{
    k->set = RAND_bytes(k->name, sizeof(k->name)) == 1 && RAND_bytes(k->aes, sizeof(k->aes)) == 1 &&
             RAND_bytes(k->hmac, sizeof(k->hmac)) == 1;
    return k->set;
}

/* Under ring.lock. */
static void
rotate_by_age(void)
{
    uint64_t now = cn_time_now_ns();
    if (!ring.cur.set) {
        new_key(&ring.cur);
        ring.cur_since_ns = now;
        return;
    }
    uint64_t age = now - ring.cur_since_ns;
    if (age < ring.interval_ns)
        return;
    if (age >= 2 * ring.interval_ns)
        memset(&ring.prev, 0, sizeof(ring.prev));
    else
        ring.prev = ring.cur;
    new_key(&ring.cur);
    ring.cur_since_ns = now;
}

void
cn_tls_tickets_configure(uint64_t rotation_ms)
{
    pthread_mutex_lock(&ring.lock);
    ring.interval_ns = (rotation_ms ? rotation_ms : 1) * 1000000ull;
    pthread_mutex_unlock(&ring.lock);
}

static bool
set_hmac(EVP_MAC_CTX *hctx, const ticket_key_t *k)
{
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)k->hmac, sizeof(k->hmac)),
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    return EVP_MAC_CTX_set_params(hctx, params) == 1;
}

/* OpenSSL's ticket key callback: 1 = use this key, 2 = use it and issue a fresh ticket,
 * 0 = unknown key (a full handshake), -1 = error. */
static int
ticket_cb(SSL *ssl, unsigned char key_name[16], unsigned char iv[EVP_MAX_IV_LENGTH],
          EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
    (void)ssl;
    pthread_mutex_lock(&ring.lock);
    rotate_by_age();
    ticket_key_t cur = ring.cur, prev = ring.prev;
    pthread_mutex_unlock(&ring.lock);
    if (enc) {
        if (!cur.set || RAND_bytes(iv, 16) != 1)
            return -1;
        memcpy(key_name, cur.name, 16);
        if (EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, cur.aes, iv) != 1 ||
            !set_hmac(hctx, &cur))
            return -1;
        return 1;
    }
    const ticket_key_t *k = NULL;
    if (cur.set && memcmp(key_name, cur.name, 16) == 0)
        k = &cur;
    else if (prev.set && memcmp(key_name, prev.name, 16) == 0)
        k = &prev;
    if (k == NULL)
        return 0;
    if (EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, k->aes, iv) != 1 || !set_hmac(hctx, k))
        return -1;
    return k == &prev ? 2 : 1;
}

void
cn_tls_tickets_attach(SSL_CTX *c)
{
    SSL_CTX_set_tlsext_ticket_key_evp_cb(c, ticket_cb);
}

/* The wire form of the ring for a graceful upgrade: each key as set flag + name + aes + hmac,
 * then the current key's age in milliseconds (8 bytes, little-endian). */

static unsigned char *
put_key(unsigned char *p, const ticket_key_t *k)
{
    *p++ = k->set ? 1 : 0;
    memcpy(p, k->name, 16);
    memcpy(p + 16, k->aes, 32);
    memcpy(p + 48, k->hmac, 32);
    return p + 80;
}

static const unsigned char *
get_key(const unsigned char *p, ticket_key_t *k)
{
    k->set = *p++ == 1;
    memcpy(k->name, p, 16);
    memcpy(k->aes, p + 16, 32);
    memcpy(k->hmac, p + 48, 32);
    return p + 80;
}

size_t
cn_tls_tickets_export(unsigned char *out, size_t cap)
{
    if (cap < CN_TLS_TICKETS_WIRE)
        return 0;
    pthread_mutex_lock(&ring.lock);
    rotate_by_age();
    unsigned char *p = put_key(put_key(out, &ring.cur), &ring.prev);
    uint64_t age_ms = (cn_time_now_ns() - ring.cur_since_ns) / 1000000;
    pthread_mutex_unlock(&ring.lock);
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(age_ms >> (8 * i));
    return CN_TLS_TICKETS_WIRE;
}

bool
cn_tls_tickets_import(const unsigned char *in, size_t n)
{
    if (n != CN_TLS_TICKETS_WIRE)
        return false;
    ticket_key_t cur, prev;
    const unsigned char *p = get_key(get_key(in, &cur), &prev);
    uint64_t age_ms = 0;
    for (int i = 0; i < 8; i++)
        age_ms |= (uint64_t)p[i] << (8 * i);
    if (!cur.set)
        return false;
    pthread_mutex_lock(&ring.lock);
    ring.cur = cur;
    ring.prev = prev;
    uint64_t now = cn_time_now_ns();
    uint64_t age_ns = age_ms * 1000000;
    ring.cur_since_ns = age_ns < now ? now - age_ns : 0;
    pthread_mutex_unlock(&ring.lock);
    return true;
}

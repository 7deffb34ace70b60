/* LD_PRELOAD shim for wrk's TLS client (bench/run.py builds it into the run's workdir).
 *
 * Counts the TLS handshakes wrk completes and how many of them resumed a session, and with
 * CAIRN_BENCH_TLS_FRESH=1 makes every handshake a full one.
 *
 * Why: wrk keeps one SSL object per connection slot and, on reconnect, calls SSL_shutdown +
 * SSL_clear, which keeps the last session (a TLS 1.3 ticket) in the SSL object; the next
 * SSL_connect offers it. So `wrk -H "Connection: close" https://...` resumes a session on
 * every reconnect, unless the session is dropped before the handshake starts.
 *
 * Environment:
 *   CAIRN_BENCH_TLS_FRESH=1     SSL_set_session(ssl, NULL) before each new handshake
 *   CAIRN_BENCH_TLS_STATS=FILE  at exit, write one JSON line: {"full":N,"resumed":N,
 *                               "failed":N,"version":"TLSv1.3","cipher":"...","group":N}
 *
 * Counting is client-side: SSL_session_reused() is true only when the server accepted the
 * offered session, so it is what the server did, not what the client hoped for.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int (*real_connect)(SSL *);
static unsigned long n_full, n_resumed, n_failed;
static int fresh = -1;
static char first_version[32], first_cipher[64];
static int first_group;

int
SSL_connect(SSL *s)
{
    if (!real_connect)
        real_connect = (int (*)(SSL *))dlsym(RTLD_NEXT, "SSL_connect");
    if (fresh < 0) {
        const char *e = getenv("CAIRN_BENCH_TLS_FRESH");
        fresh = e && e[0] == '1';
    }
    /* wrk calls SSL_connect again after each WANT_READ/WANT_WRITE: only touch the session
     * before the handshake has started */
    if (fresh && SSL_in_before(s))
        SSL_set_session(s, NULL);
    int r = real_connect(s);
    if (r == 1) {
        if (SSL_session_reused(s))
            __atomic_add_fetch(&n_resumed, 1, __ATOMIC_RELAXED);
        else
            __atomic_add_fetch(&n_full, 1, __ATOMIC_RELAXED);
        if (!first_version[0]) {
            snprintf(first_cipher, sizeof first_cipher, "%s", SSL_get_cipher_name(s));
            first_group = (int)SSL_get_negotiated_group(s);
            snprintf(first_version, sizeof first_version, "%s", SSL_get_version(s));
        }
    } else {
        int e = SSL_get_error(s, r);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
            __atomic_add_fetch(&n_failed, 1, __ATOMIC_RELAXED);
    }
    return r;
}

__attribute__((destructor)) static void
report(void)
{
    const char *path = getenv("CAIRN_BENCH_TLS_STATS");
    if (!path)
        return;
    FILE *f = fopen(path, "w");
    if (!f)
        return;
    fprintf(f,
            "{\"full\":%lu,\"resumed\":%lu,\"failed\":%lu,\"version\":\"%s\",\"cipher\":\"%s\","
            "\"group\":%d}\n",
            n_full, n_resumed, n_failed, first_version, first_cipher, first_group);
    fclose(f);
}

/* The hashing floor: single-core OpenSSL SHA-256 (EVP, whatever it picks on
 * this CPU: SHA-NI, AVX2, ...) over an in-memory buffer of BYTES bytes, no
 * I/O. The buffer is filled (and faulted in) before timing; each pass is one
 * EVP_DigestInit/Update(in 256 KiB pieces, as the native code feeds
 * it)/Final.
 *
 * Build: cc -O2 -o sha_ref sha_ref.c -lcrypto
 * Usage: sha_ref BYTES   Prints "ready" once the buffer is filled, then for
 *        each line read from stdin makes one pass and prints its seconds (wall
 *        and CPU):
 *        yes | head -6 | sha_ref 1073741824 */
#include <stdlib.h>
#include <string.h>

#include "bench_serve.h"

#define PIECE (256 * 1024)

struct buffer {
    const unsigned char *data;
    size_t len;
};

static void
hash_buffer(EVP_MD_CTX *ctx, void *arg)
{
    const struct buffer *b = arg;
    for (size_t off = 0; off < b->len; off += PIECE) {
        bench_update(ctx, b->data + off, b->len - off < PIECE ? b->len - off : PIECE);
    }
}

int
main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: sha_ref BYTES\n");
        return 2;
    }
    size_t bytes = strtoull(argv[1], NULL, 10);
    unsigned char *buf = malloc(bytes ? bytes : 1);
    if (buf == NULL) {
        bench_die("malloc");
    }
    unsigned long x = 88172645463325252UL;   /* xorshift: not compressible, not zero pages */
    for (size_t i = 0; i < bytes; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf[i] = (unsigned char)x;
    }
    struct buffer b = {buf, bytes};
    bench_serve(hash_buffer, &b, 0);
    free(buf);
    return 0;
}

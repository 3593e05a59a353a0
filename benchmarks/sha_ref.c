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
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PIECE (256 * 1024)

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
        perror("malloc");
        return 1;
    }
    unsigned long x = 88172645463325252UL;   /* xorshift: not compressible, not zero pages */
    for (size_t i = 0; i < bytes; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf[i] = (unsigned char)x;
    }
    EVP_MD *sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char md[32];
    printf("ready\n");
    fflush(stdout);
    char cmd[64];
    while (fgets(cmd, sizeof(cmd), stdin)) {
        struct timespec a, b, ca, cb;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ca);
        clock_gettime(CLOCK_MONOTONIC, &a);
        EVP_DigestInit_ex(ctx, sha256, NULL);
        for (size_t off = 0; off < bytes; off += PIECE) {
            EVP_DigestUpdate(ctx, buf + off, bytes - off < PIECE ? bytes - off : PIECE);
        }
        EVP_DigestFinal_ex(ctx, md, NULL);
        clock_gettime(CLOCK_MONOTONIC, &b);
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cb);
        printf("%.6f %.6f\n", (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9,
               (cb.tv_sec - ca.tv_sec) + (cb.tv_nsec - ca.tv_nsec) / 1e9);
        fflush(stdout);
    }
    EVP_MD_CTX_free(ctx);
    EVP_MD_free(sha256);
    free(buf);
    return 0;
}

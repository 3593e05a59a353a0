/* What the two reference programs (plain_loop.c, sha_ref.c) share: checked
 * SHA-256 calls and the request loop benchmarks/run.py drives. Each program
 * prints "ready" once its input is prepared, then makes one timed pass per
 * line read from stdin and prints "[<hex digest> ]<wall seconds> <CPU seconds>",
 * so the benchmark can interleave its passes with the other contenders'. */
#ifndef BENCH_SERVE_H
#define BENCH_SERVE_H

/* OpenSSL's headers are optional, as for the extension (csrc/rfn_evp.h). */
#include "../csrc/rfn_evp.h"
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static void
bench_die(const char *what)
{
    perror(what);
    exit(1);
}

static void
bench_sha_failed(const char *call)
{
    fprintf(stderr, "%s failed\n", call);
    exit(1);
}

static void
bench_update(EVP_MD_CTX *ctx, const void *data, size_t len)
{
    if (!EVP_DigestUpdate(ctx, data, len)) {
        bench_sha_failed("EVP_DigestUpdate");
    }
}

/* One pass: hash everything into ctx (already initialised). */
typedef void (*bench_pass)(EVP_MD_CTX *ctx, void *arg);

static double
bench_seconds(const struct timespec *a, const struct timespec *b)
{
    return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

static void
bench_serve(bench_pass pass, void *arg, int print_digest)
{
    EVP_MD *sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (sha256 == NULL || ctx == NULL) {
        bench_sha_failed("EVP_MD_fetch/EVP_MD_CTX_new");
    }
    unsigned char md[64];  /* EVP_MAX_MD_SIZE */
    unsigned int md_len = 0;
    printf("ready\n");
    fflush(stdout);
    char cmd[64];
    while (fgets(cmd, sizeof(cmd), stdin)) {
        struct timespec a, b, ca, cb;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ca);
        clock_gettime(CLOCK_MONOTONIC, &a);
        if (!EVP_DigestInit_ex(ctx, sha256, NULL)) {
            bench_sha_failed("EVP_DigestInit_ex");
        }
        pass(ctx, arg);
        if (!EVP_DigestFinal_ex(ctx, md, &md_len)) {
            bench_sha_failed("EVP_DigestFinal_ex");
        }
        clock_gettime(CLOCK_MONOTONIC, &b);
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cb);
        if (print_digest) {
            for (unsigned int k = 0; k < md_len; k++) {
                printf("%02x", md[k]);
            }
            printf(" ");
        }
        printf("%.6f %.6f\n", bench_seconds(&a, &b), bench_seconds(&ca, &cb));
        fflush(stdout);
    }
    EVP_MD_CTX_free(ctx);
    EVP_MD_free(sha256);
}

#endif

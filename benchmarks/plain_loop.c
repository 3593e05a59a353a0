/* The physical-limit reference: one thread opens, reads and SHA-256-hashes a
 * pre-sorted list of files (one path per line on stdin), nothing else. No
 * framing beyond what the fingerprint needs, no walk, no matching.
 * Build: cc -O2 -o plain_loop plain_loop.c -lcrypto
 * Usage: plain_loop REPEATS < list   → prints the median seconds per pass. */
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    int repeats = argc > 1 ? atoi(argv[1]) : 5;
    size_t n = 0, cap = 1024;
    char **paths = malloc(cap * sizeof(char *));
    char line[8192];
    while (fgets(line, sizeof(line), stdin)) {
        line[strcspn(line, "\n")] = 0;
        if (n == cap) paths = realloc(paths, (cap *= 2) * sizeof(char *));
        paths[n++] = strdup(line);
    }
    static unsigned char buf[256 * 1024];
    double *times = calloc(repeats + 1, sizeof(double));
    unsigned char md[32];
    for (int r = 0; r <= repeats; r++) {   /* pass 0 warms the cache */
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
        for (size_t i = 0; i < n; i++) {
            int fd = open(paths[i], O_RDONLY);
            if (fd < 0) { perror(paths[i]); return 1; }
            ssize_t got;
            while ((got = read(fd, buf, sizeof(buf))) > 0) EVP_DigestUpdate(ctx, buf, (size_t)got);
            close(fd);
        }
        EVP_DigestFinal_ex(ctx, md, NULL);
        EVP_MD_CTX_free(ctx);
        clock_gettime(CLOCK_MONOTONIC, &b);
        times[r] = (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
    }
    qsort(times + 1, repeats, sizeof(double), cmp_double);
    printf("%.6f\n", times[1 + repeats / 2]);
    return 0;
}

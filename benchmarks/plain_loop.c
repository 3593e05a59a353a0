/* The physical-limit reference for the file cases: one thread opens, reads
 * and SHA-256-hashes a pre-sorted list of files, nothing else: no walk, no
 * ignore matching, no change checks, no threads.
 *
 * It hashes the same byte stream as flash's compute_source_fingerprint
 * (per file: be64(len(rel)) rel be64(len(content)) content), so its digest
 * must equal flash's; the frame headers cost four EVP_DigestUpdate calls per
 * file and no system call. A file that fits the 256 KiB buffer is read whole
 * (read until read() returns 0: open, read, read, close) and framed with the
 * length read; a larger one is fstat()ed for its length and streamed.
 *
 * Build: cc -O2 -o plain_loop plain_loop.c -lcrypto
 * Usage: plain_loop LIST   (LIST: "open path<TAB>rel path" lines, already in
 *        flash's order). Prints "ready" once the list is loaded, then for each
 *        line read from stdin makes one pass and prints "<hex digest> <seconds> <CPU seconds>"
 *        (so a benchmark can interleave its passes with other programs'):
 *        yes | head -6 | plain_loop LIST */
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BUF_SIZE (256 * 1024)

static void
put_be64(EVP_MD_CTX *ctx, uint64_t v)
{
    unsigned char b[8];
    for (int i = 7; i >= 0; i--) {
        b[i] = (unsigned char)(v & 0xff);
        v >>= 8;
    }
    EVP_DigestUpdate(ctx, b, 8);
}

static void
die(const char *what)
{
    perror(what);
    exit(1);
}

int
main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: plain_loop LIST\n");
        return 2;
    }
    FILE *list = fopen(argv[1], "r");
    if (list == NULL) {
        die(argv[1]);
    }
    size_t n = 0, cap = 1024;
    char **paths = malloc(cap * sizeof(char *)), **rels = malloc(cap * sizeof(char *));
    char line[16384];
    while (fgets(line, sizeof(line), list)) {
        line[strcspn(line, "\n")] = 0;
        char *tab = strchr(line, '\t');
        if (tab == NULL) {
            fprintf(stderr, "bad list line: %s\n", line);
            return 1;
        }
        *tab = 0;
        if (n == cap) {
            cap *= 2;
            paths = realloc(paths, cap * sizeof(char *));
            rels = realloc(rels, cap * sizeof(char *));
        }
        paths[n] = strdup(line);
        rels[n] = strdup(tab + 1);
        n++;
    }
    static unsigned char buf[BUF_SIZE];
    unsigned char md[32];
    EVP_MD *sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    fclose(list);
    printf("ready\n");
    fflush(stdout);
    char cmd[64];
    while (fgets(cmd, sizeof(cmd), stdin)) {
        struct timespec a, b, ca, cb;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ca);
        clock_gettime(CLOCK_MONOTONIC, &a);
        EVP_DigestInit_ex(ctx, sha256, NULL);
        for (size_t i = 0; i < n; i++) {
            int fd = open(paths[i], O_RDONLY | O_CLOEXEC);
            if (fd < 0) {
                die(paths[i]);
            }
            size_t rel_len = strlen(rels[i]), fill = 0;
            ssize_t got = 0;
            while (fill < BUF_SIZE && (got = read(fd, buf + fill, BUF_SIZE - fill)) > 0) {
                fill += (size_t)got;
            }
            if (got < 0) {
                die(paths[i]);
            }
            put_be64(ctx, rel_len);
            EVP_DigestUpdate(ctx, rels[i], rel_len);
            if (fill < BUF_SIZE) {             /* whole file in buf */
                put_be64(ctx, fill);
                EVP_DigestUpdate(ctx, buf, fill);
            }
            else {                             /* large: stream it */
                struct stat st;
                if (fstat(fd, &st) != 0) {
                    die(paths[i]);
                }
                put_be64(ctx, (uint64_t)st.st_size);
                EVP_DigestUpdate(ctx, buf, fill);
                while ((got = read(fd, buf, BUF_SIZE)) > 0) {
                    EVP_DigestUpdate(ctx, buf, (size_t)got);
                }
                if (got < 0) {
                    die(paths[i]);
                }
            }
            close(fd);
        }
        EVP_DigestFinal_ex(ctx, md, NULL);
        clock_gettime(CLOCK_MONOTONIC, &b);
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cb);
        for (int k = 0; k < 32; k++) {
            printf("%02x", md[k]);
        }
        printf(" %.6f %.6f\n", (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9,
               (cb.tv_sec - ca.tv_sec) + (cb.tv_nsec - ca.tv_nsec) / 1e9);
        fflush(stdout);
    }
    EVP_MD_CTX_free(ctx);
    EVP_MD_free(sha256);
    return 0;
}

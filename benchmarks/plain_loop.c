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
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench_serve.h"

#define BUF_SIZE (256 * 1024)

struct file_list {
    char **paths;   /* to open */
    char **rels;    /* as framed */
    size_t n;
};

static void
put_be64(EVP_MD_CTX *ctx, uint64_t v)
{
    unsigned char b[8];
    for (int i = 7; i >= 0; i--) {
        b[i] = (unsigned char)(v & 0xff);
        v >>= 8;
    }
    bench_update(ctx, b, 8);
}

static void
hash_files(EVP_MD_CTX *ctx, void *arg)
{
    static unsigned char buf[BUF_SIZE];
    const struct file_list *fl = arg;
    for (size_t i = 0; i < fl->n; i++) {
        int fd = open(fl->paths[i], O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            bench_die(fl->paths[i]);
        }
        size_t rel_len = strlen(fl->rels[i]), fill = 0;
        ssize_t got = 0;
        while (fill < BUF_SIZE && (got = read(fd, buf + fill, BUF_SIZE - fill)) > 0) {
            fill += (size_t)got;
        }
        if (got < 0) {
            bench_die(fl->paths[i]);
        }
        put_be64(ctx, rel_len);
        bench_update(ctx, fl->rels[i], rel_len);
        if (fill < BUF_SIZE) {             /* whole file in buf */
            put_be64(ctx, fill);
            bench_update(ctx, buf, fill);
        }
        else {                             /* large: stream it */
            struct stat st;
            if (fstat(fd, &st) != 0) {
                bench_die(fl->paths[i]);
            }
            put_be64(ctx, (uint64_t)st.st_size);
            bench_update(ctx, buf, fill);
            while ((got = read(fd, buf, BUF_SIZE)) > 0) {
                bench_update(ctx, buf, (size_t)got);
            }
            if (got < 0) {
                bench_die(fl->paths[i]);
            }
        }
        close(fd);
    }
}

static void
read_list(const char *listing, struct file_list *fl)
{
    FILE *list = fopen(listing, "r");
    if (list == NULL) {
        bench_die(listing);
    }
    size_t cap = 1024;
    fl->n = 0;
    fl->paths = malloc(cap * sizeof(char *));
    fl->rels = malloc(cap * sizeof(char *));
    char line[16384];
    while (fl->paths != NULL && fl->rels != NULL && fgets(line, sizeof(line), list)) {
        line[strcspn(line, "\n")] = 0;
        char *tab = strchr(line, '\t');
        if (tab == NULL) {
            fprintf(stderr, "bad list line: %s\n", line);
            exit(1);
        }
        *tab = 0;
        if (fl->n == cap) {
            cap *= 2;
            fl->paths = realloc(fl->paths, cap * sizeof(char *));
            fl->rels = realloc(fl->rels, cap * sizeof(char *));
            if (fl->paths == NULL || fl->rels == NULL) {
                break;
            }
        }
        fl->paths[fl->n] = strdup(line);
        fl->rels[fl->n] = strdup(tab + 1);
        if (fl->paths[fl->n] == NULL || fl->rels[fl->n] == NULL) {
            bench_die("strdup");
        }
        fl->n++;
    }
    if (fl->paths == NULL || fl->rels == NULL) {
        bench_die("malloc");
    }
    fclose(list);
}

int
main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: plain_loop LIST\n");
        return 2;
    }
    struct file_list fl;
    read_list(argv[1], &fl);
    bench_serve(hash_files, &fl, 1);
    return 0;
}

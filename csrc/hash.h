/* hash: SHA-256 over the framed, pipelined source stream (flash's
 * compute_source_fingerprint). Compiles without Python.h; the bindings and
 * the Python exceptions for an rfn_failure are in py_hash.c.
 *
 * Each file is framed into the fingerprint as
 *   be64(len(rel)) || rel || be64(len(content)) || content
 */
#ifndef RFN_HASH_H
#define RFN_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "os.h"
#include "rfn_evp.h"      /* OpenSSL 3 EVP, with or without its headers */

#define RFN_SHA256_LEN 32
#define RFN_CHUNK_SIZE (256u * 1024u)        /* one read(2) and one ring slot */
#define RFN_THREAD_THRESHOLD (1u << 20)      /* smaller streams: a thread costs more than it saves */
#define RFN_MAX_READERS 4                    /* reader threads of the threaded mode, at most */
#define RFN_READER_BLOCK 32                  /* consecutive sources one reader frames in turn */

/* The order of sort keys (UTF-8 with surrogates passed through, which
 * preserves Python's code-point order of str under memcmp), each followed by
 * an optional tail byte (-1 for none: the walk's directories sort as their
 * name + "/"). Neither key may contain its own tail byte. */
static inline int
rfn_compare_keys_tail(const char *a, size_t alen, int atail, const char *b, size_t blen,
                      int btail)
{
    size_t n = alen < blen ? alen : blen;
    int c = n > 0 ? memcmp(a, b, n) : 0;
    if (c != 0) {
        return c;
    }
    /* One key is a prefix of the other: compare the next byte. */
    int ca = alen > n ? (unsigned char)a[n] : atail;
    int cb = blen > n ? (unsigned char)b[n] : btail;
    return (ca > cb) - (ca < cb);
}

/* Python's order of two relative paths given as sort keys. */
static inline int
rfn_compare_keys(const char *a, size_t alen, const char *b, size_t blen)
{
    return rfn_compare_keys_tail(a, alen, -1, b, blen, -1);
}

/* One file of the stream. open_path is the NUL-terminated filesystem path
 * handed to open(2); rel is the UTF-8 POSIX path relative to the project
 * root. */
typedef struct {
    const char *open_path;
    const char *rel;
    size_t rel_len;
} rfn_source;

/* Why a fingerprint stopped. Filled without the GIL; py_hash.c's
 * rfn_raise_failure() turns it into a Python exception. */
enum rfn_failure_kind {
    RFN_OK = 0,
    RFN_FAIL_OS,            /* errno from open/fstat/read */
    RFN_FAIL_NOT_REGULAR,   /* FIFO, socket or device: flash would block or read forever */
    RFN_FAIL_CHANGED,       /* size or mtime moved while the file was hashed */
    RFN_FAIL_NOMEM,
    RFN_FAIL_THREAD,        /* pthread_create failed */
    RFN_FAIL_EVP,           /* OpenSSL error; the error queue says which */
    RFN_FAIL_INTERRUPTED,   /* the poller asked to stop (a Python signal handler raised) */
};

typedef struct {
    enum rfn_failure_kind kind;
    int err_no;
    size_t index;           /* which source failed */
    const char *detail;     /* static text for CHANGED/NOT_REGULAR */
} rfn_failure;

/* One file's own size and SHA-256, taken from the bytes framed into the
 * stream (rfn_source_feed.file_out). */
typedef struct {
    uint64_t size;
    unsigned char sha256[RFN_SHA256_LEN];
} rfn_file_digest;

/* Where sources come from. get() may block until source i exists; it returns
 * NULL once there are no more (or the producer failed and set *fail). */
typedef struct rfn_source_feed rfn_source_feed;
struct rfn_source_feed {
    const rfn_source *(*get)(rfn_source_feed *feed, size_t i);
    void *ctx;
    /* Optional, for feeds whose get() can block for long (the walk):
     * cancel() wakes a get() blocked on another thread and makes it return
     * NULL. While poll is non-NULL, get() runs on the calling thread and must
     * call it every RFN_WAIT_POLL_NS while it waits; when it returns -1,
     * get() sets interrupted and returns NULL. */
    void (*cancel)(rfn_source_feed *feed);
    const rfn_poller *poll;
    int interrupted;
    /* Optional: with file_md set, the thread that frames source i also
     * digests its content alone into file_out[i] (readers run on other
     * cores than the stream's hash). */
    const EVP_MD *file_md;
    rfn_file_digest *file_out;
};

/* A feed over a fixed array. */
typedef struct {
    rfn_source_feed feed;
    const rfn_source *items;
    size_t count;
} rfn_array_feed;
void rfn_array_feed_init(rfn_array_feed *af, const rfn_source *items, size_t count);

/* Reader threads of the threaded mode when not set (requested == 0): one
 * more than the CPUs, up to RFN_MAX_READERS, and one on a single CPU. */
size_t rfn_hash_reader_count(int requested);

/* Hash every source of feed with md into digest, on the calling thread and
 * up to nreaders reader threads (rfn_hash_reader_count). poll runs on the
 * calling thread at least every RFN_WAIT_POLL_NS and every 32 MiB hashed;
 * when it returns -1 the stream stops with RFN_FAIL_INTERRUPTED. Returns 0,
 * or -1 with *fail filled. total_hint (bytes, 0 if unknown) picks between an
 * inline loop and reader threads overlapping I/O with hashing. */
int rfn_fingerprint_stream(const EVP_MD *md, size_t nreaders, rfn_source_feed *feed,
                           uint64_t total_hint, const rfn_poller *poll,
                           unsigned char digest[RFN_SHA256_LEN], rfn_failure *fail);

/* Bytes every fingerprint stream of this process has read so far (all
 * threads; only grows). */
uint64_t rfn_hash_bytes_read(void);

#endif /* RFN_HASH_H */

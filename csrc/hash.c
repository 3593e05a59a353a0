/* SHA-256 over the framed source stream, as flash's compute_source_fingerprint
 * defines it:
 *
 *   for each file, in order:  be64(len(rel)) rel be64(len(content)) content
 *
 * flash reads each file whole; we stream it in RFN_CHUNK_SIZE pieces, take the
 * length from fstat() of the opened file, and refuse a file whose size or
 * mtime moved while we read it (the length in the frame would be a lie).
 * Kernel pseudo files (procfs, sysfs, ...), whose fstat() size is not their
 * length, are read to EOF first, as flash does.
 *
 * Small inputs are framed and hashed inline on the calling thread. Once the
 * stream is large enough to pay for a thread, a reader thread frames the rest
 * into a ring of buffers while the calling thread hashes them, so read(2)
 * copies overlap SHA-256 on the other core. Both run without the GIL; the
 * file compiles without Python.h (bindings: py_hash.c).
 */
#include "hash.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define RFN_RING_SLOTS 8                     /* 2 MiB in flight, whatever the file size */
#define RFN_SIGNAL_POLL_BYTES (32u << 20)    /* call the poller at least this often
                                              (and every RFN_WAIT_POLL_NS, os.h) */
#define RFN_PSEUDO_MAX (256u << 20)          /* a kernel pseudo file is read whole, up to this */

/* ---- the read counter -------------------------------------------------------- */

/* Bytes the hash stream has read, process-wide: the progress line's "bytes
 * done" where the kernel keeps no count of a process's reads (Linux's
 * /proc/self/io rchar; macOS has none). */
static uint64_t rfn_read_total;

uint64_t
rfn_hash_bytes_read(void)
{
    return __atomic_load_n(&rfn_read_total, __ATOMIC_RELAXED);
}

/* read(2), counted. */
static ssize_t
rfn_read_counted(int fd, void *buf, size_t len)
{
    ssize_t got = read(fd, buf, len);
    if (got > 0) {
        __atomic_fetch_add(&rfn_read_total, (uint64_t)got, __ATOMIC_RELAXED);
    }
    return got;
}

/* ---- feeds ---------------------------------------------------------------- */

static const rfn_source *
rfn_array_feed_get(rfn_source_feed *feed, size_t i)
{
    rfn_array_feed *af = (rfn_array_feed *)feed->ctx;
    return i < af->count ? &af->items[i] : NULL;
}

void
rfn_array_feed_init(rfn_array_feed *af, const rfn_source *items, size_t count)
{
    memset(&af->feed, 0, sizeof(af->feed));
    af->feed.get = rfn_array_feed_get;
    af->feed.ctx = af;
    af->items = items;
    af->count = count;
}

/* ---- sinks: where framed bytes go ------------------------------------------ */

typedef struct rfn_sink rfn_sink;
struct rfn_sink {
    unsigned char *buf;
    size_t cap;
    size_t fill;
    uint64_t produced;                  /* bytes framed so far, all files */
    int (*flush)(rfn_sink *sink);       /* hand buf[0:fill] on; -1 to stop */
    int *cancel;                        /* set by the consumer to stop a producer (atomic) */
};

static int
rfn_sink_put(rfn_sink *sink, const void *data, size_t len)
{
    const unsigned char *p = data;
    while (len > 0) {
        if (sink->fill == sink->cap && sink->flush(sink) < 0) {
            return -1;
        }
        size_t n = sink->cap - sink->fill;
        if (n > len) {
            n = len;
        }
        memcpy(sink->buf + sink->fill, p, n);
        sink->fill += n;
        sink->produced += n;
        p += n;
        len -= n;
    }
    return 0;
}

static int
rfn_sink_put_be64(rfn_sink *sink, uint64_t v)
{
    unsigned char b[8];
    for (int i = 7; i >= 0; i--) {
        b[i] = (unsigned char)(v & 0xff);
        v >>= 8;
    }
    return rfn_sink_put(sink, b, sizeof(b));
}

/* ---- the producer: open, frame and read one source after another --------- */

enum { RFN_PRODUCE_DONE = 0, RFN_PRODUCE_FAILED = -1, RFN_PRODUCE_SWITCH = 1 };

static void
rfn_fail_os(rfn_failure *fail, size_t index, int err_no)
{
    fail->kind = RFN_FAIL_OS;
    fail->err_no = err_no;
    fail->index = index;
}

static void
rfn_fail_detail(rfn_failure *fail, enum rfn_failure_kind kind, size_t index, const char *detail)
{
    fail->kind = kind;
    fail->index = index;
    fail->detail = detail;
}

static int
rfn_same_version(const struct stat *a, const struct stat *b)
{
    return a->st_size == b->st_size && RFN_ST_MTIM(a).tv_sec == RFN_ST_MTIM(b).tv_sec
           && RFN_ST_MTIM(a).tv_nsec == RFN_ST_MTIM(b).tv_nsec;
}

/* Read exactly `size` bytes of fd into the sink, then make sure the file ended
 * there and, for files read in several pieces, was not modified meanwhile.
 * While the rest fits in the buffer we ask for one byte more than expected: a
 * short read then proves EOF without another system call. */
static int
rfn_produce_content(rfn_sink *sink, int fd, const struct stat *before, size_t index,
                    EVP_MD_CTX *file_ctx, rfn_failure *fail)
{
    uint64_t remaining = (uint64_t)before->st_size;
    int eof_seen = 0;
    while (remaining > 0) {
        if (sink->fill == sink->cap && sink->flush(sink) < 0) {
            return -1;
        }
        size_t space = sink->cap - sink->fill;
        size_t want = space > remaining ? (size_t)remaining + 1 : space;
        ssize_t got = rfn_read_counted(fd, sink->buf + sink->fill, want);
        if (got < 0) {
            if (errno == EINTR) {
                continue;
            }
            rfn_fail_os(fail, index, errno);
            return -1;
        }
        if (got == 0) {
            rfn_fail_detail(fail, RFN_FAIL_CHANGED, index, "shrank while it was being hashed");
            return -1;
        }
        if ((uint64_t)got > remaining) {
            rfn_fail_detail(fail, RFN_FAIL_CHANGED, index, "grew while it was being hashed");
            return -1;
        }
        if (file_ctx != NULL && EVP_DigestUpdate(file_ctx, sink->buf + sink->fill, (size_t)got) != 1) {
            fail->kind = RFN_FAIL_EVP;
            return -1;
        }
        sink->fill += (size_t)got;
        sink->produced += (uint64_t)got;
        remaining -= (uint64_t)got;
        eof_seen = remaining == 0 && (size_t)got < want;
    }
    if (!eof_seen) {
        unsigned char extra;
        ssize_t got;
        do {
            got = rfn_read_counted(fd, &extra, 1);
        } while (got < 0 && errno == EINTR);
        if (got < 0) {
            rfn_fail_os(fail, index, errno);
            return -1;
        }
        if (got > 0) {
            rfn_fail_detail(fail, RFN_FAIL_CHANGED, index, "grew while it was being hashed");
            return -1;
        }
    }
    struct stat after;
    if (before->st_size > (off_t)RFN_CHUNK_SIZE
        && (fstat(fd, &after) != 0 || !rfn_same_version(before, &after))) {
        rfn_fail_detail(fail, RFN_FAIL_CHANGED, index, "changed while it was being hashed");
        return -1;
    }
    return 0;
}

/* Read a pseudo file to EOF into memory, then frame it with its real length. */
static int
rfn_produce_pseudo(rfn_sink *sink, int fd, const rfn_source *src, size_t index,
                   EVP_MD_CTX *file_ctx, uint64_t *length, rfn_failure *fail)
{
    size_t cap = 64u * 1024u, len = 0;
    unsigned char *buf = malloc(cap);
    if (buf == NULL) {
        fail->kind = RFN_FAIL_NOMEM;
        return -1;
    }
    for (;;) {
        if (len == cap) {
            if (cap >= RFN_PSEUDO_MAX) {
                rfn_fail_detail(fail, RFN_FAIL_NOT_REGULAR, index,
                                "kernel pseudo file larger than 256 MiB; refusing to hash it");
                free(buf);
                return -1;
            }
            unsigned char *bigger = realloc(buf, cap * 2);
            if (bigger == NULL) {
                fail->kind = RFN_FAIL_NOMEM;
                free(buf);
                return -1;
            }
            buf = bigger;
            cap *= 2;
        }
        ssize_t got = rfn_read_counted(fd, buf + len, cap - len);
        if (got < 0) {
            if (errno == EINTR) {
                continue;
            }
            rfn_fail_os(fail, index, errno);
            free(buf);
            return -1;
        }
        if (got == 0) {
            break;
        }
        len += (size_t)got;
    }
    int rc = 0;
    if (file_ctx != NULL && EVP_DigestUpdate(file_ctx, buf, len) != 1) {
        fail->kind = RFN_FAIL_EVP;
        rc = -1;
    }
    else if (rfn_sink_put_be64(sink, src->rel_len) < 0 || rfn_sink_put(sink, src->rel, src->rel_len) < 0
             || rfn_sink_put_be64(sink, (uint64_t)len) < 0 || rfn_sink_put(sink, buf, len) < 0) {
        rc = -1;
    }
    *length = (uint64_t)len;
    free(buf);
    return rc;
}

static int
rfn_open_source(rfn_dircache *dirs, const rfn_source *src, size_t index, struct stat *st,
                rfn_failure *fail)
{
    /* O_NONBLOCK: opening a FIFO must not wait for a writer. */
    int fd = rfn_dircache_open(dirs, src->open_path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        rfn_fail_os(fail, index, errno);
        return -1;
    }
    if (fstat(fd, st) != 0) {
        rfn_fail_os(fail, index, errno);
        close(fd);
        return -1;
    }
    if (S_ISDIR(st->st_mode)) {
        rfn_fail_os(fail, index, EISDIR);
        close(fd);
        return -1;
    }
    if (!S_ISREG(st->st_mode)) {
        rfn_fail_detail(fail, RFN_FAIL_NOT_REGULAR, index,
                        "not a regular file (FIFO, socket or device); refusing to hash it");
        close(fd);
        return -1;
    }
    return fd;
}

/* Frame sources start, start+1, ... into sink, at most count of them: after
 * the count-th, report RFN_PRODUCE_SWITCH with *next at the one after it.
 * With switch_at nonzero, also stop before the first file that would take
 * the stream past switch_at bytes and report RFN_PRODUCE_SWITCH with *next at
 * that file. */
static int
rfn_produce_with(rfn_sink *sink, rfn_dircache *dirs, EVP_MD_CTX *file_ctx, rfn_source_feed *feed,
                 size_t start, size_t count, uint64_t switch_at, size_t *next, rfn_failure *fail)
{
    for (size_t i = start;; i++) {
        if (i - start == count) {
            *next = i;
            return RFN_PRODUCE_SWITCH;
        }
        if (sink->cancel != NULL && rfn_cancelled(sink->cancel)) {
            return RFN_PRODUCE_FAILED;  /* the consumer already knows why */
        }
        const rfn_source *src = feed->get(feed, i);
        if (src == NULL) {
            if (feed->interrupted) {
                fail->kind = RFN_FAIL_INTERRUPTED;  /* a signal handler raised while get() waited */
            }
            return fail->kind == RFN_OK ? RFN_PRODUCE_DONE : RFN_PRODUCE_FAILED;
        }
        struct stat st;
        int fd = rfn_open_source(dirs, src, i, &st, fail);
        if (fd < 0) {
            return RFN_PRODUCE_FAILED;
        }
        int rc = 0;
        int pseudo = rfn_is_pseudo_file(fd, &st);
        uint64_t length = (uint64_t)st.st_size;
        if (!pseudo && switch_at != 0 && sink->produced + length > switch_at) {
            close(fd);
            *next = i;
            return RFN_PRODUCE_SWITCH;
        }
        if (file_ctx != NULL && EVP_DigestInit_ex(file_ctx, feed->file_md, NULL) != 1) {
            fail->kind = RFN_FAIL_EVP;
            rc = -1;
        }
        else if (pseudo) {
            rc = rfn_produce_pseudo(sink, fd, src, i, file_ctx, &length, fail);
        }
        else if (rfn_sink_put_be64(sink, src->rel_len) < 0
                 || rfn_sink_put(sink, src->rel, src->rel_len) < 0
                 || rfn_sink_put_be64(sink, length) < 0
                 || rfn_produce_content(sink, fd, &st, i, file_ctx, fail) < 0) {
            rc = -1;
        }
        close(fd);
        if (rc == 0 && file_ctx != NULL) {
            feed->file_out[i].size = length;
            if (EVP_DigestFinal_ex(file_ctx, feed->file_out[i].sha256, NULL) != 1) {
                fail->kind = RFN_FAIL_EVP;
                rc = -1;
            }
        }
        if (rc < 0) {
            return RFN_PRODUCE_FAILED;
        }
    }
}

/* One call's sources: a block of consecutive files, whose deep directories
 * one cache serves (rfn_dircache). */
static int
rfn_produce(rfn_sink *sink, rfn_source_feed *feed, size_t start, size_t count,
            uint64_t switch_at, size_t *next, rfn_failure *fail)
{
    EVP_MD_CTX *file_ctx = NULL;
    if (feed->file_md != NULL && (file_ctx = EVP_MD_CTX_new()) == NULL) {
        fail->kind = RFN_FAIL_NOMEM;
        return RFN_PRODUCE_FAILED;
    }
    rfn_dircache dirs = RFN_DIRCACHE_INIT;
    int rc = rfn_produce_with(sink, &dirs, file_ctx, feed, start, count, switch_at, next, fail);
    rfn_dircache_free(&dirs);
    EVP_MD_CTX_free(file_ctx);
    return rc;
}

/* ---- inline mode: produce and hash on the calling thread ------------------ */

typedef struct {
    rfn_sink sink;
    EVP_MD_CTX *ctx;
    const rfn_poller *poll;
    uint64_t since_poll;
    rfn_failure *fail;
} rfn_inline_sink;

static int
rfn_inline_flush(rfn_sink *sink)
{
    rfn_inline_sink *is = (rfn_inline_sink *)sink;
    if (sink->fill > 0 && !EVP_DigestUpdate(is->ctx, sink->buf, sink->fill)) {
        is->fail->kind = RFN_FAIL_EVP;
        return -1;
    }
    is->since_poll += sink->fill;
    sink->fill = 0;
    if (is->since_poll >= RFN_SIGNAL_POLL_BYTES) {
        is->since_poll = 0;
        if (rfn_poll(is->poll) < 0) {
            is->fail->kind = RFN_FAIL_INTERRUPTED;
            return -1;
        }
    }
    return 0;
}

/* ---- threaded mode: reader threads fill rings the caller hashes ----------- */

/* With n readers the sources are dealt out in blocks of RFN_READER_BLOCK
 * consecutive files: reader k frames blocks k, k + n, k + 2n, ... into its own
 * ring and marks the slot that ends each block; the caller hashes the rings in
 * turn, one block from each, so the stream keeps flash's order. The opens,
 * reads and closes of many small files (most of a project's time) then run on
 * every core, while a large file still streams through one ring, its reads
 * overlapping SHA-256. A reader that fails stops there, and the caller meets
 * the failure where that file's bytes would have come: the first bad file in
 * sorted order is reported, as with a single reader. */

typedef struct {
    rfn_sink sink;                       /* the producer's view of its current slot */
    unsigned char *slots[RFN_RING_SLOTS];
    size_t slot_len[RFN_RING_SLOTS];
    unsigned char slot_ends_block[RFN_RING_SLOTS];
    size_t head;                         /* next slot the producer publishes */
    size_t tail;                         /* next slot the consumer hashes */
    int producer_waiting;                /* for free slots: wake it at half a ring */
    int producer_done;
    int cancel;                          /* written under lock, read by the producer without */
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int have_lock, have_cond;
    /* producer arguments and result */
    rfn_source_feed *feed;
    size_t start;                        /* first source of its first block */
    size_t block;                        /* sources per block; SIZE_MAX with one reader */
    size_t stride;                       /* from the start of one of its blocks to the next */
    rfn_failure fail;
} rfn_ring;

/* Producer side: publish the current slot, wait for a free one. */
static int
rfn_ring_publish(rfn_ring *r, int ends_block)
{
    pthread_mutex_lock(&r->lock);
    size_t k = r->head % RFN_RING_SLOTS;
    r->slot_len[k] = r->sink.fill;
    r->slot_ends_block[k] = (unsigned char)ends_block;
    r->head++;
    pthread_cond_broadcast(&r->changed);
    /* A full ring: read on only once half of it is free again, so that a
     * reader faster than SHA-256 (a large file) is woken once per half ring,
     * not once per slot. */
    if (r->head - r->tail >= RFN_RING_SLOTS) {
        r->producer_waiting = 1;
        while (!r->cancel && r->head - r->tail > RFN_RING_SLOTS / 2) {
            pthread_cond_wait(&r->changed, &r->lock);
        }
        r->producer_waiting = 0;
    }
    int cancelled = r->cancel;
    pthread_mutex_unlock(&r->lock);
    r->sink.buf = r->slots[r->head % RFN_RING_SLOTS];
    r->sink.fill = 0;
    return cancelled ? -1 : 0;
}

static int
rfn_ring_flush(rfn_sink *sink)
{
    return rfn_ring_publish((rfn_ring *)sink, 0);
}

static void *
rfn_ring_producer(void *arg)
{
    rfn_ring *r = arg;
    size_t from = r->start, next;
    int rc;
    for (;;) {
        rc = rfn_produce(&r->sink, r->feed, from, r->block, 0, &next, &r->fail);
        if (rc != RFN_PRODUCE_SWITCH) {
            break;  /* the sources ran out inside this block, or a failure */
        }
        if (rfn_ring_publish(r, 1) < 0) {
            rc = RFN_PRODUCE_FAILED;
            break;
        }
        from += r->stride;
    }
    if (rc == RFN_PRODUCE_DONE && r->sink.fill > 0) {
        rfn_ring_publish(r, 0);
    }
    pthread_mutex_lock(&r->lock);
    r->producer_done = 1;
    pthread_cond_broadcast(&r->changed);
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

static void
rfn_ring_cancel(rfn_ring *r)
{
    pthread_mutex_lock(&r->lock);
    rfn_cancel_set(&r->cancel);
    pthread_cond_broadcast(&r->changed);
    pthread_mutex_unlock(&r->lock);
}

/* Consumer side, on the calling thread: hash the rings' slots in stream
 * order until the ring holding the next bytes is drained and its producer
 * done: the end of the stream, or that producer's failure. Returns 0 or -1
 * with *fail set.
 *
 * Signal handlers run after every 32 MiB hashed and whenever 50 ms passed
 * since they last ran: a reader publishing a slot every few milliseconds
 * (many small files, a slow file system) never lets the wait time out, and
 * 32 MiB of small-file frames can take seconds to produce. */
static int
rfn_rings_consume(rfn_ring *rings, size_t nrings, EVP_MD_CTX *ctx, const rfn_poller *poll,
                  rfn_failure *fail)
{
    uint64_t since_poll = 0;
    int64_t last_poll = rfn_now_ns();
    size_t cur = 0;
    for (;;) {
        rfn_ring *r = &rings[cur];
        pthread_mutex_lock(&r->lock);
        while (r->tail == r->head && !r->producer_done) {
            if (rfn_cond_wait_ns(&r->changed, &r->lock, RFN_WAIT_POLL_NS) == ETIMEDOUT) {
                pthread_mutex_unlock(&r->lock);
                int rc = rfn_poll(poll);
                since_poll = 0;
                last_poll = rfn_now_ns();
                if (rc < 0) {
                    fail->kind = RFN_FAIL_INTERRUPTED;
                    return -1;
                }
                pthread_mutex_lock(&r->lock);
            }
        }
        if (r->tail == r->head) {
            pthread_mutex_unlock(&r->lock);
            if (r->fail.kind != RFN_OK) {
                *fail = r->fail;
                return -1;
            }
            return 0;
        }
        size_t k = r->tail % RFN_RING_SLOTS;
        pthread_mutex_unlock(&r->lock);

        if (!EVP_DigestUpdate(ctx, r->slots[k], r->slot_len[k])) {
            fail->kind = RFN_FAIL_EVP;
            return -1;
        }
        since_poll += r->slot_len[k];
        if (since_poll >= RFN_SIGNAL_POLL_BYTES || rfn_now_ns() - last_poll >= RFN_WAIT_POLL_NS) {
            since_poll = 0;
            int rc = rfn_poll(poll);
            last_poll = rfn_now_ns();
            if (rc < 0) {
                fail->kind = RFN_FAIL_INTERRUPTED;
                return -1;
            }
        }
        int ends_block = r->slot_ends_block[k];

        pthread_mutex_lock(&r->lock);
        r->tail++;
        if (r->producer_waiting && r->head - r->tail <= RFN_RING_SLOTS / 2) {
            pthread_cond_broadcast(&r->changed);
        }
        pthread_mutex_unlock(&r->lock);
        if (ends_block) {
            cur = (cur + 1) % nrings;
        }
    }
}

static int
rfn_ring_init(rfn_ring *r, rfn_source_feed *feed, size_t start, size_t block, size_t stride)
{
    for (int i = 0; i < RFN_RING_SLOTS; i++) {
        r->slots[i] = malloc(RFN_CHUNK_SIZE);
        if (r->slots[i] == NULL) {
            return -1;
        }
    }
    if (rfn_mutex_init(&r->lock) != 0) {
        return -1;
    }
    r->have_lock = 1;
    if (rfn_cond_init(&r->changed) != 0) {
        return -1;
    }
    r->have_cond = 1;
    r->sink.buf = r->slots[0];
    r->sink.cap = RFN_CHUNK_SIZE;
    r->sink.flush = rfn_ring_flush;
    r->sink.cancel = &r->cancel;
    r->feed = feed;
    r->start = start;
    r->block = block;
    r->stride = stride;
    return 0;
}

/* Releases what rfn_ring_init took, also after it failed half way. */
static void
rfn_ring_release(rfn_ring *r)
{
    if (r->have_cond) {
        pthread_cond_destroy(&r->changed);
    }
    if (r->have_lock) {
        pthread_mutex_destroy(&r->lock);
    }
    for (int i = 0; i < RFN_RING_SLOTS; i++) {
        free(r->slots[i]);
    }
}

static int
rfn_hash_threaded(rfn_source_feed *feed, size_t start, size_t nreaders, EVP_MD_CTX *ctx,
                  const rfn_poller *poll, rfn_failure *fail)
{
    int result = -1;
    size_t block = nreaders > 1 ? RFN_READER_BLOCK : SIZE_MAX;
    size_t stride = nreaders > 1 ? nreaders * RFN_READER_BLOCK : 0;
    pthread_t threads[RFN_MAX_READERS];
    size_t ready = 0, started = 0;
    rfn_ring *rings = calloc(nreaders, sizeof(*rings));
    if (rings == NULL) {
        fail->kind = RFN_FAIL_NOMEM;
        return -1;
    }
    for (; ready < nreaders; ready++) {
        if (rfn_ring_init(&rings[ready], feed, start + ready * RFN_READER_BLOCK, block, stride) < 0) {
            rfn_ring_release(&rings[ready]);
            fail->kind = RFN_FAIL_NOMEM;
            goto exit;
        }
    }
    for (; started < nreaders; started++) {
        int err = rfn_thread_start(&threads[started], rfn_ring_producer, &rings[started]);
        if (err != 0) {
            fail->kind = RFN_FAIL_THREAD;
            fail->err_no = err;
            break;
        }
    }
    if (started == nreaders) {
        result = rfn_rings_consume(rings, nreaders, ctx, poll, fail);
        if (result < 0 && fail->kind == RFN_FAIL_INTERRUPTED && feed->cancel != NULL) {
            /* The readers may be blocked in get() waiting for the walk. */
            feed->cancel(feed);
        }
    }
    /* Also after success: a reader past the end must not wait on a ring
     * nobody drains any more. */
    for (size_t i = 0; i < started; i++) {
        rfn_ring_cancel(&rings[i]);
    }
    for (size_t i = 0; i < started; i++) {
        pthread_join(threads[i], NULL);
    }

exit:
    for (size_t i = 0; i < ready; i++) {
        rfn_ring_release(&rings[i]);
    }
    free(rings);
    return result;
}

/* Readers for the threaded mode, unless set by _set_reader_threads() (tests):
 * one more than the CPUs this process may run on, up to RFN_MAX_READERS, and
 * one on a single CPU. The spare reader keeps every core busy while another
 * waits for the walk or for its ring to drain: on 2 cores, 20,000 small files
 * took 66 ms with 3 readers, 74 ms with 2 and 86 ms with 1 (benchmarks/). */
size_t
rfn_hash_reader_count(int requested)
{
    if (requested > 0) {
        return requested > RFN_MAX_READERS ? RFN_MAX_READERS : (size_t)requested;
    }
    int n = rfn_cpu_count();
    if (n <= 1) {
        return 1;
    }
    return n + 1 > RFN_MAX_READERS ? RFN_MAX_READERS : (size_t)n + 1;
}

/* ---- entry point ---------------------------------------------------------- */

int
rfn_fingerprint_stream(const EVP_MD *md, size_t nreaders, rfn_source_feed *feed,
                       uint64_t total_hint, const rfn_poller *poll,
                       unsigned char digest[RFN_SHA256_LEN], rfn_failure *fail)
{
    int result = -1;
    unsigned char *buf = NULL;
    memset(fail, 0, sizeof(*fail));
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL) {
        fail->kind = RFN_FAIL_NOMEM;
        goto exit;
    }
    if (!EVP_DigestInit_ex(ctx, md, NULL)) {
        fail->kind = RFN_FAIL_EVP;
        goto exit;
    }

    size_t next = 0;
    int produced = RFN_PRODUCE_SWITCH;
    if (total_hint < RFN_THREAD_THRESHOLD) {
        buf = malloc(RFN_CHUNK_SIZE);
        if (buf == NULL) {
            fail->kind = RFN_FAIL_NOMEM;
            goto exit;
        }
        rfn_inline_sink is = {
            .sink = {.buf = buf, .cap = RFN_CHUNK_SIZE, .flush = rfn_inline_flush},
            .ctx = ctx, .poll = poll, .fail = fail,
        };
        feed->poll = poll;  /* get() runs here: it must poll while it waits */
        produced = rfn_produce(&is.sink, feed, 0, SIZE_MAX, RFN_THREAD_THRESHOLD, &next, fail);
        feed->poll = NULL;
        if (produced == RFN_PRODUCE_FAILED || rfn_inline_flush(&is.sink) < 0) {
            goto exit;
        }
    }
    if (produced == RFN_PRODUCE_SWITCH
        && rfn_hash_threaded(feed, next, nreaders, ctx, poll, fail) < 0) {
        goto exit;
    }
    unsigned int len = 0;
    if (!EVP_DigestFinal_ex(ctx, digest, &len) || len != RFN_SHA256_LEN) {
        fail->kind = RFN_FAIL_EVP;
        goto exit;
    }
    result = 0;

exit:
    free(buf);
    EVP_MD_CTX_free(ctx);
    return result;
}

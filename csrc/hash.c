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
 * copies overlap SHA-256 on the other core. Both run without the GIL.
 */
#include "rfn.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#define RFN_CHUNK_SIZE (256u * 1024u)        /* one read(2) and one ring slot */
#define RFN_RING_SLOTS 8                     /* 2 MiB in flight, whatever the file size */
#define RFN_THREAD_THRESHOLD (1u << 20)      /* smaller streams: a thread costs more than it saves */
#define RFN_SIGNAL_POLL_BYTES (32u << 20)    /* run Python signal handlers at least this often
                                              (and every RFN_WAIT_POLL_NS, rfn.h) */
#define RFN_PSEUDO_MAX (256u << 20)          /* a kernel pseudo file is read whole, up to this */

/* ---- errors --------------------------------------------------------------- */

void
rfn_set_evp_error(const char *what)
{
    unsigned long code = ERR_peek_last_error();
    const char *reason = code ? ERR_reason_error_string(code) : NULL;
    ERR_clear_error();
    PyErr_Format(PyExc_ValueError, "%s failed: %s", what,
                 reason ? reason : "unknown OpenSSL error");
}

void
rfn_raise_failure(rfn_state *st, const rfn_failure *fail, PyObject *path)
{
    switch (fail->kind) {
    case RFN_FAIL_OS:
        errno = fail->err_no;
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, path);
        break;
    case RFN_FAIL_NOT_REGULAR:
        PyErr_Format(PyExc_ValueError, "%R: %s", path, fail->detail);
        break;
    case RFN_FAIL_CHANGED:
        PyErr_Format(st->SourceChangedError, "%R %s; refusing to fingerprint a torn read",
                     path, fail->detail);
        break;
    case RFN_FAIL_NOMEM:
        PyErr_NoMemory();
        break;
    case RFN_FAIL_THREAD:
        errno = fail->err_no;
        PyErr_SetFromErrno(PyExc_OSError);
        break;
    case RFN_FAIL_EVP:
        rfn_set_evp_error("SHA-256");
        break;
    case RFN_FAIL_INTERRUPTED:
        /* The signal handler's exception is already set. */
        if (!PyErr_Occurred()) {
            PyErr_SetNone(PyExc_KeyboardInterrupt);
        }
        break;
    case RFN_OK:
        PyErr_SetString(PyExc_SystemError, "rfn_raise_failure without a failure");
        break;
    }
}

PyObject *
rfn_hexdigest(const unsigned char digest[RFN_SHA256_LEN])
{
    static const char hex[] = "0123456789abcdef";
    char out[RFN_SHA256_LEN * 2];
    for (int i = 0; i < RFN_SHA256_LEN; i++) {
        out[2 * i] = hex[digest[i] >> 4];
        out[2 * i + 1] = hex[digest[i] & 0xf];
    }
    return PyUnicode_FromStringAndSize(out, sizeof(out));
}

int
rfn_poll_signals(PyThreadState **tstate)
{
    PyEval_RestoreThread(*tstate);
    int rc = PyErr_CheckSignals();
    *tstate = PyEval_SaveThread();
    return rc;
}

int
rfn_thread_start(pthread_t *thread, void *(*fn)(void *), void *arg)
{
    sigset_t all, old;
    sigfillset(&all);
    /* Faults stay deliverable to the thread that caused them (faulthandler). */
    sigdelset(&all, SIGSEGV);
    sigdelset(&all, SIGBUS);
    sigdelset(&all, SIGFPE);
    sigdelset(&all, SIGILL);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int err = pthread_create(thread, NULL, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return err;
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

/* The producer polls its cancel flag once per file without the ring's lock.
 * A relaxed atomic is enough: the flag only ever goes from 0 to 1, and the
 * producer re-reads it under the lock before it waits. Kept out of line so
 * that fuzz/helgrind.supp can name it (helgrind does not know atomics). */
__attribute__((noinline)) static int
rfn_cancelled(const int *flag)
{
    return __atomic_load_n(flag, __ATOMIC_RELAXED);
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
    return a->st_size == b->st_size && a->st_mtim.tv_sec == b->st_mtim.tv_sec
           && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Read exactly `size` bytes of fd into the sink, then make sure the file ended
 * there and, for files read in several pieces, was not modified meanwhile.
 * While the rest fits in the buffer we ask for one byte more than expected: a
 * short read then proves EOF without another system call. */
static int
rfn_produce_content(rfn_sink *sink, int fd, const struct stat *before, size_t index,
                    rfn_failure *fail)
{
    uint64_t remaining = (uint64_t)before->st_size;
    int eof_seen = 0;
    while (remaining > 0) {
        if (sink->fill == sink->cap && sink->flush(sink) < 0) {
            return -1;
        }
        size_t space = sink->cap - sink->fill;
        size_t want = space > remaining ? (size_t)remaining + 1 : space;
        ssize_t got = read(fd, sink->buf + sink->fill, want);
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
        sink->fill += (size_t)got;
        sink->produced += (uint64_t)got;
        remaining -= (uint64_t)got;
        eof_seen = remaining == 0 && (size_t)got < want;
    }
    if (!eof_seen) {
        unsigned char extra;
        ssize_t got;
        do {
            got = read(fd, &extra, 1);
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

int
rfn_open_long(const char *path, int flags)
{
    size_t len = strlen(path);
    if (len < PATH_MAX) {
        return open(path, flags);
    }
    /* Longer than the kernel takes in one call: walk there piece by piece,
     * each piece a run of whole components shorter than PATH_MAX. Symlinks on
     * the way are followed, as a single open() would. */
    int dirfd = path[0] == '/' ? open("/", O_PATH | O_DIRECTORY | O_CLOEXEC) : AT_FDCWD;
    if (dirfd == -1) {
        return -1;
    }
    char piece[PATH_MAX];
    size_t i = 0;
    while (path[i] == '/') {
        i++;
    }
    for (;;) {
        size_t end = i, cut = 0;
        while (end < len && end - i < PATH_MAX - 1) {
            if (path[end] == '/') {
                cut = end;
            }
            end++;
        }
        int last = end == len;
        if (!last && cut <= i) {
            errno = ENAMETOOLONG;  /* one component longer than PATH_MAX */
            break;
        }
        size_t stop = last ? len : cut;
        memcpy(piece, path + i, stop - i);
        piece[stop - i] = '\0';
        int fd = openat(dirfd, piece, last ? flags : (O_PATH | O_DIRECTORY | O_CLOEXEC));
        int saved = errno;
        if (dirfd != AT_FDCWD) {
            close(dirfd);
        }
        errno = saved;
        if (fd < 0 || last) {
            return fd;
        }
        dirfd = fd;
        i = stop;
        while (path[i] == '/') {
            i++;
        }
    }
    if (dirfd != AT_FDCWD) {
        int saved = errno;
        close(dirfd);
        errno = saved;
    }
    return -1;
}

/* Files of the kernel's pseudo file systems (procfs, sysfs, ...) report a
 * size (0, or a page) that is not their length and no blocks. flash reads
 * every file to EOF, so these must be read whole before their length can be
 * framed; their size and mtime do not move, so they are not "changed". */
static int
rfn_is_pseudo_file(int fd, const struct stat *st)
{
    if (st->st_blocks != 0) {
        return 0;
    }
    struct statfs sfs;
    if (fstatfs(fd, &sfs) != 0) {
        return 0;
    }
    switch ((unsigned long)sfs.f_type & 0xffffffffUL) {
    case 0x9fa0UL:      /* PROC_SUPER_MAGIC */
    case 0x62656572UL:  /* SYSFS_MAGIC */
    case 0x64626720UL:  /* DEBUGFS_MAGIC */
    case 0x74726163UL:  /* TRACEFS_MAGIC */
    case 0x73636673UL:  /* SECURITYFS_MAGIC */
    case 0x27e0ebUL:    /* CGROUP_SUPER_MAGIC */
    case 0x63677270UL:  /* CGROUP2_SUPER_MAGIC */
    case 0x62656570UL:  /* CONFIGFS_MAGIC */
        return 1;
    default:
        return 0;
    }
}

/* Read a pseudo file to EOF into memory, then frame it with its real length. */
static int
rfn_produce_pseudo(rfn_sink *sink, int fd, const rfn_source *src, size_t index, rfn_failure *fail)
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
        ssize_t got = read(fd, buf + len, cap - len);
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
    if (rfn_sink_put_be64(sink, src->rel_len) < 0 || rfn_sink_put(sink, src->rel, src->rel_len) < 0
        || rfn_sink_put_be64(sink, (uint64_t)len) < 0 || rfn_sink_put(sink, buf, len) < 0) {
        rc = -1;
    }
    free(buf);
    return rc;
}

static int
rfn_open_source(const rfn_source *src, size_t index, struct stat *st, rfn_failure *fail)
{
    /* O_NONBLOCK: opening a FIFO must not wait for a writer. */
    int fd = rfn_open_long(src->open_path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
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
rfn_produce(rfn_sink *sink, rfn_source_feed *feed, size_t start, size_t count,
            uint64_t switch_at, size_t *next, rfn_failure *fail)
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
        int fd = rfn_open_source(src, i, &st, fail);
        if (fd < 0) {
            return RFN_PRODUCE_FAILED;
        }
        int rc = 0;
        if (rfn_is_pseudo_file(fd, &st)) {
            rc = rfn_produce_pseudo(sink, fd, src, i, fail);
        }
        else if (switch_at != 0 && sink->produced + (uint64_t)st.st_size > switch_at) {
            close(fd);
            *next = i;
            return RFN_PRODUCE_SWITCH;
        }
        else if (rfn_sink_put_be64(sink, src->rel_len) < 0
                 || rfn_sink_put(sink, src->rel, src->rel_len) < 0
                 || rfn_sink_put_be64(sink, (uint64_t)st.st_size) < 0
                 || rfn_produce_content(sink, fd, &st, i, fail) < 0) {
            rc = -1;
        }
        close(fd);
        if (rc < 0) {
            return RFN_PRODUCE_FAILED;
        }
    }
}

/* ---- inline mode: produce and hash on the calling thread ------------------ */

typedef struct {
    rfn_sink sink;
    EVP_MD_CTX *ctx;
    PyThreadState **tstate;
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
        if (rfn_poll_signals(is->tstate) < 0) {
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
#define RFN_MAX_READERS 4
#define RFN_READER_BLOCK 32

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
    __atomic_store_n(&r->cancel, 1, __ATOMIC_RELAXED);
    pthread_cond_broadcast(&r->changed);
    pthread_mutex_unlock(&r->lock);
}

void
rfn_deadline_in(struct timespec *ts, long ns)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_nsec += ns;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec += 1;
        ts->tv_nsec -= 1000000000L;
    }
}

static int64_t
rfn_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
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
rfn_rings_consume(rfn_ring *rings, size_t nrings, EVP_MD_CTX *ctx, PyThreadState **tstate,
                  rfn_failure *fail)
{
    uint64_t since_poll = 0;
    int64_t last_poll = rfn_now_ns();
    size_t cur = 0;
    for (;;) {
        rfn_ring *r = &rings[cur];
        pthread_mutex_lock(&r->lock);
        while (r->tail == r->head && !r->producer_done) {
            struct timespec deadline;
            rfn_deadline_in(&deadline, RFN_WAIT_POLL_NS);
            if (pthread_cond_timedwait(&r->changed, &r->lock, &deadline) == ETIMEDOUT) {
                pthread_mutex_unlock(&r->lock);
                int rc = rfn_poll_signals(tstate);
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
            int rc = rfn_poll_signals(tstate);
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
    if (pthread_mutex_init(&r->lock, NULL) != 0) {
        return -1;
    }
    r->have_lock = 1;
    pthread_condattr_t cond_attr;
    if (pthread_condattr_init(&cond_attr) != 0) {
        return -1;
    }
    int rc = pthread_condattr_setclock(&cond_attr, CLOCK_MONOTONIC);
    if (rc == 0) {
        rc = pthread_cond_init(&r->changed, &cond_attr);
    }
    pthread_condattr_destroy(&cond_attr);
    if (rc != 0) {
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
                  PyThreadState **tstate, rfn_failure *fail)
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
        result = rfn_rings_consume(rings, nreaders, ctx, tstate, fail);
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
static size_t
rfn_reader_count(rfn_state *st)
{
    int set = __atomic_load_n(&st->reader_threads, __ATOMIC_RELAXED);
    if (set > 0) {
        return (size_t)set;
    }
    cpu_set_t cpus;
    int n = sched_getaffinity(0, sizeof(cpus), &cpus) == 0 ? CPU_COUNT(&cpus) : 1;
    if (n <= 1) {
        return 1;
    }
    return n + 1 > RFN_MAX_READERS ? RFN_MAX_READERS : (size_t)n + 1;
}

/* ---- entry point ---------------------------------------------------------- */

int
rfn_fingerprint_stream(rfn_state *st, rfn_source_feed *feed, uint64_t total_hint,
                       PyThreadState **tstate, unsigned char digest[RFN_SHA256_LEN],
                       rfn_failure *fail)
{
    int result = -1;
    unsigned char *buf = NULL;
    memset(fail, 0, sizeof(*fail));
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL) {
        fail->kind = RFN_FAIL_NOMEM;
        goto exit;
    }
    if (!EVP_DigestInit_ex(ctx, st->sha256, NULL)) {
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
            .ctx = ctx, .tstate = tstate, .fail = fail,
        };
        feed->tstate = tstate;  /* get() runs here: it must poll signals while it waits */
        produced = rfn_produce(&is.sink, feed, 0, SIZE_MAX, RFN_THREAD_THRESHOLD, &next, fail);
        feed->tstate = NULL;
        if (produced == RFN_PRODUCE_FAILED || rfn_inline_flush(&is.sink) < 0) {
            goto exit;
        }
    }
    if (produced == RFN_PRODUCE_SWITCH
        && rfn_hash_threaded(feed, next, rfn_reader_count(st), ctx, tstate, fail) < 0) {
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

/* ---- module exec ---------------------------------------------------------- */

/* _set_reader_threads(n) -> previous: the number of reader threads of the
 * threaded mode, 0 for the default (rfn_reader_count). For tests: the result must not depend on
 * it. */
static PyObject *
rfn_set_reader_threads(PyObject *module, PyObject *arg)
{
    long n = PyLong_AsLong(arg);
    if (n == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (n < 0 || n > RFN_MAX_READERS) {
        PyErr_Format(PyExc_ValueError, "reader threads must be 0 to %d, not %ld", RFN_MAX_READERS, n);
        return NULL;
    }
    rfn_state *st = rfn_get_state(module);
    return PyLong_FromLong(__atomic_exchange_n(&st->reader_threads, (int)n, __ATOMIC_RELAXED));
}

static PyMethodDef rfn_hash_methods[] = {
    {"_set_reader_threads", rfn_set_reader_threads, METH_O,
     "_set_reader_threads(n) -> previous n: reader threads of the threaded hash, 0 = default (CPUs + 1)."},
    {NULL, NULL, 0, NULL},
};

int
rfn_hash_exec(PyObject *module)
{
    rfn_state *st = rfn_get_state(module);
    st->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (st->sha256 == NULL) {
        rfn_set_evp_error("EVP_MD_fetch(SHA256)");
        return -1;
    }
    st->SourceChangedError = PyErr_NewExceptionWithDoc(
        RFN_MODULE_NAME ".SourceChangedError",
        "A source file changed (size or mtime) while it was being fingerprinted.",
        PyExc_RuntimeError, NULL);
    if (st->SourceChangedError == NULL) {
        return -1;
    }
    if (PyModule_AddObjectRef(module, "SourceChangedError", st->SourceChangedError) < 0) {
        return -1;
    }
    return PyModule_AddFunctions(module, rfn_hash_methods);
}

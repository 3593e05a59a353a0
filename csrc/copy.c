/* copy: shutil.copy2 semantics for many files, on worker threads (copy.h).
 *
 * Per job, in copy2's order:
 *   1. dst is a directory (stat follows links) -> dst/basename(src)
 *   2. stat(src), stat(dst): same device and inode -> SAME; a FIFO -> FIFO
 *   3. open(src) (a directory: EISDIR), open(dst) for writing: O_EXCL first,
 *      so we know whether this copy created it, else O_TRUNC as copy2 opens
 *   4. the data: Linux FICLONE (reflink), copy_file_range in the kernel;
 *      macOS fcopyfile(COPYFILE_DATA), as copy2 there; then read/write
 *   5. stat(src) by path, as copystat does; a different inode than the one
 *      copied -> CHANGED (copy2 would put the new file's metadata on the old
 *      content); then on the destination descriptor: futimens(atime, mtime),
 *      the extended attributes (Linux only: copy2 copies them nowhere else),
 *      fchmod(mode & 07777) (read-only modes would refuse the xattrs
 *      otherwise), and where stat has st_flags (macOS, FreeBSD) fchflags, its
 *      EOPNOTSUPP/ENOTSUP ignored as copystat ignores them
 *
 * RFN_PORTABLE=1 leaves read/write as the only data path (on macOS too); the
 * metadata steps are copy2's result, so they stay in every build.
 *
 * Workers claim jobs in list order; after a failure at index k no job past k
 * is started, so every job before k completes and the first failure in list
 * order is the one reported. A failure for want of space or descriptors is
 * retried from k on one worker, once what the jobs past k wrote is gone: the
 * disk then holds what copy2 would have left, so the file named is copy2's. */
#define _GNU_SOURCE 1

#include "copy.h"
#include "os.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#if defined(__linux__)
#include <sys/xattr.h>
#define RFN_COPY_XATTR 1
#endif

#if defined(__linux__) && !defined(RFN_PORTABLE)
#include <linux/fs.h>
#include <sys/ioctl.h>
#define RFN_COPY_KERNEL 1
#endif

#if defined(__APPLE__) && !defined(RFN_PORTABLE)
#include <copyfile.h>
#define RFN_COPY_FCOPYFILE 1
#endif

/* copystat's chflags(dst, st.st_flags): where struct stat has st_flags. */
#if defined(__APPLE__) || defined(__FreeBSD__)
#define RFN_COPY_FLAGS 1
#endif

#define RFN_COPY_CHUNK ((size_t)8 << 20)    /* copy_file_range per call: ~5 ms */
#define RFN_COPY_BUF ((size_t)1 << 20)      /* read/write buffer (shutil's sendfile: 8 MiB+) */

typedef struct {
    rfn_copy_job *jobs;
    size_t n;
    enum rfn_copy_method method;
    pthread_mutex_t lock;
    pthread_cond_t idle;        /* a worker finished */
    const size_t *order;        /* claim order (NULL: list order) */
    size_t next;                /* next position in the claim order */
    size_t stop_at;             /* n, or the lowest failing index */
    rfn_copy_failure fail;
    unsigned running;
    int cancel;                 /* atomic */
    int clone_off;              /* atomic: FICLONE is not supported here */
    int range_off;              /* atomic: copy_file_range is not supported */
} rfn_copy_ctx;

typedef struct {
    rfn_copy_ctx *cx;
    unsigned char *buf;         /* read/write buffer, allocated on first use */
} rfn_copy_worker;

static int
rfn_copy_cancelled(rfn_copy_ctx *cx)
{
    return __atomic_load_n(&cx->cancel, __ATOMIC_RELAXED);
}

static int
rfn_copy_set(rfn_copy_failure *f, enum rfn_copy_kind kind, int err_no, enum rfn_copy_path path)
{
    f->kind = kind;
    f->err_no = err_no;
    f->path = path;
    return -1;
}

/* os.path.join(dst, os.path.basename(src)). */
static char *
rfn_copy_join_basename(const char *dst, const char *src)
{
    const char *slash = strrchr(src, '/');
    const char *base = slash ? slash + 1 : src;
    size_t dl = strlen(dst), bl = strlen(base);
    int sep = dl > 0 && dst[dl - 1] != '/';
    char *out = malloc(dl + (size_t)sep + bl + 1);
    if (out == NULL) {
        return NULL;
    }
    memcpy(out, dst, dl);
    if (sep) {
        out[dl] = '/';
    }
    memcpy(out + dl + (size_t)sep, base, bl + 1);
    return out;
}

/* ---- data ------------------------------------------------------------------ */

static int
rfn_copy_write_all(int fd, const unsigned char *p, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Copy from offset off (both descriptors) to EOF with read/write. */
static int
rfn_copy_readwrite(rfn_copy_worker *w, int sfd, int dfd, off_t off, rfn_copy_failure *f)
{
    if (w->buf == NULL) {
        w->buf = malloc(RFN_COPY_BUF);
        if (w->buf == NULL) {
            return rfn_copy_set(f, RFN_COPY_NOMEM, ENOMEM, RFN_COPY_PATH_BOTH);
        }
    }
    if (off > 0 && (lseek(sfd, off, SEEK_SET) < 0 || lseek(dfd, off, SEEK_SET) < 0)) {
        return rfn_copy_set(f, RFN_COPY_OS, errno, RFN_COPY_PATH_BOTH);
    }
    for (;;) {
        if (rfn_copy_cancelled(w->cx)) {
            return rfn_copy_set(f, RFN_COPY_INTERRUPTED, 0, RFN_COPY_PATH_BOTH);
        }
        ssize_t r = read(sfd, w->buf, RFN_COPY_BUF);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            return rfn_copy_set(f, RFN_COPY_OS, errno, RFN_COPY_PATH_BOTH);
        }
        if (r == 0) {
            return 0;
        }
        if (rfn_copy_write_all(dfd, w->buf, (size_t)r) < 0) {
            return rfn_copy_set(f, RFN_COPY_OS, errno, RFN_COPY_PATH_BOTH);
        }
    }
}

#ifdef RFN_COPY_KERNEL
/* A clone reads nothing, so the source's atime would not move as copy2's
 * read moves it (relatime: the first read after a change): read one byte
 * for the kernel to apply its atime rule. */
static void
rfn_copy_touch(int sfd)
{
    unsigned char byte;
    ssize_t r;
    do {
        r = pread(sfd, &byte, 1, 0);
    } while (r < 0 && errno == EINTR);
}
#endif

#ifdef RFN_COPY_FCOPYFILE
/* fcopyfile's status callback: stop a long copy on Ctrl-C, and never retry a
 * failed write (COPYFILE_CONTINUE at COPYFILE_ERR would, forever on ENOSPC). */
static int
rfn_copy_fcopyfile_status(int what, int stage, copyfile_state_t state, const char *src,
                          const char *dst, void *ctx)
{
    (void)what;
    (void)state;
    (void)src;
    (void)dst;
    return stage == COPYFILE_ERR || rfn_copy_cancelled(ctx) ? COPYFILE_QUIT : COPYFILE_CONTINUE;
}

/* shutil._fastcopy_fcopyfile, interruptible. Returns 0, 1 to go on with
 * read/write (EINVAL, ENOTSUP: copy2 gives up on it too), or -1 with *f
 * set. */
static int
rfn_copy_fcopyfile(rfn_copy_ctx *cx, int sfd, int dfd, rfn_copy_failure *f)
{
    copyfile_state_t state = copyfile_state_alloc();   /* NULL: not interruptible, still a copy */
    if (state != NULL) {
        copyfile_state_set(state, COPYFILE_STATE_STATUS_CB, (const void *)rfn_copy_fcopyfile_status);
        copyfile_state_set(state, COPYFILE_STATE_STATUS_CTX, cx);
    }
    int rc = fcopyfile(sfd, dfd, state, COPYFILE_DATA);
    int err = errno;
    if (state != NULL) {
        copyfile_state_free(state);
    }
    if (rc == 0) {
        return 0;
    }
    if (rfn_copy_cancelled(cx)) {
        return rfn_copy_set(f, RFN_COPY_INTERRUPTED, 0, RFN_COPY_PATH_BOTH);
    }
    if (err != EINVAL && err != ENOTSUP) {
        return rfn_copy_set(f, RFN_COPY_OS, err, RFN_COPY_PATH_BOTH);
    }
    /* What it wrote before giving up is overwritten from the start. */
    if (lseek(sfd, 0, SEEK_SET) < 0 || lseek(dfd, 0, SEEK_SET) < 0 || ftruncate(dfd, 0) < 0) {
        return rfn_copy_set(f, RFN_COPY_OS, errno, RFN_COPY_PATH_BOTH);
    }
    return 1;
}
#endif

static int
rfn_copy_data(rfn_copy_worker *w, int sfd, int dfd, const struct stat *sst, rfn_copy_failure *f)
{
    off_t off = 0;
#ifdef RFN_COPY_KERNEL
    rfn_copy_ctx *cx = w->cx;
    /* Regular files only: devices and pseudo files go through read/write. An
     * empty file needs no kernel copy (a procfs file says size 0 and has
     * content: read/write reads it to EOF like copy2). */
    if (S_ISREG(sst->st_mode) && sst->st_size > 0) {
        if (cx->method == RFN_COPY_AUTO && !__atomic_load_n(&cx->clone_off, __ATOMIC_RELAXED)) {
            if (ioctl(dfd, FICLONE, sfd) == 0) {
                /* The clone covers the file as it is now; if it grew since the
                 * fstat, copy2 would have copied the growth too: the lseek
                 * below reads on from the clone's end. */
                off = lseek(dfd, 0, SEEK_END);
                if (off < 0) {
                    return rfn_copy_set(f, RFN_COPY_OS, errno, RFN_COPY_PATH_BOTH);
                }
                struct stat now;
                if (fstat(sfd, &now) == 0 && now.st_size == off) {
                    rfn_copy_touch(sfd);
                    return 0;
                }
            } else if (errno == EOPNOTSUPP || errno == ENOTTY || errno == EINVAL || errno == ENOSYS) {
                __atomic_store_n(&cx->clone_off, 1, __ATOMIC_RELAXED);
            }
            /* EXDEV and the rest: this pair of files only; copy_file_range
             * reports a real error (ENOSPC, EIO) itself. */
        }
        if (cx->method != RFN_COPY_READWRITE && !__atomic_load_n(&cx->range_off, __ATOMIC_RELAXED)) {
            for (;;) {
                if (rfn_copy_cancelled(cx)) {
                    return rfn_copy_set(f, RFN_COPY_INTERRUPTED, 0, RFN_COPY_PATH_BOTH);
                }
                loff_t soff = off, doff = off;
                ssize_t c = copy_file_range(sfd, &soff, dfd, &doff, RFN_COPY_CHUNK, 0);
                if (c > 0) {
                    off += c;
                    continue;
                }
                if (c == 0) {
                    if (off > 0) {
                        rfn_copy_touch(sfd);   /* it may have been a clone (XFS, btrfs) */
                        return 0;
                    }
                    break;  /* nothing at all: let read() decide (pseudo files) */
                }
                if (errno == EINTR) {
                    continue;
                }
                if (errno == ENOSYS || errno == EOPNOTSUPP) {
                    __atomic_store_n(&cx->range_off, 1, __ATOMIC_RELAXED);
                    break;
                }
                if (errno == EXDEV || errno == EINVAL || errno == EBADF || errno == ETXTBSY) {
                    break;
                }
                return rfn_copy_set(f, RFN_COPY_OS, errno, RFN_COPY_PATH_BOTH);
            }
        }
    }
#elif defined(RFN_COPY_FCOPYFILE)
    /* Regular files, as on Linux; not for RFN_COPY_READWRITE. */
    if (w->cx->method != RFN_COPY_READWRITE && S_ISREG(sst->st_mode)) {
        int rc = rfn_copy_fcopyfile(w->cx, sfd, dfd, f);
        if (rc <= 0) {
            return rc;
        }
    }
#else
    (void)sst;
#endif
    return rfn_copy_readwrite(w, sfd, dfd, off, f);
}

/* ---- extended attributes ---------------------------------------------------- */

#ifdef RFN_COPY_XATTR
/* Errors shutil._copyxattr (Python 3.11) ignores. */
static int
rfn_copy_xattr_ignored_list(int e)
{
    return e == ENOTSUP || e == ENODATA || e == EINVAL;
}

static int
rfn_copy_xattr_ignored_item(int e)
{
    return e == EPERM || e == ENOTSUP || e == ENODATA || e == EINVAL;
}

static int
rfn_copy_xattrs(int sfd, int dfd, rfn_copy_failure *f)
{
    char *names = NULL;
    char *value = NULL;
    size_t value_cap = 0;
    ssize_t len;
    int ret = -1;

    for (;;) {
        len = flistxattr(sfd, NULL, 0);
        if (len <= 0) {
            if (len < 0 && !rfn_copy_xattr_ignored_list(errno)) {
                rfn_copy_set(f, RFN_COPY_OS, errno, RFN_COPY_PATH_SRC);
                goto exit;
            }
            ret = 0;
            goto exit;
        }
        free(names);
        names = malloc((size_t)len);
        if (names == NULL) {
            rfn_copy_set(f, RFN_COPY_NOMEM, ENOMEM, RFN_COPY_PATH_SRC);
            goto exit;
        }
        ssize_t got = flistxattr(sfd, names, (size_t)len);
        if (got >= 0) {
            len = got;
            break;
        }
        if (errno == ERANGE) {
            continue;   /* a name was added in between */
        }
        if (!rfn_copy_xattr_ignored_list(errno)) {
            rfn_copy_set(f, RFN_COPY_OS, errno, RFN_COPY_PATH_SRC);
            goto exit;
        }
        ret = 0;
        goto exit;
    }
    for (ssize_t pos = 0; pos < len;) {
        const char *name = names + pos;
        size_t nl = strnlen(name, (size_t)(len - pos));
        pos += (ssize_t)nl + 1;
        if (nl == 0) {
            continue;
        }
        ssize_t vl;
        for (;;) {
            vl = fgetxattr(sfd, name, NULL, 0);
            if (vl < 0) {
                break;
            }
            if ((size_t)vl > value_cap || value == NULL) {
                char *bigger = realloc(value, (size_t)vl + 1);
                if (bigger == NULL) {
                    rfn_copy_set(f, RFN_COPY_NOMEM, ENOMEM, RFN_COPY_PATH_SRC);
                    goto exit;
                }
                value = bigger;
                value_cap = (size_t)vl + 1;
            }
            vl = fgetxattr(sfd, name, value, value_cap);
            if (vl >= 0 || errno != ERANGE) {
                break;
            }
        }
        if (vl < 0) {
            if (rfn_copy_xattr_ignored_item(errno)) {
                continue;
            }
            rfn_copy_set(f, RFN_COPY_OS, errno, RFN_COPY_PATH_SRC);
            goto exit;
        }
        if (fsetxattr(dfd, name, value, (size_t)vl, 0) < 0 && !rfn_copy_xattr_ignored_item(errno)) {
            rfn_copy_set(f, RFN_COPY_OS, errno, RFN_COPY_PATH_DST);
            goto exit;
        }
    }
    ret = 0;
exit:
    free(names);
    free(value);
    return ret;
}
#endif

/* ---- one job ------------------------------------------------------------------ */

static int
rfn_copy_one(rfn_copy_worker *w, rfn_copy_job *job, rfn_copy_failure *f)
{
    int sfd = -1, dfd = -1, ret = -1, opened = 0;
    const char *dst = job->dst;
    struct stat sst, dstst, fst, after;

    int have_dst = stat(dst, &dstst) == 0;
    if (have_dst && S_ISDIR(dstst.st_mode)) {
        job->dst_into = rfn_copy_join_basename(dst, job->src);
        if (job->dst_into == NULL) {
            return rfn_copy_set(f, RFN_COPY_NOMEM, ENOMEM, RFN_COPY_PATH_DST);
        }
        dst = job->dst_into;
        have_dst = stat(dst, &dstst) == 0;
    }
    int have_src = stat(job->src, &sst) == 0;
    if (have_src && have_dst && sst.st_dev == dstst.st_dev && sst.st_ino == dstst.st_ino) {
        return rfn_copy_set(f, RFN_COPY_SAME, 0, RFN_COPY_PATH_SRC);
    }
    if (have_src && S_ISFIFO(sst.st_mode)) {
        return rfn_copy_set(f, RFN_COPY_FIFO, 0, RFN_COPY_PATH_SRC);
    }
    if (have_dst && S_ISFIFO(dstst.st_mode)) {
        return rfn_copy_set(f, RFN_COPY_FIFO, 0, RFN_COPY_PATH_DST);
    }

    do {
        sfd = open(job->src, O_RDONLY | O_CLOEXEC);
    } while (sfd < 0 && errno == EINTR);
    if (sfd < 0) {
        return rfn_copy_set(f, RFN_COPY_OS, errno, RFN_COPY_PATH_SRC);
    }
    if (fstat(sfd, &fst) < 0) {
        rfn_copy_set(f, RFN_COPY_OS, errno, RFN_COPY_PATH_SRC);
        goto exit;
    }
    if (S_ISDIR(fst.st_mode)) {   /* Python's open() refuses directories */
        rfn_copy_set(f, RFN_COPY_OS, EISDIR, RFN_COPY_PATH_SRC);
        goto exit;
    }

    do {
        dfd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    } while (dfd < 0 && errno == EINTR);
    if (dfd >= 0) {
        job->created = 1;
    } else if (errno == EEXIST) {
        /* O_TRUNC as Python's open(dst, "wb"): through a symlink, onto an
         * existing file (whose other xattrs stay, as with copy2). */
        do {
            dfd = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
        } while (dfd < 0 && errno == EINTR);
    }
    if (dfd < 0) {
        int e = errno;
        struct stat gone;
        if (e == EISDIR && stat(dst, &gone) < 0) {
            rfn_copy_set(f, RFN_COPY_NO_DIR, 0, RFN_COPY_PATH_DST);
        } else {
            rfn_copy_set(f, RFN_COPY_OS, e, RFN_COPY_PATH_DST);
        }
        goto exit;
    }
    opened = 1;

    if (rfn_copy_data(w, sfd, dfd, &fst, f) < 0) {
        goto exit;
    }

    /* copystat: the source path's metadata after the copy (its atime as the
     * read left it). */
    if (stat(job->src, &after) < 0) {
        rfn_copy_set(f, RFN_COPY_OS, errno, RFN_COPY_PATH_SRC);
        goto exit;
    }
    if (after.st_dev != fst.st_dev || after.st_ino != fst.st_ino) {
        rfn_copy_set(f, RFN_COPY_CHANGED, 0, RFN_COPY_PATH_SRC);
        goto exit;
    }
    struct timespec times[2] = {RFN_ST_ATIM(&after), RFN_ST_MTIM(&after)};
    if (futimens(dfd, times) < 0) {
        rfn_copy_set(f, RFN_COPY_OS, errno, RFN_COPY_PATH_DST);
        goto exit;
    }
#ifdef RFN_COPY_XATTR
    if (rfn_copy_xattrs(sfd, dfd, f) < 0) {
        goto exit;
    }
#endif
    if (fchmod(dfd, after.st_mode & 07777) < 0) {
        rfn_copy_set(f, RFN_COPY_OS, errno, RFN_COPY_PATH_DST);
        goto exit;
    }
#ifdef RFN_COPY_FLAGS
    if (fchflags(dfd, after.st_flags) < 0 && errno != EOPNOTSUPP && errno != ENOTSUP) {
        rfn_copy_set(f, RFN_COPY_OS, errno, RFN_COPY_PATH_DST);
        goto exit;
    }
#endif
    int rc = close(dfd);
    dfd = -1;
    if (rc < 0 && errno != EINTR) {
        rfn_copy_set(f, RFN_COPY_OS, errno, RFN_COPY_PATH_DST);
        goto exit;
    }
    job->done = 1;
    ret = 0;
exit:
    if (dfd >= 0) {
        close(dfd);
    }
    if (ret < 0 && opened) {
        /* No half-written destination (or one without its metadata) is left
         * looking complete; copy2 would leave it. */
        unlink(dst);
        job->created = 0;
    }
    if (sfd >= 0) {
        close(sfd);
    }
    return ret;
}

/* ---- workers -------------------------------------------------------------- */

static void *
rfn_copy_worker_main(void *arg)
{
    rfn_copy_worker *w = arg;
    rfn_copy_ctx *cx = w->cx;
    for (;;) {
        pthread_mutex_lock(&cx->lock);
        size_t i = cx->n;
        while (cx->next < cx->n && !rfn_copy_cancelled(cx)) {
            size_t cand = cx->order != NULL ? cx->order[cx->next] : cx->next;
            cx->next++;
            if (cand < cx->stop_at) {   /* copy2 would never reach a job past a failure */
                i = cand;
                break;
            }
        }
        pthread_mutex_unlock(&cx->lock);
        if (i == cx->n) {
            break;
        }

        rfn_copy_failure f = {RFN_COPY_OK, 0, RFN_COPY_PATH_SRC, i};
        if (rfn_copy_one(w, &cx->jobs[i], &f) < 0 && f.kind != RFN_COPY_INTERRUPTED) {
            pthread_mutex_lock(&cx->lock);
            if (i < cx->stop_at) {
                cx->stop_at = i;
                cx->fail = f;
            }
            pthread_mutex_unlock(&cx->lock);
        }
    }
    free(w->buf);
    w->buf = NULL;
    pthread_mutex_lock(&cx->lock);
    cx->running--;
    pthread_cond_signal(&cx->idle);
    pthread_mutex_unlock(&cx->lock);
    return NULL;
}

/* Big files first (largest first), then the rest in list order: a big file
 * then overlaps the small ones instead of finishing alone at the end. Any
 * order keeps the failure rule: no job past the first failure starts. */
#define RFN_COPY_BIG ((off_t)16 << 20)

typedef struct {
    off_t size;
    size_t index;
} rfn_copy_big;

static int
rfn_copy_big_cmp(const void *a, const void *b)
{
    const rfn_copy_big *x = a, *y = b;
    if (x->size != y->size) {
        return x->size > y->size ? -1 : 1;
    }
    return x->index < y->index ? -1 : x->index > y->index;
}

/* Returns the claim order (malloc'd), or NULL for list order (no big file,
 * or out of memory: list order is as correct, only slower). */
static size_t *
rfn_copy_plan_order(const rfn_copy_job *jobs, size_t n)
{
    rfn_copy_big *big = NULL;
    size_t nbig = 0, cap = 0;
    size_t *order = NULL;
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (stat(jobs[i].src, &st) == 0 && S_ISREG(st.st_mode) && st.st_size >= RFN_COPY_BIG) {
            if (nbig == cap) {
                cap = cap ? 2 * cap : 16;
                rfn_copy_big *more = realloc(big, cap * sizeof(*big));
                if (more == NULL) {
                    goto exit;
                }
                big = more;
            }
            big[nbig].size = st.st_size;
            big[nbig].index = i;
            nbig++;
        }
    }
    if (nbig == 0 || (nbig == 1 && big[0].index == 0)) {
        goto exit;
    }
    order = malloc(n * sizeof(*order));
    if (order == NULL) {
        goto exit;
    }
    qsort(big, nbig, sizeof(*big), rfn_copy_big_cmp);
    unsigned char *is_big = calloc(n, 1);
    if (is_big == NULL) {
        free(order);
        order = NULL;
        goto exit;
    }
    size_t k = 0;
    for (size_t b = 0; b < nbig; b++) {
        order[k++] = big[b].index;
        is_big[big[b].index] = 1;
    }
    for (size_t i = 0; i < n; i++) {
        if (!is_big[i]) {
            order[k++] = i;
        }
    }
    free(is_big);
exit:
    free(big);
    return order;
}

static const char *
rfn_copy_dst_used(const rfn_copy_job *job)
{
    return job->dst_into != NULL ? job->dst_into : job->dst;
}

/* ENOSPC and friends can be the pool's own doing: another worker's file took
 * the space (or the descriptors) that copy2, one file at a time, would still
 * have had. Such a failure is retried alone (see rfn_copy_run). */
static int
rfn_copy_exhaustion(const rfn_copy_failure *f)
{
    if (f->kind != RFN_COPY_OS) {
        return 0;
    }
    switch (f->err_no) {
    case ENOSPC:
    case EMFILE:
    case ENFILE:
#ifdef EDQUOT
    case EDQUOT:
#endif
        return 1;
    default:
        return 0;
    }
}

/* copy2 would not have reached jobs[from..n): what they created goes, and
 * they are as if never started. */
static void
rfn_copy_undo_from(rfn_copy_job *jobs, size_t n, size_t from)
{
    for (size_t i = from; i < n; i++) {
        if (jobs[i].done && jobs[i].created) {
            unlink(rfn_copy_dst_used(&jobs[i]));
        }
        free(jobs[i].dst_into);
        jobs[i].dst_into = NULL;
        jobs[i].created = 0;
        jobs[i].done = 0;
    }
}

/* One pass of `nthreads` workers over jobs[first..n) in cx->order (NULL: list
 * order). Returns 0, or -1 with *fail set (fail->index: the failing job, or n
 * when interrupted or a thread could not start). After a failing job, the jobs
 * past it are undone. */
static int
rfn_copy_pool(rfn_copy_ctx *cx, size_t first, unsigned nthreads, const rfn_copy_opts *opts,
              rfn_copy_failure *fail)
{
    pthread_t *threads = calloc(nthreads, sizeof(*threads));
    rfn_copy_worker *workers = calloc(nthreads, sizeof(*workers));
    unsigned started = 0;
    int ret = -1, interrupted = 0;

    cx->next = first;
    cx->stop_at = cx->n;
    if (threads == NULL || workers == NULL) {
        rfn_copy_set(fail, RFN_COPY_NOMEM, ENOMEM, RFN_COPY_PATH_SRC);
        fail->index = cx->n;
        goto exit;
    }
    pthread_mutex_lock(&cx->lock);
    for (unsigned t = 0; t < nthreads; t++) {
        workers[t].cx = cx;
        cx->running++;
        int err = rfn_thread_start(&threads[t], rfn_copy_worker_main, &workers[t]);
        if (err != 0) {
            cx->running--;
            if (started == 0) {
                pthread_mutex_unlock(&cx->lock);
                rfn_copy_set(fail, RFN_COPY_THREAD, err, RFN_COPY_PATH_SRC);
                fail->index = cx->n;
                goto exit;
            }
            break;  /* fewer workers will do */
        }
        started++;
    }
    while (cx->running > 0) {
        int rc = rfn_cond_wait_ns(&cx->idle, &cx->lock, opts->poll_ns > 0 ? opts->poll_ns : RFN_WAIT_POLL_NS);
        if (rc == ETIMEDOUT && opts->poll != NULL && !interrupted) {
            pthread_mutex_unlock(&cx->lock);
            if (opts->poll(opts->poll_ctx) != 0) {
                interrupted = 1;
                __atomic_store_n(&cx->cancel, 1, __ATOMIC_RELAXED);
            }
            pthread_mutex_lock(&cx->lock);
        }
    }
    pthread_mutex_unlock(&cx->lock);
    for (unsigned t = 0; t < started; t++) {
        pthread_join(threads[t], NULL);
    }

    if (interrupted) {
        rfn_copy_set(fail, RFN_COPY_INTERRUPTED, 0, RFN_COPY_PATH_SRC);
        fail->index = cx->n;
        goto exit;
    }
    if (cx->stop_at < cx->n) {
        *fail = cx->fail;
        fail->index = cx->stop_at;
        rfn_copy_undo_from(cx->jobs, cx->n, cx->stop_at + 1);
        goto exit;
    }
    ret = 0;
exit:
    free(threads);
    free(workers);
    return ret;
}

int
rfn_copy_run(rfn_copy_job *jobs, size_t n, const rfn_copy_opts *opts, rfn_copy_failure *fail)
{
    rfn_copy_ctx cx;
    size_t *order = NULL;
    int ret = -1, have_lock = 0, have_cond = 0;

    memset(&cx, 0, sizeof(cx));
    memset(fail, 0, sizeof(*fail));
    for (size_t i = 0; i < n; i++) {
        jobs[i].dst_into = NULL;
        jobs[i].created = 0;
        jobs[i].done = 0;
    }
    if (n == 0) {
        return 0;
    }
    cx.jobs = jobs;
    cx.n = n;
    cx.method = opts->method;
    unsigned nthreads = opts->threads < 1 ? 1 : opts->threads;
    if ((size_t)nthreads > n) {
        nthreads = (unsigned)n;
    }
    if (pthread_mutex_init(&cx.lock, NULL) != 0) {
        rfn_copy_set(fail, RFN_COPY_NOMEM, ENOMEM, RFN_COPY_PATH_SRC);
        goto exit;
    }
    have_lock = 1;
    if (rfn_cond_init(&cx.idle) != 0) {
        rfn_copy_set(fail, RFN_COPY_NOMEM, ENOMEM, RFN_COPY_PATH_SRC);
        goto exit;
    }
    have_cond = 1;
    if (nthreads > 1) {
        order = rfn_copy_plan_order(jobs, n);
        cx.order = order;
    }

    if (rfn_copy_pool(&cx, 0, nthreads, opts, fail) < 0) {
        if (fail->index == n || nthreads == 1 || !rfn_copy_exhaustion(fail)) {
            goto exit;
        }
        /* Every job before the failure is done and nothing after it exists:
         * the disk holds what copy2 would have left there. From the failed
         * job on, one worker in list order meets the failure copy2 meets. */
        size_t k = fail->index;
        rfn_copy_undo_from(jobs, k + 1, k);   /* its dst_into; the rest is undone */
        cx.order = NULL;
        memset(fail, 0, sizeof(*fail));
        if (rfn_copy_pool(&cx, k, 1, opts, fail) < 0) {
            goto exit;
        }
    }
    ret = 0;
exit:
    free(order);
    if (have_cond) {
        pthread_cond_destroy(&cx.idle);
    }
    if (have_lock) {
        pthread_mutex_destroy(&cx.lock);
    }
    return ret;
}

int
rfn_copy_kernel_paths(void)
{
#ifdef RFN_COPY_KERNEL
    return 1;
#else
    return 0;
#endif
}

void
rfn_copy_jobs_release(rfn_copy_job *jobs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(jobs[i].dst_into);
        jobs[i].dst_into = NULL;
    }
}

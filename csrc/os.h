/* os: the operating-system helpers of the walk and the hash stream (opening
 * long paths, helper threads, timed waits, CPU count, the C stack's bounds,
 * kernel pseudo files). Compiles without Python.h.
 *
 * Linux-only calls (O_PATH, fstatfs magic numbers, sched_getaffinity,
 * qsort_r, monotonic condition variables) sit behind
 * `#if defined(__linux__) && !defined(RFN_PORTABLE)`; every other system gets
 * (and an RFN_PORTABLE=1 build on Linux compiles) a POSIX fallback, which is
 * what macOS has. Only the C stack's bounds have no POSIX way at all: each
 * system's own call is used (glibc/musl, macOS, FreeBSD), also in the
 * portable build.
 */
#ifndef RFN_OS_H
#define RFN_OS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#if defined(__linux__) && !defined(RFN_PORTABLE)
#define RFN_OS_LINUX 1
#else
#define RFN_OS_LINUX 0
#endif

/* Called now and then from a long wait or loop on the calling thread (to run
 * Python's signal handlers, for instance): 0 to go on, -1 to stop. */
typedef struct {
    int (*fn)(void *ctx);
    void *ctx;
} rfn_poller;

static inline int
rfn_poll(const rfn_poller *p)
{
    return p->fn(p->ctx);
}

/* Waits on the calling thread poll at least this often (and hashing, at
 * least after this much time). */
#define RFN_WAIT_POLL_NS (50 * 1000 * 1000)

/* open(2) that also reaches paths longer than PATH_MAX (flash's os calls fail
 * there with ENAMETOOLONG; we do not). */
int rfn_open_long(const char *path, int flags);

/* Files of deep directories opened relative to their directory. The cache
 * holds a chain of nested directories open (each a prefix of the deepest,
 * at most RFN_DIRCACHE_FDS); a file in one of them, or below, opens with
 * openat() from the nearest, descending a component at a time, so a
 * 2,000-deep chain costs a few name lookups per file instead of 2,000 in
 * either order (flash's sort puts "d/..." before "m.py": deepest first).
 * On a miss it opens by full path the directory RFN_DIRCACHE_FDS / 2
 * levels above and descends, so the next files, in its parents, are hits.
 * Only for directories at least RFN_DIRCACHE_DEPTH components deep:
 * shallower paths cost less to look up than descriptors to keep. */
#define RFN_DIRCACHE_DEPTH 16
#define RFN_DIRCACHE_FDS 16

typedef struct {
    char *dir;                      /* the deepest held directory's path (malloc'd) */
    size_t cap;
    size_t n;                       /* levels held */
    size_t len[RFN_DIRCACHE_FDS];   /* level k is dir[0:len[k]], len increasing */
    int fd[RFN_DIRCACHE_FDS];
} rfn_dircache;

#define RFN_DIRCACHE_INIT {0}
void rfn_dircache_free(rfn_dircache *c);

/* open(path, flags) as rfn_open_long() would, through c. Any failure of the
 * relative route falls back to rfn_open_long(path), so the errno is the one
 * opening the full path gives. */
int rfn_dircache_open(rfn_dircache *c, const char *path, int flags);

/* Reading the entries of an open directory. Linux: getdents64(2) straight
 * into a buffer (no fdopendir(): its fcntl calls and its own descriptor);
 * elsewhere readdir() on a duplicate of the descriptor. The descriptor stays
 * the caller's, open after rfn_dir_close(). */
#define RFN_DIR_BUF 32768
typedef struct {
#if RFN_OS_LINUX
    int fd;
    size_t pos, len;
    unsigned char *buf;             /* RFN_DIR_BUF bytes, malloc'd once */
#else
    void *dir;                      /* DIR * */
#endif
} rfn_dir;

/* Set up d (zeroed before its first use) to read fd's entries. Returns 0 or
 * -1 with errno set. */
int rfn_dir_open(rfn_dir *d, int fd);

/* The next entry ("." and ".." included): 1 with *name (NUL-terminated,
 * valid until the next call) and *type (a DT_* value), 0 at the end, -1
 * with errno set. *type: dirent's DT_* (DT_UNKNOWN where the file system
 * does not say). */
int rfn_dir_next(rfn_dir *d, const char **name, unsigned char *type);

/* End a listing (rfn_dir_open() may reuse d). */
void rfn_dir_close(rfn_dir *d);

/* Free what d keeps between listings. */
void rfn_dir_free(rfn_dir *d);

/* pthread_create() for our helper threads (walk, readers): they start with
 * every asynchronous signal blocked, so that the kernel delivers Ctrl-C and
 * timers to a Python thread, whose handlers the calling thread runs while it
 * waits. Returns pthread_create()'s error number. */
int rfn_thread_start(pthread_t *thread, void *(*fn)(void *), void *arg);

/* A mutex and a condition variable whose timed waits are measured on a clock
 * a wall-clock jump does not move where the system has one (Linux: a
 * CLOCK_MONOTONIC condition variable; macOS: relative waits; elsewhere the
 * wall clock). Each returns 0 or an error number. */
int rfn_mutex_init(pthread_mutex_t *mutex);
int rfn_cond_init(pthread_cond_t *cond);

/* Wait on cond (mutex held) for at most ns nanoseconds (< 1 s). Returns 0
 * when woken (perhaps spuriously) or ETIMEDOUT. cond from rfn_cond_init. */
int rfn_cond_wait_ns(pthread_cond_t *cond, pthread_mutex_t *mutex, long ns);

/* A cancel flag a thread polls without the lock it is set under: it only
 * ever goes from 0 to 1, and the poller re-reads it under the lock before it
 * waits, so a relaxed atomic is enough. rfn_cancelled() is kept out of line
 * so that fuzz/helgrind.supp can name it (helgrind does not know atomics). */
int rfn_cancelled(const int *flag);
void rfn_cancel_set(int *flag);

/* CLOCK_MONOTONIC, in nanoseconds. */
int64_t rfn_now_ns(void);

/* The CPUs this process may run on (at least 1). */
int rfn_cpu_count(void);

/* Room left on this thread's C stack below the caller's frame, minus a
 * safety margin; SIZE_MAX when the stack's bounds are unknown. */
size_t rfn_stack_avail(void);

/* Files whose fstat() size is not their length (Linux: procfs, sysfs and the
 * like report 0 or a page, and no blocks): they must be read to EOF before
 * their length is known. Elsewhere (and in a portable build): any file with
 * no blocks and at most a page, which reads the same either way. */
int rfn_is_pseudo_file(int fd, const struct stat *st);

/* st's access and modification times (struct timespec: seconds and
 * nanoseconds); macOS names the fields st_atimespec and st_mtimespec. */
#if defined(__APPLE__)
#define RFN_ST_ATIM(st) ((st)->st_atimespec)
#define RFN_ST_MTIM(st) ((st)->st_mtimespec)
#else
#define RFN_ST_ATIM(st) ((st)->st_atim)
#define RFN_ST_MTIM(st) ((st)->st_mtim)
#endif

/* Make *items (realloc'd, of *cap items of size bytes) hold at least need
 * items, doubling from 64. Returns 0, or -1 (out of memory or the size would
 * overflow) with *items and *cap unchanged. */
int rfn_vec_grow(void **items, size_t *cap, size_t need, size_t size);

/* The same with another allocator (PyMem_Realloc, say) and first capacity. */
int rfn_vec_grow_with(void **items, size_t *cap, size_t need, size_t size, size_t first,
                      void *(*realloc_fn)(void *, size_t));

/* qsort() with a context pointer for cmp (glibc's qsort_r; a heapsort where
 * qsort_r is missing or takes its arguments in another order). */
void rfn_sort_r(void *base, size_t n, size_t size,
                int (*cmp)(const void *, const void *, void *), void *ctx);

#endif /* RFN_OS_H */

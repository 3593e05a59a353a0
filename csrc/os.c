/* os: operating-system helpers (see os.h). Compiles without Python.h.
 * The Linux branches need the GNU extensions of glibc/musl. */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE 1
#endif

#include "os.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <dirent.h>

#if RFN_OS_LINUX
#include <sched.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#endif
#if defined(__FreeBSD__)
#include <pthread_np.h>
#endif

#ifndef PATH_MAX
#define PATH_MAX 4096
#endif

/* ---- opening long paths ------------------------------------------------------ */

/* How the intermediate directories of a long path are opened: O_PATH needs
 * only search permission; elsewhere O_SEARCH where it exists, else read. */
#if RFN_OS_LINUX
#define RFN_DIR_STEP_FLAGS (O_PATH | O_DIRECTORY | O_CLOEXEC)
#elif defined(O_SEARCH)
#define RFN_DIR_STEP_FLAGS (O_SEARCH | O_DIRECTORY | O_CLOEXEC)
#else
#define RFN_DIR_STEP_FLAGS (O_RDONLY | O_DIRECTORY | O_CLOEXEC)
#endif

static void
rfn_close_keep_errno(int fd)
{
    int saved = errno;
    close(fd);
    errno = saved;
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
    int dirfd = path[0] == '/' ? open("/", RFN_DIR_STEP_FLAGS) : AT_FDCWD;
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
        int fd = openat(dirfd, piece, last ? flags : RFN_DIR_STEP_FLAGS);
        if (dirfd != AT_FDCWD) {
            rfn_close_keep_errno(dirfd);
        }
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
        rfn_close_keep_errno(dirfd);
    }
    return -1;
}

/* ---- opening files of deep directories ----------------------------------------- */

void
rfn_dircache_free(rfn_dircache *c)
{
    for (size_t k = 0; k < c->n; k++) {
        close(c->fd[k]);
    }
    free(c->dir);
    *c = (rfn_dircache)RFN_DIRCACHE_INIT;
}

/* Whether directory path dir[0:len] has RFN_DIRCACHE_DEPTH components. */
static int
rfn_dircache_is_deep(const char *dir, size_t len)
{
    size_t n = 1;
    for (size_t i = 0; i < len && n < RFN_DIRCACHE_DEPTH; i++) {
        n += dir[i] == '/';
    }
    return n >= RFN_DIRCACHE_DEPTH;
}

/* Close the levels from k up. */
static void
rfn_dircache_pop_to(rfn_dircache *c, size_t k)
{
    while (c->n > k) {
        close(c->fd[--c->n]);
    }
}

/* Push the directory dir[0:len] (c->dir already holds those bytes), open as
 * fd; when full, the shallowest level goes. */
static void
rfn_dircache_push(rfn_dircache *c, size_t len, int fd)
{
    if (c->n == RFN_DIRCACHE_FDS) {
        close(c->fd[0]);
        memmove(c->len, c->len + 1, (RFN_DIRCACHE_FDS - 1) * sizeof(c->len[0]));
        memmove(c->fd, c->fd + 1, (RFN_DIRCACHE_FDS - 1) * sizeof(c->fd[0]));
        c->n--;
    }
    c->len[c->n] = len;
    c->fd[c->n] = fd;
    c->n++;
}

/* Make the top level directory dir[0:len]. Returns 0, or -1 (then the
 * caller opens by full path; what is held stays consistent). */
static int
rfn_dircache_enter(rfn_dircache *c, const char *dir, size_t len)
{
    if (len + 1 > c->cap) {
        char *bigger = realloc(c->dir, len + 1);
        if (bigger == NULL) {
            return -1;
        }
        c->dir = bigger;
        c->cap = len + 1;
    }
    /* The deepest held level that is dir or one of its ancestors. */
    size_t keep = c->n;
    while (keep > 0) {
        size_t l = c->len[keep - 1];
        if (l <= len && (l == len || dir[l] == '/') && memcmp(c->dir, dir, l) == 0) {
            break;
        }
        keep--;
    }
    rfn_dircache_pop_to(c, keep);
    memcpy(c->dir, dir, len);
    c->dir[len] = '\0';
    size_t at = 0;
    if (c->n == 0) {
        /* A miss: open an ancestor by its full path and descend from it. */
        at = len;
        for (int up = 0; up < RFN_DIRCACHE_FDS / 2 && at > 0; up++) {
            size_t cut = at;
            while (cut > 0 && c->dir[cut - 1] != '/') {
                cut--;
            }
            if (cut <= 1) {
                break;  /* no parent left in the path, or it is "/" */
            }
            at = cut - 1;
        }
        c->dir[at] = '\0';
        int fd = rfn_open_long(c->dir, RFN_DIR_STEP_FLAGS);
        c->dir[at] = at == len ? '\0' : '/';
        if (fd < 0) {
            return -1;
        }
        rfn_dircache_push(c, at, fd);
    }
    else {
        at = c->len[c->n - 1];
    }
    /* Descend a component at a time, holding each level. */
    while (at < len) {
        size_t from = at + 1;
        char *slash = memchr(c->dir + from, '/', len - from);
        size_t to = slash ? (size_t)(slash - c->dir) : len;
        c->dir[to] = '\0';
        int fd = openat(c->fd[c->n - 1], c->dir + from, RFN_DIR_STEP_FLAGS);
        c->dir[to] = to == len ? '\0' : '/';
        if (fd < 0) {
            return -1;
        }
        rfn_dircache_push(c, to, fd);
        at = to;
    }
    return 0;
}

int
rfn_dircache_open(rfn_dircache *c, const char *path, int flags)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL || slash == path) {
        return rfn_open_long(path, flags);
    }
    size_t len = (size_t)(slash - path);
    int held = c->n > 0 && c->len[c->n - 1] == len && memcmp(c->dir, path, len) == 0;
    if (!held && (!rfn_dircache_is_deep(path, len)
                  || rfn_dircache_enter(c, path, len) < 0)) {
        return rfn_open_long(path, flags);
    }
    /* Racy case: a held directory renamed since it was opened still resolves
     * here; that is the tree changing under the fingerprint, as any rename
     * during a walk is. Symlinks on the way resolved when each level was
     * opened, as one open() of the full path resolves them. */
    int fd = openat(c->fd[c->n - 1], slash + 1, flags);
    return fd >= 0 ? fd : rfn_open_long(path, flags);
}

/* ---- directory entries ------------------------------------------------------------ */

#if RFN_OS_LINUX
/* The kernel's record (glibc declares it only from 2.30, musl not at all). */
struct rfn_dirent64 {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

int
rfn_dir_open(rfn_dir *d, int fd)
{
    if (d->buf == NULL && (d->buf = malloc(RFN_DIR_BUF)) == NULL) {
        errno = ENOMEM;
        return -1;
    }
    d->fd = fd;
    d->pos = d->len = 0;
    return 0;
}

int
rfn_dir_next(rfn_dir *d, const char **name, unsigned char *type)
{
    if (d->pos >= d->len) {
        long got;
        do {
            got = syscall(SYS_getdents64, d->fd, d->buf, (size_t)RFN_DIR_BUF);
        } while (got < 0 && errno == EINTR);
        if (got <= 0) {
            return got == 0 ? 0 : -1;
        }
        d->pos = 0;
        d->len = (size_t)got;
    }
    const struct rfn_dirent64 *de = (const struct rfn_dirent64 *)(void *)(d->buf + d->pos);
    d->pos += de->d_reclen;
    *name = de->d_name;
    *type = de->d_type;
    return 1;
}

void
rfn_dir_close(rfn_dir *d)
{
    d->pos = d->len = 0;
}

void
rfn_dir_free(rfn_dir *d)
{
    free(d->buf);
    d->buf = NULL;
}
#else
int
rfn_dir_open(rfn_dir *d, int fd)
{
    int own = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (own < 0) {
        return -1;
    }
    d->dir = fdopendir(own);
    if (d->dir == NULL) {
        rfn_close_keep_errno(own);
        return -1;
    }
    return 0;
}

int
rfn_dir_next(rfn_dir *d, const char **name, unsigned char *type)
{
    errno = 0;
    struct dirent *de = readdir(d->dir);
    if (de == NULL) {
        return errno == 0 ? 0 : -1;
    }
    *name = de->d_name;
    *type = de->d_type;
    return 1;
}

void
rfn_dir_close(rfn_dir *d)
{
    if (d->dir != NULL) {
        closedir(d->dir);
        d->dir = NULL;
    }
}

void
rfn_dir_free(rfn_dir *d)
{
    rfn_dir_close(d);
}
#endif

/* ---- threads and waits --------------------------------------------------------- */

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
    int err = pthread_sigmask(SIG_BLOCK, &all, &old);
    if (err != 0) {
        return err;
    }
    err = pthread_create(thread, NULL, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return err;
}

int
rfn_mutex_init(pthread_mutex_t *mutex)
{
    return pthread_mutex_init(mutex, NULL);
}

int
rfn_cond_init(pthread_cond_t *cond)
{
#if RFN_OS_LINUX
    /* CLOCK_MONOTONIC: a wall-clock jump must not stretch the wait between
     * two polls. */
    pthread_condattr_t attr;
    int rc = pthread_condattr_init(&attr);
    if (rc != 0) {
        return rc;
    }
    rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (rc == 0) {
        rc = pthread_cond_init(cond, &attr);
    }
    pthread_condattr_destroy(&attr);
    return rc;
#else
    return pthread_cond_init(cond, NULL);
#endif
}

int
rfn_cond_wait_ns(pthread_cond_t *cond, pthread_mutex_t *mutex, long ns)
{
    struct timespec ts;
#if defined(__APPLE__)
    ts.tv_sec = 0;
    ts.tv_nsec = ns;
    return pthread_cond_timedwait_relative_np(cond, mutex, &ts);
#else
#if RFN_OS_LINUX
    clock_gettime(CLOCK_MONOTONIC, &ts);
#else
    clock_gettime(CLOCK_REALTIME, &ts);  /* the clock of a default condition variable */
#endif
    ts.tv_nsec += ns;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec += 1;
        ts.tv_nsec -= 1000000000L;
    }
    return pthread_cond_timedwait(cond, mutex, &ts);
#endif
}

__attribute__((noinline)) int
rfn_cancelled(const int *flag)
{
    return __atomic_load_n(flag, __ATOMIC_RELAXED);
}

void
rfn_cancel_set(int *flag)
{
    __atomic_store_n(flag, 1, __ATOMIC_RELAXED);
}

int64_t
rfn_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int
rfn_cpu_count(void)
{
#if RFN_OS_LINUX
    cpu_set_t cpus;
    if (sched_getaffinity(0, sizeof(cpus), &cpus) == 0) {
        int n = CPU_COUNT(&cpus);
        return n > 0 ? n : 1;
    }
    return 1;
#else
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (n > INT_MAX ? INT_MAX : (int)n) : 1;
#endif
}

/* ---- the C stack ---------------------------------------------------------------- */

/* This thread's stack, found once (glibc's pthread_getattr_np reads
 * /proc/self/maps for the main thread). lo == hi == 0: unknown. */
static _Thread_local uintptr_t rfn_stack_lo, rfn_stack_hi;
static _Thread_local int rfn_stack_known;

#define RFN_STACK_MARGIN ((size_t)256 * 1024)

#if defined(__linux__) || defined(__FreeBSD__)
static void
rfn_stack_from_attr(pthread_attr_t *attr, uintptr_t *lo, uintptr_t *hi)
{
    void *addr;
    size_t size;
    if (pthread_attr_getstack(attr, &addr, &size) == 0) {
        *lo = (uintptr_t)addr;
        *hi = (uintptr_t)addr + size;
    }
}
#endif

static void
rfn_stack_find(uintptr_t *lo, uintptr_t *hi)
{
#if defined(__APPLE__)
    pthread_t self = pthread_self();
    uintptr_t top = (uintptr_t)pthread_get_stackaddr_np(self);  /* the high end */
    size_t size = pthread_get_stacksize_np(self);
    if (top != 0 && size != 0 && size < top) {
        *lo = top - size;
        *hi = top;
    }
#elif defined(__FreeBSD__)
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0) {
        return;
    }
    if (pthread_attr_get_np(pthread_self(), &attr) == 0) {
        rfn_stack_from_attr(&attr, lo, hi);
    }
    pthread_attr_destroy(&attr);
#elif defined(__linux__)
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        rfn_stack_from_attr(&attr, lo, hi);
        pthread_attr_destroy(&attr);
    }
#else
    (void)lo;
    (void)hi;
#endif
}

size_t
rfn_stack_avail(void)
{
    if (!rfn_stack_known) {
        rfn_stack_known = 1;
        rfn_stack_find(&rfn_stack_lo, &rfn_stack_hi);
    }
    char probe;
    uintptr_t here = (uintptr_t)&probe;
    if (here <= rfn_stack_lo || here > rfn_stack_hi) {
        return SIZE_MAX;    /* unknown, or a frame not on this stack (ASan fake stack) */
    }
    /* A quarter of a small stack (threading.stack_size()) is margin enough. */
    size_t size = rfn_stack_hi - rfn_stack_lo;
    size_t margin = size / 4 < RFN_STACK_MARGIN ? size / 4 : RFN_STACK_MARGIN;
    size_t left = here - rfn_stack_lo;
    return left > margin ? left - margin : 0;
}

/* ---- kernel pseudo files ---------------------------------------------------------- */

#define RFN_PORTABLE_PSEUDO_MAX ((off_t)64 * 1024)

int
rfn_is_pseudo_file(int fd, const struct stat *st)
{
    if (st->st_blocks != 0) {
        return 0;
    }
#if RFN_OS_LINUX
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
#else
    /* No portable file-system type: a small file without blocks (a pseudo
     * file, or data kept in the inode) is read to EOF, which frames the same
     * bytes for a real file. */
    (void)fd;
    return st->st_size <= RFN_PORTABLE_PSEUDO_MAX;
#endif
}

/* ---- memory ------------------------------------------------------------------------ */

int
rfn_vec_grow_with(void **items, size_t *cap, size_t need, size_t size, size_t first,
                  void *(*realloc_fn)(void *, size_t))
{
    if (need <= *cap) {
        return 0;
    }
    size_t ncap = *cap ? *cap : first;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2 / size) {
            return -1;
        }
        ncap *= 2;
    }
    if (ncap > SIZE_MAX / size) {
        return -1;
    }
    void *p = realloc_fn(*items, ncap * size);
    if (p == NULL) {
        return -1;
    }
    *items = p;
    *cap = ncap;
    return 0;
}

int
rfn_vec_grow(void **items, size_t *cap, size_t need, size_t size)
{
    return rfn_vec_grow_with(items, cap, need, size, 64, realloc);
}

/* ---- sorting with a context --------------------------------------------------------- */

#if !RFN_OS_LINUX
static void
rfn_swap_bytes(unsigned char *a, unsigned char *b, size_t size)
{
    while (size-- > 0) {
        unsigned char t = *a;
        *a++ = *b;
        *b++ = t;
    }
}

static void
rfn_sift_down(unsigned char *base, size_t root, size_t n, size_t size,
              int (*cmp)(const void *, const void *, void *), void *ctx)
{
    for (;;) {
        size_t child = 2 * root + 1;
        if (child >= n) {
            return;
        }
        if (child + 1 < n && cmp(base + child * size, base + (child + 1) * size, ctx) < 0) {
            child++;
        }
        if (cmp(base + root * size, base + child * size, ctx) >= 0) {
            return;
        }
        rfn_swap_bytes(base + root * size, base + child * size, size);
        root = child;
    }
}
#endif

void
rfn_sort_r(void *base, size_t n, size_t size,
           int (*cmp)(const void *, const void *, void *), void *ctx)
{
    if (n < 2) {
        return;  /* base may be NULL for 0 items: qsort_r's must not be (UBSan) */
    }
#if RFN_OS_LINUX
    qsort_r(base, n, size, cmp, ctx);
#else
    unsigned char *b = base;
    for (size_t i = n / 2; i-- > 0;) {
        rfn_sift_down(b, i, n, size, cmp, ctx);
    }
    for (size_t end = n - 1; end > 0; end--) {
        rfn_swap_bytes(b, b + end * size, size);
        rfn_sift_down(b, 0, end, size, cmp, ctx);
    }
#endif
}

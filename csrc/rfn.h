/* Shared declarations of the runpod_flash_native._fingerprint extension.
 *
 * Every internal symbol carries the rfn_ prefix. Each concern lives in its own
 * file and plugs into the module through one Py_mod_exec function:
 *   module.c  module definition, state, exec chain
 *   hash.c    SHA-256 (OpenSSL EVP) and the framed, pipelined fingerprint stream
 *   sources.c compute_source_fingerprint(): flash's path arithmetic and ordering
 *   ignore.c  gitwildmatch patterns compiled like pathspec, and IgnoreSpec
 *   walk.c    the project walk (flash's get_file_tree) and fingerprint_project
 *   diff.c    config comparison and reconciliation planning
 *   pgzip.c   segment entropy and CRC-32 combination for the parallel gzip writer
 *             (binding: py_pgzip.c)
 *   copy.c    copy2 of many files on worker threads (binding: py_copy.c)
 */
#ifndef RFN_H
#define RFN_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <stdint.h>
#include "rfn_evp.h"      /* OpenSSL 3 EVP, with or without its headers */
#include <pthread.h>
#include <time.h>

#define RFN_MODULE_NAME "runpod_flash_native._fingerprint"
#define RFN_SHA256_LEN 32
#define RFN_DIFF_NOBJ 16            /* objects diff.c keeps in the module state */

typedef struct {
    EVP_MD *sha256;                 /* fetched once at import, freed at m_free */
    PyObject *SourceChangedError;   /* RuntimeError: a file changed while hashed */
    PyObject *SymlinkLoopError;     /* OSError: directory symlink cycle in a walk */
    PyObject *InvalidPatternError;  /* ValueError: pathspec rejects the pattern */
    PyObject *PatternRegexError;    /* re.error: pathspec's regex fails to compile */
    PyTypeObject *IgnoreSpecType;
    PyObject *diff_objs[RFN_DIFF_NOBJ];  /* diff.c: interned keys, RUNTIME_RESOURCE_FIELDS */
    int reader_threads;             /* hash.c: 0 = default (CPUs + 1); set by tests, read atomically */
} rfn_state;

extern PyModuleDef rfn_module_def;

static inline rfn_state *
rfn_get_state(PyObject *module)
{
    void *state = PyModule_GetState(module);
    assert(state != NULL);
    return (rfn_state *)state;
}

/* State of the module that defined the (non-subclassable) type of obj. */
static inline rfn_state *
rfn_get_state_by_type(PyTypeObject *tp)
{
    return rfn_get_state(PyType_GetModule(tp));
}

/* Py_mod_exec functions, run in this order by module.c. */
int rfn_hash_exec(PyObject *module);
int rfn_sources_exec(PyObject *module);
int rfn_ignore_exec(PyObject *module);
int rfn_walk_exec(PyObject *module);
int rfn_diff_exec(PyObject *module);
int rfn_pgzip_exec(PyObject *module);
int rfn_copy_exec(PyObject *module);

/* C stack guard (module.c). The recursion limit alone does not protect C
 * recursion: with sys.setrecursionlimit() raised, a config nested 100,000
 * deep would overflow the C stack. rfn_stack_check(need) raises
 * RecursionError (returns -1) unless this thread's stack has need bytes plus
 * a safety margin left below the caller's frame; rfn_stack_avail() is that
 * room (SIZE_MAX when the stack bounds are unknown). */
int rfn_stack_check(size_t need);
size_t rfn_stack_avail(void);

/* GC support for the objects diff.c keeps in the state. */
int rfn_diff_traverse(rfn_state *st, visitproc visit, void *arg);
void rfn_diff_clear(rfn_state *st);

/* ---- hash.c: the fingerprint stream ------------------------------------ */

/* One file framed into the fingerprint:
 *   be64(len(rel)) || rel || be64(len(content)) || content
 * open_path is the NUL-terminated filesystem path handed to open(2);
 * rel is the UTF-8 POSIX path relative to the project root. */
typedef struct {
    const char *open_path;
    const char *rel;
    size_t rel_len;
} rfn_source;

/* Why a fingerprint stopped. Filled without the GIL; turned into a Python
 * exception by rfn_raise_failure() once the GIL is held again. */
enum rfn_failure_kind {
    RFN_OK = 0,
    RFN_FAIL_OS,            /* errno from open/fstat/read */
    RFN_FAIL_NOT_REGULAR,   /* FIFO, socket or device: flash would block or read forever */
    RFN_FAIL_CHANGED,       /* size or mtime moved while the file was hashed */
    RFN_FAIL_NOMEM,
    RFN_FAIL_THREAD,        /* pthread_create failed */
    RFN_FAIL_EVP,           /* OpenSSL error; the error queue says which */
    RFN_FAIL_INTERRUPTED,   /* a Python signal handler raised; exception is set */
};

typedef struct {
    enum rfn_failure_kind kind;
    int err_no;
    size_t index;           /* which source failed */
    const char *detail;     /* static text for CHANGED/NOT_REGULAR */
} rfn_failure;

/* Where sources come from. get() may block until source i exists; it returns
 * NULL once there are no more (or the producer failed and set *fail). */
typedef struct rfn_source_feed rfn_source_feed;
struct rfn_source_feed {
    const rfn_source *(*get)(rfn_source_feed *feed, size_t i);
    void *ctx;
    /* Optional, for feeds whose get() can block for long (the walk):
     * cancel() wakes a get() blocked on another thread and makes it return
     * NULL. While tstate is non-NULL, get() runs on the calling thread and
     * must run Python signal handlers (rfn_poll_signals) every ~50 ms while it
     * waits; when one raises it sets interrupted and returns NULL. */
    void (*cancel)(rfn_source_feed *feed);
    PyThreadState **tstate;
    int interrupted;
};

/* A feed over a fixed array. */
typedef struct {
    rfn_source_feed feed;
    const rfn_source *items;
    size_t count;
} rfn_array_feed;
void rfn_array_feed_init(rfn_array_feed *af, const rfn_source *items, size_t count);

/* Hash every source of feed into digest. Must be called WITHOUT the GIL;
 * *tstate is the caller's saved thread state, used to take the GIL for a
 * moment now and then to run Python signal handlers (Ctrl-C). Returns 0, or
 * -1 with *fail filled. total_hint (bytes, 0 if unknown) picks between an
 * inline loop and a reader thread overlapping I/O with hashing. */
int rfn_fingerprint_stream(rfn_state *st, rfn_source_feed *feed, uint64_t total_hint,
                           PyThreadState **tstate, unsigned char digest[RFN_SHA256_LEN],
                           rfn_failure *fail);

/* open(2) that also reaches paths longer than PATH_MAX (flash's os calls fail
 * there with ENAMETOOLONG; we do not). */
int rfn_open_long(const char *path, int flags);

/* pthread_create() for our helper threads (walk, readers): they start with
 * every asynchronous signal blocked, so that the kernel delivers Ctrl-C and
 * timers to a Python thread, whose handlers the calling thread runs while it
 * waits. Returns pthread_create()'s error number. */
int rfn_thread_start(pthread_t *thread, void *(*fn)(void *), void *arg);

/* Set the Python exception describing fail for the file path (a str). */
void rfn_raise_failure(rfn_state *st, const rfn_failure *fail, PyObject *path);

/* Raise the Python exception for the current OpenSSL error queue. */
void rfn_set_evp_error(const char *what);

PyObject *rfn_hexdigest(const unsigned char digest[RFN_SHA256_LEN]);

/* Waits on the calling thread run Python signal handlers at least this often
 * (and hashing, at least after this much time). */
#define RFN_WAIT_POLL_NS (50 * 1000 * 1000)

/* *ts = now + ns on CLOCK_MONOTONIC, the clock of every condition variable we
 * time out on: a wall-clock jump must not stretch the wait between two signal
 * polls. */
void rfn_deadline_in(struct timespec *ts, long ns);

/* Take the GIL for a moment and run pending signal handlers. Returns -1 (with
 * the exception left set, GIL released again) if one raised. */
int rfn_poll_signals(PyThreadState **tstate);

/* ---- sources.c: sort keys shared with the walk --------------------------- */

/* Python orders str by code point; UTF-8 (with surrogates passed through)
 * preserves that order under memcmp. */
int rfn_compare_keys(const char *a, size_t alen, const char *b, size_t blen);

/* Raise the UnicodeEncodeError flash's rel.encode("utf-8") raises for a
 * relative path given as surrogatepass UTF-8. */
void rfn_raise_rel_encode_error(const char *rel, size_t rel_len);

/* ---- ignore.c: compiled gitwildmatch patterns ---------------------------- */

typedef struct rfn_matcher rfn_matcher;

/* Match a normalized relative path given as code points (surrogateescape for
 * undecodable bytes, exactly as Python's str of the path). Returns 1 when the
 * last matching pattern excludes the path (flash ignores it), else 0. Never
 * touches Python objects: safe without the GIL. Scratch for paths of up to
 * ~900 code points is on the stack; longer ones take PyMem_RawMalloc, and
 * only if that fails the result is -1 (treat as out of memory). */
int rfn_matcher_ignores(const rfn_matcher *m, const uint32_t *cps, size_t n);

/* Matching during a walk, one directory level at a time (see ignore.c): a
 * directory carries rfn_matcher_bits_len() bytes of bits its entries inherit.
 * rfn_matcher_walk_entry() decides the entry at cps[0..n) (its whole path
 * relative to the base, its name last, no "/" in the name) under a directory
 * with parent_bits (NULL for an entry directly in the base), returning 1
 * (ignored), 0 (kept) or -1 (out of memory); with child_bits non-NULL it also
 * fills the bits the entry passes on if it is a directory. Safe without the
 * GIL. rfn_matcher_prefix_bits() fills the bits of a walk root whose path
 * relative to the base is cps[0..n) (n > 0). */
size_t rfn_matcher_bits_len(const rfn_matcher *m);
int rfn_matcher_walk_entry(const rfn_matcher *m, const uint32_t *cps, size_t n,
                           const unsigned char *parent_bits, unsigned char *child_bits);
int rfn_matcher_prefix_bits(const rfn_matcher *m, const uint32_t *cps, size_t n,
                            unsigned char *bits);

/* The matcher inside an IgnoreSpec object, or NULL (TypeError set). */
const rfn_matcher *rfn_ignorespec_matcher(PyObject *spec);

/* Decode bytes as Python's os.fsdecode (UTF-8, surrogateescape) would, into
 * out (capacity >= len). Returns the number of code points. */
size_t rfn_fsdecode_cps(const unsigned char *s, size_t len, uint32_t *out);

#endif /* RFN_H */

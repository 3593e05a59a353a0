/* walk: the project walk's core (flash's get_file_tree, and the sorted walk
 * that feeds the fingerprint stream). Compiles without Python.h; the entry
 * points and the Python exceptions are in py_walk.c.
 *
 *   walk.c       the arena, the recorded tree, failures, the source feed, the
 *                walk loop, setup and teardown
 *   walk_list.c  one directory: fetch (the system calls: open, read the
 *                entries, stat what d_type cannot answer) and consume (match,
 *                type, record, in listing order)
 *   walk_par.c   the listing workers: they fetch directories ahead of the
 *                walk, in the order the walk will need them
 *
 * The walk thread (the "emitter") descends in its order (sorted for the
 * fingerprint) and consumes one directory's fetched listing at a time, so
 * answers, warnings and the first error are exactly a sequential walk's. A
 * directory the walk reaches before any worker fetched it is fetched by the
 * walk itself; it waits only for a directory a worker is fetching.
 */
#ifndef RFN_WALK_H
#define RFN_WALK_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "hash.h"
#include "match.h"
#include "os.h"

#define RFN_NONE UINT32_MAX
#define RFN_SOURCE_BLOCK 4096   /* sources per block; blocks never move */

/* Sources are published to the readers in batches (one lock and one wake-up
 * per batch, not per file): when this many are waiting, or before a
 * directory is listed once the oldest waits this long. */
#define RFN_PUBLISH_BATCH 64
#define RFN_PUBLISH_NS (1000 * 1000)

/* Directories held open at once (per walk) so that their child directories
 * open relative to them: a chain of any depth needs two. Past the cap, a
 * directory opens by its full path. */
#define RFN_MAX_HELD_FDS 32

/* ---- a chunked arena: pointers stay valid while it grows --------------- */

typedef struct rfn_arena_block rfn_arena_block;

typedef struct {
    rfn_arena_block *head;
} rfn_arena;

void *rfn_arena_alloc(rfn_arena *a, size_t n);

/* ---- fetched listings ----------------------------------------------------- */

/* A directory descriptor held open for its child directories to open
 * relative to; closed when the last of them is opened. pending and the close
 * are under the walker's lock. */
typedef struct {
    int fd;
    uint32_t pending;
} rfn_fdref;

/* One directory's entries as the system calls gave them. Entries are packed
 * records: rfn_entry_head then the NUL-terminated name, 4-byte aligned. */
typedef struct {
    int open_err;             /* errno of opening it (then nothing else is set) */
    int stat_err;             /* errno of identifying it (fstat of ".") */
    int read_err;             /* errno of reading its entries, after the entries read */
    int fd;                   /* still open (child directories may open relative to it), or -1 */
    int searchable;           /* "." could be stat()ed: d_type can be trusted */
    dev_t dev;
    ino_t ino;
    unsigned char *buf;
    size_t len, cap;
    size_t ndirs;             /* entries that may be directories */
} rfn_listing;

typedef struct {
    uint16_t name_len;
    uint8_t d_type;
    uint8_t stat_state;       /* 0: not stat()ed, 1: st_type holds S_IFMT bits, 2: stat_errno */
    uint32_t st_type;
    int32_t stat_errno;
} rfn_entry_head;

enum rfn_task_state {
    RFN_TASK_NEW = 0,         /* enqueued, nobody fetches it yet */
    RFN_TASK_MINE,            /* the walk fetches it itself (its next need) */
    RFN_TASK_CLAIMED,         /* a worker fetches it */
    RFN_TASK_DONE,            /* fetched by a worker, waiting for the walk */
};

/* A directory to fetch (arena: never moves). Workers read only this, never
 * w->nodes (which the walk reallocates). */
typedef struct {
    const char *name;         /* relative to parent's descriptor */
    rfn_fdref *parent;        /* NULL: open by path */
    const char *path;         /* full path (set when parent is NULL) */
    int state;                /* under w->lock */
    rfn_listing out;
} rfn_task;

/* The tasks one rfn_walk_enqueue() pushed: todo[start..) up to the next
 * group's start. The walk takes them from the top (need order), workers from
 * lo upwards (needed last first), so the two meet instead of racing for the
 * same next directory. */
typedef struct {
    size_t start, lo;
} rfn_todo_group;

/* ---- the recorded tree ---------------------------------------------------- */

typedef struct {
    const char *name;         /* raw bytes of the directory entry */
    const char *key;          /* name as UTF-8 with surrogates passed through */
    uint32_t name_len, key_len;
    uint32_t parent;
    uint32_t next;            /* next kept sibling, listing order */
    uint32_t first_child;     /* directories: first kept child, listing order */
    uint32_t last_child;
    uint8_t is_dir, via_symlink, key_is_utf8;
    /* directories only */
    const char *path;         /* full path, NUL-terminated; built on demand (files */
    const char *rel;          /* to emit, messages) and kept: NULL until then */
    uint32_t path_len, rel_len;   /* rel: relative to the walk root, surrogatepass UTF-8 */
    const unsigned char *bits;/* matcher bits its entries inherit (NULL at the base) */
    uint32_t match_len;       /* code points of its path relative to the base */
    uint32_t depth;
    rfn_fdref *held;          /* held open so children open relative to it, or NULL */
    rfn_task *task;           /* its fetch, once enqueued */
    uint8_t rel_is_utf8;
    dev_t dev;
    ino_t ino;
} rfn_node;

enum rfn_walk_failure {
    RFN_WALK_OK = 0,
    RFN_WALK_OS,         /* flash would raise this OSError too */
    RFN_WALK_LOOP,       /* directory symlink back to an ancestor */
    RFN_WALK_NOMEM,
    RFN_WALK_CANCELLED,
};

typedef struct {
    char *path;
    int err_no;
} rfn_warning;

typedef struct {
    /* configuration */
    const rfn_matcher *matcher;     /* NULL: nothing is ignored */
    int sorted;                     /* visit in fingerprint order and emit sources */

    rfn_arena arena;
    rfn_node *nodes;
    size_t nnodes, cap_nodes;
    uint32_t *stack;
    size_t nstack, cap_stack;
    uint32_t *kids;                 /* scratch: kept children of one directory */
    size_t cap_kids;
    uint32_t *scratch_cps;          /* the listed directory's match path (code points */
    size_t cap_scratch;             /* relative to the base), then one entry's name */
    uint32_t *chain;                /* chain[k]: the depth-k directory whose match */
    size_t cap_chain, chain_top;    /* path prefixes scratch_cps, k <= chain_top */
    uint32_t *up;                   /* scratch: ancestors to re-enter */
    size_t cap_up;
    size_t held_fds;                /* under lock */
    rfn_dir dir;                    /* the walk's own fetches */

    /* listing workers (walk_par.c); under lock */
    pthread_cond_t work;            /* workers wait for tasks */
    pthread_cond_t listed;          /* the walk waits for a worker's fetch */
    int have_work, have_listed;
    pthread_t *workers;
    size_t nworkers;
    int workers_started;
    rfn_task **todo;                /* a stack: the top is needed first */
    size_t ntodo, cap_todo;
    size_t todo_new;                /* tasks in todo still NEW */
    rfn_todo_group *groups;         /* one per enqueue: a directory's children */
    size_t ngroups, cap_groups;
    size_t ahead, ahead_fds;        /* fetched (or being fetched) by workers, not consumed */
    size_t ahead_bytes;
    size_t idle;                    /* workers waiting on work */
    int waiting;                    /* the walk waits on listed */
    int stop;                       /* workers: leave */

    rfn_warning *warnings;
    size_t nwarnings, cap_warnings;

    enum rfn_walk_failure failure;
    int fail_errno;
    char *fail_path;                /* malloc'd */
    char *fail_target;              /* loop: the ancestor it leads back to */

    /* the source feed (sorted mode), shared with the reader threads */
    pthread_mutex_t lock;
    pthread_cond_t grew;
    rfn_source **blocks;            /* replaced (atomically) when it grows; blocks never move */
    size_t nblocks, cap_blocks;
    rfn_source **retired[64];       /* earlier blocks arrays: a reader may still hold one */
    size_t nretired;
    size_t nsources;                /* published (stored under lock, read atomically) */
    size_t nwritten;                /* written into blocks (walk thread only) */
    int64_t published_at;           /* rfn_now_ns() of the last publication */
    int feed_closed;                /* no more sources will come */
    int feed_stopped;               /* a file flash cannot encode: nothing after it */
    size_t encode_fail_index;       /* its position in the sorted list */
    const char *encode_fail_rel;
    size_t encode_fail_rel_len;
    int cancel;                     /* set under lock; the walk polls it without (os.h) */
    int have_lock, have_cond;
    rfn_source_feed feed;
} rfn_walker;

#define RFN_GROW(w, field, cap, need) \
    rfn_vec_grow((void **)&(w)->field, &(w)->cap, (need), sizeof(*(w)->field))

/* ---- walk.c: the tree, failures, the walk ------------------------------- */

/* root: the directory as flash's Path would print it (os.fsencode'd);
 * prefix: the code points of its path relative to the base (NULL, 0 for the
 * base itself or a root outside it); sorted: visit in fingerprint order and
 * publish each file to w->feed. NULL when out of memory. */
rfn_walker *rfn_walk_new(const char *root, size_t root_len, const uint32_t *prefix,
                         size_t prefix_len, const rfn_matcher *matcher, int sorted);
void rfn_walk_dispose(rfn_walker *w);

/* Walk the whole tree on this thread (w->failure says how it ended). */
void rfn_walk_run(rfn_walker *w);

/* rfn_walk_run() as a thread body; closes the feed at the end. */
void *rfn_walk_thread(void *arg);

/* The files in flash's order (depth first, each directory in listing order):
 * rfn_walk_files_begin() once (-1: out of memory), then
 * rfn_walk_next_file(w, &cur) until RFN_NONE (cur starts at RFN_NONE). */
int rfn_walk_files_begin(rfn_walker *w, uint32_t *cur);
uint32_t rfn_walk_next_file(rfn_walker *w, uint32_t *cur);

/* The published source at sorted position i (i < w->nsources). */
const rfn_source *rfn_walk_source(const rfn_walker *w, size_t i);

/* Helpers walk_list.c shares. */
uint32_t rfn_walk_new_node(rfn_walker *w);
void rfn_walk_link_child(rfn_walker *w, uint32_t dir, uint32_t child);
int rfn_walk_dir_strings(rfn_walker *w, uint32_t d);
const char *rfn_walk_join(rfn_walker *w, const char *parent, size_t plen, const char *name,
                          size_t nlen, int dot_is_empty, uint32_t *out_len);
char *rfn_walk_strndup(const char *s, size_t n);
void rfn_walk_fail(rfn_walker *w, enum rfn_walk_failure kind, int err_no, const char *path,
                   size_t len);
int rfn_walk_warn(rfn_walker *w, const char *path, size_t len, int err_no);
int rfn_walk_set_key(rfn_walker *w, rfn_node *n, const uint32_t *cps, size_t ncps);

/* ---- walk_list.c: one directory ----------------------------------------- */

/* The system calls of listing task t (any thread; dir: that thread's reader;
 * cancel: polled between reads). Opening relative to t->parent releases it
 * (rfn_walk_release). Returns 0, or -1 out of memory. */
int rfn_walk_fetch(rfn_walker *w, rfn_task *t, rfn_dir *dir);

/* Drop what a fetched listing holds (its buffer, its descriptor). */
void rfn_listing_clear(rfn_listing *l);

/* Record directory d's kept entries from its fetched listing (their node ids
 * in w->kids[0..*nkids)), and hold its descriptor for its child directories.
 * Returns 0 (also when flash would warn and move on), -1 on failure
 * (w->failure set). */
int rfn_walk_consume(rfn_walker *w, uint32_t d, rfn_listing *l, size_t *nkids);

/* One fewer child directory waits to open relative to ref: close it after
 * the last. */
void rfn_walk_release(rfn_walker *w, rfn_fdref *ref);

/* ---- walk_par.c: the listing workers ------------------------------------- */

/* Listing workers of a walk: 0 = default (one fewer than the CPUs; for the
 * fingerprint's walk half the CPUs minus one; at most RFN_MAX_LIST_WORKERS),
 * -1 = none. Process-wide test hook. */
#define RFN_MAX_LIST_WORKERS 3
int rfn_walk_set_list_workers(int n);   /* returns the previous setting */

/* Look-ahead bounds: fetched listings not yet consumed, those of them that
 * hold a descriptor, and their bytes. */
#define RFN_LIST_AHEAD 1024
#define RFN_LIST_AHEAD_FDS 48
#define RFN_LIST_AHEAD_BYTES (32u << 20)

/* Stop and join the workers (started by rfn_walk_enqueue() once there is
 * work for them; a walk without any fetches everything itself). */
void rfn_walk_stop_workers(rfn_walker *w);

/* Make the tasks of the directories among kids[0..n) (their parent just
 * consumed; in need order: kids[0] first) and push them for the workers; the
 * first is reserved for the walk itself. Returns 0, or -1 out of memory
 * (w->failure set). */
int rfn_walk_enqueue(rfn_walker *w, const uint32_t *kids, size_t n);

/* Directory d's fetched listing: taken from a worker (waiting for one that
 * is fetching it) or fetched here. NULL when cancelled or out of memory
 * (w->failure set). */
rfn_listing *rfn_walk_need(rfn_walker *w, uint32_t d);

#endif /* RFN_WALK_H */

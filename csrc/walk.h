/* walk: the project walk's core (flash's get_file_tree, and the sorted walk
 * that feeds the fingerprint stream). Compiles without Python.h; the entry
 * points and the Python exceptions are in py_walk.c.
 *
 *   walk.c       the arena, the recorded tree, failures, the source feed, the
 *                walk loop, setup and teardown
 *   walk_list.c  listing one directory: open, type each entry, match, record
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
    uint32_t pending_dirs;    /* while fd is held: child directories not opened yet */
    int fd;                   /* held open so children open relative to it, or -1 */
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
    size_t held_fds;
    rfn_dir dir;                    /* the directory being listed */

    rfn_warning *warnings;
    size_t nwarnings, cap_warnings;

    enum rfn_walk_failure failure;
    int fail_errno;
    char *fail_path;                /* malloc'd */
    char *fail_target;              /* loop: the ancestor it leads back to */

    /* the source feed (sorted mode), shared with the reader threads */
    pthread_mutex_t lock;
    pthread_cond_t grew;
    rfn_source **blocks;            /* grown under lock; blocks themselves never move */
    size_t nblocks, cap_blocks;
    size_t nsources;                /* published */
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

/* File node n's path as flash prints it, in the arena; NULL out of memory. */
const char *rfn_walk_file_path(rfn_walker *w, uint32_t n, uint32_t *len);

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

/* Open directory d and record its kept entries (their node ids in
 * w->kids[0..*nkids)). Returns 0 (also when flash would warn and move on),
 * -1 on failure (w->failure set). */
int rfn_walk_list(rfn_walker *w, uint32_t d, size_t *nkids);

#endif /* RFN_WALK_H */

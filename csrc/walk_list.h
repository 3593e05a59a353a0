/* walk_list: listing one directory of the walk, above the tree
 * (walk_tree.h): fetch (the system calls: open, read the entries, stat what
 * d_type cannot answer; any thread) and consume (match, type, record, in
 * listing order; the walk thread). Core: no Python.h.
 */
#ifndef RFN_WALK_LIST_H
#define RFN_WALK_LIST_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "match.h"
#include "os.h"
#include "walk_tree.h"

/* Directories held open at once (per walk) so that their child directories
 * open relative to them: a chain of any depth needs two. Past the cap, a
 * directory opens by its full path. */
#define RFN_MAX_HELD_FDS 32

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

/* A directory to fetch (arena: never moves). Workers read only this, never
 * the tree's nodes (which the walk reallocates). */
typedef struct rfn_task {
    const char *name;         /* relative to parent's descriptor */
    rfn_fdref *parent;        /* NULL: open by path */
    const char *path;         /* full path (set when parent is NULL) */
    int state;                /* who fetches it (walk_par.h), under the lock */
    rfn_listing out;
} rfn_task;

/* The tree and what listing its directories needs. */
typedef struct {
    rfn_tree tree;
    const rfn_matcher *matcher;     /* NULL: nothing is ignored */

    uint32_t *kids;                 /* scratch: kept children of one directory */
    size_t cap_kids;
    uint32_t *scratch_cps;          /* the listed directory's match path (code points */
    size_t cap_scratch;             /* relative to the base), then one entry's name */
    uint32_t *chain;                /* chain[k]: the depth-k directory whose match */
    size_t cap_chain, chain_top;    /* path prefixes scratch_cps, k <= chain_top */
    uint32_t *up;                   /* scratch: ancestors to re-enter */
    size_t cap_up;
    rfn_dir dir;                    /* the walk thread's own fetches */

    /* The walker's lock: held descriptors here; the workers and the source
     * feed above share it. */
    pthread_mutex_t lock;
    int have_lock;
    size_t held_fds;                /* under lock */
    int cancel;                     /* set under lock; polled without (os.h) */
} rfn_lister;

/* root: the directory as flash's Path would print it (os.fsencode'd);
 * prefix: the code points of its path relative to the base (NULL, 0 for the
 * base itself or a root outside it). Returns 0, or -1 (then dispose it). */
int rfn_list_init(rfn_lister *li, const char *root, size_t root_len, const uint32_t *prefix,
                  size_t prefix_len, const rfn_matcher *matcher);

/* Free what li holds (its workers, if any, stopped first). */
void rfn_list_dispose(rfn_lister *li);

/* The system calls of listing task t (any thread; dir: that thread's reader;
 * li->cancel: polled between reads). Opening relative to t->parent releases
 * it (rfn_list_release). Returns 0, or -1 out of memory. */
int rfn_list_fetch(rfn_lister *li, rfn_task *t, rfn_dir *dir);

/* Drop what a fetched listing holds (its buffer, its descriptor). */
void rfn_list_clear(rfn_listing *l);

/* Record directory d's kept entries from its fetched listing (their node ids
 * in li->kids[0..*nkids)), and hold its descriptor for its child directories.
 * Returns 0 (also when flash would warn and move on), -1 on failure
 * (li->tree.failure set). */
int rfn_list_consume(rfn_lister *li, uint32_t d, rfn_listing *l, size_t *nkids);

/* One fewer child directory waits to open relative to ref: close it after
 * the last. */
void rfn_list_release(rfn_lister *li, rfn_fdref *ref);

#endif /* RFN_WALK_LIST_H */

/* walk: the project walk's core (flash's get_file_tree, and the sorted walk
 * that feeds the fingerprint stream). Compiles without Python.h; the entry
 * points and the Python exceptions are in py_walk.c. Layers, each file
 * including only the headers below it:
 *
 *   walk.h/.c       the walk loop, the source feed, setup and teardown
 *   walk_par.h/.c   the listing workers: they fetch directories ahead of the
 *                   walk, in the order the walk will need them
 *   walk_list.h/.c  one directory: fetch (the system calls: open, read the
 *                   entries, stat what d_type cannot answer) and consume
 *                   (match, type, record, in listing order)
 *   walk_tree.h/.c  the arena, the recorded tree, failures and warnings
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

#include "hash.h"
#include "match.h"
#include "walk_list.h"
#include "walk_par.h"
#include "walk_tree.h"

#define RFN_SOURCE_BLOCK 4096   /* sources per block; blocks never move */

/* Sources are published to the readers in batches (one lock and one wake-up
 * per batch, not per file): when this many are waiting, or before a
 * directory is listed once the oldest waits this long. */
#define RFN_PUBLISH_BATCH 64
#define RFN_PUBLISH_NS (1000 * 1000)

typedef struct {
    rfn_par par;                    /* the workers, the lister, the tree */
    int sorted;                     /* visit in fingerprint order and emit sources */
    uint32_t *stack;
    size_t nstack, cap_stack;

    /* the source feed (sorted mode), shared with the reader threads; under
     * par.list.lock */
    pthread_cond_t grew;
    int have_grew;
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
    rfn_source_feed feed;
} rfn_walker;

/* The recorded tree (nodes, warnings, the failure) and the lister's scratch. */
#define RFN_WALK_TREE(w) (&(w)->par.list.tree)
#define RFN_WALK_LISTER(w) (&(w)->par.list)

/* root: the directory as flash's Path would print it (os.fsencode'd);
 * prefix: the code points of its path relative to the base (NULL, 0 for the
 * base itself or a root outside it); sorted: visit in fingerprint order and
 * publish each file to w->feed. NULL when out of memory. */
rfn_walker *rfn_walk_new(const char *root, size_t root_len, const uint32_t *prefix,
                         size_t prefix_len, const rfn_matcher *matcher, int sorted);
void rfn_walk_dispose(rfn_walker *w);

/* Walk the whole tree on this thread (the tree's failure says how it ended). */
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

#endif /* RFN_WALK_H */

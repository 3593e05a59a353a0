/* The project walk: flash's get_file_tree, and walk + match + hash in one call.
 *
 * flash lists a directory (os.listdir order), drops every entry whose path
 * relative to the base matches the ignore spec (directories are matched
 * without a trailing slash, so "docs/" never prunes "docs" itself), keeps what
 * stat() (following symlinks) calls a regular file, and recurses into what it
 * calls a directory. A PermissionError while listing, or while stat()ing an
 * entry, ends that directory with a warning and keeps what it had.
 *
 * We do the same without recursion on the C stack and without the GIL, with
 * two differences flash cannot have: a directory symlink that leads back to an
 * ancestor raises SymlinkLoopError (flash follows it ~40 times until ELOOP and
 * ships every copy), and paths longer than PATH_MAX still work.
 *
 * For the fingerprint, directories are visited in sorted order, siblings keyed
 * by name with "/" appended to directories: that makes the walk emit files in
 * exactly the order flash sorts relative paths in, so a reader thread can start
 * hashing while the walk goes on. The returned file list is rebuilt in flash's
 * own (listing) order from the recorded tree.
 */
#include "walk.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- the source feed ------------------------------------------------------ */

static const rfn_source *
rfn_walk_feed_get(rfn_source_feed *feed, size_t i)
{
    rfn_walker *w = feed->ctx;
    const rfn_source *src = NULL;
    /* Published already: no lock (three readers taking it for every file
     * made ~5 futex calls a file on a walk-bound tree). The walk stores
     * nsources after the blocks array that holds it (release), and retires
     * rather than frees an array it replaces. */
    if (i < __atomic_load_n(&w->nsources, __ATOMIC_ACQUIRE)) {
        rfn_source **blocks = __atomic_load_n(&w->blocks, __ATOMIC_ACQUIRE);
        return &blocks[i / RFN_SOURCE_BLOCK][i % RFN_SOURCE_BLOCK];
    }
    pthread_mutex_lock(&w->par.list.lock);
    while (i >= w->nsources && !w->feed_closed && !w->par.list.cancel) {
        if (feed->poll == NULL) {
            pthread_cond_wait(&w->grew, &w->par.list.lock);
            continue;
        }
        /* On the calling thread: a long walk that emits nothing (a slow file
         * system, a deep tree of ignored entries) must not hold up Ctrl-C. */
        if (rfn_cond_wait_ns(&w->grew, &w->par.list.lock, RFN_WAIT_POLL_NS) == ETIMEDOUT) {
            pthread_mutex_unlock(&w->par.list.lock);
            int rc = rfn_poll(feed->poll);
            pthread_mutex_lock(&w->par.list.lock);
            if (rc < 0) {
                feed->interrupted = 1;
                break;
            }
        }
    }
    if (i < w->nsources) {
        src = &w->blocks[i / RFN_SOURCE_BLOCK][i % RFN_SOURCE_BLOCK];
    }
    pthread_mutex_unlock(&w->par.list.lock);
    return src;
}

static void
rfn_walk_cancel(rfn_source_feed *feed)
{
    rfn_walker *w = feed->ctx;
    pthread_mutex_lock(&w->par.list.lock);
    rfn_cancel_set(&w->par.list.cancel);
    pthread_cond_broadcast(&w->grew);
    pthread_cond_broadcast(&w->par.work);
    pthread_cond_broadcast(&w->par.listed);
    pthread_mutex_unlock(&w->par.list.lock);
}

/* Make the written sources visible to the readers and wake them. */
static void
rfn_walk_publish(rfn_walker *w, int close)
{
    pthread_mutex_lock(&w->par.list.lock);
    __atomic_store_n(&w->nsources, w->nwritten, __ATOMIC_RELEASE);
    w->feed_closed |= close;
    pthread_cond_broadcast(&w->grew);
    pthread_mutex_unlock(&w->par.list.lock);
    w->published_at = rfn_now_ns();
}

static void
rfn_walk_close_feed(rfn_walker *w)
{
    rfn_walk_publish(w, 1);
}

/* Publish what waits for longer than RFN_PUBLISH_NS (before the walk goes
 * off to list a directory, which can take long). */
static void
rfn_walk_publish_stale(rfn_walker *w)
{
    if (w->nwritten > w->nsources && rfn_now_ns() - w->published_at >= RFN_PUBLISH_NS) {
        rfn_walk_publish(w, 0);
    }
}

/* Double the blocks array: readers index it without the lock, so the old one
 * is kept (until rfn_walk_dispose) for a reader that loaded it just before. */
static int
rfn_walk_grow_blocks(rfn_walker *w)
{
    size_t cap = w->cap_blocks ? w->cap_blocks * 2 : 16;
    if (w->nretired == sizeof(w->retired) / sizeof(w->retired[0])) {
        return -1;
    }
    rfn_source **bigger = malloc(cap * sizeof(*bigger));
    if (bigger == NULL) {
        return -1;
    }
    if (w->nblocks > 0) {
        memcpy(bigger, w->blocks, w->nblocks * sizeof(*bigger));
    }
    if (w->blocks != NULL) {
        w->retired[w->nretired++] = w->blocks;
    }
    __atomic_store_n(&w->blocks, bigger, __ATOMIC_RELEASE);
    w->cap_blocks = cap;
    return 0;
}

/* Write file node n as the next source, in sorted order; publish a batch. */
static int
rfn_walk_emit(rfn_walker *w, uint32_t n)
{
    if (w->feed_stopped) {
        return 0;
    }
    rfn_tree *t = RFN_WALK_TREE(w);
    if (rfn_tree_dir_strings(t, t->nodes[n].parent) < 0) {
        return -1;
    }
    const rfn_node *file = &t->nodes[n], *dir = &t->nodes[file->parent];
    rfn_source src;
    uint32_t len;
    src.open_path = rfn_tree_join(t, dir->path, dir->path_len, file->name, file->name_len, 1, &len);
    src.rel = rfn_tree_join(t, dir->rel, dir->rel_len, file->key, file->key_len, 0, &len);
    if (src.open_path == NULL || src.rel == NULL) {
        return -1;
    }
    src.rel_len = len;
    if (!file->key_is_utf8 || !dir->rel_is_utf8) {
        /* flash's rel.encode("utf-8") raises here; nothing after it is hashed. */
        w->feed_stopped = 1;
        w->encode_fail_index = w->nwritten;
        w->encode_fail_rel = src.rel;
        w->encode_fail_rel_len = len;
        rfn_walk_close_feed(w);
        return 0;
    }
    size_t i = w->nwritten, b = i / RFN_SOURCE_BLOCK;
    if (b == w->nblocks) {
        rfn_source *block = malloc(RFN_SOURCE_BLOCK * sizeof(rfn_source));
        if (block == NULL) {
            return -1;
        }
        if (b == w->cap_blocks && rfn_walk_grow_blocks(w) < 0) {
            free(block);
            return -1;
        }
        w->blocks[w->nblocks++] = block;  /* readers see it once nsources covers it */
    }
    w->blocks[b][i % RFN_SOURCE_BLOCK] = src;
    w->nwritten = i + 1;
    if (w->nwritten - w->nsources >= RFN_PUBLISH_BATCH) {
        rfn_walk_publish(w, 0);
    }
    return 0;
}

/* ---- the walk ------------------------------------------------------------- */

static int
rfn_compare_siblings(const void *pa, const void *pb, void *ctx)
{
    const rfn_node *nodes = ctx;
    const rfn_node *a = &nodes[*(const uint32_t *)pa];
    const rfn_node *b = &nodes[*(const uint32_t *)pb];
    return rfn_compare_keys_tail(a->key, a->key_len, a->is_dir ? '/' : -1, b->key, b->key_len,
                                 b->is_dir ? '/' : -1);
}

static int
rfn_walk_push(rfn_walker *w, uint32_t n)
{
    if (RFN_GROW(w, stack, cap_stack, w->nstack + 1) < 0) {
        w->par.list.tree.failure = RFN_WALK_NOMEM;
        return -1;
    }
    w->stack[w->nstack++] = n;
    return 0;
}

/* List directory d (fetched here or by a worker) and push its kept children
 * (sorted mode: all, in sorted order; else its directories, in listing
 * order), the first to be visited on top. */
static int
rfn_walk_visit_dir(rfn_walker *w, uint32_t d)
{
    rfn_lister *li = RFN_WALK_LISTER(w);
    size_t nkids;
    if (w->sorted) {
        rfn_walk_publish_stale(w);
    }
    rfn_listing *l = rfn_par_need(&w->par, d);
    if (l == NULL || rfn_list_consume(li, d, l, &nkids) < 0) {
        return -1;
    }
    if (w->sorted) {
        rfn_sort_r(li->kids, nkids, sizeof(uint32_t), rfn_compare_siblings, li->tree.nodes);
    }
    for (size_t i = nkids; i-- > 0;) {
        uint32_t kid = li->kids[i];
        if ((w->sorted || li->tree.nodes[kid].is_dir) && rfn_walk_push(w, kid) < 0) {
            return -1;
        }
    }
    return rfn_par_enqueue(&w->par, li->kids, nkids);
}

/* Depth-first over an explicit stack, listing workers fetching ahead. */
void
rfn_walk_run(rfn_walker *w)
{
    uint32_t root = 0;
    if (rfn_walk_push(w, root) < 0 || rfn_par_enqueue(&w->par, &root, 1) < 0) {
        return;
    }
    while (w->nstack > 0) {
        uint32_t n = w->stack[--w->nstack];
        if (!w->par.list.tree.nodes[n].is_dir) {
            if (rfn_walk_emit(w, n) < 0) {
                w->par.list.tree.failure = RFN_WALK_NOMEM;
                break;
            }
            continue;
        }
        if (rfn_walk_visit_dir(w, n) < 0) {
            break;
        }
    }
    rfn_par_stop_workers(&w->par);
}

void *
rfn_walk_thread(void *arg)
{
    rfn_walker *w = arg;
    rfn_walk_run(w);
    rfn_walk_close_feed(w);
    return NULL;
}


/* ---- setup and teardown ----------------------------------------------------- */

void
rfn_walk_dispose(rfn_walker *w)
{
    rfn_par_dispose(&w->par);  /* first: its workers stop */
    free(w->stack);
    for (size_t b = 0; b < w->nblocks; b++) {
        free(w->blocks[b]);
    }
    free(w->blocks);
    for (size_t k = 0; k < w->nretired; k++) {
        free(w->retired[k]);
    }
    if (w->have_grew) {
        pthread_cond_destroy(&w->grew);
    }
    free(w);
}

rfn_walker *
rfn_walk_new(const char *root, size_t root_len, const uint32_t *prefix, size_t prefix_len,
             const rfn_matcher *matcher, int sorted)
{
    rfn_walker *w = calloc(1, sizeof(*w));
    if (w == NULL) {
        return NULL;
    }
    w->have_grew = rfn_cond_init(&w->grew) == 0;
    if (!w->have_grew
        || rfn_par_init(&w->par, root, root_len, prefix, prefix_len, matcher, sorted) < 0) {
        rfn_walk_dispose(w);
        return NULL;
    }
    w->sorted = sorted;
    w->published_at = rfn_now_ns();
    w->feed.get = rfn_walk_feed_get;
    w->feed.cancel = rfn_walk_cancel;
    w->feed.ctx = w;
    return w;
}

/* ---- results ------------------------------------------------------------------ */

int
rfn_walk_files_begin(rfn_walker *w, uint32_t *cur)
{
    /* The path from the root to any node is at most every node. */
    if (RFN_GROW(w, stack, cap_stack, w->par.list.tree.nnodes) < 0) {
        return -1;
    }
    w->nstack = 0;
    *cur = w->par.list.tree.nodes[0].first_child;
    return 0;
}

uint32_t
rfn_walk_next_file(rfn_walker *w, uint32_t *cur)
{
    const rfn_node *nodes = RFN_WALK_TREE(w)->nodes;
    for (;;) {
        while (*cur == RFN_NONE && w->nstack > 0) {
            *cur = nodes[w->stack[--w->nstack]].next;
        }
        if (*cur == RFN_NONE) {
            return RFN_NONE;
        }
        uint32_t n = *cur;
        if (nodes[n].is_dir) {
            w->stack[w->nstack++] = n;
            *cur = nodes[n].first_child;
            continue;
        }
        *cur = nodes[n].next;
        return n;
    }
}

const rfn_source *
rfn_walk_source(const rfn_walker *w, size_t i)
{
    return &w->blocks[i / RFN_SOURCE_BLOCK][i % RFN_SOURCE_BLOCK];
}

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
#include <unistd.h>

#define RFN_ARENA_BLOCK (1u << 20)

/* ---- a chunked arena: pointers stay valid while it grows --------------- */

struct rfn_arena_block {
    struct rfn_arena_block *next;
    size_t used, cap;
    max_align_t data[];
};

void *
rfn_arena_alloc(rfn_arena *a, size_t n)
{
    n = (n + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
    rfn_arena_block *b = a->head;
    if (b == NULL || b->cap - b->used < n) {
        size_t cap = n > RFN_ARENA_BLOCK ? n : RFN_ARENA_BLOCK;
        b = malloc(sizeof(*b) + cap);
        if (b == NULL) {
            return NULL;
        }
        b->next = a->head;
        b->used = 0;
        b->cap = cap;
        a->head = b;
    }
    void *p = (char *)b->data + b->used;
    b->used += n;
    return p;
}

static void
rfn_arena_free(rfn_arena *a)
{
    while (a->head != NULL) {
        rfn_arena_block *next = a->head->next;
        free(a->head);
        a->head = next;
    }
}

char *
rfn_walk_strndup(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p != NULL) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

/* ---- failures and warnings (no GIL: recorded, raised later) --------------- */

void
rfn_walk_fail(rfn_walker *w, enum rfn_walk_failure kind, int err_no, const char *path, size_t len)
{
    if (w->failure != RFN_WALK_OK) {
        return;
    }
    w->failure = kind;
    w->fail_errno = err_no;
    if (path != NULL) {
        w->fail_path = rfn_walk_strndup(path, len);
        if (w->fail_path == NULL) {
            w->failure = RFN_WALK_NOMEM;
        }
    }
}

int
rfn_walk_warn(rfn_walker *w, const char *path, size_t len, int err_no)
{
    if (RFN_GROW(w, warnings, cap_warnings, w->nwarnings + 1) < 0) {
        return -1;
    }
    char *copy = rfn_walk_strndup(path, len);
    if (copy == NULL) {
        return -1;
    }
    w->warnings[w->nwarnings].path = copy;
    w->warnings[w->nwarnings].err_no = err_no;
    w->nwarnings++;
    return 0;
}

/* ---- names ---------------------------------------------------------------- */

/* The sort key of a name: itself when it is UTF-8, else Python's view of it
 * (surrogateescape) encoded with surrogatepass, which sorts like the str. */
int
rfn_walk_set_key(rfn_walker *w, rfn_node *n, const uint32_t *cps, size_t ncps)
{
    int utf8 = 1;
    for (size_t i = 0; i < ncps; i++) {
        if (cps[i] >= 0xDC80 && cps[i] <= 0xDCFF) {
            utf8 = 0;
            break;
        }
    }
    n->key_is_utf8 = (uint8_t)utf8;
    if (utf8) {
        n->key = n->name;
        n->key_len = n->name_len;
        return 0;
    }
    char *key = rfn_arena_alloc(&w->arena, ncps * 4);
    if (key == NULL) {
        return -1;
    }
    size_t o = rfn_utf8_encode_cps(cps, ncps, key);
    n->key = key;
    n->key_len = (uint32_t)o;
    return 0;
}

/* Join parent + "/" + name into the arena (parent "" gives name; "." gives
 * name, as Path(".") / name does; a parent ending in "/" adds no slash). */
const char *
rfn_walk_join(rfn_walker *w, const char *parent, size_t plen, const char *name, size_t nlen,
         int dot_is_empty, uint32_t *out_len)
{
    if (dot_is_empty && plen == 1 && parent[0] == '.') {
        plen = 0;
    }
    size_t sep = plen > 0 && parent[plen - 1] != '/';
    char *p = rfn_arena_alloc(&w->arena, plen + sep + nlen + 1);
    if (p == NULL) {
        return NULL;
    }
    memcpy(p, parent, plen);
    if (sep) {
        p[plen] = '/';
    }
    memcpy(p + plen + sep, name, nlen);
    p[plen + sep + nlen] = '\0';
    *out_len = (uint32_t)(plen + sep + nlen);
    return p;
}

uint32_t
rfn_walk_new_node(rfn_walker *w)
{
    if (w->nnodes >= RFN_NONE - 1 || RFN_GROW(w, nodes, cap_nodes, w->nnodes + 1) < 0) {
        return RFN_NONE;
    }
    rfn_node *n = &w->nodes[w->nnodes];
    memset(n, 0, sizeof(*n));
    n->parent = n->next = n->first_child = n->last_child = RFN_NONE;
    return (uint32_t)w->nnodes++;
}

void
rfn_walk_link_child(rfn_walker *w, uint32_t dir, uint32_t child)
{
    rfn_node *d = &w->nodes[dir];
    if (d->last_child == RFN_NONE) {
        d->first_child = child;
    }
    else {
        w->nodes[d->last_child].next = child;
    }
    d->last_child = child;
}

/* Build (and keep on the node) the path and rel of directory d from its
 * ancestors' names, the way rfn_walk_join would have joined them level by
 * level: the root's path "." vanishes, no "/" after a root ending in "/". */
int
rfn_walk_dir_strings(rfn_walker *w, uint32_t d)
{
    if (w->nodes[d].path != NULL) {
        return 0;
    }
    size_t plen = 0, rlen = 0, steps = 0;
    uint32_t a = d;
    while (w->nodes[a].path == NULL) {
        plen += w->nodes[a].name_len + 1;
        rlen += w->nodes[a].key_len + 1;
        a = w->nodes[a].parent;
        steps++;
    }
    if (steps > 32) {
        /* Directories opened relative to their parents have no strings; a
         * deep one's files come first in sorted order ("d/" < "m.py"), then
         * its parent's, and so on up: give the ancestor halfway its strings
         * too, or each call would walk the whole chain again. */
        uint32_t mid = d;
        for (size_t i = 0; i < steps / 2; i++) {
            mid = w->nodes[mid].parent;
        }
        return rfn_walk_dir_strings(w, mid) < 0 ? -1 : rfn_walk_dir_strings(w, d);
    }
    const rfn_node *an = &w->nodes[a];
    size_t pbase = an->path_len == 1 && an->path[0] == '.' ? 0 : an->path_len;
    size_t psep = pbase > 0 && an->path[pbase - 1] != '/';
    size_t rbase = an->rel_len;
    size_t rsep = rbase > 0 && an->rel[rbase - 1] != '/';
    size_t ptotal = pbase + psep + plen - 1, rtotal = rbase + rsep + rlen - 1;
    if (ptotal >= UINT32_MAX || rtotal >= UINT32_MAX) {
        return -1;
    }
    char *path = rfn_arena_alloc(&w->arena, ptotal + 1);
    char *rel = rfn_arena_alloc(&w->arena, rtotal + 1);
    if (path == NULL || rel == NULL) {
        return -1;
    }
    an = &w->nodes[a];
    size_t po = ptotal, ro = rtotal;
    path[po] = rel[ro] = '\0';
    for (uint32_t x = d; x != a; x = w->nodes[x].parent) {
        const rfn_node *xn = &w->nodes[x];
        po -= xn->name_len;
        memcpy(path + po, xn->name, xn->name_len);
        ro -= xn->key_len;
        memcpy(rel + ro, xn->key, xn->key_len);
        if (xn->parent != a) {
            path[--po] = '/';
            rel[--ro] = '/';
        }
    }
    memcpy(path, an->path, pbase);
    memcpy(rel, an->rel, rbase);
    if (psep) {
        path[pbase] = '/';
    }
    if (rsep) {
        rel[rbase] = '/';
    }
    rfn_node *n = &w->nodes[d];
    n->path = path;
    n->path_len = (uint32_t)ptotal;
    n->rel = rel;
    n->rel_len = (uint32_t)rtotal;
    return 0;
}

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
    pthread_mutex_lock(&w->lock);
    while (i >= w->nsources && !w->feed_closed && !w->cancel) {
        if (feed->poll == NULL) {
            pthread_cond_wait(&w->grew, &w->lock);
            continue;
        }
        /* On the calling thread: a long walk that emits nothing (a slow file
         * system, a deep tree of ignored entries) must not hold up Ctrl-C. */
        if (rfn_cond_wait_ns(&w->grew, &w->lock, RFN_WAIT_POLL_NS) == ETIMEDOUT) {
            pthread_mutex_unlock(&w->lock);
            int rc = rfn_poll(feed->poll);
            pthread_mutex_lock(&w->lock);
            if (rc < 0) {
                feed->interrupted = 1;
                break;
            }
        }
    }
    if (i < w->nsources) {
        src = &w->blocks[i / RFN_SOURCE_BLOCK][i % RFN_SOURCE_BLOCK];
    }
    pthread_mutex_unlock(&w->lock);
    return src;
}

static void
rfn_walk_cancel(rfn_source_feed *feed)
{
    rfn_walker *w = feed->ctx;
    pthread_mutex_lock(&w->lock);
    rfn_cancel_set(&w->cancel);
    pthread_cond_broadcast(&w->grew);
    pthread_cond_broadcast(&w->work);
    pthread_cond_broadcast(&w->listed);
    pthread_mutex_unlock(&w->lock);
}

/* Make the written sources visible to the readers and wake them. */
static void
rfn_walk_publish(rfn_walker *w, int close)
{
    pthread_mutex_lock(&w->lock);
    __atomic_store_n(&w->nsources, w->nwritten, __ATOMIC_RELEASE);
    w->feed_closed |= close;
    pthread_cond_broadcast(&w->grew);
    pthread_mutex_unlock(&w->lock);
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
    if (rfn_walk_dir_strings(w, w->nodes[n].parent) < 0) {
        return -1;
    }
    const rfn_node *file = &w->nodes[n], *dir = &w->nodes[file->parent];
    rfn_source src;
    uint32_t len;
    src.open_path = rfn_walk_join(w, dir->path, dir->path_len, file->name, file->name_len, 1, &len);
    src.rel = rfn_walk_join(w, dir->rel, dir->rel_len, file->key, file->key_len, 0, &len);
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
    const rfn_walker *w = ctx;
    const rfn_node *a = &w->nodes[*(const uint32_t *)pa];
    const rfn_node *b = &w->nodes[*(const uint32_t *)pb];
    return rfn_compare_keys_tail(a->key, a->key_len, a->is_dir ? '/' : -1, b->key, b->key_len,
                                 b->is_dir ? '/' : -1);
}

static int
rfn_walk_push(rfn_walker *w, uint32_t n)
{
    if (RFN_GROW(w, stack, cap_stack, w->nstack + 1) < 0) {
        w->failure = RFN_WALK_NOMEM;
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
    size_t nkids;
    if (w->sorted) {
        rfn_walk_publish_stale(w);
    }
    rfn_listing *l = rfn_walk_need(w, d);
    if (l == NULL || rfn_walk_consume(w, d, l, &nkids) < 0) {
        return -1;
    }
    if (w->sorted) {
        rfn_sort_r(w->kids, nkids, sizeof(uint32_t), rfn_compare_siblings, w);
    }
    for (size_t i = nkids; i-- > 0;) {
        uint32_t kid = w->kids[i];
        if ((w->sorted || w->nodes[kid].is_dir) && rfn_walk_push(w, kid) < 0) {
            return -1;
        }
    }
    return rfn_walk_enqueue(w, w->kids, nkids);
}

/* Depth-first over an explicit stack, listing workers fetching ahead. */
void
rfn_walk_run(rfn_walker *w)
{
    uint32_t root = 0;
    if (rfn_walk_push(w, root) < 0 || rfn_walk_enqueue(w, &root, 1) < 0) {
        return;
    }
    while (w->nstack > 0) {
        uint32_t n = w->stack[--w->nstack];
        if (!w->nodes[n].is_dir) {
            if (rfn_walk_emit(w, n) < 0) {
                w->failure = RFN_WALK_NOMEM;
                break;
            }
            continue;
        }
        if (rfn_walk_visit_dir(w, n) < 0) {
            break;
        }
    }
    rfn_walk_stop_workers(w);
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
    rfn_walk_stop_workers(w);
    for (size_t i = 0; i < w->nnodes; i++) {
        rfn_node *n = &w->nodes[i];
        if (n->held != NULL && n->held->fd >= 0) {
            close(n->held->fd);
            n->held->fd = -1;
        }
        if (n->task != NULL) {
            rfn_listing_clear(&n->task->out);
        }
    }
    free(w->workers);
    free(w->todo);
    free(w->groups);
    rfn_dir_free(&w->dir);
    rfn_arena_free(&w->arena);
    free(w->nodes);
    free(w->chain);
    free(w->up);
    free(w->stack);
    free(w->kids);
    free(w->scratch_cps);
    for (size_t i = 0; i < w->nwarnings; i++) {
        free(w->warnings[i].path);
    }
    free(w->warnings);
    free(w->fail_path);
    free(w->fail_target);
    for (size_t b = 0; b < w->nblocks; b++) {
        free(w->blocks[b]);
    }
    free(w->blocks);
    for (size_t k = 0; k < w->nretired; k++) {
        free(w->retired[k]);
    }
    if (w->have_cond) {
        pthread_cond_destroy(&w->grew);
    }
    if (w->have_work) {
        pthread_cond_destroy(&w->work);
    }
    if (w->have_listed) {
        pthread_cond_destroy(&w->listed);
    }
    if (w->have_lock) {
        pthread_mutex_destroy(&w->lock);
    }
    free(w);
}

/* root: the directory as flash's Path would print it (os.fsencode'd);
 * match_prefix: the code points of its path relative to the base ("" for the
 * base itself). */
rfn_walker *
rfn_walk_new(const char *root, size_t root_len, const uint32_t *prefix, size_t prefix_len,
             const rfn_matcher *matcher, int sorted)
{
    rfn_walker *w = calloc(1, sizeof(*w));
    if (w == NULL) {
        return NULL;
    }
    w->have_lock = rfn_mutex_init(&w->lock) == 0;
    w->have_cond = w->have_lock && rfn_cond_init(&w->grew) == 0;
    w->have_work = w->have_cond && rfn_cond_init(&w->work) == 0;
    w->have_listed = w->have_work && rfn_cond_init(&w->listed) == 0;
    if (!w->have_listed) {
        rfn_walk_dispose(w);
        return NULL;
    }
    w->matcher = matcher;
    w->sorted = sorted;
    w->published_at = rfn_now_ns();
    w->feed.get = rfn_walk_feed_get;
    w->feed.cancel = rfn_walk_cancel;
    w->feed.ctx = w;
    uint32_t root_node = rfn_walk_new_node(w);
    char *path = rfn_arena_alloc(&w->arena, root_len + 1);
    unsigned char *bits = NULL;
    if (matcher != NULL && prefix_len > 0) {
        size_t blen = rfn_matcher_bits_len(matcher);
        bits = rfn_arena_alloc(&w->arena, blen ? blen : 1);
        if (bits != NULL && rfn_matcher_prefix_bits(matcher, prefix, prefix_len, bits) < 0) {
            bits = NULL;
        }
    }
    if (root_node == RFN_NONE || path == NULL || root_len >= UINT32_MAX
        || prefix_len >= UINT32_MAX || (matcher != NULL && prefix_len > 0 && bits == NULL)
        || RFN_GROW(w, scratch_cps, cap_scratch, prefix_len + 1) < 0
        || RFN_GROW(w, chain, cap_chain, 1) < 0) {
        rfn_walk_dispose(w);
        return NULL;
    }
    memcpy(path, root, root_len);
    path[root_len] = '\0';
    if (prefix_len > 0) {
        /* prefix is NULL when root is not under the base: memcpy(_, NULL, 0)
         * is undefined behaviour (UBSan: nonnull-attribute). */
        memcpy(w->scratch_cps, prefix, prefix_len * sizeof(uint32_t));
    }
    w->chain[0] = root_node;
    w->chain_top = 0;
    rfn_node *r = &w->nodes[root_node];
    r->is_dir = 1;
    r->path = path;
    r->path_len = (uint32_t)root_len;
    r->rel = "";
    r->rel_is_utf8 = 1;
    r->bits = bits;
    r->match_len = (uint32_t)prefix_len;
    return w;
}


/* ---- results ------------------------------------------------------------------ */

int
rfn_walk_files_begin(rfn_walker *w, uint32_t *cur)
{
    /* The path from the root to any node is at most every node. */
    if (RFN_GROW(w, stack, cap_stack, w->nnodes) < 0) {
        return -1;
    }
    w->nstack = 0;
    *cur = w->nodes[0].first_child;
    return 0;
}

uint32_t
rfn_walk_next_file(rfn_walker *w, uint32_t *cur)
{
    for (;;) {
        while (*cur == RFN_NONE && w->nstack > 0) {
            *cur = w->nodes[w->stack[--w->nstack]].next;
        }
        if (*cur == RFN_NONE) {
            return RFN_NONE;
        }
        uint32_t n = *cur;
        if (w->nodes[n].is_dir) {
            w->stack[w->nstack++] = n;
            *cur = w->nodes[n].first_child;
            continue;
        }
        *cur = w->nodes[n].next;
        return n;
    }
}

const rfn_source *
rfn_walk_source(const rfn_walker *w, size_t i)
{
    return &w->blocks[i / RFN_SOURCE_BLOCK][i % RFN_SOURCE_BLOCK];
}

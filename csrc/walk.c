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
#include "rfn.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define RFN_NONE UINT32_MAX
#define RFN_ARENA_BLOCK (1u << 20)
#define RFN_SOURCE_BLOCK 4096   /* sources per block; blocks never move */

/* ---- a chunked arena: pointers stay valid while it grows --------------- */

typedef struct rfn_arena_block {
    struct rfn_arena_block *next;
    size_t used, cap;
    max_align_t data[];
} rfn_arena_block;

typedef struct {
    rfn_arena_block *head;
} rfn_arena;

static void *
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

/* Directories held open at once (per walk) so that their child directories
 * open relative to them: a chain of any depth needs two. Past the cap, a
 * directory opens by its full path. */
#define RFN_MAX_HELD_FDS 32

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

    rfn_warning *warnings;
    size_t nwarnings, cap_warnings;

    enum rfn_walk_failure failure;
    int fail_errno;
    char *fail_path;                /* malloc'd */
    char *fail_target;              /* loop: the ancestor it leads back to */

    /* the source feed (sorted mode), shared with the reader thread */
    pthread_mutex_t lock;
    pthread_cond_t grew;
    rfn_source **blocks;            /* grown under lock; blocks themselves never move */
    size_t nblocks, cap_blocks;
    size_t nsources;                /* published */
    int feed_closed;                /* no more sources will come */
    int feed_stopped;               /* a file flash cannot encode: nothing after it */
    size_t encode_fail_index;       /* its position in the sorted list */
    const char *encode_fail_rel;
    size_t encode_fail_rel_len;
    int cancel;                     /* set under lock; the walk polls it without (atomic) */
    int have_lock, have_cond;
    rfn_source_feed feed;
} rfn_walk;

/* ---- small vectors (rfn_vec_grow: os.c) ----------------------------------------- */

#define RFN_GROW(w, field, cap, need) \
    rfn_vec_grow((void **)&(w)->field, &(w)->cap, (need), sizeof(*(w)->field))

static char *
rfn_strndup(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p != NULL) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

/* ---- failures and warnings (no GIL: recorded, raised later) --------------- */

static void
rfn_walk_fail(rfn_walk *w, enum rfn_walk_failure kind, int err_no, const char *path, size_t len)
{
    if (w->failure != RFN_WALK_OK) {
        return;
    }
    w->failure = kind;
    w->fail_errno = err_no;
    if (path != NULL) {
        w->fail_path = rfn_strndup(path, len);
        if (w->fail_path == NULL) {
            w->failure = RFN_WALK_NOMEM;
        }
    }
}

static int
rfn_walk_warn(rfn_walk *w, const char *path, size_t len, int err_no)
{
    if (RFN_GROW(w, warnings, cap_warnings, w->nwarnings + 1) < 0) {
        return -1;
    }
    char *copy = rfn_strndup(path, len);
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
static int
rfn_node_set_key(rfn_walk *w, rfn_node *n, uint32_t *cps, size_t ncps)
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
static const char *
rfn_join(rfn_walk *w, const char *parent, size_t plen, const char *name, size_t nlen,
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

static int rfn_walk_dir_strings(rfn_walk *w, uint32_t d);

/* ---- the source feed ------------------------------------------------------ */

static const rfn_source *
rfn_walk_feed_get(rfn_source_feed *feed, size_t i)
{
    rfn_walk *w = feed->ctx;
    const rfn_source *src = NULL;
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
    rfn_walk *w = feed->ctx;
    pthread_mutex_lock(&w->lock);
    rfn_cancel_set(&w->cancel);
    pthread_cond_broadcast(&w->grew);
    pthread_mutex_unlock(&w->lock);
}

static void
rfn_walk_close_feed(rfn_walk *w)
{
    pthread_mutex_lock(&w->lock);
    w->feed_closed = 1;
    pthread_cond_broadcast(&w->grew);
    pthread_mutex_unlock(&w->lock);
}

/* Publish file node n as the next source, in sorted order. */
static int
rfn_walk_emit(rfn_walk *w, uint32_t n)
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
    src.open_path = rfn_join(w, dir->path, dir->path_len, file->name, file->name_len, 1, &len);
    src.rel = rfn_join(w, dir->rel, dir->rel_len, file->key, file->key_len, 0, &len);
    if (src.open_path == NULL || src.rel == NULL) {
        return -1;
    }
    src.rel_len = len;
    if (!file->key_is_utf8 || !dir->rel_is_utf8) {
        /* flash's rel.encode("utf-8") raises here; nothing after it is hashed. */
        pthread_mutex_lock(&w->lock);
        w->feed_stopped = 1;
        w->encode_fail_index = w->nsources;
        w->encode_fail_rel = src.rel;
        w->encode_fail_rel_len = len;
        pthread_mutex_unlock(&w->lock);
        rfn_walk_close_feed(w);
        return 0;
    }
    size_t i = w->nsources, b = i / RFN_SOURCE_BLOCK;
    if (b == w->nblocks) {
        rfn_source *block = malloc(RFN_SOURCE_BLOCK * sizeof(rfn_source));
        if (block == NULL) {
            return -1;
        }
        /* The reader indexes blocks under the lock: grow it under the lock. */
        pthread_mutex_lock(&w->lock);
        int grown = RFN_GROW(w, blocks, cap_blocks, b + 1);
        if (grown == 0) {
            w->blocks[w->nblocks++] = block;
        }
        pthread_mutex_unlock(&w->lock);
        if (grown < 0) {
            free(block);
            return -1;
        }
    }
    w->blocks[b][i % RFN_SOURCE_BLOCK] = src;
    pthread_mutex_lock(&w->lock);
    w->nsources = i + 1;
    pthread_cond_broadcast(&w->grew);
    pthread_mutex_unlock(&w->lock);
    return 0;
}

/* ---- listing one directory ------------------------------------------------ */

static uint32_t
rfn_walk_new_node(rfn_walk *w)
{
    if (w->nnodes >= RFN_NONE - 1 || RFN_GROW(w, nodes, cap_nodes, w->nnodes + 1) < 0) {
        return RFN_NONE;
    }
    rfn_node *n = &w->nodes[w->nnodes];
    memset(n, 0, sizeof(*n));
    n->parent = n->next = n->first_child = n->last_child = RFN_NONE;
    n->fd = -1;
    return (uint32_t)w->nnodes++;
}

static void
rfn_walk_link_child(rfn_walk *w, uint32_t dir, uint32_t child)
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

/* The ancestor of dir with the same identity, if the walk came back to it. */
static uint32_t
rfn_walk_find_cycle(const rfn_walk *w, uint32_t dir)
{
    const rfn_node *d = &w->nodes[dir];
    for (uint32_t a = d->parent; a != RFN_NONE; a = w->nodes[a].parent) {
        if (w->nodes[a].dev == d->dev && w->nodes[a].ino == d->ino) {
            return a;
        }
    }
    return RFN_NONE;
}

/* Build (and keep on the node) the path and rel of directory d from its
 * ancestors' names, the way rfn_join would have joined them level by level:
 * the root's path "." vanishes, no "/" after a root ending in "/". */
static int
rfn_walk_dir_strings(rfn_walk *w, uint32_t d)
{
    if (w->nodes[d].path != NULL) {
        return 0;
    }
    size_t plen = 0, rlen = 0;
    uint32_t a = d;
    while (w->nodes[a].path == NULL) {
        plen += w->nodes[a].name_len + 1;
        rlen += w->nodes[a].key_len + 1;
        a = w->nodes[a].parent;
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

/* Make scratch_cps hold directory d's match path: keep what it shares with
 * the directory listed before (in a depth-first walk, usually its parent),
 * re-decode only the rest. */
static int
rfn_walk_enter(rfn_walk *w, uint32_t d)
{
    size_t nup = 0;
    uint32_t x = d;
    while (!(w->nodes[x].depth <= w->chain_top && w->chain[w->nodes[x].depth] == x)) {
        if (RFN_GROW(w, up, cap_up, nup + 1) < 0) {
            return -1;
        }
        w->up[nup++] = x;
        x = w->nodes[x].parent;
    }
    w->chain_top = w->nodes[x].depth;
    while (nup > 0) {
        uint32_t y = w->up[--nup];
        const rfn_node *yn = &w->nodes[y];
        size_t o = w->nodes[yn->parent].match_len;
        if (RFN_GROW(w, scratch_cps, cap_scratch, o + 1 + yn->name_len) < 0
            || RFN_GROW(w, chain, cap_chain, (size_t)yn->depth + 1) < 0) {
            return -1;
        }
        if (o > 0) {
            w->scratch_cps[o++] = '/';
        }
        rfn_fsdecode_cps((const unsigned char *)yn->name, yn->name_len, w->scratch_cps + o);
        w->chain[yn->depth] = y;
        w->chain_top = yn->depth;
    }
    return 0;
}

/* Open directory d for listing: relative to its parent when the parent is
 * held open (no path resolution from the root: a tree 10,000 deep opens in
 * linear time), else by its full path. */
static int
rfn_walk_open_dir(rfn_walk *w, uint32_t d)
{
    const int flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;
    if (d != 0) {
        rfn_node *p = &w->nodes[w->nodes[d].parent];
        if (p->fd >= 0) {
            int fd = openat(p->fd, w->nodes[d].name, flags);
            int saved = errno;
            if (--p->pending_dirs == 0) {
                close(p->fd);
                p->fd = -1;
                w->held_fds--;
            }
            errno = saved;
            return fd;
        }
    }
    if (rfn_walk_dir_strings(w, d) < 0) {
        errno = ENOMEM;
        return -1;
    }
    return rfn_open_long(w->nodes[d].path, flags);
}

/* Directory d's path for a message or warning, or NULL (out of memory). */
static const char *
rfn_walk_dir_path(rfn_walk *w, uint32_t d, size_t *len)
{
    if (rfn_walk_dir_strings(w, d) < 0) {
        return NULL;
    }
    *len = w->nodes[d].path_len;
    return w->nodes[d].path;
}

/* Fails the walk with OS error err_no on directory d. Returns -1. */
static int
rfn_walk_fail_dir(rfn_walk *w, uint32_t d, int err_no)
{
    size_t len;
    const char *path = rfn_walk_dir_path(w, d, &len);
    if (path == NULL) {
        w->failure = RFN_WALK_NOMEM;
        return -1;
    }
    rfn_walk_fail(w, RFN_WALK_OS, err_no, path, len);
    return -1;
}

/* What stat() says about one non-ignored entry, the way Path.is_file() and
 * Path.is_dir() see it. Returns 1 file, 2 dir, 0 neither, -1 stop the
 * directory (PermissionError in flash), -2 raise. */
static int
rfn_walk_entry_type(rfn_walk *w, int dirfd, const struct dirent *de, int searchable,
                    int *via_symlink)
{
    /* Without d_type we cannot tell a symlink: check those for cycles too. */
    *via_symlink = de->d_type != DT_DIR;
    if (searchable) {
        switch (de->d_type) {
        case DT_REG: return 1;
        case DT_DIR: return 2;
        case DT_LNK: case DT_UNKNOWN: break;
        default: return 0;  /* FIFO, socket, device */
        }
    }
    struct stat st;
    if (fstatat(dirfd, de->d_name, &st, 0) == 0) {
        return S_ISREG(st.st_mode) ? 1 : S_ISDIR(st.st_mode) ? 2 : 0;
    }
    switch (errno) {
    case ENOENT: case ENOTDIR: case EBADF: case ELOOP:
        return 0;  /* pathlib treats these as "not a file, not a directory" */
    case EACCES: case EPERM:
        return -1;
    default:
        (void)w;
        return -2;
    }
}

/* Code points of the entry's path relative to the base, in w->scratch_cps
 * right after its directory's (rfn_walk_enter(w, d) ran). */
static int
rfn_walk_match_path(rfn_walk *w, uint32_t d, const char *name, size_t nlen, size_t *ncps)
{
    size_t o = w->nodes[d].match_len;
    if (RFN_GROW(w, scratch_cps, cap_scratch, o + 1 + nlen) < 0) {
        return -1;
    }
    if (o > 0) {
        w->scratch_cps[o++] = '/';
    }
    o += rfn_fsdecode_cps((const unsigned char *)name, nlen, w->scratch_cps + o);
    *ncps = o;
    return 0;
}

static int
rfn_walk_add_entry(rfn_walk *w, uint32_t d, const char *name, size_t nlen, int is_dir,
                   int via_symlink, size_t ncps)
{
    uint32_t c = rfn_walk_new_node(w);
    char *copy = rfn_arena_alloc(&w->arena, nlen + 1);
    if (c == RFN_NONE || copy == NULL) {
        return -1;
    }
    memcpy(copy, name, nlen + 1);
    rfn_node *n = &w->nodes[c];
    n->name = copy;
    n->name_len = (uint32_t)nlen;
    n->parent = d;
    n->is_dir = (uint8_t)is_dir;
    n->via_symlink = (uint8_t)via_symlink;
    size_t base = w->nodes[d].match_len + (w->nodes[d].match_len > 0);
    if (rfn_node_set_key(w, n, w->scratch_cps + base, ncps - base) < 0) {
        return -1;
    }
    if (is_dir) {
        const rfn_node *dn = &w->nodes[d];
        n = &w->nodes[c];
        n->match_len = (uint32_t)ncps;
        n->depth = dn->depth + 1;
        n->rel_is_utf8 = dn->rel_is_utf8 && n->key_is_utf8;
        if (w->matcher != NULL) {
            const unsigned char *parent_bits = dn->bits;
            size_t blen = rfn_matcher_bits_len(w->matcher);
            unsigned char *bits = rfn_arena_alloc(&w->arena, blen ? blen : 1);
            if (bits == NULL
                || rfn_matcher_walk_entry(w->matcher, w->scratch_cps, ncps, parent_bits, bits) < 0) {
                return -1;
            }
            w->nodes[c].bits = bits;
        }
    }
    rfn_walk_link_child(w, d, c);
    return RFN_GROW(w, kids, cap_kids, w->nnodes) < 0 ? -1 : 0;
}

/* Open directory d and record its kept entries. Returns 0 (also when flash
 * would warn and move on), -1 on failure (w->failure set). */
static int
rfn_walk_list(rfn_walk *w, uint32_t d, size_t *nkids)
{
    *nkids = 0;
    size_t ndirs = 0, plen;
    const char *path;
    if (rfn_walk_enter(w, d) < 0) {
        goto nomem;
    }
    int fd = rfn_walk_open_dir(w, d);
    if (fd < 0) {
        int err = errno;
        if (err == ENOMEM || (path = rfn_walk_dir_path(w, d, &plen)) == NULL) {
            goto nomem;
        }
        if (err == EACCES || err == EPERM) {
            if (rfn_walk_warn(w, path, plen, err) < 0) {
                goto nomem;
            }
            return 0;
        }
        rfn_walk_fail(w, RFN_WALK_OS, err, path, plen);
        return -1;
    }
    /* "." needs search permission: without it every stat() below fails. */
    struct stat self;
    int searchable = fstatat(fd, ".", &self, 0) == 0;
    if (!searchable && fstat(fd, &self) != 0) {
        int err = errno;
        close(fd);
        return rfn_walk_fail_dir(w, d, err);
    }
    w->nodes[d].dev = self.st_dev;
    w->nodes[d].ino = self.st_ino;
    if (w->nodes[d].via_symlink) {
        uint32_t a = rfn_walk_find_cycle(w, d);
        if (a != RFN_NONE) {
            close(fd);
            size_t alen;
            const char *apath = rfn_walk_dir_path(w, a, &alen);
            if (apath == NULL || (path = rfn_walk_dir_path(w, d, &plen)) == NULL) {
                goto nomem;
            }
            rfn_walk_fail(w, RFN_WALK_LOOP, ELOOP, path, plen);
            w->fail_target = rfn_strndup(apath, alen);
            return -1;
        }
    }
    DIR *dir = fdopendir(fd);
    if (dir == NULL) {
        int err = errno;
        close(fd);
        return rfn_walk_fail_dir(w, d, err);
    }
    int rc = 0;
    for (;;) {
        if (rfn_cancelled(&w->cancel)) {
            w->failure = RFN_WALK_CANCELLED;
            rc = -1;
            break;
        }
        errno = 0;
        struct dirent *de = readdir(dir);
        if (de == NULL) {
            if (errno != 0) {
                rc = rfn_walk_fail_dir(w, d, errno);
            }
            break;
        }
        const char *name = de->d_name;
        if (name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'))) {
            continue;
        }
        size_t nlen = strlen(name), ncps;
        if (rfn_walk_match_path(w, d, name, nlen, &ncps) < 0) {
            goto nomem_dir;
        }
        if (w->matcher != NULL) {
            int ignored = rfn_matcher_walk_entry(w->matcher, w->scratch_cps, ncps,
                                                 w->nodes[d].bits, NULL);
            if (ignored < 0) {
                goto nomem_dir;
            }
            if (ignored) {
                continue;
            }
        }
        int via_symlink, type = rfn_walk_entry_type(w, fd, de, searchable, &via_symlink);
        if (type == -1) {
            /* flash: PermissionError from is_file() ends this directory. */
            int err = errno;
            if ((path = rfn_walk_dir_path(w, d, &plen)) == NULL
                || rfn_walk_warn(w, path, plen, err) < 0) {
                goto nomem_dir;
            }
            break;
        }
        if (type == -2) {
            int err = errno;
            uint32_t len;
            const char *p = (path = rfn_walk_dir_path(w, d, &plen)) == NULL ? NULL
                            : rfn_join(w, path, plen, name, nlen, 1, &len);
            if (p == NULL) {
                goto nomem_dir;
            }
            rfn_walk_fail(w, RFN_WALK_OS, err, p, len);
            rc = -1;
            break;
        }
        if (type == 0) {
            continue;
        }
        if (rfn_walk_add_entry(w, d, name, nlen, type == 2, via_symlink, ncps) < 0) {
            goto nomem_dir;
        }
        w->kids[(*nkids)++] = (uint32_t)(w->nnodes - 1);
        ndirs += type == 2;
    }
    if (rc == 0 && ndirs > 0 && w->held_fds < RFN_MAX_HELD_FDS) {
        /* Keep it open for its child directories (a failed dup just means
         * they open by path). */
        int keep = fcntl(dirfd(dir), F_DUPFD_CLOEXEC, 3);
        if (keep >= 0) {
            w->nodes[d].fd = keep;
            w->nodes[d].pending_dirs = (uint32_t)ndirs;
            w->held_fds++;
        }
    }
    closedir(dir);
    return rc;

nomem_dir:
    closedir(dir);
nomem:
    w->failure = RFN_WALK_NOMEM;
    return -1;
}

/* ---- the walk ------------------------------------------------------------- */

static int
rfn_compare_siblings(const void *pa, const void *pb, void *ctx)
{
    const rfn_walk *w = ctx;
    const rfn_node *a = &w->nodes[*(const uint32_t *)pa];
    const rfn_node *b = &w->nodes[*(const uint32_t *)pb];
    size_t n = a->key_len < b->key_len ? a->key_len : b->key_len;
    int c = memcmp(a->key, b->key, n);
    if (c != 0) {
        return c;
    }
    /* One key is a prefix of the other: compare the next byte, with "/"
     * standing after a directory's name. */
    int ca = a->key_len > n ? (unsigned char)a->key[n] : a->is_dir ? '/' : -1;
    int cb = b->key_len > n ? (unsigned char)b->key[n] : b->is_dir ? '/' : -1;
    return (ca > cb) - (ca < cb);
}

static int
rfn_walk_push(rfn_walk *w, uint32_t n)
{
    if (RFN_GROW(w, stack, cap_stack, w->nstack + 1) < 0) {
        w->failure = RFN_WALK_NOMEM;
        return -1;
    }
    w->stack[w->nstack++] = n;
    return 0;
}

/* Depth-first over an explicit stack. Unsorted mode pushes children in
 * listing order reversed, so the first listed is visited first. */
static void
rfn_walk_run(rfn_walk *w)
{
    if (rfn_walk_push(w, 0) < 0) {
        return;
    }
    while (w->nstack > 0) {
        uint32_t n = w->stack[--w->nstack];
        if (!w->nodes[n].is_dir) {
            if (rfn_walk_emit(w, n) < 0) {
                w->failure = RFN_WALK_NOMEM;
                return;
            }
            continue;
        }
        size_t nkids;
        if (rfn_walk_list(w, n, &nkids) < 0) {
            return;
        }
        if (w->sorted) {
            rfn_sort_r(w->kids, nkids, sizeof(uint32_t), rfn_compare_siblings, w);
        }
        for (size_t i = nkids; i-- > 0;) {
            uint32_t kid = w->kids[i];
            if ((w->sorted || w->nodes[kid].is_dir) && rfn_walk_push(w, kid) < 0) {
                return;
            }
        }
    }
}

static void *
rfn_walk_thread(void *arg)
{
    rfn_walk *w = arg;
    rfn_walk_run(w);
    rfn_walk_close_feed(w);
    return NULL;
}

/* ---- setup and teardown ----------------------------------------------------- */

static void
rfn_walk_dispose(rfn_walk *w)
{
    for (size_t i = 0; w->held_fds > 0 && i < w->nnodes; i++) {
        if (w->nodes[i].fd >= 0) {
            close(w->nodes[i].fd);
            w->nodes[i].fd = -1;
            w->held_fds--;
        }
    }
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
    if (w->have_cond) {
        pthread_cond_destroy(&w->grew);
    }
    if (w->have_lock) {
        pthread_mutex_destroy(&w->lock);
    }
    free(w);
}

/* root: the directory as flash's Path would print it (os.fsencode'd);
 * match_prefix: the code points of its path relative to the base ("" for the
 * base itself). */
static rfn_walk *
rfn_walk_new(const char *root, size_t root_len, const uint32_t *prefix, size_t prefix_len,
             const rfn_matcher *matcher, int sorted)
{
    rfn_walk *w = calloc(1, sizeof(*w));
    if (w == NULL) {
        return NULL;
    }
    w->have_lock = rfn_mutex_init(&w->lock) == 0;
    w->have_cond = w->have_lock && rfn_cond_init(&w->grew) == 0;
    if (!w->have_cond) {
        rfn_walk_dispose(w);
        return NULL;
    }
    w->matcher = matcher;
    w->sorted = sorted;
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

/* ---- back in Python ----------------------------------------------------------- */

static PyObject *
rfn_fsdecode(const char *s, size_t len)
{
    return PyUnicode_DecodeFSDefaultAndSize(s, (Py_ssize_t)len);
}

/* The files in flash's order: depth first, each directory in listing order. */
static PyObject *
rfn_walk_file_list(rfn_walk *w)
{
    /* The path from the root to any node is at most every node. */
    if (RFN_GROW(w, stack, cap_stack, w->nnodes) < 0) {
        return PyErr_NoMemory();
    }
    PyObject *list = PyList_New(0);
    if (list == NULL) {
        return NULL;
    }
    w->nstack = 0;
    uint32_t cur = w->nodes[0].first_child;
    for (;;) {
        while (cur == RFN_NONE && w->nstack > 0) {
            cur = w->nodes[w->stack[--w->nstack]].next;
        }
        if (cur == RFN_NONE) {
            break;
        }
        const rfn_node *n = &w->nodes[cur];
        if (n->is_dir) {
            w->stack[w->nstack++] = cur;
            cur = n->first_child;
            continue;
        }
        if (rfn_walk_dir_strings(w, n->parent) < 0) {
            Py_DECREF(list);
            return PyErr_NoMemory();
        }
        n = &w->nodes[cur];
        const rfn_node *dir = &w->nodes[n->parent];
        uint32_t len;
        const char *path = rfn_join(w, dir->path, dir->path_len, n->name, n->name_len, 1, &len);
        PyObject *s = path ? rfn_fsdecode(path, len) : PyErr_NoMemory();
        if (s == NULL || PyList_Append(list, s) < 0) {
            Py_XDECREF(s);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(s);
        cur = n->next;
    }
    return list;
}

static PyObject *
rfn_walk_warning_list(const rfn_walk *w)
{
    PyObject *list = PyList_New((Py_ssize_t)w->nwarnings);
    for (size_t i = 0; list != NULL && i < w->nwarnings; i++) {
        PyObject *item = Py_BuildValue("(Ni)", rfn_fsdecode(w->warnings[i].path,
                                                            strlen(w->warnings[i].path)),
                                       w->warnings[i].err_no);
        if (item == NULL) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, item);
    }
    return list;
}

static void
rfn_walk_raise(rfn_state *st, const rfn_walk *w)
{
    PyObject *path = w->fail_path ? rfn_fsdecode(w->fail_path, strlen(w->fail_path)) : NULL;
    if (w->fail_path != NULL && path == NULL) {
        return;
    }
    switch (w->failure) {
    case RFN_WALK_OS:
        errno = w->fail_errno;
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, path);
        break;
    case RFN_WALK_LOOP: {
        PyObject *target = w->fail_target ? rfn_fsdecode(w->fail_target, strlen(w->fail_target)) : NULL;
        PyObject *msg = target ? PyUnicode_FromFormat(
            "directory symlink leads back to its ancestor %R (flash would follow it until "
            "the OS refuses and ship every copy)", target) : NULL;
        if (msg != NULL) {
            PyObject *exc = PyObject_CallFunction(st->SymlinkLoopError, "iOO", ELOOP, msg, path);
            if (exc != NULL) {
                PyErr_SetObject(st->SymlinkLoopError, exc);
                Py_DECREF(exc);
            }
        }
        Py_XDECREF(msg);
        Py_XDECREF(target);
        break;
    }
    case RFN_WALK_NOMEM:
        PyErr_NoMemory();
        break;
    case RFN_WALK_CANCELLED:
        if (!PyErr_Occurred()) {
            PyErr_SetNone(PyExc_KeyboardInterrupt);
        }
        break;
    case RFN_WALK_OK:
        break;
    }
    Py_XDECREF(path);
}

/* Arguments shared by both entry points. */
typedef struct {
    PyObject *root_bytes;
    uint32_t *prefix;
    size_t prefix_len;
    const rfn_matcher *matcher;
} rfn_walk_args;

static int
rfn_walk_parse(PyObject *root, PyObject *spec, PyObject *prefix, rfn_walk_args *a)
{
    memset(a, 0, sizeof(*a));
    if (!PyUnicode_Check(root) || !(prefix == Py_None || PyUnicode_Check(prefix))) {
        PyErr_SetString(PyExc_TypeError, "root and prefix must be str");
        return -1;
    }
    if (spec != Py_None && prefix != Py_None) {
        a->matcher = rfn_ignorespec_matcher(spec);
        if (a->matcher == NULL) {
            return -1;
        }
    }
    a->root_bytes = PyUnicode_EncodeFSDefault(root);
    if (a->root_bytes == NULL) {
        return -1;
    }
    if (prefix != Py_None) {
        Py_ssize_t n = PyUnicode_GET_LENGTH(prefix);
        a->prefix = PyMem_Malloc(((size_t)n + 1) * sizeof(uint32_t));
        if (a->prefix == NULL) {
            Py_CLEAR(a->root_bytes);
            PyErr_NoMemory();
            return -1;
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            a->prefix[i] = PyUnicode_READ_CHAR(prefix, i);
        }
        a->prefix_len = (size_t)n;
    }
    return 0;
}

static void
rfn_walk_args_clear(rfn_walk_args *a)
{
    Py_CLEAR(a->root_bytes);
    PyMem_Free(a->prefix);
    a->prefix = NULL;
}

static rfn_walk *
rfn_walk_from_args(const rfn_walk_args *a, int sorted)
{
    rfn_walk *w = rfn_walk_new(PyBytes_AS_STRING(a->root_bytes),
                               (size_t)PyBytes_GET_SIZE(a->root_bytes), a->prefix,
                               a->prefix_len, a->matcher, sorted);
    if (w == NULL) {
        PyErr_NoMemory();
    }
    return w;
}

/* What an entry point took: the walk (NULL if it was never made) and its
 * arguments. */
static void
rfn_walk_finish(rfn_walk *w, rfn_walk_args *a)
{
    if (w != NULL) {
        rfn_walk_dispose(w);
    }
    rfn_walk_args_clear(a);
}

/* walk_files(root, spec, prefix) -> (files, warnings)
 * prefix: root's path relative to the base, or None when root is not under
 * the base (flash then ignores nothing). */
static PyObject *
rfn_walk_files(PyObject *module, PyObject *args)
{
    PyObject *root, *spec, *prefix, *result = NULL, *files = NULL, *warnings = NULL;
    if (!PyArg_ParseTuple(args, "UOO:walk_files", &root, &spec, &prefix)) {
        return NULL;
    }
    rfn_walk_args a;
    if (rfn_walk_parse(root, spec, prefix, &a) < 0) {
        return NULL;
    }
    rfn_walk *w = rfn_walk_from_args(&a, 0);
    if (w == NULL) {
        goto exit;
    }
    Py_BEGIN_ALLOW_THREADS
    rfn_walk_run(w);
    Py_END_ALLOW_THREADS
    warnings = rfn_walk_warning_list(w);
    if (warnings == NULL) {
        goto exit;
    }
    if (w->failure != RFN_WALK_OK) {
        rfn_walk_raise(rfn_get_state(module), w);
        goto exit;
    }
    files = rfn_walk_file_list(w);
    if (files != NULL) {
        result = PyTuple_Pack(2, files, warnings);
    }
exit:
    Py_XDECREF(files);
    Py_XDECREF(warnings);
    rfn_walk_finish(w, &a);
    return result;
}

/* Raise what flash's compute_source_fingerprint would raise for the source at
 * sorted position `index`: its path is root joined with its rel. */
static void
rfn_walk_raise_source(rfn_state *st, rfn_walk *w, const rfn_failure *fail)
{
    const rfn_source *src = &w->blocks[fail->index / RFN_SOURCE_BLOCK][fail->index % RFN_SOURCE_BLOCK];
    PyObject *path = rfn_fsdecode(src->open_path, strlen(src->open_path));
    if (path != NULL) {
        rfn_raise_failure(st, fail, path);
        Py_DECREF(path);
    }
}

/* fingerprint_tree(root, spec, want_files) -> (files or None, hexdigest, warnings)
 * root is walked as flash's get_file_tree(root, spec) and the files are
 * fingerprinted relative to root. */
static PyObject *
rfn_fingerprint_tree(PyObject *module, PyObject *args)
{
    PyObject *root, *spec, *files = NULL, *warnings = NULL, *digest_str = NULL, *result = NULL;
    int want_files;
    if (!PyArg_ParseTuple(args, "UOp:fingerprint_tree", &root, &spec, &want_files)) {
        return NULL;
    }
    rfn_state *st = rfn_get_state(module);
    rfn_walk_args a;
    PyObject *empty = PyUnicode_New(0, 0);
    if (empty == NULL) {
        return NULL;
    }
    int parsed = rfn_walk_parse(root, spec, empty, &a);
    Py_DECREF(empty);
    if (parsed < 0) {
        return NULL;
    }
    rfn_walk *w = rfn_walk_from_args(&a, 1);
    if (w == NULL) {
        goto exit;
    }
    pthread_t walker;
    int err;
    unsigned char digest[RFN_SHA256_LEN];
    rfn_failure fail = {0};
    int rc = -1;
    PyThreadState *ts = PyEval_SaveThread();
    rfn_poller poll = rfn_signal_poller(&ts);
    err = rfn_thread_start(&walker, rfn_walk_thread, w);
    if (err == 0) {
        rc = rfn_hash_feed(st, &w->feed, &poll, digest, &fail);
        if (rc < 0 && fail.kind == RFN_FAIL_INTERRUPTED) {
            rfn_walk_cancel(&w->feed);
        }
        /* Even after a read error, finish the walk: flash walks the whole
         * tree before it hashes, so a walk error takes precedence. */
        pthread_join(walker, NULL);
    }
    PyEval_RestoreThread(ts);
    if (err != 0) {
        errno = err;
        PyErr_SetFromErrno(PyExc_OSError);
        goto exit;
    }
    warnings = rfn_walk_warning_list(w);
    if (warnings == NULL) {
        goto exit;
    }
    if (rc < 0 && fail.kind == RFN_FAIL_INTERRUPTED) {
        rfn_raise_failure(st, &fail, NULL);
        goto exit;
    }
    if (w->failure != RFN_WALK_OK) {
        rfn_walk_raise(st, w);
        goto exit;
    }
    if (rc < 0) {
        rfn_walk_raise_source(st, w, &fail);
        goto exit;
    }
    if (w->feed_stopped) {
        rfn_raise_rel_encode_error(w->encode_fail_rel, w->encode_fail_rel_len);
        goto exit;
    }
    digest_str = rfn_hexdigest(digest);
    if (digest_str == NULL) {
        goto exit;
    }
    if (want_files) {
        files = rfn_walk_file_list(w);
        if (files == NULL) {
            goto exit;
        }
    }
    result = PyTuple_Pack(3, files ? files : Py_None, digest_str, warnings);
exit:
    Py_XDECREF(files);
    Py_XDECREF(digest_str);
    Py_XDECREF(warnings);
    rfn_walk_finish(w, &a);
    return result;
}

static PyMethodDef rfn_walk_methods[] = {
    {"walk_files", rfn_walk_files, METH_VARARGS,
     "walk_files(root, spec, prefix, /)\n--\n\n"
     "-> (files, warnings)\n\n"
     "flash's get_file_tree: files in listing order (depth first). prefix is root's\n"
     "path relative to the base directory, or None to ignore nothing."},
    {"fingerprint_tree", rfn_fingerprint_tree, METH_VARARGS,
     "fingerprint_tree(root, spec, want_files, /)\n--\n\n"
     "-> (files | None, hexdigest, warnings)\n\n"
     "Walk root like get_file_tree and fingerprint the files relative to root,\n"
     "overlapping the walk, the reads and SHA-256."},
    {NULL, NULL, 0, NULL},
};

int
rfn_walk_exec(PyObject *module)
{
    rfn_state *st = rfn_get_state(module);
    if (rfn_add_exception(module, "SymlinkLoopError",
                          "A directory symlink in the project leads back to one of its ancestors.",
                          PyExc_OSError, &st->SymlinkLoopError) < 0) {
        return -1;
    }
    return PyModule_AddFunctions(module, rfn_walk_methods);
}

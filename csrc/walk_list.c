/* Listing one directory of the walk: open it (relative to its parent when
 * the parent is still open), check a directory reached through a symlink for
 * a cycle, then for each entry decide what flash would: skip "." and "..",
 * drop what the ignore spec matches, and keep what stat() (following links)
 * calls a regular file or a directory. Core: no Python.h.
 */
#include "walk_list.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* What one entry is, the way Path.is_file() and Path.is_dir() see it. */
enum rfn_entry_type {
    RFN_ENTRY_OTHER = 0,    /* neither (or gone): skipped */
    RFN_ENTRY_FILE,
    RFN_ENTRY_DIR,
    RFN_ENTRY_DENIED,       /* PermissionError in flash: ends the directory */
    RFN_ENTRY_ERROR,        /* any other OSError: flash raises it */
};

/* What the listing loop does after one entry. */
enum rfn_list_step {
    RFN_LIST_NEXT = 0,
    RFN_LIST_STOP,          /* flash warned: keep what the directory had */
    RFN_LIST_FAIL,          /* li->tree.failure set */
};

/* The ancestor of dir with the same identity, if the walk came back to it. */
static uint32_t
rfn_list_find_cycle(const rfn_lister *li, uint32_t dir)
{
    const rfn_node *d = &li->tree.nodes[dir];
    for (uint32_t a = d->parent; a != RFN_NONE; a = li->tree.nodes[a].parent) {
        if (li->tree.nodes[a].dev == d->dev && li->tree.nodes[a].ino == d->ino) {
            return a;
        }
    }
    return RFN_NONE;
}

/* Make scratch_cps hold directory d's match path: keep what it shares with
 * the directory listed before (in a depth-first walk, usually its parent),
 * re-decode only the rest. */
static int
rfn_list_enter(rfn_lister *li, uint32_t d)
{
    size_t nup = 0;
    uint32_t x = d;
    while (!(li->tree.nodes[x].depth <= li->chain_top && li->chain[li->tree.nodes[x].depth] == x)) {
        if (RFN_GROW(li, up, cap_up, nup + 1) < 0) {
            return -1;
        }
        li->up[nup++] = x;
        x = li->tree.nodes[x].parent;
    }
    li->chain_top = li->tree.nodes[x].depth;
    while (nup > 0) {
        uint32_t y = li->up[--nup];
        const rfn_node *yn = &li->tree.nodes[y];
        size_t o = li->tree.nodes[yn->parent].match_len;
        if (RFN_GROW(li, scratch_cps, cap_scratch, o + 1 + yn->name_len) < 0
            || RFN_GROW(li, chain, cap_chain, (size_t)yn->depth + 1) < 0) {
            return -1;
        }
        if (o > 0) {
            li->scratch_cps[o++] = '/';
        }
        rfn_fsdecode_cps((const unsigned char *)yn->name, yn->name_len, li->scratch_cps + o);
        li->chain[yn->depth] = y;
        li->chain_top = yn->depth;
    }
    return 0;
}

/* Code points of the entry's path relative to the base, in li->scratch_cps
 * right after its directory's (rfn_list_enter(li, d) ran). */
static int
rfn_list_match_path(rfn_lister *li, uint32_t d, const char *name, size_t nlen, size_t *ncps)
{
    size_t o = li->tree.nodes[d].match_len;
    if (RFN_GROW(li, scratch_cps, cap_scratch, o + 1 + nlen) < 0) {
        return -1;
    }
    if (o > 0) {
        li->scratch_cps[o++] = '/';
    }
    o += rfn_fsdecode_cps((const unsigned char *)name, nlen, li->scratch_cps + o);
    *ncps = o;
    return 0;
}

static int
rfn_list_add_entry(rfn_lister *li, uint32_t d, const char *name, size_t nlen, int is_dir,
                   int via_symlink, size_t ncps)
{
    uint32_t c = rfn_tree_new_node(&li->tree);
    char *copy = rfn_arena_alloc(&li->tree.arena, nlen + 1);
    if (c == RFN_NONE || copy == NULL) {
        return -1;
    }
    memcpy(copy, name, nlen + 1);
    rfn_node *n = &li->tree.nodes[c];
    n->name = copy;
    n->name_len = (uint32_t)nlen;
    n->parent = d;
    n->is_dir = (uint8_t)is_dir;
    n->via_symlink = (uint8_t)via_symlink;
    size_t base = li->tree.nodes[d].match_len + (li->tree.nodes[d].match_len > 0);
    if (rfn_tree_set_key(&li->tree, n, li->scratch_cps + base, ncps - base) < 0) {
        return -1;
    }
    if (is_dir) {
        const rfn_node *dn = &li->tree.nodes[d];
        n = &li->tree.nodes[c];
        n->match_len = (uint32_t)ncps;
        n->depth = dn->depth + 1;
        n->rel_is_utf8 = dn->rel_is_utf8 && n->key_is_utf8;
        if (li->matcher != NULL) {
            const unsigned char *parent_bits = dn->bits;
            size_t blen = rfn_matcher_bits_len(li->matcher);
            unsigned char *bits = rfn_arena_alloc(&li->tree.arena, blen ? blen : 1);
            if (bits == NULL
                || rfn_matcher_walk_entry(li->matcher, li->scratch_cps, ncps, parent_bits, bits) < 0) {
                return -1;
            }
            li->tree.nodes[c].bits = bits;
        }
    }
    rfn_tree_link_child(&li->tree, d, c);
    return RFN_GROW(li, kids, cap_kids, li->tree.nnodes) < 0 ? -1 : 0;
}

/* Directory d's path for a message or warning, or NULL (out of memory). */
static const char *
rfn_list_dir_path(rfn_lister *li, uint32_t d, size_t *len)
{
    if (rfn_tree_dir_strings(&li->tree, d) < 0) {
        return NULL;
    }
    *len = li->tree.nodes[d].path_len;
    return li->tree.nodes[d].path;
}

/* Fail the walk with OS error err_no on directory d. Returns RFN_LIST_FAIL. */
static int
rfn_list_fail_dir(rfn_lister *li, uint32_t d, int err_no)
{
    size_t len;
    const char *path = rfn_list_dir_path(li, d, &len);
    if (path == NULL) {
        li->tree.failure = RFN_WALK_NOMEM;
        return RFN_LIST_FAIL;
    }
    rfn_tree_fail(&li->tree, RFN_WALK_OS, err_no, path, len);
    return RFN_LIST_FAIL;
}

/* Record flash's warning for directory d (a PermissionError). Returns
 * RFN_LIST_STOP, or RFN_LIST_FAIL out of memory. */
static int
rfn_list_warn_dir(rfn_lister *li, uint32_t d, int err_no)
{
    size_t len;
    const char *path = rfn_list_dir_path(li, d, &len);
    if (path == NULL || rfn_tree_warn(&li->tree, path, len, err_no) < 0) {
        li->tree.failure = RFN_WALK_NOMEM;
        return RFN_LIST_FAIL;
    }
    return RFN_LIST_STOP;
}

/* Fail the walk with OS error err_no on entry name of directory d. */
static int
rfn_list_fail_entry(rfn_lister *li, uint32_t d, const char *name, size_t nlen, int err_no)
{
    size_t plen;
    uint32_t len;
    const char *path = rfn_list_dir_path(li, d, &plen);
    const char *p = path == NULL ? NULL : rfn_tree_join(&li->tree, path, plen, name, nlen, 1, &len);
    if (p == NULL) {
        li->tree.failure = RFN_WALK_NOMEM;
        return RFN_LIST_FAIL;
    }
    rfn_tree_fail(&li->tree, RFN_WALK_OS, err_no, p, len);
    return RFN_LIST_FAIL;
}

/* A directory reached through a symlink must not be one of its ancestors
 * (flash would follow the cycle until ELOOP and ship every copy). */
static int
rfn_list_check_symlink_loop(rfn_lister *li, uint32_t d)
{
    if (!li->tree.nodes[d].via_symlink) {
        return RFN_LIST_NEXT;
    }
    uint32_t a = rfn_list_find_cycle(li, d);
    if (a == RFN_NONE) {
        return RFN_LIST_NEXT;
    }
    size_t alen, plen;
    const char *apath = rfn_list_dir_path(li, a, &alen);
    const char *path = apath == NULL ? NULL : rfn_list_dir_path(li, d, &plen);
    if (path == NULL) {
        li->tree.failure = RFN_WALK_NOMEM;
        return RFN_LIST_FAIL;
    }
    rfn_tree_fail(&li->tree, RFN_WALK_LOOP, ELOOP, path, plen);
    li->tree.fail_target = rfn_tree_strndup(apath, alen);
    return RFN_LIST_FAIL;
}

static int
rfn_list_is_dot(const char *name)
{
    return name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
}

/* 1 when flash drops the entry before it stat()s it (the ignore spec
 * matches its path; "." and ".." never reach here), 0 to keep it, -1 out of
 * memory. *ncps: its match path's length in li->scratch_cps. */
static int
rfn_list_should_skip_entry(rfn_lister *li, uint32_t d, const char *name, size_t nlen,
                           size_t *ncps)
{
    if (rfn_list_match_path(li, d, name, nlen, ncps) < 0) {
        return -1;
    }
    if (li->matcher == NULL) {
        return 0;
    }
    return rfn_matcher_walk_entry(li->matcher, li->scratch_cps, *ncps, li->tree.nodes[d].bits, NULL);
}

/* What stat() says about a kept entry. d_type answers for regular files,
 * directories and special files when the directory is searchable (stat()
 * would succeed); symlinks and unknown types took the stat that follows
 * links when the listing was fetched. *err: the errno of DENIED and ERROR. */
static enum rfn_entry_type
rfn_list_entry_type(const rfn_entry_head *e, int searchable, int *via_symlink, int *err)
{
    /* Without d_type we cannot tell a symlink: check those for cycles too. */
    *via_symlink = e->d_type != DT_DIR;
    if (searchable) {
        switch (e->d_type) {
        case DT_REG: return RFN_ENTRY_FILE;
        case DT_DIR: return RFN_ENTRY_DIR;
        case DT_LNK: case DT_UNKNOWN: break;
        default: return RFN_ENTRY_OTHER;  /* FIFO, socket, device */
        }
    }
    if (e->stat_state == 1) {
        return S_ISREG(e->st_type) ? RFN_ENTRY_FILE
               : S_ISDIR(e->st_type) ? RFN_ENTRY_DIR : RFN_ENTRY_OTHER;
    }
    *err = e->stat_errno;
    switch (*err) {
    case ENOENT: case ENOTDIR: case EBADF: case ELOOP:
        return RFN_ENTRY_OTHER;  /* pathlib: "not a file, not a directory" */
    case EACCES: case EPERM:
        return RFN_ENTRY_DENIED;
    default:
        return RFN_ENTRY_ERROR;
    }
}

/* One fetched entry of directory d: skip it, record it (its node id
 * appended to li->kids), or end the directory. */
static int
rfn_list_entry(rfn_lister *li, uint32_t d, const rfn_entry_head *e, const char *name,
                    int searchable, size_t *nkids, size_t *ndirs)
{
    size_t nlen = e->name_len, ncps;
    int skip = rfn_list_should_skip_entry(li, d, name, nlen, &ncps);
    if (skip != 0) {
        if (skip < 0) {
            li->tree.failure = RFN_WALK_NOMEM;
            return RFN_LIST_FAIL;
        }
        return RFN_LIST_NEXT;
    }
    int via_symlink, err = 0;
    enum rfn_entry_type type = rfn_list_entry_type(e, searchable, &via_symlink, &err);
    switch (type) {
    case RFN_ENTRY_OTHER:
        return RFN_LIST_NEXT;
    case RFN_ENTRY_DENIED:
        /* flash: PermissionError from is_file() ends this directory. */
        return rfn_list_warn_dir(li, d, err);
    case RFN_ENTRY_ERROR:
        return rfn_list_fail_entry(li, d, name, nlen, err);
    case RFN_ENTRY_FILE:
    case RFN_ENTRY_DIR:
        break;
    }
    int is_dir = type == RFN_ENTRY_DIR;
    if (rfn_list_add_entry(li, d, name, nlen, is_dir, via_symlink, ncps) < 0) {
        li->tree.failure = RFN_WALK_NOMEM;
        return RFN_LIST_FAIL;
    }
    li->kids[(*nkids)++] = (uint32_t)(li->tree.nnodes - 1);
    *ndirs += (size_t)is_dir;
    return RFN_LIST_NEXT;
}

/* ---- fetching: the system calls (any thread) --------------------------------- */

void
rfn_list_release(rfn_lister *li, rfn_fdref *ref)
{
    pthread_mutex_lock(&li->lock);
    if (--ref->pending == 0) {
        close(ref->fd);
        ref->fd = -1;
        li->held_fds--;
    }
    pthread_mutex_unlock(&li->lock);
}

void
rfn_list_clear(rfn_listing *l)
{
    free(l->buf);
    l->buf = NULL;
    l->len = l->cap = 0;
    if (l->fd >= 0) {
        close(l->fd);
        l->fd = -1;
    }
}

/* Open the task's directory: relative to its parent's descriptor while the
 * parent holds one (no path resolution from the root: a tree 10,000 deep
 * opens in linear time), else by its full path. */
static int
rfn_list_open_task(rfn_lister *li, const rfn_task *t)
{
    const int flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;
    if (t->parent == NULL) {
        return rfn_open_long(t->path, flags);
    }
    int fd = openat(t->parent->fd, t->name, flags);
    int saved = errno;
    rfn_list_release(li, t->parent);
    errno = saved;
    return fd;
}

/* Append one entry; stat() it (following links) where d_type will not do. */
static int
rfn_list_add(rfn_listing *l, int fd, const char *name, unsigned char d_type)
{
    size_t nlen = strlen(name);
    size_t need = (sizeof(rfn_entry_head) + nlen + 1 + 3) & ~(size_t)3;
    if (nlen > UINT16_MAX) {
        errno = ENAMETOOLONG;
        return -1;
    }
    if (l->cap - l->len < need) {
        size_t cap = l->cap ? l->cap * 2 : 4096;
        while (cap - l->len < need) {
            cap *= 2;
        }
        unsigned char *buf = realloc(l->buf, cap);
        if (buf == NULL) {
            errno = ENOMEM;
            return -1;
        }
        l->buf = buf;
        l->cap = cap;
    }
    rfn_entry_head e = {.name_len = (uint16_t)nlen, .d_type = d_type};
    if (!l->searchable || d_type == DT_LNK || d_type == DT_UNKNOWN) {
        struct stat st;
        if (fstatat(fd, name, &st, 0) == 0) {
            e.stat_state = 1;
            e.st_type = (uint32_t)(st.st_mode & S_IFMT);
        }
        else {
            e.stat_state = 2;
            e.stat_errno = errno;
        }
    }
    l->ndirs += d_type == DT_DIR || (e.stat_state == 1 && S_ISDIR(e.st_type));
    memcpy(l->buf + l->len, &e, sizeof(e));
    memcpy(l->buf + l->len + sizeof(e), name, nlen + 1);
    l->len += need;
    return 0;
}

/* Read every entry but "." and "..". Returns 0, or -1 out of memory. */
static int
rfn_list_read(rfn_lister *li, rfn_listing *l, int fd, rfn_dir *dir)
{
    if (rfn_dir_open(dir, fd) < 0) {
        if (errno == ENOMEM) {
            return -1;
        }
        l->read_err = errno;
        return 0;
    }
    int rc = 0;
    for (;;) {
        if (rfn_cancelled(&li->cancel)) {
            l->read_err = ECANCELED;
            break;
        }
        const char *name;
        unsigned char type;
        int got = rfn_dir_next(dir, &name, &type);
        if (got <= 0) {
            l->read_err = got < 0 ? errno : 0;
            break;
        }
        if (!rfn_list_is_dot(name) && rfn_list_add(l, fd, name, type) < 0) {
            if (errno == ENOMEM) {
                rc = -1;
                break;
            }
            l->read_err = errno;
            break;
        }
    }
    rfn_dir_close(dir);
    return rc;
}

int
rfn_list_fetch(rfn_lister *li, rfn_task *t, rfn_dir *dir)
{
    rfn_listing *l = &t->out;
    memset(l, 0, sizeof(*l));
    l->fd = -1;
    int fd = rfn_list_open_task(li, t);
    if (fd < 0) {
        l->open_err = errno;
        return 0;
    }
    /* "." needs search permission: without it every stat() of an entry
     * fails. */
    struct stat self;
    l->searchable = fstatat(fd, ".", &self, 0) == 0;
    if (!l->searchable && fstat(fd, &self) != 0) {
        l->stat_err = errno;
        close(fd);
        return 0;
    }
    l->dev = self.st_dev;
    l->ino = self.st_ino;
    int rc = rfn_list_read(li, l, fd, dir);
    if (rc == 0 && l->ndirs > 0) {
        l->fd = fd;
    }
    else {
        close(fd);
    }
    return rc;
}

/* ---- consuming: in the walk's order ------------------------------------------ */

/* Keep directory d's descriptor for its ndirs child directories to open
 * relative to, within RFN_MAX_HELD_FDS; else close it. */
static void
rfn_list_hold(rfn_lister *li, uint32_t d, rfn_listing *l, size_t ndirs)
{
    int fd = l->fd;
    l->fd = -1;
    if (fd < 0) {
        return;
    }
    rfn_fdref *ref = ndirs > 0 ? rfn_arena_alloc(&li->tree.arena, sizeof(*ref)) : NULL;
    int kept = 0;
    if (ref != NULL) {
        pthread_mutex_lock(&li->lock);
        kept = li->held_fds < RFN_MAX_HELD_FDS;
        li->held_fds += (size_t)kept;
        pthread_mutex_unlock(&li->lock);
    }
    if (!kept) {
        close(fd);
        return;
    }
    ref->fd = fd;
    ref->pending = (uint32_t)ndirs;
    li->tree.nodes[d].held = ref;
}

/* What the fetch of directory d says before its entries: go on, warn (flash's
 * PermissionError listing it) or fail. */
static int
rfn_list_check(rfn_lister *li, uint32_t d, const rfn_listing *l)
{
    int err = l->open_err ? l->open_err : l->stat_err;
    if (err == 0) {
        li->tree.nodes[d].dev = l->dev;
        li->tree.nodes[d].ino = l->ino;
        return rfn_list_check_symlink_loop(li, d);
    }
    if (err == ENOMEM) {
        li->tree.failure = RFN_WALK_NOMEM;
        return RFN_LIST_FAIL;
    }
    if (l->open_err && (err == EACCES || err == EPERM)) {
        return rfn_list_warn_dir(li, d, err);
    }
    return rfn_list_fail_dir(li, d, err);
}

/* The entries of l in listing order, then its read error. */
static int
rfn_list_consume_entries(rfn_lister *li, uint32_t d, const rfn_listing *l, size_t *nkids,
                         size_t *ndirs)
{
    for (size_t o = 0; o < l->len;) {
        rfn_entry_head e;
        memcpy(&e, l->buf + o, sizeof(e));
        const char *name = (const char *)l->buf + o + sizeof(e);
        int step = rfn_list_entry(li, d, &e, name, l->searchable, nkids, ndirs);
        if (step != RFN_LIST_NEXT) {
            return step;
        }
        o += (sizeof(e) + e.name_len + 1 + 3) & ~(size_t)3;
    }
    if (l->read_err == ECANCELED && rfn_cancelled(&li->cancel)) {
        li->tree.failure = RFN_WALK_CANCELLED;
        return RFN_LIST_FAIL;
    }
    return l->read_err != 0 ? rfn_list_fail_dir(li, d, l->read_err) : RFN_LIST_NEXT;
}

int
rfn_list_consume(rfn_lister *li, uint32_t d, rfn_listing *l, size_t *nkids)
{
    *nkids = 0;
    size_t ndirs = 0;
    int step;
    if (rfn_list_enter(li, d) < 0) {
        li->tree.failure = RFN_WALK_NOMEM;
        step = RFN_LIST_FAIL;
    }
    else {
        step = rfn_list_check(li, d, l);
    }
    if (step == RFN_LIST_NEXT) {
        step = rfn_list_consume_entries(li, d, l, nkids, &ndirs);
    }
    if (step == RFN_LIST_FAIL) {
        ndirs = 0;
    }
    rfn_list_hold(li, d, l, ndirs);
    rfn_list_clear(l);
    return step == RFN_LIST_FAIL ? -1 : 0;
}

/* ---- setup and teardown ------------------------------------------------------- */

int
rfn_list_init(rfn_lister *li, const char *root, size_t root_len, const uint32_t *prefix,
              size_t prefix_len, const rfn_matcher *matcher)
{
    li->have_lock = rfn_mutex_init(&li->lock) == 0;
    if (!li->have_lock || rfn_tree_init(&li->tree, root, root_len) < 0
        || prefix_len >= UINT32_MAX || RFN_GROW(li, scratch_cps, cap_scratch, prefix_len + 1) < 0
        || RFN_GROW(li, chain, cap_chain, 1) < 0) {
        return -1;
    }
    li->matcher = matcher;
    unsigned char *bits = NULL;
    if (matcher != NULL && prefix_len > 0) {
        size_t blen = rfn_matcher_bits_len(matcher);
        bits = rfn_arena_alloc(&li->tree.arena, blen ? blen : 1);
        if (bits == NULL || rfn_matcher_prefix_bits(matcher, prefix, prefix_len, bits) < 0) {
            return -1;
        }
    }
    if (prefix_len > 0) {
        /* prefix is NULL when root is not under the base: memcpy(_, NULL, 0)
         * is undefined behaviour (UBSan: nonnull-attribute). */
        memcpy(li->scratch_cps, prefix, prefix_len * sizeof(uint32_t));
    }
    li->chain[0] = 0;
    li->chain_top = 0;
    li->tree.nodes[0].bits = bits;
    li->tree.nodes[0].match_len = (uint32_t)prefix_len;
    return 0;
}

void
rfn_list_dispose(rfn_lister *li)
{
    for (size_t i = 0; i < li->tree.nnodes; i++) {
        if (li->tree.nodes[i].task != NULL) {
            rfn_list_clear(&li->tree.nodes[i].task->out);
        }
    }
    rfn_tree_dispose(&li->tree);
    rfn_dir_free(&li->dir);
    free(li->chain);
    free(li->up);
    free(li->kids);
    free(li->scratch_cps);
    if (li->have_lock) {
        pthread_mutex_destroy(&li->lock);
    }
}

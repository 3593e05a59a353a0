/* Listing one directory of the walk: open it (relative to its parent when
 * the parent is still open), check a directory reached through a symlink for
 * a cycle, then for each entry decide what flash would: skip "." and "..",
 * drop what the ignore spec matches, and keep what stat() (following links)
 * calls a regular file or a directory. Core: no Python.h.
 */
#include "walk.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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
    RFN_LIST_FAIL,          /* w->failure set */
};

/* The ancestor of dir with the same identity, if the walk came back to it. */
static uint32_t
rfn_walk_find_cycle(const rfn_walker *w, uint32_t dir)
{
    const rfn_node *d = &w->nodes[dir];
    for (uint32_t a = d->parent; a != RFN_NONE; a = w->nodes[a].parent) {
        if (w->nodes[a].dev == d->dev && w->nodes[a].ino == d->ino) {
            return a;
        }
    }
    return RFN_NONE;
}

/* Make scratch_cps hold directory d's match path: keep what it shares with
 * the directory listed before (in a depth-first walk, usually its parent),
 * re-decode only the rest. */
static int
rfn_walk_enter(rfn_walker *w, uint32_t d)
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
rfn_walk_open_dir(rfn_walker *w, uint32_t d)
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

/* Code points of the entry's path relative to the base, in w->scratch_cps
 * right after its directory's (rfn_walk_enter(w, d) ran). */
static int
rfn_walk_match_path(rfn_walker *w, uint32_t d, const char *name, size_t nlen, size_t *ncps)
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
rfn_walk_add_entry(rfn_walker *w, uint32_t d, const char *name, size_t nlen, int is_dir,
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
    if (rfn_walk_set_key(w, n, w->scratch_cps + base, ncps - base) < 0) {
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

/* Directory d's path for a message or warning, or NULL (out of memory). */
static const char *
rfn_walk_dir_path(rfn_walker *w, uint32_t d, size_t *len)
{
    if (rfn_walk_dir_strings(w, d) < 0) {
        return NULL;
    }
    *len = w->nodes[d].path_len;
    return w->nodes[d].path;
}

/* Fail the walk with OS error err_no on directory d. Returns RFN_LIST_FAIL. */
static int
rfn_walk_fail_dir(rfn_walker *w, uint32_t d, int err_no)
{
    size_t len;
    const char *path = rfn_walk_dir_path(w, d, &len);
    if (path == NULL) {
        w->failure = RFN_WALK_NOMEM;
        return RFN_LIST_FAIL;
    }
    rfn_walk_fail(w, RFN_WALK_OS, err_no, path, len);
    return RFN_LIST_FAIL;
}

/* Record flash's warning for directory d (a PermissionError). Returns
 * RFN_LIST_STOP, or RFN_LIST_FAIL out of memory. */
static int
rfn_walk_warn_dir(rfn_walker *w, uint32_t d, int err_no)
{
    size_t len;
    const char *path = rfn_walk_dir_path(w, d, &len);
    if (path == NULL || rfn_walk_warn(w, path, len, err_no) < 0) {
        w->failure = RFN_WALK_NOMEM;
        return RFN_LIST_FAIL;
    }
    return RFN_LIST_STOP;
}

/* Fail the walk with OS error err_no on entry name of directory d. */
static int
rfn_walk_fail_entry(rfn_walker *w, uint32_t d, const char *name, size_t nlen, int err_no)
{
    size_t plen;
    uint32_t len;
    const char *path = rfn_walk_dir_path(w, d, &plen);
    const char *p = path == NULL ? NULL : rfn_walk_join(w, path, plen, name, nlen, 1, &len);
    if (p == NULL) {
        w->failure = RFN_WALK_NOMEM;
        return RFN_LIST_FAIL;
    }
    rfn_walk_fail(w, RFN_WALK_OS, err_no, p, len);
    return RFN_LIST_FAIL;
}

/* Open directory d into *fd. Returns RFN_LIST_NEXT (opened), RFN_LIST_STOP
 * (flash warns and moves on) or RFN_LIST_FAIL. */
static int
rfn_walk_open_listing(rfn_walker *w, uint32_t d, int *fd)
{
    *fd = rfn_walk_open_dir(w, d);
    if (*fd >= 0) {
        return RFN_LIST_NEXT;
    }
    int err = errno;
    if (err == ENOMEM) {
        w->failure = RFN_WALK_NOMEM;
        return RFN_LIST_FAIL;
    }
    if (err == EACCES || err == EPERM) {
        return rfn_walk_warn_dir(w, d, err);
    }
    return rfn_walk_fail_dir(w, d, err);
}

/* Record directory d's identity (for cycles) and whether it can be searched:
 * "." needs search permission, without which every stat() of an entry
 * fails. */
static int
rfn_walk_identify(rfn_walker *w, uint32_t d, int fd, int *searchable)
{
    struct stat self;
    *searchable = fstatat(fd, ".", &self, 0) == 0;
    if (!*searchable && fstat(fd, &self) != 0) {
        return rfn_walk_fail_dir(w, d, errno);
    }
    w->nodes[d].dev = self.st_dev;
    w->nodes[d].ino = self.st_ino;
    return RFN_LIST_NEXT;
}

/* A directory reached through a symlink must not be one of its ancestors
 * (flash would follow the cycle until ELOOP and ship every copy). */
static int
rfn_walk_check_symlink_loop(rfn_walker *w, uint32_t d)
{
    if (!w->nodes[d].via_symlink) {
        return RFN_LIST_NEXT;
    }
    uint32_t a = rfn_walk_find_cycle(w, d);
    if (a == RFN_NONE) {
        return RFN_LIST_NEXT;
    }
    size_t alen, plen;
    const char *apath = rfn_walk_dir_path(w, a, &alen);
    const char *path = apath == NULL ? NULL : rfn_walk_dir_path(w, d, &plen);
    if (path == NULL) {
        w->failure = RFN_WALK_NOMEM;
        return RFN_LIST_FAIL;
    }
    rfn_walk_fail(w, RFN_WALK_LOOP, ELOOP, path, plen);
    w->fail_target = rfn_walk_strndup(apath, alen);
    return RFN_LIST_FAIL;
}

static int
rfn_walk_is_dot(const char *name)
{
    return name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
}

/* 1 when flash drops the entry before it stat()s it ("." and "..", or the
 * ignore spec matches its path), 0 to keep it, -1 out of memory. *ncps: its
 * match path's length in w->scratch_cps. */
static int
rfn_walk_should_skip_entry(rfn_walker *w, uint32_t d, const char *name, size_t nlen,
                           size_t *ncps)
{
    if (rfn_walk_is_dot(name)) {
        return 1;
    }
    if (rfn_walk_match_path(w, d, name, nlen, ncps) < 0) {
        return -1;
    }
    if (w->matcher == NULL) {
        return 0;
    }
    return rfn_matcher_walk_entry(w->matcher, w->scratch_cps, *ncps, w->nodes[d].bits, NULL);
}

/* What stat() says about a kept entry. d_type answers for regular files,
 * directories and special files when the directory is searchable (stat()
 * would succeed); symlinks and unknown types take the stat that follows
 * links. errno is left set for DENIED and ERROR. */
static enum rfn_entry_type
rfn_walk_entry_type(int dirfd, const char *name, unsigned char d_type, int searchable,
                    int *via_symlink)
{
    /* Without d_type we cannot tell a symlink: check those for cycles too. */
    *via_symlink = d_type != DT_DIR;
    if (searchable) {
        switch (d_type) {
        case DT_REG: return RFN_ENTRY_FILE;
        case DT_DIR: return RFN_ENTRY_DIR;
        case DT_LNK: case DT_UNKNOWN: break;
        default: return RFN_ENTRY_OTHER;  /* FIFO, socket, device */
        }
    }
    struct stat st;
    if (fstatat(dirfd, name, &st, 0) == 0) {
        return S_ISREG(st.st_mode) ? RFN_ENTRY_FILE
               : S_ISDIR(st.st_mode) ? RFN_ENTRY_DIR : RFN_ENTRY_OTHER;
    }
    switch (errno) {
    case ENOENT: case ENOTDIR: case EBADF: case ELOOP:
        return RFN_ENTRY_OTHER;  /* pathlib: "not a file, not a directory" */
    case EACCES: case EPERM:
        return RFN_ENTRY_DENIED;
    default:
        return RFN_ENTRY_ERROR;
    }
}

/* One listed entry of directory d (open as dirfd): skip it, record it (its
 * node id appended to w->kids), or end the directory. */
static int
rfn_walk_list_entry(rfn_walker *w, uint32_t d, int dirfd, const char *name,
                    unsigned char d_type, int searchable, size_t *nkids, size_t *ndirs)
{
    size_t nlen = strlen(name), ncps;
    int skip = rfn_walk_should_skip_entry(w, d, name, nlen, &ncps);
    if (skip != 0) {
        if (skip < 0) {
            w->failure = RFN_WALK_NOMEM;
            return RFN_LIST_FAIL;
        }
        return RFN_LIST_NEXT;
    }
    int via_symlink;
    enum rfn_entry_type type = rfn_walk_entry_type(dirfd, name, d_type, searchable,
                                                   &via_symlink);
    switch (type) {
    case RFN_ENTRY_OTHER:
        return RFN_LIST_NEXT;
    case RFN_ENTRY_DENIED:
        /* flash: PermissionError from is_file() ends this directory. */
        return rfn_walk_warn_dir(w, d, errno);
    case RFN_ENTRY_ERROR:
        return rfn_walk_fail_entry(w, d, name, nlen, errno);
    case RFN_ENTRY_FILE:
    case RFN_ENTRY_DIR:
        break;
    }
    int is_dir = type == RFN_ENTRY_DIR;
    if (rfn_walk_add_entry(w, d, name, nlen, is_dir, via_symlink, ncps) < 0) {
        w->failure = RFN_WALK_NOMEM;
        return RFN_LIST_FAIL;
    }
    w->kids[(*nkids)++] = (uint32_t)(w->nnodes - 1);
    *ndirs += (size_t)is_dir;
    return RFN_LIST_NEXT;
}

/* Keep directory d's descriptor open for its child directories to open
 * relative to. Returns 1 when kept (the caller must not close it). */
static int
rfn_walk_hold_fd(rfn_walker *w, uint32_t d, int fd, size_t ndirs)
{
    if (ndirs == 0 || w->held_fds >= RFN_MAX_HELD_FDS) {
        return 0;
    }
    w->nodes[d].fd = fd;
    w->nodes[d].pending_dirs = (uint32_t)ndirs;
    w->held_fds++;
    return 1;
}

/* Read directory d's entries (open as fd). */
static int
rfn_walk_read_entries(rfn_walker *w, uint32_t d, int fd, int searchable, size_t *nkids,
                      size_t *ndirs)
{
    if (rfn_dir_open(&w->dir, fd) < 0) {
        return rfn_walk_fail_dir(w, d, errno);
    }
    int step = RFN_LIST_NEXT;
    for (;;) {
        if (rfn_cancelled(&w->cancel)) {
            w->failure = RFN_WALK_CANCELLED;
            step = RFN_LIST_FAIL;
            break;
        }
        const char *name;
        unsigned char type;
        int got = rfn_dir_next(&w->dir, &name, &type);
        if (got <= 0) {
            if (got < 0) {
                step = rfn_walk_fail_dir(w, d, errno);
            }
            break;
        }
        step = rfn_walk_list_entry(w, d, fd, name, type, searchable, nkids, ndirs);
        if (step != RFN_LIST_NEXT) {
            break;
        }
    }
    rfn_dir_close(&w->dir);
    return step;
}

int
rfn_walk_list(rfn_walker *w, uint32_t d, size_t *nkids)
{
    *nkids = 0;
    int fd, searchable;
    if (rfn_walk_enter(w, d) < 0) {
        w->failure = RFN_WALK_NOMEM;
        return -1;
    }
    int step = rfn_walk_open_listing(w, d, &fd);
    if (step != RFN_LIST_NEXT) {
        return step == RFN_LIST_STOP ? 0 : -1;
    }
    step = rfn_walk_identify(w, d, fd, &searchable);
    if (step == RFN_LIST_NEXT) {
        step = rfn_walk_check_symlink_loop(w, d);
    }
    size_t ndirs = 0;
    if (step == RFN_LIST_NEXT) {
        step = rfn_walk_read_entries(w, d, fd, searchable, nkids, &ndirs);
    }
    if (step == RFN_LIST_FAIL || !rfn_walk_hold_fd(w, d, fd, ndirs)) {
        close(fd);
    }
    return step == RFN_LIST_FAIL ? -1 : 0;
}

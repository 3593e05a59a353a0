/* The bottom of the project walk: the arena, the recorded tree, failures and
 * warnings (walk_tree.h). Core: no Python.h.
 */
#include "walk_tree.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "utf8.h"

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

void
rfn_arena_free(rfn_arena *a)
{
    while (a->head != NULL) {
        rfn_arena_block *next = a->head->next;
        free(a->head);
        a->head = next;
    }
}

char *
rfn_tree_strndup(const char *s, size_t n)
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
rfn_tree_fail(rfn_tree *t, enum rfn_walk_failure kind, int err_no, const char *path, size_t len)
{
    if (t->failure != RFN_WALK_OK) {
        return;
    }
    t->failure = kind;
    t->fail_errno = err_no;
    if (path != NULL) {
        t->fail_path = rfn_tree_strndup(path, len);
        if (t->fail_path == NULL) {
            t->failure = RFN_WALK_NOMEM;
        }
    }
}

int
rfn_tree_warn(rfn_tree *t, const char *path, size_t len, int err_no)
{
    if (RFN_GROW(t, warnings, cap_warnings, t->nwarnings + 1) < 0) {
        return -1;
    }
    char *copy = rfn_tree_strndup(path, len);
    if (copy == NULL) {
        return -1;
    }
    t->warnings[t->nwarnings].path = copy;
    t->warnings[t->nwarnings].err_no = err_no;
    t->nwarnings++;
    return 0;
}

/* ---- names ---------------------------------------------------------------- */

/* The sort key of a name: itself when it is UTF-8, else Python's view of it
 * (surrogateescape) encoded with surrogatepass, which sorts like the str. */
int
rfn_tree_set_key(rfn_tree *t, rfn_node *n, const uint32_t *cps, size_t ncps)
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
    char *key = rfn_arena_alloc(&t->arena, ncps * 4);
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
rfn_tree_join(rfn_tree *t, const char *parent, size_t plen, const char *name, size_t nlen,
              int dot_is_empty, uint32_t *out_len)
{
    if (dot_is_empty && plen == 1 && parent[0] == '.') {
        plen = 0;
    }
    size_t sep = plen > 0 && parent[plen - 1] != '/';
    char *p = rfn_arena_alloc(&t->arena, plen + sep + nlen + 1);
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
rfn_tree_new_node(rfn_tree *t)
{
    if (t->nnodes >= RFN_NONE - 1 || RFN_GROW(t, nodes, cap_nodes, t->nnodes + 1) < 0) {
        return RFN_NONE;
    }
    rfn_node *n = &t->nodes[t->nnodes];
    memset(n, 0, sizeof(*n));
    n->parent = n->next = n->first_child = n->last_child = RFN_NONE;
    return (uint32_t)t->nnodes++;
}

void
rfn_tree_link_child(rfn_tree *t, uint32_t dir, uint32_t child)
{
    rfn_node *d = &t->nodes[dir];
    if (d->last_child == RFN_NONE) {
        d->first_child = child;
    }
    else {
        t->nodes[d->last_child].next = child;
    }
    d->last_child = child;
}

/* Build (and keep on the node) the path and rel of directory d from its
 * ancestors' names, the way rfn_tree_join would have joined them level by
 * level: the root's path "." vanishes, no "/" after a root ending in "/". */
int
rfn_tree_dir_strings(rfn_tree *t, uint32_t d)
{
    if (t->nodes[d].path != NULL) {
        return 0;
    }
    size_t plen = 0, rlen = 0, steps = 0;
    uint32_t a = d;
    while (t->nodes[a].path == NULL) {
        plen += t->nodes[a].name_len + 1;
        rlen += t->nodes[a].key_len + 1;
        a = t->nodes[a].parent;
        steps++;
    }
    if (steps > 32) {
        /* Directories opened relative to their parents have no strings; a
         * deep one's files come first in sorted order ("d/" < "m.py"), then
         * its parent's, and so on up: give the ancestor halfway its strings
         * too, or each call would walk the whole chain again. */
        uint32_t mid = d;
        for (size_t i = 0; i < steps / 2; i++) {
            mid = t->nodes[mid].parent;
        }
        return rfn_tree_dir_strings(t, mid) < 0 ? -1 : rfn_tree_dir_strings(t, d);
    }
    const rfn_node *an = &t->nodes[a];
    size_t pbase = an->path_len == 1 && an->path[0] == '.' ? 0 : an->path_len;
    size_t psep = pbase > 0 && an->path[pbase - 1] != '/';
    size_t rbase = an->rel_len;
    size_t rsep = rbase > 0 && an->rel[rbase - 1] != '/';
    size_t ptotal = pbase + psep + plen - 1, rtotal = rbase + rsep + rlen - 1;
    if (ptotal >= UINT32_MAX || rtotal >= UINT32_MAX) {
        return -1;
    }
    char *path = rfn_arena_alloc(&t->arena, ptotal + 1);
    char *rel = rfn_arena_alloc(&t->arena, rtotal + 1);
    if (path == NULL || rel == NULL) {
        return -1;
    }
    an = &t->nodes[a];
    size_t po = ptotal, ro = rtotal;
    path[po] = rel[ro] = '\0';
    for (uint32_t x = d; x != a; x = t->nodes[x].parent) {
        const rfn_node *xn = &t->nodes[x];
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
    rfn_node *n = &t->nodes[d];
    n->path = path;
    n->path_len = (uint32_t)ptotal;
    n->rel = rel;
    n->rel_len = (uint32_t)rtotal;
    return 0;
}

/* ---- setup and teardown ----------------------------------------------------- */

int
rfn_tree_init(rfn_tree *t, const char *root, size_t root_len)
{
    uint32_t root_node = rfn_tree_new_node(t);
    char *path = rfn_arena_alloc(&t->arena, root_len + 1);
    if (root_node == RFN_NONE || path == NULL || root_len >= UINT32_MAX) {
        return -1;
    }
    memcpy(path, root, root_len);
    path[root_len] = '\0';
    rfn_node *r = &t->nodes[root_node];
    r->is_dir = 1;
    r->path = path;
    r->path_len = (uint32_t)root_len;
    r->rel = "";
    r->rel_is_utf8 = 1;
    return 0;
}

void
rfn_tree_dispose(rfn_tree *t)
{
    for (size_t i = 0; i < t->nnodes; i++) {
        rfn_node *n = &t->nodes[i];
        if (n->held != NULL && n->held->fd >= 0) {
            close(n->held->fd);
            n->held->fd = -1;
        }
    }
    rfn_arena_free(&t->arena);
    free(t->nodes);
    for (size_t i = 0; i < t->nwarnings; i++) {
        free(t->warnings[i].path);
    }
    free(t->warnings);
    free(t->fail_path);
    free(t->fail_target);
}

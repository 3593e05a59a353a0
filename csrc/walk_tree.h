/* walk_tree: the bottom layer of the project walk (walk.h): the arena, the
 * recorded tree of kept entries, and what the walk records for Python to
 * raise or warn about later (no GIL while it runs). Core: no Python.h.
 *
 *   walk_tree.h/.c  the arena, the tree, failures and warnings
 *   walk_list.h/.c  one directory: fetch and consume (above the tree)
 *   walk_par.h/.c   the listing workers (above listing)
 *   walk.h/.c       the walk loop and the source feed (on top)
 *
 * Each file includes only the headers of the layers below it.
 */
#ifndef RFN_WALK_TREE_H
#define RFN_WALK_TREE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "os.h"

#define RFN_NONE UINT32_MAX

#define RFN_GROW(o, field, cap, need) \
    rfn_vec_grow((void **)&(o)->field, &(o)->cap, (need), sizeof(*(o)->field))

/* ---- a chunked arena: pointers stay valid while it grows --------------- */

typedef struct rfn_arena_block rfn_arena_block;

typedef struct {
    rfn_arena_block *head;
} rfn_arena;

void *rfn_arena_alloc(rfn_arena *a, size_t n);
void rfn_arena_free(rfn_arena *a);

/* ---- the recorded tree ---------------------------------------------------- */

/* A directory descriptor held open for its child directories to open
 * relative to; closed when the last of them is opened. pending and the close
 * are under the lister's lock (walk_list.h). */
typedef struct {
    int fd;
    uint32_t pending;
} rfn_fdref;

struct rfn_task;              /* a directory's fetch (walk_list.h) */

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
    struct rfn_task *task;    /* its fetch, once enqueued */
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
    rfn_arena arena;
    rfn_node *nodes;                /* nodes[0]: the root */
    size_t nnodes, cap_nodes;

    rfn_warning *warnings;
    size_t nwarnings, cap_warnings;

    enum rfn_walk_failure failure;
    int fail_errno;
    char *fail_path;                /* malloc'd */
    char *fail_target;              /* loop: the ancestor it leads back to */
} rfn_tree;

/* The root node (its path: root, root_len bytes, copied). Returns 0, or -1
 * out of memory. */
int rfn_tree_init(rfn_tree *t, const char *root, size_t root_len);

/* Close the descriptors its nodes hold and free everything but t itself. */
void rfn_tree_dispose(rfn_tree *t);

/* A new node (zeroed, unlinked), or RFN_NONE out of memory. */
uint32_t rfn_tree_new_node(rfn_tree *t);
void rfn_tree_link_child(rfn_tree *t, uint32_t dir, uint32_t child);

/* Build and keep directory d's path and rel. Returns 0, or -1 out of memory. */
int rfn_tree_dir_strings(rfn_tree *t, uint32_t d);

/* parent + "/" + name in the arena (see walk_tree.c), or NULL. */
const char *rfn_tree_join(rfn_tree *t, const char *parent, size_t plen, const char *name,
                          size_t nlen, int dot_is_empty, uint32_t *out_len);

/* n's sort key from the code points of its name. Returns 0, or -1. */
int rfn_tree_set_key(rfn_tree *t, rfn_node *n, const uint32_t *cps, size_t ncps);

char *rfn_tree_strndup(const char *s, size_t n);

/* Record the walk's first failure (later ones are dropped). */
void rfn_tree_fail(rfn_tree *t, enum rfn_walk_failure kind, int err_no, const char *path,
                   size_t len);

/* Record flash's warning for path. Returns 0, or -1 out of memory. */
int rfn_tree_warn(rfn_tree *t, const char *path, size_t len, int err_no);

#endif /* RFN_WALK_TREE_H */

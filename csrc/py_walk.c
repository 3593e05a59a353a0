/* Bindings of the project walk (walk.c and the layers below it): walk_files(),
 * fingerprint_tree(), SymlinkLoopError. They parse the arguments, run the
 * core without the GIL, build the Python lists and raise what it recorded. */
#include "rfn.h"
#include "walk.h"

#include <errno.h>
#include <string.h>

static PyObject *
rfn_fsdecode(const char *s, size_t len)
{
    return PyUnicode_DecodeFSDefaultAndSize(s, (Py_ssize_t)len);
}

/* Slot k >= 1 of the file list is dirs[k - 1] = (parent's slot, path from
 * it); the root is slot 0. Directory d gets a slot from its nearest ancestor
 * with one: each level its own, by name, when a few lie between (their Paths
 * serve the siblings too), else d alone, by the path joined from that
 * ancestor. Every level of a 10,000-deep chain holding two files would make
 * Python copy parts lists 10,000 x 10,000 / 2 times. */
#define RFN_SLOT_EACH_LEVEL 4

static int
rfn_walk_add_slot(PyObject *dirs, uint32_t parent_slot, const char *name, size_t len)
{
    PyObject *item = Py_BuildValue("(IN)", parent_slot, rfn_fsdecode(name, len));
    if (item == NULL || PyList_Append(dirs, item) < 0) {
        Py_XDECREF(item);
        return -1;
    }
    Py_DECREF(item);
    return 0;
}

/* d's slot (see above), or -1 with an exception set. */
static Py_ssize_t
rfn_walk_dir_slot(rfn_lister *li, uint32_t d, uint32_t *slots, PyObject *dirs)
{
    size_t nup = 0, len = 0;
    uint32_t a = d;
    for (; slots[a] == RFN_NONE; a = li->tree.nodes[a].parent) {
        if (RFN_GROW(li, up, cap_up, nup + 1) < 0) {
            PyErr_NoMemory();
            return -1;
        }
        li->up[nup++] = a;
        len += li->tree.nodes[a].name_len + 1;
    }
    if (nup <= RFN_SLOT_EACH_LEVEL) {
        while (nup > 0) {
            const rfn_node *n = &li->tree.nodes[li->up[--nup]];
            if (rfn_walk_add_slot(dirs, slots[n->parent], n->name, n->name_len) < 0) {
                return -1;
            }
            slots[li->up[nup]] = (uint32_t)PyList_GET_SIZE(dirs);
        }
        return (Py_ssize_t)slots[d];
    }
    char *path = PyMem_Malloc(len);
    if (path == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    size_t o = 0;
    while (nup > 0) {
        const rfn_node *n = &li->tree.nodes[li->up[--nup]];
        memcpy(path + o, n->name, n->name_len);
        o += n->name_len;
        path[o++] = '/';
    }
    int rc = rfn_walk_add_slot(dirs, slots[a], path, o - 1);
    PyMem_Free(path);
    if (rc < 0) {
        return -1;
    }
    slots[d] = (uint32_t)PyList_GET_SIZE(dirs);
    return (Py_ssize_t)slots[d];
}

/* The files in flash's order as runs of names in one directory: (dirs, runs),
 * runs a list of (slot, [names]) (slots: rfn_walk_dir_slot). Python builds
 * each Path from its directory's, as flash's iterdir() does, instead of
 * parsing every full path (at depth 2,000 that parse dominated). */
static PyObject *
rfn_walk_file_runs(rfn_walker *w)
{
    rfn_lister *li = RFN_WALK_LISTER(w);
    uint32_t cur, n, *slots = NULL;
    PyObject *dirs = NULL, *runs = NULL, *names = NULL, *result = NULL;
    if (rfn_walk_files_begin(w, &cur) < 0
        || (slots = PyMem_Malloc(li->tree.nnodes * sizeof(uint32_t))) == NULL) {
        return PyErr_NoMemory();
    }
    memset(slots, 0xff, li->tree.nnodes * sizeof(uint32_t));
    slots[0] = 0;
    dirs = PyList_New(0);
    runs = PyList_New(0);
    if (dirs == NULL || runs == NULL) {
        goto exit;
    }
    uint32_t run_dir = RFN_NONE;
    while ((n = rfn_walk_next_file(w, &cur)) != RFN_NONE) {
        const rfn_node *file = &li->tree.nodes[n];
        if (file->parent != run_dir) {
            Py_ssize_t slot = rfn_walk_dir_slot(li, file->parent, slots, dirs);
            Py_XSETREF(names, slot < 0 ? NULL : PyList_New(0));
            PyObject *run = names ? Py_BuildValue("(nO)", slot, names) : NULL;
            if (run == NULL || PyList_Append(runs, run) < 0) {
                Py_XDECREF(run);
                goto exit;
            }
            Py_DECREF(run);
            run_dir = file->parent;
        }
        PyObject *name = rfn_fsdecode(file->name, file->name_len);
        if (name == NULL || PyList_Append(names, name) < 0) {
            Py_XDECREF(name);
            goto exit;
        }
        Py_DECREF(name);
    }
    result = PyTuple_Pack(2, dirs, runs);
exit:
    PyMem_Free(slots);
    Py_XDECREF(names);
    Py_XDECREF(dirs);
    Py_XDECREF(runs);
    return result;
}

static PyObject *
rfn_walk_warning_list(const rfn_tree *t)
{
    PyObject *list = PyList_New((Py_ssize_t)t->nwarnings);
    for (size_t i = 0; list != NULL && i < t->nwarnings; i++) {
        PyObject *item = Py_BuildValue("(Ni)", rfn_fsdecode(t->warnings[i].path,
                                                            strlen(t->warnings[i].path)),
                                       t->warnings[i].err_no);
        if (item == NULL) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, item);
    }
    return list;
}

static void
rfn_walk_raise(rfn_state *st, const rfn_tree *t)
{
    PyObject *path = t->fail_path ? rfn_fsdecode(t->fail_path, strlen(t->fail_path)) : NULL;
    if (t->fail_path != NULL && path == NULL) {
        return;
    }
    switch (t->failure) {
    case RFN_WALK_OS:
        errno = t->fail_errno;
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, path);
        break;
    case RFN_WALK_LOOP: {
        PyObject *target = t->fail_target ? rfn_fsdecode(t->fail_target, strlen(t->fail_target)) : NULL;
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

static rfn_walker *
rfn_walk_from_args(const rfn_walk_args *a, int sorted)
{
    rfn_walker *w = rfn_walk_new(PyBytes_AS_STRING(a->root_bytes),
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
rfn_walk_finish(rfn_walker *w, rfn_walk_args *a)
{
    if (w != NULL) {
        rfn_walk_dispose(w);
    }
    rfn_walk_args_clear(a);
}

/* walk_files(root, spec, prefix) -> (dirs, runs, warnings)
 * prefix: root's path relative to the base, or None when root is not under
 * the base (flash then ignores nothing). dirs, runs: rfn_walk_file_runs(). */
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
    rfn_walker *w = rfn_walk_from_args(&a, 0);
    if (w == NULL) {
        goto exit;
    }
    Py_BEGIN_ALLOW_THREADS
    rfn_walk_run(w);
    Py_END_ALLOW_THREADS
    warnings = rfn_walk_warning_list(RFN_WALK_TREE(w));
    if (warnings == NULL) {
        goto exit;
    }
    if (RFN_WALK_TREE(w)->failure != RFN_WALK_OK) {
        rfn_walk_raise(rfn_get_state(module), RFN_WALK_TREE(w));
        goto exit;
    }
    files = rfn_walk_file_runs(w);
    if (files != NULL) {
        result = PyTuple_Pack(3, PyTuple_GET_ITEM(files, 0), PyTuple_GET_ITEM(files, 1), warnings);
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
rfn_walk_raise_source(rfn_state *st, rfn_walker *w, const rfn_failure *fail)
{
    const rfn_source *src = rfn_walk_source(w, fail->index);
    PyObject *path = rfn_fsdecode(src->open_path, strlen(src->open_path));
    if (path != NULL) {
        rfn_raise_failure(st, fail, path);
        Py_DECREF(path);
    }
}

/* fingerprint_tree(root, spec, want_files) -> ((dirs, runs) or None, hexdigest, warnings)
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
    rfn_walker *w = rfn_walk_from_args(&a, 1);
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
            w->feed.cancel(&w->feed);
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
    warnings = rfn_walk_warning_list(RFN_WALK_TREE(w));
    if (warnings == NULL) {
        goto exit;
    }
    if (rc < 0 && fail.kind == RFN_FAIL_INTERRUPTED) {
        rfn_raise_failure(st, &fail, NULL);
        goto exit;
    }
    if (RFN_WALK_TREE(w)->failure != RFN_WALK_OK) {
        rfn_walk_raise(st, RFN_WALK_TREE(w));
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
        files = rfn_walk_file_runs(w);
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

/* _set_list_workers(n) -> previous: listing workers of every walk from now
 * on (-1 none: the walk fetches every directory itself; 0 the default). A
 * test hook. */
static PyObject *
rfn_set_list_workers(PyObject *module, PyObject *arg)
{
    (void)module;
    int n;
    if (rfn_int_arg(arg, -1, RFN_MAX_LIST_WORKERS, "list workers", &n) < 0) {
        return NULL;
    }
    return PyLong_FromLong(rfn_par_set_workers(n));
}

static PyMethodDef rfn_walk_methods[] = {
    {"_set_list_workers", rfn_set_list_workers, METH_O,
     "_set_list_workers(n, /)\n--\n\n"
     "-> previous setting. Listing workers of later walks: -1 none, 0 default."},
    {"walk_files", rfn_walk_files, METH_VARARGS,
     "walk_files(root, spec, prefix, /)\n--\n\n"
     "-> (dirs, runs, warnings)\n\n"
     "flash's get_file_tree: files in listing order (depth first), as runs\n"
     "(slot, [names]) of one directory each; slot 0 is root, slot k >= 1 the\n"
     "directory dirs[k - 1] = (ancestor slot, path from it: a name, or names\n"
     "joined by '/'). prefix is root's path\n"
     "relative to the base directory, or None to ignore nothing."},
    {"fingerprint_tree", rfn_fingerprint_tree, METH_VARARGS,
     "fingerprint_tree(root, spec, want_files, /)\n--\n\n"
     "-> ((dirs, runs) | None, hexdigest, warnings)\n\n"
     "Walk root like get_file_tree (files as walk_files gives them) and\n"
     "fingerprint the files relative to root,\n"
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

/* compute_source_fingerprint(project_dir, files): flash's path arithmetic.
 *
 * flash sorts the files by Path.relative_to(project_dir).as_posix() and frames
 * each one with that relative path. We reproduce the pathlib rules in C:
 * "//" at the start is its own root, empty and "." components vanish, ".." is
 * kept, and a path equal to the project is ".". Paths are handled as UTF-8
 * with surrogates passed through ("surrogatepass"), which keeps Python's
 * code-point order under memcmp and lets undecodable names (surrogateescape)
 * travel to the point where flash fails on them.
 *
 * Errors come in flash's order: ValueError for a file outside the project
 * while sorting (input order), then, walking the sorted list, the first file
 * whose relative path is not valid UTF-8 (UnicodeEncodeError) or which cannot
 * be opened and read (OSError subclasses).
 */
#include "rfn.h"

#include <string.h>

typedef struct {
    char *norm;          /* normalized full path, surrogatepass UTF-8, NUL-terminated */
    size_t norm_len;
    size_t rel_off;      /* rel = norm + rel_off ... unless rel_dot */
    int rel_dot;         /* file == project: the relative path is "." */
    size_t input_index;
} rfn_entry;

typedef struct {
    char *root;          /* "", "/" or "//" */
    size_t root_len;
    size_t parts_len;    /* length of the joined parts after the root */
    size_t nparts;
} rfn_pathinfo;

/* Normalize a POSIX path the way PurePosixPath does, into out (capacity len+1).
 * Returns the normalized length; *root_len and *nparts describe it. */
static size_t
rfn_normalize_posix(const char *s, size_t len, char *out, size_t *root_len, size_t *nparts)
{
    size_t i = 0, o = 0;
    if (len >= 1 && s[0] == '/') {
        /* POSIX keeps exactly two leading slashes; one or three+ collapse to one. */
        size_t slashes = 0;
        while (slashes < len && s[slashes] == '/') {
            slashes++;
        }
        size_t keep = slashes == 2 ? 2 : 1;
        memcpy(out, "//", keep);
        o = keep;
        i = slashes;
    }
    *root_len = o;
    *nparts = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && s[j] != '/') {
            j++;
        }
        size_t n = j - i;
        if (n > 0 && !(n == 1 && s[i] == '.')) {
            if (*nparts > 0) {
                out[o++] = '/';
            }
            memcpy(out + o, s + i, n);
            o += n;
            (*nparts)++;
        }
        i = j + 1;
    }
    out[o] = '\0';
    return o;
}

PyObject *
rfn_fspath_str(PyObject *obj, const char *type_error)
{
    PyObject *path = PyOS_FSPath(obj);
    if (path != NULL && !PyUnicode_Check(path)) {
        PyErr_Format(PyExc_TypeError, type_error, Py_TYPE(path)->tp_name, obj);
        Py_CLEAR(path);
    }
    return path;
}

/* Encode str/PathLike to surrogatepass UTF-8 bytes (new reference). */
static PyObject *
rfn_fspath_bytes(PyObject *obj)
{
    PyObject *path = rfn_fspath_str(obj, "expected str or os.PathLike returning str, not %.200s (%R)");
    if (path == NULL) {
        return NULL;
    }
    PyObject *b = PyUnicode_AsEncodedString(path, "utf-8", "surrogatepass");
    Py_DECREF(path);
    return b;
}

static PyObject *
rfn_decode_passthrough(const char *s, size_t len)
{
    return PyUnicode_DecodeUTF8(s, (Py_ssize_t)len, "surrogatepass");
}

/* str(Path(file)): the empty normalized path is "." */
static const char *
rfn_entry_norm(const rfn_entry *e, size_t *len)
{
    if (e->norm_len == 0) {
        *len = 1;
        return ".";
    }
    *len = e->norm_len;
    return e->norm;
}

static PyObject *
rfn_entry_path(const rfn_entry *e)
{
    size_t len;
    const char *norm = rfn_entry_norm(e, &len);
    return rfn_decode_passthrough(norm, len);
}

static const char *
rfn_entry_rel(const rfn_entry *e, size_t *len)
{
    if (e->rel_dot) {
        *len = 1;
        return ".";
    }
    *len = e->norm_len - e->rel_off;
    return e->norm + e->rel_off;
}

/* The first surrogate in surrogatepass UTF-8, or NULL. */
static const char *
rfn_find_surrogate(const char *s, size_t len)
{
    for (size_t i = 0; i + 2 < len; i++) {
        if (rfn_utf8_surrogate((const unsigned char *)s + i, len - i) != 0) {
            return s + i;
        }
    }
    return NULL;
}

/* flash's rel.encode("utf-8") fails on surrogates: raise the same
 * UnicodeEncodeError (same start/end), with the file named in the reason. */
void
rfn_raise_rel_encode_error(const char *rel, size_t rel_len)
{
    PyObject *text = rfn_decode_passthrough(rel, rel_len);
    if (text == NULL) {
        return;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(text), start = 0;
    while (start < n && !Py_UNICODE_IS_SURROGATE(PyUnicode_READ_CHAR(text, start))) {
        start++;
    }
    Py_ssize_t end = start;
    while (end < n && Py_UNICODE_IS_SURROGATE(PyUnicode_READ_CHAR(text, end))) {
        end++;
    }
    PyObject *reason = PyUnicode_FromFormat(
        "surrogates not allowed (file name %A is not valid UTF-8)", text);
    if (reason != NULL) {
        PyObject *exc = PyObject_CallFunction(PyExc_UnicodeEncodeError, "sOnnO", "utf-8", text,
                                              start, end, reason);
        if (exc != NULL) {
            PyErr_SetObject(PyExc_UnicodeEncodeError, exc);
            Py_DECREF(exc);
        }
        Py_DECREF(reason);
    }
    Py_DECREF(text);
}

/* Turn a surrogatepass path into the bytes open() gets (os.fsencode:
 * surrogateescape). Returns -1 if it holds a surrogate os.fsencode rejects,
 * -2 for an embedded NUL. */
static int
rfn_to_fs_bytes(const char *s, size_t len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == 0) {
            return -2;
        }
        uint32_t cp = rfn_utf8_surrogate((const unsigned char *)s + i, len - i);
        if (cp != 0) {
            if (cp < 0xDC80 || cp > 0xDCFF) {
                return -1;
            }
            out[o++] = (char)(cp - 0xDC00);
            i += 2;
            continue;
        }
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return 0;
}

static int
rfn_entry_cmp(const void *pa, const void *pb)
{
    const rfn_entry *a = pa, *b = pb;
    size_t alen, blen;
    const char *ra = rfn_entry_rel(a, &alen), *rb = rfn_entry_rel(b, &blen);
    int c = rfn_compare_keys(ra, alen, rb, blen);
    if (c != 0) {
        return c;
    }
    return (a->input_index > b->input_index) - (a->input_index < b->input_index);
}

/* Parse one file argument into *e, checking it lies under the project. */
static int
rfn_entry_init(rfn_entry *e, PyObject *item, const char *proj, size_t proj_len,
               size_t proj_root_len, size_t proj_nparts, PyObject *project_obj)
{
    PyObject *b = rfn_fspath_bytes(item);
    if (b == NULL) {
        return -1;
    }
    size_t len = (size_t)PyBytes_GET_SIZE(b);
    e->norm = PyMem_Malloc(len + 3);
    if (e->norm == NULL) {
        Py_DECREF(b);
        PyErr_NoMemory();
        return -1;
    }
    size_t root_len, nparts;
    e->norm_len = rfn_normalize_posix(PyBytes_AS_STRING(b), len, e->norm, &root_len, &nparts);
    Py_DECREF(b);

    int inside = root_len == proj_root_len && nparts >= proj_nparts && e->norm_len >= proj_len
                 && memcmp(e->norm, proj, proj_len) == 0;
    if (inside && nparts > proj_nparts) {
        /* proj is "root" or "root/a/b": the next byte must start a new part. */
        size_t sep = proj_nparts == 0 ? proj_len : proj_len + 1;
        inside = proj_nparts == 0 || e->norm[proj_len] == '/';
        e->rel_off = sep;
        e->rel_dot = 0;
    }
    else if (inside) {
        inside = e->norm_len == proj_len;
        e->rel_off = e->norm_len;
        e->rel_dot = 1;
    }
    if (!inside) {
        PyObject *path = rfn_entry_path(e);
        if (path != NULL) {
            PyErr_Format(PyExc_ValueError, "%R is not inside the project directory %R", path,
                         project_obj);
            Py_DECREF(path);
        }
        return -1;
    }
    return 0;
}

static void
rfn_entries_free(rfn_entry *entries, size_t n)
{
    if (entries == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        PyMem_Free(entries[i].norm);
    }
    PyMem_Free(entries);
}

/* Set the exception for a file that fails before any I/O (rel not UTF-8,
 * path not encodable or holding NUL). Returns 1 if e fails that way. */
static int
rfn_check_entry(const rfn_entry *e, char *fs_out, int raise)
{
    size_t rel_len;
    const char *rel = rfn_entry_rel(e, &rel_len);
    if (rfn_find_surrogate(rel, rel_len) != NULL) {
        if (raise) {
            rfn_raise_rel_encode_error(rel, rel_len);
        }
        return 1;
    }
    size_t norm_len;
    const char *norm = rfn_entry_norm(e, &norm_len);
    int rc = rfn_to_fs_bytes(norm, norm_len, fs_out);
    if (rc == 0) {
        return 0;
    }
    if (raise) {
        PyObject *path = rfn_entry_path(e);
        if (path != NULL && rc == -2) {
            PyErr_Format(PyExc_ValueError, "embedded null byte in file name %R", path);
        }
        else if (path != NULL) {
            /* Let Python's own encoder raise its UnicodeEncodeError. */
            PyObject *enc = PyUnicode_EncodeFSDefault(path);
            Py_XDECREF(enc);
            if (enc != NULL) {
                PyErr_Format(PyExc_ValueError, "cannot encode file name %R", path);
            }
        }
        Py_XDECREF(path);
    }
    return 1;
}

/* The sources (open paths written at *cursor, an arena) up to the first
 * entry flash would reject before reading it; returns their count and leaves
 * *cursor where that entry's path would go. */
static size_t
rfn_fill_sources(const rfn_entry *entries, size_t n, rfn_source *sources, char **cursor)
{
    size_t hashable = 0;
    for (; hashable < n; hashable++) {
        const rfn_entry *e = &entries[hashable];
        if (rfn_check_entry(e, *cursor, 0)) {
            break;
        }
        sources[hashable].open_path = *cursor;
        sources[hashable].rel = rfn_entry_rel(e, &sources[hashable].rel_len);
        *cursor += strlen(*cursor) + 1;
    }
    return hashable;
}

/* Hash the sources without the GIL; -1 with flash's exception set. */
static int
rfn_hash_sources(rfn_state *st, const rfn_entry *entries, rfn_source *sources, size_t n,
                 rfn_file_digest *file_out, unsigned char digest[RFN_SHA256_LEN])
{
    rfn_array_feed feed;
    rfn_array_feed_init(&feed, sources, n);
    if (file_out != NULL) {
        feed.feed.file_md = st->sha256;
        feed.feed.file_out = file_out;
    }
    rfn_failure fail;
    PyThreadState *ts = PyEval_SaveThread();
    rfn_poller poll = rfn_signal_poller(&ts);
    int rc = rfn_hash_feed(st, &feed.feed, &poll, digest, &fail);
    PyEval_RestoreThread(ts);
    if (rc < 0) {
        PyObject *path = fail.kind == RFN_FAIL_INTERRUPTED ? NULL : rfn_entry_path(&entries[fail.index]);
        if (path != NULL || fail.kind == RFN_FAIL_INTERRUPTED) {
            rfn_raise_failure(st, &fail, path);
        }
        Py_XDECREF(path);
    }
    return rc < 0 ? -1 : 0;
}

/* [(rel, size, sha256 hex)] of the sorted entries. */
static PyObject *
rfn_digest_list(const rfn_entry *entries, const rfn_file_digest *out, size_t n)
{
    PyObject *list = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; list != NULL && i < n; i++) {
        size_t rel_len;
        const char *rel = rfn_entry_rel(&entries[i], &rel_len);
        PyObject *item = Py_BuildValue("(s#KN)", rel, (Py_ssize_t)rel_len,
                                       (unsigned long long)out[i].size, rfn_hexdigest(out[i].sha256));
        if (item == NULL) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, item);
    }
    return list;
}

static PyObject *
rfn_compute_source_fingerprint(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"project_dir", "files", "digests", NULL};
    PyObject *project_obj, *files_obj;
    int want_digests = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO|$p:compute_source_fingerprint", kwlist,
                                     &project_obj, &files_obj, &want_digests)) {
        return NULL;
    }
    rfn_state *st = rfn_get_state(module);
    PyObject *result = NULL, *seq = NULL, *proj_bytes = NULL;
    rfn_entry *entries = NULL;
    rfn_file_digest *file_out = NULL;
    rfn_source *sources = NULL;
    char *proj = NULL, *arena = NULL;
    size_t n = 0, filled = 0;

    proj_bytes = rfn_fspath_bytes(project_obj);
    if (proj_bytes == NULL) {
        goto exit;
    }
    size_t proj_in_len = (size_t)PyBytes_GET_SIZE(proj_bytes);
    proj = PyMem_Malloc(proj_in_len + 3);
    if (proj == NULL) {
        PyErr_NoMemory();
        goto exit;
    }
    size_t proj_root_len, proj_nparts;
    size_t proj_len = rfn_normalize_posix(PyBytes_AS_STRING(proj_bytes), proj_in_len, proj,
                                          &proj_root_len, &proj_nparts);

    seq = PySequence_Fast(files_obj, "files must be an iterable of paths");
    if (seq == NULL) {
        goto exit;
    }
    n = (size_t)PySequence_Fast_GET_SIZE(seq);
    entries = PyMem_Calloc(n ? n : 1, sizeof(*entries));
    if (entries == NULL) {
        PyErr_NoMemory();
        goto exit;
    }
    size_t arena_size = 1;
    for (filled = 0; filled < n; filled++) {
        if (rfn_entry_init(&entries[filled], PySequence_Fast_GET_ITEM(seq, (Py_ssize_t)filled),
                           proj, proj_len, proj_root_len, proj_nparts, project_obj) < 0) {
            filled++;  /* its norm buffer needs freeing */
            goto exit;
        }
        entries[filled].input_index = filled;
        arena_size += entries[filled].norm_len + 2;  /* room for "." */
    }
    qsort(entries, n, sizeof(*entries), rfn_entry_cmp);

    sources = PyMem_Calloc(n ? n : 1, sizeof(*sources));
    arena = PyMem_Malloc(arena_size);
    if (want_digests) {
        file_out = PyMem_Calloc(n ? n : 1, sizeof(*file_out));
    }
    if (sources == NULL || arena == NULL || (want_digests && file_out == NULL)) {
        PyErr_NoMemory();
        goto exit;
    }
    char *cursor = arena;
    size_t hashable = rfn_fill_sources(entries, n, sources, &cursor);
    unsigned char digest[RFN_SHA256_LEN];
    if (rfn_hash_sources(st, entries, sources, hashable, file_out, digest) < 0) {
        goto exit;
    }
    if (hashable < n) {
        rfn_check_entry(&entries[hashable], cursor, 1);
        goto exit;
    }
    if (want_digests) {
        result = Py_BuildValue("(NN)", rfn_hexdigest(digest), rfn_digest_list(entries, file_out, n));
    }
    else {
        result = rfn_hexdigest(digest);
    }

exit:
    rfn_entries_free(entries, filled);
    PyMem_Free(file_out);
    PyMem_Free(sources);
    PyMem_Free(arena);
    PyMem_Free(proj);
    Py_XDECREF(seq);
    Py_XDECREF(proj_bytes);
    return result;
}

static PyMethodDef rfn_sources_methods[] = {
    {"compute_source_fingerprint", (PyCFunction)(void (*)(void))rfn_compute_source_fingerprint,
     METH_VARARGS | METH_KEYWORDS,
     "compute_source_fingerprint(project_dir, files, *, digests=False) -> str\n\n"
     "SHA-256 over files sorted by POSIX path relative to project_dir, each framed\n"
     "as be64(len(path)) path be64(len(content)) content; identical to runpod-flash.\n"
     "digests=True: (fingerprint, [(path, size, sha256 hex), ...] in that order),\n"
     "each file's own digest taken from the bytes the fingerprint read."},
    {NULL, NULL, 0, NULL},
};

int
rfn_sources_exec(PyObject *module)
{
    return PyModule_AddFunctions(module, rfn_sources_methods);
}

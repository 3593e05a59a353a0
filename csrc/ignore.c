/* IgnoreSpec, answering match_file() exactly like pathspec.PathSpec, and
 * compile_ignore_patterns(): the binding of the matcher core (match.h:
 * match_compile.c compiles, match.c matches) plus its test hooks. */
#include "rfn.h"

#include <string.h>

/* Code points of a str up to this many are widened on the stack. */
#define RFN_WIDEN_STACK_CPS 1024

/* ---- Python errors ---------------------------------------------------------- */

static void
rfn_raise_pattern_error(rfn_state *st, const rfn_outcome *out, PyObject *pattern,
                        PyObject *origin)
{
    PyObject *where = origin != NULL ? PyUnicode_FromFormat(" (%U)", origin)
                                     : PyUnicode_FromString("");
    if (where == NULL) {
        return;
    }
    if (out->v == RFN_V_INVALID) {
        PyErr_Format(st->InvalidPatternError, "Invalid git pattern: %R%U: %s", pattern, where,
                     out->why);
    } else if (out->v == RFN_V_BAD_RANGE) {
        PyErr_Format(st->PatternRegexError,
                     "Invalid git pattern: %R%U: bad character range %c-%c", pattern, where,
                     (int)out->lo, (int)out->hi);
    } else {
        PyErr_NoMemory();
    }
    Py_DECREF(where);
}

/* ---- IgnoreSpec --------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    rfn_matcher *matcher;
    PyObject *patterns;     /* tuple of exact str: no reference cycles, so no GC */
} rfn_ignorespec;

static void
rfn_ignorespec_dealloc(PyObject *self)
{
    rfn_ignorespec *spec = (rfn_ignorespec *)self;
    PyTypeObject *tp = Py_TYPE(self);
    rfn_matcher_free(spec->matcher);
    Py_XDECREF(spec->patterns);
    tp->tp_free(self);
    Py_DECREF(tp);
}

const rfn_matcher *
rfn_ignorespec_matcher(PyObject *spec)
{
    /* The type is neither subclassable nor instantiable from Python, and its
     * dealloc is ours alone: this identifies it in any interpreter. */
    if (Py_TYPE(spec)->tp_dealloc != rfn_ignorespec_dealloc) {
        PyErr_Format(PyExc_TypeError, "expected an IgnoreSpec, not %.200s",
                     Py_TYPE(spec)->tp_name);
        return NULL;
    }
    return ((rfn_ignorespec *)spec)->matcher;
}

/* pathspec's normalize_file() on POSIX: os.fspath, then drop one leading "/"
 * or else a leading "./". Returns a new reference to the str to match. */
static PyObject *
rfn_normalize_path(PyObject *path)
{
    PyObject *s = rfn_fspath_str(path, "path must be str or a PathLike giving str, not %.200s");
    if (s == NULL) {
        return NULL;
    }
    Py_ssize_t len = PyUnicode_GET_LENGTH(s), skip = 0;
    if (len >= 1 && PyUnicode_READ_CHAR(s, 0) == '/') {
        skip = 1;
    } else if (len >= 2 && PyUnicode_READ_CHAR(s, 0) == '.' && PyUnicode_READ_CHAR(s, 1) == '/') {
        skip = 2;
    }
    if (skip == 0) {
        return s;
    }
    PyObject *tail = PyUnicode_Substring(s, skip, len);
    Py_DECREF(s);
    return tail;
}

/* Match the code points of str s; -1 with MemoryError set. A str that is not
 * UCS4 already is widened into a copy first. */
static int
rfn_match_str(const rfn_matcher *m, PyObject *s)
{
    size_t n = (size_t)PyUnicode_GET_LENGTH(s);
    int kind = PyUnicode_KIND(s);
    const void *data = PyUnicode_DATA(s);
    uint32_t stack_cps[RFN_WIDEN_STACK_CPS];
    stack_cps[0] = 0;   /* n == 0 reads nothing; GCC cannot tell */
    uint32_t *conv = NULL;
    const uint32_t *cps = data;
    if (kind != PyUnicode_4BYTE_KIND) {
        conv = n <= RFN_WIDEN_STACK_CPS ? stack_cps : PyMem_New(uint32_t, n);
        if (conv == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        for (size_t i = 0; i < n; i++) {
            conv[i] = PyUnicode_READ(kind, data, i);
        }
        cps = conv;
    }
    int r = rfn_matcher_ignores(m, cps, n);
    if (conv != stack_cps) {
        PyMem_Free(conv);
    }
    if (r < 0) {
        PyErr_NoMemory();
    }
    return r;
}

static PyObject *
rfn_ignorespec_match_file(PyObject *self, PyObject *path)
{
    PyObject *s = rfn_normalize_path(path);
    if (s == NULL) {
        return NULL;
    }
    int r = rfn_match_str(((rfn_ignorespec *)self)->matcher, s);
    Py_DECREF(s);
    if (r < 0) {
        return NULL;
    }
    return PyBool_FromLong(r);
}

static PyObject *
rfn_ignorespec_get_patterns(PyObject *self, void *closure)
{
    (void)closure;
    return Py_NewRef(((rfn_ignorespec *)self)->patterns);
}

static const char *const rfn_dialect_names[] = {"0.11", "1.0", "1.1"};

static PyObject *
rfn_ignorespec_get_dialect(PyObject *self, void *closure)
{
    (void)closure;
    return PyUnicode_FromString(rfn_dialect_names[rfn_matcher_dialect(((rfn_ignorespec *)self)->matcher)]);
}

static Py_ssize_t
rfn_ignorespec_len(PyObject *self)
{
    return PyTuple_GET_SIZE(((rfn_ignorespec *)self)->patterns);
}

static PyObject *
rfn_ignorespec_repr(PyObject *self)
{
    return PyUnicode_FromFormat("IgnoreSpec(patterns=%R)", ((rfn_ignorespec *)self)->patterns);
}

static PyMethodDef rfn_ignorespec_methods[] = {
    {"match_file", rfn_ignorespec_match_file, METH_O,
     "match_file($self, path, /)\n--\n\n"
     "True when the last pattern matching path ignores it, exactly like\n"
     "pathspec.PathSpec.from_lines('gitwildmatch', patterns).match_file(path)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef rfn_ignorespec_getset[] = {
    {"patterns", rfn_ignorespec_get_patterns, NULL,
     "The pattern strings, in order (empty strings are skipped, as pathspec does).", NULL},
    {"dialect", rfn_ignorespec_get_dialect, NULL,
     "The pathspec release line answered like: '0.11' (0.11.0-0.12.x), '1.0' (1.0.x) or '1.1' (1.1+).",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot rfn_ignorespec_slots[] = {
    {Py_tp_dealloc, rfn_ignorespec_dealloc},
    {Py_tp_repr, rfn_ignorespec_repr},
    {Py_tp_methods, rfn_ignorespec_methods},
    {Py_tp_getset, rfn_ignorespec_getset},
    {Py_sq_length, rfn_ignorespec_len},
    {Py_tp_doc, "Compiled gitwildmatch patterns; build with compile_ignore_patterns()."},
    {0, NULL},
};

static PyType_Spec rfn_ignorespec_spec = {
    .name = RFN_MODULE_NAME ".IgnoreSpec",
    .basicsize = sizeof(rfn_ignorespec),
    .flags = Py_TPFLAGS_DEFAULT
#ifdef Py_TPFLAGS_IMMUTABLETYPE
             | Py_TPFLAGS_IMMUTABLETYPE
#endif
#ifdef Py_TPFLAGS_DISALLOW_INSTANTIATION
             | Py_TPFLAGS_DISALLOW_INSTANTIATION
#endif
    ,
    .slots = rfn_ignorespec_slots,
};

/* ---- compile_ignore_patterns() ------------------------------------------------ */

/* Compile every pattern of seq (a list from PySequence_Fast) into b; fill the
 * kept str objects into kept. Returns 0 or -1 with an exception set. */
static int
rfn_compile_all(rfn_state *st, rfn_match_builder *b, PyObject *seq, PyObject *origins,
                PyObject *kept)
{
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyUnicode_Check(item)) {
            PyErr_Format(PyExc_TypeError, "pattern %zd must be str, not %.200s", i,
                         Py_TYPE(item)->tp_name);
            return -1;
        }
        if (PyUnicode_GET_LENGTH(item) == 0) {
            continue;   /* PathSpec.from_lines() skips empty lines entirely */
        }
        Py_UCS4 *s = PyUnicode_AsUCS4Copy(item);
        if (s == NULL) {
            return -1;
        }
        rfn_outcome out;
        rfn_match_builder_add(b, s, (size_t)PyUnicode_GET_LENGTH(item), &out);
        PyMem_Free(s);
        if (out.v != RFN_V_OK && out.v != RFN_V_NOOP) {
            PyObject *origin = origins ? PySequence_Fast_GET_ITEM(origins, i) : NULL;
            rfn_raise_pattern_error(st, &out, item, origin);
            return -1;
        }
        PyObject *exact = PyUnicode_FromObject(item);
        if (exact == NULL || PyList_Append(kept, exact) < 0) {
            Py_XDECREF(exact);
            return -1;
        }
        Py_DECREF(exact);
    }
    return 0;
}

static PyObject *
rfn_fast_origins(PyObject *origins, Py_ssize_t n)
{
    PyObject *fast = PySequence_Fast(origins, "origins must be a sequence of str");
    if (fast == NULL) {
        return NULL;
    }
    if (PySequence_Fast_GET_SIZE(fast) != n) {
        PyErr_Format(PyExc_ValueError, "origins has %zd items for %zd patterns",
                     PySequence_Fast_GET_SIZE(fast), n);
        Py_DECREF(fast);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *o = PySequence_Fast_GET_ITEM(fast, i);
        if (!PyUnicode_Check(o)) {
            PyErr_Format(PyExc_TypeError, "origin %zd must be str, not %.200s", i,
                         Py_TYPE(o)->tp_name);
            Py_DECREF(fast);
            return NULL;
        }
    }
    return fast;
}

static PyObject *
rfn_new_ignorespec(rfn_state *st, rfn_matcher *m, PyObject *kept)
{
    PyObject *tuple = PyList_AsTuple(kept);
    if (tuple == NULL) {
        rfn_matcher_free(m);
        return NULL;
    }
    rfn_ignorespec *spec = (rfn_ignorespec *)st->IgnoreSpecType->tp_alloc(st->IgnoreSpecType, 0);
    if (spec == NULL) {
        rfn_matcher_free(m);
        Py_DECREF(tuple);
        return NULL;
    }
    spec->matcher = m;
    spec->patterns = tuple;
    return (PyObject *)spec;
}

static PyObject *
rfn_compile_ignore_patterns(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"patterns", "origins", "dialect", NULL};
    PyObject *patterns, *origins = Py_None;
    const char *dialect_name = "1.1";
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|O$s:compile_ignore_patterns", kwlist,
                                     &patterns, &origins, &dialect_name)) {
        return NULL;
    }
    int dialect = -1;
    for (int i = 0; i < (int)(sizeof(rfn_dialect_names) / sizeof(rfn_dialect_names[0])); i++) {
        if (strcmp(dialect_name, rfn_dialect_names[i]) == 0) {
            dialect = i;
        }
    }
    if (dialect < 0) {
        PyErr_Format(PyExc_ValueError, "dialect must be '0.11', '1.0' or '1.1', not '%s'", dialect_name);
        return NULL;
    }
    if (PyUnicode_Check(patterns) || PyBytes_Check(patterns)) {
        /* pathspec does not take a single string for its lines either */
        PyErr_SetString(PyExc_TypeError, "patterns must be an iterable of str, not a string");
        return NULL;
    }
    rfn_state *st = rfn_get_state(module);
    PyObject *seq = PySequence_Fast(patterns, "patterns must be an iterable of str");
    PyObject *ofast = NULL, *kept = NULL, *result = NULL;
    rfn_match_builder *b = NULL;
    if (seq == NULL) {
        return NULL;
    }
    if (origins != Py_None
        && (ofast = rfn_fast_origins(origins, PySequence_Fast_GET_SIZE(seq))) == NULL) {
        goto exit;
    }
    if ((b = rfn_match_builder_new((enum rfn_dialect)dialect)) == NULL) {
        PyErr_NoMemory();
        goto exit;
    }
    if ((kept = PyList_New(0)) == NULL || rfn_compile_all(st, b, seq, ofast, kept) < 0) {
        goto exit;
    }
    rfn_matcher *m = rfn_match_builder_finish(b);
    if (m == NULL) {
        PyErr_NoMemory();
        goto exit;
    }
    result = rfn_new_ignorespec(st, m, kept);
exit:
    rfn_match_builder_free(b);
    Py_XDECREF(kept);
    Py_XDECREF(ofast);
    Py_DECREF(seq);
    return result;
}

/* Test hooks for the GIL-free entry points the walker uses. */

static PyObject *
rfn_fsdecode_py(PyObject *module, PyObject *arg)
{
    (void)module;
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "_fsdecode() takes bytes");
        return NULL;
    }
    size_t len = (size_t)PyBytes_GET_SIZE(arg);
    uint32_t *cps = PyMem_New(uint32_t, len + 1);
    if (cps == NULL) {
        return PyErr_NoMemory();
    }
    size_t n = rfn_fsdecode_cps((const unsigned char *)PyBytes_AS_STRING(arg), len, cps);
    PyObject *s = PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, cps, (Py_ssize_t)n);
    PyMem_Free(cps);
    return s;
}

static PyObject *
rfn_match_fsbytes_py(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 2 || !PyBytes_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "_match_fsbytes(spec, raw: bytes)");
        return NULL;
    }
    const rfn_matcher *m = rfn_ignorespec_matcher(args[0]);
    if (m == NULL) {
        return NULL;
    }
    size_t len = (size_t)PyBytes_GET_SIZE(args[1]);
    const unsigned char *raw = (const unsigned char *)PyBytes_AS_STRING(args[1]);
    uint32_t *cps = PyMem_RawMalloc((len + 1) * sizeof(uint32_t));
    if (cps == NULL) {
        return PyErr_NoMemory();
    }
    int r;
    Py_BEGIN_ALLOW_THREADS
    r = rfn_matcher_ignores(m, cps, rfn_fsdecode_cps(raw, len, cps));
    Py_END_ALLOW_THREADS
    PyMem_RawFree(cps);
    if (r < 0) {
        return PyErr_NoMemory();
    }
    return PyBool_FromLong(r);
}

/* Code points _match_walk's longest path can take (prefix + "/" + every
 * part), or 0 with ValueError set for a part that is not bytes without "/". */
static size_t
rfn_walk_path_cap(PyObject *prefix, PyObject *parts)
{
    size_t total = (size_t)PyUnicode_GET_LENGTH(prefix) + 1;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(parts); i++) {
        PyObject *b = PyList_GET_ITEM(parts, i);
        if (!PyBytes_Check(b) || memchr(PyBytes_AS_STRING(b), '/', (size_t)PyBytes_GET_SIZE(b))) {
            PyErr_SetString(PyExc_ValueError, "parts must be bytes without '/'");
            return 0;
        }
        total += (size_t)PyBytes_GET_SIZE(b) + 1;
    }
    return total;
}

/* _match_walk(spec, prefix, parts): the walk's level-by-level decisions for
 * prefix/parts[0], prefix/parts[0]/parts[1], ... (parts are raw names). */
static PyObject *
rfn_match_walk_py(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 3 || !PyUnicode_Check(args[1]) || !PyList_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "_match_walk(spec, prefix: str, parts: list[bytes])");
        return NULL;
    }
    const rfn_matcher *m = rfn_ignorespec_matcher(args[0]);
    if (m == NULL) {
        return NULL;
    }
    PyObject *parts = args[2];
    Py_ssize_t nparts = PyList_GET_SIZE(parts);
    size_t total = rfn_walk_path_cap(args[1], parts);
    if (total == 0) {
        return NULL;
    }
    size_t blen = rfn_matcher_bits_len(m) ? rfn_matcher_bits_len(m) : 1;
    uint32_t *cps = PyMem_New(uint32_t, total);
    unsigned char *bits = PyMem_Malloc(2 * blen);
    PyObject *out = PyList_New(0);
    if (cps == NULL || bits == NULL || out == NULL) {
        PyMem_Free(cps);
        PyMem_Free(bits);
        Py_XDECREF(out);
        return PyErr_NoMemory();
    }
    unsigned char *parent = NULL, *child = bits;
    size_t n = 0;
    for (Py_ssize_t i = 0; i < PyUnicode_GET_LENGTH(args[1]); i++) {
        cps[n++] = PyUnicode_READ_CHAR(args[1], i);
    }
    if (n > 0) {
        if (rfn_matcher_prefix_bits(m, cps, n, child) < 0) {
            goto nomem;
        }
        parent = child;
        child = bits + blen;
    }
    for (Py_ssize_t i = 0; i < nparts; i++) {
        PyObject *b = PyList_GET_ITEM(parts, i);
        if (n > 0) {
            cps[n++] = '/';
        }
        n += rfn_fsdecode_cps((const unsigned char *)PyBytes_AS_STRING(b),
                              (size_t)PyBytes_GET_SIZE(b), cps + n);
        int r = rfn_matcher_walk_entry(m, cps, n, parent, NULL);
        if (r < 0 || rfn_matcher_walk_entry(m, cps, n, parent, child) < 0) {
            goto nomem;
        }
        if (PyList_Append(out, r ? Py_True : Py_False) < 0) {
            goto error;
        }
        parent = child;
        child = parent == bits ? bits + blen : bits;
    }
    PyMem_Free(cps);
    PyMem_Free(bits);
    return out;
nomem:
    PyErr_NoMemory();
error:
    PyMem_Free(cps);
    PyMem_Free(bits);
    Py_DECREF(out);
    return NULL;
}

static PyMethodDef rfn_ignore_functions[] = {
    {"_fsdecode", rfn_fsdecode_py, METH_O,
     "_fsdecode(raw, /)\n--\n\nTest hook: rfn_fsdecode_cps() (os.fsdecode) as a str."},
    {"_match_fsbytes", (PyCFunction)(void (*)(void))rfn_match_fsbytes_py, METH_FASTCALL,
     "_match_fsbytes(spec, raw, /)\n--\n\n"
     "Test hook: rfn_fsdecode_cps() then rfn_matcher_ignores() without the GIL."},
    {"_match_walk", (PyCFunction)(void (*)(void))rfn_match_walk_py, METH_FASTCALL,
     "_match_walk(spec, prefix, parts, /)\n--\n\n"
     "Test hook: the walk's level-by-level decisions (rfn_matcher_walk_entry) for\n"
     "prefix/parts[0], prefix/parts[0]/parts[1], ..."},
    {"compile_ignore_patterns", (PyCFunction)(void (*)(void))rfn_compile_ignore_patterns,
     METH_VARARGS | METH_KEYWORDS,
     "compile_ignore_patterns(patterns, origins=None, *, dialect='1.1')\n--\n\n"
     "Compile gitignore lines the way PathSpec.from_lines('gitwildmatch', ...)\n"
     "does. origins[i] names where patterns[i] came from, for error messages.\n"
     "Raises InvalidPatternError (a ValueError) where pathspec raises\n"
     "GitIgnorePatternError, and PatternRegexError (an re.error) where pathspec's\n"
     "regex fails to compile."},
    {NULL, NULL, 0, NULL},
};

/* ---- module exec -------------------------------------------------------------- */

static PyObject *
rfn_re_error(void)
{
    PyObject *re = PyImport_ImportModule("re");
    if (re == NULL) {
        return NULL;
    }
    PyObject *err = PyObject_GetAttrString(re, "error");
    Py_DECREF(re);
    return err;
}

int
rfn_ignore_exec(PyObject *module)
{
    rfn_state *st = rfn_get_state(module);
    st->InvalidPatternError = PyErr_NewExceptionWithDoc(
        RFN_MODULE_NAME ".InvalidPatternError",
        "A gitignore pattern pathspec rejects (its GitIgnorePatternError).",
        PyExc_ValueError, NULL);
    if (st->InvalidPatternError == NULL
        || PyModule_AddObjectRef(module, "InvalidPatternError", st->InvalidPatternError) < 0) {
        return -1;
    }
    PyObject *re_error = rfn_re_error();
    if (re_error == NULL) {
        return -1;
    }
    st->PatternRegexError = PyErr_NewExceptionWithDoc(
        RFN_MODULE_NAME ".PatternRegexError",
        "A gitignore pattern whose regex pathspec cannot compile (re.error).", re_error, NULL);
    Py_DECREF(re_error);
    if (st->PatternRegexError == NULL
        || PyModule_AddObjectRef(module, "PatternRegexError", st->PatternRegexError) < 0) {
        return -1;
    }
    st->IgnoreSpecType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &rfn_ignorespec_spec,
                                                                   NULL);
    if (st->IgnoreSpecType == NULL
        || PyModule_AddObjectRef(module, "IgnoreSpec", (PyObject *)st->IgnoreSpecType) < 0) {
        return -1;
    }
    return PyModule_AddFunctions(module, rfn_ignore_functions);
}


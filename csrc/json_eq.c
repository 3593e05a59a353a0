/* The fast path of flash's config comparison: do two plain configs print the
 * same JSON text, and where do they differ? (compare.c: the whole
 * comparison, and the slow path.)
 *
 * flash decides whether a deployed resource rolls by comparing
 *
 *   json.dumps(_resource_config_for_compare(config), sort_keys=True)
 *
 * of the local and the deployed config, where _resource_config_for_compare is
 * copy.deepcopy(config) minus RUNTIME_RESOURCE_FIELDS at the top level.
 *
 * Two JSON texts are equal iff the values have the same JSON category and the
 * same canonical text, recursively, with the same sorted key sequence. The
 * fast path decides that directly on the objects, without copying or
 * serialising, for "plain" values: exact dict, list, tuple, str, int, float,
 * True, False and None, with keys json accepts. It never runs Python code, so
 * nothing can change under it. Everything else (subclasses, values json
 * rejects, mixed key types, cycles, nesting past the recursion limit, ints
 * over the str-conversion limit) sends the whole comparison to the slow path,
 * which evaluates flash's expression itself: deep copy, pop, json.dumps, in
 * flash's order, so the exception (or the answer) is flash's.
 *
 * Canonical text, as CPython's C encoder (_json.c) writes it:
 *   str    ensure_ascii escapes: equal iff the UTF-16 code units are equal
 *          ("\U0001F600" and the surrogate pair "\ud83d\ude00" print alike)
 *   int    int.__repr__: equal iff equal value
 *   float  float.__repr__, NaN/Infinity/-Infinity: equal iff the same double,
 *          except that every NaN prints "NaN" (so -0.0 != 0.0, NaN == NaN)
 *   keys   sorted by the ORIGINAL keys, then str as-is, float via repr,
 *          True/False/None as true/false/null, int via repr
 */
#include "diff.h"

#include <math.h>
#include <string.h>

/* flash 1.21.0: ServerlessResource.RUNTIME_FIELDS | {"id", "endpoint_id"} */
#define RFN_FIELD(s) {s, (Py_ssize_t)sizeof(s) - 1}
static const struct {
    const char *name;
    Py_ssize_t len;
} rfn_runtime_fields[] = {
    RFN_FIELD("template"), RFN_FIELD("templateId"), RFN_FIELD("aiKey"), RFN_FIELD("userId"),
    RFN_FIELD("createdAt"), RFN_FIELD("activeBuildid"), RFN_FIELD("computeType"),
    RFN_FIELD("hubRelease"), RFN_FIELD("repo"), RFN_FIELD("flashBootType"), RFN_FIELD("id"),
    RFN_FIELD("endpoint_id"),
};
#undef RFN_FIELD
#define RFN_N_RUNTIME_FIELDS (sizeof(rfn_runtime_fields) / sizeof(rfn_runtime_fields[0]))

/* ---- JSON categories and scalar text equality ----------------------------- */

typedef enum {
    RFN_K_OTHER,        /* not plain: the slow path decides */
    RFN_K_NONE,
    RFN_K_TRUE,
    RFN_K_FALSE,
    RFN_K_STR,
    RFN_K_INT,
    RFN_K_FLOAT,
    RFN_K_ARRAY,
    RFN_K_OBJECT,
} rfn_kind;

static rfn_kind
rfn_kind_of(PyObject *o)
{
    if (o == Py_None) {
        return RFN_K_NONE;
    }
    if (o == Py_True) {
        return RFN_K_TRUE;
    }
    if (o == Py_False) {
        return RFN_K_FALSE;
    }
    PyTypeObject *t = Py_TYPE(o);
    if (t == &PyUnicode_Type) {
#if PY_VERSION_HEX < 0x030C0000
        if (!PyUnicode_IS_READY(o)) {
            return RFN_K_OTHER;
        }
#endif
        return RFN_K_STR;
    }
    if (t == &PyLong_Type) {
        return RFN_K_INT;
    }
    if (t == &PyFloat_Type) {
        return RFN_K_FLOAT;
    }
    if (t == &PyList_Type || t == &PyTuple_Type) {
        return RFN_K_ARRAY;
    }
    if (t == &PyDict_Type) {
        return RFN_K_OBJECT;
    }
    return RFN_K_OTHER;
}

/* UTF-16 code units of a str, astral characters split into surrogate pairs:
 * exactly what ensure_ascii escapes. */
typedef struct {
    const void *data;
    int kind;
    Py_ssize_t len;
    Py_ssize_t i;
    Py_UCS4 low;        /* pending low surrogate, or 0 */
} rfn_u16;

static void
rfn_u16_init(rfn_u16 *it, PyObject *s)
{
    it->data = PyUnicode_DATA(s);
    it->kind = PyUnicode_KIND(s);
    it->len = PyUnicode_GET_LENGTH(s);
    it->i = 0;
    it->low = 0;
}

/* Next unit, or -1 at the end. */
static long
rfn_u16_next(rfn_u16 *it)
{
    if (it->low != 0) {
        Py_UCS4 u = it->low;
        it->low = 0;
        return (long)u;
    }
    if (it->i >= it->len) {
        return -1;
    }
    Py_UCS4 c = PyUnicode_READ(it->kind, it->data, it->i);
    it->i++;
    if (c < 0x10000) {
        return (long)c;
    }
    c -= 0x10000;
    it->low = 0xDC00 + (c & 0x3FF);
    return (long)(0xD800 + (c >> 10));
}

static int
rfn_str_json_eq(PyObject *a, PyObject *b)
{
    if (a == b) {
        return 1;
    }
    int ka = PyUnicode_KIND(a), kb = PyUnicode_KIND(b);
    if (ka == kb && PyUnicode_GET_LENGTH(a) == PyUnicode_GET_LENGTH(b)
        && memcmp(PyUnicode_DATA(a), PyUnicode_DATA(b),
                  (size_t)PyUnicode_GET_LENGTH(a) * (size_t)ka) == 0) {
        return 1;
    }
    /* Without an astral character on either side the units are the code
     * points, and different code points print differently. */
    if (ka != PyUnicode_4BYTE_KIND && kb != PyUnicode_4BYTE_KIND) {
        return 0;
    }
    rfn_u16 ia, ib;
    rfn_u16_init(&ia, a);
    rfn_u16_init(&ib, b);
    for (;;) {
        long ua = rfn_u16_next(&ia), ub = rfn_u16_next(&ib);
        if (ua != ub) {
            return 0;
        }
        if (ua < 0) {
            return 1;
        }
    }
}

/* A str holding a surrogate code point can print like a different str (see
 * above), so such keys cannot be matched by hash lookup. */
static int
rfn_has_surrogate(PyObject *s)
{
    int kind = PyUnicode_KIND(s);
    if (kind == PyUnicode_1BYTE_KIND) {
        return 0;
    }
    const void *data = PyUnicode_DATA(s);
    Py_ssize_t n = PyUnicode_GET_LENGTH(s);
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (c >= 0xD800 && c <= 0xDFFF) {
            return 1;
        }
    }
    return 0;
}

/* 1 equal, 0 different, -1 error (an int json cannot print: ValueError). */
static int
rfn_int_json_eq(PyObject *a, PyObject *b)
{
    int oa, ob;
    long long va = PyLong_AsLongLongAndOverflow(a, &oa);
    long long vb = PyLong_AsLongLongAndOverflow(b, &ob);
    if (!oa && !ob) {
        return va == vb;
    }
    int result = -1;
    PyObject *ra = PyLong_Type.tp_repr(a);
    PyObject *rb = ra ? PyLong_Type.tp_repr(b) : NULL;
    if (rb != NULL) {
        result = PyUnicode_Compare(ra, rb) == 0;
    }
    Py_XDECREF(ra);
    Py_XDECREF(rb);
    return result;
}

/* 0, or -1 when json cannot print the int (over sys.get_int_max_str_digits). */
static int
rfn_int_check(PyObject *o)
{
    int overflow;
    (void)PyLong_AsLongLongAndOverflow(o, &overflow);
    if (!overflow) {
        return 0;
    }
    PyObject *r = PyLong_Type.tp_repr(o);
    Py_XDECREF(r);
    return r == NULL ? -1 : 0;
}

static int
rfn_float_json_eq(PyObject *a, PyObject *b)
{
    double x = PyFloat_AS_DOUBLE(a), y = PyFloat_AS_DOUBLE(b);
    if (isnan(x) || isnan(y)) {
        return isnan(x) && isnan(y);
    }
    return x == y && !signbit(x) == !signbit(y);
}

/* ---- the walk ----------------------------------------------------------- */

/* One step from the config down to the current value. Keys are borrowed:
 * nothing runs Python code during a walk, so the dicts holding them cannot
 * change under it. */
typedef struct {
    PyObject *key;          /* a dict key, or NULL for a list index */
    Py_ssize_t index;
} rfn_step;

typedef struct {
    rfn_state *st;
    int differs;            /* some difference was seen */
    int unsure;             /* non-plain input met: the slow path must decide */
    PyObject *changes;      /* explaining: list of (path, kind, old, new); else NULL */
    rfn_step *path;         /* explaining: the steps to the current value */
    Py_ssize_t depth;
    Py_ssize_t cap;
} rfn_walk;

static int rfn_walk_value(rfn_walk *w, PyObject *a, PyObject *b);
static int rfn_check(rfn_walk *w, PyObject *o);

static int
rfn_path_push(rfn_walk *w, PyObject *key, Py_ssize_t index)
{
    if (w->changes == NULL) {
        return 0;
    }
    if (w->depth == w->cap) {
        Py_ssize_t cap = w->cap ? 2 * w->cap : 16;
        rfn_step *grown = PyMem_Realloc(w->path, (size_t)cap * sizeof(rfn_step));
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        w->path = grown;
        w->cap = cap;
    }
    w->path[w->depth].key = key;
    w->path[w->depth].index = index;
    w->depth++;
    return 0;
}

static void
rfn_path_pop(rfn_walk *w)
{
    if (w->changes != NULL) {
        w->depth--;
    }
}

static PyObject *
rfn_path_tuple(const rfn_walk *w)
{
    PyObject *path = PyTuple_New(w->depth);
    for (Py_ssize_t i = 0; path != NULL && i < w->depth; i++) {
        const rfn_step *s = &w->path[i];
        PyObject *part = s->key ? Py_NewRef(s->key) : PyLong_FromSsize_t(s->index);
        if (part == NULL) {
            Py_CLEAR(path);
            break;
        }
        PyTuple_SET_ITEM(path, i, part);
    }
    return path;
}

/* Append (path, kind, old, new) to changes; path NULL is (), old/new NULL
 * is None. The one builder of a change, for all three files. */
int
rfn_change_append(PyObject *changes, PyObject *path, PyObject *kind, PyObject *old, PyObject *new_)
{
    PyObject *empty = path == NULL ? PyTuple_New(0) : NULL;
    if (path == NULL && empty == NULL) {
        return -1;
    }
    PyObject *item = PyTuple_Pack(4, path ? path : empty, kind, old ? old : Py_None,
                                  new_ ? new_ : Py_None);
    int rc = item ? PyList_Append(changes, item) : -1;
    Py_XDECREF(item);
    Py_XDECREF(empty);
    return rc;
}

/* Record a difference at the current path; old is the deployed side, new_
 * the local one (NULL: that side has nothing there). */
static int
rfn_note(rfn_walk *w, PyObject *kind, PyObject *old, PyObject *new_)
{
    w->differs = 1;
    if (w->changes == NULL) {
        return 0;
    }
    PyObject *path = rfn_path_tuple(w);
    int rc = path ? rfn_change_append(w->changes, path, kind, old, new_) : -1;
    Py_XDECREF(path);
    return rc;
}

/* Is this exact str key one of RUNTIME_RESOURCE_FIELDS (popped by flash)? */
static int
rfn_is_runtime_field(PyObject *key)
{
    if (!PyUnicode_IS_ASCII(key)) {
        return 0;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(key);
    const char *s = (const char *)PyUnicode_1BYTE_DATA(key);
    for (size_t i = 0; i < RFN_N_RUNTIME_FIELDS; i++) {
        if (rfn_runtime_fields[i].len == n && memcmp(rfn_runtime_fields[i].name, s, (size_t)n) == 0) {
            return 1;
        }
    }
    return 0;
}

static int
rfn_is_popped(PyObject *key, int top)
{
    return top && PyUnicode_CheckExact(key) && rfn_is_runtime_field(key);
}

/* How a dict's keys can be compared. */
enum { RFN_KEYS_STR, RFN_KEYS_SORT, RFN_KEYS_OTHER };

/* Classify d's keys (RFN_KEYS_*; OTHER also sets w->unsure). At the top
 * level, also count the keys flash pops into *popped and check their values
 * are plain: flash deep-copies them before popping. -1 on error. */
static int
rfn_scan_keys(rfn_walk *w, PyObject *d, int top, Py_ssize_t *popped)
{
    int cls = RFN_KEYS_STR;
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    *popped = 0;
    while (PyDict_Next(d, &pos, &k, &v)) {
        switch (rfn_kind_of(k)) {
        case RFN_K_STR:
            if (rfn_has_surrogate(k)) {
                cls = RFN_KEYS_SORT;
            }
            else if (top && rfn_is_runtime_field(k)) {
                (*popped)++;
                if (rfn_check(w, v) < 0) {
                    return -1;
                }
            }
            break;
        case RFN_K_INT:
        case RFN_K_FLOAT:
        case RFN_K_TRUE:
        case RFN_K_FALSE:
        case RFN_K_NONE:
            cls = RFN_KEYS_SORT;
            break;
        default:
            w->unsure = 1;
            return RFN_KEYS_OTHER;
        }
        if (w->unsure) {
            return RFN_KEYS_OTHER;
        }
    }
    return cls;
}

/* The text json writes for a plain key (before quoting). New reference. */
static PyObject *
rfn_key_text(rfn_state *st, PyObject *key)
{
    switch (rfn_kind_of(key)) {
    case RFN_K_STR:
        return Py_NewRef(key);
    case RFN_K_TRUE:
        return Py_NewRef(st->str_true);
    case RFN_K_FALSE:
        return Py_NewRef(st->str_false);
    case RFN_K_NONE:
        return Py_NewRef(st->str_null);
    case RFN_K_INT:
        return PyLong_Type.tp_repr(key);
    case RFN_K_FLOAT: {
        double x = PyFloat_AS_DOUBLE(key);
        if (isnan(x)) {
            return PyUnicode_FromString("NaN");
        }
        if (isinf(x)) {
            return PyUnicode_FromString(x > 0 ? "Infinity" : "-Infinity");
        }
        return PyFloat_Type.tp_repr(key);
    }
    default:
        PyErr_SetString(PyExc_SystemError, "rfn_key_text: key is not plain");
        return NULL;
    }
}

/* The keys of d (minus the popped ones at the top level), sorted as json
 * sorts them. A TypeError from the sort (mixed key types) comes back as
 * NULL like any other error. */
static PyObject *
rfn_sorted_keys(PyObject *d, int top)
{
    PyObject *keys = PyList_New(0);
    if (keys == NULL) {
        return NULL;
    }
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    while (PyDict_Next(d, &pos, &k, &v)) {
        if (!rfn_is_popped(k, top) && PyList_Append(keys, k) < 0) {
            Py_DECREF(keys);
            return NULL;
        }
    }
    if (PyList_Sort(keys) < 0) {
        Py_CLEAR(keys);
    }
    return keys;
}

/* Only one side exists: a difference; the value must still serialise. */
static int
rfn_walk_one_sided(rfn_walk *w, PyObject *a, PyObject *b)
{
    PyObject *kind = a != NULL ? w->st->kind_added : w->st->kind_removed;
    if (rfn_note(w, kind, b, a) < 0) {
        return -1;
    }
    return rfn_check(w, a != NULL ? a : b);
}

/* d[key] for a key taken from d; NULL with an exception if it vanished. */
PyObject *
rfn_lookup_own_key(PyObject *d, PyObject *key)
{
    PyObject *v = PyDict_GetItemWithError(d, key);
    if (v == NULL && !PyErr_Occurred()) {
        PyErr_SetString(PyExc_RuntimeError, "dictionary changed during comparison");
    }
    return v;
}

static int
rfn_walk_entry(rfn_walk *w, PyObject *key, PyObject *a, PyObject *b)
{
    if (rfn_path_push(w, key, 0) < 0) {
        return -1;
    }
    int rc = rfn_walk_value(w, a, b);
    rfn_path_pop(w);
    return rc;
}

/* Both dicts have only str keys without surrogates: the texts are equal iff
 * the key sets and the values are, so no sorting is needed (changes are
 * sorted by path at the end). Every key is exact str: lookups run no Python
 * code. popped_b: how many of b's keys flash pops. */
static int
rfn_walk_dict_hashed(rfn_walk *w, PyObject *a, PyObject *b, int top, Py_ssize_t popped_b)
{
    Py_ssize_t pos = 0, matched = 0;
    PyObject *k, *va, *vb;
    while (PyDict_Next(a, &pos, &k, &va)) {
        if (top && rfn_is_runtime_field(k)) {
            continue;
        }
        vb = PyDict_GetItemWithError(b, k);
        if (vb == NULL && PyErr_Occurred()) {
            return -1;
        }
        matched += vb != NULL;
        if (rfn_walk_entry(w, k, va, vb) < 0) {
            return -1;
        }
        if (w->unsure) {
            return 0;
        }
    }
    if (matched + popped_b == PyDict_GET_SIZE(b)) {
        return 0;
    }
    pos = 0;
    while (PyDict_Next(b, &pos, &k, &vb)) {
        if (top && rfn_is_runtime_field(k)) {
            continue;
        }
        int in_a = PyDict_Contains(a, k);
        if (in_a < 0 || (!in_a && rfn_walk_entry(w, k, NULL, vb) < 0)) {
            return -1;
        }
        if (w->unsure) {
            return 0;
        }
    }
    return 0;
}

/* Texts of the keys at one position of two sorted key lists (either may be
 * missing): *same is 1 when both exist and print alike. Computing a text also
 * checks json can print the key (an int past the digit limit cannot). */
static int
rfn_keys_match(rfn_state *st, PyObject *key_a, PyObject *key_b, int *same)
{
    PyObject *ta = key_a ? rfn_key_text(st, key_a) : NULL;
    if (key_a != NULL && ta == NULL) {
        return -1;
    }
    PyObject *tb = key_b ? rfn_key_text(st, key_b) : NULL;
    if (key_b != NULL && tb == NULL) {
        Py_XDECREF(ta);
        return -1;
    }
    *same = ta != NULL && tb != NULL && rfn_str_json_eq(ta, tb);
    Py_XDECREF(ta);
    Py_XDECREF(tb);
    return 0;
}

/* Keys that need json's sort (non-str keys, or str keys with surrogates):
 * sort both key lists like json, compare the key texts in order and the
 * values pairwise. Explaining reports the whole dict as one change. */
static int
rfn_walk_dict_sorted(rfn_walk *w, PyObject *a, PyObject *b, int top)
{
    int rc = -1;
    PyObject *saved_changes = w->changes;
    int saved_differs = w->differs;
    PyObject *ka = rfn_sorted_keys(a, top);
    PyObject *kb = ka ? rfn_sorted_keys(b, top) : NULL;
    if (kb == NULL) {
        goto exit;
    }
    w->changes = NULL;
    w->differs = 0;
    Py_ssize_t na = PyList_GET_SIZE(ka), nb = PyList_GET_SIZE(kb);
    Py_ssize_t n = na > nb ? na : nb;
    for (Py_ssize_t i = 0; i < n && !w->unsure; i++) {
        PyObject *key_a = i < na ? PyList_GET_ITEM(ka, i) : NULL;
        PyObject *key_b = i < nb ? PyList_GET_ITEM(kb, i) : NULL;
        PyObject *va = NULL, *vb = NULL;
        int same;
        if (rfn_keys_match(w->st, key_a, key_b, &same) < 0
            || (key_a != NULL && (va = rfn_lookup_own_key(a, key_a)) == NULL)
            || (key_b != NULL && (vb = rfn_lookup_own_key(b, key_b)) == NULL)) {
            goto exit;
        }
        w->differs |= !same;
        if (rfn_walk_value(w, va, vb) < 0) {
            goto exit;
        }
    }
    rc = 0;

exit:
    w->changes = saved_changes;
    if (rc == 0 && w->differs && !w->unsure) {
        rc = rfn_note(w, w->st->kind_changed, b, a);
    }
    w->differs |= saved_differs;
    Py_XDECREF(ka);
    Py_XDECREF(kb);
    return rc;
}

/* Two exact dicts; at the top level (top) flash's runtime fields are left
 * out, as flash pops them before serialising. */
static int
rfn_walk_dict(rfn_walk *w, PyObject *a, PyObject *b, int top)
{
    Py_ssize_t popped_a, popped_b;
    int ca = rfn_scan_keys(w, a, top, &popped_a);
    if (ca < 0 || ca == RFN_KEYS_OTHER) {
        return ca < 0 ? -1 : 0;
    }
    int cb = rfn_scan_keys(w, b, top, &popped_b);
    if (cb < 0 || cb == RFN_KEYS_OTHER) {
        return cb < 0 ? -1 : 0;
    }
    if (rfn_stack_check(0) < 0 || Py_EnterRecursiveCall(" while comparing configs")) {
        return -1;
    }
    int rc;
    if (ca == RFN_KEYS_SORT || cb == RFN_KEYS_SORT) {
        rc = rfn_walk_dict_sorted(w, a, b, top);
    }
    else {
        rc = rfn_walk_dict_hashed(w, a, b, top, popped_b);
    }
    Py_LeaveRecursiveCall();
    return rc;
}

/* Two lists/tuples (json writes both as arrays). */
static int
rfn_walk_array(rfn_walk *w, PyObject *a, PyObject *b)
{
    Py_ssize_t na = PySequence_Fast_GET_SIZE(a), nb = PySequence_Fast_GET_SIZE(b);
    PyObject **ia = PySequence_Fast_ITEMS(a), **ib = PySequence_Fast_ITEMS(b);
    if (na != nb && w->changes != NULL) {
        /* A different length: report the array, not index shifts. */
        if (rfn_note(w, w->st->kind_changed, b, a) < 0 || rfn_check(w, a) < 0) {
            return -1;
        }
        return w->unsure ? 0 : rfn_check(w, b);
    }
    if (rfn_stack_check(0) < 0 || Py_EnterRecursiveCall(" while comparing configs")) {
        return -1;
    }
    int rc = 0;
    Py_ssize_t n = na > nb ? na : nb;
    for (Py_ssize_t i = 0; i < n && !w->unsure && rc == 0; i++) {
        rc = rfn_path_push(w, NULL, i);
        if (rc == 0) {
            rc = rfn_walk_value(w, i < na ? ia[i] : NULL, i < nb ? ib[i] : NULL);
            rfn_path_pop(w);
        }
    }
    Py_LeaveRecursiveCall();
    return rc;
}

/* One value, both sides. Either may be NULL (the key or index is missing). */
static int
rfn_walk_value(rfn_walk *w, PyObject *a, PyObject *b)
{
    if (a == NULL || b == NULL) {
        return rfn_walk_one_sided(w, a, b);
    }
    if (a == b) {
        return rfn_check(w, a);
    }
    rfn_kind ka = rfn_kind_of(a), kb = rfn_kind_of(b);
    if (ka == RFN_K_OTHER || kb == RFN_K_OTHER) {
        w->unsure = 1;
        return 0;
    }
    if (ka != kb) {
        if (rfn_note(w, w->st->kind_changed, b, a) < 0 || rfn_check(w, a) < 0) {
            return -1;
        }
        return w->unsure ? 0 : rfn_check(w, b);
    }
    int eq;
    switch (ka) {
    case RFN_K_OBJECT:
        return rfn_walk_dict(w, a, b, 0);
    case RFN_K_ARRAY:
        return rfn_walk_array(w, a, b);
    case RFN_K_STR:
        eq = rfn_str_json_eq(a, b);
        break;
    case RFN_K_INT:
        eq = rfn_int_json_eq(a, b);
        break;
    case RFN_K_FLOAT:
        eq = rfn_float_json_eq(a, b);
        break;
    default:
        eq = 1;  /* None, True, False: singletons */
        break;
    }
    if (eq < 0) {
        return -1;
    }
    return eq ? 0 : rfn_note(w, w->st->kind_changed, b, a);
}

/* json sorts and converts non-str keys: both must succeed. */
static int
rfn_check_sorted_keys(rfn_walk *w, PyObject *d)
{
    PyObject *keys = rfn_sorted_keys(d, 0);
    if (keys == NULL) {
        return -1;
    }
    int rc = 0;
    for (Py_ssize_t i = 0; rc == 0 && i < PyList_GET_SIZE(keys); i++) {
        PyObject *text = rfn_key_text(w->st, PyList_GET_ITEM(keys, i));
        rc = text == NULL ? -1 : 0;
        Py_XDECREF(text);
    }
    Py_DECREF(keys);
    return rc;
}

static int
rfn_check_dict(rfn_walk *w, PyObject *d)
{
    Py_ssize_t unused;
    int cls = rfn_scan_keys(w, d, 0, &unused);
    if (cls < 0 || cls == RFN_KEYS_OTHER) {
        return cls < 0 ? -1 : 0;
    }
    if (cls == RFN_KEYS_SORT && rfn_check_sorted_keys(w, d) < 0) {
        return -1;
    }
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    while (PyDict_Next(d, &pos, &k, &v) && !w->unsure) {
        if (rfn_check(w, v) < 0) {
            return -1;
        }
    }
    return 0;
}

/* One side only: is it plain all the way down? Sets w->unsure if not. */
static int
rfn_check(rfn_walk *w, PyObject *o)
{
    int rc = 0;
    switch (rfn_kind_of(o)) {
    case RFN_K_OTHER:
        w->unsure = 1;
        return 0;
    case RFN_K_INT:
        return rfn_int_check(o);
    case RFN_K_ARRAY:
    case RFN_K_OBJECT:
        break;
    default:
        return 0;
    }
    if (rfn_stack_check(0) < 0 || Py_EnterRecursiveCall(" while comparing configs")) {
        return -1;
    }
    if (PyDict_CheckExact(o)) {
        rc = rfn_check_dict(w, o);
    }
    else {
        Py_ssize_t n = PySequence_Fast_GET_SIZE(o);
        PyObject **items = PySequence_Fast_ITEMS(o);
        for (Py_ssize_t i = 0; i < n && rc == 0 && !w->unsure; i++) {
            rc = rfn_check(w, items[i]);
        }
    }
    Py_LeaveRecursiveCall();
    return rc;
}

/* Fast path over two configs. Returns 1 differ, 0 equal, 2 undecided (the
 * slow path must run), -1 error. Only MemoryError is reported as an error:
 * anything else the walk trips over (RecursionError, a sort TypeError, an
 * int json cannot print) is for the slow path to reproduce exactly.
 * With changes (an empty list), the differences are appended to it, sorted
 * by path, which is json's order; undecided leaves it empty. */
int
rfn_fast_compare(rfn_state *st, PyObject *local, PyObject *state, PyObject *changes)
{
    if (!PyDict_CheckExact(local) || !PyDict_CheckExact(state)) {
        return RFN_UNDECIDED;
    }
    rfn_walk w = {.st = st, .changes = changes};
    int rc = rfn_walk_dict(&w, local, state, 1);
    PyMem_Free(w.path);
    if (rc < 0 && PyErr_ExceptionMatches(PyExc_MemoryError)) {
        return -1;
    }
    if (rc < 0 || w.unsure) {
        PyErr_Clear();
        if (changes != NULL && PyList_SetSlice(changes, 0, PyList_GET_SIZE(changes), NULL) < 0) {
            return -1;
        }
        return RFN_UNDECIDED;
    }
    if (changes != NULL && PyList_Sort(changes) < 0) {
        return -1;
    }
    return w.differs ? RFN_DIFFER : RFN_EQUAL;
}

/* ---- module state and exec ------------------------------------------------ */

static const rfn_interned rfn_json_eq_strings[] = {
    {offsetof(rfn_state, str_true), "true"},
    {offsetof(rfn_state, str_false), "false"},
    {offsetof(rfn_state, str_null), "null"},
    {offsetof(rfn_state, kind_changed), "changed"},
    {offsetof(rfn_state, kind_added), "added"},
    {offsetof(rfn_state, kind_removed), "removed"},
};

static PyObject *
rfn_make_runtime_fields(void)
{
    PyObject *result = NULL;
    PyObject *names = PyList_New(0);
    if (names == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < RFN_N_RUNTIME_FIELDS; i++) {
        PyObject *s = PyUnicode_InternFromString(rfn_runtime_fields[i].name);
        int rc = s ? PyList_Append(names, s) : -1;
        Py_XDECREF(s);
        if (rc < 0) {
            goto exit;
        }
    }
    result = PyFrozenSet_New(names);

exit:
    Py_DECREF(names);
    return result;
}

int
rfn_json_eq_exec(PyObject *module)
{
    rfn_state *st = rfn_get_state(module);
    size_t n = sizeof(rfn_json_eq_strings) / sizeof(rfn_json_eq_strings[0]);
    if (rfn_intern_strings(st, rfn_json_eq_strings, n) < 0) {
        return -1;
    }
    st->runtime_fields = rfn_make_runtime_fields();
    if (st->runtime_fields == NULL
        || PyModule_AddObjectRef(module, "RUNTIME_RESOURCE_FIELDS", st->runtime_fields) < 0) {
        return -1;
    }
    return 0;
}

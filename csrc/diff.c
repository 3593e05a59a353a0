/* Deploy-time change detection: flash's fingerprint injection, config
 * comparison and reconciliation plan.
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
#include "rfn.h"

#include <math.h>
#include <string.h>

#define RFN_FP_ENV_KEY "_FLASH_SOURCE_FINGERPRINT"

/* Objects kept in rfn_state.diff_objs. */
enum {
    RFN_D_RUNTIME_FIELDS,   /* frozenset: flash's RUNTIME_RESOURCE_FIELDS */
    RFN_D_FP_KEY,
    RFN_D_ENV,
    RFN_D_RESOURCES,
    RFN_D_RESOURCES_ENDPOINTS,
    RFN_D_SOURCE_FINGERPRINT,
    RFN_D_CLIENT_MODE,
    RFN_D_ENDPOINT_ID,
    RFN_D_AI_KEY,
    RFN_D_TRUE,
    RFN_D_FALSE,
    RFN_D_NULL,
    RFN_D_CHANGED,
    RFN_D_ADDED,
    RFN_D_REMOVED,
    RFN_D_ENDPOINT_MISSING,
    RFN_D_COUNT
};
_Static_assert(RFN_D_COUNT <= RFN_DIFF_NOBJ, "raise RFN_DIFF_NOBJ in rfn.h");

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

static const struct {
    int index;
    const char *text;
} rfn_diff_strings[] = {
    {RFN_D_FP_KEY, RFN_FP_ENV_KEY},
    {RFN_D_ENV, "env"},
    {RFN_D_RESOURCES, "resources"},
    {RFN_D_RESOURCES_ENDPOINTS, "resources_endpoints"},
    {RFN_D_SOURCE_FINGERPRINT, "source_fingerprint"},
    {RFN_D_CLIENT_MODE, "client_mode"},
    {RFN_D_ENDPOINT_ID, "endpoint_id"},
    {RFN_D_AI_KEY, "aiKey"},
    {RFN_D_TRUE, "true"},
    {RFN_D_FALSE, "false"},
    {RFN_D_NULL, "null"},
    {RFN_D_CHANGED, "changed"},
    {RFN_D_ADDED, "added"},
    {RFN_D_REMOVED, "removed"},
    {RFN_D_ENDPOINT_MISSING, "endpoint_missing"},
};

#define RFN_OBJ(st, i) ((st)->diff_objs[(i)])

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

/* Record a difference at the current path; old is the deployed side, new_
 * the local one (NULL: that side has nothing there). */
static int
rfn_note(rfn_walk *w, int kind, PyObject *old, PyObject *new_)
{
    w->differs = 1;
    if (w->changes == NULL) {
        return 0;
    }
    int rc = -1;
    PyObject *path = rfn_path_tuple(w);
    PyObject *item = NULL;
    if (path != NULL) {
        item = PyTuple_Pack(4, path, RFN_OBJ(w->st, kind), old ? old : Py_None, new_ ? new_ : Py_None);
    }
    if (item != NULL) {
        rc = PyList_Append(w->changes, item);
    }
    Py_XDECREF(item);
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
        return Py_NewRef(RFN_OBJ(st, RFN_D_TRUE));
    case RFN_K_FALSE:
        return Py_NewRef(RFN_OBJ(st, RFN_D_FALSE));
    case RFN_K_NONE:
        return Py_NewRef(RFN_OBJ(st, RFN_D_NULL));
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
    int kind = a != NULL ? RFN_D_ADDED : RFN_D_REMOVED;
    if (rfn_note(w, kind, b, a) < 0) {
        return -1;
    }
    return rfn_check(w, a != NULL ? a : b);
}

/* d[key] for a key taken from d; NULL with an exception if it vanished. */
static PyObject *
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
        rc = rfn_note(w, RFN_D_CHANGED, b, a);
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
        if (rfn_note(w, RFN_D_CHANGED, b, a) < 0 || rfn_check(w, a) < 0) {
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
        if (rfn_note(w, RFN_D_CHANGED, b, a) < 0 || rfn_check(w, a) < 0) {
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
    return eq ? 0 : rfn_note(w, RFN_D_CHANGED, b, a);
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
enum { RFN_EQUAL = 0, RFN_DIFFER = 1, RFN_UNDECIDED = 2 };

static int
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

/* ---- deep copy (copy.deepcopy semantics) ----------------------------------- */

typedef struct {
    PyObject *memo;          /* id(original) -> copy, shared with copy.deepcopy */
    PyObject *py_deepcopy;   /* copy.deepcopy, fetched on first use */
} rfn_copier;

static PyObject *rfn_deepcopy(rfn_copier *c, PyObject *o);

static PyObject *
rfn_deepcopy_delegate(rfn_copier *c, PyObject *o)
{
    if (c->py_deepcopy == NULL) {
        PyObject *mod = PyImport_ImportModule("copy");
        if (mod == NULL) {
            return NULL;
        }
        c->py_deepcopy = PyObject_GetAttrString(mod, "deepcopy");
        Py_DECREF(mod);
        if (c->py_deepcopy == NULL) {
            return NULL;
        }
    }
    return PyObject_CallFunctionObjArgs(c->py_deepcopy, o, c->memo, NULL);
}

/* Copy the entries of dict src into y, as copy._deepcopy_dict does. */
static int
rfn_deepcopy_dict_items(rfn_copier *c, PyObject *src, PyObject *y)
{
    Py_ssize_t pos = 0, size = PyDict_GET_SIZE(src);
    PyObject *k, *v;
    while (PyDict_Next(src, &pos, &k, &v)) {
        Py_INCREF(k);
        Py_INCREF(v);
        PyObject *ck = rfn_deepcopy(c, k);
        PyObject *cv = ck ? rfn_deepcopy(c, v) : NULL;
        int rc = cv ? PyDict_SetItem(y, ck, cv) : -1;
        Py_DECREF(k);
        Py_DECREF(v);
        Py_XDECREF(ck);
        Py_XDECREF(cv);
        if (rc < 0) {
            return -1;
        }
        if (PyDict_GET_SIZE(src) != size) {
            PyErr_SetString(PyExc_RuntimeError, "dictionary changed size during iteration");
            return -1;
        }
    }
    return 0;
}

static int
rfn_deepcopy_list_items(rfn_copier *c, PyObject *src, PyObject *y)
{
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(src); i++) {
        PyObject *item = Py_NewRef(PyList_GET_ITEM(src, i));
        PyObject *copy = rfn_deepcopy(c, item);
        Py_DECREF(item);
        int rc = copy ? PyList_Append(y, copy) : -1;
        Py_XDECREF(copy);
        if (rc < 0) {
            return -1;
        }
    }
    return 0;
}

/* Exact dict and list are copied here (memoised like copy.deepcopy, so
 * shared and cyclic structure survives); atomic exact scalars are returned
 * as they are; everything else goes to copy.deepcopy with the same memo. */
static PyObject *
rfn_deepcopy(rfn_copier *c, PyObject *o)
{
    PyTypeObject *t = Py_TYPE(o);
    if (o == Py_None || t == &PyBool_Type || t == &PyUnicode_Type || t == &PyLong_Type
        || t == &PyFloat_Type) {
        return Py_NewRef(o);
    }
    if (t != &PyDict_Type && t != &PyList_Type) {
        return rfn_deepcopy_delegate(c, o);
    }
    PyObject *y = NULL;
    PyObject *id = PyLong_FromVoidPtr(o);
    if (id == NULL) {
        return NULL;
    }
    PyObject *seen = PyDict_GetItemWithError(c->memo, id);
    if (seen != NULL || PyErr_Occurred()) {
        y = Py_XNewRef(seen);
        goto exit;
    }
    if (rfn_stack_check(0) < 0 || Py_EnterRecursiveCall(" while deep-copying a config")) {
        goto exit;
    }
    y = t == &PyDict_Type ? PyDict_New() : PyList_New(0);
    if (y != NULL && PyDict_SetItem(c->memo, id, y) < 0) {
        Py_CLEAR(y);
    }
    if (y != NULL) {
        int rc = t == &PyDict_Type ? rfn_deepcopy_dict_items(c, o, y)
                                   : rfn_deepcopy_list_items(c, o, y);
        if (rc < 0) {
            Py_CLEAR(y);
        }
    }
    Py_LeaveRecursiveCall();

exit:
    Py_DECREF(id);
    return y;
}

/* copy.pop(field, None) for each runtime field. */
static int
rfn_pop_runtime_fields(rfn_state *st, PyObject *copy)
{
    PyObject *it = PyObject_GetIter(RFN_OBJ(st, RFN_D_RUNTIME_FIELDS));
    if (it == NULL) {
        return -1;
    }
    int rc = 0;
    PyObject *field;
    while (rc == 0 && (field = PyIter_Next(it)) != NULL) {
        if (PyDict_CheckExact(copy)) {
            rc = PyDict_Contains(copy, field);
            rc = rc > 0 ? PyDict_DelItem(copy, field) : rc;
        }
        else {
            PyObject *r = PyObject_CallMethod(copy, "pop", "OO", field, Py_None);
            rc = r == NULL ? -1 : 0;
            Py_XDECREF(r);
        }
        Py_DECREF(field);
    }
    Py_DECREF(it);
    return rc < 0 || PyErr_Occurred() ? -1 : 0;
}

/* _resource_config_for_compare(config). */
static PyObject *
rfn_config_for_compare(rfn_state *st, PyObject *config)
{
    rfn_copier c = {.memo = PyDict_New()};
    if (c.memo == NULL) {
        return NULL;
    }
    PyObject *copy = rfn_deepcopy(&c, config);
    Py_DECREF(c.memo);
    Py_XDECREF(c.py_deepcopy);
    if (copy == NULL) {
        return NULL;
    }
    if (rfn_pop_runtime_fields(st, copy) < 0) {
        Py_CLEAR(copy);
    }
    return copy;
}

/* json's C encoder recurses once per nesting level (~100-300 bytes of C
 * stack each, measured) and checks only the recursion limit. Before handing
 * it obj, measure obj's nesting without recursion: RecursionError when the
 * encoder could run out of C stack. Containers already on the path are not
 * entered again (json raises its "Circular reference detected" there). */
#define RFN_JSON_LEVEL_BYTES 1024

static int
rfn_json_stack_check(PyObject *obj)
{
    size_t avail = rfn_stack_avail();
    if (avail == SIZE_MAX) {
        return 0;
    }
    size_t max_depth = avail / RFN_JSON_LEVEL_BYTES;
    typedef struct {
        PyObject *o;            /* borrowed: nothing runs Python code meanwhile */
        Py_ssize_t pos;
    } rfn_frame;
    rfn_frame *stack = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    PyObject *on_path = PySet_New(NULL);
    if (on_path == NULL) {
        return -1;
    }
    PyObject *child = obj;
    for (;;) {
        if (child != NULL && (PyDict_Check(child) || PyList_Check(child) || PyTuple_Check(child))) {
            PyObject *id = PyLong_FromVoidPtr(child);
            int seen = id ? PySet_Contains(on_path, id) : -1;
            if (seen == 0) {
                if (n + 1 > max_depth) {
                    Py_DECREF(id);
                    PyErr_SetString(PyExc_RecursionError,
                                    "maximum recursion depth exceeded: config nested too deep "
                                    "for json.dumps to serialise on this C stack");
                    rc = -1;
                    break;
                }
                if (n == cap) {
                    size_t ncap = cap ? cap * 2 : 64;
                    rfn_frame *bigger = PyMem_Realloc(stack, ncap * sizeof(*stack));
                    if (bigger == NULL) {
                        Py_DECREF(id);
                        PyErr_NoMemory();
                        rc = -1;
                        break;
                    }
                    stack = bigger;
                    cap = ncap;
                }
                seen = PySet_Add(on_path, id);
                stack[n].o = child;
                stack[n].pos = 0;
                n++;
            }
            Py_XDECREF(id);
            if (seen < 0) {
                rc = -1;
                break;
            }
        }
        if (n == 0) {
            break;
        }
        /* Next child of the top container, or pop it. */
        rfn_frame *top = &stack[n - 1];
        child = NULL;
        if (PyDict_Check(top->o)) {
            PyObject *k, *v;
            if (PyDict_Next(top->o, &top->pos, &k, &v)) {
                child = v;
            }
        }
        else {
            Py_ssize_t size = PyList_Check(top->o) ? PyList_GET_SIZE(top->o) : PyTuple_GET_SIZE(top->o);
            if (top->pos < size) {
                child = PyList_Check(top->o) ? PyList_GET_ITEM(top->o, top->pos)
                                             : PyTuple_GET_ITEM(top->o, top->pos);
                top->pos++;
            }
        }
        if (child == NULL) {
            PyObject *id = PyLong_FromVoidPtr(top->o);
            if (id == NULL || PySet_Discard(on_path, id) < 0) {
                Py_XDECREF(id);
                rc = -1;
                break;
            }
            Py_DECREF(id);
            n--;
            if (n == 0) {
                break;
            }
        }
    }
    PyMem_Free(stack);
    Py_DECREF(on_path);
    return rc;
}

/* json.dumps(obj, sort_keys=True) */
static PyObject *
rfn_json_dumps_sorted(PyObject *obj)
{
    PyObject *result = NULL, *dumps = NULL, *args = NULL, *kwargs = NULL;
    if (rfn_json_stack_check(obj) < 0) {
        return NULL;
    }
    PyObject *json = PyImport_ImportModule("json");
    if (json == NULL) {
        goto exit;
    }
    dumps = PyObject_GetAttrString(json, "dumps");
    args = dumps ? PyTuple_Pack(1, obj) : NULL;
    kwargs = args ? Py_BuildValue("{s:O}", "sort_keys", Py_True) : NULL;
    if (kwargs != NULL) {
        result = PyObject_Call(dumps, args, kwargs);
    }

exit:
    Py_XDECREF(json);
    Py_XDECREF(dumps);
    Py_XDECREF(args);
    Py_XDECREF(kwargs);
    return result;
}

/* flash's own expression, in flash's order: copy and serialise local, then
 * state. 1 differ, 0 equal, -1 error. With copies != NULL, the two compare
 * configs are returned there (new references) for explaining. */
static int
rfn_slow_compare(rfn_state *st, PyObject *local, PyObject *state, PyObject *copies[2])
{
    int rc = -1;
    PyObject *lc = NULL, *lt = NULL, *sc = NULL, *stext = NULL;
    if ((lc = rfn_config_for_compare(st, local)) == NULL || (lt = rfn_json_dumps_sorted(lc)) == NULL
        || (sc = rfn_config_for_compare(st, state)) == NULL
        || (stext = rfn_json_dumps_sorted(sc)) == NULL) {
        goto exit;
    }
    rc = PyObject_RichCompareBool(lt, stext, Py_NE);
    if (rc >= 0 && copies != NULL) {
        copies[0] = Py_NewRef(lc);
        copies[1] = Py_NewRef(sc);
    }

exit:
    Py_XDECREF(lc);
    Py_XDECREF(lt);
    Py_XDECREF(sc);
    Py_XDECREF(stext);
    return rc;
}

/* ---- one resource ---------------------------------------------------------- */

/* Does flash roll this resource for its config (as it is now: plan injects
 * in place first, as flash does)? 1 yes, 0 no, -1 error. With changes not
 * NULL and a difference found, the differences are appended to it. */
static int
rfn_resource_differs(rfn_state *st, PyObject *local, PyObject *state, PyObject *changes)
{
    int rc = rfn_fast_compare(st, local, state, changes);
    if (rc != RFN_UNDECIDED) {
        return rc;
    }
    PyObject *copies[2] = {NULL, NULL};
    rc = rfn_slow_compare(st, local, state, changes ? copies : NULL);
    if (rc == 1 && changes != NULL) {
        /* Not plain: report the configs as compared, as one change. */
        PyObject *path = PyTuple_New(0);
        PyObject *item = path ? PyTuple_Pack(4, path, RFN_OBJ(st, RFN_D_CHANGED), copies[1], copies[0])
                              : NULL;
        if (item == NULL || PyList_Append(changes, item) < 0) {
            rc = -1;
        }
        Py_XDECREF(item);
        Py_XDECREF(path);
    }
    Py_XDECREF(copies[0]);
    Py_XDECREF(copies[1]);
    return rc;
}

/* ---- manifests: validate, then mutate -------------------------------------- */

static PyObject *
rfn_dict_get(PyObject *d, PyObject *key)  /* borrowed or NULL (check PyErr_Occurred) */
{
    return PyDict_GetItemWithError(d, key);
}

/* d[key] when it is a dict (borrowed), NULL when absent; -1 and a TypeError
 * naming where when it is something else. */
static int
rfn_get_dict_member(PyObject *d, PyObject *key, const char *where, PyObject **out)
{
    PyObject *v = rfn_dict_get(d, key);
    *out = NULL;
    if (v == NULL) {
        return PyErr_Occurred() ? -1 : 0;
    }
    if (!PyDict_Check(v)) {
        PyErr_Format(PyExc_TypeError, "%s[%R] must be a dict, not %.200s", where, key,
                     Py_TYPE(v)->tp_name);
        return -1;
    }
    *out = v;
    return 0;
}

static int
rfn_require_manifest(PyObject *m, const char *where)
{
    if (!PyDict_Check(m)) {
        PyErr_Format(PyExc_TypeError, "%s must be a dict, not %.200s", where, Py_TYPE(m)->tp_name);
        return -1;
    }
    return 0;
}

typedef struct {
    PyObject *resources;   /* local_manifest["resources"], or NULL */
    PyObject *fp;          /* the fingerprint to inject, or NULL */
    PyObject *targets;     /* list of (name, config) that get the fingerprint */
    int skip_client_mode;  /* flash >= 1.21.0: client-mode resources get none */
} rfn_local;

/* ---- logged writes: what flash mutates, undone on failure ------------------ */

/* An undo log is a list of (dict, key) (the key was absent) and (dict, key,
 * old value) entries, in write order. */
static int
rfn_log_put(PyObject *log, PyObject *d, PyObject *key)
{
    PyObject *old = PyDict_GetItemWithError(d, key);
    if (old == NULL && PyErr_Occurred()) {
        return -1;
    }
    PyObject *entry = old ? PyTuple_Pack(3, d, key, old) : PyTuple_Pack(2, d, key);
    int rc = entry ? PyList_Append(log, entry) : -1;
    Py_XDECREF(entry);
    return rc;
}

/* d[key] = value through d's own __setitem__ (as flash writes), logged. */
static int
rfn_logged_setitem(PyObject *log, PyObject *d, PyObject *key, PyObject *value)
{
    return rfn_log_put(log, d, key) < 0 ? -1 : PyObject_SetItem(d, key, value);
}

/* Restore, newest first, what the entries of log from index start on
 * replaced, and drop them from the log. Keeps any pending exception; a
 * failing restore (a key some __setitem__ did not store) is skipped. */
static void
rfn_log_undo(PyObject *log, Py_ssize_t start)
{
    PyObject *exc_type, *exc_value, *exc_tb;
    PyErr_Fetch(&exc_type, &exc_value, &exc_tb);
    for (Py_ssize_t i = PyList_GET_SIZE(log); i-- > start;) {
        PyObject *entry = PyList_GET_ITEM(log, i);
        PyObject *d = PyTuple_GET_ITEM(entry, 0), *key = PyTuple_GET_ITEM(entry, 1);
        int rc = PyTuple_GET_SIZE(entry) == 3 ? PyDict_SetItem(d, key, PyTuple_GET_ITEM(entry, 2))
                                              : PyDict_DelItem(d, key);
        if (rc < 0) {
            PyErr_Clear();
        }
    }
    if (PyList_SetSlice(log, start, PyList_GET_SIZE(log), NULL) < 0) {
        PyErr_Clear();
    }
    PyErr_Restore(exc_type, exc_value, exc_tb);
}

static void
rfn_local_clear(rfn_local *l)
{
    Py_CLEAR(l->resources);
    Py_CLEAR(l->fp);
    Py_CLEAR(l->targets);
}

/* Does this resource get the fingerprint (1) or not (0)? Checks its config
 * is a dict, and its env a dict or None when it is to be written. */
static int
rfn_local_scan_one(rfn_state *st, rfn_local *l, PyObject *name, PyObject *config)
{
    if (!PyDict_Check(config)) {
        PyErr_Format(PyExc_TypeError, "local_manifest['resources'][%R] must be a dict, not %.200s",
                     name, Py_TYPE(config)->tp_name);
        return -1;
    }
    if (l->fp == NULL) {
        return 0;
    }
    if (l->skip_client_mode) {   /* flash >= 1.21.0; before, every resource */
        PyObject *client_mode = Py_XNewRef(rfn_dict_get(config, RFN_OBJ(st, RFN_D_CLIENT_MODE)));
        int skip = client_mode ? PyObject_IsTrue(client_mode) : (PyErr_Occurred() ? -1 : 0);
        Py_XDECREF(client_mode);
        if (skip != 0) {
            return skip < 0 ? -1 : 0;
        }
    }
    PyObject *env = rfn_dict_get(config, RFN_OBJ(st, RFN_D_ENV));
    if (env == NULL && PyErr_Occurred()) {
        return -1;
    }
    if (env != NULL && env != Py_None && !PyDict_Check(env)) {
        PyErr_Format(PyExc_TypeError,
                     "local_manifest['resources'][%R]['env'] must be a dict or None, not %.200s",
                     name, Py_TYPE(env)->tp_name);
        return -1;
    }
    return 1;
}

/* Which resources get the fingerprint: all non-client-mode ones when the
 * manifest has a non-empty fingerprint. */
static int
rfn_local_scan_targets(rfn_state *st, rfn_local *l)
{
    Py_ssize_t pos = 0;
    PyObject *name, *config;
    while (PyDict_Next(l->resources, &pos, &name, &config)) {
        /* client_mode's __bool__ may run Python code: hold what we use. */
        PyObject *pair = PyTuple_Pack(2, name, config);
        if (pair == NULL) {
            return -1;
        }
        int target = rfn_local_scan_one(st, l, name, config);
        int rc = target > 0 ? PyList_Append(l->targets, pair) : target;
        Py_DECREF(pair);
        if (rc < 0) {
            return -1;
        }
    }
    return 0;
}

static int
rfn_local_scan(rfn_state *st, PyObject *manifest, rfn_local *l, int skip_client_mode)
{
    memset(l, 0, sizeof(*l));
    l->skip_client_mode = skip_client_mode;
    if (rfn_require_manifest(manifest, "local_manifest") < 0
        || rfn_get_dict_member(manifest, RFN_OBJ(st, RFN_D_RESOURCES), "local_manifest",
                               &l->resources) < 0) {
        return -1;
    }
    Py_XINCREF(l->resources);
    PyObject *fp = rfn_dict_get(manifest, RFN_OBJ(st, RFN_D_SOURCE_FINGERPRINT));
    if (fp == NULL && PyErr_Occurred()) {
        return -1;
    }
    if (fp != NULL && fp != Py_None) {
        if (!PyUnicode_Check(fp)) {
            PyErr_Format(PyExc_TypeError,
                         "local_manifest['source_fingerprint'] must be a str or None, not %.200s",
                         Py_TYPE(fp)->tp_name);
            return -1;
        }
        int truthy = PyObject_IsTrue(fp);
        if (truthy < 0) {
            return -1;
        }
        l->fp = truthy ? Py_NewRef(fp) : NULL;
    }
    if ((l->targets = PyList_New(0)) == NULL) {
        return -1;
    }
    return l->resources ? rfn_local_scan_targets(st, l) : 0;
}

/* env = config.setdefault("env", {}); env[KEY] = fp, in place, logged. An
 * env of None (flash raises TypeError on it) is replaced by a new dict. The
 * env is looked up when its resource's turn comes, as flash does: an earlier
 * injection into a shared object shows. */
static int
rfn_inject_one(rfn_state *st, PyObject *config, PyObject *fp, PyObject *log)
{
    PyObject *key_env = RFN_OBJ(st, RFN_D_ENV);
    PyObject *env = rfn_dict_get(config, key_env);
    if (env == NULL && PyErr_Occurred()) {
        return -1;
    }
    if (env == NULL || env == Py_None) {
        PyObject *fresh = PyDict_New();
        if (fresh == NULL || rfn_log_put(log, config, key_env) < 0
            || PyDict_SetItem(config, key_env, fresh) < 0) {
            Py_XDECREF(fresh);
            return -1;
        }
        env = fresh;
    }
    else if (!PyDict_Check(env)) {
        /* checked by the scan; only Python code run since could change it */
        PyErr_Format(PyExc_TypeError, "env changed to a %.200s while injecting", Py_TYPE(env)->tp_name);
        return -1;
    }
    else {
        Py_INCREF(env);
    }
    int rc = rfn_logged_setitem(log, env, RFN_OBJ(st, RFN_D_FP_KEY), fp);
    Py_DECREF(env);
    return rc;
}

/* Inject into every target, in the manifest's order (flash's loop). On an
 * error everything written is undone. */
static int
rfn_local_inject(rfn_state *st, rfn_local *l, PyObject *log)
{
    Py_ssize_t start = PyList_GET_SIZE(log);
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(l->targets); i++) {
        PyObject *config = PyTuple_GET_ITEM(PyList_GET_ITEM(l->targets, i), 1);
        if (rfn_inject_one(st, config, l->fp, log) < 0) {
            rfn_log_undo(log, start);
            return -1;
        }
    }
    return 0;
}

/* ---- the plan ------------------------------------------------------------- */

typedef struct {
    rfn_local local;
    PyObject *local_manifest, *state_manifest;   /* borrowed: the arguments */
    PyObject *state_resources;   /* or NULL */
    PyObject *state_endpoints;   /* or NULL */
    PyObject *injected;          /* set of names that get the fingerprint */
    PyObject *adoptable;         /* "adopt": names equal before injection, no deployed fingerprint */
    PyObject *provision, *shared, *delete_;
    PyObject *update, *reuse, *adopted;
    PyObject *reasons;           /* name -> [ (path, kind, old, new), ... ] */
    PyObject *log;               /* undo log: the injection, then the tentative reuse writes */
} rfn_plan;

static void
rfn_plan_clear(rfn_plan *p)
{
    rfn_local_clear(&p->local);
    Py_CLEAR(p->state_resources);
    Py_CLEAR(p->state_endpoints);
    Py_CLEAR(p->injected);
    Py_CLEAR(p->adoptable);
    Py_CLEAR(p->log);
    Py_CLEAR(p->provision);
    Py_CLEAR(p->shared);
    Py_CLEAR(p->delete_);
    Py_CLEAR(p->update);
    Py_CLEAR(p->reuse);
    Py_CLEAR(p->adopted);
    Py_CLEAR(p->reasons);
}

static int
rfn_plan_scan_state(rfn_state *st, PyObject *manifest, rfn_plan *p)
{
    /* rfn_get_dict_member gives borrowed references: store them in p (which
     * rfn_plan_clear releases) only once both lookups succeeded and they are
     * owned, or a failing second lookup would leave the first one borrowed
     * in p and rfn_plan_clear would release a reference never taken. */
    PyObject *resources, *endpoints;
    if (rfn_require_manifest(manifest, "state_manifest") < 0
        || rfn_get_dict_member(manifest, RFN_OBJ(st, RFN_D_RESOURCES), "state_manifest",
                               &resources) < 0
        || rfn_get_dict_member(manifest, RFN_OBJ(st, RFN_D_RESOURCES_ENDPOINTS), "state_manifest",
                               &endpoints) < 0) {
        return -1;
    }
    p->state_resources = Py_XNewRef(resources);
    p->state_endpoints = Py_XNewRef(endpoints);
    return 0;
}

/* Split the names into provision / shared / delete, each sorted. */
static int
rfn_plan_split(rfn_plan *p)
{
    PyObject *lres = p->local.resources, *sres = p->state_resources;
    if ((p->provision = PyList_New(0)) == NULL || (p->shared = PyList_New(0)) == NULL
        || (p->delete_ = PyList_New(0)) == NULL) {
        return -1;
    }
    Py_ssize_t pos = 0;
    PyObject *name, *v;
    while (lres != NULL && PyDict_Next(lres, &pos, &name, &v)) {
        int in_state = sres ? PyDict_Contains(sres, name) : 0;
        if (in_state < 0 || PyList_Append(in_state ? p->shared : p->provision, name) < 0) {
            return -1;
        }
    }
    pos = 0;
    while (sres != NULL && PyDict_Next(sres, &pos, &name, &v)) {
        int in_local = lres ? PyDict_Contains(lres, name) : 0;
        if (in_local < 0 || (!in_local && PyList_Append(p->delete_, name) < 0)) {
            return -1;
        }
    }
    if (PyList_Sort(p->provision) < 0 || PyList_Sort(p->shared) < 0 || PyList_Sort(p->delete_) < 0) {
        return -1;
    }
    return 0;
}

/* Every shared resource's deployed config must be a dict (flash copies and
 * pops it); local configs were checked by rfn_local_scan. */
static int
rfn_plan_check_state_configs(rfn_plan *p)
{
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(p->shared); i++) {
        PyObject *name = PyList_GET_ITEM(p->shared, i);
        PyObject *config = rfn_lookup_own_key(p->state_resources, name);
        if (config == NULL) {
            return -1;
        }
        if (!PyDict_Check(config)) {
            PyErr_Format(PyExc_TypeError, "state_manifest['resources'][%R] must be a dict, not %.200s",
                         name, Py_TYPE(config)->tp_name);
            return -1;
        }
    }
    return 0;
}

static int
rfn_state_has_fingerprint(rfn_state *st, PyObject *state_config)
{
    PyObject *env = rfn_dict_get(state_config, RFN_OBJ(st, RFN_D_ENV));
    if (env == NULL) {
        return PyErr_Occurred() ? -1 : 0;
    }
    return PyDict_Check(env) ? PySequence_Contains(env, RFN_OBJ(st, RFN_D_FP_KEY)) : 0;
}

/* Under "adopt", before injecting: the shared resources that get the
 * fingerprint, have an endpoint, were deployed without a fingerprint and
 * whose deployed config equals the local one as it is now. */
static int
rfn_plan_find_adoptable(rfn_state *st, rfn_plan *p)
{
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(p->shared); i++) {
        PyObject *name = PyList_GET_ITEM(p->shared, i);
        int inject = PySet_Contains(p->injected, name);
        int has_endpoint = p->state_endpoints ? PyDict_Contains(p->state_endpoints, name) : 0;
        if (inject < 0 || has_endpoint < 0) {
            return -1;
        }
        if (!inject || !has_endpoint) {
            continue;
        }
        PyObject *local = Py_XNewRef(PyDict_GetItemWithError(p->local.resources, name));
        PyObject *state = Py_XNewRef(PyDict_GetItemWithError(p->state_resources, name));
        int rc = -1;
        if (local != NULL && state != NULL) {
            int has = rfn_state_has_fingerprint(st, state);
            int differs = has == 0 ? rfn_resource_differs(st, local, state, NULL) : has < 0 ? -1 : 1;
            rc = differs < 0 ? -1 : differs ? 0 : PySet_Add(p->adoptable, name);
        }
        else if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_RuntimeError, "manifest changed while planning");
        }
        Py_XDECREF(local);
        Py_XDECREF(state);
        if (rc < 0) {
            return -1;
        }
    }
    return 0;
}

/* flash's writes for a reused resource, made tentatively (logged, undone
 * once planning ends; apply_reuse makes them for real) so that a later
 * comparison sees them when the manifests share objects, as flash's does. */
static int
rfn_plan_tentative_reuse(rfn_state *st, rfn_plan *p, PyObject *name, PyObject *local, PyObject *state,
                         Py_ssize_t own_refs)
{
    PyObject *keys[2] = {RFN_OBJ(st, RFN_D_ENDPOINT_ID), RFN_OBJ(st, RFN_D_AI_KEY)};
    /* A config nothing else refers to (only the resources dict and this
     * planner) sits in no other config: its writes cannot show. */
    int nk = Py_REFCNT(local) > own_refs ? 2 : 0;
    for (int k = 0; k < nk; k++) {
        PyObject *v = Py_XNewRef(PyDict_GetItemWithError(state, keys[k]));
        int rc = v ? rfn_logged_setitem(p->log, local, keys[k], v) : (PyErr_Occurred() ? -1 : 0);
        Py_XDECREF(v);
        if (rc < 0) {
            return -1;
        }
    }
    PyObject *k_eps = RFN_OBJ(st, RFN_D_RESOURCES_ENDPOINTS);
    PyObject *seps = PyDict_GetItemWithError(p->state_manifest, k_eps);
    PyObject *ep = seps && PyDict_Check(seps) ? PyDict_GetItemWithError(seps, name) : NULL;
    if (ep == NULL) {
        return PyErr_Occurred() ? -1 : 0;
    }
    Py_INCREF(ep);
    int rc = -1;
    PyObject *leps = PyDict_GetItemWithError(p->local_manifest, k_eps);
    if (leps == NULL && !PyErr_Occurred()) {
        PyObject *fresh = PyDict_New();
        if (fresh != NULL && rfn_log_put(p->log, p->local_manifest, k_eps) == 0
            && PyDict_SetItem(p->local_manifest, k_eps, fresh) == 0) {
            leps = fresh;
        }
        Py_XDECREF(fresh);   /* the manifest holds it */
    }
    if (leps != NULL) {
        /* not a dict: apply_reuse raises; nothing to show through */
        rc = PyDict_Check(leps) ? rfn_logged_setitem(p->log, leps, name, ep) : 0;
    }
    Py_DECREF(ep);
    return rc;
}

static int
rfn_plan_add_reason(rfn_state *st, rfn_plan *p, PyObject *name, PyObject *changes, int endpoint_missing)
{
    if (endpoint_missing) {
        PyObject *path = PyTuple_New(0);
        PyObject *item = path ? PyTuple_Pack(4, path, RFN_OBJ(st, RFN_D_ENDPOINT_MISSING), Py_None, Py_None)
                              : NULL;
        int rc = item ? PyList_Append(changes, item) : -1;
        Py_XDECREF(item);
        Py_XDECREF(path);
        if (rc < 0) {
            return -1;
        }
    }
    return PyDict_SetItem(p->reasons, name, changes);
}

/* flash's update loop: roll when the config differs or no endpoint is known. */
static int
rfn_plan_decide_one(rfn_state *st, rfn_plan *p, PyObject *name, int adopt)
{
    int rc = -1;
    PyObject *local = Py_XNewRef(PyDict_GetItemWithError(p->local.resources, name));
    PyObject *state = Py_XNewRef(PyDict_GetItemWithError(p->state_resources, name));
    PyObject *changes = PyList_New(0);
    if (local == NULL || state == NULL || changes == NULL) {
        goto exit;
    }
    /* flash looks the endpoints up per resource */
    PyObject *seps = PyDict_GetItemWithError(p->state_manifest, RFN_OBJ(st, RFN_D_RESOURCES_ENDPOINTS));
    int has_endpoint = seps && PyDict_Check(seps) ? PyDict_Contains(seps, name) : 0;
    if (has_endpoint < 0 || PyErr_Occurred()) {
        goto exit;
    }
    int differs = rfn_resource_differs(st, local, state, changes);
    if (differs < 0) {
        goto exit;
    }
    int reuse = !differs && has_endpoint;
    if (differs && has_endpoint && adopt) {
        if ((reuse = PySet_Contains(p->adoptable, name)) < 0) {
            goto exit;
        }
        if (reuse && PyList_Append(p->adopted, name) < 0) {
            goto exit;
        }
    }
    if (reuse) {
        /* references to the config: the resources dict, ours here, and the
         * targets list's when it got the fingerprint */
        int inject = PySet_Contains(p->injected, name);
        rc = inject < 0 || PyList_Append(p->reuse, name) < 0
                 ? -1
                 : rfn_plan_tentative_reuse(st, p, name, local, state, 2 + inject);
    }
    else if (PyList_Append(p->update, name) == 0) {
        rc = rfn_plan_add_reason(st, p, name, changes, !has_endpoint);
    }

exit:
    if (rc < 0 && !PyErr_Occurred()) {
        PyErr_SetString(PyExc_RuntimeError, "manifest changed while planning");
    }
    Py_XDECREF(local);
    Py_XDECREF(state);
    Py_XDECREF(changes);
    return rc;
}

/* flash's order of effects: inject into every target in place, then
 * compare each shared resource (sorted), making the reuse writes as it goes.
 * Comparing the injected objects themselves makes an injection into an
 * object two resources (or both manifests) share show wherever flash's does.
 * The reuse writes are undone at the end (apply_reuse's job), and on an
 * error the injection too: local_manifest is then unchanged. */
static int
rfn_plan_decide(rfn_state *st, rfn_plan *p, int adopt)
{
    if ((p->injected = PySet_New(NULL)) == NULL || (p->adoptable = PySet_New(NULL)) == NULL
        || (p->update = PyList_New(0)) == NULL || (p->reuse = PyList_New(0)) == NULL
        || (p->adopted = PyList_New(0)) == NULL || (p->reasons = PyDict_New()) == NULL
        || (p->log = PyList_New(0)) == NULL) {
        return -1;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(p->local.targets); i++) {
        if (PySet_Add(p->injected, PyTuple_GET_ITEM(PyList_GET_ITEM(p->local.targets, i), 0)) < 0) {
            return -1;
        }
    }
    if ((adopt && rfn_plan_find_adoptable(st, p) < 0) || rfn_local_inject(st, &p->local, p->log) < 0) {
        return -1;
    }
    Py_ssize_t injected_until = PyList_GET_SIZE(p->log);
    int rc = 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(p->shared) && rc == 0; i++) {
        rc = rfn_plan_decide_one(st, p, PyList_GET_ITEM(p->shared, i), adopt);
    }
    rfn_log_undo(p->log, rc < 0 ? 0 : injected_until);
    return rc;
}

/* ---- Python entry points ----------------------------------------------------- */

static PyObject *
rfn_py_inject_source_fingerprint(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"local_manifest", "skip_client_mode", NULL};
    PyObject *local_manifest;
    int skip_client_mode = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|$p:inject_source_fingerprint", kwlist,
                                     &local_manifest, &skip_client_mode)) {
        return NULL;
    }
    rfn_state *st = rfn_get_state(module);
    rfn_local l;
    PyObject *result = NULL;
    PyObject *log = PyList_New(0);
    if (log == NULL) {
        return NULL;
    }
    if (rfn_local_scan(st, local_manifest, &l, skip_client_mode) < 0 || rfn_local_inject(st, &l, log) < 0) {
        goto exit;
    }
    result = Py_NewRef(Py_None);

exit:
    rfn_local_clear(&l);
    Py_DECREF(log);
    return result;
}

static int
rfn_check_nargs(const char *fname, Py_ssize_t nargs, Py_ssize_t expected)
{
    if (nargs != expected) {
        PyErr_Format(PyExc_TypeError, "%s() takes exactly %zd arguments (%zd given)",
                     fname, expected, nargs);
        return 0;
    }
    return 1;
}

static int
rfn_require_config(PyObject *config, const char *what)
{
    if (!PyDict_Check(config)) {
        PyErr_Format(PyExc_TypeError, "%s must be a dict, not %.200s", what, Py_TYPE(config)->tp_name);
        return -1;
    }
    return 0;
}

static PyObject *
rfn_py_resource_config_for_compare(PyObject *module, PyObject *config)
{
    if (rfn_require_config(config, "config") < 0) {
        return NULL;
    }
    return rfn_config_for_compare(rfn_get_state(module), config);
}

static PyObject *
rfn_py_config_differs(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (!rfn_check_nargs("config_differs", nargs, 2)
        || rfn_require_config(args[0], "local_config") < 0
        || rfn_require_config(args[1], "state_config") < 0) {
        return NULL;
    }
    int rc = rfn_resource_differs(rfn_get_state(module), args[0], args[1], NULL);
    return rc < 0 ? NULL : PyBool_FromLong(rc);
}

static PyObject *
rfn_py_config_changes(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (!rfn_check_nargs("config_changes", nargs, 2)
        || rfn_require_config(args[0], "local_config") < 0
        || rfn_require_config(args[1], "state_config") < 0) {
        return NULL;
    }
    PyObject *changes = PyList_New(0);
    if (changes != NULL
        && rfn_resource_differs(rfn_get_state(module), args[0], args[1], changes) < 0) {
        Py_CLEAR(changes);
    }
    return changes;
}

static PyObject *
rfn_py_plan_reconciliation(PyObject *module, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"local_manifest", "state_manifest", "adopt", "skip_client_mode", NULL};
    PyObject *local_manifest, *state_manifest;
    int adopt = 0, skip_client_mode = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO|$pp:plan_reconciliation", kwlist,
                                     &local_manifest, &state_manifest, &adopt, &skip_client_mode)) {
        return NULL;
    }
    rfn_state *st = rfn_get_state(module);
    rfn_plan p = {0};
    PyObject *result = NULL;
    p.local_manifest = local_manifest;
    p.state_manifest = state_manifest;
    if (rfn_local_scan(st, local_manifest, &p.local, skip_client_mode) < 0
        || rfn_plan_scan_state(st, state_manifest, &p) < 0
        || rfn_plan_split(&p) < 0 || rfn_plan_check_state_configs(&p) < 0
        || rfn_plan_decide(st, &p, adopt) < 0) {
        goto exit;
    }
    result = PyTuple_Pack(6, p.provision, p.update, p.reuse, p.delete_, p.reasons, p.adopted);

exit:
    rfn_plan_clear(&p);
    return result;
}

/* What flash copies from the deployed manifest for one reused resource. */
typedef struct {
    PyObject *local_config;
    PyObject *state_config;
    PyObject *endpoint;   /* state_manifest["resources_endpoints"][name], or NULL */
} rfn_reuse_item;

static int
rfn_reuse_collect(rfn_state *st, PyObject *local_manifest, PyObject *state_manifest, PyObject *names,
                  PyObject *items)
{
    PyObject *lres, *sres, *seps, *leps;
    PyObject *k_res = RFN_OBJ(st, RFN_D_RESOURCES), *k_eps = RFN_OBJ(st, RFN_D_RESOURCES_ENDPOINTS);
    if (rfn_require_manifest(local_manifest, "local_manifest") < 0
        || rfn_require_manifest(state_manifest, "state_manifest") < 0
        || rfn_get_dict_member(local_manifest, k_res, "local_manifest", &lres) < 0
        || rfn_get_dict_member(local_manifest, k_eps, "local_manifest", &leps) < 0
        || rfn_get_dict_member(state_manifest, k_res, "state_manifest", &sres) < 0
        || rfn_get_dict_member(state_manifest, k_eps, "state_manifest", &seps) < 0) {
        return -1;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(names); i++) {
        PyObject *name = PyList_GET_ITEM(names, i);
        PyObject *lc = lres ? PyDict_GetItemWithError(lres, name) : NULL;
        PyObject *sc = lc && sres ? PyDict_GetItemWithError(sres, name) : NULL;
        PyObject *ep = seps ? PyDict_GetItemWithError(seps, name) : NULL;
        if (PyErr_Occurred()) {
            return -1;
        }
        if (lc == NULL || sc == NULL || !PyDict_Check(lc) || !PyDict_Check(sc)) {
            PyErr_Format(PyExc_TypeError, "reused resource %R must be a dict in both manifests' 'resources'",
                         name);
            return -1;
        }
        PyObject *item = PyTuple_Pack(4, lc, sc, ep ? Py_True : Py_False, ep ? ep : Py_None);
        int rc = item ? PyList_Append(items, item) : -1;
        Py_XDECREF(item);
        if (rc < 0) {
            return -1;
        }
    }
    return 0;
}

static int
rfn_copy_if_present(PyObject *dst, PyObject *src, PyObject *key)
{
    PyObject *v = PyDict_GetItemWithError(src, key);
    if (v == NULL) {
        return PyErr_Occurred() ? -1 : 0;
    }
    Py_INCREF(v);
    int rc = PyObject_SetItem(dst, key, v);
    Py_DECREF(v);
    return rc;
}

static int
rfn_reuse_apply(rfn_state *st, PyObject *local_manifest, PyObject *names, PyObject *items)
{
    PyObject *k_eps = RFN_OBJ(st, RFN_D_RESOURCES_ENDPOINTS);
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(items); i++) {
        PyObject *item = PyList_GET_ITEM(items, i), *name = PyList_GET_ITEM(names, i);
        PyObject *lc = PyTuple_GET_ITEM(item, 0), *sc = PyTuple_GET_ITEM(item, 1);
        if (rfn_copy_if_present(lc, sc, RFN_OBJ(st, RFN_D_ENDPOINT_ID)) < 0
            || rfn_copy_if_present(lc, sc, RFN_OBJ(st, RFN_D_AI_KEY)) < 0) {
            return -1;
        }
        if (PyTuple_GET_ITEM(item, 2) != Py_True) {
            continue;
        }
        PyObject *fresh = PyDict_New();
        PyObject *leps = fresh ? PyDict_SetDefault(local_manifest, k_eps, fresh) : NULL;
        Py_XDECREF(fresh);
        if (leps == NULL || PyObject_SetItem(leps, name, PyTuple_GET_ITEM(item, 3)) < 0) {
            return -1;
        }
    }
    return 0;
}

static PyObject *
rfn_py_apply_reuse(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (!rfn_check_nargs("apply_reuse", nargs, 3)) {
        return NULL;
    }
    rfn_state *st = rfn_get_state(module);
    PyObject *result = NULL;
    PyObject *names = PySequence_List(args[2]);
    PyObject *items = names ? PyList_New(0) : NULL;
    if (items == NULL || rfn_reuse_collect(st, args[0], args[1], names, items) < 0
        || rfn_reuse_apply(st, args[0], names, items) < 0) {
        goto exit;
    }
    result = Py_NewRef(Py_None);

exit:
    Py_XDECREF(names);
    Py_XDECREF(items);
    return result;
}

static PyMethodDef rfn_diff_methods[] = {
    {"inject_source_fingerprint", (PyCFunction)(void (*)(void))rfn_py_inject_source_fingerprint,
     METH_VARARGS | METH_KEYWORDS,
     "inject_source_fingerprint(local_manifest, *, skip_client_mode=True) -> None\n\n"
     "Set env['" RFN_FP_ENV_KEY "'] of every resource (every non-client-mode one\n"
     "with skip_client_mode, as flash >= 1.21.0) to the manifest's\n"
     "source_fingerprint, as flash deploy does."},
    {"resource_config_for_compare", rfn_py_resource_config_for_compare, METH_O,
     "resource_config_for_compare(config) -> dict\n\n"
     "Deep copy of config without flash's runtime fields."},
    {"config_differs", (PyCFunction)(void (*)(void))rfn_py_config_differs, METH_FASTCALL,
     "config_differs(local_config, state_config) -> bool\n\n"
     "json.dumps(..., sort_keys=True) of both compare configs differ."},
    {"config_changes", (PyCFunction)(void (*)(void))rfn_py_config_changes, METH_FASTCALL,
     "config_changes(local_config, state_config) -> list[(path, kind, old, new)]\n\n"
     "The differences config_differs sees; empty when the configs are equal."},
    {"plan_reconciliation", (PyCFunction)(void (*)(void))rfn_py_plan_reconciliation,
     METH_VARARGS | METH_KEYWORDS,
     "plan_reconciliation(local_manifest, state_manifest, *, adopt=False, skip_client_mode=True)\n"
     "    -> (provision, update, reuse, delete, reasons, adopted)\n\n"
     "flash deploy's decisions; injects the fingerprint into local_manifest."},
    {"apply_reuse", (PyCFunction)(void (*)(void))rfn_py_apply_reuse, METH_FASTCALL,
     "apply_reuse(local_manifest, state_manifest, names) -> None\n\n"
     "Copy endpoint_id, aiKey and resources_endpoints of reused resources."},
    {NULL, NULL, 0, NULL},
};

/* ---- module state and exec ------------------------------------------------ */

int
rfn_diff_traverse(rfn_state *st, visitproc visit, void *arg)
{
    for (int i = 0; i < RFN_DIFF_NOBJ; i++) {
        Py_VISIT(st->diff_objs[i]);
    }
    return 0;
}

void
rfn_diff_clear(rfn_state *st)
{
    for (int i = 0; i < RFN_DIFF_NOBJ; i++) {
        Py_CLEAR(st->diff_objs[i]);
    }
}

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
rfn_diff_exec(PyObject *module)
{
    rfn_state *st = rfn_get_state(module);
    for (size_t i = 0; i < sizeof(rfn_diff_strings) / sizeof(rfn_diff_strings[0]); i++) {
        PyObject **slot = &st->diff_objs[rfn_diff_strings[i].index];
        *slot = PyUnicode_InternFromString(rfn_diff_strings[i].text);
        if (*slot == NULL) {
            return -1;
        }
    }
    PyObject *fields = st->diff_objs[RFN_D_RUNTIME_FIELDS] = rfn_make_runtime_fields();
    if (fields == NULL || PyModule_AddObjectRef(module, "RUNTIME_RESOURCE_FIELDS", fields) < 0
        || PyModule_AddObjectRef(module, "SOURCE_FINGERPRINT_ENV_KEY", RFN_OBJ(st, RFN_D_FP_KEY)) < 0) {
        return -1;
    }
    return PyModule_AddFunctions(module, rfn_diff_methods);
}

/* flash's config comparison: does a deployed resource roll?
 *
 *   json.dumps(_resource_config_for_compare(config), sort_keys=True)
 *
 * of the local and the deployed config differ. json_eq.c decides plain
 * configs on the objects; for anything else this file evaluates flash's
 * expression itself (copy.deepcopy, pop the runtime fields, json.dumps), with
 * a guard that json's C encoder has the C stack it needs. Also the entry
 * points resource_config_for_compare, config_differs and config_changes.
 */
#include "diff.h"

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
    PyObject *it = PyObject_GetIter(st->runtime_fields);
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

/* The containers on the path from obj down to the one being visited. */
typedef struct {
    struct rfn_json_frame {
        PyObject *o;            /* borrowed: nothing runs Python code meanwhile */
        Py_ssize_t pos;
    } *stack;
    size_t n, cap;
    size_t max_depth;           /* what the C stack left has room for */
    PyObject *on_path;          /* set of the ids of stack[].o */
} rfn_json_path;

static int
rfn_is_json_container(PyObject *o)
{
    return PyDict_Check(o) || PyList_Check(o) || PyTuple_Check(o);
}

static int
rfn_json_path_grow(rfn_json_path *p)
{
    size_t ncap = p->cap ? p->cap * 2 : 64;
    struct rfn_json_frame *bigger = PyMem_Realloc(p->stack, ncap * sizeof(*p->stack));
    if (bigger == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    p->stack = bigger;
    p->cap = ncap;
    return 0;
}

/* Step down into o when it is a container not already on the path;
 * RecursionError when that is one level more than the C stack allows. */
static int
rfn_json_path_enter(rfn_json_path *p, PyObject *o)
{
    if (!rfn_is_json_container(o)) {
        return 0;
    }
    PyObject *id = PyLong_FromVoidPtr(o);
    int seen = id ? PySet_Contains(p->on_path, id) : -1;
    if (seen == 0) {
        if (p->n + 1 > p->max_depth) {
            PyErr_SetString(PyExc_RecursionError,
                            "maximum recursion depth exceeded: config nested too deep "
                            "for json.dumps to serialise on this C stack");
            seen = -1;
        }
        else if (p->n == p->cap && rfn_json_path_grow(p) < 0) {
            seen = -1;
        }
        else {
            seen = PySet_Add(p->on_path, id);
            p->stack[p->n].o = o;
            p->stack[p->n].pos = 0;
            p->n++;
        }
    }
    Py_XDECREF(id);
    return seen < 0 ? -1 : 0;
}

/* The next child of the innermost container (borrowed), or NULL when it has
 * no more. */
static PyObject *
rfn_json_path_next_child(rfn_json_path *p)
{
    struct rfn_json_frame *top = &p->stack[p->n - 1];
    if (PyDict_Check(top->o)) {
        PyObject *k, *v;
        return PyDict_Next(top->o, &top->pos, &k, &v) ? v : NULL;
    }
    int is_list = PyList_Check(top->o);
    Py_ssize_t size = is_list ? PyList_GET_SIZE(top->o) : PyTuple_GET_SIZE(top->o);
    if (top->pos >= size) {
        return NULL;
    }
    PyObject *child = is_list ? PyList_GET_ITEM(top->o, top->pos) : PyTuple_GET_ITEM(top->o, top->pos);
    top->pos++;
    return child;
}

/* Step back up out of the innermost container. */
static int
rfn_json_path_leave(rfn_json_path *p)
{
    PyObject *id = PyLong_FromVoidPtr(p->stack[p->n - 1].o);
    if (id == NULL || PySet_Discard(p->on_path, id) < 0) {
        Py_XDECREF(id);
        return -1;
    }
    Py_DECREF(id);
    p->n--;
    return 0;
}

/* Depth-first over obj's containers, without recursion. */
static int
rfn_json_stack_check(PyObject *obj)
{
    size_t avail = rfn_stack_avail();
    if (avail == SIZE_MAX) {
        return 0;
    }
    rfn_json_path p = {.max_depth = avail / RFN_JSON_LEVEL_BYTES};
    if ((p.on_path = PySet_New(NULL)) == NULL) {
        return -1;
    }
    int rc = rfn_json_path_enter(&p, obj);
    while (rc == 0 && p.n > 0) {
        PyObject *child = rfn_json_path_next_child(&p);
        rc = child ? rfn_json_path_enter(&p, child) : rfn_json_path_leave(&p);
    }
    PyMem_Free(p.stack);
    Py_DECREF(p.on_path);
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
int
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
        if (rfn_change_append(changes, NULL, st->kind_changed, copies[1], copies[0]) < 0) {
            rc = -1;
        }
    }
    Py_XDECREF(copies[0]);
    Py_XDECREF(copies[1]);
    return rc;
}

/* ---- Python entry points ----------------------------------------------------- */

int
rfn_require_dict(PyObject *o, const char *what)
{
    if (!PyDict_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s must be a dict, not %.200s", what, Py_TYPE(o)->tp_name);
        return -1;
    }
    return 0;
}

int
rfn_check_nargs(const char *fname, Py_ssize_t nargs, Py_ssize_t expected)
{
    if (nargs != expected) {
        PyErr_Format(PyExc_TypeError, "%s() takes exactly %zd arguments (%zd given)",
                     fname, expected, nargs);
        return 0;
    }
    return 1;
}

static PyObject *
rfn_py_resource_config_for_compare(PyObject *module, PyObject *config)
{
    if (rfn_require_dict(config, "config") < 0) {
        return NULL;
    }
    return rfn_config_for_compare(rfn_get_state(module), config);
}

/* The two configs of config_differs/config_changes, checked. */
static int
rfn_check_config_pair(const char *fname, PyObject *const *args, Py_ssize_t nargs)
{
    if (!rfn_check_nargs(fname, nargs, 2) || rfn_require_dict(args[0], "local_config") < 0
        || rfn_require_dict(args[1], "state_config") < 0) {
        return -1;
    }
    return 0;
}

static PyObject *
rfn_py_config_differs(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (rfn_check_config_pair("config_differs", args, nargs) < 0) {
        return NULL;
    }
    int rc = rfn_resource_differs(rfn_get_state(module), args[0], args[1], NULL);
    return rc < 0 ? NULL : PyBool_FromLong(rc);
}

static PyObject *
rfn_py_config_changes(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (rfn_check_config_pair("config_changes", args, nargs) < 0) {
        return NULL;
    }
    PyObject *changes = PyList_New(0);
    if (changes != NULL
        && rfn_resource_differs(rfn_get_state(module), args[0], args[1], changes) < 0) {
        Py_CLEAR(changes);
    }
    return changes;
}

static PyMethodDef rfn_compare_methods[] = {
    {"resource_config_for_compare", rfn_py_resource_config_for_compare, METH_O,
     "resource_config_for_compare(config) -> dict\n\n"
     "Deep copy of config without flash's runtime fields."},
    {"config_differs", (PyCFunction)(void (*)(void))rfn_py_config_differs, METH_FASTCALL,
     "config_differs(local_config, state_config) -> bool\n\n"
     "json.dumps(..., sort_keys=True) of both compare configs differ."},
    {"config_changes", (PyCFunction)(void (*)(void))rfn_py_config_changes, METH_FASTCALL,
     "config_changes(local_config, state_config) -> list[(path, kind, old, new)]\n\n"
     "The differences config_differs sees; empty when the configs are equal."},
    {NULL, NULL, 0, NULL},
};

int
rfn_compare_exec(PyObject *module)
{
    return PyModule_AddFunctions(module, rfn_compare_methods);
}

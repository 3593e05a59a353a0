/* Binding of the pgzip core (pgzip.h) for runpod_flash_native._pgzip. */
#include "rfn.h"
#include "pgzip.h"

/* The arguments of the per-segment functions: data (a buffer), start (only
 * lz_matches) and segment_size > 0; how many segments data[start:] holds,
 * and room for one value of elem_size bytes each. */
typedef struct {
    Py_buffer view;
    int have_view;
    Py_ssize_t start, segment, count;
    void *values;
} rfn_pyz_segments;

/* Parse (fname, args) into s and allocate s->values. Returns 0, or -1 with
 * an exception set; the caller releases s (rfn_pyz_segments_release) either
 * way. */
static int
rfn_pyz_segments_parse(const char *fname, PyObject *const *args, Py_ssize_t nargs,
                       int with_start, size_t elem_size, rfn_pyz_segments *s)
{
    Py_ssize_t want = with_start ? 3 : 2;
    if (nargs != want) {
        PyErr_Format(PyExc_TypeError, "%s expected %zd arguments, got %zd", fname, want, nargs);
        return -1;
    }
    s->start = 0;
    if (with_start) {
        s->start = PyLong_AsSsize_t(args[1]);
        if (s->start == -1 && PyErr_Occurred()) {
            return -1;
        }
    }
    s->segment = PyLong_AsSsize_t(args[want - 1]);
    if (s->segment == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (s->segment <= 0) {
        PyErr_SetString(PyExc_ValueError, "segment_size must be positive");
        return -1;
    }
    if (PyObject_GetBuffer(args[0], &s->view, PyBUF_SIMPLE) < 0) {
        return -1;
    }
    s->have_view = 1;
    if (s->start < 0 || s->start > s->view.len) {
        PyErr_SetString(PyExc_ValueError, "start must be within data");
        return -1;
    }
    Py_ssize_t rest = s->view.len - s->start;
    s->count = rest / s->segment + (rest % s->segment != 0);
    s->values = PyMem_Malloc(elem_size * (size_t)(s->count ? s->count : 1));
    if (s->values == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static void
rfn_pyz_segments_release(rfn_pyz_segments *s)
{
    PyMem_Free(s->values);
    if (s->have_view) {
        PyBuffer_Release(&s->view);
    }
}

/* A list of item(values, i) for i in range(count), or NULL. */
static PyObject *
rfn_pyz_segments_list(Py_ssize_t count, const void *values,
                      PyObject *(*item)(const void *values, Py_ssize_t i))
{
    PyObject *result = PyList_New(count);
    for (Py_ssize_t i = 0; result != NULL && i < count; i++) {
        PyObject *x = item(values, i);
        if (x == NULL) {
            Py_CLEAR(result);
            break;
        }
        PyList_SET_ITEM(result, i, x);
    }
    return result;
}

static PyObject *
rfn_pyz_float_at(const void *values, Py_ssize_t i)
{
    return PyFloat_FromDouble(((const double *)values)[i]);
}

static PyObject *
rfn_pyz_count_at(const void *values, Py_ssize_t i)
{
    return PyLong_FromUnsignedLongLong(((const uint64_t *)values)[i]);
}

static int
rfn_pyz_run_entropy(const rfn_pyz_segments *s)
{
    rfn_pgz_entropy(s->view.buf, (size_t)s->view.len, (size_t)s->segment, s->values);
    return 0;
}

static int
rfn_pyz_run_matches(const rfn_pyz_segments *s)
{
    return rfn_pgz_matches(s->view.buf, (size_t)s->view.len, (size_t)s->start,
                           (size_t)s->segment, s->values);
}

/* A per-segment function: its name, whether it takes start, the size of one
 * value, the core call (without the GIL; -1 out of memory) and one value as
 * a Python object. */
typedef struct {
    const char *name;
    int with_start;
    size_t elem_size;
    int (*run)(const rfn_pyz_segments *s);
    PyObject *(*item)(const void *values, Py_ssize_t i);
} rfn_pyz_kind;

static const rfn_pyz_kind rfn_pyz_entropy_kind = {
    "byte_entropy", 0, sizeof(double), rfn_pyz_run_entropy, rfn_pyz_float_at,
};
static const rfn_pyz_kind rfn_pyz_matches_kind = {
    "lz_matches", 1, sizeof(uint64_t), rfn_pyz_run_matches, rfn_pyz_count_at,
};

static PyObject *
rfn_pyz_per_segment(const rfn_pyz_kind *k, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *result = NULL;
    rfn_pyz_segments s = {0};
    int rc = rfn_pyz_segments_parse(k->name, args, nargs, k->with_start, k->elem_size, &s);
    if (rc == 0) {
        Py_BEGIN_ALLOW_THREADS
        rc = k->run(&s);
        Py_END_ALLOW_THREADS
        if (rc < 0) {
            PyErr_NoMemory();
        }
    }
    if (rc == 0) {
        result = rfn_pyz_segments_list(s.count, s.values, k->item);
    }
    rfn_pyz_segments_release(&s);
    return result;
}

PyDoc_STRVAR(rfn_pyz_byte_entropy_doc,
"byte_entropy(data, segment_size, /)\n--\n\n"
"Order-0 entropy in bits per byte of each segment_size-byte segment of data\n"
"(the last segment may be shorter), as a list of floats. The GIL is released.");

PyDoc_STRVAR(rfn_pyz_lz_matches_doc,
"lz_matches(data, start, segment_size, /)\n--\n\n"
"For each segment_size-byte segment of data[start:], how many of its positions\n"
"begin 4 bytes that also stand at most 32 KiB earlier in data (data[:start] is\n"
"the history before it), as found by a one-entry-per-hash table (a slight\n"
"undercount, never an overcount). A list of ints. The GIL is released.");

static PyObject *
rfn_pyz_byte_entropy(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    return rfn_pyz_per_segment(&rfn_pyz_entropy_kind, args, nargs);
}

static PyObject *
rfn_pyz_lz_matches(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    return rfn_pyz_per_segment(&rfn_pyz_matches_kind, args, nargs);
}

PyDoc_STRVAR(rfn_pyz_crc32_combine_doc,
"crc32_combine(crc1, crc2, len2, /)\n--\n\n"
"CRC-32 of A + B given crc1 = crc32(A), crc2 = crc32(B) and len2 = len(B).");

static PyObject *
rfn_pyz_crc32_combine(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "crc32_combine expected 3 arguments, got %zd", nargs);
        return NULL;
    }
    unsigned long long v[3];
    for (int i = 0; i < 3; i++) {
        v[i] = PyLong_AsUnsignedLongLong(args[i]);
        if (v[i] == (unsigned long long)-1 && PyErr_Occurred()) {
            return NULL;
        }
    }
    if (v[0] > 0xffffffffULL || v[1] > 0xffffffffULL) {
        PyErr_SetString(PyExc_OverflowError, "a CRC-32 must fit in 32 bits");
        return NULL;
    }
    return PyLong_FromUnsignedLong(
        rfn_pgz_crc32_combine((uint32_t)v[0], (uint32_t)v[1], (uint64_t)v[2]));
}

static PyMethodDef rfn_pyz_methods[] = {
    {"byte_entropy", (PyCFunction)(void (*)(void))rfn_pyz_byte_entropy, METH_FASTCALL,
     rfn_pyz_byte_entropy_doc},
    {"lz_matches", (PyCFunction)(void (*)(void))rfn_pyz_lz_matches, METH_FASTCALL,
     rfn_pyz_lz_matches_doc},
    {"crc32_combine", (PyCFunction)(void (*)(void))rfn_pyz_crc32_combine, METH_FASTCALL,
     rfn_pyz_crc32_combine_doc},
    {NULL, NULL, 0, NULL},
};

int
rfn_pgzip_exec(PyObject *module)
{
    return PyModule_AddFunctions(module, rfn_pyz_methods);
}

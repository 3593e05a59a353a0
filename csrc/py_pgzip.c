/* Binding of the pgzip core (pgzip.h) for runpod_flash_native._pgzip. */
#include "rfn.h"
#include "pgzip.h"

PyDoc_STRVAR(rfn_pyz_byte_entropy_doc,
"byte_entropy(data, segment_size, /)\n--\n\n"
"Order-0 entropy in bits per byte of each segment_size-byte segment of data\n"
"(the last segment may be shorter), as a list of floats. The GIL is released.");

static PyObject *
rfn_pyz_byte_entropy(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *result = NULL;
    double *values = NULL;
    Py_buffer view = {0};
    int have_view = 0;

    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "byte_entropy expected 2 arguments, got %zd", nargs);
        goto exit;
    }
    Py_ssize_t segment = PyLong_AsSsize_t(args[1]);
    if (segment == -1 && PyErr_Occurred()) {
        goto exit;
    }
    if (segment <= 0) {
        PyErr_SetString(PyExc_ValueError, "segment_size must be positive");
        goto exit;
    }
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) {
        goto exit;
    }
    have_view = 1;
    Py_ssize_t count = view.len / segment + (view.len % segment != 0);
    values = PyMem_Malloc(sizeof(double) * (size_t)(count ? count : 1));
    if (values == NULL) {
        PyErr_NoMemory();
        goto exit;
    }
    Py_BEGIN_ALLOW_THREADS
    rfn_pgz_entropy(view.buf, (size_t)view.len, (size_t)segment, values);
    Py_END_ALLOW_THREADS
    result = PyList_New(count);
    if (result == NULL) {
        goto exit;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *f = PyFloat_FromDouble(values[i]);
        if (f == NULL) {
            Py_CLEAR(result);
            goto exit;
        }
        PyList_SET_ITEM(result, i, f);
    }
exit:
    PyMem_Free(values);
    if (have_view) {
        PyBuffer_Release(&view);
    }
    return result;
}

PyDoc_STRVAR(rfn_pyz_lz_matches_doc,
"lz_matches(data, start, segment_size, /)\n--\n\n"
"For each segment_size-byte segment of data[start:], how many of its positions\n"
"begin 4 bytes that also stand at most 32 KiB earlier in data (data[:start] is\n"
"the history before it), as found by a one-entry-per-hash table (a slight\n"
"undercount, never an overcount). A list of ints. The GIL is released.");

static PyObject *
rfn_pyz_lz_matches(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *result = NULL;
    uint64_t *counts = NULL;
    Py_buffer view = {0};
    int have_view = 0, rc;

    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "lz_matches expected 3 arguments, got %zd", nargs);
        goto exit;
    }
    Py_ssize_t start = PyLong_AsSsize_t(args[1]);
    if (start == -1 && PyErr_Occurred()) {
        goto exit;
    }
    Py_ssize_t segment = PyLong_AsSsize_t(args[2]);
    if (segment == -1 && PyErr_Occurred()) {
        goto exit;
    }
    if (segment <= 0) {
        PyErr_SetString(PyExc_ValueError, "segment_size must be positive");
        goto exit;
    }
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) {
        goto exit;
    }
    have_view = 1;
    if (start < 0 || start > view.len) {
        PyErr_SetString(PyExc_ValueError, "start must be within data");
        goto exit;
    }
    Py_ssize_t rest = view.len - start;
    Py_ssize_t count = rest / segment + (rest % segment != 0);
    counts = PyMem_Malloc(sizeof(uint64_t) * (size_t)(count ? count : 1));
    if (counts == NULL) {
        PyErr_NoMemory();
        goto exit;
    }
    Py_BEGIN_ALLOW_THREADS
    rc = rfn_pgz_matches(view.buf, (size_t)view.len, (size_t)start, (size_t)segment, counts);
    Py_END_ALLOW_THREADS
    if (rc < 0) {
        PyErr_NoMemory();
        goto exit;
    }
    result = PyList_New(count);
    if (result == NULL) {
        goto exit;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *n = PyLong_FromUnsignedLongLong(counts[i]);
        if (n == NULL) {
            Py_CLEAR(result);
            goto exit;
        }
        PyList_SET_ITEM(result, i, n);
    }
exit:
    PyMem_Free(counts);
    if (have_view) {
        PyBuffer_Release(&view);
    }
    return result;
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

/* Binding of the copy core (copy.h) for runpod_flash_native.build.copy_project_files. */
#include "rfn.h"
#include "copy.h"

PyDoc_STRVAR(rfn_pyc_copy_files_doc,
"copy_files(srcs, dsts, threads, method=0, /)\n--\n\n"
"shutil.copy2(srcs[i], dsts[i]) for every i, on `threads` worker threads with\n"
"the GIL released. Returns None, or for the first failing file in list order\n"
"(index, kind, errno, which, dst_into): kind is 'os', 'same', 'fifo', 'nodir'\n"
"or 'changed'; which is 0 (src), 1 (dst) or 2 (src -> dst); dst_into is the\n"
"destination copy2 chose inside a directory dst, or None. Every file before\n"
"index is copied. A path that cannot be encoded stops the list there: the\n"
"files before it are copied, then its error is raised. method: 0 auto,\n"
"1 copy_file_range then read/write, 2 read/write only. Ctrl-C stops the\n"
"workers and raises KeyboardInterrupt.");

static int
rfn_pyc_poll(void *ctx)
{
    rfn_poller poller = rfn_signal_poller((PyThreadState **)ctx);
    return rfn_poll(&poller) < 0;
}

static const char *
rfn_pyc_kind_name(enum rfn_copy_kind kind)
{
    switch (kind) {
    case RFN_COPY_OS: return "os";
    case RFN_COPY_SAME: return "same";
    case RFN_COPY_FIFO: return "fifo";
    case RFN_COPY_NO_DIR: return "nodir";
    case RFN_COPY_CHANGED: return "changed";
    default: return "os";
    }
}

static PyObject *
rfn_pyc_copy_files(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *result = NULL, *srcs = NULL, *dsts = NULL;
    PyObject **encoded = NULL;      /* 2 * n bytes objects */
    rfn_copy_job *jobs = NULL;
    Py_ssize_t n = 0, usable = 0;
    int ran = 0;

    if (nargs < 3 || nargs > 4) {
        PyErr_Format(PyExc_TypeError, "copy_files expected 3 or 4 arguments, got %zd", nargs);
        goto exit;
    }
    long threads = PyLong_AsLong(args[2]);
    if (threads == -1 && PyErr_Occurred()) {
        goto exit;
    }
    if (threads < 1 || threads > 1024) {
        PyErr_SetString(PyExc_ValueError, "threads must be between 1 and 1024");
        goto exit;
    }
    long method = 0;
    if (nargs == 4) {
        method = PyLong_AsLong(args[3]);
        if (method == -1 && PyErr_Occurred()) {
            goto exit;
        }
        if (method < RFN_COPY_AUTO || method > RFN_COPY_READWRITE) {
            PyErr_SetString(PyExc_ValueError, "method must be 0, 1 or 2");
            goto exit;
        }
    }
    srcs = PySequence_Fast(args[0], "srcs must be a sequence");
    if (srcs == NULL) {
        goto exit;
    }
    dsts = PySequence_Fast(args[1], "dsts must be a sequence");
    if (dsts == NULL) {
        goto exit;
    }
    n = PySequence_Fast_GET_SIZE(srcs);
    if (PySequence_Fast_GET_SIZE(dsts) != n) {
        PyErr_SetString(PyExc_ValueError, "srcs and dsts differ in length");
        goto exit;
    }
    encoded = PyMem_Calloc((size_t)(n ? 2 * n : 1), sizeof(PyObject *));
    jobs = PyMem_Calloc((size_t)(n ? n : 1), sizeof(rfn_copy_job));
    if (encoded == NULL || jobs == NULL) {
        PyErr_NoMemory();
        goto exit;
    }
    for (usable = 0; usable < n; usable++) {
        PyObject *s = PySequence_Fast_GET_ITEM(srcs, usable);
        PyObject *d = PySequence_Fast_GET_ITEM(dsts, usable);
        if (!PyUnicode_FSConverter(s, &encoded[2 * usable])) {
            break;
        }
        if (!PyUnicode_FSConverter(d, &encoded[2 * usable + 1])) {
            break;
        }
        jobs[usable].src = PyBytes_AS_STRING(encoded[2 * usable]);
        jobs[usable].dst = PyBytes_AS_STRING(encoded[2 * usable + 1]);
    }
    if (usable < n) {
        /* Copy the files before the bad one first, as copy2 one by one
         * would; the conversion raises again afterwards. */
        PyErr_Clear();
    }

    rfn_copy_opts opts = {
        .threads = (unsigned)threads,
        .method = (enum rfn_copy_method)method,
        .poll = rfn_pyc_poll,
        .poll_ns = RFN_WAIT_POLL_NS,
    };
    rfn_copy_failure fail;
    PyThreadState *tstate = PyEval_SaveThread();
    opts.poll_ctx = &tstate;
    int rc = rfn_copy_run(jobs, (size_t)usable, &opts, &fail);
    PyEval_RestoreThread(tstate);
    ran = 1;

    if (rc == 0) {
        if (usable < n) {
            PyObject *again = NULL;
            if (PyUnicode_FSConverter(PySequence_Fast_GET_ITEM(srcs, usable), &again)) {
                Py_CLEAR(again);
                if (PyUnicode_FSConverter(PySequence_Fast_GET_ITEM(dsts, usable), &again)) {
                    Py_CLEAR(again);
                    PyErr_SetString(PyExc_ValueError, "a path could not be encoded");
                }
            }
            goto exit;
        }
        result = Py_NewRef(Py_None);
        goto exit;
    }
    switch (fail.kind) {
    case RFN_COPY_INTERRUPTED:
        if (!PyErr_Occurred()) {
            PyErr_SetNone(PyExc_KeyboardInterrupt);
        }
        goto exit;
    case RFN_COPY_NOMEM:
        PyErr_NoMemory();
        goto exit;
    case RFN_COPY_THREAD:
        errno = fail.err_no;
        PyErr_SetFromErrno(PyExc_OSError);
        goto exit;
    default:
        break;
    }
    PyObject *into;
    const char *into_path = jobs[fail.index].dst_into;
    if (into_path != NULL) {
        into = PyUnicode_DecodeFSDefault(into_path);
        if (into == NULL) {
            goto exit;
        }
    } else {
        into = Py_NewRef(Py_None);
    }
    result = Py_BuildValue("(nsiiN)", (Py_ssize_t)fail.index, rfn_pyc_kind_name(fail.kind),
                           fail.err_no, (int)fail.path, into);
exit:
    if (ran) {
        rfn_copy_jobs_release(jobs, (size_t)usable);
    }
    if (encoded != NULL) {
        for (Py_ssize_t i = 0; i < 2 * n; i++) {
            Py_XDECREF(encoded[i]);
        }
    }
    PyMem_Free(encoded);
    PyMem_Free(jobs);
    Py_XDECREF(srcs);
    Py_XDECREF(dsts);
    return result;
}

static PyMethodDef rfn_pyc_methods[] = {
    {"copy_files", (PyCFunction)(void (*)(void))rfn_pyc_copy_files, METH_FASTCALL,
     rfn_pyc_copy_files_doc},
    {NULL, NULL, 0, NULL},
};

int
rfn_copy_exec(PyObject *module)
{
    if (PyModule_AddIntConstant(module, "_copy_kernel_paths", rfn_copy_kernel_paths()) < 0) {
        return -1;
    }
    return PyModule_AddFunctions(module, rfn_pyc_methods);
}

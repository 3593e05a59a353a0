/* Bindings of the hash stream (hash.c): the Python exceptions for an
 * rfn_failure, the signal-polling callback, the module's SHA-256, the test
 * hooks and the constants tests size their inputs from. */
#include "rfn.h"

#include <errno.h>

/* ---- errors --------------------------------------------------------------- */

void
rfn_set_evp_error(const char *what)
{
    unsigned long code = ERR_peek_last_error();
    const char *reason = code ? ERR_reason_error_string(code) : NULL;
    ERR_clear_error();
    PyErr_Format(PyExc_ValueError, "%s failed: %s", what,
                 reason ? reason : "unknown OpenSSL error");
}

void
rfn_raise_failure(rfn_state *st, const rfn_failure *fail, PyObject *path)
{
    switch (fail->kind) {
    case RFN_FAIL_OS:
        errno = fail->err_no;
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, path);
        break;
    case RFN_FAIL_NOT_REGULAR:
        PyErr_Format(PyExc_ValueError, "%R: %s", path, fail->detail);
        break;
    case RFN_FAIL_CHANGED:
        PyErr_Format(st->SourceChangedError, "%R %s; refusing to fingerprint a torn read",
                     path, fail->detail);
        break;
    case RFN_FAIL_NOMEM:
        PyErr_NoMemory();
        break;
    case RFN_FAIL_THREAD:
        errno = fail->err_no;
        PyErr_SetFromErrno(PyExc_OSError);
        break;
    case RFN_FAIL_EVP:
        rfn_set_evp_error("SHA-256");
        break;
    case RFN_FAIL_INTERRUPTED:
        /* The signal handler's exception is already set. */
        if (!PyErr_Occurred()) {
            PyErr_SetNone(PyExc_KeyboardInterrupt);
        }
        break;
    case RFN_OK:
        PyErr_SetString(PyExc_SystemError, "rfn_raise_failure without a failure");
        break;
    }
}

PyObject *
rfn_hexdigest(const unsigned char digest[RFN_SHA256_LEN])
{
    static const char hex[] = "0123456789abcdef";
    char out[RFN_SHA256_LEN * 2];
    for (int i = 0; i < RFN_SHA256_LEN; i++) {
        out[2 * i] = hex[digest[i] >> 4];
        out[2 * i + 1] = hex[digest[i] & 0xf];
    }
    return PyUnicode_FromStringAndSize(out, sizeof(out));
}

/* ---- running the stream without the GIL ------------------------------------ */

static int
rfn_py_poll_signals(void *ctx)
{
    PyThreadState **tstate = ctx;
    PyEval_RestoreThread(*tstate);
    int rc = PyErr_CheckSignals();
    *tstate = PyEval_SaveThread();
    return rc;
}

rfn_poller
rfn_signal_poller(PyThreadState **tstate)
{
    rfn_poller p = {rfn_py_poll_signals, tstate};
    return p;
}

int
rfn_hash_feed(rfn_state *st, rfn_source_feed *feed, const rfn_poller *poll,
              unsigned char digest[RFN_SHA256_LEN], rfn_failure *fail)
{
    size_t readers = rfn_hash_reader_count(__atomic_load_n(&st->reader_threads, __ATOMIC_RELAXED));
    return rfn_fingerprint_stream(st->sha256, readers, feed, 0, poll, digest, fail);
}

/* ---- module exec ---------------------------------------------------------- */

/* _set_reader_threads(n) -> previous: the number of reader threads of the
 * threaded mode, 0 for the default (rfn_hash_reader_count). For tests: the
 * result must not depend on it. */
static PyObject *
rfn_set_reader_threads(PyObject *module, PyObject *arg)
{
    int n;
    if (rfn_int_arg(arg, 0, RFN_MAX_READERS, "reader threads", &n) < 0) {
        return NULL;
    }
    rfn_state *st = rfn_get_state(module);
    return PyLong_FromLong(__atomic_exchange_n(&st->reader_threads, n, __ATOMIC_RELAXED));
}

/* _bytes_read() -> bytes the native hash has read in this process (the
 * progress line's counter where there is no /proc/self/io). */
static PyObject *
rfn_bytes_read(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromUnsignedLongLong(rfn_hash_bytes_read());
}

static PyMethodDef rfn_hash_methods[] = {
    {"_bytes_read", rfn_bytes_read, METH_NOARGS,
     "_bytes_read()\n--\n\n"
     "-> bytes the native hash has read in this process so far."},
    {"_set_reader_threads", rfn_set_reader_threads, METH_O,
     "_set_reader_threads(n, /)\n--\n\n"
     "-> previous n: reader threads of the threaded hash, 0 = default (CPUs + 1)."},
    {NULL, NULL, 0, NULL},
};

int
rfn_hash_exec(PyObject *module)
{
    rfn_state *st = rfn_get_state(module);
    st->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (st->sha256 == NULL) {
        rfn_set_evp_error("EVP_MD_fetch(SHA256)");
        return -1;
    }
    if (rfn_add_exception(module, "SourceChangedError",
                          "A source file changed (size or mtime) while it was being fingerprinted.",
                          PyExc_RuntimeError, &st->SourceChangedError) < 0) {
        return -1;
    }
    /* The sizes tests derive their inputs from (tests/reference.py). */
    if (PyModule_AddIntConstant(module, "_CHUNK_SIZE", RFN_CHUNK_SIZE) < 0
        || PyModule_AddIntConstant(module, "_THREAD_THRESHOLD", RFN_THREAD_THRESHOLD) < 0
        || PyModule_AddIntConstant(module, "_READER_BLOCK", RFN_READER_BLOCK) < 0
        || PyModule_AddIntConstant(module, "_MAX_READERS", RFN_MAX_READERS) < 0
        || PyModule_AddIntConstant(module, "_WAIT_POLL_NS", RFN_WAIT_POLL_NS) < 0
        || PyModule_AddIntConstant(module, "_DIRCACHE_DEPTH", RFN_DIRCACHE_DEPTH) < 0
        || PyModule_AddIntConstant(module, "_PORTABLE_BUILD", !RFN_OS_LINUX) < 0) {
        return -1;
    }
    return PyModule_AddFunctions(module, rfn_hash_methods);
}

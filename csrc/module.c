/* Module definition: multi-phase init (PEP 489) with per-module state.
 * Each concern registers its own functions and types in its Py_mod_exec. */
#include "rfn.h"

/* ---- C stack guard (the stack's bounds: os.c) ------------------------------- */

int
rfn_stack_check(size_t need)
{
    if (rfn_stack_avail() < need + 1) {
        PyErr_SetString(PyExc_RecursionError,
                        "maximum recursion depth exceeded: the C stack is nearly full "
                        "(nesting too deep)");
        return -1;
    }
    return 0;
}

/* ---- module exceptions ------------------------------------------------------ */

int
rfn_add_exception(PyObject *module, const char *name, const char *doc, PyObject *base,
                  PyObject **slot)
{
    char qualified[128];
    int n = snprintf(qualified, sizeof(qualified), "%s.%s", RFN_MODULE_NAME, name);
    if (n < 0 || (size_t)n >= sizeof(qualified)) {
        PyErr_SetString(PyExc_SystemError, "exception name too long");
        return -1;
    }
    *slot = PyErr_NewExceptionWithDoc(qualified, doc, base, NULL);
    if (*slot == NULL) {
        return -1;
    }
    return PyModule_AddObjectRef(module, name, *slot);
}

static int
rfn_module_traverse(PyObject *module, visitproc visit, void *arg)
{
    rfn_state *st = rfn_get_state(module);
    Py_VISIT(st->SourceChangedError);
    Py_VISIT(st->SymlinkLoopError);
    Py_VISIT(st->InvalidPatternError);
    Py_VISIT(st->PatternRegexError);
    Py_VISIT(st->IgnoreSpecType);
    return rfn_diff_traverse(st, visit, arg);
}

static int
rfn_module_clear(PyObject *module)
{
    rfn_state *st = rfn_get_state(module);
    Py_CLEAR(st->SourceChangedError);
    Py_CLEAR(st->SymlinkLoopError);
    Py_CLEAR(st->InvalidPatternError);
    Py_CLEAR(st->PatternRegexError);
    Py_CLEAR(st->IgnoreSpecType);
    rfn_diff_clear(st);
    return 0;
}

static void
rfn_module_free(void *module)
{
    rfn_state *st = rfn_get_state((PyObject *)module);
    rfn_module_clear((PyObject *)module);
    if (st->sha256 != NULL) {
        EVP_MD_free(st->sha256);
        st->sha256 = NULL;
    }
}

static PyModuleDef_Slot rfn_module_slots[] = {
    {Py_mod_exec, rfn_hash_exec},
    {Py_mod_exec, rfn_sources_exec},
    {Py_mod_exec, rfn_ignore_exec},
    {Py_mod_exec, rfn_walk_exec},
    {Py_mod_exec, rfn_diff_exec},
    {Py_mod_exec, rfn_pgzip_exec},
    {Py_mod_exec, rfn_copy_exec},
#ifdef Py_mod_multiple_interpreters
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
#ifdef Py_mod_gil
    /* No global mutable state; every object is immutable after creation. */
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL},
};

PyModuleDef rfn_module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = RFN_MODULE_NAME,
    .m_doc = "Native core of runpod_flash_native: fingerprint, ignore matching, deploy diff.",
    .m_size = sizeof(rfn_state),
    .m_methods = NULL,
    .m_slots = rfn_module_slots,
    .m_traverse = rfn_module_traverse,
    .m_clear = rfn_module_clear,
    .m_free = rfn_module_free,
};

PyMODINIT_FUNC
PyInit__fingerprint(void)
{
    return PyModuleDef_Init(&rfn_module_def);
}

/* Module definition: multi-phase init (PEP 489) with per-module state.
 * Each concern registers its own functions and types in its Py_mod_exec. */
#include "rfn.h"

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

/* ---- small integer arguments (the test hooks) -------------------------------- */

int
rfn_int_arg(PyObject *arg, int lo, int hi, const char *what, int *out)
{
    long n = PyLong_AsLong(arg);
    if (n == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (n < lo || n > hi) {
        PyErr_Format(PyExc_ValueError, "%s must be %d to %d, not %ld", what, lo, hi, n);
        return -1;
    }
    *out = (int)n;
    return 0;
}

/* ---- interned strings in the state ------------------------------------------ */

int
rfn_intern_strings(rfn_state *st, const rfn_interned *table, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        PyObject **slot = (PyObject **)((char *)st + table[i].offset);
        *slot = PyUnicode_InternFromString(table[i].text);
        if (*slot == NULL) {
            return -1;
        }
    }
    return 0;
}

/* ---- module state: GC ------------------------------------------------------- */

static int
rfn_module_traverse(PyObject *module, visitproc visit, void *arg)
{
    rfn_state *st = rfn_get_state(module);
    Py_VISIT(st->SourceChangedError);
    Py_VISIT(st->SymlinkLoopError);
    Py_VISIT(st->InvalidPatternError);
    Py_VISIT(st->PatternRegexError);
    Py_VISIT(st->IgnoreSpecType);
    Py_VISIT(st->runtime_fields);
    Py_VISIT(st->str_true);
    Py_VISIT(st->str_false);
    Py_VISIT(st->str_null);
    Py_VISIT(st->kind_changed);
    Py_VISIT(st->kind_added);
    Py_VISIT(st->kind_removed);
    Py_VISIT(st->kind_endpoint_missing);
    Py_VISIT(st->key_fingerprint_env);
    Py_VISIT(st->key_env);
    Py_VISIT(st->key_resources);
    Py_VISIT(st->key_resources_endpoints);
    Py_VISIT(st->key_source_fingerprint);
    Py_VISIT(st->key_client_mode);
    Py_VISIT(st->key_endpoint_id);
    Py_VISIT(st->key_ai_key);
    return 0;
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
    Py_CLEAR(st->runtime_fields);
    Py_CLEAR(st->str_true);
    Py_CLEAR(st->str_false);
    Py_CLEAR(st->str_null);
    Py_CLEAR(st->kind_changed);
    Py_CLEAR(st->kind_added);
    Py_CLEAR(st->kind_removed);
    Py_CLEAR(st->kind_endpoint_missing);
    Py_CLEAR(st->key_fingerprint_env);
    Py_CLEAR(st->key_env);
    Py_CLEAR(st->key_resources);
    Py_CLEAR(st->key_resources_endpoints);
    Py_CLEAR(st->key_source_fingerprint);
    Py_CLEAR(st->key_client_mode);
    Py_CLEAR(st->key_endpoint_id);
    Py_CLEAR(st->key_ai_key);
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
    {Py_mod_exec, rfn_json_eq_exec},
    {Py_mod_exec, rfn_compare_exec},
    {Py_mod_exec, rfn_plan_exec},
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

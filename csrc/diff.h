/* Deploy diff internals shared by json_eq.c (the fast path: JSON-text
 * equality on the objects), compare.c (flash's own compare expression, the
 * comparison entry points) and plan.c (manifests: injection, plan, reuse). */
#ifndef RFN_DIFF_H
#define RFN_DIFF_H

#include "rfn.h"

/* ---- json_eq.c ------------------------------------------------------------ */

enum { RFN_EQUAL = 0, RFN_DIFFER = 1, RFN_UNDECIDED = 2 };

/* Fast path over two configs. Returns RFN_DIFFER, RFN_EQUAL, RFN_UNDECIDED
 * (the slow path must run) or -1 (MemoryError only). With changes (an empty
 * list), the differences are appended to it, sorted by path, which is json's
 * order; undecided leaves it empty. */
int rfn_fast_compare(rfn_state *st, PyObject *local, PyObject *state, PyObject *changes);

/* Append the change (path, kind, old, new) to the list changes: path NULL is
 * (), old or new NULL is None. 0 or -1. */
int rfn_change_append(PyObject *changes, PyObject *path, PyObject *kind, PyObject *old,
                      PyObject *new_);

/* d[key] for a key taken from d (borrowed); NULL with an exception set (a
 * RuntimeError if the key vanished). */
PyObject *rfn_lookup_own_key(PyObject *d, PyObject *key);

/* ---- compare.c ------------------------------------------------------------ */

/* Does flash roll this resource for its config? 1 yes, 0 no, -1 error. With
 * changes not NULL and a difference found, the differences are appended. */
int rfn_resource_differs(rfn_state *st, PyObject *local, PyObject *state, PyObject *changes);

/* TypeError "<what> must be a dict, not <type>" (-1) unless o is a dict. */
int rfn_require_dict(PyObject *o, const char *what);

/* TypeError (0) unless nargs == expected (1). */
int rfn_check_nargs(const char *fname, Py_ssize_t nargs, Py_ssize_t expected);

/* ---- the C stack guard ------------------------------------------------------
 * The recursion limit alone does not protect C recursion: with
 * sys.setrecursionlimit() raised, a config nested 100,000 deep would overflow
 * the C stack. rfn_stack_check(need) raises RecursionError (returns -1)
 * unless this thread's stack has need bytes plus a safety margin left below
 * the caller's frame; os.h's rfn_stack_avail() is that room (SIZE_MAX when
 * the stack bounds are unknown). */
static inline int
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

#endif /* RFN_DIFF_H */

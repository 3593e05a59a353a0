/* Shared declarations of the runpod_flash_native._fingerprint extension.
 *
 * Every internal symbol carries the rfn_ prefix. Each concern lives in its own
 * file and plugs into the module through one Py_mod_exec function:
 *   module.c  module definition, state, exec chain
 *   os.c      OS helpers: long paths, threads, timed waits, CPUs, stack bounds
 *             (core: no Python.h; os.h)
 *   hash.c    SHA-256 (OpenSSL EVP) and the framed, pipelined fingerprint stream
 *             (core: no Python.h; hash.h; bindings: py_hash.c)
 *   sources.c compute_source_fingerprint(): flash's path arithmetic and ordering
 *   ignore.c  IgnoreSpec and compile_ignore_patterns(): the binding of the
 *             gitwildmatch matcher (core: no Python.h; match.h): match_compile.c
 *             compiles patterns like pathspec, match.c matches; utf8.c/utf8.h
 *             is the one UTF-8 codec
 *   walk.c    the project walk (flash's get_file_tree) and the sorted walk feeding
 *             the fingerprint (core: no Python.h; layered, each including only
 *             what is below it: walk.c/.h the loop and feed, walk_par.c/.h the
 *             listing workers, walk_list.c/.h one directory, walk_tree.c/.h the
 *             arena and tree; bindings: py_walk.c)
 *   json_eq.c config comparison, fast path: JSON-text equality on the objects
 *   compare.c config comparison: flash's expression (deepcopy, json.dumps)
 *             with a C-stack guard for json's encoder; the entry points
 *   plan.c    manifests: fingerprint injection, reconciliation plan, apply_reuse
 *             (diff.h: what these three share, and the C stack guard)
 *   pgzip.c   segment entropy and CRC-32 combination for the parallel gzip writer
 *             (binding: py_pgzip.c)
 *   copy.c    copy2 of many files on worker threads (binding: py_copy.c)
 */
#ifndef RFN_H
#define RFN_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <stdint.h>
#include "os.h"
#include "hash.h"         /* includes rfn_evp.h: OpenSSL 3 EVP */
#include "match.h"        /* the compiled gitwildmatch matcher */

#define RFN_MODULE_NAME "runpod_flash_native._fingerprint"

typedef struct {
    EVP_MD *sha256;                 /* fetched once at import, freed at m_free */
    PyObject *SourceChangedError;   /* RuntimeError: a file changed while hashed */
    PyObject *SymlinkLoopError;     /* OSError: directory symlink cycle in a walk */
    PyObject *InvalidPatternError;  /* ValueError: pathspec rejects the pattern */
    PyObject *PatternRegexError;    /* re.error: pathspec's regex fails to compile */
    PyTypeObject *IgnoreSpecType;
    /* json_eq.c */
    PyObject *runtime_fields;       /* frozenset: flash's RUNTIME_RESOURCE_FIELDS */
    PyObject *str_true;             /* json's texts of the keys True, False, None */
    PyObject *str_false;
    PyObject *str_null;
    PyObject *kind_changed;         /* the kinds of a change (config_changes) */
    PyObject *kind_added;
    PyObject *kind_removed;
    /* plan.c: interned manifest and config keys */
    PyObject *kind_endpoint_missing;
    PyObject *key_fingerprint_env;  /* "_FLASH_SOURCE_FINGERPRINT" */
    PyObject *key_env;
    PyObject *key_resources;
    PyObject *key_resources_endpoints;
    PyObject *key_source_fingerprint;
    PyObject *key_client_mode;
    PyObject *key_endpoint_id;
    PyObject *key_ai_key;
    int reader_threads;             /* hash.c: 0 = default (CPUs + 1); set by tests, read atomically */
} rfn_state;

extern PyModuleDef rfn_module_def;

static inline rfn_state *
rfn_get_state(PyObject *module)
{
    void *state = PyModule_GetState(module);
    assert(state != NULL);
    return (rfn_state *)state;
}

/* State of the module that defined the (non-subclassable) type of obj. */
static inline rfn_state *
rfn_get_state_by_type(PyTypeObject *tp)
{
    return rfn_get_state(PyType_GetModule(tp));
}

/* Py_mod_exec functions, run in this order by module.c. */
int rfn_hash_exec(PyObject *module);
int rfn_sources_exec(PyObject *module);
int rfn_ignore_exec(PyObject *module);
int rfn_walk_exec(PyObject *module);
int rfn_json_eq_exec(PyObject *module);
int rfn_compare_exec(PyObject *module);
int rfn_plan_exec(PyObject *module);
int rfn_pgzip_exec(PyObject *module);
int rfn_copy_exec(PyObject *module);

/* Create the exception class RFN_MODULE_NAME.<name> (base, doc), keep it in
 * *slot (module state) and add it to module as <name>. Returns 0 or -1. */
int rfn_add_exception(PyObject *module, const char *name, const char *doc, PyObject *base,
                      PyObject **slot);

/* arg as an int in lo..hi, else -1 with TypeError/ValueError ("<what> must
 * be lo to hi, not n") set. */
int rfn_int_arg(PyObject *arg, int lo, int hi, const char *what, int *out);

/* An interned str kept in the module state at offset. */
typedef struct {
    size_t offset;                  /* offsetof(rfn_state, field) */
    const char *text;
} rfn_interned;

/* Intern each table entry's text into its state field. Returns 0 or -1. */
int rfn_intern_strings(rfn_state *st, const rfn_interned *table, size_t n);

/* ---- py_hash.c: the fingerprint stream from Python ----------------------- */

/* The poller that runs Python's signal handlers: it takes the GIL for a
 * moment from *tstate (the caller's saved thread state, the GIL released)
 * and returns -1, with the exception left set, if one raised. */
rfn_poller rfn_signal_poller(PyThreadState **tstate);

/* rfn_fingerprint_stream() with the module's SHA-256 and reader threads
 * (_set_reader_threads). Called WITHOUT the GIL. */
int rfn_hash_feed(rfn_state *st, rfn_source_feed *feed, const rfn_poller *poll,
                  unsigned char digest[RFN_SHA256_LEN], rfn_failure *fail);

/* Set the Python exception describing fail for the file path (a str). */
void rfn_raise_failure(rfn_state *st, const rfn_failure *fail, PyObject *path);

/* Raise the Python exception for the current OpenSSL error queue. */
void rfn_set_evp_error(const char *what);

PyObject *rfn_hexdigest(const unsigned char digest[RFN_SHA256_LEN]);

/* ---- sources.c: sort keys shared with the walk --------------------------- */

/* os.fspath(obj) when that is a str (new reference), else NULL with an
 * exception: type_error formats the TypeError from (type name, obj). */
PyObject *rfn_fspath_str(PyObject *obj, const char *type_error);

/* rfn_compare_keys(): hash.h (the core shares it). */

/* Raise the UnicodeEncodeError flash's rel.encode("utf-8") raises for a
 * relative path given as surrogatepass UTF-8. */
void rfn_raise_rel_encode_error(const char *rel, size_t rel_len);

/* ---- ignore.c: the IgnoreSpec type -------------------------------------- */

/* The matcher inside an IgnoreSpec object, or NULL (TypeError set). */
const rfn_matcher *rfn_ignorespec_matcher(PyObject *spec);

#endif /* RFN_H */

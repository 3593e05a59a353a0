/* Deploy manifests, as flash deploy handles them: the source fingerprint
 * injected into the local resources' env, the reconciliation plan
 * (provision / update / reuse / delete, with the reasons for each update)
 * and apply_reuse. Whether a resource's config changed is compare.c's. */
#include "diff.h"

#include <string.h>

#define RFN_FP_ENV_KEY "_FLASH_SOURCE_FINGERPRINT"

/* ---- manifests: validate, then mutate -------------------------------------- */

/* d[key] when it is a dict (borrowed), NULL when absent; -1 and a TypeError
 * naming where when it is something else. */
static int
rfn_get_dict_member(PyObject *d, PyObject *key, const char *where, PyObject **out)
{
    PyObject *v = PyDict_GetItemWithError(d, key);
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
        PyObject *client_mode = Py_XNewRef(PyDict_GetItemWithError(config, st->key_client_mode));
        int skip = client_mode ? PyObject_IsTrue(client_mode) : (PyErr_Occurred() ? -1 : 0);
        Py_XDECREF(client_mode);
        if (skip != 0) {
            return skip < 0 ? -1 : 0;
        }
    }
    PyObject *env = PyDict_GetItemWithError(config, st->key_env);
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
    if (rfn_require_dict(manifest, "local_manifest") < 0
        || rfn_get_dict_member(manifest, st->key_resources, "local_manifest",
                               &l->resources) < 0) {
        return -1;
    }
    Py_XINCREF(l->resources);
    PyObject *fp = PyDict_GetItemWithError(manifest, st->key_source_fingerprint);
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
    PyObject *key_env = st->key_env;
    PyObject *env = PyDict_GetItemWithError(config, key_env);
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
    int rc = rfn_logged_setitem(log, env, st->key_fingerprint_env, fp);
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
    if (rfn_require_dict(manifest, "state_manifest") < 0
        || rfn_get_dict_member(manifest, st->key_resources, "state_manifest",
                               &resources) < 0
        || rfn_get_dict_member(manifest, st->key_resources_endpoints, "state_manifest",
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
    PyObject *env = PyDict_GetItemWithError(state_config, st->key_env);
    if (env == NULL) {
        return PyErr_Occurred() ? -1 : 0;
    }
    return PyDict_Check(env) ? PySequence_Contains(env, st->key_fingerprint_env) : 0;
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
    PyObject *keys[2] = {st->key_endpoint_id, st->key_ai_key};
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
    PyObject *k_eps = st->key_resources_endpoints;
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
    if (endpoint_missing
        && rfn_change_append(changes, NULL, st->kind_endpoint_missing, NULL, NULL) < 0) {
        return -1;
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
    PyObject *seps = PyDict_GetItemWithError(p->state_manifest, st->key_resources_endpoints);
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

static int
rfn_reuse_collect(rfn_state *st, PyObject *local_manifest, PyObject *state_manifest, PyObject *names,
                  PyObject *items)
{
    PyObject *lres, *sres, *seps, *leps;
    PyObject *k_res = st->key_resources, *k_eps = st->key_resources_endpoints;
    if (rfn_require_dict(local_manifest, "local_manifest") < 0
        || rfn_require_dict(state_manifest, "state_manifest") < 0
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
    PyObject *k_eps = st->key_resources_endpoints;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(items); i++) {
        PyObject *item = PyList_GET_ITEM(items, i), *name = PyList_GET_ITEM(names, i);
        PyObject *lc = PyTuple_GET_ITEM(item, 0), *sc = PyTuple_GET_ITEM(item, 1);
        if (rfn_copy_if_present(lc, sc, st->key_endpoint_id) < 0
            || rfn_copy_if_present(lc, sc, st->key_ai_key) < 0) {
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

static PyMethodDef rfn_plan_methods[] = {
    {"inject_source_fingerprint", (PyCFunction)(void (*)(void))rfn_py_inject_source_fingerprint,
     METH_VARARGS | METH_KEYWORDS,
     "inject_source_fingerprint(local_manifest, *, skip_client_mode=True) -> None\n\n"
     "Set env['" RFN_FP_ENV_KEY "'] of every resource (every non-client-mode one\n"
     "with skip_client_mode, as flash >= 1.21.0) to the manifest's\n"
     "source_fingerprint, as flash deploy does."},
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

static const rfn_interned rfn_plan_strings[] = {
    {offsetof(rfn_state, key_fingerprint_env), RFN_FP_ENV_KEY},
    {offsetof(rfn_state, key_env), "env"},
    {offsetof(rfn_state, key_resources), "resources"},
    {offsetof(rfn_state, key_resources_endpoints), "resources_endpoints"},
    {offsetof(rfn_state, key_source_fingerprint), "source_fingerprint"},
    {offsetof(rfn_state, key_client_mode), "client_mode"},
    {offsetof(rfn_state, key_endpoint_id), "endpoint_id"},
    {offsetof(rfn_state, key_ai_key), "aiKey"},
    {offsetof(rfn_state, kind_endpoint_missing), "endpoint_missing"},
};

int
rfn_plan_exec(PyObject *module)
{
    rfn_state *st = rfn_get_state(module);
    size_t n = sizeof(rfn_plan_strings) / sizeof(rfn_plan_strings[0]);
    if (rfn_intern_strings(st, rfn_plan_strings, n) < 0
        || PyModule_AddObjectRef(module, "SOURCE_FINGERPRINT_ENV_KEY", st->key_fingerprint_env) < 0) {
        return -1;
    }
    return PyModule_AddFunctions(module, rfn_plan_methods);
}

"""Fuzz the deploy planning entry points with malformed (untrusted) manifests.

inject_source_fingerprint, plan_reconciliation (both modes) and apply_reuse
get manifests whose every level may hold the wrong type (resources as a list,
a config as a str, env as None or a list, endpoints as an int, a fingerprint
of the wrong type, ...). None may crash; each either answers or raises
TypeError/ValueError/RecursionError; on an exception the local manifest is
unchanged (they validate before mutating); the state manifest is never
changed; and no object of either manifest loses or gains a reference (a
borrowed reference released on an error path, as fixed in 5a75fed, shows up
here at once).

    python fuzz/fuzz_manifest.py [corpus dirs...] [libFuzzer flags]
"""

import copy
import sys

import atheris

from _common import check_native

from runpod_flash_native import deployment

NAMES = ["api", "worker", "gone", "old", "", "é"]
FIELDS = ["imageName", "env", "endpoint_id", "aiKey", "client_mode", "gpuIds", "workersMax"]


@atheris.instrument_func
def scalar(fdp):
    return [None, True, False, 0, 1, 2.5, "x", "fp", "", [], {}, ("t",)][fdp.ConsumeIntInRange(0, 11)]


@atheris.instrument_func
def maybe_wrong(fdp, good):
    """good most of the time, else a value of some other type."""
    return good if fdp.ConsumeIntInRange(0, 7) else scalar(fdp)


@atheris.instrument_func
def config(fdp):
    c = {}
    for _ in range(fdp.ConsumeIntInRange(0, 4)):
        field = FIELDS[fdp.ConsumeIntInRange(0, len(FIELDS) - 1)]
        if field == "env":
            c[field] = maybe_wrong(fdp, {k: scalar(fdp) for k in ("A", "_FLASH_SOURCE_FINGERPRINT")[: fdp.ConsumeIntInRange(0, 2)]})
        else:
            c[field] = scalar(fdp)
    return maybe_wrong(fdp, c)


@atheris.instrument_func
def manifest(fdp):
    m = {}
    if fdp.ConsumeBool():
        m["source_fingerprint"] = maybe_wrong(fdp, "fp")
    if fdp.ConsumeIntInRange(0, 7):
        m["resources"] = maybe_wrong(fdp, {NAMES[fdp.ConsumeIntInRange(0, len(NAMES) - 1)]: config(fdp)
                                           for _ in range(fdp.ConsumeIntInRange(0, 4))})
    if fdp.ConsumeBool():
        m["resources_endpoints"] = maybe_wrong(fdp, {NAMES[fdp.ConsumeIntInRange(0, len(NAMES) - 1)]: scalar(fdp)
                                                     for _ in range(fdp.ConsumeIntInRange(0, 3))})
    return maybe_wrong(fdp, m) if fdp.ConsumeIntInRange(0, 15) == 0 else m


def objects(o, out):
    """Every container reachable from o (no cycles are generated)."""
    if isinstance(o, (dict, list, tuple)):
        out.append(o)
        for v in (o.values() if isinstance(o, dict) else o):
            objects(v, out)
    return out


def refcounts(objs):
    return [sys.getrefcount(o) for o in objs]


@atheris.instrument_func
def TestOneInput(data):
    fdp = atheris.FuzzedDataProvider(data)
    local, state = manifest(fdp), manifest(fdp)
    op = fdp.ConsumeIntInRange(0, 3)
    local_before = copy.deepcopy(local)
    state_before = copy.deepcopy(state)
    objs = objects(state, []) + objects(local, [])
    refs = refcounts(objs)
    try:
        if op == 0:
            deployment.inject_source_fingerprint(local)
        elif op in (1, 2):
            plan = deployment.plan_reconciliation(
                local, state, missing_state_fingerprint="adopt" if op == 2 else "update")
            plan.to_dict()
        else:
            deployment.apply_reuse(local, state, [NAMES[fdp.ConsumeIntInRange(0, len(NAMES) - 1)]
                                                  for _ in range(fdp.ConsumeIntInRange(0, 3))])
        failed = False
    except (TypeError, ValueError, RecursionError):
        failed = True
    assert state == state_before, (op, state_before, state)
    if failed:
        assert local == local_before, (op, local_before, local)
        assert refcounts(objs) == refs, (op, local_before, state_before)


if __name__ == "__main__":
    check_native()
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()

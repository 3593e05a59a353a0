"""Fuzz config_differs (and config_changes) against flash's json rule.

flash decides that a resource rolls when

    json.dumps(_resource_config_for_compare(local), sort_keys=True)
      != json.dumps(_resource_config_for_compare(state), sort_keys=True)

For random JSON-like configs (None, bools, ints incl. huge and bool-valued,
floats incl. NaN/inf/-0.0/1e16, str incl. lone surrogates, lists, tuples,
dicts with str/int/float/bool/None keys, and a few values json refuses: sets,
bytes, mixed key types under sort_keys), config_differs must return exactly
that, or raise the same exception type flash's expression raises; and
config_changes must be empty exactly when they are equal.

    python fuzz/fuzz_config_differs.py [corpus dirs...] [libFuzzer flags]
"""

import sys

import atheris

import copy
import json

# json and copy are imported before any target runs (atheris cannot instrument
# them then); coverage comes from the generators below, so inputs that build
# new shapes of config are kept.

from _common import check_native, text

from runpod_flash_native import deployment

RUNTIME = sorted(deployment.RUNTIME_RESOURCE_FIELDS)
KEYS = ["a", "b", "env", "imageName", "gpuIds", "A", "é", "\udcff", "", "0", "1"] + RUNTIME
FLOATS = [0.0, -0.0, 1.0, 1.5, 1e16, 1e-7, float("nan"), float("inf"), float("-inf"), 0.1 + 0.2]
INTS = [0, 1, -1, 2**53, 2**64, -(2**70), True, False]


@atheris.instrument_func
def value(fdp, depth):
    kind = fdp.ConsumeIntInRange(0, 13 if depth < 4 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return fdp.ConsumeBool()
    if kind == 2:
        return INTS[fdp.ConsumeIntInRange(0, len(INTS) - 1)] if fdp.ConsumeBool() else fdp.ConsumeInt(4)
    if kind == 3:
        return FLOATS[fdp.ConsumeIntInRange(0, len(FLOATS) - 1)] if fdp.ConsumeBool() else fdp.ConsumeRegularFloat()
    if kind in (4, 5, 6):
        return text(fdp, "abé\udcff\U0001f600\"\\\n 0", 6) if kind == 4 else KEYS[fdp.ConsumeIntInRange(0, len(KEYS) - 1)]
    if kind in (7, 8):
        return [value(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 3))]
    if kind == 9:
        return tuple(value(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 3)))
    if kind in (10, 11, 12):
        return {key(fdp): value(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 4))}
    return [{1, 2}, b"x", object()][fdp.ConsumeIntInRange(0, 2)] if fdp.ConsumeIntInRange(0, 7) == 0 else 1


@atheris.instrument_func
def key(fdp):
    k = fdp.ConsumeIntInRange(0, 15)
    if k < 12:
        return KEYS[k % len(KEYS)]
    return [1, 2.5, True, None][k - 12]


@atheris.instrument_func
def config(fdp):
    return {key(fdp) if fdp.ConsumeIntInRange(0, 9) == 0 else KEYS[fdp.ConsumeIntInRange(0, len(KEYS) - 1)]:
            value(fdp, 1) for _ in range(fdp.ConsumeIntInRange(0, 5))}


@atheris.instrument_func
def mutate(fdp, v, depth=0):
    """A near copy of v: most of it shared in structure, a few leaves changed."""
    if isinstance(v, dict):
        out = {}
        for k, x in v.items():
            op = fdp.ConsumeIntInRange(0, 9)
            if op == 0:
                continue
            out[k] = value(fdp, depth + 1) if op == 1 else mutate(fdp, x, depth + 1)
        if fdp.ConsumeIntInRange(0, 5) == 0:
            out[key(fdp)] = value(fdp, depth + 1)
        return out
    if isinstance(v, (list, tuple)):
        items = [mutate(fdp, x, depth + 1) for x in v]
        if fdp.ConsumeIntInRange(0, 7) == 0:
            items.append(value(fdp, depth + 1))
        return type(v)(items) if fdp.ConsumeIntInRange(0, 7) else (list(items) if isinstance(v, tuple) else tuple(items))
    return value(fdp, depth) if fdp.ConsumeIntInRange(0, 5) == 0 else v


def flash_text(cfg):
    c = copy.deepcopy(cfg)
    for field in RUNTIME:
        c.pop(field, None)
    return json.dumps(c, sort_keys=True)


@atheris.instrument_func
def outcome(fn, *args):
    try:
        return ("ok", fn(*args))
    except (TypeError, ValueError, RecursionError) as e:
        return ("err", type(e))


@atheris.instrument_func
def TestOneInput(data):
    fdp = atheris.FuzzedDataProvider(data)
    a = config(fdp)
    b = mutate(fdp, a) if fdp.ConsumeBool() else config(fdp)
    if fdp.ConsumeBool():
        a, b = b, a
    expected = outcome(lambda: flash_text(a) != flash_text(b))
    got = outcome(deployment.config_differs, a, b)
    assert got == expected, (a, b, got, expected)
    changes = outcome(deployment.config_changes, a, b)
    if expected[0] == "ok":
        assert changes[0] == "ok" and bool(changes[1]) is expected[1], (a, b, changes)
    else:
        assert changes == expected, (a, b, changes, expected)


if __name__ == "__main__":
    check_native()
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()

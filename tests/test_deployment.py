"""runpod_flash_native.deployment against runpod-flash 1.21.0's own code.

The reference for every comparison is flash itself: its
``_resource_config_for_compare`` plus ``json.dumps(..., sort_keys=True)``
for config equality, and its real ``reconcile_and_provision_resources``
(driven with mocks for ``ResourceManager``, ``create_resource_from_manifest``
and the app, as flash's own tests do) for plans and manifest mutations.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import copy
import enum
import gc
import json
import math
import shutil
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace
from unittest.mock import AsyncMock, MagicMock, patch

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import runpod_flash.cli.utils.deployment as flash_deployment
from runpod_flash_native import _fingerprint
from runpod_flash_native import deployment as d
from reference import outcome

FP_KEY = "_FLASH_SOURCE_FINGERPRINT"

# When flash's comparison raises, the provisioning coroutines it already
# created (mocked get_or_deploy_resource calls) are never awaited.
pytestmark = pytest.mark.filterwarnings("ignore:coroutine .* was never awaited:RuntimeWarning")


@pytest.fixture(autouse=True)
def _collect_unawaited_coroutines():
    """Those coroutines sit in reference cycles (the exception's frames):
    collected here, their warning comes while the filter above applies, not
    at the end of the session where pytest's last gc.collect() prints it."""
    yield
    gc.collect()


# ---- the reference ----------------------------------------------------------


def flash_compare_text(config):
    return json.dumps(flash_deployment._resource_config_for_compare(config), sort_keys=True)


def flash_differs(local, state):
    """flash's expression, evaluated in flash's order."""
    local_json = flash_compare_text(local)
    state_json = flash_compare_text(state)
    return local_json != state_json


# ---- strategies: JSON-like values with the corners json.dumps cares about ----

SPECIAL_STRINGS = [
    "",
    "x\U0001F600",
    "x\ud83d\ude00",  # prints exactly like the line above
    "\ud800",
    "\udfff",
    '"quoted"\\',
    "\n\r\t\b\f\x00\x1f\x7f",
    "é",
    "\uffff",
    "\U0010ffff",
    "NaN",
    "1",
    "true",
    "null",
]

texts = st.one_of(
    st.text(max_size=6),
    st.text(st.characters(blacklist_categories=()), max_size=4),  # surrogates too
    st.sampled_from(SPECIAL_STRINGS),
)
floats = st.one_of(
    st.floats(),
    st.sampled_from([0.0, -0.0, 1.0, 1e16, 1e-7, float("inf"), float("-inf"), float("nan"), -float("nan")]),
)
ints = st.one_of(st.integers(-3, 12), st.integers(), st.sampled_from([2**63, -(2**63) - 1, 2**64, 10**30]))
scalars = st.one_of(st.none(), st.booleans(), ints, floats, texts)

key_families = st.sampled_from(["str", "str", "str", "int", "float", "number", "const", "any"])


def keys_for(family):
    return {
        "str": texts,
        "int": ints,
        "float": floats,
        "number": st.one_of(ints, floats, st.booleans()),
        "const": st.one_of(st.booleans(), st.none()),
        "any": st.one_of(texts, ints, floats, st.booleans(), st.none()),
    }[family]


def dicts_of(children):
    return key_families.flatmap(lambda fam: st.dictionaries(keys_for(fam), children, max_size=5))


json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.lists(children, max_size=4).map(tuple),
        dicts_of(children),
    ),
    max_leaves=25,
)

RUNTIME_SAMPLE = sorted(flash_deployment.RUNTIME_RESOURCE_FIELDS)
config_keys = st.one_of(texts, st.sampled_from(RUNTIME_SAMPLE + ["env", "workersMax", "gpuIds"]))
configs = st.one_of(
    st.dictionaries(config_keys, json_values, max_size=6),
    dicts_of(json_values),
)


def variant(data, v):
    """A counterpart of v that prints the same most of the time, and
    otherwise differs in one of the ways json.dumps can tell apart."""
    roll = data.draw(st.integers(0, 24))
    if roll == 0:
        return data.draw(json_values)
    if type(v) is dict:
        items = [(variant_key(data, k), variant(data, x)) for k, x in v.items()]
        items = data.draw(st.permutations(items))
        if roll == 1 and items:
            items.pop()
        elif roll == 2:
            items.append((data.draw(config_keys), data.draw(json_values)))
        return dict(items)
    if isinstance(v, (list, tuple)):
        items = [variant(data, x) for x in v]
        if roll == 1 and items:
            items.pop()
        make = data.draw(st.sampled_from([list, tuple]))
        return make(items)
    if type(v) is float:
        if math.isnan(v):
            return float("nan") if roll < 12 else -float("nan")
        if roll == 1:
            return -v
        return float(repr(v))  # same value, another object
    if type(v) is int:
        if roll == 1:
            return float(v) if abs(v) < 2**53 else v + 1
        if roll == 2 and v in (0, 1):
            return bool(v)
        return int(str(v))
    if v is True or v is False:
        return int(v) if roll == 1 else v
    if type(v) is str:
        if roll == 1:
            return v + "!"
        # astral characters spelled as surrogate pairs print identically
        return v.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass") if roll < 12 else _as_pairs(v)
    return v


def _as_pairs(s):
    out = []
    for ch in s:
        c = ord(ch)
        if c >= 0x10000:
            c -= 0x10000
            out += [chr(0xD800 + (c >> 10)), chr(0xDC00 + (c & 0x3FF))]
        else:
            out.append(ch)
    return "".join(out)


def variant_key(data, k):
    roll = data.draw(st.integers(0, 9))
    if roll == 0 and isinstance(k, (int, float)) and not isinstance(k, bool):
        return json.dumps(k) if not (isinstance(k, float) and not math.isfinite(k)) else k
    if roll == 1 and type(k) is str:
        return _as_pairs(k)
    return k


# ---- RUNTIME_RESOURCE_FIELDS --------------------------------------------------


def test_runtime_fields_are_flashs():
    assert d.RUNTIME_RESOURCE_FIELDS == flash_deployment.RUNTIME_RESOURCE_FIELDS
    assert isinstance(d.RUNTIME_RESOURCE_FIELDS, frozenset)
    assert d.SOURCE_FINGERPRINT_ENV_KEY == FP_KEY


# ---- config_differs ---------------------------------------------------------------


@settings(max_examples=500, deadline=None)
@given(configs, configs)
def test_config_differs_matches_json_rule_random_pairs(a, b):
    assert outcome(d.config_differs, a, b) == outcome(flash_differs, a, b)


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs, st.data())
def test_config_differs_matches_json_rule_near_pairs(a, data):
    b = variant(data, a)
    if type(b) is not dict:
        b = {"x": b}
    assert outcome(d.config_differs, a, b) == outcome(flash_differs, a, b)
    assert outcome(d.config_differs, b, a) == outcome(flash_differs, b, a)


@settings(max_examples=500, deadline=None)
@given(configs)
def test_config_equal_to_its_copy(a):
    assert outcome(d.config_differs, a, copy.deepcopy(a)) == outcome(flash_differs, a, copy.deepcopy(a))


@pytest.mark.parametrize(
    "a, b, differs",
    [
        ({"x": 1}, {"x": 1.0}, True),
        ({"x": True}, {"x": 1}, True),
        ({"x": False}, {"x": 0}, True),
        ({"x": -0.0}, {"x": 0.0}, True),
        ({"x": float("nan")}, {"x": float("nan")}, False),
        ({"x": float("nan")}, {"x": -float("nan")}, False),
        ({"x": float("inf")}, {"x": float("-inf")}, True),
        ({"x": (1, [2])}, {"x": [1, (2,)]}, False),
        ({1: "x"}, {"1": "x"}, False),
        ({1.5: "x"}, {"1.5": "x"}, False),
        ({True: 1}, {"true": 1}, False),
        ({True: 1, 2: 2}, {"true": 1, "2": 2}, True),  # sorted as True < 2, "2" < "true"
        ({False: 1, True: 2}, {"true": 2, "false": 1}, False),
        ({None: 1}, {"null": 1}, False),
        ({float("nan"): 1}, {"NaN": 1}, False),
        ({10: "a", 9: "b"}, {"10": "a", "9": "b"}, True),
        ({"s": "x\U0001F600"}, {"s": "x\ud83d\ude00"}, False),
        ({"x\U0001F600": 1}, {"x\ud83d\ude00": 1}, False),
        ({"\uffff": 1, "\U0001F600": 2}, {"\uffff": 1, "\ud83d\ude00": 2}, True),
        ({"template": 1, "id": "a", "a": 1}, {"a": 1, "endpoint_id": "z"}, False),
        ({"env": {"template": 1}}, {"env": {}}, True),
        ({"x": 10**20}, {"x": 10**20}, False),
        ({"x": 10**20}, {"x": 10**20 + 1}, True),
        ({"x": [1, 2]}, {"x": [1, 2, 3]}, True),
        ({}, {}, False),
    ],
)
def test_config_differs_cases(a, b, differs):
    assert flash_differs(a, b) is differs
    assert d.config_differs(a, b) is differs


class Color(enum.IntEnum):
    RED = 1


class Weird(dict):
    def items(self):
        return [("z", 1)]


class Text(str):
    pass


@pytest.mark.parametrize(
    "a, b",
    [
        ({"x": Color.RED}, {"x": 1}),
        ({Color.RED: 1}, {"1": 1}),
        ({"x": collections.OrderedDict(b=1, a=2)}, {"x": {"a": 2, "b": 1}}),
        (collections.OrderedDict(b=1, a=2), {"a": 2, "b": 1}),
        ({"x": Weird(a=1)}, {"x": {"z": 1}}),
        ({"x": Weird(a=1)}, {"x": {"a": 1}}),
        ({"x": Text("v")}, {"x": "v"}),
        ({Text("k"): 1}, {"k": 1}),
        ({"x": collections.defaultdict(list, a=[1])}, {"x": {"a": (1,)}}),
    ],
)
def test_config_differs_subclasses(a, b):
    assert outcome(d.config_differs, a, b) == outcome(flash_differs, a, b)


@pytest.mark.parametrize(
    "a, b",
    [
        ({"x": {1, 2}}, {"x": [1, 2]}),
        ({"x": object()}, {}),
        ({"x": b"bytes"}, {"x": "bytes"}),
        ({"a": 1, "b": object()}, {"a": 2}),  # differs first, still raises
        ({"a": 1}, {"a": 2, "b": {1}}),  # the state side raises
        ({"b": {1}}, {"a": object()}),  # local raises first
        ({"x": {1: 1, "a": 2}}, {"x": {}}),  # mixed keys under sort_keys
        ({"x": {None: 1, 0: 2}}, {}),
        ({"x": {(1, 2): 1}}, {}),
        ({"x": {"a": object(), "b": {(1,): 2}}}, {}),  # json's order decides the message
        ({"x": {"b": object(), "a": {(1,): 2}}}, {}),
        ({"x": 10**5000}, {"x": 1}),  # over the int str-conversion limit: ValueError
        ({"x": 1}, {"x": 10**5000}),
        ({10**5000: 1}, {}),
        ({"template": object(), "a": 1}, {"a": 1}),  # runtime field: copied, then dropped
        ({"template": {"k": {1, 2}}, "a": 1}, {"a": 1}),
        ({"x": [1, object()]}, {"x": [1]}),
    ],
)
def test_config_differs_raises_where_json_does(a, b):
    assert outcome(d.config_differs, a, b) == outcome(flash_differs, a, b)


def test_config_differs_circular_reference():
    cyc = []
    cyc.append(cyc)
    cyc_d = {}
    cyc_d["self"] = cyc_d
    for a, b in [({"x": cyc}, {"x": []}), ({"x": cyc_d}, {}), ({"a": 1}, {"x": cyc})]:
        assert outcome(d.config_differs, a, b) == outcome(flash_differs, a, b)
        with pytest.raises(ValueError, match="Circular reference"):
            d.config_differs(a, b)


def test_shared_substructure_is_not_a_cycle():
    shared = {"k": [1, 2]}
    a = {"x": shared, "y": shared, "z": [shared, shared]}
    b = copy.deepcopy(a)
    assert d.config_differs(a, b) is flash_differs(a, b) is False


def _nested(depth, leaf=1, make=lambda inner: {"a": inner}):
    v = leaf
    for _ in range(depth):
        v = make(v)
    return v


@pytest.mark.parametrize("make", [lambda x: {"a": x}, lambda x: [x], lambda x: (x,)])
def test_deep_nesting_raises_recursion_error(make):
    deep = {"x": _nested(100_000, make=make)}
    with pytest.raises(RecursionError):
        d.config_differs(deep, {"x": 1})
    with pytest.raises(RecursionError):
        d.config_differs({"x": 1}, deep)
    with pytest.raises(RecursionError):
        d.config_differs(deep, deep)
    with pytest.raises(RecursionError):
        d.resource_config_for_compare(deep)
    with pytest.raises(RecursionError):
        d.config_changes(deep, {})


def test_moderate_nesting_is_decided():
    a = {"x": _nested(200)}
    b = {"x": _nested(200, leaf=2)}
    assert d.config_differs(a, copy.deepcopy(a)) is False
    assert d.config_differs(a, b) is True
    assert [c.path for c in d.config_changes(a, b)] == [("x",) + ("a",) * 200]


@pytest.mark.parametrize("bad", [[], ["a"], "s", None, 1, ("a",)])
def test_non_dict_configs_raise_type_error(bad):
    for fn in (d.config_differs, d.config_changes):
        with pytest.raises(TypeError, match="local_config must be a dict"):
            fn(bad, {})
        with pytest.raises(TypeError, match="state_config must be a dict"):
            fn({}, bad)
    with pytest.raises(TypeError, match="config must be a dict"):
        d.resource_config_for_compare(bad)
    # flash fails too, with AttributeError or TypeError
    with pytest.raises((AttributeError, TypeError)):
        flash_deployment._resource_config_for_compare(bad)


# ---- config_changes -------------------------------------------------------------


def _at(value, path):
    for part in path:
        value = value[part]
    return value


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs, st.data())
def test_config_changes_explain_the_difference(a, data):
    b = variant(data, a)
    if type(b) is not dict:
        b = {"x": b}
    expected = outcome(flash_differs, a, b)
    got = outcome(d.config_changes, a, b)
    if expected[0] == "err":
        assert got == expected
        return
    changes = got[1]
    assert bool(changes) is expected[1]
    paths = [c.path for c in changes]
    assert len(set(paths)) == len(paths)
    for c in changes:
        if c.path == ():
            assert c.kind == "changed"
            continue
        assert c.path[0] not in d.RUNTIME_RESOURCE_FIELDS or len(c.path) > 1
        if c.kind in ("changed", "removed"):
            assert _at(b, c.path) is c.old
        if c.kind in ("changed", "added"):
            assert _at(a, c.path) is c.new
        if c.kind == "changed":
            assert json.dumps(c.old, sort_keys=True) != json.dumps(c.new, sort_keys=True)


def test_config_changes_paths_and_order():
    local = {
        "workersMax": 3,
        "env": {"A": "1", FP_KEY: "new", "NEW": "x"},
        "gpuIds": ["AMPERE_16", "ADA_24"],
        "networkVolume": {"size": 100, "dataCenterId": "EU"},
        "template": "ignored",
        "a.b": 1,
    }
    state = {
        "workersMax": 2,
        "env": {"A": "1", FP_KEY: "old", "OLD": "y"},
        "gpuIds": ["AMPERE_16", "ADA_48"],
        "networkVolume": {"size": 50, "dataCenterId": "EU"},
        "templateId": "ignored",
        "scalerType": "QUEUE_DELAY",
    }
    changes = d.config_changes(local, state)
    assert [(c.kind, c.field) for c in changes] == [
        ("added", '["a.b"]'),
        ("added", "env.NEW"),
        ("removed", "env.OLD"),
        ("changed", "env._FLASH_SOURCE_FINGERPRINT"),
        ("changed", "gpuIds[1]"),
        ("changed", "networkVolume.size"),
        ("removed", "scalerType"),
        ("changed", "workersMax"),
    ]
    fp = changes[3]
    assert (fp.old, fp.new) == ("old", "new")
    assert fp.to_dict() == {
        "kind": "changed",
        "field": "env._FLASH_SOURCE_FINGERPRINT",
        "path": ["env", FP_KEY],
        "old": "old",
        "new": "new",
    }
    assert "new" not in changes[-2].to_dict() and changes[-2].new is d.UNSET
    assert str(changes[-1]) == "workersMax: 2 -> 3"
    assert d.config_changes(local, copy.deepcopy(local)) == []


def test_config_changes_length_change_is_one_change():
    (c,) = d.config_changes({"gpuIds": ["A", "B"]}, {"gpuIds": ["A"]})
    assert (c.kind, c.field, c.old, c.new) == ("changed", "gpuIds", ["A"], ["A", "B"])


def test_config_changes_non_plain_config_is_one_whole_change():
    (c,) = d.config_changes({"x": Color.RED, "id": 1}, {"x": 2})
    assert c.path == () and c.field == ""
    assert c.new == {"x": Color.RED} and c.old == {"x": 2}


# ---- resource_config_for_compare ---------------------------------------------------


@settings(max_examples=500, deadline=None)
@given(configs)
def test_resource_config_for_compare_is_flashs(config):
    before = repr(config)
    ours = outcome(d.resource_config_for_compare, config)
    theirs = outcome(flash_deployment._resource_config_for_compare, config)
    assert repr(config) == before
    assert repr(ours) == repr(theirs)
    if ours[0] == "ok":
        assert type(ours[1]) is dict
        assert list(ours[1]) == list(theirs[1])


def test_resource_config_for_compare_copies_deeply_and_keeps_sharing():
    shared = [1, {"k": "v"}]
    cyc = {"n": 1}
    cyc["self"] = cyc
    config = {"a": shared, "b": shared, "c": cyc, "t": (shared,), "id": "x", "aiKey": "k", "o": Color.RED}
    out = d.resource_config_for_compare(config)
    ref = flash_deployment._resource_config_for_compare(config)
    assert out.keys() == ref.keys() == {"a", "b", "c", "t", "o"}
    assert out["a"] is out["b"] and out["a"] is not shared and out["a"] == shared
    assert out["t"][0] is out["a"]
    assert out["c"]["self"] is out["c"] and out["c"] is not cyc
    assert out["o"] is Color.RED
    assert config["id"] == "x" and config["aiKey"] == "k"


def test_resource_config_for_compare_subclass_pops_via_method():
    od = collections.OrderedDict([("id", 1), ("x", [1]), ("template", 2)])
    out = d.resource_config_for_compare(od)
    assert type(out) is collections.OrderedDict and list(out.items()) == [("x", [1])]
    assert out["x"] is not od["x"]


# ---- inject_source_fingerprint -----------------------------------------------------


def test_inject_source_fingerprint():
    m = {
        "source_fingerprint": "abc",
        "resources": {
            "a": {"env": {"K": "v"}},
            "b": {},
            "c": {"client_mode": True, "env": {"K": "v"}},
            "d": {"client_mode": 0},
            "e": {"env": None},
        },
    }
    d.inject_source_fingerprint(m, flash_version="1.21.0")
    r = m["resources"]
    assert r["a"]["env"] == {"K": "v", FP_KEY: "abc"}
    assert r["b"] == {"env": {FP_KEY: "abc"}}
    assert r["c"]["env"] == {"K": "v"}
    assert r["d"] == {"client_mode": 0, "env": {FP_KEY: "abc"}}
    assert r["e"] == {"env": {FP_KEY: "abc"}}  # flash raises TypeError here


@pytest.mark.parametrize("fp", [None, ""])
def test_inject_without_fingerprint_is_noop(fp):
    m = {"resources": {"a": {}, "b": {"env": 5}}}
    if fp is not None:
        m["source_fingerprint"] = fp
    before = copy.deepcopy(m)
    d.inject_source_fingerprint(m)
    assert m == before
    d.inject_source_fingerprint({})


@pytest.mark.parametrize(
    "manifest, message",
    [
        ([], r"local_manifest must be a dict, not list"),
        ({"resources": None}, r"local_manifest\['resources'\] must be a dict, not NoneType"),
        ({"resources": {"ok": {}, "gpu": []}, "source_fingerprint": "f"}, r"\['resources'\]\['gpu'\] must be a dict"),
        ({"resources": {"gpu": {}}, "source_fingerprint": 5}, r"'source_fingerprint'\] must be a str or None, not int"),
        ({"resources": {"ok": {}, "gpu": {"env": ["A=1"]}}, "source_fingerprint": "f"}, r"\['gpu'\]\['env'\] must be a dict or None, not list"),
    ],
)
def test_inject_bad_input_raises_before_mutating(manifest, message):
    before = copy.deepcopy(manifest)
    with pytest.raises(TypeError, match=message):
        d.inject_source_fingerprint(manifest)
    assert manifest == before
    state = {"resources": {"gpu": {}, "ok": {}}, "resources_endpoints": {"gpu": "u", "ok": "u"}}
    with pytest.raises(TypeError, match=message):
        d.plan_reconciliation(manifest, state)
    assert manifest == before


def test_env_subclass_gets_setitem():
    class Env(dict):
        def __setitem__(self, k, v):
            super().__setitem__(k, v.upper())

    m = {"source_fingerprint": "abc", "resources": {"a": {"env": Env()}}}
    d.inject_source_fingerprint(m)
    assert m["resources"]["a"]["env"] == {FP_KEY: "ABC"}


# ---- driving flash's real reconcile_and_provision_resources ------------------------

_WORKDIR = Path(tempfile.mkdtemp(prefix="rfn-deploy-"))  # flash writes .flash/flash_manifest.json here
(_WORKDIR / ".flash").mkdir()
atexit.register(shutil.rmtree, _WORKDIR, ignore_errors=True)


def run_flash(local, state, *, state_fetch_fails=False):
    """flash's reconcile_and_provision_resources on copies, with provisioning
    mocked out (deployed resources carry no endpoint info). Returns the local
    manifest as flash left it, the names it provisioned and updated, the
    manifest it pushed, or the exception."""
    local = copy.deepcopy(local)
    state = copy.deepcopy(state)
    app = AsyncMock()
    app.name = "app"
    if state_fetch_fails:
        app.get_build_manifest = AsyncMock(side_effect=RuntimeError("no state yet"))
    else:
        app.get_build_manifest = AsyncMock(return_value=state)
    app.update_build_manifest = AsyncMock()
    created = []

    def create(name, config, **kwargs):
        created.append(name)
        return SimpleNamespace(name=name)

    manager = MagicMock()
    manager.get_or_deploy_resource = AsyncMock(return_value=SimpleNamespace())
    state_names = set(state.get("resources", {})) if not state_fetch_fails else set()
    with (
        patch("runpod_flash.cli.utils.deployment.ResourceManager", return_value=manager),
        patch("runpod_flash.cli.utils.deployment.create_resource_from_manifest", side_effect=create),
        patch("runpod_flash.core.credentials.get_api_key", return_value="test-key"),
        patch("pathlib.Path.cwd", return_value=_WORKDIR),
    ):
        try:
            asyncio.run(flash_deployment.reconcile_and_provision_resources(app, "build-1", "dev", local))
        except Exception as e:  # noqa: BLE001
            return SimpleNamespace(error=e, local=local)
    pushed = app.update_build_manifest.call_args[0][1]
    assert pushed is local
    return SimpleNamespace(
        error=None,
        local=local,
        provisioned=[n for n in created if n not in state_names],
        updated=[n for n in created if n in state_names],
    )


def run_ours(local, state, **kwargs):
    local = copy.deepcopy(local)
    state = copy.deepcopy(state)
    try:
        plan = d.plan_reconciliation(local, state, **kwargs)
    except Exception as e:  # noqa: BLE001
        return SimpleNamespace(error=e, local=local)
    d.apply_reuse(local, state, plan)
    if plan.provision or plan.update:
        # flash's post-provisioning step; the mocked results add nothing else
        local.setdefault("resources_endpoints", {})
    return SimpleNamespace(error=None, local=local, plan=plan, state=state)


def same_manifest(a, b):
    # == for values, repr for key (insertion) order
    return a == b and repr(a) == repr(b)


def assert_same_as_flash(local, state, **kwargs):
    theirs = run_flash(local, state, **kwargs)
    ours = run_ours(local, {} if kwargs.get("state_fetch_fails") else state)
    if theirs.error is not None:
        assert ours.error is not None, f"flash raised {theirs.error!r}, we planned {ours.plan}"
        assert type(ours.error) is type(theirs.error)
        assert str(ours.error) == str(theirs.error)
        return ours
    assert ours.error is None, ours.error
    plan = ours.plan
    local_names = set(local.get("resources", {}))
    state_names = set() if kwargs.get("state_fetch_fails") else set(state.get("resources", {}))
    assert list(plan.provision) == theirs.provisioned == sorted(local_names - state_names)
    assert list(plan.update) == theirs.updated
    assert list(plan.reuse) == sorted((local_names & state_names) - set(theirs.updated))
    assert list(plan.delete) == sorted(state_names - local_names)
    assert same_manifest(ours.local, theirs.local)
    return ours


# ---- manifest strategies ------------------------------------------------------------

NAMES = [f"worker_{i}" for i in range(7)] + ["lb", "Gpu", "cpu-fn"]
fingerprints = st.one_of(st.none(), st.just(""), st.text("0123456789abcdef", min_size=8, max_size=8))
plain_configs = st.dictionaries(st.sampled_from(["resource_type", "workersMax", "workersMin", "gpuIds", "x", "y"]), json_values.filter(lambda v: not _has_nonstr_keys(v)), max_size=4)


def _has_nonstr_keys(v):
    if isinstance(v, dict):
        return any(not isinstance(k, str) for k in v) or any(_has_nonstr_keys(x) for x in v.values())
    if isinstance(v, (list, tuple)):
        return any(_has_nonstr_keys(x) for x in v)
    return False


@st.composite
def resource_config(draw):
    config = draw(plain_configs)
    if draw(st.booleans()):
        config["env"] = draw(st.dictionaries(st.sampled_from(["A", "B", "HF_TOKEN", FP_KEY]), st.text(max_size=3), max_size=3))
    if draw(st.integers(0, 4)) == 0:
        config["client_mode"] = draw(st.sampled_from([True, False, 1, 0, "", "yes", None]))
    if draw(st.booleans()):
        config["networkVolume"] = {"size": draw(st.integers(1, 3)), "dataCenterId": "EU-RO-1"}
    return config


@st.composite
def deployed_counterpart(draw, local_config, fp):
    """What the State Manager may hold for a resource: the config as flash
    persisted it last time (with this, an old or no fingerprint), plus runtime
    fields, sometimes with a change."""
    config = copy.deepcopy(local_config)
    which = draw(st.sampled_from(["same", "old", "none"]))
    if not config.get("client_mode") and which != "none":
        env = config.get("env")
        if not isinstance(env, dict):
            env = config["env"] = {}
        env[FP_KEY] = fp if (which == "same" and fp) else "0ld0ld00"
    for field in draw(st.lists(st.sampled_from(RUNTIME_SAMPLE), max_size=3, unique=True)):
        config[field] = draw(st.sampled_from(["ep-123", "key", None, 7]))
    roll = draw(st.integers(0, 5))
    if roll == 0:
        config["workersMax"] = draw(st.integers(0, 3))
    elif roll == 1 and config:
        config.pop(draw(st.sampled_from(sorted(config))))
    return config


@st.composite
def manifest_pairs(draw):
    fp = draw(fingerprints)
    local_names = draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=6))
    local = {"version": "1.0", "resources": {n: draw(resource_config()) for n in local_names}}
    if fp is not None:
        local["source_fingerprint"] = fp
    if draw(st.booleans()):
        local["resources_endpoints"] = {n: f"https://old/{n}" for n in draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=3))}
    shared = draw(st.lists(st.sampled_from(local_names), unique=True)) if local_names else []
    extra = draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=3))
    state_res = {}
    for n in shared:
        state_res[n] = draw(deployed_counterpart(local["resources"][n], fp))
    for n in extra:
        if n not in local["resources"]:
            state_res[n] = draw(resource_config())
    state = {"resources": state_res}
    if draw(st.integers(0, 5)):
        state["resources_endpoints"] = {
            n: f"https://{n}.api.runpod.ai" for n in draw(st.lists(st.sampled_from(sorted(state_res) or ["none"]), unique=True))
        }
    return local, state


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(manifest_pairs())
def test_plan_matches_flash(pair):
    local, state = pair
    ours = assert_same_as_flash(local, state)
    if ours.error is None:
        check_reasons(ours.plan, ours.local, ours.state)


def check_reasons(plan, local, state):
    assert set(plan.reasons) == set(plan.update)
    endpoints = state.get("resources_endpoints", {})
    for name in plan.update:
        reasons = plan.reasons[name]
        assert reasons, name
        missing = [c for c in reasons if c.kind == "endpoint_missing"]
        assert bool(missing) is (name not in endpoints)
        if missing:
            assert reasons[-1].kind == "endpoint_missing"
        config_changes = [c for c in reasons if c.kind != "endpoint_missing"]
        assert bool(config_changes) is d.config_differs(local["resources"][name], state["resources"][name])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(manifest_pairs())
def test_plan_when_state_fetch_fails(pair):
    local, state = pair
    assert_same_as_flash(local, state, state_fetch_fails=True)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(manifest_pairs(), st.data())
def test_plan_with_odd_values_matches_flash(pair, data):
    """Configs with non-str keys, NaN, tuples, values json rejects: flash's
    comparison raises or answers, and so do we (same exception and message)."""
    local, state = pair
    shared = sorted(set(local["resources"]) & set(state["resources"]))
    assume(shared)
    name = data.draw(st.sampled_from(shared))
    odd = data.draw(st.one_of(json_values, st.just({1: 1, "a": 2}), st.just({"s": {1, 2}}), st.just(float("nan"))))
    side = data.draw(st.sampled_from(["local", "state", "both"]))
    if side in ("local", "both"):
        local["resources"][name]["odd"] = odd
    if side in ("state", "both"):
        state["resources"][name]["odd"] = copy.deepcopy(odd)
    before = copy.deepcopy(local)
    theirs = run_flash(local, state)
    ours = run_ours(local, state)
    if theirs.error is not None and not isinstance(theirs.error, TypeError | ValueError):
        pytest.fail(f"unexpected flash error {theirs.error!r}")
    if theirs.error is None and ours.error is None:
        assert same_manifest(ours.local, theirs.local)
        assert list(ours.plan.update) == theirs.updated
    else:
        assert theirs.error is not None and ours.error is not None
        assert (type(ours.error), str(ours.error)) == (type(theirs.error), str(theirs.error))
        # we raise before injecting; flash had already injected
        assert same_manifest(ours.local, before)


def test_plan_basic_scenarios():
    local = {
        "source_fingerprint": "f2",
        "resources": {
            "new": {"workersMax": 1},
            "same": {"workersMax": 1},
            "changed": {"workersMax": 3},
            "no_endpoint": {"workersMax": 1},
            "client": {"client_mode": True, "imageName": "me/img"},
        },
    }
    state = {
        "resources": {
            "same": {"workersMax": 1, "env": {FP_KEY: "f2"}, "endpoint_id": "e-same", "aiKey": "k-same"},
            "changed": {"workersMax": 2, "env": {FP_KEY: "f1"}, "endpoint_id": "e-ch"},
            "no_endpoint": {"workersMax": 1, "env": {FP_KEY: "f2"}},
            "client": {"client_mode": True, "imageName": "me/img", "endpoint_id": "e-cl"},
            "gone": {},
        },
        "resources_endpoints": {"same": "u-same", "changed": "u-ch", "client": "u-cl", "gone": "u-gone"},
    }
    ours = assert_same_as_flash(local, state)
    plan = ours.plan
    assert plan.provision == ("new",)
    assert plan.update == ("changed", "no_endpoint")
    assert plan.reuse == ("client", "same")
    assert plan.delete == ("gone",)
    assert [str(c) for c in plan.reasons["changed"]] == [
        "env._FLASH_SOURCE_FINGERPRINT: 'f1' -> 'f2'",
        "workersMax: 2 -> 3",
    ]
    assert [c.kind for c in plan.reasons["no_endpoint"]] == ["endpoint_missing"]
    assert ours.local["resources"]["same"]["endpoint_id"] == "e-same"
    assert ours.local["resources"]["same"]["aiKey"] == "k-same"
    assert ours.local["resources_endpoints"] == {"same": "u-same", "client": "u-cl"}
    out = plan.to_dict()
    assert json.loads(json.dumps(out)) == out
    assert out["reasons"]["no_endpoint"] == [{"kind": "endpoint_missing"}]
    assert out["reasons"]["changed"][1] == {
        "kind": "changed", "field": "workersMax", "path": ["workersMax"], "old": 2, "new": 3
    }


def test_plan_empty_manifests():
    assert_same_as_flash({}, {})
    assert_same_as_flash({"resources": {}}, {"resources": {}})
    plan = d.plan_reconciliation({}, {})
    assert plan.to_dict() == {"provision": [], "update": [], "reuse": [], "delete": [], "adopted": [], "reasons": {}}


# ---- missing_state_fingerprint="adopt" ------------------------------------------------


def _upgrade_pair():
    local = {
        "source_fingerprint": "new-fp",
        "resources": {
            "plain": {"workersMax": 1},
            "with_env": {"workersMax": 1, "env": {"A": "1"}},
            "env_none": {"workersMax": 1, "env": None},
            "changed": {"workersMax": 5},
            "stale": {"workersMax": 1},
            "no_ep": {"workersMax": 1},
            "client": {"client_mode": True},
        },
    }
    state = {
        "resources": {
            "plain": {"workersMax": 1, "endpoint_id": "e1"},
            "with_env": {"workersMax": 1, "env": {"A": "1"}, "aiKey": "k"},
            "env_none": {"workersMax": 1, "env": None},
            "changed": {"workersMax": 4},
            "stale": {"workersMax": 1, "env": {FP_KEY: "old-fp"}},
            "no_ep": {"workersMax": 1},
            "client": {"client_mode": True},
        },
        "resources_endpoints": {n: f"u-{n}" for n in ["plain", "with_env", "env_none", "changed", "stale", "client"]},
    }
    return local, state


def test_adopt_reuses_resources_deployed_before_fingerprints():
    local, state = _upgrade_pair()
    flash_like = d.plan_reconciliation(copy.deepcopy(local), copy.deepcopy(state))
    assert flash_like.update == ("changed", "env_none", "no_ep", "plain", "stale", "with_env")
    assert flash_like.adopted == ()

    plan = d.plan_reconciliation(local, state, missing_state_fingerprint="adopt")
    assert plan.reuse == ("client", "env_none", "plain", "with_env")
    assert plan.adopted == ("env_none", "plain", "with_env")
    assert plan.update == ("changed", "no_ep", "stale")
    assert [c.field for c in plan.reasons["stale"]] == ["env._FLASH_SOURCE_FINGERPRINT"]
    # the local manifest still carries the fingerprint, so it gets persisted
    for name in ("plain", "with_env", "env_none", "changed", "stale"):
        assert local["resources"][name]["env"][FP_KEY] == "new-fp"
    assert "env" not in local["resources"]["client"]
    d.apply_reuse(local, state, plan)
    assert local["resources"]["plain"]["endpoint_id"] == "e1"
    assert local["resources"]["with_env"]["aiKey"] == "k"
    # next deploy: the persisted state now has the fingerprint, nothing rolls
    next_state = {"resources": copy.deepcopy(local["resources"]), "resources_endpoints": dict(state["resources_endpoints"], no_ep="u", changed="u", stale="u")}
    next_local = copy.deepcopy(_upgrade_pair()[0])
    next_local["resources"]["changed"] = {"workersMax": 5}
    again = d.plan_reconciliation(next_local, next_state, missing_state_fingerprint="adopt")
    assert again.update == () and again.adopted == ()


def test_adopt_without_fingerprint_is_flash_behaviour():
    local, state = _upgrade_pair()
    del local["source_fingerprint"]
    a = d.plan_reconciliation(copy.deepcopy(local), copy.deepcopy(state))
    b = d.plan_reconciliation(copy.deepcopy(local), copy.deepcopy(state), missing_state_fingerprint="adopt")
    assert a == b


def test_missing_state_fingerprint_is_validated():
    with pytest.raises(ValueError, match="missing_state_fingerprint"):
        d.plan_reconciliation({}, {}, missing_state_fingerprint="skip")


# ---- validation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "state, message",
    [
        (None, r"state_manifest must be a dict, not NoneType"),
        ({"resources": []}, r"state_manifest\['resources'\] must be a dict, not list"),
        ({"resources": {}, "resources_endpoints": ["gpu"]}, r"state_manifest\['resources_endpoints'\] must be a dict"),
        ({"resources": {"gpu": "cfg"}}, r"state_manifest\['resources'\]\['gpu'\] must be a dict, not str"),
    ],
)
def test_plan_bad_state_raises_before_mutating(state, message):
    local = {"source_fingerprint": "f", "resources": {"gpu": {"env": {}}}}
    before = copy.deepcopy(local)
    with pytest.raises(TypeError, match=message):
        d.plan_reconciliation(local, state)
    assert same_manifest(local, before)


def test_bad_state_endpoints_keep_state_resources_alive():
    """state_manifest['resources_endpoints'] failing validation after
    state_manifest['resources'] passed it must not release a reference to the
    resources dict that was never taken (it was freed while still held by the
    manifest: a dangling pointer the cyclic GC later crashed on)."""
    from runpod_flash_native import _fingerprint

    resources = {"gpu": {}}
    state = {"resources": resources, "resources_endpoints": ["gpu"]}
    local = {"source_fingerprint": "f", "resources": {"gpu": {"env": {}}}}
    before = sys.getrefcount(resources)
    with pytest.raises(TypeError, match=r"resources_endpoints"):
        _fingerprint.plan_reconciliation(local, state)
    assert sys.getrefcount(resources) == before  # checked before it can reach 0
    with pytest.raises(TypeError, match=r"resources_endpoints"):
        d.plan_reconciliation(local, state)
    assert sys.getrefcount(resources) == before
    gc.collect()
    assert state["resources"] is resources and resources == {"gpu": {}}


def test_state_only_resources_are_not_inspected():
    plan = d.plan_reconciliation({"resources": {}}, {"resources": {"gone": None}})
    assert plan.delete == ("gone",)


def test_unsortable_names_raise_type_error_untouched():
    local = {"source_fingerprint": "f", "resources": {1: {}, "a": {}}}
    with pytest.raises(TypeError, match="'<' not supported"):
        d.plan_reconciliation(local, {})
    assert local["resources"] == {1: {}, "a": {}}


def test_env_none_divergence_from_flash():
    local = {"source_fingerprint": "f", "resources": {"gpu": {"env": None}}}
    theirs = run_flash(local, {})
    assert isinstance(theirs.error, TypeError)  # flash: 'NoneType' does not support item assignment
    ours = run_ours(local, {})
    assert ours.local["resources"]["gpu"]["env"] == {FP_KEY: "f"}


# ---- apply_reuse ---------------------------------------------------------------------------


def test_apply_reuse_copies_what_flash_copies():
    local = {"resources": {"a": {"x": 1}, "b": {"x": 1}}}
    state = {
        "resources": {"a": {"x": 1, "endpoint_id": None, "aiKey": "k"}, "b": {"x": 1}},
        "resources_endpoints": {"a": "u-a"},
    }
    d.apply_reuse(local, state, ["a", "b"])
    assert local == {
        "resources": {"a": {"x": 1, "endpoint_id": None, "aiKey": "k"}, "b": {"x": 1}},
        "resources_endpoints": {"a": "u-a"},
    }
    assert local["resources_endpoints"]["a"] is state["resources_endpoints"]["a"]


@pytest.mark.parametrize(
    "local, state, message",
    [
        ({"resources": {"a": {}}, "resources_endpoints": None}, {"resources": {"a": {"endpoint_id": 1}}}, r"local_manifest\['resources_endpoints'\] must be a dict"),
        ({"resources": {"a": []}}, {"resources": {"a": {}}}, r"reused resource 'a'"),
        ({"resources": {"a": {}}}, {"resources": {}}, r"reused resource 'a'"),
        ({"resources": {"a": {}}}, {"resources": {"a": {}}, "resources_endpoints": 3}, r"state_manifest\['resources_endpoints'\]"),
    ],
)
def test_apply_reuse_validates_first(local, state, message):
    local["resources"]["z"] = {}
    state.setdefault("resources", {})["z"] = {"endpoint_id": "ez"}
    before = copy.deepcopy(local)
    with pytest.raises(TypeError, match=message):
        d.apply_reuse(local, state, ["z", "a"])
    assert local == before


# ---- references: nothing leaks or dangles ---------------------------------------------------


def test_no_reference_leaks():
    fp = "".join(["fp-", "leak"])
    local = {"source_fingerprint": fp, "resources": {f"r{i}": {"workersMax": i, "env": {"A": "1"}, "gpuIds": ["A"]} for i in range(20)}}
    state = {"resources": {f"r{i}": {"workersMax": i % 3} for i in range(20)}, "resources_endpoints": {"r1": "u"}}
    odd_local = {"x": {1: [1.5, None]}, "y": Color.RED}
    odd_state = {"x": {"1": [1.5, None]}, "y": 1}
    # Configs json refuses: the exception (type and message) flash raises.
    bad_configs = ({"x": object()}, {"x": 10**5000}, {"x": {1: 1, "a": 1}})
    flash_errors = [(bad, outcome(flash_differs, bad, {})) for bad in bad_configs]
    assert all(expected[0] == "err" for _, expected in flash_errors), flash_errors

    def cycle():
        m = copy.deepcopy(local)
        s = copy.deepcopy(state)
        plan = d.plan_reconciliation(m, s, missing_state_fingerprint="adopt")
        d.apply_reuse(m, s, plan)
        d.config_changes(odd_local, odd_state)
        d.config_differs(odd_local, odd_state)
        d.resource_config_for_compare(odd_local)
        for bad, expected in flash_errors:
            assert outcome(d.config_differs, bad, {}) == expected, bad

    for _ in range(100):
        cycle()
    watched = [fp, odd_local["x"], Color.RED, local["resources"]["r1"]]
    gc.collect()
    before = [sys.getrefcount(o) for o in watched]
    blocks = sys.getallocatedblocks()
    for _ in range(500):
        cycle()
    gc.collect()
    assert [sys.getrefcount(o) for o in watched] == before
    # one leaked object per call would be >= 500 blocks
    assert sys.getallocatedblocks() - blocks < 250


def test_plan_is_frozen():
    plan = d.plan_reconciliation({}, {})
    with pytest.raises(AttributeError):
        plan.update = ()  # type: ignore[misc]
    assert _fingerprint.plan_reconciliation({}, {}) == ([], [], [], [], {}, [])


# ---- the modelled flash release, and objects the manifests share ------------------------
#
# flash 1.14.0-1.20.x inject the fingerprint into client-mode resources too,
# 1.21.0 skips them. The installed flash is the reference for its own rule.
# The other rule's reference is the installed flash's own function with its
# client-mode skip removed or added (the one line in which the releases
# differ, verified by diffing 1.14.0..1.20.1 against 1.21.0).

import inspect
import re
import textwrap

from runpod_flash_native import patch as _patch

INSTALLED_FLASH = _patch._flash_version()
INSTALLED_SKIPS = d.skips_client_mode(INSTALLED_FLASH)
OTHER_FLASH = "1.20.1" if INSTALLED_SKIPS else "1.21.0"

_SKIP_RE = re.compile(r"\n(\s*)if resource_config\.get\(\"client_mode\"\):\n\s*continue\n")
_INJECT_RE = re.compile(r"\n(\s*)env = resource_config\.setdefault\(\"env\", \{\}\)\n")


def _flash_reconcile_with_other_rule():
    """flash's reconcile_and_provision_resources, as the release with the other
    client_mode rule has it."""
    source = textwrap.dedent(inspect.getsource(flash_deployment.reconcile_and_provision_resources))
    if INSTALLED_SKIPS:
        changed, n = _SKIP_RE.subn("\n", source)
    else:
        changed, n = _INJECT_RE.subn(
            lambda m: f'\n{m[1]}if resource_config.get("client_mode"):\n{m[1]}    continue\n{m[0][1:]}', source
        )
    assert n == 1, "flash's injection loop is not where this test expects it"
    namespace = dict(vars(flash_deployment))
    exec(compile(changed, flash_deployment.__file__, "exec"), namespace)  # noqa: S102
    return namespace["reconcile_and_provision_resources"]


OTHER_RECONCILE = _flash_reconcile_with_other_rule()


def run_flash_pair(local, state, reconcile):
    """flash's reconcile on ONE deep copy of both manifests (objects they share
    stay shared), with the mocks of run_flash. Module-level names the
    function uses are looked up in its globals: patch them there."""
    local, state = copy.deepcopy((local, state))
    app = AsyncMock()
    app.name = "app"
    app.get_build_manifest = AsyncMock(return_value=state)
    app.update_build_manifest = AsyncMock()
    created = []

    def create(name, config, **kwargs):
        created.append(name)
        return SimpleNamespace(name=name)

    manager = MagicMock()
    manager.get_or_deploy_resource = AsyncMock(return_value=SimpleNamespace())
    state_names = set(state.get("resources", {}))
    g = reconcile.__globals__
    saved = {k: g.get(k) for k in ("ResourceManager", "create_resource_from_manifest")}
    g["ResourceManager"] = MagicMock(return_value=manager)
    g["create_resource_from_manifest"] = create
    try:
        with (
            patch("runpod_flash.core.credentials.get_api_key", return_value="test-key"),
            patch("pathlib.Path.cwd", return_value=_WORKDIR),
        ):
            asyncio.run(reconcile(app, "build-1", "dev", local))
    except Exception as e:  # noqa: BLE001
        return SimpleNamespace(error=e, local=local, state=state)
    finally:
        g.update(saved)
    return SimpleNamespace(
        error=None, local=local, state=state,
        provisioned=[n for n in created if n not in state_names],
        updated=[n for n in created if n in state_names],
    )


def run_ours_pair(local, state, **kwargs):
    local, state = copy.deepcopy((local, state))
    try:
        plan = d.plan_reconciliation(local, state, **kwargs)
    except Exception as e:  # noqa: BLE001
        return SimpleNamespace(error=e, local=local, state=state)
    d.apply_reuse(local, state, plan)
    if plan.provision or plan.update:
        local.setdefault("resources_endpoints", {})
    return SimpleNamespace(error=None, local=local, state=state, plan=plan)


def assert_pair_same_as_flash(local, state, flash_version):
    reconcile = flash_deployment.reconcile_and_provision_resources if flash_version is None else OTHER_RECONCILE
    theirs = run_flash_pair(local, state, reconcile)
    ours = run_ours_pair(local, state, flash_version=flash_version)
    if theirs.error is not None:
        assert ours.error is not None, f"flash raised {theirs.error!r}, we planned {ours.plan}"
        assert (type(ours.error), str(ours.error)) == (type(theirs.error), str(theirs.error))
        return
    assert ours.error is None, ours.error
    assert list(ours.plan.update) == theirs.updated
    assert list(ours.plan.provision) == theirs.provisioned
    assert same_manifest(ours.local, theirs.local)
    assert same_manifest(ours.state, theirs.state)


def _ensure_env(config):
    if not isinstance(config.get("env"), dict):
        config["env"] = {}
    return config["env"]


def _cyclic(obj):
    try:
        json.dumps(obj, default=str)
    except ValueError:
        return True
    return False


@st.composite
def aliased_pairs(draw):
    """manifest_pairs() with objects shared between resources and manifests:
    env dicts, whole configs, configs or envs nested in other configs, the
    endpoints dict."""
    local, state = draw(manifest_pairs())
    lres, sres = local["resources"], state["resources"]
    names = sorted(lres)
    if not names:
        return local, state
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["env", "env", "config", "nest_env", "nest_config", "state_env", "state_config", "endpoints"]))
        a, b = draw(st.sampled_from(names)), draw(st.sampled_from(names))
        if op == "env" and a != b:
            lres[b]["env"] = _ensure_env(lres[a])
        elif op == "config" and a != b:
            lres[b] = lres[a]
        elif op == "nest_env":
            lres[b][draw(st.sampled_from(["x", "sidecar"]))] = _ensure_env(lres[a])
        elif op == "nest_config" and a != b:
            key = draw(st.sampled_from(["x", "base"]))
            old = lres[b].get(key, UNSET_MARK)
            lres[b][key] = lres[a]
            if _cyclic(local):
                if old is UNSET_MARK:
                    del lres[b][key]
                else:
                    lres[b][key] = old
        elif op == "state_env" and b in sres and isinstance(sres[b], dict):
            sres[b]["env"] = _ensure_env(lres[a])
        elif op == "state_config" and b in sres:
            sres[b] = lres[draw(st.sampled_from([a, b]))]
        elif op == "endpoints" and "resources_endpoints" in state:
            local["resources_endpoints"] = state["resources_endpoints"]
    return local, state


UNSET_MARK = object()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(aliased_pairs(), st.booleans())
def test_plan_with_shared_objects_matches_flash(pair, other_rule):
    """Both client_mode rules, against flash's real reconcile (the installed
    release, and its function with the other rule)."""
    local, state = pair
    assert_pair_same_as_flash(local, state, OTHER_FLASH if other_rule else None)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(manifest_pairs(), st.booleans())
def test_plan_matches_flash_for_either_client_mode_rule(pair, other_rule):
    local, state = pair
    assert_pair_same_as_flash(local, state, OTHER_FLASH if other_rule else None)


def test_shared_env_under_a_client_mode_resource():
    """The case issue 13 measured: one env dict under a client-mode and a
    normal resource; flash's injection into the normal one shows under the
    client-mode one, which then matches its deployed config with the
    fingerprint (1.21 rule)."""
    env = {"A": "1"}
    local = {"source_fingerprint": "f" * 8,
             "resources": {"a_cm": {"client_mode": True, "env": env}, "b": {"env": env}}}
    state = {"resources": {"a_cm": {"client_mode": True, "env": {"A": "1", FP_KEY: "f" * 8}},
                           "b": {"env": {"A": "1", FP_KEY: "f" * 8}}},
             "resources_endpoints": {"a_cm": "https://a", "b": "https://b"}}
    for version in (None, OTHER_FLASH):
        assert_pair_same_as_flash(local, state, version)
    plan = d.plan_reconciliation(copy.deepcopy(local), state, flash_version="1.21.0")
    assert plan.update == () and plan.reuse == ("a_cm", "b")


def test_error_undoes_the_in_place_injection():
    env = {}
    local = {"source_fingerprint": "f" * 8,
             "resources": {"a": {"env": env}, "b": {"env": env, "bad": {1: 1, "x": 2}}}}
    state = {"resources": {"a": {}, "b": {}}, "resources_endpoints": {"a": "u", "b": "u"}}
    before = repr(local)
    theirs = run_flash_pair(local, state, flash_deployment.reconcile_and_provision_resources)
    assert isinstance(theirs.error, TypeError)
    with pytest.raises(TypeError, match=str(theirs.error)):
        d.plan_reconciliation(local, state)
    assert repr(local) == before and env == {}


@pytest.mark.parametrize("version,skips", [("1.14.0", False), ("1.20.1", False), ("1.21.0", True), ("1.21.3", True)])
def test_inject_follows_the_named_release(version, skips):
    m = {"source_fingerprint": "fp", "resources": {"cm": {"client_mode": True}, "w": {}}}
    d.inject_source_fingerprint(m, flash_version=version)
    assert m["resources"]["w"] == {"env": {FP_KEY: "fp"}}
    assert m["resources"]["cm"] == ({"client_mode": True} if skips else {"client_mode": True, "env": {FP_KEY: "fp"}})
    assert d.skips_client_mode(version) is skips


def test_default_release_is_the_installed_one(monkeypatch):
    assert d.modelled_flash_version() == INSTALLED_FLASH
    monkeypatch.setattr(d, "_installed", None)  # runpod-flash absent
    assert d.modelled_flash_version() == d.DEFAULT_FLASH_VERSION == "1.21.0"
    monkeypatch.setattr(d, "_installed", "1.22.0")
    with pytest.raises(ValueError, match=r"installed runpod-flash '1\.22\.0'.*--flash-version"):
        d.plan_reconciliation({}, {})
    assert d.plan_reconciliation({}, {}, flash_version="1.20.1").update == ()


@pytest.mark.parametrize("bad", ["1.13.9", "1.22.0", "2.0", "garbage", "", "1.21.0x", "1.21.0 junk"])
def test_unsupported_or_invalid_release_raises_value_error(bad):
    m = {"source_fingerprint": "fp", "resources": {"w": {}}}
    with pytest.raises(ValueError, match=re.escape(repr(bad))):
        d.plan_reconciliation(m, {}, flash_version=bad)
    with pytest.raises(ValueError, match=re.escape(repr(bad))):
        d.inject_source_fingerprint(m, flash_version=bad)
    assert m == {"source_fingerprint": "fp", "resources": {"w": {}}}
    with pytest.raises(TypeError):
        d.plan_reconciliation(m, {}, flash_version=1.21)

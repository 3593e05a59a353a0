"""Leaks: every entry point, error paths included, called 100,000 times.

After a warm-up, RSS (/proc/self/statm), the number of memory blocks Python's
allocator hands out (sys.getallocatedblocks: every leaked object or PyMem
buffer shows), the number of GC-tracked objects and, on a debug build of
CPython, the total reference count (sys.gettotalrefcount) must stay flat.
Inputs are tiny so the whole file runs in well under a minute on two cores.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import time
from pathlib import Path

import pytest

import runpod_flash_native as native
from runpod_flash_native import _fingerprint, deployment
from runpod_flash_native import ignore as native_ignore

from conftest import sanitized

pytestmark = pytest.mark.skipif(
    sanitized(), reason="RSS and allocator counts are meaningless under ASan (quarantine, PYTHONMALLOC=malloc)"
)

CALLS = 100_000
WARMUP = 3_000
UNDECODABLE = os.fsdecode(b"\xff")


def _rss():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _census():
    gc.collect()
    return {
        "rss": _rss(),
        "blocks": sys.getallocatedblocks(),
        "gc_objects": len(gc.get_objects()),
        "refs": sys.gettotalrefcount() if hasattr(sys, "gettotalrefcount") else 0,
    }


def assert_flat(cases, calls=CALLS):
    """Call cases round robin `calls` times in all. A case is (fn, exc): fn()
    must return (exc None) or raise exactly an exc instance, every time."""

    def one(fn, exc):
        try:
            fn()
        except BaseException as e:  # noqa: BLE001 - checked below
            if exc is None or not isinstance(e, exc):
                raise
            return
        assert exc is None, f"{fn} did not raise {exc}"

    n = len(cases)
    for i in range(WARMUP):
        one(*cases[i % n])
    before = _census()
    t0 = time.monotonic()
    for i in range(calls):
        one(*cases[i % n])
    elapsed = time.monotonic() - t0
    after = _census()
    growth = {k: after[k] - before[k] for k in before}
    # A leak of one small object per call would show as ~100,000 blocks and
    # (objects of 32+ bytes) 3+ MiB of RSS.
    assert growth["blocks"] < 500, growth
    assert growth["gc_objects"] < 100, growth
    assert growth["refs"] < 500, growth
    assert growth["rss"] < 2 << 20, growth
    return elapsed


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("leaks")
    (root / "a.py").write_bytes(b"a" * 100)
    (root / "pkg").mkdir()
    (root / "pkg" / "b.py").write_bytes(b"b" * 3000)
    (root / "README.md").write_bytes(b"# r")
    (root / "notes.md").write_bytes(b"ignored")
    (root / "adir").mkdir()
    (root / "adir" / "c.py").write_bytes(b"c")
    bad = tmp_path_factory.mktemp("leaks-bad")
    (bad / "ok.py").write_bytes(b"ok")
    (bad / ("bad" + UNDECODABLE + ".py")).write_bytes(b"u")
    loop = tmp_path_factory.mktemp("leaks-loop")
    (loop / "sub").mkdir()
    os.symlink("..", loop / "sub" / "up")
    badpat = tmp_path_factory.mktemp("leaks-badpat")
    (badpat / ".gitignore").write_text("ok\nfoo\\\n")
    return {"root": root, "bad": bad, "loop": loop, "badpat": badpat, "missing": root / "nope"}


@pytest.fixture(autouse=True)
def _quiet_logs():
    # load_ignore_patterns / get_file_tree log; 100,000 records would dominate.
    logging.disable(logging.CRITICAL)
    yield
    logging.disable(logging.NOTSET)


def test_compute_source_fingerprint(project):
    root = project["root"]
    good = [root / "a.py", root / "pkg" / "b.py"]
    f = native.compute_source_fingerprint
    assert_flat([
        (lambda: f(root, good), None),
        (lambda: f(str(root), [str(p) for p in good]), None),
        (lambda: f(root, []), None),
        (lambda: f(root, good + [root / "missing.py"]), FileNotFoundError),
        (lambda: f(root, good + [root / "adir"]), IsADirectoryError),
        (lambda: f(root, good + [root.parent / "outside.py"]), ValueError),
        (lambda: f(root, good + [root / ("x" + UNDECODABLE)]), UnicodeEncodeError),
        (lambda: f(root, good + [root / "a\0b"]), ValueError),
        (lambda: f(root, good + [object()]), TypeError),
        (lambda: f(root, 5), TypeError),
    ])


def test_fingerprint_project_and_files(project):
    root = project["root"]
    assert_flat([
        (lambda: native.fingerprint_project(root), None),
        (lambda: native.fingerprint_project_files(root), None),
        (lambda: native.fingerprint_project(project["missing"]), FileNotFoundError),
        (lambda: native.fingerprint_project(project["bad"]), UnicodeEncodeError),
        (lambda: native.fingerprint_project_files(project["loop"]), native.SymlinkLoopError),
        (lambda: native.fingerprint_project(project["badpat"]), ValueError),
    ])


def test_native_walk_and_fingerprint_tree(project):
    root = str(project["root"])
    spec = native_ignore.load_ignore_patterns(project["root"])
    assert_flat([
        (lambda: _fingerprint.walk_files(root, spec, ""), None),
        (lambda: _fingerprint.walk_files(root, None, None), None),
        (lambda: _fingerprint.walk_files(root + "/pkg", spec, "pkg"), None),
        (lambda: _fingerprint.fingerprint_tree(root, spec, True), None),
        (lambda: _fingerprint.fingerprint_tree(root, spec, False), None),
        (lambda: _fingerprint.walk_files(root + "/nope", spec, ""), FileNotFoundError),
        (lambda: _fingerprint.fingerprint_tree(root + "/nope", spec, True), FileNotFoundError),
        (lambda: _fingerprint.fingerprint_tree(str(project["loop"]), None, True), OSError),
        (lambda: _fingerprint.walk_files(root, object(), ""), TypeError),
        (lambda: _fingerprint.fingerprint_tree(5, spec, True), TypeError),
    ])


def test_load_ignore_patterns_and_get_file_tree(project):
    root = project["root"]
    spec = native_ignore.load_ignore_patterns(root)
    assert_flat([
        (lambda: native_ignore.load_ignore_patterns(root), None),
        (lambda: native_ignore.load_ignore_patterns(project["badpat"]), native_ignore.InvalidPatternError),
        (lambda: native_ignore.get_file_tree(root, spec), None),
        (lambda: native_ignore.get_file_tree(root / "pkg", spec, root), None),
        (lambda: native_ignore.get_file_tree(project["missing"], spec), FileNotFoundError),
        (lambda: native_ignore.get_file_tree(project["loop"], spec), native.SymlinkLoopError),
        (lambda: native_ignore.get_file_tree(root, "not a spec"), TypeError),
    ])


def test_compile_ignore_patterns_and_match_file():
    spec = _fingerprint.compile_ignore_patterns(list(native_ignore.BUILTIN_PATTERNS))
    compile_ = _fingerprint.compile_ignore_patterns
    deep = "d/" * 600 + "x.pyc"  # past the on-stack scratch: heap path
    assert_flat([
        (lambda: compile_(["*.pyc", "!keep.pyc", "docs/", "a/**/b", "[a-c]?"], ["o"] * 5), None),
        (lambda: compile_(["ok", "foo\\"], ["l1", "l2"]), _fingerprint.InvalidPatternError),
        (lambda: compile_(["[z-a]"]), _fingerprint.PatternRegexError),
        (lambda: compile_(["a", 5]), TypeError),
        (lambda: compile_(["a"], ["x", "y"]), ValueError),
        (lambda: compile_("a"), TypeError),
        (lambda: spec.match_file("pkg/mod.pyc"), None),
        (lambda: spec.match_file(Path("docs/README.md")), None),
        (lambda: spec.match_file(deep), None),
        (lambda: spec.match_file("é/" + UNDECODABLE), None),
        (lambda: spec.match_file(5), TypeError),
        (lambda: _fingerprint._match_fsbytes(spec, b"a/\xff/b.pyc"), None),
        (lambda: _fingerprint._match_walk(spec, "pkg", [b"a", b"\xff", b"b.md"]), None),
    ])


def _manifest(fp="fp", endpoint=1.0):
    return {
        "source_fingerprint": fp,
        "resources": {
            "a": {"imageName": "img", "env": {"K": "v"}, "gpuIds": [1, 2], "endpoint_id": "e"},
            "b": {"imageName": "img2", "workers": endpoint, "env": {}},
            "c": {"imageName": "img3"},
        },
        "resources_endpoints": {"a": "https://a", "b": "https://b"},
    }


def test_deployment_entry_points():
    cyc = []
    cyc.append(cyc)
    nested = {"x": 1}
    for _ in range(5000):  # past the recursion limit: RecursionError
        nested = {"a": nested}
    local, state = _manifest(), _manifest(endpoint=2.0)
    state["resources"]["a"]["env"]["_FLASH_SOURCE_FINGERPRINT"] = "fp"

    state_bad_endpoints = {"resources": {"a": {"imageName": "img"}}, "resources_endpoints": []}

    def plan():
        deployment.plan_reconciliation(_manifest(), state)

    def plan_and_reuse():
        m = _manifest()
        p = deployment.plan_reconciliation(m, state, missing_state_fingerprint="adopt")
        deployment.apply_reuse(m, state, p)
        p.to_dict()

    assert_flat([
        (lambda: deployment.config_differs(local["resources"]["a"], state["resources"]["a"]), None),
        (lambda: deployment.config_changes(local["resources"]["b"], state["resources"]["b"]), None),
        (lambda: deployment.config_differs({"x": {1, 2}}, {"x": []}), TypeError),
        (lambda: deployment.config_differs({"x": cyc}, {}), ValueError),
        (lambda: deployment.config_differs({"x": float("nan")}, {"x": (1, "a")}), None),
        (lambda: deployment.config_differs(nested, {}), RecursionError),
        (lambda: deployment.config_changes([], {}), TypeError),
        (lambda: deployment.resource_config_for_compare(local["resources"]["a"]), None),
        (lambda: deployment.resource_config_for_compare("s"), TypeError),
        (lambda: deployment.inject_source_fingerprint(_manifest()), None),
        (lambda: deployment.inject_source_fingerprint({"source_fingerprint": 5, "resources": {}}), TypeError),
        (plan, None),
        (plan_and_reuse, None),
        (lambda: deployment.plan_reconciliation(_manifest(), {"resources": []}), TypeError),
        # resources passes validation, resources_endpoints fails after it (the
        # borrowed-reference release fixed in 5a75fed freed state["resources"])
        (lambda: deployment.plan_reconciliation(_manifest(), {"resources": {}, "resources_endpoints": 1}),
         TypeError),
        (lambda: deployment.plan_reconciliation(_manifest(), state_bad_endpoints), TypeError),
        (lambda: deployment.apply_reuse(_manifest(), state, ["zz", 5]), TypeError),
        (lambda: deployment.apply_reuse(_manifest(), {"resources": 1}, ["a"]), TypeError),
    ])


def test_pgzip_helpers():
    data = bytes(range(256)) * 300
    view = memoryview(bytearray(data))
    cases = [
        (lambda: _fingerprint.byte_entropy(data, 4096), None),
        (lambda: _fingerprint.byte_entropy(view, 1000), None),
        (lambda: _fingerprint.byte_entropy(b"", 64), None),
        (lambda: _fingerprint.byte_entropy(data, 0), ValueError),
        (lambda: _fingerprint.byte_entropy("text", 4), TypeError),
        (lambda: _fingerprint.byte_entropy(data, "4"), TypeError),
        (lambda: _fingerprint.lz_matches(data, 1000, 4096), None),
        (lambda: _fingerprint.lz_matches(view, 0, 999), None),
        (lambda: _fingerprint.lz_matches(data, len(data) + 1, 64), ValueError),
        (lambda: _fingerprint.lz_matches(data, 0, 0), ValueError),
        (lambda: _fingerprint.lz_matches("text", 0, 4), TypeError),
        (lambda: _fingerprint.crc32_combine(0x12345678, 0x9ABCDEF0, 1 << 40), None),
        (lambda: _fingerprint.crc32_combine(1 << 32, 0, 1), OverflowError),
        (lambda: _fingerprint.crc32_combine(-1, 0, 1), OverflowError),
        (lambda: _fingerprint.crc32_combine(1, 2), TypeError),
    ]
    assert_flat(cases)

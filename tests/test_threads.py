"""Threads: 8 threads calling every entry point at once, on one shared tree and
on a tree each, get exactly what sequential calls get; a child process runs
the same storm (plus signals landing mid-hash) under a timeout, so a deadlock
fails the test instead of hanging the suite.

The extension releases the GIL while it walks and hashes, and declares
Py_mod_gil NOT_USED for free-threaded builds; none of those is installed here
(see README.md), so this runs on the GIL build.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import random
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

import runpod_flash_native as native
from runpod_flash_native import _fingerprint, deployment
from runpod_flash_native import ignore as native_ignore
from reference import child_env
from reference import outcome as reference_outcome

THREADS = 8
ROUNDS = 3


def build_tree(root: Path, seed: int, big: bool) -> None:
    rnd = random.Random(seed)
    (root / ".gitignore").parent.mkdir(parents=True, exist_ok=True)
    (root / ".gitignore").write_text("*.log\n!keep.log\nbuild/\n")
    for i in range(60):
        sub = root / f"pkg{i % 6}" / ("inner" if i % 3 else "")
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"m{i}.py").write_bytes(rnd.randbytes(rnd.randrange(0, 3000)))
    for name in ("a.log", "keep.log", "README.md", "notes.md", "test_x.py"):
        (root / name).write_bytes(name.encode())
    (root / "build").mkdir()
    (root / "build" / "out.py").write_bytes(b"ignored")
    if big:
        (root / "big.bin").write_bytes(rnd.randbytes(3 << 20))  # the threaded reader path


def _manifest(seed: int):
    return {
        "source_fingerprint": f"fp{seed}",
        "resources": {
            "api": {"imageName": f"img{seed}", "env": {"A": "1"}, "gpuIds": [seed, 2]},
            "worker": {"imageName": "w", "workersMax": seed, "env": {}},
            "gone": {"imageName": "g"},
        },
        "resources_endpoints": {"api": "https://api", "worker": "https://worker"},
    }


def _state(seed: int):
    m = _manifest(seed)
    m["resources"]["api"]["env"]["_FLASH_SOURCE_FINGERPRINT"] = f"fp{seed}"
    m["resources"]["worker"]["workersMax"] = seed + 1
    del m["resources"]["gone"]
    m["resources"]["old"] = {"imageName": "o"}
    return m


def outcome(fn):
    """fn()'s answer (paths as str) or its exception, as data (reference.outcome)."""
    return reference_outcome(fn)


def archive_digest(root: Path, seed: int) -> str:
    """create_tarball of root into a per-call file; the SHA-256 of its tar stream."""
    import hashlib
    import threading
    import zlib

    from runpod_flash_native.build import create_tarball

    out = root.parent / f".{root.name}-{seed}-{threading.get_ident()}.tar.gz"
    try:
        create_tarball(root, out, "app")
        return hashlib.sha256(zlib.decompress(out.read_bytes(), 31)).hexdigest()
    finally:
        out.unlink(missing_ok=True)


def workload(shared: Path, own: Path, spec, seed: int):
    """Every entry point, on the shared tree and on this thread's own tree."""
    shared_files = sorted(p for p in shared.rglob("*.py") if p.is_file())
    own_files = sorted(p for p in own.rglob("*.py") if p.is_file())
    local_shared, state_shared = _manifest(0), _state(0)  # read by every thread

    def plan(seed_):
        local = _manifest(seed_)
        state = _state(seed_)
        p = deployment.plan_reconciliation(local, state)
        deployment.apply_reuse(local, state, p)
        return json.dumps([p.to_dict(), local], sort_keys=True, default=str)

    calls = {
        "csf/shared": lambda: native.compute_source_fingerprint(shared, shared_files),
        "csf/own": lambda: native.compute_source_fingerprint(own, own_files),
        "csf/missing": lambda: native.compute_source_fingerprint(shared, shared_files + [shared / "nope.py"]),
        "fp/shared": lambda: native.fingerprint_project(shared),
        "fp/own": lambda: native.fingerprint_project(own),
        "fpf/shared": lambda: native.fingerprint_project_files(shared),
        "fpf/own": lambda: native.fingerprint_project_files(own),
        "fp/missing": lambda: native.fingerprint_project(own / "nope"),
        "load/shared": lambda: native_ignore.load_ignore_patterns(shared).patterns,
        "tree/shared": lambda: native_ignore.get_file_tree(shared, spec),
        "tree/own": lambda: native_ignore.get_file_tree(own, native_ignore.load_ignore_patterns(own)),
        "tree/sub": lambda: native_ignore.get_file_tree(shared / "pkg1", spec, shared),
        "match/shared-spec": lambda: [spec.match_file(p) for p in
                                      ("a.log", "keep.log", "x/build/y", "docs/README.md", "m.py")],
        "match/walk-hook": lambda: _fingerprint._match_walk(spec, "pkg1", [b"build", b"x.py"]),
        "compile": lambda: _fingerprint.compile_ignore_patterns(["*.py", f"!m{seed}.py", "x/"]).match_file(f"m{seed}.py"),
        "compile/bad": lambda: _fingerprint.compile_ignore_patterns(["foo\\"]),
        "walk_files": lambda: _fingerprint.walk_files(str(shared), spec, ""),
        "fingerprint_tree": lambda: _fingerprint.fingerprint_tree(str(own), spec, True),
        "differs/shared": lambda: deployment.config_differs(local_shared["resources"]["api"],
                                                            state_shared["resources"]["api"]),
        "changes/shared": lambda: [str(c) for c in deployment.config_changes(
            local_shared["resources"]["worker"], state_shared["resources"]["worker"])],
        "for_compare": lambda: deployment.resource_config_for_compare(local_shared["resources"]["api"]),
        "inject/own": lambda: (lambda m: (deployment.inject_source_fingerprint(m), m)[1])(_manifest(seed)),
        "plan/own": lambda: plan(seed),
        "plan/shared-inputs": lambda: plan(0),
        "differs/json-error": lambda: deployment.config_differs({"x": {1}}, {}),
        "entropy": lambda: _fingerprint.byte_entropy(bytes(range(256)) * (seed + 50), 4096),
        "entropy/bad": lambda: _fingerprint.byte_entropy(b"x", 0),
        "crc32_combine": lambda: _fingerprint.crc32_combine(seed, 0xDEADBEEF, 1 << 33),
        "archive/own": lambda: archive_digest(own, seed),
    }
    return calls


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    base = tmp_path_factory.mktemp("threads")
    shared = base / "shared"
    build_tree(shared, 1000, big=True)
    own = []
    for t in range(THREADS):
        build_tree(base / f"t{t}", t, big=t % 2 == 1)
        own.append(base / f"t{t}")
    return shared, own


def test_concurrent_calls_of_every_entry_point_match_sequential(trees):
    shared, own = trees
    logging.disable(logging.CRITICAL)
    try:
        spec = native_ignore.load_ignore_patterns(shared)
        work = [workload(shared, own[t], spec, t) for t in range(THREADS)]
        sequential = [{name: outcome(fn) for name, fn in w.items()} for w in work]
        # Sanity: the sequential answers are the right ones.
        assert sequential[0]["csf/missing"][1] is FileNotFoundError
        assert sequential[0]["fpf/shared"][1][1] == sequential[0]["fp/shared"][1]
        assert all(s["fp/shared"] == sequential[0]["fp/shared"] for s in sequential)

        barrier = threading.Barrier(THREADS)
        results: dict[int, list] = {}
        errors = []

        def worker(t):
            try:
                names = list(work[t])
                rnd = random.Random(t)
                barrier.wait()
                got = []
                for _ in range(ROUNDS):
                    rnd.shuffle(names)  # different interleavings per thread
                    got.append({name: outcome(work[t][name]) for name in names})
                results[t] = got
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(300)
        assert not any(th.is_alive() for th in threads), "a worker thread is stuck"
        assert not errors, errors
        for t in range(THREADS):
            for r in results[t]:
                assert r == sequential[t]
    finally:
        logging.disable(logging.NOTSET)


CHILD = """
import json, logging, os, signal, sys, threading, time
from pathlib import Path
sys.path.insert(0, {tests_dir!r})
import test_threads as tt
import runpod_flash_native as native
from runpod_flash_native import ignore as native_ignore

logging.disable(logging.CRITICAL)
shared, big_dir = Path(sys.argv[1]), Path(sys.argv[2])
own = [Path(p) for p in sys.argv[3:]]
spec = native_ignore.load_ignore_patterns(shared)
work = [tt.workload(shared, own[t], spec, t) for t in range(len(own))]
expected = [{{n: tt.outcome(f) for n, f in w.items()}} for w in work]
stop = threading.Event()
bad = []

def worker(t):
    while not stop.is_set():
        for name, fn in work[t].items():
            if tt.outcome(fn) != expected[t][name]:
                bad.append((t, name))

threads = [threading.Thread(target=worker, args=(t,)) for t in range(len(own))]
for th in threads:
    th.start()

# Meanwhile the main thread is interrupted mid-hash, again and again.
class Alarm(Exception):
    pass

def handler(signum, frame):
    raise Alarm

signal.signal(signal.SIGALRM, handler)
interrupted = 0
for _ in range(4):
    signal.setitimer(signal.ITIMER_REAL, 0.2)
    try:
        native.fingerprint_project(big_dir)
    except Alarm:
        interrupted += 1
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
time.sleep(1.0)
stop.set()
for th in threads:
    th.join()
print(json.dumps({{"bad": bad, "interrupted": interrupted}}), flush=True)
"""


def test_no_deadlock_under_concurrency_and_signals(trees, tmp_path):
    """The same storm in a child process, with SIGALRM interrupting the main
    thread's multi-GiB hash four times meanwhile; a deadlock is a timeout."""
    import tempfile

    shared, own = trees
    base = Path("/dev/shm") if os.access("/dev/shm", os.W_OK) else tmp_path
    big_dir = Path(tempfile.mkdtemp(prefix="rfn-threads-", dir=base))
    try:
        with open(big_dir / "huge.bin", "wb") as fh:
            fh.truncate(16 << 30)
        script = tmp_path / "child.py"
        script.write_text(textwrap.dedent(CHILD.format(tests_dir=os.path.dirname(__file__))))
        env = child_env()
        try:
            proc = subprocess.run(
                [sys.executable, str(script), str(shared), str(big_dir), *map(str, own)],
                cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180,
            )
        except subprocess.TimeoutExpired:
            pytest.fail("deadlock: the concurrent workload did not finish within 180 s")
        assert proc.returncode == 0, proc.stderr[-3000:]
        out = json.loads(proc.stdout)
        assert out["bad"] == []
        assert out["interrupted"] == 4
    finally:
        import shutil

        shutil.rmtree(big_dir)

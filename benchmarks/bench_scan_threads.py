"""flash's scanner on apps of N modules, flash-native patch applied, with
flash's thread per module imports vs the (former) reused import thread
(runpod_flash_native._threadshim), and with vs without .pyc writes during
the scan (the former RuntimeScanner bytecode suppression). Both sides
alternate in one run; each sample scans a fresh copy of the app.

    python benchmarks/bench_scan_threads.py [N ...]     (default: 30 100 300)

The reused thread is the former ``runpod_flash_native._threadshim``, read
from git (commit dae8426, the last with it); without git that side is skipped.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import types
from pathlib import Path

import runpod_flash_native
from runpod_flash.cli.commands.build_utils import scanner

MODULE = '''\
import json, os, re
from runpod_flash import Endpoint


def helper_{i}(x):
    return [json.dumps({{"k": x, "i": {i}}}) for _ in range(3)]


class Model{i}:
    def __init__(self):
        self.pattern = re.compile(r"item-{i}-\\d+")

    def run(self, data):
        return [self.pattern.match(d) for d in data]
'''
ENDPOINT = '''

@Endpoint(name="ep_{i}", cpu="cpu3c-1-2")
async def handler_{i}(data: dict) -> dict:
    return {{"ok": {i}}}
'''


FORMER = "dae8426:runpod_flash_native/_threadshim.py"


def former_threadshim() -> types.ModuleType | None:
    try:
        src = subprocess.run(["git", "show", FORMER], cwd=Path(__file__).parent, capture_output=True,
                             text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    module = types.ModuleType("former_threadshim")
    sys.modules[module.__name__] = module
    exec(compile(src, "_threadshim.py", "exec"), module.__dict__)
    return module


def make_app(root: Path, n: int) -> None:
    for i in range(n):
        pkg = root / f"pkg{i // 25}"
        pkg.mkdir(parents=True, exist_ok=True)
        (pkg / "__init__.py").touch()
        body = MODULE.format(i=i) + (ENDPOINT.format(i=i) if i % 10 == 0 else "")
        (pkg / f"mod{i}.py").write_text(body)


def scan(template: Path, work: Path, *, reuse: types.ModuleType | None, pyc: bool) -> float:
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(template, work)
    saved_dwb = sys.dont_write_bytecode
    sys.dont_write_bytecode = not pyc
    if reuse is not None:
        scanner.threading = reuse.scanner_threading
    else:
        scanner.threading = threading
    for name in [m for m in sys.modules if m.startswith("pkg")]:
        del sys.modules[name]
    try:
        t0 = time.perf_counter()
        scanner.RuntimeScanner(work).discover_remote_functions()
        return time.perf_counter() - t0
    finally:
        sys.dont_write_bytecode = saved_dwb
        scanner.threading = threading


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [30, 100, 300]
    runpod_flash_native.patch_flash()
    scanner.threading = threading
    rounds = int(os.environ.get("ROUNDS", "9"))
    shim = former_threadshim()
    print(f"python {sys.version.split()[0]}, {rounds} alternating rounds per size, medians")
    for n in sizes:
        tmp = Path(tempfile.mkdtemp())
        make_app(tmp / "template", n)
        sides = {
            "flash (thread per module, .pyc written)": dict(reuse=None, pyc=True),
            "reused thread": dict(reuse=shim, pyc=True),
            "no .pyc": dict(reuse=None, pyc=False),
        }
        if shim is None:
            del sides["reused thread"]
        samples: dict[str, list[float]] = {k: [] for k in sides}
        for _ in range(rounds):
            for name, kw in sides.items():
                samples[name].append(scan(tmp / "template", tmp / "work", **kw))  # type: ignore[arg-type]
        base = statistics.median(samples["flash (thread per module, .pyc written)"])
        for name, values in samples.items():
            med = statistics.median(values)
            print(f"  {n:4d} modules  {name:42s} {med * 1000:8.1f} ms  saves {(base - med) * 1000:7.1f} ms ({(base - med) / base:5.1%})")
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()

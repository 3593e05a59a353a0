"""End to end: `flash build` vs `flash-native build` on generated apps.

    python benchmarks/bench_build.py [--app modules|deps|all] [--runs 3] [--threads 1,2,0]
                                     [--data-dir benchmarks/data] [--json] [--markdown]

Two apps, generated deterministically under <data-dir> (git-ignored):

* ``modules`` (<data-dir>/e2e): 3,000 small modules in 280 packages (each
  package imports a sibling, the worker imports one module of every package),
  a worker with three endpoints, and a 256 MiB incompressible weights file; no
  requirements, so the build makes no network call.
* ``deps`` (<data-dir>/e2e-deps): an app shaped like the ones flash users
  build: three endpoints declaring ``dependencies=["transformers", "pillow"]``
  and ``["numpy", "requests"]``, 12 modules, 48 MiB of weights. Its build runs
  flash's pip install (from the configured index; the warm-up round fills
  pip's cache).

Both commands build a copy of an app in directories of the same name
(<data-dir>/e2e-run/<app>/flash/app and .../native/app: the app name is the
directory name), alternating flash and flash-native run after run after one
warm-up round of each. `--threads` lists the RUNPOD_FLASH_NATIVE_THREADS
values flash-native runs with (0 = all CPUs). Every build process times its
phases (flash's build-module functions, wrapped in the child after the patch:
the same wrappers on both sides); "other" is the process's wall time minus
the phases (interpreter start, imports, handler generation). Reports the
median wall time of each, the ratio, the per-phase medians, and checks that
both builds wrote the same source_fingerprint and archives with the same
members and contents (pip's RECORD files aside: flash-native's pip runs with
--no-compile, so they do not list the deleted .pyc files).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 20261202
PACKAGES, MODULES, WEIGHTS = 280, 3000, 256 << 20

WORKER = '''\
from runpod_flash import Endpoint, remote, CpuLiveServerless
{imports}


@Endpoint(name="cpu_worker", cpu="cpu3c-1-2")
async def hello(input_data: dict) -> dict:
    return {{"n": len(input_data)}}


api = Endpoint(name="lb_worker", cpu="cpu3c-1-2", workers=(1, 2))


@api.post("/echo")
async def echo(input_data: dict) -> dict:
    return input_data


batch = CpuLiveServerless(name="batch_worker")


@remote(resource_config=batch)
async def crunch(numbers: list) -> int:
    return sum(numbers)
'''


def write_weights(path: Path, size: int, rng: random.Random) -> None:
    """``size`` bytes (whole MiB) of incompressible model weights from ``rng``."""
    path.parent.mkdir(parents=True)
    with open(path, "wb") as f:
        for _ in range(size >> 20):
            f.write(rng.randbytes(1 << 20))


def build_app(root: Path) -> None:
    spec = f"e2e seed={SEED} packages={PACKAGES} modules={MODULES} weights={WEIGHTS}\n"
    stamp = root.with_name(root.name + ".complete")
    if stamp.exists() and stamp.read_text() == spec:
        return
    shutil.rmtree(root, ignore_errors=True)
    rng = random.Random(SEED)
    imports = []
    for i in range(MODULES):
        pkg = i % PACKAGES
        mod = i // PACKAGES
        d = root / f"pkg{pkg:03d}"
        d.mkdir(parents=True, exist_ok=True)
        if mod == 0:
            (d / "__init__.py").write_text(f'"""Package {pkg}."""\n')
            imports.append(f"import pkg{pkg:03d}.mod00")
        body = [f"from . import mod00\n" if mod else "", f"CONST = {rng.randint(0, 1 << 30)}\n"]
        for f in range(rng.randint(3, 12)):
            body.append(f"\n\ndef f{f}(x):\n    return x * {rng.randint(1, 99)} + CONST\n")
        (d / f"mod{mod:02d}.py").write_text("".join(body))
    (root / "worker.py").write_text(WORKER.format(imports="\n".join(imports)))
    (root / "README.md").write_text("# e2e benchmark app\n")
    (root / ".gitignore").write_text("*.log\n")
    write_weights(root / "weights" / "model.bin", WEIGHTS, rng)
    stamp.write_text(spec)


DEPS_WEIGHTS = 48 << 20

DEPS_WORKERS = {
    "text_worker.py": """\
from runpod_flash import Endpoint, GpuGroup

from common.prompts import build_prompt


@Endpoint(name="text_worker", gpu=GpuGroup.AMPERE_16, dependencies=["transformers", "pillow"])
async def generate(input_data: dict) -> dict:
    from transformers import pipeline

    pipe = pipeline("text-generation", model="weights")
    return {"text": pipe(build_prompt(input_data))[0]["generated_text"]}
""",
    "image_worker.py": """\
from runpod_flash import Endpoint, GpuGroup

from common.images import thumbnail_size


@Endpoint(name="image_worker", gpu=GpuGroup.AMPERE_16, dependencies=["transformers", "pillow"])
async def caption(input_data: dict) -> dict:
    from PIL import Image

    return {"size": thumbnail_size(Image.new("RGB", (64, 64)).size)}
""",
    "stats_worker.py": """\
from runpod_flash import Endpoint

from common.stats import summarize

api = Endpoint(name="stats_api", cpu="cpu3c-1-2", workers=(1, 2), dependencies=["numpy", "requests"])


@api.post("/summary")
async def summary(input_data: dict) -> dict:
    import numpy as np

    return summarize(np.asarray(input_data.get("values", [0.0])))
""",
}

DEPS_COMMON = {
    "common/__init__.py": "",
    "common/prompts.py": "def build_prompt(data):\n    return str(data.get('prompt', ''))\n",
    "common/images.py": "def thumbnail_size(size):\n    return tuple(max(1, s // 4) for s in size)\n",
    "common/stats.py": "def summarize(arr):\n    return {'mean': float(arr.mean()), 'n': int(arr.size)}\n",
    "common/config.py": "MAX_TOKENS = 256\nTEMPERATURE = 0.7\n",
    "common/schemas.py": "from dataclasses import dataclass\n\n\n@dataclass\nclass Request:\n    prompt: str\n",
    "common/logging_setup.py": "import logging\n\nlog = logging.getLogger('app')\n",
    "common/retry.py": "def retry(fn, n=3):\n    for _ in range(n - 1):\n        try:\n            return fn()\n        except Exception:\n            pass\n    return fn()\n",
    "common/cache.py": "_CACHE = {}\n\n\ndef get(key):\n    return _CACHE.get(key)\n",
}


def hash_text(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:16]


def build_deps_app(root: Path) -> None:
    sources = json.dumps({**DEPS_WORKERS, **DEPS_COMMON}, sort_keys=True)
    spec = f"e2e-deps seed={SEED} weights={DEPS_WEIGHTS} sources={hash_text(sources)}\n"
    stamp = root.with_name(root.name + ".complete")
    if stamp.exists() and stamp.read_text() == spec:
        return
    shutil.rmtree(root, ignore_errors=True)
    rng = random.Random(SEED + 1)
    for rel, text in {**DEPS_WORKERS, **DEPS_COMMON}.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / "README.md").write_text("# e2e benchmark app with dependencies\n")
    (root / ".gitignore").write_text("*.log\n__pycache__/\n")
    write_weights(root / "weights" / "model.safetensors", DEPS_WEIGHTS, rng)
    stamp.write_text(spec)


APPS = {"modules": ("e2e", build_app), "deps": ("e2e-deps", build_deps_app)}

# (phase, flash build-module attribute, method to time or None for the call itself)
PHASES = (
    ("walk", "load_ignore_patterns", None),
    ("walk", "get_file_tree", None),
    ("validate", "validate_local_module_imports", None),
    ("copy", "copy_project_files", None),
    ("scan", "RuntimeScanner", "discover_remote_functions"),
    ("manifest", "ManifestBuilder", "build"),
    ("fingerprint", "compute_source_fingerprint", None),
    ("requirements", "collect_requirements", None),
    ("pip", "install_dependencies", None),
    ("bundle", "_bundle_runpod_flash", None),
    ("cleanup", "cleanup_python_bytecode", None),
    ("archive", "create_tarball", None),
)
PHASE_NAMES = tuple(dict.fromkeys(p for p, _, _ in PHASES)) + ("other",)


def _install_phase_timers(out_path: str) -> None:
    """In a build child: wrap flash's build-module functions (whatever the
    patch bound there) with timers; write the totals at exit."""
    import atexit
    import functools

    import runpod_flash.cli.commands.build as fb

    totals: dict[str, float] = {}

    def timed(phase: str, fn):  # type: ignore[no-untyped-def]
        @functools.wraps(fn)
        def wrapper(*a, **k):  # type: ignore[no-untyped-def]
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                totals[phase] = totals.get(phase, 0.0) + time.perf_counter() - t0
        return wrapper

    for phase, attr, method in PHASES:
        obj = getattr(fb, attr)
        if method is None:
            setattr(fb, attr, timed(phase, obj))
        else:
            setattr(fb, attr, type(obj.__name__, (obj,), {method: timed(phase, getattr(obj, method))}))
    atexit.register(lambda: Path(out_path).write_text(json.dumps(totals)))


def child(impl: str, out_path: str, argv: list[str]) -> int:
    if impl == "native":
        from runpod_flash_native.patch import main as flash_native

        real_patch = flash_native.apply_patch

        def patch_then_time(report: Callable[[str], None]) -> bool:
            ok = real_patch(report)
            _install_phase_timers(out_path)
            return ok

        flash_native.apply_patch = patch_then_time  # type: ignore[assignment]
        return flash_native.main(argv)
    _install_phase_timers(out_path)
    from runpod_flash.cli.main import app

    try:
        app(args=argv, prog_name="flash")
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return 0


def _env(threads: int | None) -> dict[str, str]:
    env = dict(os.environ, FLASH_NO_UPDATE_CHECK="1")
    env.pop("RUNPOD_FLASH_NATIVE_THREADS", None)
    env.pop("RUNPOD_FLASH_NATIVE_PIP_COMPILE", None)
    if threads:
        env["RUNPOD_FLASH_NATIVE_THREADS"] = str(threads)
    return env


def run_build(app: Path, impl: str, threads: int | None) -> tuple[float, dict[str, float]]:
    shutil.rmtree(app / ".flash", ignore_errors=True)
    phases_path = app.parent / "phases.json"
    phases_path.unlink(missing_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", impl, "--phases-out", str(phases_path), "build"]
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=app, env=_env(threads), capture_output=True, text=True)
    dt = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"{impl} build failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    phases = json.loads(phases_path.read_text())
    phases["other"] = dt - sum(phases.values())
    # CPU of the build process and its children (pip), all threads: less
    # sensitive than wall time to the machine's other jobs
    phases["cpu"] = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return dt, phases


def fingerprint(app: Path) -> str:
    return json.loads((app / ".flash" / "flash_manifest.json").read_text())["source_fingerprint"]


_STAMP = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z")


def _archive_members(app: Path) -> dict[str, tuple]:
    """name -> (type, mode, content or link target); RECORD files without
    their .pyc lines (the one difference --no-compile makes)."""
    out: dict[str, tuple] = {}
    with tarfile.open(app / ".flash" / "artifact.tar.gz") as tar:
        for m in tar:
            data = b""
            if m.isfile():
                f = tar.extractfile(m)
                assert f is not None
                data = f.read()
                if m.name.endswith(".dist-info/RECORD"):
                    data = b"".join(line for line in data.splitlines(True)
                                    if not line.split(b",")[0].endswith(b".pyc"))
                # flash stamps the build time into the manifest and handlers
                data = _STAMP.sub(b"<time>", data)
            out[m.name] = (m.type, m.mode, data if m.isfile() else m.linkname)
    return out


def _size(app: Path) -> int:
    return (app / ".flash" / "artifact.tar.gz").stat().st_size


def bench_app(name: str, args: argparse.Namespace, threads: list[int]) -> dict:
    dirname, generate = APPS[name]
    src = args.data_dir / dirname
    generate(src)
    apps = {}
    for impl in ("flash", "native"):
        app = args.data_dir / "e2e-run" / name / impl / "app"
        shutil.rmtree(app.parent, ignore_errors=True)
        shutil.copytree(src, app, symlinks=True)
        apps[impl] = app
    keys = ["flash"] + [f"native-{t or 'all'}" for t in threads]
    times: dict[str, list[float]] = {k: [] for k in keys}
    phases: dict[str, list[dict[str, float]]] = {k: [] for k in keys}
    loads = []
    for rnd in range(args.runs + 1):  # round 0: warm-up
        loads.append(os.getloadavg()[0])
        got = {"flash": run_build(apps["flash"], "flash", None)}
        for t in threads:
            got[f"native-{t or 'all'}"] = run_build(apps["native"], "native", t)
        if rnd:
            for k, (dt, ph) in got.items():
                times[k].append(dt)
                phases[k].append(ph)
    same = fingerprint(apps["flash"]) == fingerprint(apps["native"])
    same_members = _archive_members(apps["flash"]) == _archive_members(apps["native"])
    med = {k: statistics.median(v) for k, v in times.items()}
    phase_med = {k: {p: statistics.median(r.get(p, 0.0) for r in v) for p in PHASE_NAMES + ("cpu",)}
                 for k, v in phases.items()}
    # flash's and ours from the same round, one ratio per round
    paired = {k: [f / n for f, n in zip(times["flash"], v)] for k, v in times.items() if k != "flash"}
    return {"app": name, "runs": args.runs, "median_s": med, "speedup": {k: med["flash"] / v for k, v in med.items() if k != "flash"},
            "all_s": times, "paired_ratios": paired, "phases_s": phase_med, "same_fingerprint": same, "same_archive_contents": same_members,
            "size_ratio": _size(apps["native"]) / _size(apps["flash"]),
            "load_1min": loads, "cpus": os.cpu_count()}


def _markdown(r: dict) -> str:
    keys = list(r["median_s"])
    head = "| phase | " + " | ".join("flash build" if k == "flash" else f"flash-native ({k.split('-', 1)[1]} threads)" for k in keys)
    lines = [head + " |", "| --- |" + " ---: |" * len(keys)]
    for p in PHASE_NAMES:
        lines.append(f"| {p} | " + " | ".join(f"{r['phases_s'][k][p]:.2f} s" for k in keys) + " |")
    lines.append("| **total (wall)** | " + " | ".join(
        f"**{r['median_s'][k]:.2f} s**" + ("" if k == "flash" else f" ({r['speedup'][k]:.2f}×)") for k in keys) + " |")
    lines.append("| CPU (user + system, with pip) | " + " | ".join(
        f"{r['phases_s'][k]['cpu']:.2f} s" + ("" if k == "flash" else f" ({r['phases_s']['flash']['cpu'] / r['phases_s'][k]['cpu']:.2f}×)")
        for k in keys) + " |")
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        # bench_build.py --child flash|native --phases-out PATH <flash args...>
        sys.exit(child(sys.argv[2], sys.argv[4], sys.argv[5:]))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--app", choices=("modules", "deps", "all"), default="modules")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", default="0", help="comma-separated RUNPOD_FLASH_NATIVE_THREADS values (0 = all CPUs)")
    ap.add_argument("--data-dir", type=Path, default=HERE / "data")
    ap.add_argument("--json", action="store_true", help="print the results as one JSON document (the last app's)")
    ap.add_argument("--markdown", action="store_true", help="also print a per-phase markdown table per app")
    args = ap.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    names = ["modules", "deps"] if args.app == "all" else [args.app]
    results = [bench_app(n, args, threads) for n in names]
    for result in results:
        if args.json:
            print(json.dumps(result))
            continue
        print(f"app {result['app']}: load (1 min) per round {' '.join(f'{x:.2f}' for x in result['load_1min'])}")
        for k, v in result["median_s"].items():
            extra = "" if k == "flash" else f"  {result['median_s']['flash'] / v:.2f}x flash"
            runs = " ".join(f"{x:.1f}" for x in result["all_s"][k])
            pairs = "" if k == "flash" else "; per-round ratios " + " ".join(f"{x:.2f}" for x in result["paired_ratios"][k])
            print(f"  {k:12s} {v:7.2f} s{extra}   (runs: {runs}{pairs})")
        print("  same source_fingerprint:", result["same_fingerprint"],
              "| same archive members and contents (RECORD .pyc lines aside):", result["same_archive_contents"],
              f"| archive size ours/flash: {result['size_ratio']:.4f}")
        if args.markdown:
            print(_markdown(result))
    if not all(r["same_fingerprint"] and r["same_archive_contents"] for r in results):
        sys.exit("fingerprints or archive contents differ")


if __name__ == "__main__":
    main()

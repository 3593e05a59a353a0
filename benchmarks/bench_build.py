"""End to end: `flash build` vs `flash-native build` on a generated app.

    python benchmarks/bench_build.py [--runs 3] [--threads 1,2,0] [--data-dir benchmarks/data]

The app (generated deterministically under <data-dir>/e2e, git-ignored):
3,000 small modules in 280 packages (each package imports a sibling, the
worker imports one module of every package), a worker with three endpoints,
and a 256 MiB incompressible weights file; no requirements, so the build
makes no network call. Both commands build a copy of the app in directories of
the same name (<data-dir>/e2e-run/flash/app and .../native/app: the app name
is the directory name), alternating flash and flash-native run after run
after one warm-up round of each. `--threads` lists the
RUNPOD_FLASH_NATIVE_THREADS values flash-native runs with (0 = all CPUs).
Reports the median wall time of each and the ratio, and checks that both
builds wrote the same source_fingerprint.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
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
    weights = root / "weights"
    weights.mkdir()
    with open(weights / "model.bin", "wb") as f:
        for _ in range(WEIGHTS >> 20):
            f.write(rng.randbytes(1 << 20))
    stamp.write_text(spec)


def _env(threads: int | None) -> dict[str, str]:
    env = dict(os.environ, FLASH_NO_UPDATE_CHECK="1")
    env.pop("RUNPOD_FLASH_NATIVE_THREADS", None)
    if threads:
        env["RUNPOD_FLASH_NATIVE_THREADS"] = str(threads)
    return env


def run_build(app: Path, cmd: list[str], threads: int | None) -> float:
    shutil.rmtree(app / ".flash", ignore_errors=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd + ["build"], cwd=app, env=_env(threads), capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} build failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return dt


def fingerprint(app: Path) -> str:
    return json.loads((app / ".flash" / "flash_manifest.json").read_text())["source_fingerprint"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", default="0", help="comma-separated RUNPOD_FLASH_NATIVE_THREADS values (0 = all CPUs)")
    ap.add_argument("--data-dir", type=Path, default=HERE / "data")
    ap.add_argument("--json", action="store_true", help="print the results as one JSON document")
    args = ap.parse_args()
    src = args.data_dir / "e2e"
    build_app(src)
    apps = {}
    for impl in ("flash", "native"):
        app = args.data_dir / "e2e-run" / impl / "app"
        shutil.rmtree(app.parent, ignore_errors=True)
        shutil.copytree(src, app, symlinks=True)
        apps[impl] = app
    flash_cmd = [sys.executable, "-m", "runpod_flash.cli.main"]
    native_cmd = [sys.executable, "-m", "runpod_flash_native.flash_cli"]
    threads = [int(t) for t in args.threads.split(",")]
    times: dict[str, list[float]] = {"flash": []}
    for t in threads:
        times[f"native-{t or 'all'}"] = []
    for rnd in range(args.runs + 1):  # round 0: warm-up
        got = {"flash": run_build(apps["flash"], flash_cmd, None)}
        for t in threads:
            got[f"native-{t or 'all'}"] = run_build(apps["native"], native_cmd, t)
        if rnd:
            for k, v in got.items():
                times[k].append(v)
    same = fingerprint(apps["flash"]) == fingerprint(apps["native"])
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {"runs": args.runs, "median_s": med, "speedup": {k: med["flash"] / v for k, v in med.items() if k != "flash"},
              "same_fingerprint": same, "cpus": os.cpu_count()}
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in med.items():
            extra = "" if k == "flash" else f"  {med['flash'] / v:.2f}x flash"
            print(f"{k:12s} {v:7.2f} s{extra}")
        print("same source_fingerprint:", same)
    if not same:
        sys.exit("fingerprints differ")


if __name__ == "__main__":
    main()

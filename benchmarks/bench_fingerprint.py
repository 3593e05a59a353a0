"""Benchmark: runpod_flash_native.compute_source_fingerprint vs runpod-flash's.

    python benchmarks/bench_fingerprint.py [--runs 7] [--data-dir benchmarks/data] [--output FILE]

Builds (once, deterministically, reused when present) under --data-dir:
  tree/  20,000 files of 1-3 KiB random bytes in 1,000 directories
  big/   one 1 GiB file of random bytes

For each data set and implementation it starts a fresh subprocess that takes
the file list, records its peak RSS (VmHWM), runs one warm-up call and then
--runs timed calls; the median is reported, with the peak RSS growth over the
whole series. Both implementations must return the same digest. A reference
line gives plain single-threaded hashlib SHA-256 over the same framed bytes,
already in memory (the hashing floor of one core). Page cache is warm: the
warm-up call reads every file first.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

SEED = 20240601
TREE_DIRS = 1000
TREE_FILES = 20_000
BIG_SIZE = 1 << 30
HERE = Path(__file__).resolve().parent
REPO = HERE.parent


# ---- data ------------------------------------------------------------------------------


def build_tree(root: Path) -> None:
    stamp = root / ".complete"
    spec = f"seed={SEED} dirs={TREE_DIRS} files={TREE_FILES}\n"
    if stamp.exists() and stamp.read_text() == spec:
        return
    rng = random.Random(SEED)
    for i in range(TREE_FILES):
        d = root / f"pkg{i % TREE_DIRS:04d}"
        if i < TREE_DIRS:
            d.mkdir(parents=True, exist_ok=True)
        (d / f"mod{i // TREE_DIRS:02d}.py").write_bytes(rng.randbytes(rng.randint(1024, 3072)))
    stamp.write_text(spec)


def build_big(root: Path) -> None:
    stamp = root / ".complete"
    spec = f"seed={SEED} size={BIG_SIZE}\n"
    if stamp.exists() and stamp.read_text() == spec:
        return
    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(SEED + 1)
    with open(root / "weights.bin", "wb") as fh:
        for _ in range(BIG_SIZE // (16 << 20)):
            fh.write(rng.randbytes(16 << 20))
    stamp.write_text(spec)


def dataset_files(data_dir: Path, name: str) -> tuple[Path, list[Path]]:
    root = data_dir / name
    return root, sorted(p for p in root.rglob("*") if p.is_file() and p.name != ".complete")


# ---- measurement (in a fresh subprocess per implementation and data set) ------------------


def vm_hwm_bytes() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def worker(impl: str, data_dir: Path, name: str, runs: int) -> dict:
    root, files = dataset_files(data_dir, name)
    if impl == "flash":
        from runpod_flash.cli.commands.build import compute_source_fingerprint as fn
    elif impl == "native":
        from runpod_flash_native import compute_source_fingerprint as fn
    elif impl == "hashlib":
        # The framed stream, in memory, hashed by one hashlib.sha256 object.
        blob = bytearray()
        for f in sorted(files, key=lambda p: p.relative_to(root).as_posix()):
            rel = f.relative_to(root).as_posix().encode()
            data = f.read_bytes()
            blob += len(rel).to_bytes(8, "big") + rel + len(data).to_bytes(8, "big") + data
        blob = bytes(blob)

        def fn(_root, _files):
            return hashlib.sha256(blob).hexdigest()
    else:
        raise SystemExit(f"unknown implementation {impl}")
    hwm_before = vm_hwm_bytes()
    digest = fn(root, files)  # warm-up: page cache, imports, allocator
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        d = fn(root, files)
        times.append(time.perf_counter() - t0)
        assert d == digest
    out = {"digest": digest, "times": times, "median": statistics.median(times),
           "peak_rss_growth": vm_hwm_bytes() - hwm_before}
    if impl == "hashlib":
        out["bytes"] = len(blob)
        out["peak_rss_growth"] = None  # the blob itself is the input, not a cost
    return out


def measure(impl: str, data_dir: Path, name: str, runs: int) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--worker", impl, name,
         "--data-dir", str(data_dir), "--runs", str(runs)],
        env=env, capture_output=True, text=True, check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"worker {impl}/{name} failed:\n{proc.stderr}")
    return json.loads(proc.stdout)


# ---- report ----------------------------------------------------------------------------


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return (f"{model}, {os.cpu_count()} cores, {os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') >> 30} GiB RAM, "
            f"Linux {platform.release()}, Python {platform.python_version()}")


def mib(n) -> str:
    return "n/a" if n is None else f"{n / (1 << 20):.1f} MiB"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=7, help="timed runs after one warm-up (>= 5)")
    ap.add_argument("--data-dir", type=Path, default=HERE / "data")
    ap.add_argument("--output", type=Path, help="also write the markdown report here")
    ap.add_argument("--worker", nargs=2, metavar=("IMPL", "DATASET"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], args.data_dir, args.worker[1], args.runs)))
        return
    if args.runs < 5:
        ap.error("--runs must be at least 5")

    t_start = time.perf_counter()
    build_tree(args.data_dir / "tree")
    build_big(args.data_dir / "big")
    t_data = time.perf_counter() - t_start

    from importlib.metadata import version

    lines = [
        "# compute_source_fingerprint benchmark",
        "",
        f"Command: `{shlex.join(['python', 'benchmarks/bench_fingerprint.py', *sys.argv[1:]])}`",
        "",
        f"Machine: {machine()}",
        "",
        f"runpod-flash {version('runpod-flash')}; median of {args.runs} runs after one warm-up, "
        "warm page cache; each implementation in its own fresh subprocess; "
        "peak RSS growth = VmHWM after the series minus VmHWM before the first call.",
        "",
        "| data set | flash | native | speed-up | flash peak RSS growth | native peak RSS growth |"
        " hashlib SHA-256, in memory, 1 thread |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    datasets = {"tree": f"{TREE_FILES:,} files (1-3 KiB) in {TREE_DIRS:,} dirs",
                "big": "one 1 GiB file"}
    for name, label in datasets.items():
        res = {impl: measure(impl, args.data_dir, name, args.runs) for impl in ("flash", "native", "hashlib")}
        digests = {impl: r["digest"] for impl, r in res.items()}
        if len(set(digests.values())) != 1:
            raise SystemExit(f"digests differ on {name}: {digests}")
        f, n, h = res["flash"], res["native"], res["hashlib"]
        lines.append(
            f"| {label} | {f['median'] * 1000:.1f} ms | {n['median'] * 1000:.1f} ms | "
            f"{f['median'] / n['median']:.2f}x | {mib(f['peak_rss_growth'])} | {mib(n['peak_rss_growth'])} | "
            f"{h['median'] * 1000:.1f} ms ({h['bytes'] / h['median'] / 1e9:.2f} GB/s over {mib(h['bytes'])}) |"
        )
        print(f"{name}: flash {f['times']}\n{name}: native {n['times']}\n{name}: hashlib {h['times']}",
              file=sys.stderr)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    lines += ["", f"Total wall time {time.perf_counter() - t_start:.0f} s (data set up: {t_data:.0f} s); "
              f"load average at the end: {load}."]
    report = "\n".join(lines) + "\n"
    print(report)
    if args.output:
        args.output.write_text(report)


if __name__ == "__main__":
    main()

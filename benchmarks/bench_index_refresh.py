"""What keeping .flash/source_index.json current adds to `flash-native build`.

    python benchmarks/bench_index_refresh.py [--runs 5]

For each project shape: the native fingerprint the build already computes,
and refresh_after_build (one more read of the shipped files, SHA-256 per file
and flash's framing), alternating in one process, medians; then one
`flash-native build` of the small app (no dependencies: the cheapest real
build) to put the refresh beside a whole build.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runpod_flash_native import build, ignore  # noqa: E402
from runpod_flash_native.cli._index import refresh_after_build  # noqa: E402

APP = (
    "from runpod_flash import Endpoint\n\n\n"
    '@Endpoint(name="w", cpu="cpu3c-1-2")\n'
    "async def task(data: dict) -> dict:\n"
    "    return data\n"
)


def make(root: Path, shape: str) -> None:
    root.mkdir(parents=True)
    (root / "worker.py").write_text(APP)
    n = {"small app (6 modules)": 5, "3,000 modules": 3000, "app + 128 MiB weights": 5}[shape]
    (root / "lib").mkdir()
    for i in range(n):
        (root / "lib" / f"m{i}.py").write_text(f"X = {i}\n" + "# pad\n" * 300)
    if "weights" in shape:
        with open(root / "weights.bin", "wb") as fh:
            fh.write(os.urandom(1 << 20) * 128)


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    runs = ap.parse_args().runs
    with tempfile.TemporaryDirectory() as tmp:
        print("| shape | native fingerprint | index refresh | refresh / fingerprint |")
        print("| --- | ---: | ---: | ---: |")
        for shape in ("small app (6 modules)", "3,000 modules", "app + 128 MiB weights"):
            root = Path(tmp) / shape.replace(" ", "_").replace(",", "")
            make(root, shape)
            files = ignore.get_file_tree(root, ignore.load_ignore_patterns(root))
            fp = build.compute_source_fingerprint(root, files)
            refresh_after_build(root, files, fp)  # warm-up
            a, b = [], []
            for _ in range(runs):
                a.append(timed(lambda: build.compute_source_fingerprint(root, files)))
                b.append(timed(lambda: refresh_after_build(root, files, fp)))
            fa, fb = statistics.median(a), statistics.median(b)
            print(f"| {shape} | {fa * 1e3:.1f} ms | {fb * 1e3:.1f} ms | {fb / fa:.2f} |")
        small = Path(tmp) / "small_app_(6_modules)"
        env = dict(os.environ, PYTHONPATH=str(ROOT), FLASH_NO_UPDATE_CHECK="1", HOME=tmp,
                   RUNPOD_FLASH_SILENCE_DEPRECATION="1")
        code = "import sys; from runpod_flash_native.patch.main import main; sys.exit(main(['build']))"
        builds = [timed(lambda: subprocess.run([sys.executable, "-c", code], cwd=small, env=env,
                                               capture_output=True, check=True)) for _ in range(3)]
        print(f"\n`flash-native build` of the small app (no dependencies), median of 3: {statistics.median(builds):.2f} s")


if __name__ == "__main__":
    main()

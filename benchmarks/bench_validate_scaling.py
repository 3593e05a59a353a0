"""flash's import validation (`validate_local_module_imports`) against the
number of modules: flash's own function and flash-native's, on generated apps.

    python benchmarks/bench_validate_scaling.py [--sizes 500,1000,2000] [--shared 0.1] [--markdown]

Each app is "hub-shaped", as apps with a shared package are: N modules in
packages of 10, each importing the package ``common``, whose ``__init__``
imports its modules (N x --shared of them: the shared code grows with the
app). flash walks every shipped file's import closure afresh, so common's
closure is walked once per module: quadratic in N. flash-native walks each
module once. Both answer the same (checked: no
output, no exception). The child then times the rest of flash's project
analysis, the scanner (``RuntimeScanner.discover_remote_functions``: every
module imported, then its AST passes) and ``extract_remote_dependencies``,
whose results must agree too. One process per measurement (a fresh interpreter, no
parse cache from an earlier call), best of --runs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import contextlib, io, json, sys, time
from pathlib import Path
root = Path(sys.argv[1]); impl = sys.argv[2]
import runpod_flash.cli.commands.build as build
from runpod_flash.cli.utils.ignore import get_file_tree, load_ignore_patterns
files = get_file_tree(root, load_ignore_patterns(root))
out = io.StringIO()
build.console.file = out
if impl == "native":
    import runpod_flash_native
    runpod_flash_native.patch_flash()
t0 = time.perf_counter()
build.validate_local_module_imports(files, root)
dt = time.perf_counter() - t0
# the rest of flash's project analysis: the scanner (imports every module,
# then its AST passes) and the requirements' AST pass
from runpod_flash.cli.commands.build_utils.scanner import RuntimeScanner
t1 = time.perf_counter()
found = RuntimeScanner(root).discover_remote_functions()
t2 = time.perf_counter()
deps = build.extract_remote_dependencies(root)
t3 = time.perf_counter()
print(json.dumps({"seconds": dt, "scan": t2 - t1, "requirements": t3 - t2, "output": out.getvalue(),
                  "files": len(files), "found": [f.function_name for f in found], "deps": deps}))
"""


def make_app(root: Path, modules: int, shared: int) -> None:
    root.mkdir(parents=True)
    (root / "common").mkdir()
    (root / "common" / "__init__.py").write_text("".join(f"from . import s{j}\n" for j in range(shared)))
    for j in range(shared):
        (root / "common" / f"s{j}.py").write_text(f"import os\n\n\ndef s{j}(x):\n    return x + {j}\n")
    for i in range(modules):
        pkg = root / f"pkg{i // 10:04d}"
        if not pkg.exists():
            pkg.mkdir()
            (pkg / "__init__.py").write_text("")
        (pkg / f"m{i % 10}.py").write_text(
            f"import common\n\n\ndef f(x):\n    return common.s0.s0(x) + {i}\n"
        )


def measure(root: Path, impl: str, runs: int) -> dict:
    best = None
    for _ in range(runs):
        proc = subprocess.run([sys.executable, "-c", CHILD, str(root), impl], capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"{impl} failed:\n{proc.stderr}")
        r = json.loads(proc.stdout.splitlines()[-1])
        if best is None or r["seconds"] < best["seconds"]:
            best = r
    assert best is not None
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="500,1000,2000")
    ap.add_argument("--shared", type=float, default=0.1, help="common's modules, as a fraction of N")
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="rfn-validate-") as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            root = Path(tmp) / f"app{n}"
            make_app(root, n, max(1, int(n * args.shared)))
            flash = measure(root, "flash", args.runs)
            native = measure(root, "native", args.runs)
            keys = ("output", "files", "found", "deps")
            if [flash[k] for k in keys] != [native[k] for k in keys]:
                sys.exit(f"{n} modules: the answers differ:\n{flash}\n{native}")
            rows.append((n, flash["files"], flash["seconds"], native["seconds"],
                         native["scan"] + native["requirements"]))
            shutil.rmtree(root)
    print(json.dumps([{"modules": n, "files": f, "flash_s": a, "native_s": b, "native_scan_requirements_s": c}
                      for n, f, a, b, c in rows]))
    if args.markdown:
        print("\n| modules | files | validate: flash | flash-native | ratio | per module: flash | flash-native "
              "| flash-native scan + requirements, per module |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for n, f, a, b, c in rows:
            print(f"| {n:,} | {f:,} | {a:.2f} s | {b:.2f} s | {a / b:.1f}× | {a / n * 1e3:.2f} ms "
                  f"| {b / n * 1e3:.3f} ms | {c / n * 1e3:.3f} ms |")


if __name__ == "__main__":
    main()

"""Fingerprint cases T1-T3, T5 and the tree shapes T9-T12: flash's
get_file_tree + compute_source_fingerprint vs fingerprint_project, against
the plain C loop and raw SHA-256 (run.py's docstring describes each case)."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import sys
from pathlib import Path

from harness import (MiB, PlainLoop, PythonImpl, SEED, Serving, ShaRef, interleave, site_packages,
                     data_set, write_random, write_tree)

CASES = ("T1", "T2", "T3", "T5", "T9", "T10", "T11", "T12")
DATA = {"T1": "t1", "T2": "t2", "T3": "t3", "T5": "t1", "T9": "t9", "T10": "t10", "T11": "t11", "T12": "t12"}
SHAPE_CASES = ("T9", "T10", "T11", "T12")  # tree shapes (issue 11): also get_file_tree alone

T1_DIRS, T1_FILES, T1_VENV_DIRS, T1_VENV_FILES = 1000, 20_000, 100, 3000
T2_SIZE = 1 << 30
T3_DIRS, T3_FILES = 1000, 100_000
T9_DIRS, T9_VENV = 15_000, 2000
T10_FILES = 20_000
T12_DEPTH = 2000


# ---- data -------------------------------------------------------------------------------


@data_set(lambda: f"T1 seed={SEED} dirs={T1_DIRS} files={T1_FILES} venv={T1_VENV_DIRS}/{T1_VENV_FILES}\n")
def build_t1(root: Path) -> None:
    rng = random.Random(SEED)
    write_tree(root, rng, T1_DIRS, T1_FILES, 1024, 3072,
                lambda d: f"pkg{d:04d}", lambda f: f"mod{f:02d}.py")
    site = root / ".venv" / "lib" / "python3.11" / "site-packages"
    write_tree(site, rng, T1_VENV_DIRS, T1_VENV_FILES, 1024, 3072,
                lambda d: f"dep{d:03d}", lambda f: f"m{f:02d}.py")


HANDLER = b'''import runpod


def handler(job):
    return {"output": job["input"]}


runpod.serverless.start({"handler": handler})
'''


@data_set(lambda: f"T2 seed={SEED} size={T2_SIZE}\n")
def build_t2(root: Path) -> None:
    rng = random.Random(SEED + 2)
    write_random(root / "weights.bin", rng, T2_SIZE, 16 * MiB)
    (root / "handler.py").write_bytes(HANDLER)


@data_set(lambda: f"T3 seed={SEED} dirs={T3_DIRS} files={T3_FILES}\n")
def build_t3(root: Path) -> None:
    rng = random.Random(SEED + 3)
    write_tree(root, rng, T3_DIRS, T3_FILES, 512, 2048,
                lambda d: f"d{d // 100:02d}/s{d % 100:02d}", lambda f: f"f{f:03d}.py")


@data_set(lambda: f"T9 seed={SEED} dirs={T9_DIRS} venv={T9_VENV}\n")
def build_t9(root: Path) -> None:
    rng = random.Random(SEED)
    for i in range(T9_DIRS):
        d = root / f"p{i // 100:03}" / f"d{i % 100:02}"
        d.mkdir(parents=True)
        (d / f"m{i}.py").write_bytes(rng.randbytes(rng.randint(512, 4096)))
    (root / ".gitignore").write_text(".venv/\n")
    for i in range(T9_VENV):
        d = root / ".venv" / "lib" / f"x{i // 20:03}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i}.py").write_bytes(rng.randbytes(256))


@data_set(lambda: f"T10 seed={SEED} files={T10_FILES}\n")
def build_t10(root: Path) -> None:
    rng = random.Random(SEED)
    for i in range(T10_FILES):
        (root / f"f{i:05}.py").write_bytes(rng.randbytes(rng.randint(512, 4096)))


@data_set(lambda: f"T11 site={site_packages()}\n")
def build_t11(root: Path) -> None:
    shutil.copytree(site_packages(), root, symlinks=True, dirs_exist_ok=True)


@data_set(lambda: f"T12 seed={SEED} depth={T12_DEPTH}\n")
def build_t12(root: Path) -> None:
    rng = random.Random(SEED)
    d = root
    for _ in range(T12_DEPTH):
        d = d / "d"
        d.mkdir(parents=True)
        (d / "f.py").write_bytes(rng.randbytes(rng.randint(512, 2048)))


BUILDERS = {"t1": build_t1, "t2": build_t2, "t3": build_t3, "t9": build_t9, "t10": build_t10,
            "t11": build_t11, "t12": build_t12}


# ---- implementations (run inside a worker process) ----------------------------------------


def fingerprint_impl(impl: str):
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 4 * T12_DEPTH))  # flash recurses per level
    if impl == "flash_tree":
        from runpod_flash.cli.utils.ignore import get_file_tree, load_ignore_patterns
        return lambda d: get_file_tree(d, load_ignore_patterns(d))
    if impl == "native_tree":
        from runpod_flash_native.ignore import get_file_tree, load_ignore_patterns
        return lambda d: get_file_tree(d, load_ignore_patterns(d))
    if impl == "flash":
        from runpod_flash.cli.commands.build import compute_source_fingerprint
        from runpod_flash.cli.utils.ignore import get_file_tree, load_ignore_patterns

        def fn(d: Path) -> str:
            return compute_source_fingerprint(d, get_file_tree(d, load_ignore_patterns(d)))
        return fn
    if impl == "native":
        from runpod_flash_native import fingerprint_project
        return fingerprint_project
    raise SystemExit(f"unknown implementation {impl}")


def serving(case: str, impl: str, data_dir: Path, runs: int) -> Serving:
    root = data_dir / DATA[case]
    check = lambda out, a: out  # noqa: E731
    if impl.endswith("_tree"):
        check = lambda out, a: hashlib.sha256("\0".join(map(str, out)).encode()).hexdigest()  # noqa: E731
    return Serving(f"{impl}/{case}", fingerprint_impl(impl), [(root,)] * (runs + 1), check)


# ---- the case ----------------------------------------------------------------------------------


def flash_sorted_list(root: Path) -> tuple[list[tuple[str, str]], int]:
    """Files flash would fingerprint, sorted as flash sorts them, with the
    byte count of the framed stream. Uses flash's own walk."""
    from runpod_flash.cli.utils.ignore import get_file_tree, load_ignore_patterns

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 4 * T12_DEPTH))
    files = get_file_tree(root, load_ignore_patterns(root))
    pairs = sorted((f.relative_to(root).as_posix(), str(f)) for f in files)
    total = sum(16 + len(rel.encode()) + os.stat(path).st_size for rel, path in pairs)
    return [(path, rel) for rel, path in pairs], total


def run_case(case: str, data_dir: Path, tools: dict, runs: int) -> dict:
    root = data_dir / DATA[case]
    listing = data_dir / f"{DATA[case]}.list"
    pairs, nbytes = flash_sorted_list(root)
    listing.write_text("".join(f"{p}\t{r}\n" for p, r in pairs))
    load = os.getloadavg()[0]
    per_run = case == "T1"  # a fresh process per run
    impls = {"flash": PythonImpl(case, "flash", data_dir, runs, per_run),
             "native": PythonImpl(case, "native", data_dir, runs, per_run),
             "plain": PlainLoop(tools["plain_loop"], listing),
             "sha": ShaRef(tools["sha_ref"], nbytes)}
    if case in SHAPE_CASES:
        impls["flash_tree"] = PythonImpl(case, "flash_tree", data_dir, runs, False)
        impls["native_tree"] = PythonImpl(case, "native_tree", data_dir, runs, False)
    res = interleave(impls, runs)
    if case in SHAPE_CASES and res["flash_tree"]["result"] != res["native_tree"]["result"]:
        raise SystemExit(f"{case}: get_file_tree differs")
    digests = {k: v["result"] for k, v in res.items() if "result" in v and not k.endswith("_tree")}
    if len(set(digests.values())) != 1:
        raise SystemExit(f"{case}: digests differ: {digests}")
    res.update(files=len(pairs), bytes=nbytes, load=load)
    return res

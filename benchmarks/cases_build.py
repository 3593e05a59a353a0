"""Build-step cases T6 (flash's create_tarball vs ours) and T7 (flash's
copy_project_files vs ours), each at 1, 2 and all threads."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
from pathlib import Path

from harness import (MiB, PythonImpl, SEED, Serving, data_set, interleave, site_packages,
                     stamp_path, write_random)
from cases_fingerprint import HANDLER

CASES = ("T6", "T7")
DATA = {"T6": "t6", "T7": "t7"}  # T6: archive input, T7: copy input
ARCHIVE_IMPLS = {"flash": None, "native-1": "1", "native-2": "2", "native": None}  # -> THREADS env
T6_PACKAGES = ("numpy", "sympy", "botocore", "jedi", "networkx")  # ~200 MiB, compressible
T6_WEIGHTS = 128 * MiB  # incompressible
T7_PACKAGES, T7_FILES, T7_WEIGHTS = 280, 3000, 256 * MiB


# ---- data -------------------------------------------------------------------------------


def t6_packages() -> tuple[Path, list[str]]:
    """site-packages and which of T6_PACKAGES it holds (at least two)."""
    site = site_packages()
    found = [p for p in T6_PACKAGES if (site / p).is_dir()]
    if len(found) < 2:
        raise SystemExit(f"T6 needs at least two of {', '.join(T6_PACKAGES)} installed in {site}")
    return site, found


def t6_spec() -> str:
    site, found = t6_packages()
    return f"T6 seed={SEED} site={site} packages={','.join(found)} weights={T6_WEIGHTS}\n"


@data_set(t6_spec)
def build_t6(root: Path) -> None:
    """A flash build dir: copies of installed packages (with their
    .dist-info) from this environment plus a weights file of random bytes."""
    site, found = t6_packages()
    for name in found:
        shutil.copytree(site / name, root / name, symlinks=True)
        for info in site.glob(f"{name}-*.dist-info"):
            shutil.copytree(info, root / info.name, symlinks=True)
    (root / "handler.py").write_bytes(HANDLER)
    rng = random.Random(SEED)
    write_random(root / "model.safetensors", rng, T6_WEIGHTS)


@data_set(lambda: f"T7 seed={SEED} packages={T7_PACKAGES} files={T7_FILES} weights={T7_WEIGHTS}\n")
def build_t7(root: Path) -> None:
    """An app to copy: small modules in packages plus one weights file."""
    rng = random.Random(SEED)
    for i in range(T7_FILES):
        p = root / f"pkg{i % T7_PACKAGES:03}" / f"mod{i:04}.py"
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(rng.randbytes(rng.randint(1024, 3072)))
    write_random(root / "weights.bin", rng, T7_WEIGHTS)


BUILDERS = {"t6": build_t6, "t7": build_t7}


# ---- implementations (run inside a worker process) ----------------------------------------


def build_step(impl: str, name: str):
    """flash's or our build-step function `name`; ours with
    RUNPOD_FLASH_NATIVE_THREADS set for impl."""
    if impl == "flash":
        import runpod_flash.cli.commands.build as module
    else:
        import runpod_flash_native.build as module
        threads = ARCHIVE_IMPLS[impl]
        if threads is None:
            os.environ.pop("RUNPOD_FLASH_NATIVE_THREADS", None)
        else:
            os.environ["RUNPOD_FLASH_NATIVE_THREADS"] = threads
    return getattr(module, name)


def archive_impl(impl: str):
    create_tarball = build_step(impl, "create_tarball")

    def fn(build_dir: Path, out: Path) -> None:
        create_tarball(build_dir, out, "bench")
    return fn


def archive_digest(path: Path) -> tuple[str, int]:
    """SHA-256 of the decompressed tar stream (one gzip member) and the size."""
    import zlib

    d, h = zlib.decompressobj(31), hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(MiB):
            h.update(d.decompress(chunk))
    if not d.eof or d.unused_data:
        raise SystemExit(f"{path}: not exactly one gzip member")
    return h.hexdigest(), path.stat().st_size


def copy_impl(impl: str):
    return build_step(impl, "copy_project_files")


def copy_digest(dest: Path) -> str:
    """SHA-256 over every copied file's path, content, mode, mtime_ns and
    user xattrs (what copy2 copies), in sorted path order."""
    h = hashlib.sha256()
    for p in sorted(q for q in dest.rglob("*") if q.is_file()):
        st = p.stat()
        h.update(f"{p.relative_to(dest)}\0{st.st_mode}\0{st.st_mtime_ns}\0".encode())
        for name in sorted(n for n in os.listxattr(p) if n.startswith("user.")):
            h.update(name.encode() + b"=" + os.getxattr(p, name))
        with open(p, "rb") as fh:
            while chunk := fh.read(MiB):
                h.update(chunk)
    return h.hexdigest()


def serving(case: str, impl: str, data_dir: Path, runs: int) -> Serving:
    if case == "T6":
        out_dir = data_dir / "t6.out"
        out_dir.mkdir(exist_ok=True)
        inputs = [(data_dir / "t6", out_dir / f"{impl}.tar.gz")] * (runs + 1)

        def final(outs: list) -> dict:
            digest, size = archive_digest(inputs[0][1])
            return {"result": digest, "size": size}
        return Serving(f"{impl}/{case}", archive_impl(impl), inputs, final=final)
    root = data_dir / "t7"
    out_dir = data_dir / "t7.out" / impl
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name != stamp_path(root).name)
    # a fresh destination per call; the weights copy is removed after
    # each call (untimed) so that the page cache holds one at a time
    inputs = [(files, root, out_dir / f"run{k}") for k in range(runs + 1)]
    digest = []

    def after(k: int, args: tuple) -> None:
        if k == 1:  # the copy is checked once
            digest.append(copy_digest(args[2]))
        (args[2] / "weights.bin").unlink()

    def final_copy(outs: list) -> dict:
        shutil.rmtree(out_dir)
        return {"result": digest[0]}
    return Serving(f"{impl}/{case}", copy_impl(impl), inputs, after=after, final=final_copy)


# ---- the cases ------------------------------------------------------------------------------


def run_case(case: str, data_dir: Path, tools: dict, runs: int) -> dict:
    root = data_dir / DATA[case]
    nbytes = sum(e.stat(follow_symlinks=False).st_size for e in root.rglob("*"))
    load = os.getloadavg()[0]
    res = interleave({impl: PythonImpl(case, impl, data_dir, runs, False) for impl in ARCHIVE_IMPLS}, runs)
    digests = {k: v["result"] for k, v in res.items()}
    if len(set(digests.values())) != 1:
        raise SystemExit(f"{case}: {'copies' if case == 'T7' else 'decompressed tar streams'} differ: {digests}")
    res.update(files=sum(1 for _ in root.rglob("*")), bytes=nbytes, load=load)
    return res

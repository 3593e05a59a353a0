"""All benchmarks of runpod_flash_native against runpod-flash, in one command.

    python benchmarks/run.py [--runs 7] [--cases T1,T2,...,T12] [--e2e-runs 3]
                             [--data-dir benchmarks/data] [--output benchmarks/RESULTS.md]

Cases (inputs generated deterministically under --data-dir, git-ignored, and
reused while their recipe is unchanged):

  T1  20,000 files of 1-3 KiB in 1,000 directories, plus 3,000 files under an
      ignored .venv/: walk + ignore matching + fingerprint, the first call in
      a fresh process (one process per run)
  T2  one 1 GiB file plus a small handler.py: walk + fingerprint
  T3  100,000 files of 0.5-2 KiB in 1,000 directories: walk + fingerprint
  T4  a reconciliation plan over 1,000 resources (env dicts, gpu lists,
      nested network volumes; benchmarks/bench_plan.py's "mixed" scenario:
      20 new, 100 changed, 880 reused): flash's deploy comparison loop vs
      runpod_flash_native.deployment.plan_reconciliation + apply_reuse
  T5  re-fingerprinting T1 unchanged: repeated calls in one process
  T6  flash build's archive step on a build dir = copies of numpy, sympy,
      botocore, jedi, networkx (+ .dist-info) from this environment (~200 MiB)
      plus 128 MiB of random "weights": flash's create_tarball vs
      runpod_flash_native.build.create_tarball at 1, 2 and all threads
      (RUNPOD_FLASH_NATIVE_THREADS); the decompressed tar streams must be
      identical; archive sizes are recorded
  T7  flash build's copy step: 3,000 files of 1-3 KiB in 280 packages plus
      one 256 MiB weights file copied into a fresh destination directory per
      run: flash's copy_project_files (shutil.copy2 per file) vs
      runpod_flash_native.build.copy_project_files at 1, 2 and all threads;
      the copies (content, mode, mtime_ns, xattrs) must be identical
  T8  end to end: `flash build` vs `flash-native build` of benchmarks/
      bench_build.py's generated app (3,000 modules in 280 packages, a
      worker with three endpoints, 256 MiB of weights), alternating, in
      directories of the same name, flash-native at 1, 2 and all threads;
      --e2e-runs rounds after a warm-up (each build is a process of its own:
      ~20 s); the two builds' source_fingerprint must be equal
  T9  one file per directory: 15,000 directories (150 x 100) holding one
      0.5-4 KiB file each, plus 2,000 files under an ignored .venv/
  T10 one directory of 20,000 files of 0.5-4 KiB
  T11 a copy of this environment's installed site-packages
  T12 a chain 2,000 directories deep, one 0.5-2 KiB file per level (flash
      recurses once per level: its recursion limit is raised for it)
  T9-T12 also time get_file_tree alone, flash's vs ours ("tree" rows).

Implementations, each in its own process (so peak RSS growth is its own):
"flash" is the installed runpod-flash (get_file_tree(d,
load_ignore_patterns(d)) + compute_source_fingerprint(d, files), or the
comparison loop of reconcile_and_provision_resources); "native" is
runpod_flash_native.fingerprint_project(d) (walk, match, read and SHA-256 in
C). References for the physical limit, both compiled here from benchmarks/*.c
into <data-dir>/bin with `cc -O2 ... -lcrypto` (or -l:libcrypto.so.3):

  plain C loop  benchmarks/plain_loop.c: one thread opens, reads and hashes
                the pre-sorted list of the files flash selects (the list is
                built by this script with flash's own get_file_tree); same
                framed byte stream, so its digest must equal flash's
  SHA-256       benchmarks/sha_ref.c: single-core OpenSSL EVP SHA-256 over an
                in-memory buffer of the same byte count (no I/O)

Every timing is the median of --runs runs after one warm-up round (page cache
warm). The runs are interleaved: each round runs every implementation and
reference of the case once, in an order rotating from round to round, so load
from elsewhere on the machine hits all of them alike. All digests (T4: the
decisions and the resulting manifests) must agree. Peak RSS growth = VmHWM
after the last call minus VmHWM before the first one, in the implementation's
own process (T1: the largest over its per-run processes).
"""

from __future__ import annotations

import argparse
import copy
import gc
import hashlib
import json
import os
import platform
import random
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SEED = 20240601
CASES = ("T1", "T2", "T3", "T4", "T5", "T6", "T7", "T8", "T9", "T10", "T11", "T12")
FINGERPRINT_DATA = {"T1": "t1", "T2": "t2", "T3": "t3", "T5": "t1", "T6": "t6", "T7": "t7",
                    "T9": "t9", "T10": "t10", "T11": "t11", "T12": "t12"}
SHAPE_CASES = ("T9", "T10", "T11", "T12")  # tree shapes (issue 11): also get_file_tree alone  # T6: archive input, T7: copy input
ARCHIVE_IMPLS = {"flash": None, "native-1": "1", "native-2": "2", "native": None}  # -> THREADS env
MiB = 1 << 20
ANALYSIS_MARKER = "<!-- analysis: hand-written, kept by run.py -->"

T1_DIRS, T1_FILES, T1_VENV_DIRS, T1_VENV_FILES = 1000, 20_000, 100, 3000
T2_SIZE = 1 << 30
T3_DIRS, T3_FILES = 1000, 100_000
T4_RESOURCES, T4_SCENARIO = 1000, "mixed"  # bench_plan.py's manifests

TARGETS = {  # the targets; verdicts() checks them
    "T1": "≥ 8× faster than flash; no slower than the plain C loop",
    "T2": "≥ 5× faster than flash; ≤ 1.1× raw SHA-256 time; RSS growth ≤ 16 MiB",
    "T4": "≥ 10× faster than flash's loop",
    "T6": "≥ 4× faster than flash's create_tarball; archive ≤ 1.01× flash's size",
    "T7": "faster than flash's copy_project_files; identical copies",
    "T8": "flash-native build ≥ 2× faster than flash build end to end; same source_fingerprint",
    **{c: "≤ 1.0× the plain loop's wall; ≥ 8× flash where the loop is; CPU ≤ 1.3× the loop's; "
          "get_file_tree ≥ 5× flash's" for c in ("T9", "T10", "T11", "T12")},
}


# ---- data -------------------------------------------------------------------------------


def _stamp_path(root: Path) -> Path:
    # Next to the data set, not in it: it must not be fingerprinted.
    return root.with_name(root.name + ".complete")


def _stamped(root: Path, spec: str) -> bool:
    stamp = _stamp_path(root)
    return stamp.exists() and stamp.read_text() == spec


def _stamp(root: Path, spec: str) -> None:
    _stamp_path(root).write_text(spec)


def _write_tree(root: Path, rng: random.Random, dirs: int, files: int, lo: int, hi: int,
                dir_name, file_name) -> None:
    for i in range(files):
        d = root / dir_name(i % dirs)
        if i < dirs:
            d.mkdir(parents=True, exist_ok=True)
        (d / file_name(i // dirs)).write_bytes(rng.randbytes(rng.randint(lo, hi)))


def build_t1(root: Path) -> None:
    spec = f"T1 seed={SEED} dirs={T1_DIRS} files={T1_FILES} venv={T1_VENV_DIRS}/{T1_VENV_FILES}\n"
    if _stamped(root, spec):
        return
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    rng = random.Random(SEED)
    _write_tree(root, rng, T1_DIRS, T1_FILES, 1024, 3072,
                lambda d: f"pkg{d:04d}", lambda f: f"mod{f:02d}.py")
    site = root / ".venv" / "lib" / "python3.11" / "site-packages"
    _write_tree(site, rng, T1_VENV_DIRS, T1_VENV_FILES, 1024, 3072,
                lambda d: f"dep{d:03d}", lambda f: f"m{f:02d}.py")
    _stamp(root, spec)


HANDLER = b'''import runpod


def handler(job):
    return {"output": job["input"]}


runpod.serverless.start({"handler": handler})
'''


def build_t2(root: Path) -> None:
    spec = f"T2 seed={SEED} size={T2_SIZE}\n"
    if _stamped(root, spec):
        return
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    rng = random.Random(SEED + 2)
    with open(root / "weights.bin", "wb") as fh:
        for _ in range(T2_SIZE // (16 * MiB)):
            fh.write(rng.randbytes(16 * MiB))
    (root / "handler.py").write_bytes(HANDLER)
    _stamp(root, spec)


def build_t3(root: Path) -> None:
    spec = f"T3 seed={SEED} dirs={T3_DIRS} files={T3_FILES}\n"
    if _stamped(root, spec):
        return
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    rng = random.Random(SEED + 3)
    _write_tree(root, rng, T3_DIRS, T3_FILES, 512, 2048,
                lambda d: f"d{d // 100:02d}/s{d % 100:02d}", lambda f: f"f{f:03d}.py")
    _stamp(root, spec)


T6_PACKAGES = ("numpy", "sympy", "botocore", "jedi", "networkx")  # ~200 MiB, compressible
T6_WEIGHTS = 128 * MiB  # incompressible


def _site_packages() -> Path:
    import sysconfig

    return Path(sysconfig.get_paths()["purelib"])


def build_t6(root: Path) -> None:
    """A flash build dir: copies of installed packages (with their
    .dist-info) from this environment plus a weights file of random bytes."""
    site = _site_packages()
    found = [p for p in T6_PACKAGES if (site / p).is_dir()]
    if len(found) < 2:
        raise SystemExit(f"T6 needs at least two of {', '.join(T6_PACKAGES)} installed in {site}")
    spec = f"T6 seed={SEED} site={site} packages={','.join(found)} weights={T6_WEIGHTS}\n"
    if _stamped(root, spec):
        return
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    for name in found:
        shutil.copytree(site / name, root / name, symlinks=True)
        for info in site.glob(f"{name}-*.dist-info"):
            shutil.copytree(info, root / info.name, symlinks=True)
    (root / "handler.py").write_bytes(HANDLER)
    rng = random.Random(SEED)
    with open(root / "model.safetensors", "wb") as fh:
        for _ in range(T6_WEIGHTS // MiB):
            fh.write(rng.randbytes(MiB))
    _stamp(root, spec)


T7_PACKAGES, T7_FILES, T7_WEIGHTS = 280, 3000, 256 * MiB


def build_t7(root: Path) -> None:
    """An app to copy: small modules in packages plus one weights file."""
    spec = f"T7 seed={SEED} packages={T7_PACKAGES} files={T7_FILES} weights={T7_WEIGHTS}\n"
    if _stamped(root, spec):
        return
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    rng = random.Random(SEED)
    for i in range(T7_FILES):
        p = root / f"pkg{i % T7_PACKAGES:03}" / f"mod{i:04}.py"
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(rng.randbytes(rng.randint(1024, 3072)))
    with open(root / "weights.bin", "wb") as fh:
        for _ in range(T7_WEIGHTS // MiB):
            fh.write(rng.randbytes(MiB))
    _stamp(root, spec)


def copy_impl(impl: str):
    if impl == "flash":
        from runpod_flash.cli.commands.build import copy_project_files
    else:
        from runpod_flash_native.build import copy_project_files
        threads = ARCHIVE_IMPLS[impl]
        if threads is None:
            os.environ.pop("RUNPOD_FLASH_NATIVE_THREADS", None)
        else:
            os.environ["RUNPOD_FLASH_NATIVE_THREADS"] = threads
    return copy_project_files


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


T9_DIRS, T9_VENV = 15_000, 2000
T10_FILES = 20_000
T12_DEPTH = 2000


def build_t9(root: Path) -> None:
    spec = f"T9 seed={SEED} dirs={T9_DIRS} venv={T9_VENV}\n"
    if _stamped(root, spec):
        return
    shutil.rmtree(root, ignore_errors=True)
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
    _stamp(root, spec)


def build_t10(root: Path) -> None:
    spec = f"T10 seed={SEED} files={T10_FILES}\n"
    if _stamped(root, spec):
        return
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    rng = random.Random(SEED)
    for i in range(T10_FILES):
        (root / f"f{i:05}.py").write_bytes(rng.randbytes(rng.randint(512, 4096)))
    _stamp(root, spec)


def build_t11(root: Path) -> None:
    site = _site_packages()
    spec = f"T11 site={site}\n"
    if _stamped(root, spec):
        return
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(site, root, symlinks=True)
    _stamp(root, spec)


def build_t12(root: Path) -> None:
    spec = f"T12 seed={SEED} depth={T12_DEPTH}\n"
    if _stamped(root, spec):
        return
    shutil.rmtree(root, ignore_errors=True)
    rng = random.Random(SEED)
    d = root
    for _ in range(T12_DEPTH):
        d = d / "d"
        d.mkdir(parents=True)
        (d / "f.py").write_bytes(rng.randbytes(rng.randint(512, 2048)))
    _stamp(root, spec)


BUILDERS = {"t9": build_t9, "t10": build_t10, "t11": build_t11, "t12": build_t12, "t1": build_t1, "t2": build_t2, "t3": build_t3, "t6": build_t6, "t7": build_t7}


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


def archive_impl(impl: str):
    if impl == "flash":
        from runpod_flash.cli.commands.build import create_tarball
    else:
        from runpod_flash_native.build import create_tarball
        threads = ARCHIVE_IMPLS[impl]
        if threads is None:
            os.environ.pop("RUNPOD_FLASH_NATIVE_THREADS", None)
        else:
            os.environ["RUNPOD_FLASH_NATIVE_THREADS"] = threads

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


def plan_impl(impl: str):
    """T4 reuses benchmarks/bench_plan.py: its manifests, flash's loop, ours."""
    import bench_plan  # imports runpod_flash.cli.utils.deployment and ours up front

    return {"flash": bench_plan.flash_loop, "native": bench_plan.ours}[impl]


# ---- measurement ------------------------------------------------------------------------------


def vm_hwm_bytes() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _timed(fn, *args):
    gc.collect()  # not timed: start every call with the same heap
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0, time.process_time() - c0


def serve(case: str, impl: str, data_dir: Path, runs: int) -> None:
    """Worker process: set up (imports, inputs), print "ready", then one call
    per line on stdin, answering {"t": wall s, "cpu": s}. At EOF: the peak RSS
    growth over all calls and the (checked) result."""
    if case == "T7":
        fn = copy_impl(impl)
        root = data_dir / "t7"
        out_dir = data_dir / "t7.out" / impl
        shutil.rmtree(out_dir, ignore_errors=True)
        out_dir.mkdir(parents=True)
        files = sorted(p for p in root.rglob("*") if p.is_file() and p.name != _stamp_path(root).name)
        # a fresh destination per call; the weights copy is removed after
        # each call (untimed) so that the page cache holds one at a time
        inputs = [(files, root, out_dir / f"run{k}") for k in range(runs + 1)]
        check = lambda out, a: None  # noqa: E731 - the copy is checked once, below
    elif case == "T6":
        fn = archive_impl(impl)
        out_dir = data_dir / "t6.out"
        out_dir.mkdir(exist_ok=True)
        inputs = [(data_dir / "t6", out_dir / f"{impl}.tar.gz")] * (runs + 1)
        check = lambda out, a: None  # noqa: E731 - the archive is checked once, below
    elif case == "T4":
        import bench_plan

        fn = plan_impl(impl)
        local, state = bench_plan.manifests(T4_RESOURCES, T4_SCENARIO)
        inputs = [(copy.deepcopy(local), state) for _ in range(runs + 1)]  # fn mutates local only
        check = lambda out, a: json.dumps([out, a[0]], sort_keys=True)  # noqa: E731
    else:
        fn = fingerprint_impl(impl)
        root = data_dir / FINGERPRINT_DATA[case]
        inputs = [(root,)] * (runs + 1)
        check = lambda out, a: out  # noqa: E731
        if impl.endswith("_tree"):
            check = lambda out, a: hashlib.sha256("\0".join(map(str, out)).encode()).hexdigest()  # noqa: E731
    hwm_before = vm_hwm_bytes()
    outs = []
    print("ready", flush=True)
    for _line in sys.stdin:
        args = inputs[len(outs)]
        out, t, c = _timed(fn, *args)
        outs.append((out, args))
        if case == "T7":
            if len(outs) == 1:
                t7_digest = copy_digest(args[2])
            (args[2] / "weights.bin").unlink()
        print(json.dumps({"t": t, "cpu": c}), flush=True)
    rss_growth = vm_hwm_bytes() - hwm_before
    if case == "T7":
        shutil.rmtree(data_dir / "t7.out" / impl)
        print(json.dumps({"result": t7_digest, "rss_growth": rss_growth}), flush=True)
        return
    if case == "T6":
        digest, size = archive_digest(inputs[0][1])
        print(json.dumps({"result": digest, "rss_growth": rss_growth, "size": size}), flush=True)
        return
    # Checked after the peak RSS is read: serialising results is not the
    # implementation's cost.
    results = {check(out, a) for out, a in outs}
    if len(results) != 1:
        raise SystemExit(f"{impl}/{case}: result changed between calls")
    result = results.pop()
    if case == "T4":
        result = hashlib.sha256(result.encode()).hexdigest()  # plan + resulting manifest
    print(json.dumps({"result": result, "rss_growth": rss_growth}), flush=True)


class Served:
    """A measured program kept alive between its runs: one line in, one line
    out, so that the runs of all implementations can be interleaved."""

    def __init__(self, name: str, cmd: list[str], env: dict | None = None):
        self.name = name
        self.err = tempfile.TemporaryFile("w+")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.err, text=True, env=env)
        if self._line() != "ready":
            self._fail("did not start")

    def _fail(self, what: str):
        self.proc.kill()
        self.err.seek(0)
        raise SystemExit(f"{self.name} {what}:\n{self.err.read()}")

    def _line(self) -> str:
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            self._fail(f"exited with {self.proc.returncode}")
        return line.strip()

    def run(self) -> str:
        self.proc.stdin.write("run\n")
        self.proc.stdin.flush()
        return self._line()

    def close(self) -> str:
        self.proc.stdin.close()
        rest = self.proc.stdout.read().strip()
        if self.proc.wait() != 0:
            self._fail(f"exited with {self.proc.returncode}")
        self.err.close()
        return rest


def python_worker(case: str, impl: str, data_dir: Path, runs: int) -> Served:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--serve", case, impl,
           "--data-dir", str(data_dir), "--runs", str(runs)]
    return Served(f"{impl}/{case}", cmd, env)


class PythonImpl:
    """flash or ours. fresh: a new process per run (T1), else one process."""

    def __init__(self, case: str, impl: str, data_dir: Path, runs: int, fresh: bool):
        self.args = (case, impl, data_dir, runs)
        self.fresh = fresh
        self.times, self.cpu, self.finals = [], [], []
        self.worker = None if fresh else python_worker(*self.args)

    def run(self) -> None:
        w = python_worker(*self.args) if self.fresh else self.worker
        r = json.loads(w.run())
        self.times.append(r["t"])
        self.cpu.append(r["cpu"])
        if self.fresh:
            self.finals.append(json.loads(w.close()))

    def finish(self) -> dict:
        if not self.fresh:
            self.finals.append(json.loads(self.worker.close()))
        else:
            self.finals = self.finals[1:]  # the warm-up process
        results = {f["result"] for f in self.finals}
        if len(results) != 1:
            raise SystemExit(f"{self.args[1]}/{self.args[0]}: result changed between runs")
        return {"result": results.pop(), "times": self.times[1:], "cpu": self.cpu[1:],
                "rss_growth": max(f["rss_growth"] for f in self.finals),
                "size": self.finals[-1].get("size")}


class PlainLoop:
    def __init__(self, exe: Path, listing: Path):
        self.w = Served("plain_loop", [str(exe), str(listing)])
        self.times, self.cpu, self.digests = [], [], set()

    def run(self) -> None:
        digest, t, c = self.w.run().split()
        self.digests.add(digest)
        self.times.append(float(t))
        self.cpu.append(float(c))

    def finish(self) -> dict:
        self.w.close()
        if len(self.digests) != 1:
            raise SystemExit("plain_loop: digest changed between passes")
        return {"result": self.digests.pop(), "times": self.times[1:], "cpu": self.cpu[1:]}


class ShaRef:
    def __init__(self, exe: Path, nbytes: int):
        self.w = Served("sha_ref", [str(exe), str(nbytes)])
        self.times, self.cpu, self.nbytes = [], [], nbytes

    def run(self) -> None:
        t, c = self.w.run().split()
        self.times.append(float(t))
        self.cpu.append(float(c))

    def finish(self) -> dict:
        self.w.close()
        return {"times": self.times[1:], "cpu": self.cpu[1:], "bytes": self.nbytes}


def interleave(impls: dict, runs: int) -> dict:
    """One warm-up round, then `runs` rounds; every round runs each
    implementation once, the order rotating from round to round, so that load
    from elsewhere on the machine falls on all of them alike."""
    names = list(impls)
    for k in range(runs + 1):
        for name in names[k % len(names):] + names[:k % len(names)]:
            impls[name].run()
    out = {}
    for name, impl in impls.items():
        r = impl.finish()
        r["median"] = statistics.median(r["times"])
        if "cpu" in r:
            r["cpu_median"] = statistics.median(r["cpu"])
        out[name] = r
    return out


# ---- references: plain C loop, OpenSSL SHA-256 ------------------------------------------


def build_tools(data_dir: Path) -> dict[str, Path]:
    cc = os.environ.get("CC", "cc")
    out = {}
    bindir = data_dir / "bin"
    bindir.mkdir(parents=True, exist_ok=True)
    for name in ("plain_loop", "sha_ref"):
        src, exe = HERE / f"{name}.c", bindir / name
        newest = max(src.stat().st_mtime, (HERE / "bench_serve.h").stat().st_mtime)
        if not exe.exists() or exe.stat().st_mtime < newest:
            # -lcrypto needs libssl-dev's libcrypto.so; the runtime library
            # alone (libssl3) is linked by its file name, as setup.py does.
            base = [cc, "-O2", "-o", str(exe), str(src)]
            if subprocess.run(base + ["-lcrypto"], stderr=subprocess.DEVNULL).returncode != 0:
                subprocess.run(base + ["-l:libcrypto.so.3"], check=True)
        out[name] = exe
    return out


def flash_sorted_list(root: Path) -> tuple[list[tuple[str, str]], int]:
    """Files flash would fingerprint, sorted as flash sorts them, with the
    byte count of the framed stream. Uses flash's own walk."""
    from runpod_flash.cli.utils.ignore import get_file_tree, load_ignore_patterns

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 4 * T12_DEPTH))
    files = get_file_tree(root, load_ignore_patterns(root))
    pairs = sorted((f.relative_to(root).as_posix(), str(f)) for f in files)
    total = sum(16 + len(rel.encode()) + os.stat(path).st_size for rel, path in pairs)
    return [(path, rel) for rel, path in pairs], total


def openssl_speed() -> str:
    """`openssl speed` cross-check of sha_ref's throughput (16 KiB blocks, EVP)."""
    try:
        out = subprocess.run(["openssl", "speed", "-bytes", "16384", "-seconds", "3", "-evp", "sha256"],
                             capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "n/a"
    for line in out.splitlines():
        if line.startswith("sha256"):
            return f"{float(line.split()[-1].rstrip('k')) * 1000 / 1e9:.2f} GB/s"
    return "n/a"


# ---- cases ----------------------------------------------------------------------------------


def run_fingerprint_case(case: str, data_dir: Path, tools: dict, runs: int) -> dict:
    root = data_dir / FINGERPRINT_DATA[case]
    listing = data_dir / f"{FINGERPRINT_DATA[case]}.list"
    pairs, nbytes = flash_sorted_list(root)
    listing.write_text("".join(f"{p}\t{r}\n" for p, r in pairs))
    load = os.getloadavg()[0]
    fresh = case == "T1"
    impls = {"flash": PythonImpl(case, "flash", data_dir, runs, fresh),
             "native": PythonImpl(case, "native", data_dir, runs, fresh),
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


def deployment_available() -> str | None:
    """None, or why runpod_flash_native.deployment cannot be benchmarked here."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, "-c", "import runpod_flash_native.deployment as d; "
                           "d.plan_reconciliation; d.apply_reuse"],
                          env=env, capture_output=True, text=True, check=False)
    if proc.returncode == 0:
        return None
    last = (proc.stderr.strip().splitlines() or ["?"])[-1]
    return f"runpod_flash_native.deployment is not available in this checkout ({last})"


def run_plan_case(case: str, data_dir: Path, runs: int) -> dict:
    why = deployment_available()
    if why is not None:
        return {"skipped": why}
    load = os.getloadavg()[0]
    res = interleave({"flash": PythonImpl(case, "flash", data_dir, runs, False),
                      "native": PythonImpl(case, "native", data_dir, runs, False)}, runs)
    if res["flash"]["result"] != res["native"]["result"]:
        raise SystemExit(f"{case}: plans or resulting manifests differ")
    res["load"] = load
    return res


def run_e2e_case(data_dir: Path, runs: int) -> dict:
    """T8: benchmarks/bench_build.py, in a process of its own (it runs builds
    as subprocesses and prints one JSON document)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    load = os.getloadavg()[0]
    proc = subprocess.run([sys.executable, str(HERE / "bench_build.py"), "--runs", str(runs), "--threads", "1,2,0",
                           "--data-dir", str(data_dir), "--json"], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"T8: bench_build.py failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    r["load"] = load
    return r


def run_archive_case(case: str, data_dir: Path, runs: int) -> dict:
    root = data_dir / FINGERPRINT_DATA[case]
    nbytes = sum(e.stat(follow_symlinks=False).st_size for e in root.rglob("*"))
    load = os.getloadavg()[0]
    res = interleave({impl: PythonImpl(case, impl, data_dir, runs, False) for impl in ARCHIVE_IMPLS}, runs)
    digests = {k: v["result"] for k, v in res.items()}
    if len(set(digests.values())) != 1:
        raise SystemExit(f"{case}: {'copies' if case == 'T7' else 'decompressed tar streams'} differ: {digests}")
    res.update(files=sum(1 for _ in root.rglob("*")), bytes=nbytes, load=load)
    return res


# ---- report -----------------------------------------------------------------------------------


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    ram = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") >> 30
    flags = open("/proc/cpuinfo").read().split()
    sha_ni = "SHA-NI" if "sha_ni" in flags else "no SHA-NI"
    ssl = subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout.strip()
    return (f"{model} ({sha_ni}), {os.cpu_count()} cores, {ram} GiB RAM, Linux {platform.release()}, "
            f"Python {platform.python_version()}, {ssl}, "
            f"data on {fs_type(HERE)} (`stat -f`; ext4 reports ext2/ext3)")


def code_version() -> str:
    try:
        rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "csrc",
                                "runpod_flash_native", "benchmarks/run.py", "benchmarks/plain_loop.c",
                                "benchmarks/sha_ref.c", "benchmarks/bench_plan.py"],
                               capture_output=True, text=True).stdout.strip()
    except OSError:
        return "unknown"
    return f"{rev or 'unknown'}{' + uncommitted changes' if dirty else ''}"


def fs_type(path: Path) -> str:
    try:
        return subprocess.run(["stat", "-f", "-c", "%T", str(path)], capture_output=True,
                              text=True).stdout.strip() or "?"
    except OSError:
        return "?"


def ms(s: float) -> str:
    return f"{s * 1000:.1f} ms" if s < 1 else f"{s:.2f} s"


def mib(n) -> str:
    return "–" if n is None else f"{n / MiB:.1f} MiB"


LABELS = {
    "T1": "T1 20k files + ignored .venv (first call, fresh process)",
    "T2": "T2 1 GiB file + handler.py",
    "T3": "T3 100k small files",
    "T4": "T4 plan over 1,000 resources",
    "T5": "T5 re-fingerprint T1 unchanged",
    "T6": "T6 create_tarball, ~200 MiB packages + 128 MiB weights",
    "T7": "T7 copy_project_files, 3,000 small files + 256 MiB",
    "T9": "T9 15k directories, one small file each + ignored .venv",
    "T10": "T10 one directory of 20k files",
    "T11": "T11 copy of the installed site-packages",
    "T12": "T12 a chain 2,000 directories deep",
}


def verdicts(case: str, r: dict) -> str:
    if case == "T8":
        best = r["speedup"]["native-all"]
        return (f"{'met' if best >= 2 else 'MISSED'} ({best:.2f}× at all threads); "
                f"{'met' if r['same_fingerprint'] else 'MISSED'} (fingerprints equal)")
    f, n = r["flash"]["median"], r["native"]["median"]
    if case == "T1":
        ok1, ok2 = f / n >= 8, n <= r["plain"]["median"]
        return (f"{'met' if ok1 else 'MISSED'} ({f / n:.1f}×); "
                f"{'met' if ok2 else 'MISSED'} (plain/ours {r['plain']['median'] / n:.2f})")
    if case == "T2":
        ok1, ok2, ok3 = f / n >= 5, n <= 1.1 * r["sha"]["median"], r["native"]["rss_growth"] <= 16 * MiB
        return (f"{'met' if ok1 else 'MISSED'} ({f / n:.2f}×); {'met' if ok2 else 'MISSED'} "
                f"({n / r['sha']['median']:.2f}× SHA-256); {'met' if ok3 else 'MISSED'} "
                f"({mib(r['native']['rss_growth'])})")
    if case == "T4":
        return f"{'met' if f / n >= 10 else 'MISSED'} ({f / n:.1f}×)"
    if case == "T7":
        return f"{'met' if f / n > 1 else 'MISSED'} ({f / n:.2f}×); met (copies identical: SHA-256 checked)"
    if case in SHAPE_CASES:
        p = r["plain"]
        ft, nt = r["flash_tree"]["median"], r["native_tree"]["median"]
        ok1, ok2 = n <= p["median"], p["median"] * 8 > f or f / n >= 8
        ok3, ok4 = r["native"]["cpu_median"] <= 1.3 * p["cpu_median"], ft / nt >= 5
        return (f"{'met' if ok1 else 'MISSED'} ({n / p['median']:.2f}× the loop's wall); "
                f"{'met' if ok2 else 'MISSED'} ({f / n:.1f}× flash; loop {f / p['median']:.1f}×); "
                f"{'met' if ok3 else 'MISSED'} (CPU {r['native']['cpu_median'] / p['cpu_median']:.2f}× "
                f"the loop's); {'met' if ok4 else 'MISSED'} (get_file_tree {ft / nt:.1f}× flash's)")
    if case == "T6":
        ratio = r["native"]["size"] / r["flash"]["size"]
        return (f"{'met' if f / n >= 4 else 'MISSED'} ({f / n:.2f}×); "
                f"{'met' if ratio <= 1.01 else 'MISSED'} ({ratio:.4f}× flash's size)")
    return "–"


def report(args, results: dict, t_total: float, t_data: float, speed: str, load0) -> str:
    from importlib.metadata import version

    cmd = shlex.join(["python", "benchmarks/run.py", *sys.argv[1:]])
    lines = [
        "# Benchmarks: runpod_flash_native vs runpod-flash",
        "",
        f"Command: `{cmd}`",
        "",
        f"Machine: {machine()}.",
        f"Code: {code_version()}.",
        f"runpod-flash {version('runpod-flash')}, pathspec {version('pathspec')}. "
        f"`openssl speed -bytes 16384 -seconds 3 -evp sha256`: {speed} (cross-check of the SHA-256 column).",
        "",
        f"Median of {args.runs} runs after one warm-up, warm page cache. flash = installed runpod-flash "
        "(get_file_tree + compute_source_fingerprint, or its deploy comparison loop); ours = "
        "`fingerprint_project(dir)` (T1-T3, T5) or `plan_reconciliation` + `apply_reuse` (T4); "
        "plain C loop = `benchmarks/plain_loop.c` over flash's pre-sorted file list; "
        "SHA-256 = `benchmarks/sha_ref.c`, single-core OpenSSL EVP over an in-memory buffer of the same "
        "byte count. Each implementation in its own process (T1: a fresh one per run); runs interleaved "
        "round by round (flash, ours, plain loop, SHA-256, rotating order). RSS growth = VmHWM after "
        "minus before the calls. Ratios are computed from the medians of this run.",
        "",
        "| case | flash | ours | plain C loop | SHA-256 | flash / ours | plain / ours | ours / SHA-256 "
        "| RSS growth flash | RSS growth ours | load (1 min) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    notes = []
    e2e = results.pop("T8", None)
    for case, r in results.items():
        if "skipped" in r:
            lines.append(f"| {LABELS[case]} | not available | | | | | | | | | |")
            notes.append(f"{case}: skipped: {r['skipped']}.")
            continue
        f, n = r["flash"], r["native"]
        plain, sha = r.get("plain"), r.get("sha")
        cells = [LABELS[case], ms(f["median"]), ms(n["median"]),
                 ms(plain["median"]) if plain else "–", ms(sha["median"]) if sha else "–",
                 f"**{f['median'] / n['median']:.2f}×**",
                 f"{plain['median'] / n['median']:.2f}" if plain else "–",
                 f"{n['median'] / sha['median']:.2f}" if sha else "–",
                 mib(f["rss_growth"]), mib(n["rss_growth"]), f"{r['load']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "| case | target | result |", "| --- | --- | --- |"]
    for case, target in TARGETS.items():
        r = e2e if case == "T8" else results.get(case)
        if r is None:
            continue
        lines.append(f"| {case} | {target} | {'not run: ' + r['skipped'] if 'skipped' in r else verdicts(case, r)} |")
    lines += ["", "CPU time (medians; user + system, all threads of the process) is less sensitive to the "
              "machine's other jobs than wall time: with no second core free, ours runs its walk, read "
              "and hash threads on one core and its wall time is its CPU time.", "",
              "| case | files hashed | bytes hashed | flash CPU | ours CPU | plain loop CPU | SHA-256 CPU "
              "| plain / ours (CPU) | flash runs | ours runs |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
    for case, r in results.items():
        if "skipped" in r:
            continue
        f, n = r["flash"], r["native"]
        plain, sha = r.get("plain"), r.get("sha")
        cells = [case, format(r["files"], ",") if "files" in r else "–",
                 mib(r["bytes"]) if "bytes" in r else "–", ms(f["cpu_median"]), ms(n["cpu_median"]),
                 ms(plain["cpu_median"]) if plain else "–", ms(sha["cpu_median"]) if sha else "–",
                 f"{plain['cpu_median'] / n['cpu_median']:.2f}" if plain else "–",
                 " ".join(f"{t * 1000:.0f}" for t in f["times"]) + " ms",
                 " ".join(f"{t * 1000:.0f}" for t in n["times"]) + " ms"]
        lines.append("| " + " | ".join(cells) + " |")
    shapes = [c for c in SHAPE_CASES if c in results and "skipped" not in results[c]]
    if shapes:
        lines += ["", "get_file_tree alone (T9-T12): flash's vs ours, wall and CPU medians.", "",
                  "| case | flash | ours | flash / ours | flash CPU | ours CPU |",
                  "| --- | ---: | ---: | ---: | ---: | ---: |"]
        for case in shapes:
            ft, nt = results[case]["flash_tree"], results[case]["native_tree"]
            lines.append(f"| {case} | {ms(ft['median'])} | {ms(nt['median'])} | "
                         f"{ft['median'] / nt['median']:.2f}× | {ms(ft['cpu_median'])} | {ms(nt['cpu_median'])} |")
    if "T6" in results and "skipped" not in results["T6"]:
        r = results["T6"]
        lines += ["", "T6 by thread count (RUNPOD_FLASH_NATIVE_THREADS; all = "
                  f"{len(os.sched_getaffinity(0))}): wall and CPU medians, archive size. The decompressed "
                  "tar streams are identical (SHA-256 checked).", "",
                  "| implementation | wall | CPU | flash / this | archive | size / flash's |",
                  "| --- | ---: | ---: | ---: | ---: | ---: |"]
        for impl in ARCHIVE_IMPLS:
            x = r[impl]
            label = {"flash": "flash (gzip level 9, 1 thread)", "native": "ours, all threads"}.get(
                impl, f"ours, {ARCHIVE_IMPLS[impl]} thread(s)")
            lines.append(f"| {label} | {ms(x['median'])} | {ms(x['cpu_median'])} | "
                         f"{r['flash']['median'] / x['median']:.2f}× | {x['size']:,} B | "
                         f"{x['size'] / r['flash']['size']:.4f} |")
    if "T7" in results and "skipped" not in results["T7"]:
        r = results["T7"]
        lines += ["", "T7 by thread count (RUNPOD_FLASH_NATIVE_THREADS; all = "
                  f"{len(os.sched_getaffinity(0))}): wall and CPU medians. Every run copies into a fresh "
                  f"destination on {fs_type(HERE)}; the copies are identical (SHA-256 over path, content, "
                  "mode, mtime_ns, user xattrs).", "",
                  "| implementation | wall | CPU | flash / this |", "| --- | ---: | ---: | ---: |"]
        for impl in ARCHIVE_IMPLS:
            x = r[impl]
            label = {"flash": "flash (shutil.copy2 per file)", "native": "ours, all threads"}.get(
                impl, f"ours, {ARCHIVE_IMPLS[impl]} thread(s)")
            lines.append(f"| {label} | {ms(x['median'])} | {ms(x['cpu_median'])} | "
                         f"{r['flash']['median'] / x['median']:.2f}× |")
    if e2e is not None:
        med = e2e["median_s"]
        lines += ["", f"T8 end to end (`benchmarks/bench_build.py --runs {e2e['runs']} --threads 1,2,0`): median "
                  "wall time of whole `flash build` / `flash-native build` processes, alternating, after one "
                  f"warm-up round; load (1 min) at the start {e2e['load']:.2f}.", "",
                  "| command | wall | flash / this |", "| --- | ---: | ---: |"]
        for k, v in med.items():
            label = ("flash build" if k == "flash" else "flash-native build, all threads" if k == "native-all"
                     else f"flash-native build, {k.split('-', 1)[1]} thread(s)")
            lines.append(f"| {label} | {v:.2f} s | {med['flash'] / v:.2f}× |")
        lines.append(f"\nSame source_fingerprint: {e2e['same_fingerprint']}.")
    load_end = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    lines += ["", f"Total wall time {t_total:.0f} s (data set up {t_data:.0f} s). Load average at the start: "
              f"{', '.join(f'{x:.2f}' for x in load0)}; at the end: {load_end}."]
    if notes:
        lines += [""] + notes
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=7, help="timed runs after one warm-up (>= 5)")
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated subset of " + ",".join(CASES))
    ap.add_argument("--data-dir", type=Path, default=HERE / "data")
    ap.add_argument("--output", type=Path, help="also write the markdown report here")
    ap.add_argument("--e2e-runs", type=int, default=3, help="T8: rounds after the warm-up (each ~1.5 min)")
    ap.add_argument("--serve", nargs=2, metavar=("CASE", "IMPL"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve[0], args.serve[1], args.data_dir, args.runs)
        return
    if args.runs < 5:
        ap.error("--runs must be at least 5")
    cases = [c.strip().upper() for c in args.cases.split(",") if c.strip()]
    unknown = set(cases) - set(CASES)
    if unknown:
        ap.error(f"unknown cases: {', '.join(sorted(unknown))}")

    load0 = os.getloadavg()
    t_start = time.perf_counter()
    for name in sorted({FINGERPRINT_DATA[c] for c in cases if c in FINGERPRINT_DATA}):
        print(f"data: {name}", file=sys.stderr)
        BUILDERS[name](args.data_dir / name)
    tools = build_tools(args.data_dir)
    t_data = time.perf_counter() - t_start
    speed = openssl_speed()

    results = {}
    for case in CASES:
        if case not in cases:
            continue
        print(f"case {case} ...", file=sys.stderr)
        if case == "T8":
            results[case] = r = run_e2e_case(args.data_dir, args.e2e_runs)
            print(f"  {r['median_s']}", file=sys.stderr)
            continue
        if case == "T4":
            results[case] = run_plan_case(case, args.data_dir, args.runs)
        elif case in ("T6", "T7"):
            results[case] = run_archive_case(case, args.data_dir, args.runs)
        else:
            results[case] = run_fingerprint_case(case, args.data_dir, tools, args.runs)
        r = results[case]
        if "skipped" not in r:
            print(f"  flash {r['flash']['median']:.4f}s native {r['native']['median']:.4f}s"
                  + (f" plain {r['plain']['median']:.4f}s sha {r['sha']['median']:.4f}s" if "plain" in r else ""),
                  file=sys.stderr)
    text = report(args, results, time.perf_counter() - t_start, t_data, speed, load0)
    print(text)
    if args.output:
        # A hand-written analysis below ANALYSIS_MARKER survives re-runs.
        old = args.output.read_text() if args.output.exists() else ""
        if ANALYSIS_MARKER in old:
            text += "\n" + old[old.index(ANALYSIS_MARKER):]
        args.output.write_text(text)


if __name__ == "__main__":
    main()

"""The benchmarks' shared harness: data-set stamps, the worker processes
(one per implementation, runs interleaved round by round), the C references
and the machine description. The cases live in cases_*.py; run.py drives
them."""

from __future__ import annotations

import gc
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SEED = 20240601
MiB = 1 << 20


# ---- data -------------------------------------------------------------------------------


def stamp_path(root: Path) -> Path:
    # Next to the data set, not in it: it must not be fingerprinted.
    return root.with_name(root.name + ".complete")


def stamped(root: Path, spec: str) -> bool:
    stamp = stamp_path(root)
    return stamp.exists() and stamp.read_text() == spec


def stamp(root: Path, spec: str) -> None:
    stamp_path(root).write_text(spec)


def data_set(spec_of: Callable[[], str]):
    """Decorate fill(root), which writes a data set into root: the builder
    does nothing while root holds spec_of()'s data already (its stamp says
    so); else it empties root, fills it and stamps it."""
    def wrap(fill: Callable[[Path], None]) -> Callable[[Path], None]:
        def build(root: Path) -> None:
            spec = spec_of()
            if stamped(root, spec):
                return
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir(parents=True)
            fill(root)
            stamp(root, spec)
        build.__doc__ = fill.__doc__
        return build
    return wrap


def write_random(path: Path, rng: random.Random, size: int, chunk: int = MiB) -> None:
    """size random bytes (a multiple of chunk) into path."""
    with open(path, "wb") as fh:
        for _ in range(size // chunk):
            fh.write(rng.randbytes(chunk))


def write_tree(root: Path, rng: random.Random, dirs: int, files: int, lo: int, hi: int,
                dir_name, file_name) -> None:
    for i in range(files):
        d = root / dir_name(i % dirs)
        if i < dirs:
            d.mkdir(parents=True, exist_ok=True)
        (d / file_name(i // dirs)).write_bytes(rng.randbytes(rng.randint(lo, hi)))


def site_packages() -> Path:
    import sysconfig

    return Path(sysconfig.get_paths()["purelib"])


# ---- measurement ------------------------------------------------------------------------------


def vm_hwm_bytes() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def timed(fn, *args):
    gc.collect()  # not timed: start every call with the same heap
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0, time.process_time() - c0


@dataclass
class Serving:
    """What a worker process measures: fn(*inputs[k]) for call k; check(out,
    args) the comparable result of a call (all calls must agree); after(k,
    args) untimed clean-up after call k (1-based); final(outs), if set, the
    result document instead of check's."""
    name: str
    fn: Callable
    inputs: list
    check: Callable = lambda out, a: out  # noqa: E731
    after: Callable | None = None
    final: Callable | None = None


def serve(s: Serving) -> None:
    """Worker process: set up (imports, inputs: done by the caller), print
    "ready", then one call per line on stdin, answering {"t": wall s, "cpu":
    s}. At EOF: the peak RSS growth over all calls and the (checked) result."""
    hwm_before = vm_hwm_bytes()
    outs = []
    print("ready", flush=True)
    for _line in sys.stdin:
        args = s.inputs[len(outs)]
        out, t, c = timed(s.fn, *args)
        outs.append((out, args))
        if s.after is not None:
            s.after(len(outs), args)
        print(json.dumps({"t": t, "cpu": c}), flush=True)
    rss_growth = vm_hwm_bytes() - hwm_before
    if s.final is not None:
        print(json.dumps({**s.final(outs), "rss_growth": rss_growth}), flush=True)
        return
    # Checked after the peak RSS is read: serialising results is not the
    # implementation's cost.
    results = {s.check(out, a) for out, a in outs}
    if len(results) != 1:
        raise SystemExit(f"{s.name}: result changed between calls")
    print(json.dumps({"result": results.pop(), "rss_growth": rss_growth}), flush=True)


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


def repo_env() -> dict:
    """This environment with the repository first on PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def python_worker(case: str, impl: str, data_dir: Path, runs: int) -> Served:
    env = repo_env()
    cmd = [sys.executable, str(HERE / "run.py"), "--serve", case, impl,
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


# ---- the machine ------------------------------------------------------------------------------


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
                                "runpod_flash_native", "benchmarks/run.py", "benchmarks/harness.py",
                                "benchmarks/cases_*.py", "benchmarks/report.py", "benchmarks/plain_loop.c",
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

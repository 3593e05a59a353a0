"""The references the tests compare runpod_flash_native against, in one place.

* flash's own answers: ``flash_fingerprint`` (runpod-flash's
  compute_source_fingerprint, given Path objects as flash's caller gives
  them), ``flash_walk`` / ``flash_project_fingerprint`` (its get_file_tree +
  load_ignore_patterns, then the fingerprint);
* ``outcome``: any call's answer or its exception, as comparable data;
* the hashing reference: flash's framing written independently with hashlib
  (``framed_digest``, ``reference_fingerprint``), streaming, so it also
  covers files too large for flash's read-it-whole;
* the child processes: ``PACKAGE_ROOT`` / ``child_env`` (a subprocess imports
  the same built package as the tests) and ``run_as_nobody`` (a forked child
  that drops to uid/gid 65534: the tests run as root, which bypasses file
  permissions);
* the sizes the C code works in (``CHUNK_SIZE``, ``THREAD_THRESHOLD``,
  ``READER_BLOCK``), exported by the extension rather than copied here.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pickle
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path, PurePath
from typing import Any

import runpod_flash_native
import runpod_flash_native._fingerprint as native

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

CHUNK_SIZE: int = native._CHUNK_SIZE              # one read(2) / one ring slot
THREAD_THRESHOLD: int = native._THREAD_THRESHOLD  # smaller streams hash inline
READER_BLOCK: int = native._READER_BLOCK          # consecutive files per reader turn
NOBODY = 65534

# Where the imported (built) package lives: the checkout for an in-place build,
# site-packages after `pip install .`, a scratch copy in CI's sanitizer and
# portable runs. Subprocesses must import the same one.
PACKAGE_ROOT = Path(runpod_flash_native.__file__).resolve().parent.parent


# ---- flash's answers -------------------------------------------------------------------


def flash_fingerprint(project_dir: Any, files: Iterable[Any]) -> str:
    """runpod-flash's compute_source_fingerprint, given Path objects."""
    from runpod_flash.cli.commands.build import compute_source_fingerprint

    return compute_source_fingerprint(Path(project_dir), [Path(f) for f in files])


def flash_walk(project: Any, directory: Any = None, base_dir: Any = None) -> list[Path]:
    """runpod-flash's get_file_tree(directory or project,
    load_ignore_patterns(project), base_dir)."""
    from runpod_flash.cli.utils import ignore as flash_ignore

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        project = Path(project)
        spec = flash_ignore.load_ignore_patterns(project)
        return flash_ignore.get_file_tree(directory or project, spec, base_dir)


def flash_project_fingerprint(project: Any) -> tuple[list[Path], str]:
    """What `flash build` computes for a project: its file list and fingerprint."""
    files = flash_walk(project)
    return files, flash_fingerprint(project, files)


# ---- answers as data ----------------------------------------------------------------------


def _plain(value: Any, depth: int = 2) -> Any:
    """Paths as str, inside lists and tuples up to depth levels down (so that
    a list of Path and a list of str of the same paths compare equal)."""
    if isinstance(value, PurePath):
        return str(value)
    if depth > 0 and type(value) in (list, tuple):
        return type(value)(_plain(v, depth - 1) for v in value)
    return value


def outcome(fn: Callable[..., Any], *args: Any, messages: bool = True) -> tuple[Any, ...]:
    """("ok", value) or ("err", exception type, details...) for fn(*args).

    Details: an OSError's errno and filename; a UnicodeEncodeError's object
    and range; other exceptions' message when `messages` (flash and we word
    some ValueErrors differently: the differential fingerprint tests compare
    their type only). RecursionError's message names a depth: type only."""
    try:
        value = fn(*args)
    except UnicodeEncodeError as e:
        return ("err", UnicodeEncodeError, e.object, e.start, e.end)
    except OSError as e:
        return ("err", type(e), e.errno, str(e.filename))
    except RecursionError:
        return ("err", RecursionError)
    except Exception as e:  # noqa: BLE001 - compared as data
        return ("err", type(e), str(e)) if messages else ("err", type(e))
    return ("ok", _plain(value))


# ---- the hashing reference ----------------------------------------------------------------


def framed_digest(entries: Iterable[tuple[str | bytes, bytes | Path]]) -> str:
    """SHA-256 over be64(len(rel)) rel be64(len(content)) content for each
    (rel, content) in the order given; content is bytes or a file, streamed
    (its length from os.stat, as flash's len(read_bytes()) for a regular
    file)."""
    h = hashlib.sha256()
    for rel, content in entries:
        raw = rel if isinstance(rel, bytes) else rel.encode("utf-8")
        h.update(len(raw).to_bytes(8, "big") + raw)
        if isinstance(content, bytes):
            h.update(len(content).to_bytes(8, "big") + content)
            continue
        h.update(os.stat(content).st_size.to_bytes(8, "big"))
        with open(content, "rb") as fh:
            while chunk := fh.read(8 * MiB):
                h.update(chunk)
    return h.hexdigest()


def framed_contents_digest(contents: dict[str, bytes]) -> str:
    """flash's fingerprint of {relative POSIX path: content}: sorted by path."""
    return framed_digest((rel, contents[rel]) for rel in sorted(contents))


def reference_fingerprint(project_dir: Any, files: Iterable[Any]) -> str:
    """flash's compute_source_fingerprint, written independently: the files
    sorted by their POSIX path relative to project_dir, streamed."""
    project_dir = Path(project_dir)
    rels = sorted(((Path(f).relative_to(project_dir).as_posix(), Path(f)) for f in files),
                  key=lambda item: item[0])
    return framed_digest(rels)


# ---- child processes ------------------------------------------------------------------------


@functools.cache
def _child_finds_package() -> bool:
    """Whether a child of this interpreter, started elsewhere with this
    environment, imports the package from PACKAGE_ROOT by itself."""
    probe = "import importlib.util as u; s = u.find_spec('runpod_flash_native'); print(s.origin if s else '')"
    proc = subprocess.run([sys.executable, "-c", probe], cwd="/", capture_output=True, text=True, timeout=60)
    origin = proc.stdout.strip()
    return proc.returncode == 0 and bool(origin) and Path(origin).resolve().parent.parent == PACKAGE_ROOT


def child_env(**extra: str) -> dict[str, str]:
    """os.environ, plus extra, with PACKAGE_ROOT first on PYTHONPATH where a
    child would not find the package by itself (an in-place build, a scratch
    copy). An installed package is left to the child's own site-packages:
    putting a whole site-packages first on PYTHONPATH would also put every
    other distribution there ahead of the child's (CI's compatibility venvs
    pin pathspec and runpod-flash over a .pth to step 1's site-packages)."""
    env = dict(os.environ)
    if not _child_finds_package():
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_ROOT), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def make_traversable(path: Any) -> None:
    """Let an unprivileged user reach path (pytest's temp root is 0700)."""
    path = os.path.abspath(path)
    while path not in ("/", "/tmp"):
        mode = os.stat(path).st_mode
        os.chmod(path, mode | 0o055)
        path = os.path.dirname(path)


def run_as_nobody(fn: Callable[[], Any]) -> Any:
    """fn() in a forked child running as uid/gid 65534 (directly when not
    root); its result, or its exception re-raised here. The paths fn uses
    must be reachable by that user (make_traversable)."""
    if os.geteuid() != 0:
        return fn()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            os.close(read_end)
            os.setgroups([])
            os.setresgid(NOBODY, NOBODY, NOBODY)
            os.setresuid(NOBODY, NOBODY, NOBODY)
            try:
                payload = ("ok", fn())
            except BaseException as exc:  # noqa: BLE001 - shipped to the parent
                payload = ("error", exc)
            with os.fdopen(write_end, "wb") as out:
                pickle.dump(payload, out)
        except BaseException:  # noqa: BLE001
            code = 1
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as inp:
        data = inp.read()
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0 and data, "child failed"
    kind, value = pickle.loads(data)
    if kind == "error":
        raise value
    return value


# ---- sizing work for contrast tests ------------------------------------------------------------


def sparse_file(path: Path, size: int, markers: Iterable[tuple[int, bytes]] = ()) -> Path:
    """A sparse file of size bytes with a few non-zero bytes (offset, bytes)."""
    with open(path, "wb") as fh:
        fh.truncate(size)
        for offset, data in markers:
            fh.seek(offset)
            fh.write(data)
    return path


def sparse_hash_seconds_per_byte(directory: Path, sample: int = 256 * MiB) -> float:
    """How long compute_source_fingerprint takes per byte of a sparse file in
    directory, measured here and now (the better of two runs after a warm-up):
    what a test interrupting a long hash sizes its file from."""
    probe = sparse_file(directory / "rfn-rate-probe.bin", sample)
    try:
        native.compute_source_fingerprint(directory, [probe])
        best = float("inf")
        for _ in range(2):
            t0 = time.monotonic()
            native.compute_source_fingerprint(directory, [probe])
            best = min(best, time.monotonic() - t0)
    finally:
        probe.unlink()
    return best / sample


def sparse_size_for(seconds: float, per_byte: float, at_least: int = 16 * GiB) -> int:
    """A sparse file size whose hash takes at least `seconds` at per_byte."""
    return max(at_least, int(seconds / per_byte) + 1)

"""Faults and odd inputs: each gives a clear error or the documented result,
never a wrong fingerprint.

Complements tests/test_fingerprint.py (compute_source_fingerprint: growth,
truncation, KeyboardInterrupt, PermissionError, error kinds) and
tests/test_walk.py (symlink cycles, a 2,500-level tree, unreadable
directories in get_file_tree): here the same faults hit the walk-and-hash
entry points (fingerprint_project, fingerprint_project_files), plus what
neither file covers.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

import runpod_flash_native as native
from runpod_flash_native import ignore as native_ignore

PATH_MAX = os.pathconf("/", "PC_PATH_MAX")


def reference(project: Path, contents: dict[str, bytes]) -> str:
    """flash's framing over {relative posix path: content}, with hashlib."""
    h = hashlib.sha256()
    for rel in sorted(contents):
        data = contents[rel]
        raw = rel.encode("utf-8")
        h.update(len(raw).to_bytes(8, "big") + raw + len(data).to_bytes(8, "big") + data)
    return h.hexdigest()


def make_chain(root: Path, depth: int, name: str = "d", extras=None) -> str:
    """mkdir root/name/name/... depth levels through directory descriptors (no
    path ever longer than a name). extras(level, dir_fd) may add entries.
    Returns the chain's relative path."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for level in range(1, depth + 1):
            os.mkdir(name, dir_fd=fd)
            nfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nfd
            if extras is not None:
                extras(level, fd)
    finally:
        os.close(fd)
    return "/".join([name] * depth)


def write_at(dir_fd: int, name: str, data: bytes) -> None:
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644, dir_fd=dir_fd)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


# ---- depth and length ---------------------------------------------------------------


def test_tree_10000_directories_deep(deep_tmp):
    """Paths of 20,000+ bytes (PATH_MAX is 4,096), no recursion anywhere, and
    linear time: directories open relative to their parent's descriptor and the
    ignore patterns are matched level by level (it took ~27 s and 600 MB when
    every directory was opened, and matched, by its full path)."""
    depth = 10_000
    expected = {}

    def extras(level, fd):
        if level == 3000:
            os.mkdir("build", dir_fd=fd)  # built-in "build/": pruned with its contents
            bfd = os.open("build", os.O_RDONLY, dir_fd=fd)
            write_at(bfd, "gone.py", b"ignored")
            os.close(bfd)
        if level == 5000:
            write_at(fd, "README.md", b"kept by !README.md")
            write_at(fd, "notes.md", b"ignored by *.md")
            expected["/".join(["d"] * level) + "/README.md"] = b"kept by !README.md"
        if level == 9999:
            os.mkdir("tests", dir_fd=fd)
            tfd = os.open("tests", os.O_RDONLY, dir_fd=fd)
            write_at(tfd, "t.py", b"ignored")
            os.close(tfd)
        if level == depth:
            write_at(fd, "leaf.py", b"deep")
            expected["/".join(["d"] * level) + "/leaf.py"] = b"deep"

    make_chain(deep_tmp, depth, extras=extras)
    t0 = time.monotonic()
    files, fp = native.fingerprint_project_files(deep_tmp)
    t1 = time.monotonic()
    assert sorted(p.relative_to(deep_tmp).as_posix() for p in files) == sorted(expected)
    assert max(len(str(p)) for p in files) > 4 * PATH_MAX
    assert fp == reference(deep_tmp, expected)
    assert native.fingerprint_project(deep_tmp) == fp
    tree = native_ignore.get_file_tree(deep_tmp, native_ignore.load_ignore_patterns(deep_tmp))
    assert sorted(map(str, tree)) == sorted(map(str, files))
    assert native.compute_source_fingerprint(deep_tmp, tree) == fp
    # A subdirectory walked against its base, 6,000 levels down.
    sub = deep_tmp.joinpath(*["d"] * 6000)
    below = native_ignore.get_file_tree(sub, native_ignore.load_ignore_patterns(deep_tmp), deep_tmp)
    assert [p.relative_to(deep_tmp).as_posix() for p in below] == ["/".join(["d"] * depth) + "/leaf.py"]
    assert t1 - t0 < 10, f"walk + hash of a 10,000-deep tree took {t1 - t0:.1f} s"


def test_paths_longer_than_path_max(deep_tmp):
    """flash's own os calls fail with ENAMETOOLONG past PATH_MAX; ours do not,
    and the errors past it still name the file."""
    name = "n" * 250
    rel = make_chain(deep_tmp, 40, name)  # ~10,000 bytes
    leaf_dir = deep_tmp / rel
    fd = os.open(deep_tmp, os.O_RDONLY)
    try:
        for part in rel.split("/"):
            nfd = os.open(part, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nfd
        write_at(fd, "a.py", b"a")
        write_at(fd, "b.py", b"b" * 5000)
    finally:
        os.close(fd)
    contents = {f"{rel}/a.py": b"a", f"{rel}/b.py": b"b" * 5000}
    assert len(str(leaf_dir / "a.py")) > 2 * PATH_MAX
    assert native.fingerprint_project(deep_tmp) == reference(deep_tmp, contents)
    files = [leaf_dir / "a.py", leaf_dir / "b.py"]
    assert native.compute_source_fingerprint(deep_tmp, files) == reference(deep_tmp, contents)
    missing = leaf_dir / "missing.py"
    with pytest.raises(FileNotFoundError) as info:
        native.compute_source_fingerprint(deep_tmp, files + [missing])
    assert info.value.filename == str(missing)
    # One component longer than NAME_MAX: the OS's own error, naming the file.
    too_long = leaf_dir / ("x" * 300)
    with pytest.raises(OSError) as info:
        native.compute_source_fingerprint(deep_tmp, files + [too_long])
    assert info.value.errno == 36 and info.value.filename == str(too_long)  # ENAMETOOLONG


@pytest.mark.parametrize("mode", ["inline", "threaded"])
def test_signal_during_a_long_walk_is_handled_within_half_a_second(deep_tmp, mode):
    """A walk that emits nothing for seconds (here: an 8,000-deep chain under
    patterns without a trailing literal, matched over the whole path at every
    level; in real life a slow network file system) used to hold Ctrl-C until
    it ended: the hash side waited for the walk without running signal
    handlers. "threaded": a 2 MiB file sorted first switches the hash to its
    reader thread before the wait."""
    import signal
    import threading

    (deep_tmp / ".gitignore").write_text("x*\ny?\nz*q\nv*\n")
    if mode == "threaded":
        (deep_tmp / "a.bin").write_bytes(b"\0" * (2 << 20))
    make_chain(deep_tmp, 8_000)

    class Alarm(Exception):
        pass

    due = []

    def handler(signum, frame):
        raise Alarm

    threads_before = threading.active_count(), len(os.listdir("/proc/self/task"))
    fds_before = len(os.listdir("/proc/self/fd"))
    old = signal.signal(signal.SIGALRM, handler)
    try:
        t0 = time.monotonic()
        due.append(t0 + 0.3)
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        with pytest.raises(Alarm):
            native.fingerprint_project(deep_tmp)
        latency = time.monotonic() - due[0]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert latency < 0.5, f"the signal handler ran {latency:.2f} s after the signal"
    assert (threading.active_count(), len(os.listdir("/proc/self/task"))) == threads_before
    assert len(os.listdir("/proc/self/fd")) == fds_before
    # Not interrupted, the same walk takes longer than the signal's delay.
    t0 = time.monotonic()
    native.fingerprint_project(deep_tmp)
    assert time.monotonic() - t0 > 0.8

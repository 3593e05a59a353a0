"""copy_project_files: differential against runpod-flash 1.21.0's own function
(shutil.copy2 per file) on generated trees and bad inputs, plus the faults
(disk full, a source vanishing or replaced mid-copy, Ctrl-C) and leaks."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runpod_flash.cli.commands import build as flash_build
from runpod_flash_native import _fingerprint
from runpod_flash_native import build as native_build
from runpod_flash_native.build import copy_project_files

from conftest import sanitized
from reference import child_env

THREADS_ENV = "RUNPOD_FLASH_NATIVE_THREADS"


# ---- helpers -------------------------------------------------------------------


def xattrs(path) -> dict[str, bytes]:
    try:
        names = os.listxattr(path)
    except OSError:
        return {}
    return {n: os.getxattr(path, n) for n in sorted(names) if n.startswith("user.")}


def snapshot(root: Path, atime: bool = True) -> dict[str, tuple]:
    """rel -> what copy2 copies: for files (sha256, mode, mtime_ns, atime_ns,
    user xattrs); for directories only that they exist. atime=False for two
    trees read at different times (the first read of a new file moves its
    atime: relatime)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            out[os.path.relpath(os.path.join(dirpath, d), root)] = ("dir",)
        for f in filenames:
            p = os.path.join(dirpath, f)
            st_ = os.lstat(p)
            if stat.S_ISLNK(st_.st_mode):
                out[os.path.relpath(p, root)] = ("link", os.readlink(p))
                continue
            if not stat.S_ISREG(st_.st_mode):
                out[os.path.relpath(p, root)] = ("special", stat.S_IFMT(st_.st_mode))
                continue
            with open(p, "rb") as fh:
                digest = hashlib.sha256(fh.read()).hexdigest()
            out[os.path.relpath(p, root)] = (
                "file", digest, st_.st_size, st_.st_mode, st_.st_mtime_ns, st_.st_atime_ns if atime else None, xattrs(p)
            )
    return out


def error_key(exc: BaseException) -> tuple:
    return (type(exc), getattr(exc, "errno", None), str(exc))


def run_copy(fn, files, src, dst):
    try:
        fn(files, src, dst)
    except Exception as e:  # noqa: BLE001 - compared by the caller
        return e
    return None


class threads_env:
    def __init__(self, n):
        self.n = n

    def __enter__(self):
        self.old = os.environ.get(THREADS_ENV)
        os.environ[THREADS_ENV] = str(self.n)

    def __exit__(self, *exc):
        if self.old is None:
            os.environ.pop(THREADS_ENV, None)
        else:
            os.environ[THREADS_ENV] = self.old


class method:
    def __init__(self, m):
        self.m = m

    def __enter__(self):
        self.old = native_build._COPY_METHOD
        native_build._COPY_METHOD = self.m

    def __exit__(self, *exc):
        native_build._COPY_METHOD = self.old


# ---- differential on generated trees ------------------------------------------

NAME_CHARS = st.characters(
    blacklist_categories=("Cs", "Cc"), blacklist_characters="/\\", min_codepoint=32, max_codepoint=0x2FFFF
)


def _fits(name: str) -> bool:
    return name not in (".", "..") and 0 < len(name.encode()) <= 255


names = st.one_of(
    st.text(NAME_CHARS, min_size=1, max_size=12),
    st.text(st.sampled_from("abcdé漢"), min_size=60, max_size=85),  # long: up to 255 bytes
).filter(_fits)

MODES = [0o644, 0o600, 0o755, 0o400, 0o000, 0o444, 0o4755, 0o2755, 0o6711, 0o1777, 0o7777, 0o0111]
NOW_NS = time.time_ns()

entry = st.fixed_dictionaries(
    {
        "parts": st.lists(names, min_size=1, max_size=5),
        "data": st.one_of(st.just(b""), st.binary(max_size=3000)),
        "mode": st.sampled_from(MODES),
        # in the past: a read's relatime update then happens once, whoever reads first
        "mtime": st.integers(min_value=0, max_value=NOW_NS - 10**9),
        "atime": st.integers(min_value=0, max_value=NOW_NS - 10**9),
        "xattrs": st.dictionaries(
            st.text("abcxyz._-", min_size=1, max_size=20).map(lambda s: "user." + s),
            st.binary(max_size=200),
            max_size=3,
        ),
        "link": st.booleans(),
    }
)


def make_tree(root: Path, entries: list[dict]) -> list[Path]:
    """Write the entries under root; return flash's kind of file list (Paths,
    symlinks to files included as themselves)."""
    root.mkdir(parents=True, exist_ok=True)
    files, used = [], set()
    for i, e in enumerate(entries):
        rel = Path(*e["parts"])
        # a path that is a prefix of another (file vs dir) or repeats is skipped
        key = tuple(p.lower() for p in rel.parts)
        if any(key[: j] in used for j in range(1, len(key) + 1)) or any(u[: len(key)] == key for u in used):
            continue
        used.add(key)
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if e["link"] and files:
            target = files[-1]
            os.symlink(os.path.relpath(target, path.parent), path)
        else:
            path.write_bytes(e["data"])
            for k, v in e["xattrs"].items():
                os.setxattr(path, k, v)
            os.chmod(path, e["mode"])
            os.utime(path, ns=(e["atime"], e["mtime"]))
        files.append(path)
    return files


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    entries=st.lists(entry, min_size=1, max_size=25),
    threads=st.integers(1, 4),
    how=st.sampled_from([0, 1, 2]),
)
def test_copies_equal_flash_copy2(tmp_path_factory, entries, threads, how):
    base = tmp_path_factory.mktemp("cp")
    src = base / "src"
    files = make_tree(src, entries)
    err_flash = run_copy(flash_build.copy_project_files, files, src, base / "flash")
    with threads_env(threads), method(how):
        err_native = run_copy(copy_project_files, files, src, base / "native")
    assert err_flash is None and err_native is None, (err_flash, err_native)
    flash_snap, native_snap = snapshot(base / "flash"), snapshot(base / "native")
    assert native_snap == flash_snap
    assert sum(v[0] == "file" for v in flash_snap.values()) == len(files)


def test_setuid_and_odd_modes_reach_the_copy(tmp_path):
    """The generated trees above include these; here each is checked once by
    name, against the source's own stat."""
    src = tmp_path / "src"
    src.mkdir()
    files = []
    for mode in MODES:
        p = src / f"m{mode:o}"
        p.write_bytes(b"x" * mode)
        os.setxattr(p, "user.mode", b"%o" % mode)
        os.chmod(p, mode)
        os.utime(p, ns=(123456789123456789, 987654321987654321))
        files.append(p)
    copy_project_files(files, src, tmp_path / "out")
    for p in files:
        a, b = os.stat(p), os.stat(tmp_path / "out" / p.name)
        assert (b.st_mode, b.st_mtime_ns, b.st_atime_ns, b.st_size) == (a.st_mode, a.st_mtime_ns, a.st_atime_ns, a.st_size)
        assert os.getxattr(tmp_path / "out" / p.name, "user.mode") == b"%o" % stat.S_IMODE(a.st_mode)


@pytest.mark.parametrize("how", [0, 1, 2])
def test_big_sparse_file_equals_flash(tmp_path, how):
    src = tmp_path / "src"
    src.mkdir()
    big = src / "weights.bin"
    with open(big, "wb") as fh:
        fh.truncate(96 << 20)
        fh.seek(40 << 20)
        fh.write(os.urandom(1 << 20))
        fh.seek((96 << 20) - 5)
        fh.write(b"tail!")
    os.utime(big, ns=(1_600_000_000_123_456_789, 1_500_000_000_987_654_321))
    flash_build.copy_project_files([big], src, tmp_path / "flash")
    with method(how):
        copy_project_files([big], src, tmp_path / "native")
    assert snapshot(tmp_path / "native") == snapshot(tmp_path / "flash")


def test_existing_destinations_are_overwritten_like_copy2(tmp_path):
    """An existing destination file is truncated and rewritten (its own other
    xattrs stay, as copy2 leaves them); a symlink at the destination is
    written through; a directory at the destination receives dst/basename."""
    src = tmp_path / "src"
    src.mkdir()
    for n in ("a", "b", "c"):
        (src / n).write_bytes(n.encode() * 10)
        os.setxattr(src / n, "user.src", n.encode())
    files = [src / "a", src / "b", src / "c"]

    def prepare(dest):
        dest.mkdir()
        (dest / "a").write_bytes(b"old content that is longer")
        os.setxattr(dest / "a", "user.old", b"1")
        (dest / "t").mkdir()
        (dest / "t" / "target").write_bytes(b"t")
        os.symlink("t/target", dest / "b")
        (dest / "c").mkdir()
        return dest

    e1 = run_copy(flash_build.copy_project_files, files, src, prepare(tmp_path / "flash"))
    e2 = run_copy(copy_project_files, files, src, prepare(tmp_path / "native"))
    assert e1 is None and e2 is None
    assert snapshot(tmp_path / "native") == snapshot(tmp_path / "flash")
    assert xattrs(tmp_path / "native" / "a") == {"user.old": b"1", "user.src": b"a"}
    assert (tmp_path / "native" / "t" / "target").read_bytes() == b"b" * 10
    assert (tmp_path / "native" / "c" / "c").read_bytes() == b"c" * 10


# ---- errors: same exception, same state ------------------------------------------


def _scenarios():
    """name -> setup(base) returning (files, source_dir, dest_dir). Every
    scenario has good files before (and after) the bad one."""

    def tree(base, n=30):
        src = base / "src"
        for i in range(n):
            p = src / f"pkg{i % 4}" / f"m{i:03}.py"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(f"x = {i}\n" * (i + 1))
            # fixed times, atime after mtime: both trees' copies carry the same
            os.utime(p, ns=(NOW_NS - 3600 * 10**9 + i, NOW_NS - 7200 * 10**9 + i))
        return src, sorted(src.rglob("*.py"))

    def at(k, bad):
        def setup(base):
            src, files = tree(base)
            extra = bad(base, src)
            return files[:k] + [extra] + files[k:], src, base / "dest"

        return setup

    def missing(base, src):
        return src / "pkg9" / "gone.py"

    def directory(base, src):
        (src / "adir").mkdir()
        return src / "adir"

    def outside(base, src):
        (base / "elsewhere.py").write_text("e")
        return base / "elsewhere.py"

    def fifo(base, src):
        os.mkfifo(src / "pipe")
        return src / "pipe"

    def dangling(base, src):
        os.symlink("nowhere", src / "dangling.py")
        return src / "dangling.py"

    def as_str(base, src):
        return str(src / "pkg0" / "m000.py")

    def nul(base, src):
        return src / "bad\0name.py"

    def dest_parent_is_file(base):
        src, files = tree(base)
        (base / "dest").mkdir()
        (base / "dest" / "pkg2").write_text("in the way")
        os.utime(base / "dest" / "pkg2", ns=(1, 2))
        return files, src, base / "dest"

    def dest_grandparent_is_file(base):
        src, files = tree(base)
        (src / "pkg1" / "sub").mkdir()
        (src / "pkg1" / "sub" / "deep.py").write_text("d")
        files = sorted(src.rglob("*.py"))
        (base / "dest").mkdir()
        (base / "dest" / "pkg1").write_text("in the way")
        os.utime(base / "dest" / "pkg1", ns=(1, 2))
        return files, src, base / "dest"

    def same_file(base):
        src, files = tree(base)
        return files, src, src

    def into_dir_same_file(base):
        src, files = tree(base)
        dst = base / "dest" / "pkg1" / "m005.py"
        dst.mkdir(parents=True)
        os.link(src / "pkg1" / "m005.py", dst / "m005.py")
        return files, src, base / "dest"

    def dest_fifo(base):
        src, files = tree(base)
        (base / "dest" / "pkg3").mkdir(parents=True)
        os.mkfifo(base / "dest" / "pkg3" / "m011.py")
        return files, src, base / "dest"

    def dest_dir_into_dir(base):
        src, files = tree(base)
        (base / "dest" / "pkg0" / "m004.py" / "m004.py").mkdir(parents=True)
        return files, src, base / "dest"

    return {
        "missing": at(7, missing),
        "directory": at(3, directory),
        "outside": at(12, outside),
        "fifo": at(20, fifo),
        "dangling": at(1, dangling),
        "str_path": at(9, as_str),
        "nul_byte": at(5, nul),
        "dest_parent_is_file": dest_parent_is_file,
        "dest_grandparent_is_file": dest_grandparent_is_file,
        "same_file": same_file,
        "into_dir_same_file": into_dir_same_file,
        "dest_fifo": dest_fifo,
        "dest_dir_into_dir": dest_dir_into_dir,
    }


SCENARIOS = _scenarios()


@pytest.mark.parametrize("threads", [1, 4])
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_errors_equal_flash(tmp_path, name, threads):
    setup = SCENARIOS[name]
    f_files, f_src, f_dst = setup(tmp_path / "flash")
    n_files, n_src, n_dst = setup(tmp_path / "native")
    e_flash = run_copy(flash_build.copy_project_files, f_files, f_src, f_dst)
    with threads_env(threads):
        e_native = run_copy(copy_project_files, n_files, n_src, n_dst)
    assert e_flash is not None and e_native is not None, (e_flash, e_native)
    key_f = error_key(e_flash)
    key_n = error_key(e_native)
    # Messages name the test's own directory: compare them relative to it.
    assert key_n[:2] == key_f[:2]
    assert key_n[2].replace(str(tmp_path / "native"), "@") == key_f[2].replace(str(tmp_path / "flash"), "@")
    for attr in ("filename", "filename2"):
        fv, nv = getattr(e_flash, attr, None), getattr(e_native, attr, None)
        norm = lambda v, d: None if v is None else os.fspath(v).replace(str(tmp_path / d), "@")  # noqa: E731
        assert norm(nv, "native") == norm(fv, "flash"), attr
    if f_dst.exists() or n_dst.exists():
        assert snapshot(n_dst, atime=False) == snapshot(f_dst, atime=False)


def test_first_bad_file_in_list_order_wins_with_any_thread_count(tmp_path):
    """Two bad files (a missing one at 150, a directory at 40) among 400: the
    error is the directory's, files 0..39 are copied, none after."""
    src = tmp_path / "src"
    src.mkdir()
    files = []
    for i in range(400):
        p = src / f"d{i // 50}" / f"f{i:04}"
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(os.urandom(i * 7))
        files.append(p)
    (src / "adir").mkdir()
    files[40] = src / "adir"
    files[150] = src / "nope"
    results = set()
    for threads in (1, 2, 3, 4, 8):
        dest = tmp_path / f"out{threads}"
        with threads_env(threads):
            e = run_copy(copy_project_files, files, src, dest)
        results.add(error_key(e)[:2])
        copied = {os.path.relpath(os.path.join(d, f), dest) for d, _, fs in os.walk(dest) for f in fs}
        assert copied == {str(p.relative_to(src)) for p in files[:40]}
        assert sorted(os.listdir(dest)) == ["d0"]  # later files' directories are not left behind
    assert results == {(IsADirectoryError, errno.EISDIR)}


@pytest.mark.parametrize("threads", [1, 2, 4])
def test_big_files_copied_first_still_obey_the_first_failure(tmp_path, threads):
    """With several threads, big files start first (they overlap the small
    ones); one after the first failure in list order is removed again, as
    copy2 would never have written it, and so is its directory."""
    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    (src / "z").mkdir()
    small = [src / "a" / f"f{i}" for i in range(20)]
    for p in small:
        p.write_bytes(b"s" * 100)
    big = src / "z" / "weights.bin"
    with open(big, "wb") as fh:
        fh.truncate(40 << 20)
    early_big = src / "a" / "early.bin"
    with open(early_big, "wb") as fh:
        fh.truncate(20 << 20)
    files = [early_big] + small[:5] + [src / "a" / "missing"] + small[5:] + [big]
    with threads_env(threads):
        e = run_copy(copy_project_files, files, src, tmp_path / "out")
    assert error_key(e)[:2] == (FileNotFoundError, errno.ENOENT)
    assert e.filename == str(src / "a" / "missing")
    assert sorted(os.listdir(tmp_path / "out")) == ["a"]
    assert sorted(os.listdir(tmp_path / "out" / "a")) == ["early.bin"] + [f"f{i}" for i in range(5)]
    assert os.stat(tmp_path / "out" / "a" / "early.bin").st_size == 20 << 20


def test_permission_errors_as_an_unprivileged_user(tmp_path, unprivileged):
    src = tmp_path / "src"
    src.mkdir()
    for n in ("a.py", "b.py", "c.py"):
        (src / n).write_text(n)
    os.chmod(src / "b.py", 0o000)
    files = [src / "a.py", src / "b.py", src / "c.py"]
    locked = tmp_path / "locked"
    locked.mkdir()
    os.chmod(locked, 0o555)
    (tmp_path / "open").mkdir()
    os.chmod(tmp_path / "open", 0o777)

    def both(dest_flash, dest_native, names=files):
        out = []
        for fn, dest in ((flash_build.copy_project_files, dest_flash), (copy_project_files, dest_native)):
            e = run_copy(fn, names, src, dest)
            name = getattr(e, "filename", None)
            name = name and os.path.relpath(name, dest if name.startswith(str(dest)) else "/")
            out.append((error_key(e)[:2], name, sorted(os.listdir(dest)) if dest.exists() else None))
        return out

    # unreadable source: a.py copied, then PermissionError naming b.py
    r = unprivileged(lambda: both(tmp_path / "open" / "f", tmp_path / "open" / "n"))
    assert r[0] == r[1]
    assert r[1][0] == (PermissionError, errno.EACCES)
    assert r[1][1] == os.path.relpath(src / "b.py", "/") and r[1][2] == ["a.py"]
    # unwritable destination directory: mkdir refuses
    r = unprivileged(lambda: both(locked / "f", locked / "n", [src / "a.py"]))
    assert r[0] == r[1]
    assert r[1][0] == (PermissionError, errno.EACCES)


def test_path_like_and_str_directories_like_flash(tmp_path):
    src = tmp_path / "src"
    (src / "p").mkdir(parents=True)
    (src / "p" / "x.py").write_text("x")
    files = [src / "p" / "x.py"]
    cases = [
        (str(src), lambda side: str(tmp_path / side / "a")),
        (src, lambda side: tmp_path / side / "b" / ".." / "b2"),
        (str(src) + "/", lambda side: str(tmp_path / side / "c") + "//"),
    ]
    for sd, dd in cases:
        flash_build.copy_project_files(files, sd, dd("flash"))
        copy_project_files(files, sd, dd("native"))
    assert snapshot(tmp_path / "native") == snapshot(tmp_path / "flash")
    assert len(snapshot(tmp_path / "native")) == 10
    # relative paths, against the working directory
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        copy_project_files([Path("src/p/x.py")], Path("src"), Path("rel"))
        errors = [
            error_key(run_copy(fn, [Path("src/p/x.py")], Path("."), Path(".")))
            for fn in (flash_build.copy_project_files, copy_project_files)
        ]
    finally:
        os.chdir(old)
    assert (tmp_path / "rel" / "p" / "x.py").read_text() == "x"
    assert errors[0] == errors[1] and errors[0][0] is shutil.SameFileError


def test_duplicates_and_dotdot_keep_flash_order(tmp_path):
    """A destination listed twice, or paths through '..', are copied one by
    one in list order (the parallel copy would race)."""
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "a").write_text("a")
    (src / "d" / "b").write_text("b")
    files = [src / "a", src / "d" / "b", src / "a", src / "d" / ".." / "a"]
    flash_build.copy_project_files(files, src, tmp_path / "flash")
    copy_project_files(files, src, tmp_path / "native")
    assert snapshot(tmp_path / "native") == snapshot(tmp_path / "flash")


# ---- faults -----------------------------------------------------------------------


@pytest.fixture
def small_tmpfs(tmp_path):
    mnt = tmp_path / "full"
    mnt.mkdir()
    try:
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True, text=True)
    except OSError as e:
        pytest.skip(f"mount not available: {e}")
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a 1 MiB tmpfs: {proc.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_disk_full_raises_enospc_like_flash_and_leaves_no_partial_file(tmp_path, small_tmpfs):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.py").write_text("small")
    (src / "big.bin").write_bytes(os.urandom(3 << 20))
    (src / "z.py").write_text("after")
    files = [src / "a.py", src / "big.bin", src / "z.py"]
    e_flash = run_copy(flash_build.copy_project_files, files, src, small_tmpfs / "flash")
    flash_left = sorted(os.listdir(small_tmpfs / "flash"))
    shutil.rmtree(small_tmpfs / "flash")
    e_native = run_copy(copy_project_files, files, src, small_tmpfs / "native")
    assert error_key(e_native)[:2] == error_key(e_flash)[:2] == (OSError, errno.ENOSPC)
    assert (e_native.filename, e_native.filename2) == (str(src / "big.bin"), str(small_tmpfs / "native" / "big.bin"))
    assert (e_flash.filename, e_flash.filename2) == (str(src / "big.bin"), str(small_tmpfs / "flash" / "big.bin"))
    assert flash_left == ["a.py", "big.bin"]  # copy2 leaves the partial file
    assert sorted(os.listdir(small_tmpfs / "native")) == ["a.py"]


def test_disk_full_behind_a_big_file_names_the_file_copy2_names(tmp_path, small_tmpfs):
    """The big file (claimed first) fills the disk while the small files before
    it in list order are still being copied: copy2, one file at a time, copies
    every small file and fails on the big one, and so must we (the pool's
    ENOSPC is retried from the failed file on one worker)."""
    src = tmp_path / "src"
    src.mkdir()
    files = []
    for i in range(150):
        (src / f"a{i:03}.py").write_bytes(os.urandom(3000))
        files.append(src / f"a{i:03}.py")
    (src / "big.bin").write_bytes(os.urandom(20 << 20))  # >= 16 MiB: claimed first
    (src / "z.py").write_text("after")
    files += [src / "big.bin", src / "z.py"]
    e_flash = run_copy(flash_build.copy_project_files, files, src, small_tmpfs / "flash")
    flash_left = sorted(os.listdir(small_tmpfs / "flash"))
    shutil.rmtree(small_tmpfs / "flash")
    with threads_env(4):
        e_native = run_copy(copy_project_files, files, src, small_tmpfs / "native")
    assert error_key(e_native)[:2] == error_key(e_flash)[:2] == (OSError, errno.ENOSPC)
    assert e_flash.filename == str(src / "big.bin")
    assert (e_native.filename, e_native.filename2) == (str(src / "big.bin"), str(small_tmpfs / "native" / "big.bin"))
    assert sorted(os.listdir(small_tmpfs / "native")) == [n for n in flash_left if n != "big.bin"]
    assert len(flash_left) == 151


def test_descriptor_limit_copy2_fits_in_does_not_fail(tmp_path):
    """With RLIMIT_NOFILE just above what the process holds, copy2 (two
    descriptors at a time) copies everything; so must the worker pool, whose
    workers together need more (EMFILE is retried on one worker)."""
    src = tmp_path / "src"
    src.mkdir()
    for i in range(300):
        (src / f"f{i:03}.bin").write_bytes(os.urandom(64 << 10))
    script = f"""
import os, resource, sys
from pathlib import Path
from runpod_flash_native.build import copy_project_files
src = Path({str(src)!r})
files = sorted(src.iterdir())
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
for out in ("warm", "native"):
    held = len(os.listdir("/proc/self/fd"))
    resource.setrlimit(resource.RLIMIT_NOFILE, (held + 3, hard))
    copy_project_files(files, src, Path({str(tmp_path)!r}) / out)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                          env=child_env(**{THREADS_ENV: "4"}), timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
    flash_build.copy_project_files(sorted(src.iterdir()), src, tmp_path / "flash")
    assert snapshot(tmp_path / "native", atime=False) == snapshot(tmp_path / "flash", atime=False)


@pytest.fixture
def reflink_fs(tmp_path):
    """An XFS with reflinks on a loop device (mkfs.xfs from xfsprogs, root)."""
    mkfs = shutil.which("mkfs.xfs")
    if mkfs is None:
        pytest.skip("mkfs.xfs (xfsprogs) not installed")
    img, mnt = tmp_path / "xfs.img", tmp_path / "xfs"
    with open(img, "wb") as fh:
        fh.truncate(400 << 20)
    mnt.mkdir()
    made = subprocess.run([mkfs, "-q", "-m", "reflink=1", str(img)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"mkfs.xfs failed: {made.stderr.strip()}")
    proc = subprocess.run(["mount", "-o", "loop", str(img), str(mnt)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot loop-mount an XFS image: {proc.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_reflink_copies_share_extents_and_equal_flash(reflink_fs):
    """On a filesystem with reflinks the data is cloned (FICLONE): the copy
    takes no new data blocks, and content and metadata equal copy2's."""
    src = reflink_fs / "src"
    src.mkdir()
    big = src / "weights.bin"
    big.write_bytes(os.urandom(64 << 20))
    os.setxattr(big, "user.k", b"v")
    os.chmod(big, 0o4751)
    os.utime(big, ns=(10**18 + 1, 15 * 10**17 + 3))  # 2001, 2017: one read moves the atime
    (src / "small.py").write_text("x = 1\n")
    files = [big, src / "small.py"]
    copy_project_files(files[1:], src, reflink_fs / "warm")  # first call: directories, inodes
    before = os.statvfs(reflink_fs)
    copy_project_files(files, src, reflink_fs / "native")  # first reader of weights.bin
    after = os.statvfs(reflink_fs)
    flash_build.copy_project_files(files, src, reflink_fs / "flash")
    used = (before.f_bfree - after.f_bfree) * after.f_frsize
    if _fingerprint._copy_kernel_paths:  # not in an RFN_PORTABLE build (read/write only)
        assert used < 8 << 20, used  # a real copy would take 64 MiB
    # the clone moved the source's atime as copy2's read does (relatime)
    assert os.stat(reflink_fs / "native" / "weights.bin").st_atime_ns == os.stat(big).st_atime_ns != 10**18 + 1
    assert snapshot(reflink_fs / "native") == snapshot(reflink_fs / "flash")


def _race(fn, act, tmp_path):
    """Run fn() on a thread; as soon as the destination appears, act()."""
    result = {}

    def run():
        result["e"] = run_copy(*fn)

    t = threading.Thread(target=run)
    t.start()
    dest = fn[3] / "big.bin"
    while t.is_alive() and not dest.exists():
        time.sleep(0.0005)
    act()
    t.join()
    return result["e"]


@pytest.mark.parametrize("what", ["vanish", "replace"])
def test_source_vanishing_or_replaced_mid_copy(tmp_path, what):
    base = Path(tempfile.mkdtemp(dir="/dev/shm")) if os.access("/dev/shm", os.W_OK) else tmp_path
    try:
        src = base / "src"
        src.mkdir()
        outcomes = {}
        for name, fn in (("flash", flash_build.copy_project_files), ("native", copy_project_files)):
            with open(src / "big.bin", "wb") as fh:
                fh.truncate(1 << 30)
            (src / "other").write_text("o")

            def act():
                if what == "vanish":
                    os.unlink(src / "big.bin")
                else:
                    os.rename(src / "other", src / "big.bin")

            with method(2):
                e = _race((fn, [src / "big.bin"], src, base / name), act, tmp_path)
            outcomes[name] = (e, sorted(os.listdir(base / name)))
        e_flash, left_flash = outcomes["flash"]
        e_native, left_native = outcomes["native"]
        if what == "vanish":
            # copy2's copystat stats the vanished path
            assert error_key(e_native) == error_key(e_flash)
            assert error_key(e_native)[:2] == (FileNotFoundError, errno.ENOENT)
            assert e_native.filename == e_flash.filename == str(src / "big.bin")
            assert left_flash == ["big.bin"]  # full content, default metadata
        else:
            assert e_flash is None and left_flash == ["big.bin"]  # new file's metadata, old content
            assert isinstance(e_native, _fingerprint.SourceChangedError)
            assert str(src / "big.bin") in str(e_native)
        assert left_native == []  # no partial or metadata-less destination
    finally:
        if base != tmp_path:
            shutil.rmtree(base)
        else:  # not left in pytest's kept temporary directories
            shutil.rmtree(base / "src", ignore_errors=True)


def os_threads() -> int:
    return len(os.listdir("/proc/self/task"))


def test_keyboard_interrupt_stops_promptly_and_joins_the_workers(tmp_path):
    """Ctrl-C (a KeyboardInterrupt from a timer's handler) during a long copy:
    the call returns long after the interrupt by no more than a tenth of the
    time the copy would have taken (estimated from a 1/128 sized one), no
    thread or descriptor is left, no partial file."""
    base = Path(tempfile.mkdtemp(dir="/dev/shm")) if os.access("/dev/shm", os.W_OK) else tmp_path
    try:
        src = base / "src"
        src.mkdir()
        files = []
        for i in range(4):
            p = src / f"big{i}.bin"
            with open(p, "wb") as fh:
                fh.truncate(8 << 30)  # sparse: costs nothing until copied
            files.append(p)
        (src / "small.bin").write_bytes(b"")
        with open(src / "small.bin", "wb") as fh:
            fh.truncate(256 << 20)
        with method(2), threads_env(2):
            t0 = time.perf_counter()
            copy_project_files([src / "small.bin"], src, base / "est")
            estimate = (time.perf_counter() - t0) * 128  # 32 GiB vs 256 MiB
            shutil.rmtree(base / "est")

            def handler(signum, frame):
                raise KeyboardInterrupt

            delay = 0.2
            before = threading.active_count(), os_threads(), len(os.listdir("/proc/self/fd"))
            old = signal.signal(signal.SIGALRM, handler)
            try:
                signal.setitimer(signal.ITIMER_REAL, delay)
                t0 = time.perf_counter()
                with pytest.raises(KeyboardInterrupt):
                    copy_project_files(files, src, base / "out")
                elapsed = time.perf_counter() - t0
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, old)
        # from the interrupt (the timer's delay in) to the return
        assert elapsed - delay < estimate / 10, (elapsed, estimate)
        assert os.listdir(base / "out") == []  # the partial copies are removed
        for _ in range(500):
            if os_threads() == before[1]:
                break
            time.sleep(0.01)
        assert (threading.active_count(), os_threads(), len(os.listdir("/proc/self/fd"))) == before
    finally:
        shutil.rmtree(base)


# ---- native entry point ----------------------------------------------------------


def test_copy_files_rejects_bad_arguments(tmp_path):
    with pytest.raises(TypeError):
        _fingerprint.copy_files([], [])
    with pytest.raises(ValueError):
        _fingerprint.copy_files(["a"], [], 1)
    with pytest.raises(ValueError):
        _fingerprint.copy_files([], [], 0)
    with pytest.raises(ValueError):
        _fingerprint.copy_files([], [], 1, 3)
    with pytest.raises(TypeError):
        _fingerprint.copy_files(None, [], 1)
    assert _fingerprint.copy_files([], [], 1) is None


@pytest.mark.skipif(sanitized(), reason="RSS and allocator counts are meaningless under ASan")
def test_no_leaks(tmp_path):
    from test_leaks import assert_flat

    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_bytes(b"a" * 100)
    os.setxattr(src / "a", "user.k", b"v")
    out = tmp_path / "out"
    out.mkdir()
    cases = [
        (lambda: copy_project_files([src / "a"], src, out), None),
        (lambda: copy_project_files([src / "missing"], src, out), FileNotFoundError),
        (lambda: copy_project_files([src / "a"], src, src), shutil.SameFileError),
        (lambda: _fingerprint.copy_files([str(src / "a"), "x\0"], [str(out / "b"), "y"], 2), ValueError),
        (lambda: _fingerprint.copy_files([str(src / "a")], [str(out / "c")], 2, 2), None),
    ]
    assert_flat(cases, calls=20_000)

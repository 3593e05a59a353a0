"""compute_source_fingerprint: byte-identical to runpod-flash, and safe.

Most tests are differential: the installed runpod-flash (the product's
reference) gets the same input as Path objects, and the digest or the
exception type (plus the offending path) must match. Where flash cannot be
called (a file over 4 GiB would need 4 GiB of RAM there) a few-lines streaming
hashlib reference of flash's framing stands in.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import hashlib
import itertools
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import runpod_flash_native
from runpod_flash_native import SourceChangedError, compute_source_fingerprint
from conftest import sanitized
from reference import (GiB, KiB, MiB, READER_BLOCK, THREAD_THRESHOLD, child_env, framed_digest,
                       run_as_nobody, reference_fingerprint, sparse_file, sparse_hash_seconds_per_byte,
                       sparse_size_for)
from reference import CHUNK_SIZE as CHUNK
from reference import flash_fingerprint as flash
from reference import outcome as _outcome
from torn_reads import mutate_while_hashing

UNDECODABLE = os.fsdecode(b"\xff")  # '\udcff': a name that is not valid UTF-8


# ---- helpers -------------------------------------------------------------------------


def outcome(fn, project_dir, files):
    """The digest, or a comparable summary of the exception raised (flash
    and we word some ValueErrors differently: their type only)."""
    return _outcome(fn, project_dir, files, messages=False)


def with_digests(project_dir, files):
    """The native fingerprint with ``digests=True`` (what flash-native's build
    takes for its index): its fingerprint, after checking each file's size and
    SHA-256 against a read of its own (regular files; a pseudo file's second
    read may differ) and the list against flash's sorted relative paths."""
    files = list(files)
    fp, digests = runpod_flash_native._fingerprint.compute_source_fingerprint(project_dir, files, digests=True)
    root = Path(project_dir)
    assert [d[0] for d in digests] == sorted(Path(f).relative_to(root).as_posix() for f in files)
    for (name, size, sha), path in zip(digests, sorted(files, key=lambda f: Path(f).relative_to(root).as_posix())):
        if Path(path).stat().st_size or not str(Path(path).resolve()).startswith(("/proc/", "/sys/")):
            data = Path(path).read_bytes()
            assert (size, sha) == (len(data), hashlib.sha256(data).hexdigest()), name
    return fp


def assert_same(project_dir, files):
    """Native (with and without per-file digests) and flash agree; returns
    the common outcome."""
    files = list(files)
    expected = outcome(flash, project_dir, files)
    got = outcome(compute_source_fingerprint, project_dir, files)
    assert got == expected
    assert outcome(with_digests, project_dir, files) == expected
    return got


def write_tree(root: Path, files: dict) -> list[Path]:
    """Create files (relative path -> bytes) under root; return their absolute paths."""
    out = []
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        out.append(p)
    return out


def pseudo_random_bytes(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


@contextlib.contextmanager
def chdir(path):
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


class PathLike:
    """An os.PathLike that is not a pathlib.Path."""

    def __init__(self, path):
        self._path = os.fspath(path)

    def __fspath__(self):
        return self._path


@pytest.fixture
def big_dir(tmp_path):
    """Where multi-GiB sparse files go: tmpfs reads holes without filling the page
    cache (ext4 zero-fills a page per 4 KiB read, several seconds per GiB cold)."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        d = Path(tempfile.mkdtemp(prefix="rfn-big-", dir=shm))
        try:
            yield d
        finally:
            shutil.rmtree(d)
    else:  # not left in pytest's kept temporary directories
        d = tmp_path / "big"
        d.mkdir()
        try:
            yield d
        finally:
            shutil.rmtree(d)


def run_child(tmp_path: Path, code: str, *args, timeout=120, **kwargs):
    """Run code as a script in tmp_path (so the source checkout never shadows the build)."""
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(code))
    return subprocess.Popen(
        [sys.executable, str(script), *map(str, args)],
        cwd=tmp_path, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, **kwargs,
    )


# ---- differential: hypothesis trees ------------------------------------------------------

# Characters around '/' (0x2f) in code-point order ('!', ' ', '-', '.', '0'), a backslash,
# 2-, 3- and 4-byte UTF-8 (U+FFFF sorts below U+1F600 by code point, but not in UTF-16).
NAME_ALPHABET = "ab A-._ !0~\\+,é\u00a0ß中\ufffd\uffff\U0001f600"
names = st.text(NAME_ALPHABET, min_size=1, max_size=6).filter(lambda s: s not in (".", ".."))
rel_paths = st.lists(names, min_size=1, max_size=4).map(tuple)
LARGE_SIZES = [CHUNK - 1, CHUNK, CHUNK + 1, THREAD_THRESHOLD - 40, THREAD_THRESHOLD + 1, 3 * MiB + 5]


@st.composite
def contents(draw):
    data = draw(st.binary(max_size=300))
    if draw(st.integers(0, 24)) == 0:  # ~4%: cross chunk and thread-switch boundaries
        data += pseudo_random_bytes(draw(st.integers(0, 1000)), draw(st.sampled_from(LARGE_SIZES)))
    return data


@st.composite
def trees(draw, max_files=25):
    """{relative posix path: content}, with no file also used as a directory."""
    raw = draw(st.dictionaries(rel_paths, contents(), max_size=max_files))
    accepted: dict[tuple, bytes] = {}
    for parts in sorted(raw, key=len):
        if any(parts[:i] in accepted for i in range(1, len(parts))):
            continue
        accepted[parts] = raw[parts]
    return {"/".join(parts): data for parts, data in accepted.items()}


@settings(max_examples=150, deadline=None)
@given(tree=trees(), data=st.data())
def test_differential_random_trees(tree, data):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "proj ect"
        root.mkdir()
        paths = write_tree(root, tree)
        order = data.draw(st.permutations(paths))
        expected = flash(root, order)
        assert expected == reference_fingerprint(root, order)
        # The same input in each form the native API accepts.
        assert compute_source_fingerprint(root, order) == expected
        assert compute_source_fingerprint(str(root), [str(p) for p in order]) == expected
        assert compute_source_fingerprint(PathLike(root), (PathLike(p) for p in order)) == expected
        with chdir(root):
            rel = [p.relative_to(root) for p in order]
            assert compute_source_fingerprint(".", [str(p) for p in rel]) == expected
            assert compute_source_fingerprint("", rel) == flash(Path("."), rel) == expected


PATH_PARTS = ["", ".", "..", "a", "b", "x", "a-b", "nope"]


@st.composite
def messy_paths(draw):
    prefix = draw(st.sampled_from(["", "", "./", "/", "//", "///", "{root}/", "/{root}/", "//{root}/"]))
    body = "/".join(draw(st.lists(st.sampled_from(PATH_PARTS), max_size=5)))
    return prefix + body + draw(st.sampled_from(["", "", "/", "/."]))


@settings(max_examples=1000, deadline=None)
@given(project=messy_paths(), files=st.lists(messy_paths(), max_size=4))
def test_differential_path_arithmetic(tmp_path_factory, project, files):
    """pathlib's rules (//, ., .., trailing /, relative vs absolute, file == project)."""
    base = tmp_path_factory.getbasetemp() / "arith"
    if not base.exists():
        write_tree(base, {"a/x": b"1", "a/b/x": b"2", "b/x": b"3", "x": b"4", "a-b": b"5"})
    root = str(base).lstrip("/")
    project = project.replace("{root}", root)
    files = [f.replace("{root}", root) for f in files]
    with chdir(base):
        got = assert_same(project, files)
        if got[0] == "err" and got[1] is ValueError:
            # Outside the project: the first such file (input order) is named, like flash.
            with pytest.raises(ValueError) as ours:
                compute_source_fingerprint(project, files)
            with pytest.raises(ValueError) as theirs:
                flash(project, files)
            culprit = str(theirs.value).split("'")[1]
            assert repr(culprit) in str(ours.value)


# ---- differential: explicit shapes ---------------------------------------------------------


def test_empty_list(tmp_path):
    empty = hashlib.sha256().hexdigest()
    assert compute_source_fingerprint(tmp_path, []) == flash(tmp_path, []) == empty
    assert compute_source_fingerprint(tmp_path / "does-not-exist", iter(())) == empty


def test_framing_matches_an_independent_reference(tmp_path):
    paths = write_tree(tmp_path, {"b.py": b"print(1)\n", "a/c.txt": b"", "a b/\u00e9.bin": bytes(range(256))})
    expected = framed_digest([("a b/\u00e9.bin", bytes(range(256))), ("a/c.txt", b""), ("b.py", b"print(1)\n")])
    assert compute_source_fingerprint(tmp_path, paths) == flash(tmp_path, paths) == expected


def test_code_point_order_not_per_component(tmp_path):
    """'a-b' < 'a.b' < 'a/b' < 'a0' as whole strings; per component 'a/b' would be first."""
    rels = ["a/b", "a-b", "a.b", "a0", "a b", "a!", "\uffff", "\U0001f600", "\u00e9", "Z"]
    paths = write_tree(tmp_path, {r: r.encode() * 3 for r in rels})
    digest = assert_same(tmp_path, paths)[1]
    assert digest == reference_fingerprint(tmp_path, paths)
    # The order matters: hashing per-component (or UTF-16) order gives another digest.
    per_component = sorted(paths, key=lambda p: p.relative_to(tmp_path).parts)
    assert framed_digest((p.relative_to(tmp_path).as_posix(), p) for p in per_component) != digest


def test_order_independence(tmp_path):
    paths = write_tree(tmp_path, {f"d{i % 7}/f{i}.py": f"x = {i}\n".encode() * i for i in range(60)})
    expected = flash(tmp_path, paths)
    rng = random.Random(1234)
    for _ in range(10):
        shuffled = paths[:]
        rng.shuffle(shuffled)
        assert compute_source_fingerprint(tmp_path, shuffled) == expected
    assert compute_source_fingerprint(tmp_path, reversed(paths)) == expected


def test_duplicates_are_hashed_as_often_as_flash_hashes_them(tmp_path):
    a, b = write_tree(tmp_path, {"a.py": b"A", "b.py": b"B"})
    once = compute_source_fingerprint(tmp_path, [a, b])
    for files in ([a, a, b], [b, a, tmp_path / "." / "a.py", a], [str(a), a, PathLike(a)]):
        got = compute_source_fingerprint(tmp_path, files)
        assert got == flash(tmp_path, files)
        assert got != once


def test_argument_types(tmp_path):
    paths = write_tree(tmp_path, {"x/a.py": b"a", "y.py": b"y"})
    expected = flash(tmp_path, paths)
    for proj in (tmp_path, str(tmp_path), PathLike(tmp_path), str(tmp_path) + "/"):
        for files in (
            paths,
            tuple(paths),
            [str(p) for p in paths],
            (PathLike(p) for p in paths),
            map(str, paths),
            {str(p): None for p in paths},
        ):
            assert compute_source_fingerprint(proj, files) == expected
    # keywords, like flash's signature
    assert compute_source_fingerprint(project_dir=tmp_path, files=paths) == expected
    assert runpod_flash_native.build.compute_source_fingerprint(tmp_path, paths) == expected
    with pytest.raises(TypeError):
        compute_source_fingerprint(os.fsencode(tmp_path), paths)
    with pytest.raises(TypeError):
        compute_source_fingerprint(tmp_path, [os.fsencode(p) for p in paths])
    with pytest.raises(TypeError):
        compute_source_fingerprint(tmp_path, 42)
    with pytest.raises(TypeError):
        compute_source_fingerprint(tmp_path, [paths[0], 42])


def test_project_dir_forms(tmp_path):
    proj = tmp_path / "proj"
    write_tree(proj, {"a.py": b"a", "sub/b.py": b"bb", "sub/c d.txt": b"ccc"})
    rel_files = ["a.py", "sub/b.py", "sub/c d.txt"]
    with chdir(tmp_path):
        expected = flash(Path("proj"), [Path("proj", f) for f in rel_files])
        forms = [
            ("proj", [f"proj/{f}" for f in rel_files]),
            ("proj/", [f"./proj/{f}" for f in rel_files]),
            ("./proj", [f"proj//{f}" for f in rel_files]),
            ("./proj/.", [f"./proj/./{f}" for f in rel_files]),
            (str(proj), [str(proj / f) for f in rel_files]),
            (str(proj) + "/", [f"{proj}//{f}" for f in rel_files]),
            ("//" + str(proj).lstrip("/"), ["//" + str(proj / f).lstrip("/") for f in rel_files]),
        ]
        for project_dir, files in forms:
            assert assert_same(project_dir, files) == ("ok", expected), (project_dir, files)
        with chdir(proj):
            assert assert_same(".", rel_files) == ("ok", expected)
            assert assert_same("", [f"./{f}" for f in rel_files]) == ("ok", expected)
        # Relative files against an absolute project (and the reverse) are outside, as in flash.
        assert assert_same(str(proj), [f"proj/{f}" for f in rel_files])[1] is ValueError
        assert assert_same("proj", [str(proj / f) for f in rel_files])[1] is ValueError
        # '..' is kept literally by pathlib, not resolved: it is part of the relative path.
        dotdot = assert_same("proj", ["proj/sub/../a.py"])
        assert dotdot[0] == "ok" and dotdot != assert_same("proj", ["proj/a.py"])
        assert assert_same("proj/sub/..", ["proj/sub/../a.py"]) == assert_same("proj", ["proj/a.py"])


def test_file_equal_to_project_dir(tmp_path):
    (tmp_path / "a.py").write_bytes(b"a")
    # The project itself as a file: relative path '.', and reading a directory fails.
    for files in ([tmp_path], [tmp_path / "a.py", str(tmp_path) + "/"], [PathLike(str(tmp_path) + "/.")]):
        got = assert_same(tmp_path, files)
        assert got[:2] == ("err", IsADirectoryError)
        assert got[3] == str(tmp_path)
    # A regular file given as the project dir: flash hashes it under the name '.'.
    f = tmp_path / "a.py"
    got = assert_same(f, [f])
    assert got == ("ok", framed_digest([(".", f.read_bytes())]))


def test_many_files_nested(tmp_path):
    rng = random.Random(99)
    tree = {}
    for i in range(3000):
        depth = rng.randint(0, 4)
        parts = [f"d{rng.randint(0, 6)}" for _ in range(depth)] + [f"f-{i}.py"]
        tree["/".join(parts)] = rng.randbytes(rng.randint(0, 2048))
    paths = write_tree(tmp_path, tree)
    rng.shuffle(paths)
    assert assert_same(tmp_path, paths)[0] == "ok"


@pytest.mark.parametrize(
    "sizes",
    [
        [THREAD_THRESHOLD],                      # the first file alone fills the inline budget
        [THREAD_THRESHOLD + 1],                  # the first file alone starts the reader thread
        [THREAD_THRESHOLD - 100, 50, 50, 1],     # the switch happens on a later, small file
        [CHUNK - 17, CHUNK, CHUNK + 17, 3],      # chunk boundaries inside and across files
        [0, 0, 5 * MiB + 3, 0, 7],               # empty files around a threaded stretch
        [1] * 2000 + [600 * KiB] * 2,            # many tiny files, then the switch
    ],
    ids=["1MiB", "1MiB+1", "switch-late", "chunks", "empties", "many-then-big"],
)
def test_inline_and_threaded_paths(tmp_path, sizes):
    tree = {f"f{i:05d}.bin": pseudo_random_bytes(i, n) for i, n in enumerate(sizes)}
    paths = write_tree(tmp_path, tree)
    got = assert_same(tmp_path, paths)
    assert got == ("ok", reference_fingerprint(tmp_path, paths))


def test_symlinks_are_followed_like_flash(tmp_path):
    paths = write_tree(tmp_path, {"real.py": b"real", "dir/x.py": b"x"})
    (tmp_path / "link.py").symlink_to("real.py")
    (tmp_path / "dlink").symlink_to("dir")
    files = paths + [tmp_path / "link.py", tmp_path / "dlink" / "x.py"]
    assert assert_same(tmp_path, files)[0] == "ok"


def test_kernel_pseudo_files_are_read_to_the_end_like_flash(tmp_path):
    """procfs/sysfs files report st_size 0 or 4096, not their length: flash reads
    them to EOF, and nothing about them changes while they are read."""
    targets = {
        "cmdline": "/proc/self/cmdline",      # size 0, NUL-separated content
        "version": "/proc/version",           # size 0
        "ostype": "/proc/sys/kernel/ostype",  # size 0
        "online": "/sys/devices/system/cpu/online",  # size 4096, a few bytes
    }
    for name, target in targets.items():
        assert os.path.exists(target), target
        (tmp_path / name).symlink_to(target)
    files = write_tree(tmp_path, {"a.py": b"a", "big.bin": pseudo_random_bytes(3, 2 * MiB)})
    files += [tmp_path / name for name in targets]
    got = assert_same(tmp_path, files)
    assert got[0] == "ok"
    # A pseudo file late in a threaded stream, and alone.
    for name in targets:
        assert assert_same(tmp_path, [files[1], tmp_path / name]) == assert_same(tmp_path, [tmp_path / name, files[1]])
        assert assert_same(tmp_path, [tmp_path / name])[0] == "ok"


def test_file_over_4gib(big_dir):
    """64-bit length framing: a sparse file just over 4 GiB (flash would need 4 GiB of RAM)."""
    size = 4 * GiB + 3 * KiB + 5
    free = shutil.disk_usage(big_dir).free
    markers = [(0, b"head"), (2**32 - 2, b"\x01\x02\x03\x04"), (size - 4, b"tail")]
    big = sparse_file(big_dir / "big.bin", size, markers)
    allocated = os.stat(big).st_blocks * 512
    assert allocated < 64 * MiB or free > size, (
        f"{big_dir} holds no sparse files and has only {free} bytes free for {size}"
    )
    small = write_tree(big_dir, {"a.py": b"a", "z.py": b"z" * 1000})
    files = [big, *small]
    # The streaming reference: be64(len(rel)) rel be64(len(content)) content.
    assert compute_source_fingerprint(big_dir, files) == reference_fingerprint(big_dir, files)


# ---- errors ---------------------------------------------------------------------------------


def make_bad(root: Path, kind: str, name: str) -> Path:
    """A file flash cannot hash, of the given kind, named `name` under root."""
    p = root / name
    if kind == "missing":
        return p
    if kind == "directory":
        p.mkdir()
        (p / "inside.py").write_bytes(b"x")
        return p
    if kind == "undecodable":
        p = root / (name + UNDECODABLE)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"u")
        return p
    if kind == "notadir":
        p.write_bytes(b"plain file")
        return p / "child.py"
    if kind == "nul":
        return root / (name + "\0x")
    if kind == "symlink-loop":
        p.symlink_to(p.name)
        return p
    if kind == "dangling":
        p.symlink_to("nowhere")
        return p
    raise AssertionError(kind)


EXPECTED_TYPE = {
    "missing": FileNotFoundError,
    "directory": IsADirectoryError,
    "undecodable": UnicodeEncodeError,
    "notadir": NotADirectoryError,
    "nul": ValueError,
    "symlink-loop": OSError,  # ELOOP
    "dangling": FileNotFoundError,
}


@pytest.mark.parametrize("kind", sorted(EXPECTED_TYPE))
def test_single_error_same_type_as_flash_and_names_the_file(tmp_path, kind):
    good = write_tree(tmp_path, {"a.py": b"a", "z/zz.py": b"z" * (2 * MiB)})
    bad = make_bad(tmp_path, kind, "m")
    files = [good[0], bad, good[1]]
    got = assert_same(tmp_path, files)
    assert got[:2] == ("err", EXPECTED_TYPE[kind])
    with pytest.raises(EXPECTED_TYPE[kind]) as excinfo:
        compute_source_fingerprint(tmp_path, files)
    named = bad.relative_to(tmp_path).as_posix() if kind == "undecodable" else str(bad)
    assert repr(named)[1:-1] in str(excinfo.value)


@pytest.mark.parametrize("first,second", list(itertools.permutations(sorted(EXPECTED_TYPE), 2)))
def test_first_bad_file_in_sorted_order_decides(tmp_path, first, second):
    # 'b…' sorts before 'c…'; the input order is the reverse of the sorted order.
    b = make_bad(tmp_path, first, "b")
    c = make_bad(tmp_path, second, "c")
    good = write_tree(tmp_path, {"a.py": b"a", "d.py": b"d"})
    got = assert_same(tmp_path, [good[1], c, b, good[0]])
    assert got[:2] == ("err", EXPECTED_TYPE[first])


@pytest.mark.parametrize(
    "missing_name, expected",
    [
        ("x\ud7ff", FileNotFoundError),           # U+D7FF < U+DCFF
        ("x\ue000", UnicodeEncodeError),          # U+E000 > U+DCFF
        ("x\uffff", UnicodeEncodeError),
        ("x\U00010000", UnicodeEncodeError),      # code point order; UTF-16 order would differ
        ("x", FileNotFoundError),                 # a prefix sorts first
    ],
)
def test_error_order_around_surrogates(tmp_path, missing_name, expected):
    """Undecodable names hold surrogates (U+DC80..U+DCFF): they sort by code point."""
    undecodable = make_bad(tmp_path, "undecodable", "x")  # 'x\udcff'
    got = assert_same(tmp_path, [undecodable, tmp_path / missing_name])
    assert got[:2] == ("err", expected)


def test_errors_after_the_switch_to_the_reader_thread(tmp_path):
    """The failing file sits deep in a threaded stream (> 1 MiB before it)."""
    good = write_tree(tmp_path, {f"a{i:04d}.py": pseudo_random_bytes(i, 3000) for i in range(800)})
    for kind in ("missing", "directory", "notadir"):
        bad = make_bad(tmp_path, kind, f"m-{kind}")
        got = assert_same(tmp_path, good + [bad] + good[:3])
        assert got[:2] == ("err", EXPECTED_TYPE[kind]) and got[3] == str(bad)


# ---- several reader threads ---------------------------------------------------------------
# Past 1 MiB the stream is read by reader threads, each framing blocks of 32
# consecutive files (READER_BLOCK: csrc/hash.h RFN_READER_BLOCK) into its own
# ring, and hashed in order. A file of 1.5 MiB sorted first makes the whole
# stream threaded, so position i in sorted order is in block i // 32.
HEAD = "0-head.bin"


def reader_tree(root: Path, n: int, sizes: dict[int, int] | None = None) -> list[Path]:
    """HEAD, then f0000.py ... small files; sizes overrides some by position."""
    tree = {HEAD: pseudo_random_bytes(0, 3 * MiB // 2)}
    for i in range(n):
        size = (sizes or {}).get(i, 1000 + (i * 37) % 2000)
        tree[f"f{i:04d}.py"] = pseudo_random_bytes(i + 1, size)
    return write_tree(root, tree)


def test_reader_threads_keep_flash_order(tmp_path, readers):
    # Files larger than a ring slot, and empty ones, at and around block
    # boundaries; more blocks than readers, and a last block cut short.
    sizes = {0: 0, 30: 3 * MiB + 5, 31: CHUNK, 32: 0, 33: CHUNK + 1, 63: 700 * KiB, 64: 2 * CHUNK,
             95: 0, 96: 9 * MiB, 127: 1, 200: 0}
    paths = reader_tree(tmp_path, 7 * READER_BLOCK + 5, sizes)
    random.Random(readers).shuffle(paths)
    assert assert_same(tmp_path, paths) == ("ok", reference_fingerprint(tmp_path, paths))


@pytest.mark.parametrize("first", [0, 5, 31, 32, 63, 70])
@pytest.mark.parametrize("gap", [1, READER_BLOCK, READER_BLOCK + 1, 3 * READER_BLOCK])
def test_reader_threads_report_the_first_bad_file_in_sorted_order(tmp_path, readers, first, gap):
    """The reader of the earlier bad file is held up by a large file just
    before it, so another reader meets the later bad file first in time;
    the earlier one is still what is raised, as flash raises it."""
    n = first + gap + 40
    good = reader_tree(tmp_path, n, {first - 1: 24 * MiB} if first > 0 else {})
    early = make_bad(tmp_path, "missing", f"f{first:04d}.py-missing")
    late = make_bad(tmp_path, "directory", f"f{first + gap:04d}.py-dir")
    got = assert_same(tmp_path, [late, *good, early])
    assert got == ("err", FileNotFoundError, errno.ENOENT, str(early))


@pytest.mark.parametrize("kind", sorted(EXPECTED_TYPE))
def test_reader_threads_get_each_failure_kind_right(tmp_path, readers, kind):
    good = reader_tree(tmp_path, 4 * READER_BLOCK)
    bad = make_bad(tmp_path, kind, f"f{2 * READER_BLOCK + 7:04d}.py-{kind}")
    got = assert_same(tmp_path, [*good, bad])
    assert got[:2] == ("err", EXPECTED_TYPE[kind])


def test_set_reader_threads_checks_its_argument():
    native = runpod_flash_native._fingerprint
    previous = native._set_reader_threads(2)
    try:
        assert native._set_reader_threads(3) == 2
        for bad in (-1, 5, 2**70):
            with pytest.raises((ValueError, OverflowError)):
                native._set_reader_threads(bad)
        with pytest.raises(TypeError):
            native._set_reader_threads("2")
        assert native._set_reader_threads(0) == 3
    finally:
        native._set_reader_threads(previous)


def test_outside_project_raises_valueerror_in_input_order(tmp_path):
    proj = tmp_path / "proj"
    good = write_tree(proj, {"a.py": b"a"})
    # Outside files beat everything else, even a missing file sorted first,
    # because flash computes every sort key before reading any file.
    missing = proj / "0-missing.py"
    for outside in (tmp_path / "other.py", tmp_path / "projx" / "a.py", Path("proj/a.py"), Path("/")):
        files = [missing, *good, outside, tmp_path / "second-outside.py"]
        assert assert_same(proj, files)[:2] == ("err", ValueError)
        with pytest.raises(ValueError) as excinfo:
            compute_source_fingerprint(proj, files)
        assert repr(str(outside)) in str(excinfo.value)
        assert "second-outside" not in str(excinfo.value)


def test_undecodable_name_error_details(tmp_path):
    bad = make_bad(tmp_path, "undecodable", "sub dir/x")
    with pytest.raises(UnicodeEncodeError) as ours:
        compute_source_fingerprint(tmp_path, [bad])
    with pytest.raises(UnicodeEncodeError) as theirs:
        flash(tmp_path, [bad])
    for attr in ("encoding", "object", "start", "end"):
        assert getattr(ours.value, attr) == getattr(theirs.value, attr)
    assert ascii("sub dir/x" + UNDECODABLE) in str(ours.value)
    # Undecodable bytes in the project dir only are fine: the relative path is UTF-8.
    proj = tmp_path / ("p" + UNDECODABLE)
    files = write_tree(proj, {"ok.py": b"ok"})
    assert assert_same(proj, files)[0] == "ok"


def test_non_regular_files_raise_instead_of_hanging(tmp_path):
    """flash blocks forever on a FIFO (and reads /dev/zero until memory runs out);
    we refuse FIFOs and devices with ValueError. Run in a child so a hang cannot
    hang the suite."""
    proj = tmp_path / "proj"
    proj.mkdir()
    os.mkfifo(proj / "fifo")
    (proj / "zero").symlink_to("/dev/zero")
    (proj / "null").symlink_to("/dev/null")
    (proj / "ok.py").write_bytes(b"ok")
    proc = run_child(tmp_path, """
        import json, sys
        from runpod_flash_native import compute_source_fingerprint
        proj = sys.argv[1]
        out = {}
        for name in ("fifo", "zero", "null"):
            try:
                compute_source_fingerprint(proj, [proj + "/ok.py", proj + "/" + name])
                out[name] = "no error"
            except Exception as e:
                out[name] = [type(e).__name__, str(e)]
        print(json.dumps(out))
    """, proj)
    try:
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    out = json.loads(stdout)
    for name in ("fifo", "zero", "null"):
        assert out[name][0] == "ValueError", out
        assert repr(str(proj / name)) in out[name][1]


def test_unix_socket_fails_like_flash(tmp_path):
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(tmp_path / "sock"))
        got = assert_same(tmp_path, [tmp_path / "sock"])
    finally:
        sock.close()
    assert got[:2] == ("err", OSError) and got[3] == str(tmp_path / "sock")


# ---- PermissionError, as an unprivileged user --------------------------------------------------


def _summary(fn, project_dir, files):
    try:
        return ("ok", fn(project_dir, files))
    except Exception as e:
        return ("err", type(e).__name__, getattr(e, "errno", None), str(getattr(e, "filename", None)), str(e))


def test_permission_error_as_unprivileged_user():
    # Not pytest's tmp_path: it lives under a 0700 directory nobody cannot traverse.
    base = Path(tempfile.mkdtemp(prefix="rfn-perm-", dir="/tmp"))
    try:
        os.chmod(base, 0o755)
        proj = base / "proj"
        tree = write_tree(proj, {"a.py": b"a", "ok/b.py": b"b" * (2 * MiB), "m/inner.py": b"x"})
        os.chmod(proj, 0o755)
        for d in (proj / "ok", proj / "m"):
            os.chmod(d, 0o755)
        secret = proj / "m-secret.py"
        secret.write_bytes(b"secret")
        os.chmod(secret, 0)
        locked_dir = proj / "n-locked"
        locked_dir.mkdir()
        (locked_dir / "f.py").write_bytes(b"f")
        os.chmod(locked_dir, 0)
        undecodable = make_bad(proj, "undecodable", "l-")   # sorts before m-secret
        late_undecodable = make_bad(proj, "undecodable", "z-")
        for p in (undecodable, late_undecodable, *tree):
            os.chmod(p, 0o644)
        cases = {
            "unreadable": [*tree, secret],
            "untraversable": [locked_dir / "f.py", *tree],
            "missing-first": [secret, proj / "b-missing.py"],
            "unreadable-first": [proj / "x-missing.py", secret],
            "unreadable-before-dir": [proj / "ok", secret],
            "undecodable-first": [secret, undecodable],
            "unreadable-before-undecodable": [late_undecodable, secret],
            "readable": tree,
        }

        def probe():
            out = {"euid": os.geteuid()}
            for name, files in cases.items():
                out[name] = (_summary(flash, proj, files), _summary(compute_source_fingerprint, proj, files))
            return out

        results = run_as_nobody(probe)
    finally:
        for p in (base / "proj" / "n-locked", base / "proj" / "m-secret.py"):
            if p.exists() or p.is_symlink():
                os.chmod(p, 0o755)
        shutil.rmtree(base)

    assert results.pop("euid") != 0
    expected_type = {
        "unreadable": ("PermissionError", secret),
        "untraversable": ("PermissionError", locked_dir / "f.py"),
        "missing-first": ("FileNotFoundError", proj / "b-missing.py"),
        "unreadable-first": ("PermissionError", secret),
        "unreadable-before-dir": ("PermissionError", secret),
        "undecodable-first": ("UnicodeEncodeError", None),
        "unreadable-before-undecodable": ("PermissionError", secret),
    }
    for name, (theirs, ours) in results.items():
        if name == "readable":
            assert theirs[0] == ours[0] == "ok" and theirs == ours
            continue
        type_name, path = expected_type[name]
        assert theirs[1] == type_name, (name, theirs)
        assert ours[:4] == theirs[:4], (name, ours, theirs)
        if path is not None:
            assert ours[3] == str(path)
            assert repr(str(path)) in ours[4]


# ---- a file changing while it is hashed ---------------------------------------------------------


@pytest.mark.parametrize("change", ["grown", "truncated", "rewritten-in-place"])
def test_source_changed_while_hashed(tmp_path, big_dir, change):
    def mutate_grow():
        with open(path, "ab") as fh:
            fh.write(b"more")

    def mutate_truncate():
        os.truncate(path, 4096)

    def mutate_in_place():
        with open(path, "r+b") as fh:
            fh.seek(12345)
            fh.write(b"X")  # same size; the mtime moves

    mutate = {"grown": mutate_grow, "truncated": mutate_truncate, "rewritten-in-place": mutate_in_place}[change]
    path = big_dir / "big.bin"
    size = 2 * GiB
    for _attempt in range(3):  # hashing may win the race: retry with a bigger file
        sparse_file(path, size, [(0, b"start")])
        os.utime(path, ns=(10**18, 10**18))  # a fixed old mtime: any write moves it
        error = mutate_while_hashing(path, size, mutate,
                                     lambda: compute_source_fingerprint(path.parent, [path]))
        if error is not None:
            break
        size *= 2
    else:
        pytest.fail("the fingerprint finished before the file could be changed, three times")
    assert isinstance(error, RuntimeError)
    assert repr(str(path)) in str(error)
    # Unchanged again, it hashes fine.
    small = write_tree(tmp_path, {"big.bin": b"stable"})
    assert compute_source_fingerprint(tmp_path, small) == flash(tmp_path, small)


# ---- signals -------------------------------------------------------------------------------------


def test_keyboard_interrupt_stops_a_long_hash(tmp_path, big_dir):
    """Ctrl-C 0.4 s into a hash: KeyboardInterrupt, the reader thread joined,
    the module usable afterwards. Promptness by contrast, not by a wall-clock
    bound: the file is sized from a measured hash rate to take >= 20x as long
    as the signal needs to arrive and be handled, and the interrupted call
    must return long before the whole hash would have finished."""
    per_byte = sparse_hash_seconds_per_byte(big_dir)
    size = sparse_size_for(20 * (0.4 + 0.05), per_byte)
    full_estimate = size * per_byte
    big = sparse_file(big_dir / "huge.bin", size, [(0, b"x")])
    proc = run_child(tmp_path, """
        import json, os, signal, sys, threading, time
        from runpod_flash_native import compute_source_fingerprint

        path = sys.argv[1]
        # A background job starts with SIGINT ignored (Python keeps that):
        # install Python's KeyboardInterrupt handler explicitly.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        # The C-level handler writes to the wakeup fd the moment SIGINT lands;
        # a thread timestamps it (the hashing thread runs without the GIL).
        r, w = os.pipe()
        os.set_blocking(w, False)
        signal.set_wakeup_fd(w)
        arrived = []
        watcher = threading.Thread(target=lambda: (os.read(r, 1), arrived.append(time.monotonic())))
        watcher.start()
        print("ready", flush=True)
        t0 = time.monotonic()
        try:
            compute_source_fingerprint(os.path.dirname(path), [path])
            out = {"result": "finished"}
        except KeyboardInterrupt:
            t1 = time.monotonic()
            watcher.join(5)
            out = {"result": "interrupted", "elapsed": t1 - t0, "started_before": arrived[0] - t0,
                   "threads": len(os.listdir("/proc/self/task"))}
        # The module is still usable afterwards.
        with open("small.py", "wb") as fh:
            fh.write(b"x")
        out["after"] = compute_source_fingerprint(".", ["small.py"])
        print(json.dumps(out), flush=True)
    """, big)
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.4)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    out = json.loads(stdout)
    assert out["result"] == "interrupted", out
    assert out["started_before"] > 0, out            # the signal came while hashing
    assert out["elapsed"] < full_estimate / 4, (out, full_estimate)
    assert out["threads"] == 1, out                  # the reader thread was joined
    assert out["after"] == flash(tmp_path, [tmp_path / "small.py"])


def test_signal_handler_exception_propagates(tmp_path, big_dir):
    """Any exception a Python signal handler raises stops the hash, not just
    KeyboardInterrupt: long before the hash (sized from a measured rate to
    take >= 20x the 0.2 s until the signal) would have finished."""
    per_byte = sparse_hash_seconds_per_byte(big_dir)
    size = sparse_size_for(20 * (0.2 + 0.05), per_byte)
    full_estimate = size * per_byte
    big = sparse_file(big_dir / "huge.bin", size)

    class Alarm(Exception):
        pass

    def handler(signum, frame):
        raise Alarm

    old = signal.signal(signal.SIGALRM, handler)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        t0 = time.monotonic()
        with pytest.raises(Alarm):
            compute_source_fingerprint(big_dir, [big])
        elapsed = time.monotonic() - t0
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert elapsed < full_estimate / 4, (elapsed, full_estimate)


def test_signal_handlers_run_promptly_on_a_slow_stream_of_small_files(tmp_path):
    """Handlers must run every ~50 ms even when the reader threads publish a slot
    every few ms (many small files), not only once per 32 MiB hashed.

    By contrast, not by a wall-clock bound: the work is sized from a measured
    sample to take >= 20x as long as ten handler runs need, and the handler
    stops the call at its tenth run; the call must return long before the work
    would have finished."""
    f = tmp_path / "f.py"
    f.write_bytes(b"x" * 60)  # ~80-byte frames: one 256 KiB slot per ~3,000 opens
    compute_source_fingerprint(tmp_path, [f] * 10)  # warm up
    sample = 50_000
    t0 = time.monotonic()
    compute_source_fingerprint(tmp_path, [f] * sample)
    per_file = (time.monotonic() - t0) / sample
    wanted = 10 * 0.05 * 20  # ten handler runs at the 50 ms send rate, times 20
    count = min(max(int(wanted / per_file), 1_000_000), 8_000_000)
    full_estimate = per_file * count
    files = [f] * count
    handled = []

    class Enough(Exception):
        pass

    def handler(signum, frame):
        handled.append(time.monotonic())
        if len(handled) == 10 and not stop.is_set():
            stop.set()
            raise Enough

    stop = threading.Event()

    def sender():
        while not stop.wait(0.05):
            os.kill(os.getpid(), signal.SIGUSR1)

    old = signal.signal(signal.SIGUSR1, handler)
    t = threading.Thread(target=sender)
    try:
        t.start()
        t0 = time.monotonic()
        with pytest.raises(Enough):
            compute_source_fingerprint(tmp_path, files)
        elapsed = time.monotonic() - t0
    finally:
        stop.set()
        t.join()
        signal.signal(signal.SIGUSR1, old)
    assert len(handled) == 10
    assert elapsed < full_estimate / 4, (elapsed, full_estimate)


# ---- threads ----------------------------------------------------------------------------------


def test_concurrent_calls_match_sequential(tmp_path):
    shared_files = write_tree(tmp_path / "shared", {
        **{f"s/{i}.py": pseudo_random_bytes(i, 1500) for i in range(200)},
        "big.bin": pseudo_random_bytes(7, 3 * MiB),
    })
    separate = []
    for t in range(8):
        root = tmp_path / f"t{t}"
        files = write_tree(root, {f"f{i}.py": pseudo_random_bytes(1000 * t + i, 700) for i in range(50)})
        if t % 2:
            files += write_tree(root, {"big.bin": pseudo_random_bytes(t, 2 * MiB + t)})
        separate.append((root, files))
    missing = tmp_path / "shared" / "missing.py"

    def calls(t):
        return [
            (tmp_path / "shared", shared_files),
            separate[t],
            (tmp_path / "shared", shared_files + [missing]),
        ]

    def run(root, files):
        return outcome(compute_source_fingerprint, root, files)

    sequential = {t: [run(*c) for c in calls(t)] for t in range(8)}
    for t in range(8):
        assert sequential[t][0] == ("ok", flash(tmp_path / "shared", shared_files))
        assert sequential[t][1] == ("ok", flash(*separate[t]))
        assert sequential[t][2][1] is FileNotFoundError
    barrier = threading.Barrier(8)
    results, errors = {}, []

    def worker(t):
        try:
            barrier.wait()
            results[t] = [[run(*c) for c in calls(t)] for _ in range(4)]
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    for t in range(8):
        assert results[t] == [sequential[t]] * 4


# ---- leaks ------------------------------------------------------------------------------------


def _rss_bytes():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _first_error_type(fn, proj, files):
    try:
        fn(proj, files)
    except Exception as e:  # noqa: BLE001 - the type is the answer
        return type(e)
    return None


def test_no_reference_or_memory_leaks(tmp_path):
    proj = tmp_path / "proj"
    good = write_tree(proj, {"a.py": b"a" * 100, "b/c.py": b"c" * 3000})
    big = write_tree(proj, {"big.bin": pseudo_random_bytes(1, THREAD_THRESHOLD + 5)})
    (proj / "adir").mkdir()
    undecodable = make_bad(proj, "undecodable", "u")
    os.mkfifo(proj / "fifo")
    paths = {
        "ok": good,
        "ok-threaded": good + big,
        "empty": [],
        "outside": good + [tmp_path / "x.py"],
        "missing": good + [proj / "nope.py"],
        "directory": good + [proj / "adir"],
        "undecodable": good + [undecodable],
        "nul": good + [proj / "a\0b"],
        "fifo": good + [proj / "fifo"],
        "type": good + [object()],
    }
    iterations = {"ok-threaded": 300}
    # What each call must answer: flash's exception type (a FIFO would block
    # flash forever: ours refuses it with ValueError, tested above), or None.
    expected = {name: _first_error_type(compute_source_fingerprint, proj, files)
                for name, files in paths.items()}
    for name, files in paths.items():
        if name != "fifo":
            assert expected[name] is _first_error_type(flash, proj, files), name
    assert expected["fifo"] is ValueError

    def digesting(project_dir, files):  # the per-file digests' buffers and list too
        return runpod_flash_native._fingerprint.compute_source_fingerprint(project_dir, files, digests=True)

    def exercise(rounds_scale):
        for name, files in paths.items():
            for i in range(iterations.get(name, 3000) // rounds_scale):
                fn = digesting if i % 2 else compute_source_fingerprint
                assert _first_error_type(fn, proj, files) is expected[name], name

    exercise(10)  # warm up caches, free lists, the allocator
    gc.collect()
    refs_before = {name: [sys.getrefcount(p) for p in files] for name, files in paths.items()}
    proj_refs = sys.getrefcount(proj)
    total_before = sys.gettotalrefcount() if hasattr(sys, "gettotalrefcount") else None
    rss_before = _rss_bytes()
    exercise(1)
    gc.collect()
    rss_growth = _rss_bytes() - rss_before
    if total_before is not None:
        assert abs(sys.gettotalrefcount() - total_before) < 100
    assert sys.getrefcount(proj) == proj_refs
    assert {name: [sys.getrefcount(p) for p in files] for name, files in paths.items()} == refs_before
    # ~27,000 calls: leaking even one path string per call would add > 1 MiB.
    # Under ASan (quarantine, PYTHONMALLOC=malloc) RSS says nothing; the
    # refcounts above still hold there, and tests/test_leaks.py covers RSS.
    if not sanitized():
        assert rss_growth < 1 * MiB, rss_growth

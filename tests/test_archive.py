"""create_tarball: the archive flash's create_tarball writes, gzipped in parallel.

The decompressed tar stream must be byte-identical to flash's for the same
build dir (flash's own function is called on the same tree); the gzip layer is
one standard member, read by tarfile, gzip and GNU tar, no more than 1% larger
than flash's level 9, with incompressible data stored.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import random
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import zlib
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runpod_flash.cli.commands import build as flash_build
from runpod_flash_native import _fingerprint, _pgzip
from runpod_flash_native.build import create_tarball

SITE = Path(tarfile.__file__).parent  # the standard library: real, compressible files


def gunzip_one_member(data: bytes) -> bytes:
    """The decompressed bytes of data, which must be exactly one gzip member."""
    d = zlib.decompressobj(31)
    out = d.decompress(data) + d.flush()
    assert d.eof, "the gzip member does not end"
    assert d.unused_data == b"", "more than one gzip member (or trailing bytes)"
    return out


def flash_and_ours(build_dir: Path, out_dir: Path, excluded=None) -> tuple[bytes, bytes]:
    """(flash's archive, ours) for the same build dir, as compressed bytes."""
    theirs, mine = out_dir / "flash.tar.gz", out_dir / "ours.tar.gz"
    flash_build.create_tarball(build_dir, theirs, "app", excluded)
    create_tarball(build_dir, mine, "app", excluded)
    return theirs.read_bytes(), mine.read_bytes()


def leftovers(directory: Path) -> list[str]:
    return sorted(n for n in os.listdir(directory) if n.endswith(".tmp"))


# ---- the C helpers -----------------------------------------------------------------------


@given(st.binary(max_size=3000), st.integers(1, 700))
@settings(max_examples=200, deadline=None)
def test_byte_entropy_is_the_order0_entropy_of_each_segment(data, segment):
    got = _fingerprint.byte_entropy(data, segment)
    want = []
    for off in range(0, len(data), segment):
        seg = data[off : off + segment]
        want.append(-sum(k / len(seg) * math.log2(k / len(seg)) for k in Counter(seg).values()))
    assert len(got) == len(want)
    assert all(abs(a - b) < 1e-9 for a, b in zip(got, want))


def test_byte_entropy_rejects_bad_arguments():
    with pytest.raises(ValueError):
        _fingerprint.byte_entropy(b"abc", 0)
    with pytest.raises(TypeError):
        _fingerprint.byte_entropy("text", 4)
    with pytest.raises(TypeError):
        _fingerprint.byte_entropy(b"abc")


@given(st.binary(max_size=2000), st.binary(max_size=2000))
@settings(max_examples=300, deadline=None)
def test_crc32_combine_matches_crc32_of_the_concatenation(a, b):
    assert _fingerprint.crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)


def test_crc32_combine_over_lengths_past_4_gib():
    from zlib_ng import zlib_ng

    for crc1, crc2, n in [(0x12345678, 0x9ABCDEF0, 5 << 32), (0, 0xFFFFFFFF, (1 << 40) + 3), (1, 2, 0)]:
        assert _fingerprint.crc32_combine(crc1, crc2, n) == zlib_ng.crc32_combine(crc1, crc2, n)
    with pytest.raises(OverflowError):
        _fingerprint.crc32_combine(1 << 32, 0, 1)


# ---- the gzip writer on its own ----------------------------------------------------------


def write_stream(path: Path, pieces, threads=2, module=None) -> bytes:
    w = _pgzip.GzipMemberWriter(path, threads, module=module)
    with w:
        for p in pieces:
            w.write(p)
    return path.read_bytes()


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 40 KiB in 8 KiB segments: many blocks, runs and boundaries
    from little data."""
    monkeypatch.setattr(_pgzip, "BLOCK_SIZE", 40 << 10)
    monkeypatch.setattr(_pgzip, "SEGMENT_SIZE", 8 << 10)


pieces_strategy = st.lists(
    st.one_of(
        st.binary(max_size=5000),
        st.integers(0, 120_000).map(lambda n: random.Random(n).randbytes(n)),  # incompressible
        st.integers(0, 120_000).map(lambda n: (b"flash build %d\n" % n) * (n // 16)),
    ),
    max_size=8,
)


@given(pieces_strategy, st.integers(1, 4))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_writer_output_is_one_member_of_the_input(small_blocks, tmp_path, pieces, threads):
    out = tmp_path / "s.gz"
    data = write_stream(out, pieces, threads)
    assert gunzip_one_member(data) == b"".join(pieces)
    import gzip

    assert gzip.decompress(data) == b"".join(pieces)
    assert leftovers(tmp_path) == []


def test_gzip_header_is_the_one_gzipfile_writes(tmp_path):
    import gzip

    for name in ["artifact.tar.gz", "archive.tgz", "é-ü.tar.gz", "snow☃.tar.gz", "plain"]:
        ref = io.BytesIO()
        with gzip.GzipFile(name, "wb", 9, ref, mtime=1_700_000_000):
            pass
        assert _pgzip.gzip_header(tmp_path / name, 9, 1_700_000_000.7) == ref.getvalue()[:-10]  # less the empty final block and the trailer
    out = tmp_path / "artifact.tar.gz"
    t0 = int(time.time())
    data = write_stream(out, [b"x" * 10])
    assert data[3] == 0x08 and data[8] == 2 and data[9] == 255  # FNAME, XFL best, OS unknown
    assert data[10:23] == b"artifact.tar\0"
    assert t0 <= int.from_bytes(data[4:8], "little") <= int(time.time())


class Spy:
    """A zlib-like module recording how many bytes each level deflated."""

    def __init__(self, real):
        self.real = real
        self.fed = Counter()
        self.lock = threading.Lock()

    def __getattr__(self, name):
        return getattr(self.real, name)

    def compressobj(self, level, *args, **kwargs):
        c = self.real.compressobj(level, *args, **kwargs)
        spy = self

        class Wrapped:
            def compress(self, data):
                with spy.lock:
                    spy.fed[level] += len(data)
                return c.compress(data)

            def flush(self, mode=zlib.Z_FINISH):
                return c.flush(mode)

        return Wrapped()


def test_random_data_is_stored_without_deflate_effort(tmp_path):
    data = random.Random(1).randbytes(6 << 20)
    spy = Spy(_pgzip.deflate_module())
    out = write_stream(tmp_path / "r.gz", [data], module=spy)
    assert gunzip_one_member(out) == data
    # Stored: 5 bytes of framing per 65,535-byte stored block, plus header and trailer.
    framing = 5 * math.ceil(len(data) / 0xFFFF) + 5 * (len(data) // _pgzip.BLOCK_SIZE) + 64
    assert len(data) < len(out) <= len(data) + framing
    assert spy.fed[_pgzip.LEVEL] == 0  # level 9 never saw it
    assert spy.fed[1] == 0  # nor level 1: entropy and the match scan sufficed


@pytest.mark.parametrize("period", [30_000, 32 << 10])
def test_high_entropy_repeats_within_the_window_are_compressed(tmp_path, period):
    """A random pattern repeated at a distance up to deflate's 32 KiB window
    measures >= STORE_ENTROPY per segment, yet deflate halves it: the match
    scan must send it to deflate, never to stored blocks."""
    pattern = random.Random(period).randbytes(period)
    data = pattern * ((4 << 20) // period)
    assert min(_fingerprint.byte_entropy(data, _pgzip.SEGMENT_SIZE)) >= _pgzip.STORE_ENTROPY
    spy = Spy(_pgzip.deflate_module())
    out = write_stream(tmp_path / "w.gz", [data], module=spy)
    assert gunzip_one_member(out) == data
    ref = zlib.compressobj(9, zlib.DEFLATED, 31)
    ref_len = len(ref.compress(data) + ref.flush())
    assert len(out) <= 1.01 * ref_len, (len(out), ref_len)
    if period <= 32768 - 262:  # zlib's reach: the window less its lookahead
        assert ref_len < len(data) // 2 and len(out) < len(data) // 2


def _lz_model(data: bytes, start: int, segment: int) -> tuple[list[int], list[int]]:
    """(the one-slot-per-hash count lz_matches defines, the true count of
    positions whose 4 bytes stand within the 32 KiB before them)."""
    bits, dist = 15, 32768  # csrc/pgzip.c RFN_PGZ_HASH_BITS, deflate's window
    n = len(data)
    segs = (n - start + segment - 1) // segment
    model, true = [0] * segs, [0] * segs
    table: dict[int, int] = {}
    first = max(0, start - dist)
    for i in range(first, n - 3):
        v = int.from_bytes(data[i:i + 4], "little")
        h = ((v * 2654435761) & 0xFFFFFFFF) >> (32 - bits)
        j = table.get(h)
        table[h] = i
        if i < start:
            continue
        if j is not None and i - j <= dist and data[j:j + 4] == data[i:i + 4]:
            model[(i - start) // segment] += 1
        if data[i:i + 4] in data[max(0, i - dist):i + 3]:
            true[(i - start) // segment] += 1
    return model, true


@given(st.binary(max_size=600).flatmap(lambda b: st.tuples(st.just(b), st.integers(0, len(b)), st.integers(1, 200))))
@settings(max_examples=200, deadline=None)
def test_lz_matches_counts_verified_candidates_never_more_than_exist(args):
    data, start, segment = args
    got = _fingerprint.lz_matches(data, start, segment)
    model, true = _lz_model(data, start, segment)
    assert got == model
    assert all(g <= t for g, t in zip(got, true))


def test_lz_matches_finds_repeats_and_rejects_bad_arguments():
    r = random.Random(5).randbytes(32 << 10)
    assert _fingerprint.lz_matches(r, 0, 1 << 15) == [0]
    assert _fingerprint.lz_matches(r + r, len(r), 1 << 15)[0] > len(r) // 10
    assert _fingerprint.lz_matches(b"", 0, 4) == []
    with pytest.raises(ValueError):
        _fingerprint.lz_matches(b"abc", 4, 1)
    with pytest.raises(ValueError):
        _fingerprint.lz_matches(b"abc", 0, 0)
    with pytest.raises(TypeError):
        _fingerprint.lz_matches("abc", 0, 1)


def test_a_segment_level_1_can_shrink_is_never_stored(tmp_path):
    # High order-0 entropy (every byte value equally often) yet very compressible:
    # a 4 KiB random pattern repeated. The entropy prefilter flags it; the trial
    # must find the repeats.
    pattern = random.Random(2).randbytes(4096)
    data = pattern * 512
    assert min(_fingerprint.byte_entropy(data, _pgzip.SEGMENT_SIZE)) > _pgzip.ENTROPY_THRESHOLD
    spy = Spy(_pgzip.deflate_module())
    out = write_stream(tmp_path / "p.gz", [data], module=spy)
    assert gunzip_one_member(out) == data
    assert len(out) < len(data) // 50
    assert spy.fed[_pgzip.LEVEL] == len(data)


def test_mixed_data_stays_within_1_percent_of_zlib_9(tmp_path):
    rng = random.Random(3)
    text = b"".join(p.read_bytes() for p in sorted(SITE.glob("*.py"))[:60])
    parts, t = [], 0
    while t < len(text):  # random runs of 10-150 KiB between runs of source
        n = rng.randint(10_000, 150_000)
        parts += [text[t : t + n], rng.randbytes(rng.randint(10_000, 150_000))]
        t += n
    data = b"".join(parts)
    out = write_stream(tmp_path / "m.gz", [data])
    assert gunzip_one_member(out) == data
    ref = zlib.compressobj(9, zlib.DEFLATED, 31)
    ref_len = len(ref.compress(data) + ref.flush())
    assert len(out) <= 1.01 * ref_len, (len(out), ref_len)


# ---- thread count ------------------------------------------------------------------------


def test_thread_count_default_and_override(monkeypatch, capsys):
    monkeypatch.delenv(_pgzip.THREADS_ENV, raising=False)
    default = len(os.sched_getaffinity(0))
    assert _pgzip.thread_count() == default
    monkeypatch.setenv(_pgzip.THREADS_ENV, " 3 ")
    assert _pgzip.thread_count() == 3
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(_pgzip, "_bad_thread_values", set())
    for bad in ["0", "-2", "two", "1.5", "auto"]:
        monkeypatch.setenv(_pgzip.THREADS_ENV, bad)
        assert _pgzip.thread_count() == default  # flash builds: so does a bad value of our knob
        assert _pgzip.thread_count() == default
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 1 and _pgzip.THREADS_ENV in err[0] and repr(bad) in err[0], err  # warned once


def test_invalid_thread_count_still_archives(monkeypatch, tmp_path, capsys):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "f").write_text("x")
    out = tmp_path / "a.tar.gz"
    out.write_bytes(b"old")
    monkeypatch.setattr(_pgzip, "_bad_thread_values", set())
    monkeypatch.setenv(_pgzip.THREADS_ENV, "none")
    create_tarball(tmp_path / "b", out, "app")
    with tarfile.open(out) as tar:
        assert tar.getnames() == [".", "./f"]
    assert _pgzip.THREADS_ENV in capsys.readouterr().err


# ---- differential: the same tar stream as flash --------------------------------------------

name_chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00")
names = st.one_of(
    st.text(name_chars, min_size=1, max_size=12),
    st.text(st.sampled_from("漢字ñé☃x-_."), min_size=34, max_size=60),  # > 100 bytes in UTF-8
    st.sampled_from(["numpy", "NumPy", "numpy-2.0.dist-info", "numpy.dist-info", "numpy_ext",
                     "numpyx-1.0.dist-info", "torch-vision", "torch_vision-0.1.dist-info",
                     "Torch_Vision", "numpy-extra-1.0.dist-info", "numpy-v2.dist-info",
                     "numpy-2.0.dist-info.bak", "numpy-1-x.dist-info", "README.md", "handler.py"]),
).filter(lambda n: n not in (".", "..") and len(n.encode()) <= 200)

entry = st.tuples(
    st.sampled_from(["file", "file", "dir", "symlink", "dangling", "hardlink", "empty_dir"]),
    st.lists(names, min_size=1, max_size=3),
    st.binary(max_size=300),
    st.sampled_from([0o644, 0o755, 0o000, 0o4755, 0o2711, 0o600, 0o1777]),
)


def build_tree(root: Path, entries) -> None:
    files: list[Path] = []
    for kind, parts, content, mode in entries:
        path = root.joinpath(*parts)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            continue
        if os.path.lexists(path):
            continue
        if kind == "file":
            path.write_bytes(content)
            os.chmod(path, mode)
            files.append(path)
        elif kind in ("dir", "empty_dir"):
            path.mkdir()
            os.chmod(path, mode | 0o700)
        elif kind == "symlink":
            target = os.path.relpath(files[-1], path.parent) if files else "x" * 150
            os.symlink(target, path)
        elif kind == "dangling":
            os.symlink("missing-" + "t" * (len(content) % 130), path)
        elif kind == "hardlink" and files:
            os.link(files[len(content) % len(files)], path)


@given(st.lists(entry, max_size=14), st.sampled_from([None, [], ["numpy"], ["NumPy", "torch-vision"]]))
@settings(max_examples=40, deadline=None)
def test_tar_stream_equals_flash(entries, excluded):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        build = tmp / "build"
        build.mkdir()
        build_tree(build, entries)
        theirs, mine = flash_and_ours(build, tmp, excluded)
        assert gunzip_one_member(mine) == gunzip_one_member(theirs)
        assert leftovers(tmp) == []


def test_exclusions_and_look_alikes(tmp_path):
    build = tmp_path / "build"
    kept = ["numpy_ext", "numpyx-1.0.dist-info", "numpy-extra-1.0.dist-info", "torch", "handler.py",
            "numpy-2.0.dist-info.bak", "numpy-v2-3.dist-info"]  # dist "numpy-v2": cut at the FIRST "-<digit>"
    dropped = ["numpy", "NUMPY", "numpy-2.0.dist-info", "numpy.dist-info", "numpy-2-3.dist-info",
               "torch_vision", "Torch-Vision-0.1.dist-info"]
    for n in kept + dropped:
        (build / n).mkdir(parents=True)
        (build / n / "f.py").write_text(n)
    theirs, mine = flash_and_ours(build, tmp_path, ["NumPy", "torch-vision"])
    assert gunzip_one_member(mine) == gunzip_one_member(theirs)
    with tarfile.open(fileobj=io.BytesIO(mine)) as tar:
        tops = {m.name.split("/")[1] for m in tar.getmembers() if m.name != "."}
    assert tops == set(kept)


def special_tree(root: Path) -> None:
    """One of each thing a build dir can hold, for the readback tests."""
    (root / "pkg" / "sub").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "pkg" / "mod.py").write_text("print('hi')\n" * 200)
    long_name = "ü" * 60  # 120 bytes
    (root / "pkg" / long_name).write_bytes(b"long")
    (root / "weights.bin").write_bytes(random.Random(4).randbytes(300_000))
    os.symlink("pkg/mod.py", root / "link")
    os.symlink("nowhere/" + "d" * 120, root / "dangling")
    os.link(root / "pkg" / "mod.py", root / "pkg" / "sub" / "hard.py")
    (root / "suid").write_bytes(b"#!/bin/sh\n")
    os.chmod(root / "suid", 0o4755)
    (root / "locked").write_bytes(b"secret")
    os.chmod(root / "locked", 0o000)
    shutil.copytree(SITE / "json", root / "json")


def snapshot(root: Path) -> dict:
    """Every entry of a tree: type, mode, size, content or link target, and
    which entries share an inode."""
    out, inodes = {}, {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = Path(dirpath, n)
            s = p.lstat()
            rel = p.relative_to(root).as_posix()
            if stat.S_ISLNK(s.st_mode):
                out[rel] = ("link", os.readlink(p))
            elif stat.S_ISDIR(s.st_mode):
                out[rel] = ("dir", stat.S_IMODE(s.st_mode))
            else:
                out[rel] = ("file", stat.S_IMODE(s.st_mode), p.read_bytes(),
                            inodes.setdefault(s.st_ino, rel))
    return out


def test_readback_by_tarfile_and_gnu_tar(tmp_path):
    build = tmp_path / "build"
    build.mkdir()
    special_tree(build)
    theirs, mine = flash_and_ours(build, tmp_path)
    assert gunzip_one_member(mine) == gunzip_one_member(theirs)
    with tarfile.open(tmp_path / "ours.tar.gz") as a, tarfile.open(tmp_path / "flash.tar.gz") as b:
        assert [m.get_info() for m in a.getmembers()] == [m.get_info() for m in b.getmembers()]
    if shutil.which("tar") is None:
        pytest.skip("GNU tar is not installed")
    extracted = {}
    for name in ("ours", "flash"):
        dest = tmp_path / f"x-{name}"
        dest.mkdir()
        subprocess.run(["tar", "-xzf", str(tmp_path / f"{name}.tar.gz"), "-C", str(dest)], check=True)
        extracted[name] = snapshot(dest)
    assert extracted["ours"] == extracted["flash"] == snapshot(build)


def test_size_within_1_percent_of_flash_on_real_packages(tmp_path):
    build = tmp_path / "build"
    for name in ("json", "email", "asyncio", "importlib", "xml", "unittest", "concurrent"):
        shutil.copytree(SITE / name, build / name)
    for name in ("tarfile.py", "typing.py", "argparse.py"):
        shutil.copy(SITE / name, build / name)
    (build / "model.safetensors").write_bytes(random.Random(5).randbytes(2 << 20))
    theirs, mine = flash_and_ours(build, tmp_path)
    assert gunzip_one_member(mine) == gunzip_one_member(theirs)
    assert len(gunzip_one_member(mine)) > 8 << 20  # several blocks
    assert len(mine) <= 1.01 * len(theirs), (len(mine), len(theirs))


def test_fallback_to_stdlib_zlib_gives_the_same_stream(tmp_path, monkeypatch):
    build = tmp_path / "build"
    build.mkdir()
    special_tree(build)
    monkeypatch.setitem(sys.modules, "zlib_ng", None)  # import zlib_ng raises ImportError
    assert _pgzip.deflate_module() is zlib
    theirs, mine = flash_and_ours(build, tmp_path)
    assert gunzip_one_member(mine) == gunzip_one_member(theirs)
    assert len(mine) <= 1.01 * len(theirs)


_NO_ZLIB_NG_CHILD = """
import sys, warnings
from pathlib import Path
if sys.argv[1] == "blocked":
    sys.modules["zlib_ng"] = None  # import zlib_ng raises ImportError
warnings.simplefilter("error")  # the notice must not go through warnings
from runpod_flash_native.build import create_tarball
build = Path(sys.argv[2])
for i in range(3):
    create_tarball(build, build.parent / f"a{i}.tar.gz", "app")
print("ok")
"""


@pytest.mark.parametrize("zlib_ng", ["blocked", "available"])
def test_without_zlib_ng_the_archive_says_so_once_with_the_install_command(tmp_path, zlib_ng):
    from reference import child_env

    build = tmp_path / "build"
    build.mkdir()
    (build / "a.py").write_text("x = 1\n" * 1000)
    proc = subprocess.run([sys.executable, "-c", _NO_ZLIB_NG_CHILD, zlib_ng, str(build)],
                          capture_output=True, text=True, timeout=120, env=child_env(), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "ok\n"
    if zlib_ng == "blocked":
        assert proc.stderr.count("zlib-ng is not installed") == 1, proc.stderr
        assert "pip install zlib-ng" in proc.stderr
        assert proc.stderr.strip() == _pgzip.NO_ZLIB_NG_WARNING
    else:
        assert proc.stderr == ""


def test_existing_output_is_replaced_and_output_inside_build_dir_is_skipped(tmp_path):
    build = tmp_path / "build"
    build.mkdir()
    (build / "a.py").write_text("a")
    for out_dir in (tmp_path, build):
        theirs, mine = out_dir / "flash.tar.gz", out_dir / "ours.tar.gz"
        for p in (theirs, mine):
            p.write_bytes(b"stale")
        flash_build.create_tarball(build, theirs, "app")
        create_tarball(build, mine, "app")
        if out_dir == build:
            # Each archive skips itself; flash's then holds our archive and vice versa,
            # so compare names: neither holds itself nor a temporary file.
            for p in (theirs, mine):
                with tarfile.open(p) as tar:
                    members = tar.getnames()
                assert f"./{p.name}" not in members and not any(m.endswith(".tmp") for m in members)
        else:
            assert gunzip_one_member(mine.read_bytes()) == gunzip_one_member(theirs.read_bytes())
        assert leftovers(out_dir) == []


# ---- faults -------------------------------------------------------------------------------


def test_unreadable_file_raises_permission_error_naming_it(tmp_path, unprivileged):
    build = tmp_path / "build"
    build.mkdir()
    (build / "ok.py").write_text("ok")
    (build / "weights.bin").write_bytes(random.Random(6).randbytes(3 << 20))
    (build / "z-secret").write_text("no")
    os.chmod(build / "z-secret", 0o000)
    out_dir = tmp_path / "out"
    out_dir.mkdir(mode=0o777)
    os.chmod(out_dir, 0o777)
    out = out_dir / "a.tar.gz"

    def ours():
        try:
            create_tarball(build, out, "app")
        except PermissionError as e:
            return ("PermissionError", e.filename, str(e), os.listdir(out_dir))
        return ("no error", None, None, os.listdir(out_dir))

    def flash():
        try:
            flash_build.create_tarball(build, out_dir / "flash.tar.gz", "app")
        except OSError as e:
            return type(e).__name__
        return "no error"

    kind, filename, message, listing = unprivileged(ours)
    assert kind == "PermissionError" and filename == str(build / "z-secret")
    assert str(build / "z-secret") in message
    assert listing == []  # no archive, no temporary file
    assert unprivileged(flash) == "PermissionError"


def open_injecting(monkeypatch, victim: Path, action):
    """Make tarfile's open of victim run action(victim) first: the file
    changes between tarfile's stat and its read."""
    real = tarfile.bltn_open

    def fake(name, *args, **kwargs):
        if os.fspath(name) == str(victim):
            action(victim)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(tarfile, "bltn_open", fake)


@pytest.mark.parametrize("change", ["shrinks", "vanishes"])
def test_file_changing_between_stat_and_read(tmp_path, monkeypatch, change):
    build = tmp_path / "build"
    build.mkdir()
    victim = build / "b-data.bin"
    (build / "a.py").write_text("a")
    victim.write_bytes(random.Random(7).randbytes(3 << 20))
    (build / "c.py").write_text("c")
    action = (lambda p: os.truncate(p, 1000)) if change == "shrinks" else (lambda p: p.unlink())
    expected = OSError if change == "shrinks" else FileNotFoundError

    errors = {}
    for who, fn in (("flash", flash_build.create_tarball), ("ours", create_tarball)):
        victim.write_bytes(random.Random(7).randbytes(3 << 20))
        out_dir = tmp_path / who
        out_dir.mkdir()
        with monkeypatch.context() as m:
            open_injecting(m, victim, action)
            with pytest.raises(OSError) as info:
                fn(build, out_dir / "a.tar.gz", "app")
        errors[who] = info.value
        if who == "ours":
            assert os.listdir(out_dir) == []
    assert type(errors["ours"]) is type(errors["flash"]) is expected
    assert str(victim) in str(errors["ours"])
    if change == "shrinks":
        assert "unexpected end of data" in str(errors["ours"])


def test_write_error_on_the_output_names_it_and_leaves_nothing(tmp_path):
    build = tmp_path / "build"
    build.mkdir()
    (build / "weights.bin").write_bytes(random.Random(8).randbytes(6 << 20))
    out = tmp_path / "out" / "a.tar.gz"
    out.parent.mkdir()
    out.write_bytes(b"old archive")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: files may not grow past 1 MiB (EFBIG; Python ignores SIGXFSZ)
        code = 3
        try:
            os.close(r)
            resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
            try:
                create_tarball(build, out, "app")
                msg = "no error"
            except OSError as e:
                msg = f"{type(e).__name__}|{e.errno}|{e.filename}|{threading.active_count()}"
            os.write(w, msg.encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as fh:
        msg = fh.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    kind, err, filename, threads = msg.split("|")
    import errno

    assert (kind, int(err), filename) == ("OSError", errno.EFBIG, str(out))
    assert threads == "1"  # the workers were joined
    assert os.listdir(out.parent) == []  # the old archive was removed first, like flash does


def os_threads() -> int:
    return len(os.listdir("/proc/self/task"))


def test_keyboard_interrupt_leaves_nothing_and_joins_the_workers(tmp_path):
    """Ctrl-C (here: a KeyboardInterrupt raised by a timer's handler) during a
    long archive: the call stops early, by contrast with the time the whole
    archive takes (estimated from a 1/64 sized one), the workers are joined,
    nothing is left at the output."""
    base = Path("/dev/shm") if os.access("/dev/shm", os.W_OK) else tmp_path
    big = Path(tempfile.mkdtemp(prefix="rfn-tar-", dir=base))
    small = tmp_path / "small"
    small.mkdir()
    threads_before = threading.active_count(), os_threads()
    try:
        with open(big / "huge.bin", "wb") as fh:
            fh.truncate(8 << 30)  # sparse zeros: read and deflated, never stored
        with open(small / "huge.bin", "wb") as fh:
            fh.truncate(128 << 20)
        t0 = time.perf_counter()
        create_tarball(small, tmp_path / "small.tar.gz", "app")
        estimate = (time.perf_counter() - t0) * 64

        def handler(signum, frame):
            raise KeyboardInterrupt

        out = tmp_path / "out" / "big.tar.gz"
        out.parent.mkdir()
        fds_before = len(os.listdir("/proc/self/fd"))
        old = signal.signal(signal.SIGALRM, handler)
        try:
            signal.setitimer(signal.ITIMER_REAL, 0.3)
            t0 = time.perf_counter()
            with pytest.raises(KeyboardInterrupt):
                create_tarball(big, out, "app")
            elapsed = time.perf_counter() - t0
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
        assert elapsed < estimate / 10, (elapsed, estimate)
        assert os.listdir(out.parent) == []
        assert threading.active_count() == threads_before[0]  # joined
        # A joined thread's OS thread may take a moment more to be gone.
        for _ in range(500):
            if os_threads() == threads_before[1]:
                break
            time.sleep(0.01)
        assert os_threads() == threads_before[1]
        assert len(os.listdir("/proc/self/fd")) == fds_before
    finally:
        shutil.rmtree(big)


def test_missing_output_directory_raises_like_flash_naming_the_output(tmp_path):
    build = tmp_path / "build"
    build.mkdir()
    (build / "a.py").write_text("a")
    out = tmp_path / "no-such-dir" / "a.tar.gz"
    with pytest.raises(FileNotFoundError):
        flash_build.create_tarball(build, out, "app")
    with pytest.raises(FileNotFoundError) as info:
        create_tarball(build, out, "app")
    assert info.value.filename == str(out)


def test_concurrent_calls_from_several_threads(tmp_path):
    build = tmp_path / "build"
    build.mkdir()
    special_tree(build)
    flash_build.create_tarball(build, tmp_path / "flash.tar.gz", "app")
    want = gunzip_one_member((tmp_path / "flash.tar.gz").read_bytes())
    errors = []

    def run(i):
        try:
            create_tarball(build, tmp_path / f"t{i}.tar.gz", "app")
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for i in range(6):
        assert gunzip_one_member((tmp_path / f"t{i}.tar.gz").read_bytes()) == want
    assert leftovers(tmp_path) == []


def test_at_most_two_blocks_per_thread_are_in_flight(small_blocks, tmp_path, monkeypatch):
    peak = []
    real_submit = _pgzip.GzipMemberWriter._submit

    def submit(self, block, final):
        real_submit(self, block, final)
        peak.append((len(self._inflight), len(self._buf)))

    monkeypatch.setattr(_pgzip.GzipMemberWriter, "_submit", submit)
    data = b"".join(b"line %d of a long log\n" % i for i in range(100_000))  # ~2.3 MB, 55+ blocks
    for threads in (1, 3):
        peak.clear()
        slow = Spy(_pgzip.deflate_module())  # workers lag behind the producer
        real_compressobj = slow.compressobj
        slow.compressobj = lambda *a, **k: (time.sleep(0.002), real_compressobj(*a, **k))[1]
        out = write_stream(tmp_path / f"b{threads}.gz", [data[i : i + 30_000] for i in range(0, len(data), 30_000)],
                           threads=threads, module=slow)
        assert gunzip_one_member(out) == data
        assert len(peak) > 50
        assert 1 <= max(p[0] for p in peak) <= 2 * threads
        assert max(p[1] for p in peak) <= _pgzip.BLOCK_SIZE

"""The project walk against flash's own: same files, same order, same fingerprint.

flash's reference is ``get_file_tree(d, load_ignore_patterns(d))`` followed by
``compute_source_fingerprint(d, files)`` from the installed runpod-flash.
"""

from __future__ import annotations

import logging
import operator
import os
import re
import socket
import sys
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import runpod_flash_native as native
from runpod_flash_native import ignore as native_ignore
from reference import flash_fingerprint, flash_walk, framed_digest, outcome

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from runpod_flash.cli.utils import ignore as flash_ignore


def native_walk(project: Path, directory: Path | None = None, base_dir: Path | None = None):
    spec = native_ignore.load_ignore_patterns(project)
    return native_ignore.get_file_tree(directory or project, spec, base_dir)


def assert_same_as_flash(project: Path) -> None:
    expected = flash_walk(project)
    got = native_walk(project)
    assert [str(p) for p in got] == [str(p) for p in expected]
    assert all(isinstance(p, Path) for p in got)
    expected_fp = flash_fingerprint(project, expected)
    assert native.fingerprint_project(project) == expected_fp
    files, fp = native.fingerprint_project_files(project)
    assert fp == expected_fp
    assert [str(p) for p in files] == [str(p) for p in expected]


def write(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# ---- hand-written trees: flash's documented quirks ---------------------------


def test_builtin_patterns_and_readme_reinclusion(tmp_path):
    write(tmp_path / "main.py", b"print(1)\n")
    write(tmp_path / "README.md", b"# top\n")
    write(tmp_path / "docs" / "README.md", b"# docs readme is shipped: !README.md\n")
    write(tmp_path / "docs" / "guide.md")
    write(tmp_path / ".venv" / "lib" / "site" / "README.md")
    write(tmp_path / ".venv" / "lib" / "site" / "mod.py")
    write(tmp_path / ".venv" / "README.md")
    write(tmp_path / "tests" / "test_x.py")
    write(tmp_path / "pkg" / "test_helper.py")
    write(tmp_path / "pkg" / "helper_test.py")
    write(tmp_path / "pkg" / "mod.py")
    write(tmp_path / "pkg" / "__pycache__" / "mod.cpython-311.pyc")
    write(tmp_path / ".env", b"SECRET=1")
    write(tmp_path / ".env.production", b"SECRET=2")
    write(tmp_path / ".flash" / "flash_manifest.json")
    write(tmp_path / "dist.tar.gz")
    assert_same_as_flash(tmp_path)
    shipped = {p.relative_to(tmp_path).as_posix() for p in native_walk(tmp_path)}
    # "docs/" never matches "docs" itself, so flash descends and "!README.md"
    # re-includes the direct child; but it does match "docs/sub", "venv/lib",
    # so deeper directories are pruned as directories.
    assert "docs/README.md" in shipped and ".venv/README.md" in shipped
    assert ".venv/lib/site/README.md" not in shipped
    assert "docs/guide.md" not in shipped and "pkg/mod.py" in shipped


def test_gitignore_negation_last_match_wins(tmp_path):
    (tmp_path / ".gitignore").write_text("*.log\n!keep.log\nsecret/\n!secret/public.txt\ndata\n")
    write(tmp_path / "a.log")
    write(tmp_path / "keep.log")
    write(tmp_path / "sub" / "keep.log")
    write(tmp_path / "secret" / "x.txt")
    write(tmp_path / "secret" / "public.txt")
    write(tmp_path / "data" / "README.md")  # "data" prunes the directory itself
    write(tmp_path / "sub" / "data")
    assert_same_as_flash(tmp_path)
    shipped = {p.relative_to(tmp_path).as_posix() for p in native_walk(tmp_path)}
    assert shipped == {"keep.log", "sub/keep.log", "secret/public.txt"}


def test_symlinks_followed_broken_and_special_files_skipped(tmp_path):
    write(tmp_path / "real" / "a.py")
    write(tmp_path / "outside_target.py")
    os.symlink("real", tmp_path / "alias")  # directory symlink: walked again
    os.symlink("outside_target.py", tmp_path / "file_link.py")
    os.symlink("missing", tmp_path / "broken.py")
    os.mkfifo(tmp_path / "fifo.py")
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(tmp_path / "sock.py"))
        assert_same_as_flash(tmp_path)
    finally:
        sock.close()
    shipped = {p.relative_to(tmp_path).as_posix() for p in native_walk(tmp_path)}
    assert {"alias/a.py", "real/a.py", "file_link.py"} <= shipped
    assert not shipped & {"broken.py", "fifo.py", "sock.py"}


def test_directory_symlink_cycle_raises_naming_the_link(tmp_path):
    write(tmp_path / "pkg" / "mod.py")
    os.symlink("..", tmp_path / "pkg" / "up")
    with pytest.raises(native.SymlinkLoopError) as info:
        native.fingerprint_project(tmp_path)
    assert info.value.filename == str(tmp_path / "pkg" / "up")
    assert isinstance(info.value, OSError)
    with pytest.raises(native.SymlinkLoopError):
        native_walk(tmp_path)
    # flash, by contrast, ships the same file once per level until ELOOP.
    copies = [p for p in flash_walk(tmp_path) if p.name == "mod.py"]
    assert len(copies) > 10


def test_sort_order_matches_flash_for_separator_neighbours(tmp_path):
    # '-' (0x2d) and '.' (0x2e) sort before '/' (0x2f): "a-b" < "a.b" < "a/b".
    for rel in ["a/b", "a-b", "a.b", "a/b-c", "a0", "ab/c", "a b", "é/x", "\ue000"]:
        write(tmp_path / rel, rel.encode())
    assert_same_as_flash(tmp_path)


def test_non_utf8_name_raises_unicode_encode_error_like_flash(tmp_path):
    write(tmp_path / "ok.py")
    bad = os.fsdecode(b"bad\xff.py")
    write(tmp_path / bad)
    files = flash_walk(tmp_path)
    with pytest.raises(UnicodeEncodeError):
        flash_fingerprint(tmp_path, files)
    with pytest.raises(UnicodeEncodeError) as info:
        native.fingerprint_project(tmp_path)
    assert "bad" in str(info.value)
    # The walk itself works, as in flash.
    assert [str(p) for p in native_walk(tmp_path)] == [str(p) for p in files]


def test_walk_fed_to_several_reader_threads_matches_flash(tmp_path, readers):
    """fingerprint_project hands the walk's files to 1-4 reader threads (in
    blocks of 32 consecutive files) while the walk goes on: the same digest as
    flash, and the same error when a name flash cannot encode sits deep in a
    threaded stream, with files of every size before and after it."""
    write(tmp_path / ".gitignore", b"*.log\nbuild/\n")
    write(tmp_path / "0-head.bin", b"h" * (3 << 19))
    for d in range(12):
        for f in range(30):
            size = (d * 131 + f * 17) % 3000 if (d, f) != (5, 3) else 5 << 20
            write(tmp_path / f"pkg{d:02d}" / f"m{f:02d}.py", bytes([d, f]) * (size // 2))
        write(tmp_path / f"pkg{d:02d}" / "x.log")
        write(tmp_path / f"pkg{d:02d}" / "build" / "out.py")
    assert_same_as_flash(tmp_path)
    write(tmp_path / "pkg07" / os.fsdecode(b"m10\xff.py"))
    with pytest.raises(UnicodeEncodeError):
        flash_fingerprint(tmp_path, flash_walk(tmp_path))
    with pytest.raises(UnicodeEncodeError) as info:
        native.fingerprint_project(tmp_path)
    assert "pkg07/m10" in str(info.value)


def test_ignored_non_utf8_name_is_fine(tmp_path):
    (tmp_path / ".gitignore").write_text("bad*\n")
    write(tmp_path / "ok.py")
    write(tmp_path / os.fsdecode(b"bad\xff.py"))
    assert_same_as_flash(tmp_path)


def test_get_file_tree_subdirectory_and_base_dir(tmp_path):
    (tmp_path / ".gitignore").write_text("sub/skip.py\n")
    write(tmp_path / "sub" / "skip.py")
    write(tmp_path / "sub" / "keep.py")
    write(tmp_path / "sub" / "docs" / "x.py")
    sub = tmp_path / "sub"
    for directory, base in [(sub, tmp_path), (sub, None), (sub, tmp_path / "elsewhere")]:
        expected = flash_walk(tmp_path, directory, base)
        got = native_walk(tmp_path, directory, base)
        assert [str(p) for p in got] == [str(p) for p in expected]


def test_relative_project_dir(tmp_path, monkeypatch):
    write(tmp_path / "app" / "main.py")
    write(tmp_path / "app" / "lib" / "x.py")
    monkeypatch.chdir(tmp_path)
    for form in ["app", "./app", "app/"]:
        assert_same_as_flash(Path(form))
    monkeypatch.chdir(tmp_path / "app")
    assert_same_as_flash(Path("."))


@pytest.fixture(params=["pathlib", "truediv"])
def child_path(request, monkeypatch):
    """get_file_tree makes each Path from its directory's: with pathlib's own
    _make_child_relpath where this Python has it, else with ``/``; both ways."""
    if request.param == "truediv":
        monkeypatch.setattr(native_ignore, "_child_path", operator.truediv)
    elif sys.version_info[:2] == (3, 11):
        assert native_ignore._child_path is Path._make_child_relpath
    return request.param


def test_paths_equal_flash_paths_in_every_respect(tmp_path, monkeypatch, child_path):
    write(tmp_path / "app" / "main.py")
    write(tmp_path / "app" / "a" / "b" / "c" / "x.py")
    write(tmp_path / "app" / "a" / "y.py")
    write(tmp_path / "app" / "z" / "w.py")
    write(tmp_path / "app" / "q" / "r" / "s" / "t" / "u" / "v" / "w.py")  # levels without files
    write(tmp_path / "app" / "q" / "r" / "s" / "t" / "u" / "v2" / os.fsdecode(b"\xff.py"))
    write(tmp_path / "app" / os.fsdecode(b"sp ace\xe9.py"))
    monkeypatch.chdir(tmp_path)
    for root in [tmp_path / "app", Path("app"), Path("./app/"), Path("app") / "a"]:
        expected = flash_walk(Path("app"), root)
        got = native_walk(Path("app"), root)
        assert got == expected
        assert [(type(p), p.parts, str(p), p.name, str(p.parent)) for p in got] == [
            (type(p), p.parts, str(p), p.name, str(p.parent)) for p in expected
        ]
    monkeypatch.chdir(tmp_path / "app")
    assert native_walk(Path(".")) == flash_walk(Path("."))


@pytest.mark.parametrize("enabled", [True, False])
def test_file_lists_leave_the_garbage_collector_as_they_found_it(tmp_path, enabled):
    # get_file_tree and fingerprint_project_files pause the cyclic GC while
    # they build their lists (ignore._paused_gc): its state is restored, also
    # when the call raises
    import gc

    write(tmp_path / "a" / "m.py")
    calls = [
        lambda: native_walk(tmp_path),
        lambda: native.fingerprint_project_files(tmp_path),
        lambda: native_ignore.get_file_tree(tmp_path / "nope", native_ignore.load_ignore_patterns(tmp_path)),
        lambda: native.fingerprint_project_files(tmp_path / "nope"),
    ]
    was = gc.isenabled()
    try:
        (gc.enable if enabled else gc.disable)()
        for call in calls:
            try:
                call()
            except FileNotFoundError:
                pass
            assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()


def test_missing_root_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        native.fingerprint_project(tmp_path / "nope")
    with pytest.raises(FileNotFoundError):
        native_ignore.get_file_tree(tmp_path / "nope", native_ignore.load_ignore_patterns(tmp_path))


def test_empty_project(tmp_path):
    assert_same_as_flash(tmp_path)


def test_deep_tree_beyond_recursion_and_path_max(deep_tmp):
    # flash recurses in Python (RecursionError near depth 1000) and its os calls
    # fail past PATH_MAX; the native walk has neither limit.
    tmp_path = deep_tmp  # pytest's own cleanup recurses: this fixture does not
    depth = 2500
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        for _ in range(depth):
            os.mkdir("d", dir_fd=fd)
            nfd = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nfd
        wfd = os.open("leaf.py", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(wfd, b"deep")
        os.close(wfd)
    finally:
        os.close(fd)
    files, fp = native.fingerprint_project_files(tmp_path)
    rel = "/".join(["d"] * depth) + "/leaf.py"
    assert [p.relative_to(tmp_path).as_posix() for p in files] == [rel]
    assert fp == framed_digest([(rel, b"deep")])


def test_permission_denied_directory_is_skipped_with_warning(tmp_path, caplog, unprivileged):
    write(tmp_path / "main.py")
    write(tmp_path / "locked" / "hidden.py")
    write(tmp_path / "noexec" / "a.py")
    os.chmod(tmp_path / "locked", 0o000)
    os.chmod(tmp_path / "noexec", 0o644)  # listable, not searchable
    try:
        got, expected = unprivileged(
            lambda: (
                [str(p) for p in native_walk(tmp_path)],
                [str(p) for p in flash_walk(tmp_path)],
            )
        )
    finally:
        os.chmod(tmp_path / "locked", 0o755)
        os.chmod(tmp_path / "noexec", 0o755)
    assert got == expected == [str(tmp_path / "main.py")]


def test_permission_warning_is_logged(tmp_path, caplog, unprivileged):
    write(tmp_path / "locked" / "x.py")
    os.chmod(tmp_path / "locked", 0o000)
    try:
        records = unprivileged(lambda: _walk_capturing_warnings(tmp_path))
    finally:
        os.chmod(tmp_path / "locked", 0o755)
    assert any("Permission denied" in r and str(tmp_path / "locked") in r for r in records)


def _walk_capturing_warnings(project: Path) -> list[str]:
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    handler = Collect(level=logging.WARNING)
    logger = logging.getLogger(native_ignore.__name__)
    logger.addHandler(handler)
    try:
        native_walk(project)
    finally:
        logger.removeHandler(handler)
    return messages


# ---- generated trees ----------------------------------------------------------

NAMES = [
    "a", "b", "a-b", "a.b", "A", "z z", "#x", "!x", "[x]", "x]", "é", "日本", "\ue000",
    ".env", ".env.local", ".env.prod", ".hidden", "tests", "test", "docs", "env", ".venv",
    "venv", "README.md", "x.md", "test_a.py", "a_test.py", "m.pyc", "build", "dist",
    "__pycache__", "a b.txt", "*", "?", "x\\y", "node_modules", "lib", "keep.log", "a.log",
]
GLOBS = ["*", "**", "?", "*.py", "*.md", "[ab]*", "[!a]", "te?t*", "a*b", "*.log", "\\#x", "\\!x"]

segment = st.sampled_from(NAMES)
tree_entry = st.tuples(
    st.lists(segment, min_size=1, max_size=4),
    st.sampled_from(["file", "file", "file", "dir", "link_file", "link_dir", "broken"]),
    st.binary(max_size=64),
)


@st.composite
def gitignore_line(draw):
    kind = draw(st.sampled_from(["pattern", "pattern", "pattern", "comment", "blank"]))
    if kind == "comment":
        return "# " + draw(segment)
    if kind == "blank":
        return draw(st.sampled_from(["", "   ", "\t"]))
    segs = draw(st.lists(st.one_of(segment, st.sampled_from(GLOBS)), min_size=1, max_size=3))
    line = "/".join(segs)
    if draw(st.booleans()):
        line += "/"
    if draw(st.integers(0, 4)) == 0:
        line = "/" + line
    if draw(st.integers(0, 3)) == 0:
        line = "!" + line
    if draw(st.integers(0, 5)) == 0:
        line += "  "
    return line


def build_tree(root: Path, entries, gitignore_lines) -> None:
    if gitignore_lines is not None:
        (root / ".gitignore").write_text("\n".join(gitignore_lines) + "\n", encoding="utf-8")
    for parts, kind, data in entries:
        path = root.joinpath(*parts)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists() or path.is_symlink():
                continue
            if kind == "file":
                path.write_bytes(data)
            elif kind == "dir":
                path.mkdir()
            elif kind == "link_file":
                target = root / "linked_target.py"
                if not target.exists():
                    target.write_bytes(b"target")
                os.symlink(os.path.relpath(target, path.parent), path)
            elif kind == "link_dir":
                target = root / "linked_dir"
                if path.parent.resolve().is_relative_to(target.resolve()):
                    continue  # a link to linked_dir inside it is a cycle: SymlinkLoopError by design
                (target / "inner").mkdir(parents=True, exist_ok=True)
                (target / "inner" / "f.py").write_bytes(b"inner")
                os.symlink(os.path.relpath(target, path.parent), path)
            else:
                os.symlink("does-not-exist", path)
        except (NotADirectoryError, FileExistsError, IsADirectoryError, FileNotFoundError):
            continue  # a file already stands where a directory is needed


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    entries=st.lists(tree_entry, max_size=25),
    lines=st.one_of(st.none(), st.lists(gitignore_line(), max_size=8)),
)
def test_generated_trees_match_flash(tmp_path_factory, entries, lines):
    root = tmp_path_factory.mktemp("tree")
    build_tree(root, entries, lines)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        flash_spec = outcome(flash_ignore.load_ignore_patterns, root, messages=False)
    native_spec = outcome(native_ignore.load_ignore_patterns, root, messages=False)
    if flash_spec[0] == "err":
        base = ValueError if issubclass(flash_spec[1], ValueError) else re.error
        assert native_spec[0] == "err" and issubclass(native_spec[1], base)
        return
    assert native_spec[0] == "ok"
    expected = flash_ignore.get_file_tree(root, flash_spec[1])
    got = native_ignore.get_file_tree(root, native_spec[1])
    assert [str(p) for p in got] == [str(p) for p in expected]
    assert native.fingerprint_project(root) == flash_fingerprint(root, expected)


# ---- listing workers (csrc/walk_par.c): the same answers with none, one, several ----

from runpod_flash_native import _fingerprint  # noqa: E402 - the test hook

WORKER_COUNTS = [-1, 1, 3]  # -1: the walk fetches every directory itself


@pytest.fixture(params=WORKER_COUNTS, ids=lambda n: f"workers={n}")
def list_workers(request):
    previous = _fingerprint._set_list_workers(request.param)
    try:
        yield request.param
    finally:
        _fingerprint._set_list_workers(previous)


def test_set_list_workers_checks_its_argument():
    previous = _fingerprint._set_list_workers(2)
    try:
        assert _fingerprint._set_list_workers(1) == 2
        for bad in (-2, 99):
            with pytest.raises(ValueError):
                _fingerprint._set_list_workers(bad)
        with pytest.raises(TypeError):
            _fingerprint._set_list_workers("1")
    finally:
        _fingerprint._set_list_workers(previous)


def test_many_small_directories_match_flash(tmp_path, list_workers):
    # one file per directory, two levels, plus an ignored .venv: workers list
    # far ahead of the walk (well past its look-ahead bound's descriptors)
    for i in range(600):
        write(tmp_path / f"p{i // 40:02}" / f"d{i % 40:02}" / f"m{i}.py", b"%d" % i)
    for i in range(50):
        write(tmp_path / ".venv" / "lib" / f"x{i}" / "f.py")
    write(tmp_path / "empty" / "sub" / "deeper" / ".keep")
    (tmp_path / "bare").mkdir()
    assert_same_as_flash(tmp_path)


def test_wide_directory_matches_flash(tmp_path, list_workers):
    for i in range(3000):
        write(tmp_path / "wide" / f"f{i:05}_{'x' * (i % 50)}.py", b"%d" % i)
    assert_same_as_flash(tmp_path)


def test_deep_chain_matches_flash(tmp_path, list_workers):
    d = tmp_path
    for i in range(300):
        d = d / f"d{i % 3}"
        write(d / "f.py", b"%d" % i)
    assert_same_as_flash(tmp_path)


# ---- deep directories: the readers open files relative to held directories
# (csrc/os.c rfn_dircache, from _fingerprint._DIRCACHE_DEPTH components on)


def deep_branching_tree(root: Path, depth: int) -> Path:
    """A chain `depth` levels below root with, at every level, files sorting
    before ("a.py") and after ("z.py") the next level "d", a sibling branch
    "c", "c/e", and the same file name "m.py" at every level with different content:
    a file opened in the wrong directory changes the digest."""
    d = root
    for i in range(depth):
        write(d / "a.py", b"a%d" % i)
        write(d / "m.py", b"m%d" % i)
        write(d / "z.py", b"z%d" % i)
        if i % 5 == 0:
            write(d / "c" / "e" / "m.py", b"ce%d" % i)
            write(d / "c" / "a.py", b"ca%d" % i)
            write(d / "c" / "m.py", b"c%d" % i)  # then d/a.py: a sibling of the same length
        d = d / "d"
    write(d / "m.py", b"bottom")
    return d


@pytest.mark.parametrize("big_head", [False, True], ids=["inline", "threaded"])
def test_deep_directories_match_flash(deep_tmp, readers, big_head):
    depth = 3 * _fingerprint._DIRCACHE_DEPTH
    deep_branching_tree(deep_tmp, depth)
    if big_head:  # past the inline threshold: the rest goes to the readers, in blocks
        write(deep_tmp / "0.bin", b"h" * (3 << 19))
    assert_same_as_flash(deep_tmp)


def test_deep_directories_through_symlinks_match_flash(deep_tmp):
    # a symlink in the middle of a deep path resolves as one open() of the
    # full path would; the held levels below it are the link's target's
    real = deep_tmp / "real"
    bottom = deep_branching_tree(real, _fingerprint._DIRCACHE_DEPTH + 4)
    other = deep_tmp / "other"
    deep_branching_tree(other, 6)
    os.symlink(other, bottom / "link")
    os.symlink(real / "d" / "d" / "d", deep_tmp / "short")
    assert_same_as_flash(deep_tmp)


def test_deep_file_errors_are_flash_errors(deep_tmp, unprivileged):
    os.chmod(deep_tmp, 0o755)  # mkdtemp's 0700 would stop the unprivileged child at the root
    bottom = deep_branching_tree(deep_tmp, _fingerprint._DIRCACHE_DEPTH + 8)
    locked = bottom.parent.parent / "m.py"
    os.chmod(locked, 0)
    try:
        def both():
            files = flash_walk(deep_tmp)
            try:
                flash_fingerprint(deep_tmp, files)
            except OSError as e:
                expected = (type(e), e.errno, e.filename)
            try:
                native.fingerprint_project(deep_tmp)
            except OSError as e:
                return expected, (type(e), e.errno, e.filename)
            return expected, None
        expected, got = unprivileged(both)
    finally:
        os.chmod(locked, 0o644)
    assert expected[0] is PermissionError and expected[2] == str(locked)
    assert got == expected


def test_earliest_error_in_sorted_order_wins_over_directories_listed_ahead(tmp_path, list_workers):
    # Workers list z*/ long before the walk reaches them; the cycle the
    # walk meets first (sorted order) is the one raised, in both modes.
    for i in range(200):
        write(tmp_path / f"b{i:03}" / "m.py")
    write(tmp_path / "a" / "deep" / "m.py")
    os.symlink("..", tmp_path / "a" / "deep" / "up")
    write(tmp_path / "z" / "m.py")
    os.symlink("..", tmp_path / "z" / "up")
    with pytest.raises(native.SymlinkLoopError) as info:
        native.fingerprint_project(tmp_path)
    assert info.value.filename == str(tmp_path / "a" / "deep" / "up")
    # get_file_tree walks in listing order: the first listed of the two wins
    names = os.listdir(tmp_path)
    first = "a/deep/up" if names.index("a") < names.index("z") else "z/up"
    with pytest.raises(native.SymlinkLoopError) as info:
        native_walk(tmp_path)
    assert info.value.filename == str(tmp_path / first)


def test_permission_warnings_in_directories_listed_ahead(tmp_path, unprivileged, list_workers):
    for i in range(100):
        write(tmp_path / f"d{i:03}" / "m.py")
    locked = [tmp_path / "d010", tmp_path / "d050" / "inner", tmp_path / "d099"]
    for d in locked:
        write(d / "hidden.py")
        os.chmod(d, 0o000)
    try:
        got, expected, fp = unprivileged(lambda: (
            [str(p) for p in native_walk(tmp_path)],
            [str(p) for p in flash_walk(tmp_path)],
            native.fingerprint_project(tmp_path),
        ))
        expected_fp = unprivileged(lambda: flash_fingerprint(tmp_path, flash_walk(tmp_path)))
    finally:
        for d in locked:
            os.chmod(d, 0o755)
    assert got == expected
    assert fp == expected_fp
    assert not any("hidden" in p for p in got)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    entries=st.lists(tree_entry, max_size=40),
    lines=st.one_of(st.none(), st.lists(gitignore_line(), max_size=6)),
    workers=st.sampled_from(WORKER_COUNTS),
)
def test_generated_trees_match_flash_with_any_worker_count(tmp_path_factory, entries, lines, workers):
    root = tmp_path_factory.mktemp("tree")
    build_tree(root, entries, lines)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        flash_spec = outcome(flash_ignore.load_ignore_patterns, root, messages=False)
    if flash_spec[0] == "err":
        return
    expected = outcome(flash_ignore.get_file_tree, root, flash_spec[1])
    previous = _fingerprint._set_list_workers(workers)
    try:
        spec = native_ignore.load_ignore_patterns(root)
        got = outcome(native_ignore.get_file_tree, root, spec)
        fp = outcome(native.fingerprint_project, root)
    finally:
        _fingerprint._set_list_workers(previous)
    assert got == expected
    if expected[0] == "ok":
        assert fp == ("ok", flash_fingerprint(root, flash_ignore.get_file_tree(root, flash_spec[1])))

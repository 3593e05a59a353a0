"""The native gitwildmatch matcher against pathspec 1.1.1 and flash's ignore module."""

from __future__ import annotations

import logging
import os
import re
import tempfile
import threading
import time
import warnings
from pathlib import Path, PurePosixPath

import pathspec
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from runpod_flash.cli.utils import ignore as flash_ignore

import runpod_flash_native._fingerprint as native
from runpod_flash_native import ignore as rfn_ignore

# ---- helpers -------------------------------------------------------------------


def ref_spec(patterns):
    """flash's PathSpec; silences the 'gitwildmatch' deprecation and sre's
    FutureWarnings about bracket expressions like '[[' or '[a--]'."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pathspec.PathSpec.from_lines("gitwildmatch", patterns)


def ref_error(patterns):
    """(exception, index of the pattern pathspec fails on) or (None, None)."""
    try:
        ref_spec(patterns)
    except (ValueError, re.error) as e:
        for i, p in enumerate(patterns):
            try:
                ref_spec([p])
            except (ValueError, re.error):
                return e, i
        raise AssertionError("pathspec fails on the list but on no single pattern") from e
    return None, None


def ours_vs_ref(patterns, paths):
    err, idx = ref_error(patterns)
    if err is not None:
        base = re.error if isinstance(err, re.error) else ValueError
        ours = native.PatternRegexError if base is re.error else native.InvalidPatternError
        with pytest.raises(ours) as info:
            native.compile_ignore_patterns(patterns, [f"origin {i}" for i in range(len(patterns))])
        assert isinstance(info.value, base)
        assert repr(patterns[idx]) in str(info.value)
        assert f"origin {idx}" in str(info.value)
        return
    ref = ref_spec(patterns)
    spec = native.compile_ignore_patterns(patterns)
    assert list(spec.patterns) == [p.pattern for p in ref.patterns]
    assert len(spec) == len(ref)
    for path in paths:
        expected = ref.match_file(path)
        assert spec.match_file(path) is expected, (patterns, path)
        if not path.startswith(("/", "./")):
            # The walker's entry point: bytes -> os.fsdecode -> match, no GIL.
            try:
                raw = os.fsencode(path)
            except UnicodeEncodeError:
                continue
            assert native._match_fsbytes(spec, raw) is expected, (patterns, path)
        check_walk_levels(ref, spec, path)


def check_walk_levels(ref, spec, path):
    """The walk decides an entry level by level from its parent's bits
    (rfn_matcher_walk_entry): every split of a walk-shaped path into the walk
    root's prefix and the names below it must agree with pathspec at each level."""
    segs = path.split("/")
    if any(s in ("", ".", "..") for s in segs):
        return  # never a path the walk builds
    try:
        raw = [os.fsencode(s) for s in segs]
    except UnicodeEncodeError:
        return
    for k in range(len(segs)):
        prefix = "/".join(segs[:k])
        expected = [ref.match_file("/".join(segs[: i + 1])) for i in range(k, len(segs))]
        assert native._match_walk(spec, prefix, raw[k:]) == expected, (spec.patterns, prefix, segs)


# ---- strategies ------------------------------------------------------------------

PATTERN_CHARS = "*?[]!^-/\\#. \n\tabcé\u00a0\ufeff\U0001d518\udcff"
PATH_CHARS = "abc.-_ #![]*?^\\\n é\u00a0\udcff\U0001d518"

segment_text = st.one_of(
    st.sampled_from(["a", "b", "docs", "tests", "README.md", "x.md", "a.pyc", ".env",
                     ".git", "build", "test_a.py", "a_test.py", "env", "x.egg-info",
                     "f.tar.gz", ".gitignore", "__pycache__", ".", ".hidden", "a b",
                     "#x", "!y", "[a]", "\n", "é", "\udcff"]),
    st.text(PATH_CHARS, min_size=1, max_size=6),
)


@st.composite
def paths(draw):
    segs = draw(st.lists(segment_text, min_size=1, max_size=4))
    path = "/".join(segs)
    path = draw(st.sampled_from(["", "", "", "/", "./", "//"])) + path
    return path + draw(st.sampled_from(["", "", "", "/", "\n"]))


def _few_stars(p):
    # pathspec's regexes backtrack polynomially in the number of '*'.
    return p.count("*") <= 5


patterns_st = st.one_of(
    st.sampled_from(rfn_ignore.BUILTIN_PATTERNS),
    st.text(PATTERN_CHARS, max_size=10).filter(_few_stars),
    st.builds(lambda a, b: a + "/" + b,
              st.sampled_from(["", "**", "*", "a", "docs", "[!a]", "a?"]),
              st.sampled_from(["", "**", "*", "b", "*.md", "[a-c]", "**/b"])),
)

FAST = settings(max_examples=350, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


# ---- differential: pathspec ------------------------------------------------------


@FAST
@given(st.lists(patterns_st, min_size=1, max_size=6), st.lists(paths(), min_size=1, max_size=8))
@example(["[z-a]"], ["z"])
@example(["foo\\"], ["foo"])
@example(["!"], ["a"])
@example(["[z-a]/["], ["z"])
@example(["[z-a]\\"], ["z"])
@example(["a/\\"], ["a"])
@example(["[\\-a]", "[Z-\\]"], ["\\", "-", "a", "Z", "[", "b"])
@example(["[a-\\]"], ["a"])
@example(["*a*a*a*a*b"], ["aaaaaaaaaaaaaaaaaaaa"])
def test_matches_pathspec(patterns, path_list):
    ours_vs_ref(patterns, path_list)


@FAST
@given(st.lists(st.sampled_from(rfn_ignore.BUILTIN_PATTERNS) | patterns_st, min_size=1,
                max_size=30),
       st.lists(paths(), min_size=1, max_size=10))
def test_long_pattern_lists_match_pathspec(patterns, path_list):
    ours_vs_ref(patterns, path_list)


@st.composite
def pattern_and_near_paths(draw):
    """A pattern and paths made by filling in its wildcards, so that a good
    share of them match (random paths mostly do not)."""
    pattern = draw(patterns_st)
    fills = {"*": ["", "a", "b.c", "*", "\n", "a/b"], "?": ["a", "?", "/", "\n", "é"],
             "[": ["a", "b", "]", "-", "^", "/", "\\"], "!": ["", "!"], "\\": ["", "\\"]}
    out = []
    for _ in range(draw(st.integers(1, 4))):
        chars = []
        skip_class = False
        for ch in pattern:
            if skip_class:
                skip_class = ch != "]"
                continue
            if ch in fills:
                chars.append(draw(st.sampled_from(fills[ch])))
                skip_class = ch == "["
            else:
                chars.append(ch)
        path = "".join(chars)
        out.append(draw(st.sampled_from(["", "x/", "a/b/"])) + path
                   + draw(st.sampled_from(["", "/y", "\n", "/"])))
    return [pattern], out


@FAST
@given(pattern_and_near_paths())
def test_near_paths_match_pathspec(case):
    ours_vs_ref(*case)


bracket_soup = st.one_of(
    st.text("[]-az\\!/^ *", max_size=7),
    st.builds(lambda pre, neg, body, post: pre + "[" + neg + body + "]" + post,
              st.sampled_from(["", "a", "*", "a/"]), st.sampled_from(["", "!", "^"]),
              st.text("az-]\\^![/", max_size=4), st.sampled_from(["", "z", "\\", "/b", "["])),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(bracket_soup, min_size=1, max_size=3),
       st.lists(st.text("[]-az\\!/^ ", max_size=6), max_size=4))
def test_bracket_and_escape_soup_matches_pathspec(patterns, path_list):
    ours_vs_ref(patterns, path_list)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=12).filter(_few_stars), st.text(max_size=12))
def test_any_text_matches_pathspec(pattern, path):
    ours_vs_ref([pattern], [path, "a/" + path, path + "/b"])


# ---- explicit edge cases ----------------------------------------------------------

EDGE_CASES = [
    # (patterns, path, ignored)
    (["docs/"], "docs", False),
    (["docs/"], "docs/", True),
    (["docs/"], "docs/a.py", True),
    (["docs/"], "src/docs/a.py", True),
    (["docs"], "docs", True),
    (["docs"], "src/docs", True),
    (["docs"], "docsx", False),
    (["docs/", "*.md", "!README.md"], "docs/README.md", False),  # last match wins (flash prunes docs/ in the walk)
    (["docs/", "*.md", "!README.md"], "docs", False),
    (["docs/", "*.md", "!README.md"], "docs/x.py", True),
    (["*.md", "!README.md"], "docs/README.md", False),
    (["*.md", "!README.md"], "a/b.md", True),
    (["**"], "a", True),
    (["**"], "", False),
    (["**"], "\n", False),               # '.' does not match a newline
    (["**"], "\n\n", False),
    (["**/"], "a", False),
    (["**/"], "a/b", True),
    (["**/a"], "x/y/a", True),
    (["**/a"], "a", True),
    (["a/**"], "a", False),
    (["a/**"], "a/b", True),
    (["a/**/b"], "a/b", True),
    (["a/**/b"], "a/x/y/b", True),
    (["a/**/b"], "a/x\n/b", False),      # '.+' stops at a newline
    (["a/**/b"], "ab", False),
    (["a/**/**/b"], "a/x/b", True),
    (["*"], "a/b", True),
    (["*"], "\n", False),
    (["*/"], "a", False),
    (["*/"], "a/b", True),
    (["/a"], "a", True),
    (["/a"], "b/a", False),
    (["/"], "a", False),
    (["//"], "a/b", False),              # a one-token program: empty segment, then "/"
    (["//"], "/a", False),               # one leading "/" is dropped: "a"
    (["//"], "//a", True),
    (["a//"], "a//b", True),
    (["a//"], "a/b", False),
    (["!/"], "a/b", False),
    (["a", "!/"], "a/b", False),
    (["a", "!/"], "a", True),
    (["\\#a"], "#a", True),
    (["#a"], "#a", False),
    (["\\!a"], "!a", True),
    (["!a"], "!a", False),
    (["\\*"], "*", True),
    (["\\*"], "x", False),
    (["foo\\ "], "foo ", True),
    (["foo "], "foo", True),
    (["foo "], "foo ", False),
    ([" foo"], " foo", True),
    (["[!a]"], "/", False),              # anchored: '/' is never a whole segment
    (["x[!a]y"], "x/y", True),           # a negated class matches '/'
    (["x[^a]y"], "x/y", True),
    (["x?y"], "x/y", False),
    (["x?y"], "x\ny", True),             # '[^/]' matches a newline
    (["[]a]"], "]", True),
    (["[]a]"], "a", True),
    (["[a-]"], "-", True),
    (["[a-]"], "b", False),
    (["[a-]"], ".", False),              # "a-]" is 'a' and '-', not a range up to ']'
    (["[a-]"], "0", False),
    (["[]-a]"], "^", True),              # range ']'..'a'
    (["[a"], "[a", False),               # unterminated: the pattern is dropped
    (["x", "[a"], "x", True),
    (["["], "[", False),
    (["[é-ü]"], "ñ", True),
    (["[é-ü]"], "e", False),
    (["a"], "a\n", True),                # '$' before a final newline
    (["a"], "a\n\n", False),
    (["a/"], "a\n", False),
    (["a"], "/a", True),                 # one leading '/' is dropped
    (["a"], "./a", True),
    (["/a"], "//a", False),
    (["\ufeffa"], "a", False),           # a BOM is an ordinary code point
    (["\ufeffa"], "\ufeffa", True),
]


@pytest.mark.parametrize("patterns,path,ignored", EDGE_CASES)
def test_edge_cases(patterns, path, ignored):
    assert ref_spec(patterns).match_file(path) is ignored
    assert native.compile_ignore_patterns(patterns).match_file(path) is ignored


REJECTED = [
    ("!", ValueError),
    ("! ", ValueError),
    ("foo\\", ValueError),
    ("a\\/b", ValueError),               # split on '/' leaves "a\"
    ("\\", ValueError),
    ("[z-a]", re.error),
    ("x/[b-a]/y", re.error),
    ("[z-a]\\", ValueError),             # translation errors come before re.compile
    ("[a-\\]", re.error),
]


@pytest.mark.parametrize("pattern,base", REJECTED)
def test_rejected_patterns(pattern, base):
    with pytest.raises(base):
        ref_spec(["ok", pattern])
    own = native.PatternRegexError if base is re.error else native.InvalidPatternError
    with pytest.raises(own) as info:
        native.compile_ignore_patterns(["ok", pattern], ["line 1", ".gitignore line 7"])
    assert isinstance(info.value, base)
    assert repr(pattern) in str(info.value)
    assert ".gitignore line 7" in str(info.value)


def test_discarded_bad_range_is_not_an_error():
    # A bad range only fails at re.compile, after the unterminated '[' has
    # already made pathspec drop the pattern.
    spec = native.compile_ignore_patterns(["[z-a]/["])
    assert spec.patterns == ("[z-a]/[",)
    assert not spec.match_file("z/[")
    ref_spec(["[z-a]/["])


def test_error_types():
    assert issubclass(native.InvalidPatternError, ValueError)
    assert issubclass(native.PatternRegexError, re.error)
    with pytest.raises(native.InvalidPatternError, match=r"'!'"):
        native.compile_ignore_patterns(["!"])


# ---- the object ---------------------------------------------------------------------


def test_spec_object():
    spec = native.compile_ignore_patterns(["a", "", "#c", "b/"])
    assert spec.patterns == ("a", "#c", "b/")
    assert len(spec) == 3
    assert "IgnoreSpec" in repr(spec) and "'b/'" in repr(spec)
    assert spec.match_file(PurePosixPath("x/a"))
    assert spec.match_file(Path("b/c"))
    assert not spec.match_file(Path("c"))
    for bad in (b"a", 1, None):
        with pytest.raises(TypeError):
            spec.match_file(bad)
    with pytest.raises(TypeError):
        native.compile_ignore_patterns([b"a"])
    with pytest.raises(TypeError):
        native.compile_ignore_patterns("a/b")
    assert native.compile_ignore_patterns(p for p in ("a", "b")).patterns == ("a", "b")
    with pytest.raises(TypeError):
        native.compile_ignore_patterns(["a"], [1])
    with pytest.raises(ValueError):
        native.compile_ignore_patterns(["a"], [])
    with pytest.raises(TypeError):
        type(spec)()
    with pytest.raises(TypeError):
        type("Sub", (type(spec),), {})
    with pytest.raises((TypeError, AttributeError)):
        type(spec).match_file = None
    with pytest.raises(AttributeError):
        spec.patterns = ()
    with pytest.raises(TypeError):
        native._match_fsbytes(object(), b"a")


def test_patterns_are_exact_str():
    class S(str):
        pass

    spec = native.compile_ignore_patterns([S("a")])
    assert type(spec.patterns[0]) is str


def test_long_paths_match_pathspec():
    patterns = ["*.pyc", "a/**/b", "x[!y]z", "deep/"]
    for n in (900, 1100, 5000):
        for path in ("d/" * n + "f.pyc", "a/" + "x/" * n + "b", "é" * n + "/deep/", "q" * n):
            expected = ref_spec(patterns).match_file(path)
            spec = native.compile_ignore_patterns(patterns)
            assert spec.match_file(path) is expected
            assert native._match_fsbytes(spec, os.fsencode(path)) is expected


def test_no_exponential_blowup():
    """Patterns a backtracking matcher takes exponential time on: matching
    time grows polynomially with the path. By contrast, not by a wall-clock
    bound: paths 10x longer may take at most 1,000x as long (quadratic
    growth is 100x); backtracking over 12 stars would multiply it by ~10^12.
    Each time is the best of 5 (load from elsewhere only adds time)."""
    spec = native.compile_ignore_patterns(["*a*a*a*a*a*a*a*a*a*a*a*a*b", "**/a/**/a/**/a/**/b"])

    def best_of_5(n):
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            assert not spec.match_file("a" * n)
            assert not spec.match_file("a/" * (n // 2))
            best = min(best, time.perf_counter() - start)
        return best

    best_of_5(300)  # warm up
    short, long = best_of_5(300), best_of_5(3000)
    assert long < 1000 * short, (short, long)


def test_shared_across_threads():
    spec = native.compile_ignore_patterns(list(rfn_ignore.BUILTIN_PATTERNS))
    ref = ref_spec(list(rfn_ignore.BUILTIN_PATTERNS))
    paths_ = ["docs/README.md", "README.md", "a/b.pyc", "src/x.py", "tests/t.py", ".env"]
    expected = [ref.match_file(p) for p in paths_]
    failures = []

    def run():
        for _ in range(2000):
            got = [native._match_fsbytes(spec, p.encode()) for p in paths_]
            if got != expected:
                failures.append(got)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures


# ---- fsdecode ---------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=24) | st.lists(st.sampled_from(
    [b"\xed\xa0\x80", b"\xed\x9f\xbf", b"\xe0\x80\x80", b"\xe0\xa0\x80", b"\xf0\x8f\xbf\xbf",
     b"\xf0\x90\x80\x80", b"\xf4\x8f\xbf\xbf", b"\xf4\x90\x80\x80", b"\xc0\xaf", b"\xc2\x80",
     b"\xe2\x82", b"\xf0\x9f\x98", b"\xff", b"\x80", b"a", b"/", b"\x00"]), max_size=8).map(b"".join))
def test_fsdecode_matches_os_fsdecode(raw):
    assert native._fsdecode(raw) == os.fsdecode(raw)


# ---- load_ignore_patterns vs flash ----------------------------------------------------

gitignore_line = st.one_of(
    st.sampled_from(["", "   ", "# comment", "  # indented comment", "*.log", "build/",
                     "!keep.md", "secret.txt   ", "\tdata/\t", "/root.txt", "docs/**",
                     "foo\\ ", "a b", "\\#hash", "\u00a0nbsp\u00a0"]),
    st.text("ab*?/!#. \t\\[]é", max_size=8),
)


@st.composite
def gitignore_bytes(draw):
    lines = draw(st.lists(gitignore_line, max_size=8))
    eol = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    text = eol.join(lines) + draw(st.sampled_from(["", eol]))
    data = text.encode("utf-8", "surrogatepass")
    if draw(st.booleans()):
        data = b"\xef\xbb\xbf" + data
    if draw(st.integers(0, 9)) == 0:
        data += b"\xff\xfe"          # invalid UTF-8: warning, no user patterns
    return data


SAMPLE_PATHS = ["a.log", "x/a.log", "build", "build/x", "keep.md", "README.md", "docs/README.md",
                "root.txt", "x/root.txt", "secret.txt", "data/x", "foo ", "a b", "#hash",
                "src/main.py", "tests/test_x.py", "x_test.py", ".env", ".gitignore", "docs/x",
                "\ufeff*.log", "ab", "a/b", "é"]


def _records(caplog, name):
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == name]


def _load_both(project, caplog):
    caplog.clear()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = flash_ignore.load_ignore_patterns(project)
        ref_exc = None
    except (ValueError, re.error) as e:
        ref, ref_exc = None, e
    try:
        ours = rfn_ignore.load_ignore_patterns(project)
        ours_exc = None
    except (ValueError, re.error) as e:
        ours, ours_exc = None, e
    return ref, ref_exc, ours, ours_exc


def _compare_loads(project, caplog):
    with caplog.at_level(logging.DEBUG):
        ref, ref_exc, ours, ours_exc = _load_both(project, caplog)
    if ref_exc is not None:
        base = re.error if isinstance(ref_exc, re.error) else ValueError
        assert isinstance(ours_exc, base), (ref_exc, ours_exc)
        assert ".gitignore line" in str(ours_exc)
        return
    assert ours_exc is None, ours_exc
    assert list(ours.patterns) == [p.pattern for p in ref.patterns]
    assert _records(caplog, flash_ignore.log.name) == _records(caplog, rfn_ignore.log.name)
    for path in SAMPLE_PATHS:
        assert ours.match_file(path) is ref.match_file(path), path
        assert rfn_ignore.should_ignore(project / path, ours, project) is \
            flash_ignore.should_ignore(project / path, ref, project)
    assert rfn_ignore.parse_ignore_file(project / ".gitignore") == \
        flash_ignore.parse_ignore_file(project / ".gitignore")


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(gitignore_bytes(), st.booleans())
def test_load_ignore_patterns_matches_flash(caplog, data, flashignore):
    with tempfile.TemporaryDirectory() as d:
        project = Path(d)
        (project / ".gitignore").write_bytes(data)
        if flashignore:
            (project / ".flashignore").write_text("x\n")
        _compare_loads(project, caplog)


def test_load_without_gitignore(caplog, tmp_path):
    _compare_loads(tmp_path, caplog)
    spec = rfn_ignore.load_ignore_patterns(tmp_path)
    assert spec.patterns == rfn_ignore.BUILTIN_PATTERNS


def test_gitignore_is_a_directory(caplog, tmp_path):
    (tmp_path / ".gitignore").mkdir()
    _compare_loads(tmp_path, caplog)
    assert any("Failed to read .gitignore" in m for _, m in _records(caplog, rfn_ignore.log.name))


def test_invalid_utf8_warns(caplog, tmp_path):
    (tmp_path / ".gitignore").write_bytes(b"*.log\n\xff\n")
    _compare_loads(tmp_path, caplog)
    msgs = _records(caplog, rfn_ignore.log.name)
    assert (logging.WARNING, next(m for _, m in msgs if m.startswith("Failed to read"))) in msgs
    assert rfn_ignore.load_ignore_patterns(tmp_path).patterns == rfn_ignore.BUILTIN_PATTERNS


def test_invalid_gitignore_pattern_names_its_line(caplog, tmp_path):
    (tmp_path / ".gitignore").write_text("# c\n\nok\nbad\\\n")
    _compare_loads(tmp_path, caplog)
    with pytest.raises(native.InvalidPatternError, match=r"'bad\\\\' \(\.gitignore line 4\)"):
        rfn_ignore.load_ignore_patterns(tmp_path)


def test_builtin_patterns_are_flashs():
    with tempfile.TemporaryDirectory() as d:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = flash_ignore.load_ignore_patterns(Path(d))
    assert rfn_ignore.BUILTIN_PATTERNS == tuple(p.pattern for p in ref.patterns)


def test_should_ignore_outside_base(tmp_path):
    spec = rfn_ignore.load_ignore_patterns(tmp_path)
    assert rfn_ignore.should_ignore(Path("/elsewhere/x.md"), spec, tmp_path) is False
    assert rfn_ignore.should_ignore(tmp_path / "x.md", spec, tmp_path) is True
    assert rfn_ignore.should_ignore(tmp_path / "README.md", spec, tmp_path) is False

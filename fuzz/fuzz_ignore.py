"""Fuzz the native gitwildmatch matcher against pathspec 1.1.1 (flash's).

For random pattern lists and paths: compile_ignore_patterns must fail exactly
where PathSpec.from_lines("gitwildmatch", ...) fails (ValueError vs re.error),
and otherwise IgnoreSpec.match_file, the walker's GIL-free entry point
(_match_fsbytes) and the walker's level-by-level decisions (_match_walk, for
every split of a walk-shaped path) must all equal pathspec's match_file.

    python fuzz/fuzz_ignore.py [corpus dirs...] [libFuzzer flags]
"""

import os
import re
import sys
import warnings

import atheris

with atheris.instrument_imports():
    import pathspec

from _common import check_native, text

import runpod_flash_native._fingerprint as native

PATTERN_CHARS = "*?[]!^-/\\#. \n\tabcé\u00a0\ufeff\U0001d518\udcff"
PATH_CHARS = "abc.-_ #![]*?^\\\n/é\u00a0\udcff\U0001d518"
BUILTIN = [".build/", "*.tar.gz", ".git/", "__pycache__/", "*.pyc", "*.egg-info/", "dist/",
           ".venv/", ".env", "tests/", "test_*.py", "*_test.py", "docs/", "*.md", "!README.md",
           "a/**/b", "**/x", "x/**", "/a", "a/", "[a-c]*", "[!b]?"]


def ref_outcome(patterns):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return pathspec.PathSpec.from_lines("gitwildmatch", patterns), None
        except re.error as e:
            return None, re.error
        except ValueError as e:
            return None, ValueError


def TestOneInput(data):
    fdp = atheris.FuzzedDataProvider(data)
    patterns = []
    for _ in range(fdp.ConsumeIntInRange(1, 4)):
        if fdp.ConsumeIntInRange(0, 3) == 0:
            patterns.append(BUILTIN[fdp.ConsumeIntInRange(0, len(BUILTIN) - 1)])
        else:
            patterns.append(text(fdp, PATTERN_CHARS, 14))
    if any(p.count("*") > 5 for p in patterns):
        return  # pathspec's regexes backtrack polynomially in '*'
    paths = [text(fdp, PATH_CHARS, 24) for _ in range(fdp.ConsumeIntInRange(1, 4))]

    ref, ref_err = ref_outcome(patterns)
    try:
        spec = native.compile_ignore_patterns(patterns)
        err = None
    except native.PatternRegexError:
        err = re.error
    except native.InvalidPatternError:
        err = ValueError
    if ref_err is not None or err is not None:
        assert err is ref_err, (patterns, err, ref_err)
        return
    for path in paths:
        expected = ref.match_file(path)
        assert spec.match_file(path) is expected, (patterns, path)
        if path.startswith(("/", "./")):
            continue
        try:
            raw = os.fsencode(path)
        except UnicodeEncodeError:
            continue
        assert native._match_fsbytes(spec, raw) is expected, (patterns, path)
        segs = path.split("/")
        if any(s in ("", ".", "..") for s in segs):
            continue
        parts = [os.fsencode(s) for s in segs]
        levels = [ref.match_file("/".join(segs[: i + 1])) for i in range(len(segs))]
        for k in range(len(segs)):
            got = native._match_walk(spec, "/".join(segs[:k]), parts[k:])
            assert got == levels[k:], (patterns, segs, k, got, levels)


if __name__ == "__main__":
    check_native()
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()

"""The project as flash sees it: the shipped files and their fingerprint,
with failures turned into one line naming the path."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from ._common import CliError, Guard, rel, show
from ._progress import Progress


def walk(root: Path) -> list[Path]:
    """flash's shipped file list, in flash's order (native walk)."""
    from .. import ignore

    try:
        spec = ignore.load_ignore_patterns(root)
    except (ValueError, re.error) as e:  # a bad .gitignore pattern, naming its line
        raise _pattern_error(root, e) from None
    with Guard(root), Progress(f"walking {show(root)}"):
        return ignore.get_file_tree(root, spec)


def fingerprint(root: Path, files: Sequence[Path]) -> str:
    """flash's source fingerprint of ``files``."""
    from ..build import compute_source_fingerprint

    check_utf8_names(root, files)
    with Guard(root), Progress("hashing", files):
        return compute_source_fingerprint(root, files)


def walk_and_fingerprint(root: Path) -> tuple[list[Path], str]:
    """:func:`walk` and :func:`fingerprint` in one native call (the walk, the
    reads and SHA-256 overlap)."""
    from .. import ignore
    from ..build import fingerprint_project_files

    with Guard(root), Progress(f"walking and hashing {show(root)}", reads=True):
        try:
            return fingerprint_project_files(root)
        except (ignore.InvalidPatternError, ignore.PatternRegexError) as e:
            raise _pattern_error(root, e) from None
        except UnicodeEncodeError as e:  # e.object: the name relative to root
            raise _not_utf8(root / e.object) from None


def _pattern_error(root: Path, error: Exception) -> CliError:
    gitignore = root / ".gitignore"
    return CliError(f"{show(gitignore)}: {_as_written(gitignore, str(error))}")


_PATTERN_ERROR = re.compile(r"^(Invalid git pattern: )('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")( \(\.gitignore line (\d+)\).*)$", re.S)


def _as_written(gitignore: Path, message: str) -> str:
    """The pattern error with the pattern shown as the line in the file
    reads (``'foo\\ '``), not as the repr of what flash kept of it after
    stripping (``'foo\\\\'``)."""
    m = _PATTERN_ERROR.match(message)
    if not m:
        return message
    try:
        lines = gitignore.read_text(encoding="utf-8").splitlines()
        raw = lines[int(m.group(4)) - 1]
    except (OSError, UnicodeDecodeError, IndexError, ValueError):
        return message
    shown = f"'{raw}'" if raw.isprintable() else repr(raw)
    note = " (flash strips the whitespace around each line)" if raw != raw.strip() else ""
    return f"{m.group(1)}{shown}{m.group(3)}{note}"


def _not_utf8(path: Path) -> CliError:
    # flash's fingerprint encodes each relative path as UTF-8 and fails on
    # undecodable names with a bare UnicodeEncodeError: name the file instead.
    return CliError(
        f"{show(path)}: file name is not valid UTF-8; flash cannot fingerprint it "
        "(rename it or add it to .gitignore)"
    )


def check_utf8_names(root: Path, files: Sequence[Path]) -> None:
    for f in files:
        try:
            rel(f, root).encode("utf-8")
        except UnicodeEncodeError:
            raise _not_utf8(f) from None

"""Mirror of ``runpod_flash.cli.utils.ignore``: flash's ignore patterns, compiled
natively.

Same names, signatures, pattern lists, answers and log records as flash's
module; the :class:`~runpod_flash_native._fingerprint.IgnoreSpec` returned by
:func:`load_ignore_patterns` answers ``match_file`` exactly like the
``pathspec.PathSpec.from_lines("gitwildmatch", ...)`` flash builds.

Where flash's pathspec raises ``GitIgnorePatternError`` (a ``ValueError``) we
raise :class:`InvalidPatternError` (a ``ValueError``), and where pathspec's
regex fails to compile (``re.error``) we raise :class:`PatternRegexError` (an
``re.error``). Both name the pattern and where it came from (".gitignore line
N" or "built-in pattern").
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from . import _fingerprint
from ._fingerprint import IgnoreSpec, InvalidPatternError, PatternRegexError

__all__ = [
    "BUILTIN_PATTERNS",
    "IgnoreSpec",
    "InvalidPatternError",
    "PatternRegexError",
    "get_file_tree",
    "load_ignore_patterns",
    "parse_ignore_file",
    "should_ignore",
]

log = logging.getLogger(__name__)

BUILTIN_ORIGIN = "built-in pattern"

#: flash's ``always_ignore`` list, in flash's order (appended after .gitignore's).
BUILTIN_PATTERNS: tuple[str, ...] = (
    # Build artifacts and caches
    ".build/",
    ".flash/",
    ".runpod/",
    "*.tar.gz",
    ".git/",
    ".gitignore",
    "__pycache__/",
    "*.pyc",
    "*.pyo",
    "*.pyd",
    "*.egg-info/",
    "dist/",
    "build/",
    # Virtual environments
    ".venv/",
    "venv/",
    "env/",
    # IDE
    ".vscode/",
    ".idea/",
    # Environment files
    ".env",
    ".env.local",
    # Tests (tracked by git, excluded from Flash builds)
    "tests/",
    "test_*.py",
    "*_test.py",
    # Documentation (tracked by git, excluded from Flash builds)
    "docs/",
    "*.md",
    "!README.md",
)


def _read_patterns(file_path: Path) -> list[tuple[int, str]]:
    """(line number, pattern) pairs of an ignore file, filtered like flash's."""
    if not file_path.exists():
        return []
    try:
        content = file_path.read_text(encoding="utf-8")
        out = []
        for number, line in enumerate(content.splitlines(), start=1):
            line = line.strip()
            if line and not line.startswith("#"):
                out.append((number, line))
        return out
    except Exception as e:  # flash swallows every read/decode failure
        log.warning(f"Failed to read {file_path.name}: {e}")
        return []


def parse_ignore_file(file_path: Path) -> list[str]:
    """Patterns of an ignore file, as flash reads them.

    UTF-8, one pattern per line (``str.splitlines``), each line stripped, blank
    lines and lines starting with ``#`` dropped. A missing file gives ``[]``;
    one that cannot be read or decoded logs a warning and gives ``[]``.
    """
    return [pattern for _, pattern in _read_patterns(file_path)]


def load_ignore_patterns(project_dir: Path) -> IgnoreSpec:
    """Compile ``project_dir/.gitignore`` followed by :data:`BUILTIN_PATTERNS`.

    Warns about a leftover ``.flashignore`` exactly as flash does.
    """
    flashignore = project_dir / ".flashignore"
    if flashignore.exists():
        log.warning(
            ".flashignore is no longer supported; "
            "patterns are now built-in. "
            "Move any custom patterns to .gitignore and delete .flashignore."
        )

    numbered: list[tuple[int, str]] = []
    gitignore = project_dir / ".gitignore"
    if gitignore.exists():
        numbered = _read_patterns(gitignore)
        log.debug(f"Loaded {len(numbered)} patterns from .gitignore")

    patterns = [pattern for _, pattern in numbered]
    origins = [f".gitignore line {number}" for number, _ in numbered]
    patterns.extend(BUILTIN_PATTERNS)
    origins.extend([BUILTIN_ORIGIN] * len(BUILTIN_PATTERNS))
    return _fingerprint.compile_ignore_patterns(patterns, origins)


def should_ignore(file_path: Path, spec: IgnoreSpec, base_dir: Path) -> bool:
    """True when ``file_path``, relative to ``base_dir``, is ignored by ``spec``.

    A path outside ``base_dir`` is never ignored (flash catches the
    ``ValueError`` of ``relative_to``).
    """
    try:
        rel_path = file_path.relative_to(base_dir)
        return spec.match_file(str(rel_path))
    except ValueError:
        return False


def _as_native_spec(spec: Any) -> IgnoreSpec:
    """Accept flash's own pathspec.PathSpec too (drop-in): recompile its patterns."""
    if isinstance(spec, IgnoreSpec):
        return spec
    patterns = getattr(spec, "patterns", None)
    if patterns is None:
        raise TypeError(f"spec must be an IgnoreSpec or a pathspec.PathSpec, not {type(spec).__name__}")
    lines = []
    for pattern in patterns:
        text = getattr(pattern, "pattern", None)
        if not isinstance(text, str):
            raise TypeError(f"cannot convert pattern {pattern!r}: only gitwildmatch string patterns are supported")
        lines.append(text)
    return _fingerprint.compile_ignore_patterns(lines, None)


def _log_walk_warnings(warnings: list[tuple[str, int]]) -> None:
    for directory, err in warnings:
        error = PermissionError(err, os.strerror(err), directory)
        log.warning(f"Permission denied: {directory} - {error}")


def get_file_tree(
    directory: str | os.PathLike[str], spec: Any, base_dir: str | os.PathLike[str] | None = None
) -> list[Path]:
    """Every file under ``directory`` that ``spec`` does not ignore, as flash lists them.

    Same list, in the same order, as flash's ``get_file_tree``: depth first,
    each directory in listing order, symlinks followed, broken links and
    special files skipped, unreadable directories skipped with a warning.
    Walked in C without recursion; a directory symlink that leads back to an
    ancestor raises :class:`SymlinkLoopError` instead of being followed.
    """
    directory = Path(directory)
    base = directory if base_dir is None else Path(base_dir)
    try:
        prefix: str | None = directory.relative_to(base).as_posix()
        if prefix == ".":
            prefix = ""
    except ValueError:
        prefix = None  # flash's should_ignore answers False for every path
    files, warnings = _fingerprint.walk_files(str(directory), _as_native_spec(spec), prefix)
    _log_walk_warnings(warnings)
    return [Path(f) for f in files]

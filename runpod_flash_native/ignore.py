"""Mirror of ``runpod_flash.cli.utils.ignore``: flash's ignore patterns, compiled
natively.

Same names, signatures, pattern lists, answers and log records as flash's
module; the :class:`~runpod_flash_native._fingerprint.IgnoreSpec` returned by
:func:`load_ignore_patterns` answers ``match_file`` exactly like the
``pathspec.PathSpec.from_lines("gitwildmatch", ...)`` flash builds.

flash accepts any ``pathspec>=0.11.0``, and the releases answer differently
on some patterns and paths; the spec answers as the INSTALLED pathspec does
(:func:`pathspec_dialect`, read once, when the first spec is built):

* ``"1.1"`` (pathspec 1.1.0 and later; also when pathspec is not installed:
  what a fresh ``pip install runpod-flash`` gets): a pattern with an
  unterminated ``[`` is discarded.
* ``"1.0"`` (1.0.x): an unterminated ``[`` is a literal ``[`` (``[\\`` is then
  an invalid pattern, a lone escape).
* ``"0.11"`` (0.11.0 to 0.12.x, flash's original ``GitWildMatchPattern``):
  as 1.0 for ``[``; patterns are stripped on both sides; a ``\\n`` in a
  path after the matched part fails the match unless it is the path's last
  character; ``**`` alone and ``**/`` do not match a path that (after
  pathspec drops one leading ``/``) starts with ``/``, and ``/**/`` needs two
  slashes in a row.

Where flash's pathspec raises ``GitIgnorePatternError`` (a ``ValueError``) we
raise :class:`InvalidPatternError` (a ``ValueError``), and where pathspec's
regex fails to compile (``re.error``) we raise :class:`PatternRegexError` (an
``re.error``). Both name the pattern and where it came from (".gitignore line
N" or "built-in pattern").
"""

from __future__ import annotations

import contextlib
import errno
import gc
import logging
import operator
import os
from pathlib import Path
from typing import Any, Callable, Iterator, cast

from . import _fingerprint
from ._fingerprint import IgnoreSpec, InvalidPatternError, PatternRegexError

__all__ = [
    "BUILTIN_PATTERNS",
    "DIALECTS",
    "IgnoreSpec",
    "InvalidPatternError",
    "PatternRegexError",
    "get_file_tree",
    "load_ignore_patterns",
    "parse_ignore_file",
    "pathspec_dialect",
    "dialect_of_pathspec_version",
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


#: The matcher's dialects, oldest first (see the module docstring).
DIALECTS: tuple[str, ...] = ("0.11", "1.0", "1.1")

#: The dialect without an installed pathspec: what ``pip install runpod-flash``
#: gets today (pathspec 1.1.x).
DEFAULT_DIALECT = "1.1"

_dialect: str | None = None      # detected, once
_dialect_override: str | None = None


def dialect_of_pathspec_version(version: str | None) -> str:
    """The dialect pathspec ``version`` answers in (None: not installed).
    ``ValueError`` for text that is not a version."""
    if version is None:
        return DEFAULT_DIALECT
    import re

    m = re.match(r"\s*v?(\d+)\.(\d+)", version)
    if m is None:
        raise ValueError(f"not a pathspec version: {version!r}")
    release = (int(m.group(1)), int(m.group(2)))
    return "0.11" if release < (1, 0) else "1.0" if release < (1, 1) else "1.1"


def _installed_pathspec_version() -> str | None:
    import sys

    module = sys.modules.get("pathspec")
    version = getattr(module, "__version__", None)
    if isinstance(version, str):
        return version
    from importlib import metadata

    try:
        return metadata.version("pathspec")
    except metadata.PackageNotFoundError:
        return None


def pathspec_dialect() -> str:
    """The dialect specs are built in: the installed pathspec's (read once per
    process), unless overridden with :func:`_set_dialect`."""
    global _dialect
    if _dialect_override is not None:
        return _dialect_override
    if _dialect is None:
        try:
            _dialect = dialect_of_pathspec_version(_installed_pathspec_version())
        except ValueError:
            _dialect = DEFAULT_DIALECT
    return _dialect


def _set_dialect(dialect: str | None) -> None:
    """Test hook: build later specs in ``dialect`` (one of :data:`DIALECTS`);
    None goes back to the installed pathspec's."""
    global _dialect_override
    if dialect is not None and dialect not in DIALECTS:
        raise ValueError(f"dialect must be one of {DIALECTS}, not {dialect!r}")
    _dialect_override = dialect


def _compile(patterns: list[str], origins: list[str] | None) -> IgnoreSpec:
    return _fingerprint.compile_ignore_patterns(patterns, origins, dialect=pathspec_dialect())


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
    return _compile(patterns, origins)


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


class _NoPatternText(TypeError):
    """A PathSpec whose patterns keep no source text (pathspec 0.11.x)."""


def _as_native_spec(spec: Any) -> IgnoreSpec:
    """Accept flash's own pathspec.PathSpec too (drop-in): recompile its patterns."""
    if isinstance(spec, IgnoreSpec):
        return spec
    patterns = getattr(spec, "patterns", None)
    if patterns is None:
        raise TypeError(f"spec must be an IgnoreSpec or a pathspec.PathSpec, not {type(spec).__name__}")
    lines = []
    for pattern in patterns:
        if not hasattr(pattern, "pattern") and hasattr(pattern, "regex"):
            raise _NoPatternText(f"cannot convert pattern {pattern!r}: this pathspec keeps no pattern text")
        text = getattr(pattern, "pattern", None)
        if not isinstance(text, str):
            raise TypeError(f"cannot convert pattern {pattern!r}: only gitwildmatch string patterns are supported")
        lines.append(text)
    return _compile(lines, None)


def _pick_child_path() -> Callable[[Path, str], Path]:
    """``directory / name`` for a name from a listing, the cheap way where
    this Python has it: pathlib's own ``_make_child_relpath`` (what iterdir()
    calls; CPython 3.8-3.13), checked once against ``/``, else ``/`` itself."""
    make = getattr(Path, "_make_child_relpath", None)
    if make is not None:
        try:
            probe = make(Path("/a"), "b")
            if type(probe) is type(Path("/a/b")) and probe.parts == ("/", "a", "b") and str(probe) == "/a/b":
                return cast("Callable[[Path, str], Path]", make)
        except Exception:  # a private API: any surprise means "don't"
            pass
    return operator.truediv


_child_path = _pick_child_path()


def _denied_path(directory: str, err: int, spec: Any, base: Path | None) -> str | None:
    """The path flash's walk names for a directory the native walk could not
    read: flash lists it, skips the names its spec ignores and fails on the
    first entry it stats, a directory it cannot search, naming that entry.
    A directory it cannot list is named itself; None when flash stats
    nothing there (every entry ignored) and so logs nothing."""
    if err != errno.EACCES or spec is None or base is None:
        return directory
    try:
        names = os.listdir(directory)
    except OSError:
        return directory
    for name in names:
        item = Path(directory, name)
        if should_ignore(item, spec, base):
            continue
        try:
            os.stat(item)
        except PermissionError:
            return os.fspath(item)
        except OSError:
            continue
        return directory  # searchable after all (it changed): name the directory
    return None


def _log_walk_warnings(
    warnings: list[tuple[str, int]], spec: Any = None, base: str | os.PathLike[str] | None = None
) -> None:
    """flash's "Permission denied" record for each directory the walk skipped;
    with the walk's spec and base, naming the path flash's ``PermissionError``
    names (:func:`_denied_path`)."""
    base_path = Path(base) if base is not None else None
    for directory, err in warnings:
        path = _denied_path(directory, err, spec, base_path)
        if path is None:
            continue
        error = PermissionError(err, os.strerror(err), path)
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

    ``spec`` may be flash's own ``pathspec.PathSpec``: its patterns are
    recompiled. pathspec 0.11.x keeps no pattern text, so such a spec is
    handed to flash's own ``get_file_tree`` (Python, recursive) instead.
    """
    directory = Path(directory)
    base = directory if base_dir is None else Path(base_dir)
    try:
        prefix: str | None = directory.relative_to(base).as_posix()
        if prefix == ".":
            prefix = ""
    except ValueError:
        prefix = None  # flash's should_ignore answers False for every path
    try:
        native = _as_native_spec(spec)
    except _NoPatternText:
        try:
            from runpod_flash.cli.utils import ignore as flash_ignore
        except ImportError:
            raise TypeError(
                "spec is a pathspec 0.11 PathSpec, which keeps no pattern text: build it with "
                "runpod_flash_native.ignore.load_ignore_patterns"
            ) from None
        files: list[Path] = flash_ignore.get_file_tree(directory, spec, None if base_dir is None else Path(base_dir))
        return files
    with _paused_gc():
        dirs, runs, warnings = _fingerprint.walk_files(str(directory), native, prefix)
        _log_walk_warnings(warnings, native, base)
        return _paths_from_runs(directory, dirs, runs)


@contextlib.contextmanager
def _paused_gc() -> Iterator[None]:
    """No cyclic garbage collection while a file list is built: its tens of
    thousands of tuples, lists and Paths (none of them in a cycle) otherwise
    set off collections of the whole heap again and again (15,000 files:
    ~30 ms of a 100 ms get_file_tree). The collector's state is restored."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _paths_from_runs(
    directory: Path, dirs: list[tuple[int, str]], runs: list[tuple[int, list[str]]]
) -> list[Path]:
    """The Paths of the native walk's (dirs, runs), each made from its
    directory's as flash's iterdir() makes it: parsing every full path again
    cost more than the walk (20,000 files: 40 ms against 8; a 2,000-deep
    chain: 110 ms against 18)."""
    child = _child_path
    slots = [directory]
    for parent, name in dirs:
        # a path of several levels where only the deepest holds files
        slots.append(child(slots[parent], name) if "/" not in name else slots[parent] / name)
    files: list[Path] = []
    for slot, names in runs:
        d = slots[slot]
        files += [child(d, name) for name in names]
    return files

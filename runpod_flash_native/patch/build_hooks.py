"""Objects the patch binds in flash's modules: two in
``runpod_flash.cli.commands.build`` make scoped rolls
(:mod:`runpod_flash_native.scope`) reach flash's build; the walk's wrappers
keep flash's messages and leftovers (below).

flash's ``run_build`` does::

    manifest = manifest_builder.build()
    manifest["source_fingerprint"] = compute_source_fingerprint(project_dir, files)

so the fingerprint call cannot see the manifest it is computed for. Our
:class:`ManifestBuilder` (a subclass of flash's) hands the manifest its
``build()`` returns to the next :func:`compute_source_fingerprint` call on the
same thread, which then returns
:func:`runpod_flash_native.scope.fingerprint_for_build`'s value: flash's global
fingerprint when scoped rolls are off (the manifest untouched, every byte
flash's), else None after the manifest got its per-resource fingerprints.
A fingerprint call with no manifest handed over (any other caller) is the
plain native :func:`runpod_flash_native.build.compute_source_fingerprint`.

Importing this module imports flash's manifest builder: only the patch does.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from runpod_flash.cli.commands.build_utils.manifest import ManifestBuilder as _FlashManifestBuilder

from .. import _fingerprint
from .. import build as _build
from .. import ignore as _ignore
from .. import scope as _scope

__all__ = ["ManifestBuilder", "compute_source_fingerprint", "create_tarball", "get_file_tree", "load_ignore_patterns"]

_handover = threading.local()


class ManifestBuilder(_FlashManifestBuilder):  # type: ignore[misc]
    """flash's ManifestBuilder; ``build()`` also hands its manifest over."""

    def build(self) -> Any:
        manifest = super().build()
        _handover.manifest = manifest if isinstance(manifest, dict) else None
        return manifest


# ---- flash's messages and leftovers at the walk's call sites -----------------


def load_ignore_patterns(project_dir: Path) -> _ignore.IgnoreSpec:
    """:func:`runpod_flash_native.ignore.load_ignore_patterns`, with flash's
    output for the same ``.gitignore``.

    flash compiles the patterns with the installed pathspec, so an invalid one
    fails with pathspec's message and a character class Python's ``re``
    warns about (``[[:alpha:]]``: ``FutureWarning``) prints that warning. Here
    an invalid pattern (or one with a ``[``) is compiled by pathspec as well:
    what it raises is raised, what it warns is warned, from pathspec, as in
    flash. When pathspec accepts a pattern ours refuses, ours is raised.
    """
    try:
        spec = _ignore.load_ignore_patterns(project_dir)
    except (_ignore.InvalidPatternError, _ignore.PatternRegexError):
        _pathspec_compile(project_dir)  # raises flash's exception for these lines
        raise
    if any("[" in pattern for pattern in spec.patterns):
        _pathspec_compile(project_dir)  # for its warnings
    return spec


def _pathspec_compile(project_dir: Path) -> None:
    try:
        import pathspec
    except ImportError:  # flash cannot run without it; ours stands
        return
    lines = _ignore.parse_ignore_file(Path(project_dir) / ".gitignore")  # [] when missing
    pathspec.PathSpec.from_lines("gitwildmatch", [*lines, *_ignore.BUILTIN_PATTERNS])


def get_file_tree(directory: Path, spec: Any, base_dir: Path | None = None) -> list[Path]:
    """:func:`runpod_flash_native.ignore.get_file_tree` for ``run_build``: a
    directory-symlink loop (which flash follows, and we refuse) leaves no
    ``.flash/.build`` behind; ``run_build`` created it empty just before."""
    try:
        return _ignore.get_file_tree(directory, spec, base_dir)
    except _fingerprint.SymlinkLoopError:
        with contextlib.suppress(OSError):
            os.rmdir(Path(directory) / ".flash" / ".build")  # only while still empty
        raise


def _scoped(project_dir: str | os.PathLike[str]) -> bool:
    """The scoped-rolls switch for a build. flash itself never reads
    ``pyproject.toml``, so nothing there may change flash's build: any
    exception while reading the switch from it (invalid TOML, ``tool = "x"``,
    a directory, FIFO, symlink loop or unreadable file, anything unexpected)
    is one warning naming the file, and the build gets flash's own global
    fingerprint, which rolls every endpoint that takes source changes, so
    nothing is missed. An invalid ``FLASH_NATIVE_SCOPED_ROLLS`` value is the
    user's explicit request and still fails with its ``ValueError``."""
    if os.environ.get(_scope.ENV_SWITCH) is not None:
        return _scope.scoped_rolls_enabled(project_dir)
    try:
        return _scope.scoped_rolls_enabled(project_dir)
    except Exception as e:
        path = str(Path(project_dir) / "pyproject.toml")
        text = str(e) if isinstance(e, ValueError) and path in str(e) else f"{path}: {type(e).__name__}: {e}"
        sys.stderr.write(
            f"flash-native: warning: {text}; scoped rolls are off for this build "
            "(flash's global fingerprint)\n"
        )
        return False


def compute_source_fingerprint(
    project_dir: str | os.PathLike[str], files: Iterable[str | os.PathLike[str]]
) -> str | None:
    """flash's fingerprint, or None for a build whose manifest was scoped."""
    manifest = getattr(_handover, "manifest", None)
    _handover.manifest = None
    files = list(files)
    result: str | None
    # with flash's build: the fingerprint pass also takes each file's own
    # digest, for the index flash-native keeps (from the bytes it read)
    digests: list[tuple[str, int, str]] = []
    if manifest is None:
        result = _build.compute_source_fingerprint(project_dir, files)
    elif not _scoped(project_dir):
        result, digests = _fingerprint.compute_source_fingerprint(project_dir, files, digests=True)
    else:
        result = _scope.fingerprint_for_build(project_dir, files, manifest, enabled=True, digests=digests)
    if manifest is not None:  # flash's build: flash-native's own additions, apart
        from ..cli._after_build import after_build

        after_build(project_dir, files, manifest, result, digests)
    return result


def create_tarball(
    build_dir: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    app_name: str,
    excluded_packages: list[str] | None = None,
) -> None:
    """:func:`runpod_flash_native.build.create_tarball`. The archive is the
    build's last step and nothing parses after the requirements were
    collected: the parse trees :mod:`.ast_memo` kept for the build (millions
    of objects at 3,000 modules) are let go first, rather than traversed by
    every later collection and by the interpreter's last one at exit (0.3 s)."""
    from . import ast_memo

    ast_memo.clear()
    _build.create_tarball(build_dir, output_path, app_name, excluded_packages)

"""Mirror of ``runpod_flash.cli.commands.build``'s fingerprint call site."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from . import _fingerprint
from .ignore import _log_walk_warnings, load_ignore_patterns

__all__ = ["compute_source_fingerprint", "fingerprint_project", "fingerprint_project_files"]


def compute_source_fingerprint(
    project_dir: str | os.PathLike[str], files: Iterable[str | os.PathLike[str]]
) -> str:
    """SHA-256 fingerprint of ``files``, byte-identical to flash's.

    Files are sorted by their POSIX path relative to ``project_dir`` and each
    is framed as ``be64(len(path)) path be64(len(content)) content``. Files are
    streamed in fixed-size chunks with the GIL released.

    Raises the exception flash raises for the same input: ``ValueError`` for a
    file outside ``project_dir``, ``FileNotFoundError``, ``IsADirectoryError``,
    ``PermissionError``, ``UnicodeEncodeError`` for a name that is not UTF-8;
    and :class:`SourceChangedError` when a file changes while it is hashed.
    """
    return _fingerprint.compute_source_fingerprint(project_dir, files)


def fingerprint_project_files(project_dir: str | os.PathLike[str]) -> tuple[list[Path], str]:
    """Walk, match and fingerprint ``project_dir`` in one native call.

    Returns flash's file list (as ``get_file_tree(d, load_ignore_patterns(d))``
    gives it) and the fingerprint ``compute_source_fingerprint`` would compute
    over it. The walk, the reads and SHA-256 overlap on separate threads.
    """
    project = Path(project_dir)
    files, digest, warnings = _fingerprint.fingerprint_tree(
        str(project), load_ignore_patterns(project), True
    )
    _log_walk_warnings(warnings)
    return [Path(f) for f in files], digest


def fingerprint_project(project_dir: str | os.PathLike[str]) -> str:
    """The fingerprint ``flash build`` writes for ``project_dir``."""
    project = Path(project_dir)
    _, digest, warnings = _fingerprint.fingerprint_tree(
        str(project), load_ignore_patterns(project), False
    )
    _log_walk_warnings(warnings)
    return digest

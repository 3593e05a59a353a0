"""Mirror of ``runpod_flash.cli.commands.build``'s fingerprint call site."""

from __future__ import annotations

import os
from collections.abc import Iterable

from . import _fingerprint

__all__ = ["compute_source_fingerprint"]


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

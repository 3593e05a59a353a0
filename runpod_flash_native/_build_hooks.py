"""The two objects the patch binds in ``runpod_flash.cli.commands.build`` to
make scoped rolls (:mod:`runpod_flash_native.scope`) reach flash's build.

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

import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import sys
from runpod_flash.cli.commands.build_utils.manifest import ManifestBuilder as _FlashManifestBuilder
from runpod_flash.cli.commands.build_utils.scanner import RuntimeScanner as _FlashRuntimeScanner

from . import build as _build
from . import scope as _scope

__all__ = ["ManifestBuilder", "RuntimeScanner", "compute_source_fingerprint"]

_handover = threading.local()


class ManifestBuilder(_FlashManifestBuilder):  # type: ignore[misc]
    """flash's ManifestBuilder; ``build()`` also hands its manifest over."""

    def build(self) -> Any:
        manifest = super().build()
        _handover.manifest = manifest if isinstance(manifest, dict) else None
        return manifest


_bytecode_lock = threading.Lock()
_scans = 0
_saved_dont_write: bool | None = None


class RuntimeScanner(_FlashRuntimeScanner):  # type: ignore[misc]
    """flash's scanner; its discovery writes no ``.pyc`` files.

    The scanner imports every shipped module from the build directory, and
    Python writes a ``__pycache__/*.pyc`` beside each one; ``run_build``
    deletes them all again (``cleanup_python_bytecode``) before it packs the
    archive. Not writing them leaves the build directory as flash leaves it
    and saves a file create + write per module (~15% of the scan on a
    3,000-module app). ``sys.dont_write_bytecode`` is process-wide: it is set
    while at least one discovery runs and restored when the last ends.
    """

    def discover_remote_functions(self) -> Any:
        global _scans, _saved_dont_write
        with _bytecode_lock:
            if _scans == 0:
                _saved_dont_write = sys.dont_write_bytecode
                sys.dont_write_bytecode = True
            _scans += 1
        try:
            return super().discover_remote_functions()
        finally:
            with _bytecode_lock:
                _scans -= 1
                if _scans == 0:
                    sys.dont_write_bytecode = bool(_saved_dont_write)


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
    if manifest is None or not _scoped(project_dir):
        return _build.compute_source_fingerprint(project_dir, files)
    return _scope.fingerprint_for_build(project_dir, files, manifest, enabled=True)

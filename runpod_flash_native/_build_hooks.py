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
from typing import Any

from runpod_flash.cli.commands.build_utils.manifest import ManifestBuilder as _FlashManifestBuilder

from . import build as _build
from . import scope as _scope

__all__ = ["ManifestBuilder", "compute_source_fingerprint"]

_handover = threading.local()


class ManifestBuilder(_FlashManifestBuilder):  # type: ignore[misc]
    """flash's ManifestBuilder; ``build()`` also hands its manifest over."""

    def build(self) -> Any:
        manifest = super().build()
        _handover.manifest = manifest if isinstance(manifest, dict) else None
        return manifest


def compute_source_fingerprint(
    project_dir: str | os.PathLike[str], files: Iterable[str | os.PathLike[str]]
) -> str | None:
    """flash's fingerprint, or None for a build whose manifest was scoped."""
    manifest = getattr(_handover, "manifest", None)
    _handover.manifest = None
    if manifest is None or not _scope.scoped_rolls_enabled(project_dir):
        return _build.compute_source_fingerprint(project_dir, files)
    return _scope.fingerprint_for_build(project_dir, files, manifest, enabled=True)

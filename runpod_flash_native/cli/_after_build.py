"""What ``flash-native build`` adds after flash's fingerprint step (called
once from the patched build, :mod:`runpod_flash_native.patch.build_hooks`): a line
saying scoped rolls are on, and ``.flash/source_index.json`` kept current so
that ``runpod-flash-native status`` lists the changed files."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

from ._index import refresh_after_build

SCOPED_LINE = (
    "flash-native: scoped rolls on: each endpoint's fingerprint covers only the code it "
    "ships, so the next deploy rolls only the endpoints whose code changed\n"
)


def after_build(
    project_dir: str | os.PathLike[str],
    files: Sequence[str | os.PathLike[str]],
    manifest: Any,
    result: str | None,
    digests: Sequence[tuple[str, int, str]] | None = None,
) -> None:
    """``result``: what the build's fingerprint call returns (flash's global
    fingerprint, or None when the manifest was scoped); ``digests``: each
    file's (path, size, SHA-256) from the pass that computed flash's global
    fingerprint, if it took them."""
    from .. import scope

    if result is None:
        sys.stderr.write(SCOPED_LINE)
        built = scope.recorded_source_fingerprint(manifest)
    else:
        built = result
    if isinstance(built, str):
        refresh_after_build(project_dir, files, built, digests)

"""Scoped fingerprints and the scoped manifest: what a build writes, and
reading it back."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .. import _fingerprint
from ..build import compute_source_fingerprint
from ._graph import Scope, analyze_scopes, rel_of
from ._switch import scoped_rolls_enabled

__all__ = [
    "FP_KEY", "FORMAT_VERSION", "MANIFEST_KEY", "apply_scoped_fingerprints", "fingerprint_for_build",
    "is_scoped_manifest", "recorded_source_fingerprint", "scoped_fingerprints",
]

#: Top-level manifest key holding the scoping record.
MANIFEST_KEY = "scoped_source_fingerprints"
FORMAT_VERSION = 1
FP_KEY = "_FLASH_SOURCE_FINGERPRINT"


def scoped_fingerprints(
    project_dir: str | os.PathLike[str],
    files: Iterable[str | os.PathLike[str]],
    manifest: Mapping[str, Any],
    *,
    source_fingerprint: str | None = None,
) -> dict[str, tuple[str, Scope]]:
    """``{resource: (scoped fingerprint, scope)}``. A whole-project scope gets
    ``source_fingerprint`` (flash's global fingerprint; computed when not
    given), any other scope flash's fingerprint over its files.

    All endpoints share one tarball, and flash installs into it the
    ``dependencies=[...]`` of every endpoint. So when a left-out module
    declares dependencies, the scoped value is SHA-256 over a tag, the files'
    fingerprint and those declarations (their source text): another
    endpoint's dependency change rolls this one too, its code changes do not.
    """
    root = Path(project_dir)
    files = list(files)
    by_rel = {rel_of(root, f): f for f in files}
    scopes = analyze_scopes(root, files, manifest)
    out: dict[str, tuple[str, Scope]] = {}
    for name, scope in scopes.items():
        if scope.whole_project:
            if source_fingerprint is None:
                source_fingerprint = compute_source_fingerprint(root, files)
            out[name] = (source_fingerprint, scope)
        else:
            fp = compute_source_fingerprint(root, [by_rel[r] for r in scope.files])
            if scope.shared_deps:
                text = json.dumps([fp, [list(d) for d in scope.shared_deps]], separators=(",", ":"))
                fp = hashlib.sha256(b"runpod-flash-native/scoped-deps/1\0" + text.encode()).hexdigest()
            out[name] = (fp, scope)
    return out


def apply_scoped_fingerprints(
    project_dir: str | os.PathLike[str],
    files: Iterable[str | os.PathLike[str]],
    manifest: dict[str, Any],
    *,
    enabled: bool | None = None,
) -> bool:
    """Turn a manifest ``flash build`` just built into a scoped one.

    Where to call it: in flash's ``run_build``
    (``runpod_flash.cli.commands.build``), after
    ``manifest["source_fingerprint"] = compute_source_fingerprint(project_dir,
    files)`` and before the manifest is written to ``build_dir /
    "flash_manifest.json"``, with the same ``project_dir``, ``files`` and
    ``manifest``. No deploy-side hook is needed: flash's
    ``reconcile_and_provision_resources`` skips its injection when
    ``source_fingerprint`` is null and compares the per-resource values.
    (:func:`fingerprint_for_build` is the same step for a patch that can only
    replace the ``compute_source_fingerprint`` call.)

    ``enabled=None`` asks :func:`scoped_rolls_enabled`. When scoping is off the
    manifest is not touched and False is returned. When on: every fingerprinted
    resource's ``env`` (created if needed) gets its scoped
    ``_FLASH_SOURCE_FINGERPRINT``, the global fingerprint moves to
    ``manifest["scoped_source_fingerprints"]["source_fingerprint"]``,
    ``manifest["source_fingerprint"]`` becomes None; returns True. Everything is
    computed before the first write: on an exception the manifest is
    unchanged. ``TypeError`` for a resource whose ``env`` is neither a dict nor
    None.
    """
    root = Path(project_dir)
    if enabled is None:
        enabled = scoped_rolls_enabled(root)
    if not enabled:
        return False
    files = list(files)
    recorded = manifest.get("source_fingerprint")
    if isinstance(manifest.get(MANIFEST_KEY), Mapping):
        recorded = manifest[MANIFEST_KEY].get("source_fingerprint")
    global_fp = recorded if isinstance(recorded, str) and recorded else compute_source_fingerprint(root, files)
    result = scoped_fingerprints(root, files, manifest, source_fingerprint=global_fp)
    resources = manifest.get("resources") or {}
    for name in result:
        env = resources[name].get("env")
        if env is not None and not isinstance(env, dict):
            raise TypeError(f"resource {name!r}: env must be a dict, not {type(env).__name__}")
    record = {
        "version": FORMAT_VERSION,
        "source_fingerprint": global_fp,
        "resources": {
            name: {
                "fingerprint": fp,
                "whole_project": scope.whole_project,
                "reason": scope.reason,
                "excluded": list(scope.excluded),
            }
            for name, (fp, scope) in sorted(result.items())
        },
    }
    for name, (fp, _) in result.items():
        config = resources[name]
        if config.get("env") is None:
            config["env"] = {}
        config["env"][FP_KEY] = fp
    manifest["source_fingerprint"] = None
    manifest[MANIFEST_KEY] = record
    return True


def fingerprint_for_build(
    project_dir: str | os.PathLike[str],
    files: Iterable[str | os.PathLike[str]],
    manifest: dict[str, Any],
    *,
    enabled: bool | None = None,
    digests: list[tuple[str, int, str]] | None = None,
) -> str | None:
    """The value flash's ``run_build`` should store in
    ``manifest["source_fingerprint"]``, for a patch of its
    ``compute_source_fingerprint(project_dir, files)`` call that knows the
    ``manifest`` ``ManifestBuilder.build()`` just returned: flash's global
    fingerprint when scoping is off (manifest untouched), else None after
    :func:`apply_scoped_fingerprints` made ``manifest`` scoped.

    ``digests``: a list that receives each file's (relative path, size,
    SHA-256), taken from the bytes the global fingerprint was computed from."""
    files = list(files)
    if digests is None:
        global_fp = compute_source_fingerprint(project_dir, files)
    else:
        global_fp, taken = _fingerprint.compute_source_fingerprint(project_dir, files, digests=True)
        digests.extend(taken)
    manifest["source_fingerprint"] = global_fp
    try:
        scoped = apply_scoped_fingerprints(project_dir, files, manifest, enabled=enabled)
    except BaseException:
        manifest.pop("source_fingerprint", None)
        raise
    return None if scoped else global_fp


def is_scoped_manifest(manifest: Mapping[str, Any]) -> bool:
    """True for a manifest :func:`apply_scoped_fingerprints` produced."""
    record = manifest.get(MANIFEST_KEY)
    return isinstance(record, Mapping) and isinstance(record.get("resources"), Mapping)


def recorded_source_fingerprint(manifest: Mapping[str, Any]) -> Any:
    """flash's global fingerprint of the build that wrote ``manifest``
    (``source_fingerprint``, or the scoping record's copy of it)."""
    if is_scoped_manifest(manifest):
        return manifest[MANIFEST_KEY].get("source_fingerprint")
    return manifest.get("source_fingerprint")

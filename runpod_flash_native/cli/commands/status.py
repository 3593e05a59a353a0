"""``status [DIR] [--index FILE]``: does the next deploy roll the endpoints?
The project is compared with the manifest of the last ``flash build``, per
endpoint by flash's rule and by the endpoint's own scope."""

from __future__ import annotations

import argparse
import os
import shlex
from pathlib import Path
from typing import Any

from .._checks import secret_warnings, symlink_warnings
from .._common import (
    DEFAULT_INDEX_RELPATH, EXIT_CHANGED, EXIT_OK, MANIFEST_RELPATH, PROG, CliError, Guard,
    project_dir, read_json, show,
)
from .._index import diff_against_index, load_index
from .._project import walk_and_fingerprint
from .._report import warn
from ._flash_version import modelled_flash


def run(args: argparse.Namespace) -> dict[str, Any]:
    from ... import scope

    flash_version = modelled_flash(args)
    root = project_dir(args.dir)
    manifest_path = root / MANIFEST_RELPATH
    manifest, recorded = _read_manifest(manifest_path)
    index_path, index = _read_index(args, root)

    files, current = walk_and_fingerprint(root)
    index_report = None if index is None else _compare_with_index(root, files, current, recorded, index_path, index)

    # per endpoint: does the next deploy of this build roll it (runpod_flash_native.scope)
    known = index_report is not None and index_report["matches_manifest"]
    changed_files = None
    if known and index_report is not None:
        changed_files = index_report["added"] + index_report["removed"] + index_report["modified"]
    with Guard(root):
        scoped = scope.status_report(
            root, files, manifest, current_fingerprint=current,
            changed_files=changed_files, flash_version=flash_version,
        )
    rolls = scoped["rolls"]
    changed = current != recorded
    return {
        "command": "status",
        "project_dir": str(root),
        "manifest": str(manifest_path),
        "status": "changed" if changed else "unchanged",
        "changed": changed,
        "recorded_fingerprint": recorded,
        "current_fingerprint": current,
        "file_count": len(files),
        "rolls": rolls,
        "global_fingerprint_rolls": scoped["global_fingerprint_rolls"],
        "scoped_rolls": scoped["scoped_rolls"],
        "fingerprint_mode": scoped["mode"],
        "endpoints": scoped["endpoints"],
        "index": index_report,
        "flash_version": flash_version,
        # A changed source matters only if some endpoint takes it.
        "exit_code": EXIT_CHANGED if rolls else EXIT_OK,
        "_warnings": secret_warnings(root, files) + symlink_warnings(root, files),
        "_scoped": scoped,
        "_index_command": index_command(args.dir),
    }


def _read_manifest(path: Path) -> tuple[dict[str, Any], str]:
    """The last build's manifest and flash's source fingerprint in it."""
    from ... import scope

    if not path.exists():
        raise CliError(f"{show(path)}: no manifest (run `flash build` first)")
    manifest = read_json(path, "manifest")
    if not isinstance(manifest, dict):
        raise CliError(f"{show(path)}: not a flash manifest (expected a JSON object)")
    recorded = scope.recorded_source_fingerprint(manifest)
    if not isinstance(recorded, str) or not recorded:
        raise CliError(
            f"{show(path)}: no source_fingerprint recorded "
            "(built by a runpod-flash without source fingerprints; run `flash build`)"
        )
    return manifest, recorded


def _read_index(args: argparse.Namespace, root: Path) -> tuple[Path, dict[str, Any] | None]:
    """The index named by --index (required to load), else the default one
    when it exists: one that cannot be used only costs the per-file details."""
    if args.index:
        path = Path(args.index).absolute()
        return path, load_index(path)
    path = root / DEFAULT_INDEX_RELPATH
    if not path.exists():
        return path, None
    try:
        return path, load_index(path)
    except CliError as e:
        warn(
            f"{e}; comparing fingerprints only (rewrite it with `{index_command(args.dir)}`)",
            kind="index", path=str(path),
        )
        return path, None


def _compare_with_index(
    root: Path, files: list[Path], current: str, recorded: str, path: Path, index: dict[str, Any]
) -> dict[str, Any]:
    saved = index.get("source_fingerprint")
    diff = (
        diff_against_index(root, files, index)
        if current != saved
        else {"added": [], "removed": [], "modified": []}
    )
    return {"path": str(path), "source_fingerprint": saved, "matches_manifest": saved == recorded, **diff}


def index_command(dir_arg: str) -> str:
    """The command that writes the default index of the project ``dir_arg``
    (as the user named it), runnable from the current directory."""
    if os.path.abspath(dir_arg) == os.getcwd():
        return f"{PROG} fingerprint --index {DEFAULT_INDEX_RELPATH.as_posix()}"
    index = os.path.join(dir_arg, DEFAULT_INDEX_RELPATH)
    return f"{PROG} fingerprint {shlex.quote(dir_arg)} --index {shlex.quote(index)}"

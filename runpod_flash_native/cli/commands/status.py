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
    read_json, show,
)
from .._index import diff_against_index, load_index
from .._locate import display_dir, is_flash_project, locate_project, nearest_built_project, not_a_project_message
from .._project import walk_and_fingerprint
from .._report import warn
from ._flash_version import modelled_flash
from .plan import check_remote_args, fetch_deployed


#: --env/--app/--timeout, as ``plan``'s
check_args = check_remote_args


def run(args: argparse.Namespace) -> dict[str, Any]:
    from ... import scope

    flash_version = modelled_flash(args)
    root = locate_project(args.dir)
    shown = display_dir(args.dir, root)
    manifest_path = root / MANIFEST_RELPATH
    if args.env is None:
        manifest, recorded = _read_manifest(manifest_path)
    index_path, index = _read_index(args, root, shown)
    deployed = None
    if args.env is not None:
        deployed = fetch_deployed(args, root)
        if deployed.manifest is None:
            return _not_deployed(args, root, deployed, flash_version)
        manifest, recorded = _deployed_manifest(deployed)

    files, current = walk_and_fingerprint(root)
    if not is_flash_project(root, files):
        warn(not_a_project_message(root), kind="not_a_flash_project", path=str(root))
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
    report = {
        "command": "status",
        "project_dir": str(root),
        "manifest": str(manifest_path) if deployed is None else None,
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
        "_index_command": index_command(shown),
    }
    if deployed is not None:
        report["deployed"] = deployed.to_dict()
        report["_manifest_label"] = f"build {deployed.build_id} (active in {deployed.where()})"
    return report


def _deployed_manifest(deployed: Any) -> tuple[dict[str, Any], str]:
    """The active build's manifest and the source fingerprint it records."""
    from ... import scope

    manifest: dict[str, Any] = deployed.manifest
    recorded = scope.recorded_source_fingerprint(manifest)
    if not isinstance(recorded, str) or not recorded:
        raise CliError(
            f"the manifest of build {deployed.build_id} (active in {deployed.where()}) records no "
            "source_fingerprint (deployed by a runpod-flash without source fingerprints): the next "
            f"deploy updates every endpoint; `{PROG} plan --env {shlex.quote(deployed.environment)}` shows why"
        )
    return manifest, recorded


def _not_deployed(args: argparse.Namespace, root: Path, deployed: Any, flash_version: str) -> dict[str, Any]:
    """Nothing deployed in the environment: the next deploy provisions every
    resource (exit 1: it changes the endpoints)."""
    files, current = walk_and_fingerprint(root)
    return {
        "command": "status",
        "project_dir": str(root),
        "manifest": None,
        "status": "not_deployed",
        "changed": True,
        "recorded_fingerprint": None,
        "current_fingerprint": current,
        "file_count": len(files),
        "rolls": [],
        "scoped_rolls": [],
        "fingerprint_mode": None,
        "endpoints": {},
        "index": None,
        "flash_version": flash_version,
        "deployed": deployed.to_dict(),
        "exit_code": EXIT_CHANGED,
        "_warnings": secret_warnings(root, files) + symlink_warnings(root, files),
        "_absence": deployed.absence(),
        "_plan_command": f"{PROG} plan --env {shlex.quote(deployed.environment)}",
    }


def _read_manifest(path: Path) -> tuple[dict[str, Any], str]:
    """The last build's manifest and flash's source fingerprint in it."""
    from ... import scope

    if not path.exists():
        above = nearest_built_project(path.parent.parent.parent)
        hint = f"; {show(above)} has one: pass it as DIR" if above is not None else ""
        raise CliError(f"{show(path)}: no manifest (run `flash build` first{hint})")
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


def _read_index(args: argparse.Namespace, root: Path, shown: str) -> tuple[Path, dict[str, Any] | None]:
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
            f"{e}; comparing fingerprints only (rewrite it with `{index_command(shown)}`)",
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

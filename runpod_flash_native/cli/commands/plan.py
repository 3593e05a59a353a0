"""``plan LOCAL STATE``: flash's deploy reconciliation between two manifests;
``plan --env ENV [--app APP] [DIR]``: between DIR's last build and the build
active in that flash environment (read-only, through runpod-flash's client)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Literal

from .._common import EXIT_OK, MANIFEST_RELPATH, CliError, describe, project_dir, read_json, show
from ._flash_version import modelled_flash

#: Seconds the --env look-up may take (flash's own client waits up to 300 s
#: per request and retries transient failures three times).
DEFAULT_TIMEOUT = 30.0


def check_args(args: argparse.Namespace) -> str | None:
    """The usage error of this command line, if any (after parsing)."""
    message = check_remote_args(args)
    if message:
        return message
    if args.env is None and len(args.paths) != 2:
        return ("LOCAL_MANIFEST and STATE_MANIFEST are required "
                "(or --env ENV [DIR] to compare with the deployed build)")
    if args.env is not None and len(args.paths) > 1:
        return f"--env takes one project DIR, not {len(args.paths)} paths"
    return None


def check_remote_args(args: argparse.Namespace) -> str | None:
    """--env/--app/--timeout (``plan`` and ``status``): the usage error, if any."""
    if args.env is None:
        for option, value in (("--app", args.app), ("--timeout", args.timeout)):
            if value is not None:
                return f"{option} needs --env ENV"
        return None
    if not args.env.strip():
        return "--env: empty environment name"
    if args.app is not None and not args.app.strip():
        return "--app: empty app name"
    if args.timeout is not None and not args.timeout > 0:
        return f"--timeout: {args.timeout:g} is not a positive number of seconds"
    return None


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.env is not None:
        return _run_remote(args)
    local_path, state_path = args.paths
    local = read_json(Path(local_path), "local manifest")
    state = read_json(Path(state_path), "state manifest")
    for path, data in ((local_path, local), (state_path, state)):
        if not isinstance(data, dict):
            raise CliError(f"{show(path)}: not a flash manifest (expected a JSON object)")
    where = f"{show(local_path)}, {show(state_path)}"
    return _plan(args, local, state, where)


def _run_remote(args: argparse.Namespace) -> dict[str, Any]:
    root = project_dir(args.paths[0] if args.paths else ".")
    local_path = root / MANIFEST_RELPATH
    if not local_path.exists():
        raise CliError(f"{show(local_path)}: no manifest (run `flash build` first)")
    local = read_json(local_path, "local manifest")
    if not isinstance(local, dict):
        raise CliError(f"{show(local_path)}: not a flash manifest (expected a JSON object)")
    modelled_flash(args)  # a bad --flash-version fails before the network
    deployed = fetch_deployed(args, root)
    # nothing deployed: flash's deploy compares with an empty manifest
    state = deployed.manifest if deployed.manifest is not None else {}
    where = f"{show(local_path)}, {deployed.where()} (build {deployed.build_id})"
    report = _plan(args, local, state, where)
    report.update({
        "project_dir": str(root),
        "local_manifest": str(local_path),
        "deployed": deployed.to_dict(),
        "_deployed_headline": deployed.headline(),
    })
    return report


def fetch_deployed(args: argparse.Namespace, root: Path) -> Any:
    """What is deployed in --env (of --app, default: as flash deploy's)."""
    from .. import _remote

    return _remote.fetch_deployed(
        root, args.app or _remote.default_app_name(root), args.env,
        DEFAULT_TIMEOUT if args.timeout is None else args.timeout,
    )


def _plan(args: argparse.Namespace, local: dict[str, Any], state: dict[str, Any], where: str) -> dict[str, Any]:
    from ... import deployment, scope

    flash_version = modelled_flash(args)
    mode: Literal["update", "adopt"] = "adopt" if args.adopt_missing_fingerprint else "update"
    try:
        plan = deployment.plan_reconciliation(local, state, missing_state_fingerprint=mode, flash_version=flash_version)
    except (ValueError, TypeError, KeyError) as e:
        raise CliError(f"{where}: cannot plan: {describe(e)}") from None
    report: dict[str, Any] = {"command": "plan", **plan.to_dict()}
    notes = scope.plan_notes(local, state)  # scoped manifests: who keeps its fingerprint, why
    if notes:
        report["keeps_fingerprint"] = notes
    report["flash_version"] = flash_version
    report["exit_code"] = EXIT_OK
    return report

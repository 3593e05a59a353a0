"""``plan LOCAL STATE``: flash's deploy reconciliation between two manifests."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Literal

from .._common import EXIT_OK, CliError, describe, read_json, show
from ._flash_version import modelled_flash


def run(args: argparse.Namespace) -> dict[str, Any]:
    from ... import deployment, scope

    local = read_json(Path(args.local_manifest), "local manifest")
    state = read_json(Path(args.state_manifest), "state manifest")
    for path, data in ((args.local_manifest, local), (args.state_manifest, state)):
        if not isinstance(data, dict):
            raise CliError(f"{show(path)}: not a flash manifest (expected a JSON object)")
    flash_version = modelled_flash(args)
    mode: Literal["update", "adopt"] = "adopt" if args.adopt_missing_fingerprint else "update"
    try:
        plan = deployment.plan_reconciliation(local, state, missing_state_fingerprint=mode, flash_version=flash_version)
    except (ValueError, TypeError, KeyError) as e:
        raise CliError(f"{show(args.local_manifest)}, {show(args.state_manifest)}: cannot plan: {describe(e)}") from None
    report: dict[str, Any] = {"command": "plan", **plan.to_dict()}
    notes = scope.plan_notes(local, state)  # scoped manifests: who keeps its fingerprint, why
    if notes:
        report["keeps_fingerprint"] = notes
    report["flash_version"] = flash_version
    report["exit_code"] = EXIT_OK
    return report

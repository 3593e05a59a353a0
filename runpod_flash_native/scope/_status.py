"""What ``status`` and ``plan`` say about scoped rolls: per endpoint, does
the next deploy roll it, in the mode the project was built with."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..build import compute_source_fingerprint
from ._fingerprints import FP_KEY, MANIFEST_KEY, is_scoped_manifest, recorded_source_fingerprint, scoped_fingerprints
from ._graph import Scope, analyze_scopes, fingerprinted

__all__ = ["format_status", "plan_notes", "status_report"]


def _rolls_by_flash_rule(
    names: Iterable[str], old: Mapping[str, Any], new: Mapping[str, Any], flash_version: str | None = None
) -> list[str]:
    """Resources flash's deploy comparison updates when the deployed build had
    ``old`` fingerprints and the local build has ``new`` ones (name -> value;
    every resource deployed with an endpoint, configs otherwise equal)."""
    from .. import deployment

    names = sorted(names)
    return deployment.rolls_on_fingerprint_change(
        {n: old[n] for n in names}, {n: new[n] for n in names}, flash_version=flash_version
    )


def status_report(
    project_dir: str | os.PathLike[str],
    files: Sequence[str | os.PathLike[str]],
    manifest: Mapping[str, Any],
    *,
    current_fingerprint: str | None = None,
    changed_files: Iterable[str] | None = None,
    flash_version: str | None = None,
) -> dict[str, Any]:
    """The per-endpoint answer ``runpod-flash-native status`` prints: does
    the next deploy roll it, in the mode the project was built with.

    ``flash_version``: the flash release whose deploy rule is followed
    (:func:`runpod_flash_native.deployment.modelled_flash_version`; before
    1.21.0 flash injects the global fingerprint into client-mode resources
    too, which then roll on every source change; they have no scope:
    ``whole_project``, and their own code is the image they run).

    ``manifest`` is the last build's, ``files`` the project's shipped files
    now, ``changed_files`` the relative paths that changed since that build
    (from a source index; None when unknown). Returns::

        {"mode": "scoped" | "global",
         "rolls": [...],         # what the next deploy of this build rolls
         "flash_rolls": [...],   # the same: flash's deploy compares what the build wrote
         "global_fingerprint_rolls": [...],  # what it would roll with flash's one global fingerprint
         "scoped_rolls": [...],  # endpoints whose scoped fingerprint changed
         "endpoints": {name: {"rolls": bool,        # the next deploy rolls it
                               "flash_rolls": bool,  # the same answer
                               "global_fingerprint_rolls": bool,
                               "scope_changed": bool,      # its scoped fingerprint changed
                               "own_code_changed": bool | None,  # a module it reaches changed (None: unknown)
                               "whole_project": bool, "reason": str,
                               "changed_files": [...] | None}}}  # changes in its scope

    A scoped manifest records each endpoint's scoped fingerprint, so
    ``scope_changed`` compares them. A global manifest does not: then an
    unchanged global fingerprint means nothing changed, and otherwise the
    endpoint's current scope is matched against ``changed_files`` (True,
    i.e. assume the worst, when they are unknown). ``own_code_changed`` is
    True when a changed file is one of the modules the endpoint reaches,
    None (unknown) when the changes or its code are not fully known. A data
    file or README in every scope changes the scope, not the code.
    """
    root = Path(project_dir)
    files = list(files)
    if current_fingerprint is None:
        current_fingerprint = compute_source_fingerprint(root, files)
    recorded_global = recorded_source_fingerprint(manifest)
    scoped_mode = is_scoped_manifest(manifest)
    resources = manifest.get("resources")
    resources = resources if isinstance(resources, Mapping) else {}
    names = sorted(n for n, c in resources.items() if fingerprinted(c))
    from .. import deployment

    skips = deployment.skips_client_mode(flash_version)
    # client-mode resources that get flash's global fingerprint (before 1.21.0)
    client_mode = [] if skips else sorted(
        n for n, c in resources.items() if isinstance(c, Mapping) and not fingerprinted(c)
    )
    unchanged = recorded_global == current_fingerprint
    changed = set() if unchanged else None if changed_files is None else set(changed_files)
    current: Mapping[str, tuple[str | None, Scope]]
    if scoped_mode and not unchanged:
        current = scoped_fingerprints(root, files, manifest, source_fingerprint=current_fingerprint)
    else:  # fingerprints are only compared in scoped mode, after a change
        current = {n: (None, sc) for n, sc in analyze_scopes(root, files, manifest).items()}
    record = manifest[MANIFEST_KEY]["resources"] if scoped_mode else {}
    record = record if isinstance(record, Mapping) else {}

    # what a build with flash's one global fingerprint would roll
    injected = sorted(names + client_mode)
    global_rolls = _rolls_by_flash_rule(
        injected, {n: recorded_global for n in injected}, {n: current_fingerprint for n in injected},
        flash_version,
    )
    endpoints: dict[str, Any] = {}
    scoped_rolls: set[str] = set()
    for name in names:
        _, sc = current[name]
        entry = record.get(name)
        entry = entry if isinstance(entry, Mapping) else None
        # a changed file is outside the scope only when both the last build's
        # scope and the current one leave it out
        left_out = set(sc.excluded)
        if scoped_mode:
            left_out &= set(entry.get("excluded") or ()) if entry is not None else set()
        in_scope = None if changed is None else sorted(c for c in changed if c not in left_out)
        if unchanged:
            scope_changed = False
        elif scoped_mode and entry is not None and isinstance(entry.get("fingerprint"), str):
            scope_changed = bool(
                _rolls_by_flash_rule([name], {name: entry["fingerprint"]}, {name: current[name][0]})
            )
        elif in_scope is not None:
            scope_changed = bool(in_scope)
        else:
            scope_changed = True  # unknown: assume the worst
        if scope_changed:
            scoped_rolls.add(name)
        own: bool | None
        if not scope_changed and (unchanged or in_scope is not None or scoped_mode):
            own = False  # nothing in its scope changed, so none of its code did
        elif in_scope is None or sc.opaque:
            own = None  # the changes, or its code, are not fully known
        else:
            own = bool(set(in_scope) & set(sc.modules))
        rolls = scope_changed if scoped_mode else name in global_rolls
        endpoints[name] = {
            "rolls": rolls,
            "flash_rolls": rolls,
            "global_fingerprint_rolls": name in global_rolls,
            "scope_changed": scope_changed,
            "own_code_changed": own,
            "whole_project": sc.whole_project,
            "reason": sc.reason,
            "changed_files": in_scope,
        }
    for name in client_mode:
        # a scoped manifest has no global fingerprint for flash to inject
        rolls = not scoped_mode and name in global_rolls
        endpoints[name] = {
            "rolls": rolls,
            "flash_rolls": rolls,
            "global_fingerprint_rolls": name in global_rolls,
            "scope_changed": not unchanged,
            "own_code_changed": False,
            "whole_project": True,
            "reason": "client-mode resource: runpod-flash before 1.21.0 injects the global fingerprint into it too",
            "changed_files": None if changed is None else sorted(changed),
        }
    endpoints = dict(sorted(endpoints.items()))
    roll_list = sorted(n for n, ep in endpoints.items() if ep["rolls"])
    return {
        "mode": "scoped" if scoped_mode else "global",
        "rolls": roll_list,
        "flash_rolls": roll_list,
        "global_fingerprint_rolls": global_rolls,
        "scoped_rolls": sorted(scoped_rolls),
        "endpoints": endpoints,
    }


_ANSWER = {True: "yes", False: "no", None: "unknown"}


def format_status(report: Mapping[str, Any]) -> list[str]:
    """Text lines for :func:`status_report`'s result: one answer per
    endpoint (does the next deploy roll it), then why."""
    scoped = report["mode"] == "scoped"
    lines = [
        "  fingerprints: "
        + ("scoped (an endpoint rolls when a file in its scope changed)" if scoped
           else "flash's (one for the whole project; every endpoint rolls on any change)")
    ]
    for name, ep in report["endpoints"].items():
        line = (
            f"  {name}: next deploy rolls it: {_ANSWER[ep['rolls']]}; own code changed: "
            f"{_ANSWER[ep['own_code_changed']]}; scope changed: {_ANSWER[ep['scope_changed']]}"
        )
        if scoped and ep["global_fingerprint_rolls"] != ep["rolls"]:
            line += f" (with flash's global fingerprint: {_ANSWER[ep['global_fingerprint_rolls']]})"
        if ep["whole_project"] and ep["scope_changed"]:
            line += "  (scope: whole project: " + ep["reason"] + ")"
        lines.append(line)
        changed = ep["changed_files"] or ()
        for rel in changed[:20]:
            lines.append(f"      changed in its scope: {rel}")
        if len(changed) > 20:
            lines.append(f"      ... and {len(changed) - 20} more (--json lists all)")
    rolls = report["rolls"]
    if rolls and all(report["endpoints"][n]["own_code_changed"] is False for n in rolls):
        lines.append(f"  the next deploy rolls {len(rolls)} endpoint(s), none of their code changed")
    if scoped:
        kept = sorted(set(report["global_fingerprint_rolls"]) - set(rolls))
        if kept:
            lines.append(f"  scoped: {', '.join(kept)} keep(s) its fingerprint "
                         "(flash's global fingerprint would roll it)")
    return lines


def plan_notes(local_manifest: Mapping[str, Any], state_manifest: Mapping[str, Any]) -> dict[str, str]:
    """For a scoped local manifest: ``{resource: why it keeps its
    fingerprint}`` for every resource whose scoped fingerprint equals the
    deployed one; ``{}`` for a global manifest."""
    if not is_scoped_manifest(local_manifest):
        return {}
    record = local_manifest[MANIFEST_KEY]["resources"]
    state_resources = state_manifest.get("resources")
    state_resources = state_resources if isinstance(state_resources, Mapping) else {}
    notes: dict[str, str] = {}
    for name, entry in sorted(record.items()):
        if not isinstance(entry, Mapping):
            continue
        state = state_resources.get(name)
        env = state.get("env") if isinstance(state, Mapping) else None
        deployed = env.get(FP_KEY) if isinstance(env, Mapping) else None
        if deployed is None or deployed != entry.get("fingerprint"):
            continue
        excluded = list(entry.get("excluded") or ())
        if entry.get("whole_project"):
            why = "no shipped file changed (scope: whole project: " + str(entry.get("reason")) + ")"
        else:
            shown = ", ".join(excluded[:5]) + (f", ... {len(excluded) - 5} more" if len(excluded) > 5 else "")
            why = f"no file in its scope changed (scope leaves out {shown})"
        notes[name] = why
    return notes

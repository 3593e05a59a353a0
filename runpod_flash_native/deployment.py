"""Mirror of the change detection in ``runpod_flash.cli.utils.deployment``.

On deploy, flash injects the build's ``source_fingerprint`` into the ``env``
of every resource (from 1.21.0 on: every resource that is not in client mode;
1.14.0 to 1.20.x inject into client-mode resources too), in place, then for
each resource present both locally and in the deployed (State Manager)
manifest, in sorted order, compares::

    json.dumps(_resource_config_for_compare(config), sort_keys=True)

of the two configs. A resource rolls (``update``) when the texts differ or the
deployed manifest has no endpoint for it; otherwise its endpoint is reused.
Local-only resources are provisioned, deployed-only ones are deleted.

This module makes the same decisions in C (``_fingerprint``), without copying
or serialising plain JSON values, and says *why* each resource rolls. The
release whose rule is followed is the ``flash_version=`` keyword of
:func:`inject_source_fingerprint` and :func:`plan_reconciliation`: by default
the installed runpod-flash, or :data:`DEFAULT_FLASH_VERSION` when runpod-flash
is not installed (:func:`modelled_flash_version`).

Shared objects: flash injects in place before comparing, so when two local
resources share one object (the same ``env`` dict under two names, one of
them client-mode; a config nested in another) or the two manifests share
objects, the injection shows wherever the object appears, and a reused
resource's ``endpoint_id``/``aiKey``/``resources_endpoints`` writes show in
the comparisons after it. :func:`plan_reconciliation` follows flash's order
of effects exactly: it injects in place, compares the injected objects in
flash's order and makes the reuse writes as it goes (undoing those at the
end: :func:`apply_reuse` makes them).

Where this deliberately differs from flash:

* ``env: None`` on a resource that gets the fingerprint: flash raises
  ``TypeError`` (``None`` does not support item assignment); here it is treated
  as an empty env and replaced by ``{"_FLASH_SOURCE_FINGERPRINT": fp}``.
* Bad input raises ``TypeError`` naming the resource and key, before anything
  is mutated: a manifest, ``resources``, ``resources_endpoints``, a resource
  config or an ``env`` that is not a dict, or a ``source_fingerprint`` that is
  neither a str nor None (flash would inject any truthy value, and skip falsy
  ones such as ``0``). Flash fails on these with ``AttributeError`` or
  ``TypeError`` at the first use, possibly after injecting.
* ``plan_reconciliation`` is atomic: if a comparison raises (a value json
  cannot serialise, mixed key types), the injection is undone and the local
  manifest is left as it was, where flash has already injected.
* ``resource_config_for_compare``, ``config_differs`` and ``config_changes``
  take dicts only (subclasses included) and raise ``TypeError`` otherwise;
  flash's ``copy.deepcopy(x).pop(field, None)`` raises ``AttributeError``
  (str, None, tuple) or ``TypeError`` (list) for non-dicts.
* Depth: the C walk uses one recursion level per nesting level, flash's
  ``copy.deepcopy`` about two Python frames. Configs nested deeper than the
  recursion limit raise ``RecursionError`` in both; between roughly half the
  limit and the limit flash raises while this module still answers. The C
  recursion (and ``json.dumps``, measured before it runs) also stops with
  ``RecursionError`` when the thread's C stack is nearly full, so a raised
  ``sys.setrecursionlimit`` or a small thread stack never turns a deeply
  nested (untrusted) manifest into a crash; flash's ``json.dumps`` would
  overflow the C stack there.
* ``missing_state_fingerprint="adopt"`` is an option flash does not have.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
import types
from collections.abc import Hashable, Iterable, Mapping
from typing import Any, Literal

from . import _fingerprint

__all__ = [
    "DEFAULT_FLASH_VERSION",
    "RUNTIME_RESOURCE_FIELDS",
    "SOURCE_FINGERPRINT_ENV_KEY",
    "UNSET",
    "Change",
    "ReconciliationPlan",
    "apply_reuse",
    "config_changes",
    "config_differs",
    "describe_change",
    "inject_source_fingerprint",
    "modelled_flash_version",
    "plan_reconciliation",
    "resource_config_for_compare",
    "rolls_on_fingerprint_change",
    "skips_client_mode",
]

#: Top-level config fields flash drops before comparing (runtime metadata).
RUNTIME_RESOURCE_FIELDS: frozenset[str] = _fingerprint.RUNTIME_RESOURCE_FIELDS

#: The env key flash writes the source fingerprint to.
SOURCE_FINGERPRINT_ENV_KEY: str = _fingerprint.SOURCE_FINGERPRINT_ENV_KEY

#: The flash release modelled when runpod-flash is not installed (its final
#: release).
DEFAULT_FLASH_VERSION = "1.21.0"

# The first release that leaves client-mode resources without a fingerprint.
_CLIENT_MODE_SKIPPED_SINCE = (1, 21, 0)

_VERSION_RE = re.compile(
    r"v?(\d+)\.(\d+)(?:\.(\d+))?(?:[._-]?(?:a|b|rc|post|dev)\d*)*(?:\+[0-9A-Za-z.]+)?"
)
_UNKNOWN: Any = object()
_installed: Any = _UNKNOWN


def _installed_flash_version() -> str | None:
    """The installed runpod-flash's version (read once per process), or None."""
    global _installed
    if _installed is _UNKNOWN:
        from ._flash import flash_version

        _installed = flash_version()
    version: str | None = _installed
    return version


def modelled_flash_version(flash_version: str | None = None) -> str:
    """The runpod-flash release whose deploy rules are followed: ``flash_version``
    when given, else the installed runpod-flash, else
    :data:`DEFAULT_FLASH_VERSION`. ``ValueError`` naming the version when it is
    not a version or is outside the releases this package was verified with
    (:data:`runpod_flash_native._flash.SUPPORTED_FLASH_VERSIONS`)."""
    from ._flash import SUPPORTED_FLASH_VERSIONS, version_supported

    given = flash_version is not None
    if not given:
        flash_version = _installed_flash_version()
        if flash_version is None:
            return DEFAULT_FLASH_VERSION
    if not isinstance(flash_version, str):
        raise TypeError(f"flash_version must be a str, not {type(flash_version).__name__}")
    if _VERSION_RE.fullmatch(flash_version.strip()) is None or not version_supported(flash_version):
        where = "flash_version" if given else "the installed runpod-flash"
        raise ValueError(
            f"{where} {flash_version!r} is not a runpod-flash release this package models "
            f"({SUPPORTED_FLASH_VERSIONS})"
            + ("" if given else "; name the release to model with flash_version= (CLI: --flash-version)")
        )
    return flash_version.strip()


def skips_client_mode(flash_version: str | None = None) -> bool:
    """Whether that release (see :func:`modelled_flash_version`) leaves
    client-mode resources without the fingerprint (1.21.0 and later)."""
    from ._flash import parse_version

    parsed = parse_version(modelled_flash_version(flash_version))
    return parsed is not None and parsed >= _CLIENT_MODE_SKIPPED_SINCE


ChangeKind = Literal["changed", "added", "removed", "endpoint_missing"]


class _Unset:
    """Marks the side of a :class:`Change` that has no value."""

    _instance: _Unset | None = None

    def __new__(cls) -> _Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()

_PLAIN_KEY = re.compile(r'[^.\[\]"\s]+')


@dataclasses.dataclass(frozen=True)
class Change:
    """One reason a resource rolls.

    ``kind`` is ``"changed"`` (both sides have a value, and it prints
    differently), ``"added"`` (only the local config has it), ``"removed"``
    (only the deployed config has it) or ``"endpoint_missing"`` (the deployed
    manifest has no endpoint for the resource). ``path`` leads from the config
    to the value: dict keys and list indexes; ``()`` is the whole config (used
    when a config holds values other than plain JSON types, which are compared
    as a whole). ``old`` is the deployed value, ``new`` the local one; a side
    without a value is :data:`UNSET`. Values are references into the manifests,
    not copies.
    """

    kind: ChangeKind
    path: tuple[str | int, ...] = ()
    old: Any = UNSET
    new: Any = UNSET

    @property
    def field(self) -> str:
        """``path`` as text: ``env._FLASH_SOURCE_FINGERPRINT``, ``gpuIds[0]``,
        ``env["a.b"]``; ``""`` for the whole config."""
        out: list[str] = []
        for part in self.path:
            if isinstance(part, int):
                out.append(f"[{part}]")
            elif isinstance(part, str) and _PLAIN_KEY.fullmatch(part):
                out.append(f".{part}" if out else part)
            else:
                out.append(f"[{json.dumps(part)}]")
        return "".join(out)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; values are deep copies, an UNSET side is omitted."""
        out: dict[str, Any] = {"kind": self.kind}
        if self.kind != "endpoint_missing":
            out["field"] = self.field
            out["path"] = list(self.path)
        if self.old is not UNSET:
            out["old"] = copy.deepcopy(self.old)
        if self.new is not UNSET:
            out["new"] = copy.deepcopy(self.new)
        return out

    def __str__(self) -> str:
        if self.kind == "endpoint_missing":
            return "no endpoint in the deployed manifest"
        where = self.field or "<config>"
        if self.kind == "added":
            return f"{where}: added {self.new!r}"
        if self.kind == "removed":
            return f"{where}: removed (was {self.old!r})"
        return f"{where}: {self.old!r} -> {self.new!r}"


def _change(raw: tuple[tuple[str | int, ...], str, Any, Any]) -> Change:
    path, kind, old, new = raw
    if kind == "added":
        old = UNSET
    elif kind == "removed":
        new = UNSET
    elif kind == "endpoint_missing":
        old = new = UNSET
    # What the frozen dataclass __init__ does, without its per-field
    # object.__setattr__ calls (a plan can carry thousands of changes).
    change = object.__new__(Change)
    change.__dict__.update(kind=kind, path=path, old=old, new=new)
    return change


@dataclasses.dataclass(frozen=True)
class ReconciliationPlan:
    """What ``flash deploy`` does with each resource, and why.

    Every name tuple is sorted. ``reasons`` maps each name in ``update`` to its
    :class:`Change` list: the fields whose JSON text differs (in ``json``'s
    sorted key order) followed by ``endpoint_missing`` when applicable.
    ``adopted`` lists the names in ``reuse`` that were kept only because of
    ``missing_state_fingerprint="adopt"``.
    """

    provision: tuple[Hashable, ...]
    update: tuple[Hashable, ...]
    reuse: tuple[Hashable, ...]
    delete: tuple[Hashable, ...]
    reasons: Mapping[Hashable, tuple[Change, ...]] = dataclasses.field(
        default_factory=lambda: types.MappingProxyType({})
    )
    adopted: tuple[Hashable, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for a CLI: name lists, then reasons per update."""
        return {
            "provision": list(self.provision),
            "update": list(self.update),
            "reuse": list(self.reuse),
            "delete": list(self.delete),
            "adopted": list(self.adopted),
            "reasons": {
                name: [c.to_dict() for c in self.reasons.get(name, ())] for name in self.update
            },
        }


def describe_change(change: Change | Mapping[str, Any]) -> str:
    """One line for ``change`` (a :class:`Change` or its :meth:`Change.to_dict`
    form), values as JSON text: ``workersMax: 1 -> 3``, ``env.X: added "v"``,
    ``gpuIds: removed (was ["a"])``, ``no endpoint in the deployed manifest``;
    the whole config is ``<whole config>``."""
    if isinstance(change, Change):
        change = change.to_dict()
    kind = change.get("kind")
    if kind == "endpoint_missing":
        return "no endpoint in the deployed manifest"
    field = change.get("field") or "<whole config>"
    if kind == "added":
        return f"{field}: added {_json_text(change.get('new'))}"
    if kind == "removed":
        return f"{field}: removed (was {_json_text(change.get('old'))})"
    return f"{field}: {_json_text(change.get('old'))} -> {_json_text(change.get('new'))}"


def _json_text(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def rolls_on_fingerprint_change(
    old: Mapping[str, Any], new: Mapping[str, Any], *, flash_version: str | None = None
) -> list[str]:
    """The resources (sorted) flash's deploy updates when each one was
    deployed, with an endpoint, carrying the source fingerprint ``old[name]``
    and the local build carries ``new[name]``, their configs otherwise equal:
    flash's roll rule for a source change (``old`` and ``new`` have the same
    names: the resources the fingerprint is injected into)."""
    names = sorted(new)
    local = {"resources": {n: {"env": {SOURCE_FINGERPRINT_ENV_KEY: new[n]}} for n in names}}
    state = {
        "resources": {n: {"env": {SOURCE_FINGERPRINT_ENV_KEY: old[n]}} for n in names},
        "resources_endpoints": {n: f"https://{n}" for n in names},
    }
    return [str(n) for n in plan_reconciliation(local, state, flash_version=flash_version).update]


def inject_source_fingerprint(local_manifest: dict[str, Any], *, flash_version: str | None = None) -> None:
    """Set ``env["_FLASH_SOURCE_FINGERPRINT"]`` of every resource (flash 1.21.0
    and later: every resource not in client mode) to the manifest's
    ``source_fingerprint`` (``setdefault("env", {})`` first), in place, in the
    manifest's order. No-op without a (non-empty) fingerprint. ``env: None``
    counts as an empty env. Raises ``TypeError`` before mutating anything if
    the manifest, ``resources``, a resource config or an env to write is not a
    dict, or the fingerprint is not a str. ``flash_version``: see
    :func:`modelled_flash_version`."""
    _fingerprint.inject_source_fingerprint(local_manifest, skip_client_mode=skips_client_mode(flash_version))


def resource_config_for_compare(config: dict[str, Any]) -> dict[str, Any]:
    """Deep copy of ``config`` without :data:`RUNTIME_RESOURCE_FIELDS` (top
    level), as flash's ``_resource_config_for_compare``; ``config`` is never
    mutated. ``copy.deepcopy`` semantics (shared and cyclic structure kept,
    ``__deepcopy__`` honoured). ``TypeError`` for a non-dict."""
    return _fingerprint.resource_config_for_compare(config)


def config_differs(local_config: dict[str, Any], state_config: dict[str, Any]) -> bool:
    """``json.dumps(resource_config_for_compare(local_config), sort_keys=True)
    != json.dumps(resource_config_for_compare(state_config), sort_keys=True)``.

    Decided without copying or serialising when both configs hold only plain
    JSON types; otherwise the expression itself is evaluated, so whatever
    ``json.dumps`` raises (``TypeError``, ``ValueError``) is raised, for the
    local config first."""
    return _fingerprint.config_differs(local_config, state_config)


def config_changes(local_config: dict[str, Any], state_config: dict[str, Any]) -> list[Change]:
    """The differences :func:`config_differs` sees, as :class:`Change` objects
    (empty when it returns False). Raises where it raises."""
    return [_change(raw) for raw in _fingerprint.config_changes(local_config, state_config)]


def plan_reconciliation(
    local_manifest: dict[str, Any],
    state_manifest: dict[str, Any],
    *,
    missing_state_fingerprint: Literal["update", "adopt"] = "update",
    flash_version: str | None = None,
) -> ReconciliationPlan:
    """Plan a deploy exactly as flash's ``reconcile_and_provision_resources``
    decides it, and inject the fingerprint into ``local_manifest`` as it does.

    ``missing_state_fingerprint="update"`` (flash's behaviour): a deployed
    config without ``_FLASH_SOURCE_FINGERPRINT`` differs from the injected
    local one, so the resource rolls once after upgrading. ``"adopt"``: such a
    resource is reused when its deployed config equals the local config as it
    was before injection and it has an endpoint; the local manifest still gets
    the fingerprint, so the next deploy compares normally.

    ``flash_version`` names the flash release modelled (which resources get
    the fingerprint); see :func:`modelled_flash_version`.

    Validation happens before any mutation; the injection is made in place
    before comparing, as flash makes it (objects the manifests share show it
    wherever flash's would), and undone on any exception: ``local_manifest``
    is then unchanged. Copying endpoints of reused resources is
    :func:`apply_reuse`'s job.
    """
    if missing_state_fingerprint not in ("update", "adopt"):
        raise ValueError(
            f"missing_state_fingerprint must be 'update' or 'adopt', not {missing_state_fingerprint!r}"
        )
    skip = skips_client_mode(flash_version)
    provision, update, reuse, delete, reasons, adopted = _fingerprint.plan_reconciliation(
        local_manifest, state_manifest, adopt=missing_state_fingerprint == "adopt", skip_client_mode=skip
    )
    return ReconciliationPlan(
        provision=tuple(provision),
        update=tuple(update),
        reuse=tuple(reuse),
        delete=tuple(delete),
        reasons=types.MappingProxyType(
            {name: tuple(_change(raw) for raw in raws) for name, raws in reasons.items()}
        ),
        adopted=tuple(adopted),
    )


def apply_reuse(
    local_manifest: dict[str, Any],
    state_manifest: dict[str, Any],
    plan: ReconciliationPlan | Iterable[Hashable],
) -> None:
    """For each reused resource (in order), copy ``endpoint_id`` and ``aiKey``
    from its deployed config when present, and its
    ``state_manifest["resources_endpoints"]`` entry into the local manifest's
    (created if needed), as flash does. ``plan`` is a plan or the names.
    Everything is checked before the first write (``TypeError``)."""
    names = plan.reuse if isinstance(plan, ReconciliationPlan) else plan
    _fingerprint.apply_reuse(local_manifest, state_manifest, list(names))

import os
from collections.abc import Iterable

class SourceChangedError(RuntimeError): ...

def compute_source_fingerprint(
    project_dir: str | os.PathLike[str], files: Iterable[str | os.PathLike[str]]
) -> str: ...

# ---- deploy diff (csrc/diff.c) ---------------------------------------------

from collections.abc import Hashable, Sequence
from typing import Any

RUNTIME_RESOURCE_FIELDS: frozenset[str]
SOURCE_FINGERPRINT_ENV_KEY: str

# (path, kind, old, new); kind: "changed" | "added" | "removed" | "endpoint_missing"
_RawChange = tuple[tuple[str | int, ...], str, Any, Any]

def inject_source_fingerprint(local_manifest: dict[str, Any], /) -> None: ...
def resource_config_for_compare(config: dict[str, Any], /) -> dict[str, Any]: ...
def config_differs(local_config: dict[str, Any], state_config: dict[str, Any], /) -> bool: ...
def config_changes(
    local_config: dict[str, Any], state_config: dict[str, Any], /
) -> list[_RawChange]: ...
def plan_reconciliation(
    local_manifest: dict[str, Any], state_manifest: dict[str, Any], *, adopt: bool = ...
) -> tuple[
    list[Hashable],
    list[Hashable],
    list[Hashable],
    list[Hashable],
    dict[Hashable, list[_RawChange]],
    list[Hashable],
]: ...
def apply_reuse(
    local_manifest: dict[str, Any], state_manifest: dict[str, Any], names: Sequence[Hashable], /
) -> None: ...

import os
from collections.abc import Iterable

class SourceChangedError(RuntimeError): ...

def compute_source_fingerprint(
    project_dir: str | os.PathLike[str], files: Iterable[str | os.PathLike[str]]
) -> str: ...

# ---- ignore.c: gitwildmatch patterns ----------------------------------------
import re
from collections.abc import Iterable, Sequence
from typing import final

class InvalidPatternError(ValueError): ...
class PatternRegexError(re.error): ...

@final
class IgnoreSpec:
    @property
    def patterns(self) -> tuple[str, ...]: ...
    def match_file(self, path: str | os.PathLike[str], /) -> bool: ...
    def __len__(self) -> int: ...

def compile_ignore_patterns(
    patterns: Iterable[str], origins: Sequence[str] | None = None
) -> IgnoreSpec: ...

# Test hooks for the GIL-free C entry points (rfn_fsdecode_cps, rfn_matcher_ignores).
def _fsdecode(raw: bytes, /) -> str: ...
def _match_fsbytes(spec: IgnoreSpec, raw: bytes, /) -> bool: ...

# ---- walk.c
class SymlinkLoopError(OSError): ...

def walk_files(
    root: str, spec: IgnoreSpec | None, prefix: str | None
) -> tuple[list[str], list[tuple[str, int]]]: ...
def fingerprint_tree(
    root: str, spec: IgnoreSpec | None, want_files: bool
) -> tuple[list[str] | None, str, list[tuple[str, int]]]: ...
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

# ---- parallel gzip helpers (csrc/pgzip.c, csrc/py_pgzip.c) -----------------

from typing_extensions import Buffer as _Buffer  # noqa: E402

def byte_entropy(data: _Buffer, segment_size: int, /) -> list[float]: ...
def crc32_combine(crc1: int, crc2: int, len2: int, /) -> int: ...

# copy (csrc/copy.c, csrc/py_copy.c): copy2 of many files on worker threads.
# Returns None, or (index, kind, errno, which, dst_into) for the first failing
# file in list order; kind in "os", "same", "fifo", "nodir", "changed";
# which: 0 src, 1 dst, 2 src -> dst. _copy_kernel_paths: 1 when the build
# uses FICLONE and copy_file_range, 0 for read/write only (RFN_PORTABLE).
_copy_kernel_paths: int
def copy_files(
    srcs: Sequence[str | bytes | os.PathLike[str]],
    dsts: Sequence[str | bytes | os.PathLike[str]],
    threads: int,
    method: int = 0,
    /,
) -> tuple[int, str, int, int, str | None] | None: ...

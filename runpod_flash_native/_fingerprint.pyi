# The compiled extension (csrc/). Checked against the built module by
# `python -m mypy.stubtest runpod_flash_native._fingerprint` (.ci/run), private
# names included: tests use them.
import os
import re
from collections.abc import Hashable, Iterable, Sequence
from typing import Any, Literal, final, overload

from typing_extensions import Buffer as _Buffer

# ---- the fingerprint stream (csrc/hash.c, csrc/py_hash.c, csrc/sources.c) --

class SourceChangedError(RuntimeError): ...

@overload
def compute_source_fingerprint(
    project_dir: str | os.PathLike[str], files: Iterable[str | os.PathLike[str]], *, digests: Literal[False] = False
) -> str: ...
@overload
def compute_source_fingerprint(
    project_dir: str | os.PathLike[str], files: Iterable[str | os.PathLike[str]], *, digests: Literal[True]
) -> tuple[str, list[tuple[str, int, str]]]: ...

# Test hook: reader threads of the threaded hash (0 = default); returns the previous value.
def _set_reader_threads(n: int, /) -> int: ...
# Bytes the native hash has read in this process (progress where /proc/self/io is missing).
def _bytes_read() -> int: ...
def _set_list_workers(n: int, /) -> int: ...

# Sizes the C code works in, for tests to derive their inputs from.
_CHUNK_SIZE: int          # bytes per read(2) / ring slot
_THREAD_THRESHOLD: int    # streams below this many bytes are hashed inline
_READER_BLOCK: int        # consecutive files a reader frames in turn
_MAX_READERS: int         # reader threads at most
_WAIT_POLL_NS: int        # signal handlers run at least this often while waiting
_DIRCACHE_DEPTH: int      # files of directories this deep open relative to a held directory
_PORTABLE_BUILD: int      # 1: the POSIX fallbacks of csrc/os.c are compiled in

# ---- gitwildmatch patterns (csrc/ignore.c) ---------------------------------

class InvalidPatternError(ValueError): ...
class PatternRegexError(re.error): ...

@final
class IgnoreSpec:
    @property
    def patterns(self) -> tuple[str, ...]: ...
    @property
    def dialect(self) -> str: ...
    def match_file(self, path: str | os.PathLike[str], /) -> bool: ...
    def __len__(self) -> int: ...

def compile_ignore_patterns(
    patterns: Iterable[str], origins: Sequence[str] | None = None, *, dialect: str = "1.1"
) -> IgnoreSpec: ...

# Test hooks for the GIL-free C entry points (rfn_fsdecode_cps,
# rfn_matcher_ignores, rfn_matcher_walk_entry).
def _fsdecode(raw: bytes, /) -> str: ...
def _match_fsbytes(spec: IgnoreSpec, raw: bytes, /) -> bool: ...
def _match_walk(spec: IgnoreSpec, prefix: str, parts: list[bytes], /) -> list[bool]: ...

# ---- the walk (csrc/walk.c) ------------------------------------------------

class SymlinkLoopError(OSError): ...

# The walk's files: dirs[k - 1] = (ancestor slot, name or names joined by "/") is
# slot k (slot 0: root);
# runs = (slot, names in that directory), in flash's order.
_WalkDirs = list[tuple[int, str]]
_WalkRuns = list[tuple[int, list[str]]]

def walk_files(
    root: str, spec: IgnoreSpec | None, prefix: str | None, /
) -> tuple[_WalkDirs, _WalkRuns, list[tuple[str, int]]]: ...
def fingerprint_tree(
    root: str, spec: IgnoreSpec | None, want_files: bool, /
) -> tuple[tuple[_WalkDirs, _WalkRuns] | None, str, list[tuple[str, int]]]: ...

# ---- deploy diff (csrc/json_eq.c, compare.c, plan.c) -----------------------

RUNTIME_RESOURCE_FIELDS: frozenset[str]
SOURCE_FINGERPRINT_ENV_KEY: str

# (path, kind, old, new); kind: "changed" | "added" | "removed" | "endpoint_missing"
_RawChange = tuple[tuple[str | int, ...], str, Any, Any]

def inject_source_fingerprint(local_manifest: dict[str, Any], *, skip_client_mode: bool = True) -> None: ...
def resource_config_for_compare(config: dict[str, Any], /) -> dict[str, Any]: ...
def config_differs(local_config: dict[str, Any], state_config: dict[str, Any], /) -> bool: ...
def config_changes(
    local_config: dict[str, Any], state_config: dict[str, Any], /
) -> list[_RawChange]: ...
def plan_reconciliation(
    local_manifest: dict[str, Any],
    state_manifest: dict[str, Any],
    *,
    adopt: bool = ...,
    skip_client_mode: bool = True,
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

def byte_entropy(data: _Buffer, segment_size: int, /) -> list[float]: ...
def lz_matches(data: _Buffer, start: int, segment_size: int, /) -> list[int]: ...
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

"""The per-file source index (``fingerprint --index``): each shipped file's
size and SHA-256, written beside a fingerprint taken from the same contents,
and compared with the project by ``status``."""

from __future__ import annotations

import hashlib
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import _fingerprint
from ._common import (
    DEFAULT_INDEX_RELPATH, PROG, CliError, Guard, describe, read_json, rel, show, write_json_atomic,
)
from ._progress import Progress
from ._project import fingerprint

INDEX_FORMAT = "runpod-flash-native/source-index"
INDEX_VERSION = 1
_CHUNK = 1 << 20


class _Stopped(Exception):
    """A worker saw the stop flag between two chunks."""


def _file_sha256(path: Path, stop: threading.Event | None = None) -> tuple[int, str]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            if stop is not None and stop.is_set():
                raise _Stopped
            h.update(chunk)
            size += len(chunk)
    return size, h.hexdigest()


def _hash_files(paths: Sequence[Path]) -> list[tuple[int, str]]:
    """(size, SHA-256) of each file, on a few threads.

    Ctrl-C stops it as promptly as the native hash: the workers check a stop
    flag between chunks, so the pool's shutdown (and the interpreter's join
    of its threads at exit) waits for one chunk per thread, not for the
    rest of the files in flight (minutes for a multi-GiB file)."""
    from concurrent.futures import ThreadPoolExecutor

    if not paths:
        return []
    stop = threading.Event()
    pool = ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1))
    try:
        with Guard(paths[0].parent), Progress("indexing", paths, native=False):
            return list(pool.map(lambda p: _file_sha256(p, stop), paths))
    finally:
        stop.set()  # no-op once every file is done; else the workers quit
        pool.shutdown(wait=True, cancel_futures=True)


def _stat_key(path: Path) -> tuple[int, int, int, int]:
    st = path.stat()
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def build_index(root: Path, files: Sequence[Path]) -> tuple[str, dict[str, Any]]:
    """(fingerprint, the index document) taken from the same file contents.

    Files are stat'ed before and after hashing; a change in between (size,
    mtime, inode) restarts, at most three times.
    """
    for _attempt in range(3):
        before = [_stat_key(f) for f in files]
        digests = _hash_files(files)
        fp = fingerprint(root, files)
        changed = [f for f, key in zip(files, before) if _stat_key(f) != key]
        if not changed:
            entries = {rel(f, root): {"size": size, "sha256": sha} for f, (size, sha) in zip(files, digests)}
            return fp, {
                "format": INDEX_FORMAT,
                "version": INDEX_VERSION,
                "source_fingerprint": fp,
                "files": dict(sorted(entries.items())),
            }
    raise CliError(f"{show(changed[0])}: kept changing while the index was written; try again")


def index_target(raw: str) -> Path:
    """The file ``fingerprint --index`` writes, checked before any hashing."""
    path = Path(raw).absolute()
    if path.is_dir():
        raise CliError(
            f"{show(raw)}: is a directory; --index takes the file to write "
            f"(for example {show(os.path.join(raw, 'source_index.json'))})"
        )
    return path


def load_index(path: Path) -> dict[str, Any]:
    data = read_json(path, "index")
    if not (
        isinstance(data, dict)
        and data.get("format") == INDEX_FORMAT
        and isinstance(data.get("files"), dict)
    ):
        raise CliError(f"{show(path)}: not a {PROG} index (write one with `{PROG} fingerprint --index FILE`)")
    if data.get("version") != INDEX_VERSION:
        raise CliError(f"{show(path)}: unsupported index version {data.get('version')!r}")
    return data


def diff_against_index(root: Path, files: Sequence[Path], index: dict[str, Any]) -> dict[str, list[str]]:
    """``{"added", "removed", "modified"}``: relative paths, sorted. A file
    whose size matches the index is hashed to tell."""
    recorded: dict[str, Any] = index["files"]
    current = {rel(f, root): f for f in files}
    added = sorted(set(current) - set(recorded))
    removed = sorted(set(recorded) - set(current))
    modified = []
    to_hash = []
    for name in sorted(set(current) & set(recorded)):
        entry = recorded[name]
        size = entry.get("size") if isinstance(entry, dict) else None
        try:
            cur_size = current[name].stat().st_size
        except OSError as e:
            raise CliError(describe(e)) from None
        if size != cur_size:
            modified.append(name)
        else:
            to_hash.append(name)
    for name, (_, sha) in zip(to_hash, _hash_files([current[r] for r in to_hash])):
        if sha != recorded[name].get("sha256"):
            modified.append(name)
    return {"added": added, "removed": removed, "modified": sorted(modified)}


# --------------------------------------------------------------------------
# kept current by flash-native build


def refresh_after_build(
    project_dir: str | os.PathLike[str],
    files: Sequence[str | os.PathLike[str]],
    built_fingerprint: str,
    digests: Sequence[tuple[str, int, str]] | None = None,
) -> str | None:
    """Rewrite ``project_dir/.flash/source_index.json`` for the build whose
    (flash's, global) fingerprint is ``built_fingerprint``.

    ``digests``: each file's (relative path, size, SHA-256) taken from the very
    bytes ``built_fingerprint`` was computed from (the native fingerprint's
    ``digests=True``). Without them they are taken the same way in one more
    read of the shipped files, and the index is written only when those bytes
    give ``built_fingerprint`` again. Either way it describes the build's
    contents; otherwise (a file changed during the build), or when it cannot
    be written, a warning line says so and the build goes on. ``.flash/`` is
    ignored by flash, so the fingerprint is not affected. Returns the
    warning, or None when the index was written."""
    root = Path(project_dir)
    target = root / DEFAULT_INDEX_RELPATH
    changed = f"{show(target)} not refreshed: files changed while the build read them"
    problem = None
    try:
        fp = built_fingerprint
        if digests is None:
            fp, digests = _fingerprint.compute_source_fingerprint(root, files, digests=True)
        if fp != built_fingerprint:
            problem = changed
        else:
            write_json_atomic(target, {
                "format": INDEX_FORMAT,
                "version": INDEX_VERSION,
                "source_fingerprint": fp,
                "files": {name: {"size": size, "sha256": sha} for name, size, sha in digests},
            })
    except _fingerprint.SourceChangedError:
        problem = changed
    except (OSError, CliError, UnicodeError) as e:
        problem = f"{show(target)} not refreshed: {e if isinstance(e, CliError) else describe(e)}"
    if problem is None:
        return None
    message = f"{problem} (`{PROG} status` lists changed files only with a current index)"
    sys.stderr.write(f"flash-native: warning: {message}\n")
    return message

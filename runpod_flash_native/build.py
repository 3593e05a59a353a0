"""Mirror of ``runpod_flash.cli.commands.build``'s fingerprint call site."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from . import _fingerprint
from .ignore import _log_walk_warnings, _paths_from_runs, _paused_gc, load_ignore_patterns

if TYPE_CHECKING:
    from _typeshed import StrPath, SupportsRead

__all__ = ["compute_source_fingerprint", "fingerprint_project", "fingerprint_project_files"]


def compute_source_fingerprint(
    project_dir: str | os.PathLike[str], files: Iterable[str | os.PathLike[str]]
) -> str:
    """SHA-256 fingerprint of ``files``, byte-identical to flash's.

    Files are sorted by their POSIX path relative to ``project_dir`` and each
    is framed as ``be64(len(path)) path be64(len(content)) content``. Files are
    streamed in fixed-size chunks with the GIL released.

    Raises the exception flash raises for the same input: ``ValueError`` for a
    file outside ``project_dir``, ``FileNotFoundError``, ``IsADirectoryError``,
    ``PermissionError``, ``UnicodeEncodeError`` for a name that is not UTF-8;
    and :class:`SourceChangedError` when a file changes while it is hashed.
    """
    return _fingerprint.compute_source_fingerprint(project_dir, files)


def fingerprint_project_files(project_dir: str | os.PathLike[str]) -> tuple[list[Path], str]:
    """Walk, match and fingerprint ``project_dir`` in one native call.

    Returns flash's file list (as ``get_file_tree(d, load_ignore_patterns(d))``
    gives it) and the fingerprint ``compute_source_fingerprint`` would compute
    over it. The walk, the reads and SHA-256 overlap on separate threads.
    """
    project = Path(project_dir)
    spec = load_ignore_patterns(project)
    with _paused_gc():
        runs, digest, warnings = _fingerprint.fingerprint_tree(str(project), spec, True)
        _log_walk_warnings(warnings, spec, project)
        assert runs is not None
        return _paths_from_runs(project, *runs), digest


def fingerprint_project(project_dir: str | os.PathLike[str]) -> str:
    """The fingerprint ``flash build`` writes for ``project_dir``."""
    project = Path(project_dir)
    spec = load_ignore_patterns(project)
    _, digest, warnings = _fingerprint.fingerprint_tree(str(project), spec, False)
    _log_walk_warnings(warnings, spec, project)
    return digest


# ---- create_tarball ---------------------------------------------------------
# (imports kept with the section so that it merges as one block)
import re  # noqa: E402
import tarfile  # noqa: E402

from . import _pgzip  # noqa: E402

__all__ += ["create_tarball"]

_COPY_BUFSIZE = 1 << 20  # tarfile's read size; changes no byte of the archive


def _normalize_package_name(name: str) -> str:
    """flash's package-name key: lower case, hyphens as underscores."""
    return name.lower().replace("-", "_")


def _excluded_top_level(name: str, excluded: set[str]) -> bool:
    # flash drops a top-level entry named like an excluded package, and a
    # "<dist>-<version>.dist-info" whose <dist> (up to the FIRST "-<digit>") is one.
    if _normalize_package_name(name) in excluded:
        return True
    if name.endswith(".dist-info"):
        stem = name[: -len(".dist-info")]
        m = re.search(r"-\d", stem)
        dist = stem[: m.start()] if m else stem
        return _normalize_package_name(dist) in excluded
    return False


class _TarStream(tarfile.TarFile):
    """flash's TarFile (same name, format, add() calls), writing to our gzip
    writer; it also skips our temporary file, and names the file in the
    "unexpected end of data" a file shrinking under it raises."""

    skip_path: str | None = None

    def add(self, name: StrPath, arcname: StrPath | None = None, recursive: bool = True, *,  # noqa: A002
            filter: Callable[[tarfile.TarInfo], tarfile.TarInfo | None] | None = None) -> None:
        if self.skip_path is not None and os.path.abspath(name) == self.skip_path:
            return
        super().add(name, arcname, recursive, filter=filter)

    def addfile(self, tarinfo: tarfile.TarInfo, fileobj: SupportsRead[bytes] | None = None) -> None:
        try:
            super().addfile(tarinfo, fileobj)
        except OSError as e:
            if e.filename is not None or fileobj is None:
                raise
            path = getattr(fileobj, "name", tarinfo.name)
            if e.errno is not None:
                raise OSError(e.errno, e.strerror, path) from e
            raise OSError(f"{path}: {e}") from e


def _write_target(output_path: Path) -> str:
    """The file flash's ``open(output_path, "wb")`` writes: output_path, or,
    when it is a symlink left dangling (an existing one was unlinked above),
    the path it finally points to, which the open creates. A link that never
    resolves raises the open's ``ELOOP`` error."""
    path = os.fspath(output_path)
    if not os.path.islink(path):
        return path
    target = os.path.realpath(path)
    if os.path.islink(target):
        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
    return target


def create_tarball(
    build_dir: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    app_name: str,
    excluded_packages: list[str] | None = None,
) -> None:
    """``flash build``'s archive step, with a parallel gzip layer.

    Same effect as ``runpod_flash.cli.commands.build.create_tarball``: an
    existing output_path is removed, then build_dir is archived as "." and
    each sorted top-level entry as "./<name>", except excluded packages and
    their ``*.dist-info``. The archive decompresses to exactly the tar stream
    flash writes; it is one gzip member, deflated on
    ``RUNPOD_FLASH_NATIVE_THREADS`` threads (default: the usable CPUs) with
    incompressible data stored. It is written to a temporary file beside
    output_path and renamed at the end: on any error nothing is left at
    output_path. A dangling symlink at output_path is written through, as
    flash's open does: the temporary file goes beside its target, and the
    link stays. app_name is unused, as in flash.
    """
    del app_name
    build_dir = Path(build_dir)
    output_path = Path(output_path)
    excluded = {_normalize_package_name(p) for p in excluded_packages or ()}
    threads = _pgzip.thread_count()
    if output_path.exists():
        output_path.unlink()
    target = _write_target(output_path)
    with _pgzip.GzipMemberWriter(output_path, threads, target=target) as gz:
        # cast: tarfile's "w" mode only writes and tells, never reads or seeks
        with _TarStream(output_path, "w", fileobj=cast(Any, gz), copybufsize=_COPY_BUFSIZE) as tar:
            tar.skip_path = os.path.abspath(gz.temp_path)
            tar.add(build_dir, arcname=".", recursive=False)
            for item in sorted(build_dir.iterdir()):
                top = item.relative_to(build_dir).parts[0]
                if excluded and _excluded_top_level(top, excluded):
                    continue
                tar.add(str(item), arcname=f"./{item.relative_to(build_dir)}")


# ---- copy_project_files -----------------------------------------------------
# (imports kept with the section so that it merges as one block)
import shutil as _shutil  # noqa: E402
from pathlib import PosixPath as _PosixPath  # noqa: E402

__all__ += ["copy_project_files"]

# Content copy method (tests and benchmarks): 0 FICLONE -> copy_file_range ->
# read/write, 1 copy_file_range -> read/write, 2 read/write only.
_COPY_METHOD = 0


def _copy_mkdirs(path: Path, created: list[tuple[int, str]], index: int) -> None:
    """``path.mkdir(parents=True, exist_ok=True)`` (same calls, same errors),
    recording the directories it created, for file index."""
    try:
        os.mkdir(path, 0o777)
    except FileNotFoundError:
        if path.parent == path:
            raise
        _copy_mkdirs(path.parent, created, index)
        try:
            os.mkdir(path, 0o777)
        except OSError:
            if not path.is_dir():
                raise
            return
    except OSError:
        if not path.is_dir():
            raise
        return
    created.append((index, os.fspath(path)))


def _copy_error(fail: tuple[int, str, int, int, str | None], file: object, src: str, dst: str) -> BaseException:
    """The exception copy2(file, dst) raises for the failure the native copy
    reported (kind, errno, which path)."""
    _, kind, err, which, into = fail
    dst_obj: object = into if into is not None else Path(dst)
    dst_name = into if into is not None else dst
    if kind == "os":
        if which == 0:
            return OSError(err, os.strerror(err), src)
        if which == 1:
            return OSError(err, os.strerror(err), dst_name)
        return OSError(err, os.strerror(err), src, None, dst_name)
    if kind == "same":
        return _shutil.SameFileError(f"{file!r} and {dst_obj!r} are the same file")
    if kind == "fifo":
        return _shutil.SpecialFileError("`%s` is a named pipe" % (file if which == 0 else dst_obj))
    if kind == "nodir":
        return FileNotFoundError(f"Directory does not exist: {dst_obj}")
    return _fingerprint.SourceChangedError(
        f"{src!r} was replaced by another file while it was copied to {dst_name!r}"
    )


def _has_dotdot(rel: str) -> bool:
    return rel == ".." or rel.startswith("../") or rel.endswith("/..") or "/../" in rel


def copy_project_files(
    files: Iterable[Path], source_dir: str | os.PathLike[str], dest_dir: str | os.PathLike[str]
) -> None:
    """``flash build``'s copy step: ``shutil.copy2`` of every file to
    ``dest_dir / file.relative_to(source_dir)``, several files at once.

    Same effect as ``runpod_flash.cli.commands.build.copy_project_files``:
    parents made as ``mkdir(parents=True, exist_ok=True)`` makes them; per
    file the content (reflink, ``copy_file_range`` in the kernel, or
    read/write), the atime/mtime in ns, the extended attributes and the
    permission bits copy2 copies, symlinks followed. Threads:
    ``RUNPOD_FLASH_NATIVE_THREADS`` (default: the usable CPUs), GIL released.

    Raises what flash raises for the first bad file in list order, after
    every file before it is copied (``ValueError`` outside source_dir,
    ``FileNotFoundError``, ``IsADirectoryError``, ``PermissionError``,
    ``shutil.SameFileError``, ``shutil.SpecialFileError``, ``OSError``
    ENOSPC naming source and destination, ...). Unlike copy2, the failing
    file's destination is removed rather than left partial, files after it
    that this call created are removed again, and a source replaced by
    another file while it is copied raises :class:`SourceChangedError`.
    """
    files = list(files)
    threads = _pgzip.thread_count()
    srcs: list[str | os.PathLike[str]] = []
    dsts: list[str] = []
    parents: list[tuple[int, Path]] = []  # (first file index, parent) in flash's mkdir order
    seen_parents: set[str] = set()
    error: BaseException | None = None
    hazard = False

    fast = isinstance(source_dir, (str, os.PathLike)) and isinstance(dest_dir, (str, Path))
    if fast:
        sroot = str(Path(source_dir))
        droot = str(Path(dest_dir))
        sprefix = None if sroot == "." else (sroot if sroot.endswith("/") else sroot + "/")
        dprefix = "" if droot == "." else (droot if droot.endswith("/") else droot + "/")
    for i, f in enumerate(files):
        try:
            fs = str(f) if type(f) is _PosixPath else None
            if fast and fs is not None and sprefix is not None and fs.startswith(sprefix) and len(fs) > len(sprefix):
                rel = fs[len(sprefix):]
                dst = dprefix + rel
                src: str | os.PathLike[str] = fs
            else:
                rel_path = f.relative_to(source_dir)
                dest_path = dest_dir / rel_path
                rel, dst, src = os.fspath(rel_path), os.fspath(dest_path), f
                if not isinstance(dest_path, Path):
                    hazard = True  # flash's own calls, one by one
            if _has_dotdot(rel):
                hazard = True
            key = dst.rpartition("/")[0]
            if key not in seen_parents:
                seen_parents.add(key)
                parents.append((i, Path(dst).parent))
            if "\0" in dst:
                # flash makes the parent, then copy2's stat raises ValueError
                os.stat(src)
        except Exception as e:  # noqa: BLE001 - re-raised after the files before it
            error = e
            break
        srcs.append(src)
        dsts.append(dst)

    n = len(dsts)
    if not hazard:
        # Copies that could see each other (a destination named twice, one
        # that is another's source or directory) keep flash's one-by-one order.
        dset = set(dsts)
        ancestors: set[str] = set()
        for key in seen_parents:
            while key and key not in ancestors:
                ancestors.add(key)
                up = key.rpartition("/")[0]
                key = up if up != key else ""
        hazard = (
            len(dset) != n
            or not ancestors.isdisjoint(dset)
            or not dset.isdisjoint(s if isinstance(s, str) else os.fspath(s) for s in srcs)
        )
    if hazard:
        _copy_one_by_one(files, srcs, dsts, threads)
    else:
        created: list[tuple[int, str]] = []
        stop = n
        for i, parent in parents:
            if i > n:
                break
            try:
                _copy_mkdirs(parent, created, i)
            except Exception as e:  # noqa: BLE001
                error, stop = e, i
                break
        fail = _fingerprint.copy_files(srcs[:stop], dsts[:stop], threads, _COPY_METHOD)
        if fail is not None:
            k = fail[0]
            # copy2 never got past file k: remove the directories made for later files.
            for idx, path in reversed(created):
                if idx <= k:
                    break
                try:
                    os.rmdir(path)
                except OSError:
                    pass
            raise _copy_error(fail, files[k], os.fspath(srcs[k]), dsts[k])
    if error is not None:
        raise error


def _copy_one_by_one(files: list[Path], srcs: list[str | os.PathLike[str]], dsts: list[str], threads: int) -> None:
    for k, (src, dst) in enumerate(zip(srcs, dsts)):
        Path(dst).parent.mkdir(parents=True, exist_ok=True)
        fail = _fingerprint.copy_files([src], [dst], 1, _COPY_METHOD)
        if fail is not None:
            raise _copy_error(fail, files[k], os.fspath(src), dst)

"""Mirror of ``runpod_flash.cli.commands.build``'s fingerprint call site."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from . import _fingerprint
from .ignore import _log_walk_warnings, load_ignore_patterns

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
    files, digest, warnings = _fingerprint.fingerprint_tree(
        str(project), load_ignore_patterns(project), True
    )
    _log_walk_warnings(warnings)
    return [Path(f) for f in files], digest


def fingerprint_project(project_dir: str | os.PathLike[str]) -> str:
    """The fingerprint ``flash build`` writes for ``project_dir``."""
    project = Path(project_dir)
    _, digest, warnings = _fingerprint.fingerprint_tree(
        str(project), load_ignore_patterns(project), False
    )
    _log_walk_warnings(warnings)
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

    def add(self, name, arcname=None, recursive=True, *, filter=None):  # noqa: A002
        if self.skip_path is not None and os.path.abspath(name) == self.skip_path:
            return
        super().add(name, arcname, recursive, filter=filter)

    def addfile(self, tarinfo, fileobj=None):
        try:
            super().addfile(tarinfo, fileobj)
        except OSError as e:
            if e.filename is not None or fileobj is None:
                raise
            path = getattr(fileobj, "name", tarinfo.name)
            if e.errno is not None:
                raise OSError(e.errno, e.strerror, path) from e
            raise OSError(f"{path}: {e}") from e


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
    output_path. app_name is unused, as in flash.
    """
    del app_name
    build_dir = Path(build_dir)
    output_path = Path(output_path)
    excluded = {_normalize_package_name(p) for p in excluded_packages or ()}
    threads = _pgzip.thread_count()
    if output_path.exists():
        output_path.unlink()
    with _pgzip.GzipMemberWriter(output_path, threads) as gz:
        with _TarStream(output_path, "w", fileobj=gz, copybufsize=_COPY_BUFSIZE) as tar:
            tar.skip_path = os.path.abspath(gz.temp_path)
            tar.add(build_dir, arcname=".", recursive=False)
            for item in sorted(build_dir.iterdir()):
                top = item.relative_to(build_dir).parts[0]
                if excluded and _excluded_top_level(top, excluded):
                    continue
                tar.add(str(item), arcname=f"./{item.relative_to(build_dir)}")

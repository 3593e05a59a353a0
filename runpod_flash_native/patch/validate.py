"""flash's ``validate_local_module_imports`` with its file-system questions
answered once per call.

``flash build`` checks, before copying, that no shipped module imports a local
module the ignore rules dropped: for every shipped ``.py`` file it walks that
file's whole import closure afresh (``runpod_flash.stubs.local_modules``), so a
module reached from N files is resolved, stat-ed and read N times. On a
3,000-module app that is ~28,000 ``Path.resolve()`` calls (one ``lstat`` per
path component each), ~37,000 ``is_file()`` stats and ~9,000 file reads: most
of the step's time once :mod:`.ast_memo` has removed the repeated parses.

Its walk per file is also the quadratic part: a module reached from N files
is walked N times. Before flash's function runs,
:func:`.import_graph.clean_roots` walks every module once (with flash's own
code) and finds the files whose closure has nothing to say: no warning, no
error, no module the ignore rules dropped; for those, flash's
``resolve_local_modules`` answers an empty result at once, which its
validation treats exactly as the full one. Every other file is walked by flash.

:func:`validate_local_module_imports` runs flash's own function unchanged, with
``Path`` in flash's two modules bound, for the duration of the call, to
:class:`_MemoPath`: a ``PosixPath`` whose ``resolve()``, ``is_file()`` and
UTF-8 ``read_text()`` remember their answers for the call. flash only reads the
file system while it validates, so each answer is the one flash would get,
unless another process changes the project during that fraction of a second,
a race flash's own answer is subject to as well. Failures (``OSError``,
``UnicodeDecodeError``) are not remembered: they raise again, as they would.

Every call holds one lock while the binding is in place; the binding and the
memo are undone when the outermost call returns or raises.

The cyclic garbage collector is paused for the call (and its state restored):
the parse trees :mod:`.ast_memo` keeps for the scanner are millions of tracked
objects that, added while it runs, set off full collections of the growing
heap again and again (3,000 modules: 0.45 s of a 1.1 s validation). No user
code runs while flash validates: it only reads and parses files.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path, PosixPath
from typing import Any, cast

from ..ignore import _paused_gc
from .import_graph import clean_roots, graph_api_matches

__all__ = ["validate_local_module_imports"]

_BUILD = "runpod_flash.cli.commands.build"
_LOCAL_MODULES = "runpod_flash.stubs.local_modules"

_lock = threading.RLock()
_depth = 0
_memo: dict[tuple[str, str], Any] = {}


class _MemoPath(PosixPath):
    """A ``PosixPath`` whose file-system reads are remembered while a
    validation runs (outside one it behaves exactly like ``PosixPath``)."""

    __slots__ = ()

    def resolve(self, strict: bool = False) -> Any:
        if strict or not _depth:
            return super().resolve(strict)
        key = ("resolve", str(self))
        hit = _memo.get(key)
        if hit is None:
            hit = _memo[key] = super().resolve()
        return hit

    def is_file(self, **kwargs: Any) -> bool:
        if not _depth or kwargs:
            return super().is_file(**kwargs)
        key = ("is_file", str(self))
        hit = _memo.get(key)
        if hit is None:
            hit = _memo[key] = super().is_file()
        return hit

    def read_text(self, encoding: str | None = None, errors: str | None = None) -> str:
        if not _depth or encoding != "utf-8" or errors is not None:
            return super().read_text(encoding, errors)
        key = ("read_text", str(self))
        hit = _memo.get(key)
        if hit is None:
            hit = _memo[key] = super().read_text(encoding)
        return hit


if os.name != "posix":  # pragma: no cover - flash-native builds on POSIX only
    _MemoPath = Path  # type: ignore[misc,assignment]


@contextmanager
def _memoized(modules: Sequence[Any]) -> Iterator[None]:
    global _depth
    with _lock:
        saved = [(m, m.__dict__.get("Path")) for m in modules]
        if _depth == 0:
            for m, _ in saved:
                m.Path = _MemoPath
        _depth += 1
        try:
            yield
        finally:
            _depth -= 1
            if _depth == 0:
                _memo.clear()
                for m, old in saved:
                    m.Path = old if old is not _MemoPath else Path


def _flash_function() -> Callable[..., None]:
    """flash's own function: the one the patch replaced, else the current one."""
    from .. import patch as _patch

    original = _patch.flash_original(_BUILD, "validate_local_module_imports")
    if original is None:
        import importlib

        original = importlib.import_module(_BUILD).validate_local_module_imports
        if original is validate_local_module_imports:  # pragma: no cover - patch bookkeeping lost
            raise RuntimeError("flash's validate_local_module_imports is not reachable")
    return cast("Callable[..., None]", original)


def validate_local_module_imports(files: list[Path], project_dir: Path) -> None:
    """Same signature, effects, warnings and errors as flash's function."""
    import importlib

    flash_validate = _flash_function()
    modules = [importlib.import_module(_BUILD)]
    try:
        modules.append(importlib.import_module(_LOCAL_MODULES))
    except ImportError:  # a flash release without it
        pass
    with _memoized(modules), _paused_gc():
        # Only Path objects become _MemoPath: anything else reaches flash as
        # given, so it fails (or not) exactly as it would there.
        memo_files = [_MemoPath(f) if isinstance(f, PosixPath) else f for f in files]
        memo_dir = _MemoPath(project_dir) if isinstance(project_dir, PosixPath) else project_dir
        with _skipping_clean_roots(modules, memo_files, memo_dir):
            flash_validate(memo_files, memo_dir)


@contextmanager
def _skipping_clean_roots(modules: Sequence[Any], files: list[Any], project_dir: Any) -> Iterator[None]:
    """For the call, flash's ``resolve_local_modules`` (as its validation
    calls it) answers an empty result at once for each file of ``files``
    whose closure :func:`.import_graph.clean_roots` found to have nothing to
    say: what flash's own walk would return for it, as far as the validation
    looks (no warning; every module shipped). Every other file, and every
    other caller, gets flash's function."""
    build = modules[0]
    lm = modules[1] if len(modules) > 1 else None
    found = getattr(build, "resolve_local_modules", None)
    if lm is None or found is None or found is not getattr(lm, "resolve_local_modules", None) \
            or not graph_api_matches(lm):
        yield  # another flash, or somebody else's patch there: flash answers for every file
        return
    real = cast("Callable[..., Any]", found)
    clean_ids = clean_roots(files, project_dir, lm)
    clean = {id(f): f for f in files if id(f) in clean_ids}
    owner = threading.get_ident()

    def resolve_local_modules(source: str, source_file: Any, project_root: Any) -> Any:
        if threading.get_ident() == owner and clean.get(id(source_file)) is source_file:
            return lm.ResolvedModules()
        return real(source, source_file, project_root)

    build.resolve_local_modules = resolve_local_modules
    try:
        yield
    finally:
        build.resolve_local_modules = real

"""The shipped files flash's validation has nothing to say about, found in one
pass over the project's import graph.

flash's ``validate_local_module_imports`` resolves, for every shipped ``.py``
file, that file's whole import closure afresh
(``runpod_flash.stubs.local_modules.resolve_local_modules``: a depth-first
walk with a visited set of its own), so a module reached from N shipped files
is walked N times: quadratic in the number of modules when many of them import
one package that imports the rest. For a file whose closure holds no warning,
no error and no module missing from the shipped files, flash's answer is
nothing at all: it prints nothing, raises nothing and records no excluded
module.

:func:`clean_roots` walks each module once, with flash's own code
(``local_modules._walk`` and ``_include_ancestor_inits``, their calls to
``_include`` recorded instead of followed), which gives the graph flash's
walks run on; one pass backwards from every module that has anything to say
then marks all that reach one. A shipped file is clean when its own walk has
nothing to say and nothing it reaches has. Whatever goes wrong while a module
is walked (a warning, any exception, a module outside the project or not
shipped) makes it unclean, and flash's own function answers for every file
that reaches it.

Reachability is all that matters: flash's walk from a file visits every
module reachable from it (its visited set only stops a second visit), and
stops early only on an exception, which a clean closure does not raise.
"""

from __future__ import annotations

import inspect
import threading
from collections import deque
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

__all__ = ["clean_roots", "graph_api_matches"]

# The signatures of flash's private helpers this module drives (identical in
# runpod-flash 1.19.0-1.21.0, the releases that validate); anything else: no
# clean roots, flash answers for every file.
_SHAPES = {
    "_walk": ("source", "current_dir", "root", "result", "visited", "origin"),
    "_include": ("path", "root", "result", "visited"),
    "_include_ancestor_inits": ("path", "root", "result", "visited"),
    "resolve_local_modules": ("source", "source_file", "project_root"),
}


class _Unclean(Exception):
    """The module or file has something to say (a warning)."""


def graph_api_matches(local_modules: ModuleType) -> bool:
    """True when ``local_modules`` has the helpers :func:`clean_roots` drives,
    with flash's signatures, and a ``ResolvedModules`` class."""
    for name, params in _SHAPES.items():
        fn = getattr(local_modules, name, None)
        try:
            if not callable(fn) or tuple(inspect.signature(fn).parameters) != params:
                return False
        except (TypeError, ValueError):
            return False
    return isinstance(getattr(local_modules, "ResolvedModules", None), type)


class _Recorder:
    """Stands in for ``local_modules._include`` on the owning thread: records
    the path instead of following it (other threads get flash's own)."""

    def __init__(self, original: Callable[..., None]) -> None:
        self.original = original
        self.owner = threading.get_ident()
        self.paths: list[Any] = []

    def __call__(self, path: Any, root: Any, result: Any, visited: Any) -> None:
        if threading.get_ident() != self.owner:
            self.original(path, root, result, visited)
            return
        self.paths.append(path)

    def take(self) -> list[Any]:
        paths, self.paths = self.paths, []
        return paths


def clean_roots(files: Sequence[Any], project_dir: Any, lm: ModuleType) -> set[int]:
    """The ``id()`` of each file in ``files`` for which flash's
    ``resolve_local_modules(file.read_text(encoding="utf-8"), file, project_dir)``
    returns no warning and only shipped modules, and raises nothing.

    ``lm`` is ``runpod_flash.stubs.local_modules`` with its ``Path`` the
    memoizing one of :mod:`.validate`: every read here is the one flash gets
    afterwards. Any exception means no clean roots (flash then raises it)."""
    try:
        root = lm.Path(project_dir).resolve()
        present = {f.resolve() for f in files}
        py_files = [f for f in files if f.suffix == ".py"]
    except Exception:  # flash raises it, before any file is walked
        return set()

    original = lm._include
    recorder = _Recorder(original)
    setattr(lm, "_include", recorder)  # noqa: B010 - a module global flash's code looks up
    try:
        return _Graph(lm, root, present, recorder).clean(py_files)
    finally:
        setattr(lm, "_include", original)  # noqa: B010


class _Graph:
    """Modules (resolved paths) and the modules each one's walk includes."""

    def __init__(self, lm: ModuleType, root: Any, present: set[Any], recorder: _Recorder) -> None:
        self.lm = lm
        self.root = root
        self.present = present
        self.recorder = recorder
        self.edges: dict[Any, list[Any]] = {}  # module -> modules it includes
        self.unclean: set[Any] = set()

    def _walk_targets(self, source: str, current_dir: Any, origin: str) -> list[Any]:
        """The modules one walk of ``source`` includes (resolved), in order."""
        result = self.lm.ResolvedModules()
        self.lm._walk(source, current_dir, self.root, result, set(), origin=origin)
        if result.warnings:
            raise _Unclean
        return [p.resolve() for p in self.recorder.take()]

    def _module_targets(self, module: Any) -> list[Any]:
        """What flash's ``_include`` of the resolved ``module`` goes on to include."""
        module.relative_to(self.root)  # ValueError: outside the project
        if module not in self.present:
            raise _Unclean  # a local module the ignore rules excluded
        self.lm._include_ancestor_inits(module, self.root, self.lm.ResolvedModules(), set())
        inits = [p.resolve() for p in self.recorder.take()]
        return inits + self._walk_targets(module.read_text(encoding="utf-8"), module.parent, str(module))

    def _add(self, start: list[Any]) -> None:
        todo = deque(m for m in start if m not in self.edges)
        while todo:
            module = todo.popleft()
            if module in self.edges:
                continue
            try:
                targets = self._module_targets(module)
            except Exception:  # noqa: BLE001 - anything flash would say or raise
                self.recorder.take()
                self.unclean.add(module)
                targets = []
            self.edges[module] = targets
            todo.extend(t for t in targets if t not in self.edges)

    def _reaching_unclean(self) -> set[Any]:
        back: dict[Any, list[Any]] = {}
        for module, targets in self.edges.items():
            for t in targets:
                back.setdefault(t, []).append(module)
        marked = set(self.unclean)
        todo = deque(self.unclean)
        while todo:
            for importer in back.get(todo.popleft(), ()):
                if importer not in marked:
                    marked.add(importer)
                    todo.append(importer)
        return marked

    def clean(self, py_files: list[Any]) -> set[int]:
        starts: dict[int, list[Any] | None] = {}
        for f in py_files:
            try:
                source = f.read_text(encoding="utf-8")
                starts[id(f)] = self._walk_targets(source, self.lm.Path(f).resolve().parent, str(f))
            except Exception:  # noqa: BLE001 - flash reports it for this file
                self.recorder.take()
                starts[id(f)] = None
            else:
                self._add(starts[id(f)] or [])
        bad = self._reaching_unclean()
        return {key for key, targets in starts.items()
                if targets is not None and not any(t in bad for t in targets)}

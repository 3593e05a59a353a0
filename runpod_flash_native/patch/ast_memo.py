"""A memoizing stand-in for the ``ast`` module inside flash's build modules.

``flash build`` parses every shipped ``.py`` file several times:
``validate_local_module_imports`` walks each file's import closure (a file
imported by many others is parsed once per importer), the scanner's
``defines_endpoint`` and ``_analyze_cross_calls_ast`` parse again, and
``collect_requirements`` -> ``extract_remote_dependencies`` once more over the
build directory. Each parse is followed by a full ``ast.walk``.

:func:`ast.parse` is a pure function of its arguments and ``ast.walk`` of the
tree it is given, and flash's code only reads the trees (no node is assigned
to, no transformer runs), so handing back the same tree, and the same node
order, for the same source text gives flash's results exactly while doing the
work once. Failed parses are not cached: they raise again, as they would.

:func:`make_module` returns a module object that is a copy of ``ast``'s
namespace (so ``ast.Import``, ``ast.literal_eval``... are the very same
objects and ``isinstance`` checks are unchanged) with ``parse`` and ``walk``
replaced. The patch binds it as the ``ast`` global of the flash modules listed
in :mod:`runpod_flash_native.patch`.
"""

from __future__ import annotations

import ast
import threading
import types
from collections.abc import Iterator

__all__ = ["MAX_CACHED_SOURCE_CHARS", "flash_ast", "flash_ast_imports", "make_module"]

#: Sources are cached until their lengths add up to this many characters (an
#: AST takes roughly 10-20x its source in memory); later ones are parsed as
#: usual.
MAX_CACHED_SOURCE_CHARS = 32 << 20


class _Cache:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.trees: dict[tuple[str, str, str], ast.AST] = {}
        # id(tree) -> (tree, its ast.walk order); only for trees this cache parsed,
        # so the memory is bounded by the trees themselves.
        self.walks: dict[int, tuple[ast.AST, list[ast.AST]]] = {}
        self.import_walks: dict[int, tuple[ast.AST, list[ast.AST]]] = {}
        self.root_ids: set[int] = set()
        self.chars = 0

    def parse(self, source, filename="<unknown>", mode="exec", **kwargs):  # type: ignore[no-untyped-def]
        if kwargs or not isinstance(source, str) or not isinstance(filename, str) or not isinstance(mode, str):
            return ast.parse(source, filename, mode, **kwargs)
        key = (source, filename, mode)
        tree = self.trees.get(key)
        if tree is not None:
            return tree
        tree = ast.parse(source, filename, mode)
        with self.lock:
            if self.chars + len(source) <= MAX_CACHED_SOURCE_CHARS:
                if key not in self.trees:
                    self.trees[key] = tree
                    self.root_ids.add(id(tree))
                    self.chars += len(source)
                tree = self.trees[key]
        return tree

    def walk(self, node: ast.AST) -> Iterator[ast.AST]:
        entry = self.walks.get(id(node))
        if entry is not None and entry[0] is node:
            return iter(entry[1])
        if id(node) not in self.root_ids:
            return ast.walk(node)
        order = _walk_order(node)
        with self.lock:
            self.walks[id(node)] = (node, order)
        return iter(order)

    def walk_imports(self, node: ast.AST) -> Iterator[ast.AST]:
        """``walk`` restricted to the nodes ``local_modules._walk`` acts on
        (``Import``, ``ImportFrom``, ``Call``), in ``ast.walk``'s order: that
        loop does nothing for any other node, so it does exactly what it did."""
        entry = self.import_walks.get(id(node))
        if entry is not None and entry[0] is node:
            return iter(entry[1])
        if id(node) not in self.root_ids:
            return ast.walk(node)
        order: list[ast.AST] = [n for n in self.walk(node) if isinstance(n, _IMPORT_NODES)]
        with self.lock:
            self.import_walks[id(node)] = (node, order)
        return iter(order)


_IMPORT_NODES = (ast.Import, ast.ImportFrom, ast.Call)
_AST = ast.AST


def _walk_order(root: ast.AST) -> list[ast.AST]:
    """``list(ast.walk(root))``, without its generator and deque: breadth
    first, each node's children in ``_fields`` order, list items in order
    (``ast.iter_child_nodes``'s definition), so the same nodes in the same order."""
    order = [root]
    append = order.append
    i = 0
    while i < len(order):
        node = order[i]
        i += 1
        for name in node._fields:
            value = getattr(node, name, None)
            if isinstance(value, _AST):
                append(value)
            elif isinstance(value, list):
                for item in value:
                    if isinstance(item, _AST):
                        append(item)
    return order


def _module(cache: _Cache, walk: object) -> types.ModuleType:
    mod = types.ModuleType("ast", ast.__doc__)
    mod.__dict__.update({k: v for k, v in vars(ast).items() if not k.startswith("__")})
    mod.parse = cache.parse  # type: ignore[attr-defined]
    mod.walk = walk  # type: ignore[attr-defined]
    mod._rfn_cache = cache  # type: ignore[attr-defined]
    return mod


def make_module() -> types.ModuleType:
    """A fresh memoizing ``ast`` module (its own, empty cache)."""
    cache = _Cache()
    return _module(cache, cache.walk)


#: The instance the patch installs (one cache per process, emptied by
#: :func:`clear` when the patch is undone).
flash_ast = make_module()
#: The same cache for ``runpod_flash.stubs.local_modules``, whose only
#: ``ast.walk`` loop acts on import nodes and calls alone (see
#: :meth:`_Cache.walk_imports`).
flash_ast_imports = _module(flash_ast._rfn_cache, flash_ast._rfn_cache.walk_imports)


def clear() -> None:
    """Forget every cached tree of :data:`flash_ast`."""
    cache: _Cache = flash_ast._rfn_cache
    with cache.lock:
        cache.trees.clear()
        cache.walks.clear()
        cache.import_walks.clear()
        cache.root_ids.clear()
        cache.chars = 0

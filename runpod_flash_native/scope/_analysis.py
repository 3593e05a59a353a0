"""What one module's source says about the files it may load: the static
analysis of scoped rolls, on source text alone (no project, no file system).

:func:`analyze_source` returns the :class:`Facts` of one file: the imports it
makes (resolved later against the project by :mod:`._graph`), every ``str``
and ``bytes`` literal in it (any of them may name a module or file that some
machinery loads), the directory listings it makes, and the reasons the file
cannot be followed at all (each makes the scope of every endpoint reaching it
the whole project).

Names are followed through their bindings, flow-insensitively: ``import x as
y``, ``from m import f as g``, ``g = m.f`` and ``getattr(m, "f")`` all make
``g`` mean ``m.f`` everywhere in the file. An API that loads or runs code or
lists directories (the tables below) reached through any such binding counts
as the API itself; reached in a way that cannot be followed (passed as a
value, fetched by a computed name, through ``globals()``) it widens.
"""

from __future__ import annotations

import ast
import dataclasses

from ._apis import (
    _API_LEAVES, _BUILTIN_NAMES, _CAPABLE_MODULES, _DIR_OF, _DUNDER_STATE, _IMPORT_CALLS, _LISTING_CALLS, _LISTING_METHODS, _MAX_DEPTH, _MAX_ROUNDS, _NAME_LOADERS, _NOT_LISTING_RECEIVERS, _OPAQUE_CALLS, _OPAQUE_MODULES, _PASS_THROUGH, _PICKLERS, _PICKLE_SAFE, _PY_NAME, _SAFE_YAML, _SPAWN_CALLS, _SPAWN_MODULES, _SYS_STATE, _UNPICKLE_METHODS, _opaque_use,
)

__all__ = ["Facts", "Import", "Listing", "analyze_source"]

@dataclasses.dataclass(frozen=True)
class Import:
    """``import``/``from`` or a resolved literal ``import_module``: ``name``
    (dotted, possibly empty), ``level`` (relative dots), ``fromlist``
    (None, or the imported names; ``*`` for a star import)."""

    name: str
    level: int
    fromlist: tuple[str, ...] | None
    where: str


@dataclasses.dataclass(frozen=True)
class Listing:
    """A directory listing with a literal argument: ``kind`` is ``dir``
    (its entries), ``tree`` (everything below), ``pattern`` / ``rpattern``
    (a glob, recursive for ``rpattern``); ``arg`` the literal."""

    kind: str
    arg: str
    where: str


@dataclasses.dataclass
class Facts:
    imports: list[Import] = dataclasses.field(default_factory=list)
    strings: list[str] = dataclasses.field(default_factory=list)
    listings: list[Listing] = dataclasses.field(default_factory=list)
    opaque: list[str] = dataclasses.field(default_factory=list)
    #: source of every ``dependencies=`` argument
    deps: list[str] = dataclasses.field(default_factory=list)
    #: literal pieces of strings built at run time (``"plug" + x``,
    #: ``f"tools.{x}"``): checked against the project's module names
    fragments: list[str] = dataclasses.field(default_factory=list)


def analyze_source(source: bytes | str, rel: str) -> Facts:
    """The :class:`Facts` of the module at project path ``rel`` whose text
    is ``source``."""
    facts = Facts()
    try:
        tree = ast.parse(source, filename=rel)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
        facts.opaque.append(f"{rel}: cannot be parsed ({e.__class__.__name__})")
        return facts
    try:
        _Analyzer(rel, tree, facts).run()
    except RecursionError:
        facts.opaque.append(f"{rel}: too deeply nested to analyse")
    except Exception as e:  # never a build failure, never a narrow scope
        facts.opaque.append(f"{rel}: not analysed ({type(e).__name__}: {e})")
    return facts


def _tail_literal(node: ast.AST) -> str | None:
    """The literal that ends a path expression: ``"x"``, ``os.path.join(d,
    "x")``, ``d / "x"``, ``Path(d, "x")``, ``f"{d}/x"``."""
    if isinstance(node, ast.Constant):
        return node.value if isinstance(node.value, str) else None
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Div, ast.Add)):
        return _tail_literal(node.right)
    if isinstance(node, ast.Call) and node.args and not node.keywords:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        if name in ("join", "Path", "PurePath", "PosixPath", "PurePosixPath", "joinpath"):
            return _tail_literal(node.args[-1])
    if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[-1], ast.Constant):
        value = node.values[-1].value
        return value.rsplit("/", 1)[-1] if isinstance(value, str) and value.rsplit("/", 1)[-1] else None
    return None


def _literal(node: ast.AST | None) -> object:
    if node is None:
        return None
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
        raise LookupError from None


def _is_literal(node: ast.AST) -> bool:
    try:
        _literal(node)
    except LookupError:
        return False
    return True


class _Analyzer:
    def __init__(self, rel: str, tree: ast.Module, facts: Facts) -> None:
        self.rel = rel
        self.tree = tree
        self.facts = facts
        # every node, and each one's parent, in one pass (ast.walk would walk
        # the children a second time)
        self.nodes: list[ast.AST] = [tree]
        self.parent: dict[int, ast.AST] = {}
        i = 0
        while i < len(self.nodes):
            node = self.nodes[i]
            i += 1
            for child in ast.iter_child_nodes(node):
                self.parent[id(child)] = node
                self.nodes.append(child)
        # name -> canonical dotted names it may be bound to (modules and
        # their attributes); names bound otherwise are in ``local``
        self.binds: dict[str, set[str]] = {}
        self.local: set[str] = set()
        self.module_names: set[str] = set()  # names bound to a module object
        self.alias_values: set[int] = set()  # expressions that are a followed binding's value

    def where(self, node: ast.AST) -> str:
        return f"{self.rel}:{getattr(node, 'lineno', 0)}"

    def widen(self, node: ast.AST, why: str) -> None:
        self.facts.opaque.append(f"{self.where(node)}: {why}")

    # -- bindings

    def run(self) -> None:
        self._collect_bindings()
        for node in self.nodes:
            self._visit(node)

    def _collect_bindings(self) -> None:
        pending: list[tuple[str, ast.expr]] = []
        for node in self.nodes:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        self._bind(alias.asname, alias.name, module=True)
                    else:
                        top = alias.name.split(".")[0]
                        self._bind(top, top, module=True)
            elif isinstance(node, ast.ImportFrom):
                mod = "." * node.level + (node.module or "")
                for alias in node.names:
                    if alias.name == "*":
                        continue
                    sep = "" if mod.endswith(".") else "."
                    self._bind(alias.asname or alias.name, f"{mod}{sep}{alias.name}", module=True)
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.NamedExpr)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                value = node.value
                for target in targets:
                    if value is None:
                        continue
                    if isinstance(target, ast.Name):
                        pending.append((target.id, value))
                    elif isinstance(target, (ast.Tuple, ast.List)) and isinstance(value, (ast.Tuple, ast.List)) \
                            and len(target.elts) == len(value.elts):
                        for t, v in zip(target.elts, value.elts):
                            if isinstance(t, ast.Name):
                                pending.append((t.id, v))
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self.local.add(node.name)
            elif isinstance(node, ast.arg):
                self.local.add(node.arg)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
                self.local.add(node.id)
        # plain assignments of a followed name: to a fixed point (``a = b``
        # may come before ``b = importlib.import_module``)
        changed = True
        rounds = 0
        while changed and rounds < _MAX_ROUNDS:
            changed = False
            rounds += 1
            for name, value in pending:
                for canon in self.canon(value):
                    if canon.count(".") >= _MAX_DEPTH:
                        continue  # x = x.y: a chain that only grows
                    if canon not in self.binds.get(name, ()):
                        self.binds.setdefault(name, set()).add(canon)
                        self.alias_values.add(id(value))
                        if self._is_module(value):
                            self.module_names.add(name)
                        changed = True

    def _bind(self, name: str, canon: str, *, module: bool) -> None:
        self.binds.setdefault(name, set()).add(canon)
        if module:
            self.module_names.add(name)

    def _is_module(self, value: ast.expr) -> bool:
        return isinstance(value, ast.Name) and value.id in self.module_names or (
            isinstance(value, ast.Attribute) and self._is_module(value.value))

    def canon(self, node: ast.AST) -> set[str]:
        """The dotted names ``node`` may denote: ``os.path.join`` for
        ``from os import path as p; p.join``; builtins as ``builtins.X``."""
        if isinstance(node, ast.Name):
            out = set(self.binds.get(node.id, ()))
            if node.id in _BUILTIN_NAMES and node.id not in self.binds:
                out.add(f"builtins.{node.id}")
            return out
        if isinstance(node, ast.Attribute):
            return {f"{c}.{node.attr}" for c in self.canon(node.value)}
        if isinstance(node, ast.Call) and len(node.args) >= 2 and not node.keywords:
            func = self.canon(node.func)
            if "builtins.getattr" in func and isinstance(node.args[1], ast.Constant) \
                    and isinstance(node.args[1].value, str):
                return {f"{c}.{node.args[1].value}" for c in self.canon(node.args[0])}
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str) and self.canon(node.func) & _IMPORT_CALLS:
            return {node.args[0].value}  # m = import_module("x"): m is module x
        return set()

    # -- one node

    def _visit(self, node: ast.AST) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                self._import(node, alias.name, 0, None)
        elif isinstance(node, ast.ImportFrom):
            self._import(node, node.module or "", node.level, tuple(a.name for a in node.names))
        elif isinstance(node, ast.Call):
            self._call(node)
        elif isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)):
            text = node.value if isinstance(node.value, str) else node.value.decode("latin-1")
            self.facts.strings.append(text)
            if text in _API_LEAVES:
                self.widen(node, f"names {text!r} (fetched by name)")
            elif self._fragment(node):
                if _PY_NAME.search(text):
                    self.widen(node, f"builds a Python file name at run time from {text!r}")
                else:
                    self.facts.fragments.append(text)
        elif isinstance(node, ast.keyword):
            if node.arg == "dependencies":
                self.facts.deps.append(ast.unparse(node.value))
            elif node.arg == "allow_pickle":
                self.widen(node, "allow_pickle= (unpickling imports modules by name)")
        elif isinstance(node, ast.Name):
            self._name(node)
        elif isinstance(node, ast.Attribute):
            self._attribute(node)
        elif isinstance(node, ast.Subscript):
            self._subscript(node)

    def _fragment(self, node: ast.Constant) -> bool:
        """Whether the literal is a piece of a string built at run time
        (concatenated, formatted, joined, replaced…): the name it ends up
        as is not the literal."""
        parent = self.parent.get(id(node))
        if isinstance(parent, (ast.BinOp, ast.JoinedStr)):
            return True
        if isinstance(parent, ast.Attribute) and parent.value is node:
            return True  # "x.py".replace(...), "{}.py".format(...)
        if isinstance(parent, ast.Call) and isinstance(parent.func, ast.Attribute) and \
                parent.func.attr in ("join", "format", "replace", "removeprefix", "removesuffix"):
            return parent.func.attr != "join" or not self.canon(parent.func) & {"os.path.join", "posixpath.join"}
        return False

    def _import(self, node: ast.AST, name: str, level: int, fromlist: tuple[str, ...] | None) -> None:
        self.facts.imports.append(Import(name, level, fromlist, self.where(node)))
        if level:
            return
        full = [name] + [f"{name}.{n}" for n in fromlist or () if n != "*"]
        for mod in full:
            self._judge_module_use(node, mod)
        if fromlist and "*" in fromlist and (name in _CAPABLE_MODULES or name.split(".")[0] == "builtins"):
            self.widen(node, f"from {name} import *")

    def _judge_module_use(self, node: ast.AST, canon: str) -> bool:
        """Widen for a use of ``canon`` (a dotted module or attribute name),
        or of any prefix of it, that is opaque whatever its arguments; True
        when it did."""
        parts = canon.split(".")
        for k in range(1, len(parts) + 1):
            why = _opaque_use(".".join(parts[:k]))
            if why is not None:
                self.widen(node, why)
                return True
        return False

    def _name(self, node: ast.Name) -> None:
        if node.id in _DUNDER_STATE and isinstance(node.ctx, (ast.Store, ast.Del)):
            self.widen(node, f"assigns {node.id} (decides what imports load)")
        elif node.id in ("__path__", "__builtins__", "__loader__"):
            self.widen(node, f"uses {node.id}")
        elif node.id == "__file__" and isinstance(node.ctx, ast.Load):
            self._file_use(node)
        if not isinstance(node.ctx, ast.Load):
            return
        parent = self.parent.get(id(node))
        if isinstance(parent, ast.Attribute) and parent.value is node:
            return  # judged as the attribute
        self._judge_value(node)

    def _attribute(self, node: ast.Attribute) -> None:
        if node.attr in _DUNDER_STATE and isinstance(node.ctx, (ast.Store, ast.Del)):
            self.widen(node, f"assigns {node.attr}")
        elif node.attr in ("__path__", "__builtins__", "__loader__", "__dict__") and self.canon(node.value):
            self.widen(node, f"uses .{node.attr} of a module")
        elif node.attr == "__path__":
            self.widen(node, "uses __path__")
        if isinstance(node.ctx, (ast.Store, ast.Del)):
            heads = self.canon(node.value)
            if any(h.split(".")[0] in ("builtins", "sys", "importlib") for h in heads):
                self.widen(node, f"assigns an attribute of {sorted(heads)[0]}")
            return
        parent = self.parent.get(id(node))
        if isinstance(parent, ast.Attribute) and parent.value is node:
            return
        self._judge_value(node)

    def _judge_value(self, node: ast.expr) -> None:
        """A name or attribute chain in a load: opaque modules widen however
        they are used; an import, exec or listing API widens unless it is
        called directly or bound to a name (bindings are followed)."""
        canons = self.canon(node)
        for c in sorted(canons):
            if self._judge_module_use(node, c):
                return
        parent = self.parent.get(id(node))
        called = isinstance(parent, ast.Call) and parent.func is node
        if called or id(node) in self.alias_values:
            return
        capable = canons & (_IMPORT_CALLS | _NAME_LOADERS | set(_LISTING_CALLS) | _SPAWN_CALLS)
        capable |= {c for c in canons if c.rpartition(".")[0] in _SPAWN_MODULES}
        if isinstance(node, ast.Name) and node.id in self.module_names:
            capable |= canons & _CAPABLE_MODULES
        if capable:
            self.widen(node, f"uses {sorted(capable)[0]} other than by calling it")

    def _subscript(self, node: ast.Subscript) -> None:
        target = node.value
        if isinstance(target, ast.Call) and isinstance(target.func, ast.Name) and \
                target.func.id in ("globals", "locals", "vars") and not isinstance(node.slice, ast.Constant):
            self.widen(node, f"{target.func.id}() with a computed key")

    def _file_use(self, node: ast.Name) -> None:
        """``__file__`` is fine as the module's own file or, through
        ``dirname``/``.parent``, its directory (names joined to that are
        strings like any other); a path derived from the file's own name
        (``with_stem``, ``replace``, concatenation…) may be another module."""
        cur: ast.AST = node
        while True:
            parent = self.parent.get(id(cur))
            if isinstance(parent, ast.Call) and cur in parent.args:
                names = {c.rpartition(".")[2] for c in self.canon(parent.func)}
                if isinstance(parent.func, ast.Attribute):
                    names.add(parent.func.attr)
                if names & _DIR_OF:
                    return
                if names & _PASS_THROUGH:
                    cur = parent
                    continue
                if names & {"open", "print", "read_text", "read_bytes", "getmtime", "exists", "isfile", "basename"}:
                    return
                break
            if isinstance(parent, ast.Attribute) and parent.value is cur:
                # its name and stem are strings like any other: a module name
                # built from them is caught as a piece (the fragment rule)
                if parent.attr in _DIR_OF or parent.attr in ("name", "stem", "suffix", "read_text", "read_bytes",
                                                             "exists", "stat", "open", "is_file"):
                    return
                grand = self.parent.get(id(parent))
                if parent.attr in _PASS_THROUGH and isinstance(grand, ast.Call) and grand.func is parent:
                    cur = grand
                    continue
                break
            if isinstance(parent, (ast.Compare, ast.FormattedValue)):
                return
            break
        self.widen(node, "derives a path from __file__ other than its directory")

    # -- calls

    def _call(self, node: ast.Call) -> None:
        canons = self.canon(node.func)
        if not isinstance(node.func, (ast.Name, ast.Attribute)):
            for c in sorted(canons):  # getattr(builtins, "exec")(...)
                if self._judge_module_use(node, c):
                    break
        if canons & _IMPORT_CALLS:
            self._dynamic(node, dunder="builtins.__import__" in canons)
        if canons & _NAME_LOADERS and not all(_is_literal(a) for a in [*node.args, *[k.value for k in node.keywords]]):
            self.widen(node, f"{sorted(canons & _NAME_LOADERS)[0]}() with a computed argument")
        spawn = canons & _SPAWN_CALLS or {c for c in canons if c.rpartition(".")[0] in _SPAWN_MODULES}
        if spawn and not all(self._command_literal(a) for a in [*node.args, *[k.value for k in node.keywords]]):
            self.widen(node, f"{sorted(spawn)[0]}() with a computed command or environment")
        if "builtins.getattr" in canons or "builtins.setattr" in canons or "builtins.delattr" in canons:
            self._getattr(node, canons)
        if canons & {"builtins.globals", "builtins.locals", "builtins.vars"}:
            if not node.args or self.canon(node.args[0]):
                self._judge_namespace(node)
        self._listing(node, canons)
        self._deserialiser(node, canons)
        if isinstance(node.func, ast.Attribute) and node.func.attr in ("with_stem", "with_name", "with_suffix") \
                and not all(isinstance(a, ast.Constant) for a in node.args):
            self.widen(node, f"{node.func.attr}() with a computed name")

    def _command_literal(self, node: ast.AST) -> bool:
        if isinstance(node, ast.Constant):
            return True
        if isinstance(node, (ast.List, ast.Tuple)):
            return all(self._command_literal(e) for e in node.elts)
        return bool(self.canon(node) & {"sys.executable"})

    def _getattr(self, node: ast.Call, canons: set[str]) -> None:
        if len(node.args) < 2:
            self.widen(node, "getattr/setattr without a literal name")
            return
        obj, name = node.args[0], node.args[1]
        literal = isinstance(name, ast.Constant) and isinstance(name.value, str)
        objs = self.canon(obj)
        module_like = bool(objs) or isinstance(obj, ast.Subscript) or (
            isinstance(obj, ast.Call) and bool(self.canon(obj.func) & (_IMPORT_CALLS | {"builtins.__import__"})))
        if not module_like:
            return
        if "builtins.getattr" not in canons:
            self.widen(node, "sets or deletes an attribute of a module")
        elif not literal:
            self.widen(node, "getattr() of a module with a computed name")

    def _judge_namespace(self, node: ast.Call) -> None:
        """``globals()["X"]`` and ``globals().update(...)`` are plain; a
        computed key, or the namespace handed on, may fetch any binding."""
        parent = self.parent.get(id(node))
        if isinstance(parent, ast.Subscript) and isinstance(parent.slice, ast.Constant):
            return
        if isinstance(parent, ast.Compare):
            return
        if isinstance(parent, ast.Attribute):
            grand = self.parent.get(id(parent))
            if parent.attr in ("update", "keys", "copy"):
                return
            if parent.attr in ("get", "setdefault", "pop") and isinstance(grand, ast.Call) and grand.args \
                    and isinstance(grand.args[0], ast.Constant):
                return
        self.widen(node, "uses a module namespace (globals()/vars()) other than by a literal key")

    def _listing(self, node: ast.Call, canons: set[str]) -> None:
        kind = next((_LISTING_CALLS[c] for c in sorted(canons) if c in _LISTING_CALLS), None)
        receiver: ast.expr | None = None
        if kind is None and isinstance(node.func, ast.Attribute) and node.func.attr in _LISTING_METHODS:
            heads = {c.split(".")[0] for c in self.canon(node.func.value)}
            if heads and heads <= _NOT_LISTING_RECEIVERS:
                return
            if any(c in _LISTING_CALLS for c in canons) or not heads or heads & {"os", "glob", "pathlib"}:
                kind = _LISTING_METHODS[node.func.attr]
                receiver = node.func.value
            else:
                return
        if kind is None:
            return
        name = next(iter(sorted(canons)), None) or getattr(node.func, "attr", "listing")
        arg = self._listing_arg(node, kind, receiver)
        if arg is None:
            self.widen(node, f"lists a directory not named literally ({name})")
        else:
            self.facts.listings.append(Listing(kind, arg, self.where(node)))

    def _listing_arg(self, node: ast.Call, kind: str, receiver: ast.expr | None) -> str | None:
        """The literal last component of what is listed (``"data"``,
        ``"*.json"``), or None when it is built at run time."""
        if receiver is None:
            first = node.args[0] if node.args else next(
                (k.value for k in node.keywords if k.arg in ("path", "top", "pathname", "src")), None)
            if first is None:
                return "." if kind in ("dir", "tree") else None
            return _tail_literal(first)
        if kind in ("pattern", "rpattern"):
            return _tail_literal(node.args[0]) if node.args else None
        return _tail_literal(receiver)

    def _deserialiser(self, node: ast.Call, canons: set[str]) -> None:
        attr = node.func.attr if isinstance(node.func, ast.Attribute) else None
        if attr in _UNPICKLE_METHODS or canons & {f"yaml.{m}" for m in _UNPICKLE_METHODS}:
            self.widen(node, f"{attr or sorted(canons)[0]}() may import modules named in the data")
            return
        if canons & {"yaml.load", "yaml.load_all"}:
            loader = node.args[1] if len(node.args) > 1 else next(
                (k.value for k in node.keywords if k.arg == "Loader"), None)
            names = self.canon(loader) if loader is not None else set()
            if not any(n.rpartition(".")[2] in _SAFE_YAML for n in names) and not (
                    isinstance(loader, ast.Attribute) and loader.attr in _SAFE_YAML):
                self.widen(node, "yaml.load() without a safe Loader may import modules named in the data")
            return
        if canons & {"torch.load"}:
            if not any(k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
                       for k in node.keywords):
                self.widen(node, "torch.load() without weights_only=True unpickles")

    def _dynamic(self, node: ast.Call, *, dunder: bool) -> None:
        kind = "__import__" if dunder else "import_module"
        try:
            if not node.args or any(isinstance(a, ast.Starred) for a in node.args) or any(
                    k.arg is None for k in node.keywords):
                raise LookupError
            name = _literal(node.args[0])
            if not isinstance(name, str):
                raise LookupError
            kw = {k.arg: k.value for k in node.keywords}
            if dunder:
                fromlist = _literal(node.args[3] if len(node.args) > 3 else kw.get("fromlist"))
                level = _literal(node.args[4] if len(node.args) > 4 else kw.get("level")) or 0
                if not isinstance(level, int) or (fromlist is not None and (
                        not isinstance(fromlist, (list, tuple)) or not all(isinstance(x, str) for x in fromlist))):
                    raise LookupError
                self.facts.imports.append(Import(name, level, tuple(fromlist) if fromlist else None, self.where(node)))
                return
            level = len(name) - len(name.lstrip("."))
            package_node = node.args[1] if len(node.args) > 1 else kw.get("package")
            if not level:
                self.facts.imports.append(Import(name, 0, None, self.where(node)))
                return
            if self._own_package(package_node):
                # import_module(".x", package=__package__): relative to this file
                self.facts.imports.append(Import(name[level:], level, None, self.where(node)))
                return
            package = _literal(package_node)
            if not isinstance(package, str):
                raise LookupError
            pkg_parts = package.split(".")
            if level > len(pkg_parts):
                raise LookupError
            parts = pkg_parts[: len(pkg_parts) - (level - 1)] + [p for p in name[level:].split(".") if p]
            self.facts.imports.append(Import(".".join(parts), 0, None, self.where(node)))
        except LookupError:
            self.widen(node, f"{kind}() with a name that is not a literal")

    def _own_package(self, node: ast.AST | None) -> bool:
        if isinstance(node, ast.Name) and node.id == "__package__":
            return True
        return (isinstance(node, ast.Attribute) and node.attr == "parent" and isinstance(node.value, ast.Name)
                and node.value.id == "__spec__")

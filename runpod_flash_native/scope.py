"""Scoped source fingerprints: only the endpoints whose code changed roll.

flash (1.21.0) writes one ``source_fingerprint`` over every shipped file and,
on deploy, injects it into the ``env`` of every resource that is not in client
mode as ``_FLASH_SOURCE_FINGERPRINT``; any edit therefore rolls every endpoint.
This module computes, per resource, flash's fingerprint (same framing, same
digest, :func:`runpod_flash_native.build.compute_source_fingerprint`) over the
files in that resource's *scope* only, and writes it where flash's own deploy
comparison picks it up.

The scope of a resource, conservative by construction:

* the module(s) defining its functions (``functions[].module``,
  ``module_path`` and ``file_path`` of its manifest entry);
* the transitive closure of their static project imports: ``import``,
  ``from ... import`` (including submodules named in the import list and every
  submodule of a package imported with ``*``), relative imports, literal
  ``importlib.import_module``/``__import__``, imports inside functions, every
  package ``__init__.py`` on the way. An absolute name matches under every
  project directory (``import util`` takes every shipped ``util.py``), a
  relative one is resolved by path from the importing file;
* every shipped file that is not a ``.py`` module (data, configs,
  requirements, templates, docs);
* every module that no resource reaches statically;
* the ``dependencies=`` declarations of the modules left out (flash installs
  all of them into the one tarball every endpoint runs from).

A module in a resource's closure that the analysis cannot follow makes that
resource's scope the whole project, and its fingerprint then equals flash's
global one: a non-literal dynamic import, ``exec``/``eval``/``compile`` (or
one of these or ``import_module`` used other than by a direct call, or named
in a string), ``sys.path``/``sys.meta_path``/``sys.path_hooks``/``__path__``,
``site``, ``runpy``, ``pkgutil``, ``zipimport``, ``importlib.util``/
``machinery``/``resources``, directory listings (``os.listdir``, ``scandir``,
``os.walk``, ``glob``, ``iterdir``, ``rglob``), a string literal naming a
``.py`` file, deserialisers that import what their data names (``pickle``
and friends, ``torch.load`` without ``weights_only=True``, ``allow_pickle=``,
``read_pickle``, non-safe ``yaml`` loaders), a syntax error or undecodable
source, a relative import above the project root; as does a resource whose
module is not among the shipped files.

Opt-in: :func:`scoped_rolls_enabled` (``FLASH_NATIVE_SCOPED_ROLLS=1``, or
``[tool.runpod-flash-native] scoped-rolls = true`` in the project's
``pyproject.toml``; the environment wins when set). Without it nothing here
touches a manifest.

A scoped manifest differs from flash's in three places only:

* each fingerprinted resource's ``env["_FLASH_SOURCE_FINGERPRINT"]`` holds its
  scoped fingerprint (flash would inject the global one at deploy);
* ``source_fingerprint`` is ``null``, so flash's deploy injects nothing and
  compares the per-resource values (a plain ``flash deploy`` of a scoped
  manifest therefore scopes too);
* ``scoped_source_fingerprints`` records the mode, the global fingerprint and,
  per resource, its fingerprint, whether its scope is the whole project and
  why, and the shipped ``.py`` files its scope leaves out.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import json
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from .build import compute_source_fingerprint

__all__ = [
    "ENV_SWITCH",
    "MANIFEST_KEY",
    "Scope",
    "analyze_scopes",
    "apply_scoped_fingerprints",
    "fingerprint_for_build",
    "format_status",
    "is_scoped_manifest",
    "recorded_source_fingerprint",
    "scoped_fingerprints",
    "scoped_rolls_enabled",
    "status_report",
    "plan_notes",
]

#: Environment switch; "1"/"true"/"yes"/"on" turn scoped rolls on, "0"/"false"/
#: "no"/"off"/"" turn them off (overriding pyproject.toml).
ENV_SWITCH = "FLASH_NATIVE_SCOPED_ROLLS"
#: Top-level manifest key holding the scoping record.
MANIFEST_KEY = "scoped_source_fingerprints"
FORMAT_VERSION = 1
FP_KEY = "_FLASH_SOURCE_FINGERPRINT"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}

# Modules whose use means files get loaded or found by means we do not follow.
_OPAQUE_MODULES = {
    "runpy", "pkgutil", "zipimport", "site", "importlib.util",
    "importlib.machinery", "importlib.resources", "importlib.abc",
    "pickle", "_pickle", "cPickle", "cloudpickle", "dill", "joblib", "shelve", "marshal", "pkg_resources",
}
_DYNAMIC_EXEC = {"exec", "eval", "compile", "execfile"}
_LISTING_ATTRS = {"listdir", "scandir", "rglob", "iterdir", "fwalk", "glob", "iglob"}
_SYS_OPAQUE_ATTRS = {"path", "meta_path", "path_hooks", "path_importer_cache"}
_SOURCE_SUFFIXES = (".py", ".pyw", ".pyc")
_INDIRECT_NAMES = {"import_module", "__import__", "exec", "eval", "compile", "execfile"}
# Deserialisers whose data names modules to import (pickle's find_class) are
# in _OPAQUE_MODULES; these calls do the same through other libraries.
_UNPICKLE_CALLS = {"read_pickle", "unsafe_load", "full_load", "load_all"}
_UNPICKLE_LOADERS = {"torch"}  # torch.load without weights_only=True unpickles
_SAFE_YAML = {"SafeLoader", "CSafeLoader", "BaseLoader", "CBaseLoader"}


def scoped_rolls_enabled(
    project_dir: str | os.PathLike[str], environ: Mapping[str, str] | None = None
) -> bool:
    """Whether scoped rolls are switched on for ``project_dir``.

    ``FLASH_NATIVE_SCOPED_ROLLS`` decides when set (``1``/``true``/``yes``/``on``
    or ``0``/``false``/``no``/``off``/empty; anything else raises
    ``ValueError``); otherwise ``[tool.runpod-flash-native] scoped-rolls`` in
    ``project_dir/pyproject.toml`` (a bool; ``ValueError`` naming the file for
    anything else, or for invalid TOML). Without ``tomllib`` (Python 3.10) and
    without ``tomli`` the file is not read and the switch is off.
    """
    env = os.environ if environ is None else environ
    raw = env.get(ENV_SWITCH)
    if raw is not None:
        value = raw.strip().lower()
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        raise ValueError(f"{ENV_SWITCH}={raw!r}: expected 1/0, true/false, yes/no or on/off")
    path = Path(project_dir) / "pyproject.toml"
    try:
        data = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return False
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            return False
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ValueError(f"{path}: invalid TOML: {e}") from None
    table = doc.get("tool", {}).get("runpod-flash-native", {})
    if not isinstance(table, dict):
        raise ValueError(f"{path}: [tool.runpod-flash-native] must be a table")
    value = table.get("scoped-rolls", False)
    if not isinstance(value, bool):
        raise ValueError(f"{path}: [tool.runpod-flash-native] scoped-rolls must be true or false, not {value!r}")
    return value


# --------------------------------------------------------------------------
# the import graph


@dataclasses.dataclass
class _FileInfo:
    rel: str
    edges: set[str] = dataclasses.field(default_factory=set)
    opaque: list[str] = dataclasses.field(default_factory=list)  # reasons
    # source of every ``dependencies=`` argument: what flash installs into
    # the one tarball every endpoint shares
    deps: list[str] = dataclasses.field(default_factory=list)


def _name_parts(rel: str) -> list[str]:
    """``a/b/c.py`` -> ``[a, b, c]``, ``a/b/__init__.py`` -> ``[a, b]``."""
    parts = rel[:-3].split("/")
    return parts[:-1] if parts[-1] == "__init__" else parts


class _Graph:
    """Shipped ``.py`` files and who imports whom.

    An absolute import is resolved against *every* directory of the project,
    not only the root: flash's runtime puts the build root on ``sys.path``,
    but an endpoint may extend it (``PYTHONPATH`` in its env, a ``src/``
    layout, flash's own sibling-file loading), so ``import util`` matches every
    shipped ``util.py`` or ``util/__init__.py``. Relative imports are resolved
    by path from the importing file. Both over-approximate, never miss.
    """

    def __init__(self, project_dir: Path, rels: Iterable[str]) -> None:
        self.root = project_dir
        self.shipped = set(rels)
        self.files: dict[str, _FileInfo] = {}
        # dotted name under some base directory -> files that name can load
        self.by_name: dict[tuple[str, ...], set[str]] = {}
        # package name under some base -> its direct submodules (for ``*``)
        self.children: dict[tuple[str, ...], set[str]] = {}
        for rel in sorted(self.shipped):
            if not rel.endswith(".py"):
                continue
            self.files[rel] = _FileInfo(rel)
            parts = _name_parts(rel)
            for j in range(len(parts) - 1, -1, -1):
                if not parts[j].isidentifier():
                    break
                key = tuple(parts[j:])
                self.by_name.setdefault(key, set()).add(rel)
                if len(key) > 1:
                    self.children.setdefault(key[:-1], set()).add(rel)
        self._analyzed: set[str] = set()

    # -- resolution

    def _by_name(self, parts: Sequence[str]) -> set[str]:
        """Files ``import a.b.c`` may execute from any base: every
        ``a``, ``a.b``, ``a.b.c`` module or package ``__init__``."""
        out: set[str] = set()
        for k in range(1, len(parts) + 1):
            out |= self.by_name.get(tuple(parts[:k]), set())
        return out

    def _by_path(self, base: PurePosixPath, parts: Sequence[str]) -> set[str]:
        """The same under one directory ``base`` (relative imports, the
        resource's own module from the build root)."""
        out: set[str] = set()
        for k in range(0, len(parts) + 1):
            stem = base.joinpath(*parts[:k]).as_posix()
            cands = [f"{stem}/__init__.py"] + ([f"{stem}.py"] if k else [])
            for cand in cands:
                cand = cand[2:] if cand.startswith("./") else cand
                if cand in self.files:
                    out.add(cand)
        return out

    def _children_by_path(self, base: PurePosixPath, parts: Sequence[str]) -> set[str]:
        prefix = base.joinpath(*parts).as_posix()
        prefix = "" if prefix == "." else prefix + "/"
        out = set()
        for rel in self.files:
            if rel.startswith(prefix):
                rest = rel[len(prefix):]
                if "/" not in rest or (rest.count("/") == 1 and rest.endswith("/__init__.py")):
                    out.add(rel)
        return out

    def _import(self, info: _FileInfo, name: str, level: int, names: Sequence[str] | None,
                where: str) -> None:
        parts = [p for p in name.split(".") if p]
        subs = [n for n in names or () if n != "*"]
        if level:
            base = PurePosixPath(info.rel).parent
            for _ in range(level - 1):
                if base == PurePosixPath("."):
                    info.opaque.append(f"{where}: relative import above the project root")
                    return
                base = base.parent
            info.edges |= self._by_path(base, parts)
            for sub in subs:
                info.edges |= self._by_path(base, [*parts, sub])
            if names and "*" in names:
                info.edges |= self._children_by_path(base, parts)
            return
        info.edges |= self._by_name(parts)
        for sub in subs:
            info.edges |= self._by_name([*parts, sub])
        if names and "*" in names:
            info.edges |= self.children.get(tuple(parts), set())
        full = ".".join(parts)
        imported = [full] + [f"{full}.{n}" for n in names or () if n != "*"]
        for mod in imported:
            hit = next((o for o in _OPAQUE_MODULES if mod == o or mod.startswith(o + ".")), None)
            if hit is not None:
                info.opaque.append(f"{where}: imports {hit}")
                break
        if full == "sys" and names and any(n in _SYS_OPAQUE_ATTRS or n == "*" for n in names):
            info.opaque.append(f"{where}: imports from sys what decides how imports are found")

    # -- analysis of one file

    def analyze(self, rel: str) -> _FileInfo:
        info = self.files[rel]
        if rel in self._analyzed:
            return info
        self._analyzed.add(rel)
        path = self.root / rel
        try:
            source = path.read_bytes()
            tree = ast.parse(source, filename=str(path))
        except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
            info.opaque.append(f"{rel}: cannot be parsed ({e.__class__.__name__})")
            return info
        except OSError as e:
            info.opaque.append(f"{rel}: cannot be read ({e.strerror or e})")
            return info
        nodes = list(ast.walk(tree))
        called = {id(n.func) for n in nodes if isinstance(n, ast.Call)}
        for node in nodes:
            where = f"{rel}:{getattr(node, 'lineno', 0)}"
            ref = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None
            if ref in _INDIRECT_NAMES and id(node) not in called:
                # an import or exec function passed around, aliased or
                # wrapped: its calls cannot be followed
                info.opaque.append(f"{where}: uses {ref} other than by calling it")
            if isinstance(node, ast.Import):
                for alias in node.names:
                    self._import(info, alias.name, 0, None, where)
            elif isinstance(node, ast.ImportFrom):
                self._import(info, node.module or "", node.level, [a.name for a in node.names], where)
            elif isinstance(node, ast.Call):
                self._call(info, node, where)
            elif isinstance(node, ast.Attribute):
                if isinstance(node.value, ast.Name) and node.value.id == "sys" and node.attr in _SYS_OPAQUE_ATTRS:
                    info.opaque.append(f"{where}: uses sys.{node.attr}")
                elif (isinstance(node.value, ast.Name) and node.value.id == "importlib"
                      and f"importlib.{node.attr}" in _OPAQUE_MODULES):
                    info.opaque.append(f"{where}: uses importlib.{node.attr}")
                elif node.attr == "__path__":
                    info.opaque.append(f"{where}: uses __path__")
            elif isinstance(node, ast.Name) and node.id == "__path__":
                info.opaque.append(f"{where}: uses __path__")
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                if node.value.rstrip().endswith(_SOURCE_SUFFIXES):
                    info.opaque.append(f"{where}: names a Python source file ({node.value!r})")
                elif node.value in _INDIRECT_NAMES:
                    info.opaque.append(f"{where}: names {node.value!r} (getattr-style access)")
            elif isinstance(node, ast.keyword) and node.arg == "allow_pickle":
                info.opaque.append(f"{where}: allow_pickle= (unpickling imports modules by name)")
            elif isinstance(node, ast.keyword) and node.arg == "dependencies":
                info.deps.append(ast.unparse(node.value))
        return info

    def _call(self, info: _FileInfo, node: ast.Call, where: str) -> None:
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
        if name in _DYNAMIC_EXEC and isinstance(func, ast.Name):
            info.opaque.append(f"{where}: calls {name}()")
            return
        if name in _LISTING_ATTRS or (
            name == "walk" and isinstance(func, ast.Attribute)
            and isinstance(func.value, ast.Name) and func.value.id == "os"
        ):
            info.opaque.append(f"{where}: lists a directory ({name})")
            return
        if name in _UNPICKLE_CALLS or (
            name == "load" and isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
            and func.value.id in _UNPICKLE_LOADERS and not any(
                k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
                for k in node.keywords)
        ) or (name == "load" and isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
              and func.value.id == "yaml" and not any(
                  k.arg == "Loader" and isinstance(k.value, ast.Attribute) and k.value.attr in _SAFE_YAML
                  for k in node.keywords)):
            info.opaque.append(f"{where}: {name}() may import modules named in the data")
            return
        if name == "import_module":
            self._dynamic(info, node, where, dunder=False)
        elif name == "__import__":
            self._dynamic(info, node, where, dunder=True)

    def _dynamic(self, info: _FileInfo, node: ast.Call, where: str, *, dunder: bool) -> None:
        def literal(n: ast.AST | None) -> Any:
            try:
                return ast.literal_eval(n) if n is not None else None
            except (ValueError, TypeError, SyntaxError, RecursionError):
                raise LookupError from None

        try:
            if not node.args or any(isinstance(a, ast.Starred) for a in node.args) or any(
                k.arg is None for k in node.keywords
            ):
                raise LookupError
            name = literal(node.args[0])
            kw = {k.arg: k.value for k in node.keywords}
            if not isinstance(name, str):
                raise LookupError
            if dunder:
                fromlist = literal(node.args[3] if len(node.args) > 3 else kw.get("fromlist"))
                level = literal(node.args[4] if len(node.args) > 4 else kw.get("level")) or 0
                if not isinstance(level, int) or (fromlist is not None and (
                        not isinstance(fromlist, (list, tuple)) or not all(isinstance(x, str) for x in fromlist))):
                    raise LookupError
                self._import(info, name, level, list(fromlist) if fromlist else None, where)
            else:
                package = literal(node.args[1] if len(node.args) > 1 else kw.get("package"))
                level = len(name) - len(name.lstrip("."))
                if level:
                    if not isinstance(package, str):
                        raise LookupError
                    pkg_parts = package.split(".")
                    if level > len(pkg_parts):
                        raise LookupError
                    parts = pkg_parts[: len(pkg_parts) - (level - 1)] + [p for p in name[level:].split(".") if p]
                    self._import(info, ".".join(parts), 0, None, where)
                else:
                    self._import(info, name, 0, None, where)
        except LookupError:
            kind = "__import__" if dunder else "import_module"
            info.opaque.append(f"{where}: {kind}() with a name that is not a literal")

    def closure(self, roots: Iterable[str]) -> tuple[set[str], list[str]]:
        seen: set[str] = set()
        reasons: list[str] = []
        todo = [r for r in roots if r in self.files]
        while todo:
            rel = todo.pop()
            if rel in seen:
                continue
            seen.add(rel)
            info = self.analyze(rel)
            reasons.extend(info.opaque)
            todo.extend(sorted(info.edges - seen))
        return seen, sorted(set(reasons))

    def roots_of(self, config: Mapping[str, Any]) -> set[str]:
        roots: set[str] = set()
        modules = [config.get("module_path")]
        for fn in config.get("functions") or ():
            if isinstance(fn, Mapping):
                modules.append(fn.get("module"))
        for module in modules:
            if isinstance(module, str) and module:
                roots |= self._by_path(PurePosixPath("."), module.split(".")) - {"__init__.py"}
        file_path = config.get("file_path")
        if isinstance(file_path, str) and file_path:
            rel = PurePosixPath(file_path.replace(os.sep, "/")).as_posix()
            if rel in self.files:
                roots.add(rel)
        return roots


# --------------------------------------------------------------------------
# scopes


@dataclasses.dataclass(frozen=True)
class Scope:
    """The files one resource's fingerprint covers.

    ``files`` are POSIX paths relative to the project, sorted. ``whole_project``
    is True when the scope is every shipped file, ``reason`` says why (or, for a
    narrowed scope, what it consists of). ``excluded`` lists the shipped files
    left out (modules only other resources reach). ``modules`` is the
    resource's own code: the modules it reaches."""

    files: tuple[str, ...]
    whole_project: bool
    reason: str
    excluded: tuple[str, ...]
    #: the project modules its code reaches (its import closure); with
    #: ``opaque`` set, only the part the analysis could follow
    modules: tuple[str, ...] = ()
    opaque: bool = False
    #: ``dependencies=`` declarations of the left-out modules (see
    #: :func:`scoped_fingerprints`)
    shared_deps: tuple[tuple[str, str], ...] = ()


def _rel_of(project_dir: Path, f: str | os.PathLike[str]) -> str:
    p = Path(f)
    try:
        rel = p.relative_to(project_dir)
    except ValueError:
        rel = Path(os.path.relpath(os.path.abspath(p), os.path.abspath(project_dir)))
    return rel.as_posix()


def _fingerprinted(config: Any) -> bool:
    return isinstance(config, Mapping) and not config.get("client_mode")


def analyze_scopes(
    project_dir: str | os.PathLike[str],
    files: Iterable[str | os.PathLike[str]],
    manifest: Mapping[str, Any],
) -> dict[str, Scope]:
    """The :class:`Scope` of every resource of ``manifest`` that flash gives a
    source fingerprint (client-mode resources have none). ``files`` is the
    shipped file list flash fingerprints (``get_file_tree``)."""
    root = Path(project_dir)
    rels = sorted({_rel_of(root, f) for f in files})
    graph = _Graph(root, rels)
    resources = manifest.get("resources")
    resources = resources if isinstance(resources, Mapping) else {}

    reach: dict[str, set[str]] = {}
    problems: dict[str, str] = {}
    for name, config in resources.items():
        if not _fingerprinted(config):
            continue
        roots = graph.roots_of(config)
        if not roots:
            problems[name] = "its module is not among the shipped files"
            reach[name] = set()
            continue
        closure, reasons = graph.closure(roots)
        reach[name] = closure
        if reasons:
            more = f" (and {len(reasons) - 1} more)" if len(reasons) > 1 else ""
            problems[name] = reasons[0] + more

    reached_by: dict[str, set[str]] = {}
    for name, closure in reach.items():
        for rel in closure:
            reached_by.setdefault(rel, set()).add(name)

    scopes: dict[str, Scope] = {}
    for name in reach:
        if name in problems:
            scopes[name] = Scope(tuple(rels), True, problems[name], (), tuple(sorted(reach[name])), True)
            continue
        excluded = tuple(
            rel for rel in rels if rel in reached_by and name not in reached_by[rel]
        )
        if not excluded:
            reason = "no module is imported only by other endpoints"
            scopes[name] = Scope(tuple(rels), True, reason, (), tuple(sorted(reach[name])))
            continue
        excluded_set = set(excluded)
        in_scope = tuple(rel for rel in rels if rel not in excluded_set)
        shared = tuple((rel, dep) for rel in excluded for dep in graph.files[rel].deps)
        reason = (
            f"its code ({len(reach[name])} module(s)) + {len(in_scope) - len(reach[name])} other "
            f"shipped file(s); leaves out {len(excluded)} module(s) only other endpoints import"
        )
        scopes[name] = Scope(in_scope, False, reason, excluded, tuple(sorted(reach[name])), False, shared)
    return scopes


def scoped_fingerprints(
    project_dir: str | os.PathLike[str],
    files: Iterable[str | os.PathLike[str]],
    manifest: Mapping[str, Any],
    *,
    source_fingerprint: str | None = None,
) -> dict[str, tuple[str, Scope]]:
    """``{resource: (scoped fingerprint, scope)}``. A whole-project scope gets
    ``source_fingerprint`` (flash's global fingerprint; computed when not
    given), any other scope flash's fingerprint over its files.

    All endpoints share one tarball, and flash installs into it the
    ``dependencies=[...]`` of every endpoint. So when a left-out module
    declares dependencies, the scoped value is SHA-256 over a tag, the files'
    fingerprint and those declarations (their source text): another
    endpoint's dependency change rolls this one too, its code changes do not.
    """
    root = Path(project_dir)
    files = list(files)
    by_rel = {_rel_of(root, f): f for f in files}
    scopes = analyze_scopes(root, files, manifest)
    out: dict[str, tuple[str, Scope]] = {}
    for name, scope in scopes.items():
        if scope.whole_project:
            if source_fingerprint is None:
                source_fingerprint = compute_source_fingerprint(root, files)
            out[name] = (source_fingerprint, scope)
        else:
            fp = compute_source_fingerprint(root, [by_rel[r] for r in scope.files])
            if scope.shared_deps:
                text = json.dumps([fp, [list(d) for d in scope.shared_deps]], separators=(",", ":"))
                fp = hashlib.sha256(b"runpod-flash-native/scoped-deps/1\0" + text.encode()).hexdigest()
            out[name] = (fp, scope)
    return out


def apply_scoped_fingerprints(
    project_dir: str | os.PathLike[str],
    files: Iterable[str | os.PathLike[str]],
    manifest: dict[str, Any],
    *,
    enabled: bool | None = None,
) -> bool:
    """Turn a manifest ``flash build`` just built into a scoped one.

    Where to call it: in flash's ``run_build``
    (``runpod_flash.cli.commands.build``), after
    ``manifest["source_fingerprint"] = compute_source_fingerprint(project_dir,
    files)`` and before the manifest is written to ``build_dir /
    "flash_manifest.json"``, with the same ``project_dir``, ``files`` and
    ``manifest``. No deploy-side hook is needed: flash's
    ``reconcile_and_provision_resources`` skips its injection when
    ``source_fingerprint`` is null and compares the per-resource values.
    (:func:`fingerprint_for_build` is the same step for a patch that can only
    replace the ``compute_source_fingerprint`` call.)

    ``enabled=None`` asks :func:`scoped_rolls_enabled`. When scoping is off the
    manifest is not touched and False is returned. When on: every fingerprinted
    resource's ``env`` (created if needed) gets its scoped
    ``_FLASH_SOURCE_FINGERPRINT``, the global fingerprint moves to
    ``manifest["scoped_source_fingerprints"]["source_fingerprint"]``,
    ``manifest["source_fingerprint"]`` becomes None; returns True. Everything is
    computed before the first write: on an exception the manifest is
    unchanged. ``TypeError`` for a resource whose ``env`` is neither a dict nor
    None.
    """
    root = Path(project_dir)
    if enabled is None:
        enabled = scoped_rolls_enabled(root)
    if not enabled:
        return False
    files = list(files)
    recorded = manifest.get("source_fingerprint")
    if isinstance(manifest.get(MANIFEST_KEY), Mapping):
        recorded = manifest[MANIFEST_KEY].get("source_fingerprint")
    global_fp = recorded if isinstance(recorded, str) and recorded else compute_source_fingerprint(root, files)
    result = scoped_fingerprints(root, files, manifest, source_fingerprint=global_fp)
    resources = manifest.get("resources") or {}
    for name in result:
        env = resources[name].get("env")
        if env is not None and not isinstance(env, dict):
            raise TypeError(f"resource {name!r}: env must be a dict, not {type(env).__name__}")
    record = {
        "version": FORMAT_VERSION,
        "source_fingerprint": global_fp,
        "resources": {
            name: {
                "fingerprint": fp,
                "whole_project": scope.whole_project,
                "reason": scope.reason,
                "excluded": list(scope.excluded),
            }
            for name, (fp, scope) in sorted(result.items())
        },
    }
    for name, (fp, _) in result.items():
        config = resources[name]
        if config.get("env") is None:
            config["env"] = {}
        config["env"][FP_KEY] = fp
    manifest["source_fingerprint"] = None
    manifest[MANIFEST_KEY] = record
    return True


def fingerprint_for_build(
    project_dir: str | os.PathLike[str],
    files: Iterable[str | os.PathLike[str]],
    manifest: dict[str, Any],
    *,
    enabled: bool | None = None,
) -> str | None:
    """The value flash's ``run_build`` should store in
    ``manifest["source_fingerprint"]``, for a patch of its
    ``compute_source_fingerprint(project_dir, files)`` call that knows the
    ``manifest`` ``ManifestBuilder.build()`` just returned: flash's global
    fingerprint when scoping is off (manifest untouched), else None after
    :func:`apply_scoped_fingerprints` made ``manifest`` scoped."""
    files = list(files)
    global_fp = compute_source_fingerprint(project_dir, files)
    manifest["source_fingerprint"] = global_fp
    try:
        scoped = apply_scoped_fingerprints(project_dir, files, manifest, enabled=enabled)
    except BaseException:
        manifest.pop("source_fingerprint", None)
        raise
    return None if scoped else global_fp


# --------------------------------------------------------------------------
# reading manifests back (status, plan)


def is_scoped_manifest(manifest: Mapping[str, Any]) -> bool:
    """True for a manifest :func:`apply_scoped_fingerprints` produced."""
    record = manifest.get(MANIFEST_KEY)
    return isinstance(record, Mapping) and isinstance(record.get("resources"), Mapping)


def recorded_source_fingerprint(manifest: Mapping[str, Any]) -> Any:
    """flash's global fingerprint of the build that wrote ``manifest``
    (``source_fingerprint``, or the scoping record's copy of it)."""
    if is_scoped_manifest(manifest):
        return manifest[MANIFEST_KEY].get("source_fingerprint")
    return manifest.get("source_fingerprint")


def _rolls_by_flash_rule(
    names: Iterable[str], old: Mapping[str, Any], new: Mapping[str, Any], flash_version: str | None = None
) -> list[str]:
    """Resources flash's deploy comparison updates when the deployed build had
    ``old`` fingerprints and the local build has ``new`` ones (name -> value;
    every resource deployed with an endpoint, configs otherwise equal)."""
    from . import deployment

    names = sorted(names)
    return deployment.rolls_on_fingerprint_change(
        {n: old[n] for n in names}, {n: new[n] for n in names}, flash_version=flash_version
    )


def status_report(
    project_dir: str | os.PathLike[str],
    files: Sequence[str | os.PathLike[str]],
    manifest: Mapping[str, Any],
    *,
    current_fingerprint: str | None = None,
    changed_files: Iterable[str] | None = None,
    flash_version: str | None = None,
) -> dict[str, Any]:
    """The per-endpoint advisory ``runpod-flash-native status`` prints.

    ``flash_version``: the flash release whose deploy rule ``flash_rolls``
    follows (:func:`runpod_flash_native.deployment.modelled_flash_version`;
    before 1.21.0 flash injects the global fingerprint into client-mode
    resources too, which then roll on every source change; they have no
    scope: ``whole_project``, and their own code is the image they run).

    ``manifest`` is the last build's, ``files`` the project's shipped files
    now, ``changed_files`` the relative paths that changed since that build
    (from a source index; None when unknown). Returns::

        {"mode": "scoped" | "global",
         "flash_rolls": [...],   # flash's rule: the global fingerprint changed
         "scoped_rolls": [...],  # the endpoint's scoped fingerprint changed
         "rolls": [...],         # what the next deploy rolls in the built mode
         "endpoints": {name: {"flash_rolls": bool,
                               "scope_changed": bool,      # its scoped fingerprint changed
                               "own_code_changed": bool,   # a module it reaches changed
                               "whole_project": bool, "reason": str,
                               "changed_files": [...] | None}}}  # changes in its scope

    A scoped manifest records each endpoint's scoped fingerprint, so
    ``scope_changed`` compares them. A global manifest does not: then an
    unchanged global fingerprint means nothing changed, and otherwise the
    endpoint's current scope is matched against ``changed_files`` (True,
    i.e. assume the worst, when they are unknown). ``own_code_changed`` is
    True when a changed file is one of the modules the endpoint reaches; it
    equals ``scope_changed`` when the changes or its code are not fully
    known. A data file or README in every scope changes the scope, not the
    code.
    """
    root = Path(project_dir)
    files = list(files)
    if current_fingerprint is None:
        current_fingerprint = compute_source_fingerprint(root, files)
    recorded_global = recorded_source_fingerprint(manifest)
    scoped_mode = is_scoped_manifest(manifest)
    resources = manifest.get("resources")
    resources = resources if isinstance(resources, Mapping) else {}
    names = sorted(n for n, c in resources.items() if _fingerprinted(c))
    from . import deployment

    skips = deployment.skips_client_mode(flash_version)
    # client-mode resources that get flash's global fingerprint (before 1.21.0)
    client_mode = [] if skips else sorted(
        n for n, c in resources.items() if isinstance(c, Mapping) and not _fingerprinted(c)
    )
    unchanged = recorded_global == current_fingerprint
    changed = set() if unchanged else None if changed_files is None else set(changed_files)
    current: Mapping[str, tuple[str | None, Scope]]
    if scoped_mode and not unchanged:
        current = scoped_fingerprints(root, files, manifest, source_fingerprint=current_fingerprint)
    else:  # fingerprints are only compared in scoped mode, after a change
        current = {n: (None, sc) for n, sc in analyze_scopes(root, files, manifest).items()}
    record = manifest[MANIFEST_KEY]["resources"] if scoped_mode else {}
    record = record if isinstance(record, Mapping) else {}

    # a scoped manifest has no global fingerprint for flash to inject
    injected = names if scoped_mode else sorted(names + client_mode)
    flash_rolls = _rolls_by_flash_rule(
        injected, {n: recorded_global for n in injected}, {n: current_fingerprint for n in injected},
        flash_version,
    )
    endpoints: dict[str, Any] = {}
    scoped_rolls: set[str] = set()
    for name in names:
        _, sc = current[name]
        entry = record.get(name)
        entry = entry if isinstance(entry, Mapping) else None
        # a changed file is outside the scope only when both the last build's
        # scope and the current one leave it out
        left_out = set(sc.excluded)
        if scoped_mode:
            left_out &= set(entry.get("excluded") or ()) if entry is not None else set()
        in_scope = None if changed is None else sorted(c for c in changed if c not in left_out)
        if unchanged:
            scope_changed = False
        elif scoped_mode and entry is not None and isinstance(entry.get("fingerprint"), str):
            scope_changed = bool(
                _rolls_by_flash_rule([name], {name: entry["fingerprint"]}, {name: current[name][0]})
            )
        elif in_scope is not None:
            scope_changed = bool(in_scope)
        else:
            scope_changed = True  # unknown: assume the worst
        if scope_changed:
            scoped_rolls.add(name)
        if sc.opaque or in_scope is None:
            own = scope_changed  # its code is not fully known, or the changes are not
        else:
            own = bool(set(in_scope) & set(sc.modules))
        endpoints[name] = {
            "flash_rolls": name in flash_rolls,
            "scope_changed": scope_changed,
            "own_code_changed": own,
            "whole_project": sc.whole_project,
            "reason": sc.reason,
            "changed_files": in_scope,
        }
    if not scoped_mode:
        for name in client_mode:
            endpoints[name] = {
                "flash_rolls": name in flash_rolls,
                "scope_changed": not unchanged,
                "own_code_changed": False,
                "whole_project": True,
                "reason": "client-mode resource: runpod-flash before 1.21.0 injects the global fingerprint into it too",
                "changed_files": None if changed is None else sorted(changed),
            }
        endpoints = dict(sorted(endpoints.items()))
    scoped_list = sorted(scoped_rolls)
    return {
        "mode": "scoped" if scoped_mode else "global",
        "flash_rolls": flash_rolls,
        "scoped_rolls": scoped_list,
        "rolls": scoped_list if scoped_mode else flash_rolls,
        "endpoints": endpoints,
    }


def format_status(report: Mapping[str, Any]) -> list[str]:
    """Text lines for :func:`status_report`'s result."""
    scoped = report["mode"] == "scoped"
    lines = [
        "  fingerprints: "
        + ("scoped (an endpoint rolls when a file in its scope changed)" if scoped
           else "flash's (one for the whole project; every endpoint rolls on any change)")
    ]
    yes = {True: "yes", False: "no"}
    for name, ep in report["endpoints"].items():
        lines.append(
            f"  {name}: flash rolls it: {yes[ep['flash_rolls']]}; own code changed: "
            f"{yes[ep['own_code_changed']]}; scope changed: {yes[ep['scope_changed']]}"
            + ("  (scope: whole project: " + ep["reason"] + ")" if ep["whole_project"] and ep["scope_changed"] else "")
        )
        changed = ep["changed_files"] or ()
        for rel in changed[:20]:
            lines.append(f"      changed in its scope: {rel}")
        if len(changed) > 20:
            lines.append(f"      ... and {len(changed) - 20} more (--json lists all)")
    flash_rolls = report["flash_rolls"]
    own = [n for n, ep in report["endpoints"].items() if ep["own_code_changed"]]
    if flash_rolls and not own:
        lines.append(f"  flash rolls {len(flash_rolls)} endpoint(s), none of their code changed")
    if scoped:
        kept = sorted(set(report["endpoints"]) - set(report["scoped_rolls"]))
        if flash_rolls and kept:
            lines.append(f"  scoped: {', '.join(kept)} keep(s) its fingerprint")
    return lines


def plan_notes(local_manifest: Mapping[str, Any], state_manifest: Mapping[str, Any]) -> dict[str, str]:
    """For a scoped local manifest: ``{resource: why it keeps its
    fingerprint}`` for every resource whose scoped fingerprint equals the
    deployed one; ``{}`` for a global manifest."""
    if not is_scoped_manifest(local_manifest):
        return {}
    record = local_manifest[MANIFEST_KEY]["resources"]
    state_resources = state_manifest.get("resources")
    state_resources = state_resources if isinstance(state_resources, Mapping) else {}
    notes: dict[str, str] = {}
    for name, entry in sorted(record.items()):
        if not isinstance(entry, Mapping):
            continue
        state = state_resources.get(name)
        env = state.get("env") if isinstance(state, Mapping) else None
        deployed = env.get(FP_KEY) if isinstance(env, Mapping) else None
        if deployed is None or deployed != entry.get("fingerprint"):
            continue
        excluded = list(entry.get("excluded") or ())
        if entry.get("whole_project"):
            why = "no shipped file changed (scope: whole project: " + str(entry.get("reason")) + ")"
        else:
            shown = ", ".join(excluded[:5]) + (f", ... {len(excluded) - 5} more" if len(excluded) > 5 else "")
            why = f"no file in its scope changed (scope leaves out {shown})"
        notes[name] = why
    return notes


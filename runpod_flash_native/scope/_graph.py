"""The project's import graph and each resource's scope.

Edges of a shipped module (from its :class:`._analysis.Facts`):

* its imports, resolved against *every* directory of the project for an
  absolute name (``import util`` takes every shipped ``util.py``: an endpoint
  may extend ``sys.path``) and by path for a relative one; every package
  ``__init__.py`` on the way; names need not be identifiers
  (``import_module("01_jobs.worker")``);
* every module one of its string literals names (:class:`._names.NameIndex`).

Modules every endpoint reaches whoever imports them (the *global roots*): the
ones at an import root (the project root, or a directory that is not a
package) named like a library module (:class:`._names.ShadowingNames`), and
the ones named in any shipped file that is not a ``.py`` module.

A reason in a module's facts (code the analysis cannot follow), a directory
listing that can return a shipped ``.py`` file, or a ``.py`` name built at
run time, makes the scope of every endpoint reaching it the whole project.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from ._analysis import Facts, Import, Listing, analyze_source
from ._names import NameIndex, ShadowingNames

__all__ = ["Graph", "Scope", "analyze_scopes", "fingerprinted", "rel_of"]

#: non-.py files larger than this are not searched for module names (only
#: unpickling reads names from such data, and that widens by itself)
MAX_SCANNED_DATA = 16 << 20
_WORD = re.compile(r"\w+")


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
    #: :func:`runpod_flash_native.scope.scoped_fingerprints`)
    shared_deps: tuple[tuple[str, str], ...] = ()


def _mod_parts(rel: str) -> list[str]:
    """``a/b/c.py`` -> ``[a, b, c]``, ``a/b/__init__.py`` -> ``[a, b]``."""
    parts = rel[:-3].split("/")
    return parts[:-1] if parts[-1] == "__init__" else parts


class Graph:
    """Shipped ``.py`` files and what each one may load."""

    def __init__(self, project_dir: Path, rels: Iterable[str]) -> None:
        self.root = project_dir
        self.shipped = sorted(set(rels))
        self.files = [r for r in self.shipped if r.endswith(".py")]
        self.file_set = set(self.files)
        self.by_name: dict[tuple[str, ...], set[str]] = {}
        self.children: dict[tuple[str, ...], set[str]] = {}
        for rel in self.files:
            parts = _mod_parts(rel)
            for j in range(len(parts) - 1, -1, -1):
                key = tuple(parts[j:])
                self.by_name.setdefault(key, set()).add(rel)
                if len(key) > 1:
                    self.children.setdefault(key[:-1], set()).add(rel)
        self.names = NameIndex(self.files)
        self.facts: dict[str, Facts] = {}
        self._parts: set[str] | None = None
        self._edges: dict[str, tuple[set[str], list[str]]] = {}

    # -- resolution

    def by_dotted(self, parts: Sequence[str]) -> set[str]:
        """Files ``import a.b.c`` may execute from any base: every
        ``a``, ``a.b``, ``a.b.c`` module or package ``__init__``."""
        out: set[str] = set()
        for k in range(1, len(parts) + 1):
            out |= self.by_name.get(tuple(parts[:k]), set())
        return out

    def by_path(self, base: PurePosixPath, parts: Sequence[str]) -> set[str]:
        """The same under one directory ``base``."""
        out: set[str] = set()
        for k in range(0, len(parts) + 1):
            stem = base.joinpath(*parts[:k]).as_posix()
            for cand in [f"{stem}/__init__.py"] + ([f"{stem}.py"] if k else []):
                cand = cand[2:] if cand.startswith("./") else cand
                if cand in self.file_set:
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

    def _resolve(self, rel: str, imp: Import, reasons: list[str]) -> set[str]:
        parts = [p for p in imp.name.split(".") if p]
        subs = [n for n in imp.fromlist or () if n != "*"]
        star = imp.fromlist is not None and "*" in imp.fromlist
        out: set[str] = set()
        if imp.level:
            base = PurePosixPath(rel).parent
            for _ in range(imp.level - 1):
                if base == PurePosixPath("."):
                    reasons.append(f"{imp.where}: relative import above the project root")
                    return out
                base = base.parent
            out |= self.by_path(base, parts)
            for sub in subs:
                out |= self.by_path(base, [*parts, sub])
            if star:
                out |= self._children_by_path(base, parts)
            return out
        out |= self.by_dotted(parts)
        for sub in subs:
            out |= self.by_dotted([*parts, sub])
        if star:
            out |= self.children.get(tuple(parts), set())
        return out

    # -- listings

    def _names_piece(self, fragment: str) -> str | None:
        """A word of ``fragment`` that begins or ends a module's name part
        (``"plug"`` of ``plugins``): the string built from it may name that
        module, for any API to load."""
        if self._parts is None:
            self._parts = {p for rel in self.files for p in rel[:-3].split("/")}
        word: str
        for word in _WORD.findall(fragment):
            if len(word) >= 2 and any(p.startswith(word) or p.endswith(word) for p in self._parts):
                return word
        return None

    def _lists_sources(self, listing: Listing) -> bool:
        arg = listing.arg.replace("\\", "/").strip()
        while arg.startswith("./"):
            arg = arg[2:]
        if listing.kind in ("pattern", "rpattern"):
            last = arg.rstrip("/").rsplit("/", 1)[-1]
            if "**" in last or not last:
                return True
            return any(fnmatch.fnmatchcase(r.rsplit("/", 1)[-1], last) for r in self.files) or any(
                fnmatch.fnmatchcase(d, last) for d in self._source_dirs())
        arg = arg.rstrip("/")
        if arg in ("", ".") or arg.startswith("/") or ".." in arg.split("/"):
            return bool(self.files)
        for rel in self.files:
            directory = "/" + rel.rsplit("/", 1)[0] if "/" in rel else ""
            if listing.kind == "dir" and (directory + "/").endswith("/" + arg + "/"):
                return True
            if listing.kind == "tree" and ("/" + arg + "/") in (directory + "/"):
                return True
            # a directory holding packages: its entries can be imported
            if listing.kind == "dir" and ("/" + arg + "/") in (directory + "/"):
                return True
        return False

    def _source_dirs(self) -> set[str]:
        return {part for rel in self.files for part in rel.split("/")[:-1]}

    # -- one file's edges

    def analyze(self, rel: str) -> Facts:
        facts = self.facts.get(rel)
        if facts is None:
            try:
                source = (self.root / rel).read_bytes()
            except OSError as e:
                facts = Facts(opaque=[f"{rel}: cannot be read ({e.strerror or e})"])
            else:
                facts = analyze_source(source, rel)
            self.facts[rel] = facts
        return facts

    def edges(self, rel: str) -> tuple[set[str], list[str]]:
        """The modules ``rel`` may load, and why it cannot be followed."""
        cached = self._edges.get(rel)
        if cached is not None:
            return cached
        facts = self.analyze(rel)
        reasons = list(facts.opaque)
        out: set[str] = set()
        for imp in facts.imports:
            out |= self._resolve(rel, imp, reasons)
        text = "\n".join(facts.strings)
        out |= self.names.files_named_in(text)
        for computed in self.names.computed_sources(text):
            reasons.append(f"{rel}: names a Python source file built at run time ({computed!r})")
            break
        for fragment in facts.fragments:
            piece = self._names_piece(fragment)
            if piece is not None:
                reasons.append(f"{rel}: builds a name at run time from {fragment!r} ({piece!r} is part of a "
                               "module's name)")
                break
        for listing in facts.listings:
            if self._lists_sources(listing):
                reasons.append(f"{listing.where}: lists a directory ({listing.arg!r}) that can return shipped Python sources")
        result = (out, reasons)
        self._edges[rel] = result
        return result

    def closure(self, roots: Iterable[str]) -> tuple[set[str], list[str]]:
        seen: set[str] = set()
        reasons: list[str] = []
        todo = sorted(r for r in roots if r in self.file_set)
        while todo:
            rel = todo.pop()
            if rel in seen:
                continue
            seen.add(rel)
            edges, why = self.edges(rel)
            reasons.extend(why)
            todo.extend(sorted(edges - seen))
        return seen, sorted(set(reasons))

    # -- what every endpoint reaches

    def global_roots(self) -> tuple[set[str], dict[str, str]]:
        """Modules every endpoint may run, with why: library-named modules at
        an import root, and modules named in a shipped non-``.py`` file."""
        why: dict[str, str] = {}
        declared: list[str] = []
        for rel in self.shipped:
            if rel.rsplit("/", 1)[-1].startswith("requirements") and rel.endswith(".txt"):
                declared += self._read_text(rel).splitlines()
        for rel in self.files:
            if rel in self.facts or self._mentions(rel, b"dependencies"):
                declared += self.analyze_deps(rel)
        shadow = ShadowingNames(self.root, declared)
        packages = {rel.rsplit("/", 1)[0] for rel in self.files if rel.endswith("/__init__.py")}
        for rel in self.files:
            parts = _mod_parts(rel) or ["__init__"]
            for j, part in enumerate(parts):
                directory = "/".join(rel.split("/")[:j])
                if (j == 0 or directory not in packages) and part in shadow:
                    why.setdefault(rel, f"{rel} is at an import root under a library module's name ({part})")
                    break
        for rel in self.shipped:
            if rel in self.file_set:
                continue
            text = self._read_text(rel)
            for hit in sorted(self.names.files_named_in(text)):
                why.setdefault(hit, f"{hit} is named in {rel}")
        return set(why), why

    def analyze_deps(self, rel: str) -> list[str]:
        """``dependencies=[...]`` strings of ``rel`` (only literal ones)."""
        import ast

        out = []
        for src in self.analyze(rel).deps:
            try:
                value = ast.literal_eval(src)
            except (ValueError, SyntaxError, TypeError, RecursionError, MemoryError):
                continue
            if isinstance(value, (list, tuple)):
                out += [v for v in value if isinstance(v, str)]
        return out

    def _mentions(self, rel: str, word: bytes) -> bool:
        try:
            return word in (self.root / rel).read_bytes()
        except OSError:
            return True  # analyze() records why it cannot be read

    def _read_text(self, rel: str) -> str:
        try:
            with open(self.root / rel, "rb") as fh:
                data = fh.read(MAX_SCANNED_DATA + 1)
        except OSError:
            return ""
        if len(data) > MAX_SCANNED_DATA:
            return ""
        return data.decode("utf-8", "replace") if _mostly_text(data) else data.decode("latin-1")

    def roots_of(self, config: Mapping[str, Any]) -> set[str]:
        roots: set[str] = set()
        modules = [config.get("module_path")]
        for fn in config.get("functions") or ():
            if isinstance(fn, Mapping):
                modules.append(fn.get("module"))
        for module in modules:
            if isinstance(module, str) and module:
                roots |= self.by_path(PurePosixPath("."), module.split(".")) - {"__init__.py"}
        file_path = config.get("file_path")
        if isinstance(file_path, str) and file_path:
            rel = PurePosixPath(file_path.replace(os.sep, "/")).as_posix()
            if rel in self.file_set:
                roots.add(rel)
        return roots


def _mostly_text(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def rel_of(project_dir: Path, f: str | os.PathLike[str]) -> str:
    p = Path(f)
    try:
        rel = p.relative_to(project_dir)
    except ValueError:
        rel = Path(os.path.relpath(os.path.abspath(p), os.path.abspath(project_dir)))
    return rel.as_posix()


def fingerprinted(config: Any) -> bool:
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
    rels = sorted({rel_of(root, f) for f in files})
    graph = Graph(root, rels)
    resources = manifest.get("resources")
    resources = resources if isinstance(resources, Mapping) else {}
    names = [n for n, c in resources.items() if fingerprinted(c)]
    common: set[str] = set()
    if names:
        common, _ = graph.global_roots()

    reach: dict[str, set[str]] = {}
    problems: dict[str, str] = {}
    for name in names:
        roots = graph.roots_of(resources[name])
        if not roots:
            problems[name] = "its module is not among the shipped files"
            reach[name] = set()
            continue
        closure, reasons = graph.closure(roots | common)
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
        excluded = tuple(rel for rel in rels if rel in reached_by and name not in reached_by[rel])
        if not excluded:
            reason = "no module is imported only by other endpoints"
            scopes[name] = Scope(tuple(rels), True, reason, (), tuple(sorted(reach[name])))
            continue
        excluded_set = set(excluded)
        in_scope = tuple(rel for rel in rels if rel not in excluded_set)
        shared = tuple((rel, dep) for rel in excluded for dep in graph.analyze(rel).deps)
        reason = (
            f"its code ({len(reach[name])} module(s)) + {len(in_scope) - len(reach[name])} other "
            f"shipped file(s); leaves out {len(excluded)} module(s) only other endpoints import"
        )
        scopes[name] = Scope(in_scope, False, reason, excluded, tuple(sorted(reach[name])), False, shared)
    return scopes

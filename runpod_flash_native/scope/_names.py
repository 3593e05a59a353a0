"""Which project modules a text names, and which modules shadow a library.

A module can be loaded by any machinery handed a string (``dictConfig``'s
``"()"``, ``pydoc.locate``, entry points, ``python -m pkg.tool``, a YAML tag,
a Django-style setting): the list of such APIs is open, the strings are not.
:class:`NameIndex` finds, in any text, every name by which Python or a
command line could reach a shipped module: its dotted name from any directory
(and any prefix of a longer dotted name, since ``pkg.mod.Class`` loads
``pkg.mod``), its relative path with or without ``.py`` and every tail of it,
its file name and its stem; a package also by its directory. A name counts
only as a whole: not preceded or followed by a letter, digit or ``_``.

:class:`ShadowingNames` are the top-level names library code may import:
the standard library's, every installed module's, what installed
distributions require, the project's declared dependencies'. A project module at an import root under such a name
runs in every endpoint, whoever imports it.
"""

from __future__ import annotations

import functools
import os
import re
import sys
from collections.abc import Iterable
from pathlib import Path

__all__ = ["NameIndex", "PY_SOURCE", "ShadowingNames"]

_TOKEN = re.compile(r"\w+")
#: a Python source file named in a text: ``x.py``, ``x.pyw``, ``x.pyc``
PY_SOURCE = re.compile(r"\.py[cw]?(?!\w)")
#: characters that end the name before a ``.py`` (quotes, spaces, brackets…)
_NAME_STOP = set(" \t\r\n'\"`()[]{},;=<>|&!?#@$%^+~*:")
#: characters that make the name before a ``.py`` computed (format fields,
#: glob patterns, shell expansions)
_COMPUTED = set("{}%*?[]$<>")


def _tails(parts: list[str], sep: str) -> list[str]:
    return [sep.join(parts[k:]) for k in range(len(parts))]


class NameIndex:
    """Names of the shipped ``.py`` files (POSIX paths relative to the
    project), for :meth:`files_named_in`."""

    def __init__(self, rels: Iterable[str]) -> None:
        self.names: dict[str, set[str]] = {}
        self.stems: set[str] = set()
        for rel in rels:
            comps = rel.split("/")
            stem_parts = rel[:-3].split("/")
            is_init = stem_parts[-1] == "__init__"
            mod_parts = stem_parts[:-1] if is_init else stem_parts
            # the file and every package __init__ above it (``python -m a.b.c``
            # and ``import a.b.c`` run them all)
            inits = {"/".join(comps[:k]) + "/__init__.py" for k in range(1, len(comps))}
            for name in _tails(comps, "/") + _tails(stem_parts, "/") + _tails(mod_parts, ".") \
                    + (_tails(mod_parts, "/") if is_init else []):
                if name:
                    self.names.setdefault(name, set()).update({rel} | inits)
            self.stems.add(stem_parts[-1])
        self._by_token: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
        self._untokened: list[str] = []
        for name in self.names:
            tokens = tuple(_TOKEN.findall(name))
            if tokens:
                self._by_token.setdefault(tokens[0], []).append((name, tokens))
            else:
                self._untokened.append(name)

    def files_named_in(self, text: str) -> set[str]:
        """Every shipped ``.py`` file (and the package ``__init__.py`` files
        above it) that ``text`` names; backslashes count as slashes."""
        if "\\" in text:
            text = text.replace("\\", "/")
        found: set[str] = set()
        tokens = set(_TOKEN.findall(text))
        for token in tokens & self._by_token.keys():
            for name, name_tokens in self._by_token[token]:
                if all(t in tokens for t in name_tokens) and _whole(name).search(text):
                    found |= self.names[name]
        for name in self._untokened:
            if name in text:
                found |= self.names[name]
        return found

    def computed_sources(self, text: str) -> list[str]:
        """The ``.py`` names in ``text`` built at run time (``"%s.py"``,
        ``f"{x}.py"``'s ``".py"``, ``"*.py"``): nothing before the suffix, or a
        format field or pattern there. A plain name before it needs no
        check: it is a shipped file (found by :meth:`files_named_in`) or no
        project file at all."""
        out = []
        if "\\" in text:
            text = text.replace("\\", "/")
        for m in PY_SOURCE.finditer(text):
            i = m.start()
            j = i
            while j > 0 and text[j - 1] not in _NAME_STOP:
                j -= 1
            name = text[j:i]
            before = text[j - 1] if j > 0 else ""
            base = name.rsplit("/", 1)[-1]
            if not base or base == "." or any(c in _COMPUTED for c in name) or before in _COMPUTED:
                out.append(text[max(0, j - 1): m.end()])
        return out


@functools.lru_cache(maxsize=4096)
def _whole(name: str) -> re.Pattern[str]:
    return re.compile(r"(?<!\w)" + re.escape(name) + r"(?!\w)")


@functools.lru_cache(maxsize=1)
def _required_names() -> frozenset[str]:
    """What installed libraries may import beyond themselves: their
    requirements, optional ones (extras) included (pydantic imports
    ``email_validator`` when asked)."""
    from importlib import metadata

    names: set[str] = set()
    try:
        for dist in metadata.distributions():
            for req in dist.requires or ():
                m = _REQUIREMENT_NAME.match(req)
                if m:
                    names |= _import_names(m.group(1))
    except Exception:  # a broken installed distribution must not stop a build
        pass
    return frozenset(names)


_REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _import_names(dist: str) -> set[str]:
    """Import names a distribution name may stand for (``PyYAML`` ->
    ``PyYAML``, ``pyyaml``; ``email-validator`` -> ``email_validator``)."""
    name = re.sub(r"[-.]", "_", dist)
    return {name, name.lower()}


class ShadowingNames:
    """Top-level module names code outside the project imports: the
    standard library's and built-in modules, every module importable from
    ``sys.path`` outside the project (installed distributions), every name an
    installed distribution requires (extras included), and each declared
    requirement (``dependencies=``, ``requirements.txt`` lines) by its
    normalised name. ``name in ShadowingNames(...)``."""

    def __init__(self, project_dir: Path, declared: Iterable[str] = ()) -> None:
        self.fixed = set(sys.builtin_module_names) | set(getattr(sys, "stdlib_module_names", ())) \
            | {"sitecustomize", "usercustomize", "__main__", "__future__"} | _required_names()
        for req in declared:
            m = _REQUIREMENT_NAME.match(req)
            if m:
                self.fixed |= _import_names(m.group(1))
        root = os.path.realpath(project_dir)
        self.paths = [p for p in sys.path if p and not _inside(os.path.realpath(p), root)]
        self.cache: dict[str, bool] = {}

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        if name in self.fixed:
            return True
        hit = self.cache.get(name)
        if hit is None:
            from importlib.machinery import PathFinder

            try:
                hit = PathFinder.find_spec(name, self.paths) is not None
            except (ImportError, ValueError, OSError):
                hit = True  # cannot tell: assume a library has it
            self.cache[name] = hit
        return hit


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)

"""Shipped files a user probably did not mean to ship: names that usually
hold credentials, and symlinks whose target is outside the project."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ._common import rel

_SECRET_TEMPLATES = {".env.example", ".env.sample", ".env.template", ".env.dist"}
_SECRET_NAMES = {"id_rsa", "id_dsa", "id_ecdsa", "id_ed25519", ".netrc", ".pypirc"}


def looks_like_secret(name: str) -> bool:
    """File names that usually hold credentials.

    ``.env.*`` (flash ignores only ``.env`` and ``.env.local``; the template
    names ``.env.example``, ``.env.sample``, ``.env.template`` and ``.env.dist``
    are exempt), ``*.env``, SSH private keys (``id_rsa``, ``id_dsa``,
    ``id_ecdsa``, ``id_ed25519``), ``.netrc`` and ``.pypirc``.
    """
    lower = name.lower()
    if lower.startswith(".env."):
        return lower not in _SECRET_TEMPLATES
    if lower in _SECRET_NAMES:
        return True
    return lower != ".env" and lower.endswith(".env")


def secret_warnings(root: Path, files: Sequence[Path]) -> list[dict[str, str]]:
    """Shipped files whose name :func:`looks_like_secret`."""
    return [
        {"kind": "secret", "path": name}
        for name in sorted(rel(f, root) for f in files)
        if looks_like_secret(name.rsplit("/", 1)[-1])
    ]


def _within(path: str, root: str) -> bool:
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:
        return False


def symlink_warnings(root: Path, files: Sequence[Path]) -> list[dict[str, str]]:
    """Shipped files reached through a symlink that resolves outside ``root``,
    reported once per outermost such symlink."""
    root_real = os.path.realpath(root)
    checked: dict[tuple[str, ...], bool] = {}  # path parts -> leaves the project
    found: dict[str, str] = {}
    for f in files:
        parts = f.relative_to(root).parts
        cur = root
        for i, part in enumerate(parts):
            cur = cur / part
            key = parts[: i + 1]
            leaves = checked.get(key)
            if leaves is None:
                leaves = False
                if cur.is_symlink():
                    target = os.path.realpath(cur)
                    if not _within(target, root_real):
                        leaves = True
                        found[Path(*key).as_posix()] = target
                checked[key] = leaves
            if leaves:
                break
    return [{"kind": "symlink_outside", "path": p, "target": t} for p, t in sorted(found.items())]

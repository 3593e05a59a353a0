"""Which directory is the project: DIR when given, else the current
directory or the nearest one above it that `flash build` ran in (as git
finds ``.git``); and whether it is a project ``flash build`` accepts."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ._common import PROG, project_dir, show

# The mark of a built project. Not ``.flash/`` alone: every flash command
# (even `flash --version`) leaves ``.flash/logs/`` in the directory it ran in.
BUILT_MARK = Path(".flash") / "flash_manifest.json"


def locate_project(dir_arg: str | None) -> Path:
    """The project directory of a command: ``dir_arg`` when given; else the
    nearest of the current directory and its parents that holds
    ``.flash/flash_manifest.json`` (the place `flash build` ran), said on
    stderr when it is not the current directory; else the current directory."""
    if dir_arg is not None:
        return project_dir(dir_arg)
    cwd = project_dir(".")
    found = nearest_built_project(cwd)
    if found is None or found == cwd:
        return cwd
    sys.stderr.write(
        f"{PROG}: project {show(found)} (the nearest directory above with a "
        f"{BUILT_MARK.as_posix()}; pass DIR to choose another)\n"
    )
    return found


def nearest_built_project(start: Path) -> Path | None:
    """``start`` or its nearest parent holding ``.flash/flash_manifest.json``."""
    for candidate in (start, *start.parents):
        if (candidate / BUILT_MARK).is_file():
            return candidate
    return None


def display_dir(dir_arg: str | None, root: Path) -> str:
    """The project as the user named it, or relative to the current
    directory when it was found (``.``, ``..``)."""
    if dir_arg is not None:
        return dir_arg
    try:
        return os.path.relpath(root)
    except ValueError:  # another drive (Windows)
        return str(root)


def is_flash_project(root: Path, files: Sequence[Path]) -> bool:
    """flash's own test before it builds (else "Not a valid Flash project"):
    some ``*.py`` anywhere below ``root``, shipped or not, as
    ``Path.rglob("*.py")`` finds it. A shipped ``*.py`` at the top level
    answers without another walk."""
    if any(f.parent == root and f.name.endswith(".py") for f in files):
        return True
    return next(iter(root.rglob("*.py")), None) is not None


def not_a_project_message(root: Path) -> str:
    return (
        f"{show(root)}: not a Flash project: no Python files in it "
        "(`flash build` stops with \"Not a valid Flash project\"; pass the project directory as DIR)"
    )

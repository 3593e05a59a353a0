"""``files [DIR] [-0]``: the files `flash build` ships, sorted."""

from __future__ import annotations

import argparse
from typing import Any

from .._checks import secret_warnings, symlink_warnings
from .._common import EXIT_OK, rel
from .._locate import is_flash_project, locate_project, not_a_project_message
from .._project import check_utf8_names, walk
from .._report import warn


def run(args: argparse.Namespace) -> dict[str, Any]:
    root = locate_project(args.dir)
    found = walk(root)
    check_utf8_names(root, found)  # as fingerprint and flash build: a name flash cannot encode fails
    names = sorted(rel(f, root) for f in found)
    if not is_flash_project(root, found):
        warn(not_a_project_message(root), kind="not_a_flash_project", path=str(root))
    return {
        "command": "files",
        "project_dir": str(root),
        "count": len(names),
        "files": names,
        "exit_code": EXIT_OK,
        "_separator": b"\0" if args.null else b"\n",
        "_warnings": secret_warnings(root, found) + symlink_warnings(root, found),
    }

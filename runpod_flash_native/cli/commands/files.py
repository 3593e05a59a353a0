"""``files [DIR] [-0]``: the files `flash build` ships, sorted."""

from __future__ import annotations

import argparse
from typing import Any

from .._common import EXIT_OK, project_dir, rel
from .._project import walk


def run(args: argparse.Namespace) -> dict[str, Any]:
    root = project_dir(args.dir)
    names = sorted(rel(f, root) for f in walk(root))
    return {
        "command": "files",
        "project_dir": str(root),
        "count": len(names),
        "files": names,
        "exit_code": EXIT_OK,
        "_separator": b"\0" if args.null else b"\n",
    }

"""``fingerprint [DIR] [--index FILE]``: the source_fingerprint `flash build`
would write."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .._common import EXIT_OK, CliError, write_json_atomic
from .._index import build_index, index_target
from .._locate import is_flash_project, locate_project, not_a_project_message
from .._project import fingerprint, walk


def run(args: argparse.Namespace) -> dict[str, Any]:
    root = locate_project(args.dir)
    index_path = None if args.index is None else index_target(args.index)
    files = walk(root)
    if not is_flash_project(root, files):  # flash writes no fingerprint for it
        raise CliError(not_a_project_message(root))
    index = None
    if index_path is not None:
        fp, document = build_index(root, files)
        write_json_atomic(index_path, document)
        index = {"path": str(index_path), "source_fingerprint": fp}
    else:
        fp = fingerprint(root, files)
    return {
        "command": "fingerprint",
        "project_dir": str(root),
        "source_fingerprint": fp,
        "file_count": len(files),
        "index": index,
        "exit_code": EXIT_OK,
    }

"""The scoped-rolls switch: ``FLASH_NATIVE_SCOPED_ROLLS`` or the project's
``pyproject.toml``."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._switches import parse_switch

__all__ = ["ENV_SWITCH", "scoped_rolls_enabled"]

#: Environment switch; "1"/"true"/"yes"/"on" turn scoped rolls on, "0"/"false"/
#: "no"/"off"/"" turn them off (overriding pyproject.toml).
ENV_SWITCH = "FLASH_NATIVE_SCOPED_ROLLS"

_TABLE = "runpod-flash-native"


def scoped_rolls_enabled(
    project_dir: str | os.PathLike[str], environ: Mapping[str, str] | None = None
) -> bool:
    """Whether scoped rolls are switched on for ``project_dir``.

    ``FLASH_NATIVE_SCOPED_ROLLS`` decides when set (``1``/``true``/``yes``/``on``
    or ``0``/``false``/``no``/``off``/empty; anything else raises
    ``ValueError``); otherwise ``[tool.runpod-flash-native] scoped-rolls`` in
    ``project_dir/pyproject.toml`` (a bool). ``ValueError`` naming the file for
    anything else: invalid TOML, a ``tool`` that is not a table, a switch that
    is not a bool, a ``pyproject.toml`` that is not a regular file (checked
    before it is opened: a FIFO is never read) or cannot be read. Without
    ``tomllib`` (Python 3.10) and without ``tomli`` the file is not read and
    the switch is off.
    """
    env = os.environ if environ is None else environ
    raw = env.get(ENV_SWITCH)
    if raw is not None:
        return parse_switch(ENV_SWITCH, raw)
    path = Path(project_dir) / "pyproject.toml"
    data = _read_regular(path)
    if data is None:
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
    tool: Any = doc.get("tool", {})
    if not isinstance(tool, dict):
        raise ValueError(f"{path}: [tool] must be a table, not {type(tool).__name__}")
    table = tool.get(_TABLE, {})
    if not isinstance(table, dict):
        raise ValueError(f"{path}: [tool.{_TABLE}] must be a table")
    value = table.get("scoped-rolls", False)
    if not isinstance(value, bool):
        raise ValueError(f"{path}: [tool.{_TABLE}] scoped-rolls must be true or false, not {value!r}")
    return value


def _read_regular(path: Path) -> bytes | None:
    """The bytes of ``path``; None when it does not exist. Anything but a
    regular file is a ``ValueError`` found by ``stat`` before any open (a
    FIFO would block the read); the open itself is non-blocking and checked
    again, for a file swapped in between."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        raise ValueError(f"{path}: cannot be read: {e.strerror or e}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"{path}: not a regular file")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise ValueError(f"{path}: cannot be read: {e.strerror or e}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError(f"{path}: not a regular file")
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as e:
        raise ValueError(f"{path}: cannot be read: {e.strerror or e}") from None
    finally:
        os.close(fd)

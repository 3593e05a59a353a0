"""What every part of the command line shares: names, exit codes, the one
error type, and turning paths and failures into text."""

from __future__ import annotations

import contextlib
import json
import os
import stat
from pathlib import Path
from typing import Any, Literal

PROG = "runpod-flash-native"

EXIT_OK = 0
EXIT_CHANGED = 1
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141

MANIFEST_RELPATH = Path(".flash") / "flash_manifest.json"
DEFAULT_INDEX_RELPATH = Path(".flash") / "source_index.json"
LIST_LIMIT = 50  # text output of `status`: files listed per kind

#: Environment knobs (documented in --help): progress delay in seconds, and
#: RUNPOD_FLASH_NATIVE_DEBUG=1 to get a traceback instead of the one-line error.
PROGRESS_DELAY_ENV = "RUNPOD_FLASH_NATIVE_PROGRESS_DELAY"
DEBUG_ENV = "RUNPOD_FLASH_NATIVE_DEBUG"


class CliError(Exception):
    """A failure reported as one line and exit code 2."""


def show(path: str | os.PathLike[str]) -> str:
    """A path made printable (undecodable bytes shown as \\xNN)."""
    return os.fsencode(os.fspath(path)).decode("utf-8", "backslashreplace")


def describe(exc: BaseException) -> str:
    """One line for ``exc``, naming the file(s) of an OSError."""
    if isinstance(exc, OSError) and exc.filename is not None:
        msg = f"{show(exc.filename)}: {exc.strerror or exc}"
        if exc.filename2 is not None:
            msg += f" (-> {show(exc.filename2)})"
        return msg
    return str(exc) or type(exc).__name__


def project_dir(raw: str) -> Path:
    """``raw`` as an absolute directory path; CliError when it is not one."""
    path = Path(raw).absolute()
    try:
        st = path.stat()
    except FileNotFoundError:
        raise CliError(f"{show(raw)}: no such directory") from None
    except OSError as e:
        raise CliError(f"{show(raw)}: {e.strerror or e}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise CliError(f"{show(raw)}: not a directory")
    return path


def rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def read_json(path: Path, what: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CliError(f"{show(path)}: {what} not found") from None
    except IsADirectoryError:
        raise CliError(f"{show(path)}: is a directory, not the {what} file") from None
    except OSError as e:
        raise CliError(describe(e)) from None
    except UnicodeDecodeError as e:
        raise CliError(f"{show(path)}: not UTF-8 ({e.reason} at byte {e.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise CliError(f"{show(path)}: invalid JSON ({e.msg}, line {e.lineno} column {e.colno})") from None


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` to ``path`` through a temporary file beside it: the
    file is whole or untouched, and no temporary file is left behind."""
    if path.is_dir():
        raise CliError(f"{show(path)}: is a directory; name the file to write "
                       f"(for example {show(path / DEFAULT_INDEX_RELPATH.name)})")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(e, OSError):
            raise CliError(describe(e)) from None
        raise


class Guard:
    """Turns a failure of a native call into a CliError naming a path: the
    file in an OSError, else ``where``."""

    def __init__(self, where: Path) -> None:
        self.where = where

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Literal[False]:
        if exc is None or isinstance(exc, (CliError, KeyboardInterrupt, BrokenPipeError)):
            return False
        if not isinstance(exc, Exception):
            return False
        if isinstance(exc, OSError) and exc.filename is not None:
            raise CliError(describe(exc)) from None
        message = describe(exc)
        where = show(self.where)
        raise CliError(message if where in message else f"{where}: {message}") from None

"""The one printer: a command's report (a dict) rendered as text or as one
JSON document, warnings on stderr (and recorded for the JSON document), and
stdout failures turned into errors that say it was stdout.

A report holds the keys of the command's JSON document, ``"command"`` and
``"exit_code"`` among them; keys that start with ``_`` are for the text
rendering only (``"_warnings"`` are shown by either rendering).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Iterator
from typing import Any

from ._common import LIST_LIMIT, PROG, CliError, show

#: Warnings of the running main() call, for the JSON document ("warnings").
_collected: list[dict[str, Any]] | None = None


@contextlib.contextmanager
def collecting() -> Iterator[None]:
    """Record the warnings of one main() call (calls may nest in-process)."""
    global _collected
    saved, _collected = _collected, []
    try:
        yield
    finally:
        _collected = saved


# --------------------------------------------------------------------------
# stdout and stderr


def stdout() -> Any:
    """``sys.stdout``; BrokenPipeError when there is none (started with
    ``>&-``): a closed stdout is one case, whatever closed it."""
    if sys.stdout is None:
        raise BrokenPipeError(errno.EPIPE, "stdout is closed")
    return sys.stdout


def out(text: str = "") -> None:
    with stdout_guard():
        stdout().write(text + "\n")


def silence_stdout() -> None:
    """Point fd 1 at /dev/null: what is still buffered for a stdout that
    failed (closed pipe, full disk) then drains there, and the interpreter's
    final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


@contextlib.contextmanager
def stdout_guard() -> Iterator[None]:
    """A failed write to stdout (``> /dev/full``) becomes an error that says
    it was stdout. A closed stdout (the reader of the pipe has left, or fd 1
    was closed) is BrokenPipeError: main() stops silently with exit 141."""
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as e:
        if e.errno == errno.EBADF:
            raise BrokenPipeError(errno.EPIPE, "stdout is closed") from None
        silence_stdout()
        raise CliError(f"cannot write to stdout: {e.strerror or e}") from None


def warn(message: str, kind: str = "warning", **fields: Any) -> None:
    """One warning line on stderr, also recorded for --json as
    ``{"kind", "message", ...fields}``."""
    sys.stderr.write(f"{PROG}: warning: {message}\n")
    if _collected is not None:
        _collected.append({"kind": kind, "message": message, **fields})


def emit_json(data: dict[str, Any], exit_code: int = 0) -> None:
    doc = {k: v for k, v in data.items() if not k.startswith("_") and k != "exit_code"}
    doc["warnings"] = list(_collected or ())
    doc["exit_code"] = exit_code
    with stdout_guard():
        stdout().write(json.dumps(doc, indent=2) + "\n")


# --------------------------------------------------------------------------
# the printer


def print_report(report: dict[str, Any], as_json: bool) -> int:
    """Render ``report``; returns its exit code."""
    code: int = report["exit_code"]
    if as_json:
        _show_warnings(report)
        emit_json(report, code)
    else:
        _TEXT[report["command"]](report)
        _show_warnings(report)
    return code


def print_failure(message: str, code: int, command: str | None, as_json: bool) -> int:
    """Report a failure: the line on stderr is already written; under --json
    also the one JSON document on stdout."""
    if as_json:
        try:
            emit_json({"command": command, "error": message}, code)
            stdout().flush()
        except (OSError, ValueError, CliError):
            silence_stdout()
    return code


def _show_warnings(report: dict[str, Any]) -> None:
    for w in report.get("_warnings") or ():
        if w["kind"] == "secret":
            warn(f"{show(w['path'])} looks like a secret and is shipped (flash does not ignore it; add it to .gitignore)", **w)
        else:
            warn(f"{show(w['path'])} is a symlink to {show(w['target'])}, outside the project; its content is shipped", **w)


def _text_fingerprint(report: dict[str, Any]) -> None:
    out(report["source_fingerprint"])


def _text_files(report: dict[str, Any]) -> None:
    sep = report["_separator"]
    with stdout_guard():
        stream = stdout().buffer
        stdout().flush()
        for name in report["files"]:
            stream.write(os.fsencode(name) + sep)
        stream.flush()


def _text_status(report: dict[str, Any]) -> None:
    if report["status"] == "not_deployed":  # status --env, nothing deployed there
        out(f"not deployed: {report['_absence']}; the next deploy provisions every resource "
            f"(`{report['_plan_command']}` lists them)")
        return
    root, manifest_path = report["project_dir"], report.get("_manifest_label") or report["manifest"]
    recorded, current = report["recorded_fingerprint"], report["current_fingerprint"]
    rolls, index = report["rolls"], report["index"]
    if recorded == current:
        out(f"unchanged: {show(root)} matches the source_fingerprint in {show(manifest_path)}")
        out(f"  fingerprint {current}")
        out("  the next deploy rolls no endpoint for source changes")
    else:
        out(f"changed: {show(root)} differs from the source_fingerprint in {show(manifest_path)}")
        out(f"  recorded    {recorded}")
        out(f"  current     {current}")
        if rolls:
            out(f"  the next deploy rolls {len(rolls)} endpoint(s): {', '.join(rolls)}")
        else:
            out("  the next deploy rebuilds, but no endpoint in the manifest takes source changes")
    if index is None:
        if recorded != current:
            out(f"  (per-file changes: save an index after building with `{report['_index_command']}`)")
    else:
        if not index["matches_manifest"]:
            out(f"  note: index {show(index['path'])} was saved for a different build; refresh it with "
                f"`{report['_index_command']}` (`flash-native build` keeps it current)")
            if recorded == current:  # its differences are not changes since the build
                index = {"added": [], "removed": [], "modified": []}
            else:
                out("  files changed since that index:")
        for kind in ("added", "removed", "modified"):
            names = index[kind]
            for name in names[:LIST_LIMIT]:
                out(f"  {kind + ':':<10} {show(name)}")
            if len(names) > LIST_LIMIT:
                out(f"  {kind + ':':<10} ... and {len(names) - LIST_LIMIT} more (--json lists all)")
    from .. import scope

    for line in scope.format_status(report["_scoped"]):
        out(line)


def _text_plan(report: dict[str, Any]) -> None:
    from ..deployment import describe_change

    provision, update, reuse, delete = (list(report.get(k) or ()) for k in ("provision", "update", "reuse", "delete"))
    adopted = set(report.get("adopted") or ())
    reasons = report.get("reasons") or {}
    if report.get("_deployed_headline"):  # plan --env
        out(report["_deployed_headline"])
    out(
        f"plan: {len(provision)} to provision, {len(update)} to update, "
        f"{len(reuse)} to reuse, {len(delete)} left running (only in the deployed manifest)"
    )
    for name in provision:
        out(f"  provision  {name}  (not in the deployed manifest)")
    for name in update:
        out(f"  update     {name}")
        for change in reasons.get(name) or ():
            out(f"               {describe_change(change)}")
    for name in reuse:
        note = "  (adopted: deployed without a source fingerprint)" if name in adopted else ""
        out(f"  reuse      {name}{note}")
    for name in delete:
        out(f"  keep       {name}  (not in the local manifest: flash 1.21 marks it for deletion "
            "but deletes nothing; the endpoint keeps running)")
    for name, why in (report.get("keeps_fingerprint") or {}).items():
        out(f"  keeps fingerprint  {name}: {why}")
    out(f"  (as runpod-flash {report['flash_version']} deploys)")


_TEXT: dict[str, Callable[[dict[str, Any]], None]] = {
    "fingerprint": _text_fingerprint,
    "files": _text_files,
    "status": _text_status,
    "plan": _text_plan,
}


# --------------------------------------------------------------------------
# the library's log records as warning lines


class _LowerLevelFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        record = logging.makeLogRecord(record.__dict__)
        record.levelname = record.levelname.lower()
        return super().format(record)


_UNREADABLE_DIR = re.compile(r"^Permission denied: (.*) - ", re.S)


class _CollectingHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Shows a library warning as our warning line and records it for --json."""

    def emit(self, record: logging.LogRecord) -> None:
        super().emit(record)
        if _collected is None or record.levelno < logging.WARNING:
            return
        message = record.getMessage()
        m = _UNREADABLE_DIR.match(message)
        entry: dict[str, Any] = {"kind": "unreadable_directory" if m else "log", "message": message}
        if m:
            entry["path"] = m.group(1)
        _collected.append(entry)


@contextlib.contextmanager
def library_warnings_on_stderr() -> Iterator[None]:
    """The native modules log flash's warnings (unreadable directory skipped,
    leftover .flashignore, unreadable .gitignore): show them as our warning
    lines on stderr while a command runs (and record them for --json), and
    leave the logging configuration as it was afterwards (main() may be
    called in-process)."""
    logger = logging.getLogger("runpod_flash_native")
    handler = _CollectingHandler(sys.stderr)
    handler.setFormatter(_LowerLevelFormatter(f"{PROG}: %(levelname)s: %(message)s"))
    handler.setLevel(logging.WARNING)
    saved_level, saved_propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved_level)
        logger.propagate = saved_propagate

"""``runpod-flash-native`` (also ``python -m runpod_flash_native``).

Inspect a flash project the way ``flash build`` / ``flash deploy`` see it,
without building: the source fingerprint, the shipped file list, whether the
next deploy rolls the endpoints, and the reconciliation plan between two
manifests. Standard library only (plus this package's extension).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import re
import shlex
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

PROG = "runpod-flash-native"

EXIT_OK = 0
EXIT_CHANGED = 1
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141

MANIFEST_RELPATH = Path(".flash") / "flash_manifest.json"
DEFAULT_INDEX_RELPATH = Path(".flash") / "source_index.json"
INDEX_FORMAT = "runpod-flash-native/source-index"
INDEX_VERSION = 1
LIST_LIMIT = 50  # text output of `status`: files listed per kind

#: Environment knobs (documented in --help): progress delay in seconds, and
#: RUNPOD_FLASH_NATIVE_DEBUG=1 to get a traceback instead of the one-line error.
PROGRESS_DELAY_ENV = "RUNPOD_FLASH_NATIVE_PROGRESS_DELAY"
DEBUG_ENV = "RUNPOD_FLASH_NATIVE_DEBUG"

_EXIT_CODES = {
    "fingerprint": [("0", "success")],
    "files": [("0", "success")],
    "status": [
        ("0", "the next deploy rolls no endpoint: the source is unchanged since the\n"
              "       manifest's source_fingerprint, or no endpoint takes source changes\n"
              "       (every resource is client-mode, or there is none)"),
        ("1", "the source changed and the next deploy rolls the endpoints"),
    ],
    "plan": [("0", "success")],
}
_EXIT_COMMON = [
    ("2", "usage error, or the command failed (one line on stderr:\n"
          f'       "{PROG}: error: <message naming the path>")'),
    ("130", "interrupted (Ctrl-C)"),
]


def _epilog(command: str | None) -> str:
    """The exit codes of ``command`` (all of them for the top-level help),
    then the environment knobs."""
    if command is None:
        codes = [("0", "success; for `status`: the source is unchanged, or no endpoint takes\n"
                       "       source changes (the next deploy rolls no endpoint)"),
                 ("1", "`status` only: the source changed and the next deploy rolls the endpoints")]
    else:
        codes = _EXIT_CODES[command]
    lines = ["exit codes:"] + [f"  {code:<4} {text}" for code, text in codes + _EXIT_COMMON]
    lines += [
        "",
        "--json: every outcome, errors and Ctrl-C included, is one JSON document on stdout",
        'with "exit_code" and "warnings" (see README).',
        "",
        "progress:",
        f"  Walks and hashes that take longer than {1.0:g} s report files, bytes done, rate and",
        "  ETA on stderr when stderr is a terminal, and print nothing otherwise",
        f"  ({PROGRESS_DELAY_ENV} changes the delay).",
        f"  {DEBUG_ENV}=1 shows the Python traceback of an error.",
    ]
    return "\n".join(lines) + "\n"


class CliError(Exception):
    """A failure reported as one line and exit code 2."""


# --------------------------------------------------------------------------
# small helpers


def _show(path: str | os.PathLike[str]) -> str:
    """A path made printable (undecodable bytes shown as \\xNN)."""
    return os.fsencode(os.fspath(path)).decode("utf-8", "backslashreplace")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename is not None:
        msg = f"{_show(exc.filename)}: {exc.strerror or exc}"
        if exc.filename2 is not None:
            msg += f" (-> {_show(exc.filename2)})"
        return msg
    return str(exc) or type(exc).__name__


def _project_dir(raw: str) -> Path:
    path = Path(raw).absolute()
    try:
        st = path.stat()
    except FileNotFoundError:
        raise CliError(f"{_show(raw)}: no such directory") from None
    except OSError as e:
        raise CliError(f"{_show(raw)}: {e.strerror or e}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise CliError(f"{_show(raw)}: not a directory")
    return path


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _read_json(path: Path, what: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CliError(f"{_show(path)}: {what} not found") from None
    except OSError as e:
        raise CliError(_describe(e)) from None
    except UnicodeDecodeError as e:
        raise CliError(f"{_show(path)}: not UTF-8 ({e.reason} at byte {e.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise CliError(f"{_show(path)}: invalid JSON ({e.msg}, line {e.lineno} column {e.colno})") from None


def _write_json_atomic(path: Path, data: Any) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError as e:
        raise CliError(_describe(e)) from None


def _out(text: str = "") -> None:
    with _stdout_guard():
        sys.stdout.write(text + "\n")


def _silence_stdout() -> None:
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
def _stdout_guard() -> Iterator[None]:
    """A failed write to stdout (``> /dev/full``) becomes an error that says
    it was stdout; a closed pipe stays BrokenPipeError (exit 141, silent)."""
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as e:
        _silence_stdout()
        raise CliError(f"cannot write to stdout: {e.strerror or e}") from None


#: Warnings of the running main() call, for the JSON document ("warnings").
_collected: list[dict[str, Any]] | None = None


def _emit_json(data: dict[str, Any], exit_code: int = 0) -> None:
    doc = dict(data)
    doc["warnings"] = list(_collected or ())
    doc["exit_code"] = exit_code
    with _stdout_guard():
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")


def _warn(message: str, kind: str = "warning", **fields: Any) -> None:
    """One warning line on stderr, also recorded for --json as
    ``{"kind", "message", ...fields}``."""
    sys.stderr.write(f"{PROG}: warning: {message}\n")
    if _collected is not None:
        _collected.append({"kind": kind, "message": message, **fields})


def _human_bytes(n: float) -> str:
    """Binary units, labelled as such (50 MiB is "50.0 MiB")."""
    units = ("B", "KiB", "MiB", "GiB", "TiB")
    i = 0
    while n >= 1023.95 and i < len(units) - 1:  # never "1024.0 MiB"
        n /= 1024
        i += 1
    return f"{n:.0f} B" if i == 0 else f"{n:.1f} {units[i]}"


def _human_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds // 60 % 60:02d} min"


# --------------------------------------------------------------------------
# progress on stderr (terminal only)


def _bytes_read() -> int | None:
    """Bytes this process has read so far (Linux: ``rchar`` of /proc/self/io),
    or None where the kernel does not say. The native hash is one call that
    releases the GIL, so this is how its progress shows from outside."""
    try:
        with open("/proc/self/io", "rb") as fh:
            for line in fh:
                if line.startswith(b"rchar:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


class _Progress:
    """Reports a long blocking call on stderr.

    After ``delay`` seconds a daemon thread redraws one status line: the
    phase, the file count and, for hashing, bytes done of the total,
    percentage, rate and ETA (bytes done as the process's read counter
    moved, capped at the total); when the call ends the line is replaced by
    a summary. Nothing is written when stderr is not a terminal, or when the
    call ends before ``delay``.
    """

    SPIN = "|/-\\"

    def __init__(self, label: str, files: Sequence[Path] | None = None) -> None:
        self.label = label
        self.files = files
        self.enabled = _stderr_is_tty()
        self.delay = _progress_delay()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._shown = False
        self._total: int | None = None
        self._start = 0.0
        self._read0: int | None = None

    def __enter__(self) -> _Progress:
        self._start = time.monotonic()
        self._read0 = _bytes_read() if self.enabled and self.files is not None else None
        if self.enabled:
            self._thread = threading.Thread(target=self._run, name="rfn-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()
        if self._shown:
            elapsed = time.monotonic() - self._start
            if exc_type is None:
                sys.stderr.write("\r\033[K" + self._summary(elapsed) + "\n")
            else:
                sys.stderr.write("\r\033[K")
            sys.stderr.flush()

    def _total_bytes(self) -> int | None:
        if self.files is None:
            return None
        total = 0
        for f in self.files:
            if self._done.is_set():
                return None
            try:
                total += f.stat().st_size
            except OSError:
                pass
        return total

    def _done_bytes(self) -> int | None:
        if self._read0 is None or self._total is None:
            return None
        now = _bytes_read()
        if now is None:
            return None
        return max(0, min(self._total, now - self._read0))

    def _line(self, elapsed: float) -> str:
        parts = [f"{self.label} {self.SPIN[int(elapsed * 5) % 4]}"]
        if self.files is not None:
            parts.append(f"{len(self.files):,} files")
        done = self._done_bytes()
        if self._total is not None and done is not None:
            pct = 100 * done // self._total if self._total else 100
            parts.append(f"{_human_bytes(done)} of {_human_bytes(self._total)} ({pct}%)")
            if done > 0 and elapsed >= 0.5:  # earlier, the rate is mostly start-up noise
                rate = done / elapsed
                parts.append(f"{_human_bytes(rate)}/s")
                parts.append(f"ETA {_human_duration((self._total - done) / rate)}")
        elif self._total is not None:
            parts.append(_human_bytes(self._total))
        parts.append(f"{elapsed:.1f} s")
        return parts[0] + " " + ", ".join(parts[1:])

    def _summary(self, elapsed: float) -> str:
        parts = [f"{self.label}: done"]
        if self.files is not None:
            parts.append(f"{len(self.files):,} files")
        if self._total is not None:
            parts.append(_human_bytes(self._total))
        parts.append(f"{elapsed:.1f} s")
        if self._total is not None and elapsed > 0:
            parts.append(f"{_human_bytes(self._total / elapsed)}/s")
        return ", ".join(parts)

    def _run(self) -> None:
        if self._done.wait(self.delay):
            return
        self._shown = True
        while True:
            sys.stderr.write("\r\033[K" + self._line(time.monotonic() - self._start))
            sys.stderr.flush()
            if self._total is None and self.files is not None:
                self._total = self._total_bytes()  # once, in this thread, after the first line
                continue
            if self._done.wait(0.2):
                return


def _stderr_is_tty() -> bool:
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _parse_progress_delay() -> tuple[float, str | None]:
    """(delay, warning): an unusable value falls back to 1 s with a warning."""
    raw = os.environ.get(PROGRESS_DELAY_ENV)
    if raw is None or not raw.strip():
        return 1.0, None
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not (value >= 0 and value != float("inf")):
        return 1.0, f"{PROGRESS_DELAY_ENV}={raw!r} is not a number of seconds >= 0; using 1"
    return value, None


def _progress_delay() -> float:
    return _parse_progress_delay()[0]


# --------------------------------------------------------------------------
# the project as flash sees it


class _Guard:
    """Turns a failure of a native call into a CliError naming a path: the
    file in an OSError, else ``where``."""

    def __init__(self, where: Path) -> None:
        self.where = where

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        if exc is None or isinstance(exc, (CliError, KeyboardInterrupt, BrokenPipeError)):
            return False
        if not isinstance(exc, Exception):
            return False
        if isinstance(exc, OSError) and exc.filename is not None:
            raise CliError(_describe(exc)) from None
        message = _describe(exc)
        where = _show(self.where)
        raise CliError(message if where in message else f"{where}: {message}") from None


def _walk(root: Path) -> list[Path]:
    """flash's shipped file list, in flash's order (native walk)."""
    from . import ignore

    gitignore = root / ".gitignore"
    try:
        spec = ignore.load_ignore_patterns(root)
    except (ValueError, re.error) as e:  # a bad .gitignore pattern, naming its line
        raise CliError(f"{_show(gitignore)}: {_as_written(gitignore, str(e))}") from None
    with _Guard(root), _Progress(f"walking {_show(root)}"):
        return ignore.get_file_tree(root, spec)


_PATTERN_ERROR = re.compile(r"^(Invalid git pattern: )('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")( \(\.gitignore line (\d+)\).*)$", re.S)


def _as_written(gitignore: Path, message: str) -> str:
    """The pattern error with the pattern shown as the line in the file
    reads (``'foo\\ '``), not as the repr of what flash kept of it after
    stripping (``'foo\\\\'``)."""
    m = _PATTERN_ERROR.match(message)
    if not m:
        return message
    try:
        lines = gitignore.read_text(encoding="utf-8").splitlines()
        raw = lines[int(m.group(4)) - 1]
    except (OSError, UnicodeDecodeError, IndexError, ValueError):
        return message
    shown = f"'{raw}'" if raw.isprintable() else repr(raw)
    note = " (flash strips the whitespace around each line)" if raw != raw.strip() else ""
    return f"{m.group(1)}{shown}{m.group(3)}{note}"


def _check_utf8_names(root: Path, files: Sequence[Path]) -> None:
    # flash's fingerprint encodes each relative path as UTF-8 and fails on
    # undecodable names with a bare UnicodeEncodeError: name the file instead.
    for f in files:
        try:
            _rel(f, root).encode("utf-8")
        except UnicodeEncodeError:
            raise CliError(
                f"{_show(f)}: file name is not valid UTF-8; flash cannot fingerprint it "
                "(rename it or add it to .gitignore)"
            ) from None


def _fingerprint(root: Path, files: Sequence[Path]) -> str:
    from .build import compute_source_fingerprint

    _check_utf8_names(root, files)
    with _Guard(root), _Progress("hashing", files):
        return compute_source_fingerprint(root, files)


def _sorted_rel(root: Path, files: Sequence[Path]) -> list[str]:
    return sorted(_rel(f, root) for f in files)


def _file_sha256(path: Path) -> tuple[int, str]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return size, h.hexdigest()


def _hash_files(paths: Sequence[Path]) -> list[tuple[int, str]]:
    if not paths:
        return []
    with _Guard(paths[0].parent), _Progress("indexing", paths), ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        return list(pool.map(_file_sha256, paths))


def _stat_key(path: Path) -> tuple[int, int, int, int]:
    st = path.stat()
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _build_index(root: Path, files: Sequence[Path]) -> tuple[str, dict[str, dict[str, Any]]]:
    """(fingerprint, per-file index) taken from the same file contents.

    Files are stat'ed before and after hashing; a change in between (size,
    mtime, inode) restarts, at most three times.
    """
    for _attempt in range(3):
        before = [_stat_key(f) for f in files]
        digests = _hash_files(files)
        fingerprint = _fingerprint(root, files)
        changed = [f for f, key in zip(files, before) if _stat_key(f) != key]
        if not changed:
            index = {
                _rel(f, root): {"size": size, "sha256": sha}
                for f, (size, sha) in zip(files, digests)
            }
            return fingerprint, dict(sorted(index.items()))
    raise CliError(f"{_show(changed[0])}: kept changing while the index was written; try again")


def _load_index(path: Path) -> dict[str, Any]:
    data = _read_json(path, "index")
    if not (
        isinstance(data, dict)
        and data.get("format") == INDEX_FORMAT
        and isinstance(data.get("files"), dict)
    ):
        raise CliError(f"{_show(path)}: not a {PROG} index (write one with `{PROG} fingerprint --index FILE`)")
    if data.get("version") != INDEX_VERSION:
        raise CliError(f"{_show(path)}: unsupported index version {data.get('version')!r}")
    return data


# --------------------------------------------------------------------------
# warnings: shipped secrets, symlinks leaving the project

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


def _secret_warnings(root: Path, files: Sequence[Path]) -> list[dict[str, str]]:
    return [
        {"kind": "secret", "path": rel}
        for rel in _sorted_rel(root, files)
        if looks_like_secret(rel.rsplit("/", 1)[-1])
    ]


def _within(path: str, root: str) -> bool:
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:
        return False


def _symlink_warnings(root: Path, files: Sequence[Path]) -> list[dict[str, str]]:
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


def _print_warnings(warnings: list[dict[str, str]]) -> None:
    for w in warnings:
        if w["kind"] == "secret":
            _warn(f"{_show(w['path'])} looks like a secret and is shipped (flash does not ignore it; add it to .gitignore)", **w)
        else:
            _warn(f"{_show(w['path'])} is a symlink to {_show(w['target'])}, outside the project; its content is shipped", **w)


# --------------------------------------------------------------------------
# commands


def cmd_fingerprint(args: argparse.Namespace) -> int:
    root = _project_dir(args.dir)
    files = _walk(root)
    index_path = None
    if args.index is not None:
        index_path = Path(args.index).absolute()
        fingerprint, index = _build_index(root, files)
        _write_json_atomic(
            index_path,
            {
                "format": INDEX_FORMAT,
                "version": INDEX_VERSION,
                "source_fingerprint": fingerprint,
                "files": index,
            },
        )
    else:
        fingerprint = _fingerprint(root, files)
    if args.json:
        _emit_json(
            {
                "command": "fingerprint",
                "project_dir": str(root),
                "source_fingerprint": fingerprint,
                "file_count": len(files),
                "index": {"path": str(index_path), "source_fingerprint": fingerprint} if index_path else None,
            }
        )
    else:
        _out(fingerprint)
    return EXIT_OK


def cmd_files(args: argparse.Namespace) -> int:
    root = _project_dir(args.dir)
    rels = _sorted_rel(root, _walk(root))
    if args.json:
        _emit_json({"command": "files", "project_dir": str(root), "count": len(rels), "files": rels})
        return EXIT_OK
    sep = b"\0" if args.null else b"\n"
    with _stdout_guard():
        out = sys.stdout.buffer
        sys.stdout.flush()
        for rel in rels:
            out.write(os.fsencode(rel) + sep)
        out.flush()
    return EXIT_OK


def _diff_against_index(root: Path, files: Sequence[Path], index: dict[str, Any]) -> dict[str, list[str]]:
    recorded: dict[str, Any] = index["files"]
    current = {_rel(f, root): f for f in files}
    added = sorted(set(current) - set(recorded))
    removed = sorted(set(recorded) - set(current))
    modified = []
    to_hash = []
    for rel in sorted(set(current) & set(recorded)):
        entry = recorded[rel]
        size = entry.get("size") if isinstance(entry, dict) else None
        try:
            cur_size = current[rel].stat().st_size
        except OSError as e:
            raise CliError(_describe(e)) from None
        if size != cur_size:
            modified.append(rel)
        else:
            to_hash.append(rel)
    for rel, (_, sha) in zip(to_hash, _hash_files([current[r] for r in to_hash])):
        if sha != recorded[rel].get("sha256"):
            modified.append(rel)
    return {"added": added, "removed": removed, "modified": sorted(modified)}


def _modelled_flash(args: argparse.Namespace) -> str:
    """The flash release whose deploy rules plan/status follow (--flash-version,
    else the installed runpod-flash, else the default)."""
    from .deployment import modelled_flash_version

    try:
        return modelled_flash_version(args.flash_version)
    except ValueError as e:
        raise CliError(f"--flash-version: {e}" if args.flash_version is not None else str(e)) from None


def cmd_status(args: argparse.Namespace) -> int:
    flash_version = _modelled_flash(args)
    root = _project_dir(args.dir)
    manifest_path = root / MANIFEST_RELPATH
    if not manifest_path.exists():
        raise CliError(f"{_show(manifest_path)}: no manifest (run `flash build` first)")
    manifest = _read_json(manifest_path, "manifest")
    if not isinstance(manifest, dict):
        raise CliError(f"{_show(manifest_path)}: not a flash manifest (expected a JSON object)")
    from . import scope

    recorded = scope.recorded_source_fingerprint(manifest)
    if not isinstance(recorded, str) or not recorded:
        raise CliError(
            f"{_show(manifest_path)}: no source_fingerprint recorded "
            "(built by a runpod-flash without source fingerprints; run `flash build`)"
        )

    index_path = Path(args.index).absolute() if args.index else root / DEFAULT_INDEX_RELPATH
    index = None
    if args.index:
        index = _load_index(index_path)
    elif index_path.exists():
        # The default index is optional: one that cannot be used only costs
        # the per-file details.
        try:
            index = _load_index(index_path)
        except CliError as e:
            _warn(
                f"{e}; comparing fingerprints only (rewrite it with `{_index_command(args.dir)}`)",
                kind="index", path=str(index_path),
            )

    files = _walk(root)
    current = _fingerprint(root, files)
    changed = current != recorded

    index_report = None
    if index is not None:
        diff = (
            _diff_against_index(root, files, index)
            if current != index.get("source_fingerprint")
            else {"added": [], "removed": [], "modified": []}
        )
        index_report = {
            "path": str(index_path),
            "source_fingerprint": index.get("source_fingerprint"),
            "matches_manifest": index.get("source_fingerprint") == recorded,
            **diff,
        }

    # per endpoint: flash's rule vs its own scope (runpod_flash_native.scope)
    known = index_report is not None and index_report["matches_manifest"]
    with _Guard(root):
        scoped = scope.status_report(
            root, files, manifest, current_fingerprint=current,
            changed_files=index_report["added"] + index_report["removed"] + index_report["modified"] if known else None,
            flash_version=flash_version,
        )
    rolls = scoped["rolls"]

    warnings = _secret_warnings(root, files) + _symlink_warnings(root, files)
    # A changed source matters only if some endpoint takes it.
    exit_code = EXIT_CHANGED if rolls else EXIT_OK

    if args.json:
        _print_warnings(warnings)
        _emit_json(
            {
                "command": "status",
                "project_dir": str(root),
                "manifest": str(manifest_path),
                "status": "changed" if changed else "unchanged",
                "changed": changed,
                "recorded_fingerprint": recorded,
                "current_fingerprint": current,
                "file_count": len(files),
                "rolls": rolls,
                "scoped_rolls": scoped["scoped_rolls"],
                "fingerprint_mode": scoped["mode"],
                "endpoints": scoped["endpoints"],
                "index": index_report,
                "flash_version": flash_version,
            },
            exit_code,
        )
    else:
        _print_status(root, manifest_path, recorded, current, rolls, index_report, _index_command(args.dir))
        for line in scope.format_status(scoped):
            _out(line)
        _print_warnings(warnings)
    return exit_code


def _print_status(
    root: Path,
    manifest_path: Path,
    recorded: str,
    current: str,
    rolls: list[str],
    index_report: dict[str, Any] | None,
    index_command: str,
) -> None:
    if recorded == current:
        _out(f"unchanged: {_show(root)} matches the source_fingerprint in {_show(manifest_path)}")
        _out(f"  fingerprint {current}")
        _out("  the next deploy rolls no endpoint for source changes")
    else:
        _out(f"changed: {_show(root)} differs from the source_fingerprint in {_show(manifest_path)}")
        _out(f"  recorded    {recorded}")
        _out(f"  current     {current}")
        if rolls:
            _out(f"  the next deploy rolls {len(rolls)} endpoint(s): {', '.join(rolls)}")
        else:
            _out("  the next deploy rebuilds, but no endpoint in the manifest takes source changes")
    if index_report is None:
        if recorded != current:
            _out(f"  (per-file changes: save an index after building with `{index_command}`)")
        return
    if not index_report["matches_manifest"]:
        _out(f"  note: index {_show(index_report['path'])} was saved for a different build; files are compared with the index")
    for kind in ("added", "removed", "modified"):
        names = index_report[kind]
        for rel in names[:LIST_LIMIT]:
            _out(f"  {kind + ':':<10} {_show(rel)}")
        if len(names) > LIST_LIMIT:
            _out(f"  {kind + ':':<10} ... and {len(names) - LIST_LIMIT} more (--json lists all)")


def _index_command(dir_arg: str) -> str:
    """The command that writes the default index of the project ``dir_arg``
    (as the user named it), runnable from the current directory."""
    if os.path.abspath(dir_arg) == os.getcwd():
        return f"{PROG} fingerprint --index {DEFAULT_INDEX_RELPATH.as_posix()}"
    index = os.path.join(dir_arg, DEFAULT_INDEX_RELPATH)
    return f"{PROG} fingerprint {shlex.quote(dir_arg)} --index {shlex.quote(index)}"


def _load_deployment():
    from . import deployment

    return deployment


def _fmt_value(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def cmd_plan(args: argparse.Namespace) -> int:
    local = _read_json(Path(args.local_manifest), "local manifest")
    state = _read_json(Path(args.state_manifest), "state manifest")
    for path, data in ((args.local_manifest, local), (args.state_manifest, state)):
        if not isinstance(data, dict):
            raise CliError(f"{_show(path)}: not a flash manifest (expected a JSON object)")
    deployment = _load_deployment()
    flash_version = _modelled_flash(args)
    mode = "adopt" if args.adopt_missing_fingerprint else "update"
    try:
        plan = deployment.plan_reconciliation(local, state, missing_state_fingerprint=mode, flash_version=flash_version)
    except (ValueError, TypeError, KeyError) as e:
        raise CliError(f"{_show(args.local_manifest)}, {_show(args.state_manifest)}: cannot plan: {_describe(e)}") from None
    data = plan.to_dict()
    from . import scope

    notes = scope.plan_notes(local, state)  # scoped manifests: who keeps its fingerprint, why
    if notes:
        data["keeps_fingerprint"] = notes
    data["flash_version"] = flash_version
    if args.json:
        _emit_json({"command": "plan", **data})
    else:
        _print_plan(data)
        for name, why in notes.items():
            _out(f"  keeps fingerprint  {name}: {why}")
        _out(f"  (as runpod-flash {flash_version} deploys)")
    return EXIT_OK


def _print_plan(data: dict[str, Any]) -> None:
    provision, update, reuse, delete = (list(data.get(k) or ()) for k in ("provision", "update", "reuse", "delete"))
    adopted = set(data.get("adopted") or ())
    reasons = data.get("reasons") or {}
    _out(
        f"plan: {len(provision)} to provision, {len(update)} to update, "
        f"{len(reuse)} to reuse, {len(delete)} left running (only in the deployed manifest)"
    )
    for name in provision:
        _out(f"  provision  {name}  (not in the deployed manifest)")
    for name in update:
        _out(f"  update     {name}")
        for change in reasons.get(name) or ():
            _out(f"               {_change_line(change)}")
    for name in reuse:
        note = "  (adopted: deployed without a source fingerprint)" if name in adopted else ""
        _out(f"  reuse      {name}{note}")
    for name in delete:
        _out(f"  keep       {name}  (not in the local manifest: flash 1.21 marks it for deletion "
             "but deletes nothing; the endpoint keeps running)")


def _change_line(change: dict[str, Any]) -> str:
    kind = change.get("kind")
    if kind == "endpoint_missing":
        return "no endpoint in the deployed manifest"
    field = change.get("field") or "<whole config>"
    if kind == "added":
        return f"{field}: added {_fmt_value(change.get('new'))}"
    if kind == "removed":
        return f"{field}: removed (was {_fmt_value(change.get('old'))})"
    return f"{field}: {_fmt_value(change.get('old'))} -> {_fmt_value(change.get('new'))}"


# --------------------------------------------------------------------------
# argument parsing and the entry point


class _UsageError(Exception):
    def __init__(self, parser: argparse.ArgumentParser, message: str) -> None:
        super().__init__(message)
        self.parser = parser


class _Parser(argparse.ArgumentParser):
    """Usage errors are raised to main(), which reports them (also as JSON
    under --json) instead of argparse exiting from deep inside."""

    def error(self, message: str) -> Any:  # type: ignore[override]
        raise _UsageError(self, message)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(
        prog=PROG,
        description=(
            "Inspect a runpod-flash project exactly as `flash build` / `flash deploy` "
            "see it: source fingerprint, shipped files, whether the next deploy rolls "
            "the endpoints, and the deploy reconciliation plan."
        ),
        epilog=_epilog(None),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout (also after COMMAND)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, help_text: str, func: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name, help=help_text, description=help_text, epilog=_epilog(name),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.set_defaults(func=func)
        # SUPPRESS: an unset sub-level --json keeps the top-level one's value.
        p.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                       help="print one JSON document on stdout")
        return p

    p = add("fingerprint", "print the source_fingerprint `flash build` would write for DIR", cmd_fingerprint)
    p.add_argument("dir", metavar="DIR", nargs="?", default=".", help="project directory (default: .)")
    p.add_argument(
        "--index", metavar="FILE",
        help=f"also write each shipped file's size and SHA-256 to FILE, for `status` "
        f"(it reads DIR/{DEFAULT_INDEX_RELPATH.as_posix()} by default)",
    )

    p = add("files", "list the files `flash build` ships from DIR, sorted, one per line", cmd_files)
    p.add_argument("dir", metavar="DIR", nargs="?", default=".", help="project directory (default: .)")
    p.add_argument("-0", "--null", action="store_true", help="separate names with NUL instead of newline")

    p = add(
        "status",
        "compare DIR with the source_fingerprint in DIR/.flash/flash_manifest.json: "
        "does the next deploy roll the endpoints? (exit 0 no, 1 yes, 2 error)",
        cmd_status,
    )
    p.add_argument("dir", metavar="DIR", nargs="?", default=".", help="project directory (default: .)")
    p.add_argument(
        "--index", metavar="FILE",
        help=f"per-file index written by `fingerprint --index`, to list added, removed and "
        f"modified files (default: DIR/{DEFAULT_INDEX_RELPATH.as_posix()} when it exists)",
    )
    _add_flash_version(p)

    p = add("plan", "print the deploy reconciliation plan between a local and a state manifest", cmd_plan)
    p.add_argument("local_manifest", metavar="LOCAL_MANIFEST", help="the manifest `flash build` wrote (.flash/flash_manifest.json)")
    p.add_argument("state_manifest", metavar="STATE_MANIFEST", help="the manifest of the deployed build (State Manager)")
    p.add_argument(
        "--adopt-missing-fingerprint", action="store_true",
        help="migration mode: a deployed resource without a recorded source fingerprint "
        "adopts the local one instead of being updated",
    )
    _add_flash_version(p)
    return parser


def _add_flash_version(p: argparse.ArgumentParser) -> None:
    from ._patch import SUPPORTED_FLASH_VERSIONS
    from .deployment import DEFAULT_FLASH_VERSION

    p.add_argument(
        "--flash-version", metavar="X.Y.Z", default=None,
        help=f"the runpod-flash release whose deploy rules to follow ({SUPPORTED_FLASH_VERSIONS}; "
        f"before 1.21.0 client-mode resources get the fingerprint too). Default: the installed "
        f"runpod-flash, or {DEFAULT_FLASH_VERSION} without one",
    )


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
def _library_warnings_on_stderr() -> Iterator[None]:
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


_COMMANDS = ("fingerprint", "files", "status", "plan")


def _json_requested(argv: Sequence[str]) -> bool:
    """--json (or an abbreviation argparse accepts) anywhere before ``--``:
    known even when the command line does not parse."""
    for token in argv:
        if token == "--":
            return False
        if len(token) >= 3 and "--json".startswith(token):
            return True
    return False


def _command_of(argv: Sequence[str]) -> str | None:
    return next((t for t in argv if t in _COMMANDS), None)


def _fail(message: str, code: int, command: str | None, as_json: bool) -> int:
    """Report a failure: the line on stderr is already written; under --json
    also the one JSON document on stdout."""
    if as_json:
        try:
            _emit_json({"command": command, "error": message}, code)
            sys.stdout.flush()
        except (OSError, ValueError, CliError):
            _silence_stdout()
    return code


def main(argv: Sequence[str] | None = None) -> int:
    global _collected
    argv = list(sys.argv[1:] if argv is None else argv)
    as_json = _json_requested(argv)
    saved, _collected = _collected, []
    try:
        with _library_warnings_on_stderr():
            return _main(argv, as_json)
    finally:
        _collected = saved


def _main(argv: list[str], as_json: bool) -> int:
    command = _command_of(argv)
    _, delay_warning = _parse_progress_delay()
    if delay_warning:
        _warn(delay_warning, kind="progress_delay")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as e:
        e.parser.print_usage(sys.stderr)
        sys.stderr.write(f"{e.parser.prog}: error: {e}\n")
        return _fail(f"usage: {e}", EXIT_ERROR, command, as_json)
    as_json = bool(getattr(args, "json", False))
    command = args.command
    try:
        code = args.func(args)
        with _stdout_guard():
            sys.stdout.flush()
        return code
    except KeyboardInterrupt:
        sys.stderr.write(f"\n{PROG}: interrupted\n")
        return _fail("interrupted", EXIT_INTERRUPTED, command, as_json)
    except BrokenPipeError:
        # stdout closed early (`| head`): not an error worth a message.
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except Exception as e:  # noqa: BLE001 - every failure is one line, exit 2
        if os.environ.get(DEBUG_ENV, "").strip() not in ("", "0"):
            raise
        message = str(e) if isinstance(e, CliError) else _describe(e)
        sys.stderr.write(f"{PROG}: error: {message}\n")
        return _fail(message, EXIT_ERROR, command, as_json)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""Progress of a long blocking call on stderr, when stderr is a terminal."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from ._common import PROGRESS_DELAY_ENV


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


def _proc_rchar() -> int | None:
    """Bytes this process has read so far: ``rchar`` of /proc/self/io
    (Linux), None where the kernel does not say."""
    try:
        with open("/proc/self/io", "rb") as fh:
            for line in fh:
                if line.startswith(b"rchar:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def _bytes_read(native: bool) -> int | None:
    """The process's read counter (/proc/self/io); where there is none (macOS),
    the extension's count of what its hash read when ``native`` (the reads to
    follow are its), else None. The native hash is one call that releases the
    GIL, so this is how its progress shows from outside."""
    rchar = _proc_rchar()
    if rchar is not None or not native:
        return rchar
    from .. import _fingerprint

    return _fingerprint._bytes_read()


class Progress:
    """Reports a long blocking call on stderr.

    After ``delay`` seconds a daemon thread redraws one status line: the
    phase, the file count and, for hashing, bytes done of the total,
    percentage, rate and ETA (bytes done as the process's read counter
    moved, capped at the total); when the call ends the line is replaced by
    a summary. Nothing is written when stderr is not a terminal, or when the
    call ends before ``delay``.
    """

    SPIN = "|/-\\"

    def __init__(self, label: str, files: Sequence[Path] | None = None, *, reads: bool = False,
                 native: bool = True) -> None:
        self.label = label
        self.files = files
        self.reads = reads  # files not known in advance: show the bytes read so far
        self.native = native  # the extension does the reading (its counter stands in for /proc/self/io)
        self.enabled = _stderr_is_tty()
        self.delay = _progress_delay()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._shown = False
        self._total: int | None = None
        self._start = 0.0
        self._read0: int | None = None

    def __enter__(self) -> Progress:
        self._start = time.monotonic()
        self._read0 = _bytes_read(self.native) if self.enabled and (self.files is not None or self.reads) else None
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

    def _read_bytes(self) -> int | None:
        if self._read0 is None:
            return None
        now = _bytes_read(self.native)
        return None if now is None else max(0, now - self._read0)

    def _done_bytes(self) -> int | None:
        done = self._read_bytes() if self._total is not None else None
        return None if done is None or self._total is None else min(self._total, done)

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
        elif self.reads and (read := self._read_bytes()) is not None:
            parts.append(f"{_human_bytes(read)} read")
            if read > 0 and elapsed >= 0.5:
                parts.append(f"{_human_bytes(read / elapsed)}/s")
        parts.append(f"{elapsed:.1f} s")
        return parts[0] + " " + ", ".join(parts[1:])

    def _summary(self, elapsed: float) -> str:
        parts = [f"{self.label}: done"]
        if self.files is not None:
            parts.append(f"{len(self.files):,} files")
        if self._total is not None:
            parts.append(_human_bytes(self._total))
        elif self.reads and (read := self._read_bytes()) is not None:
            parts.append(f"{_human_bytes(read)} read")
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


def parse_progress_delay() -> tuple[float, str | None]:
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
    return parse_progress_delay()[0]

"""What stands in for Linux-only facilities elsewhere, exercised on Linux: the
extension's own read counter, which the progress line uses where the kernel
keeps no /proc/self/io (macOS)."""

from __future__ import annotations

from pathlib import Path

import pytest

from runpod_flash_native import _fingerprint, compute_source_fingerprint
from runpod_flash_native.cli import _progress


def _project(root: Path, sizes: list[int]) -> list[Path]:
    files = []
    for i, size in enumerate(sizes):
        path = root / f"f{i}.bin"
        path.write_bytes(bytes(range(256)) * (size // 256) + b"x" * (size % 256))
        files.append(path)
    return files


@pytest.mark.parametrize("sizes", [
    [0, 1, 300],                                                       # inline
    [_fingerprint._CHUNK_SIZE + 7, 3 * _fingerprint._THREAD_THRESHOLD, 5],  # reader threads
])
def test_native_read_counter_counts_the_bytes_hashed(tmp_path: Path, sizes: list[int]):
    files = _project(tmp_path, sizes)
    before = _fingerprint._bytes_read()
    compute_source_fingerprint(tmp_path, files)
    assert _fingerprint._bytes_read() - before == sum(sizes)


def _no_proc_io(monkeypatch: pytest.MonkeyPatch) -> None:
    """A kernel without /proc/self/io, as macOS; the progress thread armed
    but never drawing (stderr a terminal, an hour's delay)."""
    monkeypatch.setattr(_progress, "_proc_rchar", lambda: None)
    monkeypatch.setattr(_progress, "_stderr_is_tty", lambda: True)
    monkeypatch.setattr(_progress, "_progress_delay", lambda: 3600.0)


def test_progress_without_proc_io_counts_the_native_hash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    sizes = [4096, 2 * _fingerprint._THREAD_THRESHOLD]
    files = _project(tmp_path, sizes)
    _no_proc_io(monkeypatch)
    with _progress.Progress("hashing", files) as progress:
        compute_source_fingerprint(tmp_path, files)
        assert progress._read_bytes() == sum(sizes)
        progress._total = sum(sizes)
        assert "2.0 MiB of 2.0 MiB (100%)" in progress._line(1.0)


def test_progress_without_proc_io_shows_only_the_total_of_python_reads(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch):
    """Python's own reads (flash-native index) are not the extension's: no
    bytes-done figure rather than a wrong one."""
    files = _project(tmp_path, [8192])
    _no_proc_io(monkeypatch)
    with _progress.Progress("indexing", files, native=False) as progress:
        for f in files:
            f.read_bytes()
        compute_source_fingerprint(tmp_path, files)
        assert progress._read_bytes() is None
        progress._total = 8192
        line = progress._line(1.0)
    assert "8.0 KiB" in line and "%" not in line, line

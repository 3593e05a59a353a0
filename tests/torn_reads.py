"""Shared by the tests that change a file while the native code hashes it."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from runpod_flash_native import SourceChangedError

MiB = 1 << 20


def read_position(path: Path) -> int | None:
    """Offset of this process's open descriptor on path, or None (Linux /proc)."""
    target = os.path.realpath(path)
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == target:
                with open(f"/proc/self/fdinfo/{fd}") as fh:
                    return int(fh.readline().split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return None


def mutate_while_hashing(path: Path, size: int, mutate: Callable[[], None],
                         hash_call: Callable[[], object]) -> SourceChangedError | None:
    """Run hash_call() while another thread calls mutate() once the reader is
    64 MiB into path (of the given size). Returns the SourceChangedError, or
    None if hashing won the race; a SourceChangedError although nothing was
    changed fails the test."""
    done = threading.Event()
    mutated = []

    def mutator():
        deadline = time.monotonic() + 60
        while not done.is_set() and time.monotonic() < deadline:
            pos = read_position(path)
            if pos is not None and 64 * MiB <= pos < size:
                mutate()
                mutated.append(pos)
                return
            time.sleep(0.001)

    t = threading.Thread(target=mutator)
    t.start()
    error = None
    try:
        hash_call()
    except SourceChangedError as e:
        error = e
    finally:
        done.set()
        t.join()
    if error is not None:
        assert mutated, "SourceChangedError although nothing changed the file"
    return error

"""The command line as a new user meets it (issue 25): Ctrl-C during
``--index``, ``--index`` naming a directory, running from the wrong
directory, an index kept current by the build, the install hint, a closed
stdout, and the smaller rough edges. Driven in subprocesses as a user would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reference import PACKAGE_ROOT, sparse_file, sparse_hash_seconds_per_byte, sparse_size_for
from test_cli import PROG, _env, assert_one_line_error, flash_fingerprint, run, write, write_manifest


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "app"
    write(root, "worker.py", "print('worker')\n")
    write(root, "pkg/__init__.py", "")
    write(root, "pkg/util.py", "X = 1\n")
    return root


# ---------------------------------------------------------------------------
# 1. Ctrl-C is as prompt with --index as without


def _rchar(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/io").read_text().split("rchar:")[1].split()[0])
    except (OSError, IndexError, ValueError):
        return 0


def _seconds_to_stop_after_sigint(args: list[str], cwd: Path) -> tuple[float, int, str]:
    """Start the command, wait until it has read 64 MiB (it is hashing), send
    SIGINT; (seconds from SIGINT to exit, exit code, stderr)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "runpod_flash_native", *args],
        cwd=cwd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        for _ in range(1200):
            if _rchar(proc.pid) > 64 << 20 or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "finished before it could be interrupted"
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=600)
        return time.monotonic() - t0, proc.returncode, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="needs /proc/PID/io to see the hash start")
def test_ctrl_c_during_index_stops_as_promptly_as_without(project: Path, tmp_path: Path):
    """Same huge sparse file, SIGINT at the same point of the hash, with and
    without --index. Hashing the whole file takes `full` seconds (measured
    here); before the fix the --index run went on hashing the file in flight
    (about `full`), the plain run stops at once. Contrast, not a clock bound:
    the --index run may take longer than the plain one by a small part of
    `full` only."""
    per_byte = sparse_hash_seconds_per_byte(tmp_path)
    size = sparse_size_for(40.0, per_byte)
    full = size * per_byte
    sparse_file(project / "weights.bin", size)
    index = tmp_path / "index.json"
    plain, plain_code, plain_err = _seconds_to_stop_after_sigint(["fingerprint", str(project)], tmp_path)
    indexed, indexed_code, indexed_err = _seconds_to_stop_after_sigint(
        ["fingerprint", str(project), "--index", str(index)], tmp_path
    )
    assert (plain_code, indexed_code) == (130, 130), (plain_err, indexed_err)
    assert f"{PROG}: interrupted" in indexed_err and "Traceback" not in indexed_err
    assert indexed - plain < full / 8, (indexed, plain, full)
    assert not index.exists()
    assert not list(tmp_path.glob(".index.json.*"))


# ---------------------------------------------------------------------------
# 2. --index naming a directory


def test_index_naming_a_directory_is_one_line_and_leaves_nothing(project: Path, tmp_path: Path):
    target = tmp_path / "indexes"
    target.mkdir()
    before = sorted(tmp_path.rglob("*"))
    line = assert_one_line_error(run("fingerprint", project, "--index", target), str(target), "is a directory")
    assert str(target / "source_index.json") in line  # the fix: name a file
    assert ".tmp" not in line
    assert sorted(tmp_path.rglob("*")) == before  # no temporary file left, nothing written
    # status reading it: the same kind of line
    write_manifest(project, flash_fingerprint(project))
    assert_one_line_error(run("status", project, "--index", target), str(target), "is a directory")


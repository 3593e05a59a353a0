"""The command line as a new user meets it (issue 25): Ctrl-C during
``--index``, ``--index`` naming a directory, running from the wrong
directory, an index kept current by the build, the install hint, a closed
stdout, and the smaller rough edges. Driven in subprocesses as a user would."""

from __future__ import annotations

import json
import re
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



# ---------------------------------------------------------------------------
# 6. one rule for a closed stdout


def _run_with_closed_stdout(how: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``pipe``: stdout is a pipe whose reader has already left (every write
    fails, as after `| head` is done); ``closed``: no fd 1 at all (`>&-`)."""
    cmd = [sys.executable, "-m", "runpod_flash_native", *map(str, args)]
    if how == "closed":
        return subprocess.run(["sh", "-c", 'exec "$@" >&-', "sh", *cmd], cwd=PACKAGE_ROOT, env=_env(),
                              stderr=subprocess.PIPE, text=True, timeout=120)
    r, w = os.pipe()
    os.close(r)
    try:
        return subprocess.run(cmd, cwd=PACKAGE_ROOT, env=_env(), stdout=w, stderr=subprocess.PIPE,
                              text=True, timeout=120)
    finally:
        os.close(w)


@pytest.mark.parametrize("how", ["pipe", "closed"])
@pytest.mark.parametrize("mode", ["text", "json"])
def test_closed_stdout_is_exit_141_and_silent_everywhere(project: Path, tmp_path: Path, how: str, mode: str):
    write_manifest(project, flash_fingerprint(project))
    local = write(tmp_path, "local.json", json.dumps({"source_fingerprint": "a", "resources": {}}))
    flag = ["--json"] if mode == "json" else []
    commands = [
        ["fingerprint", project], ["files", project], ["status", project], ["plan", local, local],
        ["fingerprint", project, "--index", tmp_path / "i.json"],
    ]
    if mode == "text":
        commands += [["--help"], ["--version"], ["status", "--help"]]
    for args in commands:
        proc = _run_with_closed_stdout(how, *flag, *args)
        assert (proc.returncode, proc.stderr) == (141, ""), (args, proc.returncode, proc.stderr)
    write(project, "worker.py", "changed\n")  # status would exit 1: a closed stdout still wins
    proc = _run_with_closed_stdout(how, *flag, "status", project)
    assert (proc.returncode, proc.stderr) == (141, ""), proc.stderr


@pytest.mark.parametrize("how", ["pipe", "closed"])
def test_closed_stdout_keeps_a_failure_exit_2(tmp_path: Path, how: str):
    for flag in ([], ["--json"]):
        proc = _run_with_closed_stdout(how, *flag, "fingerprint", tmp_path / "missing")
        assert_one_line_error(proc, str(tmp_path / "missing"))


def test_help_documents_the_closed_stdout_rule():
    for args in (["--help"], ["files", "--help"]):
        text = run(*args).stdout
        assert re.search(r"^  141 +stdout closed", text, re.M), text

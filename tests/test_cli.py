"""The ``runpod-flash-native`` command line, driven in a subprocess as a user
would (``python -m runpod_flash_native``), checked against flash's own Python
implementation of the same answers."""

from __future__ import annotations

import errno
import io
import json
import logging
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runpod_flash_native import cli

from runpod_flash.cli.commands import build as flash_build
from runpod_flash.cli.utils import ignore as flash_ignore

# Where the imported (built) package lives; subprocesses must import the same one.
from reference import PACKAGE_ROOT

PROG = "runpod-flash-native"


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_ROOT), env.get("PYTHONPATH")]))
    env.pop("RUNPOD_FLASH_NATIVE_DEBUG", None)
    env.update(extra)
    return env


def run(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runpod_flash_native", *map(str, args)],
        # `python -m` puts the cwd first on sys.path: never the source checkout
        # when the package was pip-installed elsewhere.
        cwd=cwd or PACKAGE_ROOT, env=_env(**env), capture_output=True, text=True, timeout=60,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"{PROG}: error: "), lines[0]
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


# ---------------------------------------------------------------------------
# a project, and flash's own answers for it


def write(root: Path, rel: str, content: str | bytes = "x\n") -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


@pytest.fixture
def remove_after():
    """Files to delete when the test ends: multi-GiB sparse files would
    otherwise stay in pytest's kept temporary directories (the last three
    runs), and are real gigabytes where the filesystem has no holes."""
    paths: list[Path] = []
    yield paths.append
    for path in paths:
        path.unlink(missing_ok=True)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "app"
    write(root, "worker.py", "print('worker')\n")
    write(root, "pkg/__init__.py", "")
    write(root, "pkg/util.py", "def f(): return 1\n")
    write(root, "pkg/deep/data.json", '{"a": 1}\n')
    write(root, "README.md", "# app\n")
    write(root, "NOTES.md", "not shipped\n")
    write(root, "tests/test_worker.py", "def test(): pass\n")
    write(root, "cache/blob.bin", b"\0" * 100)
    write(root, "cache/keep.bin", b"\1" * 10)
    write(root, "logs/run.log", "log\n")
    write(root, ".env", "SECRET=1\n")
    write(root, ".env.local", "SECRET=2\n")
    write(root, ".gitignore", "*.bin\n!cache/keep.bin\nlogs/\n")
    return root


def flash_files(root: Path) -> list[Path]:
    return flash_ignore.get_file_tree(root, flash_ignore.load_ignore_patterns(root))


def flash_rel_files(root: Path) -> list[str]:
    return sorted(f.relative_to(root).as_posix() for f in flash_files(root))


def flash_fingerprint(root: Path) -> str:
    return flash_build.compute_source_fingerprint(root, flash_files(root))


def write_manifest(root: Path, fingerprint: str, **resources: dict) -> Path:
    resources = resources or {"cpu_worker": {"resource_type": "CpuLiveServerless"}}
    return write(
        root, ".flash/flash_manifest.json",
        json.dumps({"version": "1.0", "resources": resources, "source_fingerprint": fingerprint}),
    )


# ---------------------------------------------------------------------------
# help, usage


def test_help_documents_commands_and_exit_codes():
    proc = run("--help")
    assert proc.returncode == 0
    for word in ("fingerprint", "files", "status", "plan", "exit codes", "unchanged", "changed"):
        assert word in proc.stdout
    for code in ("0 ", "1 ", "2 "):
        assert f"\n  {code}" in proc.stdout
    status_help = run("status", "--help").stdout
    assert "--json" in status_help and "--index" in status_help and "exit codes" in status_help


def test_usage_error_exits_2():
    assert run().returncode == 2
    assert run("nosuch").returncode == 2
    assert run("files", "--bogus").returncode == 2


# ---------------------------------------------------------------------------
# fingerprint, files


def test_fingerprint_matches_flash(project: Path):
    expected = flash_fingerprint(project)
    proc = run("fingerprint", project)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == expected + "\n"
    assert proc.stderr == ""  # not a terminal: no progress


def test_fingerprint_defaults_to_cwd_and_json(project: Path):
    expected = flash_fingerprint(project)
    assert run("fingerprint", cwd=project).stdout.strip() == expected
    data = json.loads(run("fingerprint", "--json", cwd=project).stdout)
    assert data["source_fingerprint"] == expected
    assert data["file_count"] == len(flash_files(project))
    assert Path(data["project_dir"]) == project


def test_fingerprint_follows_changes(project: Path):
    before = run("fingerprint", project).stdout
    (project / "pkg/util.py").write_text("def f(): return 2\n")
    after = run("fingerprint", project).stdout
    assert before != after
    assert after.strip() == flash_fingerprint(project)
    # an ignored file does not count
    (project / "NOTES.md").write_text("changed\n")
    assert run("fingerprint", project).stdout == after


def test_files_is_flash_list_sorted(project: Path):
    expected = flash_rel_files(project)
    assert expected == [
        "README.md", "cache/keep.bin", "pkg/__init__.py", "pkg/deep/data.json", "pkg/util.py", "worker.py",
    ]
    proc = run("files", project)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == expected

    nul = subprocess.run(
        [sys.executable, "-m", "runpod_flash_native", "files", "-0", str(project)],
        cwd=PACKAGE_ROOT, env=_env(), capture_output=True, timeout=60,
    )
    assert nul.returncode == 0
    assert nul.stdout == b"".join(os.fsencode(p) + b"\0" for p in expected)

    data = json.loads(run("files", "--json", project).stdout)
    assert data["files"] == expected and data["count"] == len(expected)


def test_files_name_with_newline_survives_nul_mode(project: Path):
    write(project, "odd\nname.py", "")
    out = subprocess.run(
        [sys.executable, "-m", "runpod_flash_native", "files", "-0", str(project)],
        cwd=PACKAGE_ROOT, env=_env(), capture_output=True, timeout=60,
    ).stdout
    assert b"odd\nname.py" in out.split(b"\0")


# ---------------------------------------------------------------------------
# errors: one line naming the path, exit 2


def test_missing_directory(tmp_path: Path):
    missing = tmp_path / "nope"
    for command in ("fingerprint", "files", "status"):
        assert_one_line_error(run(command, missing), str(missing))
        proc = run(command, "--json", missing)
        assert_one_line_error(proc, str(missing))
        assert json.loads(proc.stdout)["error"]


def test_not_a_directory(project: Path):
    assert_one_line_error(run("files", project / "worker.py"), "worker.py", "not a directory")


def test_bad_gitignore_pattern_names_the_file(project: Path):
    write_manifest(project, "0" * 64)
    (project / ".gitignore").write_text("*.bin\n!\n")
    for command in ("fingerprint", "files", "status"):
        assert_one_line_error(run(command, project), str(project / ".gitignore"), "line 2")


def test_symlink_loop_names_the_link(project: Path):
    (project / "pkg" / "up").symlink_to("..", target_is_directory=True)
    assert_one_line_error(run("files", project), str(project / "pkg" / "up"))
    assert_one_line_error(run("fingerprint", project), str(project / "pkg" / "up"))


def test_library_warnings_are_warning_lines(project: Path):
    write(project, ".flashignore", "*.log\n")
    proc = run("files", project)
    assert proc.returncode == 0
    assert proc.stderr.splitlines() == [
        f"{PROG}: warning: .flashignore is no longer supported; patterns are now built-in. "
        "Move any custom patterns to .gitignore and delete .flashignore."
    ]


def run_inprocess(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI's main() in this process, stdout/stderr captured. For the
    permission tests: they run in a child forked as nobody (conftest's
    `unprivileged`), which cannot exec this interpreter under /root, nor
    import anything from it (site-packages and the stdlib live under the
    mode-700 /root in CI), so the caller runs the same command once as root
    first: every module the command imports lazily is then already loaded."""
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        code = cli.main([str(a) for a in args])
    finally:
        sys.stdout, sys.stderr = saved
    texts = []
    for stream in (out, err):
        stream.flush()
        texts.append(stream.buffer.getvalue().decode("utf-8"))
    return subprocess.CompletedProcess(list(args), code, texts[0], texts[1])


def test_unreadable_file_names_it(project: Path, unprivileged):
    target = project / "pkg/util.py"
    assert run_inprocess("fingerprint", project).returncode == 0  # imports, see run_inprocess
    target.chmod(0)
    proc = unprivileged(lambda: run_inprocess("fingerprint", project))
    assert_one_line_error(proc, str(target), "Permission denied")


def test_unreadable_directory_is_skipped_with_a_warning(project: Path, unprivileged):
    # flash skips an unreadable directory with a warning; so do we
    assert run_inprocess("files", project).returncode == 0  # imports, see run_inprocess
    (project / "pkg/deep").chmod(0)
    proc = unprivileged(lambda: run_inprocess("files", project))
    assert proc.returncode == 0, proc.stderr
    assert "pkg/deep/data.json" not in proc.stdout and "pkg/util.py" in proc.stdout
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{PROG}: warning: Permission denied: "), proc.stderr
    assert str(project / "pkg/deep") in lines[0]


def test_inprocess_main_leaves_logging_as_it_was(project: Path):
    # main() routes the library's warnings to the stderr of that call only:
    # a later call with another stderr gets its own lines, and the logger's
    # level, propagation and handlers are restored for the host program.
    (project / ".flashignore").write_text("x\n")
    logger = logging.getLogger("runpod_flash_native")
    before = logger.level, logger.propagate, list(logger.handlers)
    first = run_inprocess("files", project)
    assert logger.level == before[0] and logger.propagate is before[1]
    assert logger.handlers == before[2]
    second = run_inprocess("files", project)
    assert len(first.stderr.splitlines()) == 1 and ".flashignore" in first.stderr
    assert second.stderr == first.stderr


def test_non_utf8_file_name_is_named(project: Path):
    name = os.fsdecode(b"bad\xffname.py")
    write(project, name, "")
    err = assert_one_line_error(run("fingerprint", project), "bad\\xffname.py", "UTF-8")
    assert str(project) in err
    write_manifest(project, "0" * 64)  # status walks and hashes in one call: the same line
    assert assert_one_line_error(run("status", project), "bad\\xffname.py", "UTF-8") == err


# ---------------------------------------------------------------------------
# status


def test_status_without_manifest(project: Path):
    assert_one_line_error(run("status", project), str(project / ".flash/flash_manifest.json"), "flash build")


def test_status_manifest_errors(project: Path):
    path = write(project, ".flash/flash_manifest.json", "{not json")
    assert_one_line_error(run("status", project), str(path), "invalid JSON")
    path.write_text(json.dumps({"resources": {}}))
    assert_one_line_error(run("status", project), str(path), "source_fingerprint")


def test_status_unchanged_then_changed(project: Path):
    write_manifest(
        project, flash_fingerprint(project),
        gpu_worker={"resource_type": "LiveServerless"},
        api={"resource_type": "LoadBalancerSlsResource"},
        client={"resource_type": "LiveServerless", "client_mode": True},
    )
    proc = run("status", project)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("unchanged")

    (project / "worker.py").write_text("print('v2')\n")
    proc = run("status", project)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.startswith("changed")
    assert "rolls 2 endpoint(s): api, gpu_worker" in proc.stdout

    data = json.loads(run("status", "--json", project).stdout)
    assert data["status"] == "changed" and data["changed"] is True
    assert data["current_fingerprint"] == flash_fingerprint(project) != data["recorded_fingerprint"]
    assert data["rolls"] == ["api", "gpu_worker"]  # client-mode endpoints run their own image
    assert data["index"] is None


def test_status_ignores_ignored_changes(project: Path):
    write_manifest(project, flash_fingerprint(project))
    (project / "NOTES.md").write_text("edited\n")
    (project / "logs/run.log").write_text("more\n")
    write(project, "tests/test_new.py", "")
    assert run("status", project).returncode == 0


def test_status_with_index_lists_file_changes(project: Path, tmp_path: Path):
    write_manifest(project, flash_fingerprint(project))
    index = tmp_path / "idx" / "index.json"
    proc = run("fingerprint", "--index", index, project)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == flash_fingerprint(project)
    saved = json.loads(index.read_text())
    assert sorted(saved["files"]) == flash_rel_files(project)
    assert saved["files"]["worker.py"]["size"] == len("print('worker')\n")

    assert run("status", "--index", index, project).returncode == 0

    (project / "pkg/util.py").write_text("def f(): return 9\n")  # same size, new content
    (project / "worker.py").write_text("print('a longer worker')\n")
    (project / "pkg/deep/data.json").unlink()
    write(project, "pkg/new.py", "")
    proc = run("status", "--index", index, "--json", project)
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)["index"]
    assert report["added"] == ["pkg/new.py"]
    assert report["removed"] == ["pkg/deep/data.json"]
    assert report["modified"] == ["pkg/util.py", "worker.py"]
    assert report["matches_manifest"] is True

    text = run("status", "--index", index, project).stdout
    assert "added:     pkg/new.py" in text and "removed:   pkg/deep/data.json" in text
    assert "modified:  pkg/util.py" in text


def test_status_reads_default_index(project: Path):
    write_manifest(project, flash_fingerprint(project))
    assert run("fingerprint", "--index", ".flash/source_index.json", cwd=project).returncode == 0
    # .flash/ is ignored by flash: writing the index does not change the fingerprint
    assert run("status", project).returncode == 0
    (project / "worker.py").write_text("x = 1\n")
    data = json.loads(run("status", "--json", project).stdout)
    assert data["index"]["modified"] == ["worker.py"]


def test_status_missing_or_bad_index(project: Path, tmp_path: Path):
    write_manifest(project, flash_fingerprint(project))
    assert_one_line_error(run("status", "--index", tmp_path / "none.json", project), "none.json")
    bogus = write(tmp_path, "bogus.json", "[]")
    assert_one_line_error(run("status", "--index", bogus, project), str(bogus), "index")


def test_status_warns_about_secrets_and_outside_symlinks(project: Path, tmp_path: Path):
    write(project, ".env.production", "TOKEN=1\n")
    write(project, "conf/.env.staging", "TOKEN=2\n")
    write(project, ".env.example", "TOKEN=\n")
    outside = tmp_path / "outside"
    write(outside, "shared.py", "")
    (project / "ext").symlink_to(outside, target_is_directory=True)
    (project / "inner").symlink_to(project / "pkg", target_is_directory=True)
    write_manifest(project, flash_fingerprint(project))

    proc = run("status", project)
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith(f"{PROG}: warning: ")]
    assert len(warnings) == 3, proc.stderr
    assert any(".env.production" in w for w in warnings)
    assert any("conf/.env.staging" in w for w in warnings)
    assert any("ext" in w and str(outside) in w for w in warnings)
    assert ".env.example" not in proc.stderr and "inner" not in proc.stderr
    # .env and .env.local are ignored by flash: not shipped, no warning
    assert "'.env'" not in proc.stderr and ".env.local" not in proc.stderr

    data = json.loads(run("status", "--json", project).stdout)
    assert {(w["kind"], w["path"]) for w in data["warnings"]} == {
        ("secret", ".env.production"), ("secret", "conf/.env.staging"), ("symlink_outside", "ext"),
    }


# ---------------------------------------------------------------------------
# progress on a terminal, silence otherwise


def _run_with_tty_stderr(*args: str) -> tuple[int, str, str]:
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "runpod_flash_native", *map(str, args)],
            cwd=PACKAGE_ROOT, env=_env(RUNPOD_FLASH_NATIVE_PROGRESS_DELAY="0"),
            stdout=subprocess.PIPE, stderr=slave, text=True,
        )
    finally:
        os.close(slave)
    chunks = []
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 30)
            if not ready:
                break
            try:
                data = os.read(master, 4096)
            except OSError as e:  # EIO: the child closed the terminal
                if e.errno != errno.EIO:
                    raise
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
    out = proc.stdout.read()
    proc.stdout.close()
    return proc.wait(timeout=30), out, b"".join(chunks).decode("utf-8", "replace")


def test_progress_on_terminal_only(project: Path, remove_after):
    big = project / "weights.dat"
    remove_after(big)
    with open(big, "wb") as fh:
        fh.truncate(96 << 20)  # sparse: cheap to write, 96 MB to hash
    code, out, tty = _run_with_tty_stderr("fingerprint", project)
    assert code == 0
    assert out.strip() == flash_fingerprint(project)
    assert "hashing" in tty and "files" in tty and "MiB" in tty, tty
    assert "/s" in tty  # the rate, in the final summary

    plain = run("fingerprint", project, RUNPOD_FLASH_NATIVE_PROGRESS_DELAY="0")
    assert plain.returncode == 0 and plain.stderr == ""


def test_status_progress_shows_bytes_read_of_its_one_pass(project: Path, remove_after):
    remove_after(project / "weights.dat")
    with open(project / "weights.dat", "wb") as fh:
        fh.truncate(64 << 20)
    write_manifest(project, flash_fingerprint(project))
    code, out, tty = _run_with_tty_stderr("status", project)
    assert code == 0 and out.startswith("unchanged"), (out, tty)
    lines = [chunk.replace("\x1b[K", "") for chunk in tty.replace("\r", "\n").splitlines()]
    label = f"walking and hashing {project}"
    assert any(re.match(rf"^{re.escape(label)} . [\d.]+ (B|KiB|MiB) read, ", line) for line in lines), tty
    assert any(re.match(rf"^{re.escape(label)}: done, [\d.]+ (B|KiB|MiB) read, ", line) for line in lines), tty


# ---------------------------------------------------------------------------
# plan


def test_plan_missing_manifest(tmp_path: Path):
    state = write(tmp_path, "state.json", "{}")
    assert_one_line_error(run("plan", tmp_path / "local.json", state), str(tmp_path / "local.json"))
    local = write(tmp_path, "local.json", "{}")
    bad = write(tmp_path, "bad.json", "{")
    assert_one_line_error(run("plan", local, bad), str(bad))


def _plan_manifests(tmp_path: Path) -> tuple[Path, Path]:
    fp = "f" * 64

    def cfg(**extra):
        return {"resource_type": "LiveServerless", "workersMax": 1, **extra}

    local = {
        "source_fingerprint": fp,
        "resources": {
            "api": cfg(workersMax=3),
            "same": cfg(),
            "fresh": cfg(),
            "lost": cfg(),
            "legacy": cfg(),
            "client": cfg(client_mode=True),
        },
    }
    deployed_env = {"env": {"_FLASH_SOURCE_FINGERPRINT": fp}}
    state = {
        "resources": {
            "api": cfg(**deployed_env, endpoint_id="ep-api"),
            "same": cfg(**deployed_env, endpoint_id="ep-same"),
            "lost": cfg(**deployed_env),
            "legacy": cfg(endpoint_id="ep-legacy"),  # deployed before fingerprints
            "client": cfg(client_mode=True),
            "gone": cfg(**deployed_env),
        },
        "resources_endpoints": {n: f"https://{n}" for n in ("api", "same", "legacy", "client", "gone")},
    }
    return (
        write(tmp_path, "local.json", json.dumps(local)),
        write(tmp_path, "state.json", json.dumps(state)),
    )


def test_plan_json_and_text(tmp_path: Path):
    local, state = _plan_manifests(tmp_path)
    proc = run("plan", "--json", local, state)
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)
    assert plan["provision"] == ["fresh"]
    assert plan["update"] == ["api", "legacy", "lost"]
    assert plan["reuse"] == ["client", "same"]
    assert plan["delete"] == ["gone"]
    assert plan["reasons"]["api"] == [
        {"kind": "changed", "field": "workersMax", "path": ["workersMax"], "old": 1, "new": 3}
    ]
    assert [r["kind"] for r in plan["reasons"]["lost"]] == ["endpoint_missing"]
    assert plan["reasons"]["legacy"][0]["field"] == "env"

    text = run("plan", local, state)
    assert text.returncode == 0, text.stderr
    out = text.stdout
    assert out.splitlines()[0] == (
        "plan: 1 to provision, 3 to update, 2 to reuse, 1 left running (only in the deployed manifest)"
    )
    assert "workersMax: 1 -> 3" in out
    assert "no endpoint in the deployed manifest" in out
    assert "provision  fresh" in out and "keep       gone  (not in the local manifest: flash 1.21 marks it for deletion but deletes nothing; the endpoint keeps running)" in out and "reuse      same" in out
    # the input files are not modified (the planner injects into its own copy)
    assert "_FLASH_SOURCE_FINGERPRINT" not in local.read_text()


def test_plan_adopt_missing_fingerprint(tmp_path: Path):
    local, state = _plan_manifests(tmp_path)
    plan = json.loads(run("plan", "--json", "--adopt-missing-fingerprint", local, state).stdout)
    assert plan["update"] == ["api", "lost"]
    assert "legacy" in plan["reuse"] and plan["adopted"] == ["legacy"]
    text = run("plan", "--adopt-missing-fingerprint", local, state).stdout
    assert "reuse      legacy  (adopted" in text


def test_plan_bad_manifest_shape(tmp_path: Path):
    local = write(tmp_path, "local.json", json.dumps({"resources": {"a": "not a dict"}}))
    state = write(tmp_path, "state.json", json.dumps({"resources": {}}))
    assert_one_line_error(run("plan", local, state), str(local))
    array = write(tmp_path, "array.json", "[]")
    assert_one_line_error(run("plan", local, array), str(array), "JSON object")


# ---------------------------------------------------------------------------
# status: what rolls, where the index goes, an unusable default index


def test_status_exits_0_when_no_endpoint_takes_source_changes(project: Path):
    write_manifest(project, "0" * 64, client={"resource_type": "LiveServerless", "client_mode": True})
    proc = run("status", project)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("changed")
    assert "no endpoint in the manifest takes source changes" in proc.stdout
    data = json.loads(run("status", "--json", project).stdout)
    assert data["changed"] is True and data["rolls"] == [] and data["exit_code"] == 0

    # no resource at all: nothing can roll either
    write(project, ".flash/flash_manifest.json", json.dumps({"resources": {}, "source_fingerprint": "0" * 64}))
    assert run("status", project).returncode == 0

    # one endpoint that takes the source: the deploy rolls it
    write_manifest(project, "0" * 64, gpu={"resource_type": "LiveServerless"})
    proc = run("status", "--json", project)
    assert proc.returncode == 1 and json.loads(proc.stdout)["exit_code"] == 1


def test_status_from_elsewhere_suggests_a_command_that_writes_dir_index(project: Path):
    """Run from the project's parent: the suggested command, run as printed
    from there, writes the index `status app` then reads."""
    parent = project.parent
    write_manifest(project, flash_fingerprint(project))
    (project / "worker.py").write_text("print('v2')\n")
    proc = run("status", "app", cwd=parent)
    assert proc.returncode == 1, proc.stderr
    [hint] = [line for line in proc.stdout.splitlines() if "save an index" in line]
    suggested = hint.split("`")[1]
    assert suggested == f"{PROG} fingerprint app --index app/.flash/source_index.json"

    # the user rebuilds (here: records the current fingerprint), runs the suggestion...
    write_manifest(project, flash_fingerprint(project))
    assert run(*suggested.split()[1:], cwd=parent).returncode == 0
    assert (project / ".flash/source_index.json").is_file()
    assert not (parent / ".flash").exists()
    # ...and the next change is listed file by file
    (project / "pkg/util.py").write_text("def f(): return 2\n")
    proc = run("status", "app", cwd=parent)
    assert proc.returncode == 1
    assert "modified:  pkg/util.py" in proc.stdout

    # from inside the project the suggestion stays short
    (project / ".flash/source_index.json").unlink()
    proc = run("status", cwd=project)
    assert f"`{PROG} fingerprint --index .flash/source_index.json`" in proc.stdout


@pytest.mark.parametrize("content", ["{not json", '{"format": "something-else", "files": {}}', "\xff"])
def test_status_unusable_default_index_is_a_warning(project: Path, content: str):
    write_manifest(project, "0" * 64, gpu={"resource_type": "LiveServerless"})
    index = write(project, ".flash/source_index.json", content.encode("latin-1"))
    proc = run("status", project)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.startswith("changed") and "rolls 1 endpoint(s): gpu" in proc.stdout
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{PROG}: warning: {index}: "), proc.stderr
    assert "comparing fingerprints only" in lines[0]

    data = json.loads(run("status", "--json", project).stdout)
    assert data["index"] is None and data["exit_code"] == 1
    assert [(w["kind"], w["path"]) for w in data["warnings"]] == [("index", str(index))]

    # asked for explicitly, the same file is an error
    assert_one_line_error(run("status", "--index", index, project), str(index))


# ---------------------------------------------------------------------------
# --json: one document for every outcome

COMMON_KEYS = {"command", "exit_code", "warnings"}


def test_json_success_documents_have_the_documented_keys(project: Path, tmp_path: Path):
    index = project / ".flash/source_index.json"
    fp = json.loads(run("fingerprint", "--json", "--index", index, project).stdout)
    assert set(fp) == COMMON_KEYS | {"project_dir", "source_fingerprint", "file_count", "index"}
    assert fp["command"] == "fingerprint" and fp["exit_code"] == 0 and fp["warnings"] == []
    assert fp["index"] == {"path": str(index), "source_fingerprint": flash_fingerprint(project)}

    files = json.loads(run("files", "--json", project).stdout)
    assert set(files) == COMMON_KEYS | {"project_dir", "count", "files"}

    write_manifest(project, flash_fingerprint(project))
    status = json.loads(run("status", "--json", project).stdout)
    assert set(status) == COMMON_KEYS | {
        "project_dir", "manifest", "status", "changed", "recorded_fingerprint",
        "current_fingerprint", "file_count", "rolls", "index",
        "scoped_rolls", "fingerprint_mode", "global_fingerprint_rolls", "endpoints", "flash_version",
    }
    # "index" is an object in both commands, naming the same file
    assert isinstance(status["index"], dict) and status["index"]["path"] == fp["index"]["path"]
    assert set(status["index"]) == {"path", "source_fingerprint", "matches_manifest", "added", "removed", "modified"}

    local, state = _plan_manifests(tmp_path)
    plan = json.loads(run("plan", "--json", local, state).stdout)
    assert set(plan) == COMMON_KEYS | {"provision", "update", "reuse", "delete", "adopted", "reasons", "flash_version"}


def test_json_before_the_command(project: Path):
    proc = run("--json", "files", project)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["files"] == flash_rel_files(project)
    assert json.loads(run("--json", "fingerprint", project).stdout)["source_fingerprint"] == flash_fingerprint(project)


@pytest.mark.parametrize(
    "args, command",
    [
        (["plan", "--json", "local.json"], "plan"),
        (["--json"], None),
        (["--json", "nosuch"], None),
        (["files", "--json", "--bogus"], "files"),
    ],
)
def test_json_usage_errors_are_json(args: list[str], command: str | None):
    proc = run(*args)
    assert proc.returncode == 2
    doc = json.loads(proc.stdout)
    assert set(doc) == COMMON_KEYS | {"error"}
    assert doc["command"] == command and doc["exit_code"] == 2 and doc["error"].startswith("usage: ")
    assert "usage:" in proc.stderr  # the human form is still there


def test_json_failure_is_json(tmp_path: Path):
    proc = run("--json", "fingerprint", tmp_path / "missing")
    line = assert_one_line_error(proc, str(tmp_path / "missing"))
    doc = json.loads(proc.stdout)
    assert doc == {"command": "fingerprint", "error": line.split("error: ", 1)[1], "exit_code": 2, "warnings": []}


def test_json_ctrl_c_is_json(project: Path, remove_after):
    """SIGINT in the middle of a 16 GiB hash (sparse: no disk): exit 130,
    and the interruption is the JSON document."""
    remove_after(project / "weights.dat")
    with open(project / "weights.dat", "wb") as fh:
        fh.truncate(16 << 30)
    proc = subprocess.Popen(
        [sys.executable, "-m", "runpod_flash_native", "fingerprint", "--json", str(project)],
        cwd=PACKAGE_ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        # wait until it has read 64 MiB: it is hashing
        io_file = Path(f"/proc/{proc.pid}/io")
        for _ in range(600):
            try:
                rchar = int(io_file.read_text().split("rchar:")[1].split()[0])
            except (OSError, IndexError, ValueError):
                rchar = 0
            if rchar > 64 << 20 or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "finished before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert json.loads(out) == {"command": "fingerprint", "error": "interrupted", "exit_code": 130, "warnings": []}
    assert f"{PROG}: interrupted" in err


def test_json_collects_unreadable_directory_warning(project: Path, unprivileged):
    assert run_inprocess("--json", "files", project).returncode == 0  # imports, see run_inprocess
    (project / "pkg/deep").chmod(0)
    proc = unprivileged(lambda: run_inprocess("--json", "files", project))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert "pkg/deep/data.json" not in doc["files"]
    [warning] = doc["warnings"]
    assert warning["kind"] == "unreadable_directory" and warning["path"] == str(project / "pkg/deep")
    assert proc.stderr.splitlines() == [f"{PROG}: warning: {warning['message']}"]


def test_json_collects_secret_warnings(project: Path):
    write(project, ".env.production", "TOKEN=x\n")
    write_manifest(project, flash_fingerprint(project))
    doc = json.loads(run("status", "--json", project).stdout)
    [warning] = doc["warnings"]
    assert warning["kind"] == "secret" and warning["path"] == ".env.production"
    assert "looks like a secret" in warning["message"]


# ---------------------------------------------------------------------------
# help, stdout errors, progress, pattern display


def test_each_help_lists_only_its_exit_codes():
    helps = {cmd: run(cmd, "--help").stdout for cmd in ("fingerprint", "files", "status", "plan")}
    for cmd, text in helps.items():
        codes = text.split("exit codes:", 1)[1].split("\n\n", 1)[0]
        listed = [line.split()[0] for line in codes.splitlines() if line.startswith("  ") and line.split()[0].isdigit()]
        assert listed == (["0", "1", "2", "130", "141"] if cmd == "status" else ["0", "2", "130", "141"]), (cmd, codes)
        if cmd != "status":
            assert "`status`" not in codes and "roll" not in codes, (cmd, codes)


def test_stdout_write_failure_says_stdout(project: Path):
    with open("/dev/full", "w") as full:
        proc = subprocess.run(
            [sys.executable, "-m", "runpod_flash_native", "files", str(project)],
            cwd=PACKAGE_ROOT, env=_env(), stdout=full, stderr=subprocess.PIPE, text=True, timeout=60,
        )
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [f"{PROG}: error: cannot write to stdout: No space left on device"]


def test_progress_shows_bytes_done_percentage_rate_and_eta(project: Path, remove_after):
    remove_after(project / "weights.dat")
    with open(project / "weights.dat", "wb") as fh:
        # sparse: 1.5 GiB to hash, nothing on disk; the rate shows from 0.5 s
        # on, and 512 MiB hashed in 0.46 s here
        fh.truncate(1536 << 20)
    code, out, tty = _run_with_tty_stderr("fingerprint", project)
    assert code == 0
    assert out.strip() == flash_fingerprint(project)
    lines = [chunk.replace("\x1b[K", "") for chunk in tty.replace("\r", "\n").splitlines()]
    n = len(flash_files(project))
    pattern = re.compile(
        rf"^hashing . {n} files, ([\d.]+) (B|KiB|MiB|GiB) of 1\.5 GiB \((\d+)%\), [\d.]+ (KiB|MiB|GiB)/s, ETA \d+ (s|min)"
    )
    moving = [m for m in map(pattern.match, lines) if m]
    assert moving, tty
    assert all(0 <= int(m.group(3)) <= 100 for m in moving)
    assert any(0 < int(m.group(3)) for m in moving), tty
    assert any(line.startswith(f"hashing: done, {n} files, 1.5 GiB, ") and line.endswith("/s") for line in lines), tty


@pytest.mark.parametrize("value", ["abc", "-1", "nan"])
def test_invalid_progress_delay_is_one_warning(project: Path, value: str):
    proc = run("fingerprint", project, RUNPOD_FLASH_NATIVE_PROGRESS_DELAY=value)
    assert proc.returncode == 0
    assert proc.stdout.strip() == flash_fingerprint(project)
    assert proc.stderr.splitlines() == [
        f"{PROG}: warning: RUNPOD_FLASH_NATIVE_PROGRESS_DELAY={value!r} is not a number of seconds >= 0; using 1"
    ]
    assert run("fingerprint", project, RUNPOD_FLASH_NATIVE_PROGRESS_DELAY="2.5").stderr == ""


def test_bad_pattern_is_shown_as_written(project: Path):
    gitignore = write(project, ".gitignore", "*.log\nfoo\\ \n")
    with pytest.raises(ValueError):  # flash strips the line to `foo\`, which pathspec rejects
        flash_ignore.load_ignore_patterns(project)
    line = assert_one_line_error(run("files", project), str(gitignore))
    assert "Invalid git pattern: 'foo\\ ' (.gitignore line 2)" in line, line
    assert "'foo\\\\'" not in line


# ---------------------------------------------------------------------------
# per-endpoint status and scoped manifests (issue 14), on the command line

SCOPED_APP = {
    "a.py": "import only_a\nimport shared.util\n",
    "b.py": "import only_b\n",
    "shared/__init__.py": "",
    "shared/util.py": "X = 1\n",
    "only_a.py": "",
    "only_b.py": "",
    "config.json": "{}\n",
    "README.md": "# app\n",
}


def _endpoint(module: str) -> dict:
    return {"module_path": module, "file_path": f"{module}.py",
            "functions": [{"name": f"f_{module}", "module": module}]}


def scoped_app(root: Path, *, scoped: bool) -> dict:
    """Two endpoints (A imports only_a and shared, B only_b) and a client-mode
    resource, with the manifest `flash build` writes (the scoped one
    `FLASH_NATIVE_SCOPED_ROLLS=1` makes when ``scoped``)."""
    from runpod_flash_native import scope
    from runpod_flash_native.build import fingerprint_project_files

    for rel, content in SCOPED_APP.items():
        if not (root / rel).exists():
            write(root, rel, content)
    files, fp = fingerprint_project_files(root)
    manifest = {
        "version": "1.0",
        "resources": {"A": _endpoint("a"), "B": _endpoint("b"), "C": {"client_mode": True, "imageName": "x"}},
        "source_fingerprint": fp,
    }
    if scoped:
        assert scope.apply_scoped_fingerprints(root, files, manifest, enabled=True)
    write(root, ".flash/flash_manifest.json", json.dumps(manifest))
    return manifest


def append(root: Path, rel: str) -> None:
    with open(root / rel, "a") as fh:
        fh.write("# edited\n")


def test_status_says_per_endpoint_what_flash_rolls_and_whose_code_changed(tmp_path: Path):
    root = tmp_path / "app"
    scoped_app(root, scoped=False)
    assert run("fingerprint", "--index", ".flash/source_index.json", cwd=root).returncode == 0
    append(root, "README.md")
    proc = run("status", "--json", root)
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    assert report["fingerprint_mode"] == "global"
    assert report["rolls"] == ["A", "B"] and report["scoped_rolls"] == ["A", "B"]  # README is in every scope
    for name in "AB":
        ep = report["endpoints"][name]
        assert ep["flash_rolls"] and ep["scope_changed"] and not ep["own_code_changed"]
        assert ep["changed_files"] == ["README.md"]
    text = run("status", root).stdout
    assert "A: next deploy rolls it: yes; own code changed: no; scope changed: yes" in text
    assert "changed in its scope: README.md" in text
    assert "the next deploy rolls 2 endpoint(s), none of their code changed" in text

    append(root, "only_a.py")
    report = json.loads(run("status", "--json", root).stdout)
    a, b = report["endpoints"]["A"], report["endpoints"]["B"]
    assert a["own_code_changed"] and a["changed_files"] == ["README.md", "only_a.py"]
    assert not b["own_code_changed"] and b["changed_files"] == ["README.md"]
    text = run("status", root).stdout
    assert "A: next deploy rolls it: yes; own code changed: yes" in text
    assert "none of their code changed" not in text


def test_status_scoped_manifest_rolls_only_the_changed_scope(tmp_path: Path):
    root = tmp_path / "app"
    scoped_app(root, scoped=True)
    proc = run("status", "--json", root)
    assert proc.returncode == 0 and json.loads(proc.stdout)["rolls"] == []
    append(root, "only_b.py")
    proc = run("status", "--json", root)
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    assert report["fingerprint_mode"] == "scoped"
    assert report["rolls"] == report["scoped_rolls"] == ["B"]
    # one answer per endpoint: what the next deploy of this (scoped) build rolls
    assert [n for n, ep in report["endpoints"].items() if ep["flash_rolls"]] == ["B"]
    assert [n for n, ep in report["endpoints"].items() if ep["rolls"]] == ["B"]
    assert report["global_fingerprint_rolls"] == ["A", "B"]  # labelled: flash's global fingerprint
    assert report["endpoints"]["A"]["own_code_changed"] is False
    text = run("status", root)
    assert text.returncode == 1
    assert "the next deploy rolls 1 endpoint(s): B" in text.stdout
    assert "A keep(s) its fingerprint" in text.stdout


def test_plan_says_which_scoped_resources_keep_their_fingerprint_and_why(tmp_path: Path):
    root = tmp_path / "app"
    deployed = scoped_app(root, scoped=True)
    deployed["resources_endpoints"] = {n: f"https://{n}" for n in "ABC"}
    append(root, "only_a.py")
    local = scoped_app(root, scoped=True)  # the next build, A's own module edited
    local_path = write(tmp_path, "local.json", json.dumps(local))
    state_path = write(tmp_path, "state.json", json.dumps(deployed))
    proc = run("plan", "--json", local_path, state_path)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["update"] == ["A"] and data["reuse"] == ["B", "C"]
    assert set(data["keeps_fingerprint"]) == {"B"}
    assert "only_a.py" in data["keeps_fingerprint"]["B"]  # why: its scope leaves the edit out
    text = run("plan", local_path, state_path).stdout
    assert "keeps fingerprint  B: no file in its scope changed (scope leaves out" in text
    assert "update     A" in text and "env._FLASH_SOURCE_FINGERPRINT" in text


def test_status_walks_and_hashes_in_one_native_call(project: Path, monkeypatch):
    # the two-pass route (walk, then hash the list) is not taken by status
    from runpod_flash_native import build, ignore

    write_manifest(project, flash_fingerprint(project))

    def two_pass(*args, **kwargs):
        raise AssertionError("status walked and hashed in two passes")

    monkeypatch.setattr(ignore, "get_file_tree", two_pass)
    monkeypatch.setattr(build, "compute_source_fingerprint", two_pass)
    proc = run_inprocess("status", "--json", project)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["current_fingerprint"] == flash_fingerprint(project)

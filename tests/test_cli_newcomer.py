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
from test_cli import PROG, _env, remove_after, assert_one_line_error, flash_fingerprint, run, write, write_manifest


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
def test_ctrl_c_during_index_stops_as_promptly_as_without(project: Path, tmp_path: Path, remove_after):
    """Same huge sparse file, SIGINT at the same point of the hash, with and
    without --index. Hashing the whole file takes `full` seconds (measured
    here); before the fix the --index run went on hashing the file in flight
    (about `full`), the plain run stops at once. Contrast, not a clock bound:
    the --index run may take longer than the plain one by a small part of
    `full` only."""
    per_byte = sparse_hash_seconds_per_byte(tmp_path)
    size = sparse_size_for(40.0, per_byte)
    full = size * per_byte
    remove_after(project / "weights.bin")
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


# ---------------------------------------------------------------------------
# 3. the wrong directory: flash's "Not a valid Flash project", and the
#    project found above the current directory


def _layouts(tmp_path: Path) -> dict[str, Path]:
    """Directories flash's own check accepts or refuses, by its rule (some
    ``*.py`` anywhere below, ignored or not)."""
    made = {}
    for name in ("empty", "data_only", "py_in_ignored_dir", "py_deep", "py_named_dir", "broken_py_link", "plain"):
        made[name] = (tmp_path / "layouts" / name)
        made[name].mkdir(parents=True)
    write(made["data_only"], "data/x.csv", "1,2\n")
    write(made["data_only"], "README.md", "hi\n")
    write(made["py_in_ignored_dir"], ".venv/lib/site.py", "")
    write(made["py_in_ignored_dir"], "notes.txt", "")
    write(made["py_deep"], "a/b/c/d.py", "")
    (made["py_named_dir"] / "pkg.py").mkdir()
    write(made["py_named_dir"], "pkg.py/data.txt", "")
    os.symlink("nowhere", made["broken_py_link"] / "gone.py")
    write(made["plain"], "main.py", "print(1)\n")
    return made


def test_not_a_flash_project_is_flashs_own_check(tmp_path: Path, capsys):
    from runpod_flash.cli.commands import build as flash_build

    for name, root in _layouts(tmp_path).items():
        flash_accepts = flash_build.validate_project_structure(root)
        capsys.readouterr()
        fp = run("fingerprint", root)
        files = run("files", root)
        assert files.returncode == 0, (name, files.stderr)
        if flash_accepts:
            assert fp.returncode == 0 and fp.stdout.strip() == flash_fingerprint(root), (name, fp.stderr)
            assert "not a Flash project" not in files.stderr, name
        else:
            assert_one_line_error(fp, str(root), "not a Flash project", "Not a valid Flash project")
            assert f"{PROG}: warning: {root}: not a Flash project" in files.stderr, (name, files.stderr)
            doc = json.loads(run("files", root, "--json").stdout)
            assert [w["kind"] for w in doc["warnings"]] == ["not_a_flash_project"], name
        # run from inside it (DIR omitted): the same answer
        inside = run("fingerprint", cwd=root)
        assert inside.returncode == (0 if flash_accepts else 2), (name, inside.stderr)


def test_commands_find_the_project_above_the_current_directory(project: Path, tmp_path: Path):
    """From a subdirectory of a built project, as git finds .git: the project
    is the nearest directory above holding .flash/, and stderr says which."""
    write_manifest(project, flash_fingerprint(project))
    sub = project / "pkg"
    note = f"{PROG}: project {project} "
    fp = run("fingerprint", cwd=sub)
    assert fp.returncode == 0 and fp.stdout.strip() == flash_fingerprint(project), fp.stderr
    assert fp.stderr.startswith(note), fp.stderr
    st = run("status", cwd=sub)
    assert st.returncode == 0 and st.stdout.startswith(f"unchanged: {project} matches"), (st.stdout, st.stderr)
    assert st.stderr.startswith(note)
    files = run("--json", "files", cwd=sub)
    assert json.loads(files.stdout)["project_dir"] == str(project)
    write(project, "worker.py", "print('changed')\n")
    st = run("status", cwd=sub)
    # the command that writes the index is runnable from where the user is
    assert f"{PROG} fingerprint .. --index ../.flash/source_index.json" in st.stdout, st.stdout
    # an explicit DIR is taken as given, and the error says where the manifest is
    explicit = run("status", sub)
    assert_one_line_error(explicit, f"{sub}/.flash/flash_manifest.json", "no manifest", f"{project} has one")
    # the current directory when it has .flash/ itself, or nothing above has one
    assert run("--json", "files", cwd=project).stdout and json.loads(run("--json", "files", cwd=project).stdout)["project_dir"] == str(project)
    # every flash command leaves .flash/logs/ where it ran: that is no project
    (tmp_path / "outer" / ".flash" / "logs").mkdir(parents=True)
    lone = tmp_path / "outer" / "lone"
    write(lone, "m.py", "")
    proc = run("fingerprint", cwd=lone)
    assert proc.returncode == 0 and proc.stderr == "" and proc.stdout.strip() == flash_fingerprint(lone)


# ---------------------------------------------------------------------------
# 4. flash-native build keeps .flash/source_index.json current; a stale
#    index says how to refresh it

_APP = {
    "a_worker.py": (
        "from runpod_flash import Endpoint\n\n\n"
        '@Endpoint(name="a_worker", cpu="cpu3c-1-2")\n'
        "async def a_task(data: dict) -> dict:\n"
        "    return {'a': data}\n"
    ),
    "lib/__init__.py": "",
    "lib/util.py": "X = 1\n",
    "README.md": "# app\n",
}


def _build(root: Path, *, native: bool, scoped: bool = False) -> subprocess.CompletedProcess[str]:
    code = "import sys; from runpod_flash_native.patch.main import main; sys.exit(main(['build']))"
    argv = [sys.executable, "-c", code] if native else [sys.executable, "-m", "runpod_flash.cli.main", "build"]
    env = _env(HOME=str(root.parent), XDG_CONFIG_HOME=str(root.parent / "cfg"),
               FLASH_NO_UPDATE_CHECK="1", RUNPOD_FLASH_SILENCE_DEPRECATION="1")
    env.pop("FLASH_NATIVE_SCOPED_ROLLS", None)
    if scoped:
        env["FLASH_NATIVE_SCOPED_ROLLS"] = "1"
    proc = subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    return proc


@pytest.fixture
def app(tmp_path: Path) -> Path:
    root = tmp_path / "app"
    for name, text in _APP.items():
        write(root, name, text)
    return root


def _index_of(root: Path) -> dict:
    return json.loads((root / ".flash" / "source_index.json").read_text())


def test_flash_native_build_keeps_the_index_current(app: Path):
    import hashlib

    from runpod_flash_native import scope

    _build(app, native=True)
    manifest = json.loads((app / ".flash" / "flash_manifest.json").read_text())
    index = _index_of(app)
    assert index["source_fingerprint"] == manifest["source_fingerprint"] == flash_fingerprint(app)
    assert index["files"] == {
        name: {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        for name, data in ((n, (app / n).read_bytes()) for n in sorted(_APP))
    }
    # the index is what status reads: an edit shows as the modified file
    write(app, "lib/util.py", "X = 2\n")
    st = json.loads(run("status", app, "--json").stdout)
    assert st["index"]["matches_manifest"] and st["index"]["modified"] == ["lib/util.py"]
    # the next build refreshes it: unchanged, nothing listed, no stale note
    _build(app, native=True)
    st = run("status", app)
    assert st.returncode == 0 and st.stdout.startswith("unchanged:"), st.stdout
    assert "different build" not in st.stdout and "modified" not in st.stdout, st.stdout
    assert _index_of(app)["files"]["lib/util.py"]["size"] == len("X = 2\n")
    assert flash_fingerprint(app) == _index_of(app)["source_fingerprint"]  # .flash/ is not shipped

    # a scoped build: the index holds flash's global fingerprint of the build,
    # and the build says scoped rolls are on
    write(app, "README.md", "# app v2\n")
    proc = _build(app, native=True, scoped=True)
    manifest = json.loads((app / ".flash" / "flash_manifest.json").read_text())
    assert scope.is_scoped_manifest(manifest)
    assert _index_of(app)["source_fingerprint"] == scope.recorded_source_fingerprint(manifest) == flash_fingerprint(app)
    assert _index_of(app)["files"]["README.md"] == {"size": 9, "sha256": hashlib.sha256(b"# app v2\n").hexdigest()}
    assert set(_index_of(app)["files"]) == set(_APP)
    assert "flash-native: scoped rolls on" in proc.stderr, proc.stderr
    assert "scoped rolls on" not in _build(app, native=True).stderr


def test_stale_index_says_how_to_refresh_it(app: Path):
    _build(app, native=True)
    write(app, "lib/util.py", "X = 3\n")
    _build(app, native=False)  # flash's own build: the index stays as it was
    st = run("status", cwd=app)
    assert st.returncode == 0 and st.stdout.startswith("unchanged:"), st.stdout
    assert f"refresh it with `{PROG} fingerprint --index .flash/source_index.json`" in st.stdout, st.stdout
    assert "modified" not in st.stdout, st.stdout  # not a change since the build
    write(app, "README.md", "# changed\n")
    st = run("status", cwd=app)
    assert "refresh it with" in st.stdout and "modified:  README.md" in st.stdout, st.stdout


def test_build_index_is_not_written_for_other_bytes(app: Path, capsys):
    """The index is written only when the bytes read give the build's
    fingerprint again (a file changed during the build): else a warning,
    and the index on disk stays as it was."""
    from runpod_flash_native.cli._index import refresh_after_build

    from reference import flash_walk

    files = flash_walk(app)
    message = refresh_after_build(app, files, "0" * 64)
    assert message is not None and "files changed while the build read them" in message
    assert "flash-native: warning:" in capsys.readouterr().err
    assert not (app / ".flash").exists()
    assert refresh_after_build(app, files, flash_fingerprint(app)) is None
    assert _index_of(app)["source_fingerprint"] == flash_fingerprint(app)


# ---------------------------------------------------------------------------
# 5. the install line flash-native prints works today


def _flash_extra_requirement() -> str:
    import tomllib

    # the checkout's pyproject.toml, beside tests/ (PACKAGE_ROOT is site-packages when installed)
    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    extra = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]["flash"]
    [req] = [r for r in extra if r.replace(" ", "").startswith("runpod-flash>") or r.startswith("runpod-flash=")]
    return req.replace(" ", "")


def test_missing_flash_hint_installs_runpod_flash_itself(tmp_path: Path):
    """runpod-flash-native is not on PyPI yet: the hint names runpod-flash
    with the range of the [flash] extra, which pip can install today."""
    code = "import sys; sys.modules['runpod_flash'] = None\nfrom runpod_flash_native.patch.main import main\nsys.exit(main(['build']))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    [line] = proc.stderr.splitlines()
    assert line == f"flash-native: error: runpod-flash is not installed; install it with: pip install '{_flash_extra_requirement()}'"
    assert "runpod-flash-native[" not in line


# ---------------------------------------------------------------------------
# 8. the smaller ones


def test_flash_native_version_says_the_native_patch_is_active(tmp_path: Path):
    from runpod_flash_native import __version__

    code = "import sys; from runpod_flash_native.patch.main import main; sys.exit(main(sys.argv[1:]))"
    for flag in ("--version", "-v"):
        proc = subprocess.run([sys.executable, "-c", code, flag], cwd=tmp_path, capture_output=True, text=True,
                              env=_env(FLASH_NO_UPDATE_CHECK="1"), timeout=120)
        assert proc.returncode == 0, proc.stderr
        lines = proc.stdout.splitlines()
        assert lines[0].startswith("Runpod Flash CLI v")  # flash's own line first, unchanged
        assert lines[1:] == [f"runpod-flash-native {__version__}: native patch active"], proc.stdout
    # a runpod-flash outside the verified range: the patch is not applied, and --version says so
    unverified = ("import sys; import runpod_flash_native.patch as p; p.version_supported = lambda v: False\n"
                  "from runpod_flash_native.patch.main import main; sys.exit(main(['--version']))")
    proc = subprocess.run([sys.executable, "-c", unverified], cwd=tmp_path, capture_output=True, text=True,
                          env=_env(FLASH_NO_UPDATE_CHECK="1"), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[1].startswith(f"runpod-flash-native {__version__}: native patch not active"), proc.stdout
    assert "flash-native: warning: runpod-flash" in proc.stderr


def test_unknown_option_of_a_command_shows_that_commands_usage(project: Path):
    for command in ("status", "files", "fingerprint"):
        proc = run(command, project, "--bogus")
        assert proc.returncode == 2
        assert proc.stderr.startswith(f"usage: {PROG} {command} "), proc.stderr
        assert f"{PROG} {command}: error: unrecognized arguments: --bogus" in proc.stderr
    doc = json.loads(run("status", "--bogus", "--json").stdout)
    assert doc["command"] == "status" and doc["error"] == "usage: unrecognized arguments: --bogus"


def test_files_rejects_a_non_utf8_name_as_fingerprint_does(project: Path):
    write(project, os.fsdecode(b"bad\xffname.py"), "")
    err = assert_one_line_error(run("fingerprint", project), "bad\\xffname.py", "UTF-8")
    for args in (("files", project), ("files", project, "--json"), ("files", project, "-0")):
        assert assert_one_line_error(run(*args), "bad\\xffname.py", "UTF-8") == err


def test_files_warns_about_secrets_and_outside_symlinks_as_status_does(project: Path, tmp_path: Path):
    write(project, ".env.production", "TOKEN=1\n")
    outside = tmp_path / "outside"
    write(outside, "data.txt", "x\n")
    os.symlink(outside, project / "linked")
    write_manifest(project, flash_fingerprint(project))
    status = run("status", project, "--json")
    files = run("files", project, "--json")
    kinds = sorted(w["kind"] for w in json.loads(files.stdout)["warnings"])
    assert kinds == ["secret", "symlink_outside"]
    assert json.loads(files.stdout)["warnings"] == json.loads(status.stdout)["warnings"]
    text = run("files", project)
    assert text.returncode == 0 and sorted(text.stderr.splitlines()) == sorted(status.stderr.splitlines())
    assert ".env.production" in text.stdout.splitlines()

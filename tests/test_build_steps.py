"""flash's dependency install step, patched (pip --no-compile) vs flash's own.

Differential: flash's real ``install_dependencies`` + ``cleanup_python_bytecode``
run unpatched and under ``patched()`` on wheels built here, installed from a
local directory (no index): a namespace package, a wheel with ``.data/``
(scripts, data, purelib, headers), console-script entry points, a dependency.
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import runpod_flash.cli.commands.build as flash_build

from runpod_flash_native.patch import pip_install as _build_steps
from runpod_flash_native.patch import patched


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _wheel(dest: Path, name: str, version: str, files: dict[str, str], requires: tuple[str, ...] = (),
           entry_points: str = "") -> Path:
    dist_info = f"{name}-{version}.dist-info"
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    meta += "".join(f"Requires-Dist: {r}\n" for r in requires)
    contents = dict(files)
    contents[f"{dist_info}/METADATA"] = meta
    contents[f"{dist_info}/WHEEL"] = "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    if entry_points:
        contents[f"{dist_info}/entry_points.txt"] = entry_points
    record = "".join(
        f"{path},{_record_hash(text.encode())},{len(text.encode())}\n" for path, text in contents.items()
    ) + f"{dist_info}/RECORD,,\n"
    contents[f"{dist_info}/RECORD"] = record
    path = dest / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for arc, text in contents.items():
            info = zipfile.ZipInfo(arc, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = (0o755 if "/scripts/" in arc else 0o644) << 16
            zf.writestr(info, text)
    return path


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory):
    d = tmp_path_factory.mktemp("wheels")
    _wheel(d, "rfnt_ns_a", "1.0", {
        # namespace package: rfnt_ns has no __init__.py
        "rfnt_ns/alpha/__init__.py": "VALUE = 1\n",
        "rfnt_ns/alpha/util.py": "def f():\n    return 2\n",
    })
    _wheel(d, "rfnt_data", "2.0", {
        "rfnt_data/__init__.py": "from . import core\n",
        "rfnt_data/core.py": "X = 'core'\n",
        "rfnt_data/resources/table.csv": "a,b\n1,2\n",
        "rfnt_data-2.0.data/scripts/rfnt-tool": "#!python\nprint('tool')\n",
        "rfnt_data-2.0.data/data/share/rfnt/readme.txt": "shared data\n",
        "rfnt_data-2.0.data/purelib/rfnt_extra.py": "EXTRA = True\n",
        "rfnt_data-2.0.data/headers/rfnt.h": "int rfnt(void);\n",
    }, requires=("rfnt_ns_a",), entry_points="[console_scripts]\nrfnt-cli = rfnt_data.core:main\n")
    return d


@pytest.fixture
def local_pip(wheelhouse, monkeypatch):
    """pip (in flash's child process) installs from the wheelhouse only."""
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheelhouse))
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    monkeypatch.delenv(_build_steps.PIP_COMPILE_ENV, raising=False)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    return wheelhouse


@pytest.fixture
def recorded_runs(monkeypatch):
    """argv of every subprocess.run call (ours reaches the real module's run)."""
    calls: list[list[str]] = []
    real = subprocess.run

    def run(*args, **kwargs):
        calls.append(list(args[0]))
        return real(*args, **kwargs)

    monkeypatch.setattr(subprocess, "run", run)
    return calls


def _flash_install(result: Path) -> None:
    """flash's dependency step of run_build (install, then the bytecode
    cleanup) into <tmp>/build, which then becomes result: both sides install
    to the same --target."""
    build_dir = result.parent / "build"
    build_dir.mkdir()
    ok = flash_build.install_dependencies(build_dir, ["rfnt_data"], False, target_python_version=None)
    assert ok
    flash_build.cleanup_python_bytecode(build_dir)
    build_dir.rename(result)


def _tree(root: Path) -> dict[str, tuple]:
    out: dict[str, tuple] = {}
    for dirpath, _dirs, files in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        out[rel + "/"] = ("dir", os.lstat(dirpath).st_mode)
        for name in files:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            key = os.path.normpath(os.path.join(rel, name))
            out[key] = ("link", os.readlink(p)) if os.path.islink(p) else ("file", st.st_mode, Path(p).read_bytes())
    return out


def _pyc_lines(record: bytes) -> set[str]:
    return {line for line in record.decode().splitlines() if line.split(",")[0].endswith(".pyc")}


def test_patched_install_differs_from_flash_only_in_record_pyc_lines(local_pip, recorded_runs, tmp_path):
    _flash_install(tmp_path / "flash")
    flash_cmds = [c for c in recorded_runs if "install" in c]
    recorded_runs.clear()
    with patched():
        _flash_install(tmp_path / "ours")
    ours_cmds = [c for c in recorded_runs if "install" in c]

    # flash's exact command, with --no-compile --no-warn-conflicts after "install"
    assert len(flash_cmds) == len(ours_cmds) == 1
    flash_cmd, ours_cmd = flash_cmds[0], ours_cmds[0]
    assert ours_cmd[:4] == [sys.executable, "-m", "pip", "install"]
    assert ours_cmd[4:6] == ["--no-compile", "--no-warn-conflicts"]
    assert ours_cmd[:4] + ours_cmd[6:] == flash_cmd

    flash_tree, ours_tree = _tree(tmp_path / "flash"), _tree(tmp_path / "ours")
    # what the wheels put there: namespace package, .data/ scripts, data,
    # purelib and headers, a console script, the dependency
    for path in ("rfnt_ns/alpha/util.py", "rfnt_data/resources/table.csv", "bin/rfnt-tool", "bin/rfnt-cli",
                 "share/rfnt/readme.txt", "rfnt_extra.py", "rfnt_ns_a-1.0.dist-info/RECORD"):
        assert path in flash_tree, path
    assert not (tmp_path / "flash" / "rfnt_ns" / "__init__.py").exists()
    assert flash_tree.keys() == ours_tree.keys()
    records = [k for k in flash_tree if k.endswith(".dist-info/RECORD")]
    assert len(records) == 2
    for key in flash_tree:
        if key in records:
            flash_lines = flash_tree[key][2].decode().splitlines()
            ours_lines = ours_tree[key][2].decode().splitlines()
            # flash's pip compiled (and listed the .pyc files cleanup deleted)
            assert _pyc_lines(flash_tree[key][2])
            assert not _pyc_lines(ours_tree[key][2])
            assert [line for line in flash_lines if line not in _pyc_lines(flash_tree[key][2])] == ours_lines
            assert flash_tree[key][:2] == ours_tree[key][:2]
        else:
            assert flash_tree[key] == ours_tree[key], key


def test_switch_restores_flash_exact_command_and_tree(local_pip, recorded_runs, tmp_path, monkeypatch):
    _flash_install(tmp_path / "flash")
    flash_cmd = [c for c in recorded_runs if "install" in c]
    recorded_runs.clear()
    monkeypatch.setenv(_build_steps.PIP_COMPILE_ENV, "1")
    with patched():
        _flash_install(tmp_path / "ours")
    assert [c for c in recorded_runs if "install" in c] == flash_cmd
    assert _tree(tmp_path / "flash") == _tree(tmp_path / "ours")


@pytest.mark.parametrize("value, compiles", [
    ("1", True), ("true", True), (" On ", True), ("yes", True),
    ("0", False), ("off", False), ("", False), ("no", False), (None, False),
])
def test_switch_values(monkeypatch, value, compiles):
    if value is None:
        monkeypatch.delenv(_build_steps.PIP_COMPILE_ENV, raising=False)
    else:
        monkeypatch.setenv(_build_steps.PIP_COMPILE_ENV, value)
    assert _build_steps.pip_compiles() is compiles


def test_invalid_switch_fails_the_install_step_naming_it(local_pip, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv(_build_steps.PIP_COMPILE_ENV, "maybe")
    (tmp_path / "b").mkdir()
    with patched():
        ok = flash_build.install_dependencies(tmp_path / "b", ["rfnt_data"], False, target_python_version=None)
    assert ok is False
    assert _build_steps.PIP_COMPILE_ENV in capsys.readouterr().out
    assert list((tmp_path / "b").iterdir()) == []


def test_other_subprocess_calls_pass_through(recorded_runs):
    sub = _build_steps.pip_subprocess
    # flash's other calls through the same name: pip --version, ensurepip, uv pip
    for cmd in (
        [sys.executable, "-m", "pip", "--version"],
        [sys.executable, "-c", "print(1)", "install", "--target", "x"],
        ["uv", "pip", "install", "--target", "x", "pkg"],
    ):
        try:
            sub.run(cmd, capture_output=True, text=True, timeout=60)
        except FileNotFoundError:
            pass  # no uv here: the real run raised it, as flash would see
        assert recorded_runs[-1] == cmd
    # the names flash's except clauses use are the real module's
    assert sub.SubprocessError is subprocess.SubprocessError
    assert sub.TimeoutExpired is subprocess.TimeoutExpired
    assert sub.PIPE is subprocess.PIPE

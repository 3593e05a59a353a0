"""patch_flash / unpatch_flash / patched, the flash-native entry point, and the
end-to-end comparison of ``flash build`` with ``flash-native build``."""

from __future__ import annotations

import ast
import importlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import warnings
from pathlib import Path

import pytest

import runpod_flash_native
from runpod_flash_native import patch as _patch

# Where the imported (built) package lives; subprocesses must import the same one.
from reference import PACKAGE_ROOT, child_env

# Every (flash module, attribute) the issue names, and the native object it must
# become.
EXPECTED_SITES = {
    ("runpod_flash.cli.commands.build", "compute_source_fingerprint"): ("runpod_flash_native.patch.build_hooks", "compute_source_fingerprint"),
    ("runpod_flash.cli.commands.build", "ManifestBuilder"): ("runpod_flash_native.patch.build_hooks", "ManifestBuilder"),
    ("runpod_flash.cli.commands.build", "load_ignore_patterns"): ("runpod_flash_native.patch.build_hooks", "load_ignore_patterns"),
    ("runpod_flash.cli.commands.build", "get_file_tree"): ("runpod_flash_native.patch.build_hooks", "get_file_tree"),
    ("runpod_flash.cli.commands.build_utils.scanner", "load_ignore_patterns"): ("runpod_flash_native.patch.build_hooks", "load_ignore_patterns"),
    ("runpod_flash.cli.commands.build_utils.scanner", "get_file_tree"): ("runpod_flash_native.ignore", "get_file_tree"),
    ("runpod_flash.cli.commands.run", "load_ignore_patterns"): ("runpod_flash_native.patch.build_hooks", "load_ignore_patterns"),
    ("runpod_flash.cli.commands.run", "get_file_tree"): ("runpod_flash_native.ignore", "get_file_tree"),
    ("runpod_flash.cli.utils.deployment", "_resource_config_for_compare"): ("runpod_flash_native.deployment", "resource_config_for_compare"),
    ("runpod_flash.cli.commands.build", "create_tarball"): ("runpod_flash_native.patch.build_hooks", "create_tarball"),
    ("runpod_flash.cli.commands.build", "copy_project_files"): ("runpod_flash_native.build", "copy_project_files"),
    ("runpod_flash.cli.commands.build", "ast"): ("runpod_flash_native.patch.ast_memo", "flash_ast"),
    ("runpod_flash.cli.commands.build_utils.scanner", "ast"): ("runpod_flash_native.patch.ast_memo", "flash_ast"),
    ("runpod_flash.stubs.local_modules", "ast"): ("runpod_flash_native.patch.ast_memo", "flash_ast_imports"),
    ("runpod_flash.cli.commands.build", "validate_local_module_imports"): ("runpod_flash_native.patch.validate", "validate_local_module_imports"),
    ("runpod_flash.cli.commands.build", "subprocess"): ("runpod_flash_native.patch.pip_install", "pip_subprocess"),
}


def _get(module: str, attr: str):
    return getattr(importlib.import_module(module), attr)


def _snapshot() -> dict:
    return {site: _get(*site) for site in EXPECTED_SITES}


@pytest.fixture
def flash_sites():
    """Flash's original objects; the patch is undone after the test whatever happens."""
    runpod_flash_native.unpatch_flash()
    originals = _snapshot()
    for (module, attr), fn in originals.items():
        if attr == "ast":
            assert fn is ast, (module, attr, fn)
        elif attr == "subprocess":
            assert fn is subprocess, (module, attr, fn)
        elif attr == "ManifestBuilder":
            assert fn.__module__ == "runpod_flash.cli.commands.build_utils.manifest", (module, attr, fn)
        else:
            assert fn.__module__.startswith("runpod_flash."), (module, attr, fn)
    yield originals
    runpod_flash_native.unpatch_flash()
    for (module, attr), fn in originals.items():
        setattr(importlib.import_module(module), attr, fn)


def _natives() -> dict:
    return {site: _get(*native) for site, native in EXPECTED_SITES.items()}


def test_exports():
    assert runpod_flash_native.patch_flash is _patch.patch_flash
    assert runpod_flash_native.unpatch_flash is _patch.unpatch_flash
    assert runpod_flash_native.patched is _patch.patched
    for name in ("patch_flash", "unpatch_flash", "patched"):
        assert name in runpod_flash_native.__all__
    assert {s.key for s in _patch.SITES} == set(EXPECTED_SITES)


def test_patch_replaces_every_site_and_unpatch_restores(flash_sites):
    natives = _natives()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert runpod_flash_native.patch_flash() is True
    for site, native in natives.items():
        assert _get(*site) is native, site
        assert native is not flash_sites[site]
    assert _patch.is_patched()

    assert runpod_flash_native.unpatch_flash() is True
    for site, original in flash_sites.items():
        assert _get(*site) is original, site
    assert not _patch.is_patched()


def test_patch_and_unpatch_are_idempotent(flash_sites):
    natives = _natives()
    assert runpod_flash_native.patch_flash() is True
    first = _snapshot()
    assert runpod_flash_native.patch_flash() is True
    assert _snapshot() == first == natives
    assert runpod_flash_native.unpatch_flash() is True
    assert _snapshot() == flash_sites
    assert runpod_flash_native.unpatch_flash() is False
    assert _snapshot() == flash_sites


def test_patched_context_manager_nests(flash_sites):
    natives = _natives()
    with runpod_flash_native.patched() as active:
        assert active is True
        assert _snapshot() == natives
        with runpod_flash_native.patched():
            assert _snapshot() == natives
        assert _snapshot() == natives  # the inner block did not undo the outer one
    assert _snapshot() == flash_sites

    runpod_flash_native.patch_flash()
    with runpod_flash_native.patched():
        pass
    assert _snapshot() == natives  # patched globally before: stays patched


def test_patched_restores_on_error(flash_sites):
    with pytest.raises(RuntimeError):
        with runpod_flash_native.patched():
            raise RuntimeError("boom")
    assert _snapshot() == flash_sites


def test_an_optional_site_a_release_lacks_is_skipped_quietly(flash_sites, monkeypatch):
    """1.14.0's build module has no validate_local_module_imports: nothing to
    patch there, no warning; a non-optional site that is missing still warns."""
    build = importlib.import_module("runpod_flash.cli.commands.build")
    monkeypatch.delattr(build, "validate_local_module_imports")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert runpod_flash_native.patch_flash() is True
    assert not hasattr(build, "validate_local_module_imports")
    assert _get("runpod_flash.cli.commands.build", "create_tarball") is _natives()[("runpod_flash.cli.commands.build", "create_tarball")]
    runpod_flash_native.unpatch_flash()
    monkeypatch.delattr(build, "create_tarball")
    with pytest.warns(_patch.FlashPatchWarning, match="create_tarball"):
        assert runpod_flash_native.patch_flash() is True
    runpod_flash_native.unpatch_flash()


@pytest.mark.parametrize("version", ["1.13.9", "1.13.0", "1.22.0", "2.0.0", "0.9", "garbage", None])
def test_outside_verified_range_warns_and_patches_nothing(flash_sites, monkeypatch, version):
    monkeypatch.setattr(_patch, "_flash_version", lambda: version)
    with pytest.warns(_patch.FlashPatchWarning) as record:
        assert runpod_flash_native.patch_flash() is False
    message = str(record[0].message)
    assert (str(version) in message and _patch.SUPPORTED_FLASH_VERSIONS in message) if version else "not installed" in message
    assert _snapshot() == flash_sites
    with pytest.warns(_patch.FlashPatchWarning):
        with runpod_flash_native.patched() as active:
            assert active is False
            assert _snapshot() == flash_sites


@pytest.mark.parametrize("version", ["1.14.0", "1.17.0", "1.20.1", "1.21.0", "1.21.7", "1.21.1.post1"])
def test_inside_verified_range_patches(flash_sites, monkeypatch, version):
    monkeypatch.setattr(_patch, "_flash_version", lambda: version)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert runpod_flash_native.patch_flash() is True
    assert _snapshot() == _natives()


def test_foreign_object_at_a_site_is_left_alone(flash_sites, monkeypatch):
    import runpod_flash.cli.commands.run as run_mod

    def someone_elses(path):  # not flash's shape
        return []

    monkeypatch.setattr(run_mod, "get_file_tree", someone_elses)
    with pytest.warns(_patch.FlashPatchWarning, match="commands.run.get_file_tree"):
        assert runpod_flash_native.patch_flash() is True
    assert run_mod.get_file_tree is someone_elses
    natives = _natives()
    for site, native in natives.items():
        if site != ("runpod_flash.cli.commands.run", "get_file_tree"):
            assert _get(*site) is native
    runpod_flash_native.unpatch_flash()
    assert run_mod.get_file_tree is someone_elses


def test_unpatch_keeps_a_later_rebinding(flash_sites, monkeypatch):
    import runpod_flash.cli.commands.build as build_mod

    runpod_flash_native.patch_flash()

    def later(project_dir, files):
        return "later"

    monkeypatch.setattr(build_mod, "compute_source_fingerprint", later)
    runpod_flash_native.unpatch_flash()
    assert build_mod.compute_source_fingerprint is later
    assert build_mod.get_file_tree is flash_sites[("runpod_flash.cli.commands.build", "get_file_tree")]


def test_patched_sites_give_flash_answers(flash_sites, tmp_path):
    """The patched call sites answer what flash's code answered."""
    import runpod_flash.cli.commands.build as build_mod
    import runpod_flash.cli.utils.deployment as dep

    root = tmp_path / "p"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "a.py").write_text("a = 1\n")
    (root / "b.py").write_text("b = 2\n")
    (root / "skip.log").write_text("log\n")
    (root / ".gitignore").write_text("*.log\n")
    config = {"name": "x", "id": "abc", "endpoint_id": "e", "env": {"A": "1"}}

    def answers():
        files = build_mod.get_file_tree(root, build_mod.load_ignore_patterns(root))
        return (
            sorted(str(f) for f in files),
            build_mod.compute_source_fingerprint(root, files),
            dep._resource_config_for_compare(config),
        )

    expected = answers()
    with runpod_flash_native.patched():
        assert answers() == expected
    assert expected[2] == {"name": "x", "env": {"A": "1"}}


# ---------------------------------------------------------------------------
# flash-native entry point


def _env(**extra: str) -> dict[str, str]:
    env = child_env()
    # Offline: no PyPI update check (flash skips it off a terminal anyway),
    # and no sunset banner cluttering the output.
    env["FLASH_NO_UPDATE_CHECK"] = "1"
    env["RUNPOD_FLASH_SILENCE_DEPRECATION"] = "1"
    env.update(extra)
    return env


FLASH_NATIVE = "import sys; from runpod_flash_native.patch.main import main; sys.exit(main())"


def test_flash_native_entry_runs_flash(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", FLASH_NATIVE, "--version"], cwd=tmp_path, env=_env(),
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Runpod Flash CLI v1.21.0" in proc.stdout
    assert "warning" not in proc.stderr

    proc = subprocess.run(
        [sys.executable, "-c", FLASH_NATIVE, "no-such-command"], cwd=tmp_path, env=_env(),
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2  # click's usage error, as with `flash`
    assert "No such command" in proc.stdout + proc.stderr


def test_flash_native_entry_outside_range_warns_and_runs_unpatched(tmp_path):
    code = (
        "import sys, runpod_flash_native.patch as p\n"
        "p._flash_version = lambda: '9.0.0'\n"
        "from runpod_flash_native.patch.main import main\n"
        "rc = main(['--version'])\n"
        "import runpod_flash.cli.commands.build as b\n"
        "print('PATCHED' if b.compute_source_fingerprint.__module__.startswith('runpod_flash_native') else 'FLASH')\n"
        "sys.exit(rc)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("FLASH")
    assert "Runpod Flash CLI v1.21.0" in proc.stdout
    lines = [line for line in proc.stderr.splitlines() if "flash-native: warning:" in line]
    assert len(lines) == 1 and "9.0.0" in lines[0] and _patch.SUPPORTED_FLASH_VERSIONS in lines[0]


# ---------------------------------------------------------------------------
# end to end: `flash build` vs `flash-native build`, no network
#
# How this build stays offline:
#   * the app has no requirements.txt and no `dependencies=[...]`, so flash's
#     build skips its pip install step entirely (the only network step of
#     `flash build`; `--no-deps` would only drop transitive dependencies);
#   * FLASH_NO_UPDATE_CHECK=1 turns off the PyPI version check (flash also
#     skips it when neither stdout nor stderr is a terminal);
#   * `flash build` makes no API call and needs no RUNPOD_API_KEY;
#   * when the kernel allows it, both builds run under `unshare -rn` (a new
#     network namespace with no interface) so any network use would fail.

WORKER = '''\
from runpod_flash import Endpoint, remote, CpuLiveServerless
from pkg.util import greet


@Endpoint(name="cpu_worker", cpu="cpu3c-1-2")
async def hello(input_data: dict) -> dict:
    return {"message": greet(input_data.get("name", "world"))}


api = Endpoint(name="lb_worker", cpu="cpu3c-1-2", workers=(1, 2))


@api.post("/echo")
async def echo(input_data: dict) -> dict:
    return input_data


batch = CpuLiveServerless(name="batch_worker")


@remote(resource_config=batch)
async def crunch(numbers: list) -> int:
    return sum(numbers)
'''

APP_FILES = {
    "worker.py": WORKER,
    "pkg/__init__.py": "",
    "pkg/util.py": "def greet(name):\n    return f'hello {name}'\n",
    "pkg/data/table.csv": "a,b\n1,2\n",
    "README.md": "# sample\n",
    ".env.production": "TOKEN=shipped-by-flash\n",
    ".gitignore": "# local\nsecrets/\n*.bin\n!weights/keep.bin\nscratch.py\n",
    "weights/keep.bin": "kept\n",
    "weights/huge.bin": "dropped\n",
    "secrets/token.txt": "hidden\n",
    "scratch.py": "raise SystemExit('must not be imported')\n",
    "NOTES.md": "not shipped\n",
    ".env": "SECRET=1\n",
    ".env.local": "SECRET=2\n",
    "tests/test_worker.py": "def test():\n    pass\n",
    "test_top.py": "",
    "venv/lib/site.py": "",
    "__pycache__/x.cpython-311.pyc": "",
}
SHIPPED = sorted([
    ".env.production", "README.md", "pkg/__init__.py", "pkg/data/table.csv", "pkg/util.py",
    "weights/keep.bin", "worker.py",
])


def _make_app(parent: Path) -> Path:
    root = parent / "sample_app"  # same name for both builds: the app name is the dir name
    for rel, content in APP_FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return root


def _offline_prefix() -> list[str]:
    unshare = shutil.which("unshare")
    if unshare is None:
        return []
    try:
        ok = subprocess.run([unshare, "-rn", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        ok = False
    return [unshare, "-rn"] if ok else []


SPY_FLASH_NATIVE = """\
import functools, json, sys
import runpod_flash_native.build as nb, runpod_flash_native.ignore as ni
import runpod_flash_native._fingerprint as nf
calls = {}
def spy(mod, name):
    fn = getattr(mod, name)
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        calls[name] = calls.get(name, 0) + 1
        return fn(*args, **kwargs)
    setattr(mod, name, wrapper)
spy(nf, "compute_source_fingerprint")  # the build takes per-file digests too
spy(ni, "load_ignore_patterns")
spy(ni, "get_file_tree")
spy(nb, "create_tarball")
spy(nb, "copy_project_files")
import runpod_flash_native.patch.validate as nv, runpod_flash_native.patch.build_hooks as nh
spy(nv, "validate_local_module_imports")
from runpod_flash_native.patch.main import main
rc = main(["build"])
print("NATIVE-CALLS " + json.dumps(calls))
sys.exit(rc)
"""


def _build(root: Path, argv: list[str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        _offline_prefix() + argv, cwd=root, env=_env(HOME=str(root.parent), XDG_CONFIG_HOME=str(root.parent / "cfg")),
        capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 0, (argv, proc.stdout, proc.stderr)
    return proc


def _archive_members(root: Path) -> dict[str, bytes | None]:
    return {name: data for name, (data, _) in _archive_entries(root).items()}


def _archive_entries(root: Path) -> dict[str, tuple[bytes | None, tuple]]:
    """name -> (content, (type, mode, size, uid, gid, uname, gname, linkname,
    mtime for files and links)). Directory mtimes are build-time stamps."""
    members = {}
    with tarfile.open(root / ".flash" / "artifact.tar.gz") as tar:
        for m in tar.getmembers():
            name = m.name[2:] if m.name.startswith("./") else m.name
            data = tar.extractfile(m).read() if m.isfile() else None
            meta = (m.type, m.mode, m.size, m.uid, m.gid, m.uname, m.gname, m.linkname,
                    None if m.isdir() else m.mtime)
            members[name] = (data, meta)
    return members


def _manifest(root: Path) -> dict:
    return json.loads((root / ".flash" / "flash_manifest.json").read_text())


def test_e2e_flash_build_vs_flash_native_build(tmp_path):
    flash_root = _make_app(tmp_path / "flash")
    native_root = _make_app(tmp_path / "native")

    _build(flash_root, [sys.executable, "-m", "runpod_flash.cli.main", "build"])
    proc = _build(native_root, [sys.executable, "-c", SPY_FLASH_NATIVE])

    # flash-native really ran the native code at flash's call sites
    calls = json.loads(proc.stdout.rsplit("NATIVE-CALLS ", 1)[1].splitlines()[0])
    assert calls["compute_source_fingerprint"] == 1
    assert calls["load_ignore_patterns"] >= 2  # build + scanner
    assert calls["get_file_tree"] >= 2
    assert calls["create_tarball"] == 1
    assert calls["copy_project_files"] == 1
    assert calls["validate_local_module_imports"] == 1

    flash_manifest, native_manifest = _manifest(flash_root), _manifest(native_root)
    assert native_manifest["source_fingerprint"] == flash_manifest["source_fingerprint"]
    assert len(flash_manifest["source_fingerprint"]) == 64
    for m in (flash_manifest, native_manifest):
        m.pop("generated_at", None)
    assert native_manifest == flash_manifest
    assert set(flash_manifest["resources"]) == {"cpu_worker", "lb_worker", "batch_worker"}

    flash_tar, native_tar = _archive_members(flash_root), _archive_members(native_root)
    assert sorted(native_tar) == sorted(flash_tar)  # identical shipped file list
    for rel in SHIPPED:
        assert native_tar[rel] == flash_tar[rel] == (flash_root / rel).read_bytes(), rel
    user_files = sorted(
        n for n, data in flash_tar.items()
        if data is not None and not n.startswith("runpod_flash/")
        and n != "flash_manifest.json" and not n.startswith("handler_")
    )
    assert user_files == SHIPPED
    flash_entries, native_entries = _archive_entries(flash_root), _archive_entries(native_root)
    for rel in SHIPPED:  # same metadata; the file mtimes are their sources' (copy2 keeps them)
        (n_data, n_meta), (f_data, f_meta) = native_entries[rel], flash_entries[rel]
        assert n_data == f_data and n_meta[:-1] == f_meta[:-1], rel
        assert n_meta[-1] == (native_root / rel).stat().st_mtime, rel
        assert f_meta[-1] == (flash_root / rel).stat().st_mtime, rel

    # our CLI agrees with both builds
    cli = subprocess.run(
        [sys.executable, "-m", "runpod_flash_native", "files", str(native_root)],
        cwd=PACKAGE_ROOT, env=_env(), capture_output=True, text=True, timeout=60,
    )
    assert cli.stdout.splitlines() == SHIPPED
    status = subprocess.run(
        [sys.executable, "-m", "runpod_flash_native", "status", "--json", str(native_root)],
        cwd=PACKAGE_ROOT, env=_env(), capture_output=True, text=True, timeout=60,
    )
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["current_fingerprint"] == flash_manifest["source_fingerprint"]
    assert [w["path"] for w in report["warnings"]] == [".env.production"]


DISCOVER = """\
import json, sys
from pathlib import Path
if sys.argv[1] == "native":
    import runpod_flash_native
    assert runpod_flash_native.patch_flash()
from runpod_flash.cli.commands import run
resources = run._discover_resources(Path.cwd())
print("RESOURCES " + json.dumps(sorted(r.name for r in resources)))
print("WALK " + run.get_file_tree.__module__)
"""


def test_flash_dev_discovery_same_with_patch(tmp_path):
    """`flash dev` finds its resources through the patched run.py call sites."""
    root = _make_app(tmp_path)
    seen = {}
    for mode in ("flash", "native"):
        proc = subprocess.run(
            [sys.executable, "-c", DISCOVER, mode], cwd=root, env=_env(),
            capture_output=True, text=True, timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if line.startswith(("RESOURCES ", "WALK ")))
        seen[mode] = json.loads(lines["RESOURCES"])
        assert lines["WALK"] == ("runpod_flash_native.ignore" if mode == "native" else "runpod_flash.cli.utils.ignore")
    assert seen["native"] == seen["flash"]
    assert len(seen["flash"]) == 3


# ---- flash-native's start-up: py-cpuinfo's probe answered in process ---------------------

CPU_PROBE_CHILD = r"""
import json, subprocess, sys
import cpuinfo
real = cpuinfo.get_cpu_info
spawned = []
orig_popen_init = subprocess.Popen.__init__
def spy(self, *a, **k):
    spawned.append(a[0] if a else k.get("args"))
    orig_popen_init(self, *a, **k)
subprocess.Popen.__init__ = spy
from runpod_flash_native.patch import main as flash_cli
code = flash_cli.main(["--help"])
subprocess.Popen.__init__ = orig_popen_init
from runpod.serverless.utils import rp_debugger
print("PROBE " + json.dumps({"code": code, "processor": rp_debugger.PROCESSOR, "spawned": [str(s) for s in spawned],
                             "restored": cpuinfo.get_cpu_info is real}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the in-process answer is Linux-only")
def test_flash_native_answers_the_cpu_probe_in_process(tmp_path):
    """runpod's rp_debugger reads get_cpu_info()["brand_raw"] at import; under
    flash-native it gets py-cpuinfo's own answer without the child process."""
    proc = subprocess.run([sys.executable, "-c", CPU_PROBE_CHILD], cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.rsplit("PROBE ", 1)[1])
    import cpuinfo

    assert got["processor"] == cpuinfo.get_cpu_info()["brand_raw"]  # the real probe, in a child of its own
    assert not [s for s in got["spawned"] if "cpuinfo.py" in s]  # py-cpuinfo's own child process
    assert got["restored"] is True and got["code"] == 0

"""Installing as a new user does, on a machine of the project's kind as it
comes: no OpenSSL headers (libssl-dev), no pkg-config, only the runtime
libcrypto.so.3. Builds run in scratch copies of the source tree; the one
fresh virtual environment runs README's install-and-run command exactly as
written, on a one-endpoint flash app."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import sanitized

from runpod_flash.cli.commands import build as flash_build
from runpod_flash.cli.utils import ignore as flash_ignore

REPO = Path(__file__).resolve().parent.parent
SKIP_NAMES = {"build", "dist", ".git", ".venv", "__pycache__", ".hypothesis", ".pytest_cache", "data"}

pytestmark = [
    pytest.mark.skipif(not (REPO / "setup.py").exists(), reason="needs the source tree"),
    # These build their own extensions; the sanitized run is about the C code.
    pytest.mark.skipif(sanitized(), reason="the install tests run in the unsanitized pass"),
]


def copy_sources(dest: Path) -> Path:
    """The source tree without build outputs, virtual environments or caches."""

    def ignore(_dir: str, names: list[str]) -> set[str]:
        return {n for n in names if n in SKIP_NAMES or n.endswith((".so", ".o")) or n.endswith(".egg-info")}

    shutil.copytree(REPO, dest, ignore=ignore)
    return dest


def readme_block(heading: str) -> str:
    """The first ```bash block under README's ``heading``."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index(heading):]
    match = re.search(r"```bash\n(.*?)\n```", section, re.S)
    assert match, heading
    return match.group(1).strip()


def _can_hide_headers() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "true"], capture_output=True)
    return probe.returncode == 0


def as_fresh_machine(script: str) -> list[str]:
    """A bash command line running ``script`` with OpenSSL's headers and
    pkg-config out of sight: in a private mount namespace, an empty tmpfs
    over /usr/include/openssl and /bin/false over pkg-config (the files
    themselves stay untouched for everybody else)."""
    hide = []
    if os.path.isdir("/usr/include/openssl"):
        hide.append("mount -t tmpfs none /usr/include/openssl")
    pkg_config = shutil.which("pkg-config")
    if pkg_config:
        hide.append(f"mount --bind /bin/false {os.path.realpath(pkg_config)}")
    inner = " && ".join(hide + [f"( {script} )"])
    return ["unshare", "-m", "--propagation", "private", "bash", "-c", inner]


def fresh_env() -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items()
        if not k.startswith(("PYTHON", "VIRTUAL_ENV", "RFN_", "LD_PRELOAD", "ASAN_", "UBSAN_"))
    }
    env.pop("PIP_REQUIRE_VIRTUALENV", None)
    return env


def needed_libs(so: Path) -> list[str]:
    out = subprocess.run(["readelf", "-d", str(so)], capture_output=True, text=True, check=True).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)


def flash_fingerprint(root: Path) -> str:
    return flash_build.compute_source_fingerprint(
        root, flash_ignore.get_file_tree(root, flash_ignore.load_ignore_patterns(root))
    )


# A flash app as small as one can be: one queue-based endpoint, no
# dependencies, so `flash build` has no pip step and needs no network.
APP_WORKER = """\
from runpod_flash import Endpoint


@Endpoint(name="hello_worker", cpu="cpu3c-1-2")
async def hello(input_data: dict) -> dict:
    return {"message": f"hello {input_data.get('name', 'world')}"}
"""
APP_PLACEHOLDER = "/path/to/your/flash/app"


@pytest.mark.skipif(not _can_hide_headers(), reason="needs root and unshare to hide OpenSSL's headers")
def test_readme_install_command_on_a_fresh_machine(tmp_path: Path):
    """README's install-and-run command, run as written in a copy of the
    checkout (a one-endpoint app's directory in place of its placeholder),
    with no OpenSSL headers and no pkg-config: it builds and installs
    runpod-flash-native with runpod-flash into a new virtual environment and
    builds the app with `flash-native build`: flash's manifest, with flash's
    fingerprint of the app, and the archive. The same environment without
    runpod-flash: `flash-native` says how to install it, in one line."""
    src = copy_sources(tmp_path / "checkout")
    app = tmp_path / "app"
    app.mkdir()
    (app / "worker.py").write_text(APP_WORKER)
    command = readme_block("## Install and run")
    assert command.startswith("python3 -m venv .venv && . .venv/bin/activate && pip install '.[flash]' && "), command
    assert command.endswith(f" && cd {APP_PLACEHOLDER} && flash-native build"), command
    command = command.replace(APP_PLACEHOLDER, shlex.quote(str(app)))
    proc = subprocess.run(
        as_fresh_machine(f"cd {shlex.quote(str(src))} && {command}"), capture_output=True, text=True,
        env=fresh_env(), timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    manifest = json.loads((app / ".flash" / "flash_manifest.json").read_text())
    assert manifest["source_fingerprint"] == flash_fingerprint(app)
    assert list(manifest["resources"]) == ["hello_worker"]
    assert (app / ".flash" / "artifact.tar.gz").is_file()

    venv = src / ".venv"
    [so] = list(venv.glob("lib/python*/site-packages/runpod_flash_native/_fingerprint*.so"))
    assert "libcrypto.so.3" in needed_libs(so)

    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "uninstall", "-q", "-y", "runpod-flash"],
                   check=True, capture_output=True, env=fresh_env(), timeout=120)
    fn = subprocess.run([str(venv / "bin" / "flash-native"), "build"], capture_output=True, text=True,
                        env=fresh_env(), cwd=tmp_path, timeout=120)
    assert fn.returncode == 2, (fn.stdout, fn.stderr)
    assert fn.stdout == ""
    assert fn.stderr.splitlines() == [
        "flash-native: error: runpod-flash is not installed; "
        "install it with: pip install 'runpod-flash>=1.14.0,<1.22.0'"
    ]


def build_inplace(src: Path, *, inplace: bool = True, **switches: str) -> subprocess.CompletedProcess[str]:
    env = fresh_env()
    env.update(switches)
    return subprocess.run([sys.executable, "setup.py", "-q", "build_ext", *(["--inplace"] if inplace else [])],
                          cwd=src, env=env, capture_output=True, text=True, timeout=600)


def asan_symbols(directory: Path) -> int:
    [so] = list(directory.glob("_fingerprint*.so"))
    out = subprocess.run(["nm", "-D", str(so)], capture_output=True, text=True, check=True).stdout
    return sum("__asan_" in line for line in out.splitlines())


def test_changed_switch_rebuilds(tmp_path: Path):
    """README's sanitizer recipe after a normal build (no --force): the
    extension is rebuilt with ASan, and a normal build after it without,
    even when a build into build/lib came in between."""
    src = copy_sources(tmp_path / "checkout")
    inplace_dir = src / "runpod_flash_native"
    steps = [
        ({}, True, False),
        ({"RFN_SANITIZE": "1"}, True, True),
        ({}, False, True),  # build/lib gets a normal build; the in-place one is left alone
        ({}, True, False),
    ]
    for switches, inplace, inplace_asan in steps:
        proc = build_inplace(src, inplace=inplace, **switches)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert (asan_symbols(inplace_dir) > 0) == inplace_asan, (switches, inplace)
        if not inplace:
            [lib] = list((src / "build").glob("lib.*/runpod_flash_native"))
            assert asan_symbols(lib) == 0


@pytest.mark.skipif(not _can_hide_headers(), reason="needs root and unshare to hide libcrypto")
def test_no_libcrypto_is_one_clear_error(tmp_path: Path):
    """No pkg-config, no headers, and libcrypto.so.3 itself unusable (an empty
    file bound over it in a private mount namespace): setup.py stops before
    compiling and says what to install."""
    src = copy_sources(tmp_path / "checkout")
    lib = subprocess.run(["gcc", "-print-file-name=libcrypto.so.3"], capture_output=True, text=True).stdout.strip()
    if not os.path.isabs(lib):
        pytest.skip("no libcrypto.so.3 to hide")
    script = (f"mount --bind /dev/null {os.path.realpath(lib)} && cd {src} && "
              f"{sys.executable} setup.py -q build_ext --inplace")
    proc = subprocess.run(as_fresh_machine(script), env=fresh_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "needs OpenSSL 3's libcrypto and none was found" in proc.stderr, proc.stderr[-2000:]
    assert "RFN_OPENSSL_PREFIX" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not list((src / "runpod_flash_native").glob("_fingerprint*.so"))


@pytest.mark.parametrize("how", [["-c", "import runpod_flash_native"], ["-m", "runpod_flash_native", "files"]])
def test_source_tree_without_extension_says_so(tmp_path: Path, how: list[str]):
    """Python started in a source tree that has no compiled extension, while
    the built package is installed elsewhere on sys.path: the ImportError
    names both and the fix, instead of a circular-import riddle."""
    import runpod_flash_native

    installed = Path(runpod_flash_native.__file__).resolve().parent
    src = tmp_path / "checkout"
    (src / "runpod_flash_native").mkdir(parents=True)
    for py in installed.glob("*.py"):
        shutil.copy(py, src / "runpod_flash_native")
    env = fresh_env()
    env["PYTHONPATH"] = str(installed.parent)
    proc = subprocess.run([sys.executable, *how], cwd=src, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: runpod_flash_native: the compiled extension (_fingerprint) is not built in "
                           f"{src / 'runpod_flash_native'}; this source tree shadows the installed package in "
                           f"{installed}"), last
    assert "cd elsewhere" in last and "python setup.py build_ext --inplace" in last
    assert "circular import" not in proc.stderr

    # Nothing installed elsewhere: the hint is to install or build in place.
    env["PYTHONPATH"] = ""
    proc = subprocess.run([sys.executable, "-S", *how], cwd=src, env=env, capture_output=True, text=True, timeout=60)
    last = proc.stderr.strip().splitlines()[-1]
    assert "is not built in" in last and "pip install ." in last and "build_ext --inplace" in last, last


def readelf_dynamic(so: Path, tag: str) -> list[str]:
    out = subprocess.run(["readelf", "-d", str(so)], capture_output=True, text=True, check=True).stdout
    return re.findall(rf"\({tag}\)\s+\S+ \S+: \[([^\]]+)\]", out)


def setup_py_error(src: Path, **switches: str) -> str:
    """setup.py's failure, asserted to be one line on stderr with nothing
    built; returns that line."""
    proc = build_inplace(src, **switches)
    assert proc.returncode != 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr[-2000:]
    assert not list((src / "runpod_flash_native").glob("_fingerprint*.so"))
    return lines[0]


def test_openssl_prefix_holding_no_openssl3_is_an_error(tmp_path: Path):
    """A typo'd RFN_OPENSSL_PREFIX, or one holding an older libcrypto (here a
    libcrypto.so without EVP_MD_fetch), stops the build with one line naming
    the prefix, instead of building silently against the system's."""
    src = copy_sources(tmp_path / "checkout")
    missing = tmp_path / "no-such-openssl"
    line = setup_py_error(src, RFN_OPENSSL_PREFIX=str(missing))
    assert line.startswith(f"error: RFN_OPENSSL_PREFIX={missing} holds no OpenSSL 3 (no such directory)"), line

    old = tmp_path / "openssl-1.1"
    (old / "lib").mkdir(parents=True)
    (old / "old.c").write_text("int EVP_MD_CTX_create(void) { return 0; }\n")
    subprocess.run(["cc", "-shared", "-fPIC", str(old / "old.c"), "-o", str(old / "lib" / "libcrypto.so")], check=True)
    line = setup_py_error(src, RFN_OPENSSL_PREFIX=str(old))
    assert line.startswith(f"error: RFN_OPENSSL_PREFIX={old} holds no OpenSSL 3 "
                           "(no libcrypto in its lib64/ or lib/ provides EVP_MD_fetch)"), line
    assert "unset it" in line


def test_openssl_prefix_with_only_the_runtime_library_builds(tmp_path: Path):
    """A prefix whose lib/ holds only libcrypto.so.3 (no libcrypto.so link
    name, no headers): the extension links it by path, needs libcrypto.so.3
    and finds it through the prefix's run path."""
    lib = subprocess.run(["cc", "-print-file-name=libcrypto.so.3"], capture_output=True, text=True).stdout.strip()
    if not os.path.isabs(lib):
        pytest.skip("no libcrypto.so.3 on this machine")
    prefix = tmp_path / "openssl3"
    (prefix / "lib").mkdir(parents=True)
    (prefix / "lib" / "libcrypto.so.3").symlink_to(os.path.realpath(lib))
    src = copy_sources(tmp_path / "checkout")
    proc = build_inplace(src, RFN_OPENSSL_PREFIX=str(prefix))
    assert proc.returncode == 0, proc.stderr[-3000:]
    [so] = list((src / "runpod_flash_native").glob("_fingerprint*.so"))
    assert "libcrypto.so.3" in needed_libs(so)
    assert str(prefix / "lib") in ":".join(readelf_dynamic(so, "RUNPATH") + readelf_dynamic(so, "RPATH"))


def test_windows_is_refused_before_any_compiler_runs(tmp_path: Path):
    """setup.py on Windows (sys.platform faked): one line saying it is not
    supported and what to use instead; no compiler, pkg-config or linker
    probe has run (each is a recorder here)."""
    src = copy_sources(tmp_path / "checkout")
    log = tmp_path / "ran.log"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("cc", "gcc", "clang", "pkg-config", "ld", "otool"):
        recorder = bin_dir / tool
        recorder.write_text(f"#!/bin/sh\necho {tool} \"$@\" >> {log}\nexit 1\n")
        recorder.chmod(0o755)
    env = fresh_env()
    env.update(PATH=f"{bin_dir}:{env.get('PATH', '')}", CC=str(bin_dir / "cc"), PKG_CONFIG=str(bin_dir / "pkg-config"))
    fake = ("import runpy, sys; sys.platform = 'win32'; sys.argv = ['setup.py', 'build_ext', '--inplace']; "
            "runpy.run_path('setup.py', run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", fake], cwd=src, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == [
        "error: runpod_flash_native does not build on Windows (its C core is POSIX); "
        "install it inside WSL 2 (a Linux distribution) and run flash-native there, "
        "or keep using runpod-flash's own `flash build` on Windows."
    ]
    assert not log.exists(), log.read_text()
    assert not (src / "build").exists()


def _run_setup_as_darwin(src: Path, tmp_path: Path, otool_output: str | None) -> subprocess.CompletedProcess[str]:
    """setup.py --name with sys.platform faked to darwin: the libcrypto search
    runs (it is done before setup()), nothing is compiled but its link probes.
    pkg-config fails; ``otool -L`` prints ``otool_output`` (None: no otool)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if otool_output is not None:
        (bin_dir / "otool").write_text(f"#!/bin/sh\necho \"$@\" >> {tmp_path / 'otool.log'}\n"
                                       f"cat <<'OUT'\n{otool_output}\nOUT\n")
        (bin_dir / "otool").chmod(0o755)
    env = fresh_env()
    env.update(PATH=f"{bin_dir}:/usr/bin:/bin", PKG_CONFIG="false")
    # setuptools imported first: its import reads darwin's build configuration
    fake = ("import runpy, sys, setuptools.command.build_ext; sys.platform = 'darwin'; "
            "sys.argv = ['setup.py', '--name']; runpy.run_path('setup.py', run_name='__main__')")
    return subprocess.run([sys.executable, "-c", fake], cwd=src, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(any(os.path.exists(p) for p in ("/opt/homebrew", "/usr/local/opt/openssl@3", "/opt/local")),
                    reason="a macOS-style OpenSSL prefix exists on this machine")
def test_macos_without_openssl3_says_what_to_install(tmp_path: Path):
    src = copy_sources(tmp_path / "checkout")
    proc = _run_setup_as_darwin(src, tmp_path, otool_output=None)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("error: runpod_flash_native needs OpenSSL 3's libcrypto and none was found"), line
    assert "brew install openssl@3" in line and "RFN_OPENSSL_PREFIX" in line


@pytest.mark.skipif(any(os.path.exists(p) for p in ("/opt/homebrew", "/usr/local/opt/openssl@3", "/opt/local")),
                    reason="a macOS-style OpenSSL prefix exists on this machine")
def test_macos_takes_the_libcrypto_pythons_hashlib_links(tmp_path: Path):
    """No pkg-config, no Homebrew or MacPorts: the libcrypto `otool -L`
    shows _hashlib linking is used (here this machine's libcrypto.so.3 under
    a prefix, named as Homebrew names its dylib)."""
    lib = subprocess.run(["cc", "-print-file-name=libcrypto.so.3"], capture_output=True, text=True).stdout.strip()
    if not os.path.isabs(lib):
        pytest.skip("no libcrypto.so.3 on this machine")
    prefix = tmp_path / "Cellar" / "openssl@3"
    (prefix / "lib").mkdir(parents=True)
    (prefix / "lib" / "libcrypto.3.dylib").symlink_to(os.path.realpath(lib))
    src = copy_sources(tmp_path / "checkout")
    otool = (f"/x/lib-dynload/_hashlib.so:\n"
             f"\t{prefix}/lib/libssl.3.dylib (compatibility version 3.0.0, current version 3.0.0)\n"
             f"\t{prefix}/lib/libcrypto.3.dylib (compatibility version 3.0.0, current version 3.0.0)\n"
             f"\t/usr/lib/libSystem.B.dylib (compatibility version 1.0.0, current version 1345.100.2)")
    proc = _run_setup_as_darwin(src, tmp_path, otool_output=otool)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "runpod-flash-native", proc.stdout
    import _hashlib

    assert (tmp_path / "otool.log").read_text().split() == ["-L", _hashlib.__file__]

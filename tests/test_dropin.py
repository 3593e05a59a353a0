"""``flash-native build`` is ``flash build``: one paired build per case of
issue 24 (the same project built twice in identical copies, once by flash and
once by flash-native), comparing exit code, output (timings and the two
project paths normalized), manifest, archive members and what is left on
disk. Builds are offline (no requirements, no network; see test_patch)."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from test_patch import FLASH_NATIVE, _env, _offline_prefix

FLASH = "import sys; from runpod_flash.cli.main import app; app(prog_name='flash')"

WORKER = """\
from runpod_flash import Endpoint


@Endpoint(name="worker", cpu="cpu3c-1-2")
async def hello(data: dict) -> dict:
    return data
"""


@dataclass
class Build:
    rc: int
    output: str
    manifest: dict | None
    members: dict[str, bytes | None] | None
    disk: dict[str, str]


_TRACEBACK = re.compile(
    r"^Traceback \(most recent call last\):\n(?:[ \t].*\n|\n)*?\S.*\n"
    r"|^\nThe above exception was the direct cause of the following exception:\n\n"
    r"|^\nDuring handling of the above exception, another exception occurred:\n\n",
    re.M,
)


def _normalize(text: str, root: Path) -> str:
    """Paths and timings; and tracebacks flash's logger.exception prints (their
    frames and exception classes are necessarily ours): each becomes one line."""
    text = re.sub(r"(<TRACEBACK>\n)+", "<TRACEBACK>\n", _TRACEBACK.sub("<TRACEBACK>\n", text))
    text = re.sub(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ \|", "<DATE> |", text, flags=re.M)
    text = text.replace(str(root.parent), "<TMP>").replace(str(root.parent.resolve()), "<TMP>")
    text = re.sub(r"\d+(\.\d+)?\s?(ms|s)\b", "<T>", text)
    text = re.sub(r"\d+(\.\d+)? MB", "<MB>", text)
    return text


def _disk(top: Path) -> dict[str, str]:
    """What the build left in the copy's directory (the project and beside it):
    every entry, file contents, link targets."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = p.relative_to(top).as_posix()
            if rel.startswith("app/.flash/.build/runpod_flash/"):
                continue  # flash's bundled package, copied by flash's own code
            if rel == "app/.flash/source_index.json":
                continue  # flash-native's per-file index, README's one listed addition on disk
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = "link:" + os.readlink(p)
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = "dir"
            elif rel.endswith(("flash_manifest.json", ".tar.gz", ".pyc")):
                out[rel] = "file"  # contents compared separately
            else:
                text = p.read_bytes().decode("latin-1")
                text = re.sub(r"Generated at: \S+", "Generated at: <T>", text)
                out[rel] = "file:" + _normalize(text, top / "app")
    return out


def _read_build(root: Path, proc: subprocess.CompletedProcess[str]) -> Build:
    manifest_path = root / ".flash" / "flash_manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else None
    if manifest is not None:
        manifest.pop("generated_at", None)
    archive = root / ".flash" / "artifact.tar.gz"
    members = None
    if archive.exists():
        members = {}
        with tarfile.open(archive) as tar:
            for m in tar.getmembers():
                if m.name.startswith("./runpod_flash/"):
                    continue  # flash's own bundled package: same in both
                data = tar.extractfile(m).read() if m.isfile() else None  # type: ignore[union-attr]
                if m.name.endswith("flash_manifest.json") and data is not None:
                    loaded = json.loads(data)
                    loaded.pop("generated_at", None)
                    data = json.dumps(loaded, sort_keys=True).encode()
                if data is not None and m.name.startswith("./handler_"):
                    data = re.sub(rb"Generated at: \S+", b"Generated at: <T>", data)
                members[m.name] = data
    output = _normalize(proc.stdout + "\n--stderr--\n" + proc.stderr, root)
    return Build(proc.returncode, output, manifest, members, _disk(root.parent))


def _make(parent: Path, files: dict[str, str], setup: Callable[[Path], None] | None) -> Path:
    root = parent / "app"  # same name in both copies: the app name is the dir name
    root.mkdir(parents=True)
    for rel, body in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)
    if setup is not None:
        setup(root)
    return root


# root without the capabilities that bypass file permissions (a forked
# nobody cannot exec this interpreter, which lives under /root here)
NO_DAC = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-dac_override,-dac_read_search"]


def pair(tmp_path: Path, files: dict[str, str], setup: Callable[[Path], None] | None = None,
         permissions: bool = False, **env: str) -> tuple[Build, Build]:
    """(flash's build, flash-native's build) of two identical copies, run at once.
    permissions: file permissions apply to the builds (root's are bypassed)."""
    roots = {side: _make(tmp_path / side, files, setup) for side in ("flash", "native")}
    prefix = NO_DAC if permissions else _offline_prefix()
    procs = {}
    for side, code in (("flash", FLASH), ("native", FLASH_NATIVE)):
        root = roots[side]
        child_env = _env(HOME=str(root.parent), XDG_CONFIG_HOME=str(root.parent / "cfg"), COLUMNS="200", **env)
        child_env.pop("PYTHONDONTWRITEBYTECODE", None)  # a user's default: bytecode written
        procs[side] = subprocess.Popen(
            prefix + [sys.executable, "-c", code, "build"], cwd=root, env=child_env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
    results = {}
    for side, p in procs.items():
        out, err = p.communicate(timeout=300)
        results[side] = _read_build(roots[side], subprocess.CompletedProcess(p.args, p.returncode, out, err))
    return results["flash"], results["native"]


def assert_same(flash: Build, native: Build) -> None:
    assert native.rc == flash.rc, (flash.output, native.output)
    assert native.output == flash.output
    assert native.manifest == flash.manifest
    assert native.members == flash.members
    assert native.disk == flash.disk


def _pair_same(tmp_path: Path, files: dict[str, str], setup: Callable[[Path], None] | None = None,
               **kw: str) -> tuple[Build, Build]:
    flash, native = pair(tmp_path, files, setup, **kw)
    assert_same(flash, native)
    return flash, native


# ---- item 1 (a pyproject.toml flash never reads): tests/test_scope.py, one paired build per shape


# ---- item 2: the scanner imports each module on a fresh thread, as flash does --------------

THREAD_PROBE = """\
import asyncio, builtins, threading
from runpod_flash import Endpoint

me = threading.current_thread()
seen = builtins.__dict__.setdefault("_rfn_import_threads", [])
shared = any(t is me for t in seen)
seen.append(me)
kind = "thread" if me.name.startswith("Thread-") else "other"
try:  # an event loop another module's import set on its thread
    asyncio.get_event_loop()
    loop = "_loop"
except RuntimeError:
    loop = "_noloop"
asyncio.set_event_loop(asyncio.new_event_loop())


@Endpoint(name="{mod}_" + kind + ("_shared" if shared else "_fresh") + loop, cpu="cpu3c-1-2")
async def {mod}(data: dict) -> dict:
    return data
"""


def test_each_module_imports_on_its_own_thread(tmp_path):
    flash, _ = _pair_same(tmp_path, {
        "a.py": THREAD_PROBE.format(mod="a"), "b.py": THREAD_PROBE.format(mod="b"),
    })
    assert flash.rc == 0 and "b_thread_fresh_noloop" in flash.manifest["resources"]  # type: ignore[index]


# ---- item 3: the warning filters urllib3 and requests install at import --------------------

WARNS = """\
import warnings
from urllib3.exceptions import DependencyWarning, InsecureRequestWarning
from runpod_flash import Endpoint

for _ in range(2):
    warnings.warn("unverified request", InsecureRequestWarning)  # urllib3: always shown
warnings.warn("optional dependency missing", DependencyWarning)  # requests: ignored


@Endpoint(name="warns", cpu="cpu3c-1-2")
async def warns(data: dict) -> dict:
    return data
"""


def test_import_time_warning_filters_are_flash_s(tmp_path):
    flash, native = _pair_same(tmp_path, {"worker.py": WARNS})
    assert flash.rc == 0 and flash.output.count("InsecureRequestWarning") >= 2
    assert "DependencyWarning" not in flash.output


# ---- item 4: bytecode, as flash writes it ----------------------------------------------------

BYTECODE = """\
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared"))
import shared_lib
from runpod_flash import Endpoint


def check(x):
    assert (x, "always true")


@Endpoint(name="dwb_" + str(sys.dont_write_bytecode).lower(), cpu="cpu3c-1-2")
async def worker(data: dict) -> dict:
    return data
"""


def _shared_lib(root: Path) -> None:
    (root.parent / "shared").mkdir()
    (root.parent / "shared" / "shared_lib.py").write_text("VALUE = 1\n")


def test_bytecode_is_written_as_flash_writes_it(tmp_path):
    flash, _ = _pair_same(tmp_path, {"worker.py": BYTECODE}, _shared_lib)
    assert flash.rc == 0 and "dwb_false" in flash.manifest["resources"]  # type: ignore[index]
    assert any(k.startswith("shared/__pycache__/shared_lib.") for k in flash.disk)


def test_failed_build_leaves_what_flash_leaves(tmp_path):
    failing = BYTECODE + "\nraise RuntimeError('broken module')\n"
    flash, _ = _pair_same(tmp_path, {"worker.py": failing, "pkg/__init__.py": "", "pkg/ok.py": "X = 1\n"},
                          _shared_lib)
    assert flash.rc == 1


# ---- item 5: flash's messages -----------------------------------------------------------------


@pytest.mark.parametrize("gitignore", ["a\n!\n", "[z-a]\n", "ok\n[[:alpha:]]x\n", "\\\n"],
                         ids=["empty-negation", "bad-range", "nested-set-warning", "lone-escape"])
def test_gitignore_messages_are_flash_s(tmp_path, gitignore):
    _pair_same(tmp_path, {"worker.py": WORKER, ".gitignore": gitignore})


def _unsearchable(root: Path) -> None:
    for name in ("secret", "notes", "closed"):
        (root / name).chmod(0o644)  # listed, but nothing in it can be looked at
    (root / "locked").chmod(0o311)  # looked at, not listed


def test_unsearchable_directory_warning_is_flash_s(tmp_path):
    """flash names the first entry it stats (secret/b.txt after the ignored
    secret/a.md), nothing where every entry is ignored (notes/), and the
    directory it cannot list (locked/)."""
    flash, _ = _pair_same(tmp_path, {
        "worker.py": WORKER, "secret/a.md": "x\n", "secret/b.txt": "x\n", "notes/n.md": "x\n",
        "closed/c.txt": "x\n", "locked/l.txt": "x\n",
    }, _unsearchable, permissions=True)
    warned = [line for line in flash.output.splitlines() if "Permission denied" in line]
    assert len(warned) == 3 and "secret/b.txt'" in warned[0] + warned[1] + warned[2], warned


# ---- item 6: a dangling symlink where the archive goes -----------------------------------------


def _dangling_archive_link(root: Path) -> None:
    (root / ".flash").mkdir()
    (root / ".flash" / "artifact.tar.gz").symlink_to("../../out.tar.gz")


def test_archive_written_through_a_dangling_symlink(tmp_path):
    flash, _ = _pair_same(tmp_path, {"worker.py": WORKER}, _dangling_archive_link)
    assert flash.disk["app/.flash/artifact.tar.gz"] == "link:../../out.tar.gz"
    assert flash.disk["out.tar.gz"] == "file" and flash.members


# ---- item 7: a bad RUNPOD_FLASH_NATIVE_THREADS -----------------------------------------------


@pytest.mark.parametrize("value", ["0", "auto"])
def test_bad_thread_knob_warns_once_and_builds(tmp_path, value):
    flash, native = pair(tmp_path, {"worker.py": WORKER}, RUNPOD_FLASH_NATIVE_THREADS=value)
    ours = [line for line in native.output.splitlines() if "RUNPOD_FLASH_NATIVE_THREADS" in line]
    assert len(ours) == 1 and repr(value) in ours[0]
    native.output = native.output.replace(ours[0] + "\n", "", 1)
    assert_same(flash, native)
    assert flash.rc == 0


# ---- item 8: a directory symlink loop in the project ------------------------------------------


def _loop(root: Path) -> None:
    (root / "data" / "self").symlink_to(".")


def test_symlink_loop_fails_and_leaves_no_build_directory(tmp_path):
    """flash ships ~40 copies of data/ (it follows the loop until ELOOP);
    flash-native refuses (README's divergence list) and leaves nothing of the
    build: no .flash/.build, no archive, no manifest."""
    flash, native = pair(tmp_path, {"worker.py": WORKER, "data/x.txt": "x\n"}, _loop)
    assert flash.rc == 0 and sum(1 for m in flash.members or () if m.endswith("/x.txt")) > 10
    assert native.rc == 1 and "SymlinkLoopError" not in native.output and "data/self" in native.output
    left = {k for k in native.disk if k.startswith("app/.flash")}
    assert left <= {"app/.flash", "app/.flash/logs", "app/.flash/logs/activity.log"}, left


@pytest.mark.parametrize("shape", ["self-loop", "missing-directory", "chain"])
def test_archive_link_shapes_as_flash_s_create_tarball(tmp_path, shape):
    """Differential, in process: flash's create_tarball and ours on the same
    odd symlink at output_path: the same exception (type, errno, filename)
    or the same file landing at the same place, the link left as it was."""
    from runpod_flash.cli.commands.build import create_tarball as flash_create_tarball

    from runpod_flash_native.build import create_tarball

    outcomes = {}
    for side, fn in (("flash", flash_create_tarball), ("native", create_tarball)):
        top = tmp_path / side
        (top / "b").mkdir(parents=True)
        (top / "b" / "f.txt").write_text("x\n")
        out = top / "artifact.tar.gz"
        if shape == "self-loop":
            out.symlink_to("artifact.tar.gz")
        elif shape == "missing-directory":
            out.symlink_to("nowhere/a.tar.gz")
        else:
            out.symlink_to("hop")
            (top / "hop").symlink_to("final.tar.gz")
        try:
            fn(top / "b", out, "app")
            error = None
        except OSError as e:
            error = (type(e), e.errno, str(e.filename).replace(str(top), "<TOP>"))
        outcomes[side] = (error, _disk(top))
    assert outcomes["native"] == outcomes["flash"]
    if shape == "chain":
        assert outcomes["flash"][1]["final.tar.gz"] == "file"

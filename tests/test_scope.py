"""Scoped source fingerprints (runpod_flash_native.scope).

The backbone is dynamic: generated projects are imported endpoint by endpoint
in a fresh interpreter with an audit hook recording every project file opened
or imported, and what an endpoint really touches must lie inside its scope
(no missed roll). The end-to-end test builds a real app with flash's own
``flash build`` (scoping wired in the way the patch wires it) and deploys it
through flash's real ``reconcile_and_provision_resources`` with provisioning
mocked.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from types import SimpleNamespace
from unittest.mock import AsyncMock, MagicMock, patch

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import runpod_flash_native
from runpod_flash_native import scope
from runpod_flash_native.build import compute_source_fingerprint, fingerprint_project, fingerprint_project_files

# the directory holding the package the tests import (site-packages after a
# plain `pip install .`, the checkout after an in-place build): never the
# source tree without its compiled extension
from reference import PACKAGE_ROOT

FP = "_FLASH_SOURCE_FINGERPRINT"


def write_tree(root: Path, files: dict[str, str]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


def resource(module: str, file_path: str | None = None, **extra) -> dict:
    return {
        "module_path": module,
        "file_path": file_path if file_path is not None else module.replace(".", "/") + ".py",
        "functions": [{"name": "f_" + module.replace(".", "_"), "module": module}],
        **extra,
    }


def scopes_of(root: Path, manifest: dict) -> dict[str, scope.Scope]:
    files, _ = fingerprint_project_files(root)
    return scope.analyze_scopes(root, files, manifest)


# ---------------------------------------------------------------------------
# the switch


@pytest.mark.parametrize(
    "value, expected",
    [("1", True), ("true", True), ("ON", True), ("yes", True), ("0", False), ("false", False), ("", False), ("off", False)],
)
def test_env_switch(tmp_path, value, expected):
    (tmp_path / "pyproject.toml").write_text("[tool.runpod-flash-native]\nscoped-rolls = true\n")
    assert scope.scoped_rolls_enabled(tmp_path, {scope.ENV_SWITCH: value}) is expected


def test_env_switch_rejects_garbage(tmp_path):
    with pytest.raises(ValueError, match=scope.ENV_SWITCH):
        scope.scoped_rolls_enabled(tmp_path, {scope.ENV_SWITCH: "maybe"})


@pytest.mark.parametrize(
    "text, expected",
    [
        (None, False),
        ("[project]\nname = 'x'\n", False),
        ("[tool.runpod-flash-native]\nscoped-rolls = true\n", True),
        ("[tool.runpod-flash-native]\nscoped-rolls = false\n", False),
    ],
)
def test_pyproject_switch(tmp_path, text, expected):
    if text is not None:
        (tmp_path / "pyproject.toml").write_text(text)
    assert scope.scoped_rolls_enabled(tmp_path, {}) is expected


@pytest.mark.parametrize(
    "text", ["[tool.runpod-flash-native]\nscoped-rolls = 'yes'\n", "[tool.runpod-flash-native\n"]
)
def test_pyproject_switch_errors_name_the_file(tmp_path, text):
    (tmp_path / "pyproject.toml").write_text(text)
    with pytest.raises(ValueError, match="pyproject.toml"):
        scope.scoped_rolls_enabled(tmp_path, {})


# ---------------------------------------------------------------------------
# the static analysis

BASE = {
    "a.py": "from shared import util\n",
    "b.py": "import shared.util\n",
    "shared/__init__.py": "",
    "shared/util.py": "X = 1\n",
    "only_a.py": "",
    "only_b.py": "",
    "config.json": "{}\n",
    "README.md": "# app\n",
}


def two_endpoints(tmp_path, a_extra: str = "", b_extra: str = "", files: dict | None = None):
    tree = dict(BASE)
    tree["a.py"] += a_extra
    tree["b.py"] += b_extra
    tree.update(files or {})
    write_tree(tmp_path, tree)
    manifest = {"resources": {"A": resource("a"), "B": resource("b")}}
    return scopes_of(tmp_path, manifest)


def test_static_imports_narrow_the_scopes(tmp_path):
    s = two_endpoints(tmp_path, "import only_a\n", "from only_b import *\n")
    assert not s["A"].whole_project and not s["B"].whole_project
    assert s["A"].excluded == ("b.py", "only_b.py")
    assert s["B"].excluded == ("a.py", "only_a.py")
    # data, docs and unreached modules are in every scope
    for name in "AB":
        assert {"config.json", "README.md", "shared/__init__.py", "shared/util.py"} <= set(s[name].files)


@pytest.mark.parametrize(
    "a_extra, files, reached",
    [
        ("from pkg import sub\n", {"pkg/__init__.py": "", "pkg/sub.py": ""}, {"pkg/__init__.py", "pkg/sub.py"}),
        ("from pkg.sub import X\n", {"pkg/__init__.py": "", "pkg/sub.py": "X = 1\n"}, {"pkg/__init__.py", "pkg/sub.py"}),
        ("from pkg import *\n", {"pkg/__init__.py": "", "pkg/s1.py": "", "pkg/q/__init__.py": ""},
         {"pkg/__init__.py", "pkg/s1.py", "pkg/q/__init__.py"}),
        # resolved by path: the project root's only_a.py (at runtime an
        # ImportError under the root, a real import under another base)
        ("import pkg\n", {"pkg/__init__.py": "from . import sub\n", "pkg/sub.py": "from .. import only_b\n"},
         {"pkg/__init__.py", "pkg/sub.py"}),
        ("import pkg\n", {"pkg/__init__.py": "from .sub import X\n", "pkg/sub.py": "from . import deep\n",
                          "pkg/deep.py": ""}, {"pkg/__init__.py", "pkg/sub.py", "pkg/deep.py"}),
        ("import importlib\nimportlib.import_module('pkg.sub')\n", {"pkg/__init__.py": "", "pkg/sub.py": ""},
         {"pkg/__init__.py", "pkg/sub.py"}),
        ("import importlib\nimportlib.import_module('.sub', 'pkg')\n", {"pkg/__init__.py": "", "pkg/sub.py": ""},
         {"pkg/__init__.py", "pkg/sub.py"}),
        ("__import__('pkg', fromlist=['sub'])\n", {"pkg/__init__.py": "", "pkg/sub.py": ""},
         {"pkg/__init__.py", "pkg/sub.py"}),
        ("def lazy():\n    import pkg.sub\n", {"pkg/__init__.py": "", "pkg/sub.py": ""},
         {"pkg/__init__.py", "pkg/sub.py"}),
        # an absolute name matches under every directory (PYTHONPATH, src/ layouts)
        ("import sibling\n", {"sub/sibling.py": "", "sibling.py": "", "sub/other.py": ""},
         {"sibling.py", "sub/sibling.py"}),
        ("from app.core import run\n", {"src/app/__init__.py": "", "src/app/core.py": "", "src/app/cli.py": ""},
         {"src/app/__init__.py", "src/app/core.py"}),
    ],
)
def test_resolved_import_forms(tmp_path, a_extra, files, reached):
    # B imports every module the case adds, so only what A reaches stays in A's scope
    b_imports = "".join(
        f"import {rel[:-3].replace('/', '.').removesuffix('.__init__')}\n"
        for rel in files if rel.endswith(".py")
    )
    s = two_endpoints(tmp_path, a_extra, b_imports, files)
    added = {rel for rel in files if rel.endswith(".py")}
    assert not s["A"].whole_project, s["A"].reason
    assert added & set(s["A"].files) == reached
    assert added - reached <= set(s["A"].excluded)


def test_relative_import_by_path(tmp_path):
    s = two_endpoints(tmp_path, "import pkg.sub\n", "import only_b\n",
                      {"pkg/__init__.py": "", "pkg/sub.py": "from .. import only_b\n"})
    assert "only_b.py" in s["A"].modules and not s["A"].whole_project
    s = two_endpoints(tmp_path, "import pkg.sub\n", files={"pkg/sub.py": "from ... import x\n"})
    assert s["A"].whole_project and "above the project root" in s["A"].reason


def test_import_resolves_next_to_the_importer_too(tmp_path):
    files = {"svc/__init__.py": "", "svc/a.py": "import helper\n", "svc/helper.py": "", "helper.py": "",
             "b.py": "import svc.helper\nimport helper\n"}
    write_tree(tmp_path, files)
    manifest = {"resources": {"A": resource("svc.a"), "B": resource("b")}}
    s = scopes_of(tmp_path, manifest)
    assert {"helper.py", "svc/helper.py", "svc/__init__.py"} <= set(s["A"].files)


@pytest.mark.parametrize(
    "a_extra, why",
    [
        ("import importlib\nname = 'only_b'\nimportlib.import_module(name)\n", "not a literal"),
        ("__import__(NAME)\n", "not a literal"),
        ("import pydantic\nX = pydantic.TypeAdapter(pydantic.ImportString).validate_python('onl' + y)\n",
         "part of a module's name"),
        ("exec('import only_x')\n", "exec()"),
        ("eval('1')\n", "eval()"),
        ("import sys\nsys.path.insert(0, 'x')\n", "sys.path"),
        ("from sys import path\n", "sys.path"),
        ("import runpy\n", "runpy"),
        ("import importlib.util\n", "importlib.util"),
        ("from importlib import util\n", "importlib.util"),
        ("import importlib\nimportlib.util.find_spec('x')\n", "importlib.util"),
        ("import os\nos.listdir('.')\n", "lists a directory"),
        ("import os\nfor _ in os.walk('.'): pass\n", "lists a directory"),
        ("from pathlib import Path\nPath('.').rglob('*')\n", "lists a directory"),
        ("SRC = open(NAME + '.py').read()\n", "Python source file built at run time"),
        ("def f(:\n", "cannot be parsed"),
        ("import importlib\nloaders = [importlib.import_module]\n", "other than by calling it"),
        ("f = getattr(__builtins__, '__import__')\n", "__import__"),
        ("run = exec\n", "builtins.exec"),
        ("import pickle\npickle.loads(b'')\n", "pickle.loads"),
        ("import torch\nm = torch.load('w.pt')\n", "weights_only"),
        ("import numpy\nnumpy.load('x.npy', allow_pickle=True)\n", "allow_pickle"),
        ("import yaml\nyaml.load(open('c.yaml'), Loader=yaml.Loader)\n", "may import modules"),
        ("import pandas\npandas.read_pickle('x')\n", "may import modules"),
    ],
)
def test_what_the_analysis_cannot_follow_makes_the_whole_project(tmp_path, a_extra, why):
    s = two_endpoints(tmp_path, a_extra)
    assert s["A"].whole_project and why in s["A"].reason and "a.py:" in s["A"].reason
    assert s["A"].files == tuple(sorted(s["A"].files)) and "b.py" in s["A"].files
    assert not s["B"].whole_project  # B's own closure is unaffected


@pytest.mark.parametrize(
    "a_extra",
    ["import torch\nm = torch.load('w.pt', weights_only=True)\n",
     "import yaml\nyaml.load(open('c.yaml'), Loader=yaml.SafeLoader)\n",
     "import json, os\nos.path.join('x', 'y')\njson.load(open('config.json'))\n",
     "import pickle\npickle.dumps(1)\n",
     "import re\nre.compile('x')\n",
     "import yaml\nyaml.load(open('c.yaml'), yaml.SafeLoader)\n",
     "import glob\nglob.glob('data/*.json')\n",
     "import importlib\nimportlib.import_module('.util', package=__package__)\n",
     "'''Run me with `python a.py`.'''\n"],
)
def test_safe_loaders_keep_the_scope(tmp_path, a_extra):
    assert not two_endpoints(tmp_path, a_extra)["A"].whole_project


def test_opaque_helper_in_the_closure_spreads_to_its_importers(tmp_path):
    s = two_endpoints(tmp_path, files={"shared/util.py": "exec('X = 1')\n"})
    assert s["A"].whole_project and s["B"].whole_project
    assert "shared/util.py" in s["A"].reason


def test_unlocatable_module_makes_the_whole_project(tmp_path):
    write_tree(tmp_path, BASE)
    manifest = {"resources": {"A": resource("a"), "G": resource("gone", "gone.py"), "C": {"client_mode": True}}}
    s = scopes_of(tmp_path, manifest)
    assert set(s) == {"A", "G"}  # client-mode resources get no fingerprint
    assert s["G"].whole_project and "not among the shipped files" in s["G"].reason


# ---------------------------------------------------------------------------
# applying it to a manifest


def built(tmp_path) -> tuple[list, dict]:
    write_tree(tmp_path, {**BASE, "a.py": "import only_a\nimport shared.util\n", "b.py": "import only_b\n"})
    files, global_fp = fingerprint_project_files(tmp_path)
    manifest = {
        "version": "1.0",
        "resources": {
            "A": resource("a", env={"KEEP": "1"}),
            "B": resource("b"),
            "C": {"client_mode": True, "imageName": "x"},
        },
        "source_fingerprint": global_fp,
    }
    return files, manifest


def test_switch_off_leaves_the_manifest_alone(tmp_path):
    files, manifest = built(tmp_path)
    before = json.dumps(manifest)
    assert scope.apply_scoped_fingerprints(tmp_path, files, manifest, enabled=False) is False
    assert scope.fingerprint_for_build(tmp_path, files, manifest, enabled=False) == manifest["source_fingerprint"]
    assert json.dumps(manifest) == before


def test_apply_writes_each_resource_its_own_fingerprint(tmp_path):
    files, manifest = built(tmp_path)
    global_fp = manifest["source_fingerprint"]
    assert scope.apply_scoped_fingerprints(tmp_path, files, manifest, enabled=True) is True
    assert manifest["source_fingerprint"] is None
    record = manifest[scope.MANIFEST_KEY]
    assert record["source_fingerprint"] == global_fp
    res = manifest["resources"]
    assert "env" not in res["C"] and "C" not in record["resources"]
    assert res["A"]["env"]["KEEP"] == "1"
    by_rel = {Path(f).relative_to(tmp_path).as_posix(): f for f in files}
    for name in "AB":
        entry = record["resources"][name]
        assert res[name]["env"][FP] == entry["fingerprint"]
        kept = [f for rel, f in by_rel.items() if rel not in entry["excluded"]]
        assert entry["fingerprint"] == compute_source_fingerprint(tmp_path, kept) != global_fp
    assert record["resources"]["A"]["excluded"] == ["b.py", "only_b.py"]


def test_whole_project_scope_equals_flashs_fingerprint(tmp_path):
    files, manifest = built(tmp_path)
    (tmp_path / "a.py").write_text("import importlib\nimportlib.import_module(__name__[:0] + 'only_a')\n")
    files, _ = fingerprint_project_files(tmp_path)
    manifest["source_fingerprint"] = None  # also works before flash's assignment
    assert scope.fingerprint_for_build(tmp_path, files, manifest, enabled=True) is None
    assert manifest["resources"]["A"]["env"][FP] == fingerprint_project(tmp_path)
    assert manifest[scope.MANIFEST_KEY]["resources"]["A"]["whole_project"] is True


def test_bad_env_raises_before_any_write(tmp_path):
    files, manifest = built(tmp_path)
    manifest["resources"]["B"]["env"] = ["not", "a", "dict"]
    before = copy.deepcopy(manifest)
    with pytest.raises(TypeError, match="'B'"):
        scope.apply_scoped_fingerprints(tmp_path, files, manifest, enabled=True)
    assert manifest == before


# ---------------------------------------------------------------------------
# no missed roll, proven dynamically

RECORDER = r"""
import importlib, json, os, sys
root = os.path.realpath(sys.argv[1])
seen = set()
busy = False

def note(p):
    full = os.path.realpath(os.fsdecode(p))
    if full.startswith(root + os.sep):
        seen.add(os.path.relpath(full, root).replace(os.sep, "/"))

def hook(event, args):
    global busy
    if busy or event not in ("open", "import"):
        return
    busy = True
    try:
        if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
            note(args[0])
        elif event == "import" and isinstance(args[1], (str, bytes, os.PathLike)):
            note(args[1])
    finally:
        busy = False

sys.addaudithook(hook)
sys.path.insert(0, root)
importlib.import_module(sys.argv[2])  # what flash's generated handler does
for m in list(sys.modules.values()):
    f = getattr(m, "__file__", None)
    if isinstance(f, str):
        note(f)
print(json.dumps(sorted(seen)))
"""

#: how module X pulls in module Y (None: only from a module in Y's own package)
IMPORT_STYLES = {
    "import": "import {mod}\n",
    "from_module": "from {parent} import {leaf}\n",
    "from_name": "from {mod} import VALUE as _v{n}\n",
    "import_module": "import importlib\nimportlib.import_module({mod!r})\n",
    "dunder": "__import__({mod!r})\n",
    "relative": None,
    "dynamic": "import importlib\nimportlib.import_module(''.join({parts!r}))\n",
}


@st.composite
def projects(draw):
    n_helpers = draw(st.integers(1, 4))
    helpers = [draw(st.sampled_from(["h{}", "lib.h{}", "lib.sub.h{}"])).format(i) for i in range(n_helpers)]
    n_eps = draw(st.integers(2, 3))
    eps = [draw(st.sampled_from(["ep{}", "eps.ep{}"])).format(i) for i in range(n_eps)]
    data = [draw(st.sampled_from(["data/d{}.json", "d{}.txt", "lib/d{}.cfg"])).format(k) for k in range(draw(st.integers(0, 2)))]
    extra_modules = draw(st.lists(st.sampled_from(["unused", "lib.unused", "tools-x.script"]), unique=True, max_size=2))

    def package_of(mod):
        return mod.rsplit(".", 1)[0] if "." in mod else None

    packages = sorted({".".join(m.split(".")[:k]) for m in helpers + eps + extra_modules
                       for k in range(1, m.count(".") + 1)})
    order = helpers + eps  # a module imports only modules before it: no cycles
    sources: dict[str, str] = {m: "" for m in order + packages + extra_modules}
    counter = [0]

    def import_line(importer, target):
        counter[0] += 1
        parent, _, leaf = target.rpartition(".")
        style = draw(st.sampled_from(sorted(IMPORT_STYLES)))
        if parent and importer_pkg(importer) == parent and draw(st.booleans()):
            style = "relative"  # same package: make relative imports common
        if style == "relative":
            if importer_pkg(importer) != parent or not parent:
                style = "import"
            else:
                return draw(st.sampled_from([f"from . import {leaf}\n", f"from .{leaf} import VALUE as _v{counter[0]}\n"]))
        if style == "from_module" and not parent:
            style = "import"
        if style == "dynamic" and draw(st.integers(0, 2)):
            style = "import_module"  # keep most projects analysable
        return IMPORT_STYLES[style].format(mod=target, parent=parent, leaf=leaf, n=counter[0],
                                           parts=[target[:1], target[1:]])

    def importer_pkg(mod):
        return mod if mod in packages else package_of(mod)

    def read_line(importer, rel):
        depth = importer.count(".") + (1 if importer in packages else 0)
        return f"import pathlib\n_d = (pathlib.Path(__file__).resolve().parents[{depth}] / {rel!r}).read_text()\n"

    for i, mod in enumerate(order):
        earlier = [m for m in order[:i] if m in helpers or m in eps]
        body = ""
        for target in draw(st.lists(st.sampled_from(earlier), unique=True, max_size=3)) if earlier else []:
            body += import_line(mod, target)
        if data and draw(st.booleans()):
            body += read_line(mod, draw(st.sampled_from(data)))
        sources[mod] = body + "VALUE = 1\n"
    for pkg in packages:  # __init__ side effects: import own members, read data
        # only members that import nothing: anything else can close a cycle
        # through this __init__ that real Python rejects too
        members = [m for m in helpers if package_of(m) == pkg and "import" not in sources[m]]
        body = ""
        if members and draw(st.booleans()):
            body += import_line(pkg, draw(st.sampled_from(members)))
        if data and draw(st.booleans()):
            body += read_line(pkg, draw(st.sampled_from(data)))
        sources[pkg] = body

    files = {}
    for mod, src in sources.items():
        if mod in packages:
            files[mod.replace(".", "/") + "/__init__.py"] = src
        else:
            files[mod.replace(".", "/") + ".py"] = src
    for rel in data:
        files[rel] = "payload\n"
    files["README.md"] = "# generated\n"
    files["requirements.txt"] = ""
    manifest = {"resources": {f"r{i}": resource(mod) for i, mod in enumerate(eps)}}
    target = draw(st.sampled_from(sorted(files)))
    return files, manifest, target


def record_imports(root: Path, module: str) -> set[str]:
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-B", "-c", RECORDER, str(root), module],
        cwd=root, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(proc.stdout))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(projects())
def test_no_missed_roll(project):
    files, manifest, target = project
    root = Path(tempfile.mkdtemp(prefix="rfn-scope-"))
    try:
        write_tree(root, files)
        shipped, global_fp = fingerprint_project_files(root)
        before = scope.scoped_fingerprints(root, shipped, manifest)
        shipped_rels = {Path(f).relative_to(root).as_posix() for f in shipped}
        recorded = {}
        for name, config in manifest["resources"].items():
            # only shipped files enter fingerprints (the import system also
            # probes __pycache__/*.pyc, which flash never ships)
            recorded[name] = record_imports(root, config["module_path"]) & shipped_rels
            assert recorded[name], name  # the recorder saw at least the module itself
            fp, sc = before[name]
            assert recorded[name] <= set(sc.files), (name, recorded[name] - set(sc.files), sc.reason)
            if sc.whole_project:
                assert fp == global_fp

        with open(root / target, "a") as fh:
            fh.write("# edited\n")
        after = scope.scoped_fingerprints(root, shipped, manifest)
        for name in manifest["resources"]:
            if target in recorded[name]:
                assert after[name][0] != before[name][0], (name, target)
            # and nothing rolls for a file outside its scope
            assert (after[name][0] != before[name][0]) == (target in before[name][1].files), (name, target)
    finally:
        shutil.rmtree(root, ignore_errors=True)


# ---------------------------------------------------------------------------
# end to end: a real `flash build`, flash's real deploy reconciliation

E2E_APP = {
    "a_worker.py": textwrap.dedent('''\
        from runpod_flash import Endpoint
        from common.helpers import shout


        @Endpoint(name="a_worker", cpu="cpu3c-1-2")
        async def a_task(data: dict) -> dict:
            return {"a": shout(data)}
        '''),
    "b_worker.py": textwrap.dedent('''\
        from runpod_flash import Endpoint
        from common.helpers import shout


        @Endpoint(name="b_worker", cpu="cpu3c-1-2")
        async def b_task(data: dict) -> dict:
            return {"b": shout(data)}
        '''),
    "common/__init__.py": "",
    "common/helpers.py": textwrap.dedent('''\
        import json
        import pathlib

        SETTINGS = json.loads((pathlib.Path(__file__).parent.parent / "settings.json").read_text())


        def shout(data):
            return str(data).upper() + SETTINGS["suffix"]
        '''),
    "settings.json": '{"suffix": "!"}\n',
    "README.md": "# two workers\n",
}

# flash-native wires scoping into `flash build` (runpod_flash_native.patch.build_hooks,
# bound by the patch): ManifestBuilder.build() hands its manifest to the
# compute_source_fingerprint call right after it, which makes it scoped.
WIRED_BUILD = """\
import sys
from runpod_flash_native.patch.main import main
sys.exit(main(["build"]))
"""


def _flash_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != scope.ENV_SWITCH}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_ROOT), env.get("PYTHONPATH")]))
    env["FLASH_NO_UPDATE_CHECK"] = "1"
    env["RUNPOD_FLASH_SILENCE_DEPRECATION"] = "1"
    env.update(extra)
    return env


def flash_build(root: Path, *, wired: bool, scoped: bool = False) -> str:
    argv = [sys.executable, "-c", WIRED_BUILD] if wired else [sys.executable, "-m", "runpod_flash.cli.main", "build"]
    env = _flash_env(HOME=str(root.parent), XDG_CONFIG_HOME=str(root.parent / "cfg"))
    if scoped:
        env[scope.ENV_SWITCH] = "1"
    proc = subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    return (root / ".flash" / "flash_manifest.json").read_text()


def flash_deploy(root: Path, local: dict, state: dict | None) -> tuple[list[str], dict]:
    """flash's real reconcile_and_provision_resources, provisioning mocked as
    tests/test_deployment.py does (here every deployed resource gets an
    endpoint). Returns the names flash provisioned or updated, and the
    manifest it pushed to the State Manager."""
    import runpod_flash.cli.utils.deployment as flash_deployment

    local = copy.deepcopy(local)
    app = AsyncMock()
    app.name = "app"
    if state is None:
        app.get_build_manifest = AsyncMock(side_effect=RuntimeError("no state yet"))
    else:
        app.get_build_manifest = AsyncMock(return_value=copy.deepcopy(state))
    app.update_build_manifest = AsyncMock()
    rolled = []

    def create(name, config, **kwargs):
        rolled.append(name)
        return SimpleNamespace(name=name)

    async def deploy(resource):
        return SimpleNamespace(endpoint_id=f"id-{resource.name}", endpoint_url=f"https://{resource.name}.example")

    manager = MagicMock()
    manager.get_or_deploy_resource = AsyncMock(side_effect=deploy)
    with (
        patch("runpod_flash.cli.utils.deployment.ResourceManager", return_value=manager),
        patch("runpod_flash.cli.utils.deployment.create_resource_from_manifest", side_effect=create),
        patch("runpod_flash.core.credentials.get_api_key", return_value="test-key"),
        patch("pathlib.Path.cwd", return_value=root),
    ):
        asyncio.run(flash_deployment.reconcile_and_provision_resources(app, "build-1", "dev", local))
    pushed = app.update_build_manifest.call_args[0][1]
    return sorted(rolled), json.loads(json.dumps(pushed))


def _without_timestamp(text: str) -> str:
    import re

    return re.sub(r'"generated_at": "[^"]*"', '"generated_at": "-"', text)


def test_e2e_scoped_build_and_deploy(tmp_path):
    root = tmp_path / "app"
    write_tree(root, E2E_APP)

    # switch off: flash's manifest byte for byte
    plain = flash_build(root, wired=False)
    off = flash_build(root, wired=True)
    assert _without_timestamp(off) == _without_timestamp(plain)
    rolled, state = flash_deploy(root, json.loads(off), None)
    assert rolled == ["a_worker", "b_worker"]

    # switching it on rolls every endpoint once (global -> scoped values)
    on = json.loads(flash_build(root, wired=True, scoped=True))
    assert on["source_fingerprint"] is None
    record = on[scope.MANIFEST_KEY]
    assert record["source_fingerprint"] == json.loads(plain)["source_fingerprint"]
    assert record["resources"]["a_worker"]["excluded"] == ["b_worker.py"]
    assert record["resources"]["b_worker"]["excluded"] == ["a_worker.py"]
    rolled, state = flash_deploy(root, on, state)
    assert rolled == ["a_worker", "b_worker"]

    # the same manifest again: nothing rolls
    rolled, state = flash_deploy(root, on, state)
    assert rolled == []

    def edit_and_deploy(rel, text):
        nonlocal state
        path = root / rel
        path.write_text(path.read_text() + text)
        rolled, state = flash_deploy(root, json.loads(flash_build(root, wired=True, scoped=True)), state)
        return rolled

    assert edit_and_deploy("a_worker.py", "# a's own change\n") == ["a_worker"]
    assert edit_and_deploy("common/helpers.py", "# shared\n") == ["a_worker", "b_worker"]
    assert edit_and_deploy("settings.json", "\n") == ["a_worker", "b_worker"]
    # the deployed endpoints carry the scoped values
    for name, entry in state[scope.MANIFEST_KEY]["resources"].items():
        assert state["resources"][name]["env"][FP] == entry["fingerprint"]


# ---------------------------------------------------------------------------
# runpod-flash-native status / plan


def cli(capsys, *args) -> tuple[int, str]:
    from runpod_flash_native import cli as cli_module

    capsys.readouterr()
    code = cli_module.main([str(a) for a in args])
    return code, capsys.readouterr().out


def status_project(root: Path, *, scoped: bool) -> dict:
    files, manifest = built(root)
    if scoped:
        assert scope.apply_scoped_fingerprints(root, files, manifest, enabled=True)
    (root / ".flash").mkdir(exist_ok=True)
    (root / ".flash" / "flash_manifest.json").write_text(json.dumps(manifest))
    return manifest


def edit(root: Path, rel: str) -> None:
    with open(root / rel, "a") as fh:
        fh.write("# edited\n")


def test_status_global_manifest_tells_code_from_other_changes(tmp_path, capsys):
    status_project(tmp_path, scoped=False)
    assert cli(capsys, "fingerprint", "--index", tmp_path / ".flash/source_index.json", tmp_path)[0] == 0
    edit(tmp_path, "README.md")
    code, out = cli(capsys, "status", "--json", tmp_path)
    report = json.loads(out)
    assert code == 1 and report["fingerprint_mode"] == "global"
    assert report["rolls"] == ["A", "B"] and report["scoped_rolls"] == ["A", "B"]  # README is in every scope
    for name in "AB":
        ep = report["endpoints"][name]
        assert ep["flash_rolls"] and ep["scope_changed"] and not ep["own_code_changed"]
        assert ep["changed_files"] == ["README.md"]
    code, out = cli(capsys, "status", tmp_path)
    assert "the next deploy rolls 2 endpoint(s), none of their code changed" in out

    edit(tmp_path, "only_a.py")  # imported by A only
    report = json.loads(cli(capsys, "status", "--json", tmp_path)[1])
    assert report["rolls"] == ["A", "B"]  # flash's rule: the manifest is flash's
    a, b = report["endpoints"]["A"], report["endpoints"]["B"]
    assert a["own_code_changed"] and a["changed_files"] == ["README.md", "only_a.py"]
    assert not b["own_code_changed"] and b["changed_files"] == ["README.md"]


def test_status_scoped_manifest_rolls_only_the_changed_scope(tmp_path, capsys):
    status_project(tmp_path, scoped=True)
    code, out = cli(capsys, "status", "--json", tmp_path)
    assert code == 0 and json.loads(out)["rolls"] == []
    edit(tmp_path, "only_b.py")
    code, out = cli(capsys, "status", "--json", tmp_path)  # no index: scoped fingerprints decide
    report = json.loads(out)
    assert code == 1 and report["fingerprint_mode"] == "scoped"
    assert report["recorded_fingerprint"] == json.loads(
        (tmp_path / ".flash/flash_manifest.json").read_text())[scope.MANIFEST_KEY]["source_fingerprint"]
    assert report["rolls"] == report["scoped_rolls"] == ["B"]
    # one answer per endpoint: what the next deploy of this (scoped) build rolls
    assert [n for n, ep in report["endpoints"].items() if ep["flash_rolls"]] == ["B"]
    assert [n for n, ep in report["endpoints"].items() if ep["rolls"]] == ["B"]
    assert report["global_fingerprint_rolls"] == ["A", "B"]  # labelled: flash's global fingerprint
    assert report["endpoints"]["A"]["own_code_changed"] is False
    code, out = cli(capsys, "status", tmp_path)
    assert "the next deploy rolls 1 endpoint(s): B" in out and "A keep(s) its fingerprint" in out


def test_plan_says_who_keeps_its_fingerprint(tmp_path, capsys):
    deployed = status_project(tmp_path, scoped=True)
    deployed["resources_endpoints"] = {"A": "https://a", "B": "https://b", "C": "https://c"}
    edit(tmp_path, "only_a.py")
    files, local = built_again(tmp_path)
    (tmp_path / "local.json").write_text(json.dumps(local))
    (tmp_path / "state.json").write_text(json.dumps(deployed))
    code, out = cli(capsys, "plan", "--json", tmp_path / "local.json", tmp_path / "state.json")
    data = json.loads(out)
    assert code == 0 and data["update"] == ["A"] and data["reuse"] == ["B", "C"]
    assert set(data["keeps_fingerprint"]) == {"B"}
    assert "only_a.py" in data["keeps_fingerprint"]["B"]
    code, out = cli(capsys, "plan", tmp_path / "local.json", tmp_path / "state.json")
    assert "keeps fingerprint  B: no file in its scope changed" in out
    # a global local manifest gets no such notes
    (tmp_path / "state.json").write_text(json.dumps(built(tmp_path)[1]))
    (tmp_path / "local.json").write_text(json.dumps(built(tmp_path)[1]))
    assert "keeps_fingerprint" not in json.loads(
        cli(capsys, "plan", "--json", tmp_path / "local.json", tmp_path / "state.json")[1])


def built_again(root: Path) -> tuple[list, dict]:
    files, global_fp = fingerprint_project_files(root)
    manifest = {"version": "1.0", "resources": {"A": resource("a", env={"KEEP": "1"}), "B": resource("b"),
                                                "C": {"client_mode": True, "imageName": "x"}},
                "source_fingerprint": global_fp}
    assert scope.apply_scoped_fingerprints(root, files, manifest, enabled=True)
    return files, manifest


def test_apply_follows_the_project_switch(tmp_path, monkeypatch):
    files, manifest = built(tmp_path)
    monkeypatch.delenv(scope.ENV_SWITCH, raising=False)
    before = json.dumps(manifest)
    assert scope.apply_scoped_fingerprints(tmp_path, files, manifest) is False  # no pyproject.toml
    (tmp_path / "pyproject.toml").write_text("[tool.runpod-flash-native]\nscoped-rolls = true\n")
    monkeypatch.setenv(scope.ENV_SWITCH, "0")  # the environment wins
    assert scope.apply_scoped_fingerprints(tmp_path, files, manifest) is False
    assert json.dumps(manifest) == before
    monkeypatch.delenv(scope.ENV_SWITCH)
    assert scope.apply_scoped_fingerprints(tmp_path, files, manifest) is True
    assert manifest["source_fingerprint"] is None


def test_other_endpoints_dependencies_are_shared(tmp_path):
    # B's dependencies go into the tarball A runs from too: they count for A,
    # B's other code does not
    def fps(b_source):
        write_tree(tmp_path, {**BASE, "b.py": b_source})
        files, _ = fingerprint_project_files(tmp_path)
        manifest = {"resources": {"A": resource("a"), "B": resource("b")}}
        return {n: fp for n, (fp, _) in scope.scoped_fingerprints(tmp_path, files, manifest).items()}

    deco = "@Endpoint(name='b', dependencies={deps})\ndef f():\n    return {ret}\n"
    base = fps(deco.format(deps="['numpy']", ret=1))
    other_code = fps(deco.format(deps="['numpy']", ret=2))
    other_deps = fps(deco.format(deps="['numpy==2.0']", ret=1))
    assert other_code["A"] == base["A"] and other_code["B"] != base["B"]
    assert other_deps["A"] != base["A"] and other_deps["B"] != base["B"]
    no_deps = fps("def f():\n    return 1\n")
    write_tree(tmp_path, {**BASE, "b.py": "def f():\n    return 1\n"})
    files, _ = fingerprint_project_files(tmp_path)
    kept = [f for f in files if Path(f).name != "b.py"]
    assert no_deps["A"] == compute_source_fingerprint(tmp_path, kept)  # plain framing without declarations


def test_build_with_a_broken_pyproject_gets_flash_fingerprint_and_a_warning(tmp_path, monkeypatch, capsys):
    """flash never reads pyproject.toml, so a broken one must not fail
    `flash-native build`: the build gets flash's global fingerprint (every
    endpoint rolls: nothing missed) and one warning naming the file; an
    invalid FLASH_NATIVE_SCOPED_ROLLS value still fails."""
    from runpod_flash_native.patch import build_hooks as _build_hooks

    root = tmp_path / "app"
    write_tree(root, {"worker.py": "x = 1\n", "pyproject.toml": "[tool.runpod-flash-native\nscoped-rolls = true\n"})
    files = [root / "worker.py", root / "pyproject.toml"]
    monkeypatch.delenv(scope.ENV_SWITCH, raising=False)
    with pytest.raises(ValueError, match="invalid TOML"):
        scope.scoped_rolls_enabled(root)
    _build_hooks._handover.manifest = {"resources": {}}
    got = _build_hooks.compute_source_fingerprint(root, files)
    assert got == compute_source_fingerprint(root, files)
    err = capsys.readouterr().err
    assert "pyproject.toml" in err and "invalid TOML" in err and "scoped rolls are off" in err
    monkeypatch.setenv(scope.ENV_SWITCH, "maybe")
    _build_hooks._handover.manifest = {"resources": {}}
    with pytest.raises(ValueError, match=scope.ENV_SWITCH):
        _build_hooks.compute_source_fingerprint(root, files)


# ---------------------------------------------------------------------------
# a pyproject.toml flash never reads never breaks the build (issue 24, item 1)

# paired builds; "unreadable" is below (root reads any file, and nobody cannot
# run this interpreter, so that shape is checked in a child dropped to nobody)
PYPROJECT_SHAPES = ["tool_string", "tool_array", "directory", "fifo", "symlink_loop"]


def _odd_pyproject(root: Path, shape: str) -> None:
    path = root / "pyproject.toml"
    if shape == "tool_string":
        path.write_text('tool = "x"\n')
    elif shape == "tool_array":
        path.write_text('[[tool]]\nname = "x"\n')
    elif shape == "directory":
        path.mkdir()
    elif shape == "fifo":
        os.mkfifo(path)
    elif shape == "symlink_loop":
        os.symlink("pyproject.toml", path)


def _paired_build(root: Path, *, native: bool) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-c", WIRED_BUILD] if native else [sys.executable, "-m", "runpod_flash.cli.main", "build"]
    env = _flash_env(HOME=str(root.parent), XDG_CONFIG_HOME=str(root.parent / "cfg"))
    # a FIFO read blocks forever: the timeout turns a hang into a failure
    return subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True, timeout=120)


def _build_state(root: Path) -> tuple[str, list[str]]:
    manifest = root / ".flash" / "flash_manifest.json"
    text = _without_timestamp(manifest.read_text()) if manifest.exists() else ""
    build = root / ".flash" / ".build"
    listing = sorted(p.relative_to(build).as_posix() for p in build.rglob("*")) if build.exists() else []
    return text, listing


@pytest.fixture(scope="module")
def odd_pyproject_builds(tmp_path_factory):
    """flash build and flash-native build of the same app beside each kind of
    pyproject.toml, the pairs built in parallel."""
    from concurrent.futures import ThreadPoolExecutor

    base = tmp_path_factory.mktemp("pyproject")
    jobs = []
    for shape in PYPROJECT_SHAPES:
        for native in (False, True):
            root = base / shape / ("native" if native else "flash") / "app"
            write_tree(root, E2E_APP)
            _odd_pyproject(root, shape)
            jobs.append((shape, native, root))

    def run(job):
        shape, native, root = job
        try:
            return job, _paired_build(root, native=native)
        except subprocess.TimeoutExpired as e:
            return job, e

    with ThreadPoolExecutor(max_workers=4) as pool:
        return {(shape, native): (root, proc) for (shape, native, root), proc in pool.map(run, jobs)}


@pytest.mark.parametrize("shape", PYPROJECT_SHAPES)
def test_odd_pyproject_builds_as_flash_does_with_one_warning(odd_pyproject_builds, shape):
    flash_root, flash = odd_pyproject_builds[(shape, False)]
    native_root, native = odd_pyproject_builds[(shape, True)]
    assert not isinstance(native, subprocess.TimeoutExpired), f"flash-native build hung ({shape})"
    assert not isinstance(flash, subprocess.TimeoutExpired)
    assert flash.returncode == 0, flash.stderr
    assert native.returncode == flash.returncode, native.stderr
    assert _build_state(native_root) == _build_state(flash_root)  # flash's manifest, handlers, files
    warnings = [line for line in native.stderr.splitlines() if line.startswith("flash-native: warning:")]
    assert len(warnings) == 1, native.stderr
    assert "pyproject.toml" in warnings[0] and "flash's global fingerprint" in warnings[0]
    assert "Handler generation failed" not in native.stdout + native.stderr


def test_unreadable_pyproject_is_one_warning_and_flashs_fingerprint(tmp_path, unprivileged, monkeypatch):
    from runpod_flash_native.patch import build_hooks as _build_hooks

    root = tmp_path / "app"
    write_tree(root, {"worker.py": "x = 1\n"})
    (root / "pyproject.toml").write_text("[tool.runpod-flash-native]\nscoped-rolls = true\n")
    (root / "pyproject.toml").chmod(0o000)
    (root / ".flash").mkdir(mode=0o777)  # as a build has it: flash made it, the index goes there
    (root / ".flash").chmod(0o777)
    monkeypatch.delenv(scope.ENV_SWITCH, raising=False)
    files = [root / "worker.py"]

    def build_fingerprint():
        import io

        err, saved = io.StringIO(), sys.stderr
        sys.stderr = err
        try:
            _build_hooks._handover.manifest = {"resources": {"w": resource("worker")}}
            return _build_hooks.compute_source_fingerprint(root, files), err.getvalue()
        finally:
            sys.stderr = saved

    got, err = unprivileged(build_fingerprint)
    assert got == compute_source_fingerprint(root, files)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("flash-native: warning:"), err
    assert "pyproject.toml" in lines[0] and "flash's global fingerprint" in lines[0]


# ---------------------------------------------------------------------------
# the analysis on source text alone (scope.analyze_source)


@pytest.mark.parametrize(
    "source, why",
    [
        # aliases and attribute forms follow bindings
        ("from builtins import exec as run\nrun('x')\n", "builtins.exec"),
        ("import builtins\nbuiltins.eval('1')\n", "builtins.eval"),
        ("import importlib as il\nf = il.import_module\nf(name)\n", "not a literal"),
        ("from importlib import import_module as load\nload(n)\n", "not a literal"),
        ("from os import walk\nfor _ in walk(d): pass\n", "not named literally"),
        ("from yaml import load, Loader\nload(s, Loader)\n", "safe Loader"),
        ("import pickle as p\nx = p.loads\n", "pickle.loads"),
        ("import importlib\nf(importlib)\n", "other than by calling it"),
        # import-machinery state
        ("__package__ = 'other'\n", "__package__"),
        ("__spec__ = None\n", "__spec__"),
        ("__name__ = 'x'\n", "__name__"),
        ("import sys\nsys.modules['x'] = object()\n", "sys.modules"),
        ("import builtins\nbuiltins.__import__ = hook\n", "builtins"),
        ("__builtins__['exec']\n", "__builtins__"),
        # computed names
        ("import importlib\ngetattr(importlib, 'import_' + n)('x')\n", "computed name"),
        ("from pathlib import Path\nPath(__file__).with_stem(n)\n", "with_stem"),
        ("open(__file__.replace('a', 'b'))\n", "__file__"),
        ("open(HERE + '/' + name + '.py')\n", "Python file name"),
        ("from pathlib import Path\nopen(Path(__file__).stem + '_b' + '.py')\n", "Python file name"),
        ("globals()[name]\n", "computed key"),
        ("import subprocess\nsubprocess.run(cmd)\n", "computed command"),
        ("import pydoc\npydoc.locate(name)\n", "computed argument"),
        # a relative import with an unknown package
        ("import importlib\nimportlib.import_module('.x', package=pkg)\n", "not a literal"),
    ],
)
def test_analyze_source_widens(source, why):
    facts = scope.analyze_source(source, "m.py")
    assert any(why in r for r in facts.opaque), facts.opaque


@pytest.mark.parametrize(
    "source",
    [
        "import re\nre.compile('x')\n",
        "import torch\n@torch.compile\ndef f(): pass\n",
        "import pickle\npickle.dumps(1)\n",
        "import yaml\nyaml.load(s, yaml.SafeLoader)\n",
        "import glob\nglob.glob('data/*.json')\n",
        "import os, glob\nglob.glob(os.path.join(HERE, 'data', '*.json'))\n",
        "import importlib\nimportlib.import_module('.sub', package=__package__)\n",
        "import os\nHERE = os.path.dirname(os.path.abspath(__file__))\n",
        "from pathlib import Path\nBASE = Path(__file__).resolve().parent\n",
        "import logging\nlog = logging.getLogger(__name__)\n",
        "x = 1\nx = x.y\n",  # a binding chain that only grows ends
        "if __name__ == '__main__':\n    pass\n",
        "import logging\nfrom pathlib import Path\nlog = logging.getLogger(Path(__file__).stem)\n",
        "def f(self, name):\n    return getattr(self, name)\n",
        "import subprocess, sys\nsubprocess.run([sys.executable, '-m', 'tools.job'])\n",
    ],
)
def test_analyze_source_keeps_ordinary_code(source):
    assert scope.analyze_source(source, "m.py").opaque == []


def test_analyze_source_records_what_it_follows():
    facts = scope.analyze_source(
        "from importlib import import_module as load\nload('01_jobs.worker')\n"
        "import importlib\nimportlib.import_module('.sub', package=__package__)\n"
        "'''Run with python tools/run.py'''\nX = b'pkg.mod:attr'\n",
        "m.py",
    )
    assert [(i.name, i.level) for i in facts.imports if i.name not in ("importlib",)] == [
        ("01_jobs.worker", 0), ("sub", 1)]
    assert "Run with python tools/run.py" in facts.strings and "pkg.mod:attr" in facts.strings


def test_strings_name_modules_as_whole_words(tmp_path):
    files = {"tools/__init__.py": "", "tools/job.py": "", "worker.py": "",
             "b.py": BASE["b.py"] + "import worker, tools.job\n"}
    s = two_endpoints(tmp_path, "X = ['python -m tools.job', 'workers', 'my_worker']\n", files=files)
    assert {"tools/job.py", "tools/__init__.py"} <= set(s["A"].modules)
    assert "worker.py" not in s["A"].modules and "worker.py" in s["A"].excluded
    s = two_endpoints(tmp_path, "X = 'see worker.py'\n", files=files)
    assert "worker.py" in s["A"].modules


def test_library_named_module_at_the_root_is_in_every_scope(tmp_path):
    s = two_endpoints(tmp_path, "import only_a\n", "import tokenize, only_b\n", files={"tokenize.py": "", "pkg/__init__.py": "", "pkg/json.py": ""})
    assert "tokenize.py" in s["A"].modules  # library code in A may import it
    assert "pkg/json.py" not in s["A"].modules  # inside a package: not an import root


def test_status_without_an_index_says_own_code_unknown(tmp_path, capsys):
    status_project(tmp_path, scoped=False)
    edit(tmp_path, "only_a.py")
    code, out = cli(capsys, "status", "--json", tmp_path)
    report = json.loads(out)
    assert code == 1 and report["index"] is None
    for name in "AB":  # flash's global fingerprint: both roll; whose code changed is not known
        ep = report["endpoints"][name]
        assert ep["rolls"] is True and ep["own_code_changed"] is None and ep["changed_files"] is None
    out = cli(capsys, "status", tmp_path)[1]
    assert "A: next deploy rolls it: yes; own code changed: unknown" in out
    assert "none of their code changed" not in out


def test_scoped_status_gives_one_answer_per_endpoint(tmp_path, capsys):
    status_project(tmp_path, scoped=True)
    edit(tmp_path, "only_b.py")
    out = cli(capsys, "status", tmp_path)[1]
    assert "the next deploy rolls 1 endpoint(s): B" in out
    assert "A: next deploy rolls it: no; own code changed: no; scope changed: no " \
           "(with flash's global fingerprint: yes)" in out
    assert "B: next deploy rolls it: yes" in out
    assert "flash rolls it" not in out


def test_public_names_stay_importable_from_scope():
    # README's Python API table and the names scripts used before the split
    for name in ["ENV_SWITCH", "MANIFEST_KEY", "FP_KEY", "FORMAT_VERSION", "Scope", "analyze_scopes",
                 "apply_scoped_fingerprints", "fingerprint_for_build", "format_status", "is_scoped_manifest",
                 "recorded_source_fingerprint", "scoped_fingerprints", "scoped_rolls_enabled", "status_report",
                 "plan_notes", "analyze_source"]:
        assert name in scope.__all__ and getattr(scope, name) is not None

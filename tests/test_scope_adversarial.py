"""Scoped rolls against an adversary: ground truth by running the endpoints.

Each project (2-4 endpoints, flash's ``@Endpoint`` decorator) is built with
``FLASH_NATIVE_SCOPED_ROLLS=1`` by flash-native's wired ``flash build`` (the
patch's ``ManifestBuilder`` -> ``compute_source_fingerprint`` handover). Each
endpoint is then run the way its worker runs it: from ``.flash/.build``, that
directory first on ``sys.path``, flash's generated ``handler_<name>.py``
imported and its ``handler`` called, under ``sys.addaudithook`` (installed by
a ``sitecustomize`` so that child processes record too) noting every file
opened, compiled, run or imported. Every shipped project file an endpoint
touched is then edited and the project fingerprinted again: that endpoint's
fingerprint must change. The truth is what ran, never the analysis' rules.

The rebuild after each edit is in-process (``scope.scoped_fingerprints`` over
the project's walked files and the built manifest): the same function the
build's ``apply_scoped_fingerprints`` calls; each project first checks it
reproduces the fingerprints the real build wrote.

Every class of issue 19 has cases here: library-named modules at an import
root (shadowing), module and file names in strings (``.py`` sources, bytes,
shipped data files), aliases and attribute forms of the APIs that load code,
import-machinery state, module names that are not identifiers, names built
at run time. ``RFN_SCOPE_ADVERSARIAL_ALL=1`` also runs the heavier cases
(marked ``slow``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from runpod_flash_native import scope
from runpod_flash_native.build import fingerprint_project_files

from reference import PACKAGE_ROOT

FP = "_FLASH_SOURCE_FINGERPRINT"

# Installed in the worker as sitecustomize (PYTHONPATH): records, in the run
# and in every Python child it starts, every file opened, compiled, run or
# imported, appending real paths to $RFN_AUDIT_LOG.
SITECUSTOMIZE = r'''
import atexit, os, sys
_log = os.environ.get("RFN_AUDIT_LOG")
if _log:
    _seen = set()
    _busy = [False]

    def _note(p):
        try:
            full = os.path.realpath(os.fsdecode(p))
        except (TypeError, ValueError):
            return
        if full in _seen:
            return
        _seen.add(full)
        with open(_log, "a") as fh:
            fh.write(full + "\n")

    def _hook(event, args):
        if _busy[0] or event not in ("open", "import", "compile", "cpython.run_file", "exec"):
            return
        _busy[0] = True
        try:
            if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
                _note(args[0])
            elif event == "import" and isinstance(args[1], (str, bytes, os.PathLike)):
                _note(args[1])
            elif event == "compile" and len(args) > 1 and isinstance(args[1], (str, bytes)) \
                    and not str(args[1]).startswith("<"):
                _note(args[1])
            elif event == "cpython.run_file":
                _note(args[0])
        finally:
            _busy[0] = False

    def _modules():
        _busy[0] = True
        for m in list(sys.modules.values()):
            f = getattr(m, "__file__", None)
            if isinstance(f, str):
                _note(f)

    sys.addaudithook(_hook)
    atexit.register(_modules)
'''

# What the worker does: flash's generated handler, imported and called.
WORKER = r'''
import importlib, json, os, sys
build = os.getcwd()
sys.path.insert(0, build)
mod = importlib.import_module(sys.argv[1])
result = mod.handler({"input": {}})
print(json.dumps(result, default=str))
'''

WIRED_BUILD = """\
import sys
from runpod_flash_native.patch.main import main
sys.exit(main(["build"]))
"""


def endpoint(name: str, body: str = "", ret: str = "1", *, imports: str = "", deco: str = "") -> str:
    return (
        "from runpod_flash import Endpoint\n" + textwrap.dedent(imports)
        + f"\n\n@Endpoint(name={name!r}, cpu='cpu3c-1-2'{deco})\n"
        + f"def {name}_task(data=None):\n"
        + textwrap.indent(textwrap.dedent(body) or "pass\n", "    ")
        + f"    return {{'ok': {ret}}}\n"
    )


def importer(*targets: str) -> str:
    """An endpoint that imports every target by a literal name: a target only
    it reaches statically is left out of the others' scopes unless the
    analysis sees how they load it."""
    return endpoint("zeta", "".join(f"importlib.import_module({t!r})\n" for t in targets), imports="import importlib\n")


def vendored_six() -> str:
    import six

    return Path(six.__file__).read_text()


# (id, files, {endpoint: must not be whole-project}, {endpoint: files its run
# must touch (the case really exercises the path)}) ---------------------------
# Each endpoint module is <name>.py unless the files say otherwise.

CASES: list[tuple[str, dict[str, str], set[str], dict[str, set[str]]]] = [
    # 1. shadowing: a stdlib-named module at the root, loaded by library code
    # (datetime's strptime imports _strptime) in the one endpoint calling it
    ("shadow_stdlib", {
        "alpha.py": endpoint("alpha", "import datetime\ndatetime.datetime.strptime('2020', '%Y')\n"),
        "beta.py": endpoint("beta"),
        "_strptime.py": "import datetime as _d\n\ndef _strptime_datetime(cls, s, fmt):\n    return cls(2020, 1, 1)\n",
        "gamma.py": endpoint("gamma", imports="import only_gamma\n"),
        "only_gamma.py": "G = 1\n",
        "zeta.py": importer("_strptime"),
    }, {"gamma"}, {"alpha": {"_strptime.py"}}),
    # an installed distribution's name (six) at the root, imported by a helper
    # only one endpoint uses
    ("shadow_installed", {
        "alpha.py": endpoint("alpha", imports="import helper_a\n"),
        "helper_a.py": "def f():\n    import dateutil.tz\n    return dateutil.tz.UTC\nf()\n",
        "six.py": vendored_six(),
        "beta.py": endpoint("beta", imports="import only_beta\n"),
        "only_beta.py": "B = 1\n",
        "zeta.py": importer("six"),
    }, set(), {"alpha": {"six.py"}}),
    # 2. names in strings: dictConfig's "()" factory, pydoc.locate, python -m,
    # python path/to/script.py, a bytes argument, logging.fileConfig's ini
    ("strings_in_sources", {
        "alpha.py": endpoint("alpha", textwrap.dedent('''\
            import logging.config
            logging.config.dictConfig({"version": 1, "handlers": {"h": {"()": "logmods.factory.make"}},
                                       "root": {"handlers": ["h"]}})
            '''), imports=""),
        "logmods/__init__.py": "",
        "logmods/factory.py": "import logging\n\ndef make():\n    return logging.NullHandler()\n",
        "beta.py": endpoint("beta", "import pydoc\nobj = pydoc.locate('plugins.alpha_plug.Plugin')\n"),
        "plugins/__init__.py": "",
        "plugins/alpha_plug.py": "class Plugin:\n    pass\n",
        "gamma.py": endpoint("gamma", textwrap.dedent('''\
            import subprocess, sys
            subprocess.run([sys.executable, "-m", "tools.job"], check=True)
            subprocess.run([sys.executable, b"scripts/run_me.py"], check=True)
            ''')),
        "tools/__init__.py": "",
        "tools/job.py": "print('job')\n",
        "scripts/run_me.py": "print('ran')\n",
        "delta.py": endpoint("delta", imports="import only_delta\n"),
        "only_delta.py": "D = 1\n",
        "zeta.py": importer("logmods.factory", "plugins.alpha_plug", "tools.job", "scripts.run_me"),
    }, {"delta"}, {"alpha": {"logmods/factory.py"}, "beta": {"plugins/alpha_plug.py"},
                   "gamma": {"tools/job.py", "scripts/run_me.py"}}),
    # names in shipped data files: an ini read by logging.fileConfig (a
    # literal file name), a YAML config naming a handler class
    ("strings_in_data", {
        "alpha.py": endpoint("alpha", "import logging.config, os\nlogging.config.fileConfig(os.path.join(os.path.dirname(__file__), 'logging.ini'))\n"),
        "logging.ini": textwrap.dedent('''\
            [loggers]
            keys=root
            [handlers]
            keys=h
            [formatters]
            keys=
            [logger_root]
            handlers=h
            [handler_h]
            class=inihandler.Handler
            args=()
            '''),
        "inihandler.py": "import logging\n\nclass Handler(logging.NullHandler):\n    pass\n",
        "beta.py": endpoint("beta", textwrap.dedent('''\
            import json, os, pydoc
            cfg = json.load(open(os.path.join(os.path.dirname(__file__), "settings.json")))
            pydoc.locate(cfg["factory"])
            '''), imports="import only_beta\n"),
        "settings.json": json.dumps({"factory": "factories.make"}),
        "factories.py": "def make():\n    return 1\n",
        "only_beta.py": "B = 1\n",
        "zeta.py": importer("inihandler", "factories"),
    }, set(), {"alpha": {"inihandler.py", "logging.ini"}, "beta": {"factories.py"}}),
    # 3. aliases and attribute forms
    ("aliases", {
        "alpha.py": endpoint("alpha", "load('amod')\n", imports="from importlib import import_module as load\n"),
        "amod.py": "A = 1\n",
        "beta.py": endpoint("beta", "import builtins\nbuiltins.__import__('bmod')\n"),
        "bmod.py": "B = 1\n",
        "gamma.py": endpoint("gamma", "imp = importlib\nm = imp.import_module('cmod')\n", imports="import importlib\n"),
        "cmod.py": "C = 1\n",
        "delta.py": endpoint("delta", "g = getattr(importlib, 'import_module')\ng('dmod')\n", imports="import importlib\n"),
        "dmod.py": "D = 1\n",
        "zeta.py": importer("amod", "bmod", "cmod", "dmod"),
    }, {"alpha", "beta", "gamma"}, {"alpha": {"amod.py"}, "beta": {"bmod.py"}, "gamma": {"cmod.py"},
                                    "delta": {"dmod.py"}}),
    ("aliases_opaque", {
        "alpha.py": endpoint("alpha", "run(open(os.path.join(os.path.dirname(__file__), 'snippet.txt')).read())\n",
                             imports="import os\nfrom builtins import exec as run\n"),
        "snippet.txt": "import hidden_a\n",
        "hidden_a.py": "H = 1\n",
        "beta.py": endpoint("beta", textwrap.dedent('''\
            import os
            from os import walk as w
            here = os.path.dirname(__file__)
            for d, _, fs in w(os.path.join(here, "plugs")):
                for f in fs:
                    if f.endswith("ins"):
                        open(os.path.join(d, f)).read()
            ''')),
        "plugs/p1.py": "P = 1\n",
        "gamma.py": endpoint("gamma", imports="import only_gamma\n"),
        "only_gamma.py": "G = 1\n",
        "zeta.py": importer("hidden_a", "plugs.p1"),
    }, {"gamma"}, {"alpha": {"hidden_a.py"}}),
    # 4. import-machinery state: __path__ extended, sys.modules written
    ("machinery_state", {
        "alpha.py": endpoint("alpha", "from pkg import hidden\n", imports="import pkg\n"),
        "pkg/__init__.py": "import os\n__path__.append(os.path.join(os.path.dirname(__file__), '..', 'extra'))\n",
        "extra/hidden.py": "H = 1\n",
        "beta.py": endpoint("beta", "import sys, bmod\nsys.modules['virtual'] = bmod\nimport virtual\n"),
        "bmod.py": "B = 1\n",
        "delta.py": endpoint("delta", imports="import pkg2.redir\n"),
        "pkg2/__init__.py": "",
        "pkg2/redir.py": "__package__ = 'other'\nfrom . import target\n",
        "pkg2/target.py": "T = 2\n",
        "other/__init__.py": "",
        "other/target.py": "T = 1\n",
        "zeta.py": importer("extra.hidden", "bmod", "other.target"),
    }, set(), {"alpha": {"extra/hidden.py"}, "beta": {"bmod.py"}, "delta": {"other/target.py"}}),
    # 5. module names that are not identifiers (flash's handlers import them
    # the same way)
    ("non_identifiers", {
        "alpha.py": endpoint("alpha", "import importlib\nimportlib.import_module('01_jobs.worker')\n"),
        "01_jobs/__init__.py": "",
        "01_jobs/worker.py": "W = 1\n",
        "beta.py": endpoint("beta", "import importlib\nimportlib.import_module('my-tool')\n"),
        "my-tool.py": "T = 1\n",
        "gamma.py": endpoint("gamma", imports="import only_gamma\n"),
        "only_gamma.py": "G = 1\n",
        # an endpoint in that package reaches the worker by a relative import
        "01_jobs/zeta.py": endpoint("zeta", imports="from . import worker\nimport importlib\nimportlib.import_module('my-tool')\n"),
    }, {"alpha", "beta", "gamma"}, {"alpha": {"01_jobs/worker.py"}, "beta": {"my-tool.py"}}),
    # 6. names built at run time
    ("computed", {
        "alpha.py": endpoint("alpha", "getattr(importlib, 'import_' + 'module')('cmod_a')\n", imports="import importlib\n"),
        "cmod_a.py": "A = 1\n",
        "beta.py": endpoint("beta", "from pathlib import Path\nPath(__file__).with_stem('side' + 'car').read_text()\n"),
        "sidecar.py": "S = 1\n",
        "gamma.py": endpoint("gamma", "import os\nopen(os.path.join(os.path.dirname(__file__), 'other' + '_g.py')).read()\n"),
        "other_g.py": "O = 1\n",
        "delta.py": endpoint("delta", "open(__file__.replace('delta', 'twin')).read()\n"),
        "twin.py": "T = 1\n",
        "zeta.py": importer("cmod_a", "sidecar", "other_g", "twin"),
    }, set(), {"alpha": {"cmod_a.py"}, "beta": {"sidecar.py"}, "gamma": {"other_g.py"}, "delta": {"twin.py"}}),
    # ordinary code that must stay narrow (the needless widenings)
    ("ordinary", {
        "alpha.py": endpoint("alpha", textwrap.dedent('''\
            import importlib, pickle, re, glob, os
            importlib.import_module(".sub", package=__package__) if __package__ else None
            pickle.dumps({"a": 1})
            re.compile("x+")
            glob.glob(os.path.join(os.path.dirname(__file__), "data", "*.json"))
            '''), imports="import yaml\n"),
        "beta.py": endpoint("beta", textwrap.dedent('''\
            """Run locally with `python beta.py`."""
            import yaml
            yaml.load("a: 1", yaml.SafeLoader)
            '''), imports="import only_beta\n"),
        "only_beta.py": "B = 1\n",
        "data/x.json": "{}\n",
    }, {"alpha", "beta"}, {}),
]

SLOW_CASES: list[tuple[str, dict[str, str], set[str], dict[str, set[str]]]] = [
    ("timeit_and_yaml_tags", {
        "alpha.py": endpoint("alpha", "import timeit\ntimeit.timeit('import tmod', number=1)\n"),
        "tmod.py": "T = 1\n",
        "beta.py": endpoint("beta", textwrap.dedent('''\
            import os, yaml
            yaml.unsafe_load(open(os.path.join(os.path.dirname(__file__), "conf.yaml")))
            ''')),
        "conf.yaml": "f: !!python/name:ytag.fn\n",
        "ytag.py": "def fn():\n    return 1\n",
        "gamma.py": endpoint("gamma", imports="import only_gamma\n"),
        "only_gamma.py": "G = 1\n",
        "zeta.py": importer("tmod", "ytag"),
    }, {"gamma"}, {"alpha": {"tmod.py"}, "beta": {"ytag.py"}}),
]

if os.environ.get("RFN_SCOPE_ADVERSARIAL_ALL"):
    CASES = CASES + SLOW_CASES


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (scope.ENV_SWITCH, "PYTHONPATH")}
    env["PYTHONPATH"] = str(PACKAGE_ROOT)
    env["HOME"] = str(tmp)
    env["XDG_CONFIG_HOME"] = str(tmp / "cfg")
    env["FLASH_NO_UPDATE_CHECK"] = "1"
    env["RUNPOD_FLASH_SILENCE_DEPRECATION"] = "1"
    env.update(extra)
    return env


def _build(root: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", WIRED_BUILD], cwd=root, env=_env(root.parent, **{scope.ENV_SWITCH: "1"}),
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, (root.name, proc.stdout, proc.stderr)
    return json.loads((root / ".flash" / "flash_manifest.json").read_text())


def _run_worker(root: Path, name: str, manifest: dict, audit_dir: Path) -> set[str]:
    """Run endpoint ``name`` as its deployed worker does (the environment
    flash's runtime sees there: the resource's ``env``, RUNPOD_ENDPOINT_ID,
    FLASH_RESOURCE_NAME) and return the build-relative paths it touched."""
    build = root / ".flash" / ".build"
    log = audit_dir / f"{root.parent.name}-{name}.log"
    log.unlink(missing_ok=True)
    resource_env = {k: str(v) for k, v in (manifest["resources"][name].get("env") or {}).items()}
    env = _env(root.parent, RFN_AUDIT_LOG=str(log), RUNPOD_ENDPOINT_ID=f"ep-{name}", FLASH_RESOURCE_NAME=name,
               **resource_env)
    env["PYTHONPATH"] = str(audit_dir)  # sitecustomize only: the build directory holds the rest
    proc = subprocess.run(
        [sys.executable, "-B", "-c", WORKER, f"handler_{name}"], cwd=build, env=env,
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, (root.name, name, proc.stdout, proc.stderr)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert isinstance(result, dict) and result.get("ok") == 1, (root.name, name, result)
    real_build = os.path.realpath(build)
    touched = set()
    for line in log.read_text().splitlines():
        if line.startswith(real_build + os.sep):
            touched.add(os.path.relpath(line, real_build).replace(os.sep, "/"))
    return touched


@pytest.fixture(scope="module")
def built_projects(tmp_path_factory):
    """Every case written and built once, the builds in parallel (each is
    mostly waiting on its subprocess)."""
    base = tmp_path_factory.mktemp("adversary")
    audit_dir = base / "audit"
    audit_dir.mkdir()
    (audit_dir / "sitecustomize.py").write_text(SITECUSTOMIZE)
    roots = {}
    for case_id, files, _, _ in CASES:
        root = base / case_id / "app"
        for rel, text in files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        roots[case_id] = root
    with ThreadPoolExecutor(max_workers=4) as pool:
        manifests = dict(zip(roots, pool.map(_build, roots.values())))
    return base, audit_dir, roots, manifests


def _fingerprints(root: Path, manifest: dict) -> dict[str, str]:
    files, _ = fingerprint_project_files(root)
    return {n: fp for n, (fp, _) in scope.scoped_fingerprints(root, files, manifest).items()}


def pytest_generate_tests(metafunc):
    if "case_id" in metafunc.fixturenames:
        metafunc.parametrize("case_id", [c[0] for c in CASES])


def test_no_missed_roll_when_the_endpoints_run(built_projects, case_id):
    _, audit_dir, roots, manifests = built_projects
    root, manifest = roots[case_id], manifests[case_id]
    narrow, must_touch = next(c[2:] for c in CASES if c[0] == case_id)
    record = manifest[scope.MANIFEST_KEY]["resources"]
    names = sorted(record)
    assert len(names) >= 2

    # the in-process rebuild is the build's own computation
    before = _fingerprints(root, manifest)
    assert before == {n: manifest["resources"][n]["env"][FP] for n in names}
    for name in narrow:
        assert not record[name]["whole_project"], (name, record[name]["reason"])

    shipped = {Path(f).relative_to(root).as_posix() for f in fingerprint_project_files(root)[0]}
    touched = {name: _run_worker(root, name, manifest, audit_dir) & shipped for name in names}
    for name in names:
        assert manifest["resources"][name]["file_path"] in touched[name], (name, touched[name])
    for name, rels in must_touch.items():
        assert rels <= touched[name], (name, rels - touched[name])

    missed = []
    for rel in sorted(set().union(*touched.values())):
        path = root / rel
        original = path.read_bytes()
        try:
            path.write_bytes(original + b"\n# edited\n")
            after = _fingerprints(root, manifest)
        finally:
            path.write_bytes(original)
        missed += [(name, rel) for name in names if rel in touched[name] and after[name] == before[name]]
    assert not missed, [(n, rel, record[n]["reason"]) for n, rel in missed]


# ---------------------------------------------------------------------------
# generated projects: 2-3 endpoints, each loading a module by one of the
# classes' means (drawn at random, seeded), plus an endpoint importing every
# such module by a literal name. A few by default; RFN_SCOPE_ADVERSARIAL_ALL=1
# runs many more.


def _snippet(kind: str, i: int) -> tuple[str, str, dict[str, str], str]:
    """(body, imports, files, the module file the endpoint's run loads)."""
    if kind == "dictconfig":
        body = (f"import logging.config\nlogging.config.dictConfig({{'version': 1, 'handlers': "
                f"{{'h': {{'()': 'lm{i}.make'}}}}, 'root': {{'handlers': ['h']}}}})\n")
        return body, "", {f"lm{i}.py": "import logging\n\ndef make():\n    return logging.NullHandler()\n"}, f"lm{i}.py"
    if kind == "locate":
        return f"import pydoc\npydoc.locate('pl{i}.P')\n", "", {f"pl{i}.py": "class P:\n    pass\n"}, f"pl{i}.py"
    if kind == "dash_m":
        body = f"import subprocess, sys\nsubprocess.run([sys.executable, '-m', 'tj{i}'], check=True)\n"
        return body, "", {f"tj{i}.py": "X = 1\n"}, f"tj{i}.py"
    if kind == "alias":
        return f"load('am{i}')\n", "from importlib import import_module as load\n", {f"am{i}.py": "A = 1\n"}, f"am{i}.py"
    if kind == "builtins":
        return f"import builtins\nbuiltins.__import__('bm{i}')\n", "", {f"bm{i}.py": "B = 1\n"}, f"bm{i}.py"
    if kind == "non_identifier":
        return f"import importlib\nimportlib.import_module('{i}x-mod')\n", "", {f"{i}x-mod.py": "N = 1\n"}, f"{i}x-mod.py"
    if kind == "ini":
        ini = (f"[loggers]\nkeys=root\n[handlers]\nkeys=h\n[formatters]\nkeys=\n[logger_root]\nhandlers=h\n"
               f"[handler_h]\nclass=ih{i}.Handler\nargs=()\n")
        body = f"import logging.config, os\nlogging.config.fileConfig(os.path.join(os.path.dirname(__file__), 'log{i}.ini'))\n"
        handler = "import logging\n\nclass Handler(logging.NullHandler):\n    pass\n"
        return body, "", {f"log{i}.ini": ini, f"ih{i}.py": handler}, f"ih{i}.py"
    if kind == "with_stem":
        body = f"from pathlib import Path\nPath(__file__).with_stem('sc' + '{i}').read_text()\n"
        return body, "", {f"sc{i}.py": "S = 1\n"}, f"sc{i}.py"
    if kind == "getattr":
        body = f"import importlib\ngetattr(importlib, 'import_' + 'module')('gm{i}')\n"
        return body, "", {f"gm{i}.py": "G = 1\n"}, f"gm{i}.py"
    if kind == "timeit":
        return f"import timeit\ntimeit.timeit('import tm{i}', number=1)\n", "", {f"tm{i}.py": "T = 1\n"}, f"tm{i}.py"
    if kind == "pieces":
        body = f"import pydoc\npydoc.locate('pc' + '{i}mod.P')\n"
        return body, "", {f"pc{i}mod.py": "class P:\n    pass\n"}, f"pc{i}mod.py"
    raise AssertionError(kind)


SNIPPETS = ["dictconfig", "locate", "dash_m", "alias", "builtins", "non_identifier", "ini", "with_stem",
            "getattr", "timeit", "pieces"]


def _generated(seed: int) -> tuple[str, dict[str, str], set[str], dict[str, set[str]]]:
    import random

    rng = random.Random(seed)
    files: dict[str, str] = {}
    must: dict[str, set[str]] = {}
    targets = []
    for k, name in enumerate(["alpha", "beta", "gamma"][: rng.randint(2, 3)]):
        kinds = rng.sample(SNIPPETS, rng.randint(1, 2))
        body, imports = "", ""
        for j, kind in enumerate(kinds):
            b, imp, extra, target = _snippet(kind, seed * 100 + k * 10 + j)
            body, imports = body + b, imports + imp
            files.update(extra)
            must.setdefault(name, set()).add(target)
            targets.append(target[:-3])
        files[f"{name}.py"] = endpoint(name, body, imports=imports)
    files["zeta.py"] = importer(*targets)
    return f"generated_{seed}", files, set(), must


GENERATED = [_generated(seed) for seed in range(40 if os.environ.get("RFN_SCOPE_ADVERSARIAL_ALL") else 3)]
CASES = CASES + GENERATED

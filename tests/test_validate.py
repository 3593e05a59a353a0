"""``validate_local_module_imports`` patched (flash's function with memoized
file-system reads, :mod:`runpod_flash_native.patch.validate`, plus the
import-node-only walk of :mod:`runpod_flash_native.patch.ast_memo`) against flash's
own, unpatched, on generated projects: the same outcome, the same error text,
the same warnings in the same order."""

from __future__ import annotations

import ast
import contextlib
import io
import pathlib
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import runpod_flash_native
from runpod_flash_native.patch import ast_memo as _astcache, validate as _validate

build = pytest.importorskip("runpod_flash.cli.commands.build")
local_modules = pytest.importorskip("runpod_flash.stubs.local_modules")
from runpod_flash.core.exceptions import LocalModuleResolutionError  # noqa: E402

PACKAGES = ["p0", "p1", "p1/q"]
MODULES = [f"{pkg}/m{i}.py" for pkg in PACKAGES for i in range(3)] + ["top.py", "other.py"]


def _dotted(rel: str) -> str:
    return rel[: -len(".py")].replace("/", ".")


# One import-ish line, in terms of the module that holds it.
def _lines() -> st.SearchStrategy[str]:
    target = st.sampled_from(MODULES + ["p0/nope.py", "zz/absent.py"])
    return st.one_of(
        target.map(lambda t: f"import {_dotted(t)}"),
        target.map(lambda t: f"from {_dotted(t).rpartition('.')[0] or '.'} import {_dotted(t).rpartition('.')[2]}"
                   if "." in _dotted(t) else f"import {_dotted(t)}"),
        st.sampled_from(["m0", "m1", "m2", "nope", "*"]).map(lambda n: f"from . import {n}"),
        st.sampled_from(["m0", "q", "nope"]).map(lambda n: f"from .. import {n}"),
        st.sampled_from(["", "m1", "q.m0"]).map(lambda n: f"from .{n} import thing" if n else "from . import *"),
        target.map(lambda t: f"import importlib\nimportlib.import_module({_dotted(t)!r})"),
        target.map(lambda t: f"__import__({_dotted(t)!r})"),
        st.just("import importlib\nimportlib.import_module(name)"),
        st.sampled_from(["import os, sys", "import json.decoder", "import requests", "x = 1"]),
    )


@st.composite
def projects(draw):
    bodies = {}
    for rel in MODULES:
        if draw(st.integers(0, 9)) == 0:
            continue  # the module does not exist
        kind = draw(st.sampled_from(["plain"] * 8 + ["syntax", "latin1"]))
        lines = draw(st.lists(_lines(), max_size=4))
        if draw(st.booleans()):
            lines = ["from runpod_flash import remote", *lines, "@remote(resource_config=None)", "def ep(x):",
                     "    return x"]
        body = "\n".join(lines) + "\n"
        if kind == "syntax":
            body += "def (:\n"
        bodies[rel] = body.encode("latin-1" if kind == "latin1" else "utf-8") + (b"s = '\xe9'\n" if kind == "latin1" else b"")
    for pkg in PACKAGES:
        if draw(st.booleans()):
            bodies[f"{pkg}/__init__.py"] = "\n".join(draw(st.lists(_lines(), max_size=2))).encode() + b"\n"
    names = sorted(bodies)
    excluded = draw(st.sets(st.sampled_from(names), max_size=3)) if names else set()
    link = draw(st.sampled_from([None, "inside", "outside"]))
    return bodies, excluded, link


def _write(root: Path, bodies: dict[str, bytes], link: str | None) -> None:
    for rel, body in bodies.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(body)
    if link is not None:
        (root / "p0").mkdir(exist_ok=True)
        target = root / "other.py" if link == "inside" else root.parent / "elsewhere.py"
        if link == "outside":
            target.write_text("import top\n")
        with contextlib.suppress(FileExistsError):
            (root / "p0" / "linked.py").symlink_to(target)
        top = root / "top.py"
        top.write_bytes((top.read_bytes() if top.exists() else b"") + b"import p0.linked\n")


def _outcome(files: list[Path], root: Path) -> tuple[object, str]:
    out = io.StringIO()
    build.console.file = out
    try:
        build.validate_local_module_imports(files, root)
        result: object = "ok"
    except LocalModuleResolutionError as e:
        result = ("LocalModuleResolutionError", str(e))
    except Exception as e:  # noqa: BLE001 - whatever flash raises, ours must too
        result = (type(e).__name__, str(e))
    finally:
        build.console.file = None  # flash's Console(): follow sys.stdout again
    return result, out.getvalue()


def _both(files: list[Path], root: Path):
    runpod_flash_native.unpatch_flash()
    flash = _outcome(files, root)
    with runpod_flash_native.patched() as active:
        assert active
        assert build.validate_local_module_imports is _validate.validate_local_module_imports
        ours = _outcome(files, root)
    return flash, ours


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(project=projects())
def test_patched_validation_answers_as_flash(tmp_path_factory, project):
    bodies, excluded, link = project
    root = tmp_path_factory.mktemp("app")
    _write(root, bodies, link)
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.relative_to(root).as_posix() not in excluded)
    flash, ours = _both(files, root)
    assert ours == flash


def test_the_generated_projects_reach_every_outcome(tmp_path):
    """The differential above is not vacuous: the same generator's kinds of
    project give a pass, the excluded-module error, the unresolvable-relative
    error, the outside-root error and a skipped-file warning under flash."""
    cases = {
        "ok": ({"top.py": b"import p0.m0\n", "p0/m0.py": b"import os\n"}, set(), None),
        "excluded": ({"top.py": b"import p0.m0\n", "p0/m0.py": b"x = 1\n"}, {"p0/m0.py"}, None),
        "relative": ({"p0/m0.py": b"from . import nope\nfrom runpod_flash import remote\n@remote(resource_config=None)\n"
                                  b"def ep(x):\n    return x\n"}, set(), None),
        "outside": ({"top.py": b"from runpod_flash import remote\n@remote(resource_config=None)\ndef ep(x):\n"
                                b"    return x\n"}, set(), "outside"),
        "skipped": ({"p0/m1.py": b"from . import nope\n"}, set(), None),
    }
    seen = {}
    for name, (bodies, excluded, link) in cases.items():
        root = tmp_path / name / "app"
        root.mkdir(parents=True)
        _write(root, bodies, link)
        files = sorted(p for p in root.rglob("*") if p.is_file() and p.relative_to(root).as_posix() not in excluded)
        flash, ours = _both(files, root)
        assert ours == flash
        seen[name] = flash
    assert seen["ok"] == ("ok", "")
    assert "exclude" in seen["excluded"][0][1] and "p0/m0.py" in seen["excluded"][0][1]
    assert "relative import" in seen["relative"][0][1]
    assert "outside the project root" in seen["outside"][0][1]
    assert seen["skipped"][0] == "ok" and "Skipping local-module resolution" in seen["skipped"][1]


def test_binding_and_memo_are_undone_after_success_and_error(tmp_path):
    root = tmp_path / "app"
    root.mkdir()
    (root / "a.py").write_text("import b\n")
    (root / "b.py").write_text("x = 1\n")
    with runpod_flash_native.patched():
        build.validate_local_module_imports([root / "a.py", root / "b.py"], root)
        assert build.Path is pathlib.Path and local_modules.Path is pathlib.Path
        assert _validate._memo == {} and _validate._depth == 0
        with pytest.raises(LocalModuleResolutionError):
            build.validate_local_module_imports([root / "a.py"], root)  # b.py excluded
        assert build.Path is pathlib.Path and local_modules.Path is pathlib.Path
        assert _validate._memo == {} and _validate._depth == 0


def test_nothing_is_remembered_from_one_call_to_the_next(tmp_path):
    """A file created between two calls is seen by the second."""
    root = tmp_path / "app"
    root.mkdir()
    (root / "a.py").write_text("import b\n")
    with runpod_flash_native.patched():
        build.validate_local_module_imports([root / "a.py"], root)  # b is external: fine
        (root / "b.py").write_text("x = 1\n")
        with pytest.raises(LocalModuleResolutionError, match="b.py"):
            build.validate_local_module_imports([root / "a.py"], root)


def test_concurrent_validations_agree(tmp_path):
    roots = []
    for i in range(4):
        root = tmp_path / f"app{i}"
        _write(root, {"top.py": b"import p0.m0\nimport p1.q.m1\n", "p0/m0.py": b"from . import m1\n",
                      "p0/m1.py": b"x = 1\n", "p1/q/m1.py": b"from ...p0 import m0\n"}, None)
        roots.append(root)
    # even apps ship everything (pass), odd ones leave out p0/m1.py (the excluded-module error)
    files = {r: sorted(p for p in r.rglob("*.py") if i % 2 == 0 or p.relative_to(r).as_posix() != "p0/m1.py")
             for i, r in enumerate(roots)}
    expected = {r: _both(files[r], r)[0] for r in roots}
    got: dict[Path, object] = {}
    with runpod_flash_native.patched():
        def run(r: Path) -> None:
            for _ in range(5):
                got[r] = _outcome_quiet(files[r], r)
        threads = [threading.Thread(target=run, args=(r,)) for r in roots]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert {r: got[r] for r in roots} == {r: expected[r][0] for r in roots}
    assert len({str(v) for v in got.values()}) == 2  # both outcomes occurred


def _outcome_quiet(files: list[Path], root: Path) -> object:
    try:
        build.validate_local_module_imports(files, root)
        return "ok"
    except LocalModuleResolutionError as e:
        return ("LocalModuleResolutionError", str(e))


def test_memo_path_outside_a_validation_is_a_plain_path(tmp_path):
    f = tmp_path / "x.txt"
    f.write_text("one")
    p = _validate._MemoPath(f)
    assert p.read_text(encoding="utf-8") == "one"
    f.write_text("two")
    assert p.read_text(encoding="utf-8") == "two"  # no memo outside a call
    assert p.resolve() == f.resolve() and p.is_file()
    assert p == f and hash(p) == hash(f)


STDLIB = Path(ast.__file__).parent


@pytest.mark.parametrize("name", ["ast.py", "pathlib.py", "typing.py", "dataclasses.py", "argparse.py"])
def test_walk_orders_are_ast_walks(name):
    tree = ast.parse((STDLIB / name).read_text(encoding="utf-8"))
    expected = list(ast.walk(tree))
    assert _astcache._walk_order(tree) == expected
    assert all(a is b for a, b in zip(_astcache._walk_order(tree), expected))
    mod = _astcache.flash_ast_imports
    src = (STDLIB / name).read_text(encoding="utf-8")
    cached = mod.parse(src)
    want = [n for n in ast.walk(cached) if isinstance(n, (ast.Import, ast.ImportFrom, ast.Call))]
    try:
        assert list(mod.walk(cached)) == want
        assert len(want) > 10
    finally:
        _astcache.clear()


def test_validate_not_patched_calls_flash_directly(tmp_path):
    """Called directly (no patch active), the wrapper runs flash's function."""
    runpod_flash_native.unpatch_flash()
    root = tmp_path / "app"
    root.mkdir()
    (root / "a.py").write_text("import b\n")
    (root / "b.py").write_text("x = 1\n")
    with pytest.raises(LocalModuleResolutionError, match="b.py"):
        _validate.validate_local_module_imports([root / "a.py"], root)
    _validate.validate_local_module_imports([root / "a.py", root / "b.py"], root)


# ---- linear in the number of modules (runpod_flash_native.patch.import_graph)


@contextlib.contextmanager
def _counting_walks():
    """Counts calls of flash's ``local_modules._walk`` (one per module walked),
    with flash's signature kept (the patch checks it)."""
    import functools

    real = local_modules._walk
    calls = [0]

    @functools.wraps(real)
    def counting(*args, **kwargs):
        calls[0] += 1
        return real(*args, **kwargs)

    local_modules._walk = counting
    try:
        yield calls
    finally:
        local_modules._walk = real


def _hub(root: Path, files: int, shared: int, extra: dict[str, bytes] | None = None) -> list[Path]:
    """``files`` modules that each import the package ``common``, whose
    ``__init__`` imports its ``shared`` modules: flash walks common's
    closure once per file."""
    bodies = {f"f{i}.py": b"import common\n" for i in range(files)}
    bodies["common/__init__.py"] = "".join(f"from . import s{j}\n" for j in range(shared)).encode()
    bodies.update({f"common/s{j}.py": b"import os\n" for j in range(shared)})
    bodies.update(extra or {})
    _write(root, bodies, None)
    return sorted(p for p in root.rglob("*.py"))


def test_each_module_is_walked_once_not_once_per_importer(tmp_path):
    root = tmp_path / "app"
    files = _hub(root, files=60, shared=40)
    runpod_flash_native.unpatch_flash()
    with _counting_walks() as flash_walks:
        flash = _outcome(files, root)
    with runpod_flash_native.patched(), _counting_walks() as our_walks:
        ours = _outcome(files, root)
    assert ours == flash == ("ok", "")
    modules = len(files)  # 60 + common/__init__ + 40
    assert flash_walks[0] > 60 * 41  # each file walks common's whole closure again
    # once per shipped file as flash's validation starts it, once per module it reaches
    assert our_walks[0] <= 2 * modules, our_walks[0]


@pytest.mark.parametrize("problem", ["excluded", "dynamic", "relative", "syntax"])
def test_a_problem_in_a_shared_module_reaches_every_importer_as_in_flash(tmp_path, problem):
    """One unclean module deep in the shared closure: every file that reaches
    it is answered by flash's own walk (its warnings once per importer, its
    error for the first), the rest are skipped."""
    body = {
        "excluded": b"import common.gone\n",
        "dynamic": b"import importlib\nimportlib.import_module(name)\n",
        "relative": b"from . import nope\n",
        "syntax": b"def (:\n",
    }[problem]
    root = tmp_path / "app"
    files = _hub(root, files=8, shared=5, extra={"common/s4.py": body, "common/gone.py": b"x = 1\n",
                                                 "lone.py": b"import os\n"})
    files = [f for f in files if f.name != "gone.py"]
    flash, ours = _both(files, root)
    assert ours == flash
    assert flash != ("ok", "")


def test_an_import_chain_deeper_than_flash_s_recursion_builds(tmp_path):
    """flash walks a closure by recursion: a chain of ~300 modules exceeds
    Python's recursion limit and its validation crashes with RecursionError
    (README, "What differs from flash"). A chain with nothing to say is
    answered without walking it per file."""
    root = tmp_path / "app"
    n = 400
    _write(root, {f"m{i}.py": (f"import m{i + 1}\n" if i < n - 1 else "x = 1\n").encode() for i in range(n)}, None)
    files = sorted(root.glob("*.py"))
    flash, ours = _both(files, root)
    assert flash[0][0] == "RecursionError"
    assert ours == ("ok", "")

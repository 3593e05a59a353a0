"""The memoizing ``ast`` stand-in the patch binds in flash's build modules."""

from __future__ import annotations

import ast
import io
import contextlib
from pathlib import Path

import pytest

from runpod_flash_native.patch import ast_memo as _astcache


def test_same_source_same_tree_and_walk_order():
    mod = _astcache.make_module()
    src = "import os\nfrom . import a, b\n\ndef f(x):\n    return [y for y in x]\n"
    t1 = mod.parse(src)
    t2 = mod.parse(str(src))  # an equal string, another object
    assert t1 is t2
    assert ast.dump(t1) == ast.dump(ast.parse(src))
    assert [type(n) for n in mod.walk(t1)] == [type(n) for n in ast.walk(ast.parse(src))]
    assert list(mod.walk(t1)) == list(mod.walk(t1))  # cached order, same node objects
    # a sub-node is walked afresh (not cached) and still in ast.walk's order
    func = t1.body[2]
    assert list(mod.walk(func)) == list(ast.walk(func))
    assert id(func) not in mod._rfn_cache.walks


def test_filename_and_mode_are_part_of_the_key():
    mod = _astcache.make_module()
    assert mod.parse("x", "a.py") is not mod.parse("x", "b.py")
    assert isinstance(mod.parse("1 + 2", mode="eval"), ast.Expression)
    assert isinstance(mod.parse("1 + 2"), ast.Module)


def test_syntax_errors_raise_every_time_with_ast_message():
    mod = _astcache.make_module()
    for _ in range(2):
        with pytest.raises(SyntaxError) as ours:
            mod.parse("def (:\n", "bad.py")
        with pytest.raises(SyntaxError) as stdlib:
            ast.parse("def (:\n", "bad.py")
        assert (ours.value.msg, ours.value.filename, ours.value.lineno) == (
            stdlib.value.msg, stdlib.value.filename, stdlib.value.lineno)
    assert mod._rfn_cache.trees == {}


def test_extra_arguments_bypass_the_cache():
    mod = _astcache.make_module()
    t = mod.parse("x = 1  # type: int\n", type_comments=True)
    assert t.body[0].type_comment == "int"
    assert mod._rfn_cache.trees == {}


def test_cache_stops_growing_at_its_cap(monkeypatch):
    monkeypatch.setattr(_astcache, "MAX_CACHED_SOURCE_CHARS", 10)
    mod = _astcache.make_module()
    a = mod.parse("x = 1\n")       # 6 chars: cached
    b = mod.parse("yy = 22\n")     # would pass 10: parsed, not cached
    assert mod.parse("x = 1\n") is a
    assert mod.parse("yy = 22\n") is not b
    assert mod._rfn_cache.chars == 6


def test_namespace_is_the_stdlib_one():
    mod = _astcache.make_module()
    for name in ("Import", "ImportFrom", "Call", "literal_eval", "unparse", "NodeVisitor"):
        assert getattr(mod, name) is getattr(ast, name)


def _project(root: Path) -> list[Path]:
    files = {
        "worker.py": "from runpod_flash import Endpoint, remote\nimport helpers.util\nfrom pkg import sub\n"
                     "@Endpoint(name='w', cpu='cpu3c-1-2', dependencies=['numpy==1.26'])\n"
                     "async def w(d):\n    return helpers.util.f(d)\n",
        "helpers/__init__.py": "from .util import f\n",
        "helpers/util.py": "import importlib\nfrom . import missing_sibling\n"
                           "def f(d):\n    return importlib.import_module(d)\n",
        "pkg/__init__.py": "",
        "pkg/sub.py": "from ..helpers import util\n",
        "broken.py": "def (:\n",
        "latin.py": b"x = '\xe9'\n",
        "ep_assign.py": "from runpod_flash import Endpoint\nep = Endpoint(name='lb', dependencies=['rich'])\n",
    }
    out = []
    for rel, content in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        (p.write_bytes if isinstance(content, bytes) else p.write_text)(content)
        out.append(p)
    return sorted(out)


def _run_flash_analyses(root: Path, files: list[Path]):
    from runpod_flash.cli.commands import build
    from runpod_flash.cli.commands.build_utils import scanner
    from runpod_flash.core.exceptions import LocalModuleResolutionError

    out = io.StringIO()
    results = []
    with contextlib.redirect_stdout(out):
        build.console.file = out
        try:
            build.validate_local_module_imports(files, root)
            results.append("validated")
        except LocalModuleResolutionError as e:
            results.append(("error", str(e)))
        results.append(build.extract_remote_dependencies(root))
        results.append([scanner.defines_endpoint(f) for f in files])
        results.append(scanner._analyze_cross_calls_ast(root / "worker.py", {"w"}, {"w"}))
    return results, out.getvalue()


def test_flash_build_analyses_answer_the_same_patched(tmp_path):
    import runpod_flash_native
    from runpod_flash.cli.commands import build

    root = tmp_path / "app"
    files = _project(root)
    try:
        runpod_flash_native.unpatch_flash()
        plain = _run_flash_analyses(root, files)
        with runpod_flash_native.patched() as active:
            assert active
            assert build.ast is _astcache.flash_ast
            first = _run_flash_analyses(root, files)
            again = _run_flash_analyses(root, files)  # now from the cache
            assert _astcache.flash_ast._rfn_cache.trees  # the cache was really used
        assert build.ast is ast
        assert _astcache.flash_ast._rfn_cache.trees == {}  # emptied by unpatch
    finally:
        build.console.file = None  # flash's Console(): follow sys.stdout again
    assert first == plain
    assert again == plain
    assert plain[0][1] == ["numpy==1.26", "rich"]  # the analyses saw the project at all
    assert "broken.py" in plain[1]  # and its warnings


def test_the_archive_step_lets_the_build_s_trees_go(tmp_path):
    """Nothing parses after the requirements: the patched create_tarball
    empties the cache before archiving (a build's trees are millions of
    objects every later collection would traverse), and the archive is
    still flash's."""
    import tarfile

    import runpod_flash_native

    build = pytest.importorskip("runpod_flash.cli.commands.build")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "m.py").write_text("x = 1\n")
    with runpod_flash_native.patched():
        tree = build.ast.parse("import os\n")
        assert build.ast.parse("import os\n") is tree
        cache = _astcache.flash_ast._rfn_cache
        assert cache.trees and cache.root_ids
        build.create_tarball(tmp_path / "b", tmp_path / "a.tar.gz", "app")
        assert not cache.trees and not cache.walks and not cache.root_ids and cache.chars == 0
        assert build.ast.parse("import os\n") is not tree
    with tarfile.open(tmp_path / "a.tar.gz") as tar:
        assert tar.extractfile("./m.py" if "./m.py" in tar.getnames() else "m.py").read() == b"x = 1\n"

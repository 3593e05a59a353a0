"""Compatibility with whatever runpod-flash and pathspec this interpreter has.

The same file runs in every environment of CI's compatibility matrix
(.ci/run step 1b: pathspec 0.11.2, 0.12.1, 1.0.4 under runpod-flash 1.21.0;
runpod-flash 1.14.0 and 1.20.1; step 1 is 1.21.0 + pathspec 1.1.1). Every
reference is the installed flash itself, with the installed pathspec:
``load_ignore_patterns`` / ``get_file_tree`` / the fingerprint on generated
trees and ``.gitignore`` lines (unterminated ``[``, ``[]``, ``[!]``, ``\\``,
``**`` forms, names holding ``[``, ``\\n``, spaces), ``patch_flash()`` and a
``flash build`` vs ``flash-native build`` comparison, and the deploy rule of
the installed release.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import pathspec
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

flash_ignore = pytest.importorskip("runpod_flash.cli.utils.ignore")
from runpod_flash.cli.commands import build as flash_build  # noqa: E402

import runpod_flash_native  # noqa: E402
from runpod_flash_native import patch as _patch, deployment  # noqa: E402
from runpod_flash_native import build as rfn_build  # noqa: E402
from runpod_flash_native import ignore as rfn_ignore  # noqa: E402

FLASH_VERSION = _patch._flash_version()
PATHSPEC_VERSION = pathspec.__version__
DIALECT = rfn_ignore.dialect_of_pathspec_version(PATHSPEC_VERSION)


def test_environment_is_one_this_package_was_verified_with():
    assert _patch.version_supported(FLASH_VERSION), FLASH_VERSION
    assert rfn_ignore.pathspec_dialect() == DIALECT
    assert rfn_ignore.load_ignore_patterns(Path(tempfile.gettempdir()) / "no-such-dir").dialect == DIALECT


@pytest.mark.parametrize(
    "version,dialect",
    [("0.11.0", "0.11"), ("0.11.2", "0.11"), ("0.12.1", "0.11"), ("1.0.0", "1.0"), ("1.0.4", "1.0"),
     ("1.1.0", "1.1"), ("1.1.1", "1.1"), ("1.2.0", "1.1"), (None, "1.1")],
)
def test_dialect_of_each_release_line(version, dialect):
    assert rfn_ignore.dialect_of_pathspec_version(version) == dialect


def test_dialect_override_is_for_tests_only_and_restores():
    try:
        for d in rfn_ignore.DIALECTS:
            rfn_ignore._set_dialect(d)
            assert rfn_ignore.pathspec_dialect() == d
            assert rfn_ignore.load_ignore_patterns(Path("/nonexistent")).dialect == d
        with pytest.raises(ValueError, match="'2.0'"):
            rfn_ignore._set_dialect("2.0")
    finally:
        rfn_ignore._set_dialect(None)
    assert rfn_ignore.pathspec_dialect() == DIALECT


# ---- the matcher against flash's spec, with the installed pathspec ---------------

EDGE_PATTERNS = [
    "[abc", "a[", "foo[bar", "*[", "[*", "[]", "[!]", "[\\", "[a-", "[!a]", "[]a]", "[!]a]", "[a-c]",
    "\\", "\\[x", "x\\ ", "\\!x", "\\#x", "**", "**/", "/**", "/**/", "**/**", "a/**", "**/a", "a/**/b",
    "a/**/", "*", "*/", "/*", "a/*/", "!x", "!/", "x/", "/x", "*.txt", "?", "a?", "[[]", "[]]",
]

NAME_CHARS = "abx[]!*?\\-^ .\n"
names = st.one_of(
    st.sampled_from(["a", "b", "x", "foo[bar", "[abc", "a[", "[", "[]", "x\n", "a b", "\\", "*", "!x", "x.txt", "[!]", "ab"]),
    st.text(NAME_CHARS, min_size=1, max_size=5).filter(lambda s: s not in (".", "..") and "/" not in s),
)
patterns = st.one_of(
    st.sampled_from(EDGE_PATTERNS),
    st.text("ab*?[]!\\-^/ .x", min_size=1, max_size=7),
    st.builds(lambda a, b: a + "/" + b, st.sampled_from(["", "**", "*", "a", "[a", "x["]),
              st.sampled_from(["", "**", "*", "b", "[!]", "x\\", "[]"])),
)


def _flash_spec(root: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return flash_ignore.load_ignore_patterns(root)


def _outcome(fn):
    try:
        return "ok", fn()
    except re.error:
        return "raise", re.error
    except ValueError:
        return "raise", ValueError


def _write_gitignore(root: Path, lines: list[str]) -> None:
    # flash strips each line: a line with a "\n" cannot be written
    (root / ".gitignore").write_text("\n".join(lines) + "\n", encoding="utf-8")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(patterns, min_size=1, max_size=4),
       st.lists(st.lists(names, min_size=1, max_size=3).map("/".join), min_size=1, max_size=8))
@example(["[abc"], ["[abc", "x/[abc"])
@example(["foo[bar", "*["], ["foo[bar", "a[", "["])
@example(["[*"], ["[abc"])
@example(["[]"], ["[]"])
@example(["[\\"], ["x"])
@example(["/**/"], ["a/b", "a//b"])
@example(["*"], ["x\n"])
@example(["a"], ["a/x\nb", "a/x\n"])
def test_load_ignore_patterns_answers_as_flash(tmp_path_factory, lines, paths):
    root = tmp_path_factory.mktemp("gi")
    _write_gitignore(root, lines)
    theirs = _outcome(lambda: _flash_spec(root))
    ours = _outcome(lambda: rfn_ignore.load_ignore_patterns(root))
    assert ours[0] == theirs[0], (lines, theirs, ours)
    if theirs[0] == "raise":
        assert isinstance(ours[1], type) and ours[1] is theirs[1]
        return
    ref, spec = theirs[1], ours[1]
    assert spec.dialect == DIALECT
    if all(hasattr(p, "pattern") for p in ref.patterns):  # pathspec 0.11 keeps no pattern text
        assert list(spec.patterns) == [p.pattern for p in ref.patterns]
    for path in paths:
        assert spec.match_file(path) is ref.match_file(path), (lines, path)


def _make_tree(root: Path, files: list[str]) -> None:
    for rel in files:
        path = root / rel
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.is_dir():
                path.write_bytes(rel.encode("utf-8", "surrogateescape"))
        except (FileExistsError, NotADirectoryError, IsADirectoryError):
            pass  # a name used both as a file and a directory: keep the first


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(patterns, max_size=4),
       st.lists(st.lists(names, min_size=1, max_size=3).map("/".join), min_size=1, max_size=10))
@example(["[abc", "a["], ["[abc", "d/a[", "keep"])
@example(["/**/"], ["a/b", "top"])
@example(["a"], ["a/x\nb", "a/y"])
def test_file_tree_and_fingerprint_are_flashs(lines, files):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "proj"
        root.mkdir()
        _make_tree(root, files)
        _write_gitignore(root, lines)
        theirs = _outcome(lambda: _flash_spec(root))
        if theirs[0] == "raise":
            with pytest.raises(theirs[1]):
                rfn_ignore.load_ignore_patterns(root)
            return
        flash_files = flash_ignore.get_file_tree(root, theirs[1], root)
        spec = rfn_ignore.load_ignore_patterns(root)
        assert rfn_ignore.get_file_tree(root, spec, root) == flash_files
        # flash's spec handed to our walk (the drop-in path) answers the same
        assert rfn_ignore.get_file_tree(root, theirs[1], root) == flash_files
        try:
            expected = flash_build.compute_source_fingerprint(root, flash_files)
        except UnicodeEncodeError:
            return
        assert rfn_build.compute_source_fingerprint(root, flash_files) == expected
        assert rfn_build.fingerprint_project(root) == expected


def test_unterminated_bracket_rule_of_this_release(tmp_path):
    """The documented difference itself, on a tree: before pathspec 1.1 an
    unterminated "[" is literal, from 1.1 on the line is dropped."""
    _make_tree(tmp_path, ["[abc", "foo[bar", "keep"])
    _write_gitignore(tmp_path, ["[abc", "foo[bar"])
    shipped = sorted(p.name for p in rfn_ignore.get_file_tree(tmp_path, rfn_ignore.load_ignore_patterns(tmp_path)))
    flash_shipped = sorted(p.name for p in flash_ignore.get_file_tree(tmp_path, _flash_spec(tmp_path)))
    assert shipped == flash_shipped
    assert shipped == (["[abc", "foo[bar", "keep"] if DIALECT == "1.1" else ["keep"])


# ---- patch_flash and the end-to-end build ------------------------------------------


def test_patch_flash_applies_cleanly():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with runpod_flash_native.patched() as active:
            assert active is True
            from runpod_flash.cli.commands import build as b

            from runpod_flash_native.patch import build_hooks as _build_hooks

            assert b.get_file_tree is _build_hooks.get_file_tree  # rfn_ignore's walk, cleaning up after a loop
            assert b.load_ignore_patterns is _build_hooks.load_ignore_patterns  # rfn_ignore's, flash's messages


def _make_compat_app(parent: Path) -> Path:
    from test_patch import APP_FILES

    root = parent / "sample_app"
    files = dict(APP_FILES)
    # lines whose meaning depends on the pathspec release
    files[".gitignore"] = APP_FILES[".gitignore"] + "[lit\nodd[\npkg/data/*[\n"
    files["[lit"] = "literal bracket\n"
    files["odd["] = "odd\n"
    files["pkg/data/x["] = "x\n"
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return root


def test_flash_build_vs_flash_native_build(tmp_path):
    from test_patch import SPY_FLASH_NATIVE, _archive_members, _build, _manifest

    flash_root = _make_compat_app(tmp_path / "flash")
    native_root = _make_compat_app(tmp_path / "native")
    _build(flash_root, [sys.executable, "-m", "runpod_flash.cli.main", "build"])
    proc = _build(native_root, [sys.executable, "-c", SPY_FLASH_NATIVE])
    calls = json.loads(proc.stdout.rsplit("NATIVE-CALLS ", 1)[1].splitlines()[0])
    assert calls["compute_source_fingerprint"] == 1 and calls["get_file_tree"] >= 2

    flash_manifest, native_manifest = _manifest(flash_root), _manifest(native_root)
    for m in (flash_manifest, native_manifest):
        m.pop("generated_at", None)
    assert len(flash_manifest["source_fingerprint"]) == 64
    assert native_manifest == flash_manifest

    flash_tar, native_tar = _archive_members(flash_root), _archive_members(native_root)
    assert sorted(native_tar) == sorted(flash_tar)  # the same shipped file list
    stamped = [n for n in flash_tar if n.startswith("handler_") or n == "flash_manifest.json"]  # build-time stamps
    assert {n: d for n, d in native_tar.items() if n not in stamped} == {n: d for n, d in flash_tar.items() if n not in stamped}
    odd = {"[lit", "odd[", "pkg/data/x["}
    assert odd <= set(flash_tar) if DIALECT == "1.1" else not odd & set(flash_tar)


# ---- the deploy rule of the installed release -----------------------------------------


def test_deploy_rule_is_the_installed_releases():
    assert deployment.modelled_flash_version() == FLASH_VERSION
    import inspect

    import runpod_flash.cli.utils.deployment as flash_deployment

    source = inspect.getsource(flash_deployment.reconcile_and_provision_resources)
    assert deployment.skips_client_mode() is ('resource_config.get("client_mode")' in source)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    from test_patch import _env

    # cwd "/": python -m puts the cwd first on sys.path, and an installed
    # package's directory is a whole site-packages (step 1's, in CI's
    # compatibility venvs) that would shadow the pinned runpod-flash.
    return subprocess.run([sys.executable, "-m", "runpod_flash_native", *args], cwd="/", env=_env(),
                          capture_output=True, text=True, timeout=120)


def test_plan_flash_version_option(tmp_path):
    fp = "f" * 64
    local = {"source_fingerprint": fp, "resources": {"cm": {"client_mode": True}, "w": {}}}
    state = {"resources": {"cm": {"client_mode": True}, "w": {"env": {deployment.SOURCE_FINGERPRINT_ENV_KEY: fp}}},
             "resources_endpoints": {"cm": "https://cm", "w": "https://w"}}
    lp, sp = tmp_path / "local.json", tmp_path / "state.json"
    lp.write_text(json.dumps(local))
    sp.write_text(json.dumps(state))
    default = json.loads(_cli("plan", "--json", str(lp), str(sp)).stdout)
    assert default["flash_version"] == FLASH_VERSION
    for version, update in (("1.14.0", ["cm"]), ("1.20.1", ["cm"]), ("1.21.0", [])):
        out = json.loads(_cli("plan", "--json", "--flash-version", version, str(lp), str(sp)).stdout)
        assert out["flash_version"] == version and out["update"] == update, out
        assert update == list(deployment.plan_reconciliation(json.loads(lp.read_text()), state, flash_version=version).update)
    assert default["update"] == (["cm"] if not deployment.skips_client_mode() else [])
    bad = _cli("plan", "--flash-version", "1.13.0", str(lp), str(sp))
    assert bad.returncode == 2 and "'1.13.0'" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_status_roll_list_follows_the_release(tmp_path):
    (tmp_path / "app.py").write_text("x = 1\n")
    (tmp_path / ".flash").mkdir()
    manifest = {"source_fingerprint": "0" * 64,
                "resources": {"cm": {"client_mode": True, "functions": [{"module": "app"}]},
                              "w": {"functions": [{"module": "app"}]}}}
    (tmp_path / ".flash" / "flash_manifest.json").write_text(json.dumps(manifest))
    for version, rolls in (("1.20.1", ["cm", "w"]), ("1.21.0", ["w"])):
        proc = _cli("status", "--json", "--flash-version", version, str(tmp_path))
        assert proc.returncode == 1, proc.stderr
        report = json.loads(proc.stdout)
        assert report["rolls"] == rolls and report["flash_version"] == version
        assert sorted(report["endpoints"]) == rolls
    # every resource client-mode: nothing rolls from 1.21.0 on, it rolls before
    manifest["resources"] = {"cm": manifest["resources"]["cm"]}
    (tmp_path / ".flash" / "flash_manifest.json").write_text(json.dumps(manifest))
    assert _cli("status", "--flash-version", "1.21.0", str(tmp_path)).returncode == 0
    assert _cli("status", "--flash-version", "1.14.0", str(tmp_path)).returncode == 1

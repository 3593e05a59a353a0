"""runpod_flash_native/_fingerprint.pyi names everything the extension
exports, private test hooks and constants included (mypy's stubtest, a CI
step, checks the signatures of what is there but skips private names the
stub leaves out)."""

from __future__ import annotations

import ast
from pathlib import Path

import runpod_flash_native._fingerprint as native


def stub_names() -> set[str]:
    stub = Path(native.__file__).with_name("_fingerprint.pyi")
    names = set()
    for node in ast.parse(stub.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def test_the_stub_declares_every_export():
    exported = {name for name in dir(native) if not (name.startswith("__") and name.endswith("__"))}
    assert exported - stub_names() == set()


def test_the_stub_declares_nothing_the_module_lacks():
    assert stub_names() - set(dir(native)) == set()

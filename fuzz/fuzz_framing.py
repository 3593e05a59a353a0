"""Fuzz the fingerprint framing against a hashlib reference of flash's.

Random small trees (UTF-8 names that sort differently by code point, UTF-16
and bytes; sizes around the 256 KiB chunk and the 1 MiB thread switch) are
written to a tmpfs directory, then:
- compute_source_fingerprint(root, files) in any order, with duplicates, must
  equal sha256 over sorted(rel): be64(len(rel)) rel be64(len(data)) data;
- fingerprint_project_files(root) must list exactly the files flash's
  get_file_tree keeps (built-in patterns, matched with pathspec level by
  level), and its fingerprint must equal the reference over that list;
- fingerprint_project(root) must give the same fingerprint;
all with 1-4 reader threads for the streams past the 1 MiB thread switch.

    python fuzz/fuzz_framing.py [corpus dirs...] [libFuzzer flags]
"""

import hashlib
import os
import shutil
import sys
import tempfile
import warnings

import atheris

with atheris.instrument_imports():
    import pathspec

from _common import check_native

import runpod_flash_native as native
from runpod_flash_native.ignore import BUILTIN_PATTERNS

NAMES = ["a", "b", "a-b", "a.b", "a b", "ab", "a0", "é", "中", "\U0001f600", "\uffff", "\ufffd",
         "README.md", "n.md", "t.pyc", "tests", "build", "__pycache__", ".env", "test_x.py",
         "m_test.py", "x.tar.gz", "docs", "sub"]
SIZES = [0, 1, 7, 64, 255, 256 * 1024 - 1, 256 * 1024, 256 * 1024 + 1, (1 << 20) - 40, (1 << 20) + 3]
BASE = "/dev/shm" if os.access("/dev/shm", os.W_OK) else tempfile.gettempdir()


def _remove_stale_roots():
    """libFuzzer ends the process with exit(): no Python cleanup runs, so each
    run leaves its tree behind. Remove those of processes that are gone."""
    for name in os.listdir(BASE):
        if name.startswith("rfn-fuzz-framing-"):
            pid = name.rsplit("-", 1)[-1]
            if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
                shutil.rmtree(os.path.join(BASE, name), ignore_errors=True)


_remove_stale_roots()
ROOT = os.path.join(BASE, f"rfn-fuzz-framing-{os.getpid()}")
shutil.rmtree(ROOT, ignore_errors=True)
os.mkdir(ROOT)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    FLASH_SPEC = pathspec.PathSpec.from_lines("gitwildmatch", list(BUILTIN_PATTERNS))


def reference(files):
    h = hashlib.sha256()
    for rel in sorted(files):
        raw, data = rel.encode(), files[rel]
        h.update(len(raw).to_bytes(8, "big") + raw + len(data).to_bytes(8, "big") + data)
    return h.hexdigest()


@atheris.instrument_func
def flash_keeps(rel):
    parts = rel.split("/")
    return not any(FLASH_SPEC.match_file("/".join(parts[: i + 1])) for i in range(len(parts)))


@atheris.instrument_func
def TestOneInput(data):
    fdp = atheris.FuzzedDataProvider(data)
    files = {}
    for _ in range(fdp.ConsumeIntInRange(0, 8)):
        parts = [NAMES[fdp.ConsumeIntInRange(0, len(NAMES) - 1)] for _ in range(fdp.ConsumeIntInRange(1, 3))]
        rel = "/".join(parts)
        if fdp.ConsumeIntInRange(0, 15) == 0:
            size = SIZES[fdp.ConsumeIntInRange(0, len(SIZES) - 1)]
        else:
            size = fdp.ConsumeIntInRange(0, 80)
        seed = fdp.ConsumeBytes(16) or b"\0"
        content = (seed * (size // len(seed) + 1))[:size]
        # no file where a directory is needed, and the other way round
        if any(rel.startswith(f + "/") or f.startswith(rel + "/") for f in files):
            continue
        files[rel] = content
    order = sorted(files, key=lambda r: fdp.ConsumeInt(2))
    duplicate = fdp.ConsumeBool()
    # reader threads of the threaded hash (csrc/hash.c); read last, so that the
    # seed corpus keeps its meaning
    native._fingerprint._set_reader_threads(fdp.ConsumeIntInRange(1, 4))

    for entry in os.listdir(ROOT):
        p = os.path.join(ROOT, entry)
        shutil.rmtree(p) if os.path.isdir(p) and not os.path.islink(p) else os.unlink(p)
    for rel, content in files.items():
        path = os.path.join(ROOT, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(content)

    paths = [os.path.join(ROOT, rel) for rel in order]
    if duplicate and paths:
        paths.append(paths[0])
        expected = hashlib.sha256()
        dup = dict(files)
        # flash hashes a duplicate twice, adjacent in the sorted order
        items = sorted(list(files.items()) + [(order[0], files[order[0]])], key=lambda kv: kv[0])
        for rel, content in items:
            raw = rel.encode()
            expected.update(len(raw).to_bytes(8, "big") + raw + len(content).to_bytes(8, "big") + content)
        want = expected.hexdigest()
    else:
        want = reference(files)
    got = native.compute_source_fingerprint(ROOT, paths)
    assert got == want, (files.keys(), order, duplicate)

    listed, fp = native.fingerprint_project_files(ROOT)
    listed_rel = {os.path.relpath(str(p), ROOT) for p in listed}
    kept = {rel for rel in files if flash_keeps(rel)}
    assert listed_rel == kept and len(listed) == len(kept), (sorted(listed_rel), sorted(kept))
    assert fp == reference({rel: files[rel] for rel in kept}), sorted(kept)
    assert native.fingerprint_project(ROOT) == fp


if __name__ == "__main__":
    check_native()
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()

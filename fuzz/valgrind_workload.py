"""A short workload over every native code path, for valgrind (memcheck for
invalid or uninitialised accesses, helgrind for data races between the
walker, reader and calling threads); see fuzz/RESULTS.md. From the repo root,
after an in-place build (use the real interpreter, not a pyenv shim):

    PYTHONMALLOC=malloc valgrind --tool=memcheck --log-file=memcheck.log python3.11 fuzz/valgrind_workload.py
    PYTHONMALLOC=malloc valgrind --tool=helgrind --suppressions=fuzz/helgrind.supp --log-file=helgrind.log python3.11 fuzz/valgrind_workload.py

then look for frames in _fingerprint (rfn_*) in the logs.
"""
import os, shutil, sys, signal, tempfile, logging
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
logging.disable(50)
import runpod_flash_native as r
from runpod_flash_native import ignore, _fingerprint, deployment
from pathlib import Path
base = Path(tempfile.mkdtemp(prefix="rfn-vg-", dir="/dev/shm" if os.access("/dev/shm", os.W_OK) else None))
root = base / "tree"
if True:
    for i in range(150):
        d = root / f"p{i%5}" / f"q{i%3}"; d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i}.py").write_bytes(os.urandom(i * 50))
    (root / "big.bin").write_bytes(os.urandom(3 << 20))
    (root / "README.md").write_text("x"); (root / "x.md").write_text("y")
    (root / ".gitignore").write_text("*.log\np1/\n")
    d = root / "deep"
    fd = os.open(root, os.O_RDONLY)
    for k in range(200):
        os.mkdir("d", dir_fd=fd); n = os.open("d", os.O_RDONLY, dir_fd=fd); os.close(fd); fd = n
    w = os.open("leaf.py", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd); os.write(w, b"leaf"); os.close(w); os.close(fd)
for readers in (1, 2, 3):  # reader threads of the threaded hash (blocks of 32 files)
    _fingerprint._set_reader_threads(readers)
    fp = r.fingerprint_project(root)
    files, fp2 = r.fingerprint_project_files(root)
    assert fp == fp2
    assert r.compute_source_fingerprint(root, files) == fp
    spec = ignore.load_ignore_patterns(root)
    t = ignore.get_file_tree(root, spec)
    ignore.get_file_tree(root / "p2", spec, root)
    _fingerprint._match_walk(spec, "p2", [b"q1", b"\xff", b"x.pyc"])
    spec.match_file("a/" * 700 + "b.pyc")
    for bad in (root / "nope", ):
        try: r.fingerprint_project(bad)
        except FileNotFoundError: pass
    deployment.config_differs({"a": [1, {"b": 2.5}], "env": {}}, {"a": [1, {"b": 2}]})
    deployment.config_changes({"a": [1, {"b": 2.5}], "x": (1,)}, {"a": [1, {"b": 2}]})
    deployment.plan_reconciliation({"source_fingerprint": "f", "resources": {"a": {"env": {}}}}, {"resources": {"a": {"k": 1}, "b": {}}})
# interrupt during threaded hash
class Alarm(Exception): pass
def h(s, f): raise Alarm
signal.signal(signal.SIGALRM, h)
big = base / "big"; big.mkdir()
with open(big / "huge.bin", "wb") as fh: fh.truncate(1 << 30)
signal.setitimer(signal.ITIMER_REAL, 0.5)
try:
    r.fingerprint_project(big)
except Alarm:
    print("interrupted")
signal.setitimer(signal.ITIMER_REAL, 0)
_fingerprint._set_reader_threads(0)
print("done")
shutil.rmtree(base)

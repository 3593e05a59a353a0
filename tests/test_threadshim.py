"""The scanner's module imports on a reused thread
(:mod:`runpod_flash_native._threadshim`), against flash's thread per module."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

import runpod_flash_native
from runpod_flash_native import _threadshim

scanner = pytest.importorskip("runpod_flash.cli.commands.build_utils.scanner")

MODULES = {
    "a_ok.py": "from runpod_flash import Endpoint\n\n@Endpoint(name='a', cpu='cpu3c-1-2')\nasync def a(d):\n    return d\n",
    "b_raises.py": "raise ValueError('broken at import')\n",
    "c_exit.py": "import sys\nsys.exit(3)\n",
    "d_interrupt.py": "raise KeyboardInterrupt\n",
    # a context variable set by one module's top-level code is not seen by the next
    "e_setctx.py": "import decimal\ndecimal.getcontext().prec = 5\n",
    "f_readctx.py": "import decimal\nPREC = decimal.getcontext().prec\n"
                    "from runpod_flash import Endpoint\n\n@Endpoint(name='f' + str(PREC), cpu='cpu3c-1-2')\n"
                    "async def f(d):\n    return d\n",
    "g_thread.py": "import threading\nassert threading.current_thread() is not threading.main_thread()\n",
}


def _scan(root: Path) -> tuple[list[str], dict[str, str], list[str]]:
    hooked: list[str] = []
    saved = threading.excepthook
    threading.excepthook = lambda args: hooked.append(args.exc_type.__name__)
    try:
        sc = scanner.RuntimeScanner(root)
        names = sorted(f.resource_config_name for f in sc.discover_remote_functions())
    finally:
        threading.excepthook = saved
    return names, dict(sc.import_errors), hooked


def test_scan_patched_equals_flash(tmp_path):
    root = tmp_path / "app"
    root.mkdir()
    for rel, body in MODULES.items():
        (root / rel).write_text(body)
    runpod_flash_native.unpatch_flash()
    assert scanner.threading is threading
    flash = _scan(root)
    with runpod_flash_native.patched():
        assert scanner.threading is _threadshim.scanner_threading
        ours = _scan(root)
    assert ours == flash
    names, errors, hooked = flash
    assert names == ["a", "f28"]  # the decimal precision set by e_setctx.py did not leak
    assert errors == {"b_raises.py": "ValueError: broken at import"}
    assert hooked == ["SystemExit", "KeyboardInterrupt"]  # both reach the thread excepthook


def test_a_hung_import_times_out_and_the_scan_goes_on(tmp_path, monkeypatch):
    """By contrast: the hung module would block for 120 s; the scan, with a
    0.5 s timeout, records the TimeoutError and imports the modules after it on
    a fresh worker, returning long before the hang ends."""
    root = tmp_path / "app"
    root.mkdir()
    release = tmp_path / "release"
    (root / "a_hang.py").write_text(
        "import os, time\nfor _ in range(1200):\n"
        f"    if os.path.exists({str(release)!r}):\n        break\n    time.sleep(0.1)\n")
    (root / "b_ok.py").write_text(MODULES["a_ok.py"])
    monkeypatch.setattr(scanner, "MODULE_IMPORT_TIMEOUT_SECONDS", 0.5)
    try:
        with runpod_flash_native.patched():
            t0 = time.monotonic()
            names, errors, _ = _scan(root)
            elapsed = time.monotonic() - t0
            assert _threadshim._pool.worker is not None
    finally:
        release.write_text("")
    assert names == ["a"]
    assert list(errors) == ["a_hang.py"] and errors["a_hang.py"].startswith("TimeoutError: import of a_hang.py timed out")
    assert elapsed < 120 / 4


def test_other_thread_calls_are_real_threads():
    t = _threadshim.scanner_threading.Thread(target=lambda: None, name="x", daemon=True)
    assert isinstance(t, threading.Thread)
    t.start()
    t.join()
    job = _threadshim.scanner_threading.Thread(target=lambda: None, daemon=True)
    assert not isinstance(job, threading.Thread)
    with pytest.raises(RuntimeError):
        job.join()
    job.start()
    job.join(5)
    assert not job.is_alive()
    with pytest.raises(RuntimeError):
        job.start()
    assert _threadshim.scanner_threading.Lock is threading.Lock

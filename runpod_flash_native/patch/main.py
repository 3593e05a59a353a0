"""``flash-native``: flash's own command line with the native patch active.

``flash-native build`` / ``flash-native deploy`` / ``flash-native dev`` run
exactly flash's ``runpod_flash.cli.main:app`` (same commands, options, output
and exit codes) after :func:`runpod_flash_native.patch_flash`. When the
installed runpod-flash is outside the verified range the patch is not applied,
a one-line warning goes to stderr, and flash runs unmodified.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from . import SUPPORTED_FLASH_VERSIONS, apply_patch

PROG = "flash-native"
# What works today: runpod-flash-native is not on PyPI yet, so its [flash]
# extra cannot be installed by name; runpod-flash itself can, beside it.
INSTALL_HINT = f"pip install 'runpod-flash{SUPPORTED_FLASH_VERSIONS}'"


def _flash_installed() -> bool:
    try:
        return importlib.util.find_spec("runpod_flash") is not None
    except (ImportError, ValueError):  # ValueError: sys.modules["runpod_flash"] is None
        return False


def _warn(message: str) -> None:
    print(f"{PROG}: warning: {message}", file=sys.stderr)


def _fail(reason: str) -> int:
    print(f"{PROG}: error: {reason}; install it with: {INSTALL_HINT}", file=sys.stderr)
    return 2


@contextlib.contextmanager
def _in_process_cpu_probe() -> Iterator[None]:
    """While flash's modules import, answer py-cpuinfo's ``get_cpu_info()``
    from /proc/cpuinfo in this process.

    Importing runpod-flash imports the runpod SDK, whose
    ``serverless.utils.rp_debugger`` calls ``cpuinfo.get_cpu_info()`` at import
    time for one field, ``brand_raw``. py-cpuinfo computes it in a child
    Python process that also probes CPUID in a grandchild, runs lscpu and
    friends: about 1.1 s of every ``flash`` command here, most of the
    difference a user waits for before anything is built. On Linux that
    child takes ``brand_raw`` from /proc/cpuinfo (its first source there), so
    py-cpuinfo's own /proc/cpuinfo parser gives the same value in a few
    milliseconds. Elsewhere, or when that source has no brand, the real
    probe runs. The original function is back once flash is imported.
    """
    module: Any = None
    if sys.platform.startswith("linux") and "runpod.serverless.utils.rp_debugger" not in sys.modules:
        try:
            import cpuinfo

            module = cpuinfo
        except Exception:  # not installed, or broken: flash's import decides
            module = None
    if module is None or not hasattr(module, "get_cpu_info"):
        yield
        return
    real = module.get_cpu_info

    def get_cpu_info() -> dict[str, Any]:
        try:
            info = module.cpuinfo._get_cpu_info_from_proc_cpuinfo()
        except Exception:
            info = None
        if isinstance(info, dict) and info.get("brand_raw"):
            return info
        result: dict[str, Any] = real()
        return result

    module.get_cpu_info = get_cpu_info
    try:
        yield
    finally:
        if module.get_cpu_info is get_cpu_info:
            module.get_cpu_info = real


def _version_line(active: bool) -> str:
    from .. import __version__

    state = "active" if active else "not active (flash runs its own code; the warning above says why)"
    return f"runpod-flash-native {__version__}: native patch {state}"


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point. ``argv`` defaults to ``sys.argv[1:]``."""
    if not _flash_installed():
        return _fail("runpod-flash is not installed")
    with _in_process_cpu_probe():
        # flash's own import first, as `flash` does, with the process's warning
        # machinery untouched: urllib3 and requests install filters at import
        # that flash's output depends on.
        try:
            from runpod_flash.cli.main import app
        except ImportError as e:  # installed, but broken (one of its dependencies missing)
            return _fail(f"runpod-flash cannot be loaded ({e})")
        try:
            active = apply_patch(_warn)
        except ImportError as e:  # a native module not importable
            print(f"{PROG}: error: cannot load runpod-flash: {e}", file=sys.stderr)
            return 2

    args = list(sys.argv[1:] if argv is None else argv)
    try:
        # standalone_mode (click's default): flash's own error handling and
        # exit codes, ending in SystemExit.
        app(args=args, prog_name=PROG)
    except SystemExit as e:
        code = e.code
        if args[:1] in (["--version"], ["-v"]) and not code:  # after flash's own version line
            print(_version_line(active), flush=True)
        if code is None:
            return 0
        if isinstance(code, int):
            return code
        print(code, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""``flash-native``: flash's own command line with the native patch active.

``flash-native build`` / ``flash-native deploy`` / ``flash-native dev`` run
exactly flash's ``runpod_flash.cli.main:app`` (same commands, options, output
and exit codes) after :func:`runpod_flash_native.patch_flash`. When the
installed runpod-flash is outside the verified range the patch is not applied,
a one-line warning goes to stderr, and flash runs unmodified.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from .._flash import INSTALL_HINT, flash_installed, in_process_cpu_probe
from . import apply_patch

PROG = "flash-native"


def _warn(message: str) -> None:
    print(f"{PROG}: warning: {message}", file=sys.stderr)


def _fail(reason: str) -> int:
    print(f"{PROG}: error: {reason}; install it with: {INSTALL_HINT}", file=sys.stderr)
    return 2


def _version_line(active: bool) -> str:
    from .. import __version__

    state = "active" if active else "not active (flash runs its own code; the warning above says why)"
    return f"runpod-flash-native {__version__}: native patch {state}"


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point. ``argv`` defaults to ``sys.argv[1:]``."""
    if not flash_installed():
        return _fail("runpod-flash is not installed")
    with in_process_cpu_probe():
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

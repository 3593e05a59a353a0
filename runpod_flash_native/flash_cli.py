"""``flash-native``: flash's own command line with the native patch active.

``flash-native build`` / ``flash-native deploy`` / ``flash-native dev`` run
exactly flash's ``runpod_flash.cli.main:app`` (same commands, options, output
and exit codes) after :func:`runpod_flash_native.patch_flash`. When the
installed runpod-flash is outside the verified range the patch is not applied,
a one-line warning goes to stderr, and flash runs unmodified.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence

from ._patch import FlashPatchWarning, patch_flash

PROG = "flash-native"
INSTALL_HINT = "pip install 'runpod-flash-native[flash]'"


def _flash_missing() -> str | None:
    """Why flash's command line cannot be imported, or None when it can."""
    try:
        import runpod_flash.cli.main  # noqa: F401
    except ModuleNotFoundError as e:
        if e.name and (e.name == "runpod_flash" or e.name.startswith("runpod_flash.")):
            return "runpod-flash is not installed"
        return f"runpod-flash cannot be loaded: {e}"  # one of flash's own dependencies
    except ImportError as e:
        return f"runpod-flash cannot be loaded: {e}"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Console-script entry point. ``argv`` defaults to ``sys.argv[1:]``."""
    missing = _flash_missing()
    if missing is not None:
        print(f"{PROG}: error: {missing}; install it with: {INSTALL_HINT}", file=sys.stderr)
        return 2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FlashPatchWarning)
        try:
            patch_flash()
        except ImportError as e:  # runpod_flash (or a native module) not importable
            print(f"{PROG}: error: cannot load runpod-flash: {e}", file=sys.stderr)
            return 2
    for w in caught:
        if issubclass(w.category, FlashPatchWarning):
            print(f"{PROG}: warning: {w.message}", file=sys.stderr)
        else:  # not ours: hand back to the normal machinery
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)

    from runpod_flash.cli.main import app

    args = list(sys.argv[1:] if argv is None else argv)
    try:
        # standalone_mode (click's default): flash's own error handling and
        # exit codes, ending in SystemExit.
        app(args=args, prog_name=PROG)
    except SystemExit as e:
        code = e.code
        if code is None:
            return 0
        if isinstance(code, int):
            return code
        print(code, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

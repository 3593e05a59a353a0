"""Shared bits of the atheris fuzz targets (see fuzz/README in RESULTS.md)."""

from __future__ import annotations

import os
import sys


def check_native():
    """Refuse to fuzz a pure-Python stand-in: the target must be the extension."""
    import importlib.machinery

    import runpod_flash_native._fingerprint as native

    if not native.__file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)):
        sys.exit(f"runpod_flash_native._fingerprint is not native: {native.__file__}")
    if os.environ.get("RFN_FUZZ_VERBOSE"):
        print(f"fuzzing {native.__file__}", file=sys.stderr)


def text(fdp, alphabet: str, max_len: int) -> str:
    """A string over alphabet, one input byte per character."""
    raw = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, max_len))
    return "".join(alphabet[b % len(alphabet)] for b in raw)

"""runpod_flash_native: the deploy-time change detection of runpod-flash, in C.

Drop-in replacements for flash's own call sites live in modules named after
flash's: :mod:`runpod_flash_native.build`, :mod:`runpod_flash_native.ignore`
and :mod:`runpod_flash_native.deployment`.
"""


def _explain_missing_extension(error: ImportError) -> ImportError:
    """The message for a package directory without its compiled extension:
    most often the source checkout, first on sys.path (Python started from
    the repository root), shadowing the copy ``pip install .`` installed."""
    import importlib.machinery
    import os
    import sys

    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)

    def built(directory: str) -> bool:
        try:
            names = os.listdir(directory)
        except OSError:
            return False
        return any(n.startswith("_fingerprint.") and n.endswith(suffixes) for n in names)

    here = os.path.dirname(os.path.abspath(__file__))
    if built(here):
        return error  # built, but it failed to load (libcrypto missing, ...): keep that message
    installed = next(
        (
            candidate
            for entry in sys.path
            if (candidate := os.path.join(os.path.abspath(entry or "."), "runpod_flash_native")) != here
            and built(candidate)
        ),
        None,
    )
    message = f"runpod_flash_native: the compiled extension (_fingerprint) is not built in {here}"
    if installed:
        message += (
            f"; this source tree shadows the installed package in {installed}: run Python from "
            "another directory (cd elsewhere; for the tests, `pytest tests` rather than "
            "`python -m pytest`), or build the source tree in place: python setup.py build_ext --inplace"
        )
    else:
        message += (
            "; install the package (pip install .) and run Python from another directory, "
            "or build it in place: python setup.py build_ext --inplace"
        )
    return ImportError(message, name=__name__ + "._fingerprint", path=here)


try:
    from . import _fingerprint
except ImportError as _e:
    raise _explain_missing_extension(_e) from None
from ._fingerprint import SourceChangedError, SymlinkLoopError
from .build import compute_source_fingerprint, fingerprint_project, fingerprint_project_files
from .patch import patch_flash, unpatch_flash, patched

__version__ = "0.1.0"

__all__ = [
    "SourceChangedError",
    "SymlinkLoopError",
    "compute_source_fingerprint",
    "fingerprint_project",
    "fingerprint_project_files",
    "patch_flash",
    "patched",
    "unpatch_flash",
]

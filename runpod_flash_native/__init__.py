"""runpod_flash_native: the deploy-time change detection of runpod-flash, in C.

Drop-in replacements for flash's own call sites live in modules named after
flash's: :mod:`runpod_flash_native.build`, :mod:`runpod_flash_native.ignore`
and :mod:`runpod_flash_native.deployment`.
"""

from . import _fingerprint
from ._fingerprint import SourceChangedError, SymlinkLoopError
from .build import compute_source_fingerprint, fingerprint_project, fingerprint_project_files
from ._patch import patch_flash, unpatch_flash, patched

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

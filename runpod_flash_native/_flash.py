"""The installed runpod-flash, for every part of the package that asks about
it: which release it is and whether this release of runpod_flash_native was
verified with it, whether it is there at all, and importing it without the
slow CPU probe its dependencies run at import. Nothing here patches flash
(:mod:`runpod_flash_native.patch` does) or imports it at module level."""

from __future__ import annotations

import contextlib
import importlib.util
import re
import sys
from collections.abc import Iterator
from typing import Any

#: The runpod-flash releases this release of runpod_flash_native was verified
#: against (differential tests + the end-to-end ``flash build`` comparison):
#: 1.14.0 through 1.21.x, the releases that write a source fingerprint. Their
#: patched call sites are identical; only the deploy-time fingerprint injection
#: differs (1.21.0 skips client-mode resources; see
#: :mod:`runpod_flash_native.deployment`).
SUPPORTED_FLASH_VERSIONS = ">=1.14.0,<1.22.0"
_MIN_VERSION = (1, 14, 0)
_MAX_VERSION_EXCLUSIVE = (1, 22, 0)

# What works today: runpod-flash-native is not on PyPI yet, so its [flash]
# extra cannot be installed by name; runpod-flash itself can, beside it.
INSTALL_HINT = f"pip install 'runpod-flash{SUPPORTED_FLASH_VERSIONS}'"


def flash_version() -> str | None:
    """Installed runpod-flash version, or None when it is not installed."""
    from importlib import metadata

    try:
        return metadata.version("runpod-flash")
    except metadata.PackageNotFoundError:
        return None


def parse_version(version: str) -> tuple[int, int, int] | None:
    m = re.match(r"^\s*v?(\d+)\.(\d+)(?:\.(\d+))?", version)
    if m is None:
        return None
    return (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))


def version_supported(version: str | None) -> bool:
    """Whether ``version`` (a runpod-flash version string) is in the verified range."""
    parsed = parse_version(version) if version else None
    return parsed is not None and _MIN_VERSION <= parsed < _MAX_VERSION_EXCLUSIVE


def flash_installed() -> bool:
    try:
        return importlib.util.find_spec("runpod_flash") is not None
    except (ImportError, ValueError):  # ValueError: sys.modules["runpod_flash"] is None
        return False


@contextlib.contextmanager
def in_process_cpu_probe() -> Iterator[None]:
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

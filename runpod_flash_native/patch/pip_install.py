"""Patch site for the step of ``flash build`` that scales with the installed
dependencies: the pip install.

**pip without byte-compiling.** flash installs the dependencies with
``python -m pip install --target <build dir> ...``. pip byte-compiles every
``.py`` file it installs, and ``run_build`` deletes every ``__pycache__`` and
``.pyc`` (``cleanup_python_bytecode``) before it packs the archive: for an app
depending on transformers that is most of pip's time, spent on files nobody
ships. :data:`pip_subprocess` stands in for ``subprocess`` in flash's build
module; it runs flash's exact pip command with ``--no-compile`` and
``--no-warn-conflicts`` after ``install`` (pip's own flags, both since pip 10;
resolution, wheels, target and every other flag untouched; see
:data:`PIP_FLAGS`). The build directory then differs from flash's only in the
``RECORD`` files pip writes, which no longer list the ``.pyc`` files flash
deletes. ``RUNPOD_FLASH_NATIVE_PIP_COMPILE=1`` restores flash's exact command.
Every other call (``pip --version``, ``ensurepip``, ``uv pip``, which never
compiles unless asked) goes to ``subprocess`` unchanged.
"""

from __future__ import annotations

import os
import subprocess
import sys
import types
from typing import Any

from .._switches import parse_switch

__all__ = ["PIP_COMPILE_ENV", "PIP_FLAGS", "pip_compiles", "pip_subprocess"]

#: "1"/"true"/"yes"/"on": run flash's exact pip command (pip byte-compiles);
#: "0"/"false"/"no"/"off"/"" or unset: add :data:`PIP_FLAGS`.
PIP_COMPILE_ENV = "RUNPOD_FLASH_NATIVE_PIP_COMPILE"


def pip_compiles() -> bool:
    """Whether the build's pip install keeps pip's byte-compiling (flash's exact
    command). Raises ``ValueError`` naming the variable for any other value."""
    raw = os.environ.get(PIP_COMPILE_ENV)
    if raw is None:
        return False
    return parse_switch(PIP_COMPILE_ENV, raw)


def _is_pip_target_install(args: object) -> bool:
    # flash's command: [sys.executable, "-m", "pip", "install", "--target", dir, ...]
    return (
        isinstance(args, list)
        and len(args) > 5
        and args[0] == sys.executable
        and args[1:5] == ["-m", "pip", "install", "--target"]
    )


#: Added after "install". ``--no-warn-conflicts`` skips pip's check of the
#: *running* environment against the new packages (meaningless for
#: ``--target``): pip prints its warnings only after a successful install,
#: whose output flash discards, so nobody could see them.
PIP_FLAGS = ("--no-compile", "--no-warn-conflicts")


def _with_no_compile(args: list[Any]) -> list[Any]:
    return [*args[:4], *PIP_FLAGS, *args[4:]]


class _PipSubprocess(types.ModuleType):
    """``subprocess`` as flash's build module sees it: every attribute is the
    real module's, except that ``run`` adds ``--no-compile`` to flash's
    ``pip install --target`` command."""

    def __getattr__(self, name: str) -> Any:
        return getattr(subprocess, name)

    def __dir__(self) -> list[str]:
        return dir(subprocess)

    @staticmethod
    def run(*popenargs: Any, **kwargs: Any) -> Any:
        if popenargs and _is_pip_target_install(popenargs[0]) and not pip_compiles():
            popenargs = (_with_no_compile(popenargs[0]), *popenargs[1:])
        return subprocess.run(*popenargs, **kwargs)


pip_subprocess = _PipSubprocess("subprocess", subprocess.__doc__)


"""``--flash-version`` of ``plan`` and ``status``."""

from __future__ import annotations

import argparse

from .._common import CliError


def modelled_flash(args: argparse.Namespace) -> str:
    """The flash release whose deploy rules plan/status follow (--flash-version,
    else the installed runpod-flash, else the default)."""
    from ...deployment import modelled_flash_version

    try:
        return modelled_flash_version(args.flash_version)
    except ValueError as e:
        raise CliError(f"--flash-version: {e}" if args.flash_version is not None else str(e)) from None

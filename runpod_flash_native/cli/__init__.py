"""``runpod-flash-native`` (also ``python -m runpod_flash_native``).

Inspect a flash project the way ``flash build`` / ``flash deploy`` see it,
without building: the source fingerprint, the shipped file list, whether the
next deploy rolls the endpoints, and the reconciliation plan between two
manifests. Standard library only (plus this package's extension).

Layout: ``commands/`` builds one report (a dict) per command; ``_report``
is the one printer (text or JSON, warnings, stdout failures); ``_project``
walks and fingerprints, ``_index`` keeps the per-file index, ``_checks``
finds shipped secrets and symlinks leaving the project, ``_progress`` draws
progress on a terminal, ``_parser`` holds the arguments and help texts.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from . import _report
from ._checks import looks_like_secret
from ._common import (
    DEBUG_ENV, EXIT_BROKEN_PIPE, EXIT_CHANGED, EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK, PROG,
    CliError, describe,
)
from ._parser import UsageError, build_parser, command_parser
from ._progress import parse_progress_delay

__all__ = [
    "EXIT_BROKEN_PIPE",
    "EXIT_CHANGED",
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "PROG",
    "CliError",
    "build_parser",
    "looks_like_secret",
    "main",
]

_COMMANDS = ("fingerprint", "files", "status", "plan")


def _json_requested(argv: Sequence[str]) -> bool:
    """--json (or an abbreviation argparse accepts) anywhere before ``--``:
    known even when the command line does not parse."""
    for token in argv:
        if token == "--":
            return False
        if len(token) >= 3 and "--json".startswith(token):
            return True
    return False


def _command_of(argv: Sequence[str]) -> str | None:
    return next((t for t in argv if t in _COMMANDS), None)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); returns the
    exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    with _report.collecting(), _report.library_warnings_on_stderr():
        return _main(args, _json_requested(args))


def _main(argv: list[str], as_json: bool) -> int:
    command = _command_of(argv)
    _, delay_warning = parse_progress_delay()
    if delay_warning:
        _report.warn(delay_warning, kind="progress_delay")
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if extra:  # reported by the command's own parser: its usage, not the top level's
            command_parser(parser, args.command).error(f"unrecognized arguments: {' '.join(extra)}")
    except UsageError as e:
        e.parser.print_usage(sys.stderr)
        sys.stderr.write(f"{e.parser.prog}: error: {e}\n")
        return _report.print_failure(f"usage: {e}", EXIT_ERROR, command, as_json)
    except BrokenPipeError:  # --help / --version into a closed stdout
        _report.silence_stdout()
        return EXIT_BROKEN_PIPE
    as_json = bool(getattr(args, "json", False))
    command = args.command
    try:
        code = _report.print_report(args.func(args), as_json)
        with _report.stdout_guard():
            _report.stdout().flush()
        return code
    except KeyboardInterrupt:
        sys.stderr.write(f"\n{PROG}: interrupted\n")
        return _report.print_failure("interrupted", EXIT_INTERRUPTED, command, as_json)
    except BrokenPipeError:
        # The one rule for a closed stdout (README "Exit codes"): stop
        # silently with 141, whatever the command and mode.
        _report.silence_stdout()
        return EXIT_BROKEN_PIPE
    except Exception as e:  # noqa: BLE001 - every failure is one line, exit 2
        if os.environ.get(DEBUG_ENV, "").strip() not in ("", "0"):
            raise
        message = str(e) if isinstance(e, CliError) else describe(e)
        sys.stderr.write(f"{PROG}: error: {message}\n")
        return _report.print_failure(message, EXIT_ERROR, command, as_json)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

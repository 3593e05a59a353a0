"""The command line's arguments, help texts and exit-code tables."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

from ._common import DEBUG_ENV, DEFAULT_INDEX_RELPATH, PROG, PROGRESS_DELAY_ENV
from .commands import files, fingerprint, plan, status

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

_EXIT_CODES = {
    "fingerprint": [("0", "success")],
    "files": [("0", "success")],
    "status": [
        ("0", "the next deploy rolls no endpoint: the source is unchanged since the\n"
              "       manifest's source_fingerprint, or no endpoint takes source changes\n"
              "       (every resource is client-mode, or there is none)"),
        ("1", "the source changed and the next deploy rolls the endpoints"),
    ],
    "plan": [("0", "success")],
}
_EXIT_COMMON = [
    ("2", "usage error, or the command failed (one line on stderr:\n"
          f'       "{PROG}: error: <message naming the path>")'),
    ("130", "interrupted (Ctrl-C)"),
    ("141", "stdout closed before all output was written (`| head`, `>&-`): nothing\n"
            "       more is printed; output a pipe took in before its reader left is\n"
            "       written (the command's own code); a failure keeps 2, Ctrl-C 130"),
]


def _epilog(command: str | None) -> str:
    """The exit codes of ``command`` (all of them for the top-level help),
    then the environment knobs."""
    if command is None:
        codes = [("0", "success; for `status`: the source is unchanged, or no endpoint takes\n"
                       "       source changes (the next deploy rolls no endpoint)"),
                 ("1", "`status` only: the source changed and the next deploy rolls the endpoints")]
    else:
        codes = _EXIT_CODES[command]
    lines = ["exit codes:"] + [f"  {code:<4} {text}" for code, text in codes + _EXIT_COMMON]
    lines += [
        "",
        "--json: every outcome, errors and Ctrl-C included, is one JSON document on stdout",
        'with "exit_code" and "warnings" (see README).',
        "",
        "progress:",
        f"  Walks and hashes that take longer than {1.0:g} s report files, bytes done, rate and",
        "  ETA on stderr when stderr is a terminal, and print nothing otherwise",
        f"  ({PROGRESS_DELAY_ENV} changes the delay).",
        f"  {DEBUG_ENV}=1 shows the Python traceback of an error.",
    ]
    return "\n".join(lines) + "\n"


_DIR_HELP = (
    "project directory (default: the current directory, or the nearest one above it "
    "holding .flash/flash_manifest.json, as git finds .git)"
)


class UsageError(Exception):
    def __init__(self, parser: argparse.ArgumentParser, message: str) -> None:
        super().__init__(message)
        self.parser = parser


class _Parser(argparse.ArgumentParser):
    """Usage errors are raised to main(), which reports them (also as JSON
    under --json) instead of argparse exiting from deep inside."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(self, message)

    def _print_message(self, message: str, file: SupportsWrite[str] | None = None) -> None:
        # --help and --version: a closed stdout follows the command's one
        # rule (exit 141) instead of argparse's silent exit 0. argparse hands
        # None here only for a stdout that does not exist.
        if not message:
            return
        if file is None or file is sys.stdout:
            from . import _report

            with _report.stdout_guard():
                _report.stdout().write(message)
                _report.stdout().flush()
            return
        super()._print_message(message, file)


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = _Parser(
        prog=PROG,
        description=(
            "Inspect a runpod-flash project exactly as `flash build` / `flash deploy` "
            "see it: source fingerprint, shipped files, whether the next deploy rolls "
            "the endpoints, and the deploy reconciliation plan."
        ),
        epilog=_epilog(None),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout (also after COMMAND)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, help_text: str, func: Callable[[argparse.Namespace], dict[str, Any]]) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name, help=help_text, description=help_text, epilog=_epilog(name),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.set_defaults(func=func)
        # SUPPRESS: an unset sub-level --json keeps the top-level one's value.
        p.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                       help="print one JSON document on stdout")
        return p

    p = add("fingerprint", "print the source_fingerprint `flash build` would write for DIR", fingerprint.run)
    p.add_argument("dir", metavar="DIR", nargs="?", default=None, help=_DIR_HELP)
    p.add_argument(
        "--index", metavar="FILE",
        help=f"also write each shipped file's size and SHA-256 to FILE, for `status` "
        f"(it reads DIR/{DEFAULT_INDEX_RELPATH.as_posix()} by default)",
    )

    p = add("files", "list the files `flash build` ships from DIR, sorted, one per line", files.run)
    p.add_argument("dir", metavar="DIR", nargs="?", default=None, help=_DIR_HELP)
    p.add_argument("-0", "--null", action="store_true", help="separate names with NUL instead of newline")

    p = add(
        "status",
        "compare DIR with the source_fingerprint in DIR/.flash/flash_manifest.json: "
        "does the next deploy roll the endpoints? (exit 0 no, 1 yes, 2 error)",
        status.run,
    )
    p.add_argument("dir", metavar="DIR", nargs="?", default=None, help=_DIR_HELP)
    p.add_argument(
        "--index", metavar="FILE",
        help=f"per-file index written by `fingerprint --index`, to list added, removed and "
        f"modified files (default: DIR/{DEFAULT_INDEX_RELPATH.as_posix()} when it exists)",
    )
    _add_flash_version(p)

    p = add("plan", "print the deploy reconciliation plan between a local and a state manifest", plan.run)
    p.add_argument("local_manifest", metavar="LOCAL_MANIFEST", help="the manifest `flash build` wrote (.flash/flash_manifest.json)")
    p.add_argument("state_manifest", metavar="STATE_MANIFEST", help="the manifest of the deployed build (State Manager)")
    p.add_argument(
        "--adopt-missing-fingerprint", action="store_true",
        help="migration mode: a deployed resource without a recorded source fingerprint "
        "adopts the local one instead of being updated",
    )
    _add_flash_version(p)
    return parser


def command_parser(parser: argparse.ArgumentParser, command: str | None) -> argparse.ArgumentParser:
    """The parser of ``command`` (``parser`` itself when there is none)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:
            sub: argparse.ArgumentParser = action.choices[command]
            return sub
    return parser


def _add_flash_version(p: argparse.ArgumentParser) -> None:
    from .._patch import SUPPORTED_FLASH_VERSIONS
    from ..deployment import DEFAULT_FLASH_VERSION

    p.add_argument(
        "--flash-version", metavar="X.Y.Z", default=None,
        help=f"the runpod-flash release whose deploy rules to follow ({SUPPORTED_FLASH_VERSIONS}; "
        f"before 1.21.0 client-mode resources get the fingerprint too). Default: the installed "
        f"runpod-flash, or {DEFAULT_FLASH_VERSION} without one",
    )

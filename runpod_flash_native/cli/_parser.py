"""The command line's arguments, help texts and exit-code tables."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
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
        ("1", "the source changed and the next deploy rolls the endpoints; with --env also\n"
              "       when nothing is deployed in ENV yet (the next deploy provisions them)"),
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
    under --json) instead of argparse exiting from deep inside. A command
    whose arguments depend on each other sets a ``check_args`` default: a
    function of the parsed arguments returning the usage error, if any."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(self, message)

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        ns, rest = super().parse_known_args(args, namespace)
        check = ns.__dict__.pop("check_args", None)
        message = check(ns) if check is not None else None
        if message:
            self.error(message)
        return ns, rest

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
        "compare DIR with the source_fingerprint in DIR/.flash/flash_manifest.json, or (--env) "
        "in the build active in a flash environment: does the next deploy roll the endpoints? "
        "(exit 0 no, 1 yes, 2 error)",
        status.run,
    )
    p.set_defaults(check_args=status.check_args)
    p.add_argument("dir", metavar="DIR", nargs="?", default=None, help=_DIR_HELP)
    p.add_argument(
        "--index", metavar="FILE",
        help=f"per-file index written by `fingerprint --index`, to list added, removed and "
        f"modified files (default: DIR/{DEFAULT_INDEX_RELPATH.as_posix()} when it exists)",
    )
    _add_remote(p, status=True)
    _add_flash_version(p)

    p = add(
        "plan",
        "print the deploy reconciliation plan between a local and a state manifest, or "
        "(--env) between DIR's last build and the build active in a flash environment",
        plan.run,
    )
    p.usage = (
        f"{PROG} plan [-h] [--json] [--adopt-missing-fingerprint] [--flash-version X.Y.Z]\n"
        "              LOCAL_MANIFEST STATE_MANIFEST\n"
        f"       {PROG} plan [-h] [--json] [--adopt-missing-fingerprint] [--flash-version X.Y.Z]\n"
        "              --env ENV [--app APP] [--timeout SECONDS] [DIR]"
    )
    p.description = (
        "Print the deploy reconciliation `flash deploy` performs: which resources it\n"
        "provisions, updates (and why) and reuses.\n\n"
        "  plan LOCAL_MANIFEST STATE_MANIFEST   between two manifest files\n"
        "  plan --env ENV [--app APP] [DIR]     between DIR/.flash/flash_manifest.json (after\n"
        "                                       `flash build`) and the manifest of the build active\n"
        "                                       in flash environment ENV, fetched with runpod-flash's\n"
        "                                       own API client and API key\n\n"
        "--env is read-only: it uploads nothing, provisions nothing and changes nothing\n"
        "(GraphQL queries only; a missing app or environment is reported, not created)."
    )
    p.set_defaults(check_args=plan.check_args)
    p.add_argument("paths", metavar="PATH", nargs="*", help=argparse.SUPPRESS)
    p.add_argument(
        "--adopt-missing-fingerprint", action="store_true",
        help="migration mode: a deployed resource without a recorded source fingerprint "
        "adopts the local one instead of being updated",
    )
    _add_remote(p)
    _add_flash_version(p)
    return parser


def _add_remote(p: argparse.ArgumentParser, status: bool = False) -> None:
    """--env/--app/--timeout: compare with what is deployed (plan, status)."""
    compared = "the source_fingerprint" if status else "the manifest"
    p.add_argument(
        "-e", "--env", metavar="ENV", default=None,
        help=f"compare with {compared} of the build active in this flash environment, read "
        "with runpod-flash's API client (read-only: nothing is uploaded, provisioned or changed)",
    )
    p.add_argument(
        "-a", "--app", metavar="APP", default=None,
        help="the flash app of --env (default: the project directory's name, as `flash deploy`)",
    )
    p.add_argument(
        "--timeout", metavar="SECONDS", type=float, default=None,
        help=f"give up the --env look-up after SECONDS (default: {plan.DEFAULT_TIMEOUT:g})",
    )


def command_parser(parser: argparse.ArgumentParser, command: str | None) -> argparse.ArgumentParser:
    """The parser of ``command`` (``parser`` itself when there is none)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:
            sub: argparse.ArgumentParser = action.choices[command]
            return sub
    return parser


def _add_flash_version(p: argparse.ArgumentParser) -> None:
    from .._flash import SUPPORTED_FLASH_VERSIONS
    from ..deployment import DEFAULT_FLASH_VERSION

    p.add_argument(
        "--flash-version", metavar="X.Y.Z", default=None,
        help=f"the runpod-flash release whose deploy rules to follow ({SUPPORTED_FLASH_VERSIONS}; "
        f"before 1.21.0 client-mode resources get the fingerprint too). Default: the installed "
        f"runpod-flash, or {DEFAULT_FLASH_VERSION} without one",
    )

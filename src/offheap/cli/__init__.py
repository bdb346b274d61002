"""The ``offheap`` command line: one module per subcommand.

Each subcommand module defines a ``Command`` subclass with ``name``, ``help``,
``add_arguments(parser)`` and ``run(args) -> int``. ``main(argv)`` builds the
parser from ``COMMANDS`` and turns every ``OffheapError`` (and the OS errors a
user can cause) into one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Any, Callable, Sequence

from ..errors import OffheapError

# Subcommand modules, in the order ``offheap --help`` lists them.
COMMANDS = [
    "strings",
    "scan",
    "templates",
    "dump",
    "regions",
    "nmt",
    "heap",
    "investigate", "diff", "demo",
]


def positive(convert: Callable[[str], Any], what: str | None = None,
             most: float | None = None) -> Callable[[str], Any]:
    """An argparse ``type``: ``convert(text)`` (int, float), which must be above 0
    (and at most ``most``). ``what`` names the value in the one error line ("not a
    PID"); without it the line says what is wrong with the number."""
    def parse(value: str) -> Any:
        try:
            n = convert(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a {what or 'number'}: {value!r}") from None
        if n <= 0 or (most is not None and n > most):
            if what:
                raise argparse.ArgumentTypeError(f"not a {what}: {value!r}")
            if most is not None:
                raise argparse.ArgumentTypeError(f"must be between 0 and {most}: {value!r}")
            raise argparse.ArgumentTypeError(f"must be > 0: {value}")
        return n
    return parse


class CommandError(Exception):
    """Raised by a command to stop with a one-line message and an exit code."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


class Command:
    name = ""
    help = ""

    def normalize_argv(self, argv: list[str]) -> list[str]:
        """Rewrite this command's arguments before argparse sees them (rarely needed)."""
        return argv

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:  # pragma: no cover - overridden
        pass

    def run(self, args: argparse.Namespace) -> int:  # pragma: no cover - overridden
        raise NotImplementedError


def _load_commands(names: Sequence[str] = ()) -> list[Command]:
    return [importlib.import_module(f".{name}", __name__).COMMAND for name in (names or COMMANDS)]


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``only``, just that subcommand (the others' modules, some of
    them heavy, are then not imported: `offheap strings` starts faster)."""
    parser = argparse.ArgumentParser(
        prog="offheap",
        description="Find what fills a process's native (off-heap) memory.",
    )
    from .. import __version__
    parser.add_argument("--version", action="version", version=f"offheap {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in _load_commands([only] if only else ()):
        p = sub.add_parser(command.name, help=command.help, description=command.help)
        command.add_arguments(p)
        p.set_defaults(_command=command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:
        # Ctrl-C while the command's modules are still being imported.
        print("offheap: interrupted", file=sys.stderr)
        return 130


def _main(argv: Sequence[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    only = argv[0] if argv and argv[0] in COMMANDS else None
    if only:
        argv = [only, *_load_commands([only])[0].normalize_argv(argv[1:])]
    parser = build_parser(only)
    args = parser.parse_args(argv)
    command = getattr(args, "_command", None)
    if command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return command.run(args)
    except CommandError as exc:
        print(f"offheap {command.name}: {exc}", file=sys.stderr)
        return exc.exit_code
    except OffheapError as exc:
        print(f"offheap {command.name}: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # `offheap strings big.dump | head`: the reader left; that is not an error.
        _silence_stdout()
        return 0
    except KeyboardInterrupt:
        print(f"offheap {command.name}: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        name = f"{exc.filename}: " if exc.filename else ""
        print(f"offheap {command.name}: {name}{exc.strerror or exc}", file=sys.stderr)
        return 1


def _silence_stdout() -> None:
    # Point stdout at /dev/null so the interpreter's final flush cannot raise again.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except OSError:
        pass

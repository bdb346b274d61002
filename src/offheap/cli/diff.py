"""``offheap diff A B``: what grew between two investigations of the same process."""

from __future__ import annotations

import argparse

from ..diff import diff, render_diff
from . import Command


class DiffCommand(Command):
    name = "diff"
    help = "growth between two investigations (per region class and payload type, per hour)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("a", metavar="A", help="the earlier investigation directory (or its report.json)")
        parser.add_argument("b", metavar="B", help="the later investigation directory (or its report.json)")
        parser.add_argument("--top", type=int, default=10, metavar="N", help="rows per table (default 10)")

    def run(self, args: argparse.Namespace) -> int:
        print(render_diff(diff(args.a, args.b), top=max(1, args.top)))
        return 0


COMMAND = DiffCommand()

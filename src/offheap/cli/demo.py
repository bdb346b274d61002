"""``offheap demo [-o DIR] [--size MB]``: investigate a bundled leaking workload, end to end.

Starts Python threads that leak JSON push payloads of three types into glibc arenas
(no compiler, no JVM), investigates them, prints the summary beside the workload's
own byte counts, writes the report, and ends the workload. Exit 1 when offheap's
shares differ from the workload's by more than 10 %.
"""

from __future__ import annotations

import argparse
import tempfile

from ..demo import render_demo, run_demo
from . import Command, CommandError, positive


class DemoCommand(Command):
    name = "demo"
    help = "investigate a bundled leaking workload (Python threads leaking JSON into glibc arenas)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("-o", "--output", metavar="DIR",
                            help="investigation directory (default: a new offheap-demo-* directory in /tmp)")
        parser.add_argument("--size", type=positive(float, most=4096), default=64.0, metavar="MB",
                            help="MiB of payloads the workload leaks (default 64)")
        parser.add_argument("--threads", type=int, default=4, metavar="N",
                            help="workload threads, one glibc arena each (default 4)")
        parser.add_argument("--discover", action="store_true",
                            help="discover payload templates instead of using the demo's three signatures")
        parser.add_argument("--force", action="store_true", help="overwrite an investigation in DIR")

    def run(self, args: argparse.Namespace) -> int:
        if not 1 <= args.threads <= 64:
            raise CommandError(f"--threads must be between 1 and 64, not {args.threads}", 2)
        out = args.output or tempfile.mkdtemp(prefix="offheap-demo-")
        result = run_demo(out, args.size, args.threads, discover=args.discover, force=args.force)
        print(render_demo(result))
        return 0 if result.ok else 1


COMMAND = DemoCommand()

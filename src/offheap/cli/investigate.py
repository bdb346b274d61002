"""``offheap investigate PID -o DIR`` / ``offheap investigate --from DIR``: the whole diagnosis.

Snapshots /proc (and NMT for a JVM), dumps the suspect regions without stopping the
target (unless ``--method gdb``), attributes their bytes to payload types, walks the
glibc heaps, prints a summary that reads like a diagnosis, and writes report.json,
report.html and everything needed to re-analyse it offline with ``--from``.
"""

from __future__ import annotations

import argparse
import sys

from ..investigate import DEFAULT_BUDGET, investigate, investigate_offline, render_summary
from ..signatures import load_for_cli
from . import Command, CommandError
from .dump import _pid, parse_size


class InvestigateCommand(Command):
    name = "investigate"
    help = "from a PID to the answer: dump the suspects, attribute payloads, live vs retained"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("pid", type=_pid, nargs="?", metavar="PID", help="the process to investigate")
        parser.add_argument("--from", dest="from_dir", metavar="DIR",
                            help="re-analyse a saved investigation directory instead of a live PID")
        parser.add_argument("-o", "--output", metavar="DIR",
                            help="directory for captures, dumps and reports (with --from: where to "
                                 "write the new reports; default the --from directory)")
        parser.add_argument("--signatures", metavar="FILE",
                            help="payload types (TOML, see examples/signatures.toml); default: "
                                 "discover templates in the dumps")
        parser.add_argument("--budget", type=parse_size, default=None, metavar="BYTES",
                            help=f"resident bytes to dump at most (default {DEFAULT_BUDGET >> 20}M; "
                                 "K/M/G suffixes)")
        parser.add_argument("--method", choices=("mem", "vm", "gdb"), default="mem",
                            help="how to read memory: mem (default) and vm never stop the target; "
                                 "gdb stops it while attached")
        parser.add_argument("--force", action="store_true", help="overwrite an investigation in DIR")
        parser.add_argument("--no-html", action="store_true", help="do not write report.html")

    def run(self, args: argparse.Namespace) -> int:
        sigs = load_for_cli(args.signatures) if args.signatures else None
        if args.from_dir is not None:
            if args.pid is not None:
                raise CommandError("give a PID or --from DIR, not both", 2)
            for flag, value in (("--budget", args.budget), ("--force", args.force or None),
                                ("--method", None if args.method == "mem" else args.method)):
                if value is not None:
                    raise CommandError(f"{flag} applies to a live PID, not to --from", 2)
            inv = investigate_offline(args.from_dir, signatures=sigs, out_dir=args.output,
                                      write_html=not args.no_html)
        else:
            if args.pid is None:
                raise CommandError("give a PID (or --from DIR to re-analyse a saved investigation)", 2)
            if args.output is None:
                raise CommandError("give an output directory: -o DIR", 2)
            inv = investigate(args.pid, args.output, signatures=sigs, budget=args.budget,
                              method=args.method, force=args.force, write_html=not args.no_html)
        print(render_summary(inv))
        sys.stdout.flush()
        return 0


COMMAND = InvestigateCommand()

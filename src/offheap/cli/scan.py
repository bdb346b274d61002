"""``offheap scan``: what fills these dumps, by payload type."""

from __future__ import annotations

import argparse
import json
import sys

from ..attribute import DEFAULT_MIN_LEN
from ..bulk import scan_many
from ..report.scan import bulk_csv, render_bulk
from ..signatures import load_for_cli
from . import Command, CommandError
from .output import check_output, write_output


class ScanCommand(Command):
    name = "scan"
    help = "attribute the bytes of dumps to payload types (signatures or built-ins)"

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("paths", nargs="+", metavar="PATH", help="dump files or directories (with manifest.json)")
        p.add_argument("--signatures", metavar="FILE", help="payload types (TOML); default: built-in recognisers")
        p.add_argument("--json", metavar="OUT", help="write the result as JSON (schema offheap-scan/2); - for stdout")
        p.add_argument("--csv", metavar="OUT", help="write one row per dump and class as CSV; - for stdout")
        p.add_argument("--workers", type=int, default=None, help="dumps scanned at once (default: all cores)")
        p.add_argument("-n", "--min-len", type=int, default=DEFAULT_MIN_LEN,
                       help=f"minimum string length (default {DEFAULT_MIN_LEN})")
        p.add_argument("--top", type=int, default=5, help="templates shown per payload type")
        p.add_argument("--force", action="store_true", help="overwrite existing --json/--csv files")

    def run(self, args: argparse.Namespace) -> int:
        sigs = load_for_cli(args.signatures)
        for out in (args.json, args.csv):
            if out:
                check_output(out, args.force)
        if args.workers is not None and args.workers < 1:
            raise CommandError(f"--workers must be at least 1, not {args.workers}")
        result = scan_many(args.paths, sigs, workers=args.workers, min_len=args.min_len,
                           top=max(args.top, 1), progress=True)
        if args.json:
            write_output(args.json, json.dumps(result.to_dict(), indent=1) + "\n", args.force)
        if args.csv:
            write_output(args.csv, bulk_csv(result), args.force)
        if args.json != "-" and args.csv != "-":
            print(render_bulk(result, args.top))
        for d in result.failures:
            print(f"offheap scan: {d.error}", file=sys.stderr)
        if not any(d.ok for d in result.dumps):
            return 1
        return 1 if result.failures else 0


COMMAND = ScanCommand()

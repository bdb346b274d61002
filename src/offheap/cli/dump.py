"""``offheap dump PID [--suspects | --range START-END ... | --all-anon] -o DIR``: dump memory to sparse files."""

from __future__ import annotations

import argparse
import re
import sys
import time

from . import Command, CommandError, positive
from ..report.text import human

_SIZE = re.compile(r"^\s*(\d+)\s*([kmgt]?)(i?b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str) -> int:
    """'64M' -> 67108864; units are binary (K, M, G, T, with optional 'iB'/'B')."""
    m = _SIZE.match(text)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (use e.g. 1048576, 512K, 64M, 2G)")
    size = int(m.group(1)) * _UNITS[m.group(2).lower()]
    if size == 0:
        raise argparse.ArgumentTypeError(f"{text!r}: a size must be more than 0 bytes")
    return size


def parse_range(text: str) -> tuple[int, int]:
    """'7f0000000000-7f0004000000' (hex, 0x optional, as in /proc/PID/maps) -> (start, end)."""
    parts = text.split("-")
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"not a range: {text!r} (use START-END in hex, end exclusive)")
    try:
        start, end = (int(p, 16) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a range: {text!r} (use START-END in hex)") from None
    if end <= start:
        raise argparse.ArgumentTypeError(f"empty range {text!r}: END must be above START")
    return start, end


_pid = positive(int, "PID")


class DumpCommand(Command):
    name = "dump"
    help = "dump a live process's memory (sparse files + manifest.json) without stopping it"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("pid", type=_pid, metavar="PID")
        what = parser.add_mutually_exclusive_group()
        what.add_argument("--suspects", action="store_true",
                          help="glibc arena heaps and [heap] (the default)")
        what.add_argument("--range", dest="ranges", action="append", type=parse_range, metavar="START-END",
                          help="an address range in hex, end exclusive (repeatable)")
        what.add_argument("--all-anon", action="store_true", help="every anonymous mapping")
        parser.add_argument("-o", "--output", required=True, metavar="DIR",
                            help="directory to create (0700) for the dump files and manifest.json")
        parser.add_argument("--method", choices=("mem", "vm", "gdb"), default="mem",
                            help="mem: /proc/PID/mem (default); vm: process_vm_readv; "
                                 "gdb: gdb 'dump memory' (stops the target while attached)")
        parser.add_argument("--max-bytes", type=parse_size, metavar="N",
                            help="stop after reading N bytes of resident memory (K/M/G suffixes)")
        parser.add_argument("--force", action="store_true", help="overwrite a dump already in DIR")
        parser.add_argument("--no-checksum", action="store_true",
                            help="leave sha256 out of the manifest (saves ~1 s per GB)")

    def run(self, args: argparse.Namespace) -> int:
        from ..dump import dump_process

        if args.ranges:
            ranges = args.ranges
        elif args.all_anon:
            ranges = "all-anon"
        else:
            ranges = "suspects"
        t = time.monotonic()
        m = dump_process(args.pid, args.output, ranges=ranges, method=args.method,
                         max_bytes=args.max_bytes, force=args.force, checksum=not args.no_checksum)
        elapsed = time.monotonic() - t
        dumped = [r for r in m.regions if r.file is not None]
        skipped = [r for r in m.regions if r.file is None]
        size = sum(r.size for r in dumped)
        present = m.present
        swapped = sum(r.swapped for r in m.regions)
        partial = [r for r in m.regions if r.status == "partial"]
        out = sys.stdout
        print(f"dumped {len(dumped)} region(s) of PID {m.pid} to {args.output} ({m.method}, {m.selection})",
              file=out)
        print(f"  bytes present  {human(present)} of {human(size)} mapped; "
              f"{human(size - present)} left sparse (never touched or unreadable)", file=out)
        if swapped:
            print(f"  swapped        {human(swapped)} not read (would have been swapped back in)", file=out)
        if skipped or partial:
            print(f"  skipped        {len(skipped)} region(s), {len(partial)} partial (see manifest.json)",
                  file=out)
        print(f"  time           {elapsed:.3f} s; target stopped {m.stopped_seconds:.3f} s", file=out)
        if m.note:
            print(f"  note           {m.note}", file=out)
        if not dumped:
            raise CommandError("no region could be dumped", exit_code=1)
        return 0


COMMAND = DumpCommand()

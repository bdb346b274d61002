"""``offheap regions PID|SMAPS_FILE``: the ``pmap -x | sort -n -k3`` view, classified.

Every mapping gets a class (glibc arena heap, main heap, thread stack, Java
heap / code cache / metaspace with ``--nmt`` detail, file, anonymous), arena
heaps are grouped into arenas, and totals per class close the report.
"""

from __future__ import annotations

import argparse

from .. import nmt as nmt_mod
from .. import proc, regions as regions_mod
from ..errors import AccessDenied, NoSuchProcess
from ..report import text
from . import Command, CommandError, positive

_SORT_KEYS = {
    "rss": lambda r: (-r.mapping.rss, r.mapping.start),
    "size": lambda r: (-r.mapping.size, r.mapping.start),
    "dirty": lambda r: (-r.mapping.dirty, r.mapping.start),
    "addr": lambda r: r.mapping.start,
}


def classify_snapshot(snap: proc.ProcessSnapshot, report=None, read_memory: bool = True):
    """Classify a snapshot's mappings; for a live PID, read heap_info headers when allowed."""
    reader = None
    if read_memory and snap.pid is not None and snap.source.startswith("/proc/"):
        try:
            reader = proc.MemReader(snap.pid)
        except (AccessDenied, NoSuchProcess):
            reader = None   # classify by shape and VmFlags only
    try:
        return regions_mod.classify(snap.mappings, nmt=report, reader=reader)
    finally:
        if reader is not None:
            reader.close()


class RegionsCommand(Command):
    name = "regions"
    help = "list a process's mappings by class (glibc arenas, heap, stacks, JVM spaces)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("target", metavar="PID|SMAPS_FILE",
                            help="a live PID, a saved smaps/maps file, or a capture directory")
        parser.add_argument("--sort", choices=sorted(_SORT_KEYS), default="rss",
                            help="order of the mapping table (default: rss, largest first)")
        parser.add_argument("--top", type=positive(int), metavar="N",
                            help="show only the first N mappings (totals still cover all)")
        parser.add_argument("--nmt", metavar="FILE",
                            help="a saved `jcmd PID VM.native_memory detail` output: names the "
                                 "JVM's Java heap, code cache, metaspace and thread stacks")
        parser.add_argument("--no-read", action="store_true",
                            help="do not read target memory to validate heap_info headers")

    def run(self, args: argparse.Namespace) -> int:
        snap = proc.load_snapshot(args.target)
        report = nmt_mod.read_nmt(args.nmt) if args.nmt else None
        if report is not None and report.enabled and not report.virtual_regions:
            raise CommandError(f"{args.nmt}: a summary report has no virtual memory map; "
                               "use `jcmd PID VM.native_memory detail`", 2)
        regions = classify_snapshot(snap, report, read_memory=not args.no_read)
        shown = sorted(regions, key=_SORT_KEYS[args.sort])
        if args.top:
            shown = shown[:args.top]
        out = [f"{snap.source}" + (f" (PID {snap.pid})" if snap.pid else "")
               + ("" if snap.has_smaps else "  [maps only: no RSS, arena heaps by shape alone]")]
        out.append(text.render_regions(shown, regions))
        arenas = regions_mod.arenas(regions)
        if arenas:
            out += ["", "glibc arenas" + ("" if any(a.base for a in arenas) else
                                          " (heap_info not read: each heap shown as its own arena)"),
                    text.render_arenas(arenas)]
        out += ["", "Totals per class", text.render_class_totals(regions_mod.totals(regions))]
        print("\n".join(out))
        return 0


COMMAND = RegionsCommand()

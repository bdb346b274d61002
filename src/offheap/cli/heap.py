"""``offheap heap DUMP``: walk a dumped glibc heap and say whether its memory is live or retained.

Prints the verdict, bytes and chunks per state, the chunk size histogram, the top chunk
and, when the walk stopped early, where and why. Exit status 0 even for a corrupt heap
(the report says so); 1 for input that is not a heap at all.
"""

from __future__ import annotations

import argparse
import sys

from pathlib import Path

from ..heap import STATE_NAMES, walk_heap
from ..main_arena import walk_args
from ..bulk import DumpSpec, check_spec
from ..manifest import MANIFEST_NAME, load_manifest
from . import Command, CommandError
from ..report.text import human

# manifest region class -> walk_heap kind
_KINDS = {"arena": "arena", "heap": "main"}


def _address(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an address: {text!r} (e.g. 0x7f2698000000)") from None
    if not 0 <= value < 1 << 64:
        raise argparse.ArgumentTypeError(f"address out of range: {text!r}")
    return value


def render(walk, name: str, out) -> None:
    """Write the text report of a ``HeapWalk`` to ``out``."""
    w = out.write
    lay = walk.layout
    base = f"0x{walk.base_address:x}" if walk.base_address is not None else "unknown"
    w(f"{name}: {walk.verdict}\n")
    if lay.kind == "arena":
        where = "non-main arena heap, " + ("the arena's first" if lay.first_heap else "malloc_state elsewhere")
    else:
        where = "main arena [heap]"
    linking = {True: "yes", False: "no", None: "unknown"}[lay.safe_linking]
    w(f"  heap: {where}; base {base}; glibc {lay.glibc}; safe-linking {linking}\n")
    w(f"  walked {human(walk.walked_bytes)} in {len(walk.chunks):,} chunks; end: {walk.end_reason}\n")
    if walk.corruption is not None:
        w(f"  CORRUPTION: {walk.corruption}\n")
    w("  state          bytes          chunks   certain  likely  assumed\n")
    for s, sname in enumerate(STATE_NAMES):
        mask = walk.chunks.state == s
        cert = walk.chunks.certainty[mask]
        counts = [int((cert == c).sum()) for c in (3, 2, 1)]
        w(f"  {sname:<10} {walk.bytes_by_state[sname]:>14,} {walk.chunks_by_state[sname]:>10,}"
          f" {counts[0]:>9,} {counts[1]:>7,} {counts[2]:>8,}\n")
    w(f"  free share {100 * walk.free_share:.1f} % (free chunks + touched top)\n")
    if walk.top_offset is not None:
        addr = (f"0x{walk.base_address + walk.top_offset:x}" if walk.base_address is not None
                else f"offset 0x{walk.top_offset:x}")
        w(f"  top chunk {addr}: {human(walk.top_size)} ({human(walk.top_touched)} touched)\n")
    else:
        w("  top chunk: not in this heap\n")
    w("  chunk sizes      in use   free (tcache+fast+bins)\n")
    edges = walk.histogram_edges
    inuse = walk.histogram["in use"]
    free = sum(walk.histogram[n] for n in STATE_NAMES[1:6])
    for i in range(len(edges)):
        if inuse[i] or free[i]:
            hi = f"{edges[i + 1]}" if i + 1 < len(edges) else "..."
            w(f"  {edges[i]:>8}-{hi:<8} {int(inuse[i]):>8,} {int(free[i]):>10,}\n")
    if walk.anomalies:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(walk.anomaly_kinds.items()))
        w(f"  anomalies: {walk.anomalies} ({kinds})\n")
    for note in walk.notes:
        w(f"  note: {note}\n")


def _arena_args(dump: Path, kind: str) -> dict:
    """main_arena saved by ``offheap investigate`` (capture/main_arena.json beside the
    dump directory) or beside the dump itself: [heap]'s fastbins and bins."""
    for where in (dump.parent, dump.parent.parent / "capture"):
        args = walk_args(where, kind)
        if args:
            return args
    return {}


class HeapCommand(Command):
    name = "heap"
    help = "walk a dumped glibc heap: live (leak) or freed memory glibc keeps"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("dump", help="dump of one heap (a non-main arena heap from its base, or [heap]), "
                                         "or a dump directory: every glibc heap its manifest lists")
        parser.add_argument("--manifest", metavar="FILE",
                            help="manifest.json giving the dump's address and class (default: the one beside it)")
        parser.add_argument("--base", type=_address, default=None, metavar="ADDR",
                            help="address of the dump's first byte (default: read from heap_info)")
        parser.add_argument("--kind", choices=("auto", "arena", "main"), default="auto",
                            help="arena: non-main heap with heap_info; main: [heap] (default: auto)")

    def run(self, args: argparse.Namespace) -> int:
        for path, base, kind in self._targets(args):
            walk = walk_heap(path, base_address=base, kind=kind, **_arena_args(Path(path), kind))
            render(walk, path, sys.stdout)
        return 0

    @staticmethod
    def _targets(args: argparse.Namespace) -> list[tuple[str, int | None, str]]:
        """(file, base address, kind) of each heap to walk; the manifest fills in what
        the command line leaves out."""
        dump = Path(args.dump)
        manifest_dir = Path(args.manifest).parent if args.manifest else (dump if dump.is_dir() else dump.parent)
        have_manifest = (manifest_dir / MANIFEST_NAME).exists() if not args.manifest else True
        if dump.is_dir():
            if not have_manifest:
                raise CommandError(f"{dump}: a directory without {MANIFEST_NAME}: name one heap dump")
            m = load_manifest(manifest_dir)
            entries = [r for r in m.dumped() if r.cls in _KINDS]
            for r in entries:   # a dump cut short in a copy would walk as an "empty" heap
                check_spec(DumpSpec(str(manifest_dir / r.file), expected_size=r.stored_size))
            heaps = [(str(manifest_dir / r.file), r.start, _KINDS[r.cls]) for r in entries]
            if not heaps:
                raise CommandError(f"{dump}: the manifest lists no glibc heap (arena or [heap])")
            return heaps
        base, kind = args.base, args.kind
        if have_manifest:
            m = load_manifest(manifest_dir)
            entry = next((r for r in m.dumped() if r.file == dump.name), None)
            if entry is None and args.manifest:
                raise CommandError(f"{args.manifest}: lists no dump file named {dump.name}")
            if entry is not None:
                check_spec(DumpSpec(str(dump), expected_size=entry.stored_size))
                base = entry.start if base is None else base
                if kind == "auto" and entry.cls in _KINDS:
                    kind = _KINDS[entry.cls]
        return [(str(dump), base, kind)]


COMMAND = HeapCommand()

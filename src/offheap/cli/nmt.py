"""``offheap nmt PID|FILE``: JVM Native Memory Tracking set against the process's RSS.

Shows NMT committed per category, malloc total and peak, and — with smaps
(live PID, or ``--smaps``) — the honest *untracked* figure: glibc arena
heaps' + ``[heap]`` RSS minus NMT's malloc total. ``RSS − NMT committed`` is
shown too, with its caveat. With a detail report it lists the resident
mappings NMT knows nothing about.

Exit status: 0, or 3 when the JVM runs without NMT (reported as such).
"""

from __future__ import annotations

import argparse

from .. import nmt as nmt_mod
from .. import proc
from ..errors import AccessDenied
from ..report import text
from . import Command, positive
from .regions import classify_snapshot

EXIT_NOT_ENABLED = 3


class NmtCommand(Command):
    name = "nmt"
    help = "JVM Native Memory Tracking vs RSS: what malloc'd memory NMT does not see"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("target", metavar="PID|FILE",
                            help="a live JVM's PID (runs jcmd) or a saved jcmd NMT output")
        parser.add_argument("--smaps", metavar="FILE",
                            help="smaps capture of the same process (default for a PID: /proc/PID/smaps)")
        parser.add_argument("--detail", action="store_true",
                            help="for a PID: ask for `detail` (needs -XX:NativeMemoryTracking=detail)")
        parser.add_argument("--timeout", type=positive(float), default=30.0, metavar="SECONDS",
                            help="give up on jcmd after this long (it hangs on a stopped JVM; default 30)")
        parser.add_argument("--top", type=positive(int), default=20, metavar="N",
                            help="unknown-to-NMT mappings to list (default 20)")

    def run(self, args: argparse.Namespace) -> int:
        target = proc.parse_target(args.target)
        snap = None
        if isinstance(target, int):
            report = nmt_mod.run_jcmd(target, "detail" if args.detail else "summary", args.timeout)
            if args.smaps is None:
                try:
                    snap = proc.load_snapshot(target)
                except AccessDenied:
                    snap = None     # NMT figures alone are still worth showing
        else:
            report = nmt_mod.read_nmt(target)
        if args.smaps is not None:
            snap = proc.load_snapshot(args.smaps)

        out = [text.render_nmt_summary(report)]
        if report.enabled:
            out += ["", text.render_nmt_categories(report)]
        if snap is not None:
            if not snap.has_smaps:
                out.append("(maps only: no RSS figures to compare)")
            else:
                regions = classify_snapshot(snap, report if report.enabled else None)
                rss = snap.rss if (snap.rollup or snap.status) else None
                out.append(text.render_nmt_comparison(nmt_mod.compare(report, regions, rss), args.top))
        elif report.enabled:
            out.append("\n(give --smaps FILE of the same process for the untracked-native figure)")
        print("\n".join(out))
        return 0 if report.enabled else EXIT_NOT_ENABLED


COMMAND = NmtCommand()

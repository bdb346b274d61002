"""Plain-text reporters: aligned tables in the style of ``pmap -x``.

Generic pieces first (``Column``, ``render_table``, ``kb``/``human``), then
renderers for the process-side results (regions, class totals, arenas, NMT).
Each renderer returns a ``str``; callers print it. Nothing here knows about
argparse, /proc or the kernels.

>>> print(render_table([Column("name"), Column("kB", "r")], [["heap", "132"]]))
name   kB
heap  132
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

from ..records import (Arena, ClassTotal, NmtComparison, NmtReport, Region)

KIB = 1024


@dataclass(frozen=True)
class Column:
    """A table column: a header and an alignment ("l" or "r")."""

    header: str
    align: str = "l"


def kb(n: Optional[int]) -> str:
    """Bytes as whole kB (pmap's unit); "-" for unknown."""
    return "-" if n is None else str(n // KIB)


def human(n: Optional[int]) -> str:
    """Bytes as a short human figure: 912 B, 8.0 KiB, 604.3 MiB, 1.46 GiB (sign kept)."""
    if n is None:
        return "-"
    sign = "-" if n < 0 else ""
    v = float(abs(n))
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if v < 1024 or unit == "TiB":
            if unit == "B":
                return f"{sign}{int(v)} B"
            return f"{sign}{v:.2f} {unit}" if v < 10 else f"{sign}{v:.1f} {unit}"
        v /= 1024
    raise AssertionError("unreachable")


def render_table(columns: Sequence[Column], rows: Iterable[Sequence[str]],
                 footer: Optional[Sequence[Sequence[str]]] = None, gap: int = 2) -> str:
    """Align ``rows`` (lists of str) under ``columns``; ``footer`` rows follow a rule.

    The last left-aligned column is not padded, so long paths do not leave
    trailing blanks.
    """
    body = [list(r) for r in rows]
    foot = [list(r) for r in footer] if footer else []
    every = [[c.header for c in columns]] + body + foot
    widths = [max(len(r[i]) for r in every) for i in range(len(columns))]

    def line(cells: Sequence[str]) -> str:
        out = []
        for i, (c, cell) in enumerate(zip(columns, cells)):
            last = i == len(columns) - 1
            if c.align == "r":
                out.append(cell.rjust(widths[i]))
            else:
                out.append(cell if last else cell.ljust(widths[i]))
        return (" " * gap).join(out).rstrip()

    lines = [line([c.header for c in columns])]
    lines += [line(r) for r in body]
    if foot:
        lines.append("-" * len(max(lines, key=len)))
        lines += [line(r) for r in foot]
    return "\n".join(lines)


# --------------------------------------------------------------------------- regions

REGION_COLUMNS = (
    Column("Address"), Column("Kbytes", "r"), Column("RSS", "r"), Column("Dirty", "r"),
    Column("Swap", "r"), Column("Mode"), Column("Class"), Column("Arena", "r"), Column("Mapping"),
)


def _mapping_name(r: Region) -> str:
    m = r.mapping
    if m.path:
        return m.path
    if r.label and r.label not in (f"arena {r.arena_id}",):
        return f"[ anon: {r.label} ]"
    return "[ anon ]"


def region_row(r: Region) -> list[str]:
    m = r.mapping
    return [f"{m.start:016x}", kb(m.size), kb(m.rss) if m.has_smaps else "-",
            kb(m.dirty) if m.has_smaps else "-", kb(m.swap) if m.has_smaps else "-", m.perms,
            str(r.cls), "" if r.arena_id is None else str(r.arena_id), _mapping_name(r)]


def render_regions(regions: Sequence[Region], total: Optional[Sequence[Region]] = None) -> str:
    """The ``pmap -x`` view with a class and arena column; ``total`` (default: ``regions``)
    feeds the footer, so a ``--top`` listing still shows the whole process's sums."""
    every = regions if total is None else total
    foot = [["total kB", kb(sum(r.mapping.size for r in every)),
             kb(sum(r.mapping.rss for r in every)), kb(sum(r.mapping.dirty for r in every)),
             kb(sum(r.mapping.swap for r in every)), "", "", "", f"{len(every)} mappings"]]
    return render_table(REGION_COLUMNS, (region_row(r) for r in regions), foot)


def render_class_totals(totals: Sequence[ClassTotal]) -> str:
    cols = (Column("Class"), Column("Mappings", "r"), Column("Kbytes", "r"), Column("RSS", "r"),
            Column("Dirty", "r"), Column("Swap", "r"), Column("RSS (human)", "r"))
    rows = [[str(t.cls), str(t.count), kb(t.size), kb(t.rss), kb(t.dirty), kb(t.swap), human(t.rss)]
            for t in totals]
    foot = [["all", str(sum(t.count for t in totals)), kb(sum(t.size for t in totals)),
             kb(sum(t.rss for t in totals)), kb(sum(t.dirty for t in totals)),
             kb(sum(t.swap for t in totals)), human(sum(t.rss for t in totals))]]
    return render_table(cols, rows, foot)


def render_arenas(arenas: Sequence[Arena]) -> str:
    cols = (Column("Arena", "r"), Column("malloc_state"), Column("Heaps", "r"), Column("Kbytes", "r"),
            Column("RSS", "r"), Column("Dirty", "r"), Column("First heap"))
    rows = []
    for a in arenas:
        first = a.regions[0].mapping
        rows.append([
            "main" if a.arena_id == 0 else str(a.arena_id),
            "-" if a.base is None else f"{a.base:#x}",
            str(a.heap_count), kb(a.size), kb(a.rss), kb(a.dirty),
            first.path or f"{first.start:#x}",
        ])
    return render_table(cols, rows)


# --------------------------------------------------------------------------- NMT

def render_nmt_categories(report: NmtReport) -> str:
    cols = (Column("Category"), Column("Reserved kB", "r"), Column("Committed kB", "r"),
            Column("Malloc kB", "r"), Column("Malloc peak kB", "r"), Column("#mallocs", "r"),
            Column("Mmap committed kB", "r"), Column("Arena kB", "r"))
    rows = []
    cats = sorted(report.categories, key=lambda c: -c.committed)
    for c in cats:
        rows.append([c.name, kb(c.reserved), kb(c.committed), kb(c.malloc),
                     kb(c.malloc_peak), str(c.malloc_count), kb(c.mmap_committed), kb(c.arena)])
    foot = [["Total", kb(report.total_reserved), kb(report.total_committed), kb(report.malloc_total),
             kb(report.malloc_peak), str(report.malloc_count),
             kb(report.mmap_committed), ""]]
    return render_table(cols, rows, foot)


def render_nmt_summary(report: NmtReport) -> str:
    """Headline lines of an NMT report."""
    where = f"PID {report.pid}" if report.pid else report.source
    if not report.enabled:
        return (f"NMT: not enabled in {where} — start the JVM with "
                "-XX:NativeMemoryTracking=summary (or detail)")
    peak = "not printed by this JDK"
    if report.malloc_peak is not None:
        peak = human(report.malloc_peak) + (" (sum of per-category peaks: an upper bound)"
                                            if report.malloc_peak_derived else "")
    lines = [
        f"NMT {report.kind} of {where} (format {report.format})",
        f"  reserved {human(report.total_reserved)}, committed {human(report.total_committed)}",
        f"  malloc total {human(report.malloc_total)} in {report.malloc_count} allocations"
        + (" (derived from the categories)" if report.malloc_total_derived else ""),
        f"  malloc peak  {peak}",
    ]
    return "\n".join(lines)


UNTRACKED_NOTE = ("malloc'd outside NMT: native libraries (zlib Deflater/Inflater never end()ed, "
                  "netty), glibc arena overhead, and freed chunks glibc keeps resident")
RSS_COMMITTED_CAVEAT = ("caveat: committed is not resident (Java heap pages never touched count "
                        "as committed), so this can mislead and even go negative")


def render_nmt_comparison(cmp: NmtComparison, top: int = 20) -> str:
    r = cmp.report
    lines = ["", "Against smaps:"]
    if cmp.process_rss is not None:
        lines.append(f"  process RSS                         {human(cmp.process_rss):>12}")
    what = "arenas" if cmp.arenas_chained else "heaps "
    lines.append(f"  glibc arena heaps RSS ({cmp.arena_count:>3} {what})   {human(cmp.arena_rss):>12}")
    lines.append(f"  main heap [heap] RSS                {human(cmp.main_heap_rss):>12}")
    lines.append(f"  NMT malloc total                    {human(r.malloc_total if r.enabled else 0):>12}")
    label = "untracked native (arenas + [heap] - NMT malloc)"
    lines.append(f"  {label}: {human(cmp.untracked)}")
    lines.append(f"    = {UNTRACKED_NOTE}")
    if cmp.rss_minus_committed is not None:
        lines.append(f"  RSS - NMT committed: {human(cmp.rss_minus_committed)}")
        lines.append(f"    ({RSS_COMMITTED_CAVEAT})")
    if r.is_detail:
        lines.append("")
        if not cmp.unknown:
            lines.append("Mappings NMT knows nothing about: none resident")
        else:
            shown = sorted(cmp.unknown, key=lambda x: -x.mapping.rss)[:top]
            lines.append(f"Mappings NMT knows nothing about: {len(cmp.unknown)}, "
                         f"{human(cmp.unknown_rss)} resident (largest {len(shown)}):")
            lines.append(render_regions(shown, cmp.unknown))
    elif r.enabled:
        lines.append("  (run with NMT detail to list the mappings NMT knows nothing about)")
    return "\n".join(lines)

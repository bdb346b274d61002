"""Text and CSV reporters for attribution results (``offheap scan``, ``offheap templates``)."""

from __future__ import annotations

import csv
import io
from typing import Sequence

from ..attribute import BINARY, OTHER_TEXT, ZERO, Attribution
from ..bulk import BulkResult
from .text import Column, human, render_table

_FIXED = (OTHER_TEXT, ZERO, BINARY)


def _short(text: str, width: int = 70) -> str:
    text = text.replace("\t", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def _type_order(result: BulkResult) -> list[str]:
    names = [n for n in result.totals if n not in _FIXED and result.totals[n] > 0]
    names.sort(key=lambda n: -result.totals[n])
    return names + list(_FIXED)


def render_bulk(result: BulkResult, top_templates: int = 3) -> str:
    """The terminal report of ``offheap scan``: totals per class, then per dump."""
    out = []
    total = result.scanned_bytes
    names = _type_order(result)
    rows = [[n, human(result.totals.get(n, 0)),
             f"{100 * result.totals.get(n, 0) / total:.1f} %" if total else "-",
             str(result.type_dumps.get(n, "")) if n not in _FIXED else ""] for n in names]
    ok = [d for d in result.dumps if d.ok]
    out.append(f"{len(ok)} of {len(result.dumps)} dumps scanned, {human(total)} "
               f"in {result.seconds:.2f} s")
    out.append(render_table([Column("class"), Column("bytes", "r"), Column("share", "r"),
                             Column("dumps", "r")], rows))
    # the top templates of each payload type, summed over all dumps by template text
    per_type: dict[str, dict[str, list]] = {}
    for d in ok:
        for t in d.attribution.types:
            for tp in t.templates if t.bytes else ():
                slot = per_type.setdefault(t.name, {}).setdefault(tp.template, [0, 0, tp])
                slot[0] += tp.count
                slot[1] += tp.bytes
    for name in names:
        if name not in per_type:
            continue
        tops = sorted(per_type[name].values(), key=lambda x: -x[1])[:top_templates]
        out.append(f"\n{name}: top templates")
        out.append(render_table(
            [Column("count", "r"), Column("bytes", "r"), Column("example at"), Column("template")],
            [[str(count), human(nbytes),
              hex(tp.example_address) if tp.example_address is not None else f"+{tp.example_offset:#x}",
              _short(tp.template)] for count, nbytes, tp in tops]))
    if len(result.dumps) > 1:
        out.append("\nper dump")
        rows = []
        for d in result.dumps:
            if not d.ok:
                rows.append([d.spec.path, d.spec.region, "-", "FAILED: " + (d.error or "")])
                continue
            a = d.attribution
            typed = sorted(((b, n) for n, b in a.class_bytes.items() if n not in _FIXED and b), reverse=True)
            lead = ", ".join(f"{_short(n, 30)} {100 * b / a.size:.0f} %" for b, n in typed[:2]) or "no payload type"
            rows.append([d.spec.path, d.spec.region, human(a.size), lead])
        out.append(render_table([Column("dump"), Column("region"), Column("size", "r"), Column("largest types")], rows))
    verdicts = [(d.spec.region or d.spec.path, d.verdict) for d in result.dumps if d.ok and d.verdict]
    if verdicts:
        out.append("\nglibc heaps: live (something still owns the chunks) or retained (freed, kept by glibc)")
        out += [f"  {where}: {verdict}" for where, verdict in verdicts]
    return "\n".join(out)


def bulk_csv(result: BulkResult) -> str:
    """One row per (dump, class): path, region, base address, class, bytes, share."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["path", "region", "base_address", "class", "bytes", "share", "strings", "error"])
    for d in result.dumps:
        if not d.ok:
            w.writerow([d.spec.path, d.spec.region, d.spec.base_address or "", "", "", "", "", d.error])
            continue
        a = d.attribution
        strings = {t.name: t.strings for t in a.types}
        strings[OTHER_TEXT] = a.other_text.strings
        for name, nbytes in a.class_bytes.items():
            w.writerow([d.spec.path, d.spec.region,
                        hex(d.spec.base_address) if d.spec.base_address is not None else "",
                        name, nbytes, f"{nbytes / a.size:.6f}" if a.size else "0", strings.get(name, ""), ""])
    return buf.getvalue()


def render_templates(templates: Sequence) -> str:
    return render_table(
        [Column("count", "r"), Column("bytes", "r"), Column("dumps", "r"), Column("template")],
        [[str(t.count), human(t.bytes), str(t.dumps), _short(t.template, 100)] for t in templates])


def render_attribution(a: Attribution) -> str:
    rows = [[n, human(b), f"{100 * b / a.size:.1f} %"] for n, b in
            sorted(a.class_bytes.items(), key=lambda kv: -kv[1]) if b]
    return render_table([Column("class"), Column("bytes", "r"), Column("share", "r")], rows)

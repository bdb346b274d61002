"""Self-contained HTML report: one file, inline CSS and SVG, no script, no network.

The page answers the same question as the terminal summary, with pictures:

* a **map of the address space**: every mapping in address order, coloured by
  region class; widths grow with the log of the size and unmapped gaps are
  squeezed to a fixed break, so a 4 KiB guard page stays visible beside a 64 MiB
  arena heap. The filled height of a block is its resident share; dumped regions
  are outlined; hovering shows start-end, perms, size, RSS and class;
* **RSS against NMT** as a waterfall: process RSS, what NMT says is committed, the
  arena and ``[heap]`` RSS NMT cannot see (FACTS.md: the honest "untracked"
  figure), and the rest (or the overlap, when committed memory is not resident);
* per **dumped region**, a bar of its bytes by payload type (``Attribution.class_bytes``),
  the glibc heap verdict when a heap walk ran, and the top templates per type with
  counts and example addresses.

Everything taken from a dump or from /proc (payload text, paths, labels) is
untrusted: it goes through ``_esc`` (``html.escape`` after replacing control
characters), never into markup raw. The renderers take plain pieces — regions,
an ``NmtReport``, ``(region, Attribution, HeapWalk | None)`` triples — so they do
not depend on how the investigation was run.

>>> page = render_html(title="demo", summary_lines=["RSS 1 MiB"], regions=[], nmt=None,
...                    dumped=[], generated_at="2024-01-01 00:00")
>>> page.startswith("<!DOCTYPE html>") and "RSS 1 MiB" in page
True
"""

from __future__ import annotations

import html
import math
import re
from collections import defaultdict
from typing import Any, Mapping, Optional, Sequence

from ..records import RegionClass
from .text import human

__all__ = ["render_html", "render_investigation", "CLASS_COLOURS", "TYPE_PALETTE"]

# Region classes: the malloc family in warm colours (the suspects), JVM spaces in
# cool ones, files and guards in greys.
CLASS_COLOURS: dict[str, str] = {
    "arena": "#d62728",
    "heap": "#ff7f0e",
    "anon": "#e3b505",
    "java-heap": "#1f77b4",
    "code-cache": "#9467bd",
    "metaspace": "#17becf",
    "jvm": "#5b6fb5",
    "stack": "#2ca02c",
    "file": "#8c8c8c",
    "guard": "#d9d9d9",
    "special": "#4d4d4d",
}
_CLASS_TEXT = {
    "arena": "glibc arena heap",
    "heap": "[heap] (main arena)",
    "anon": "other anonymous",
    "java-heap": "Java heap",
    "code-cache": "code cache",
    "metaspace": "metaspace / class space",
    "jvm": "other JVM reservation",
    "stack": "thread stack",
    "file": "file-backed",
    "guard": "guard / reserved (---p)",
    "special": "vdso / vvar / vsyscall",
}
# Payload types get these in order of bytes over the whole report; the three
# fixed classes of an Attribution keep their own greys.
TYPE_PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#76b7b2", "#edc948",
                "#ff9da7", "#9c755f", "#86bcb6", "#d37295", "#a0cbe8", "#8cd17d", "#b6992d")
NOT_READ = "not read"     # dump-file holes: pages never resident (or skipped), not zero bytes
_FIXED_TYPE_COLOURS = {"other text": "#bab0ac", "zero": "#f1f1f1", "binary": "#6b6b6b", NOT_READ: "#ffffff"}
_FIXED_ORDER = ("other text", "binary", "zero", NOT_READ)

_STATE_COLOURS = {"in use": "#d62728", "tcache": "#9ecae1", "fastbin": "#6baed6",
                  "unsorted": "#4292c6", "smallbin": "#2171b5", "largebin": "#08519c",
                  "top": "#e0e0e0"}

# C0/C1 controls and lone surrogates have no business in a page: show them as \xNN.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def _esc(value: Any, limit: Optional[int] = None) -> str:
    """Untrusted text to HTML text (also safe inside quoted attributes)."""
    s = "" if value is None else str(value)
    if limit is not None and len(s) > limit:
        s = s[:limit] + "\u2026"
    s = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", s)
    return html.escape(s, quote=True)


def _pct(part: float, whole: float) -> str:
    return f"{100.0 * part / whole:.1f} %" if whole else "-"


def _addr(a: Optional[int]) -> str:
    return "-" if a is None else f"0x{a:x}"


def _mapping(region: Any) -> Any:
    """A ``Region``'s mapping; a bare ``Mapping`` is accepted too."""
    return getattr(region, "mapping", region)


def _cls(region: Any) -> str:
    c = getattr(region, "cls", None)
    if c is None:
        return "anon"
    return c.value if isinstance(c, RegionClass) else str(c)


def _region_name(region: Any) -> str:
    m = _mapping(region)
    label = getattr(region, "label", "") or ""
    if m.path:
        return m.path
    return label or "[anon]"


def _region_title(region: Any) -> str:
    m = _mapping(region)
    cls = _cls(region)
    aid = getattr(region, "arena_id", None)
    lines = [f"{m.start:#x}-{m.end:#x} {m.perms}",
             f"{cls}" + (f" (arena {aid})" if aid else "") + f" - {_CLASS_TEXT.get(cls, cls)}",
             f"size {human(m.size)}, RSS {human(m.rss) if m.has_smaps else '-'}"]
    name = _region_name(region)
    if name:
        lines.append(name)
    ev = getattr(region, "evidence", "")
    if ev:
        lines.append(f"evidence: {ev}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- address map

_MAP_W = 1180            # drawing width (px) right of the row labels
_MAP_LABEL_W = 150
_MAP_ROW_H = 30
_MAP_ROW_GAP = 10
_MAP_GAP_W = 9           # a squeezed unmapped gap
_MAP_K = 5.0             # px per doubling of the size (log scale)


def _block_width(size: int) -> float:
    # 4 KiB -> 5 px, 64 MiB -> 70 px, 1 GiB -> 90 px: small mappings stay visible.
    return max(3.0, _MAP_K * math.log2(1 + max(size, 1) / 4096.0))


def _svg_address_map(regions: Sequence[Any], dumped_starts: set[int]) -> str:
    regs = sorted(regions, key=lambda r: _mapping(r).start)
    if not regs:
        return '<p class="muted">No mappings were captured.</p>'
    items: list[tuple[str, float, Any]] = []      # ("region"|"gap", width, payload)
    prev_end = None
    for r in regs:
        m = _mapping(r)
        if prev_end is not None and m.start > prev_end:
            items.append(("gap", _MAP_GAP_W, (prev_end, m.start)))
        items.append(("region", _block_width(m.size), r))
        prev_end = m.end
    rows: list[list[tuple[str, float, float, Any]]] = [[]]
    x = 0.0
    for kind, w, obj in items:
        if x + w > _MAP_W and rows[-1]:
            rows.append([])
            x = 0.0
        if kind == "gap" and not rows[-1]:
            continue                    # a break at a row start says nothing
        rows[-1].append((kind, x, w, obj))
        x += w
    height = len(rows) * (_MAP_ROW_H + _MAP_ROW_GAP)
    out = [f'<svg class="addrmap" role="img" aria-label="address space map" '
           f'viewBox="0 0 {_MAP_LABEL_W + _MAP_W + 4} {height}" '
           f'width="{_MAP_LABEL_W + _MAP_W + 4}" height="{height}" xmlns="http://www.w3.org/2000/svg">']
    for i, row in enumerate(rows):
        y = i * (_MAP_ROW_H + _MAP_ROW_GAP) + 2
        first = next((o for k, _, _, o in row if k == "region"), None)
        if first is not None:
            out.append(f'<text class="rowlabel" x="{_MAP_LABEL_W - 8}" y="{y + _MAP_ROW_H / 2 + 4:.1f}" '
                       f'text-anchor="end">{_addr(_mapping(first).start)}</text>')
        for kind, bx, w, obj in row:
            x0 = _MAP_LABEL_W + bx
            if kind == "gap":
                a, b = obj
                xm = x0 + w / 2
                out.append(f'<g class="gap"><title>unmapped {_addr(a)}-{_addr(b)} '
                           f'({_esc(human(b - a))})</title>'
                           f'<rect x="{x0:.1f}" y="{y}" width="{w:.1f}" height="{_MAP_ROW_H}" fill="#fff"/>'
                           f'<path d="M{xm - 3:.1f} {y + _MAP_ROW_H - 4} L{xm:.1f} {y + 4} '
                           f'M{xm:.1f} {y + _MAP_ROW_H - 4} L{xm + 3:.1f} {y + 4}" '
                           f'stroke="#999" stroke-width="1" fill="none"/></g>')
                continue
            m = _mapping(obj)
            cls = _cls(obj)
            colour = CLASS_COLOURS.get(cls, "#999")
            frac = min(1.0, m.rss / m.size) if m.size and m.has_smaps else 0.0
            fill_h = _MAP_ROW_H * frac
            dumped = m.start in dumped_starts
            out.append(f'<g class="rg c-{_esc(cls)}"><title>{_esc(_region_title(obj))}'
                       f'{chr(10) + "dumped and analysed" if dumped else ""}</title>')
            out.append(f'<rect x="{x0 + 0.5:.1f}" y="{y}" width="{max(w - 1, 1.5):.1f}" height="{_MAP_ROW_H}" '
                       f'fill="{colour}" fill-opacity="0.22"/>')
            if fill_h > 0:
                out.append(f'<rect x="{x0 + 0.5:.1f}" y="{y + _MAP_ROW_H - fill_h:.1f}" '
                           f'width="{max(w - 1, 1.5):.1f}" height="{fill_h:.1f}" fill="{colour}"/>')
            if dumped:
                out.append(f'<rect x="{x0 + 1:.1f}" y="{y + 0.5}" width="{max(w - 2, 1):.1f}" '
                           f'height="{_MAP_ROW_H - 1}" fill="none" stroke="#111" stroke-width="1.6"/>')
            out.append("</g>")
    out.append("</svg>")
    return "".join(out)


def _rss_by_class(regions: Sequence[Any]) -> str:
    """One stacked bar: the process's RSS split by region class."""
    acc: dict[str, int] = defaultdict(int)
    for r in regions:
        acc[_cls(r)] += _mapping(r).rss
    total = sum(acc.values())
    if not total:
        return ""
    order = sorted(((c, n) for c, n in acc.items() if n > 0), key=lambda kv: -kv[1])
    out = ['<svg class="bar" role="img" aria-label="RSS by region class" width="1100" height="26" '
           'viewBox="0 0 1100 26" xmlns="http://www.w3.org/2000/svg">']
    x = 0.0
    for cls, n in order:
        w = 1100 * n / total
        out.append(f'<g><title>{_esc(cls)}: {_esc(human(n))} ({_pct(n, total)})</title>'
                   f'<rect x="{x:.2f}" y="0" width="{w:.2f}" height="26" fill="{CLASS_COLOURS.get(cls, "#999")}" '
                   'stroke="#fff" stroke-width="0.8"/>')
        label = f"{cls} {human(n)}"
        if w > 7 * len(label) + 8:
            out.append(f'<text x="{x + 5:.1f}" y="17" class="barlabel" '
                       f'fill="{"#222" if cls in ("guard", "anon") else "#fff"}">{_esc(label)}</text>')
        out.append("</g>")
        x += w
    out.append("</svg>")
    return (f'<div class="small muted spaced">RSS {_esc(human(total))} by region class</div>' + "".join(out))


def _class_legend(regions: Sequence[Any]) -> str:
    acc: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for r in regions:
        m = _mapping(r)
        a = acc[_cls(r)]
        a[0] += 1
        a[1] += m.size
        a[2] += m.rss
    total_rss = sum(a[2] for a in acc.values())
    rows = []
    for cls, (n, size, rss) in sorted(acc.items(), key=lambda kv: (-kv[1][2], -kv[1][1], kv[0])):
        rows.append(f'<tr><td>{_swatch(CLASS_COLOURS.get(cls, "#999"))}<b>{_esc(cls)}</b></td>'
                    f'<td class="muted">{_esc(_CLASS_TEXT.get(cls, ""))}</td><td class="num">{n}</td>'
                    f'<td class="num">{_esc(human(size))}</td><td class="num">{_esc(human(rss))}</td>'
                    f'<td class="num">{_pct(rss, total_rss)}</td></tr>')
    return ('<table class="legend"><thead><tr><th>class</th><th>what</th><th class="num">mappings</th>'
            '<th class="num">virtual</th><th class="num">RSS</th><th class="num">of RSS</th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def _swatch(colour: str, outline: bool = False) -> str:
    border = "#999" if outline else colour
    return f'<span class="sw" style="background:{colour};border-color:{border}"></span>'


# --------------------------------------------------------------------------- NMT waterfall

def _waterfall(regions: Sequence[Any], nmt: Any, process_rss: Optional[int]) -> str:
    """RSS -> NMT committed -> arena/[heap] RSS NMT cannot see -> the rest."""
    arena_rss = sum(_mapping(r).rss for r in regions if _cls(r) == "arena")
    heap_rss = sum(_mapping(r).rss for r in regions if _cls(r) == "heap")
    rss = process_rss if process_rss is not None else sum(_mapping(r).rss for r in regions)
    if nmt is None or not getattr(nmt, "enabled", False):
        why = ("NMT was not enabled in this JVM (start it with -XX:NativeMemoryTracking=summary)"
               if nmt is not None else "No NMT report: not a JVM, or NMT was not captured")
        return (f'<p class="muted">{_esc(why)}. glibc arenas hold {_esc(human(arena_rss))} and '
                f'[heap] {_esc(human(heap_rss))} of {_esc(human(rss))} RSS.</p>')
    committed = nmt.total_committed
    malloc = nmt.malloc_total
    untracked = arena_rss + heap_rss - malloc
    rest = rss - committed - untracked
    steps = [
        ("Process RSS", 0, rss, "#444", "everything resident"),
        ("NMT committed", 0, committed, "#1f77b4",
         f"all the JVM knows it committed (malloc {human(malloc)} included)"),
        ("arenas + [heap] NMT cannot see", committed, committed + untracked, "#d62728",
         f"arena RSS {human(arena_rss)} + [heap] RSS {human(heap_rss)} - NMT malloc {human(malloc)}: "
         "zlib, native libraries, glibc overhead, freed chunks kept resident"),
    ]
    if rest >= 0:
        steps.append(("other (files, stacks, anon)", committed + untracked, rss, "#8c8c8c",
                      "the rest of RSS: file mappings, stacks, other anonymous memory"))
    else:
        steps.append(("overlap: committed not resident", rss, committed + untracked, "#bbbbbb",
                      "NMT committed counts pages never touched (Java heap): the steps above "
                      "over-count RSS by this much"))
    hi = max(max(a, b) for _, a, b, _, _ in steps) or 1
    bar_w, label_w, row_h = 760, 250, 34
    height = len(steps) * row_h + 26
    scale = bar_w / hi
    out = [f'<svg class="waterfall" role="img" aria-label="RSS versus NMT" width="{label_w + bar_w + 150}" '
           f'height="{height}" viewBox="0 0 {label_w + bar_w + 150} {height}" xmlns="http://www.w3.org/2000/svg">']
    for i, (name, a, b, colour, note) in enumerate(steps):
        y = i * row_h + 6
        lo, up = min(a, b), max(a, b)
        x = label_w + lo * scale
        w = max((up - lo) * scale, 1.0)
        hatch = ' fill-opacity="0.55" stroke="#777" stroke-dasharray="4 3"' if name.startswith("overlap") else ""
        out.append(f'<g><title>{_esc(name)}: {_esc(human(up - lo))}\n{_esc(note)}</title>'
                   f'<text x="{label_w - 10}" y="{y + 17}" text-anchor="end" class="wlabel">{_esc(name)}</text>'
                   f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row_h - 12}" fill="{colour}"{hatch}/>'
                   f'<text x="{x + w + 6:.1f}" y="{y + 17}" class="wvalue">{_esc(human(up - lo))}</text></g>')
        if 0 < i < len(steps) - 1:      # the connectors that make it a waterfall
            cx = label_w + b * scale
            out.append(f'<line x1="{cx:.1f}" y1="{y + row_h - 12}" x2="{cx:.1f}" y2="{y + row_h + 6}" '
                       'stroke="#999" stroke-dasharray="2 2"/>')
    axis_y = len(steps) * row_h + 8
    out.append(f'<line x1="{label_w}" y1="{axis_y}" x2="{label_w + bar_w}" y2="{axis_y}" stroke="#bbb"/>')
    for frac in (0, 0.25, 0.5, 0.75, 1.0):
        tx = label_w + bar_w * frac
        out.append(f'<text x="{tx:.1f}" y="{axis_y + 14}" text-anchor="middle" class="axis">'
                   f'{_esc(human(int(hi * frac)))}</text>')
    out.append("</svg>")
    notes = [f"NMT {_esc(nmt.kind)} ({_esc(nmt.format)}): committed {_esc(human(committed))}, "
             f"malloc {_esc(human(malloc))} in {nmt.malloc_count:,} allocations"]
    if nmt.malloc_peak is not None and nmt.malloc_peak > 2 * max(malloc, 1):
        notes.append(f"NMT malloc peak {_esc(human(nmt.malloc_peak))} is far above the current "
                     "figure: memory freed by the JVM may still be resident in glibc arenas")
    notes.append("RSS &minus; NMT committed alone misleads: committed Java heap need not be resident.")
    return "".join(out) + '<ul class="notes">' + "".join(f"<li>{n}</li>" for n in notes) + "</ul>"


# --------------------------------------------------------------------------- composition bars

def _type_colours(dumped: Sequence[tuple[Any, Any, Any]]) -> dict[str, str]:
    totals: dict[str, int] = defaultdict(int)
    for _, attr, _ in dumped:
        for name, n in attr.class_bytes.items():
            totals[name] += n
    names = sorted((n for n in totals if n not in _FIXED_TYPE_COLOURS), key=lambda n: (-totals[n], n))
    colours = {n: TYPE_PALETTE[i % len(TYPE_PALETTE)] for i, n in enumerate(names)}
    colours.update(_FIXED_TYPE_COLOURS)
    return colours


def _ordered_classes(class_bytes: dict[str, int]) -> list[tuple[str, int]]:
    types = sorted(((n, b) for n, b in class_bytes.items() if n not in _FIXED_TYPE_COLOURS),
                   key=lambda kv: (-kv[1], kv[0]))
    fixed = [(n, class_bytes[n]) for n in _FIXED_ORDER if n in class_bytes]
    return types + fixed


def _composition_bar(class_bytes: dict[str, int], size: int, colours: dict[str, str],
                     width: int = 1100, height: int = 30) -> str:
    total = size or sum(class_bytes.values())
    if not total:
        return '<p class="muted">empty</p>'
    out = [f'<svg class="bar" role="img" aria-label="composition by payload type" width="{width}" '
           f'height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">']
    x = 0.0
    for name, n in _ordered_classes(class_bytes):
        if n <= 0:
            continue
        w = width * n / total
        colour = colours.get(name, "#999")
        edge = 'stroke="#aaa" stroke-dasharray="3 2"' if name == NOT_READ else 'stroke="#fff"'
        out.append(f'<g><title>{_esc(name)}: {_esc(human(n))} ({_pct(n, total)})</title>'
                   f'<rect x="{x:.2f}" y="0.5" width="{w:.2f}" height="{height - 1}" fill="{colour}" '
                   f'{edge} stroke-width="0.8"/>')
        label = f"{name} {100 * n / total:.0f}%"
        if w > 7.2 * len(label) + 8:
            ink = "#222" if name in ("zero", "other text", NOT_READ) or colour in ("#edc948", "#8cd17d", "#a0cbe8",
                                                                         "#86bcb6", "#76b7b2", "#ff9da7") \
                else "#fff"
            out.append(f'<text x="{x + 5:.1f}" y="{height / 2 + 4:.1f}" class="barlabel" fill="{ink}">'
                       f'{_esc(label)}</text>')
        out.append("</g>")
        x += w
    out.append("</svg>")
    return "".join(out)


def _type_legend(class_bytes: dict[str, int], size: int, colours: dict[str, str]) -> str:
    parts, small = [], []
    for name, n in _ordered_classes(class_bytes):
        if n <= 0:
            continue
        if name not in _FIXED_TYPE_COLOURS and size and n < 0.001 * size:
            small.append(f"{name} {human(n)}")      # crumbs: named in the tooltip and the table
            continue
        parts.append(f'<span class="li">{_swatch(colours.get(name, "#999"), name in ("zero", NOT_READ))}'
                     f'<span class="tname">{_esc(name)}</span> {_esc(human(n))} '
                     f'<span class="muted">({_pct(n, size)})</span></span>')
    if small:
        parts.append(f'<span class="li muted" title="{_esc(", ".join(small))}">+ {len(small)} more '
                     f'type{"s" if len(small) != 1 else ""} under 0.1 %</span>')
    return f'<div class="legendrow">{"".join(parts)}</div>'


def _state_bar(walk: Any, width: int = 700, height: int = 18) -> str:
    by_state = dict(getattr(walk, "bytes_by_state", {}) or {})
    if "top" in by_state and getattr(walk, "top_touched", None) is not None:
        by_state["top"] = walk.top_touched      # the untouched rest of top is not memory held
    total = sum(v for v in by_state.values() if v > 0)
    if not total:
        return ""
    out = [f'<svg class="bar" role="img" aria-label="heap chunk states" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">']
    x = 0.0
    for name, n in by_state.items():
        if n <= 0:
            continue
        w = width * n / total
        out.append(f'<rect x="{x:.2f}" y="0" width="{w:.2f}" height="{height}" '
                   f'fill="{_STATE_COLOURS.get(name, "#999")}" stroke="#fff" stroke-width="0.5">'
                   f'<title>{_esc(name)}: {_esc(human(n))} ({_pct(n, total)})</title></rect>')
        x += w
    out.append("</svg>")
    legend = "".join(f'<span class="li">{_swatch(_STATE_COLOURS.get(k, "#999"), k == "top")}{_esc(k)} '
                     f'{_esc(human(v))}</span>' for k, v in by_state.items() if v > 0)
    return "".join(out) + f'<div class="legendrow small">{legend}</div>'


def _heap_block(walk: Any) -> str:
    if walk is None:
        return ""
    verdict = str(getattr(walk, "verdict", ""))
    kind = "retained" if verdict.startswith("retained") else "live" if verdict.startswith("live") else "other"
    lines = [f'<div class="verdict v-{kind}"><b>glibc heap walk:</b> {_esc(verdict)}</div>']
    lines.append(_state_bar(walk))
    extra = []
    if getattr(walk, "in_use_bytes", None) is not None:
        extra.append(f"in use {human(walk.in_use_bytes)}")
    if getattr(walk, "free_bytes", None) is not None:
        extra.append(f"free in bins {human(walk.free_bytes)}")
    if getattr(walk, "top_size", None):
        extra.append(f"top {human(walk.top_size)} ({human(getattr(walk, 'top_touched', 0))} touched)")
    corruption = getattr(walk, "corruption", None)
    if corruption is not None:
        extra.append(f"walk stopped: {corruption}")
    if extra:
        lines.append(f'<div class="muted small">{_esc(" · ".join(extra))}</div>')
    return "".join(lines)


# --------------------------------------------------------------------------- type tables

def _examples(tr: Any, limit: int = 3) -> str:
    addrs = tr.example_addresses if tr.example_addresses is not None else None
    if addrs:
        return " ".join(f"<code>{_addr(a)}</code>" for a in addrs[:limit])
    if tr.example_offsets:
        return " ".join(f"<code>+0x{o:x}</code>" for o in tr.example_offsets[:limit])
    return ""


def _type_table(attr: Any, colours: dict[str, str], size: int,
                chunks: Mapping[str, Mapping[str, int]]) -> str:
    rows = []
    reports = [t for t in attr.types if t.bytes > 0] + ([attr.other_text] if attr.other_text.bytes else [])
    for t in reports:
        chunk_cells = ""
        if chunks:
            c = chunks.get(t.name, {})
            chunk_cells = (f'<td class="num">{_esc(human(c.get("live", 0)))}</td>'
                           f'<td class="num">{_esc(human(c.get("free", 0)))}</td>')
        rows.append(f'<tr><td>{_swatch(colours.get(t.name, "#999"))}<span class="tname">{_esc(t.name)}</span></td>'
                    f'<td class="num">{_esc(human(t.bytes))}</td><td class="num">{_pct(t.bytes, size)}</td>'
                    f'<td class="num">{t.strings:,}</td>'
                    f'<td class="num">{getattr(t, "matches", 0):,}</td>{chunk_cells}<td>{_examples(t)}</td></tr>')
    if not rows:
        return '<p class="muted">No text strings found.</p>'
    chunk_head = ('<th class="num" title="whole in-use malloc chunks holding it">in live chunks</th>'
                  '<th class="num" title="whole free chunks (tcache, fastbin, bins)">in free chunks</th>'
                  if chunks else "")
    return ('<table class="types"><thead><tr><th>payload type</th><th class="num">bytes</th>'
            '<th class="num">share</th><th class="num">strings</th><th class="num">matches</th>'
            f'{chunk_head}<th>example addresses</th></tr></thead><tbody>{"".join(rows)}</tbody></table>')


def _templates(attr: Any, colours: dict[str, str], open_first: int = 2, per_type: int = 8) -> str:
    reports = [t for t in attr.types if t.bytes > 0 and t.templates]
    if attr.other_text.bytes and attr.other_text.templates:
        reports.append(attr.other_text)
    out = []
    for i, t in enumerate(reports):
        rows = []
        for tp in t.templates[:per_type]:
            where = _addr(tp.example_address) if tp.example_address is not None else f"+0x{tp.example_offset:x}"
            rows.append(f'<tr><td class="num">{tp.count:,}</td><td class="num">{_esc(human(tp.bytes))}</td>'
                        f'<td><code class="payload">{_esc(tp.template, 240)}</code>'
                        f'<div class="example">e.g. <code>{where}</code> '
                        f'<code class="payload">{_esc(tp.example, 160)}</code></div></td></tr>')
        opened = " open" if i < open_first else ""
        out.append(f'<details{opened}><summary>{_swatch(colours.get(t.name, "#999"))}'
                   f'<span class="tname">{_esc(t.name)}</span> &mdash; top {len(rows)} templates, '
                   f'{t.strings:,} strings, {_esc(human(t.bytes))}</summary>'
                   '<table class="tpl"><thead><tr><th class="num">count</th><th class="num">bytes</th>'
                   f'<th>template (variable parts masked as #) and an example</th></tr></thead>'
                   f'<tbody>{"".join(rows)}</tbody></table></details>')
    return "".join(out)


def _composition(attr: Any, hole: int) -> dict[str, int]:
    """``class_bytes`` with the dump's holes taken out of "zero" and shown as "not read"."""
    comp = dict(attr.class_bytes)
    if hole > 0:
        comp["zero"] = max(0, comp.get("zero", 0) - hole)
        comp[NOT_READ] = hole
    return comp


def _dumped_section(dumped: Sequence[tuple[Any, Any, Any]], colours: dict[str, str],
                    holes: Mapping[int, int], verdicts: Mapping[int, str],
                    chunk_types: Mapping[int, Mapping[str, Mapping[str, int]]]) -> str:
    if not dumped:
        return '<p class="muted">No region was dumped.</p>'
    total_size = sum(a.size for _, a, _ in dumped)
    agg: dict[str, int] = defaultdict(int)
    for r, a, _ in dumped:
        for k, v in _composition(a, holes.get(_mapping(r).start, 0)).items():
            agg[k] += v
    unread = agg.get(NOT_READ, 0)
    read = f" ({_esc(human(total_size - unread))} resident read)" if unread else ""
    out = [f'<div class="card"><h3>All {len(dumped)} dumped region{"s" if len(dumped) != 1 else ""} '
           f'&mdash; {_esc(human(total_size))}{read}</h3>',
           _composition_bar(agg, total_size, colours), _type_legend(agg, total_size, colours), "</div>"]
    for region, attr, walk in dumped:
        m = _mapping(region)
        cls = _cls(region)
        aid = getattr(region, "arena_id", None)
        hole = holes.get(m.start, 0)
        comp = _composition(attr, hole)
        name = f"arena {aid}" if cls == "arena" and aid else _region_name(region)
        read = f" ({_esc(human(attr.size - hole))} resident read)" if hole else ""
        out.append(f'<div class="card region"><h3>{_swatch(CLASS_COLOURS.get(cls, "#999"))}'
                   f'{_esc(name)} <span class="muted">{_esc(cls)}</span> '
                   f'<code>{_addr(m.start)}-{_addr(m.end)}</code> <code>{_esc(m.perms)}</code></h3>'
                   f'<div class="muted small">size {_esc(human(m.size))} · RSS '
                   f'{_esc(human(m.rss) if m.has_smaps else "-")} · dumped {_esc(human(attr.size))}{read} · '
                   f'{attr.strings:,} strings of &ge; {attr.min_len} bytes</div>')
        if verdicts.get(m.start):
            out.append(f'<div class="rverdict"><b>verdict:</b> {_esc(verdicts[m.start])}</div>')
        out.append(_composition_bar(comp, attr.size, colours))
        out.append(_type_legend(comp, attr.size, colours))
        out.append(_heap_block(walk))
        out.append(_type_table(attr, colours, attr.size, chunk_types.get(m.start, {})))
        out.append(_templates(attr, colours))
        out.append("</div>")
    return "".join(out)


# --------------------------------------------------------------------------- page

_CSS = """
:root{--fg:#1d1d1f;--muted:#6b6b70;--line:#e3e3e8;--bg:#fafafa;--card:#fff}
*{box-sizing:border-box}
body{margin:0;padding:24px 32px;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,
"DejaVu Sans",sans-serif;color:var(--fg);background:var(--bg)}
h1{font-size:22px;margin:0 0 4px}
h2{font-size:17px;margin:28px 0 10px;padding-bottom:4px;border-bottom:1px solid var(--line)}
h3{font-size:15px;margin:0 0 6px}
.muted{color:var(--muted)}
.small{font-size:12px}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:14px 16px;
margin:12px 0;overflow-x:auto}
.summary{font:13px/1.55 ui-monospace,"DejaVu Sans Mono",monospace;white-space:pre-wrap;margin:0}
code{font:12px ui-monospace,"DejaVu Sans Mono",monospace;background:#f3f3f6;padding:0 3px;border-radius:3px}
code.payload{word-break:break-all;white-space:pre-wrap}
table{border-collapse:collapse;margin:8px 0;font-size:13px}
th,td{padding:3px 10px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{font-weight:600;color:var(--muted)}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.sw{display:inline-block;width:12px;height:12px;border:1px solid;border-radius:2px;margin-right:6px;
vertical-align:-1px}
.legendrow{display:flex;flex-wrap:wrap;gap:4px 18px;margin:6px 0 8px}
.li{white-space:nowrap}
.tname{font-weight:600}
svg text{font-family:system-ui,"DejaVu Sans",sans-serif}
.rowlabel{font:11px ui-monospace,"DejaVu Sans Mono",monospace;fill:#555}
.wlabel{font-size:13px;fill:#333}.wvalue{font-size:12px;fill:#333;font-weight:600}
.axis{font-size:11px;fill:#777}
.barlabel{font-size:12px;font-weight:600}
svg.bar,svg.addrmap,svg.waterfall{display:block;margin:6px 0;max-width:100%;height:auto}
svg.addrmap .rg:hover rect{stroke:#000;stroke-width:1}
ul.notes{margin:6px 0 0;padding-left:18px;color:var(--muted);font-size:12.5px}
.verdict{margin:10px 0 4px;padding:6px 10px;border-radius:6px;background:#f3f3f6}
.v-retained{background:#fff3e0;border-left:4px solid #ff7f0e}
.v-live{background:#fde8e8;border-left:4px solid #d62728}
details{margin:6px 0}summary{cursor:pointer;padding:3px 0}
.example{color:var(--muted);font-size:12px;margin-top:2px}
.subtitle{margin:2px 0 4px}.subtitle code{font-size:12px;word-break:break-all}
.rverdict{margin:6px 0;font-size:13px}
.spaced{margin-top:14px}
footer{margin-top:30px;color:var(--muted);font-size:12px}
"""


def render_html(*, title: str, summary_lines: Sequence[str], regions: Sequence[Any], nmt: Any,
                dumped: Sequence[tuple[Any, Any, Any]], generated_at: str,
                process_rss: Optional[int] = None, subtitle: str = "",
                holes: Optional[Mapping[int, int]] = None,
                region_verdicts: Optional[Mapping[int, str]] = None,
                chunk_types: Optional[Mapping[int, Mapping[str, Mapping[str, int]]]] = None,
                notes: Sequence[str] = ()) -> str:
    """The whole report page as a string (write it with ``encoding="utf-8"``).

    ``regions``: ``regions.classify`` results; ``nmt``: an ``NmtReport`` or None;
    ``dumped``: ``(Region, attribute.Attribution, heap.HeapWalk | None)`` per dumped
    region; ``process_rss``: the process's RSS (default: the regions' sum). Optional,
    keyed by region start: ``holes`` (bytes of the dump never read: shown apart from
    real zero bytes), ``region_verdicts`` (one line per region), ``chunk_types``
    (``{type: {"live": bytes, "free": bytes}}`` of whole malloc chunks from a heap walk).

    >>> "<script>" in render_html(title="<script>", summary_lines=[], regions=[], nmt=None,
    ...                           dumped=[], generated_at="now")
    False
    """
    dumped = list(dumped)
    colours = _type_colours(dumped)
    dumped_starts = {_mapping(r).start for r, _, _ in dumped}
    summary = "\n".join(str(s) for s in summary_lines)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        # No network, ever: the page is opened from disk, maybe on a machine holding a production dump.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        "style-src 'unsafe-inline'; img-src data:\">",
        f"<title>{_esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<header><h1>{_esc(title)}</h1>"
        + (f'<div class="subtitle"><code>{_esc(subtitle, 400)}</code></div>' if subtitle else "")
        + f'<div class="muted small">offheap report · generated {_esc(generated_at)}</div></header>',
    ]
    if summary or notes:
        note_html = ('<ul class="notes">' + "".join(f"<li>{_esc(n)}</li>" for n in notes) + "</ul>"
                     if notes else "")
        parts.append(f'<h2>Diagnosis</h2><div class="card"><pre class="summary">{_esc(summary)}</pre>'
                     f"{note_html}</div>")
    parts.append("<h2>RSS against NMT</h2>")
    parts.append(f'<div class="card">{_waterfall(regions, nmt, process_rss)}{_rss_by_class(regions)}</div>')
    parts.append("<h2>Address space</h2>")
    parts.append('<div class="card"><p class="muted small">Each block is a mapping in address order, '
                 "coloured by class; width grows with the log of its size, unmapped gaps are squeezed "
                 "to a break (&#x2215;&#x2215;). The filled height is the resident share (RSS / size); "
                 "outlined blocks were dumped. Hover for details.</p>"
                 f"{_svg_address_map(regions, dumped_starts)}{_class_legend(regions)}</div>")
    parts.append("<h2>What fills the dumped regions</h2>")
    parts.append(_dumped_section(dumped, colours, holes or {}, region_verdicts or {}, chunk_types or {}))
    parts.append('<footer>Bytes are attributed to one class each: a payload type (a signature matched '
                 "inside the string; the highest priority wins), other text, zero bytes or binary. "
                 "The classes add up to the dump's size.</footer></body></html>")
    return "\n".join(parts)


# --------------------------------------------------------------------------- adapter

def render_investigation(inv: Any) -> str:
    """Render an ``offheap.investigate.Investigation`` with ``render_html``.

    Reads ``target`` (pid, name, cmdline, rss), ``regions``, ``nmt``, ``dumps`` (each
    ``region``, ``attribution``, ``heap``, ``holes``, ``verdict``, ``heap_types``),
    ``summary_lines``, ``notes`` and ``generated_at``.
    """
    t = inv.target
    who = f"PID {t.pid}" if t.pid is not None else "saved capture"
    title = f"offheap: {who}" + (f" ({t.name})" if t.name else "")
    dumps = list(inv.dumps)
    return render_html(
        title=title,
        subtitle=" ".join(t.cmdline) if t.cmdline else "",
        summary_lines=list(inv.summary_lines),
        regions=list(inv.regions),
        nmt=inv.nmt,
        dumped=[(d.region, d.attribution, d.heap) for d in dumps],
        generated_at=str(inv.generated_at),
        process_rss=t.rss,
        holes={d.region.start: d.holes for d in dumps},
        region_verdicts={d.region.start: d.verdict for d in dumps if d.verdict},
        chunk_types={d.region.start: d.heap_types for d in dumps if d.heap_types},
        notes=list(inv.notes),
    )

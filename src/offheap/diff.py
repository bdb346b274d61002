"""What grew between two investigations of the same process.

``diff(A, B)`` reads the ``report.json`` of two ``offheap investigate`` directories
taken at two times and returns the growth per region class (RSS), per payload type
(bytes found in the dumps, and the live / free malloc-chunk bytes the heap walks
gave them), in bytes and bytes per hour, plus the regions that appeared, vanished
or grew. It works on the reports alone, so it runs anywhere the directories are.

>>> d = diff("inv-0900", "inv-1300")                    # doctest: +SKIP
>>> print(render_diff(d))                               # doctest: +SKIP
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Optional, Union

from .investigate import load_report
from .report.text import Column, human, render_table

__all__ = ["diff", "render_diff", "Diff", "Growth", "RegionChange"]


@dataclass(frozen=True)
class Growth:
    """One figure at A and B; ``per_hour`` is None when the captures' times are equal or unknown."""

    name: str
    a: int
    b: int
    per_hour: Optional[float]

    @property
    def delta(self) -> int:
        return self.b - self.a


@dataclass(frozen=True)
class RegionChange:
    """A mapping that appeared (``new``), disappeared (``vanished``) or changed RSS (``changed``)."""

    status: str
    start: int
    end: int
    cls: str
    path: str
    rss_a: int
    rss_b: int
    arena_id: Optional[int] = None

    @property
    def delta(self) -> int:
        return self.rss_b - self.rss_a


@dataclass
class Diff:
    """Result of ``diff``; lists are sorted by growth, largest first."""

    a_dir: str
    b_dir: str
    a_time: str
    b_time: str
    hours: Optional[float]
    pid_a: Optional[int]
    pid_b: Optional[int]
    same_process: bool
    rss: Growth
    dumped: Growth
    classes: list[Growth]
    types: list[Growth]
    types_live: list[Growth]
    new: list[RegionChange]
    vanished: list[RegionChange]
    changed: list[RegionChange]
    notes: list[str] = field(default_factory=list)

    def type(self, name: str) -> Growth:
        for g in self.types:
            if g.name == name:
                return g
        raise KeyError(name)

    def cls(self, name: str) -> Growth:
        for g in self.classes:
            if g.name == name:
                return g
        raise KeyError(name)


def _time(text: str) -> Optional[datetime]:
    try:
        return datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None


def _addr(v: Any) -> int:
    return v if isinstance(v, int) else int(str(v), 0)


def _growths(a: dict[str, int], b: dict[str, int], hours: Optional[float]) -> list[Growth]:
    out = []
    for name in set(a) | set(b):
        va, vb = int(a.get(name, 0)), int(b.get(name, 0))
        out.append(Growth(name, va, vb, (vb - va) / hours if hours else None))
    out.sort(key=lambda g: (-g.delta, -g.b, g.name))
    return out


def diff(a: Union[str, os.PathLike, dict], b: Union[str, os.PathLike, dict]) -> Diff:
    """Compare investigation ``a`` (earlier) with ``b`` (later): directories, report.json
    paths, or report dicts already loaded. Raises ``InputError`` for what is not a report."""
    ra = a if isinstance(a, dict) else load_report(a)
    rb = b if isinstance(b, dict) else load_report(b)
    notes: list[str] = []
    ta, tb = ra["target"], rb["target"]
    same = ta.get("pid") == tb.get("pid") and (
        ta.get("start_time_ticks") is None or tb.get("start_time_ticks") is None
        or ta.get("start_time_ticks") == tb.get("start_time_ticks"))
    if not same:
        notes.append(f"not the same process: PID {ta.get('pid')} ({ta.get('name')}) vs "
                     f"PID {tb.get('pid')} ({tb.get('name')}); growth compares two processes")
    t_a, t_b = _time(ta.get("captured_at", "")), _time(tb.get("captured_at", ""))
    hours = None
    if t_a is not None and t_b is not None:
        hours = (t_b - t_a).total_seconds() / 3600.0
        if hours < 0:
            notes.append("B was captured before A: growth is negative time; swap the arguments?")
        if hours == 0:
            hours = None
    budget_a, budget_b = ra["totals"].get("budget"), rb["totals"].get("budget")
    if budget_a != budget_b:
        notes.append(f"dump budgets differ ({budget_a} vs {budget_b}): payload bytes compare what each dumped")

    rss = Growth("RSS", int(ta.get("rss", 0)), int(tb.get("rss", 0)), None)
    rss = Growth("RSS", rss.a, rss.b, rss.delta / hours if hours else None)
    da, db = int(ra["totals"].get("dumped_bytes", 0)), int(rb["totals"].get("dumped_bytes", 0))
    dumped = Growth("dumped", da, db, (db - da) / hours if hours else None)
    classes = _growths({c["class"]: c["rss"] for c in ra["totals"].get("classes", [])},
                       {c["class"]: c["rss"] for c in rb["totals"].get("classes", [])}, hours)
    types = [g for g in _growths({t["name"]: t["bytes"] for t in ra.get("types", [])},
                                 {t["name"]: t["bytes"] for t in rb.get("types", [])}, hours) if g.a or g.b]
    live = [g for g in _growths({t["name"]: t.get("live_bytes", 0) for t in ra.get("types", [])},
                                {t["name"]: t.get("live_bytes", 0) for t in rb.get("types", [])}, hours)
            if g.a or g.b]

    def regions(r: dict) -> dict[int, dict]:
        # Only mappings that hold or can hold data: ---p spacers move as arena heaps grow.
        return {_addr(x["start"]): x for x in r.get("regions", [])
                if x.get("rss", 0) > 0 or str(x.get("perms", "")).startswith("r")}

    ga, gb = regions(ra), regions(rb)

    def change(status: str, x: dict, y: Optional[dict]) -> RegionChange:
        ref = y if y is not None else x
        return RegionChange(status, _addr(ref["start"]), _addr(ref["end"]), ref.get("class", ""),
                            ref.get("path", ""), int(x.get("rss", 0)) if status != "new" else 0,
                            int((y or x).get("rss", 0)) if status != "vanished" else 0, ref.get("arena_id"))

    new = sorted((change("new", gb[s], None) for s in gb.keys() - ga.keys()), key=lambda c: (-c.rss_b, c.start))
    vanished = sorted((change("vanished", ga[s], None) for s in ga.keys() - gb.keys()),
                      key=lambda c: (-c.rss_a, c.start))
    changed = sorted((change("changed", ga[s], gb[s]) for s in ga.keys() & gb.keys()
                      if ga[s].get("rss", 0) != gb[s].get("rss", 0) or ga[s]["end"] != gb[s]["end"]),
                     key=lambda c: (-c.delta, c.start))
    return Diff(a_dir=str(a if not isinstance(a, dict) else "A"), b_dir=str(b if not isinstance(b, dict) else "B"),
                a_time=ta.get("captured_at", ""), b_time=tb.get("captured_at", ""), hours=hours,
                pid_a=ta.get("pid"), pid_b=tb.get("pid"), same_process=same, rss=rss, dumped=dumped,
                classes=classes, types=types, types_live=live, new=new, vanished=vanished,
                changed=changed, notes=notes)


def _signed(n: int) -> str:
    return ("+" if n > 0 else "") + human(n)


def _rate(g: Growth) -> str:
    return "-" if g.per_hour is None else _signed(int(round(g.per_hour))) + "/h"


def _span(hours: Optional[float]) -> str:
    if hours is None:
        return "time apart unknown"
    s = abs(hours) * 3600
    text = f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min" if s < 7200 else f"{s / 3600:.1f} h"
    return ("-" if hours < 0 else "") + text + " apart"


def render_diff(d: Diff, top: int = 10) -> str:
    """The diff as text: headline, growth tables, region changes."""
    lines = [f"A: {d.a_dir} (PID {d.pid_a}, {d.a_time})",
             f"B: {d.b_dir} (PID {d.pid_b}, {d.b_time}); {_span(d.hours)}"]
    lines += [f"note: {n}" for n in d.notes]
    lines.append(f"RSS {human(d.rss.a)} -> {human(d.rss.b)}: {_signed(d.rss.delta)} ({_rate(d.rss)})")
    grew = [g for g in d.types if g.delta > 0]
    if grew:
        g = grew[0]
        lines.append(f"grew most: payload `{g.name}` {_signed(g.delta)} ({_rate(g)}) in the dumps")

    def table(title: str, rows: list[Growth]) -> None:
        # Rows a thousand times smaller than the largest are noise beside it (they stay in ``d``).
        big = max((max(g.a, g.b) for g in rows), default=0)
        rows = [g for g in rows if max(g.a, g.b) * 1000 >= big or abs(g.delta) * 1000 >= big][:top]
        if not rows:
            return
        lines.append("")
        lines.append(render_table((Column(title), Column("A", "r"), Column("B", "r"), Column("growth", "r"),
                                   Column("per hour", "r")),
                                  [[g.name[:60], human(g.a), human(g.b), _signed(g.delta), _rate(g)] for g in rows]))

    table("region class (RSS)", d.classes)
    table("payload type (bytes in dumps)", d.types)
    table("payload type (live chunk bytes)", d.types_live)

    def regions(title: str, rows: list[RegionChange]) -> None:
        if not rows:
            return
        lines.append("")
        lines.append(f"{title}: {len(rows)}" + (f" (largest {top})" if len(rows) > top else ""))
        lines.append(render_table(
            (Column("Address"), Column("class"), Column("RSS A", "r"), Column("RSS B", "r"), Column("growth", "r"),
             Column("mapping")),
            [[f"{c.start:#x}-{c.end:#x}", c.cls + (f" {c.arena_id}" if c.arena_id else ""), human(c.rss_a),
              human(c.rss_b), _signed(c.delta), c.path] for c in rows[:top]]))

    regions("new regions", d.new)
    regions("vanished regions", d.vanished)
    regions("regions that changed", [c for c in d.changed if c.delta])
    return "\n".join(lines)


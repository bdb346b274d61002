"""JVM Native Memory Tracking: run ``jcmd … VM.native_memory`` or parse its text.

The text format changed across JDKs (hotspot ``memReporter.cpp``):

* JDK 8/11: ``Total:`` line only; ``(thread #N)``; ``(malloc=NKB #N)``,
  ``(mmap: reserved=…, committed=…)``, ``(arena=NKB #N)``; JDK 11 adds class
  counts split into instance/array and the ``Metadata:``/``Class space:`` lines.
* JDK 17: a ``malloc: NKB #N`` and ``mmap:`` line under ``Total:``; malloc and
  arena groups followed by ``(at peak)`` or ``(peak=NKB #N)``.
* JDK 21: ``(threads #N)``, ``(stack: …, peak=…)``, ``(mmap: …, at peak)`` or
  ``…, peak=NKB)``, Shared class space ``readonly=``.
* JDK 23-25: the total ``malloc:`` line carries ``, peak=NKB #N``.
* ``summary.diff``/``detail.diff``: every figure may be followed by a signed
  delta (``+123KB``; counts ``+4``; JDK 8/11 arena deltas have no unit).

The parser keys on these shapes, not on column positions, and keeps every
``key=N``/``key #N`` it does not know in ``NmtCategory.values`` so a new JDK's
extra groups do not break it. Lines of an unknown *shape* in the summary part
are a ``ParseError`` naming the line.

>>> report = parse_nmt(open("nmt.txt", "rb").read(), "nmt.txt")   # doctest: +SKIP
>>> report.category("Other").malloc                                # doctest: +SKIP
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Optional, Sequence, Union

from .errors import AccessDenied, InputError, JcmdError, NoSuchProcess, ParseError, ToolMissing, ZombieProcess
from .records import (KIB, NmtCategory, NmtComparison, NmtReport, NmtVirtualRegion, Region,
                      RegionClass)
from .proc import missing_memory_error
from .regions import unknown_to_nmt

__all__ = ["parse_nmt", "read_nmt", "run_jcmd", "jcmd_argv", "compare", "NOT_ENABLED"]

NOT_ENABLED = "Native memory tracking is not enabled"
# JDK 8 can shut NMT down at run time (out of memory for its own tables).
SHUT_DOWN = "Native memory tracking has been shutdown"

_UNITS = {"B": 1, "KB": KIB, "MB": KIB ** 2, "GB": KIB ** 3}
_NUM = r"(\d+)(B|KB|MB|GB)?"
_DELTA = r"(?:\s+([+-]\d+)(B|KB|MB|GB)?)?"

_RESERVED_COMMITTED = re.compile(
    r"reserved=" + _NUM + _DELTA + r",\s*committed=" + _NUM + _DELTA
)
_CATEGORY = re.compile(r"^-\s*(\S.*?)\s+\((reserved=.*)\)\s*$")
_TOTAL = re.compile(r"^Total:\s+(reserved=.*)$")
_TOTAL_MALLOC = re.compile(
    r"^malloc:\s+" + _NUM + _DELTA + r"(?:\s+#(\d+)(?:\s+([+-]\d+))?)?"
    r"(?:,\s*peak=" + _NUM + r"(?:\s+#(\d+))?)?\s*$"
)
_TOTAL_MMAP = re.compile(r"^mmap:\s+(reserved=.*)$")
_GROUP = re.compile(r"\(([^()]*)\)")
_REGION = re.compile(
    r"^\s*\[0x([0-9a-fA-F]+) - 0x([0-9a-fA-F]+)\] (reserved and committed|reserved|committed) "
    + _NUM + r"(?: for (.+?))?(?: from)?\s*$"
)
_FRAME = re.compile(r"^\s*\[0x[0-9a-fA-F]+\]")
_PID_LINE = re.compile(r"^(\d+):\s*$")


class _Scale:
    """The report's unit, learned from the first figure (JDK 8 arena deltas print none)."""

    def __init__(self) -> None:
        self.unit: Optional[str] = None

    def bytes(self, num: str, unit: Optional[str]) -> int:
        if unit:
            if self.unit is None:
                self.unit = unit
            return int(num) * _UNITS[unit]
        return int(num) * _UNITS.get(self.unit or "KB", KIB)

    @property
    def factor(self) -> int:
        return _UNITS.get(self.unit or "KB", KIB)


def _pair(text: str, scale: _Scale, source: str, lineno: int) -> tuple[int, int, int, int]:
    m = _RESERVED_COMMITTED.search(text)
    if m is None:
        raise ParseError(f"expected 'reserved=…, committed=…': {text.strip()[:80]!r}", source, lineno)
    res = scale.bytes(m.group(1), m.group(2))
    com = scale.bytes(m.group(5), m.group(6))
    dres = scale.bytes(m.group(3), m.group(4)) if m.group(3) else 0
    dcom = scale.bytes(m.group(7), m.group(8)) if m.group(7) else 0
    return res, com, dres, dcom


def _key(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.strip().lower()).strip("_")


class _CatBuilder:
    def __init__(self, name: str, reserved: int, committed: int) -> None:
        self.name = name
        self.reserved = reserved
        self.committed = committed
        self.malloc = self.malloc_count = 0
        self.malloc_peak: Optional[int] = None
        self.malloc_peak_count: Optional[int] = None
        self.malloc_at_peak = False
        self.mmap_reserved = self.mmap_committed = 0
        self.mmap_peak: Optional[int] = None
        self.arena = self.arena_count = 0
        self.arena_peak: Optional[int] = None
        self.values: dict[str, int] = {}
        self.deltas: dict[str, int] = {}
        self.subsection = ""        # "metadata" / "class_space" for the Class block
        self.last = ""              # which group a following "(at peak)"/"(peak=…)" belongs to

    def build(self) -> NmtCategory:
        return NmtCategory(
            self.name, self.reserved, self.committed, self.malloc, self.malloc_count,
            self.malloc_peak, self.malloc_peak_count, self.malloc_at_peak,
            self.mmap_reserved, self.mmap_committed, self.mmap_peak,
            self.arena, self.arena_count, self.arena_peak, self.values, self.deltas,
        )


_AMOUNT = re.compile(r"^(?:(malloc|arena)=)?" + _NUM + r"(?:\s+type=[^#+-]+?)?" + _DELTA
                     + r"(?:\s+#(\d+)(?:\s+([+-]\d+))?)?\s*$")
_PEAK = re.compile(r"^peak=" + _NUM + r"(?:\s+#(\d+))?\s*$")
_COUNT = re.compile(r"^([A-Za-z][A-Za-z ]*?)\s+#(\d+)(?:\s+([+-]\d+))?$")
# "used=767KB", "waste=65KB =7.80%", diff: "used=767KB +6KB", "waste=65KB =7.80% -6KB"
_KV = re.compile(r"^([A-Za-z][A-Za-z ]*?)=" + _NUM + _DELTA + r"(?:\s+=[\d.]+%)?" + _DELTA + r"$")


def _group(cat: _CatBuilder, g: str, scale: _Scale, source: str, lineno: int) -> None:
    text = g.strip()
    if not text:
        return
    if text == "at peak":
        if cat.last == "malloc":
            cat.malloc_at_peak = True
            cat.malloc_peak, cat.malloc_peak_count = cat.malloc, cat.malloc_count
        elif cat.last == "arena":
            cat.arena_peak = cat.arena
        return
    m = _PEAK.match(text)
    if m:
        peak = scale.bytes(m.group(1), m.group(2))
        if cat.last == "arena":
            cat.arena_peak = peak
        else:
            cat.malloc_peak = peak
            cat.malloc_peak_count = int(m.group(3)) if m.group(3) else None
        return
    if text.startswith(("malloc=", "arena=")):
        m = _AMOUNT.match(text)
        if m is None:
            raise ParseError(f"malformed {text.split('=')[0]} group: ({text[:80]})", source, lineno)
        kind = m.group(1)
        amount = scale.bytes(m.group(2), m.group(3))
        count = int(m.group(6)) if m.group(6) else 0
        setattr(cat, kind, amount)
        setattr(cat, f"{kind}_count", count)
        if m.group(4):
            cat.deltas[kind] = scale.bytes(m.group(4), m.group(5))
        if m.group(7):
            cat.deltas[f"{kind}_count"] = int(m.group(7))
        cat.last = kind
        return
    if text.startswith("mmap:"):
        res, com, dres, dcom = _pair(text, scale, source, lineno)
        cat.mmap_reserved, cat.mmap_committed = res, com
        if dres or dcom:
            cat.deltas["mmap_reserved"], cat.deltas["mmap_committed"] = dres, dcom
        if text.rstrip().endswith("at peak"):
            cat.mmap_peak = com
        else:
            pk = re.search(r"peak=" + _NUM, text)
            if pk:
                cat.mmap_peak = scale.bytes(pk.group(1), pk.group(2))
        cat.last = "mmap"
        return
    if text.lower().startswith("stack:"):
        body = text[6:].strip()
        if body.startswith("reserved="):
            res, com, dres, dcom = _pair(body, scale, source, lineno)
            cat.values["stack_reserved"], cat.values["stack_committed"] = res, com
            if dres or dcom:
                cat.deltas["stack_reserved"], cat.deltas["stack_committed"] = dres, dcom
            pk = re.search(r"peak=" + _NUM, body)
            if pk:
                cat.values["stack_peak"] = scale.bytes(pk.group(1), pk.group(2))
        else:
            # JDK 21 with thread stacks tracked as malloc: "(Stack: NKB"
            m = re.match(_NUM, body)
            if m is None:
                raise ParseError(f"malformed stack group: ({text[:80]})", source, lineno)
            cat.values["stack_committed"] = scale.bytes(m.group(1), m.group(2))
        cat.last = "stack"
        return
    if text.rstrip(": ") in ("Metadata", "Class space"):
        cat.subsection = _key(text.rstrip(": "))
        return
    if text.startswith("reserved="):
        res, com, dres, dcom = _pair(text, scale, source, lineno)
        prefix = (cat.subsection + "_") if cat.subsection else ""
        cat.values[prefix + "reserved"], cat.values[prefix + "committed"] = res, com
        return
    # Anything else ("classes #N", "used=NKB", "waste=NKB =7.80%" ...) is kept by name;
    # a group of an unknown shape is skipped: newer JDKs add annotations, and the
    # known figures stay usable.
    for part in (p.strip() for p in text.split(",")):
        m = _COUNT.match(part)
        if m:
            name = _key(m.group(1))
            name = "threads" if name == "thread" else name      # JDK 8-17 "thread", 21+ "threads"
            cat.values[name] = int(m.group(2))
            if m.group(3):
                cat.deltas[name] = int(m.group(3))
            continue
        m = _KV.match(part)
        if m:
            prefix = (cat.subsection + "_") if cat.subsection and m.group(1).strip() in (
                "used", "free", "waste") else ""
            name = prefix + _key(m.group(1))
            cat.values[name] = scale.bytes(m.group(2), m.group(3))
            if m.group(4):
                cat.deltas[name] = scale.bytes(m.group(4), m.group(5))
            elif m.group(6):
                cat.deltas[name] = scale.bytes(m.group(6), m.group(7))


def _fmt_hint(markers: set[str]) -> str:
    for name in ("jdk25", "jdk21", "jdk17", "jdk11"):
        if name in markers:
            return name
    return "jdk8"


def parse_nmt(data: Union[bytes, str], source: str = "nmt", kind: Optional[str] = None) -> NmtReport:
    """Parse the text of ``jcmd PID VM.native_memory summary|detail|summary.diff``.

    ``kind`` overrides what the text suggests ("summary", "detail",
    "summary.diff", "detail.diff"). Returns ``NmtReport(enabled=False)`` for
    "Native memory tracking is not enabled".
    """
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    lines = text.splitlines()
    pid: Optional[int] = None
    first = next((ln for ln in lines if ln.strip()), "")
    pm = _PID_LINE.match(first)
    if pm:
        pid = int(pm.group(1))
    if NOT_ENABLED in text or SHUT_DOWN in text:
        return NmtReport(enabled=False, kind=kind or "summary", pid=pid, source=source)
    for msg in ("No baseline for comparison", "No detail baseline for comparison",
                "Detail tracking is not enabled"):
        if msg in text:
            raise ParseError(f"jcmd answered {msg!r}", source)

    scale = _Scale()
    markers: set[str] = set()
    seen_header = False
    is_diff = False
    detail = False
    total: Optional[tuple[int, int, int, int]] = None
    total_deltas: dict[str, int] = {}
    malloc_total: Optional[int] = None
    malloc_count = 0
    malloc_peak: Optional[int] = None
    mmap_pair: Optional[tuple[int, int]] = None
    cats: list[_CatBuilder] = []
    cur: Optional[_CatBuilder] = None
    regions: list[dict] = []
    section = "summary"

    for lineno, raw in enumerate(lines, 1):
        line = raw.rstrip()
        stripped = line.strip()
        if not stripped:
            continue
        if section == "summary" and not seen_header:
            if stripped.startswith("Native Memory Tracking:"):
                seen_header = True
                if "elapsed time" in stripped:
                    is_diff = True
                continue
            if _PID_LINE.match(stripped):
                continue
            raise ParseError(f"not an NMT report (no 'Native Memory Tracking:' before): {stripped[:80]!r}",
                             source, lineno)
        if stripped == "Virtual memory map:":
            section, detail, cur = "map", True, None
            continue
        if stripped.startswith("Details:"):
            section, detail, cur = "details", True, None
            continue
        if section == "details":
            # Malloc / mmap call sites: stacks and "(malloc=… type=…)" lines; not used here.
            if stripped.startswith("Virtual memory map"):
                section = "map"
            continue
        if section == "map":
            if _FRAME.match(line) and not _REGION.match(line):
                if regions and not regions[-1]["committed"] and len(regions[-1]["stack"]) < 4:
                    regions[-1]["stack"].append(stripped)
                continue
            m = _REGION.match(line)
            if m is None:
                # JDK 22+ may append other detail sections (memory file allocations, ...).
                section = "details"
                continue
            start, end = int(m.group(1), 16), int(m.group(2), 16)
            what = m.group(3)
            if what == "committed":
                if not regions:
                    raise ParseError("committed region before any reserved region", source, lineno)
                regions[-1]["committed"].append((start, end))
            else:
                regions.append({"start": start, "end": end, "category": (m.group(6) or "").strip(),
                                "all": what == "reserved and committed", "committed": [], "stack": []})
            continue
        # ---- summary section
        if stripped.startswith("(Omitting categories"):
            continue
        m = _TOTAL.match(stripped)
        if m:
            total = _pair(m.group(1), scale, source, lineno)
            if total[2] or total[3]:
                is_diff = True
                total_deltas.update(reserved=total[2], committed=total[3])
            continue
        m = _TOTAL_MALLOC.match(stripped)
        if m:
            markers.add("jdk17")
            malloc_total = scale.bytes(m.group(1), m.group(2))
            malloc_count = int(m.group(5)) if m.group(5) else 0
            if m.group(3):
                is_diff = True
                total_deltas["malloc"] = scale.bytes(m.group(3), m.group(4))
            if m.group(7):
                markers.add("jdk25")
                malloc_peak = scale.bytes(m.group(7), m.group(8))
            continue
        m = _TOTAL_MMAP.match(stripped)
        if m:
            r = _pair(m.group(1), scale, source, lineno)
            mmap_pair = (r[0], r[1])
            continue
        m = _CATEGORY.match(stripped)
        if m:
            name = m.group(1).strip()
            res, com, dres, dcom = _pair(m.group(2), scale, source, lineno)
            cur = _CatBuilder(name, res, com)
            if dres or dcom:
                is_diff = True
                cur.deltas.update(reserved=dres, committed=dcom)
            extra = re.search(r"readonly=" + _NUM, m.group(2))
            if extra:
                markers.add("jdk21")
                cur.values["readonly"] = scale.bytes(extra.group(1), extra.group(2))
            cats.append(cur)
            continue
        if line[:1].isspace() and stripped.startswith("(") and cur is not None:
            groups = _GROUP.findall(stripped)
            if not groups:
                raise ParseError(f"unbalanced parentheses in NMT line: {stripped[:80]!r}", source, lineno)
            cur.last = ""
            for g in groups:
                if g.strip() in ("at peak",) or g.strip().startswith("peak="):
                    markers.add("jdk17")
                if g.startswith("threads #") or (g.startswith("mmap:") and "peak" in g):
                    markers.add("jdk21")
                if "instance classes #" in g or g.strip().startswith("Metadata"):
                    markers.add("jdk11")
                if re.search(r"\s[+-]\d", g):
                    is_diff = True
                _group(cur, g, scale, source, lineno)
            continue
        raise ParseError(f"unexpected line in NMT summary: {stripped[:80]!r}", source, lineno)

    if not seen_header:
        raise ParseError("empty NMT output" if not text.strip() else "not an NMT report", source)
    if total is None:
        raise ParseError("NMT report has no 'Total:' line", source)

    categories = tuple(c.build() for c in cats)
    derived = malloc_total is None
    if derived:
        # Old JDKs print no total malloc line; NMT's own total is malloc + arena +
        # its malloc headers ("tracking overhead"), as JDK 17's "malloc:" line is.
        malloc_total = sum(c.malloc + c.arena + c.values.get("tracking_overhead", 0) for c in categories)
        malloc_count = sum(c.malloc_count for c in categories)
    peak_derived = False
    if malloc_peak is None and any(c.malloc_peak is not None for c in categories):
        malloc_peak = sum((c.malloc_peak if c.malloc_peak is not None else c.malloc)
                          + (c.arena_peak if c.arena_peak is not None else c.arena)
                          + c.values.get("tracking_overhead", 0) for c in categories)
        peak_derived = True
    vregions = tuple(
        NmtVirtualRegion(r["start"], r["end"], r["category"], r["all"], tuple(r["committed"]),
                         tuple(r["stack"]))
        for r in regions
    )
    if kind is None:
        kind = ("detail" if detail else "summary") + (".diff" if is_diff else "")
    return NmtReport(
        enabled=True, kind=kind, pid=pid, scale=scale.factor,
        total_reserved=total[0], total_committed=total[1],
        malloc_total=malloc_total, malloc_count=malloc_count, malloc_total_derived=derived,
        malloc_peak=malloc_peak, malloc_peak_derived=peak_derived,
        mmap_reserved=mmap_pair[0] if mmap_pair else None,
        mmap_committed=mmap_pair[1] if mmap_pair else None,
        categories=categories, virtual_regions=vregions, total_deltas=total_deltas,
        format=_fmt_hint(markers), source=source,
    )


def read_nmt(path: Union[str, os.PathLike]) -> NmtReport:
    """Parse a saved jcmd NMT output file."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{p}: no such file") from None
    return parse_nmt(data, str(p))


# --------------------------------------------------------------------------- jcmd

_MODES = ("summary", "detail", "baseline", "summary.diff", "detail.diff")


def jcmd_argv(pid: int, mode: str = "summary", scale: str = "KB", jcmd: str = "jcmd") -> list[str]:
    """The argv offheap runs: ``jcmd PID VM.native_memory MODE scale=KB``."""
    if mode not in _MODES:
        raise InputError(f"unknown NMT mode {mode!r} (one of {', '.join(_MODES)})")
    return [jcmd, str(pid), "VM.native_memory", mode, f"scale={scale}"]


def _check_target(pid: int) -> None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except FileNotFoundError:
        raise NoSuchProcess(pid) from None
    state = stat.rpartition(b")")[2].split()[:1]
    if state in ([b"Z"], [b"X"]):
        raise ZombieProcess(pid)
    if state in ([b"T"], [b"t"]):
        # The attach listener thread cannot answer while the JVM is stopped: jcmd would hang.
        raise JcmdError(pid, f"process {pid} is stopped (SIGSTOP/ptrace); jcmd cannot attach "
                             "until it runs again (kill -CONT)")


def _check_jvm(pid: int) -> None:
    # jcmd attaches by sending SIGQUIT, which kills a process that is no JVM (and it takes
    # ~10 s to give up): run it only on a process that maps libjvm.so.
    try:
        with open(f"/proc/{pid}/maps", "rb") as f:
            maps = f.read()
    except PermissionError:
        # Another user's process: jcmd could not attach either (it must run as that user).
        raise AccessDenied(pid, f"cannot read /proc/{pid}/maps; run jcmd as the JVM's own user") from None
    except OSError:
        raise missing_memory_error(pid) from None
    if not maps.strip():
        raise missing_memory_error(pid)
    if b"/libjvm.so" not in maps:
        raise JcmdError(pid, f"process {pid} is not a HotSpot JVM (no libjvm.so mapped): "
                             "NMT needs a JVM; for native memory use `offheap regions`")


def run_jcmd(pid: int, mode: str = "summary", timeout: float = 30.0, jcmd: Optional[str] = None,
             scale: str = "KB") -> NmtReport:
    """Ask a live JVM for its NMT report through ``jcmd``, with a timeout (see ``jcmd_text``)."""
    text = jcmd_text(pid, mode, timeout, jcmd, scale)
    if mode == "baseline":
        return NmtReport(enabled="Baseline" in text or "baseline" in text, kind="baseline",
                         pid=pid, source="jcmd")
    return parse_nmt(text, f"jcmd {pid} VM.native_memory {mode}", kind=mode)


def jcmd_text(pid: int, mode: str = "summary", timeout: float = 30.0, jcmd: Optional[str] = None,
              scale: str = "KB") -> str:
    """The raw output of ``jcmd PID VM.native_memory MODE scale=SCALE``.

    jcmd hangs forever on a stopped JVM, so a stopped target is refused up front, the
    call is bounded by ``timeout`` and jcmd is killed (its own process group) when it
    runs over. Failures raise ``JcmdError`` / ``ToolMissing`` / ``NoSuchProcess``.
    """
    tool = jcmd or os.environ.get("OFFHEAP_JCMD") or "jcmd"
    _check_target(pid)
    if shutil.which(tool) is None:
        raise ToolMissing(f"{tool} not found: install a JDK (jcmd) or give a saved NMT file")
    _check_jvm(pid)
    argv = jcmd_argv(pid, mode, scale, tool)
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    except FileNotFoundError:
        raise ToolMissing(f"{tool} not found: install a JDK (jcmd) or give a saved NMT file") from None
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        # jcmd is a JVM with helper processes of its own: end its whole session group.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.communicate()
        raise JcmdError(pid, f"jcmd did not answer within {timeout:g}s "
                             "(is the JVM stopped, or out of threads?)") from None
    text = out.decode("utf-8", "replace")
    if proc.returncode != 0 or ("Exception" in text and "Native Memory Tracking" not in text):
        msg = (err.decode("utf-8", "replace").strip() or text.strip()).splitlines()
        first = next((m for m in msg if m.strip() and not m.strip().isdigit()
                      and not re.match(r"^\d+:$", m.strip())), "no output")
        hint = ""
        if "AttachNotSupported" in text + first or "Unable to open socket" in text + first:
            hint = " (run jcmd as the JVM's own user, e.g. sudo -u USER; the JVM must be a HotSpot JVM)"
        raise JcmdError(pid, f"jcmd failed (exit {proc.returncode}): {first.strip()}{hint}")
    return text


def compare(report: NmtReport, regions: Sequence[Region],
            process_rss: Optional[int] = None) -> NmtComparison:
    """Set an NMT report against classified regions (``regions.classify``).

    Returns ``NmtComparison``; see its docstring for what each figure means.
    """
    arena_rss = sum(r.mapping.rss for r in regions if r.cls is RegionClass.ARENA_HEAP)
    heap_rss = sum(r.mapping.rss for r in regions if r.cls is RegionClass.MAIN_HEAP)
    arena_ids = {r.arena_id for r in regions if r.cls is RegionClass.ARENA_HEAP}
    if process_rss is None and regions:
        process_rss = sum(r.mapping.rss for r in regions)
    malloc = report.malloc_total if report.enabled else 0
    unknown = tuple(unknown_to_nmt(regions)) if report.virtual_regions else ()
    return NmtComparison(
        report=report, process_rss=process_rss, arena_rss=arena_rss, main_heap_rss=heap_rss,
        arena_count=len(arena_ids), untracked=arena_rss + heap_rss - malloc,
        rss_minus_committed=(process_rss - report.total_committed)
        if process_rss is not None and report.enabled else None,
        unknown=unknown,
        arenas_chained=any(r.arena_base is not None for r in regions if r.cls is RegionClass.ARENA_HEAP),
    )

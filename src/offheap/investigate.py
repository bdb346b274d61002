"""One call from a PID to the answer: what fills this process's native memory, and why.

``investigate(pid, out_dir)`` runs the whole workflow and leaves a directory that can
be analysed again anywhere (``investigate_offline(out_dir)``)::

    out_dir/
      capture/     status, smaps, maps, smaps_rollup, cmdline, environ (MALLOC_*,
                   GLIBC_TUNABLES and LD_PRELOAD only), nmt.txt (JVMs with NMT on),
                   probes.json (the heap_info headers read to chain arena heaps),
                   meta.json (time, PID, budget, method, NMT note)
      dump/        manifest.json + one sparse file per dumped region (``offheap dump``)
      signatures.json   the payload types used (given, or discovered from templates)
      report.json  the findings (schema below)
      report.html  the same as one self-contained page (``offheap.report.html``)
      summary.txt  the terminal summary

Steps: snapshot /proc (and NMT through ``jcmd`` when the target is a JVM with NMT on),
classify the regions, pick what to dump — the largest RSS NMT cannot explain first:
glibc arena heaps and ``[heap]``, then other big anonymous mappings, within a byte
budget — dump it (``/proc/PID/mem`` by default: the target is never stopped unless
``method="gdb"``), then for each dump attribute every byte to a payload type
(``attribute``) and, for glibc heaps, walk the chunks (``heap.walk_heap``) to say
whether the bytes are live (a leak) or freed memory glibc keeps. The analysis reads
only what is on disk, so ``investigate_offline`` gives the same numbers.

>>> inv = investigate(4242, "/tmp/inv-4242")          # doctest: +SKIP
>>> print(inv.summary())                              # doctest: +SKIP
RSS 694 MiB; NMT committed 336 MiB, NMT malloc 9.0 MiB; 8 glibc arenas hold 480 MiB NMT cannot see ...

report.json (``"schema": "offheap-investigation/1"``, ``"schema_version": 1``; sizes in
bytes, addresses as ``"0x…"`` strings, shares as fractions 0..1)::

    target    pid, name, cmdline, captured_at (ISO UTC), start_time_ticks, threads,
              is_jvm, malloc (arena_max, MALLOC_ARENA_MAX, GLIBC_TUNABLES, LD_PRELOAD)
    totals    rss, anon_rss, swap, arena_count, arena_heaps, arena_rss, main_heap_rss,
              classes [{class, count, size, rss, dirty, swap}], budget, method,
              dumped_regions, dumped_bytes (resident bytes read), stopped_seconds
    nmt       null (not a JVM) or {enabled, note, kind, format, committed, reserved,
              malloc, malloc_peak, malloc_peak_derived, untracked, rss_minus_committed,
              categories [{name, committed, reserved, malloc, malloc_peak}]}
    regions   every mapping: {start, end, perms, path, class, size, rss, arena_id,
              label, evidence, dumped}
    dumps     per dumped region: {start, end, path, class, arena_id, rss, present,
              status, file, composition {type|"other text"|"zero"|"binary": bytes},
              holes, types [{name, bytes, share}], heap null | {kind, verdict,
              free_share, in_use_bytes, free_bytes, top_size, top_touched,
              bytes_by_state, corruption, glibc, types {name: {live, free}}}, verdict}
    composition   the dumps' composition summed (holes excluded: sums to dumped_bytes)
    types     per payload type over all dumps, most bytes first: {name, bytes, share
              (of dumped_bytes), strings, matches, regions, live_bytes, free_bytes
              (whole malloc chunks, from heap walks), templates [{template, count,
              bytes, example, example_address}], example_addresses}
    verdicts  one line per walked heap, then the overall conclusion
    summary   the terminal summary lines
    signatures  {source, types [{name, priority, patterns}]}
    notes, timings {capture, dump, analysis}
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from . import __version__
from . import heap as heapmod
from . import main_arena
from . import nmt as nmtmod
from . import proc
from . import regions as regionsmod
from .attribute import BINARY, DEFAULT_MIN_LEN, OTHER_TEXT, ZERO, Attribution, attribute
from .errors import EmptyInputError, InputError, OffheapError, ParseError
from .manifest import Manifest, load_manifest, region_file
from .records import NmtComparison, NmtReport, Region, RegionClass
from .report.text import human
from .signatures import PayloadType, Signatures, builtin

__all__ = ["investigate", "investigate_offline", "Investigation", "DumpFinding", "TypeFinding",
           "Target", "SCHEMA", "SCHEMA_VERSION", "DEFAULT_BUDGET", "select_regions",
           "load_report", "signatures_to_json", "signatures_from_json"]

SCHEMA = "offheap-investigation/1"
SCHEMA_VERSION = 1
DEFAULT_BUDGET = 1 << 30
# Other anonymous mappings smaller than this are not worth a dump: pymalloc arenas,
# small mmap'd chunks. Arena heaps and [heap] are taken whatever their size.
MIN_ANON_RSS = 1 << 20
JCMD_TIMEOUT = 20.0
# Templates discovered when the user gives no signatures: how many become types.
DISCOVERED_TYPES = 8
# Heaps holding less than this get no line of their own in the verdicts.
MIN_VERDICT_RSS = 1 << 20

CAPTURE = "capture"
DUMP = "dump"
REPORT_JSON = "report.json"
REPORT_HTML = "report.html"
SUMMARY_TXT = "summary.txt"
SIGNATURES_JSON = "signatures.json"
_OURS = {CAPTURE, DUMP, REPORT_JSON, REPORT_HTML, SUMMARY_TXT, SIGNATURES_JSON}
_PROC_FILES = ("status", "smaps", "maps", "smaps_rollup", "cmdline", "environ")
# Environment variables worth keeping: the rest of a production environ may hold secrets.
_ENV_KEEP = re.compile(rb"^(MALLOC_[A-Z_]*|GLIBC_TUNABLES|LD_PRELOAD|JAVA_TOOL_OPTIONS|_JAVA_OPTIONS)=")
_HEAP_CLASSES = (RegionClass.ARENA_HEAP, RegionClass.MAIN_HEAP)


# --------------------------------------------------------------------------- records

@dataclass
class Target:
    """Who was investigated (``Investigation.target``)."""

    pid: Optional[int]
    name: str
    cmdline: tuple[str, ...]
    captured_at: str                    # ISO 8601 UTC
    start_time_ticks: Optional[int]
    threads: Optional[int]
    is_jvm: bool
    rss: int
    malloc: dict[str, Any] = field(default_factory=dict)


@dataclass
class DumpFinding:
    """One dumped region: what fills it and, for a glibc heap, whether it is live.

    ``region`` is the classified ``Region``; ``attribution`` the byte partition of the
    region's dump file; ``heap`` the chunk walk (arena heaps and ``[heap]``);
    ``heap_types`` whole-chunk bytes per payload type: ``{name: {"live": n, "free": n}}``.
    """

    region: Region
    entry: Any                          # manifest.RegionEntry
    attribution: Attribution
    heap: Optional[heapmod.HeapWalk] = None
    heap_types: dict[str, dict[str, int]] = field(default_factory=dict)
    heap_error: str = ""
    verdict: str = ""

    @property
    def holes(self) -> int:
        """Bytes of the file that were never read (untouched or skipped pages)."""
        return max(0, self.attribution.size - self.entry.present)

    @property
    def composition(self) -> dict[str, int]:
        """``class_bytes`` without the holes: sums to the resident bytes read."""
        comp = dict(self.attribution.class_bytes)
        comp[ZERO] = max(0, comp.get(ZERO, 0) - self.holes)
        return comp

    @property
    def name(self) -> str:
        r = self.region
        if r.cls is RegionClass.ARENA_HEAP:
            return f"arena {r.arena_id} heap {r.start:#x}"
        if r.cls is RegionClass.MAIN_HEAP:
            return "[heap]"
        return f"{r.cls} {r.start:#x}" + (f" {r.mapping.path}" if r.mapping.path else "")


@dataclass
class TypeFinding:
    """One payload type over every dumped region (``Investigation.types``)."""

    name: str
    bytes: int = 0
    share: float = 0.0                  # of the resident bytes dumped
    strings: int = 0
    matches: int = 0
    regions: int = 0
    live_bytes: int = 0                 # whole in-use malloc chunks holding it
    free_bytes: int = 0                 # whole free chunks (tcache, fastbin, bins)
    templates: list[dict[str, Any]] = field(default_factory=list)
    example_addresses: list[int] = field(default_factory=list)

    @property
    def label(self) -> str:
        """Type name, with its top template when that says more."""
        if self.templates and self.templates[0]["template"] != self.name:
            return f"{self.name} ({_short(self.templates[0]['template'], 60)})"
        return self.name


@dataclass
class Investigation:
    """What ``investigate`` / ``investigate_offline`` found. ``to_dict()`` is report.json.

    The HTML reporter reads ``target``, ``regions``, ``nmt``, ``dumps`` (each with
    ``region``, ``attribution``, ``heap``), ``summary_lines`` and ``generated_at``.
    """

    out_dir: str
    target: Target
    regions: list[Region]
    nmt: Optional[NmtReport]
    nmt_note: str
    comparison: Optional[NmtComparison]
    manifest: Optional[Manifest]
    dumps: list[DumpFinding]
    types: list[TypeFinding]
    composition: dict[str, int]
    signatures: Signatures
    signatures_source: str
    budget: int
    method: str
    verdicts: list[str]
    summary_lines: list[str]
    notes: list[str]
    timings: dict[str, float]
    generated_at: str
    offline: bool = False

    # -- figures
    @property
    def dumped_bytes(self) -> int:
        return sum(d.entry.present for d in self.dumps)

    @property
    def arena_rss(self) -> int:
        return sum(r.rss for r in self.regions if r.cls is RegionClass.ARENA_HEAP)

    @property
    def main_heap_rss(self) -> int:
        return sum(r.rss for r in self.regions if r.cls is RegionClass.MAIN_HEAP)

    @property
    def arena_count(self) -> int:
        return len({r.arena_id for r in self.regions if r.cls is RegionClass.ARENA_HEAP})

    def type(self, name: str) -> TypeFinding:
        for t in self.types:
            if t.name == name:
                return t
        raise KeyError(name)

    def summary(self) -> str:
        return "\n".join(self.summary_lines)

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)


# --------------------------------------------------------------------------- live

def investigate(pid: int, out_dir: Union[str, os.PathLike], *, signatures: Optional[Signatures] = None,
                budget: Optional[int] = None, method: str = "mem", force: bool = False,
                jcmd_timeout: float = JCMD_TIMEOUT, write_html: bool = True) -> Investigation:
    """Investigate live process ``pid``; write everything into ``out_dir``.

    ``signatures``: payload types to look for (default: discover templates in the
    dumps and use the top ones, plus the built-in recognisers). ``budget``: bytes of
    resident memory to dump at most (default 1 GiB). ``method``: "mem" (default) and
    "vm" never stop the target; "gdb" stops it while attached. ``force`` overwrites a
    previous investigation in ``out_dir``.

    Raises NoSuchProcess / ZombieProcess / AccessDenied for the target, InputError
    for a used ``out_dir`` without ``force``, DumpError when dumping fails.
    """
    from .dump import METHODS, dump_process

    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        raise InputError(f"not a PID: {pid!r}")
    if method not in METHODS:
        raise InputError(f"unknown method {method!r}: choose one of {', '.join(METHODS)}")
    budget = DEFAULT_BUDGET if budget is None else int(budget)
    if budget <= 0:
        raise InputError(f"budget must be a positive number of bytes, not {budget}")
    out = Path(out_dir)
    t0 = time.monotonic()
    status = proc.read_status(pid)              # NoSuchProcess here is the clearest error
    if status.is_zombie:
        from .errors import ZombieProcess
        raise ZombieProcess(pid)
    captured_at = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    notes: list[str] = []
    # Read /proc before touching the disk: an unreadable target must not leave a
    # directory that a second run then refuses as "already holds an investigation".
    captured: dict[str, bytes] = {}
    for name in _PROC_FILES:
        try:
            data = proc.read_proc_file(pid, name)
            if name == "smaps" and not data.strip():
                raise proc.missing_memory_error(pid)
        except OffheapError as exc:
            if name in ("status", "smaps"):
                raise
            notes.append(f"{name} not captured: {exc}")
            continue
        captured[name] = _filter_environ(data) if name == "environ" else data
    _prepare_out(out, force)

    cap = out / CAPTURE
    _mkdir_private(cap)
    for name, data in captured.items():
        _write_private(cap / name, data)
    snap = proc.load_snapshot(cap)
    is_jvm = _is_jvm(snap)

    nmt_text, nmt_note = None, ""
    if is_jvm:
        nmt_text, nmt_note = _capture_nmt(pid, jcmd_timeout)
        if nmt_text is not None:
            _write_private(cap / "nmt.txt", nmt_text.encode())
    nmt_report = _parse_nmt_text(nmt_text, cap / "nmt.txt") if nmt_text else None

    # Classify with live memory reads (heap_info headers chain heaps into arenas); every
    # read is recorded so the offline analysis classifies the same way.
    probes: dict[int, str] = {}
    with proc.MemReader(pid) as mem:
        def reader(addr: int, n: int) -> Optional[bytes]:
            data = mem(addr, n)
            if data is not None:
                probes[addr] = data.hex()
            return data
        regs = regionsmod.classify(snap.mappings, nmt=nmt_report, reader=reader)
    _write_private(cap / "probes.json", json.dumps({f"{a:#x}": h for a, h in probes.items()}).encode())
    main_arena.capture_main_arena(pid, cap)  # libc's main_arena: [heap]'s fastbins and bins

    chosen = select_regions(regs, budget)
    t_capture = time.monotonic() - t0
    meta = {"pid": pid, "captured_at": captured_at, "start_time_ticks": _start_ticks(pid),
            "budget": budget, "method": method, "is_jvm": is_jvm, "nmt_note": nmt_note,
            "offheap_version": __version__, "notes": notes,
            "selected": [f"{r.start:#x}-{r.end:#x}" for r in chosen]}
    _write_private(cap / "meta.json", json.dumps(meta, indent=1).encode())

    t1 = time.monotonic()
    if chosen:
        dump_process(pid, out / DUMP, ranges=[(r.start, r.end) for r in chosen], method=method,
                     max_bytes=budget, force=force)
    elif select_regions(regs, 1 << 62):
        smallest = min(r.rss for r in select_regions(regs, 1 << 62))
        notes.append(f"nothing dumped: the budget {human(budget)} is below the RSS of the "
                     f"smallest candidate region ({human(smallest)}); raise --budget")
    else:
        notes.append("nothing to dump: no arena heap, [heap] or anonymous mapping with RSS")
    t_dump = time.monotonic() - t1
    meta["notes"] = notes
    meta["timings"] = {"capture": round(t_capture, 3), "dump": round(t_dump, 3)}
    _write_private(cap / "meta.json", json.dumps(meta, indent=1).encode())

    if signatures is not None:
        _write_private(out / SIGNATURES_JSON, json.dumps(signatures_to_json(signatures, "given"), indent=1).encode())
    return _analyse(out, out, signatures, write_html=write_html, offline=False)


def investigate_offline(from_dir: Union[str, os.PathLike], *, signatures: Optional[Signatures] = None,
                        out_dir: Union[str, os.PathLike, None] = None,
                        write_html: bool = True) -> Investigation:
    """Re-analyse an investigation directory (captures + dumps), e.g. copied from production.

    Uses the signatures saved with it unless ``signatures`` is given; writes
    report.json / report.html / summary.txt into ``out_dir`` (default: ``from_dir``
    itself; the captures and dumps are never modified).
    """
    src = Path(from_dir)
    if not (src / CAPTURE / "meta.json").is_file():
        raise InputError(f"{src}: not an offheap investigation directory (no {CAPTURE}/meta.json)")
    out = Path(out_dir) if out_dir is not None else src
    if out != src:
        _prepare_out(out, force=False, allow_reports=True)
    return _analyse(src, out, signatures, write_html=write_html, offline=True)


# --------------------------------------------------------------------------- selection

def select_regions(regions: Sequence[Region], budget: int) -> list[Region]:
    """The regions to dump, in the order chosen: arena heaps and ``[heap]`` by RSS,
    then other anonymous mappings of at least 1 MiB RSS by RSS, while their RSS fits
    the budget (a region that does not fit is passed over for smaller ones)."""
    def readable(r: Region) -> bool:
        m = r.mapping
        return m.readable and m.rss > 0 and m.start < 1 << 63

    heaps = [r for r in regions if r.cls in _HEAP_CLASSES and readable(r)]
    anon = [r for r in regions if r.cls is RegionClass.ANON and readable(r) and r.mapping.writable
            and r.mapping.rss >= MIN_ANON_RSS]
    out, left = [], budget
    for group in (heaps, anon):
        for r in sorted(group, key=lambda r: (-r.rss, r.start)):
            if r.rss <= left:
                out.append(r)
                left -= r.rss
    return out


# --------------------------------------------------------------------------- analysis

def _analyse(src: Path, out: Path, signatures: Optional[Signatures], *, write_html: bool,
             offline: bool) -> Investigation:
    t0 = time.monotonic()
    cap = src / CAPTURE
    meta = _read_json(cap / "meta.json")
    snap = proc.load_snapshot(cap)
    notes = list(meta.get("notes", []))
    nmt_path = cap / "nmt.txt"
    nmt_report = _parse_nmt_text(nmt_path.read_text("utf-8", "replace"), nmt_path) if nmt_path.is_file() else None
    nmt_note = str(meta.get("nmt_note", ""))

    manifest = load_manifest(src / DUMP) if (src / DUMP / "manifest.json").is_file() else None
    probes = {int(a, 16): bytes.fromhex(h) for a, h in _read_json(cap / "probes.json").items()} \
        if (cap / "probes.json").is_file() else {}

    def replay(addr: int, n: int) -> Optional[bytes]:
        data = probes.get(addr)
        return data[:n] if data is not None and len(data) >= n else None

    regs = regionsmod.classify(snap.mappings, nmt=nmt_report, reader=replay)
    by_start = {r.start: r for r in regs}
    comparison = nmtmod.compare(nmt_report, regs, process_rss=snap.rss) \
        if nmt_report is not None and nmt_report.enabled else None

    entries = [e for e in manifest.dumped()] if manifest is not None else []
    paths = [region_file(manifest, e) for e in entries]

    sig_source = "given"
    if signatures is None:
        saved = src / SIGNATURES_JSON
        if saved.is_file():
            signatures, sig_source = signatures_from_json(_read_json(saved))
        else:
            signatures, sig_source = _discover(paths, notes), "discovered"
            # Saved with the dumps, so a later offline run uses the very same types.
            _write_private(src / SIGNATURES_JSON,
                           json.dumps(signatures_to_json(signatures, sig_source), indent=1).encode())

    dumps: list[DumpFinding] = []
    for e, path in zip(entries, paths):
        region = by_start.get(e.start) or _region_of_entry(e)
        try:
            attr = attribute(os.fspath(path), signatures, base_address=e.start, top=10,
                             name=f"{e.start:#x}-{e.end:#x}", keep_strings=region.cls in _HEAP_CLASSES)
        except EmptyInputError:
            continue
        finding = DumpFinding(region, e, attr)
        if region.cls in _HEAP_CLASSES:
            _walk(finding, path, signatures)
        finding.verdict = _region_verdict(finding, live_read=manifest.stopped_seconds == 0)
        dumps.append(finding)

    types, composition = _aggregate(dumps, signatures)
    target = _target(snap, meta)
    budget = int(meta.get("budget", DEFAULT_BUDGET))
    inv = Investigation(
        out_dir=str(out), target=target, regions=regs, nmt=nmt_report, nmt_note=nmt_note,
        comparison=comparison, manifest=manifest, dumps=dumps, types=types, composition=composition,
        signatures=signatures, signatures_source=sig_source, budget=budget,
        method=str(meta.get("method", manifest.method if manifest else "")), verdicts=[],
        summary_lines=[], notes=notes, timings=dict(meta.get("timings", {})),
        generated_at=datetime.now(timezone.utc).isoformat(timespec="seconds"), offline=offline)
    inv.verdicts = _verdicts(inv)
    inv.summary_lines = _summary_lines(inv)
    inv.timings["analysis"] = round(time.monotonic() - t0, 3)
    _write_reports(inv, out, write_html)
    return inv


def _region_of_entry(e) -> Region:
    """A Region for a manifest entry the snapshot does not list (should not happen)."""
    from .records import Mapping
    m = Mapping(e.start, e.end, e.perms or "rw-p", 0, "00:00", 0, e.path or "",
                {"Rss": e.rss or e.present}, {}, frozenset(), True)
    cls = RegionClass(e.cls) if e.cls in {c.value for c in RegionClass} else RegionClass.ANON
    return Region(m, cls)


def _discover(paths: Sequence[Path], notes: list[str]) -> Signatures:
    """Built-ins plus one type per top template found in the dumps."""
    from .templates import discover_templates, signatures_from_templates
    sources = [os.fspath(p) for p in paths if os.path.getsize(p)]
    if not sources:
        return builtin()
    try:
        templates = discover_templates(sources, min_len=DEFAULT_MIN_LEN, top=8 * DISCOVERED_TYPES)
        found = signatures_from_templates(templates, n=DISCOVERED_TYPES)
    except InputError as exc:
        notes.append(f"no templates to turn into signatures ({exc}); built-in recognisers only")
        return builtin()
    return Signatures.from_types(found.types, mode="add", source="<discovered>")


def _walk(finding: DumpFinding, path: Path, sigs: Signatures) -> None:
    kind = "arena" if finding.region.cls is RegionClass.ARENA_HEAP else "main"
    a = finding.attribution
    try:
        walk = heapmod.walk_heap(os.fspath(path), base_address=finding.entry.start, kind=kind,
                                 **main_arena.walk_args(path.parent.parent / CAPTURE, kind))
    except OffheapError as exc:
        finding.heap_error = str(exc)
        return
    finally:
        strings = (a.string_offsets, a.string_lengths, a.string_classes)
        a.string_offsets = a.string_lengths = a.string_classes = None   # only needed here
    finding.heap = walk
    names = [t.name for t in sigs.types] + [OTHER_TEXT]
    by_state = heapmod.split_chunk_bytes(walk.chunks, *strings, len(names))
    live = by_state[:, heapmod.IN_USE]
    free = by_state[:, list(heapmod.FREE_STATES)].sum(axis=1)
    finding.heap_types = {n: {"live": int(live[i]), "free": int(free[i])}
                          for i, n in enumerate(names) if live[i] or free[i]}


def _region_verdict(f: DumpFinding, live_read: bool = False) -> str:
    if f.heap is None:
        if f.heap_error:
            return f"heap walk failed: {f.heap_error}"
        top = _top_types(f.attribution, 1)
        if top and f.entry.present and top[0][1] >= 0.05 * f.entry.present:
            return f"mostly {_quote(top[0][0])} ({_pct(top[0][1], f.entry.present)})"
        return "no payload type above 5 %"
    verdict = heapmod.verdict_with_type(f.heap, f.heap_types, ignore=(OTHER_TEXT,), quote=_quote)
    if f.heap.corruption is not None:
        # mem/vm read a running process: a thread may change chunks while they are read
        maybe = "; the target kept running while it was read, so the heap may have changed under the reader" \
            if live_read else ""
        verdict += f" (walk stopped: {f.heap.corruption}{maybe})"
    return verdict


def _top_types(attr: Attribution, n: int) -> list[tuple[str, int]]:
    return [(t.name, t.bytes) for t in attr.types if t.bytes][:n]


def _aggregate(dumps: Sequence[DumpFinding], sigs: Signatures) -> tuple[list[TypeFinding], dict[str, int]]:
    total = sum(d.entry.present for d in dumps)
    by_name: dict[str, TypeFinding] = {t.name: TypeFinding(t.name) for t in sigs.types}
    templates: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    composition: dict[str, int] = defaultdict(int)
    for d in dumps:
        for k, v in d.composition.items():
            composition[k] += v
        for tr in d.attribution.types:
            tf = by_name.setdefault(tr.name, TypeFinding(tr.name))
            tf.bytes += tr.bytes
            tf.strings += tr.strings
            tf.matches += tr.matches
            if tr.bytes:
                tf.regions += 1
            for a in tr.example_addresses or []:
                if len(tf.example_addresses) < 5:
                    tf.example_addresses.append(a)
            for tp in tr.templates:
                cur = templates[tr.name].get(tp.template)
                if cur is None:
                    templates[tr.name][tp.template] = {
                        "template": tp.template, "count": tp.count, "bytes": tp.bytes,
                        "example": tp.example, "example_address": tp.example_address}
                else:
                    cur["count"] += tp.count
                    cur["bytes"] += tp.bytes
        for name, v in d.heap_types.items():
            if name in by_name:
                by_name[name].live_bytes += v["live"]
                by_name[name].free_bytes += v["free"]
    for name, tf in by_name.items():
        tf.share = tf.bytes / total if total else 0.0
        tf.templates = sorted(templates[name].values(), key=lambda t: -t["bytes"])[:10]
    types = sorted(by_name.values(), key=lambda t: (-t.bytes, t.name))
    order = [t.name for t in sigs.types] + [OTHER_TEXT, ZERO, BINARY]
    comp = {k: composition.get(k, 0) for k in order}
    return types, comp


def _verdicts(inv: Investigation) -> list[str]:
    out = []
    walked = [d for d in inv.dumps if d.heap is not None]
    for d in walked:
        # Near-empty heaps (a JVM's helper threads own arenas of a few KiB) would drown the list.
        if d.entry.present >= MIN_VERDICT_RSS:
            out.append(f"{d.name}: {d.verdict}")
    if len(out) < len(walked):
        out.append(f"({len(walked) - len(out)} heaps under {human(MIN_VERDICT_RSS)} not listed)")
    live = sum(d.heap.in_use_bytes for d in walked)
    free = sum(d.heap.free_bytes + d.heap.top_touched for d in walked)
    if live + free:
        share = free / (live + free)
        ranked = sorted(((t.live_bytes if share < 0.5 else t.free_bytes, t.name) for t in inv.types), reverse=True)
        about = free if share >= 0.5 else live      # the bytes the verdict speaks of
        mostly = f", mostly {_quote(ranked[0][1])}" if ranked and ranked[0][0] >= about / 3 else ""
        if share >= 0.5:
            text = (f"overall: freed-but-retained, not live: {round(100 * share)} % of the walked heap "
                    f"bytes are free chunks glibc keeps{mostly}; try malloc_trim / MALLOC_ARENA_MAX")
        else:
            text = (f"overall: live allocations (a leak: something still owns them): "
                    f"{round(100 * (1 - share))} % of the walked heap bytes are in in-use chunks{mostly}")
        out.append(text)
    r = inv.nmt
    if r is not None and r.enabled and r.malloc_peak is not None and r.malloc_peak > 2 * max(r.malloc_total, 1) \
            and r.malloc_peak - r.malloc_total >= 16 << 20:
        out.append(f"NMT malloc peak {human(r.malloc_peak)} is far above the current {human(r.malloc_total)}: "
                   "the JVM freed that memory, glibc may still hold it")
    return out


# --------------------------------------------------------------------------- summary

def _summary_lines(inv: Investigation) -> list[str]:
    t = inv.target
    lines = []
    who = f"PID {t.pid} ({t.name})" if t.pid is not None else t.name
    head = f"{who}: RSS {human(t.rss)}"
    if inv.nmt is not None and inv.nmt.enabled:
        head += f"; NMT committed {human(inv.nmt.total_committed)}, NMT malloc {human(inv.nmt.malloc_total)}"
    elif t.is_jvm:
        head += f"; NMT: {inv.nmt_note or 'not available'}"
    lines.append(head)

    arenas = inv.arena_count
    heap = f"[heap] {human(inv.main_heap_rss)}"
    if inv.comparison is not None:
        lines.append(f"{arenas} glibc arena{'s' if arenas != 1 else ''} + {heap} hold "
                     f"{human(inv.arena_rss + inv.main_heap_rss)}; NMT cannot see "
                     f"{human(inv.comparison.untracked)} of it (arenas + [heap] - NMT malloc)")
    else:
        lines.append(f"{arenas} glibc arena{'s' if arenas != 1 else ''} hold {human(inv.arena_rss)}, {heap}")

    dumped = inv.dumped_bytes
    if inv.dumps:
        # Types under 1 % of the dumped bytes are noise in a diagnosis (they stay in the table).
        parts = [f"{_pct(tf.bytes, dumped)} is {_quote(tf.label)}" for tf in inv.types
                 if dumped and tf.bytes >= 0.01 * dumped][:4]
        rest = [f"{k} {_pct(inv.composition.get(k, 0), dumped)}" for k in (OTHER_TEXT, BINARY, ZERO)]
        lines.append(f"of {human(dumped)} dumped ({len(inv.dumps)} regions): "
                     + ("; ".join(parts) if parts else "no payload type found")
                     + "; " + ", ".join(rest))
    else:
        lines.append("nothing was dumped")
    lines.extend(inv.verdicts)
    return lines


def render_summary(inv: Investigation) -> str:
    """The terminal summary: the diagnosis lines, then the types and dumped regions."""
    from .report.text import Column, render_table
    out = [inv.summary()]
    if inv.types and inv.dumps:
        rows = [[_short(tf.name, 40), human(tf.bytes), _pct(tf.bytes, inv.dumped_bytes),
                 human(tf.live_bytes) if tf.live_bytes or tf.free_bytes else "-",
                 human(tf.free_bytes) if tf.live_bytes or tf.free_bytes else "-",
                 f"{tf.strings:,}", _short(tf.templates[0]["template"], 60) if tf.templates else ""]
                for tf in inv.types if tf.bytes][:12]
        if rows:
            out.append("")
            out.append(render_table((Column("type"), Column("bytes", "r"), Column("share", "r"),
                                     Column("live chunks", "r"), Column("free chunks", "r"),
                                     Column("strings", "r"), Column("top template")), rows))
        rows = [[d.name, human(d.region.rss), human(d.entry.present), _short(d.verdict, 90)] for d in inv.dumps]
        out.append("")
        out.append(render_table((Column("dumped region"), Column("RSS", "r"), Column("read", "r"),
                                 Column("verdict")), rows))
    for n in inv.notes:
        out.append(f"note: {n}")
    out.append(f"report: {Path(inv.out_dir) / REPORT_JSON}"
               + (f", {Path(inv.out_dir) / REPORT_HTML}" if (Path(inv.out_dir) / REPORT_HTML).is_file() else ""))
    return "\n".join(out)


def _pct(part: float, whole: float) -> str:
    return f"{100.0 * part / whole:.0f} %" if whole else "-"


def _short(text: str, n: int) -> str:
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text if len(text) <= n else text[:n - 1] + "…"


def _quote(name: str) -> str:
    return f"`{_short(name, 80)}`"


# --------------------------------------------------------------------------- JSON

def _hex(a: Optional[int]) -> Optional[str]:
    return None if a is None else f"{a:#x}"


def _to_dict(inv: Investigation) -> dict[str, Any]:
    t = inv.target
    dumped_starts = {d.region.start for d in inv.dumps}
    classes = [{"class": str(c.cls), "count": c.count, "size": c.size, "rss": c.rss, "dirty": c.dirty,
                "swap": c.swap} for c in regionsmod.totals(inv.regions)]
    anon_rss = sum(r.rss for r in inv.regions if r.mapping.is_anonymous)
    nmt = None
    if inv.target.is_jvm or inv.nmt is not None:
        r = inv.nmt
        nmt = {"enabled": bool(r is not None and r.enabled), "note": inv.nmt_note}
        if r is not None and r.enabled:
            nmt.update(kind=r.kind, format=r.format, committed=r.total_committed, reserved=r.total_reserved,
                       malloc=r.malloc_total, malloc_peak=r.malloc_peak, malloc_peak_derived=r.malloc_peak_derived,
                       untracked=inv.comparison.untracked if inv.comparison else None,
                       rss_minus_committed=inv.comparison.rss_minus_committed if inv.comparison else None,
                       categories=[{"name": c.name, "committed": c.committed, "reserved": c.reserved,
                                    "malloc": c.malloc, "malloc_peak": c.malloc_peak}
                                   for c in sorted(r.categories, key=lambda c: -c.committed)])
    dumps = []
    for d in inv.dumps:
        e = d.entry
        heap = None
        if d.heap is not None:
            w = d.heap
            heap = {"kind": w.layout.kind, "verdict": w.verdict, "free_share": round(w.free_share, 6),
                    "in_use_bytes": w.in_use_bytes, "free_bytes": w.free_bytes, "top_size": w.top_size,
                    "top_touched": w.top_touched, "bytes_by_state": dict(w.bytes_by_state),
                    "chunks_by_state": dict(w.chunks_by_state),
                    "corruption": None if w.corruption is None else str(w.corruption),
                    "glibc": w.layout.glibc, "types": d.heap_types}
        dumps.append({
            "name": d.name, "start": _hex(e.start), "end": _hex(e.end), "path": e.path,
            "class": str(d.region.cls), "arena_id": d.region.arena_id, "rss": d.region.rss,
            "present": e.present, "status": e.status, "file": f"{DUMP}/{e.file}",
            "composition": d.composition, "holes": d.holes,
            "types": [{"name": tr.name, "bytes": tr.bytes, "share": tr.bytes / e.present if e.present else 0.0}
                      for tr in d.attribution.types if tr.bytes],
            "heap": heap, "heap_error": d.heap_error or None, "verdict": d.verdict})
    return {
        "schema": SCHEMA, "schema_version": SCHEMA_VERSION, "offheap_version": __version__,
        "generated_at": inv.generated_at, "offline": inv.offline,
        "target": {"pid": t.pid, "name": t.name, "cmdline": list(t.cmdline), "captured_at": t.captured_at,
                   "start_time_ticks": t.start_time_ticks, "threads": t.threads, "is_jvm": t.is_jvm,
                   "rss": t.rss, "malloc": t.malloc},
        "totals": {"rss": t.rss, "anon_rss": anon_rss, "swap": sum(r.mapping.swap for r in inv.regions),
                   "arena_count": inv.arena_count,
                   "arena_heaps": sum(1 for r in inv.regions if r.cls is RegionClass.ARENA_HEAP and r.mapping.readable),
                   "arena_rss": inv.arena_rss, "main_heap_rss": inv.main_heap_rss, "classes": classes,
                   "budget": inv.budget, "method": inv.method, "dumped_regions": len(inv.dumps),
                   "dumped_bytes": inv.dumped_bytes,
                   "stopped_seconds": inv.manifest.stopped_seconds if inv.manifest else 0.0},
        "nmt": nmt,
        "regions": [{"start": _hex(r.start), "end": _hex(r.end), "perms": r.mapping.perms, "path": r.mapping.path,
                     "class": str(r.cls), "size": r.size, "rss": r.rss, "arena_id": r.arena_id,
                     "label": r.label, "evidence": r.evidence, "dumped": r.start in dumped_starts}
                    for r in inv.regions],
        "dumps": dumps,
        "composition": inv.composition,
        "types": [{"name": tf.name, "bytes": tf.bytes, "share": tf.share, "strings": tf.strings,
                   "matches": tf.matches, "regions": tf.regions, "live_bytes": tf.live_bytes,
                   "free_bytes": tf.free_bytes,
                   "templates": [dict(tp, example_address=_hex(tp["example_address"])) for tp in tf.templates],
                   "example_addresses": [_hex(a) for a in tf.example_addresses]} for tf in inv.types],
        "verdicts": inv.verdicts,
        "summary": inv.summary_lines,
        "signatures": signatures_to_json(inv.signatures, inv.signatures_source),
        "notes": inv.notes,
        "timings": inv.timings,
    }


def signatures_to_json(sigs: Signatures, source: str) -> dict[str, Any]:
    """Signatures as JSON; patterns as latin-1 text, so any byte survives the round trip."""
    return {"source": source, "types": [
        {"name": t.name, "priority": t.priority, "description": t.description,
         "patterns": [p.decode("latin-1") for p in t.patterns]} for t in sigs.types]}


def signatures_from_json(d: dict[str, Any]) -> tuple[Signatures, str]:
    try:
        types = [PayloadType(t["name"], [p.encode("latin-1") for p in t["patterns"]], int(t["priority"]),
                             str(t.get("description", ""))) for t in d["types"]]
        return Signatures(tuple(types), "<saved>"), str(d.get("source", "saved"))
    except (KeyError, TypeError, ValueError, UnicodeEncodeError) as exc:
        raise ParseError(f"malformed saved signatures: {exc!r}", SIGNATURES_JSON) from None


def load_report(directory: Union[str, os.PathLike]) -> dict[str, Any]:
    """``DIR/report.json`` (or a report.json path) as a dict, schema checked."""
    p = Path(directory)
    path = p / REPORT_JSON if p.is_dir() else p
    if not path.is_file():
        raise InputError(f"{path}: no investigation report here (run `offheap investigate` first)")
    d = _read_json(path)
    schema = d.get("schema")
    if not isinstance(schema, str) or not schema.startswith("offheap-investigation/"):
        raise InputError(f"{path}: not an offheap investigation report (schema {schema!r})")
    if d.get("schema_version") != SCHEMA_VERSION:
        raise InputError(f"{path}: report schema version {d.get('schema_version')} is not supported "
                         f"(this offheap reads {SCHEMA_VERSION})")
    return d


# --------------------------------------------------------------------------- helpers

def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        raise InputError(f"{path}: missing") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ParseError(f"not valid JSON: {exc}", str(path)) from None


def _mkdir_private(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def _prepare_out(out: Path, force: bool, allow_reports: bool = False) -> None:
    """Create ``out`` (0700), or clear a previous investigation in it when ``force``."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise InputError(f"{out} exists and is not a directory")
    if out.is_dir():
        entries = {p.name for p in out.iterdir()}
        if allow_reports:
            entries -= {REPORT_JSON, REPORT_HTML, SUMMARY_TXT}
        if entries:
            if not entries <= _OURS:
                raise InputError(f"{out} is not empty and holds no offheap investigation: choose a new directory")
            if not force:
                raise InputError(f"{out} already holds an investigation: use --force (force=True) to overwrite it")
            for name in entries:
                p = out / name
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p)
                else:
                    p.unlink()
    _mkdir_private(out)


def _filter_environ(data: bytes) -> bytes:
    keep, last_kept_tunables = [], False
    for item in data.split(b"\0"):
        if last_kept_tunables and item.startswith(b"glibc."):
            keep.append(item)       # glibc split GLIBC_TUNABLES at ':' in place (see proc.parse_environ)
            continue
        last_kept_tunables = False
        if _ENV_KEEP.match(item):
            keep.append(item)
            last_kept_tunables = item.startswith(b"GLIBC_TUNABLES=")
    return b"".join(k + b"\0" for k in keep)


def _is_jvm(snap: proc.ProcessSnapshot) -> bool:
    return any(m.path.endswith("/libjvm.so") for m in snap.mappings)


def _start_ticks(pid: int) -> Optional[int]:
    try:
        stat = proc.read_proc_file(pid, "stat")
    except OffheapError:
        return None
    rest = stat.rpartition(b")")[2].split()
    return int(rest[19]) if len(rest) > 19 else None


def _parse_nmt_text(text: Optional[str], source: Path) -> Optional[NmtReport]:
    if not text:
        return None
    return nmtmod.parse_nmt(text, str(source))


def _capture_nmt(pid: int, timeout: float) -> tuple[Optional[str], str]:
    """NMT text (detail when the JVM tracks detail, else summary) and a note; never raises."""
    try:
        text = nmtmod.jcmd_text(pid, "summary", timeout)
        report = nmtmod.parse_nmt(text, "jcmd")
    except (OffheapError, OSError) as exc:
        return None, f"NMT not read: {exc}"
    if not report.enabled:
        return text, "NMT not enabled (start the JVM with -XX:NativeMemoryTracking=summary)"
    try:
        detail = nmtmod.jcmd_text(pid, "detail", timeout)
        nmtmod.parse_nmt(detail, "jcmd")
        return detail, "NMT detail"
    except (OffheapError, OSError):
        return text, "NMT summary"


def _target(snap: proc.ProcessSnapshot, meta: dict[str, Any]) -> Target:
    ms = snap.malloc
    malloc = {}
    if ms is not None:
        malloc = {"arena_max": ms.arena_max, "MALLOC_ARENA_MAX": ms.malloc_arena_max,
                  "GLIBC_TUNABLES": ms.glibc_tunables, "LD_PRELOAD": (snap.environ or {}).get("LD_PRELOAD")}
    st = snap.status
    return Target(
        pid=meta.get("pid", st.pid if st else None), name=st.name if st else "?",
        cmdline=tuple(snap.cmdline or ()), captured_at=str(meta.get("captured_at", "")),
        start_time_ticks=meta.get("start_time_ticks"), threads=st.threads if st else None,
        is_jvm=bool(meta.get("is_jvm", _is_jvm(snap))), rss=snap.rss, malloc=malloc)


def _write_reports(inv: Investigation, out: Path, write_html: bool) -> None:
    if write_html:
        _write_html(inv, out)
    _write_private(out / REPORT_JSON, (json.dumps(inv.to_dict(), indent=1) + "\n").encode())
    _write_private(out / SUMMARY_TXT, (render_summary(inv) + "\n").encode())


def _write_html(inv: Investigation, out: Path) -> None:
    try:
        from .report import html as htmlmod
    except ImportError:
        inv.notes.append("HTML report not written: offheap.report.html is not available")
        return
    render = getattr(htmlmod, "render_investigation", None)
    if render is None:
        inv.notes.append("HTML report not written: offheap.report.html has no render_investigation")
        return
    try:
        page = render(inv)
    except Exception as exc:  # noqa: BLE001 - the page is an extra: report.json must still be written
        inv.notes.append(f"HTML report not written: the renderer failed ({type(exc).__name__}: {exc})")
        return
    _write_private(out / REPORT_HTML, page.encode("utf-8"))

"""Classify a process's mappings: glibc arena heaps, main heap, stacks, JVM spaces, files.

A non-main glibc arena lives in *heaps*: each an ``mmap(PROT_NONE,
MAP_NORESERVE)`` of HEAP_MAX_SIZE (64 MiB on 64-bit), aligned to 64 MiB, made
readable by ``mprotect`` as it grows. In smaps that is an ``rw-p`` part
starting on a 64 MiB boundary plus a ``---p`` remainder, 65536 kB together
(one 65536 kB ``rw-p`` line when full), with ``nr`` (MAP_NORESERVE) in VmFlags.

Alignment alone misleads — a JVM's Java heap at 0xf0000000 is 64 MiB-aligned
``rw-p`` too (flags ``ac``, no ``nr``) — so a heap needs the *shape* and then
the strongest evidence available: a valid ``heap_info`` header at its base
when memory is readable, else ``nr``; with maps only (no smaps, no memory) the
shape is all there is and ``Region.evidence`` says so.

>>> regions = classify(read_smaps(pid), reader=MemReader(pid))   # doctest: +SKIP
>>> for t in totals(regions): print(t.cls, t.rss)                # doctest: +SKIP
"""

from __future__ import annotations

import bisect
import struct
from collections import defaultdict
from typing import Callable, Iterable, Optional, Sequence

from .records import Arena, ClassTotal, Mapping, NmtReport, NmtVirtualRegion, Region, RegionClass

__all__ = ["classify", "totals", "arenas", "unknown_to_nmt", "parse_heap_info", "HeapInfo",
           "HEAP_MAX_SIZE", "Reader"]

HEAP_MAX_SIZE = 64 << 20         # 2 * DEFAULT_MMAP_THRESHOLD_MAX on 64-bit glibc
PAGE = 4096
# Biggest guard below a thread stack we accept: glibc puts one page (guardsize),
# HotSpot adds its yellow/red/reserved zones (a few pages) as ---p.
MAX_GUARD = 64 << 10
MIN_STACK = 64 << 10

Reader = Callable[[int, int], Optional[bytes]]

# glibc 2.35+ heap_info: ar_ptr, prev, size, mprotect_size, pagesize, pad -> 48 bytes;
# older: ar_ptr, prev, size, mprotect_size, pad -> 32 bytes. The arena's malloc_state
# of a *first* heap sits right after it, so ar_ptr == base + sizeof(heap_info).
_HEAP_INFO = struct.Struct("<5Q")
_HEADER_SIZES = (0x30, 0x20)
_HUGE_PAGES = (PAGE, 2 << 20, 1 << 30)

_NMT_CLASSES = {
    "java heap": RegionClass.JAVA_HEAP,
    "code": RegionClass.CODE_CACHE,
    "metaspace": RegionClass.METASPACE,
    "class": RegionClass.METASPACE,              # compressed class space (JDK 8: metaspace too)
    "shared class space": RegionClass.METASPACE,  # CDS archive
    "thread stack": RegionClass.THREAD_STACK,
}


class HeapInfo:
    """A decoded glibc ``heap_info`` header (see malloc/arena.c)."""

    __slots__ = ("base", "ar_ptr", "prev", "size", "mprotect_size", "pagesize")

    def __init__(self, base: int, ar_ptr: int, prev: int, size: int, mprotect_size: int, pagesize: int):
        self.base, self.ar_ptr, self.prev = base, ar_ptr, prev
        self.size, self.mprotect_size, self.pagesize = size, mprotect_size, pagesize

    @property
    def is_first(self) -> bool:
        """The arena's first heap holds its malloc_state right after the header."""
        return self.prev == 0 and self.ar_ptr - self.base in _HEADER_SIZES

    def __repr__(self) -> str:
        return (f"HeapInfo(base={self.base:#x}, ar_ptr={self.ar_ptr:#x}, prev={self.prev:#x}, "
                f"size={self.size:#x}, mprotect_size={self.mprotect_size:#x})")


def parse_heap_info(base: int, data: bytes, rw_len: int) -> Optional[HeapInfo]:
    """Decode and validate the heap_info at ``base``; None when it is not one.

    Checks what glibc guarantees: size and mprotect_size page-aligned,
    size ≤ mprotect_size ≤ 64 MiB and within the readable part; a first heap
    has prev == 0 and ar_ptr right after the header; a later heap has a
    64 MiB-aligned prev and an ar_ptr that is some first heap's malloc_state.
    """
    if data is None or len(data) < _HEAP_INFO.size:
        return None
    ar_ptr, prev, size, mprotect_size, pagesize = _HEAP_INFO.unpack_from(data)
    if size == 0 or size % PAGE or size > HEAP_MAX_SIZE:
        return None
    if mprotect_size % PAGE or not size <= mprotect_size <= HEAP_MAX_SIZE:
        return None
    if size > rw_len:
        return None
    hi = HeapInfo(base, ar_ptr, prev, size, mprotect_size, pagesize)
    if hi.is_first:
        return hi
    # Not first: prev links to the previous heap of the same arena, ar_ptr into its first heap.
    if prev == 0 or prev % HEAP_MAX_SIZE or prev == base:
        return None
    if (ar_ptr - 0x30) % HEAP_MAX_SIZE and (ar_ptr - 0x20) % HEAP_MAX_SIZE:
        return None
    return hi


def _arena_shape(maps: Sequence[Mapping], i: int) -> Optional[int]:
    """If maps[i] starts an arena heap by shape, return how many mappings it spans (1 or 2)."""
    m = maps[i]
    if m.perms != "rw-p" or not m.is_anonymous or m.path or m.start % HEAP_MAX_SIZE:
        return None
    if m.size == HEAP_MAX_SIZE:
        return 1
    if m.size > HEAP_MAX_SIZE:
        return None
    if i + 1 < len(maps):
        n = maps[i + 1]
        # The PROT_NONE remainder. It can be merged with a following MAP_NORESERVE
        # ---p reservation, so it only has to reach the 64 MiB boundary.
        if n.perms == "---p" and not n.path and n.start == m.end and n.end >= m.start + HEAP_MAX_SIZE:
            return 2
    return None


class _NmtIndex:
    def __init__(self, regions: Iterable[NmtVirtualRegion]):
        self.regions = sorted(regions, key=lambda r: r.start)
        self.starts = [r.start for r in self.regions]

    def find(self, start: int, end: int) -> Optional[NmtVirtualRegion]:
        """The NMT reservation overlapping [start, end), if any."""
        i = bisect.bisect_right(self.starts, start) - 1
        for j in (i, i + 1):
            if 0 <= j < len(self.regions):
                r = self.regions[j]
                if r.start < end and start < r.end:
                    return r
        return None


def classify(mappings: Sequence[Mapping], nmt: Optional[NmtReport] = None,
             reader: Optional[Reader] = None) -> list[Region]:
    """Give every mapping a ``RegionClass``; group arena heaps into arenas.

    ``nmt``: an NMT report. In detail mode its virtual memory map names the JVM's
    own reservations (Java heap, code cache, metaspace, thread stacks ...); a summary
    still gives the Java heap's reserved size, which finds the heap's mappings.
    ``reader(addr, n) -> bytes | None``: reads target memory (e.g.
    ``proc.MemReader``); enables heap_info validation and arena chaining.
    """
    maps = sorted(mappings, key=lambda m: m.start)
    index = _NmtIndex(nmt.virtual_regions) if nmt is not None and nmt.virtual_regions else None
    out: list[Optional[Region]] = [None] * len(maps)
    heap_infos: dict[int, HeapInfo] = {}

    # Pass 1: arena heaps (they span two mappings, so decide them first).
    for i, m in enumerate(maps):
        if out[i] is not None:
            continue
        span = _arena_shape(maps, i)
        if span is None:
            continue
        if index is not None and index.find(m.start, m.end) is not None:
            continue            # the JVM reserved it: a Java heap / GC space, not malloc
        evidence = ["shape"]
        if reader is not None:
            data = reader(m.start, _HEAP_INFO.size)
            if data is not None:
                hi = parse_heap_info(m.start, data, m.size)
                if hi is None:
                    continue    # readable and not a heap_info: certainly not an arena heap
                heap_infos[m.start] = hi
                evidence.append("heap_info")
        if m.has_smaps:
            if "nr" not in m.vmflags:
                if "heap_info" not in evidence:
                    continue    # no MAP_NORESERVE and nothing else vouches for it
            else:
                evidence.append("nr")
        ev = "+".join(evidence)
        for k in range(i, i + span):
            out[k] = Region(maps[k], RegionClass.ARENA_HEAP, evidence=ev)

    # Pass 2: everything else.
    for i, m in enumerate(maps):
        if out[i] is not None:
            continue
        out[i] = _classify_one(maps, i, index)

    regions = [r for r in out if r is not None]
    return _java_heap_by_size(_number_arenas(regions, heap_infos), nmt)


def _classify_one(maps: Sequence[Mapping], i: int, index: Optional[_NmtIndex]) -> Region:
    m = maps[i]
    if m.is_special or m.start >= 1 << 63:
        return Region(m, RegionClass.SPECIAL, label=m.path)
    if m.path == "[heap]":
        return Region(m, RegionClass.MAIN_HEAP, arena_id=0, label="[heap]", evidence="[heap]")
    if m.path == "[stack]" or m.path.startswith("[stack:"):
        return Region(m, RegionClass.THREAD_STACK, label=m.path, evidence="[stack]")
    if index is not None:
        r = index.find(m.start, m.end)
        if r is not None:
            cls = _NMT_CLASSES.get(r.category.lower(), RegionClass.JVM_OTHER)
            return Region(m, cls, label=r.category, evidence="nmt")
    if m.is_file_backed or (m.path and not m.is_anonymous):
        return Region(m, RegionClass.FILE, label=m.path)
    if m.perms == "rw-p" and i > 0 and m.size >= MIN_STACK:
        g = maps[i - 1]
        # A thread stack: glibc's guard page(s) (---p) right below an rw-p block.
        if g.perms == "---p" and g.end == m.start and g.size <= MAX_GUARD and not g.path:
            return Region(m, RegionClass.THREAD_STACK, label="thread stack", evidence="guard")
    if m.perms == "---p" and not m.path:
        if i + 1 < len(maps):
            n = maps[i + 1]
            if (n.start == m.end and n.perms == "rw-p" and m.size <= MAX_GUARD
                    and n.size >= MIN_STACK and not n.path):
                return Region(m, RegionClass.THREAD_STACK, label="stack guard", evidence="guard")
        return Region(m, RegionClass.GUARD)
    return Region(m, RegionClass.ANON, label=m.path)


def _java_heap_by_size(regs: list[Region], report: Optional[NmtReport]) -> list[Region]:
    """Mark the Java heap when only NMT *summary* is at hand (detail names it by address).

    The JVM reserves its heap in one mmap of exactly the "Java Heap" reserved size and
    commits parts of it: in smaps a run of adjacent anonymous mappings (rw-p committed,
    ---p not) spanning exactly that size — with the CDS archive's heap regions
    (``classes.jsa``) mapped into its top on JDK 12+. A unique such run is the Java
    heap: it is not native memory, so it is not dumped as a suspect.
    """
    if report is None or not report.enabled or report.virtual_regions:
        return regs
    cat = report.category("Java Heap")
    if cat is None or cat.reserved <= 0:
        return regs
    size = cat.reserved
    anon = (RegionClass.ANON, RegionClass.GUARD)
    runs = []
    for i, r in enumerate(regs):
        if r.cls not in anon or r.mapping.path:
            continue
        j, end = i, r.end
        while end - r.start < size and j + 1 < len(regs) and regs[j + 1].start == end \
                and (regs[j + 1].cls in anon and not regs[j + 1].mapping.path
                     or regs[j + 1].mapping.path.endswith(".jsa")):
            j += 1
            end = regs[j].end
        if end - r.start == size:
            runs.append((i, j))
    if len(runs) != 1:
        return regs
    i, j = runs[0]
    return [Region(r.mapping, RegionClass.JAVA_HEAP, label="Java Heap", evidence="nmt-reserved-size")
            if i <= k <= j and r.cls in anon else r for k, r in enumerate(regs)]


def _number_arenas(regions: list[Region], heap_infos: dict[int, HeapInfo]) -> list[Region]:
    # Key each heap by its arena: the malloc_state address when heap_info was read,
    # else the heap itself (an unread heap cannot be chained).
    keys: dict[int, tuple[int, Optional[int]]] = {}
    current_heap = None
    for idx, r in enumerate(regions):
        if r.cls is not RegionClass.ARENA_HEAP:
            current_heap = None
            continue
        if r.mapping.readable and r.mapping.start % HEAP_MAX_SIZE == 0:
            current_heap = r.mapping.start
        heap = current_heap if current_heap is not None else r.mapping.start
        hi = heap_infos.get(heap)
        keys[idx] = (hi.ar_ptr, hi.ar_ptr) if hi is not None else (heap, None)
    order = sorted({k for k, _ in keys.values()})
    ids = {k: n for n, k in enumerate(order, 1)}
    out = []
    for idx, r in enumerate(regions):
        if idx in keys:
            k, base = keys[idx]
            r = Region(r.mapping, r.cls, ids[k], base, f"arena {ids[k]}", r.evidence)
        out.append(r)
    return out


def totals(regions: Iterable[Region]) -> list[ClassTotal]:
    """Sums per class, largest RSS first."""
    acc: dict[RegionClass, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    for r in regions:
        a = acc[r.cls]
        a[0] += 1
        a[1] += r.mapping.size
        a[2] += r.mapping.rss
        a[3] += r.mapping.dirty
        a[4] += r.mapping.swap
    res = [ClassTotal(cls, *vals) for cls, vals in acc.items()]
    res.sort(key=lambda t: (-t.rss, -t.size, t.cls.value))
    return res


def arenas(regions: Iterable[Region]) -> list[Arena]:
    """glibc arenas (main arena ``[heap]`` as id 0), with their heaps and sums."""
    groups: dict[int, list[Region]] = defaultdict(list)
    for r in regions:
        if r.arena_id is not None:
            groups[r.arena_id].append(r)
    out = []
    for aid in sorted(groups):
        rs = groups[aid]
        out.append(Arena(
            arena_id=aid, base=rs[0].arena_base, regions=tuple(rs),
            size=sum(r.mapping.size for r in rs), rss=sum(r.mapping.rss for r in rs),
            dirty=sum(r.mapping.dirty for r in rs), swap=sum(r.mapping.swap for r in rs),
        ))
    return out


def unknown_to_nmt(regions: Iterable[Region]) -> list[Region]:
    """Resident anonymous memory that is not one of the JVM's NMT reservations.

    Meaningful only after ``classify(..., nmt=detail_report)``: malloc arenas,
    ``[heap]`` and other anonymous mappings NMT's virtual memory map does not
    list. (NMT does count *its own* mallocs, but not by address.)
    """
    skip = {RegionClass.FILE, RegionClass.SPECIAL, RegionClass.JAVA_HEAP, RegionClass.CODE_CACHE,
            RegionClass.METASPACE, RegionClass.JVM_OTHER}
    return [r for r in regions
            if r.cls not in skip and r.evidence != "nmt" and r.mapping.rss > 0
            and r.mapping.path != "[stack]"]

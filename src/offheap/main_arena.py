"""Find glibc's ``main_arena`` (the main arena's ``malloc_state``) in a live process.

The main arena's fastbins, bins and top pointer live in libc's ``.data``, not in
``[heap]``; without them ``heap.walk_heap`` can only assume ``[heap]``'s fastbin chunks
are in use. No debug symbols are needed: ``main_arena`` is recognised by its shape —
126 bins, each empty one linking to its own header (``bin_at(av, i)``, 16 bytes before
its slot) — in libc's writable mappings, and confirmed by ``top`` lying in ``[heap]``.
If libc's mappings hold none (a static binary), the arenas' own ring is followed: every
non-main arena's ``malloc_state.next`` leads round to ``&main_arena``.

Everything is read through /proc/PID/mem, read-only (``os.pread``).

Example::

    >>> state = read_main_arena(pid)                          # doctest: +SKIP
    >>> walk_heap(heap_bytes, base_address=heap_start, kind="main",
    ...           arena_state=state.data, arena_address=state.address)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from .errors import InputError, OffheapError
from .heap import HEAP_MAX_SIZE, MALLOC_STATE_SIZES, NBINS, _MS_NEXT, _MS_SYSTEM_MEM, _MS_TOP
from .proc import MemReader, read_maps
from .records import Mapping

__all__ = ["MainArena", "read_main_arena", "find_malloc_states", "save_main_arena", "load_main_arena",
           "capture_main_arena", "walk_args",
           "MAIN_ARENA_FILE"]

MAIN_ARENA_FILE = "main_arena.json"
_MAX_SCAN = 4 << 20        # libc's .data + .bss are a few dozen KiB; never read more than this
_MIN_EMPTY_BINS = 8        # a real arena has at least this many empty (self-linked) bins


@dataclass(frozen=True)
class MainArena:
    """The main arena's malloc_state as read from a process (``read_main_arena``).

    ``data`` holds ``size`` bytes (0x898 since glibc 2.27, 0x890 before) from
    ``address``; ``found_by`` says how: "libc scan" or "arena ring".
    """

    address: int
    data: bytes
    size: int
    top: int
    system_mem: int
    found_by: str


Reader = Callable[[int, int], Optional[bytes]]


def find_malloc_states(data: bytes, address: int) -> list[tuple[int, int]]:
    """Offsets in ``data`` (read from ``address``) that hold a malloc_state: ``(offset, size)``.

    A candidate needs every bin to be either empty (fd == bk == its own header) or to
    hold 16-aligned chunk pointers, and at least 8 empty bins.

    >>> find_malloc_states(bytes(64), 0x1000)
    []
    """
    words = np.frombuffer(data, "<u8", count=len(data) // 8)
    out: list[tuple[int, int]] = []
    for ms_size in MALLOC_STATE_SIZES:
        n = len(words) - ms_size // 8 + 1
        if n <= 0:
            continue
        j = np.arange(n, dtype=np.uint64)
        own = np.uint64(address) + j * np.uint64(8) + np.uint64(_MS_TOP[ms_size])
        first = (_MS_TOP[ms_size] + 16) // 8
        empty = np.zeros(n, np.int64)
        plausible = np.ones(n, bool)
        for b in range(NBINS - 2):
            fd = words[first + 2 * b:first + 2 * b + n]
            bk = words[first + 2 * b + 1:first + 2 * b + 1 + n]
            hdr = own + np.uint64(16 * b)
            selfl = (fd == hdr) & (bk == hdr)
            empty += selfl
            plausible &= selfl | ((fd != 0) & (bk != 0) & ((fd & np.uint64(15)) == 0) & ((bk & np.uint64(15)) == 0))
        hit = np.flatnonzero(plausible & (empty >= _MIN_EMPTY_BINS))
        out += [(int(h) * 8, ms_size) for h in hit]
    # The two layouts differ only by the 8 bytes before fastbinsY, so a 0x898 state at X
    # also reads as a 0x890 one at X + 8: keep the glibc >= 2.27 reading.
    new = {off for off, size in out if size == MALLOC_STATE_SIZES[0]}
    return sorted((off, size) for off, size in set(out)
                  if size == MALLOC_STATE_SIZES[0] or off - 8 not in new)


def _u64(data: bytes, off: int) -> int:
    return int.from_bytes(data[off:off + 8], "little")


def _is_libc(path: str) -> bool:
    name = os.path.basename(path)
    return name.startswith("libc.so") or name.startswith("libc-")


def _libc_ranges(maps: Sequence[Mapping]) -> list[tuple[int, int]]:
    """libc's writable mappings (.data, and the anonymous .bss right after); for a
    static binary (no libc mapped) the executable's, which then holds libc's .data."""
    out = []
    owner = _is_libc if any(_is_libc(m.path) for m in maps) else \
        (lambda path, exe=(maps[0].path if maps else ""): bool(exe) and path == exe)
    for i, m in enumerate(maps):
        if not owner(m.path):
            continue
        if m.perms.startswith("rw"):
            out.append((m.start, m.end))
            if i + 1 < len(maps) and not maps[i + 1].path and maps[i + 1].start == m.end \
                    and maps[i + 1].perms.startswith("rw"):
                out.append((maps[i + 1].start, maps[i + 1].end))
    return out


def _make(reader: Reader, addr: int, size: int, found_by: str) -> Optional[MainArena]:
    data = reader(addr, size)
    if data is None:
        return None
    return MainArena(addr, data, size, _u64(data, _MS_TOP[size]), _u64(data, _MS_SYSTEM_MEM[size]), found_by)


def _score(ms: MainArena, heap: Optional[Mapping]) -> tuple[int, int]:
    if heap is None:
        return (0, 0)
    in_heap = heap.start <= ms.top < heap.end
    return (int(in_heap), -abs(ms.system_mem - heap.size))


def _from_libc(reader: Reader, maps: Sequence[Mapping], heap: Optional[Mapping]) -> Optional[MainArena]:
    best = None
    static = not any(_is_libc(m.path) for m in maps)
    for lo, hi in _libc_ranges(maps):
        hi = min(hi, lo + _MAX_SCAN)
        data = reader(lo, hi - lo)
        if data is None:
            continue
        for off, size in find_malloc_states(data, lo):
            cand = MainArena(lo + off, data[off:off + size], size, _u64(data, off + _MS_TOP[size]),
                             _u64(data, off + _MS_SYSTEM_MEM[size]), "libc scan")
            if heap is not None and not heap.start <= cand.top < heap.end and static:
                continue  # in an executable's data, only a state whose top is in [heap] counts
            if best is None or _score(cand, heap) > _score(best, heap):
                best = cand
    return best


def _from_ring(reader: Reader, maps: Sequence[Mapping]) -> Optional[MainArena]:
    """Follow ``next`` from a non-main arena's malloc_state to the one outside any heap."""
    for m in maps:
        if m.start % HEAP_MAX_SIZE or not m.perms.startswith("rw") or m.path:
            continue
        hdr = reader(m.start, 48)
        if hdr is None:
            continue
        ar, prev = _u64(hdr, 0), _u64(hdr, 8)
        if prev != 0 or ar - m.start not in (0x20, 0x30):
            continue
        for size in MALLOC_STATE_SIZES:
            p, seen = ar, set()
            while p and p not in seen and len(seen) < 1024:
                seen.add(p)
                if p & (HEAP_MAX_SIZE - 1) not in (0x20, 0x30):
                    cand = _make(reader, p, size, "arena ring")
                    if cand is not None and (0, size) in find_malloc_states(cand.data, p):
                        return cand
                    break
                word = reader(p + _MS_NEXT[size], 8)
                p = _u64(word, 0) if word else 0
    return None


def read_main_arena(pid: int, reader: Optional[Reader] = None) -> Optional[MainArena]:
    """Find and read ``main_arena`` of process ``pid``; None when it cannot be found.

    ``reader(addr, n)`` defaults to a read-only /proc/PID/mem reader. Raises
    NoSuchProcess / AccessDenied when the process cannot be read at all.
    """
    maps = read_maps(pid)
    heap = next((m for m in maps if m.path == "[heap]"), None)
    if reader is None:
        with MemReader(pid) as mem:
            return _find(mem, maps, heap)
    return _find(reader, maps, heap)


def _find(reader: Reader, maps, heap) -> Optional[MainArena]:
    found = _from_libc(reader, maps, heap)
    if found is None:
        found = _from_ring(reader, maps)
    return found


def save_main_arena(state: Optional[MainArena], directory) -> Optional[Path]:
    """Write ``state`` as ``directory/main_arena.json`` (0600) for offline walks."""
    if state is None:
        return None
    path = Path(directory) / MAIN_ARENA_FILE
    doc = {"address": f"{state.address:#x}", "size": state.size, "found_by": state.found_by,
           "data": state.data.hex()}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f)
    return path


def load_main_arena(directory) -> Optional[MainArena]:
    """Read ``directory/main_arena.json`` written by ``save_main_arena``; None if absent."""
    path = Path(directory) / MAIN_ARENA_FILE
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text("utf-8"))
        addr, size, data = int(doc["address"], 16), int(doc["size"]), bytes.fromhex(doc["data"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: not a main_arena record ({exc})") from None
    if size not in MALLOC_STATE_SIZES or len(data) != size:
        raise InputError(f"{path}: malloc_state of {len(data)} bytes, expected {size}")
    return MainArena(addr, data, size, _u64(data, _MS_TOP[size]), _u64(data, _MS_SYSTEM_MEM[size]),
                     str(doc.get("found_by", "")))


def capture_main_arena(pid: int, directory) -> Optional[Path]:
    """``save_main_arena(read_main_arena(pid), directory)``, or None when the main arena
    cannot be found or read: a capture goes on without it (fastbins then stay unknown)."""
    try:
        return save_main_arena(read_main_arena(pid), directory)
    except (OffheapError, OSError):
        return None


def walk_args(directory, kind: str) -> dict:
    """``walk_heap`` keyword arguments for a ``kind`` heap from a saved main_arena:
    ``arena_state`` / ``arena_address`` for ``[heap]`` ("main") when
    ``directory/main_arena.json`` exists, else none."""
    if kind != "main":
        return {}
    state = load_main_arena(directory)
    if state is None:
        return {}
    return {"arena_state": state.data, "arena_address": state.address}

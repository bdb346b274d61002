"""Pure-Python twin of the heap kernels in ``_heap.pxi`` (same functions, same results).

See ``_heap.pxi`` for what the kernels do; ``heap.py`` is the analysis built on them.
"""

from __future__ import annotations

import struct

import numpy as np

__all__ = [
    "heap_walk", "heap_follow",
    "HEAP_KIND_INUSE", "HEAP_KIND_FREE", "HEAP_KIND_LAST",
    "HEAP_END_OK", "HEAP_END_FENCEPOST", "HEAP_BAD_SIZE", "HEAP_MISALIGNED",
    "HEAP_PAST_END", "HEAP_FOOTER", "HEAP_MMAPPED_BIT", "HEAP_HEADER_CUT",
    "HEAP_LIST_END", "HEAP_LIST_LEFT", "HEAP_LIST_BAD", "HEAP_LIST_LIMIT",
]

HEAP_KIND_INUSE = 0
HEAP_KIND_FREE = 1
HEAP_KIND_LAST = 2

HEAP_END_OK = 0
HEAP_END_FENCEPOST = 1
HEAP_BAD_SIZE = 2
HEAP_MISALIGNED = 3
HEAP_PAST_END = 4
HEAP_FOOTER = 5
HEAP_MMAPPED_BIT = 6
HEAP_HEADER_CUT = 7

HEAP_LIST_END = 0
HEAP_LIST_LEFT = 1
HEAP_LIST_BAD = 2
HEAP_LIST_LIMIT = 3

_U64 = struct.Struct("=Q")  # host order, like the kernel's memcpy
_MASK = (1 << 64) - 1


def _walk(mv, start: int, end: int, out: list | None) -> tuple[int, int]:
    u64 = _U64.unpack_from
    pos = start
    while True:
        if pos == end:
            return HEAP_END_OK, pos
        if end - pos < 16:
            return HEAP_HEADER_CUT, pos
        raw = u64(mv, pos + 8)[0]
        size = raw & ~7 & _MASK
        if size == 16 or (size == 0 and end - pos == 16):
            return HEAP_END_FENCEPOST, pos   # glibc's closing fencepost(s) of a full heap
        if raw & 2:
            return HEAP_MMAPPED_BIT, pos
        if size & 15:
            return HEAP_MISALIGNED, pos
        if size < 32:
            return HEAP_BAD_SIZE, pos
        if size > end - pos:
            return HEAP_PAST_END, pos
        nxt = pos + size
        if nxt == end:
            kind = HEAP_KIND_LAST
        else:
            if end - nxt < 16:
                return HEAP_HEADER_CUT, nxt
            if u64(mv, nxt + 8)[0] & 1:
                kind = HEAP_KIND_INUSE
            else:
                if u64(mv, nxt)[0] != size:
                    return HEAP_FOOTER, pos
                kind = HEAP_KIND_FREE
        if out is not None:
            out.append((pos, size, kind))
        pos = nxt


def heap_walk(buf, start: int, end: int):
    """Walk malloc chunks in ``buf[start:end]``; see ``_heap.pxi``.

    >>> heap_walk(bytes(8) + (32 | 1).to_bytes(8, "little") + bytes(16), 0, 32)[3]
    0
    """
    mv = memoryview(buf).cast("B")
    n = mv.nbytes
    start = max(int(start), 0)
    end = min(int(end), n)
    if end < start:
        end = start
    if n == 0:
        return (np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.uint8),
                HEAP_END_OK if start == end else HEAP_HEADER_CUT, start)
    out: list = []
    status, where = _walk(mv, start, end, out)
    offsets = np.fromiter((c[0] for c in out), np.int64, len(out))
    sizes = np.fromiter((c[1] for c in out), np.int64, len(out))
    kinds = np.fromiter((c[2] for c in out), np.uint8, len(out))
    return offsets, sizes, kinds, status, where


def heap_follow(buf, base, offsets, sizes, heads, ends, max_steps, expect, labels,
                ptr_adjust, link_off, mangle, marks, per_head=None):
    """Follow free lists through the dump, marking ``marks`` in place; see ``_heap.pxi``."""
    mv = memoryview(buf).cast("B")
    buflen = mv.nbytes
    offsets = np.asarray(offsets)
    n = len(offsets)
    nheads = len(heads)
    if len(sizes) != n or len(marks) != n:
        raise ValueError("offsets, sizes and marks must have the same length")
    if not (len(ends) == len(max_steps) == len(expect) == len(labels) == nheads):
        raise ValueError("heads, ends, max_steps, expect and labels must have the same length")
    if per_head is not None:
        if len(per_head) != 2 * nheads:
            raise ValueError("per_head must have length 2 * len(heads)")
        for i in range(nheads):
            per_head[2 * i] = 0
            per_head[2 * i + 1] = (HEAP_LIST_END if int(heads[i]) in (0, int(ends[i]))
                                   else HEAP_LIST_LEFT)
    if n == 0 or nheads == 0 or buflen == 0:
        return 0, 0
    if (offsets < 0).any() or (offsets >= buflen).any() or (n > 1 and (np.diff(offsets) <= 0).any()):
        raise ValueError("offsets must be strictly increasing offsets inside buf")
    base = int(base) & _MASK
    ptr_adjust = int(ptr_adjust) & _MASK
    link_off = int(link_off) & _MASK
    index = {int(o): i for i, o in enumerate(offsets.tolist())}
    size_list = [int(s) for s in np.asarray(sizes).tolist()]
    u64 = _U64.unpack_from
    steps = anom = 0
    for h in range(nheads):
        p = int(heads[h])
        end_mark = int(ends[h])
        limit = int(max_steps[h])
        want = int(expect[h])
        label = int(labels[h])
        k = 0
        code = HEAP_LIST_LIMIT
        while k < limit:
            if p == 0 or p == end_mark:
                code = HEAP_LIST_END
                break
            if p < ptr_adjust:
                anom += 1
                code = HEAP_LIST_BAD
                break
            addr = p - ptr_adjust
            if addr < base or addr - base >= buflen:
                code = HEAP_LIST_LEFT
                break
            off = addr - base
            idx = index.get(off, -1)
            if idx < 0 or (want != 0 and size_list[idx] != want) or marks[idx] != 0:
                anom += 1
                code = HEAP_LIST_BAD
                break
            marks[idx] = label
            steps += 1
            k += 1
            if link_off > buflen or off > buflen - link_off or buflen - link_off - off < 8:
                code = HEAP_LIST_LEFT
                break
            v = u64(mv, off + link_off)[0]
            link = ((base + off + link_off) & _MASK) >> 12
            if mangle:
                v ^= link
            if v != 0 and v == link:
                anom += 1
                code = HEAP_LIST_BAD
                break
            p = v
        if code == HEAP_LIST_LIMIT and (p == 0 or p == end_mark):
            code = HEAP_LIST_END
        if per_head is not None:
            per_head[2 * h] = k
            per_head[2 * h + 1] = code
    return steps, anom

"""Pure-Python twin of the string kernels in ``_strings.pxi``.

It states the semantics plainly with regular expressions (a run of graphic bytes,
or a chain of graphic 16/32-bit units) and carries the same 4-word state between
calls, so the windowing code above it cannot tell the two apart.
"""

from __future__ import annotations

import re

import numpy as np

__all__ = ["ENCODINGS", "check_encoding", "find_strings", "format_strings", "count_zero_bytes"]

ST_OPEN, ST_START, ST_UNITS, ST_NEXT = range(4)

# encoding letter -> (unit size, lane of the character byte inside a unit)
ENCODINGS = {"s": (1, 0), "S": (1, 0), "b": (2, 1), "l": (2, 0), "B": (4, 3), "L": (4, 0)}

_PATTERNS: dict[tuple[str, bool], re.Pattern[bytes]] = {}


def check_encoding(encoding: str) -> tuple[int, int]:
    try:
        return ENCODINGS[encoding]
    except KeyError:
        raise ValueError(f"unknown encoding {encoding!r}: use one of s, S, b, l, B, L") from None


def _pattern(encoding: str, whitespace: bool) -> re.Pattern[bytes]:
    key = (encoding, whitespace)
    if key not in _PATTERNS:
        cls = rb"\t-\r\x20-\x7e" if whitespace else rb"\t\x20-\x7e"
        if encoding == "S":
            cls += rb"\x80-\xff"
        c = b"[" + cls + b"]"
        unit = {
            "s": c, "S": c,
            "l": c + rb"\x00", "b": rb"\x00" + c,
            "L": c + rb"\x00\x00\x00", "B": rb"\x00\x00\x00" + c,
        }[encoding]
        _PATTERNS[key] = re.compile(b"(?:" + unit + b")+")
    return _PATTERNS[key]


def find_strings(buf, begin: int, end: int, final: bool, min_len: int, encoding: str,
                 whitespace: bool, base: int, state, zero_count=None) -> tuple[np.ndarray, np.ndarray]:
    """See ``offheap._scan.find_strings``."""
    k, _lane = check_encoding(encoding)
    if min_len < 1:
        raise ValueError(f"minimum string length must be >= 1, not {min_len}")
    if len(state) != 4:
        raise ValueError("state must hold 4 uint64 values")
    data = bytes(buf)
    n = len(data)
    if begin < 0 or end < begin or end > n:
        raise ValueError(f"range [{begin}, {end}) is outside the buffer of {n} bytes")
    if zero_count is not None:
        if len(zero_count) != 1:
            raise ValueError("zero_count must hold 1 uint64 value")
        zero_count[0] += data.count(0, begin, end)

    is_open = bool(state[ST_OPEN])
    cs, units, nx = int(state[ST_START]), int(state[ST_UNITS]), int(state[ST_NEXT])
    offsets: list[int] = []
    lengths: list[int] = []

    def close() -> None:
        if units >= min_len:
            offsets.append(cs)
            lengths.append(units * k)

    # A chain may only use units that start before `end`; it may read k-1 bytes past it.
    for m in _pattern(encoding, whitespace).finditer(data, begin, min(n, end + k - 1)):
        s = m.start()
        u = min((m.end() - s) // k, -(-(end - s) // k))
        a = base + s
        if is_open and a == nx:
            units += u
        else:
            if is_open:
                close()
            is_open, cs, units = True, a, u
        nx = cs + units * k
        if nx < base + end:          # the unit at nx is not graphic: the chain ended
            close()
            is_open = False
    if is_open and nx < base + end:
        close()
        is_open = False
    if final and is_open:
        close()
        is_open = False

    state[ST_OPEN], state[ST_START], state[ST_UNITS], state[ST_NEXT] = int(is_open), cs, units, nx
    return np.array(offsets, dtype=np.uint64), np.array(lengths, dtype=np.uint64)


def format_strings(buf, base: int, offsets, lengths, encoding: str, radix: int,
                   prefix: bytes, sep: bytes) -> bytes:
    """See ``offheap._scan.format_strings``."""
    k, lane = check_encoding(encoding)
    if radix not in (0, 8, 10, 16):
        raise ValueError(f"radix must be 0, 8, 10 or 16, not {radix}")
    if len(offsets) != len(lengths):
        raise ValueError("offsets and lengths differ in length")
    data = memoryview(buf).cast("B")
    fmt = {8: "%7o ", 10: "%7d ", 16: "%7x "}.get(radix)
    parts = []
    for off, ln in zip(offsets.tolist() if hasattr(offsets, "tolist") else offsets,
                       lengths.tolist() if hasattr(lengths, "tolist") else lengths):
        rel = off - base
        if off < base or rel + ln > len(data):
            raise ValueError(f"string at offset {off} is not inside the buffer")
        parts.append(prefix)
        if fmt:
            parts.append((fmt % off).encode())
        parts.append(bytes(data[rel + lane: rel + ln: k]))
        parts.append(sep)
    return b"".join(parts)


def count_zero_bytes(buf, begin: int, end: int) -> int:
    """See ``offheap._scan.count_zero_bytes``."""
    data = memoryview(buf).cast("B")
    if begin < 0 or end < begin or end > len(data):
        raise ValueError(f"range [{begin}, {end}) is outside the buffer of {len(data)} bytes")
    return bytes(data[begin:end]).count(0)

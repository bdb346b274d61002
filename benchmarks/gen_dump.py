"""Deterministic generator of glibc-arena-like memory dumps, for benchmarks.

The file imitates what ``offheap`` dumps from a JVM whose websocket server leaks
native memory (see ../../shared/FACTS.md): a run of 64 MiB arena heaps laid end
to end, each one

    heap_info (glibc 2.36: ar_ptr, prev, size, mprotect_size, pagesize; 48 bytes)
    malloc_state (2200 bytes; only in the first heap of an arena)
    malloc chunks (prev_size, size|flags; 16-byte aligned) holding
        websocket JSON push messages (~50 % of the bytes, several event types),
        UTF-16LE text (Java-like), arrays of 8-byte pointers 0x00007f..........,
        random binary (zlib-like), zeroed buffers;
        a quarter of them freed: first 16 bytes (32 for large bin chunks)
        overwritten with pointer-like fd/bk links, the next chunk's PREV_INUSE
        cleared for chunks that went to a bin rather than a tcache
    a top chunk, or (heap followed by a second heap of the same arena) the freed
    old top and the two fencepost chunks glibc's sysmalloc leaves.

Heaps alternate between "first heap of an arena" and "second heap of the same
arena", so heap_info.prev chains are exercised too.

Usage::

    python benchmarks/gen_dump.py /tmp/arena-64M.bin --size 64M [--seed 0]

    >>> from gen_dump import generate
    >>> totals = generate("/tmp/a.bin", 1 << 20, seed=1)
    >>> totals["json:unread_count"].bytes > 0
    True

The file is written 4 MiB at a time (memory stays bounded whatever the size)
and is byte-for-byte a function of (size, seed, GEN_VERSION).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import BinaryIO, NamedTuple

import numpy as np

# Bump when the output for a given (size, seed) changes: benchmark caches key on it.
GEN_VERSION = 1

HEAP_MAX_SIZE = 64 << 20          # 64-bit HEAP_MAX_SIZE
SEGMENT = 4 << 20                 # write (and generate) this much at a time
PAGE = 4096

HEAP_INFO_SIZE = 0x30             # 5 size_t + pad to MALLOC_ALIGNMENT
MALLOC_STATE_SIZE = 0x898         # sizeof(struct malloc_state), glibc 2.36 x86-64
# _int_new_arena: the first chunk follows malloc_state, moved up so chunk2mem is 16-aligned.
FIRST_CHUNK_FIRST_HEAP = 0x8D0
FIRST_CHUNK_NEXT_HEAP = HEAP_INFO_SIZE
BINS_OFFSET = 0x70                # offsetof(struct malloc_state, bins)

PREV_INUSE = 0x1
NON_MAIN_ARENA = 0x4
MINSIZE = 32
TCACHE_MAX_CHUNK = 0x410          # chunks up to 1040 bytes may go to a tcache
MIN_LARGE_SIZE = 0x400            # large bins also get fd_nextsize/bk_nextsize

# Chunk kinds.
TEXT, PTRS, BINARY, ZERO = 0, 1, 2, 3
# Byte share of chunk space per kind (TEXT split between JSON and UTF-16 below).
JSON_SHARE, UTF16_SHARE, PTRS_SHARE, BINARY_SHARE = 0.65, 0.07, 0.10, 0.11
ZERO_SHARE = 1.0 - JSON_SHARE - UTF16_SHARE - PTRS_SHARE - BINARY_SHARE
FREE_PROB = 0.25                  # share of non-zero chunks that are freed
TCACHE_PROB = 0.6                 # of freed small chunks, how many sit in a tcache

EVENTS = ("unread_count", "presence", "message_new", "typing", "read_receipt")
EVENT_WEIGHTS = (0.40, 0.20, 0.15, 0.17, 0.08)
JSON_POOL = 2048                  # distinct messages per segment (each repeats ~10x, as in leaks)
UTF16_POOL = 256

_STATUSES = ("online", "away", "offline", "busy")
_DEVICES = ("android", "ios", "web", "desktop")
_PREVIEWS = (
    "ok see you at 5", "did you get my last message?", "lol", "can you send the report",
    "meeting moved to tomorrow 10:00", "thanks!", "where are you", "call me when you can",
    "the build is green again", "push notification test", "happy birthday!!",
    "I'll be late, traffic is terrible today", "sure", "sounds good to me",
)
_JAVA_TEXT = (
    "java.lang.String", "io.netty.channel.socket.nio.NioSocketChannel",
    "com.corundumstudio.socketio.SocketIOClient", "Connection reset by peer",
    "java.util.concurrent.ConcurrentHashMap", "Europe/Berlin", "application/json; charset=UTF-8",
    "Zo\u00eb M\u00fcller", "\u0414\u043c\u0438\u0442\u0440\u0438\u0439 \u041f\u0435\u0442\u0440\u043e\u0432",
    "Fran\u00e7ois Dupont", "\u5f20\u4f1f", "Mar\u00eda Jos\u00e9 Garc\u00eda",
)
_TS_BASE = 1_718_000_000_000      # ms epoch, June 2024


class PayloadTotals(NamedTuple):
    """What one kind of content contributed to a generated dump.

    ``count``: items written (chunks, headers, messages); ``freed``: how many of
    them sit in freed chunks; ``bytes``: bytes of the file that hold this kind
    (for freed payloads only the part that survived the fd/bk overwrite). The
    ``bytes`` of all kinds add up to the file size.
    """

    count: int
    freed: int
    bytes: int


class _Acc:
    """Running totals per kind name."""

    def __init__(self) -> None:
        self.t: dict[str, list[int]] = {}

    def add(self, name: str, count: int = 0, freed: int = 0, nbytes: int = 0) -> None:
        row = self.t.setdefault(name, [0, 0, 0])
        row[0] += int(count)
        row[1] += int(freed)
        row[2] += int(nbytes)

    def result(self) -> dict[str, PayloadTotals]:
        return {k: PayloadTotals(*v) for k, v in sorted(self.t.items())}


def parse_size(text: str) -> int:
    """``"64M"`` -> 67108864; K/M/G/T are binary multiples; a bare number is bytes."""
    m = re.fullmatch(r"\s*(\d+)\s*([KMGT]?)(?:i?B)?\s*", text, re.IGNORECASE)
    if not m:
        raise ValueError(f"not a size: {text!r} (use e.g. 64M, 1G, 4G)")
    return int(m.group(1)) << (10 * " KMGT".index(m.group(2).upper() or " "))


def _align16(a: np.ndarray) -> np.ndarray:
    return (a + 15) & ~np.int64(15)


def _span_index(starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(s, s+l)`` for every (s, l): one numpy gather per kind."""
    lens = lens.astype(np.int64, copy=False)
    total = int(lens.sum())
    if total == 0:
        return np.empty(0, np.int64)
    before = np.cumsum(lens) - lens
    return np.repeat(starts.astype(np.int64) - before, lens) + np.arange(total, dtype=np.int64)


def _uuid(raw: bytes) -> str:
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}"


def _json_pool(rng: np.random.Generator) -> tuple[list[bytes], np.ndarray]:
    """JSON_POOL websocket push messages and their event index."""
    k = JSON_POOL
    ev = rng.choice(len(EVENTS), size=k, p=EVENT_WEIGHTS)
    uid = rng.integers(100000, 100100, size=k).tolist()    # 100 users, as in the fixtures
    uid2 = rng.integers(100000, 100100, size=k).tolist()
    small = rng.integers(0, 10, size=k).tolist()
    ts = (_TS_BASE + rng.integers(0, 86_400_000, size=k)).tolist()
    conv = rng.integers(1, 1_000_000, size=k).tolist()
    pick = rng.integers(0, 1 << 16, size=k).tolist()
    raw = rng.bytes(32 * k)
    out = []
    for i, e in enumerate(ev.tolist()):
        if e == 0:
            s = f'{{"event":"unread_count","uid":{uid[i]},"count":{small[i] % 5}}}'
        elif e == 1:
            s = (f'{{"event":"presence","uid":{uid[i]},"status":"{_STATUSES[pick[i] % 4]}",'
                 f'"last_seen":{ts[i]},"device":"{_DEVICES[pick[i] // 4 % 4]}"}}')
        elif e == 2:
            s = (f'{{"event":"message_new","msg_id":"{_uuid(raw[32 * i:32 * i + 16])}",'
                 f'"conv_id":"c-{conv[i]}","from":{uid[i]},"to":{uid2[i]},"ts":{ts[i]},'
                 f'"preview":"{_PREVIEWS[pick[i] % len(_PREVIEWS)]}","attachments":{small[i] % 3}}}')
        elif e == 3:
            s = f'{{"event":"typing","conv_id":"c-{conv[i]}","uid":{uid[i]},"ts":{ts[i]}}}'
        else:
            s = (f'{{"event":"read_receipt","conv_id":"c-{conv[i]}","uid":{uid[i]},'
                 f'"msg_ids":["{_uuid(raw[32 * i:32 * i + 16])}","{_uuid(raw[32 * i + 16:32 * i + 32])}"],'
                 f'"ts":{ts[i]}}}')
        out.append(s.encode("ascii"))
    return out, ev


def _utf16_pool(rng: np.random.Generator) -> list[bytes]:
    """Java-like UTF-16LE strings, some with non-Latin characters (which `strings -e l` skips)."""
    k = UTF16_POOL
    pick = rng.integers(0, len(_JAVA_TEXT), size=k).tolist()
    num = rng.integers(1, 1_000_000, size=k).tolist()
    form = rng.integers(0, 3, size=k).tolist()
    out = []
    for i in range(k):
        t = _JAVA_TEXT[pick[i]]
        if form[i] == 1:
            t = f"{t} #{num[i]}"
        elif form[i] == 2:
            t = f"https://api.example.com/v2/conversations/c-{num[i]}?user={t}"
        if len(t) < 10:
            t = f"user: {t} ({num[i]})"
        out.append(t.encode("utf-16-le"))
    return out


def _pointers(rng: np.random.Generator, n: int, base: int, heap_len: int) -> np.ndarray:
    """8-byte values that look like a 64-bit process's pointers: heap, libraries, NULL."""
    lib = np.uint64(0x7F00_0000_0000) + (rng.integers(0, 1 << 40, size=n, dtype=np.uint64) & np.uint64(~7 & (2**64 - 1)))
    heap = np.uint64(base + 16) + (rng.integers(FIRST_CHUNK_FIRST_HEAP, heap_len, size=n, dtype=np.uint64) & np.uint64(~15 & (2**64 - 1)))
    kind = rng.random(n)
    return np.where(kind < 0.5, heap, np.where(kind < 0.9, lib, np.uint64(0)))


class _Heap(NamedTuple):
    base: int          # virtual address the heap would have in the process
    length: int        # bytes in the file (the rw-p part)
    first: bool        # first heap of its arena (carries malloc_state)
    arena_base: int    # base of the arena's first heap
    prev: int          # heap_info.prev
    tail: int          # bytes at the end: top chunk, or freed old top + fenceposts
    fencepost: bool    # a later heap of the same arena follows


def _plan(size: int, seed: int) -> list[_Heap]:
    rng = np.random.default_rng([seed, 0xA7E4A])
    # Heaps are 64 MiB-aligned with a gap between them, as mmap'd reservations are.
    base0 = 0x7F00_0000_0000 + int(rng.integers(0, 1 << 12)) * HEAP_MAX_SIZE
    n = (size + HEAP_MAX_SIZE - 1) // HEAP_MAX_SIZE
    heaps = []
    for h in range(n):
        length = min(HEAP_MAX_SIZE, size - h * HEAP_MAX_SIZE)
        base = base0 + 2 * h * HEAP_MAX_SIZE
        first = h % 2 == 0
        fencepost = first and h + 1 < n
        tail = 16 * int(rng.integers(4, 4096))
        start = FIRST_CHUNK_FIRST_HEAP if first else FIRST_CHUNK_NEXT_HEAP
        tail = min(tail, length - start)
        # The last segment must not be shorter than two minimal chunks: give it to the tail.
        seg_start = max(start, ((length - tail) // SEGMENT) * SEGMENT)
        if 0 < length - tail - seg_start < 2 * MINSIZE:
            tail = length - seg_start
        arena_base = base if first else heaps[-1].arena_base
        heaps.append(_Heap(base, length, first, arena_base, 0 if first else heaps[-1].base,
                           tail, fencepost))
    return heaps


def _heap_header(heap: _Heap, heaps: list[_Heap], acc: _Acc) -> bytes:
    info = np.zeros(HEAP_INFO_SIZE // 8, "<u8")
    info[:5] = [heap.arena_base + HEAP_INFO_SIZE, heap.prev, heap.length, heap.length, PAGE]
    acc.add("heap_info", 1, 0, HEAP_INFO_SIZE)
    if not heap.first:
        return info.tobytes()
    # malloc_state: empty bins point at themselves; top at the arena's last heap's top chunk.
    ar = heap.base + HEAP_INFO_SIZE
    mine = [x for x in heaps if x.arena_base == heap.base]
    last = mine[-1]
    st = np.zeros((FIRST_CHUNK_FIRST_HEAP - HEAP_INFO_SIZE) // 8, "<u8")
    st[0] = 2 << 32                                     # mutex 0, flags NONCONTIGUOUS_BIT
    st[12] = last.base + last.length - last.tail        # top
    bins = BINS_OFFSET // 8
    for i in range(127):
        self_ptr = ar + BINS_OFFSET + 16 * i - 16
        st[bins + 2 * i] = self_ptr
        st[bins + 2 * i + 1] = self_ptr
    tail = bins + 254 + 2                               # after binmap (4 x uint32)
    st[tail] = ar                                       # next (single-arena ring)
    st[tail + 2] = 1                                    # attached_threads
    st[tail + 3] = sum(x.length for x in mine)          # system_mem
    st[tail + 4] = st[tail + 3]                         # max_system_mem
    acc.add("malloc_state", 1, 0, FIRST_CHUNK_FIRST_HEAP - HEAP_INFO_SIZE)
    return info.tobytes() + st.tobytes()


def _heap_tail(heap: _Heap, acc: _Acc) -> bytes:
    buf = np.zeros(heap.tail, np.uint8)
    w = buf.view("<u8")
    if not heap.fencepost:
        # Top chunk: untouched memory, PREV_INUSE set (its neighbour is never a free bin chunk).
        w[1] = heap.tail | PREV_INUSE
        acc.add("chunk_header", 1, 0, 16)
        acc.add("zero", 0, 0, heap.tail - 16)
        return buf.tobytes()
    # sysmalloc moving to a new heap: old top shrunk by two fenceposts, then _int_free'd
    # into the unsorted bin (fd = bk = bin_at(av, 1)).
    old = heap.tail - 32
    unsorted = heap.arena_base + HEAP_INFO_SIZE + BINS_OFFSET - 16
    w[1] = old | PREV_INUSE | NON_MAIN_ARENA
    w[2] = w[3] = unsorted
    w[old // 8] = old                   # fencepost 1: prev_size = freed size, PREV_INUSE clear
    w[old // 8 + 1] = 16
    w[old // 8 + 2] = 16                # fencepost 2: set_foot of fencepost 1
    w[old // 8 + 3] = PREV_INUSE
    acc.add("chunk_header", 3, 0, 48)
    acc.add("free_links", 1, 1, 16)
    acc.add("zero", 0, 0, heap.tail - 64)
    return buf.tobytes()


def _segment(rng: np.random.Generator, seg_len: int, seg_addr: int, heap: _Heap,
             acc: _Acc) -> np.ndarray:
    """``seg_len`` bytes of consecutive malloc chunks starting at address ``seg_addr``."""
    jmsgs, jev = _json_pool(rng)
    umsgs = _utf16_pool(rng)
    texts = jmsgs + umsgs
    tlen = np.fromiter((len(t) for t in texts), np.int64, len(texts))
    toff = np.cumsum(tlen) - tlen
    tpool = np.frombuffer(b"".join(texts), np.uint8)
    # Per pool entry: which accounting key it belongs to.
    tkey = np.concatenate([jev, np.full(len(umsgs), len(EVENTS))])

    kinds, sizes, picks = [], [], []

    def take(kind: int, size: np.ndarray, pick: np.ndarray | None, budget: float) -> None:
        n = int(np.searchsorted(np.cumsum(size), budget, side="right"))
        kinds.append(np.full(n, kind, np.int8))
        sizes.append(size[:n])
        picks.append(pick[:n] if pick is not None else np.full(n, -1, np.int64))

    def text(first: int, count: int, share: float) -> None:
        mean = float(_align16(tlen[first:first + count] + 17).mean())
        n = int(share * seg_len / mean * 1.2) + 8
        pick = first + rng.integers(0, count, size=n)
        take(TEXT, np.maximum(_align16(tlen[pick] + 17), MINSIZE), pick, share * seg_len)

    def loguniform(lo: int, hi: int, share: float, mean: float) -> np.ndarray:
        n = int(share * seg_len / mean * 1.3) + 8
        return _align16(np.exp(rng.uniform(np.log(lo), np.log(hi), size=n)).astype(np.int64))

    text(0, len(jmsgs), JSON_SHARE)
    text(len(jmsgs), len(umsgs), UTF16_SHARE)
    # Log-uniform size means: (hi - lo) / ln(hi / lo).
    take(PTRS, loguniform(32, 2064, PTRS_SHARE, 480), None, PTRS_SHARE * seg_len)
    take(BINARY, loguniform(48, 65552, BINARY_SHARE, 9000), None, BINARY_SHARE * seg_len)
    take(ZERO, loguniform(32, 32768, ZERO_SHARE, 4700), None, ZERO_SHARE * seg_len)

    order = rng.permutation(sum(len(k) for k in kinds))
    kind = np.concatenate(kinds)[order]
    size = np.concatenate(sizes)[order]
    pick = np.concatenate(picks)[order]
    rest = seg_len - int(size.sum())
    if rest >= MINSIZE:     # fill the segment exactly with one zeroed chunk
        kind = np.append(kind, np.int8(ZERO))
        size = np.append(size, rest)
        pick = np.append(pick, -1)
    elif rest:              # 16 bytes left: the last chunk grows (more slack)
        size[-1] += rest
    start = np.cumsum(size) - size
    n = len(size)

    buf = np.zeros(seg_len, np.uint8)
    w = buf.view("<u8")

    # Freed chunks: tcache (small only; neighbours untouched) or a bin (next chunk's
    # PREV_INUSE cleared, prev_size set). Two bin chunks are never adjacent (they would
    # have been coalesced), and the last chunk never is (the next segment starts fresh).
    freed = (kind != ZERO) & (rng.random(n) < FREE_PROB)
    binned = freed & ((size > TCACHE_MAX_CHUNK) | (rng.random(n) >= TCACHE_PROB))
    binned[1:] &= ~binned[:-1]
    binned[-1] = False
    freed &= binned | (size <= TCACHE_MAX_CHUNK)
    over = np.where(freed, np.where(binned & (size >= MIN_LARGE_SIZE), 32, 16), 0)

    # Text payloads (JSON, UTF-16LE), copied from the pool.
    t = np.flatnonzero(kind == TEXT)
    tp = pick[t]
    dst = _span_index(start[t] + 16, tlen[tp])
    src = _span_index(toff[tp], tlen[tp])
    buf[dst] = tpool[src]
    tfreed = freed[t]
    surv = tlen[tp] - over[t]
    keys = [f"json:{e}" for e in EVENTS] + ["utf16le"]
    cnt = np.bincount(tkey[tp], minlength=len(keys))
    fcnt = np.bincount(tkey[tp], weights=tfreed, minlength=len(keys))
    byt = np.bincount(tkey[tp], weights=surv, minlength=len(keys))
    for i, key in enumerate(keys):
        acc.add(key, cnt[i], fcnt[i], byt[i])
    acc.add("slack", 0, 0, int((size[t] - 16 - tlen[tp]).sum()))

    # Pointer arrays.
    p = np.flatnonzero(kind == PTRS)
    widx = _span_index(start[p] // 8 + 2, (size[p] - 16) // 8)
    w[widx] = _pointers(rng, len(widx), heap.base, heap.length)
    acc.add("pointers", len(p), int(freed[p].sum()), int((size[p] - 16 - over[p]).sum()))

    # Random binary (compressed data, key material).
    b = np.flatnonzero(kind == BINARY)
    bidx = _span_index(start[b] + 16, size[b] - 16)
    buf[bidx] = np.frombuffer(rng.bytes(len(bidx)), np.uint8)
    acc.add("binary", len(b), int(freed[b].sum()), int((size[b] - 16 - over[b]).sum()))

    z = kind == ZERO
    acc.add("zero", int(z.sum()), 0, int((size[z] - 16).sum()))

    # fd/bk (and fd_nextsize/bk_nextsize) over the first bytes of freed chunks.
    f = np.flatnonzero(freed)
    fw = start[f] // 8 + 2
    links = _pointers(rng, 4 * len(f), heap.base, heap.length).reshape(-1, 4)
    links[links == 0] = np.uint64(heap.arena_base + HEAP_INFO_SIZE + BINS_OFFSET)
    for j in range(4):
        sel = over[f] > 8 * j
        w[fw[sel] + j] = links[sel, j]
    acc.add("free_links", len(f), len(f), int(over.sum()))

    # Chunk headers last: prev_size only after a bin chunk.
    prev_bin = np.zeros(n, bool)
    prev_bin[1:] = binned[:-1]
    hw = start // 8
    w[hw] = np.where(prev_bin, np.roll(size, 1), 0).astype(np.uint64)
    w[hw + 1] = (size | NON_MAIN_ARENA | np.where(prev_bin, 0, PREV_INUSE)).astype(np.uint64)
    acc.add("chunk_header", n, 0, 16 * n)
    return buf


def _write(out: BinaryIO, size: int, seed: int) -> dict[str, PayloadTotals]:
    acc = _Acc()
    heaps = _plan(size, seed)
    for h, heap in enumerate(heaps):
        head = _heap_header(heap, heaps, acc)
        out.write(head)
        pos = len(head)
        end = heap.length - heap.tail
        s = 0
        while pos < end:
            seg_end = min(end, (pos // SEGMENT + 1) * SEGMENT)
            rng = np.random.default_rng([seed, h, s, GEN_VERSION])
            out.write(memoryview(_segment(rng, seg_end - pos, heap.base + pos, heap, acc)))
            pos = seg_end
            s += 1
        out.write(_heap_tail(heap, acc))
    return acc.result()


def generate(path: str | os.PathLike[str], size_bytes: int, seed: int = 0,
             force: bool = True) -> dict[str, PayloadTotals]:
    """Write a ``size_bytes`` arena-like dump to ``path``; return what went in, per kind.

    ``size_bytes`` must be a positive multiple of 4096 and at least 64 KiB. The
    content depends only on (size_bytes, seed, GEN_VERSION). The file appears
    atomically (written under a temporary name, then renamed); with
    ``force=False`` an existing ``path`` raises FileExistsError.

    Keys of the result: ``json:<event>`` for each of EVENTS, ``utf16le``,
    ``pointers``, ``binary``, ``zero``, ``slack`` (unused tail of text chunks),
    ``free_links``, ``chunk_header``, ``heap_info``, ``malloc_state``.
    """
    if size_bytes < 64 * 1024 or size_bytes % PAGE:
        raise ValueError(f"size must be a multiple of {PAGE} and at least 64 KiB, not {size_bytes}")
    path = Path(path)
    if not force and path.exists():
        raise FileExistsError(f"{path} exists (use --force to replace it)")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        with open(tmp, "wb") as out:
            totals = _write(out, size_bytes, seed)
        if os.path.getsize(tmp) != size_bytes:  # pragma: no cover - a bug, not a condition
            raise AssertionError(f"generated {os.path.getsize(tmp)} bytes, wanted {size_bytes}")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return totals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate a deterministic glibc-arena-like dump.")
    parser.add_argument("out", help="file to write")
    parser.add_argument("--size", default="64M", help="64M, 1G, 4G, ... (binary units; default 64M)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="replace OUT if it exists")
    parser.add_argument("-q", "--quiet", action="store_true", help="do not print the per-kind totals")
    args = parser.parse_args(argv)
    try:
        size = parse_size(args.size)
        totals = generate(args.out, size, args.seed, force=args.force)
    except (ValueError, OSError) as exc:
        print(f"gen_dump: {exc}", file=sys.stderr)
        return 1
    if not args.quiet:
        print(f"{'kind':<22}{'count':>12}{'freed':>10}{'bytes':>14}{'share':>8}")
        for key, t in totals.items():
            print(f"{key:<22}{t.count:>12}{t.freed:>10}{t.bytes:>14}{t.bytes / size:>8.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Property tests of the glibc heap walker over synthetic heaps.

``build_heap`` mirrors glibc's layout (malloc/arena.c, malloc/malloc.c): heap_info at the
base of a non-main heap (48 bytes since 2.35, 32 before), the arena's malloc_state after
it (fastbinsY, top, bins), chunks aligned to 16 with PREV_INUSE boundary tags and footers
on free chunks, a tcache_perthread_struct as the first chunk with safe-linked entries and
the tcache key, fastbins safe-linked, bins doubly linked through their headers, and the
top chunk to the end of the heap. Corrupted variants break size fields and bytes.

Buffers are placed flush against a PROT_NONE guard page, so any read past the end
crashes the test run instead of passing silently.
"""

from __future__ import annotations

import ctypes
import mmap
import struct
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, strategies as st

from offheap import _impl
from offheap import heap as H

PAGE = 4096
PROT_NONE = 0


# -- guarded buffers ------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_keep: list = []


def guarded(data: bytes) -> memoryview:
    """A read-only view of ``data`` whose last byte is followed by an unreadable page."""
    pages = -(-max(len(data), 1) // PAGE) + 1
    total = pages * PAGE
    addr = _libc.mmap(None, total, mmap.PROT_READ | mmap.PROT_WRITE,
                      mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
    assert addr not in (None, ctypes.c_void_p(-1).value)
    assert _libc.mprotect(addr + total - PAGE, PAGE, PROT_NONE) == 0
    start = addr + total - PAGE - len(data)
    arr = (ctypes.c_char * max(len(data), 1)).from_address(start if data else addr)
    if data:
        ctypes.memmove(start, data, len(data))
    _keep.append((addr, total, arr))
    if len(_keep) > 64:  # keep a bounded number of mappings alive
        a, t, _ = _keep.pop(0)
        _libc.munmap(a, t)
    return memoryview(arr).cast("B")[:len(data)].toreadonly()


# -- a synthetic glibc heap -----------------------------------------------------------

def _largebin_index(sz: int) -> int:
    if (sz >> 6) <= 48:
        return 48 + (sz >> 6)
    if (sz >> 9) <= 20:
        return 91 + (sz >> 9)
    if (sz >> 12) <= 10:
        return 110 + (sz >> 12)
    if (sz >> 15) <= 4:
        return 119 + (sz >> 15)
    if (sz >> 18) <= 2:
        return 124 + (sz >> 18)
    return 126


@dataclass
class Synthetic:
    data: bytes
    base: int
    kind: str
    offsets: list[int]
    sizes: list[int]
    states: list[int]
    arena_state: bytes | None = None   # the main arena's malloc_state (libc's main_arena)
    arena_address: int | None = None


MAIN_ARENA = 0x7FFFF7E19C60  # where libc's main_arena would be


def build_heap(plan, kind: str = "arena", hdr: int = 48, mangle: bool = True,
               base: int = 0x7F0000000000, key: int = 0x5A5A1234DEADBEEF, unsorted_every: int = 3,
               main_state: bool = False):
    """Lay out chunks as glibc does. ``plan``: list of (chunk size, wanted state).

    ``main_state`` (kind "main"): also build main_arena's malloc_state, apart from the
    heap as in libc's .data, with the fastbins and bins that point into the heap."""
    if kind == "main":
        base = 0x555555559000
    # Normalise the plan the way glibc would leave it: bin chunks never touch each other
    # (they coalesce), tcache/fast chunks have sizes their bins hold.
    chunks: list[list[int]] = []
    for size, want in plan:
        if want == H.FAST and size > 0xB0:
            want = H.IN_USE
        if want == H.TCACHE and size > 0x410:
            want = H.IN_USE
        if want == H.SMALL and chunks and chunks[-1][1] == H.SMALL:
            chunks[-1][0] += size
            continue
        chunks.append([size, want])
    if chunks and chunks[-1][1] == H.SMALL:
        chunks[-1][1] = H.IN_USE  # a bin chunk never borders top
    ms_off = hdr if kind == "arena" else None
    start = ((hdr + 0x898 + 15) & ~15) if kind == "arena" else 0
    layout = [(0x290, -1)] + [(s, w) for s, w in chunks]  # -1: the tcache struct
    pos = start
    placed = []
    for size, want in layout:
        placed.append((pos, size, want))
        pos += size
    top_off = pos
    end = -(-(top_off + 32) // PAGE) * PAGE
    buf = bytearray(end)
    w = lambda off, v: struct.pack_into("<Q", buf, off, v & ((1 << 64) - 1))
    ms_buf = bytearray(0x898)
    with_state = kind == "arena" or main_state
    ms_base = base if kind == "arena" else MAIN_ARENA
    ms_buf_w = (lambda off, v: w(off, v)) if kind == "arena" else \
        (lambda off, v: struct.pack_into("<Q", ms_buf, off, v & ((1 << 64) - 1)))
    nma = 4 if kind == "arena" else 0

    def mangled(at: int, ptr: int) -> int:
        return ((base + at) >> 12) ^ ptr if mangle else ptr

    # Headers and boundary tags.
    prev_free = False
    prev_size = 0
    for off, size, want in placed + [(top_off, end - top_off, H.TOP)]:
        flags = 0 if prev_free else 1
        if want in (H.IN_USE, H.TCACHE, H.FAST, -1):
            flags |= nma
        if prev_free:
            w(off, prev_size)
        w(off + 8, size | flags)
        for i in range(off + 16, min(off + size, end) - 8, 64) if want != -1 else ():  # payload
            buf[i:i + 8] = b"payload!"
        prev_free = want == H.SMALL
        prev_size = size
    # Lists.
    tc_off = placed[0][0]
    by_size: dict[int, list[int]] = {}
    fast: dict[int, list[int]] = {}
    bins: dict[int, list[int]] = {}
    expected = []
    for n_, (off, size, want) in enumerate(placed[1:]):
        state = want
        if want == H.TCACHE:
            by_size.setdefault(size, []).append(off)
        elif want == H.FAST:
            if with_state:
                fast.setdefault(size, []).append(off)
            else:
                state = H.IN_USE  # the main arena's fastbins live in libc, not in the dump
        elif want == H.SMALL:
            idx = 1 if n_ % unsorted_every == 0 else (size >> 4 if size < 1024 else _largebin_index(size))
            bins.setdefault(idx, []).append(off)
            if with_state:
                state = H.UNSORTED if idx == 1 else H.SMALL if idx < 64 else H.LARGE
            else:
                state = H.SMALL if size < 1024 else H.LARGE
        expected.append((off, size, state))
    for size, offs in by_size.items():
        ti = (size - 32) // 16
        struct.pack_into("<H", buf, tc_off + 16 + 2 * ti, len(offs))
        w(tc_off + 16 + 128 + 8 * ti, base + offs[0] + 16)
        for a, b in zip(offs, offs[1:] + [None]):
            w(a + 16, mangled(a + 16, base + b + 16 if b is not None else 0))
            w(a + 24, key)
    if kind == "arena":
        w(0, base + hdr)  # ar_ptr
        w(8, 0)           # prev
        w(16, end)        # size
        w(24, end)        # mprotect_size
        if hdr == 48:
            w(32, PAGE)   # pagesize
    if with_state:
        ms = ms_off if kind == "arena" else 0   # offset in the heap, or in ms_buf
        for size, offs in fast.items():
            ms_buf_w(ms + 16 + 8 * ((size >> 4) - 2), base + offs[0])
            for a, b in zip(offs, offs[1:] + [None]):
                w(a + 16, mangled(a + 16, base + b if b is not None else 0))
        bins0 = ms + 112
        for i in range(1, 127):
            header = ms_base + bins0 + 16 * (i - 1) - 16
            offs = bins.get(i, [])
            ptrs = [base + o for o in offs]
            ms_buf_w(bins0 + 16 * (i - 1), ptrs[0] if ptrs else header)
            ms_buf_w(bins0 + 16 * (i - 1) + 8, ptrs[-1] if ptrs else header)
            for j, o in enumerate(offs):
                w(o + 16, ptrs[j + 1] if j + 1 < len(ptrs) else header)
                w(o + 24, ptrs[j - 1] if j > 0 else header)
        ms_buf_w(ms + 96, base + top_off)
        ms_buf_w(ms + 2184, end)  # system_mem
    offsets = [tc_off] + [e[0] for e in expected] + [top_off]
    sizes = [0x290] + [e[1] for e in expected] + [end - top_off]
    states = [H.IN_USE] + [e[2] for e in expected] + [H.TOP]
    if kind == "main" and main_state:
        return Synthetic(bytes(buf), base, kind, offsets, sizes, states, bytes(ms_buf), MAIN_ARENA)
    return Synthetic(bytes(buf), base, kind, offsets, sizes, states)


SIZES = st.sampled_from([0x20, 0x30, 0x40, 0x80, 0xB0, 0x110, 0x290, 0x400, 0x410, 0x420, 0x1000, 0x2010])
STATES = st.sampled_from([H.IN_USE, H.IN_USE, H.TCACHE, H.FAST, H.SMALL])
PLANS = st.lists(st.tuples(SIZES, STATES), min_size=0, max_size=40)
# ("main", 1): [heap] plus main_arena's malloc_state given apart, as read from libc.
KINDS = st.sampled_from([("arena", 48), ("arena", 32), ("main", 0), ("main", 1)])


def _build(plan, kind_hdr, **kw) -> Synthetic:
    kind, hdr = kind_hdr
    if kind == "main":
        return build_heap(plan, "main", main_state=hdr == 1, **kw)
    return build_heap(plan, kind, hdr, **kw)


def _walk(s: Synthetic, data=None, base="given"):
    return H.walk_heap(guarded(data if data is not None else s.data),
                       base_address=s.base if base == "given" else None, kind=s.kind,
                       arena_state=s.arena_state, arena_address=s.arena_address)


@given(PLANS, KINDS)
def test_valid_heaps_walk_exactly(plan, kind_hdr):
    kind, hdr = kind_hdr
    s = _build(plan, kind_hdr)
    w = _walk(s)
    assert w.corruption is None, w.corruption
    assert w.end_reason == "end of heap"
    assert w.chunks.offset.tolist() == s.offsets
    assert w.chunks.size.tolist() == s.sizes
    assert w.chunks.state.tolist() == s.states
    listed = np.isin(w.chunks.state, [H.TCACHE, H.FAST, H.UNSORTED])
    assert (w.chunks.certainty[listed] == H.CERTAIN).all()
    assert w.walked_bytes == sum(s.sizes)
    assert w.layout.heap_info_size == (hdr if kind == "arena" else 0)


@given(PLANS.filter(lambda p: any(w == H.TCACHE and s <= 0x410 for s, w in p)))
def test_safe_linking_is_detected_both_ways(plan):
    for mangle in (True, False):
        s = build_heap(plan, "arena", 32, mangle=mangle)
        w = _walk(s)
        assert w.layout.safe_linking is mangle
        assert w.chunks.state.tolist() == s.states


@given(PLANS, st.data())
def test_base_is_found_without_being_told(plan, data):
    s = build_heap(plan, "arena", 48)
    w = _walk(s, base=None)
    assert w.base_address == s.base
    assert w.chunks.state.tolist() == s.states


@given(PLANS.filter(lambda p: len(p) > 2), KINDS, st.data())
def test_broken_size_field_is_reported_where_it_is(plan, kind_hdr, data):
    kind, hdr = kind_hdr
    s = _build(plan, kind_hdr)
    j = data.draw(st.integers(1, len(s.offsets) - 1))
    off = s.offsets[j]
    bad = data.draw(st.sampled_from([0, 8, 0x10 + 8, 0x33, 2, 1 << 40, 0xFFFFFFFFFFFFFFF0]))
    raw = bytearray(s.data)
    struct.pack_into("<Q", raw, off + 8, bad | (struct.unpack_from("<Q", raw, off + 8)[0] & 1))
    w = _walk(s, bytes(raw))
    assert w.corruption is not None
    assert w.corruption.offset == off
    assert w.corruption.address == s.base + off
    # Chunks before the broken one keep their offsets and sizes.
    assert w.chunks.offset.tolist() == s.offsets[:j]
    assert w.chunks.size.tolist() == s.sizes[:j]


@given(PLANS.filter(lambda p: any(w == H.SMALL for _, w in p)), st.data())
def test_footer_mismatch_is_reported(plan, data):
    s = build_heap(plan, "arena", 48)
    free = [i for i, st_ in enumerate(s.states) if st_ in (H.SMALL, H.LARGE, H.UNSORTED)]
    if not free:
        return
    i = data.draw(st.sampled_from(free))
    raw = bytearray(s.data)
    struct.pack_into("<Q", raw, s.offsets[i + 1], s.sizes[i] + 16)
    w = _walk(s, bytes(raw))
    assert w.corruption is not None and w.corruption.offset == s.offsets[i]
    assert "prev_size" in w.corruption.reason


@given(PLANS, KINDS, st.data())
def test_truncated_dump_is_not_corruption_elsewhere(plan, kind_hdr, data):
    kind, hdr = kind_hdr
    s = _build(plan, kind_hdr)
    cut = data.draw(st.integers(1, len(s.data) - 1))
    w = H.walk_heap(guarded(s.data[:cut]), base_address=s.base, kind="main" if kind == "main" else "auto",
                    arena_state=s.arena_state, arena_address=s.arena_address)
    assert (w.chunks.offset + w.chunks.size <= cut).all()


@given(PLANS, KINDS, st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), max_size=30))
def test_random_byte_damage_never_crashes_and_kernels_agree(plan, kind_hdr, flips):
    kind, hdr = kind_hdr
    s = _build(plan, kind_hdr)
    raw = bytearray(s.data)
    for pos, val in flips:
        raw[pos % len(raw)] = val
    data = bytes(raw)
    results = []
    for impl in _impls():
        _impl.select(impl)
        w = H.walk_heap(guarded(data), base_address=s.base, kind="auto",
                        arena_state=s.arena_state, arena_address=s.arena_address)
        assert (w.chunks.offset >= 0).all() and (w.chunks.offset + w.chunks.size <= len(data)).all()
        if w.corruption is not None:
            assert 0 <= w.corruption.offset <= len(data)
        results.append((w.chunks.offset.tolist(), w.chunks.size.tolist(), w.chunks.state.tolist(),
                        w.chunks.certainty.tolist(), w.corruption, w.anomalies, w.verdict))
    assert all(r == results[0] for r in results)


def _impls():
    return ["python"] if not _impl.extension_available() or _impl.FORCED_PURE else ["cython", "python"]


@given(st.binary(max_size=4096), st.integers(-64, 5000), st.integers(-64, 5000))
def test_kernel_equals_twin_on_any_bytes(data, start, end):
    from offheap import _heap_py
    mv = guarded(data)
    got = _impl.kernels().heap_walk(mv, start, end)
    want = _heap_py.heap_walk(mv, start, end)
    for a, b in zip(got, want):
        assert np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b


@given(st.binary(min_size=64, max_size=2048), st.lists(st.integers(0, (1 << 64) - 1), min_size=1, max_size=8),
       st.booleans(), st.sampled_from([0, 16]), st.integers(0, 40))
def test_follow_equals_twin_on_any_bytes(data, heads, mangle, adjust, link_off):
    from offheap import _heap_py
    base = 0x10000
    mv = guarded(data)
    offs = np.arange(0, len(data) - 31, 32, dtype=np.int64)
    sizes = np.full(len(offs), 32, np.int64)
    heads = [base + (h % (len(data) + 64)) & ~7 if i % 2 else h for i, h in enumerate(heads)]
    m = len(heads)
    args = (np.array(heads, np.uint64), np.zeros(m, np.uint64), np.full(m, 50, np.int64),
            np.zeros(m, np.int64), np.arange(1, m + 1, dtype=np.uint8))
    marks_a = np.zeros(len(offs), np.uint8)
    marks_b = np.zeros(len(offs), np.uint8)
    ph_a = np.full(2 * m, -7, np.int64)
    ph_b = np.full(2 * m, -7, np.int64)
    ra = _impl.kernels().heap_follow(mv, base, offs, sizes, *args, adjust, link_off, mangle, marks_a, ph_a)
    rb = _heap_py.heap_follow(mv, base, offs, sizes, *args, adjust, link_off, mangle, marks_b, ph_b)
    assert tuple(ra) == tuple(rb)
    assert np.array_equal(marks_a, marks_b)
    assert np.array_equal(ph_a, ph_b)
    assert ph_a[0::2].sum() == ra[0] and set(ph_a[1::2].tolist()) <= {0, 1, 2, 3}


def test_follow_rejects_unsorted_offsets():
    k = _impl.kernels()
    z = np.zeros(1, np.uint64)
    with pytest.raises(ValueError):
        k.heap_follow(b"\0" * 64, 0, np.array([32, 0], np.int64), np.array([32, 32], np.int64), z, z,
                      np.ones(1, np.int64), np.zeros(1, np.int64), np.ones(1, np.uint8), 0, 16, False,
                      np.zeros(2, np.uint8))


def test_attribute_assigns_strings_to_chunks_and_types():
    s = build_heap([(0x110, H.IN_USE), (0x400, H.SMALL), (0x40, H.IN_USE)], "arena", 48)
    w = _walk(s)
    c = w.chunks
    # Two type-0 strings in the in-use chunk, one type-1 in the free chunk, one outside all.
    offs = np.array([c.offset[1] + 16, c.offset[1] + 100, c.offset[2] + 20, 8])
    lens = np.array([50, 30, 200, 10])
    types = np.array([0, 0, 1, 1])
    a = H.attribute(c, offs, lens, types)
    assert a.string_bytes[0, H.IN_USE] == 80
    assert a.string_bytes[1, c.state[2]] == 200
    assert a.unattributed_bytes == 10
    assert a.chunk_bytes[0, H.IN_USE] == c.size[1]
    assert a.chunk_counts.sum() == 2
    assert a.chunk_type.tolist()[:4] == [-1, 0, 1, -1]


def test_verdicts():
    live = build_heap([(0x110, H.IN_USE)] * 50 + [(0x110, H.SMALL)] * 2 + [(0x40, H.IN_USE)], "arena", 48)
    freed = build_heap([(0x1000, H.SMALL), (0x40, H.IN_USE)] * 20, "arena", 48)
    assert _walk(live).verdict.startswith("live: ")
    assert _walk(freed).verdict.startswith("retained: ")
    assert "malloc_trim" in _walk(freed).verdict


def test_bad_inputs_are_precise_errors():
    from offheap.errors import EmptyInputError, InputError
    with pytest.raises(EmptyInputError):
        H.walk_heap(b"")
    with pytest.raises(InputError):
        H.walk_heap(b"\0" * 4096, kind="arena")
    with pytest.raises(InputError):
        H.walk_heap(b"\0" * 64, kind="bogus")
    with pytest.raises(InputError):
        H.walk_heap(12345)


def test_cli_reports_verdict_states_and_corruption(tmp_path, capsys):
    from offheap.cli import main
    s = build_heap([(0x1000, H.SMALL), (0x40, H.IN_USE), (0x110, H.TCACHE)] * 5, "arena", 48)
    good = tmp_path / "arena.dump"
    good.write_bytes(s.data)
    assert main(["heap", str(good)]) == 0
    out = capsys.readouterr().out
    assert "retained: " in out and "tcache" in out and "top chunk 0x" in out
    raw = bytearray(s.data)
    struct.pack_into("<Q", raw, s.offsets[3] + 8, 0x29)
    bad = tmp_path / "bad.dump"
    bad.write_bytes(bytes(raw))
    assert main(["heap", str(bad), "--base", hex(s.base)]) == 0
    assert f"CORRUPTION: chunk size not a multiple of 16 at 0x{s.base + s.offsets[3]:x}" in capsys.readouterr().out
    assert main(["heap", str(tmp_path / "missing")]) == 1
    assert main(["heap", str(good), "--kind", "arena", "--base", "0x1000"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and "Traceback" not in err


# -- the main arena's malloc_state, consistency checks ----------------------------------

@given(PLANS.filter(lambda p: any(w == H.FAST and s <= 0xB0 for s, w in p)))
def test_main_arena_state_makes_fastbin_chunks_certain(plan):
    s = build_heap(plan, "main", main_state=True)
    w = _walk(s)
    assert w.arena_state_source == "given"
    assert w.chunks.state.tolist() == s.states
    fast = w.chunks.state == H.FAST
    assert fast.any() and (w.chunks.certainty[fast] == H.CERTAIN).all()
    assert w.anomalies == 0, w.anomaly_kinds
    # Without it the same chunks are only assumed in use.
    bare = H.walk_heap(guarded(s.data), base_address=s.base, kind="main")
    assert (bare.chunks.state[fast] == H.IN_USE).all()
    assert (bare.chunks.certainty[fast] == H.ASSUMED).all()


@given(PLANS, st.lists(st.tuples(st.integers(0, 0x897), st.integers(0, 255)), min_size=1, max_size=40))
def test_damaged_malloc_state_never_crashes_and_kernels_agree(plan, flips):
    s = build_heap(plan, "main", main_state=True)
    raw = bytearray(s.arena_state)
    for pos, val in flips:
        raw[pos] = val
    results = []
    for impl in _impls():
        _impl.select(impl)
        w = H.walk_heap(guarded(s.data), base_address=s.base, kind="main",
                        arena_state=guarded(bytes(raw)), arena_address=s.arena_address)
        assert w.anomalies == sum(w.anomaly_kinds.values()) >= 0
        assert w.chunks.offset.tolist() == s.offsets  # the chunk walk itself is untouched
        results.append((w.chunks.state.tolist(), w.chunks.certainty.tolist(), w.anomaly_kinds))
    assert all(r == results[0] for r in results)


def _bin_slot(idx: int) -> int:
    return 48 + 112 + 16 * (idx - 1)  # offset of bins[2(idx-1)] in a hdr-48 first heap


def test_chunk_in_the_wrong_bin_is_counted_not_trusted():
    s = build_heap([(0x110, H.IN_USE), (0x200, H.SMALL), (0x40, H.IN_USE)], "arena", 48, unsorted_every=99)
    i = s.states.index(H.SMALL)
    chunk = s.base + s.offsets[i]
    raw = bytearray(s.data)
    q = lambda off, v: struct.pack_into("<Q", raw, off, v)
    hdr = lambda idx: s.base + _bin_slot(idx) - 16
    assert struct.unpack_from("<Q", raw, _bin_slot(0x20))[0] == chunk  # smallbin 32 holds 0x200
    q(_bin_slot(0x20), hdr(0x20)); q(_bin_slot(0x20) + 8, hdr(0x20))     # empty bin 32
    q(_bin_slot(0x21), chunk); q(_bin_slot(0x21) + 8, chunk)             # 0x200 in bin 33
    q(s.offsets[i] + 16, hdr(0x21)); q(s.offsets[i] + 24, hdr(0x21))
    w = _walk(s, bytes(raw))
    assert w.anomaly_kinds == {"bin index": 1}
    assert w.chunks.state[i] == H.SMALL and w.chunks.certainty[i] == H.LIKELY
    assert _walk(s).anomalies == 0


@pytest.mark.parametrize("delta", [1, -1])
def test_tcache_count_differing_from_its_list_is_counted(delta):
    s = build_heap([(0x110, H.TCACHE), (0x40, H.IN_USE), (0x110, H.TCACHE), (0x40, H.IN_USE)], "arena", 48)
    tc = s.offsets[0]
    at = tc + 16 + 2 * ((0x110 - 32) // 16)
    raw = bytearray(s.data)
    assert struct.unpack_from("<H", raw, at)[0] == 2
    struct.pack_into("<H", raw, at, 2 + delta)
    w = _walk(s, bytes(raw))
    assert w.anomaly_kinds.get("tcache count") == 1, w.anomaly_kinds
    assert _walk(s).anomaly_kinds == {}


def test_arena_state_input_errors():
    from offheap.errors import InputError
    s = build_heap([(0x110, H.FAST)], "main", main_state=True)
    for bad in ({"arena_state": s.arena_state}, {"arena_state": b"x" * 100, "arena_address": MAIN_ARENA},
                {"arena_state": 5, "arena_address": MAIN_ARENA},
                {"arena_state": s.arena_state, "arena_address": MAIN_ARENA + 1}):
        with pytest.raises(InputError):
            H.walk_heap(s.data, base_address=s.base, kind="main", **bad)


def test_later_heap_takes_its_arenas_state_only():
    from offheap.errors import InputError
    first = build_heap([(0x40, H.FAST), (0x110, H.IN_USE)], "arena", 48)
    # A later heap: heap_info with prev != 0 and ar_ptr into the first heap, then chunks.
    later = bytearray(0x2000)
    struct.pack_into("<5Q", later, 0, first.base + 48, first.base, 0x2000, 0x2000, PAGE)
    struct.pack_into("<Q", later, 48 + 8, 0x40 | 5)
    struct.pack_into("<Q", later, 48 + 0x40 + 8, (0x2000 - 48 - 0x40) | 1)
    w = H.walk_heap(bytes(later), base_address=first.base + H.HEAP_MAX_SIZE, kind="arena",
                    arena_state=first.data[48:48 + 0x898], arena_address=first.base + 48)
    assert not w.layout.first_heap and w.arena_state_source == "given"
    assert w.chunks.size.tolist() == [0x40, 0x2000 - 48 - 0x40]
    with pytest.raises(InputError):
        H.walk_heap(bytes(later), base_address=first.base + H.HEAP_MAX_SIZE, kind="arena",
                    arena_state=first.data[48:48 + 0x898], arena_address=MAIN_ARENA)


@given(st.binary(max_size=3000), st.integers(0, 40), st.lists(st.booleans(), min_size=126, max_size=126))
def test_find_malloc_states_finds_an_embedded_main_arena(noise, pad, nonempty):
    from offheap.main_arena import find_malloc_states
    at = 8 * pad
    base = 0x7F0000001000
    blob = bytearray(noise[:at].ljust(at, b"\x01") + bytes(0x898) + noise[at:])
    addr = base + at
    for i in range(126):
        hdr = addr + 96 + 16 * i
        fd = 0x5555_0000_0000 + 0x40 * i if nonempty[i] else hdr
        struct.pack_into("<QQ", blob, at + 112 + 16 * i, fd, fd)
    if sum(not b for b in nonempty) < 8:
        return
    found = find_malloc_states(bytes(blob), base)
    assert (at, 0x898) in found
    assert (at + 8, 0x890) not in found


def test_cli_uses_a_saved_main_arena(tmp_path, capsys):
    from offheap.cli import main
    from offheap.main_arena import MainArena, save_main_arena
    s = build_heap([(0x40, H.FAST), (0x110, H.IN_USE)] * 3, "main", main_state=True)
    dump = tmp_path / "heap.dump"
    dump.write_bytes(s.data)
    assert main(["heap", str(dump), "--kind", "main", "--base", hex(s.base)]) == 0
    bare = capsys.readouterr().out
    assert "fastbin chunks count as in use" in bare
    save_main_arena(MainArena(s.arena_address, s.arena_state, 0x898, 0, 0, "test"), tmp_path)
    assert main(["heap", str(dump), "--kind", "main", "--base", hex(s.base)]) == 0
    out = capsys.readouterr().out
    assert f"malloc_state at 0x{MAIN_ARENA:x}" in out
    row = next(line for line in out.splitlines() if line.strip().startswith("fastbin"))
    assert row.split()[1:4] == ["192", "3", "3"]  # bytes, chunks, certain


def test_closing_fencepost_header_at_the_very_end_is_a_clean_end():
    """A full heap whose old top had < MINSIZE left ends in a 0|PREV_INUSE header in its
    last 16 bytes (glibc sysmalloc); seen in a real JVM's arena. Elsewhere a zero size
    is corruption."""
    import struct

    from offheap import _impl

    def chunk(size: int, flags: int = 1) -> bytes:
        return struct.pack("<QQ", 0, size | flags) + b"\x00" * (size - 16)

    body = chunk(0x40) + chunk(0x30) + chunk(0x20)
    heap = body + struct.pack("<QQ", 0, 0 | 1)                 # the closing header
    offs, sizes, kinds, status, where = _impl.kernels().heap_walk(heap, 0, len(heap))
    assert status == 1 and int(where) == len(body)            # HEAP_END_FENCEPOST
    assert list(map(int, sizes)) == [0x40, 0x30, 0x20]
    inner = body + struct.pack("<QQ", 0, 0 | 1) + chunk(0x20)
    status = _impl.kernels().heap_walk(inner, 0, len(inner))[3]
    assert status == 2                                         # HEAP_BAD_SIZE: not at the end

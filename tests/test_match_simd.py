"""Property tests: ac_scan's AVX-512 fingerprint search (small pattern sets) gives
exactly what the portable paths give (same offsets, ids, order and carried state,
window by window) and what pyahocorasick's iter() finds."""

from __future__ import annotations

import mmap
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from offheap.matching import build_tables
from ac_reference import pyahocorasick_matches

pytestmark = pytest.mark.single_impl

_scan = pytest.importorskip("offheap._scan")

FIVE = [b'"unread_count"', b'"presence"', b'"message_new"', b'"typing"', b'"read_receipt"']
# bytes a dump is full of: a 1- or 2-byte pattern of only these keeps the other paths
COMMON = set(b"\x00\xff 0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _path(tables) -> str:
    return _scan._ac_path(tables.trans, tables.classes, tables.ncls, tables.out_ptr,
                          tables.out_ids, tables.pat_len)


def _simd_available() -> bool:
    if _scan._simd_level() != "avx512":
        return False
    return _path(build_tables(FIVE)) == "simd"


requires_simd = pytest.mark.skipif(
    not _simd_available(), reason="the CPU lacks AVX-512 F/BW/VBMI/BMI2 or OFFHEAP_NO_SIMD=1")


def scan_windows(tables, data, edges, simd: bool):
    """One ac_scan per window [edges[k], edges[k+1]), the state carried; every
    window's (offsets, ids, state)."""
    previous = _scan._set_simd(simd)
    try:
        state = 0
        out = []
        for begin, end in zip(edges, edges[1:]):
            o, i, state = _scan.ac_scan(data, begin, end, *tables.kernel_args(), state, 1000)
            out.append((o.tolist(), i.tolist(), state))
        return out
    finally:
        _scan._set_simd(previous)


def assert_paths_agree(patterns, data, cuts):
    tables = build_tables(patterns)
    previous = _scan._set_simd(True)
    try:
        assert _path(tables) == "simd", patterns
    finally:
        _scan._set_simd(previous)
    edges = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    fast = scan_windows(tables, data, edges, True)
    portable = scan_windows(tables, data, edges, False)
    assert fast == portable
    got = sorted((o - 1000, i) for offs, ids, _ in fast for o, i in zip(offs, ids))
    assert got == pyahocorasick_matches(patterns, data)


# Overlap-prone bytes: quotes and braces (JSON), a few letters, bytes >= 0x80 (the
# filter folds them onto 0x00-0x7f) and NUL.
ALPHABET = b'"{ab\x80\xa2\xfe\x00'


def _fix_short(p: bytes) -> bytes:
    # a short pattern of common bytes alone takes the other paths (see _ac_simd_plan)
    return b'"' + p if len(p) <= 2 and all(b in COMMON for b in p) else p


seeds_st = st.lists(st.lists(st.sampled_from(list(ALPHABET)), min_size=1, max_size=40).map(bytes),
                    min_size=1, max_size=4)


@st.composite
def pattern_sets(draw):
    """1..64 patterns cut from a few seed strings: shared prefixes, patterns that are
    prefixes or suffixes of others, duplicates, runs like 'aaaa'."""
    seeds = draw(seeds_st)
    if draw(st.booleans()):
        seeds.append(bytes([draw(st.sampled_from(list(ALPHABET)))]) * draw(st.integers(1, 40)))
    n = draw(st.integers(1, 64))
    pats = []
    for _ in range(n):
        seed = draw(st.sampled_from(seeds))
        a = draw(st.integers(0, len(seed) - 1))
        b = draw(st.integers(a + 1, min(len(seed), a + 40)))
        pats.append(_fix_short(seed[a:b]))
    return pats


@st.composite
def haystacks(draw, patterns):
    """Random bytes of the alphabet with patterns planted, or JSON-like records."""
    if draw(st.booleans()):
        parts = []
        for _ in range(draw(st.integers(0, 60))):
            if draw(st.booleans()):
                parts.append(draw(st.sampled_from(patterns)))
            else:
                parts.append(draw(st.lists(st.sampled_from(list(ALPHABET)), max_size=30).map(bytes)))
        return b"".join(parts)
    recs = []
    for _ in range(draw(st.integers(0, 40))):
        key = draw(st.sampled_from(patterns))
        val = draw(st.sampled_from([b"1", b'"x"', b"null", key]))
        recs.append(b"{" + key + b": " + val + b", \"ts\": 17}\x00\x00")
    return b"".join(recs)


@requires_simd
@given(st.data())
def test_simd_equals_portable_and_pyahocorasick(data):
    patterns = data.draw(pattern_sets())
    hay = data.draw(haystacks(patterns))
    cuts = data.draw(st.lists(st.integers(0, 4000), max_size=5))
    assert_paths_agree(patterns, hay, cuts)


@requires_simd
@settings(max_examples=20)
@given(pattern_sets(), st.integers(0, 2**32 - 1), st.lists(st.integers(0, 40_000), max_size=3))
def test_long_inputs_across_chunks(patterns, seed, cuts):
    # Many 64-byte blocks and several 4096-position chunks, matches planted densely.
    rng = np.random.default_rng(seed)
    noise = rng.choice(np.frombuffer(ALPHABET, np.uint8), size=30_000).tobytes()
    plant = [patterns[k] for k in rng.integers(0, len(patterns), size=400)]
    at = np.sort(rng.integers(0, len(noise), size=len(plant)))
    pieces, last = [], 0
    for pos, p in zip(at.tolist(), plant):
        pieces += [noise[last:pos], p]
        last = pos
    pieces.append(noise[last:])
    assert_paths_agree(patterns, b"".join(pieces), cuts)


@requires_simd
def test_five_signatures_on_json_records():
    recs = b"".join(b'{"uid": %d, "event": ' % k + FIVE[k % 5] + b', "count": 3, ' + FIVE[(k * 7) % 5]
                    + b": true}\x00" + bytes(range(k % 256)) for k in range(300))
    assert_paths_agree(FIVE, recs, [5, 777, 4096, 20_000])


@requires_simd
def test_output_arrays_grow():
    # A match ending at every byte: far more than the first output reservation.
    patterns = [b'""', b'"""', b'"']
    data = b'"' * 50_000
    assert_paths_agree(patterns, data, [3, 10_000])
    assert len(pyahocorasick_matches(patterns, data)) == 3 * 50_000 - 3


@requires_simd
def test_range_ending_at_the_end_of_a_mapping(tmp_path):
    # The data fills its mapping to the last byte (the next page is usually not
    # mapped): the search must read nothing past the range end.
    path = tmp_path / "page.bin"
    page = mmap.PAGESIZE
    data = bytearray(b"x" * page)
    data[-14:] = FIVE[0]
    data[page // 2:page // 2 + 10] = FIVE[1]
    path.write_bytes(bytes(data))
    fd = os.open(path, os.O_RDONLY)
    try:
        with mmap.mmap(fd, page, access=mmap.ACCESS_READ) as mm:
            t = build_tables(FIVE)
            for simd in (True, False):
                previous = _scan._set_simd(simd)
                try:
                    o, i, s = _scan.ac_scan(mm, 0, page, *t.kernel_args(), 0, 0)
                    assert (o.tolist(), i.tolist()) == ([page // 2, page - 14], [1, 0])
                    o, i, s2 = _scan.ac_scan(mm, 100, page - 1, *t.kernel_args(), 0, 0)
                    assert (o.tolist(), i.tolist()) == ([page // 2], [1])
                finally:
                    _scan._set_simd(previous)
    finally:
        os.close(fd)


@requires_simd
def test_plan_choice():
    t = build_tables(FIVE)
    texts, dists, buckets = _scan._ac_simd_plan(t.trans, t.classes, t.ncls, t.out_ptr,
                                                t.out_ids, t.pat_len)
    assert [x for x, _ in texts] == sorted(FIVE, key=lambda p: (-len(p), p))
    assert len(buckets) == 5 and 0 in dists and len(dists) <= 8
    # duplicates share one text; ids ascending
    t = build_tables([b'"ab"', b'"x', b'"ab"'])
    texts = _scan._ac_simd_plan(t.trans, t.classes, t.ncls, t.out_ptr, t.out_ids, t.pat_len)[0]
    assert texts == [(b'"ab"', [0, 2]), (b'"x', [1])]
    previous = _scan._set_simd(True)
    try:
        assert _path(build_tables([b"a"])) != "simd"             # a common byte alone
        assert _path(build_tables([b"x" * 65])) != "simd"        # longer than 64
        assert _path(build_tables([b'"k%d"' % k for k in range(65)])) != "simd"
    finally:
        _scan._set_simd(previous)
    _scan._set_simd(False)
    try:
        assert _path(build_tables(FIVE)) == "skip"
    finally:
        _scan._set_simd(previous)

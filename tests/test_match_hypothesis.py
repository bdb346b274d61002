"""Property tests: the matching kernel equals pyahocorasick ``iter()`` and a naive
search on the same bytes, however the input is cut into windows."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from offheap import _impl
from offheap.matching import PatternSet, build_tables, utf16le
from ac_reference import naive, pyahocorasick_matches

# A small alphabet makes overlaps, shared prefixes and suffix chains common; NUL and
# 0xff check that no byte is special.
ALPHABET = b"ab\x00\xff{"
byte_strings = st.lists(st.sampled_from(list(ALPHABET)), min_size=1, max_size=5).map(bytes)
patterns_st = st.lists(byte_strings, min_size=1, max_size=8)
data_st = st.lists(st.sampled_from(list(ALPHABET + b"xy")), max_size=300).map(bytes)


def assert_extension_equals_twin(patterns, data, cut):
    """Both kernels over [0, cut) then [cut, end): same matches, same order, same state."""
    from offheap import _scan, _scan_py

    t = build_tables(patterns)
    cut = min(cut, len(data))
    results = []
    for mod in (_scan, _scan_py):
        o1, i1, s1 = mod.ac_scan(data, 0, cut, *t.kernel_args(), 0, 5)
        o2, i2, s2 = mod.ac_scan(data, cut, len(data), *t.kernel_args(), s1, 5)
        results.append((o1.tolist(), i1.tolist(), s1, o2.tolist(), i2.tolist(), s2))
    assert results[0] == results[1]


def scan_in_windows(patterns, data, cuts):
    """One kernel call per window, the state carried from each to the next."""
    t = build_tables(patterns)
    edges = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    state = 0
    offs, ids = [], []
    for begin, end in zip(edges, edges[1:]):
        o, i, state = _impl.kernels().ac_scan(data, begin, end, *t.kernel_args(), state, 0)
        offs.append(o)
        ids.append(i)
    if not offs:
        return []
    return sorted(zip(np.concatenate(offs).tolist(), np.concatenate(ids).tolist()))


@given(patterns_st, data_st, st.lists(st.integers(min_value=0, max_value=400), max_size=6))
def test_windows_equal_pyahocorasick_and_naive(patterns, data, cuts):
    got = scan_in_windows(patterns, data, cuts)
    assert got == naive(patterns, data)
    assert got == pyahocorasick_matches(patterns, data)


@given(patterns_st, data_st, st.integers(min_value=1, max_value=40))
def test_find_all_window_size_does_not_matter(patterns, data, window):
    m = PatternSet(patterns).find_all(data, window=window)
    assert list(zip(m.offsets.tolist(), m.pattern_ids.tolist())) == naive(patterns, data)


@given(patterns_st, data_st)
def test_utf16_forms(patterns, data):
    # Interleave a UTF-16LE copy so that both forms occur.
    text = data + data.decode("latin-1").encode("utf-16-le")
    m = PatternSet(patterns, utf16=True).find_all(text, window=17)
    every = list(patterns) + [utf16le(p) for p in patterns]
    assert list(zip(m.offsets.tolist(), m.pattern_ids.tolist())) == naive(every, text)


@given(st.lists(st.binary(min_size=1, max_size=6), min_size=1, max_size=12),
       st.binary(max_size=400))
def test_arbitrary_bytes(patterns, data):
    # Plant some patterns so that matches are not only accidental.
    planted = data + b"".join(patterns[::2]) + data[:7]
    assert scan_in_windows(patterns, planted, [len(data), 3]) == naive(patterns, planted)


@pytest.mark.single_impl
@given(patterns_st, data_st, st.integers(min_value=0, max_value=300))
def test_extension_equals_twin_exactly(patterns, data, cut):
    # Same order (end position, longest first), same carried state, not only the same set.
    assert_extension_equals_twin(patterns, data, cut)


# Inputs spanning several of the kernel's 4096-byte blocks and all of its lanes: a
# repeated seed with a few random edits, so matches are dense and cross lane edges.
long_data_st = st.tuples(data_st.filter(len), st.integers(60, 120),
                         st.lists(st.tuples(st.integers(0, 40_000), st.sampled_from(list(ALPHABET))),
                                  max_size=20)).map(
    lambda t: bytes(_edit(bytearray(t[0] * t[1]), t[2])))


def _edit(buf: bytearray, edits) -> bytearray:
    for pos, b in edits:
        if buf:
            buf[pos % len(buf)] = b
    return buf


@given(patterns_st, long_data_st, st.lists(st.integers(min_value=0, max_value=40_000), max_size=4))
def test_long_inputs_across_blocks_and_lanes(patterns, data, cuts):
    got = scan_in_windows(patterns, data, cuts)
    assert got == naive(patterns, data)


# Pattern sets that few bytes start (here '"' and '{', as JSON signatures do) run as one
# automaton that skips to candidate positions (a start byte followed by a possible
# second byte) instead of four lanes. Dense quotes, prefixes shared with the data,
# 1-byte patterns and runs across the kernel's 64-byte masks and 16 KiB blocks.
SKIP_ALPHABET = b'"{ab'


def _skip_patterns(min_tail):
    return st.lists(
        st.tuples(st.sampled_from([b'"', b"{"]),
                  st.lists(st.sampled_from(list(SKIP_ALPHABET)), min_size=min_tail, max_size=4).map(bytes)).map(
            lambda t: t[0] + t[1]),
        min_size=1, max_size=6)


# any lengths (1-byte patterns: no pair test), and 3+ bytes (dense real pairs)
skip_patterns_st = _skip_patterns(0) | _skip_patterns(2)
skip_data_st = st.tuples(
    st.lists(st.sampled_from(list(SKIP_ALPHABET + b"xy\x00")), min_size=1, max_size=200).map(bytes),
    st.integers(1, 200),
    st.lists(st.tuples(st.integers(0, 40_000), st.sampled_from(list(SKIP_ALPHABET))), max_size=20)).map(
    lambda t: bytes(_edit(bytearray(t[0] * t[1]), t[2])))


@pytest.mark.single_impl
def test_skip_plan_is_used_for_rare_start_bytes():
    from offheap import _scan

    t = build_tables([b'"unread_count"', b'"presence"'])
    first, second, d1max = _scan._ac_skip_plan(t.trans, t.classes, t.ncls)
    assert first == [ord('"')] and second == sorted(b"pu") and d1max == t.ncls
    t = build_tables([b'"', b'"ab'])          # a 1-byte pattern: no pair test, no resume
    assert _scan._ac_skip_plan(t.trans, t.classes, t.ncls) == ([ord('"')], None, 0)
    t = build_tables([b"unread", b'"x'])      # a letter starts a pattern: four lanes
    assert _scan._ac_skip_plan(t.trans, t.classes, t.ncls) is None


@given(skip_patterns_st, skip_data_st, st.lists(st.integers(min_value=0, max_value=40_000), max_size=4))
def test_root_skip_equals_naive_across_windows(patterns, data, cuts):
    assert scan_in_windows(patterns, data, cuts) == naive(patterns, data)


@pytest.mark.single_impl
@given(skip_patterns_st, skip_data_st, st.integers(min_value=0, max_value=40_000))
def test_root_skip_equals_twin_exactly(patterns, data, cut):
    assert_extension_equals_twin(patterns, data, cut)

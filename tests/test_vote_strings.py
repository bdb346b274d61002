"""vote_strings on many strings: the compiled voter (four lanes, stages flushed as they
fill, lanes refilled at string ends) against the pure-Python twin, which votes one
string at a time."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from offheap import _scan, _scan_py
from offheap.matching import build_tables
from vote_cases import carry_first_string

pytestmark = pytest.mark.single_impl     # both kernels are called directly

ALPHABET = b'ab{":}x'


def _case(seed: int, nstrings: int, ntypes: int, carried: bool, open_run: bool):
    """A window of random text over a small alphabet (so matches are dense), random
    patterns over it with random types and priorities (ties included), sorted
    disjoint strings of 1..300 bytes in it; with ``carried`` the first string began
    in the last window (its start, a state and matches so far are carried)."""
    rng = np.random.default_rng(seed)
    npat = int(rng.integers(1, 90))
    pats = sorted({bytes(rng.choice(list(ALPHABET), int(rng.integers(1, 5))).tolist())
                   for _ in range(npat)})
    pat_type = rng.integers(0, ntypes, len(pats)).astype(np.int64)
    priority = rng.integers(0, 3, ntypes).astype(np.int64)
    lens = rng.integers(1, 301, nstrings).astype(np.uint64)
    gaps = rng.integers(0, 4, nstrings).astype(np.uint64)
    base = 1000
    offs = base + np.cumsum(gaps + lens) - lens
    last = int(offs[-1] + lens[-1])
    end = last - base + int(rng.integers(0, 50))
    data = bytes(rng.choice(list(ALPHABET), end).tolist())
    t = build_tables(pats)
    carry = carry_first_string(rng, offs, lens, base, t, len(pats)) if carried \
        else np.zeros(len(pats) + 3, np.int64)
    open_start = last + int(rng.integers(0, base + end - last + 1))
    return (data, base, end, offs, lens, t.trans, t.classes, t.ncls, t.out_ptr, t.out_ids,
            pat_type, priority), carry, open_run, open_start, t


def _vote(mod, args, carry, open_run, open_start):
    counts = np.zeros(len(args[10]), np.int64)
    carry = carry.copy()
    cls = mod.vote_strings(*args, counts, carry, open_run, open_start)
    return cls.tolist(), counts.tolist(), carry.tolist()


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), nstrings=st.integers(1, 1500), ntypes=st.integers(1, 70),
       carried=st.booleans(), open_run=st.booleans())
def test_compiled_voter_equals_the_twin_on_many_strings(seed, nstrings, ntypes, carried, open_run):
    args, carry, open_run, open_start, _ = _case(seed, nstrings, ntypes, carried, open_run)
    assert _vote(_scan, args, carry, open_run, open_start) == _vote(_scan_py, args, carry, open_run,
                                                                  open_start)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), nstrings=st.integers(1000, 4000), ntypes=st.integers(1, 64))
def test_compiled_voter_equals_joined_matches_on_thousands_of_strings(seed, nstrings, ntypes):
    # the compiled join (every match of the window, then matches to strings) as the
    # reference: fast enough for thousands of strings, so every lane's stage fills,
    # flushes and refills many times
    args, _, _, _, t = _case(seed, nstrings, ntypes, False, False)
    data, base, end, offs, lens = args[:5]
    pat_type, priority = args[10], args[11]
    cls, counts, carry = _vote(_scan, args, np.zeros(len(pat_type) + 3, np.int64), False, 0)
    assert carry == [0] * (len(pat_type) + 3)
    m_off, m_pid, _ = _scan.ac_scan(data, 0, end, *t.kernel_args(), 0, 0)
    want_counts = np.zeros(len(pat_type), np.int64)
    want, _ = _scan.string_types(offs - np.uint64(base), lens, m_off, m_pid,
                                 t.pat_len.astype(np.int64), pat_type, priority, want_counts)
    assert cls == want.tolist()
    assert counts == want_counts.tolist()


def test_renumbered_tables_are_reused_only_for_the_same_arrays():
    # windows of one dump reuse the renumbered automaton; other priorities must not:
    # swapping them flips the vote of a string holding both types
    t = build_tables([b"ab", b"xy"])
    pat_type = np.array([0, 1], np.int64)
    data = b"ab xy\x00"
    offs, lens = np.array([0], np.uint64), np.array([5], np.uint64)

    def vote(priority):
        return _scan.vote_strings(data, 0, len(data), offs, lens, t.trans, t.classes, t.ncls,
                                  t.out_ptr, t.out_ids, pat_type, priority,
                                  np.zeros(2, np.int64), np.zeros(5, np.int64)).tolist()

    first = np.array([1, 0], np.int64)
    assert vote(first) == [0]
    cached = _scan._FAST_CACHE[0]
    assert vote(first) == [0] and _scan._FAST_CACHE[0] is cached       # same arrays: reused
    assert vote(np.array([0, 1], np.int64)) == [1]                     # new priorities
    first[:] = [0, 1]                                                  # changed in place
    assert vote(first) == [1]


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), nstrings=st.integers(1, 200), ntypes=st.integers(1, 70),
       carried=st.booleans(), open_run=st.booleans(), simd=st.booleans())
def test_weights_count_each_string_as_that_many_copies(seed, nstrings, ntypes, carried, open_run, simd):
    # a string of weight w (w copies of it, typed once) adds w times its matches; its
    # type, the carry and the open run are unchanged. The reference votes each string
    # alone; the AVX-512, fast (<= 64 types) and general voters and the twin all run.
    args, carry, open_run, open_start, _ = _case(seed, nstrings, ntypes, carried, open_run)
    rng = np.random.default_rng(seed ^ 0x5EED)
    weights = rng.integers(0, 9, nstrings).astype(np.int64)
    data, base, end, offs, lens = args[:5]
    want = np.zeros(len(args[10]), np.int64)
    for i in range(nstrings):
        alone = np.zeros(len(args[10]), np.int64)
        first = carry.copy() if i == 0 and carried else np.zeros_like(carry)
        _scan_py.vote_strings(data, base, end, offs[i:i + 1], lens[i:i + 1], *args[5:], alone, first)
        want += weights[i] * alone
    plain = _vote(_scan_py, args, carry, open_run, open_start)
    previous = _scan._set_simd(simd)
    try:
        for mod in (_scan, _scan_py):
            counts = np.zeros(len(args[10]), np.int64)
            c = carry.copy()
            cls = mod.vote_strings(*args, counts, c, open_run, open_start, weights)
            assert cls.tolist() == plain[0] and c.tolist() == plain[2]
            assert counts.tolist() == want.tolist()
    finally:
        _scan._set_simd(previous)


def test_weights_are_checked():
    args, carry, _, _, _ = _case(3, 5, 3, False, False)
    for mod in (_scan, _scan_py):
        counts = np.zeros(len(args[10]), np.int64)
        with pytest.raises(ValueError):
            mod.vote_strings(*args, counts, carry.copy(), False, 0, np.ones(4, np.int64))
        with pytest.raises(ValueError):
            mod.vote_strings(*args, counts, carry.copy(), False, 0, -np.ones(5, np.int64))

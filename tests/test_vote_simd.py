"""vote_strings' AVX-512 voter (no automaton: exact groups of short patterns and a
filter with exact checks) gives exactly what the portable voters give, on any bytes:
the compiled voter with SIMD off, the pure-Python twin, and the join of every match."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from offheap import _scan, _scan_py
from offheap.matching import build_tables
from offheap.signatures import builtin
from vote_cases import carry_first_string

pytestmark = pytest.mark.single_impl     # the kernels are called directly


def _cpu_ok() -> bool:
    if _scan._simd_level() != "avx512":
        return False
    flags = open("/proc/cpuinfo", "rb").read().split()
    return b"gfni" in flags and b"avx512_bitalg" in flags


pytestmark = [pytestmark, pytest.mark.skipif(
    not _cpu_ok(), reason="no AVX-512 voter here: the CPU lacks AVX-512 VBMI/BITALG or GFNI, "
                          "or OFFHEAP_NO_SIMD=1")]

# small alphabets, so matches are dense; 0x00, and bytes >= 0x80 whose low seven bits
# are other letters of the alphabet ('A' | 0x80, 'a' | 0x80): the tables see seven bits
ALPHABETS = [b'ab{":}x', b'ab\x00\xc1A\xe1', b'aA\xc1\xe1"\x80\xff', bytes(range(0, 256, 17))]


def _sigs():
    s = builtin()
    return (s.pattern_set().tables, s.pattern_type.astype(np.int64),
            np.array([t.priority for t in s.types], np.int64), s.patterns)


def _tables_args(t, pat_type, priority):
    return (t.trans, t.classes, t.ncls, t.out_ptr, t.out_ids, pat_type, priority)


def _plan(t, pat_type, priority):
    return _scan._vote_plan(*_tables_args(t, pat_type, priority))


def _vote(mod, data, base, end, offs, lens, targs, carry, open_run=False, open_start=0):
    npat = len(targs[5])
    counts = np.zeros(npat, np.int64)
    carry = carry.copy()
    cls = mod.vote_strings(data, base, end, offs, lens, *targs, counts, carry, open_run, open_start)
    return np.asarray(cls).tolist(), counts.tolist(), carry.tolist()


def _portable(*args, **kw):
    previous = _scan._set_simd(False)
    try:
        return _vote(_scan, *args, **kw)
    finally:
        _scan._set_simd(previous)


def _layout(rng, nstrings, maxlen, base, at_end):
    """Sorted disjoint strings of 1..maxlen bytes after ``base``, a few multi-KB ones;
    returns offsets, lengths and the window's length (the last string ends exactly at
    the buffer's end with ``at_end``)."""
    lens = rng.integers(1, maxlen + 1, nstrings)
    big = rng.random(nstrings) < 0.003
    lens[big] = rng.integers(1000, 6000, int(big.sum()))
    lens = lens.astype(np.uint64)
    gaps = rng.integers(0, 4, nstrings).astype(np.uint64)
    offs = np.uint64(base) + np.cumsum(gaps + lens) - lens
    last = int(offs[-1] + lens[-1]) - base
    return offs, lens, last if at_end else last + int(rng.integers(0, 70))


def _check(data, base, end, offs, lens, targs, twin: bool):
    carry = np.zeros(len(targs[5]) + 3, np.int64)
    got = _vote(_scan, data, base, end, offs, lens, targs, carry)
    assert got == _portable(data, base, end, offs, lens, targs, carry)
    if twin:
        assert got == _vote(_scan_py, data, base, end, offs, lens, targs, carry)
    return got


def test_the_builtin_set_takes_the_simd_voter():
    t, pat_type, priority, _ = _sigs()
    plan = _plan(t, pat_type, priority)
    assert plan is not None and plan["exact"] + plan["filtered"] >= 1
    previous = _scan._set_simd(False)
    try:
        assert _plan(t, pat_type, priority) is None
    finally:
        _scan._set_simd(previous)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), nstrings=st.integers(1, 3000), json=st.booleans(),
       at_end=st.booleans())
def test_builtin_set_on_json_like_and_random_text(seed, nstrings, json, at_end):
    t, pat_type, priority, patterns = _sigs()
    rng = np.random.default_rng(seed)
    base = int(rng.integers(0, 100))
    offs, lens, end = _layout(rng, nstrings, 300, base, at_end)
    if json:
        # the recognisers' own texts, glued with JSON punctuation and odd bytes
        pieces = list(patterns) + [b'"', b':', b',', b'{', b'}', b' ', b'1', b'\xc1', b'\x00', b'a']
        out = bytearray()
        while len(out) < base + end:
            out += pieces[int(rng.integers(0, len(pieces)))]
        data = bytes(out[:base + end])
    else:
        data = rng.integers(0, 256, base + end, dtype=np.uint8).tobytes()
    twin = nstrings * 300 < 30000
    _check(data, base, end, offs, lens, _tables_args(t, pat_type, priority), twin)


def _pattern_set(rng, alphabet):
    """1..90 patterns of 1..40 bytes over ``alphabet``, some sharing prefixes or
    suffixes with others, duplicates allowed."""
    npat = int(rng.integers(1, 91))
    pats = []
    for _ in range(npat):
        r = rng.random()
        if pats and r < 0.3:                      # a prefix or suffix of another, or extended
            p = pats[int(rng.integers(0, len(pats)))]
            cut = int(rng.integers(1, len(p) + 1))
            p = p[:cut] if rng.random() < 0.5 else p[-cut:]
            if rng.random() < 0.5:
                p = p + bytes(rng.choice(list(alphabet), int(rng.integers(1, 4))).tolist())
        else:
            n = int(rng.integers(1, 6)) if r < 0.8 else int(rng.integers(1, 41))
            p = bytes(rng.choice(list(alphabet), n).tolist())
        pats.append(p[:40])
    return pats


def _expect_plan(pats, ntypes) -> bool:
    """When the AVX-512 voter must take a set: at most 64 types and every 1-byte text
    one an exact group holds (no byte 0 nor >= 0x80, at most 32 of them)."""
    ones = {p for p in pats if len(p) == 1}
    return ntypes <= 64 and len(ones) <= 32 and all(0 < p[0] < 0x80 for p in ones)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), alpha=st.integers(0, len(ALPHABETS) - 1),
       nstrings=st.integers(1, 2500), ntypes=st.integers(1, 70), at_end=st.booleans())
def test_random_pattern_sets(seed, alpha, nstrings, ntypes, at_end):
    rng = np.random.default_rng(seed)
    alphabet = ALPHABETS[alpha]
    pats = _pattern_set(rng, alphabet)
    t = build_tables(pats)
    pat_type = rng.integers(0, ntypes, len(pats)).astype(np.int64)
    priority = rng.integers(0, 3, ntypes).astype(np.int64)          # ties on priority
    targs = _tables_args(t, pat_type, priority)
    assert (_plan(t, pat_type, priority) is not None) == _expect_plan(pats, ntypes)
    base = int(rng.integers(0, 100))
    offs, lens, end = _layout(rng, nstrings, 300, base, at_end)
    data = bytes(rng.choice(list(alphabet), base + end).tolist())
    _check(data, base, end, offs, lens, targs, twin=nstrings * 300 < 30000)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), nstrings=st.integers(1, 60), carried=st.booleans(),
       open_run=st.booleans())
def test_carried_and_open_runs_around_the_simd_strings(seed, nstrings, carried, open_run):
    # the carried first string and the open tail keep the one-lane voter; the strings
    # between them take the AVX-512 voter
    rng = np.random.default_rng(seed)
    alphabet = ALPHABETS[int(rng.integers(0, len(ALPHABETS)))]
    pats = [p for p in _pattern_set(rng, alphabet) if len(p) > 1] or [alphabet[:2]]
    t = build_tables(pats)
    ntypes = int(rng.integers(1, 9))
    pat_type = rng.integers(0, ntypes, len(pats)).astype(np.int64)
    priority = rng.integers(0, 3, ntypes).astype(np.int64)
    targs = _tables_args(t, pat_type, priority)
    assert _plan(t, pat_type, priority) is not None
    base = 1000
    offs, lens, end = _layout(rng, nstrings, 200, base, False)
    data = bytes(rng.choice(list(alphabet), end).tolist())
    carry = carry_first_string(rng, offs, lens, base, t, len(pats)) if carried \
        else np.zeros(len(pats) + 3, np.int64)
    last = int(offs[-1] + lens[-1])
    open_start = last + int(rng.integers(0, base + end - last + 1))
    args = (data, base, end, offs, lens, targs, carry)
    got = _vote(_scan, *args, open_run=open_run, open_start=open_start)
    assert got == _portable(*args, open_run=open_run, open_start=open_start)
    assert got == _vote(_scan_py, *args, open_run=open_run, open_start=open_start)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_long_strings_against_the_join(seed):
    # a few strings of many KB (byte counters flushed many times) and a pattern of 40
    # bytes (checked past the 32 bytes compared at once), against every match joined
    rng = np.random.default_rng(seed)
    alphabet = ALPHABETS[int(rng.integers(0, len(ALPHABETS)))]
    pats = _pattern_set(rng, alphabet) + [bytes(rng.choice(list(alphabet), 40).tolist())]
    t = build_tables(pats)
    pat_type = rng.integers(0, 5, len(pats)).astype(np.int64)
    priority = rng.integers(0, 2, 5).astype(np.int64)
    targs = _tables_args(t, pat_type, priority)
    lens = rng.integers(1, 40000, int(rng.integers(1, 6))).astype(np.uint64)
    offs = np.cumsum(lens + np.uint64(1)) - lens
    end = int(offs[-1] + lens[-1])
    data = bytearray(rng.choice(list(alphabet), end).tolist())
    for p in rng.choice(len(data), 20):                               # planted long pattern
        data[p:p + 40] = pats[-1][:len(data) - p]
    data = bytes(data)
    cls, counts, _ = _check(data, 0, end, offs, lens, targs, twin=False)
    m_off, m_pid, _ = _scan.ac_scan(data, 0, end, *t.kernel_args(), 0, 0)
    want_counts = np.zeros(len(pats), np.int64)
    want, _ = _scan.string_types(offs, lens, m_off, m_pid, t.pat_len.astype(np.int64), pat_type,
                                 priority, want_counts)
    assert cls == want.tolist() and counts == want_counts.tolist()


def test_bytes_with_the_high_bit_never_alias():
    # 'A' | 0x80 is 'A' to a seven-bit table: no match may come of it, in an exact
    # group (short pattern) nor in the filter (long one), nor a 0 past a string's end
    t = build_tables([b"AB", b"ABCDEFG", b"zz"])
    pat_type = np.array([0, 1, 2], np.int64)
    priority = np.array([0, 1, 2], np.int64)
    targs = _tables_args(t, pat_type, priority)
    assert _plan(t, pat_type, priority) is not None
    strings = [b"\xc1B", b"A\xc2", b"\xc1\xc2CDEFG", b"ABCDEF\xc7", b"ABCDEFG", b"AB", b"A", b"zz\xfa"]
    data = b"".join(strings)
    lens = np.array([len(s) for s in strings], np.uint64)
    offs = np.cumsum(lens) - lens
    cls, counts, _ = _check(data, 0, len(data), offs, lens, targs, twin=True)
    assert cls == [-1, -1, -1, 0, 1, 0, -1, 2]
    assert counts == [3, 1, 1]


def _json_like(rng, patterns, n):
    pieces = list(patterns) + [b'"', b':', b',', b'{', b'}', b' ', b'1', b'\xc1', b'\x00', b'a']
    out = bytearray()
    while len(out) < n:
        out += pieces[int(rng.integers(0, len(pieces)))]
    return bytes(out[:n])


def test_the_plan_depends_on_the_first_strings_but_never_the_results():
    # the plan is tuned on the strings of the call that builds it, then cached: a
    # plan tuned on other data must vote exactly as one tuned on this data
    t, pat_type, priority, patterns = _sigs()
    targs = _tables_args(t, pat_type, priority)
    rng = np.random.default_rng(11)
    bufs = []
    for kind in ("json", "random"):
        offs, lens, end = _layout(rng, 3000, 200, 0, True)
        data = (_json_like(rng, patterns, end) if kind == "json"
                else rng.integers(1, 128, end, dtype=np.uint8).tobytes())
        bufs.append((data, 0, end, offs, lens))
    carry = np.zeros(len(pat_type) + 3, np.int64)
    got, plans = {}, []
    for first in range(2):
        _scan._SV_CACHE[0] = None
        for which in (first, 1 - first):
            got[first, which] = _vote(_scan, *bufs[which], targs, carry)
        plans.append(_scan._SV_CACHE[0][2])
    assert not np.array_equal(plans[0]["ttab"], plans[1]["ttab"])     # two different plans
    for which in range(2):
        assert got[0, which] == got[1, which] == _portable(*bufs[which], targs, carry)


def test_a_plan_built_without_strings_is_tuned_by_the_first_vote():
    t, pat_type, priority, patterns = _sigs()
    targs = _tables_args(t, pat_type, priority)
    _scan._SV_CACHE[0] = None
    # views: the cache keys on the arrays they view, as vote_strings' arguments do
    assert _scan._vote_plan(t.trans[:], t.classes[:], t.ncls, t.out_ptr[:], t.out_ids[:],
                            pat_type, priority) is not None
    untuned = _scan._SV_CACHE[0][2]
    rng = np.random.default_rng(3)
    offs, lens, end = _layout(rng, 2000, 200, 0, True)
    data = _json_like(rng, patterns, end)
    carry = np.zeros(len(pat_type) + 3, np.int64)
    got = _vote(_scan, data, 0, end, offs, lens, targs, carry)
    assert _scan._SV_CACHE[0][2] is not untuned
    assert got == _portable(data, 0, end, offs, lens, targs, carry)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), nstrings=st.integers(50, 1500))
def test_anchors_inside_the_patterns(seed, nstrings):
    # JSON keys that all begin '"event":"': the filter looks at each one's rarest four
    # bytes instead (its anchor), so a candidate is found inside a text, which must
    # still start inside the string and end in it; strings here cut through texts
    rng = np.random.default_rng(seed)
    words = [bytes(rng.choice(list(b"abcdrst_"), int(rng.integers(1, 12))).tolist()) for _ in range(12)]
    pats = sorted({b'"event":"' + w + b'"' for w in words}) + [b'"ts":']
    t = build_tables(pats)
    ntypes = int(rng.integers(1, 6))
    pat_type = rng.integers(0, ntypes, len(pats)).astype(np.int64)
    priority = rng.integers(0, 2, ntypes).astype(np.int64)
    targs = _tables_args(t, pat_type, priority)
    out = bytearray()
    while len(out) < nstrings * 80:
        r = rng.random()
        out += pats[int(rng.integers(0, len(pats)))] if r < 0.5 else \
            b'"event":"' if r < 0.7 else bytes(rng.choice(list(b'abcdrst_{}:," '), 5).tolist())
    offs, lens, end = _layout(rng, nstrings, 60, 0, True)
    data = bytes(out[:end]) + bytes(max(0, end - len(out)))
    carry = np.zeros(len(pats) + 3, np.int64)
    _scan._SV_CACHE[0] = None
    got = _vote(_scan, data, 0, end, offs, lens, targs, carry)
    plan = _scan._SV_CACHE[0][2]
    assert plan is not None and plan["tanch"][:plan["filtered"]].max() > 0
    assert got == _portable(data, 0, end, offs, lens, targs, carry)
    assert got == _vote(_scan_py, data, 0, end, offs, lens, targs, carry)


def test_asking_for_the_plan_with_plain_arrays_keeps_the_tuned_one():
    # attribute() asks _vote_plan with the tables' own arrays (base None): the cache
    # once keyed on their ``base`` and so dropped the plan tuned by the last vote,
    # which every window then built again
    t, pat_type, priority, patterns = _sigs()
    targs = _tables_args(t, pat_type, priority)
    rng = np.random.default_rng(5)
    offs, lens, end = _layout(rng, 500, 200, 0, True)
    data = _json_like(rng, patterns, end)
    _scan._SV_CACHE[0] = None
    _vote(_scan, data, 0, end, offs, lens, targs, np.zeros(len(pat_type) + 3, np.int64))
    tuned = _scan._SV_CACHE[0][2]
    assert any(a.base is None for a in (t.trans, t.classes, t.out_ptr, t.out_ids))
    assert _plan(t, pat_type, priority) is not None
    assert _scan._SV_CACHE[0][2] is tuned
    # other tables never hit
    assert _scan._vote_plan(t.trans.copy(), t.classes, t.ncls, t.out_ptr, t.out_ids,
                            pat_type, priority) is not None
    assert _scan._SV_CACHE[0][2] is not tuned

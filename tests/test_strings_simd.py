"""The AVX-512 single-byte strings kernel == the portable one, bit for bit, and == GNU strings.

``find_strings`` for encodings 's' and 'S' takes an AVX-512 loop when the CPU has it
(``_scan._simd_level() == 'avx512'``). These tests run both paths on the same input
(``_scan._set_simd``) and compare offsets, lengths, the carried state and the zero
count, over data built to put runs at the edges that matter: lengths around min_len,
runs crossing 64-byte blocks, 512-byte chunks and window cuts, ranges ending at the
buffer's end.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from gnu import gnu_offsets, needs_gnu_strings

_scan = pytest.importorskip("offheap._scan")

pytestmark = [
    pytest.mark.single_impl,
    pytest.mark.skipif(_scan._simd_level() != "avx512",
                       reason="this CPU (or OFFHEAP_NO_SIMD=1) has no AVX-512 path to compare"),
]

PRINTABLE = bytes(range(0x20, 0x7F)) + b"\t"
WHITESPACE = b"\n\r\x0b\x0c"


def _scan_windows(buf, begin, cuts, end, min_len, encoding, ws, final, base, zeros, simd):
    """find_strings over [begin, c1), [c1, c2), ..., [ck, end) carrying the state;
    every result of every call, the state after each call, and the zero count."""
    previous = _scan._set_simd(simd)
    try:
        state = np.zeros(4, dtype=np.uint64)
        zc = np.zeros(1, dtype=np.uint64) if zeros else None
        edges = [begin, *cuts, end]
        calls = []
        for i, (a, b) in enumerate(zip(edges, edges[1:])):
            last = i == len(edges) - 2
            offs, lens = _scan.find_strings(buf, a, b, final and last, min_len, encoding, ws,
                                            base, state, zc)
            calls.append((offs.tolist(), lens.tolist(), state.tolist()))
        return calls, (int(zc[0]) if zeros else None)
    finally:
        _scan._set_simd(previous)


def _both(buf, begin, cuts, end, min_len, encoding="s", ws=False, final=True, base=0,
          zeros=True):
    fast = _scan_windows(buf, begin, cuts, end, min_len, encoding, ws, final, base, zeros, True)
    slow = _scan_windows(buf, begin, cuts, end, min_len, encoding, ws, final, base, zeros, False)
    assert fast == slow
    return fast


@st.composite
def dumps(draw):
    """(data, min_len): runs of printable bytes with lengths near min_len and near
    multiples of 64, separated by zeros, control bytes, whitespace, high bytes or noise."""
    min_len = draw(st.one_of(st.integers(1, 20), st.integers(21, 100)))
    near = st.one_of(
        st.integers(max(0, min_len - 2), min_len + 2),
        st.integers(0, 3).flatmap(lambda k: st.integers(max(0, 64 * k - 2), 64 * k + 2)),
        st.integers(0, 200),
    )
    parts = []
    for _ in range(draw(st.integers(0, 24))):
        kind = draw(st.integers(0, 5))
        if kind <= 1:
            n = draw(near)
            alphabet = PRINTABLE + WHITESPACE if kind == 1 else PRINTABLE
            seed = draw(st.integers(0, 2**32 - 1))
            rng = random.Random(seed)
            parts.append(bytes(rng.choice(alphabet) for _ in range(n)))
        elif kind == 2:
            parts.append(b"\x00" * draw(st.integers(1, 130)))
        elif kind == 3:
            parts.append(draw(st.sampled_from([b"\x00", b"\x01", b"\x7f", b"\x80", b"\xff",
                                               b"\t", b"\n", b"\r", b"\x0b", b"\x1f", b"\xa0"])))
        elif kind == 4:
            parts.append(draw(st.binary(min_size=1, max_size=70)))
        else:
            parts.append(bytes([draw(st.integers(0x80, 0xFF))]) * draw(st.integers(1, 70)))
    return b"".join(parts), min_len


@settings(max_examples=250)
@given(dumps(), st.sampled_from("sS"), st.booleans(), st.booleans(), st.data())
def test_windows_state_and_zero_count_match_portable(dump, encoding, ws, final, data):
    blob, min_len = dump
    n = len(blob)
    begin = data.draw(st.integers(0, min(n, 100)))
    end = data.draw(st.integers(begin, n))
    cuts = sorted(data.draw(st.lists(st.integers(begin, end), max_size=5)))
    # the range ends at the buffer's end (a bytes object of exactly that length), or
    # the buffer goes on past it with bytes the kernel must not look at
    tail = data.draw(st.sampled_from([b"", b"A" * 70, b"\x00", bytes(range(256))]))
    buf = blob[:end] + tail if tail else blob[:end]
    base = data.draw(st.sampled_from([0, 1, 4096, 2**40 + 3]))
    _both(buf, begin, cuts, end, min_len, encoding, ws, final, base)


@settings(max_examples=60)
@given(st.integers(1, 100), st.integers(0, 3000), st.integers(0, 2**32 - 1))
def test_state_carried_at_every_cut_of_a_long_run(min_len, run, seed):
    """A run crossing any number of blocks and chunks, cut at random points."""
    rng = random.Random(seed)
    data = (bytes(rng.randrange(256) for _ in range(rng.randrange(0, 70))) + b"x" * run
            + b"\x00" + b"y" * rng.randrange(0, 130))
    cuts = sorted(rng.randrange(0, len(data) + 1) for _ in range(rng.randrange(0, 8)))
    for final in (False, True):
        _both(data, 0, cuts, len(data), min_len, final=final)


@pytest.mark.parametrize("min_len", [1, 2, 3, 4, 8, 16, 17, 64])
def test_output_growth_mid_scan(min_len):
    """More strings than the first output guess: the kernel stops, the arrays grow
    and the scan resumes from the state, on both paths alike."""
    unit = b"a" * min_len + b"\x00"
    data = unit * (300_000 // len(unit)) + b"tail" * min_len
    (calls, zeros) = _both(data, 0, [], len(data), min_len)
    offs, lens, _ = calls[0]
    assert len(offs) == 300_000 // len(unit) + 1
    assert zeros == data.count(0)


def test_dense_runs_in_every_block():
    """Up to 64 events per 64-byte block (min_len 1, alternating bytes)."""
    rng = random.Random(7)
    data = bytes(rng.choice([0x41, 0x00, 0x09, 0x0A, 0x7F, 0x80]) for _ in range(20_000))
    for min_len in (1, 2, 3, 5):
        for ws in (False, True):
            for enc in "sS":
                _both(data, 0, [333, 4097, 10_000], len(data), min_len, enc, ws)


def _random_dump(seed: int, size: int) -> bytes:
    rng = random.Random(seed)
    out = bytearray()
    while len(out) < size:
        kind = rng.randrange(5)
        if kind == 0:
            out += bytes(rng.choice(PRINTABLE) for _ in range(rng.randrange(1, 120)))
        elif kind == 1:
            out += bytes(rng.choice(PRINTABLE + WHITESPACE) for _ in range(rng.randrange(1, 40)))
        elif kind == 2:
            out += b"\x00" * rng.randrange(1, 200)
        elif kind == 3:
            out += bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
        else:
            out += bytes(rng.randrange(0x80, 0x100) for _ in range(rng.randrange(1, 20)))
    return bytes(out[:size])


@needs_gnu_strings
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_avx512_path_matches_gnu_strings(tmp_path, seed):
    data = _random_dump(seed, 150_000 + 37 * seed)
    path = tmp_path / f"dump{seed}.bin"
    path.write_bytes(data)
    previous = _scan._set_simd(True)
    try:
        for min_len, encoding, ws in [(4, "s", False), (8, "s", True), (8, "S", False),
                                      (20, "s", False), (3, "S", True)]:
            state = np.zeros(4, dtype=np.uint64)
            offs, lens = _scan.find_strings(data, 0, len(data), True, min_len, encoding, ws,
                                            0, state)
            got = [(o, data[o:o + ln]) for o, ln in zip(offs.tolist(), lens.tolist())]
            assert got == gnu_offsets(path, min_len, encoding, ws), (min_len, encoding, ws)
    finally:
        _scan._set_simd(previous)


def test_set_simd_restores_and_reports():
    previous = _scan._set_simd(False)
    try:
        assert _scan._simd_level() == "portable"
        assert _scan._set_simd(True) is False
        assert _scan._simd_level() == "avx512"
    finally:
        _scan._set_simd(previous)

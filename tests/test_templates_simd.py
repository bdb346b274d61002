"""The AVX-512 path of ``template_hashes`` against its portable path and the twin.

Both compiled paths are called directly on ``_scan`` (switched with ``_set_simd``), so
the file runs once, not per implementation.
"""

from __future__ import annotations

import ctypes
import mmap

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from offheap import _scan, _templates_py

pytestmark = pytest.mark.single_impl

needs_avx512 = pytest.mark.skipif(
    _scan._simd_level() != "avx512",
    reason="this CPU (or OFFHEAP_NO_SIMD=1) keeps the kernels on their portable path")


def _twin(s: bytes) -> int:
    return _templates_py._hash(_templates_py.normalize_template(s))


def _both(buf, offsets, lengths) -> tuple[list[int], list[int]]:
    """(AVX-512, portable) hashes of the strings, restoring the SIMD setting."""
    offsets = np.asarray(offsets, np.uint64)
    lengths = np.asarray(lengths, np.uint64)
    previous = _scan._set_simd(True)
    try:
        fast = _scan.template_hashes(buf, 0, offsets, lengths).tolist()
        _scan._set_simd(False)
        portable = _scan.template_hashes(buf, 0, offsets, lengths).tolist()
    finally:
        _scan._set_simd(previous)
    return fast, portable


def _check(strings: list[bytes]) -> None:
    buf = b"".join(strings)
    lengths = [len(s) for s in strings]
    offsets = np.cumsum([0] + lengths[:-1])
    fast, portable = _both(buf, offsets, lengths)
    assert fast == portable == [_twin(s) for s in strings]


# the bytes the masking rule tells apart, and tokens either side of its 16-letter limit
_PIECES = [b"a", b"Z", b"7", b'"', b" ", b":", b"-", b",", b"{", b"\xc3", b"\x00",
           b"x" * 16, b"x" * 17, b"y" * 15, b"a1", b"0" * 16, b'" "', b'"hi there"',
           b'"unread_count"', b'"id":', b" " * 3]
_texts = st.lists(st.sampled_from(_PIECES), max_size=120).map(b"".join)

_json_values = st.one_of(
    st.integers(-10**15, 10**15).map(lambda n: str(n).encode()),
    st.text("abcxyz 0123456789-_", max_size=40).map(lambda t: b'"' + t.encode() + b'"'),
    st.sampled_from([b"true", b"null", b"[]", b'["a b","c"]']))
_json = st.dictionaries(st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=24),
                        _json_values, max_size=8).map(
    lambda d: b"{" + b",".join(b'"' + k.encode() + b'":' + v for k, v in d.items()) + b"}")

_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@needs_avx512
@_SETTINGS
@given(st.lists(st.binary(max_size=300), min_size=1, max_size=8))
def test_arbitrary_bytes(strings):
    _check(strings)


@needs_avx512
@_SETTINGS
@given(st.lists(_texts, min_size=1, max_size=6))
def test_tokens_quotes_and_spaces(strings):
    _check(strings)


@needs_avx512
@_SETTINGS
@given(st.lists(_json, min_size=1, max_size=6))
def test_json_like(strings):
    _check(strings)


@needs_avx512
def test_around_chunk_edges():
    """Every token length near the 16-letter limit, ending, starting or crossing a
    64-byte chunk edge, between fillers that are or are not part of tokens, in strings
    that end at, before or after the edge."""
    strings = []
    for edge in (64, 128, 192):
        for toklen in (1, 2, 15, 16, 17, 18, 30):
            for start in range(edge - toklen - 2, edge + 2):
                for fill in (b"q", b"7", b'"', b" ", b":"):
                    for tok in (b"abcdefghijklmnopqrstuvwxyzABCD", b"abcdefgh1jklmnopqrstuvwxyzABCD"):
                        body = bytearray(fill * (edge + 48))
                        body[start:start + toklen] = tok[:toklen]
                        strings.append(bytes(body))
                        strings.append(bytes(body[:start + toklen]))
                        body[start - 1] = 34
                        strings.append(bytes(body))
    for k in range(0, len(strings), 200):     # batches below the memo's threshold
        _check(strings[k:k + 200])
    _check(strings)


@needs_avx512
def test_long_tokens_and_quoted_text():
    """Tokens far longer than a chunk, and quoted strings longer than a chunk, with
    and without a space and a closing quote."""
    cases = [b"a" * n for n in (16, 17, 63, 64, 65, 200)]
    cases += [b"x" * 70 + b"7" + b":" + b"b" * 100, b"9" + b"c" * 130 + b" ok"]
    for inner in (b"w" * 100, b"w" * 60 + b" " + b"w" * 60, b" " + b"w" * 130, b"w" * 130 + b" "):
        cases += [b'{"k":"' + inner + b'","n":1}', b'"' + inner, b'a "' + inner + b'" "b c" d']
    cases += [b'"a b" "c d" "e f"' * 9, b'" " " "' * 30, b'""' * 70, b'"' * 129]
    _check(cases)


@needs_avx512
@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(_json, _texts), min_size=1, max_size=40), st.data())
def test_memo_with_copies(distinct, data):
    """300+ strings (the memo's batch size) of few distinct ones, each copied many
    times: near copies that differ in one byte or in length must not share a hash."""
    pool = list(distinct)
    for s in distinct:
        if s:
            k = data.draw(st.integers(0, len(s) - 1))
            pool.append(s[:k] + bytes([s[k] ^ 1]) + s[k + 1:])
            pool.append(s[:-1])
            pool.append(s + b"1")
    picks = data.draw(st.lists(st.integers(0, len(pool) - 1), min_size=300, max_size=600))
    _check_memo([pool[i] for i in picks])


@needs_avx512
def test_string_ending_at_buffer_end():
    """A string whose last byte is the last readable byte before an unreadable page:
    the masked loads of its tail must not touch the page."""
    page = mmap.PAGESIZE
    m = mmap.mmap(-1, 2 * page)
    try:
        anchor = ctypes.c_char.from_buffer(m)
        addr = ctypes.addressof(anchor)
        del anchor                              # (an export would keep m from closing)
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        assert libc.mprotect(addr + page, page, 0) == 0, ctypes.get_errno()   # PROT_NONE
        text = (b'{"event":"typing","conv_id":"c-120331","uid":100007,"ts":1718057587877}'
                b' "a b" ' + b"z" * 40)
        buf = memoryview(m)[:page]
        for n in (1, 8, 63, 64, 65, 100, 127, 128, 129, len(text)):
            s = (text * 3)[:n]
            m[page - n:page] = s
            offsets = [page - n] * 300          # enough strings for the memo path too
            fast, portable = _both(buf, offsets, [n] * 300)
            assert fast == portable == [_twin(s)] * 300
        del buf
    finally:
        m.close()


def test_key_mask_restores():
    previous = _scan._set_template_key_mask(0)
    try:
        assert _scan._set_template_key_mask(previous) == 0
    finally:
        _scan._set_template_key_mask(previous)
    assert _scan._set_template_key_mask(previous) == previous


def test_set_simd_restores():
    previous = _scan._set_simd(False)
    try:
        assert _scan._simd_level() == "portable"
    finally:
        _scan._set_simd(previous)
    assert _scan._set_simd(previous) == previous


# memo keys as computed, one key for all strings, and one key per bucket of eight:
# with shared keys, only the byte comparison of a string with the memo's copy keeps
# strings that differ in one byte (or only in length) apart
_KEY_MASKS = (2**64 - 1, 0, 0xE000_0000_0000_0000)


def _check_memo(strings: list[bytes]) -> None:
    for mask in _KEY_MASKS:
        previous = _scan._set_template_key_mask(mask)
        try:
            _check(strings)
        finally:
            _scan._set_template_key_mask(previous)


def _shuffled(strings: list[bytes], seed: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    return [strings[i] for i in rng.permutation(len(strings))]


@needs_avx512
def test_memo_near_copies_share_ends():
    """Thousands of distinct strings of one length with the same first and last 64
    bytes, differing in one middle byte (or in a byte of the third or a later 64-byte
    chunk), each copied a few times in shuffled order: more distinct strings than the
    memo has entries, so entries are evicted and replaced while near copies of them
    are looked up."""
    head, tail = b'{"event":"typing","conv":"' + b"a" * 38, b"z" * 53 + b'","n":"ok"}'
    strings = []
    for k in range(3000):
        middle = bytearray(b"m" * 100)
        middle[k % 100] = 0x41 + k // 100            # one byte, at 100 positions
        strings.append(head + bytes(middle) + tail)
    for n in (150, 191, 192, 193, 255, 256, 257, 400):
        for k in range(0, n, 7):                    # every chunk, the tail after 192 too
            s = bytearray(b"q" * n)
            s[k] = 0x30 + k % 10
            strings.append(bytes(s))
    _check_memo(_shuffled(strings * 3, 1))


@needs_avx512
def test_memo_repeats_far_apart():
    """Copies more than 2 MiB apart (beyond any cache), with distinct strings
    between them that evict the first copy's memo entry; and the memo switched off by
    a run of strings without copies, then on again (every 1024 strings it checks)."""
    distinct = [b'{"id":"%08d","msg":"free text %d","pad":"%s"}' % (k, k, b"p" * 30) for k in range(40000)]
    hot = [b'{"event":"typing","conv_id":"c-1203%02d"}' % k for k in range(50)]
    strings = hot + distinct[:30000] + hot + hot[::-1] + distinct[30000:] + hot * 100
    _check_memo(strings)


@needs_avx512
def test_memo_prefixes_and_empty_strings():
    """A string, its prefixes and its extensions by one byte, copied: they share the
    first chunks (and, for the extensions, most of the key's input); empty strings
    between them many times."""
    base = bytes(range(32, 127)) * 4                # 380 bytes, every chunk distinct
    strings = []
    for n in (0, 1, 63, 64, 65, 127, 128, 129, 191, 192, 193, 255, 256, 257, 380):
        strings += [base[:n], b"", base[:n] + b"7", base[:n]]
    _check_memo(strings * 40)
    fast, portable = _both(b"", [0] * 300, [0] * 300)     # no buffer at all
    assert fast == portable == [_twin(b"")] * 300


@settings(max_examples=40, deadline=None)
@given(pool=st.lists(_texts, min_size=1, max_size=12), seed=st.integers(0, 2**32 - 1),
       count=st.integers(1, 1500), collide=st.booleans(), simd=st.booleans())
def test_reps_name_an_earlier_copy_or_the_string_itself(pool, seed, count, collide, simd):
    # strings drawn from a small pool (many copies; from 256 strings on, the memo
    # path): each rep is an earlier string with the same bytes that is its own rep,
    # or the string itself; the hashes are those of a call without reps. With every
    # memo key equal (collide), only the byte comparison tells strings apart.
    rng = np.random.default_rng(seed)
    strings = [pool[k] for k in rng.integers(0, len(pool), count).tolist()]
    buf = b"\x00".join(strings) + b"\x00"
    lengths = np.array([len(s) for s in strings], np.uint64)
    offsets = (np.cumsum(lengths + np.uint64(1)) - lengths - np.uint64(1)).astype(np.uint64)
    reps = np.full(count, -7, np.int64)
    previous = _scan._set_simd(simd)
    mask = _scan._set_template_key_mask(0 if collide else ~0 & (2**64 - 1))
    try:
        hashes = _scan.template_hashes(buf, 0, offsets, lengths, reps=reps)
        assert hashes.tolist() == _scan.template_hashes(buf, 0, offsets, lengths).tolist()
    finally:
        _scan._set_template_key_mask(mask)
        _scan._set_simd(previous)
    idx = np.arange(count)
    assert (reps >= 0).all() and (reps <= idx).all() and (reps[reps] == reps).all()
    assert all(strings[r] == strings[i] for i, r in enumerate(reps.tolist()))
    exact = np.empty(count, np.int64)
    _templates_py.template_hashes(buf, 0, offsets, lengths, reps=exact)
    first: dict[bytes, int] = {}
    assert exact.tolist() == [first.setdefault(s, i) for i, s in enumerate(strings)]


def test_copy_groups_against_the_twin_and_bad_reps():
    from offheap import _attribute_py
    rng = np.random.default_rng(4)
    for n in (0, 1, 5, 300):
        reps = np.arange(n, dtype=np.int64)
        for i in range(1, n):
            if rng.random() < 0.6:
                reps[i] = reps[int(rng.integers(0, i))]
        got = [a.tolist() for a in _scan.copy_groups(reps)]
        assert got == [a.tolist() for a in _attribute_py.copy_groups(reps)]
        firsts, copies, group = got
        assert sum(copies) == n and all(firsts[group[i]] == reps[i] for i in range(n))
    for bad in ([1, 0], [0, 0, 1], [-1], [0, 2, 1]):
        for impl in (_scan, _attribute_py):
            with pytest.raises(ValueError):
                impl.copy_groups(np.array(bad, np.int64))

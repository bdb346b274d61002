"""Property tests: the Cython kernel == the pure-Python twin == GNU strings.

Data is built from pieces that matter to the semantics: printable runs (with tabs),
all whitespace, bytes >= 0x80, UTF-16/32 text in both byte orders, zeros and noise,
so runs land at window edges, at EOF, and at every alignment.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

from offheap import _impl, iter_strings, strings
from offheap._scan_py import find_strings as twin_find_strings
from gnu import gnu_offsets, needs_gnu_strings

GRAPHIC = bytes(range(0x20, 0x7F)) + b"\t"
ENCODINGS = ["s", "S", "b", "l", "B", "L"]


def _text(alphabet: bytes, max_size: int = 40):
    return st.binary(min_size=0, max_size=max_size).map(
        lambda b: bytes(alphabet[x % len(alphabet)] for x in b))


piece = st.one_of(
    _text(GRAPHIC),
    _text(GRAPHIC + b"\n\r\x0b\x0c"),
    _text(GRAPHIC + bytes(range(0x80, 0x100)), 20),
    _text(GRAPHIC, 20).map(lambda t: t.decode("latin-1").encode("utf-16-le")),
    _text(GRAPHIC, 20).map(lambda t: t.decode("latin-1").encode("utf-16-be")),
    _text(GRAPHIC, 12).map(lambda t: t.decode("latin-1").encode("utf-32-le")),
    _text(GRAPHIC, 12).map(lambda t: t.decode("latin-1").encode("utf-32-be")),
    st.binary(max_size=16),
    st.integers(1, 70).map(lambda n: b"\x00" * n),
    st.sampled_from([b"\x00", b"\x01", b"\x7f", b"\x80", b"\xff", b"\t", b"\n"]),
)
dumps = st.lists(piece, max_size=30).map(b"".join)
min_lens = st.one_of(st.integers(1, 6), st.integers(7, 40), st.just(100))


def _whole(data, min_len, encoding, ws):
    s = strings(data, min_len=min_len, encoding=encoding, whitespace=ws) if data else None
    if s is None:
        return []
    return list(zip(s.offsets.tolist(), s.texts()))


@needs_gnu_strings
@given(data=dumps, min_len=min_lens, encoding=st.sampled_from(ENCODINGS), ws=st.booleans())
def test_equals_gnu_strings(tmp_path_factory, data, min_len, encoding, ws):
    if len(data) < min_len * {"s": 1, "S": 1, "b": 2, "l": 2, "B": 4, "L": 4}[encoding]:
        return  # the API refuses inputs that cannot hold a string (tested elsewhere)
    path = tmp_path_factory.mktemp("h") / "d.bin"
    path.write_bytes(data)
    assert _whole(data, min_len, encoding, ws) == gnu_offsets(path, min_len, encoding, ws)


@given(data=dumps, min_len=min_lens, encoding=st.sampled_from(ENCODINGS), ws=st.booleans(),
       window=st.integers(64, 300))
def test_windows_find_the_same_strings_once(data, min_len, encoding, ws, window):
    if len(data) < min_len * 4:
        data = data + b"\x00" * (min_len * 4 - len(data))
    whole = strings(data, min_len=min_len, encoding=encoding, whitespace=ws)
    batches = list(iter_strings(data, min_len=min_len, encoding=encoding, whitespace=ws, window=window))
    offs = np.concatenate([b.offsets for b in batches])
    lens = np.concatenate([b.lengths for b in batches])
    assert offs.tolist() == whole.offsets.tolist()
    assert lens.tolist() == whole.lengths.tolist()


@pytest.mark.skipif(not _impl.extension_available(), reason="extension not built")
@given(data=dumps, min_len=min_lens, encoding=st.sampled_from(ENCODINGS), ws=st.booleans(),
       cuts=st.lists(st.integers(0, 2000), max_size=4))
def test_kernel_equals_twin_with_resumed_ranges(data, min_len, encoding, ws, cuts):
    """Both implementations, fed the same ranges of one buffer with state carried."""
    from offheap import _scan

    bounds = sorted({0, len(data), *[c for c in cuts if c < len(data)]})
    results = []
    for fn in (_scan.find_strings, twin_find_strings):
        state = np.zeros(4, dtype=np.uint64)
        offs, lens = [], []
        for a, b in zip(bounds, bounds[1:] or [len(data)]):
            o, n = fn(data, a, b, b == len(data), min_len, encoding, ws, 0, state)
            offs += o.tolist()
            lens += n.tolist()
        if len(bounds) == 1:   # empty data: one final call on the empty range
            o, n = fn(data, 0, 0, True, min_len, encoding, ws, 0, state)
            offs += o.tolist()
            lens += n.tolist()
        results.append((offs, lens))
    assert results[0] == results[1]


@given(data=dumps, encoding=st.sampled_from(ENCODINGS), radix=st.sampled_from([0, 8, 10, 16]),
       prefix=st.sampled_from([b"", b"f.bin: "]), sep=st.sampled_from([b"\n", b"", b"--"]))
def test_format_matches_text(data, encoding, radix, prefix, sep):
    if not data:
        return
    s = strings(data + b"\x00" * 8, min_len=1, encoding=encoding)
    fmt = {8: b"%7o ", 10: b"%7d ", 16: b"%7x "}.get(radix)
    want = b"".join(prefix + (fmt % o if fmt else b"") + t + sep for o, t in zip(s.offsets.tolist(), s.texts()))
    got = _impl.kernels().format_strings(data + b"\x00" * 8, 0, s.offsets, s.lengths, encoding, radix, prefix, sep)
    assert got == want

"""``strings_and_hashes``: the string scan and the template hashes in one pass.

It must give exactly what ``find_strings`` then ``template_hashes`` give (checked
against the pure-Python twins, whichever implementation runs), over windows with the
run carried between them, for any chunk size; its reps must name an earlier copy or
the string itself, and on the compiled paths the one memo must recognise copies
across chunks.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from offheap import _impl, _strings_py, _templates_py

_pieces = st.one_of(
    st.sampled_from([b'{"event":"typing","uid":17}', b"GET /index.html HTTP/1.1", b"java/lang/String",
                     b'{"event":"presence","ts":1700000000123}', b"short", b"x" * 70]),
    st.binary(min_size=1, max_size=40),
    st.just(b"\x00" * 9),
    st.text(alphabet="ab 1\t\"{}", min_size=1, max_size=90).map(str.encode),
)


def _windows(data: bytes, cuts: list[int]) -> list[tuple[bytes, int]]:
    """The data cut into separate buffers, each with its absolute base, as a dump's
    windows are: a string running across a cut begins before the next buffer."""
    edges = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [(data[a:b], a) for a, b in zip(edges, edges[1:])] or [(b"", 0)]


def _expected(data: bytes, windows, min_len: int, encoding: str, ws: bool):
    """Per window: the twins' strings, their hashes (a string carried in from an
    earlier window: 0) and the window's zero bytes."""
    state = np.zeros(4, np.uint64)
    out = []
    for k, (buf, base) in enumerate(windows):
        zeros = np.zeros(1, np.uint64)
        offs, lens = _strings_py.find_strings(buf, 0, len(buf), k == len(windows) - 1, min_len, encoding,
                                              ws, base, state, zeros)
        hashes = [0 if o < base else _templates_py.template_hashes(data, 0, [o], [n])[0]
                  for o, n in zip(offs.tolist(), lens.tolist())]
        out.append((offs.tolist(), lens.tolist(), hashes, int(zeros[0])))
    return out


@given(pieces=st.lists(_pieces, min_size=0, max_size=60), copies=st.integers(1, 4),
       cuts=st.lists(st.integers(0, 10**6), max_size=3), min_len=st.integers(1, 12),
       encoding=st.sampled_from(["s", "S"]), ws=st.booleans(), chunk=st.integers(1, 300))
def test_equals_find_strings_then_template_hashes(pieces, copies, cuts, min_len, encoding, ws, chunk):
    data = b"".join(pieces) * copies
    windows = _windows(data, cuts)
    k = _impl.kernels()
    state = np.zeros(4, np.uint64)
    for i, ((buf, base), want) in enumerate(zip(windows, _expected(data, windows, min_len, encoding, ws))):
        zeros = np.zeros(1, np.uint64)
        offs, lens, hashes, reps = k.strings_and_hashes(buf, 0, len(buf), i == len(windows) - 1, min_len,
                                                        encoding, ws, base, state, zeros, chunk=chunk)
        assert (offs.tolist(), lens.tolist(), hashes.tolist(), int(zeros[0])) == want
        strings = [data[o:o + n] for o, n in zip(offs.tolist(), lens.tolist())]
        idx = list(range(len(strings)))
        r = reps.tolist()
        assert all(0 <= r[j] <= j and r[r[j]] == r[j] and strings[r[j]] == strings[j] for j in idx)
        if strings and offs[0] < base:
            assert r[0] == 0                    # the carried run is its own, and no one's rep


def test_the_memo_spans_chunks():
    # 20 messages copied 300 times each, hashed 1 KiB at a time: every copy after the
    # first is recognised (the twin by definition, the compiled paths by their memo)
    messages = [b'{"event":"message_new","conv":"c-%04d","text":"hello there %d"}' % (i, i) for i in range(20)]
    data = b"\x00".join(messages * 300) + b"\x00"
    offs, lens, hashes, reps = _impl.kernels().strings_and_hashes(
        data, 0, len(data), True, 8, "s", False, 0, np.zeros(4, np.uint64), chunk=1024)
    assert len(offs) == 6000
    assert reps.tolist() == [i % 20 for i in range(6000)]
    assert hashes.tolist() == _templates_py.template_hashes(data, 0, offs, lens).tolist()


def test_bad_arguments():
    k = _impl.kernels()
    data = b"hello world\x00" * 4
    state = np.zeros(4, np.uint64)
    for kwargs, args in (({}, (data, 0, len(data), True, 4, "l", False, 0, state)),      # 2-byte
                         ({"chunk": 0}, (data, 0, len(data), True, 4, "s", False, 0, state)),
                         ({}, (data, 0, len(data), True, 0, "s", False, 0, state)),
                         ({}, (data, 0, len(data) + 1, True, 4, "s", False, 0, state)),
                         ({}, (data, 0, len(data), True, 4, "s", False, 0, np.zeros(3, np.uint64)))):
        with pytest.raises(ValueError):
            k.strings_and_hashes(*args, **kwargs)


def test_output_grows_past_its_first_reservation():
    # a string every 4 bytes: ~8 times the strings the first reservation (one per 128
    # bytes) holds, so the outputs grow while chunks are half hashed
    data = b"".join(b"a%02d\x00" % (i % 97) for i in range(20000)) + b"tail"
    state = np.zeros(4, np.uint64)
    offs, lens, hashes, reps = _impl.kernels().strings_and_hashes(
        data, 0, len(data), True, 3, "s", False, 0, state, chunk=5000)
    want_offs, want_lens = _strings_py.find_strings(data, 0, len(data), True, 3, "s", False, 0,
                                                    np.zeros(4, np.uint64))
    assert offs.tolist() == want_offs.tolist() and lens.tolist() == want_lens.tolist()
    assert len(offs) == 20001
    assert hashes.tolist() == _templates_py.template_hashes(data, 0, offs, lens).tolist()
    strings = [data[o:o + n] for o, n in zip(offs.tolist(), lens.tolist())]
    assert all(strings[r] == strings[i] and r <= i for i, r in enumerate(reps.tolist()))

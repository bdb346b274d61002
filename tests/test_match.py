"""Multi-pattern matching: the ``ac_scan`` kernel and ``offheap.matching.PatternSet``.

Runs on both kernel implementations (conftest); results are checked against a naive
``bytes.find`` reference.
"""

from __future__ import annotations

import mmap
import os

import numpy as np
import pytest

from offheap import _impl
from offheap.errors import InputError
from offheap.matching import PatternSet, build_tables, find_all, utf16le
from ac_reference import naive


def pairs(m):
    return list(zip(m.offsets.tolist(), m.pattern_ids.tolist()))


def test_textbook_example():
    m = PatternSet([b"he", b"she", b"his", b"hers"]).find_all(b"ahishers")
    assert pairs(m) == [(1, 2), (3, 1), (4, 0), (4, 3)]
    assert m.offsets.dtype == np.uint64 and m.pattern_ids.dtype == np.int32


def test_kernel_reports_start_offsets_in_end_order_with_base():
    ps = PatternSet([b"he", b"she", b"hers"])
    offsets, ids, state = ps.scan(b"ushers", base=1000)
    # "she" and "he" both end at index 3: longest first; "hers" ends at 5.
    assert offsets.tolist() == [1001, 1002, 1002]
    assert ids.tolist() == [1, 0, 2]
    assert state == 0 or state > 0  # an opaque row offset, carried by the caller


def test_state_carries_across_calls():
    ps = PatternSet([b"abcdef"])
    data = b"xxabcdefyy"
    for cut in range(len(data) + 1):
        o1, i1, s = ps.scan(data, 0, cut)
        o2, i2, s = ps.scan(data, cut, len(data), state=s)
        assert np.concatenate([o1, o2]).tolist() == [2], cut


def test_binary_patterns_including_nul_and_high_bytes():
    pats = [b"\x00", b"\xff\xfe", b"\x00\xff", b"\xc8\x00\xc8"]
    data = bytes([0, 255, 254, 200, 0, 200, 0, 0, 255])
    assert pairs(PatternSet(pats).find_all(data)) == naive(pats, data)


def test_overlapping_prefix_and_suffix_patterns():
    pats = [b"a", b"aa", b"aaa", b"ab", b"b", b"bab"]
    data = b"aaabababaa"
    assert pairs(PatternSet(pats).find_all(data)) == naive(pats, data)


def test_duplicate_patterns_report_every_id():
    m = PatternSet([b"json", b"x", b"json"]).find_all(b"..json..")
    assert pairs(m) == [(2, 0), (2, 2)]


def test_output_arrays_grow_past_initial_capacity():
    data = b"a" * 20_000
    m = PatternSet([b"a", b"aa"]).find_all(data)
    assert m.count == 20_000 + 19_999
    assert np.array_equal(m.offsets[::2], np.arange(20_000, dtype=np.uint64))


def test_in_memory_windows_do_not_lose_straddling_matches():
    pats = [b"hello world", b"lo w", b"d!", b"!"]
    data = b"say hello world! " * 50
    expected = naive(pats, data)
    for window in (1, 2, 3, 7, 64, 10_000):
        assert pairs(PatternSet(pats).find_all(data, window=window)) == expected, window


def test_file_windows_cross_page_edges(tmp_path):
    gran = mmap.ALLOCATIONGRANULARITY
    pats = [b"EDGE-MARKER", b"MARK", b"\x00\x01\x02"]
    buf = bytearray(os.urandom(gran * 3 + 400))
    for edge in (gran, 2 * gran, 3 * gran):
        for shift in (-500, -6, 200):  # before, straddling, after the edge
            at = edge + shift
            buf[at:at + 11] = b"EDGE-MARKER"
    buf[gran - 1:gran + 2] = b"\x00\x01\x02"
    path = tmp_path / "dump.bin"
    path.write_bytes(bytes(buf))
    m = PatternSet(pats).find_all(path, window=gran)
    assert pairs(m) == naive(pats, bytes(buf))
    assert m.count >= 17  # 9 + 9 markers, one pair broken by the NUL pattern, + 1
    # str paths and whole-file windows agree
    assert pairs(PatternSet(pats).find_all(str(path))) == pairs(m)


def test_mmap_source(tmp_path):
    path = tmp_path / "d"
    data = b'{"event":"unread_count","uid":1}' * 100
    path.write_bytes(data)
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        m = PatternSet([b'"uid":', b"unread"]).find_all(mm, window=4096)
    assert pairs(m) == naive([b'"uid":', b"unread"], data)


def test_empty_file_and_empty_buffer(tmp_path):
    path = tmp_path / "empty"
    path.write_bytes(b"")
    for src in (path, b""):
        m = PatternSet([b"x"]).find_all(src)
        assert m.count == 0 and m.offsets.dtype == np.uint64


def test_utf16_forms_have_their_own_ids():
    pats = [b"GET /", b"json"]
    data = b"GET /x " + "json GET /".encode("utf-16-le") + b" json"
    ps = PatternSet(pats, utf16=True)
    m = ps.find_all(data)
    assert pairs(m) == naive(pats + [utf16le(p) for p in pats], data)
    assert ps.base_ids[m.pattern_ids].tolist() == [0, 1, 0, 1]
    assert ps.is_utf16[m.pattern_ids].tolist() == [False, True, True, False]


def test_str_patterns_are_utf8():
    assert pairs(find_all(["é"], "café".encode())) == [(3, 0)]


def test_no_patterns_matches_nothing():
    assert PatternSet([]).find_all(b"anything").count == 0


def test_errors():
    with pytest.raises(InputError, match="pattern 1 is empty"):
        PatternSet([b"a", b""])
    with pytest.raises(InputError, match="cannot scan a int"):
        PatternSet([b"a"]).find_all(42)
    with pytest.raises(InputError, match="window"):
        PatternSet([b"a"]).find_all(b"a", window=0)
    with pytest.raises(FileNotFoundError):
        PatternSet([b"a"]).find_all("/nonexistent/offheap-dump")


def test_kernel_refuses_bad_ranges_and_tables():
    t = build_tables([b"ab", b"b"])
    k = _impl.kernels()
    with pytest.raises(ValueError, match="bad range"):
        k.ac_scan(b"abc", 2, 1, *t.kernel_args())
    with pytest.raises(ValueError, match="bad range"):
        k.ac_scan(b"abc", 0, 4, *t.kernel_args())
    with pytest.raises(ValueError, match="state"):
        k.ac_scan(b"abc", 0, 3, *t.kernel_args(), 1)
    bad = t.trans.copy()
    bad[0] = t.trans.shape[0] * 4
    args = list(t.kernel_args())
    args[0] = bad
    with pytest.raises(ValueError, match="row offsets"):
        k.ac_scan(b"abc", 0, 3, *args)
    args = list(t.kernel_args())
    args[1] = np.full(256, t.ncls, dtype=np.int32)
    with pytest.raises(ValueError, match="classes"):
        k.ac_scan(b"abc", 0, 3, *args)


def test_tables_are_compact():
    t = build_tables([b"abc", b"abd", b"xyz"])
    # one column per distinct pattern byte plus one for all other bytes
    assert t.ncls == 8  # a b c d x y z, plus the shared column
    assert t.n_states == 1 + 4 + 3
    assert t.classes[ord("q")] == 0


@pytest.mark.single_impl
def test_extension_is_loaded_and_has_the_kernel():
    assert _impl.extension_available(), _impl.EXTENSION_IMPORT_ERROR
    from offheap import _scan, _scan_py
    assert callable(_scan.ac_scan) and callable(_scan_py.ac_scan)


def test_sorting_beyond_packed_key_range():
    # Offsets >= 2**40 cannot be packed with the id: the lexsort path must agree.
    from offheap.matching import _collect

    o = np.array([(1 << 41) + 5, 3, 3, 7], dtype=np.uint64)
    i = np.array([1, 2, 0, 5], dtype=np.int32)
    m = _collect([o[:2], o[2:]], [i[:2], i[2:]], True)
    assert pairs(m) == [(3, 0), (3, 2), (7, 5), ((1 << 41) + 5, 1)]
    m = _collect([o[1:]], [i[1:]], True)
    assert pairs(m) == [(3, 0), (3, 2), (7, 5)]
